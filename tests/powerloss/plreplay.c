/*
 * plreplay.c — rebuild the disk after a power cut at every point of a
 * recorded log, mount it, and check deltafs's invariants.
 *
 *   plreplay [options] BASE_IMAGE LOG SCRATCH_DIR
 *
 * BASE_IMAGE is the image as it was when recording started (after mkfs),
 * LOG what plfuse recorded while the file system (ext4, or XFS with
 * --fstype xfs) was mounted on it and plworkload ran (pl_log.h).  The harness design is described at the top of powerloss.sh;
 * this file is the replay half.
 *
 * CRASH STATES
 * ------------
 * A disk with a volatile write cache promises only this: a write that
 * completed before a cache flush completed is on the platter; any write
 * after the last completed flush may or may not be, independently of the
 * others.  The log splits into flush intervals: interval k holds the writes
 * after the k-th flush and before the (k+1)-th (interval 0 starts at the
 * beginning of the log, the last one runs to its end).  For every
 * interval, with D = the image with every write before the interval
 * applied and w1..wn the interval's writes, the replay checks:
 *
 *   (a) D alone                      — every unflushed write lost;
 *   (b) D + w1..wj, for j = 1..n     — the disk got the first j (a cut
 *                                      between two writes, in order);
 *   (c) D + a random subset of w1..wn, --subsets of them (seeded), or all
 *       subsets that are not prefixes when there are that few — the cache
 *       wrote back out of order.
 *
 * EXPECTATIONS
 * ------------
 * The workload's markers (plworkload.c) are in the same log.  For a state
 * of an interval, with R = the position of the flush that ends it and C =
 * the last included write:
 *   - an operation acknowledged before R must have taken effect.  (An ack
 *     follows the flush that made its write durable; no flush lies inside
 *     the interval, so that flush is the one that starts it or an earlier
 *     one, and all the writes it covered are in D.)  So each entity must read as the effect of its last
 *     operation acknowledged before R (absent if none, or a delete) ...
 *   - ... or as the effect of its operation in flight: begun before C and
 *     not acknowledged before R.  An entity has at most one operation in
 *     flight (the workload's threads own disjoint entities).
 * "Reads as version v" means dfs_read returns 0 with metadata version v
 * and entity_key id, and the blob is byte for byte the content the
 * workload wrote as version v (plcommon.c): never torn, empty or garbage.
 * Further, after dfs_storage_open (which runs recovery):
 *   - dfs_read never returns DFS_ECORRUPT (or any error but ENOTFOUND);
 *   - dfs_list lists exactly the entities that read;
 *   - .deltafs-tmp/ is empty (nobody is alive to own a temp);
 *   - templates follow the same rules as entities;
 *   - dfs_fsck (when the library has it) finds nothing but the leftovers
 *     the protocol documents as expected after a crash (see fsck_cb).
 * A state that the file system cannot mount (journal/log replay fails) is
 * reported too: it means the harness built a state a real disk cannot
 * produce.
 *
 * Each state is written to a scratch image, attached to a loop device,
 * mounted (ext4 replays its journal, XFS its log), checked in a forked
 * child (a crash of the library on a bad state is a finding, not the end
 * of the run), unmounted and detached.  A failed check is confirmed by
 * rebuilding and checking the state once more (run_state).  Optionally the
 * file system's own checker (`e2fsck -fn` for ext4, `xfs_repair -n` for
 * XFS) checks the image after.
 *
 * Options:
 *   --seed N             seed for the random subsets (default 1)
 *   --subsets N          random subsets per interval (default 3)
 *   --max-states N       stop after N states (default: all)
 *   --expect-violation   the run is a self-check of a deliberately broken
 *                        build: stop at the first violation and exit 0;
 *                        exit 1 if none was found
 *   --fstype ext4|xfs    the file system the log was recorded on (default
 *                        ext4): the type for mount(2) and the checker
 *   --fsck-every N       run the file system checker (e2fsck -fn, or
 *                        xfs_repair -n) on every Nth state (0: never);
 *                        --e2fsck-every N is the same option
 *   --verbose            one line per state (numbered)
 *   --from N             skip (count, but do not build) the states before N
 *   --state N            only write state N (as numbered by --verbose) to
 *                        SCRATCH_DIR/state.img and exit, for inspection
 *
 * POWER LOSS DURING RECOVERY (test powerloss_recovery; powerloss.sh
 * --recovery-replay drives these three modes):
 *   --scan-tmp           do not check: build and mount every state and
 *                        print "tmpscan N meta M other K rollfwd F": the
 *                        temps .deltafs-tmp/ holds BEFORE recovery (M
 *                        metadata temps, K others), and how many metadata
 *                        temps recovery then rolls forward (it is run on
 *                        the scratch image, unchecked), to pick the
 *                        states recovery has work in
 *   --recover-only STORE (no positional arguments) dfs_storage_open +
 *                        dfs_storage_close on a mounted STORE: the process
 *                        whose disk writes the harness records through
 *                        plfuse as a second, "recovery" log
 *   --base-state N --nested-log LOG2
 *                        replay LOG2 (recorded while recovery ran on
 *                        state N of LOG, from state N's image) exactly as
 *                        LOG is replayed above — every flush interval, its
 *                        prefixes, --subsets random subsets — on top of
 *                        state N's image, and check every nested state
 *                        against state N's own expectations (R and C of
 *                        state N): a power cut in the middle of recovery
 *                        must leave a store that a second recovery turns
 *                        into one that state N itself allows.  Exit 3 if
 *                        LOG2 has no flush (the recording proves nothing).
 * Exit: 0 no violation (or, with --expect-violation, one found), 1
 * violations (or none found with --expect-violation), 2 usage, 3 harness
 * error (cannot read the log, loop device, mount point).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deltafs/deltafs.h"
#ifdef PL_HAVE_FSCK
#include "deltafs/fsck.h"
#endif
#include "pl_log.h"
#include "plcommon.h"

/* ---- the log ---------------------------------------------------------- */

struct rec {
  uint32_t type;
  uint32_t len;
  uint64_t off;
  const unsigned char *data; /* PL_WRITE / PL_MARK payload, in the mmap    */
};

/* One workload operation, from its B and A markers. */
struct op {
  char kind;     /* 'W' entity write, 'D' delete, 'T' template write      */
  char id[64];
  int64_t ver;   /* 0 for a delete                                        */
  size_t begin;  /* index of the B marker                                 */
  size_t ack;    /* index of the A marker; SIZE_MAX if never acked        */
};

