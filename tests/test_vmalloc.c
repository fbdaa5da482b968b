/* SPDX-License-Identifier: MIT */
/*
 * test_vmalloc.c - the vmalloc layer (DESIGN.md section 11), through the
 * public API: memory usable to the last byte, guard pages that fault (in a
 * child), zeroed memory, the kernel's vrealloc sequence, memory released at
 * purge, batched releases, many threads with stamped contents, the default
 * heap from threads started before and after it exists, refusals of foreign
 * pointers, a heap whose reservation is refused, and vmallocinfo.
 */
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmap.h"

static size_t page;

static struct vmap_heap *new_heap(unsigned flags, uint64_t lazy_max)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30,
				      .flags = flags,
				      .lazy_max_pages = lazy_max };
	struct vmap_heap *h = NULL;

	return vmap_heap_create(&p, &h) ? NULL : h;
}

static void heap_ok(struct vmap_heap *h)
{
	assert_space_ok(vmap_heap_space(h));
}

TEST(every_byte_usable)
{
	static const size_t sizes[] = { 1,     100,	4096,	4097,
					65536, 1 << 20, 3 << 20 };
	struct vmap_heap *h = new_heap(0, 0);
	unsigned char *p;
	size_t i, j;

	assert_true(h != NULL);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = vmap_heap_vmalloc(h, sizes[i]);
		assert_true(p != NULL);
		expect_u64(vmap_heap_size(h, p), ==,
			   (sizes[i] + page - 1) / page * page);
		for (j = 0; j < vmap_heap_size(h, p); j++)
			p[j] = (unsigned char)(j * 7 + i);
		for (j = 0; j < vmap_heap_size(h, p); j++)
			if (p[j] != (unsigned char)(j * 7 + i))
				break;
		expect_u64(j, ==, vmap_heap_size(h, p));
		vmap_heap_vfree(h, p);
	}
	expect_true(vmap_heap_vmalloc(h, 0) == NULL);
	heap_ok(h);
	vmap_heap_destroy(h);
}

/* Run @fn in a child; return the signal that ended it, 0 if none. */
static int signal_of(void (*fn)(void *), void *arg)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler */
		fn(arg);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void touch_byte(void *p)
{
	*(volatile char *)p = 1;
}

/* Both mechanisms: guard markers (where the kernel has them) and mprotect. */
static void guards_fault(unsigned mechanism)
{
	struct vmap_heap *h = new_heap(mechanism, 0);
	struct vmap_heap *below =
		new_heap(mechanism | VMAP_HEAP_GUARD_BELOW, 0);
	char *a, *b, *c;

	assert_true(h != NULL && below != NULL);
	vmap_set_thread_cpu(0); /* one node's pool, whatever CPU runs us */
	a = vmap_heap_vmalloc(h, 3 * page);
	assert_true(a != NULL);
	expect_int(signal_of(touch_byte, a + 3 * page - 1), ==, 0);
	expect_int(signal_of(touch_byte, a + 3 * page), ==,
		   SIGSEGV); /* one byte over */
	/* A reused area keeps its guard: free, purge, allocate the same size. */
	vmap_heap_vfree(h, a);
	vmap_purge(vmap_heap_space(h));
	a = vmap_heap_vmalloc(h, 3 * page);
	expect_int(signal_of(touch_byte, a + 3 * page), ==, SIGSEGV);
	/* Another shape over the same pages: old guards gone, new one there. */
	vmap_heap_vfree(h, a);
	vmap_purge(vmap_heap_space(h));
	vmap_shrink(vmap_heap_space(h));
	c = vmap_heap_vmalloc(h, 5 * page);
	expect_true(c == a);
	expect_int(signal_of(touch_byte, c + 3 * page), ==, 0);
	expect_int(signal_of(touch_byte, c + 5 * page), ==, SIGSEGV);
	/* Guard below, for stacks that grow down. */
	b = vmap_heap_vmalloc(below, page);
	expect_int(signal_of(touch_byte, b), ==, 0);
	expect_int(signal_of(touch_byte, b - 1), ==, SIGSEGV);
	vmap_heap_vfree(h, c);
	vmap_heap_vfree(below, b);
	vmap_set_thread_cpu(-1);
	vmap_heap_destroy(h);
	vmap_heap_destroy(below);
}

TEST(guard_page_faults_markers)
{
	struct vmap_heap_stats st = { .size = sizeof(st) };
	struct vmap_heap *h = new_heap(0, 0);

	assert_true(h != NULL);
	vmap_heap_stats(h, &st);
	vmap_heap_destroy(h);
	if (!st.guard_markers)
		test_skip("this kernel has no MADV_GUARD_INSTALL");
	guards_fault(0);
}

