/* SPDX-License-Identifier: MIT */
/*
 * test_fault.c - fault injection: a scripted workload is run once to count
 * the internal allocation and thread-creation sites it reaches, then once
 * per site with that one failing.  Every failure must surface as -ENOMEM
 * from the call that needed the memory (or, for threads, as the purge
 * done inline), leave vmap_check() passing, and lose nothing: at the end,
 * with every range freed and the space purged and shrunk, the free heap is
 * the whole space again.  LeakSanitizer (make check) sees any record that
 * a failure path leaked.
 */
#include <errno.h>

#include "../src/fault.h"
#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x200000000ull
#define PAGES 4096

static void noop_notifier(struct vmap_space *s, void *cookie, uint64_t *freed)
{
}

/*
 * The workload: create (nodes, not deterministic so that the drain thread
 * and helpers start), allocations that split blocks, frees past the
 * threshold, a restricted window, an exhausting request, purge, shrink.
 * Returns the number of calls that failed with -ENOMEM; any other error
 * fails the test.
 */
static int workload(bool *created)
{
	struct vmap_params p = { .nr_nodes = 4, .lazy_max_pages = 8 };
	struct vmap_stats st = { .size = sizeof(st) };
	struct vmap_space *s;
	uint64_t a[64], x;
	int i, rc, enomem = 0;

	*created = false;
	rc = vmap_space_create(BASE, BASE + PAGES * PAGE, &p, &s);
	if (rc == -ENOMEM)
		return 1;
	assert_int(rc, ==, 0);
	*created = true;
	rc = vmap_notifier_register(s, noop_notifier, NULL);
	if (rc == -ENOMEM)
		enomem++;
	else
		assert_int(rc, ==, 0);
	for (i = 0; i < 64; i++) {
		vmap_set_thread_cpu(i % 4);
		rc = vmap_alloc(s, (1 + i % 5) * PAGE, i % 3 ? PAGE : 4 * PAGE,
				i % 7 ? 0 : BASE + 100 * PAGE,
				i % 7 ? 0 : BASE + 2000 * PAGE, 0, &a[i]);
		if (rc == -ENOMEM) {
			enomem++;
			a[i] = 0;
			continue;
		}
		assert_int(rc, ==, 0);
		assert_space_ok(s);
	}
	for (i = 0; i < 64; i += 2)
		if (a[i])
			assert_int(vmap_free(s, a[i]), ==, 0);
	assert_space_ok(s);
	/* Too big to fit: the full purge and the notifiers run. */
	rc = vmap_alloc(s, (PAGES - 10) * PAGE, PAGE, 0, 0, 0, &x);
	assert_true(rc == -ENOMEM);
	enomem++;
	assert_int(vmap_purge(s), ==, 0);
	assert_space_ok(s);
	for (i = 1; i < 64; i += 2)
		if (a[i])
			assert_int(vmap_free(s, a[i]), ==, 0);
	vmap_set_thread_cpu(-1);
	assert_int(vmap_purge(s), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	assert_space_ok(s);
	vmap_stats_get(s, -1, &st);
	assert_u64(st.free_bytes, ==, PAGES * PAGE);
	assert_u64(st.lazy_pages, ==, 0);
	vmap_space_destroy(s);
	return enomem;
}

TEST(every_site_fails_cleanly)
{
	long sites, n;
	bool created;
	int failures;

	/* Count the sites: armed past reach, nothing fails. */
	fault_arm(FAULT_ALL_SITES, 1l << 40, false);
	failures = workload(&created);
	sites = fault_calls();
	fault_disarm();
	assert_int(failures, ==, 1); /* only the exhausting request */
	assert_int(sites, >=, 40);
	for (n = 1; n <= sites; n++) {
		fault_arm(FAULT_ALL_SITES, n, false);
		failures = workload(&created);
		fault_disarm();
		/* One injected failure costs at most one more -ENOMEM. */
		expect_int(failures, >=, 1);
		expect_int(failures, <=, 2);
		if (test_failed_now) {
			fprintf(stderr, "  (failing site %ld of %ld)\n", n,
				sites);
			return;
		}
	}
	printf("     %ld allocation and thread sites failed one at a time\n",
	       sites);
}

/* Count a call's -ENOMEM; any other error fails the test. */
#define enomem_or_ok(call, enomem)                                             \
	do {                                                                   \
		int rc_ = (call);                                              \
		if (rc_ == -ENOMEM)                                            \
			(enomem)++;                                            \
		else                                                           \
			assert_int(rc_, ==, 0);                                \
	} while (0)

/*
 * The constrained calls: a second span, complete, top-down and best-fit
 * searches, a reservation over lazy ranges (its purge), a child space
 * importing from the parent, shrink giving a span back.  Ends with
 * everything freed and the parent whole again.  Returns the -ENOMEM count.
 */
static int constrained_workload(void)
{
	struct vmap_params p = { .nr_nodes = 2,
				 .lazy_max_pages = 1000,
				 .flags = VMAP_BESTFIT_INDEX };
	static const uint32_t flags[3] = { VMAP_EXACT_FIT, VMAP_TOPDOWN,
					   VMAP_BESTFIT };
	struct vmap_request req = { .align = 4 * PAGE, .phase = PAGE };
	struct vmap_stats st = { .size = sizeof(st) };
	struct vmap_space *s, *child;
	uint64_t a[12], r = 0, c = 0;
	int i, enomem = 0, rc, spans = 1;

	rc = vmap_space_create(BASE, BASE + PAGES * PAGE, &p, &s);
	if (rc == -ENOMEM)
		return 1;
	assert_int(rc, ==, 0);
	rc = vmap_space_add(s, BASE + 2 * PAGES * PAGE,
			    BASE + 3 * PAGES * PAGE);
	if (rc == -ENOMEM)
		enomem++;
	else
		assert_int(rc, ==, 0);
	spans += !rc;
	for (i = 0; i < 12; i++) {
		req.size = (1 + i % 3) * PAGE;
		req.flags = flags[i % 3];
		a[i] = 0;
		enomem_or_ok(vmap_xalloc(s, &req, &a[i]), enomem);
		assert_space_ok(s);
	}
	for (i = 0; i < 12; i++)
		if (a[i])
			assert_int(vmap_free(s, a[i]), ==, 0);
	/* Lazy ranges in the way: the reservation purges them. */
	if (a[0]) {
		rc = vmap_reserve(s, a[0] - PAGE, 4 * PAGE, 0);
		enomem_or_ok(rc, enomem);
		r = rc ? 0 : a[0] - PAGE;
	}
	assert_space_ok(s);
	rc = vmap_space_create_child(s, 16 * PAGE, NULL, &child);
	enomem_or_ok(rc, enomem);
	if (!rc) {
		enomem_or_ok(vmap_alloc(child, PAGE, PAGE, 0, 0, 0, &c),
			     enomem);
		assert_space_ok(child);
		if (c)
			assert_int(vmap_free(child, c), ==, 0);
		assert_int(vmap_shrink(child), ==, 0);
		assert_space_ok(child);
		vmap_space_destroy(child);
	}
	if (r)
		assert_int(vmap_free(s, r), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	assert_space_ok(s);
	vmap_stats_get(s, -1, &st);
	assert_u64(st.lazy_pages, ==, 0);
	if (spans == 2)
		assert_u64(st.free_bytes, ==, 2 * PAGES * PAGE);
	vmap_space_destroy(s);
	return enomem;
}

TEST(constrained_calls_fail_cleanly)
{
	long sites, n;
	int failures;

	fault_arm(FAULT_ALL_SITES, 1l << 40, false);
	failures = constrained_workload();
	sites = fault_calls();
	fault_disarm();
	assert_int(failures, ==, 0);
	for (n = 1; n <= sites; n++) {
		fault_arm(FAULT_ALL_SITES, n, false);
		failures = constrained_workload();
		fault_disarm();
		expect_int(failures, <=, 1);
		if (test_failed_now) {
			fprintf(stderr, "  (failing site %ld of %ld)\n", n,
				sites);
			return;
		}
	}
	printf("     %ld sites of the constrained calls failed one at a time\n",
	       sites);
}

TEST(threads_never_start)
{
	bool created;

	/* Every thread start fails: drain and helpers run inline. */
	fault_arm(1u << FAULT_THREAD, 1, true);
	expect_int(workload(&created), ==, 1);
	fault_disarm();
}

TEST(memory_never_available)
{
	struct vmap_space *s = NULL;
	uint64_t a;

	fault_arm(FAULT_ALL_SITES, 1, true);
	expect_int(vmap_space_create(BASE, BASE + PAGES * PAGE, NULL, &s), ==,
		   -ENOMEM);
	fault_disarm();
	assert_int(vmap_space_create(BASE, BASE + PAGES * PAGE, NULL, &s), ==,
		   0);
	fault_arm(FAULT_ALL_SITES, 1, true);
	expect_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a), ==, -ENOMEM);
	fault_disarm();
	assert_space_ok(s);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(argc, argv,
			 (struct test[]){ T(every_site_fails_cleanly),
					  T(constrained_calls_fail_cleanly),
					  T(threads_never_start),
					  T(memory_never_available),
					  { 0 } });
}
