/*
 * test_faults.c — every error path of the public operations, by sweep.
 *
 * THE HARNESS
 * ===========
 * For each operation below and for each kind of wrapped call (sys.h: open,
 * read, write, fsync, rename, unlink, mkdir, flock, fstat, getdents, close,
 * futimens, malloc) the sweep
 *
 *   1. builds a fresh fixture (a new store with a known state) and runs the
 *      operation once, unarmed, counting the calls of that kind (N);
 *   2. for every position n in 1..N and every errno in
 *      {EIO, ENOSPC, EMFILE, EACCES, EINTR} (malloc: ENOMEM only) builds a
 *      fresh fixture, arms dfs_fault_arm(kind, n, FAIL, errno), runs the
 *      operation, disarms, and checks:
 *        - the injected fault fired exactly once (else the operation is not
 *          deterministic and the sweep would prove nothing);
 *        - EINTR: the call SUCCEEDS (sys.c retries it) with the success
 *          state;
 *        - otherwise the operation returns its documented failure code and
 *          dfs_last_error() names the operation, the store path and the
 *          errno text — unless the failing call is one the operation
 *          deliberately tolerates (listed in tolerated(), each with its
 *          reason), in which case it must succeed with the success state;
 *        - the entity/template state is the previous one (the old pair
 *          reads intact, byte for byte and field for field), with the one
 *          documented exception of the write protocol: a failed fsync of
 *          files/ AFTER the commit rename leaves the new version in place
 *          and returns DFS_EWRITE saying it "may not be durable";
 *        - no temp file anywhere in the store after a failed call (and after
 *          a successful one, a re-open's recovery leaves none);
 *        - no lock held: a separate open file description can flock the
 *          entity's lock file exclusively without blocking;
 *        - no descriptor leaked: /proc/self/fd has as many entries after the
 *          fixture is torn down as before it was built;
 *        - memory: the whole sweep runs under valgrind / LeakSanitizer in
 *          scripts/ci-sanitizers.sh (jansson's own allocations are not
 *          counted by the malloc fault kind; that is fine).
 *
 * The fixture's setup writes through a DFS_OPT_NO_SYNC handle (fast) and
 * the operation runs through a normal handle, so every fsync of the
 * operation is swept.  Stores live under $DFS_TEST_DIR (or TMPDIR,
 * /var/tmp).  The full sweep is ~2,000 fixtures; a few seconds on ext4.
 * DFS_FAULTS_VERBOSE=1 prints every position and its result.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commit.h"
#include "fault.h"
#include "storage_int.h"

enum op {
  OP_WRITE,      /* dfs_write over an existing entity (v1 -> v2)          */
  OP_WRITE_NEW,  /* dfs_write of a new id                                 */
  OP_WRITE_IF,   /* dfs_write_if_version(expected 1)                      */
  OP_READ,       /* dfs_read                                              */
  OP_DELETE,     /* dfs_delete (lock file present, as after a real worker) */
  OP_LIST,       /* dfs_list                                              */
  OP_LIST_EACH,  /* dfs_list_each                                         */
  OP_TPL_WRITE,  /* dfs_template_write over v1                            */
  OP_TPL_READ,   /* dfs_template_read                                     */
  OP_LOCK_ACQ,   /* dfs_lockmgr_acquire exclusive                         */
  OP_LOCK_REL,   /* dfs_lockmgr_release of a held lock                    */
  OP_OPEN,       /* dfs_storage_open creating a new store                 */
  OP_OPEN_RECOVER, /* dfs_storage_open of a store a writer crashed in     */
  OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "write", "write(new id)", "write_if_version", "read", "delete", "list", "list_each",
    "template_write", "template_read", "lockmgr_acquire", "lockmgr_release", "storage_open",
    "storage_open(recovery)"};

/* The word the detail must start with (the operation, as the library
 * names it in dfs_last_error()). */
static const char *const op_words[OP_COUNT] = {
    "write ", "write ", "write_if_version ", "read ", "delete ", "list", "list",
    "template write ", "template read ", "lock ", "unlock ", "open store ", "open store "};

#define ENT "ent"
#define NEW_ID "fresh"
#define TPL "schema"
static const char BLOB1[] = "{\"v\":1,\"old\":\"the previous version\"}";
static const char BLOB2[] = "{\"v\":2,\"new\":\"the version being written, longer\"}";
static const char TPL1[] = "{\"type\":\"object\",\"v\":1}";
static const char TPL2[] = "{\"type\":\"object\",\"v\":2,\"required\":[\"a\"]}";

struct fx {
  char *dir;           /* the fixture's directory                         */
  char base[4096];     /* the store's base path                           */
  dfs_storage *st;     /* the handle the operation uses                   */
  dfs_lockmgr *m;      /* lock ops                                        */
  dfs_storage *opened; /* OP_OPEN*: what the operation returned            */
  int each_count;      /* OP_LIST_EACH: ids seen                          */
  dfs_id_list *list;   /* OP_LIST: result                                 */
  dfs_file *file;      /* OP_READ: result                                 */
  void *tpl;           /* OP_TPL_READ: result                             */
  size_t tpl_len;
};