TEST(guard_page_faults_mprotect)
{
	struct vmap_heap_stats st = { .size = sizeof(st) };
	struct vmap_heap *h = new_heap(VMAP_HEAP_MPROTECT_GUARDS, 0);

	assert_true(h != NULL);
	vmap_heap_stats(h, &st);
	expect_int(st.guard_markers, ==, 0);
	vmap_heap_destroy(h);
	guards_fault(VMAP_HEAP_MPROTECT_GUARDS);
}

TEST(default_heap_guard)
{
	char *a = vmalloc(3 * page);

	assert_true(a != NULL);
	expect_int(signal_of(touch_byte, a + 3 * page), ==, SIGSEGV);
	vfree(a);
}

TEST(memory_reads_zero)
{
	struct vmap_heap *h = new_heap(0, 0);
	unsigned char *p, *q;
	size_t i, bad = 0;

	assert_true(h != NULL);
	p = vzalloc(5 * page);
	assert_true(p != NULL);
	for (i = 0; i < 5 * page; i++)
		bad += p[i] != 0;
	vfree(p);
	/* Dirty an area, free it, purge: the same range comes back zeroed. */
	vmap_set_thread_cpu(0);
	p = vmap_heap_vmalloc(h, 2 * page);
	memset(p, 0xa5, 2 * page);
	vmap_heap_vfree(h, p);
	vmap_purge(vmap_heap_space(h));
	q = vmap_heap_vmalloc(h, 2 * page);
	expect_true(q == p);
	for (i = 0; i < 2 * page; i++)
		bad += q[i] != 0;
	expect_u64(bad, ==, 0);
	vmap_heap_vfree(h, q);
	vmap_set_thread_cpu(-1);
	vmap_heap_destroy(h);
}

/* The kernel's vrealloc_test: 1 page, 4 pages, 1 page, half a page, a page. */
/* Under ASan, a vfree'd area is poisoned at once: the next access reports. */
TEST(use_after_vfree_reported)
{
#if defined(__SANITIZE_ADDRESS__)
	char *p = vmalloc(page), report[4096] = "";
	FILE *log = tmpfile();
	int status;
	pid_t pid;

	assert_true(p != NULL && log != NULL);
	p[0] = 1;
	vfree(p);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(fileno(log), 2);
		*(volatile char *)p = 2;
		_exit(0);
	}
	waitpid(pid, &status, 0);
	rewind(log);
	report[fread(report, 1, sizeof(report) - 1, log)] = '\0';
	fclose(log);
	expect_true(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	expect_true(strstr(report, "use-after-poison") != NULL);
	/* Handed out again, the same pages are usable. */
	vmap_purge(vmap_heap_space(vmap_default_heap()));
	p = vmalloc(page);
	p[0] = 3;
	vfree(p);
#else
	test_skip("not built with AddressSanitizer");
#endif
}

TEST(vrealloc_keeps_contents)
{
	static const double steps[] = { 1, 4, 1, 0.5, 1 };
	unsigned char *p = NULL;
	size_t size, keep = 0, i, k, bad = 0;

	for (k = 0; k < 5; k++) {
		size = (size_t)(steps[k] * page);
		p = vrealloc(p, size);
		assert_true(p != NULL);
		for (i = 0; i < keep && i < size; i++)
			bad += p[i] != (unsigned char)(i * 13);
		for (i = 0; i < size; i++)
			p[i] = (unsigned char)(i * 13);
		keep = size;
	}
	expect_u64(bad, ==, 0);
	/* Shrinking zeroes the tail, so growing in place reads zero there. */
	p = vrealloc(p, 100);
	p = vrealloc(p, page);
	for (i = 100; i < page; i++)
		bad += p[i] != 0;
	expect_u64(bad, ==, 0);
	expect_true(vrealloc(p, 0) == NULL);
	expect_u64(vmalloc_size(p), ==, 0);
}

static long resident_pages(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss;
}

TEST(purge_releases_memory_in_batches)
{
	struct vmap_heap *h = new_heap(0, 0);
	struct vmap_heap_stats st = { .size = sizeof(st) };
	long before, touched, after;
	char *p[64];
	int i;

	assert_true(h != NULL);
	if (resident_pages() < 0)
		test_skip("no /proc/self/statm");
	before = resident_pages();
	for (i = 0; i < 64; i++) {
		p[i] = vmap_heap_vmalloc(h, 1 << 20);
		assert_true(p[i] != NULL);
		memset(p[i], 1, 1 << 20);
	}
	touched = resident_pages();
	expect_int(touched - before, >=, (long)(48 << 20) / (long)page);
	for (i = 0; i < 64; i++)
		vmap_heap_vfree(h, p[i]);
	vmap_purge(vmap_heap_space(h));
	after = resident_pages();
	expect_int(touched - after, >=, (long)(48 << 20) / (long)page);
	assert_int(vmap_heap_stats(h, &st), ==, 0);
	/* 64 adjacent areas freed together: released in one run, not 64. */
	expect_u64(st.released_runs, ==, 1);
	expect_u64(st.released_bytes, ==, 64 * ((1 << 20) + page));
	expect_u64(st.live_areas, ==, 0);
	heap_ok(h);
	vmap_heap_destroy(h);
}

