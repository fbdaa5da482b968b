/* SPDX-License-Identifier: MIT */
/*
 * vmalloc.c - the vmalloc layer: areas of real memory with guard pages,
 * over a space that covers one reserved region (docs/DESIGN.md section 11).
 *
 * It uses the space through the public API only.  Locks: extras_lock,
 * only to create a heap's page pool or block state (heap_extra(); the
 * layer's other locks are in vmalloc.h).  The per-page protection map is
 * written only by the owner of the area the page belongs to (ownership
 * passes through the space's locks), and counters are relaxed atomics.
 *
 * Guard pages, two mechanisms, chosen when the heap is created:
 *  - guard markers (MADV_GUARD_INSTALL, Linux 6.13+), preferred: the
 *    reservation is one read-write mapping, and a guard page is a marker
 *    in its page table that faults.  Markers do not split the mapping, so
 *    live areas are bounded by the reservation alone; free address space
 *    does not fault, though (touching it allocates memory).
 *  - mprotect, where markers are missing or VMAP_HEAP_MPROTECT_GUARDS asks
 *    for it: the reservation is PROT_NONE, bodies are made read-write.
 *    Every stray access faults, but each area boundary splits a mapping,
 *    so live areas are bounded by vm.max_map_count (two mappings per
 *    area: 32 751 areas under the default 65530, measured).
 * A pooled area comes back with the shape it had (body usable, guard
 * faulting), so reuse from a pool costs no system call where nothing
 * changed since: the map of page states tells which pages already are as
 * wanted.  Memory released at the purge (MADV_DONTNEED) keeps markers,
 * which cost no mapping.  Under mprotect the release also makes the run
 * inaccessible again (a fresh mapping over each released run), so that
 * freed areas merge back into the reservation's mapping: otherwise each
 * freed area kept its split
 * protections, and areas of other shapes carved later from the same
 * addresses split the mapping further, until a burst freed on one CPU
 * left room for as few as one new area, and a churn of 4 000 live areas
 * hit vm.max_map_count (DESIGN.md section 11).  The price is one
 * mprotect when a pooled area is handed out again.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fork.h"
#include "os.h"
#include "probes.h"
#include "track.h"
#include "vmalloc.h"

/* Where the usable part of the area at @start begins. */
uint64_t heap_body_of(const struct vmap_heap *h, uint64_t start)
{
	return (h->flags & VMAP_HEAP_GUARD_BELOW) ? start + guard_bytes(h) :
						    start;
}

/*
 * Map a released run afresh, inaccessible (mprotect guards only).  At
 * vm.max_map_count the fresh mapping can be refused, since the run's end
 * usually lies inside a mapping that must be split; making the run
 * inaccessible first merges each freed body with its guard, which frees
 * enough mappings for a second try.  Returns the state of the run's pages.
 */
static unsigned char remap_run(struct vmap_heap *h, void *addr, uint64_t len,
			       bool *released)
{
	int protected;

	counter_add(&h->sys_remap, 1);
	*released = !os_remap(addr, len, 0);
	if (*released)
		return PAGE_AS_RESERVED;
	counter_add(&h->sys_mprotect, 1);
	protected = !os_protect(addr, len, 0);
	counter_add(&h->sys_remap, 1);
	*released = !os_remap(addr, len, 0);
	return *released || protected ? PAGE_AS_RESERVED : PAGE_UNKNOWN;
}

/*
 * The purge's release callback: give the memory of a run back.  Under
 * mprotect the run is mapped afresh, inaccessible, which releases its
 * memory too: mprotect alone would not let it merge with its neighbours
 * (a mapping that was written keeps its own anon_vma, and mappings with
 * different ones never merge).  The run's ranges belong to the purge
 * until it returns, so their bytes of the page map are ours.
 */
static void release_run(void *cookie, uint64_t start, uint64_t end)
{
	struct vmap_heap *h = cookie;
	uint64_t first = (start - h->base) / h->page,
		 n = (end - start) / h->page;
	void *addr = (void *)(uintptr_t)start;
	bool released = false;

	counter_add(&h->released_runs, 1);
	counter_add(&h->released_bytes, end - start);
	if (!h->markers)
		memset(h->changed + first,
		       remap_run(h, addr, end - start, &released), n);
	if (!released) {
		os_discard(addr, end - start,
			   !!(h->flags & VMAP_HEAP_MADV_FREE));
		counter_add(&h->sys_madvise, 1);
	}
}

