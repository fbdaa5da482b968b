/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - the public API's contract: every kind of bad input is
 * refused with its errno and changes nothing; lazy semantics (no reuse
 * before a purge, one flush covering everything, the threshold at
 * > lazy_max_pages); exhaustion and recovery; the overflow path's order
 * (one full purge, then notifiers); non-blocking requests; find; stats.
 */
#include <errno.h>
#include <unistd.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x10000000ull

/*
 * The kernel's one-node design (no pools): what a purge frees goes back
 * to the heap, where these tests look for it.
 */
static struct vmap_space *one_node(uint64_t pages, uint64_t lazy_max)
{
	struct vmap_params p = { .nr_nodes = 1,
				 .lazy_max_pages = lazy_max,
				 .flags = VMAP_DETERMINISTIC |
					  VMAP_KERNEL_POOLS };
	struct vmap_space *s = NULL;

	if (vmap_space_create(BASE, BASE + pages * PAGE, &p, &s))
		return NULL;
	return s;
}

/* @n one-page ranges, each must succeed. */
static void fill_pages(struct vmap_space *s, uint64_t *a, int n, unsigned flags)
{
	int i;

	for (i = 0; i < n; i++)
		assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, flags, &a[i]), ==,
			   0);
}

static struct vmap_stats stats(struct vmap_space *s)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, -1, &st);
	return st;
}

TEST(create_rejects_bad_parameters)
{
	struct vmap_params p = { 0 };
	struct vmap_space *s = NULL;

	expect_int(vmap_space_create(BASE, BASE, NULL, &s), ==, -EINVAL);
	expect_int(vmap_space_create(BASE + PAGE, BASE, NULL, &s), ==, -EINVAL);
	expect_int(vmap_space_create(BASE + 1, BASE + PAGE, NULL, &s), ==,
		   -EINVAL);
	expect_int(vmap_space_create(BASE, BASE + PAGE + 1, NULL, &s), ==,
		   -EINVAL);
	expect_int(vmap_space_create(PAGE + 1, 0, NULL, &s), ==, -EINVAL);
	expect_int(vmap_space_create(BASE, BASE + PAGE, NULL, NULL), ==,
		   -EINVAL);
	p.page_shift = 11;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.page_shift = 31;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.page_shift = 0;
	p.nr_nodes = 129;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.nr_nodes = 0;
	p.reserved[0] = 1;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.reserved[0] = 0;
	p.flags = 1u << 7;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.flags = 0;
	p.granule = 3 << 12;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.granule = 1ull << 31;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.granule = 1ull << 13;
	p.page_shift = 12; /* disagrees with the granule */
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	p.granule = 0;
	p.page_shift = 0;
	expect_true(s == NULL);
	/* The largest space: all of [0, 2^64) (limit 0). */
	assert_int(vmap_space_create(0, 0, NULL, &s), ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
	/* A 2 MiB page (page shift 21). */
	p.flags = 0;
	p.page_shift = 21;
	assert_int(vmap_space_create(1ull << 30, 2ull << 30, &p, &s), ==, 0);
	vmap_space_destroy(s);
}

TEST(alloc_rejects_bad_requests)
{
	struct vmap_space *s = one_node(1024, 1 << 20);
	uint64_t addr = 0xdead, keep;
	struct vmap_stats before, after;

	assert_true(s != NULL);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &keep), ==, 0);
	before = stats(s);
	expect_int(vmap_alloc(s, 0, PAGE, 0, 0, 0, &addr), ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE + 1, PAGE, 0, 0, 0, &addr), ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, 0, 0, 0, 0, &addr), ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, 3 * PAGE, 0, 0, 0, &addr), ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, PAGE, BASE + 8 * PAGE, BASE + 8 * PAGE,
			      0, &addr),
		   ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, PAGE, BASE + 9 * PAGE, BASE + 8 * PAGE,
			      0, &addr),
		   ==, -EINVAL);
	/* Windows outside the space, or reaching out of it. */
	expect_int(
		vmap_alloc(s, PAGE, PAGE, BASE - PAGE, BASE + PAGE, 0, &addr),
		==, -EINVAL);
	expect_int(
		vmap_alloc(s, PAGE, PAGE, BASE, BASE + 1025 * PAGE, 0, &addr),
		==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, PAGE, 1, 2 * PAGE, 0, &addr), ==,
		   -EINVAL);
	/* A window smaller than the size. */
	expect_int(
		vmap_alloc(s, 4 * PAGE, PAGE, BASE, BASE + 3 * PAGE, 0, &addr),
		==, -EINVAL);
	/* size + align past 2^64. */
	expect_int(vmap_alloc(s, 2 * PAGE, 1ull << 63, 0, 0, 0, &addr), ==,
		   0 - ENOMEM);
	expect_int(vmap_alloc(s, 0xfffffffffffff000ull, 1ull << 63, 0, 0, 0,
			      &addr),
		   ==, -EINVAL);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 1u << 9, &addr), ==,
		   -EINVAL);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, NULL), ==, -EINVAL);
	expect_int(vmap_alloc(NULL, PAGE, PAGE, 0, 0, 0, &addr), ==, -EINVAL);
	expect_u64(addr, ==, 0xdead);
	after = stats(s);
	expect_u64(after.allocs, ==, before.allocs);
	expect_u64(after.free_bytes, ==, before.free_bytes);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(free_rejects_what_is_not_a_busy_start)
{
	struct vmap_space *s = one_node(1024, 1 << 20);
	uint64_t a, b;

	assert_true(s != NULL);
	assert_int(vmap_alloc(s, 4 * PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, BASE + 100 * PAGE,
			      BASE + 200 * PAGE, 0, &b),
		   ==, 0);
	expect_int(vmap_free(s, a + PAGE), ==, -ENOENT); /* inside */
	expect_int(vmap_free(s, a + 1), ==, -ENOENT);
	expect_int(vmap_free(s, BASE + 50 * PAGE), ==, -ENOENT); /* a gap */
	expect_int(vmap_free(s, BASE - PAGE), ==, -ENOENT);	 /* outside */
	expect_int(vmap_free(s, BASE + 1024 * PAGE), ==, -ENOENT);
	expect_int(vmap_free(NULL, a), ==, -EINVAL);
	assert_int(vmap_free(s, a), ==, 0);
	expect_int(vmap_free(s, a), ==, -ENOENT); /* lazy now: twice */
	assert_int(vmap_purge(s), ==, 0);
	expect_int(vmap_free(s, a), ==, -ENOENT); /* free now */
	assert_space_ok(s);
	assert_int(vmap_free(s, b), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	assert_space_ok(s);
	expect_u64(stats(s).free_bytes, ==, 1024 * PAGE);
	expect_u64(stats(s).free_blocks, ==, 1);
	expect_u64(stats(s).largest_free, ==, 1024 * PAGE);
	vmap_space_destroy(s);
}

/* Two busy ranges cut the free heap into three blocks, the last largest. */
TEST(free_heap_shape_gauges)
{
	struct vmap_space *s = one_node(64, 1 << 20);
	uint64_t a, b, locks;

	assert_true(s != NULL);
	locks = stats(s).heap_lock; /* creation adds the space's span */
	assert_int(vmap_alloc(s, PAGE, PAGE, BASE + 2 * PAGE, BASE + 3 * PAGE,
			      0, &a),
		   ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, BASE + 10 * PAGE, BASE + 11 * PAGE,
			      0, &b),
		   ==, 0);
	expect_u64(stats(s).free_blocks, ==, 3);
	expect_u64(stats(s).largest_free, ==, 53 * PAGE);
	/* The gauges take the heap lock without counting it. */
	expect_u64(stats(s).heap_lock - locks, ==, 2);
	vmap_space_destroy(s);
}

