/*
 * crash_torture.c — kill -9 torture of the write protocol and recovery.
 *
 * WHAT IT PROVES
 * ==============
 * A process that dies at any instant (SIGKILL: no cleanup, no atexit, its
 * flocks released by the kernel) leaves a store in which, after the next
 * dfs_storage_open (which runs recovery):
 *   - every entity reads as a version that some writer intended, with
 *     exactly that version's bytes — never a torn pair, never garbage;
 *   - a write or delete acknowledged (returned 0) before the kill is not
 *     lost: the entity shows that state, or the one intended by the single
 *     operation that was in flight;
 *   - .deltafs-tmp/ is empty (recovery removed or rolled forward every
 *     leftover of the dead writer);
 *   - dfs_fsck finds nothing but the two leftovers that the protocol leaves
 *     to fsck by design (an interrupted delete's metadata without blob, a
 *     stale lock file), --repair removes them, and fsck is then clean with
 *     every entity still reading the same.
 *
 * HOW
 * ===
 * The writer (a forked child, or `dfs_crash writer` standalone) works on 4
 * entities with writes, overwrites, write_if_version (right and wrong
 * expected version) and deletes, each under the entity's exclusive lock
 * (dfs_lockmgr), as real callers do.  Before each call it appends an INTENT
 * record (entity, version, content hash, length) to a log outside the
 * store, and after the call returns it appends an ACK.  The log is opened
 * O_APPEND and each record is one write(2) of 32 bytes: a process kill
 * cannot lose what write(2) already put in the page cache, so no fsync is
 * needed.  A blob's bytes are a pure function of (entity, version), so the
 * checker recomputes what every version must contain.
 *
 * The checker (check_store; `dfs_crash check` standalone) replays the log:
 * for each entity the allowed states are the last acknowledged (or last
 * checked) state, plus the target of the one INTENT left unacknowledged at
 * the end of the log.  It then opens the store and verifies the list above,
 * and appends BASE records with what it found, so the next writer's run is
 * judged from there.
 *
 * Two modes:
 *   sweep   deterministic.  For each scenario (write of a new id, overwrite,
 *           overwrite with the same bytes, write_if_version on an existing
 *           and a new id, a conflicting write_if_version, delete) the
 *           scenario's operation (lock, call, unlock) is run once to count
 *           its wrapped syscalls (dfs_fault_count_start), then once per
 *           position N with dfs_fault_arm(all, N, DFS_FAULT_KILL): the child
 *           is SIGKILLed exactly before its Nth syscall (the harness asserts
 *           it was), and the store is checked.  For the write scenarios,
 *           every crash state is also recovered by a child that is itself
 *           killed at every syscall position M of dfs_storage_open's
 *           recovery, then checked (a crash during recovery must be as
 *           harmless as one during a write).  The sweep runs WITH fsync
 *           (default options), so the fsync calls are crash positions too.
 *   random  a parent forks writers and SIGKILLs each after a random delay
 *           (0..DFS_CRASH_MAX_DELAY_US, default 3000 us), checking after
 *           every kill.  DFS_CRASH_ITERATIONS kills (default 3000; about half a
 *           minute on a 2-core CI machine).  It uses DFS_OPT_NO_SYNC: a
 *           process crash does not lose the page cache, so fsync changes
 *           nothing about what a killed process leaves, and skipping it
 *           makes thousands of kills affordable.  Power loss (where fsync
 *           matters) is tested elsewhere (the power-loss replay).
 *
 * Usage: dfs_crash sweep [DIR] | random [DIR] | writer DIR LOG SEED |
 *        check DIR LOG.  Without DIR a fresh directory under
 *        $DFS_TEST_DIR, $TMPDIR or /var/tmp is used and removed.
 * Exit: 0 pass, 1 a violation (described on stderr), 2 usage/harness error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deltafs/deltafs.h"
#include "support.h"
#include "fault.h"

#define NENT 4
#define LOG_MAGIC 0x4446434bu /* "DFCK" */

enum rec_type {
  R_INTENT_WRITE = 1, /* a write/write_if_version of (ent, version) */
  R_ACK_WRITE,
  R_INTENT_DELETE,
  R_ACK_DELETE,
  R_INTENT_NOCHANGE, /* a write_if_version with a wrong expected version */
  R_ACK_NOCHANGE,    /* ... that returned DFS_ECONFLICT, as it must */
  R_BASE_PRESENT,    /* the checker found (ent, version) */
  R_BASE_ABSENT      /* the checker found ent absent */
};

struct rec {
  uint32_t magic;
  uint16_t type;
  uint16_t ent;
  int64_t version;
  uint64_t hash; /* FNV-1a of the blob (writes) */
  uint64_t len;
};
_Static_assert(sizeof(struct rec) == 32, "one 32-byte write per record");

