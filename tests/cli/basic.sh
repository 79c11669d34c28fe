#!/bin/sh
# CLI basics: help/version, init, put/get/meta/ls/exists/rm, templates,
# bad ids, missing files, usage errors, binary round trip, error lines.
. "$(dirname "$0")/common.inc"
# --help / --version
expect 0 "$DELTAFS" --version
grep -Eq '^deltafs [0-9]+\.[0-9]+\.[0-9]+' "$T/out" || fail "--version output"
expect 0 "$DELTAFS" --help
cp "$T/out" "$T/mainhelp"
for c in init put get meta ls exists rm template lock keygen demo; do
  grep -q "^  $c " "$T/mainhelp" || fail "--help does not list $c"
  expect 0 "$DELTAFS" "$c" --help
  grep -q "usage: deltafs" "$T/out" || fail "$c --help prints no usage"
  [ ! -s "$T/err" ] || fail "$c --help wrote to stderr"
done
expect 2 "$DELTAFS"
expect 2 "$DELTAFS" frobnicate
err_line frobnicate
expect 2 "$DELTAFS" --bogus-option ls
expect 2 D ls --bogus-option
err_line ls
expect 2 D put
err_line put
expect 2 D get a b
expect 2 D put --if-version x id
expect 2 D put --if-version -1 id

# init creates the layout and prints the absolute root
expect 0 D init
[ -d "$S/files" ] && [ -d "$S/templates" ] || fail "init made no layout"
[ "$(cat "$T/out")" = "$(cd "$S" && pwd -P)" ] || [ "$(cat "$T/out")" = "$S" ] || fail "init output: $(cat "$T/out")"

# root from $DELTAFS_ROOT, then ./deltafs-data
printf 'env' | DELTAFS_ROOT="$T/envstore" "$DELTAFS" put viaenv
[ -f "$T/envstore/files/viaenv.json.enc" ] || fail "DELTAFS_ROOT not used"
(cd "$T" && printf 'cwd' | "$DELTAFS" put viacwd)
[ -f "$T/deltafs-data/files/viacwd.json.enc" ] || fail "./deltafs-data not the default"
# --root after the command works too
expect 0 "$DELTAFS" exists --root "$T/envstore" viaenv

# put from stdin and from a file; get to stdout and to -o
printf '{"a":1}' | D put Chat_1
printf '{"b":2}' >"$T/in.json"
expect 0 D put Chat_2 "$T/in.json"
expect 0 D get Chat_1
[ "$(cat "$T/out")" = '{"a":1}' ] || fail "get Chat_1: $(cat "$T/out")"
expect 0 D get -o "$T/got.json" Chat_2
cmp -s "$T/in.json" "$T/got.json" || fail "get -o content"
[ ! -s "$T/out" ] || fail "get -o also wrote stdout"
# stored bytes are exactly the input (no sealing without --key)
cmp -s "$T/in.json" "$S/files/Chat_2.json.enc" || fail "blob on disk differs from input"

# binary round trip: all 256 byte values, through stdin and stdout
awk 'BEGIN { for (i = 0; i < 256; i++) printf "%c", i }' </dev/null >"$T/bin" 2>/dev/null || true
if [ "$(wc -c <"$T/bin")" -ne 256 ]; then
  # awk cannot print NUL everywhere; build it with printf octal escapes
  i=0; : >"$T/bin"
  while [ $i -lt 256 ]; do printf "\\$(printf %03o $i)" >>"$T/bin"; i=$((i + 1)); done
fi
[ "$(wc -c <"$T/bin")" -eq 256 ] || fail "could not build the 256-byte file"
cat "$T/bin" "$T/bin" | D put bin
D get bin >"$T/bin.out"
cat "$T/bin" "$T/bin" >"$T/bin2"
cmp "$T/bin2" "$T/bin.out" || fail "binary round trip"
# empty blob
D put empty </dev/null
expect 0 D get empty
[ ! -s "$T/out" ] || fail "empty blob came back non-empty"

