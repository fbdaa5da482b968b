/* SPDX-License-Identifier: MIT */
/*
 * os.h - what the library asks of the operating system, in one place.
 *
 * Contract: every function is thread-safe, none takes a lock of the
 * library, and failures are reported, never fatal.
 *  os_nr_cpus()       online CPUs, at least 1.
 *  os_current_cpu()   the CPU the caller runs on now (cheap: glibc reads it
 *                     from the rseq area), or a stable per-thread index
 *                     where the system cannot tell.
 *  os_thread_start()  a joinable thread; 0 or a negative errno (also by
 *                     fault injection, site FAULT_THREAD).
 */
#ifndef VMAP_OS_H
#define VMAP_OS_H

#include <pthread.h>
#include <stddef.h>

unsigned os_nr_cpus(void);
unsigned os_current_cpu(void);
int os_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif /* VMAP_OS_H */