static int verbose;

static int count_fds(void)
{
  return tu_count_entries("/proc/self/fd", "");
}

/* ---- fixture ----------------------------------------------------------- */

static void must(int rc, const char *what)
{
  if (rc != 0) {
    print_error("fixture: %s = %d (%s): %s\n", what, rc, dfs_strerror(rc), dfs_last_error());
    fail();
  }
}

static void write_v(dfs_storage *st, const char *id, int v)
{
  dfs_meta m = tu_meta(v);
  must(dfs_write(st, id, v == 1 ? BLOB1 : BLOB2, v == 1 ? strlen(BLOB1) : strlen(BLOB2), &m),
       "write");
}

/* A crashed writer: a child writes v2 of ENT and is SIGKILLed at its commit
 * rename (the 2nd rename: after the blob swap), leaving the new blob in
 * place, the pending metadata and the old blob in .deltafs-tmp. */
static void crash_writer(const char *base)
{
  pid_t pid = fork();
  int status;
  assert_true(pid >= 0);
  if (pid == 0) {
    dfs_options o = DFS_OPTIONS_INIT;
    dfs_storage *st;
    dfs_meta m = tu_meta(2);
    o.flags = DFS_OPT_NO_SYNC;
    if (dfs_storage_open(&st, base, &o) < 0)
      _exit(2);
    dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_RENAME), 2, DFS_FAULT_KILL, 0, 0);
    dfs_write(st, ENT, BLOB2, strlen(BLOB2), &m);
    _exit(3); /* not reached: killed at the rename */
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void fx_build(struct fx *f, enum op op)
{
  dfs_options o = DFS_OPTIONS_INIT;
  dfs_storage *setup;

  memset(f, 0, sizeof *f);
  f->dir = tu_mkdtemp("faults");
  CHECKED_SNPRINTF(f->base, sizeof f->base, "%s/store", f->dir);
  if (op == OP_OPEN)
    return; /* the operation creates the store */
  /* The state every operation starts from, written fast (no fsync). */
  o.flags = DFS_OPT_NO_SYNC;
  must(dfs_storage_open(&setup, f->base, &o), "open (setup)");
  {
    dfs_lockmgr *m;
    /* As a real worker does: under the entity's lock, so its lock file
     * exists (delete must remove it). */
    must(dfs_lockmgr_new(&m, setup), "lockmgr_new");
    must(dfs_lockmgr_acquire(m, ENT, DFS_LOCK_EXCLUSIVE), "acquire");
    write_v(setup, ENT, 1);
    must(dfs_lockmgr_release(m, ENT), "release");
    dfs_lockmgr_free(m);
  }
  write_v(setup, "e2", 1);
  write_v(setup, "e3", 1);
  must(dfs_template_write(setup, TPL, TPL1, strlen(TPL1)), "template write");
  dfs_storage_close(setup);
  if (op == OP_OPEN_RECOVER) {
    crash_writer(f->base);
    return; /* the operation opens it */
  }
  must(dfs_storage_open(&f->st, f->base, NULL), "open");
  if (op == OP_LOCK_ACQ || op == OP_LOCK_REL)
    must(dfs_lockmgr_new(&f->m, f->st), "lockmgr_new");
  if (op == OP_LOCK_REL)
    must(dfs_lockmgr_acquire(f->m, ENT, DFS_LOCK_EXCLUSIVE), "acquire");
}

static void fx_teardown(struct fx *f)
{
  dfs_list_free(f->list);
  dfs_file_free(f->file);
  dfs_free(f->tpl);
  dfs_lockmgr_free(f->m);
  dfs_storage_close(f->st);
  dfs_storage_close(f->opened);
  tu_rmrf(f->dir);
  free(f->dir);
  memset(f, 0, sizeof *f);
}

/* ---- the operations ---------------------------------------------------- */

static int each_cb(const char *id, void *p)
{
  struct fx *f = p;
  (void)id;
  f->each_count++;
  return 0;
}

static int run(struct fx *f, enum op op)
{
  dfs_meta m2 = tu_meta(2);
  switch (op) {
  case OP_WRITE:
    return dfs_write(f->st, ENT, BLOB2, strlen(BLOB2), &m2);
  case OP_WRITE_NEW:
    return dfs_write(f->st, NEW_ID, BLOB2, strlen(BLOB2), &m2);
  case OP_WRITE_IF:
    return dfs_write_if_version(f->st, ENT, BLOB2, strlen(BLOB2), &m2, 1);
  case OP_READ:
    return dfs_read(f->st, ENT, &f->file);
  case OP_DELETE:
    return dfs_delete(f->st, ENT);
  case OP_LIST:
    return dfs_list(f->st, &f->list);
  case OP_LIST_EACH:
    f->each_count = 0;
    return dfs_list_each(f->st, each_cb, f);
  case OP_TPL_WRITE:
    return dfs_template_write(f->st, TPL, TPL2, strlen(TPL2));
  case OP_TPL_READ:
    return dfs_template_read(f->st, TPL, &f->tpl, &f->tpl_len);
  case OP_LOCK_ACQ:
    return dfs_lockmgr_acquire(f->m, ENT, DFS_LOCK_EXCLUSIVE);
  case OP_LOCK_REL:
    return dfs_lockmgr_release(f->m, ENT);
  case OP_OPEN:
  case OP_OPEN_RECOVER:
    return dfs_storage_open(&f->opened, f->base, NULL);
  default:
    return DFS_EINVAL;
  }
}