/* One system call turning pages usable (@usable) or into guards. */
static int change_pages(struct vmap_heap *h, uint64_t first, uint64_t n,
			bool usable)
{
	void *addr = (void *)(uintptr_t)(h->base + first * h->page);

	if (h->markers) {
		counter_add(&h->sys_guard, 1);
		return os_guard(addr, n * h->page, !usable);
	}
	counter_add(&h->sys_mprotect, 1);
	return os_protect(addr, n * h->page, usable);
}

/* Make pages [first, first + n) usable or guards, one call per run to change. */
int heap_set_pages(struct vmap_heap *h, uint64_t first, uint64_t n, bool usable)
{
	unsigned char want =
		usable != h->markers ? PAGE_CHANGED : PAGE_AS_RESERVED;
	uint64_t i = 0, j;
	int rc;

	while (i < n) {
		if (h->changed[first + i] == want) {
			i++;
			continue;
		}
		for (j = i; j < n && h->changed[first + j] != want; j++)
			;
		rc = change_pages(h, first + i, j - i, usable);
		memset(h->changed + first + i, rc ? PAGE_UNKNOWN : want, j - i);
		if (rc)
			return rc;
		i = j;
	}
	return 0;
}

/*
 * Reserve the region: with guard markers where the kernel has them (a
 * probe installs and removes one), else inaccessible for mprotect.
 */
static int reserve(struct vmap_heap *h)
{
	void *base;

	if (!(h->flags & VMAP_HEAP_MPROTECT_GUARDS) &&
	    (base = os_reserve_open(h->size))) {
		if (!os_guard(base, h->page, 1) &&
		    !os_guard(base, h->page, 0)) {
			h->markers = true;
			h->base = (uint64_t)(uintptr_t)base;
			return 0;
		}
		os_unreserve(base, h->size);
	}
	base = os_reserve(h->size);
	h->base = (uint64_t)(uintptr_t)base;
	return base ? 0 : -ENOMEM;
}

/*
 * Live heaps, so that the fork handlers can take their locks: a child
 * must not find a block, pool or extras lock held by a thread it does not
 * have.  Every lock is a plain mutex, which the child may unlock.
 */
static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmap_heap *heaps;

static void heaps_fork_prepare(void)
{
	struct vmap_heap *h;

	pthread_mutex_lock(&heaps_lock);
	for (h = heaps; h; h = h->fork_next) {
		pthread_mutex_lock(&h->extras_lock);
		blocks_fork_lock(h);
		pages_fork_lock(h);
	}
}

static void heaps_fork_release(void)
{
	struct vmap_heap *h;

	for (h = heaps; h; h = h->fork_next) {
		pages_fork_unlock(h);
		blocks_fork_unlock(h);
		pthread_mutex_unlock(&h->extras_lock);
	}
	pthread_mutex_unlock(&heaps_lock);
}

/* The child also gives back block areas its lost threads were making. */
static void heaps_fork_child(void)
{
	struct vmap_heap *h;

	heaps_fork_release();
	for (h = heaps; h; h = h->fork_next)
		blocks_fork_child(h);
}

static const struct fork_hooks heaps_fork_hooks = {
	.prepare = heaps_fork_prepare,
	.parent = heaps_fork_release,
	.child = heaps_fork_child,
};

static pthread_once_t heaps_hooks_once = PTHREAD_ONCE_INIT;

static void heaps_hooks_install(void)
{
	fork_hooks_add(&heaps_fork_hooks);
}

static void heaps_add(struct vmap_heap *h)
{
	pthread_once(&heaps_hooks_once, heaps_hooks_install);
	pthread_mutex_lock(&heaps_lock);
	h->fork_prev = NULL;
	h->fork_next = heaps;
	if (heaps)
		heaps->fork_prev = h;
	heaps = h;
	pthread_mutex_unlock(&heaps_lock);
}

static void heaps_del(struct vmap_heap *h)
{
	pthread_mutex_lock(&heaps_lock);
	if (h->fork_prev)
		h->fork_prev->fork_next = h->fork_next;
	else
		heaps = h->fork_next;
	if (h->fork_next)
		h->fork_next->fork_prev = h->fork_prev;
	pthread_mutex_unlock(&heaps_lock);
}

