/* SPDX-License-Identifier: MIT */
/*
 * test_pcpu.c - vmap_pcpu_get_vm_areas() against a brute-force model:
 * on a small space with random busy ranges (the rest purged free), the
 * base it picks must be the highest aligned base that a scan of every
 * candidate from the top finds, and it must fail exactly when the scan
 * finds none, changing nothing then (all or nothing).  Also: the areas
 * are busy and freed by vmap_pcpu_free_vm_areas(), a lazy range is made
 * free by the purge the call makes before failing, and bad input (areas
 * that overlap, misaligned offsets, sizes 0) is refused.
 */
#include <errno.h>
#include <stdbool.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x10000000ull
#define PAGES 512ull

/* The kernel's one node: no pools, so a purge frees all to the heap. */
static struct vmap_space *new_space(void)
{
	struct vmap_params p = {
		.nr_nodes = 1, .flags = VMAP_DETERMINISTIC | VMAP_KERNEL_POOLS
	};
	struct vmap_space *s = NULL;

	return vmap_space_create(BASE, BASE + PAGES * PAGE, &p, &s) ? NULL : s;
}

/* Per page of the space: busy or not, from a snapshot. */
static void busy_map(struct vmap_space *s, bool *busy)
{
	struct vmap_range *r;
	size_t n, i;
	uint64_t a;

	memset(busy, 0, PAGES * sizeof(*busy));
	assert_int(vmap_snapshot(s, &r, &n), ==, 0);
	for (i = 0; i < n; i++)
		for (a = r[i].start; a < r[i].end; a += PAGE)
			busy[(a - BASE) / PAGE] = true;
	free(r);
}

/* The highest base (relative to BASE, may be "negative" as a wrap) that
 * fits, by trying every aligned candidate from the top. */
static bool model_base(const bool *busy, const uint64_t *off,
		       const uint64_t *size, unsigned nr, uint64_t align,
		       uint64_t *base)
{
	uint64_t last_end = 0, first = UINT64_MAX, b, a, p;
	unsigned i;
	bool ok;

	for (i = 0; i < nr; i++) {
		if (off[i] + size[i] > last_end)
			last_end = off[i] + size[i];
		if (off[i] < first)
			first = off[i];
	}
	if (last_end > BASE + PAGES * PAGE)
		return false;
	for (b = (BASE + PAGES * PAGE - last_end) & ~(align - 1);; b -= align) {
		if (b + first < BASE)
			return false;
		ok = true;
		for (i = 0; i < nr && ok; i++)
			for (a = b + off[i]; a < b + off[i] + size[i] && ok;
			     a += PAGE) {
				p = (a - BASE) / PAGE;
				ok = !busy[p];
			}
		if (ok) {
			*base = b;
			return true;
		}
		if (b < align)
			return false;
	}
}

TEST(matches_brute_force)
{
	uint64_t off[4], size[4], starts[4], addr, align, want, cursor;
	bool busy[PAGES], before[PAGES], fits;
	unsigned round, nr, i, k, found = 0, failed = 0, nr_busy;
	struct vmap_space *s;
	int rc;

	for (round = 0; round < (unsigned)scaled(2000); round++) {
		s = new_space();
		assert_true(s != NULL);
		/* Random busy ranges, then free some and purge them. */
		nr_busy = (unsigned)rnd_range(10, 160);
		for (i = 0; i < nr_busy; i++) {
			uint64_t lo = BASE + rnd_range(0, PAGES - 8) * PAGE;

			vmap_alloc(s, rnd_range(1, 6) * PAGE, PAGE, lo,
				   BASE + PAGES * PAGE, 0, &addr);
			if (rnd() % 3 == 0)
				vmap_free(s, addr);
		}
		vmap_purge(s);
		busy_map(s, busy);
		nr = (unsigned)rnd_range(1, 4);
		align = PAGE << rnd_range(0, 3);
		cursor = 0;
		for (i = 0; i < nr; i++) {
			cursor += rnd_range(0, 40) * PAGE;
			cursor = (cursor + align - 1) & ~(align - 1);
			off[i] = cursor;
			size[i] = rnd_range(1, rnd() % 4 ? 8 : 64) * PAGE;
			cursor += size[i];
		}
		/* Shuffle: the call must not assume the areas sorted. */
		for (i = nr; i > 1; i--) {
			uint64_t t;

			k = (unsigned)(rnd() % i);
			t = off[i - 1];
			off[i - 1] = off[k];
			off[k] = t;
			t = size[i - 1];
			size[i - 1] = size[k];
			size[k] = t;
		}
		fits = model_base(busy, off, size, nr, align, &want);
		rc = vmap_pcpu_get_vm_areas(s, off, size, nr, align, starts);
		if (!fits) {
			expect_int(rc, ==, -ENOMEM);
			busy_map(s, before);
			expect_int(memcmp(before, busy, sizeof(busy)), ==, 0);
			failed++;
		} else {
			assert_int(rc, ==, 0);
			for (i = 0; i < nr; i++)
				expect_u64(starts[i], ==, want + off[i]);
			assert_space_ok(s);
			expect_int(vmap_pcpu_free_vm_areas(s, starts, nr), ==,
				   0);
			found++;
		}
		assert_space_ok(s);
		vmap_space_destroy(s);
	}
	/* Both outcomes must have been exercised. */
	expect_int(found, >, 0);
	expect_int(failed, >, 0);
}

