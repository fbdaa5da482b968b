/* SPDX-License-Identifier: MIT */
/*
 * model.h - an independent model of one-node placement (DESIGN.md sections 2,
 * 3, 10), written as plainly as possible: sorted arrays and linear scans.  The
 * library's tree search is checked against it.
 *
 * The model knows the free ranges and, per id, the busy and lazy ranges.
 * It does not decide when the library purges: the caller tells it (the
 * library's counters say when a purge ran), and it checks that the
 * library's choices are ones DESIGN.md allows.
 */
#ifndef VMAP_TEST_MODEL_H
#define VMAP_TEST_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mrange {
	uint64_t start, end;
};

struct model {
	uint64_t base, limit, page, lazy_max_pages, lazy_pages;
	struct mrange *free;
	size_t nfree, cap;
	struct mrange *lazy;
	size_t nlazy, lazycap;
};

static inline void model_init(struct model *m, uint64_t base, uint64_t limit,
			      uint64_t page, uint64_t lazy_max_pages)
{
	memset(m, 0, sizeof(*m));
	m->base = base;
	m->limit = limit;
	m->page = page;
	m->lazy_max_pages = lazy_max_pages;
	m->cap = 16;
	m->free = malloc(m->cap * sizeof(*m->free));
	m->free[0].start = base;
	m->free[0].end = limit;
	m->nfree = 1;
}

static inline void model_fini(struct model *m)
{
	free(m->free);
	free(m->lazy);
}

static inline bool model_fits(const struct mrange *b, uint64_t size,
			      uint64_t align, uint64_t vstart, uint64_t *addr)
{
	uint64_t from = b->start > vstart ? b->start : vstart, a;

	if (from > UINT64_MAX - (align - 1))
		return false;
	a = (from + align - 1) & ~(align - 1);
	if (a > UINT64_MAX - size || a + size > b->end)
		return false;
	*addr = a;
	return true;
}

/*
 * The lowest fit among blocks of at least @min_block bytes (0: any
 * block), or false.
 */
static inline bool model_lowest(const struct model *m, uint64_t size,
				uint64_t align, uint64_t vstart,
				uint64_t min_block, uint64_t *addr)
{
	size_t i;

	for (i = 0; i < m->nfree; i++)
		if (m->free[i].end - m->free[i].start >= min_block &&
		    model_fits(&m->free[i], size, align, vstart, addr))
			return true;
	return false;
}

/* Take [a, a + size) out of the free ranges; false if it is not all free. */
static inline bool model_take(struct model *m, uint64_t a, uint64_t size)
{
	size_t i;
	struct mrange *b;

	for (i = 0; i < m->nfree; i++) {
		b = &m->free[i];
		if (a < b->start || a + size > b->end)
			continue;
		if (a == b->start && a + size == b->end) {
			memmove(b, b + 1, (m->nfree - i - 1) * sizeof(*b));
			m->nfree--;
		} else if (a == b->start) {
			b->start = a + size;
		} else if (a + size == b->end) {
			b->end = a;
		} else {
			if (m->nfree == m->cap) {
				m->cap *= 2;
				m->free = realloc(m->free,
						  m->cap * sizeof(*m->free));
				b = &m->free[i];
			}
			memmove(b + 2, b + 1, (m->nfree - i - 1) * sizeof(*b));
			m->nfree++;
			b[1].start = a + size;
			b[1].end = b->end;
			b->end = a;
		}
		return true;
	}
	return false;
}

static inline void model_give(struct model *m, uint64_t start, uint64_t end)
{
	size_t i = 0;

	while (i < m->nfree && m->free[i].start < start)
		i++;
	if (m->nfree == m->cap) {
		m->cap *= 2;
		m->free = realloc(m->free, m->cap * sizeof(*m->free));
	}
	memmove(&m->free[i + 1], &m->free[i],
		(m->nfree - i) * sizeof(*m->free));
	m->free[i].start = start;
	m->free[i].end = end;
	m->nfree++;
	if (i + 1 < m->nfree && m->free[i].end == m->free[i + 1].start) {
		m->free[i].end = m->free[i + 1].end;
		memmove(&m->free[i + 1], &m->free[i + 2],
			(m->nfree - i - 2) * sizeof(*m->free));
		m->nfree--;
	}
	if (i > 0 && m->free[i - 1].end == m->free[i].start) {
		m->free[i - 1].end = m->free[i].end;
		memmove(&m->free[i], &m->free[i + 1],
			(m->nfree - i - 1) * sizeof(*m->free));
		m->nfree--;
	}
}

