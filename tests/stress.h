/* SPDX-License-Identifier: MIT */
/*
 * stress.h - the shadow-map stress worker shared by test_mt and soak.
 *
 * Every page of the space has an owner word: a thread claims each page of
 * a range it was given with a compare-and-swap from "nobody" (a failed CAS
 * is a range handed out twice), and checks and clears its stamp before
 * freeing.  stress_step() is one random operation: an allocation (mixed
 * sizes and alignments, sometimes in a restricted window, sometimes
 * non-blocking, sometimes two congruent areas), a free, or a lookup of an
 * inner address that must find the thread's own range.
 */
#ifndef VMAP_TEST_STRESS_H
#define VMAP_TEST_STRESS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x7f0000000000ull
#define MAX_LIVE 48

struct run {
	struct vmap_space *s;
	uint64_t pages;
	atomic_uint *owner; /* per page: 0 or thread id + 1 */
	atomic_bool stop;
	atomic_int errors;
	atomic_long ops;
	long ops_per_thread;
	unsigned max_pages;
};

struct held {
	uint64_t start, pages;
};

struct worker {
	struct run *run;
	unsigned id;
	uint64_t seed;
	struct held live[MAX_LIVE];
	unsigned nlive;
};

static inline uint64_t wrnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void report(struct run *r, const char *what, uint64_t addr)
{
	if (atomic_fetch_add(&r->errors, 1) < 5)
		fprintf(stderr, "FAIL: %s at 0x%llx\n", what,
			(unsigned long long)addr);
}

static inline bool claim(struct run *r, unsigned id, uint64_t start,
			 uint64_t pages)
{
	uint64_t first = (start - BASE) / PAGE, i;
	unsigned nobody;

	for (i = 0; i < pages; i++) {
		nobody = 0;
		if (!atomic_compare_exchange_strong(&r->owner[first + i],
						    &nobody, id + 1)) {
			report(r, "range handed out twice", start + i * PAGE);
			return false;
		}
	}
	return true;
}

static inline void release(struct run *r, unsigned id, const struct held *h)
{
	uint64_t first = (h->start - BASE) / PAGE, i;

	for (i = 0; i < h->pages; i++) {
		if (atomic_load(&r->owner[first + i]) != id + 1)
			report(r, "stamp changed under its owner",
			       h->start + i * PAGE);
		atomic_store(&r->owner[first + i], 0);
	}
	if (vmap_free(r->s, h->start))
		report(r, "free of a live range refused", h->start);
}

/*
 * Two congruent areas (vmap_pcpu_get_vm_areas), held and freed like any
 * other range: each is claimed, and both must lie at their offsets.
 */
static inline void stress_pcpu(struct worker *w)
{
	struct run *r = w->run;
	uint64_t sizes[2], offsets[2], starts[2];
	unsigned k;
	int rc;

	sizes[0] = (1 + wrnd(&w->seed) % 4) * PAGE;
	sizes[1] = (1 + wrnd(&w->seed) % 4) * PAGE;
	offsets[0] = 0;
	offsets[1] = sizes[0] + (wrnd(&w->seed) % 8) * PAGE;
	rc = vmap_pcpu_get_vm_areas(r->s, offsets, sizes, 2, PAGE, starts);
	if (rc == -ENOMEM)
		return;
	if (rc) {
		report(r, "congruent allocation error", (uint64_t)-rc);
		return;
	}
	if (starts[1] - starts[0] != offsets[1])
		report(r, "congruent areas not at their offsets", starts[0]);
	for (k = 0; k < 2; k++) {
		if (!claim(r, w->id, starts[k], sizes[k] / PAGE))
			continue;
		w->live[w->nlive].start = starts[k];
		w->live[w->nlive].pages = sizes[k] / PAGE;
		w->nlive++;
	}
}

