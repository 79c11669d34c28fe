/*
 * test_flock.c — dfs_flock: one lock file, one holder (lock.h).
 *
 * Cross-process cases fork a child that takes a lock, reports "locked" on a
 * pipe and holds it until told to go (or is killed); the parent then checks
 * what its own handle can and cannot do.
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
#include <time.h>
#include <unistd.h>

#include "fault.h"

struct fx {
  char *dir;
  char path[4096];
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);
  f->dir = tu_mkdtemp("flock");
  snprintf(f->path, sizeof f->path, "%s/x.lock", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  dfs_fault_disarm();
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

/* A child holding `type` on path until it reads a byte from *go (or dies).
 * Returns its pid once it holds the lock. */
static pid_t hold_in_child(const char *path, dfs_lock_type type, int *go)
{
  int ready[2], gop[2];
  char c;
  pid_t pid;

  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(gop), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dfs_flock *lk;
    close(ready[0]);
    close(gop[1]);
    if (dfs_flock_open(&lk, path) != 0 || dfs_flock_lock(lk, type) != 0)
      _exit(2);
    if (write(ready[1], "L", 1) != 1)
      _exit(3);
    if (read(gop[0], &c, 1) < 0)
      _exit(4);
    _exit(dfs_flock_close(lk) == 0 ? 0 : 5);
  }
  close(ready[1]);
  close(gop[0]);
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  *go = gop[1];
  return pid;
}

