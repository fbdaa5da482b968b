/* SPDX-License-Identifier: MIT */
/*
 * span.c - what a space covers: its spans (the one it was created with,
 * those vmap_space_add() added, those imported from a source), the hull
 * that bounds them, imports, and giving imported spans back.
 *
 * Locks: the span set is guarded by the heap lock, since a span enters
 * and leaves the space together with its free block.  The hull only
 * grows; it is written under the heap lock and read without it (relaxed
 * atomics), by argument checks that only need a bound.  Import and
 * release callbacks run with no lock held.
 */
#include <errno.h>

#include "internal.h"

void span_init(struct vmap_space *s, uint64_t first, uint64_t last)
{
	va_set_init(&s->spans);
	atomic_init(&s->nr_spans, 0);
	atomic_init(&s->hull_first, first);
	atomic_init(&s->hull_last, last);
}

static void hull_grow(struct vmap_space *s, uint64_t first, uint64_t last)
{
	if (first < space_first(s))
		atomic_store_explicit(&s->hull_first, first,
				      memory_order_relaxed);
	if (last > space_last(s))
		atomic_store_explicit(&s->hull_last, last,
				      memory_order_relaxed);
}

/* Only the heap lock holder writes the count; readers need no order. */
static void spans_count(struct vmap_space *s, int delta)
{
	unsigned n = atomic_load_explicit(&s->nr_spans, memory_order_relaxed);

	atomic_store_explicit(&s->nr_spans, n + (unsigned)delta,
			      memory_order_relaxed);
}

int span_add(struct vmap_space *s, uint64_t first, uint64_t last, bool imported)
{
	struct va *span = va_new(), *block = space_va_new(s);
	struct vlist garbage;
	bool ok;

	if (!span || !block) {
		va_delete(span);
		va_delete(block);
		return -ENOMEM;
	}
	span->start = block->start = first;
	span->end = block->end = last + 1;
	span->user = imported;
	vlist_init(&garbage);
	vlock_acquire(&s->heap_lock);
	ok = va_set_insert(&s->spans, span);
	if (ok) {
		free_heap_return(&s->heap, block, &garbage);
		hull_grow(s, first, last);
		spans_count(s, 1);
	}
	vlock_release(&s->heap_lock);
	va_delete_list(&garbage);
	if (!ok) {
		va_delete(span);
		va_delete(block);
		return -EINVAL;
	}
	return 0;
}

/*
 * Walk the spans as maximal runs of adjacent ones, calling @fn on each
 * run [first, last] until it returns true.  Caller holds the heap lock.
 */
static bool runs_any(struct vmap_space *s,
		     bool (*fn)(uint64_t first, uint64_t last, const void *arg),
		     const void *arg)
{
	struct va *span, *run = NULL;
	uint64_t first = 0;

	vlist_for_each_va(span, &s->spans.list) {
		if (run && span->start == run->end) {
			run = span;
			continue;
		}
		if (run && fn(first, va_last(run), arg))
			return true;
		first = span->start;
		run = span;
	}
	return run && fn(first, va_last(run), arg);
}

struct window {
	uint64_t first, last, size;
};

static bool run_holds(uint64_t first, uint64_t last, const void *arg)
{
	const struct window *w = arg;
	uint64_t lo = first > w->first ? first : w->first;
	uint64_t hi = last < w->last ? last : w->last;

	return lo <= hi && hi - lo >= w->size - 1;
}

static bool run_contains(uint64_t first, uint64_t last, const void *arg)
{
	const struct window *w = arg;

	return first <= w->first && w->last <= last;
}

/*
 * Does [first, last] meet a run of spans in @size bytes?  Only for spaces
 * without a source, which never lose a span: with one span the hull is
 * that span, to which the caller already clipped the window, so the
 * common case takes no lock.
 */
bool span_window_ok(struct vmap_space *s, uint64_t first, uint64_t last,
		    uint64_t size)
{
	struct window w = { first, last, size };
	bool ok;

	if (atomic_load_explicit(&s->nr_spans, memory_order_relaxed) == 1)
		return true;
	vlock_acquire(&s->heap_lock);
	ok = runs_any(s, run_holds, &w);
	vlock_release(&s->heap_lock);
	return ok;
}

bool span_contains(struct vmap_space *s, uint64_t first, uint64_t last)
{
	struct window w = { first, last, 0 };
	bool ok;

	vlock_acquire(&s->heap_lock);
	ok = runs_any(s, run_contains, &w);
	vlock_release(&s->heap_lock);
	return ok;
}

/*
 * The span is imported at a quantum-aligned base, so alignment beyond
 * the quantum may cost up to align - quantum bytes of it.
 */
int span_import(struct vmap_space *s, const struct free_heap_fit *f)
{
	uint64_t need = f->size, len, base;
	int rc;

	if (f->align > s->quantum) {
		if (need > UINT64_MAX - (f->align - s->quantum))
			return -ENOMEM;
		need += f->align - s->quantum;
	}
	if (need > UINT64_MAX - (s->quantum - 1))
		return -ENOMEM;
	len = (need + s->quantum - 1) & ~(s->quantum - 1);
	rc = s->import(s->import_cookie, len, &base);
	if (rc)
		return rc;
	if ((base & (s->page_size - 1)) || base + (len - 1) < base ||
	    span_add(s, base, base + (len - 1), true)) {
		s->release_span(s->import_cookie, base, len);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Give back one imported span that is wholly free: its range comes out
 * of the free block holding it (which may extend into an adjacent span),
 * then the span leaves the set.  Returns false when there is none.
 */
static bool release_one(struct vmap_space *s)
{
	struct va *spare = space_va_new(s), *span, *found = NULL, *b;
	struct vlist garbage;

	if (!spare)
		return false;
	vlist_init(&garbage);
	vlock_acquire(&s->heap_lock);
	vlist_for_each_va(span, &s->spans.list) {
		if (!span->user)
			continue;
		b = va_tree_find(&s->heap.set.root, span->start);
		if (b && va_last(b) >= va_last(span)) {
			found = span;
			break;
		}
	}
	if (found) {
		free_heap_take_exact(&s->heap, found->start, va_size(found),
				     &spare, &garbage);
		va_set_erase(&s->spans, found, NULL);
		spans_count(s, -1);
	}
	vlock_release(&s->heap_lock);
	va_delete(spare);
	va_delete_list(&garbage);
	if (!found)
		return false;
	s->release_span(s->import_cookie, found->start, va_size(found));
	va_delete(found);
	return true;
}

void span_release_free(struct vmap_space *s)
{
	if (s->import)
		while (release_one(s))
			;
}

void span_destroy(struct vmap_space *s)
{
	struct va *span;

	if (s->release_span)
		vlist_for_each_va(span, &s->spans.list)
			if (span->user)
				s->release_span(s->import_cookie, span->start,
						va_size(span));
	va_delete_list(&s->spans.list);
}
