/* SPDX-License-Identifier: MIT */
/*
 * test_vmap_pages.c - the page pool and vmap() through the public API:
 * a ring buffer mapped twice back to back (a write across its end reads
 * back at its start), one page mapped many times (a write through one
 * mapping is seen through all), pages zeroed when handed out, the guard
 * page after a vmap area, vunmap putting the reservation back, the
 * default heap's vmap/vunmap, vmallocinfo's "vmap" and "vmalloc user"
 * (vmalloc_user) lines and its busy areas in address order across nodes,
 * and bad input:
 * pages not from the pool, count 0, flags, unmapping what was not mapped,
 * vfree of a vmap area and vunmap of a vmalloc area.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmap.h"

static size_t page;

static struct vmap_heap *new_heap(void)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30 };
	struct vmap_heap *h = NULL;

	return vmap_heap_create(&p, &h) ? NULL : h;
}

TEST(ring_buffer_mirrored)
{
	struct vmap_heap *h = new_heap();
	uint64_t pages[8], twice[16];
	size_t n = 4, i, size;
	char *ring, msg[64];

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, n, pages), ==, 0);
	for (i = 0; i < 2 * n; i++)
		twice[i] = pages[i % n];
	ring = vmap_heap_vmap(h, twice, 2 * n, 0);
	assert_true(ring != NULL);
	size = n * page;
	/* A record written across the end of the buffer, in one memcpy. */
	memcpy(ring + size - 10, "across-the-end-of-the-ring", 27);
	expect_int(memcmp(ring, "-end-of-the-ring", 17), ==, 0);
	memcpy(msg, ring + size - 10, 27);
	expect_int(strcmp(msg, "across-the-end-of-the-ring"), ==, 0);
	/* Every byte of the first copy is the same byte of the second. */
	for (i = 0; i < size; i += 97)
		ring[i] = (char)(i * 31);
	for (i = 0; i < size; i += 97)
		expect_int(ring[i + size], ==, (char)(i * 31));
	assert_space_ok(vmap_heap_space(h));
	assert_int(vmap_heap_vunmap(h, ring), ==, 0);
	assert_int(vmap_pages_free(h, pages, n), ==, 0);
	vmap_heap_destroy(h);
}

TEST(same_page_many_times)
{
	struct vmap_heap *h = new_heap();
	uint64_t pg, same[64];
	char *maps[16];
	size_t i, k;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 1, &pg), ==, 0);
	for (i = 0; i < 64; i++)
		same[i] = pg;
	for (k = 0; k < 16; k++) {
		maps[k] = vmap_heap_vmap(h, same, 1 + k * 4, 0);
		assert_true(maps[k] != NULL);
	}
	maps[3][5] = 'x';
	for (k = 0; k < 16; k++)
		for (i = 0; i < 1 + k * 4; i++)
			expect_int(maps[k][i * page + 5], ==, 'x');
	for (k = 0; k < 16; k++)
		assert_int(vmap_heap_vunmap(h, maps[k]), ==, 0);
	assert_space_ok(vmap_heap_space(h));
	vmap_purge(vmap_heap_space(h));
	assert_space_ok(vmap_heap_space(h));
	assert_int(vmap_pages_free(h, &pg, 1), ==, 0);
	vmap_heap_destroy(h);
}

TEST(pages_zeroed_and_reused)
{
	struct vmap_heap *h = new_heap();
	uint64_t a, b;
	char *p;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 1, &a), ==, 0);
	p = vmap_heap_vmap(h, &a, 1, 0);
	assert_true(p != NULL);
	memset(p, 0x5a, page);
	assert_int(vmap_heap_vunmap(h, p), ==, 0);
	assert_int(vmap_pages_free(h, &a, 1), ==, 0);
	assert_int(vmap_pages_alloc(h, 1, &b), ==, 0);
	expect_u64(b, ==, a);
	p = vmap_heap_vmap(h, &b, 1, 0);
	assert_true(p != NULL);
	expect_int(p[0], ==, 0);
	expect_int(p[page - 1], ==, 0);
	assert_int(vmap_heap_vunmap(h, p), ==, 0);
	vmap_pages_free(h, &b, 1);
	vmap_heap_destroy(h);
}

static void touch_byte(char *p)
{
	*(volatile char *)p = 1;
}

/* The page after a vmap area faults; the area's memory is gone after
 * vunmap and the purge (the reservation is back: a vmalloc reuses it).
 * The thread counts as one CPU throughout: the purge pools the area in
 * its CPU's node, which a thread moved to another CPU would not look in. */
TEST(guard_and_unmap)
{
	struct vmap_heap *h = new_heap();
	uint64_t pg[2];
	char *p, *q;
	pid_t pid;
	int status;

	assert_true(h != NULL);
	assert_int(vmap_set_thread_cpu(0), ==, 0);
	assert_int(vmap_pages_alloc(h, 2, pg), ==, 0);
	p = vmap_heap_vmap(h, pg, 2, 0);
	assert_true(p != NULL);
	p[0] = 7;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		touch_byte(p + 2 * page);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	expect_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	assert_int(vmap_heap_vunmap(h, p), ==, 0);
	vmap_purge(vmap_heap_space(h));
	q = vmap_heap_vmalloc(h, 2 * page);
	assert_true(q != NULL);
	expect_true(q == p);
	expect_int(q[0], ==, 0); /* fresh memory, not the page */
	vmap_heap_vfree(h, q);
	vmap_pages_free(h, pg, 2);
	vmap_heap_destroy(h);
	vmap_set_thread_cpu(-1);
}

