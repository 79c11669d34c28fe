/*
 * support.h — what every test program shares, cmocka or not: the cmocka
 * suites (through testutil.h) and the standalone harnesses (crash, distfs,
 * stress, enospc) link dfs_testsupport.
 */
#ifndef DFS_TEST_SUPPORT_H
#define DFS_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "deltafs/meta.h"

/* snprintf whose result is used (so -Wformat-truncation, which some
 * optimization levels turn on, has nothing to guess about): a path that
 * does not fit is a broken test environment, not a test result. */
#define CHECKED_SNPRINTF(buf, size, ...)                                       \
  do {                                                                         \
    int n_ = snprintf((buf), (size), __VA_ARGS__);                             \
    if (n_ < 0 || (size_t)n_ >= (size_t)(size))                                \
      abort();                                                                 \
  } while (0)

/* A dfs_meta filled with recognisable values for version v (string fields
 * point at literals).  Programs that check a field of what they wrote set
 * it themselves on top. */
dfs_meta tu_meta(int64_t version);

/* Remove a tree (best effort; NULL is fine). */
void tu_rmrf(const char *path);

#endif
