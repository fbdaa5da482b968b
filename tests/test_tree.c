/* SPDX-License-Identifier: MIT */
/*
 * test_tree.c - white-box tests of the tree and the free heap: random
 * insert/erase against a sorted reference with every red-black and
 * augmented invariant checked after each step; the busy set's index;
 * the four clip cases;
 * coalescing; overlap refusal; the O(log n) lowest-fit search against a
 * linear scan of the same heap.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/free_heap.h"
#include "harness.h"

static bool max_recompute(struct tree_node *n)
{
	struct va *va = va_of_node(n);
	uint64_t m = va_size(va) - 1; /* the heap caches sizes minus one */

	if (n->left && va_of_node(n->left)->subtree_max > m)
		m = va_of_node(n->left)->subtree_max;
	if (n->right && va_of_node(n->right)->subtree_max > m)
		m = va_of_node(n->right)->subtree_max;
	if (m == va->subtree_max)
		return false;
	va->subtree_max = m;
	return true;
}

static void max_rotate(struct tree_node *old_top, struct tree_node *new_top)
{
	va_of_node(new_top)->subtree_max = va_of_node(old_top)->subtree_max;
	va_of_node(old_top)->subtree_max = 0;
	max_recompute(old_top);
}

static const struct tree_augment test_aug = { max_recompute, max_rotate };

/* Recompute every maximum from scratch; false if any cached one differs. */
static bool maxima_exact(struct tree_node *n, uint64_t *out)
{
	uint64_t l = 0, r = 0, m;
	bool ok = true;

	if (!n) {
		*out = 0;
		return true;
	}
	ok &= maxima_exact(n->left, &l);
	ok &= maxima_exact(n->right, &r);
	m = va_size(va_of_node(n)) - 1;
	m = l > m ? l : m;
	m = r > m ? r : m;
	*out = m;
	return ok && va_of_node(n)->subtree_max == m;
}

/* Tree, list and the sorted reference hold the same starts. */
static void expect_set_matches(struct va_set *set, const uint64_t *ref,
			       size_t n)
{
	struct tree_node *t = tree_first(&set->root);
	struct vlist *l = set->list.next;
	uint64_t dummy;
	size_t i;

	assert_int(tree_verify(&set->root), >=, 1);
	assert_true(maxima_exact(set->root.top, &dummy));
	for (i = 0; i < n; i++, t = tree_next(t), l = l->next) {
		assert_true(t != NULL);
		assert_u64(va_of_node(t)->start, ==, ref[i]);
		assert_true(va_of_link(l) == va_of_node(t));
	}
	assert_true(t == NULL);
	assert_true(l == &set->list);
}

TEST(tree_random_insert_erase)
{
	enum { KEYS = 512 };
	static struct va recs[KEYS];
	static bool present[KEYS];
	uint64_t ref[KEYS];
	struct tree_node *parent, **slot;
	struct va_set set;
	long step, steps = scaled(20000);
	size_t i, n;
	unsigned k;

	va_set_init(&set);
	memset(present, 0, sizeof(present));
	for (k = 0; k < KEYS; k++) {
		recs[k].start = (uint64_t)k * 100;
		recs[k].end = recs[k].start + 1 + rnd() % 99;
	}
	for (step = 0; step < steps; step++) {
		k = (unsigned)(rnd() % KEYS);
		if (present[k]) {
			tree_erase(&set.root, &recs[k].node, &test_aug);
			vlist_del(&recs[k].link);
		} else {
			slot = va_tree_slot(&set.root, &recs[k], &parent);
			assert_true(slot != NULL);
			va_set_link(&set, &recs[k], parent, slot);
			recs[k].subtree_max = va_size(&recs[k]) - 1;
			if (parent)
				tree_propagate(parent, &test_aug, true);
			tree_insert_fixup(&set.root, &recs[k].node, &test_aug);
		}
		present[k] = !present[k];
		for (i = 0, n = 0; i < KEYS; i++)
			if (present[i])
				ref[n++] = recs[i].start;
		expect_set_matches(&set, ref, n);
		if (test_failed_now)
			return;
	}
}

