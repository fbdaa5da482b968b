/* SPDX-License-Identifier: MIT */
/*
 * purge.c - turning lazy ranges back into usable ones: the purge, the
 * job it hands to helper workers, the drain that starts it, and shrink.
 *
 * Locks: the trace lock, while the space records, is taken first (by
 * the API call, or here by the drain).  purge_lock serialises purges and
 * shrinks and owns every node's purge work item (purging, skip_populate)
 * while held.  Helpers work under the purging thread's purge_lock (it
 * waits for them before dropping it).  The workers themselves (worker.c) are the process's,
 * shared by all spaces, with their own lock.
 */
#include <stdlib.h>

#include "fault.h"
#include "internal.h"
#include "os.h"
#include "probes.h"
#include "worker.h"

unsigned purge_helper_count(uint64_t lazy_pages, uint64_t lazy_max_pages,
			    unsigned marked)
{
	uint64_t n = lazy_pages / lazy_max_pages;

	if (n < 1)
		n = 1;
	if (n > marked)
		n = marked;
	return (unsigned)n - 1;
}

static int cmp_start(const void *x, const void *y)
{
	const struct va *const *a = x, *const *b = y;

	return (*a)->start < (*b)->start ? -1 : (*a)->start > (*b)->start;
}

/*
 * Tell the release callback about each maximal run of adjacent ranges
 * among everything this purge takes, across nodes, so that the memory
 * behind them goes back in as few calls as possible (per node, ranges of
 * neighbouring zones would be released apart).  Sorting needs a scratch
 * array; without one, each range goes alone.
 */
static void release_runs(struct vmap_space *s, struct vmap_node **marked,
			 unsigned nr_marked)
{
	struct va **sorted = NULL, *va;
	uint64_t start = 0, end = 0; /* end 0: a run that ends at 2^64 */
	size_t total = 0, n = 0, i;
	bool in_run = false;
	unsigned m, k;

	for (m = 0; m < nr_marked; m++)
		total += marked[m]->purging->count;
	if (!fault_hit(FAULT_VA_ALLOC))
		sorted = malloc(total * sizeof(*sorted));
	for (m = 0; m < nr_marked; m++) {
		struct lazy_set *ls = marked[m]->purging;

		for (k = 0; k < LAZY_LISTS; k++) {
			vlist_for_each_va(va, &ls->lists[k]) {
				if (sorted)
					sorted[n++] = va;
				else
					s->release(s->release_cookie, va->start,
						   va->end);
			}
		}
	}
	if (!sorted)
		return;
	qsort(sorted, n, sizeof(*sorted), cmp_start);
	for (i = 0; i < n; i++) {
		if (in_run && sorted[i]->start == end) {
			end = sorted[i]->end;
			continue;
		}
		if (in_run)
			s->release(s->release_cookie, start, end);
		start = sorted[i]->start;
		end = sorted[i]->end;
		in_run = true;
	}
	if (in_run)
		s->release(s->release_cookie, start, end);
	free(sorted);
}

/*
 * Purge one node's work item: pool-bound ranges to this node's pools
 * (lazy ranges live in the node of their tag) unless pools are skipped,
 * the rest out of their busy trees where the space keeps idle ranges,
 * then to the global heap in one locked pass.  The lazy count drops
 * only now, after the ranges are usable again.
 */
static void purge_node(struct vmap_space *s, struct vmap_node *vn,
		       struct pool_room *room)
{
	struct lazy_set *ls = vn->purging;
	uint64_t pages = ls->pages, nr = ls->count;
	struct vlist to_heap;

	if (!vn->skip_populate)
		pool_fill(vn, ls, room);
	vlist_init(&to_heap);
	lazy_set_gather(ls, &to_heap);
	busy_forget(s, &to_heap);
	global_heap_return(s, &to_heap);
	vn->purging = NULL;
	/* Counted first, so a reader who saw the lazy count drop sees them. */
	counter_add(&s->purged_vas, nr);
	counter_add(&s->purged_pages, pages);
	atomic_fetch_sub(&s->lazy_nr, pages);
}

/* A purge job: one piece per marked node. */
struct purge_job {
	struct job job;
	struct vmap_space *space;
	struct vmap_node **nodes;
	struct pool_room *room;
};

static void purge_piece(struct job *job, unsigned piece)
{
	struct purge_job *pj = (struct purge_job *)job;

	purge_node(pj->space, pj->nodes[piece], pj->room);
}

static uint64_t node_allocs(const struct vmap_node *vn)
{
	return counter_read(&vn->count.heap_allocs) +
	       counter_read(&vn->count.pool_hits);
}

/*
 * Has a node other than @vn taken an allocation since the last purge?
 * Each purge notes the counts (purge_locked()); the caller holds the
 * purge mutex, which guards them.
 */
