#!/bin/sh
# run-on-ext4.sh — run the benchmark on a journaled ext4 filesystem made for
# the purpose, then tear it down.
#
# Why: the machines' root disk is ext4 WITHOUT a journal
# (NOTES-durability.md), where no fsync pattern is crash-atomic and deltafs
# falls back to its most conservative sync; real deployments run journaled
# ext4, XFS or a network filesystem.  So: a sparse image under /var/tmp (the
# real disk, not tmpfs), `mkfs.ext4` with its defaults (journal,
# data=ordered), loop-mounted on /mnt/dfs-bench; the benchmark; unmount,
# detach, remove — also when interrupted.
#
# usage: bench/run-on-ext4.sh [BENCH-BINARY] [bench options...]
#   BENCH-BINARY defaults to build/bench/deltafs-bench (or $DELTAFS_BENCH).
#   --full needs a bigger image: DFS_BENCH_IMG_SIZE (default 3G, 16G with
#   --full; sparse, so only what is written takes space).
# Needs root (mount); without it exits 77 (skip).  Needs e2fsprogs.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${DELTAFS_BENCH:-$here/../build/bench/deltafs-bench}
case "${1:-}" in
  -*|"") ;;
  *) bin=$1; shift ;;
esac
[ -x "$bin" ] || { echo "run-on-ext4.sh: no benchmark binary at $bin" >&2; exit 2; }

if [ "$(id -u)" != 0 ]; then
  echo "run-on-ext4.sh: needs root to loop-mount an ext4 image; skipping" >&2
  exit 77
fi
if ! command -v mkfs.ext4 >/dev/null 2>&1; then
  apt-get install -y e2fsprogs >/dev/null 2>&1 || { echo "run-on-ext4.sh: no mkfs.ext4" >&2; exit 77; }
fi

size=${DFS_BENCH_IMG_SIZE:-3G}
# 100k entities are 300k small files (blob, metadata, lock): more inodes
# than mkfs's default ratio gives a 3G image.
mkfs_opts="-N 800000"
for a in "$@"; do
  if [ "$a" = --full ]; then
    size=${DFS_BENCH_IMG_SIZE:-16G}
    # a million entities are two million small files: one inode per 4 KiB
    mkfs_opts="-N 3500000"
  fi
done

img=$(mktemp /var/tmp/dfs-bench.XXXXXX.img)
mnt=$(mktemp -d /mnt/dfs-bench.XXXXXX 2>/dev/null || mktemp -d /var/tmp/dfs-bench-mnt.XXXXXX)
mounted=0
cleanup() {
  if [ "$mounted" = 1 ]; then umount "$mnt" || umount -l "$mnt"; fi
  rmdir "$mnt" 2>/dev/null || true
  rm -f "$img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

truncate -s "$size" "$img"
# shellcheck disable=SC2086
mkfs.ext4 -q -F $mkfs_opts "$img"
mount -o loop "$img" "$mnt"
mounted=1
echo "run-on-ext4.sh: journaled ext4 ($size image, $(findmnt -no OPTIONS "$mnt")) at $mnt" >&2
"$bin" --dir "$mnt" "$@"
