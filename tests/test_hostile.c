/*
 * test_hostile.c — a store and callers that try to break deltafs.
 *
 * 1. Hostile ids: every call that takes an id must return DFS_EINVALID_ID
 *    for each of the ids in hostile_ids[] and touch nothing: a snapshot of
 *    every name in the store (and in the directory around it, where "../x"
 *    would land) is identical before and after.  The valid edge cases next
 *    to them (exactly 200 bytes, spaces, UTF-8 and non-UTF-8 bytes, names
 *    that end in our own suffixes) must work and must not confuse listing.
 *    An id with an embedded NUL cannot be expressed through this C API (it
 *    is a shorter C string) nor through the CLI (argv cannot hold NUL), so
 *    the only thing to test is that exactly the prefix is used.
 * 2. Symlinks planted at a blob, a metadata file, a lock file, a template,
 *    a temp in .deltafs-tmp, and at files/, templates/ and .deltafs-tmp/
 *    themselves, pointing outside the store: never followed — the target
 *    is never read (its content never comes back) nor modified (content,
 *    size and mtime unchanged, no file created at a dangling target), and
 *    the error says why.
 * 3. Damaged metadata files (truncated, empty, over 1 MiB, not an object,
 *    wrong types, duplicate keys, integers beyond int64, invalid UTF-8, bad
 *    timestamps...): DFS_ECORRUPT from read, version and write_if_version,
 *    never a crash, never data.
 *    FIFOs planted at entity, template and temp paths must not hang a
 *    reader or recovery (a naive open() blocks until a writer appears).
 * 4. Permissions: a forked child that drops to nobody (65534) meets a store
 *    it may not read or write: a clear error naming the path and
 *    "Permission denied".  Needs root (root bypasses permissions, so the
 *    check must run as someone else); skipped otherwise.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
  char *dir;        /* the test's directory: store + outside            */
  char base[4096];  /* <dir>/store                                     */
  char out[4096];   /* <dir>/outside: symlink targets live here         */
  dfs_storage *st;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);
  dfs_options o = DFS_OPTIONS_INIT;
  f->dir = tu_mkdtemp("hostile");
  CHECKED_SNPRINTF(f->base, sizeof f->base, "%s/store", f->dir);
  CHECKED_SNPRINTF(f->out, sizeof f->out, "%s/outside", f->dir);
  assert_int_equal(mkdir(f->out, 0755), 0);
  o.flags = DFS_OPT_NO_SYNC;
  assert_ok(dfs_storage_open(&f->st, f->base, &o));
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  dfs_storage_close(f->st);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void put(dfs_storage *st, const char *id, const char *blob, int64_t v)
{
  dfs_meta m = tu_meta(v);
  assert_ok(dfs_write(st, id, blob, strlen(blob), &m));
}

static void path_of(char *buf, size_t size, const char *a, const char *b)
{
  CHECKED_SNPRINTF(buf, size, "%s/%s", a, b);
}

/* ---- snapshots: every name under a tree, with size and mtime ----------- */

struct snap {
  char *text;
  size_t len, cap;
};

static void snap_add(struct snap *s, const char *line)
{
  size_t n = strlen(line);
  if (s->len + n + 2 > s->cap) {
    s->cap = (s->len + n + 2) * 2;
    s->text = realloc(s->text, s->cap);
  }
  memcpy(s->text + s->len, line, n);
  s->len += n;
  s->text[s->len++] = '\n';
  s->text[s->len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted "path type size mtime" lines of everything under dir (lstat: a
 * symlink is listed, not followed). */
static void snap_tree(struct snap *s, const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0;
  if (!d)
    return;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    names = realloc(names, (n + 1) * sizeof *names);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n > 0) /* qsort(NULL, 0, ...) is undefined */
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    char p[8192], line[9000];
    struct stat sb;
    CHECKED_SNPRINTF(p, sizeof p, "%s/%s", dir, names[i]);
    if (lstat(p, &sb) == 0) {
      CHECKED_SNPRINTF(line, sizeof line, "%s %o %lld %lld.%09ld", p, (unsigned)sb.st_mode,
               (long long)sb.st_size, (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
      snap_add(s, line);
      if (S_ISDIR(sb.st_mode))
        snap_tree(s, p);
    }
    free(names[i]);
  }
  free(names);
}

/* A snapshot of the whole test directory: the store and its neighbours.
 * Directory mtimes are included for the store's directories: creating and
 * removing a file (even a temp) changes them. */
static char *snapshot(const struct fx *f)
{
  struct snap s = {0};
  snap_add(&s, "");
  snap_tree(&s, f->dir);
  return s.text;
}

/* ---- 1. hostile ids ----------------------------------------------------- */

static char long201[202], long300[301], long4096[4097];

static const char *hostile_ids[] = {
    "",                     /* empty                                    */
    ".",                    /* this directory                           */
    "..",                   /* the parent                               */
    "../x",                 /* escape files/                            */
    "../../../../etc/passwd",
    "..\\x",                /* Windows-style escape                     */
    "a/b",                  /* a subdirectory                           */
    "/abs",                 /* absolute                                 */
    "x/",                   /* trailing slash                           */
    "a\\b",                 /* backslash                                */
    "files/../x",
    "./x",
    ".hidden",              /* leading dot: our own names use it        */
    ".x.tmp",
    "..x",
    ".deltafs-tmp",
    ".json.enc",
    "a\nb",                 /* newline                                  */
    "trail\n",
    "a\tb",                 /* tab                                      */
    "a\rb",                 /* carriage return                          */
    "\x01",                 /* control characters                       */
    "x\x01y",
    "\x1b[31mred",          /* terminal escape                          */
    "a\x1f",
    "\x7f",                 /* DEL                                      */
    "a\x7f" "b",
    "\x08\x08\x08",         /* backspaces                               */
    "ok/\xff",              /* a slash hidden after a valid prefix      */
    long201,                /* 201 bytes                                */
    long300,
    long4096,
    NULL,                   /* NULL is an invalid id too                */
};
#define N_HOSTILE (sizeof hostile_ids / sizeof hostile_ids[0])

static void init_long_ids(void)
{
  memset(long201, 'a', 201);
  memset(long300, 'b', 300);
  memset(long4096, 'c', 4096);
}

/* Show an id readably in a failure message. */
static const char *shown(const char *id, char *buf, size_t size)
{
  size_t o = 0;
  if (!id)
    return "(NULL)";
  for (size_t i = 0; id[i] && o + 5 < size; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c < 0x20 || c >= 0x7f)
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    else
      buf[o++] = (char)c;
  }
  buf[o] = '\0';
  return buf;
}

#define EXPECT_INVALID(call, id)                                               \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != DFS_EINVALID_ID) {                                              \
      char b_[64];                                                             \
      print_error("%s with id \"%s\" = %d (%s), expected DFS_EINVALID_ID: %s\n", #call, \
                  shown((id), b_, sizeof b_), rc_, dfs_strerror(rc_), dfs_last_error()); \
      fail();                                                                  \
    }                                                                          \
    checks++;                                                                  \
  } while (0)

