/*
 * test_fsck.c — dfs_fsck (include/deltafs/fsck.h).
 *
 * Each test builds one kind of damage by hand in a fresh store (the files a
 * crash or a foreign program would leave), then asserts that fsck reports
 * exactly that and nothing else, that a report-only run changes nothing,
 * that --repair fixes what is safe (and only that), and that afterwards the
 * store reads correctly and fsck is clean.  Torn pairs, orphan blobs and
 * corrupt metadata must be reported and never deleted; live temps (flock
 * held through another descriptor) must be reported as live and left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "deltafs/fsck.h"
#include "meta_int.h" /* dfs__meta_to_json, dfs__blob_hash: build pending metadata */

#define MAXF 32

struct found {
  int n;
  struct {
    dfs_fsck_kind kind;
    dfs_fsck_status status;
    char name[300];
    char dir[32];
  } f[MAXF];
};

static int collect(const dfs_fsck_finding *f, void *payload)
{
  struct found *r = payload;
  assert_non_null(f->detail);
  assert_true(f->detail[0] != '\0');
  if (r->n < MAXF) {
    r->f[r->n].kind = f->kind;
    r->f[r->n].status = f->status;
    snprintf(r->f[r->n].name, sizeof r->f[r->n].name, "%s", f->name);
    snprintf(r->f[r->n].dir, sizeof r->f[r->n].dir, "%s", f->dir);
  }
  r->n++;
  return 0;
}

static int run_fsck(const char *base, unsigned flags, struct found *r, dfs_fsck_summary *s)
{
  dfs_fsck_options o = DFS_FSCK_OPTIONS_INIT;
  memset(r, 0, sizeof *r);
  o.flags = flags | DFS_FSCK_NO_SYNC;
  o.fn = collect;
  o.payload = r;
  return dfs_fsck(base, &o, s);
}

/* Number of findings of kind (with status, or any status when st < 0). */
static int count(const struct found *r, dfs_fsck_kind kind, int st)
{
  int n = 0;
  for (int i = 0; i < r->n && i < MAXF; i++)
    if (r->f[i].kind == kind && (st < 0 || (int)r->f[i].status == st))
      n++;
  return n;
}

static void assert_clean(const char *base)
{
  struct found r;
  dfs_fsck_summary s;
  assert_ok(run_fsck(base, 0, &r, &s));
  for (int i = 0; i < r.n && i < MAXF; i++)
    print_error("unexpected finding: %s %s %s/%s\n", dfs_fsck_kind_name(r.f[i].kind),
                dfs_fsck_status_name(r.f[i].status), r.f[i].dir, r.f[i].name);
  assert_int_equal(r.n, 0);
  assert_int_equal(s.problems, 0);
  assert_int_equal(s.remaining, 0);
}

static dfs_storage *open_store(const char *base)
{
  dfs_options o = DFS_OPTIONS_INIT;
  dfs_storage *st;
  o.flags = DFS_OPT_NO_SYNC;
  assert_ok(dfs_storage_open(&st, base, &o));
  return st;
}

static void put(dfs_storage *st, const char *id, const char *blob, int64_t v)
{
  dfs_meta m = tu_meta(v);
  assert_ok(dfs_write(st, id, blob, strlen(blob), &m));
}

static char *path(const char *base, const char *rel)
{
  char *p;
  if (asprintf(&p, "%s/%s", base, rel) < 0)
    abort();
  return p;
}

static int exists(const char *base, const char *rel)
{
  char *p = path(base, rel);
  struct stat sb;
  int r = lstat(p, &sb) == 0;
  free(p);
  return r;
}

static void unlink_rel(const char *base, const char *rel)
{
  char *p = path(base, rel);
  assert_int_equal(unlink(p), 0);
  free(p);
}

static void write_rel(const char *base, const char *rel, const void *data, size_t len)
{
  char *p = path(base, rel);
  tu_write_file(p, data, len);
  free(p);
}

static char *read_rel(const char *base, const char *rel, size_t *len)
{
  char *p = path(base, rel), *d = tu_read_file(p, len);
  free(p);
  return d;
}

/* The metadata JSON deltafs would write for (blob, version). */
static char *meta_json(const char *blob, int64_t v, size_t *len)
{
  dfs_meta m = tu_meta(v);
  char *json;
  assert_ok(dfs__meta_to_json(&m, strlen(blob), dfs__blob_hash(blob, strlen(blob)), &json, len));
  return json;
}

