/* SPDX-License-Identifier: MIT */
/*
 * ring_buffer - a byte ring whose pages are mapped twice, back to back,
 * with vmap(): a record that crosses the end of the ring is written and
 * read with one memcpy, because the bytes after the end are the bytes of
 * the start.  Usage: ring_buffer [PAGES [RECORDS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmap.h>

int main(int argc, char **argv)
{
	size_t pages = argc > 1 ? strtoul(argv[1], NULL, 0) : 4;
	unsigned long records = argc > 2 ? strtoul(argv[2], NULL, 0) : 100000,
		      i;
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size, head = 0, tail = 0;
	struct vmap_heap *h = vmap_default_heap();
	uint64_t *twice;
	char rec[100], got[100], *ring;
	int rc;

	if (!h || !pages || pages > 1024) {
		fprintf(stderr, "ring_buffer: PAGES is 1..1024\n");
		return 2;
	}
	size = pages * page;
	twice = calloc(2 * pages, sizeof(*twice));
	if (!twice || (rc = vmap_pages_alloc(h, pages, twice))) {
		fprintf(stderr, "ring_buffer: no pages\n");
		return 1;
	}
	memcpy(twice + pages, twice, pages * sizeof(*twice));
	ring = vmap(twice, 2 * pages, 0);
	if (!ring) {
		perror("ring_buffer: vmap");
		return 1;
	}
	/* Records of varying length: one producer, one consumer, no wrap code. */
	for (i = 0; i < records; i++) {
		size_t len = 1 + i % sizeof(rec);

		memset(rec, (int)('a' + i % 26), len);
		memcpy(ring + head % size, rec, len);
		head += len;
		memcpy(got, ring + tail % size, len);
		tail += len;
		if (memcmp(got, rec, len)) {
			fprintf(stderr, "ring_buffer: record %lu corrupt\n", i);
			return 1;
		}
	}
	printf("ring_buffer: %lu records, %zu bytes through a %zu-byte ring\n",
	       records, head, size);
	vunmap(ring);
	vmap_pages_free(h, twice, pages);
	free(twice);
	return 0;
}