/* ---- checks ------------------------------------------------------------ */

struct pos {
  enum op op;
  enum dfs_sys_kind kind;
  unsigned long n, total; /* position n of total calls of kind */
  int err;
  int rc;
};

static void fail_at(const struct pos *p, const char *what)
{
  print_error("%s: %s #%lu/%lu failing with %s: rc %d (%s): %s\n  last error: %s\n",
              op_names[p->op], dfs_fault_kind_name(p->kind), p->n, p->total,
              p->kind == DFS_SYS_MALLOC ? "NULL" : strerror(p->err), p->rc,
              dfs_strerror(p->rc), what, dfs_last_error());
  fail();
}

#define CHECK(p, cond, what)                                                   \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_at((p), (what));                                                    \
  } while (0)

/* Which version of ENT reads now: 1, 2, 0 for "not found", -1 otherwise
 * (corrupt, mixed, unreadable: always a failure).  Checks the pair byte for
 * byte and the metadata field by field. */
static int ent_version(dfs_storage *st, const char *id)
{
  dfs_file *file = NULL;
  int rc = dfs_read(st, id, &file), v = -1;
  if (rc == DFS_ENOTFOUND)
    return 0;
  if (rc != 0)
    return -1;
  {
    dfs_meta want;
    const char *blob;
    want = tu_meta(file->meta.version);
    blob = file->meta.version == 1 ? BLOB1 : BLOB2;
    if ((file->meta.version == 1 || file->meta.version == 2) &&
        file->blob_len == strlen(blob) && memcmp(file->blob, blob, file->blob_len) == 0 &&
        !strcmp(file->meta.key_id, want.key_id) && !strcmp(file->meta.alg, want.alg) &&
        !strcmp(file->meta.iv, want.iv) && !strcmp(file->meta.tag, want.tag) &&
        !strcmp(file->meta.schema_id, want.schema_id) &&
        !strcmp(file->meta.writer_id, want.writer_id) &&
        !strcmp(file->meta.database, want.database) &&
        !strcmp(file->meta.entity_key, want.entity_key) &&
        file->meta.timestamp_sec == want.timestamp_sec &&
        file->meta.timestamp_nsec == want.timestamp_nsec)
      v = (int)file->meta.version;
  }
  dfs_file_free(file);
  return v;
}

/* 1 / 2: template version; 0 not found; -1 other. */
static int tpl_version(dfs_storage *st)
{
  void *buf = NULL;
  size_t len = 0;
  int rc = dfs_template_read(st, TPL, &buf, &len), v = -1;
  if (rc == DFS_ENOTFOUND)
    return 0;
  if (rc != 0)
    return -1;
  if (len == strlen(TPL1) && !memcmp(buf, TPL1, len))
    v = 1;
  else if (len == strlen(TPL2) && !memcmp(buf, TPL2, len))
    v = 2;
  dfs_free(buf);
  return v;
}

/* 1 if the entity's lock file can be locked exclusively right now by a
 * separate open file description (so nobody holds it), 0 if it is held,
 * 1 too if there is no lock file at all (nothing can be held). */
static int lock_is_free(const char *base, const char *id)
{
  char path[4200];
  int fd, r;
  CHECKED_SNPRINTF(path, sizeof path, "%s/files/%s.json.enc.lock", base, id);
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT;
  r = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd); /* releases our probe lock */
  return r;
}

static int file_exists(const char *base, const char *sub, const char *name)
{
  char path[4200];
  struct stat sb;
  CHECKED_SNPRINTF(path, sizeof path, "%s/%s/%s", base, sub, name);
  return lstat(path, &sb) == 0;
}

/* The failure code(s) the operation documents for a failing call. */
static int expected_code(const struct pos *p, int rc)
{
  if (p->kind == DFS_SYS_MALLOC && rc == DFS_ENOMEM)
    return 1;
  switch (p->op) {
  case OP_WRITE:
  case OP_WRITE_NEW:
  case OP_TPL_WRITE:
  case OP_DELETE:
    return rc == DFS_EWRITE;
  case OP_WRITE_IF:
    /* Reading the stored version (the check) fails as a read. */
    return rc == DFS_EWRITE || rc == DFS_EREAD;
  case OP_READ:
  case OP_LIST:
  case OP_LIST_EACH:
  case OP_TPL_READ:
    return rc == DFS_EREAD;
  case OP_LOCK_ACQ:
    return rc == DFS_ELOCK;
  case OP_LOCK_REL:
    return rc == DFS_EUNLOCK;
  case OP_OPEN:
  case OP_OPEN_RECOVER:
    return rc == DFS_EWRITE || rc == DFS_EREAD;
  default:
    return 0;
  }
}

