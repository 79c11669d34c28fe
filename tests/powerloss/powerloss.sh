#!/bin/bash
# powerloss.sh — deltafs's power-loss replay, in user space.
#
# DESIGN
# ======
# Filesystem test suites check crash consistency with dm-log-writes: a
# device-mapper target that logs every write and every flush reaching a
# block device, so that the disk can be rebuilt as it would be after a
# power cut at any point.  Device-mapper is not available here, so this
# harness builds the same thing from a loop device and FUSE:
#
#   ext4 (journaled, data=ordered, default mkfs)
#     on /dev/loopN (--direct-io=on)
#       backed by <fuse mount>/disk.img, served by plfuse (plfuse.c)
#         which applies each write to a live image and appends it to a log
#
# The loop driver turns the block layer's cache flushes (REQ_PREFLUSH, and
# FUA, which the loop device does not advertise so the block layer emulates
# it with a flush) into fsync() of its backing file; FUSE delivers that
# fsync to plfuse, which logs it as a flush.  plfuse serves disk.img with
# direct_io (no FUSE page cache) and runs single-threaded, so the log is
# the exact order of writes and flushes ext4 sent to its "disk".
#
# The workload (plworkload.c) is linked with the real deltafs library in
# its normal, durable mode (not DFS_OPT_NO_SYNC).  It creates, overwrites
# and deletes a few entities and rewrites a template, one operation at a
# time, and marks each operation in the same log through a side channel:
# plfuse's second file, ctl.  A marker "B <op>" is written before the
# library call, "A <op>" after it returned 0 (acknowledged).  Because plfuse
# handles requests one at a time, an "A" marker is logged after the flush
# that made its operation durable: the log needs no clock or offsets to tie
# acknowledgements to disk state.  (A separate log file outside the image
# would need the recorder's position sampled at the right moment; the
# in-band marker is exact by construction.)
#
# XFS (PL_FS=xfs) takes ext4's place in the same stack: a 64 MiB XFS with
# 4 KiB blocks, mounted with default options (its log is always on, and
# the library's auto mode picks sync_file_range + directory fsync there as
# on journaled ext4); the replay mounts each state as xfs (log recovery
# runs) and samples `xfs_repair -n` instead of `e2fsck -fn`.  Everything
# else — recorder, workload, crash states, checks — is the same.
#
# After the workload, ext4 is unmounted and the recording stops.  plreplay
# (plreplay.c; its header explains the crash states and expectations in
# full) then walks the log: for every flush interval it rebuilds the disk
# with (a) every unflushed write lost, (b) every prefix of the unflushed
# writes, (c) seeded random subsets of them; attaches each state to a loop
# device, mounts it (ext4 replays its journal), opens the store with
# deltafs (recovery runs) and checks that every entity reads as a version
# that was written, byte for byte (never torn, empty or garbage, never
# DFS_ECORRUPT), that every operation acknowledged before the cut took
# effect, that no temp file survives recovery, that list and read agree,
# and (once the library has dfs_fsck) that fsck finds nothing unexpected.
#
# The self-check: the same harness runs with workloads linked against
# libraries built with DFS_BROKEN_SKIP_FILE_FSYNC (no fsync of the temps
# before the renames) and DFS_BROKEN_SKIP_DIR_FSYNC (no fsync of files/
# after them).  Those runs must find a violation (--expect-violation): a
# replay that cannot catch a missing fsync proves nothing.
#
# POWER LOSS DURING RECOVERY (--recovery-replay; ctest powerloss_recovery).
# The replay above cuts power while the workload runs, never while
# recovery (dfs_storage_open) rolls pending writes forward, unlinks temps
# and fsyncs directories.  In this mode, after each recording, plreplay
# --scan-tmp mounts every crash state (without opening the store) and
# lists .deltafs-tmp/ (then runs recovery on that scratch copy to see
# which metadata temps it rolls forward); of the states where recovery has
# work, a seeded sample of PL_REC_STATES per recording is taken: states
# with a roll-forward first (at most half), then states with any pending
# metadata temp, then the rest.  For each: the state's image is
# served through plfuse as a second recording's base, loop-mounted (the
# file system's own journal/log replay is recorded too) and `plreplay
# --recover-only` runs recovery on it, then unmounts: the recovery log.
# plreplay --base-state N --nested-log then replays every flush interval,
# prefix and --subsets random subsets of that log on top of state N's image
# and checks each nested state with a second recovery against state N's own
# expectations.  The run fails if no state had recovery work, if a recovery
# log has no flush, or if no nested state was checked (a vacuous pass).
#
# Before replaying, the harness checks that flushes reached the recorder:
# the workload first fsyncs a file of its own between two calibration
# markers, and plreplay refuses a log without a flush between them (a
# recording whose flushes got lost would make every crash state look
# "durable" and prove nothing).
#
# Usage (ctest runs it; see tests/powerloss/CMakeLists.txt):
#   bash powerloss.sh --name NAME --workload BIN --replay BIN [--plfuse BIN]
#                     [--expect-violation] [--default-configs "M:T ..."]
#                     [--recovery-replay [--recover BIN]]
# (--recover: the program run as `BIN --recover-only STORE` to record
# recovery; default: the --replay binary.)
# (--default-configs replaces the built-in PL_CONFIGS default below, for a
# test that needs a shorter run; PL_CONFIGS in the environment still wins.)
# Environment:
#   PL_FS=ext4|xfs    the file system recorded and replayed (default ext4)
#   PL_OPS=N          operations per recording (default 24)
#   PL_SUBSETS=N      random subsets per flush interval (default 2)
#   PL_CONFIGS="M:T ..." recordings per round: DELTAFS_SYNC_MODE M for the
#                     workload, T threads (default "auto:1 auto:2
#                     fdatasync:1 fsync:1"; broken builds: "auto:1 auto:2
#                     fdatasync:1", and each must catch the broken build)
#   PL_ROUNDS=N       repeat the configurations with seeds +1.. (default 1)
#   PL_SEED=N         first seed (default 1)
#   PL_MAX_STATES=N   stop each replay after N states
#   PL_E2FSCK_EVERY=N e2fsck -fn (xfs: xfs_repair -n) every Nth state
#                     (default 10; 0: never)
#   PL_IMAGE_MB=N     image size (default 64)
#   PL_LONG=1         a longer run: PL_OPS=48 PL_SUBSETS=8 PL_ROUNDS=3
#   PL_KEEP=1         keep the scratch directory (logs, images)
#   PL_REC_STATES=N   --recovery-replay: crash states sampled per recording
#                     (default 4)
# Exit: 0 pass, 1 fail, 77 skipped (not root, no FUSE, no loop devices, no
# kernel support for PL_FS).
set -u

