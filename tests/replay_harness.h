/* SPDX-License-Identifier: MIT */
/*
 * replay_harness.h - what the tests that run vmap-replay share: its path
 * (argv[1]), a scratch directory removed at the end, and reading a file
 * the tool wrote.  Include after harness.h.
 */
#ifndef VMAP_TEST_REPLAY_HARNESS_H
#define VMAP_TEST_REPLAY_HARNESS_H

#include <stdlib.h>

static const char *replay;
static char dir[] = "/tmp/vmap-replay-XXXXXX";

/* The first @len - 1 bytes of @path, NUL-terminated ("" if unreadable). */
static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

/* test_main() with vmap-replay's path from argv[1] and @dir made and removed. */
static int replay_test_main(int argc, char **argv, struct test *tests)
{
	char cmd[300];
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-vmap-replay\n", argv[0]);
		return 2;
	}
	replay = argv[1];
	if (!mkdtemp(dir))
		return 1;
	rc = test_main(argc, argv, tests);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		rc = rc ? rc : 1;
	return rc;
}

#endif /* VMAP_TEST_REPLAY_HARNESS_H */
