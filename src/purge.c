/* SPDX-License-Identifier: MIT */
/*
 * purge.c - turning lazy ranges back into usable ones: the purge, its
 * helper threads, the drain thread that starts it, and shrink.
 *
 * Locks: purge_lock serialises purges and shrinks and owns every node's
 * purge work item (purging, skip_populate) while held.  Helpers work
 * under the purging thread's purge_lock (it waits for them before
 * dropping it); the helpers' own mutex guards only their queue.  The
 * drain mutex guards only the drain thread's request flags.
 */
#include <errno.h>
#include <stdlib.h>

#include "fault.h"
#include "internal.h"
#include "os.h"

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
	uint64_t start = 0, end = 0;	/* end 0: a run that ends at 2^64 */
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
					s->release(s->release_cookie, va->start, va->end);
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
 * the rest to the global heap in one locked pass.  The lazy count drops
 * only now, after the ranges are usable again.
 */
static void purge_node(struct vmap_space *s, struct vmap_node *vn)
{
	struct lazy_set *ls = vn->purging;
	uint64_t pages = ls->pages, nr = ls->count;
	struct vlist to_heap;

	if (!vn->skip_populate)
		pool_fill(vn, ls);
	vlist_init(&to_heap);
	lazy_set_gather(ls, &to_heap);
	global_heap_return(s, &to_heap);
	vn->purging = NULL;
	atomic_fetch_sub(&s->lazy_nr, pages);
	counter_add(&s->purged_vas, nr);
	counter_add(&s->purged_pages, pages);
}

static void *helper_main(void *arg)
{
	struct vmap_space *s = arg;
	struct purge_helpers *h = &s->helpers;
	struct vmap_node *vn;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->queued && !h->stop)
			pthread_cond_wait(&h->work, &h->lock);
		if (!h->queued)
			break;
		vn = h->queue[--h->queued];
		pthread_mutex_unlock(&h->lock);
		purge_node(s, vn);
		counter_add(&s->purge_helpers, 1);
		pthread_mutex_lock(&h->lock);
		if (--h->pending == 0)
			pthread_cond_broadcast(&h->done);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/*
 * Queue @n nodes for helper threads, starting threads up to @n on
 * demand.  Returns how many were queued: none if no thread runs (the
 * caller then purges them inline).
 */
static unsigned helpers_queue(struct vmap_space *s, struct vmap_node **nodes,
			      unsigned n)
{
	struct purge_helpers *h = &s->helpers;
	unsigned i;

	pthread_mutex_lock(&h->lock);
	while (h->nr_threads < n &&
	       os_thread_start(&h->threads[h->nr_threads], helper_main, s) == 0)
		h->nr_threads++;
	if (!h->nr_threads)
		n = 0;
	for (i = 0; i < n; i++)
		h->queue[h->queued++] = nodes[i];
	h->pending += n;
	pthread_mutex_unlock(&h->lock);
	if (n)
		pthread_cond_broadcast(&h->work);
	return n;
}

