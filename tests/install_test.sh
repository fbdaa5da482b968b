#!/usr/bin/env bash
# Install the build into a temporary prefix, then build and run a program
# against it twice: with CMake's find_package(vmap) and with pkg-config.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libvmap.so' | head -n1)")
for page in man3/vmap_alloc.3 man3/vmalloc.3 man1/vmap-replay.1 man7/vmap.7; do
	[ -f "$tmp/prefix/share/man/$page" ] || { echo "FAIL: $page not installed"; exit 1; }
done
cmake -S "$src/tests/install" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
	-DCMAKE_EXE_LINKER_FLAGS="${EXTRA_LDFLAGS:-}" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/cmake/consumer"
if ! command -v pkg-config >/dev/null; then
	echo "pkg-config not installed: pkg-config half skipped"
	exit 0
fi
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
cc -o "$tmp/pc-consumer" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs vmap) ${EXTRA_LDFLAGS:-}
LD_LIBRARY_PATH=$libdir "$tmp/pc-consumer"
