/*
 * storage.c — the store: open, the entity write protocol, read, delete,
 * list, templates.
 *
 * THE WRITE PROTOCOL
 * ==================
 * An entity is two files, files/<id>.json.enc (blob) and
 * files/<id>.meta.json (metadata).  No single syscall replaces two files, so
 * the pair is tied together by content instead: the metadata carries
 * `blob_size` and `blob_xxh3` (XXH3-64 of the blob).  A blob that does not
 * match its metadata is never returned as that metadata's data.
 *
 * dfs_write(id) does, in order (T = <base>/.deltafs-tmp/, S = random 16 hex):
 *
 *   1. create T/e.<id>.meta.json.S (O_EXCL) and flock it exclusively: the
 *      "writer alive" mark (atomic.c); create T/e.<id>.json.enc.S
 *   2. write the blob and the metadata (with its size and hash) to them
 *   3. fsync both temps
 *   4. BLOB SWAP: renameat2(T/blob temp, files/<id>.json.enc, RENAME_EXCHANGE)
 *      — the new blob takes the final name and the old one moves to the
 *      temp name, where step 5 can bring it back.  No old blob (a new id):
 *      plain renameat.
 *   5. COMMIT: renameat(T/meta temp, files/<id>.meta.json).  If this fails,
 *      the blob swap is undone (exchanged back, or the new blob unlinked
 *      for a new id) and the store is exactly as it was.
 *   6. fsync files/ — the renames are durable; only now does dfs_write
 *      return 0.
 *   7. unlink the old blob (now in T), close (releasing the mark).
 *
 * What a crash (process kill or power cut) at each point leaves, and how
 * it is recovered:
 *
 *   before 4     old pair intact; temps in T.  Recovery: the pending meta
 *                does not match the final blob -> both temps removed.
 *   4..5         new blob, OLD metadata (none for a new id), pending meta in
 *                T that matches the new blob.  A reader sees the mismatch,
 *                finds the pending meta in T and returns the NEW pair;
 *                recovery rolls it forward (renames it into place under the
 *                entity's exclusive lock).  The old blob in T is removed.
 *   5..6         new pair in place; after a power cut the journal yields
 *                either this or the 4..5 state (renames commit in order),
 *                both of which read as the new pair.
 *   after 6      durable.  Leftover old blob in T removed by recovery.
 *
 * So a reader always gets the old pair or the new pair, and a write that
 * returned 0 is never lost.  Recovery (recover.c) runs at every
 * dfs_storage_open: it scans the small T directory, skips temps whose
 * writer is alive (their flock is held), rolls forward or removes the rest.
 * `deltafs fsck --repair` does the same for a whole store.
 *
 * Failure semantics: any failure before step 5 succeeds leaves the store
 * exactly as it was and removes the temps (except an overwrite on a
 * filesystem without RENAME_EXCHANGE, whose step 4 is a plain rename that
 * cannot be undone: a failed step 5 there keeps the pending metadata, the
 * 4..5 crash state, which reads as the new pair and is rolled forward).  A failure of step 6 (fsync of
 * files/) comes after the commit point: the new pair is visible, but the
 * filesystem could not promise it is durable; dfs_write returns DFS_EWRITE
 * saying so (rolling back a version other readers may already have seen
 * would be worse).
 *
 * Writers of one entity are serialized by the caller's exclusive entity
 * lock (lock.h); the protocol does not lock by itself, because the caller
 * usually holds that lock already (read-modify-write).
 *
 * DELETE removes the blob first, then the metadata, then fsyncs files/:
 * a crash between leaves metadata without a blob, which reads as "not
 * found", is not listed, and is removed by fsck --repair.
 */
#include "deltafs/lock.h"
#include "deltafs/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "commit.h"
#include "error_int.h"
#include "id.h"
#include "meta_int.h"
#include "storage_int.h"
#include "sys.h"
#include "vcache.h"

/* Reads retry this often when they meet a writer mid-commit (or, on a
 * network filesystem, ESTALE after another host's rename). */
#define READ_ATTEMPTS 8
/* Largest blob dfs_read will load. */
#define DFS_BLOB_MAX ((size_t)1 << 40)

struct file_impl {
  dfs_file pub; /* first: dfs_file* casts back to file_impl*              */
  dfs_meta *m;  /* the parsed metadata; pub.meta copies its pointers      */
  char *blob;   /* malloc'd, NUL-terminated                               */
};

void dfs__entity_name(char *buf, const char *id, const char *suffix)
{
  size_t n = strlen(id), k = strlen(suffix);
  memcpy(buf, id, n);
  memcpy(buf + n, suffix, k + 1);
}

/* ---- open / close ----------------------------------------------------- */

/* mkdir -p for the base path (which may legitimately contain symlinks, e.g.
 * a mount point; only the store's own subdirectories refuse them). */
static int mkdir_p(const char *path, int *created)
{
  char buf[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (dfs_sys_mkdirat(AT_FDCWD, buf, 0755) == 0)
        *created = 1;
      else if (errno != EEXIST)
        return -1;
      *p = c;
      if (c == '\0')
        break;
    }
  }
  return 0;
}

