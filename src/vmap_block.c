/* SPDX-License-Identifier: MIT */
/*
 * vmap_block.c - vm_map_ram(): small mappings carved from per-CPU blocks,
 * the kernel's vmap blocks.
 *
 * A block is VMAP_BBMAP_BITS pages taken from the heap's space at once.
 * A mapping of up to VMAP_MAX_ALLOC pages takes a power-of-two chunk of
 * the current CPU's block, from the block's never-used end (a bump index:
 * the free count); larger mappings take an area of the space directly.
 * Unmapping a chunk makes it dirty: it is not handed out again, and its
 * old mapping stays until vm_unmap_aliases() (the kernel's deferred TLB
 * flush: here the alias is the stale MAP_SHARED mapping itself).  A block
 * whose every page is dirty goes back to the space, lazily, like a vfree;
 * a block with nothing mapped but some pages never used (fragmented) is
 * purged by vm_unmap_aliases() once less than 1/16 of it is unused, and by
 * an allocation that finds no room, whatever is left.
 *
 * Finding a block by address: a table with one slot per block-sized
 * stretch of the heap, so the lookup involves no CPU number at all (the
 * kernel hashes addresses to CPUs, and had to fix a hash landing past the
 * possible CPUs).  A block is published in its slot (release) only once
 * every field is set, its queue included (the kernel once published a
 * block before setting its CPU); purging a block uses the queue recorded
 * in it, never the purging thread's (another kernel fix).  Records are
 * reused, never freed before the heap, so a lookup racing with a purge
 * reads a live record and re-checks it under its lock.
 *
 * Locks (order in vmalloc.h): a queue lock guards its list of blocks with
 * unused pages; a block lock everything in the block; the spare lock the
 * list of unused records.  No space call is made with one held.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "vmalloc.h"

#define BLOCK_WORDS (VMAP_BBMAP_BITS / 64)
/* A fragmented block is worth keeping while 1/16 of it is still unused. */
#define VMAP_PURGE_THRESHOLD (VMAP_BBMAP_BITS / 16)

struct vmap_block {
	pthread_mutex_t lock;
	uint64_t start;		     /* 0: the record is unused */
	unsigned queue;		     /* set before the block is published */
	unsigned free;		     /* never-used pages, at the end */
	unsigned dirty;		     /* unmapped pages */
	uint64_t used[BLOCK_WORDS];  /* pages of live chunks */
	uint64_t alias[BLOCK_WORDS]; /* dirty pages still mapped */
	/* At the first page of each live chunk: its order + 1; else 0. */
	unsigned char order[VMAP_BBMAP_BITS];
	struct vmap_block *prev, *next; /* on its queue's list */
	bool queued;
	uint64_t dead_start; /* a killed block's start, for its release */
	struct vmap_block *next_record; /* every record, for destroy */
	struct vmap_block *next_spare;	/* spare or dead list */
};

struct block_queue {
	alignas(64) pthread_mutex_t lock;
	struct vmap_block *head; /* blocks with unused pages */
};

struct block_state {
	unsigned nr_queues;
	struct block_queue *queues;
	uint64_t block_bytes;
	uint64_t first_slot;
	size_t nr_slots;
	_Atomic(struct vmap_block *) *slots;
	pthread_mutex_t spare_lock;
	struct vmap_block *spares, *records;
};

static void *state_create(struct vmap_heap *h)
{
	struct block_state *st = calloc(1, sizeof(*st));
	unsigned i;

	if (!st)
		return NULL;
	st->nr_queues = os_nr_cpus();
	st->block_bytes = VMAP_BBMAP_BITS * h->page;
	st->first_slot = h->base / st->block_bytes;
	st->nr_slots = (size_t)((h->base + h->size - 1) / st->block_bytes -
				st->first_slot + 1);
	st->queues = aligned_alloc(64, st->nr_queues * sizeof(*st->queues));
	st->slots = calloc(st->nr_slots, sizeof(*st->slots));
	if (!st->queues || !st->slots) {
		free(st->queues);
		free(st->slots);
		free(st);
		return NULL;
	}
	for (i = 0; i < st->nr_queues; i++) {
		pthread_mutex_init(&st->queues[i].lock, NULL);
		st->queues[i].head = NULL;
	}
	pthread_mutex_init(&st->spare_lock, NULL);
	return st;
}