/*
 * Where the tolerated calls of the current sweep are (measured in
 * profile(), since they depend on the filesystem and on the code around).
 */
static struct {
  unsigned long own[DFS_SYS_KIND_COUNT]; /* storage_open: calls before recovery */
  unsigned long gc_fstat_lo, gc_fstat_hi; /* fstat positions of group commit   */
  unsigned long hints;                    /* leading sync_file_range hints     */
} prof;

/*
 * Failing calls an operation tolerates by design, and so must SUCCEED:
 *  - storage_open's recovery is best effort (storage.c: "a store we cannot
 *    tidy is still a store we can read"): any call made by recovery;
 *  - the lock layer reopens a lock file read-only when the read-write open
 *    is refused (EACCES: a lock file created by another user), and retries
 *    an open that met EMFILE after closing its idle cached descriptors
 *    (lockmgr.c flock_io) — so those two errnos at a lock-file open succeed;
 *  - the group commit of directory fsyncs (commit.c) looks its directory
 *    up with an fstat; when that fails it falls back to a plain fsync of
 *    its own — the fsync, not the lookup, is what must not be swallowed;
 *  - in DFS_SYNC_FDATASYNC mode (commit.c), the sync_file_range(WRITE)
 *    calls that start the temps' write-back are hints; the fdatasync
 *    calls after them are what counts (in DFS_SYNC_SFR mode nothing is
 *    tolerated: there the hints are part of durability);
 *  - the write protocol's last step, unlinking the old blob from
 *    .deltafs-tmp after the commit, is best effort (recovery removes a
 *    leftover): the write has succeeded.
 * Returns 1 when success is the right outcome for this position.
 */
static int tolerated(const struct pos *p, int in_recovery)
{
  if (in_recovery)
    return 1;
  if (p->kind == DFS_SYS_FSTAT && p->n >= prof.gc_fstat_lo && p->n <= prof.gc_fstat_hi)
    return 1;
  if (p->kind == DFS_SYS_FDATASYNC && p->n <= prof.hints)
    return 1;
  if (p->op == OP_LOCK_ACQ && p->kind == DFS_SYS_OPEN && (p->err == EACCES || p->err == EMFILE))
    return 1;
  /* The EMFILE retry covers the whole lock-file open, its fstat included. */
  if (p->op == OP_LOCK_ACQ && p->kind == DFS_SYS_FSTAT && p->n == 1 && p->err == EMFILE)
    return 1;
  if (p->op == OP_DELETE && p->kind == DFS_SYS_OPEN && p->err == EACCES)
    return 1; /* its lock-file open falls back to read-only too */
  if ((p->op == OP_WRITE || p->op == OP_WRITE_IF) && p->kind == DFS_SYS_UNLINK &&
      p->n == p->total)
    return 1;
  /* The first fstat of a read (also inside write_if_version's check) only
   * asks the parsed-metadata cache (src/vcache.c); when it fails the read
   * simply opens and parses the metadata. */
  if ((p->op == OP_READ || p->op == OP_WRITE_IF) && p->kind == DFS_SYS_FSTAT && p->n == 1)
    return 1;
  return 0;
}


