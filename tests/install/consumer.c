/* Built against an installed vmap, by CMake and by pkg-config. */
#include <stdio.h>
#include <vmap.h>

int main(void)
{
	struct vmap_space *s;
	uint64_t a;

	if (vmap_space_create(0x100000, 0x200000, NULL, &s) ||
	    vmap_alloc(s, 4096, 4096, 0, 0, 0, &a) || a != 0x100000 ||
	    vmap_free(s, a) || vmap_check(s, NULL, 0))
		return 1;
	vmap_space_destroy(s);
	printf("installed vmap %s works\n", vmap_version_string());
	return 0;
}
