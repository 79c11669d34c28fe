/* vcache.h — the stat cache of parsed metadata (see vcache.c). */
#ifndef DFS_VCACHE_H
#define DFS_VCACHE_H

#include <stdint.h>
#include <sys/stat.h>

#include "deltafs/meta.h"

struct dfs_vcache;

/* What a metadata file said, beyond dfs_meta: deltafs's integrity keys. */
struct dfs_vc_integrity {
  uint64_t blob_size;
  uint64_t blob_hash;
  int has; /* 0 for a Go-written file (no keys) */
};

int dfs__vcache_new(struct dfs_vcache **out);
void dfs__vcache_free(struct dfs_vcache *c);
/* 1 and *version if id's entry matches sb exactly, else 0. */
int dfs__vcache_get(struct dfs_vcache *c, const char *id, const struct stat *sb, int64_t *version);
/* 1 and a private copy of the parsed metadata (free()) if id's entry
 * matches sb exactly; 0 on a miss (or no memory for the copy). */
int dfs__vcache_get_meta(struct dfs_vcache *c, const char *id, const struct stat *sb,
                         dfs_meta **m, struct dfs_vc_integrity *integ);
/* Remember (id, sb) -> metadata if the file has settled (see vcache.c). */
void dfs__vcache_put(struct dfs_vcache *c, const char *id, const struct stat *sb,
                     const dfs_meta *m, const struct dfs_vc_integrity *integ);
void dfs__vcache_forget(struct dfs_vcache *c, const char *id);

#endif
