/* SPDX-License-Identifier: MIT */
/*
 * node.c - vmap nodes: the zone-to-node mapping, the allocating CPU's
 * node, each node's busy set, and the one locked pass that returns
 * records to the global heap (the lazy sets are lazy.c's).
 *
 * Locks: a node's busy_lock guards its busy set; global_heap_return()
 * takes the heap lock.  No function here holds two locks at once, except
 * nodes_lock_all(), which freezes a space for the checker and for fork,
 * and busy_take_pooled() of an exiting thread, which takes a node's pool
 * lock inside its busy lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "debug.h"
#include "fault.h"
#include "internal.h"
#include "os.h"

static _Thread_local int thread_cpu = -1;

int thread_cpu_set(int cpu)
{
	if (cpu < -1)
		return -EINVAL;
	thread_cpu = cpu;
	return 0;
}

unsigned thread_cpu_get(void)
{
	return thread_cpu >= 0 ? (unsigned)thread_cpu : os_current_cpu();
}

/* The CPU an allocation counts as made on; its node is cpu % nr_nodes. */
unsigned this_cpu(const struct vmap_space *s)
{
	if (thread_cpu >= 0)
		return (unsigned)thread_cpu;
	if (s->flags & VMAP_DETERMINISTIC)
		return 0;
	return os_current_cpu();
}

/*
 * Refills start in the middle of the space, so that the lowest-fit
 * placement of misses and of restricted windows, low in the space, is
 * what it would be without them until the upper half fills up.
 */
static uint64_t refill_origin(const struct vmap_space *s)
{
	uint64_t first = space_first(s);
	uint64_t mid = first + (space_last(s) - first) / 2;

	mid &= ~((1ull << s->zone_shift) - 1);
	return mid > first ? mid : first;
}

int nodes_create(struct vmap_space *s)
{
	struct vmap_node *vn;
	unsigned i, k;

	if (fault_hit(FAULT_SPACE_ALLOC))
		return -ENOMEM;
	s->nodes = aligned_alloc(64, sizeof(*s->nodes) * s->nr_nodes);
	if (!s->nodes)
		return -ENOMEM;
	for (i = 0; i < s->nr_nodes; i++) {
		vn = &s->nodes[i];
		vn->id = i;
		vlock_init(&vn->busy_lock);
		vlock_init(&vn->lazy_lock);
		vlock_init(&vn->pool_lock);
		if (!busy_set_init(&vn->busy)) {
			while (i--)
				busy_set_fini(&s->nodes[i].busy);
			free(s->nodes);
			s->nodes = NULL;
			return -ENOMEM;
		}
		lazy_set_init(&vn->lazy_sets[0]);
		lazy_set_init(&vn->lazy_sets[1]);
		vn->lazy = &vn->lazy_sets[0];
		atomic_init(&vn->lazy_uncounted, 0);
		vn->purging = NULL;
		for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
			vlist_init(&vn->pools[k].head);
			atomic_init(&vn->pools[k].len, 0);
			atomic_init(&vn->pools[k].taken, 0);
			vn->pools[k].taken_purged = 0;
			vn->pools[k].taken_decayed = 0;
			vn->pools[k].fill_quota = 0;
		}
		vn->skip_populate = false;
		vn->allocs_seen = 0;
		vn->decay_pages = 0;
		vn->decay_purges = 0;
		vn->refill_next = refill_origin(s);
#define NODE_COUNTER_INIT(name) atomic_init(&vn->count.name, 0);
		NODE_COUNTERS(NODE_COUNTER_INIT)
#undef NODE_COUNTER_INIT
		atomic_init(&vn->count.heap_allocs, 0);
	}
	return 0;
}

void nodes_destroy(struct vmap_space *s)
{
	struct vmap_node *vn;
	unsigned i, k;

	if (!s->nodes)
		return;
	for (i = 0; i < s->nr_nodes; i++) {
		vn = &s->nodes[i];
		busy_set_fini(&vn->busy);
		lazy_set_delete(&vn->lazy_sets[0]);
		lazy_set_delete(&vn->lazy_sets[1]);
		for (k = 0; k < MAX_VA_SIZE_PAGES; k++)
			va_delete_list(&vn->pools[k].head);
	}
	free(s->nodes);
	s->nodes = NULL;
}

