/* SPDX-License-Identifier: MIT */
/*
 * soak - many threads (three per core, at least 6) doing random
 * allocations of mixed sizes and windows on one space, while another runs
 * purge and shrink in a loop, for a bounded time.
 *
 * Beside them, two mappers map and unmap pool pages with vm_map_ram() on
 * a heap of their own (the mappers of stress.h).
 *
 * What it proves: about once a second every thread is stopped at a gate
 * (stop the world: no call in flight), and then vmap_check() must pass,
 * every range a thread holds must be found by vmap_find(), and no range
 * may have been handed out twice (the shadow map of stress.h); on the
 * heap, vmap_heap_check() (the space and every block) must pass and
 * vread() must read each live mapping's stamps.  At the end every range
 * is freed and the space must be whole again, exactly; every mapping is
 * unmapped and the heap's blocks still check.
 *
 *   soak [SECONDS [THREADS [NODES]]]     (default 20 s, 3 x cores, auto)
 *
 * Builds under every sanitizer with the tests (make check runs 20 s under
 * ASan and 10 s under TSan); `make soak` runs SOAK_SECONDS in the release
 * build, `make valgrind` a short one under memcheck.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t parked_cv, resume_cv;
	atomic_bool closing;
	bool closed;
	unsigned parked;
};

static atomic_bool stop_mappers;

static struct gate gate = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.parked_cv = PTHREAD_COND_INITIALIZER,
	.resume_cv = PTHREAD_COND_INITIALIZER,
};

/* A thread between two operations waits here while the gate is closed. */
static void gate_pass(void)
{
	if (!atomic_load_explicit(&gate.closing, memory_order_acquire))
		return;
	pthread_mutex_lock(&gate.lock);
	gate.parked++;
	pthread_cond_signal(&gate.parked_cv);
	while (gate.closed)
		pthread_cond_wait(&gate.resume_cv, &gate.lock);
	gate.parked--;
	pthread_mutex_unlock(&gate.lock);
}

static void gate_close(unsigned threads)
{
	pthread_mutex_lock(&gate.lock);
	gate.closed = true;
	atomic_store_explicit(&gate.closing, true, memory_order_release);
	while (gate.parked < threads)
		pthread_cond_wait(&gate.parked_cv, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.closed = false;
	atomic_store_explicit(&gate.closing, false, memory_order_release);
	pthread_cond_broadcast(&gate.resume_cv);
	pthread_mutex_unlock(&gate.lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&w->run->stop)) {
		gate_pass();
		stress_step(w);
	}
	stress_release_all(w);
	return NULL;
}

#define MAPPERS 2

static void *mapper_main(void *arg)
{
	struct mapper *m = arg;

	if (mapper_init(m))
		map_report(m->run, "no pages to map", NULL);
	while (!atomic_load(&stop_mappers)) {
		gate_pass();
		mapper_step(m);
	}
	mapper_release_all(m);
	return NULL;
}

/* With the world stopped: the heap's blocks, and each live mapping read
 * back through vread(). */
static int check_maps(struct map_run *mr, struct mapper *m)
{
	uint64_t v;
	char msg[256];
	unsigned k, i;

	if (vmap_heap_check(mr->h, msg, sizeof(msg))) {
		fprintf(stderr, "soak: vmap_heap_check: %s\n", msg);
		return -1;
	}
	for (k = 0; k < MAPPERS; k++)
		for (i = 0; i < m[k].nlive; i++)
			if (vmap_heap_vread(mr->h, (char *)&v,
					    m[k].live[i].addr,
					    sizeof(v)) != sizeof(v) ||
			    v != map_stamp(m[k].id, 0)) {
				fprintf(stderr,
					"soak: vread of a live mapping\n");
				return -1;
			}
	return atomic_load(&mr->errors) ? -1 : 0;
}

static void *purger_main(void *arg)
{
	struct run *r = arg;
	unsigned round = 0;

	while (!atomic_load(&r->stop)) {
		gate_pass();
		stress_purge_step(r, &round);
		usleep(200);
	}
	return NULL;
}

