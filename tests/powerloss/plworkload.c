/*
 * plworkload.c — the workload the power-loss harness records (see
 * powerloss.sh for the harness design).
 *
 *   plworkload STORE CTL SEED OPS [THREADS]
 *
 * Opens STORE with the default (durable) options and runs OPS operations
 * chosen by SEED, one at a time: first a create of every entity (the
 * new-id path: plain rename of the blob), then overwrites (RENAME_EXCHANGE
 * path), deletes, re-creates of deleted ids, and template writes (the
 * single-file replace routine).  Around each call it writes one marker
 * line to CTL (the recorder's side channel, plfuse.c):
 *
 *   B W <id> <ver>   about to dfs_write version <ver> of entity <id>
 *   A W <id> <ver>   that dfs_write returned 0 (acknowledged: durable)
 *   B D <id>         about to dfs_delete <id>
 *   A D <id>         dfs_delete returned 0
 *   B T <sid> <ver>  about to dfs_template_write version <ver> of <sid>
 *   A T <sid> <ver>  it returned 0
 *   B C calibration 0 / A C calibration 0
 *                    around an fsync of a file of our own, before any
 *                    operation: proves flushes reach the recorder
 *
 * A "B" marker is written before the call, so every version that can
 * appear on disk has been announced in the log before its first disk
 * write; an "A" marker after the call returned, so it follows the flush
 * that made the write durable.
 *
 * THREADS (default 1) workers share one store handle; each owns a fixed
 * subset of the entities (as entity locks would serialize writers), so an
 * entity never has more than one operation in flight, while operations on
 * different entities overlap and share directory fsyncs (group commit).
 *
 * Content and metadata of each (id, version) are deterministic
 * (plcommon.c): the replay recognizes exactly which write a file came from.
 *
 * After opening the store it prints one line on stdout,
 *   plworkload: fs <name> (journal <yes|no|unknown>), temp sync <sfr|fdatasync|fsync>
 * the file system the library detected under the store and the temp-sync
 * mode it uses there (src/commit.c, after DELTAFS_SYNC_MODE), so the
 * harness can show (and check) what a recording actually exercised.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h" /* src/: the sync mode the library chose, as bench.c reads it */
#include "deltafs/deltafs.h"
#include "plcommon.h"

#define N_ENT 4

static int ctl_fd = -1;

/* One marker line: "<ba> <kind> <id> <ver>" (ba: B or A), or "END". */
static void mark(char ba, char kind, const char *id, long long ver)
{
  char line[256];
  int n = kind ? snprintf(line, sizeof line, "%c %c %s %lld\n", ba, kind, id, ver)
               : snprintf(line, sizeof line, "END\n");
  /* One write() per marker: the recorder logs each write as one record. */
  if (n <= 0 || write(ctl_fd, line, (size_t)n) != n) {
    fprintf(stderr, "plworkload: marker write failed: %s\n", strerror(errno));
    exit(1);
  }
}

static int do_write(dfs_storage *st, const char *id, int64_t ver)
{
  size_t len = pl_content_len(id, ver);
  unsigned char *buf = malloc(len ? len : 1);
  struct pl_meta_strs strs;
  dfs_meta m;
  int rc;

  if (!buf)
    return DFS_ENOMEM;
  pl_content_fill(id, ver, buf, len);
  pl_meta_fill(id, ver, &m, &strs);
  mark('B', 'W', id, (long long)ver);
  rc = dfs_write(st, id, buf, len, &m);
  if (rc == 0)
    mark('A', 'W', id, (long long)ver);
  else
    fprintf(stderr, "plworkload: write %s v%lld: %s\n", id, (long long)ver, dfs_last_error());
  free(buf);
  return rc;
}

static int do_template(dfs_storage *st, const char *sid, int64_t ver)
{
  size_t len = pl_content_len(sid, ver);
  unsigned char *buf = malloc(len ? len : 1);
  int rc;

  if (!buf)
    return DFS_ENOMEM;
  pl_content_fill(sid, ver, buf, len);
  mark('B', 'T', sid, (long long)ver);
  rc = dfs_template_write(st, sid, buf, len);
  if (rc == 0)
    mark('A', 'T', sid, (long long)ver);
  else
    fprintf(stderr, "plworkload: template %s v%lld: %s\n", sid, (long long)ver, dfs_last_error());
  free(buf);
  return rc;
}

static int do_delete(dfs_storage *st, const char *id)
{
  int rc;
  mark('B', 'D', id, 0);
  rc = dfs_delete(st, id);
  if (rc == 0)
    mark('A', 'D', id, 0);
  else
    fprintf(stderr, "plworkload: delete %s: %s\n", id, dfs_last_error());
  return rc;
}

/* One worker: it owns the entities i with i % nthreads == its index, so
 * every entity has at most one operation in flight (the rule callers of
 * deltafs follow with entity locks); thread 0 also writes the template. */
struct worker {
  pthread_t th;
  dfs_storage *st;
  int index, nthreads;
  long ops;
  uint64_t rng;
  int rc;
};

