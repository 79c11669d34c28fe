/*
 * deltafs/fsck.h — check (and repair) a whole store.
 *
 * What it is
 * ----------
 * dfs_fsck() scans a store and reports, one callback per finding, what a
 * crashed writer, an interrupted delete, a foreign program or a damaged
 * disk left behind; with DFS_FSCK_REPAIR it also fixes what is safe to fix.
 * It is the library behind `deltafs fsck [--repair]`.
 *
 * Unlike dfs_storage_open(), which silently recovers `.deltafs-tmp/` every
 * time, dfs_fsck() opens the store itself WITHOUT recovering first (so it
 * can report what recovery would have done) and without creating anything
 * (a path that is not a store is DFS_ENOTFOUND).
 *
 * What it finds (dfs_fsck_kind), and what DFS_FSCK_REPAIR does
 * ------------------------------------------------------------
 *   TEMP_LIVE      a temp whose writer is alive (its flock is held): a write
 *                  in progress.  Information only; never touched.
 *   TEMP_DEAD      a temp in .deltafs-tmp/ whose writer is gone and that is
 *                  not needed: removed.
 *   PENDING        a dead writer's metadata temp that matches the blob now
 *                  in files/ while the metadata there does not: the write
 *                  got past its blob swap.  Rolled forward (renamed into
 *                  place, files/ fsync'd), as recovery does.
 *   META_NO_BLOB   <id>.meta.json without <id>.json.enc: a delete that was
 *                  interrupted between its two unlinks (the entity already
 *                  reads as "not found").  The metadata is removed.
 *   STALE_LOCK     <id>.json.enc.lock of an entity that does not exist and
 *                  that nobody holds: removed (not reported at all with
 *                  DFS_FSCK_GO_COMPAT, where lock files are kept forever).
 *   TORN           blob and metadata disagree (size or XXH3) and no pending
 *                  metadata explains it: NEVER repaired — both files are
 *                  user data; fsck only reports them.
 *   BLOB_NO_META   <id>.json.enc without metadata and nothing pending (for
 *                  example a Go writer that crashed between its renames):
 *                  reported, never deleted.
 *   CORRUPT_META   <id>.meta.json that does not parse: reported only.
 *   FOREIGN        a name in files/, templates/ or .deltafs-tmp/ that
 *                  deltafs did not write (not a valid id, a dot file, a
 *                  directory or symlink at an entity name): reported only.
 *   UNREADABLE     a file fsck could not read (permissions, I/O error):
 *                  reported only.
 *
 * Every repair of an entity is made under the entity's exclusive lock,
 * taken without waiting: if another holder has it, the finding is reported
 * with status DFS_FSCK_SKIPPED ("skipped: in use") and nothing is changed.
 * A suspect entity is always re-checked under its lock before it is
 * reported, so a writer that was mid-commit when the scan passed is not
 * mistaken for damage.
 *
 * Scale: files/ is streamed with getdents64 and each name is checked with
 * *at() calls on its siblings; memory stays constant in the number of
 * entities (only the small .deltafs-tmp/ is remembered).  Every blob is
 * read and hashed unless DFS_FSCK_QUICK (then only sizes are compared).
 *
 * Concurrency: safe to run while other processes use the store.  What it
 * reports is a snapshot: on a busy store a write that commits while the
 * scan runs may show as a TEMP_DEAD blob temp (the old blob, between the
 * commit and its unlink) — harmless, removed by a later run.
 *
 * Thread-safety: dfs_fsck() uses no global state; the callback runs on the
 * calling thread.
 */
#ifndef DELTAFS_FSCK_H
#define DELTAFS_FSCK_H

#include <stdint.h>

#include "deltafs/storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dfs_fsck_kind {
  DFS_FSCK_TEMP_LIVE = 0, /* write in progress (information)        */
  DFS_FSCK_TEMP_DEAD,     /* dead writer's temp: removed             */
  DFS_FSCK_PENDING,       /* committed-not-renamed: rolled forward   */
  DFS_FSCK_META_NO_BLOB,  /* interrupted delete: metadata removed    */
  DFS_FSCK_STALE_LOCK,    /* lock file of no entity: removed         */
  DFS_FSCK_TORN,          /* blob/metadata mismatch: reported only   */
  DFS_FSCK_BLOB_NO_META,  /* orphan blob: reported only              */
  DFS_FSCK_CORRUPT_META,  /* unparseable metadata: reported only     */
  DFS_FSCK_FOREIGN,       /* not a deltafs name: reported only       */
  DFS_FSCK_UNREADABLE,    /* could not be read: reported only        */
  DFS_FSCK_KIND_COUNT
} dfs_fsck_kind;