static void assert_reads(const char *base, const char *id, const char *blob, int64_t v)
{
  dfs_storage *st = open_store(base);
  dfs_file *f;
  assert_ok(dfs_read(st, id, &f));
  assert_int_equal(f->blob_len, strlen(blob));
  assert_memory_equal(f->blob, blob, strlen(blob));
  assert_int_equal(f->meta.version, v);
  dfs_file_free(f);
  dfs_storage_close(st);
}

/* ---- tests ------------------------------------------------------------- */

static void fsck__clean_store_is_clean(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "a", "alpha", 1);
  put(st, "b", "", 1);
  put(st, "c", "gamma", 1);
  put(st, "c", "gamma2", 2);
  assert_ok(dfs_template_write(st, "schema1", "{}", 2));
  dfs_storage_close(st);
  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 0);
  assert_int_equal(s.entities, 3);
  assert_int_equal(s.templates, 1);
  assert_int_equal(s.problems, 0);
  /* QUICK gives the same verdict on a clean store. */
  assert_ok(run_fsck(base, DFS_FSCK_QUICK, &r, &s));
  assert_int_equal(r.n, 0);
  tu_rmrf(base);
  free(base);
}

static void fsck__not_a_store_is_not_found(void **state)
{
  char *base = tu_mkdtemp("fsck");
  char *missing = path(base, "nope");
  struct found r;
  (void)state;
  assert_dfs(run_fsck(base, 0, &r, NULL), DFS_ENOTFOUND); /* empty dir: no files/ */
  assert_dfs(run_fsck(missing, 0, &r, NULL), DFS_ENOTFOUND);
  assert_false(exists(base, "files")); /* fsck never creates a store */
  tu_rmrf(base);
  free(base);
  free(missing);
}

static void fsck__dead_temps_reported_then_removed(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  size_t jl;
  char *json = meta_json("never-swapped", 2, &jl);
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "x", "current", 1);
  dfs_storage_close(st);
  /* A write of x that died before its blob swap, and a new id's. */
  write_rel(base, ".deltafs-tmp/e.x.meta.json.00000000000000aa", json, jl);
  write_rel(base, ".deltafs-tmp/e.x.json.enc.00000000000000aa", "never-swapped", 13);
  write_rel(base, ".deltafs-tmp/e.newid.json.enc.00000000000000bb", "half", 4);
  write_rel(base, ".deltafs-tmp/t.sch.json.00000000000000cc", "{", 1);

  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 4);
  assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND), 4);
  assert_int_equal(s.remaining, 4);
  assert_int_equal(s.temps, 4);
  /* Report-only: nothing moved. */
  {
    char *tmp = path(base, ".deltafs-tmp");
    assert_int_equal(tu_count_entries(tmp, ""), 4);
    assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
    assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_REPAIRED), 4);
    assert_int_equal(s.repaired, 4);
    assert_int_equal(s.remaining, 0);
    assert_int_equal(tu_count_entries(tmp, ""), 0);
    free(tmp);
  }
  /* Repairs took entity locks; none may be left behind for ids that do not
   * exist, and x keeps its data. */
  assert_false(exists(base, "files/newid.json.enc.lock"));
  assert_clean(base);
  assert_reads(base, "x", "current", 1);
  free(json);
  tu_rmrf(base);
  free(base);
}

/* A write that died between its blob swap and its metadata rename: the new
 * blob is in place, the old blob and the new metadata are in the temp dir. */
static void plant_pending(const char *base, const char *id, const char *oldblob,
                          const char *newblob, int64_t newv)
{
  char rel[512];
  size_t jl;
  char *json = meta_json(newblob, newv, &jl);
  snprintf(rel, sizeof rel, "files/%s.json.enc", id);
  write_rel(base, rel, newblob, strlen(newblob));
  snprintf(rel, sizeof rel, ".deltafs-tmp/e.%s.json.enc.0123456789abcdef", id);
  if (oldblob)
    write_rel(base, rel, oldblob, strlen(oldblob));
  snprintf(rel, sizeof rel, ".deltafs-tmp/e.%s.meta.json.0123456789abcdef", id);
  write_rel(base, rel, json, jl);
  free(json);
}

static void fsck__pending_write_rolls_forward(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "p", "old blob", 1);
  dfs_storage_close(st);
  plant_pending(base, "p", "old blob", "the new blob", 2);   /* overwrite */
  plant_pending(base, "q", NULL, "a brand new entity", 1);    /* new id */

  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_PENDING, DFS_FSCK_FOUND), 2);
  assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND), 1); /* p's old blob */
  /* The mismatch in files/ is explained, not a torn pair or an orphan. */
  assert_int_equal(count(&r, DFS_FSCK_TORN, -1), 0);
  assert_int_equal(count(&r, DFS_FSCK_BLOB_NO_META, -1), 0);
  assert_int_equal(r.n, 3);

  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_PENDING, DFS_FSCK_REPAIRED), 2);
  assert_int_equal(s.remaining, 0);
  assert_clean(base);
  assert_reads(base, "p", "the new blob", 2);
  assert_reads(base, "q", "a brand new entity", 1);
  tu_rmrf(base);
  free(base);
}

