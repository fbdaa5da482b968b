/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection seams.
 *
 * Every internal memory allocation and thread creation asks fault_hit()
 * first.  Disarmed (always, unless a white-box test armed it) that is one
 * relaxed load.  Armed with fault_arm(sites, n, sticky), the n-th call
 * (from 1) at any of the given sites fails, and with @sticky every later
 * one too; fault_calls() tells how many
 * calls were seen, so a test can iterate n over every site of a workload.
 * Process-wide, not per space: tests that arm it run one workload at a
 * time.
 */
#ifndef VMAP_FAULT_H
#define VMAP_FAULT_H

#include <stdbool.h>

enum fault_site {
	FAULT_VA_ALLOC,	   /* a range record */
	FAULT_THREAD,	   /* the drain thread or a purge helper */
	FAULT_SPACE_ALLOC, /* space, nodes, notifier entries */
	FAULT_NR_SITES
};

#define FAULT_ALL_SITES ((1u << FAULT_NR_SITES) - 1)

bool fault_hit(enum fault_site site);
void fault_arm(unsigned site_mask, long nth, bool sticky);
void fault_disarm(void);
long fault_calls(void);

#endif /* VMAP_FAULT_H */
