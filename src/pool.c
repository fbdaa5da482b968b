/* SPDX-License-Identifier: MIT */
/*
 * pool.c - per-node pools of purged ranges, one per page count 1..256,
 * and their decay.
 *
 * A node's pool_lock guards the lists of all its pools; each length and
 * request count is written under it and read without it (to skip empty
 * pools cheaply, and by decay).
 * Decay holds the pool lock only to detach and re-attach a list, and the
 * heap lock only for its one pass into the global heap.  A refill holds
 * the heap lock for its batch of searches, then the pool lock to file
 * the batch: never both.
 */
#include <errno.h>

#include "internal.h"

static struct pool *pool_for(struct vmap_space *s, struct vmap_node *vn,
			     uint64_t size)
{
	uint64_t pages = size >> s->page_shift;

	if (pages == 0 || pages > MAX_VA_SIZE_PAGES)
		return NULL;
	return &vn->pools[pages - 1];
}

/*
 * A pool's length and take count are written under its node's pool lock
 * and may be read without it, to skip an empty or unused pool cheaply.
 */
static size_t load_relaxed(atomic_size_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void store_relaxed(atomic_size_t *v, size_t n)
{
	atomic_store_explicit(v, n, memory_order_relaxed);
}

/*
 * Only the head is looked at: a LIFO pool's head is the most recently
 * purged range, the likeliest to be warm.  A misaligned head goes to the
 * tail so that the next request of this size sees another candidate, and
 * this request goes to the global heap rather than searching the list.
 */
struct va *pool_take(struct vmap_space *s, struct vmap_node *vn, uint64_t size,
		     uint64_t align)
{
	struct pool *p = pool_for(s, vn, size);
	struct va *va = NULL;

	if (!p || !load_relaxed(&p->len))
		return NULL;
	vlock_acquire(&vn->pool_lock);
	if (!vlist_empty(&p->head)) {
		va = va_of_link(p->head.next);
		vlist_del(&va->link);
		if (va->start & (align - 1)) {
			vlist_add_tail(&va->link, &p->head);
			va = NULL;
		} else {
			store_relaxed(&p->len, load_relaxed(&p->len) - 1);
			store_relaxed(&p->taken, load_relaxed(&p->taken) + 1);
			counter_add_locked(&vn->count.pool_hits, 1);
			transit_take_pooled(s, va);
		}
	}
	vlock_release(&vn->pool_lock);
	return va;
}

/*
 * A refill takes REFILL_PAGES pages' worth of ranges of one size class,
 * and at least REFILL_MIN ranges, under the heap lock acquisition of a
 * pool miss: 256 one-page ranges, one heap lock per 257 allocations while
 * purges are late; 16 ranges of 100 pages (with 256 pages' worth, mixed
 * sizes of 1-100 pages missed 9% of the time, with 16 at least 3%).  It
 * never takes more than 1/REFILL_SHARE of the free heap per node, so that
 * small spaces are not parcelled out into pools (whose ranges also make
 * every vmap_check() longer).  Its searches, which hold the heap lock,
 * are bounded: two per range of the batch and REFILL_TRIES more (a range
 * costs one, a jump to the next own zone one more); a batch that runs
 * out of them ends early.  Requests aligned beyond a zone get no batch:
 * each of its ranges would sit alone in an aligned slot, scattering
 * pooled pages over the space.
 */
#define REFILL_PAGES 256
#define REFILL_MIN 16
#define REFILL_SHARE 64
#define REFILL_TRIES 16

static size_t refill_count(const struct vmap_space *s, uint64_t pages,
			   uint64_t align)
{
	uint64_t free_pages = atomic_load_explicit(&s->heap.free_bytes,
						   memory_order_relaxed) >>
			      s->page_shift;
	uint64_t n = REFILL_PAGES / pages > REFILL_MIN ? REFILL_PAGES / pages :
							 REFILL_MIN;
	uint64_t cap = free_pages / (pages * REFILL_SHARE * s->nr_nodes);

	if (align > (1ull << s->zone_shift))
		return 0;
	return (size_t)(n < cap ? n : cap);
}

static struct va *list_pop(struct vlist *list)
{
	struct va *va;

	if (vlist_empty(list))
		return NULL;
	va = va_of_link(list->next);
	vlist_del(&va->link);
	return va;
}

/*
 * A pool that misses is refilled by the allocation that missed, so that
 * it does not wait for the drain thread's purge: besides its own range
 * (the lowest fit, as in the kernel), the missing allocation takes a
 * batch of the same size and alignment under the same heap lock
 * acquisition.  Every range of the batch starts in @vn's own zones, so
 * that its busy insert and its free take only @vn's locks whichever way
 * ranges are tagged.  Records are allocated before the lock is taken
 * (DESIGN.md section 17).
 */
void pool_refill_prepare(struct vmap_space *s, struct vmap_node *vn,
			 const struct free_heap_fit *f, struct refill *r)
{
	uint64_t pages = f->size >> s->page_shift;
	size_t spares;

	r->vn = vn;
	r->fit = *f;
	r->want = refill_count(s, pages, f->align);
	r->got = 0;
	vlist_init(&r->recs);
	vlist_init(&r->batch);
	/*
	 * A range taken from the middle of a block needs a spare record:
	 * the first of the batch may, and so may each one after a jump to
	 * the next own zone, which comes every ZONE_PAGES / pages ranges,
	 * or after a gap left for alignment, which may come every time.
	 */
	spares = r->want ? 1 + (size_t)(r->want * pages / ZONE_PAGES) : 0;
	if (spares > r->want + 1 || f->align > s->page_size)
		spares = r->want + 1;
	if (r->want &&
	    !va_new_list(r->want + spares, s->heap.indexed, &r->recs))
		r->want = 0;
}

/*
 * Under the heap lock: take the batch, in address order, searching from
 * where the node's last batch ended (first from the middle of the space,
 * see nodes_create(), and once more from the bottom of the window when
 * that finds nothing).  A search from the bottom would first meet every
 * small hole that other nodes' frees left low in the space, most of them
 * in other nodes' zones, and spend its tries there.  A range that ends at
 * 2^64 (end 0) sends the next search to the bottom too.  The batch is in
 * this thread's hands until pool_refill_finish() files it: its transit
 * slot records it (fork.c).
 */
void pool_refill_take(struct vmap_space *s, struct refill *r)
{
	struct zone_map zm = { s->zone_shift, s->nr_nodes, r->vn->id };
	uint64_t bottom = r->fit.first, start;
	unsigned tries = 2 * (unsigned)r->want + REFILL_TRIES;
	bool wrapped;
	struct vlist garbage;
	struct va *spare = NULL, *va;
	int rc;

	vlock_assert_held(&s->heap_lock);
	if (r->vn->refill_next > bottom && r->vn->refill_next <= r->fit.last)
		r->fit.first = r->vn->refill_next;
	wrapped = r->fit.first == bottom;
	vlist_init(&garbage);
	while (r->got < r->want) {
		if (!spare)
			spare = list_pop(&r->recs);
		if (!spare || vlist_empty(&r->recs))
			break;
		rc = free_heap_alloc_in_node(&s->heap, &r->fit, &zm, &tries,
					     &spare, &garbage, &start);
		if (rc == -ENOMEM && !wrapped) {
			wrapped = true;
			r->fit.first = bottom;
			continue;
		}
		if (rc)
			break;
		vlist_splice_head(&garbage, &r->recs);
		va = list_pop(&r->recs);
		va->start = start;
		va->end = start + r->fit.size;
		va->tag = r->vn->id + 1;
		vlist_add_tail(&va->link, &r->batch);
		r->got++;
		r->fit.first = va->end;
		if (!va->end) {
			if (wrapped)
				break;
			wrapped = true;
			r->fit.first = bottom;
		}
	}
	r->vn->refill_next = r->fit.first;
	if (spare)
		vlist_add_head(&spare->link, &r->recs);
	vlist_splice_head(&garbage, &r->recs);
	if (r->got)
		transit_batch(&r->batch);
}

/*
 * After the heap lock is dropped, before the allocation's own range goes
 * busy: file the batch, free unused records.  The batch's ranges are in
 * no busy tree: one joins its tree when a pool hit first takes it
 * (busy_take_pooled()), so ranges that decay unused cost no tree work.
 * The miss counts as a take, demand for the next purge's fill
 * (pool_decay()), also when it got no batch: a class whose requests
 * never get one (aligned beyond a zone, or in a space too small for a
 * batch) would otherwise never be pooled again.
 */
void pool_refill_finish(struct vmap_space *s, struct refill *r)
{
	struct pool *p = pool_for(s, r->vn, r->fit.size);

	va_delete_list(&r->recs);
	vlock_acquire(&r->vn->pool_lock);
	store_relaxed(&p->taken, load_relaxed(&p->taken) + 1);
	if (r->got) {
		vlist_splice_head(&r->batch, &p->head);
		store_relaxed(&p->len, load_relaxed(&p->len) + r->got);
		transit_batch(NULL);
	}
	vlock_release(&r->vn->pool_lock);
	if (!r->got)
		return;
	counter_add(&r->vn->count.pool_refills, 1);
	counter_add(&r->vn->count.refilled, r->got);
}

/*
 * What a purge may add to each size class's pools.  Refilling pools (the
 * default) take from a purge only while a class's pools hold less than
 * two purges' worth, 2 * lazy_max_pages pages over all nodes: what is
 * pooled is address space no search sees, which an allocation that fails
 * must give back range by range first (a thread freeing a million
 * one-page ranges and allocating none had 294 000 of them pooled).  One
 * purge's worth made a one-thread fix_size pool run dry before every
 * purge.  Refills, one batch into an empty pool, come on top.  The room
 * is measured once per purge, for the classes its lazy sets hold, and
 * each node's pool_fill() claims from it, so helpers filling nodes at
 * once share one budget; other nodes' pool lengths are read without
 * their locks, so their CPUs' takes and refills meanwhile are not seen.
 * Each pool's fill quota (pool_decay()) bounds it too.  The kernel's
 * pools have no bound, and a recording space has only the quota: the
 * room depends on lazy_max_pages, which a replay sets out of reach so
 * that it purges only where the recording did.
 */
void pool_room_measure(struct vmap_space *s, struct vmap_node **marked,
		       unsigned nr_marked, struct pool_room *room)
{
	uint64_t fits, held;
	unsigned i, k, m;
	bool wanted;

	for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
		atomic_init(&room->ranges[k], SIZE_MAX);
		if ((s->flags & VMAP_KERNEL_POOLS) || s->trace)
			continue;
		for (wanted = false, m = 0; m < nr_marked && !wanted; m++)
			wanted = marked[m]->purging->class_len[k] != 0;
		if (!wanted)
			continue;
		fits = s->lazy_max_pages / (k + 1);
		fits = fits > UINT64_MAX / 2 ? UINT64_MAX : 2 * fits;
		for (held = 0, i = 0; i < s->nr_nodes; i++)
			held += load_relaxed(&s->nodes[i].pools[k].len);
		fits = held < fits ? fits - held : 0;
		atomic_init(&room->ranges[k],
			    fits < SIZE_MAX ? (size_t)fits : SIZE_MAX);
	}
}

