/*
 * distfs_check.c — cross-mount scenarios for deltafs on a shared
 * filesystem (GlusterFS in run.sh): two FUSE mounts of one volume stand in
 * for two hosts.  Each subcommand is one role; run.sh starts the roles on
 * mount A and mount B and judges their exit status.
 *
 * Every role checks an outcome a broken implementation would miss, and
 * exits 1 (with a line on stderr) when it sees a violation, 2 on a usage
 * or setup error:
 *
 *   torn-writer ROOT ID SECS        write versions 1,2,3... of ID under its
 *                                   exclusive lock; each blob's size and
 *                                   bytes are a function of its version
 *   torn-reader ROOT ID SECS MODE   read ID in a loop (MODE plain: bare
 *                                   dfs_read; locked: under a shared lock,
 *                                   plus dfs_version).  Violation: any read
 *                                   error other than "not found yet"
 *                                   (DFS_ECORRUPT above all), a blob that is
 *                                   not the one of its metadata's version,
 *                                   or a version lower than one seen before
 *   counter ROOT ID N               N increments of a counter, each a
 *                                   read-modify-write under the exclusive
 *                                   lock with dfs_write_if_version (a lost
 *                                   exclusion shows up as DFS_ECONFLICT)
 *   counter-check ROOT ID TOTAL     the counter and its version are TOTAL
 *   kill-release ROOTA ROOTB ID K   K times: a child on A (`hold`) takes ID
 *                                   exclusively, B's try must be DFS_EBUSY,
 *                                   the child is SIGKILLed, B must get the
 *                                   lock (within 20 s); prints how long it
 *                                   took after the kill
 *   contend ROOT ID SECS MARKER     exclusive holders of ID on both mounts
 *                                   create MARKER (a path on the same
 *                                   volume) with O_EXCL inside the critical
 *                                   section and remove it before leaving; an
 *                                   EEXIST means two holders at once.  A
 *                                   third of the critical sections delete
 *                                   the entity (which unlinks the lock file
 *                                   while held), the rest write it.
 *   rogue-delete ROOT ID SECS       dfs_delete without holding the lock, in
 *                                   a loop: its own try-lock + unlink of the
 *                                   lock file must not let two holders in
 *   crash-sweep ROOTA ROOTB         for every syscall position k of one
 *                                   overwrite: a child on A (`crash-child`,
 *                                   exec'd fresh) writes v1, then
 *                                   dies by SIGKILL at the k-th call (fault
 *                                   injection) of writing v2; B opens the
 *                                   store (recovery) and must read exactly
 *                                   v1 or v2, and .deltafs-tmp must drain
 *                                   once the dead writer's flock is gone
 *   fallback ROOT                   RENAME_EXCHANGE on this filesystem, and
 *                                   an injected failure of the metadata
 *                                   rename on the no-exchange path: the
 *                                   entity must still read as the old or
 *                                   the new pair, never DFS_ECORRUPT
 *   verify ROOT PREFIX              every entity PREFIX* reads and matches
 *                                   its version; no temp is left
 *
 * Blobs are generated from the version (make_blob), so a reader can tell a
 * blob of another version, a truncated blob or a mixed pair apart from the
 * right one without any side channel.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
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

static const char *prog = "distfs_check";

#define FAIL(...)                                                                          \
  do {                                                                                     \
    fprintf(stderr, "%s: FAIL: ", prog);                                                   \
    fprintf(stderr, __VA_ARGS__);                                                          \
    fprintf(stderr, "\n");                                                                 \
    exit(1);                                                                               \
  } while (0)

#define SETUP_FAIL(...)                                                                    \
  do {                                                                                     \
    fprintf(stderr, "%s: ", prog);                                                         \
    fprintf(stderr, __VA_ARGS__);                                                          \
    fprintf(stderr, "\n");                                                                 \
    exit(2);                                                                               \
  } while (0)

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static dfs_storage *open_store(const char *root)
{
  dfs_storage *st;
  int rc = dfs_storage_open(&st, root, NULL);
  if (rc < 0)
    SETUP_FAIL("open store %s: %s (%s)", root, dfs_strerror(rc), dfs_last_error());
  return st;
}

/* The blob of `version`: a size between 40 bytes and ~24 KiB that changes
 * with the version (a torn pair is then usually a size mismatch as well as
 * a content one), a textual header and a version-dependent byte pattern. */
