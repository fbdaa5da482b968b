/* SPDX-License-Identifier: MIT */
/*
 * test_xalloc.c - vmap_xalloc(), vmap_reserve(), immediate free, granules
 * from 1 byte to 1 MiB and spaces that end at 2^64, against the
 * constrained model of model.h.  After every complete search
 * (VMAP_EXACT_FIT, VMAP_TOPDOWN, VMAP_BESTFIT) the answer must be the model's, and
 * -ENOMEM only where the model finds no place; every other answer must
 * satisfy its constraints and be free in the model.  Uses the public API
 * only.
 */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "model.h"
#include "vmap.h"

#define TOP ((u128)1 << 64)
#define MAX_LIVE 256

struct live {
	uint64_t start, size;
};

static struct vmap_stats stats_of(struct vmap_space *s)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(s, -1, &st);
	return st;
}

/* Uniform below @n, which may be 2^64. */
static uint64_t rnd_below(u128 n)
{
	return n > UINT64_MAX ? rnd() : rnd() % (uint64_t)n;
}

/* A power of two from @lo to @hi (both powers of two). */
static uint64_t rnd_pow2(uint64_t lo, uint64_t hi)
{
	unsigned a = (unsigned)__builtin_ctzll(lo),
		 b = (unsigned)__builtin_ctzll(hi);

	return 1ull << rnd_range(a, b);
}

/* Sizes in granules: mostly small, sometimes huge. */
static uint64_t rnd_size(uint64_t granule, u128 span)
{
	uint64_t max_granules =
		(uint64_t)((span / granule) > (1ull << 62) ? (1ull << 62) :
							     span / granule);
	uint64_t n;

	switch (rnd() % 8) {
	case 0:
		n = 1 + rnd() % max_granules;
		break;
	case 1:
		n = 1 + rnd() % (max_granules / 64 + 1);
		break;
	default:
		n = 1 + rnd() % 16;
		break;
	}
	return n * granule;
}

/* A request that passes argument checks, its model twin, and its mode. */
static void rnd_request(struct vmap_request *req, struct xreq *x,
			uint64_t granule, u128 base, u128 limit)
{
	u128 span = limit - base, w0, w1;

	memset(req, 0, sizeof(*req));
	req->size = rnd_size(granule, span);
	req->align = rnd() % 3 ? rnd_pow2(granule, 1ull << 24) :
				 rnd_pow2(granule, 1ull << 63);
	if (req->align < req->size && rnd() % 4 == 0)
		req->align = rnd_pow2(granule, 1ull << 63);
	if (rnd() % 2)
		req->phase = rnd() % (req->align / granule) * granule;
	if (rnd() % 3 == 0) {
		req->nocross = rnd_pow2(granule, 1ull << 63);
		if (req->nocross < req->size ||
		    (req->phase & (req->nocross - 1)) + req->size >
			    req->nocross)
			req->nocross = 0;
	}
	x->min = base;
	x->max = limit;
	if (rnd() % 3 == 0) {
		w0 = base + (u128)rnd_below(span / granule) * granule;
		w1 = w0 + req->size + (u128)(rnd() % 64) * granule;
		if (rnd() % 4 == 0)
			w1 = limit;
		if (w1 > limit)
			w1 = limit;
		if (w1 >= w0 + req->size) {
			req->min = (uint64_t)w0;
			req->max = w1 == TOP ? 0 : (uint64_t)w1;
			x->min = w0;
			x->max = w1;
		}
	}
	x->size = req->size;
	x->align = req->align < granule ? granule : req->align;
	x->phase = req->phase;
	x->nocross = req->nocross;
	req->user = rnd();
}

/* Extra spans of a trace: disjoint, not adjacent, above the first. */
struct spans {
	struct xrange r[4];
	size_t n;
};

/* Does one span (the first is [base, limit)) hold [a, a + size)? */
static bool spans_contain(const struct spans *sp, u128 a, u128 size)
{
	size_t i;

	for (i = 0; i < sp->n; i++)
		if (sp->r[i].start <= a && a + size <= sp->r[i].end)
			return true;
	return false;
}

/* Does the window [w0, w1) meet one span in @size bytes or more? */
static bool spans_hold(const struct spans *sp, u128 w0, u128 w1, u128 size)
{
	u128 lo, hi;
	size_t i;

	for (i = 0; i < sp->n; i++) {
		lo = sp->r[i].start > w0 ? sp->r[i].start : w0;
		hi = sp->r[i].end < w1 ? sp->r[i].end : w1;
		if (lo < hi && hi - lo >= size)
			return true;
	}
	return false;
}

