/* SPDX-License-Identifier: MIT */
/*
 * vmap-bench - the kernel's lib/test_vmalloc.c workloads against libvmap,
 * the one-lock design (the kernel's one node) beside the node design in
 * one run, with what a program would do without us (mmap/munmap, malloc)
 * as baselines.
 *
 * Each (test, backend, thread count) is one phase: a fresh space, all
 * threads released together by a barrier, every thread running the test
 * test_repeat_count times.  Phases are isolated so that the space's
 * counters (lock acquisitions, pool hits) belong to one test; with
 * sequential_test_order=0 the order of the phases is shuffled instead of
 * each thread's order (see --help).  Uses the public header only.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmap.h"

static const char *prog = "vmap-bench";

#define PAGE 4096ull
#define RANGE_BASE 0x100000000000ull
#define RANGE_SIZE (1ull << 46)
#define THREAD_ALIGN (4 * PAGE) /* x86-64 THREAD_SIZE: 16 KiB */
#define LONG_BUSY_AREAS 15000
#define MAX_THREADS 1024

/* ------------------------------------------------------------------------
 * Parameters: the kernel module's names first, then ours.
 */
struct params {
	unsigned long run_test_mask;
	unsigned nr_threads;
	unsigned test_repeat_count;
	unsigned long test_loop_count;
	unsigned nr_pages;
	bool sequential_test_order;
	char nodes[256];
	char baselines[64];
	char live[256];
	char churn[256];
	char csv[256];
	char tag[32];
	bool json, scale, vmalloc, constrained;
	bool baselines_set;
	bool virtual_cpus; /* thread i acts as CPU i */
	unsigned load;	   /* busy threads beside the workers */
	uint64_t holes;	   /* holes=: the failing-allocation probe */
	uint64_t seed;
};

/* ------------------------------------------------------------------------
 * Backends: what a test allocates from.
 */
struct phase;
struct worker;

struct backend {
	const char *mode;		/* one-lock, nodes, mmap, malloc */
	unsigned nodes;			/* our modes: 1 or 0 = auto */
	const char *tag;		/* nodes: kernel or address tagging */
	int (*setup)(struct phase *ph); /* may be NULL */
	void (*teardown)(struct phase *ph); /* may be NULL */
	int (*alloc)(struct phase *ph, uint64_t size, uint64_t align,
		     uint64_t *addr);
	void (*free)(struct phase *ph, uint64_t addr, uint64_t size);
};

struct phase {
	const struct backend *be;
	struct vmap_space *space; /* ours: the space counted in the row */
	struct vmap_heap *heap;	  /* vmalloc layer */
	const struct params *p;
	pthread_barrier_t start;
	int (*fn)(struct worker *w);
	unsigned long loops;
	unsigned threads;
	bool vmalloc; /* real memory: touch what is allocated */
	atomic_uint_fast64_t syscalls; /* mmap baseline: calls made */
	struct hole_list *holes;       /* sorted-list baseline */
	uint64_t churn;		       /* ranges each worker keeps (churn=) */
};

/*
 * With virtual CPUs, "auto" nodes means one per worker (thread i acts as
 * CPU i), whatever the machine has.
 */
static unsigned phase_nodes(const struct phase *ph)
{
	if (ph->be->nodes || !ph->p->virtual_cpus)
		return ph->be->nodes;
	return ph->threads < 128 ? ph->threads : 128;
}

/*
 * The space flags of a range row's pool design (its tag): zone is
 * libvmap's default; the one-lock row ("-") and the constrained rows are
 * the kernel's one node, which has no pools.
 */
static unsigned tag_flags(const char *tag)
{
	if (!strcmp(tag, "zone"))
		return 0;
	if (!strcmp(tag, "address"))
		return VMAP_KERNEL_POOLS | VMAP_TAG_BY_ADDRESS;
	return VMAP_KERNEL_POOLS;
}

static int range_setup(struct phase *ph)
{
	struct vmap_params vp = { .nr_nodes = phase_nodes(ph),
				  .flags = tag_flags(ph->be->tag) };

	return vmap_space_create(RANGE_BASE, RANGE_BASE + RANGE_SIZE, &vp,
				 &ph->space);
}

static void check_space(struct phase *ph)
{
	char msg[200];

	vmap_purge(ph->space);
	vmap_shrink(ph->space);
	if (vmap_check(ph->space, msg, sizeof(msg))) {
		fprintf(stderr, "%s: invariant broken: %s\n", prog, msg);
		exit(1);
	}
}

static void range_teardown(struct phase *ph)
{
	check_space(ph);
	vmap_space_destroy(ph->space);
}

static int range_alloc(struct phase *ph, uint64_t size, uint64_t align,
		       uint64_t *addr)
{
	return vmap_alloc(ph->space, size, align, 0, 0, 0, addr);
}

static void range_free(struct phase *ph, uint64_t addr, uint64_t size)
{
	(void)size;
	vmap_free(ph->space, addr);
}

static int vmalloc_setup(struct phase *ph)
{
	struct vmap_heap_params hp = { .nr_nodes = phase_nodes(ph) };
	int rc = vmap_heap_create(&hp, &ph->heap);

	if (!rc)
		ph->space = vmap_heap_space(ph->heap);
	return rc;
}

static void vmalloc_teardown(struct phase *ph)
{
	check_space(ph);
	vmap_heap_destroy(ph->heap);
}

/* The kernel's size is the usable size: the guard page comes on top. */
static int vmalloc_alloc(struct phase *ph, uint64_t size, uint64_t align,
			 uint64_t *addr)
{
	void *p = vmap_heap_vmalloc_align(ph->heap, size, align);

	if (!p)
		return -errno;
	*addr = (uint64_t)(uintptr_t)p;
	return 0;
}

static void vmalloc_free(struct phase *ph, uint64_t addr, uint64_t size)
{
	(void)size;
	vmap_heap_vfree(ph->heap, (void *)(uintptr_t)addr);
}

static int malloc_alloc(struct phase *ph, uint64_t size, uint64_t align,
			uint64_t *addr)
{
	void *p;

	(void)ph;
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (size > SIZE_MAX || align > SIZE_MAX ||
	    posix_memalign(&p, (size_t)align, (size_t)size))
		return -ENOMEM;
	*addr = (uint64_t)(uintptr_t)p;
	return 0;
}

static void malloc_free(struct phase *ph, uint64_t addr, uint64_t size)
{
	(void)ph;
	(void)size;
	free((void *)(uintptr_t)addr);
}

/*
 * Memory the way a program gets it without us: one mmap per allocation
 * (PROT_NONE in range mode: a reservation, like a space; read-write in
 * vmalloc mode), trimmed to the alignment; munmap to free.
 */
