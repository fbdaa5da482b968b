/* SPDX-License-Identifier: MIT */
/*
 * check.c - the invariant checker (docs/DESIGN.md section 9).
 *
 * It freezes the space by taking every lock in the documented order
 * (internal.h), then walks every structure.  The partition check needs
 * one array of all ranges; it is allocated with no lock held (the rule
 * that nothing allocates under the heap lock holds here too), sized by a
 * first locked count, and the count is retried if the space grew between.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "internal.h"

struct range {
	uint64_t start, end;
};

struct checker {
	struct vmap_space *s;
	char *msg;
	size_t msglen;
	bool failed;
	struct range *all;
	size_t nr_all, cap;
};

__attribute__((format(printf, 2, 3))) static bool fail(struct checker *c,
						       const char *fmt, ...)
{
	va_list ap;

	if (!c->failed && c->msg && c->msglen) {
		va_start(ap, fmt);
		vsnprintf(c->msg, c->msglen, fmt, ap);
		va_end(ap);
	}
	c->failed = true;
	return false;
}

static void lock_all(struct vmap_space *s)
{
	vlock_take(&s->purge_lock);
	vlock_take(&s->heap_lock);
	nodes_lock_all(s);
}

static size_t list_len(const struct vlist *h)
{
	const struct vlist *l;
	size_t n = 0;

	for (l = h->next; l != h; l = l->next)
		n++;
	return n;
}

/*
 * How many ranges the partition check must hold: busy, pooled and lazy
 * ranges by their counters.  Only a capacity: the counters
 * themselves are verified against their lists below, and check_range()
 * never writes past the array.
 */
static size_t count_ranges(struct vmap_space *s)
{
	size_t n = list_len(&s->heap.set.list);
	unsigned i, k;

	for (i = 0; i < s->nr_nodes; i++) {
		n += s->nodes[i].busy.count;
		n += s->nodes[i].lazy->count;
		for (k = 0; k < MAX_VA_SIZE_PAGES; k++)
			n += atomic_load_explicit(&s->nodes[i].pools[k].len,
						  memory_order_relaxed);
	}
	return n;
}

static bool check_range(struct checker *c, const char *what,
			const struct va *va)
{
	struct vmap_space *s = c->s;

	if (va_last(va) < va->start || va->start < space_first(s) ||
	    va_last(va) > space_last(s))
		return fail(
			c,
			"%s range [0x%llx, 0x%llx) is empty or outside the space",
			what, (unsigned long long)va->start,
			(unsigned long long)va->end);
	if ((va->start | va->end) & (s->page_size - 1))
		return fail(c, "%s range [0x%llx, 0x%llx) is not page aligned",
			    what, (unsigned long long)va->start,
			    (unsigned long long)va->end);
	if (c->nr_all < c->cap) {
		c->all[c->nr_all].start = va->start;
		c->all[c->nr_all].end = va->end;
	}
	c->nr_all++;
	return true;
}

/* Does @va come strictly after @prev, the range before it in a walk? */
static bool in_order(struct checker *c, const char *what, const struct va *prev,
		     const struct va *va)
{
	if (prev && va_last(prev) >= va->start)
		return fail(c,
			    "%s ranges out of order or overlapping at 0x%llx",
			    what, (unsigned long long)va->start);
	return true;
}

/* Tree and list hold the same records in strictly increasing order. */
static bool check_set(struct checker *c, const char *what,
		      const struct va_set *set)
{
	const struct tree_node *n = tree_first(&set->root);
	const struct vlist *l = set->list.next;
	const struct va *prev = NULL, *va;

	if (tree_verify(&set->root) < 0)
		return fail(c, "%s tree breaks the red-black rules", what);
	for (; n; n = tree_next(n), l = l->next) {
		va = va_of_node(n);
		if (l == &set->list || va_of_link(l) != va)
			return fail(c, "%s tree and list disagree", what);
		if (!in_order(c, what, prev, va))
			return false;
		prev = va;
	}
	if (l != &set->list)
		return fail(c, "%s list longer than its tree", what);
	return true;
}

