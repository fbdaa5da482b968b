/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the fault injection counter (see fault.h).  Its state is
 * atomic and needs no lock.
 */
#include <stdatomic.h>

#include "fault.h"

static atomic_uint armed_sites;
static atomic_long countdown;
static atomic_long calls;
static atomic_bool sticky_fail;

bool fault_hit(enum fault_site site)
{
	long left;

	if (!(atomic_load_explicit(&armed_sites, memory_order_relaxed) &
	      (1u << site)))
		return false;
	atomic_fetch_add(&calls, 1);
	left = atomic_fetch_sub(&countdown, 1);
	return left == 1 || (left < 1 && atomic_load(&sticky_fail));
}

void fault_arm(unsigned site_mask, long nth, bool sticky)
{
	atomic_store(&sticky_fail, sticky);
	atomic_store(&calls, 0);
	atomic_store(&countdown, nth);
	atomic_store(&armed_sites, site_mask);
}

void fault_disarm(void)
{
	atomic_store(&armed_sites, 0);
}

long fault_calls(void)
{
	return atomic_load(&calls);
}