name=powerloss workload= replay= plfuse= expect= default_configs= recmode= recover=
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --replay) replay=$2; shift 2 ;;
    --plfuse) plfuse=$2; shift 2 ;;
    --expect-violation) expect=--expect-violation; shift ;;
    --default-configs) default_configs=$2; shift 2 ;;
    --recovery-replay) recmode=1; shift ;;
    --recover) recover=$2; shift 2 ;;
    *) echo "$name: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$workload" ] && [ -n "$replay" ] || { echo "$name: --workload and --replay are required" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
[ -n "$recover" ] || recover=$replay
[ -n "$recmode" ] && [ -n "$expect" ] && { echo "$name: --recovery-replay and --expect-violation do not mix" >&2; exit 2; }

skip() { echo "$name: SKIP: $*"; exit 77; }
say() { echo "$name: $*"; }

if [ "${PL_LONG:-0}" = 1 ]; then
  : "${PL_OPS:=48}" "${PL_SUBSETS:=8}" "${PL_ROUNDS:=3}"
fi
ops=${PL_OPS:-24} subsets=${PL_SUBSETS:-2} rounds=${PL_ROUNDS:-1} seed=${PL_SEED:-1}
if [ -n "$default_configs" ]; then configs=${PL_CONFIGS:-$default_configs}
elif [ -n "$expect" ]; then configs=${PL_CONFIGS:-"auto:1 auto:2 fdatasync:1"}
else configs=${PL_CONFIGS:-"auto:1 auto:2 fdatasync:1 fsync:1"}; fi
image_mb=${PL_IMAGE_MB:-64}
rec_per=${PL_REC_STATES:-4}
fs=${PL_FS:-ext4}
case "$fs" in
  ext4) fs_desc="journaled ext4" fsck_cmd="e2fsck -fn" ;;
  xfs) fs_desc="XFS" fsck_cmd="xfs_repair -n" ;;
  *) echo "$name: PL_FS=$fs: only ext4 and xfs are supported" >&2; exit 2 ;;
esac

