/*
 * lockfile.c — entity lock files: open, flock + re-check, unlink-while-held.
 *
 * The protocol (lock.h "Lock files of deleted entities"):
 *
 *   acquirer:  fd = openat(files/, "<id>.json.enc.lock", O_CREAT)
 *              flock(fd, op)
 *              if fstatat(path) is not fstat(fd): close(fd), start over
 *   deleter:   holds the file exclusively, checks that the path still names
 *              its inode, unlinks it, then releases (close)
 *
 * Why it is safe: a lock file is unlinked only by its exclusive holder, so
 * while anyone holds a lock on the file at the path, the path keeps naming
 * that file.  An acquirer that was queued on the old inode wakes up after
 * the deleter let go, sees that the path names another inode (or nothing),
 * drops the useless lock and retries on the current file.  So at any
 * moment at most one inode — the one at the path — confers the lock.
 *
 * Descriptors are opened O_CLOEXEC (a child exec'd by the caller must not
 * inherit the open file description, which would keep the lock alive after
 * we "release" it by closing) and O_NOFOLLOW (a symlink planted at the lock
 * path must not make us create or lock a file elsewhere).
 */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error_int.h"
#include "sys.h"

int dfs__lockfile_open(dfs_storage *st, const char *id, const char *name, int create,
                       int *out_fd, dev_t *out_dev, ino_t *out_ino)
{
  struct stat sb;
  /* O_NOFOLLOW: a symlink planted at the lock path fails with ELOOP instead
   * of making us create/lock an arbitrary file.  O_CLOEXEC: an exec'd child
   * must not inherit the descriptor, or it would keep our lock alive after
   * we close it.  O_RDWR because that is what the Go workers open with; the
   * flock itself needs no access mode at all. */
  int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd = -1;

  /* ESTALE (network filesystems, e.g. GlusterFS): the lock file was removed
   * by a delete on another host between our lookup and our open, or
   * between our open and our fstat.  The next lookup sees the current
   * state; a few tries are plenty (each needs another concurrent delete). */
  for (int tries = 0;; tries++) {
    fd = dfs_sys_openat(st->files_fd, name, flags, 0644);
    if (fd < 0 && (errno == EACCES || errno == EROFS)) {
      /* A lock file created by another user (mode 0644) or on a read-only
       * mount cannot be opened for writing, but flock() works on any
       * descriptor: fall back to read-only rather than refuse the lock.  If
       * the file does not exist this fails with ENOENT and we report the
       * first error, which is the real reason. */
      int first = errno;
      fd = dfs_sys_openat(st->files_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (fd < 0)
        errno = first;
    }
    if (fd < 0) {
      /* EEXIST without O_EXCL: GlusterFS reports it when another host
       * created the file between our lookup and our create.  It exists
       * now; open it. */
      if ((errno == ESTALE || (errno == EEXIST && create)) && tries < 8)
        continue;
      if (errno == ENOENT && !create)
        return dfs__errno(DFS_ENOTFOUND, errno, "lock %s: open %s/%s", id, st->files_path,
                          name);
      return dfs__errno(DFS_ELOCK, errno, "lock %s: open %s/%s", id, st->files_path, name);
    }
    if (dfs_sys_fstat(fd, &sb) == 0)
      break;
    {
      int e = errno;
      dfs_sys_close_quiet(fd);
      if (e == ESTALE && tries < 8)
        continue;
      return dfs__errno(DFS_ELOCK, e, "lock %s: fstat %s/%s", id, st->files_path, name);
    }
  }
  *out_fd = fd;
  *out_dev = sb.st_dev;
  *out_ino = sb.st_ino;
  return 0;
}

int dfs__lockfile_is_current(dfs_storage *st, const char *id, const char *name, dev_t dev,
                             ino_t ino)
{
  struct stat sb;
  /* AT_SYMLINK_NOFOLLOW: a symlink swapped in at the path is "another
   * file", never the target it points to. */
  if (dfs_sys_fstatat(st->files_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
    /* ESTALE (network filesystems, e.g. GlusterFS): the name resolved to a
     * file another host has just removed — not the file we locked.  "Not
     * current" is always the safe answer: the caller drops its lock and
     * starts over on whatever the path names now. */
    if (errno == ENOENT || errno == ESTALE)
      return 0;
    return dfs__errno(DFS_ELOCK, errno, "lock %s: fstatat %s/%s", id, st->files_path, name);
  }
  return sb.st_dev == dev && sb.st_ino == ino;
}

int dfs__lockfile_unlink_if_current(dfs_storage *st, const char *id, const char *name,
                                    dev_t dev, ino_t ino)
{
  int r = dfs__lockfile_is_current(st, id, name, dev, ino);
  if (r < 0)
    return dfs__errno(DFS_EWRITE, errno, "delete %s: fstatat %s/%s", id, st->files_path, name);
  if (r == 0)
    return 0; /* already gone or replaced: not ours to remove */
  if (dfs_sys_unlinkat(st->files_fd, name, 0) < 0 && errno != ENOENT)
    return dfs__errno(DFS_EWRITE, errno, "delete %s: unlink %s/%s", id, st->files_path, name);
  return 0;
}

int dfs__lockfile_acquire(dfs_storage *st, const char *id, int op, int create, int *out_fd)
{
  char name[DFS_NAME_MAX];

  dfs__entity_name(name, id, DFS_LOCK_SUFFIX);
  for (;;) {
    int fd, r;
    dev_t dev;
    ino_t ino;

    r = dfs__lockfile_open(st, id, name, create, &fd, &dev, &ino);
    if (r < 0)
      return r;
    if (dfs_sys_flock(fd, op) < 0) {
      int e = errno;
      dfs_sys_close_quiet(fd);
      if (e == EWOULDBLOCK)
        return dfs__err(DFS_EBUSY, "lock %s: %s/%s is held by another holder", id,
                        st->files_path, name);
      return dfs__errno(DFS_ELOCK, e, "lock %s: flock %s/%s", id, st->files_path, name);
    }
    r = dfs__lockfile_is_current(st, id, name, dev, ino);
    if (r == 1) {
      *out_fd = fd;
      return 0;
    }
    /* Closing drops the lock we just took: on error it must not stay
     * held, and if the file was unlinked or replaced it is worthless. */
    dfs_sys_close_quiet(fd);
    if (r < 0)
      return r;
    /* Removed by a delete while we waited: start over on the current file
     * (or report DFS_ENOTFOUND when we may not create one). */
  }
}

int dfs__lockfile_unlink_held(dfs_storage *st, const char *id, int fd)
{
  char name[DFS_NAME_MAX];
  struct stat sb;

  dfs__entity_name(name, id, DFS_LOCK_SUFFIX);
  if (dfs_sys_fstat(fd, &sb) < 0)
    return dfs__errno(DFS_EWRITE, errno, "delete %s: fstat %s/%s", id, st->files_path, name);
  return dfs__lockfile_unlink_if_current(st, id, name, sb.st_dev, sb.st_ino);
}

int64_t dfs__lock_now_ns(void)
{
  struct timespec ts;
  /* MONOTONIC: a timed wait must not stretch or shrink when the wall
   * clock is stepped (NTP, an admin). */
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t dfs__lock_deadline_ns(int timeout_ms)
{
  return dfs__lock_now_ns() + (int64_t)timeout_ms * 1000000;
}

void dfs__lock_backoff(int64_t *delay_ns, int64_t deadline_ns)
{
  /* Short first sleeps make a lock freed soon after our first try cheap to
   * notice; the 2ms cap bounds both the wake-ups of a long wait and how
   * late after a release we notice it.  The deadline caps the sleep so a
   * timed wait gives up within a poll of its deadline, not a step later. */
  int64_t now = dfs__lock_now_ns(), d = *delay_ns;
  struct timespec ts;

  if (d <= 0)
    d = 200000;
  if (now + d > deadline_ns)
    d = deadline_ns - now;
  if (d > 0) {
    ts.tv_sec = (time_t)(d / 1000000000);
    ts.tv_nsec = (long)(d % 1000000000);
    /* An interrupted sleep is just an early poll: no need to resume it. */
    (void)nanosleep(&ts, NULL);
  }
  *delay_ns = *delay_ns <= 0 ? 400000 : (*delay_ns * 2 > 2000000 ? 2000000 : *delay_ns * 2);
}
