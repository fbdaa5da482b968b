/* SPDX-License-Identifier: MIT */
/*
 * trace.h - recording a space's operations in vmap-replay's format
 * (docs/DESIGN.md section 10), when VMAP_TRACE names a file.
 *
 * While a space records, every call that changes it runs under the
 * space's trace lock (recursive: a purge notifier may free from inside an
 * allocation), and writes its line there, so the file's order is the
 * order in which the calls took effect.  Every purge is written where it
 * happens, the drain thread's included, so a replay purges exactly where
 * the recorded run did.  A forked child stops recording: the fork handler
 * (fork.c) holds the trace locks across fork(), so no line is half
 * written, and the file stays the parent's.  Not recording, each hook is
 * one test of a NULL pointer.
 */
#ifndef VMAP_TRACE_H
#define VMAP_TRACE_H

#include <stdbool.h>
#include <stdint.h>

struct vmap_space;
struct vmap_request;
struct trace;

/*
 * Start recording if VMAP_TRACE is set: the first space created in the
 * process writes to its value, the n-th to "VALUE.n".  Returns 0 (also
 * when VMAP_TRACE is unset) or the negative errno of opening the file.
 */
int trace_open(struct vmap_space *s);
void trace_close(struct vmap_space *s);

/* Recursive; cancellation is off while the calling thread holds it. */
void trace_lock_slow(struct trace *t);
void trace_unlock_slow(struct trace *t);
void trace_fork_child(struct vmap_space *s);

/* Lines; the caller holds the trace lock.  @cpu as the allocation used it. */
void trace_alloc(struct vmap_space *s, unsigned cpu, uint64_t size,
		 uint64_t align, uint64_t vstart, uint64_t vend, unsigned flags,
		 int rc, uint64_t addr);
void trace_xalloc(struct vmap_space *s, unsigned cpu,
		  const struct vmap_request *req, int rc, uint64_t addr);
void trace_reserve(struct vmap_space *s, unsigned cpu, uint64_t addr,
		   uint64_t size, int rc);
void trace_add(struct vmap_space *s, uint64_t base, uint64_t limit);
void trace_free(struct vmap_space *s, uint64_t addr);
void trace_purge(struct vmap_space *s, bool full);
void trace_shrink(struct vmap_space *s);

#endif /* VMAP_TRACE_H */
