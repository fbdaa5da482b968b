/* SPDX-License-Identifier: MIT */
/*
 * debug.h - assertions and bug reports.
 *
 * VMAP_ASSERT states an invariant at a boundary; it is compiled only in
 * debug builds (VMAP_DEBUG), where a violation aborts with its location.
 * vmap_bug() reports corruption found at run time: a debug build aborts,
 * a release build prints one line on stderr and lets the caller refuse
 * the operation and count it.
 */
#ifndef VMAP_DEBUG_H
#define VMAP_DEBUG_H

#include <stdio.h>
#include <stdlib.h>

#ifdef VMAP_DEBUG
#define VMAP_ASSERT(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
				"vmap: %s:%d: assertion '%s' failed\n",        \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)
#define VMAP_DEBUG_BUILD 1
#else
#define VMAP_ASSERT(cond) ((void)0)
#define VMAP_DEBUG_BUILD 0
#endif

#define vmap_bug(...)                                                          \
	do {                                                                   \
		fprintf(stderr, "vmap: bug: " __VA_ARGS__);                    \
		fputc('\n', stderr);                                           \
		if (VMAP_DEBUG_BUILD)                                          \
			abort();                                               \
	} while (0)

#endif /* VMAP_DEBUG_H */
