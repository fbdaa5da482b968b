/* SPDX-License-Identifier: MIT */
/*
 * info.c - snapshots of a space's busy and lazy ranges, for dumps in the
 * /proc/vmallocinfo style.
 *
 * Takes each node's busy lock, then its lazy lock, one at a time; the
 * array is allocated with no lock held, sized by a first count and grown
 * if the space grew before it was filled.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal.h"

static size_t count_node(struct vmap_node *vn)
{
	size_t n;

	vlock_acquire(&vn->busy_lock);
	n = vn->busy.count;
	vlock_release(&vn->busy_lock);
	vlock_acquire(&vn->lazy_lock);
	n += vn->lazy->count;
	vlock_release(&vn->lazy_lock);
	return n;
}

static void fill(struct vmap_space *s, struct vmap_range *r,
		 const struct va *va, unsigned node, uint32_t state)
{
	r->start = va->start;
	r->end = va->end;
	r->node = node;
	r->tag_node = tag_valid(s, va->tag) ? (int32_t)va->tag - 1 : -1;
	r->user = va->user;
	r->state = state;
	r->reserved = 0;
}

static int cmp_range_start(const void *a, const void *b)
{
	const struct vmap_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Copy one node's busy ranges (@lazy false) or lazy ranges into @r, room
 * for @cap; returns how many the node has.  Lazy ones are sorted here:
 * their lists are filed by size class, not by address.
 */
static size_t copy_node(struct vmap_space *s, struct vmap_node *vn, bool lazy,
			struct vmap_range *r, size_t cap)
{
	const struct tree_node *tn;
	size_t n = 0;
	struct va *va;
	unsigned k;

	if (!lazy) {
		vlock_acquire(&vn->busy_lock);
		for (tn = tree_first(&vn->busy.root); tn; tn = tree_next(tn))
			if (va_of_node(tn)->busy && n++ < cap)
				fill(s, &r[n - 1], va_of_node(tn), vn->id,
				     VMAP_RANGE_BUSY);
		vlock_release(&vn->busy_lock);
		return n;
	}
	vlock_acquire(&vn->lazy_lock);
	for (k = 0; k < LAZY_LISTS; k++)
		vlist_for_each_va(va, &vn->lazy->lists[k])
			if (n++ < cap)
				fill(s, &r[n - 1], va, vn->id, VMAP_RANGE_LAZY);
	vlock_release(&vn->lazy_lock);
	if (n <= cap)
		qsort(r, n, sizeof(*r), cmp_range_start);
	return n;
}

int vmap_snapshot(struct vmap_space *s, struct vmap_range **ranges,
		  size_t *count)
{
	size_t cap = 0, n, got = 0;
	struct vmap_range *r;
	unsigned i, pass;

	if (!s || !ranges || !count)
		return -EINVAL;
	for (i = 0; i < s->nr_nodes; i++)
		cap += count_node(&s->nodes[i]);
	for (;;) {
		cap += cap / 8 + 16;
		r = malloc(cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		n = 0;
		for (pass = 0; pass < 2; pass++) {
			for (i = 0; i < s->nr_nodes; i++) {
				got = copy_node(s, &s->nodes[i], pass, r + n,
						cap - n);
				if (got > cap - n)
					break;
				n += got;
			}
			if (i < s->nr_nodes)
				break;
		}
		if (pass == 2)
			break;
		free(r);
		cap = n + got;
	}
	*ranges = r;
	*count = n;
	return 0;
}
