/* SPDX-License-Identifier: MIT */
/*
 * heap.h - the free heap: every free block of a space, fully coalesced.
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
#ifndef VMAP_HEAP_H
#define VMAP_HEAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "va.h"

/*
 * The two counters are written under the heap's lock and atomic only so
 * that statistics can read them without it.
 */
struct heap {
	struct va_set set;
	atomic_uint_fast64_t free_bytes;
	atomic_uint_fast64_t overlaps;	/* returns refused as corrupt */
};

extern const struct tree_augment heap_augment;

void heap_init(struct heap *h);

/*
 * The lowest block in which [a, a + size) fits with a = ALIGN(max(block
 * start, vstart), align) and no overflow, searching only subtrees whose
 * largest block is at least @length (size, or size + align - 1 for large
 * alignments; see heap_search_length()).  *@addr receives a.  NULL if none.
 */
struct va *heap_lowest_fit(const struct heap *h, uint64_t size, uint64_t align,
			   uint64_t vstart, uint64_t length, uint64_t *addr);

/*
 * The length the search asks of a block (DESIGN.md section 2): any block of
 * size + align - 1 bytes fits whatever its alignment, so looking for those
 * keeps the descent from wandering into blocks that are long enough but
 * misaligned; an exact window (vend - vstart == size) asks only @size, since
 * no larger block could fit in it anyway.
 */
uint64_t heap_search_length(uint64_t size, uint64_t align, uint64_t page,
			    uint64_t vstart, uint64_t vend);

/*
 * Take the lowest fit of [vstart, vend) out of the heap.  Returns 0 and
 * *@start, or -ENOMEM.  Uses *@spare (setting it to NULL) only when the
 * range comes out of the middle of a block.
 */
int heap_alloc(struct heap *h, uint64_t size, uint64_t align, uint64_t page,
	       uint64_t vstart, uint64_t vend, struct va **spare,
	       struct vlist *garbage, uint64_t *start);

/*
 * Give @va's range back, merging with the free neighbours on either side.
 * A range overlapping a free block is a bug upstream: it is refused
 * (@va goes to @garbage, the heap is untouched, the overlap counted and
 * reported; a debug build aborts).  Returns false when refused.
 */
bool heap_return(struct heap *h, struct va *va, struct vlist *garbage);

/* heap_return() every record of @list, in order; @list ends empty. */
void heap_return_list(struct heap *h, struct vlist *list,
		      struct vlist *garbage);

/* The free block with the highest start at or below @addr, or NULL. */
struct va *heap_block_at_or_below(const struct heap *h, uint64_t addr);

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
	uint64_t first_start;	/* the lowest offset */
	uint64_t last_end;	/* the highest offset + size */
};

/*
 * Take every area of @a out of the heap at the highest base, aligned to
 * a->align, such that each lies in free space, the lowest area starts at
 * or above @lowest and the highest ends at or below @highest_end.
 * Returns 0 and *@base, or -ENOMEM with the heap untouched.  Uses
 * @spares[i] (setting it to NULL) when area i splits a block.
 */
int heap_alloc_congruent(struct heap *h, const struct pcpu_areas *a,
			 uint64_t lowest, uint64_t highest_end,
			 struct va **spares, struct vlist *garbage,
			 uint64_t *base);

#endif /* VMAP_HEAP_H */
