/* SPDX-License-Identifier: MIT */
/*
 * trace.c - recording a space's operations as a vmap-replay trace
 * (format in docs/DESIGN.md section 10; hooks and their rules in
 * trace.h).
 *
 * Locks: the trace lock (recursive) serialises the space's changing calls
 * while it records and guards the file; it is taken before the purge
 * mutex (internal.h).  Line buffering puts every line in the file as it
 * is written, so a process that never destroys its space (the vmalloc
 * layer's default heap) or dies still leaves a complete recording.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fault.h"
#include "internal.h"
#include "os.h"

struct trace {
	pthread_mutex_t lock;
	FILE *out;
	/*
	 * Written by the holder: how deep it holds the lock, and its
	 * cancellation state from before, restored when it lets go (a line
	 * is written through cancellation points, and a thread cancelled
	 * there must not leave the lock held).
	 */
	unsigned depth;
	int cancel_state;
};

/* Spaces that opened a recording so far in this process, for file names. */
static atomic_uint traced_spaces;

int trace_open(struct vmap_space *s)
{
	/* secure_getenv: a set-user-ID program never writes where it is told. */
	const char *path = secure_getenv("VMAP_TRACE");
	pthread_mutexattr_t attr;
	struct trace *t;
	char name[4096];
	unsigned n;
	int len, rc;

	s->trace = NULL;
	if (!path || !*path)
		return 0;
	n = atomic_fetch_add(&traced_spaces, 1) + 1;
	if (n == 1)
		len = snprintf(name, sizeof(name), "%s", path);
	else
		len = snprintf(name, sizeof(name), "%s.%u", path, n);
	if (len < 0 || (size_t)len >= sizeof(name))
		return -ENAMETOOLONG;
	if (fault_hit(FAULT_SPACE_ALLOC))
		return -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->out = fopen(name, "w");
	if (!t->out) {
		rc = -errno;
		free(t);
		return rc;
	}
	setvbuf(t->out, NULL, _IOLBF, 0);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&t->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	fprintf(t->out,
		"# vmap-trace 5 base=0x%llx limit=0x%llx page_shift=%u nodes=%u flags=0x%x lazy_max_pages=%llu\n",
		(unsigned long long)space_first(s),
		(unsigned long long)(space_last(s) + 1), s->page_shift,
		s->nr_nodes, s->flags, (unsigned long long)s->lazy_max_pages);
	s->trace = t;
	return 0;
}

void trace_close(struct vmap_space *s)
{
	struct trace *t = s->trace;

	if (!t)
		return;
	fclose(t->out);
	pthread_mutex_destroy(&t->lock);
	free(t);
	s->trace = NULL;
}

void trace_lock_slow(struct trace *t)
{
	pthread_mutex_lock(&t->lock);
	if (!t->depth++)
		t->cancel_state = os_cancel_off();
}

void trace_unlock_slow(struct trace *t)
{
	int cancel_state = t->cancel_state;

	if (--t->depth) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	pthread_mutex_unlock(&t->lock);
	os_cancel_restore(cancel_state);
}

/*
 * In a forked child (the fork handler held the lock, so no line is half
 * written): the file is the parent's, so the child stops recording.  The
 * lock belonged to a thread the child does not have; it is dropped with
 * the rest.
 */
void trace_fork_child(struct vmap_space *s)
{
	if (!s->trace)
		return;
	fclose(s->trace->out);
	free(s->trace);
	s->trace = NULL;
}

/* The comment that ends every line: who did it, on which CPU, when. */
static void line_end(struct vmap_space *s, unsigned cpu, const char *extra)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(s->trace->out, " # cpu=%u tid=%ld ns=%llu%s\n", cpu,
		os_thread_id(),
		(unsigned long long)now.tv_sec * 1000000000ull +
			(unsigned long long)now.tv_nsec,
		extra);
}

static const char *error_name(int rc)
{
	switch (rc) {
	case -EINVAL:
		return "EINVAL";
	case -EBUSY:
		return "EBUSY";
	case -ENOMEM:
		return "ENOMEM";
	case -EEXIST:
		return "EEXIST";
	default:
		return "EUCLEAN";
	}
}

/*
 * A successful allocation is named by its address, which no other live
 * range can have: frees then need no table, and the name stays valid in
 * a replay that places it elsewhere.  Failures are all called "none".
 */
