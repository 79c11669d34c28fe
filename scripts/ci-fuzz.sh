#!/bin/sh
# ci-fuzz.sh — build the libFuzzer targets (tests/fuzz/) with clang and run
# each for a bounded time.
#
#   scripts/ci-fuzz.sh                 30 s per target (4 targets: ~2 min,
#                                      plus ~30 s to build)
#   DFS_FUZZ_SECONDS=600 scripts/ci-fuzz.sh      a longer local run
#   DFS_FUZZ_TARGETS="fuzz_meta" scripts/ci-fuzz.sh
#
# Build dir: $DFS_FUZZ_DIR (default build-fuzz), configured with clang.
# Each run starts from the seed corpus in tests/fuzz/corpus/<target>/
# (read only: new inputs go to a scratch corpus in the build dir, so CI
# never changes the tree).  A broken property, a crash, a leak, undefined
# behaviour or a timeout (-timeout=10 s per input) fails the script; the
# input is kept as <build>/fuzz-artifacts/<target>/crash-* and printed in
# hex.  To make it a regression test, copy it into the target's corpus
# directory (the replay tests run it with any compiler).
#
# Needs clang and libclang-rt-14-dev (libFuzzer's runtime): installed when
# missing and root; otherwise exits 77 (skipped) with a message.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DFS_FUZZ_DIR:-$ROOT/build-fuzz}
SECONDS_EACH=${DFS_FUZZ_SECONDS:-30}
TARGETS=${DFS_FUZZ_TARGETS:-fuzz_meta fuzz_timestamp fuzz_id fuzz_key}
JOBS=${DFS_JOBS:-2}

DFS_EXTRA_PKGS="clang libclang-rt-14-dev" sh "$ROOT/scripts/install-deps.sh"
if ! command -v clang >/dev/null 2>&1; then
  echo "ci-fuzz: skipped: clang is not installed (apt-get install clang libclang-rt-14-dev)"
  exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
  clang -x c -fsanitize=fuzzer - -o /tmp/dfs-fuzz-probe.$$ >/dev/null 2>&1; then
  rm -f /tmp/dfs-fuzz-probe.$$
  echo "ci-fuzz: skipped: clang cannot link libFuzzer (install libclang-rt-14-dev)"
  exit 77
fi
rm -f /tmp/dfs-fuzz-probe.$$

echo "ci-fuzz: building in $DIR"
mkdir -p "$DIR"
CC=clang cmake -S "$ROOT" -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFS_BUILD_TOOLS=OFF \
  >"$DIR.configure.log" 2>&1 || { cat "$DIR.configure.log"; exit 1; }
# A clang build dir whose cache says another compiler cannot be reused.
grep -q 'CMAKE_C_COMPILER_ID:.*Clang\|CMAKE_C_COMPILER:.*clang' "$DIR/CMakeCache.txt" || {
  echo "ci-fuzz: $DIR was configured with another compiler; remove it"
  exit 1
}
timeout 600 cmake --build "$DIR" -j"$JOBS" --target fuzz >"$DIR.build.log" 2>&1 ||
  { tail -50 "$DIR.build.log"; exit 1; }

failed=""
total=0
for t in $TARGETS; do
  work="$DIR/fuzz-work/$t"
  art="$DIR/fuzz-artifacts/$t"
  mkdir -p "$work" "$art"
  log="$DIR/fuzz-$t.log"
  echo "ci-fuzz: $t for ${SECONDS_EACH}s"
  # -max_total_time bounds the run; `timeout` bounds a hang in startup.
  if timeout $((SECONDS_EACH + 60)) "$DIR/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
    "$work" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "ci-fuzz: $t: ${runs:-?} executions, no failure"
    total=$((total + ${runs:-0}))
  else
    echo "ci-fuzz: $t FAILED; last lines of $log:"
    tail -40 "$log"
    for a in "$art"/*; do
      [ -f "$a" ] || continue
      echo "ci-fuzz: failing input $a:"
      od -A d -t x1z "$a" | head -20
    done
    failed="$failed $t"
  fi
done

echo "ci-fuzz: $total executions in total"
if [ -n "$failed" ]; then
  echo "ci-fuzz: FAILED:$failed"
  exit 1
fi
echo "ci-fuzz: passed"