int vmap_heap_create(const struct vmap_heap_params *params,
		     struct vmap_heap **out)
{
	static const struct vmap_heap_params defaults;
	const struct vmap_heap_params *p = params ? params : &defaults;
	struct vmap_params sp = { 0 };
	struct vmap_heap *h;
	unsigned i;
	int rc;

	if (!out ||
	    (p->flags & ~(VMAP_HEAP_NO_GUARD | VMAP_HEAP_GUARD_BELOW |
			  VMAP_HEAP_MADV_FREE | VMAP_HEAP_MPROTECT_GUARDS)))
		return -EINVAL;
	for (i = 0; i < sizeof(p->reserved) / sizeof(p->reserved[0]); i++)
		if (p->reserved[i])
			return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->page = (uint64_t)sysconf(_SC_PAGESIZE);
	h->flags = p->flags;
	pthread_mutex_init(&h->extras_lock, NULL);
	h->size = (p->reserve_bytes ? p->reserve_bytes : DEFAULT_RESERVE) &
		  ~(h->page - 1);
	if (!h->size) {
		free(h);
		return -EINVAL;
	}
	h->changed = os_reserve_open(h->size / h->page);
	if (!h->changed || reserve(h)) {
		rc = -ENOMEM;
		goto fail;
	}
	sp.page_shift = (uint32_t)__builtin_ctzll(h->page);
	sp.nr_nodes = p->nr_nodes;
	sp.lazy_max_pages = p->lazy_max_pages;
	/*
	 * Refilled pools take ranges from the CPU's own zones only, which
	 * are 16 pages apart from the next: freed areas would then be
	 * released in runs of at most a zone, several madvise calls where
	 * the kernel's pools, filled from the lowest fit, release one.
	 * System calls dominate this layer's cost, so it keeps the kernel's.
	 */
	sp.flags = VMAP_KERNEL_POOLS;
	sp.release = release_run;
	sp.release_cookie = h;
	rc = vmap_space_create(h->base, h->base + h->size, &sp, &h->space);
	if (rc)
		goto fail;
	heaps_add(h);
	*out = h;
	return 0;
fail:
	if (h->base)
		os_unreserve((void *)(uintptr_t)h->base, h->size);
	if (h->changed)
		os_unreserve(h->changed, h->size / h->page);
	free(h);
	return rc;
}

void vmap_heap_destroy(struct vmap_heap *h)
{
	if (!h)
		return;
	heaps_del(h);
	/* The region goes back to the system: nothing of it stays poisoned. */
	if (atomic_load(&h->poisoned_end) > h->base)
		track_usable((void *)(uintptr_t)h->base,
			     atomic_load(&h->poisoned_end) - h->base);
	rcu_heap_drain(h);
	blocks_destroy(h);
	pages_destroy(h);
	pthread_mutex_destroy(&h->extras_lock);
	vmap_space_destroy(h->space);
	os_unreserve((void *)(uintptr_t)h->base, h->size);
	os_unreserve(h->changed, h->size / h->page);
	free(h);
}

struct vmap_space *vmap_heap_space(struct vmap_heap *h)
{
	return h ? h->space : NULL;
}

/*
 * Give the pages of the area at @start their shape.  A refusal for lack
 * of mappings (vm.max_map_count, under mprotect) is what a purge cures:
 * it makes lazy areas inaccessible again, so they merge back into the
 * reservation's mapping.  The caller then frees the range, purges and
 * tries once more.
 */
static int shape_area(struct vmap_heap *h, uint64_t start, uint64_t body_pages)
{
	uint64_t body = heap_body_of(h, start);
	int rc;

	rc = heap_set_pages(h, (body - h->base) / h->page, body_pages, true);
	return rc ? rc : heap_guard_area(h, start, body_pages);
}

/*
 * The part of @h in @slot, made by @create on the first call that asks
 * for it (@create_now) under extras_lock, and published only then.
 */
void *heap_extra(struct vmap_heap *h, void *_Atomic *slot,
		 void *(*create)(struct vmap_heap *h), bool create_now)
{
	void *part = atomic_load_explicit(slot, memory_order_acquire);

	if (part || !create_now)
		return part;
	pthread_mutex_lock(&h->extras_lock);
	part = atomic_load_explicit(slot, memory_order_relaxed);
	if (!part) {
		part = create(h);
		atomic_store_explicit(slot, part, memory_order_release);
	}
	pthread_mutex_unlock(&h->extras_lock);
	return part;
}

