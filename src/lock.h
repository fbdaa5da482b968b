/* SPDX-License-Identifier: MIT */
/*
 * lock.h - the mutex every structure of a space uses, counting its own
 * acquisitions (the benchmark's lock-traffic figures come from these).
 *
 * The count is bumped by the holder, under the lock, so a plain
 * load-and-store suffices; it is atomic only so that readers without the
 * lock (statistics) do not race.  glibc's adaptive mutex spins briefly
 * before sleeping, which suits hold times of a few hundred nanoseconds
 * without the collapse of a pure spinlock when threads outnumber cores.
 */
#ifndef VMAP_LOCK_H
#define VMAP_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct vlock {
	pthread_mutex_t mutex;
	atomic_uint_fast64_t acquired;
};

int vlock_init(struct vlock *l);
void vlock_destroy(struct vlock *l);

static inline void vlock_acquire(struct vlock *l)
{
	pthread_mutex_lock(&l->mutex);
	atomic_store_explicit(&l->acquired,
			      atomic_load_explicit(&l->acquired,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void vlock_release(struct vlock *l)
{
	pthread_mutex_unlock(&l->mutex);
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
