/* SPDX-License-Identifier: MIT */
/*
 * tree.h - an intrusive red-black tree, plain or augmented.
 *
 * Owns nothing and locks nothing: the structure that embeds a tree guards
 * it.  The same code serves the plain busy trees (no callbacks)
 * and the free heap's tree, whose nodes cache a value computed from their
 * subtree (the largest free block below them).  An augmented user keeps
 * that value exact by supplying callbacks:
 *
 *   recompute(n)      - n's value from n itself and its two children;
 *                       returns true if it changed.
 *   rotate(old, new)  - after a rotation moved @new above @old: @new now
 *                       spans what @old spanned, so it takes @old's value,
 *                       and @old is recomputed from its new children.
 *
 *          old                  new
 *         /   \                /   \
 *        a    new     ==>    old    c
 *            /   \          /   \
 *           b     c        a     b
 *
 * Insertion: the caller descends, links the node as a leaf with
 * tree_link(), brings the values on the path up to date (it knows the new
 * leaf's value), then calls tree_insert_fixup().  Erasure: tree_erase()
 * recomputes the path itself.
 */
#ifndef VMAP_TREE_H
#define VMAP_TREE_H

#include <stdbool.h>
#include <stddef.h>

struct tree_node {
	struct tree_node *parent, *left, *right;
	bool red;
};

struct tree_root {
	struct tree_node *top;
};

struct tree_augment {
	bool (*recompute)(struct tree_node *n);
	void (*rotate)(struct tree_node *old_top, struct tree_node *new_top);
};

#define tree_entry(ptr, type, member)                                          \
	((type *)((char *)(ptr)-offsetof(type, member)))

static inline void tree_link(struct tree_node *n, struct tree_node *parent,
			     struct tree_node **slot)
{
	n->parent = parent;
	n->left = n->right = NULL;
	n->red = true;
	*slot = n;
}

void tree_insert_fixup(struct tree_root *root, struct tree_node *n,
		       const struct tree_augment *aug);
void tree_erase(struct tree_root *root, struct tree_node *n,
		const struct tree_augment *aug);

/*
 * Recompute values from @n up to the root.  With @stop_early the walk ends
 * at the first node whose value did not change, which is exact when only
 * @n's own contribution changed and everything above was exact before.
 */
void tree_propagate(struct tree_node *n, const struct tree_augment *aug,
		    bool stop_early);

struct tree_node *tree_first(const struct tree_root *root);
struct tree_node *tree_next(const struct tree_node *n);

/*
 * Verify parent links, colours (no red node with a red child, a black
 * root, the same number of black nodes on every path).  Returns the black
 * height, or -1 on a violation.
 */
int tree_verify(const struct tree_root *root);

#endif /* VMAP_TREE_H */