/* The state after the operation, given its result. */
static void check_state(struct fx *f, const struct pos *p, int succeeded, int after_commit)
{
  int v;
  switch (p->op) {
  case OP_WRITE:
  case OP_WRITE_IF:
    v = ent_version(f->st, ENT);
    CHECK(p, v == (succeeded || after_commit ? 2 : 1),
          succeeded || after_commit ? "the new version does not read" :
                                      "the previous version does not read intact");
    break;
  case OP_WRITE_NEW:
    v = ent_version(f->st, NEW_ID);
    if (succeeded || after_commit) {
      CHECK(p, v == 2, "the new entity does not read");
    } else {
      CHECK(p, v == 0, "a failed write of a new id left something readable");
      CHECK(p, dfs_exists(f->st, NEW_ID) == 0, "a failed write of a new id: exists");
      CHECK(p, !file_exists(f->base, "files", NEW_ID ".json.enc") &&
                   !file_exists(f->base, "files", NEW_ID ".meta.json"),
            "a failed write of a new id left a file at a final name");
    }
    CHECK(p, ent_version(f->st, ENT) == 1, "another entity changed");
    break;
  case OP_READ:
    if (succeeded)
      CHECK(p, f->file && f->file->blob_len == strlen(BLOB1) &&
                   !memcmp(f->file->blob, BLOB1, strlen(BLOB1)) && f->file->meta.version == 1,
            "read returned wrong data");
    else
      CHECK(p, f->file == NULL, "failed read returned a file");
    CHECK(p, ent_version(f->st, ENT) == 1, "the entity does not read after a failed read");
    break;
  case OP_DELETE:
    v = ent_version(f->st, ENT);
    if (succeeded) {
      CHECK(p, v == 0, "deleted entity still reads");
      CHECK(p, !file_exists(f->base, "files", ENT ".json.enc") &&
                   !file_exists(f->base, "files", ENT ".meta.json"),
            "deleted entity left a file");
    } else {
      /* Blob first: before its unlink the entity is intact, after it the
       * entity reads as not found (metadata orphan: fsck removes it).
       * Never anything in between. */
      CHECK(p, v == 1 || v == 0, "failed delete left a corrupt entity");
    }
    CHECK(p, ent_version(f->st, "e2") == 1, "another entity changed");
    break;
  case OP_LIST:
    if (succeeded)
      CHECK(p, f->list && f->list->count == 3, "list did not return the 3 entities");
    else
      CHECK(p, f->list == NULL, "failed list returned a list");
    CHECK(p, ent_version(f->st, ENT) == 1, "entity changed");
    break;
  case OP_LIST_EACH:
    if (succeeded)
      CHECK(p, f->each_count == 3, "list_each did not visit the 3 entities");
    CHECK(p, ent_version(f->st, ENT) == 1, "entity changed");
    break;
  case OP_TPL_WRITE:
    v = tpl_version(f->st);
    CHECK(p, v == (succeeded || after_commit ? 2 : 1),
          succeeded || after_commit ? "the new template does not read" :
                                      "the previous template does not read intact");
    break;
  case OP_TPL_READ:
    if (succeeded)
      CHECK(p, f->tpl && f->tpl_len == strlen(TPL1) && !memcmp(f->tpl, TPL1, f->tpl_len),
            "template read returned wrong data");
    else
      CHECK(p, f->tpl == NULL && f->tpl_len == 0, "failed template read returned data");
    CHECK(p, tpl_version(f->st) == 1, "template does not read after a failed read");
    break;
  case OP_LOCK_ACQ:
    if (succeeded) {
      CHECK(p, !lock_is_free(f->base, ENT), "acquire succeeded but the lock is not held");
      CHECK(p, dfs_lockmgr_release(f->m, ENT) == 0, "release after acquire");
    }
    CHECK(p, lock_is_free(f->base, ENT), "a lock is held after the operation");
    /* The manager is still usable. */
    CHECK(p, dfs_lockmgr_try_acquire(f->m, ENT, DFS_LOCK_EXCLUSIVE) == 0,
          "manager unusable after the failure");
    CHECK(p, !lock_is_free(f->base, ENT), "re-acquire did not hold the lock");
    CHECK(p, dfs_lockmgr_release(f->m, ENT) == 0, "release");
    break;
  case OP_LOCK_REL:
    CHECK(p, lock_is_free(f->base, ENT),
          succeeded ? "released lock still held" : "a failed release left the lock held");
    CHECK(p, dfs_lockmgr_release(f->m, ENT) == 0, "second release (not held) is not DFS_OK");
    CHECK(p, dfs_lockmgr_try_acquire(f->m, ENT, DFS_LOCK_EXCLUSIVE) == 0,
          "manager unusable after the failure");
    CHECK(p, dfs_lockmgr_release(f->m, ENT) == 0, "release");
    break;
  case OP_OPEN:
    if (succeeded) {
      CHECK(p, f->opened != NULL, "open succeeded without a handle");
      write_v(f->opened, ENT, 1);
      CHECK(p, ent_version(f->opened, ENT) == 1, "store opened but unusable");
    } else {
      CHECK(p, f->opened == NULL, "failed open returned a handle");
    }
    break;
  case OP_OPEN_RECOVER:
    if (succeeded) {
      CHECK(p, f->opened != NULL, "open succeeded without a handle");
      /* The crashed write got past its blob swap: it reads as v2, rolled
       * forward or still pending. */
      CHECK(p, ent_version(f->opened, ENT) == 2, "crashed write past its swap does not read");
    } else {
      CHECK(p, f->opened == NULL, "failed open returned a handle");
    }
    break;
  default:
    break;
  }
}

