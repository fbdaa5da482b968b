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

#endif /* VMAP_TRACK_H */
