/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - vfree_rcu(): free a vmalloc area after a grace period of
 * userspace RCU (liburcu, memb flavour), the kernel's kvfree_rcu().
 *
 * The one-argument shape allocates a small record per call and, if that
 * fails, waits for a grace period in place (the kernel's fallback); the
 * two-argument shape uses a struct vmap_rcu_head inside the area and
 * allocates nothing.  liburcu's call_rcu thread runs the frees, a batch
 * per grace period.  Readers use vmap_rcu_read_lock()/_unlock(), thin
 * wrappers over liburcu's, so that programs need only vmap.h.
 *
 * Built without liburcu (no liburcu-dev at build time), every call that
 * would queue a free returns -ENOSYS and the reader calls do nothing.
 *
 * Locks: none of its own; liburcu's queues are lock-free.  ThreadSanitizer
 * cannot see the ordering liburcu provides (it is not instrumented), so
 * the hand-offs it makes are told to it (track.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "os.h"
#include "track.h"
#include "vmalloc.h"

#ifdef VMAP_HAVE_URCU
#include <urcu/urcu-memb.h>

_Static_assert(sizeof(struct vmap_rcu_head) >=
		       sizeof(struct rcu_head) + sizeof(void *),
	       "struct vmap_rcu_head holds an rcu_head and the heap");

/*
 * Every reader's unlock is ordered before every free, and every free
 * before the return of a barrier: one sync object each.
 */
static char readers_done, frees_done;

/* The one-argument shape's record. */
struct rcu_free {
	struct rcu_head head;
	struct vmap_heap *h;
	const void *addr;
};

/* The two-argument shape: what struct vmap_rcu_head holds. */
struct rcu_embedded {
	struct rcu_head head;
	struct vmap_heap *h;
};

static void free_record(struct rcu_head *head)
{
	struct rcu_free *r = (struct rcu_free *)head;

	track_acquire(r);
	track_acquire(&readers_done);
	vmap_heap_vfree(r->h, r->addr);
	free(r);
	track_release(&frees_done);
}

/* The area holding @head starts where the space's range does. */
static void free_embedded(struct rcu_head *head)
{
	struct rcu_embedded *e = (struct rcu_embedded *)head;
	struct vmap_range r;
	struct vmap_heap *h;

	track_acquire(e);
	track_acquire(&readers_done);
	h = e->h;
	if (!vmap_find(h->space, (uint64_t)(uintptr_t)head, &r))
		vmap_heap_vfree(h, (void *)(uintptr_t)heap_body_of(h, r.start));
	track_release(&frees_done);
}

/*
 * liburcu's call_rcu thread must be paused across fork(), as its manual
 * asks.  Registered at the first deferred free, so after the spaces' own
 * handlers: prepare handlers run in reverse order of registration, so the
 * thread is paused before the space locks are taken (it may be inside a
 * vfree that needs them), and resumed after they are released.
 */
static pthread_once_t rcu_fork_once = PTHREAD_ONCE_INIT;

static void rcu_fork_install(void)
{
	pthread_atfork(urcu_memb_call_rcu_before_fork,
		       urcu_memb_call_rcu_after_fork_parent,
		       urcu_memb_call_rcu_after_fork_child);
}

int vmap_heap_vfree_rcu(struct vmap_heap *h, const void *addr)
{
	struct rcu_free *r;
	int cancel_state;

	if (!h || !addr || !vmap_heap_size(h, addr))
		return -EINVAL;
	atomic_store(&h->rcu_used, true);
	pthread_once(&rcu_fork_once, rcu_fork_install);
	r = malloc(sizeof(*r));
	if (!r) {
		cancel_state = os_cancel_off();
		urcu_memb_synchronize_rcu();
		os_cancel_restore(cancel_state);
		track_acquire(&readers_done);
		vmap_heap_vfree(h, addr);
		return 0;
	}
	r->h = h;
	r->addr = addr;
	track_release(r);
	urcu_memb_call_rcu(&r->head, free_record);
	return 0;
}

int vmap_heap_vfree_rcu_head(struct vmap_heap *h, const void *addr,
			     struct vmap_rcu_head *head)
{
	struct rcu_embedded *e = (struct rcu_embedded *)head;
	size_t size;

	if (!h || !addr || !head)
		return -EINVAL;
	size = vmap_heap_size(h, addr);
	if (!size || (const char *)head < (const char *)addr ||
	    (const char *)(head + 1) > (const char *)addr + size)
		return -EINVAL;
	atomic_store(&h->rcu_used, true);
	pthread_once(&rcu_fork_once, rcu_fork_install);
	e->h = h;
	track_release(e);
	urcu_memb_call_rcu(&e->head, free_embedded);
	return 0;
}

int vmap_rcu_register_thread(void)
{
	urcu_memb_register_thread();
	return 0;
}

void vmap_rcu_unregister_thread(void)
{
	urcu_memb_unregister_thread();
}

void vmap_rcu_read_lock(void)
{
	urcu_memb_read_lock();
}

void vmap_rcu_read_unlock(void)
{
	track_release(&readers_done);
	urcu_memb_read_unlock();
}

/* liburcu's waits may be cancellation points; no call of ours is. */
void vmap_rcu_barrier(void)
{
	int cancel_state = os_cancel_off();

	urcu_memb_barrier();
	os_cancel_restore(cancel_state);
	track_acquire(&frees_done);
}

void rcu_heap_drain(struct vmap_heap *h)
{
	if (atomic_load(&h->rcu_used))
		vmap_rcu_barrier();
}

#else /* !VMAP_HAVE_URCU */

int vmap_heap_vfree_rcu(struct vmap_heap *h, const void *addr)
{
	return -ENOSYS;
}

int vmap_heap_vfree_rcu_head(struct vmap_heap *h, const void *addr,
			     struct vmap_rcu_head *head)
{
	return -ENOSYS;
}

int vmap_rcu_register_thread(void)
{
	return -ENOSYS;
}

void vmap_rcu_unregister_thread(void)
{
}

void vmap_rcu_read_lock(void)
{
}

void vmap_rcu_read_unlock(void)
{
}

void vmap_rcu_barrier(void)
{
}

void rcu_heap_drain(struct vmap_heap *h)
{
}

#endif /* VMAP_HAVE_URCU */

int vfree_rcu(const void *addr)
{
	struct vmap_heap *h = vmap_default_heap();

	return h ? vmap_heap_vfree_rcu(h, addr) : -ENOMEM;
}

int vfree_rcu_head(const void *addr, struct vmap_rcu_head *head)
{
	struct vmap_heap *h = vmap_default_heap();

	return h ? vmap_heap_vfree_rcu_head(h, addr, head) : -ENOMEM;
}