int heap_guard_area(struct vmap_heap *h, uint64_t start, uint64_t body_pages)
{
	uint64_t body = heap_body_of(h, start);
	/* The guard is the area's first page when below, else its last. */
	uint64_t guard = start == body ? body + body_pages * h->page : start;

	if (!guard_bytes(h))
		return 0;
	return heap_set_pages(h, (guard - h->base) / h->page, 1, false);
}

/* One exit, so that the vmalloc probe has one site for perf to attach to. */
static void *area_alloc(struct vmap_heap *h, size_t size, size_t align,
			enum area_kind kind, const void *caller)
{
	uint64_t body_pages, start, body = 0;
	bool purged = false;
	int rc;

	if (!h || !size || !align || (align & (align - 1)) ||
	    (align > h->page && (h->flags & VMAP_HEAP_GUARD_BELOW))) {
		rc = -EINVAL;
		goto out;
	}
	/* Larger than the reservation can ever hold: no room, not bad input. */
	if (size > h->size - guard_bytes(h) || align > h->size) {
		rc = -ENOMEM;
		goto out;
	}
	body_pages = (size + h->page - 1) / h->page;
	for (;;) {
		rc = vmap_alloc_user(
			h->space, body_pages * h->page + guard_bytes(h), align,
			0, 0, 0, area_user(kind, caller), &start);
		if (rc == -EINVAL) /* aligned size overflowing: no room */
			rc = -ENOMEM;
		if (rc)
			break;
		rc = shape_area(h, start, body_pages);
		if (!rc) {
			body = heap_body_of(h, start);
			track_usable((void *)(uintptr_t)body,
				     body_pages * h->page);
			break;
		}
		vmap_free(h->space, start);
		if (rc != -ENOMEM || purged)
			break;
		vmap_purge(h->space);
		purged = true;
	}
out:
	VMAP_PROBE(vmalloc, body, size, align);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	return (void *)(uintptr_t)body;
}

/*
 * A refusal, one line on stderr.  Writing to a stream may be a
 * cancellation point; no call of ours is.
 */
void heap_warn(const char *fmt, ...)
{
	int cancel_state = os_cancel_off();
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	os_cancel_restore(cancel_state);
}

/*
 * Where the area whose usable part starts at @addr would start; false if
 * @addr cannot be one (outside the heap, not page aligned).
 */
static bool area_start(const struct vmap_heap *h, const void *addr,
		       uint64_t *start)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;

	if (!h || a < h->base || a >= h->base + h->size || (a & (h->page - 1)))
		return false;
	*start = (h->flags & VMAP_HEAP_GUARD_BELOW) ? a - guard_bytes(h) : a;
	return true;
}

/* The area whose usable part starts at @addr, or -ENOENT. */
static int area_of(struct vmap_heap *h, const void *addr, struct vmap_range *r)
{
	uint64_t start;

	if (!area_start(h, addr, &start) || vmap_find(h->space, start, r) ||
	    r->start != start ||
	    (area_kind_of(r->user) != AREA_VMALLOC &&
	     area_kind_of(r->user) != AREA_VMALLOC_USER))
		return -ENOENT;
	return 0;
}

static void area_free(struct vmap_heap *h, const void *addr)
{
	struct vmap_range r;
	uint64_t start;
	bool ok;

	if (!addr)
		return;
	/*
	 * A checker needs the size, and an area of another kind must not be
	 * freed here: both cost a lookup, made only when they can matter.
	 */
	if (track_enabled ||
	    atomic_load_explicit(&h->mapped_areas, memory_order_relaxed)) {
		ok = !area_of(h, addr, &r);
		if (ok)
			heap_poison(h, (uint64_t)(uintptr_t)addr,
				    r.end - r.start - guard_bytes(h));
	} else {
		ok = true;
	}
	/* vmap_free() refuses anything but the start of a busy area. */
	if (!ok || !area_start(h, addr, &start) || vmap_free(h->space, start))
		heap_warn(
			"vfree: %p is not an area from vmalloc (or was freed already); ignored\n",
			addr);
	else
		VMAP_PROBE(vfree, addr);
}

static size_t area_size(struct vmap_heap *h, const void *addr)
{
	struct vmap_range r;

	if (area_of(h, addr, &r))
		return 0;
	return (size_t)(r.end - r.start - guard_bytes(h));
}

