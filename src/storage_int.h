/*
 * storage_int.h — the storage handle, shared by storage.c, recover.c,
 * lockmgr.c and fsck.c.  Never installed.
 */
#ifndef DFS_STORAGE_INT_H
#define DFS_STORAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include "deltafs/storage.h"

#define DFS_FILES_DIR "files"
#define DFS_TEMPLATES_DIR "templates"
#define DFS_TMP_DIR ".deltafs-tmp"
#define DFS_BLOB_SUFFIX ".json.enc"
#define DFS_META_SUFFIX ".meta.json"
#define DFS_LOCK_SUFFIX ".json.enc.lock"
#define DFS_TEMPLATE_SUFFIX ".json"
/* A name in files/: id + longest suffix + NUL. */
#define DFS_NAME_MAX (DFS_ID_MAX + sizeof DFS_LOCK_SUFFIX)

struct dfs_vcache; /* version cache, storage.c */
struct dfs_lockmgr;

struct dfs_storage {
  char *base;           /* absolute base path                              */
  char *files_path;     /* <base>/files                                    */
  char *templates_path; /* <base>/templates                                */
  int base_fd;          /* O_DIRECTORY descriptors: every access is *at()   */
  int files_fd;
  int templates_fd;
  int tmp_fd;           /* <base>/.deltafs-tmp: in-flight temp files       */
  unsigned flags;       /* DFS_OPT_*                                       */
  unsigned file_mode;   /* mode for new files                              */
  struct dfs_vcache *vcache; /* dfs_version's stat cache (own mutex)      */
  atomic_int no_exchange; /* renameat2(RENAME_EXCHANGE) unsupported here */

  /* Lock managers of this store, so dfs_delete can tell whether the calling
   * thread already holds the entity exclusively.  mgr_mu guards mgr_head
   * and the mgr_next links; it is never held while blocking on a lock. */
  pthread_mutex_t mgr_mu;
  struct dfs_lockmgr *mgr_head;
};

/* The body of dfs_storage_open.  how: DFS__OPEN_EXISTING creates nothing
 * (a missing base or files/ is DFS_ENOTFOUND; templates/ and .deltafs-tmp/
 * may be missing: fd -1), DFS__OPEN_NO_RECOVER skips recovery (fsck, which
 * reports what recovery would do).  op names the caller in messages. */
#define DFS__OPEN_EXISTING 1u
#define DFS__OPEN_NO_RECOVER 2u
int dfs__storage_open(dfs_storage **out, const char *base_path, unsigned flags,
                      unsigned file_mode, unsigned how, const char *op);

/* Build "<id><suffix>" into buf (DFS_NAME_MAX bytes); id already valid. */
void dfs__entity_name(char *buf, const char *id, const char *suffix);

/* lockmgr.c: if the calling thread holds `id` exclusively through one of
 * st's managers, mark the hold so that its release unlinks the lock file
 * (if the path still names the locked inode and the entity is still
 * deleted) just before unlocking, and return 1; the next acquire reopens.  0 if the thread holds no such lock (nothing
 * done; always 0 under DFS_OPT_GO_COMPAT), DFS_EWRITE if the unlink failed.  Takes st->mgr_mu, then each
 * manager's own mutex (in that order); never waits for a lock. */
int dfs__lockmgr_unlink_if_held_exclusive(dfs_storage *st, const char *id);

/* lockfile.c: open files/<id>.json.enc.lock (creating it when `create`),
 * flock it with `op` (LOCK_SH/LOCK_EX, optionally | LOCK_NB) and check that
 * the locked file is still the one at the path, retrying if it was
 * replaced or removed meanwhile.  On success *out_fd holds the lock.
 * Returns 0, DFS_EBUSY (LOCK_NB and held elsewhere), DFS_ENOTFOUND (!create
 * and no lock file), DFS_ELOCK. */
int dfs__lockfile_acquire(dfs_storage *st, const char *id, int op, int create, int *out_fd);
/* Unlink the lock file of `id` held (exclusively) through fd, if it is
 * still the file at the path.  Returns 0 or DFS_EWRITE. */
int dfs__lockfile_unlink_held(dfs_storage *st, const char *id, int fd);

/* recover.c: scan .deltafs-tmp/ and roll forward / remove what dead
 * writers left.  Returns 0 or a negative code (the scan is best-effort:
 * live temps are skipped). */
int dfs__recover_all(dfs_storage *st);
/* recover.c: size and XXH3 of files/<id>.json.enc. 0, or -1/errno. */
int dfs__blob_identity(dfs_storage *st, const char *id, uint64_t *size, uint64_t *hash);
/* recover.c: 1 if files/<id>.meta.json parses, carries integrity keys and
 * they match (size, hash): the final pair is consistent. */
int dfs__meta_matches_blob(dfs_storage *st, const char *id, uint64_t size, uint64_t hash);
/* recover.c: find the committed-but-not-renamed metadata of `id` whose
 * blob integrity matches (size, hash); on success *out_json is malloc'd. */
int dfs__find_pending_meta(dfs_storage *st, const char *id, uint64_t size, uint64_t hash,
                           char **out_json, size_t *out_len);

#endif