/* Count a bucket array's chained ranges; false if a back link is wrong. */
static bool count_chained(struct checker *c, struct va *const *buckets,
			  size_t first, size_t nr, size_t most, size_t *n)
{
	struct va *const *link;
	size_t i;

	for (i = first; i < nr; i++) {
		for (link = &buckets[i]; *link;
		     link = &(*link)->chain.next, ++*n) {
			if ((*link)->chain.pprev != link)
				return fail(c,
					    "busy index chain broken at 0x%llx",
					    (unsigned long long)(*link)->start);
			if (*n >= most)
				return fail(
					c,
					"busy index holds more than its tree");
		}
	}
	return true;
}

/*
 * The busy tree as check_set() checks a set's, and its start index: every
 * chain link consistent, every busy range found by its start, as many
 * ranges indexed (in the array and in the old one's buckets not yet
 * moved) as busy in the tree and as counted.  *@idle: the idle ones.
 */
static bool check_busy(struct checker *c, const struct busy_set *b,
		       size_t *idle)
{
	const struct tree_node *n;
	const struct va *prev = NULL, *va;
	size_t in_tree = 0, indexed = 0;

	*idle = 0;
	if (tree_verify(&b->root) < 0)
		return fail(c, "busy tree breaks the red-black rules");
	for (n = tree_first(&b->root); n; n = tree_next(n)) {
		va = va_of_node(n);
		if (!in_order(c, "busy", prev, va))
			return false;
		prev = va;
		if (!va->busy) {
			++*idle;
			continue;
		}
		in_tree++;
		if (busy_set_at(b, va->start) != va)
			return fail(c,
				    "busy range at 0x%llx is not in its index",
				    (unsigned long long)va->start);
	}
	if (!count_chained(c, b->buckets, 0, b->nr_buckets, in_tree, &indexed))
		return false;
	if (b->old &&
	    !count_chained(c, b->old, b->moved, b->nr_old, in_tree, &indexed))
		return false;
	if (indexed != in_tree || b->count != in_tree)
		return fail(
			c,
			"busy tree holds %zu busy ranges, its index %zu, count %zu",
			in_tree, indexed, b->count);
	return true;
}

/*
 * A lazy or pooled range of @vn: in a space that keeps idle ranges a lazy
 * one is idle in @vn's busy tree (its tag's node is its address's), and
 * so is a pooled one unless a refill put it in the pool and no hit has
 * taken it yet; elsewhere none is in a tree.  Those in the tree are
 * counted in *@idle.
 */
static void check_idle(struct checker *c, struct vmap_node *vn,
		       const struct va *va, bool lazy, size_t *idle)
{
	if (!busy_keeps_idle(c->s) || (!lazy && !va->in_busy_tree)) {
		if (va->in_busy_tree)
			fail(c, "range at 0x%llx is marked as in a busy tree",
			     (unsigned long long)va->start);
		return;
	}
	if (!va->in_busy_tree ||
	    va_tree_find(&vn->busy.root, va->start) != va || va->busy)
		fail(c,
		     "lazy or pooled range at 0x%llx is not idle in the busy tree of node %u",
		     (unsigned long long)va->start, vn->id);
	++*idle;
}

static uint64_t check_max(struct checker *c, const struct tree_node *n)
{
	uint64_t m, l, r;

	if (!n)
		return 0;
	l = check_max(c, n->left);
	r = check_max(c, n->right);
	m = va_size(va_of_node(n)) - 1;
	m = l > m ? l : m;
	m = r > m ? r : m;
	if (va_of_node(n)->subtree_max != m)
		fail(c, "cached maximum at 0x%llx is %llu, subtree holds %llu",
		     (unsigned long long)va_of_node(n)->start,
		     (unsigned long long)va_of_node(n)->subtree_max,
		     (unsigned long long)m);
	return m;
}

/* The size index holds every block once, in (size, start) order. */
static void check_size_index(struct checker *c, size_t blocks)
{
	const struct free_heap *h = &c->s->heap;
	struct tree_node *n;
	const struct va *va, *prev = NULL;
	size_t count = 0;

	if (tree_verify(&h->by_size) < 0) {
		fail(c, "size index breaks the red-black rules");
		return;
	}
	for (n = tree_first(&h->by_size); n; n = tree_next(n), count++) {
		va = va_of_size_node(n);
		if (prev && (va_size(prev) - 1 > va_size(va) - 1 ||
			     (va_size(prev) == va_size(va) &&
			      prev->start >= va->start))) {
			fail(c, "size index out of order at 0x%llx",
			     (unsigned long long)va->start);
			return;
		}
		if (va_tree_find(&h->set.root, va->start) != va) {
			fail(c, "size index holds 0x%llx, not a free block",
			     (unsigned long long)va->start);
			return;
		}
		prev = va;
	}
	if (count != blocks)
		fail(c, "size index holds %zu blocks, the heap %zu", count,
		     blocks);
}

