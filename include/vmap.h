/* SPDX-License-Identifier: MIT */
/*
 * vmap.h - a concurrent allocator of address ranges, after the Linux 6.9
 * vmalloc address-space allocator ("vmap nodes").
 *
 * A *space* hands out page-aligned ranges [start, end) of an integer
 * interval [base, limit).  Nothing is mapped: the space only decides where
 * things go.  A space may reach the top of the 64-bit range: wherever an
 * end or a limit of 2^64 is reported or given, it reads 0.  Freed ranges
 * become *lazy* and are reused only after a *purge*, which calls the
 * space's flush callback once for all of them (the
 * kernel's batched TLB flush).  With more than one node, each CPU keeps
 * pools of recently purged ranges so that a steady stream of allocations
 * and frees rarely takes the one global lock.
 *
 * Conventions:
 *  - Every function returning int returns 0 or a negative errno.  Results
 *    come back through out-parameters, because 0 and every other integer
 *    can be a valid address in a space.
 *  - A call that fails leaves the space exactly as it was: vmap_check()
 *    passes afterwards.
 *  - Every function is thread-safe unless it says otherwise.
 *  - No function is a cancellation point.  Where a call can wait (the
 *    purge mutex, purge helpers, the user's flush, release and notifier
 *    callbacks, writing to a stream), the calling thread's cancellation
 *    is disabled for that time and restored before the call returns, so
 *    a deferred cancel acts at the caller's next cancellation point, with
 *    no lock of the library held.  Callbacks run with cancellation
 *    disabled.
 *  - Threads: the library starts worker threads on demand (drain purges
 *    after frees cross a space's threshold, and purge helpers), shared by
 *    every space of the process and never more than the online CPUs
 *    (at most 128).  They live until the process exits.  Per-thread
 *    state is released at thread exit; allocating and freeing from any
 *    thread-specific-data destructor, before or after the library's own,
 *    is supported.
 *  - fork(): both parent and child may go on using every space and heap
 *    (allocate, free, purge, shrink, destroy, vmalloc/vfree).  The fork
 *    handlers take every lock of every live space before the fork, so no
 *    structure is copied mid-update; in the child, ranges that other
 *    threads of the parent held stay busy until the child frees them, and
 *    worker threads start again on demand.  Not supported: fork() from
 *    inside a flush, release or notifier callback, or while a callback of
 *    one space is calling into another space.
 */
#ifndef VMAP_H
#define VMAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMAP_VERSION_MAJOR 0
#define VMAP_VERSION_MINOR 1
#define VMAP_VERSION_PATCH 0
#define VMAP_VERSION                                                           \
	((VMAP_VERSION_MAJOR << 16) | (VMAP_VERSION_MINOR << 8) |              \
	 VMAP_VERSION_PATCH)

#if defined(_WIN32)
#define VMAP_API
#else
#define VMAP_API __attribute__((visibility("default")))
#endif

/* The library's version, (major << 16) | (minor << 8) | patch. */
VMAP_API unsigned vmap_version(void);

/* The same as a string, "0.1.0". */
VMAP_API const char *vmap_version_string(void);

/* ------------------------------------------------------------------------
 * Spaces
 */

/* Opaque: one independent allocator over [base, limit). */
struct vmap_space;

/*
 * Called once per purge, with the one range [start, end) that covers every
 * lazy range being purged, before any of them can be handed out again.  It
 * may also cover busy ranges lying between them: it is a flush, not a
 * release.  Called with the space's purge mutex held; it must not call back
 * into the same space.
 */
typedef void (*vmap_flush_fn)(void *cookie, uint64_t start, uint64_t end);

/*
 * Called during a purge for each maximal run [start, end) of adjacent lazy
 * ranges being purged (across all nodes), after the flush and before any
 * of them can be handed out again.  This is where a user that backs ranges
 * with memory releases it (the vmalloc layer does).  Called by the purging
 * thread with the purge mutex held; must not call back into the same
 * space.
 */
typedef void (*vmap_release_fn)(void *cookie, uint64_t start, uint64_t end);

/*
 * Called when an allocation finds no room even after a purge, to bring in
 * a new span of @size bytes (a multiple of the space's quantum) from a
 * source; on success *@base receives its start, a page multiple, and the
 * call returns 0, else a negative errno (the allocation then fails with
 * -ENOMEM).  Called with no lock of the space held; it may block.
 */
typedef int (*vmap_import_fn)(void *cookie, uint64_t size, uint64_t *base);

/*
 * Called by vmap_shrink() for each imported span that is wholly free,
 * after it left the space, and by vmap_space_destroy() for every imported
 * span: give [@base, @base + @size) back to the source.
 */
typedef void (*vmap_release_span_fn)(void *cookie, uint64_t base,
				     uint64_t size);

/* vmap_params.flags */
enum {
	/*
	 * Deterministic mode: a free that takes the lazy count over the
	 * threshold purges synchronously inside the call, purge helpers run
	 * inline, and allocations use the node of CPU 0 unless the thread
	 * set another with vmap_set_thread_cpu(), and the default
	 * lazy_max_pages counts one CPU.  For replay and tests: the same
	 * calls give the same addresses on every machine.
	 */
	VMAP_DETERMINISTIC = 1u << 0,
	/*
	 * With VMAP_KERNEL_POOLS: tag an allocation taken from the global
	 * heap with the node of its address instead of the node of the
	 * allocating CPU (the alternative discussed in review of the kernel
	 * series; the kernel's choice otherwise).  The tag decides which
	 * node's lazy set and pools the range goes to when freed.  The
	 * default pools (without VMAP_KERNEL_POOLS) always tag by address.
	 */
	VMAP_TAG_BY_ADDRESS = 1u << 1,
	/*
	 * Frees are immediate: vmap_free() makes the range reusable before
	 * it returns.  No range is ever lazy, the flush callback is never
	 * called, and the release callback is called by vmap_free() for the
	 * range it frees.  Pools are not used.  For users with no TLB-like
	 * flush to batch (GPU VA managers, hypervisors, arenas).
	 */
	VMAP_IMMEDIATE_FREE = 1u << 2,
	/*
	 * Keep the free blocks in a second tree, ordered by size, so that
	 * vmap_xalloc() can take VMAP_BESTFIT.  Costs, in this space only,
	 * a second tree insert and erase on every change to the free heap
	 * and 32 more bytes per range record (docs/DESIGN.md section 16).
	 */
	VMAP_BESTFIT_INDEX = 1u << 3,
	/*
	 * Pools filled by purges only, as in the kernel: an allocation
	 * that misses its pool takes one range from the global heap,
	 * wherever it lies.  By default a miss refills the pool instead
	 * with a batch of ranges that start in the CPU's own node's zones,
	 * taken under one heap lock acquisition, so that pools do not wait
	 * for the drain and a CPU's ranges take only its own node's locks
	 * (docs/DESIGN.md section 17).  The default also bounds what
	 * waits for a purge: a purge adds to a size class's pools only
	 * while they hold less than 2 * lazy_max_pages pages over all
	 * nodes (the rest goes to the global heap), and some frees purge
	 * themselves (vmap_free()).  With this flag neither applies, as in
	 * the kernel, a one-node space has no pools, and a free takes its
	 * range out of its node's busy tree (by default it stays there,
	 * idle, until it goes back to the global heap, so that a pool hit
	 * descends no tree).  vmap-replay and the node tests use this for
	 * the kernel's exact placement.
	 */
	VMAP_KERNEL_POOLS = 1u << 4,
};

