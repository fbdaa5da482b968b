/* SPDX-License-Identifier: MIT */
/*
 * test_record.c - recording with VMAP_TRACE and replaying the recording
 * with vmap-replay (argv[1] is its path), through the public API only:
 * a one-thread run on a space with nodes and the asynchronous drain comes
 * back with every address the program got; a two-thread run replays in
 * recorded order with no difference; constrained calls (xalloc, reserve,
 * add) replay with the same results; each further space records to its
 * own file; a forked child does not write to the parent's file; a file
 * that cannot be opened refuses the space.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "replay_harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x40000000ull
#define PAGES 4096ull

static char path[256], out_path[256], err_path[256];

/* Paths in the scratch directory (made once replay_test_main() made it). */
static void scratch_paths(void)
{
	snprintf(path, sizeof(path), "%s/trace", dir);
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	snprintf(err_path, sizeof(err_path), "%s/err", dir);
}

/* vmap-replay --verify on @trace; its exit status, stdout into @out. */
static int run_replay(const char *trace, char *out, size_t len)
{
	char cmd[1024];
	int status;

	snprintf(cmd, sizeof(cmd), "%s --verify --check %s >%s 2>%s", replay,
		 trace, out_path, err_path);
	status = system(cmd);
	slurp(out_path, out, len);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The file the last recorded_space() writes: PATH, then PATH.2, PATH.3... */
static char trace_file[300];

static struct vmap_space *recorded_space_over(uint64_t base, uint64_t limit,
					      const struct vmap_params *p)
{
	struct vmap_space *s = NULL;
	static unsigned spaces;

	scratch_paths();
	if (++spaces == 1)
		snprintf(trace_file, sizeof(trace_file), "%s", path);
	else
		snprintf(trace_file, sizeof(trace_file), "%s.%u", path, spaces);
	setenv("VMAP_TRACE", path, 1);
	assert_int(vmap_space_create(base, limit, p, &s), ==, 0);
	unsetenv("VMAP_TRACE");
	return s;
}

static struct vmap_space *recorded_space(unsigned nodes, uint64_t lazy_max)
{
	struct vmap_params p = { .nr_nodes = nodes,
				 .lazy_max_pages = lazy_max };

	return recorded_space_over(BASE, BASE + PAGES * PAGE, &p);
}

static char expect[1 << 20], got[1 << 20], err[1 << 16];

/*
 * One thread, two nodes, a small threshold: the drain thread purges
 * whenever it gets to it, and the replay must still land every
 * allocation where the program's did, failures included.
 */
TEST(one_thread_round_trip_same_addresses)
{
	struct vmap_space *s = recorded_space(2, 64);
	uint64_t live[256], addr, size, align;
	size_t nlive = 0, el = 0, i;
	long op;
	int rc;

	for (op = 0; op < scaled(3000); op++) {
		unsigned kind = (unsigned)(rnd() % 16);

		vmap_set_thread_cpu((int)(rnd() % 3));
		if (kind < 9 || !nlive) {
			size = rnd_range(1, kind == 0 ? 400 : 12) * PAGE;
			align = kind == 1 ? 16 * PAGE : PAGE;
			rc = vmap_alloc(s, size, align, 0, 0, 0, &addr);
			if (rc) {
				expect_int(rc, ==, -ENOMEM);
				el += (size_t)sprintf(expect + el,
						      "none ENOMEM\n");
				continue;
			}
			el += (size_t)sprintf(expect + el, "0x%llx 0x%llx\n",
					      (unsigned long long)addr,
					      (unsigned long long)addr);
			if (nlive == 256)
				vmap_free(s, live[--nlive]);
			live[nlive++] = addr;
		} else if (kind < 14) {
			i = rnd() % nlive;
			assert_int(vmap_free(s, live[i]), ==, 0);
			live[i] = live[--nlive];
		} else if (kind == 14) {
			vmap_purge(s);
		} else {
			vmap_shrink(s);
		}
	}
	/* Refused calls leave a line only where the replay needs one. */
	expect_int(vmap_free(s, BASE + PAGE / 2), ==, -ENOENT);
	expect_int(vmap_alloc(s, 3, PAGE, 0, 0, 0, &addr), ==, -EINVAL);
	el += (size_t)sprintf(expect + el, "none EINVAL\n");
	vmap_set_thread_cpu(-1);
	vmap_space_destroy(s);

	expect_int(run_replay(trace_file, got, sizeof(got)), ==, 0);
	if (strcmp(got, expect)) {
		for (i = 0; got[i] == expect[i]; i++)
			;
		fprintf(stderr,
			"first difference at byte %zu: got '%.40s' want '%.40s'\n",
			i, got + i, expect + i);
		expect_true(!"replayed addresses equal the recorded run's");
	}
	slurp(err_path, err, sizeof(err));
	expect_true(strstr(err, " 0 replayed differently") != NULL);
	expect_true(strstr(err, "largest") && strstr(err, "pooled"));
}

/*
 * vmap_xalloc, vmap_reserve and vmap_space_add are recorded too: a space
 * of 16-byte granules up to 2^64, immediate free and the best-fit index,
 * with a second span added, replays with every result the same.
 */
TEST(constrained_calls_round_trip)
{
	static const unsigned flag_sets[] = {
		0,
		VMAP_EXACT_FIT,
		VMAP_TOPDOWN,
		VMAP_BESTFIT,
		VMAP_EXACT_FIT | VMAP_NOPURGE,
	};
	struct vmap_params p = { .granule = 16,
				 .nr_nodes = 1,
				 .flags = VMAP_IMMEDIATE_FREE |
					  VMAP_BESTFIT_INDEX };
	const uint64_t top = 1ull << 40;
	struct vmap_space *s = recorded_space_over(top, 0, &p);
	uint64_t live[128], addr;
	size_t nlive = 0, i;
	long op;

	assert_int(vmap_space_add(s, 0x1000, 0x100000), ==, 0);
	for (op = 0; op < scaled(2000); op++) {
		unsigned kind = (unsigned)(rnd() % 8);
		struct vmap_request r = { 0 };

		if (kind < 4 || !nlive) {
			r.size = rnd_range(1, 64) * 16;
			r.align = 16ull << rnd_range(0, 8);
			r.phase = kind == 0 ? (rnd() % r.align) & ~15ull : 0;
			r.nocross = kind == 1 ? 4096 : 0;
			r.flags = flag_sets[rnd() % 5];
			if (vmap_xalloc(s, &r, &addr) || nlive == 128)
				continue;
			live[nlive++] = addr;
		} else if (kind == 4) {
			addr = (rnd_range(0x1000, 0xfff00) & ~15ull);
			if (!vmap_reserve(s, addr, 256, 0) && nlive < 128)
				live[nlive++] = addr;
		} else {
			i = rnd() % nlive;
			assert_int(vmap_free(s, live[i]), ==, 0);
			live[i] = live[--nlive];
		}
	}
	vmap_space_destroy(s);
	expect_int(run_replay(trace_file, got, sizeof(got)), ==, 0);
	slurp(err_path, err, sizeof(err));
	expect_true(strstr(err, " 0 replayed differently") != NULL);
	if (!strstr(err, " 0 replayed differently"))
		fprintf(stderr, "%s", err);
}

struct worker {
	struct vmap_space *s;
	uint64_t rng;
	unsigned allocs;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t live[64], addr;
	unsigned nlive = 0, i;
	long op;

	for (op = 0; op < scaled(2000); op++) {
		w->rng = w->rng * 6364136223846793005ull +
			 1442695040888963407ull;
		if ((w->rng >> 33) % 3 || !nlive) {
			if (vmap_alloc(w->s, ((w->rng >> 40) % 8 + 1) * PAGE,
				       PAGE, 0, 0, 0, &addr))
				continue;
			w->allocs++;
			if (nlive == 64)
				vmap_free(w->s, live[--nlive]);
			live[nlive++] = addr;
		} else {
			i = (unsigned)((w->rng >> 45) % nlive);
			vmap_free(w->s, live[i]);
			live[i] = live[--nlive];
		}
	}
	while (nlive)
		vmap_free(w->s, live[--nlive]);
	return NULL;
}

/* Two threads: the recording is one order of their calls, replayed as is. */
TEST(two_threads_replay_in_recorded_order)
{
	struct worker w[2];
	pthread_t t[2];
	size_t lines = 0, i;
	int k;

	w[0].s = w[1].s = recorded_space(2, 32);
	for (k = 0; k < 2; k++) {
		w[k].rng = rnd();
		w[k].allocs = 0;
		assert_int(pthread_create(&t[k], NULL, work, &w[k]), ==, 0);
	}
	for (k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	vmap_space_destroy(w[0].s);

	expect_int(run_replay(trace_file, got, sizeof(got)), ==, 0);
	for (i = 0; got[i]; i++)
		lines += got[i] == '\n';
	expect_u64(lines, ==, w[0].allocs + w[1].allocs);
}

/* The n-th space recording in a process writes PATH.n, from n = 2. */
TEST(each_space_its_own_file)
{
	struct vmap_space *a = recorded_space(1, 0), *b;
	char first[300], cmd[700];
	uint64_t addr;

	snprintf(first, sizeof(first), "%s", trace_file);
	b = recorded_space(1, 0);
	expect_true(strcmp(first, trace_file) != 0);
	expect_int(vmap_alloc(b, PAGE, PAGE, 0, 0, 0, &addr), ==, 0);
	vmap_space_destroy(a);
	vmap_space_destroy(b);
	snprintf(
		cmd, sizeof(cmd),
		"grep -q '^alloc 0x%llx 4096 4096 ' %s && ! grep -q '^alloc' %s",
		(unsigned long long)addr, trace_file, first);
	expect_int(system(cmd), ==, 0);
}

/* A forked child goes on using the space, but the file stays the parent's. */
TEST(forked_child_does_not_record)
{
	struct vmap_space *s = recorded_space(1, 0);
	uint64_t a, b, c;
	char cmd[600];
	int status;
	pid_t pid;

	assert_int(vmap_alloc(s, PAGE, PAGE, 0, 0, 0, &a), ==, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(vmap_alloc(s, 2 * PAGE, PAGE, 0, 0, 0, &c) ||
				      vmap_free(s, a) ?
			      1 :
			      0);
	assert_int(waitpid(pid, &status, 0), ==, pid);
	expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int(vmap_alloc(s, 3 * PAGE, PAGE, 0, 0, 0, &b), ==, 0);
	vmap_space_destroy(s);
	snprintf(cmd, sizeof(cmd),
		 "test \"$(grep -c '^alloc\\|^free' %s)\" = 2", trace_file);
	expect_int(system(cmd), ==, 0);
	expect_int(run_replay(trace_file, got, sizeof(got)), ==, 0);
}

TEST(unwritable_trace_refuses_the_space)
{
	struct vmap_space *s = NULL;
	char bad[300];

	snprintf(bad, sizeof(bad), "%s/no/such/dir/trace", dir);
	setenv("VMAP_TRACE", bad, 1);
	expect_int(vmap_space_create(BASE, BASE + PAGES * PAGE, NULL, &s), ==,
		   -ENOENT);
	unsetenv("VMAP_TRACE");
	expect_true(s == NULL);
}

int main(int argc, char **argv)
{
	return replay_test_main(
		argc, argv,
		(struct test[]){ T(one_thread_round_trip_same_addresses),
				 T(constrained_calls_round_trip),
				 T(two_threads_replay_in_recorded_order),
				 T(each_space_its_own_file),
				 T(forked_child_does_not_record),
				 T(unwritable_trace_refuses_the_space),
				 { 0 } });
}