static struct rec *recs;
static size_t nrecs;
static uint64_t img_size;
static struct op *ops;
static size_t nops;

/* The distinct ids the workload touched, entities and templates apart. */
struct idset {
  char (*v)[64];
  size_t n;
};
static struct idset ent_ids, tpl_ids;

static void die(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("plreplay: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static void *xrealloc(void *p, size_t n)
{
  p = realloc(p, n);
  if (!p)
    die(3, "out of memory");
  return p;
}

static void idset_add(struct idset *s, const char *id)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i], id) == 0)
      return;
  s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
  snprintf(s->v[s->n++], 64, "%s", id);
}

/* The marker at record index i: "B|A W|D|T id ver". */
static void parse_mark(size_t i)
{
  char line[256], ba, kind, id[64];
  long long ver = 0;
  size_t n = recs[i].len < sizeof line - 1 ? recs[i].len : sizeof line - 1;

  memcpy(line, recs[i].data, n);
  line[n] = '\0';
  if (strcmp(line, "END") == 0 || strncmp(line, "B C ", 4) == 0 || strncmp(line, "A C ", 4) == 0)
    return; /* the end, and the calibration (checked in main) */
  if (sscanf(line, "%c %c %63s %lld", &ba, &kind, id, &ver) != 4 ||
      (ba != 'B' && ba != 'A') || (kind != 'W' && kind != 'D' && kind != 'T'))
    die(3, "bad marker at record %zu: \"%s\"", i, line);
  if (ba == 'B') {
    /* Each entity has at most one operation in flight (plworkload.c). */
    for (size_t j = 0; j < nops; j++)
      if (ops[j].ack == SIZE_MAX && (ops[j].kind == 'T') == (kind == 'T') &&
          strcmp(ops[j].id, id) == 0)
        die(3, "marker at record %zu (\"%s\"): %s already has an operation in flight", i,
            line, id);
    ops = xrealloc(ops, (nops + 1) * sizeof *ops);
    ops[nops] = (struct op){.kind = kind, .ver = ver, .begin = i, .ack = SIZE_MAX};
    snprintf(ops[nops].id, sizeof ops[nops].id, "%s", id);
    nops++;
    idset_add(kind == 'T' ? &tpl_ids : &ent_ids, id);
  } else {
    size_t j = nops;
    while (j > 0 && !(ops[j - 1].kind == kind && strcmp(ops[j - 1].id, id) == 0 &&
                      ops[j - 1].ver == ver && ops[j - 1].ack == SIZE_MAX))
      j--;
    if (j == 0)
      die(3, "marker at record %zu (\"%s\") closes no operation in flight", i, line);
    ops[j - 1].ack = i;
  }
}

static void load_log(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  const unsigned char *map, *p, *end;

  if (fd < 0 || fstat(fd, &sb) < 0)
    die(3, "%s: %s", path, strerror(errno));
  if ((size_t)sb.st_size < 16)
    die(3, "%s: not a power-loss log (too short)", path);
  map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED)
    die(3, "%s: mmap: %s", path, strerror(errno));
  close(fd);
  if (memcmp(map, PL_MAGIC, 8) != 0)
    die(3, "%s: not a power-loss log (bad magic)", path);
  memcpy(&img_size, map + 8, sizeof img_size);
  p = map + 16;
  end = map + sb.st_size;
  while (p < end) {
    struct pl_rec r;
    if ((size_t)(end - p) < sizeof r)
      die(3, "%s: truncated record header", path);
    memcpy(&r, p, sizeof r);
    p += sizeof r;
    recs = (nrecs & (nrecs - 1)) == 0 ? xrealloc(recs, (nrecs ? 2 * nrecs : 1024) * sizeof *recs)
                                      : recs;
    recs[nrecs] = (struct rec){r.type, r.len, r.off, NULL};
    if (r.type == PL_WRITE || r.type == PL_MARK) {
      if ((size_t)(end - p) < r.len)
        die(3, "%s: truncated record payload", path);
      recs[nrecs].data = p;
      p += r.len;
    } else if (r.type != PL_FLUSH && r.type != PL_ZERO) {
      die(3, "%s: unknown record type 0x%x", path, r.type);
    }
    if ((r.type == PL_WRITE || r.type == PL_ZERO) && r.off + r.len > img_size)
      die(3, "%s: write past the end of the image", path);
    nrecs++;
  }
  for (size_t i = 0; i < nrecs; i++)
    if (recs[i].type == PL_MARK)
      parse_mark(i);
}

static void apply(unsigned char *img, const struct rec *r)
{
  if (r->type == PL_WRITE)
    memcpy(img + r->off, r->data, r->len);
  else if (r->type == PL_ZERO)
    memset(img + r->off, 0, r->len);
}

static void apply_fd(int fd, const struct rec *r)
{
  static const unsigned char zeros[65536];
  if (r->type == PL_WRITE) {
    if (pwrite(fd, r->data, r->len, (off_t)r->off) != (ssize_t)r->len)
      die(3, "write state image: %s", strerror(errno));
  } else if (r->type == PL_ZERO) {
    for (uint64_t done = 0; done < r->len;) {
      size_t n = r->len - done < sizeof zeros ? (size_t)(r->len - done) : sizeof zeros;
      if (pwrite(fd, zeros, n, (off_t)(r->off + done)) != (ssize_t)n)
        die(3, "write state image: %s", strerror(errno));
      done += n;
    }
  }
}

/* ---- expectations ----------------------------------------------------- */

/* What an id may read as: up to two outcomes; version 0 means absent. */
struct allowed {
  int64_t v[2];
  int n;
};

static void allowed_add(struct allowed *a, int64_t v)
{
  for (int i = 0; i < a->n; i++)
    if (a->v[i] == v)
      return;
  a->v[a->n++] = v;
}

/* See EXPECTATIONS at the top: R = required limit, C = last included
 * record (the cut). */
static struct allowed expect(const char *id, int tpl, size_t R, size_t C)
{
  struct allowed a = {{0, 0}, 0};
  int64_t last = 0;
  for (size_t i = 0; i < nops; i++) {
    const struct op *o = &ops[i];
    if ((o->kind == 'T') != tpl || strcmp(o->id, id) != 0)
      continue;
    if (o->ack < R)
      last = o->kind == 'D' ? 0 : o->ver;
  }
  allowed_add(&a, last);
  for (size_t i = 0; i < nops; i++) {
    const struct op *o = &ops[i];
    if ((o->kind == 'T') == tpl && strcmp(o->id, id) == 0 && o->begin < C && o->ack >= R)
      allowed_add(&a, o->kind == 'D' ? 0 : o->ver);
  }
  return a;
}