/* Run one armed position (kind n errno) on a fresh fixture and check. */
static void one(enum op op, enum dfs_sys_kind kind, unsigned long n, unsigned long total, int err,
                unsigned long *failures)
{
  struct fx f;
  struct pos p = {op, kind, n, total, err, 0};
  int fds0 = count_fds(), in_recovery, after_commit = 0, succeeded;
  unsigned long fired;

  fx_build(&f, op);
  dfs_fault_arm(DFS_FAULT_MASK(kind), n, DFS_FAULT_FAIL, err, 0);
  p.rc = run(&f, op);
  fired = dfs_fault_fired();
  dfs_fault_count_start(0); /* count nothing, inject nothing */
  if (verbose)
    print_message("%-22s %-8s %2lu/%-2lu %-7s -> %d %s\n", op_names[op],
                  dfs_fault_kind_name(kind), n, total,
                  kind == DFS_SYS_MALLOC ? "ENOMEM" : strerror(err), p.rc,
                  p.rc ? dfs_last_error() : "");
  CHECK(&p, fired == 1, "the armed position was not reached exactly once (non-deterministic?)");
  in_recovery = (op == OP_OPEN_RECOVER || op == OP_OPEN) && n > prof.own[kind];
  succeeded = p.rc == 0;

  if (kind != DFS_SYS_MALLOC && err == EINTR) {
    CHECK(&p, succeeded, "EINTR was not retried: the call must succeed");
  } else if (tolerated(&p, in_recovery)) {
    CHECK(&p, succeeded, "a failure the operation tolerates by design made it fail");
  } else {
    const char *detail = dfs_last_error();
    char want[200];
    CHECK(&p, !succeeded, "the failure was swallowed: the call returned 0");
    CHECK(&p, expected_code(&p, p.rc), "wrong DFS_E* code");
    CHECK(&p, strncmp(detail, op_words[op], strlen(op_words[op])) == 0,
          "dfs_last_error() does not start with the operation");
    if (kind == DFS_SYS_MALLOC) {
      CHECK(&p, strstr(detail, "memory") != NULL, "dfs_last_error() does not say memory");
    } else {
      CHECK(&p, strstr(detail, f.base) != NULL, "dfs_last_error() does not name the path");
      CHECKED_SNPRINTF(want, sizeof want, ": %s", strerror(err));
      CHECK(&p, strstr(detail, want) != NULL, "dfs_last_error() lacks the errno text");
    }
    /* The one documented exception: the fsync of the directory after the
     * commit rename (the last fsync of a write). */
    if (kind == DFS_SYS_FSYNC && n == total &&
        (op == OP_WRITE || op == OP_WRITE_NEW || op == OP_WRITE_IF || op == OP_TPL_WRITE)) {
      after_commit = 1;
      CHECK(&p, p.rc == DFS_EWRITE, "failed fsync of files/ after commit is not DFS_EWRITE");
      if (op != OP_TPL_WRITE)
        CHECK(&p, strstr(detail, "may not be durable") != NULL,
              "failed fsync after the commit does not say the version may not be durable");
    }
    (*failures)++;
  }
  check_state(&f, &p, succeeded, after_commit);
  if (op == OP_OPEN_RECOVER) {
    /* The crashed writer's leftovers are not this call's temps: whatever
     * recovery did or could not do, the next (unfaulted) open finishes it. */
    dfs_storage *again = NULL;
    dfs_storage_close(f.opened);
    f.opened = NULL;
    CHECK(&p, dfs_storage_open(&again, f.base, NULL) == 0, "re-open");
    CHECK(&p, tu_count_temps(f.base) == 0, "recovery left a temp file behind");
    CHECK(&p, ent_version(again, ENT) == 2, "crashed write does not read after recovery");
    dfs_storage_close(again);
  } else if (!succeeded) {
    CHECK(&p, tu_count_temps(f.base) == 0, "a failed call left a temp file");
  }
  CHECK(&p, lock_is_free(f.base, ENT) || op == OP_LOCK_ACQ || op == OP_LOCK_REL,
        "the entity's lock is held after the call");
  if (op == OP_LOCK_ACQ || op == OP_LOCK_REL)
    CHECK(&p, lock_is_free(f.base, ENT), "the entity's lock is held after the call");
  if (succeeded && tu_count_temps(f.base) != 0) {
    /* Only a tolerated best-effort cleanup may leave one; the next open's
     * recovery must remove it. */
    dfs_storage *again = NULL;
    CHECK(&p, tolerated(&p, in_recovery), "a successful call left a temp file");
    dfs_storage_close(f.st);
    f.st = NULL;
    dfs_storage_close(f.opened);
    f.opened = NULL;
    CHECK(&p, dfs_storage_open(&again, f.base, NULL) == 0, "re-open");
    CHECK(&p, tu_count_temps(f.base) == 0, "recovery did not remove a leftover temp");
    dfs_storage_close(again);
  }
  fx_teardown(&f);
  CHECK(&p, count_fds() == fds0, "file descriptor leak");
}

static const int errnos[] = {EIO, ENOSPC, EMFILE, EACCES, EINTR};

static unsigned long count_calls(enum op op, enum dfs_sys_kind kind)
{
  struct fx f;
  struct pos p = {op, kind, 0, 0, 0, 0};
  unsigned long n;
  fx_build(&f, op);
  dfs_fault_count_start(DFS_FAULT_MASK(kind));
  p.rc = run(&f, op);
  n = dfs_fault_count();
  dfs_fault_count_start(0);
  CHECK(&p, p.rc == 0, "the unarmed operation failed");
  check_state(&f, &p, 1, 0);
  fx_teardown(&f);
  return n;
}