static void release_child(pid_t pid, int go)
{
  int status;
  assert_int_equal(write(go, "G", 1), 1);
  close(go);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void flock__open_creates_missing_file_without_locking(void **state)
{
  struct fx *f = *state;
  dfs_flock *a, *b;
  struct stat sb;

  assert_int_equal(stat(f->path, &sb), -1);
  assert_ok(dfs_flock_open(&a, f->path));
  assert_int_equal(stat(f->path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_size, 0);
  assert_int_equal(dfs_flock_is_locked(a), 0);
  /* No lock was taken: another handle can lock exclusively at once. */
  assert_ok(dfs_flock_open(&b, f->path));
  assert_ok(dfs_flock_trylock(b, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(b));
  assert_ok(dfs_flock_close(a));
}

static void flock__open_bad_arguments_are_einval(void **state)
{
  dfs_flock *lk = (dfs_flock *)0x1;
  (void)state;
  assert_dfs(dfs_flock_open(NULL, "/tmp/x"), DFS_EINVAL);
  assert_dfs(dfs_flock_open(&lk, NULL), DFS_EINVAL);
  assert_null(lk);
  assert_dfs(dfs_flock_open(&lk, ""), DFS_EINVAL);
  assert_dfs(dfs_flock_lock(NULL, DFS_LOCK_SHARED), DFS_EINVAL);
  assert_dfs(dfs_flock_trylock(NULL, DFS_LOCK_SHARED), DFS_EINVAL);
  assert_dfs(dfs_flock_lock_timeout(NULL, DFS_LOCK_SHARED, 10), DFS_EINVAL);
  assert_dfs(dfs_flock_unlock(NULL), DFS_EINVAL);
  assert_int_equal(dfs_flock_is_locked(NULL), 0);
  assert_ok(dfs_flock_close(NULL));
}

static void flock__open_in_missing_directory_is_elock_naming_path(void **state)
{
  struct fx *f = *state;
  char p[4200];
  dfs_flock *lk;
  int fds = count_fds();

  snprintf(p, sizeof p, "%s/no/such/dir/x.lock", f->dir);
  assert_dfs(dfs_flock_open(&lk, p), DFS_ELOCK);
  assert_non_null(strstr(dfs_last_error(), p));
  assert_non_null(strstr(dfs_last_error(), "No such file"));
  assert_int_equal(count_fds(), fds);
}

static void flock__open_refuses_a_symlink(void **state)
{
  struct fx *f = *state;
  char target[4200];
  dfs_flock *lk;
  struct stat sb;

  /* A planted symlink must not make us create (or lock) its target. */
  snprintf(target, sizeof target, "%s/target", f->dir);
  assert_int_equal(symlink(target, f->path), 0);
  assert_dfs(dfs_flock_open(&lk, f->path), DFS_ELOCK);
  assert_int_equal(stat(target, &sb), -1);
}

static void flock__bad_lock_type_is_einval(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  assert_ok(dfs_flock_open(&lk, f->path));
  assert_dfs(dfs_flock_lock(lk, (dfs_lock_type)7), DFS_EINVAL);
  assert_dfs(dfs_flock_trylock(lk, (dfs_lock_type)-1), DFS_EINVAL);
  assert_dfs(dfs_flock_lock_timeout(lk, (dfs_lock_type)2, 5), DFS_EINVAL);
  assert_int_equal(dfs_flock_is_locked(lk), 0);
  assert_ok(dfs_flock_close(lk));
}

static void flock__locking_twice_is_already_locked(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk, *other;
  assert_ok(dfs_flock_open(&lk, f->path));
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_SHARED));
  assert_dfs(dfs_flock_lock(lk, DFS_LOCK_SHARED), DFS_EALREADY_LOCKED);
  /* No silent upgrade (flock would convert non-atomically). */
  assert_dfs(dfs_flock_trylock(lk, DFS_LOCK_EXCLUSIVE), DFS_EALREADY_LOCKED);
  assert_dfs(dfs_flock_lock_timeout(lk, DFS_LOCK_EXCLUSIVE, 10), DFS_EALREADY_LOCKED);
  /* ...and the shared lock is still what we hold: another shared is fine,
   * an exclusive is not. */
  assert_ok(dfs_flock_open(&other, f->path));
  assert_dfs(dfs_flock_trylock(other, DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_ok(dfs_flock_trylock(other, DFS_LOCK_SHARED));
  assert_ok(dfs_flock_close(other));
  assert_ok(dfs_flock_close(lk));
}

static void flock__unlock_of_unlocked_is_ok_and_is_locked_tracks(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk, *other;
  assert_ok(dfs_flock_open(&lk, f->path));
  assert_ok(dfs_flock_unlock(lk));
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  assert_int_equal(dfs_flock_is_locked(lk), 1);
  assert_ok(dfs_flock_unlock(lk));
  assert_int_equal(dfs_flock_is_locked(lk), 0);
  assert_ok(dfs_flock_unlock(lk));
  /* Unlocked for real: another handle gets it exclusively. */
  assert_ok(dfs_flock_open(&other, f->path));
  assert_ok(dfs_flock_trylock(other, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(other));
  assert_ok(dfs_flock_close(lk));
}

static void flock__two_handles_in_one_process_exclude_each_other(void **state)
{
  struct fx *f = *state;
  dfs_flock *a, *b;
  assert_ok(dfs_flock_open(&a, f->path));
  assert_ok(dfs_flock_open(&b, f->path));
  assert_ok(dfs_flock_lock(a, DFS_LOCK_SHARED));
  assert_ok(dfs_flock_trylock(b, DFS_LOCK_SHARED));
  assert_ok(dfs_flock_unlock(b));
  assert_ok(dfs_flock_unlock(a));
  assert_ok(dfs_flock_lock(a, DFS_LOCK_EXCLUSIVE));
  assert_dfs(dfs_flock_trylock(b, DFS_LOCK_SHARED), DFS_EBUSY);
  assert_dfs(dfs_flock_trylock(b, DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_int_equal(dfs_flock_is_locked(b), 0);
  assert_ok(dfs_flock_close(a));
  assert_ok(dfs_flock_trylock(b, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(b));
}

static void flock__shared_with_shared_across_processes_exclusive_excluded(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  int go;
  pid_t pid = hold_in_child(f->path, DFS_LOCK_SHARED, &go);

  assert_ok(dfs_flock_open(&lk, f->path));
  assert_dfs(dfs_flock_trylock(lk, DFS_LOCK_EXCLUSIVE), DFS_EBUSY);
  assert_non_null(strstr(dfs_last_error(), f->path));
  assert_ok(dfs_flock_trylock(lk, DFS_LOCK_SHARED));
  assert_ok(dfs_flock_unlock(lk));
  release_child(pid, go);
  assert_ok(dfs_flock_trylock(lk, DFS_LOCK_EXCLUSIVE));

  /* And the other way round: our exclusive keeps a child's shared out. */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dfs_flock *c;
    if (dfs_flock_open(&c, f->path) != 0)
      _exit(2);
    _exit(dfs_flock_trylock(c, DFS_LOCK_SHARED) == DFS_EBUSY ? 0 : 1);
  }
  {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_ok(dfs_flock_close(lk));
}

static void flock__lock_blocks_until_the_holder_lets_go(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  int go;
  pid_t pid = hold_in_child(f->path, DFS_LOCK_EXCLUSIVE, &go);
  pid_t releaser;
  double t0, dt;

  assert_ok(dfs_flock_open(&lk, f->path));
  /* A helper tells the child to go after 150ms while we block.  t0 is
   * taken before the fork, so the release is >= 150ms after it however
   * the scheduler orders the two processes. */
  t0 = now_ms();
  releaser = fork();
  assert_true(releaser >= 0);
  if (releaser == 0) {
    usleep(150000);
    _exit(write(go, "G", 1) == 1 ? 0 : 1);
  }
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  dt = now_ms() - t0;
  assert_true(dt >= 150.0);
  assert_int_equal(dfs_flock_is_locked(lk), 1);
  close(go);
  {
    int status;
    assert_int_equal(waitpid(releaser, &status, 0), releaser);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_ok(dfs_flock_close(lk));
}

static void flock__timeout_returns_etimedout_within_tolerance(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  int go;
  pid_t pid = hold_in_child(f->path, DFS_LOCK_EXCLUSIVE, &go);
  double t0, dt;

  assert_ok(dfs_flock_open(&lk, f->path));
  t0 = now_ms();
  assert_dfs(dfs_flock_lock_timeout(lk, DFS_LOCK_SHARED, 100), DFS_ETIMEDOUT);
  dt = now_ms() - t0;
  print_message("timeout 100ms returned after %.1f ms\n", dt);
  assert_true(dt >= 100.0);
  assert_true(dt < 100.0 + TU_PROMPT_MS);
  assert_int_equal(dfs_flock_is_locked(lk), 0);

  /* 0 means try once: EBUSY at once. */
  t0 = now_ms();
  assert_dfs(dfs_flock_lock_timeout(lk, DFS_LOCK_SHARED, 0), DFS_EBUSY);
  assert_true(now_ms() - t0 < TU_PROMPT_MS);
  release_child(pid, go);
  /* Free now: a timed lock succeeds at once. */
  t0 = now_ms();
  assert_ok(dfs_flock_lock_timeout(lk, DFS_LOCK_EXCLUSIVE, 5000));
  assert_true(now_ms() - t0 < TU_PROMPT_MS);
  assert_ok(dfs_flock_close(lk));
}

static void flock__timed_lock_gets_a_lock_released_before_the_deadline(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  int go;
  pid_t pid = hold_in_child(f->path, DFS_LOCK_EXCLUSIVE, &go), helper;
  double t0, dt;

  assert_ok(dfs_flock_open(&lk, f->path));
  t0 = now_ms(); /* before the fork: the release is >= 80ms after it */
  helper = fork();
  assert_true(helper >= 0);
  if (helper == 0) {
    usleep(80000);
    _exit(write(go, "G", 1) == 1 ? 0 : 1);
  }
  assert_ok(dfs_flock_lock_timeout(lk, DFS_LOCK_EXCLUSIVE, 10000));
  dt = now_ms() - t0;
  /* Noticed soon after the release (back-off is capped at 2ms), long
   * before the deadline. */
  assert_true(dt >= 80.0 && dt < 80.0 + TU_PROMPT_MS);
  close(go);
  waitpid(helper, NULL, 0);
  waitpid(pid, NULL, 0);
  /* A negative timeout waits forever, i.e. a plain lock. */
  assert_ok(dfs_flock_unlock(lk));
  assert_ok(dfs_flock_lock_timeout(lk, DFS_LOCK_SHARED, -1));
  assert_int_equal(dfs_flock_is_locked(lk), 1);
  assert_ok(dfs_flock_close(lk));
}

static void flock__close_unlocks(void **state)
{
  struct fx *f = *state;
  dfs_flock *a, *b;
  assert_ok(dfs_flock_open(&a, f->path));
  assert_ok(dfs_flock_open(&b, f->path));
  assert_ok(dfs_flock_lock(a, DFS_LOCK_EXCLUSIVE));
  assert_dfs(dfs_flock_trylock(b, DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_flock_close(a));
  assert_ok(dfs_flock_trylock(b, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(b));
}

static void flock__holder_killed_by_sigkill_releases(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  int go, status;
  pid_t pid = hold_in_child(f->path, DFS_LOCK_EXCLUSIVE, &go);

  assert_ok(dfs_flock_open(&lk, f->path));
  assert_dfs(dfs_flock_trylock(lk, DFS_LOCK_SHARED), DFS_EBUSY);
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  close(go);
  assert_ok(dfs_flock_lock_timeout(lk, DFS_LOCK_EXCLUSIVE, 2000));
  assert_ok(dfs_flock_close(lk));
}

static void flock__util_linux_flock_excludes_us_and_we_exclude_it(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk;
  char cmd[8400];
  int rc;

  if (access("/usr/bin/flock", X_OK) != 0 && system("command -v flock >/dev/null 2>&1") != 0)
    skip();
  assert_ok(dfs_flock_open(&lk, f->path));
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  /* flock(1) -n fails with exit 1 while we hold it... */
  snprintf(cmd, sizeof cmd, "flock -n -s '%s' true", f->path);
  rc = system(cmd);
  assert_true(WIFEXITED(rc));
  assert_int_equal(WEXITSTATUS(rc), 1);
  assert_ok(dfs_flock_unlock(lk));
  /* ...and succeeds once we let go. */
  rc = system(cmd);
  assert_true(WIFEXITED(rc));
  assert_int_equal(WEXITSTATUS(rc), 0);
  assert_ok(dfs_flock_close(lk));
}

static void flock__injected_flock_eio_is_elock_naming_the_path(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk, *other;
  assert_ok(dfs_flock_open(&lk, f->path));
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE), DFS_ELOCK);
  dfs_fault_disarm();
  assert_int_equal(dfs_fault_fired(), 1);
  assert_non_null(strstr(dfs_last_error(), f->path));
  assert_non_null(strstr(dfs_last_error(), "Input/output error"));
  assert_int_equal(dfs_flock_is_locked(lk), 0);
  /* Nothing is held after the failure. */
  assert_ok(dfs_flock_open(&other, f->path));
  assert_ok(dfs_flock_trylock(other, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(other));
  /* The handle still works. */
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(lk));
}

static void flock__injected_eintr_is_retried_transparently(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk, *other;
  assert_ok(dfs_flock_open(&lk, f->path));
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EINTR, 0);
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  dfs_fault_disarm();
  assert_int_equal(dfs_fault_fired(), 1);
  assert_ok(dfs_flock_open(&other, f->path));
  assert_dfs(dfs_flock_trylock(other, DFS_LOCK_SHARED), DFS_EBUSY);
  assert_ok(dfs_flock_close(other));
  assert_ok(dfs_flock_close(lk));
}

static void flock__failed_unlock_is_eunlock_and_leaves_nothing_held(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk, *other;
  assert_ok(dfs_flock_open(&lk, f->path));
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_EXCLUSIVE));
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_flock_unlock(lk), DFS_EUNLOCK);
  dfs_fault_disarm();
  assert_non_null(strstr(dfs_last_error(), f->path));
  assert_int_equal(dfs_flock_is_locked(lk), 0);
  assert_ok(dfs_flock_open(&other, f->path));
  assert_ok(dfs_flock_trylock(other, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(other));
  /* Reopened: the handle can lock again. */
  assert_ok(dfs_flock_lock(lk, DFS_LOCK_SHARED));
  /* A failed unlock inside close is reported, and the handle freed. */
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_FLOCK), 1, DFS_FAULT_FAIL, EIO, 0);
  assert_dfs(dfs_flock_close(lk), DFS_EUNLOCK);
  dfs_fault_disarm();
  assert_ok(dfs_flock_open(&other, f->path));
  assert_ok(dfs_flock_trylock(other, DFS_LOCK_EXCLUSIVE));
  assert_ok(dfs_flock_close(other));
}

static void flock__injected_open_and_malloc_failures_leak_nothing(void **state)
{
  struct fx *f = *state;
  dfs_flock *lk = NULL;
  int fds = count_fds();
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_OPEN), 1, DFS_FAULT_FAIL, EMFILE, 0);
  assert_dfs(dfs_flock_open(&lk, f->path), DFS_ELOCK);
  assert_non_null(strstr(dfs_last_error(), f->path));
  assert_null(lk);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_MALLOC), 1, DFS_FAULT_FAIL, ENOMEM, 0);
  assert_dfs(dfs_flock_open(&lk, f->path), DFS_ENOMEM);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_MALLOC), 2, DFS_FAULT_FAIL, ENOMEM, 0);
  assert_dfs(dfs_flock_open(&lk, f->path), DFS_ENOMEM);
  dfs_fault_disarm();
  assert_null(lk);
  assert_int_equal(count_fds(), fds);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(flock__open_creates_missing_file_without_locking, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__open_bad_arguments_are_einval, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__open_in_missing_directory_is_elock_naming_path, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__open_refuses_a_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__bad_lock_type_is_einval, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__locking_twice_is_already_locked, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__unlock_of_unlocked_is_ok_and_is_locked_tracks, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__two_handles_in_one_process_exclude_each_other, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__shared_with_shared_across_processes_exclusive_excluded, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__lock_blocks_until_the_holder_lets_go, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__timeout_returns_etimedout_within_tolerance, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__timed_lock_gets_a_lock_released_before_the_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__close_unlocks, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__holder_killed_by_sigkill_releases, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__util_linux_flock_excludes_us_and_we_exclude_it, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__injected_flock_eio_is_elock_naming_the_path, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__injected_eintr_is_retried_transparently, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__failed_unlock_is_eunlock_and_leaves_nothing_held, setup, teardown),
      cmocka_unit_test_setup_teardown(flock__injected_open_and_malloc_failures_leak_nothing, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
