/*
 * fsck.c — check and repair a whole store (include/deltafs/fsck.h).
 *
 * HOW THE SCAN WORKS
 * ==================
 * The store is opened here, not with dfs_storage_open(): that would run
 * recovery first and hide exactly what fsck must report, and it would
 * create a store at a mistyped path.  fsck_open() only opens what exists.
 *
 * Phase 1, .deltafs-tmp/ (small: only writes in flight and crash leftovers),
 * in two passes like recovery (recover.c), metadata temps first because
 * they decide roll-forward against the final blob:
 *
 *   e.<id>.meta.json.S  flock held by someone -> TEMP_LIVE.  Else, if it
 *                       matches the blob in files/ while files/' metadata
 *                       does not -> PENDING (roll forward), else TEMP_DEAD.
 *   e.<id>.json.enc.S   live iff its metadata temp S is flock'ed; else
 *                       TEMP_DEAD (the new blob of a write that never
 *                       swapped, or the old blob after a swap).
 *   t.<schema>.json.S   live iff flock'ed, else TEMP_DEAD.
 *   anything else       FOREIGN.
 *
 * The ids whose temps are still there after phase 1 (live, skipped, or
 * only reported) are remembered in a small sorted array: phase 2 needs to
 * know "is something pending for this id" without rescanning, and the
 * array's size is bounded by .deltafs-tmp/, never by files/.
 *
 * Phase 2, files/ (may hold millions of names): streamed with getdents64;
 * each name is judged alone with *at() calls on its siblings, so memory is
 * constant:
 *
 *   <id>.meta.json      the entity check: metadata parses; the blob exists;
 *                       its size (QUICK) or size and XXH3 match the
 *                       metadata's integrity keys.  A mismatch that a
 *                       pending metadata temp explains is not damage
 *                       (phase 1 reported it, or a writer is mid-commit).
 *   <id>.json.enc       only checked for a missing metadata (BLOB_NO_META);
 *                       the pair itself is checked from the metadata name.
 *   <id>.json.enc.lock  STALE_LOCK if neither entity file exists, nothing
 *                       is pending and nobody holds it.
 *   anything else       FOREIGN.
 *
 * Before anything is reported as damage it is checked again under the
 * entity's lock (shared, or exclusive when it is going to be repaired),
 * taken without blocking: writers hold the exclusive lock for a whole
 * write, so a pair seen torn while a writer was between its renames reads
 * consistent once we hold the lock.  If the lock stays busy the finding is
 * reported as SKIPPED (in use).  No lock file means no writer that follows
 * the locking rules is active: the re-check then runs unlocked.
 *
 * Phase 3, templates/: names that are not <schema>.json are FOREIGN.
 *
 * REPAIRS are the ones recovery would make plus the two that recovery
 * leaves to fsck (an interrupted delete's metadata, stale lock files); each
 * runs under the entity's exclusive lock (LOCK_EX|LOCK_NB; busy ->
 * SKIPPED), re-validates its condition under that lock, and never removes
 * a file that could hold the only copy of user data (torn pairs, orphan
 * blobs, corrupt metadata are reported, never touched).  A lock file that
 * repair had to create for an entity that does not exist afterwards is
 * removed again (unless the store is shared with Go workers), so a repair
 * never leaves a stale lock of its own.
 *
 * Roll-forward rule: a dead metadata temp is rolled forward only if it
 * matches the final blob AND the final metadata does not (missing, corrupt,
 * no integrity keys, or a mismatch).  When the final pair is already
 * consistent the temp is superseded — a later write may have stored the
 * very same blob bytes with a newer version, and renaming the old temp
 * over it would silently undo that acknowledged write.
 */
#include "deltafs/fsck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "error_int.h"
#include "id.h"
#include "meta_int.h"
#include "storage_int.h"
#include "sys.h"
#include "vcache.h"

/* Largest blob fsck will hash (as dfs_read). */
#define FSCK_BLOB_MAX ((size_t)1 << 40)
/* A suspect entity whose lock is busy is retried this many times, 5 ms
 * apart, before it is reported as skipped: a writer holds it only for the
 * length of one write. */
#define LOCK_TRIES 20
#define PROGRESS_EVERY 1024
#define DETAIL_MAX 768

struct fsck {
  dfs_storage *st;
  unsigned flags;
  const dfs_fsck_options *o;
  dfs_fsck_summary *sum;
  int stop;          /* the callback's non-zero return, once it stops us */
  char **ids;        /* sorted: ids with temps left in .deltafs-tmp/    */
  size_t nids, capids;
};

/* ---- names ------------------------------------------------------------ */

static const char *const kind_names[DFS_FSCK_KIND_COUNT] = {
    "temp-live", "temp-dead", "pending", "meta-no-blob", "stale-lock",
    "torn",      "blob-no-meta", "corrupt-meta", "foreign", "unreadable"};

const char *dfs_fsck_kind_name(dfs_fsck_kind kind)
{
  return (unsigned)kind < DFS_FSCK_KIND_COUNT ? kind_names[kind] : "unknown";
}