/*
 * One random trace in an immediate-free space over [base, limit) plus the
 * spans @sp lists after it: xalloc in every mode, kernel requests,
 * reservations and frees, each checked against the model; the free byte
 * count and vmap_check() after each.
 */
static void trace_spans(uint64_t granule, uint64_t base, u128 limit,
			const struct spans *extra, long steps)
{
	struct vmap_params p = { .granule = granule,
				 .nr_nodes = 1,
				 .flags = VMAP_DETERMINISTIC |
					  VMAP_IMMEDIATE_FREE |
					  VMAP_BESTFIT_INDEX };
	static const uint32_t modes[] = { VMAP_EXACT_FIT, VMAP_TOPDOWN, 0,
					  VMAP_EXACT_FIT | VMAP_NOPURGE,
					  VMAP_BESTFIT };
	struct live live[MAX_LIVE];
	struct vmap_request req;
	struct vmap_space *s;
	struct spans sp = { .r = { { base, limit } }, .n = 1 };
	struct xmodel m;
	struct xreq x;
	size_t nlive = 0, i;
	uint64_t addr, align;
	u128 want, top = limit;
	long step;
	bool fits;
	int rc;

	assert_int(vmap_space_create(base, (uint64_t)limit, &p, &s), ==, 0);
	xmodel_init(&m, base, limit);
	for (i = 0; extra && i < extra->n; i++) {
		assert_int(vmap_space_add(s, (uint64_t)extra->r[i].start,
					  (uint64_t)extra->r[i].end),
			   ==, 0);
		xmodel_give(&m, extra->r[i].start, extra->r[i].end);
		sp.r[sp.n++] = extra->r[i];
		top = extra->r[i].end;
	}
	limit = top; /* from here on, the hull's end */
	for (step = 0; step < steps; step++) {
		unsigned op = (unsigned)(rnd() % 8);

		if (op >= 5 && nlive) {
			i = rnd() % nlive;
			assert_int(vmap_free(s, live[i].start), ==, 0);
			xmodel_give(&m, live[i].start,
				    (u128)live[i].start + live[i].size);
			live[i] = live[--nlive];
		} else if (op == 4 && nlive < MAX_LIVE) {
			addr = base +
			       rnd_below((limit - base) / granule) * granule;
			req.size = rnd_size(granule, limit - addr);
			if ((u128)addr + req.size > limit)
				req.size = (uint64_t)(limit - addr);
			fits = xmodel_is_free(&m, addr, req.size);
			rc = vmap_reserve(s, addr, req.size, 7);
			if (!spans_contain(&sp, addr, req.size)) {
				assert_int(rc, ==, -EINVAL);
				continue;
			}
			assert_int(rc, ==, fits ? 0 : -EEXIST);
			if (fits) {
				assert_true(xmodel_take(&m, addr, req.size));
				live[nlive].start = addr;
				live[nlive++].size = req.size;
			}
		} else if (op == 3 && nlive < MAX_LIVE) {
			/* A kernel request: placement is the kernel's, checked for validity. */
			req.size = rnd_size(granule, limit - base);
			align = rnd_pow2(1, 1ull << 30);
			rc = vmap_alloc(s, req.size, align, 0, 0, 0, &addr);
			if (req.size - 1 >
			    UINT64_MAX - (align < granule ? granule : align)) {
				assert_int(rc, ==, -EINVAL);
				continue;
			}
			assert_true(rc == 0 || rc == -ENOMEM);
			if (!rc) {
				expect_u64(addr % (align < granule ? granule :
								     align),
					   ==, 0);
				assert_true(xmodel_take(&m, addr, req.size));
				live[nlive].start = addr;
				live[nlive++].size = req.size;
			}
		} else if (nlive < MAX_LIVE) {
			rnd_request(&req, &x, granule, base, limit);
			req.flags = modes[rnd() % 5];
			rc = vmap_xalloc(s, &req, &addr);
			if (!spans_hold(&sp, x.min, x.max, x.size)) {
				assert_int(rc, ==, -EINVAL);
				continue;
			}
			assert_int(rc, !=, -EINVAL);
			fits = xmodel_place(&m, &x,
					    req.flags & VMAP_TOPDOWN ?
						    XHIGHEST :
					    req.flags & VMAP_BESTFIT ? XBEST :
								       XLOWEST,
					    &want);
			if (req.flags &
			    (VMAP_EXACT_FIT | VMAP_TOPDOWN | VMAP_BESTFIT)) {
				assert_int(rc, ==, fits ? 0 : -ENOMEM);
				if (fits)
					assert_u64(addr, ==, (uint64_t)want);
			} else {
				assert_true(rc == 0 || rc == -ENOMEM);
			}
			if (!rc) {
				assert_true(xmodel_valid(&x, addr));
				assert_true(xmodel_take(&m, addr, req.size));
				expect_u64(req.size, >, 0);
				live[nlive].start = addr;
				live[nlive++].size = req.size;
			}
		}
		expect_u64(stats_of(s).free_bytes, ==,
			   (uint64_t)xmodel_free_bytes(&m));
		if (step % 16 == 0)
			assert_space_ok(s);
	}
	assert_space_ok(s);
	vmap_space_destroy(s);
	xmodel_fini(&m);
}

