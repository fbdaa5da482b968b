/* SPDX-License-Identifier: MIT */
/*
 * purge.c - turning lazy ranges back into usable ones: the purge, its
 * helper threads, the drain thread that starts it, and shrink.
 *
 * Locks: purge_lock serialises purges and shrinks and owns every node's
 * purge work item (purge_list, skip_populate) while held.  Helpers work
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

/* Tell the release callback about each run of adjacent ranges. */
static void release_runs(struct vmap_space *s, struct vlist *list)
{
	uint64_t start = 0, end = 0;
	struct va *va;

	vlist_for_each_va(va, list) {
		if (end && va->start == end) {
			end = va->end;
			continue;
		}
		if (end)
			s->release(s->release_cookie, start, end);
		start = va->start;
		end = va->end;
	}
	if (end)
		s->release(s->release_cookie, start, end);
}

/*
 * Purge one node's work item: each range goes to its tag's pool (which
 * is this node: lazy ranges live in the node of their tag) unless pools
 * are skipped, the rest to the global heap in one locked pass.  The lazy
 * count drops only now, after the ranges are usable again.
 */
static void purge_node(struct vmap_space *s, struct vmap_node *vn)
{
	uint64_t pages = 0, nr = 0;
	struct vlist to_heap;
	struct va *va, *tmp;

	if (s->release)
		release_runs(s, &vn->purge_list);
	vlist_init(&to_heap);
	vlist_for_each_va_safe(va, tmp, &vn->purge_list) {
		vlist_del(&va->link);
		pages += va_pages(s, va);
		nr++;
		if (!vn->skip_populate && tag_valid(s, va->tag) &&
		    pool_put(s, vn, va))
			continue;
		vlist_add_tail(&va->link, &to_heap);
	}
	global_heap_return(s, &to_heap);
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
	uint64_t start = UINT64_MAX, end = 0;
	unsigned nr_marked = 0, nr_helpers, queued, i;
	struct vmap_node *vn;

	for (i = 0; i < s->nr_nodes; i++) {
		vn = &s->nodes[i];
		vn->skip_populate = full;
		pool_decay(s, vn, full);

		vlock_acquire(&vn->lazy_lock);
		va_set_take_all(&vn->lazy, &vn->purge_list);
		vlock_release(&vn->lazy_lock);
		if (vlist_empty(&vn->purge_list))
			continue;
		if (va_of_link(vn->purge_list.next)->start < start)
			start = va_of_link(vn->purge_list.next)->start;
		if (va_of_link(vn->purge_list.prev)->end > end)
			end = va_of_link(vn->purge_list.prev)->end;
		marked[nr_marked++] = vn;
	}
	if (full)
		counter_add(&s->full_purges, 1);
	if (!nr_marked)
		return false;

	if (s->flush) {
		s->flush(s->flush_cookie, start, end);
		counter_add(&s->flushes, 1);
	}
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
		purge_now(s, false);
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
		purge_now(s, false);
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
		purge_now(s, false);
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
