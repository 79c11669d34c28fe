/*
 * atomic.c — temp files and syncs: the building blocks of every durable
 * replace in deltafs (DESIGN §4).
 *
 * A temp file is created in <base>/.deltafs-tmp/ — never in files/ itself —
 * with a random 16-hex suffix and O_EXCL, so two writers never share one,
 * and recovery finds every leftover by scanning that small directory
 * instead of a directory of a million entities.  It is on the same
 * filesystem as files/ and templates/ (both are subdirectories of <base>),
 * so the final renameat() is atomic.
 *
 * Liveness: a writer holds an exclusive flock(2) on its metadata temp (or
 * template temp) for as long as the write is in flight.  flock is released
 * by the kernel when a process dies, so "I can take the flock of this temp"
 * means "its writer is gone" — exactly what recovery (recover.c) needs to
 * tell a crash leftover from a write in progress in another process or on
 * another host.  A recoverer may remove a temp in the instant between its
 * creation and its flock; the creator notices (st_nlink == 0 after taking
 * the lock) and starts over with a new name.
 *
 * Every fsync here is the one that makes the write durable; each is
 * explained where it is made.  DFS_OPT_NO_SYNC skips them all.
 */
#include "atomic.h"
#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "error_int.h"
#include "id.h"
#include "sys.h"

static int is_hex16(const char *s)
{
  for (int i = 0; i < DFS_TMP_SFX_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[DFS_TMP_SFX_LEN] == '\0';
}

void dfs__tmp_parse_name(const char *name, struct dfs_tmp_name *t)
{
  static const struct {
    const char *prefix, *suffix;
    enum dfs_tmp_kind kind;
  } forms[] = {{"e.", DFS_META_SUFFIX, DFS_TK_META},
               {"e.", DFS_BLOB_SUFFIX, DFS_TK_BLOB},
               {"t.", DFS_TEMPLATE_SUFFIX, DFS_TK_TEMPLATE}};
  size_t n = strlen(name), core;

  t->kind = DFS_TK_OTHER;
  if (n < 2 + 1 + 1 + DFS_TMP_SFX_LEN || name[n - DFS_TMP_SFX_LEN - 1] != '.' ||
      !is_hex16(name + n - DFS_TMP_SFX_LEN))
    return;
  core = n - DFS_TMP_SFX_LEN - 1; /* "<prefix><id><suffix>" */
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    size_t pl = strlen(forms[i].prefix), sl = strlen(forms[i].suffix);
    if (core <= pl + sl || strncmp(name, forms[i].prefix, pl) != 0 ||
        memcmp(name + core - sl, forms[i].suffix, sl) != 0 ||
        !dfs__id_check(name + pl, core - pl - sl))
      continue;
    memcpy(t->id, name + pl, core - pl - sl);
    t->id[core - pl - sl] = '\0';
    memcpy(t->sfx, name + n - DFS_TMP_SFX_LEN, DFS_TMP_SFX_LEN + 1);
    t->kind = forms[i].kind;
    return;
  }
}

static int nosync(const dfs_storage *st)
{
  return (st->flags & DFS_OPT_NO_SYNC) != 0;
}

int dfs__tmp_create(dfs_storage *st, const char *prefix, const char *id, const char *suffix,
                    char sfx[DFS_TMP_SFX_LEN + 1], int mark_live, struct dfs_tmp *t,
                    const char *op)
{
  int fixed = sfx[0] != '\0';

  t->fd = -1;
  t->created = 0;
  for (int attempt = 0; attempt < 16; attempt++) {
    struct stat sb;
    int fd;

    if (!fixed || attempt > 0)
      snprintf(sfx, DFS_TMP_SFX_LEN + 1, "%016llx", (unsigned long long)dfs_random64());
    snprintf(t->name, sizeof t->name, "%s%s%s.%s", prefix, id, suffix, sfx);
    /* O_EXCL: never reuse or truncate someone else's temp.  O_NOFOLLOW:
     * a symlink planted in .deltafs-tmp is not followed. */
    fd = dfs_sys_openat(st->tmp_fd, t->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                        st->file_mode);
    if (fd < 0) {
      if (errno == EEXIST)
        continue;
      return dfs__errno(DFS_EWRITE, errno, "%s %s: create temp %s/" DFS_TMP_DIR "/%s", op, id,
                        st->base, t->name);
    }
    t->fd = fd;
    t->created = 1;
    if (!mark_live)
      return 0;
    /* The liveness mark (see the top of this file).  Blocking: only a
     * recoverer that is about to remove a dead temp holds it, briefly. */
    if (dfs_sys_flock(fd, LOCK_EX) < 0 || dfs_sys_fstat(fd, &sb) < 0) {
      int rc = dfs__errno(DFS_EWRITE, errno, "%s %s: lock temp %s/" DFS_TMP_DIR "/%s", op, id,
                          st->base, t->name);
      dfs__tmp_discard(st, t);
      return rc;
    }
    if (sb.st_nlink > 0)
      return 0;
    /* A recoverer removed it before we locked it: the name is gone, start
     * over with a fresh one. */
    dfs_sys_close_quiet(fd);
    t->fd = -1;
    t->created = 0;
    fixed = 0;
  }
  return dfs__err(DFS_EWRITE, "%s %s: could not create a unique temp file in %s/" DFS_TMP_DIR, op,
                  id, st->base);
}