/* Open (creating) <base>/<name> as a directory, refusing symlinks. */
static int open_subdir(dfs_storage *st, const char *name, int *created, int *out)
{
  int fd;
  if (dfs_sys_mkdirat(st->base_fd, name, 0755) == 0)
    *created = 1;
  else if (errno != EEXIST)
    return dfs__errno(DFS_EWRITE, errno, "open store %s: create directory %s", st->base, name);
  /* O_NOFOLLOW: a symlink planted at files/ would redirect every entity
   * write outside the store. */
  fd = dfs_sys_openat(st->base_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP || e == ENOTDIR)
      return dfs__err(DFS_EREAD, "open store %s: %s is not a directory (a symlink or a file); "
                                 "refusing to follow it",
                      st->base, name);
    return dfs__errno(DFS_EREAD, e, "open store %s: open directory %s", st->base, name);
  }
  *out = fd;
  return 0;
}

static char *join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = dfs_malloc(la + 1 + lb + 1);
  if (p) {
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
  }
  return p;
}

int dfs__storage_open(dfs_storage **out, const char *base_path, unsigned flags,
                      unsigned file_mode, unsigned how, const char *op)
{
  static const char *const sub[3] = {DFS_FILES_DIR, DFS_TEMPLATES_DIR, DFS_TMP_DIR};
  dfs_storage *st;
  int created = 0, rc;

  st = dfs_calloc(1, sizeof *st);
  if (!st)
    return dfs__err(DFS_ENOMEM, "%s %s: out of memory", op, base_path);
  st->base_fd = st->files_fd = st->templates_fd = st->tmp_fd = -1;
  st->flags = flags;
  st->file_mode = file_mode;
  pthread_mutex_init(&st->mgr_mu, NULL);

  if (base_path[0] == '/') {
    st->base = dfs_strdup(base_path);
  } else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      rc = dfs__errno(DFS_EREAD, errno, "%s %s: getcwd", op, base_path);
      goto fail;
    }
    st->base = join(cwd, base_path);
  }
  if (!st->base) {
    rc = dfs__err(DFS_ENOMEM, "%s %s: out of memory", op, base_path);
    goto fail;
  }
  /* Strip trailing slashes so the paths we report read well. */
  for (size_t n = strlen(st->base); n > 1 && st->base[n - 1] == '/'; n--)
    st->base[n - 1] = '\0';
  if (!(how & DFS__OPEN_EXISTING) && mkdir_p(st->base, &created) < 0) {
    rc = dfs__errno(DFS_EWRITE, errno, "%s %s: create directory", op, st->base);
    goto fail;
  }
  st->base_fd = dfs_sys_openat(AT_FDCWD, st->base, O_RDONLY | O_DIRECTORY, 0);
  if (st->base_fd < 0) {
    rc = dfs__errno(errno == ENOENT ? DFS_ENOTFOUND : DFS_EREAD, errno, "%s %s", op, st->base);
    goto fail;
  }
  for (int i = 0; i < 3; i++) {
    int *fdp = i == 0 ? &st->files_fd : i == 1 ? &st->templates_fd : &st->tmp_fd;
    if (!(how & DFS__OPEN_EXISTING)) {
      if ((rc = open_subdir(st, sub[i], &created, fdp)) < 0)
        goto fail;
      continue;
    }
    /* An existing store only: create nothing.  templates/ and
     * .deltafs-tmp/ may be missing (a Go-written store): fd stays -1. */
    *fdp = dfs_sys_openat(st->base_fd, sub[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (*fdp < 0 && (errno != ENOENT || i == 0)) {
      rc = dfs__errno(errno == ENOENT ? DFS_ENOTFOUND : DFS_EREAD, errno, "%s: open %s/%s%s", op,
                      st->base, sub[i], errno == ENOENT ? " (not a deltafs store)" : "");
      goto fail;
    }
  }
  /* A new layout must survive a crash like anything else we create. */
  if (created && (rc = dfs__dir_sync(st, st->base_fd, ".", op, st->base)) < 0)
    goto fail;
  st->files_path = join(st->base, DFS_FILES_DIR);
  st->templates_path = join(st->base, DFS_TEMPLATES_DIR);
  if (!st->files_path || !st->templates_path || dfs__vcache_new(&st->vcache) < 0) {
    rc = dfs__err(DFS_ENOMEM, "%s %s: out of memory", op, st->base);
    goto fail;
  }
  /* Finish or remove what crashed writers left (recover.c).  Best effort:
   * a store we cannot tidy is still a store we can read. */
  if (!(how & DFS__OPEN_NO_RECOVER))
    (void)dfs__recover_all(st);
  *out = st;
  return 0;
fail:
  dfs_storage_close(st);
  return rc;
}

int dfs_storage_open(dfs_storage **out, const char *base_path, const dfs_options *opts)
{
  dfs_options o = DFS_OPTIONS_INIT;

  DFS_CHECK_ARG(out, "NULL out");
  *out = NULL;
  DFS_CHECK_ARG(base_path && base_path[0], "NULL or empty base path");
  if (opts) {
    if (opts->version != DFS_OPTIONS_VERSION)
      return dfs__err(DFS_EINVAL, "open store %s: options version %u, expected %u", base_path,
                      opts->version, DFS_OPTIONS_VERSION);
    if (opts->flags & ~(DFS_OPT_GO_COMPAT | DFS_OPT_NO_SYNC))
      return dfs__err(DFS_EINVAL, "open store %s: unknown option flags 0x%x", base_path,
                      opts->flags);
    if (opts->file_mode & ~07777u)
      return dfs__err(DFS_EINVAL, "open store %s: file mode %o is not a permission mode",
                      base_path, opts->file_mode);
    o = *opts;
    if (!o.file_mode)
      o.file_mode = 0640;
  }
  return dfs__storage_open(out, base_path, o.flags, o.file_mode, 0, "open store");
}

void dfs_storage_close(dfs_storage *st)
{
  if (!st)
    return;
  dfs_sys_close_quiet(st->tmp_fd);
  dfs_sys_close_quiet(st->templates_fd);
  dfs_sys_close_quiet(st->files_fd);
  dfs_sys_close_quiet(st->base_fd);
  dfs__vcache_free(st->vcache);
  pthread_mutex_destroy(&st->mgr_mu);
  free(st->base);
  free(st->files_path);
  free(st->templates_path);
  free(st);
}

unsigned dfs_storage_flags(const dfs_storage *st)
{
  return st ? st->flags : 0;
}

const char *dfs_base_dir(const dfs_storage *st)
{
  return st ? st->base : NULL;
}

const char *dfs_files_dir(const dfs_storage *st)
{
  return st ? st->files_path : NULL;
}

const char *dfs_templates_dir(const dfs_storage *st)
{
  return st ? st->templates_path : NULL;
}

static int build_path(const dfs_storage *st, const char *dir, const char *id, const char *suffix,
                      char *buf, size_t size)
{
  int rc, n;
  DFS_CHECK_ARG(st && buf, "NULL storage or buffer");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  n = snprintf(buf, size, "%s/%s%s", dir, id, suffix);
  if (n < 0 || (size_t)n >= size)
    return dfs__err(DFS_EINVAL, "path of %s: buffer of %zu bytes is too small", id, size);
  return 0;
}

int dfs_blob_path(const dfs_storage *st, const char *id, char *buf, size_t size)
{
  return build_path(st, st ? st->files_path : "", id, DFS_BLOB_SUFFIX, buf, size);
}

int dfs_meta_path(const dfs_storage *st, const char *id, char *buf, size_t size)
{
  return build_path(st, st ? st->files_path : "", id, DFS_META_SUFFIX, buf, size);
}

int dfs_lock_path(const dfs_storage *st, const char *id, char *buf, size_t size)
{
  return build_path(st, st ? st->files_path : "", id, DFS_LOCK_SUFFIX, buf, size);
}

/* ---- read ------------------------------------------------------------- */

static int read_error(const dfs_storage *st, const char *op, const char *id, const char *name,
                      int e)
{
  if (e == ELOOP)
    return dfs__err(DFS_EREAD, "%s %s: %s/%s is a symbolic link; refusing to follow it", op, id,
                    st->files_path, name);
  if (e == EFBIG) /* over DFS_META_MAX (or DFS_BLOB_MAX): not a file we wrote */
    return dfs__err(DFS_ECORRUPT, "%s %s: %s/%s is larger than deltafs reads", op, id,
                    st->files_path, name);
  return dfs__errno(DFS_EREAD, e, "%s %s: read %s/%s", op, id, st->files_path, name);
}

/* Load files/<name> whole (sb: the fstat of what was read; may be NULL).
 * 0, or -1 with errno. */
static int load(dfs_storage *st, const char *name, size_t max, char **buf, size_t *len,
                struct stat *sb)
{
  return dfs_sys_load_at(st->files_fd, name, max, buf, len, sb);
}

static int transient(int e)
{
  /* ESTALE: on a network filesystem another host's rename can make our
   * open/read of the old inode fail; the new one is there a moment later. */
  return e == ESTALE;
}

/* The core of dfs_read, dfs_write_if_version and dfs_version's slow path:
 * a consistent (meta, blob) pair, resolving a writer mid-commit or a
 * crash between the two renames.  *blob_out may be NULL (then the blob is
 * read, verified and freed). */
static int read_pair(dfs_storage *st, const char *op, const char *id, dfs_meta **meta_out,
                     char **blob_out, size_t *blob_len_out)
{
  char mname[DFS_NAME_MAX], bname[DFS_NAME_MAX];
  int rc = DFS_ENOTFOUND;

  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    char *mjson = NULL, *blob = NULL;
    size_t mlen = 0, blen = 0;
    uint64_t want_size = 0, want_hash = 0, hash;
    int has_integrity = 0, meta_missing = 0, cached = 0;
    struct dfs_vc_integrity integ;
    struct stat msb;
    dfs_meta *m = NULL;

    if (attempt > 0)
      usleep(1000u << (attempt < 4 ? attempt : 4)); /* 2..16 ms */
    /* The metadata file unchanged since we parsed it (and settled)?  Then
     * skip opening and parsing it; the blob is still checked against it. */
    if (dfs_sys_fstatat(st->files_fd, mname, &msb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(msb.st_mode) && dfs__vcache_get_meta(st->vcache, id, &msb, &m, &integ)) {
      cached = 1;
      want_size = integ.blob_size;
      want_hash = integ.blob_hash;
      has_integrity = integ.has;
    } else if (load(st, mname, DFS_META_MAX, &mjson, &mlen, &msb) < 0) {
      int e = errno;
      if (transient(e)) {
        rc = read_error(st, op, id, mname, e);
        continue;
      }
      if (e != ENOENT)
        return read_error(st, op, id, mname, e);
      meta_missing = 1;
    } else {
      rc = dfs_meta_parse(mjson, mlen, &m, &want_size, &want_hash, &has_integrity);
      free(mjson);
      if (rc < 0) {
        struct stat sb;
        /* Only one of the two files is "not found", whatever it holds
         * (an interrupted delete leaves the metadata). */
        if (dfs_sys_fstatat(st->files_fd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
          return dfs__err(DFS_ENOTFOUND, "%s %s: not found (metadata without blob)", op, id);
        dfs__err_prefix("%s %s: %s/%s", op, id, st->files_path, mname);
        return rc;
      }
    }
    if (load(st, bname, DFS_BLOB_MAX, &blob, &blen, NULL) < 0) {
      int e = errno;
      free(m);
      if (transient(e)) {
        rc = read_error(st, op, id, bname, e);
        continue;
      }
      if (e == ENOENT) /* deleted, or half-deleted: not found either way */
        return dfs__err(DFS_ENOTFOUND, "%s %s: not found", op, id);
      return read_error(st, op, id, bname, e);
    }
    hash = dfs__blob_hash(blob, blen);
    if (!meta_missing && (!has_integrity || (want_size == blen && want_hash == hash))) {
      /* Consistent pair (or a Go-written file, which carries no hash). */
      if (!cached) {
        integ.blob_size = want_size;
        integ.blob_hash = want_hash;
        integ.has = has_integrity;
        dfs__vcache_put(st->vcache, id, &msb, m, &integ);
      }
      *meta_out = m;
      if (blob_out) {
        *blob_out = blob;
        *blob_len_out = blen;
      } else {
        free(blob);
      }
      return 0;
    }
    free(m);
    m = NULL;
    /* The blob is newer than the metadata (a writer between its two
     * renames, or one that crashed there): the matching metadata is pending
     * in .deltafs-tmp. */
    {
      char *pjson = NULL;
      size_t plen = 0;
      if (dfs__find_pending_meta(st, id, blen, hash, &pjson, &plen) == 0) {
        rc = dfs_meta_parse(pjson, plen, &m, NULL, NULL, NULL);
        free(pjson);
        if (rc == 0) {
          *meta_out = m;
          if (blob_out) {
            *blob_out = blob;
            *blob_len_out = blen;
          } else {
            free(blob);
          }
          return 0;
        }
      }
    }
    free(blob);
    if (meta_missing)
      rc = dfs__err(DFS_ENOTFOUND, "%s %s: not found (blob without metadata)", op, id);
    else
      rc = dfs__err(DFS_ECORRUPT,
                    "%s %s: blob %s/%s (%zu bytes, xxh3 %016llx) does not match its metadata "
                    "(%llu bytes, xxh3 %016llx): torn pair",
                    op, id, st->files_path, bname, blen, (unsigned long long)hash,
                    (unsigned long long)want_size, (unsigned long long)want_hash);
    /* Retry: a writer may have committed between our two opens. */
  }
  return rc;
}

int dfs_read(dfs_storage *st, const char *id, dfs_file **out)
{
  struct file_impl *f;
  dfs_meta *m = NULL;
  char *blob = NULL;
  size_t blen = 0;
  int rc;

  DFS_CHECK_ARG(out, "NULL out");
  *out = NULL;
  DFS_CHECK_ARG(st, "NULL storage");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  f = dfs_calloc(1, sizeof *f);
  if (!f)
    return dfs__err(DFS_ENOMEM, "read %s: out of memory", id);
  rc = read_pair(st, "read", id, &m, &blob, &blen);
  if (rc < 0) {
    free(f);
    return rc;
  }
  f->m = m;
  f->blob = blob;
  f->pub.blob = blob;
  f->pub.blob_len = blen;
  f->pub.meta = *m;
  *out = &f->pub;
  return 0;
}

void dfs_file_free(dfs_file *pub)
{
  struct file_impl *f = (struct file_impl *)pub;
  if (!f)
    return;
  free(f->m);
  free(f->blob);
  free(f);
}

int dfs_version(dfs_storage *st, const char *id, int64_t *out)
{
  char mname[DFS_NAME_MAX], bname[DFS_NAME_MAX], *json = NULL;
  struct stat sb, bsb;
  dfs_meta *m = NULL;
  uint64_t bsize = 0, bhash = 0;
  size_t len = 0;
  int rc, has = 0;

  DFS_CHECK_ARG(st && out, "NULL storage or out");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  /* Fast path: one fstatat, answered from the stat cache (vcache.c). */
  if (dfs_sys_fstatat(st->files_fd, mname, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
      dfs__vcache_get(st->vcache, id, &sb, out))
    return 0;
  /* Slow path: parse the metadata file (through the descriptor we stat,
   * so the cache entry describes exactly what we parsed) and check that
   * the blob beside it has the size it records.  A different size means a
   * write between its two renames (or a crash there): take the full,
   * resolving read.  The blob's hash is not checked here — dfs_read does. */
  if (load(st, mname, DFS_META_MAX, &json, &len, &sb) < 0) {
    if (errno == ENOENT)
      goto full;
    return read_error(st, "version", id, mname, errno);
  }
  rc = dfs_meta_parse(json, len, &m, &bsize, &bhash, &has);
  free(json);
  if (rc < 0) {
    dfs__err_prefix("version %s: %s/%s", id, st->files_path, mname);
    return rc;
  }
  if (dfs_sys_fstatat(st->files_fd, bname, &bsb, AT_SYMLINK_NOFOLLOW) < 0) {
    free(m);
    if (errno == ENOENT)
      return dfs__err(DFS_ENOTFOUND, "version %s: not found", id);
    return dfs__errno(DFS_EREAD, errno, "version %s: stat %s/%s", id, st->files_path, bname);
  }
  if (has && (uint64_t)bsb.st_size != bsize) {
    free(m);
    goto full;
  }
  *out = m->version;
  {
    struct dfs_vc_integrity integ = {bsize, bhash, has};
    dfs__vcache_put(st->vcache, id, &sb, m, &integ);
  }
  free(m);
  return 0;
full:
  rc = read_pair(st, "version", id, &m, NULL, NULL);
  if (rc < 0)
    return rc;
  *out = m->version;
  free(m);
  return 0;
}

int dfs_exists(dfs_storage *st, const char *id)
{
  char name[DFS_NAME_MAX];
  const char *suffixes[2] = {DFS_BLOB_SUFFIX, DFS_META_SUFFIX};
  int present = 0, rc;

  DFS_CHECK_ARG(st, "NULL storage");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  for (int i = 0; i < 2; i++) {
    struct stat sb;
    dfs__entity_name(name, id, suffixes[i]);
    if (dfs_sys_fstatat(st->files_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT)
        continue;
      return dfs__errno(DFS_EREAD, errno, "exists %s: stat %s/%s", id, st->files_path, name);
    }
    if (!S_ISREG(sb.st_mode))
      return dfs__err(DFS_EREAD, "exists %s: %s/%s is not a regular file", id, st->files_path,
                      name);
    present |= 1 << i;
  }
  if (present == 3)
    return 1;
  if (present == 1) {
    /* Blob without metadata: a new entity whose writer is between its two
     * renames (or crashed there) exists if its pending metadata does. */
    dfs_meta *m = NULL;
    if (read_pair(st, "exists", id, &m, NULL, NULL) == 0) {
      free(m);
      return 1;
    }
  }
  return 0;
}

/* ---- write ------------------------------------------------------------ */

/* renameat of one of OUR temps (in .deltafs-tmp, kept from recovery by our
 * live mark, so nobody else removes it) over its final name in files/.
 * GlusterFS: when another host unlinks the TARGET at that moment
 * (dfs_delete), the rename can report ENOENT or ESTALE although it was
 * done (the brick renamed, then the reply's lookup found the name gone),
 * or fail on the vanished target while our temp is still there.  Our temp
 * being gone tells the first case (done: the delete simply came after);
 * the second is retried a few times. */
static int rename_into(dfs_storage *st, const char *tmpname, const char *final)
{
  for (int tries = 0;; tries++) {
    struct stat sb;
    int r = dfs_sys_renameat(st->tmp_fd, tmpname, st->files_fd, final), e = errno;
    if (r == 0 || (e != ENOENT && e != ESTALE))
      return r;
    /* Not fault-injected: only an error path looks. */
    if (fstatat(st->tmp_fd, tmpname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
      return 0;
    if (tries >= 8) {
      errno = e;
      return -1;
    }
  }
}

static int write_entity(dfs_storage *st, const char *id, const void *blob, size_t len,
                        const dfs_meta *meta, int check, int64_t expected)
{
  const char *op = check ? "write_if_version" : "write";
  char bname[DFS_NAME_MAX], mname[DFS_NAME_MAX], sfx[DFS_TMP_SFX_LEN + 1] = "";
  struct dfs_tmp mt = {.fd = -1}, bt = {.fd = -1};
  struct dfs_tmp *both[2] = {&bt, &mt};
  char *json = NULL;
  size_t jlen = 0;
  int rc, exchanged = 0, e;

  DFS_CHECK_ARG(st && meta, "NULL storage or metadata");
  DFS_CHECK_ARG(blob || len == 0, "NULL blob with non-zero length");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  if (!blob)
    blob = "";
  if (check) {
    dfs_meta *cur = NULL;
    int64_t have = 0;
    rc = read_pair(st, op, id, &cur, NULL, NULL);
    if (rc == 0) {
      have = cur->version;
      free(cur);
    } else if (rc != DFS_ENOTFOUND) {
      return rc;
    }
    if (have != expected)
      return dfs__err(DFS_ECONFLICT, "%s %s: stored version is %lld, expected %lld%s", op, id,
                      (long long)have, (long long)expected,
                      rc == DFS_ENOTFOUND ? " (entity does not exist)" : "");
  }
  /* Serialize (and so validate) the metadata before touching any file; the
   * blob's hash is filled in below, once the blob's write-back is under way. */
  rc = dfs__meta_to_json(meta, len, 0, &json, &jlen);
  if (rc < 0) {
    dfs__err_prefix("%s %s", op, id);
    return rc;
  }
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  dfs__entity_name(mname, id, DFS_META_SUFFIX);

  /* 1. temps: the metadata temp first, marked live, then the blob's with
   *    the same suffix (recovery pairs them by it). */
  if ((rc = dfs__tmp_create(st, "e.", id, DFS_META_SUFFIX, sfx, 1, &mt, op)) < 0)
    goto fail;
  if ((rc = dfs__tmp_create(st, "e.", id, DFS_BLOB_SUFFIX, sfx, 0, &bt, op)) < 0)
    goto fail;
  /* 2-3. contents, durable before any rename (with the fsync of files/ at
   *    step 6 on filesystems where commit.c relies on it).  The blob goes
   *    first and its write-back is started at once, so hashing it (for the
   *    metadata's integrity key) overlaps the device's work. */
  if ((rc = dfs__tmp_write(st, &bt, blob, len, op, id)) < 0)
    goto fail;
  dfs__commit_writeback_hint(st, bt.fd);
  dfs__meta_set_hash(json, jlen, dfs__blob_hash(blob, len));
  if ((rc = dfs__tmp_write(st, &mt, json, jlen, op, id)) < 0 ||
      (rc = dfs__commit_sync_temps(st, both, 2, op, id)) < 0)
    goto fail;
  /* The blob temp's descriptor is done with; its close must succeed (on
   * network filesystems close reports deferred write errors). */
  if (dfs_sys_close(bt.fd) < 0) {
    bt.fd = -1;
    rc = dfs__errno(DFS_EWRITE, errno, "%s %s: close %s/" DFS_TMP_DIR "/%s", op, id, st->base,
                    bt.name);
    goto fail;
  }
  bt.fd = -1;

  /* 4. blob swap. */
  e = 0; /* why the exchange was not done: 0 = not tried */
  if (!atomic_load_explicit(&st->no_exchange, memory_order_relaxed)) {
    if (dfs_sys_renameat2(st->tmp_fd, bt.name, st->files_fd, bname, RENAME_EXCHANGE) == 0)
      exchanged = 1;
    else
      e = errno;
  }
  if (exchanged) {
    /* the old blob is now at bt.name: step 5 can bring it back */
  } else if (e == 0 || e == ENOENT || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
    /* No old blob (new id), or a filesystem without RENAME_EXCHANGE
     * (FUSE, GlusterFS, NFS: remembered, so later writes do not pay a
     * failing round trip for it). */
    if (e != 0 && e != ENOENT)
      atomic_store_explicit(&st->no_exchange, 1, memory_order_relaxed);
    if (rename_into(st, bt.name, bname) < 0) {
      rc = dfs__errno(DFS_EWRITE, errno, "%s %s: rename blob into %s/%s", op, id,
                      st->files_path, bname);
      goto fail;
    }
    bt.created = 0; /* the temp name is gone */
  } else {
    rc = dfs__errno(DFS_EWRITE, e, "%s %s: rename blob into %s/%s", op, id, st->files_path,
                    bname);
    goto fail;
  }

  /* 5. commit. */
  if (rename_into(st, mt.name, mname) < 0) {
    e = errno;
    rc = dfs__errno(DFS_EWRITE, e, "%s %s: rename metadata into %s/%s", op, id, st->files_path,
                    mname);
    /* Undo the blob swap so the store is as it was. */
    if (exchanged) {
      if (renameat2(st->tmp_fd, bt.name, st->files_fd, bname, RENAME_EXCHANGE) < 0) {
        dfs__err_prefix("%s %s: (could not undo blob swap: %s; recovery will roll forward)", op,
                        id, strerror(errno));
        mt.created = 0; /* keep the pending metadata: it is what rolls forward */
      }
    } else {
      struct stat sb;
      /* New id: remove the new blob, unless a concurrent write replaced it. */
      if (fstatat(st->files_fd, mname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
        (void)unlinkat(st->files_fd, bname, 0);
      } else {
        /* An overwrite on a filesystem without RENAME_EXCHANGE (FUSE,
         * GlusterFS, NFS): the plain rename of step 4 already replaced the
         * old blob, so there is nothing to go back to.  Keep the pending
         * metadata in .deltafs-tmp: that is the state a crash between
         * steps 4 and 5 leaves, which reads as the new pair and which
         * recovery rolls forward — never a torn pair. */
        mt.created = 0;
        dfs__err_prefix("%s %s: (no RENAME_EXCHANGE here: the new blob is in place and its "
                        "metadata will be rolled forward by recovery)",
                        op, id);
      }
    }
    goto fail;
  }
  mt.created = 0;
  dfs__vcache_forget(st->vcache, id);

  /* 6. durability of both renames. */
  rc = dfs__dir_sync(st, st->files_fd, DFS_FILES_DIR, op, id);
  if (rc < 0)
    dfs__err_prefix("%s %s: new version is in place but may not be durable", op, id);

  /* 7. the old blob, now in .deltafs-tmp, and the live mark. */
  if (exchanged)
    (void)dfs_sys_unlinkat(st->tmp_fd, bt.name, 0); /* a leftover is removed by recovery */
  bt.created = 0;
  dfs__tmp_close(&mt);
  free(json);
  return rc;

fail:
  dfs__tmp_discard(st, &bt);
  dfs__tmp_discard(st, &mt);
  free(json);
  return rc;
}

int dfs_write(dfs_storage *st, const char *id, const void *blob, size_t len, const dfs_meta *meta)
{
  return write_entity(st, id, blob, len, meta, 0, 0);
}

int dfs_write_if_version(dfs_storage *st, const char *id, const void *blob, size_t len,
                         const dfs_meta *meta, int64_t expected_version)
{
  return write_entity(st, id, blob, len, meta, 1, expected_version);
}

/* ---- delete ----------------------------------------------------------- */

int dfs_delete(dfs_storage *st, const char *id)
{
  char name[DFS_NAME_MAX];
  const char *suffixes[2] = {DFS_BLOB_SUFFIX, DFS_META_SUFFIX};
  int removed = 0, rc;

  DFS_CHECK_ARG(st, "NULL storage");
  if ((rc = dfs_id_validate(id)) < 0)
    return rc;
  /* Blob first: from that moment the entity is neither listed nor
   * readable; a crash before the metadata goes leaves an orphan that
   * reads as "not found" and that fsck removes. */
  for (int i = 0; i < 2; i++) {
    dfs__entity_name(name, id, suffixes[i]);
    if (dfs_sys_unlinkat(st->files_fd, name, 0) == 0)
      removed = 1;
    else if (errno != ENOENT)
      return dfs__errno(DFS_EWRITE, errno, "delete %s: unlink %s/%s", id, st->files_path, name);
  }
  dfs__vcache_forget(st->vcache, id);
  if (removed && (rc = dfs__dir_sync(st, st->files_fd, DFS_FILES_DIR, "delete", id)) < 0)
    return rc;
  if (st->flags & DFS_OPT_GO_COMPAT)
    return 0;
  /* The lock file goes too, always while held exclusively (lock.h). */
  rc = dfs__lockmgr_unlink_if_held_exclusive(st, id);
  if (rc == 0) {
    int fd = -1;
    rc = dfs__lockfile_acquire(st, id, LOCK_EX | LOCK_NB, 0, &fd);
    if (rc == 0) {
      rc = dfs__lockfile_unlink_held(st, id, fd);
      dfs_sys_close_quiet(fd);
    } else if (rc == DFS_EBUSY || rc == DFS_ENOTFOUND) {
      rc = 0; /* in use, or none: leave it (harmless; fsck removes stale ones) */
    }
  }
  if (rc < 0) {
    /* The entity is gone (durably); only its lock file is left.  Report it
     * as the write failure it is, under this operation's name. */
    dfs__err_prefix("delete %s: deleted, but the lock file could not be removed", id);
    return DFS_EWRITE;
  }
  return 0;
}

/* ---- list ------------------------------------------------------------- */

/* Walk a directory (sys.c's getdents64 iterator), calling fn(id) for every
 * name that is a valid id followed by `suffix`. */
struct walk_ctx {
  const char *suffix;
  size_t slen;
  int (*fn)(const char *id, size_t len, void *payload);
  void *payload;
};

static int walk_cb(const char *name, unsigned char type, void *p)
{
  struct walk_ctx *w = p;
  size_t nlen = strlen(name);
  if (name[0] == '.' || nlen <= w->slen || memcmp(name + nlen - w->slen, w->suffix, w->slen) != 0)
    return 0;
  if (type != DT_REG && type != DT_UNKNOWN)
    return 0;
  /* "<id>.json.enc.lock" does not end in ".json.enc"; "<x>.meta.json" does
   * not either.  The id must be valid (foreign files are not entities). */
  if (!dfs__id_check(name, nlen - w->slen))
    return 0;
  return w->fn(name, nlen - w->slen, w->payload);
}

static int walk(int dirfd, const char *dirpath, const char *suffix,
                int (*fn)(const char *id, size_t len, void *payload), void *payload)
{
  struct walk_ctx w = {suffix, strlen(suffix), fn, payload};
  int failed, rc = dfs_sys_dir_each(dirfd, 256 * 1024, walk_cb, &w, &failed);
  if (failed)
    return errno == ENOMEM ? dfs__err(DFS_ENOMEM, "list %s: out of memory", dirpath)
                           : dfs__errno(DFS_EREAD, errno, "list: read directory %s", dirpath);
  return rc;
}

struct each_ctx {
  int (*fn)(const char *id, void *payload);
  void *payload;
};

static int each_cb(const char *name, size_t len, void *payload)
{
  struct each_ctx *c = payload;
  char id[DFS_ID_MAX + 1];
  memcpy(id, name, len);
  id[len] = '\0';
  return c->fn(id, c->payload);
}

int dfs_list_each(dfs_storage *st, int (*fn)(const char *id, void *payload), void *payload)
{
  struct each_ctx c = {fn, payload};
  DFS_CHECK_ARG(st && fn, "NULL storage or callback");
  return walk(st->files_fd, st->files_path, DFS_BLOB_SUFFIX, each_cb, &c);
}

/* The array form stores every id in one arena (offsets while it grows,
 * pointers at the end): two allocations for a million ids, not a million. */
_Static_assert(sizeof(size_t) == sizeof(char *), "offsets become pointers in place");

struct list_impl {
  dfs_id_list pub; /* first */
  char *arena;
};

struct collect {
  char *arena;
  size_t used, cap;
  size_t *offs;
  size_t count, ocap;
};

static int collect_cb(const char *name, size_t len, void *payload)
{
  struct collect *c = payload;
  if (c->used + len + 1 > c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 64 * 1024;
    char *na;
    while (ncap < c->used + len + 1)
      ncap *= 2;
    na = dfs_realloc(c->arena, ncap);
    if (!na)
      return dfs__err(DFS_ENOMEM, "list: out of memory");
    c->arena = na;
    c->cap = ncap;
  }
  if (c->count == c->ocap) {
    size_t ncap = c->ocap ? c->ocap * 2 : 1024;
    size_t *no = dfs_realloc(c->offs, ncap * sizeof *no);
    if (!no)
      return dfs__err(DFS_ENOMEM, "list: out of memory");
    c->offs = no;
    c->ocap = ncap;
  }
  c->offs[c->count++] = c->used;
  memcpy(c->arena + c->used, name, len);
  c->arena[c->used + len] = '\0';
  c->used += len + 1;
  return 0;
}

static int list_dir(int dirfd, const char *dirpath, const char *suffix,
                    dfs_id_list **out)
{
  struct collect c = {0};
  struct list_impl *l;
  int rc;

  DFS_CHECK_ARG(out, "NULL out");
  *out = NULL;
  rc = walk(dirfd, dirpath, suffix, collect_cb, &c);
  if (rc < 0)
    goto fail;
  l = dfs_calloc(1, sizeof *l);
  if (!l) {
    rc = dfs__err(DFS_ENOMEM, "list: out of memory");
    goto fail;
  }
  /* The offsets array becomes the pointer array in place (same size). */
  l->pub.ids = (char **)c.offs;
  l->pub.count = c.count;
  l->arena = c.arena;
  for (size_t i = 0; i < c.count; i++)
    l->pub.ids[i] = c.arena + c.offs[i];
  *out = &l->pub;
  return 0;
fail:
  free(c.arena);
  free(c.offs);
  return rc;
}

int dfs_list(dfs_storage *st, dfs_id_list **out)
{
  DFS_CHECK_ARG(st, "NULL storage");
  return list_dir(st->files_fd, st->files_path, DFS_BLOB_SUFFIX, out);
}

void dfs_list_free(dfs_id_list *pub)
{
  struct list_impl *l = (struct list_impl *)pub;
  if (!l)
    return;
  free(l->arena);
  free(l->pub.ids);
  free(l);
}

/* ---- templates -------------------------------------------------------- */

int dfs_template_write(dfs_storage *st, const char *schema_id, const void *data, size_t len)
{
  char name[DFS_NAME_MAX];
  int rc;
  DFS_CHECK_ARG(st, "NULL storage");
  DFS_CHECK_ARG(data || len == 0, "NULL data with non-zero length");
  if ((rc = dfs_id_validate(schema_id)) < 0)
    return rc;
  dfs__entity_name(name, schema_id, DFS_TEMPLATE_SUFFIX);
  return dfs__replace_file(st, st->templates_fd, DFS_TEMPLATES_DIR, name, schema_id,
                           data ? data : "", len, "template write");
}

int dfs_template_read(dfs_storage *st, const char *schema_id, void **out, size_t *out_len)
{
  char name[DFS_NAME_MAX], *buf = NULL;
  size_t len = 0;
  int rc, fd;
  DFS_CHECK_ARG(out && out_len, "NULL out");
  *out = NULL;
  *out_len = 0;
  DFS_CHECK_ARG(st, "NULL storage");
  if ((rc = dfs_id_validate(schema_id)) < 0)
    return rc;
  dfs__entity_name(name, schema_id, DFS_TEMPLATE_SUFFIX);
  for (int attempt = 0;; attempt++) {
    /* O_NOFOLLOW: as for entities, never read through a planted symlink. */
    fd = dfs_sys_openat(st->templates_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd >= 0 && dfs_sys_read_all(fd, DFS_BLOB_MAX, &buf, &len) == 0) {
      dfs_sys_close_quiet(fd);
      break;
    }
    rc = errno;
    dfs_sys_close_quiet(fd);
    if (transient(rc) && attempt < READ_ATTEMPTS)
      continue;
    if (rc == ENOENT)
      return dfs__err(DFS_ENOTFOUND, "template read %s: not found", schema_id);
    if (rc == ELOOP)
      return dfs__err(DFS_EREAD, "template read %s: %s/%s is a symbolic link; refusing to follow it",
                      schema_id, st->templates_path, name);
    return dfs__errno(DFS_EREAD, rc, "template read %s: read %s/%s", schema_id,
                      st->templates_path, name);
  }
  *out = buf;
  *out_len = len;
  return 0;
}

int dfs_template_list(dfs_storage *st, dfs_id_list **out)
{
  DFS_CHECK_ARG(st, "NULL storage");
  return list_dir(st->templates_fd, st->templates_path, DFS_TEMPLATE_SUFFIX, out);
}

void dfs_free(void *p)
{
  free(p);
}