static int was_written(const char *id, int tpl, int64_t v)
{
  for (size_t i = 0; i < nops; i++)
    if ((ops[i].kind == 'T') == tpl && ops[i].kind != 'D' && ops[i].ver == v &&
        strcmp(ops[i].id, id) == 0)
      return 1;
  return 0;
}

static void fmt_allowed(const struct allowed *a, char *buf, size_t size)
{
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < a->n && n < size; i++) {
    if (a->v[i])
      n += (size_t)snprintf(buf + n, size - n, "%sv%lld", i ? " or " : "", (long long)a->v[i]);
    else
      n += (size_t)snprintf(buf + n, size - n, "%sabsent", i ? " or " : "");
  }
}

/* ---- the check (runs in a forked child on the mounted state) ---------- */

static int violations_in_child;
static const char *state_name;

static void violation(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("VIOLATION [%s]: ", state_name);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
  violations_in_child++;
}

static int in_list(const dfs_id_list *l, const char *id)
{
  for (size_t i = 0; l && i < l->count; i++)
    if (strcmp(l->ids[i], id) == 0)
      return 1;
  return 0;
}

static void check_entity(dfs_storage *st, const char *id, const dfs_id_list *list, size_t R,
                         size_t C)
{
  struct allowed a = expect(id, 0, R, C);
  char want[128];
  dfs_file *f = NULL;
  int64_t got = 0;
  int rc = dfs_read(st, id, &f);

  fmt_allowed(&a, want, sizeof want);
  if (rc == DFS_ENOTFOUND) {
    got = 0;
  } else if (rc < 0) {
    violation("entity %s: dfs_read: %s (%s); expected %s", id, dfs_strerror(rc), dfs_last_error(),
              want);
    return;
  } else {
    got = f->meta.version;
    if (!was_written(id, 0, got)) {
      violation("entity %s: reads as version %lld, which was never written; expected %s", id,
                (long long)got, want);
      dfs_file_free(f);
      return;
    }
    if (!f->meta.entity_key || strcmp(f->meta.entity_key, id) != 0 ||
        !pl_content_is(id, got, f->blob, f->blob_len)) {
      violation("entity %s: version %lld has the wrong content (blob of %zu bytes, expected "
                "%zu; torn or garbage)",
                id, (long long)got, f->blob_len, pl_content_len(id, got));
      dfs_file_free(f);
      return;
    }
    dfs_file_free(f);
  }
  {
    int ok = 0;
    for (int i = 0; i < a.n; i++)
      ok |= a.v[i] == got;
    if (!ok) {
      if (got == 0)
        violation("entity %s: not found; expected %s (an acknowledged write was lost)", id, want);
      else
        violation("entity %s: reads as v%lld; expected %s%s", id, (long long)got, want,
                  got < a.v[0] || a.v[0] == 0 ? " (an acknowledged write or delete was lost)"
                                              : "");
    }
  }
  if ((got != 0) != in_list(list, id))
    violation("entity %s: %s by dfs_list but %s", id, got ? "not listed" : "listed",
              got ? "it reads" : "it does not read");
}

static void check_template(dfs_storage *st, const char *sid, const dfs_id_list *list, size_t R,
                           size_t C)
{
  struct allowed a = expect(sid, 1, R, C);
  char want[128];
  void *data = NULL;
  size_t len = 0;
  int64_t got = 0;
  int rc = dfs_template_read(st, sid, &data, &len);

  fmt_allowed(&a, want, sizeof want);
  if (rc == DFS_ENOTFOUND) {
    got = 0;
  } else if (rc < 0) {
    violation("template %s: dfs_template_read: %s (%s)", sid, dfs_strerror(rc), dfs_last_error());
    return;
  } else {
    /* A template has no version field: find which written version it is. */
    got = -1;
    for (size_t i = 0; i < nops && got < 0; i++)
      if (ops[i].kind == 'T' && strcmp(ops[i].id, sid) == 0 &&
          pl_content_is(sid, ops[i].ver, data, len))
        got = ops[i].ver;
    dfs_free(data);
    if (got < 0) {
      violation("template %s: content (%zu bytes) is no version that was written (torn or "
                "garbage); expected %s",
                sid, len, want);
      return;
    }
  }
  {
    int ok = 0;
    for (int i = 0; i < a.n; i++)
      ok |= a.v[i] == got;
    /* Two versions may share one content only if both are empty; accept
     * the state then if any allowed version is empty too. */
    for (int i = 0; i < a.n && !ok && got > 0; i++)
      ok |= a.v[i] > 0 && pl_content_len(sid, a.v[i]) == 0 && pl_content_len(sid, got) == 0;
    if (!ok)
      violation("template %s: reads as %s%lld; expected %s", sid, got ? "v" : "absent ",
                (long long)got, want);
  }
  if ((got != 0) != in_list(list, sid))
    violation("template %s: %s by dfs_template_list", sid, got ? "not listed" : "listed");
}

/* Lock files present in files/ before recovery ran (see fsck_cb). */
static char **locks_before;
static size_t nlocks_before;
static int strict_fsck; /* default 1: every fsck finding is a violation (PL_STRICT_FSCK=0: notes) */

static void snapshot_locks(const char *store)
{
  char path[4096];
  DIR *d;
  struct dirent *de;
  if ((size_t)snprintf(path, sizeof path, "%s/files", store) >= sizeof path)
    return;
  d = opendir(path);
  if (!d)
    return; /* no store yet: nothing before recovery */
  while ((de = readdir(d)) != NULL) {
    size_t n = strlen(de->d_name);
    if (n > 5 && strcmp(de->d_name + n - 5, ".lock") == 0) {
      locks_before = xrealloc(locks_before, (nlocks_before + 1) * sizeof *locks_before);
      locks_before[nlocks_before] = strdup(de->d_name);
      if (!locks_before[nlocks_before])
        die(3, "out of memory");
      nlocks_before++;
    }
  }
  closedir(d);
}

#ifdef PL_HAVE_FSCK
/* What fsck may find after a crash and dfs_storage_open's recovery:
 *   - metadata without a blob: a delete interrupted between its unlinks
 *     (storage.c, DELETE: it reads as "not found"; fsck --repair removes
 *     it);
 *   - a stale lock file that was already on disk before recovery: a
 *     delete's lock-file unlink is not fsync'd, so a crash can bring it
 *     back (harmless; fsck --repair removes it);
 * are crash leftovers the protocol documents: notes.  A stale lock file
 * that was NOT there before recovery was created by recovery itself (it
 * locks the entity to roll a pending write forward or remove it, and
 * leaves the lock file when the entity does not exist): reported as
 * "recovery-leftover": a violation (recover.c now removes such a lock
 * file; PL_STRICT_FSCK=0 turns it back into a note).  Every other finding
 * is a violation. */