TEST(lazy_ranges_are_purged_first)
{
	uint64_t off[2] = { 0, 256 * PAGE },
		 size[2] = { 200 * PAGE, 200 * PAGE };
	uint64_t whole, starts[2];
	struct vmap_space *s = new_space();

	assert_true(s != NULL);
	assert_int(vmap_alloc(s, PAGES * PAGE, PAGE, 0, 0, 0, &whole), ==, 0);
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -ENOMEM);
	assert_space_ok(s);
	assert_int(vmap_free(s, whole), ==,
		   0); /* lazy: only a purge frees it */
	assert_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   0);
	expect_u64(starts[0], ==, BASE + PAGES * PAGE - 456 * PAGE);
	expect_u64(starts[1], ==, starts[0] + 256 * PAGE);
	expect_int(vmap_pcpu_free_vm_areas(s, starts, 2), ==, 0);
	expect_int(vmap_pcpu_free_vm_areas(s, starts, 2), ==, -ENOENT);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* A space that ends at 2^64 (limit 0): the top-down search starts there. */
TEST(space_ending_at_2_64)
{
	uint64_t off[2] = { 0, 8 * PAGE }, size[2] = { 2 * PAGE, 4 * PAGE };
	uint64_t starts[2], base = 0 - 64 * PAGE, top;
	struct vmap_params p = { .nr_nodes = 1, .flags = VMAP_DETERMINISTIC };
	struct vmap_range r;
	struct vmap_space *s;

	assert_int(vmap_space_create(base, 0, &p, &s), ==, 0);
	assert_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   0);
	expect_u64(starts[1] + size[1], ==, 0); /* ends at 2^64 */
	expect_u64(starts[0], ==, starts[1] - off[1]);
	/* vmap_next() finds the range that ends at 2^64 too. */
	assert_int(vmap_next(s, starts[1], &r, NULL, NULL), ==, 0);
	expect_u64(r.start, ==, starts[1]);
	expect_u64(r.end, ==, 0);
	/*
	 * Again: the highest base that fits puts the new second area in the
	 * six free pages between the first call's two areas.
	 */
	top = starts[0];
	assert_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   0);
	expect_u64(starts[0], ==, top - 4 * PAGE);
	expect_u64(starts[1], ==, top + 4 * PAGE);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * A space with the best-fit size index keeps every free block indexed:
 * the records a congruent allocation splits blocks with must be too.
 */
TEST(indexed_space)
{
	struct vmap_params p = {
		.nr_nodes = 1, .flags = VMAP_DETERMINISTIC | VMAP_BESTFIT_INDEX
	};
	uint64_t off[3] = { 0, 16 * PAGE, 40 * PAGE }, starts[3], addr;
	uint64_t size[3] = { 4 * PAGE, 4 * PAGE, 4 * PAGE };
	struct vmap_space *s;
	unsigned i;

	assert_int(vmap_space_create(BASE, BASE + PAGES * PAGE, &p, &s), ==, 0);
	for (i = 0; i < 8; i++) /* busy ranges, so that areas split blocks */
		assert_int(vmap_alloc(s, PAGE, PAGE, BASE + i * 60 * PAGE,
				      BASE + PAGES * PAGE, 0, &addr),
			   ==, 0);
	for (i = 0; i < 4; i++) {
		assert_int(
			vmap_pcpu_get_vm_areas(s, off, size, 3, PAGE, starts),
			==, 0);
		assert_space_ok(s);
	}
	vmap_space_destroy(s);
}

TEST(bad_input_refused)
{
	uint64_t off[2] = { 0, 4 * PAGE }, size[2] = { 8 * PAGE, PAGE },
		 starts[2];
	struct vmap_space *s = new_space();

	assert_true(s != NULL);
	/* Overlapping areas, either order. */
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	off[0] = 4 * PAGE;
	off[1] = 0;
	size[0] = PAGE;
	size[1] = 5 * PAGE;
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	size[1] = 4 * PAGE;
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, 8 * PAGE, starts),
		   ==, -EINVAL);
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, 3 * PAGE, starts),
		   ==, -EINVAL);
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 0, PAGE, starts), ==,
		   -EINVAL);
	size[0] = 0;
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	size[0] = 100;
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	size[0] = PAGE;
	off[0] = 1ull << 40; /* spans more than the space */
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	off[0] = UINT64_MAX & ~(PAGE - 1); /* offset + size wraps */
	expect_int(vmap_pcpu_get_vm_areas(s, off, size, 2, PAGE, starts), ==,
		   -EINVAL);
	expect_int(vmap_pcpu_get_vm_areas(s, NULL, size, 2, PAGE, starts), ==,
		   -EINVAL);
	expect_int(vmap_pcpu_free_vm_areas(s, starts, 0), ==, -EINVAL);
	starts[0] = BASE;
	expect_int(vmap_pcpu_free_vm_areas(s, starts, 1), ==, -ENOENT);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(argc, argv,
			 (struct test[]){ T(matches_brute_force),
					  T(lazy_ranges_are_purged_first),
					  T(space_ending_at_2_64),
					  T(indexed_space),
					  T(bad_input_refused),
					  { 0 } });
}