static inline void model_purge(struct model *m)
{
	size_t i;

	for (i = 0; i < m->nlazy; i++)
		model_give(m, m->lazy[i].start, m->lazy[i].end);
	m->nlazy = 0;
	m->lazy_pages = 0;
}

/* A busy range freed: it turns lazy; true if that crosses the threshold. */
static inline bool model_free(struct model *m, uint64_t start, uint64_t end)
{
	if (m->nlazy == m->lazycap) {
		m->lazycap = m->lazycap ? 2 * m->lazycap : 16;
		m->lazy = realloc(m->lazy, m->lazycap * sizeof(*m->lazy));
	}
	m->lazy[m->nlazy].start = start;
	m->lazy[m->nlazy].end = end;
	m->nlazy++;
	m->lazy_pages += (end - start) / m->page;
	return m->lazy_pages > m->lazy_max_pages;
}

/*
 * What DESIGN.md section 2 allows for one request against the current
 * free ranges:
 * *@lo is the true lowest fit, *@hi the highest address the library may
 * return (the fit in the lowest block of the adjusted search length).
 * Returns false if the library must fail.  For align <= page, lo == hi.
 */
static inline bool model_bounds(const struct model *m, uint64_t size,
				uint64_t align, uint64_t vstart, uint64_t vend,
				uint64_t *lo, uint64_t *hi, bool *may_fail)
{
	uint64_t length = size;
	bool have_lo, have_hi;

	if (align > m->page && vend - vstart != size)
		length = size + align - 1;
	have_lo = model_lowest(m, size, align, vstart, 0, lo) &&
		  *lo + size <= vend;
	have_hi = model_lowest(m, size, align, vstart, length, hi) &&
		  *hi + size <= vend;
	/* Without an adjusted-length block inside the window, failing is allowed. */
	*may_fail = !have_hi;
	if (!have_hi)
		*hi = vend;
	return have_lo;
}

/*
 * The constrained model (vmap_xalloc, vmap_reserve, spaces up to 2^64).
 * Its own representation: free ranges as 128-bit integers, so that 2^64 is
 * just a number and no step needs an overflow argument; candidates found
 * by division and remainder, and every answer re-checked against the
 * constraints as they are written in the header (xmodel_valid).
 */
typedef unsigned __int128 u128;

struct xrange {
	u128 start, end;
};

struct xmodel {
	struct xrange *free; /* sorted, coalesced */
	size_t nfree, cap;
};

/* One request as the model reads it: the window already clipped. */
struct xreq {
	u128 size, align, phase, nocross, min, max;
};

enum xmode { XLOWEST, XHIGHEST, XBEST };

static inline void xmodel_init(struct xmodel *m, u128 base, u128 limit)
{
	m->cap = 16;
	m->free = malloc(m->cap * sizeof(*m->free));
	m->free[0].start = base;
	m->free[0].end = limit;
	m->nfree = 1;
}

static inline void xmodel_fini(struct xmodel *m)
{
	free(m->free);
}

static inline u128 xmodel_free_bytes(const struct xmodel *m)
{
	u128 sum = 0;
	size_t i;

	for (i = 0; i < m->nfree; i++)
		sum += m->free[i].end - m->free[i].start;
	return sum;
}

/* Is [a, a + size) wholly inside one free range? */
static inline bool xmodel_is_free(const struct xmodel *m, u128 a, u128 size)
{
	size_t i;

	for (i = 0; i < m->nfree; i++)
		if (m->free[i].start <= a && a + size <= m->free[i].end)
			return true;
	return false;
}

/* Does [a, a + size) satisfy every constraint of @r (not freedom)? */
static inline bool xmodel_valid(const struct xreq *r, u128 a)
{
	if (a % r->align != r->phase || a < r->min || a + r->size > r->max)
		return false;
	return !r->nocross || a / r->nocross == (a + r->size - 1) / r->nocross;
}

/*
 * The lowest (or highest) valid place in the free range [lo, hi): start
 * from the first (last) address of the right residue and, while the range
 * straddles a multiple of nocross, jump past (before) that multiple.
 * Each jump moves by at least one address, so the loop ends.
 */
static inline bool xmodel_place_in(const struct xreq *r, u128 lo, u128 hi,
				   enum xmode mode, u128 *out)
{
	u128 a, boundary;

