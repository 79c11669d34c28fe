/*
 * bench.c — `deltafs bench`: every operation held against the raw syscall
 * floor measured in the same run, on the same filesystem.
 *
 * HARNESS DESIGN
 * ==============
 * Machines are noisy (2 shared cores, a virtual disk), so nothing is
 * compared with a number from another run.  Each case measures deltafs and
 * its FLOOR — the syscalls a hand-written program would need at least for
 * the same job, with none of deltafs's guarantees — in the same run,
 * interleaved round by round (floor first in even rounds, deltafs first in
 * odd ones, so drift hits both), and reports the median over the rounds
 * of ops/s, the p50/p99 of every single operation's latency over all
 * rounds, and the ratio of the medians.  A round of a throughput case runs
 * for a fixed time (not a fixed count), so slow disks still finish.
 *
 * The floors (what each ratio is against):
 *   durable write   two temp files each written + fsync'd in sequence, two
 *                   renames into files/, NO directory fsync — DeltaDatabase's
 *                   Go sequence, which NOTES-durability.md shows LOSES
 *                   acknowledged writes on power loss.  deltafs must also
 *                   fsync the directory and still be at least as fast.
 *   locked read     open+read+close of both files + a flock pair
 *   lock            flock(LOCK_SH or LOCK_EX) + flock(LOCK_UN) on an open
 *                   descriptor + one fstatat
 *   dfs_version     one fstatat of the metadata file
 *   list            getdents64 over files/ (256 KiB buffer)
 *   8 writers       one writer's ops/s (the 4 KiB new-id case)
 *   growth          the same operation in a store with 1k entities
 *
 * dfs_version answers from its stat cache only once the metadata file is at
 * least DFS_VERSION_SETTLE_MS old (vcache.c); the version case reads
 * entities created at the start of the run and waits until they have
 * settled, and says so.
 *
 * The read-modify-write case forks 1 and 4 processes that each do a fixed
 * number of cycles (exclusive lock, read counter, write counter+1, release)
 * on ONE entity; the final counter must equal the number of cycles — a
 * lost update is a correctness failure (exit 1), not a performance number.
 *
 * Memory of the list forms is measured in a forked child: it resets its
 * peak-RSS mark (/proc/self/clear_refs "5"), lists once, and reports
 * VmHWM (the process's peak RSS) and its growth during the call.
 *
 * Stores: everything lives under a fresh scratch directory (--dir DIR, else
 * the current directory: the same disk as the cwd, which is the point;
 * tmpfs is refused because it has no durability cost to measure), removed
 * at the end.  Populations (list, growth) are written through a second
 * handle opened with DFS_OPT_NO_SYNC — their durability is not what is
 * measured — and the measured operations through a normal handle.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commit.h" /* which sync mode the library chose, for the header */
#include "deltafs/deltafs.h"
#include "progress.h"

#define MAX_ROUNDS 15
#define MAX_ROWS 48

/* ---- configuration ------------------------------------------------------ */

struct config {
  const char *prog;
  const char *dir;  /* parent of the scratch directory */
  int rounds;
  double secs;      /* one timed measurement (deltafs or floor) */
  double fast_secs; /* the same for sub-millisecond operations  */
  size_t list_n[2]; /* list / growth populations (0 = unused) */
  int rmw_cycles;   /* per process                             */
  int json, full, short_mode, strict;
  const char *only; /* NULL: all groups; else writes|reads|rmw|list */
};

static int want(const struct config *cfg, const char *group)
{
  return !cfg->only || strcmp(cfg->only, group) == 0;
}

/* ---- time, samples ------------------------------------------------------ */

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct samples {
  uint64_t *v;
  size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t x)
{
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 4096;
    uint64_t *nv = realloc(s->v, nc * sizeof *nv);
    if (!nv)
      return; /* out of memory: drop the sample, the rate is still right */
    s->v = nv;
    s->cap = nc;
  }
  s->v[s->n++] = x;
}