/*
 * Parameters of a space.  The zero value of every field means the default;
 * reserved fields must be zero (vmap_space_create() returns -EINVAL
 * otherwise), so that fields can be added later without breaking callers.
 */
struct vmap_params {
	/*
	 * log2 of the page (granule) size, 12..30; 0 = 12 (4096 bytes), or
	 * whatever @granule says.
	 */
	uint32_t page_shift;
	/*
	 * Number of vmap nodes, 1..128; 0 = the number of online CPUs clamped
	 * to that range.  1 is one global heap; with VMAP_KERNEL_POOLS it is
	 * the design before the node series, without pools, and without the
	 * flag the one node keeps the default pools, whose hits spare the
	 * heap's search, split and merge.  As with more nodes, pooled ranges
	 * serve whole-space vmap_alloc() requests only: a windowed or
	 * vmap_xalloc() request that may not purge (VMAP_NONBLOCK,
	 * VMAP_NOPURGE) does not see them until a decay or a full purge
	 * gives them back.
	 */
	uint32_t nr_nodes;
	/*
	 * Lazy pages that may accumulate before a free starts a purge; 0 =
	 * the kernel's formula fls(nr_cpus) * (32 MiB / page size), with
	 * nr_cpus = 1 under VMAP_DETERMINISTIC.  vmap_space_info() reports
	 * the value in use.  Unless VMAP_KERNEL_POOLS or VMAP_DETERMINISTIC,
	 * each node's frees count their pages a batch at a time (up to
	 * lazy_max_pages / 8 over all nodes), so a purge may start up to an
	 * eighth of it late.
	 */
	uint64_t lazy_max_pages;
	/*
	 * VMAP_DETERMINISTIC, VMAP_TAG_BY_ADDRESS, VMAP_IMMEDIATE_FREE,
	 * VMAP_BESTFIT_INDEX, VMAP_KERNEL_POOLS.
	 */
	uint32_t flags;
	uint32_t reserved0;
	vmap_flush_fn flush; /* may be NULL */
	void *flush_cookie;
	vmap_release_fn release; /* may be NULL */
	void *release_cookie;
	/*
	 * The granule in bytes, any power of two from 1 to 2^30 (1 GiB); 0 =
	 * 1 << page_shift.  Where both are set they must agree.  Sizes,
	 * alignments, and the bounds of spaces, windows and reservations are
	 * multiples of it; "page" in this header means the granule.
	 */
	uint64_t granule;
	/*
	 * A source to import spans from, as vmem arenas do: both callbacks
	 * or neither, and @quantum, the unit of import (a power of two and
	 * a page multiple; 0 without a source).  An allocation that finds
	 * no room after the usual purge imports max(size, quantum) rounded
	 * up to the quantum (plus the alignment beyond the quantum) and
	 * retries once.  vmap_space_create_child() fills these in.
	 */
	vmap_import_fn import;
	vmap_release_span_fn release_span;
	void *import_cookie;
	uint64_t quantum;
	uint64_t reserved[1];
};

/*
 * vmap_space_create - create a space over [base, limit).
 * @base, @limit: page aligned, base < limit; @limit 0 means 2^64, so
 *	[0, 2^64) and [4096, 2^64) are spaces.
 * @params: NULL for all defaults.
 * @out: receives the space.
 *
 * Recording: when the environment variable VMAP_TRACE names a file (and
 * the program is not set-user-ID), the space writes every call that
 * changes it, and every purge, to that file in vmap-replay's format, with
 * the calling CPU and thread and a timestamp (docs/DESIGN.md section 10).
 * The first space created in the process writes to the name as given,
 * the n-th to "NAME.n".  While it records, the space's changing calls
 * are serialised.
 *
 * Returns 0, -EINVAL (bad bounds, page shift or granule, node count,
 * flags, import callbacks without each other or without a valid quantum,
 * or a non-zero reserved field), -ENOMEM, or the negative errno of
 * opening VMAP_TRACE's file (-ENOENT, -EACCES, ...).  May block (allocates
 * memory).
 */
VMAP_API int vmap_space_create(uint64_t base, uint64_t limit,
			       const struct vmap_params *params,
			       struct vmap_space **out);

/*
 * vmap_space_add - add the span [@base, @limit) of free space (vmem_add).
 * A space is the union of its spans: allocations land in any span, never
 * across a gap between two (adjacent spans have no gap between them).
 * @base, @limit: page multiples, @base < @limit (@limit 0: 2^64), sharing
 *	no byte with a span of the space.
 *
 * Returns 0, -EINVAL (NULL @space, bad bounds, overlap with a span) or
 * -ENOMEM.  Takes the heap lock; may block (allocates memory).
 */
VMAP_API int vmap_space_add(struct vmap_space *space, uint64_t base,
			    uint64_t limit);

/*
 * vmap_space_create_child - a space with no span of its own that imports
 * its spans from @parent, @quantum bytes at a time or more: vmap_xalloc()
 * in @parent aligned to @quantum, given back with vmap_free() when
 * vmap_shrink() finds one wholly free or the child is destroyed (per-
 * context GPU address spaces carved from a device-wide one).  The parent
 * must outlive the child.  Windows in the child are not checked against
 * its spans (an import may bring any range).
 * @quantum: a power of two, a page multiple of both spaces.
 * @params: as vmap_space_create(), NULL for defaults; its import fields
 *	must be zero.
 *
 * Returns 0, -EINVAL (NULL @parent or @out, a bad @quantum, bad @params)
 * or -ENOMEM.  May block.
 */
VMAP_API int vmap_space_create_child(struct vmap_space *parent,
				     uint64_t quantum,
				     const struct vmap_params *params,
				     struct vmap_space **out);

/*
 * vmap_space_destroy - stop the space's threads and free everything it
 * owns.  Ranges still busy are forgotten; imported spans are given back.
 * No other call on the space may be in flight or follow.  NULL is a no-op.
 */
VMAP_API void vmap_space_destroy(struct vmap_space *space);

