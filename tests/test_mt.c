/* SPDX-License-Identifier: MIT */
/*
 * test_mt.c - multi-thread stress: what it proves
 *
 *  - no two live ranges ever overlap: every page of the space has an
 *    owner word in a shadow map; a thread claims each page of a range it
 *    was given with a compare-and-swap from "nobody" (a failed CAS is a
 *    double hand-out) and checks and clears its stamp before freeing;
 *  - lookups see the right range while other threads churn;
 *  - nothing is lost: after the workers stop, everything is freed, a
 *    purge and a shrink run, vmap_check() passes and the free heap is the
 *    whole space again;
 *  - all of this while another thread runs purge and shrink in a loop,
 *    the drain thread and purge helpers run, and (in the small space)
 *    allocations fail and take the full-purge path.
 *
 * Threads: 2 to 16 (more than cores on purpose).  Fixed seeds per thread
 * derived from VMAP_TEST_SEED; VMAP_TEST_SCALE scales the operations.
 * Built and run under ASan+UBSan and under TSan (label mt) by make check;
 * run longer with VMAP_TEST_SCALE=20.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "vmap.h"

#define PAGE 4096ull
#define BASE 0x7f0000000000ull
#define MAX_LIVE 48

struct run {
	struct vmap_space *s;
	uint64_t pages;
	atomic_uint *owner;	/* per page: 0 or thread id + 1 */
	atomic_bool stop;
	atomic_int errors;
	atomic_long ops;
	long ops_per_thread;
	unsigned max_pages;
};

struct worker {
	struct run *run;
	unsigned id;
	uint64_t seed;
};

struct held {
	uint64_t start, pages;
};

static uint64_t wrnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void report(struct run *r, const char *what, uint64_t addr)
{
	if (atomic_fetch_add(&r->errors, 1) < 5)
		fprintf(stderr, "FAIL: %s at 0x%llx\n", what, (unsigned long long)addr);
}

static bool claim(struct run *r, unsigned id, uint64_t start, uint64_t pages)
{
	uint64_t first = (start - BASE) / PAGE, i;
	unsigned nobody;

	for (i = 0; i < pages; i++) {
		nobody = 0;
		if (!atomic_compare_exchange_strong(&r->owner[first + i], &nobody, id + 1)) {
			report(r, "range handed out twice", start + i * PAGE);
			return false;
		}
	}
	return true;
}

static void release(struct run *r, unsigned id, const struct held *h)
{
	uint64_t first = (h->start - BASE) / PAGE, i;

	for (i = 0; i < h->pages; i++) {
		if (atomic_load(&r->owner[first + i]) != id + 1)
			report(r, "stamp changed under its owner", h->start + i * PAGE);
		atomic_store(&r->owner[first + i], 0);
	}
	if (vmap_free(r->s, h->start))
		report(r, "free of a live range refused", h->start);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	struct held live[MAX_LIVE];
	uint64_t st = w->seed, pages, align, addr, lo, hi;
	struct vmap_range found;
	unsigned nlive = 0, i;
	long op;
	int rc;

	vmap_set_thread_cpu(w->id % 3 ? -1 : (int)w->id);
	for (op = 0; op < r->ops_per_thread; op++) {
		unsigned kind = (unsigned)(wrnd(&st) % 16);

		if (kind < 8 && nlive < MAX_LIVE) {
			pages = 1 + wrnd(&st) % r->max_pages;
			align = PAGE << (wrnd(&st) % 4);
			lo = hi = 0;
			if (kind == 0) {
				/* A restricted window somewhere in the space. */
				lo = BASE + (wrnd(&st) % (r->pages / 2)) * PAGE;
				hi = lo + (r->pages / 4) * PAGE;
			}
			rc = vmap_alloc(r->s, pages * PAGE, align, lo, hi,
					kind == 7 ? VMAP_NONBLOCK : 0, &addr);
			if (rc == -ENOMEM || rc == -EBUSY)
				continue;
			if (rc) {
				report(r, "allocation error", (uint64_t)-rc);
				continue;
			}
			if (addr & (align - 1) || addr < BASE ||
			    addr + pages * PAGE > BASE + r->pages * PAGE ||
			    (hi && (addr < lo || addr + pages * PAGE > hi)))
				report(r, "range outside its window or misaligned", addr);
			else if (claim(r, w->id, addr, pages)) {
				live[nlive].start = addr;
				live[nlive].pages = pages;
				nlive++;
			}
		} else if (kind < 14 && nlive) {
			i = (unsigned)(wrnd(&st) % nlive);
			release(r, w->id, &live[i]);
			live[i] = live[--nlive];
		} else if (nlive) {
			i = (unsigned)(wrnd(&st) % nlive);
			addr = live[i].start + (wrnd(&st) % live[i].pages) * PAGE + 7;
			if (vmap_find(r->s, addr, &found) || found.start != live[i].start ||
			    found.end != live[i].start + live[i].pages * PAGE)
				report(r, "lookup found the wrong range", addr);
		}
		atomic_fetch_add_explicit(&r->ops, 1, memory_order_relaxed);
	}
	for (i = 0; i < nlive; i++)
		release(r, w->id, &live[i]);
	return NULL;
}

