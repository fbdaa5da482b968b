/* SPDX-License-Identifier: MIT */
/*
 * test_replay.c - vmap-replay as a user runs it (argv[1] is its path):
 * hand-checked traces with their expected output, random traces against
 * the linear model (one node: placement must be exact), determinism with
 * several nodes, and bad lines refused with the line number and exit 2.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "model.h"
#include "replay_harness.h"

#define PAGE 4096ull

struct result {
	int status;
	char out[1 << 20];
	char err[4096];
};

/* Run vmap-replay ARGS on @trace; capture stdout, stderr, exit status. */
static void run(const char *args, const char *trace, struct result *r)
{
	char cmd[1024], path[256], out[256], err[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	f = fopen(path, "w");
	fputs(trace, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s %s %s >%s 2>%s", replay, args, path, out,
		 err);
	r->status = system(cmd);
	r->status = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

static struct result res;

/* Worked by hand from DESIGN.md sections 2, 3, 10 (base 0x100000, 16 pages). */
TEST(hand_checked_trace)
{
	static const char trace[] =
		"# comments and blank lines are ignored\n"
		"\n"
		"alloc a 4096 4096\n"			      /* 0x100000 */
		"alloc b 0x2000 1   # align 1 means a page\n" /* 0x101000 */
		"free a\n"	      /* lazy: not reused */
		"alloc c 4096 4096\n" /* 0x103000 */
		"purge\n"
		"alloc d 4096 4096\n"			/* 0x100000 again */
		"free nobody\n"				/* warning, skipped */
		"alloc e 0 4096\n"			/* EINVAL: size 0 */
		"alloc f 4096 3\n"			/* EINVAL: align */
		"alloc g 0x4000 0x4000\n"		/* 0x104000 */
		"alloc h 4096 4096 0x10f000 0x110000\n" /* last page */
		"alloc i 4096 4096 0x10f000 0x110000\n" /* ENOMEM */
		"alloc j 8192 4096 0x10f000 0x110000\n" /* EINVAL: window < size */
		"alloc k 0x10000 4096\n";		/* ENOMEM: full */
	static const char expect[] =
		"a 0x100000\nb 0x101000\nc 0x103000\nd 0x100000\ne EINVAL\n"
		"f EINVAL\ng 0x104000\nh 0x10f000\ni ENOMEM\nj EINVAL\nk ENOMEM\n";

	run("--base=0x100000 --limit=0x110000 --check", trace, &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, expect) == 0);
	if (strcmp(res.out, expect))
		fprintf(stderr, "got:\n%s", res.out);
	expect_true(strstr(res.err, "line 9") && strstr(res.err, "nobody"));
}

TEST(threshold_purges_in_line)
{
	/* lazy max 2 pages: the third freed page purges, so x reuses a. */
	static const char trace[] =
		"alloc a 4096 4096\nalloc b 4096 4096\nalloc c 4096 4096\n"
		"free a\nfree b\nalloc y 4096 4096\nfree c\nalloc x 4096 4096\n";

	run("--base=0x100000 --limit=0x110000 --lazy-max-pages=2", trace, &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, "a 0x100000\nb 0x101000\nc 0x102000\n"
				    "y 0x103000\nx 0x100000\n") == 0);
}

/*
 * A recording's header sets the space and turns threshold purges off;
 * "shrink" empties the pools; the comment's cpu= picks the node; a result
 * that differs is counted.
 */
