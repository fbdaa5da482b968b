#!/usr/bin/env bash
# Man pages.  "lint": every page under man/ formats without one warning
# (mandoc -Tlint where installed, else groff -ww), and every .so link
# names a page that exists.  "coverage": every function the built library
# exports has a section 3 page, so that a new call cannot ship without one.
# Usage: test_man.sh lint|coverage SOURCE_DIR [PATH-TO-libvmap.so]
set -u
mode=$1 src=$2 lib=${3:+$(realpath "$3")}
cd "$src/man" || exit 1
failed=0 checked=0
fail() { printf 'FAIL: %s\n' "$@"; failed=1; }

if [ "$mode" = lint ]; then
	if command -v mandoc >/dev/null 2>&1; then
		lint() { mandoc -Tlint -Wwarning "$1" 2>&1; }
	elif command -v groff >/dev/null 2>&1; then
		lint() { groff -ww -man -z "$1" 2>&1; }
	else
		echo "skipped: neither mandoc nor groff is installed (apt-get install groff-base)"
		exit 77
	fi
	for page in man*/*.[0-9]; do
		target=$(sed -n 's/^\.so //p' "$page")
		[ -z "$target" ] || [ -f "$target" ] ||
			fail "$page links to $target, which does not exist"
		out=$(lint "$page")
		[ -z "$out" ] || fail "$page:" "$out"
		checked=$((checked + 1))
	done
	[ "$failed" -eq 0 ] && echo "$checked pages formatted without a warning"
	exit "$failed"
fi

if ! command -v nm >/dev/null 2>&1; then
	echo "skipped: nm is not installed (binutils)"
	exit 77
fi
symbols=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }')
[ -n "$symbols" ] || fail "no exported function in $lib"
for sym in $symbols; do
	[ -f "man3/$sym.3" ] || fail "$sym is exported but has no page man/man3/$sym.3"
	checked=$((checked + 1))
done
[ "$failed" -eq 0 ] && echo "$checked exported functions, each with a page"
exit "$failed"
