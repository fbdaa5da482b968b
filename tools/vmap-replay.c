/* SPDX-License-Identifier: MIT */
/*
 * vmap-replay - replay an allocation trace deterministically
 * (docs/DESIGN.md section 10).
 *
 *   alloc ID SIZE ALIGN [VSTART VEND]
 *   xalloc ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS
 *   reserve ID ADDR SIZE
 *   add BASE LIMIT
 *   free ID
 *   purge
 *   shrink
 *
 * One output line per alloc, xalloc and reserve: "ID 0xADDR", or "ID "
 * and the error's name (ENOMEM, EINVAL, EEXIST, EBUSY); an add prints
 * "add ERROR" only when it fails.  One thread, synchronous drain: the same trace gives the
 * same output on every machine.  A recording (VMAP_TRACE) starts with a
 * "# vmap-trace" line giving the space, and its lines end in comments
 * with the CPU, the flags and the result of each call: the replay
 * rebuilds that space, purges only where the recording did, allocates on
 * the recorded CPU's node and counts results that differ.  At the end,
 * the free heap's fragmentation goes to stderr.  Uses the public API
 * only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmap.h"

#define MAX_ID 128

static const char *prog = "vmap-replay";

/* IDs are any tokens: an open-addressing table maps them to live starts. */
struct slot {
	char id[MAX_ID];
	uint64_t start;
	bool used, live;
};

struct ids {
	struct slot *slots;
	size_t cap, used;
};

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static struct slot *ids_find(struct ids *t, const char *id, bool create);

static void ids_grow(struct ids *t)
{
	struct ids old = *t;
	struct slot *s;
	size_t i;

	t->cap = old.cap ? old.cap * 2 : 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	t->used = 0;
	if (!t->slots) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	for (i = 0; i < old.cap; i++) {
		if (!old.slots[i].used || !old.slots[i].live)
			continue;
		s = ids_find(t, old.slots[i].id, true);
		s->start = old.slots[i].start;
		s->live = true;
	}
	free(old.slots);
}

static struct slot *ids_find(struct ids *t, const char *id, bool create)
{
	size_t i;

	if (create && (t->used + 1) * 2 > t->cap)
		ids_grow(t);
	if (!t->cap)
		return NULL;
	for (i = hash_id(id) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		if (!t->slots[i].used) {
			if (!create)
				return NULL;
			t->slots[i].used = true;
			snprintf(t->slots[i].id, MAX_ID, "%s", id);
			t->used++;
			return &t->slots[i];
		}
		if (!strcmp(t->slots[i].id, id))
			return &t->slots[i];
	}
}

/* Decimal, or hexadecimal with 0x; nothing else, and no trailing junk. */
static bool parse_u64(const char *s, uint64_t *out)
{
	int base = 10;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return false;
	}
	errno = 0;
	*out = strtoull(s, &end, base);
	return !errno && !*end;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [options] [TRACE]    (TRACE omitted or '-': stdin)\n"
		"  --base=ADDR            space start (default 0xffffc90000000000)\n"
		"  --limit=ADDR           space end (default 0xffffe90000000000)\n"
		"  --page-shift=N         page size 2^N, 12..30 (default 12)\n"
		"  --nodes=N              vmap nodes, 1..128 (default 1)\n"
		"  --granule=N            granule in bytes, a power of two 1..2^30\n"
		"                         (instead of --page-shift)\n"
		"  --lazy-max-pages=N     purge threshold (default: the kernel's formula for one CPU)\n"
		"  --immediate-free       frees are immediate (VMAP_IMMEDIATE_FREE)\n"
		"  --bestfit-index        keep the size index bestfit needs (VMAP_BESTFIT_INDEX)\n"
		"  --check                run the invariant checker after every line\n"
		"  --stats                print the space's counters on stderr at the end\n"
		"  --verify               exit 1 if an allocation differs from the recording\n"
		"--limit=0 means 2^64.  Numbers are decimal or 0x hexadecimal.\n"
		"trace lines:\n"
		"  alloc ID SIZE ALIGN [VSTART VEND]   vmap_alloc (the kernel's rules)\n"
		"  xalloc ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS\n"
		"                         vmap_xalloc; FLAGS: 0, or names joined by '|':\n"
		"                         exact, topdown, nopurge, nonblock, bestfit\n"
		"  reserve ID ADDR SIZE   vmap_reserve\n"
		"  add BASE LIMIT         vmap_space_add (LIMIT 0: 2^64)\n"
		"  free ID                vmap_free of what ID holds\n"
		"  purge, shrink          vmap_purge, vmap_shrink\n"
		"Output: one line per alloc, xalloc and reserve: 'ID 0xADDR' or 'ID ERROR'\n"
		"(ENOMEM, EINVAL, EEXIST, EBUSY); 'add ERROR' only for a failed add.\n"
		"A recording's header sets the space unless options override it.\n",
		prog);
}

