/* SPDX-License-Identifier: MIT */
/*
 * space.c - the public API of a space: creation, allocation, free, find,
 * purge, shrink and purge notifiers.  Argument checking happens here and
 * only here, before anything is touched, so a refused call changes
 * nothing.
 *
 * Locks: see internal.h.  An allocation takes at most one lock at a time
 * (a pool lock, then the heap lock, then a busy lock); the notifier
 * rwlock is held while notifiers run, with no other lock held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "fault.h"
#include "internal.h"
#include "os.h"
#include "probes.h"

/*
 * After a full purge and a round of notifiers that reported progress, an
 * allocation tries again; this bounds the rounds so that a notifier that
 * claims progress without making any cannot hold a caller forever.
 */
#define MAX_NOTIFIER_ROUNDS 8

unsigned vmap_version(void)
{
	return VMAP_VERSION;
}

const char *vmap_version_string(void)
{
#define VMAP_STR2(x) #x
#define VMAP_STR(x) VMAP_STR2(x)
	return VMAP_STR(VMAP_VERSION_MAJOR) "." VMAP_STR(VMAP_VERSION_MINOR)
		"." VMAP_STR(VMAP_VERSION_PATCH);
}

static unsigned fls_u(unsigned x)
{
	unsigned n = 0;

	while (x) {
		n++;
		x >>= 1;
	}
	return n;
}

/*
 * The kernel's lazy_max_pages: 32 MiB of pages per bit of the CPU count,
 * so that machines with more CPUs (more frees in flight, costlier
 * flushes) batch more per purge.  Deterministic mode counts one CPU, so
 * that a replay purges at the same points on every machine.  The one
 * place this formula is written: the tools read the result from
 * vmap_space_info().
 */
static uint64_t default_lazy_max_pages(unsigned page_shift, unsigned cpus)
{
	uint64_t pages = fls_u(cpus) * ((32ull << 20) >> page_shift);

	return pages ? pages : 1;
}

static int check_params(uint64_t base, uint64_t limit,
			const struct vmap_params *p)
{
	unsigned i;
	uint64_t page;

	if (p->reserved0 || (p->flags & ~(VMAP_DETERMINISTIC | VMAP_TAG_BY_ADDRESS)))
		return -EINVAL;
	for (i = 0; i < sizeof(p->reserved) / sizeof(p->reserved[0]); i++)
		if (p->reserved[i])
			return -EINVAL;
	if (p->page_shift && (p->page_shift < 12 || p->page_shift > 30))
		return -EINVAL;
	if (p->nr_nodes > MAX_NODES)
		return -EINVAL;
	page = 1ull << (p->page_shift ? p->page_shift : 12);
	if (base >= limit || (base & (page - 1)) || (limit & (page - 1)))
		return -EINVAL;
	if (limit - base > (1ull << 63))
		return -EINVAL;
	return 0;
}

static void space_free(struct vmap_space *s)
{
	va_delete_list(&s->heap.set.list);
	nodes_destroy(s);
	pthread_rwlock_destroy(&s->notifier_lock);
	free(s->notifiers);
	free(s);
}

