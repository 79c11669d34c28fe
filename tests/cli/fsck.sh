#!/bin/sh
# deltafs fsck from the shell: a clean store exits 0; a store with a dead
# temp, a stale lock file and a torn pair exits 4; --repair removes the
# first two, keeps (and still reports) the torn pair without touching its
# files; --json is one JSON document; a missing store exits 6.
. "$(dirname "$0")/common.inc"
expect 0 "$DELTAFS" fsck --help
printf 'one' | D put good >/dev/null
printf 'two' | D put torn >/dev/null
expect 0 D fsck
grep -q "torn" "$T/out" && fail "clean store reported a torn pair"

# Damage: a dead writer's temp, a stale lock file, a torn pair (the blob of
# "torn" replaced by other bytes of the same length).
printf 'x' > "$S/.deltafs-tmp/e.gone.json.enc.0123456789abcdef"
: > "$S/files/nobody.json.enc.lock"
printf 'TWO' > "$S/files/torn.json.enc"
cp "$S/files/torn.json.enc" "$T/torn.blob"
cp "$S/files/torn.meta.json" "$T/torn.meta"

expect 4 D fsck
grep -q "temp-dead" "$T/out" || fail "dead temp not reported"
grep -q "stale-lock" "$T/out" || fail "stale lock not reported"
grep -q "torn" "$T/out" || fail "torn pair not reported"
[ -e "$S/.deltafs-tmp/e.gone.json.enc.0123456789abcdef" ] || fail "fsck without --repair removed a temp"

expect 4 D fsck --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["clean"] is False, d; assert any(f["kind"]=="torn" for f in d["findings"]), d' "$T/out" \
  || fail "--json is not the expected JSON document"

expect 4 D fsck --repair   # the torn pair remains
[ ! -e "$S/.deltafs-tmp/e.gone.json.enc.0123456789abcdef" ] || fail "--repair left the dead temp"
[ ! -e "$S/files/nobody.json.enc.lock" ] || fail "--repair left the stale lock file"
cmp -s "$S/files/torn.json.enc" "$T/torn.blob" || fail "--repair touched the torn blob"
cmp -s "$S/files/torn.meta.json" "$T/torn.meta" || fail "--repair touched the torn metadata"
expect 0 D get good
[ "$(cat "$T/out")" = one ] || fail "good entity changed"

# A write repairs the torn entity; then the store is clean.
printf 'three' | D put torn >/dev/null
expect 0 D fsck
expect 6 "$DELTAFS" --root "$T/no-such-store" fsck
[ ! -e "$T/no-such-store" ] || fail "fsck created a store at a mistyped path"
echo "cli fsck: ok"
