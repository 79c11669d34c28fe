/*
 * error.c — dfs_strerror and the per-thread failure detail.
 */
#include "error_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DETAIL_MAX 1024

static _Thread_local char detail[DETAIL_MAX];

const char *dfs_strerror(int code)
{
  switch (code) {
  case DFS_OK: return "success";
  case DFS_ENOTFOUND: return "not found";
  case DFS_EINVALID_ID: return "invalid id";
  case DFS_EWRITE: return "write failed";
  case DFS_EREAD: return "read failed";
  case DFS_ELOCK: return "lock failed";
  case DFS_EUNLOCK: return "unlock failed";
  case DFS_EALREADY_LOCKED: return "already locked by this holder";
  case DFS_EBUSY: return "locked by another holder";
  case DFS_ETIMEDOUT: return "lock wait timed out";
  case DFS_ECORRUPT: return "corrupt data";
  case DFS_ECONFLICT: return "version conflict";
  case DFS_EINVAL: return "invalid argument";
  case DFS_ENOMEM: return "out of memory";
  default: return "unknown error";
  }
}

const char *dfs_last_error(void)
{
  return detail;
}

/* The format attribute (0: takes a va_list) lets clang's -Wformat=2 check
 * the callers instead of rejecting the non-literal format here. */
__attribute__((format(printf, 1, 0))) static void vset(const char *fmt, va_list ap)
{
  vsnprintf(detail, sizeof detail, fmt, ap);
}

int dfs__err(int code, const char *fmt, ...)
{
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vset(fmt, ap);
  va_end(ap);
  errno = saved;
  return code;
}

int dfs__errno(int code, int err, const char *fmt, ...)
{
  int saved = errno;
  char ebuf[128];
  size_t n;
  va_list ap;
  va_start(ap, fmt);
  vset(fmt, ap);
  va_end(ap);
  n = strlen(detail);
  if (n < sizeof detail - 3)
    snprintf(detail + n, sizeof detail - n, ": %s", strerror_r(err, ebuf, sizeof ebuf));
  errno = saved;
  return code;
}

void dfs__err_prefix(const char *fmt, ...)
{
  int saved = errno;
  char old[DETAIL_MAX];
  size_t n;
  va_list ap;
  memcpy(old, detail, sizeof old);
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  n = strlen(detail);
  if (n + 2 < sizeof detail) {
    memcpy(detail + n, ": ", 2);
    n += 2;
    size_t k = strnlen(old, sizeof detail - n - 1);
    memcpy(detail + n, old, k);
    detail[n + k] = '\0';
  }
  errno = saved;
}