static bool others_allocated(struct vmap_space *s, const struct vmap_node *vn)
{
	unsigned i;

	vlock_assert_held(&s->purge_lock);
	for (i = 0; i < s->nr_nodes; i++)
		if (&s->nodes[i] != vn &&
		    node_allocs(&s->nodes[i]) != s->nodes[i].allocs_seen)
			return true;
	return false;
}

/*
 * A busy node comes to a decay point at least once per this many purges
 * per node in the space, however little its lazy sets hold.
 */
#define DECAY_PURGES_PER_NODE 4

/*
 * How this purge decays @vn's pools, of @pages purged in all.  The kernel
 * decays every pool at every purge.  Refilling pools decay at a decay
 * point of their node, and then only those idle since the last one: at
 * every purge while the node takes no allocation (every pool is idle
 * then), and otherwise once the node's own lazy sets have held a whole
 * purge's pages since its last point.  Whether a pool is idle is thus
 * judged over about as many of its node's frees as one CPU alone would
 * make between two purges: with a purge clock common to all nodes, each
 * of n busy nodes sees 1/n of a purge's frees between two purges, and
 * ever more of its pools look idle.  With sizes of 1-100 pages at two
 * threads, two nodes gave 8% of their pooled ranges back at every-purge
 * decay, and refilled them from the heap.  A node that allocates a
 * trickle and frees little would hold its idle pools until a full purge,
 * so it comes to a point after DECAY_PURGES_PER_NODE * nodes purges in
 * any case: four times as late as n nodes alike.  The counts are of
 * purged pages and of purges, not of lazy_max_pages, which a replay sets
 * out of reach.  @idle: the node took no allocation since the last purge.
 * Caller holds purge_lock; called once per node per purge, after the lazy
 * sets are detached.
 */
static enum pool_decay decay_point(struct vmap_space *s, struct vmap_node *vn,
				   bool full, bool idle, uint64_t pages)
{
	if (vn->purging)
		vn->decay_pages += vn->purging->pages;
	vn->decay_purges++;
	if (!full && !(s->flags & VMAP_KERNEL_POOLS) && !idle &&
	    (!pages || vn->decay_pages < pages) &&
	    vn->decay_purges < DECAY_PURGES_PER_NODE * s->nr_nodes)
		return DECAY_NONE;
	vn->decay_pages = 0;
	vn->decay_purges = 0;
	if (full)
		return DECAY_FULL;
	if ((s->flags & VMAP_KERNEL_POOLS) || idle)
		return DECAY_ALL;
	return DECAY_IDLE;
}

/* Is more than BACKLOG_LIMIT thresholds lazy (purge_kick())? */
#define BACKLOG_LIMIT 3

static bool backlogged(const struct vmap_space *s, uint64_t lazy)
{
	return s->lazy_max_pages <= UINT64_MAX / BACKLOG_LIMIT &&
	       lazy > BACKLOG_LIMIT * s->lazy_max_pages;
}

/*
 * How many nodes this purge hands to helpers, from the lazy count read
 * before it subtracts anything and the CPUs known busy (@busy: one per
 * node that took an allocation since the last purge, and this thread's
 * if its node is not among them).  The kernel's formula: one node per
 * lazy_max_pages of backlog goes to a helper, the rest (at least one) is
 * purged inline, so a small backlog costs no thread wake-ups and a large
 * one is spread over CPUs.  Pools that refill themselves do not wait for
 * purges, so there a purge's length matters only once the backlog is
 * over its bound (frees then purge themselves): below it the purge takes
 * no helper.  With sizes of 1-100 pages at two threads on two vCPUs, half
 * the purges took one, a thread more competing with the program's
 * (random_size, two nodes: 1.76-2.04x the one-lock design with them,
 * 1.98-2.43x without).  Past the bound they take at most the usable CPUs
 * that neither an allocating node nor this purge keeps busy: a helper on a
 * busy CPU only takes turns with the program (two threads on two vCPUs
 * still had one in nearly every backlogged purge, 650 helpers in 2 M
 * pairs, and were 10-20% slower for it).
 */
static unsigned helpers_for(struct vmap_space *s, unsigned nr_marked,
			    unsigned busy)
{
	uint64_t lazy = atomic_load(&s->lazy_nr);
	unsigned formula, idle;

	/*
	 * Recording purges every node inline, in node order, as a replay
	 * does: nodes returned to the heap in another order leave its tree
	 * another shape, and placement above a page depends on the shape.
	 */
	if ((s->flags & VMAP_DETERMINISTIC) || s->trace)
		return 0;
	formula = purge_helper_count(lazy, s->lazy_max_pages, nr_marked);
	if (s->flags & VMAP_KERNEL_POOLS)
		return formula;
	if (!backlogged(s, lazy))
		return 0;
	idle = s->nr_cpus > busy ? s->nr_cpus - busy : 0;
	return formula < idle ? formula : idle;
}

