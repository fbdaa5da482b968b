/* SPDX-License-Identifier: MIT */
/*
 * free_heap.c - placement (lowest fit, and vmap_xalloc()'s constrained, complete
 * and top-down searches), clipping and coalescing in the free heap.
 *
 * Every function runs under the lock of the heap it is given (the global
 * heap lock, or none for a purge's private heap); see heap.h.
 *
 * Cached maxima: each node holds the largest block size in its subtree
 * (minus one, see size_m1()), so a search can skip any subtree too small
 * for the request (sizes drawn whole):
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
#include "free_heap.h"
#include "lock.h"

/*
 * Sizes minus one: a block of [0, 2^64) is 2^64 bytes, one more than
 * uint64_t holds (va.h), and every block holds at least one byte.
 */
static uint64_t size_m1(const struct va *va)
{
	return va->end - va->start - 1;
}

static uint64_t computed_max(const struct tree_node *n)
{
	uint64_t m = size_m1(va_of_node(n));

	if (n->left && va_of_node(n->left)->subtree_max > m)
		m = va_of_node(n->left)->subtree_max;
	if (n->right && va_of_node(n->right)->subtree_max > m)
		m = va_of_node(n->right)->subtree_max;
	return m;
}

/* Does the subtree at @n hold a block of at least @length (> 0) bytes? */
static bool holds(const struct tree_node *n, uint64_t length)
{
	return n && va_of_node(n)->subtree_max >= length - 1;
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

const struct tree_augment free_heap_augment = {
	.recompute = recompute_max,
	.rotate = rotate_max,
};

void free_heap_init(struct free_heap *h)
{
	va_set_init(&h->set);
	h->by_size.top = NULL;
	h->indexed = false;
	atomic_init(&h->free_bytes, 0);
	atomic_init(&h->overlaps, 0);
}

void free_heap_index_enable(struct free_heap *h)
{
	h->indexed = true;
}

static bool size_before(const struct va *a, const struct va *b)
{
	return size_m1(a) < size_m1(b) ||
	       (size_m1(a) == size_m1(b) && a->start < b->start);
}

/*
 * The size index follows every block whose bounds change: out before,
 * back in after (index_put).  A plain tree: no cached values.
 */
static void index_take(struct free_heap *h, struct va *b)
{
	if (h->indexed)
		tree_erase(&h->by_size, va_size_node(b), NULL);
}

static void index_put(struct free_heap *h, struct va *b)
{
	struct tree_node **slot = &h->by_size.top, *parent = NULL;

	if (!h->indexed)
		return;
	VMAP_ASSERT(b->indexed);
	while (*slot) {
		parent = *slot;
		if (size_before(b, va_of_size_node(parent)))
			slot = &parent->left;
		else
			slot = &parent->right;
	}
	tree_link(va_size_node(b), parent, slot);
	tree_insert_fixup(&h->by_size, va_size_node(b), NULL);
}

static bool crosses(const struct free_heap_fit *f, uint64_t a)
{
	return f->nocross && ((a ^ (a + f->size - 1)) & ~(f->nocross - 1));
}

/*
 * The lowest place in [lo, last] (lo <= last, inclusive so that it may
 * end at 2^64).  The first congruent address either fits or straddles one
 * multiple of nocross; the first congruent address above that multiple
 * then sits at offset phase mod nocross in its stretch, which the caller
 * guaranteed to hold the range.  Every step checks for wrapping past 2^64.
 */
static bool place_low(const struct free_heap_fit *f, uint64_t lo, uint64_t last,
		      uint64_t *addr)
{
	uint64_t a, gap = (f->phase - lo) & (f->align - 1);

	if (gap > last - lo)
		return false;
	a = lo + gap;
	if (f->size - 1 > last - a)
		return false;
	if (crosses(f, a)) {
		a = (a | (f->nocross - 1)) + 1;
		gap = (f->phase - a) & (f->align - 1);
		if (a > last || gap > last - a)
			return false;
		a += gap;
		if (f->size - 1 > last - a)
			return false;
	}
	*addr = a;
	return true;
}

/* The mirror image of place_low(): the highest place in [lo, last]. */
static bool place_high(const struct free_heap_fit *f, uint64_t lo,
		       uint64_t last, uint64_t *addr)
{
	uint64_t a, boundary;

	if (f->size - 1 > last - lo)
		return false;
	a = last - (f->size - 1);
	a -= (a - f->phase) & (f->align - 1);
	if (a < lo || a > last) /* below lo, or wrapped below 0 */
		return false;
	if (crosses(f, a)) {
		boundary = (a + f->size - 1) & ~(f->nocross - 1);
		if (boundary - lo < f->size)
			return false;
		a = boundary - f->size;
		a -= (a - f->phase) & (f->align - 1);
		if (a < lo || a > last)
			return false;
	}
	*addr = a;
	return true;
}

/* Where @f places its range in block @b, clipped to the window. */
static bool place(const struct free_heap_fit *f, const struct va *b,
		  uint64_t *addr)
{
	uint64_t lo = b->start > f->first ? b->start : f->first;
	uint64_t last = va_last(b) < f->last ? va_last(b) : f->last;

	if (lo > last)
		return false;
	return f->topdown ? place_high(f, lo, last, addr) :
			    place_low(f, lo, last, addr);
}

uint64_t free_heap_search_length(uint64_t size, uint64_t align, uint64_t page,
				 uint64_t window_bytes)
{
	if (align <= page || window_bytes == size)
		return size;
	return size + align - 1;
}

/*
 * Blocks before and after @n in the walk's order: by address upwards, or
 * downwards for a top-down search.
 */
static struct tree_node *before(const struct free_heap_fit *f,
				const struct tree_node *n)
{
	return f->topdown ? n->right : n->left;
}

static struct tree_node *after(const struct free_heap_fit *f,
			       const struct tree_node *n)
{
	return f->topdown ? n->left : n->right;
}

/* Can a block before @n in the walk's order still reach the window? */
static bool before_reaches(const struct free_heap_fit *f, const struct va *n)
{
	return f->topdown ? va_last(n) < f->last : f->first < n->start;
}

/* Is @n, and so everything after it, past the window? */
static bool past_window(const struct free_heap_fit *f, const struct va *n)
{
	return f->topdown ? va_last(n) < f->first : n->start > f->last;
}

/*
 * An in-order walk (reversed for top-down) that skips subtrees with no
 * block of f->length bytes, so it meets blocks in the order of the
 * search and stops at the first with a place.
 *  - It never descends towards blocks that lie wholly before the window,
 *    and stops at the first block wholly past it.
 *  - For the kernel's requests every block of f->length bytes in the
 *    window has a place, so once the walk enters a subtree inside the
 *    window it succeeds there: O(log n).
 *  - With f->length == size (vmap_xalloc's complete searches) blocks that
 *    are long enough may still have no place (alignment, phase, no-cross,
 *    the window's edge).  Each such block costs at most one climb and one
 *    descent: O((k + 1) log n) for k such blocks met before the answer.
 * Climbing back from a "before" child visits the parent and then the
 * parent's "after" subtree; climbing from an "after" child keeps going up.
 */
/*
 * Best fit: the first block of at least f->size bytes in (size, start)
 * order, found in one descent, then the index in order until a block has
 * a place: O(log n + k) for the k blocks of enough size that have none
 * (misaligned, outside the window, cut by no-cross).
 */
static struct va *best_fit(const struct free_heap *h,
			   const struct free_heap_fit *f, uint64_t *addr)
{
	struct tree_node *n = h->by_size.top, *first = NULL;
	struct va *b;

	while (n) {
		b = va_of_size_node(n);
		if (size_m1(b) >= f->size - 1) {
			first = n;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	for (n = first; n; n = tree_next(n)) {
		b = va_of_size_node(n);
		if (place(f, b, addr))
			return b;
	}
	return NULL;
}

struct va *free_heap_find(const struct free_heap *h,
			  const struct free_heap_fit *f, uint64_t *addr)
{
	struct tree_node *n = h->set.root.top, *p;
	bool from_before;

	if (f->bestfit)
		return best_fit(h, f, addr);
	while (n) {
		if (before_reaches(f, va_of_node(n)) &&
		    holds(before(f, n), f->length)) {
			n = before(f, n);
			continue;
		}
		for (;;) {
			if (past_window(f, va_of_node(n)))
				return NULL;
			if (place(f, va_of_node(n), addr))
				return va_of_node(n);
			if (holds(after(f, n), f->length)) {
				n = after(f, n);
				break;
			}
			do {
				p = n->parent;
				if (!p)
					return NULL;
				from_before = before(f, p) == n;
				n = p;
			} while (!from_before);
		}
	}
	return NULL;
}

static void insert_block(struct free_heap *h, struct va *va,
			 struct tree_node *parent, struct tree_node **slot)
{
	va_set_link(&h->set, va, parent, slot);
	va->subtree_max = size_m1(va);
	if (parent)
		tree_propagate(parent, &free_heap_augment, true);
	tree_insert_fixup(&h->set.root, &va->node, &free_heap_augment);
	index_put(h, va);
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
static void clip(struct free_heap *h, struct va *b, uint64_t a, uint64_t size,
		 struct va **spare, struct vlist *garbage)
{
	uint64_t end = a + size; /* 0 for a range that ends at 2^64 */
	bool whole = a == b->start && end == b->end;
	struct tree_node *parent, **slot;
	struct va *right;

	VMAP_ASSERT(a >= b->start && a + (size - 1) <= va_last(b));
	index_take(h, b);
	if (whole) {
		va_set_erase(&h->set, b, &free_heap_augment);
		vlist_add_tail(&b->link, garbage);
	} else if (a == b->start) {
		b->start = end;
		tree_propagate(&b->node, &free_heap_augment, true);
	} else if (end == b->end) {
		b->end = a;
		tree_propagate(&b->node, &free_heap_augment, true);
	} else {
		right = *spare;
		*spare = NULL;
		right->start = end;
		right->end = b->end;
		right->tag = 0;
		b->end = a;
		tree_propagate(&b->node, &free_heap_augment, true);
		slot = va_tree_slot(&h->set.root, right, &parent);
		insert_block(h, right, parent, slot);
	}
	if (!whole)
		index_put(h, b);
	counter_add(&h->free_bytes, -size);
}

int free_heap_alloc(struct free_heap *h, const struct free_heap_fit *f,
		    struct va **spare, struct vlist *garbage, uint64_t *start)
{
	struct va *b;
	uint64_t a;

	b = free_heap_find(h, f, &a);
	if (!b)
		return -ENOMEM;
	VMAP_ASSERT(*spare);
	clip(h, b, a, f->size, spare, garbage);
	*start = a;
	return 0;
}

int free_heap_take_exact(struct free_heap *h, uint64_t start, uint64_t size,
			 struct va **spare, struct vlist *garbage)
{
	struct va *b = va_tree_find(&h->set.root, start);

	if (!b || size - 1 > va_last(b) - start)
		return -EEXIST;
	VMAP_ASSERT(*spare);
	clip(h, b, start, size, spare, garbage);
	return 0;
}

/*
 * Each try is one free_heap_find(); a place in another node's zone moves the
 * window's first byte up to the next zone of @zm's node.  A heap
 * fragmented into many blocks inside other nodes' zones can cost a try
 * per block, hence the caller's budget.
 */
int free_heap_alloc_in_node(struct free_heap *h, const struct free_heap_fit *f,
			    const struct zone_map *zm, unsigned *tries,
			    struct va **spare, struct vlist *garbage,
			    uint64_t *start)
{
	struct free_heap_fit w = *f;
	uint64_t a, zone, next;
	struct va *b;

	VMAP_ASSERT(!f->topdown && !f->bestfit);
	while (*tries) {
		--*tries;
		b = free_heap_find(h, &w, &a);
		if (!b)
			return -ENOMEM;
		zone = a >> zm->zone_shift;
		if (zone % zm->nr_nodes == zm->node) {
			VMAP_ASSERT(*spare);
			clip(h, b, a, w.size, spare, garbage);
			*start = a;
			return 0;
		}
		next = zone + (zm->node + zm->nr_nodes - zone % zm->nr_nodes) %
				      zm->nr_nodes;
		/* The next own zone may lie past 2^64 or past the window. */
		if (next > (UINT64_MAX >> zm->zone_shift) ||
		    (next << zm->zone_shift) > w.last)
			return -ENOMEM;
		w.first = next << zm->zone_shift;
	}
	return -EAGAIN;
}

/*
 * free_heap_return(), searching from *@finger (a block of the heap, or
 * NULL) and leaving there the block that @va went into.
 */
static bool return_near(struct free_heap *h, struct va *va,
			struct vlist *garbage, struct va **finger)
{
	struct tree_node *parent, **slot;
	struct va *prev = NULL, *next = NULL, *merged = NULL;
	uint64_t size = va_size(va);

	slot = va_tree_slot_near(&h->set.root, va, *finger, &parent);
	if (!slot) {
		counter_add(&h->overlaps, 1);
		vmap_bug(
			"refusing to free [0x%llx, 0x%llx): it overlaps a free range",
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
		index_take(h, next);
		next->start = va->start;
		merged = next;
	}
	if (prev && prev->end == va->start) {
		index_take(h, prev);
		if (merged) {
			va_set_erase(&h->set, merged, &free_heap_augment);
			vlist_add_tail(&merged->link, garbage);
			prev->end = merged->end;
		} else {
			prev->end = va->end;
		}
		merged = prev;
	}
	if (merged) {
		vlist_add_tail(&va->link, garbage);
		tree_propagate(&merged->node, &free_heap_augment, true);
		index_put(h, merged);
		*finger = merged;
	} else {
		va->tag = 0;
		insert_block(h, va, parent, slot);
		*finger = va;
	}
	counter_add(&h->free_bytes, size);
	return true;
}

bool free_heap_return(struct free_heap *h, struct va *va, struct vlist *garbage)
{
	struct va *finger = NULL;

	return return_near(h, va, garbage, &finger);
}

/*
 * Each search starts from the block the previous range went into: a
 * purge's lazy ranges, freed in address order by many programs, and a
 * decay's, coalesced in address order first, then sit a few levels
 * apart in the heap's tree.
 */
void free_heap_return_list(struct free_heap *h, struct vlist *list,
			   struct vlist *garbage)
{
	struct va *va, *tmp, *finger = NULL;

	vlist_for_each_va_safe(va, tmp, list) {
		vlist_del(&va->link);
		return_near(h, va, garbage, &finger);
	}
}

struct va *free_heap_block_at_or_below(const struct free_heap *h, uint64_t addr)
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
 * space's end, and while some area i does not lie in one free block,
 * lower the base to the highest that could fit area i in the block B at
 * or below its start: base + end_i <= B.end (compared as last bytes).  No base skipped can work: above the
 * new one, area i would cross B's end, and blocks below B end before B
 * starts.  The base only falls, so the search ends.
 *
 *   limit                                               base + end_i
 *     |      B       |xxxxxx busy xxxxx|       free      |    (area i
 *     |<---area i--->|                                        crosses
 *        base'+offs_i ^ B.end = base' + end_i                 busy)
 */
static int congruent_base(const struct free_heap *h, const struct pcpu_areas *a,
			  uint64_t lowest, uint64_t highest, uint64_t *base)
{
	uint64_t b_start, last_off;
	struct va *b;
	unsigned i;

	if (highest < a->last_end - 1)
		return -ENOMEM;
	b_start = (highest - (a->last_end - 1)) & ~(a->align - 1);
	for (i = 0; i < a->nr;) {
		if (b_start + a->first_start < lowest)
			return -ENOMEM;
		/* Lasts, not ends: a block may end at 2^64 (end 0). */
		last_off = a->offsets[i] + a->sizes[i] - 1;
		b = free_heap_block_at_or_below(h, b_start + a->offsets[i]);
		if (!b || va_last(b) < last_off)
			return -ENOMEM;
		if (va_last(b) >= b_start + last_off) {
			i++;
			continue;
		}
		b_start = (va_last(b) - last_off) & ~(a->align - 1);
		i = 0;
	}
	*base = b_start;
	return 0;
}

int free_heap_alloc_congruent(struct free_heap *h, const struct pcpu_areas *a,
			      uint64_t lowest, uint64_t highest,
			      struct va **spares, struct vlist *garbage,
			      uint64_t *base)
{
	uint64_t start;
	struct va *b;
	unsigned i;
	int rc;

	rc = congruent_base(h, a, lowest, highest, base);
	if (rc)
		return rc;
	for (i = 0; i < a->nr; i++) {
		start = *base + a->offsets[i];
		b = free_heap_block_at_or_below(h, start);
		VMAP_ASSERT(b && va_last(b) >= start + (a->sizes[i] - 1));
		clip(h, b, start, a->sizes[i], &spares[i], garbage);
	}
	return 0;
}
