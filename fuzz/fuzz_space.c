/* SPDX-License-Identifier: MIT */
/*
 * fuzz_space.c - libFuzzer target: an input is a space's parameters and a
 * sequence of operations on it.
 *
 *   byte 0      node count (some invalid)      byte 3  lazy_max_pages
 *   byte 1      page shift (some invalid)      byte 4  flags (some invalid)
 *   byte 2      space size in pages            then operations, a byte each
 *               plus operands taken from the bytes that follow
 *
 * Allocations with bit 3 set take a window; those of the second kind
 * with it set go through vmap_xalloc() with phase, no-cross and flags
 * from the input, and finds with it set are vmap_reserve() instead.
 *
 * After every operation vmap_check() must pass.  A shadow list of live
 * ranges proves that no range is handed out twice or outside its window
 * or constraints (congruent areas from vmap_pcpu_get_vm_areas()
 * included), that vmap_find() and vmap_next() agree with it, that frees
 * of addresses that are not a live start are refused, and, at the end,
 * that everything comes back: after freeing all, a purge and a shrink,
 * the free heap is the whole space.  Deterministic mode: one
 * thread, so a crash reproduces from its input alone.
 *
 * Built with clang -fsanitize=fuzzer by `make fuzz`; driver.c replays the
 * corpus in ordinary builds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmap.h"

#define MAX_LIVE 256

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t next(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t next64(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | next(in);
	return v;
}

static void fail(const char *what, uint64_t a, uint64_t b)
{
	fprintf(stderr, "fuzz_space: %s (0x%llx, 0x%llx)\n", what,
		(unsigned long long)a, (unsigned long long)b);
	abort();
}

static void check(struct vmap_space *s)
{
	char msg[256];

	if (vmap_check(s, msg, sizeof(msg))) {
		fprintf(stderr, "fuzz_space: vmap_check: %s\n", msg);
		abort();
	}
}

struct live {
	uint64_t start, end;
};

static int live_index(const struct live *l, size_t n, uint64_t start)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (l[i].start == start)
			return (int)i;
	return -1;
}

/*
 * Up to three congruent areas from the input (sizes, offsets and the
 * alignment possibly bad): on success each lies at its offset from one
 * aligned base and overlaps no live range; they join the live list.
 */
static size_t fuzz_pcpu(struct vmap_space *s, struct input *in, uint64_t page,
			struct live *live, size_t nlive)
{
	uint64_t offsets[3], sizes[3], starts[3], align, base;
	unsigned nr = 1 + next(in) % 3, i;
	size_t j;
	int rc;

	align = page << (next(in) % 4);
	for (i = 0; i < nr; i++) {
		offsets[i] = (next(in) % 64) * page;
		sizes[i] = (next(in) % 9) * page;
	}
	rc = vmap_pcpu_get_vm_areas(s, offsets, sizes, nr, align, starts);
	if (rc == -EINVAL || rc == -ENOMEM)
		return nlive;
	if (rc)
		fail("unexpected congruent allocation error", (uint64_t)-rc,
		     nr);
	base = starts[0] - offsets[0];
	if (base % align)
		fail("congruent base misaligned", base, align);
	for (i = 0; i < nr; i++) {
		if (starts[i] != base + offsets[i])
			fail("congruent area not at its offset", starts[i],
			     offsets[i]);
		for (j = 0; j < nlive; j++)
			if (starts[i] < live[j].end &&
			    live[j].start < starts[i] + sizes[i])
				fail("congruent area handed out twice",
				     starts[i], live[j].start);
	}
	for (i = 0; i < nr; i++) {
		if (nlive < MAX_LIVE) {
			live[nlive].start = starts[i];
			live[nlive++].end = starts[i] + sizes[i];
		} else if (vmap_free(s, starts[i])) {
			fail("free of a fresh congruent area refused",
			     starts[i], 0);
		}
	}
	return nlive;
}