static int fsck_cb(const dfs_fsck_finding *f, void *payload)
{
  (void)payload;
  if (f->status == DFS_FSCK_INFO)
    return 0;
  if (f->kind == DFS_FSCK_META_NO_BLOB) {
    printf("note [%s]: fsck: %s %s/%s (crash leftover of a delete)\n", state_name,
           dfs_fsck_kind_name(f->kind), f->dir, f->name);
    return 0;
  }
  if (f->kind == DFS_FSCK_STALE_LOCK) {
    int before = 0;
    for (size_t i = 0; i < nlocks_before; i++)
      before |= strcmp(locks_before[i], f->name) == 0;
    if (before) {
      printf("note [%s]: fsck: %s %s/%s (crash leftover of a delete)\n", state_name,
             dfs_fsck_kind_name(f->kind), f->dir, f->name);
      return 0;
    }
    if (!strict_fsck) {
      printf("note [%s]: fsck: recovery-leftover: %s %s/%s was created by recovery and left "
             "behind\n",
             state_name, dfs_fsck_kind_name(f->kind), f->dir, f->name);
      return 0;
    }
  }
  violation("fsck: %s (%s) %s/%s: %s", dfs_fsck_kind_name(f->kind),
            dfs_fsck_status_name(f->status), f->dir, f->name, f->detail);
  return 0;
}

static void check_fsck(const char *store)
{
  dfs_fsck_options o = DFS_FSCK_OPTIONS_INIT;
  dfs_fsck_summary sum;
  int rc;
  o.fn = fsck_cb;
  rc = dfs_fsck(store, &o, &sum);
  if (rc < 0)
    violation("fsck: %s (%s)", dfs_strerror(rc), dfs_last_error());
}
#endif

static int check_state(const char *store, size_t R, size_t C)
{
  dfs_storage *st = NULL;
  dfs_id_list *list = NULL, *tlist = NULL;
  char tmpdir[4096];
  DIR *d;
  int rc;

  snapshot_locks(store);
  /* Recovery runs here, as in any process that opens the store. */
  rc = dfs_storage_open(&st, store, NULL);
  if (rc < 0) {
    violation("dfs_storage_open: %s (%s)", dfs_strerror(rc), dfs_last_error());
    return 1;
  }
  if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s/.deltafs-tmp", store) >= sizeof tmpdir)
    die(3, "path too long: %s", store);
  d = opendir(tmpdir);
  if (!d) {
    violation("open %s: %s", tmpdir, strerror(errno));
  } else {
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
        violation("temp file left after recovery: .deltafs-tmp/%s", de->d_name);
    closedir(d);
  }
  if ((rc = dfs_list(st, &list)) < 0)
    violation("dfs_list: %s (%s)", dfs_strerror(rc), dfs_last_error());
  if ((rc = dfs_template_list(st, &tlist)) < 0)
    violation("dfs_template_list: %s (%s)", dfs_strerror(rc), dfs_last_error());
  for (size_t i = 0; list && i < list->count; i++) {
    int known = 0;
    for (size_t j = 0; j < ent_ids.n; j++)
      known |= strcmp(list->ids[i], ent_ids.v[j]) == 0;
    if (!known)
      violation("dfs_list: unknown entity %s", list->ids[i]);
  }
  for (size_t i = 0; i < ent_ids.n; i++)
    check_entity(st, ent_ids.v[i], list, R, C);
  for (size_t i = 0; i < tpl_ids.n; i++)
    check_template(st, tpl_ids.v[i], tlist, R, C);
  dfs_list_free(list);
  dfs_list_free(tlist);
  dfs_storage_close(st);
#ifdef PL_HAVE_FSCK
  check_fsck(store);
#endif
  fflush(stdout);
  return violations_in_child ? 1 : 0;
}

/* ---- loop devices and mounts ----------------------------------------- */

static const char *mnt_dir;
static char loop_dev[64];
static int mounted;

/* Attach img to a free loop device with AUTOCLEAR (it detaches itself when
 * the mount lets go of it) and return its descriptor.  Other processes may
 * race us for the same free device: EBUSY means try the next. */
static int loop_attach(const char *img)
{
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    die(3, "/dev/loop-control: %s", strerror(errno));
  for (int attempt = 0; attempt < 100; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE), lfd, ffd;
    struct loop_config cfg;
    if (n < 0)
      die(3, "LOOP_CTL_GET_FREE: %s", strerror(errno));
    snprintf(loop_dev, sizeof loop_dev, "/dev/loop%d", n);
    lfd = open(loop_dev, O_RDWR | O_CLOEXEC);
    if (lfd < 0) {
      usleep(10000); /* the device node may not exist yet */
      continue;
    }
    ffd = open(img, O_RDWR | O_CLOEXEC);
    if (ffd < 0)
      die(3, "%s: %s", img, strerror(errno));
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (uint32_t)ffd;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
      close(ffd);
      close(ctl);
      return lfd;
    }
    close(ffd);
    close(lfd);
    if (errno != EBUSY)
      die(3, "LOOP_CONFIGURE %s: %s", loop_dev, strerror(errno));
    usleep(1000);
  }
  die(3, "no free loop device");
  return -1;
}

static void unmount_state(void)
{
  if (!mounted)
    return;
  for (int i = 0; i < 100; i++) {
    if (umount2(mnt_dir, 0) == 0) {
      mounted = 0;
      return;
    }
    if (errno != EBUSY)
      break;
    usleep(20000);
  }
  die(3, "umount %s: %s", mnt_dir, strerror(errno));
}

/* die() may exit while a state is mounted: unmount on the way out — in
 * the parent only (a forked checker that dies must not unmount it). */
static pid_t parent_pid;

static void unmount_at_exit(void)
{
  if (mounted && getpid() == parent_pid)
    (void)umount2(mnt_dir, MNT_DETACH);
}

