/* SPDX-License-Identifier: MIT */
/*
 * vmap-replay - replay an allocation trace deterministically (SPEC 6).
 *
 *   alloc ID SIZE ALIGN [VSTART VEND]
 *   xalloc ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS
 *   reserve ID ADDR SIZE
 *   add BASE LIMIT
 *   free ID
 *   purge
 *
 * One output line per alloc, xalloc and reserve: "ID 0xADDR", or "ID "
 * and the error's name (ENOMEM, EINVAL, EEXIST, EBUSY); an add prints
 * "add ERROR" only when it fails.
 * One thread, synchronous drain: the same trace gives the same output on
 * every machine.  Uses the public API only.
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
		"--limit=0 means 2^64.  Numbers are decimal or 0x hexadecimal.\n"
		"trace lines:\n"
		"  alloc ID SIZE ALIGN [VSTART VEND]   vmap_alloc (the kernel's rules)\n"
		"  xalloc ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS\n"
		"                         vmap_xalloc; FLAGS: 0, or names joined by '|':\n"
		"                         exact, topdown, nopurge, nonblock, bestfit\n"
		"  reserve ID ADDR SIZE   vmap_reserve\n"
		"  add BASE LIMIT         vmap_space_add (LIMIT 0: 2^64)\n"
		"  free ID                vmap_free of what ID holds\n"
		"  purge                  vmap_purge\n"
		"Output: one line per alloc, xalloc and reserve: 'ID 0xADDR' or 'ID ERROR'\n"
		"(ENOMEM, EINVAL, EEXIST, EBUSY); 'add ERROR' only for a failed add.\n",
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
	bool check, stats;
	const char *path;
};

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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->base = 0xffffc90000000000ull;
	o->limit = 0xffffe90000000000ull;
	o->params.nr_nodes = 1;
	o->params.flags = VMAP_DETERMINISTIC;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == 'c' || c == 's') {
			*(c == 'c' ? &o->check : &o->stats) = true;
			continue;
		}
		if (c == 'i' || c == 'x') {
			o->params.flags |= c == 'i' ? VMAP_IMMEDIATE_FREE : VMAP_BESTFIT_INDEX;
			continue;
		}
		if (c == '?') {
			fprintf(stderr, "%s: see --help\n", prog);
			exit(2);
		}
		if (!parse_u64(optarg, &v)) {
			fprintf(stderr, "%s: bad number '%s' (see --help)\n", prog, optarg);
			exit(2);
		}
		switch (c) {
		case 'b': o->base = v; break;
		case 'l': o->limit = v; break;
		case 'p': o->params.page_shift = (uint32_t)(v ? v : 99); break;
		case 'g': o->params.granule = v ? v : 3; break;
		case 'n': o->params.nr_nodes = (uint32_t)(v ? (v > 1000 ? 1000 : v) : 1000); break;
		case 'z': o->params.lazy_max_pages = v; break;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "%s: one trace file at most\n", prog);
		exit(2);
	}
	o->path = optind < argc ? argv[optind] : "-";
	if (!o->params.lazy_max_pages) {
		/* fls(1) * 32 MiB of pages: one CPU, for the same output everywhere. */
		unsigned shift = o->params.page_shift ? o->params.page_shift : 12;

		if (o->params.granule)
			shift = (unsigned)__builtin_ctzll(o->params.granule);

		o->params.lazy_max_pages = shift < 25 ? (32ull << 20) >> shift : 1;
	}
}

static void check_space(struct vmap_space *s, long line)
{
	char msg[256];

	if (vmap_check(s, msg, sizeof(msg))) {
		fprintf(stderr, "%s: line %ld: invariant broken: %s\n", prog, line, msg);
		exit(1);
	}
}

static const char *error_name(int rc)
{
	switch (rc) {
	case -EINVAL: return "EINVAL";
	case -EEXIST: return "EEXIST";
	case -EBUSY: return "EBUSY";
	default: return "ENOMEM";
	}
}

