/* SPDX-License-Identifier: MIT */
/*
 * internal.h - struct vmap_space and struct vmap_node, and the lock rules.
 *
 * LOCK ORDER (the one place it is written down)
 *
 *   registry lock (fork.c)  >  trace_lock  >  notifier_lock  >
 *   purge_lock  >  heap_lock  >  node[i].busy_lock > node[i].lazy_lock >
 *   node[i].pool_lock (i ascending)  >  workers' lock (worker.c)
 *
 * In normal operation no two of these are ever held together, except
 * that a purge holds purge_lock while it takes the others one at a time,
 * and a notifier may free (busy, lazy locks) or purge (purge_lock) while
 * the notifier rwlock is read-held.  An allocation takes a pool lock,
 * then (after dropping it) a busy lock if it hit, else the heap lock,
 * then a busy lock; one that missed its pool files the batch it took
 * under the heap lock into the pool under the pool lock, after dropping
 * the heap lock and before the busy lock; a free takes a busy lock, then a lazy lock, and after
 * dropping both may purge (purge_lock, waiting for it only in a space
 * without callbacks, whose purges call no code of the program's, see
 * purge_kick()).  Only vmap_check() and the fork handler nest them (and
 * a pool hit of an exiting thread in a space that keeps idle ranges,
 * busy then pool), in the order above; the
 * fork handler takes each level for every live space before the next
 * level (registry order within a level), so that a callback of one space
 * calling into another space that a purge is running in cannot hold the
 * fork up.  The trace lock exists only while the space records (trace.h):
 * then every changing call, and the drain's purge, runs under it, the
 * others nested inside.
 *
 * vmap_next() runs its callback under one busy lock; the vmalloc layer's
 * vread() takes a vm_map_ram block lock there, so the layer's own locks
 * (vmalloc.h) rank below node[i].busy_lock, and it never calls the space
 * while holding one of them.
 *
 * Debug builds record each vlock's holder; functions documented "caller
 * holds X" assert it (vlock_assert_held).
 *
 * WHAT GUARDS WHAT
 *   heap_lock          the free heap (heap.h), the span set and each
 *                      node's refill_next; the hull is written under it
 *                      and read without it
 *   busy_lock          a node's busy set, and whether each range in it
 *                      is busy or idle
 *   lazy_lock          which lazy set of a node frees go to, that set,
 *                      and the node's pages not yet in lazy_nr (written
 *                      under it, read without it by statistics)
 *   pool_lock          a node's 256 pools (lists, lengths and take
 *                      counts; the counts are written under it and may
 *                      be read without it)
 *   purge_lock         one purge or shrink at a time, each node's
 *                      purge work item (purging, skip_populate) and
 *                      its pools' fill quotas
 *   notifier_lock      the notifier array (rwlock: calls read-hold it)
 *   workers' lock      drain_link, drain_queued, drain_running,
 *                      drain_again
 *   registry lock      registry_link
 *   trace_lock         the recording's file, and the order of its lines
 *   lazy_nr            atomic, no lock; frees add to it in batches (lazy.c)
 *   counters           relaxed atomics, no lock; except a node's pool_hits,
 *                      written under its pool_lock, and its frees, under
 *                      its lazy_lock (atomic adds in a VMAP_IMMEDIATE_FREE
 *                      space, which has no lazy sets)
 */
#ifndef VMAP_INTERNAL_H
#define VMAP_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "free_heap.h"
#include "lock.h"
#include "trace.h"
#include "va.h"
#include "vmap.h"

/*
 * Pools hold ranges of 1..256 pages, one size class per page count.
 * 256 pages (1 MiB with 4 KiB pages) covers thread stacks, the kernel's
 * common vmalloc sizes and most JIT regions; larger ranges are rare enough
 * that the global heap serves them without contention, and pooling them
 * would pin large amounts of address space per node.
 */
#define MAX_VA_SIZE_PAGES 256

/*
 * A node's share of the address space is every nr_nodes-th zone of
 * ZONE_PAGES pages (a power of two: the zone shift derives from it).
 * Small zones spread neighbouring busy ranges over all nodes'
 * busy trees (and locks); a range always lives in the node of its start,
 * so lookups of inner addresses walk back at most nr_nodes nodes.
 *
 *   addr:  | zone 0 | zone 1 | zone 2 | zone 3 | zone 4 | ...
 *   node:  |   0    |   1    |   2    |   0    |   1    | ...  (3 nodes)
 */
#define ZONE_PAGES 16u

#define MAX_NODES 128

/*
 * @taken counts the requests for the pool's class (hits and misses), and
 * is never cleared: the purge notes it at every decay pass
 * (@taken_purged) and at every decay point of the node (@taken_decayed),
 * so the requests since either are a subtraction, read without the pool
 * lock.  @fill_quota is what the purges after a decay pass may add
 * (pool_decay(), pool_fill()).  The notes and the quota are under
 * purge_lock.
 */
