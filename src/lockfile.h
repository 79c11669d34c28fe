/*
 * lockfile.h — the building blocks of an entity lock file
 * (files/<id>.json.enc.lock), shared by lockfile.c's one-shot acquire
 * (used by dfs_delete) and lockmgr.c's cached descriptors.  Never installed.
 *
 * Why a re-check: dfs_delete unlinks a lock file while holding it
 * exclusively.  A process that opened the file before the unlink and was
 * waiting in flock() then gets a lock on a file nobody else will ever
 * open again, while a newcomer creates and locks a fresh file at the path:
 * two "exclusive" holders.  So a lock counts only once, after flock()
 * returned, the path still names the very inode that was locked.
 */
#ifndef DFS_LOCKFILE_H
#define DFS_LOCKFILE_H

#include <stdint.h>
#include <sys/types.h>

#include "storage_int.h"

/* Open files/<name> (name = "<id>.json.enc.lock") for locking, creating it
 * (0644 before umask) when `create`, and report its device and inode.
 * `id` is for the error detail.  Returns 0, DFS_ENOTFOUND (!create and
 * missing), DFS_ELOCK (open or fstat failed; detail names the path). */
int dfs__lockfile_open(dfs_storage *st, const char *id, const char *name, int create,
                       int *out_fd, dev_t *out_dev, ino_t *out_ino);

/* 1 if files/<name> is still the inode (dev, ino) — without following a
 * symlink — 0 if it is missing or another file, DFS_ELOCK if it cannot be
 * stat'ed (detail set).  One fstatat: this is the lock fast path's check. */
int dfs__lockfile_is_current(dfs_storage *st, const char *id, const char *name, dev_t dev,
                             ino_t ino);

/* Unlink files/<name> if it is still (dev, ino); a missing or replaced
 * file is left alone.  The caller must hold the file exclusively: that is
 * what makes the check-then-unlink safe (nobody else may unlink it, and a
 * new file is only ever created at a path that is empty).
 * Returns 0 or DFS_EWRITE. */
int dfs__lockfile_unlink_if_current(dfs_storage *st, const char *id, const char *name,
                                    dev_t dev, ino_t ino);

/* Timed waits (flock has no timeout): CLOCK_MONOTONIC nanoseconds, and
 * one back-off step of a polling wait: sleep *delay_ns (first 200us,
 * doubling to at most 2ms) but never past deadline_ns. */
int64_t dfs__lock_now_ns(void);
int64_t dfs__lock_deadline_ns(int timeout_ms);
void dfs__lock_backoff(int64_t *delay_ns, int64_t deadline_ns);

#endif