/*
 * What a space was created with, after defaults were applied; base and
 * limit bound every span it has had (a child: 0 and 0).
 */
struct vmap_space_info {
	uint64_t base, limit; /* limit 0: 2^64 */
	uint64_t page_size;
	uint64_t lazy_max_pages;
	uint32_t nr_nodes;
	uint32_t flags;
};

/* vmap_space_info - fill @info.  Returns 0 or -EINVAL (a NULL argument). */
VMAP_API int vmap_space_info(const struct vmap_space *space,
			     struct vmap_space_info *info);

/* ------------------------------------------------------------------------
 * Ranges
 */

/* vmap_alloc() flags */
enum {
	/*
	 * Never wait for a purge: where the request does not fit without
	 * one, fail with -EBUSY if lazy or pooled ranges exist (a purge
	 * might make room; whether it would is not worked out), -ENOMEM if
	 * none do.  Purge notifiers are not called.
	 */
	VMAP_NONBLOCK = 1u << 0,
	/*
	 * vmap_xalloc() only.  Complete search: if any free place satisfies
	 * every constraint of the request, the call takes the lowest one.
	 * Without it, vmap_xalloc() looks only in blocks of at least size +
	 * align - 1 bytes (the kernel's rule, O(log n); where that sum
	 * overflows, it searches completely) and may fail while a smaller
	 * block would do.  Cost: O((k + 1) log n) for the k free blocks of
	 * at least @size bytes, below the answer, that have no place for
	 * it (misaligned, or cut by the window or no-cross).
	 */
	VMAP_EXACT_FIT = 1u << 1,
	/*
	 * vmap_xalloc() only.  The highest place that satisfies the request,
	 * searched completely like VMAP_EXACT_FIT, with the same bound.
	 */
	VMAP_TOPDOWN = 1u << 2,
	/*
	 * vmap_xalloc() only.  Never purge and never call the purge
	 * notifiers: where the request does not fit as the space is now,
	 * fail with -ENOMEM.
	 */
	VMAP_NOPURGE = 1u << 3,
	/*
	 * vmap_xalloc() only, in a VMAP_BESTFIT_INDEX space: the lowest
	 * place in the smallest free block that has one, the lowest such
	 * block among equals.  O(log n + k) for the k blocks, at least as
	 * large, passed over for having no place.  Not with VMAP_TOPDOWN.
	 */
	VMAP_BESTFIT = 1u << 4,
};

/*
 * vmap_alloc - allocate @size bytes aligned to @align within [vstart, vend).
 * @size: a non-zero multiple of the page size.
 * @align: a power of two; values below the page size mean the page size.
 * @vstart, @vend: the window; both 0 means the whole space.  Only requests
 *	over the whole space are served from the per-node pools.
 * @flags: VMAP_NONBLOCK or 0.
 * @addr: receives the start of the range.
 *
 * Placement is the lowest address that fits (docs/DESIGN.md section 2; for
 * alignments above a page, bounded as described there).  When nothing
 * fits, the call purges once (a full purge, which also empties the pools)
 * and retries, then calls the purge notifiers and retries only if one of
 * them freed something.
 *
 * Returns 0, -EINVAL (size 0 or not a page multiple, align 0 or not a power
 * of two, vstart >= vend, a window outside the space or smaller than
 * @size, size + align - 1 overflowing, unknown flags, a NULL argument),
 * -ENOMEM (no room, or no memory for bookkeeping), -EBUSY (VMAP_NONBLOCK
 * and lazy or pooled ranges exist, which a purge might turn into room) or -EUCLEAN (the range the search
 * found overlaps a busy one: the space is corrupt, which a debug build
 * reports by aborting; the range is not handed out and the overlap is
 * counted in the stats' overlaps).  May block: takes the purge mutex on
 * the slow path and calls the notifiers.
 */
VMAP_API int vmap_alloc(struct vmap_space *space, uint64_t size, uint64_t align,
			uint64_t vstart, uint64_t vend, unsigned flags,
			uint64_t *addr);

/*
 * vmap_free - give back the busy range starting at @addr.  The range
 * becomes lazy: it stays reserved until the next purge (in a
 * VMAP_IMMEDIATE_FREE space it is free again when the call returns).  A
 * free that takes the lazy page count above lazy_max_pages starts a purge
 * (in a drain thread; in deterministic mode, synchronously inside this
 * call).  In a space without VMAP_KERNEL_POOLS and with neither a flush
 * nor a release callback, the free purges itself, inside this call, when
 * it finds more than 3 * lazy_max_pages pages lazy (the drain has fallen
 * behind: its thread waits for a CPU, or frees outrun it; the free waits
 * for a purge in progress first, and purges only if the count is still
 * over the threshold), and when it crosses the threshold, no purge is
 * running or pending, and its CPU's node is the only one that allocated
 * since the last purge (a space of one node, a program with one
 * allocating thread; the free_purges statistic counts these).  A free
 * therefore never calls the flush or release callback on the caller's
 * thread, except in deterministic mode.
 *
 * Returns 0, -ENOENT (@addr is not the start of a busy range: inside
 * one, in a gap, lazy, already freed, outside the space) or -EINVAL (NULL
 * @space).
 */
VMAP_API int vmap_free(struct vmap_space *space, uint64_t addr);

/*
 * vmap_alloc_user - vmap_alloc() that also attaches @user, a word of the
 * caller's, to the range; vmap_find() and vmap_snapshot() report it.
 * Same arguments, errors and context otherwise.
 */
VMAP_API int vmap_alloc_user(struct vmap_space *space, uint64_t size,
			     uint64_t align, uint64_t vstart, uint64_t vend,
			     unsigned flags, uint64_t user, uint64_t *addr);

/*
 * A vmap_xalloc() request.  Every field left zero means "no constraint";
 * reserved fields must be zero.
 */
struct vmap_request {
	uint64_t size; /* a non-zero multiple of the page */
	/* A power of two; 0, or any value up to a page, means a page. */
	uint64_t align;
	/* The start is congruent to @phase modulo @align: a page multiple
	 * below @align. */
	uint64_t phase;
	/*
	 * 0, or a power of two: the range never contains a multiple of it
	 * except at its start (it never straddles one).  At least @size,
	 * and (@phase mod @nocross) + @size <= @nocross, else no range
	 * could satisfy it.
	 */
	uint64_t nocross;
	/*
	 * The window [@min, @max), page multiples; @max 0 means the end of
	 * the space (so 0, 0 is the whole space).  The part of the window
	 * inside the space must hold @size bytes.
	 */
	uint64_t min, max;
	uint64_t user; /* attached, as by vmap_alloc_user() */
	/* VMAP_NONBLOCK, _EXACT_FIT, _TOPDOWN, _NOPURGE, _BESTFIT */
	uint32_t flags;
	uint32_t reserved0;
	uint64_t reserved[4];
};

