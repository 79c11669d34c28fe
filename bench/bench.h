/*
 * bench.h — the deltafs benchmark suite (bench.c), shared by the
 * `deltafs bench` command (tools/deltafs/cmd_bench.c) and the standalone
 * `deltafs-bench` program (bench/main.c).
 */
#ifndef DFS_BENCH_H
#define DFS_BENCH_H

/* Run the suite.  argv[0] is the program or command name; the options are
 * described by --help.  Returns the exit status: 0 (targets are reported,
 * not asserted, unless --strict), 1 a correctness failure (a lost update, a
 * wrong list count, an operation that failed) or, with --strict, a missed
 * target; 2 a usage error. */
int dfs_bench_main(int argc, char **argv);

#endif
