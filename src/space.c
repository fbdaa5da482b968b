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
#include "trace.h"

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
	return VMAP_STR(VMAP_VERSION_MAJOR) "." VMAP_STR(
		VMAP_VERSION_MINOR) "." VMAP_STR(VMAP_VERSION_PATCH);
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

/*
 * The granule's shift from @p, or -1 if page_shift and granule are bad
 * or disagree.
 */
static int granule_shift(const struct vmap_params *p)
{
	int shift;

	if (p->page_shift && (p->page_shift < 12 || p->page_shift > 30))
		return -1;
	if (!p->granule)
		return p->page_shift ? (int)p->page_shift : 12;
	if ((p->granule & (p->granule - 1)) || p->granule > (1ull << 30))
		return -1;
	shift = __builtin_ctzll(p->granule);
	if (p->page_shift && (int)p->page_shift != shift)
		return -1;
	return shift;
}

static int check_params(uint64_t base, uint64_t limit,
			const struct vmap_params *p)
{
	const unsigned known = VMAP_DETERMINISTIC | VMAP_TAG_BY_ADDRESS |
			       VMAP_IMMEDIATE_FREE | VMAP_BESTFIT_INDEX |
			       VMAP_KERNEL_POOLS;
	unsigned i;
	uint64_t page;
	int shift;

	if (p->reserved0 || (p->flags & ~known))
		return -EINVAL;
	for (i = 0; i < sizeof(p->reserved) / sizeof(p->reserved[0]); i++)
		if (p->reserved[i])
			return -EINVAL;
	shift = granule_shift(p);
	if (shift < 0 || p->nr_nodes > MAX_NODES)
		return -EINVAL;
	page = 1ull << shift;
	if (!p->import != !p->release_span || !p->import != !p->quantum)
		return -EINVAL;
	if (p->quantum &&
	    ((p->quantum & (p->quantum - 1)) || p->quantum < page))
		return -EINVAL;
	/* limit 0 is 2^64: compare last bytes, which never wrap. */
	if (base > limit - 1 || (base & (page - 1)) || (limit & (page - 1)))
		return -EINVAL;
	return 0;
}

static void space_free(struct vmap_space *s)
{
	span_destroy(s);
	va_delete_list(&s->heap.set.list);
	nodes_destroy(s);
	pthread_rwlock_destroy(&s->notifier_lock);
	free(s->notifiers);
	free(s);
}

/*
 * A space over [base, limit), or with no span at all for a child, whose
 * hull is then everything (its imports may land anywhere).
 */
static int space_create(uint64_t base, uint64_t limit,
			const struct vmap_params *p, bool child,
			struct vmap_space **out)
{
	unsigned cpus = os_nr_cpus();
	struct vmap_space *s;
	int rc;

