/*
 * testutil.h — helpers shared by the cmocka test programs.
 */
#ifndef DFS_TESTUTIL_H
#define DFS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deltafs/deltafs.h"
#include "support.h" /* tu_meta, CHECKED_SNPRINTF */

/* A fresh empty directory under $TMPDIR (or /var/tmp); the caller owns it.
 * Returns a malloc'd path.  tu_rmrf() (support.h) removes a tree. */
char *tu_mkdtemp(const char *tag);

/* Number of entries in dir (excluding . and ..) whose name starts with
 * prefix ("" for all). -1 if dir cannot be opened. */
int tu_count_entries(const char *dir, const char *prefix);

/* Number of temp files left anywhere in the store (in .deltafs-tmp/ and
 * dot-files in files/ and templates/). */
int tu_count_temps(const char *base);

/* Write a file (path), whole; assert on failure. */
void tu_write_file(const char *path, const void *data, size_t len);
/* Read a whole file; returns malloc'd buffer, *len set; NULL if missing. */
char *tu_read_file(const char *path, size_t *len);

/* Assert a DFS call returned rc, printing dfs_last_error() if not. */
#define assert_dfs(expr, rc)                                                   \
  do {                                                                         \
    int tu_rc_ = (expr);                                                       \
    if (tu_rc_ != (rc))                                                        \
      print_error("%s = %d (%s), expected %d; last error: %s\n", #expr, tu_rc_, \
                  dfs_strerror(tu_rc_), (int)(rc), dfs_last_error());          \
    assert_int_equal(tu_rc_, (rc));                                            \
  } while (0)
#define assert_ok(expr) assert_dfs(expr, 0)

/* Upper bound, in ms, for an answer that must come "at once" or "on time"
 * (a try, a timeout, noticing a release).  Generous on purpose: CI machines
 * are shared and valgrind slows a run 20-50x.  A broken implementation
 * still fails it: it waits for a holder that never lets go, or until a
 * deadline set well beyond this bound. */
#define TU_PROMPT_MS 3000.0

#endif
