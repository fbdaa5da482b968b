/* SPDX-License-Identifier: MIT */
/*
 * worker.h - the process's worker threads, shared by every space: they
 * run drain purges (a free crossed a space's threshold) and the pieces of
 * purge jobs (one node each) that a purging thread hands out.
 *
 * At most workers_cap() threads exist per process, however many spaces
 * and nodes there are (DESIGN.md section 14); they start on demand and
 * never exit before the process does, except that a forked child starts
 * with none (workers_after_fork_child()).
 *
 * A thread that submits a job takes part in it: workers_finish() runs the
 * pieces no worker has claimed yet and then waits for the claimed ones,
 * whose runs never wait for anything.  So a job completes even when every
 * worker is busy, or none could be started, and a drain running on a
 * worker may itself submit a job without risk of deadlock.
 *
 * Lock: one process-wide mutex guards the job queue, the drain queue and
 * the thread count.  It comes after every lock of every space in the
 * lock order (internal.h): nothing is taken while it is held.
 */
#ifndef VMAP_WORKER_H
#define VMAP_WORKER_H

#include <stdbool.h>

#include "va.h"

struct vmap_space;

struct job {
	struct vlist link; /* in the job queue while unclaimed */
	void (*run)(struct job *job, unsigned piece);
	unsigned pieces, claimed, done;
};

/*
 * Queue @job (its @run and @pieces set) for the workers, starting threads
 * on demand up to the cap.  Returns false, queueing nothing, when no
 * worker is idle and none could be started: the caller then runs the
 * pieces itself.  Every successful submit must be followed by
 * workers_finish() on the same job.
 */
bool workers_submit(struct job *job);

/* Run the unclaimed pieces of @job, then wait until every piece is done. */
void workers_finish(struct job *job);

/*
 * Ask a worker to run drain_run(@s) once more.  Returns false if no
 * worker runs and none could be started (the caller purges inline).  A
 * space already queued is not queued twice, and a space whose drain is
 * running has it run again by the same worker.
 */
bool workers_drain(struct vmap_space *s);

/*
 * Forget any queued drain of @s and wait until a running one returns.
 * For space destruction: afterwards no worker touches @s.
 */
void workers_forget(struct vmap_space *s);

/* The most worker threads a process has: online CPUs, 1..128. */
unsigned workers_cap(void);

/* Fork handlers (fork.c): take, release, and rebuild in the child. */
void workers_lock(void);
void workers_unlock(void);
void workers_after_fork_child(void);

#endif /* VMAP_WORKER_H */
