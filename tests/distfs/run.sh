#!/bin/sh
# tests/distfs/run.sh — deltafs on a real distributed filesystem.
#
# A private GlusterFS (glusterd bound to 127.0.0.1 only, its own working
# directory, CLI socket and logs) serves a one-brick volume, mounted TWICE
# with FUSE: two independent GlusterFS clients, each with its own kernel
# caches and its own lock owner on the brick — as two hosts would be.
# Volume options and mount options are the ones README.md "Running across hosts" requires.
#
# Then, with the store on the volume:
#   1. the cmocka programs test_storage, test_flock, test_lockmgr (those
#      that exist) with DFS_TEST_DIR on mount A;
#   2. cross-mount scenarios (distfs_check.c has the details and the
#      verdicts): the no-RENAME_EXCHANGE path, torn pairs (writer on A,
#      readers on B), exact counters from both mounts, a SIGKILLed holder
#      on A releasing to B, deletes while both mounts contend, a crash
#      sweep (writer killed on A at every syscall, read/recovered on B);
#   3. writers on A killed with SIGKILL at random moments, then
#      `deltafs fsck` / `fsck --repair` on B (the library's recovery and a
#      full read-back when the CLI is not built);
#   4. the overhead of deltafs against the raw-syscall floor on the mount
#      (printed, never asserted).
# Everything is torn down at exit, on failure too: mounts, volume,
# glusterd and brick processes, scratch directories, logs.
#
# Needs root, /dev/fuse and the glusterfs-server/-client packages (installed
# with apt-get when missing); otherwise exits 77 (skipped).  Environment
# (set by ctest, tests/distfs/CMakeLists.txt): DISTFS_CHECK, DISTFS_OVERHEAD,
# DFS_TEST_BIN_DIR, DELTAFS (optional).  DISTFS_QUICK=1 skips the cmocka
# programs.  Takes about 3.5 minutes on 2 cores.
set -u

