/* SPDX-License-Identifier: MIT */
/*
 * fibers - a fiber stack allocator on a vmap heap.
 *
 * Each fiber gets a 64 KiB stack with a guard page below it (stacks grow
 * down, so the heap puts the guard first: VMAP_HEAP_GUARD_BELOW).  Several
 * threads each create, run and destroy thousands of fibers; a fiber sums
 * an array it keeps on its own stack, and its creator checks the sum.
 * Stacks freed together are released in batches at purge, and reused from
 * the per-node pools without system calls.
 *
 *   fibers [THREADS [FIBERS_PER_THREAD]]      (default 4 x 5000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <vmap.h>

#define STACK_SIZE (64 * 1024)
#define BATCH 64 /* fibers alive at once per thread */

static struct vmap_heap *stacks;

struct fiber {
	ucontext_t ctx;
	ucontext_t *back;
	void *stack;
	unsigned seed;
	unsigned long sum;
};

static void fiber_main(unsigned lo, unsigned hi)
{
	struct fiber *f = (struct fiber *)(((uintptr_t)hi << 32) | lo);
	unsigned local[1024]; /* 4 KiB on the fiber's own stack */
	unsigned i;

	f->sum = 0;
	for (i = 0; i < 1024; i++)
		local[i] = f->seed + i;
	for (i = 0; i < 1024; i++)
		f->sum += local[i];
	swapcontext(&f->ctx, f->back);
}

/* Kept out of worker(): getcontext() returns twice, like setjmp(). */
static int fiber_init(struct fiber *f, ucontext_t *back, unsigned seed)
{
	f->stack = vmap_heap_vmalloc(stacks, STACK_SIZE);
	if (!f->stack)
		return -1;
	getcontext(&f->ctx);
	f->ctx.uc_stack.ss_sp = f->stack;
	f->ctx.uc_stack.ss_size = STACK_SIZE;
	f->ctx.uc_link = NULL;
	f->back = back;
	f->seed = seed;
	makecontext(&f->ctx, (void (*)(void))fiber_main, 2,
		    (unsigned)(uintptr_t)f, (unsigned)((uintptr_t)f >> 32));
	return 0;
}

static void *worker(void *arg)
{
	unsigned long n = (unsigned long)(uintptr_t)arg, done = 0, i, k,
		      bad = 0;
	struct fiber *f = calloc(BATCH, sizeof(*f));
	ucontext_t self;

	for (i = 0; i < n; i += BATCH) {
		for (k = 0; k < BATCH && i + k < n; k++) {
			if (fiber_init(&f[k], &self, (unsigned)(i + k))) {
				perror("vmap_heap_vmalloc");
				exit(1);
			}
		}
		for (k = 0; k < BATCH && i + k < n; k++) {
			swapcontext(&self, &f[k].ctx);
			bad += f[k].sum !=
			       1024ul * f[k].seed + 1023ul * 1024 / 2;
			vmap_heap_vfree(stacks, f[k].stack);
			done++;
		}
	}
	free(f);
	return (void *)(uintptr_t)(bad ? 0 : done);
}

int main(int argc, char **argv)
{
	unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
	unsigned long per = argc > 2 ? strtoul(argv[2], NULL, 0) : 5000,
		      total = 0;
	struct vmap_heap_params p = { .flags = VMAP_HEAP_GUARD_BELOW,
				      .reserve_bytes = 1ull << 32 };
	struct vmap_heap_stats st = { .size = sizeof(st) };
	pthread_t t[64];
	void *ret;
	unsigned i;

	if (!threads || threads > 64 || !per) {
		fprintf(stderr,
			"usage: fibers [THREADS 1..64 [FIBERS_PER_THREAD]]\n");
		return 2;
	}
	if (vmap_heap_create(&p, &stacks)) {
		fprintf(stderr, "fibers: cannot reserve the stack heap\n");
		return 1;
	}
	for (i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)per);
	for (i = 0; i < threads; i++) {
		pthread_join(t[i], &ret);
		total += (unsigned long)(uintptr_t)ret;
	}
	vmap_heap_stats(stacks, &st);
	printf("fibers: %lu fibers run by %u threads on %u KiB stacks with guard pages; "
	       "%llu mprotect and %llu madvise calls\n",
	       total, threads, STACK_SIZE / 1024,
	       (unsigned long long)st.syscalls_mprotect,
	       (unsigned long long)st.syscalls_madvise);
	vmap_heap_destroy(stacks);
	return total == threads * per ? 0 : 1;
}
