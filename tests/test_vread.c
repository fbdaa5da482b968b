/* SPDX-License-Identifier: MIT */
/*
 * test_vread.c - vread() through the public API: one read across
 * vmalloc areas, their guard pages, a lazy area, a purged hole, a vmap
 * area and a vm_map_ram chunk must give each area's contents and zeros
 * everywhere else; reads racing with threads that allocate, fill, free
 * and purge must never fault and must see, page by page, either zeros or
 * one whole fill (with guard markers and with mprotect guards); bad input.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vmap.h"

static size_t page;

static struct vmap_heap *new_heap(unsigned flags)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30,
				      .flags = flags,
				      .nr_nodes = 2 };
	struct vmap_heap *h = NULL;

	return vmap_heap_create(&p, &h) ? NULL : h;
}

/* Mark [p, p + len) in @want, a copy of the stretch from @from. */
static void expect_at(char *want, const char *from, const char *p, size_t len,
		      char c)
{
	memset(want + (p - from), c, len);
}

TEST(areas_holes_guards_lazy)
{
	struct vmap_heap *h = new_heap(0);
	char *a, *b, *lazy, *hole, *mapped, *ram, *from, *want, *got;
	uint64_t pg[3];
	size_t len;

	assert_true(h != NULL);
	a = vmap_heap_vmalloc(h, 3 * page);
	hole = vmap_heap_vmalloc(h, 2 * page);
	b = vmap_heap_vmalloc(h, 2 * page);
	assert_true(a && hole && b);
	vmap_heap_vfree(h, hole);
	vmap_purge(vmap_heap_space(h)); /* a hole between a and b */
	lazy = vmap_heap_vmalloc(h, page);
	assert_true(lazy != NULL);
	assert_int(vmap_pages_alloc(h, 3, pg), ==, 0);
	mapped = vmap_heap_vmap(h, pg, 2, 0);
	ram = vmap_heap_vm_map_ram(h, pg, 3);
	assert_true(mapped && ram);
	memset(a, 'A', 3 * page);
	memset(b, 'B', 2 * page);
	memset(lazy, 'L', page);
	memset(mapped, 'P', 2 * page);	   /* pages 0 and 1 of the pool */
	memset(ram + 2 * page, 'R', page); /* page 2 */
	vmap_heap_vfree(h, lazy);	   /* lazy: its 'L's must not show */
	from = a < mapped ? a : mapped;
	len = (size_t)((ram > mapped ? ram + 4 * page : mapped + 3 * page) -
		       from);
	if ((size_t)(lazy + 2 * page - from) > len)
		len = (size_t)(lazy + 2 * page - from);
	want = calloc(1, len);
	got = malloc(len);
	assert_true(want && got);
	expect_at(want, from, a, 3 * page, 'A');
	expect_at(want, from, b, 2 * page, 'B');
	expect_at(want, from, mapped, 2 * page, 'P');
	expect_at(want, from, ram, 2 * page, 'P');
	expect_at(want, from, ram + 2 * page, page, 'R');
	/* The chunk's fourth page (3 pages take 4) is not mapped: zeros. */
	assert_int(vmap_heap_vread(h, got, from, len), ==, (long)len);
	expect_int(memcmp(got, want, len), ==, 0);
	/* A read that starts and ends inside areas. */
	assert_int(vmap_heap_vread(h, got, a + 100, 3 * page), ==,
		   (long)(3 * page));
	expect_int(got[0], ==, 'A');
	expect_int(got[3 * page - 101], ==, 'A');
	expect_int(got[3 * page - 100], ==, 0); /* a's guard page */
	vmap_heap_vm_unmap_ram(h, ram, 3);
	vmap_heap_vunmap(h, mapped);
	vmap_pages_free(h, pg, 3);
	vmap_heap_vfree(h, a);
	vmap_heap_vfree(h, b);
	free(want);
	free(got);
	vmap_heap_destroy(h);
}

struct race {
	struct vmap_heap *h;
	char *first; /* the lowest area: reads start there */
	atomic_bool stop;
	atomic_int errors;
	long rounds;
	uint64_t seed;
};