static void hostile__every_id_call_rejects_every_hostile_id_touching_nothing(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m;
  dfs_meta meta = tu_meta(1);
  char *before, *after;
  unsigned checks = 0;

  put(f->st, "keep", "kept", 1); /* something for the snapshot to guard */
  assert_ok(dfs_template_write(f->st, "schema", "{}", 2));
  assert_ok(dfs_lockmgr_new(&m, f->st));
  before = snapshot(f);
  assert_true(N_HOSTILE >= 30);
  for (size_t i = 0; i < N_HOSTILE; i++) {
    const char *id = hostile_ids[i];
    dfs_file *file = (dfs_file *)&meta; /* must be reset to NULL */
    int64_t v = 77;
    void *buf = &meta;
    size_t len = 5;
    char path[8192];

    EXPECT_INVALID(dfs_id_validate(id), id);
    EXPECT_INVALID(dfs_write(f->st, id, "x", 1, &meta), id);
    EXPECT_INVALID(dfs_write_if_version(f->st, id, "x", 1, &meta, 0), id);
    EXPECT_INVALID(dfs_read(f->st, id, &file), id);
    assert_null(file);
    EXPECT_INVALID(dfs_version(f->st, id, &v), id);
    EXPECT_INVALID(dfs_delete(f->st, id), id);
    EXPECT_INVALID(dfs_exists(f->st, id), id);
    EXPECT_INVALID(dfs_template_write(f->st, id, "{}", 2), id);
    EXPECT_INVALID(dfs_template_read(f->st, id, &buf, &len), id);
    assert_null(buf);
    EXPECT_INVALID(dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE), id);
    EXPECT_INVALID(dfs_lockmgr_acquire(m, id, DFS_LOCK_SHARED), id);
    EXPECT_INVALID(dfs_lockmgr_try_acquire(m, id, DFS_LOCK_EXCLUSIVE), id);
    EXPECT_INVALID(dfs_lockmgr_acquire_timeout(m, id, DFS_LOCK_EXCLUSIVE, 10), id);
    EXPECT_INVALID(dfs_lockmgr_release(m, id), id);
    EXPECT_INVALID(dfs_blob_path(f->st, id, path, sizeof path), id);
    EXPECT_INVALID(dfs_meta_path(f->st, id, path, sizeof path), id);
    EXPECT_INVALID(dfs_lock_path(f->st, id, path, sizeof path), id);
    /* The detail says it is the id (not some file error). */
    assert_non_null(strstr(dfs_last_error(), "id"));
  }
  after = snapshot(f);
  if (strcmp(before, after) != 0) {
    print_error("the store changed:\nbefore:\n%s\nafter:\n%s\n", before, after);
    fail();
  }
  print_message("%zu hostile ids x 18 calls = %u rejections, nothing touched\n", N_HOSTILE,
                checks);
  free(before);
  free(after);
  dfs_lockmgr_free(m);
}

/* The valid neighbours of the hostile ids. */
static const char *edge_ids[] = {
    "a",
    "a.json.enc",           /* our blob suffix as part of an id          */
    "a.meta",
    "a.meta.json",          /* our metadata suffix                       */
    "a.json.enc.lock",      /* our lock suffix                           */
    "a.json",               /* the template suffix                       */
    "x.tmp",
    "x.",                   /* trailing dot                              */
    "x..y",
    "with space",
    " leading-space",
    "-dash",
    "~tilde",
    "caf\xc3\xa9",          /* UTF-8                                     */
    "\xe6\x97\xa5\xe6\x9c\xac",
    "\xff\xfe-not-utf8",    /* bytes that are not UTF-8: accepted (DESIGN
                               §4 rejects only the listed classes; Linux
                               names are bytes)                          */
    "\x80",
    NULL,                   /* the 200-byte id, filled in below           */
};
#define N_EDGE (sizeof edge_ids / sizeof edge_ids[0])