/* A dead pending metadata that matches the final blob must NOT be rolled
 * forward over a consistent newer pair with the same blob bytes (a later
 * write stored the identical blob as version 3): that would silently undo
 * an acknowledged write.  Checked for fsck --repair and for the recovery
 * every dfs_storage_open runs. */
static void fsck__superseded_pending_never_reverts_newer_write(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  size_t jl;
  char *json = meta_json("same bytes", 2, &jl);
  (void)state;
  put(st, "s", "same bytes", 3);
  dfs_storage_close(st);
  write_rel(base, ".deltafs-tmp/e.s.meta.json.00000000000000dd", json, jl);

  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 1);
  assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_FOUND), 1);
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_REPAIRED), 1);
  assert_reads(base, "s", "same bytes", 3);

  /* The same leftover, recovered by dfs_storage_open instead. */
  write_rel(base, ".deltafs-tmp/e.s.meta.json.00000000000000ee", json, jl);
  assert_reads(base, "s", "same bytes", 3);
  assert_clean(base);
  free(json);
  tu_rmrf(base);
  free(base);
}

static void fsck__torn_pair_reported_never_deleted(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  dfs_file *f;
  size_t bl, ml, ml2;
  char *meta, *blob, *meta2;
  (void)state;
  put(st, "t", "original", 1);
  put(st, "u", "untouched", 1);
  dfs_storage_close(st);
  write_rel(base, "files/t.json.enc", "ORIGINAL", 8); /* same size, other bytes */
  meta = read_rel(base, "files/t.meta.json", &ml);

  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 1);
  assert_int_equal(count(&r, DFS_FSCK_TORN, DFS_FSCK_UNREPAIRABLE), 1);
  assert_string_equal(r.f[0].name, "t.meta.json");
  assert_int_equal(s.remaining, 1);
  /* QUICK compares sizes only: same size, so it passes. */
  assert_ok(run_fsck(base, DFS_FSCK_QUICK, &r, &s));
  assert_int_equal(r.n, 0);
  /* A different size is caught by QUICK too. */
  write_rel(base, "files/t.json.enc", "ORIGINAL!", 9);
  assert_ok(run_fsck(base, DFS_FSCK_QUICK, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_TORN, DFS_FSCK_UNREPAIRABLE), 1);

  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_TORN, DFS_FSCK_UNREPAIRABLE), 1);
  assert_int_equal(s.repaired, 0);
  assert_int_equal(s.remaining, 1);
  /* Both files kept, byte for byte. */
  blob = read_rel(base, "files/t.json.enc", &bl);
  meta2 = read_rel(base, "files/t.meta.json", &ml2);
  assert_non_null(blob);
  assert_int_equal(bl, 9);
  assert_memory_equal(blob, "ORIGINAL!", 9);
  assert_non_null(meta2);
  assert_int_equal(ml, ml2);
  assert_memory_equal(meta, meta2, ml);
  st = open_store(base);
  assert_dfs(dfs_read(st, "t", &f), DFS_ECORRUPT);
  dfs_storage_close(st);
  assert_reads(base, "u", "untouched", 1);
  free(meta);
  free(meta2);
  free(blob);
  tu_rmrf(base);
  free(base);
}

static void fsck__meta_without_blob_removed(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "d", "doomed", 1);
  put(st, "k", "kept", 1);
  dfs_storage_close(st);
  /* A delete interrupted between its two unlinks. */
  unlink_rel(base, "files/d.json.enc");

  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 1);
  assert_int_equal(count(&r, DFS_FSCK_META_NO_BLOB, DFS_FSCK_FOUND), 1);
  assert_true(exists(base, "files/d.meta.json"));
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_META_NO_BLOB, DFS_FSCK_REPAIRED), 1);
  assert_false(exists(base, "files/d.meta.json"));
  assert_false(exists(base, "files/d.json.enc.lock")); /* repair's own lock removed */
  assert_clean(base);
  assert_reads(base, "k", "kept", 1);
  tu_rmrf(base);
  free(base);
}