const char *dfs_fsck_status_name(dfs_fsck_status status)
{
  switch (status) {
  case DFS_FSCK_INFO: return "info";
  case DFS_FSCK_FOUND: return "found";
  case DFS_FSCK_REPAIRED: return "repaired";
  case DFS_FSCK_UNREPAIRABLE: return "unrepairable";
  case DFS_FSCK_SKIPPED: return "skipped";
  case DFS_FSCK_REPAIR_FAILED: return "repair-failed";
  }
  return "unknown";
}

/* ---- reporting -------------------------------------------------------- */

static int report(struct fsck *c, dfs_fsck_kind kind, dfs_fsck_status status, const char *dir,
                  const char *name, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int report(struct fsck *c, dfs_fsck_kind kind, dfs_fsck_status status, const char *dir,
                  const char *name, const char *id, const char *fmt, ...)
{
  char detail[DETAIL_MAX];
  dfs_fsck_finding f;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  c->sum->by_kind[kind]++;
  if (status == DFS_FSCK_INFO) {
    c->sum->live++;
  } else {
    c->sum->problems++;
    if (status == DFS_FSCK_REPAIRED)
      c->sum->repaired++;
    else
      c->sum->remaining++;
    if (status == DFS_FSCK_SKIPPED)
      c->sum->skipped++;
  }
  if (!c->o->fn)
    return 0;
  f.kind = kind;
  f.status = status;
  f.dir = dir;
  f.name = name;
  f.id = id;
  f.detail = detail;
  c->stop = c->o->fn(&f, c->o->payload);
  return c->stop;
}

/* The status of a repairable finding once its repair returned rc:
 * 0 repaired, DFS_EBUSY in use, else failed (dfs_last_error() says why). */
static dfs_fsck_status repair_status(int rc)
{
  if (rc == 0)
    return DFS_FSCK_REPAIRED;
  return rc == DFS_EBUSY ? DFS_FSCK_SKIPPED : DFS_FSCK_REPAIR_FAILED;
}

static const char *repair_note(int rc)
{
  if (rc == 0)
    return "";
  if (rc == DFS_EBUSY)
    return " (skipped: in use)";
  return " (repair failed: see below)";
}

/* ---- the id set (ids with temps) --------------------------------------- */

static int ids_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Insert id, keeping the array sorted and without duplicates (it is
 * searched while phase 1 still adds to it; .deltafs-tmp/ is small, so the
 * memmove is cheap). */
static int ids_add(struct fsck *c, const char *id)
{
  char *s;
  size_t lo = 0, hi = c->nids;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int cmp = strcmp(c->ids[mid], id);
    if (cmp == 0)
      return 0;
    if (cmp < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (c->nids == c->capids) {
    size_t ncap = c->capids ? c->capids * 2 : 16;
    char **n = dfs_realloc(c->ids, ncap * sizeof *n);
    if (!n)
      return dfs__err(DFS_ENOMEM, "fsck: out of memory");
    c->ids = n;
    c->capids = ncap;
  }
  if (!(s = dfs_strdup(id)))
    return dfs__err(DFS_ENOMEM, "fsck: out of memory");
  memmove(c->ids + lo + 1, c->ids + lo, (c->nids - lo) * sizeof *c->ids);
  c->ids[lo] = s;
  c->nids++;
  return 0;
}

static int ids_has(const struct fsck *c, const char *id)
{
  return c->nids && bsearch(&id, c->ids, c->nids, sizeof *c->ids, ids_cmp) != NULL;
}

/* ---- small file helpers ----------------------------------------------- */


/* 1 if either file of the entity exists (whatever it is), 0 if neither,
 * -1/errno if one cannot be stat'ed. */
static int entity_present(dfs_storage *st, const char *id)
{
  const char *sfx[2] = {DFS_BLOB_SUFFIX, DFS_META_SUFFIX};
  for (int i = 0; i < 2; i++) {
    char name[DFS_NAME_MAX];
    struct stat sb;
    dfs__entity_name(name, id, sfx[i]);
    if (dfs_sys_fstatat(st->files_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
      return 1;
    if (errno != ENOENT)
      return -1;
  }
  return 0;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {0, (long)ms * 1000000L};
  (void)nanosleep(&ts, NULL);
}

/* Take the entity lock without blocking, retrying a busy lock LOCK_TRIES
 * times.  *fd is -1 when there was no lock file to take (create == 0).
 * Returns 0, DFS_EBUSY, or another negative code. */
static int entity_lock(struct fsck *c, const char *id, int op, int create, int *fd)
{
  int rc = DFS_EBUSY;
  *fd = -1;
  for (int i = 0; i < LOCK_TRIES; i++) {
    if (i > 0)
      sleep_ms(5);
    rc = dfs__lockfile_acquire(c->st, id, op | LOCK_NB, create, fd);
    if (rc == DFS_ENOTFOUND) {
      *fd = -1;
      return 0;
    }
    if (rc != DFS_EBUSY)
      return rc;
  }
  return rc;
}

/* After a repair under a lock we created or found: if the entity is gone,
 * the lock file is stale — remove it while we hold it (never in
 * Go-compatible stores, whose workers do not re-check their lock). */
static void entity_unlock(struct fsck *c, const char *id, int fd, int exclusive)
{
  if (fd < 0)
    return;
  /* Only an exclusive holder may unlink a lock file (lockfile.c). */
  if (exclusive && !(c->st->flags & DFS_OPT_GO_COMPAT) && !ids_has(c, id) && entity_present(c->st, id) == 0)
    (void)dfs__lockfile_unlink_held(c->st, id, fd);
  dfs_sys_close_quiet(fd);
}

/* ---- phase 1: .deltafs-tmp/ ------------------------------------------- */

/* Open a temp and try its flock without blocking.  Returns the fd (the
 * writer is gone; we hold the flock), -2 if a live writer holds it, -1 if
 * the temp is gone (ENOENT) or cannot be opened (errno). */
static int probe_tmp(struct fsck *c, const char *name, int op)
{
  int fd = dfs_sys_openat(c->st->tmp_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (dfs_sys_flock(fd, op | LOCK_NB) < 0) {
    int e = errno;
    dfs_sys_close_quiet(fd);
    if (e == EWOULDBLOCK)
      return -2;
    errno = e;
    return -1;
  }
  return fd;
}

/* Does a dead metadata temp (size, hash of its blob) roll forward?  See the
 * roll-forward rule at the top. */
static int rolls_forward(dfs_storage *st, const char *id, uint64_t size, uint64_t hash)
{
  uint64_t fs, fh;
  if (dfs__blob_identity(st, id, &fs, &fh) < 0)
    return errno == ENOENT ? 0 : -1;
  if (fs != size || fh != hash)
    return 0;
  return !dfs__meta_matches_blob(st, id, fs, fh);
}

/* Classify a dead metadata temp's contents: 1 pending, 0 dead, -1 cannot
 * tell (the final blob is unreadable: removing the temp could leave a torn
 * pair for good, so it is left, as recovery leaves it). */
static int meta_tmp_pending(struct fsck *c, int fd, const char *id)
{
  char *json = NULL;
  size_t len;
  uint64_t size = 0, hash = 0;
  int has = 0, r = 0, e = 0, prc;
  dfs_meta *m = NULL;
  /* Called twice on one descriptor (scan, then under the lock): rewind.
   * A temp that cannot be read now (EIO...) says nothing: -1, like an
   * unreadable blob.  One that reads but does not parse never got its
   * contents: its write never committed (0). */
  if (lseek(fd, 0, SEEK_SET) != 0 || dfs_sys_read_all(fd, DFS_META_MAX, &json, &len) < 0)
    return -1;
  prc = dfs_meta_parse(json, len, &m, &size, &hash, &has);
  if (prc == DFS_ENOMEM) {
    r = -1;
    e = ENOMEM;
  } else if (prc == 0 && has) {
    r = rolls_forward(c->st, id, size, hash);
    e = errno;
  }
  free(m);
  free(json);
  errno = e;
  return r;
}

/* Roll forward or remove a dead metadata temp (we hold its flock through
 * tfd), under the entity's exclusive lock.  Returns 0 (done; *rolled says
 * which), DFS_EBUSY, or a failure code with the detail set. */
static int repair_meta_tmp(struct fsck *c, const char *name, const char *id, int tfd,
                           int *rolled)
{
  char mname[DFS_NAME_MAX];
  int lfd, rc, pending;

  *rolled = 0;
  rc = entity_lock(c, id, LOCK_EX, 1, &lfd);
  if (rc < 0)
    return rc;
  /* Re-decide under the lock: the files may have moved since the scan. */
  pending = meta_tmp_pending(c, tfd, id);
  if (pending < 0) {
    rc = dfs__errno(DFS_EREAD, errno, "fsck: %s/%s cannot be read, so whether %s/" DFS_TMP_DIR
                    "/%s rolls forward cannot be told; left alone",
                    c->st->files_path, id, c->st->base, name);
  } else if (pending) {
    dfs__entity_name(mname, id, DFS_META_SUFFIX);
    if (dfs_sys_renameat(c->st->tmp_fd, name, c->st->files_fd, mname) < 0) {
      rc = dfs__errno(DFS_EWRITE, errno, "fsck: roll forward %s/" DFS_TMP_DIR "/%s", c->st->base,
                      name);
    } else {
      *rolled = 1;
      /* The rename is the commit of that write: make it durable. */
      rc = dfs__dir_sync(c->st, c->st->files_fd, DFS_FILES_DIR, "fsck", id);
    }
  } else if (dfs_sys_unlinkat(c->st->tmp_fd, name, 0) < 0 && errno != ENOENT) {
    rc = dfs__errno(DFS_EWRITE, errno, "fsck: remove %s/" DFS_TMP_DIR "/%s", c->st->base, name);
  }
  entity_unlock(c, id, lfd, 1);
  return rc;
}

static int tmp_meta(struct fsck *c, const char *name, const struct dfs_tmp_name *t)
{
  int repair = (c->flags & DFS_FSCK_REPAIR) != 0, pending, rc, rolled = 0;
  int fd = probe_tmp(c, name, repair ? LOCK_EX : LOCK_SH);

  if (fd == -2) {
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    return report(c, DFS_FSCK_TEMP_LIVE, DFS_FSCK_INFO, DFS_TMP_DIR, name, t->id,
                  "metadata temp of a write in progress (its writer holds the temp's lock)");
  }
  if (fd == -1) {
    if (errno == ENOENT)
      return 0; /* committed or removed since the directory was read */
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    return report(c, DFS_FSCK_UNREADABLE, DFS_FSCK_UNREPAIRABLE, DFS_TMP_DIR, name, t->id,
                  "cannot open the temp: %s", strerror(errno));
  }
  pending = meta_tmp_pending(c, fd, t->id);
  if (pending < 0) {
    int e = errno;
    dfs_sys_close_quiet(fd);
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    return report(c, DFS_FSCK_UNREADABLE, DFS_FSCK_UNREPAIRABLE, DFS_TMP_DIR, name, t->id,
                  "a dead writer's metadata temp, but the entity's blob cannot be read (%s): "
                  "whether it rolls forward cannot be told; left alone",
                  strerror(e));
  }
  if (!repair) {
    dfs_sys_close_quiet(fd);
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    if (pending)
      return report(c, DFS_FSCK_PENDING, DFS_FSCK_FOUND, DFS_TMP_DIR, name, t->id,
                    "a dead writer's committed metadata: its blob is in place, the metadata "
                    "rename is missing; --repair rolls it forward");
    return report(c, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND, DFS_TMP_DIR, name, t->id,
                  "metadata temp of a dead writer whose write never swapped its blob in (or "
                  "was superseded); --repair removes it");
  }
  rc = repair_meta_tmp(c, name, t->id, fd, &rolled);
  dfs_sys_close_quiet(fd);
  if (rc < 0 && ids_add(c, t->id) < 0)
    return DFS_ENOMEM;
  if (rc < 0 && rc != DFS_EBUSY) {
    char why[DETAIL_MAX];
    snprintf(why, sizeof why, "%s", dfs_last_error());
    return report(c, pending ? DFS_FSCK_PENDING : DFS_FSCK_TEMP_DEAD, DFS_FSCK_REPAIR_FAILED,
                  DFS_TMP_DIR, name, t->id, "dead writer's metadata temp: repair failed: %s",
                  why);
  }
  if (rc == 0 ? rolled : pending)
    return report(c, DFS_FSCK_PENDING, repair_status(rc), DFS_TMP_DIR, name, t->id,
                  "a dead writer's committed metadata: %s%s",
                  rc == 0 ? "rolled forward into files/" : "not rolled forward", repair_note(rc));
  return report(c, DFS_FSCK_TEMP_DEAD, repair_status(rc), DFS_TMP_DIR, name, t->id,
                "metadata temp of a dead writer that never swapped its blob in: %s%s",
                rc == 0 ? "removed" : "left", repair_note(rc));
}

static int tmp_blob(struct fsck *c, const char *name, const struct dfs_tmp_name *t)
{
  char mtmp[DFS_TMP_NAME_MAX];
  int repair = (c->flags & DFS_FSCK_REPAIR) != 0, mfd, lfd, rc;

  /* The blob temp's writer is alive iff its metadata temp (same suffix) is
   * flock'ed (atomic.c).  A missing metadata temp means the write committed
   * (this is the old blob, waiting for its unlink) or was cleaned up: dead
   * either way, the blob temp is never needed again. */
  snprintf(mtmp, sizeof mtmp, "e.%s" DFS_META_SUFFIX ".%s", t->id, t->sfx);
  mfd = probe_tmp(c, mtmp, LOCK_SH);
  if (mfd == -2) {
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    return report(c, DFS_FSCK_TEMP_LIVE, DFS_FSCK_INFO, DFS_TMP_DIR, name, t->id,
                  "blob temp of a write in progress");
  }
  if (!repair) {
    dfs_sys_close_quiet(mfd);
    if (ids_add(c, t->id) < 0)
      return DFS_ENOMEM;
    return report(c, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND, DFS_TMP_DIR, name, t->id,
                  "blob temp of a dead writer (a new blob never swapped in, or the old blob "
                  "after a swap); --repair removes it");
  }
  rc = entity_lock(c, t->id, LOCK_EX, 1, &lfd);
  if (rc == 0) {
    if (dfs_sys_unlinkat(c->st->tmp_fd, name, 0) < 0 && errno != ENOENT)
      rc = dfs__errno(DFS_EWRITE, errno, "fsck: remove %s/" DFS_TMP_DIR "/%s", c->st->base,
                      name);
    entity_unlock(c, t->id, lfd, 1);
  }
  dfs_sys_close_quiet(mfd);
  if (rc < 0 && ids_add(c, t->id) < 0)
    return DFS_ENOMEM;
  if (rc < 0 && rc != DFS_EBUSY) {
    char why[DETAIL_MAX];
    snprintf(why, sizeof why, "%s", dfs_last_error());
    return report(c, DFS_FSCK_TEMP_DEAD, DFS_FSCK_REPAIR_FAILED, DFS_TMP_DIR, name, t->id,
                  "blob temp of a dead writer: repair failed: %s", why);
  }
  return report(c, DFS_FSCK_TEMP_DEAD, repair_status(rc), DFS_TMP_DIR, name, t->id,
                "blob temp of a dead writer: %s%s", rc == 0 ? "removed" : "left",
                repair_note(rc));
}

static int tmp_template(struct fsck *c, const char *name, const struct dfs_tmp_name *t)
{
  int repair = (c->flags & DFS_FSCK_REPAIR) != 0, rc = 0;
  int fd = probe_tmp(c, name, repair ? LOCK_EX : LOCK_SH);
  if (fd == -2)
    return report(c, DFS_FSCK_TEMP_LIVE, DFS_FSCK_INFO, DFS_TMP_DIR, name, t->id,
                  "template temp of a write in progress");
  if (fd == -1) {
    if (errno == ENOENT)
      return 0;
    return report(c, DFS_FSCK_UNREADABLE, DFS_FSCK_UNREPAIRABLE, DFS_TMP_DIR, name, t->id,
                  "cannot open the temp: %s", strerror(errno));
  }
  if (!repair) {
    dfs_sys_close_quiet(fd);
    return report(c, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND, DFS_TMP_DIR, name, t->id,
                  "template temp of a dead writer; --repair removes it");
  }
  /* We hold its flock: its writer is gone and no one else may claim it. */
  if (dfs_sys_unlinkat(c->st->tmp_fd, name, 0) < 0 && errno != ENOENT)
    rc = dfs__errno(DFS_EWRITE, errno, "fsck: remove %s/" DFS_TMP_DIR "/%s", c->st->base,
                    name);
  dfs_sys_close_quiet(fd);
  return report(c, DFS_FSCK_TEMP_DEAD, rc == 0 ? DFS_FSCK_REPAIRED : DFS_FSCK_REPAIR_FAILED,
                DFS_TMP_DIR, name, t->id, "template temp of a dead writer: %s",
                rc == 0 ? "removed" : dfs_last_error());
}

/* Iterate the names of a directory (sys.c's getdents64 iterator); fn's
 * non-zero return stops the walk and is returned. */
struct walk_ctx {
  struct fsck *c;
  int (*fn)(struct fsck *c, const char *name, unsigned char type, void *p);
  void *p;
};

static int walk_cb(const char *name, unsigned char type, void *p)
{
  struct walk_ctx *w = p;
  return w->fn(w->c, name, type, w->p);
}

static int walk_dir(struct fsck *c, int dirfd, const char *what, size_t bufsz,
                    int (*fn)(struct fsck *c, const char *name, unsigned char type, void *p),
                    void *p)
{
  struct walk_ctx w = {c, fn, p};
  int failed, rc = dfs_sys_dir_each(dirfd, bufsz, walk_cb, &w, &failed);
  if (failed)
    return errno == ENOMEM ? dfs__err(DFS_ENOMEM, "fsck: out of memory")
                           : dfs__errno(DFS_EREAD, errno, "fsck: read directory %s/%s",
                                        c->st->base, what);
  return rc;
}

static int tmp_cb(struct fsck *c, const char *name, unsigned char type, void *p)
{
  int pass = *(int *)p;
  struct dfs_tmp_name t;

  dfs__tmp_parse_name(name, &t);
  if (pass == 0)
    c->sum->temps++;
  if (type != DT_REG && type != DT_UNKNOWN) {
    if (pass == 0)
      return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_TMP_DIR, name, NULL,
                    "not a regular file; deltafs never creates one here");
    return 0;
  }
  if (pass == 0)
    return t.kind == DFS_TK_META ? tmp_meta(c, name, &t) : 0;
  switch (t.kind) {
  case DFS_TK_BLOB: return tmp_blob(c, name, &t);
  case DFS_TK_TEMPLATE: return tmp_template(c, name, &t);
  case DFS_TK_OTHER:
    return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_TMP_DIR, name, NULL,
                  "not a deltafs temp name; left alone");
  case DFS_TK_META: break;
  }
  return 0;
}

/* ---- phase 2: files/ -------------------------------------------------- */

enum verdict { V_OK, V_GONE, V_TORN, V_NO_BLOB, V_CORRUPT, V_FOREIGN, V_UNREADABLE, V_NO_META };

/* Is a blob of (size, hash), or the blob at files/ when blob_known == 0,
 * explained by a pending metadata temp (dead or alive)? */
static int explained_by_pending(struct fsck *c, const char *id, int blob_known, uint64_t size,
                                uint64_t hash)
{
  char *json = NULL;
  size_t len;
  if (!ids_has(c, id))
    return 0; /* nothing of this id in .deltafs-tmp/ */
  if (!blob_known && dfs__blob_identity(c->st, id, &size, &hash) < 0)
    return 0;
  if (dfs__find_pending_meta(c->st, id, size, hash, &json, &len) < 0)
    return 0;
  free(json);
  return 1;
}

/* The entity check of files/<id>.meta.json (see the top).  Fills why. */
static enum verdict check_entity(struct fsck *c, const char *id, char *why, size_t whysz,
                                 int *go_written)
{
  char mname[DFS_NAME_MAX], bname[DFS_NAME_MAX], *json = NULL, *blob = NULL;
  size_t mlen, blen;
  uint64_t want_size = 0, want_hash = 0, hash = 0;
  int has = 0, rc, e;
  struct stat sb;
  dfs_meta *m = NULL;

  *go_written = 0;
  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  if (dfs_sys_load_at(c->st->files_fd, mname, DFS_META_MAX, &json, &mlen, NULL) < 0) {
    e = errno;
    if (e == ENOENT)
      return V_GONE; /* deleted since the directory was read */
    if (e == ELOOP) {
      snprintf(why, whysz, "the metadata name is a symbolic link (never followed)");
      return V_FOREIGN;
    }
    if (e == EFBIG) {
      snprintf(why, whysz, "metadata larger than %u bytes", DFS_META_MAX);
      return V_CORRUPT;
    }
    snprintf(why, whysz, "cannot read the metadata: %s", strerror(e));
    return V_UNREADABLE;
  }
  rc = dfs_meta_parse(json, mlen, &m, &want_size, &want_hash, &has);
  free(json);
  free(m);
  if (rc == DFS_ENOMEM) {
    snprintf(why, whysz, "out of memory");
    return V_UNREADABLE;
  }
  if (dfs_sys_fstatat(c->st->files_fd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
    e = errno;
    if (e == ENOENT && rc < 0) {
      snprintf(why, whysz, "metadata without a blob, and it does not parse: %s",
               dfs_last_error());
      return V_CORRUPT;
    }
    if (e == ENOENT) {
      snprintf(why, whysz, "metadata without a blob (an interrupted delete; reads as not "
                           "found)");
      return V_NO_BLOB;
    }
    snprintf(why, whysz, "cannot stat the blob: %s", strerror(e));
    return V_UNREADABLE;
  }
  if (!S_ISREG(sb.st_mode)) {
    snprintf(why, whysz, "the blob name %s is not a regular file (never followed)", bname);
    return V_FOREIGN;
  }
  if (rc < 0) {
    snprintf(why, whysz, "metadata does not parse: %s", dfs_last_error());
    return explained_by_pending(c, id, 0, 0, 0) ? V_OK : V_CORRUPT;
  }
  if (!has) {
    *go_written = 1; /* no integrity keys: nothing to compare the blob with */
    return V_OK;
  }
  if ((c->flags & DFS_FSCK_QUICK) && (uint64_t)sb.st_size == want_size)
    return V_OK;
  if (dfs_sys_load_at(c->st->files_fd, bname, FSCK_BLOB_MAX, &blob, &blen, NULL) < 0) {
    e = errno;
    if (e == ENOENT)
      return V_GONE;
    snprintf(why, whysz, "cannot read the blob: %s", strerror(e));
    return V_UNREADABLE;
  }
  hash = dfs__blob_hash(blob, blen);
  free(blob);
  if (blen == want_size && hash == want_hash)
    return V_OK;
  if (explained_by_pending(c, id, 1, blen, hash))
    return V_OK; /* a write past its blob swap: phase 1's business */
  snprintf(why, whysz,
           "torn pair: the blob (%zu bytes, xxh3 %016llx) does not match its metadata (%llu "
           "bytes, xxh3 %016llx) and no pending metadata explains it; both files are kept",
           blen, (unsigned long long)hash, (unsigned long long)want_size,
           (unsigned long long)want_hash);
  return V_TORN;
}

/* files/<id>.json.enc: only the "no metadata" case (the pair is checked
 * from the metadata name). */
static enum verdict check_blob(struct fsck *c, const char *id, char *why, size_t whysz)
{
  char mname[DFS_NAME_MAX], bname[DFS_NAME_MAX];
  struct stat sb;
  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
  if (dfs_sys_fstatat(c->st->files_fd, mname, &sb, AT_SYMLINK_NOFOLLOW) == 0)
    return V_OK;
  if (errno != ENOENT) {
    snprintf(why, whysz, "cannot stat the metadata: %s", strerror(errno));
    return V_UNREADABLE;
  }
  if (dfs_sys_fstatat(c->st->files_fd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0)
    return V_GONE;
  if (explained_by_pending(c, id, 0, 0, 0))
    return V_OK; /* a new entity past its blob rename: phase 1's business */
  snprintf(why, whysz, "blob without metadata and nothing pending (reads as not found); kept: "
                       "it may be the only copy of the data");
  return V_NO_META;
}

static dfs_fsck_kind verdict_kind(enum verdict v)
{
  switch (v) {
  case V_TORN: return DFS_FSCK_TORN;
  case V_NO_BLOB: return DFS_FSCK_META_NO_BLOB;
  case V_CORRUPT: return DFS_FSCK_CORRUPT_META;
  case V_FOREIGN: return DFS_FSCK_FOREIGN;
  case V_NO_META: return DFS_FSCK_BLOB_NO_META;
  default: return DFS_FSCK_UNREADABLE;
  }
}

/* A suspect entity (verdict v from the unlocked scan): re-check under its
 * lock, report, and repair what is repairable. */
static int suspect(struct fsck *c, const char *name, const char *id, int is_meta, enum verdict v,
                   char *why)
{
  int repair = (c->flags & DFS_FSCK_REPAIR) && v == V_NO_BLOB;
  int lfd = -1, rc, go;
  char mname[DFS_NAME_MAX], err[DETAIL_MAX];

  /* Exclusive only when we will change something (then a missing lock
   * file is created); otherwise shared, and only if the lock file exists. */
  rc = entity_lock(c, id, repair ? LOCK_EX : LOCK_SH, repair, &lfd);
  if (rc == DFS_EBUSY)
    return report(c, verdict_kind(v), DFS_FSCK_SKIPPED, DFS_FILES_DIR, name, id,
                  "%s (skipped: in use, could not be re-checked under its lock)", why);
  if (rc < 0) {
    snprintf(err, sizeof err, "%s", dfs_last_error());
    return report(c, DFS_FSCK_UNREADABLE, DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, id,
                  "cannot take the entity lock to check it: %s", err);
  }
  v = is_meta ? check_entity(c, id, why, DETAIL_MAX, &go) : check_blob(c, id, why, DETAIL_MAX);
  if (v == V_OK || v == V_GONE) {
    entity_unlock(c, id, lfd, repair);
    return 0; /* a writer was mid-commit when we first looked */
  }
  if (v != V_NO_BLOB) {
    entity_unlock(c, id, lfd, repair);
    return report(c, verdict_kind(v), DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, id, "%s",
                  why);
  }
  if (!(c->flags & DFS_FSCK_REPAIR)) {
    entity_unlock(c, id, lfd, 0);
    return report(c, DFS_FSCK_META_NO_BLOB, DFS_FSCK_FOUND, DFS_FILES_DIR, name, id,
                  "%s; --repair removes the metadata", why);
  }
  if (!repair) { /* it changed into a repairable state under the lock */
    entity_unlock(c, id, lfd, 0);
    return report(c, DFS_FSCK_META_NO_BLOB, DFS_FSCK_SKIPPED, DFS_FILES_DIR, name, id,
                  "%s (changed while checked; run fsck again)", why);
  }
  /* META_NO_BLOB under the exclusive lock: finish the interrupted delete.
   * The blob is gone, so no pending metadata can need this entity. */
  dfs__entity_name(mname, id, DFS_META_SUFFIX);
  if (dfs_sys_unlinkat(c->st->files_fd, mname, 0) < 0 && errno != ENOENT)
    rc = dfs__errno(DFS_EWRITE, errno, "fsck: remove %s/%s", c->st->files_path, mname);
  else
    rc = dfs__dir_sync(c->st, c->st->files_fd, DFS_FILES_DIR, "fsck", id);
  entity_unlock(c, id, lfd, 1);
  if (rc < 0) {
    snprintf(err, sizeof err, "%s", dfs_last_error());
    return report(c, DFS_FSCK_META_NO_BLOB, DFS_FSCK_REPAIR_FAILED, DFS_FILES_DIR, name, id,
                  "%s; repair failed: %s", why, err);
  }
  return report(c, DFS_FSCK_META_NO_BLOB, DFS_FSCK_REPAIRED, DFS_FILES_DIR, name, id,
                "%s; metadata removed (the delete is finished)", why);
}

static int check_lock(struct fsck *c, const char *name, const char *id)
{
  int repair = (c->flags & DFS_FSCK_REPAIR) != 0, fd = -1, rc, present;

  if (c->st->flags & DFS_OPT_GO_COMPAT)
    return 0; /* Go workers never remove lock files; neither do we */
  present = entity_present(c->st, id);
  if (present != 0 || ids_has(c, id))
    return 0; /* an entity, a write in flight, or unknown: not stale */
  /* Nobody may hold it: probe (shared when only reporting, to disturb
   * nobody but exclusive holders, who make it "in use" anyway). */
  rc = dfs__lockfile_acquire(c->st, id, (repair ? LOCK_EX : LOCK_SH) | LOCK_NB, 0, &fd);
  if (rc == DFS_EBUSY || rc == DFS_ENOTFOUND)
    return 0; /* in use (an entity being created), or gone */
  if (rc < 0) {
    char err[DETAIL_MAX];
    snprintf(err, sizeof err, "%s", dfs_last_error());
    return report(c, DFS_FSCK_UNREADABLE, DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, id,
                  "cannot probe the lock file: %s", err);
  }
  if (entity_present(c->st, id) != 0) { /* created meanwhile */
    dfs_sys_close_quiet(fd);
    return 0;
  }
  if (!repair) {
    dfs_sys_close_quiet(fd);
    return report(c, DFS_FSCK_STALE_LOCK, DFS_FSCK_FOUND, DFS_FILES_DIR, name, id,
                  "lock file of an entity that does not exist, held by nobody; --repair "
                  "removes it");
  }
  rc = dfs__lockfile_unlink_held(c->st, id, fd);
  dfs_sys_close_quiet(fd);
  if (rc < 0) {
    char err[DETAIL_MAX];
    snprintf(err, sizeof err, "%s", dfs_last_error());
    return report(c, DFS_FSCK_STALE_LOCK, DFS_FSCK_REPAIR_FAILED, DFS_FILES_DIR, name, id,
                  "stale lock file: repair failed: %s", err);
  }
  return report(c, DFS_FSCK_STALE_LOCK, DFS_FSCK_REPAIRED, DFS_FILES_DIR, name, id,
                "lock file of an entity that does not exist: removed");
}

/* If name is "<valid id><suffix>", copy the id into id and return 1. */
static int split_name(const char *name, size_t nlen, const char *suffix, char *id)
{
  size_t sl = strlen(suffix);
  if (nlen <= sl || memcmp(name + nlen - sl, suffix, sl) != 0 ||
      !dfs__id_check(name, nlen - sl))
    return 0;
  memcpy(id, name, nlen - sl);
  id[nlen - sl] = '\0';
  return 1;
}

static int files_cb(struct fsck *c, const char *name, unsigned char type, void *p)
{
  uint64_t *seen = p;
  size_t nlen = strlen(name);
  char id[DFS_ID_MAX + 1], why[DETAIL_MAX];
  int go = 0, is_lock, is_meta, is_blob;
  enum verdict v;

  if (++*seen % PROGRESS_EVERY == 0 && c->o->progress)
    c->o->progress(c->sum->entities, c->o->payload);
  is_lock = split_name(name, nlen, DFS_LOCK_SUFFIX, id);
  is_meta = !is_lock && split_name(name, nlen, DFS_META_SUFFIX, id);
  is_blob = !is_lock && !is_meta && split_name(name, nlen, DFS_BLOB_SUFFIX, id);
  if (!is_lock && !is_meta && !is_blob)
    return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, NULL,
                  name[0] == '.' ? "a dot file: deltafs keeps its temps in " DFS_TMP_DIR
                                   "/, never here; left alone"
                                 : "not a deltafs name (<id>.json.enc, <id>.meta.json or "
                                   "<id>.json.enc.lock with a valid id); left alone");
  if (type != DT_REG && type != DT_UNKNOWN)
    return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, id,
                  "%s at an entity name (never followed); left alone",
                  type == DT_DIR ? "a directory" : type == DT_LNK ? "a symbolic link"
                                                                  : "not a regular file");
  if (is_lock)
    return check_lock(c, name, id);
  if (is_blob) {
    v = check_blob(c, id, why, sizeof why);
    return v == V_OK || v == V_GONE ? 0 : suspect(c, name, id, 0, v, why);
  }
  c->sum->entities++;
  v = check_entity(c, id, why, sizeof why, &go);
  if (v == V_OK || v == V_GONE) {
    c->sum->go_written += (uint64_t)go;
    return 0;
  }
  if (v == V_FOREIGN || v == V_UNREADABLE)
    return report(c, verdict_kind(v), DFS_FSCK_UNREPAIRABLE, DFS_FILES_DIR, name, id, "%s", why);
  return suspect(c, name, id, 1, v, why);
}

/* ---- phase 3: templates/ ---------------------------------------------- */

static int templates_cb(struct fsck *c, const char *name, unsigned char type, void *p)
{
  char id[DFS_ID_MAX + 1];
  (void)p;
  if (!split_name(name, strlen(name), DFS_TEMPLATE_SUFFIX, id))
    return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_TEMPLATES_DIR, name, NULL,
                  "not a template name (<schema-id>.json); left alone");
  if (type != DT_REG && type != DT_UNKNOWN)
    return report(c, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE, DFS_TEMPLATES_DIR, name, id,
                  "not a regular file at a template name; left alone");
  c->sum->templates++;
  return 0;
}

/* ---- open / main ------------------------------------------------------ */

/* Open an existing store without recovering or creating anything.
 * .deltafs-tmp/ and templates/ may be missing (a Go-written store): their
 * descriptors are then -1. */
static int fsck_open(const char *base_path, unsigned flags, dfs_storage **out)
{
  return dfs__storage_open(out, base_path,
                           ((flags & DFS_FSCK_GO_COMPAT) ? DFS_OPT_GO_COMPAT : 0) |
                               ((flags & DFS_FSCK_NO_SYNC) ? DFS_OPT_NO_SYNC : 0),
                           0640, DFS__OPEN_EXISTING | DFS__OPEN_NO_RECOVER, "fsck");
}

int dfs_fsck(const char *base_path, const dfs_fsck_options *opts, dfs_fsck_summary *summary)
{
  dfs_fsck_options defaults = DFS_FSCK_OPTIONS_INIT;
  dfs_fsck_summary local;
  struct fsck c;
  uint64_t seen = 0;
  int rc;

  if (!summary)
    summary = &local;
  memset(summary, 0, sizeof *summary);
  DFS_CHECK_ARG(base_path && base_path[0], "NULL or empty base path");
  if (!opts)
    opts = &defaults;
  if (opts->version != DFS_FSCK_OPTIONS_VERSION)
    return dfs__err(DFS_EINVAL, "fsck %s: options version %u, expected %u", base_path,
                    opts->version, DFS_FSCK_OPTIONS_VERSION);
  if (opts->flags & ~(DFS_FSCK_REPAIR | DFS_FSCK_QUICK | DFS_FSCK_GO_COMPAT | DFS_FSCK_NO_SYNC))
    return dfs__err(DFS_EINVAL, "fsck %s: unknown flags 0x%x", base_path, opts->flags);
  memset(&c, 0, sizeof c);
  c.flags = opts->flags;
  c.o = opts;
  c.sum = summary;
  if ((rc = fsck_open(base_path, opts->flags, &c.st)) < 0)
    return rc;

  rc = 0;
  if (c.st->tmp_fd >= 0) {
    for (int pass = 0; pass < 2 && rc == 0; pass++)
      rc = walk_dir(&c, c.st->tmp_fd, DFS_TMP_DIR, 32 * 1024, tmp_cb, &pass);
  }
  if (rc == 0)
    rc = walk_dir(&c, c.st->files_fd, DFS_FILES_DIR, 256 * 1024, files_cb, &seen);
  if (rc == 0 && c.st->templates_fd >= 0)
    rc = walk_dir(&c, c.st->templates_fd, DFS_TEMPLATES_DIR, 64 * 1024, templates_cb, NULL);
  if (rc == 0 && opts->progress)
    opts->progress(summary->entities, opts->payload);

  for (size_t i = 0; i < c.nids; i++)
    free(c.ids[i]);
  free(c.ids);
  dfs_storage_close(c.st);
  return c.stop ? c.stop : rc;
}