/*
 * A busy set against a map of states (absent, busy, idle): random
 * inserts (busy or idle), erases, and busy <-> idle turns of records
 * whose starts are multiples of 2^20 (page numbers with their low bits
 * all zero, the hash's hard case), growing the index as the node does, a
 * few buckets moved per insert or revival.  After each step the tree
 * holds the present records in order; the index finds exactly the busy
 * ones by their start, never by an inner address; overlap checks see
 * busy ranges only; the count is the busy ones'.  An
 * overlapping insert changes nothing.
 */
enum rec_state { ABSENT, BUSY, IDLE };

static void expect_busy_matches(const struct busy_set *b, struct va *recs,
				const enum rec_state *state, unsigned keys)
{
	const struct tree_node *t = tree_first(&b->root);
	size_t n = 0;
	unsigned k;

	assert_int(tree_verify(&b->root), >=, 0);
	for (k = 0; k < keys; k++) {
		struct va *want = state[k] == BUSY ? &recs[k] : NULL;

		expect_true(busy_set_at(b, recs[k].start) == want);
		expect_true(busy_set_overlaps(b, recs[k].end - 1,
					      recs[k].end - 1) ==
			    (want != NULL));
		if (state[k] == ABSENT)
			continue;
		assert_true(t == &recs[k].node);
		t = tree_next(t);
		expect_true(busy_set_at(b, recs[k].start + 1) == NULL);
		if (state[k] == IDLE)
			continue;
		n++;
	}
	assert_true(t == NULL);
	expect_u64(b->count, ==, n);
	/* Spanning every record: a busy one, if any, is found past idle ones. */
	expect_true(busy_set_overlaps(b, 0, UINT64_MAX) == (n > 0));
}

TEST(busy_set_random_insert_erase)
{
	enum { KEYS = 1500 };
	static struct va recs[KEYS];
	static enum rec_state state[KEYS];
	struct va **buckets, **old, wide = { .busy = true };
	struct busy_set b;
	long step, steps = scaled(30000);
	size_t grow_to, most = 0, moving = 0;
	unsigned k;

	assert_true(busy_set_init(&b));
	for (k = 0; k < KEYS; k++) {
		state[k] = ABSENT;
		recs[k].start = (uint64_t)(k + 1) << 20;
		recs[k].end = recs[k].start + ((1 + rnd() % 255) << 12);
	}
	for (step = 0; step < steps; step++) {
		k = (unsigned)(rnd() % KEYS);
		/* Mostly inserts early on, so that the index must grow. */
		if (state[k] != ABSENT &&
		    (step > steps / 2 || rnd() % 4 == 0)) {
			busy_set_erase(&b, &recs[k]);
			expect_true(!recs[k].busy);
			state[k] = ABSENT;
		} else if (state[k] == ABSENT) {
			recs[k].busy = rnd() % 4 != 0;
			assert_true(busy_set_insert(&b, &recs[k]));
			state[k] = recs[k].busy ? BUSY : IDLE;
		} else if (state[k] == BUSY) {
			busy_set_idle(&b, &recs[k]);
			state[k] = IDLE;
		} else {
			busy_set_revive(&b, &recs[k]);
			state[k] = BUSY;
		}
		free(busy_set_migrate(&b));
		moving += b.old != NULL;
		grow_to = busy_set_grow_to(&b);
		if (grow_to) {
			assert_u64(grow_to, >, b.nr_buckets);
			buckets = calloc(grow_to, sizeof(*buckets));
			assert_true(buckets != NULL);
			assert_true(busy_set_regrow(&b, buckets, grow_to) ==
				    NULL);
			/* A second array while one move runs is refused. */
			old = calloc(2 * grow_to, sizeof(*old));
			assert_true(busy_set_regrow(&b, old, 2 * grow_to) ==
				    old);
			free(old);
		}
		most = b.count > most ? b.count : most;
		if (step % 64 == 0 || b.old || step == steps - 1)
			expect_busy_matches(&b, recs, state, KEYS);
		if (test_failed_now)
			return;
	}
	expect_u64(most, >, 2 * BUSY_SET_MIN_BUCKETS); /* it did grow */
	expect_u64(b.nr_buckets, >, BUSY_SET_MIN_BUCKETS);
	expect_u64(moving, >, 0); /* and look-ups ran while ranges moved */

	for (k = 0; k < KEYS && state[k] == ABSENT; k++)
		;
	if (k < KEYS) {
		wide.start = recs[k].start - (1 << 12);
		wide.end = recs[k].start + (1 << 12);
		most = b.count;
		expect_true(!busy_set_insert(&b, &wide));
		expect_u64(b.count, ==, most);
		expect_true(busy_set_at(&b, wide.start) == NULL);
	}
	for (k = 0; k < KEYS; k++)
		if (state[k] != ABSENT)
			busy_set_erase(&b, &recs[k]);
	expect_true(b.root.top == NULL);
	expect_u64(b.count, ==, 0);
	busy_set_fini(&b);
}