static void on_signal(int sig)
{
  /* Leave no mount behind (the loop device detaches itself on umount). */
  if (mounted && getpid() == parent_pid)
    (void)umount2(mnt_dir, MNT_DETACH);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ---- driver ----------------------------------------------------------- */

struct stats {
  unsigned long states, kind[3], bad_states, unmountable, e2fsck_dirty, transient;
};

static int verbose, expect_violation, e2fsck_every;
static const char *fstype = "ext4"; /* --fstype: for mount(2) and the checker */
static const char *fsck_name = "e2fsck -fn";
static unsigned long only_state; /* --state N: build state N only */
static unsigned long from_state;  /* --from N: skip the states before N */
static unsigned long max_states = ULONG_MAX;
static const char *scratch;
static char state_img[4096], store_path[4096];
static struct stats S;
static int scan_tmp;                /* --scan-tmp */
static unsigned long capture_state; /* --base-state N */
static unsigned char *cap_img;      /* state N's image, once captured */
static size_t cap_R, cap_C;         /* ... and its expectations */
static char cap_name[768];

/* The file system's own checker, read-only, on the unmounted state image:
 * e2fsck -fn (ext4) or xfs_repair -n (XFS; -f: the "device" is a file).
 * Both exit 0 for a clean file system. */
static int run_e2fsck(void)
{
  pid_t pid = fork();
  int status;
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (strcmp(fstype, "xfs") == 0)
      execlp("xfs_repair", "xfs_repair", "-n", "-f", state_img, (char *)NULL);
    else
      execlp("e2fsck", "e2fsck", "-fn", state_img, (char *)NULL);
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Write the state (D + the chosen writes) to state_img. */
static void build_state(const unsigned char *D, const size_t *idx, size_t n)
{
  /* Rewritten in place (no O_TRUNC): freeing and reallocating 64 MiB per
   * state costs more than the copy. */
  int fd = open(state_img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    die(3, "%s: %s", state_img, strerror(errno));
  for (uint64_t done = 0; done < img_size;) {
    ssize_t w = pwrite(fd, D + done, (size_t)(img_size - done), (off_t)done);
    if (w <= 0)
      die(3, "write %s: %s", state_img, strerror(errno));
    done += (uint64_t)w;
  }
  for (size_t i = 0; i < n; i++)
    apply_fd(fd, &recs[idx[i]]);
  close(fd);
}

/* Mount state_img, run the check in a forked child with its output
 * captured into *out (malloc'd), unmount.  Returns 0 clean, 1 violations,
 * 2 unmountable. */
static int mount_and_check(size_t R, size_t C, const char *name, char **out)
{
  int lfd, status, pfd[2];
  pid_t pid;
  FILE *mem;
  size_t memlen = 0;
  char buf[4096];
  ssize_t got;

  *out = NULL;
  lfd = loop_attach(state_img);
  /* Drop whatever the device's buffer cache may still hold from an
   * earlier binding of this loop device number (by us or by anyone):
   * the filesystem must see exactly the state's bytes. */
  if (ioctl(lfd, BLKFLSBUF, 0) < 0)
    die(3, "BLKFLSBUF %s: %s", loop_dev, strerror(errno));
  if (mount(loop_dev, mnt_dir, fstype, 0, NULL) < 0) {
    int e = errno;
    close(lfd);
    mem = open_memstream(out, &memlen);
    if (mem) {
      fprintf(mem, "UNMOUNTABLE [%s]: mount %s: %s\n", name, fstype, strerror(e));
      fclose(mem);
    }
    return 2;
  }
  mounted = 1;
  close(lfd); /* the mount holds the device; AUTOCLEAR detaches it on umount */

  if (pipe2(pfd, O_CLOEXEC) < 0)
    die(3, "pipe: %s", strerror(errno));
  fflush(stdout);
  pid = fork();
  if (pid < 0)
    die(3, "fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(pfd[1], 1);
    state_name = name;
    alarm(120); /* a hang in the library on a bad state is a finding too */
    _exit(check_state(store_path, R, C));
  }
  close(pfd[1]);
  mem = open_memstream(out, &memlen);
  if (!mem)
    die(3, "out of memory");
  while ((got = read(pfd[0], buf, sizeof buf)) != 0) {
    if (got < 0) {
      if (errno == EINTR)
        continue;
      die(3, "read check output: %s", strerror(errno));
    }
    fwrite(buf, 1, (size_t)got, mem);
  }
  close(pfd[0]);
  if (waitpid(pid, &status, 0) < 0)
    die(3, "waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status))
    fprintf(mem, "VIOLATION [%s]: the check died of signal %d (crash or hang in the library)\n",
            name, WTERMSIG(status));
  fclose(mem);
  unmount_state();
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* The temps in STORE/.deltafs-tmp/: metadata temps (e.<id>.meta.json.S)
 * and the others.  -1 if the directory cannot be read. */
static int count_tmp(const char *store, unsigned long *meta, unsigned long *other)
{
  char tmpdir[4096];
  DIR *d;
  struct dirent *de;
  *meta = *other = 0;
  if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s/.deltafs-tmp", store) >= sizeof tmpdir)
    return -1;
  d = opendir(tmpdir);
  if (!d)
    return -1;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (strncmp(de->d_name, "e.", 2) == 0 && strstr(de->d_name, ".meta.json."))
      (*meta)++;
    else
      (*other)++;
  }
  closedir(d);
  return 0;
}

/* Read a small file whole (malloc'd; NULL if it cannot be read). */
static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rbe");
  char *buf = NULL;
  if (!f)
    return NULL;
  buf = malloc(65536);
  if (buf)
    *len = fread(buf, 1, 65536, f);
  fclose(f);
  return buf;
}

/* The metadata temps of STORE/.deltafs-tmp/ (id and content), for telling
 * afterwards which ones recovery rolled forward. */
struct mtemp {
  char id[64];
  char *data;
  size_t len;
};

static size_t snapshot_meta_temps(const char *store, struct mtemp *t, size_t max)
{
  char path[4096];
  DIR *d;
  struct dirent *de;
  size_t n = 0;
  snprintf(path, sizeof path, "%s/.deltafs-tmp", store);
  d = opendir(path);
  if (!d)
    return 0;
  while ((de = readdir(d)) != NULL && n < max) {
    const char *end = strstr(de->d_name, ".meta.json.");
    if (strncmp(de->d_name, "e.", 2) != 0 || !end || end - de->d_name - 2 >= 64)
      continue;
    memset(t[n].id, 0, sizeof t[n].id);
    memcpy(t[n].id, de->d_name + 2, (size_t)(end - de->d_name - 2));
    snprintf(path, sizeof path, "%s/.deltafs-tmp/%s", store, de->d_name);
    t[n].data = slurp(path, &t[n].len);
    if (t[n].data)
      n++;
  }
  closedir(d);
  return n;
}

/* How many of the snapshot temps are now files/<id>.meta.json, byte for
 * byte: rolled forward.  Frees the snapshot. */
static unsigned long count_rolled(const char *store, struct mtemp *t, size_t n)
{
  unsigned long rolled = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096], *cur;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/files/%s.meta.json", store, t[i].id);
    cur = slurp(path, &len);
    rolled += cur && len == t[i].len && memcmp(cur, t[i].data, len) == 0;
    free(cur);
    free(t[i].data);
  }
  return rolled;
}

/* --scan-tmp: mount state_img and report what .deltafs-tmp/ holds before
 * any recovery, then run recovery (in a child, on this scratch image) to
 * tell how many pending metadata temps it rolls forward. */
static void mount_and_scan(const char *name)
{
  int lfd = loop_attach(state_img), status;
  unsigned long meta = 0, other = 0, rolled = 0;
  struct mtemp t[16];
  size_t nt;
  pid_t pid;
  if (ioctl(lfd, BLKFLSBUF, 0) < 0)
    die(3, "BLKFLSBUF %s: %s", loop_dev, strerror(errno));
  if (mount(loop_dev, mnt_dir, fstype, 0, NULL) < 0) {
    printf("tmpscan %lu unmountable [%s]: %s\n", S.states, name, strerror(errno));
    close(lfd);
    return;
  }
  mounted = 1;
  close(lfd);
  if (count_tmp(store_path, &meta, &other) < 0)
    meta = other = 0; /* no store yet */
  nt = snapshot_meta_temps(store_path, t, sizeof t / sizeof t[0]);
  if (nt > 0) {
    fflush(stdout);
    pid = fork();
    if (pid < 0)
      die(3, "fork: %s", strerror(errno));
    if (pid == 0) {
      dfs_storage *st = NULL;
      alarm(120);
      if (dfs_storage_open(&st, store_path, NULL) < 0)
        _exit(1);
      dfs_storage_close(st);
      _exit(0);
    }
    if (waitpid(pid, &status, 0) < 0)
      die(3, "waitpid: %s", strerror(errno));
  }
  rolled = count_rolled(store_path, t, nt);
  printf("tmpscan %lu meta %lu other %lu rollfwd %lu [%s]\n", S.states, meta, other, rolled,
         name);
  unmount_state();
}

/* Build the state, mount, check.  A failed check is confirmed by building
 * the same state again from the log and checking it once more: a state's
 * verdict depends only on its bytes (recovery is deterministic), so a
 * failure that does not repeat came from outside it (the host, the loop
 * driver) and is reported as transient, not as a deltafs violation.
 * Returns 1 if the state had (confirmed) violations. */
static int run_state(const unsigned char *D, const size_t *idx, size_t n, size_t R, size_t C,
                     int kind, const char *name)
{
  char *out = NULL, *out2 = NULL;
  int rc, bad;

  S.states++;
  S.kind[kind]++;
  if (capture_state) {
    /* --base-state N, first pass: keep state N's image and expectations
     * in memory; the nested replay starts from them. */
    if (S.states == capture_state) {
      cap_img = malloc(img_size);
      if (!cap_img)
        die(3, "out of memory");
      memcpy(cap_img, D, img_size);
      for (size_t i = 0; i < n; i++)
        apply(cap_img, &recs[idx[i]]);
      cap_R = R;
      cap_C = C;
      snprintf(cap_name, sizeof cap_name, "%s", name);
    }
    return 0;
  }
  if ((only_state && S.states != only_state) || S.states < from_state)
    return 0;
  build_state(D, idx, n);
  if (scan_tmp) {
    mount_and_scan(name);
    return 0;
  }
  if (only_state) {
    /* --state N: leave the image for a person to mount and inspect. */
    printf("plreplay: state %lu [%s] written to %s (not mounted, not checked)\n", only_state,
           name, state_img);
    printf("plreplay: expected: acknowledged before record %zu, in flight before record %zu\n",
           R, C);
    exit(0);
  }
  rc = mount_and_check(R, C, name, &out);
  if (rc != 0) {
    build_state(D, idx, n);
    if (mount_and_check(R, C, name, &out2) == 0) {
      S.transient++;
      printf("note [%s]: transient: the first check failed, the same state rebuilt passed; "
             "first check said: %.300s\n",
             name, out ? out : "");
      rc = 0;
      fputs(out2 ? out2 : "", stdout); /* its notes */
    } else {
      fputs(out ? out : "", stdout);
      /* Is the file system itself damaged (the image as the second check
       * left it: journal replayed, recovered, cleanly unmounted)?  Tells
       * whether the filesystem, rather than deltafs, is to blame. */
      printf("note [%s]: %s after the check: exit %d (0: %s is clean)\n", name, fsck_name,
             run_e2fsck(), fstype);
    }
  } else {
    fputs(out ? out : "", stdout);
  }
  free(out);
  free(out2);
  bad = rc == 1;
  if (rc == 2)
    S.unmountable++;
  if (rc == 0 && e2fsck_every > 0 && S.states % (unsigned long)e2fsck_every == 0) {
    int e = run_e2fsck();
    if (e != 0) {
      S.e2fsck_dirty++;
      printf("note [%s]: %s exit %d after recovery and unmount\n", name, fsck_name, e);
    }
  }
  if (verbose)
    printf("state %lu [%s]: %s\n", S.states, name,
           bad ? "VIOLATION" : rc == 2 ? "UNMOUNTABLE" : "ok");
  if (bad)
    S.bad_states++;
  return bad;
}

static int done_enough(void)
{
  return S.states >= max_states || (expect_violation && (S.bad_states > 0)) || cap_img;
}

/* Every crash state of the loaded log (CRASH STATES at the top), built on
 * D (which ends as the image with the whole log applied).  With fixed_exp
 * (the nested replay) every state is checked against the expectations
 * (R0, C0) of the base state instead of its own. */
static void replay_log(unsigned char *D, unsigned long seed, unsigned long subsets,
                       int fixed_exp, size_t R0, size_t C0, const char *prefix)
{
  size_t *flushes = NULL, nflush = 0, *w, *pick;

  for (size_t i = 0; i < nrecs; i++)
    if (recs[i].type == PL_FLUSH) {
      flushes = xrealloc(flushes, (nflush + 1) * sizeof *flushes);
      flushes[nflush++] = i;
    }
  w = xrealloc(NULL, (nrecs + 1) * sizeof *w);
  pick = xrealloc(NULL, (nrecs + 1) * sizeof *pick);
  /* Interval k runs from flush k-1 (exclusive; k = 0: the log's start)
   * to flush k (exclusive; k = nflush: the log's end). */
  for (size_t k = 0; k <= nflush && !done_enough(); k++) {
    size_t lo = k == 0 ? 0 : flushes[k - 1] + 1;
    size_t R = k < nflush ? flushes[k] : nrecs;
    size_t n = 0, Cbase = k == 0 ? 0 : flushes[k - 1];
    uint64_t rng = seed * UINT64_C(0x9e3779b97f4a7c15) + k;
    char name[768];

    for (size_t i = lo; i < R; i++)
      if (recs[i].type == PL_WRITE || recs[i].type == PL_ZERO)
        w[n++] = i;
    /* (a) and (b): prefixes of length 0..n. */
    for (size_t j = 0; j <= n && !done_enough(); j++) {
      snprintf(name, sizeof name, "%sinterval %zu (records %zu..%zu), first %zu of %zu writes",
               prefix, k, lo, R, j, n);
      run_state(D, w, j, fixed_exp ? R0 : R, fixed_exp ? C0 : j ? w[j - 1] : Cbase,
                j == 0 ? 0 : 1, name);
    }
    /* (c): subsets that are not prefixes.  There are 2^n - n - 1 of them;
     * when that is at most --subsets, all of them (exhaustive), else
     * --subsets drawn at random (each write kept with probability 1/2). */
    if (n >= 2) {
      uint64_t count = n < 20 ? (UINT64_C(1) << n) - n - 1 : UINT64_MAX;
      int exhaustive = count <= subsets;
      uint64_t bits = 0;
      for (unsigned long s = 0, tried = 0; s < subsets && !done_enough() && tried < 64 * subsets;
           tried++) {
        size_t m = 0, last = Cbase;
        int prefix_only = 1, seen_out = 0;
        if (exhaustive && ++bits >= (UINT64_C(1) << n))
          break;
        for (size_t i = 0; i < n; i++) {
          int in = exhaustive ? (int)((bits >> i) & 1) : (int)(pl_rand(&rng) & 1);
          if (in) {
            pick[m++] = w[i];
            last = w[i];
            if (seen_out)
              prefix_only = 0;
          } else {
            seen_out = 1;
          }
        }
        if (prefix_only)
          continue; /* covered by (a)/(b) */
        {
          int len = snprintf(name, sizeof name,
                             "%sinterval %zu (records %zu..%zu), subset %lu (%zu of %zu writes: "
                             "records",
                             prefix, k, lo, R, s, m, n);
          for (size_t i = 0; i < m && len > 0 && (size_t)len < sizeof name - 16; i++)
            len += snprintf(name + len, sizeof name - (size_t)len, " %zu", pick[i]);
          if (len > 0 && (size_t)len < sizeof name - 2)
            snprintf(name + len, sizeof name - (size_t)len, ")");
        }
        run_state(D, pick, m, fixed_exp ? R0 : R, fixed_exp ? C0 : last, 2, name);
        s++;
      }
    }
    /* Advance D past this interval's writes and flush. */
    for (size_t i = lo; i < R; i++)
      apply(D, &recs[i]);
  }
  free(flushes);
  free(w);
  free(pick);
}

/* --recover-only STORE: the process the harness records as the recovery
 * log. */
static int recover_only(const char *store)
{
  dfs_storage *st = NULL;
  unsigned long m0, o0, m1, o1;
  struct mtemp t[16];
  size_t nt;
  int rc;
  if (count_tmp(store, &m0, &o0) < 0)
    die(3, "%s/.deltafs-tmp: %s", store, strerror(errno));
  nt = snapshot_meta_temps(store, t, sizeof t / sizeof t[0]);
  rc = dfs_storage_open(&st, store, NULL);
  if (rc < 0) {
    printf("plreplay: recover-only: dfs_storage_open: %s (%s)\n", dfs_strerror(rc),
           dfs_last_error());
    return 1;
  }
  dfs_storage_close(st);
  if (count_tmp(store, &m1, &o1) < 0)
    die(3, "%s/.deltafs-tmp: %s", store, strerror(errno));
  printf("plreplay: recover-only: .deltafs-tmp/ held %lu metadata and %lu other temps before "
         "recovery, %lu and %lu after; %lu rolled forward\n",
         m0, o0, m1, o1, count_rolled(store, t, nt));
  return 0;
}

int main(int argc, char **argv)
{
  unsigned long seed = 1, subsets = 3;
  unsigned char *D;
  size_t *flushes = NULL, nflush = 0;
  int argi = 1;
  struct timespec t0, t1;
  const char *nested_log = NULL;

  for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
    const char *a = argv[argi];
    if (strcmp(a, "--seed") == 0 && argi + 1 < argc)
      seed = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(a, "--subsets") == 0 && argi + 1 < argc)
      subsets = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(a, "--max-states") == 0 && argi + 1 < argc)
      max_states = strtoul(argv[++argi], NULL, 0);
    else if ((strcmp(a, "--e2fsck-every") == 0 || strcmp(a, "--fsck-every") == 0) &&
             argi + 1 < argc)
      e2fsck_every = atoi(argv[++argi]);
    else if (strcmp(a, "--fstype") == 0 && argi + 1 < argc) {
      fstype = argv[++argi];
      if (strcmp(fstype, "ext4") == 0)
        fsck_name = "e2fsck -fn";
      else if (strcmp(fstype, "xfs") == 0)
        fsck_name = "xfs_repair -n";
      else
        die(2, "--fstype %s: only ext4 and xfs are supported", fstype);
    }
    else if (strcmp(a, "--state") == 0 && argi + 1 < argc)
      only_state = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(a, "--from") == 0 && argi + 1 < argc)
      from_state = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(a, "--expect-violation") == 0)
      expect_violation = 1;
    else if (strcmp(a, "--verbose") == 0)
      verbose = 1;
    else if (strcmp(a, "--scan-tmp") == 0)
      scan_tmp = 1;
    else if (strcmp(a, "--base-state") == 0 && argi + 1 < argc)
      capture_state = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(a, "--nested-log") == 0 && argi + 1 < argc)
      nested_log = argv[++argi];
    else if (strcmp(a, "--recover-only") == 0 && argi + 1 < argc)
      return recover_only(argv[++argi]);
    else
      die(2, "unknown option %s", a);
  }
  if (argc - argi != 3 || !capture_state != !nested_log)
    die(2, "usage: plreplay [--fstype ext4|xfs] [--seed N] [--subsets N] [--max-states N] "
           "[--fsck-every N] [--expect-violation] [--verbose] [--from N] [--state N] "
           "[--scan-tmp] [--base-state N --nested-log LOG2] BASE_IMAGE LOG SCRATCH_DIR\n"
           "       plreplay --recover-only STORE");
  load_log(argv[argi + 1]);
  scratch = argv[argi + 2];
  snprintf(state_img, sizeof state_img, "%s/state.img", scratch);
  {
    static char m[4096];
    snprintf(m, sizeof m, "%s/mnt", scratch);
    mnt_dir = m;
    if (mkdir(m, 0755) < 0 && errno != EEXIST)
      die(3, "%s: %s", m, strerror(errno));
  }
  if ((size_t)snprintf(store_path, sizeof store_path, "%s/store", mnt_dir) >= sizeof store_path)
    die(2, "path too long: %s", mnt_dir);
  /* Strict by default now that recovery removes the lock file it created
   * for an entity that turned out not to exist; PL_STRICT_FSCK=0 relaxes. */
  strict_fsck = !getenv("PL_STRICT_FSCK") || strcmp(getenv("PL_STRICT_FSCK"), "0") != 0;
  parent_pid = getpid();
  atexit(unmount_at_exit);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  /* D starts as the base image. */
  D = malloc(img_size);
  if (!D)
    die(3, "out of memory for a %llu-byte image", (unsigned long long)img_size);
  {
    int fd = open(argv[argi], O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != img_size)
      die(3, "%s: missing, or not the size the log records", argv[argi]);
    for (uint64_t done = 0; done < img_size;) {
      ssize_t r = pread(fd, D + done, (size_t)(img_size - done), (off_t)done);
      if (r <= 0)
        die(3, "read %s: %s", argv[argi], strerror(errno));
      done += (uint64_t)r;
    }
    close(fd);
  }
  for (size_t i = 0; i < nrecs; i++)
    if (recs[i].type == PL_FLUSH) {
      flushes = xrealloc(flushes, (nflush + 1) * sizeof *flushes);
      flushes[nflush++] = i;
    }
  {
    size_t acked = 0, nwrites = 0;
    for (size_t i = 0; i < nops; i++)
      acked += ops[i].ack != SIZE_MAX;
    for (size_t i = 0; i < nrecs; i++)
      nwrites += recs[i].type == PL_WRITE || recs[i].type == PL_ZERO;
    printf("plreplay: %zu records: %zu writes, %zu flushes, %zu operations (%zu acknowledged), "
           "%zu entities, %zu templates\n",
           nrecs, nwrites, nflush, nops, acked, ent_ids.n, tpl_ids.n);
    if (nflush == 0)
      die(3, "the log has no flush: the loop device's flushes did not reach the recorder, so "
             "the replay would prove nothing");
    if (acked == 0)
      die(3, "the log has no acknowledged operation: the workload did not run");
    /* The workload fsyncs a file of its own between its "B C" and "A C"
     * markers before anything else (plworkload.c): a flush must be logged
     * between them, or flushes are not reaching the recorder and no crash
     * state would mean anything. */
    {
      size_t cb = SIZE_MAX, ca = SIZE_MAX, f = 0;
      for (size_t i = 0; i < nrecs; i++)
        if (recs[i].type == PL_MARK && recs[i].len >= 3 && recs[i].data[2] == 'C')
          *(recs[i].data[0] == 'B' ? &cb : &ca) = i;
      if (cb == SIZE_MAX || ca == SIZE_MAX || ca < cb)
        die(3, "the log lacks the workload's calibration markers");
      while (f < nflush && flushes[f] < cb)
        f++;
      if (f == nflush || flushes[f] > ca)
        die(3, "no flush was logged for the workload's calibration fsync (records %zu..%zu): "
               "flushes do not reach the recorder, so the replay would prove nothing",
            cb, ca);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  replay_log(D, seed, subsets, 0, 0, 0, "");
  if (capture_state) {
    /* The nested replay: LOG2 on top of state N's image, every state
     * checked against state N's expectations. */
    size_t nf = 0, nw = 0;
    uint64_t size0 = img_size;
    char prefix[64];
    if (!cap_img)
      die(3, "--base-state %lu: the log has only %lu states", capture_state, S.states);
    recs = NULL; /* the first log's records are done with (ops keep their indices) */
    nrecs = 0;
    load_log(nested_log);
    if (img_size != size0)
      die(3, "%s: recorded on a %llu-byte image, not this log's", nested_log,
          (unsigned long long)img_size);
    for (size_t i = 0; i < nrecs; i++) {
      nf += recs[i].type == PL_FLUSH;
      nw += recs[i].type == PL_WRITE || recs[i].type == PL_ZERO;
    }
    printf("plreplay: base state %lu [%s]: acknowledged before record %zu, in flight before "
           "record %zu\n",
           capture_state, cap_name, cap_R, cap_C);
    printf("plreplay: recovery log %s: %zu records: %zu writes, %zu flushes\n", nested_log,
           nrecs, nw, nf);
    if (nf == 0)
      die(3, "the recovery log has no flush: a power cut during recovery cannot be replayed "
             "from it (the recording proves nothing)");
    snprintf(prefix, sizeof prefix, "base state %lu, recovery log ", capture_state);
    memset(&S, 0, sizeof S);
    free(D);
    D = cap_img;
    cap_img = NULL; /* done_enough() */
    capture_state = 0;
    replay_log(D, seed, subsets, 1, cap_R, cap_C, prefix);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("plreplay: %lu crash states (%lu all-lost, %lu prefixes, %lu subsets) in %.1f s: "
         "%lu with violations, %lu unmountable, %lu transient%s\n",
         S.states, S.kind[0], S.kind[1], S.kind[2],
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, S.bad_states,
         S.unmountable, S.transient,
         e2fsck_every ? "" : strcmp(fstype, "xfs") == 0 ? " (xfs_repair not run)"
                                                        : " (e2fsck not run)");
  if (e2fsck_every)
    printf("plreplay: %s found %lu states not clean after recovery\n", fsck_name, S.e2fsck_dirty);
  unlink(state_img);
  if (expect_violation) {
    if (S.bad_states > 0) {
      printf("plreplay: the broken build was caught, as it must be\n");
      return 0;
    }
    printf("plreplay: NO violation found: the replay did not catch the broken build\n");
    return 1;
  }
  /* An unmountable state is a harness failure (a state no real disk
   * produces) and fails the run as a violation does. */
  return S.bad_states > 0 || S.unmountable > 0 ? 1 : 0;
}