static void samples_merge(struct samples *dst, const struct samples *src)
{
  for (size_t i = 0; i < src->n; i++)
    samples_add(dst, src->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile(struct samples *s, double p)
{
  size_t k;
  if (s->n == 0)
    return 0;
  qsort(s->v, s->n, sizeof *s->v, cmp_u64);
  k = (size_t)(p * (double)(s->n - 1) + 0.5);
  return (double)s->v[k];
}

static int cmp_dbl(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
  double t[MAX_ROUNDS];
  if (n <= 0)
    return 0;
  memcpy(t, v, (size_t)n * sizeof *t);
  qsort(t, (size_t)n, sizeof *t, cmp_dbl);
  return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* One side (deltafs or floor) of a case: per-round rates and all latencies. */
struct side {
  double rate[MAX_ROUNDS];
  int rounds;
  struct samples lat;
};

static void side_free(struct side *s)
{
  free(s->lat.v);
  memset(s, 0, sizeof *s);
}

/* ---- results ----------------------------------------------------------- */

enum cmp { CMP_NONE = 0, CMP_GE, CMP_LE };

struct row {
  char name[64];
  double ops;          /* median ops/s, 0 = n/a                       */
  double p50, p99;     /* ns, 0 = n/a                                 */
  char floor[32];      /* what the ratio is against, printable        */
  double floor_val;    /* its number (ops/s, ms or MB), for --json    */
  const char *floor_unit;
  double ratio;        /* the compared number                          */
  const char *unit;    /* "x", " ms", " MB"                           */
  enum cmp cmp;
  double target;
  int met;             /* 1, 0, -1 n/a                                 */
  char note[96];
};

static struct row rows[MAX_ROWS];
static int nrows;
static int failures; /* correctness failures */

static struct row *add_row(const char *name)
{
  struct row *r;
  if (nrows == MAX_ROWS)
    nrows--; /* never happens with the fixed case list; keeps us in bounds */
  r = &rows[nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  r->unit = "x";
  r->floor_unit = "";
  r->met = -1;
  return r;
}

static void judge(struct row *r, enum cmp c, double target)
{
  r->cmp = c;
  r->target = target;
  if (c == CMP_GE)
    r->met = r->ratio >= target;
  else if (c == CMP_LE)
    r->met = r->ratio <= target;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("deltafs bench: FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  failures++;
}

/* A throughput row: deltafs vs floor rates (higher is better). */
static struct row *tp_row(const char *name, struct side *ours, struct side *floor, double target)
{
  struct row *r = add_row(name);
  double fo = median(floor->rate, floor->rounds);
  r->ops = median(ours->rate, ours->rounds);
  r->p50 = percentile(&ours->lat, 0.50);
  r->p99 = percentile(&ours->lat, 0.99);
  r->floor_val = fo;
  r->floor_unit = "ops/s";
  snprintf(r->floor, sizeof r->floor, "%.0f ops/s", fo);
  r->ratio = fo > 0 ? r->ops / fo : 0;
  judge(r, CMP_GE, target);
  return r;
}

/* A latency row: mean latency ratio deltafs/floor (lower is better). */
static struct row *lat_row(const char *name, struct side *ours, struct side *floor, double target)
{
  struct row *r = add_row(name);
  double fo = median(floor->rate, floor->rounds);
  r->ops = median(ours->rate, ours->rounds);
  r->p50 = percentile(&ours->lat, 0.50);
  r->p99 = percentile(&ours->lat, 0.99);
  r->floor_val = fo > 0 ? 1e6 / fo : 0;
  r->floor_unit = "us";
  snprintf(r->floor, sizeof r->floor, "%.2f us", r->floor_val);
  r->ratio = r->ops > 0 ? fo / r->ops : 0;
  judge(r, CMP_LE, target);
  return r;
}

/* ---- progress ----------------------------------------------------------- */

static cli_progress pbar;
static uint64_t prog_done;

static void progress_step(void)
{
  cli_progress_update(&pbar, ++prog_done);
}

/* ---- timed loops ------------------------------------------------------- */

typedef int (*op_fn)(void *ctx);

/* Run fn until `secs` passed (at least `min_ops` times); one rate into
 * side->rate[round], every latency into side->lat.  -1 if an op failed. */
static int run_timed(op_fn fn, void *ctx, double secs, int min_ops, struct side *side)
{
  uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), t = start;
  long n = 0;
  while (t < end || n < min_ops) {
    uint64_t t0 = t;
    if (fn(ctx) < 0)
      return -1;
    t = now_ns();
    samples_add(&side->lat, t - t0);
    n++;
  }
  side->rate[side->rounds++] = (double)n * 1e9 / (double)(t - start);
  return 0;
}

/* ---- stores -------------------------------------------------------------- */

struct store {
  dfs_storage *st;      /* durable handle: what is measured        */
  dfs_storage *nosync;  /* DFS_OPT_NO_SYNC: populations, cleanup   */
  int files_fd;         /* <base>/files                            */
  int floor_files_fd;   /* <base>/floor/files: the floor's files   */
  int floor_tmp_fd;     /* <base>/floor/tmp: the floor's temps     */
  char path[PATH_MAX];
};

static int open_dir(const char *path)
{
  return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void store_init(struct store *s)
{
  memset(s, 0, sizeof *s);
  s->files_fd = s->floor_files_fd = s->floor_tmp_fd = -1;
}

static int store_open(struct store *s, const char *scratch, const char *name)
{
  dfs_options o = DFS_OPTIONS_INIT;
  char p[PATH_MAX + 32];
  int rc;

  memset(s, 0, sizeof *s);
  s->files_fd = s->floor_files_fd = s->floor_tmp_fd = -1;
  snprintf(s->path, sizeof s->path, "%s/%s", scratch, name);
  if ((rc = dfs_storage_open(&s->st, s->path, NULL)) < 0) {
    fail("open store %s: %s", s->path, dfs_last_error());
    return -1;
  }
  o.flags = DFS_OPT_NO_SYNC;
  if ((rc = dfs_storage_open(&s->nosync, s->path, &o)) < 0) {
    fail("open store %s: %s", s->path, dfs_last_error());
    return -1;
  }
  s->files_fd = open_dir(dfs_files_dir(s->st));
  snprintf(p, sizeof p, "%s/floor", s->path);
  (void)mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/floor/files", s->path);
  (void)mkdir(p, 0755);
  s->floor_files_fd = open_dir(p);
  snprintf(p, sizeof p, "%s/floor/tmp", s->path);
  (void)mkdir(p, 0755);
  s->floor_tmp_fd = open_dir(p);
  if (s->files_fd < 0 || s->floor_files_fd < 0 || s->floor_tmp_fd < 0) {
    fail("open directories of %s: %s", s->path, strerror(errno));
    return -1;
  }
  return 0;
}

static void store_close(struct store *s)
{
  if (s->files_fd >= 0)
    close(s->files_fd);
  if (s->floor_files_fd >= 0)
    close(s->floor_files_fd);
  if (s->floor_tmp_fd >= 0)
    close(s->floor_tmp_fd);
  dfs_storage_close(s->nosync);
  dfs_storage_close(s->st);
  store_init(s);
}

static dfs_meta bench_meta(int64_t version)
{
  dfs_meta m;
  memset(&m, 0, sizeof m);
  m.key_id = "bench-key";
  m.alg = "AES-GCM";
  m.iv = "AAAAAAAAAAAAAAAA";
  m.tag = "AAAAAAAAAAAAAAAAAAAAAA==";
  m.schema_id = "bench.v1";
  m.version = version;
  m.writer_id = "deltafs-bench";
  m.timestamp_sec = 1700000000;
  m.database = "bench";
  m.entity_key = "bench";
  return m;
}

/* Size of the metadata file deltafs writes for bench_meta (the floor
 * writes as many bytes). */
static size_t meta_file_size(struct store *s)
{
  dfs_meta m = bench_meta(1);
  struct stat sb;
  if (dfs_write(s->nosync, "meta-size-probe", "x", 1, &m) < 0 ||
      fstatat(s->files_fd, "meta-size-probe.meta.json", &sb, 0) < 0)
    return 300;
  (void)dfs_delete(s->nosync, "meta-size-probe");
  return (size_t)sb.st_size;
}

/* ---- write cases ------------------------------------------------------- */

struct wctx {
  struct store *s;
  const char *prefix;
  const char *blob;
  size_t len, meta_len;
  uint64_t next, first; /* id numbers written this round: [first, next) */
  int overwrite;
  int64_t version;
  char *meta_buf;
};

static void wctx_id(const struct wctx *c, uint64_t n, char *buf, size_t size)
{
  if (c->overwrite)
    snprintf(buf, size, "%s", c->prefix);
  else
    snprintf(buf, size, "%s%" PRIu64, c->prefix, n);
}

static int ours_write(void *p)
{
  struct wctx *c = p;
  char id[96];
  dfs_meta m = bench_meta(++c->version);
  int rc;
  wctx_id(c, c->next++, id, sizeof id);
  rc = dfs_write(c->s->st, id, c->blob, c->len, &m);
  if (rc < 0) {
    fail("dfs_write %s: %s", id, dfs_last_error());
    return -1;
  }
  return 0;
}

/* Write one temp file in floor/tmp and fsync it. */
static int floor_file(int tmpfd, const char *name, const void *data, size_t len)
{
  int fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  const char *p = data;
  if (fd < 0)
    return -1;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      close(fd);
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  if (fsync(fd) < 0) {
    close(fd);
    return -1;
  }
  return close(fd);
}

static int floor_write(void *p)
{
  struct wctx *c = p;
  char id[96], tb[128], tm[128], fb[128], fm[128];
  wctx_id(c, c->next++, id, sizeof id);
  snprintf(tb, sizeof tb, "%s.json.enc.tmp", id);
  snprintf(tm, sizeof tm, "%s.meta.json.tmp", id);
  snprintf(fb, sizeof fb, "%s.json.enc", id);
  snprintf(fm, sizeof fm, "%s.meta.json", id);
  if (floor_file(c->s->floor_tmp_fd, tb, c->blob, c->len) < 0 ||
      floor_file(c->s->floor_tmp_fd, tm, c->meta_buf, c->meta_len) < 0 ||
      renameat(c->s->floor_tmp_fd, tb, c->s->floor_files_fd, fb) < 0 ||
      renameat(c->s->floor_tmp_fd, tm, c->s->floor_files_fd, fm) < 0) {
    fail("floor write %s: %s", id, strerror(errno));
    return -1;
  }
  return 0;
}

/* Remove what a round of new-id writes created (not timed; without
 * fsyncs), so every round starts from the same directory. */
static void cleanup_round(struct wctx *c, int floor)
{
  char id[96], name[128];
  if (c->overwrite)
    return;
  for (uint64_t n = c->first; n < c->next; n++) {
    wctx_id(c, n, id, sizeof id);
    if (floor) {
      snprintf(name, sizeof name, "%s.json.enc", id);
      (void)unlinkat(c->s->floor_files_fd, name, 0);
      snprintf(name, sizeof name, "%s.meta.json", id);
      (void)unlinkat(c->s->floor_files_fd, name, 0);
    } else {
      (void)dfs_delete(c->s->nosync, id);
    }
  }
  c->first = c->next;
}

/* The 8-writer case: each thread its own ids. */
struct wthread {
  pthread_t tid;
  struct wctx c;
  double secs;
  pthread_barrier_t *barrier;
  struct side side;
  int rc;
};

static void *wthread_main(void *p)
{
  struct wthread *w = p;
  pthread_barrier_wait(w->barrier);
  w->rc = run_timed(ours_write, &w->c, w->secs, 1, &w->side);
  return NULL;
}

/* Run `nthreads` writers for secs; the round's total rate into out. */
static int run_threads(struct store *s, int nthreads, const char *blob, size_t len, double secs,
                       uint64_t *idbase, struct side *out)
{
  struct wthread w[8];
  pthread_barrier_t barrier;
  char prefixes[8][16];
  double total = 0;
  int rc = 0;

  pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
  for (int i = 0; i < nthreads; i++) {
    memset(&w[i], 0, sizeof w[i]);
    snprintf(prefixes[i], sizeof prefixes[i], "mt%d_", i);
    w[i].c.s = s;
    w[i].c.prefix = prefixes[i];
    w[i].c.blob = blob;
    w[i].c.len = len;
    w[i].c.first = w[i].c.next = *idbase;
    w[i].secs = secs;
    w[i].barrier = &barrier;
    pthread_create(&w[i].tid, NULL, wthread_main, &w[i]);
  }
  for (int i = 0; i < nthreads; i++) {
    pthread_join(w[i].tid, NULL);
    if (w[i].rc < 0)
      rc = -1;
    if (w[i].side.rounds)
      total += w[i].side.rate[0];
    samples_merge(&out->lat, &w[i].side.lat);
    cleanup_round(&w[i].c, 0);
    if (w[i].c.next > *idbase)
      *idbase = w[i].c.next;
    side_free(&w[i].side);
  }
  pthread_barrier_destroy(&barrier);
  out->rate[out->rounds++] = total;
  return rc;
}

static void fill(char *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (char)('a' + (i * 7) % 26);
}

/* Durable writes: new ids at three sizes, overwrites, 8 writers. */
static void bench_writes(const struct config *cfg, struct store *s)
{
  static const struct {
    const char *name;
    size_t len;
    int overwrite;
  } cases[] = {
      {"write 4 KiB new ids", 4096, 0},
      {"write 1 KiB new ids", 1024, 0},
      {"write 1 MiB new ids", 1 << 20, 0},
      {"overwrite one id 4 KiB", 4096, 1},
  };
  size_t meta_len = meta_file_size(s);
  char *blob = malloc(1 << 20), *meta_buf = malloc(meta_len + 1);
  struct side one_writer = {0};
  uint64_t idbase = 0;

  if (!blob || !meta_buf) {
    fail("out of memory");
    free(blob);
    free(meta_buf);
    return;
  }
  fill(blob, 1 << 20);
  fill(meta_buf, meta_len);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    struct side ours = {0}, floor = {0};
    char prefix[32];
    struct wctx oc, fc;
    snprintf(prefix, sizeof prefix, "w%zu%s_", k, cases[k].overwrite ? "ow" : "");
    memset(&oc, 0, sizeof oc);
    oc.s = s;
    oc.prefix = prefix;
    oc.blob = blob;
    oc.len = cases[k].len;
    oc.overwrite = cases[k].overwrite;
    oc.meta_len = meta_len;
    oc.meta_buf = meta_buf;
    fc = oc;
    if (oc.overwrite) { /* the id exists before the first timed write */
      if (ours_write(&oc) < 0 || floor_write(&fc) < 0)
        break;
    }
    for (int r = 0; r < cfg->rounds; r++) {
      for (int half = 0; half < 2; half++) {
        int floor_now = (half == 0) == (r % 2 == 0);
        if (floor_now) {
          if (run_timed(floor_write, &fc, cfg->secs, 3, &floor) < 0)
            goto out;
          cleanup_round(&fc, 1);
        } else {
          if (run_timed(ours_write, &oc, cfg->secs, 3, &ours) < 0)
            goto out;
          cleanup_round(&oc, 0);
        }
        progress_step();
      }
    }
    tp_row(cases[k].name, &ours, &floor, 1.0);
    if (k == 0) {
      one_writer = ours; /* the 8-writer case's floor */
      memset(&ours, 0, sizeof ours);
    }
  out:
    side_free(&ours);
    side_free(&floor);
    if (failures)
      break;
  }

  if (!failures && one_writer.rounds) {
    struct side eight = {0};
    struct row *r;
    for (int rd = 0; rd < cfg->rounds; rd++) {
      if (run_threads(s, 8, blob, 4096, cfg->secs, &idbase, &eight) < 0)
        break;
      progress_step();
    }
    if (eight.rounds) {
      r = add_row("8 writers 4 KiB distinct ids");
      r->ops = median(eight.rate, eight.rounds);
      r->p50 = percentile(&eight.lat, 0.5);
      r->p99 = percentile(&eight.lat, 0.99);
      r->floor_val = median(one_writer.rate, one_writer.rounds);
      r->floor_unit = "ops/s";
      snprintf(r->floor, sizeof r->floor, "%.0f ops/s 1 wr", r->floor_val);
      r->ratio = r->floor_val > 0 ? r->ops / r->floor_val : 0;
      judge(r, CMP_GE, 3.0);
    }
    side_free(&eight);
  }
  side_free(&one_writer);
  free(blob);
  free(meta_buf);
}

/* ---- locked read, locks, version ----------------------------------------- */

struct rctx {
  struct store *s;
  dfs_lockmgr *m;
  const char *id;
  char bname[128], mname[128], lname[128];
  int lock_fd;
  int type;          /* LOCK_SH / LOCK_EX for the lock case */
  const char **ids;  /* version case */
  int nids, i;
  char *buf;
  size_t buflen;
};

static int ours_locked_read(void *p)
{
  struct rctx *c = p;
  dfs_file *f = NULL;
  int rc = dfs_lockmgr_acquire(c->m, c->id, DFS_LOCK_SHARED);
  if (rc == 0) {
    rc = dfs_read(c->s->st, c->id, &f);
    dfs_file_free(f);
    if (dfs_lockmgr_release(c->m, c->id) < 0 && rc == 0)
      rc = -1;
  }
  if (rc < 0) {
    fail("locked read %s: %s", c->id, dfs_last_error());
    return -1;
  }
  return 0;
}

static int floor_read_file(struct rctx *c, const char *name)
{
  int fd = openat(c->s->files_fd, name, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0)
    return -1;
  /* read to EOF, as a reader of an unknown size must */
  while ((n = read(fd, c->buf, c->buflen)) > 0)
    ;
  close(fd);
  return n < 0 ? -1 : 0;
}

static int floor_locked_read(void *p)
{
  struct rctx *c = p;
  if (flock(c->lock_fd, LOCK_SH) < 0 || floor_read_file(c, c->bname) < 0 ||
      floor_read_file(c, c->mname) < 0 || flock(c->lock_fd, LOCK_UN) < 0) {
    fail("floor read: %s", strerror(errno));
    return -1;
  }
  return 0;
}

static int ours_plain_read(void *p)
{
  struct rctx *c = p;
  dfs_file *f = NULL;
  if (dfs_read(c->s->st, c->id, &f) < 0) {
    fail("read %s: %s", c->id, dfs_last_error());
    return -1;
  }
  dfs_file_free(f);
  return 0;
}

static int floor_plain_read(void *p)
{
  struct rctx *c = p;
  if (floor_read_file(c, c->bname) < 0 || floor_read_file(c, c->mname) < 0) {
    fail("floor read: %s", strerror(errno));
    return -1;
  }
  return 0;
}

static int ours_lock(void *p)
{
  struct rctx *c = p;
  if (dfs_lockmgr_acquire(c->m, c->id, c->type == LOCK_EX ? DFS_LOCK_EXCLUSIVE
                                                           : DFS_LOCK_SHARED) < 0 ||
      dfs_lockmgr_release(c->m, c->id) < 0) {
    fail("lock %s: %s", c->id, dfs_last_error());
    return -1;
  }
  return 0;
}

static int floor_lock(void *p)
{
  struct rctx *c = p;
  struct stat sb;
  if (flock(c->lock_fd, c->type) < 0 || fstatat(c->s->files_fd, c->lname, &sb, 0) < 0 ||
      flock(c->lock_fd, LOCK_UN) < 0) {
    fail("floor lock: %s", strerror(errno));
    return -1;
  }
  return 0;
}

static int ours_version(void *p)
{
  struct rctx *c = p;
  int64_t v;
  if (dfs_version(c->s->st, c->ids[c->i++ % c->nids], &v) < 0) {
    fail("dfs_version: %s", dfs_last_error());
    return -1;
  }
  return 0;
}

static int floor_version(void *p)
{
  struct rctx *c = p;
  struct stat sb;
  char name[128];
  snprintf(name, sizeof name, "%s.meta.json", c->ids[c->i++ % c->nids]);
  if (fstatat(c->s->files_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
    fail("floor version: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Alternate floor and deltafs for cfg->rounds rounds of fast_secs. */
static int pair_rounds(const struct config *cfg, op_fn ours_fn, op_fn floor_fn, void *ctx,
                       struct side *ours, struct side *floor)
{
  for (int r = 0; r < cfg->rounds; r++) {
    for (int half = 0; half < 2; half++) {
      int floor_now = (half == 0) == (r % 2 == 0);
      if (run_timed(floor_now ? floor_fn : ours_fn, ctx, cfg->fast_secs, 10,
                    floor_now ? floor : ours) < 0)
        return -1;
    }
    progress_step();
  }
  return 0;
}

#define NVERSION_IDS 64
static char version_ids[NVERSION_IDS][16];
static uint64_t version_written_ns;

/* Created first thing, so they have settled by the time they are read. */
static int create_version_entities(struct store *s)
{
  for (int i = 0; i < NVERSION_IDS; i++) {
    dfs_meta m = bench_meta(i + 1);
    snprintf(version_ids[i], sizeof version_ids[i], "ver%d", i);
    if (dfs_write(s->nosync, version_ids[i], "v", 1, &m) < 0) {
      fail("dfs_write %s: %s", version_ids[i], dfs_last_error());
      return -1;
    }
  }
  version_written_ns = now_ns();
  return 0;
}

static void bench_reads(const struct config *cfg, struct store *s)
{
  struct rctx c;
  struct side ours = {0}, floor = {0};
  const char *ids[NVERSION_IDS];
  char blob[4096], lpath[PATH_MAX];
  dfs_meta m = bench_meta(1);
  uint64_t settle;

  memset(&c, 0, sizeof c);
  c.s = s;
  c.id = "read4k";
  c.lock_fd = -1;
  c.buflen = 64 * 1024;
  c.buf = malloc(c.buflen);
  fill(blob, sizeof blob);
  if (!c.buf || dfs_lockmgr_new(&c.m, s->st) < 0 || dfs_write(s->st, c.id, blob, sizeof blob, &m) < 0) {
    fail("set up the read case: %s", dfs_last_error());
    goto out;
  }
  version_written_ns = now_ns(); /* read4k is the newest entity: settle from here */
  /* The lock file exists once the manager has taken it once. */
  if (dfs_lockmgr_acquire(c.m, c.id, DFS_LOCK_SHARED) < 0 ||
      dfs_lockmgr_release(c.m, c.id) < 0 || dfs_lock_path(s->st, c.id, lpath, sizeof lpath) < 0) {
    fail("set up the read case: %s", dfs_last_error());
    goto out;
  }
  c.lock_fd = open(lpath, O_RDONLY | O_CLOEXEC);
  snprintf(c.bname, sizeof c.bname, "%s.json.enc", c.id);
  snprintf(c.mname, sizeof c.mname, "%s.meta.json", c.id);
  snprintf(c.lname, sizeof c.lname, "%s.json.enc.lock", c.id);
  if (c.lock_fd < 0) {
    fail("open %s: %s", lpath, strerror(errno));
    goto out;
  }

  /* Just written (under DFS_VERSION_SETTLE_MS): dfs_read must parse the
   * metadata JSON every time.  Reported, no target. */
  if (pair_rounds(cfg, ours_locked_read, floor_locked_read, &c, &ours, &floor) < 0)
    goto out;
  {
    struct row *r = lat_row("locked read 4 KiB (just written)", &ours, &floor, 0);
    r->cmp = CMP_NONE;
    r->met = -1;
    snprintf(r->note, sizeof r->note, "metadata < %d ms old: parsed on every read",
             DFS_VERSION_SETTLE_MS);
  }
  side_free(&ours);
  side_free(&floor);

  /* locked read, warm: page cache warm and the metadata settled, so the
   * parsed-metadata cache (src/vcache.c) answers; the blob is still read
   * and checked against it every time. */
  settle = version_written_ns + (uint64_t)(DFS_VERSION_SETTLE_MS + 50) * 1000000u;
  while (now_ns() < settle)
    usleep(10000);
  if (pair_rounds(cfg, ours_locked_read, floor_locked_read, &c, &ours, &floor) < 0)
    goto out;
  {
    struct row *r = lat_row("locked read 4 KiB (warm)", &ours, &floor, 1.4);
    snprintf(r->note, sizeof r->note, "metadata >= %d ms old: parsed-metadata cache",
             DFS_VERSION_SETTLE_MS);
  }
  side_free(&ours);
  side_free(&floor);

  /* The same without the locks, to show where the time goes (no target). */
  if (pair_rounds(cfg, ours_plain_read, floor_plain_read, &c, &ours, &floor) < 0)
    goto out;
  {
    struct row *r = lat_row("  of which dfs_read alone", &ours, &floor, 0);
    r->cmp = CMP_NONE;
    r->met = -1;
    snprintf(r->note, sizeof r->note, "floor: open+read+close of both files");
  }
  side_free(&ours);
  side_free(&floor);

  /* lock + release, shared and exclusive */
  for (int k = 0; k < 2; k++) {
    c.type = k ? LOCK_EX : LOCK_SH;
    if (pair_rounds(cfg, ours_lock, floor_lock, &c, &ours, &floor) < 0)
      goto out;
    lat_row(k ? "lock+release exclusive" : "lock+release shared", &ours, &floor, 2.0);
    side_free(&ours);
    side_free(&floor);
  }

  /* dfs_version on settled entities (waited out above): one call each to
   * fill the cache (the slow path is not what is measured). */
  for (int i = 0; i < NVERSION_IDS; i++) {
    int64_t v;
    ids[i] = version_ids[i];
    (void)dfs_version(s->st, ids[i], &v);
  }
  c.ids = ids;
  c.nids = NVERSION_IDS;
  if (pair_rounds(cfg, ours_version, floor_version, &c, &ours, &floor) < 0)
    goto out;
  {
    struct row *r = lat_row("dfs_version (settled)", &ours, &floor, 2.0);
    snprintf(r->note, sizeof r->note, "metadata >= %d ms old: stat-cache path",
             DFS_VERSION_SETTLE_MS);
  }
out:
  side_free(&ours);
  side_free(&floor);
  if (c.lock_fd >= 0)
    close(c.lock_fd);
  dfs_lockmgr_free(c.m);
  free(c.buf);
}

/* ---- read-modify-write across processes ------------------------------- */

static int rmw_child(const char *path, int cycles, uint64_t *lat)
{
  dfs_storage *st = NULL;
  dfs_lockmgr *m = NULL;
  int rc = 0;

  if (dfs_storage_open(&st, path, NULL) < 0 || dfs_lockmgr_new(&m, st) < 0) {
    fprintf(stderr, "deltafs bench: rmw: %s\n", dfs_last_error());
    dfs_storage_close(st);
    return 1;
  }
  for (int i = 0; i < cycles && rc == 0; i++) {
    uint64_t t0 = now_ns();
    dfs_file *f = NULL;
    long long counter = 0;
    int64_t version = 0;
    char buf[32];
    dfs_meta meta;
    int n;

    if ((rc = dfs_lockmgr_acquire(m, "rmw", DFS_LOCK_EXCLUSIVE)) < 0)
      break;
    rc = dfs_read(st, "rmw", &f);
    if (rc == 0) {
      char num[32];
      size_t l = f->blob_len < sizeof num - 1 ? f->blob_len : sizeof num - 1;
      memcpy(num, f->blob, l);
      num[l] = '\0';
      counter = strtoll(num, NULL, 10);
      version = f->meta.version;
    } else if (rc == DFS_ENOTFOUND) {
      rc = 0;
    }
    dfs_file_free(f);
    if (rc == 0) {
      meta = bench_meta(version + 1);
      n = snprintf(buf, sizeof buf, "%lld", counter + 1);
      rc = dfs_write_if_version(st, "rmw", buf, (size_t)n, &meta, version);
    }
    if (dfs_lockmgr_release(m, "rmw") < 0 && rc == 0)
      rc = -1;
    lat[i] = now_ns() - t0;
  }
  if (rc < 0)
    fprintf(stderr, "deltafs bench: rmw: %s\n", dfs_last_error());
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return rc < 0 ? 1 : 0;
}

static long long rmw_counter(struct store *s)
{
  dfs_file *f = NULL;
  long long v = 0;
  if (dfs_read(s->st, "rmw", &f) == 0) {
    char num[32];
    size_t l = f->blob_len < sizeof num - 1 ? f->blob_len : sizeof num - 1;
    memcpy(num, f->blob, l);
    num[l] = '\0';
    v = strtoll(num, NULL, 10);
  }
  dfs_file_free(f);
  return v;
}

static void bench_rmw(const struct config *cfg, struct store *s)
{
  static const int nprocs[2] = {1, 4};
  for (int k = 0; k < 2; k++) {
    int np = nprocs[k], cycles = cfg->rmw_cycles, bad = 0;
    size_t total = (size_t)np * (size_t)cycles;
    uint64_t *lat = mmap(NULL, total * sizeof *lat, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    long long before = rmw_counter(s), after;
    uint64_t t0;
    double secs;
    pid_t pids[4];
    struct samples sm = {0};
    struct row *r;
    char name[64];

    if (lat == MAP_FAILED) {
      fail("mmap: %s", strerror(errno));
      return;
    }
    fflush(NULL);
    t0 = now_ns();
    for (int i = 0; i < np; i++) {
      pids[i] = fork();
      if (pids[i] == 0)
        _exit(rmw_child(s->path, cycles, lat + (size_t)i * (size_t)cycles));
      if (pids[i] < 0) {
        fail("fork: %s", strerror(errno));
        np = i;
        break;
      }
    }
    for (int i = 0; i < np; i++) {
      int status;
      if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bad = 1;
    }
    secs = (double)(now_ns() - t0) / 1e9;
    after = rmw_counter(s);
    for (size_t i = 0; i < total; i++)
      samples_add(&sm, lat[i]);
    munmap(lat, total * sizeof *lat);
    snprintf(name, sizeof name, "read-modify-write %d proc%s", np, np > 1 ? "s" : "");
    r = add_row(name);
    r->ops = (double)total / secs;
    r->p50 = percentile(&sm, 0.5);
    r->p99 = percentile(&sm, 0.99);
    snprintf(r->floor, sizeof r->floor, "-");
    r->ratio = (double)((long long)total - (after - before)); /* lost updates */
    r->unit = " lost";
    judge(r, CMP_LE, 0);
    snprintf(r->note, sizeof r->note, "%lld -> %lld after %zu cycles", before, after, total);
    free(sm.v);
    if (bad)
      fail("read-modify-write with %d processes: a worker failed", np);
    if (after - before != (long long)total)
      fail("read-modify-write with %d processes: %lld lost updates", np,
           (long long)total - (after - before));
    progress_step();
  }
}

/* ---- list ----------------------------------------------------------------- */

static int populate(struct store *s, const char *prefix, size_t from, size_t to)
{
  dfs_meta m = bench_meta(1);
  char id[64];
  for (size_t i = from; i < to; i++) {
    snprintf(id, sizeof id, "%s%zu", prefix, i);
    if (dfs_write(s->nosync, id, "0123456789abcdef", 16, &m) < 0) {
      fail("populate %s: %s", id, dfs_last_error());
      return -1;
    }
    if (i % 1024 == 0)
      cli_progress_update(&pbar, prog_done);
  }
  return 0;
}

static long floor_getdents(int dirfd)
{
  enum { BUFSZ = 256 * 1024 };
  static char buf[BUFSZ];
  long count = 0;
  ssize_t n;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  while ((n = getdents64(fd, buf, BUFSZ)) > 0)
    for (ssize_t off = 0; off < n;) {
      struct dirent64 *d = (struct dirent64 *)(buf + off);
      off += d->d_reclen;
      count++;
    }
  close(fd);
  return n < 0 ? -1 : count;
}

static int count_cb(const char *id, void *payload)
{
  (void)id;
  (*(size_t *)payload)++;
  return 0;
}

/* One listing; the count of ids, or -1. */
static long list_once(struct store *s, int streaming)
{
  if (streaming) {
    size_t n = 0;
    if (dfs_list_each(s->st, count_cb, &n) < 0)
      return -1;
    return (long)n;
  } else {
    dfs_id_list *l = NULL;
    long n;
    if (dfs_list(s->st, &l) < 0)
      return -1;
    n = (long)l->count;
    dfs_list_free(l);
    return n;
  }
}

static long status_kb(const char *key)
{
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Peak RSS of one listing, in a child: {peak kB, growth kB}. */
static int list_rss(struct store *s, int streaming, long out[2])
{
  int fds[2];
  pid_t pid;
  long res[2] = {-1, -1};

  if (pipe(fds) < 0)
    return -1;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    long before;
    int f = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    /* "5" resets the peak-RSS mark to the current RSS. */
    if (f >= 0) {
      if (write(f, "5", 1) < 0)
        res[0] = -1;
      close(f);
    }
    before = status_kb("VmRSS");
    if (list_once(s, streaming) >= 0) {
      res[0] = status_kb("VmHWM");
      res[1] = res[0] - before;
    }
    if (write(fds[1], res, sizeof res) < 0)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  if (pid < 0 || read(fds[0], res, sizeof res) != (ssize_t)sizeof res)
    res[0] = res[1] = -1;
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  out[0] = res[0];
  out[1] = res[1];
  return res[0] < 0 ? -1 : 0;
}

static void fmt_count(char *buf, size_t size, size_t n)
{
  if (n >= 1000000 && n % 1000000 == 0)
    snprintf(buf, size, "%zuM", n / 1000000);
  else if (n >= 1000 && n % 1000 == 0)
    snprintf(buf, size, "%zuk", n / 1000);
  else
    snprintf(buf, size, "%zu", n);
}

static void bench_list(const struct config *cfg, struct store *s, size_t n)
{
  char cnt[32], name[64];
  fmt_count(cnt, sizeof cnt, n);

  for (int streaming = 0; streaming < 2; streaming++) {
    double t_ours[MAX_ROUNDS], t_floor[MAX_ROUNDS];
    struct samples lat = {0};
    long kb[2] = {-1, -1};
    struct row *r;
    int rounds = 0;

    for (int rd = 0; rd < cfg->rounds; rd++) {
      for (int half = 0; half < 2; half++) {
        int floor_now = (half == 0) == (rd % 2 == 0);
        uint64_t t0 = now_ns();
        long got = floor_now ? floor_getdents(s->files_fd) : list_once(s, streaming);
        uint64_t dt = now_ns() - t0;
        if (floor_now) {
          t_floor[rd] = (double)dt;
        } else {
          t_ours[rd] = (double)dt;
          samples_add(&lat, dt);
          if (got != (long)n) {
            fail("list %s: %ld ids, expected %zu (%s)", cnt, got, n, dfs_last_error());
            free(lat.v);
            return;
          }
        }
      }
      rounds++;
      progress_step();
    }
    snprintf(name, sizeof name, "list %s %s", cnt, streaming ? "streaming" : "array");
    r = add_row(name);
    r->ops = 1e9 / median(t_ours, rounds);
    r->p50 = percentile(&lat, 0.5);
    r->p99 = percentile(&lat, 0.99);
    r->floor_val = median(t_floor, rounds) / 1e6;
    r->floor_unit = "ms";
    snprintf(r->floor, sizeof r->floor, "%.1f ms getdents", r->floor_val);
    r->ratio = median(t_ours, rounds) / median(t_floor, rounds);
    judge(r, CMP_LE, 1.5);
    free(lat.v);

    if (n >= 1000000) {
      r = add_row("");
      snprintf(r->name, sizeof r->name, "list %s %s time", cnt,
               streaming ? "streaming" : "array");
      r->ratio = median(t_ours, rounds) / 1e9;
      r->unit = " s";
      snprintf(r->floor, sizeof r->floor, "-");
      judge(r, CMP_LE, 1.0);
    }
    if (list_rss(s, streaming, kb) == 0) {
      r = add_row("");
      if (streaming) {
        snprintf(r->name, sizeof r->name, "list %s streaming RSS growth", cnt);
        r->ratio = (double)kb[1] / 1024.0;
        r->unit = " MB";
        snprintf(r->floor, sizeof r->floor, "-");
        judge(r, CMP_LE, 1.0); /* "flat": the walk's 256 KiB buffer, not the ids */
        snprintf(r->note, sizeof r->note, "peak RSS %.1f MB", (double)kb[0] / 1024.0);
      } else {
        snprintf(r->name, sizeof r->name, "list %s array peak RSS", cnt);
        r->ratio = (double)kb[0] / 1024.0;
        r->unit = " MB";
        snprintf(r->floor, sizeof r->floor, "-");
        judge(r, CMP_LE, 48.0);
        snprintf(r->note, sizeof r->note, "grew %.1f MB during the call",
                 (double)kb[1] / 1024.0);
      }
    }
  }
}

/* ---- growth --------------------------------------------------------------- */

struct gctx {
  struct store *s;
  size_t n;       /* population: ids g0..g<n-1> */
  const char *prefix;
  uint64_t next, first;
  const char *blob;
  uint64_t rnd;
};

static int growth_read(void *p)
{
  struct gctx *c = p;
  dfs_file *f = NULL;
  char id[64];
  size_t hot = c->n < 1000 ? c->n : 1000;
  /* a hot set of 1000 ids spread over the whole population */
  c->rnd = c->rnd * 6364136223846793005ull + 1442695040888963407ull;
  snprintf(id, sizeof id, "%s%zu", c->prefix, (size_t)((c->rnd >> 33) % hot) * (c->n / hot));
  if (dfs_read(c->s->st, id, &f) < 0) {
    fail("dfs_read %s: %s", id, dfs_last_error());
    return -1;
  }
  dfs_file_free(f);
  return 0;
}

static int growth_write(void *p)
{
  struct gctx *c = p;
  char id[64];
  dfs_meta m = bench_meta(1);
  snprintf(id, sizeof id, "gw%" PRIu64, c->next++);
  if (dfs_write(c->s->st, id, c->blob, 4096, &m) < 0) {
    fail("dfs_write %s: %s", id, dfs_last_error());
    return -1;
  }
  return 0;
}

static void growth_cleanup(struct gctx *c)
{
  char id[64];
  for (uint64_t i = c->first; i < c->next; i++) {
    snprintf(id, sizeof id, "gw%" PRIu64, i);
    (void)dfs_delete(c->s->nosync, id);
  }
  c->first = c->next;
}

static void bench_growth(const struct config *cfg, struct store *small, size_t nsmall,
                         struct store *big, size_t nbig)
{
  char blob[4096], cnt[32], name[96];
  fill(blob, sizeof blob);
  fmt_count(cnt, sizeof cnt, nbig);
  for (int w = 0; w < 2; w++) {
    struct side a = {0}, b = {0};
    struct gctx ca = {small, nsmall, "e", 0, 0, blob, 1}, cb = {big, nbig, "e", 0, 0, blob, 1};
    struct row *r;
    op_fn fn = w ? growth_write : growth_read;
    double secs = w ? cfg->secs : cfg->fast_secs;
    if (!w) {
      /* Warm both hot sets first, as every other read case is warm: after
       * populating a big store, the hot set's first reads would otherwise
       * be page-cache misses, a cost of having just written gigabytes,
       * not of the directory's size. */
      for (int k = 0; k < 2; k++) {
        struct gctx *g = k ? &cb : &ca;
        size_t hot = g->n < 1000 ? g->n : 1000;
        for (size_t i = 0; i < hot; i++) {
          char id[64];
          dfs_file *f = NULL;
          snprintf(id, sizeof id, "%s%zu", g->prefix, i * (g->n / hot));
          if (dfs_read(g->s->st, id, &f) == 0)
            dfs_file_free(f);
        }
      }
    }
    for (int rd = 0; rd < cfg->rounds; rd++) {
      for (int half = 0; half < 2; half++) {
        int small_now = (half == 0) == (rd % 2 == 0);
        if (run_timed(fn, small_now ? (void *)&ca : (void *)&cb, secs, 3, small_now ? &a : &b) < 0)
          goto out;
        if (w)
          growth_cleanup(small_now ? &ca : &cb);
      }
      progress_step();
    }
    snprintf(name, sizeof name, "growth %s at %s vs 1k", w ? "write 4 KiB" : "read", cnt);
    r = tp_row(name, &b, &a, 0.8);
    snprintf(r->floor, sizeof r->floor, "%.0f ops/s at 1k", r->floor_val);
  out:
    side_free(&a);
    side_free(&b);
  }
}

/* ---- output -------------------------------------------------------------- */

static void fmt_ns(char *buf, size_t size, double ns)
{
  if (ns <= 0)
    snprintf(buf, size, "-");
  else if (ns < 1e3)
    snprintf(buf, size, "%.0f ns", ns);
  else if (ns < 1e6)
    snprintf(buf, size, "%.1f us", ns / 1e3);
  else if (ns < 1e9)
    snprintf(buf, size, "%.2f ms", ns / 1e6);
  else
    snprintf(buf, size, "%.2f s", ns / 1e9);
}

static void print_table(void)
{
  printf("%-34s %11s %10s %10s %20s %11s %8s %5s\n", "case", "ops/s", "p50", "p99", "floor",
         "ratio", "target", "met?");
  for (int i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    char ops[24], p50[16], p99[16], ratio[24], target[16];
    if (r->ops > 0)
      snprintf(ops, sizeof ops, "%.0f", r->ops);
    else
      snprintf(ops, sizeof ops, "-");
    fmt_ns(p50, sizeof p50, r->p50);
    fmt_ns(p99, sizeof p99, r->p99);
    if (strcmp(r->unit, "x") == 0)
      snprintf(ratio, sizeof ratio, "%.2fx", r->ratio);
    else
      snprintf(ratio, sizeof ratio, "%.2f%s", r->ratio, r->unit);
    if (r->cmp == CMP_NONE)
      snprintf(target, sizeof target, "-");
    else
      snprintf(target, sizeof target, "%s%.*f%s", r->cmp == CMP_GE ? ">=" : "<=",
               r->target == (double)(long)r->target ? 0 : 1, r->target,
               strcmp(r->unit, "x") == 0 ? "x" : "");
    printf("%-34s %11s %10s %10s %20s %11s %8s %5s%s%s\n", r->name, ops, p50, p99, r->floor,
           ratio, target, r->met < 0 ? "-" : r->met ? "yes" : "NO", r->note[0] ? "  " : "",
           r->note);
  }
}

static void json_str(const char *s)
{
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", (unsigned char)*s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_json(const char *fs, int journal, const char *mode, const struct config *cfg)
{
  printf("{\"filesystem\":");
  json_str(fs);
  printf(",\"journal\":%s,\"sync_mode\":", journal < 0 ? "null" : journal ? "true" : "false");
  json_str(mode);
  printf(",\"rounds\":%d,\"full\":%s,\"cases\":[", cfg->rounds, cfg->full ? "true" : "false");
  for (int i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    printf("%s\n {\"case\":", i ? "," : "");
    json_str(r->name);
    printf(",\"ops_per_s\":%.1f,\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"floor\":%.3f,\"floor_unit\":",
           r->ops, r->p50, r->p99, r->floor_val);
    json_str(r->floor_unit);
    printf(",\"ratio\":%.4f,\"unit\":", r->ratio);
    json_str(strcmp(r->unit, "x") == 0 ? "x" : r->unit + 1);
    printf(",\"target\":");
    if (r->cmp == CMP_NONE)
      printf("null");
    else
      printf("\"%s%g\"", r->cmp == CMP_GE ? ">=" : "<=", r->target);
    printf(",\"met\":%s", r->met < 0 ? "null" : r->met ? "true" : "false");
    if (r->note[0]) {
      printf(",\"note\":");
      json_str(r->note);
    }
    printf("}");
  }
  printf("\n],\"failures\":%d}\n", failures);
}

/* ---- scratch ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  (void)remove(path);
  return 0;
}

static void usage(FILE *f, const char *prog)
{
  fprintf(f,
          "usage: %s [--short | --full] [--dir DIR] [--rounds N] [--json] [--strict]\n"
          "\n"
          "Benchmark deltafs against the raw syscall floor measured in the same run\n"
          "(README.md, section Performance).  Takes about a minute; --short under 2 minutes on a\n"
          "slow disk (fewer rounds, 10k-entity lists) for CI; --full adds the 1M-entity\n"
          "list and growth cases (several minutes, ~10 GB of disk).\n"
          "\n"
          "  --dir DIR    where to make the scratch store (default: the current\n"
          "               directory; must not be tmpfs).  Use a journaled filesystem:\n"
          "               bench/run-on-ext4.sh makes one on a loop device.\n"
          "  --rounds N   rounds per case (default 5; the median is reported)\n"
          "  --json       print the results as JSON instead of a table\n"
          "  --strict     exit 1 if a target is missed (default: report only)\n"
          "  --only G     run one group: writes, reads, rmw or list (list includes growth)\n"
          "\n"
          "Exit status: 0 done, 1 a correctness failure (lost update, wrong count,\n"
          "failed operation) or a missed target with --strict, 2 usage.\n",
          prog);
}

int dfs_bench_main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"help", 0, NULL, 'h'},   {"short", 0, NULL, 's'}, {"full", 0, NULL, 'f'},
      {"dir", 1, NULL, 'd'},    {"json", 0, NULL, 'j'},  {"rounds", 1, NULL, 'r'},
      {"strict", 0, NULL, 'S'}, {"only", 1, NULL, 'o'},   {NULL, 0, NULL, 0}};
  struct config cfg = {.prog = argv[0], .dir = ".", .rounds = 5, .secs = 0.4,
                       .fast_secs = 0.15, .list_n = {100000, 0}, .rmw_cycles = 100};
  char scratch[PATH_MAX], cwd[PATH_MAX];
  struct store main_store, small, big;
  struct statfs sfs;
  const char *fsname, *modename;
  int journal, opt, rounds_set = 0, missed = 0;
  size_t steps;

  optind = 1;
  while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h':
      usage(stdout, cfg.prog);
      return 0;
    case 's':
      cfg.short_mode = 1;
      break;
    case 'f':
      cfg.full = 1;
      break;
    case 'd':
      cfg.dir = optarg;
      break;
    case 'j':
      cfg.json = 1;
      break;
    case 'S':
      cfg.strict = 1;
      break;
    case 'o':
      if (strcmp(optarg, "writes") && strcmp(optarg, "reads") && strcmp(optarg, "rmw") &&
          strcmp(optarg, "list")) {
        fprintf(stderr, "%s: --only takes writes, reads, rmw or list\n", cfg.prog);
        return 2;
      }
      cfg.only = optarg;
      break;
    case 'r': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || v < 1 || v > MAX_ROUNDS) {
        fprintf(stderr, "%s: --rounds must be 1..%d\n", cfg.prog, MAX_ROUNDS);
        return 2;
      }
      cfg.rounds = (int)v;
      rounds_set = 1;
      break;
    }
    default:
      fprintf(stderr, "%s: bad option %s (try --help)\n", cfg.prog, argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc || (cfg.short_mode && cfg.full)) {
    fprintf(stderr, "%s: unexpected arguments (try --help)\n", cfg.prog);
    return 2;
  }
  if (cfg.short_mode) {
    if (!rounds_set)
      cfg.rounds = 3;
    cfg.secs = 0.25;
    cfg.fast_secs = 0.08;
    cfg.list_n[0] = 10000;
    cfg.rmw_cycles = 30;
  }
  if (cfg.full)
    cfg.list_n[1] = 1000000;

  if (statfs(cfg.dir, &sfs) < 0) {
    fprintf(stderr, "%s: %s: %s\n", cfg.prog, cfg.dir, strerror(errno));
    return 2;
  }
  if (sfs.f_type == 0x01021994) {
    fprintf(stderr, "%s: %s is tmpfs, which has no durability cost to measure; use --dir "
                    "on a disk (see bench/run-on-ext4.sh)\n",
            cfg.prog, cfg.dir);
    return 2;
  }
  snprintf(scratch, sizeof scratch, "%s/deltafs-bench.XXXXXX", cfg.dir);
  if (!mkdtemp(scratch)) {
    fprintf(stderr, "%s: mkdtemp in %s: %s\n", cfg.prog, cfg.dir, strerror(errno));
    return 2;
  }
  if (scratch[0] != '/' && getcwd(cwd, sizeof cwd)) {
    char rel[PATH_MAX];
    memcpy(rel, scratch, sizeof rel);
    if (strlen(cwd) + 1 + strlen(rel) < sizeof scratch) {
      memcpy(scratch, cwd, strlen(cwd));
      scratch[strlen(cwd)] = '/';
      memcpy(scratch + strlen(cwd) + 1, rel, strlen(rel) + 1);
    }
  }

  store_init(&small);
  store_init(&big);
  store_init(&main_store);
  if (store_open(&main_store, scratch, "main") < 0)
    goto done;
  fsname = dfs__commit_fs_name(main_store.files_fd, &journal);
  switch (dfs__commit_mode(main_store.files_fd)) {
  case DFS_SYNC_SFR:
    modename = "sync_file_range + directory fsync (journal commit)";
    break;
  case DFS_SYNC_FDATASYNC:
    modename = "fdatasync";
    break;
  default:
    modename = "fsync";
    break;
  }
  if (!cfg.json) {
    printf("deltafs bench: %s (%s), journal: %s\n", scratch, fsname,
           journal < 0 ? "unknown" : journal ? "yes" : "NO (durable writes cannot be "
                                                       "crash-atomic here; see README)");
    printf("temp sync: %s; directory fsync: %s\n", modename,
           getenv("DELTAFS_GROUP_COMMIT") && strcmp(getenv("DELTAFS_GROUP_COMMIT"), "0") == 0
               ? "one per write"
               : "group commit");
    printf("%d rounds per case, median reported%s\n\n", cfg.rounds,
           cfg.short_mode ? " (--short)" : cfg.full ? " (--full)" : "");
    fflush(stdout);
  }

  steps = (size_t)cfg.rounds * (4 * 2 + 1 + 4 + 2 * (cfg.list_n[1] ? 3 : 2) * 2) + 2;
  cli_progress_start(&pbar, "bench", steps);
  if (create_version_entities(&main_store) < 0)
    goto done;
  if (want(&cfg, "writes"))
    bench_writes(&cfg, &main_store);
  if (!failures && want(&cfg, "reads"))
    bench_reads(&cfg, &main_store);
  if (!failures && want(&cfg, "rmw"))
    bench_rmw(&cfg, &main_store);

  if (!failures && want(&cfg, "list") && store_open(&small, scratch, "small") == 0 &&
      store_open(&big, scratch, "big") == 0 && populate(&small, "e", 0, 1000) == 0) {
    size_t have = 0;
    for (int k = 0; k < 2 && !failures && cfg.list_n[k]; k++) {
      if (populate(&big, "e", have, cfg.list_n[k]) < 0)
        break;
      have = cfg.list_n[k];
      bench_list(&cfg, &big, have);
      if (!failures && (k == 1 || !cfg.list_n[1])) {
        /* Both populations settled (metadata >= DFS_VERSION_SETTLE_MS old),
         * so both sides read through the same (cached) path and the ratio
         * measures the directory's size, not the age of its files. */
        usleep((DFS_VERSION_SETTLE_MS + 50) * 1000);
        bench_growth(&cfg, &small, 1000, &big, have);
      }
    }
  }
  cli_progress_done(&pbar);

  if (cfg.json) {
    print_json(fsname, journal, modename, &cfg);
  } else {
    print_table();
    int met = 0, judged = 0;
    for (int i = 0; i < nrows; i++) {
      met += rows[i].met == 1;
      judged += rows[i].met >= 0;
    }
    printf("\n%d of %d targets met%s\n", met, judged,
           cfg.short_mode ? " (--short: reported, not asserted)" : "");
  }
  for (int i = 0; i < nrows; i++)
    missed += rows[i].met == 0;

done:
  store_close(&big);
  store_close(&small);
  store_close(&main_store);
  (void)nftw(scratch, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
  if (failures)
    return 1;
  return cfg.strict && missed ? 1 : 0;
}
