/*
 * cmd_lock.c — lock [--shared] [--timeout MS] ID -- COMMAND [ARGS]: run a
 * command while holding an entity's lock, like flock(1).
 *
 * The lock is taken through a dfs_lockmgr (flock(2) on
 * files/<ID>.json.enc.lock, the same file and primitive DeltaDatabase's Go
 * workers and util-linux flock(1) use), then the command is fork()ed and
 * exec'd.  The lock descriptor is O_CLOEXEC, so the command does not
 * inherit it: the lock belongs to this process, which waits for the
 * command and releases the lock after it exits.  If this process is killed
 * the kernel releases the lock at once — the command may then still be
 * running unlocked, exactly as with flock(1) -o.
 *
 * The command gets DELTAFS_LOCK_ROOT/_ID/_MODE in its environment, so a
 * nested `deltafs get/put/rm ID` uses this lock instead of deadlocking on
 * it (cli_parent_holds); a nested `deltafs lock ID` is an independent
 * holder and waits as any other would.
 *
 * Exit status: the command's (128+N if it was killed by signal N); 3 if the
 * lock was busy (--timeout 0) or the wait timed out; 126/127 if the command
 * could not be run (not executable / not found), as shells do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static const char lock_help[] =
    "usage: deltafs [--root DIR] lock [--shared] [--timeout MS] ID [--] COMMAND [ARGS]\n"
    "\n"
    "Run COMMAND while holding entity ID's lock (exclusive unless --shared),\n"
    "like flock(1); the lock is released when COMMAND exits.  The exit status\n"
    "is COMMAND's (128+N if killed by signal N), 3 if the lock was busy or the\n"
    "wait timed out, 126/127 if COMMAND could not be run.  Options go before ID.\n"
    "Inside COMMAND, 'deltafs get/put/rm ID' on the same store use this lock\n"
    "(DELTAFS_LOCK_ROOT/_ID/_MODE are set) instead of waiting for it, so a\n"
    "read-modify-write is:  deltafs lock ID -- sh -c 'deltafs get ID | ... | deltafs put ID'\n"
    "\n"
    "  -s, --shared          take a shared lock (many holders, no exclusive one)\n"
    "  -x, --exclusive       take an exclusive lock (the default)\n"
    "  -w, --timeout MS      wait at most MS milliseconds (0: fail at once if busy)\n"
    "  -h, --help            this help\n";

int cmd_lock(int argc, char **argv)
{
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"shared", 0, NULL, 's'},
      {"exclusive", 0, NULL, 'x'},
      {"timeout", 1, NULL, 'w'},
      {NULL, 0, NULL, 0},
  };
  dfs_lock_type type = DFS_LOCK_EXCLUSIVE;
  long long timeout = -1;
  const char *id;
  char **cmd;
  dfs_storage *st;
  dfs_lockmgr *m;
  pid_t pid;
  int opt, rc, wstatus, status, err_pipe[2];
  char what[300];

  /* '+': stop at ID, so COMMAND's own options are never ours. */
  while ((opt = getopt_long(argc, argv, "+:sxw:", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, lock_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case 's': type = DFS_LOCK_SHARED; break;
    case 'x': type = DFS_LOCK_EXCLUSIVE; break;
    case 'w':
      if (cli_parse_i64(optarg, 0, 2147483647LL, &timeout) < 0)
        return cli_usage_error("lock", "--timeout wants milliseconds >= 0, not '%s'", optarg);
      break;
    default: return cli_option_error("lock", opt, argv);
    }
  }
  if (optind >= argc)
    return cli_usage_error("lock", "missing ID");
  id = argv[optind++];
  if (optind < argc && strcmp(argv[optind], "--") == 0)
    optind++;
  if (optind >= argc)
    return cli_usage_error("lock", "missing COMMAND");
  cmd = argv + optind;
  if ((rc = cli_check_id("lock", id)) != 0)
    return rc;
  if ((rc = cli_open_store("lock", &st)) != 0)
    return rc;
  rc = dfs_lockmgr_new(&m, st);
  if (rc < 0) {
    rc = cli_fail_rc("lock", rc, "cannot create a lock manager");
    dfs_storage_close(st);
    return rc;
  }
  rc = timeout < 0 ? dfs_lockmgr_acquire(m, id, type)
                   : dfs_lockmgr_acquire_timeout(m, id, type, (int)timeout);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot lock %s", id);
    status = cli_fail_rc("lock", rc, what);
    if (status == CLI_EXIT_NO)
      status = CLI_EXIT_FAIL;
    goto out;
  }

  /* A close-on-exec pipe tells the parent whether exec failed (the child
   * writes errno) or succeeded (the pipe closes with nothing in it). */
  if (pipe2(err_pipe, O_CLOEXEC) < 0) {
    cli_errorf("lock", "cannot run %s: pipe: %s", cmd[0], strerror(errno));
    status = CLI_EXIT_FAIL;
    goto out;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    cli_errorf("lock", "cannot run %s: fork: %s", cmd[0], strerror(errno));
    close(err_pipe[0]);
    close(err_pipe[1]);
    status = CLI_EXIT_FAIL;
    goto out;
  }
  if (pid == 0) {
    int e;
    close(err_pipe[0]);
    /* Tell nested deltafs commands on this id that we hold it (cli.h). */
    if (setenv("DELTAFS_LOCK_ROOT", dfs_base_dir(st), 1) < 0 ||
        setenv("DELTAFS_LOCK_ID", id, 1) < 0 ||
        setenv("DELTAFS_LOCK_MODE", type == DFS_LOCK_EXCLUSIVE ? "exclusive" : "shared", 1) < 0)
      _exit(126);
    execvp(cmd[0], cmd);
    e = errno;
    if (write(err_pipe[1], &e, sizeof e) < 0) {
      /* nothing more we can do; the exit code still says it */
    }
    _exit(e == ENOENT ? 127 : 126);
  }
  close(err_pipe[1]);
  {
    int child_errno = 0;
    ssize_t n;
    do
      n = read(err_pipe[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(err_pipe[0]);
    while (waitpid(pid, &wstatus, 0) < 0) {
      if (errno != EINTR) {
        cli_errorf("lock", "cannot wait for %s: %s", cmd[0], strerror(errno));
        status = CLI_EXIT_FAIL;
        goto out;
      }
    }
    if (n == (ssize_t)sizeof child_errno) {
      cli_errorf("lock", "cannot run %s: %s", cmd[0], strerror(child_errno));
      status = child_errno == ENOENT ? 127 : 126;
    } else if (WIFEXITED(wstatus)) {
      status = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
      status = 128 + WTERMSIG(wstatus);
    } else {
      status = CLI_EXIT_FAIL;
    }
  }
out:
  rc = dfs_lockmgr_release(m, id);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot unlock %s", id);
    cli_fail_rc("lock", rc, what);
    if (status == 0)
      status = CLI_EXIT_FAIL;
  }
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return status;
}
