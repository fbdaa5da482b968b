/* SPDX-License-Identifier: MIT */
/*
 * lock.h - the mutex every structure of a space uses, counting its own
 * acquisitions (the benchmark's lock-traffic figures come from these).
 *
 * A three-state futex mutex: 0 free, 1 held, 2 held with sleepers.  Taking
 * a free lock is one compare-and-swap and releasing an uncontended one is
 * one exchange, inline, with no system call; a contended taker spins
 * briefly (hold times are a few hundred nanoseconds) and then sleeps in
 * the kernel, so threads that outnumber cores do not burn their time
 * slices spinning on a preempted holder.  glibc's adaptive mutex does the
 * same but through a call and a type dispatch on every operation, which
 * cost about a tenth of an alloc+free pair here.
 *
 * The count is bumped by the holder, under the lock, so a plain
 * load-and-store suffices; it is atomic only so that readers without the
 * lock (statistics) do not race.
 */
#ifndef VMAP_LOCK_H
#define VMAP_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

struct vlock {
	atomic_int state;
	atomic_uint_fast64_t acquired;
};

void vlock_init(struct vlock *l);
void vlock_wait(struct vlock *l);	/* slow path of vlock_take() */
void vlock_wake(struct vlock *l);	/* slow path of vlock_release() */

/* Take the lock without counting it (the checker's freeze). */
static inline void vlock_take(struct vlock *l)
{
	int free_state = 0;

	if (!atomic_compare_exchange_strong_explicit(&l->state, &free_state, 1,
						     memory_order_acquire,
						     memory_order_relaxed))
		vlock_wait(l);
}

static inline void vlock_acquire(struct vlock *l)
{
	vlock_take(l);
	atomic_store_explicit(&l->acquired,
			      atomic_load_explicit(&l->acquired,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void vlock_release(struct vlock *l)
{
	if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
		vlock_wake(l);
}

static inline uint64_t vlock_count(struct vlock *l)
{
	return atomic_load_explicit(&l->acquired, memory_order_relaxed);
}

/* Relaxed event counters, bumped without any lock. */
static inline void counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t counter_read(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

#endif /* VMAP_LOCK_H */