/* vmap_next() must give the lowest live range that ends above @addr. */
static void check_next(struct vmap_space *s, uint64_t addr,
		       const struct live *live, size_t nlive)
{
	struct vmap_range r;
	size_t i, best = nlive;
	int rc = vmap_next(s, addr, &r, NULL, NULL);

	for (i = 0; i < nlive; i++)
		if (live[i].end > addr &&
		    (best == nlive || live[i].start < live[best].start))
			best = i;
	if ((best < nlive) != (rc == 0) ||
	    (rc == 0 &&
	     (r.start != live[best].start || r.end != live[best].end)))
		fail("next disagrees with the shadow", addr, (uint64_t)rc);
}

/*
 * vmap_xalloc() with the kernel's operands plus phase, no-cross and flags
 * from the input; a range it returns must not straddle its no-cross
 * boundary (the caller checks window and phase).
 */
static int fuzz_xalloc(struct vmap_space *s, struct input *in, uint64_t sz,
		       uint64_t align, uint64_t page, uint64_t lo, uint64_t hi,
		       uint64_t *phase, uint64_t *addr)
{
	static const uint32_t flags[4] = { 0, VMAP_EXACT_FIT, VMAP_TOPDOWN,
					   VMAP_EXACT_FIT | VMAP_NOPURGE };
	struct vmap_request req = {
		.size = sz, .align = align, .min = lo, .max = hi
	};
	uint8_t b = next(in);
	int rc;

	req.flags = flags[b & 3];
	if (align > page)
		req.phase = (b >> 2) % (align / page) * page;
	if (b & 0x40)
		req.nocross = page << (next(in) % 12);
	*phase = req.phase;
	rc = vmap_xalloc(s, &req, addr);
	if (rc)
		return rc;
	if (req.nocross &&
	    *addr / req.nocross != (*addr + sz - 1) / req.nocross)
		fail("xalloc range straddles its no-cross boundary", *addr,
		     req.nocross);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned node_choice[8] = { 1, 2, 3, 4, 8, 16, 0, 200 };
	struct input in = { data, size };
	struct vmap_params p = { 0 };
	struct vmap_stats st = { .size = sizeof(st) };
	struct live live[MAX_LIVE];
	struct vmap_space *s;
	struct vmap_range r;
	uint64_t base, limit, page, pages, sz, align, lo, hi, addr, span, phase;
	size_t nlive = 0, i;
	bool valid;
	int rc, k;

	p.nr_nodes = node_choice[next(&in) % 8];
	p.page_shift =
		(uint32_t)(next(&in) % 24); /* 0 (default), 12..23 valid */
	pages = 1 + next(&in) % 64 * 16;
	p.lazy_max_pages = 1 + next(&in) % 128;
	p.flags = next(&in) & 0x3d; /* bit 5 is not a flag */
	p.flags |= VMAP_DETERMINISTIC;
	page = 1ull << (p.page_shift ? p.page_shift : 12);
	base = page * (next(&in) % 8);
	limit = base + pages * page;
	valid = p.nr_nodes <= 128 && (!p.page_shift || p.page_shift >= 12) &&
		!(p.flags & ~(VMAP_DETERMINISTIC | VMAP_TAG_BY_ADDRESS |
			      VMAP_IMMEDIATE_FREE | VMAP_BESTFIT_INDEX |
			      VMAP_KERNEL_POOLS));
	rc = vmap_space_create(base, limit, &p, &s);
	if (!valid) {
		if (rc != -EINVAL)
			fail("invalid parameters accepted", rc, p.nr_nodes);
		return 0;
	}
	if (rc)
		fail("valid parameters refused", (uint64_t)-rc, pages);
	span = limit - base;

	while (in.n) {
		uint8_t op = next(&in);

		vmap_set_thread_cpu(op >> 4);
		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			phase = 0;
			sz = (1 + next(&in) % (op % 8 == 2 ? 255 : 16)) * page;
			align = next(&in) % 10;
			align = align == 9 ? 3 : align == 8 ? 0 : page << align;
			lo = hi = 0;
			if (op & 8) { /* a window, possibly bad */
				lo = base + next64(&in, 2) % (span + 2 * page) -
				     page;
				hi = lo + next64(&in, 2) % (span + page);
			}
			if (op % 8 == 1 && (op & 8))
				rc = fuzz_xalloc(s, &in, sz, align, page, lo,
						 hi, &phase, &addr);
			else
				rc = vmap_alloc(s, sz, align, lo, hi, 0, &addr);
			if (rc == -EINVAL || rc == -ENOMEM)
				break;
			if (rc)
				fail("unexpected allocation error",
				     (uint64_t)-rc, sz);
			if (!lo && !hi) {
				lo = base;
				hi = limit;
			}
			if (addr < lo || addr + sz > hi ||
			    (align > page && (addr - phase) % align))
				fail("range outside its window or misaligned",
				     addr, sz);
			for (i = 0; i < nlive; i++)
				if (addr < live[i].end &&
				    live[i].start < addr + sz)
					fail("range handed out twice", addr,
					     live[i].start);
			if (nlive < MAX_LIVE) {
				live[nlive].start = addr;
				live[nlive++].end = addr + sz;
			} else if (vmap_free(s, addr)) {
				fail("free of a fresh range refused", addr, 0);
			}
			break;
		case 3:
		case 4:
			if (nlive && !(op & 8)) {
				i = next(&in) % nlive;
				if (vmap_free(s, live[i].start))
					fail("free of a live range refused",
					     live[i].start, 0);
				live[i] = live[--nlive];
				break;
			}
			addr = base + next64(&in, 3) % (span + page) - page / 2;
			k = live_index(live, nlive, addr);
			rc = vmap_free(s, addr);
			if (k < 0 && rc != -ENOENT)
				fail("bogus free not refused", addr,
				     (uint64_t)rc);
			if (k >= 0) {
				if (rc)
					fail("free of a live start refused",
					     addr, 0);
				live[k] = live[--nlive];
			}
			break;
		case 5:
			if (op & 8)
				check_next(s, base + next64(&in, 3) % span,
					   live, nlive);
			else
				vmap_purge(s);
			break;
		case 6:
			if (op & 8)
				nlive = fuzz_pcpu(s, &in, page, live, nlive);
			else
				vmap_shrink(s);
			break;
		case 7:
			addr = base + next64(&in, 3) % span;
			if (op & 8) {
				sz = (1 + next(&in) % 16) * page;
				rc = vmap_reserve(s, addr, sz, 0);
				if (rc == -EINVAL || rc == -EEXIST)
					break;
				if (rc || addr % page)
					fail("unexpected reservation result",
					     addr, (uint64_t)-rc);
				if (nlive == MAX_LIVE) {
					if (vmap_free(s, addr))
						fail("free of a reservation refused",
						     addr, 0);
					break;
				}
				for (i = 0; i < nlive; i++)
					if (addr < live[i].end &&
					    live[i].start < addr + sz)
						fail("reservation over a live range",
						     addr, live[i].start);
				live[nlive].start = addr;
				live[nlive++].end = addr + sz;
				break;
			}
			rc = vmap_find(s, addr, &r);
			for (i = 0; i < nlive; i++)
				if (addr >= live[i].start && addr < live[i].end)
					break;
			if ((i < nlive) != (rc == 0) ||
			    (rc == 0 && (r.start != live[i].start ||
					 r.end != live[i].end)))
				fail("find disagrees with the shadow", addr,
				     (uint64_t)rc);
			break;
		}
		check(s);
	}
	for (i = 0; i < nlive; i++)
		if (vmap_free(s, live[i].start))
			fail("final free refused", live[i].start, 0);
	vmap_purge(s);
	vmap_shrink(s);
	check(s);
	vmap_stats_get(s, -1, &st);
	if (st.free_bytes != span || st.lazy_pages || st.pooled_now)
		fail("space not whole again", st.free_bytes, span);
	vmap_space_destroy(s);
	vmap_set_thread_cpu(-1);
	return 0;
}