static void check_heap(struct checker *c)
{
	const struct free_heap *h = &c->s->heap;
	const struct va *va, *prev = NULL;
	uint64_t bytes = 0;
	size_t blocks = 0;

	if (!check_set(c, "free", &h->set))
		return;
	check_max(c, h->set.root.top);
	vlist_for_each_va(va, &h->set.list) {
		if (!check_range(c, "free", va))
			return;
		if (prev && prev->end == va->start) {
			fail(c, "free ranges at 0x%llx are not coalesced",
			     (unsigned long long)va->start);
			return;
		}
		if (h->indexed && !va->indexed) {
			fail(c,
			     "free block at 0x%llx has no room for its size link",
			     (unsigned long long)va->start);
			return;
		}
		bytes += va_size(va);
		prev = va;
		blocks++;
	}
	if (h->indexed)
		check_size_index(c, blocks);
	if (bytes != atomic_load(&h->free_bytes))
		fail(c, "free byte count %llu, free ranges hold %llu",
		     (unsigned long long)atomic_load(&h->free_bytes),
		     (unsigned long long)bytes);
}

/*
 * The lazy set frees go to: every range in the node of its tag, each
 * pool-bound range on the list of its size, the other list holding only
 * ranges no pool takes, and the set's counts and bounds exact.
 */
static uint64_t check_lazy(struct checker *c, struct vmap_node *vn,
			   size_t *idle)
{
	struct vmap_space *s = c->s;
	const struct lazy_set *ls = vn->lazy;
	uint64_t pages = 0, lo = UINT64_MAX, hi_last = 0;
	size_t count = 0, n;
	struct va *va;
	unsigned k;

	for (k = 0; k < LAZY_LISTS; k++) {
		bool pool_bound;

		n = 0;
		vlist_for_each_va(va, &ls->lists[k]) {
			if (!check_range(c, "lazy", va))
				return 0;
			if (lazy_node_of(s, va) != vn)
				fail(c,
				     "lazy range at 0x%llx is in node %u, not its tag's",
				     (unsigned long long)va->start, vn->id);
			check_idle(c, vn, va, true, idle);
			pool_bound = tag_valid(s, va->tag) &&
				     va_pages(s, va) <= MAX_VA_SIZE_PAGES;
			if (k != LAZY_OTHER ?
				    va_pages(s, va) != k + 1 || !pool_bound :
				    pool_bound)
				fail(c,
				     "lazy range at 0x%llx is filed in the wrong list",
				     (unsigned long long)va->start);
			pages += va_pages(s, va);
			lo = va->start < lo ? va->start : lo;
			hi_last = va_last(va) > hi_last ? va_last(va) : hi_last;
			n++;
		}
		if (k != LAZY_OTHER && n != ls->class_len[k])
			fail(c,
			     "lazy class %u of node %u: length %zu, list holds %zu",
			     k, vn->id, ls->class_len[k], n);
		count += n;
	}
	if (count != ls->count || pages != ls->pages)
		fail(c,
		     "lazy set of node %u counts %zu ranges and %llu pages, holds %zu and %llu",
		     vn->id, ls->count, (unsigned long long)ls->pages, count,
		     (unsigned long long)pages);
	if (count && (lo < ls->lo || hi_last > ls->hi - 1))
		fail(c, "lazy bounds of node %u do not cover its ranges",
		     vn->id);
	return pages;
}

