/*
 * atomic.h — the temp-file building blocks of every durable replace
 * (entity pairs in storage.c, templates, fsck repairs).  See atomic.c.
 */
#ifndef DFS_ATOMIC_H
#define DFS_ATOMIC_H

#include <stddef.h>
#include <stdint.h>

#include "storage_int.h"

/* Temp names live in <base>/.deltafs-tmp/:
 *   e.<id>.meta.json.<16 hex>   pending metadata of an entity write
 *   e.<id>.json.enc.<16 hex>    its blob (same 16 hex suffix)
 *   t.<schema>.json.<16 hex>    a template
 * The suffix is random; O_EXCL makes it unique. */
#define DFS_TMP_NAME_MAX (2 + DFS_ID_MAX + 16 + 1 + 16 + 1)
#define DFS_TMP_SFX_LEN 16

/* What a name in .deltafs-tmp is (recover.c and fsck.c read them). */
enum dfs_tmp_kind { DFS_TK_OTHER, DFS_TK_META, DFS_TK_BLOB, DFS_TK_TEMPLATE };

struct dfs_tmp_name {
  enum dfs_tmp_kind kind;        /* DFS_TK_OTHER: not a name we create      */
  char id[DFS_ID_MAX + 1];       /* the entity or schema id                 */
  char sfx[DFS_TMP_SFX_LEN + 1]; /* the 16 hex digits                       */
};

/* Split "<prefix><id><suffix>.<16 hex>" into kind, id and suffix. */
void dfs__tmp_parse_name(const char *name, struct dfs_tmp_name *t);

struct dfs_tmp {
  int fd;                       /* open for writing, -1 when closed       */
  int created;                  /* the name exists in .deltafs-tmp        */
  char name[DFS_TMP_NAME_MAX];  /* name inside .deltafs-tmp               */
};

/* Create a temp "<prefix><id><suffix>.<sfx>" (sfx: 16 hex chars, chosen
 * here when *sfx is "", reused otherwise), O_EXCL.  With `mark_live`, take
 * an exclusive flock on it — the sign recovery reads as "a live writer owns
 * this" — and verify it was not removed by a recoverer before the lock was
 * taken (retrying with a new suffix).  Returns 0, DFS_EWRITE, DFS_ENOMEM.
 * `op` and `id` are for the error detail. */
int dfs__tmp_create(dfs_storage *st, const char *prefix, const char *id, const char *suffix,
                    char sfx[DFS_TMP_SFX_LEN + 1], int mark_live, struct dfs_tmp *t,
                    const char *op);

/* Write all of data.  Returns 0 or DFS_EWRITE. */
int dfs__tmp_write(dfs_storage *st, struct dfs_tmp *t, const void *data, size_t len,
                   const char *op, const char *id);

/* Make the contents of n temps durable (fsync; skipped with NO_SYNC).
 * Returns 0 or DFS_EWRITE. */
int dfs__tmp_sync(dfs_storage *st, struct dfs_tmp **ts, int n, const char *op, const char *id);

/* Remove a temp that was not committed (unlink + close), preserving errno.
 * Safe on a zeroed / closed / never-created dfs_tmp. */
void dfs__tmp_discard(dfs_storage *st, struct dfs_tmp *t);
/* Close only (after a successful rename). */
void dfs__tmp_close(struct dfs_tmp *t);

/* fsync a directory descriptor (skipped with NO_SYNC). 0 or DFS_EWRITE. */
int dfs__dir_sync(dfs_storage *st, int dirfd, const char *what, const char *op, const char *id);

/* One-file durable replace: temp → write → fsync → rename over
 * dirfd/name → fsync dir.  For templates.  Returns 0, DFS_EWRITE. */
int dfs__replace_file(dfs_storage *st, int dirfd, const char *dirname, const char *name,
                      const char *id, const void *data, size_t len, const char *op);

#endif