TEST(plain_set_find_and_overlap)
{
	struct va a = { .start = 100, .end = 200 },
		  b = { .start = 200, .end = 300 };
	struct va c = { .start = 150, .end = 250 };
	struct va_set set;

	va_set_init(&set);
	assert_true(va_set_insert(&set, &a));
	assert_true(va_set_insert(&set, &b));
	expect_true(!va_set_insert(&set, &c));
	expect_true(va_tree_find(&set.root, 100) == &a);
	expect_true(va_tree_find(&set.root, 199) == &a);
	expect_true(va_tree_find(&set.root, 200) == &b);
	expect_true(va_tree_find(&set.root, 300) == NULL);
	expect_true(va_tree_find(&set.root, 99) == NULL);
	assert_int(tree_verify(&set.root), >=, 1);
}

/* With room for a size-index link, so that any heap may take it. */
static struct va *rec(uint64_t start, uint64_t end)
{
	struct va *va = va_new_indexed();

	va->start = start;
	va->end = end;
	return va;
}

static size_t heap_blocks(struct free_heap *h)
{
	struct va *va;
	size_t n = 0;

	vlist_for_each_va(va, &h->set.list)
		n++;
	return n;
}

TEST(heap_coalesces_both_sides)
{
	struct vlist garbage;
	struct free_heap h;
	uint64_t dummy;

	free_heap_init(&h);
	vlist_init(&garbage);
	free_heap_return(&h, rec(0, 10), &garbage);
	free_heap_return(&h, rec(20, 30), &garbage);
	free_heap_return(&h, rec(40, 50), &garbage);
	expect_int(heap_blocks(&h), ==, 3);
	free_heap_return(&h, rec(10, 20), &garbage); /* joins left and right */
	expect_int(heap_blocks(&h), ==, 2);
	free_heap_return(&h, rec(35, 40), &garbage); /* joins right only */
	free_heap_return(&h, rec(30, 33), &garbage); /* joins left only */
	expect_int(heap_blocks(&h), ==, 2);
	expect_u64(atomic_load(&h.free_bytes), ==, 48);
	free_heap_return(&h, rec(33, 35), &garbage);
	assert_int(heap_blocks(&h), ==, 1);
	expect_u64(va_of_link(h.set.list.next)->end, ==, 50);
	expect_true(maxima_exact(h.set.root.top, &dummy));
	va_delete_list(&garbage);
	va_delete_list(&h.set.list);
}

TEST(heap_refuses_overlap)
{
	struct vlist garbage;
	struct free_heap h;
	pid_t pid;
	int status;

	free_heap_init(&h);
	vlist_init(&garbage);
	free_heap_return(&h, rec(100, 200), &garbage);
	/* A debug build aborts on corruption; check that in a child. */
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		_exit(free_heap_return(&h, rec(150, 250), &garbage) ? 1 : 0);
	}
	waitpid(pid, &status, 0);
#ifdef VMAP_DEBUG
	expect_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#else
	expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
	va_delete_list(&garbage);
	va_delete_list(&h.set.list);
}