static struct block_state *state_of(struct vmap_heap *h, bool create)
{
	return heap_extra(h, &h->blocks, state_create, create);
}

void blocks_destroy(struct vmap_heap *h)
{
	struct block_state *st = state_of(h, false);
	struct vmap_block *b, *next;
	unsigned i;

	if (!st)
		return;
	for (b = st->records; b; b = next) {
		next = b->next_record;
		pthread_mutex_destroy(&b->lock);
		free(b);
	}
	for (i = 0; i < st->nr_queues; i++)
		pthread_mutex_destroy(&st->queues[i].lock);
	pthread_mutex_destroy(&st->spare_lock);
	free(st->queues);
	free(st->slots);
	free(st);
}

static _Atomic(struct vmap_block *) *slot_of(struct block_state *st,
					     uint64_t addr)
{
	uint64_t i = addr / st->block_bytes - st->first_slot;

	return i < st->nr_slots ? &st->slots[i] : NULL;
}

static void bits_set(uint64_t *map, unsigned from, unsigned n, bool on)
{
	unsigned i;

	for (i = from; i < from + n; i++) {
		if (on)
			map[i / 64] |= 1ull << (i % 64);
		else
			map[i / 64] &= ~(1ull << (i % 64));
	}
}

static bool bit_test(const uint64_t *map, unsigned i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static unsigned order_of(unsigned count)
{
	unsigned order = 0;

	while ((1u << order) < count)
		order++;
	return order;
}

static void queue_add(struct block_queue *q, struct vmap_block *b)
{
	b->prev = NULL;
	b->next = q->head;
	if (q->head)
		q->head->prev = b;
	q->head = b;
	b->queued = true;
}

static void queue_del(struct block_queue *q, struct vmap_block *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		q->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->queued = false;
}

/* Take @need pages from the unused end of @b (locked, with room). */
static uint64_t block_carve(struct vmap_heap *h, struct vmap_block *b,
			    unsigned order)
{
	unsigned need = 1u << order, off = VMAP_BBMAP_BITS - b->free;

	bits_set(b->used, off, need, true);
	b->order[off] = (unsigned char)(order + 1);
	b->free -= need;
	return b->start + (uint64_t)off * h->page;
}

static struct vmap_block *record_get(struct block_state *st)
{
	struct vmap_block *b;

	pthread_mutex_lock(&st->spare_lock);
	b = st->spares;
	if (b)
		st->spares = b->next_spare;
	pthread_mutex_unlock(&st->spare_lock);
	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_lock(&st->spare_lock);
	b->next_record = st->records;
	st->records = b;
	pthread_mutex_unlock(&st->spare_lock);
	return b;
}

static void record_put(struct block_state *st, struct vmap_block *b)
{
	pthread_mutex_lock(&st->spare_lock);
	b->next_spare = st->spares;
	st->spares = b;
	pthread_mutex_unlock(&st->spare_lock);
}

/*
 * Give a dead block back: the reservation over all of it (every mapping
 * and alias in one call), then its area to the space, lazily.
 */
static void block_release(struct vmap_heap *h, struct block_state *st,
			  struct vmap_block *b)
{
	pages_unmap(h, b->dead_start, st->block_bytes);
	vmap_free(h->space, b->dead_start);
	record_put(st, b);
}

/*
 * Take @b (locked) out of use: out of its slot, so that no lookup finds
 * it, and marked unused; block_release() is the killer's to call.
 */
static void block_kill(struct block_state *st, struct vmap_block *b)
{
	atomic_store_explicit(slot_of(st, b->start), NULL,
			      memory_order_release);
	b->dead_start = b->start;
	b->start = 0;
}

/*
 * Purge the blocks with nothing mapped and some pages unused: all of them
 * with @force, else those with less than VMAP_PURGE_THRESHOLD unused.
 * Each goes through the queue it was created on.  Returns how many.
 */
static unsigned purge_fragmented(struct vmap_heap *h, struct block_state *st,
				 bool force)
{
	struct vmap_block *b, *next, *dead = NULL;
	struct block_queue *q;
	unsigned i, n = 0;

	for (i = 0; i < st->nr_queues; i++) {
		q = &st->queues[i];
		pthread_mutex_lock(&q->lock);
		for (b = q->head; b; b = next) {
			next = b->next;
			pthread_mutex_lock(&b->lock);
			if (b->free + b->dirty == VMAP_BBMAP_BITS &&
			    (force || b->free < VMAP_PURGE_THRESHOLD)) {
				queue_del(q, b);
				block_kill(st, b);
				b->next_spare = dead;
				dead = b;
			}
			pthread_mutex_unlock(&b->lock);
		}
		pthread_mutex_unlock(&q->lock);
	}
	for (b = dead; b; b = next) {
		next = b->next_spare;
		block_release(h, st, b);
		n++;
	}
	return n;
}

/* A new block for queue @qi with its first chunk carved: *@addr. */
static int block_new(struct vmap_heap *h, struct block_state *st, unsigned qi,
		     unsigned order, uint64_t *addr)
{
	struct vmap_block *b = record_get(st);
	struct block_queue *q = &st->queues[qi];
	uint64_t start;
	int rc;

	if (!b)
		return -ENOMEM;
	rc = vmap_alloc_user(h->space, st->block_bytes, st->block_bytes, 0, 0,
			     0, area_user(AREA_VMAP_BLOCK, NULL), &start);
	if (rc == -ENOMEM && purge_fragmented(h, st, true))
		rc = vmap_alloc_user(h->space, st->block_bytes, st->block_bytes,
				     0, 0, 0, area_user(AREA_VMAP_BLOCK, NULL),
				     &start);
	if (rc) {
		record_put(st, b);
		return rc;
	}
	atomic_fetch_add(&h->mapped_areas, 1);
	pthread_mutex_lock(&b->lock);
	b->start = start;
	b->queue = qi;
	b->free = VMAP_BBMAP_BITS;
	b->dirty = 0;
	memset(b->used, 0, sizeof(b->used));
	memset(b->alias, 0, sizeof(b->alias));
	memset(b->order, 0, sizeof(b->order));
	*addr = block_carve(h, b, order);
	pthread_mutex_unlock(&b->lock);
	/* Published only now, complete. */
	atomic_store_explicit(slot_of(st, start), b, memory_order_release);
	if (b->free) {
		pthread_mutex_lock(&q->lock);
		pthread_mutex_lock(&b->lock);
		if (b->start == start && b->free && !b->queued)
			queue_add(q, b);
		pthread_mutex_unlock(&b->lock);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

static int block_alloc(struct vmap_heap *h, struct block_state *st,
		       unsigned count, uint64_t *addr)
{
	unsigned order = order_of(count),
		 qi = vmap_thread_cpu() % st->nr_queues;
	struct block_queue *q = &st->queues[qi];
	struct vmap_block *b;

	pthread_mutex_lock(&q->lock);
	for (b = q->head; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		if (b->free >= (1u << order)) {
			*addr = block_carve(h, b, order);
			if (!b->free)
				queue_del(q, b);
			pthread_mutex_unlock(&b->lock);
			pthread_mutex_unlock(&q->lock);
			return 0;
		}
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return block_new(h, st, qi, order, addr);
}

/* Unmap the chunk at @addr of @count pages: -EINVAL if it is not one. */
static int block_free(struct vmap_heap *h, struct block_state *st,
		      uint64_t addr, unsigned count)
{
	_Atomic(struct vmap_block *) *slot = slot_of(st, addr);
	unsigned order = order_of(count), off;
	struct vmap_block *b;
	bool dead = false;

	b = slot ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
	if (!b)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	/* The record may have been reused since the lookup: check again. */
	if (!b->start || addr < b->start ||
	    addr >= b->start + st->block_bytes || (addr - b->start) % h->page) {
		pthread_mutex_unlock(&b->lock);
		return -EINVAL;
	}
	off = (unsigned)((addr - b->start) / h->page);
	if (b->order[off] != order + 1) {
		pthread_mutex_unlock(&b->lock);
		return -EINVAL;
	}
	b->order[off] = 0;
	bits_set(b->used, off, 1u << order, false);
	bits_set(b->alias, off, 1u << order, true);
	b->dirty += 1u << order;
	heap_poison(h, addr, (uint64_t)count * h->page);
	/* Fully dirty: no unused pages, so it is on no queue. */
	if (b->dirty == VMAP_BBMAP_BITS) {
		block_kill(st, b);
		dead = true;
	}
	pthread_mutex_unlock(&b->lock);
	if (dead)
		block_release(h, st, b);
	return 0;
}

/* Undo a vm_map_ram() of @count pages at @addr; -EINVAL if it is not one. */
static int heap_vm_unmap_ram(struct vmap_heap *h, uint64_t addr, unsigned count)
{
	struct block_state *st;
	struct vmap_range r;

	if (!h || !count)
		return -EINVAL;
	if (count <= VMAP_MAX_ALLOC) {
		st = state_of(h, false);
		return st ? block_free(h, st, addr, count) : -EINVAL;
	}
	if (vmap_find(h->space, addr, &r) || r.start != addr ||
	    area_kind_of(r.user) != AREA_VM_MAP_RAM ||
	    r.end - r.start != (uint64_t)count * h->page)
		return -EINVAL;
	pages_unmap(h, addr, r.end - r.start);
	return vmap_free(h->space, addr) ? -EINVAL : 0;
}

static void *heap_vm_map_ram(struct vmap_heap *h, const uint64_t *pages,
			     unsigned count)
{
	struct block_state *st;
	uint64_t addr;
	int rc;

	if (!h || !pages || !count || count > h->size / h->page ||
	    pages_check(h, pages, count)) {
		errno = EINVAL;
		return NULL;
	}
	if (count > VMAP_MAX_ALLOC) {
		rc = vmap_alloc_user(h->space, (uint64_t)count * h->page,
				     h->page, 0, 0, 0,
				     area_user(AREA_VM_MAP_RAM, NULL), &addr);
		if (!rc)
			atomic_fetch_add(&h->mapped_areas, 1);
	} else {
		st = state_of(h, true);
		rc = st ? block_alloc(h, st, count, &addr) : -ENOMEM;
	}
	if (!rc && (rc = pages_map(h, addr, pages, count)))
		heap_vm_unmap_ram(h, addr, count);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	return (void *)(uintptr_t)addr;
}

/* Put the reservation back over each run of @b's alias pages (locked). */
static void block_flush(struct vmap_heap *h, struct vmap_block *b)
{
	unsigned i = 0, j;

	while (i < VMAP_BBMAP_BITS) {
		if (!bit_test(b->alias, i)) {
			i++;
			continue;
		}
		for (j = i; j < VMAP_BBMAP_BITS && bit_test(b->alias, j); j++)
			;
		pages_unmap(h, b->start + (uint64_t)i * h->page,
			    (uint64_t)(j - i) * h->page);
		i = j;
	}
	memset(b->alias, 0, sizeof(b->alias));
}

static void heap_vm_unmap_aliases(struct vmap_heap *h)
{
	struct block_state *st = state_of(h, false);
	struct vmap_block *b;
	size_t i;

	if (st) {
		purge_fragmented(h, st, false);
		for (i = 0; i < st->nr_slots; i++) {
			b = atomic_load_explicit(&st->slots[i],
						 memory_order_acquire);
			if (!b)
				continue;
			pthread_mutex_lock(&b->lock);
			if (b->start)
				block_flush(h, b);
			pthread_mutex_unlock(&b->lock);
		}
	}
	vmap_purge(h->space);
}

void blocks_read(struct vmap_heap *h, uint64_t start, uint64_t from,
		 uint64_t to, char *buf, uint64_t buf_addr)
{
	struct block_state *st = state_of(h, false);
	_Atomic(struct vmap_block *) *slot = st ? slot_of(st, start) : NULL;
	struct vmap_block *b =
		slot ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
	uint64_t a, end;

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	for (a = from; b->start == start && a < to; a = end) {
		end = (a - a % h->page) + h->page;
		if (end > to)
			end = to;
		if (bit_test(b->used, (unsigned)((a - start) / h->page)))
			vread_pages(a, end, buf, buf_addr);
	}
	pthread_mutex_unlock(&b->lock);
}

void *vmap_heap_vm_map_ram(struct vmap_heap *h, const uint64_t *pages,
			   unsigned count)
{
	return heap_vm_map_ram(h, pages, count);
}

int vmap_heap_vm_unmap_ram(struct vmap_heap *h, const void *mem, unsigned count)
{
	return heap_vm_unmap_ram(h, (uint64_t)(uintptr_t)mem, count);
}

void vmap_heap_vm_unmap_aliases(struct vmap_heap *h)
{
	if (h)
		heap_vm_unmap_aliases(h);
}

void *vm_map_ram(const uint64_t *pages, unsigned count)
{
	return heap_vm_map_ram(vmap_default_heap(), pages, count);
}

void vm_unmap_ram(const void *mem, unsigned count)
{
	if (heap_vm_unmap_ram(vmap_default_heap(), (uint64_t)(uintptr_t)mem,
			      count))
		heap_warn(
			"vm_unmap_ram: %p (%u pages) is not a mapping from vm_map_ram; ignored\n",
			mem, count);
}

void vm_unmap_aliases(void)
{
	struct vmap_heap *h = vmap_default_heap();

	if (h)
		heap_vm_unmap_aliases(h);
}

static int check_fail(char *msg, size_t len, const char *what, uint64_t start)
{
	if (msg && len)
		snprintf(msg, len, "vm_map_ram block 0x%llx: %s",
			 (unsigned long long)start, what);
	return -EUCLEAN;
}

/* One live block's own accounting (locked). */
static const char *block_inconsistency(struct vmap_block *b)
{
	unsigned used = 0, i = 0, top = VMAP_BBMAP_BITS - b->free, k, n;

	for (k = 0; k < BLOCK_WORDS; k++)
		used += (unsigned)__builtin_popcountll(b->used[k]);
	if (b->free + b->dirty + used != VMAP_BBMAP_BITS)
		return "free + dirty + mapped pages is not the block size";
	while (i < VMAP_BBMAP_BITS) {
		if (bit_test(b->alias, i) && (bit_test(b->used, i) || i >= top))
			return "an alias page is mapped or was never used";
		if (!b->order[i]) {
			if (bit_test(b->used, i))
				return "a mapped page outside any chunk";
			i++;
			continue;
		}
		n = 1u << (b->order[i] - 1);
		if (i + n > top)
			return "a chunk beyond the used part";
		for (k = i; k < i + n; k++)
			if (!bit_test(b->used, k) || (k > i && b->order[k]))
				return "a chunk's pages are not all its own";
		i += n;
	}
	return NULL;
}

int blocks_check(struct vmap_heap *h, char *msg, size_t len)
{
	struct block_state *st = state_of(h, false);
	uint64_t live = 0, in_space = 0, pos, start;
	struct vmap_block *b;
	struct vmap_range r;
	const char *why;
	size_t i;

	if (!st)
		return 0;
	for (i = 0; i < st->nr_slots; i++) {
		b = atomic_load_explicit(&st->slots[i], memory_order_acquire);
		if (!b)
			continue;
		pthread_mutex_lock(&b->lock);
		start = b->start;
		why = !start ? "an unused record is published" :
		      slot_of(st, start) != &st->slots[i] ?
			       "published in another slot" :
		      b->queue >= st->nr_queues ?
			       "no such queue" :
		      (b->free > 0) != b->queued ?
			       "queued without unused pages, or the reverse" :
			       block_inconsistency(b);
		pthread_mutex_unlock(&b->lock);
		if (why)
			return check_fail(msg, len, why, start);
		/* The space is asked with no block lock held (lock order). */
		if (vmap_find(h->space, start, &r) || r.start != start ||
		    r.end != start + st->block_bytes ||
		    area_kind_of(r.user) != AREA_VMAP_BLOCK)
			return check_fail(msg, len,
					  "not a block area of the space",
					  start);
		live++;
	}
	for (i = 0; i < st->nr_queues; i++) {
		pthread_mutex_lock(&st->queues[i].lock);
		for (b = st->queues[i].head; b; b = b->next) {
			pthread_mutex_lock(&b->lock);
			why = !b->start	    ? "a dead block is queued" :
			      b->queue != i ? "queued on another CPU's queue" :
			      !b->queued ? "on a queue but not marked queued" :
					   NULL;
			start = b->start;
			pthread_mutex_unlock(&b->lock);
			if (why) {
				pthread_mutex_unlock(&st->queues[i].lock);
				return check_fail(msg, len, why, start);
			}
		}
		pthread_mutex_unlock(&st->queues[i].lock);
	}
	for (pos = h->base; !vmap_next(h->space, pos, &r, NULL, NULL);
	     pos = r.end)
		in_space += area_kind_of(r.user) == AREA_VMAP_BLOCK;
	if (in_space != live)
		return check_fail(
			msg, len,
			"block areas of the space are not all published", 0);
	return 0;
}

/*
 * Fork (vmalloc.c's hooks): every lock of @h's blocks, in the layer's
 * order: the queue locks, every record's lock, the spare lock.  Records
 * are only ever prepended to the list, and a block lock may not be taken
 * with the spare lock held, so the list is read under the spare lock,
 * the new records locked without it, and the head checked again.
 */
void blocks_fork_lock(struct vmap_heap *h)
{
	struct block_state *st = state_of(h, false);
	struct vmap_block *head, *locked = NULL, *b;
	unsigned i;

	if (!st)
		return;
	for (i = 0; i < st->nr_queues; i++)
		pthread_mutex_lock(&st->queues[i].lock);
	for (;;) {
		pthread_mutex_lock(&st->spare_lock);
		head = st->records;
		if (head == locked)
			return; /* the spare lock stays held */
		pthread_mutex_unlock(&st->spare_lock);
		for (b = head; b != locked; b = b->next_record)
			pthread_mutex_lock(&b->lock);
		locked = head;
	}
}

/* Release what blocks_fork_lock() took (also in the forked child). */
void blocks_fork_unlock(struct vmap_heap *h)
{
	struct block_state *st = state_of(h, false);
	struct vmap_block *b;
	unsigned i;

	if (!st)
		return;
	pthread_mutex_unlock(&st->spare_lock);
	for (b = st->records; b; b = b->next_record)
		pthread_mutex_unlock(&b->lock);
	for (i = 0; i < st->nr_queues; i++)
		pthread_mutex_unlock(&st->queues[i].lock);
}

/*
 * In a forked child, after the locks are released: a block area that a
 * thread of the parent had taken from the space but not yet published
 * belongs to nobody here.  It goes back to the space (lazily, like a
 * dead block); its record stays unused.
 */
void blocks_fork_child(struct vmap_heap *h)
{
	struct block_state *st = state_of(h, false);
	struct vmap_range r;
	struct vmap_block *b;
	uint64_t pos;

	if (!st)
		return;
	for (pos = h->base; !vmap_next(h->space, pos, &r, NULL, NULL);
	     pos = r.end) {
		if (area_kind_of(r.user) != AREA_VMAP_BLOCK)
			continue;
		b = atomic_load_explicit(slot_of(st, r.start),
					 memory_order_acquire);
		if (!b || b->start != r.start)
			vmap_free(h->space, r.start);
	}
}