say() { echo "distfs: $*"; }
skip() {
  say "SKIP: $*"
  exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root (mounts FUSE, runs glusterd)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
: "${DISTFS_CHECK:?set DISTFS_CHECK to the distfs_check program}"
: "${DISTFS_OVERHEAD:?set DISTFS_OVERHEAD to the distfs_overhead program}"
# Every scenario bounds its own run time; the timeout only turns a hang
# into a failure.
CHECK="timeout -k 5 150 $DISTFS_CHECK"

if ! command -v glusterd >/dev/null 2>&1 || ! command -v gluster >/dev/null 2>&1 ||
  ! command -v mount.glusterfs >/dev/null 2>&1; then
  say "installing glusterfs-server glusterfs-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q glusterfs-server glusterfs-client \
    >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q glusterfs-server glusterfs-client \
        >/dev/null 2>&1; } ||
    skip "cannot install glusterfs-server/glusterfs-client"
fi
command -v glusterd >/dev/null 2>&1 || skip "no glusterd after install"
if command -v ss >/dev/null 2>&1 && ss -ltn 2>/dev/null | grep -q '[:.]24007 '; then
  skip "port 24007 is in use (another glusterd?)"
fi

HOST=$(hostname)
VOL=dfs$$
SCR=$(mktemp -d "${TMPDIR:-/var/tmp}/dfs-distfs.XXXXXX") || skip "mktemp failed"
A=$SCR/mnt-a
B=$SCR/mnt-b
LOGS=$SCR/log
SOCK=$SCR/run/glusterd.sock
mkdir -p "$SCR/wd" "$SCR/brick" "$SCR/run" "$A" "$B" "$LOGS"
G="gluster --mode=script --glusterd-sock=$SOCK --log-file=$LOGS/cli.log"
FAILED=0
PIDS=""
BRICK_PID=""
BRICK_SOCK=""

# ---- teardown (always) --------------------------------------------------
mount_pid() { # the glusterfs client process of mount point $1
  ps -eo pid=,args= | awk -v m="$1" -v v="/$VOL" \
    '$2 ~ /glusterfs$/ && index($0, "--volfile-id=" v " ") && $NF == m {print $1}'
}
teardown() {
  set +e
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  for m in "$A" "$B"; do
    if mountpoint -q "$m" 2>/dev/null; then
      cp=$(mount_pid "$m")
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
      [ -n "$cp" ] && kill "$cp" 2>/dev/null
    fi
  done
  if [ -f "$SCR/run/glusterd.pid" ]; then
    $G volume stop "$VOL" force >/dev/null 2>&1
    $G volume delete "$VOL" >/dev/null 2>&1
    kill "$(cat "$SCR/run/glusterd.pid")" 2>/dev/null
  fi
  [ -n "$BRICK_PID" ] && kill -9 "$BRICK_PID" 2>/dev/null
  sleep 0.3
  [ -f "$SCR/run/glusterd.pid" ] && kill -9 "$(cat "$SCR/run/glusterd.pid")" 2>/dev/null
  # What glusterd and the brick leave outside our scratch directory (pid
  # files, brick socket and log, empty state directories): whatever was
  # not there before we started.
  [ -n "$BRICK_SOCK" ] && rm -f "$BRICK_SOCK"
  if [ -n "${PRE_STATE+x}" ]; then
    for p in $(gluster_state); do
      echo "$PRE_STATE" | grep -qxF "$p" || rm -rf "$p"
    done
  fi
  rm -rf "$SCR"
}
# Entries of glusterd's fixed state directories (it writes there whatever
# its own working directory is).
gluster_state() {
  for d in /var/run/gluster /var/run/gluster/vols /var/log/glusterfs \
    /var/log/glusterfs/bricks /var/lib/glusterd; do
    [ -d "$d" ] && ls -A "$d" | sed "s|^|$d/|"
  done
  [ -e /var/run/glusterd.socket ] && echo /var/run/glusterd.socket
}
trap teardown EXIT
trap 'exit 1' INT TERM HUP

fail() {
  say "FAIL: $*"
  FAILED=1
}

# ---- glusterd, volume, two mounts ---------------------------------------
cat >"$SCR/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $SCR/wd
    option glusterd-sockfile $SOCK
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
EOF
PRE_STATE=$(gluster_state)
glusterd -f "$SCR/glusterd.vol" -p "$SCR/run/glusterd.pid" -l "$LOGS/glusterd.log" ||
  skip "glusterd does not start (see above)"
i=0
until $G volume list >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -gt 50 ] && skip "glusterd does not answer: $(tail -3 "$LOGS/glusterd.log")"
  sleep 0.2
done
# glusterd refuses localhost as a brick host; `force`: the brick is on the
# root filesystem.
$G volume create "$VOL" "$HOST:$SCR/brick" force >"$LOGS/create.log" 2>&1 ||
  skip "cannot create a volume: $(cat "$LOGS/create.log")"
# Strict coherence between clients: no client-side write-behind, open-behind
# or metadata caches (README.md "Running across hosts").
for o in performance.open-behind performance.quick-read performance.stat-prefetch \
  performance.flush-behind performance.write-behind; do
  $G volume set "$VOL" "$o" off >/dev/null 2>&1 || skip "volume set $o off failed"