/*
 * The transit of a range freed in an immediate-free space ends here, in
 * the heap's critical section; no other caller has a range in transit.
 */
void global_heap_return(struct vmap_space *s, struct vlist *list)
{
	struct vlist garbage;

	if (vlist_empty(list))
		return;
	vlist_init(&garbage);
	vlock_acquire(&s->heap_lock);
	free_heap_return_list(&s->heap, list, &garbage);
	transit_done();
	vlock_release(&s->heap_lock);
	va_delete_list(&garbage);
}

/*
 * More buckets for @vn's busy index, allocated without the lock; if the
 * allocation fails the index keeps its buckets (longer chains, still
 * correct), and if another insert grew it meanwhile the new array goes.
 */
static void busy_grow(struct vmap_node *vn, size_t n)
{
	struct va **buckets = calloc(n, sizeof(*buckets));

	if (!buckets)
		return;
	vlock_acquire(&vn->busy_lock);
	buckets = busy_set_regrow(&vn->busy, buckets, n);
	vlock_release(&vn->busy_lock);
	free(buckets);
}

/*
 * What a range going busy owes the index: a few buckets moved, under the
 * busy lock, and, after it, the old array freed or a larger one made.
 */
struct index_upkeep {
	struct va **moved_from;
	size_t grow_to;
};

static void index_upkeep_locked(struct vmap_node *vn, struct index_upkeep *u)
{
	u->moved_from = busy_set_migrate(&vn->busy);
	u->grow_to = busy_set_grow_to(&vn->busy);
}

static void index_upkeep_unlocked(struct vmap_node *vn,
				  const struct index_upkeep *u)
{
	free(u->moved_from);
	if (u->grow_to)
		busy_grow(vn, u->grow_to);
}

/* A range going busy overlaps one of its tree: the space is corrupt. */
static void report_overlap(struct vmap_space *s, uint64_t start, uint64_t end)
{
	counter_add(&s->set_overlaps, 1);
	vmap_bug("busy range [0x%llx, 0x%llx) overlaps another",
		 (unsigned long long)start, (unsigned long long)end);
}

bool busy_insert(struct vmap_space *s, struct vmap_node *vn, struct va *va,
		 atomic_uint_fast64_t *allocs)
{
	struct index_upkeep u;
	bool ok;

	vlock_acquire(&vn->busy_lock);
	/* Set under the lock: a fork child sees it set only in the tree. */
	va->busy = true;
	ok = busy_set_insert(&vn->busy, va);
	index_upkeep_locked(vn, &u);
	if (ok && allocs)
		counter_add(allocs, 1);
	transit_done();
	vlock_release(&vn->busy_lock);
	index_upkeep_unlocked(vn, &u);
	if (!ok)
		report_overlap(s, va->start, va->end);
	return ok;
}

static void range_of_busy(struct vmap_space *s, const struct va *va,
			  unsigned node, struct vmap_range *out)
{
	out->start = va->start;
	out->end = va->end;
	out->node = node;
	out->user = va->user;
	out->state = VMAP_RANGE_BUSY;
	out->tag_node = tag_valid(s, va->tag) ? (int32_t)va->tag - 1 : -1;
	out->reserved = 0;
}

/*
 * A busy range lives in the node of its start, which is at or below any
 * address inside it: start at the address's node and walk the nodes
 * backwards, wrapping, until one holds a range containing the address.
 * Returns that range with its node's busy lock held (*@vn_out), or NULL
 * with no lock held.
 */
static struct va *busy_find_locked(struct vmap_space *s, uint64_t addr,
				   struct vmap_node **vn_out)
{
	unsigned first = addr_to_node(s, addr), i = first;
	struct vmap_node *vn;
	struct va *va;