static size_t blob_size(int64_t version)
{
  return 40 + (size_t)((uint64_t)version * 7919u % 24000u);
}

static char *make_blob(int64_t version, size_t *len)
{
  size_t n = blob_size(version);
  char *b = malloc(n);
  if (!b)
    SETUP_FAIL("out of memory");
  int h = snprintf(b, n, "v=%020" PRId64 ";", version);
  for (size_t i = (size_t)h; i < n; i++)
    b[i] = (char)(((uint64_t)version * 131u + i * 7u) & 0xff);
  *len = n;
  return b;
}

/* 1 if f is exactly the pair of its metadata's version. */
static int pair_ok(const dfs_file *f)
{
  size_t n;
  char *want = make_blob(f->meta.version, &n);
  int ok = f->blob_len == n && memcmp(f->blob, want, n) == 0;
  free(want);
  return ok;
}

static int write_version(dfs_storage *st, const char *id, int64_t v)
{
  size_t n;
  char *b = make_blob(v, &n);
  dfs_meta m = tu_meta(v);
  int rc = dfs_write(st, id, b, n, &m);
  free(b);
  return rc;
}

/* ---- torn pairs ---------------------------------------------------------- */

static int cmd_torn_writer(const char *root, const char *id, int secs)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m;
  double end = now_ms() + secs * 1000.0;
  int64_t v = 0;

  if (dfs_lockmgr_new(&m, st) < 0)
    SETUP_FAIL("lockmgr: %s", dfs_last_error());
  while (now_ms() < end) {
    int rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE);
    if (rc < 0)
      FAIL("writer: acquire %s: %s", id, dfs_last_error());
    rc = write_version(st, id, ++v);
    if (rc < 0)
      FAIL("writer: write %s v%" PRId64 ": %s", id, v, dfs_last_error());
    dfs_lockmgr_release(m, id);
  }
  printf("writer %s: %" PRId64 " versions\n", id, v);
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return 0;
}

static int cmd_torn_reader(const char *root, const char *id, int secs, const char *mode)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m = NULL;
  int locked = strcmp(mode, "locked") == 0;
  double end = now_ms() + secs * 1000.0;
  int64_t last = 0;
  long reads = 0, missing = 0, changes = 0;

  if (locked && dfs_lockmgr_new(&m, st) < 0)
    SETUP_FAIL("lockmgr: %s", dfs_last_error());
  while (now_ms() < end) {
    dfs_file *f = NULL;
    int rc;
    if (locked && (rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_SHARED)) < 0)
      FAIL("reader: acquire shared %s: %s", id, dfs_last_error());
    rc = dfs_read(st, id, &f);
    if (rc == DFS_ENOTFOUND && last == 0) {
      missing++; /* the writer has not committed its first version yet */
    } else if (rc < 0) {
      FAIL("reader (%s): read %s after version %" PRId64 ": %s: %s", mode, id, last,
           dfs_strerror(rc), dfs_last_error());
    } else {
      if (!pair_ok(f))
        FAIL("reader (%s): %s version %" PRId64 " has a blob of %zu bytes that is not its own",
             mode, id, f->meta.version, f->blob_len);
      if (f->meta.version < last)
        FAIL("reader (%s): %s went back from version %" PRId64 " to %" PRId64, mode, id, last,
             f->meta.version);
      if (f->meta.version != last)
        changes++;
      last = f->meta.version;
      if (locked) {
        /* Under the shared lock nobody writes: the cheap version must be
         * the one just read. */
        int64_t vv = -1;
        if ((rc = dfs_version(st, id, &vv)) < 0 || vv != last)
          FAIL("reader (locked): dfs_version %s = %" PRId64 " (%s), read %" PRId64, id, vv,
               dfs_strerror(rc), last);
      }
      reads++;
    }
    dfs_file_free(f);
    if (locked)
      dfs_lockmgr_release(m, id);
  }
  printf("reader %s (%s): %ld reads, %ld versions seen changing, last v%" PRId64
         ", %ld not-yet\n",
         id, mode, reads, changes, last, missing);
  if (reads == 0)
    FAIL("reader (%s): no successful read of %s", mode, id);
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return 0;
}