static uint64_t check_node(struct checker *c, struct vmap_node *vn)
{
	struct vmap_space *s = c->s;
	uint64_t lazy_pages = 0;
	const struct tree_node *tn;
	size_t n, idle, lazy_or_pooled = 0;
	struct va *va;
	unsigned k;

	if (!check_busy(c, &vn->busy, &idle))
		return 0;
	for (tn = tree_first(&vn->busy.root); tn; tn = tree_next(tn)) {
		va = va_of_node(tn);
		if (va->busy && !check_range(c, "busy", va))
			return 0;
		if (addr_to_node(s, va->start) != vn->id)
			fail(c,
			     "busy range at 0x%llx is in node %u, not its start's %u",
			     (unsigned long long)va->start, vn->id,
			     addr_to_node(s, va->start));
	}
	lazy_pages = check_lazy(c, vn, &lazy_or_pooled);
	for (k = 0; k < MAX_VA_SIZE_PAGES; k++) {
		n = 0;
		vlist_for_each_va(va, &vn->pools[k].head) {
			if (!check_range(c, "pooled", va))
				return 0;
			if (va_pages(s, va) != k + 1)
				fail(c,
				     "pool %u of node %u holds a %llu-page range",
				     k, vn->id,
				     (unsigned long long)va_pages(s, va));
			if (va->tag != vn->id + 1)
				fail(c,
				     "pooled range at 0x%llx in node %u has tag %u",
				     (unsigned long long)va->start, vn->id,
				     va->tag);
			check_idle(c, vn, va, false, &lazy_or_pooled);
			n++;
		}
		if (n != atomic_load(&vn->pools[k].len))
			fail(c,
			     "pool %u of node %u: length %zu, list holds %zu",
			     k, vn->id, (size_t)atomic_load(&vn->pools[k].len),
			     n);
	}
	if (idle != lazy_or_pooled)
		fail(c,
		     "busy tree of node %u holds %zu idle ranges, its lazy set and pools %zu",
		     vn->id, idle, lazy_or_pooled);
	if (vn->purging)
		fail(c, "node %u has a purge work item outside a purge",
		     vn->id);
	return lazy_pages;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The sorted ranges from *@i on tile [first, last], one run of adjacent
 * spans, exactly.
 */
static bool tile_run(struct checker *c, uint64_t first, uint64_t last,
		     size_t *i)
{
	uint64_t at = first, range_last, next;

	for (;;) {
		next = *i < c->nr_all ? c->all[*i].start : last;
		if (*i == c->nr_all || next != at)
			return fail(
				c,
				*i < c->nr_all && next < at ?
					"ranges overlap at 0x%llx (next 0x%llx)" :
					"[0x%llx, 0x%llx) is in no structure",
				(unsigned long long)at,
				(unsigned long long)next);
		range_last = c->all[*i].end - 1;
		(*i)++;
		if (range_last == last)
			return true;
		if (range_last > last)
			return fail(c, "range at 0x%llx runs past its span",
				    (unsigned long long)at);
		at = range_last + 1;
	}
}

/* Free, busy, lazy and pooled ranges tile the spans, run by run. */
static void check_partition(struct checker *c)
{
	const struct vlist *spans = &c->s->spans.list, *l = spans->next;
	uint64_t first, last;
	size_t i = 0;

	qsort(c->all, c->nr_all, sizeof(*c->all), cmp_range);
	while (l != spans) {
		first = va_of_link(l)->start;
		last = va_last(va_of_link(l));
		for (l = l->next;
		     l != spans && va_of_link(l)->start == last + 1;
		     l = l->next)
			last = va_last(va_of_link(l));
		if (!tile_run(c, first, last, &i))
			return;
	}
	if (i < c->nr_all)
		fail(c, "range at 0x%llx lies outside every span",
		     (unsigned long long)c->all[i].start);
}

int vmap_check(struct vmap_space *s, char *msg, size_t msglen)
{
	struct checker c = { .s = s, .msg = msg, .msglen = msglen };
	uint64_t lazy_pages = 0;
	unsigned i;

	if (!s)
		return -EINVAL;
	if (msg && msglen)
		msg[0] = '\0';
	for (;;) {
		lock_all(s);
		c.cap = count_ranges(s);
		space_unlock_all(s);
		c.all = malloc((c.cap + 1) * sizeof(*c.all));
		if (!c.all)
			return -ENOMEM;
		lock_all(s);
		if (count_ranges(s) <= c.cap)
			break;
		space_unlock_all(s);
		free(c.all);
	}
	check_heap(&c);
	for (i = 0; i < s->nr_nodes && !c.failed; i++)
		lazy_pages += check_node(&c, &s->nodes[i]);
	if (!c.failed && lazy_pages != lazy_pages_now(s))
		fail(&c, "lazy counter %llu, lazy lists hold %llu pages",
		     (unsigned long long)lazy_pages_now(s),
		     (unsigned long long)lazy_pages);
	if (!c.failed && c.nr_all > c.cap)
		fail(&c, "range counters disagree with the lists");
	if (!c.failed)
		check_partition(&c);
	space_unlock_all(s);
	free(c.all);
	return c.failed ? -EUCLEAN : 0;
}
