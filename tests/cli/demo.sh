#!/bin/sh
# `deltafs demo` runs on a fresh store, checks itself, and can run again.
. "$(dirname "$0")/common.inc"
"$DELTAFS" --root "$T/store" demo --workers 3 --increments 20 >"$T/out" 2>"$T/err" ||
  { cat "$T/out" "$T/err"; fail "demo exited non-zero"; }
grep -q 'count is exactly 60' "$T/out" || fail "no exact count"
grep -q 'All [0-9]* checks passed' "$T/out" || fail "no success line"
grep -q 'FAILED' "$T/out" && fail "a check failed"
[ ! -s "$T/err" ] || { cat "$T/err"; fail "demo wrote to stderr"; }
# its claims hold when checked from outside, with the CLI
[ "$(D get --key "$T/store/demo.key" demo-counter)" = '{"count":60}' ] || fail "counter"
D meta demo-counter | grep -q '"version": 60,' || fail "counter version"
D get demo-counter | grep -q count && fail "counter stored in plaintext"
[ "$(D ls | grep -c '^demo-')" -eq 4 ] || fail "demo ids: $(D ls)"
# the default root is ./deltafs-data; a second run starts over cleanly
(cd "$T" && "$DELTAFS" demo --workers 2 --increments 5 >"$T/out2" 2>&1) || { cat "$T/out2"; fail "demo in cwd"; }
[ -d "$T/deltafs-data/files" ] || fail "demo did not use ./deltafs-data"
(cd "$T" && "$DELTAFS" demo --workers 2 --increments 5 >"$T/out2" 2>&1) || { cat "$T/out2"; fail "second demo"; }
grep -q 'removed 4 demo-\* entities' "$T/out2" || fail "second run did not clean up"
grep -q 'count is exactly 10' "$T/out2" || fail "second run count"
"$DELTAFS" demo --workers 0 >/dev/null 2>&1 && fail "--workers 0 accepted"
echo ok
