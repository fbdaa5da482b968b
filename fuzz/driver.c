/* SPDX-License-Identifier: MIT */
/*
 * driver.c - replay fuzz inputs without libFuzzer: each argument is a file
 * or a directory of files, fed once to LLVMFuzzerTestOneInput().  Prints
 * "fuzz_replay: N passed, 0 failed" (a failing input aborts).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	static uint8_t buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		perror(path);
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096];
	struct dirent *e;
	struct stat sb;
	long done = 0;
	DIR *d;
	int i;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb)) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(sb.st_mode)) {
			if (run_file(argv[i]))
				return 1;
			done++;
			continue;
		}
		d = opendir(argv[i]);
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
				 e->d_name);
			if (run_file(path))
				return 1;
			done++;
		}
		if (d)
			closedir(d);
	}
	printf("fuzz_replay: %ld passed, 0 failed\n", done);
	return done ? 0 : 77;
}