/* ---- counters ----------------------------------------------------------- */

static int cmd_counter(const char *root, const char *id, long n)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m;

  if (dfs_lockmgr_new(&m, st) < 0)
    SETUP_FAIL("lockmgr: %s", dfs_last_error());
  for (long i = 0; i < n; i++) {
    dfs_file *f = NULL;
    long value = 0;
    int64_t ver = 0;
    char buf[32];
    dfs_meta meta;
    int rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE);
    if (rc < 0)
      FAIL("counter: acquire %s: %s", id, dfs_last_error());
    rc = dfs_read(st, id, &f);
    if (rc == 0) {
      char tmp[32] = "";
      memcpy(tmp, f->blob, f->blob_len < sizeof tmp - 1 ? f->blob_len : sizeof tmp - 1);
      value = strtol(tmp, NULL, 10);
      ver = f->meta.version;
      dfs_file_free(f);
    } else if (rc != DFS_ENOTFOUND) {
      FAIL("counter: read %s: %s", id, dfs_last_error());
    }
    if (value != ver)
      FAIL("counter: %s holds %ld at version %" PRId64 " (a lost update)", id, value, ver);
    snprintf(buf, sizeof buf, "%ld", value + 1);
    meta = tu_meta(ver + 1);
    /* The conditional write fails with DFS_ECONFLICT if someone wrote
     * between our read and our write: impossible under a working lock. */
    rc = dfs_write_if_version(st, id, buf, strlen(buf), &meta, ver);
    if (rc < 0)
      FAIL("counter: write %s %" PRId64 "->%" PRId64 ": %s: %s", id, ver, ver + 1,
           dfs_strerror(rc), dfs_last_error());
    if ((rc = dfs_lockmgr_release(m, id)) < 0)
      FAIL("counter: release %s: %s", id, dfs_last_error());
  }
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return 0;
}

static int cmd_counter_check(const char *root, const char *id, long total)
{
  dfs_storage *st = open_store(root);
  dfs_file *f = NULL;
  char tmp[32] = "";
  int rc = dfs_read(st, id, &f);
  if (rc < 0)
    FAIL("counter-check: read %s: %s", id, dfs_last_error());
  memcpy(tmp, f->blob, f->blob_len < sizeof tmp - 1 ? f->blob_len : sizeof tmp - 1);
  if (strtol(tmp, NULL, 10) != total || f->meta.version != total)
    FAIL("counter-check: %s is %s at version %" PRId64 ", expected %ld", id, tmp,
         f->meta.version, total);
  printf("counter %s = %ld (version %" PRId64 "), as expected\n", id, total, f->meta.version);
  dfs_file_free(f);
  dfs_storage_close(st);
  return 0;
}

/* ---- a killed holder ---------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int cmd_kill_release(const char *root_a, const char *root_b, const char *id, int rounds)
{
  dfs_storage *sb = open_store(root_b);
  dfs_lockmgr *mb;
  double *ms = calloc((size_t)rounds, sizeof *ms);

  if (!ms || dfs_lockmgr_new(&mb, sb) < 0)
    SETUP_FAIL("setup: %s", dfs_last_error());
  for (int r = 0; r < rounds; r++) {
    int p[2], rc, status;
    char c;
    pid_t pid;
    double t0;

    if (pipe(p) < 0)
      SETUP_FAIL("pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
      SETUP_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
      /* The holder, on mount A, in a fresh exec'd process: nothing of the
       * parent's library state (mount B handle, threads) comes along. */
      char fdarg[16];
      close(p[0]);
      snprintf(fdarg, sizeof fdarg, "%d", p[1]);
      execl("/proc/self/exe", "distfs_check", "hold", root_a, id, fdarg, (char *)NULL);
      _exit(2);
    }
    close(p[1]);
    if (read(p[0], &c, 1) != 1)
      FAIL("kill-release: the holder on A died before taking the lock");
    close(p[0]);
    rc = dfs_lockmgr_try_acquire(mb, id, DFS_LOCK_EXCLUSIVE);
    if (rc != DFS_EBUSY) {
      kill(pid, SIGKILL);
      FAIL("kill-release: B's try while A holds %s returned %d (%s), expected DFS_EBUSY", id, rc,
           dfs_strerror(rc));
    }
    t0 = now_ms();
    kill(pid, SIGKILL);
    rc = dfs_lockmgr_acquire_timeout(mb, id, DFS_LOCK_EXCLUSIVE, 20000);
    ms[r] = now_ms() - t0;
    waitpid(pid, &status, 0);
    if (rc < 0)
      FAIL("kill-release: B did not get %s within 20 s of A's holder being killed: %s", id,
           dfs_last_error());
    dfs_lockmgr_release(mb, id);
  }
  qsort(ms, (size_t)rounds, sizeof *ms, cmp_double);
  printf("kill-release: lock free on B after SIGKILL of holder on A: median %.1f ms, "
         "min %.1f, max %.1f (%d rounds)\n",
         ms[rounds / 2], ms[0], ms[rounds - 1], rounds);
  free(ms);
  dfs_lockmgr_free(mb);
  dfs_storage_close(sb);
  return 0;
}

