#!/bin/sh
# CLI versions: every put bumps the version; --if-version N is a
# compare-and-swap (exit 5 on conflict, nothing written).
. "$(dirname "$0")/common.inc"
version() { D meta "$1" | sed -n 's/.*"version": \([0-9]*\),.*/\1/p'; }
printf 'v1' >"$T/v1"; printf 'v2' >"$T/v2"; printf 'v3' >"$T/v3"

# --if-version 0: only if absent
expect 0 D put --if-version 0 E "$T/v1"
[ "$(version E)" = 1 ] || fail "version after create"
expect 5 D put --if-version 0 E "$T/v2"
grep -q "^deltafs: put: version conflict" "$T/err" || fail "conflict message: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "conflict: not one line"
[ "$(D get E)" = v1 ] || fail "a conflicting put wrote"

# plain puts bump by one
expect 0 D put E "$T/v2"
[ "$(version E)" = 2 ] || fail "version after second put"
# stale expectation: conflict, nothing written, version unchanged
expect 5 D put --if-version 1 E "$T/v3"
[ "$(D get E)" = v2 ] || fail "stale --if-version wrote"
[ "$(version E)" = 2 ] || fail "stale --if-version changed the version"
expect 5 D put --if-version 3 E "$T/v3"
# the right expectation wins
expect 0 D put --if-version 2 E "$T/v3"
[ "$(D get E)" = v3 ] && [ "$(version E)" = 3 ] || fail "--if-version 2 did not write v3"
# a missing entity with --if-version > 0 conflicts
expect 5 D put --if-version 4 F "$T/v1"
expect 1 D exists F
# many sequential puts: version counts them exactly
i=0; while [ $i -lt 20 ]; do printf '%s' $i | D put G; i=$((i + 1)); done
[ "$(version G)" = 20 ] || fail "20 puts gave version $(version G)"
[ "$(D get G)" = 19 ] || fail "last put not visible"
# rm then put restarts at 1
D rm G
printf 'again' | D put G
[ "$(version G)" = 1 ] || fail "version after rm+put"
echo ok