static void helpers_wait(struct vmap_space *s)
{
	struct purge_helpers *h = &s->helpers;

	pthread_mutex_lock(&h->lock);
	while (h->pending)
		pthread_cond_wait(&h->done, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

/*
 * One purge (SPEC 3.3-3.5).  Caller holds purge_lock.  Returns true if
 * there were lazy ranges.
 *
 * The helper count comes from the lazy count read before this purge
 * subtracts anything: one node per lazy_max_pages of backlog goes to a
 * helper, the rest (at least one) is purged inline, so a small backlog
 * costs no thread wake-ups and a large one is spread over CPUs.
 */
bool purge_locked(struct vmap_space *s, bool full)
{
	struct vmap_node *marked[MAX_NODES];
	uint64_t start = UINT64_MAX, last = 0;
	unsigned nr_marked = 0, nr_helpers, queued, i;
	struct vmap_node *vn;

	for (i = 0; i < s->nr_nodes; i++) {
		vn = &s->nodes[i];
		vn->skip_populate = full;
		pool_decay(s, vn, full);

		/* Detach the node's lazy set by pointing frees at the other one. */
		vlock_acquire(&vn->lazy_lock);
		if (vn->lazy->count) {
			vn->purging = vn->lazy;
			vn->lazy = &vn->lazy_sets[vn->lazy == &vn->lazy_sets[0]];
			start = vn->purging->lo < start ? vn->purging->lo : start;
			if (vn->purging->hi - 1 > last)
				last = vn->purging->hi - 1;
		}
		vlock_release(&vn->lazy_lock);
		if (vn->purging)
			marked[nr_marked++] = vn;
	}
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
	nr_helpers = 0;
	if (!(s->flags & VMAP_DETERMINISTIC))
		nr_helpers = purge_helper_count(atomic_load(&s->lazy_nr),
						s->lazy_max_pages, nr_marked);
	queued = nr_helpers ? helpers_queue(s, marked, nr_helpers) : 0;
	for (i = queued; i < nr_marked; i++)
		purge_node(s, marked[i]);
	if (queued)
		helpers_wait(s);
	counter_add(&s->purges, 1);
	return true;
}

void purge_now(struct vmap_space *s, bool full)
{
	pthread_mutex_lock(&s->purge_lock);
	purge_locked(s, full);
	pthread_mutex_unlock(&s->purge_lock);
}

/*
 * The drain's purge, only if the lazy count is still over the threshold
 * once the purge mutex is ours.  Frees that land while a purge runs see
 * the count before that purge subtracts it and ask for another drain; the
 * kernel's drain purges regardless, and that second purge finds almost
 * nothing lazy yet decays the pools the first one just filled (in a
 * one-thread fix_size run, 19-24% of allocations then missed their pool;
 * 7-8% with this check).
 */
static void drain_purge(struct vmap_space *s)
{
	pthread_mutex_lock(&s->purge_lock);
	if (atomic_load(&s->lazy_nr) > s->lazy_max_pages)
		purge_locked(s, false);
	pthread_mutex_unlock(&s->purge_lock);
}

void shrink_now(struct vmap_space *s)
{
	unsigned i;

	pthread_mutex_lock(&s->purge_lock);
	for (i = 0; i < s->nr_nodes; i++)
		pool_decay(s, &s->nodes[i], true);
	counter_add(&s->shrinks, 1);
	pthread_mutex_unlock(&s->purge_lock);
}

static void *drain_main(void *arg)
{
	struct vmap_space *s = arg;
	struct drain *d = &s->drain;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		while (!d->requested && !d->stop)
			pthread_cond_wait(&d->wake, &d->lock);
		if (d->stop)
			break;
		d->requested = false;
		pthread_mutex_unlock(&d->lock);
		/* Re-arm before purging: frees during the purge may need another. */
		atomic_store(&d->pending, false);
		drain_purge(s);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/*
 * A free crossed the threshold.  Only the first free to see it wakes the
 * drain thread (started here the first time); the others return at once.
 * Where no thread can be started, or in deterministic mode, the freeing
 * thread purges itself.
 */
void purge_kick(struct vmap_space *s)
{
	struct drain *d = &s->drain;
	bool inline_purge = false;

	if (s->flags & VMAP_DETERMINISTIC) {
		drain_purge(s);
		return;
	}
	if (atomic_exchange(&d->pending, true))
		return;
	pthread_mutex_lock(&d->lock);
	if (!d->started && os_thread_start(&d->thread, drain_main, s) == 0)
		d->started = true;
	if (d->started) {
		d->requested = true;
		pthread_cond_signal(&d->wake);
	} else {
		inline_purge = true;
	}
	pthread_mutex_unlock(&d->lock);
	if (inline_purge) {
		atomic_store(&d->pending, false);
		drain_purge(s);
	}
}

int purge_init(struct vmap_space *s)
{
	struct purge_helpers *h = &s->helpers;
	struct drain *d = &s->drain;

	if (fault_hit(FAULT_SPACE_ALLOC))
		return -ENOMEM;
	h->queue = calloc(s->nr_nodes, sizeof(*h->queue));
	h->threads = calloc(s->nr_nodes, sizeof(*h->threads));
	if (!h->queue || !h->threads) {
		free(h->queue);
		free(h->threads);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->work, NULL);
	pthread_cond_init(&h->done, NULL);
	h->queued = h->pending = h->nr_threads = 0;
	h->stop = false;

	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->wake, NULL);
	d->started = d->requested = d->stop = false;
	atomic_init(&d->pending, false);
	return 0;
}

void purge_fini(struct vmap_space *s)
{
	struct purge_helpers *h = &s->helpers;
	struct drain *d = &s->drain;
	unsigned i;

	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	if (d->started)
		pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);

	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_broadcast(&h->work);
	pthread_mutex_unlock(&h->lock);
	for (i = 0; i < h->nr_threads; i++)
		pthread_join(h->threads[i], NULL);
	pthread_cond_destroy(&h->work);
	pthread_cond_destroy(&h->done);
	pthread_mutex_destroy(&h->lock);
	free(h->queue);
	free(h->threads);
}