static void die_line(long line, const char *msg, const char *detail)
{
	fprintf(stderr, "%s: line %ld: %s%s%s\n", prog, line, msg,
		detail ? ": " : "", detail ? detail : "");
	exit(2);
}

struct options {
	uint64_t base, limit;
	struct vmap_params params;
	bool check, stats, verify;
	const char *path;
	/* Which of base, limit, page-shift, nodes, lazy-max-pages were given. */
	bool given[5];
};

enum { GIVEN_BASE, GIVEN_LIMIT, GIVEN_SHIFT, GIVEN_NODES, GIVEN_LAZY };

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "base", required_argument, NULL, 'b' },
		{ "limit", required_argument, NULL, 'l' },
		{ "page-shift", required_argument, NULL, 'p' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "granule", required_argument, NULL, 'g' },
		{ "lazy-max-pages", required_argument, NULL, 'z' },
		{ "immediate-free", no_argument, NULL, 'i' },
		{ "bestfit-index", no_argument, NULL, 'x' },
		{ "check", no_argument, NULL, 'c' },
		{ "stats", no_argument, NULL, 's' },
		{ "verify", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->base = 0xffffc90000000000ull;
	o->limit = 0xffffe90000000000ull;
	o->params.nr_nodes = 1;
	o->params.flags = VMAP_DETERMINISTIC | VMAP_KERNEL_POOLS;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == 'c' || c == 's' || c == 'v') {
			*(c == 'c' ? &o->check :
			  c == 's' ? &o->stats :
				     &o->verify) = true;
			continue;
		}
		if (c == 'i' || c == 'x') {
			o->params.flags |= c == 'i' ? VMAP_IMMEDIATE_FREE :
						      VMAP_BESTFIT_INDEX;
			continue;
		}
		if (c == '?') {
			fprintf(stderr, "%s: see --help\n", prog);
			exit(2);
		}
		if (!parse_u64(optarg, &v)) {
			fprintf(stderr, "%s: bad number '%s' (see --help)\n",
				prog, optarg);
			exit(2);
		}
		switch (c) {
		case 'b':
			o->base = v;
			o->given[GIVEN_BASE] = true;
			break;
		case 'l':
			o->limit = v;
			o->given[GIVEN_LIMIT] = true;
			break;
		case 'p':
			o->params.page_shift = (uint32_t)(v ? v : 99);
			o->given[GIVEN_SHIFT] = true;
			break;
		case 'n':
			o->params.nr_nodes =
				(uint32_t)(v ? (v > 1000 ? 1000 : v) : 1000);
			o->given[GIVEN_NODES] = true;
			break;
		case 'g':
			o->params.granule = v ? v : 3;
			o->given[GIVEN_SHIFT] = true;
			break;
		case 'z':
			o->params.lazy_max_pages = v;
			o->given[GIVEN_LAZY] = true;
			break;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "%s: one trace file at most\n", prog);
		exit(2);
	}
	o->path = optind < argc ? argv[optind] : "-";
}

static void check_space(struct vmap_space *s, long line)
{
	char msg[256];

	if (vmap_check(s, msg, sizeof(msg))) {
		fprintf(stderr, "%s: line %ld: invariant broken: %s\n", prog,
			line, msg);
		exit(1);
	}
}

/*
 * The value of KEY=VALUE among the blank-separated words of @text, copied
 * into @buf; NULL if absent.
 */
static const char *field(const char *text, const char *key, char *buf,
			 size_t len)
{
	size_t klen = strlen(key), n;
	const char *p = text;

	while ((p = strstr(p, key))) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\t') &&
		    p[klen] == '=') {
			p += klen + 1;
			n = strcspn(p, " \t\r\n");
			if (n >= len)
				n = len - 1;
			memcpy(buf, p, n);
			buf[n] = '\0';
			return buf;
		}
		p += klen;
	}
	return NULL;
}

/*
 * A recording's header: the space it was made on, for every parameter the
 * options leave open.  Its purges are all in the file, so the replay never
 * purges on its own unless --lazy-max-pages asks for it.
 */