static inline void stress_step(struct worker *w)
{
	struct run *r = w->run;
	uint64_t pages, align, addr, lo, hi;
	unsigned kind = (unsigned)(wrnd(&w->seed) % 16), i;
	struct vmap_range found;
	int rc;

	if (kind < 8 && w->nlive < MAX_LIVE) {
		pages = 1 + wrnd(&w->seed) % r->max_pages;
		align = PAGE << (wrnd(&w->seed) % 4);
		lo = hi = 0;
		if (kind == 0) {
			/* A restricted window somewhere in the space. */
			lo = BASE + (wrnd(&w->seed) % (r->pages / 2)) * PAGE;
			hi = lo + (r->pages / 4) * PAGE;
		}
		rc = vmap_alloc(r->s, pages * PAGE, align, lo, hi,
				kind == 7 ? VMAP_NONBLOCK : 0, &addr);
		if (rc == -ENOMEM || rc == -EBUSY)
			return;
		if (rc) {
			report(r, "allocation error", (uint64_t)-rc);
			return;
		}
		if (addr & (align - 1) || addr < BASE ||
		    addr + pages * PAGE > BASE + r->pages * PAGE ||
		    (hi && (addr < lo || addr + pages * PAGE > hi)))
			report(r, "range outside its window or misaligned",
			       addr);
		else if (claim(r, w->id, addr, pages)) {
			w->live[w->nlive].start = addr;
			w->live[w->nlive].pages = pages;
			w->nlive++;
		}
	} else if (kind == 15 && w->nlive + 2 <= MAX_LIVE) {
		stress_pcpu(w);
	} else if (kind < 14 && w->nlive) {
		i = (unsigned)(wrnd(&w->seed) % w->nlive);
		release(r, w->id, &w->live[i]);
		w->live[i] = w->live[--w->nlive];
	} else if (w->nlive) {
		i = (unsigned)(wrnd(&w->seed) % w->nlive);
		addr = w->live[i].start +
		       (wrnd(&w->seed) % w->live[i].pages) * PAGE + 7;
		if (vmap_find(r->s, addr, &found) ||
		    found.start != w->live[i].start ||
		    found.end != w->live[i].start + w->live[i].pages * PAGE)
			report(r, "lookup found the wrong range", addr);
	}
	atomic_fetch_add_explicit(&r->ops, 1, memory_order_relaxed);
}

/* What the purging thread does each round: a purge, every fourth a shrink. */
static inline void stress_purge_step(struct run *r, unsigned *round)
{
	if ((*round)++ % 4 == 3)
		vmap_shrink(r->s);
	else
		vmap_purge(r->s);
}

static inline void stress_release_all(struct worker *w)
{
	while (w->nlive)
		release(w->run, w->id, &w->live[--w->nlive]);
}

/* Everything back: check passes and the free heap is the whole space. */
static inline int stress_conserved(struct run *r, char *msg, size_t len)
{
	struct vmap_stats st = { .size = sizeof(st) };
	int rc;

	vmap_purge(r->s);
	vmap_shrink(r->s);
	rc = vmap_check(r->s, msg, len);
	if (rc)
		return rc;
	vmap_stats_get(r->s, -1, &st);
	if (st.free_bytes != r->pages * PAGE || st.lazy_pages ||
	    st.pooled_now || st.overlaps || st.allocs != st.frees) {
		snprintf(
			msg, len,
			"not conserved: free %llu of %llu bytes, %llu lazy pages, "
			"%llu pooled, %llu overlaps, %llu allocs, %llu frees",
			(unsigned long long)st.free_bytes,
			(unsigned long long)(r->pages * PAGE),
			(unsigned long long)st.lazy_pages,
			(unsigned long long)st.pooled_now,
			(unsigned long long)st.overlaps,
			(unsigned long long)st.allocs,
			(unsigned long long)st.frees);
		return -EUCLEAN;
	}
	return 0;
}

/*
 * vm_map_ram workers: the same shadow-map claims over the pages of a
 * heap.  Each mapper owns VMAP_MAX_ALLOC pool pages, stamped once with
 * its id and their index; a mapping of n pages maps the first n of them,
 * so page i of any live mapping must read its stamp.
 */
#define MAX_MAPS 16

struct map_run {
	struct vmap_heap *h;
	uint64_t base, pages;
	atomic_uint *owner; /* per page of the heap: 0 or mapper id + 1 */
	atomic_int errors;
	atomic_long ops;
};

struct mapping {
	char *addr;
	unsigned count;
};

struct mapper {
	struct map_run *run;
	unsigned id;
	uint64_t seed;
	uint64_t pool[VMAP_MAX_ALLOC];
	struct mapping live[MAX_MAPS];
	unsigned nlive;
};

