/*
 * test_lockmgr.c — dfs_lockmgr (per-entity, per-thread locks) and the lock
 * file protocol of lockfile.c (re-check after flock, unlink while held).
 *
 * Other holders come in three kinds, and the manager must treat them all
 * alike: another thread of the same manager, another manager (same
 * process), and another process (fork; the child opens its own store and
 * manager — nothing is inherited across fork).  util-linux flock(1) stands
 * in for a foreign (Go) worker.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "storage_int.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

struct fx {
  char *dir;
  dfs_storage *st;
  dfs_lockmgr *m;
};

static int open_store(const char *dir, unsigned flags, dfs_storage **st)
{
  dfs_options o = DFS_OPTIONS_INIT;
  o.flags = flags | DFS_OPT_NO_SYNC;
  return dfs_storage_open(st, dir, &o);
}

static int setup_flags(void **state, unsigned flags)
{
  struct fx *f = calloc(1, sizeof *f);
  f->dir = tu_mkdtemp("lockmgr");
  if (open_store(f->dir, flags, &f->st) != 0 || dfs_lockmgr_new(&f->m, f->st) != 0)
    return -1;
  *state = f;
  return 0;
}

static int setup(void **state)
{
  return setup_flags(state, 0);
}

static int setup_go(void **state)
{
  return setup_flags(state, DFS_OPT_GO_COMPAT);
}

static int teardown(void **state)
{
  struct fx *f = *state;
  dfs_fault_disarm();
  dfs_lockmgr_free(f->m);
  dfs_storage_close(f->st);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int count_fds(void)
{
  return tu_count_entries("/proc/self/fd", "");
}

static void lock_path(struct fx *f, const char *id, char *buf, size_t n)
{
  assert_ok(dfs_lock_path(f->st, id, buf, n));
}

static int path_exists(const char *p)
{
  struct stat sb;
  return lstat(p, &sb) == 0;
}

static ino_t path_ino(const char *p)
{
  struct stat sb;
  assert_int_equal(lstat(p, &sb), 0);
  return sb.st_ino;
}

static void put_entity(struct fx *f, const char *id)
{
  dfs_meta meta = tu_meta(1);
  assert_ok(dfs_write(f->st, id, "x", 1, &meta));
}

/* Another manager of the same store tries `id`: the independent-holder
 * probe used all over (two managers exclude like two processes). */
static int probe(struct fx *f, const char *id, dfs_lock_type type)
{
  dfs_lockmgr *m2;
  int rc;
  assert_ok(dfs_lockmgr_new(&m2, f->st));
  rc = dfs_lockmgr_try_acquire(m2, id, type);
  dfs_lockmgr_free(m2);
  return rc;
}

/* ---- a thread that runs one lock call on request ----------------------- */

enum op { OP_ACQUIRE, OP_TRY, OP_TIMEOUT, OP_RELEASE, OP_DELETE, OP_QUIT };

struct worker {
  pthread_t tid;
  dfs_lockmgr *m;
  dfs_storage *st;  /* for OP_DELETE                                */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int has_req;      /* a request is pending                        */
  enum op op;
  char id[64];
  dfs_lock_type type;
  int timeout_ms;
  int done;         /* the last request finished                   */
  int rc;           /* its result                                  */
  double took_ms;
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  for (;;) {
    enum op op;
    int rc = 0;
    double t0;
    pthread_mutex_lock(&w->mu);
    while (!w->has_req)
      pthread_cond_wait(&w->cv, &w->mu);
    op = w->op;
    w->has_req = 0;
    pthread_mutex_unlock(&w->mu);
    if (op == OP_QUIT)
      return NULL;
    t0 = now_ms();
    switch (op) {
    case OP_ACQUIRE: rc = dfs_lockmgr_acquire(w->m, w->id, w->type); break;
    case OP_TRY: rc = dfs_lockmgr_try_acquire(w->m, w->id, w->type); break;
    case OP_TIMEOUT: rc = dfs_lockmgr_acquire_timeout(w->m, w->id, w->type, w->timeout_ms); break;
    case OP_RELEASE: rc = dfs_lockmgr_release(w->m, w->id); break;
    case OP_DELETE: rc = dfs_delete(w->st, w->id); break;
    case OP_QUIT: break;
    }
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->took_ms = now_ms() - t0;
    w->done = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
}

static void worker_start(struct worker *w, dfs_lockmgr *m)
{
  memset(w, 0, sizeof *w);
  w->m = m;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  assert_int_equal(pthread_create(&w->tid, NULL, worker_main, w), 0);
}

static void worker_send(struct worker *w, enum op op, const char *id, dfs_lock_type type,
                        int timeout_ms)
{
  pthread_mutex_lock(&w->mu);
  w->op = op;
  snprintf(w->id, sizeof w->id, "%s", id ? id : "");
  w->type = type;
  w->timeout_ms = timeout_ms;
  w->done = 0;
  w->has_req = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Wait up to ms for the pending request; 1 if it finished. */
static int worker_wait(struct worker *w, int ms)
{
  struct timespec ts;
  int done;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&w->mu);
  while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
    ;
  done = w->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

/* Run a request on w and return its result (it must finish within 5s). */
static int worker_do(struct worker *w, enum op op, const char *id, dfs_lock_type type,
                     int timeout_ms)
{
  worker_send(w, op, id, type, timeout_ms);
  assert_true(worker_wait(w, 5000));
  return w->rc;
}

static void worker_stop(struct worker *w)
{
  worker_send(w, OP_QUIT, NULL, DFS_LOCK_SHARED, 0);
  pthread_join(w->tid, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

/* ---- a child process holding a lock ------------------------------------ */

struct child {
  pid_t pid;
  int go; /* write a byte to release and exit */
};

static struct child hold_in_child(const char *dir, const char *id, dfs_lock_type type)
{
  int ready[2], gop[2];
  struct child c;
  char b;

  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(gop), 0);
  c.pid = fork();
  assert_true(c.pid >= 0);
  if (c.pid == 0) {
    dfs_storage *st;
    dfs_lockmgr *m;
    close(ready[0]);
    close(gop[1]);
    if (open_store(dir, 0, &st) != 0 || dfs_lockmgr_new(&m, st) != 0)
      _exit(2);
    if (dfs_lockmgr_acquire(m, id, type) != 0)
      _exit(3);
    if (write(ready[1], "L", 1) != 1)
      _exit(4);
    if (read(gop[0], &b, 1) < 0)
      _exit(5);
    if (dfs_lockmgr_release(m, id) != 0)
      _exit(6);
    dfs_lockmgr_free(m);
    dfs_storage_close(st);
    _exit(0);
  }
  close(ready[1]);
  close(gop[0]);
  assert_int_equal(read(ready[0], &b, 1), 1);
  close(ready[0]);
  c.go = gop[1];
  return c;
}

static void child_release(struct child c)
{
  int status;
  assert_int_equal(write(c.go, "G", 1), 1);
  close(c.go);
  assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Fork a child that runs try_acquire(id, type) in its own store/manager
 * and return what it got. */
static int try_in_child(const char *dir, const char *id, dfs_lock_type type)
{
  int status;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dfs_storage *st;
    dfs_lockmgr *m;
    int rc;
    if (open_store(dir, 0, &st) != 0 || dfs_lockmgr_new(&m, st) != 0)
      _exit(100);
    rc = dfs_lockmgr_try_acquire(m, id, type);
    _exit(-rc);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return -WEXITSTATUS(status);
}

/* ---- arguments and ids ------------------------------------------------- */

static void lockmgr__bad_arguments_are_einval(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m = (dfs_lockmgr *)0x1;

  assert_dfs(dfs_lockmgr_new(NULL, f->st), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_new(&m, NULL), DFS_EINVAL);
  assert_null(m);
  dfs_lockmgr_free(NULL);
  assert_dfs(dfs_lockmgr_acquire(NULL, "a", DFS_LOCK_SHARED), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_try_acquire(NULL, "a", DFS_LOCK_SHARED), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_acquire_timeout(NULL, "a", DFS_LOCK_SHARED, 5), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_release(NULL, "a"), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_release_all(NULL), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_acquire(f->m, "a", (dfs_lock_type)2), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "a", (dfs_lock_type)-1), DFS_EINVAL);
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "a", (dfs_lock_type)9, 5), DFS_EINVAL);
  /* Nothing was created for a rejected call. */
  assert_int_equal(tu_count_entries(dfs_files_dir(f->st), ""), 0);
}

static void lockmgr__invalid_ids_are_rejected_before_touching_files(void **state)
{
  struct fx *f = *state;
  char longid[DFS_ID_MAX + 2];
  const char *bad[] = {"", ".", "..", ".hidden", "a/b", "../x", "a\\b", "tab\there", "nl\n",
                       longid};

  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_dfs(dfs_lockmgr_acquire(f->m, bad[i], DFS_LOCK_EXCLUSIVE), DFS_EINVALID_ID);
    assert_dfs(dfs_lockmgr_try_acquire(f->m, bad[i], DFS_LOCK_SHARED), DFS_EINVALID_ID);
    assert_dfs(dfs_lockmgr_acquire_timeout(f->m, bad[i], DFS_LOCK_SHARED, 10), DFS_EINVALID_ID);
    assert_dfs(dfs_lockmgr_release(f->m, bad[i]), DFS_EINVALID_ID);
  }
  assert_dfs(dfs_lockmgr_acquire(f->m, NULL, DFS_LOCK_EXCLUSIVE), DFS_EINVALID_ID);
  assert_dfs(dfs_lockmgr_release(f->m, NULL), DFS_EINVALID_ID);
  assert_int_equal(tu_count_entries(dfs_files_dir(f->st), ""), 0);
  assert_int_equal(tu_count_entries(dfs_base_dir(f->st), ""), 3); /* files templates tmp */
  /* A 200-byte id is fine. */
  longid[DFS_ID_MAX] = '\0';
  assert_ok(dfs_lockmgr_acquire(f->m, longid, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, longid));
}

