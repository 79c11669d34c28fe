/*
 * deltafs/lock.h — advisory locks: one lock file (dfs_flock) and the
 * per-entity lock manager of a store (dfs_lockmgr).
 *
 * What is locked
 * --------------
 * Entity `id` is locked with flock(2) on `<base>/files/<id>.json.enc.lock`
 * (created empty if missing) — the same file and primitive as
 * DeltaDatabase's Go workers and util-linux flock(1), so all of them exclude
 * each other.  Locks are advisory: they protect only against processes that
 * take them too.  Shared locks exclude exclusive ones; an exclusive lock
 * excludes everyone.
 *
 * Calling sequence (a worker's read-modify-write)
 * -----------------------------------------------
 *   dfs_lockmgr *m;
 *   dfs_lockmgr_new(&m, st);
 *   if (dfs_lockmgr_acquire(m, "Chat_1", DFS_LOCK_EXCLUSIVE) == 0) {
 *       dfs_read(st, "Chat_1", &f); ... modify ...
 *       dfs_write(st, "Chat_1", blob, len, &meta);
 *       dfs_lockmgr_release(m, "Chat_1");
 *   }
 *   dfs_lockmgr_free(m);
 *
 * Ownership and threads
 * ---------------------
 * dfs_flock: one handle is one holder.  It is not thread-safe; use one per
 * thread.  Locking a handle that already holds a lock is
 * DFS_EALREADY_LOCKED (use unlock first; there is no up/down-grade).
 *
 * dfs_lockmgr: thread-safe.  A hold belongs to the thread that acquired it.
 * Threads of one process exclude each other exactly as processes do (shared
 * with shared, exclusive with everyone); a thread asking again for an
 * entity it holds gets DFS_EALREADY_LOCKED; dfs_lockmgr_release() releases
 * the calling thread's hold.  A blocked acquire never delays an acquire,
 * try or release of another entity, nor a try of the same one.  A thread
 * that exits (pthread_exit or return from its start routine) while holding
 * has its holds released as it exits, in every manager not yet freed.
 * Two managers in one process are independent holders, like two processes.
 *
 * Lock files of deleted entities
 * ------------------------------
 * dfs_delete() removes the lock file only while it is held exclusively
 * (unless the store is in DFS_OPT_GO_COMPAT mode): when the calling thread
 * holds it through a manager, the file is unlinked by that hold's release,
 * just before the flock is dropped.  Every acquire therefore checks,
 * after flock() succeeds, that the descriptor it locked is still the file at
 * the path (same device and inode, via fstat + fstatat) and starts over if
 * not, so a removed lock file never lets two exclusive holders in.  Go
 * workers do not re-check: a store shared with them must be opened with
 * DFS_OPT_GO_COMPAT, which never removes lock files.
 *
 * Caveats
 * -------
 * - flock belongs to the open file description: a descriptor inherited
 *   across fork() or dup() shares the lock, and closing the last copy
 *   releases it.  deltafs opens lock files O_CLOEXEC, so exec'd children do
 *   not inherit them; a fork()ed child that does not exec does, and must
 *   not release (or exit holding) locks it did not take — call nothing on
 *   a manager inherited across fork.
 * - A holder that dies (even by SIGKILL) releases its locks: the kernel
 *   closes its descriptors.  On network filesystems the server releases
 *   them when the client's session ends (GlusterFS: tens of milliseconds;
 *   NFS: lease expiry, up to the lease time).
 * - Network filesystems: flock works across hosts on GlusterFS and on NFS
 *   v4 (as a whole-file POSIX lock, so there flock and fcntl locks conflict
 *   with each other), not on NFS v2/v3 mounted with `nolock` or `local_lock`.
 *   See README "Running across hosts".
 * - Timed waits poll with a short back-off (flock has no timeout): a
 *   timed acquire returns within a few milliseconds of its deadline, and
 *   is not FIFO-fair against blocking waiters.
 *
 * Errors: 0 or a negative DFS_E* code; detail in dfs_last_error().
 */
