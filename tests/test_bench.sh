#!/usr/bin/env bash
# vmap-bench as a user runs it, briefly: every row of the JSON output has
# the documented keys, every test passes except the one the kernel marks
# as expected to fail, the kernel's summary lines are there, virtual CPUs
# give one node per worker and per-node counters that add up, and bad
# parameters are refused with one line and exit 2.
# Usage: test_bench.sh PATH-TO-vmap-bench
set -u
bench=$1
passed=0 failed=0
check() { # description, command...
	local what=$1; shift
	if "$@"; then passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args="run_test_mask=0x7ff test_loop_count=300 nr_threads=2 nodes=1,2 tag=zone,kernel"

"$bench" $args json=1 csv="$tmp/rows.csv" >"$tmp/json" 2>"$tmp/err"
rc=$?
check "exit status 0 (got $rc)" test "$rc" -eq 0
# Tests 0-6 x (one-lock, nodes/zone on 1 and 2 nodes, nodes/kernel,
# mmap): 35 rows; pcpu_alloc_test x (one-lock, nodes/zone 1 and 2,
# nodes/kernel): 4; the two kvfree_rcu tests and vm_map_ram_test, on the
# vmalloc layer, x (one-lock, nodes/kernel 2): 6.
# Without liburcu the kvfree_rcu tests say why they are skipped: 4 fewer.
rows=45
if grep -q 'skipped: liburcu-dev not installed' "$tmp/err"; then
	echo "test_bench: liburcu-dev not installed: the kvfree_rcu tests are skipped"
	rows=41
	check "only the kvfree_rcu tests skipped" \
		test "$(grep -c 'skipped' "$tmp/err")" -eq 2
else
	check "no test skipped" test "$(grep -c 'skipped' "$tmp/err")" -eq 0
fi
check "$rows JSON rows" test "$(wc -l <"$tmp/json")" -eq $rows
for key in test mode tag nodes threads loops ns_per_pair pairs_per_sec \
	global_lock_per_pair heap_lock_per_pair pool_hit_rate purges passed failed; do
	check "every row has $key" test "$(grep -c "\"$key\":" "$tmp/json")" -eq $rows
done
for t in pcpu_alloc_test vm_map_ram_test; do
	check "$t in one-lock and node rows" \
		test "$(grep "\"test\":\"$t\"" "$tmp/json" | grep -c '"mode":"one-lock"\|"mode":"nodes"')" -ge 2
done
check "no unexpected failure" test "$(grep -v '"expect_fail":true' "$tmp/json" | grep -vc '"failed":0,')" -eq 0
check "align_shift fails as the kernel says" \
	test "$(grep '"test":"align_shift_alloc_test"' "$tmp/json" | grep -c '"failed":[1-9]')" -eq 5
check "libvmap's one node beside the one-lock row of each space test" \
	test "$(grep -c '"mode":"nodes","tag":"zone","nodes":1,' "$tmp/json")" -eq 8
check "one-lock rows have one node" test "$(grep '"mode":"one-lock"' "$tmp/json" | grep -vc '"nodes":1,')" -eq 0
check "node rows use the pools" test "$(grep '"mode":"nodes"' "$tmp/json" | grep -c '"pool_hit_rate":0\.[0-9]*[1-9]')" -ge 1
check "CSV has a header and $rows rows" test "$(wc -l <"$tmp/rows.csv")" -eq $((rows + 1))
check "summaries go to stderr with json" test "$(grep -c '^Summary: ' "$tmp/err")" -eq $((2 * rows))

"$bench" $args >"$tmp/text" 2>/dev/null
check "$((2 * rows)) kernel summary lines" test "$(grep -cE '^Summary: [a-z0-9_]+ passed: [0-9]+ failed: [0-9]+ repeat: 1 loops: 300 avg: [0-9]+ usec$' "$tmp/text")" -eq $((2 * rows))
check "table with a ratio column" grep -q 'vs one-lock' "$tmp/text"

