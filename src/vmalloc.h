/* SPDX-License-Identifier: MIT */
/*
 * vmalloc.h - struct vmap_heap, shared by the files of the vmalloc layer:
 * vmalloc.c (areas of anonymous memory), vmap_pages.c (the page pool and
 * vmap), vmap_block.c (vm_map_ram's per-CPU blocks), vread.c and rcu.c.
 *
 * The layer uses the space through the public API only.  Its own locks,
 * which rank below the space's busy locks (see internal.h), in order:
 *
 *   block queue lock  >  block lock  >  spare-record lock     (vmap_block.c)
 *   page pool lock                                            (vmap_pages.c)
 *   extras_lock: only while creating the pool or the blocks' state
 *
 * Across fork() the fork handlers (fork.c, through fork.h's hooks) take
 * them all, for every live heap, after every lock of every space: the
 * list of heaps' lock, then per heap extras_lock, the block locks in the
 * order above, the page pool lock.
 */
#ifndef VMAP_VMALLOC_H
#define VMAP_VMALLOC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "track.h"
#include "vmap.h"

#define DEFAULT_RESERVE (64ull << 30)

/*
 * What an area of the heap is, kept in the top byte of its range's user
 * word (the rest is the caller's address, which fits in 56 bits on every
 * Linux ABI), so that it travels with the range under the space's locks.
 */
enum area_kind {
	AREA_VMALLOC = 0,
	AREA_VMAP = 1,	       /* vmap() of pool pages, with a guard */
	AREA_VM_MAP_RAM = 2,   /* vm_map_ram() too large for a block */
	AREA_VMAP_BLOCK = 3,   /* a block that vm_map_ram() carves */
	AREA_VMALLOC_USER = 4, /* vmalloc_user(): the kernel's VM_USERMAP */
};
#define AREA_KIND_SHIFT 56

static inline uint64_t area_user(enum area_kind kind, const void *caller)
{
	return ((uint64_t)kind << AREA_KIND_SHIFT) |
	       ((uint64_t)(uintptr_t)caller & ((1ull << AREA_KIND_SHIFT) - 1));
}

static inline enum area_kind area_kind_of(uint64_t user)
{
	return (enum area_kind)(user >> AREA_KIND_SHIFT);
}

static inline uint64_t area_caller_of(uint64_t user)
{
	return user & ((1ull << AREA_KIND_SHIFT) - 1);
}

enum { PAGE_AS_RESERVED, PAGE_CHANGED, PAGE_UNKNOWN };

struct vmap_heap {
	struct vmap_space *space;
	uint64_t base, size;
	uint64_t page;
	unsigned flags;
	bool markers; /* guard markers, else mprotect */
	/*
	 * Per page: PAGE_AS_RESERVED, PAGE_CHANGED (read-write under
	 * mprotect, a guard marker with markers) or PAGE_UNKNOWN (a failed
	 * mprotect may have changed part of its range: set again when used).
	 */
	unsigned char *changed;
	atomic_uint_fast64_t sys_mprotect, sys_madvise, sys_guard, sys_remap;
	atomic_uint_fast64_t released_runs, released_bytes;
	atomic_uint_fast64_t
		sys_mmap; /* pages mapped and reservation put back */
	/*
	 * Areas of other kinds than vmalloc's made so far: while 0, vfree()
	 * need not look up the kind of what it frees.
	 */
	atomic_uint_fast64_t mapped_areas;
	/* Created on first use (heap_extra()): a struct page_pool and a
	 * struct block_state. */
	pthread_mutex_t extras_lock;
	void *_Atomic pool;
	void *_Atomic blocks;
	atomic_bool rcu_used; /* a vfree_rcu() was queued */
	/*
	 * Under a memory checker: the end of the highest range poisoned so
	 * far, so that destroy unpoisons only [base, poisoned_end) and not
	 * the whole reservation (which costs ASan gigabytes of shadow).
	 */
	atomic_uint_fast64_t poisoned_end;
	/* Live heaps, for fork (vmalloc.c), under heaps_lock there. */
	struct vmap_heap *fork_prev, *fork_next;
};

static inline uint64_t guard_bytes(const struct vmap_heap *h)
{
	return (h->flags & VMAP_HEAP_NO_GUARD) ? 0 : h->page;
}

/* Tell the memory checker [addr, addr + len) must not be touched. */
static inline void heap_poison(struct vmap_heap *h, uint64_t addr, uint64_t len)
{
	uint64_t end;

	if (!track_enabled)
		return;
	track_freed((void *)(uintptr_t)addr, len);
	end = atomic_load_explicit(&h->poisoned_end, memory_order_relaxed);
	while (end < addr + len &&
	       !atomic_compare_exchange_weak_explicit(
		       &h->poisoned_end, &end, addr + len, memory_order_relaxed,
		       memory_order_relaxed))
		;
}

/* vmalloc.c */
void heap_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *heap_extra(struct vmap_heap *h, void *_Atomic *slot,
		 void *(*create)(struct vmap_heap *h), bool create_now);
int heap_set_pages(struct vmap_heap *h, uint64_t first, uint64_t n,
		   bool usable);
uint64_t heap_body_of(const struct vmap_heap *h, uint64_t start);
int heap_guard_area(struct vmap_heap *h, uint64_t start, uint64_t body_pages);

/* vmap_pages.c */
int pages_map(struct vmap_heap *h, uint64_t addr, const uint64_t *pages,
	      size_t count);
int pages_unmap(struct vmap_heap *h, uint64_t addr, uint64_t len);
int pages_check(struct vmap_heap *h, const uint64_t *pages, size_t count);
void pages_destroy(struct vmap_heap *h);
void pages_fork_lock(struct vmap_heap *h);
void pages_fork_unlock(struct vmap_heap *h);

/* vmap_block.c */
void blocks_destroy(struct vmap_heap *h);
void blocks_fork_lock(struct vmap_heap *h);
void blocks_fork_unlock(struct vmap_heap *h);
void blocks_fork_child(struct vmap_heap *h);
int blocks_check(struct vmap_heap *h, char *msg, size_t len);
void blocks_read(struct vmap_heap *h, uint64_t start, uint64_t from,
		 uint64_t to, char *buf, uint64_t buf_addr);

/* vread.c */
void vread_pages(uint64_t from, uint64_t to, char *buf, uint64_t buf_addr);

/* rcu.c */
void rcu_heap_drain(struct vmap_heap *h);

#endif /* VMAP_VMALLOC_H */
