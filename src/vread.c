/* SPDX-License-Identifier: MIT */
/*
 * vread.c - vread(): copy any stretch of a heap into a buffer, without
 * ever faulting, the way the kernel's vread_iter() reads vmalloc space
 * for /proc/kcore.
 *
 * Busy areas are visited in address order with vmap_next(), whose
 * callback runs under the busy lock of the area's node only (one node
 * lock at a time: the kernel needed a fix for holding two), so the area
 * cannot be freed and reused under the copy.  Inside, only what is
 * mapped is read: an area's body (never its guard page) and, in a
 * vm_map_ram block, the pages of live chunks (under the block's lock).
 * Even so a page may be unreadable for a moment (an area being set up),
 * so every copy goes through os_copy_nofault(), and a page it cannot read
 * reads as zeros, like holes, guard pages, lazy areas and dirty chunks.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "os.h"
#include "vmalloc.h"

struct vread_ctx {
	struct vmap_heap *h;
	char *buf;
	uint64_t addr, end; /* the stretch @buf receives */
};

/* Copy [from, to) into its place in @buf; unreadable pages read zero. */
void vread_pages(uint64_t from, uint64_t to, char *buf, uint64_t buf_addr)
{
	uint64_t page = 4096, a, end; /* the smallest page: always safe */

	if (!os_copy_nofault(buf + (from - buf_addr),
			     (const void *)(uintptr_t)from, to - from))
		return;
	for (a = from; a < to; a = end) {
		end = (a - a % page) + page;
		if (end > to)
			end = to;
		if (os_copy_nofault(buf + (a - buf_addr),
				    (const void *)(uintptr_t)a, end - a))
			memset(buf + (a - buf_addr), 0, end - a);
	}
}

/* vmap_next()'s callback: runs with the area's node busy lock held. */
static void copy_area(void *cookie, const struct vmap_range *r)
{
	struct vread_ctx *c = cookie;
	struct vmap_heap *h = c->h;
	enum area_kind kind = area_kind_of(r->user);
	uint64_t from, to, guard;

	if (r->start >= c->end)
		return;
	from = r->start > c->addr ? r->start : c->addr;
	to = r->end < c->end ? r->end : c->end;
	if (kind == AREA_VMAP_BLOCK) {
		blocks_read(h, r->start, from, to, c->buf, c->addr);
		return;
	}
	if (kind != AREA_VM_MAP_RAM) {
		guard = guard_bytes(h);
		if (heap_body_of(h, r->start) != r->start) {
			if (from < r->start + guard)
				from = r->start + guard;
		} else if (to > r->end - guard) {
			to = r->end - guard;
		}
	}
	if (from < to)
		vread_pages(from, to, c->buf, c->addr);
}

long vmap_heap_vread(struct vmap_heap *h, char *buf, const void *addr,
		     size_t count)
{
	struct vread_ctx c = { h, buf, (uint64_t)(uintptr_t)addr, 0 };
	struct vmap_range r;
	uint64_t pos;

	if (!h || !buf || count > LONG_MAX || c.addr < h->base ||
	    c.addr > h->base + h->size || count > h->base + h->size - c.addr)
		return -EINVAL;
	c.end = c.addr + count;
	memset(buf, 0, count);
	for (pos = c.addr; pos < c.end; pos = r.end)
		if (vmap_next(h->space, pos, &r, copy_area, &c) ||
		    r.start >= c.end)
			break;
	return (long)count;
}

long vread(char *buf, const void *addr, size_t count)
{
	struct vmap_heap *h = vmap_default_heap();

	return h ? vmap_heap_vread(h, buf, addr, count) : -ENOMEM;
}
