/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - what a thread's life may do around the library
 * (DESIGN.md section 14):
 *
 *  - allocate and free from thread-specific-data destructors that run
 *    after the library's own, in several destructor rounds;
 *  - be cancelled (deferred) while inside vmap_purge() and an allocation's
 *    notifier round: the cancel acts only after the call returned, and
 *    the next purge, shrink and overflowing allocation from another
 *    thread complete;
 *  - 32 spaces of 128 nodes, purged with helpers from several threads,
 *    start no more worker threads than the process's cap.
 *
 * Public header only; runs under ASan+UBSan and TSan.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x200000000ull

static struct vmap_space *one_node_space(uint64_t pages, uint64_t lazy_max)
{
	struct vmap_params p = { .nr_nodes = 1, .lazy_max_pages = lazy_max };
	struct vmap_space *s = NULL;

	if (vmap_space_create(BASE, BASE + pages * PAGE, &p, &s))
		return NULL;
	return s;
}

/* ---- destructors ---------------------------------------------------- */

static struct vmap_space *dtor_space;
static pthread_key_t user_key;
static atomic_int dtor_rounds, dtor_ok;

/*
 * A per-thread cache flushing itself: aligned allocations, each carved
 * from the middle of a free block (so each needs the spare record the
 * library's destructor freed), and frees, then once more in the next
 * destructor round.
 */
static void user_destructor(void *arg)
{
	uint64_t a[8];
	int i, ok = 1;

	for (i = 0; i < 8; i++)
		ok &= vmap_alloc(dtor_space, PAGE * (i + 1), 16 * PAGE, 0, 0, 0,
				 &a[i]) == 0;
	for (i = 0; ok && i < 8; i++)
		ok &= vmap_free(dtor_space, a[i]) == 0;
	atomic_fetch_add(&dtor_ok, ok);
	atomic_fetch_add(&dtor_rounds, 1);
	/* @arg counts this thread's rounds: three in all. */
	if ((uintptr_t)arg < 3)
		pthread_setspecific(user_key, (void *)((uintptr_t)arg + 1));
}

static void *thread_with_cache(void *arg)
{
	uint64_t a;

	(void)arg;
	/* The thread keeps a spare record: this allocation does not split. */
	if (vmap_alloc(dtor_space, PAGE, PAGE, 0, 0, 0, &a) == 0)
		vmap_free(dtor_space, a);
	pthread_setspecific(user_key, (void *)1);
	return NULL;
}