struct flush_log {
	int calls;
	uint64_t start, end;
};

static void log_flush(void *cookie, uint64_t start, uint64_t end)
{
	struct flush_log *log = cookie;

	log->calls++;
	log->start = start;
	log->end = end;
}

TEST(freed_range_not_reused_before_purge)
{
	struct vmap_space *s = one_node(64, 1 << 20);
	uint64_t a, b, c;

	assert_true(s != NULL);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, BASE);
	assert_int(vmap_free(s, a), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &b), ==, 0);
	expect_u64(b, ==, BASE + PAGE); /* the lazy page is skipped */
	assert_int(vmap_purge(s), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &c), ==, 0);
	expect_u64(c, ==, BASE); /* reusable after the purge */
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(one_flush_covers_every_purged_range)
{
	struct flush_log log = { 0 };
	struct vmap_params p = { .nr_nodes = 1,
				 .lazy_max_pages = 1 << 20,
				 .flags = VMAP_DETERMINISTIC,
				 .flush = log_flush,
				 .flush_cookie = &log };
	struct vmap_space *s;
	uint64_t a[6];
	int i;

	assert_int(vmap_space_create(BASE, BASE + 256 * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 6; i++)
		assert_int(vmap_alloc(s, (i + 1) * PAGE, PAGE, 0, 0, 0, &a[i]),
			   ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	expect_int(log.calls, ==, 0); /* nothing lazy: no flush */
	vmap_free(s, a[1]);
	vmap_free(s, a[4]);
	vmap_free(s, a[2]);
	assert_int(vmap_purge(s), ==, 0);
	expect_int(log.calls, ==, 1);
	expect_u64(log.start, ==, a[1]);
	expect_u64(log.end, ==, a[4] + 5 * PAGE);
	expect_u64(stats(s).flushes, ==, 1);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(threshold_is_strictly_above_lazy_max)
{
	struct vmap_space *s = one_node(256, 8);
	uint64_t a[10];
	int i;

	assert_true(s != NULL);
	fill_pages(s, a, 10, 0);
	for (i = 0; i < 8; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	expect_u64(stats(s).purges, ==, 0); /* exactly at the limit */
	expect_u64(stats(s).lazy_pages, ==, 8);
	assert_int(vmap_free(s, a[8]), ==, 0); /* 9 > 8 */
	expect_u64(stats(s).purges, ==, 1);
	expect_u64(stats(s).lazy_pages, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(threshold_starts_async_drain)
{
	struct vmap_params p = { .nr_nodes = 1, .lazy_max_pages = 4 };
	struct vmap_space *s;
	uint64_t a[8];
	int i, spins;

	assert_int(vmap_space_create(BASE, BASE + 256 * PAGE, &p, &s), ==, 0);
	fill_pages(s, a, 8, 0);
	for (i = 0; i < 5; i++)
		assert_int(vmap_free(s, a[i]), ==, 0);
	/* The drain thread runs on its own time: wait up to ~10 s. */
	for (spins = 0; spins < 10000 && stats(s).purges == 0; spins++)
		usleep(1000);
	expect_u64(stats(s).purges, >=, 1);
	vmap_space_destroy(s);
}

TEST(exhaustion_then_recovery)
{
	struct vmap_space *s = one_node(16, 1 << 20);
	uint64_t a[16], x;

	assert_true(s != NULL);
	fill_pages(s, a, 16, 0);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, -ENOMEM);
	expect_u64(stats(s).alloc_failures, ==, 1);
	assert_space_ok(s);
	/* A free makes room, after the purge the failing path runs. */
	assert_int(vmap_free(s, a[7]), ==, 0);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, 0);
	expect_u64(x, ==, a[7]);
	expect_int(vmap_alloc(s, 2 * PAGE, PAGE, 0, 0, 0, &x), ==, -ENOMEM);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

struct notifier_state {
	struct vmap_space *s;
	uint64_t victim;
	int calls;
	uint64_t full_purges_seen;
};

static void free_victim(struct vmap_space *s, void *cookie, uint64_t *freed)
{
	struct notifier_state *ns = cookie;
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, -1, &st);
	ns->full_purges_seen = st.full_purges;
	ns->calls++;
	if (ns->victim && vmap_free(s, ns->victim) == 0) {
		*freed += 1;
		ns->victim = 0;
	}
}

TEST(one_full_purge_then_notifiers)
{
	struct vmap_space *s = one_node(8, 1 << 20);
	struct notifier_state ns = { 0 };
	uint64_t a[8], x;

	assert_true(s != NULL);
	ns.s = s;
	assert_int(vmap_notifier_register(s, free_victim, &ns), ==, 0);
	expect_int(vmap_notifier_register(s, free_victim, &ns), ==, -EEXIST);
	expect_int(vmap_notifier_register(s, NULL, &ns), ==, -EINVAL);
	fill_pages(s, a, 8, 0);
	/* Full: one full purge, notifiers free a page, retry succeeds. */
	ns.victim = a[3];
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, 0);
	expect_u64(x, ==, a[3]);
	expect_int(ns.calls, ==, 1);
	expect_u64(ns.full_purges_seen, ==,
		   1); /* purged once before notifying */
	expect_u64(stats(s).full_purges, ==,
		   2); /* and once after the notifier freed */
	/* Notifier frees nothing: ENOMEM after exactly one more round. */
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, -ENOMEM);
	expect_int(ns.calls, ==, 2);
	expect_u64(stats(s).full_purges, ==, 3);
	assert_int(vmap_notifier_unregister(s, free_victim, &ns), ==, 0);
	expect_int(vmap_notifier_unregister(s, free_victim, &ns), ==, -ENOENT);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, -ENOMEM);
	expect_int(ns.calls, ==, 2);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(nonblocking_never_purges)
{
	struct vmap_space *s = one_node(4, 1 << 20);
	uint64_t a[4], x;

	assert_true(s != NULL);
	fill_pages(s, a, 4, VMAP_NONBLOCK);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, VMAP_NONBLOCK, &x), ==,
		   -ENOMEM);
	assert_int(vmap_free(s, a[0]), ==, 0);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, VMAP_NONBLOCK, &x), ==,
		   -EBUSY);
	expect_u64(stats(s).full_purges, ==, 0);
	assert_space_ok(s);
	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &x), ==, 0);
	expect_u64(x, ==, a[0]);
	vmap_space_destroy(s);
}