/* The comment's result: the address, or the error's name. */
static void result_comment(char *buf, size_t len, int rc, uint64_t addr)
{
	if (rc)
		snprintf(buf, len, " ret=%s", error_name(rc));
	else
		snprintf(buf, len, " ret=0x%llx", (unsigned long long)addr);
}

/* The ID of an allocation's line: its address, or "none" for a failure. */
static void write_id(FILE *out, int rc, uint64_t addr)
{
	if (rc)
		fputs("none", out);
	else
		fprintf(out, "0x%llx", (unsigned long long)addr);
}

void trace_alloc(struct vmap_space *s, unsigned cpu, uint64_t size,
		 uint64_t align, uint64_t vstart, uint64_t vend, unsigned flags,
		 int rc, uint64_t addr)
{
	FILE *out = s->trace->out;
	char ret[40], extra[64];

	fputs("alloc ", out);
	write_id(out, rc, addr);
	fprintf(out, " %llu %llu", (unsigned long long)size,
		(unsigned long long)align);
	if (vstart || vend)
		fprintf(out, " 0x%llx 0x%llx", (unsigned long long)vstart,
			(unsigned long long)vend);
	result_comment(ret, sizeof(ret), rc, addr);
	snprintf(extra, sizeof(extra), " flags=0x%x%s", flags, ret);
	line_end(s, cpu, extra);
}

void trace_xalloc(struct vmap_space *s, unsigned cpu,
		  const struct vmap_request *req, int rc, uint64_t addr)
{
	static const struct {
		unsigned flag;
		const char *name;
	} names[] = {
		{ VMAP_EXACT_FIT, "exact" }, { VMAP_TOPDOWN, "topdown" },
		{ VMAP_NOPURGE, "nopurge" }, { VMAP_NONBLOCK, "nonblock" },
		{ VMAP_BESTFIT, "bestfit" },
	};
	FILE *out = s->trace->out;
	const char *sep = " ";
	char extra[64];
	size_t i;

	fputs("xalloc ", out);
	write_id(out, rc, addr);
	fprintf(out, " %llu %llu %llu %llu 0x%llx 0x%llx",
		(unsigned long long)req->size, (unsigned long long)req->align,
		(unsigned long long)req->phase,
		(unsigned long long)req->nocross, (unsigned long long)req->min,
		(unsigned long long)req->max);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (req->flags & names[i].flag) {
			fprintf(out, "%s%s", sep, names[i].name);
			sep = "|";
		}
	}
	if (!(req->flags & (VMAP_EXACT_FIT | VMAP_TOPDOWN | VMAP_NOPURGE |
			    VMAP_NONBLOCK | VMAP_BESTFIT)))
		fputs(" 0", out);
	result_comment(extra, sizeof(extra), rc, addr);
	line_end(s, cpu, extra);
}

void trace_reserve(struct vmap_space *s, unsigned cpu, uint64_t addr,
		   uint64_t size, int rc)
{
	char extra[64];

	fputs("reserve ", s->trace->out);
	write_id(s->trace->out, rc, addr);
	fprintf(s->trace->out, " 0x%llx %llu", (unsigned long long)addr,
		(unsigned long long)size);
	result_comment(extra, sizeof(extra), rc, addr);
	line_end(s, cpu, extra);
}

void trace_add(struct vmap_space *s, uint64_t base, uint64_t limit)
{
	fprintf(s->trace->out, "add 0x%llx 0x%llx", (unsigned long long)base,
		(unsigned long long)limit);
	line_end(s, this_cpu(s), "");
}

void trace_free(struct vmap_space *s, uint64_t addr)
{
	fprintf(s->trace->out, "free 0x%llx", (unsigned long long)addr);
	line_end(s, this_cpu(s), "");
}

/*
 * A full purge is the first step of the allocation it is written before:
 * replayed from the same state, that allocation fails the same way and
 * purges the same way by itself, so the line is a comment for readers.
 */
void trace_purge(struct vmap_space *s, bool full)
{
	fputs(full ? "# full purge by the allocation below" : "purge",
	      s->trace->out);
	line_end(s, this_cpu(s), "");
}

void trace_shrink(struct vmap_space *s)
{
	fputs("shrink", s->trace->out);
	line_end(s, this_cpu(s), "");
}