# ---- prerequisites --------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (loop devices, mounts, FUSE)"
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
[ -c /dev/fuse ] || skip "no /dev/fuse (FUSE unavailable in this environment)"
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
[ -c /dev/loop-control ] || skip "no /dev/loop-control (loop devices unavailable)"
grep -qw "$fs" /proc/filesystems || modprobe "$fs" 2>/dev/null || true
grep -qw "$fs" /proc/filesystems || skip "the kernel has no $fs"

need_pkgs=
if [ "$fs" = xfs ]; then
  { command -v mkfs.xfs && command -v xfs_repair; } >/dev/null 2>&1 || need_pkgs="$need_pkgs xfsprogs"
else
  command -v mkfs.ext4 >/dev/null 2>&1 || need_pkgs="$need_pkgs e2fsprogs"
fi
command -v fusermount3 >/dev/null 2>&1 || need_pkgs="$need_pkgs fuse3"
command -v losetup >/dev/null 2>&1 || need_pkgs="$need_pkgs mount"
if [ -z "$plfuse" ] || [ ! -x "$plfuse" ]; then
  pkg-config --exists fuse3 2>/dev/null || need_pkgs="$need_pkgs libfuse3-dev pkg-config"
fi
if [ -n "$need_pkgs" ]; then
  say "installing$need_pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y $need_pkgs >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y $need_pkgs >/dev/null 2>&1; } ||
    skip "could not install$need_pkgs"
fi

scratch=$(mktemp -d /var/tmp/dfs-powerloss.XXXXXX) || { echo "$name: mktemp failed" >&2; exit 1; }
fusemnt=$scratch/fuse extmnt=$scratch/$fs
mkdir -p "$fusemnt" "$extmnt"
loopdev= fusepid= workpid= replaypid= failed=0

# Every exit path: unmount ext4 (or xfs), detach the loop device, unmount FUSE, stop
# the recorder (only the one we started, by pid), remove the scratch files.
cleanup() {
  set +e
  # Our own children first, by pid: plreplay unmounts its state on SIGTERM.
  for p in $replaypid $workpid; do
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  if mountpoint -q "$extmnt" 2>/dev/null; then umount "$extmnt" 2>/dev/null || umount -l "$extmnt"; fi
  if [ -d "$scratch/replay/mnt" ] && mountpoint -q "$scratch/replay/mnt"; then
    umount "$scratch/replay/mnt" 2>/dev/null || umount -l "$scratch/replay/mnt"
  fi
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
  if mountpoint -q "$fusemnt" 2>/dev/null; then fusermount3 -u "$fusemnt" 2>/dev/null || umount -l "$fusemnt"; fi
  if [ -n "$fusepid" ] && kill -0 "$fusepid" 2>/dev/null; then
    kill "$fusepid" 2>/dev/null; wait "$fusepid" 2>/dev/null
  fi
  if [ "${PL_KEEP:-0}" = 1 ] || [ "$failed" = 1 ]; then
    # On a failure the log and base image are what reproduces it:
    #   plreplay --fstype FS --verbose [--seed S --subsets N] base.img log.bin DIR, then --state K
    rm -f "$scratch/live.img" "$scratch/replay/state.img" "$scratch/rlive.img"
    say "kept $scratch (log.bin, base.img, replay.out)"
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ -z "$plfuse" ] || [ ! -x "$plfuse" ]; then
  plfuse=$scratch/plfuse
  cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra $(pkg-config --cflags fuse3) -I"$here" \
     "$here/plfuse.c" -o "$plfuse" $(pkg-config --libs fuse3) ||
    { echo "$name: cannot build the FUSE recorder" >&2; exit 1; }
fi

# ---- record ---------------------------------------------------------------
# One recording: fresh image, recorder, loop device, ext4/xfs, workload.
# Serve image $1 through the recorder (log $2), attach it to a loop device
# and mount it on $extmnt.  Direct I/O: the loop device writes straight to
# the FUSE file (no second page cache).  Other processes may race for a
# free device: retry.
recorder_mount() { # $1 = image, $2 = log
  "$plfuse" "$1" "$2" "$fusemnt" 2>"$scratch/plfuse.err" &
  fusepid=$!
  for _ in $(seq 100); do [ -e "$fusemnt/disk.img" ] && break; sleep 0.1; done
  [ -e "$fusemnt/disk.img" ] || { echo "$name: the FUSE recorder did not start:" >&2; cat "$scratch/plfuse.err" >&2; return 1; }
  for _ in 1 2 3 4 5; do
    loopdev=$(losetup -f --show --direct-io=on "$fusemnt/disk.img" 2>/dev/null) && break
    loopdev=; sleep 0.2
  done
  [ -n "$loopdev" ] || { echo "$name: cannot attach a loop device" >&2; return 1; }
  [ "$(losetup -n -O DIO "$loopdev" | tr -d ' ')" = 1 ] ||
    say "note: the loop device did not enable direct I/O (writes still reach the recorder: direct_io FUSE file)"
  mount -t "$fs" "$loopdev" "$extmnt" || { echo "$name: cannot mount $fs on $loopdev" >&2; return 1; }
}