/* ---- deletes while others contend -------------------------------------- */

static int cmd_contend(const char *root, const char *id, int secs, const char *marker)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m;
  double end = now_ms() + secs * 1000.0;
  long entries = 0, deletes = 0;
  unsigned seed = (unsigned)getpid();
  /* DISTFS_DELETE_EVERY=n: delete in one critical section out of n (0:
   * never), to tell the lock file's removal apart from plain contention. */
  const char *de = getenv("DISTFS_DELETE_EVERY");
  int delete_every = de ? atoi(de) : 3;

  if (dfs_lockmgr_new(&m, st) < 0)
    SETUP_FAIL("lockmgr: %s", dfs_last_error());
  while (now_ms() < end) {
    int rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE), fd;
    if (rc < 0)
      FAIL("contend: acquire %s: %s: %s", id, dfs_strerror(rc), dfs_last_error());
    /* O_EXCL create is atomic on the server: if the marker is there,
     * another exclusive holder is inside right now. */
    fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 && errno == EEXIST) {
      char who[64] = "";
      int mfd = open(marker, O_RDONLY);
      if (mfd >= 0) {
        ssize_t n = read(mfd, who, sizeof who - 1);
        who[n > 0 ? n : 0] = '\0';
        close(mfd);
      }
      FAIL("contend: %s: two exclusive holders at once (marker %s exists, made by %s; "
           "I am pid %d after %ld entries)",
           id, marker, who, (int)getpid(), entries);
    }
    if (fd < 0)
      SETUP_FAIL("contend: create %s: %s", marker, strerror(errno));
    dprintf(fd, "pid %d entry %ld", (int)getpid(), entries);
    close(fd);
    if (delete_every && rand_r(&seed) % delete_every == 0) {
      rc = dfs_delete(st, id); /* unlinks the lock file: we hold it */
      deletes++;
    } else {
      rc = write_version(st, id, entries + 1);
    }
    if (rc < 0) {
      /* Leave the critical section cleanly first, so the report is about
       * this failure and not about the marker we would leave behind. */
      unlink(marker);
      FAIL("contend: %s: %s: %s", id, dfs_strerror(rc), dfs_last_error());
    }
    if (rand_r(&seed) % 4 == 0)
      usleep(1000);
    if (unlink(marker) < 0)
      FAIL("contend: remove %s: %s (someone else removed it: two holders)", marker,
           strerror(errno));
    if ((rc = dfs_lockmgr_release(m, id)) < 0)
      FAIL("contend: release %s: %s", id, dfs_last_error());
    entries++;
  }
  printf("contend %s: %ld critical sections, %ld deletes\n", id, entries, deletes);
  if (entries == 0)
    FAIL("contend: never got the lock");
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return 0;
}

static int cmd_rogue_delete(const char *root, const char *id, int secs)
{
  dfs_storage *st = open_store(root);
  double end = now_ms() + secs * 1000.0;
  long n = 0;
  while (now_ms() < end) {
    int rc = dfs_delete(st, id);
    if (rc < 0)
      FAIL("rogue-delete %s: %s: %s", id, dfs_strerror(rc), dfs_last_error());
    n++;
    usleep(3000);
  }
  printf("rogue-delete %s: %ld deletes without the lock\n", id, n);
  dfs_storage_close(st);
  return 0;
}