	do {
		vn = &s->nodes[i];
		vlock_acquire(&vn->busy_lock);
		va = va_tree_find(&vn->busy.root, addr);
		if (va && va->busy) {
			*vn_out = vn;
			return va;
		}
		vlock_release(&vn->busy_lock);
		if (va) /* idle: nothing else can hold the address */
			return NULL;
		i = i ? i - 1 : s->nr_nodes - 1;
	} while (i != first);
	return NULL;
}

/*
 * A free names a range by its start, which says the node: no walk.  The
 * range stays in the tree, idle, if the space keeps idle ranges.
 */
struct va *busy_unlink(struct vmap_space *s, uint64_t addr,
		       struct vmap_node *cpu_vn)
{
	struct vmap_node *vn = &s->nodes[addr_to_node(s, addr)];
	struct va *va;

	vlock_acquire(&vn->busy_lock);
	if (vn != cpu_vn)
		counter_add(&cpu_vn->count.other_node_lock, 1);
	va = busy_set_at(&vn->busy, addr);
	if (va) {
		if (busy_keeps_idle(s))
			busy_set_idle(&vn->busy, va);
		else
			busy_set_erase(&vn->busy, va);
		transit_free(s, va);
	}
	vlock_release(&vn->busy_lock);
	return va;
}

/*
 * A pool hit in a space that keeps idle ranges: the range is idle in
 * @vn's tree (a pool holds ranges of its own node's zones there), so it
 * only goes busy, with the caller's @user word; *@start says where.
 * Once the busy lock is dropped the range is visible and may be freed,
 * so the record is not touched after.  Between the pool lock and the
 * busy lock the range is in transit, with its record (fork.c); taking
 * the pool lock inside the busy lock instead held the busy lock longer,
 * which cost one node 18% of its pairs at two threads, and is done only
 * by a thread whose transit slot is gone (exiting: its destructors ran).
 */
bool busy_take_pooled(struct vmap_space *s, struct vmap_node *vn, uint64_t size,
		      uint64_t align, uint64_t user, uint64_t *start)
{
	bool nested = !transit_recorded(), inserted = true;
	struct index_upkeep u;
	struct va *va;

	if (nested)
		vlock_acquire(&vn->busy_lock);
	va = pool_take(s, vn, size, align);
	if (!va) {
		if (nested)
			vlock_release(&vn->busy_lock);
		return false;
	}
	VMAP_ASSERT(addr_to_node(s, va->start) == vn->id);
	if (!nested)
		vlock_acquire(&vn->busy_lock);
	VMAP_ASSERT(!va->busy);
	va->user = user;
	*start = va->start;
	if (va->in_busy_tree) {
		busy_set_revive(&vn->busy, va);
	} else { /* first use of a refilled range */
		va->busy = true;
		inserted = busy_set_insert(&vn->busy, va);
	}
	transit_done();
	index_upkeep_locked(vn, &u);
	vlock_release(&vn->busy_lock);
	index_upkeep_unlocked(vn, &u);
	if (!inserted) {
		report_overlap(s, *start, *start + size);
		va_delete(va);
	}
	return inserted;
}

/*
 * Ranges on their way to the global heap leave their busy trees, where a
 * space that keeps idle ranges still has them (the heap may merge and
 * delete their records).  Consecutive ranges of one node share a lock
 * acquisition (a purge's and a decay's are all one node's), up to
 * FORGET_BATCH of them, so that the node's frees and pool hits wait for
 * a batch at most, not for the whole purge.
 */
#define FORGET_BATCH 64

void busy_forget(struct vmap_space *s, struct vlist *list)
{
	struct vmap_node *vn = NULL, *next;
	unsigned batch = 0;
	struct va *va;

	if (!busy_keeps_idle(s))
		return;
	vlist_for_each_va(va, list) {
		if (!va->in_busy_tree) /* refilled, never used */
			continue;
		next = &s->nodes[addr_to_node(s, va->start)];
		if (next != vn || ++batch == FORGET_BATCH) {
			batch = 0;
			if (vn)
				vlock_release(&vn->busy_lock);
			vn = next;
			vlock_acquire(&vn->busy_lock);
		}
		VMAP_ASSERT(!va->busy);
		busy_set_erase(&vn->busy, va);
	}
	if (vn)
		vlock_release(&vn->busy_lock);
}

