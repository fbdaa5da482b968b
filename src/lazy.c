/* SPDX-License-Identifier: MIT */
/*
 * lazy.c - a node's lazy sets: freed ranges waiting for a purge, filed at
 * free time by where the purge will send them (DESIGN.md section 5).
 *
 * Locks: a node's lazy_lock guards which of its two sets frees go to, and
 * that set; the set a purge detached (vn->purging) is the purge's, under
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
 * @cpu_vn, the freeing CPU's node, counts the lazy lock if it is another
 * node's; NULL for a free the fork child finishes (fork.c).
 */
void lazy_insert(struct vmap_space *s, struct va *va, struct vmap_node *cpu_vn)
{
	struct vmap_node *vn = lazy_node_of(s, va);
	uint64_t pages = va_pages(s, va);
	bool pool_bound = tag_valid(s, va->tag) && pages <= MAX_VA_SIZE_PAGES;
	bool cross = pool_bound && addr_to_node(s, va->start) != vn->id;
	struct lazy_set *ls;

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
	transit_done();
	vlock_release(&vn->lazy_lock);
	if (cpu_vn && vn != cpu_vn)
		counter_add(&cpu_vn->count.other_node_lock, 1);
	counter_add(&vn->count.frees, 1);
}
