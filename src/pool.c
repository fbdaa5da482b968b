/* SPDX-License-Identifier: MIT */
/*
 * pool.c - per-node pools of purged ranges, one per page count 1..256,
 * and their decay.
 *
 * A node's pool_lock guards the lists of all its pools; each length is
 * written under it and read without it to skip empty pools cheaply.
 * Decay holds the pool lock only to detach and re-attach a list, and the
 * heap lock only for its one pass into the global heap.
 */
#include "internal.h"

static struct pool *pool_for(struct vmap_space *s, struct vmap_node *vn,
			     uint64_t size)
{
	uint64_t pages = size >> s->page_shift;

	if (pages == 0 || pages > MAX_VA_SIZE_PAGES)
		return NULL;
	return &vn->pools[pages - 1];
}

static size_t pool_len(struct pool *p)
{
	return atomic_load_explicit(&p->len, memory_order_relaxed);
}

static void pool_len_set(struct pool *p, size_t len)
{
	atomic_store_explicit(&p->len, len, memory_order_relaxed);
}

/*
 * Only the head is looked at: a LIFO pool's head is the most recently
 * purged range, the likeliest to be warm.  A misaligned head goes to the
 * tail so that the next request of this size sees another candidate, and
 * this request goes to the global heap rather than searching the list.
 */
struct va *pool_take(struct vmap_space *s, struct vmap_node *vn,
		     uint64_t size, uint64_t align)
{
	struct pool *p = pool_for(s, vn, size);
	struct va *va = NULL;

	if (!p || !pool_len(p))
		return NULL;
	vlock_acquire(&vn->pool_lock);
	if (!vlist_empty(&p->head)) {
		va = va_of_link(p->head.next);
		vlist_del(&va->link);
		if (va->start & (align - 1)) {
			vlist_add_tail(&va->link, &p->head);
			va = NULL;
		} else {
			pool_len_set(p, pool_len(p) - 1);
			transit_take(s, va->start, va->end);
		}
	}
	vlock_release(&vn->pool_lock);
	return va;
}

/*
 * Put a purged lazy set's pool-bound ranges into @vn's pools: one lock
 * hold, one splice per size class, newest-freed first in front of what
 * the pool held.  The kernel adds a purge's ranges one at a time in
 * address order; a splice keeps the pool LIFO without visiting (and
 * missing the cache on) every range.
 */
void pool_fill(struct vmap_node *vn, struct lazy_set *ls)
{
	struct pool *p;
	size_t pooled = 0;
	unsigned k;

	vlock_acquire(&vn->pool_lock);
	for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
		if (!ls->class_len[k])
			continue;
		p = &vn->pools[k];
		vlist_splice_head(&ls->lists[k], &p->head);
		pool_len_set(p, pool_len(p) + ls->class_len[k]);
		pooled += ls->class_len[k];
		ls->class_len[k] = 0;
	}
	vlock_release(&vn->pool_lock);
	counter_add(&vn->count.pooled, pooled);
	counter_add(&vn->count.pooled_cross_node, ls->cross);
}

bool pools_empty(struct vmap_space *s)
{
	unsigned i, k;

	for (i = 0; i < s->nr_nodes; i++)
		for (k = 0; k < MAX_VA_SIZE_PAGES; k++)
			if (pool_len(&s->nodes[i].pools[k]))
				return false;
	return true;
}

/*
 * Give a quarter of each pool back (all of it when @full), so that
 * address space cached by a node that stopped allocating drifts back to
 * the global heap over a few purges.  A quarter keeps a pool that is in
 * steady use close to its working size, while an idle one of n entries is
 * down to 1-3 entries after about log4(n) purges (integer division leaves
 * pools of 1-3 entries alone unless @full).
 *
 * Each pool's list is detached under the lock, the quarter to give back
 * is cut off its head (the most recently pooled ranges, as the kernel
 * does), and the rest is spliced back at once, in front of whatever was
 * added meanwhile: the kernel replaced the list on re-attach and lost such
 * entries.  Only then are the cut ranges coalesced, in a private heap,
 * and moved into the global heap in one locked pass, so that the pool
 * looks empty to its node's allocations only for the length of the cut.
 * Caller holds purge_lock (a purge or a shrink).
 */
void pool_decay(struct vmap_space *s, struct vmap_node *vn, bool full)
{
	struct vlist detached, decayed, merged;
	struct heap local;
	size_t len, n_decay;
	struct pool *p;
	unsigned i;

	vlock_assert_held(&s->purge_lock);
	heap_init(&local);
	vlist_init(&merged);
	for (i = 0; i < MAX_VA_SIZE_PAGES; i++) {
		p = &vn->pools[i];
		if (!pool_len(p))
			continue;
		vlock_acquire(&vn->pool_lock);
		vlist_move_all(&p->head, &detached);
		len = pool_len(p);
		pool_len_set(p, 0);
		vlock_release(&vn->pool_lock);

		n_decay = full ? len : len / 4;
		vlist_cut_head(&detached, n_decay, &decayed);
		if (!vlist_empty(&detached)) {
			vlock_acquire(&vn->pool_lock);
			vlist_splice_head(&detached, &p->head);
			pool_len_set(p, pool_len(p) + len - n_decay);
			vlock_release(&vn->pool_lock);
		}
		heap_return_list(&local, &decayed, &merged);
		counter_add(&vn->count.decayed_vas, n_decay);
	}
	va_set_take_all(&local.set, &detached);
	global_heap_return(s, &detached);
	va_delete_list(&merged);
}