/* Up to @want ranges of class @k out of @room; how many were had. */
static size_t room_claim(struct pool_room *room, unsigned k, size_t want)
{
	size_t left = atomic_load(&room->ranges[k]), got;

	do {
		got = want < left ? want : left;
	} while (got && !atomic_compare_exchange_weak(&room->ranges[k], &left,
						      left - got));
	return got;
}

/*
 * Put a purged lazy set's pool-bound ranges into @vn's pools: one lock
 * hold, one splice per size class, newest-freed first in front of what
 * the pool held.  The kernel adds a purge's ranges one at a time in
 * address order; a splice keeps the pool LIFO without visiting (and
 * missing the cache on) every range.  What the pool's fill quota and
 * @room leave out, the oldest-freed of a class, stays in @ls for the
 * purge to give to the global heap.
 */
void pool_fill(struct vmap_node *vn, struct lazy_set *ls,
	       struct pool_room *room)
{
	size_t pooled = 0, n;
	struct vlist kept;
	struct pool *p;
	unsigned k;

	vlock_acquire(&vn->pool_lock);
	for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
		if (!ls->class_len[k])
			continue;
		p = &vn->pools[k];
		n = ls->class_len[k] < p->fill_quota ? ls->class_len[k] :
						       p->fill_quota;
		n = room_claim(room, k, n);
		p->fill_quota -= n;
		if (n < ls->class_len[k]) {
			vlist_cut_head(&ls->lists[k], n, &kept);
			vlist_splice_head(&kept, &p->head);
		} else {
			vlist_splice_head(&ls->lists[k], &p->head);
		}
		store_relaxed(&p->len, load_relaxed(&p->len) + n);
		ls->class_len[k] -= n;
		pooled += n;
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
			if (load_relaxed(&s->nodes[i].pools[k].len))
				return false;
	return true;
}