/* Print the outcome of an allocation under @id and remember its range. */
static void record(struct ids *ids, const char *id, int rc, uint64_t addr)
{
	struct slot *sl;

	if (rc) {
		printf("%s %s\n", id, error_name(rc));
		return;
	}
	sl = ids_find(ids, id, true);
	sl->start = addr;
	sl->live = true;
	printf("%s 0x%llx\n", id, (unsigned long long)addr);
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
	for (name = strtok_r(s, "|", &save); name; name = strtok_r(NULL, "|", &save)) {
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
static int replay_xalloc(struct vmap_space *space, char **tok, long line,
			 uint64_t *addr)
{
	struct vmap_request req = { 0 };

	if (!parse_u64(tok[2], &req.size) || !parse_u64(tok[3], &req.align) ||
	    !parse_u64(tok[4], &req.phase) || !parse_u64(tok[5], &req.nocross) ||
	    !parse_u64(tok[6], &req.min) || !parse_u64(tok[7], &req.max))
		die_line(line, "bad number", NULL);
	if (!parse_xflags(tok[8], &req.flags))
		die_line(line, "bad flags (exact, topdown, nopurge, nonblock, bestfit)",
			 tok[8]);
	return vmap_xalloc(space, &req, addr);
}

int main(int argc, char **argv)
{
	char buf[4096], *tok[10], *save, *hash;
	uint64_t size, align, vstart, vend, addr;
	struct vmap_space *space;
	struct ids ids = { 0 };
	struct options o;
	struct slot *sl;
	long line = 0;
	FILE *in;
	int n, rc;

	parse_options(argc, argv, &o);
	in = strcmp(o.path, "-") ? fopen(o.path, "r") : stdin;
	if (!in) {
		fprintf(stderr, "%s: %s: %s\n", prog, o.path, strerror(errno));
		return 2;
	}
	rc = vmap_space_create(o.base, o.limit, &o.params, &space);
	if (rc) {
		fprintf(stderr, "%s: cannot create a space over [0x%llx, 0x%llx): %s\n",
			prog, (unsigned long long)o.base, (unsigned long long)o.limit,
			strerror(-rc));
		return 2;
	}
	while (fgets(buf, sizeof(buf), in)) {
		line++;
		if (!strchr(buf, '\n') && !feof(in))
			die_line(line, "line too long", NULL);
		if ((hash = strchr(buf, '#')))
			*hash = '\0';
		for (n = 0, tok[0] = strtok_r(buf, " \t\r\n", &save); n < 9 && tok[n];)
			tok[++n] = strtok_r(NULL, " \t\r\n", &save);
		if (n == 0)
			continue;
		if (!strcmp(tok[0], "alloc")) {
			if (n != 4 && n != 6)
				die_line(line, "alloc takes ID SIZE ALIGN [VSTART VEND]", NULL);
			check_new_id(&ids, tok[1], line);
			if (!parse_u64(tok[2], &size) || !parse_u64(tok[3], &align))
				die_line(line, "bad number", NULL);
			vstart = vend = 0;
			if (n == 6 && (!parse_u64(tok[4], &vstart) || !parse_u64(tok[5], &vend)))
				die_line(line, "bad number", NULL);
			rc = vmap_alloc(space, size, align, vstart, vend, 0, &addr);
			record(&ids, tok[1], rc, addr);
		} else if (!strcmp(tok[0], "xalloc")) {
			if (n != 9)
				die_line(line, "xalloc takes ID SIZE ALIGN PHASE NOCROSS MIN MAX FLAGS",
					 NULL);
			check_new_id(&ids, tok[1], line);
			rc = replay_xalloc(space, tok, line, &addr);
			record(&ids, tok[1], rc, addr);
		} else if (!strcmp(tok[0], "reserve")) {
			if (n != 4)
				die_line(line, "reserve takes ID ADDR SIZE", NULL);
			check_new_id(&ids, tok[1], line);
			if (!parse_u64(tok[2], &addr) || !parse_u64(tok[3], &size))
				die_line(line, "bad number", NULL);
			rc = vmap_reserve(space, addr, size, 0);
			record(&ids, tok[1], rc, addr);
		} else if (!strcmp(tok[0], "add")) {
			if (n != 3)
				die_line(line, "add takes BASE LIMIT", NULL);
			if (!parse_u64(tok[1], &vstart) || !parse_u64(tok[2], &vend))
				die_line(line, "bad number", NULL);
			rc = vmap_space_add(space, vstart, vend);
			if (rc)
				printf("add %s\n", error_name(rc));
		} else if (!strcmp(tok[0], "free")) {
			if (n != 2)
				die_line(line, "free takes one ID", NULL);
			sl = ids_find(&ids, tok[1], false);
			if (!sl || !sl->live) {
				fprintf(stderr, "%s: line %ld: warning: %s holds no range, skipped\n",
					prog, line, tok[1]);
				continue;
			}
			rc = vmap_free(space, sl->start);
			if (rc) {
				fprintf(stderr, "%s: line %ld: free of %s failed: %s\n", prog,
					line, tok[1], strerror(-rc));
				return 1;
			}
			sl->live = false;
		} else if (!strcmp(tok[0], "purge")) {
			if (n != 1)
				die_line(line, "purge takes no argument", NULL);
			vmap_purge(space);
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
	return 0;
}
