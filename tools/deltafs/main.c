/*
 * main.c — `deltafs [--root DIR] COMMAND [ARGS]`: global options and the
 * command table (DESIGN §5).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef DFS_VERSION_STRING
#define DFS_VERSION_STRING "unknown"
#endif

struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
};

static const struct command commands[] = {
    {"init", cmd_init, "create the store layout"},
    {"put", cmd_put, "store a blob (from FILE or stdin), optionally sealed"},
    {"get", cmd_get, "print a blob (decrypted with --key)"},
    {"meta", cmd_meta, "print an entity's metadata as JSON"},
    {"ls", cmd_ls, "list entity ids, one per line"},
    {"exists", cmd_exists, "exit 0 if an entity exists, 1 if not"},
    {"rm", cmd_rm, "remove an entity"},
    {"template", cmd_template, "put, get or list JSON Schema templates"},
    {"lock", cmd_lock, "run a command holding an entity's lock (like flock(1))"},
    {"keygen", cmd_keygen, "generate a 256-bit key (64 hex digits)"},
#ifdef DFS_HAVE_FSCK
    {"fsck", cmd_fsck, "report (and repair) leftovers and torn pairs"},
#endif
#ifdef DFS_HAVE_BENCH
    {"bench", cmd_bench, "run the benchmark suite"},
#endif
    {"demo", cmd_demo, "a guided tour on a scratch store"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
  fprintf(f,
          "usage: deltafs [--root DIR] COMMAND [ARGS]\n"
          "\n"
          "Encrypted JSON entities on a shared filesystem, with per-entity locks.\n"
          "\n"
          "Commands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "Options:\n"
          "  --root DIR   the store (default: $DELTAFS_ROOT, else ./deltafs-data)\n"
          "  --help       this help; 'deltafs COMMAND --help' for a command's\n"
          "  --version    print the version\n"
          "\n"
          "Exit status: 0 ok, 1 no (missing), 2 usage or invalid id, 3 lock busy or\n"
          "timed out, 4 corrupt data or failed decryption, 5 version conflict,\n"
          "6 other failure.  See deltafs(1).\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"root", 1, NULL, 'R'},
      {"help", 0, NULL, 'h'},
      {"version", 0, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  int opt;

  opterr = 0;
  /* '+': stop at the command name; its options are its own. */
  while ((opt = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
    switch (opt) {
    case 'R':
      cli_set_root(optarg);
      break;
    case 'h':
      usage(stdout);
      return CLI_EXIT_OK;
    case 'V':
      printf("deltafs %s\n", DFS_VERSION_STRING);
      return CLI_EXIT_OK;
    default:
      if (optopt == 'R')
        return cli_usage_error("options", "--root needs a directory");
      return cli_usage_error("options", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) {
    usage(stderr);
    cli_errorf("usage", "no command given");
    return CLI_EXIT_USAGE;
  }
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(argv[optind], commands[i].name) == 0) {
      char **sub = argv + optind;
      int subc = argc - optind;
      optind = 0; /* glibc: re-initialize getopt for the command's parse */
      opterr = 0;
      return commands[i].fn(subc, sub);
    }
  }
  cli_errorf(argv[optind], "unknown command (see 'deltafs --help')");
  return CLI_EXIT_USAGE;
}
