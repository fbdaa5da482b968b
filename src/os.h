/* SPDX-License-Identifier: MIT */
/*
 * os.h - what the library asks of the operating system, in one place.
 *
 * Contract: every function is thread-safe, none takes a lock of the
 * library, and failures are reported, never fatal.
 *  os_nr_cpus()       online CPUs, at least 1.
 *  os_usable_cpus()   the CPUs the calling thread may run on (its
 *                     affinity: taskset, a container's cpuset), at least 1.
 *  os_current_cpu()   the CPU the caller runs on now (cheap: glibc reads it
 *                     from the rseq area), or a stable per-thread index
 *                     where the system cannot tell.
 *  os_thread_id()     the calling thread's system-wide id (gettid).
 *  os_thread_start()  a joinable thread; 0 or a negative errno (also by
 *                     fault injection, site FAULT_THREAD).
 *  os_futex_wait()    sleep while *@word == @val (or until woken; may
 *                     return spuriously).  os_futex_wake(): wake one.
 *  os_cpu_relax()     a pause for spin loops.
 *  os_stream_done()   flush a stream the library wrote to: 0, or -EIO if
 *                     any write to it failed (a full disk, a closed pipe).
 *  os_cancel_off()    disable the calling thread's cancellation; returns
 *                     the previous state for os_cancel_restore().  Around
 *                     every wait of the library, so that no call of it is
 *                     a cancellation point.
 *  os_reserve()       @len bytes of address space, inaccessible and not
 *                     charged to overcommit; NULL if refused.
 *  os_unreserve()     give a reservation back.
 *  os_protect()       make pages read-write or inaccessible; 0 or -errno.
 *  os_reserve_open()  the same, but readable and writable (still not
 *                     charged: memory comes on first touch).
 *  os_guard()         install (or remove) guard markers on pages:
 *                     touching them faults, without splitting the
 *                     mapping (MADV_GUARD_INSTALL, Linux 6.13+); -EINVAL
 *                     where the kernel lacks it.
 *  os_remap()         replace pages with a fresh mapping, as os_reserve()
 *                     (or, @open, os_reserve_open()) made them: their
 *                     memory is released, mappings of other files gone,
 *                     and the new mapping can merge with neighbours of
 *                     the same protection (an old one that was ever written keeps
 *                     its own anon_vma and never merges); 0 or -errno.
 *  os_discard()       release the memory behind pages, keeping them
 *                     mapped (MADV_DONTNEED: they read zero afterwards;
 *                     MADV_FREE: lazily, contents undefined until then).
 */
#ifndef VMAP_OS_H
#define VMAP_OS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

unsigned os_nr_cpus(void);
unsigned os_usable_cpus(void);
unsigned os_current_cpu(void);
long os_thread_id(void);
int os_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);
void os_futex_wait(atomic_int *word, int val);
void os_futex_wake(atomic_int *word);
int os_stream_done(FILE *out);
int os_cancel_off(void);
void os_cancel_restore(int state);

static inline void os_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}
void *os_reserve(size_t len);
void *os_reserve_open(size_t len);
int os_guard(void *addr, size_t len, int install);
void os_unreserve(void *addr, size_t len);
int os_protect(void *addr, size_t len, int readwrite);
int os_remap(void *addr, size_t len, int open);
int os_discard(void *addr, size_t len, int lazily);

/*
 * Pages that can be mapped more than once: a memfd of @len bytes (sparse:
 * memory is taken when a page is first touched), -errno on failure.
 * os_pages_release() gives the memory of [off, off + len) back; the pages
 * read zero afterwards.
 */
int os_pages_create(size_t len);
int os_pages_release(int fd, uint64_t off, uint64_t len);
void os_pages_close(int fd);

/*
 * Map [off, off + len) of the memfd @fd read-write and shared at @addr,
 * replacing whatever was there (os_remap() puts the reservation back).
 * 0 or -errno.
 */
int os_map_pages(void *addr, size_t len, int fd, uint64_t off);

/*
 * Copy @len bytes from @src to @dst without faulting: 0, or -EFAULT when
 * part of @src cannot be read (what was copied is undefined then).
 */
int os_copy_nofault(void *dst, const void *src, size_t len);

#endif /* VMAP_OS_H */
