/* SPDX-License-Identifier: MIT */
/*
 * free_heap.h - the free heap: every free block of a space, fully coalesced.
 *
 * An augmented tree ordered by start, each node caching the largest block
 * size in its subtree, plus an address-ordered list through the same
 * records.  The functions here take no lock: the space's global heap lock
 * guards its heap; a purge's private heap (local coalescing before one
 * locked pass, DESIGN.md section 6) needs none.  Nothing here allocates
 * memory: a split needs one spare record, which the caller obtained
 * beforehand, and records that a call no longer needs go to the caller's
 * @garbage list, to be freed or reused after the lock is dropped.
 */
#ifndef VMAP_FREE_HEAP_H
#define VMAP_FREE_HEAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "va.h"

/*
 * The two counters are written under the heap's lock and atomic only so
 * that statistics can read them without it.  With @indexed, every block
 * is also in @by_size, ordered by (size, start), for best fit.
 */
struct free_heap {
	struct va_set set;
	struct tree_root by_size;
	bool indexed;
	atomic_uint_fast64_t free_bytes;
	atomic_uint_fast64_t overlaps; /* returns refused as corrupt */
};

extern const struct tree_augment free_heap_augment;

void free_heap_init(struct free_heap *h);

/* Keep a size index from now on; @h must be empty. */
void free_heap_index_enable(struct free_heap *h);

/*
 * What a search asks of the free heap.  The kernel's requests set only
 * size, align and the window; vmap_xalloc() may set everything.
 *
 * @size:	bytes, > 0.
 * @align, @phase: the start is congruent to @phase modulo @align (a power
 *		of two, @phase < @align).
 * @nocross:	0, or a power of two that no range may straddle: the
 *		caller guarantees (@phase mod @nocross) + @size <= @nocross,
 *		so that every block has a place that does not.
 * @first, @last: the window, inclusive (so that it may end at 2^64).
 * @length:	visit only blocks at least this long (see free_heap_search_length).
 * @topdown:	the highest place instead of the lowest.
 * @bestfit:	the lowest place in the smallest block that has one (lowest
 *		block among equals); needs an indexed heap.
 */
struct free_heap_fit {
	uint64_t size, align, phase, nocross;
	uint64_t first, last;
	uint64_t length;
	bool topdown, bestfit;
};

/*
 * The lowest (or highest, or best-fit) place that satisfies @f in a block
 * of at least f->length bytes.  Returns the block and *@addr, or NULL.
 */
struct va *free_heap_find(const struct free_heap *h,
			  const struct free_heap_fit *f, uint64_t *addr);

/*
 * The length the kernel's search asks of a block (DESIGN.md section 2): any block of
 * size + align - 1 bytes fits whatever its alignment, so looking for those
 * keeps the descent from wandering into blocks that are long enough but
 * misaligned; an exact window (@window_bytes == size) asks only @size,
 * since no larger block could fit in it anyway.
 */
uint64_t free_heap_search_length(uint64_t size, uint64_t align, uint64_t page,
				 uint64_t window_bytes);

/*
 * Take the place free_heap_find() chooses out of the heap.  Returns 0 and
 * *@start, or -ENOMEM.  Uses *@spare (setting it to NULL) only when the
 * range comes out of the middle of a block.
 */
int free_heap_alloc(struct free_heap *h, const struct free_heap_fit *f,
		    struct va **spare, struct vlist *garbage, uint64_t *start);

/*
 * Take exactly [@start, @start + @size) if one free block holds all of
 * it; -EEXIST (nothing changed) if not.  Same @spare rule.
 */
int free_heap_take_exact(struct free_heap *h, uint64_t start, uint64_t size,
			 struct va **spare, struct vlist *garbage);

/*
 * The zones of one node: zone z = addr >> zone_shift belongs to node
 * z % nr_nodes (see internal.h).
 */
struct zone_map {
	unsigned zone_shift, nr_nodes, node;
};

/*
 * free_heap_alloc() restricted to ranges that start in a zone of @zm's node:
 * the lowest such place that satisfies @f (a lowest-fit request, neither
 * top-down nor best fit), found in at most *@tries searches (each search
 * made is subtracted from *@tries).  Returns 0 and *@start, -ENOMEM (none
 * in the window) or -EAGAIN (the tries ran out).  Same @spare rule.
 */
int free_heap_alloc_in_node(struct free_heap *h, const struct free_heap_fit *f,
			    const struct zone_map *zm, unsigned *tries,
			    struct va **spare, struct vlist *garbage,
			    uint64_t *start);

/*
 * Give @va's range back, merging with the free neighbours on either side.
 * A range overlapping a free block is a bug upstream: it is refused
 * (@va goes to @garbage, the heap is untouched, the overlap counted and
 * reported; a debug build aborts).  Returns false when refused.
 */
bool free_heap_return(struct free_heap *h, struct va *va,
		      struct vlist *garbage);

/* free_heap_return() every record of @list, in order; @list ends empty. */
void free_heap_return_list(struct free_heap *h, struct vlist *list,
			   struct vlist *garbage);

/* The free block with the highest start at or below @addr, or NULL. */
struct va *free_heap_block_at_or_below(const struct free_heap *h,
				       uint64_t addr);

/*
 * N areas at fixed offsets from one base (the percpu allocator's
 * congruent chunks): area i is [base + offsets[i], + sizes[i]).  Checked
 * by the caller: offsets and sizes page multiples, offsets multiples of
 * @align, no two areas overlapping.
 */
struct pcpu_areas {
	const uint64_t *offsets, *sizes;
	unsigned nr;
	uint64_t align;
	uint64_t first_start; /* the lowest offset */
	uint64_t last_end;    /* the highest offset + size */
};

/*
 * Take every area of @a out of the heap at the highest base, aligned to
 * a->align, such that each lies in free space, the lowest area starts at
 * or above @lowest and the highest's last byte is at or below @highest.
 * Returns 0 and *@base, or -ENOMEM with the heap untouched.  Uses
 * @spares[i] (setting it to NULL) when area i splits a block.
 */
int free_heap_alloc_congruent(struct free_heap *h, const struct pcpu_areas *a,
			      uint64_t lowest, uint64_t highest,
			      struct va **spares, struct vlist *garbage,
			      uint64_t *base);

#endif /* VMAP_FREE_HEAP_H */
