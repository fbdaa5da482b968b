/* SPDX-License-Identifier: MIT */
/*
 * fork.h - how a layer above the space API (the vmalloc layer) keeps its
 * own locks consistent across fork(): it registers hooks once, and the
 * fork handlers (fork.c) call @prepare after taking every lock of every
 * space, which the layer's locks rank below, and @parent / @child before
 * releasing them.  @child runs in the forked child, single-threaded,
 * after every space is usable again, so it may call the space API.
 */
#ifndef VMAP_FORK_H
#define VMAP_FORK_H

struct fork_hooks {
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(void);
};

/* At most FORK_HOOKS_MAX layers; @hooks must outlive the process. */
#define FORK_HOOKS_MAX 4
void fork_hooks_add(const struct fork_hooks *hooks);

#endif /* VMAP_FORK_H */
