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
 *
 * Debug builds (VMAP_DEBUG) also record the holding thread, so that a
 * function whose comment says "caller holds X" can assert it with
 * vlock_assert_held(), as the kernel's lockdep_assert_held() does, and a
 * release by a thread that does not hold the lock aborts.
 */
#ifndef VMAP_LOCK_H
#define VMAP_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "debug.h"

struct vlock {
	atomic_int state;
	atomic_uint_fast64_t acquired;
#ifdef VMAP_DEBUG
	atomic_uintptr_t owner; /* vlock_self() of the holder, or 0 */
#endif
};

void vlock_init(struct vlock *l);
void vlock_wait(struct vlock *l); /* slow path of vlock_take() */
void vlock_wake(struct vlock *l); /* slow path of vlock_release() */

#ifdef VMAP_DEBUG
/* A token unique to each live thread: the address of a thread-local. */
uintptr_t vlock_self(void);

static inline void vlock_set_owner(struct vlock *l, uintptr_t owner)
{
	atomic_store_explicit(&l->owner, owner, memory_order_relaxed);
}

static inline int vlock_held(struct vlock *l)
{
	return atomic_load_explicit(&l->owner, memory_order_relaxed) ==
	       vlock_self();
}
#define vlock_assert_held(l) VMAP_ASSERT(vlock_held(l))
#else
#define vlock_set_owner(l, owner) ((void)0)
#define vlock_assert_held(l) ((void)0)
#endif

/* Take @l only if it is free; true if taken. */
static inline bool vlock_try(struct vlock *l)
{
	int free_state = 0;

	if (!atomic_compare_exchange_strong_explicit(&l->state, &free_state, 1,
						     memory_order_acquire,
						     memory_order_relaxed))
		return false;
	vlock_set_owner(l, vlock_self());
	return true;
}

/* Take the lock without counting it (the checker's freeze). */
static inline void vlock_take(struct vlock *l)
{
	if (vlock_try(l))
		return;
	vlock_wait(l);
	vlock_set_owner(l, vlock_self());
}

static inline void vlock_acquire(struct vlock *l)
{
	vlock_take(l);
	atomic_store_explicit(
		&l->acquired,
		atomic_load_explicit(&l->acquired, memory_order_relaxed) + 1,
		memory_order_relaxed);
}

static inline void vlock_release(struct vlock *l)
{
	vlock_assert_held(l);
	vlock_set_owner(l, 0);
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

/*
 * The same for a counter that only the holder of one lock writes, a lock
 * its writer holds anyway: a plain load and store, where an atomic add
 * locks the bus (the three counters of an alloc+free pair took a tenth
 * of it).
 */
static inline void counter_add_locked(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t counter_read(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

#endif /* VMAP_LOCK_H */
