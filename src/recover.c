/*
 * recover.c — finishing or removing what crashed writers left behind.
 *
 * Everything in flight lives in <base>/.deltafs-tmp/ (atomic.c), so
 * recovery reads one small directory, never the million-entry files/.
 * The write protocol and the state each crash point leaves are described
 * at the top of storage.c; the rules here follow from it:
 *
 *   e.<id>.meta.json.S   pending metadata.  If its writer is alive (its
 *                        flock is held) leave it.  Otherwise, under the
 *                        entity's exclusive lock (try only: a busy entity
 *                        is left for later), if it matches the blob now at
 *                        files/<id>.json.enc (size and XXH3) the write got
 *                        past its blob swap: roll it forward (rename into
 *                        place, fsync files/).  If not, the write never
 *                        swapped its blob (or a later write superseded it):
 *                        remove it.
 *   e.<id>.json.enc.S    a blob temp: the new blob of a write that never
 *                        swapped, or the old blob after a swap.  Never
 *                        needed once its writer is gone (its metadata temp
 *                        S is absent or unlocked): remove it.
 *   t.<id>.json.S        a template temp of a dead writer: remove it.
 *
 * Readers use dfs__find_pending_meta() to return the new pair while a
 * pending metadata file is waiting (storage.c read_pair).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "error_int.h"
#include "id.h"
#include "meta_int.h"
#include "storage_int.h"
#include "sys.h"

/* Read a temp whole. 0 or -1/errno. */
static int load_tmp(dfs_storage *st, const char *name, char **buf, size_t *len)
{
  return dfs_sys_load_at(st->tmp_fd, name, DFS_META_MAX, buf, len, NULL);
}

int dfs__blob_identity(dfs_storage *st, const char *id, uint64_t *size, uint64_t *hash)
{
  char bname[DFS_NAME_MAX], *blob;
  size_t len;
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  if (dfs_sys_load_at(st->files_fd, bname, (size_t)1 << 40, &blob, &len, NULL) < 0)
    return -1;
  *size = len;
  *hash = dfs__blob_hash(blob, len);
  free(blob);
  return 0;
}

/* 1 if files/<id>.meta.json parses, has integrity keys, and they match
 * (size, hash): the final pair is consistent. */
int dfs__meta_matches_blob(dfs_storage *st, const char *id, uint64_t size, uint64_t hash)
{
  char mname[DFS_NAME_MAX], *json = NULL;
  size_t len;
  uint64_t ms = 0, mh = 0;
  int has = 0, ok = 0;
  dfs_meta *m = NULL;
  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  if (dfs_sys_load_at(st->files_fd, mname, DFS_META_MAX, &json, &len, NULL) == 0)
    ok = dfs_meta_parse(json, len, &m, &ms, &mh, &has) == 0 && has && ms == size && mh == hash;
  free(m);
  free(json);
  return ok;
}

/* Iterate .deltafs-tmp names. */
struct scan_ctx {
  dfs_storage *st;
  int (*fn)(dfs_storage *st, const char *name, void *p);
  void *p;
};

static int scan_cb(const char *name, unsigned char type, void *p)
{
  struct scan_ctx *c = p;
  (void)type;
  return c->fn(c->st, name, c->p);
}

static int scan_tmp(dfs_storage *st, int (*fn)(dfs_storage *st, const char *name, void *p),
                    void *p)
{
  struct scan_ctx c = {st, fn, p};
  int failed, rc = dfs_sys_dir_each(st->tmp_fd, 32 * 1024, scan_cb, &c, &failed);
  if (failed)
    return dfs__errno(DFS_EREAD, errno, "recover: read %s/" DFS_TMP_DIR, st->base);
  return rc;
}

/* ---- readers: the pending metadata of an id --------------------------- */

struct pending {
  const char *id;
  uint64_t size, hash;
  char *best;
  size_t best_len;
  int64_t best_version;
};

static int pending_cb(dfs_storage *st, const char *name, void *p)
{
  struct pending *q = p;
  struct dfs_tmp_name t;
  char *json;
  size_t len;
  uint64_t size, hash;
  int has;
  dfs_meta *m;

  dfs__tmp_parse_name(name, &t);
  if (t.kind != DFS_TK_META || strcmp(t.id, q->id) != 0)
    return 0;
  if (load_tmp(st, name, &json, &len) < 0)
    return 0; /* renamed or removed meanwhile: not ours to report */
  if (dfs_meta_parse(json, len, &m, &size, &hash, &has) == 0 && has && size == q->size &&
      hash == q->hash && (!q->best || m->version > q->best_version)) {
    free(q->best);
    q->best = json;
    q->best_len = len;
    q->best_version = m->version;
    json = NULL;
  }
  if (m)
    free(m);
  free(json);
  return 0;
}

int dfs__find_pending_meta(dfs_storage *st, const char *id, uint64_t size, uint64_t hash,
                           char **out_json, size_t *out_len)
{
  struct pending q = {id, size, hash, NULL, 0, 0};
  int rc = scan_tmp(st, pending_cb, &q);
  if (rc < 0) {
    free(q.best);
    return rc;
  }
  if (!q.best)
    return DFS_ENOTFOUND;
  *out_json = q.best;
  *out_len = q.best_len;
  return 0;
}

/* ---- recovery --------------------------------------------------------- */

