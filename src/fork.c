/* SPDX-License-Identifier: MIT */
/*
 * fork.c - the registry of live spaces and the fork handlers that keep
 * both sides of a fork() working (DESIGN.md section 15).
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
 * A range moving between two structures of a space (taken from a pool or
 * the heap and not yet busy; unlinked from a busy set and not yet lazy)
 * is held only by its thread, which does not exist in the child.  Each
 * thread records such a range in its transit slot, inside the critical
 * section of the lock it took the range under, and clears the slot inside
 * the one it puts the range in: the prepare handler takes both, so the
 * child sees every range either in a structure or in a slot, never in
 * both.  The child gives the slots' ranges back: an allocation's to the
 * free heap (its caller never saw it; one from a pool of a space that
 * keeps idle ranges leaves its busy tree first), a free's to the lazy
 * set.  A pool
 * refill's batch (pool.c) travels with its allocation's range from the
 * heap to the pool: the slot holds it too, until the pool lock's
 * critical section that files it; the child gives it to the free heap.
 *
 * Lock: registry.lock guards the lists of spaces and of transit slots; it
 * is the first lock of the order and is held from prepare to parent/child.
 * A slot's contents are written only by its thread, under the space lock
 * named above.
 */
#include <pthread.h>
#include <stdlib.h>

#include "fork.h"
#include "internal.h"
#include "worker.h"

static struct {
	pthread_mutex_t lock;
	struct vlist spaces; /* struct vmap_space, by registry_link */
	struct vlist slots;  /* struct transit, one per thread that used us */
} registry = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.spaces = { &registry.spaces, &registry.spaces },
	.slots = { &registry.slots, &registry.slots },
};

struct transit {
	struct vlist link;
	struct vmap_space *space; /* NULL: nothing in transit */
	struct va *freeing;	  /* a free's record; NULL for an allocation */
	uint64_t start, end;	  /* an allocation's range */
	struct va *pooled;	  /* its record if it came from a pool */
	struct vlist *batch;	  /* its refill's batch, or NULL */
};

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* Layers above the spaces (fork.h), under registry.lock. */
static const struct fork_hooks *hooks[FORK_HOOKS_MAX];
static unsigned nr_hooks;
static pthread_once_t slot_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static _Thread_local struct transit *slot;
/* Set once the slot's destructor ran: later destructors go unrecorded. */
static _Thread_local bool slot_gone;

#define registry_for_each(s)                                                   \
	for (struct vlist *l_ = registry.spaces.next;                          \
	     l_ != &registry.spaces &&                                         \
	     ((s) = (struct vmap_space *)((char *)l_ -                         \
					  offsetof(struct vmap_space,          \
						   registry_link)),            \
	     1);                                                               \
	     l_ = l_->next)

static void slot_destroy(void *arg)
{
	struct transit *t = arg;

	pthread_mutex_lock(&registry.lock);
	vlist_del(&t->link);
	pthread_mutex_unlock(&registry.lock);
	free(t);
	slot = NULL;
	slot_gone = true;
}

static void slot_key_create(void)
{
	pthread_key_create(&slot_key, slot_destroy);
}

void transit_ready(void)
{
	struct transit *t;

	if (slot || slot_gone)
		return;
	pthread_once(&slot_key_once, slot_key_create);
	t = calloc(1, sizeof(*t));
	if (!t)
		return; /* this thread's transits go unrecorded */
	pthread_mutex_lock(&registry.lock);
	vlist_add_tail(&t->link, &registry.slots);
	pthread_mutex_unlock(&registry.lock);
	pthread_setspecific(slot_key, t);
	slot = t;
}

void transit_take(struct vmap_space *s, uint64_t start, uint64_t end)
{
	if (slot) {
		slot->freeing = slot->pooled = NULL;
		slot->start = start;
		slot->end = end;
		slot->space = s;
	}
}

bool transit_recorded(void)
{
	return slot != NULL;
}

void transit_take_pooled(struct vmap_space *s, struct va *va)
{
	transit_take(s, va->start, va->end);
	if (slot)
		slot->pooled = va;
}

void transit_batch(struct vlist *batch)
{
	if (slot)
		slot->batch = batch;
}