/* With the world stopped: invariants, and every held range findable. */
static int check_world(struct run *r, struct worker *w, unsigned threads)
{
	struct vmap_range found;
	char msg[256];
	unsigned t, i;

	if (vmap_check(r->s, msg, sizeof(msg))) {
		fprintf(stderr, "soak: vmap_check: %s\n", msg);
		return -1;
	}
	for (t = 0; t < threads; t++)
		for (i = 0; i < w[t].nlive; i++)
			if (vmap_find(r->s, w[t].live[i].start, &found) ||
			    found.start != w[t].live[i].start) {
				fprintf(stderr,
					"soak: a held range is not busy\n");
				return -1;
			}
	return atomic_load(&r->errors) ? -1 : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	double seconds = argc > 1 ? atof(argv[1]) : 20, start, t;
	unsigned threads =
		argc > 2 ? (unsigned)atoi(argv[2]) : (unsigned)(3 * cpus);
	struct vmap_params p = { .nr_nodes =
					 argc > 3 ? (uint32_t)atoi(argv[3]) : 0,
				 .lazy_max_pages = 512 };
	struct vmap_heap_params hp = { .reserve_bytes = 1ull << 30,
				       .nr_nodes = p.nr_nodes,
				       .lazy_max_pages = 512 };
	static struct mapper m[MAPPERS];
	static struct worker w[64];
	pthread_t tid[65], mtid[MAPPERS];
	struct vmap_space_info hinfo;
	struct map_run mr = { 0 };
	unsigned i, checks = 0;
	char msg[256];
	struct run r;
	bool ok = true;

	if (threads < 6)
		threads = 6;
	if (seconds <= 0 || threads > 64 || p.nr_nodes > 128) {
		fprintf(stderr,
			"usage: soak [SECONDS [THREADS 6..64 [NODES 0..128]]]\n");
		return 2;
	}
	memset(&r, 0, sizeof(r));
	r.pages = 1 << 15; /* 128 MiB: small enough to run out */
	r.max_pages = 64;
	r.owner = calloc(r.pages, sizeof(*r.owner));
	if (!r.owner ||
	    vmap_space_create(BASE, BASE + r.pages * PAGE, &p, &r.s)) {
		fprintf(stderr, "soak: cannot create the space\n");
		return 1;
	}
	mr.pages = hp.reserve_bytes / PAGE;
	mr.owner = calloc(mr.pages, sizeof(*mr.owner));
	if (!mr.owner || vmap_heap_create(&hp, &mr.h)) {
		fprintf(stderr, "soak: cannot create the heap\n");
		return 1;
	}
	vmap_space_info(vmap_heap_space(mr.h), &hinfo);
	mr.base = hinfo.base;
	for (i = 0; i < MAPPERS; i++) {
		m[i].run = &mr;
		m[i].id = i;
		m[i].seed = 0x3a9ull * (i + 1);
		pthread_create(&mtid[i], NULL, mapper_main, &m[i]);
	}
	for (i = 0; i < threads; i++) {
		w[i].run = &r;
		w[i].id = i;
		w[i].seed = 0x50a4ull * (i + 1);
		pthread_create(&tid[i], NULL, worker_main, &w[i]);
	}
	pthread_create(&tid[threads], NULL, purger_main, &r);
	start = now();
	while ((t = now() - start) < seconds && ok) {
		usleep(t + 1 < seconds ? 1000000 :
					 (useconds_t)((seconds - t) * 1e6));
		gate_close(threads + 1 + MAPPERS);
		ok = check_world(&r, w, threads) == 0 &&
		     check_maps(&mr, m) == 0;
		checks++;
		gate_open();
	}
	atomic_store(&r.stop, true);
	atomic_store(&stop_mappers, true);
	for (i = 0; i <= threads; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < MAPPERS; i++)
		pthread_join(mtid[i], NULL);
	t = now() - start;
	if (ok && stress_conserved(&r, msg, sizeof(msg))) {
		fprintf(stderr, "soak: %s\n", msg);
		ok = false;
	}
	vmap_heap_vm_unmap_aliases(mr.h);
	for (i = 0; ok && i < mr.pages; i++)
		ok = !atomic_load(&mr.owner[i]);
	if (ok && check_maps(&mr, m))
		ok = false;
	printf("soak: %ld ops by %u threads in %.1f s (%.0f ops/s), %u stop-the-world checks\n",
	       atomic_load(&r.ops), threads, t, atomic_load(&r.ops) / t,
	       checks);
	printf("soak: %ld vm_map_ram operations by %u mappers\n",
	       atomic_load(&mr.ops), MAPPERS);
	printf("soak: %d passed, %d failed\n", ok, !ok);
	vmap_space_destroy(r.s);
	free(r.owner);
	vmap_heap_destroy(mr.h);
	free(mr.owner);
	return ok ? 0 : 1;
}
