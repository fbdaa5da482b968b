/* SPDX-License-Identifier: MIT */
/*
 * test_nodes.c - vmap nodes (DESIGN.md sections 4-7), one behaviour per test:
 * pool size classes, head rotation, tagging on a miss and its address-based
 * alternative, restricted windows never pooled, decay arithmetic, full purge
 * and shrink, the helper formula and the inline fallback, lookups across zones
 * and the wrap to node 0, a base in a non-zero node; the default pools'
 * refills (own zones, caps, idle-only decay, an indexed space at 2^64).
 *
 * White-box only where the public API cannot reach: the helper formula,
 * holding the purge mutex to build a backlog, and failing thread starts.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "../src/os.h"
#include "harness.h"

#define PAGE 4096ull
#define ZONE (16 * PAGE)
#define BASE 0x10000000ull /* zone 4096: node 0 of 4 (and of 2) */

static struct vmap_space *nodes_space(unsigned nodes, uint64_t pages,
				      unsigned flags, uint64_t lazy_max)
{
	struct vmap_params p = { .nr_nodes = nodes,
				 .lazy_max_pages = lazy_max,
				 .flags = flags | VMAP_DETERMINISTIC |
					  VMAP_KERNEL_POOLS };
	struct vmap_space *s = NULL;

	if (vmap_space_create(BASE, BASE + pages * PAGE, &p, &s))
		return NULL;
	return s;
}

/* The default pools: a miss refills its pool from the CPU's own zones. */
static struct vmap_space *refill_space(unsigned nodes, uint64_t pages)
{
	struct vmap_params p = { .nr_nodes = nodes,
				 .lazy_max_pages = 1 << 20,
				 .flags = VMAP_DETERMINISTIC };
	struct vmap_space *s = NULL;

	if (vmap_space_create(BASE, BASE + pages * PAGE, &p, &s))
		return NULL;
	return s;
}

static unsigned zone_node(uint64_t addr, unsigned nodes)
{
	return (unsigned)((addr / ZONE) % nodes);
}

static struct vmap_stats node_stats(struct vmap_space *s, int node)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, node, &st);
	return st;
}

/* Wait (10 s at most) for the drain to purge every lazy range of @s. */
static void wait_until_nothing_lazy(struct vmap_space *s)
{
	int spins;

	for (spins = 0; spins < 10000 && node_stats(s, -1).lazy_pages; spins++)
		usleep(1000);
}

