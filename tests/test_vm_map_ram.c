/* SPDX-License-Identifier: MIT */
/*
 * test_vm_map_ram.c - vm_map_ram()'s per-CPU blocks through the public
 * API: mappings of 1..VMAP_MAX_ALLOC pages from many threads (the
 * mappers of stress.h: each page of each mapping claimed in a shadow map,
 * a page handed out twice is a failed claim, and its contents stamped and
 * verified), with vm_unmap_aliases() among them; vmap_heap_check()
 * (the space and every block) after the threads; blocks going back to the
 * heap and their addresses reused once their chunks are unmapped and
 * aliases flushed; the alias an unmapped chunk leaves until
 * vm_unmap_aliases(); mappings above VMAP_MAX_ALLOC; vmallocinfo's
 * "vm_map_ram" lines; bad input; blocks of sparse CPU numbers purged
 * through their own queues; and vmalloc over released blocks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"
#include "stress.h"
#include "vmap.h"

#define THREADS 4

static size_t page;

static struct vmap_heap *new_heap(void)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30 };
	struct vmap_heap *h = NULL;

	return vmap_heap_create(&p, &h) ? NULL : h;
}

static void heap_check_ok(struct vmap_heap *h)
{
	char msg[256];
	int rc = vmap_heap_check(h, msg, sizeof(msg));

	test_check(rc == 0, 1, "vmap_heap_check: %d: %s", rc, msg);
}

struct thread_arg {
	struct mapper m;
	long rounds;
};

static void *mapper_thread(void *arg)
{
	struct thread_arg *ta = arg;
	long r;

	if (mapper_init(&ta->m)) {
		map_report(ta->m.run, "no pages to map", NULL);
		return NULL;
	}
	for (r = 0; r < ta->rounds; r++)
		mapper_step(&ta->m);
	mapper_release_all(&ta->m);
	return NULL;
}

TEST(many_threads_contents_and_claims)
{
	static struct thread_arg args[THREADS];
	struct vmap_space_info info;
	pthread_t tid[THREADS];
	struct map_run run = { 0 };
	unsigned t;

	run.h = new_heap();
	assert_true(run.h != NULL);
	vmap_space_info(vmap_heap_space(run.h), &info);
	run.base = info.base;
	run.pages = (info.limit - info.base) / page;
	run.owner = calloc(run.pages, sizeof(*run.owner));
	assert_true(run.owner != NULL);
	for (t = 0; t < THREADS; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].m.run = &run;
		args[t].m.id = t;
		args[t].m.seed = test_seed * 131 + t;
		args[t].rounds = scaled(20000);
		assert_int(
			pthread_create(&tid[t], NULL, mapper_thread, &args[t]),
			==, 0);
	}
	for (t = 0; t < THREADS; t++)
		pthread_join(tid[t], NULL);
	expect_int(atomic_load(&run.errors), ==, 0);
	heap_check_ok(run.h);
	vmap_heap_vm_unmap_aliases(run.h);
	heap_check_ok(run.h);
	free(run.owner);
	vmap_heap_destroy(run.h);
}

/* Rounds of mapping a block's worth of chunks and unmapping them all:
 * blocks go back to the heap and their addresses come round again. */
TEST(blocks_reused_after_unmap_aliases)
{
	struct vmap_heap *h = new_heap();
	uint64_t pages[16], blocks[64], block_bytes = VMAP_BBMAP_BITS * page, b;
	char *m[VMAP_BBMAP_BITS / 16];
	struct vmap_heap_stats st = { .size = sizeof(st) };
	unsigned round, i, k, distinct = 0;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 16, pages), ==, 0);
	for (round = 0; round < 40; round++) {
		for (i = 0; i < VMAP_BBMAP_BITS / 16; i++) {
			m[i] = vmap_heap_vm_map_ram(h, pages, 16);
			assert_true(m[i] != NULL);
			m[i][0] = (char)i;
			b = (uint64_t)(uintptr_t)m[i] / block_bytes;
			for (k = 0; k < distinct && blocks[k] != b; k++)
				;
			if (k == distinct && distinct < 64)
				blocks[distinct++] = b;
		}
		for (i = 0; i < VMAP_BBMAP_BITS / 16; i++)
			assert_int(vmap_heap_vm_unmap_ram(h, m[i], 16), ==, 0);
		vmap_heap_vm_unmap_aliases(h);
		heap_check_ok(h);
	}
	/* Each round needs one or two blocks; without reuse, 40 or more. */
	expect_int(distinct, <=, 4);
	assert_int(vmap_heap_stats(h, &st), ==, 0);
	expect_u64(st.live_areas, <=, 2);
	vmap_pages_free(h, pages, 16);
	vmap_heap_destroy(h);
}

/* The byte at @p, or -1 if it cannot be read. */
static int peek(const char *p)
{
	char c;
	struct iovec local = { &c, 1 }, remote = { (void *)p, 1 };

	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != 1)
		return -1;
	return c;
}

