/* SPDX-License-Identifier: MIT */
/*
 * tree.c - red-black rebalancing for plain and augmented trees.
 *
 * Owns no data and takes no lock; see tree.h for the augmentation
 * contract.  NULL children are the black leaves of the textbook.
 */
#include "tree.h"

static void replace_child(struct tree_root *root, struct tree_node *parent,
			  struct tree_node *old, struct tree_node *new)
{
	if (!parent)
		root->top = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
	if (new)
		new->parent = parent;
}

/*
 *     x                 y
 *    / \               / \
 *   a   y     ==>     x   c
 *      / \           / \
 *     b   c         a   b
 */
static void rotate_left(struct tree_root *root, struct tree_node *x,
			const struct tree_augment *aug)
{
	struct tree_node *y = x->right;

	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	replace_child(root, x->parent, x, y);
	y->left = x;
	x->parent = y;
	if (aug)
		aug->rotate(x, y);
}

/* The mirror image of rotate_left(). */
static void rotate_right(struct tree_root *root, struct tree_node *x,
			 const struct tree_augment *aug)
{
	struct tree_node *y = x->left;

	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	replace_child(root, x->parent, x, y);
	y->right = x;
	x->parent = y;
	if (aug)
		aug->rotate(x, y);
}

static bool is_red(const struct tree_node *n)
{
	return n && n->red;
}

/*
 * A red leaf may sit under a red parent.  Either the uncle is red too and
 * the conflict moves two levels up by recolouring:
 *
 *        G(b)                 G(r)
 *       /    \               /    \
 *     P(r)   U(r)   ==>    P(b)   U(b)
 *     /                    /
 *   N(r)                 N(r)
 *
 * or the uncle is black and at most two rotations end it: N is first
 * brought to the outside of P, then G rotates down under P.
 */
void tree_insert_fixup(struct tree_root *root, struct tree_node *n,
		       const struct tree_augment *aug)
{
	struct tree_node *parent, *grand, *uncle;

	while ((parent = n->parent) && parent->red) {
		grand = parent->parent; /* a red node is never the root */
		if (parent == grand->left) {
			uncle = grand->right;
			if (is_red(uncle)) {
				parent->red = uncle->red = false;
				grand->red = true;
				n = grand;
				continue;
			}
			if (n == parent->right) {
				rotate_left(root, parent, aug);
				n = parent;
				parent = n->parent;
			}
			parent->red = false;
			grand->red = true;
			rotate_right(root, grand, aug);
		} else {
			uncle = grand->left;
			if (is_red(uncle)) {
				parent->red = uncle->red = false;
				grand->red = true;
				n = grand;
				continue;
			}
			if (n == parent->left) {
				rotate_right(root, parent, aug);
				n = parent;
				parent = n->parent;
			}
			parent->red = false;
			grand->red = true;
			rotate_left(root, grand, aug);
		}
	}
	root->top->red = false;
}

void tree_propagate(struct tree_node *n, const struct tree_augment *aug,
		    bool stop_early)
{
	for (; n; n = n->parent)
		if (!aug->recompute(n) && stop_early)
			break;
}

/*
 * Removing a black node leaves its replacement X "doubly black".  With S
 * its sibling under parent P, the cases (X on the left; the right side is
 * the mirror):
 *  1. S red: rotate P left so that X gets a black sibling.
 *  2. S black with two black children: paint S red; P carries the debt.
 *  3. S black, S's far child black, near child red: rotate S right, which
 *     turns it into case 4.
 *  4. S black with a red far child: rotate P left, S takes P's colour,
 *     P and the far child turn black; done.
 */
static void erase_fixup(struct tree_root *root, struct tree_node *x,
			struct tree_node *parent,
			const struct tree_augment *aug)
{
	struct tree_node *sib;

	while (x != root->top && !is_red(x)) {
		if (x == parent->left) {
			sib = parent->right;
			if (sib->red) {
				sib->red = false;
				parent->red = true;
				rotate_left(root, parent, aug);
				sib = parent->right;
			}
			if (!is_red(sib->left) && !is_red(sib->right)) {
				sib->red = true;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(sib->right)) {
				sib->left->red = false;
				sib->red = true;
				rotate_right(root, sib, aug);
				sib = parent->right;
			}
			sib->red = parent->red;
			parent->red = false;
			sib->right->red = false;
			rotate_left(root, parent, aug);
		} else {
			sib = parent->left;
			if (sib->red) {
				sib->red = false;
				parent->red = true;
				rotate_right(root, parent, aug);
				sib = parent->left;
			}
			if (!is_red(sib->left) && !is_red(sib->right)) {
				sib->red = true;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(sib->left)) {
				sib->right->red = false;
				sib->red = true;
				rotate_left(root, sib, aug);
				sib = parent->left;
			}
			sib->red = parent->red;
			parent->red = false;
			sib->left->red = false;
			rotate_right(root, parent, aug);
		}
		x = root->top;
	}
	if (x)
		x->red = false;
}

void tree_erase(struct tree_root *root, struct tree_node *n,
		const struct tree_augment *aug)
{
	struct tree_node *child, *parent, *succ;
	bool removed_black;

	if (!n->left || !n->right) {
		child = n->left ? n->left : n->right;
		parent = n->parent;
		removed_black = !n->red;
		replace_child(root, parent, n, child);
	} else {
		/*
		 * Two children: the in-order successor S (leftmost of the right
		 * subtree, so it has no left child) takes n's place and colour;
		 * S's right child takes S's old place.
		 */
		succ = n->right;
		while (succ->left)
			succ = succ->left;
		removed_black = !succ->red;
		child = succ->right;
		if (succ->parent == n) {
			parent = succ;
		} else {
			parent = succ->parent;
			replace_child(root, parent, succ, child);
			succ->right = n->right;
			succ->right->parent = succ;
		}
		replace_child(root, n->parent, n, succ);
		succ->left = n->left;
		succ->left->parent = succ;
		succ->red = n->red;
	}
	/*
	 * Every value from the lowest changed node up may have depended on
	 * the removed node, so the walk goes to the root; stopping early
	 * could leave a stale value on the moved successor above.
	 */
	if (aug)
		tree_propagate(parent, aug, false);
	if (removed_black)
		erase_fixup(root, child, parent, aug);
}

struct tree_node *tree_first(const struct tree_root *root)
{
	struct tree_node *n = root->top;

	while (n && n->left)
		n = n->left;
	return n;
}

struct tree_node *tree_next(const struct tree_node *n)
{
	struct tree_node *p;

	if (n->right) {
		n = n->right;
		while (n->left)
			n = n->left;
		return (struct tree_node *)n;
	}
	while ((p = n->parent) && n == p->right)
		n = p;
	return p;
}

static int verify_subtree(const struct tree_node *n)
{
	int l, r;

	if (!n)
		return 1;
	if ((n->left && n->left->parent != n) ||
	    (n->right && n->right->parent != n))
		return -1;
	if (n->red && (is_red(n->left) || is_red(n->right)))
		return -1;
	l = verify_subtree(n->left);
	r = verify_subtree(n->right);
	if (l < 0 || r < 0 || l != r)
		return -1;
	return l + !n->red;
}

int tree_verify(const struct tree_root *root)
{
	if (!root->top)
		return 1;
	if (root->top->red || root->top->parent)
		return -1;
	return verify_subtree(root->top);
}