TEST(allocation_in_destructors_after_the_librarys)
{
	pthread_t t[8];
	uint64_t a;
	int i;

	dtor_space = one_node_space(1 << 16, 1 << 20);
	assert_true(dtor_space);
	/*
	 * The library's key is created first, so its destructor runs first;
	 * the page stays busy so that the free block no longer starts aligned.
	 */
	assert_int(vmap_alloc(dtor_space, PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	assert_int(pthread_key_create(&user_key, user_destructor), ==, 0);
	for (i = 0; i < 8; i++)
		assert_int(pthread_create(&t[i], NULL, thread_with_cache, NULL),
			   ==, 0);
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	expect_int(atomic_load(&dtor_rounds), ==, 8 * 3);
	expect_int(atomic_load(&dtor_ok), ==, 8 * 3);
	assert_space_ok(dtor_space);
	pthread_key_delete(user_key);
	vmap_space_destroy(dtor_space);
}

/* ---- cancellation --------------------------------------------------- */

static struct vmap_space *cancel_space;
static atomic_int in_callback, cancel_sent, returned;

/* The user's callback: a cancellation point that must not act. */
static void wait_for_cancel(void)
{
	atomic_store(&in_callback, 1);
	while (!atomic_load(&cancel_sent))
		usleep(1000);
	pthread_testcancel();
	usleep(1000);
}

static void flush_waits(void *cookie, uint64_t start, uint64_t end)
{
	(void)cookie;
	(void)start;
	(void)end;
	wait_for_cancel();
}

static void notifier_waits(struct vmap_space *s, void *cookie, uint64_t *freed)
{
	(void)s;
	(void)cookie;
	(void)freed;
	wait_for_cancel();
}

/* The space is full: a full purge, then the notifier round. */
static __attribute__((noinline)) void alloc_in_full_space(void)
{
	uint64_t a;

	vmap_alloc(cancel_space, PAGE, PAGE, 0, 0, 0, &a);
}

/*
 * The frame that the cancel unwinds holds no addressable local: ASan does
 * not unpoison the redzones of frames a forced unwind skips, and would
 * report the thread's own exit.
 */
static void *purge_then_cancel_point(void *arg)
{
	if (arg)
		vmap_purge(cancel_space);
	else
		alloc_in_full_space();
	atomic_store(&returned, 1);
	pthread_testcancel();
	return NULL;
}

static void cancel_inside(bool in_purge)
{
	struct vmap_params p = { .nr_nodes = 4,
				 .lazy_max_pages = 1 << 20,
				 .flush = flush_waits };
	uint64_t a[64], b;
	pthread_t t;
	void *result;
	int i;

	atomic_store(&in_callback, 0);
	atomic_store(&cancel_sent, 0);
	atomic_store(&returned, 0);
	if (!in_purge)
		p.flush = NULL;
	assert_int(vmap_space_create(BASE, BASE + 64 * PAGE, &p, &cancel_space),
		   ==, 0);
	for (i = 0; i < 64; i++) {
		vmap_set_thread_cpu(i);
		assert_int(vmap_alloc(cancel_space, PAGE, PAGE, 0, 0, 0, &a[i]),
			   ==, 0);
	}
	vmap_set_thread_cpu(-1);
	if (in_purge) {
		for (i = 0; i < 64; i++)
			assert_int(vmap_free(cancel_space, a[i]), ==, 0);
	} else {
		assert_int(vmap_notifier_register(cancel_space, notifier_waits,
						  NULL),
			   ==, 0);
	}
	assert_int(pthread_create(&t, NULL, purge_then_cancel_point,
				  (void *)(uintptr_t)in_purge),
		   ==, 0);
	while (!atomic_load(&in_callback))
		usleep(1000);
	assert_int(pthread_cancel(t), ==, 0);
	atomic_store(&cancel_sent, 1);
	assert_int(pthread_join(t, &result), ==, 0);
	expect_true(result == PTHREAD_CANCELED);
	expect_int(atomic_load(&returned), ==, 1);

	/* Nothing was left locked: these complete (ctest's timeout otherwise). */
	atomic_store(&cancel_sent, 1);
	if (!in_purge) {
		assert_int(vmap_notifier_unregister(cancel_space,
						    notifier_waits, NULL),
			   ==, 0);
		for (i = 0; i < 64; i++)
			assert_int(vmap_free(cancel_space, a[i]), ==, 0);
	}
	expect_int(vmap_purge(cancel_space), ==, 0);
	expect_int(vmap_shrink(cancel_space), ==, 0);
	expect_int(vmap_alloc(cancel_space, 64 * PAGE, PAGE, 0, 0, 0, &b), ==,
		   0);
	assert_space_ok(cancel_space);
	vmap_space_destroy(cancel_space);
}

TEST(cancel_inside_purge)
{
	cancel_inside(true);
}

TEST(cancel_inside_notifier_round)
{
	cancel_inside(false);
}

/* ---- the worker bound ----------------------------------------------- */

#define SPACES 32

static struct vmap_space *spaces[SPACES];

static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Every space gets a backlog of 8 x lazy_max over 128 nodes: helpers. */
static void *backlog_in_spaces(void *arg)
{
	uintptr_t first = (uintptr_t)arg;
	uint64_t a[128];
	unsigned k, i;

	for (k = (unsigned)first; k < SPACES; k += 4) {
		for (i = 0; i < 128; i++) {
			vmap_set_thread_cpu((int)i);
			if (vmap_alloc(spaces[k], PAGE, PAGE, 0, 0, 0, &a[i]))
				a[i] = 0;
		}
		for (i = 0; i < 128; i++)
			if (a[i])
				vmap_free(spaces[k], a[i]);
		vmap_purge(spaces[k]);
	}
	vmap_set_thread_cpu(-1);
	return NULL;
}

TEST(worker_threads_bounded_per_process)
{
	struct vmap_params p = { .nr_nodes = 128, .lazy_max_pages = 16 };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int cap = (int)(cpus > 128 ? 128 : cpus < 1 ? 1 : cpus), before, after;
	struct vmap_stats st = { .size = sizeof(st) };
	uint64_t helpers = 0;
	pthread_t t[4];
	unsigned k;

	before = threads_now();
	assert_int(before, >, 0);
	for (k = 0; k < SPACES; k++)
		assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p,
					     &spaces[k]),
			   ==, 0);
	for (k = 0; k < 4; k++)
		assert_int(pthread_create(&t[k], NULL, backlog_in_spaces,
					  (void *)(uintptr_t)k),
			   ==, 0);
	for (k = 0; k < 4; k++)
		pthread_join(t[k], NULL);
	/* A joined thread can stay listed for a moment after its exit. */
	for (k = 0; k < 200 && (after = threads_now()) > before + cap; k++)
		usleep(10000);
	for (k = 0; k < SPACES; k++) {
		vmap_stats_get(spaces[k], -1, &st);
		helpers += st.purge_helpers;
		assert_space_ok(spaces[k]);
		vmap_space_destroy(spaces[k]);
	}
	printf("     %d threads before, %d after (cap %d), %llu node purges handed to helpers\n",
	       before, after, cap, (unsigned long long)helpers);
	/* The workers of earlier tests count in @before already. */
	expect_int(after, <=, before + cap);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){
			T(allocation_in_destructors_after_the_librarys),
			T(cancel_inside_purge),
			T(cancel_inside_notifier_round),
			T(worker_threads_bounded_per_process),
			{ 0 } });
}