struct pool {
	struct vlist head; /* LIFO: most recently purged first */
	atomic_size_t len;
	atomic_size_t taken;
	size_t taken_purged, taken_decayed;
	size_t fill_quota;
};

/* Per-node event counters; see VMAP_STAT_FIELDS for their meaning. */
#define NODE_COUNTERS(X)                                                       \
	X(alloc_failures)                                                      \
	X(frees)                                                               \
	X(pool_hits)                                                           \
	X(pool_misses)                                                         \
	X(cross_node_busy)                                                     \
	X(pooled)                                                              \
	X(pooled_cross_node)                                                   \
	X(decayed_vas)                                                         \
	X(other_node_lock)                                                     \
	X(pool_refills)                                                        \
	X(refilled)

struct node_counters {
#define NODE_COUNTER_MEMBER(name) atomic_uint_fast64_t name;
	NODE_COUNTERS(NODE_COUNTER_MEMBER)
#undef NODE_COUNTER_MEMBER
	/* Allocations that did not hit a pool; the statistic adds the hits. */
	atomic_uint_fast64_t heap_allocs;
};

/*
 * One node's lazy ranges, filed at free time by where the purge will send
 * them: a pool-bound range (tagged with this node, 1..256 pages) on the
 * list of its size class, anything else (untagged, or too large for a
 * pool) on the last list, LAZY_OTHER.  Each list is newest first.  So a free costs O(1), and
 * a purge fills each pool with one splice instead of visiting its ranges:
 * the kernel keeps lazy ranges in an address-ordered tree and visits
 * every one, which costs a tree insert per free and, at tens of thousands
 * of ranges, a purge long enough for the pools to run dry meanwhile.
 * Pools therefore receive a purge's ranges newest-freed first, where the
 * kernel's receive them in address order (see pool.c).
 */
#define LAZY_OTHER MAX_VA_SIZE_PAGES
#define LAZY_LISTS (MAX_VA_SIZE_PAGES + 1)

struct lazy_set {
	struct vlist lists[LAZY_LISTS]; /* by size class, then LAZY_OTHER */
	size_t class_len[MAX_VA_SIZE_PAGES];
	uint64_t lo, hi; /* bounds, for the one flush */
	uint64_t pages;
	size_t count;
	size_t cross; /* pool-bound ranges whose address is another node's */
};

/*
 * A vmap node: the busy ranges that start in its zones, and the lazy and
 * pooled ranges tagged with it (those its CPUs allocated, by default).
 * Each has its own lock so that CPUs on different nodes never meet.
 */
struct vmap_node {
	alignas(64) struct vlock busy_lock;
	struct busy_set busy;
	alignas(64) struct vlock lazy_lock;
	struct lazy_set *lazy; /* the set frees go to */
	/* Pages of its lazy sets that lazy_nr does not count yet (lazy.c). */
	atomic_uint_fast64_t lazy_uncounted;
	alignas(64) struct vlock pool_lock;
	struct pool pools[MAX_VA_SIZE_PAGES];
	/*
	 * The purge work item, owned by the purge in progress: the lazy set
	 * it detached by swapping @lazy to the other buffer.
	 */
	struct lazy_set *purging;
	bool skip_populate;
	uint64_t allocs_seen; /* node_allocs() at the last purge (purge_lock) */
	/* Pages its purged lazy sets held, and purges, since its last decay
	 * point (purge_lock). */
	uint64_t decay_pages;
	unsigned decay_purges;
	uint64_t refill_next; /* where the next refill starts (heap_lock) */
	struct lazy_set lazy_sets[2];
	unsigned id;
	struct node_counters count;
};

/* A pool refill in progress (pool.c): its records and the batch taken. */
struct refill {
	struct vmap_node *vn;
	struct free_heap_fit fit; /* the missing allocation's, first moved */
	size_t want, got;
	struct vlist recs, batch;
};

struct notifier {
	vmap_notifier_fn fn;
	void *cookie;
};

struct vmap_space {
	/*
	 * The hull of every span the space has had: first and last byte
	 * (which, unlike an end, never wraps).  Grows under heap_lock, read
	 * without it (span.c).
	 */
	atomic_uint_fast64_t hull_first, hull_last;
	uint64_t page_size;
	uint64_t lazy_max_pages;
	/* Pages a node's frees gather before adding them to lazy_nr (lazy.c). */
	uint64_t lazy_batch_pages;
	unsigned page_shift, zone_shift;
	unsigned nr_nodes;
	unsigned nr_cpus; /* its creator's usable CPUs (os_usable_cpus()) */
	unsigned flags;
	vmap_flush_fn flush;
	void *flush_cookie;
	vmap_release_fn release;
	void *release_cookie;
	struct vmap_node *nodes;

