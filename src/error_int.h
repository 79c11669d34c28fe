/*
 * error_int.h — setting the per-thread failure detail (error.h).
 *
 * Every failing path calls one of these exactly once, at the point that
 * knows the most (operation, path, errno), and returns what it returns:
 *
 *   if (fsync(fd) < 0)
 *       return dfs__errno(DFS_EWRITE, errno, "write %s: fsync %s", id, tmp);
 *
 * The message is formatted into thread-local storage; errno is preserved.
 */
#ifndef DFS_ERROR_INT_H
#define DFS_ERROR_INT_H

#include "deltafs/error.h"

/* Set "<formatted>" as this thread's detail; return code. */
int dfs__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set "<formatted>: <strerror(err)>"; return code. */
int dfs__errno(int code, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix the current detail with "<formatted>: " (adds context on the way up). */
void dfs__err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Programmer errors (NULL handle, bad enum): DFS_EINVAL with a detail.
 * Builds with -DDFS_ASSERT_ARGS=1 (debugging a caller) assert instead. */
#ifdef DFS_ASSERT_ARGS
#include <assert.h>
#define DFS_CHECK_ARG(cond, what) assert((cond) && what)
#else
#define DFS_CHECK_ARG(cond, what)                                              \
  do {                                                                         \
    if (!(cond))                                                               \
      return dfs__err(DFS_EINVAL, "%s: invalid argument: %s", __func__, what); \
  } while (0)
#endif

#endif /* DFS_ERROR_INT_H */
