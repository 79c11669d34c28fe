/*
 * cli.h — shared declarations of the deltafs command-line tool.
 *
 * Each command is `int cmd_<name>(int argc, char **argv)`: argv[0] is the
 * command name ("put"), the rest its arguments; it returns the process exit
 * status (CLI_EXIT_*).  The global options (--root) are parsed by main.c
 * before dispatch; cli_root() gives the result.  Commands print their
 * failures with cli_fail()/cli_fail_rc(), exactly one line each:
 *
 *     deltafs: <command>: <what failed>: <why>
 *
 * The tool uses only the public API (the headers in include/deltafs/).
 */
#ifndef DFS_CLI_H
#define DFS_CLI_H

#include <stddef.h>

#include "deltafs/deltafs.h"

/* Exit status (DESIGN §5; scripts depend on these). */
enum {
  CLI_EXIT_OK = 0,       /* success                                           */
  CLI_EXIT_NO = 1,       /* a clean "no": exists false, get of a missing id   */
  CLI_EXIT_USAGE = 2,    /* usage error or invalid id (or malformed key file) */
  CLI_EXIT_BUSY = 3,     /* lock busy or timed out                            */
  CLI_EXIT_CORRUPT = 4,  /* corrupt data or failed decryption                 */
  CLI_EXIT_CONFLICT = 5, /* version conflict                                  */
  CLI_EXIT_FAIL = 6      /* any other failure                                 */
};

/* The commands (one file per group). */
int cmd_init(int argc, char **argv);     /* cmd_entity.c   */
int cmd_put(int argc, char **argv);      /* cmd_entity.c   */
int cmd_get(int argc, char **argv);      /* cmd_entity.c   */
int cmd_meta(int argc, char **argv);     /* cmd_entity.c   */
int cmd_ls(int argc, char **argv);       /* cmd_entity.c   */
int cmd_exists(int argc, char **argv);   /* cmd_entity.c   */
int cmd_rm(int argc, char **argv);       /* cmd_entity.c   */
int cmd_template(int argc, char **argv); /* cmd_template.c */
int cmd_lock(int argc, char **argv);     /* cmd_lock.c     */
int cmd_keygen(int argc, char **argv);   /* cmd_keygen.c   */
int cmd_demo(int argc, char **argv);     /* cmd_demo.c     */
int cmd_fsck(int argc, char **argv);     /* cmd_fsck.c  (DFS_HAVE_FSCK)  */
int cmd_bench(int argc, char **argv);    /* cmd_bench.c (DFS_HAVE_BENCH) */

/* ---- store root -------------------------------------------------------- */

/* The store root: --root (global or per command), else $DELTAFS_ROOT, else
 * "./deltafs-data". */
const char *cli_root(void);
void cli_set_root(const char *dir);

/* Open the store at cli_root() (creating it).  On failure prints the error
 * line for `cmd` and returns the exit status (> 0); else 0. */
int cli_open_store(const char *cmd, dfs_storage **out);

/* ---- locks held by a parent `deltafs lock` ------------------------------ */

/* `deltafs lock ID -- COMMAND` exports DELTAFS_LOCK_ROOT (the store's
 * absolute base), DELTAFS_LOCK_ID and DELTAFS_LOCK_MODE ("exclusive" or
 * "shared") to COMMAND, so that a nested `deltafs get/put/rm ID` on the
 * same store and id uses the parent's lock instead of waiting for it
 * (which would deadlock).  Returns 1 if the calling process runs under
 * such a lock on (st, id) that covers `type`, 0 if not, -1 if it runs
 * under a shared lock and needs an exclusive one (cannot be satisfied). */
int cli_parent_holds(dfs_storage *st, const char *id, dfs_lock_type type);

/* ---- errors ------------------------------------------------------------ */

/* Map a DFS_E* code to the exit status. */
int cli_exit_code(int rc);

/* Print "deltafs: <cmd>: <formatted>" to stderr (one line). */
void cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "deltafs: <cmd>: <what>: <dfs_last_error() or dfs_strerror(rc)>" and
 * return cli_exit_code(rc). */
int cli_fail_rc(const char *cmd, int rc, const char *what);

/* Print a usage error ("deltafs: <cmd>: <formatted> (try 'deltafs <cmd>
 * --help')") and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Validate an entity/schema id; on failure print and return CLI_EXIT_USAGE. */
int cli_check_id(const char *cmd, const char *id);

/* ---- options ----------------------------------------------------------- */

/* Common long options every command takes: --help ('h') and --root ('R').
 * Use CLI_COMMON_OPTIONS at the start of a struct option array, and handle
 * the two letters with cli_common_option(); it returns -1 if the letter was
 * not a common option, else the status to exit with (0 for --help after
 * printing `help`, or -2 meaning "handled, continue"). */
#define CLI_COMMON_OPTIONS {"help", 0, NULL, 'h'}, {"root", 1, NULL, 'R'}
#define CLI_CONTINUE (-2)
int cli_common_option(int opt, const char *help);

/* Report getopt's '?' (unknown option) or ':' (missing argument) for cmd;
 * returns CLI_EXIT_USAGE.  Option strings must start with ':' ("+:" when
 * the command stops at its first operand). */
int cli_option_error(const char *cmd, int opt, char **argv);

/* Parse a decimal integer (the whole string); 0 or -1. */
int cli_parse_i64(const char *s, long long min, long long max, long long *out);

/* ---- I/O --------------------------------------------------------------- */

/* Read all of path ("-" or NULL: stdin) into a malloc'd buffer (one NUL
 * added, not counted).  On failure prints "<cmd>: cannot read <path>: why"
 * and returns CLI_EXIT_FAIL; else 0. */
int cli_read_input(const char *cmd, const char *path, char **out, size_t *out_len);

/* Write all bytes to path (NULL or "-": stdout), creating/truncating it
 * with `mode` (before umask).  Prints and returns CLI_EXIT_FAIL on error. */
int cli_write_output(const char *cmd, const char *path, const void *buf, size_t len,
                     unsigned mode);

/* Load a key file for cmd, warning on stderr if it is readable by group or
 * others.  Malformed key: CLI_EXIT_USAGE; unreadable: CLI_EXIT_FAIL. */
int cli_load_key(const char *cmd, const char *path, dfs_key *out);

/* Append s as a JSON string literal (quoted, escaped) to stdout. */
void cli_json_string(const char *s);

/* Print meta as a JSON object (Go field names and order) on stdout. */
void cli_print_meta_json(const dfs_meta *m, const char *indent);

/* "<user>@<host>:<pid>"-style default writer id into buf. */
void cli_default_writer_id(char *buf, size_t size);

#endif /* DFS_CLI_H */