static void *purger_main(void *arg)
{
	struct run *r = arg;
	unsigned n = 0;

	while (!atomic_load(&r->stop)) {
		if (n++ % 4 == 3)
			vmap_shrink(r->s);
		else
			vmap_purge(r->s);
		sched_yield();
	}
	return NULL;
}

static void stress(unsigned threads, unsigned nodes, uint64_t pages,
		   uint64_t lazy_max, unsigned max_pages, long ops)
{
	struct vmap_params p = { .nr_nodes = nodes, .lazy_max_pages = lazy_max };
	struct worker w[16];
	pthread_t tid[16], purger;
	struct vmap_stats st = { .size = sizeof(st) };
	struct run r;
	unsigned i;

	memset(&r, 0, sizeof(r));
	r.pages = pages;
	r.max_pages = max_pages;
	r.ops_per_thread = ops;
	r.owner = calloc(pages, sizeof(*r.owner));
	assert_int(vmap_space_create(BASE, BASE + pages * PAGE, &p, &r.s), ==, 0);
	assert_int(pthread_create(&purger, NULL, purger_main, &r), ==, 0);
	for (i = 0; i < threads; i++) {
		w[i].run = &r;
		w[i].id = i;
		w[i].seed = test_seed * 1000003u + i * 7919u + nodes;
		assert_int(pthread_create(&tid[i], NULL, worker_main, &w[i]), ==, 0);
	}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	atomic_store(&r.stop, true);
	pthread_join(purger, NULL);

	expect_int(atomic_load(&r.errors), ==, 0);
	assert_int(vmap_purge(r.s), ==, 0);
	assert_int(vmap_shrink(r.s), ==, 0);
	assert_space_ok(r.s);
	vmap_stats_get(r.s, -1, &st);
	expect_u64(st.free_bytes, ==, pages * PAGE);
	expect_u64(st.lazy_pages, ==, 0);
	expect_u64(st.pooled_now, ==, 0);
	expect_u64(st.overlaps, ==, 0);
	expect_u64(st.allocs, ==, st.frees);
	vmap_space_destroy(r.s);
	free(r.owner);
}

TEST(two_threads_one_node)
{
	stress(2, 1, 16384, 256, 64, scaled(20000));
}

TEST(four_threads_four_nodes)
{
	stress(4, 4, 16384, 256, 64, scaled(20000));
}

TEST(eight_threads_auto_nodes_small_space)
{
	/* 2048 pages against 8 x 48 ranges of up to 16: failures and full purges. */
	stress(8, 0, 2048, 64, 16, scaled(10000));
}

TEST(sixteen_threads_sixteen_nodes)
{
	stress(16, 16, 65536, 512, 300, scaled(5000));
}

int main(int argc, char **argv)
{
	return test_main(argc, argv, (struct test[]){
		T(two_threads_one_node),
		T(four_threads_four_nodes),
		T(eight_threads_auto_nodes_small_space),
		T(sixteen_threads_sixteen_nodes),
		{ 0 } });
}