# Unmount, detach, and stop the recorder (which then closes its log).
recorder_unmount() {
  umount "$extmnt" || return 1
  losetup -d "$loopdev"; loopdev=
  fusermount3 -u "$fusemnt" || return 1
  wait "$fusepid" || { echo "$name: the recorder failed:" >&2; cat "$scratch/plfuse.err" >&2; fusepid=; return 1; }
  fusepid=
}

record() { # $1 = seed, $2 = DELTAFS_SYNC_MODE, $3 = threads
  rm -f "$scratch/base.img" "$scratch/live.img" "$scratch/log.bin" "$scratch/workload.out"
  truncate -s "${image_mb}M" "$scratch/base.img" || return 1
  if [ "$fs" = xfs ]; then
    # Default XFS (the log is always on), 4 KiB blocks, no discard (-K).
    # mkfs.xfs (xfsprogs >= 5.19) refuses file systems under 300 MB.  Its
    # escape hatch for fstests, which formats tiny file systems on
    # purpose: when TEST_DIR, TEST_DEV and QA_CHECK_FS are all set (to
    # anything), validate_supported() in mkfs/xfs_mkfs.c skips its
    # "supported configuration" checks, the 300 MB floor among them.  The
    # values are never used.  A 64 MiB XFS (a small log, few AGs) keeps
    # each of the thousands of state images cheap to build.
    TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -K -b size=4096 \
      "$scratch/base.img" || return 1
  else
    # Default journaled ext4 (data=ordered at mount).  4 KiB blocks as on a
    # real disk (mke2fs would pick 1 KiB for so small an image); inode tables
    # and journal initialized now, so no lazy-init thread writes during the
    # recording.
    mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0,nodiscard \
      "$scratch/base.img" || return 1
  fi
  cp "$scratch/base.img" "$scratch/live.img" || return 1

  recorder_mount "$scratch/live.img" "$scratch/log.bin" || return 1

  DELTAFS_SYNC_MODE=$2 "$workload" "$extmnt/store" "$fusemnt/ctl" "$1" "$ops" "$3" \
    > "$scratch/workload.out" &
  workpid=$!
  wait "$workpid" || { workpid=; cat "$scratch/workload.out"; echo "$name: the workload failed" >&2; return 1; }
  workpid=
  # What the library detected and chose ("fs xfs (journal yes), temp sync
  # sfr").  The workload's own file system must be the one under test; on
  # XFS, auto must pick sync_file_range, or the "auto" recordings would
  # not exercise what they are meant to.
  cat "$scratch/workload.out"
  grep -q "^plworkload: fs $fs " "$scratch/workload.out" ||
    { echo "$name: the library did not detect $fs under the store" >&2; return 1; }
  if [ "$fs" = xfs ] && [ "$2" = auto ] && ! grep -q "temp sync sfr\$" "$scratch/workload.out"; then
    echo "$name: on XFS the library's auto mode did not pick sync_file_range (commit.c)" >&2
    return 1
  fi

  recorder_unmount
}

# ---- power loss during recovery (--recovery-replay) ------------------------
# Record recovery on crash state $1 of the current recording: serve the
# state's image through plfuse, mount it, run recovery, unmount.  Leaves
# $scratch/rlog.bin.
record_recovery() { # $1 = state number, $2 = seed (numbers the states)
  rm -f "$scratch/rlive.img" "$scratch/rlog.bin"
  "$replay" --fstype "$fs" --seed "$2" --subsets "$subsets" --state "$1" \
    "$scratch/base.img" "$scratch/log.bin" "$scratch/replay" > /dev/null || return 1
  mv "$scratch/replay/state.img" "$scratch/rlive.img" || return 1
  recorder_mount "$scratch/rlive.img" "$scratch/rlog.bin" || return 1
  "$recover" --recover-only "$extmnt/store" > "$scratch/recover.out" 2>&1 &
  workpid=$!
  wait "$workpid" || { workpid=; cat "$scratch/recover.out"; echo "$name: recovery failed on crash state $1" >&2; return 1; }
  workpid=
  recorder_unmount || return 1
  rm -f "$scratch/rlive.img"
}