/*
 * vmap_xalloc - allocate a range with constraints beyond the kernel's
 * (illumos/FreeBSD vmem_xalloc()).
 * @req: the request (above).
 * @addr: receives the start of the range.
 *
 * A request that sets none of phase, nocross, a window or a flag other
 * than VMAP_NONBLOCK is vmap_alloc_user() over the whole space, pools
 * included (unless size + align - 1 overflows, which vmap_alloc_user()
 * refuses).  Any other request is served from the global heap, never
 * from a pool, and its range goes back to the heap when purged.  Without
 * VMAP_TOPDOWN the place is the lowest one the search finds (complete
 * with VMAP_EXACT_FIT, see there).  When nothing fits, the call purges and
 * calls the notifiers as vmap_alloc() does, unless VMAP_NOPURGE or
 * VMAP_NONBLOCK says otherwise.
 *
 * Returns 0, -EINVAL (a NULL argument, unknown flags, VMAP_BESTFIT with
 * VMAP_TOPDOWN or in a space without VMAP_BESTFIT_INDEX, a non-zero
 * reserved field, size 0 or not a page multiple, align not a power of
 * two, phase not a page multiple or not below align, nocross neither 0
 * nor a power of two or too small for size and phase, min or max not
 * page multiples, min >= max with max non-zero, a window that meets no
 * span, or meets none in @size bytes; a space with a source skips the
 * last two), -ENOMEM (no room, a failed import, or no memory for
 * bookkeeping) or -EBUSY (VMAP_NONBLOCK and lazy or pooled ranges exist,
 * as for vmap_alloc()).  May block, as vmap_alloc(), and the import callback may.
 */
VMAP_API int vmap_xalloc(struct vmap_space *space,
			 const struct vmap_request *req, uint64_t *addr);

/*
 * vmap_reserve - take exactly [@addr, @addr + @size) as a busy range with
 * @user attached, if all of it can be had: at once if it is free; after
 * one full purge if lazy or pooled ranges overlap it and nothing busy
 * does (never a purge when it is free, or when a busy range is in the
 * way).
 * @addr, @size: page multiples, @size > 0, the range inside one span or
 *	a run of adjacent spans (@addr + @size may be 2^64).
 *
 * Returns 0, -EINVAL (NULL @space, size 0, bounds not page multiples or
 * not inside the spans), -EEXIST (a busy range overlaps it) or -ENOMEM (no
 * memory for bookkeeping).  May block: the purge takes the purge mutex.
 */
VMAP_API int vmap_reserve(struct vmap_space *space, uint64_t addr,
			  uint64_t size, uint64_t user);

/* vmap_range.state */
enum {
	VMAP_RANGE_BUSY = 0, /* handed out */
	VMAP_RANGE_LAZY = 1, /* freed, waiting for a purge */
};

/* A range, as vmap_find() and vmap_snapshot() report it. */
struct vmap_range {
	uint64_t start, end; /* end 0: 2^64 */
	/* Busy: the node whose busy tree holds it (the node of its start);
	 * lazy: the node whose lazy set holds it. */
	uint32_t node;
	/* The node whose lazy set and pools it goes to; -1 for none. */
	int32_t tag_node;
	uint64_t user;	/* as given to vmap_alloc_user(), else 0 */
	uint32_t state; /* VMAP_RANGE_BUSY or VMAP_RANGE_LAZY */
	uint32_t reserved;
};

/*
 * vmap_find - the busy range containing @addr.
 * Returns 0, -ENOENT (no busy range contains @addr) or -EINVAL (NULL).
 */
VMAP_API int vmap_find(struct vmap_space *space, uint64_t addr,
		       struct vmap_range *range);

/*
 * Called by vmap_next() with the range it found, while the busy lock of
 * the range's node is held: the range cannot be freed until it returns.
 * It must not call into the same space, nor wait for anything that does.
 */
typedef void (*vmap_range_fn)(void *cookie, const struct vmap_range *range);

/*
 * vmap_next - the lowest busy range that ends above @addr (the range
 * containing @addr, else the first above it): iterate over busy ranges in
 * address order with addr = range->end, until that end is 0 (2^64).  @fn (may be NULL) is called with
 * the range before the call returns, under its node's busy lock (see
 * vmap_range_fn); no two node locks are ever held together.
 * Returns 0, -ENOENT (no busy range ends above @addr) or -EINVAL (NULL
 * @space or @range).  Takes each node's busy lock in turn.  Freed ranges
 * not yet back in the free heap (lazy, pooled) lie between busy ones:
 * a call steps over those up to the range it returns, one round over
 * the nodes per run of them in one node, so a whole walk costs the busy
 * and the freed ranges once each.
 */
VMAP_API int vmap_next(struct vmap_space *space, uint64_t addr,
		       struct vmap_range *range, vmap_range_fn fn,
		       void *cookie);

/* The most areas one vmap_pcpu_get_vm_areas() call may ask for. */
#define VMAP_PCPU_MAX_AREAS 1024

/*
 * vmap_pcpu_get_vm_areas - allocate @nr ranges at fixed distances from
 * one base, the kernel's pcpu_get_vm_areas() (the percpu allocator's
 * congruent chunks): range i is [base + @offsets[i], + @sizes[i]), base a
 * multiple of @align.  The base is the highest that fits, searching down
 * from the end of the space as the kernel does.  All or nothing: when no
 * base fits (after one full purge), nothing is allocated.
 * @offsets, @sizes: @nr page multiples each; sizes non-zero, offsets
 *	multiples of @align, no two ranges overlapping.
 * @align: a power of two; below the page size means the page size.
 * @starts: receives the @nr starts.  Each range is busy like one from
 *	vmap_alloc() (never pooled) and is freed with vmap_free() or with
 *	vmap_pcpu_free_vm_areas().
 * Returns 0, -EINVAL (NULL, @nr 0 or above VMAP_PCPU_MAX_AREAS, a bad
 * size, offset or alignment, overlapping ranges, ranges spanning more
 * than the space), -ENOMEM (no base fits, or no memory for records) or
 * -EUCLEAN (a busy range was already where the free heap said space was
 * free: corruption, refused and counted like vmap_alloc()'s; a debug
 * build aborts).  May block (purges on the slow path).
 */
VMAP_API int vmap_pcpu_get_vm_areas(struct vmap_space *space,
				    const uint64_t *offsets,
				    const uint64_t *sizes, unsigned nr,
				    uint64_t align, uint64_t *starts);

