/* SPDX-License-Identifier: MIT */
/*
 * heap.c - lowest-fit placement, clipping and coalescing in the free heap.
 *
 * Every function runs under the lock of the heap it is given (the global
 * heap lock, or none for a purge's private heap); see heap.h.
 *
 * Cached maxima: each node holds the largest block size in its subtree,
 * so a search can skip any subtree too small for the request:
 *
 *                 [40,48) max 12
 *                /              \
 *       [0,4) max 4        [60,72) max 12
 *                          /
 *                  [50,52) max 2
 *
 * A request for 6 bytes goes right at the root without looking left.
 */
#include <errno.h>

#include "debug.h"
#include "heap.h"

static uint64_t subtree_max(const struct tree_node *n)
{
	return n ? va_of_node(n)->subtree_max : 0;
}

static uint64_t computed_max(const struct tree_node *n)
{
	uint64_t m = va_size(va_of_node(n));
	uint64_t l = subtree_max(n->left), r = subtree_max(n->right);

	if (l > m)
		m = l;
	return r > m ? r : m;
}

static bool recompute_max(struct tree_node *n)
{
	uint64_t m = computed_max(n);

	if (va_of_node(n)->subtree_max == m)
		return false;
	va_of_node(n)->subtree_max = m;
	return true;
}

static void rotate_max(struct tree_node *old_top, struct tree_node *new_top)
{
	va_of_node(new_top)->subtree_max = va_of_node(old_top)->subtree_max;
	va_of_node(old_top)->subtree_max = computed_max(old_top);
}

const struct tree_augment heap_augment = {
	.recompute = recompute_max,
	.rotate = rotate_max,
};

/* Only the lock holder writes, so load-and-store is enough. */
static void bump(atomic_uint_fast64_t *c, uint64_t delta)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + delta,
			      memory_order_relaxed);
}

void heap_init(struct heap *h)
{
	va_set_init(&h->set);
	atomic_init(&h->free_bytes, 0);
	atomic_init(&h->overlaps, 0);
}

/*
 * Where [a, a + size) would sit in @b, with a = ALIGN(max(b->start,
 * vstart), align), if it fits without wrapping past 2^64.
 */
static bool fits(const struct va *b, uint64_t size, uint64_t align,
		 uint64_t vstart, uint64_t *addr)
{
	uint64_t from = b->start > vstart ? b->start : vstart;
	uint64_t a;

	if (from > UINT64_MAX - (align - 1))
		return false;
	a = (from + align - 1) & ~(align - 1);
	if (a > UINT64_MAX - size || a + size > b->end)
		return false;
	*addr = a;
	return true;
}

uint64_t heap_search_length(uint64_t size, uint64_t align, uint64_t page,
			    uint64_t vstart, uint64_t vend)
{
	if (align <= page || vend - vstart == size)
		return size;
	return size + align - 1;
}

/*
 * An in-order walk that skips subtrees too small for @length, so it meets
 * blocks in address order and stops at the first that fits.  Two facts
 * keep it O(log n):
 *  - left of a block that starts at or below vstart lie only blocks that
 *    end at or below vstart, which cannot hold anything at or above it, so
 *    the walk never goes there;
 *  - every block of at least @length at or above vstart fits, so once the
 *    walk enters a subtree right of vstart it succeeds there; only the
 *    path towards vstart (and, for an exact window, misaligned blocks)
 *    can make it climb back.
 * Climbing back from a left child visits the parent and then the parent's
 * right subtree; climbing from a right child keeps going up.
 */
struct va *heap_lowest_fit(const struct heap *h, uint64_t size, uint64_t align,
			   uint64_t vstart, uint64_t length, uint64_t *addr)
{
	struct tree_node *n = h->set.root.top, *p;
	bool from_left;

	while (n) {
		if (vstart < va_of_node(n)->start && subtree_max(n->left) >= length) {
			n = n->left;
			continue;
		}
		for (;;) {
			if (fits(va_of_node(n), size, align, vstart, addr))
				return va_of_node(n);
			if (subtree_max(n->right) >= length) {
				n = n->right;
				break;
			}
			do {
				p = n->parent;
				if (!p)
					return NULL;
				from_left = p->left == n;
				n = p;
			} while (!from_left);
		}
	}
	return NULL;
}

static void insert_block(struct heap *h, struct va *va, struct tree_node *parent,
			 struct tree_node **slot)
{
	va_set_link(&h->set, va, parent, slot);
	va->subtree_max = va_size(va);
	if (parent)
		tree_propagate(parent, &heap_augment, true);
	tree_insert_fixup(&h->set.root, &va->node, &heap_augment);
}

/*
 * Take [a, a + size) out of block B; one of four cases:
 *
 *   whole:   |<------- B ------->|      B leaves the heap
 *            |<----- taken ----->|
 *
 *   left:    |<------- B ------->|      B.start moves up
 *            |<-taken->|
 *
 *   right:   |<------- B ------->|      B.end moves down
 *                      |<-taken->|
 *
 *   middle:  |<------- B ------->|      B keeps the left part, the spare
 *                 |<-taken->|           record the right part
 */
static void clip(struct heap *h, struct va *b, uint64_t a, uint64_t size,
		 struct va **spare, struct vlist *garbage)
{
	uint64_t end = a + size;
	struct tree_node *parent, **slot;
	struct va *right;