TEST(steady_stream_needs_few_system_calls)
{
	struct vmap_heap *h = new_heap(0, 0);
	struct vmap_heap_stats st = { .size = sizeof(st) };
	int i, n = 20000;
	char *p;

	assert_true(h != NULL);
	vmap_set_thread_cpu(0);
	for (i = 0; i < n; i++) {
		p = vmap_heap_vmalloc(h, page);
		assert_true(p != NULL);
		p[0] = 1;
		vmap_heap_vfree(h, p);
	}
	vmap_set_thread_cpu(-1);
	vmap_heap_stats(h, &st);
	/*
	 * Frees are released in batches at the purge, not one call each;
	 * and all calls together stay well under mmap+munmap's 2 per pair,
	 * even counting the first fill of the pool, where each area is new
	 * and gets its guard (the first lazy_max_pages / 2 pairs).
	 */
	expect_u64(st.syscalls_madvise, <=, (uint64_t)n / 100);
	expect_u64(st.syscalls_mprotect + st.syscalls_madvise +
			   st.syscalls_guard,
		   <, (uint64_t)n);
	vmap_heap_destroy(h);
}

struct stamp_args {
	struct vmap_heap *h;
	unsigned id;
	int errors;
};

static void *stamp_worker(void *arg)
{
	struct stamp_args *a = arg;
	struct vmap_heap *h = a->h ? a->h : vmap_default_heap();
	uint64_t st = a->id * 7919 + 1;
	unsigned *p[16] = { 0 };
	size_t n[16] = { 0 }, k, i;
	int round;

	for (round = 0; round < scaled(3000); round++) {
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		k = (st >> 33) % 16;
		if (p[k]) {
			for (i = 0; i < n[k]; i++)
				if (p[k][i] != (a->id << 24 | (unsigned)i))
					a->errors++;
			vmap_heap_vfree(h, p[k]);
			p[k] = NULL;
		} else {
			n[k] = 1 + (st >> 40) % 5000;
			p[k] = a->h ? vmap_heap_vmalloc(
					      a->h, n[k] * sizeof(unsigned)) :
				      vmalloc(n[k] * sizeof(unsigned));
			if (!p[k]) {
				a->errors++;
				continue;
			}
			for (i = 0; i < n[k]; i++)
				p[k][i] = a->id << 24 | (unsigned)i;
		}
	}
	for (k = 0; k < 16; k++)
		vmap_heap_vfree(h, p[k]);
	return NULL;
}

TEST(threads_stamp_and_verify)
{
	struct vmap_heap *h = new_heap(0, 256);
	struct stamp_args a[6];
	pthread_t t[6];
	int i;

	assert_true(h != NULL);
	for (i = 0; i < 6; i++) {
		a[i] = (struct stamp_args){ .h = h, .id = (unsigned)i + 1 };
		pthread_create(&t[i], NULL, stamp_worker, &a[i]);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		expect_int(a[i].errors, ==, 0);
	}
	vmap_purge(vmap_heap_space(h));
	heap_ok(h);
	vmap_heap_destroy(h);
}

static pthread_barrier_t go;

static void *late_worker(void *arg)
{
	pthread_barrier_wait(&go);
	return stamp_worker(arg);
}

/* Threads started before the default heap exists race to create it. */
TEST(default_heap_from_threads_before_and_after)
{
	struct stamp_args a[4];
	pthread_t t[4];
	int i;

	pthread_barrier_init(&go, NULL, 3);
	for (i = 0; i < 2; i++) {
		a[i] = (struct stamp_args){ .h = NULL, .id = (unsigned)i + 10 };
		pthread_create(&t[i], NULL, late_worker, &a[i]);
	}
	pthread_barrier_wait(&go); /* both call vmalloc() first, together */
	assert_true(vmap_default_heap() != NULL);
	for (i = 2; i < 4; i++) {
		a[i] = (struct stamp_args){ .h = NULL, .id = (unsigned)i + 10 };
		pthread_create(&t[i], NULL, stamp_worker, &a[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		expect_int(a[i].errors, ==, 0);
	}
	pthread_barrier_destroy(&go);
	assert_space_ok(vmap_heap_space(vmap_default_heap()));
}

TEST(foreign_pointers_refused)
{
	char *mine = vmalloc(page), *other = malloc(64), line[256] = "";
	FILE *err = tmpfile();
	int saved = dup(2);

	assert_true(mine != NULL && err != NULL);
	fflush(stderr);
	dup2(fileno(err), 2);
	vfree(other);
	vfree(mine + page); /* inside the heap, not an area's start */
	vfree(mine);
	vfree(mine); /* twice */
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(err);
	expect_true(fgets(line, sizeof(line), err) && strstr(line, "vfree:"));
	fclose(err);
	expect_true(vrealloc(other, 10) == NULL);
	expect_u64(vmalloc_size(other), ==, 0);
	assert_space_ok(vmap_heap_space(vmap_default_heap()));
	free(other);
}

TEST(refused_reservation_is_an_error)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 62 };
	struct vmap_heap *h = (void *)1;

	expect_int(vmap_heap_create(&p, &h), ==, -ENOMEM);
	p.reserve_bytes = 0;
	p.flags = 1u << 9;
	expect_int(vmap_heap_create(&p, &h), ==, -EINVAL);
	p.flags = 0;
	p.reserved[1] = 1;
	expect_int(vmap_heap_create(&p, &h), ==, -EINVAL);
}