TEST(find_by_inner_address)
{
	struct vmap_space *s = one_node(1024, 1 << 20);
	struct vmap_range r;
	uint64_t a;

	assert_true(s != NULL);
	assert_int(vmap_alloc(s, 40 * PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	assert_int(vmap_find(s, a + 39 * PAGE + 17, &r), ==, 0);
	expect_u64(r.start, ==, a);
	expect_u64(r.end, ==, a + 40 * PAGE);
	expect_int(r.tag_node, ==, -1);
	expect_int(vmap_find(s, a + 40 * PAGE, &r), ==, -ENOENT);
	expect_int(vmap_find(s, 0, &r), ==, -ENOENT);
	expect_int(vmap_find(s, a, NULL), ==, -EINVAL);
	vmap_free(s, a);
	expect_int(vmap_find(s, a, &r), ==, -ENOENT);
	vmap_space_destroy(s);
}

TEST(many_independent_spaces)
{
	struct vmap_space *s[4];
	uint64_t a;
	int i;

	for (i = 0; i < 4; i++) {
		s[i] = one_node(16, 4);
		assert_true(s[i] != NULL);
	}
	for (i = 0; i < 4; i++) {
		assert_int(vmap_alloc(s[i], (i + 1) * PAGE, PAGE, 0, 0, 0, &a),
			   ==, 0);
		expect_u64(a, ==, BASE); /* same addresses, different spaces */
	}
	for (i = 0; i < 4; i++) {
		expect_u64(stats(s[i]).free_bytes, ==, (16 - i - 1) * PAGE);
		vmap_space_destroy(s[i]);
	}
}

TEST(stats_and_version)
{
	struct vmap_space *s = one_node(16, 4);
	struct vmap_stats st = { .size = 4 };
	struct vmap_space_info info;
	FILE *f = tmpfile();
	char buf[4096];
	size_t n;

	assert_true(s != NULL);
	expect_int(vmap_stats_get(s, -1, &st), ==, -EINVAL);
	expect_int(vmap_stats_get(s, 1, &st), ==, -EINVAL);
	st.size = sizeof(st);
	assert_int(vmap_stats_get(s, 0, &st), ==, 0);
	expect_u64(st.version, ==, VMAP_VERSION);
	expect_u64(vmap_version(), ==, VMAP_VERSION);
	expect_true(strcmp(vmap_version_string(), "0.1.0") == 0);
	assert_int(vmap_space_info(s, &info), ==, 0);
	expect_u64(info.nr_nodes, ==, 1);
	expect_u64(info.page_size, ==, PAGE);
	expect_u64(info.lazy_max_pages, ==, 4);
	assert_int(vmap_stats_get(s, -1, &st), ==, 0);
	assert_int(vmap_stats_print(&st, f, VMAP_STATS_JSON), ==, 0);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	expect_true(buf[0] == '{' &&
		    strstr(buf, "\"free_bytes\":65536") != NULL);
	fclose(f);
	vmap_space_destroy(s);
}

TEST(default_lazy_max_is_kernel_formula)
{
	struct vmap_space *s;
	struct vmap_space_info info;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t fls = 0;

	while (cpus) {
		fls++;
		cpus >>= 1;
	}
	assert_int(vmap_space_create(BASE, BASE + 16 * PAGE, NULL, &s), ==, 0);
	vmap_space_info(s, &info);
	expect_u64(info.lazy_max_pages, ==, fls * 8192);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){ T(create_rejects_bad_parameters),
				 T(alloc_rejects_bad_requests),
				 T(free_rejects_what_is_not_a_busy_start),
				 T(freed_range_not_reused_before_purge),
				 T(one_flush_covers_every_purged_range),
				 T(threshold_is_strictly_above_lazy_max),
				 T(threshold_starts_async_drain),
				 T(exhaustion_then_recovery),
				 T(one_full_purge_then_notifiers),
				 T(nonblocking_never_purges),
				 T(find_by_inner_address),
				 T(many_independent_spaces),
				 T(stats_and_version),
				 T(default_lazy_max_is_kernel_formula),
				 T(free_heap_shape_gauges),
				 { 0 } });
}
