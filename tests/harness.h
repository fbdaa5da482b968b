/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the in-tree test harness.
 *
 *   TEST(name) { ... }          define a test
 *   return test_main(argc, argv, (struct test[]){ T(a), T(b), {0} });
 *
 *   expect_*(...)               record a failure, print both sides, go on
 *   assert_*(...)               the same, then end the current test
 *   test_skip("why")            end the current test as skipped
 *
 * Environment: VMAP_TEST_SEED (the seed of every randomized test; printed
 * on failure), VMAP_TEST_SCALE (multiplies iteration counts: 0.1 for a
 * slow machine or a sanitizer, 10 for a long run), VMAP_TEST_FILTER (run
 * only tests whose name contains it).  A forked child that outlives its
 * watchdog (test_run_forked) is killed after gdb, if installed, printed
 * its threads' stacks.  Exit code: 0 all passed, 1 a
 * failure, 77 all skipped.  The last line is "name: N passed, N failed".
 */
#ifndef VMAP_TEST_HARNESS_H
#define VMAP_TEST_HARNESS_H

#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct test {
	const char *name;
	void (*fn)(void);
};

#define TEST(name) static void name(void)
#define T(name)                                                                \
	{                                                                      \
#name, name                                                    \
	}

static uint64_t test_seed = 1;
static double test_scale = 1.0;
static int test_failed_now, test_skipped_now;
static jmp_buf test_jmp;

static inline void test_fail_at(const char *file, int line)
{
	fprintf(stderr,
		"  at %s:%d (seed %" PRIu64 ", VMAP_TEST_SEED to repeat)\n",
		file, line, test_seed);
	test_failed_now = 1;
}

#define test_check(ok, fatal, fmt, ...)                                        \
	do {                                                                   \
		if (!(ok)) {                                                   \
			fprintf(stderr, "FAIL: " fmt "\n", __VA_ARGS__);       \
			test_fail_at(__FILE__, __LINE__);                      \
			if (fatal)                                             \
				longjmp(test_jmp, 1);                          \
		}                                                              \
	} while (0)

#define test_cmp_int(a, op, b, fatal)                                          \
	do {                                                                   \
		long long va_ = (long long)(a), vb_ = (long long)(b);          \
		test_check(va_ op vb_, fatal, "%s %s %s: %lld vs %lld", #a,    \
			   #op, #b, va_, vb_);                                 \
	} while (0)

#define test_cmp_u64(a, op, b, fatal)                                          \
	do {                                                                   \
		uint64_t va_ = (uint64_t)(a), vb_ = (uint64_t)(b);             \
		test_check(va_ op vb_, fatal,                                  \
			   "%s %s %s: 0x%" PRIx64 " vs 0x%" PRIx64, #a, #op,   \
			   #b, va_, vb_);                                      \
	} while (0)

#define expect_int(a, op, b) test_cmp_int(a, op, b, 0)
#define assert_int(a, op, b) test_cmp_int(a, op, b, 1)
#define expect_u64(a, op, b) test_cmp_u64(a, op, b, 0)
#define assert_u64(a, op, b) test_cmp_u64(a, op, b, 1)
#define expect_true(c) test_check((c), 0, "%s", #c)
#define assert_true(c) test_check((c), 1, "%s", #c)

/* A vmap_check() that must pass; prints what broke. */
#define assert_space_ok(space)                                                 \
	do {                                                                   \
		char msg_[256];                                                \
		int rc_ = vmap_check((space), msg_, sizeof(msg_));             \
		test_check(rc_ == 0, 1, "vmap_check: %d: %s", rc_, msg_);      \
	} while (0)

#define test_skip(why)                                                         \
	do {                                                                   \
		fprintf(stderr, "SKIP: %s\n", why);                            \
		test_skipped_now = 1;                                          \
		longjmp(test_jmp, 1);                                          \
	} while (0)

/*
 * splitmix64: small, fast, and every seed is a good one.  rnd() draws
 * from the test's stream; rnd_from() from a thread's own @state.
 */
static uint64_t rnd_state;

static inline uint64_t rnd_from(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rnd(void)
{
	return rnd_from(&rnd_state);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static inline long scaled(long n)
{
	long v = (long)(n * test_scale);

	return v < 1 ? 1 : v;
}

/*
 * Run @fn in a forked child with a watchdog: the child's own failures
 * count there (its exit status says pass or fail), and a child still
 * running after @timeout_s seconds is killed, so that a deadlock fails
 * the test rather than hanging the suite.  Returns the child's exit
 * status, or -1 if it hung or died of a signal (both printed).
 */
/*
 * Every thread's stack of a hung child, with gdb where it is installed,
 * so that a deadlock that shows once in many runs can be read.
 */
static inline void test_print_stacks(pid_t pid)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd),
		 "command -v gdb >/dev/null && gdb -p %ld -batch -nx "
		 "-ex 'thread apply all bt' 2>&1 | grep -v '^\\[' >&2",
		 (long)pid);
	fflush(NULL);
	if (system(cmd) == -1)
		fprintf(stderr, "no stacks: cannot run a shell\n");
}

static inline int test_run_forked(void (*fn)(void), unsigned timeout_s)
{
	unsigned waited_ms;
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		test_failed_now = 0;
		if (!setjmp(test_jmp))
			fn();
		fflush(NULL);
		_exit(test_failed_now ? 1 : 0);
	}
	for (waited_ms = 0; waited_ms < timeout_s * 1000u; waited_ms += 10) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (WIFEXITED(status))
				return WEXITSTATUS(status);
			fprintf(stderr, "child died of signal %d\n",
				WTERMSIG(status));
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "child still running after %u s: killed (deadlock?)\n",
		timeout_s);
	test_print_stacks(pid);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static inline int test_main(int argc, char **argv, const struct test *test_list)
{
	const char *env, *filter = getenv("VMAP_TEST_FILTER");
	/* Static: setjmp() may not preserve automatic variables. */
	static int passed, failed, skipped;
	static const struct test *tests;
	const char *prog =
		strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	(void)argc;
	if ((env = getenv("VMAP_TEST_SEED")))
		test_seed = strtoull(env, NULL, 0);
	if ((env = getenv("VMAP_TEST_SCALE")))
		test_scale = strtod(env, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (tests = test_list; tests->name; tests++) {
		if (filter && !strstr(tests->name, filter))
			continue;
		test_failed_now = test_skipped_now = 0;
		rnd_state = test_seed;
		if (!setjmp(test_jmp))
			tests->fn();
		if (test_skipped_now && !test_failed_now) {
			printf("skip %s\n", tests->name);
			skipped++;
		} else if (test_failed_now) {
			printf("FAIL %s\n", tests->name);
			failed++;
		} else {
			printf("ok   %s\n", tests->name);
			passed++;
		}
	}
	printf("%s: %d passed, %d failed, %d skipped\n", prog, passed, failed,
	       skipped);
	if (failed)
		return 1;
	return passed ? 0 : 77;
}

#endif /* VMAP_TEST_HARNESS_H */
