/* SPDX-License-Identifier: MIT */
/*
 * test_placement.c - the kernel's one-node placement (VMAP_KERNEL_POOLS:
 * no pools, every request from the heap) against the linear model
 * (model.h): random traces of allocations (1-300 pages and larger,
 * alignments 1 byte to 2 MiB, whole-space, windowed and exact-window
 * requests), frees and purges, on spaces large and small enough to
 * exhaust.  For align <= page every address must equal the model's; above
 * it, lie within the bound of DESIGN.md section 2.  Uses the public API only.
 */
#include <errno.h>

#include "harness.h"
#include "model.h"
#include "vmap.h"

#define PAGE 4096ull

struct live {
	uint64_t start, size;
};

static uint64_t full_purges(struct vmap_space *s)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, -1, &st);
	return st.full_purges;
}

static uint64_t pick_align(void)
{
	static const uint64_t aligns[] = { 1,	     512,	PAGE,
					   2 * PAGE, 16 * PAGE, 64 * 1024,
					   1 << 20,  2 << 20 };

	return aligns[rnd() % (sizeof(aligns) / sizeof(aligns[0]))];
}

static uint64_t pick_pages(void)
{
	switch (rnd() % 10) {
	case 0:
		return rnd_range(301, 2048);
	case 1:
		return 1;
	default:
		return rnd_range(1, 300);
	}
}

/* One random trace; every result checked against the model. */
static void run_trace(uint64_t base, uint64_t limit, uint64_t lazy_max,
		      long ops)
{
	struct vmap_params p = { .nr_nodes = 1,
				 .lazy_max_pages = lazy_max,
				 .flags = VMAP_DETERMINISTIC |
					  VMAP_KERNEL_POOLS };
	uint64_t size, align, vstart, vend, addr, lo = 0, hi = 0, purges, span;
	struct live *live = calloc((size_t)ops, sizeof(*live));
	size_t nlive = 0, i;
	struct vmap_space *s;
	struct vmap_stats st = { .size = sizeof(st) };
	struct model m;
	bool may_fail, fits;
	long op;
	int rc;

	assert_int(vmap_space_create(base, limit, &p, &s), ==, 0);
	model_init(&m, base, limit, PAGE, lazy_max);
	span = limit - base;
	for (op = 0; op < ops; op++) {
		unsigned kind = (unsigned)(rnd() % 100);

		if (kind < 55) {
			size = pick_pages() * PAGE;
			align = pick_align();
			if (size > span)
				continue;
			vstart = vend = 0;
			if (kind < 15) {
				/* A window of random placement and length. */
				vstart = base + rnd() % (span - size + 1);
				vend = vstart + size +
				       rnd() % (limit - vstart - size + 1);
			} else if (kind < 20) {
				/* An exact window, aligned more often than not. */
				vstart = base + (rnd() % (span - size + 1));
				if (rnd() % 4)
					vstart = (vstart + align - 1) &
						 ~(align - 1);
				if (vstart < base || vstart > limit - size)
					continue;
				vend = vstart + size;
			}
			purges = full_purges(s);
			rc = vmap_alloc(s, size, align, vstart, vend, 0, &addr);
			if (!vstart && !vend) {
				vstart = base;
				vend = limit;
			}
			if (align < PAGE)
				align = PAGE;
			if (full_purges(s) != purges) {
				/* The library found no room before purging. */
				fits = model_bounds(&m, size, align, vstart,
						    vend, &lo, &hi, &may_fail);
				if (align <= PAGE || vend - vstart == size)
					assert_true(!fits);
				else
					assert_true(may_fail);
				model_purge(&m);
			}
			fits = model_bounds(&m, size, align, vstart, vend, &lo,
					    &hi, &may_fail);
			if (rc == -ENOMEM) {
				if (align <= PAGE || vend - vstart == size)
					assert_true(!fits);
				else
					assert_true(may_fail);
				continue;
			}
			assert_int(rc, ==, 0);
			assert_true(fits);
			assert_u64(addr, >=, lo);
			if (align <= PAGE)
				assert_u64(addr, ==, lo);
			else
				assert_u64(addr, <=, hi);
			assert_u64(addr & (align - 1), ==, 0);
			assert_true(addr >= vstart && addr + size <= vend);
			assert_true(model_take(&m, addr, size));
			live[nlive].start = addr;
			live[nlive].size = size;
			nlive++;
		} else if (kind < 93 && nlive) {
			i = rnd() % nlive;
			assert_int(vmap_free(s, live[i].start), ==, 0);
			if (model_free(&m, live[i].start,
				       live[i].start + live[i].size))
				model_purge(&m);
			live[i] = live[--nlive];
		} else if (kind >= 93) {
			assert_int(vmap_purge(s), ==, 0);
			model_purge(&m);
		}
		if (op % 64 == 0) {
			uint64_t model_free_bytes = 0;

			assert_space_ok(s);
			vmap_stats_get(s, -1, &st);
			for (i = 0; i < m.nfree; i++)
				model_free_bytes +=
					m.free[i].end - m.free[i].start;
			assert_u64(st.free_bytes, ==, model_free_bytes);
			assert_u64(st.lazy_pages, ==, m.lazy_pages);
		}
	}
	for (i = 0; i < nlive; i++)
		assert_int(vmap_free(s, live[i].start), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	assert_space_ok(s);
	vmap_stats_get(s, -1, &st);
	assert_u64(st.free_bytes, ==, span);
	vmap_space_destroy(s);
	model_fini(&m);
	free(live);
}

TEST(large_space)
{
	run_trace(0x100000000ull, 0x100000000ull + (64ull << 30), 512,
		  scaled(4000));
}

TEST(small_space_exhausts)
{
	/* 8 MiB: 2048 pages, so 300-page requests run out quickly. */
	run_trace(0x40000000ull, 0x40000000ull + (8ull << 20), 256,
		  scaled(6000));
}

TEST(tiny_space_many_purges)
{
	run_trace(0x7000, 0x7000 + (1ull << 20), 16, scaled(4000));
}

TEST(kernel_vmalloc_window)
{
	run_trace(0xffffc90000000000ull, 0xffffe90000000000ull, 8192,
		  scaled(3000));
}

TEST(space_ending_at_top_of_range)
{
	run_trace(0xfffffffffff00000ull, 0xfffffffffffff000ull, 32,
		  scaled(3000));
}

int main(int argc, char **argv)
{
	return test_main(argc, argv,
			 (struct test[]){ T(large_space),
					  T(small_space_exhausts),
					  T(tiny_space_many_purges),
					  T(kernel_vmalloc_window),
					  T(space_ending_at_top_of_range),
					  { 0 } });
}
