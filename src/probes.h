/* SPDX-License-Identifier: MIT */
/*
 * probes.h - USDT probes (provider "vmap") for perf, bpftrace and
 * SystemTap, named and ordered after the kernel's vmalloc tracepoints so
 * that scripts written for one read the other (docs/DESIGN.md section 12).
 *
 *   alloc_vmap_area(addr, size, align, vstart, vend, failed)
 *       (vstart and vend as passed, both 0 for the whole space; failed is
 *       0 or the negative errno, and addr 0 then)
 *   free_vmap_area_noflush(va_start, nr_lazy, nr_lazy_max)
 *       (nr_lazy is 0 for a free that only gathered its pages for a
 *       later batch, lazy.c)
 *   purge_vmap_area_lazy(start, end, npurged)
 *   pool_hit(node, addr, size)      pool_miss(node, size, align)
 *   vmalloc(addr, size, align)      vfree(addr)
 *
 * A probe is one no-op instruction and a note in the ELF file until a
 * tracer attaches.  Each probe has one site: perf attaches to the first
 * site of a name only.  Built where <sys/sdt.h> exists (CMake defines
 * VMAP_HAVE_SDT); elsewhere the macro only evaluates nothing, and its
 * arguments stay "used" so that no build warns about them.
 */
#ifndef VMAP_PROBES_H
#define VMAP_PROBES_H

#ifdef VMAP_HAVE_SDT
#define SDT_USE_VARIADIC
#include <sys/sdt.h>
#define VMAP_PROBE(name, ...) STAP_PROBEV(vmap, name, __VA_ARGS__)
#else
static inline void vmap_probe_off(int unused, ...)
{
	(void)unused;
}
#define VMAP_PROBE(name, ...) vmap_probe_off(0, __VA_ARGS__)
#endif

#endif /* VMAP_PROBES_H */
