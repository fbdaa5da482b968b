/* SPDX-License-Identifier: MIT */
/*
 * fork.c - the registry of live spaces and the fork handlers that keep
 * both sides of a fork() working (DESIGN.md, "Fork").
 *
 * As glibc's malloc does, the prepare handler takes every lock of every
 * live space in the documented order (internal.h), so that no lock is
 * held mid-update when the address space is copied; the parent then
 * releases them.  The child, where only the forking thread exists,
 * releases the same locks, rebuilds the pthread objects that recorded
 * owners or waiters of threads it does not have, and forgets every drain
 * that was queued or running for a worker thread that is not there: the
 * workers start again on demand (worker.c).
 *
 * Lock: registry.lock guards the list of spaces; it is the first lock of
 * the order and is held from prepare to parent/child.
 */
#include <pthread.h>

#include "internal.h"
#include "worker.h"

static struct {
	pthread_mutex_t lock;
	struct vlist spaces;	/* struct vmap_space, by registry_link */
} registry = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.spaces = { &registry.spaces, &registry.spaces },
};

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

#define registry_for_each(s)                                                  \
	for (struct vlist *l_ = registry.spaces.next;                        \
	     l_ != &registry.spaces &&                                        \
	     ((s) = (struct vmap_space *)((char *)l_ -                        \
				  offsetof(struct vmap_space, registry_link)), 1); \
	     l_ = l_->next)

static void node_locks_take(struct vmap_space *s)
{
	unsigned i;

	for (i = 0; i < s->nr_nodes; i++) {
		vlock_take(&s->nodes[i].busy_lock);
		vlock_take(&s->nodes[i].lazy_lock);
		vlock_take(&s->nodes[i].pool_lock);
	}
}

static void space_locks_release(struct vmap_space *s)
{
	unsigned i = s->nr_nodes;

	while (i--) {
		vlock_release(&s->nodes[i].pool_lock);
		vlock_release(&s->nodes[i].lazy_lock);
		vlock_release(&s->nodes[i].busy_lock);
	}
	vlock_release(&s->heap_lock);
	vlock_release(&s->purge_lock);
}

static void fork_prepare(void)
{
	struct vmap_space *s;

	pthread_mutex_lock(&registry.lock);
	registry_for_each(s)
		pthread_rwlock_wrlock(&s->notifier_lock);
	registry_for_each(s)
		vlock_take(&s->purge_lock);
	registry_for_each(s)
		vlock_take(&s->heap_lock);
	registry_for_each(s)
		node_locks_take(s);
	workers_lock();
}

static void fork_parent(void)
{
	struct vmap_space *s;

	workers_unlock();
	registry_for_each(s) {
		space_locks_release(s);
		pthread_rwlock_unlock(&s->notifier_lock);
	}
	pthread_mutex_unlock(&registry.lock);
}

/*
 * A write-held rwlock records its owner's thread id, which the child's
 * thread does not have: it is rebuilt rather than unlocked, and so are
 * the mutexes and condition variables (glibc's own handlers do the same).
 */
static void fork_child(void)
{
	struct vmap_space *s;

	workers_after_fork_child();
	registry_for_each(s) {
		space_locks_release(s);
		pthread_rwlock_init(&s->notifier_lock, NULL);
		atomic_store(&s->drain_pending, false);
		s->drain_queued = false;
		s->drain_running = 0;
		vlist_init(&s->drain_link);
	}
	pthread_mutex_init(&registry.lock, NULL);
}

static void handlers_install(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void registry_add(struct vmap_space *s)
{
	pthread_once(&handlers_once, handlers_install);
	pthread_mutex_lock(&registry.lock);
	vlist_add_tail(&s->registry_link, &registry.spaces);
	pthread_mutex_unlock(&registry.lock);
}

void registry_del(struct vmap_space *s)
{
	pthread_mutex_lock(&registry.lock);
	vlist_del(&s->registry_link);
	pthread_mutex_unlock(&registry.lock);
}