/* ---- crashes on A, recovery on B --------------------------------------- */

static int count_temps(const char *root)
{
  char path[4096];
  int n = 0;
  struct dirent *d;
  DIR *dir;
  snprintf(path, sizeof path, "%s/.deltafs-tmp", root);
  dir = opendir(path);
  if (!dir)
    return -1;
  while ((d = readdir(dir)))
    if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
      n++;
  closedir(dir);
  return n;
}

/* Open the store on `root` (recovery) until .deltafs-tmp is empty: a dead
 * writer's flock is released by the server a little after the kill, and
 * until then its temps count as live and are left alone.  Returns the
 * time it took, or -1 if temps remained for 10 s. */
static double drain_temps(const char *root)
{
  double t0 = now_ms();
  for (;;) {
    dfs_storage *st = open_store(root);
    dfs_storage_close(st);
    if (count_temps(root) == 0)
      return now_ms() - t0;
    if (now_ms() - t0 > 10000)
      return -1;
    usleep(20000);
  }
}

static void check_v1_or_v2(dfs_storage *st, const char *id, int k, int64_t *got)
{
  dfs_file *f = NULL;
  int rc = dfs_read(st, id, &f);
  if (rc < 0)
    FAIL("crash-sweep k=%d: read %s on B: %s: %s", k, id, dfs_strerror(rc), dfs_last_error());
  if ((f->meta.version != 1 && f->meta.version != 2) || !pair_ok(f))
    FAIL("crash-sweep k=%d: %s reads as version %" PRId64 " with a blob that is %s", k, id,
         f->meta.version, pair_ok(f) ? "its own" : "not its own");
  *got = f->meta.version;
  dfs_file_free(f);
}

/* kill-release's holder: take `id` exclusively, say so on fd, wait to be
 * killed. */
static int cmd_hold(const char *root, const char *id, int fd)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m;
  if (dfs_lockmgr_new(&m, st) < 0 || dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE) < 0)
    SETUP_FAIL("hold %s: %s", id, dfs_last_error());
  if (write(fd, "h", 1) != 1)
    SETUP_FAIL("hold: %s", strerror(errno));
  for (;;)
    pause();
}

/* crash-sweep's writer: v1 committed, then v2 under the entity lock, dying
 * by SIGKILL at the k-th wrapped call of that write. */
static int cmd_crash_child(const char *root, const char *id, unsigned long k)
{
  dfs_storage *st = open_store(root);
  dfs_lockmgr *m;
  if (write_version(st, id, 1) < 0 || dfs_lockmgr_new(&m, st) < 0 ||
      dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE) < 0)
    SETUP_FAIL("crash child %s: %s", id, dfs_last_error());
  dfs_fault_arm(DFS_FAULT_MASK_ALL, k, DFS_FAULT_KILL, 0, 0);
  if (write_version(st, id, 2) < 0)
    SETUP_FAIL("crash child %s: %s", id, dfs_last_error());
  return 0;
}