# One recording's recovery replay: scan, sample, record, nested replay.
rec_sampled=0 rec_rollfwd=0 rec_logs=0 rec_nested=0 rec_bad=0
recovery_replay() { # $1 = seed
  local scan=$scratch/scan.out picks n k line nested
  "$replay" --fstype "$fs" --seed "$1" --subsets "$subsets" --scan-tmp \
    "$scratch/base.img" "$scratch/log.bin" "$scratch/replay" > "$scan" &
  replaypid=$!
  wait "$replaypid" || { replaypid=; echo "$name: the temp scan failed" >&2; return 1; }
  replaypid=
  if grep -q '^tmpscan [0-9]* unmountable' "$scan"; then
    grep '^tmpscan [0-9]* unmountable' "$scan" | head -n 5
    echo "$name: unmountable crash states (see the normal powerloss test)" >&2; return 1
  fi
  say "$(grep -c '^tmpscan' "$scan") crash states scanned: $(awk '$1 == "tmpscan" && $4 + $6 > 0' "$scan" | wc -l) with temps for recovery, $(awk '$1 == "tmpscan" && $4 > 0' "$scan" | wc -l) with a pending metadata temp, $(awk '$1 == "tmpscan" && $8 > 0' "$scan" | wc -l) of them rolled forward by recovery"
  # A seeded shuffle of each group: roll-forward states first (at most
  # half of the sample: they tend to be a few neighbours in one interval),
  # then other states with a metadata temp, then the rest.
  picks=$(awk -v seed="$1" '
    BEGIN { srand(seed) }
    $1 == "tmpscan" && $4 + $6 > 0 { print ($8 > 0 ? 0 : $4 > 0 ? 1 : 2), rand(), $2 }' "$scan" |
    sort -k1,1n -k2,2g | awk -v max="$rec_per" '
      $1 == 0 && n0 >= (max + 1) / 2 { next }
      n < max { n++; n0 += $1 == 0; print $3 }')
  for n in $picks; do
    rec_sampled=$((rec_sampled + 1))
    line=$(grep "^tmpscan $n " "$scan" | sed 's/ \[.*//')
    case "$line" in *" rollfwd 0") ;; *) rec_rollfwd=$((rec_rollfwd + 1)) ;; esac
    record_recovery "$n" "$1" || return 1
    rec_logs=$((rec_logs + 1))
    say "crash state $n (${line#tmpscan $n }): $(sed 's/^plreplay: recover-only: //' "$scratch/recover.out")"
    set -- "$1" --fstype "$fs" --seed "$1" --subsets "$subsets" --base-state "$n" \
      --nested-log "$scratch/rlog.bin" --e2fsck-every "${PL_E2FSCK_EVERY:-10}"
    [ -n "${PL_MAX_STATES:-}" ] && set -- "$@" --max-states "$PL_MAX_STATES"
    nested=$scratch/nested.$n.out
    "$replay" "${@:2}" "$scratch/base.img" "$scratch/log.bin" "$scratch/replay" > "$nested" &
    replaypid=$!
    wait "$replaypid"
    rc=$?
    replaypid=
    set -- "$1"
    grep -E '^(VIOLATION|UNMOUNTABLE)' "$nested" | head -n 40
    grep '^note' "$nested" | sed 's/ \[.*\]//' | sort | uniq -c | head -n 10
    grep -E '^plreplay: (recovery log|[0-9]+ crash states|.*found)' "$nested" | sed "s/^/  state $n: /"
    if [ $rc -gt 1 ]; then
      cat "$nested" | grep -v '^state ' | tail -n 5
      echo "$name: FAIL: the nested replay of crash state $n could not run (exit $rc)" >&2
      return 1
    fi
    k=$(sed -n 's/^plreplay: \([0-9]*\) crash states.*/\1/p' "$nested" | tail -n 1)
    rec_nested=$((rec_nested + ${k:-0}))
    [ $rc = 0 ] || { rec_bad=$((rec_bad + 1)); cp "$scratch/rlog.bin" "$scratch/rlog.$n.bin"; }
    [ "${k:-0}" -gt 0 ] || { echo "$name: FAIL: no nested state was checked for crash state $n" >&2; return 1; }
  done
}