TEST(alias_until_flushed)
{
	struct vmap_heap *h = new_heap();
	uint64_t pg;
	char *p, *q, buf[8];

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 1, &pg), ==, 0);
	p = vmap_heap_vm_map_ram(h, &pg, 1);
	q = vmap_heap_vm_map_ram(h, &pg, 1);
	assert_true(p != NULL && q != NULL && p != q);
	p[1] = 'a';
	expect_int(q[1], ==, 'a');
	assert_int(vmap_heap_vm_unmap_ram(h, p, 1), ==, 0);
	/*
	 * The alias: the old mapping still reaches the page (read by the
	 * kernel for us: a checker rightly calls a plain read a use after
	 * unmap).
	 */
	q[1] = 'b';
	expect_int(peek(p + 1), ==, 'b');
	vmap_heap_vm_unmap_aliases(h);
	expect_int(peek(p + 1), !=, 'b');
	/* Gone: vread sees no mapping there, the live one is intact. */
	assert_int(vmap_heap_vread(h, buf, p, sizeof(buf)), ==,
		   (int)sizeof(buf));
	expect_int(buf[1], ==, 0);
	expect_int(q[1], ==, 'b');
	heap_check_ok(h);
	assert_int(vmap_heap_vm_unmap_ram(h, q, 1), ==, 0);
	vmap_pages_free(h, &pg, 1);
	vmap_heap_destroy(h);
}

TEST(large_mappings_and_vmallocinfo)
{
	struct vmap_heap *h = vmap_default_heap();
	unsigned n = VMAP_MAX_ALLOC + 36, i, lines = 0;
	uint64_t *pages = calloc(n, sizeof(*pages));
	char line[256], *big, *small;
	FILE *f;

	assert_true(h != NULL && pages != NULL);
	assert_int(vmap_pages_alloc(h, n, pages), ==, 0);
	big = vm_map_ram(pages, n);
	small = vm_map_ram(pages, 3);
	assert_true(big != NULL && small != NULL);
	for (i = 0; i < n; i++)
		big[i * page] = (char)i;
	for (i = 0; i < 3; i++)
		expect_int(small[i * page], ==, (char)i);
	f = tmpfile();
	assert_true(f != NULL);
	assert_int(vmallocinfo(f), ==, 0);
	rewind(f);
	while (fgets(line, sizeof(line), f))
		lines += strstr(line, " vm_map_ram\n") != NULL;
	fclose(f);
	expect_int(lines, >=, 2); /* the large area and the block */
	vm_unmap_ram(big, n);
	vm_unmap_ram(small, 3);
	vm_unmap_aliases();
	assert_int(vmap_heap_check(h, line, sizeof(line)), ==, 0);
	vmap_pages_free(h, pages, n);
	free(pages);
}

TEST(bad_input_refused)
{
	struct vmap_heap *h = new_heap();
	uint64_t pg[2], bad;
	char *p, *v;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 2, pg), ==, 0);
	bad = pg[1] + 1;
	expect_true(vmap_heap_vm_map_ram(h, &bad, 1) == NULL);
	expect_int(errno, ==, EINVAL);
	bad = 1ull << 40;
	expect_true(vmap_heap_vm_map_ram(h, &bad, 1) == NULL);
	expect_true(vmap_heap_vm_map_ram(h, pg, 0) == NULL);
	expect_true(vmap_heap_vm_map_ram(h, NULL, 1) == NULL);
	/* Nothing mapped yet: no block to find. */
	expect_int(vmap_heap_vm_unmap_ram(h, pg, 1), ==, -EINVAL);
	p = vmap_heap_vm_map_ram(h, pg, 2);
	v = vmap_heap_vmalloc(h, page);
	assert_true(p != NULL && v != NULL);
	expect_int(vmap_heap_vm_unmap_ram(h, p, 1), ==,
		   -EINVAL); /* wrong count */
	expect_int(vmap_heap_vm_unmap_ram(h, p + page, 1), ==, -EINVAL);
	expect_int(vmap_heap_vm_unmap_ram(h, p + 8 * page, 2), ==, -EINVAL);
	expect_int(vmap_heap_vm_unmap_ram(h, v, 2), ==, -EINVAL);
	expect_int(vmap_heap_vm_unmap_ram(h, v, VMAP_MAX_ALLOC + 1), ==,
		   -EINVAL);
	expect_int(vmap_heap_vm_unmap_ram(h, p, 0), ==, -EINVAL);
	vmap_heap_vfree(h, p); /* refused: a block chunk */
	heap_check_ok(h);
	assert_int(vmap_heap_vm_unmap_ram(h, p, 2), ==, 0);
	expect_int(vmap_heap_vm_unmap_ram(h, p, 2), ==, -EINVAL); /* twice */
	vmap_heap_vfree(h, v);
	heap_check_ok(h);
	vmap_heap_destroy(h);
}