static int cmd_crash_sweep(const char *root_a, const char *root_b)
{
  unsigned long calls;
  int v1 = 0, v2 = 0;
  double worst_drain = 0;

  /* How many wrapped calls one overwrite makes (on A, unarmed). */
  {
    dfs_storage *st = open_store(root_a);
    if (write_version(st, "crash-probe", 1) < 0)
      FAIL("crash-sweep: probe write: %s", dfs_last_error());
    dfs_fault_count_start(DFS_FAULT_MASK_ALL);
    if (write_version(st, "crash-probe", 2) < 0)
      FAIL("crash-sweep: probe write: %s", dfs_last_error());
    calls = dfs_fault_count();
    dfs_fault_disarm();
    dfs_delete(st, "crash-probe");
    dfs_storage_close(st);
  }
  for (unsigned long k = 1; k <= calls + 1; k++) {
    char id[64];
    int status;
    int64_t got = 0;
    double drained;
    pid_t pid;

    snprintf(id, sizeof id, "crash-%lu", k);
    pid = fork();
    if (pid < 0)
      SETUP_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
      char karg[24];
      snprintf(karg, sizeof karg, "%lu", k);
      execl("/proc/self/exe", "distfs_check", "crash-child", root_a, id, karg, (char *)NULL);
      _exit(2);
    }
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      FAIL("crash-sweep k=%lu: the writer on A failed (exit %d)", k, WEXITSTATUS(status));
    if (!WIFSIGNALED(status) && k <= calls)
      FAIL("crash-sweep k=%lu: the writer was not killed (count %lu)", k, calls);
    /* Read on B right away: the writer's flocks may still look held. */
    {
      dfs_storage *sb = open_store(root_b);
      check_v1_or_v2(sb, id, (int)k, &got);
      dfs_storage_close(sb);
    }
    drained = drain_temps(root_b);
    if (drained < 0)
      FAIL("crash-sweep k=%lu: %d temps still in %s/.deltafs-tmp 10 s after the crash", k,
           count_temps(root_b), root_b);
    if (drained > worst_drain)
      worst_drain = drained;
    {
      /* After recovery the answer must not change: a read that returned
       * the new pair from pending metadata is now rolled forward. */
      dfs_storage *sb = open_store(root_b);
      int64_t again = 0;
      check_v1_or_v2(sb, id, (int)k, &again);
      if (again != got)
        FAIL("crash-sweep k=%lu: %s read v%" PRId64 " before recovery, v%" PRId64 " after", k,
             id, got, again);
      dfs_storage_close(sb);
    }
    if (got == 1)
      v1++;
    else
      v2++;
  }
  printf("crash-sweep: %lu kill points in one overwrite on A; B read the old pair %d times, "
         "the new pair %d times; temps drained within %.0f ms at worst\n",
         calls, v1, v2, worst_drain);
  if (v1 == 0 || v2 == 0)
    FAIL("crash-sweep: expected both outcomes across the sweep (old %d, new %d)", v1, v2);
  return 0;
}

/* ---- the no-RENAME_EXCHANGE path ---------------------------------------- */

static int cmd_fallback(const char *root)
{
  char a[4096], b[4096];
  dfs_storage *st = open_store(root);
  dfs_file *f = NULL;
  int rc, fd, exch;
  unsigned long renames;

  /* Does this filesystem do RENAME_EXCHANGE? */
  snprintf(a, sizeof a, "%s/xchg-a", root);
  snprintf(b, sizeof b, "%s/xchg-b", root);
  fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  close(fd);
  fd = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  close(fd);
  exch = renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
  printf("fallback: renameat2(RENAME_EXCHANGE) on %s: %s\n", root,
         exch == 0 ? "supported" : strerror(errno));
  unlink(a);
  unlink(b);

  if (write_version(st, "fb", 1) < 0 || write_version(st, "fb", 2) < 0)
    FAIL("fallback: overwrite: %s", dfs_last_error());
  if (dfs_read(st, "fb", &f) < 0 || f->meta.version != 2 || !pair_ok(f))
    FAIL("fallback: overwrite did not read back: %s", dfs_last_error());
  dfs_file_free(f);
  f = NULL;

  /* Fail the LAST rename of an overwrite: the metadata commit. */
  dfs_fault_count_start(DFS_FAULT_MASK(DFS_SYS_RENAME));
  if (write_version(st, "fb", 3) < 0)
    FAIL("fallback: overwrite: %s", dfs_last_error());
  renames = dfs_fault_count();
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_RENAME), renames, DFS_FAULT_FAIL, EIO, 0);
  rc = write_version(st, "fb", 4);
  dfs_fault_disarm();
  printf("fallback: overwrite makes %lu rename calls; with the metadata rename failing, "
         "dfs_write returned %d (%s)\n",
         renames, rc, dfs_strerror(rc));
  if (rc != DFS_EWRITE)
    FAIL("fallback: a failed metadata rename returned %d, expected DFS_EWRITE", rc);
  rc = dfs_read(st, "fb", &f);
  if (rc < 0)
    FAIL("fallback: after a failed metadata rename, read: %s: %s", dfs_strerror(rc),
         dfs_last_error());
  if ((f->meta.version != 3 && f->meta.version != 4) || !pair_ok(f))
    FAIL("fallback: after a failed metadata rename, read version %" PRId64 " (%s blob)",
         f->meta.version, pair_ok(f) ? "its own" : "a foreign");
  printf("fallback: after the failed commit the entity reads as version %" PRId64 "\n",
         f->meta.version);
  dfs_file_free(f);
  dfs_storage_close(st);
  if (drain_temps(root) < 0)
    FAIL("fallback: temps left in %s/.deltafs-tmp", root);
  st = open_store(root);
  if (dfs_read(st, "fb", &f) < 0 || !pair_ok(f))
    FAIL("fallback: after recovery: %s", dfs_last_error());
  printf("fallback: after recovery version %" PRId64 "\n", f->meta.version);
  dfs_file_free(f);
  dfs_delete(st, "fb");
  dfs_storage_close(st);
  return 0;
}