int busy_lookup(struct vmap_space *s, uint64_t addr, struct vmap_range *out)
{
	struct vmap_node *vn;
	struct va *va = busy_find_locked(s, addr, &vn);

	if (!va)
		return -ENOENT;
	range_of_busy(s, va, vn->id, out);
	vlock_release(&vn->busy_lock);
	return 0;
}

/*
 * The start of node @i's lowest range (busy or idle) that ends above
 * @pos, under the node's lock alone.  False if there is none.
 */
static bool first_range_after(struct vmap_space *s, unsigned i, uint64_t pos,
			      uint64_t *start)
{
	struct vmap_node *vn = &s->nodes[i];
	struct va *va;

	vlock_acquire(&vn->busy_lock);
	va = va_tree_first_ending_after(&vn->busy.root, pos);
	if (va)
		*start = va->start;
	vlock_release(&vn->busy_lock);
	return va != NULL;
}

/*
 * The ranges of all nodes, busy and idle, are merged in address order:
 * each round finds every node's first range above the position, then,
 * under the lock of the node with the lowest, walks that node's ranges
 * while they lie below every other node's first: the first busy one is
 * the answer, idle ones are stepped over.  A walk of the busy ranges so
 * steps over each idle range once, where asking every node for its first
 * busy range stepped over a node's idle ranges at every call.  A round
 * that finds the node changed meanwhile starts over.  No two busy locks
 * are ever held together.
 */
int busy_next(struct vmap_space *s, uint64_t addr, struct vmap_range *out,
	      vmap_range_fn fn, void *cookie)
{
	uint64_t pos = addr, first, best_start = 0, bound = 0;
	bool found, bounded;
	struct vmap_node *vn;
	struct tree_node *n;
	unsigned i, best;
	struct va *va;

	for (;;) {
		found = bounded = false;
		best = 0;
		for (i = 0; i < s->nr_nodes; i++) {
			if (!first_range_after(s, i, pos, &first))
				continue;
			if (found && first > best_start) {
				if (!bounded || first < bound)
					bound = first;
				bounded = true;
				continue;
			}
			if (found && (!bounded || best_start < bound))
				bound = best_start;
			bounded = found;
			best = i;
			best_start = first;
			found = true;
		}
		if (!found)
			return -ENOENT;
		vn = &s->nodes[best];
		vlock_acquire(&vn->busy_lock);
		va = va_tree_first_ending_after(&vn->busy.root, pos);
		while (va && (!bounded || va->start < bound)) {
			if (va->busy) {
				range_of_busy(s, va, best, out);
				if (fn)
					fn(cookie, out);
				vlock_release(&vn->busy_lock);
				return 0;
			}
			if (!va->end) { /* idle up to 2^64: nothing above */
				vlock_release(&vn->busy_lock);
				return -ENOENT;
			}
			pos = va->end;
			n = tree_next(&va->node);
			va = n ? va_of_node(n) : NULL;
		}
		vlock_release(&vn->busy_lock);
	}
}

bool busy_overlaps(struct vmap_space *s, uint64_t first, uint64_t last)
{
	struct vmap_node *vn;
	bool found = false;
	unsigned i;

	for (i = 0; i < s->nr_nodes && !found; i++) {
		vn = &s->nodes[i];
		vlock_acquire(&vn->busy_lock);
		found = busy_set_overlaps(&vn->busy, first, last);
		vlock_release(&vn->busy_lock);
	}
	return found;
}

/*
 * Every node's locks, in the lock order, uncounted: for the two callers
 * that freeze a space, vmap_check() and the fork handler.
 */
void nodes_lock_all(struct vmap_space *s)
{
	unsigned i;

	for (i = 0; i < s->nr_nodes; i++) {
		vlock_take(&s->nodes[i].busy_lock);
		vlock_take(&s->nodes[i].lazy_lock);
		vlock_take(&s->nodes[i].pool_lock);
	}
}

/* Undo nodes_lock_all() and the heap and purge locks taken before it. */
void space_unlock_all(struct vmap_space *s)
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