static void *area_realloc(struct vmap_heap *h, void *addr, size_t size,
			  const void *caller)
{
	size_t old;
	void *moved;

	if (!addr)
		return area_alloc(h, size, 1, AREA_VMALLOC, caller);
	if (!size) {
		area_free(h, addr);
		return NULL;
	}
	old = area_size(h, addr);
	if (!old) {
		heap_warn("vrealloc: %p is not an area from vmalloc; refused\n",
			  addr);
		errno = EINVAL;
		return NULL;
	}
	if (size <= old) {
		memset((char *)addr + size, 0, old - size);
		return addr;
	}
	moved = area_alloc(h, size, 1, AREA_VMALLOC, caller);
	if (!moved)
		return NULL;
	memcpy(moved, addr, old);
	area_free(h, addr);
	return moved;
}

/* "symbol+0xoff/0xsize" like the kernel's %pS, else the bare address. */
static void format_caller(uint64_t caller, char *buf, size_t len)
{
	const ElfW(Sym) *sym = NULL;
	Dl_info info;

	if (caller &&
	    dladdr1((void *)(uintptr_t)caller, &info, (void **)&sym,
		    RTLD_DL_SYMENT) &&
	    info.dli_sname && sym) {
		snprintf(buf, len, "%s+0x%llx/0x%llx", info.dli_sname,
			 (unsigned long long)(caller - (uint64_t)(uintptr_t)
							       info.dli_saddr),
			 (unsigned long long)sym->st_size);
		return;
	}
	snprintf(buf, len, "0x%llx", (unsigned long long)caller);
}

/* One line of /proc/vmallocinfo for the range @r. */
static void print_area(struct vmap_heap *h, const struct vmap_range *r,
		       FILE *out)
{
	enum area_kind kind = area_kind_of(r->user);
	char caller[256];

	fprintf(out, "0x%016llx-0x%016llx %7llu ", (unsigned long long)r->start,
		(unsigned long long)r->end,
		(unsigned long long)(r->end - r->start));
	if (r->state == VMAP_RANGE_LAZY) {
		fputs("unpurged vm_area\n", out);
		return;
	}
	if (kind == AREA_VM_MAP_RAM || kind == AREA_VMAP_BLOCK) {
		fputs("vm_map_ram\n", out);
		return;
	}
	format_caller(area_caller_of(r->user), caller, sizeof(caller));
	fprintf(out, "%s pages=%llu %s\n", caller,
		(unsigned long long)((r->end - r->start - guard_bytes(h)) /
				     h->page),
		kind == AREA_VMAP	  ? "vmap" :
		kind == AREA_VMALLOC_USER ? "vmalloc user" :
					    "vmalloc");
}

/*
 * Busy areas in address order with vmap_next() (the walk vread() makes
 * too), then the lazy ones from a snapshot, as the kernel lists them last.
 */