/*
 * vmap_pcpu_free_vm_areas - vmap_free() each of @starts, once every one is
 * checked to be the start of a busy range (all or nothing).  Returns 0,
 * -EINVAL (NULL, @nr 0) or -ENOENT (one is not the start of a busy range).
 */
VMAP_API int vmap_pcpu_free_vm_areas(struct vmap_space *space,
				     const uint64_t *starts, unsigned nr);

/*
 * vmap_snapshot - every busy and lazy range in the order of
 * /proc/vmallocinfo: the busy ranges node by node, each node's in address
 * order, then the lazy ranges node by node, likewise.  *@ranges is allocated with malloc(); the
 * caller frees it with free().  Ranges change meanwhile: the snapshot is
 * consistent per node, not across nodes.
 * Returns 0, -EINVAL (NULL) or -ENOMEM.
 */
VMAP_API int vmap_snapshot(struct vmap_space *space, struct vmap_range **ranges,
			   size_t *count);

/*
 * vmap_purge - purge every lazy range now, decaying the pools as every
 * purge does (the kernel's at every purge, the default ones at their
 * node's decay points: vmap_purge(3)).  Returns 0 or -EINVAL (NULL).
 * Takes the purge mutex: may block.
 */
VMAP_API int vmap_purge(struct vmap_space *space);

/*
 * vmap_shrink - empty every pool into the global heap (the kernel's
 * shrinker), under the purge mutex, then give back every imported span
 * that is wholly free (the release_span callback runs with no lock of
 * the space held).  Lazy ranges stay lazy.  Returns 0 or -EINVAL (NULL).
 * May block.
 */
VMAP_API int vmap_shrink(struct vmap_space *space);

/*
 * vmap_set_thread_cpu - make the calling thread allocate as if it ran on
 * CPU @cpu (its node is cpu % nr_nodes), in every space; -1 returns to the
 * CPU the thread runs on.  Useful to schedulers that know their worker
 * index, and to tests.  Returns 0 or -EINVAL (cpu < -1).
 */
VMAP_API int vmap_set_thread_cpu(int cpu);

/*
 * vmap_thread_cpu - the CPU the calling thread allocates as: the one set
 * by vmap_set_thread_cpu(), else the one it runs on now (any number: CPU
 * ids may be sparse).  vm_map_ram() picks its block queue with it.
 */
VMAP_API unsigned vmap_thread_cpu(void);

/* ------------------------------------------------------------------------
 * Purge notifiers: called when an allocation still fails after a full
 * purge.  A notifier that gives ranges back (vmap_free on this space is
 * allowed) adds the number of pages it freed to *freed; the allocation is
 * retried only if the total is non-zero.
 */
typedef void (*vmap_notifier_fn)(struct vmap_space *space, void *cookie,
				 uint64_t *freed);

/*
 * vmap_notifier_register - add (@fn, @cookie).  Returns 0, -EEXIST (already
 * registered), -EINVAL (NULL @space or @fn) or -ENOMEM.  Must not be called
 * from a notifier.
 */
VMAP_API int vmap_notifier_register(struct vmap_space *space,
				    vmap_notifier_fn fn, void *cookie);

/*
 * vmap_notifier_unregister - remove (@fn, @cookie).  Returns 0, -ENOENT
 * (not registered) or -EINVAL (NULL @space).  Must not be called from a
 * notifier.
 */
VMAP_API int vmap_notifier_unregister(struct vmap_space *space,
				      vmap_notifier_fn fn, void *cookie);

/* ------------------------------------------------------------------------
 * Checking
 */

/*
 * vmap_check - verify every invariant of docs/DESIGN.md section 9: free, busy,
 * lazy and pooled ranges partition the space, the free tree is coalesced with
 * exact cached maxima and valid red-black colouring, its list agrees with it,
 * every range is in its node, pools hold only their size class with exact
 * lengths, and the lazy counter matches the lazy sets.
 *
 * It takes every lock of the space, so it is safe to call at any time, but
 * the partition and counter checks assume that no other call on the space
 * is in flight.  @msg (may be NULL) receives a one-line description of the
 * first violation.
 *
 * Returns 0, -EUCLEAN (an invariant is broken), -EINVAL (NULL @space) or
 * -ENOMEM (no memory for its scratch array; nothing was checked).
 */
VMAP_API int vmap_check(struct vmap_space *space, char *msg, size_t msglen);

/* ------------------------------------------------------------------------
 * Statistics.  One list of fields generates the struct, the text and the
 * JSON output.  Counters count events since creation; gauges are read now.
 */
#define VMAP_STAT_FIELDS(X)                                                    \
	X(allocs, "ranges handed out")                                         \
	X(alloc_failures, "allocations refused for lack of room")              \
	X(frees, "ranges given back (made lazy; per node: into its lazy set)") \
	X(pool_hits, "allocations served by a node pool")                      \
	X(pool_misses, "whole-space allocations the pool could not serve")     \
	X(heap_lock, "global heap lock acquisitions")                          \
	X(global_lock, "acquisitions of locks shared by all CPUs")             \
	X(node_lock, "acquisitions of per-node locks")                         \
	X(cross_node_busy,                                                     \
	  "busy inserts into a node other than the allocator's")               \
	X(pooled, "ranges put into a pool by a purge")                         \
	X(pooled_cross_node, "pooled ranges whose address is another node's")  \
	X(purges, "purges that found lazy ranges")                             \
	X(full_purges, "full purges (allocation failure)")                     \
	X(shrinks, "calls of vmap_shrink")                                     \
	X(flushes, "flush callbacks")                                          \
	X(purge_helpers, "nodes handed to purge helpers")                      \
	X(purged_vas, "lazy ranges purged")                                    \
	X(purged_pages, "lazy pages purged")                                   \
	X(decayed_vas, "pooled ranges returned to the heap by decay")          \
	X(notifier_rounds, "times the purge notifiers were called")            \
	X(overlaps, "corrupt returns refused (a bug if non-zero)")             \
	X(lazy_pages, "gauge: pages lazy now")                                 \
	X(pooled_now, "gauge: ranges in pools now")                            \
	X(free_bytes, "gauge: bytes in the global free heap now")              \
	X(free_blocks, "gauge: blocks in the global free heap now")            \
	X(largest_free, "gauge: bytes in the largest free block now")          \
	X(pooled_pages, "gauge: pages in pools now")                           \
	X(other_node_lock, "node locks an alloc/free took of another node")    \
	X(pool_refills, "batches taken from the heap into an empty pool")      \
	X(refilled, "ranges those batches took")                               \
	X(backlog_purges, "purges a free ran itself, the drain being behind")  \
	X(free_purges, "purges a free ran itself, its node alone allocating")