TEST(recording_header_and_fields)
{
	static const char trace[] =
		"# vmap-trace 1 base=0x200000 limit=0x220000 page_shift=12 nodes=2 flags=0x0\n"
		"alloc 0x200000 4096 4096 # cpu=1 ret=0x200000\n"
		"alloc 0x201000 4096 4096 # cpu=1 ret=0x201000\n"
		"free 0x200000 # cpu=1\n"
		"free 0x201000\n"
		"alloc 0x202000 4096 4096 # cpu=1 ret=0x202000\n"
		"purge\n"
		"alloc 0x201000 4096 4096 # cpu=1 ret=0x201000\n" /* node 1's pool, LIFO */
		"alloc 0x202000x 4096 4096 # cpu=0 ret=0x200000\n" /* differs */
		"shrink\n"
		"alloc none 8192 4096 0x200000 0x201000 # ret=EINVAL\n";
	static const char expect[] =
		"0x200000 0x200000\n0x201000 0x201000\n0x202000 0x202000\n"
		"0x201000 0x201000\n0x202000x 0x203000\nnone EINVAL\n";

	run("--check", trace, &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, expect) == 0);
	if (strcmp(res.out, expect))
		fprintf(stderr, "got:\n%s", res.out);
	expect_true(strstr(res.err, "6 recorded allocations, 1 replayed "
				    "differently") != NULL);
	expect_true(strstr(res.err, "line 9: recorded 0x200000, replayed "
				    "0x203000") != NULL);
	expect_true(strstr(res.err, "pooled 0 pages") != NULL);
	run("--verify", trace, &res);
	expect_int(res.status, ==, 1);
	/* Without the header, 'shrink' parses too. */
	run("--base=0x100000 --limit=0x110000",
	    "alloc a 4096 4096\nfree a\npurge\nshrink\nalloc b 4096 4096\n",
	    &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, "a 0x100000\nb 0x100000\n") == 0);
}

/*
 * Up to version 2 a recorded space of one node had no pools: its trace
 * replays as the kernel's one node.  From version 3 one node keeps the
 * default pools, so the same lines replay differently (a miss refills
 * its pool from the middle of the space, and the next allocation hits),
 * with a warning until version 5 (pools filled by demand in 4, busy
 * nodes' pools decaying at their decay points in 5).
 */
TEST(one_node_version_2_has_no_pools)
{
	static const char lines[] =
		" base=0x100000000 limit=0x140000000 page_shift=12 nodes=1 flags=0x0 lazy_max_pages=16384\n"
		"alloc a 4096 4096 # ret=0x100000000\n"
		"alloc b 4096 4096 # ret=0x100001000\n"
		"free a\n"
		"purge\n"
		"alloc c 4096 4096 # ret=0x100000000\n";
	char trace[512];

	snprintf(trace, sizeof(trace), "# vmap-trace 2%s", lines);
	run("--verify", trace, &res);
	expect_int(res.status, ==, 0);
	expect_true(strstr(res.err, "3 recorded allocations, 0 replayed "
				    "differently") != NULL);
	snprintf(trace, sizeof(trace), "# vmap-trace 3%s", lines);
	run("--verify", trace, &res);
	expect_int(res.status, ==, 1);
	expect_true(strstr(res.err, "placement may differ") != NULL);
	snprintf(trace, sizeof(trace), "# vmap-trace 4%s", lines);
	run("--verify", trace, &res);
	expect_true(strstr(res.err, "placement may differ") != NULL);
	snprintf(trace, sizeof(trace), "# vmap-trace 5%s", lines);
	run("--verify", trace, &res);
	expect_true(strstr(res.err, "placement may differ") == NULL);
}

TEST(bad_lines_exit_2_naming_the_line)
{
	static const char *bad[] = {
		"alloc a 4096\n",
		"alloc a 4096 4096 1\n",
		"alloc a 4k 4096\n",
		"alloc a -4096 4096\n",
		"alloc a 0x 4096\n",
		"free\n",
		"free a b\n",
		"purge now\n",
		"shrink all\n",
		"allocate a 1 1\n",
		"alloc a 4096 4096\nalloc a 4096 4096\n",
	};
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run("", bad[i], &res);
		expect_int(res.status, ==, 2);
		expect_true(strstr(res.err, "line ") != NULL);
		expect_true(strchr(res.err, '\n') ==
			    res.err + strlen(res.err) - 1);
	}
	run("--nodes=x", "", &res);
	expect_int(res.status, ==, 2);
	run("--base=0x1001", "", &res);
	expect_int(res.status, ==, 2);
	run("--nodes=129", "", &res);
	expect_int(res.status, ==, 2);
}