static void hostile__edge_ids_are_valid_and_list_and_read_back_exactly(void **state)
{
  struct fx *f = *state;
  static char long200[201];
  const char *ids[N_EDGE];
  dfs_id_list *l;
  dfs_lockmgr *m;

  memset(long200, 'z', 200);
  for (size_t i = 0; i < N_EDGE; i++)
    ids[i] = edge_ids[i] ? edge_ids[i] : long200;
  assert_ok(dfs_lockmgr_new(&m, f->st));
  for (size_t i = 0; i < N_EDGE; i++) {
    char blob[300];
    assert_ok(dfs_id_validate(ids[i]));
    CHECKED_SNPRINTF(blob, sizeof blob, "blob of #%zu", i);
    assert_ok(dfs_lockmgr_acquire(m, ids[i], DFS_LOCK_EXCLUSIVE));
    put(f->st, ids[i], blob, (int64_t)i + 1);
    assert_ok(dfs_lockmgr_release(m, ids[i]));
    assert_ok(dfs_template_write(f->st, ids[i], blob, strlen(blob)));
  }
  /* Each reads its own data: no suffix made two ids share a file. */
  for (size_t i = 0; i < N_EDGE; i++) {
    char blob[300];
    dfs_file *file;
    void *t;
    size_t tl;
    int64_t v;
    CHECKED_SNPRINTF(blob, sizeof blob, "blob of #%zu", i);
    assert_ok(dfs_read(f->st, ids[i], &file));
    assert_int_equal(file->blob_len, strlen(blob));
    assert_memory_equal(file->blob, blob, strlen(blob));
    assert_int_equal(file->meta.version, (int64_t)i + 1);
    dfs_file_free(file);
    assert_ok(dfs_version(f->st, ids[i], &v));
    assert_int_equal(v, (int64_t)i + 1);
    assert_int_equal(dfs_exists(f->st, ids[i]), 1);
    assert_ok(dfs_template_read(f->st, ids[i], &t, &tl));
    assert_int_equal(tl, strlen(blob));
    assert_memory_equal(t, blob, tl);
    dfs_free(t);
  }
  /* Listing: exactly these ids, each once (the lock files, metadata files
   * and ids ending in our suffixes did not confuse it). */
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, N_EDGE);
  for (size_t i = 0; i < N_EDGE; i++) {
    int found = 0;
    for (size_t j = 0; j < l->count; j++)
      found += strcmp(l->ids[j], ids[i]) == 0;
    assert_int_equal(found, 1);
  }
  dfs_list_free(l);
  assert_ok(dfs_template_list(f->st, &l));
  assert_int_equal(l->count, N_EDGE);
  dfs_list_free(l);
  /* Deleting "a" leaves "a.json.enc", "a.meta"... alone. */
  assert_ok(dfs_delete(f->st, "a"));
  assert_int_equal(dfs_exists(f->st, "a"), 0);
  for (size_t i = 1; i < N_EDGE; i++)
    assert_int_equal(dfs_exists(f->st, ids[i]), 1);
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, N_EDGE - 1);
  dfs_list_free(l);
  dfs_lockmgr_free(m);
}

static void hostile__foreign_files_in_files_dir_are_not_entities(void **state)
{
  struct fx *f = *state;
  char p[8192];
  dfs_id_list *l;
  put(f->st, "real", "r", 1);
  /* Names that look almost like entities: not listed, not readable. */
  const char *foreign[] = {".hidden.json.enc", "x.json.enc.tmp", "y.meta.json",
                           "z.json.enc.lock", "bad\x01id.json.enc", ".json.enc"};
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    path_of(p, sizeof p, dfs_files_dir(f->st), foreign[i]);
    tu_write_file(p, "junk", 4);
  }
  path_of(p, sizeof p, dfs_files_dir(f->st), "dir.json.enc");
  assert_int_equal(mkdir(p, 0755), 0); /* a directory with an entity name */
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, 1);
  assert_string_equal(l->ids[0], "real");
  dfs_list_free(l);
  /* "dir" has a directory for a blob and no metadata: not an entity. */
  assert_int_equal(dfs_exists(f->st, "dir"), DFS_EREAD);
  {
    /* Junk metadata without a blob: not found, or corrupt; never data. */
    dfs_file *file = NULL;
    int rc = dfs_read(f->st, "y", &file);
    assert_true(rc == DFS_ENOTFOUND || rc == DFS_ECORRUPT);
    assert_null(file);
  }
}

static void hostile__embedded_nul_uses_exactly_the_prefix(void **state)
{
  struct fx *f = *state;
  static const char id[] = "ab\0/../../escape";
  dfs_id_list *l;
  char *before_out;
  put(f->st, id, "nul", 1);
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, 1);
  assert_string_equal(l->ids[0], "ab");
  dfs_list_free(l);
  /* Nothing outside the store. */
  {
    struct snap s = {0};
    snap_add(&s, "");
    snap_tree(&s, f->out);
    before_out = s.text;
    assert_string_equal(before_out, "\n");
  }
  free(before_out);
}

