#!/bin/sh
# CLI sealing: keygen, put/get --key, wrong key, tampered blob/iv/tag,
# bad key files, permission warning.
. "$(dirname "$0")/common.inc"
mode_of() { stat -c %a "$1" 2>/dev/null || stat -f %Lp "$1"; }

# keygen: 64 lower-case hex digits + newline; two keys differ
expect 0 "$DELTAFS" keygen
grep -Eqx '[0-9a-f]{64}' "$T/out" || fail "keygen output: $(cat "$T/out")"
[ "$(wc -c <"$T/out")" -eq 65 ] || fail "keygen is not 64 digits + newline"
k1=$(cat "$T/out")
expect 0 "$DELTAFS" keygen
[ "$k1" != "$(cat "$T/out")" ] || fail "two keygens gave the same key"
# keygen -o: mode 0600 even under a permissive umask; never overwrites
(umask 000 && "$DELTAFS" keygen -o "$T/k")
[ "$(mode_of "$T/k")" = 600 ] || fail "key file mode $(mode_of "$T/k")"
grep -Eqx '[0-9a-f]{64}' "$T/k" || fail "key file content"
cp "$T/k" "$T/k.orig"
expect 6 "$DELTAFS" keygen -o "$T/k"
err_line keygen
cmp -s "$T/k" "$T/k.orig" || fail "keygen overwrote an existing key"
expect 0 "$DELTAFS" keygen -o "$T/k" --force
cmp -s "$T/k" "$T/k.orig" && fail "keygen --force did not replace the key"
"$DELTAFS" keygen -o "$T/k2"