/* What happened to a finding. */
typedef enum dfs_fsck_status {
  DFS_FSCK_INFO = 0,       /* not a problem (TEMP_LIVE)                       */
  DFS_FSCK_FOUND,          /* repairable, but DFS_FSCK_REPAIR was not given   */
  DFS_FSCK_REPAIRED,       /* fixed                                           */
  DFS_FSCK_UNREPAIRABLE,   /* fsck never fixes this kind (user data at stake) */
  DFS_FSCK_SKIPPED,        /* the entity was in use (its lock busy)           */
  DFS_FSCK_REPAIR_FAILED   /* the repair was tried and failed (see detail)    */
} dfs_fsck_status;

/* One finding.  Every pointer is valid only during the callback. */
typedef struct dfs_fsck_finding {
  dfs_fsck_kind kind;
  dfs_fsck_status status;
  const char *dir;    /* "files", "templates" or ".deltafs-tmp"          */
  const char *name;   /* the file's name inside dir                      */
  const char *id;     /* the entity or schema id, or NULL if none        */
  const char *detail; /* one human-readable sentence, never NULL         */
} dfs_fsck_finding;

/* Called for each finding.  A non-zero return stops the scan, and
 * dfs_fsck() returns that value. */
typedef int (*dfs_fsck_fn)(const dfs_fsck_finding *f, void *payload);

typedef struct dfs_fsck_summary {
  uint64_t entities;   /* metadata files checked in files/                */
  uint64_t templates;  /* templates seen                                  */
  uint64_t temps;      /* names seen in .deltafs-tmp/                     */
  uint64_t go_written; /* entities without integrity keys (Go-written):
                          their blob cannot be checked                    */
  uint64_t live;       /* TEMP_LIVE findings                               */
  uint64_t problems;   /* findings that are not DFS_FSCK_INFO              */
  uint64_t repaired;   /* of those, DFS_FSCK_REPAIRED                      */
  uint64_t remaining;  /* problems - repaired: what is still wrong         */
  uint64_t skipped;    /* of the remaining, DFS_FSCK_SKIPPED (in use)      */
  uint64_t by_kind[DFS_FSCK_KIND_COUNT]; /* findings of each kind          */
} dfs_fsck_summary;

#define DFS_FSCK_REPAIR (1u << 0)     /* fix what is safe (see above)          */
#define DFS_FSCK_QUICK (1u << 1)      /* compare blob sizes only, not hashes   */
#define DFS_FSCK_GO_COMPAT (1u << 2)  /* store shared with Go workers: lock
                                         files are never reported or removed  */
#define DFS_FSCK_NO_SYNC (1u << 3)    /* repairs skip fsync (tests only)       */

#define DFS_FSCK_OPTIONS_VERSION 1

typedef struct dfs_fsck_options {
  unsigned version;  /* DFS_FSCK_OPTIONS_VERSION                          */
  unsigned flags;    /* DFS_FSCK_*                                         */
  dfs_fsck_fn fn;    /* each finding; NULL: only the summary is filled     */
  void *payload;     /* for fn and progress                                */
  /* Called now and then (every 1024 names of files/) with the number of
   * entities checked so far; NULL for none.  For progress displays. */
  void (*progress)(uint64_t entities_done, void *payload);
} dfs_fsck_options;

#define DFS_FSCK_OPTIONS_INIT {DFS_FSCK_OPTIONS_VERSION, 0u, NULL, NULL, NULL}

/* Check (and with DFS_FSCK_REPAIR, repair) the store at base_path.
 * NULL opts means DFS_FSCK_OPTIONS_INIT.  summary (may be NULL) is filled
 * even when the scan stops early.
 * Returns 0 when the scan completed — whatever it found: read
 * summary->remaining — or DFS_ENOTFOUND (no store at base_path: no files/
 * directory), DFS_EREAD (a directory of the store could not be read),
 * DFS_EINVAL, DFS_ENOMEM, or the callback's non-zero return. */
int dfs_fsck(const char *base_path, const dfs_fsck_options *opts, dfs_fsck_summary *summary);

/* Short stable names ("torn", "temp-dead", "repaired"...) for reports and
 * JSON.  Unknown values give "unknown".  Never NULL. */
const char *dfs_fsck_kind_name(dfs_fsck_kind kind);
const char *dfs_fsck_status_name(dfs_fsck_status status);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_FSCK_H */