/*
 * One purge (DESIGN.md sections 3, 6 and 7).  Caller holds purge_lock.
 * Returns true if there were lazy ranges.
 */
bool purge_locked(struct vmap_space *s, bool full)
{
	struct vmap_node *marked[MAX_NODES];
	struct pool_room room;
	uint64_t start = UINT64_MAX, last = 0, npurged = 0, pages = 0;
	unsigned nr_marked = 0, nr_helpers, busy = 0, i,
		 self = s->nr_nodes > 1 ? this_cpu(s) % s->nr_nodes : 0;
	bool idle[MAX_NODES], self_busy = false;
	uint64_t allocs;
	struct purge_job pj;
	struct vmap_node *vn;

	vlock_assert_held(&s->purge_lock);
	if (s->trace)
		trace_purge(s, full);
	for (i = 0; i < s->nr_nodes; i++) {
		vn = &s->nodes[i];
		vn->skip_populate = full;
		allocs = node_allocs(vn);
		idle[i] = allocs == vn->allocs_seen;
		vn->allocs_seen = allocs;
		if (!idle[i]) {
			busy++;
			self_busy |= i == self;
		}

		/* Detach the node's lazy set by pointing frees at the other one. */
		vlock_acquire(&vn->lazy_lock);
		if (vn->lazy->count) {
			lazy_count_node(s, vn);
			vn->purging = vn->lazy;
			vn->lazy =
				&vn->lazy_sets[vn->lazy == &vn->lazy_sets[0]];
			start = vn->purging->lo < start ? vn->purging->lo :
							  start;
			if (vn->purging->hi - 1 > last)
				last = vn->purging->hi - 1;
			npurged += vn->purging->count;
			pages += vn->purging->pages;
		}
		vlock_release(&vn->lazy_lock);
		if (vn->purging)
			marked[nr_marked++] = vn;
	}
	for (i = 0; i < s->nr_nodes; i++)
		pool_decay(s, &s->nodes[i],
			   decay_point(s, &s->nodes[i], full, idle[i], pages));
	if (full)
		counter_add(&s->full_purges, 1);
	if (!nr_marked)
		return false;

	if (s->flush) {
		s->flush(s->flush_cookie, start, last + 1);
		counter_add(&s->flushes, 1);
	}
	if (s->release)
		release_runs(s, marked, nr_marked);
	/* This thread's CPU is busy too, if its node did not count it. */
	nr_helpers = helpers_for(s, nr_marked, busy + !self_busy);
	if (!full)
		pool_room_measure(s, marked, nr_marked, &room);
	pj.job.run = purge_piece;
	pj.job.pieces = nr_helpers;
	pj.space = s;
	pj.nodes = marked;
	pj.room = &room;
	if (!nr_helpers || !workers_submit(&pj.job))
		nr_helpers = 0;
	/* Counted before any node is done, so a reader who saw the lazy
	 * count drop sees the purge and its helpers too. */
	counter_add(&s->purges, 1);
	counter_add(&s->purge_helpers, nr_helpers);
	for (i = nr_helpers; i < nr_marked; i++)
		purge_node(s, marked[i], &room);
	if (nr_helpers)
		workers_finish(&pj.job);
	VMAP_PROBE(purge_vmap_area_lazy, start, last + 1, npurged);
	return true;
}

/*
 * The purge mutex is the one lock of a space held across waits (for
 * helpers, and the user's flush and release callbacks), so every caller
 * disables cancellation around it: a thread cancelled while holding it
 * would block every later purge, shrink and full allocation.
 */
static int purge_lock_take(struct vmap_space *s)
{
	int cancel_state = os_cancel_off();

	vlock_take(&s->purge_lock);
	return cancel_state;
}

static void purge_lock_drop(struct vmap_space *s, int cancel_state)
{
	vlock_release(&s->purge_lock);
	os_cancel_restore(cancel_state);
}

void purge_now(struct vmap_space *s, bool full)
{
	int cancel_state = purge_lock_take(s);

	purge_locked(s, full);
	purge_lock_drop(s, cancel_state);
}

/*
 * The drain's purge, only if the lazy count is still over the threshold
 * once the purge mutex is ours.  Frees that land while a purge runs see
 * the count before that purge subtracts it and ask for another drain; the
 * kernel's drain purges regardless, and that second purge finds almost
 * nothing lazy yet decays the pools the first one just filled (in a
 * one-thread fix_size run, 19-24% of allocations then missed their pool;
 * 7-8% with this check).  Unless @wait, it gives up at once if another
 * purge holds the mutex: then it returns false.  With @alone (may be
 * NULL), it also gives up, returning false, if a node other than @alone
 * took an allocation since the last purge.  *@purged (may be NULL) tells
 * whether it purged.
 */