/* Global, so that dladdr() finds it in the dynamic symbol table. */
void *named_caller(struct vmap_heap *h);
__attribute__((noinline, visibility("default"))) void *
named_caller(struct vmap_heap *h)
{
	void *p = vmap_heap_vmalloc(h, 4 * page);

	__asm__ volatile(
		"" ::
			: "memory"); /* not a tail call: keep the caller */
	return p;
}

TEST(vmallocinfo_format)
{
	struct vmap_heap *h = new_heap(0, 1 << 20);
	char line[512], *buf = NULL;
	size_t len = 0;
	int busy = 0, lazy = 0, named = 0, busy_after_lazy = 0, cpu;
	void *more[4];
	regex_t busy_re, lazy_re;
	void *a, *b;
	FILE *f;

	assert_true(h != NULL);
	regcomp(&busy_re,
		"^0x[0-9a-f]{16}-0x[0-9a-f]{16} +[0-9]+ [^ ]+ pages=[0-9]+ vmalloc$",
		REG_EXTENDED | REG_NOSUB);
	regcomp(&lazy_re,
		"^0x[0-9a-f]{16}-0x[0-9a-f]{16} +[0-9]+ unpurged vm_area$",
		REG_EXTENDED | REG_NOSUB);
	a = named_caller(h);
	b = vmap_heap_vmalloc(h, page);
	vmap_heap_vfree(h, b);
	/* Areas of other CPUs' nodes, half of them lazy. */
	for (cpu = 0; cpu < 4; cpu++) {
		vmap_set_thread_cpu(cpu);
		more[cpu] = vmap_heap_vmalloc(h, (size_t)(cpu + 1) * page);
		if (cpu % 2)
			vmap_heap_vfree(h, more[cpu]);
	}
	vmap_set_thread_cpu(-1);
	f = open_memstream(&buf, &len);
	assert_int(vmap_heap_info(h, f), ==, 0);
	fclose(f);
	f = fmemopen(buf, len, "r");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!regexec(&busy_re, line, 0, NULL, 0)) {
			busy++;
			busy_after_lazy +=
				lazy > 0; /* the kernel lists lazy ones last */
			/* 4 pages + guard = 20480 bytes, as the kernel prints. */
			named += strstr(line, " 20480 named_caller+0x") &&
				 strstr(line, "pages=4");
		} else if (!regexec(&lazy_re, line, 0, NULL, 0)) {
			lazy++;
		} else {
			fprintf(stderr, "unexpected line: %s\n", line);
			busy = -100;
		}
	}
	fclose(f);
	free(buf);
	expect_int(busy, ==, 3);
	expect_int(lazy, ==, 3);
	expect_int(named, ==, 1);
	expect_int(busy_after_lazy, ==, 0);
	regfree(&busy_re);
	regfree(&lazy_re);
	vmap_heap_vfree(h, a);
	vmap_heap_vfree(h, more[0]);
	vmap_heap_vfree(h, more[2]);
	vmap_heap_destroy(h);
}

int main(int argc, char **argv)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	return test_main(
		argc, argv,
		(struct test[]){ T(every_byte_usable),
				 T(guard_page_faults_markers),
				 T(guard_page_faults_mprotect),
				 T(default_heap_guard),
				 T(memory_reads_zero),
				 T(use_after_vfree_reported),
				 T(vrealloc_keeps_contents),
				 T(purge_releases_memory_in_batches),
				 T(steady_stream_needs_few_system_calls),
				 T(threads_stamp_and_verify),
				 T(default_heap_from_threads_before_and_after),
				 T(foreign_pointers_refused),
				 T(refused_reservation_is_an_error),
				 T(vmallocinfo_format),
				 { 0 } });
}