static int mmap_alloc(struct phase *ph, uint64_t size, uint64_t align,
		      uint64_t *addr)
{
	uint64_t extra = align > PAGE ? align : 0, a, start;
	int prot = ph->vmalloc ? PROT_READ | PROT_WRITE : PROT_NONE;
	void *p;

	if (size + extra < size)
		return -ENOMEM;
	p = mmap(NULL, size + extra, prot,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	atomic_fetch_add_explicit(&ph->syscalls, 1, memory_order_relaxed);
	if (p == MAP_FAILED)
		return -ENOMEM;
	start = (uint64_t)(uintptr_t)p;
	a = extra ? (start + align - 1) & ~(align - 1) : start;
	if (a > start) {
		munmap(p, a - start);
		atomic_fetch_add_explicit(&ph->syscalls, 1,
					  memory_order_relaxed);
	}
	if (extra && start + size + extra > a + size) {
		munmap((void *)(uintptr_t)(a + size),
		       start + size + extra - a - size);
		atomic_fetch_add_explicit(&ph->syscalls, 1,
					  memory_order_relaxed);
	}
	*addr = a;
	return 0;
}

static void mmap_free(struct phase *ph, uint64_t addr, uint64_t size)
{
	munmap((void *)(uintptr_t)addr, size);
	atomic_fetch_add_explicit(&ph->syscalls, 1, memory_order_relaxed);
}

static const struct backend range_backends[] = {
	{ "one-lock", 1, "-", range_setup, range_teardown, range_alloc,
	  range_free },
	{ "nodes", 0, "zone", range_setup, range_teardown, range_alloc,
	  range_free },
};

/*
 * vmap_xalloc() against the kernel's rule, one node: the kernel's search,
 * the same in a space that keeps the best-fit size index (its upkeep),
 * then each complete search.  The tag names the request's flags.
 */
static int indexed_setup(struct phase *ph)
{
	struct vmap_params vp = {
		.nr_nodes = 1, .flags = VMAP_BESTFIT_INDEX | VMAP_KERNEL_POOLS
	};

	return vmap_space_create(RANGE_BASE, RANGE_BASE + RANGE_SIZE, &vp,
				 &ph->space);
}

static int xalloc_flags(struct phase *ph, uint64_t size, uint64_t align,
			uint32_t flags, uint64_t *addr)
{
	struct vmap_request req = { .size = size,
				    .align = align,
				    .flags = flags };

	return vmap_xalloc(ph->space, &req, addr);
}

static int exact_alloc(struct phase *ph, uint64_t size, uint64_t align,
		       uint64_t *addr)
{
	return xalloc_flags(ph, size, align, VMAP_EXACT_FIT, addr);
}

static int topdown_alloc(struct phase *ph, uint64_t size, uint64_t align,
			 uint64_t *addr)
{
	return xalloc_flags(ph, size, align, VMAP_TOPDOWN, addr);
}

static int bestfit_alloc(struct phase *ph, uint64_t size, uint64_t align,
			 uint64_t *addr)
{
	return xalloc_flags(ph, size, align, VMAP_BESTFIT, addr);
}

static const struct backend constrained_backends[] = {
	{ "one-lock", 1, "-", range_setup, range_teardown, range_alloc,
	  range_free },
	{ "one-lock", 1, "indexed", indexed_setup, range_teardown, range_alloc,
	  range_free },
	{ "xalloc", 1, "exact", range_setup, range_teardown, exact_alloc,
	  range_free },
	{ "xalloc", 1, "topdown", range_setup, range_teardown, topdown_alloc,
	  range_free },
	{ "xalloc", 1, "bestfit", indexed_setup, range_teardown, bestfit_alloc,
	  range_free },
};
#define NR_CONSTRAINED                                                         \
	(sizeof(constrained_backends) / sizeof(constrained_backends[0]))

static const struct backend vmalloc_backends[] = {
	{ "one-lock", 1, "-", vmalloc_setup, vmalloc_teardown, vmalloc_alloc,
	  vmalloc_free },
	{ "nodes", 0, "kernel", vmalloc_setup, vmalloc_teardown, vmalloc_alloc,
	  vmalloc_free },
};

/*
 * A sorted list of holes behind one mutex, the way simple allocators of
 * GPU address space keep theirs: an allocation takes the first hole that
 * fits, walking up from the lowest; a free walks to its place and merges
 * with the holes either side.  Every call is O(holes).
 */
struct hole {
	struct hole *prev, *next;
	uint64_t start, end;
};

struct hole_list {
	pthread_mutex_t lock;
	struct hole head; /* sentinel of the address-ordered ring */
};

static void hole_link(struct hole *h, struct hole *prev)
{
	h->prev = prev;
	h->next = prev->next;
	prev->next->prev = h;
	prev->next = h;
}

static void hole_unlink(struct hole *h)
{
	h->prev->next = h->next;
	h->next->prev = h->prev;
}

static int list_setup(struct phase *ph)
{
	struct hole_list *l = calloc(1, sizeof(*l));
	struct hole *h = malloc(sizeof(*h));

	if (!l || !h) {
		free(l);
		free(h);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->head.prev = l->head.next = &l->head;
	h->start = RANGE_BASE;
	h->end = RANGE_BASE + RANGE_SIZE;
	hole_link(h, &l->head);
	ph->holes = l;
	return 0;
}

/* Everything was freed: the list must be one hole, the whole range again. */
static void list_teardown(struct phase *ph)
{
	struct hole_list *l = ph->holes;
	struct hole *h = l->head.next, *next;

	if (h == &l->head || h->next != &l->head || h->start != RANGE_BASE ||
	    h->end != RANGE_BASE + RANGE_SIZE) {
		fprintf(stderr,
			"%s: list baseline: the holes do not add up to the range\n",
			prog);
		exit(1);
	}
	for (; h != &l->head; h = next) {
		next = h->next;
		free(h);
	}
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static int list_alloc(struct phase *ph, uint64_t size, uint64_t align,
		      uint64_t *addr)
{
	struct hole_list *l = ph->holes;
	struct hole *h, *gone = NULL, *right = malloc(sizeof(*right));
	uint64_t a;
	int rc = -ENOMEM;

	if (!right)
		return -ENOMEM;
	pthread_mutex_lock(&l->lock);
	for (h = l->head.next; h != &l->head; h = h->next) {
		a = (h->start + align - 1) & ~(align - 1);
		if (a < h->start || a + size < a || a + size > h->end)
			continue;
		if (a > h->start && a + size < h->end) {
			right->start = a + size;
			right->end = h->end;
			hole_link(right, h);
			right = NULL;
			h->end = a;
		} else if (a > h->start) {
			h->end = a;
		} else if (a + size < h->end) {
			h->start = a + size;
		} else {
			hole_unlink(h);
			gone = h;
		}
		*addr = a;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	free(right);
	free(gone);
	return rc;
}

static void list_free(struct phase *ph, uint64_t addr, uint64_t size)
{
	struct hole_list *l = ph->holes;
	struct hole *prev, *next, *h = malloc(sizeof(*h)), *gone = NULL;

	pthread_mutex_lock(&l->lock);
	for (next = l->head.next; next != &l->head && next->start < addr;
	     next = next->next)
		;
	prev = next->prev;
	if (prev != &l->head && prev->end == addr) {
		prev->end += size;
		if (next != &l->head && next->start == prev->end) {
			prev->end = next->end;
			hole_unlink(next);
			gone = next;
		}
	} else if (next != &l->head && next->start == addr + size) {
		next->start = addr;
	} else if (h) {
		h->start = addr;
		h->end = addr + size;
		hole_link(h, prev);
		h = NULL;
	}
	pthread_mutex_unlock(&l->lock);
	free(h);
	free(gone);
}

static const struct backend list_backend = {
	"list", 0, "-", list_setup, list_teardown, list_alloc, list_free
};

static const struct backend mmap_backend = { "mmap", 0,		 "-",	   NULL,
					     NULL,   mmap_alloc, mmap_free };
static const struct backend malloc_backend = { "malloc",   0,	 "-",
					       NULL,	   NULL, malloc_alloc,
					       malloc_free };

/* ------------------------------------------------------------------------
 * The tests, after lib/test_vmalloc.c.  Each returns 0 or -1 (an
 * allocation failed) and counts the alloc+free pairs it made.
 */
struct kept_range {
	uint64_t addr, pages;
};

struct worker {
	struct phase *ph;
	pthread_t tid;
	unsigned id;
	uint64_t rng;
	uint64_t pairs;
	unsigned passed, failed;
	double start_usec, usec; /* when its loop began, and how long it ran */
	struct kept_range *kept; /* churn= */
	uint64_t nkept;
};

static uint64_t wrnd(struct worker *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* With real memory, write the first byte, as the kernel's tests do. */
static int alloc_pages(struct worker *w, uint64_t pages, uint64_t align,
		       uint64_t *addr)
{
	int rc = w->ph->be->alloc(w->ph, pages * PAGE, align, addr);

	if (!rc && w->ph->vmalloc)
		*(volatile char *)(uintptr_t)*addr = 1;
	return rc;
}

static void free_pages(struct worker *w, uint64_t addr, uint64_t pages)
{
	w->ph->be->free(w->ph, addr, pages * PAGE);
	w->pairs++;
}

/* The loop at the heart of several tests: allocate, touch, free. */
static int pair_loop(struct worker *w, uint64_t pages, uint64_t align)
{
	unsigned long i;
	uint64_t a;

	for (i = 0; i < w->ph->loops; i++) {
		if (alloc_pages(w, pages, align, &a))
			return -1;
		free_pages(w, a, pages);
	}
	return 0;
}

static int fix_size_alloc_test(struct worker *w)
{
	return pair_loop(w, w->ph->p->nr_pages, PAGE);
}

/*
 * The kernel's lazy_max_pages for this machine, as the library computes
 * it for a space with default parameters; 0 if no space can be made.
 */
static unsigned long default_lazy_max_pages(void)
{
	struct vmap_space_info info = { 0 };
	struct vmap_space *space;

	if (vmap_space_create(RANGE_BASE, RANGE_BASE + RANGE_SIZE, NULL,
			      &space))
		return 0;
	vmap_space_info(space, &info);
	vmap_space_destroy(space);
	return (unsigned long)(info.lazy_max_pages * info.page_size / PAGE);
}

/*
 * Interleave live and junk pages, free the junk (it turns lazy, then is
 * purged into one-page holes), then allocate pages that exactly fit the
 * holes.  The junk count is the kernel's lazy_max_pages, so the frees
 * themselves trigger purges.
 */
static int full_fit_alloc_test(struct worker *w)
{
	unsigned long junk = default_lazy_max_pages(), i, made = 0;
	uint64_t *live = calloc(junk, sizeof(*live)),
		 *holes = calloc(junk, sizeof(*holes));
	int rc = -1;

	if (!junk || !live || !holes)
		goto out;
	for (i = 0; i < junk; i++, made++) {
		if (alloc_pages(w, 1, PAGE, &live[i]))
			goto out;
		if (alloc_pages(w, 1, PAGE, &holes[i])) {
			free_pages(w, live[i], 1);
			goto out;
		}
	}
	for (i = 0; i < junk; i++)
		free_pages(w, holes[i], 1);
	rc = pair_loop(w, 1, PAGE);
out:
	for (i = 0; i < made; i++)
		free_pages(w, live[i], 1);
	free(live);
	free(holes);
	return rc;
}

static int long_busy_list_alloc_test(struct worker *w)
{
	uint64_t *busy = calloc(LONG_BUSY_AREAS, sizeof(*busy)), a, b;
	unsigned long i, made = 0;
	int rc = -1;

	if (!busy)
		return -1;
	for (; made < LONG_BUSY_AREAS; made++)
		if (alloc_pages(w, 1, PAGE, &busy[made]))
			goto out;
	for (i = 0; i < w->ph->loops; i++) {
		if (alloc_pages(w, 100, PAGE, &a))
			goto out;
		if (alloc_pages(w, 1, PAGE, &b)) {
			free_pages(w, a, 100);
			goto out;
		}
		free_pages(w, a, 100);
		free_pages(w, b, 1);
	}
	rc = 0;
out:
	for (i = 0; i < made; i++)
		free_pages(w, busy[i], 1);
	free(busy);
	return rc;
}

static int random_size_alloc_test(struct worker *w)
{
	unsigned long i;
	uint64_t a, n;

	for (i = 0; i < w->ph->loops; i++) {
		n = 1 + wrnd(w) % 100;
		if (alloc_pages(w, n, PAGE, &a))
			return -1;
		free_pages(w, a, n);
	}
	return 0;
}

static int fix_align_alloc_test(struct worker *w)
{
	return pair_loop(w, 1, THREAD_ALIGN);
}

static int random_size_align_alloc_test(struct worker *w)
{
	uint64_t a, rnd, align, pages;
	unsigned long i;

	for (i = 0; i < w->ph->loops; i++) {
		rnd = wrnd(w) & 0xff;
		align = 1ull << (rnd % 23); /* up to 1024 pages */
		pages = rnd % 10 + 1;
		if (alloc_pages(w, pages, align, &a))
			return -1;
		free_pages(w, a, pages);
	}
	return 0;
}

/* Every alignment from 1 to 2^63: the large ones must fail. */
static int align_shift_alloc_test(struct worker *w)
{
	uint64_t a;
	unsigned i;

	for (i = 0; i < 64; i++) {
		if (alloc_pages(w, 1, 1ull << i, &a))
			return -1;
		free_pages(w, a, 1);
	}
	return 0;
}

/*
 * churn=N: each worker keeps N ranges of 1-16 pages, a quarter of them
 * 64 KiB-aligned, and each loop frees a random one and allocates another
 * in its place: random churn over a fixed number of live ranges, the
 * workload of the comparison with sorted-list heaps.  The ranges are made
 * before the clock starts and freed after it stops.
 */
static uint64_t churn_shape(struct worker *w, uint64_t *align)
{
	uint64_t r = wrnd(w);

	*align = (r & 3) ? PAGE : 16 * PAGE;
	return 1 + (r >> 2) % 16;
}

static int churn_fill(struct worker *w)
{
	uint64_t align, n = w->ph->churn;

	w->kept = calloc(n, sizeof(*w->kept));
	if (!w->kept)
		return -1;
	for (w->nkept = 0; w->nkept < n; w->nkept++) {
		w->kept[w->nkept].pages = churn_shape(w, &align);
		if (alloc_pages(w, w->kept[w->nkept].pages, align,
				&w->kept[w->nkept].addr))
			return -1;
	}
	return 0;
}

static void churn_drain(struct worker *w)
{
	while (w->nkept--)
		w->ph->be->free(w->ph, w->kept[w->nkept].addr,
				w->kept[w->nkept].pages * PAGE);
	free(w->kept);
}

static int churn_test(struct worker *w)
{
	struct kept_range *k;
	unsigned long i;
	uint64_t align;

	if (w->nkept < w->ph->churn)
		return -1;
	for (i = 0; i < w->ph->loops; i++) {
		k = &w->kept[wrnd(w) % w->nkept];
		free_pages(w, k->addr, k->pages);
		k->pages = churn_shape(w, &align);
		if (alloc_pages(w, k->pages, align, &k->addr)) {
			*k = w->kept[--w->nkept];
			return -1;
		}
	}
	return 0;
}

/*
 * The percpu allocator's congruent chunks: two groups (two NUMA nodes'
 * CPUs) of 16 pages, 64 pages apart, placed top-down by one call.
 */
#define PCPU_GROUPS 2
#define PCPU_GROUP_PAGES 16
#define PCPU_GROUP_DISTANCE 64

static int pcpu_alloc_test(struct worker *w)
{
	static const uint64_t offsets[PCPU_GROUPS] = { 0, PCPU_GROUP_DISTANCE *
								  PAGE };
	static const uint64_t sizes[PCPU_GROUPS] = { PCPU_GROUP_PAGES * PAGE,
						     PCPU_GROUP_PAGES * PAGE };
	uint64_t starts[PCPU_GROUPS];
	unsigned long i;

	for (i = 0; i < w->ph->loops; i++) {
		if (vmap_pcpu_get_vm_areas(w->ph->space, offsets, sizes,
					   PCPU_GROUPS, PAGE, starts))
			return -1;
		vmap_pcpu_free_vm_areas(w->ph->space, starts, PCPU_GROUPS);
		w->pairs++;
	}
	return 0;
}

/* An area carrying its own RCU bookkeeping: the two-argument shape. */
struct rcu_area {
	struct vmap_rcu_head rcu;
	char data[PAGE - sizeof(struct vmap_rcu_head)];
};

/* vmalloc one page, write it, give it to vfree_rcu in either shape. */
static int kvfree_rcu_loop(struct worker *w, bool embedded)
{
	struct vmap_heap *h = w->ph->heap;
	struct rcu_area *a;
	unsigned long i;
	int rc = 0;

	for (i = 0; i < w->ph->loops && !rc; i++) {
		a = vmap_heap_vmalloc(h, sizeof(*a));
		if (!a)
			return -1;
		a->data[0] = 1;
		rc = embedded ? vmap_heap_vfree_rcu_head(h, a, &a->rcu) :
				vmap_heap_vfree_rcu(h, a);
		w->pairs++;
	}
	vmap_rcu_barrier();
	return rc ? -1 : 0;
}

static int kvfree_rcu_1_arg_vmalloc_test(struct worker *w)
{
	return kvfree_rcu_loop(w, false);
}

static int kvfree_rcu_2_arg_vmalloc_test(struct worker *w)
{
	return kvfree_rcu_loop(w, true);
}

/* nr_pages pages of the heap's pool, mapped, written and unmapped. */
static int vm_map_ram_test(struct worker *w)
{
	struct vmap_heap *h = w->ph->heap;
	unsigned n = w->ph->p->nr_pages;
	uint64_t *pages = calloc(n, sizeof(*pages));
	unsigned long i;
	char *v;
	int rc = -1;

	if (!pages || vmap_pages_alloc(h, n, pages))
		goto out;
	for (i = 0; i < w->ph->loops; i++) {
		v = vmap_heap_vm_map_ram(h, pages, n);
		if (!v)
			goto out_pages;
		*v = 'a';
		vmap_heap_vm_unmap_ram(h, v, n);
		w->pairs++;
	}
	rc = 0;
out_pages:
	vmap_heap_vm_unmap_aliases(h);
	vmap_pages_free(h, pages, n);
out:
	free(pages);
	return rc;
}

/* What a test runs on: any backend, or only ours, as a space or a heap. */
enum test_needs {
	NEEDS_ANY,
	NEEDS_SPACE, /* range calls beyond alloc/free */
	NEEDS_HEAP,  /* the vmalloc layer's own calls */
};

struct test_case {
	const char *name;
	int (*fn)(struct worker *w);
	bool expect_fail;
	enum test_needs needs;
};

/* Indexes are the kernel's bits in run_test_mask. */
static const struct test_case tests[] = {
	{ "fix_size_alloc_test", fix_size_alloc_test, false, NEEDS_ANY },
	{ "full_fit_alloc_test", full_fit_alloc_test, false, NEEDS_ANY },
	{ "long_busy_list_alloc_test", long_busy_list_alloc_test, false,
	  NEEDS_ANY },
	{ "random_size_alloc_test", random_size_alloc_test, false, NEEDS_ANY },
	{ "fix_align_alloc_test", fix_align_alloc_test, false, NEEDS_ANY },
	{ "random_size_align_alloc_test", random_size_align_alloc_test, false,
	  NEEDS_ANY },
	{ "align_shift_alloc_test", align_shift_alloc_test, true, NEEDS_ANY },
	{ "pcpu_alloc_test", pcpu_alloc_test, false, NEEDS_SPACE },
	{ "kvfree_rcu_1_arg_vmalloc_test", kvfree_rcu_1_arg_vmalloc_test, false,
	  NEEDS_HEAP },
	{ "kvfree_rcu_2_arg_vmalloc_test", kvfree_rcu_2_arg_vmalloc_test, false,
	  NEEDS_HEAP },
	{ "vm_map_ram_test", vm_map_ram_test, false, NEEDS_HEAP },
};
#define NR_TESTS (sizeof(tests) / sizeof(tests[0]))

/* ------------------------------------------------------------------------
 * Running a phase.
 */
static double now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct row {
	const char *test;
	const char *mode;
	const char *tag;
	const char *layer;
	unsigned nr_pages;
	unsigned nodes, threads;
	unsigned long loops;
	uint64_t live;
	uint64_t pairs;
	double wall_usec, ns_per_pair, pairs_per_sec;
	double global_lock_per_pair, heap_lock_per_pair, pool_hit_rate;
	double cross_busy_per_pair, pooled_cross_fraction, syscalls_per_pair;
	double other_node_lock_per_pair, refills_per_pair;
	uint64_t purges, helpers;
	unsigned load;
	int counters_add_up; /* -1: not a node row */
	unsigned passed, failed;
	bool expect_fail, range;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct params *p = w->ph->p;
	double t0;
	unsigned r;

	if (p->virtual_cpus)
		vmap_set_thread_cpu((int)w->id);
	if (w->ph->churn && churn_fill(w))
		fprintf(stderr,
			"%s: %s: could not keep %" PRIu64 " ranges (%" PRIu64
			" made)\n",
			prog, w->ph->be->mode, w->ph->churn, w->nkept);
	pthread_barrier_wait(&w->ph->start);
	t0 = w->start_usec = now_usec();
	for (r = 0; r < p->test_repeat_count; r++) {
		if (w->ph->fn(w))
			w->failed++;
		else
			w->passed++;
	}
	w->usec = now_usec() - t0;
	if (w->ph->churn)
		churn_drain(w);
	return NULL;
}

/* load=N: threads that only compete for the CPUs until told to stop. */
static void *load_main(void *arg)
{
	atomic_bool *stop = arg;
	volatile uint64_t spins = 0;

	while (!atomic_load_explicit(stop, memory_order_relaxed))
		spins++;
	return NULL;
}

static pthread_t *load_start(unsigned n, atomic_bool *stop)
{
	pthread_t *t = calloc(n ? n : 1, sizeof(*t));
	unsigned k;

	atomic_store(stop, false);
	for (k = 0; t && k < n; k++) {
		if (pthread_create(&t[k], NULL, load_main, stop)) {
			fprintf(stderr, "%s: cannot start load thread %u\n",
				prog, k);
			exit(1);
		}
	}
	return t;
}

static void load_stop(pthread_t *t, unsigned n, atomic_bool *stop)
{
	unsigned k;

	atomic_store(stop, true);
	for (k = 0; t && k < n; k++)
		pthread_join(t[k], NULL);
	free(t);
}

/*
 * Every pooled request either hits or misses its CPU's pool, so per node
 * the attempts (allocations made plus refused) equal hits plus misses as
 * long as every request of the phase was poolable (at most 256 pages).
 */
static int node_counters_add_up(struct vmap_space *s, unsigned nodes,
				const struct vmap_stats *before)
{
	struct vmap_stats st = { .size = sizeof(st) };
	uint64_t attempts, answered;
	unsigned i;

	for (i = 0; i < nodes; i++) {
		vmap_stats_get(s, (int)i, &st);
		attempts = st.allocs + st.alloc_failures - before[i].allocs -
			   before[i].alloc_failures;
		answered = st.pool_hits + st.pool_misses - before[i].pool_hits -
			   before[i].pool_misses;
		if (attempts != answered)
			return 0;
	}
	return 1;
}

static bool verbose_summary = true;

static void summary_line(const char *name, const struct worker *w,
			 const struct params *p)
{
	FILE *out = p->json ? stderr : stdout;

	if (!verbose_summary)
		return;
	fprintf(out,
		"Summary: %s passed: %u failed: %u repeat: %u loops: %lu avg: %.0f usec\n",
		name, w->passed, w->failed, p->test_repeat_count, w->ph->loops,
		w->usec / p->test_repeat_count);
}

/* Keep @n areas busy for the whole phase (the --live workloads). */
static uint64_t *prefill(struct phase *ph, uint64_t n)
{
	uint64_t *a = calloc(n ? n : 1, sizeof(*a)), i;

	for (i = 0; a && i < n; i++) {
		if (ph->be->alloc(ph, PAGE, PAGE, &a[i])) {
			fprintf(stderr,
				"%s: %s: could not keep %" PRIu64
				" areas busy (%" PRIu64 " made)\n",
				prog, ph->be->mode, n, i);
			while (i--)
				ph->be->free(ph, a[i], PAGE);
			free(a);
			return NULL;
		}
	}
	return a;
}

static int run_phase(const struct params *p, const struct backend *be,
		     const char *name, int (*fn)(struct worker *),
		     bool expect_fail, unsigned threads, uint64_t live,
		     uint64_t churn, struct row *row)
{
	struct worker *w = calloc(threads, sizeof(*w));
	struct vmap_stats st = { .size = sizeof(st) };
	struct vmap_heap_stats hst = { .size = sizeof(hst) },
			       hst_end = { .size = sizeof(hst) };
	struct vmap_stats *node_before = NULL;
	struct vmap_space_info info;
	struct phase ph = { .be = be,
			    .p = p,
			    .fn = fn,
			    .loops = p->test_loop_count,
			    .threads = threads,
			    .vmalloc = p->vmalloc,
			    .churn = churn };
	uint64_t *kept = NULL, i;
	double t0, t1, lat = 0;
	atomic_bool load_done;
	pthread_t *load;
	unsigned k;
	int rc;

	memset(row, 0, sizeof(*row));
	if (!w)
		return -ENOMEM;
	atomic_init(&ph.syscalls, 0);
	rc = be->setup ? be->setup(&ph) : 0;
	if (rc) {
		free(w);
		return rc;
	}
	row->range = ph.space != NULL;
	if (live && !(kept = prefill(&ph, live))) {
		if (be->teardown)
			be->teardown(&ph);
		free(w);
		return -ENOMEM;
	}
	if (row->range) {
		vmap_stats_get(ph.space, -1, &st);
		vmap_space_info(ph.space, &info);
		node_before = calloc(info.nr_nodes, sizeof(*node_before));
		for (k = 0; node_before && k < info.nr_nodes; k++) {
			node_before[k].size = sizeof(node_before[k]);
			vmap_stats_get(ph.space, (int)k, &node_before[k]);
		}
	}
	if (ph.heap)
		vmap_heap_stats(ph.heap, &hst);
	load = load_start(p->load, &load_done);
	pthread_barrier_init(&ph.start, NULL, threads + 1);
	for (k = 0; k < threads; k++) {
		w[k].ph = &ph;
		w[k].id = k;
		w[k].rng = p->seed * 7919 + k;
		if (pthread_create(&w[k].tid, NULL, worker_main, &w[k])) {
			fprintf(stderr, "%s: cannot start thread %u\n", prog,
				k);
			exit(1);
		}
	}
	pthread_barrier_wait(&ph.start);
	for (k = 0; k < threads; k++)
		pthread_join(w[k].tid, NULL);
	/*
	 * The wall time is the workers' own, from the first to start to the
	 * last to finish: this thread may run after the barrier only once
	 * they are done (a 20 000-loop run then read 40 G pairs/s).
	 */
	for (t0 = w[0].start_usec, t1 = 0, k = 0; k < threads; k++) {
		if (w[k].start_usec < t0)
			t0 = w[k].start_usec;
		if (w[k].start_usec + w[k].usec > t1)
			t1 = w[k].start_usec + w[k].usec;
	}
	pthread_barrier_destroy(&ph.start);
	load_stop(load, p->load, &load_done);

	row->test = name;
	row->mode = be->mode;
	row->tag = be->tag;
	row->layer = ph.heap || (!ph.space && p->vmalloc) ? "vmalloc" : "range";
	row->nr_pages = p->nr_pages;
	row->threads = threads;
	row->loops = p->test_loop_count;
	row->live = live ? live : churn;
	row->load = p->load;
	row->counters_add_up = -1;
	row->expect_fail = expect_fail;
	row->wall_usec = t1 - t0;
	for (k = 0; k < threads; k++) {
		row->pairs += w[k].pairs;
		row->passed += w[k].passed;
		row->failed += w[k].failed;
		if (w[k].pairs)
			lat += w[k].usec * 1e3 / w[k].pairs;
		summary_line(name, &w[k], p);
	}
	row->ns_per_pair = lat / threads;
	row->pairs_per_sec = row->pairs / (row->wall_usec / 1e6);
	row->global_lock_per_pair = row->heap_lock_per_pair = NAN;
	row->pool_hit_rate = row->cross_busy_per_pair =
		row->pooled_cross_fraction = NAN;
	row->syscalls_per_pair = row->other_node_lock_per_pair =
		row->refills_per_pair = NAN;
	if (be->alloc == mmap_alloc && row->pairs)
		row->syscalls_per_pair =
			(double)atomic_load(&ph.syscalls) / row->pairs;
	if (ph.heap && row->pairs) {
		vmap_heap_stats(ph.heap, &hst_end);
		row->syscalls_per_pair =
			(double)(hst_end.syscalls_mprotect +
				 hst_end.syscalls_madvise +
				 hst_end.syscalls_guard +
				 hst_end.syscalls_mmap - hst.syscalls_mprotect -
				 hst.syscalls_madvise - hst.syscalls_guard -
				 hst.syscalls_mmap) /
			row->pairs;
	}
	if (row->range) {
		struct vmap_stats before = st;

		vmap_stats_get(ph.space, -1, &st);
		row->nodes = info.nr_nodes;
		if (row->pairs) {
			row->global_lock_per_pair =
				(double)(st.global_lock - before.global_lock) /
				row->pairs;
			row->heap_lock_per_pair =
				(double)(st.heap_lock - before.heap_lock) /
				row->pairs;
			row->cross_busy_per_pair =
				(double)(st.cross_node_busy -
					 before.cross_node_busy) /
				row->pairs;
			row->other_node_lock_per_pair =
				(double)(st.other_node_lock -
					 before.other_node_lock) /
				row->pairs;
			row->refills_per_pair = (double)(st.pool_refills -
							 before.pool_refills) /
						row->pairs;
		}
		/* The one-lock row (the kernel's one node) has no pools. */
		if ((info.nr_nodes > 1 ||
		     !(tag_flags(ph.be->tag) & VMAP_KERNEL_POOLS)) &&
		    node_before &&
		    (fn != fix_size_alloc_test || p->nr_pages <= 256))
			row->counters_add_up = node_counters_add_up(
				ph.space, info.nr_nodes, node_before);
		if (st.pool_hits + st.pool_misses - before.pool_hits -
		    before.pool_misses)
			row->pool_hit_rate =
				(double)(st.pool_hits - before.pool_hits) /
				(st.pool_hits + st.pool_misses -
				 before.pool_hits - before.pool_misses);
		if (st.pooled - before.pooled)
			row->pooled_cross_fraction =
				(double)(st.pooled_cross_node -
					 before.pooled_cross_node) /
				(st.pooled - before.pooled);
		row->purges = st.purges - before.purges;
		row->helpers = st.purge_helpers - before.purge_helpers;
	}
	free(node_before);
	for (i = 0; kept && i < live; i++)
		be->free(&ph, kept[i], PAGE);
	free(kept);
	if (be->teardown)
		be->teardown(&ph);
	free(w);
	return 0;
}

/* ------------------------------------------------------------------------
 * Output.
 */
static FILE *csv_out;

static void json_num(FILE *out, const char *key, double v, const char *fmt)
{
	fprintf(out, ",\"%s\":", key);
	if (isnan(v))
		fputs("null", out);
	else
		fprintf(out, fmt, v);
}

static void emit_json(const struct row *r)
{
	printf("{\"test\":\"%s\",\"layer\":\"%s\",\"mode\":\"%s\",\"tag\":\"%s\",\"nodes\":%u,"
	       "\"threads\":%u,\"loops\":%lu,\"nr_pages\":%u",
	       r->test, r->layer, r->mode, r->tag, r->nodes, r->threads,
	       r->loops, r->nr_pages);
	if (r->live)
		printf(",\"live\":%" PRIu64, r->live);
	json_num(stdout, "ns_per_pair", r->ns_per_pair, "%.1f");
	json_num(stdout, "pairs_per_sec", r->pairs_per_sec, "%.0f");
	json_num(stdout, "global_lock_per_pair", r->global_lock_per_pair,
		 "%.5f");
	json_num(stdout, "heap_lock_per_pair", r->heap_lock_per_pair, "%.5f");
	json_num(stdout, "pool_hit_rate", r->pool_hit_rate, "%.4f");
	json_num(stdout, "cross_node_busy_per_pair", r->cross_busy_per_pair,
		 "%.4f");
	json_num(stdout, "pooled_cross_node_fraction", r->pooled_cross_fraction,
		 "%.4f");
	json_num(stdout, "syscalls_per_pair", r->syscalls_per_pair, "%.4f");
	json_num(stdout, "other_node_lock_per_pair",
		 r->other_node_lock_per_pair, "%.5f");
	json_num(stdout, "refills_per_pair", r->refills_per_pair, "%.5f");
	printf(",\"load\":%u,\"purge_helpers\":%" PRIu64, r->load, r->helpers);
	if (r->counters_add_up >= 0)
		printf(",\"counters_add_up\":%s",
		       r->counters_add_up ? "true" : "false");
	printf(",\"purges\":%" PRIu64
	       ",\"passed\":%u,\"failed\":%u,\"expect_fail\":%s}\n",
	       r->purges, r->passed, r->failed,
	       r->expect_fail ? "true" : "false");
}

static void emit_csv(const struct row *r)
{
	static bool header;

	if (!csv_out)
		return;
	if (!header) {
		fputs("test,mode,tag,nodes,threads,loops,live,ns_per_pair,pairs_per_sec,"
		      "global_lock_per_pair,heap_lock_per_pair,pool_hit_rate,"
		      "cross_node_busy_per_pair,pooled_cross_node_fraction,purges,passed,failed,"
		      "layer,nr_pages,syscalls_per_pair\n",
		      csv_out);
		header = true;
	}
	fprintf(csv_out,
		"%s,%s,%s,%u,%u,%lu,%" PRIu64
		",%.1f,%.0f,%.5f,%.5f,%.4f,%.4f,%.4f,%" PRIu64 ",%u,%u",
		r->test, r->mode, r->tag, r->nodes, r->threads, r->loops,
		r->live, r->ns_per_pair, r->pairs_per_sec,
		r->global_lock_per_pair, r->heap_lock_per_pair,
		r->pool_hit_rate, r->cross_busy_per_pair,
		r->pooled_cross_fraction, r->purges, r->passed, r->failed);
	fprintf(csv_out, ",%s,%u,%.4f\n", r->layer, r->nr_pages,
		r->syscalls_per_pair);
}

static void fmt_opt(char *buf, size_t len, double v, const char *fmt)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, fmt, v);
}

static void print_table(const struct row *rows, size_t n)
{
	char glock[16], hit[16], ratio[16], live[16], sys[16];
	const struct row *r, *base;
	size_t i, j;

	printf("\n%-30s %-8s %-7s %5s %7s %8s %10s %12s %10s %8s %7s %8s %11s\n",
	       "test", "mode", "tag", "nodes", "threads", "live", "ns/pair",
	       "pairs/s", "glock/pair", "pool-hit", "purges", "sys/pair",
	       "vs one-lock");
	for (i = 0; i < n; i++) {
		r = &rows[i];
		base = NULL;
		for (j = 0; j < n; j++)
			if (!base && !strcmp(rows[j].mode, "one-lock") &&
			    !strcmp(rows[j].test, r->test) &&
			    rows[j].threads == r->threads &&
			    rows[j].live == r->live)
				base = &rows[j];
		fmt_opt(glock, sizeof(glock), r->global_lock_per_pair, "%.4f");
		fmt_opt(hit, sizeof(hit), r->pool_hit_rate * 100, "%.1f%%");
		fmt_opt(ratio, sizeof(ratio),
			base ? r->pairs_per_sec / base->pairs_per_sec : NAN,
			"%.2fx");
		fmt_opt(sys, sizeof(sys), r->syscalls_per_pair, "%.4f");
		snprintf(live, sizeof(live), "%" PRIu64, r->live);
		printf("%-30s %-8s %-7s %5u %7u %8s %10.1f %12.0f %10s %8s %7" PRIu64
		       " %8s %11s%s\n",
		       r->test, r->mode, r->tag, r->nodes, r->threads,
		       r->live ? live : "-", r->ns_per_pair, r->pairs_per_sec,
		       glock, hit, r->purges, sys, ratio,
		       r->failed ? (r->expect_fail ? "  (failed, as expected)" :
						     "  FAILED") :
				   "");
	}
}

/*
 * What contention would be on a machine with a core per thread, counted
 * rather than timed: locks every CPU shares, locks of a node other than
 * the thread's own, how often the pool answered, and the purge work.
 */
static void print_structure(const struct row *rows, size_t n)
{
	char heap[16], shared[16], other[16], hit[16], refills[16], sum[8];
	const struct row *r;
	size_t i;

	printf("\nlock structure per pair (hardware-independent)\n");
	printf("%-30s %-8s %-7s %5s %7s %4s %10s %10s %10s %8s %7s %7s %10s %5s\n",
	       "test", "mode", "tag", "nodes", "threads", "load", "heap/pair",
	       "glock/pair", "other/pair", "pool-hit", "purges", "helpers",
	       "refill/pair", "sums");
	for (i = 0; i < n; i++) {
		r = &rows[i];
		if (!r->range)
			continue;
		fmt_opt(heap, sizeof(heap), r->heap_lock_per_pair, "%.4f");
		fmt_opt(shared, sizeof(shared), r->global_lock_per_pair,
			"%.4f");
		fmt_opt(other, sizeof(other), r->other_node_lock_per_pair,
			"%.4f");
		fmt_opt(hit, sizeof(hit), r->pool_hit_rate * 100, "%.1f%%");
		fmt_opt(refills, sizeof(refills), r->refills_per_pair, "%.5f");
		snprintf(sum, sizeof(sum), "%s",
			 r->counters_add_up < 0 ? "-" :
			 r->counters_add_up	? "ok" :
						  "BAD");
		printf("%-30s %-8s %-7s %5u %7u %4u %10s %10s %10s %8s %7" PRIu64
		       " %7" PRIu64 " %10s %5s\n",
		       r->test, r->mode, r->tag, r->nodes, r->threads, r->load,
		       heap, shared, other, hit, r->purges, r->helpers, refills,
		       sum);
	}
}

/*
 * Scaling efficiency: throughput at N / (N x throughput at 1), against the
 * one-thread row of the same design (test, mode, tag, node count, live
 * areas and load).  A row without one (auto nodes under cpus=virtual
 * change with the threads) is left out.
 */
static void print_scaling(const struct row *rows, size_t n)
{
	const struct row *one;
	size_t i, j;

	printf("\nscaling efficiency (pairs/s at N threads / (N x pairs/s at 1 thread))\n");
	printf("%-30s %-8s %-7s %5s %7s %12s %10s\n", "test", "mode", "tag",
	       "nodes", "threads", "pairs/s", "efficiency");
	for (i = 0; i < n; i++) {
		one = NULL;
		for (j = 0; j < n && !one; j++)
			if (rows[j].threads == 1 &&
			    !strcmp(rows[j].test, rows[i].test) &&
			    !strcmp(rows[j].mode, rows[i].mode) &&
			    !strcmp(rows[j].tag, rows[i].tag) &&
			    rows[j].nodes == rows[i].nodes &&
			    rows[j].live == rows[i].live &&
			    rows[j].load == rows[i].load)
				one = &rows[j];
		if (!one)
			continue;
		printf("%-30s %-8s %-7s %5u %7u %12.0f %9.1f%%\n", rows[i].test,
		       rows[i].mode, rows[i].tag, rows[i].nodes,
		       rows[i].threads, rows[i].pairs_per_sec,
		       100.0 * rows[i].pairs_per_sec /
			       (rows[i].threads * one->pairs_per_sec));
	}
}

/* ------------------------------------------------------------------------
 * Command line.
 */
static void usage(FILE *out)
{
	size_t i;

	fprintf(out,
		"usage: %s [name=value | --name=value] ...\n"
		"Parameters of the kernel's test_vmalloc module:\n"
		"  run_test_mask=MASK          bit i runs test i (default: tests 0-6)\n"
		"  nr_threads=N                worker threads (default: online CPUs)\n"
		"  test_repeat_count=N         runs of each test per thread (default 1)\n"
		"  test_loop_count=N           iterations inside a test (default 1000000)\n"
		"  nr_pages=N                  pages for fix_size_alloc_test (default 1)\n"
		"  sequential_test_order=0|1   0 shuffles the order of the test phases;\n"
		"                              every thread runs the same test at a time,\n"
		"                              so each row's counters belong to one test\n"
		"Ours:\n"
		"  nodes=LIST                  node settings to compare, auto = online CPUs;\n"
		"                              1 = the one-lock design (the kernel's, no\n"
		"                              pools) and, with tag zone, libvmap's one node\n"
		"                              (default 1,auto)\n"
		"  mode=range|vmalloc          address ranges only, or real memory through the\n"
		"                              vmalloc layer, touching each area (default range)\n"
		"  baselines=LIST              mmap, malloc, list (a sorted hole list behind one\n"
		"                              lock; range mode) or none (default: mmap;\n"
		"                              vmalloc mode: mmap,malloc)\n"
		"  tag=LIST                    pool design of node rows, a list of: zone (the\n"
		"                              default: a miss refills the pool from the CPU's\n"
		"                              zones, ranges tagged by address), kernel (pools\n"
		"                              filled by purges only, a miss tagged with the\n"
		"                              CPU's node), address (kernel pools, a miss\n"
		"                              tagged by address) (default zone); vmalloc\n"
		"                              mode always has the layer's own (kernel)\n"
		"  live=LIST                   run a 1-page workload with LIST areas kept busy\n"
		"                              instead of the tests (e.g. 1000,10000,100000,1000000)\n"
		"  churn=LIST                  instead of the tests, each worker keeps LIST ranges\n"
		"                              of 1-16 pages (a quarter 64 KiB-aligned) and\n"
		"                              replaces a random one per loop\n"
		"  holes=N                     instead of the tests: fill a space of 2N pages\n"
		"                              with one-page ranges, free every other one,\n"
		"                              and time the first 256-page allocation, which\n"
		"                              fails after a full purge (one run per design)\n"
		"  constrained                 instead of nodes and baselines, one node: the\n"
		"                              kernel's lowest fit, the same in a space with\n"
		"                              the best-fit index (tag indexed), and vmap_xalloc\n"
		"                              with EXACT_FIT, TOPDOWN, BESTFIT (tag exact,\n"
		"                              topdown, bestfit)\n"
		"  scale                       threads 1, 2, 4 ... nr_threads; prints efficiency\n"
		"  cpus=virtual|real           virtual: worker i acts as CPU i\n"
		"                              (vmap_set_thread_cpu), and auto nodes means one\n"
		"                              per worker: many CPUs simulated on a small\n"
		"                              machine; prints the lock structure per pair\n"
		"                              (default real: the CPU the thread runs on)\n"
		"  load=N                      N busy threads compete with the workers for\n"
		"                              the CPUs during each phase (default 0)\n"
		"  json                        one JSON object per row on stdout\n"
		"  csv=FILE                    rows as CSV into FILE\n"
		"  seed=N                      random seed (default 1)\n"
		"Tests (bit: name):\n",
		prog);
	for (i = 0; i < NR_TESTS; i++)
		fprintf(out, "  %2zu: %s%s\n", i, tests[i].name,
			tests[i].expect_fail ?
				"  (expected to fail)" :
			tests[i].needs == NEEDS_SPACE ?
				"  (a space, any mode; no baselines)" :
			tests[i].needs == NEEDS_HEAP ?
				"  (a vmalloc heap, any mode; kernel tag only; no baselines)" :
				"");
}

static bool parse_ulong(const char *s, unsigned long *v)
{
	char *end;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	*v = strtoul(s, &end, 0);
	return !errno && !*end;
}

static void bad_arg(const char *arg, const char *why)
{
	fprintf(stderr, "%s: %s: %s (see --help)\n", prog, arg, why);
	exit(2);
}

static void copy_str(char *dst, size_t len, const char *arg, const char *val)
{
	if (strlen(val) >= len)
		bad_arg(arg, "value too long");
	memcpy(dst, val, strlen(val) + 1);
}

static void parse_args(int argc, char **argv, struct params *p)
{
	unsigned long v;
	char key[64];
	const char *arg, *eq, *val;
	int i;

	memset(p, 0, sizeof(*p));
	p->run_test_mask = 0x7f;
	p->test_repeat_count = 1;
	p->test_loop_count = 1000000;
	p->nr_pages = 1;
	p->seed = 1;
	strcpy(p->nodes, "1,auto");
	strcpy(p->baselines, "mmap");
	strcpy(p->tag, "zone");
	for (i = 1; i < argc; i++) {
		arg = argv[i];
		while (*arg == '-')
			arg++;
		if (!strcmp(arg, "help") || !strcmp(arg, "h")) {
			usage(stdout);
			exit(0);
		}
		eq = strchr(arg, '=');
		val = eq ? eq + 1 : "1";
		if ((eq ? (size_t)(eq - arg) : strlen(arg)) >= sizeof(key))
			bad_arg(argv[i], "unknown parameter");
		snprintf(key, sizeof(key), "%.*s",
			 (int)(eq ? eq - arg : (long)strlen(arg)), arg);
		if (!strcmp(key, "nodes")) {
			copy_str(p->nodes, sizeof(p->nodes), argv[i], val);
		} else if (!strcmp(key, "baselines")) {
			copy_str(p->baselines, sizeof(p->baselines), argv[i],
				 val);
			p->baselines_set = true;
		} else if (!strcmp(key, "live")) {
			copy_str(p->live, sizeof(p->live), argv[i], val);
		} else if (!strcmp(key, "churn")) {
			copy_str(p->churn, sizeof(p->churn), argv[i], val);
		} else if (!strcmp(key, "holes")) {
			if (!parse_ulong(val, &v) || v < 1 || v > 100000000)
				bad_arg(argv[i], "holes is 1..100000000");
			p->holes = v;
		} else if (!strcmp(key, "csv")) {
			copy_str(p->csv, sizeof(p->csv), argv[i], val);
		} else if (!strcmp(key, "tag")) {
			copy_str(p->tag, sizeof(p->tag), argv[i], val);
		} else if (!strcmp(key, "cpus")) {
			if (strcmp(val, "virtual") && strcmp(val, "real"))
				bad_arg(argv[i], "cpus is virtual or real");
			p->virtual_cpus = !strcmp(val, "virtual");
		} else if (!strcmp(key, "mode")) {
			if (strcmp(val, "range") && strcmp(val, "vmalloc"))
				bad_arg(argv[i], "mode is range or vmalloc");
			p->vmalloc = !strcmp(val, "vmalloc");
		} else {
			if (!parse_ulong(val, &v))
				bad_arg(argv[i], "not a number");
			if (!strcmp(key, "run_test_mask")) {
				if (!v || v >> NR_TESTS)
					bad_arg(argv[i], "no such test bit");
				p->run_test_mask = v;
			} else if (!strcmp(key, "nr_threads")) {
				if (v > MAX_THREADS)
					bad_arg(argv[i],
						"at most 1024 threads");
				p->nr_threads = (unsigned)v;
			} else if (!strcmp(key, "test_repeat_count")) {
				if (!v || v > 1000000)
					bad_arg(argv[i], "1..1000000");
				p->test_repeat_count = (unsigned)v;
			} else if (!strcmp(key, "test_loop_count")) {
				if (!v)
					bad_arg(argv[i], "at least 1");
				p->test_loop_count = v;
			} else if (!strcmp(key, "nr_pages")) {
				if (!v || v > (1ul << 20))
					bad_arg(argv[i], "1..1048576");
				p->nr_pages = (unsigned)v;
			} else if (!strcmp(key, "sequential_test_order")) {
				p->sequential_test_order = v != 0;
			} else if (!strcmp(key, "json")) {
				p->json = v != 0;
			} else if (!strcmp(key, "scale")) {
				p->scale = v != 0;
			} else if (!strcmp(key, "load")) {
				if (v > MAX_THREADS)
					bad_arg(argv[i],
						"at most 1024 load threads");
				p->load = (unsigned)v;
			} else if (!strcmp(key, "constrained")) {
				p->constrained = v != 0;
			} else if (!strcmp(key, "seed")) {
				p->seed = v;
			} else {
				bad_arg(argv[i], "unknown parameter");
			}
		}
	}
	if (!p->nr_threads)
		p->nr_threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (p->vmalloc && !p->baselines_set)
		strcpy(p->baselines, "mmap,malloc");
}

/*
 * Fit @be to what @tc needs: a space or a heap whatever the mode, and
 * none of the baselines.  False if the test does not run on it.  A heap
 * has the layer's own pools, the kernel's, whatever tag= says: of the
 * node rows, only the first tag's runs, labelled as vmalloc mode labels
 * it (@first_tag: the first of tag=), and not on one node, where the
 * layer's heap is the one-lock row.
 */
static bool test_backend(const struct test_case *tc, struct backend *be,
			 const char *first_tag)
{
	if (tc->needs == NEEDS_ANY)
		return true;
	if (!be->setup)
		return false;
	if (tc->needs == NEEDS_SPACE) {
		be->setup = range_setup;
		be->teardown = range_teardown;
		return true;
	}
	if (strcmp(be->tag, "-")) {
		if (strcmp(be->tag, first_tag) || be->nodes == 1)
			return false;
		be->tag = "kernel";
	}
	be->setup = vmalloc_setup;
	be->teardown = vmalloc_teardown;
	return true;
}

/* Split a comma list; returns the count. */
static size_t split(char *list, char **items, size_t max)
{
	size_t n = 0;
	char *save, *t;

	for (t = strtok_r(list, ",", &save); t && n < max;
	     t = strtok_r(NULL, ",", &save))
		items[n++] = t;
	return n;
}

#define MAX_BACKENDS 16

/* Append a design to run, refusing more than the table holds. */
static void add_backend(struct backend *chosen, size_t *nb,
			const struct backend *b, const char *what)
{
	if (*nb == MAX_BACKENDS)
		bad_arg(what, "at most 16 designs and baselines in one run");
	chosen[(*nb)++] = *b;
}

/*
 * holes=N: the latency cliff of a full purge.  N one-page holes between
 * busy pages, freed in address order as fast as one thread can, leave N
 * lazy or pooled ranges (or heap blocks, once purged) that no purge can
 * join; the 256-page allocation that follows fails, after the full purge
 * that an allocation failure makes.  The row gives what that purge found
 * and how long the failing call took.
 */
static int holes_probe(const struct backend *be, const struct params *p)
{
	struct vmap_params vp = { .nr_nodes = be->nodes,
				  .flags = tag_flags(be->tag) };
	struct vmap_stats st = { .size = sizeof(st) };
	struct vmap_space_info info = { 0 };
	struct vmap_space *s;
	uint64_t *addr, a, i, n = 2 * p->holes;
	double t0, t1;
	int rc;

	rc = vmap_space_create(RANGE_BASE, RANGE_BASE + n * PAGE, &vp, &s);
	if (rc)
		return rc;
	addr = malloc(n * sizeof(*addr));
	if (!addr) {
		vmap_space_destroy(s);
		return -ENOMEM;
	}
	for (i = 0; i < n && !rc; i++)
		rc = vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &addr[i]);
	for (i = 0; i < n && !rc; i += 2)
		rc = vmap_free(s, addr[i]);
	if (!rc) {
		vmap_stats_get(s, -1, &st);
		vmap_space_info(s, &info);
		t0 = now_usec();
		rc = vmap_alloc(s, 256 * PAGE, PAGE, 0, 0, 0, &a);
		t1 = now_usec();
		printf("%-30s %-8s %-7s %5u %9llu %9llu %9llu %11.3f %s\n",
		       "first_failing_alloc", be->mode, be->tag, info.nr_nodes,
		       (unsigned long long)p->holes,
		       (unsigned long long)st.lazy_pages,
		       (unsigned long long)st.pooled_now, (t1 - t0) / 1000,
		       rc == -ENOMEM ? "ENOMEM" : "unexpected");
		rc = rc == -ENOMEM ? 0 : -EPROTO;
	}
	free(addr);
	vmap_space_destroy(s);
	return rc;
}

int main(int argc, char **argv)
{
	static struct backend chosen[MAX_BACKENDS];
	static struct row rows[4096];
	const struct backend *ours;
	char nodes[256], baselines[64], live[256], churn[256], tags[32],
		*items[32];
	char *tag_items[3];
	const char *heap_tag;
	unsigned threads_list[16], nt = 0, t, order[NR_TESTS], nr_order = 0;
	uint64_t lives[16], churns[16];
	size_t nb = 0, nrows = 0, i, k, n, nl, nc, ntags;
	struct params p;
	unsigned long v;
	double start;
	bool failed = false;

	parse_args(argc, argv, &p);
	ours = p.vmalloc ? vmalloc_backends : range_backends;
	memcpy(nodes, p.nodes, sizeof(nodes));
	memcpy(baselines, p.baselines, sizeof(baselines));
	memcpy(live, p.live, sizeof(live));
	memcpy(churn, p.churn, sizeof(churn));
	memcpy(tags, p.tag, sizeof(tags));

	ntags = split(tags, tag_items, 3);
	for (i = 0; i < ntags; i++)
		if (strcmp(tag_items[i], "zone") &&
		    strcmp(tag_items[i], "kernel") &&
		    strcmp(tag_items[i], "address"))
			bad_arg(tag_items[i], "tag is zone, kernel or address");
	/* The vmalloc layer chooses its pools itself (the kernel's). */
	if (p.vmalloc)
		ntags = 1;
	heap_tag = p.vmalloc || !ntags ? "kernel" : tag_items[0];
	n = p.constrained ? 0 : split(nodes, items, 32);
	for (i = 0; p.constrained && i < NR_CONSTRAINED; i++)
		add_backend(chosen, &nb, &constrained_backends[i],
			    "constrained");
	for (i = 0; i < n; i++) {
		if (!strcmp(items[i], "auto")) {
			v = 0;
		} else if (!parse_ulong(items[i], &v) || v < 1 || v > 128) {
			bad_arg(items[i], "a node setting is 1..128 or auto");
		}
		if (v == 1) {
			add_backend(chosen, &nb, &ours[0], items[i]);
			/*
			 * The one-lock row is the design before the node
			 * series (one heap, no pools, the drain thread);
			 * tag=zone adds libvmap's own one node beside it,
			 * with pools and purges in the free (DESIGN.md
			 * section 17).  The kernel's tags on one node are
			 * the one-lock row.
			 */
			for (k = 0; k < ntags && !p.vmalloc; k++) {
				if (strcmp(tag_items[k], "zone"))
					continue;
				add_backend(chosen, &nb, &ours[1], items[i]);
				chosen[nb - 1].nodes = 1;
			}
			continue;
		}
		for (k = 0; k < ntags; k++) {
			add_backend(chosen, &nb, &ours[1], items[i]);
			chosen[nb - 1].nodes = (unsigned)v;
			if (!p.vmalloc)
				chosen[nb - 1].tag = tag_items[k];
		}
	}
	n = p.constrained ? 0 : split(baselines, items, 32);
	for (i = 0; i < n; i++) {
		if (!strcmp(items[i], "mmap"))
			add_backend(chosen, &nb, &mmap_backend, items[i]);
		else if (!strcmp(items[i], "malloc"))
			add_backend(chosen, &nb, &malloc_backend, items[i]);
		else if (!strcmp(items[i], "list") && !p.vmalloc)
			add_backend(chosen, &nb, &list_backend, items[i]);
		else if (strcmp(items[i], "none"))
			bad_arg(items[i],
				"baselines are mmap, malloc, list (range mode) or none");
	}
	if (p.holes) {
		if (p.vmalloc || p.constrained)
			bad_arg("holes", "holes is for range mode's designs");
		printf("%-30s %-8s %-7s %5s %9s %9s %9s %11s %s\n", "test",
		       "mode", "tag", "nodes", "holes", "lazy-pg", "pooled",
		       "ms", "result");
		for (k = 0; k < nb; k++) {
			int rc;

			if (chosen[k].alloc != range_alloc)
				continue;
			rc = holes_probe(&chosen[k], &p);
			if (rc) {
				fprintf(stderr, "%s: holes: %s\n", prog,
					strerror(-rc));
				return 1;
			}
		}
		return 0;
	}
	nl = p.live[0] ? split(live, items, 16) : 0;
	for (i = 0; i < nl; i++) {
		if (!parse_ulong(items[i], &v) || !v || v > 100000000)
			bad_arg(items[i], "a live count is 1..100000000");
		lives[i] = v;
	}
	nc = p.churn[0] && !nl ? split(churn, items, 16) : 0;
	for (i = 0; i < nc; i++) {
		if (!parse_ulong(items[i], &v) || !v || v > 10000000)
			bad_arg(items[i], "a churn count is 1..10000000");
		churns[i] = v;
	}
	if (p.scale) {
		for (t = 1; t < p.nr_threads && nt < 15; t *= 2)
			threads_list[nt++] = t;
	}
	threads_list[nt++] = p.nr_threads;
	if (p.csv[0] && !(csv_out = fopen(p.csv, "w"))) {
		fprintf(stderr, "%s: %s: %s\n", prog, p.csv, strerror(errno));
		return 2;
	}

	for (i = 0; i < NR_TESTS; i++) {
		if (!(p.run_test_mask & (1ul << i)))
			continue;
		/* The stub's answer tells whether liburcu was built in. */
		if (!strncmp(tests[i].name, "kvfree_rcu", 10) &&
		    vmap_heap_vfree_rcu(NULL, NULL) == -ENOSYS) {
			fprintf(stderr,
				"%s: %s: skipped: liburcu-dev not installed when libvmap was built\n",
				prog, tests[i].name);
			continue;
		}
		order[nr_order++] = (unsigned)i;
	}
	if (!p.sequential_test_order) {
		uint64_t s = p.seed;

		for (i = nr_order; i > 1; i--) {
			unsigned tmp;

			s = s * 6364136223846793005ull + 1442695040888963407ull;
			k = (size_t)((s >> 33) % i);
			tmp = order[i - 1];
			order[i - 1] = order[k];
			order[k] = tmp;
		}
	}
	verbose_summary = !nl && !nc;
	start = now_usec();
	{
		size_t nwork = nl ? nl : nc ? nc : nr_order;
		size_t total = nwork * nt * nb, done = 0;

		for (i = 0; i < nwork; i++) {
			for (t = 0; t < nt; t++) {
				for (k = 0; k < nb; k++) {
					const struct test_case *tc =
						nl || nc ? NULL :
							   &tests[order[i]];
					const char *name =
						tc ? tc->name :
						nl ? "live_fix_size_test" :
						     "churn_test";
					struct row *r = &rows[nrows];
					struct backend be = chosen[k];
					int rc;

					if (tc &&
					    !test_backend(tc, &be, heap_tag)) {
						done++;
						continue;
					}

					if (now_usec() - start > 3e6)
						fprintf(stderr,
							"%s: [%zu/%zu] %s %s %u threads\n",
							prog, done + 1, total,
							name, chosen[k].mode,
							threads_list[t]);
					rc = run_phase(
						&p, &be, name,
						tc ? tc->fn :
						nl ? fix_size_alloc_test :
						     churn_test,
						tc ? tc->expect_fail : false,
						threads_list[t],
						nl ? lives[i] : 0,
						nc ? churns[i] : 0, r);
					done++;
					if (rc) {
						fprintf(stderr,
							"%s: %s: phase skipped: %s\n",
							prog, chosen[k].mode,
							strerror(-rc));
						continue;
					}
					if (r->failed && !r->expect_fail)
						failed = true;
					if (p.json)
						emit_json(r);
					emit_csv(r);
					nrows++;
				}
			}
		}
	}
	if (!p.json) {
		print_table(rows, nrows);
		if (p.virtual_cpus || p.load)
			print_structure(rows, nrows);
		if (p.scale)
			print_scaling(rows, nrows);
	}
	if (csv_out && fclose(csv_out)) {
		fprintf(stderr, "%s: %s: write error\n", prog, p.csv);
		return 1;
	}
	return failed ? 1 : 0;
}
