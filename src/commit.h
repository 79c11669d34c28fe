/*
 * commit.h — how an entity write's syncs are made cheap without making
 * them weaker: the temp-file sync chosen per filesystem and the group
 * commit of directory fsyncs.  See commit.c.
 */
#ifndef DFS_COMMIT_H
#define DFS_COMMIT_H

#include "atomic.h"
#include "storage_int.h"

/* How dfs__commit_sync_temps makes temps durable (commit.c explains). */
enum dfs_sync_mode {
  DFS_SYNC_FSYNC = 0,     /* fsync each temp in turn: the original, any fs     */
  DFS_SYNC_FDATASYNC = 1, /* start write-back of all, then fdatasync each     */
  DFS_SYNC_SFR = 2        /* sync_file_range; the directory fsync commits      */
};

/* The mode used for temps in the directory `fd` lives in (cached per
 * filesystem).  DFS_SYNC_SFR only on journaled ext4 and XFS. */
enum dfs_sync_mode dfs__commit_mode(int fd);

/* "ext4", "xfs", ... and whether it has a journal (ext*: a jbd2 journal
 * registered in /proc/fs/jbd2; xfs: always; others: -1 unknown), for the
 * benchmark's header and for dfs__commit_mode. */
const char *dfs__commit_fs_name(int fd, int *journal);

/* Step 3 of the write protocol, for temps that are renamed into a
 * directory on the same filesystem AND FOLLOWED BY dfs__dir_sync of that
 * directory before the write is reported durable.  In DFS_SYNC_SFR mode the
 * temps' data is written and waited for but their metadata is committed
 * only by that directory fsync (a journal commit), so a caller that does
 * not fsync the directory afterwards must use dfs__tmp_sync instead.
 * Returns 0 or DFS_EWRITE. */
int dfs__commit_sync_temps(dfs_storage *st, struct dfs_tmp **ts, int n, const char *op,
                           const char *id);

/* fsync(dirfd), shared between the threads of this process that need the
 * same directory fsync'd at the same time (group commit): returns once an
 * fsync of that directory that STARTED after this call began has finished.
 * 0, or -1 with errno from the fsync that covered this call. */
int dfs__commit_dir_fsync(int dirfd);

/* Start the write-back of a temp now (sync_file_range WRITE), so the device
 * works on it while the writer does something else (hashing the blob).  A
 * pure hint: nothing depends on it, its result is ignored, and so it is not
 * a fault-injection point.  Does nothing with DFS_OPT_NO_SYNC or in the
 * fsync-only mode. */
void dfs__commit_writeback_hint(dfs_storage *st, int fd);

#endif