static int heap_info(struct vmap_heap *h, FILE *out)
{
	struct vmap_range *r, busy;
	uint64_t pos;
	size_t n, i;
	int rc;

	if (!h || !out)
		return -EINVAL;
	for (pos = h->base; !vmap_next(h->space, pos, &busy, NULL, NULL);
	     pos = busy.end)
		print_area(h, &busy, out);
	rc = vmap_snapshot(h->space, &r, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		if (r[i].state == VMAP_RANGE_LAZY)
			print_area(h, &r[i], out);
	free(r);
	return os_stream_done(out);
}

/* Writing to a stream may be a cancellation point; no call of ours is. */
int vmap_heap_info(struct vmap_heap *h, FILE *out)
{
	int cancel_state = os_cancel_off();
	int rc = heap_info(h, out);

	os_cancel_restore(cancel_state);
	return rc;
}

int vmap_heap_check(struct vmap_heap *h, char *msg, size_t msglen)
{
	int rc;

	if (!h)
		return -EINVAL;
	rc = vmap_check(h->space, msg, msglen);
	return rc ? rc : blocks_check(h, msg, msglen);
}

int vmap_heap_stats(struct vmap_heap *h, struct vmap_heap_stats *out)
{
	struct vmap_heap_stats st;
	struct vmap_range *r;
	size_t n, i;
	int rc;

	if (!h || !out || out->size < 2 * sizeof(uint32_t))
		return -EINVAL;
	rc = vmap_snapshot(h->space, &r, &n);
	if (rc)
		return rc;
	memset(&st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		if (r[i].state == VMAP_RANGE_LAZY) {
			st.lazy_areas++;
			st.lazy_bytes += r[i].end - r[i].start;
		} else {
			st.live_areas++;
			st.live_bytes += r[i].end - r[i].start;
		}
	}
	free(r);
	st.syscalls_mprotect = atomic_load(&h->sys_mprotect);
	st.syscalls_madvise = atomic_load(&h->sys_madvise);
	st.syscalls_guard = atomic_load(&h->sys_guard);
	st.syscalls_remap = atomic_load(&h->sys_remap);
	st.syscalls_mmap = atomic_load(&h->sys_mmap);
	st.guard_markers = h->markers;
	st.released_runs = atomic_load(&h->released_runs);
	st.released_bytes = atomic_load(&h->released_bytes);
	st.size = out->size < sizeof(st) ? out->size : (uint32_t)sizeof(st);
	st.version = VMAP_VERSION;
	memcpy(out, &st, st.size);
	return 0;
}

void *vmap_heap_vmalloc(struct vmap_heap *h, size_t size)
{
	return area_alloc(h, size, 1, AREA_VMALLOC,
			  __builtin_return_address(0));
}

void *vmap_heap_vmalloc_align(struct vmap_heap *h, size_t size, size_t align)
{
	return area_alloc(h, size, align, AREA_VMALLOC,
			  __builtin_return_address(0));
}

/* Zeroed: only a VMAP_HEAP_MADV_FREE heap can hand out old contents. */
void *vmap_heap_vmalloc_user(struct vmap_heap *h, size_t size)
{
	void *p = area_alloc(h, size, 1, AREA_VMALLOC_USER,
			     __builtin_return_address(0));

	if (p && (h->flags & VMAP_HEAP_MADV_FREE))
		memset(p, 0, size);
	return p;
}

void vmap_heap_vfree(struct vmap_heap *h, const void *addr)
{
	area_free(h, addr);
}

void *vmap_heap_vrealloc(struct vmap_heap *h, void *addr, size_t size)
{
	return area_realloc(h, addr, size, __builtin_return_address(0));
}

size_t vmap_heap_size(struct vmap_heap *h, const void *addr)
{
	return area_size(h, addr);
}

/* The default heap, created on first use from any thread. */
static struct vmap_heap *default_heap;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_create(void)
{
	if (vmap_heap_create(NULL, &default_heap))
		default_heap = NULL;
}

struct vmap_heap *vmap_default_heap(void)
{
	pthread_once(&default_once, default_create);
	return default_heap;
}

/* The default heap, or NULL with errno ENOMEM: it could not be created. */
static struct vmap_heap *default_heap_or_enomem(void)
{
	struct vmap_heap *h = vmap_default_heap();

	if (!h)
		errno = ENOMEM;
	return h;
}

void *vmalloc(size_t size)
{
	struct vmap_heap *h = default_heap_or_enomem();

	return h ? area_alloc(h, size, 1, AREA_VMALLOC,
			      __builtin_return_address(0)) :
		   NULL;
}

/*
 * The default heap releases with MADV_DONTNEED, so every area it hands
 * out reads zero already: vzalloc() is vmalloc() under its own name.
 */
void *vzalloc(size_t size)
{
	struct vmap_heap *h = default_heap_or_enomem();

	return h ? area_alloc(h, size, 1, AREA_VMALLOC,
			      __builtin_return_address(0)) :
		   NULL;
}

/* Zeroed for the same reason as vzalloc(). */
void *vmalloc_user(size_t size)
{
	struct vmap_heap *h = default_heap_or_enomem();

	return h ? area_alloc(h, size, 1, AREA_VMALLOC_USER,
			      __builtin_return_address(0)) :
		   NULL;
}

void vfree(const void *addr)
{
	if (addr)
		area_free(vmap_default_heap(), addr);
}

size_t vmalloc_size(const void *addr)
{
	return area_size(vmap_default_heap(), addr);
}

void *vrealloc(void *addr, size_t size)
{
	struct vmap_heap *h = default_heap_or_enomem();

	return h ? area_realloc(h, addr, size, __builtin_return_address(0)) :
		   NULL;
}

int vmallocinfo(FILE *out)
{
	struct vmap_heap *h = vmap_default_heap();

	return h ? vmap_heap_info(h, out) : -ENOMEM;
}