static void read_header(const char *text, struct options *o, long line)
{
	static const char *const keys[] = { "base", "limit", "page_shift",
					    "nodes" };
	char buf[64];
	uint64_t v, flags = 0, recorded_nodes = 0;
	unsigned long version;
	unsigned i;

	for (i = 0; i < 4; i++) {
		if (!field(text, keys[i], buf, sizeof(buf)))
			continue;
		if (!parse_u64(buf, &v))
			die_line(line, "bad number in the recording's header",
				 buf);
		if (i == GIVEN_NODES)
			recorded_nodes = v;
		if (o->given[i])
			continue;
		if (i == GIVEN_BASE)
			o->base = v;
		else if (i == GIVEN_LIMIT)
			o->limit = v;
		else if (i == GIVEN_SHIFT && v < 12)
			o->params.granule = 1ull << v; /* below a page */
		else if (i == GIVEN_SHIFT)
			o->params.page_shift = (uint32_t)v;
		else
			o->params.nr_nodes = (uint32_t)v;
	}
	if (field(text, "flags", buf, sizeof(buf)) && parse_u64(buf, &flags))
		o->params.flags |= (uint32_t)flags &
				   (VMAP_TAG_BY_ADDRESS | VMAP_IMMEDIATE_FREE |
				    VMAP_BESTFIT_INDEX);
	/*
	 * Version 1 was written before the refilling pools, when every
	 * space had the kernel's; from version 2 the flags say which.  Up to
	 * version 2 a recorded space of one node had no pools whatever its
	 * flags (and keeps none with --nodes); from version 3 one node keeps
	 * the default pools too.  Before version 4 a purge filled default
	 * pools without the demand quota, and before version 5 a busy node's
	 * idle pools decayed at every purge, not at its decay points; this
	 * library does neither any more, so such a replay may place
	 * differently, and says so.
	 */
	version = strtoul(text + strlen(" vmap-trace "), NULL, 10);
	if (version >= 2 && !(flags & VMAP_KERNEL_POOLS) &&
	    (version >= 3 || recorded_nodes != 1)) {
		o->params.flags &= ~(uint32_t)VMAP_KERNEL_POOLS;
		if (version < 5)
			fprintf(stderr,
				"%s: line %ld: a vmap-trace %lu recording of refilling pools, which filled and decayed otherwise before version 5: placement may differ\n",
				prog, line, version);
	}
	if (!o->given[GIVEN_LAZY])
		o->params.lazy_max_pages = UINT64_MAX;
}

static struct vmap_space *space_create(struct options *o)
{
	struct vmap_space *space;
	int rc = vmap_space_create(o->base, o->limit, &o->params, &space);

	if (rc) {
		fprintf(stderr,
			"%s: cannot create a space over [0x%llx, 0x%llx): %s\n",
			prog, (unsigned long long)o->base,
			(unsigned long long)o->limit, strerror(-rc));
		exit(2);
	}
	return space;
}

static const char *result_name(int rc, uint64_t addr, char *buf, size_t len)
{
	switch (rc) {
	case 0:
		snprintf(buf, len, "0x%llx", (unsigned long long)addr);
		return buf;
	case -EINVAL:
		return "EINVAL";
	case -EBUSY:
		return "EBUSY";
	case -EEXIST:
		return "EEXIST";
	default:
		return "ENOMEM";
	}
}

/* A new ID: not too long, not holding a range. */
static void check_new_id(struct ids *ids, const char *id, long line)
{
	struct slot *sl;

	if (strlen(id) >= MAX_ID)
		die_line(line, "ID too long", id);
	sl = ids_find(ids, id, false);
	if (sl && sl->live)
		die_line(line, "ID already holds a range", id);
}

/* What the replay compares against a recording. */
struct recording {
	bool on; /* a "# vmap-trace" header was read */
	unsigned long allocs, differ;
};

/*
 * Print the outcome of an allocation under @id, remember its range, and
 * compare it with the recording's result when there is one.
 */
static void settle(struct ids *ids, const char *id, int rc, uint64_t addr,
		   const char *comment, struct recording *rec, long line)
{
	char buf[64], result_buf[32];
	const char *want, *result;
	struct slot *sl;

	/* A recorded failure ("none") that succeeds here stays unnamed. */
	if (rc == 0 && !(rec->on && !strcmp(id, "none"))) {
		sl = ids_find(ids, id, true);
		sl->start = addr;
		sl->live = true;
	}
	result = result_name(rc, addr, result_buf, sizeof(result_buf));
	printf("%s %s\n", id, result);
	if (!rec->on || !(want = field(comment, "ret", buf, sizeof(buf))))
		return;
	rec->allocs++;
	if (strcmp(want, result) && !rec->differ++)
		fprintf(stderr,
			"%s: line %ld: recorded %s, replayed %s (first difference)\n",
			prog, line, want, result);
}

