#!/bin/sh
# CLI locks: `deltafs lock` runs a command under the entity lock, passes
# on its exit status, and meets other holders (flock(1), another deltafs
# lock) with exit 3 on busy/timeout; put/get/rm --timeout too.
. "$(dirname "$0")/common.inc"
BG=""
CLI_CLEANUP=stop_bg
# kill the background holder and the command it runs (its pid in $T/cmdpid)
stop_bg() {
  [ -n "$BG" ] && kill -KILL "$BG" 2>/dev/null
  [ -s "$T/cmdpid" ] && kill -KILL "$(cat "$T/cmdpid")" 2>/dev/null
  if [ -n "$BG" ]; then wait "$BG" 2>/dev/null || true; fi
  BG=""; rm -f "$T/cmdpid"
  return 0
}
now_ms() { python3 -c 'import time; print(int(time.time()*1000))' 2>/dev/null || echo $(($(date +%s) * 1000)); }
# wait until file $1 exists (a background holder signals it holds the lock)
wait_for() { n=0; while [ ! -e "$1" ]; do n=$((n + 1)); [ $n -lt 500 ] || fail "timed out waiting for $1"; sleep 0.02; done; }

D init >/dev/null
printf 'x' | D put E

# exit status propagation, with and without "--"
expect 0 D lock E -- true
expect 1 D lock E -- false
expect 7 D lock E -- sh -c 'exit 7'
expect 42 D lock E sh -c 'exit 42'
expect 0 D lock --shared E -- true
# the command's stdout and arguments pass through (its options are its own)
expect 0 D lock E -- sh -c 'echo "$1 $2"' sh -n hello
[ "$(cat "$T/out")" = "-n hello" ] || fail "command output: $(cat "$T/out")"
# killed by a signal: 128+N
expect 143 D lock E -- sh -c 'kill -TERM $$'
# not found / not executable
expect 127 D lock E -- "$T/no-such-command"
err_line lock
: >"$T/noexec"; chmod 644 "$T/noexec"
expect 126 D lock E -- "$T/noexec"
# usage
expect 2 D lock E
expect 2 D lock
expect 2 D lock 'a/b' -- true
expect 2 D lock --timeout x E -- true
# the lock is held while the command runs: the command itself cannot take
# it (a second, independent holder), and it is free again afterwards
expect 3 D lock E -- "$DELTAFS" --root "$S" lock --timeout 0 E -- true
expect 0 D lock E -- "$DELTAFS" --root "$S" lock --shared --timeout 0 F -- true
expect 0 D lock --timeout 0 E -- true
# shared holders coexist; exclusive excludes them
expect 0 D lock --shared E -- "$DELTAFS" --root "$S" lock --shared --timeout 0 E -- true
expect 3 D lock --shared E -- "$DELTAFS" --root "$S" lock --timeout 0 E -- true

# a background deltafs lock holding E (run directly, so $! is deltafs)
"$DELTAFS" --root "$S" lock E -- sh -c "echo \$\$ >'$T/cmdpid'; : >'$T/held'; exec sleep 30" &
BG=$!
wait_for "$T/held"
expect 3 D lock --timeout 0 E -- true
err_line lock
start=$(now_ms)
expect 3 D lock --timeout 300 E -- true
el=$(( $(now_ms) - start ))
[ $el -ge 250 ] || fail "--timeout 300 returned after ${el} ms"
[ $el -lt 5000 ] || fail "--timeout 300 took ${el} ms"
expect 3 D lock --shared --timeout 100 E -- true
# writers and readers honour the lock too
set +e; printf 'y' | D put --timeout 100 E 2>"$T/err"; got=$?; set -e
[ $got -eq 3 ] || fail "put --timeout against a held lock exited $got"
err_line put
expect 3 D get --timeout 100 E
expect 3 D rm --timeout 100 E
[ "$(D get --timeout 0 F 2>/dev/null || true)" = "" ] # F does not exist: no lock needed
# other entities are not blocked
expect 0 D lock --timeout 0 Other -- true
# released when the holder dies, even by SIGKILL
stop_bg
expect 0 D lock --timeout 2000 E -- true
[ "$(D get E)" = x ] || fail "E changed while locked"

# util-linux flock(1) on the same lock file excludes deltafs, and vice versa
if command -v flock >/dev/null 2>&1; then
  LK="$S/files/E.json.enc.lock"
  flock -x "$LK" -c "echo \$\$ >'$T/cmdpid'; : >'$T/fheld'; exec sleep 30" &
  BG=$!
  wait_for "$T/fheld"
  expect 3 D lock --timeout 200 E -- true
  set +e; printf 'z' | D put --timeout 200 E 2>"$T/err"; got=$?; set -e
  [ $got -eq 3 ] || fail "put against flock(1) exited $got"
  stop_bg
  "$DELTAFS" --root "$S" lock E -- sh -c "echo \$\$ >'$T/cmdpid'; : >'$T/dheld'; exec sleep 30" &
  BG=$!
  wait_for "$T/dheld"
  set +e; flock -x -w 0.2 "$LK" true; got=$?; set -e
  [ $got -ne 0 ] || fail "flock(1) got the lock deltafs holds"
  # ending the command ends the hold: deltafs exits with 128+9 and releases
  kill -KILL "$(cat "$T/cmdpid")"
  set +e; wait "$BG"; got=$?; set -e
  BG=""; rm -f "$T/cmdpid"
  [ $got -eq 137 ] || fail "deltafs lock did not pass on SIGKILL of its command ($got)"
  flock -x -w 2 "$LK" true || fail "lock not released after the command ended"
else
  echo "flock(1) not installed: skipping the flock(1) interop part"
fi

# nested get/put under a parent lock use it (DELTAFS_LOCK_*), no deadlock;
# a put under a shared parent lock cannot be satisfied: exit 3 at once
expect 0 D lock --shared E -- "$DELTAFS" --root "$S" get E
[ "$(cat "$T/out")" = x ] || fail "nested get under a shared lock"
expect 3 D lock --shared E -- sh -c 'printf y | "$1" --root "$2" put E' sh "$DELTAFS" "$S"
grep -q "deadlock" "$T/err" || fail "no deadlock explanation"
[ "$(D get E)" = x ] || fail "put under a shared parent lock wrote"
# the environment names only that id: another id still locks normally
expect 3 D lock E -- sh -c '"$1" --root "$2" lock --timeout 0 E -- true' sh "$DELTAFS" "$S"

# lock serializes read-modify-write done with the CLI itself
printf '0' | D put Counter
i=0
while [ $i -lt 4 ]; do
  ( j=0; while [ $j -lt 10 ]; do
      D lock Counter -- sh -c 'n=$("$1" --root "$2" get Counter); printf "%s" $((n + 1)) | "$1" --root "$2" put Counter' sh "$DELTAFS" "$S"
      j=$((j + 1))
    done ) &
  i=$((i + 1))
done
wait
[ "$(D get Counter)" = 40 ] || fail "locked increments lost updates: $(D get Counter)"
echo ok