# ---- replay ---------------------------------------------------------------
# Each configuration is MODE:THREADS — DELTAFS_SYNC_MODE for the workload
# (auto: what the library picks for journaled ext4 or XFS; fdatasync and fsync:
# the modes it uses elsewhere, forced) and the workload's thread count (2:
# operations on different entities overlap and share directory fsyncs).
status=0 caught=0 tried=0
for r in $(seq 0 $((rounds - 1))); do
  for cfg in $configs; do
    mode=${cfg%%:*} threads=${cfg##*:}
    s=$((seed + r))
    tried=$((tried + 1))
    say "recording $ops operations (seed $s, DELTAFS_SYNC_MODE=$mode, $threads thread(s)) on a ${image_mb} MiB $fs_desc"
    record "$s" "$mode" "$threads" || exit 1
    mkdir -p "$scratch/replay"
    if [ -n "$recmode" ]; then
      recovery_replay "$s" || { failed=1; exit 1; }
      [ $rec_bad = 0 ] || { status=1 failed=1; break 2; }
      continue
    fi
    set -- --fstype "$fs" --seed "$s" --subsets "$subsets"
    [ -n "${PL_MAX_STATES:-}" ] && set -- "$@" --max-states "$PL_MAX_STATES"
    # e2fsck -fn (xfs_repair -n) on a sample of the states after recovery
    # and unmount: a sanity check of the harness (the file system itself
    # must come back clean).
    [ -z "$expect" ] && set -- "$@" --e2fsck-every "${PL_E2FSCK_EVERY:-10}"
    [ -n "$expect" ] && set -- "$@" "$expect"
    # In the background so a signal to this script runs the cleanup at
    # once (bash runs traps only between foreground commands).
    "$replay" "$@" "$scratch/base.img" "$scratch/log.bin" "$scratch/replay" > "$scratch/replay.out" &
    replaypid=$!
    wait "$replaypid"
    rc=$?
    replaypid=
    # Violations first (capped), then the summary lines.
    grep -E '^(VIOLATION|UNMOUNTABLE)' "$scratch/replay.out" | head -n 40
    n=$(grep -cE '^(VIOLATION|UNMOUNTABLE)' "$scratch/replay.out")
    [ "$n" -gt 40 ] && say "... $((n - 40)) more violation lines"
    notes=$(grep -c '^note' "$scratch/replay.out")
    [ "$notes" -gt 0 ] && say "$notes notes (expected crash leftovers reported by fsck, $fsck_cmd findings):" &&
      grep '^note' "$scratch/replay.out" | sed 's/ \[.*\]//' | sort | uniq -c | head -n 10
    grep -E '^plreplay:' "$scratch/replay.out"
    if [ $rc -gt 1 ]; then
      echo "$name: FAIL: the replay could not run (exit $rc)" >&2
      failed=1
      exit 1
    fi
    if [ -n "$expect" ]; then
      if [ $rc = 0 ]; then
        caught=$((caught + 1))
      else
        echo "$name: this configuration did NOT catch the broken build" >&2
        status=1 failed=1
        break 2
      fi
    elif [ $rc != 0 ]; then
      status=1 failed=1
      break 2 # keep this recording for the report
    fi
  done
done
if [ -n "$recmode" ]; then
  say "power loss during recovery: $rec_sampled crash states sampled ($rec_rollfwd with a roll-forward), $rec_logs recovery logs recorded, $rec_nested nested states checked, $rec_bad with violations"
  if [ $status != 0 ]; then
    echo "$name: FAIL: a power cut during recovery left a state that violates the crash guarantees (above)" >&2
    exit 1
  fi
  # Self-check: a run that exercised nothing must not pass.
  if [ $rec_sampled = 0 ] || [ $rec_logs = 0 ] || [ $rec_nested = 0 ]; then
    echo "$name: FAIL: vacuous run (no crash state with recovery work, no recovery log or no nested state)" >&2
    failed=1
    exit 1
  fi
  say "PASS: $tried recordings on $fs, no violation when power is cut during recovery"
  exit 0
fi
if [ -n "$expect" ]; then
  if [ $status = 0 ]; then
    say "PASS: the deliberately broken build was caught on $fs in all $caught configurations"
  else
    echo "$name: FAIL: the broken build was caught in only $caught of $tried configurations: the replay is not strong enough" >&2
  fi
  exit $status
fi
if [ $status = 0 ]; then say "PASS: $tried recordings on $fs, no violation"; else echo "$name: FAIL: deltafs violated its crash guarantees (above)" >&2; fi
exit $status
