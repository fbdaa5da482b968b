/* SPDX-License-Identifier: MIT */
/*
 * test_rcu.c - vfree_rcu() on userspace RCU: readers inside
 * vmap_rcu_read_lock() keep reading the area they found while a writer
 * replaces it and frees the old one with vfree_rcu (one- and two-argument
 * shapes, alternately) and purges, so freed memory is released (reads
 * zero) and, under ASan, poisoned: a reader that saw a freed area would
 * read zeros or be reported.  Run under TSan by make check.  Also: frees
 * are done after vmap_rcu_barrier(), and bad input.  Skipped (77) when
 * the library was built without liburcu.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vmap.h"

#define READERS 2
#define AREA_BYTES 8192
#define MAGIC 0x5a

struct obj {
	struct vmap_rcu_head rcu;
	unsigned char data[AREA_BYTES - sizeof(struct vmap_rcu_head)];
};

struct shared {
	struct vmap_heap *h;
	_Atomic(struct obj *) current;
	atomic_bool stop;
	atomic_int errors;
	atomic_long reads;
};

static void need_rcu(void)
{
	if (vmap_rcu_register_thread() == -ENOSYS)
		test_skip("liburcu-dev not installed");
}

static void *reader(void *arg)
{
	struct shared *sh = arg;
	struct obj *o;
	size_t i;

	vmap_rcu_register_thread();
	while (!atomic_load(&sh->stop)) {
		vmap_rcu_read_lock();
		o = atomic_load_explicit(&sh->current, memory_order_acquire);
		for (i = 0; i < sizeof(o->data); i += 61)
			if (o->data[i] != MAGIC) {
				atomic_fetch_add(&sh->errors, 1);
				break;
			}
		vmap_rcu_read_unlock();
		atomic_fetch_add(&sh->reads, 1);
	}
	vmap_rcu_unregister_thread();
	return NULL;
}

static struct obj *new_obj(struct vmap_heap *h)
{
	struct obj *o = vmap_heap_vmalloc(h, sizeof(*o));

	if (o)
		memset(o->data, MAGIC, sizeof(o->data));
	return o;
}

TEST(readers_never_see_freed_areas)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30 };
	struct shared sh = { 0 };
	pthread_t t[READERS];
	struct obj *o, *old;
	struct vmap_heap_stats st = { .size = sizeof(st) };
	long i, n = scaled(20000);
	unsigned k;

	need_rcu();
	assert_int(vmap_heap_create(&p, &sh.h), ==, 0);
	o = new_obj(sh.h);
	assert_true(o != NULL);
	atomic_store(&sh.current, o);
	for (k = 0; k < READERS; k++)
		assert_int(pthread_create(&t[k], NULL, reader, &sh), ==, 0);
	for (i = 0; i < n; i++) {
		o = new_obj(sh.h);
		assert_true(o != NULL);
		old = atomic_exchange_explicit(&sh.current, o,
					       memory_order_acq_rel);
		if (i % 2)
			expect_int(vmap_heap_vfree_rcu(sh.h, old), ==, 0);
		else
			expect_int(
				vmap_heap_vfree_rcu_head(sh.h, old, &old->rcu),
				==, 0);
		if (i % 64 == 0)
			vmap_purge(vmap_heap_space(sh.h));
	}
	atomic_store(&sh.stop, true);
	for (k = 0; k < READERS; k++)
		pthread_join(t[k], NULL);
	expect_int(atomic_load(&sh.errors), ==, 0);
	expect_true(atomic_load(&sh.reads) > 0);
	/* After the barrier only the current area is live. */
	vmap_rcu_barrier();
	assert_int(vmap_heap_stats(sh.h, &st), ==, 0);
	expect_u64(st.live_areas, ==, 1);
	vmap_heap_vfree(sh.h, atomic_load(&sh.current));
	assert_space_ok(vmap_heap_space(sh.h));
	vmap_heap_destroy(sh.h);
	vmap_rcu_unregister_thread();
}

/* The default heap and the kernel's macro shapes; destroy drains. */
TEST(kernel_shapes_and_destroy_drains)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30 };
	struct vmap_heap *h;
	struct obj *o;
	int i;

	need_rcu();
	o = vmalloc(sizeof(*o));
	assert_true(o != NULL);
	expect_int(kvfree_rcu(o, rcu), ==, 0);
	o = vmalloc(100);
	assert_true(o != NULL);
	expect_int(kvfree_rcu_mightsleep(o), ==, 0);
	vmap_rcu_barrier();
	assert_int(vmap_heap_create(&p, &h), ==, 0);
	for (i = 0; i < 100; i++)
		expect_int(vmap_heap_vfree_rcu(h, vmap_heap_vmalloc(h, 4096)),
			   ==, 0);
	vmap_heap_destroy(h); /* must wait for the 100 frees */
	vmap_rcu_unregister_thread();
}

TEST(bad_input_refused)
{
	struct vmap_heap_params p = { .reserve_bytes = 1ull << 30 };
	struct vmap_heap *h;
	struct obj *o;
	struct vmap_rcu_head outside;
	char local;

	need_rcu();
	assert_int(vmap_heap_create(&p, &h), ==, 0);
	o = vmap_heap_vmalloc(h, sizeof(*o));
	assert_true(o != NULL);
	expect_int(vmap_heap_vfree_rcu(h, &local), ==, -EINVAL);
	expect_int(vmap_heap_vfree_rcu(h, o->data), ==, -EINVAL);
	expect_int(vmap_heap_vfree_rcu(h, NULL), ==, -EINVAL);
	expect_int(vmap_heap_vfree_rcu_head(h, o, &outside), ==, -EINVAL);
	expect_int(vmap_heap_vfree_rcu_head(
			   h, o,
			   (struct vmap_rcu_head *)((char *)o + sizeof(*o) +
						    4096)),
		   ==, -EINVAL);
	expect_int(vmap_heap_vfree_rcu_head(h, &local, &o->rcu), ==, -EINVAL);
	expect_u64(vmap_heap_size(h, o), ==, sizeof(*o)); /* untouched */
	assert_space_ok(vmap_heap_space(h));
	vmap_heap_vfree(h, o);
	vmap_heap_destroy(h);
	vmap_rcu_unregister_thread();
}

int main(int argc, char **argv)
{
	return test_main(argc, argv,
			 (struct test[]){ T(readers_never_see_freed_areas),
					  T(kernel_shapes_and_destroy_drains),
					  T(bad_input_refused),
					  { 0 } });
}
