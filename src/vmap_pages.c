/* SPDX-License-Identifier: MIT */
/*
 * vmap_pages.c - the page pool of a heap and vmap(): real pages that can
 * be mapped more than once, anywhere in the heap.
 *
 * The pool is one memfd, sized once (sparse: a page takes memory only
 * when touched); a page is named by its byte offset in it.  Pages are
 * handed out from a stack of freed ones, else from a bump index; a freed
 * page's memory goes back to the system at once (a hole is punched), so
 * a page reads zero when handed out.  vmap() maps the given pages, in
 * order, over an area of the heap's space (MAP_FIXED | MAP_SHARED), with
 * the heap's guard page; vunmap() puts the reservation back at once (the
 * kernel unmaps at once too and only defers the TLB flush) and frees the
 * area lazily, like vfree().
 *
 * Locks: the pool lock guards the free stack and the bump index; the
 * per-page allocated flags are atomics, so that vmap() checks its pages
 * without the lock.  A page freed while mapped is the caller's error, as
 * in the kernel: the mapping keeps working, on whatever the page holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "track.h"
#include "vmalloc.h"

/* 4 GiB of 4 KiB pages: the file is sparse and the maps below lazy. */
#define POOL_BYTES (4ull << 30)

struct page_pool {
	int fd;
	uint64_t nr; /* capacity in pages */
	pthread_mutex_t lock;
	uint64_t *free_stack; /* page indexes, lazily committed */
	uint64_t nr_free, bump;
	atomic_uchar *allocated; /* per page, lazily committed */
};

static void *pool_create(struct vmap_heap *h)
{
	struct page_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return NULL;
	pool->nr = POOL_BYTES / h->page;
	pool->fd = os_pages_create(POOL_BYTES);
	pool->free_stack = os_reserve_open(pool->nr * sizeof(uint64_t));
	pool->allocated = os_reserve_open(pool->nr);
	if (pool->fd < 0 || !pool->free_stack || !pool->allocated) {
		if (pool->fd >= 0)
			os_pages_close(pool->fd);
		if (pool->free_stack)
			os_unreserve(pool->free_stack,
				     pool->nr * sizeof(uint64_t));
		if (pool->allocated)
			os_unreserve(pool->allocated, pool->nr);
		free(pool);
		return NULL;
	}
	pthread_mutex_init(&pool->lock, NULL);
	return pool;
}

/* The heap's pool, created on the first call that needs one (@create). */
static struct page_pool *pool_of(struct vmap_heap *h, bool create)
{
	return heap_extra(h, &h->pool, pool_create, create);
}