int dfs__tmp_write(dfs_storage *st, struct dfs_tmp *t, const void *data, size_t len,
                   const char *op, const char *id)
{
  if (len > 0 && dfs_sys_write_all(t->fd, data, len) < 0)
    return dfs__errno(DFS_EWRITE, errno, "%s %s: write %s/" DFS_TMP_DIR "/%s", op, id, st->base,
                      t->name);
  return 0;
}

int dfs__tmp_sync(dfs_storage *st, struct dfs_tmp **ts, int n, const char *op, const char *id)
{
#ifdef DFS_BROKEN_SKIP_FILE_FSYNC
  (void)ts;
  (void)n;
  (void)op;
  (void)id;
  (void)st;
  return 0; /* deliberately broken build: the crash replay must catch this */
#else
  if (nosync(st))
    return 0;
  for (int i = 0; i < n; i++) {
    /* fsync before rename: otherwise, after a power cut, the new name can
     * point at an inode whose data blocks never reached the disk (a
     * zero-length or garbage blob under a committed name). */
    if (dfs_sys_fsync(ts[i]->fd) < 0)
      return dfs__errno(DFS_EWRITE, errno, "%s %s: fsync %s/" DFS_TMP_DIR "/%s", op, id,
                        st->base, ts[i]->name);
  }
  return 0;
#endif
}

void dfs__tmp_discard(dfs_storage *st, struct dfs_tmp *t)
{
  int saved = errno;
  if (t->created)
    (void)unlinkat(st->tmp_fd, t->name, 0); /* cleanup: not fault-injected */
  if (t->fd >= 0)
    (void)close(t->fd);
  t->fd = -1;
  t->created = 0;
  errno = saved;
}

void dfs__tmp_close(struct dfs_tmp *t)
{
  if (t->fd >= 0)
    dfs_sys_close_quiet(t->fd);
  t->fd = -1;
  t->created = 0;
}

int dfs__dir_sync(dfs_storage *st, int dirfd, const char *what, const char *op, const char *id)
{
#ifdef DFS_BROKEN_SKIP_DIR_FSYNC
  (void)st;
  (void)dirfd;
  (void)what;
  (void)op;
  (void)id;
  return 0; /* deliberately broken build: the crash replay must catch this */
#else
  if (nosync(st))
    return 0;
  /* fsync the directory after the renames: a rename is a change to the
   * directory, and until the directory is durable a power cut can bring
   * back the old name (losing an acknowledged write).  Shared with the
   * other threads that need the same directory fsync'd now (group commit,
   * commit.c): returns once an fsync that started after this call began
   * has finished. */
  if (dfs__commit_dir_fsync(dirfd) < 0)
    return dfs__errno(DFS_EWRITE, errno, "%s %s: fsync directory %s/%s", op, id, st->base, what);
  return 0;
#endif
}

int dfs__replace_file(dfs_storage *st, int dirfd, const char *dirname, const char *name,
                      const char *id, const void *data, size_t len, const char *op)
{
  struct dfs_tmp t = {.fd = -1};
  struct dfs_tmp *tp = &t;
  char sfx[DFS_TMP_SFX_LEN + 1] = "";
  int rc;

  rc = dfs__tmp_create(st, "t.", id, ".json", sfx, 1, &t, op);
  if (rc < 0)
    return rc;
  if ((rc = dfs__tmp_write(st, &t, data, len, op, id)) < 0 ||
      (rc = dfs__tmp_sync(st, &tp, 1, op, id)) < 0)
    goto fail;
  if (dfs_sys_renameat(st->tmp_fd, t.name, dirfd, name) < 0) {
    rc = dfs__errno(DFS_EWRITE, errno, "%s %s: rename into %s/%s/%s", op, id, st->base, dirname,
                    name);
    goto fail;
  }
  dfs__tmp_close(&t);
  return dfs__dir_sync(st, dirfd, dirname, op, id);
fail:
  dfs__tmp_discard(st, &t);
  return rc;
}