/* Calls of kind k made by fn(f) on a fresh fixture of `op`. */
static unsigned long measured[5][DFS_SYS_KIND_COUNT];
enum { M_RECOVER, M_OPEN_CLEAN, M_OPEN_FRESH, M_GROUP_COMMIT, M_DELETE_LOCK_STAGE };

static void measure(enum op op)
{
  for (int k = 0; k < DFS_SYS_KIND_COUNT; k++) {
    for (int what = 0; what < 5; what++) {
      struct fx f;
      dfs_storage *st = NULL;
      char path[4200];
      fx_build(&f, OP_READ);
      switch (what) {
      case M_RECOVER: /* the recovery scan of a clean store */
        dfs_fault_count_start(DFS_FAULT_MASK(k));
        (void)dfs__recover_all(f.st);
        break;
      case M_OPEN_CLEAN:
        dfs_fault_count_start(DFS_FAULT_MASK(k));
        must(dfs_storage_open(&st, f.base, NULL), "open clean");
        break;
      case M_OPEN_FRESH:
        CHECKED_SNPRINTF(path, sizeof path, "%s/fresh-store", f.dir);
        dfs_fault_count_start(DFS_FAULT_MASK(k));
        must(dfs_storage_open(&st, path, NULL), "open fresh");
        break;
      case M_GROUP_COMMIT:
        dfs_fault_count_start(DFS_FAULT_MASK(k));
        assert_int_equal(dfs__commit_dir_fsync(f.st->files_fd), 0);
        break;
      case M_DELETE_LOCK_STAGE: /* delete with only the lock file left */
        CHECKED_SNPRINTF(path, sizeof path, "%s/files/" ENT ".json.enc", f.base);
        assert_int_equal(unlink(path), 0);
        CHECKED_SNPRINTF(path, sizeof path, "%s/files/" ENT ".meta.json", f.base);
        assert_int_equal(unlink(path), 0);
        dfs_fault_count_start(DFS_FAULT_MASK(k));
        must(dfs_delete(f.st, ENT), "delete (lock file only)");
        break;
      }
      measured[what][k] = dfs_fault_count();
      dfs_fault_count_start(0);
      if (k == DFS_SYS_FDATASYNC && what == 0) {
        /* The sync_file_range(WRITE) hints before the fdatasyncs, one per
         * temp (2 per entity write), are tolerated only in FDATASYNC mode. */
        int writes = op == OP_WRITE || op == OP_WRITE_NEW || op == OP_WRITE_IF;
        prof.hints = writes && dfs__commit_mode(f.st->tmp_fd) == DFS_SYNC_FDATASYNC ? 2 : 0;
      }
      dfs_storage_close(st);
      fx_teardown(&f);
    }
    if (op == OP_OPEN)
      prof.own[k] = measured[M_OPEN_FRESH][k] - measured[M_RECOVER][k];
    else if (op == OP_OPEN_RECOVER)
      prof.own[k] = measured[M_OPEN_CLEAN][k] - measured[M_RECOVER][k];
    else
      prof.own[k] = ~0ul;
  }
}

/* Where the group commit's directory lookup (fstat) falls in this op. */
static void place_tolerated(enum op op, enum dfs_sys_kind k, unsigned long total)
{
  unsigned long gc = measured[M_GROUP_COMMIT][DFS_SYS_FSTAT], end = 0;
  prof.gc_fstat_lo = 1;
  prof.gc_fstat_hi = 0;
  if (k != DFS_SYS_FSTAT || gc == 0)
    return;
  switch (op) {
  case OP_WRITE:
  case OP_WRITE_NEW:
  case OP_WRITE_IF:
  case OP_TPL_WRITE:
    end = total; /* the directory fsync is their last synced step */
    break;
  case OP_DELETE:
    end = total - measured[M_DELETE_LOCK_STAGE][DFS_SYS_FSTAT];
    break;
  case OP_OPEN:
    end = prof.own[DFS_SYS_FSTAT]; /* the new layout's fsync, before recovery */
    break;
  default:
    return;
  }
  prof.gc_fstat_lo = end - gc + 1;
  prof.gc_fstat_hi = end;
}

static void sweep(enum op op)
{
  unsigned long positions = 0, failures = 0, runs = 0;
  int fds0 = count_fds();

  measure(op);
  for (int k = 0; k < DFS_SYS_KIND_COUNT; k++) {
    unsigned long total = count_calls(op, (enum dfs_sys_kind)k);
    positions += total;
    place_tolerated(op, (enum dfs_sys_kind)k, total);
    for (unsigned long n = 1; n <= total; n++) {
      if (k == DFS_SYS_MALLOC) {
        one(op, (enum dfs_sys_kind)k, n, total, ENOMEM, &failures);
        runs++;
        continue;
      }
      for (size_t e = 0; e < sizeof errnos / sizeof errnos[0]; e++) {
        one(op, (enum dfs_sys_kind)k, n, total, errnos[e], &failures);
        runs++;
      }
    }
  }
  print_message("%s: %lu call positions, %lu faulted runs, %lu failed cleanly\n", op_names[op],
                positions, runs, failures);
  /* A sweep that never failed anything proved nothing. */
  assert_true(positions > 0);
  assert_true(failures > 0);
  assert_int_equal(count_fds(), fds0);
}