struct vmap_stats {
	/* Set by the caller to sizeof(struct vmap_stats) before the call. */
	uint32_t size;
	/* Set by the library: VMAP_VERSION of the layout it filled. */
	uint32_t version;
#define VMAP_STAT_MEMBER(name, doc) uint64_t name;
	VMAP_STAT_FIELDS(VMAP_STAT_MEMBER)
#undef VMAP_STAT_MEMBER
};

/*
 * vmap_stats_get - counters of the whole space (@node = -1) or of one node
 * (space-wide counters such as purges read 0 for a node).  @stats->size
 * must be set; a smaller struct from an older header is filled as far as
 * it goes.  Returns 0 or -EINVAL (bad node, NULL, size too small).
 */
VMAP_API int vmap_stats_get(struct vmap_space *space, int node,
			    struct vmap_stats *stats);

enum {
	VMAP_STATS_JSON = 1u << 0, /* one JSON object on one line */
};

/*
 * vmap_stats_print - write @stats as "name value  # description" lines, or
 * as JSON with VMAP_STATS_JSON, and flush @out.  Returns 0, -EINVAL (NULL,
 * unknown flags) or -EIO (a write or the flush failed, or @out already
 * had its error indicator set).  @stats must be a whole struct of this
 * header's version.
 */
VMAP_API int vmap_stats_print(const struct vmap_stats *stats, FILE *out,
			      unsigned flags);

/* ------------------------------------------------------------------------
 * The vmalloc layer: real memory behind a space (docs/DESIGN.md section 11).
 *
 * A heap reserves one large region of virtual memory (PROT_NONE,
 * MAP_NORESERVE) and hands out areas of it with a space.  Every area
 * carries one guard page (inside its range, as in the kernel: it counts in
 * the pool class and in vmallocinfo), which faults when touched.  vfree
 * makes an area lazy; its memory goes back to the system in the purge, one
 * madvise per run of adjacent freed ranges, so a stream of vmalloc/vfree
 * costs far fewer system calls than mmap/munmap.
 *
 * Guarantees: every byte of an area is readable and writable; the guard
 * page faults (SIGSEGV); memory reads zero when handed out (it is fresh,
 * or was released by MADV_DONTNEED or mapped afresh before reuse), except
 * on a heap created with VMAP_HEAP_MADV_FREE, whose reused areas may still
 * hold what was written before (zero them if that matters).
 *
 * Guard pages are guard markers (MADV_GUARD_INSTALL, Linux 6.13+) where
 * the kernel has them: the reservation stays one mapping, so live areas
 * are bounded by the reservation alone, and a pooled area is handed out
 * again without a system call; free address space in the reservation
 * does not fault, though.  Else, or with VMAP_HEAP_MPROTECT_GUARDS, the
 * reservation is PROT_NONE and each area's body is made read-write: every
 * stray access faults, but each live area costs two mappings, so live
 * areas are bounded by vm.max_map_count: (max_map_count - mappings the
 * process has otherwise) / 2, 32 750 areas in a process with few other
 * mappings under the default 65530 (measured).  The purge maps every
 * released run afresh, inaccessible, so freed areas merge back into the
 * reservation's mapping and the bound holds under any churn; the price is
 * one mprotect when a pooled area is handed out again.  An area whose
 * pages cannot be made ready for lack of mappings is freed, the heap is
 * purged once and the area tried again before vmalloc() fails.
 */

struct vmap_heap;

/* vmap_heap_params.flags */
enum {
	VMAP_HEAP_NO_GUARD = 1u << 0,	 /* areas without a guard page */
	VMAP_HEAP_GUARD_BELOW = 1u << 1, /* guard before the area: for stacks */
	VMAP_HEAP_MADV_FREE = 1u << 2,	 /* release with MADV_FREE */
	/* Guards by mprotect even where guard markers exist (see below). */
	VMAP_HEAP_MPROTECT_GUARDS = 1u << 3,
};

struct vmap_heap_params {
	uint64_t reserve_bytes;	 /* 0 = 64 GiB */
	uint32_t nr_nodes;	 /* 0 = online CPUs, as vmap_params */
	uint32_t flags;		 /* VMAP_HEAP_* */
	uint64_t lazy_max_pages; /* 0 = the kernel's formula */
	uint64_t reserved[4];	 /* must be zero */
};

/*
 * vmap_heap_create - reserve a region and build a heap over it.
 * Returns 0, -EINVAL (NULL @out, bad flags, a reserved field set,
 * reserve_bytes below one page, nr_nodes above 128) or -ENOMEM (the
 * reservation was refused: address space or overcommit limits).
 */
VMAP_API int vmap_heap_create(const struct vmap_heap_params *params,
			      struct vmap_heap **out);

/* vmap_heap_destroy - unmap everything; no call on the heap may follow or
 * be in flight.  NULL is a no-op. */
VMAP_API void vmap_heap_destroy(struct vmap_heap *heap);

/* The heap's space, for vmap_stats_get(), vmap_check() and vmap_purge();
 * NULL for a NULL heap.  Do not allocate or free in it directly. */
VMAP_API struct vmap_space *vmap_heap_space(struct vmap_heap *heap);

/* The process-wide heap behind vmalloc(), created on first use; NULL if
 * it cannot be created. */
VMAP_API struct vmap_heap *vmap_default_heap(void);

/*
 * vmap_heap_vmalloc, _vfree, _vrealloc, _size, _info: the vmalloc family on
 * an explicit heap, with the errors of vmalloc() and the rest below, which
 * use the default heap; a NULL @heap is EINVAL (vmap_heap_vmalloc,
 * vmap_heap_vrealloc), an address refused with a message (vmap_heap_vfree)
 * or size 0 (vmap_heap_size).  vmap_heap_info() returns 0, -EINVAL (NULL), -ENOMEM
 * or -EIO (a write or the final flush failed).
 */
VMAP_API void *vmap_heap_vmalloc(struct vmap_heap *heap, size_t size);

/*
 * vmap_heap_vmalloc_align - an area whose start is aligned to @align (a
 * power of two; below a page means a page), like the kernel's
 * __vmalloc_node().  NULL with errno EINVAL for a bad alignment, or for
 * an alignment above a page on a VMAP_HEAP_GUARD_BELOW heap.
 */
VMAP_API void *vmap_heap_vmalloc_align(struct vmap_heap *heap, size_t size,
				       size_t align);
VMAP_API void vmap_heap_vfree(struct vmap_heap *heap, const void *addr);
VMAP_API void *vmap_heap_vrealloc(struct vmap_heap *heap, void *addr,
				  size_t size);
VMAP_API size_t vmap_heap_size(struct vmap_heap *heap, const void *addr);
VMAP_API int vmap_heap_info(struct vmap_heap *heap, FILE *out);