/* ---- whole-store verification ------------------------------------------ */

static int cmd_verify(const char *root, const char *prefix)
{
  dfs_storage *st;
  dfs_id_list *l;
  long ok = 0;
  if (drain_temps(root) < 0)
    FAIL("verify: %d temps left in %s/.deltafs-tmp", count_temps(root), root);
  st = open_store(root);
  if (dfs_list(st, &l) < 0)
    FAIL("verify: list: %s", dfs_last_error());
  for (size_t i = 0; i < l->count; i++) {
    dfs_file *f = NULL;
    int rc;
    if (strncmp(l->ids[i], prefix, strlen(prefix)) != 0)
      continue; /* not written by make_blob (counters...) */
    rc = dfs_read(st, l->ids[i], &f);
    if (rc == DFS_ENOTFOUND)
      continue; /* a blob without metadata: a delete cut short; not listed by fsck */
    if (rc < 0)
      FAIL("verify: read %s: %s: %s", l->ids[i], dfs_strerror(rc), dfs_last_error());
    if (!pair_ok(f))
      FAIL("verify: %s version %" PRId64 " does not hold its own blob", l->ids[i],
           f->meta.version);
    dfs_file_free(f);
    ok++;
  }
  printf("verify %s: %ld entities %s* read back whole\n", root, ok, prefix);
  if (ok == 0)
    FAIL("verify: no entity %s* in %s", prefix, root);
  dfs_list_free(l);
  dfs_storage_close(st);
  return 0;
}

static void usage(void)
{
  fprintf(stderr, "usage: %s torn-writer|torn-reader|counter|counter-check|kill-release|"
                  "contend|rogue-delete|crash-sweep|fallback|verify ARGS (see the source)\n",
          prog);
  exit(2);
}

int main(int argc, char **argv)
{
  const char *c;
  if (argc < 3)
    usage();
  c = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(c, "torn-writer") && argc == 5)
    return cmd_torn_writer(argv[2], argv[3], atoi(argv[4]));
  if (!strcmp(c, "torn-reader") && argc == 6)
    return cmd_torn_reader(argv[2], argv[3], atoi(argv[4]), argv[5]);
  if (!strcmp(c, "counter") && argc == 5)
    return cmd_counter(argv[2], argv[3], atol(argv[4]));
  if (!strcmp(c, "counter-check") && argc == 5)
    return cmd_counter_check(argv[2], argv[3], atol(argv[4]));
  if (!strcmp(c, "kill-release") && argc == 6)
    return cmd_kill_release(argv[2], argv[3], argv[4], atoi(argv[5]));
  if (!strcmp(c, "contend") && argc == 6)
    return cmd_contend(argv[2], argv[3], atoi(argv[4]), argv[5]);
  if (!strcmp(c, "rogue-delete") && argc == 5)
    return cmd_rogue_delete(argv[2], argv[3], atoi(argv[4]));
  if (!strcmp(c, "hold") && argc == 5)
    return cmd_hold(argv[2], argv[3], atoi(argv[4]));
  if (!strcmp(c, "crash-child") && argc == 5)
    return cmd_crash_child(argv[2], argv[3], strtoul(argv[4], NULL, 10));
  if (!strcmp(c, "crash-sweep") && argc == 4)
    return cmd_crash_sweep(argv[2], argv[3]);
  if (!strcmp(c, "fallback") && argc == 3)
    return cmd_fallback(argv[2]);
  if (!strcmp(c, "verify") && argc == 4)
    return cmd_verify(argv[2], argv[3]);
  usage();
  return 2;
}