static void lockmgr__acquire_creates_the_documented_lock_file(void **state)
{
  struct fx *f = *state;
  char p[4096], cmd[4200];
  struct stat sb;
  int rc;

  lock_path(f, "Chat_1", p, sizeof p);
  assert_non_null(strstr(p, "/files/Chat_1.json.enc.lock"));
  assert_false(path_exists(p));
  assert_ok(dfs_lockmgr_acquire(f->m, "Chat_1", DFS_LOCK_EXCLUSIVE));
  assert_int_equal(stat(p, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_size, 0);
  /* It is a real flock on that file: flock(1) cannot take it. */
  snprintf(cmd, sizeof cmd, "flock -n -s '%s' true", p);
  rc = system(cmd);
  assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
  assert_ok(dfs_lockmgr_release(f->m, "Chat_1"));
  rc = system(cmd);
  assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  /* The lock file stays after release (only delete removes it). */
  assert_true(path_exists(p));
}

/* ---- one thread -------------------------------------------------------- */

static void lockmgr__thread_asking_again_gets_already_locked(void **state)
{
  struct fx *f = *state;

  assert_ok(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_SHARED));
  assert_dfs(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_SHARED), DFS_EALREADY_LOCKED);
  assert_dfs(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE), DFS_EALREADY_LOCKED);
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED), DFS_EALREADY_LOCKED);
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "e", DFS_LOCK_EXCLUSIVE, 50), DFS_EALREADY_LOCKED);
  /* Still held shared, exactly once: one release frees it. */
  assert_dfs(probe(f, "e", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(probe(f, "e", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_ok(probe(f, "e", DFS_LOCK_EXCLUSIVE));

  assert_ok(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE));
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED), DFS_EALREADY_LOCKED);
  assert_dfs(probe(f, "e", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "e"));
}

