/*
 * deltafs/error.h — result codes and the per-thread error detail.
 *
 * Error model
 * -----------
 * Every deltafs function that can fail returns an int: 0 (DFS_OK) on
 * success, or one of the small negative DFS_E* codes below.  The codes are
 * few on purpose: each is an outcome a caller acts on differently (retry,
 * report "not found", give up the lock, refuse a conflicting write...).
 *
 * The human detail of a failure — which operation, which path, the errno
 * text — is kept per thread and read with dfs_last_error().  It is only
 * meaningful right after a call returned a negative code; a successful call
 * does not clear it.  Callers never need to read errno.
 *
 * Thread-safety: dfs_strerror() returns static strings; dfs_last_error()
 * returns a pointer into thread-local storage that stays valid until the
 * same thread's next failing deltafs call.
 */
#ifndef DELTAFS_ERROR_H
#define DELTAFS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* The spec's errors first (pkg/fs Err*), then ours. */
enum {
  DFS_OK = 0,
  DFS_ENOTFOUND = -1,       /* ErrFileNotFound: no such entity/template      */
  DFS_EINVALID_ID = -2,     /* ErrInvalidID: id fails validation             */
  DFS_EWRITE = -3,          /* ErrWriteFailed                                */
  DFS_EREAD = -4,           /* ErrReadFailed                                 */
  DFS_ELOCK = -5,           /* ErrLockFailed: the system refused the lock    */
  DFS_EUNLOCK = -6,         /* ErrUnlockFailed                               */
  DFS_EALREADY_LOCKED = -7, /* ErrAlreadyLocked: this handle/thread holds it */
  DFS_EBUSY = -8,           /* a try-lock met another holder                 */
  DFS_ETIMEDOUT = -9,       /* a timed lock wait ran out                     */
  DFS_ECORRUPT = -10,       /* bad metadata JSON, torn blob/metadata pair    */
  DFS_ECONFLICT = -11,      /* a version-conditional write lost              */
  DFS_EINVAL = -12,         /* bad argument (NULL, unknown enum)             */
  DFS_ENOMEM = -13
};

/* A short, static, English description of a DFS_* code ("not found").
 * Unknown codes give "unknown error". Never NULL. */
const char *dfs_strerror(int code);

/* The calling thread's last failure, e.g.
 *   "write Chat_1: fsync files/.Chat_1.json.enc.3f9a.tmp: No space left on device"
 * Never NULL; "" when this thread has had no failure yet. */
const char *dfs_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_ERROR_H */