/* The constrained operations over [4096, 2^64), worked by hand. */
TEST(constrained_ops_to_the_top)
{
	static const char trace[] =
		"xalloc top 0x1000 0 0 0 0 0 topdown\n"
		"xalloc buf 0x2000 0x100000000 0 0x100000000 0 0 topdown|nopurge\n"
		"reserve r 0x1000 0x1000\n"
		"reserve r2 0x1000 0x1000\n" /* taken */
		"xalloc low 0x1000 0x4000 0x1000 0 0 0 exact\n"
		/* [0x3000, 0x5000) straddles 0x4000, [0x4000, 0x6000) meets low */
		"xalloc nc 0x2000 0 0 0x4000 0x3000 0x10000 exact\n"
		"free low\n" /* immediate */
		"xalloc again 0x1000 0x4000 0x1000 0 0 0 exact\n"
		"xalloc bad 0x1000 0x1000 0x1000 0 0 0 exact\n" /* phase >= align */
		/* free: [0x2000, 0x5000), [0x8000, ...): the 3-page block is best */
		"xalloc best 0x1000 0 0 0 0 0 bestfit\n"
		"add 0x2000 0x3000\n" /* overlaps: refused */
		"free r\n";
	static const char expect[] =
		"top 0xfffffffffffff000\nbuf 0xffffffff00000000\nr 0x1000\n"
		"r2 EEXIST\nlow 0x5000\nnc 0x6000\nagain 0x5000\nbad EINVAL\n"
		"best 0x2000\nadd EINVAL\n";
	static const char *bad[] = {
		"xalloc a 4096 0 0 0 0 0\n",
		"xalloc a 4096 0 0 0 0 0 sideways\n",
		"xalloc a 4096 0 0 0 0 x exact\n",
		"reserve a 4096\n",
		"add 0x1000\n",
		"add 0x1000 0x2000 0x3000\n",
	};
	unsigned i;

	run("--base=0x1000 --limit=0 --immediate-free --bestfit-index --check",
	    trace, &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, expect) == 0);
	if (strcmp(res.out, expect))
		fprintf(stderr, "got:\n%s%s", res.out, res.err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run("", bad[i], &res);
		expect_int(res.status, ==, 2);
		expect_true(strstr(res.err, "line 1") != NULL);
	}
}

/* Spans added by the trace: allocations land in them, never across gaps. */
TEST(spans_added_by_the_trace)
{
	static const char trace[] =
		"alloc a 0x2000 0x1000\n" /* fills [0x100000, 0x102000) */
		"add 0x200000 0x202000\n"
		"add 0x202000 0x204000\n"  /* adjacent: one run */
		"alloc b 0x3000 0x1000\n"  /* across the two */
		"alloc c 0x2000 0x1000\n"; /* 1 page left: ENOMEM */
	static const char expect[] = "a 0x100000\nb 0x200000\nc ENOMEM\n";

	run("--base=0x100000 --limit=0x102000 --immediate-free --check", trace,
	    &res);
	expect_int(res.status, ==, 0);
	expect_true(strcmp(res.out, expect) == 0);
	if (strcmp(res.out, expect))
		fprintf(stderr, "got:\n%s%s", res.out, res.err);
}

