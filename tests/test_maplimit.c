/* SPDX-License-Identifier: MIT */
/*
 * test_maplimit.c - the vmalloc layer's mprotect guards hold their bound
 * on mappings (DESIGN.md section 11): a burst of areas freed on one
 * CPU and allocated again on another reaches the bound again, and a churn
 * of thousands of live areas of random sizes runs for a million
 * operations without ENOMEM.
 *
 * Runs in release builds only: the sanitizers' own mappings and shadow
 * memory cannot run at vm.max_map_count, so under them it is skipped.
 * Public header only.
 */
#include <errno.h>
#include <stdio.h>

#include "harness.h"
#include "vmap.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static long mappings_now(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/*
 * The documented bound: two mappings per live area (its body and its
 * guard), out of what vm.max_map_count leaves the process; the slack
 * covers mappings other code of the process makes meanwhile.
 */
static long area_bound(void)
{
	long max = read_long("/proc/sys/vm/max_map_count"),
	     used = mappings_now();

	if (max < 0 || used < 0)
		return -1;
	return (max - used - 256) / 2;
}

static struct vmap_heap *mprotect_heap(void)
{
	struct vmap_heap_params hp = { .reserve_bytes = 4ull << 30,
				       .nr_nodes = 2,
				       .flags = VMAP_HEAP_MPROTECT_GUARDS };
	struct vmap_heap *h = NULL;

	if (vmap_heap_create(&hp, &h))
		return NULL;
	return h;
}

static void skip_unless_release(void)
{
#ifdef SANITIZED
	test_skip(
		"sanitizer builds cannot run at vm.max_map_count; runs in make check's release pass");
#endif
}

TEST(burst_freed_on_one_cpu_fits_again_on_another)
{
	static void *areas[1 << 20];
	struct vmap_heap *h;
	long bound, i, round;

	skip_unless_release();
	bound = area_bound();
	if (bound <= 0 || bound > (long)(sizeof(areas) / sizeof(areas[0])))
		test_skip(
			"cannot read vm.max_map_count, or it is too large to test");
	h = mprotect_heap();
	assert_true(h);
	for (round = 0; round < 2; round++) {
		/* CPU 0 first, then CPU 1, whose node has no pooled area. */
		vmap_set_thread_cpu((int)round);
		for (i = 0; i < bound; i++) {
			areas[i] = vmap_heap_vmalloc(h, 4096);
			if (!areas[i]) {
				fprintf(stderr,
					"round %ld: area %ld of %ld refused: %s\n",
					round, i, bound, strerror(errno));
				break;
			}
			*(volatile char *)areas[i] = 1;
		}
		expect_int(i, ==, bound);
		while (i--)
			vmap_heap_vfree(h, areas[i]);
		assert_int(vmap_purge(vmap_heap_space(h)), ==, 0);
	}
	vmap_set_thread_cpu(-1);
	printf("     %ld live areas twice (vm.max_map_count %ld)\n", bound,
	       read_long("/proc/sys/vm/max_map_count"));
	assert_space_ok(vmap_heap_space(h));
	vmap_heap_destroy(h);
}

TEST(churn_of_thousands_never_runs_out_of_mappings)
{
	enum { LIVE = 4000 };
	static void *live[LIVE];
	struct vmap_heap *h;
	long ops, n = 1000000, refused = 0;
	unsigned k;

	skip_unless_release();
	h = mprotect_heap();
	assert_true(h);
	for (ops = 0; ops < n && !refused; ops++) {
		k = (unsigned)(rnd() % LIVE);
		vmap_set_thread_cpu((int)(ops & 1));
		vmap_heap_vfree(h, live[k]);
		live[k] = vmap_heap_vmalloc(h, rnd_range(1, 4) * 4096);
		if (!live[k]) {
			fprintf(stderr, "operation %ld refused: %s\n", ops,
				strerror(errno));
			refused++;
		}
	}
	vmap_set_thread_cpu(-1);
	expect_int(refused, ==, 0);
	printf("     %ld operations over %d live areas\n", ops, LIVE);
	for (k = 0; k < LIVE; k++)
		vmap_heap_vfree(h, live[k]);
	assert_space_ok(vmap_heap_space(h));
	vmap_heap_destroy(h);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){
			T(burst_freed_on_one_cpu_fits_again_on_another),
			T(churn_of_thousands_never_runs_out_of_mappings),
			{ 0 } });
}
