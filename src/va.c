/* SPDX-License-Identifier: MIT */
/*
 * va.c - range records, the address-ordered tree+list set, and the busy
 * set (tree and start index).
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

/* The descent of va_tree_slot() from @slot, whose parent is *@parent. */
static struct tree_node **slot_below(struct tree_node **slot,
				     const struct va *va,
				     struct tree_node **parent)
{
	struct va *cur;

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

struct tree_node **va_tree_slot(struct tree_root *root, const struct va *va,
				struct tree_node **parent)
{
	*parent = NULL;
	return slot_below(&root->top, va, parent);
}

/*
 * Say @va lies below @finger.  @finger's lowest ancestor A that lies
 * below @va has @finger in its right subtree, and that subtree holds
 * every range between A and the ancestor bounding it from above, so
 * @va's slot and any range @va overlaps: the descent starts at A's right
 * child.  Neighbours in address order are usually a few levels apart, so
 * a batch returned in address order climbs and descends a few levels
 * each instead of the whole height.  Above @finger, the mirror image.
 */
struct tree_node **va_tree_slot_near(struct tree_root *root,
				     const struct va *va,
				     const struct va *finger,
				     struct tree_node **parent)
{
	struct tree_node *n;

	if (finger && va_last(va) < finger->start) {
		for (n = finger->node.parent; n; n = n->parent) {
			if (va_last(va_of_node(n)) < va->start) {
				*parent = n;
				return slot_below(&n->right, va, parent);
			}
		}
	} else if (finger && va->start > va_last(finger)) {
		for (n = finger->node.parent; n; n = n->parent) {
			if (va_of_node(n)->start > va_last(va)) {
				*parent = n;
				return slot_below(&n->left, va, parent);
			}
		}
	}
	return va_tree_slot(root, va, parent);
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

	slot = va_tree_slot(&set->root, va, &parent);
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
struct va *va_tree_overlap(const struct tree_root *root, uint64_t first,
			   uint64_t last)
{
	struct tree_node *n = root->top;
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

struct va *va_tree_first_ending_after(const struct tree_root *root,
				      uint64_t addr)
{
	struct tree_node *n = root->top;
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

/*
 * Fibonacci hashing of the start: the multiplication carries the page
 * number's low bits, which vary most, into the top bits kept.
 */
static size_t bucket_of(uint64_t start, size_t nr_buckets)
{
	unsigned bits = (unsigned)__builtin_ctzll(nr_buckets);

	return (size_t)(((start ^ (start >> 32)) * 0x9e3779b97f4a7c15ull) >>
			(63 - bits) >> 1);
}

static void chain_add(struct va **buckets, size_t nr_buckets, struct va *va)
{
	struct va **head = &buckets[bucket_of(va->start, nr_buckets)];

	va->chain.next = *head;
	va->chain.pprev = head;
	if (*head)
		(*head)->chain.pprev = &va->chain.next;
	*head = va;
}

bool busy_set_init(struct busy_set *b)
{
	b->root.top = NULL;
	b->count = 0;
	b->old = NULL;
	b->nr_old = b->moved = 0;
	b->nr_buckets = BUSY_SET_MIN_BUCKETS;
	b->buckets = calloc(b->nr_buckets, sizeof(*b->buckets));
	return b->buckets != NULL;
}

/* Children before their parent: an in-order walk would climb freed nodes. */
static void delete_busy_subtree(struct tree_node *n)
{
	if (!n)
		return;
	delete_busy_subtree(n->left);
	delete_busy_subtree(n->right);
	if (va_of_node(n)->busy)
		va_delete(va_of_node(n));
}

void busy_set_fini(struct busy_set *b)
{
	delete_busy_subtree(b->root.top);
	free(b->buckets);
	free(b->old);
	b->buckets = b->old = NULL;
	b->root.top = NULL;
	b->count = 0;
}

bool busy_set_insert(struct busy_set *b, struct va *va)
{
	struct tree_node *parent, **slot;

	slot = va_tree_slot(&b->root, va, &parent);
	if (!slot)
		return false;
	tree_link(&va->node, parent, slot);
	tree_insert_fixup(&b->root, &va->node, NULL);
	va->in_busy_tree = true;
	if (va->busy)
		busy_set_revive(b, va);
	return true;
}

void busy_set_revive(struct busy_set *b, struct va *va)
{
	va->busy = true;
	chain_add(b->buckets, b->nr_buckets, va);
	b->count++;
}

/* The chain's back links make this the same in either array. */
void busy_set_idle(struct busy_set *b, struct va *va)
{
	*va->chain.pprev = va->chain.next;
	if (va->chain.next)
		va->chain.next->chain.pprev = va->chain.pprev;
	va->busy = false;
	b->count--;
}

void busy_set_erase(struct busy_set *b, struct va *va)
{
	tree_erase(&b->root, &va->node, NULL);
	va->in_busy_tree = false;
	if (va->busy)
		busy_set_idle(b, va);
}

static struct va *chain_find(struct va *va, uint64_t start)
{
	while (va && va->start != start)
		va = va->chain.next;
	return va;
}

struct va *busy_set_at(const struct busy_set *b, uint64_t start)
{
	struct va *va =
		chain_find(b->buckets[bucket_of(start, b->nr_buckets)], start);
	size_t i;

	if (va || !b->old)
		return va;
	i = bucket_of(start, b->nr_old);
	return i >= b->moved ? chain_find(b->old[i], start) : NULL;
}

/* Idle ranges inside [first, last] are stepped over one by one. */
bool busy_set_overlaps(const struct busy_set *b, uint64_t first, uint64_t last)
{
	struct va *va = va_tree_first_ending_after(&b->root, first);
	struct tree_node *n;

	while (va && !va->busy && va->start <= last) {
		n = tree_next(&va->node);
		va = n ? va_of_node(n) : NULL;
	}
	return va && va->busy && va->start <= last;
}

size_t busy_set_grow_to(const struct busy_set *b)
{
	size_t n = b->nr_buckets;

	if (b->old || b->count <= 2 * n)
		return 0;
	while (b->count > n && n <= SIZE_MAX / 2 / sizeof(*b->buckets))
		n *= 2;
	return n > b->nr_buckets ? n : 0;
}

struct va **busy_set_regrow(struct busy_set *b, struct va **buckets, size_t n)
{
	if (b->old || n <= b->nr_buckets)
		return buckets;
	b->old = b->buckets;
	b->nr_old = b->nr_buckets;
	b->moved = 0;
	b->buckets = buckets;
	b->nr_buckets = n;
	return NULL;
}

/*
 * Four buckets per insert, about eight records at the load that starts a
 * move; the move ends well before the new array fills to the next one.
 */
#define BUCKETS_MOVED_PER_INSERT 4

struct va **busy_set_migrate(struct busy_set *b)
{
	struct va **old = b->old, *va, *next;
	unsigned k;

	if (!old)
		return NULL;
	for (k = 0; k < BUCKETS_MOVED_PER_INSERT && b->moved < b->nr_old;
	     k++, b->moved++) {
		for (va = old[b->moved]; va; va = next) {
			next = va->chain.next;
			chain_add(b->buckets, b->nr_buckets, va);
		}
	}
	if (b->moved < b->nr_old)
		return NULL;
	b->old = NULL;
	b->nr_old = b->moved = 0;
	return old;
}