	if (fault_hit(FAULT_SPACE_ALLOC))
		return -ENOMEM;
	s = aligned_alloc(64, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->page_shift = (unsigned)granule_shift(p);
	s->page_size = 1ull << s->page_shift;
	s->zone_shift = s->page_shift + (unsigned)__builtin_ctz(ZONE_PAGES);
	s->nr_nodes = p->nr_nodes ? p->nr_nodes :
				    (cpus > MAX_NODES ? MAX_NODES : cpus);
	s->nr_cpus = os_usable_cpus();
	s->lazy_max_pages = p->lazy_max_pages;
	if (!s->lazy_max_pages)
		s->lazy_max_pages = default_lazy_max_pages(
			s->page_shift,
			(p->flags & VMAP_DETERMINISTIC) ? 1 : cpus);
	s->flags = p->flags;
	s->lazy_batch_pages = lazy_batch_size(s);
	s->flush = p->flush;
	s->flush_cookie = p->flush_cookie;
	s->release = p->release;
	s->release_cookie = p->release_cookie;
	s->import = p->import;
	s->release_span = p->release_span;
	s->import_cookie = p->import_cookie;
	s->quantum = p->quantum;

	vlock_init(&s->heap_lock);
	free_heap_init(&s->heap);
	if (s->flags & VMAP_BESTFIT_INDEX)
		free_heap_index_enable(&s->heap);
	span_init(s, child ? 0 : base, child ? UINT64_MAX : limit - 1);
	purge_init(s);
	pthread_rwlock_init(&s->notifier_lock, NULL);
	rc = nodes_create(s);
	if (!rc && !child)
		rc = span_add(s, base, limit - 1, false);
	if (!rc)
		rc = trace_open(s);
	if (rc) {
		space_free(s);
		return rc;
	}
	registry_add(s);
	*out = s;
	return 0;
}

int vmap_space_create(uint64_t base, uint64_t limit,
		      const struct vmap_params *params, struct vmap_space **out)
{
	static const struct vmap_params defaults;
	const struct vmap_params *p = params ? params : &defaults;
	int rc;

	if (!out)
		return -EINVAL;
	rc = check_params(base, limit, p);
	if (rc)
		return rc;
	return space_create(base, limit, p, false, out);
}

static int child_import(void *cookie, uint64_t size, uint64_t *base)
{
	struct vmap_space *child = cookie;
	struct vmap_request req = { .size = size, .align = child->quantum };

	return vmap_xalloc(child->parent, &req, base);
}

static void child_release(void *cookie, uint64_t base, uint64_t size)
{
	struct vmap_space *child = cookie;

	(void)size;
	vmap_free(child->parent, base);
}

int vmap_space_create_child(struct vmap_space *parent, uint64_t quantum,
			    const struct vmap_params *params,
			    struct vmap_space **out)
{
	static const struct vmap_params defaults;
	struct vmap_params p = params ? *params : defaults;
	struct vmap_space *child;
	int rc;

	if (!parent || !out || p.import || p.release_span || p.import_cookie ||
	    p.quantum || !quantum || (quantum & (parent->page_size - 1)))
		return -EINVAL;
	p.import = child_import;
	p.release_span = child_release;
	p.quantum = quantum;
	rc = check_params(0, 0, &p);
	if (rc)
		return rc;
	rc = space_create(0, 0, &p, true, &child);
	if (rc)
		return rc;
	child->parent = parent;
	child->import_cookie = child;
	*out = child;
	return 0;
}

int vmap_space_add(struct vmap_space *s, uint64_t base, uint64_t limit)
{
	int rc;

	if (!s || base > limit - 1 || ((base | limit) & (s->page_size - 1)))
		return -EINVAL;
	trace_lock(s);
	rc = span_add(s, base, limit - 1, false);
	if (s->trace && !rc)
		trace_add(s, base, limit);
	trace_unlock(s);
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
	info->base = space_first(s);
	info->limit = space_last(s) + 1;
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
 * taken (DESIGN.md section 2).  Each thread keeps one across calls, since
 * most allocations do not split; a thread-exit destructor frees it.  It
 * serves every space, so it is always one with room for a size-index link.
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
			return va_new_indexed();
		spare_set(va_new_indexed());
	}
	return spare_cached;
}