void transit_free(struct vmap_space *s, struct va *va)
{
	if (slot) {
		slot->freeing = va;
		slot->space = s;
	}
}

void transit_done(void)
{
	if (slot)
		slot->space = NULL;
}

/* In the child: give back what the parent's other threads held. */
static void transit_recover(struct transit *t)
{
	struct vmap_space *s = t->space;
	struct vlist one;
	struct va *va;

	t->space = NULL;
	if (t->freeing) {
		lazy_insert(s, t->freeing, NULL);
		return;
	}
	/*
	 * A range from a pool has its record, still idle in its busy tree
	 * where the space keeps idle ranges: out of the tree, then back.  Its
	 * pool counted a hit that no allocation completed: taken back (the
	 * child is alone, so the pool lock that covers the count is not
	 * needed).
	 */
	if (t->pooled) {
		counter_add_locked(&lazy_node_of(s, t->pooled)->count.pool_hits,
				   (uint64_t)-1);
		vlist_init(&one);
		vlist_add_tail(&t->pooled->link, &one);
		busy_forget(s, &one);
		global_heap_return(s, &one);
		return;
	}
	/* The list head is on the dead thread's stack, copied with it. */
	if (t->batch) {
		global_heap_return(s, t->batch);
		t->batch = NULL;
	}
	va = space_va_new(s);
	if (!va)
		return; /* lost to this child, as before */
	va->start = t->start;
	va->end = t->end;
	vlist_init(&one);
	vlist_add_tail(&va->link, &one);
	global_heap_return(s, &one);
}

static void lazy_recount(struct vmap_space *s)
{
	uint64_t pages = 0;
	unsigned i;

	for (i = 0; i < s->nr_nodes; i++) {
		pages += s->nodes[i].lazy->pages;
		atomic_store(&s->nodes[i].lazy_uncounted, 0);
	}
	atomic_store(&s->lazy_nr, pages);
}

static void fork_prepare(void)
{
	struct vmap_space *s;
	unsigned i;

	pthread_mutex_lock(&registry.lock);
	registry_for_each(s) trace_lock(s);
	registry_for_each(s) pthread_rwlock_wrlock(&s->notifier_lock);
	registry_for_each(s) vlock_take(&s->purge_lock);
	registry_for_each(s) vlock_take(&s->heap_lock);
	registry_for_each(s) nodes_lock_all(s);
	for (i = 0; i < nr_hooks; i++)
		hooks[i]->prepare();
	workers_lock();
}

static void fork_parent(void)
{
	struct vmap_space *s;
	unsigned i = nr_hooks;

	workers_unlock();
	while (i--)
		hooks[i]->parent();
	registry_for_each(s)
	{
		space_unlock_all(s);
		pthread_rwlock_unlock(&s->notifier_lock);
		trace_unlock(s);
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
	struct vlist *l, *next;
	struct transit *t;
	unsigned i = nr_hooks;

	workers_after_fork_child();
	registry_for_each(s)
	{
		space_unlock_all(s);
		pthread_rwlock_init(&s->notifier_lock, NULL);
		trace_fork_child(s);
		atomic_store(&s->drain_pending, false);
		s->drain_queued = false;
		s->drain_running = s->drain_again = false;
		vlist_init(&s->drain_link);
	}
	/* Every slot but ours belongs to a thread the child does not have. */
	for (l = registry.slots.next; l != &registry.slots; l = next) {
		next = l->next;
		t = (struct transit *)((char *)l -
				       offsetof(struct transit, link));
		if (t == slot)
			continue;
		if (t->space)
			transit_recover(t);
		vlist_del(&t->link);
	}
	registry_for_each(s) lazy_recount(s);
	pthread_mutex_init(&registry.lock, NULL);
	/* Last, with every space usable again: a layer may call into them. */
	while (i--)
		hooks[i]->child();
}

static void handlers_install(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void fork_hooks_add(const struct fork_hooks *h)
{
	pthread_once(&handlers_once, handlers_install);
	pthread_mutex_lock(&registry.lock);
	if (nr_hooks < FORK_HOOKS_MAX)
		hooks[nr_hooks++] = h;
	pthread_mutex_unlock(&registry.lock);
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
