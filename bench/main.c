/*
 * main.c — the standalone `deltafs-bench` program: the same suite as
 * `deltafs bench` (bench.c), for machines where only the library and its
 * tools are built.
 */
#include "bench.h"

int main(int argc, char **argv)
{
  return dfs_bench_main(argc, argv);
}