static void *work(void *arg)
{
  static const char *ids[N_ENT] = {"ent-a", "ent-b", "ent-c", "ent-d"};
  struct worker *w = arg;
  int own[N_ENT], n_own = 0;
  int64_t ver[N_ENT] = {0}; /* last version written (versions never repeat) */
  int live[N_ENT] = {0};    /* exists now */
  int64_t tver = 0;
  int rc = 0;

  for (int i = w->index; i < N_ENT; i += w->nthreads)
    own[n_own++] = i;
  for (long i = 0; i < w->ops && rc == 0 && n_own > 0; i++) {
    int e = own[i < n_own ? i : (long)(pl_rand(&w->rng) % (uint64_t)n_own)];
    unsigned dice = (unsigned)(pl_rand(&w->rng) % 100);
    if (i < n_own || !live[e]) {
      /* create (first time, or again after a delete): the new-id path */
      rc = do_write(w->st, ids[e], ++ver[e]);
      live[e] = rc == 0;
    } else if (dice < 15) {
      rc = do_delete(w->st, ids[e]);
      live[e] = 0;
    } else if (dice < 25 && w->index == 0) {
      rc = do_template(w->st, "tpl-x", ++tver);
    } else {
      rc = do_write(w->st, ids[e], ++ver[e]); /* overwrite: the exchange path */
    }
  }
  w->rc = rc;
  return NULL;
}

int main(int argc, char **argv)
{
  struct worker w[N_ENT];
  uint64_t rng;
  long ops;
  int nthreads = 1;
  dfs_storage *st = NULL;
  int rc = 0;

  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: %s STORE CTL SEED OPS [THREADS]\n", argv[0]);
    return 2;
  }
  rng = strtoull(argv[3], NULL, 0);
  ops = strtol(argv[4], NULL, 0);
  if (argc == 6)
    nthreads = atoi(argv[5]);
  if (nthreads < 1 || nthreads > N_ENT) {
    fprintf(stderr, "plworkload: THREADS must be 1..%d\n", N_ENT);
    return 2;
  }
  ctl_fd = open(argv[2], O_WRONLY | O_CLOEXEC);
  if (ctl_fd < 0) {
    perror(argv[2]);
    return 1;
  }
  /* Calibration: one fsync of our own, outside the store, between "B C"
   * and "A C" markers.  The replay refuses a log without a flush between
   * them (flushes would not be reaching the recorder); it cannot use the
   * library's own operations for that, since the broken builds under test
   * may legitimately sync nothing. */
  {
    char path[4096];
    int fd;
    snprintf(path, sizeof path, "%s.calibration", argv[1]);
    mark('B', 'C', "calibration", 0);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1 || fsync(fd) < 0 || close(fd) < 0) {
      perror(path);
      return 1;
    }
    mark('A', 'C', "calibration", 0);
  }
  /* Default options: full durability (no DFS_OPT_NO_SYNC).  One handle
   * shared by the threads, as an application would (its directory fsyncs
   * are group-committed across them). */
  if ((rc = dfs_storage_open(&st, argv[1], NULL)) < 0) {
    fprintf(stderr, "plworkload: %s: %s\n", dfs_strerror(rc), dfs_last_error());
    return 1;
  }
  {
    /* The temps live in .deltafs-tmp/ (the directory the library asks
     * about); opening it writes nothing to the disk. */
    char path[4096];
    int journal = -1, dfd;
    snprintf(path, sizeof path, "%s/.deltafs-tmp", argv[1]);
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      perror(path);
      return 1;
    }
    {
      const char *fs = dfs__commit_fs_name(dfd, &journal);
      enum dfs_sync_mode m = dfs__commit_mode(dfd);
      printf("plworkload: fs %s (journal %s), temp sync %s\n", fs,
             journal < 0 ? "unknown" : journal ? "yes" : "no",
             m == DFS_SYNC_SFR ? "sfr" : m == DFS_SYNC_FDATASYNC ? "fdatasync" : "fsync");
      fflush(stdout);
    }
    close(dfd);
  }
  for (int t = 0; t < nthreads; t++) {
    w[t] = (struct worker){.st = st, .index = t, .nthreads = nthreads,
                           .ops = ops / nthreads + (t < ops % nthreads),
                           .rng = rng + (uint64_t)t * UINT64_C(0x100000001b3)};
    if (pthread_create(&w[t].th, NULL, work, &w[t]) != 0) {
      fprintf(stderr, "plworkload: pthread_create failed\n");
      return 1;
    }
  }
  for (int t = 0; t < nthreads; t++) {
    pthread_join(w[t].th, NULL);
    if (w[t].rc < 0) {
      fprintf(stderr, "plworkload: thread %d: %s\n", t, dfs_strerror(w[t].rc));
      rc = w[t].rc;
    }
  }
  dfs_storage_close(st);
  if (rc < 0)
    return 1;
  mark(0, 0, "", 0);
  close(ctl_fd);
  return 0;
}
