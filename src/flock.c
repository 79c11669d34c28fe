/*
 * flock.c — dfs_flock: one lock file, one holder (lock.h).
 *
 * A handle is one open file description of the lock file plus what this
 * handle holds:
 *
 *     UNLOCKED --lock/trylock/lock_timeout--> SHARED or EXCLUSIVE
 *         ^                                        |
 *         +--------------- unlock / close ---------+
 *
 * flock(2) locks belong to the open file description, so two handles on
 * the same path — in one process or in two — exclude each other, while one
 * handle shared by two threads would be one holder; hence "one handle per
 * thread".  There is no up/down-grade: flock() would convert the lock in
 * place, non-atomically (it releases first), which is a trap, so a second
 * lock on a holding handle is DFS_EALREADY_LOCKED.
 *
 * Timed waits poll LOCK_NB with a short back-off (lockfile.c): flock has no
 * timeout, and interrupting a blocking flock with a signal timer would
 * steal the process's signal handling from the application.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "deltafs/lock.h"
#include "error_int.h"
#include "lockfile.h"
#include "sys.h"

enum { HELD_NONE = 0, HELD_SHARED = 1, HELD_EXCLUSIVE = 2 };

struct dfs_flock {
  int fd;     /* the open lock file; -1 if a failed unlock could not reopen */
  int held;   /* HELD_*: what this handle holds now                        */
  char *path; /* as given to dfs_flock_open, for messages and reopening    */
};

/* Open `path` for locking.  O_CLOEXEC: an exec'd child must not inherit the
 * description (it would keep our lock alive after we close).  O_NOFOLLOW: a
 * symlink planted at the path must not make us create or lock another
 * file.  Falls back to read-only when the file exists but is not writable
 * by us: flock needs no access mode.  -1/errno on failure. */
static int open_path(const char *path)
{
  int fd = dfs_sys_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EACCES || errno == EROFS)) {
    int first = errno;
    fd = dfs_sys_openat(AT_FDCWD, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0)
      errno = first;
  }
  return fd;
}

int dfs_flock_open(dfs_flock **out, const char *path)
{
  dfs_flock *lk;

  DFS_CHECK_ARG(out != NULL, "out is NULL");
  *out = NULL;
  DFS_CHECK_ARG(path != NULL && path[0] != '\0', "path is NULL or empty");
  lk = dfs_malloc(sizeof *lk);
  if (!lk)
    return dfs__errno(DFS_ENOMEM, ENOMEM, "flock open %s", path);
  lk->path = dfs_strdup(path);
  if (!lk->path) {
    free(lk);
    return dfs__errno(DFS_ENOMEM, ENOMEM, "flock open %s", path);
  }
  lk->held = HELD_NONE;
  lk->fd = open_path(path);
  if (lk->fd < 0) {
    int e = errno;
    free(lk->path);
    free(lk);
    return dfs__errno(DFS_ELOCK, e, "flock open %s", path);
  }
  *out = lk;
  return 0;
}

/* timeout_ms: < 0 block, 0 try once, > 0 poll until the deadline. */
static int lock_common(dfs_flock *lk, dfs_lock_type type, int timeout_ms)
{
  int op, busy_code = timeout_ms == 0 ? DFS_EBUSY : DFS_ETIMEDOUT;
  int64_t deadline = 0, delay = 0;

  DFS_CHECK_ARG(lk != NULL, "lock handle is NULL");
  DFS_CHECK_ARG(type == DFS_LOCK_SHARED || type == DFS_LOCK_EXCLUSIVE, "unknown lock type");
  if (lk->held != HELD_NONE)
    return dfs__err(DFS_EALREADY_LOCKED, "flock %s: this handle already holds a %s lock",
                    lk->path, lk->held == HELD_SHARED ? "shared" : "exclusive");
  if (lk->fd < 0)
    return dfs__err(DFS_ELOCK, "flock %s: handle unusable after a failed unlock", lk->path);
  op = type == DFS_LOCK_SHARED ? LOCK_SH : LOCK_EX;
  if (timeout_ms > 0)
    deadline = dfs__lock_deadline_ns(timeout_ms);

  for (;;) {
    if (dfs_sys_flock(lk->fd, op | (timeout_ms < 0 ? 0 : LOCK_NB)) == 0)
      break;
    if (errno != EWOULDBLOCK)
      return dfs__errno(DFS_ELOCK, errno, "flock %s", lk->path);
    if (timeout_ms == 0 || dfs__lock_now_ns() >= deadline) {
      if (busy_code == DFS_EBUSY)
        return dfs__err(DFS_EBUSY, "flock %s: held by another holder", lk->path);
      return dfs__err(DFS_ETIMEDOUT, "flock %s: still held by another holder after %d ms",
                      lk->path, timeout_ms);
    }
    dfs__lock_backoff(&delay, deadline);
  }
  lk->held = type == DFS_LOCK_SHARED ? HELD_SHARED : HELD_EXCLUSIVE;
  return 0;
}

int dfs_flock_lock(dfs_flock *lk, dfs_lock_type type)
{
  return lock_common(lk, type, -1);
}

int dfs_flock_trylock(dfs_flock *lk, dfs_lock_type type)
{
  return lock_common(lk, type, 0);
}

int dfs_flock_lock_timeout(dfs_flock *lk, dfs_lock_type type, int timeout_ms)
{
  return lock_common(lk, type, timeout_ms);
}

int dfs_flock_unlock(dfs_flock *lk)
{
  DFS_CHECK_ARG(lk != NULL, "lock handle is NULL");
  if (lk->held == HELD_NONE)
    return 0;
  lk->held = HELD_NONE;
  if (dfs_sys_flock(lk->fd, LOCK_UN) < 0) {
    int e = errno;
    /* The lock must not outlive a failed unlock: closing the description
     * drops it for certain.  Reopen so the handle stays usable; if even
     * that fails the handle reports DFS_ELOCK on its next lock. */
    dfs_sys_close_quiet(lk->fd);
    lk->fd = open_path(lk->path);
    return dfs__errno(DFS_EUNLOCK, e, "flock unlock %s", lk->path);
  }
  return 0;
}

int dfs_flock_is_locked(const dfs_flock *lk)
{
  return lk != NULL && lk->held != HELD_NONE;
}

int dfs_flock_close(dfs_flock *lk)
{
  int rc = 0;

  if (!lk)
    return 0;
  if (lk->held != HELD_NONE && lk->fd >= 0 && dfs_sys_flock(lk->fd, LOCK_UN) < 0)
    rc = dfs__errno(DFS_EUNLOCK, errno, "flock close %s: unlock", lk->path);
  /* Closing releases the lock even if the explicit unlock failed. A close
   * error on a descriptor we never wrote through loses nothing. */
  if (lk->fd >= 0)
    dfs_sys_close_quiet(lk->fd);
  free(lk->path);
  free(lk);
  return rc;
}