/*
 * vmap_heap_check - vmap_check() on the heap's space, then every
 * vm_map_ram block: its pages add up (unused + dirty + mapped = the
 * block), each mapped page belongs to one chunk, aliases lie only
 * in dirty pages, it is on its queue exactly when it has unused pages, it
 * is a block area of the space; every queued block is live and on the
 * queue it was made on; and every block area of the space is a published
 * block.  Like vmap_check(), it assumes no other call on the
 * heap is in flight.  Returns 0, vmap_check()'s errors, or -EUCLEAN (a
 * block is inconsistent; @msg says which and how).
 */
VMAP_API int vmap_heap_check(struct vmap_heap *heap, char *msg, size_t msglen);

struct vmap_heap_stats {
	uint32_t size; /* set by the caller: sizeof(struct vmap_heap_stats) */
	uint32_t version;
	uint64_t live_areas, live_bytes; /* bytes include guard pages */
	uint64_t lazy_areas, lazy_bytes;
	uint64_t syscalls_mprotect, syscalls_madvise;
	uint64_t released_runs, released_bytes;
	uint64_t syscalls_guard; /* MADV_GUARD_INSTALL and _REMOVE */
	uint32_t guard_markers;	 /* 1: guard markers, 0: mprotect */
	uint32_t reserved;
	/* mmap calls that map a released run afresh (mprotect guards only) */
	uint64_t syscalls_remap;
	/* mmap calls of vmap() and vm_map_ram(): pages mapped, the
	 * reservation put back */
	uint64_t syscalls_mmap;
};

/* vmap_heap_stats - fill @stats (walks every area: O(n)).  0, -EINVAL (NULL
 * or @stats->size too small) or -ENOMEM. */
VMAP_API int vmap_heap_stats(struct vmap_heap *heap,
			     struct vmap_heap_stats *stats);

/*
 * vmalloc - @size bytes (rounded up to pages) of zeroed memory followed by
 * a guard page, or NULL with errno set: EINVAL (size 0), ENOMEM (no room
 * in the reservation, a size larger than it, the default heap could not
 * be created, or the system refused a protection change or memory).
 * Thread-safe; may block on the slow path (a purge).
 */
VMAP_API void *vmalloc(size_t size);

/*
 * vzalloc - vmalloc() whose memory is guaranteed zeroed.  The default heap
 * never uses VMAP_HEAP_MADV_FREE, so this is vmalloc() by another name,
 * kept for code written against the kernel's API.
 */
VMAP_API void *vzalloc(size_t size);

/*
 * vmalloc_user - vzalloc() of an area meant to be handed to another
 * mapper (the kernel's VM_USERMAP): vmallocinfo marks it "user".  Freed
 * with vfree(); same errors as vmalloc().  vmap_heap_vmalloc_user() is
 * the same on an explicit heap.
 */
VMAP_API void *vmalloc_user(size_t size);
VMAP_API void *vmap_heap_vmalloc_user(struct vmap_heap *heap, size_t size);

/*
 * vfree - give back an area from vmalloc().  NULL is a no-op.  A pointer
 * vmalloc() did not return (or already freed) is refused with a message
 * on stderr, and nothing changes.
 */
VMAP_API void vfree(const void *addr);

/* vmalloc_size - usable bytes of the area at @addr (without the guard), 0
 * if @addr is not the start of a live area. */
VMAP_API size_t vmalloc_size(const void *addr);

/*
 * vrealloc - resize: in place when the area's pages hold @size (the tail
 * beyond @size is zeroed when shrinking), else a new area with the
 * contents copied.  NULL @addr: vmalloc(@size); @size 0: vfree(@addr),
 * returns NULL.  On failure returns NULL with errno EINVAL (@addr is not
 * the start of a live area: also a message on stderr) or ENOMEM (as
 * vmalloc), and leaves @addr intact.
 */
VMAP_API void *vrealloc(void *addr, size_t size);

/*
 * vmallocinfo - the /proc/vmallocinfo format: every busy area in address
 * order (walked with vmap_next()), then every lazy one, node by node, as
 * "0xSTART-0xEND SIZE unpurged vm_area".  Busy areas read "0xSTART-0xEND
 * SIZE CALLER pages=N vmalloc" ("... vmalloc user" from vmalloc_user(),
 * "... pages=N vmap" from vmap()); vm_map_ram blocks and large
 * vm_map_ram areas read "0xSTART-0xEND SIZE vm_map_ram".  Returns 0,
 * -EINVAL (NULL @out), -ENOMEM (no default heap, or no memory for the
 * snapshot) or -EIO (a write or the final flush failed).
 */
VMAP_API int vmallocinfo(FILE *out);

/* ------------------------------------------------------------------------
 * Pages and vmap(): real pages that can be mapped more than once.
 *
 * Each heap has a page pool: one memfd (4 GiB, sparse), created on first
 * use; a page is named by its byte offset in it.  vmap() maps pool pages,
 * in the order given, contiguously into an area of the heap (with the
 * heap's guard page), so the same page may appear several times, in one
 * area or in many: the classic use is a ring buffer mapped twice back to
 * back (examples/ring_buffer.c).  vunmap() puts the reservation back at
 * once and frees the area lazily, like vfree().  Freeing a page that is
 * still mapped is the caller's error (as in the kernel): the mappings
 * then see whatever the page holds next.
 */

/*
 * vmap_pages_alloc - @count pages of @heap's pool, zeroed, their offsets
 * into @pages.  Returns 0, -EINVAL (NULL, @count 0) or -ENOMEM (the pool
 * is full, or could not be created).  Thread-safe; takes the pool lock.
 */
VMAP_API int vmap_pages_alloc(struct vmap_heap *heap, size_t count,
			      uint64_t *pages);

/*
 * vmap_pages_free - give @count pages back; their memory returns to the
 * system at once.  All or nothing: returns 0 or -EINVAL (NULL, @count 0,
 * a page that is not one handed out by this pool, a page given twice).
 */
VMAP_API int vmap_pages_free(struct vmap_heap *heap, const uint64_t *pages,
			     size_t count);

/*
 * vmap_heap_vmap - map @count pool pages of @heap contiguously, in the
 * order of @pages (repeats allowed), followed (or, on a
 * VMAP_HEAP_GUARD_BELOW heap, preceded) by the heap's guard page.
 * @flags: must be 0.
 * Returns the address, or NULL with errno EINVAL (NULL, @count 0, @flags,
 * a page not handed out by this heap's pool) or ENOMEM (no room, or the
 * system refused the mapping: vm.max_map_count).  May block (a purge on
 * the slow path).
 */
VMAP_API void *vmap_heap_vmap(struct vmap_heap *heap, const uint64_t *pages,
			      size_t count, unsigned flags);

