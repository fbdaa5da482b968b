/* SPDX-License-Identifier: MIT */
/*
 * lazy.c - a node's lazy sets: freed ranges waiting for a purge, filed at
 * free time by where the purge will send them (DESIGN.md section 5).
 *
 * Locks: a node's lazy_lock guards which of its two sets frees go to,
 * that set, and the node's pages that the space's lazy count does not
 * count yet; the set a purge detached (vn->purging) is the purge's, under
 * purge_lock.
 */
#include "internal.h"

struct vmap_node *lazy_node_of(struct vmap_space *s, const struct va *va)
{
	if (tag_valid(s, va->tag))
		return &s->nodes[va->tag - 1];
	return &s->nodes[addr_to_node(s, va->start)];
}

void lazy_set_init(struct lazy_set *ls)
{
	unsigned k;

	for (k = 0; k < LAZY_LISTS; k++)
		vlist_init(&ls->lists[k]);
	for (k = 0; k < MAX_VA_SIZE_PAGES; k++)
		ls->class_len[k] = 0;
	ls->lo = ls->hi = 0;
	ls->pages = 0;
	ls->count = ls->cross = 0;
}

/* Move every record of @ls onto @out and leave @ls empty. */
void lazy_set_gather(struct lazy_set *ls, struct vlist *out)
{
	unsigned k;

	for (k = 0; k < LAZY_LISTS; k++)
		vlist_splice_head(&ls->lists[k], out);
	lazy_set_init(ls);
}

void lazy_set_delete(struct lazy_set *ls)
{
	struct vlist all;

	vlist_init(&all);
	lazy_set_gather(ls, &all);
	va_delete_list(&all);
}

/*
 * How many pages a node's frees gather under its lazy lock before adding
 * them to the space's lazy count, the one atomic that every free of the
 * kernel's design writes: two threads freeing on two nodes wrote it in
 * turn, and that one instruction took 8% of the samples of two threads
 * making random 1-100 page pairs (perf).
 * With every node a batch short, the count reads at most an eighth of
 * lazy_max_pages low, so a purge starts at most that late; the purge
 * adds a node's gathered pages when it detaches the node's lazy set.
 * The kernel's pools and deterministic mode count each free, so that
 * purges start where the kernel's would, and where a replay's do.
 */
uint64_t lazy_batch_size(const struct vmap_space *s)
{
	if (s->flags & (VMAP_KERNEL_POOLS | VMAP_DETERMINISTIC))
		return 0;
	return s->lazy_max_pages / 8 / s->nr_nodes;
}

static uint64_t uncounted(struct vmap_node *vn)
{
	return atomic_load_explicit(&vn->lazy_uncounted, memory_order_relaxed);
}

/*
 * Add @vn's gathered pages to the space's lazy count; returns the count
 * after.  The count goes up before the gathered pages are cleared, with
 * release, so that lazy_pages_now(), which reads them in the other order,
 * may count them twice for a moment but never misses them: a reader that
 * saw no lazy page would let a VMAP_NONBLOCK allocation fail with
 * -ENOMEM where a purge could have helped.  Caller holds vn->lazy_lock.
 */
static uint64_t count_gathered(struct vmap_space *s, struct vmap_node *vn)
{
	uint64_t pages = uncounted(vn),
		 nr_lazy = atomic_fetch_add(&s->lazy_nr, pages) + pages;

	atomic_store_explicit(&vn->lazy_uncounted, 0, memory_order_release);
	return nr_lazy;
}

void lazy_count_node(struct vmap_space *s, struct vmap_node *vn)
{
	vlock_assert_held(&vn->lazy_lock);
	if (uncounted(vn))
		count_gathered(s, vn);
}

/*
 * The space's lazy pages, counted or not; exact only when quiescent, and
 * otherwise never below the pages lazy throughout the call (see
 * count_gathered()).
 */
uint64_t lazy_pages_now(struct vmap_space *s)
{
	uint64_t pages = 0;
	unsigned i;

	for (i = 0; i < s->nr_nodes; i++)
		pages += atomic_load_explicit(&s->nodes[i].lazy_uncounted,
					      memory_order_acquire);
	return pages + atomic_load(&s->lazy_nr);
}

/*
 * File a freed range in its node's lazy set.  Returns the space's lazy
 * count if this free added its node's gathered pages to it, else 0 (the
 * count did not move, and cannot have crossed a threshold).  @cpu_vn,
 * the freeing CPU's node, counts the lazy lock if it is another node's;
 * NULL for a free the fork child finishes (fork.c).
 */
uint64_t lazy_insert(struct vmap_space *s, struct va *va,
		     struct vmap_node *cpu_vn)
{
	struct vmap_node *vn = lazy_node_of(s, va);
	uint64_t pages = va_pages(s, va);
	bool pool_bound = tag_valid(s, va->tag) && pages <= MAX_VA_SIZE_PAGES;
	bool cross = pool_bound && addr_to_node(s, va->start) != vn->id;
	struct lazy_set *ls;
	uint64_t nr_lazy = 0;

	vlock_acquire(&vn->lazy_lock);
	ls = vn->lazy;
	if (!ls->count || va->start < ls->lo)
		ls->lo = va->start;
	if (!ls->count || va_last(va) > ls->hi - 1)
		ls->hi = va->end;
	if (pool_bound) {
		vlist_add_head(&va->link, &ls->lists[pages - 1]);
		ls->class_len[pages - 1]++;
	} else {
		vlist_add_head(&va->link, &ls->lists[LAZY_OTHER]);
	}
	ls->pages += pages;
	ls->count++;
	ls->cross += cross;
	atomic_store_explicit(&vn->lazy_uncounted, uncounted(vn) + pages,
			      memory_order_relaxed);
	if (uncounted(vn) > s->lazy_batch_pages)
		nr_lazy = count_gathered(s, vn);
	counter_add_locked(&vn->count.frees, 1);
	transit_done();
	vlock_release(&vn->lazy_lock);
	if (cpu_vn && vn != cpu_vn)
		counter_add(&cpu_vn->count.other_node_lock, 1);
	return nr_lazy;
}