/*
 * Blocks made on queues of sparse and huge CPU numbers, left fragmented
 * (nothing mapped, less than 1/16 unused), then purged by
 * vm_unmap_aliases() from a thread of another CPU: each must leave the
 * queue it was made on (the kernel once purged through the purging CPU's
 * queue), and those CPUs then get new blocks.
 */
TEST(sparse_cpus_purged_through_their_queues)
{
	static const int cpus[] = { 1, 7, 1000, 65535 };
	struct vmap_heap *h = new_heap();
	char *m[16], *again;
	uint64_t pg[VMAP_MAX_ALLOC];
	unsigned c, i;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, VMAP_MAX_ALLOC, pg), ==, 0);
	for (c = 0; c < sizeof(cpus) / sizeof(cpus[0]); c++) {
		vmap_set_thread_cpu(cpus[c]);
		/* 15 chunks of 64 and one of 32: 32 pages left unused. */
		for (i = 0; i < 16; i++) {
			m[i] = vmap_heap_vm_map_ram(h, pg, i < 15 ? 64 : 32);
			assert_true(m[i] != NULL);
		}
		for (i = 0; i < 16; i++)
			assert_int(vmap_heap_vm_unmap_ram(h, m[i],
							  i < 15 ? 64 : 32),
				   ==, 0);
	}
	heap_check_ok(h);
	vmap_set_thread_cpu(0);
	vmap_heap_vm_unmap_aliases(h);
	heap_check_ok(h);
	for (c = 0; c < sizeof(cpus) / sizeof(cpus[0]); c++) {
		vmap_set_thread_cpu(cpus[c]);
		again = vmap_heap_vm_map_ram(h, pg, 1);
		assert_true(again != NULL);
		again[0] = 1;
		assert_int(vmap_heap_vm_unmap_ram(h, again, 1), ==, 0);
	}
	vmap_set_thread_cpu(-1);
	heap_check_ok(h);
	vmap_pages_free(h, pg, VMAP_MAX_ALLOC);
	vmap_heap_destroy(h);
}

/*
 * A block released over space where vmalloc areas were, then vmalloc
 * areas again over the block: every byte usable, guards faulting (a
 * page-state map left stale by the block would skip one or the other).
 */
static void vmalloc_after_blocks(unsigned flags)
{
	struct vmap_heap_params hp = { .reserve_bytes = 1ull << 30,
				       .flags = flags,
				       .nr_nodes = 1 };
	unsigned n = 3 * VMAP_BBMAP_BITS, i;
	char **areas = calloc(n, sizeof(*areas)), *m[VMAP_BBMAP_BITS / 8];
	struct vmap_heap *h;
	uint64_t pg[5];

	assert_true(areas != NULL);
	assert_int(vmap_heap_create(&hp, &h), ==, 0);
	for (i = 0; i < n; i++)
		assert_true((areas[i] = vmap_heap_vmalloc(h, page)) != NULL);
	for (i = 0; i < n; i++)
		vmap_heap_vfree(h, areas[i]);
	vmap_purge(vmap_heap_space(h));
	/*
	 * 5-page mappings take 8-page chunks: pages 5-7 of each are never
	 * mapped, among them pages that were vmalloc bodies before.
	 */
	assert_int(vmap_pages_alloc(h, 5, pg), ==, 0);
	for (i = 0; i < VMAP_BBMAP_BITS / 8; i++)
		assert_true((m[i] = vmap_heap_vm_map_ram(h, pg, 5)) != NULL);
	for (i = 0; i < VMAP_BBMAP_BITS / 8; i++)
		assert_int(vmap_heap_vm_unmap_ram(h, m[i], 5), ==, 0);
	vmap_purge(vmap_heap_space(h));
	for (i = 0; i < n; i++) {
		areas[i] = vmap_heap_vmalloc(h, page);
		assert_true(areas[i] != NULL);
		memset(areas[i], 1, page); /* faults if left inaccessible */
	}
	heap_check_ok(h);
	for (i = 0; i < n; i++)
		vmap_heap_vfree(h, areas[i]);
	vmap_pages_free(h, pg, 5);
	free(areas);
	vmap_heap_destroy(h);
}

TEST(vmalloc_after_blocks_markers)
{
	vmalloc_after_blocks(0);
}

TEST(vmalloc_after_blocks_mprotect)
{
	vmalloc_after_blocks(VMAP_HEAP_MPROTECT_GUARDS);
}

int main(int argc, char **argv)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	return test_main(
		argc, argv,
		(struct test[]){ T(many_threads_contents_and_claims),
				 T(blocks_reused_after_unmap_aliases),
				 T(alias_until_flushed),
				 T(large_mappings_and_vmallocinfo),
				 T(bad_input_refused),
				 T(sparse_cpus_purged_through_their_queues),
				 T(vmalloc_after_blocks_markers),
				 T(vmalloc_after_blocks_mprotect),
				 { 0 } });
}