/* After a heap call: forget a consumed spare, refill it from @garbage. */
static void spare_settle(struct va *left, struct vlist *garbage)
{
	struct va *va;

	if (!left) {
		vlist_for_each_va(va, garbage) {
			if (va->indexed) {
				vlist_del(&va->link);
				left = va;
				break;
			}
		}
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
	return lazy_pages_now(s) || !pools_empty(s);
}

/*
 * Take a range from the global heap, and @refill's batch (if any) under
 * the same lock.  No fit: one full purge and retry, then one import from
 * the source if the space has one, then the notifiers, and another round
 * only if they freed something; VMAP_NONBLOCK and VMAP_NOPURGE stop
 * before the purge.
 */
static int heap_take(struct vmap_space *s, const struct free_heap_fit *f,
		     unsigned flags, struct refill *refill, uint64_t *start)
{
	unsigned rounds = 0;
	bool purged = false, imported = false;
	struct vlist garbage;
	struct va *spare;
	int rc;

	for (;;) {
		spare = spare_get();
		if (!spare)
			return -ENOMEM;
		vlist_init(&garbage);
		vlock_acquire(&s->heap_lock);
		rc = free_heap_alloc(&s->heap, f, &spare, &garbage, start);
		if (!rc) {
			transit_take(s, *start, *start + f->size);
			if (refill)
				pool_refill_take(s, refill);
		}
		vlock_release(&s->heap_lock);
		spare_settle(spare, &garbage);
		if (!rc)
			return 0;
		if (flags & VMAP_NOPURGE)
			return -ENOMEM;
		if (flags & VMAP_NONBLOCK)
			return reclaimable(s) ? -EBUSY : -ENOMEM;
		if (!purged) {
			purge_now(s, true);
			purged = true;
			continue;
		}
		if (s->import && !imported) {
			imported = true;
			if (!span_import(s, f))
				continue;
		}
		if (!call_notifiers(s) || ++rounds >= MAX_NOTIFIER_ROUNDS)
			return -ENOMEM;
		purged = false;
	}
}

/*
 * Make @va busy in the node of its start.  Its tag names the node whose
 * lazy set and pools take the range when it is freed, none unless
 * @pooled.  The kernel's choice is the allocating CPU's node, also after
 * a pool miss, so pools fill with what their CPUs ask for (DESIGN.md
 * section 6), but a range in another node's zone then circulates through
 * this node's pool and takes the other node's busy lock at every use.
 * Refilling pools (the default, section 17) fill by demand already, with
 * ranges in their own zones, so there the tag is the node of the
 * address: the refill's ranges stay with their CPU, and the missing
 * allocation's own range (the lowest fit, anywhere) goes to the node it
 * belongs to.
 */
static int busy_add(struct vmap_space *s, struct va *va, bool pooled, bool hit,
		    struct vmap_node *cpu_vn)
{
	unsigned addr_node = addr_to_node(s, va->start);

	va->tag = 0;
	if (pooled)
		va->tag = 1 + (tag_by_address(s) ? addr_node : cpu_vn->id);
	/* A hit was counted as one by pool_take(). */
	if (!busy_insert(s, &s->nodes[addr_node], va,
			 hit ? NULL : &cpu_vn->count.heap_allocs)) {
		va_delete(va);
		return -EUCLEAN;
	}
	if (addr_node != cpu_vn->id) {
		counter_add(&cpu_vn->count.cross_node_busy, 1);
		counter_add(&cpu_vn->count.other_node_lock, 1);
	}
	return 0;
}

/*
 * Everything after the arguments were checked: a pool when @pooled (only
 * whole-space kernel requests are), else the global heap.  A pool miss
 * refills the pool from the heap under the same lock acquisition unless
 * the space keeps the kernel's pools (pool.c).
 */
static int space_alloc(struct vmap_space *s, unsigned cpu,
		       const struct free_heap_fit *f, unsigned flags,
		       bool pooled, uint64_t user, uint64_t *addr)
{
	struct vmap_node *cpu_vn = &s->nodes[cpu % s->nr_nodes];
	struct refill refill, *to_refill = NULL;
	struct va *va = NULL;
	bool hit = false;
	uint64_t start;
	int rc;

	transit_ready();
	if (pooled && (f->size >> s->page_shift) <= MAX_VA_SIZE_PAGES) {
		if (busy_keeps_idle(s)) {
			hit = busy_take_pooled(s, cpu_vn, f->size, f->align,
					       user, &start);
		} else {
			va = pool_take(s, cpu_vn, f->size, f->align);
			hit = va != NULL;
			if (hit)
				start = va->start;
		}
		if (!hit) /* pool_take() counts the hits */
			counter_add(&cpu_vn->count.pool_misses, 1);
		if (hit)
			VMAP_PROBE(pool_hit, cpu_vn->id, start, f->size);
		else
			VMAP_PROBE(pool_miss, cpu_vn->id, f->size, f->align);
		if (!(s->flags & VMAP_KERNEL_POOLS))
			to_refill = &refill;
	}
	/*
	 * A range revived in its tree is busy and visible: from here on its
	 * record is for whichever thread frees it, so nothing reads it.
	 */
	if (hit && !va) {
		*addr = start;
		return 0;
	}
	if (!va) {
		va = space_va_new(s);
		if (!va)
			return -ENOMEM;
		if (to_refill)
			pool_refill_prepare(s, cpu_vn, f, to_refill);
		rc = heap_take(s, f, flags, to_refill, &start);
		if (to_refill)
			pool_refill_finish(s, to_refill);
		if (rc) {
			va_delete(va);
			counter_add(&cpu_vn->count.alloc_failures, 1);
			return rc;
		}
		va->start = start;
		va->end = start + f->size;
	}
	va->user = user;
	start = va->start;
	VMAP_ASSERT(start >= f->first && va_last(va) <= f->last);
	VMAP_ASSERT(((start - f->phase) & (f->align - 1)) == 0);
	rc = busy_add(s, va, pooled, hit, cpu_vn);
	if (!rc)
		*addr = start;
	return rc;
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
	struct free_heap_fit f = { .size = size };
	bool whole;

	if (!addr || (flags & ~VMAP_NONBLOCK))
		return -EINVAL;
	if (!size || (size & (s->page_size - 1)))
		return -EINVAL;
	if (!align || (align & (align - 1)))
		return -EINVAL;
	if (align < s->page_size)
		align = s->page_size;
	whole = !vstart && !vend;
	if (whole) {
		vstart = space_first(s);
		f.last = space_last(s);
	} else {
		if (vstart >= vend || vstart < space_first(s) ||
		    vend - 1 > space_last(s))
			return -EINVAL;
		f.last = vend - 1;
	}
	if (size - 1 > f.last - vstart || size - 1 > UINT64_MAX - align)
		return -EINVAL;
	whole = vstart == space_first(s) && f.last == space_last(s);
	f.align = align;
	f.first = vstart;
	f.length = free_heap_search_length(size, align, s->page_size,
					   f.last - vstart + 1);
	/*
	 * The whole space is searched as all of [0, 2^64), which gives the
	 * same place (the heap holds nothing outside the spans) and still
	 * covers a span imported after this point.
	 */
	if (whole) {
		f.first = 0;
		f.last = UINT64_MAX;
	}
	return space_alloc(s, cpu, &f, flags, whole && space_pools(s), user,
			   addr);
}

int vmap_alloc_user(struct vmap_space *s, uint64_t size, uint64_t align,
		    uint64_t vstart, uint64_t vend, unsigned flags,
		    uint64_t user, uint64_t *addr)
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

/* Turn @req into a search of the free heap; -EINVAL if it is malformed. */
static int request_to_fit(struct vmap_space *s, const struct vmap_request *req,
			  struct free_heap_fit *f)
{
	const unsigned known = VMAP_NONBLOCK | VMAP_EXACT_FIT | VMAP_TOPDOWN |
			       VMAP_NOPURGE | VMAP_BESTFIT;
	uint64_t page_mask = s->page_size - 1;
	unsigned i;

	if (req->reserved0 || (req->flags & ~known))
		return -EINVAL;
	if ((req->flags & VMAP_BESTFIT) &&
	    ((req->flags & VMAP_TOPDOWN) || !(s->flags & VMAP_BESTFIT_INDEX)))
		return -EINVAL;
	for (i = 0; i < sizeof(req->reserved) / sizeof(req->reserved[0]); i++)
		if (req->reserved[i])
			return -EINVAL;
	f->size = req->size;
	f->align = req->align < s->page_size ? s->page_size : req->align;
	f->phase = req->phase;
	f->nocross = req->nocross;
	if (!f->size || (f->size & page_mask) ||
	    (req->align & (req->align - 1)))
		return -EINVAL;
	if ((f->phase & page_mask) || f->phase >= f->align)
		return -EINVAL;
	/* No place anywhere avoids straddling: see struct free_heap_fit. */
	if (f->nocross &&
	    ((f->nocross & (f->nocross - 1)) || f->size > f->nocross ||
	     (f->phase & (f->nocross - 1)) > f->nocross - f->size))
		return -EINVAL;
	if ((req->min | req->max) & page_mask)
		return -EINVAL;
	if (req->max && req->min >= req->max)
		return -EINVAL;
	f->first = req->min > space_first(s) ? req->min : space_first(s);
	f->last = space_last(s);
	if (req->max && req->max - 1 < f->last)
		f->last = req->max - 1;
	if (f->first > f->last || f->size - 1 > f->last - f->first)
		return -EINVAL;
	if (!s->import && !span_window_ok(s, f->first, f->last, f->size))
		return -EINVAL;
	f->topdown = req->flags & VMAP_TOPDOWN;
	f->bestfit = req->flags & VMAP_BESTFIT;
	f->length = f->size;
	if (!(req->flags & (VMAP_EXACT_FIT | VMAP_TOPDOWN | VMAP_BESTFIT)) &&
	    f->size - 1 <= UINT64_MAX - f->align)
		f->length =
			free_heap_search_length(f->size, f->align, s->page_size,
						f->last - f->first + 1);
	/* As for the kernel's requests: imports may widen the hull later. */
	if (!req->min)
		f->first = 0;
	if (!req->max)
		f->last = UINT64_MAX;
	return 0;
}

static int xalloc_range(struct vmap_space *s, unsigned cpu,
			const struct vmap_request *req, uint64_t *addr)
{
	struct free_heap_fit f;
	int rc;

	if (!req || !addr)
		return -EINVAL;
	rc = request_to_fit(s, req, &f);
	if (rc)
		return rc;
	if (!f.phase && !f.nocross && !req->min && !req->max &&
	    !(req->flags & ~VMAP_NONBLOCK) &&
	    f.size - 1 <= UINT64_MAX - f.align)
		return alloc_range(s, cpu, f.size, f.align, 0, 0, req->flags,
				   req->user, addr);
	return space_alloc(s, cpu, &f, req->flags, false, req->user, addr);
}

int vmap_xalloc(struct vmap_space *s, const struct vmap_request *req,
		uint64_t *addr)
{
	unsigned cpu;
	int rc;

	if (!s)
		return -EINVAL;
	cpu = this_cpu(s);
	trace_lock(s);
	rc = xalloc_range(s, cpu, req, addr);
	if (s->trace && req && addr)
		trace_xalloc(s, cpu, req, rc, rc ? 0 : *addr);
	trace_unlock(s);
	return rc;
}

/*
 * Take [addr, addr + size) out of the heap: -EEXIST if not all of it is
 * free, -ENOMEM if no spare record could be had.
 */
static int heap_take_range(struct vmap_space *s, uint64_t addr, uint64_t size)
{
	struct vlist garbage;
	struct va *spare = spare_get();
	int rc;

	if (!spare)
		return -ENOMEM;
	vlist_init(&garbage);
	vlock_acquire(&s->heap_lock);
	rc = free_heap_take_exact(&s->heap, addr, size, &spare, &garbage);
	if (!rc)
		transit_take(s, addr, addr + size);
	vlock_release(&s->heap_lock);
	spare_settle(spare, &garbage);
	return rc;
}

static int reserve_range(struct vmap_space *s, unsigned cpu, uint64_t addr,
			 uint64_t size, uint64_t user)
{
	struct vmap_node *cpu_vn = &s->nodes[cpu % s->nr_nodes];
	struct va *va;
	bool purged;
	int rc;

	if (!size || ((addr | size) & (s->page_size - 1)))
		return -EINVAL;
	if (size - 1 > UINT64_MAX - addr ||
	    !span_contains(s, addr, addr + (size - 1)))
		return -EINVAL;
	va = space_va_new(s);
	if (!va)
		return -ENOMEM;
	transit_ready();
	for (purged = false;; purged = true) {
		rc = heap_take_range(s, addr, size);
		if (rc != -EEXIST)
			break;
		/* Lazy or pooled ranges in the way can be purged, busy not. */
		if (purged || busy_overlaps(s, addr, addr + (size - 1))) {
			rc = -EEXIST;
			break;
		}
		purge_now(s, true);
	}
	if (rc) {
		va_delete(va);
		counter_add(&cpu_vn->count.alloc_failures, 1);
		return rc;
	}
	va->start = addr;
	va->end = addr + size;
	va->user = user;
	return busy_add(s, va, false, false, cpu_vn);
}

int vmap_reserve(struct vmap_space *s, uint64_t addr, uint64_t size,
		 uint64_t user)
{
	unsigned cpu;
	int rc;

	if (!s)
		return -EINVAL;
	cpu = this_cpu(s);
	trace_lock(s);
	rc = reserve_range(s, cpu, addr, size, user);
	if (s->trace)
		trace_reserve(s, cpu, addr, size, rc);
	trace_unlock(s);
	return rc;
}

/*
 * A free in a VMAP_IMMEDIATE_FREE space: the memory goes (release
 * callback), then the range goes straight back to the heap.
 */
static void free_now(struct vmap_space *s, struct va *va)
{
	struct vlist one;

	counter_add(&s->nodes[addr_to_node(s, va->start)].count.frees, 1);
	if (s->release)
		s->release(s->release_cookie, va->start, va->end);
	vlist_init(&one);
	vlist_add_tail(&va->link, &one);
	global_heap_return(s, &one);
}

/* The free proper; its line is written before a purge it may start. */
static int free_range(struct vmap_space *s, uint64_t addr)
{
	struct vmap_node *cpu_vn;
	uint64_t nr_lazy;
	struct va *va;

	if (addr < space_first(s) || addr > space_last(s))
		return -ENOENT;
	transit_ready();
	/* One node: no CPU to look up, every lock is the node's own. */
	cpu_vn = &s->nodes[s->nr_nodes > 1 ? this_cpu(s) % s->nr_nodes : 0];
	va = busy_unlink(s, addr, cpu_vn);
	if (!va)
		return -ENOENT;
	if (s->trace)
		trace_free(s, addr);
	if (s->flags & VMAP_IMMEDIATE_FREE) {
		free_now(s, va);
		return 0;
	}
	nr_lazy = lazy_insert(s, va, cpu_vn);
	VMAP_PROBE(free_vmap_area_noflush, addr, nr_lazy, s->lazy_max_pages);
	if (nr_lazy > s->lazy_max_pages)
		purge_kick(s, nr_lazy, cpu_vn);
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
	if (addr < space_first(s) || addr > space_last(s))
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
	span_release_free(s);
	trace_unlock(s);
	return 0;
}

static int notifier_index(struct vmap_space *s, vmap_notifier_fn fn,
			  void *cookie)
{
	unsigned i;

	for (i = 0; i < s->nr_notifiers; i++)
		if (s->notifiers[i].fn == fn &&
		    s->notifiers[i].cookie == cookie)
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
		    (offsets[i] & (align - 1)) ||
		    offsets[i] > UINT64_MAX - sizes[i])
			return -EINVAL;
		end = offsets[i] + sizes[i];
		if (offsets[i] < a->first_start)
			a->first_start = offsets[i];
		if (end > a->last_end)
			a->last_end = end;
	}
	if (a->last_end - a->first_start - 1 > space_last(s) - space_first(s))
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
		if (offsets[order[i - 1]] + sizes[order[i - 1]] >
		    offsets[order[i]])
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
		spares[i] = space_va_new(s);
		if (!spares[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (;;) {
		vlist_init(&garbage);
		vlock_acquire(&s->heap_lock);
		rc = free_heap_alloc_congruent(&s->heap, &a, space_first(s),
					       space_last(s), spares, &garbage,
					       &base);
		vlock_release(&s->heap_lock);
		va_delete_list(&garbage);
		if (!rc || purged)
			break;
		purge_now(s, true);
		purged = true;
	}
	if (rc) {
		counter_add(&s->nodes[this_cpu(s) % s->nr_nodes]
				     .count.alloc_failures,
			    1);
		goto out;
	}
	for (i = 0; i < nr; i++) {
		busy[i]->start = starts[i] = base + offsets[i];
		busy[i]->end = busy[i]->start + sizes[i];
		busy[i]->tag = 0;
		busy[i]->user = 0;
		if (!busy_insert(s, &s->nodes[addr_to_node(s, busy[i]->start)],
				 busy[i],
				 &s->nodes[this_cpu(s) % s->nr_nodes]
					  .count.heap_allocs)) {
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
