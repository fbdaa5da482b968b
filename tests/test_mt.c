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
 *    allocations fail and take the full-purge path; with the default
 *    pools (refilled on a miss) and with the kernel's;
 *  - threads that each act as one CPU (as vmap-bench cpus=virtual) see
 *    counters that add up per node: every pooled request is a pool hit
 *    or a miss, and only a miss can insert into another node's busy tree.
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
		   uint64_t lazy_max, unsigned max_pages, long ops,
		   unsigned flags)
{
	struct vmap_params p = { .nr_nodes = nodes,
				 .lazy_max_pages = lazy_max,
				 .flags = flags };
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
	assert_int(vmap_space_create(BASE, BASE + pages * PAGE, &p, &r.s), ==,
		   0);
	assert_int(pthread_create(&purger, NULL, purger_main, &r), ==, 0);
	for (i = 0; i < threads; i++) {
		w[i].run = &r;
		w[i].id = i;
		w[i].nlive = 0;
		w[i].seed = test_seed * 1000003u + i * 7919u + nodes;
		assert_int(pthread_create(&tid[i], NULL, worker_main, &w[i]),
			   ==, 0);
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
	stress(2, 1, 16384, 256, 64, scaled(20000), 0);
}

TEST(four_threads_four_nodes)
{
	stress(4, 4, 16384, 256, 64, scaled(20000), 0);
}

TEST(four_threads_four_nodes_kernel_pools)
{
	stress(4, 4, 16384, 256, 64, scaled(20000), VMAP_KERNEL_POOLS);
}

TEST(eight_threads_auto_nodes_small_space)
{
	/* 2048 pages against 8 x 48 ranges of up to 16: failures and full purges. */
	stress(8, 0, 2048, 64, 16, scaled(10000), 0);
}

TEST(sixteen_threads_sixteen_nodes)
{
	stress(16, 16, 65536, 512, 300, scaled(5000), 0);
}

#define VCPUS 8

struct vcpu {
	struct vmap_space *s;
	unsigned cpu;
	long pairs;
	uint64_t made, freed;
};

/* One-page to 256-page whole-space pairs, up to 8 held, as CPU @cpu. */
static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	uint64_t held[8], rng = test_seed * 31 + v->cpu, z, pages;
	unsigned n = 0;
	long i;

	vmap_set_thread_cpu((int)v->cpu);
	for (i = 0; i < v->pairs; i++) {
		z = (rng += 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
		z ^= z >> 31;
		pages = 1 + (z >> 8) % (z & 1 ? 4 : 256);
		if (n < 8 &&
		    !vmap_alloc(v->s, pages * PAGE, PAGE, 0, 0, 0, &held[n])) {
			v->made++;
			n++;
		}
		if (n && (z & 6))
			v->freed += !vmap_free(v->s, held[--n]);
	}
	while (n)
		v->freed += !vmap_free(v->s, held[--n]);
	return NULL;
}

/*
 * VCPUS threads, each acting as one CPU, on @nodes nodes: each node's
 * allocations are what its CPUs made, and the space's frees what they
 * freed, also where several CPUs share a node (its pool hits and frees
 * are counted under its locks, and none may be lost).
 */
static void vcpus_on(unsigned nodes)
{
	struct vmap_params p = { .nr_nodes = nodes, .lazy_max_pages = 4096 };
	struct vmap_stats st = { .size = sizeof(st) };
	struct vcpu v[VCPUS];
	pthread_t tid[VCPUS];
	uint64_t made, freed = 0;
	char msg[256];
	unsigned i, node;

	assert_int(vmap_space_create(BASE, BASE + 65536 * PAGE, &p, &v[0].s),
		   ==, 0);
	for (i = 0; i < VCPUS; i++) {
		v[i].s = v[0].s;
		v[i].cpu = i;
		v[i].pairs = scaled(20000);
		v[i].made = v[i].freed = 0;
		assert_int(pthread_create(&tid[i], NULL, vcpu_main, &v[i]), ==,
			   0);
	}
	for (i = 0; i < VCPUS; i++) {
		pthread_join(tid[i], NULL);
		freed += v[i].freed;
	}
	for (node = 0; node < nodes; node++) {
		for (made = 0, i = node; i < VCPUS; i += nodes)
			made += v[i].made;
		vmap_stats_get(v[0].s, (int)node, &st);
		expect_u64(st.allocs, ==, made);
		expect_u64(st.allocs + st.alloc_failures, ==,
			   st.pool_hits + st.pool_misses);
		expect_u64(st.cross_node_busy, <=, st.pool_misses);
		expect_u64(st.refilled, >=, st.pool_refills);
	}
	vmap_stats_get(v[0].s, -1, &st);
	expect_u64(st.frees, ==, freed);
	test_check(vmap_check(v[0].s, msg, sizeof(msg)) == 0, 0, "%s", msg);
	vmap_space_destroy(v[0].s);
}

TEST(virtual_cpus_counters_add_up)
{
	vcpus_on(VCPUS);
	vcpus_on(2);
}

/*
 * A walk sees a range that stays busy throughout, whatever other threads
 * allocate, free and purge below it: vmap_next() from the bottom of the
 * space and from 0 never says -ENOENT while the top range is busy (a
 * round that found its node changed once ended a walk from 0).
 */
static atomic_bool churn_stop;

static void *pool_churn(void *arg)
{
	struct vmap_space *s = arg;
	uint64_t a[8];
	int i;

	while (!atomic_load(&churn_stop)) {
		for (i = 0; i < 8; i++)
			if (vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a[i]))
				a[i] = 0;
		for (i = 0; i < 8; i++)
			if (a[i])
				vmap_free(s, a[i]);
	}
	return NULL;
}

TEST(walks_see_a_range_busy_throughout)
{
	struct vmap_params p = { .nr_nodes = 2, .lazy_max_pages = 32 };
	struct vmap_space *s;
	struct vmap_range r;
	long i, calls = scaled(100000), missed = 0;
	uint64_t top;
	pthread_t t;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, BASE + 4095 * PAGE,
			      BASE + 4096 * PAGE, 0, &top),
		   ==, 0);
	atomic_store(&churn_stop, false);
	assert_int(pthread_create(&t, NULL, pool_churn, s), ==, 0);
	for (i = 0; i < calls; i++) {
		missed += vmap_next(s, 0, &r, NULL, NULL) != 0;
		missed += vmap_next(s, BASE, &r, NULL, NULL) != 0;
	}
	atomic_store(&churn_stop, true);
	pthread_join(t, NULL);
	expect_int(missed, ==, 0);
	assert_int(vmap_free(s, top), ==, 0);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){ T(two_threads_one_node),
				 T(walks_see_a_range_busy_throughout),
				 T(four_threads_four_nodes),
				 T(four_threads_four_nodes_kernel_pools),
				 T(eight_threads_auto_nodes_small_space),
				 T(sixteen_threads_sixteen_nodes),
				 T(virtual_cpus_counters_add_up),
				 { 0 } });
}