done
$G volume start "$VOL" >"$LOGS/start.log" 2>&1 || skip "cannot start the volume: $(cat "$LOGS/start.log")"
BRICK_PID=$(cat /var/run/gluster/vols/"$VOL"/*.pid 2>/dev/null | head -1)
[ -n "$BRICK_PID" ] &&
  BRICK_SOCK=$(tr '\0' '\n' <"/proc/$BRICK_PID/cmdline" 2>/dev/null | awk 'f {print; exit} $0 == "-S" {f = 1}')
MOPTS=attribute-timeout=0,entry-timeout=0,negative-timeout=0
for m in a b; do
  mount -t glusterfs -o "$MOPTS,log-file=$LOGS/mount-$m.log" "127.0.0.1:/$VOL" "$SCR/mnt-$m" ||
    skip "cannot mount the volume on $SCR/mnt-$m"
done
say "GlusterFS $(glusterfs --version | head -1 | awk '{print $2}'): volume $VOL on $HOST (127.0.0.1 only), mounts $A and $B"

# A file written through A must be visible through B: the mounts are one
# volume (not two directories).
echo probe >"$A/probe" && [ "$(cat "$B/probe" 2>/dev/null)" = probe ] ||
  { fail "the two mounts do not share the volume"; exit 1; }
rm -f "$A/probe"

# Run a step; a non-zero exit is a failure of the whole test.
step() {
  name=$1
  shift
  t0=$(date +%s)
  if "$@"; then
    say "ok   $name ($(($(date +%s) - t0)) s)"
  else
    fail "$name (exit $?)"
  fi
}

# ---- 1. the unit tests on the mount ---------------------------------------
# The lock tests run first and alone (test_lockmgr bounds some of its own
# timings).  test_storage takes ~2 minutes here (storage__list_many alone
# writes 5000 entities, ~20 ms each on this volume), so it then runs in the
# background, on its own directory, beside the scenarios; its verdict is
# collected at the end.  Every program runs under timeout(1), so a hang
# fails the step instead of outliving the teardown.
unit_report() { # name: print the summary and the failures of its log
  grep -E '^\[  (PASSED|FAILED)  \] [0-9]|^\[  FAILED  \] [a-z]|^ERROR|error: ' \
    "$LOGS/$1.log" | sort -u | head -20 | sed 's/^/distfs:      /'
}
run_unit() { # name: run one cmocka program with its scratch dirs on mount A
  mkdir -p "$A/unit-$1"
  (cd "$DFS_TEST_BIN_DIR" && DFS_TEST_DIR="$A/unit-$1" exec timeout -k 5 "$2" "./$1" \
    >"$LOGS/$1.log" 2>&1)
}
UNIT_BG=""
if [ "${DISTFS_QUICK:-0}" != 1 ] && [ -n "${DFS_TEST_BIN_DIR:-}" ]; then
  for t in test_flock test_lockmgr; do
    if [ -x "$DFS_TEST_BIN_DIR/$t" ]; then
      step "$t on the mount" run_unit $t 180
      unit_report $t
    else
      say "($t not built: skipped)"
    fi
  done
  if [ -x "$DFS_TEST_BIN_DIR/test_storage" ]; then
    UNIT_T0=$(date +%s)
    run_unit test_storage 300 &
    UNIT_BG=$!
    PIDS="$PIDS $UNIT_BG"
  else
    say "(test_storage not built: skipped)"
  fi
fi

# ---- 2. cross-mount scenarios ---------------------------------------------
SA=$A/store
SB=$B/store
mkdir -p "$SA"

step "no RENAME_EXCHANGE: fallback and a failed commit" $CHECK fallback "$SA"

torn() {
  $CHECK torn-writer "$SA" torn 8 & w=$!
  $CHECK torn-reader "$SB" torn 8 plain & r1=$!
  $CHECK torn-reader "$SB" torn 8 locked & r2=$!
  $CHECK torn-reader "$SA" torn 8 plain & r3=$!
  ok=0
  for p in $w $r1 $r2 $r3; do wait $p || ok=1; done
  return $ok
}
step "writer on A, readers on B: never torn, versions monotonic" torn

counters() {
  n=25
  pids=""
  for s in "$SA" "$SA" "$SB" "$SB"; do
    $CHECK counter "$s" counter $n &
    pids="$pids $!"
  done
  ok=0
  for p in $pids; do wait "$p" || ok=1; done
  [ $ok = 0 ] && $CHECK counter-check "$SB" counter $((4 * n)) &&
    $CHECK counter-check "$SA" counter $((4 * n))
}
step "4 processes on 2 mounts, 100 locked increments: exact count" counters

step "holder on A killed (SIGKILL): lock free on B" $CHECK kill-release "$SA" "$SB" held 7

contend() {
  mk_a=$A/contend.marker
  mk_b=$B/contend.marker
  rm -f "$mk_a"
  pids=""
  for m in "$SA $mk_a" "$SA $mk_a" "$SB $mk_b" "$SB $mk_b"; do
    set -- $m
    $CHECK contend "$1" hot 10 "$2" &
    pids="$pids $!"
  done
  # dfs_delete without holding the lock: its own try-lock + unlink.
  $CHECK rogue-delete "$SB" hot 10 &
  pids="$pids $!"
  ok=0
  for p in $pids; do wait "$p" || ok=1; done
  return $ok
}
step "deletes on both mounts while both contend: one exclusive holder" contend

step "crash sweep: writer killed on A at every syscall, read on B" \
  $CHECK crash-sweep "$SA/../crash" "$SB/../crash"

# ---- 3. SIGKILLed writers on A, fsck on B -------------------------------
killed_writers() {
  KW=""
  for k in 1 2 3; do
    # No timeout(1) wrapper: the SIGKILL below must hit the writer itself.
    "$DISTFS_CHECK" torn-writer "$SA" "kw$k" 60 >/dev/null &
    KW="$KW $!"
  done
  PIDS="$PIDS $KW"
  # Kill them at staggered moments, mid-write (they write back to back).
  sleep 1.3
  for p in $KW; do
    kill -9 "$p" 2>/dev/null
    sleep 0.37
  done
  for p in $KW; do wait "$p" 2>/dev/null; done
  if [ -n "${DELTAFS:-}" ] && [ -x "$DELTAFS" ]; then
    # Report first (exit 0: clean, 4: something to repair), then repair
    # until nothing remains (a killed writer's flock is released by the
    # server a few ms after the kill; until then its temps count as live).
    timeout -k 5 60 "$DELTAFS" --root "$SB" fsck >"$LOGS/fsck1.log" 2>&1
    rc=$?
    say "     fsck on B after the kills: exit $rc, $(grep -c . "$LOGS/fsck1.log") lines"
    [ $rc = 0 ] || [ $rc = 4 ] || { cat "$LOGS/fsck1.log"; return 1; }
    i=0
    until timeout -k 5 60 "$DELTAFS" --root "$SB" fsck --repair >"$LOGS/fsck2.log" 2>&1; do
      i=$((i + 1))
      [ $i -gt 20 ] && { cat "$LOGS/fsck2.log"; return 1; }
      sleep 0.2
    done
    timeout -k 5 60 "$DELTAFS" --root "$SB" fsck >"$LOGS/fsck3.log" 2>&1 || { cat "$LOGS/fsck3.log"; return 1; }
  else
    say "     (deltafs CLI not built: the library's recovery only)"
  fi
  # Every entity reads back whole through B; no temp is left.
  $CHECK verify "$SB" kw
}
step "writers SIGKILLed on A, fsck --repair and read-back on B" killed_writers

if [ -n "$UNIT_BG" ]; then
  if wait "$UNIT_BG"; then
    say "ok   test_storage on the mount ($(($(date +%s) - UNIT_T0)) s, in the background)"
  else
    fail "test_storage on the mount"
  fi
  PIDS=""
  unit_report test_storage
fi

# ---- 4. overhead ------------------------------------------------------------
# On the mount, then on the local disk under the scratch directory for
# comparison.
mkdir -p "$SCR/local"
for d in "$A/bench" "$SCR/local"; do
  timeout -k 5 150 "$DISTFS_OVERHEAD" "$d" 5 20 >"$LOGS/overhead.log" 2>&1 ||
    fail "overhead run on $d"
  sed 's/^/distfs: /' "$LOGS/overhead.log"
done

if [ $FAILED != 0 ]; then
  say "FAILED (logs: glusterd/mount/cli logs were in $LOGS)"
  exit 1
fi
say "all passed"
exit 0
