#!/usr/bin/env bash
# A real program recorded and replayed: run PROGRAM ARGS with VMAP_TRACE
# set, then vmap-replay --verify on what its vmalloc heap recorded.  Every
# allocation must come back at the address the program got, and every
# output line must name the address it was given (IDs are addresses).
# Usage: record_program.sh PATH-TO-vmap-replay PROGRAM [ARGS...]
set -u
replay=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
VMAP_TRACE="$tmp/trace" "$@" >/dev/null || { echo "FAIL: $* exited $?"; exit 1; }
[ -s "$tmp/trace" ] || { echo "FAIL: $* left no recording"; exit 1; }
"$replay" --verify --check "$tmp/trace" >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/err"
[ "$rc" -eq 0 ] || { echo "FAIL: vmap-replay --verify exited $rc"; exit 1; }
moved=$(awk '$1 != "none" && $1 != $2' "$tmp/out" | wc -l)
allocs=$(grep -c '^alloc ' "$tmp/trace")
[ "$moved" -eq 0 ] || { echo "FAIL: $moved allocations replayed elsewhere"; exit 1; }
[ "$allocs" -gt 0 ] && [ "$(wc -l <"$tmp/out")" -eq "$allocs" ] ||
	{ echo "FAIL: $allocs allocations recorded, $(wc -l <"$tmp/out") replayed"; exit 1; }
echo "$allocs allocations recorded and replayed at the same addresses"
