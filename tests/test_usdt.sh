#!/usr/bin/env bash
# The built library carries every USDT probe of src/probes.h as an ELF
# note (provider vmap), each at one site, or, when <sys/sdt.h> was missing at build time,
# the test says so and is skipped (77).
# Usage: test_usdt.sh PATH-TO-libvmap.so HAVE_SDT(0|1)
set -u
lib=$1 have_sdt=$2
if [ "$have_sdt" != 1 ]; then
	echo "skipped: <sys/sdt.h> was not found at build time (apt-get install systemtap-sdt-dev)"
	exit 77
fi
if ! command -v readelf >/dev/null 2>&1; then
	echo "skipped: readelf is not installed (binutils)"
	exit 77
fi
notes=$(readelf -n "$lib") || { echo "FAIL: readelf -n $lib"; exit 1; }
failed=0
for probe in alloc_vmap_area free_vmap_area_noflush purge_vmap_area_lazy \
	pool_hit pool_miss vmalloc vfree; do
	# Each note reads "Provider: vmap" then "Name: <probe>"; one site a
	# probe, since perf attaches to the first site of a name only.
	sites=$(grep -A1 'Provider: vmap$' <<<"$notes" | grep -c "Name: $probe\$")
	if [ "$sites" -ne 1 ]; then
		echo "FAIL: USDT probe vmap:$probe has $sites sites in $lib (want 1)"
		failed=1
	fi
done
args=$(grep -A3 'Name: alloc_vmap_area$' <<<"$notes" | grep -m1 'Arguments:')
if [ "$(wc -w <<<"${args#*Arguments:}")" -ne 6 ]; then
	echo "FAIL: alloc_vmap_area should carry 6 arguments: $args"
	failed=1
fi
[ "$failed" -eq 0 ] && echo "7 probes, one site each, alloc_vmap_area with 6 arguments"
exit "$failed"