static void replay_alloc(struct vmap_space *space, struct ids *ids, char **tok,
			 int n, const char *comment, struct recording *rec,
			 long line)
{
	uint64_t size, align, vstart = 0, vend = 0, addr = 0, flags = 0;
	char buf[64];
	int rc;

	if (n != 4 && n != 6)
		die_line(line, "alloc takes ID SIZE ALIGN [VSTART VEND]", NULL);
	check_new_id(ids, tok[1], line);
	if (!parse_u64(tok[2], &size) || !parse_u64(tok[3], &align))
		die_line(line, "bad number", NULL);
	if (n == 6 &&
	    (!parse_u64(tok[4], &vstart) || !parse_u64(tok[5], &vend)))
		die_line(line, "bad number", NULL);
	if (rec->on && field(comment, "flags", buf, sizeof(buf)) &&
	    !parse_u64(buf, &flags))
		die_line(line, "bad flags", buf);
	rc = vmap_alloc(space, size, align, vstart, vend, (unsigned)flags,
			&addr);
	settle(ids, tok[1], rc, addr, comment, rec, line);
}

/* "0", or flag names joined by '|'. */
static bool parse_xflags(char *s, uint32_t *flags)
{
	static const struct {
		const char *name;
		uint32_t flag;
	} names[] = {
		{ "exact", VMAP_EXACT_FIT }, { "topdown", VMAP_TOPDOWN },
		{ "nopurge", VMAP_NOPURGE }, { "nonblock", VMAP_NONBLOCK },
		{ "bestfit", VMAP_BESTFIT },
	};
	char *name, *save;
	size_t i;

	*flags = 0;
	if (!strcmp(s, "0"))
		return true;
	for (name = strtok_r(s, "|", &save); name;
	     name = strtok_r(NULL, "|", &save)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(name, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return false;
		*flags |= names[i].flag;
	}
	return true;
}

/* xalloc ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS */
static void replay_xalloc(struct vmap_space *space, struct ids *ids, char **tok,
			  int n, const char *comment, struct recording *rec,
			  long line)
{
	struct vmap_request req = { 0 };
	uint64_t addr = 0;
	int rc;

	if (n != 9)
		die_line(
			line,
			"xalloc takes ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS",
			NULL);
	check_new_id(ids, tok[1], line);
	if (!parse_u64(tok[2], &req.size) || !parse_u64(tok[3], &req.align) ||
	    !parse_u64(tok[4], &req.phase) ||
	    !parse_u64(tok[5], &req.nocross) || !parse_u64(tok[6], &req.min) ||
	    !parse_u64(tok[7], &req.max))
		die_line(line, "bad number", NULL);
	if (!parse_xflags(tok[8], &req.flags))
		die_line(
			line,
			"bad flags (exact, topdown, nopurge, nonblock, bestfit)",
			tok[8]);
	rc = vmap_xalloc(space, &req, &addr);
	settle(ids, tok[1], rc, addr, comment, rec, line);
}

/* reserve ID ADDR SIZE */
static void replay_reserve(struct vmap_space *space, struct ids *ids,
			   char **tok, int n, const char *comment,
			   struct recording *rec, long line)
{
	uint64_t addr, size;
	int rc;

	if (n != 4)
		die_line(line, "reserve takes ID ADDR SIZE", NULL);
	check_new_id(ids, tok[1], line);
	if (!parse_u64(tok[2], &addr) || !parse_u64(tok[3], &size))
		die_line(line, "bad number", NULL);
	rc = vmap_reserve(space, addr, size, 0);
	settle(ids, tok[1], rc, addr, comment, rec, line);
}

/* Fragmentation of the space as the trace left it, on stderr. */
static void report_fragmentation(struct vmap_space *space)
{
	struct vmap_stats st = { .size = sizeof(st) };

	vmap_stats_get(space, -1, &st);
	fprintf(stderr,
		"%s: free %llu bytes in %llu blocks, largest %llu bytes; lazy %llu pages; pooled %llu pages\n",
		prog, (unsigned long long)st.free_bytes,
		(unsigned long long)st.free_blocks,
		(unsigned long long)st.largest_free,
		(unsigned long long)st.lazy_pages,
		(unsigned long long)st.pooled_pages);
}

int main(int argc, char **argv)
{
	char buf[4096], *tok[10], *save, *hash, *comment;
	struct vmap_space *space = NULL;
	struct recording rec = { 0 };
	struct ids ids = { 0 };
	struct options o;
	struct slot *sl;
	char cpu_buf[32];
	uint64_t cpu;
	long line = 0;
	FILE *in;
	int n, rc;

	parse_options(argc, argv, &o);
	in = strcmp(o.path, "-") ? fopen(o.path, "r") : stdin;
	if (!in) {
		fprintf(stderr, "%s: %s: %s\n", prog, o.path, strerror(errno));
		return 2;
	}
	while (fgets(buf, sizeof(buf), in)) {
		line++;
		if (!strchr(buf, '\n') && !feof(in))
			die_line(line, "line too long", NULL);
		comment = "";
		if ((hash = strchr(buf, '#'))) {
			*hash = '\0';
			comment = hash + 1;
		}
		if (!space && !strncmp(comment, " vmap-trace ", 12)) {
			read_header(comment, &o, line);
			rec.on = true;
			continue;
		}
		for (n = 0, tok[0] = strtok_r(buf, " \t\r\n", &save);
		     n < 9 && tok[n];)
			tok[++n] = strtok_r(NULL, " \t\r\n", &save);
		if (n == 0)
			continue;
		if (!space)
			space = space_create(&o);
		if (rec.on && field(comment, "cpu", cpu_buf, sizeof(cpu_buf))) {
			if (!parse_u64(cpu_buf, &cpu) || cpu > INT32_MAX)
				die_line(line, "bad cpu", cpu_buf);
			vmap_set_thread_cpu((int)cpu);
		}
		if (!strcmp(tok[0], "alloc")) {
			replay_alloc(space, &ids, tok, n, comment, &rec, line);
		} else if (!strcmp(tok[0], "xalloc")) {
			replay_xalloc(space, &ids, tok, n, comment, &rec, line);
		} else if (!strcmp(tok[0], "reserve")) {
			replay_reserve(space, &ids, tok, n, comment, &rec,
				       line);
		} else if (!strcmp(tok[0], "add")) {
			uint64_t base, limit;

			if (n != 3)
				die_line(line, "add takes BASE LIMIT", NULL);
			if (!parse_u64(tok[1], &base) ||
			    !parse_u64(tok[2], &limit))
				die_line(line, "bad number", NULL);
			rc = vmap_space_add(space, base, limit);
			if (rc) {
				char result[32];

				printf("add %s\n", result_name(rc, 0, result,
							       sizeof(result)));
			}
		} else if (!strcmp(tok[0], "free")) {
			if (n != 2)
				die_line(line, "free takes one ID", NULL);
			sl = ids_find(&ids, tok[1], false);
			if (!sl || !sl->live) {
				fprintf(stderr,
					"%s: line %ld: warning: %s holds no range, skipped\n",
					prog, line, tok[1]);
				continue;
			}
			rc = vmap_free(space, sl->start);
			if (rc) {
				fprintf(stderr,
					"%s: line %ld: free of %s failed: %s\n",
					prog, line, tok[1], strerror(-rc));
				return 1;
			}
			sl->live = false;
		} else if (!strcmp(tok[0], "purge")) {
			if (n != 1)
				die_line(line, "purge takes no argument", NULL);
			vmap_purge(space);
		} else if (!strcmp(tok[0], "shrink")) {
			if (n != 1)
				die_line(line, "shrink takes no argument",
					 NULL);
			vmap_shrink(space);
		} else {
			die_line(line, "unknown operation", tok[0]);
		}
		if (o.check)
			check_space(space, line);
	}
	if (ferror(in)) {
		fprintf(stderr, "%s: %s: read error\n", prog, o.path);
		return 2;
	}
	if (!space)
		space = space_create(&o);
	report_fragmentation(space);
	if (rec.on)
		fprintf(stderr,
			"%s: %lu recorded allocations, %lu replayed differently\n",
			prog, rec.allocs, rec.differ);
	if (o.stats) {
		struct vmap_stats st = { .size = sizeof(st) };

		vmap_stats_get(space, -1, &st);
		vmap_stats_print(&st, stderr, 0);
	}
	vmap_space_destroy(space);
	free(ids.slots);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "%s: write error\n", prog);
		return 1;
	}
	return o.verify && rec.differ ? 1 : 0;
}