/* What a purge may add to a pool that had @taken requests since decay. */
static size_t fill_quota(bool refilling, size_t taken)
{
	if (!refilling || taken > SIZE_MAX / 2)
		return SIZE_MAX;
	return 2 * taken;
}

/*
 * Give a quarter of pools back (all of them whole with DECAY_FULL), so
 * that address space cached by a node that stopped allocating drifts back
 * to the global heap over a few purges.  A quarter keeps a pool that is
 * in steady use close to its working size, while an idle one of n entries
 * is down to 1-3 entries after about log4(n) decays (integer division
 * leaves pools of 1-3 entries alone unless DECAY_FULL).  The kernel's
 * pools decay at every purge, every pool (DECAY_ALL).  Refilling pools
 * (the default) decay only at their node's decay points (purge.c says
 * when), and only if idle, no request since the last one (DECAY_IDLE): a
 * pool in use would only take back from the heap, one refill later, what
 * decay gave it (with sizes of 1-100 pages, half the cycles of a pair
 * went to that round trip).
 *
 * Every pass also sets what the purges that follow may add to each pool.
 * Refilling pools get twice the requests they had (hits and misses)
 * since the pass before, the last purge or shrink: a pool fills by
 * demand, so a node whose CPU only frees (a thread freeing a million
 * one-page ranges) pools nothing, where a purge that filled every class
 * to its room left a failing allocation 32 768 pooled ranges to give back
 * first, 7-8 ms of its 10.  Twice, like the room, so that a pool in
 * steady use has what it gave out and as much again.  The kernel's pools
 * take whatever the purge brings.  The request counts are read without
 * the pool lock: a request that races with the read counts for the next
 * pass.
 *
 * Each decaying pool's list is detached under the lock, the quarter to
 * give back is cut off its head (the most recently pooled ranges, as the
 * kernel does), and the rest is spliced back at once, in front of
 * whatever was added meanwhile: the kernel replaced the list on re-attach
 * and lost such entries.  Only then are the cut ranges coalesced, in a
 * private heap, and moved into the global heap in one locked pass, so
 * that the pool looks empty to its node's allocations only for the
 * length of the cut.  A full decay (an allocation failing, a shrink)
 * skips the private heap: the failing call's latency is what counts, and
 * coalescing first would touch every record twice.
 * Caller holds purge_lock (a purge or a shrink).
 */