/*
 * vmap_heap_vunmap - undo vmap_heap_vmap(): the pages are unmapped now,
 * the area freed lazily.  Returns 0 or -EINVAL (@addr is not an address
 * vmap returned, or was unmapped already; nothing changes).
 */
VMAP_API int vmap_heap_vunmap(struct vmap_heap *heap, const void *addr);

/* vmap, vunmap: the same on the default heap (pages from its pool,
 * vmap_default_heap()).  vunmap() of a bad address prints a line on
 * stderr and changes nothing. */
VMAP_API void *vmap(const uint64_t *pages, size_t count, unsigned flags);
VMAP_API void vunmap(const void *addr);

/* ------------------------------------------------------------------------
 * vm_map_ram(): fast mappings of a few pages, without guard pages.
 *
 * Up to VMAP_MAX_ALLOC pages come from the calling CPU's blocks of
 * VMAP_BBMAP_BITS pages, in power-of-two chunks (a mapping of 3 pages
 * takes 4), with no system call beyond the mmap of the pages; larger
 * mappings take an area of the heap directly.  vm_unmap_ram() of a
 * chunk only marks it dirty: the old mapping stays readable and
 * writable (an alias of the pages) until vm_unmap_aliases(), or until the
 * whole block is dirty and goes back to the heap.  Call
 * vm_unmap_aliases() before relying on no mapping of a page remaining
 * (before freeing it, or changing what it means).
 */
#define VMAP_MAX_ALLOC 64
#define VMAP_BBMAP_BITS 1024

/*
 * vmap_heap_vm_map_ram - map @count pool pages of @heap, in order.
 * Returns the address, or NULL with errno EINVAL (NULL, @count 0, a page
 * not from this heap's pool) or ENOMEM (no room, no memory, or the system
 * refused the mapping: vm.max_map_count).  Thread-safe; takes the CPU's
 * block-queue lock, may block on the slow path.
 */
VMAP_API void *vmap_heap_vm_map_ram(struct vmap_heap *heap,
				    const uint64_t *pages, unsigned count);

/*
 * vmap_heap_vm_unmap_ram - undo a vm_map_ram of @count pages at @mem (the
 * same count).  Returns 0 or -EINVAL (not such a mapping, or unmapped
 * already; nothing changes).
 */
VMAP_API int vmap_heap_vm_unmap_ram(struct vmap_heap *heap, const void *mem,
				    unsigned count);

/*
 * vmap_heap_vm_unmap_aliases - remove every alias left by
 * vm_unmap_ram(): one mmap per run of dirty pages in each block; purge
 * blocks with nothing mapped and less than 1/16 unused; then purge the
 * heap (vmap_purge()).  May block.
 */
VMAP_API void vmap_heap_vm_unmap_aliases(struct vmap_heap *heap);

/* The same on the default heap; vm_unmap_ram() of a bad address prints
 * a line on stderr and changes nothing. */
VMAP_API void *vm_map_ram(const uint64_t *pages, unsigned count);
VMAP_API void vm_unmap_ram(const void *mem, unsigned count);
VMAP_API void vm_unmap_aliases(void);

/* ------------------------------------------------------------------------
 * vread(): read any stretch of a heap, never faulting.
 */

/*
 * vmap_heap_vread - copy [@addr, @addr + @count) of @heap's reservation
 * into @buf: the contents of busy areas where they are mapped; zeros for
 * free space, guard pages, lazy areas, unmapped vm_map_ram chunks and any
 * page that cannot be read.  Areas are visited with vmap_next(), each
 * copied under its node's busy lock alone, so none is freed under the
 * copy; concurrent frees are safe.  Returns @count, or -EINVAL (NULL, the
 * stretch not inside the reservation, @count above LONG_MAX).
 */
VMAP_API long vmap_heap_vread(struct vmap_heap *heap, char *buf,
			      const void *addr, size_t count);

/* The same on the default heap. */
VMAP_API long vread(char *buf, const void *addr, size_t count);

/* ------------------------------------------------------------------------
 * vfree_rcu(): free after a grace period of userspace RCU (liburcu).
 *
 * Readers bracket their accesses with vmap_rcu_read_lock() and
 * vmap_rcu_read_unlock(), after vmap_rcu_register_thread() in each reader
 * thread; an area given to vfree_rcu() is freed only once every reader
 * that was inside a read-side section has left it, in batches, by
 * liburcu's call_rcu thread.  Without liburcu at build time (Debian:
 * apt-get install liburcu-dev) every call that would queue a free
 * returns -ENOSYS, and the reader calls do nothing.
 */

/* Room for RCU's bookkeeping inside an area: the two-argument shape. */
struct vmap_rcu_head {
	void *opaque[3];
};

/*
 * vmap_heap_vfree_rcu - vfree @addr (an area of @heap from vmalloc) after
 * a grace period; the kernel's one-argument kvfree_rcu.  Allocates a small
 * record; when that fails, waits for the grace period in place.
 * Returns 0, -EINVAL (not a vmalloc area of @heap) or -ENOSYS (built
 * without liburcu).  Must not be called inside a read-side section (it
 * may wait for a grace period).
 */
VMAP_API int vmap_heap_vfree_rcu(struct vmap_heap *heap, const void *addr);

/*
 * vmap_heap_vfree_rcu_head - the same with @head, a struct vmap_rcu_head
 * inside the area, as bookkeeping: allocates nothing, never waits.  The
 * kernel's two-argument kvfree_rcu.  Returns 0, -EINVAL (not a vmalloc
 * area of @heap, or @head not inside it) or -ENOSYS.
 */
VMAP_API int vmap_heap_vfree_rcu_head(struct vmap_heap *heap, const void *addr,
				      struct vmap_rcu_head *head);

/* The same on the default heap. */
VMAP_API int vfree_rcu(const void *addr);
VMAP_API int vfree_rcu_head(const void *addr, struct vmap_rcu_head *head);

/* The kernel's shapes: kvfree_rcu(ptr, field) and the one-argument one. */
#define kvfree_rcu(ptr, field) vfree_rcu_head((ptr), &(ptr)->field)
#define kvfree_rcu_mightsleep(ptr) vfree_rcu(ptr)

/*
 * vmap_rcu_register_thread - make the calling thread a reader; 0 or
 * -ENOSYS.  vmap_rcu_unregister_thread() before it exits.
 */
VMAP_API int vmap_rcu_register_thread(void);
VMAP_API void vmap_rcu_unregister_thread(void);

/* A read-side section: never blocks; may nest. */
VMAP_API void vmap_rcu_read_lock(void);
VMAP_API void vmap_rcu_read_unlock(void);

/* vmap_rcu_barrier - wait until every free queued so far is done. */
VMAP_API void vmap_rcu_barrier(void);

#ifdef __cplusplus
}
#endif

#endif /* VMAP_H */