/* ---- 2. symlinks ------------------------------------------------------ */

#define SECRET "TOP SECRET: outside the store"

/* A file outside the store with known content; its identity for later. */
static void make_outside(const struct fx *f, const char *name, char *path, size_t size,
                         struct stat *sb)
{
  CHECKED_SNPRINTF(path, size, "%s/%s", f->out, name);
  tu_write_file(path, SECRET, strlen(SECRET));
  assert_int_equal(lstat(path, sb), 0);
}

static void assert_outside_untouched(const char *path, const struct stat *before)
{
  struct stat sb;
  size_t len;
  char *data;
  assert_int_equal(lstat(path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_ino, before->st_ino);
  assert_int_equal(sb.st_size, before->st_size);
  assert_int_equal(sb.st_mtim.tv_sec, before->st_mtim.tv_sec);
  assert_int_equal(sb.st_mtim.tv_nsec, before->st_mtim.tv_nsec);
  assert_int_equal(sb.st_mode, before->st_mode);
  data = tu_read_file(path, &len);
  assert_int_equal(len, strlen(SECRET));
  assert_memory_equal(data, SECRET, len);
  free(data);
}

static void plant(const char *target, const char *dir, const char *name)
{
  char p[8192];
  path_of(p, sizeof p, dir, name);
  unlink(p);
  assert_int_equal(symlink(target, p), 0);
}

static void assert_says_symlink(void)
{
  const char *d = dfs_last_error();
  if (!strstr(d, "symbolic link") && !strstr(d, "symlink") && !strstr(d, "Too many levels")) {
    print_error("detail does not say why: %s\n", d);
    fail();
  }
}

static void hostile__symlinked_blob_is_never_followed(void **state)
{
  struct fx *f = *state;
  char target[8192], p[8192];
  struct stat sb, lsb;
  dfs_file *file = NULL;
  int64_t v;

  put(f->st, "s", "real blob", 1);
  make_outside(f, "secret", target, sizeof target, &sb);
  plant(target, dfs_files_dir(f->st), "s.json.enc");
  assert_dfs(dfs_read(f->st, "s", &file), DFS_EREAD);
  assert_null(file);
  assert_says_symlink();
  assert_dfs(dfs_exists(f->st, "s"), DFS_EREAD);
  (void)dfs_version(f->st, "s", &v); /* metadata only: fine either way */
  assert_dfs(dfs_write_if_version(f->st, "s", "x", 1, &(dfs_meta){0}, 1), DFS_EREAD);
  assert_outside_untouched(target, &sb);
  /* A write replaces the link itself; the target is never written. */
  put(f->st, "s", "new blob", 2);
  assert_outside_untouched(target, &sb);
  path_of(p, sizeof p, dfs_files_dir(f->st), "s.json.enc");
  assert_int_equal(lstat(p, &lsb), 0);
  assert_true(S_ISREG(lsb.st_mode));
  assert_ok(dfs_read(f->st, "s", &file));
  assert_memory_equal(file->blob, "new blob", 8);
  dfs_file_free(file);
  /* Delete removes a planted link, not its target. */
  plant(target, dfs_files_dir(f->st), "s.json.enc");
  assert_ok(dfs_delete(f->st, "s"));
  assert_int_equal(lstat(p, &lsb), -1);
  assert_outside_untouched(target, &sb);
  assert_int_equal(tu_count_temps(f->base), 0);
}

static void hostile__symlinked_metadata_is_never_followed(void **state)
{
  struct fx *f = *state;
  char target[8192];
  struct stat sb;
  dfs_file *file = NULL;
  int64_t v = 0;

  put(f->st, "s", "real blob", 1);
  /* A target that would parse as metadata, to be sure it is never read. */
  CHECKED_SNPRINTF(target, sizeof target, "%s/meta.json", f->out);
  tu_write_file(target, "{\"version\":999}", 15);
  assert_int_equal(lstat(target, &sb), 0);
  plant(target, dfs_files_dir(f->st), "s.meta.json");
  assert_dfs(dfs_read(f->st, "s", &file), DFS_EREAD);
  assert_says_symlink();
  assert_dfs(dfs_version(f->st, "s", &v), DFS_EREAD);
  assert_int_not_equal(v, 999);
  assert_dfs(dfs_exists(f->st, "s"), DFS_EREAD);
  put(f->st, "s", "replaced", 2); /* the commit rename replaces the link */
  assert_ok(dfs_version(f->st, "s", &v));
  assert_int_equal(v, 2);
  {
    struct stat now;
    assert_int_equal(lstat(target, &now), 0);
    assert_int_equal(now.st_size, 15);
    assert_int_equal(now.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
  }
}

static void hostile__symlinked_lock_file_is_never_followed_or_created(void **state)
{
  struct fx *f = *state;
  char target[8192], dangling[8192];
  struct stat sb;
  dfs_lockmgr *m;
  dfs_flock *fl;
  char lp[8192];

  put(f->st, "s", "blob", 1);
  make_outside(f, "lock-target", target, sizeof target, &sb);
  plant(target, dfs_files_dir(f->st), "s.json.enc.lock");
  CHECKED_SNPRINTF(dangling, sizeof dangling, "%s/created-by-lock", f->out);
  plant(dangling, dfs_files_dir(f->st), "d.json.enc.lock");
  assert_ok(dfs_lockmgr_new(&m, f->st));
  assert_dfs(dfs_lockmgr_acquire(m, "s", DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  assert_says_symlink();
  assert_dfs(dfs_lockmgr_try_acquire(m, "s", DFS_LOCK_SHARED), DFS_ELOCK);
  assert_dfs(dfs_lockmgr_acquire_timeout(m, "s", DFS_LOCK_EXCLUSIVE, 20), DFS_ELOCK);
  assert_dfs(dfs_lockmgr_acquire(m, "d", DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  assert_int_equal(access(dangling, F_OK), -1); /* O_CREAT did not create it */
  assert_ok(dfs_lockmgr_release(m, "s"));      /* not held: DFS_OK */
  dfs_lockmgr_free(m);
  /* The single-file API refuses it too. */
  assert_ok(dfs_lock_path(f->st, "s", lp, sizeof lp));
  assert_dfs(dfs_flock_open(&fl, lp), DFS_ELOCK);
  /* Delete removes the entity, and never unlinks through the link. */
  (void)dfs_delete(f->st, "s");
  assert_int_equal(dfs_exists(f->st, "s"), 0);
  assert_outside_untouched(target, &sb);
  assert_int_equal(access(dangling, F_OK), -1);
}

static void hostile__symlinked_template_is_never_followed(void **state)
{
  struct fx *f = *state;
  char target[8192];
  struct stat sb;
  void *buf = NULL;
  size_t len = 0;

  make_outside(f, "tpl", target, sizeof target, &sb);
  plant(target, dfs_templates_dir(f->st), "t.json");
  assert_dfs(dfs_template_read(f->st, "t", &buf, &len), DFS_EREAD);
  assert_null(buf);
  assert_says_symlink();
  assert_ok(dfs_template_write(f->st, "t", "{\"mine\":1}", 10));
  assert_outside_untouched(target, &sb);
  assert_ok(dfs_template_read(f->st, "t", &buf, &len));
  assert_int_equal(len, 10);
  dfs_free(buf);
}

static void hostile__symlinked_temp_in_tmp_dir_is_not_followed_by_recovery(void **state)
{
  struct fx *f = *state;
  char target[8192], tmpdir[8192];
  struct stat sb;
  dfs_storage *again;

  make_outside(f, "tmp-target", target, sizeof target, &sb);
  path_of(tmpdir, sizeof tmpdir, f->base, ".deltafs-tmp");
  /* Names recovery acts on: a pending metadata, a blob temp, a template. */
  plant(target, tmpdir, "e.s.meta.json.0123456789abcdef");
  plant(target, tmpdir, "e.s.json.enc.0123456789abcdef");
  plant(target, tmpdir, "t.s.json.0123456789abcdef");
  assert_ok(dfs_storage_open(&again, f->base, NULL));
  assert_int_equal(dfs_exists(again, "s"), 0); /* nothing rolled forward */
  dfs_storage_close(again);
  assert_outside_untouched(target, &sb);
}

static void hostile__symlinked_store_directories_are_refused(void **state)
{
  struct fx *f = *state;
  const char *dirs[] = {"files", "templates", ".deltafs-tmp"};
  for (size_t i = 0; i < 3; i++) {
    char base[4200], sub[4300], victim[4200], secret[4300];
    struct stat sb;
    dfs_storage *st = NULL;
    CHECKED_SNPRINTF(base, sizeof base, "%s/links-%zu", f->dir, i);
    assert_int_equal(mkdir(base, 0755), 0);
    CHECKED_SNPRINTF(victim, sizeof victim, "%s/victim-%zu", f->out, i);
    assert_int_equal(mkdir(victim, 0755), 0);
    CHECKED_SNPRINTF(secret, sizeof secret, "%s/s.json.enc", victim);
    tu_write_file(secret, SECRET, strlen(SECRET));
    assert_int_equal(lstat(secret, &sb), 0);
    path_of(sub, sizeof sub, base, dirs[i]);
    assert_int_equal(symlink(victim, sub), 0);
    assert_dfs(dfs_storage_open(&st, base, NULL), DFS_EREAD);
    assert_null(st);
    assert_says_symlink();
    assert_non_null(strstr(dfs_last_error(), dirs[i]));
    assert_outside_untouched(secret, &sb);
    assert_int_equal(tu_count_entries(victim, ""), 1);
  }
}

/* ---- 3. damaged metadata ----------------------------------------------- */

struct bad_meta {
  const char *what;
  const char *json; /* NULL: generated (huge) */
  size_t len;       /* 0: strlen */
};

#define OKKEYS "\"key_id\":\"k\",\"alg\":\"AES-GCM\",\"iv\":\"\",\"tag\":\"\",\"schema_id\":\"s\""
static const struct bad_meta bad_metas[] = {
    {"empty", "", 0},
    {"whitespace only", "  \n\t ", 0},
    {"truncated", "{" OKKEYS ",\"version\":1,\"time", 0},
    {"truncated in a string", "{\"key_id\":\"abc", 0},
    {"not JSON", "version=1", 0},
    {"array", "[1,2,3]", 0},
    {"string", "\"an object?\"", 0},
    {"number", "42", 0},
    {"null", "null", 0},
    {"true", "true", 0},
    {"two objects", "{}{}", 0},
    {"trailing garbage", "{\"version\":1} x", 0},
    {"version as string", "{\"version\":\"1\"}", 0},
    {"version as float", "{\"version\":1.5}", 0},
    {"version as bool", "{\"version\":true}", 0},
    {"version as object", "{\"version\":{}}", 0},
    {"version beyond int64", "{\"version\":9223372036854775808}", 0},
    {"version below int64", "{\"version\":-9223372036854775809}", 0},
    {"version huge", "{\"version\":1e400}", 0},
    {"key_id as number", "{\"key_id\":5}", 0},
    {"iv as array", "{\"iv\":[\"a\"]}", 0},
    {"tag as object", "{\"tag\":{\"x\":1}}", 0},
    {"database as bool", "{\"database\":false}", 0},
    {"duplicate version", "{\"version\":1,\"version\":2}", 0},
    {"duplicate key_id", "{\"key_id\":\"a\",\"key_id\":\"b\"}", 0},
    {"invalid UTF-8 in a value", "{\"key_id\":\"\xff\xfe\"}", 0},
    {"invalid UTF-8 in a key", "{\"\xc3\x28\":1}", 0},
    {"overlong UTF-8", "{\"writer_id\":\"\xc0\xaf\"}", 0},
    {"NUL escape in a string", "{\"key_id\":\"a\\u0000b\"}", 0},
    {"raw NUL byte", "{\"key_id\":\"a\0b\"}", 16},
    {"lone surrogate", "{\"key_id\":\"\\ud800\"}", 0},
    {"timestamp as number", "{\"timestamp\":1700000000}", 0},
    {"timestamp garbage", "{\"timestamp\":\"yesterday\"}", 0},
    {"timestamp month 13", "{\"timestamp\":\"2026-13-01T00:00:00Z\"}", 0},
    {"timestamp Feb 30", "{\"timestamp\":\"2026-02-30T00:00:00Z\"}", 0},
    {"timestamp Feb 29 non-leap", "{\"timestamp\":\"2025-02-29T00:00:00Z\"}", 0},
    {"timestamp hour 24", "{\"timestamp\":\"2026-11-27T24:00:00Z\"}", 0},
    {"timestamp second 60", "{\"timestamp\":\"2026-11-27T23:59:60Z\"}", 0},
    {"timestamp no zone", "{\"timestamp\":\"2026-11-27T19:53:01\"}", 0},
    {"timestamp space", "{\"timestamp\":\"2026-11-27 19:53:01Z\"}", 0},
    {"timestamp 10 digits", "{\"timestamp\":\"2026-11-27T19:53:01.1234567891Z\"}", 0},
    {"timestamp empty fraction", "{\"timestamp\":\"2026-11-27T19:53:01.Z\"}", 0},
    {"timestamp bad offset", "{\"timestamp\":\"2026-11-27T19:53:01+25:00\"}", 0},
    {"timestamp short offset", "{\"timestamp\":\"2026-11-27T19:53:01+01\"}", 0},
    {"timestamp trailing", "{\"timestamp\":\"2026-11-27T19:53:01Zjunk\"}", 0},
    {"timestamp with NUL", "{\"timestamp\":\"2026-11-27T19:53:01\\u0000Z\"}", 0},
    {"blob_size negative", "{\"blob_size\":-1,\"blob_xxh3\":\"0000000000000000\"}", 0},
    {"blob_size string", "{\"blob_size\":\"4\",\"blob_xxh3\":\"0000000000000000\"}", 0},
    {"blob_xxh3 short", "{\"blob_size\":4,\"blob_xxh3\":\"abc\"}", 0},
    {"blob_xxh3 upper/non-hex", "{\"blob_size\":4,\"blob_xxh3\":\"zzzzzzzzzzzzzzzz\"}", 0},
    {"huge (over 1 MiB)", NULL, 0},
};

static void hostile__damaged_metadata_is_ecorrupt_never_a_crash(void **state)
{
  struct fx *f = *state;
  char mp[8192];
  const size_t n = sizeof bad_metas / sizeof bad_metas[0];

  assert_true(n >= 30);
  for (size_t i = 0; i < n; i++) {
    const struct bad_meta *b = &bad_metas[i];
    char id[32];
    dfs_file *file = NULL;
    int64_t v = 0;
    char *huge = NULL;
    const char *data = b->json;
    size_t len = b->len ? b->len : (b->json ? strlen(b->json) : 0);
    int rc;

    CHECKED_SNPRINTF(id, sizeof id, "bad%zu", i);
    put(f->st, id, "blob", 1);
    if (!data) {
      /* Valid JSON, but 1 MiB + 64 bytes of it. */
      len = (1u << 20) + 64;
      huge = malloc(len + 1);
      memset(huge, ' ', len);
      memcpy(huge, "{\"version\":1,\"pad\":\"", 20);
      memset(huge + 20, 'p', len - 40);
      memcpy(huge + len - 20, "\"}                  ", 20);
      data = huge;
    }
    assert_ok(dfs_meta_path(f->st, id, mp, sizeof mp));
    tu_write_file(mp, data, len);
    rc = dfs_read(f->st, id, &file);
    if (rc != DFS_ECORRUPT) {
      print_error("metadata \"%s\": read = %d (%s): %s\n", b->what, rc, dfs_strerror(rc),
                  dfs_last_error());
      fail();
    }
    assert_null(file);
    /* The detail names the file. */
    assert_non_null(strstr(dfs_last_error(), mp));
    rc = dfs_version(f->st, id, &v);
    if (rc != DFS_ECORRUPT) {
      print_error("metadata \"%s\": version = %d\n", b->what, rc);
      fail();
    }
    assert_dfs(dfs_write_if_version(f->st, id, "x", 1, &(dfs_meta){0}, 1), DFS_ECORRUPT);
    /* Still listed (the blob is there) and exists; a plain write repairs. */
    assert_int_equal(dfs_exists(f->st, id), 1);
    put(f->st, id, "repaired", 2);
    assert_ok(dfs_version(f->st, id, &v));
    assert_int_equal(v, 2);
    free(huge);
  }
  /* The parser directly, for the same inputs. */
  for (size_t i = 0; i + 1 < n; i++) {
    dfs_meta *m = NULL;
    const char *j = bad_metas[i].json;
    assert_int_equal(dfs_meta_parse(j, bad_metas[i].len ? bad_metas[i].len : strlen(j), &m,
                                    NULL, NULL, NULL),
                     DFS_ECORRUPT);
    assert_null(m);
  }
}

static void hostile__non_regular_entity_files_are_errors(void **state)
{
  struct fx *f = *state;
  char p[8192];
  dfs_file *file = NULL;
  put(f->st, "fifo", "x", 1);
  assert_ok(dfs_meta_path(f->st, "fifo", p, sizeof p));
  unlink(p);
  /* A FIFO would block a naive open/read forever. */
  assert_int_equal(mkfifo(p, 0644), 0);
  assert_dfs(dfs_read(f->st, "fifo", &file), DFS_EREAD);
  assert_null(file);
  assert_true(dfs_version(f->st, "fifo", &(int64_t){0}) < 0);
  /* ... also as a blob, a template and a temp recovery looks at. */
  assert_ok(dfs_blob_path(f->st, "fifo", p, sizeof p));
  unlink(p);
  assert_int_equal(mkfifo(p, 0644), 0);
  put(f->st, "fifo2", "x", 1);
  assert_ok(dfs_blob_path(f->st, "fifo2", p, sizeof p));
  unlink(p);
  assert_int_equal(mkfifo(p, 0644), 0);
  assert_dfs(dfs_read(f->st, "fifo2", &file), DFS_EREAD);
  CHECKED_SNPRINTF(p, sizeof p, "%s/t.json", dfs_templates_dir(f->st));
  assert_int_equal(mkfifo(p, 0644), 0);
  assert_dfs(dfs_template_read(f->st, "t", &(void *){NULL}, &(size_t){0}), DFS_EREAD);
  {
    dfs_storage *again;
    CHECKED_SNPRINTF(p, sizeof p, "%s/.deltafs-tmp/e.q.meta.json.0123456789abcdef", f->base);
    assert_int_equal(mkfifo(p, 0644), 0);
    CHECKED_SNPRINTF(p, sizeof p, "%s/.deltafs-tmp/t.q.json.0123456789abcdef", f->base);
    assert_int_equal(mkfifo(p, 0644), 0);
    assert_ok(dfs_storage_open(&again, f->base, NULL)); /* recovery must not hang */
    dfs_storage_close(again);
  }
  assert_ok(dfs_blob_path(f->st, "dir", p, sizeof p));
  assert_int_equal(mkdir(p, 0755), 0);
  assert_true(dfs_read(f->st, "dir", &file) < 0);
}

/* ---- 4. permissions ----------------------------------------------------- */

/* Run fn in a child that has dropped to nobody/nogroup; its exit status:
 * 0 passed, else the number of the failed check (printed by the child). */
static int as_nobody(int (*fn)(const struct fx *), const struct fx *f)
{
  pid_t pid;
  int status;
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
      _exit(100);
    _exit(fn(f));
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static int says_denied(int rc, int want, const char *path_part)
{
  const char *d = dfs_last_error();
  if (rc != want || !strstr(d, "Permission denied") || !strstr(d, path_part)) {
    fprintf(stderr, "as nobody: rc %d (want %d): %s\n", rc, want, d);
    return 0;
  }
  return 1;
}

static int nobody_checks(const struct fx *f)
{
  char locked[8192], readonly[8192];
  dfs_storage *st = NULL;
  dfs_file *file = NULL;
  dfs_lockmgr *m;
  dfs_meta meta = tu_meta(9);

  CHECKED_SNPRINTF(locked, sizeof locked, "%s/locked", f->dir);
  CHECKED_SNPRINTF(readonly, sizeof readonly, "%s/readonly", f->dir);
  /* The test directory must be reachable by nobody, or every check below
   * would fail for the wrong reason. */
  if (access(f->dir, X_OK) != 0)
    return 99;
  /* A store whose base directory nobody may enter. */
  if (!says_denied(dfs_storage_open(&st, locked, NULL), DFS_EREAD, locked))
    return 1;
  if (st)
    return 2;
  /* Creating a store where nobody may create directories. */
  {
    char sub[8300];
    CHECKED_SNPRINTF(sub, sizeof sub, "%s/new", readonly);
    if (!says_denied(dfs_storage_open(&st, sub, NULL), DFS_EWRITE, readonly))
      return 3;
  }
  /* A store readable but not writable: reads work, writes fail clearly,
   * nothing changes. */
  if (dfs_storage_open(&st, readonly, NULL) != 0) {
    fprintf(stderr, "as nobody: open read-only store: %s\n", dfs_last_error());
    return 4;
  }
  if (dfs_read(st, "e", &file) != 0 || file->blob_len != 4)
    return 5;
  dfs_file_free(file);
  if (!says_denied(dfs_write(st, "e", "nope", 4, &meta), DFS_EWRITE, readonly))
    return 6;
  if (!says_denied(dfs_write(st, "new", "nope", 4, &meta), DFS_EWRITE, readonly))
    return 7;
  if (!says_denied(dfs_template_write(st, "t", "{}", 2), DFS_EWRITE, readonly))
    return 8;
  if (!says_denied(dfs_delete(st, "e"), DFS_EWRITE, readonly))
    return 9;
  if (dfs_read(st, "e", &file) != 0 || memcmp(file->blob, "mine", 4) != 0)
    return 10;
  dfs_file_free(file);
  /* The lock file exists (mode 0644, root's): it is opened read-only and
   * locked anyway (lockfile.c); a new one cannot be created. */
  if (dfs_lockmgr_new(&m, st) != 0)
    return 11;
  if (dfs_lockmgr_acquire(m, "e", DFS_LOCK_EXCLUSIVE) != 0) {
    fprintf(stderr, "as nobody: lock existing: %s\n", dfs_last_error());
    return 12;
  }
  if (dfs_lockmgr_release(m, "e") != 0)
    return 13;
  if (!says_denied(dfs_lockmgr_acquire(m, "new", DFS_LOCK_EXCLUSIVE), DFS_ELOCK, readonly))
    return 14;
  dfs_lockmgr_free(m);
  /* An unreadable metadata file: a read error naming it. */
  if (!says_denied(dfs_read(st, "secret", &file), DFS_EREAD, "secret.meta.json"))
    return 15;
  dfs_storage_close(st);
  return 0;
}

static void hostile__permission_denied_is_a_clear_error_as_nobody(void **state)
{
  struct fx *f = *state;
  char locked[8192], readonly[8192], p[8300];
  dfs_storage *st;
  dfs_lockmgr *m;
  int r;

  if (geteuid() != 0) {
    print_message("skipped: needs root to switch to nobody (root bypasses permissions)\n");
    skip();
  }
  assert_int_equal(chmod(f->dir, 0755), 0);
  CHECKED_SNPRINTF(locked, sizeof locked, "%s/locked", f->dir);
  assert_ok(dfs_storage_open(&st, locked, NULL));
  dfs_storage_close(st);
  assert_int_equal(chmod(locked, 0700), 0);

  CHECKED_SNPRINTF(readonly, sizeof readonly, "%s/readonly", f->dir);
  assert_ok(dfs_storage_open(&st, readonly, NULL));
  put(st, "e", "mine", 1);
  put(st, "secret", "hidden", 1);
  assert_ok(dfs_lockmgr_new(&m, st));
  assert_ok(dfs_lockmgr_acquire(m, "e", DFS_LOCK_EXCLUSIVE)); /* creates the lock file */
  assert_ok(dfs_lockmgr_release(m, "e"));
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  assert_int_equal(chmod(readonly, 0755), 0);
  CHECKED_SNPRINTF(p, sizeof p, "%s/files/secret.meta.json", readonly);
  assert_int_equal(chmod(p, 0600), 0);
  CHECKED_SNPRINTF(p, sizeof p, "%s/files/e.json.enc", readonly);
  assert_int_equal(chmod(p, 0644), 0);
  CHECKED_SNPRINTF(p, sizeof p, "%s/files/e.meta.json", readonly);
  assert_int_equal(chmod(p, 0644), 0);

  r = as_nobody(nobody_checks, f);
  if (r == 99) {
    print_message("skipped: nobody cannot reach %s (a parent directory is not "
                  "searchable by others; set DFS_TEST_DIR to e.g. /var/tmp)\n", f->dir);
    skip();
  }
  if (r != 0) {
    print_error("check %d failed in the child running as nobody\n", r);
    fail();
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          hostile__every_id_call_rejects_every_hostile_id_touching_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__edge_ids_are_valid_and_list_and_read_back_exactly,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__foreign_files_in_files_dir_are_not_entities,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__embedded_nul_uses_exactly_the_prefix, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hostile__symlinked_blob_is_never_followed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hostile__symlinked_metadata_is_never_followed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hostile__symlinked_lock_file_is_never_followed_or_created,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__symlinked_template_is_never_followed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          hostile__symlinked_temp_in_tmp_dir_is_not_followed_by_recovery, setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__symlinked_store_directories_are_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hostile__damaged_metadata_is_ecorrupt_never_a_crash,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(hostile__non_regular_entity_files_are_errors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hostile__permission_denied_is_a_clear_error_as_nobody,
                                      setup, teardown),
  };
  init_long_ids();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