/* The four ways to take a range out of one block, checked by their effect. */
TEST(heap_clip_cases)
{
	static const struct {
		uint64_t a, size;
		size_t blocks;
		uint64_t first_end;
	} cases[] = {
		{ 0x1000, 0x4000, 0, 0 },      /* whole */
		{ 0x1000, 0x1000, 1, 0x5000 }, /* left edge */
		{ 0x4000, 0x1000, 1, 0x4000 }, /* right edge */
		{ 0x2000, 0x1000, 2, 0x2000 }, /* middle */
	};
	struct free_heap_fit fit = { .align = 0x1000, .last = 0x4fff };
	struct vlist garbage;
	struct va *spare;
	struct free_heap h;
	uint64_t start;
	unsigned i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		free_heap_init(&h);
		vlist_init(&garbage);
		free_heap_return(&h, rec(0x1000, 0x5000), &garbage);
		spare = va_new();
		fit.size = fit.length = cases[i].size;
		fit.first = cases[i].a;
		assert_int(free_heap_alloc(&h, &fit, &spare, &garbage, &start),
			   ==, 0);
		expect_u64(start, ==, cases[i].a);
		expect_int(heap_blocks(&h), ==, cases[i].blocks);
		expect_true((spare == NULL) == (cases[i].blocks == 2));
		if (cases[i].blocks)
			expect_u64(va_of_link(h.set.list.next)->end, ==,
				   cases[i].first_end);
		expect_u64(atomic_load(&h.free_bytes), ==,
			   0x4000 - cases[i].size);
		va_delete(spare);
		va_delete_list(&garbage);
		va_delete_list(&h.set.list);
	}
}

/*
 * Random free blocks of 1-24 units, 1-24 apart, in [base, base + 4096)
 * (base + 4096 may be 2^64), size-indexed if @indexed.
 */
static void random_heap(struct free_heap *h, struct vlist *garbage,
			uint64_t base, bool indexed)
{
	uint64_t x, size;

	free_heap_init(h);
	if (indexed)
		free_heap_index_enable(h);
	vlist_init(garbage);
	for (x = rnd() % 8; x < 4096;) {
		size = 1 + rnd() % 24;
		if (x + size > 4096)
			break;
		free_heap_return(h, rec(base + x, base + x + size), garbage);
		x += size + 1 + rnd() % 24;
	}
}

/*
 * A search from any block of the heap (or none) finds the slot and
 * parent, or the overlap, that a descent from the top finds; near the
 * top of the 64-bit range too.
 */
TEST(slot_near_matches_descent)
{
	static struct va *blocks[4096];
	struct tree_node **slot, **near, *parent, *near_parent;
	struct va q, *finger, *va;
	struct vlist garbage;
	struct free_heap h;
	long round, k, rounds = scaled(100);
	size_t n;

	for (round = 0; round < rounds; round++) {
		uint64_t base = round % 2 ? 0 : 0ull - 4096;

		random_heap(&h, &garbage, base, false);
		n = 0;
		vlist_for_each_va(va, &h.set.list)
			blocks[n++] = va;
		for (k = 0; k < 500; k++) {
			q.start = base + rnd() % 4096;
			q.end = q.start + 1 + rnd() % 24;
			if (q.end - base > 4096 || (q.end && q.end < q.start))
				q.end = base + 4096;
			finger = n && rnd() % 8 ? blocks[rnd() % n] : NULL;
			slot = va_tree_slot(&h.set.root, &q, &parent);
			near = va_tree_slot_near(&h.set.root, &q, finger,
						 &near_parent);
			assert_true(near == slot);
			if (slot)
				assert_true(near_parent == parent);
		}
		va_delete_list(&garbage);
		va_delete_list(&h.set.list);
	}
}

/*
 * Returning a list coalesces as returning its ranges one by one would,
 * in address order up or down and in random order: the heap's blocks
 * are then the maximal runs of a bitmap of free units.
 */
