/* SPDX-License-Identifier: MIT */
/*
 * va.c - range records and the address-ordered tree+list set.
 *
 * No locks: every function works on a set its caller holds the lock of.
 */
#include <stdlib.h>

#include "fault.h"
#include "va.h"

static struct va *va_alloc(bool indexed)
{
	struct va_indexed *vi;

	if (!indexed)
		return calloc(1, sizeof(struct va));
	vi = calloc(1, sizeof(*vi));
	if (!vi)
		return NULL;
	vi->va.indexed = true;
	return &vi->va;
}

struct va *va_new(void)
{
	if (fault_hit(FAULT_VA_ALLOC))
		return NULL;
	return va_alloc(false);
}

struct va *va_new_indexed(void)
{
	if (fault_hit(FAULT_VA_ALLOC))
		return NULL;
	return va_alloc(true);
}

/*
 * A batch is all or nothing, with one fault site, so that fault injection
 * fails each batch once rather than at each of its records.
 */
bool va_new_list(size_t n, bool indexed, struct vlist *out)
{
	struct va *va;
	size_t i;

	vlist_init(out);
	if (fault_hit(FAULT_VA_ALLOC))
		return false;
	for (i = 0; i < n; i++) {
		va = va_alloc(indexed);
		if (!va) {
			va_delete_list(out);
			return false;
		}
		vlist_add_head(&va->link, out);
	}
	return true;
}

void va_delete(struct va *va)
{
	free(va);
}

void va_delete_list(struct vlist *list)
{
	struct va *va, *tmp;

	vlist_for_each_va_safe(va, tmp, list)
		va_delete(va);
	vlist_init(list);
}

struct tree_node **va_set_slot(struct va_set *set, const struct va *va,
			       struct tree_node **parent)
{
	struct tree_node **slot = &set->root.top;
	struct va *cur;

	*parent = NULL;
	while (*slot) {
		cur = va_of_node(*slot);
		*parent = *slot;
		if (va_last(va) < cur->start)
			slot = &(*slot)->left;
		else if (va->start > va_last(cur))
			slot = &(*slot)->right;
		else
			return NULL;
	}
	return slot;
}

void va_set_link(struct va_set *set, struct va *va, struct tree_node *parent,
		 struct tree_node **slot)
{
	struct vlist *before;

	tree_link(&va->node, parent, slot);
	/*
	 * A new leaf left of its parent comes just before it in address
	 * order; right of it, just after.
	 */
	if (!parent)
		before = set->list.next;
	else if (slot == &parent->left)
		before = &va_of_node(parent)->link;
	else
		before = va_of_node(parent)->link.next;
	vlist_insert_between(&va->link, before->prev, before);
}

bool va_set_insert(struct va_set *set, struct va *va)
{
	struct tree_node *parent, **slot;

	slot = va_set_slot(set, va, &parent);
	if (!slot)
		return false;
	va_set_link(set, va, parent, slot);
	tree_insert_fixup(&set->root, &va->node, NULL);
	return true;
}

void va_set_erase(struct va_set *set, struct va *va,
		  const struct tree_augment *aug)
{
	tree_erase(&set->root, &va->node, aug);
	vlist_del(&va->link);
}

/*
 * The ranges are disjoint and ordered, so every range left of one that
 * ends before @first ends before it too: one descent finds an overlap.
 */
struct va *va_set_overlap(const struct va_set *set, uint64_t first,
			  uint64_t last)
{
	struct tree_node *n = set->root.top;
	struct va *va;

	while (n) {
		va = va_of_node(n);
		if (last < va->start)
			n = n->left;
		else if (first > va_last(va))
			n = n->right;
		else
			return va;
	}
	return NULL;
}

struct va *va_set_first_ending_after(const struct va_set *set, uint64_t addr)
{
	struct tree_node *n = set->root.top;
	struct va *va, *found = NULL;

	while (n) {
		va = va_of_node(n);
		if (va_last(va) >= addr) { /* an end may be 2^64 (0) */
			found = va;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	return found;
}

void va_set_take_all(struct va_set *set, struct vlist *out)
{
	vlist_move_all(&set->list, out);
	set->root.top = NULL;
}