/* One cmocka test per operation, so a failure names it. */
#define SWEEP_TEST(name, op)                                                   \
  static void sweep__##name(void **state)                                      \
  {                                                                            \
    (void)state;                                                               \
    sweep(op);                                                                 \
  }
SWEEP_TEST(write_over_existing, OP_WRITE)
SWEEP_TEST(write_new_id, OP_WRITE_NEW)
SWEEP_TEST(write_if_version, OP_WRITE_IF)
SWEEP_TEST(read, OP_READ)
SWEEP_TEST(delete, OP_DELETE)
SWEEP_TEST(list, OP_LIST)
SWEEP_TEST(list_each, OP_LIST_EACH)
SWEEP_TEST(template_write, OP_TPL_WRITE)
SWEEP_TEST(template_read, OP_TPL_READ)
SWEEP_TEST(lockmgr_acquire, OP_LOCK_ACQ)
SWEEP_TEST(lockmgr_release, OP_LOCK_REL)
SWEEP_TEST(storage_open, OP_OPEN)
SWEEP_TEST(storage_open_with_recovery, OP_OPEN_RECOVER)

/* ---- named regressions (each also covered by a sweep position) ------- */

/* Recovery met a pending metadata it could not read (EIO) and removed it,
 * leaving the crashed write's new blob under the old metadata: a torn pair
 * that no longer read.  It must leave what it cannot judge. */
static void regression__recovery_keeps_pending_meta_it_cannot_read(void **state)
{
  struct fx f;
  dfs_storage *st = NULL;
  (void)state;
  fx_build(&f, OP_OPEN_RECOVER);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_READ), 1, DFS_FAULT_FAIL, EIO, 1 /* sticky */);
  assert_ok(dfs_storage_open(&st, f.base, NULL));
  dfs_fault_count_start(0);
  assert_int_equal(ent_version(st, ENT), 2);
  dfs_storage_close(st);
  assert_ok(dfs_storage_open(&st, f.base, NULL)); /* now it can: rolled forward */
  assert_int_equal(ent_version(st, ENT), 2);
  assert_int_equal(tu_count_temps(f.base), 0);
  dfs_storage_close(st);
  fx_teardown(&f);
}

/* close() interrupted by a signal failed a write whose data was fsync'd. */
static void regression__eintr_from_close_does_not_fail_a_write(void **state)
{
  struct fx f;
  dfs_meta m = tu_meta(2);
  (void)state;
  fx_build(&f, OP_WRITE);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_CLOSE), 1, DFS_FAULT_FAIL, EINTR, 0);
  assert_ok(dfs_write(f.st, ENT, BLOB2, strlen(BLOB2), &m));
  assert_int_equal(dfs_fault_fired(), 1);
  dfs_fault_count_start(0);
  assert_int_equal(ent_version(f.st, ENT), 2);
  fx_teardown(&f);
}

/* dfs_delete returned DFS_ELOCK (undocumented for it, detail "lock ...")
 * when the lock file could not be removed after the entity was. */
static void regression__delete_reports_lock_file_failure_as_ewrite(void **state)
{
  struct fx f;
  (void)state;
  fx_build(&f, OP_DELETE);
  /* delete's only open is the lock file's (the entity files are unlinked
   * by name). */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_OPEN), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_delete(f.st, ENT), DFS_EWRITE);
  dfs_fault_count_start(0);
  assert_true(strncmp(dfs_last_error(), "delete " ENT ":", 11) == 0);
  assert_non_null(strstr(dfs_last_error(), "Input/output error"));
  assert_int_equal(ent_version(f.st, ENT), 0); /* the entity is gone */
  assert_ok(dfs_delete(f.st, ENT));            /* and a retry tidies up */
  fx_teardown(&f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sweep__write_over_existing),
      cmocka_unit_test(sweep__write_new_id),
      cmocka_unit_test(sweep__write_if_version),
      cmocka_unit_test(sweep__read),
      cmocka_unit_test(sweep__delete),
      cmocka_unit_test(sweep__list),
      cmocka_unit_test(sweep__list_each),
      cmocka_unit_test(sweep__template_write),
      cmocka_unit_test(sweep__template_read),
      cmocka_unit_test(sweep__lockmgr_acquire),
      cmocka_unit_test(sweep__lockmgr_release),
      cmocka_unit_test(sweep__storage_open),
      cmocka_unit_test(sweep__storage_open_with_recovery),
      cmocka_unit_test(regression__recovery_keeps_pending_meta_it_cannot_read),
      cmocka_unit_test(regression__eintr_from_close_does_not_fail_a_write),
      cmocka_unit_test(regression__delete_reports_lock_file_failure_as_ewrite),
  };
  verbose = getenv("DFS_FAULTS_VERBOSE") != NULL;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