"$bench" $args scale=1 nr_threads=2 run_test_mask=1 >"$tmp/scale" 2>/dev/null
check "scaling table" grep -q '^scaling efficiency' "$tmp/scale"
# Each design is measured against its own one-thread row: 100% there.
check "scaling: one thread is 100% for every design" \
	test "$(sed -n '/^scaling efficiency/,$p' "$tmp/scale" | awk '$5 == 1' | grep -vc ' 100\.0%$')" -eq 0
check "scaling: a one-thread row per design" \
	test "$(sed -n '/^scaling efficiency/,$p' "$tmp/scale" | awk '$5 == 1' | wc -l)" -eq 5
"$bench" run_test_mask=9 test_loop_count=2000 nr_threads=16 cpus=virtual load=1 baselines=none \
	tag=zone,kernel,address json=1 >"$tmp/virtual" 2>/dev/null
check "virtual CPUs: one node per worker" \
	test "$(grep '"mode":"nodes"' "$tmp/virtual" | grep -c '"nodes":16,"threads":16')" -eq 6
# Every row with pools, both tests: one node (zone) and 16 (three tags).
check "virtual CPUs: per-node counters add up" \
	test "$(grep -c '"counters_add_up":true' "$tmp/virtual")" -eq 8
check "virtual CPUs: other-node locks and load reported" \
	test "$(grep -c '"other_node_lock_per_pair":[0-9].*"load":1,' "$tmp/virtual")" -eq 10
"$bench" run_test_mask=1 test_loop_count=200 nr_threads=4 cpus=virtual >"$tmp/vtext" 2>/dev/null
check "virtual CPUs: lock structure table" grep -q '^lock structure per pair' "$tmp/vtext"
"$bench" churn=100 test_loop_count=500 nr_threads=2 baselines=list json=1 >"$tmp/churn" 2>/dev/null
rc=$?
check "churn with the list baseline: exit status 0 (got $rc)" test "$rc" -eq 0
check "churn rows: one-lock, nodes on 1 and 2 nodes, list, none failed" \
	test "$(grep '"test":"churn_test"' "$tmp/churn" | grep '"live":100,' | grep -c '"failed":0,')" -eq 4
"$bench" live=100,1000 test_loop_count=200 nr_threads=1 json=1 >"$tmp/live" 2>/dev/null
check "live rows carry live" test "$(grep -c '"live":1000,' "$tmp/live")" -eq 4

"$bench" holes=1000 tag=zone,kernel >"$tmp/holes" 2>/dev/null
rc=$?
check "holes: exit status 0 (got $rc)" test "$rc" -eq 0
check "holes rows: one-lock, one and two nodes, kernel pools fail with ENOMEM" \
	test "$(grep -c '^first_failing_alloc .* ENOMEM$' "$tmp/holes")" -eq 4
"$bench" mode=vmalloc holes=10 >/dev/null 2>"$tmp/bad"
rc=$?
check "holes in vmalloc mode refused with exit 2 (got $rc)" test "$rc" -eq 2
check "holes in vmalloc mode: one line on stderr" test "$(wc -l <"$tmp/bad")" -eq 1

# The constrained rows: the kernel's fit, indexed, and the three complete searches.
"$bench" constrained live=100 test_loop_count=200 nr_threads=1 json=1 >"$tmp/xalloc" 2>/dev/null
check "5 constrained rows" test "$(wc -l <"$tmp/xalloc")" -eq 5
check "constrained rows pass" test "$(grep -c '"failed":0,' "$tmp/xalloc")" -eq 5
check "constrained rows name their search" \
	test "$(grep -cE '"tag":"(indexed|exact|topdown|bestfit)"' "$tmp/xalloc")" -eq 4

for bad in run_test_mask=0 run_test_mask=0x800 nr_threads=x nodes=0 tag=foo bogus=1 \
	test_loop_count=0 baselines=mmap,foo live=0 cpus=foo load=x churn=0 holes=0 \
	nodes=2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17; do
	"$bench" "$bad" >/dev/null 2>"$tmp/bad"
	rc=$?
	check "$bad refused with exit 2 (got $rc)" test "$rc" -eq 2
	check "$bad: one line on stderr" test "$(wc -l <"$tmp/bad")" -eq 1
done
echo "test_bench: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