static void lockmgr__release_of_unheld_is_ok_and_changes_nothing(void **state)
{
  struct fx *f = *state;
  struct worker w;

  assert_ok(dfs_lockmgr_release(f->m, "never-seen"));
  assert_ok(dfs_lockmgr_release_all(f->m));
  assert_ok(dfs_lockmgr_acquire(f->m, "x", DFS_LOCK_EXCLUSIVE));
  /* Another thread's release does not release the caller's hold. */
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_RELEASE, "x", DFS_LOCK_SHARED, 0));
  assert_dfs(probe(f, "x", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(worker_do(&w, OP_TRY, "x", DFS_LOCK_SHARED, 0), DFS_EBUSY);
  worker_stop(&w);
  assert_ok(dfs_lockmgr_release(f->m, "x"));
  assert_ok(dfs_lockmgr_release(f->m, "x"));
  assert_ok(probe(f, "x", DFS_LOCK_EXCLUSIVE));
}

/* ---- threads of one manager ------------------------------------------- */

static void lockmgr__threads_share_shared_and_exclusive_excludes_them(void **state)
{
  struct fx *f = *state;
  struct worker b, c;

  worker_start(&b, f->m);
  worker_start(&c, f->m);
  assert_ok(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_SHARED));
  assert_ok(worker_do(&b, OP_TRY, "e", DFS_LOCK_SHARED, 0));
  assert_dfs(worker_do(&c, OP_TRY, "e", DFS_LOCK_EXCLUSIVE, 0), DFS_EBUSY);
  assert_dfs(worker_do(&c, OP_TIMEOUT, "e", DFS_LOCK_EXCLUSIVE, 30), DFS_ETIMEDOUT);
  /* One shared holder leaving is not enough. */
  assert_ok(worker_do(&b, OP_RELEASE, "e", DFS_LOCK_SHARED, 0));
  assert_dfs(worker_do(&c, OP_TRY, "e", DFS_LOCK_EXCLUSIVE, 0), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_ok(worker_do(&c, OP_TRY, "e", DFS_LOCK_EXCLUSIVE, 0));
  /* An exclusive thread keeps out shared and exclusive threads, and the
   * other processes (the manager's flock is LOCK_EX). */
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(worker_do(&b, OP_TRY, "e", DFS_LOCK_EXCLUSIVE, 0), DFS_EBUSY);
  assert_dfs(try_in_child(f->dir, "e", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(worker_do(&c, OP_RELEASE, "e", DFS_LOCK_SHARED, 0));
  assert_ok(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  worker_stop(&b);
  worker_stop(&c);
}

static void lockmgr__blocking_acquire_waits_for_another_threads_release(void **state)
{
  struct fx *f = *state;
  struct worker w;

  worker_start(&w, f->m);
  assert_ok(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE));
  worker_send(&w, OP_ACQUIRE, "e", DFS_LOCK_SHARED, 0);
  assert_false(worker_wait(&w, 150));
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_true(worker_wait(&w, 2000));
  assert_ok(w.rc);
  /* Now the worker holds it (shared): we can share, a probe cannot have EX. */
  assert_dfs(probe(f, "e", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(worker_do(&w, OP_RELEASE, "e", DFS_LOCK_SHARED, 0));
  assert_ok(probe(f, "e", DFS_LOCK_EXCLUSIVE));
  worker_stop(&w);
}

struct many_shared {
  dfs_lockmgr *m;
  pthread_barrier_t *in, *out;
  int rc_acq, rc_rel;
};

static void *shared_holder(void *arg)
{
  struct many_shared *s = arg;
  s->rc_acq = dfs_lockmgr_acquire(s->m, "wide", DFS_LOCK_SHARED);
  pthread_barrier_wait(s->in);
  pthread_barrier_wait(s->out);
  s->rc_rel = dfs_lockmgr_release(s->m, "wide");
  return NULL;
}

static void lockmgr__many_threads_hold_shared_at_once(void **state)
{
  struct fx *f = *state;
  enum { N = 12 }; /* more than the inline holder slots */
  pthread_t t[N];
  struct many_shared s[N];
  pthread_barrier_t in, out;

  pthread_barrier_init(&in, NULL, N + 1);
  pthread_barrier_init(&out, NULL, N + 1);
  for (int i = 0; i < N; i++) {
    s[i] = (struct many_shared){f->m, &in, &out, -99, -99};
    assert_int_equal(pthread_create(&t[i], NULL, shared_holder, &s[i]), 0);
  }
  pthread_barrier_wait(&in); /* all N hold it now */
  for (int i = 0; i < N; i++)
    assert_ok(s[i].rc_acq);
  assert_dfs(probe(f, "wide", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "wide", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  pthread_barrier_wait(&out);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_ok(s[i].rc_rel);
  }
  assert_ok(probe(f, "wide", DFS_LOCK_EXCLUSIVE));
  pthread_barrier_destroy(&in);
  pthread_barrier_destroy(&out);
}

struct mutex_check {
  dfs_lockmgr *m;
  atomic_int *inside;  /* per entity: threads inside the critical section */
  atomic_int *bad;     /* times someone found company there               */
  long *count;         /* per entity, only touched under the lock         */
  int iters;
  int rc;
};

static void *exclusive_incrementer(void *arg)
{
  struct mutex_check *c = arg;
  char id[16];
  for (int i = 0; i < c->iters; i++) {
    int e = i % 2;
    snprintf(id, sizeof id, "ent%d", e);
    if ((c->rc = dfs_lockmgr_acquire(c->m, id, DFS_LOCK_EXCLUSIVE)) != 0)
      return NULL;
    if (atomic_fetch_add(&c->inside[e], 1) != 0)
      atomic_fetch_add(c->bad, 1);
    c->count[e]++; /* a data race, and a TSan report, if exclusion fails */
    atomic_fetch_sub(&c->inside[e], 1);
    if ((c->rc = dfs_lockmgr_release(c->m, id)) != 0)
      return NULL;
  }
  return NULL;
}

static void lockmgr__exclusive_threads_never_overlap(void **state)
{
  struct fx *f = *state;
  enum { N = 4, ITERS = 2000 };
  pthread_t t[N];
  struct mutex_check c[N];
  atomic_int inside[2] = {0, 0}, bad = 0;
  long count[2] = {0, 0};

  for (int i = 0; i < N; i++) {
    c[i] = (struct mutex_check){f->m, inside, &bad, count, ITERS, 0};
    assert_int_equal(pthread_create(&t[i], NULL, exclusive_incrementer, &c[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_ok(c[i].rc);
  }
  assert_int_equal(atomic_load(&bad), 0);
  assert_int_equal(count[0] + count[1], N * ITERS);
  assert_int_equal(count[0], N * ITERS / 2);
}

/* ---- managers and processes ------------------------------------------- */

static void lockmgr__two_managers_exclude_like_processes(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m2;

  assert_ok(dfs_lockmgr_new(&m2, f->st));
  assert_ok(dfs_lockmgr_acquire(f->m, "e", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_try_acquire(m2, "e", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_release(m2, "e"));
  assert_dfs(dfs_lockmgr_try_acquire(m2, "e", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_ok(dfs_lockmgr_try_acquire(m2, "e", DFS_LOCK_EXCLUSIVE));
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED), DFS_EBUSY);
  dfs_lockmgr_free(m2); /* releases */
  assert_ok(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "e"));
}

static void lockmgr__processes_share_shared_and_exclusive_excludes(void **state)
{
  struct fx *f = *state;
  struct child c = hold_in_child(f->dir, "e", DFS_LOCK_SHARED);

  assert_ok(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_non_null(strstr(dfs_last_error(), "e.json.enc.lock"));
  child_release(c);
  assert_ok(dfs_lockmgr_try_acquire(f->m, "e", DFS_LOCK_EXCLUSIVE));
  assert_dfs(try_in_child(f->dir, "e", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(try_in_child(f->dir, "e", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "e"));
  assert_ok(try_in_child(f->dir, "e", DFS_LOCK_EXCLUSIVE));
}

static void lockmgr__blocked_acquire_never_delays_other_entities(void **state)
{
  struct fx *f = *state;
  struct child c = hold_in_child(f->dir, "hot", DFS_LOCK_EXCLUSIVE);
  struct worker blocked, other;
  char id[32];
  double t0, dt;

  worker_start(&blocked, f->m);
  worker_start(&other, f->m);
  /* One thread blocks in flock() on "hot" (another process holds it). */
  worker_send(&blocked, OP_ACQUIRE, "hot", DFS_LOCK_EXCLUSIVE, 0);
  assert_false(worker_wait(&blocked, 100));

  /* Meanwhile 1000 acquire/release cycles on other entities complete. */
  t0 = now_ms();
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "cold-%d", i % 50);
    assert_ok(dfs_lockmgr_acquire(f->m, id, i % 3 ? DFS_LOCK_SHARED : DFS_LOCK_EXCLUSIVE));
    assert_ok(dfs_lockmgr_release(f->m, id));
  }
  dt = now_ms() - t0;
  print_message("1000 cycles beside a blocked acquire: %.1f ms\n", dt);
  assert_true(dt < 20000.0);
  /* Other threads too, and a held entity can be released. */
  assert_ok(worker_do(&other, OP_ACQUIRE, "cold-1", DFS_LOCK_EXCLUSIVE, 0));
  assert_ok(worker_do(&other, OP_RELEASE, "cold-1", DFS_LOCK_EXCLUSIVE, 0));

  /* A try of the blocked entity answers at once, from any thread. */
  t0 = now_ms();
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "hot", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(worker_do(&other, OP_TRY, "hot", DFS_LOCK_EXCLUSIVE, 0), DFS_EBUSY);
  assert_true(now_ms() - t0 < TU_PROMPT_MS);
  /* A timed acquire of it times out on time. */
  t0 = now_ms();
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "hot", DFS_LOCK_SHARED, 50), DFS_ETIMEDOUT);
  dt = now_ms() - t0;
  assert_true(dt >= 50.0 && dt < 50.0 + TU_PROMPT_MS);
  assert_false(worker_wait(&blocked, 1));

  /* The holder lets go: the blocked thread gets it, and holds it. */
  child_release(c);
  assert_true(worker_wait(&blocked, 2000));
  assert_ok(blocked.rc);
  assert_dfs(try_in_child(f->dir, "hot", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(worker_do(&blocked, OP_RELEASE, "hot", DFS_LOCK_SHARED, 0));
  assert_ok(try_in_child(f->dir, "hot", DFS_LOCK_EXCLUSIVE));
  worker_stop(&blocked);
  worker_stop(&other);
}

static void lockmgr__thread_blocked_behind_a_thread_never_delays_others(void **state)
{
  struct fx *f = *state;
  struct worker holder, blocked;
  double t0;

  worker_start(&holder, f->m);
  worker_start(&blocked, f->m);
  assert_ok(worker_do(&holder, OP_ACQUIRE, "hot", DFS_LOCK_EXCLUSIVE, 0));
  worker_send(&blocked, OP_ACQUIRE, "hot", DFS_LOCK_EXCLUSIVE, 0);
  assert_false(worker_wait(&blocked, 50));
  t0 = now_ms();
  for (int i = 0; i < 1000; i++) {
    assert_ok(dfs_lockmgr_acquire(f->m, "cold", DFS_LOCK_EXCLUSIVE));
    assert_ok(dfs_lockmgr_release(f->m, "cold"));
  }
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "hot", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_true(now_ms() - t0 < 20000.0);
  assert_ok(worker_do(&holder, OP_RELEASE, "hot", DFS_LOCK_SHARED, 0));
  assert_true(worker_wait(&blocked, 2000));
  assert_ok(blocked.rc);
  assert_ok(worker_do(&blocked, OP_RELEASE, "hot", DFS_LOCK_SHARED, 0));
  worker_stop(&holder);
  worker_stop(&blocked);
}

/* ---- timeouts ---------------------------------------------------------- */

static void lockmgr__timeout_returns_within_tolerance(void **state)
{
  struct fx *f = *state;
  struct child c = hold_in_child(f->dir, "p", DFS_LOCK_EXCLUSIVE);
  struct worker w;
  double t0, dt;

  /* Against another process. */
  t0 = now_ms();
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "p", DFS_LOCK_EXCLUSIVE, 100), DFS_ETIMEDOUT);
  dt = now_ms() - t0;
  print_message("timeout 100ms vs process: %.1f ms\n", dt);
  assert_true(dt >= 100.0 && dt < 100.0 + TU_PROMPT_MS);
  assert_non_null(strstr(dfs_last_error(), "p.json.enc.lock"));
  /* 0 = try. */
  t0 = now_ms();
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "p", DFS_LOCK_SHARED, 0), DFS_EBUSY);
  assert_true(now_ms() - t0 < TU_PROMPT_MS);
  child_release(c);

  /* Against another thread. */
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_ACQUIRE, "t", DFS_LOCK_EXCLUSIVE, 0));
  t0 = now_ms();
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "t", DFS_LOCK_SHARED, 100), DFS_ETIMEDOUT);
  dt = now_ms() - t0;
  print_message("timeout 100ms vs thread: %.1f ms\n", dt);
  assert_true(dt >= 100.0 && dt < 100.0 + TU_PROMPT_MS);
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "t", DFS_LOCK_SHARED, 0), DFS_EBUSY);
  /* A timed-out acquire holds nothing: the holder's release frees it. */
  assert_ok(worker_do(&w, OP_RELEASE, "t", DFS_LOCK_SHARED, 0));
  assert_ok(probe(f, "t", DFS_LOCK_EXCLUSIVE));
  assert_ok(probe(f, "p", DFS_LOCK_EXCLUSIVE));
  worker_stop(&w);
}

static void lockmgr__timed_acquire_gets_a_lock_freed_before_the_deadline(void **state)
{
  struct fx *f = *state;
  struct child c = hold_in_child(f->dir, "p", DFS_LOCK_EXCLUSIVE);
  struct worker w;
  double dt;

  worker_start(&w, f->m);
  worker_send(&w, OP_TIMEOUT, "p", DFS_LOCK_EXCLUSIVE, 10000);
  assert_false(worker_wait(&w, 80));
  child_release(c);
  assert_true(worker_wait(&w, 10000));
  assert_ok(w.rc);
  /* It was still waiting 80ms in (worker_wait above), and got the lock
   * soon after the release, long before its deadline.  (took_ms starts
   * when the worker thread gets to run, so it has no useful lower bound.) */
  dt = w.took_ms;
  assert_true(dt < 80.0 + TU_PROMPT_MS);
  /* In-process too: released by a thread before the deadline. */
  worker_send(&w, OP_RELEASE, "p", DFS_LOCK_SHARED, 0);
  assert_true(worker_wait(&w, 1000));
  assert_ok(dfs_lockmgr_acquire(f->m, "q", DFS_LOCK_EXCLUSIVE));
  worker_send(&w, OP_TIMEOUT, "q", DFS_LOCK_SHARED, 10000);
  assert_false(worker_wait(&w, 50));
  assert_ok(dfs_lockmgr_release(f->m, "q"));
  assert_true(worker_wait(&w, 10000));
  assert_ok(w.rc);
  assert_true(w.took_ms < 50.0 + TU_PROMPT_MS);
  /* Negative = forever = plain acquire. */
  assert_ok(worker_do(&w, OP_RELEASE, "q", DFS_LOCK_SHARED, 0));
  assert_ok(dfs_lockmgr_acquire_timeout(f->m, "q", DFS_LOCK_EXCLUSIVE, -1));
  assert_dfs(probe(f, "q", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "q"));
  worker_stop(&w);
}

/* ---- holders that go away ---------------------------------------------- */

static void lockmgr__holder_killed_with_sigkill_releases(void **state)
{
  struct fx *f = *state;
  struct child c = hold_in_child(f->dir, "k", DFS_LOCK_EXCLUSIVE);
  int status;

  assert_dfs(dfs_lockmgr_try_acquire(f->m, "k", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_int_equal(kill(c.pid, SIGKILL), 0);
  assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
  assert_true(WIFSIGNALED(status));
  close(c.go);
  assert_ok(dfs_lockmgr_acquire_timeout(f->m, "k", DFS_LOCK_EXCLUSIVE, 2000));
  assert_ok(dfs_lockmgr_release(f->m, "k"));
}

static void lockmgr__util_linux_flock_holder_is_respected(void **state)
{
  struct fx *f = *state;
  char p[4096], ready[4200], done[4200];
  struct worker w;
  pid_t pid;
  double waited;
  int status;

  if (system("command -v flock >/dev/null 2>&1") != 0)
    skip();
  lock_path(f, "Chat_9", p, sizeof p);
  snprintf(ready, sizeof ready, "%s/READY", f->dir);
  snprintf(done, sizeof done, "%s/DONE", f->dir);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char script[9000];
    snprintf(script, sizeof script, "touch '%s'; sleep 0.3; touch '%s'", ready, done);
    execlp("flock", "flock", "-x", p, "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !path_exists(ready); i++)
    usleep(10000);
  assert_true(path_exists(ready));
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "Chat_9", DFS_LOCK_SHARED), DFS_EBUSY);
  worker_start(&w, f->m);
  worker_send(&w, OP_ACQUIRE, "Chat_9", DFS_LOCK_EXCLUSIVE, 0);
  assert_true(worker_wait(&w, 5000));
  assert_ok(w.rc);
  waited = w.took_ms;
  print_message("waited %.1f ms for flock(1)\n", waited);
  /* flock(1) finished its command before we got in (how long we waited
   * depends on scheduling; that it had finished does not). */
  assert_true(path_exists(done));
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* And now flock(1) is the one kept out. */
  {
    char cmd[4200];
    int rc;
    snprintf(cmd, sizeof cmd, "flock -n '%s' true", p);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
  }
  assert_ok(worker_do(&w, OP_RELEASE, "Chat_9", DFS_LOCK_SHARED, 0));
  worker_stop(&w);
}

struct hold_two {
  dfs_lockmgr *m;
  pthread_barrier_t *held, *after;
  int rc1, rc2, rc_release_after, rc_again;
};

static void *hold_two_then_wait(void *arg)
{
  struct hold_two *h = arg;
  h->rc1 = dfs_lockmgr_acquire(h->m, "b", DFS_LOCK_SHARED);
  h->rc2 = dfs_lockmgr_acquire(h->m, "c", DFS_LOCK_EXCLUSIVE);
  pthread_barrier_wait(h->held);
  pthread_barrier_wait(h->after); /* main ran release_all */
  h->rc_release_after = dfs_lockmgr_release(h->m, "c");
  /* Not held any more: asking again is no longer "already locked". */
  h->rc_again = dfs_lockmgr_acquire(h->m, "c", DFS_LOCK_EXCLUSIVE);
  if (h->rc_again == 0)
    h->rc_again = dfs_lockmgr_release(h->m, "c");
  return NULL;
}

static void lockmgr__release_all_releases_every_threads_holds(void **state)
{
  struct fx *f = *state;
  pthread_barrier_t held, after;
  struct hold_two h = {f->m, &held, &after, -99, -99, -99, -99};
  pthread_t t;

  pthread_barrier_init(&held, NULL, 2);
  pthread_barrier_init(&after, NULL, 2);
  assert_ok(dfs_lockmgr_acquire(f->m, "a", DFS_LOCK_EXCLUSIVE));
  assert_int_equal(pthread_create(&t, NULL, hold_two_then_wait, &h), 0);
  pthread_barrier_wait(&held);
  assert_ok(h.rc1);
  assert_ok(h.rc2);
  assert_dfs(probe(f, "a", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(probe(f, "b", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_dfs(probe(f, "c", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release_all(f->m));
  assert_ok(probe(f, "a", DFS_LOCK_EXCLUSIVE));
  assert_ok(probe(f, "b", DFS_LOCK_EXCLUSIVE));
  assert_ok(probe(f, "c", DFS_LOCK_EXCLUSIVE));
  /* The caller's own hold went too. */
  assert_ok(dfs_lockmgr_try_acquire(f->m, "a", DFS_LOCK_EXCLUSIVE));
  pthread_barrier_wait(&after);
  pthread_join(t, NULL);
  assert_ok(h.rc_release_after);
  assert_ok(h.rc_again);
  assert_ok(dfs_lockmgr_release(f->m, "a"));
  pthread_barrier_destroy(&held);
  pthread_barrier_destroy(&after);
}

/* ---- thread exit -------------------------------------------------------- */

struct exiter {
  dfs_lockmgr *m;
  const char *ids[3];
  dfs_lock_type types[3];
  int rc;
  pthread_t self;
};

/* Acquire each id and return without releasing. */
static void *acquire_and_exit(void *arg)
{
  struct exiter *x = arg;
  x->self = pthread_self();
  for (int i = 0; i < 3 && x->ids[i]; i++)
    if ((x->rc = dfs_lockmgr_acquire(x->m, x->ids[i], x->types[i])) != 0)
      break;
  return NULL;
}

static void run_exiter(struct exiter *x)
{
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, acquire_and_exit, x), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_ok(x->rc);
}

static void lockmgr__thread_exit_releases_its_holds(void **state)
{
  struct fx *f = *state;
  struct exiter x = {f->m, {"ex", "sh", NULL}, {DFS_LOCK_EXCLUSIVE, DFS_LOCK_SHARED}, 0, 0};
  struct exiter y = {f->m, {"ex", NULL, NULL}, {DFS_LOCK_EXCLUSIVE}, 0, 0};
  struct worker w;

  /* A live thread shares "sh" with the one that will exit. */
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_ACQUIRE, "sh", DFS_LOCK_SHARED, 0));
  run_exiter(&x);
  /* Its exclusive hold is gone, for other processes and for this one ... */
  assert_ok(try_in_child(f->dir, "ex", DFS_LOCK_EXCLUSIVE));
  assert_ok(probe(f, "ex", DFS_LOCK_EXCLUSIVE));
  /* ... while the live thread's shared hold stays. */
  assert_dfs(try_in_child(f->dir, "sh", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(try_in_child(f->dir, "sh", DFS_LOCK_SHARED));
  assert_ok(worker_do(&w, OP_RELEASE, "sh", DFS_LOCK_SHARED, 0));
  assert_ok(try_in_child(f->dir, "sh", DFS_LOCK_EXCLUSIVE));
  worker_stop(&w);
  /* A new thread (glibc often hands it the dead thread's pthread_t) holds
   * nothing: it gets "ex" instead of DFS_EALREADY_LOCKED. */
  run_exiter(&y);
  assert_ok(dfs_lockmgr_acquire(f->m, "ex", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "ex"));
}

static void lockmgr__thread_exit_releases_holds_in_every_manager(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m2;
  struct worker w;
  char p[4096];

  assert_ok(dfs_lockmgr_new(&m2, f->st));
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_ACQUIRE, "one", DFS_LOCK_EXCLUSIVE, 0));
  w.m = m2; /* the same thread, now through a second manager */
  assert_ok(worker_do(&w, OP_ACQUIRE, "two", DFS_LOCK_EXCLUSIVE, 0));
  /* A delete under the exclusive hold: the lock file goes at the release,
   * which is the thread's exit here. */
  put_entity(f, "two");
  w.st = f->st;
  assert_ok(worker_do(&w, OP_DELETE, "two", DFS_LOCK_EXCLUSIVE, 0));
  lock_path(f, "two", p, sizeof p);
  assert_true(path_exists(p));
  worker_stop(&w);
  assert_false(path_exists(p));
  assert_ok(try_in_child(f->dir, "one", DFS_LOCK_EXCLUSIVE));
  assert_ok(try_in_child(f->dir, "two", DFS_LOCK_EXCLUSIVE));
  dfs_lockmgr_free(m2);
}

static void lockmgr__thread_exit_after_its_manager_is_freed_is_harmless(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m2;
  struct worker w;

  assert_ok(dfs_lockmgr_new(&m2, f->st));
  worker_start(&w, m2);
  assert_ok(worker_do(&w, OP_ACQUIRE, "gone", DFS_LOCK_EXCLUSIVE, 0));
  dfs_lockmgr_free(m2); /* releases the thread's hold and frees m2 */
  assert_ok(try_in_child(f->dir, "gone", DFS_LOCK_EXCLUSIVE));
  /* The thread's list still names m2: its exit must not touch it (ASan and
   * valgrind run this), nor anything of f->m. */
  assert_ok(dfs_lockmgr_acquire(f->m, "kept", DFS_LOCK_EXCLUSIVE));
  worker_stop(&w);
  assert_dfs(try_in_child(f->dir, "kept", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "kept"));
}

static void lockmgr__free_releases_everything(void **state)
{
  struct fx *f = *state;
  dfs_lockmgr *m2;
  int fds;

  assert_ok(dfs_lockmgr_new(&m2, f->st));
  assert_ok(dfs_lockmgr_acquire(m2, "a", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_acquire(m2, "b", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_acquire(m2, "c", DFS_LOCK_SHARED));
  assert_ok(dfs_lockmgr_release(m2, "c"));
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "a", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "b", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  fds = count_fds();
  dfs_lockmgr_free(m2);
  assert_int_equal(count_fds(), fds - 3); /* its a, b, c descriptors are closed */
  assert_ok(dfs_lockmgr_try_acquire(f->m, "a", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_try_acquire(f->m, "b", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release_all(f->m));
}

/* ---- lock files and dfs_delete ----------------------------------------- */

static void lockmgr__delete_while_held_exclusive_removes_the_lock_file_at_release(void **state)
{
  struct fx *f = *state;
  char p[4096];
  int fds;

  lock_path(f, "d", p, sizeof p);
  put_entity(f, "d");
  fds = count_fds();
  assert_ok(dfs_lockmgr_acquire(f->m, "d", DFS_LOCK_EXCLUSIVE));
  assert_true(path_exists(p));
  assert_ok(dfs_delete(f->st, "d"));
  assert_int_equal(dfs_exists(f->st, "d"), 0);
  /* While held, the lock file stays: a newcomer must wait on this very
   * file instead of creating a fresh one and getting in beside us. */
  assert_true(path_exists(p));
  assert_dfs(probe(f, "d", DFS_LOCK_SHARED), DFS_EBUSY);
  /* The release removes it (still held exclusively at that moment). */
  assert_ok(dfs_lockmgr_release(f->m, "d"));
  assert_false(path_exists(p));
  /* The descriptor of the unlinked file is not kept in the cache. */
  assert_int_equal(count_fds(), fds);
  /* The next acquire makes a new lock file and really locks it. */
  assert_ok(dfs_lockmgr_acquire(f->m, "d", DFS_LOCK_EXCLUSIVE));
  assert_true(path_exists(p));
  assert_dfs(probe(f, "d", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "d"));
}

static void lockmgr__delete_leaves_a_lock_file_someone_else_holds(void **state)
{
  struct fx *f = *state;
  char p[4096];
  struct worker w;
  ino_t ino;

  lock_path(f, "d", p, sizeof p);
  put_entity(f, "d");
  /* Held shared by the caller itself: not exclusive, so it stays. */
  assert_ok(dfs_lockmgr_acquire(f->m, "d", DFS_LOCK_SHARED));
  ino = path_ino(p);
  assert_ok(dfs_delete(f->st, "d"));
  assert_true(path_exists(p));
  assert_int_equal(path_ino(p), ino);
  assert_ok(dfs_lockmgr_release(f->m, "d"));
  /* Held exclusively by another thread: stays too. */
  put_entity(f, "d");
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_ACQUIRE, "d", DFS_LOCK_EXCLUSIVE, 0));
  assert_ok(dfs_delete(f->st, "d"));
  assert_true(path_exists(p));
  assert_int_equal(path_ino(p), ino);
  assert_ok(worker_do(&w, OP_RELEASE, "d", DFS_LOCK_SHARED, 0));
  worker_stop(&w);
  /* Held by another process: stays. */
  {
    struct child c = hold_in_child(f->dir, "d", DFS_LOCK_SHARED);
    assert_ok(dfs_delete(f->st, "d"));
    assert_true(path_exists(p));
    child_release(c);
  }
  /* Nobody holds it (only an idle cached descriptor): removed. */
  assert_ok(dfs_delete(f->st, "d"));
  assert_false(path_exists(p));
}

static void lockmgr__cached_descriptor_of_a_deleted_lock_file_is_not_trusted(void **state)
{
  struct fx *f = *state;
  char p[4096];
  dfs_storage *st2;
  dfs_lockmgr *m2;

  lock_path(f, "d", p, sizeof p);
  put_entity(f, "d");
  /* f->m caches an open descriptor of the lock file. */
  assert_ok(dfs_lockmgr_acquire(f->m, "d", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "d"));
  /* Another store handle deletes the entity; nobody holds the lock, so the
   * file goes.  Then a second manager locks the fresh file. */
  assert_ok(open_store(f->dir, 0, &st2));
  assert_ok(dfs_delete(st2, "d"));
  assert_false(path_exists(p));
  assert_ok(dfs_lockmgr_new(&m2, st2));
  assert_ok(dfs_lockmgr_acquire(m2, "d", DFS_LOCK_EXCLUSIVE));
  /* Locking the stale cached descriptor would "succeed"; the re-check
   * must see the new file and report it busy. */
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "d", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "d", DFS_LOCK_EXCLUSIVE, 30), DFS_ETIMEDOUT);
  assert_ok(dfs_lockmgr_release(m2, "d"));
  assert_ok(dfs_lockmgr_acquire(f->m, "d", DFS_LOCK_EXCLUSIVE));
  assert_dfs(dfs_lockmgr_try_acquire(m2, "d", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "d"));
  dfs_lockmgr_free(m2);
  dfs_storage_close(st2);
}

static void lockmgr__go_compat_never_removes_lock_files(void **state)
{
  struct fx *f = *state;
  char p[4096];
  ino_t ino;

  assert_true(dfs_storage_flags(f->st) & DFS_OPT_GO_COMPAT);
  lock_path(f, "g", p, sizeof p);
  put_entity(f, "g");
  assert_ok(dfs_lockmgr_acquire(f->m, "g", DFS_LOCK_EXCLUSIVE));
  ino = path_ino(p);
  /* Even the internal hook refuses. */
  assert_int_equal(dfs__lockmgr_unlink_if_held_exclusive(f->st, "g"), 0);
  assert_ok(dfs_delete(f->st, "g"));
  assert_int_equal(dfs_exists(f->st, "g"), 0);
  assert_true(path_exists(p));
  assert_int_equal(path_ino(p), ino);
  assert_ok(dfs_lockmgr_release(f->m, "g"));
  put_entity(f, "g");
  assert_ok(dfs_delete(f->st, "g")); /* not held at all */
  assert_true(path_exists(p));
  assert_int_equal(path_ino(p), ino);
}

static void lockmgr__unlink_hook_only_acts_for_the_callers_exclusive_hold(void **state)
{
  struct fx *f = *state;
  char p[4096];
  struct worker w;

  lock_path(f, "h", p, sizeof p);
  assert_int_equal(dfs__lockmgr_unlink_if_held_exclusive(f->st, "h"), 0);
  assert_ok(dfs_lockmgr_acquire(f->m, "h", DFS_LOCK_SHARED));
  assert_int_equal(dfs__lockmgr_unlink_if_held_exclusive(f->st, "h"), 0);
  assert_ok(dfs_lockmgr_release(f->m, "h"));
  worker_start(&w, f->m);
  assert_ok(worker_do(&w, OP_ACQUIRE, "h", DFS_LOCK_EXCLUSIVE, 0));
  assert_int_equal(dfs__lockmgr_unlink_if_held_exclusive(f->st, "h"), 0);
  assert_true(path_exists(p));
  assert_ok(worker_do(&w, OP_RELEASE, "h", DFS_LOCK_SHARED, 0));
  worker_stop(&w);
  assert_ok(dfs_lockmgr_acquire(f->m, "h", DFS_LOCK_EXCLUSIVE));
  assert_int_equal(dfs__lockmgr_unlink_if_held_exclusive(f->st, "h"), 1);
  assert_true(path_exists(p)); /* removed at the release, not before */
  assert_ok(dfs_lockmgr_release(f->m, "h"));
  assert_false(path_exists(p)); /* "h" has no blob: the entity is gone */
}

/* ---- the re-check after flock ------------------------------------------ */

struct raw_acq {
  dfs_storage *st;
  int fd, rc;
  atomic_int done;
};

static void *raw_acquire(void *arg)
{
  struct raw_acq *r = arg;
  r->rc = dfs__lockfile_acquire(r->st, "r", LOCK_EX, 1, &r->fd);
  atomic_store(&r->done, 1);
  return NULL;
}

/* Replace the lock file under a waiter: it must end up holding the new
 * inode, never the unlinked one. */
static void lockfile__acquire_retries_when_the_file_is_replaced_while_waiting(void **state)
{
  struct fx *f = *state;
  char p[4096];
  struct raw_acq r = {f->st, -1, -99, 0};
  pthread_t t;
  int old_fd, new_fd;
  struct stat sb;

  lock_path(f, "r", p, sizeof p);
  old_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true(old_fd >= 0);
  assert_int_equal(flock(old_fd, LOCK_EX), 0);
  assert_int_equal(pthread_create(&t, NULL, raw_acquire, &r), 0);
  usleep(50000); /* it opened the old file and waits in flock */
  assert_false(atomic_load(&r.done));
  /* What a deleter does (unlink while held), then a newcomer takes the
   * fresh file before the old holder lets go. */
  assert_int_equal(unlink(p), 0);
  new_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true(new_fd >= 0);
  assert_int_equal(flock(new_fd, LOCK_EX), 0);
  close(old_fd);
  usleep(50000);
  /* Without the re-check it would now "hold" the unlinked file. */
  assert_false(atomic_load(&r.done));
  close(new_fd);
  pthread_join(t, NULL);
  assert_ok(r.rc);
  assert_int_equal(fstat(r.fd, &sb), 0);
  assert_int_equal(sb.st_ino, path_ino(p));
  assert_int_not_equal(sb.st_nlink, 0);
  close(r.fd);
}

static void lockmgr__acquire_retries_when_the_file_is_replaced_while_waiting(void **state)
{
  struct fx *f = *state;
  char p[4096];
  struct worker w;
  int old_fd, new_fd;

  lock_path(f, "r", p, sizeof p);
  old_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true(old_fd >= 0);
  assert_int_equal(flock(old_fd, LOCK_EX), 0);
  worker_start(&w, f->m);
  worker_send(&w, OP_ACQUIRE, "r", DFS_LOCK_EXCLUSIVE, 0);
  assert_false(worker_wait(&w, 50));
  assert_int_equal(unlink(p), 0);
  new_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true(new_fd >= 0);
  assert_int_equal(flock(new_fd, LOCK_EX), 0);
  close(old_fd);
  assert_false(worker_wait(&w, 50));
  close(new_fd);
  assert_true(worker_wait(&w, 2000));
  assert_ok(w.rc);
  /* It holds the file at the path. */
  {
    char cmd[4200];
    int rc;
    snprintf(cmd, sizeof cmd, "flock -n -s '%s' true", p);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
  }
  assert_ok(worker_do(&w, OP_RELEASE, "r", DFS_LOCK_SHARED, 0));
  worker_stop(&w);
}

static void lockfile__acquire_reports_busy_and_notfound_without_leaks(void **state)
{
  struct fx *f = *state;
  char p[4096];
  int fd = -1, fds = count_fds(), holder;

  lock_path(f, "n", p, sizeof p);
  assert_dfs(dfs__lockfile_acquire(f->st, "n", LOCK_EX | LOCK_NB, 0, &fd), DFS_ENOTFOUND);
  assert_false(path_exists(p));
  holder = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_int_equal(flock(holder, LOCK_SH), 0);
  assert_dfs(dfs__lockfile_acquire(f->st, "n", LOCK_EX | LOCK_NB, 0, &fd), DFS_EBUSY);
  assert_non_null(strstr(dfs_last_error(), p));
  assert_ok(dfs__lockfile_acquire(f->st, "n", LOCK_SH | LOCK_NB, 0, &fd));
  close(fd);
  close(holder);
  assert_int_equal(count_fds(), fds);
  /* A symlink at the lock path is refused, never followed. */
  unlink(p);
  assert_int_equal(symlink("/etc/passwd", p), 0);
  assert_dfs(dfs__lockfile_acquire(f->st, "n", LOCK_EX | LOCK_NB, 1, &fd), DFS_ELOCK);
  assert_dfs(dfs_lockmgr_acquire(f->m, "n", DFS_LOCK_SHARED), DFS_ELOCK);
  assert_non_null(strstr(dfs_last_error(), p));
  assert_int_equal(count_fds(), fds);
}

/* ---- delete under contention ------------------------------------------- */

struct shared_area {
  atomic_int inside;    /* holders inside the critical section now   */
  atomic_int violations;
  atomic_long entries;  /* critical sections completed                */
  atomic_long contender_entries; /* of which by contenders            */
  atomic_int stop;
  atomic_int deletes_unlinked; /* deletes after which the file was gone */
  atomic_int handoffs_missed;  /* deletes no contender followed in 10 s */
};

struct contender {
  const char *dir;
  struct shared_area *sa;
  dfs_lockmgr *m;
  int rc;
};

static void critical_section(struct shared_area *sa)
{
  if (atomic_fetch_add(&sa->inside, 1) != 0)
    atomic_fetch_add(&sa->violations, 1);
  for (volatile int i = 0; i < 200; i++)
    ;
  atomic_fetch_add(&sa->entries, 1);
  atomic_fetch_add(&sa->contender_entries, 1);
  atomic_fetch_sub(&sa->inside, 1);
}

static void *contend(void *arg)
{
  struct contender *c = arg;
  while (!atomic_load(&c->sa->stop)) {
    if ((c->rc = dfs_lockmgr_acquire(c->m, "hot", DFS_LOCK_EXCLUSIVE)) != 0)
      return NULL;
    critical_section(c->sa);
    if ((c->rc = dfs_lockmgr_release(c->m, "hot")) != 0)
      return NULL;
  }
  return NULL;
}

/* A contender process: 2 threads on one manager. */
static int contender_process(const char *dir, struct shared_area *sa)
{
  dfs_storage *st;
  dfs_lockmgr *m;
  pthread_t t[2];
  struct contender c[2];
  int rc = 0;

  if (open_store(dir, 0, &st) != 0 || dfs_lockmgr_new(&m, st) != 0)
    return 2;
  for (int i = 0; i < 2; i++) {
    c[i] = (struct contender){dir, sa, m, 0};
    pthread_create(&t[i], NULL, contend, &c[i]);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    if (c[i].rc)
      rc = 3;
  }
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return rc;
}

static int deleter_process(const char *dir, struct shared_area *sa, int iters)
{
  dfs_storage *st;
  dfs_lockmgr *m;
  dfs_meta meta = tu_meta(1);
  char p[4096];
  int rc = 0;

  if (open_store(dir, 0, &st) != 0 || dfs_lockmgr_new(&m, st) != 0)
    return 2;
  dfs_lock_path(st, "hot", p, sizeof p);
  for (int i = 0; i < iters && rc == 0; i++) {
    struct stat held, after;
    if (dfs_lockmgr_acquire(m, "hot", DFS_LOCK_EXCLUSIVE) != 0) {
      rc = 4;
      break;
    }
    /* The deleter's critical section covers the write AND the delete: the
     * lock file is removed only at the release, so nobody may get in
     * before then. */
    if (atomic_fetch_add(&sa->inside, 1) != 0)
      atomic_fetch_add(&sa->violations, 1);
    if (dfs_write(st, "hot", "x", 1, &meta) != 0)
      rc = 5;
    if (dfs_delete(st, "hot") != 0)
      rc = 6;
    if (lstat(p, &held) != 0) /* still there while held */
      atomic_fetch_add(&sa->violations, 1);
    for (volatile int k = 0; k < 200; k++)
      ;
    atomic_fetch_add(&sa->entries, 1);
    atomic_fetch_sub(&sa->inside, 1);
    if (dfs_lockmgr_release(m, "hot") != 0)
      rc = 7;
    if (lstat(p, &after) != 0 || after.st_ino != held.st_ino)
      atomic_fetch_add(&sa->deletes_unlinked, 1);
    /* Hand off: wait until a contender has been inside before deleting
     * again, so every delete races contenders queued on the unlinked file
     * (flock is not fair; without this the deleter may win every round
     * on a slow or sanitized build). */
    long seen = atomic_load(&sa->contender_entries);
    double give_up = now_ms() + 10000;
    while (atomic_load(&sa->contender_entries) == seen) {
      if (now_ms() > give_up) {
        atomic_fetch_add(&sa->handoffs_missed, 1);
        break;
      }
      sched_yield();
    }
  }
  atomic_store(&sa->stop, 1);
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  return rc;
}

static void lockmgr__delete_while_contended_never_admits_two_exclusive_holders(void **state)
{
  struct fx *f = *state;
  enum { CONTENDERS = 3, DELETES = UNDER_SANITIZER ? 300 : 2000 };
  struct shared_area *sa = mmap(NULL, sizeof *sa, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pid_t pids[CONTENDERS + 1];
  double t0 = now_ms();

  assert_true(sa != MAP_FAILED);
  memset(sa, 0, sizeof *sa);
  for (int i = 0; i <= CONTENDERS; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0)
      _exit(i == 0 ? deleter_process(f->dir, sa, DELETES) : contender_process(f->dir, sa));
  }
  for (int i = 0; i <= CONTENDERS; i++) {
    int status;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  print_message("%d deletes (%d unlinked the lock file), %ld critical sections "
                "(%ld by contenders), %d violations, %d missed hand-offs, %.0f ms\n",
                DELETES, atomic_load(&sa->deletes_unlinked), atomic_load(&sa->entries),
                atomic_load(&sa->contender_entries), atomic_load(&sa->violations),
                atomic_load(&sa->handoffs_missed), now_ms() - t0);
  assert_int_equal(atomic_load(&sa->violations), 0);
  /* The test exercised what it claims to: lock files were removed under
   * contention, and contenders got in between. */
  assert_true(atomic_load(&sa->deletes_unlinked) > DELETES / 10);
  assert_int_equal(atomic_load(&sa->handoffs_missed), 0);
  assert_true(atomic_load(&sa->contender_entries) >= DELETES);
  munmap(sa, sizeof *sa);
}

/* ---- fault injection --------------------------------------------------- */

static void lockmgr__injected_flock_eio_is_elock_and_leaves_nothing_held(void **state)
{
  struct fx *f = *state;
  char p[4096];

  lock_path(f, "fi", p, sizeof p);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_lockmgr_acquire(f->m, "fi", DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  dfs_fault_disarm();
  assert_int_equal(dfs_fault_fired(), 1);
  assert_non_null(strstr(dfs_last_error(), p));
  assert_non_null(strstr(dfs_last_error(), "Input/output error"));
  assert_ok(probe(f, "fi", DFS_LOCK_EXCLUSIVE));
  /* The manager is not wedged: the same thread can take it now. */
  assert_ok(dfs_lockmgr_acquire(f->m, "fi", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "fi"));
  /* The same for try and timed acquires. */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_lockmgr_try_acquire(f->m, "fi", DFS_LOCK_SHARED), DFS_ELOCK);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_lockmgr_acquire_timeout(f->m, "fi", DFS_LOCK_SHARED, 100), DFS_ELOCK);
  dfs_fault_disarm();
  assert_ok(probe(f, "fi", DFS_LOCK_EXCLUSIVE));
}

static void lockmgr__injected_eintr_is_retried_transparently(void **state)
{
  struct fx *f = *state;
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EINTR, 0);
  assert_ok(dfs_lockmgr_acquire(f->m, "ei", DFS_LOCK_EXCLUSIVE));
  assert_int_equal(dfs_fault_fired(), 1);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FSTAT | DFS_SYS_OPEN), 1, DFS_FAULT_FAIL, EINTR, 0);
  assert_ok(dfs_lockmgr_acquire(f->m, "ej", DFS_LOCK_SHARED));
  assert_int_equal(dfs_fault_fired(), 1);
  dfs_fault_disarm();
  assert_dfs(probe(f, "ei", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(probe(f, "ej", DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EINTR, 0);
  assert_ok(dfs_lockmgr_release(f->m, "ei"));
  dfs_fault_disarm();
  assert_ok(probe(f, "ei", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "ej"));
}

static void lockmgr__injected_unlock_failure_is_eunlock_and_releases(void **state)
{
  struct fx *f = *state;
  char p[4096];
  lock_path(f, "u", p, sizeof p);
  assert_ok(dfs_lockmgr_acquire(f->m, "u", DFS_LOCK_EXCLUSIVE));
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_lockmgr_release(f->m, "u"), DFS_EUNLOCK);
  dfs_fault_disarm();
  assert_non_null(strstr(dfs_last_error(), p));
  /* Not held by anyone, and not by us either. */
  assert_ok(probe(f, "u", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_acquire(f->m, "u", DFS_LOCK_EXCLUSIVE));
  /* release_all reports the first failure, still releases everything. */
  assert_ok(dfs_lockmgr_acquire(f->m, "u2", DFS_LOCK_SHARED));
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 1);
  assert_dfs(dfs_lockmgr_release_all(f->m), DFS_EUNLOCK);
  dfs_fault_disarm();
  assert_ok(probe(f, "u", DFS_LOCK_EXCLUSIVE));
  assert_ok(probe(f, "u2", DFS_LOCK_EXCLUSIVE));
}

static void lockmgr__injected_open_stat_and_malloc_failures_leak_nothing(void **state)
{
  struct fx *f = *state;
  char p[4096];
  int fds = count_fds();

  lock_path(f, "o", p, sizeof p);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_OPEN), 1, DFS_FAULT_FAIL, EACCES, 1);
  assert_dfs(dfs_lockmgr_acquire(f->m, "o", DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  assert_non_null(strstr(dfs_last_error(), p));
  assert_non_null(strstr(dfs_last_error(), "Permission denied"));
  /* The re-check's fstatat fails: ELOCK, and the flock is dropped. */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FSTAT), 2, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_lockmgr_acquire(f->m, "o", DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  assert_int_equal(dfs_fault_fired(), 1);
  assert_non_null(strstr(dfs_last_error(), "fstatat"));
  dfs_fault_disarm();
  assert_ok(probe(f, "o", DFS_LOCK_EXCLUSIVE));
  assert_int_equal(count_fds(), fds); /* the failed acquires kept nothing open */
  /* No memory for a new entry. */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_MALLOC), 1, DFS_FAULT_FAIL, ENOMEM, 0);
  assert_dfs(dfs_lockmgr_acquire(f->m, "brand-new", DFS_LOCK_EXCLUSIVE), DFS_ENOMEM);
  dfs_fault_disarm();
  assert_int_equal(count_fds(), fds);
  assert_ok(dfs_lockmgr_acquire(f->m, "brand-new", DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_lockmgr_release(f->m, "brand-new"));
  dfs_lockmgr_release_all(f->m);
  /* Only cached descriptors remain: "o" (failed, closed) holds none. */
  assert_true(count_fds() <= fds + 1);
}

static void lockmgr__emfile_closes_idle_descriptors_and_retries(void **state)
{
  struct fx *f = *state;
  char id[32];
  int before = count_fds();

  for (int i = 0; i < 20; i++) {
    snprintf(id, sizeof id, "idle-%d", i);
    assert_ok(dfs_lockmgr_acquire(f->m, id, DFS_LOCK_SHARED));
    assert_ok(dfs_lockmgr_release(f->m, id));
  }
  assert_int_equal(count_fds(), before + 20); /* cached */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_OPEN), 1, DFS_FAULT_FAIL, EMFILE, 0);
  assert_ok(dfs_lockmgr_acquire(f->m, "needs-fd", DFS_LOCK_EXCLUSIVE));
  dfs_fault_disarm();
  assert_int_equal(dfs_fault_fired(), 1);
  assert_int_equal(count_fds(), before + 1); /* idle ones dropped */
  assert_dfs(probe(f, "needs-fd", DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_lockmgr_release(f->m, "needs-fd"));
}

/* ---- resources and cost ------------------------------------------------ */

static void lockmgr__descriptor_cache_is_bounded(void **state)
{
  struct fx *f = *state;
  struct rlimit old, low;
  dfs_lockmgr *m2;
  char id[32];
  int before;

  /* Default: at most 1024 idle descriptors per manager. */
  before = count_fds();
  for (int i = 0; i < 1500; i++) {
    snprintf(id, sizeof id, "many-%d", i);
    assert_ok(dfs_lockmgr_acquire(f->m, id, DFS_LOCK_EXCLUSIVE));
    assert_ok(dfs_lockmgr_release(f->m, id));
  }
  assert_true(count_fds() - before <= 1024);
  assert_true(count_fds() - before >= 16); /* ...and it does cache */
  dfs_lockmgr_release_all(f->m);

  /* A low descriptor limit shrinks the cache to a quarter of it. */
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 256;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  assert_ok(dfs_lockmgr_new(&m2, f->st));
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  before = count_fds();
  for (int i = 0; i < 300; i++) {
    snprintf(id, sizeof id, "few-%d", i);
    assert_ok(dfs_lockmgr_acquire(m2, id, DFS_LOCK_SHARED));
    assert_ok(dfs_lockmgr_release(m2, id));
  }
  assert_true(count_fds() - before <= 64);
  dfs_lockmgr_free(m2);
  assert_int_equal(count_fds(), before);
}

/* The fast path, counted in system calls rather than timed (timings are
 * the benchmark's job): a warm, uncontended acquire+release is one flock,
 * one fstatat (the re-check) and one flock(LOCK_UN), with no open, close or
 * allocation. */
static void lockmgr__uncontended_cycle_is_flock_fstatat_flock(void **state)
{
  struct fx *f = *state;
  assert_ok(dfs_lockmgr_acquire(f->m, "fast", DFS_LOCK_SHARED)); /* warm the fd cache */
  assert_ok(dfs_lockmgr_release(f->m, "fast"));
  for (int type = DFS_LOCK_SHARED; type <= DFS_LOCK_EXCLUSIVE; type++) {
    dfs_fault_count_start(DFS_FAULT_MASK_ALL);
    assert_ok(dfs_lockmgr_acquire(f->m, "fast", (dfs_lock_type)type));
    assert_ok(dfs_lockmgr_release(f->m, "fast"));
    assert_int_equal(dfs_fault_count(), 3);
    dfs_fault_count_start(DFS_FAULT_MASK(DFS_SYS_FLOCK));
    assert_ok(dfs_lockmgr_acquire(f->m, "fast", (dfs_lock_type)type));
    assert_ok(dfs_lockmgr_release(f->m, "fast"));
    assert_int_equal(dfs_fault_count(), 2);
    dfs_fault_disarm();
  }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(lockmgr__bad_arguments_are_einval),
      T(lockmgr__invalid_ids_are_rejected_before_touching_files),
      T(lockmgr__acquire_creates_the_documented_lock_file),
      T(lockmgr__thread_asking_again_gets_already_locked),
      T(lockmgr__release_of_unheld_is_ok_and_changes_nothing),
      T(lockmgr__threads_share_shared_and_exclusive_excludes_them),
      T(lockmgr__blocking_acquire_waits_for_another_threads_release),
      T(lockmgr__many_threads_hold_shared_at_once),
      T(lockmgr__exclusive_threads_never_overlap),
      T(lockmgr__two_managers_exclude_like_processes),
      T(lockmgr__processes_share_shared_and_exclusive_excludes),
      T(lockmgr__blocked_acquire_never_delays_other_entities),
      T(lockmgr__thread_blocked_behind_a_thread_never_delays_others),
      T(lockmgr__timeout_returns_within_tolerance),
      T(lockmgr__timed_acquire_gets_a_lock_freed_before_the_deadline),
      T(lockmgr__holder_killed_with_sigkill_releases),
      T(lockmgr__util_linux_flock_holder_is_respected),
      T(lockmgr__release_all_releases_every_threads_holds),
      T(lockmgr__thread_exit_releases_its_holds),
      T(lockmgr__thread_exit_releases_holds_in_every_manager),
      T(lockmgr__thread_exit_after_its_manager_is_freed_is_harmless),
      T(lockmgr__free_releases_everything),
      T(lockmgr__delete_while_held_exclusive_removes_the_lock_file_at_release),
      T(lockmgr__delete_leaves_a_lock_file_someone_else_holds),
      T(lockmgr__cached_descriptor_of_a_deleted_lock_file_is_not_trusted),
      cmocka_unit_test_setup_teardown(lockmgr__go_compat_never_removes_lock_files, setup_go,
                                      teardown),
      T(lockmgr__unlink_hook_only_acts_for_the_callers_exclusive_hold),
      T(lockfile__acquire_retries_when_the_file_is_replaced_while_waiting),
      T(lockmgr__acquire_retries_when_the_file_is_replaced_while_waiting),
      T(lockfile__acquire_reports_busy_and_notfound_without_leaks),
      T(lockmgr__delete_while_contended_never_admits_two_exclusive_holders),
      T(lockmgr__injected_flock_eio_is_elock_and_leaves_nothing_held),
      T(lockmgr__injected_eintr_is_retried_transparently),
      T(lockmgr__injected_unlock_failure_is_eunlock_and_releases),
      T(lockmgr__injected_open_stat_and_malloc_failures_leak_nothing),
      T(lockmgr__emfile_closes_idle_descriptors_and_retries),
      T(lockmgr__descriptor_cache_is_bounded),
      T(lockmgr__uncontended_cycle_is_flock_fstatat_flock),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