static bool drain_purge(struct vmap_space *s, bool wait,
			const struct vmap_node *alone, bool *purged)
{
	int cancel_state = os_cancel_off();
	bool locked = wait, taken, did = false;

	trace_lock(s);
	if (wait)
		vlock_take(&s->purge_lock);
	else
		locked = vlock_try(&s->purge_lock);
	taken = locked && !(alone && others_allocated(s, alone));
	if (taken && atomic_load(&s->lazy_nr) > s->lazy_max_pages)
		did = purge_locked(s, false);
	if (locked)
		vlock_release(&s->purge_lock);
	trace_unlock(s);
	os_cancel_restore(cancel_state);
	if (purged)
		*purged = did;
	return taken;
}

/* A worker runs a queued drain; re-armed first, as frees may need another. */
void drain_run(struct vmap_space *s)
{
	atomic_store(&s->drain_pending, false);
	drain_purge(s, true, NULL, NULL);
}

void shrink_now(struct vmap_space *s)
{
	int cancel_state = purge_lock_take(s);
	unsigned i;

	if (s->trace)
		trace_shrink(s);
	for (i = 0; i < s->nr_nodes; i++)
		pool_decay(s, &s->nodes[i], DECAY_FULL);
	counter_add(&s->shrinks, 1);
	purge_lock_drop(s, cancel_state);
}

/*
 * A free crossed the threshold.  Only the first free to see it queues a
 * drain for the process's workers; the others return at once.  Where no
 * worker can be started, or in deterministic mode, the freeing thread
 * purges itself.
 *
 * Two more cases purge in the free, only in spaces that keep neither the
 * kernel's pools nor a flush or release callback: a purge there runs no
 * code of the user's, so a free still never calls back into the program
 * (whose locks it may be holding, or whose callback may free into another
 * space whose purge is waiting on this one), and only waits for the
 * library's own work (DESIGN.md section 17):
 *  - The drain fell behind: its worker waits for a CPU on a loaded
 *    machine, or one thread frees faster than a purge returns ranges (a
 *    thread freeing a million one-page ranges had 200 000 lazy pages
 *    against a threshold of 16 384).  Lazy ranges hold address space no
 *    search can use, and an allocation that fails purges all of them
 *    first, so a free that finds more than BACKLOG_LIMIT thresholds lazy
 *    purges itself, after the purge in progress if there is one (the
 *    purge mutex keeps purges one at a time, and drain_purge() skips the
 *    purge if that one brought the count down).  Frees then go at the
 *    pace of purges.
 *  - Only the freeing thread's node (@cpu_vn) allocated since the last
 *    purge, as in a space of one node or a program with one thread:
 *    there is no other allocating CPU for a drain to keep the purge away
 *    from, and a drain on another CPU would leave the pooled ranges'
 *    records in that CPU's cache (random sizes of 1-100 pages, one
 *    thread, two nodes: 168-178 ns per pair with the drain, 119-124
 *    purging in the free).  The free purges if no purge is running or
 *    pending, and queues the drain if one is running, so that what it
 *    freed is purged.  With two threads allocating, the purge in the free
 *    cost random_size a quarter more than the drain, so then the drain
 *    keeps it.
 * The kernel only queues its drain; VMAP_KERNEL_POOLS keeps that.
 */
void purge_kick(struct vmap_space *s, uint64_t nr_lazy,
		struct vmap_node *cpu_vn)
{
	bool purged, here = !(s->flags & VMAP_KERNEL_POOLS) && !s->flush &&
			    !s->release;

	if (s->flags & VMAP_DETERMINISTIC) {
		drain_purge(s, true, NULL, NULL);
		return;
	}
	if (here && backlogged(s, nr_lazy)) {
		drain_purge(s, true, NULL, &purged);
		if (purged)
			counter_add(&s->backlog_purges, 1);
		return;
	}
	if (here && !atomic_load(&s->drain_pending) &&
	    drain_purge(s, false, cpu_vn, &purged)) {
		if (purged)
			counter_add(&s->free_purges, 1);
		return;
	}
	if (atomic_exchange(&s->drain_pending, true))
		return;
	if (!workers_drain(s)) {
		atomic_store(&s->drain_pending, false);
		drain_purge(s, true, NULL, NULL);
	}
}

void purge_init(struct vmap_space *s)
{
	vlock_init(&s->purge_lock);
	atomic_init(&s->drain_pending, false);
	s->drain_queued = false;
	s->drain_running = s->drain_again = false;
}

void purge_fini(struct vmap_space *s)
{
	workers_forget(s);
}
