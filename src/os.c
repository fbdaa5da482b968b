/* SPDX-License-Identifier: MIT */
/*
 * os.c - the operating-system layer (contract in os.h).  Its only state
 * is an atomic counter handing out per-thread indexes.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "fault.h"
#include "os.h"

unsigned os_nr_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

unsigned os_current_cpu(void)
{
	static atomic_uint next_index;
	static _Thread_local int thread_index = -1;
	int cpu = sched_getcpu();

	if (cpu >= 0)
		return (unsigned)cpu;
	if (thread_index < 0)
		thread_index = (int)atomic_fetch_add(&next_index, 1);
	return (unsigned)thread_index;
}

int os_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	if (fault_hit(FAULT_THREAD))
		return -EAGAIN;
	return -pthread_create(thread, NULL, fn, arg);
}