	alignas(64) struct vlock heap_lock;
	struct free_heap heap;
	/* Span records, in a plain set; @user marks the imported ones. */
	struct va_set spans;
	atomic_uint nr_spans;  /* written under heap_lock */
	vmap_import_fn import; /* NULL: no source */
	vmap_release_span_fn release_span;
	void *import_cookie;
	uint64_t quantum;
	struct vmap_space *parent; /* a child's source */

	alignas(64) atomic_uint_fast64_t lazy_nr;

	alignas(64) struct vlock purge_lock;
	atomic_uint_fast64_t purges, full_purges, backlog_purges, free_purges,
		shrinks, flushes;
	atomic_uint_fast64_t purge_helpers, purged_vas, purged_pages;
	atomic_uint_fast64_t notifier_rounds;
	atomic_uint_fast64_t set_overlaps; /* corrupt busy inserts */

	/*
	 * The drain: a free set drain_pending and queued the space for a
	 * worker.  Once a worker has taken it (drain_running), the next free
	 * past the threshold asks that worker to run it once more
	 * (drain_again) instead of queueing it for a second worker, which
	 * would only wait for the purge mutex.
	 */
	atomic_bool drain_pending;
	struct vlist drain_link;
	bool drain_queued, drain_running, drain_again;

	struct vlist registry_link; /* live spaces, for fork (fork.c) */

	pthread_rwlock_t notifier_lock;
	struct notifier *notifiers;
	unsigned nr_notifiers;

	struct trace *trace; /* NULL unless VMAP_TRACE is recording */
};

/* trace.c: the recording's lock, a no-op when the space does not record. */
static inline void trace_lock(struct vmap_space *s)
{
	if (s->trace)
		trace_lock_slow(s->trace);
}

static inline void trace_unlock(struct vmap_space *s)
{
	if (s->trace)
		trace_unlock_slow(s->trace);
}

static inline uint64_t space_first(const struct vmap_space *s)
{
	return atomic_load_explicit(&s->hull_first, memory_order_relaxed);
}

static inline uint64_t space_last(const struct vmap_space *s)
{
	return atomic_load_explicit(&s->hull_last, memory_order_relaxed);
}

/* A record that may enter the space's free heap (see struct va_indexed). */
static inline struct va *space_va_new(const struct vmap_space *s)
{
	return s->heap.indexed ? va_new_indexed() : va_new();
}

/* span.c */
void span_init(struct vmap_space *s, uint64_t first, uint64_t last);
int span_add(struct vmap_space *s, uint64_t first, uint64_t last,
	     bool imported);
bool span_window_ok(struct vmap_space *s, uint64_t first, uint64_t last,
		    uint64_t size);
bool span_contains(struct vmap_space *s, uint64_t first, uint64_t last);
int span_import(struct vmap_space *s, const struct free_heap_fit *f);
void span_release_free(struct vmap_space *s);
void span_destroy(struct vmap_space *s);

/* node.c */
static inline unsigned addr_to_node(const struct vmap_space *s, uint64_t addr)
{
	return (unsigned)((addr >> s->zone_shift) % s->nr_nodes);
}

static inline bool tag_by_address(const struct vmap_space *s)
{
	return (s->flags & VMAP_TAG_BY_ADDRESS) ||
	       !(s->flags & VMAP_KERNEL_POOLS);
}

/*
 * Whether requests over the whole space go through the pools.  The kernel
 * keeps none in a one-node space (the design before the node series), so
 * VMAP_KERNEL_POOLS keeps none there; our refilling pools pay in one node
 * too, since a pool hit spares the heap's search and split and, at the
 * purge, its merge (DESIGN.md section 17).  Immediate frees never pool.
 */
static inline bool space_pools(const struct vmap_space *s)
{
	return !(s->flags & VMAP_IMMEDIATE_FREE) &&
	       (s->nr_nodes > 1 || !(s->flags & VMAP_KERNEL_POOLS));
}

/*
 * Whether a freed range stays in its busy tree, idle, until it goes back
 * to the global heap, so that the pool hit that makes it busy again
 * needs no descent (DESIGN.md section 3).  Needs a range's pool to be
 * the node of its address, which the kernel's tagging does not give.
 */
static inline bool busy_keeps_idle(const struct vmap_space *s)
{
	return !(s->flags & (VMAP_KERNEL_POOLS | VMAP_IMMEDIATE_FREE));
}

static inline bool tag_valid(const struct vmap_space *s, uint32_t tag)
{
	return tag >= 1 && tag <= s->nr_nodes;
}

static inline uint64_t va_pages(const struct vmap_space *s, const struct va *va)
{
	return va_size(va) >> s->page_shift;
}

