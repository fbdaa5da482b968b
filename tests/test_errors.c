/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - every public function called with each bad input its
 * header comment documents, checking the exact error, and that a refused
 * call changed nothing (vmap_check() passes after it).  The table of
 * errors in include/vmap.h is the contract this holds the library to.
 *
 * Public header only.
 */
#include <errno.h>
#include <stdint.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x40000000ull
#define PAGES 64ull

static struct vmap_space *space;

static void noop_notifier(struct vmap_space *s, void *cookie, uint64_t *freed)
{
	(void)s;
	(void)cookie;
	(void)freed;
}

/* errno of a NULL-returning call, 0 if it did not return NULL. */
#define errno_of(call) ((errno = 0), (call) ? 0 : errno)

/* test_api covers the bounds, page shifts, node counts and flags. */
TEST(space_create)
{
	struct vmap_params p;
	struct vmap_space *s;
	unsigned i;

	memset(&p, 0, sizeof(p));
	p.reserved0 = 1;
	expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==, -EINVAL);
	for (i = 0; i < sizeof(p.reserved) / sizeof(p.reserved[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.reserved[i] = 1;
		expect_int(vmap_space_create(BASE, BASE + PAGE, &p, &s), ==,
			   -EINVAL);
	}
}

TEST(space_calls)
{
	struct vmap_space_info info;
	struct vmap_stats st = { .size = sizeof(st) };
	struct vmap_range r, *ranges;
	size_t n;
	char msg[128];

	expect_int(vmap_space_info(NULL, &info), ==, -EINVAL);
	expect_int(vmap_space_info(space, NULL), ==, -EINVAL);
	expect_int(vmap_purge(NULL), ==, -EINVAL);
	expect_int(vmap_shrink(NULL), ==, -EINVAL);
	expect_int(vmap_check(NULL, msg, sizeof(msg)), ==, -EINVAL);
	expect_int(vmap_find(NULL, BASE, &r), ==, -EINVAL);
	expect_int(vmap_find(space, BASE, NULL), ==, -EINVAL);
	expect_int(vmap_find(space, BASE, &r), ==, -ENOENT);
	expect_int(vmap_find(space, BASE - 1, &r), ==, -ENOENT);
	expect_int(vmap_snapshot(NULL, &ranges, &n), ==, -EINVAL);
	expect_int(vmap_snapshot(space, NULL, &n), ==, -EINVAL);
	expect_int(vmap_snapshot(space, &ranges, NULL), ==, -EINVAL);
	expect_int(vmap_set_thread_cpu(-2), ==, -EINVAL);
	expect_int(vmap_stats_get(NULL, -1, &st), ==, -EINVAL);
	expect_int(vmap_stats_get(space, -1, NULL), ==, -EINVAL);
	expect_int(vmap_stats_get(space, 2, &st), ==, -EINVAL);
	expect_int(vmap_stats_get(space, -2, &st), ==, -EINVAL);
	st.size = 4;
	expect_int(vmap_stats_get(space, -1, &st), ==, -EINVAL);
	assert_space_ok(space);
}

TEST(alloc_and_free)
{
	uint64_t a, b;

	expect_int(vmap_alloc(NULL, PAGE, PAGE, 0, 0, 0, &a), ==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE, PAGE, 0, 0, 0, NULL), ==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE, PAGE, 0, 0, 1u << 30, &a), ==,
		   -EINVAL);
	expect_int(vmap_alloc(space, 0, PAGE, 0, 0, 0, &a), ==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE + 1, PAGE, 0, 0, 0, &a), ==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE, 0, 0, 0, 0, &a), ==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE, 3 * PAGE, 0, 0, 0, &a), ==, -EINVAL);
	expect_int(
		vmap_alloc(space, PAGE, PAGE, BASE + PAGE, BASE + PAGE, 0, &a),
		==, -EINVAL);
	expect_int(
		vmap_alloc(space, PAGE, PAGE, BASE - PAGE, BASE + PAGE, 0, &a),
		==, -EINVAL);
	expect_int(vmap_alloc(space, PAGE, PAGE, BASE,
			      BASE + (PAGES + 1) * PAGE, 0, &a),
		   ==, -EINVAL);
	expect_int(vmap_alloc(space, 2 * PAGE, PAGE, BASE, BASE + PAGE, 0, &a),
		   ==, -EINVAL);
	/* An alignment no block can meet is no room, not bad input. */
	expect_int(vmap_alloc(space, PAGE, 1ull << 63, 0, 0, 0, &a), ==,
		   -ENOMEM);
	expect_int(vmap_alloc_user(space, 0, PAGE, 0, 0, 0, 7, &a), ==,
		   -EINVAL);
	assert_space_ok(space);

	/* No room: -ENOMEM; no room but lazy ranges and NONBLOCK: -EBUSY. */
	expect_int(vmap_alloc(space, (PAGES + 1) * PAGE, PAGE, 0, 0, 0, &a), ==,
		   -EINVAL);
	assert_int(vmap_alloc(space, PAGES * PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_int(vmap_alloc(space, PAGE, PAGE, 0, 0, 0, &b), ==, -ENOMEM);
	expect_int(vmap_alloc(space, PAGE, PAGE, 0, 0, VMAP_NONBLOCK, &b), ==,
		   -ENOMEM);
	assert_int(vmap_free(space, a), ==, 0);
	expect_int(vmap_alloc(space, PAGE, PAGE, 0, 0, VMAP_NONBLOCK, &b), ==,
		   -EBUSY);
	assert_space_ok(space);

	/* vmap_free: not the start of a busy range, in every way. */
	expect_int(vmap_free(NULL, BASE), ==, -EINVAL);
	expect_int(vmap_free(space, a), ==, -ENOENT); /* lazy */
	assert_int(vmap_purge(space), ==, 0);
	assert_int(vmap_alloc(space, 2 * PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	expect_int(vmap_free(space, a + PAGE), ==, -ENOENT);	 /* inside */
	expect_int(vmap_free(space, a + 2 * PAGE), ==, -ENOENT); /* a gap */
	expect_int(vmap_free(space, BASE - PAGE), ==, -ENOENT);	 /* outside */
	expect_int(vmap_free(space, BASE + PAGES * PAGE), ==, -ENOENT);
	assert_int(vmap_free(space, a), ==, 0);
	expect_int(vmap_free(space, a), ==, -ENOENT); /* twice */
	assert_space_ok(space);
}

TEST(notifiers)
{
	expect_int(vmap_notifier_register(NULL, noop_notifier, NULL), ==,
		   -EINVAL);
	expect_int(vmap_notifier_register(space, NULL, NULL), ==, -EINVAL);
	expect_int(vmap_notifier_unregister(NULL, noop_notifier, NULL), ==,
		   -EINVAL);
	expect_int(vmap_notifier_unregister(space, noop_notifier, NULL), ==,
		   -ENOENT);
	assert_int(vmap_notifier_register(space, noop_notifier, NULL), ==, 0);
	expect_int(vmap_notifier_register(space, noop_notifier, NULL), ==,
		   -EEXIST);
	assert_int(vmap_notifier_unregister(space, noop_notifier, NULL), ==, 0);
	expect_int(vmap_notifier_unregister(space, noop_notifier, NULL), ==,
		   -ENOENT);
	assert_space_ok(space);
}

/* A stream whose writes fail: /dev/full refuses them with ENOSPC. */
static FILE *failing_stream(void)
{
	FILE *f = fopen("/dev/full", "w");

	if (!f)
		test_skip("no /dev/full");
	return f;
}

TEST(streams)
{
	struct vmap_stats st = { .size = sizeof(st) };
	FILE *f;

	assert_int(vmap_stats_get(space, -1, &st), ==, 0);
	expect_int(vmap_stats_print(NULL, stdout, 0), ==, -EINVAL);
	expect_int(vmap_stats_print(&st, NULL, 0), ==, -EINVAL);
	expect_int(vmap_stats_print(&st, stdout, 1u << 7), ==, -EINVAL);
	f = failing_stream();
	expect_int(vmap_stats_print(&st, f, 0), ==, -EIO);
	expect_int(vmap_stats_print(&st, f, VMAP_STATS_JSON), ==, -EIO);
	fclose(f);

	expect_int(vmallocinfo(NULL), ==, -EINVAL);
	vfree(vmalloc(PAGE)); /* something to print */
	f = failing_stream();
	expect_int(vmallocinfo(f), ==, -EIO);
	fclose(f);
}

TEST(heaps)
{
	struct vmap_heap_params hp;
	struct vmap_heap_stats hs = { .size = sizeof(hs) };
	struct vmap_heap *h;
	unsigned i;
	void *p;
	FILE *f;

	expect_int(vmap_heap_create(NULL, NULL), ==, -EINVAL);
	memset(&hp, 0, sizeof(hp));
	hp.flags = 1u << 30;
	expect_int(vmap_heap_create(&hp, &h), ==, -EINVAL);
	memset(&hp, 0, sizeof(hp));
	hp.reserve_bytes = 1;
	expect_int(vmap_heap_create(&hp, &h), ==, -EINVAL);
	memset(&hp, 0, sizeof(hp));
	hp.nr_nodes = 129;
	expect_int(vmap_heap_create(&hp, &h), ==, -EINVAL);
	for (i = 0; i < sizeof(hp.reserved) / sizeof(hp.reserved[0]); i++) {
		memset(&hp, 0, sizeof(hp));
		hp.reserved[i] = 1;
		expect_int(vmap_heap_create(&hp, &h), ==, -EINVAL);
	}

	memset(&hp, 0, sizeof(hp));
	hp.reserve_bytes = 1ull << 24;
	hp.flags = VMAP_HEAP_GUARD_BELOW;
	assert_int(vmap_heap_create(&hp, &h), ==, 0);
	expect_int(errno_of(vmap_heap_vmalloc(NULL, PAGE)), ==, EINVAL);
	expect_int(errno_of(vmap_heap_vmalloc(h, 0)), ==, EINVAL);
	/* Sizes the reservation cannot hold are no room, not bad input. */
	expect_int(errno_of(vmap_heap_vmalloc(h, 1ull << 24)), ==, ENOMEM);
	expect_int(errno_of(vmap_heap_vmalloc(h, (1ull << 24) - 1)), ==,
		   ENOMEM);
	expect_int(errno_of(vmap_heap_vmalloc(h, SIZE_MAX)), ==, ENOMEM);
	expect_int(errno_of(vmap_heap_vmalloc_align(h, PAGE, 0)), ==, EINVAL);
	expect_int(errno_of(vmap_heap_vmalloc_align(h, PAGE, 3 * PAGE)), ==,
		   EINVAL);
	/* Above a page on a guard-below heap. */
	expect_int(errno_of(vmap_heap_vmalloc_align(h, PAGE, 2 * PAGE)), ==,
		   EINVAL);
	p = vmap_heap_vmalloc(h, PAGE);
	assert_true(p);
	expect_int(errno_of(vmap_heap_vrealloc(h, (char *)p + PAGE, 2 * PAGE)),
		   ==, EINVAL);
	expect_int(errno_of(vmap_heap_vrealloc(NULL, NULL, PAGE)), ==, EINVAL);
	expect_u64(vmap_heap_size(h, (char *)p + 1), ==, 0);
	expect_u64(vmap_heap_size(NULL, p), ==, 0);
	expect_int(vmap_heap_info(NULL, stdout), ==, -EINVAL);
	expect_int(vmap_heap_info(h, NULL), ==, -EINVAL);
	f = failing_stream();
	expect_int(vmap_heap_info(h, f), ==, -EIO);
	fclose(f);
	expect_int(vmap_heap_stats(NULL, &hs), ==, -EINVAL);
	expect_int(vmap_heap_stats(h, NULL), ==, -EINVAL);
	hs.size = 4;
	expect_int(vmap_heap_stats(h, &hs), ==, -EINVAL);
	expect_true(vmap_heap_space(NULL) == NULL);
	assert_space_ok(vmap_heap_space(h));
	vmap_heap_vfree(h, p);
	vmap_heap_destroy(h);
}

TEST(default_heap)
{
	void *p;

	expect_int(errno_of(vmalloc(0)), ==, EINVAL);
	expect_int(errno_of(vzalloc(0)), ==, EINVAL);
	expect_int(errno_of(vmalloc(64ull << 30)), ==, ENOMEM);
	expect_int(errno_of(vmalloc((64ull << 30) - 1)), ==, ENOMEM);
	expect_int(errno_of(vmalloc(SIZE_MAX)), ==, ENOMEM);
	p = vmalloc(PAGE);
	assert_true(p);
	expect_int(errno_of(vrealloc((char *)p + PAGE, PAGE)), ==, EINVAL);
	expect_u64(vmalloc_size((char *)p + 1), ==, 0);
	vfree(p);
	expect_u64(vmalloc_size(p), ==, 0);
	assert_space_ok(vmap_heap_space(vmap_default_heap()));
}

int main(int argc, char **argv)
{
	struct vmap_params p = { .nr_nodes = 1,
				 .flags = VMAP_DETERMINISTIC,
				 .lazy_max_pages = 1 << 20 };
	int rc;

	if (vmap_space_create(BASE, BASE + PAGES * PAGE, &p, &space))
		return 1;
	rc = test_main(argc, argv,
		       (struct test[]){ T(space_create),
					T(space_calls),
					T(alloc_and_free),
					T(notifiers),
					T(streams),
					T(heaps),
					T(default_heap),
					{ 0 } });
	vmap_space_destroy(space);
	return rc;
}