static void fsck__repair_skips_entity_in_use(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  dfs_lockmgr *m;
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "busy", "b", 1);
  unlink_rel(base, "files/busy.json.enc");
  assert_ok(dfs_lockmgr_new(&m, st));
  assert_ok(dfs_lockmgr_acquire(m, "busy", DFS_LOCK_EXCLUSIVE));
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_META_NO_BLOB, DFS_FSCK_SKIPPED), 1);
  assert_int_equal(s.skipped, 1);
  assert_int_equal(s.remaining, 1);
  assert_true(exists(base, "files/busy.meta.json"));
  assert_ok(dfs_lockmgr_release(m, "busy"));
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_META_NO_BLOB, DFS_FSCK_REPAIRED), 1);
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  assert_clean(base);
  tu_rmrf(base);
  free(base);
}

static void fsck__blob_without_meta_kept(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  size_t bl;
  char *blob;
  (void)state;
  put(st, "o", "orphan data", 1);
  dfs_storage_close(st);
  unlink_rel(base, "files/o.meta.json");
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(r.n, 1);
  assert_int_equal(count(&r, DFS_FSCK_BLOB_NO_META, DFS_FSCK_UNREPAIRABLE), 1);
  assert_int_equal(s.remaining, 1);
  blob = read_rel(base, "files/o.json.enc", &bl);
  assert_non_null(blob);
  assert_memory_equal(blob, "orphan data", 11);
  free(blob);
  tu_rmrf(base);
  free(base);
}

static void fsck__stale_lock_removed_unless_go_compat(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  (void)state;
  put(st, "live", "x", 1);
  dfs_storage_close(st);
  write_rel(base, "files/gone.json.enc.lock", "", 0);
  write_rel(base, "files/live.json.enc.lock", "", 0); /* an entity's: fine */

  assert_ok(run_fsck(base, DFS_FSCK_GO_COMPAT, &r, &s));
  assert_int_equal(r.n, 0);
  assert_ok(run_fsck(base, 0, &r, &s));
  assert_int_equal(r.n, 1);
  assert_int_equal(count(&r, DFS_FSCK_STALE_LOCK, DFS_FSCK_FOUND), 1);
  assert_string_equal(r.f[0].name, "gone.json.enc.lock");
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR | DFS_FSCK_GO_COMPAT, &r, &s));
  assert_true(exists(base, "files/gone.json.enc.lock"));
  {
    /* Held by someone (another descriptor): in use, so not stale. */
    char *p = path(base, "files/gone.json.enc.lock");
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
    assert_int_equal(r.n, 0);
    assert_true(exists(base, "files/gone.json.enc.lock"));
    close(fd);
    free(p);
  }
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_STALE_LOCK, DFS_FSCK_REPAIRED), 1);
  assert_false(exists(base, "files/gone.json.enc.lock"));
  assert_true(exists(base, "files/live.json.enc.lock"));
  assert_clean(base);
  tu_rmrf(base);
  free(base);
}

static void fsck__foreign_and_corrupt_reported_left_alone(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  char *p;
  (void)state;
  put(st, "c", "blob", 1);
  put(st, "ok", "fine", 1);
  dfs_storage_close(st);
  write_rel(base, "files/c.meta.json", "{not json", 9);
  write_rel(base, "files/notes.txt", "hi", 2);
  write_rel(base, "files/.c.json.enc.tmp", "old", 3);
  write_rel(base, "templates/README", "x", 1);
  write_rel(base, ".deltafs-tmp/something", "x", 1);
  p = path(base, "files/dir.meta.json");
  assert_int_equal(mkdir(p, 0755), 0);
  free(p);

  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_CORRUPT_META, DFS_FSCK_UNREPAIRABLE), 1);
  assert_int_equal(count(&r, DFS_FSCK_FOREIGN, DFS_FSCK_UNREPAIRABLE), 5);
  assert_int_equal(r.n, 6);
  assert_int_equal(s.remaining, 6);
  assert_int_equal(s.repaired, 0);
  assert_true(exists(base, "files/c.meta.json"));
  assert_true(exists(base, "files/c.json.enc"));
  assert_true(exists(base, "files/notes.txt"));
  assert_true(exists(base, "files/.c.json.enc.tmp"));
  assert_true(exists(base, "templates/README"));
  assert_true(exists(base, ".deltafs-tmp/something"));
  assert_reads(base, "ok", "fine", 1);
  tu_rmrf(base);
  free(base);
}

