/* SPDX-License-Identifier: MIT */
/*
 * va.h - the range record (struct va) and the ordered set it lives in.
 *
 * A struct va describes one range [start, end) and is, at any time, in
 * exactly one place: the free heap, a node's busy tree, one of a node's
 * lazy lists, a node's pool, or a private list of a thread moving it
 * between them.  The same two links serve all of them: @node for the tree,
 * @link for the address-ordered list (or a lazy or pool list, which has
 * no tree).
 *
 * struct va_set is a tree and a list over the same records, kept in
 * address order, so that neighbours are O(1) and lookups O(log n).
 * struct busy_set is a tree and an index by exact start.  Neither takes
 * a lock; its owner does.
 */
#ifndef VMAP_VA_H
#define VMAP_VA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

/* A circular doubly linked list; an empty list points at itself. */
struct vlist {
	struct vlist *prev, *next;
};

static inline void vlist_init(struct vlist *h)
{
	h->prev = h->next = h;
}

static inline bool vlist_empty(const struct vlist *h)
{
	return h->next == h;
}

static inline void vlist_insert_between(struct vlist *n, struct vlist *prev,
					struct vlist *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void vlist_add_head(struct vlist *n, struct vlist *h)
{
	vlist_insert_between(n, h, h->next);
}

static inline void vlist_add_tail(struct vlist *n, struct vlist *h)
{
	vlist_insert_between(n, h->prev, h);
}

static inline void vlist_del(struct vlist *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* Move every entry of @from to the front of @to; @from ends empty. */
static inline void vlist_splice_head(struct vlist *from, struct vlist *to)
{
	if (vlist_empty(from))
		return;
	from->prev->next = to->next;
	to->next->prev = from->prev;
	to->next = from->next;
	from->next->prev = to;
	vlist_init(from);
}

/* Move the first @n entries of @from (it has at least @n) to @to. */
static inline void vlist_cut_head(struct vlist *from, size_t n,
				  struct vlist *to)
{
	struct vlist *last = from;

	vlist_init(to);
	if (!n)
		return;
	while (n--)
		last = last->next;
	to->next = from->next;
	to->prev = last;
	from->next = last->next;
	last->next->prev = from;
	to->next->prev = to;
	last->next = to;
}

/* Move every entry of @from to @to, which must be empty. */
static inline void vlist_move_all(struct vlist *from, struct vlist *to)
{
	vlist_init(to);
	vlist_splice_head(from, to);
}

/*
 * A descent reads @node's links and the bounds, kept together so that a
 * record that malloc placed across a cache line boundary more often
 * still has them in one line (churn over 1 000 live ranges: 240 -> 227 ns
 * per pair).
 */
struct va {
	struct tree_node node;
	uint64_t start, end;
	union {
		/* Heap, lazy and pool lists, private lists. */
		struct vlist link;
		/* In a busy set: the chain of its start's bucket. */
		struct {
			struct va *next, **pprev;
		} chain;
	};
	union {
		/* Free heap: the largest block size in this subtree, - 1. */
		uint64_t subtree_max;
		/* Elsewhere: the word the allocating caller attached. */
		uint64_t user;
	};
	/* 0 = no node, otherwise node id + 1 (DESIGN.md section 4). */
	uint32_t tag;
	/* Allocated by va_new_indexed(): a struct va_indexed (in padding). */
	bool indexed;
	/* In a busy set's tree (struct busy_set), and busy there, not idle. */
	bool in_busy_tree, busy;
};

/*
 * A record with room for a link in a free heap's size index (best fit).
 * Only spaces that keep the index allocate these, so the link costs
 * nothing elsewhere; a record that may enter such a heap must be one.
 */
struct va_indexed {
	struct va va;
	struct tree_node size_node;
};

#define va_of_size_node(n) (&tree_entry(n, struct va_indexed, size_node)->va)

static inline struct tree_node *va_size_node(struct va *va)
{
	return &tree_entry(va, struct va_indexed, va)->size_node;
}

#define va_of_node(n) tree_entry(n, struct va, node)
#define va_of_link(l) tree_entry(l, struct va, link)
#define vlist_for_each_va(va, head)                                            \
	for (va = va_of_link((head)->next); &va->link != (head);               \
	     va = va_of_link(va->link.next))
#define vlist_for_each_va_safe(va, tmp, head)                                  \
	for (va = va_of_link((head)->next), tmp = va_of_link(va->link.next);   \
	     &va->link != (head); va = tmp, tmp = va_of_link(va->link.next))

/*
 * A space may end at 2^64, which uint64_t cannot hold: a range that ends
 * there stores end == 0.  Sizes and equalities work modulo 2^64 as they
 * are, but order comparisons of ends must use the last byte, which never
 * wraps.  The one size that wraps, 2^64 (the whole of [0, 2^64) free),
 * is why the free heap caches sizes minus one (heap.c).
 */
static inline uint64_t va_size(const struct va *va)
{
	return va->end - va->start;
}

static inline uint64_t va_last(const struct va *va)
{
	return va->end - 1;
}

/*
 * A bookkeeping record.  Allocation may fail (also by fault injection):
 * callers obtain records before taking any lock.
 */
struct va *va_new(void);
struct va *va_new_indexed(void);
/* @n records (va_new_indexed() ones if @indexed), or none. */
bool va_new_list(size_t n, bool indexed, struct vlist *out);
void va_delete(struct va *va);
void va_delete_list(struct vlist *list);

struct va_set {
	struct tree_root root;
	struct vlist list;
};

static inline void va_set_init(struct va_set *set)
{
	set->root.top = NULL;
	vlist_init(&set->list);
}

/*
 * Where @va would go in the address-ordered tree @root: the slot to link
 * it at and its parent, or NULL if it overlaps a range already there.
 * The in-order neighbours of the slot are ancestors on the descent, so
 * checking every node met finds any overlap.
 */
struct tree_node **va_tree_slot(struct tree_root *root, const struct va *va,
				struct tree_node **parent);

/*
 * The same, searching from @finger, a range in the tree (or NULL: from
 * the top), so that ranges near the last one placed are found in a few
 * steps.
 */
struct tree_node **va_tree_slot_near(struct tree_root *root,
				     const struct va *va,
				     const struct va *finger,
				     struct tree_node **parent);

/*
 * Link @va at a slot found by va_tree_slot(), in tree and list.  Values of
 * an augmented tree are the caller's to update before the fixup, so this
 * only links; va_set_insert() does everything for a plain set.
 */
void va_set_link(struct va_set *set, struct va *va, struct tree_node *parent,
		 struct tree_node **slot);

/* Insert into a plain set; false (nothing done) if @va overlaps. */
bool va_set_insert(struct va_set *set, struct va *va);

/* Remove from tree and list. */
void va_set_erase(struct va_set *set, struct va *va,
		  const struct tree_augment *aug);

/* A range of the tree @root sharing a byte with [@first, @last], or NULL. */
struct va *va_tree_overlap(const struct tree_root *root, uint64_t first,
			   uint64_t last);

/* The range containing @addr, or NULL. */
static inline struct va *va_tree_find(const struct tree_root *root,
				      uint64_t addr)
{
	return va_tree_overlap(root, addr, addr);
}

/*
 * The lowest range that ends above @addr (it contains @addr or lies above
 * it), or NULL.  The ranges under @root must not overlap.
 */
struct va *va_tree_first_ending_after(const struct tree_root *root,
				      uint64_t addr);

/* Take every record out of @set onto @out (empty), in address order. */
void va_set_take_all(struct va_set *set, struct vlist *out);

/*
 * A node's busy ranges: the tree in address order serves look-ups by an
 * inner address, walks and overlap checks; frees look a range up by its
 * exact start in the index, a bucket and mostly one record, where a
 * descent of the tree misses the cache at most of its levels (at 1 000
 * live ranges the descent was a fifth of a churning pair).  The index
 * chains through the records (struct va's @chain).
 *
 * A set may also hold idle ranges: freed, lazy or pooled, kept in the
 * tree so that a pooled range goes busy again without a descent (the
 * node's choice, DESIGN.md section 3).  The index and the count hold the
 * busy ones only, and every look-up below skips idle ones.
 *
 * When the ranges outnumber the buckets twice, the owner allocates a
 * larger array without its lock (busy_set_grow_to()) and hands it over
 * (busy_set_regrow()); the ranges then move to it a few buckets per
 * insert (busy_set_migrate()), while look-ups search the old array's
 * buckets not yet moved too.  Moving all at once touched every record
 * under the node's lock: 40 ms at 524 288 ranges.
 */
struct busy_set {
	struct tree_root root;
	struct va **buckets;
	size_t nr_buckets; /* a power of two */
	size_t count;	   /* busy ranges */
	/* While ranges move: the old array, its size, buckets moved. */
	struct va **old;
	size_t nr_old, moved;
};

#define BUSY_SET_MIN_BUCKETS 64

/* Empty, with BUSY_SET_MIN_BUCKETS buckets; false if out of memory. */
bool busy_set_init(struct busy_set *b);
/* Delete the busy records (idle ones are on their lists) and the arrays. */
void busy_set_fini(struct busy_set *b);
/*
 * Insert, busy or idle as @va->busy says; false (nothing done) if @va
 * overlaps a range of @b.
 */
bool busy_set_insert(struct busy_set *b, struct va *va);
/* Take @va, busy or idle, out of @b. */
void busy_set_erase(struct busy_set *b, struct va *va);
/* A busy range goes idle, an idle one busy: the tree stays as it is. */
void busy_set_idle(struct busy_set *b, struct va *va);
void busy_set_revive(struct busy_set *b, struct va *va);
/* The busy range that starts at @start, or NULL. */
struct va *busy_set_at(const struct busy_set *b, uint64_t start);
/* Does a busy range share a byte with [@first, @last]? */
bool busy_set_overlaps(const struct busy_set *b, uint64_t first, uint64_t last);
/* The bucket count @b should grow to, or 0 (enough, or still moving). */
size_t busy_set_grow_to(const struct busy_set *b);
/*
 * Take @buckets (@n, zeroed, more than @b has) as the array to move to,
 * if @b still wants that and is not moving; otherwise return @buckets
 * for the caller to free (outside the lock), else NULL.
 */
struct va **busy_set_regrow(struct busy_set *b, struct va **buckets, size_t n);
/*
 * Move a few buckets' ranges to the new array; when the last is moved,
 * return the old array for the caller to free (outside the lock).
 */
struct va **busy_set_migrate(struct busy_set *b);

#endif /* VMAP_VA_H */