/* Open a temp and try to take its flock: returns the fd (we now own it:
 * its writer is dead), -2 if a live writer holds it, -1 if it is gone. */
static int claim_tmp(dfs_storage *st, const char *name, int op)
{
  int fd = dfs_sys_openat(st->tmp_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (dfs_sys_flock(fd, op | LOCK_NB) < 0) {
    dfs_sys_close_quiet(fd);
    return -2;
  }
  return fd;
}

static void recover_meta(dfs_storage *st, const char *name, const struct dfs_tmp_name *t)
{
  char *json = NULL, mname[DFS_NAME_MAX];
  size_t len;
  uint64_t size, hash, fsize, fhash;
  int has = 0, lockfd = -1, fd, r;
  dfs_meta *m = NULL;

  fd = claim_tmp(st, name, LOCK_EX);
  if (fd < 0)
    return; /* live, or already handled */
  if (dfs_sys_read_all(fd, DFS_META_MAX, &json, &len) < 0)
    goto out; /* unreadable now (EIO...): cannot tell, leave it for later */
  r = dfs_meta_parse(json, len, &m, &size, &hash, &has);
  if (r == DFS_ENOMEM)
    goto out; /* says nothing about the file: leave it for later */
  if (r < 0 || !has) {
    /* A metadata temp that never got its contents: its write never
     * committed.  Remove it. */
    (void)dfs_sys_unlinkat(st->tmp_fd, name, 0);
    goto out;
  }
  /* Serialize with writers of the entity; never wait for them. */
  if (dfs__lockfile_acquire(st, t->id, LOCK_EX | LOCK_NB, 1, &lockfd) < 0)
    goto out;
  r = dfs__blob_identity(st, t->id, &fsize, &fhash);
  /* Roll forward only when the final pair is NOT already consistent: a
   * later write may have stored the very same blob bytes with a newer
   * version, and renaming this older metadata over it would undo that
   * acknowledged write (then this temp is superseded: removed below). */
  if (r == 0 && fsize == size && fhash == hash && !dfs__meta_matches_blob(st, t->id, fsize, fhash)) {
    dfs__entity_name(mname, t->id, DFS_META_SUFFIX);
    if (dfs_sys_renameat(st->tmp_fd, name, st->files_fd, mname) == 0)
      (void)dfs__dir_sync(st, st->files_fd, DFS_FILES_DIR, "recover", t->id);
  } else if (r == 0 || errno == ENOENT) {
    (void)dfs_sys_unlinkat(st->tmp_fd, name, 0);
  }
  /* else the final blob could not be read (EIO...): whether this pending
   * metadata is the one that matches it cannot be told, and removing it
   * could leave a new blob under the old metadata (a torn pair, for good).
   * Leave it: readers still resolve it, a later recovery finishes it. */

  /* Taking the entity lock created its lock file.  If the entity does not
   * exist (a first write that never got to its blob), remove it again,
   * while still holding it, as dfs_delete would. */
  if (!(st->flags & DFS_OPT_GO_COMPAT)) {
    struct stat sb;
    char bname[DFS_NAME_MAX];
    dfs__entity_name(bname, t->id, DFS_BLOB_SUFFIX);
    dfs__entity_name(mname, t->id, DFS_META_SUFFIX);
    if (fstatat(st->files_fd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
        fstatat(st->files_fd, mname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
      (void)dfs__lockfile_unlink_held(st, t->id, lockfd);
  }
out:
  dfs_sys_close_quiet(lockfd);
  dfs_sys_close_quiet(fd);
  free(m);
  free(json);
}

static void recover_blob(dfs_storage *st, const char *name, const struct dfs_tmp_name *t)
{
  char mtmp[DFS_TMP_NAME_MAX];
  int fd;
  snprintf(mtmp, sizeof mtmp, "e.%s" DFS_META_SUFFIX ".%s", t->id, t->sfx);
  fd = claim_tmp(st, mtmp, LOCK_SH);
  if (fd == -2)
    return; /* its writer is alive */
  if (fd == -1 && errno != ENOENT)
    return; /* cannot tell (EIO, EMFILE...): a live writer's temp must not go */
  (void)dfs_sys_unlinkat(st->tmp_fd, name, 0);
  dfs_sys_close_quiet(fd);
}

static void recover_template(dfs_storage *st, const char *name)
{
  int fd = claim_tmp(st, name, LOCK_EX);
  if (fd < 0)
    return;
  (void)dfs_sys_unlinkat(st->tmp_fd, name, 0);
  dfs_sys_close_quiet(fd);
}

static int recover_cb(dfs_storage *st, const char *name, void *p)
{
  int pass = *(int *)p;
  struct dfs_tmp_name t;
  dfs__tmp_parse_name(name, &t);
  if (pass == 0 && t.kind == DFS_TK_META)
    recover_meta(st, name, &t);
  else if (pass == 1 && t.kind == DFS_TK_BLOB)
    recover_blob(st, name, &t);
  else if (pass == 1 && t.kind == DFS_TK_TEMPLATE)
    recover_template(st, name);
  return 0;
}

int dfs__recover_all(dfs_storage *st)
{
  int rc = 0;
  /* Metadata first (it decides roll-forward against the final blob), then
   * blob and template temps. */
  for (int pass = 0; pass < 2 && rc == 0; pass++)
    rc = scan_tmp(st, recover_cb, &pass);
  return rc;
}