enum op { OP_WRITE, OP_WIV, OP_WIV_WRONG, OP_DELETE };

struct ent_state {
  int present;
  int64_t version;
};

static const char *const ent_ids[NENT] = {"ent-0", "ent-1", "ent-2", "ent-3"};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("dfs_crash: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

/* ---- content: a pure function of (ent, version) ------------------------ */

static uint64_t splitmix(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Sizes include 0 and sizes that straddle pages, so a torn or short blob
 * can not pass for another version. */
static size_t content(int ent, int64_t v, char *buf, size_t cap)
{
  static const size_t sizes[] = {0, 1, 37, 512, 4096, 9000};
  /* Keyed by v >> 1: versions 2k and 2k+1 carry the same bytes (with
   * different metadata), so "overwrite with identical bytes" — the case
   * where an old pending metadata would match the new blob — happens. */
  uint64_t s = ((uint64_t)ent << 48) ^ (uint64_t)(v >> 1);
  size_t len = sizes[splitmix(&s) % (sizeof sizes / sizeof sizes[0])];
  len += len ? splitmix(&s) % 64 : 0;
  if (len > cap)
    len = cap;
  for (size_t i = 0; i < len; i += 8) {
    uint64_t r = splitmix(&s);
    size_t n = len - i < 8 ? len - i : 8;
    memcpy(buf + i, &r, n);
  }
  return len;
}

static uint64_t fnv1a(const void *p, size_t n)
{
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

#define BLOB_CAP 16384

/* ---- the log ---------------------------------------------------------- */

static int log_open(const char *path)
{
  /* O_APPEND: each record lands whole at the end, and what write(2)
   * returned for survives the writer's SIGKILL (it is in the page cache). */
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    die("open log %s: %s", path, strerror(errno));
  return fd;
}

static void log_rec(int fd, enum rec_type type, int ent, int64_t v, uint64_t hash, uint64_t len)
{
  struct rec r = {LOG_MAGIC, (uint16_t)type, (uint16_t)ent, v, hash, len};
  if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) {
    fprintf(stderr, "dfs_crash: log write: %s\n", strerror(errno));
    _exit(2);
  }
}

struct model {
  struct ent_state acked[NENT]; /* last acknowledged or checked state   */
  int pending;                  /* the unacknowledged INTENT at the end */
  struct rec intent;
  int64_t max_version;
  uint64_t records;
  uint64_t off; /* bytes of the log applied */
};

/* Read the records appended since the last call (m->off) and apply them:
 * the random mode's log grows by every run, so it is never reread whole.
 * A zeroed model starts from the beginning. */
static void model_update(const char *path, struct model *m)
{
  static struct rec buf[2048];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0) {
    if (errno == ENOENT)
      return;
    die("open log %s: %s", path, strerror(errno));
  }
  while ((n = pread(fd, buf, sizeof buf, (off_t)m->off)) > 0) {
    size_t k = (size_t)n / sizeof buf[0];
    if (k == 0)
      break; /* a partial record at the end: not written yet */
    for (size_t i = 0; i < k; i++) {
      const struct rec r = buf[i];
      if (r.magic != LOG_MAGIC || r.ent >= NENT)
        die("log %s: bad record %" PRIu64, path, m->records);
      m->records++;
      if (r.version > m->max_version)
        m->max_version = r.version;
      switch (r.type) {
      case R_INTENT_WRITE:
      case R_INTENT_DELETE:
      case R_INTENT_NOCHANGE:
        m->pending = 1;
        m->intent = r;
        break;
      case R_ACK_WRITE:
      case R_BASE_PRESENT:
        m->acked[r.ent].present = 1;
        m->acked[r.ent].version = r.version;
        m->pending = 0;
        break;
      case R_ACK_DELETE:
      case R_BASE_ABSENT:
        m->acked[r.ent].present = 0;
        m->acked[r.ent].version = 0;
        m->pending = 0;
        break;
      case R_ACK_NOCHANGE:
        m->pending = 0;
        break;
      default:
        die("log %s: bad record type %u", path, r.type);
      }
    }
    m->off += k * sizeof buf[0];
  }
  if (n < 0)
    die("read log %s: %s", path, strerror(errno));
  close(fd);
}

static void model_load(const char *path, struct model *m)
{
  memset(m, 0, sizeof *m);
  model_update(path, m);
}

/* ---- the writer ------------------------------------------------------- */

struct writer {
  dfs_storage *st;
  dfs_lockmgr *lm;
  int logfd;
  int64_t next_version;
};

static void writer_fail(const char *what, int ent, int rc)
{
  fprintf(stderr, "dfs_crash: writer: %s %s: %d (%s): %s\n", what, ent_ids[ent], rc,
          dfs_strerror(rc), dfs_last_error());
  _exit(3);
}

/* The checker verifies entity_key, writer_id and timestamp_sec of what it
 * reads against these. */
static dfs_meta meta_for(int ent, int64_t v)
{
  dfs_meta m = tu_meta(v);
  m.writer_id = "dfs_crash";
  m.timestamp_sec = 1700000000 + v;
  m.entity_key = ent_ids[ent];
  return m;
}

/* One operation, exactly as a careful caller does it: exclusive lock, read
 * the version when the op needs it, log the intent, call, log the ack,
 * unlock.  Any unexpected result ends the writer with exit status 3. */
static void do_op(struct writer *w, int ent, enum op op)
{
  static char blob[BLOB_CAP];
  const char *id = ent_ids[ent];
  int64_t cur = 0, v;
  size_t len;
  int rc;
  dfs_meta m;

  if ((rc = dfs_lockmgr_acquire(w->lm, id, DFS_LOCK_EXCLUSIVE)) < 0)
    writer_fail("lock", ent, rc);
  if (op == OP_WIV || op == OP_WIV_WRONG) {
    rc = dfs_version(w->st, id, &cur);
    if (rc == DFS_ENOTFOUND)
      cur = 0;
    else if (rc < 0)
      writer_fail("version", ent, rc);
  }
  switch (op) {
  case OP_WRITE:
  case OP_WIV:
    v = w->next_version++;
    len = content(ent, v, blob, sizeof blob);
    m = meta_for(ent, v);
    log_rec(w->logfd, R_INTENT_WRITE, ent, v, fnv1a(blob, len), len);
    rc = op == OP_WRITE ? dfs_write(w->st, id, blob, len, &m)
                        : dfs_write_if_version(w->st, id, blob, len, &m, cur);
    if (rc < 0)
      writer_fail(op == OP_WRITE ? "write" : "write_if_version", ent, rc);
    log_rec(w->logfd, R_ACK_WRITE, ent, v, fnv1a(blob, len), len);
    break;
  case OP_WIV_WRONG:
    v = w->next_version++;
    len = content(ent, v, blob, sizeof blob);
    m = meta_for(ent, v);
    log_rec(w->logfd, R_INTENT_NOCHANGE, ent, v, fnv1a(blob, len), len);
    rc = dfs_write_if_version(w->st, id, blob, len, &m, cur + 1000);
    if (rc != DFS_ECONFLICT)
      writer_fail("write_if_version with a wrong version (expected a conflict)", ent, rc);
    log_rec(w->logfd, R_ACK_NOCHANGE, ent, v, 0, 0);
    break;
  case OP_DELETE:
    log_rec(w->logfd, R_INTENT_DELETE, ent, 0, 0, 0);
    if ((rc = dfs_delete(w->st, id)) < 0)
      writer_fail("delete", ent, rc);
    log_rec(w->logfd, R_ACK_DELETE, ent, 0, 0, 0);
    break;
  }
  if ((rc = dfs_lockmgr_release(w->lm, id)) < 0)
    writer_fail("unlock", ent, rc);
}

static void writer_open(struct writer *w, const char *dir, const char *logpath, unsigned flags,
                        int64_t next_version)
{
  dfs_options o = DFS_OPTIONS_INIT;
  int rc;
  o.flags = flags;
  if ((rc = dfs_storage_open(&w->st, dir, &o)) < 0) {
    fprintf(stderr, "dfs_crash: writer: open %s: %s\n", dir, dfs_last_error());
    _exit(3);
  }
  if ((rc = dfs_lockmgr_new(&w->lm, w->st)) < 0) {
    fprintf(stderr, "dfs_crash: writer: lockmgr: %s\n", dfs_last_error());
    _exit(3);
  }
  w->logfd = log_open(logpath);
  w->next_version = next_version;
}

/* The random mix: mostly writes, a fair share of deletes. */
static void random_op(struct writer *w, uint64_t *rng)
{
  uint64_t r = splitmix(rng);
  int ent = (int)(r % NENT), p = (int)((r >> 8) % 100);
  enum op op = p < 45 ? OP_WRITE : p < 70 ? OP_WIV : p < 75 ? OP_WIV_WRONG : OP_DELETE;
  do_op(w, ent, op);
}

/* ---- the checker ------------------------------------------------------ */

struct stats {
  uint64_t checks, mid_op, new_state, old_state, fsck_leftovers;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("dfs_crash: VIOLATION: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return -1;
}

static int count_dir(const char *dir, const char *sub)
{
  char p[4096];
  DIR *d;
  struct dirent *e;
  int n = 0;
  snprintf(p, sizeof p, "%s/%s", dir, sub);
  if (!(d = opendir(p)))
    return -1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

struct fsck_seen {
  int bad;
  int leftovers;
  const struct ent_state *actual;
};

static int ent_index(const char *id)
{
  for (int i = 0; i < NENT; i++)
    if (id && strcmp(id, ent_ids[i]) == 0)
      return i;
  return -1;
}

/* After a crash and recovery, the only findings allowed are what the
 * protocol leaves to fsck: a stale lock file, and the metadata of an
 * interrupted delete (of an entity that now reads as absent). */
static int fsck_cb(const dfs_fsck_finding *f, void *payload)
{
  struct fsck_seen *s = payload;
  int e = ent_index(f->id);
  if (f->kind == DFS_FSCK_STALE_LOCK ||
      (f->kind == DFS_FSCK_META_NO_BLOB && e >= 0 && !s->actual[e].present)) {
    s->leftovers++;
    return 0;
  }
  fail("fsck: %s [%s] %s/%s: %s", dfs_fsck_kind_name(f->kind), dfs_fsck_status_name(f->status),
       f->dir, f->name, f->detail);
  s->bad++;
  return 0;
}

static int read_all_ents(dfs_storage *st, const struct model *m, struct ent_state *actual,
                         const char *when)
{
  static char want[BLOB_CAP];
  for (int e = 0; e < NENT; e++) {
    dfs_file *f = NULL;
    int rc = dfs_read(st, ent_ids[e], &f), ok = 0;
    const struct ent_state *a = &m->acked[e];
    int in_flight = m->pending && m->intent.ent == e;

    if (rc == DFS_ENOTFOUND) {
      actual[e].present = 0;
      actual[e].version = 0;
      ok = !a->present || (in_flight && m->intent.type == R_INTENT_DELETE);
      if (!ok)
        return fail("%s: %s reads as absent; acknowledged state is version %" PRId64
                    "%s",
                    when, ent_ids[e], a->version, in_flight ? " (an op was in flight)" : "");
      continue;
    }
    if (rc < 0)
      return fail("%s: read %s: %s: %s", when, ent_ids[e], dfs_strerror(rc), dfs_last_error());
    actual[e].present = 1;
    actual[e].version = f->meta.version;
    ok = (a->present && a->version == f->meta.version) ||
         (in_flight && m->intent.type == R_INTENT_WRITE && m->intent.version == f->meta.version);
    if (!ok) {
      dfs_file_free(f);
      return fail("%s: %s reads as version %" PRId64 ", allowed: %s %" PRId64 "%s", when,
                  ent_ids[e], actual[e].version, a->present ? "version" : "absent",
                  a->present ? a->version : 0, in_flight ? " or the in-flight op's target" : "");
    }
    {
      size_t len = content(e, f->meta.version, want, sizeof want);
      if (f->blob_len != len || memcmp(f->blob, want, len) != 0 ||
          strcmp(f->meta.entity_key, ent_ids[e]) != 0 ||
          strcmp(f->meta.writer_id, "dfs_crash") != 0 ||
          f->meta.timestamp_sec != 1700000000 + f->meta.version) {
        dfs_file_free(f);
        return fail("%s: %s version %" PRId64 ": blob or metadata is not what that version "
                    "wrote",
                    when, ent_ids[e], actual[e].version);
      }
    }
    dfs_file_free(f);
  }
  return 0;
}

static int run_fsck(const char *dir, unsigned flags, struct fsck_seen *seen,
                    dfs_fsck_summary *sum)
{
  dfs_fsck_options o = DFS_FSCK_OPTIONS_INIT;
  int rc;
  o.flags = flags | DFS_FSCK_NO_SYNC;
  o.fn = fsck_cb;
  o.payload = seen;
  rc = dfs_fsck(dir, &o, sum);
  if (rc < 0)
    return fail("fsck %s: %s", dir, dfs_last_error());
  return 0;
}

/* m: the model of the log so far (updated here); zeroed for a new log. */
static int check_store(const char *dir, const char *logpath, struct stats *stats,
                       struct model *mp)
{
  dfs_options o = DFS_OPTIONS_INIT;
  struct ent_state actual[NENT], again[NENT];
  struct fsck_seen seen = {0, 0, actual};
  dfs_fsck_summary sum;
  dfs_id_list *l = NULL;
  dfs_storage *st;
  struct model m;
  int rc, n, logfd, present = 0;

  model_update(logpath, mp);
  m = *mp;
  o.flags = DFS_OPT_NO_SYNC;
  if ((rc = dfs_storage_open(&st, dir, &o)) < 0)
    return fail("open %s: %s", dir, dfs_last_error());
  stats->checks++;
  if ((n = count_dir(dir, ".deltafs-tmp")) != 0) {
    dfs_storage_close(st);
    return fail("after recovery %s/.deltafs-tmp holds %d entries", dir, n);
  }
  if (read_all_ents(st, &m, actual, "after recovery") < 0) {
    dfs_storage_close(st);
    return -1;
  }
  if (m.pending) {
    int e = m.intent.ent;
    stats->mid_op++;
    if (m.intent.type == R_INTENT_WRITE
            ? actual[e].present && actual[e].version == m.intent.version
            : m.intent.type == R_INTENT_DELETE && !actual[e].present && m.acked[e].present)
      stats->new_state++;
    else
      stats->old_state++;
  }
  if ((rc = dfs_list(st, &l)) < 0) {
    dfs_storage_close(st);
    return fail("list: %s", dfs_last_error());
  }
  for (int e = 0; e < NENT; e++)
    present += actual[e].present;
  for (size_t i = 0; i < l->count; i++) {
    int e = ent_index(l->ids[i]);
    if (e < 0 || !actual[e].present) {
      fail("list shows %s, which does not read", l->ids[i]);
      rc = -1;
    }
  }
  if (rc == 0 && (int)l->count != present)
    rc = fail("list shows %zu entities, %d read", l->count, present);
  dfs_list_free(l);
  dfs_storage_close(st);
  if (rc < 0)
    return -1;

  /* fsck: only the by-design leftovers; --repair removes them; then clean. */
  if (run_fsck(dir, 0, &seen, &sum) < 0 || seen.bad)
    return -1;
  stats->fsck_leftovers += (uint64_t)seen.leftovers;
  if (seen.leftovers) {
    if (run_fsck(dir, DFS_FSCK_REPAIR, &seen, &sum) < 0 || seen.bad)
      return -1;
    if (sum.remaining)
      return fail("fsck --repair left %" PRIu64 " problems", sum.remaining);
    seen.leftovers = 0;
    if (run_fsck(dir, 0, &seen, &sum) < 0 || seen.bad)
      return -1;
    if (seen.leftovers || sum.problems)
      return fail("fsck is not clean after --repair");
    if ((rc = dfs_storage_open(&st, dir, &o)) < 0)
      return fail("open %s: %s", dir, dfs_last_error());
    rc = read_all_ents(st, &m, again, "after fsck --repair");
    dfs_storage_close(st);
    if (rc < 0)
      return -1;
    for (int e = 0; e < NENT; e++)
      if (again[e].present != actual[e].present || again[e].version != actual[e].version)
        return fail("fsck --repair changed what %s reads", ent_ids[e]);
  }
  /* The new baseline. */
  logfd = log_open(logpath);
  for (int e = 0; e < NENT; e++)
    log_rec(logfd, actual[e].present ? R_BASE_PRESENT : R_BASE_ABSENT, e, actual[e].version, 0,
            0);
  close(logfd);
  return 0;
}

/* ---- process plumbing ------------------------------------------------- */


/* Wait for a child; 0 if SIGKILLed, 1 if it exited 0, else -1 (message). */
static int reap(pid_t pid, const char *what)
{
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      die("waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
    return 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 1;
  fprintf(stderr, "dfs_crash: %s: child ended with %s %d\n", what,
          WIFSIGNALED(status) ? "signal" : "status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  return -1;
}

static char *scratch_dir(const char *tag)
{
  const char *tmp = getenv("DFS_TEST_DIR");
  char *p;
  if (!tmp)
    tmp = getenv("TMPDIR");
  if (!tmp)
    tmp = "/var/tmp";
  if (asprintf(&p, "%s/dfs-crash-%s-XXXXXX", tmp, tag) < 0 || !mkdtemp(p))
    die("cannot create a scratch directory under %s", tmp);
  return p;
}

/* ---- sweep ------------------------------------------------------------ */

struct scenario {
  const char *name;
  int setup_versions; /* ent 0 gets this many writes first (0: absent)      */
  int setup_delete;   /* ... then is deleted (a lock file may stay)           */
  enum op op;         /* the operation under test, on ent 0                   */
  int same_bytes;     /* write the same bytes as the current version         */
  int recovery_sweep; /* also kill recovery at every position                 */
};

static const struct scenario scenarios[] = {
    {"write new id", 0, 0, OP_WRITE, 0, 1},
    {"overwrite", 2, 0, OP_WRITE, 0, 1},
    {"overwrite, same bytes", 1, 0, OP_WRITE, 1, 1},
    {"write_if_version existing", 1, 0, OP_WIV, 0, 1},
    {"write_if_version new id", 0, 0, OP_WIV, 0, 0},
    {"write_if_version conflict", 1, 0, OP_WIV_WRONG, 0, 0},
    {"write after delete", 1, 1, OP_WRITE, 0, 0},
    {"delete", 2, 0, OP_DELETE, 0, 0},
};

struct sweep_ctx {
  const char *dir;
  char log[4200];
  unsigned flags;
  int recovery; /* run the recovery crash points of scenarios that ask */
  struct stats stats;
  uint64_t op_points, recovery_points;
};

/* Fresh store + log in the state the scenario starts from. */
static void scenario_setup(struct sweep_ctx *c, const struct scenario *s)
{
  struct writer w;
  pid_t pid;
  tu_rmrf(c->dir);
  if (mkdir(c->dir, 0755) < 0)
    die("mkdir %s: %s", c->dir, strerror(errno));
  /* The setup is not under test: no fsync (a process kill cannot undo it).
   * It runs in a child too, so that the harness process never holds
   * a store open (or lock descriptors) across the forks that follow. */
  if ((pid = fork()) < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    /* Starting at version 2 makes the operation under test write version
     * 3, whose bytes equal version 2's (see content()); starting at 1 the
     * next version always has other bytes. */
    writer_open(&w, c->dir, c->log, DFS_OPT_NO_SYNC, s->same_bytes ? 2 : 3);
    for (int i = 0; i < s->setup_versions; i++)
      do_op(&w, 0, OP_WRITE);
    if (s->setup_delete) {
      do_op(&w, 1, OP_WRITE);
      do_op(&w, 0, OP_DELETE);
    }
    _exit(0);
  }
  if (reap(pid, "setup") != 1)
    die("scenario %s: setup failed", s->name);
}

/* End of a sweep child that survived: with count_pipe >= 0 report how
 * many syscalls it made (the counting run), then exit 0. */
static void child_done(int count_pipe)
{
  if (count_pipe >= 0) {
    unsigned long n = dfs_fault_count();
    if (write(count_pipe, &n, sizeof n) != (ssize_t)sizeof n)
      _exit(2);
  }
  dfs_fault_disarm();
  _exit(0);
}

/* The operation under test in a child: kill it at syscall `nth` (0: do
 * not arm), or with count_pipe >= 0 report how many syscalls it made. */
static pid_t run_op(struct sweep_ctx *c, const struct scenario *s, unsigned long nth,
                    int count_pipe)
{
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    struct writer w;
    struct model m;
    model_load(c->log, &m);
    writer_open(&w, c->dir, c->log, c->flags, m.max_version + 1);
    if (count_pipe >= 0)
      dfs_fault_count_start(DFS_FAULT_MASK_ALL);
    else if (nth)
      dfs_fault_arm(DFS_FAULT_MASK_ALL, nth, DFS_FAULT_KILL, 0, 0);
    do_op(&w, 0, s->op);
    child_done(count_pipe);
  }
  return pid;
}

static unsigned long count_op(struct sweep_ctx *c, const struct scenario *s)
{
  int p[2];
  unsigned long n = 0;
  pid_t pid;
  if (pipe(p) < 0)
    die("pipe: %s", strerror(errno));
  pid = run_op(c, s, 0, p[1]);
  close(p[1]);
  if (read(p[0], &n, sizeof n) != (ssize_t)sizeof n)
    n = 0;
  close(p[0]);
  if (reap(pid, "count") != 1 || n == 0)
    die("scenario %s: counting run failed", s->name);
  return n;
}

/* dfs_storage_open (recovery) in a child, killed at syscall nth, or
 * (count_pipe >= 0) counted. */
static pid_t run_recovery(struct sweep_ctx *c, unsigned long nth, int count_pipe)
{
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    dfs_options o = DFS_OPTIONS_INIT;
    dfs_storage *st;
    o.flags = c->flags;
    if (count_pipe >= 0)
      dfs_fault_count_start(DFS_FAULT_MASK_ALL);
    else
      dfs_fault_arm(DFS_FAULT_MASK_ALL, nth, DFS_FAULT_KILL, 0, 0);
    if (dfs_storage_open(&st, c->dir, &o) < 0)
      _exit(3);
    child_done(count_pipe);
  }
  return pid;
}

static int sweep_scenario(struct sweep_ctx *c, const struct scenario *s)
{
  unsigned long n;
  uint64_t rec_points = 0;

  snprintf(c->log, sizeof c->log, "%s.log", c->dir);
  unlink(c->log);
  scenario_setup(c, s);
  n = count_op(c, s);
  for (unsigned long nth = 1; nth <= n + 1; nth++) {
    unsigned long m = 0;
    int r;
    unlink(c->log);
    scenario_setup(c, s);
    r = reap(run_op(c, s, nth, -1), s->name);
    if (r < 0 || (nth <= n && r != 0) || (nth > n && r != 1)) {
      fprintf(stderr, "dfs_crash: %s: crash point %lu of %lu was %s\n", s->name, nth, n,
              r == 1 ? "not reached (the path is not deterministic?)" : "an error");
      return -1;
    }
    c->op_points++;
    /* Recovery has work only when the crash left something in
     * .deltafs-tmp/; killing a recovery that only scans an empty directory
     * proves nothing new, so those states are skipped. */
    if (c->recovery && s->recovery_sweep && nth <= n && count_dir(c->dir, ".deltafs-tmp") > 0) {
      /* How many syscalls does recovering this state take? */
      int p[2];
      pid_t pid;
      if (pipe(p) < 0)
        die("pipe: %s", strerror(errno));
      pid = run_recovery(c, 0, p[1]);
      close(p[1]);
      if (read(p[0], &m, sizeof m) != (ssize_t)sizeof m)
        m = 0;
      close(p[0]);
      if (reap(pid, "recovery count") != 1)
        return -1;
      /* The counting run recovered the store: rebuild the crash state
       * for each kill inside recovery. */
      for (unsigned long k = 1; k <= m; k++) {
        unlink(c->log);
        scenario_setup(c, s);
        if (reap(run_op(c, s, nth, -1), s->name) != 0)
          return -1;
        if (reap(run_recovery(c, k, -1), "recovery") != 0) {
          fprintf(stderr, "dfs_crash: %s: recovery crash point %lu of %lu not reached\n",
                  s->name, k, m);
          return -1;
        }
        rec_points++;
        if (check_store(c->dir, c->log, &c->stats, &(struct model){0}) < 0) {
          fprintf(stderr, "dfs_crash: %s: killed at syscall %lu of %lu, then recovery killed "
                          "at syscall %lu of %lu\n",
                  s->name, nth, n, k, m);
          return -1;
        }
      }
      unlink(c->log);
      scenario_setup(c, s);
      if (reap(run_op(c, s, nth, -1), s->name) != 0)
        return -1;
    }
    if (check_store(c->dir, c->log, &c->stats, &(struct model){0}) < 0) {
      fprintf(stderr, "dfs_crash: %s: killed at syscall %lu of %lu\n", s->name, nth, n);
      return -1;
    }
  }
  c->recovery_points += rec_points;
  printf("  %-28s %3lu syscalls -> %3lu crash points (+1 complete run)", s->name, n, n);
  if (c->recovery && s->recovery_sweep)
    printf(", %4" PRIu64 " recovery crash points", rec_points);
  printf("\n");
  return 0;
}

/* Two passes.  With fsync (the real path: every fsync is a crash point),
 * the operations only: an fsync costs milliseconds on a real disk, and
 * thousands of recovery runs would take minutes.  With DFS_OPT_NO_SYNC
 * (what a process kill leaves is the same: the page cache survives it),
 * the operations again and every recovery crash point of every state that
 * left something to recover. */
static int cmd_sweep(const char *dir)
{
  struct sweep_ctx c;
  int rc = 0;
  uint64_t total_op = 0, total_rec = 0, total_checks = 0;
  memset(&c, 0, sizeof c);
  c.dir = dir;
  for (int pass = 0; pass < 2 && rc == 0; pass++) {
    memset(&c.stats, 0, sizeof c.stats);
    c.op_points = c.recovery_points = 0;
    c.flags = pass == 0 ? 0 : DFS_OPT_NO_SYNC;
    c.recovery = pass == 1;
    printf("crash sweep, %s (deterministic: SIGKILL before each syscall):\n",
           pass == 0 ? "with fsync" : "DFS_OPT_NO_SYNC, with recovery crash points");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0] && rc == 0; i++)
      rc = sweep_scenario(&c, &scenarios[i]);
    printf("  => %" PRIu64 " operation crash points, %" PRIu64 " recovery crash points, %" PRIu64
           " checks; %" PRIu64 " kills mid-operation: %" PRIu64 " showed the new state, %" PRIu64
           " the old; %" PRIu64 " by-design leftovers repaired by fsck\n",
           c.op_points, c.recovery_points, c.stats.checks, c.stats.mid_op, c.stats.new_state,
           c.stats.old_state, c.stats.fsck_leftovers);
    total_op += c.op_points;
    total_rec += c.recovery_points;
    total_checks += c.stats.checks;
  }
  printf("crash sweep: %" PRIu64 " crash points (%" PRIu64 " in operations, %" PRIu64
         " in recovery), %" PRIu64 " checks: %s\n",
         total_op + total_rec, total_op, total_rec, total_checks, rc == 0 ? "PASS" : "FAIL");
  tu_rmrf(dir);
  unlink(c.log);
  return rc == 0 ? 0 : 1;
}

/* ---- random ----------------------------------------------------------- */

static long env_long(const char *name, long dflt)
{
  const char *s = getenv(name);
  char *end;
  long v;
  if (!s || !*s)
    return dflt;
  v = strtol(s, &end, 10);
  if (*end || v < 0)
    die("%s=%s: not a number", name, s);
  return v;
}

static int cmd_random(const char *dir)
{
  long iters = env_long("DFS_CRASH_ITERATIONS", 3000);
  long maxdelay = env_long("DFS_CRASH_MAX_DELAY_US", 3000);
  uint64_t rng = (uint64_t)env_long("DFS_CRASH_SEED", (long)time(NULL));
  char logpath[4200];
  struct stats stats = {0};
  struct timespec t0, t1;
  int rc = 0;
  long exited = 0;

  snprintf(logpath, sizeof logpath, "%s.log", dir);
  unlink(logpath);
  printf("crash random: %ld kills, delays 0..%ld us, seed %" PRIu64
         " (DFS_CRASH_ITERATIONS, DFS_CRASH_MAX_DELAY_US, DFS_CRASH_SEED)\n",
         iters, maxdelay, rng);
  fflush(stdout);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct model m = {0};
  for (long i = 0; i < iters; i++) {
    uint64_t seed = splitmix(&rng);
    long delay = maxdelay ? (long)(splitmix(&rng) % (uint64_t)(maxdelay + 1)) : 0;
    pid_t pid;
    int r;

    model_update(logpath, &m);
    if ((pid = fork()) < 0)
      die("fork: %s", strerror(errno));
    if (pid == 0) {
      struct writer w;
      writer_open(&w, dir, logpath, DFS_OPT_NO_SYNC, m.max_version + 1);
      for (;;)
        random_op(&w, &seed);
    }
    if (delay)
      usleep((useconds_t)delay);
    kill(pid, SIGKILL);
    r = reap(pid, "writer");
    if (r < 0) {
      rc = -1;
      break;
    }
    exited += r;
    if (check_store(dir, logpath, &stats, &m) < 0) {
      fprintf(stderr, "dfs_crash: random: after kill %ld (delay %ld us)\n", i + 1, delay);
      rc = -1;
      break;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("crash random: %" PRIu64 " kills checked in %.1f s; %" PRIu64
         " landed mid-operation (%" PRIu64 " showed the new state, %" PRIu64
         " the old); %" PRIu64 " by-design leftovers repaired by fsck: %s\n",
         stats.checks, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
         stats.mid_op, stats.new_state, stats.old_state, stats.fsck_leftovers,
         rc == 0 ? "PASS" : "FAIL");
  if (rc == 0) {
    tu_rmrf(dir);
    unlink(logpath);
  } else {
    fprintf(stderr, "dfs_crash: store kept for inspection: %s (log %s)\n", dir, logpath);
  }
  (void)exited;
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";
  char *own = NULL;
  int rc;

  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(mode, "writer") && argc == 5) {
    struct writer w;
    struct model m;
    uint64_t seed = strtoull(argv[4], NULL, 10);
    model_load(argv[3], &m);
    writer_open(&w, argv[2], argv[3], DFS_OPT_NO_SYNC, m.max_version + 1);
    for (;;)
      random_op(&w, &seed);
  }
  if (!strcmp(mode, "check") && argc == 4) {
    struct stats s = {0};
    struct model m = {0};
    rc = check_store(argv[2], argv[3], &s, &m);
    printf("check: %s\n", rc == 0 ? "PASS" : "FAIL");
    return rc == 0 ? 0 : 1;
  }
  if ((strcmp(mode, "sweep") && strcmp(mode, "random")) || argc > 3) {
    fprintf(stderr, "usage: dfs_crash sweep [DIR] | random [DIR] | writer DIR LOG SEED | "
                    "check DIR LOG\n");
    return 2;
  }
  if (argc == 3) {
    if (mkdir(argv[2], 0755) < 0 && errno != EEXIST)
      die("mkdir %s: %s", argv[2], strerror(errno));
    own = strdup(argv[2]);
  } else {
    own = scratch_dir(mode);
  }
  if (!strcmp(mode, "sweep")) {
    char *store;
    if (asprintf(&store, "%s/store", own) < 0)
      die("out of memory");
    rc = cmd_sweep(store);
    free(store);
  } else {
    char *store;
    if (asprintf(&store, "%s/store", own) < 0)
      die("out of memory");
    if (mkdir(store, 0755) < 0 && errno != EEXIST)
      die("mkdir %s: %s", store, strerror(errno));
    rc = cmd_random(store);
    free(store);
  }
  if (rc == 0 && argc == 2)
    rmdir(own);
  free(own);
  return rc;
}