static void *churn(void *arg)
{
	struct race *r = arg;
	uint64_t s = r->seed;
	char *live[16] = { 0 };
	size_t sizes[16];
	long i;
	unsigned k;

	for (i = 0; i < r->rounds; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		k = (unsigned)(s >> 33) % 16;
		if (live[k]) {
			vmap_heap_vfree(r->h, live[k]);
			live[k] = NULL;
			if ((s >> 20) % 8 == 0)
				vmap_purge(vmap_heap_space(r->h));
			continue;
		}
		sizes[k] = (1 + (s >> 40) % 4) * page;
		live[k] = vmap_heap_vmalloc(r->h, sizes[k]);
		if (live[k])
			memset(live[k], 1 + (int)(s >> 50) % 250, sizes[k]);
	}
	for (k = 0; k < 16; k++)
		vmap_heap_vfree(r->h, live[k]);
	atomic_store(&r->stop, true);
	return NULL;
}

/*
 * Every page read holds zeros and at most one other byte value: a fill
 * may be caught half done, but bytes of two fills, or of anything else,
 * in one page would be a read of something that is not an area's.
 */
static void *reader(void *arg)
{
	struct race *r = arg;
	size_t len = 128 * page, p, i;
	char *buf = malloc(len), v;

	while (buf && !atomic_load(&r->stop)) {
		if (vmap_heap_vread(r->h, buf, r->first, len) != (long)len)
			atomic_fetch_add(&r->errors, 1);
		for (p = 0; p < len; p += page) {
			v = 0;
			for (i = 0; i < page; i++) {
				if (!buf[p + i] || buf[p + i] == v)
					continue;
				if (v) {
					atomic_fetch_add(&r->errors, 1);
					break;
				}
				v = buf[p + i];
			}
		}
	}
	free(buf);
	return NULL;
}

static void race_with_frees(unsigned flags)
{
	struct race r = { 0 };
	pthread_t t[3];
	unsigned k;

	r.h = new_heap(flags);
	assert_true(r.h != NULL);
	r.first = vmap_heap_vmalloc(r.h, page);
	assert_true(r.first != NULL);
	memset(r.first, 9, page);
	r.rounds = scaled(20000);
	r.seed = test_seed;
	assert_int(pthread_create(&t[0], NULL, churn, &r), ==, 0);
	assert_int(pthread_create(&t[1], NULL, reader, &r), ==, 0);
	assert_int(pthread_create(&t[2], NULL, reader, &r), ==, 0);
	for (k = 0; k < 3; k++)
		pthread_join(t[k], NULL);
	expect_int(atomic_load(&r.errors), ==, 0);
	vmap_heap_vfree(r.h, r.first);
	assert_space_ok(vmap_heap_space(r.h));
	vmap_heap_destroy(r.h);
}

TEST(concurrent_frees_guard_markers)
{
	race_with_frees(0);
}

TEST(concurrent_frees_mprotect_guards)
{
	race_with_frees(VMAP_HEAP_MPROTECT_GUARDS);
}

TEST(bad_input_refused)
{
	struct vmap_heap *h = new_heap(0);
	char buf[16], *a;

	assert_true(h != NULL);
	a = vmap_heap_vmalloc(h, page);
	assert_true(a != NULL);
	expect_int(vmap_heap_vread(h, buf, buf, sizeof(buf)), ==, -EINVAL);
	expect_int(vmap_heap_vread(h, NULL, a, sizeof(buf)), ==, -EINVAL);
	expect_int(vmap_heap_vread(h, buf, a, (size_t)-1), ==, -EINVAL);
	expect_int(vmap_heap_vread(h, buf, a, 0), ==, 0);
	expect_int(vmap_heap_vread(NULL, buf, a, 1), ==, -EINVAL);
	a[0] = 'x';
	expect_int(vread(buf, a, 1), ==, -EINVAL); /* not the default heap */
	vmap_heap_vfree(h, a);
	vmap_heap_destroy(h);
}

int main(int argc, char **argv)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	return test_main(argc, argv,
			 (struct test[]){ T(areas_holes_guards_lazy),
					  T(concurrent_frees_guard_markers),
					  T(concurrent_frees_mprotect_guards),
					  T(bad_input_refused),
					  { 0 } });
}