int nodes_create(struct vmap_space *s);
void nodes_lock_all(struct vmap_space *s);
void space_unlock_all(struct vmap_space *s);
void global_heap_return(struct vmap_space *s, struct vlist *list);
void nodes_destroy(struct vmap_space *s);
unsigned this_cpu(const struct vmap_space *s);
int thread_cpu_set(int cpu);
unsigned thread_cpu_get(void);
/*
 * @allocs (may be NULL) counts the allocation, before the range leaves
 * transit: a fork child then counts exactly the busy ranges it has.
 */
bool busy_insert(struct vmap_space *s, struct vmap_node *vn, struct va *va,
		 atomic_uint_fast64_t *allocs);
struct va *busy_unlink(struct vmap_space *s, uint64_t addr,
		       struct vmap_node *cpu_vn);
int busy_lookup(struct vmap_space *s, uint64_t addr, struct vmap_range *out);
int busy_next(struct vmap_space *s, uint64_t addr, struct vmap_range *out,
	      vmap_range_fn fn, void *cookie);
bool busy_overlaps(struct vmap_space *s, uint64_t first, uint64_t last);
void busy_forget(struct vmap_space *s, struct vlist *list);
bool busy_take_pooled(struct vmap_space *s, struct vmap_node *vn, uint64_t size,
		      uint64_t align, uint64_t user, uint64_t *start);

/* lazy.c */
uint64_t lazy_batch_size(const struct vmap_space *s);
uint64_t lazy_insert(struct vmap_space *s, struct va *va,
		     struct vmap_node *cpu_vn);
void lazy_count_node(struct vmap_space *s, struct vmap_node *vn);
uint64_t lazy_pages_now(struct vmap_space *s);
struct vmap_node *lazy_node_of(struct vmap_space *s, const struct va *va);
void lazy_set_init(struct lazy_set *ls);
void lazy_set_delete(struct lazy_set *ls);
void lazy_set_gather(struct lazy_set *ls, struct vlist *out);

/* pool.c */
struct va *pool_take(struct vmap_space *s, struct vmap_node *vn, uint64_t size,
		     uint64_t align);
void pool_refill_prepare(struct vmap_space *s, struct vmap_node *vn,
			 const struct free_heap_fit *f, struct refill *r);
void pool_refill_take(struct vmap_space *s, struct refill *r);
void pool_refill_finish(struct vmap_space *s, struct refill *r);
/* What one purge may add to each size class's pools (pool.c). */
struct pool_room {
	atomic_size_t ranges[MAX_VA_SIZE_PAGES];
};

void pool_room_measure(struct vmap_space *s, struct vmap_node **marked,
		       unsigned nr_marked, struct pool_room *room);
void pool_fill(struct vmap_node *vn, struct lazy_set *ls,
	       struct pool_room *room);
/* How a purge decays a node's pools (pool_decay()). */
enum pool_decay {
	DECAY_NONE, /* only the fill quotas: not a decay point */
	DECAY_IDLE, /* a quarter of each pool idle since the last decay point */
	DECAY_ALL,  /* a quarter of every pool */
	DECAY_FULL, /* every pool whole */
};

void pool_decay(struct vmap_space *s, struct vmap_node *vn,
		enum pool_decay how);
bool pools_empty(struct vmap_space *s);

/* purge.c */
void purge_init(struct vmap_space *s);
void purge_fini(struct vmap_space *s);
void drain_run(struct vmap_space *s);
bool purge_locked(struct vmap_space *s, bool full);
void purge_now(struct vmap_space *s, bool full);
void purge_kick(struct vmap_space *s, uint64_t nr_lazy,
		struct vmap_node *cpu_vn);
void shrink_now(struct vmap_space *s);
unsigned purge_helper_count(uint64_t lazy_pages, uint64_t lazy_max_pages,
			    unsigned marked);

/* fork.c */
void registry_add(struct vmap_space *s);
void registry_del(struct vmap_space *s);
/*
 * Transit slots (see fork.c): transit_ready() with no lock held, at the
 * entry of a call that moves ranges; the others inside the critical
 * section of the lock the range is taken under (transit_take for an
 * allocation, transit_free for a free) or put under (transit_done).
 * A pool refill's batch rides along with its allocation's range:
 * transit_batch(batch) under the heap lock it was taken under,
 * transit_batch(NULL) under the pool lock it is filed under.
 */
void transit_ready(void);
void transit_take(struct vmap_space *s, uint64_t start, uint64_t end);
void transit_take_pooled(struct vmap_space *s, struct va *va);
/* Whether this thread's transits are recorded (it has its slot). */
bool transit_recorded(void);
void transit_batch(struct vlist *batch);
void transit_free(struct vmap_space *s, struct va *va);
void transit_done(void);

#endif /* VMAP_INTERNAL_H */
