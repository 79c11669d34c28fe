/*
 * cmd_bench.c — `deltafs bench`: the benchmark suite of bench/bench.c
 * (also built as the standalone deltafs-bench).  Options: see --help.
 */
#include "bench.h"
#include "cli.h"

int cmd_bench(int argc, char **argv)
{
  return dfs_bench_main(argc, argv);
}
