/* SPDX-License-Identifier: MIT */
/*
 * lock.c - the slow paths of struct vlock (see lock.h): bounded spinning,
 * then sleeping on the state word.  No state of its own.
 */
#include "lock.h"
#include "os.h"

/*
 * About a microsecond of polling: long enough to outlast a typical hold,
 * short enough that a holder preempted for a whole time slice costs the
 * waiters one futex sleep each, not the slice.
 */
#define SPINS 128

void vlock_init(struct vlock *l)
{
	atomic_init(&l->state, 0);
	atomic_init(&l->acquired, 0);
#ifdef VMAP_DEBUG
	atomic_init(&l->owner, 0);
#endif
}

#ifdef VMAP_DEBUG
uintptr_t vlock_self(void)
{
	static _Thread_local char token;

	return (uintptr_t)&token;
}
#endif

void vlock_wait(struct vlock *l)
{
	int c;
	unsigned i;

	for (i = 0; i < SPINS; i++) {
		c = 0;
		if (atomic_load_explicit(&l->state, memory_order_relaxed) ==
			    0 &&
		    atomic_compare_exchange_weak_explicit(&l->state, &c, 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return;
		os_cpu_relax();
	}
	/* Mark the lock contended; whoever frees it then wakes a sleeper. */
	while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) !=
	       0)
		os_futex_wait(&l->state, 2);
}

void vlock_wake(struct vlock *l)
{
	os_futex_wake(&l->state);
}
