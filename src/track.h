/* SPDX-License-Identifier: MIT */
/*
 * track.h - what the vmalloc layer tells memory checkers, in one place.
 *
 * Under AddressSanitizer, an area is unpoisoned when vmalloc hands it out
 * and poisoned when vfree takes it back, so a use after vfree is reported
 * at the faulting access, long before the purge releases the memory (and
 * the access would silently read zeros).  Without a checker these are
 * no-ops.  Owns no state.
 */
#ifndef VMAP_TRACK_H
#define VMAP_TRACK_H

#if defined(__SANITIZE_ADDRESS__)
#define VMAP_TRACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMAP_TRACK_ASAN 1
#endif
#endif

#ifdef VMAP_TRACK_ASAN
#include <sanitizer/asan_interface.h>
#define track_usable(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define track_freed(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define track_enabled 1
#else
#define track_usable(p, n) ((void)(p), (void)(n))
#define track_freed(p, n) ((void)(p), (void)(n))
#define track_enabled 0
#endif

/*
 * Hand-offs ThreadSanitizer cannot see (made through uninstrumented code,
 * such as liburcu's queues and grace periods): what a thread did before
 * track_release(p) happens before what another does after
 * track_acquire(p).
 */
#if defined(__SANITIZE_THREAD__)
#define VMAP_TRACK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMAP_TRACK_TSAN 1
#endif
#endif

#ifdef VMAP_TRACK_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define track_acquire(p) __tsan_acquire((void *)(p))
#define track_release(p) __tsan_release((void *)(p))
#else
#define track_acquire(p) ((void)(p))
#define track_release(p) ((void)(p))
#endif

#endif /* VMAP_TRACK_H */