static inline void map_report(struct map_run *r, const char *what,
			      const void *addr)
{
	if (atomic_fetch_add(&r->errors, 1) < 5)
		fprintf(stderr, "FAIL: %s at %p\n", what, addr);
}

static inline uint64_t map_stamp(unsigned id, unsigned i)
{
	return 0x5ea1000000000000ull | (uint64_t)id << 16 | i;
}

/* Claim (@take) or release every page of @m in the shadow map. */
static inline bool map_claim(struct mapper *m, const struct mapping *mp,
			     bool take)
{
	struct map_run *r = m->run;
	uint64_t first = ((uint64_t)(uintptr_t)mp->addr - r->base) / PAGE, i;
	unsigned want;

	for (i = first; i < first + mp->count; i++) {
		want = take ? 0 : m->id + 1;
		if (!atomic_compare_exchange_strong(&r->owner[i], &want,
						    take ? m->id + 1 : 0)) {
			map_report(r,
				   take ? "page mapped twice" :
					  "page lost its owner",
				   mp->addr + (i - first) * PAGE);
			return false;
		}
	}
	return true;
}

static inline bool mapping_intact(const struct mapping *mp, unsigned id)
{
	uint64_t v;
	unsigned i;

	for (i = 0; i < mp->count; i++) {
		memcpy(&v, mp->addr + i * PAGE, sizeof(v));
		if (v != map_stamp(id, i))
			return false;
	}
	return true;
}

/* Stamp the mapper's pages through one mapping of all of them. */
static inline int mapper_init(struct mapper *m)
{
	struct mapping all = { NULL, VMAP_MAX_ALLOC };
	uint64_t v;
	unsigned i;

	if (vmap_pages_alloc(m->run->h, VMAP_MAX_ALLOC, m->pool))
		return -1;
	all.addr = vmap_heap_vm_map_ram(m->run->h, m->pool, VMAP_MAX_ALLOC);
	if (!all.addr)
		return -1;
	for (i = 0; i < VMAP_MAX_ALLOC; i++) {
		v = map_stamp(m->id, i);
		memcpy(all.addr + i * PAGE, &v, sizeof(v));
	}
	return vmap_heap_vm_unmap_ram(m->run->h, all.addr, VMAP_MAX_ALLOC);
}

static inline void mapper_unmap(struct mapper *m, unsigned k)
{
	struct mapping *mp = &m->live[k];

	if (!mapping_intact(mp, m->id))
		map_report(m->run, "mapping lost its contents", mp->addr);
	map_claim(m, mp, false);
	if (vmap_heap_vm_unmap_ram(m->run->h, mp->addr, mp->count))
		map_report(m->run, "unmap of a live mapping refused", mp->addr);
	m->live[k] = m->live[--m->nlive];
}

/* One random operation: map 1..VMAP_MAX_ALLOC pages, unmap, or flush. */
static inline void mapper_step(struct mapper *m)
{
	unsigned kind = (unsigned)(wrnd(&m->seed) % 16);
	struct mapping mp;

	if (kind < 8 && m->nlive < MAX_MAPS) {
		mp.count = 1 + (unsigned)(wrnd(&m->seed) % VMAP_MAX_ALLOC);
		mp.addr = vmap_heap_vm_map_ram(m->run->h, m->pool, mp.count);
		if (!mp.addr) {
			if (errno != ENOMEM)
				map_report(m->run, "vm_map_ram error", NULL);
			return;
		}
		if (map_claim(m, &mp, true))
			m->live[m->nlive++] = mp;
	} else if (kind < 15 && m->nlive) {
		mapper_unmap(m, (unsigned)(wrnd(&m->seed) % m->nlive));
	} else {
		vmap_heap_vm_unmap_aliases(m->run->h);
	}
	atomic_fetch_add_explicit(&m->run->ops, 1, memory_order_relaxed);
}

static inline void mapper_release_all(struct mapper *m)
{
	while (m->nlive)
		mapper_unmap(m, m->nlive - 1);
	vmap_pages_free(m->run->h, m->pool, VMAP_MAX_ALLOC);
}

#endif /* VMAP_TEST_STRESS_H */
