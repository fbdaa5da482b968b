/* SPDX-License-Identifier: MIT */
/*
 * worker.c - the process-wide worker threads (contract in worker.h).
 *
 * Owns: the job queue (purge jobs with unclaimed pieces, oldest first),
 * the drain queue (spaces whose drain is due), the thread count and the
 * count of idle threads.  All of it under workers.lock, which is taken
 * with no lock of any space held and is held only for queue updates.
 *
 * Workers prefer job pieces to drains: a purging thread is waiting on
 * those, while a drain only keeps the lazy backlog down.
 */
#include <errno.h>
#include <pthread.h>

#include "internal.h"
#include "os.h"
#include "worker.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job or a drain was queued */
	pthread_cond_t done; /* a piece or a drain finished */
	struct vlist jobs;   /* struct job, by link */
	struct vlist drains; /* struct vmap_space, by drain_link */
	unsigned threads, idle;
	unsigned unborn; /* started, not yet in their loop */
} workers = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.jobs = { &workers.jobs, &workers.jobs },
	.drains = { &workers.drains, &workers.drains },
};

unsigned workers_cap(void)
{
	unsigned cpus = os_nr_cpus();

	return cpus > MAX_NODES ? MAX_NODES : cpus;
}

/*
 * Claim the next piece of @job; a job leaves the queue with its last
 * piece.  Caller holds workers.lock.
 */
static unsigned job_claim(struct job *job)
{
	unsigned piece = job->claimed++;

	if (job->claimed == job->pieces)
		vlist_del(&job->link);
	return piece;
}

/* Claim the next piece of the oldest job.  Caller holds workers.lock. */
static struct job *claim_piece(struct vlist *jobs, unsigned *piece)
{
	struct job *job;

	if (vlist_empty(jobs))
		return NULL;
	job = (struct job *)((char *)jobs->next - offsetof(struct job, link));
	*piece = job_claim(job);
	return job;
}

static struct vmap_space *claim_drain(void)
{
	struct vmap_space *s;

	if (vlist_empty(&workers.drains))
		return NULL;
	s = (struct vmap_space *)((char *)workers.drains.next -
				  offsetof(struct vmap_space, drain_link));
	vlist_del(&s->drain_link);
	s->drain_queued = false;
	s->drain_running = true;
	return s;
}

static void *worker_main(void *arg)
{
	struct vmap_space *s;
	struct job *job;
	unsigned piece;

	(void)arg;
	os_cancel_off();
	pthread_mutex_lock(&workers.lock);
	workers.unborn--;
	for (;;) {
		if ((job = claim_piece(&workers.jobs, &piece))) {
			pthread_mutex_unlock(&workers.lock);
			job->run(job, piece);
			pthread_mutex_lock(&workers.lock);
			if (++job->done == job->pieces)
				pthread_cond_broadcast(&workers.done);
		} else if ((s = claim_drain())) {
			do {
				s->drain_again = false;
				pthread_mutex_unlock(&workers.lock);
				drain_run(s);
				pthread_mutex_lock(&workers.lock);
			} while (s->drain_again);
			s->drain_running = false;
			pthread_cond_broadcast(&workers.done);
		} else {
			workers.idle++;
			pthread_cond_wait(&workers.work, &workers.lock);
			workers.idle--;
		}
	}
	return NULL;
}

/*
 * Start threads until @wanted are free or the cap is reached; returns how
 * many are free to take new work: idle, or started and not yet in their
 * loop (a thread just created can wait a long time for its first run on
 * a loaded machine, and it will look for work when it gets there).
 * Caller holds workers.lock.  Workers are detached: they live as long as
 * the process, so nothing ever joins them.
 */
static unsigned grow(unsigned wanted)
{
	unsigned cap = workers_cap();
	pthread_t t;

	while (workers.idle + workers.unborn < wanted &&
	       workers.threads < cap &&
	       os_thread_start(&t, worker_main, NULL) == 0) {
		pthread_detach(t);
		workers.threads++;
		workers.unborn++;
	}
	return workers.idle + workers.unborn;
}

bool workers_submit(struct job *job)
{
	bool queued;

	job->claimed = job->done = 0;
	pthread_mutex_lock(&workers.lock);
	queued = grow(job->pieces) > 0;
	if (queued) {
		vlist_add_tail(&job->link, &workers.jobs);
		pthread_cond_broadcast(&workers.work);
	}
	pthread_mutex_unlock(&workers.lock);
	return queued;
}

void workers_finish(struct job *job)
{
	unsigned piece;

	pthread_mutex_lock(&workers.lock);
	while (job->claimed < job->pieces) {
		piece = job_claim(job);
		pthread_mutex_unlock(&workers.lock);
		job->run(job, piece);
		pthread_mutex_lock(&workers.lock);
		job->done++;
	}
	while (job->done < job->pieces)
		pthread_cond_wait(&workers.done, &workers.lock);
	pthread_mutex_unlock(&workers.lock);
}

bool workers_drain(struct vmap_space *s)
{
	bool queued = true;

	pthread_mutex_lock(&workers.lock);
	if (s->drain_running) {
		/* Its worker runs it again, rather than a second worker waiting. */
		s->drain_again = true;
	} else if (!s->drain_queued) {
		queued = grow(1) > 0 || workers.threads > 0;
		if (queued) {
			vlist_add_tail(&s->drain_link, &workers.drains);
			s->drain_queued = true;
			pthread_cond_signal(&workers.work);
		}
	}
	pthread_mutex_unlock(&workers.lock);
	return queued;
}

void workers_forget(struct vmap_space *s)
{
	pthread_mutex_lock(&workers.lock);
	if (s->drain_queued) {
		vlist_del(&s->drain_link);
		s->drain_queued = false;
	}
	while (s->drain_running)
		pthread_cond_wait(&workers.done, &workers.lock);
	pthread_mutex_unlock(&workers.lock);
}

void workers_lock(void)
{
	pthread_mutex_lock(&workers.lock);
}

void workers_unlock(void)
{
	pthread_mutex_unlock(&workers.lock);
}

/*
 * In a forked child only the forking thread exists.  No job can be
 * queued (the fork handler held every purge lock, and jobs live only
 * inside a purge), but drains may be: they are dropped, with the spaces'
 * flags, by the registry (fork.c), and the next free past a threshold
 * queues one again and starts a worker.
 */
void workers_after_fork_child(void)
{
	pthread_mutex_init(&workers.lock, NULL);
	pthread_cond_init(&workers.work, NULL);
	pthread_cond_init(&workers.done, NULL);
	vlist_init(&workers.jobs);
	vlist_init(&workers.drains);
	workers.threads = workers.idle = workers.unborn = 0;
}