/* After a purge and a shrink, all @pages of @s are free; then it goes. */
static void expect_all_free_then_destroy(struct vmap_space *s, uint64_t pages)
{
	assert_int(vmap_purge(s), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	expect_u64(node_stats(s, -1).free_bytes, ==, pages * PAGE);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

static uint64_t alloc_on(struct vmap_space *s, int cpu, uint64_t pages,
			 uint64_t align)
{
	uint64_t a = 0;

	vmap_set_thread_cpu(cpu);
	if (vmap_alloc(s, pages * PAGE, align, 0, 0, 0, &a))
		a = ~0ull;
	vmap_set_thread_cpu(-1);
	return a;
}

TEST(pool_class_is_page_count)
{
	struct vmap_space *s = nodes_space(4, 4096, 0, 1 << 20);
	static const uint64_t sizes[] = { 1, 2, 256, 257 };
	uint64_t a[4];
	int i;

	assert_true(s != NULL);
	for (i = 0; i < 4; i++)
		a[i] = alloc_on(s, 0, sizes[i], PAGE);
	for (i = 0; i < 4; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	expect_u64(node_stats(s, 0).pooled_now, ==,
		   3); /* 257 pages: not pooled */
	expect_u64(node_stats(s, 0).pooled_pages, ==, 1 + 2 + 256);
	expect_u64(node_stats(s, -1).pooled_pages, ==, 1 + 2 + 256);
	/* Each size comes back from its own class. */
	expect_u64(alloc_on(s, 0, 2, PAGE), ==, a[1]);
	expect_u64(alloc_on(s, 0, 256, PAGE), ==, a[2]);
	expect_u64(alloc_on(s, 0, 1, PAGE), ==, a[0]);
	expect_u64(node_stats(s, 0).pool_hits, ==, 3);
	expect_u64(node_stats(s, 0).pooled_now, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(misaligned_head_rotates_to_tail)
{
	struct vmap_space *s = nodes_space(4, 4096, 0, 1 << 20);
	uint64_t a0, a1, x;

	assert_true(s != NULL);
	a0 = alloc_on(s, 0, 1, PAGE);
	a1 = alloc_on(s, 0, 1, PAGE);
	assert_u64(a0, ==, BASE);	 /* 8 KiB aligned */
	assert_u64(a1, ==, BASE + PAGE); /* not */
	vmap_free(s, a0);
	vmap_free(s, a1);
	vmap_purge(s); /* LIFO: a1 is the head */
	x = alloc_on(s, 0, 1, 2 * PAGE);
	expect_u64(x, !=, a0); /* head a1 misaligned: rotated, miss */
	expect_u64(x, !=, a1);
	expect_u64(node_stats(s, 0).pool_misses, ==, 3);
	expect_u64(alloc_on(s, 0, 1, 2 * PAGE), ==, a0); /* a0 is head now */
	expect_u64(alloc_on(s, 0, 1, PAGE), ==, a1);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

static void tagging_case(unsigned flags, int expect_node)
{
	struct vmap_space *s = nodes_space(4, 4096, flags, 1 << 20);
	struct vmap_range r;
	uint64_t a;

	assert_true(s != NULL);
	a = alloc_on(s, 1, 1, PAGE); /* CPU 1: node 1; pool empty: miss */
	assert_u64(a, ==, BASE);     /* address in node 0's zone */
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.node, ==, 0); /* busy: the node of its start */
	expect_int(r.tag_node, ==, expect_node);
	expect_u64(node_stats(s, 1).cross_node_busy, ==, 1);
	vmap_free(s, a);
	vmap_purge(s);
	expect_u64(node_stats(s, expect_node).pooled_now, ==, 1);
	expect_u64(node_stats(s, 1 - expect_node).pooled_now, ==, 0);
	expect_u64(node_stats(s, -1).pooled_cross_node, ==, expect_node == 1);
	assert_space_ok(s);
	/* Only an allocation on the pool's node sees it. */
	expect_u64(alloc_on(s, 1 - expect_node, 1, PAGE), !=, a);
	expect_u64(alloc_on(s, expect_node, 1, PAGE), ==, a);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(miss_tags_allocating_node)
{
	tagging_case(0, 1);
}

TEST(address_tag_alternative)
{
	tagging_case(VMAP_TAG_BY_ADDRESS, 0);
}

TEST(restricted_window_never_pooled)
{
	struct vmap_space *s = nodes_space(4, 4096, 0, 1 << 20);
	struct vmap_range r;
	uint64_t a;

	assert_true(s != NULL);
	assert_int(
		vmap_alloc(s, PAGE, PAGE, BASE + ZONE, BASE + 2 * ZONE, 0, &a),
		==, 0);
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.tag_node, ==, -1);
	expect_int(r.node, ==, 1);
	vmap_free(s, a);
	vmap_purge(s);
	expect_u64(node_stats(s, -1).pooled_now, ==, 0);
	expect_u64(node_stats(s, -1).free_bytes, ==, 4096 * PAGE);
	/* A window equal to the whole space counts as the whole space. */
	assert_int(vmap_alloc(s, PAGE, PAGE, BASE, BASE + 4096 * PAGE, 0, &a),
		   ==, 0);
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.tag_node, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(decay_gives_back_a_quarter)
{
	static const uint64_t expect_len[] = { 10, 8, 6, 5, 4, 3, 3, 3 };
	struct vmap_space *s = nodes_space(2, 4096, 0, 1 << 20);
	uint64_t a[10];
	int i;

	assert_true(s != NULL);
	for (i = 0; i < 10; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	for (i = 0; i < 10; i++)
		vmap_free(s, a[i]);
	for (i = 0; i < 8; i++) {
		vmap_purge(s);
		expect_u64(node_stats(s, 0).pooled_now, ==, expect_len[i]);
		assert_space_ok(s);
	}
	expect_u64(node_stats(s, 0).decayed_vas, ==, 7);
	vmap_space_destroy(s);
}

static void fill_pools(struct vmap_space *s, int nodes, int per_node)
{
	uint64_t a[64];
	int cpu, i;

	for (cpu = 0; cpu < nodes; cpu++) {
		for (i = 0; i < per_node; i++)
			a[i] = alloc_on(s, cpu, 1 + (uint64_t)i % 3, PAGE);
		for (i = 0; i < per_node; i++)
			vmap_free(s, a[i]);
	}
	vmap_purge(s);
}

TEST(shrink_empties_every_pool)
{
	struct vmap_space *s = nodes_space(4, 4096, 0, 1 << 20);

	assert_true(s != NULL);
	fill_pools(s, 4, 12);
	expect_u64(node_stats(s, -1).pooled_now, ==, 48);
	assert_int(vmap_shrink(s), ==, 0);
	expect_u64(node_stats(s, -1).pooled_now, ==, 0);
	expect_u64(node_stats(s, -1).free_bytes, ==, 4096 * PAGE);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

static int notifier_calls;

static void count_notifier(struct vmap_space *s, void *cookie, uint64_t *freed)
{
	notifier_calls++;
}

TEST(full_purge_on_failure_merges_pools)
{
	/* 96 pages, all pooled as 1-3 page ranges: a 96-page request needs them all. */
	struct vmap_space *s = nodes_space(4, 96, 0, 1 << 20);
	uint64_t a;

	assert_true(s != NULL);
	fill_pools(s, 4, 12);
	assert_u64(node_stats(s, -1).pooled_now, ==, 48);
	vmap_notifier_register(s, count_notifier, NULL);
	notifier_calls = 0;
	assert_int(vmap_alloc(s, 96 * PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, BASE);
	expect_u64(node_stats(s, -1).full_purges, ==, 1);
	expect_int(notifier_calls, ==, 0);
	expect_u64(node_stats(s, -1).pooled_now, ==, 0);
	vmap_free(s, a);
	/* Skip-populate: a full purge does not refill the pools. */
	expect_int(vmap_alloc(s, 97 * PAGE, PAGE, 0, 0, 0, &a), ==, -EINVAL);
	assert_int(vmap_alloc(s, 2 * PAGE, PAGE, BASE, BASE + 96 * PAGE - PAGE,
			      0, &a),
		   ==, 0);
	expect_u64(node_stats(s, -1).pooled_now, ==, 0);
	expect_int(notifier_calls, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(helper_count_formula)
{
	/* clamp(lazy / lazy_max, 1, marked) - 1 */
	expect_int(purge_helper_count(0, 100, 4), ==, 0);
	expect_int(purge_helper_count(150, 100, 4), ==, 0);
	expect_int(purge_helper_count(200, 100, 4), ==, 1);
	expect_int(purge_helper_count(399, 100, 4), ==, 2);
	expect_int(purge_helper_count(10000, 100, 4), ==, 3);
	expect_int(purge_helper_count(10000, 100, 1), ==, 0);
}

static void no_flush(void *cookie, uint64_t start, uint64_t end)
{
	(void)cookie;
	(void)start;
	(void)end;
}

/*
 * Build a backlog of @per_node pages on each of 4 nodes (lazy_max_pages
 * is 16) while the test holds the purge mutex, so the drain thread waits;
 * then let it purge.  The space has a flush callback, so that its frees
 * never purge themselves (one would wait for the mutex this thread holds).
 * With @noted, a purge (of nothing) comes between the allocations and the
 * frees, so that at the backlog's purge no node has allocated since.
 */
static void backlog_purge(bool threads_fail, int per_node, uint32_t flags,
			  bool noted, uint64_t *helpers)
{
	struct vmap_params p = { .nr_nodes = 4,
				 .lazy_max_pages = 16,
				 .flags = flags,
				 .flush = no_flush };
	struct vmap_space *s;
	uint64_t a[4][16];
	int cpu, i;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	for (cpu = 0; cpu < 4; cpu++)
		for (i = 0; i < per_node; i++)
			a[cpu][i] = alloc_on(s, cpu, 1, PAGE);
	if (noted)
		vmap_purge(s);
	vlock_take(&s->purge_lock);
	for (cpu = 0; cpu < 4; cpu++) {
		vmap_set_thread_cpu(cpu);
		for (i = 0; i < per_node; i++)
			assert_int(vmap_free(s, a[cpu][i]), ==, 0);
	}
	vmap_set_thread_cpu(-1);
	if (threads_fail)
		fault_arm(1u << FAULT_THREAD, 1, true);
	vlock_release(&s->purge_lock);
	wait_until_nothing_lazy(s);
	fault_disarm();
	expect_u64(node_stats(s, -1).lazy_pages, ==, 0);
	expect_u64(node_stats(s, -1).purged_vas, ==, 4 * (uint64_t)per_node);
	*helpers = node_stats(s, -1).purge_helpers;
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * The helpers a backlog of four nodes' worth takes when @busy of the CPUs
 * this thread may use are known busy (the purging thread's among them).
 */
static uint64_t helpers_beside(unsigned busy)
{
	unsigned cpus = os_usable_cpus();

	return cpus <= busy ? 0 : cpus - busy < 3 ? cpus - busy : 3;
}

/*
 * 64 / 16 = 4 nodes' worth: the kernel's formula gives 3 helpers, which
 * take the CPUs that neither the allocating nodes nor the purge keep
 * busy: with no node allocating since the last purge, all but the
 * purge's; with all four, whose CPUs include the purge's, all but four.
 */
TEST(helpers_purge_a_backlog)
{
	uint64_t helpers;

	backlog_purge(false, 16, 0, true, &helpers);
	expect_u64(helpers, ==, helpers_beside(1));
	backlog_purge(false, 16, 0, false, &helpers);
	expect_u64(helpers, ==, helpers_beside(4));
	backlog_purge(false, 16, VMAP_KERNEL_POOLS, false, &helpers);
	expect_u64(helpers, ==, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 3 : 0);
}

/*
 * Three thresholds' worth: the kernel's formula gives 2 helpers; pools
 * that refill themselves take none until the backlog is over the bound.
 */
TEST(refilling_pools_take_helpers_past_the_bound)
{
	uint64_t helpers;

	backlog_purge(false, 12, VMAP_KERNEL_POOLS, true, &helpers);
	expect_u64(helpers, ==, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 0);
	backlog_purge(false, 12, 0, true, &helpers);
	expect_u64(helpers, ==, 0);
}

static void backlog_purge_without_threads(void)
{
	uint64_t helpers;

	backlog_purge(true, 16, 0, true, &helpers);
	expect_u64(helpers, ==, 0);
}

/*
 * Worker threads are the process's and outlive spaces, so this runs in a
 * forked child, which starts with none and cannot start any.  Not under
 * TSan: the drain's worker starts in the child, which TSan refuses after
 * a multi-threaded fork.
 */
TEST(inline_when_helpers_cannot_start)
{
#ifdef __SANITIZE_THREAD__
	test_skip(
		"TSan cannot follow a child that starts threads; runs under ASan");
#endif
	expect_int(test_run_forked(backlog_purge_without_threads, 60), ==, 0);
}

TEST(lookup_walks_back_and_wraps)
{
	struct vmap_space *s = nodes_space(4, 4096, 0, 1 << 20);
	struct vmap_range r;
	uint64_t a, b;

	assert_true(s != NULL);
	/* 40 pages from node 0's zone into nodes 1 and 2. */
	assert_int(vmap_alloc(s, 40 * PAGE, PAGE, BASE, BASE + ZONE * 8, 0, &a),
		   ==, 0);
	assert_int(vmap_find(s, a + 20 * PAGE, &r), ==, 0);
	expect_u64(r.start, ==, a);
	expect_int(r.node, ==, 0);
	assert_int(vmap_find(s, a + 39 * PAGE, &r), ==, 0);
	expect_u64(r.start, ==, a);
	/* From node 3's zone into the next zone, node 0: the walk wraps. */
	assert_int(vmap_alloc(s, 20 * PAGE, PAGE, BASE + 7 * ZONE,
			      BASE + 9 * ZONE, 0, &b),
		   ==, 0);
	assert_u64(b, ==, BASE + 7 * ZONE);
	assert_int(vmap_find(s, BASE + 8 * ZONE + PAGE, &r), ==, 0);
	expect_u64(r.start, ==, b);
	expect_int(r.node, ==, 3);
	/* Longer than nr_nodes zones: every node is walked. */
	assert_int(vmap_alloc(s, 100 * PAGE, PAGE, BASE + 16 * ZONE,
			      BASE + 32 * ZONE, 0, &a),
		   ==, 0);
	assert_int(vmap_find(s, a + 99 * PAGE, &r), ==, 0);
	expect_u64(r.start, ==, a);
	assert_int(vmap_free(s, b), ==, 0);
	expect_int(vmap_find(s, BASE + 8 * ZONE + PAGE, &r), ==, -ENOENT);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(base_in_a_non_zero_node)
{
	struct vmap_params p = {
		.nr_nodes = 4, .flags = VMAP_DETERMINISTIC | VMAP_KERNEL_POOLS
	};
	uint64_t base = BASE + 2 * ZONE + 3 * PAGE;
	struct vmap_space *s;
	struct vmap_range r;
	uint64_t a;

	assert_int(vmap_space_create(base, base + 1024 * PAGE, &p, &s), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, base);
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.node, ==, 2);
	expect_int(r.tag_node, ==, 0);
	vmap_free(s, a);
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 1);
	expect_u64(node_stats(s, 0).pooled_cross_node, ==, 1);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * CPU 1 misses: it gets the lowest fit (in node 0's zone, tagged by its
 * address), and its pool a batch of 256 ranges, all in node 1's zones,
 * which the next 256 allocations take without a cross-node busy insert.
 * Freed and purged, each range goes back to the pool of its zone's node
 * if that pool was taken from: node 0's never was, so its range goes to
 * the heap.
 */
TEST(refill_takes_batch_from_own_zones)
{
	struct vmap_space *s = refill_space(4, 65536);
	static uint64_t a[257];
	struct vmap_range r;
	unsigned i, own = 0;

	assert_true(s != NULL);
	a[0] = alloc_on(s, 1, 1, PAGE);
	expect_u64(a[0], ==, BASE);
	assert_int(vmap_find(s, a[0], &r), ==, 0);
	expect_int(r.tag_node, ==, 0);
	expect_u64(node_stats(s, 1).pool_refills, ==, 1);
	expect_u64(node_stats(s, 1).refilled, ==, 256);
	expect_u64(node_stats(s, 1).pooled_now, ==, 256);
	for (i = 1; i < 257; i++) {
		a[i] = alloc_on(s, 1, 1, PAGE);
		own += zone_node(a[i], 4) == 1;
	}
	expect_int(own, ==, 256);
	expect_u64(node_stats(s, 1).pool_hits, ==, 256);
	expect_u64(node_stats(s, 1).cross_node_busy, ==, 1);
	expect_u64(node_stats(s, 1).other_node_lock, ==, 1);
	assert_space_ok(s);
	for (i = 0; i < 257; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	expect_u64(node_stats(s, 0).pooled_now, ==, 0);
	expect_u64(node_stats(s, 1).pooled_now, ==, 256);
	expect_u64(node_stats(s, -1).pooled_cross_node, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * Refilling pools decay only when idle: a purge after a request (a miss
 * or a hit) leaves the pool alone, one after none gives back a quarter.
 */
TEST(refilled_pool_decays_only_when_idle)
{
	struct vmap_space *s = refill_space(2, 65536);

	assert_true(s != NULL);
	alloc_on(s, 0, 1, PAGE); /* miss: the pool gets 256 */
	assert_u64(node_stats(s, 0).pooled_now, ==, 256);
	vmap_purge(s); /* the miss was a request */
	expect_u64(node_stats(s, 0).pooled_now, ==, 256);
	vmap_purge(s); /* none since: idle */
	expect_u64(node_stats(s, 0).pooled_now, ==, 192);
	alloc_on(s, 0, 1, PAGE); /* a hit */
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 191);
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 144);
	expect_u64(node_stats(s, 0).decayed_vas, ==, 64 + 47);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* Three one-page pairs on @cpu's node, then a purge. */
static void purge_after_three_pairs_on(struct vmap_space *s, int cpu)
{
	int i;

	for (i = 0; i < 3; i++)
		assert_int(vmap_free(s, alloc_on(s, cpu, 1, PAGE)), ==, 0);
	vmap_purge(s);
}

/*
 * An allocating node's idle pools decay only once its lazy sets have held
 * a whole purge's pages since its last decay point.  Node 0 keeps a pool
 * of two-page ranges unused while it frees one page per purge and node 1
 * three: 1 of every 4 pages purged is node 0's, so its idle pool gives
 * back a quarter at every 4th purge, not at each.
 */
TEST(busy_nodes_decay_once_per_purge_of_their_own)
{
	struct vmap_space *s = refill_space(2, 65536);
	uint64_t kept[3], pooled, two_pages;
	int round, i;

	assert_true(s != NULL);
	/*
	 * Misses, kept busy: a missing allocation's own range is the lowest
	 * fit, which may lie in the other node's zones and would be pooled
	 * there once freed.  Every later allocation hits its own pool.
	 */
	pooled = node_stats(s, 0).pooled_now;
	kept[0] = alloc_on(s, 0, 2, PAGE);
	two_pages = node_stats(s, 0).pooled_now - pooled;
	assert_u64(two_pages, >=, 4);
	kept[1] = alloc_on(s, 0, 1, PAGE);
	kept[2] = alloc_on(s, 1, 1, PAGE);
	vmap_purge(s); /* nothing lazy: no decay point */
	assert_int(vmap_free(s, alloc_on(s, 0, 1, PAGE)), ==, 0);
	vmap_purge(s); /* node 0 held all of it: a decay point */
	pooled = node_stats(s, 0).pooled_now;
	for (round = 1; round <= 8; round++) {
		assert_int(vmap_free(s, alloc_on(s, 0, 1, PAGE)), ==, 0);
		purge_after_three_pairs_on(s, 1);
		if (round % 4 == 0) {
			pooled -= two_pages / 4;
			two_pages -= two_pages / 4;
		}
		expect_u64(node_stats(s, 0).pooled_now, ==, pooled);
	}
	for (i = 0; i < 3; i++)
		assert_int(vmap_free(s, kept[i]), ==, 0);
	assert_space_ok(s);
	expect_all_free_then_destroy(s, 65536);
}

/*
 * A node that allocates a trickle and frees nothing never holds a purge's
 * pages, yet comes to a decay point after 4 purges per node (8 here): its
 * idle pool gives back a quarter then, not only at a full purge.
 */
TEST(trickling_node_decays_after_four_purges_per_node)
{
	struct vmap_space *s = refill_space(2, 65536);
	uint64_t kept[11], two_pages, one_page, pooled;
	int round, i;

	assert_true(s != NULL);
	kept[0] = alloc_on(s, 0, 2, PAGE); /* misses: batches, kept busy */
	two_pages = node_stats(s, 0).pooled_now;
	kept[1] = alloc_on(s, 0, 1, PAGE);
	one_page = node_stats(s, 0).pooled_now - two_pages;
	kept[2] = alloc_on(s, 1, 1, PAGE);
	vmap_purge(s);
	vmap_purge(s); /* node 0 idle: a quarter of every pool */
	two_pages -= two_pages / 4;
	pooled = two_pages + one_page - one_page / 4;
	expect_u64(node_stats(s, 0).pooled_now, ==, pooled);
	for (round = 1; round <= 8; round++) {
		kept[2 + round] = alloc_on(s, 0, 1, PAGE); /* a hit, kept */
		purge_after_three_pairs_on(s, 1);
		pooled--;
		if (round == 8)
			pooled -= two_pages / 4;
		expect_u64(node_stats(s, 0).pooled_now, ==, pooled);
	}
	for (i = 0; i < 11; i++)
		assert_int(vmap_free(s, kept[i]), ==, 0);
	assert_space_ok(s);
	expect_all_free_then_destroy(s, 65536);
}

/*
 * A purge adds to a refilling pool at most twice what was taken from it
 * since the purge before (hits and misses); the rest goes to the heap.
 * A miss and 30 hits: the 20 freed are all pooled; 3 hits: 6 of the 11
 * freed are; none: none of the 3 freed, and the idle pool gives back a
 * quarter besides.
 */
TEST(purge_fills_pools_by_demand)
{
	struct vmap_space *s = refill_space(2, 65536);
	static uint64_t a[34];
	uint64_t free_before;
	unsigned i;

	assert_true(s != NULL);
	for (i = 0; i < 31; i++) /* one miss, 30 hits */
		a[i] = alloc_on(s, 0, 1, PAGE);
	assert_u64(node_stats(s, 0).pool_hits, ==, 30);
	assert_u64(node_stats(s, 0).pooled_now, ==, 226);
	for (i = 0; i < 20; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 246);

	for (i = 31; i < 34; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	for (i = 20; i < 31; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	free_before = node_stats(s, -1).free_bytes;
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 243 + 6);
	expect_u64(node_stats(s, -1).free_bytes, ==, free_before + 5 * PAGE);

	for (i = 31; i < 34; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	free_before = node_stats(s, -1).free_bytes;
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 249 - 249 / 4);
	expect_u64(node_stats(s, -1).free_bytes, ==,
		   free_before + (3 + 249 / 4) * PAGE);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * A miss that gets no batch (aligned beyond a zone) is demand too: the
 * range it freed is pooled at the next purge, and the next request of
 * its class hits.
 */
TEST(miss_without_batch_is_demand)
{
	struct vmap_space *s = refill_space(2, 65536);
	uint64_t a;

	assert_true(s != NULL);
	a = alloc_on(s, 0, 8, 2 * ZONE);
	assert_int(zone_node(a, 2), ==, 0);
	assert_u64(node_stats(s, 0).pool_refills, ==, 0);
	assert_int(vmap_free(s, a), ==, 0);
	vmap_purge(s);
	expect_u64(node_stats(s, 0).pooled_now, ==, 1);
	expect_u64(alloc_on(s, 0, 8, 2 * ZONE), ==, a);
	expect_u64(node_stats(s, 0).pool_hits, ==, 1);
	assert_int(vmap_free(s, a), ==, 0);
	expect_all_free_then_destroy(s, 65536);
}

/* Alignments up to a zone are batched; larger ones miss alone. */
TEST(refill_only_up_to_zone_alignment)
{
	struct vmap_space *s = refill_space(4, 65536);

	assert_true(s != NULL);
	alloc_on(s, 0, 1, 2 * ZONE);
	expect_u64(node_stats(s, 0).pool_refills, ==, 0);
	alloc_on(s, 0, 1, ZONE);
	expect_u64(node_stats(s, 0).pool_refills, ==, 1);
	/* 65534 free pages / (64 x 4 nodes): the cap, not the 256 wanted. */
	expect_u64(node_stats(s, 0).pooled_now, ==, 255);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* A refill takes at most 1/64 of the free heap per node. */
TEST(refill_capped_in_small_space)
{
	struct vmap_space *s = refill_space(4, 4096);

	assert_true(s != NULL);
	alloc_on(s, 0, 1, PAGE);
	expect_u64(node_stats(s, 0).refilled, ==, 16); /* 4096 / (64 x 4) */
	expect_u64(node_stats(s, 0).pooled_now, ==, 16);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* An allocation that fails refills nothing, and leaves the space as it was. */
TEST(refused_allocation_refills_nothing)
{
	struct vmap_space *s = refill_space(4, 64);
	uint64_t a, free_before;

	assert_true(s != NULL);
	a = alloc_on(s, 0, 48, PAGE); /* too large to batch here */
	assert_u64(a, ==, BASE);
	free_before = node_stats(s, -1).free_bytes;
	expect_u64(alloc_on(s, 2, 32, PAGE), ==, ~0ull);
	expect_u64(node_stats(s, -1).pool_refills, ==, 0);
	expect_u64(node_stats(s, -1).free_bytes, ==, free_before);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * Refills in a space with the best-fit index that ends at 2^64.  With the
 * upper half reserved but its last four zones (one per node), the batches
 * that start in the middle go past the reservation into those zones, and
 * one range ends at 2^64 (end 0); the index keeps every block, and once
 * everything is freed, purged and shrunk the space is whole.
 */
TEST(refill_in_an_indexed_space_at_the_top)
{
	struct vmap_params p = { .nr_nodes = 4,
				 .lazy_max_pages = 1 << 20,
				 .flags = VMAP_DETERMINISTIC |
					  VMAP_BESTFIT_INDEX };
	struct vmap_request req = { .size = 3 * PAGE, .flags = VMAP_BESTFIT };
	const uint64_t base = 0 - 4096 * PAGE, mid = base + 2048 * PAGE;
	static uint64_t a[400];
	struct vmap_space *s;
	uint64_t top = 0, b;
	unsigned i;

	assert_int(vmap_space_create(base, 0, &p, &s), ==, 0);
	assert_int(vmap_reserve(s, mid, 0 - 4 * ZONE - mid, 0), ==, 0);
	for (i = 0; i < 400; i++) {
		a[i] = alloc_on(s, (int)(i % 4), 1, PAGE);
		assert_u64(a[i], !=, ~0ull);
		top = a[i] > top ? a[i] : top;
	}
	expect_u64(node_stats(s, -1).pool_refills, >=, 4);
	expect_u64(top, ==, 0 - PAGE);
	assert_space_ok(s);
	for (i = 0; i < 400; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	assert_int(vmap_free(s, mid), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	assert_space_ok(s);
	assert_int(vmap_xalloc(s, &req, &b), ==, 0);
	assert_int(vmap_free(s, b), ==, 0);
	expect_all_free_then_destroy(s, 4096);
}

/*
 * The kernel keeps no pools in a one-node space; the default does, since
 * a pool hit spares the heap's search, split and merge there too.
 */
TEST(one_node_pools_only_by_default)
{
	struct vmap_space *s = nodes_space(1, 4096, 0, 1 << 20);
	struct vmap_range r;
	uint64_t a;

	assert_true(s != NULL);
	a = alloc_on(s, 3, 1, PAGE);
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.tag_node, ==, -1);
	vmap_free(s, a);
	vmap_purge(s);
	expect_u64(node_stats(s, -1).pooled_now, ==, 0);
	expect_u64(node_stats(s, -1).pool_misses, ==, 0);
	vmap_space_destroy(s);

	s = refill_space(1, 4096);
	assert_true(s != NULL);
	a = alloc_on(s, 3, 1, PAGE);
	assert_int(vmap_find(s, a, &r), ==, 0);
	expect_int(r.tag_node, ==, 0);
	expect_u64(node_stats(s, -1).pool_misses, ==, 1);
	expect_u64(node_stats(s, -1).pooled_now, >, 0); /* the refill */
	vmap_free(s, a);
	vmap_purge(s);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_u64(node_stats(s, -1).pool_hits, ==, 1);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * Freed ranges stay idle in their busy trees (lazy, then pooled): look-ups
 * and walks must see only the busy ones.  Two nodes, ranges from both
 * CPUs, a random half freed, some purged into pools; vmap_next() from the
 * bottom returns exactly the busy ranges in address order, vmap_find()
 * finds an inner address of each and none of the freed, and a space
 * ending at 2^64 whose top range is idle ends its walk there.
 */
static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

TEST(walks_and_lookups_skip_idle_ranges)
{
	enum { N = 600 };
	static uint64_t a[N], busy[N];
	struct vmap_params p = { .nr_nodes = 2,
				 .lazy_max_pages = 1 << 20,
				 .flags = VMAP_DETERMINISTIC };
	struct vmap_space *s;
	struct vmap_range r;
	uint64_t pos, top;
	size_t i, n = 0, seen = 0;

	assert_int(vmap_space_create(BASE, BASE + 8192 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < N; i++) {
		a[i] = alloc_on(s, (int)(i % 2), 1 + i % 3, PAGE);
		assert_u64(a[i], !=, ~0ull);
	}
	for (i = 0; i < N; i++) {
		if (rnd() % 2) {
			busy[n++] = a[i];
			continue;
		}
		assert_int(vmap_free(s, a[i]), ==, 0);
		if (i == N / 2)
			assert_int(vmap_purge(s), ==, 0); /* some pooled */
	}
	assert_space_ok(s);
	expect_u64(node_stats(s, -1).pooled_now, >, 0);
	qsort(busy, n, sizeof(busy[0]), cmp_u64);
	for (pos = BASE; !vmap_next(s, pos, &r, NULL, NULL); pos = r.end) {
		assert_u64(seen, <, n);
		expect_u64(r.start, ==, busy[seen]);
		seen++;
	}
	expect_u64(seen, ==, n);
	for (i = 0; i < N; i++) {
		bool is_busy = bsearch(&a[i], busy, n, sizeof(busy[0]),
				       cmp_u64) != NULL;

		expect_int(vmap_find(s, a[i] + PAGE - 1, &r), ==,
			   is_busy ? 0 : -ENOENT);
	}
	vmap_space_destroy(s);

	assert_int(vmap_space_create(0 - 64 * PAGE, 0, &p, &s), ==, 0);
	vmap_set_thread_cpu(0);
	assert_int(vmap_alloc(s, 32 * PAGE, PAGE, 0, 0, 0, &pos), ==, 0);
	assert_int(vmap_alloc(s, 32 * PAGE, PAGE, 0, 0, 0, &top), ==, 0);
	vmap_set_thread_cpu(-1);
	expect_u64(top + 32 * PAGE, ==, 0);
	assert_int(vmap_free(s, top), ==, 0);
	assert_int(vmap_next(s, pos, &r, NULL, NULL), ==, 0);
	expect_u64(r.start, ==, pos);
	expect_int(vmap_next(s, r.end, &r, NULL, NULL), ==, -ENOENT);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * The default pools keep at most two purges' worth (2 x lazy_max_pages
 * pages) of each size class over all nodes; the rest of a purge goes to
 * the heap.  One thread frees 1 000 one-page ranges and allocates none:
 * the kernel's pools keep more (idle pools lose only a quarter a purge).
 */
static uint64_t pooled_after_frees(unsigned flags)
{
	struct vmap_params p = { .nr_nodes = 2,
				 .lazy_max_pages = 64,
				 .flags = flags | VMAP_DETERMINISTIC };
	struct vmap_space *s;
	uint64_t a[1000], pooled, extra;
	int i;

	assert_int(vmap_space_create(BASE, BASE + 2048 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 1000; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	for (i = 0; i < 1000; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	pooled = node_stats(s, -1).pooled_pages;
	assert_space_ok(s);
	/* The failing allocation gives everything back, in either design. */
	expect_int(vmap_alloc(s, 2048 * PAGE, PAGE, 0, 0, 0, &extra), ==, 0);
	expect_u64(node_stats(s, -1).pooled_pages, ==, 0);
	vmap_free(s, extra);
	assert_space_ok(s);
	vmap_space_destroy(s);
	return pooled;
}

TEST(pools_hold_two_purges_worth)
{
	uint64_t pooled = pooled_after_frees(0);

	expect_u64(pooled, >, 0);
	expect_u64(pooled, <=, 2 * 64);
	expect_u64(pooled_after_frees(VMAP_KERNEL_POOLS), >, 2 * 64);
}

/*
 * Purges under stress, from 4 threads that allocate and free 1-4 pages in
 * a space without callbacks, where frees purge themselves when the drain
 * falls behind (and, with one node, at the threshold).  After each free
 * the lazy count is within 3 thresholds plus one range per thread that
 * may have landed since; nothing is lost: the checker passes, and once
 * everything is freed, purged and shrunk every page is free again.  Two
 * purges never run at once by the purge mutex, which debug builds check
 * at every purge (vlock_assert_held) and TSan watches.
 */
#define STRESS_THREADS 4
#define STRESS_LAZY_MAX 32
#define STRESS_MAX_PAGES 4

struct stress_worker {
	struct vmap_space *s;
	uint64_t seed, worst_lazy;
	int failures;
};

static void *stress_work(void *arg)
{
	struct stress_worker *w = arg;
	struct vmap_stats st = { .size = sizeof(st) };
	uint64_t a[64], pages;
	int round, i;

	for (round = 0; round < 200; round++) {
		for (i = 0; i < 64; i++) {
			pages = 1 + rnd_from(&w->seed) % STRESS_MAX_PAGES;
			if (vmap_alloc(w->s, pages * PAGE, PAGE, 0, 0, 0,
				       &a[i]))
				w->failures++;
		}
		for (i = 0; i < 64; i++) {
			if (vmap_free(w->s, a[i]))
				w->failures++;
			vmap_stats_get(w->s, -1, &st);
			if (st.lazy_pages > w->worst_lazy)
				w->worst_lazy = st.lazy_pages;
		}
	}
	return NULL;
}

static void purge_stress(unsigned nodes)
{
	struct vmap_params p = { .nr_nodes = nodes,
				 .lazy_max_pages = STRESS_LAZY_MAX };
	struct stress_worker w[STRESS_THREADS];
	pthread_t t[STRESS_THREADS];
	struct vmap_space *s;
	int i;

	assert_int(vmap_space_create(BASE, BASE + 65536 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < STRESS_THREADS; i++) {
		w[i] = (struct stress_worker){ .s = s, .seed = test_seed + i };
		assert_int(pthread_create(&t[i], NULL, stress_work, &w[i]), ==,
			   0);
	}
	/*
	 * A free that adds its node's gathered pages (at most a batch) and
	 * its own to the count, past three thresholds, purges before
	 * returning; each thread may be between the two.  Besides, each
	 * node may hold a batch that the count does not see; every node's
	 * batch together is at most an eighth of the threshold.
	 */
	for (i = 0; i < STRESS_THREADS; i++) {
		pthread_join(t[i], NULL);
		expect_int(w[i].failures, ==, 0);
		expect_u64(w[i].worst_lazy, <=,
			   3 * STRESS_LAZY_MAX +
				   STRESS_THREADS * STRESS_MAX_PAGES +
				   (STRESS_THREADS + 1) * STRESS_LAZY_MAX / 8);
	}
	assert_space_ok(s);
	expect_all_free_then_destroy(s, 65536);
}

TEST(purges_in_frees_lose_nothing)
{
	purge_stress(1);
	purge_stress(2);
}

/*
 * How many one-page frees into one node make the lazy count pass @pages:
 * a node's frees add to it once they have gathered more than a batch.
 */
static int frees_to_pass(struct vmap_space *s, int pages)
{
	int every = (int)s->lazy_batch_pages + 1;

	return (pages / every + 1) * every;
}

/*
 * A node's frees add to the space's lazy count once they have gathered
 * more than a batch (lazy_max_pages / 8 / nodes: 4 pages here); the
 * statistics and the checker count the gathered pages too, and a purge
 * adds them when it takes the node's lazy set.  The kernel's pools and
 * deterministic mode count every free.
 */
TEST(frees_count_a_batch_at_a_time)
{
	struct vmap_params p = { .nr_nodes = 2, .lazy_max_pages = 64 };
	struct vmap_space *s;
	uint64_t miss, a[7];
	int i;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	assert_u64(s->lazy_batch_pages, ==, 4);
	miss = alloc_on(s, 0, 1, PAGE); /* kept: it may lie in node 1 */
	for (i = 0; i < 7; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	for (i = 0; i < 4; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 4);
	expect_u64(atomic_load(&s->lazy_nr), ==, 0);
	assert_space_ok(s);
	assert_int(vmap_free(s, a[4]), ==, 0);
	expect_u64(atomic_load(&s->lazy_nr), ==, 5);
	for (i = 5; i < 7; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 7);
	assert_space_ok(s);
	vmap_purge(s);
	expect_u64(node_stats(s, -1).purged_pages, ==, 7);
	expect_u64(atomic_load(&s->lazy_nr), ==, 0);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 0);
	assert_int(vmap_free(s, miss), ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);

	p.flags = VMAP_KERNEL_POOLS;
	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	expect_u64(s->lazy_batch_pages, ==, 0);
	assert_int(vmap_free(s, alloc_on(s, 0, 1, PAGE)), ==, 0);
	expect_u64(atomic_load(&s->lazy_nr), ==, 1);
	vmap_space_destroy(s);
	p.flags = VMAP_DETERMINISTIC;
	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	expect_u64(s->lazy_batch_pages, ==, 0);
	vmap_space_destroy(s);
}

struct freer {
	struct vmap_space *s;
	const uint64_t *addr;
	int n;
};

static void *free_all(void *arg)
{
	struct freer *f = arg;
	int i;

	for (i = 0; i < f->n; i++)
		vmap_free(f->s, f->addr[i]);
	return NULL;
}

/*
 * The drain cannot purge while the test holds the purge mutex; a thread
 * frees 4 thresholds' worth meanwhile.  The free that finds more than 3
 * thresholds lazy waits for the mutex.  Once the test lets go, one purge
 * runs (that free's, or the drain's if the drain takes the mutex first:
 * the other then finds the backlog gone), and the thread goes on.
 */
TEST(frees_purge_when_the_drain_falls_behind)
{
	struct vmap_params p = { .nr_nodes = 2, .lazy_max_pages = 16 };
	struct freer f;
	struct vmap_space *s;
	uint64_t a[64];
	pthread_t t;
	int i, waiting, spins;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 64; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	waiting = frees_to_pass(s, 3 * 16);
	f = (struct freer){ s, a, 64 };
	vlock_take(&s->purge_lock);
	assert_int(pthread_create(&t, NULL, free_all, &f), ==, 0);
	for (spins = 0;
	     spins < 100000 && node_stats(s, -1).lazy_pages < (uint64_t)waiting;
	     spins++)
		usleep(100);
	usleep(10000); /* that free is now waiting for the mutex */
	expect_u64(node_stats(s, -1).lazy_pages, ==, waiting);
	vlock_release(&s->purge_lock);
	pthread_join(t, NULL);
	expect_u64(node_stats(s, -1).purges, ==, 1);
	expect_u64(node_stats(s, -1).backlog_purges, <=, 1);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 64 - waiting);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * One node, or one node allocating: the free that crosses the threshold
 * purges before it returns; while another purge holds the mutex it queues
 * the drain instead, which purges once that purge is done.
 */
static void purges_in_the_free(unsigned nodes)
{
	struct vmap_params p = { .nr_nodes = nodes, .lazy_max_pages = 16 };
	struct vmap_space *s;
	uint64_t a[40];
	int i, crossing;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 40; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	crossing = frees_to_pass(s, 16);
	vmap_set_thread_cpu(0);
	for (i = 0; i < crossing - 1; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	expect_u64(node_stats(s, -1).purges, ==, 0);
	assert_int(vmap_free(s, a[i++]), ==, 0);
	expect_u64(node_stats(s, -1).free_purges, ==, 1);
	expect_u64(node_stats(s, -1).purges, ==, 1);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 0);

	vlock_take(&s->purge_lock);
	for (; i < 40; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	vmap_set_thread_cpu(-1);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 40 - crossing);
	vlock_release(&s->purge_lock);
	wait_until_nothing_lazy(s);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 0);
	expect_u64(node_stats(s, -1).purges, ==, 2);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(one_allocating_node_purges_in_the_free)
{
	purges_in_the_free(1);
	purges_in_the_free(2);
}

/*
 * Two nodes allocating: the free that crosses the threshold drains.  Each
 * node's frees count a batch at a time, so the count passes 16 between
 * the 17th free and the 20th; the frees after it are too few to pass it
 * again.
 */
TEST(two_allocating_nodes_leave_the_purge_to_the_drain)
{
	struct vmap_params p = { .nr_nodes = 2, .lazy_max_pages = 16 };
	struct vmap_space *s;
	uint64_t a[20];
	int i, spins;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	assert_u64(s->lazy_batch_pages, <=, 1);
	for (i = 0; i < 20; i++)
		a[i] = alloc_on(s, i % 2, 1, PAGE);
	vmap_set_thread_cpu(0);
	for (i = 0; i < 20; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	vmap_set_thread_cpu(-1);
	for (spins = 0; spins < 10000 && !node_stats(s, -1).purges; spins++)
		usleep(1000);
	assert_space_ok(s); /* after the purge: the checker waits for it */
	expect_u64(node_stats(s, -1).purges, ==, 1);
	expect_u64(node_stats(s, -1).free_purges, ==, 0);
	expect_u64(node_stats(s, -1).lazy_pages, <, 16);
	vmap_space_destroy(s);
}

/*
 * A free never runs the user's flush or release callback on the caller's
 * thread (outside deterministic mode), whatever the node count or
 * backlog: here each space's release callback frees into the other
 * space, and two threads free backlogs of 5 thresholds into both at once.
 * Were a free to purge, each callback's free could wait for the other
 * space's purge mutex, held by the thread waiting for it.
 */
static struct vmap_space *pair[2];
static uint64_t spare_range[2][64];
static atomic_int spare_next[2];
static _Thread_local bool freeing_thread;
static atomic_int callbacks_in_frees;

static void release_into_other(void *cookie, uint64_t start, uint64_t end)
{
	int other = 1 - (int)(intptr_t)cookie, k;

	(void)start;
	(void)end;
	if (freeing_thread)
		atomic_fetch_add(&callbacks_in_frees, 1);
	k = atomic_fetch_add(&spare_next[other], 1);
	if (k < 64)
		vmap_free(pair[other], spare_range[other][k]);
}

static void *free_backlog(void *arg)
{
	struct freer *f = arg;

	freeing_thread = true;
	return free_all(f);
}

static void callbacks_stay_off_freeing_threads(unsigned nodes)
{
	static uint64_t a[2][90];
	struct vmap_params p = { .nr_nodes = nodes, .lazy_max_pages = 16 };
	struct freer f[2];
	pthread_t t[2];
	int i, k, in_frees;

	atomic_store(&callbacks_in_frees, 0);
	for (k = 0; k < 2; k++) {
		p.release = release_into_other;
		p.release_cookie = (void *)(intptr_t)k;
		assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p,
					     &pair[k]),
			   ==, 0);
		atomic_store(&spare_next[k], 0);
		for (i = 0; i < 64; i++)
			spare_range[k][i] = alloc_on(pair[k], 0, 1, PAGE);
		for (i = 0; i < 90; i++)
			a[k][i] = alloc_on(pair[k], 0, 1, PAGE);
		f[k] = (struct freer){ pair[k], a[k], 90 };
	}
	for (k = 0; k < 2; k++)
		assert_int(pthread_create(&t[k], NULL, free_backlog, &f[k]), ==,
			   0);
	for (k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	in_frees = atomic_load(&callbacks_in_frees);
	expect_int(in_frees, ==, 0);
	for (k = 0; k < 2; k++)
		vmap_purge(pair[k]);
	for (k = 0; k < 2; k++) {
		assert_space_ok(pair[k]);
		vmap_space_destroy(pair[k]);
	}
}

static void deadlock_alarm(int sig)
{
	static const char msg[] =
		"FAIL frees_never_run_callbacks: no progress in 60 s (deadlock)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

TEST(frees_never_run_callbacks)
{
	/* A deadlock would hang: the alarm ends the test program instead. */
	signal(SIGALRM, deadlock_alarm);
	alarm(60);
	callbacks_stay_off_freeing_threads(1);
	callbacks_stay_off_freeing_threads(2);
	alarm(0);
}

/* The kernel's drain only queues: its frees never purge. */
TEST(kernel_pools_never_purge_in_a_free)
{
	struct vmap_params p = { .nr_nodes = 1,
				 .lazy_max_pages = 16,
				 .flags = VMAP_KERNEL_POOLS };
	struct vmap_space *s;
	uint64_t a[80];
	int i;

	assert_int(vmap_space_create(BASE, BASE + 4096 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 80; i++)
		a[i] = alloc_on(s, 0, 1, PAGE);
	vlock_take(&s->purge_lock);
	for (i = 0; i < 80; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	expect_u64(node_stats(s, -1).lazy_pages, ==, 80);
	vlock_release(&s->purge_lock);
	expect_u64(node_stats(s, -1).backlog_purges, ==, 0);
	vmap_purge(s);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){
			T(pool_class_is_page_count),
			T(misaligned_head_rotates_to_tail),
			T(miss_tags_allocating_node),
			T(address_tag_alternative),
			T(restricted_window_never_pooled),
			T(refill_takes_batch_from_own_zones),
			T(refilled_pool_decays_only_when_idle),
			T(purge_fills_pools_by_demand),
			T(busy_nodes_decay_once_per_purge_of_their_own),
			T(trickling_node_decays_after_four_purges_per_node),
			T(miss_without_batch_is_demand),
			T(refill_only_up_to_zone_alignment),
			T(refill_capped_in_small_space),
			T(refused_allocation_refills_nothing),
			T(refill_in_an_indexed_space_at_the_top),
			T(decay_gives_back_a_quarter),
			T(shrink_empties_every_pool),
			T(full_purge_on_failure_merges_pools),
			T(helper_count_formula),
			T(helpers_purge_a_backlog),
			T(refilling_pools_take_helpers_past_the_bound),
			T(inline_when_helpers_cannot_start),
			T(lookup_walks_back_and_wraps),
			T(base_in_a_non_zero_node),
			T(one_node_pools_only_by_default),
			T(walks_and_lookups_skip_idle_ranges),
			T(pools_hold_two_purges_worth),
			T(purges_in_frees_lose_nothing),
			T(frees_count_a_batch_at_a_time),
			T(frees_purge_when_the_drain_falls_behind),
			T(one_allocating_node_purges_in_the_free),
			T(two_allocating_nodes_leave_the_purge_to_the_drain),
			T(frees_never_run_callbacks),
			T(kernel_pools_never_purge_in_a_free),
			{ 0 } });
}