TEST(heap_return_list_matches_bitmap)
{
	static bool free_unit[4096];
	static uint64_t order[4096];
	struct vlist garbage, list;
	struct free_heap h;
	uint64_t x, run, total, dummy;
	long round, rounds = scaled(100);
	size_t n, i, j;
	struct va *va;

	for (round = 0; round < rounds; round++) {
		random_heap(&h, &garbage, 0, false);
		memset(free_unit, 0, sizeof(free_unit));
		vlist_for_each_va(va, &h.set.list)
			for (x = va->start; x < va->end; x++)
				free_unit[x] = true;
		for (n = 0, x = 0; x < 4096; x++)
			if (!free_unit[x] && rnd() % 2)
				order[n++] = x;
		for (i = 0; round % 3 == 2 && i + 1 < n; i++) {
			j = i + rnd() % (n - i);
			x = order[i];
			order[i] = order[j];
			order[j] = x;
		}
		vlist_init(&list);
		for (i = 0; i < n; i++) {
			x = order[round % 3 == 1 ? n - 1 - i : i];
			free_unit[x] = true;
			vlist_add_tail(&rec(x, x + 1)->link, &list);
		}
		free_heap_return_list(&h, &list, &garbage);
		assert_true(vlist_empty(&list));
		assert_int(tree_verify(&h.set.root), >=, 1);
		assert_true(maxima_exact(h.set.root.top, &dummy));
		va = va_of_link(h.set.list.next);
		for (total = 0, x = 0; x < 4096; x += run ? run : 1) {
			for (run = 0; x + run < 4096 && free_unit[x + run];)
				run++;
			if (!run)
				continue;
			assert_true(&va->link != &h.set.list);
			assert_u64(va->start, ==, x);
			assert_u64(va->end, ==, x + run);
			va = va_of_link(va->link.next);
			total += run;
		}
		assert_true(&va->link == &h.set.list);
		expect_u64(atomic_load(&h.free_bytes), ==, total);
		va_delete_list(&garbage);
		va_delete_list(&h.set.list);
	}
}

/* The kernel's debug self-check: tree search against a linear scan. */
TEST(lowest_fit_matches_linear_scan)
{
	static const uint64_t aligns[] = { 1, 2, 4, 8, 16, 64, 512 };
	struct free_heap_fit fit = { .last = UINT64_MAX };
	struct vlist garbage;
	struct free_heap h;
	struct va *va, *lin;
	uint64_t a_tree, a_lin, size, align, vstart, length;
	long round, q, rounds = scaled(200);

	for (round = 0; round < rounds; round++) {
		random_heap(&h, &garbage, 0, false);
		for (q = 0; q < 200; q++) {
			size = 1 + rnd() % 20;
			align = aligns[rnd() % 7];
			vstart = rnd() % 4200;
			length = rnd() % 2 ? size : size + align - 1;
			fit.size = size;
			fit.align = align;
			fit.first = vstart;
			fit.length = length;
			va = free_heap_find(&h, &fit, &a_tree);
			lin = NULL;
			vlist_for_each_va(lin, &h.set.list) {
				uint64_t from = lin->start > vstart ?
							lin->start :
							vstart;

				a_lin = (from + align - 1) & ~(align - 1);
				if (va_size(lin) >= length &&
				    a_lin + size <= lin->end)
					break;
			}
			if (&lin->link == &h.set.list)
				lin = NULL;
			/* Exact when the length is the size; bounded otherwise. */
			if (length == size) {
				assert_true(va == lin);
				if (va)
					assert_u64(a_tree, ==, a_lin);
			} else if (lin) {
				assert_true(va != NULL);
				assert_u64(a_tree, <=, a_lin);
			}
		}
		va_delete_list(&garbage);
		va_delete_list(&h.set.list);
	}
}

/*
 * The lowest start at or above @first in @zm's zones, by trying every
 * aligned address; inclusive lasts, so that blocks may end at 2^64.
 */
static bool own_zone_fit_linear(struct free_heap *h, uint64_t size,
				uint64_t align, const struct zone_map *zm,
				uint64_t first, uint64_t *out)
{
	struct va *b;
	uint64_t a;

	vlist_for_each_va(b, &h->set.list) {
		a = b->start > first ? b->start : first;
		if (a > va_last(b) || (-a & (align - 1)) > va_last(b) - a)
			continue;
		for (a += -a & (align - 1); size - 1 <= va_last(b) - a;
		     a += align) {
			if ((a >> zm->zone_shift) % zm->nr_nodes == zm->node) {
				*out = a;
				return true;
			}
			if (align > va_last(b) - a)
				break;
		}
	}
	return false;
}