static void trace(uint64_t granule, uint64_t base, u128 limit, long steps)
{
	trace_spans(granule, base, limit, NULL, steps);
}

TEST(model_traces_to_the_top)
{
	static const uint64_t granules[] = { 1, 8, 4096, 1ull << 20 };
	long rounds = scaled(6), r;
	unsigned g;

	for (r = 0; r < rounds; r++) {
		for (g = 0; g < 4; g++) {
			trace(granules[g], 0, TOP, 400);
			trace(granules[g], 4096 * granules[g], TOP, 400);
		}
	}
}

TEST(model_traces_small_spaces)
{
	static const uint64_t granules[] = { 1, 4096, 1ull << 20 };
	long rounds = scaled(6), r;
	unsigned g;

	/* Small enough to fill, so that -ENOMEM answers are checked too. */
	for (r = 0; r < rounds; r++)
		for (g = 0; g < 3; g++)
			trace(granules[g], 64 * granules[g],
			      (u128)(64 + 256 + rnd() % 512) * granules[g],
			      600);
}

/* Spans with gaps between them, the last ending at 2^64. */
TEST(model_traces_with_spans)
{
	static const uint64_t granules[] = { 1, 4096, 1ull << 20 };
	struct spans extra;
	long rounds = scaled(6), r;
	unsigned g;
	u128 at;

	for (r = 0; r < rounds; r++) {
		for (g = 0; g < 3; g++) {
			extra.n = 0;
			at = (u128)(1024 + rnd() % 1024) * granules[g];
			extra.r[extra.n].start = at;
			extra.r[extra.n++].end =
				at + (u128)(1 + rnd() % 256) * granules[g];
			at = TOP - (u128)(1 + rnd() % 256) * granules[g];
			extra.r[extra.n].start = at;
			extra.r[extra.n++].end = TOP;
			trace_spans(granules[g], 0, 512 * granules[g], &extra,
				    600);
		}
	}
}

/*
 * The peers' own heap test, over [4096, 2^64) as Mesa's heap is: random
 * sizes and alignments up to 2^63, frees immediate; after each operation
 * the free bytes add up and every live range is aligned and disjoint.
 */