	if (hi < lo + r->size)
		return false;
	if (mode == XLOWEST) {
		a = (lo + r->align - 1 - r->phase) / r->align * r->align +
		    r->phase;
		while (a + r->size <= hi && r->nocross &&
		       a / r->nocross != (a + r->size - 1) / r->nocross) {
			boundary = (a / r->nocross + 1) * r->nocross;
			a = (boundary + r->align - 1 - r->phase) / r->align *
				    r->align +
			    r->phase;
		}
		if (a + r->size > hi)
			return false;
	} else {
		a = hi - r->size;
		if (a < r->phase)
			return false;
		a = (a - r->phase) / r->align * r->align + r->phase;
		while (a >= lo && r->nocross &&
		       a / r->nocross != (a + r->size - 1) / r->nocross) {
			boundary = (a + r->size - 1) / r->nocross * r->nocross;
			if (boundary < r->size + r->phase)
				return false;
			a = (boundary - r->size - r->phase) / r->align *
				    r->align +
			    r->phase;
		}
		if (a < lo)
			return false;
	}
	*out = a;
	return xmodel_valid(r, a);
}

/*
 * The place a complete search must return: over every free range in
 * address order, the first (XLOWEST) or last (XHIGHEST) valid place; for
 * XBEST, the lowest place in the smallest range that has one, the first
 * such range among equals.
 */
static inline bool xmodel_place(const struct xmodel *m, const struct xreq *r,
				enum xmode mode, u128 *out)
{
	u128 lo, hi, a, best_size = 0;
	bool found = false;
	size_t i, k;

	for (k = 0; k < m->nfree; k++) {
		i = mode == XHIGHEST ? m->nfree - 1 - k : k;
		lo = m->free[i].start > r->min ? m->free[i].start : r->min;
		hi = m->free[i].end < r->max ? m->free[i].end : r->max;
		if (lo >= hi ||
		    !xmodel_place_in(r, lo, hi,
				     mode == XHIGHEST ? XHIGHEST : XLOWEST, &a))
			continue;
		if (mode != XBEST) {
			*out = a;
			return true;
		}
		if (!found || m->free[i].end - m->free[i].start < best_size) {
			best_size = m->free[i].end - m->free[i].start;
			*out = a;
			found = true;
		}
	}
	return found;
}

/* Take [a, a + size) out of the free ranges; false if it is not all free. */
static inline bool xmodel_take(struct xmodel *m, u128 a, u128 size)
{
	struct xrange *b;
	size_t i;

	for (i = 0; i < m->nfree; i++) {
		b = &m->free[i];
		if (a < b->start || a + size > b->end)
			continue;
		if (m->nfree == m->cap) {
			m->cap *= 2;
			m->free = realloc(m->free, m->cap * sizeof(*m->free));
			b = &m->free[i];
		}
		/* Split into [start, a) and [a + size, end), dropping empties. */
		memmove(b + 2, b + 1, (m->nfree - i - 1) * sizeof(*b));
		b[1].start = a + size;
		b[1].end = b->end;
		b->end = a;
		m->nfree++;
		if (b[1].start == b[1].end) {
			memmove(b + 1, b + 2, (m->nfree - i - 2) * sizeof(*b));
			m->nfree--;
		}
		if (b->start == b->end) {
			memmove(b, b + 1, (m->nfree - i - 1) * sizeof(*b));
			m->nfree--;
		}
		return true;
	}
	return false;
}

/* Give [start, end) back: insert in order, then merge any touching pair. */
static inline void xmodel_give(struct xmodel *m, u128 start, u128 end)
{
	size_t i = 0, j;

	if (m->nfree == m->cap) {
		m->cap *= 2;
		m->free = realloc(m->free, m->cap * sizeof(*m->free));
	}
	while (i < m->nfree && m->free[i].start < start)
		i++;
	memmove(&m->free[i + 1], &m->free[i],
		(m->nfree - i) * sizeof(*m->free));
	m->free[i].start = start;
	m->free[i].end = end;
	m->nfree++;
	for (j = 0; j + 1 < m->nfree;) {
		if (m->free[j].end == m->free[j + 1].start) {
			m->free[j].end = m->free[j + 1].end;
			memmove(&m->free[j + 1], &m->free[j + 2],
				(m->nfree - j - 2) * sizeof(*m->free));
			m->nfree--;
		} else {
			j++;
		}
	}
}

#endif /* VMAP_TEST_MODEL_H */