int vmap_space_create(uint64_t base, uint64_t limit,
		      const struct vmap_params *params, struct vmap_space **out)
{
	static const struct vmap_params defaults;
	const struct vmap_params *p = params ? params : &defaults;
	unsigned cpus = os_nr_cpus();
	struct vmap_space *s;
	struct vlist garbage;
	struct va *whole;
	int rc;

	if (!out)
		return -EINVAL;
	rc = check_params(base, limit, p);
	if (rc)
		return rc;
	if (fault_hit(FAULT_SPACE_ALLOC))
		return -ENOMEM;
	s = aligned_alloc(64, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->limit = limit;
	s->page_shift = p->page_shift ? p->page_shift : 12;
	s->page_size = 1ull << s->page_shift;
	s->zone_shift = s->page_shift + (unsigned)__builtin_ctz(ZONE_PAGES);
	s->nr_nodes = p->nr_nodes ? p->nr_nodes :
		(cpus > MAX_NODES ? MAX_NODES : cpus);
	s->lazy_max_pages = p->lazy_max_pages;
	if (!s->lazy_max_pages)
		s->lazy_max_pages = default_lazy_max_pages(s->page_shift,
				(p->flags & VMAP_DETERMINISTIC) ? 1 : cpus);
	s->flags = p->flags;
	s->flush = p->flush;
	s->flush_cookie = p->flush_cookie;
	s->release = p->release;
	s->release_cookie = p->release_cookie;

	vlock_init(&s->heap_lock);
	heap_init(&s->heap);
	purge_init(s);
	pthread_rwlock_init(&s->notifier_lock, NULL);
	rc = nodes_create(s);
	if (rc)
		goto fail;
	whole = va_new();
	if (!whole) {
		rc = -ENOMEM;
		goto fail;
	}
	whole->start = base;
	whole->end = limit;
	vlist_init(&garbage);
	heap_return(&s->heap, whole, &garbage);	/* an empty heap: nothing merges */
	rc = trace_open(s);
	if (rc)
		goto fail;
	registry_add(s);
	*out = s;
	return 0;
fail:
	space_free(s);
	return rc;
}

void vmap_space_destroy(struct vmap_space *s)
{
	int cancel_state;

	if (!s)
		return;
	cancel_state = os_cancel_off();
	registry_del(s);
	purge_fini(s);
	trace_close(s);
	space_free(s);
	os_cancel_restore(cancel_state);
}

int vmap_space_info(const struct vmap_space *s, struct vmap_space_info *info)
{
	if (!s || !info)
		return -EINVAL;
	info->base = s->base;
	info->limit = s->limit;
	info->page_size = s->page_size;
	info->lazy_max_pages = s->lazy_max_pages;
	info->nr_nodes = s->nr_nodes;
	info->flags = s->flags;
	return 0;
}

int vmap_set_thread_cpu(int cpu)
{
	return thread_cpu_set(cpu);
}

unsigned vmap_thread_cpu(void)
{
	return thread_cpu_get();
}

/*
 * The spare record a split needs is obtained before the heap lock is
 * taken (DESIGN.md section 2).  Each thread keeps one across calls, since most
 * allocations do not split; a thread-exit destructor frees it.
 *
 * Other destructors of the same thread may run after that one and
 * allocate (per-thread caches flushing themselves): from then on the
 * thread keeps no spare, so none is used after it was freed and none is
 * left behind once the destructors are done.
 */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static _Thread_local struct va *spare_cached;
static _Thread_local bool spare_exiting;

static void spare_destroy(void *va)
{
	spare_cached = NULL;
	spare_exiting = true;
	va_delete(va);
}

static void spare_key_create(void)
{
	pthread_key_create(&spare_key, spare_destroy);
}

static void spare_set(struct va *va)
{
	if (spare_exiting) {
		va_delete(va);
		va = NULL;
	}
	spare_cached = va;
	pthread_once(&spare_once, spare_key_create);
	pthread_setspecific(spare_key, va);
}

static struct va *spare_get(void)
{
	if (!spare_cached) {
		if (spare_exiting)
			return va_new();
		spare_set(va_new());
	}
	return spare_cached;
}

/* After a heap call: forget a consumed spare, refill it from @garbage. */
static void spare_settle(struct va *left, struct vlist *garbage)
{
	struct va *va;

	if (!left && !vlist_empty(garbage)) {
		va = va_of_link(garbage->next);
		vlist_del(&va->link);
		left = va;
	}
	if (left != spare_cached)
		spare_set(left);
	va_delete_list(garbage);
}

/* Notifiers are the user's code: cancellation stays off while they run. */
static uint64_t call_notifiers(struct vmap_space *s)
{
	int cancel_state = os_cancel_off();
	uint64_t freed = 0;
	unsigned i;

	pthread_rwlock_rdlock(&s->notifier_lock);
	for (i = 0; i < s->nr_notifiers; i++)
		s->notifiers[i].fn(s, s->notifiers[i].cookie, &freed);
	pthread_rwlock_unlock(&s->notifier_lock);
	counter_add(&s->notifier_rounds, 1);
	os_cancel_restore(cancel_state);
	return freed;
}

static bool reclaimable(struct vmap_space *s)
{
	return atomic_load(&s->lazy_nr) || !pools_empty(s);
}

/*
 * Take a range from the global heap.  No fit: one full purge and retry,
 * then the notifiers, and another round only if they freed something.
 */
static int heap_take(struct vmap_space *s, uint64_t size, uint64_t align,
		     uint64_t vstart, uint64_t vend, unsigned flags,
		     uint64_t *start)
{
	unsigned rounds = 0;
	bool purged = false;
	struct vlist garbage;
	struct va *spare;
	int rc;

	for (;;) {
		spare = spare_get();
		if (!spare)
			return -ENOMEM;
		vlist_init(&garbage);
		vlock_acquire(&s->heap_lock);
		rc = heap_alloc(&s->heap, size, align, s->page_size, vstart,
				vend, &spare, &garbage, start);
		if (!rc)
			transit_take(s, *start, *start + size);
		vlock_release(&s->heap_lock);
		spare_settle(spare, &garbage);
		if (!rc)
			return 0;
		if (flags & VMAP_NONBLOCK)
			return reclaimable(s) ? -EBUSY : -ENOMEM;
		if (!purged) {
			purge_now(s, true);
			purged = true;
			continue;
		}
		if (!call_notifiers(s) || ++rounds >= MAX_NOTIFIER_ROUNDS)
			return -ENOMEM;
		purged = false;
	}
}

int vmap_alloc(struct vmap_space *s, uint64_t size, uint64_t align,
	       uint64_t vstart, uint64_t vend, unsigned flags, uint64_t *addr)
{
	return vmap_alloc_user(s, size, align, vstart, vend, flags, 0, addr);
}

static int alloc_range(struct vmap_space *s, unsigned cpu, uint64_t size,
		       uint64_t align, uint64_t vstart, uint64_t vend,
		       unsigned flags, uint64_t user, uint64_t *addr)
{
	struct vmap_node *cpu_vn;
	bool whole, pooled;
	unsigned addr_node;
	struct va *va;
	uint64_t start;
	int rc;

	if (!addr || (flags & ~VMAP_NONBLOCK))
		return -EINVAL;
	if (!size || (size & (s->page_size - 1)))
		return -EINVAL;
	if (!align || (align & (align - 1)))
		return -EINVAL;
	if (align < s->page_size)
		align = s->page_size;
	if (!vstart && !vend) {
		vstart = s->base;
		vend = s->limit;
	}
	if (vstart >= vend || vstart < s->base || vend > s->limit)
		return -EINVAL;
	if (size > vend - vstart || size - 1 > UINT64_MAX - align)
		return -EINVAL;

	transit_ready();
	whole = vstart == s->base && vend == s->limit;
	pooled = whole && s->nr_nodes > 1;
	cpu_vn = &s->nodes[cpu % s->nr_nodes];
	va = NULL;
	if (pooled && (size >> s->page_shift) <= MAX_VA_SIZE_PAGES) {
		va = pool_take(s, cpu_vn, size, align);
		counter_add(va ? &cpu_vn->count.pool_hits : &cpu_vn->count.pool_misses, 1);
		if (va)
			VMAP_PROBE(pool_hit, cpu_vn->id, va->start, size);
		else
			VMAP_PROBE(pool_miss, cpu_vn->id, size, align);
	}
	if (!va) {
		va = va_new();
		if (!va)
			return -ENOMEM;
		rc = heap_take(s, size, align, vstart, vend, flags, &start);
		if (rc) {
			va_delete(va);
			counter_add(&cpu_vn->count.alloc_failures, 1);
			return rc;
		}
		va->start = start;
		va->end = start + size;
	}
	/*
	 * The tag names the node whose lazy list and pools take the range
	 * when it is freed: by default the allocating CPU's, also after a
	 * pool miss, so pools fill with what their CPUs ask for (DESIGN.md
	 * section 6).
	 */
	start = va->start;
	addr_node = addr_to_node(s, start);
	va->tag = 0;
	if (pooled)
		va->tag = 1 + ((s->flags & VMAP_TAG_BY_ADDRESS) ? addr_node : cpu_vn->id);
	va->user = user;
	VMAP_ASSERT(va->start >= vstart && va->end <= vend);
	VMAP_ASSERT(!(va->start & (align - 1)));
	if (!busy_insert(s, &s->nodes[addr_node], va)) {
		va_delete(va);
		return -EUCLEAN;
	}
	if (addr_node != cpu_vn->id)
		counter_add(&cpu_vn->count.cross_node_busy, 1);
	counter_add(&cpu_vn->count.allocs, 1);
	*addr = start;
	return 0;
}

int vmap_alloc_user(struct vmap_space *s, uint64_t size, uint64_t align,
		    uint64_t vstart, uint64_t vend, unsigned flags, uint64_t user,
		    uint64_t *addr)
{
	unsigned cpu;
	int rc;

	if (!s)
		return -EINVAL;
	cpu = this_cpu(s);
	trace_lock(s);
	rc = alloc_range(s, cpu, size, align, vstart, vend, flags, user, addr);
	VMAP_PROBE(alloc_vmap_area, rc ? (uint64_t)0 : *addr, size, align,
		   vstart, vend, rc);
	/* A NULL @addr has no line: a replay always passes one. */
	if (s->trace && addr)
		trace_alloc(s, cpu, size, align, vstart, vend, flags, rc,
			    rc ? 0 : *addr);
	trace_unlock(s);
	return rc;
}

/* The free proper; its line is written before a purge it may start. */
static int free_range(struct vmap_space *s, uint64_t addr)
{
	uint64_t pages, nr_lazy;
	struct va *va;

	if (addr < s->base || addr >= s->limit)
		return -ENOENT;
	transit_ready();
	va = busy_unlink(s, addr);
	if (!va)
		return -ENOENT;
	if (s->trace)
		trace_free(s, addr);
	pages = va_pages(s, va);
	nr_lazy = atomic_fetch_add(&s->lazy_nr, pages) + pages;
	lazy_insert(s, va);
	VMAP_PROBE(free_vmap_area_noflush, addr, nr_lazy, s->lazy_max_pages);
	if (nr_lazy > s->lazy_max_pages)
		purge_kick(s);
	return 0;
}

int vmap_free(struct vmap_space *s, uint64_t addr)
{
	int rc;

	if (!s)
		return -EINVAL;
	trace_lock(s);
	rc = free_range(s, addr);
	trace_unlock(s);
	return rc;
}

int vmap_find(struct vmap_space *s, uint64_t addr, struct vmap_range *range)
{
	if (!s || !range)
		return -EINVAL;
	if (addr < s->base || addr >= s->limit)
		return -ENOENT;
	return busy_lookup(s, addr, range);
}

int vmap_purge(struct vmap_space *s)
{
	if (!s)
		return -EINVAL;
	trace_lock(s);
	purge_now(s, false);
	trace_unlock(s);
	return 0;
}

int vmap_shrink(struct vmap_space *s)
{
	if (!s)
		return -EINVAL;
	trace_lock(s);
	shrink_now(s);
	trace_unlock(s);
	return 0;
}

static int notifier_index(struct vmap_space *s, vmap_notifier_fn fn,
			  void *cookie)
{
	unsigned i;

	for (i = 0; i < s->nr_notifiers; i++)
		if (s->notifiers[i].fn == fn && s->notifiers[i].cookie == cookie)
			return (int)i;
	return -1;
}

int vmap_notifier_register(struct vmap_space *s, vmap_notifier_fn fn,
			   void *cookie)
{
	struct notifier *grown;
	int rc = 0;

	if (!s || !fn)
		return -EINVAL;
	pthread_rwlock_wrlock(&s->notifier_lock);
	if (notifier_index(s, fn, cookie) >= 0) {
		rc = -EEXIST;
	} else if (fault_hit(FAULT_SPACE_ALLOC) ||
		   !(grown = realloc(s->notifiers,
				     (s->nr_notifiers + 1) * sizeof(*grown)))) {
		rc = -ENOMEM;
	} else {
		s->notifiers = grown;
		s->notifiers[s->nr_notifiers].fn = fn;
		s->notifiers[s->nr_notifiers].cookie = cookie;
		s->nr_notifiers++;
	}
	pthread_rwlock_unlock(&s->notifier_lock);
	return rc;
}

int vmap_notifier_unregister(struct vmap_space *s, vmap_notifier_fn fn,
			     void *cookie)
{
	int i, rc = 0;

	if (!s)
		return -EINVAL;
	pthread_rwlock_wrlock(&s->notifier_lock);
	i = notifier_index(s, fn, cookie);
	if (i < 0) {
		rc = -ENOENT;
	} else {
		s->notifiers[i] = s->notifiers[--s->nr_notifiers];
	}
	pthread_rwlock_unlock(&s->notifier_lock);
	return rc;
}

int vmap_next(struct vmap_space *s, uint64_t addr, struct vmap_range *range,
	      vmap_range_fn fn, void *cookie)
{
	if (!s || !range)
		return -EINVAL;
	return busy_next(s, addr, range, fn, cookie);
}

/*
 * Check the areas of a congruent request (see vmap.h) and fill @a; the
 * overlap test sorts a copy of the areas' order by offset.
 */
static int pcpu_check(struct vmap_space *s, const uint64_t *offsets,
		      const uint64_t *sizes, unsigned nr, uint64_t align,
		      struct pcpu_areas *a)
{
	unsigned i, j, *order;
	uint64_t end;
	int rc = 0;

	if (!offsets || !sizes || !nr || nr > VMAP_PCPU_MAX_AREAS)
		return -EINVAL;
	if (!align || (align & (align - 1)))
		return -EINVAL;
	if (align < s->page_size)
		align = s->page_size;
	a->offsets = offsets;
	a->sizes = sizes;
	a->nr = nr;
	a->align = align;
	a->first_start = UINT64_MAX;
	a->last_end = 0;
	for (i = 0; i < nr; i++) {
		if (!sizes[i] || (sizes[i] & (s->page_size - 1)) ||
		    (offsets[i] & (align - 1)) || offsets[i] > UINT64_MAX - sizes[i])
			return -EINVAL;
		end = offsets[i] + sizes[i];
		if (offsets[i] < a->first_start)
			a->first_start = offsets[i];
		if (end > a->last_end)
			a->last_end = end;
	}
	if (a->last_end - a->first_start > s->limit - s->base)
		return -EINVAL;
	order = malloc(nr * sizeof(*order));
	if (!order)
		return -ENOMEM;
	/* Insertion sort: the percpu allocator asks for a few groups. */
	for (i = 0; i < nr; i++) {
		for (j = i; j > 0 && offsets[order[j - 1]] > offsets[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (i = 1; i < nr; i++)
		if (offsets[order[i - 1]] + sizes[order[i - 1]] > offsets[order[i]])
			rc = -EINVAL;
	free(order);
	return rc;
}

int vmap_pcpu_get_vm_areas(struct vmap_space *s, const uint64_t *offsets,
			   const uint64_t *sizes, unsigned nr, uint64_t align,
			   uint64_t *starts)
{
	struct va **spares, **busy;
	struct pcpu_areas a;
	struct vlist garbage;
	bool purged = false;
	uint64_t base;
	unsigned i;
	int rc;

	if (!s || !starts)
		return -EINVAL;
	rc = pcpu_check(s, offsets, sizes, nr, align, &a);
	if (rc)
		return rc;
	/* Records first: nr for the areas, nr spares for the splits. */
	spares = calloc(2 * (size_t)nr, sizeof(*spares));
	if (!spares)
		return -ENOMEM;
	busy = spares + nr;
	for (i = 0; i < 2 * nr; i++) {
		spares[i] = va_new();
		if (!spares[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (;;) {
		vlist_init(&garbage);
		vlock_acquire(&s->heap_lock);
		rc = heap_alloc_congruent(&s->heap, &a, s->base, s->limit, spares,
					  &garbage, &base);
		vlock_release(&s->heap_lock);
		va_delete_list(&garbage);
		if (!rc || purged)
			break;
		purge_now(s, true);
		purged = true;
	}
	if (rc) {
		counter_add(&s->nodes[this_cpu(s) % s->nr_nodes].count.alloc_failures, 1);
		goto out;
	}
	for (i = 0; i < nr; i++) {
		busy[i]->start = starts[i] = base + offsets[i];
		busy[i]->end = busy[i]->start + sizes[i];
		busy[i]->tag = 0;
		busy[i]->user = 0;
		if (busy_insert(s, &s->nodes[addr_to_node(s, busy[i]->start)], busy[i])) {
			counter_add(&s->nodes[this_cpu(s) % s->nr_nodes].count.allocs, 1);
		} else {
			va_delete(busy[i]);
			rc = -EUCLEAN;
		}
		busy[i] = NULL;
	}
out:
	for (i = 0; i < 2 * nr; i++)
		va_delete(spares[i]);
	free(spares);
	return rc;
}

int vmap_pcpu_free_vm_areas(struct vmap_space *s, const uint64_t *starts,
			    unsigned nr)
{
	struct vmap_range r;
	unsigned i;

	if (!s || !starts || !nr)
		return -EINVAL;
	for (i = 0; i < nr; i++)
		if (vmap_find(s, starts[i], &r) || r.start != starts[i])
			return -ENOENT;
	for (i = 0; i < nr; i++)
		vmap_free(s, starts[i]);
	return 0;
}