void pages_destroy(struct vmap_heap *h)
{
	struct page_pool *pool = pool_of(h, false);

	if (!pool)
		return;
	os_pages_close(pool->fd);
	os_unreserve(pool->free_stack, pool->nr * sizeof(uint64_t));
	os_unreserve(pool->allocated, pool->nr);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

int vmap_pages_alloc(struct vmap_heap *h, size_t count, uint64_t *pages)
{
	struct page_pool *pool;
	uint64_t idx;
	size_t i;

	if (!h || !count || !pages)
		return -EINVAL;
	pool = pool_of(h, true);
	if (!pool)
		return -ENOMEM;
	pthread_mutex_lock(&pool->lock);
	if (count > pool->nr_free + (pool->nr - pool->bump)) {
		pthread_mutex_unlock(&pool->lock);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		idx = pool->nr_free ? pool->free_stack[--pool->nr_free] :
				      pool->bump++;
		atomic_store_explicit(&pool->allocated[idx], 1,
				      memory_order_release);
		pages[i] = idx * h->page;
	}
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

/* The index of the pool page at offset @off, if it is one handed out. */
static bool page_valid(const struct vmap_heap *h, struct page_pool *pool,
		       uint64_t off, uint64_t *idx)
{
	if (off & (h->page - 1) || off / h->page >= pool->nr)
		return false;
	*idx = off / h->page;
	return atomic_load_explicit(&pool->allocated[*idx],
				    memory_order_acquire);
}

int vmap_pages_free(struct vmap_heap *h, const uint64_t *pages, size_t count)
{
	struct page_pool *pool;
	uint64_t idx;
	size_t i, j;
	int rc = 0;

	if (!h || !pages || !count)
		return -EINVAL;
	pool = pool_of(h, false);
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	for (i = 0; i < count; i++) {
		if (!page_valid(h, pool, pages[i], &idx))
			rc = -EINVAL;
		for (j = 0; j < i && !rc; j++)
			if (pages[j] == pages[i])
				rc = -EINVAL; /* the same page twice */
	}
	for (i = 0; i < count && !rc; i++) {
		idx = pages[i] / h->page;
		atomic_store_explicit(&pool->allocated[idx], 0,
				      memory_order_relaxed);
		pool->free_stack[pool->nr_free++] = idx;
		os_pages_release(pool->fd, pages[i], h->page);
	}
	pthread_mutex_unlock(&pool->lock);
	return rc;
}

/*
 * Map @count pool pages at @addr, one mmap per run of pages that follow
 * each other in the pool.  The pages must have been checked.
 */
int pages_map(struct vmap_heap *h, uint64_t addr, const uint64_t *pages,
	      size_t count)
{
	struct page_pool *pool = pool_of(h, false);
	size_t i = 0, j;
	int rc;

	while (i < count) {
		for (j = i + 1; j < count && pages[j] == pages[j - 1] + h->page;
		     j++)
			;
		rc = os_map_pages((void *)(uintptr_t)(addr + i * h->page),
				  (j - i) * h->page, pool->fd, pages[i]);
		counter_add(&h->sys_mmap, 1);
		if (rc)
			return -ENOMEM; /* the system refused: mapping limits */
		i = j;
	}
	memset(h->changed + (addr - h->base) / h->page, 0, count);
	track_usable((void *)(uintptr_t)addr, count * h->page);
	return 0;
}

/*
 * Put the reservation back over [addr, addr + len) after pages_map():
 * every page is then as the reservation made it, which the page-state
 * map must say, or a later vmalloc would skip making its body usable
 * (mprotect) or its guard a marker.
 */
int pages_unmap(struct vmap_heap *h, uint64_t addr, uint64_t len)
{
	int rc;

	heap_poison(h, addr, len);
	counter_add(&h->sys_mmap, 1);
	rc = os_remap((void *)(uintptr_t)addr, len, h->markers);
	if (!rc)
		memset(h->changed + (addr - h->base) / h->page, 0,
		       len / h->page);
	return rc;
}

/* 0 if every one of @pages is a page handed out by @h's pool. */
int pages_check(struct vmap_heap *h, const uint64_t *pages, size_t count)
{
	struct page_pool *pool = pool_of(h, false);
	uint64_t idx;
	size_t i;

	if (!pool)
		return -EINVAL;
	for (i = 0; i < count; i++)
		if (!page_valid(h, pool, pages[i], &idx))
			return -EINVAL;
	return 0;
}

static void *heap_vmap(struct vmap_heap *h, const uint64_t *pages, size_t count,
		       unsigned flags, const void *caller)
{
	uint64_t start, body;
	int rc;

	if (!h || !pages || !count || flags || count > h->size / h->page ||
	    pages_check(h, pages, count)) {
		errno = EINVAL;
		return NULL;
	}
	rc = vmap_alloc_user(h->space, count * h->page + guard_bytes(h),
			     h->page, 0, 0, 0, area_user(AREA_VMAP, caller),
			     &start);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	atomic_fetch_add(&h->mapped_areas, 1);
	body = heap_body_of(h, start);
	rc = pages_map(h, body, pages, count);
	if (!rc)
		rc = heap_guard_area(h, start, count);
	if (rc) {
		pages_unmap(h, body, count * h->page);
		vmap_free(h->space, start);
		errno = -rc;
		return NULL;
	}
	return (void *)(uintptr_t)body;
}

static int heap_vunmap(struct vmap_heap *h, const void *addr)
{
	uint64_t a = (uint64_t)(uintptr_t)addr, start;
	struct vmap_range r;

	if (!h || a < h->base || a >= h->base + h->size || (a & (h->page - 1)))
		return -EINVAL;
	start = (h->flags & VMAP_HEAP_GUARD_BELOW) ? a - guard_bytes(h) : a;
	if (vmap_find(h->space, start, &r) || r.start != start ||
	    area_kind_of(r.user) != AREA_VMAP)
		return -EINVAL;
	pages_unmap(h, a, r.end - r.start - guard_bytes(h));
	return vmap_free(h->space, start) ? -EINVAL : 0;
}

void *vmap_heap_vmap(struct vmap_heap *h, const uint64_t *pages, size_t count,
		     unsigned flags)
{
	return heap_vmap(h, pages, count, flags, __builtin_return_address(0));
}

int vmap_heap_vunmap(struct vmap_heap *h, const void *addr)
{
	return heap_vunmap(h, addr);
}

void *vmap(const uint64_t *pages, size_t count, unsigned flags)
{
	return heap_vmap(vmap_default_heap(), pages, count, flags,
			 __builtin_return_address(0));
}

void vunmap(const void *addr)
{
	if (addr && heap_vunmap(vmap_default_heap(), addr))
		heap_warn(
			"vunmap: %p is not an area from vmap (or was unmapped already); ignored\n",
			addr);
}

/* Fork (vmalloc.c's hooks): the page pool's lock, and its release. */
void pages_fork_lock(struct vmap_heap *h)
{
	struct page_pool *pool = pool_of(h, false);

	if (pool)
		pthread_mutex_lock(&pool->lock);
}

void pages_fork_unlock(struct vmap_heap *h)
{
	struct page_pool *pool = pool_of(h, false);

	if (pool)
		pthread_mutex_unlock(&pool->lock);
}