void pool_decay(struct vmap_space *s, struct vmap_node *vn, enum pool_decay how)
{
	bool refilling = !(s->flags & VMAP_KERNEL_POOLS), used;
	struct vlist detached, decayed, merged, whole;
	struct free_heap local;
	size_t len, n_decay, taken;
	struct pool *p;
	unsigned i;

	vlock_assert_held(&s->purge_lock);
	free_heap_init(&local);
	vlist_init(&merged);
	vlist_init(&whole);
	for (i = 0; i < MAX_VA_SIZE_PAGES; i++) {
		p = &vn->pools[i];
		taken = load_relaxed(&p->taken);
		p->fill_quota = fill_quota(refilling, taken - p->taken_purged);
		p->taken_purged = taken;
		if (how == DECAY_NONE)
			continue;
		used = taken != p->taken_decayed;
		p->taken_decayed = taken;
		if (!load_relaxed(&p->len) || (how == DECAY_IDLE && used))
			continue;
		vlock_acquire(&vn->pool_lock);
		vlist_move_all(&p->head, &detached);
		len = load_relaxed(&p->len);
		store_relaxed(&p->len, 0);
		vlock_release(&vn->pool_lock);

		n_decay = how == DECAY_FULL ? len : len / 4;
		counter_add(&vn->count.decayed_vas, n_decay);
		if (how == DECAY_FULL) {
			busy_forget(s, &detached);
			vlist_splice_head(&detached, &whole);
			continue;
		}
		vlist_cut_head(&detached, n_decay, &decayed);
		if (!vlist_empty(&detached)) {
			vlock_acquire(&vn->pool_lock);
			vlist_splice_head(&detached, &p->head);
			store_relaxed(&p->len,
				      load_relaxed(&p->len) + len - n_decay);
			vlock_release(&vn->pool_lock);
		}
		busy_forget(s, &decayed);
		free_heap_return_list(&local, &decayed, &merged);
	}
	va_set_take_all(&local.set, &detached);
	vlist_splice_head(&whole, &detached);
	global_heap_return(s, &detached);
	va_delete_list(&merged);
}