# sealed round trip; the blob on disk is not the plaintext
pt='{"secret":"attack at dawn","n":42}'
printf '%s' "$pt" | D put --key "$T/k" --key-id k1 Secret_1
[ "$(D get --key "$T/k" Secret_1)" = "$pt" ] || fail "sealed round trip"
grep -q "attack at dawn" "$S/files/Secret_1.json.enc" && fail "plaintext on disk"
[ "$(wc -c <"$S/files/Secret_1.json.enc")" -eq ${#pt} ] || fail "blob is not ciphertext-only (tag inside?)"
expect 0 D meta Secret_1
grep -q '"alg": "AES-GCM",' "$T/out" || fail "alg"
grep -Eq '"iv": "[A-Za-z0-9+/]{16}",' "$T/out" || fail "iv is not 16 base64 chars"
grep -Eq '"tag": "[A-Za-z0-9+/]{22}==",' "$T/out" || fail "tag is not 24 base64 chars"
grep -q '"key_id": "k1",' "$T/out" || fail "key_id"
# without --key get gives the raw ciphertext
D get Secret_1 >"$T/raw"
cmp -s "$T/raw" "$S/files/Secret_1.json.enc" || fail "get without --key"
# sealing twice gives a fresh nonce
iv1=$(grep '"iv"' "$T/out")
printf '%s' "$pt" | D put --key "$T/k" Secret_1
[ "$(D meta Secret_1 | grep '"iv"')" != "$iv1" ] || fail "nonce reused"
# decrypted output file is private
expect 0 D get --key "$T/k" -o "$T/plain" Secret_1
[ "$(cat "$T/plain")" = "$pt" ] || fail "get --key -o"
[ "$(mode_of "$T/plain")" = 600 ] || fail "decrypted file mode $(mode_of "$T/plain")"

# binary plaintext, all 256 byte values, sealed through stdin/stdout
i=0; : >"$T/bin"
while [ $i -lt 256 ]; do printf "\\$(printf %03o $i)" >>"$T/bin"; i=$((i + 1)); done
D put --key "$T/k" BinSecret <"$T/bin"
D get --key "$T/k" BinSecret >"$T/bin.out"
cmp "$T/bin" "$T/bin.out" || fail "sealed binary round trip"

# wrong key: exit 4, one line, no plaintext on stdout
expect 4 D get --key "$T/k2" Secret_1
err_line get
[ ! -s "$T/out" ] || fail "wrong key printed something"
# unsealed entity with --key: exit 4
printf 'plain' | D put Plain_1
expect 4 D get --key "$T/k" Plain_1
err_line get

# tampered blob: flip one byte in the middle → exit 4
cp "$S/files/Secret_1.json.enc" "$T/blob.orig"
cp "$S/files/Secret_1.meta.json" "$T/meta.orig"
flip() { # flip byte $2 of file $1 (xor 0x01), in place
  python3 - "$1" "$2" <<'PY' 2>/dev/null || perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; read F,$c,1; seek F,$ARGV[1],0; print F chr(ord($c)^1); close F' "$1" "$2"
import sys
p, o = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[o] ^= 1; open(p, "wb").write(b)
PY
}
flip "$S/files/Secret_1.json.enc" 10
cmp -s "$S/files/Secret_1.json.enc" "$T/blob.orig" && fail "flip did nothing"
# the library may notice the torn pair itself (its own integrity hash) or
# the tag does; either way: corrupt, exit 4
expect 4 D get --key "$T/k" Secret_1
err_line get
[ ! -s "$T/out" ] || fail "tampered blob printed plaintext"
cp "$T/blob.orig" "$S/files/Secret_1.json.enc"
[ "$(D get --key "$T/k" Secret_1)" = "$pt" ] || fail "restored blob does not open"

# tampered iv / tag in the metadata (still valid JSON and base64) → exit 4
iv=$(sed -n 's/.*"iv":"\([^"]*\)".*/\1/p' "$T/meta.orig")
tag=$(sed -n 's/.*"tag":"\([^"]*\)".*/\1/p' "$T/meta.orig")
[ ${#iv} -eq 16 ] && [ ${#tag} -eq 24 ] || fail "cannot find iv/tag in the meta file"
other() { case $1 in A*) echo "B${1#?}";; *) echo "A${1#?}";; esac; }
sed "s|\"iv\":\"$iv\"|\"iv\":\"$(other "$iv")\"|" "$T/meta.orig" >"$S/files/Secret_1.meta.json"
cmp -s "$S/files/Secret_1.meta.json" "$T/meta.orig" && fail "iv edit did nothing"
expect 4 D get --key "$T/k" Secret_1
err_line get
sed "s|\"tag\":\"$tag\"|\"tag\":\"$(other "$tag")\"|" "$T/meta.orig" >"$S/files/Secret_1.meta.json"
expect 4 D get --key "$T/k" Secret_1
sed "s|\"tag\":\"$tag\"|\"tag\":\"short\"|" "$T/meta.orig" >"$S/files/Secret_1.meta.json"
expect 4 D get --key "$T/k" Secret_1
cp "$T/meta.orig" "$S/files/Secret_1.meta.json"
[ "$(D get --key "$T/k" Secret_1)" = "$pt" ] || fail "restored meta does not open"

# bad key files: malformed → 2, missing/unreadable → 6; nothing written
printf '%063d\n' 0 >"$T/short.key"
printf '%065d\n' 0 >"$T/long.key"
printf 'g%063d\n' 0 >"$T/nothex.key"
: >"$T/empty.key"
chmod 600 "$T/short.key" "$T/long.key" "$T/nothex.key" "$T/empty.key"
for kf in short long nothex empty; do
  set +e; printf 'x' | D put --key "$T/$kf.key" Bad_1 2>"$T/err"; got=$?; set -e
  [ $got -eq 2 ] || fail "put with $kf.key exited $got"
  err_line put
  expect 2 D get --key "$T/$kf.key" Secret_1
  err_line get
  [ ! -s "$T/out" ] || fail "get with $kf.key printed something"
done
expect 1 D exists Bad_1
set +e; printf 'x' | D put --key "$T/missing.key" Bad_1 2>"$T/err"; got=$?; set -e
[ $got -eq 6 ] || fail "put with a missing key exited $got"
err_line put
grep -q missing.key "$T/err" || fail "missing key file not named"
expect 6 D get --key "$T/missing.key" Secret_1
expect 6 D get --key "$T" Secret_1   # a directory
expect 1 D exists Bad_1

# key readable by group/others: works, but warns
cp "$T/k" "$T/loose.key"
chmod 644 "$T/loose.key"
expect 0 D get --key "$T/loose.key" Secret_1
[ "$(cat "$T/out")" = "$pt" ] || fail "loose key did not decrypt"
grep -q "warning: key file .*loose.key" "$T/err" || fail "no warning for a 0644 key"
expect 0 D get --key "$T/k" Secret_1
[ ! -s "$T/err" ] || fail "warning for a 0600 key"
# uppercase hex and surrounding whitespace are accepted
printf '  %s  \n\n' "$(tr a-f A-F <"$T/k")" >"$T/upper.key"
chmod 600 "$T/upper.key"
[ "$(D get --key "$T/upper.key" Secret_1)" = "$pt" ] || fail "uppercase key"
echo ok