# meta: JSON with the ten keys and the version
expect 0 D meta Chat_1
for k in key_id alg iv tag schema_id version writer_id timestamp database entity_key; do
  grep -q "\"$k\":" "$T/out" || fail "meta lacks $k"
done
grep -q '"version": 1,' "$T/out" || fail "first put is not version 1"
grep -q '"writer_id": "deltafs-cli@' "$T/out" || fail "default writer_id"
grep -Eq '"timestamp": "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"' "$T/out" || fail "timestamp"
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" || fail "meta is not JSON"
fi
printf 'x' | D put --key-id k1 --schema-id chat.v1 --database db1 --entity-key ek \
  --writer-id "w \"quoted\"" Chat_1
expect 0 D meta Chat_1
grep -q '"key_id": "k1",' "$T/out" && grep -q '"schema_id": "chat.v1",' "$T/out" &&
  grep -q '"database": "db1",' "$T/out" && grep -q '"entity_key": "ek"' "$T/out" &&
  grep -q '"writer_id": "w \\"quoted\\"",' "$T/out" || { cat "$T/out"; fail "meta options"; }
grep -q '"version": 2,' "$T/out" || fail "second put is not version 2"
expect 1 D meta nothere
err_line meta

# ls
expect 0 D ls
[ "$(cat "$T/out")" = "$(printf 'Chat_1\nChat_2\nbin\nempty')" ] || fail "ls: $(cat "$T/out")"

# exists
expect 0 D exists Chat_1
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "exists printed something"
expect 1 D exists nothere
[ ! -s "$T/err" ] || fail "exists false printed an error"

# get of a missing id: 1 and one error line; no lock file left behind
expect 1 D get nothere
err_line get
[ ! -e "$S/files/nothere.json.enc.lock" ] || fail "get of a missing id made a lock file"

# rm
expect 0 D rm Chat_2
expect 1 D exists Chat_2
[ ! -e "$S/files/Chat_2.json.enc" ] && [ ! -e "$S/files/Chat_2.meta.json" ] || fail "rm left files"
expect 1 D rm Chat_2
err_line rm
expect 0 D rm -f Chat_2

# invalid ids: exit 2 and an error line, for every command taking one
for bad in 'a/b' '.hidden' '..' 'x\y' "$(printf 'a\tb')"; do
  for c in get meta exists rm; do
    expect 2 D $c "$bad"
    err_line $c
  done
  set +e; printf 'x' | D put "$bad" 2>"$T/err"; got=$?; set -e
  [ $got -eq 2 ] || fail "put '$bad' exited $got"
  expect 2 D lock "$bad" -- true
done
long=$(printf '%0201d' 0)
expect 2 D get "$long"
expect 2 D put "$long" "$T/in.json"
ok200=$(printf '%0200d' 0)
expect 0 D put "$ok200" "$T/in.json"
expect 0 D exists "$ok200"
[ ! -e "$S/files/a" ] || fail "an invalid id touched the store"

# missing input file: exit 6, one line naming the file
expect 6 D put Chat_3 "$T/no-such-file"
err_line put
grep -q "no-such-file" "$T/err" || fail "missing file not named"
expect 1 D exists Chat_3
# unwritable output
expect 6 D get -o "$T/no/such/dir/out" Chat_1
err_line get

# templates
printf '{"type":"object"}' | D template put chat.v1
expect 0 D template put user.v1 "$T/in.json"
expect 0 D template get chat.v1
[ "$(cat "$T/out")" = '{"type":"object"}' ] || fail "template get"
expect 0 D template get -o "$T/t.json" user.v1
cmp -s "$T/in.json" "$T/t.json" || fail "template get -o"
expect 0 D template ls
[ "$(cat "$T/out")" = "$(printf 'chat.v1\nuser.v1')" ] || fail "template ls: $(cat "$T/out")"
expect 1 D template get nothere
err_line template
expect 2 D template get 'a/b'
expect 2 D template frob
expect 2 D template
expect 6 D template put x "$T/no-such-file"

# unusable root: a file where the store should be
: >"$T/afile"
expect 6 "$DELTAFS" --root "$T/afile" ls
err_line ls
echo "ok"