/* The size index holds every block once, in (size, start) order. */
static void expect_index_matches(struct free_heap *h)
{
	struct tree_node *n;
	struct va *va, *prev = NULL;
	size_t count = 0;

	if (!h->indexed)
		return;
	assert_int(tree_verify(&h->by_size), >=, 0);
	for (n = tree_first(&h->by_size); n; n = tree_next(n), count++) {
		va = va_of_size_node(n);
		assert_true(va_tree_find(&h->set.root, va->start) == va);
		if (prev)
			assert_true(va_size(prev) - 1 < va_size(va) - 1 ||
				    (va_size(prev) == va_size(va) &&
				     prev->start < va->start));
		prev = va;
	}
	assert_int(count, ==, heap_blocks(h));
}

/*
 * Zones of 4 units, 3 nodes: the search restricted to one node's zones
 * against a linear scan, taking each fit out and putting it back; with a
 * single try it gives up (-EAGAIN) exactly when the plain lowest fit is
 * in another node's zone.  Rounds alternate between a heap at 0 and one
 * whose last block may end at 2^64, with and without the size index.
 */
TEST(node_fit_matches_linear_scan)
{
	static const uint64_t aligns[] = { 1, 2, 4 };
	struct zone_map zm = { .zone_shift = 2, .nr_nodes = 3 };
	struct free_heap_fit fit = { .last = UINT64_MAX };
	unsigned tries;
	uint64_t a_tree, a_lin, base;
	struct vlist garbage;
	struct va *spare;
	struct free_heap h;
	long round, q, rounds = scaled(100);
	bool found;
	int rc;

	for (round = 0; round < rounds; round++) {
		base = round & 1 ? 0 - (uint64_t)4096 : 0;
		random_heap(&h, &garbage, base, round & 2);
		for (q = 0; q < 200; q++) {
			fit.size = 1 + rnd() % 6;
			fit.align = aligns[rnd() % 3];
			fit.first = base + rnd() % 4200;
			if (fit.first < base) /* wrapped past 2^64 */
				fit.first = UINT64_MAX - rnd() % 8;
			fit.length = fit.size;
			zm.node = (unsigned)(rnd() % 3);
			found = own_zone_fit_linear(&h, fit.size, fit.align,
						    &zm, fit.first, &a_lin);
			spare = va_new_indexed();
			tries = 1u << 20;
			rc = free_heap_alloc_in_node(&h, &fit, &zm, &tries,
						     &spare, &garbage, &a_tree);
			assert_int(rc, ==, found ? 0 : -ENOMEM);
			expect_index_matches(&h);
			if (found) {
				assert_u64(a_tree, ==, a_lin);
				free_heap_return(&h,
						 rec(a_tree, a_tree + fit.size),
						 &garbage);
			}
			if (spare)
				va_delete(spare);
			spare = va_new_indexed();
			tries = 1;
			rc = free_heap_alloc_in_node(&h, &fit, &zm, &tries,
						     &spare, &garbage, &a_tree);
			expect_int(tries, ==, 0);
			if (!rc)
				free_heap_return(&h,
						 rec(a_tree, a_tree + fit.size),
						 &garbage);
			else if (found)
				assert_int(rc, ==, -EAGAIN);
			expect_index_matches(&h);
			if (spare)
				va_delete(spare);
		}
		va_delete_list(&garbage);
		va_delete_list(&h.set.list);
	}
}

int main(int argc, char **argv)
{
	return test_main(argc, argv,
			 (struct test[]){ T(tree_random_insert_erase),
					  T(busy_set_random_insert_erase),
					  T(plain_set_find_and_overlap),
					  T(heap_coalesces_both_sides),
					  T(heap_refuses_overlap),
					  T(heap_clip_cases),
					  T(slot_near_matches_descent),
					  T(heap_return_list_matches_bitmap),
					  T(lowest_fit_matches_linear_scan),
					  T(node_fit_matches_linear_scan),
					  { 0 } });
}