static void fsck__live_temps_left_alone(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  struct found r;
  dfs_fsck_summary s;
  size_t jl;
  char *json = meta_json("in flight", 2, &jl), *p;
  int fd, tfd;
  (void)state;
  put(st, "w", "before", 1);
  dfs_storage_close(st);
  /* A writer in the middle of step 2: its metadata temp is flock'ed
   * (through its own descriptor, as another process's would be). */
  write_rel(base, ".deltafs-tmp/e.w.meta.json.00000000000000f0", json, jl);
  write_rel(base, ".deltafs-tmp/e.w.json.enc.00000000000000f0", "in flight", 9);
  write_rel(base, ".deltafs-tmp/t.sch.json.00000000000000f1", "{}", 2);
  p = path(base, ".deltafs-tmp/e.w.meta.json.00000000000000f0");
  fd = open(p, O_RDONLY);
  free(p);
  p = path(base, ".deltafs-tmp/t.sch.json.00000000000000f1");
  tfd = open(p, O_RDONLY);
  free(p);
  assert_true(fd >= 0 && tfd >= 0);
  assert_int_equal(flock(fd, LOCK_EX), 0);
  assert_int_equal(flock(tfd, LOCK_EX), 0);

  for (int i = 0; i < 2; i++) {
    assert_ok(run_fsck(base, i ? DFS_FSCK_REPAIR : 0, &r, &s));
    assert_int_equal(r.n, 3);
    assert_int_equal(count(&r, DFS_FSCK_TEMP_LIVE, DFS_FSCK_INFO), 3);
    assert_int_equal(s.live, 3);
    assert_int_equal(s.problems, 0);
    assert_int_equal(s.remaining, 0);
    assert_true(exists(base, ".deltafs-tmp/e.w.meta.json.00000000000000f0"));
    assert_true(exists(base, ".deltafs-tmp/e.w.json.enc.00000000000000f0"));
    assert_true(exists(base, ".deltafs-tmp/t.sch.json.00000000000000f1"));
  }
  assert_reads(base, "w", "before", 1); /* dfs_storage_open skips them too */
  assert_true(exists(base, ".deltafs-tmp/e.w.meta.json.00000000000000f0"));
  /* The writer dies: now they are leftovers. */
  close(fd);
  close(tfd);
  assert_ok(run_fsck(base, DFS_FSCK_REPAIR, &r, &s));
  assert_int_equal(count(&r, DFS_FSCK_TEMP_DEAD, DFS_FSCK_REPAIRED), 3);
  assert_clean(base);
  assert_reads(base, "w", "before", 1);
  free(json);
  tu_rmrf(base);
  free(base);
}

static int stop_at_first(const dfs_fsck_finding *f, void *payload)
{
  (void)f;
  ++*(int *)payload;
  return 42;
}

static void fsck__callback_stops_scan(void **state)
{
  char *base = tu_mkdtemp("fsck");
  dfs_storage *st = open_store(base);
  dfs_fsck_options o = DFS_FSCK_OPTIONS_INIT;
  int calls = 0;
  (void)state;
  dfs_storage_close(st);
  write_rel(base, "files/a.txt", "", 0);
  write_rel(base, "files/b.txt", "", 0);
  o.fn = stop_at_first;
  o.payload = &calls;
  assert_int_equal(dfs_fsck(base, &o, NULL), 42);
  assert_int_equal(calls, 1);
  o.version = 99;
  assert_dfs(dfs_fsck(base, &o, NULL), DFS_EINVAL);
  assert_dfs(dfs_fsck(NULL, NULL, NULL), DFS_EINVAL);
  assert_string_equal(dfs_fsck_kind_name(DFS_FSCK_TORN), "torn");
  assert_string_equal(dfs_fsck_status_name(DFS_FSCK_REPAIRED), "repaired");
  assert_string_equal(dfs_fsck_kind_name((dfs_fsck_kind)999), "unknown");
  tu_rmrf(base);
  free(base);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fsck__clean_store_is_clean),
      cmocka_unit_test(fsck__not_a_store_is_not_found),
      cmocka_unit_test(fsck__dead_temps_reported_then_removed),
      cmocka_unit_test(fsck__pending_write_rolls_forward),
      cmocka_unit_test(fsck__superseded_pending_never_reverts_newer_write),
      cmocka_unit_test(fsck__torn_pair_reported_never_deleted),
      cmocka_unit_test(fsck__meta_without_blob_removed),
      cmocka_unit_test(fsck__repair_skips_entity_in_use),
      cmocka_unit_test(fsck__blob_without_meta_kept),
      cmocka_unit_test(fsck__stale_lock_removed_unless_go_compat),
      cmocka_unit_test(fsck__foreign_and_corrupt_reported_left_alone),
      cmocka_unit_test(fsck__live_temps_left_alone),
      cmocka_unit_test(fsck__callback_stops_scan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
