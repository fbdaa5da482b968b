/* SPDX-License-Identifier: MIT */
/*
 * stats.c - gathering and printing the counters of VMAP_STAT_FIELDS.
 *
 * Reads relaxed atomics, and takes only the heap lock, uncounted, to
 * measure the free heap, so it never disturbs the lock counts it reports.
 * Counters read while other threads run are each exact but not a
 * consistent snapshot of one another.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "os.h"

/*
 * Every node counter is a stats field of the same name; allocations are
 * the heap's and the pool hits.
 */
static void add_node(struct vmap_node *vn, struct vmap_stats *st)
{
	unsigned k;

#define NODE_COUNTER_SUM(name) st->name += counter_read(&vn->count.name);
	NODE_COUNTERS(NODE_COUNTER_SUM)
#undef NODE_COUNTER_SUM
	st->allocs += counter_read(&vn->count.heap_allocs) +
		      counter_read(&vn->count.pool_hits);
	st->node_lock += vlock_count(&vn->busy_lock) +
			 vlock_count(&vn->lazy_lock) +
			 vlock_count(&vn->pool_lock);
	for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
		size_t len = atomic_load_explicit(&vn->pools[k].len,
						  memory_order_relaxed);

		st->pooled_now += len;
		st->pooled_pages += len * (k + 1);
	}
}

/*
 * How fragmented the free heap is: its block count (a walk of the list,
 * O(blocks)) and its largest block (the root's cached subtree maximum;
 * 2^64 bytes reads as 2^64 - 1).
 */
static void add_free_heap_shape(struct vmap_space *s, struct vmap_stats *st)
{
	struct va *va;

	vlock_take(&s->heap_lock);
	vlist_for_each_va(va, &s->heap.set.list)
		st->free_blocks++;
	/* The cache holds size - 1, so that a block of 2^64 bytes fits. */
	if (s->heap.set.root.top) {
		st->largest_free =
			va_of_node(s->heap.set.root.top)->subtree_max;
		if (st->largest_free != UINT64_MAX)
			st->largest_free++;
	}
	vlock_release(&s->heap_lock);
}

int vmap_stats_get(struct vmap_space *s, int node, struct vmap_stats *out)
{
	struct vmap_stats st;
	unsigned i;

	if (!s || !out || out->size < offsetof(struct vmap_stats, allocs) ||
	    node < -1 || node >= (int)s->nr_nodes)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	if (node >= 0) {
		add_node(&s->nodes[node], &st);
	} else {
		for (i = 0; i < s->nr_nodes; i++)
			add_node(&s->nodes[i], &st);
		st.heap_lock = vlock_count(&s->heap_lock);
		/* With one node, its locks are as global as the heap's. */
		st.global_lock =
			st.heap_lock + (s->nr_nodes == 1 ? st.node_lock : 0);
		st.purges = counter_read(&s->purges);
		st.full_purges = counter_read(&s->full_purges);
		st.backlog_purges = counter_read(&s->backlog_purges);
		st.free_purges = counter_read(&s->free_purges);
		st.shrinks = counter_read(&s->shrinks);
		st.flushes = counter_read(&s->flushes);
		st.purge_helpers = counter_read(&s->purge_helpers);
		st.purged_vas = counter_read(&s->purged_vas);
		st.purged_pages = counter_read(&s->purged_pages);
		st.notifier_rounds = counter_read(&s->notifier_rounds);
		st.overlaps = atomic_load(&s->heap.overlaps) +
			      counter_read(&s->set_overlaps);
		st.lazy_pages = lazy_pages_now(s);
		st.free_bytes = atomic_load(&s->heap.free_bytes);
		add_free_heap_shape(s, &st);
	}
	st.size = out->size < sizeof(st) ? out->size : (uint32_t)sizeof(st);
	st.version = VMAP_VERSION;
	memcpy(out, &st, st.size);
	return 0;
}

static int stats_print(const struct vmap_stats *st, FILE *out, unsigned flags)
{
	const char *sep = "";

	if (flags & VMAP_STATS_JSON) {
		fputc('{', out);
#define VMAP_STAT_JSON(name, doc)                                              \
	fprintf(out, "%s\"%s\":%llu", sep, #name,                              \
		(unsigned long long)st->name);                                 \
	sep = ",";
		VMAP_STAT_FIELDS(VMAP_STAT_JSON)
#undef VMAP_STAT_JSON
		fputs("}\n", out);
	} else {
#define VMAP_STAT_TEXT(name, doc)                                              \
	fprintf(out, "%-18s %20llu  # %s\n", #name,                            \
		(unsigned long long)st->name, doc);
		VMAP_STAT_FIELDS(VMAP_STAT_TEXT)
#undef VMAP_STAT_TEXT
		(void)sep;
	}
	return os_stream_done(out);
}

/* Writing to a stream may be a cancellation point; no call of ours is. */
int vmap_stats_print(const struct vmap_stats *st, FILE *out, unsigned flags)
{
	int cancel_state, rc;

	if (!st || !out || (flags & ~VMAP_STATS_JSON))
		return -EINVAL;
	cancel_state = os_cancel_off();
	rc = stats_print(st, out, flags);
	os_cancel_restore(cancel_state);
	return rc;
}
