/*
 * distfs_overhead.c — what deltafs costs on a shared filesystem, against
 * the raw syscalls any correct scheme needs on the same mount.
 *
 *   distfs_overhead DIR [ROUNDS [OPS]]
 *
 * Two operations, each timed as ROUNDS rounds of OPS operations; the
 * median round is reported (per operation, in microseconds):
 *
 *   write        dfs_write of a 1 KiB blob (durable, default options)
 *   write floor  the minimum for a crash-safe pair replace without the
 *                protocol: create + write + fsync two files, close them,
 *                rename both over their targets (no directory fsync), all
 *                relative to a directory descriptor as deltafs does
 *   locked read  dfs_lockmgr_acquire(shared) + dfs_read + release
 *   read floor   open+read+close of both files + flock(LOCK_SH)/LOCK_UN
 *                on an already-open lock file
 *
 * It prints numbers and asserts nothing about them (machines are noisy);
 * it fails only if an operation itself fails.  Linked against the release
 * library (no fault-injection hooks in the timed path).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deltafs/deltafs.h"
#include "support.h"

#define BLOB 1024

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
  fprintf(stderr, "distfs_overhead: %s: %s / %s\n", what, strerror(errno), dfs_last_error());
  exit(1);
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

/* One file of the floor write: create, write, fsync, close. */
static void floor_file(int dir, const char *tmp, const char *data, size_t len)
{
  int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) < 0 || close(fd) < 0)
    die("floor write");
}

static void floor_rename(int dir, const char *tmp, const char *final)
{
  if (renameat(dir, tmp, dir, final) < 0)
    die("floor rename");
}

static void slurp(int dir, const char *name)
{
  char buf[8192];
  int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("floor open");
  while (read(fd, buf, sizeof buf) > 0)
    ;
  close(fd);
}

int main(int argc, char **argv)
{
  const char *dir;
  int rounds = 5, ops = 30, lockfd, fdir;
  char blob[BLOB], meta_json[400], floordir[4096], lockpath[4200];
  double *w, *wf, *r, *rf;
  dfs_storage *st;
  dfs_lockmgr *m;
  int64_t v = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: distfs_overhead DIR [ROUNDS [OPS]]\n");
    return 2;
  }
  dir = argv[1];
  if (argc > 2)
    rounds = atoi(argv[2]);
  if (argc > 3)
    ops = atoi(argv[3]);
  if (rounds < 1 || ops < 1)
    return 2;
  memset(blob, 'x', sizeof blob);
  /* The floor's "metadata" is as big as deltafs's real one. */
  memset(meta_json, 'm', sizeof meta_json);
  w = calloc((size_t)rounds, sizeof *w);
  wf = calloc((size_t)rounds, sizeof *wf);
  r = calloc((size_t)rounds, sizeof *r);
  rf = calloc((size_t)rounds, sizeof *rf);
  if (!w || !wf || !r || !rf)
    die("calloc");

  if (dfs_storage_open(&st, dir, NULL) < 0 || dfs_lockmgr_new(&m, st) < 0)
    die("open store");
  snprintf(floordir, sizeof floordir, "%s/floor", dir);
  if (mkdir(floordir, 0755) < 0 && errno != EEXIST)
    die("mkdir floor");
  snprintf(lockpath, sizeof lockpath, "%s/b.lock", floordir);
  lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  /* Like deltafs, the floor works relative to a directory descriptor: no
   * path walk (a FUSE lookup per component) per operation. */
  fdir = open(floordir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lockfd < 0 || fdir < 0)
    die("open floor lock");

  /* Interleave the rounds so drift in the machine's load hits both. */
  for (int rd = 0; rd < rounds; rd++) {
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
      dfs_meta mt = tu_meta(++v);
      if (dfs_write(st, "bench", blob, sizeof blob, &mt) < 0)
        die("dfs_write");
    }
    w[rd] = (now_us() - t0) / ops;

    t0 = now_us();
    for (int i = 0; i < ops; i++) {
      floor_file(fdir, "b.tmp", blob, sizeof blob);
      floor_file(fdir, "m.tmp", meta_json, sizeof meta_json);
      floor_rename(fdir, "b.tmp", "b");
      floor_rename(fdir, "m.tmp", "m");
    }
    wf[rd] = (now_us() - t0) / ops;

    t0 = now_us();
    for (int i = 0; i < ops; i++) {
      dfs_file *f = NULL;
      if (dfs_lockmgr_acquire(m, "bench", DFS_LOCK_SHARED) < 0 || dfs_read(st, "bench", &f) < 0)
        die("locked read");
      dfs_file_free(f);
      dfs_lockmgr_release(m, "bench");
    }
    r[rd] = (now_us() - t0) / ops;

    t0 = now_us();
    for (int i = 0; i < ops; i++) {
      if (flock(lockfd, LOCK_SH) < 0)
        die("flock");
      slurp(fdir, "m");
      slurp(fdir, "b");
      if (flock(lockfd, LOCK_UN) < 0)
        die("flock");
    }
    rf[rd] = (now_us() - t0) / ops;
  }
  {
    double mw = median(w, rounds), mwf = median(wf, rounds);
    double mr = median(r, rounds), mrf = median(rf, rounds);
    printf("overhead on %s (median of %d rounds x %d ops, 1 KiB blob):\n", dir, rounds, ops);
    printf("  write        %9.0f us   floor %9.0f us   ratio %.2f\n", mw, mwf, mw / mwf);
    printf("  locked read  %9.0f us   floor %9.0f us   ratio %.2f\n", mr, mrf, mr / mrf);
  }
  close(lockfd);
  close(fdir);
  dfs_lockmgr_free(m);
  dfs_delete(st, "bench");
  dfs_storage_close(st);
  free(w);
  free(wf);
  free(r);
  free(rf);
  return 0;
}