TEST(peer_style_heap_to_the_top)
{
	struct vmap_params p = { .nr_nodes = 1, .flags = VMAP_IMMEDIATE_FREE };
	struct live live[MAX_LIVE];
	struct vmap_request req;
	struct vmap_space *s;
	size_t nlive = 0, i;
	long steps = scaled(4000), step;
	u128 live_bytes;
	uint64_t addr;
	int rc;

	assert_int(vmap_space_create(4096, 0, &p, &s), ==, 0);
	for (step = 0; step < steps; step++) {
		if (nlive == MAX_LIVE || (nlive && rnd() % 3 == 0)) {
			i = rnd() % nlive;
			assert_int(vmap_free(s, live[i].start), ==, 0);
			live[i] = live[--nlive];
		} else {
			memset(&req, 0, sizeof(req));
			req.size = rnd_pow2(4096, 1ull << 63) / (1 + rnd() % 3);
			req.size = (req.size + 4095) & ~4095ull;
			req.align = rnd_pow2(4096, 1ull << 63);
			req.flags = rnd() % 2 ? VMAP_TOPDOWN : VMAP_EXACT_FIT;
			rc = vmap_xalloc(s, &req, &addr);
			assert_true(rc == 0 || rc == -ENOMEM);
			if (!rc) {
				assert_u64(addr % req.align, ==, 0);
				assert_true(addr >= 4096);
				assert_true(req.size - 1 <= UINT64_MAX - addr);
				/* Disjoint from every other live range. */
				for (i = 0; i < nlive; i++)
					assert_true(
						(u128)live[i].start +
								live[i].size <=
							addr ||
						(u128)addr + req.size <=
							live[i].start);
				live[nlive].start = addr;
				live[nlive++].size = req.size;
			}
		}
		live_bytes = 0;
		for (i = 0; i < nlive; i++)
			live_bytes += live[i].size;
		assert_true(live_bytes + stats_of(s).free_bytes == TOP - 4096);
	}
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/*
 * The case: one page aligned to four pages, with such a page
 * free among misaligned single pages.  The kernel's rule looks only for
 * blocks of 4 + 3 pages and fails; a complete search finds it.
 */
TEST(exact_fit_finds_the_aligned_hole)
{
	struct vmap_params p = { .nr_nodes = 1, .flags = VMAP_IMMEDIATE_FREE };
	struct vmap_request req = { .size = 4096,
				    .align = 4 * 4096,
				    .flags = VMAP_EXACT_FIT };
	struct vmap_space *s;
	uint64_t addr, page;

	assert_int(vmap_space_create(0, 64 * 4096, &p, &s), ==, 0);
	for (page = 0; page < 64; page++)
		assert_int(vmap_reserve(s, page * 4096, 4096, 0), ==, 0);
	for (page = 1; page < 64; page += 2)
		assert_int(vmap_free(s, page * 4096), ==, 0);
	assert_int(vmap_free(s, 40 * 4096), ==, 0);
	expect_int(vmap_alloc(s, 4096, 4 * 4096, 0, 0, VMAP_NONBLOCK, &addr),
		   ==, -ENOMEM);
	assert_int(vmap_xalloc(s, &req, &addr), ==, 0);
	expect_u64(addr, ==, 40 * 4096);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(granule_of_one_byte_at_the_top)
{
	struct vmap_params p = { .granule = 1, .nr_nodes = 1 };
	struct vmap_request req = { .size = 1, .flags = VMAP_TOPDOWN };
	struct vmap_range *ranges, r;
	struct vmap_space *s;
	uint64_t addr;
	size_t n;

	assert_int(vmap_space_create(0, 0, &p, &s), ==, 0);
	assert_int(vmap_xalloc(s, &req, &addr), ==, 0);
	expect_u64(addr, ==, UINT64_MAX);
	assert_int(vmap_find(s, UINT64_MAX, &r), ==, 0);
	expect_u64(r.start, ==, UINT64_MAX);
	expect_u64(r.end, ==, 0); /* 2^64 */
	expect_int(vmap_reserve(s, UINT64_MAX - 9, 10, 0), ==, -EEXIST);
	assert_int(vmap_reserve(s, UINT64_MAX - 9, 9, 0), ==, 0);
	assert_int(vmap_free(s, UINT64_MAX), ==, 0);
	assert_int(vmap_snapshot(s, &ranges, &n), ==, 0);
	expect_int(n, ==, 2);
	free(ranges);
	/* The lazy range at the top is purged like any other. */
	assert_int(vmap_purge(s), ==, 0);
	req.size = 3;
	req.align = 2;
	req.phase = 1;
	assert_int(vmap_xalloc(s, &req, &addr), ==, 0);
	/* The highest odd start whose 3 bytes end below the reservation. */
	expect_u64(addr, ==, UINT64_MAX - 12);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* The largest granule, 1 GiB, over the whole 64-bit range. */
TEST(granule_of_a_gib)
{
	struct vmap_params p = { .granule = 1ull << 30, .nr_nodes = 1 };
	struct vmap_request req = { .size = 1ull << 30, .flags = VMAP_TOPDOWN };
	struct vmap_space *s;
	uint64_t a, b;

	assert_int(vmap_space_create(0, 0, &p, &s), ==, 0);
	assert_int(vmap_xalloc(s, &req, &a), ==, 0);
	expect_u64(a, ==, 0 - (1ull << 30));
	assert_int(vmap_alloc(s, 2ull << 30, 4ull << 30, 0, 0, 0, &b), ==, 0);
	expect_u64(b, ==, 0);
	expect_int(vmap_alloc(s, 4096, 4096, 0, 0, 0, &b), ==, -EINVAL);
	expect_int(vmap_reserve(s, 1ull << 29, 1ull << 30, 0), ==, -EINVAL);
	assert_space_ok(s);
	vmap_space_destroy(s);
	p.granule = 1ull << 31;
	expect_int(vmap_space_create(0, 0, &p, &s), ==, -EINVAL);
}

static uint64_t flushes_seen, released_bytes;

static void count_flush(void *cookie, uint64_t start, uint64_t end)
{
	(void)cookie;
	(void)start;
	(void)end;
	flushes_seen++;
}

static void count_release(void *cookie, uint64_t start, uint64_t end)
{
	(void)cookie;
	released_bytes += end - start;
}

TEST(immediate_free_reuses_at_once)
{
	struct vmap_params p = { .nr_nodes = 4,
				 .flags = VMAP_IMMEDIATE_FREE,
				 .flush = count_flush,
				 .release = count_release };
	struct vmap_space *s;
	uint64_t a, b;
	int i;

	flushes_seen = released_bytes = 0;
	assert_int(vmap_space_create(1ull << 30, 2ull << 30, &p, &s), ==, 0);
	for (i = 0; i < 1000; i++) {
		assert_int(vmap_alloc(s, 8 * 4096, 4096, 0, 0, 0, &a), ==, 0);
		assert_int(vmap_free(s, a), ==, 0);
		assert_int(vmap_alloc(s, 8 * 4096, 4096, 0, 0, 0, &b), ==, 0);
		expect_u64(b, ==, a);
		assert_int(vmap_free(s, b), ==, 0);
	}
	expect_u64(flushes_seen, ==, 0);
	expect_u64(released_bytes, ==, 2000 * 8 * 4096);
	expect_u64(stats_of(s).lazy_pages, ==, 0);
	expect_u64(stats_of(s).pool_hits + stats_of(s).pool_misses, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

TEST(nopurge_fails_without_purging)
{
	struct vmap_params p = { .nr_nodes = 1,
				 .flags = VMAP_DETERMINISTIC,
				 .lazy_max_pages = 1000,
				 .flush = count_flush };
	struct vmap_request req = { .size = 4096, .flags = VMAP_NOPURGE };
	struct vmap_space *s;
	uint64_t addr[16], a;
	int i;

	flushes_seen = 0;
	assert_int(vmap_space_create(0, 16 * 4096, &p, &s), ==, 0);
	for (i = 0; i < 16; i++)
		assert_int(vmap_alloc(s, 4096, 4096, 0, 0, 0, &addr[i]), ==, 0);
	assert_int(vmap_free(s, addr[3]), ==, 0);
	expect_int(vmap_xalloc(s, &req, &a), ==, -ENOMEM);
	expect_u64(stats_of(s).purges, ==, 0);
	expect_u64(flushes_seen, ==, 0);
	assert_space_ok(s);
	req.flags = VMAP_EXACT_FIT;
	assert_int(vmap_xalloc(s, &req, &a), ==, 0);
	expect_u64(a, ==, addr[3]);
	expect_u64(flushes_seen, ==, 1);
	vmap_space_destroy(s);
}

/*
 * Reservations meeting busy, lazy and pooled ranges in a 4-node space
 * with the kernel's pools, whose placement the addresses below assume.
 */
TEST(reserve_against_busy_lazy_and_pooled)
{
	struct vmap_params p = {
		.nr_nodes = 4,
		.lazy_max_pages = 1000,
		.flags = VMAP_DETERMINISTIC | VMAP_KERNEL_POOLS,
	};
	struct vmap_range r;
	struct vmap_space *s;
	uint64_t a[8], purges;
	int i;

	assert_int(vmap_space_create(0, 1024 * 4096, &p, &s), ==, 0);
	for (i = 0; i < 8; i++)
		assert_int(vmap_alloc(s, 4 * 4096, 4096, 0, 0, 0, &a[i]), ==,
			   0);
	/* Free: taken without a purge. */
	expect_int(vmap_reserve(s, 512 * 4096, 8 * 4096, 11), ==, 0);
	expect_u64(stats_of(s).purges, ==, 0);
	assert_int(vmap_find(s, 515 * 4096, &r), ==, 0);
	expect_u64(r.user, ==, 11);
	/* Busy: refused, no purge. */
	expect_int(vmap_reserve(s, a[1] + 4096, 4096, 0), ==, -EEXIST);
	expect_int(vmap_reserve(s, 510 * 4096, 4 * 4096, 0), ==, -EEXIST);
	expect_u64(stats_of(s).purges, ==, 0);
	assert_space_ok(s);
	/* Pooled: a purge puts a[2] in its node's pool; a reservation takes it back. */
	assert_int(vmap_free(s, a[2]), ==, 0);
	assert_int(vmap_purge(s), ==, 0);
	expect_u64(stats_of(s).pooled_now, ==, 1);
	purges = stats_of(s).purges;
	expect_int(vmap_reserve(s, a[2], 4 * 4096, 0), ==, 0);
	expect_u64(stats_of(s).pooled_now, ==, 0);
	assert_space_ok(s);
	/* Lazy: purged first. */
	assert_int(vmap_free(s, a[5]), ==, 0);
	assert_int(vmap_free(s, a[6]), ==, 0);
	expect_int(vmap_reserve(s, a[5] + 4096, 6 * 4096, 0), ==, 0);
	expect_u64(stats_of(s).purges, ==, purges + 1);
	expect_u64(stats_of(s).lazy_pages, ==, 0);
	/* Busy and lazy together: busy wins, nothing purged. */
	assert_int(vmap_free(s, a[1]), ==, 0);
	expect_int(vmap_reserve(s, a[0], 8 * 4096, 0), ==, -EEXIST);
	expect_u64(stats_of(s).purges, ==, purges + 1);
	expect_u64(stats_of(s).lazy_pages, ==, 4);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

#define P(n) ((uint64_t)(n)*4096)

/*
 * The default pools refill from the heap on a miss: the batch of 4-page
 * ranges starts at the middle of the space (a zone of node 0, CPU 0's).
 * A reservation over it finds those ranges pooled, purges them back to
 * the heap with the rest of the pools, and takes its range.
 */
TEST(reserve_takes_refilled_pool_ranges)
{
	struct vmap_params p = { .nr_nodes = 4,
				 .flags = VMAP_DETERMINISTIC,
				 .lazy_max_pages = 1000 };
	struct vmap_range r;
	struct vmap_space *s;
	uint64_t a, purges;

	assert_int(vmap_space_create(0, P(16384), &p, &s), ==, 0);
	assert_int(vmap_alloc(s, P(4), P(1), 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, 0);
	expect_u64(stats_of(s).pool_refills, ==, 1);
	expect_u64(stats_of(s).pooled_now, >, 1);
	purges = stats_of(s).purges;
	expect_int(vmap_reserve(s, P(8193), P(2), 7), ==, 0);
	expect_u64(stats_of(s).full_purges, ==, 1);
	expect_u64(stats_of(s).pooled_now, ==, 0);
	assert_int(vmap_find(s, P(8193), &r), ==, 0);
	expect_u64(r.user, ==, 7);
	expect_u64(stats_of(s).purges, ==, purges);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* Adjacent spans join; gaps are never crossed; bad spans are refused. */
TEST(spans_join_but_gaps_stay)
{
	struct vmap_params p = { .nr_nodes = 1, .flags = VMAP_IMMEDIATE_FREE };
	struct vmap_request req = { .size = P(16), .flags = VMAP_EXACT_FIT };
	struct vmap_space *s;
	uint64_t a;

	assert_int(vmap_space_create(0, P(16), &p, &s), ==, 0);
	assert_int(vmap_space_add(s, P(32), P(48)), ==, 0);
	assert_int(vmap_space_add(s, P(48), P(64)), ==, 0);
	expect_int(vmap_space_add(s, P(40), P(50)), ==, -EINVAL);
	expect_int(vmap_space_add(s, P(8), P(20)), ==, -EINVAL);
	expect_int(vmap_space_add(s, P(70), P(70)), ==, -EINVAL);
	expect_int(vmap_space_add(s, P(70) + 1, P(80)), ==, -EINVAL);
	expect_int(vmap_space_add(NULL, P(70), P(80)), ==, -EINVAL);
	assert_space_ok(s);
	assert_int(vmap_alloc(s, P(16), 4096, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, 0);
	/* 20 pages fit only across the two adjacent spans. */
	assert_int(vmap_alloc(s, P(20), 4096, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, P(32));
	/* 12 pages are left: 16 would need the gap. */
	expect_int(vmap_xalloc(s, &req, &a), ==, -ENOMEM);
	req.min = P(16);
	req.max = P(32);
	expect_int(vmap_xalloc(s, &req, &a), ==, -EINVAL); /* the gap */
	expect_int(vmap_reserve(s, P(20), P(1), 0), ==, -EINVAL);
	expect_int(vmap_reserve(s, P(60), P(8), 0), ==, -EINVAL);
	expect_int(vmap_reserve(s, P(60), P(4), 0), ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

/* A source of spans for the import tests: a bump allocator that counts. */
struct source {
	uint64_t next, imported, released, calls;
};

static int source_import(void *cookie, uint64_t size, uint64_t *base)
{
	struct source *src = cookie;

	src->calls++;
	*base = src->next;
	src->next += size + (1ull << 30); /* a gap after each span */
	src->imported += size;
	return 0;
}

static void source_release(void *cookie, uint64_t base, uint64_t size)
{
	struct source *src = cookie;

	(void)base;
	src->released += size;
}

TEST(imports_round_to_the_quantum_and_go_back)
{
	struct source src = { .next = 1ull << 40 };
	struct vmap_params p = { .nr_nodes = 1,
				 .flags = VMAP_IMMEDIATE_FREE,
				 .import = source_import,
				 .release_span = source_release,
				 .import_cookie = &src,
				 .quantum = 1 << 20 };
	struct vmap_space *s;
	uint64_t a, b, c;

	assert_int(vmap_space_create(0, P(4), &p, &s), ==, 0);
	assert_int(vmap_alloc(s, P(4), 4096, 0, 0, 0, &a), ==, 0);
	expect_u64(src.calls, ==, 0);
	/* No room: one quantum comes in. */
	assert_int(vmap_alloc(s, P(1), 4096, 0, 0, 0, &b), ==, 0);
	expect_u64(b, ==, 1ull << 40);
	expect_u64(src.imported, ==, 1 << 20);
	/* 3 MiB + 1 page: rounded up to 4 MiB. */
	assert_int(vmap_alloc(s, (3 << 20) + P(1), 4096, 0, 0, 0, &c), ==, 0);
	expect_u64(src.imported, ==, 5 << 20);
	assert_space_ok(s);
	/* Shrink gives back only spans that are wholly free. */
	assert_int(vmap_free(s, c), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	expect_u64(src.released, ==, 4 << 20);
	assert_int(vmap_free(s, b), ==, 0);
	assert_int(vmap_free(s, a), ==, 0);
	assert_int(vmap_shrink(s), ==, 0);
	expect_u64(src.released, ==, 5 << 20);
	assert_space_ok(s);
	/* The space's own span stays. */
	assert_int(vmap_alloc(s, P(4), 4096, 0, 0, 0, &a), ==, 0);
	expect_u64(a, ==, 0);
	vmap_space_destroy(s);
	p.quantum = 3 << 20;
	expect_int(vmap_space_create(0, P(4), &p, &s), ==, -EINVAL);
	p.quantum = 0;
	expect_int(vmap_space_create(0, P(4), &p, &s), ==, -EINVAL);
	p.quantum = 1 << 20;
	p.release_span = NULL;
	expect_int(vmap_space_create(0, P(4), &p, &s), ==, -EINVAL);
}

/* Per-context spaces carved from a device-wide one. */
TEST(child_imports_from_its_parent_and_gives_back)
{
	struct vmap_params pp = { .nr_nodes = 1, .flags = VMAP_IMMEDIATE_FREE };
	struct vmap_params cp = { .nr_nodes = 1, .flags = VMAP_IMMEDIATE_FREE };
	struct vmap_request req = { .size = P(1),
				    .align = 4 << 20,
				    .flags = VMAP_TOPDOWN };
	struct vmap_space *parent, *child, *other;
	struct vmap_range r;
	uint64_t a, b, c;

	assert_int(vmap_space_create(1ull << 30, 2ull << 30, &pp, &parent), ==,
		   0);
	assert_int(vmap_space_create_child(parent, 1 << 20, &cp, &child), ==,
		   0);
	assert_int(vmap_space_create_child(parent, 1 << 20, NULL, &other), ==,
		   0);
	assert_int(vmap_alloc(child, P(1), 4096, 0, 0, 0, &a), ==, 0);
	assert_int(vmap_find(parent, a, &r), ==, 0);
	expect_u64(r.end - r.start, ==, 1 << 20);
	/* Aligned beyond the quantum: the import makes room for it. */
	assert_int(vmap_xalloc(child, &req, &b), ==, 0);
	expect_u64(b % (4 << 20), ==, 0);
	assert_int(vmap_find(parent, b, &r), ==, 0);
	/* Another child gets other ranges of the parent. */
	assert_int(vmap_alloc(other, P(1), 4096, 0, 0, 0, &c), ==, 0);
	expect_true(vmap_find(child, c, &r) == -ENOENT);
	assert_space_ok(child);
	assert_space_ok(parent);
	assert_int(vmap_free(child, a), ==, 0);
	assert_int(vmap_shrink(child), ==, 0);
	expect_int(vmap_find(parent, a, &r), ==, -ENOENT);
	expect_int(vmap_find(parent, b, &r), ==, 0);
	assert_space_ok(child);
	/* Destroying a child gives back what it still holds. */
	vmap_space_destroy(child);
	expect_int(vmap_find(parent, b, &r), ==, -ENOENT);
	vmap_space_destroy(other);
	expect_u64(stats_of(parent).free_bytes, ==, 1ull << 30);
	assert_space_ok(parent);
	expect_int(vmap_space_create_child(parent, 3 << 20, NULL, &child), ==,
		   -EINVAL);
	expect_int(vmap_space_create_child(parent, 2048, NULL, &child), ==,
		   -EINVAL);
	expect_int(vmap_space_create_child(NULL, 1 << 20, NULL, &child), ==,
		   -EINVAL);
	vmap_space_destroy(parent);
}

TEST(xalloc_rejects_bad_requests)
{
	struct vmap_params p = { .nr_nodes = 1 };
	struct vmap_space *s;
	struct vmap_request ok = { .size = 4096 }, req;
	uint64_t addr;
	unsigned i;
	static const struct vmap_request bad[] = {
		{ .size = 0 },
		{ .size = 100 },
		{ .size = 4096, .align = 3 * 4096 },
		{ .size = 4096, .align = 4096, .phase = 4096 },
		{ .size = 4096, .align = 8192, .phase = 100 },
		{ .size = 4096, .nocross = 3 * 4096 },
		{ .size = 8192, .nocross = 4096 },
		{ .size = 8192,
		  .align = 16384,
		  .phase = 12288,
		  .nocross = 16384 },
		{ .size = 4096, .min = 8 << 20, .max = 4 << 20 },
		{ .size = 4096, .min = 4 << 20, .max = 4 << 20 },
		{ .size = 4096, .min = 100 },
		{ .size = 4096, .min = 1ull << 40 }, /* past the space */
		{ .size = 4096, .max = 1 << 20 },    /* before the space */
		{ .size = 8192,
		  .min = (2ull << 30) - 4096 }, /* too small inside */
		{ .size = 4096, .flags = 1u << 9 },
		{ .size = 4096, .reserved0 = 1 },
		{ .size = 4096, .reserved = { 0, 0, 1, 0 } },
	};

	assert_int(vmap_space_create(1ull << 30, 2ull << 30, &p, &s), ==, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req = bad[i];
		expect_int(vmap_xalloc(s, &req, &addr), ==, -EINVAL);
	}
	expect_int(vmap_xalloc(NULL, &ok, &addr), ==, -EINVAL);
	expect_int(vmap_xalloc(s, NULL, &addr), ==, -EINVAL);
	expect_int(vmap_xalloc(s, &ok, NULL), ==, -EINVAL);
	expect_int(vmap_reserve(s, (1ull << 30) + 1, 4096, 0), ==, -EINVAL);
	expect_int(vmap_reserve(s, 1ull << 30, 0, 0), ==, -EINVAL);
	expect_int(vmap_reserve(s, (2ull << 30) - 4096, 8192, 0), ==, -EINVAL);
	expect_int(vmap_reserve(s, 0, 4096, 0), ==, -EINVAL);
	expect_int(vmap_reserve(NULL, 1ull << 30, 4096, 0), ==, -EINVAL);
	expect_u64(stats_of(s).allocs, ==, 0);
	assert_space_ok(s);
	vmap_space_destroy(s);
}

int main(int argc, char **argv)
{
	return test_main(
		argc, argv,
		(struct test[]){
			T(model_traces_to_the_top),
			T(model_traces_small_spaces),
			T(model_traces_with_spans),
			T(peer_style_heap_to_the_top),
			T(exact_fit_finds_the_aligned_hole),
			T(granule_of_one_byte_at_the_top),
			T(granule_of_a_gib),
			T(immediate_free_reuses_at_once),
			T(nopurge_fails_without_purging),
			T(reserve_against_busy_lazy_and_pooled),
			T(reserve_takes_refilled_pool_ranges),
			T(spans_join_but_gaps_stay),
			T(imports_round_to_the_quantum_and_go_back),
			T(child_imports_from_its_parent_and_gives_back),
			T(xalloc_rejects_bad_requests),
			{ 0 } });
}