TEST(bad_input_refused)
{
	struct vmap_heap *h = new_heap(), *other = new_heap();
	uint64_t pg, two[2], foreign, bad;
	char *p, *v;

	assert_true(h != NULL && other != NULL);
	/* Before any page exists there is no pool to name one. */
	bad = 0;
	expect_true(vmap_heap_vmap(h, &bad, 1, 0) == NULL);
	expect_int(errno, ==, EINVAL);
	assert_int(vmap_pages_alloc(h, 1, &pg), ==, 0);
	assert_int(vmap_pages_alloc(other, 2, two), ==, 0);
	assert_int(vmap_pages_alloc(other, 1, &foreign), ==, 0);
	/* Offset 2 pages: allocated in the other pool, not in ours. */
	expect_true(vmap_heap_vmap(h, &foreign, 1, 0) == NULL);
	expect_int(errno, ==, EINVAL);
	bad = pg + 1;
	expect_true(vmap_heap_vmap(h, &bad, 1, 0) == NULL);
	expect_true(vmap_heap_vmap(h, &pg, 0, 0) == NULL);
	expect_true(vmap_heap_vmap(h, &pg, 1, 1) == NULL);
	expect_true(vmap_heap_vmap(h, NULL, 1, 0) == NULL);
	expect_int(vmap_pages_alloc(h, 0, &bad), ==, -EINVAL);
	expect_int(vmap_pages_free(h, &bad, 1), ==, -EINVAL);
	expect_int(vmap_pages_free(h, &foreign, 1), ==, -EINVAL);

	p = vmap_heap_vmap(h, &pg, 1, 0);
	assert_true(p != NULL);
	v = vmap_heap_vmalloc(h, page);
	assert_true(v != NULL);
	expect_int(vmap_heap_vunmap(h, p + page), ==, -EINVAL);
	expect_int(vmap_heap_vunmap(h, v), ==, -EINVAL);   /* not a vmap area */
	expect_int(vmap_heap_vunmap(h, &pg), ==, -EINVAL); /* not in the heap */
	vmap_heap_vfree(h, p); /* refused: a vmap area */
	expect_u64(vmap_heap_size(h, p), ==, 0);
	p[0] = 3; /* still mapped */
	assert_space_ok(vmap_heap_space(h));
	assert_int(vmap_heap_vunmap(h, p), ==, 0);
	expect_int(vmap_heap_vunmap(h, p), ==, -EINVAL); /* twice */
	vmap_heap_vfree(h, v);
	assert_space_ok(vmap_heap_space(h));
	vmap_heap_destroy(h);
	vmap_heap_destroy(other);
}

TEST(default_heap_and_vmallocinfo)
{
	struct vmap_heap *h = vmap_default_heap();
	char line[256], want[64], want_user[64];
	bool seen = false, seen_user = false;
	uint64_t pg[3], start, last = 0;
	char *p, *u, *spread[8];
	unsigned i;
	FILE *f;

	assert_true(h != NULL);
	assert_int(vmap_pages_alloc(h, 3, pg), ==, 0);
	p = vmap(pg, 3, 0);
	u = vmalloc_user(2 * page);
	assert_true(p != NULL && u != NULL);
	/* Areas of every node (zones of 16 pages alternate between nodes). */
	for (i = 0; i < 8; i++) {
		spread[i] = vmalloc((i + 1) * 5 * page);
		assert_true(spread[i] != NULL);
	}
	p[0] = 1;
	expect_int(u[2 * page - 1], ==, 0);
	f = tmpfile();
	assert_true(f != NULL);
	assert_int(vmallocinfo(f), ==, 0);
	rewind(f);
	snprintf(want, sizeof(want), "0x%016llx-",
		 (unsigned long long)(uintptr_t)p);
	snprintf(want_user, sizeof(want_user), "0x%016llx-",
		 (unsigned long long)(uintptr_t)u);
	while (fgets(line, sizeof(line), f)) {
		/* Busy areas come in address order, across nodes. */
		if (!strstr(line, "unpurged")) {
			start = strtoull(line, NULL, 16);
			expect_u64(start, >=, last);
			last = start;
		}
		if (!strncmp(line, want, strlen(want)))
			seen = strstr(line, " pages=3 vmap\n") != NULL;
		if (!strncmp(line, want_user, strlen(want_user)))
			seen_user =
				strstr(line, " pages=2 vmalloc user\n") != NULL;
	}
	fclose(f);
	expect_true(seen);
	expect_true(seen_user);
	expect_u64(vmalloc_size(u), ==, 2 * page);
	for (i = 0; i < 8; i++)
		vfree(spread[i]);
	vfree(u);
	vunmap(p);
	assert_int(vmap_pages_free(h, pg, 3), ==, 0);
}

int main(int argc, char **argv)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	return test_main(argc, argv,
			 (struct test[]){ T(ring_buffer_mirrored),
					  T(same_page_many_times),
					  T(pages_zeroed_and_reused),
					  T(guard_and_unmap),
					  T(bad_input_refused),
					  T(default_heap_and_vmallocinfo),
					  { 0 } });
}