/* Random traces against the model: every address exact (align <= page). */
TEST(random_traces_match_model)
{
	const uint64_t base = 0x40000000, pages = 4096, lazy_max = 64;
	static char trace[1 << 20], expect[1 << 20];
	struct {
		size_t id;
		uint64_t start, size;
	} live[512];
	uint64_t size, vstart, vend, lo, hi;
	size_t tl, el, nlive, i, id;
	struct model m;
	bool may_fail, ok;
	long round, op;
	char args[128];

	snprintf(args, sizeof(args),
		 "--base=0x%llx --limit=0x%llx --lazy-max-pages=%llu",
		 (unsigned long long)base,
		 (unsigned long long)(base + pages * PAGE),
		 (unsigned long long)lazy_max);
	for (round = 0; round < scaled(4); round++) {
		model_init(&m, base, base + pages * PAGE, PAGE, lazy_max);
		tl = el = nlive = id = 0;
		for (op = 0; op < 2000; op++) {
			unsigned kind = (unsigned)(rnd() % 10);

			if (kind < 6 || !nlive) {
				size = rnd_range(1, kind == 0 ? 600 : 40) *
				       PAGE;
				vstart = base;
				vend = base + pages * PAGE;
				if (kind == 1) {
					vstart = base + rnd() % (pages * PAGE -
								 size + 1);
					vend = vstart + size +
					       rnd() % (base + pages * PAGE -
							vstart - size + 1);
					tl += (size_t)sprintf(
						trace + tl,
						"alloc i%zu %llu 4096 0x%llx 0x%llx\n",
						id, (unsigned long long)size,
						(unsigned long long)vstart,
						(unsigned long long)vend);
				} else {
					tl += (size_t)sprintf(
						trace + tl,
						"alloc i%zu %llu 4096\n", id,
						(unsigned long long)size);
				}
				ok = model_bounds(&m, size, PAGE, vstart, vend,
						  &lo, &hi, &may_fail);
				if (!ok) {
					model_purge(&m);
					ok = model_bounds(&m, size, PAGE,
							  vstart, vend, &lo,
							  &hi, &may_fail);
				}
				if (ok) {
					model_take(&m, lo, size);
					el += (size_t)sprintf(
						expect + el, "i%zu 0x%llx\n",
						id, (unsigned long long)lo);
					live[nlive].id = id;
					live[nlive].start = lo;
					live[nlive].size = size;
					nlive++;
				} else {
					el += (size_t)sprintf(expect + el,
							      "i%zu ENOMEM\n",
							      id);
				}
				id++;
				if (nlive == 512)
					nlive--; /* forget one: it stays busy */
			} else if (kind < 9) {
				i = rnd() % nlive;
				tl += (size_t)sprintf(trace + tl, "free i%zu\n",
						      live[i].id);
				if (model_free(&m, live[i].start,
					       live[i].start + live[i].size))
					model_purge(&m);
				live[i] = live[--nlive];
			} else {
				tl += (size_t)sprintf(trace + tl, "purge\n");
				model_purge(&m);
			}
		}
		trace[tl] = expect[el] = '\0';
		run(args, trace, &res);
		assert_int(res.status, ==, 0);
		if (strcmp(res.out, expect)) {
			for (i = 0; res.out[i] == expect[i]; i++)
				;
			fprintf(stderr,
				"first difference at output byte %zu: got '%.40s' want '%.40s'\n",
				i, res.out + i, expect + i);
			expect_true(!"replay output matches the model");
		}
		model_fini(&m);
	}
}

TEST(deterministic_with_nodes)
{
	static char trace[1 << 16], first[1 << 20];
	size_t tl = 0;
	int i;

	for (i = 0; i < 600; i++) {
		tl += (size_t)sprintf(trace + tl, "alloc a%d %llu 4096\n", i,
				      (unsigned long long)rnd_range(1, 8) *
					      PAGE);
		if (i % 3 == 2)
			tl += (size_t)sprintf(trace + tl,
					      "free a%d\nfree a%d\n", i - 1,
					      i - 2);
	}
	run("--nodes=4 --lazy-max-pages=32 --check", trace, &res);
	assert_int(res.status, ==, 0);
	memcpy(first, res.out, sizeof(first));
	run("--nodes=4 --lazy-max-pages=32", trace, &res);
	assert_int(res.status, ==, 0);
	expect_true(strcmp(first, res.out) == 0);
	/* Pools change placement: a pooled range is reused LIFO. */
	run("--nodes=1 --lazy-max-pages=32", trace, &res);
	expect_true(strcmp(first, res.out) != 0);
}

int main(int argc, char **argv)
{
	return replay_test_main(
		argc, argv,
		(struct test[]){ T(hand_checked_trace),
				 T(threshold_purges_in_line),
				 T(recording_header_and_fields),
				 T(one_node_version_2_has_no_pools),
				 T(bad_lines_exit_2_naming_the_line),
				 T(constrained_ops_to_the_top),
				 T(spans_added_by_the_trace),
				 T(random_traces_match_model),
				 T(deterministic_with_nodes),
				 { 0 } });
}