	VMAP_ASSERT(a >= b->start && end <= b->end);
	if (a == b->start && end == b->end) {
		va_set_erase(&h->set, b, &heap_augment);
		vlist_add_tail(&b->link, garbage);
	} else if (a == b->start) {
		b->start = end;
		tree_propagate(&b->node, &heap_augment, true);
	} else if (end == b->end) {
		b->end = a;
		tree_propagate(&b->node, &heap_augment, true);
	} else {
		right = *spare;
		*spare = NULL;
		right->start = end;
		right->end = b->end;
		right->tag = 0;
		b->end = a;
		tree_propagate(&b->node, &heap_augment, true);
		slot = va_set_slot(&h->set, right, &parent);
		insert_block(h, right, parent, slot);
	}
	bump(&h->free_bytes, -size);
}

int heap_alloc(struct heap *h, uint64_t size, uint64_t align, uint64_t page,
	       uint64_t vstart, uint64_t vend, struct va **spare,
	       struct vlist *garbage, uint64_t *start)
{
	uint64_t length = heap_search_length(size, align, page, vstart, vend);
	struct va *b;
	uint64_t a;

	b = heap_lowest_fit(h, size, align, vstart, length, &a);
	if (!b || a + size > vend)
		return -ENOMEM;
	VMAP_ASSERT(*spare);
	clip(h, b, a, size, spare, garbage);
	*start = a;
	return 0;
}

bool heap_return(struct heap *h, struct va *va, struct vlist *garbage)
{
	struct tree_node *parent, **slot;
	struct va *prev = NULL, *next = NULL, *merged = NULL;
	uint64_t size = va_size(va);

	slot = va_set_slot(&h->set, va, &parent);
	if (!slot) {
		bump(&h->overlaps, 1);
		vmap_bug("refusing to free [0x%llx, 0x%llx): it overlaps a free range",
			 (unsigned long long)va->start,
			 (unsigned long long)va->end);
		vlist_add_tail(&va->link, garbage);
		return false;
	}
	if (parent && slot == &parent->left) {
		next = va_of_node(parent);
		if (next->link.prev != &h->set.list)
			prev = va_of_link(next->link.prev);
	} else if (parent) {
		prev = va_of_node(parent);
		if (prev->link.next != &h->set.list)
			next = va_of_link(prev->link.next);
	}

	if (next && next->start == va->end) {
		next->start = va->start;
		merged = next;
	}
	if (prev && prev->end == va->start) {
		if (merged) {
			va_set_erase(&h->set, merged, &heap_augment);
			vlist_add_tail(&merged->link, garbage);
			prev->end = merged->end;
		} else {
			prev->end = va->end;
		}
		merged = prev;
	}
	if (merged) {
		vlist_add_tail(&va->link, garbage);
		tree_propagate(&merged->node, &heap_augment, true);
	} else {
		va->tag = 0;
		insert_block(h, va, parent, slot);
	}
	bump(&h->free_bytes, size);
	return true;
}

void heap_return_list(struct heap *h, struct vlist *list,
		      struct vlist *garbage)
{
	struct va *va, *tmp;

	vlist_for_each_va_safe(va, tmp, list) {
		vlist_del(&va->link);
		heap_return(h, va, garbage);
	}
}

struct va *heap_block_at_or_below(const struct heap *h, uint64_t addr)
{
	struct tree_node *n = h->set.root.top;
	struct va *va, *found = NULL;

	while (n) {
		va = va_of_node(n);
		if (va->start <= addr) {
			found = va;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return found;
}

/*
 * Top-down: start from the highest base that puts the highest end at the
 * limit, and while some area i does not lie in one free block, lower the
 * base to the highest that could fit area i in the block B at or below
 * its start: base + end_i <= B.end.  No base skipped can work: above the
 * new one, area i would cross B's end, and blocks below B end before B
 * starts.  The base only falls, so the search ends.
 *
 *   limit                                               base + end_i
 *     |      B       |xxxxxx busy xxxxx|       free      |    (area i
 *     |<---area i--->|                                        crosses
 *        base'+offs_i ^ B.end = base' + end_i                 busy)
 */
static int congruent_base(const struct heap *h, const struct pcpu_areas *a,
			  uint64_t lowest, uint64_t highest_end, uint64_t *base)
{
	uint64_t b_start, end_off;
	struct va *b;
	unsigned i;

	if (highest_end < a->last_end)
		return -ENOMEM;
	b_start = (highest_end - a->last_end) & ~(a->align - 1);
	for (i = 0; i < a->nr;) {
		if (b_start + a->first_start < lowest)
			return -ENOMEM;
		end_off = a->offsets[i] + a->sizes[i];
		b = heap_block_at_or_below(h, b_start + a->offsets[i]);
		if (!b || b->end < end_off)
			return -ENOMEM;
		if (b->end >= b_start + end_off) {
			i++;
			continue;
		}
		b_start = (b->end - end_off) & ~(a->align - 1);
		i = 0;
	}
	*base = b_start;
	return 0;
}

int heap_alloc_congruent(struct heap *h, const struct pcpu_areas *a,
			 uint64_t lowest, uint64_t highest_end,
			 struct va **spares, struct vlist *garbage,
			 uint64_t *base)
{
	uint64_t start;
	struct va *b;
	unsigned i;
	int rc;

	rc = congruent_base(h, a, lowest, highest_end, base);
	if (rc)
		return rc;
	for (i = 0; i < a->nr; i++) {
		start = *base + a->offsets[i];
		b = heap_block_at_or_below(h, start);
		VMAP_ASSERT(b && b->end >= start + a->sizes[i]);
		clip(h, b, start, a->sizes[i], &spares[i], garbage);
	}
	return 0;
}