#ifndef DELTAFS_LOCK_H
#define DELTAFS_LOCK_H

#include "deltafs/storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dfs_lock_type { DFS_LOCK_SHARED = 0, DFS_LOCK_EXCLUSIVE = 1 } dfs_lock_type;

/* ---- dfs_flock: one lock file, one holder ---------------------------- */

typedef struct dfs_flock dfs_flock;

/* Open (creating, mode 0644 before umask) the lock file at `path`; no lock
 * is taken.  Returns 0, DFS_EINVAL, DFS_ELOCK (cannot open/create), DFS_ENOMEM. */
int dfs_flock_open(dfs_flock **out, const char *path);

/* Block until the lock is held.  Returns 0, DFS_EALREADY_LOCKED (this handle
 * holds a lock), DFS_ELOCK (flock failed), DFS_EINVAL (bad type). */
int dfs_flock_lock(dfs_flock *lk, dfs_lock_type type);

/* Take the lock if free now.  Returns as dfs_flock_lock, plus DFS_EBUSY. */
int dfs_flock_trylock(dfs_flock *lk, dfs_lock_type type);

/* Wait at most timeout_ms (0 = try once, < 0 = forever).  Returns as
 * dfs_flock_lock, plus DFS_ETIMEDOUT. */
int dfs_flock_lock_timeout(dfs_flock *lk, dfs_lock_type type, int timeout_ms);

/* Release; a handle that holds nothing is DFS_OK.  DFS_EUNLOCK on failure. */
int dfs_flock_unlock(dfs_flock *lk);

/* 1 if this handle holds a lock, else 0. */
int dfs_flock_is_locked(const dfs_flock *lk);

/* Unlock, close and free; NULL is fine.  Returns 0 or DFS_EUNLOCK (the
 * handle is freed either way). */
int dfs_flock_close(dfs_flock *lk);

/* ---- dfs_lockmgr: per-entity locks of a store, thread-safe ----------- */

typedef struct dfs_lockmgr dfs_lockmgr;

/* A manager for the entities of st (st must outlive it).  Returns 0,
 * DFS_EINVAL, DFS_ENOMEM, or DFS_ELOCK if the process-wide thread-exit key
 * cannot be created (the process has used up its pthread keys). */
int dfs_lockmgr_new(dfs_lockmgr **out, dfs_storage *st);

/* Release every hold of every thread and free; NULL is fine. */
void dfs_lockmgr_free(dfs_lockmgr *m);

/* Block until the calling thread holds `id`.  Returns 0, DFS_EINVALID_ID,
 * DFS_EALREADY_LOCKED (this thread holds it), DFS_ELOCK, DFS_EINVAL,
 * DFS_ENOMEM. */
int dfs_lockmgr_acquire(dfs_lockmgr *m, const char *id, dfs_lock_type type);

/* As acquire, but DFS_EBUSY at once if another holder (thread or process)
 * is in the way. */
int dfs_lockmgr_try_acquire(dfs_lockmgr *m, const char *id, dfs_lock_type type);

/* As acquire, but DFS_ETIMEDOUT after timeout_ms (0 = try, < 0 = forever). */
int dfs_lockmgr_acquire_timeout(dfs_lockmgr *m, const char *id, dfs_lock_type type,
                                int timeout_ms);

/* Release the calling thread's hold on `id`; not held is DFS_OK.
 * Returns 0, DFS_EINVALID_ID, DFS_EUNLOCK, DFS_EINVAL. */
int dfs_lockmgr_release(dfs_lockmgr *m, const char *id);

/* Release every hold of every thread on this manager.  Returns 0 or the
 * first DFS_EUNLOCK (all are attempted). */
int dfs_lockmgr_release_all(dfs_lockmgr *m);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_LOCK_H */
