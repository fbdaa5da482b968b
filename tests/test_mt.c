/* SPDX-License-Identifier: MIT */
/*
 * test_mt.c - multi-thread stress: what it proves
 *
 *  - no two live ranges ever overlap: every page of the space has an
 *    owner word in a shadow map; a thread claims each page of a range it
 *    was given with a compare-and-swap from "nobody" (a failed CAS is a
 *    double hand-out) and checks and clears its stamp before freeing;
 *  - lookups see the right range while other threads churn;
 *  - nothing is lost: after the workers stop, everything is freed, a
 *    purge and a shrink run, vmap_check() passes and the free heap is the
 *    whole space again;
 *  - all of this while another thread runs purge and shrink in a loop,
 *    the drain thread and purge helpers run, and (in the small space)
 *    allocations fail and take the full-purge path.
 *
 * Threads: 2 to 16 (more than cores on purpose).  Fixed seeds per thread
 * derived from VMAP_TEST_SEED; VMAP_TEST_SCALE scales the operations.
 * Built and run under ASan+UBSan and under TSan (label mt) by make check;
 * run longer with VMAP_TEST_SCALE=20.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "stress.h"

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long op;

	vmap_set_thread_cpu(w->id % 3 ? -1 : (int)w->id);
	for (op = 0; op < w->run->ops_per_thread; op++)
		stress_step(w);
	stress_release_all(w);
	return NULL;
}

static void *purger_main(void *arg)
{
	struct run *r = arg;
	unsigned round = 0;

	while (!atomic_load(&r->stop)) {
		stress_purge_step(r, &round);
		sched_yield();
	}
	return NULL;
}

static void stress(unsigned threads, unsigned nodes, uint64_t pages,
		   uint64_t lazy_max, unsigned max_pages, long ops)
{
	struct vmap_params p = { .nr_nodes = nodes, .lazy_max_pages = lazy_max };
	static struct worker w[16];
	pthread_t tid[16], purger;
	char msg[256];
	struct run r;
	unsigned i;
	int rc;

	memset(&r, 0, sizeof(r));
	r.pages = pages;
	r.max_pages = max_pages;
	r.ops_per_thread = ops;
	r.owner = calloc(pages, sizeof(*r.owner));
	assert_int(vmap_space_create(BASE, BASE + pages * PAGE, &p, &r.s), ==, 0);
	assert_int(pthread_create(&purger, NULL, purger_main, &r), ==, 0);
	for (i = 0; i < threads; i++) {
		w[i].run = &r;
		w[i].id = i;
		w[i].nlive = 0;
		w[i].seed = test_seed * 1000003u + i * 7919u + nodes;
		assert_int(pthread_create(&tid[i], NULL, worker_main, &w[i]), ==, 0);
	}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	atomic_store(&r.stop, true);
	pthread_join(purger, NULL);

	expect_int(atomic_load(&r.errors), ==, 0);
	rc = stress_conserved(&r, msg, sizeof(msg));
	test_check(rc == 0, 0, "%s", msg);
	vmap_space_destroy(r.s);
	free(r.owner);
}

TEST(two_threads_one_node)
{
	stress(2, 1, 16384, 256, 64, scaled(20000));
}

TEST(four_threads_four_nodes)
{
	stress(4, 4, 16384, 256, 64, scaled(20000));
}

TEST(eight_threads_auto_nodes_small_space)
{
	/* 2048 pages against 8 x 48 ranges of up to 16: failures and full purges. */
	stress(8, 0, 2048, 64, 16, scaled(10000));
}

TEST(sixteen_threads_sixteen_nodes)
{
	stress(16, 16, 65536, 512, 300, scaled(5000));
}

int main(int argc, char **argv)
{
	return test_main(argc, argv, (struct test[]){
		T(two_threads_one_node),
		T(four_threads_four_nodes),
		T(eight_threads_auto_nodes_small_space),
		T(sixteen_threads_sixteen_nodes),
		{ 0 } });
}
