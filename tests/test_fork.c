/* SPDX-License-Identifier: MIT */
/*
 * test_fork.c - fork() in five shapes, each child under a watchdog so a
 * deadlock fails the test instead of hanging it (DESIGN.md section 15):
 *
 *  1. fork while other threads are inside the library allocating and
 *     freeing, with drains running;
 *  2. fork while other threads purge, shrink and check;
 *  3. fork from a single-threaded program after the library started its
 *     worker threads: the child's frees still drain, a purge that wants
 *     helpers completes, destroy returns;
 *  4. the child allocates, frees, purges, shrinks, checks and destroys
 *     every space, and uses vmalloc/vfree, vmallocinfo, vm_map_ram,
 *     vmap() of pages and vfree_rcu, which a fifth thread of the parent
 *     keeps busy at the fork;
 *  5. the parent goes on unaffected, and conserves every page.
 *
 * Public header only.  Release builds only: a child forked while another
 * thread is inside the sanitizers' malloc can hang in it (seen with
 * gcc 12's ASan: its allocator lock is not taken around fork), and TSan
 * does not support a child that starts threads after a multi-threaded
 * fork.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x100000000ull
#define SPACE_PAGES (1ull << 16)
#define CHILD_TIMEOUT_S 60

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#endif

static struct vmap_space *space;
static atomic_bool stop;
static atomic_long ops;

static struct vmap_stats stats_of(struct vmap_space *s)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, -1, &st);
	return st;
}

/* After a full purge and shrink, the whole space is one free block. */
static void expect_all_free(struct vmap_space *s)
{
	assert_int(vmap_purge(s), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	expect_u64(stats_of(s).free_bytes, ==, SPACE_PAGES * PAGE);
}

static struct vmap_space *new_space(uint64_t lazy_max)
{
	struct vmap_params p = { .nr_nodes = 4, .lazy_max_pages = lazy_max };
	struct vmap_space *s = NULL;

	if (vmap_space_create(BASE, BASE + SPACE_PAGES * PAGE, &p, &s))
		return NULL;
	return s;
}

static void *churn(void *arg)
{
	uint64_t held[32] = { 0 },
		 state = (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
	unsigned k;

	vmap_set_thread_cpu((int)(uintptr_t)arg);
	while (!atomic_load(&stop)) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		k = (unsigned)(state >> 59);
		if (held[k]) {
			vmap_free(space, held[k]);
			held[k] = 0;
		} else if (vmap_alloc(space, (1 + (state >> 40) % 8) * PAGE,
				      PAGE, 0, 0, 0, &held[k])) {
			held[k] = 0;
		}
		atomic_fetch_add(&ops, 1);
	}
	for (k = 0; k < 32; k++)
		if (held[k])
			vmap_free(space, held[k]);
	return NULL;
}

/*
 * The vmalloc layer's own locks (block queues and blocks, the page pool)
 * and liburcu's call_rcu thread, busy while the test forks.
 */
static void *map_pages(void *arg)
{
	uint64_t pages[4];
	char *p;
	unsigned n = 0;

	(void)arg;
	if (vmap_pages_alloc(vmap_default_heap(), 4, pages))
		return NULL;
	while (!atomic_load(&stop)) {
		p = vm_map_ram(pages, 1 + n % 4);
		if (p) {
			p[0] = 1;
			vm_unmap_ram(p, 1 + n % 4);
		}
		p = vmap(pages, 4, 0);
		if (p)
			vunmap(p);
		p = vmalloc(PAGE);
		if (p && vfree_rcu(p))
			vfree(p); /* built without liburcu */
		if (++n % 64 == 0)
			vm_unmap_aliases();
		atomic_fetch_add(&ops, 1);
	}
	vmap_pages_free(vmap_default_heap(), pages, 4);
	return NULL;
}

static void *maintain(void *arg)
{
	char msg[128];

	(void)arg;
	while (!atomic_load(&stop)) {
		vmap_purge(space);
		vmap_shrink(space);
		vmap_check(space, msg, sizeof(msg));
	}
	return NULL;
}

/*
 * The child's counts agree with its ranges: what it holds busy is what
 * was allocated and not freed, although threads of the parent were in
 * the middle of allocations and frees at the fork.
 */
static void child_counts_its_ranges(void)
{
	struct vmap_stats st = stats_of(space);
	struct vmap_range *r;
	size_t n, i, busy = 0;

	assert_int(vmap_snapshot(space, &r, &n), ==, 0);
	for (i = 0; i < n; i++)
		busy += r[i].state == VMAP_RANGE_BUSY;
	free(r);
	expect_u64(st.allocs - st.frees, ==, busy);
}

/* Shape 4: everything a child may do, on the inherited space and heap. */
static void child_uses_everything(void)
{
	uint64_t a[64];
	char *p;
	int i;

	assert_space_ok(space);
	child_counts_its_ranges();
	for (i = 0; i < 64; i++)
		assert_int(vmap_alloc(space, PAGE * (1 + i % 4), PAGE, 0, 0, 0,
				      &a[i]),
			   ==, 0);
	for (i = 0; i < 64; i++)
		assert_int(vmap_free(space, a[i]), ==, 0);
	assert_int(vmap_purge(space), ==, 0);
	assert_int(vmap_shrink(space), ==, 0);
	assert_space_ok(space);

	p = vmalloc(3 * PAGE);
	assert_true(p);
	p[3 * PAGE - 1] = 1;
	vfree(p);
	{
		uint64_t pages[2];
		char *m;

		assert_int(vmap_pages_alloc(vmap_default_heap(), 2, pages), ==,
			   0);
		m = vm_map_ram(pages, 2);
		assert_true(m);
		m[PAGE] = 2;
		vm_unmap_ram(m, 2);
		vm_unmap_aliases();
		m = vmap(pages, 2, 0);
		assert_true(m);
		expect_int(m[PAGE], ==, 2);
		vunmap(m);
		assert_int(vmap_pages_free(vmap_default_heap(), pages, 2), ==,
			   0);
		p = vmalloc(PAGE);
		assert_true(p);
		if (vfree_rcu(p))
			vfree(p);
		vmap_rcu_barrier();
		{
			char msg[256] = "";
			int rc = vmap_heap_check(vmap_default_heap(), msg,
						 sizeof(msg));
			if (rc)
				fprintf(stderr, "heap check: %s\n", msg);
			assert_int(rc, ==, 0);
		}
	}
	assert_int(vmap_purge(vmap_heap_space(vmap_default_heap())), ==, 0);
	{
		FILE *devnull = fopen("/dev/null", "w");

		assert_true(devnull);
		expect_int(vmallocinfo(devnull), ==, 0);
		fclose(devnull);
	}
	vmap_space_destroy(space);
}

static void fork_under(void *(*extra)(void *), const char *what)
{
	pthread_t threads[5];
	long before;
	int i, round;

	space = new_space(64);
	assert_true(space);
	vfree(vmalloc(PAGE)); /* the default heap exists in the children */
	atomic_store(&stop, false);
	for (i = 0; i < 3; i++)
		assert_int(pthread_create(&threads[i], NULL, churn,
					  (void *)(uintptr_t)i),
			   ==, 0);
	assert_int(
		pthread_create(&threads[3], NULL, extra, (void *)(uintptr_t)3),
		==, 0);
	assert_int(pthread_create(&threads[4], NULL, map_pages, NULL), ==, 0);
	for (round = 0; round < scaled(20); round++) {
		before = atomic_load(&ops);
		while (atomic_load(&ops) < before + 200)
			sched_yield();
		if (test_run_forked(child_uses_everything, CHILD_TIMEOUT_S)) {
			fprintf(stderr, "%s: child of round %d failed\n", what,
				round);
			test_failed_now = 1;
			break;
		}
	}
	atomic_store(&stop, true);
	for (i = 0; i < 5; i++)
		pthread_join(threads[i], NULL);
	/* Shape 5: the parent is unaffected and has lost nothing. */
	assert_space_ok(space);
	expect_all_free(space);
	vmap_space_destroy(space);
}

TEST(fork_while_threads_allocate)
{
	fork_under(churn, "allocating threads");
}

TEST(fork_while_threads_purge)
{
	fork_under(maintain, "purging threads");
}

/*
 * Shape 3, run inside a child of the test so that the program is single
 * threaded apart from the library's own workers.
 */
static void grandchild_frees_and_purges(void)
{
	uint64_t a[4][64], lazy;
	int cpu, i, spins;

	/* A backlog four times the threshold on four nodes: the drain runs. */
	for (cpu = 0; cpu < 4; cpu++) {
		vmap_set_thread_cpu(cpu);
		for (i = 0; i < 64; i++)
			assert_int(vmap_alloc(space, PAGE, PAGE, 0, 0, 0,
					      &a[cpu][i]),
				   ==, 0);
	}
	for (cpu = 0; cpu < 4; cpu++) {
		vmap_set_thread_cpu(cpu);
		for (i = 0; i < 64; i++)
			assert_int(vmap_free(space, a[cpu][i]), ==, 0);
	}
	vmap_set_thread_cpu(-1);
	for (spins = 0; spins < 5000; spins++) {
		lazy = stats_of(space).lazy_pages;
		if (lazy <= 64)
			break;
		usleep(1000);
	}
	expect_u64(stats_of(space).lazy_pages, <=, 64);
	assert_int(vmap_purge(space), ==, 0);
	expect_u64(stats_of(space).lazy_pages, ==, 0);
	assert_space_ok(space);
	vmap_space_destroy(space);
}

static void single_threaded_program(void)
{
	uint64_t a[128];
	int i, spins;

	space = new_space(64);
	assert_true(space);
	for (i = 0; i < 128; i++)
		assert_int(vmap_alloc(space, PAGE, PAGE, 0, 0, 0, &a[i]), ==,
			   0);
	for (i = 0; i < 128; i++)
		assert_int(vmap_free(space, a[i]), ==, 0);
	/* The drain ran on a worker thread the library started. */
	for (spins = 0; spins < 5000 && stats_of(space).purges == 0; spins++)
		usleep(1000);
	assert_u64(stats_of(space).purges, >=, 1);
	expect_int(
		test_run_forked(grandchild_frees_and_purges, CHILD_TIMEOUT_S),
		==, 0);
	/* And this side of the fork still drains, purges and destroys. */
	grandchild_frees_and_purges();
}

TEST(fork_after_workers_started)
{
	expect_int(test_run_forked(single_threaded_program, CHILD_TIMEOUT_S),
		   ==, 0);
}

int main(int argc, char **argv)
{
#ifdef SANITIZED
	printf("test_fork: skipped: the sanitizers' allocators are not fork-safe; runs in make check's release pass\n");
	return 77;
#endif
	return test_main(argc, argv,
			 (struct test[]){ T(fork_while_threads_allocate),
					  T(fork_while_threads_purge),
					  T(fork_after_workers_started),
					  { 0 } });
}
