/* vcache.h — dfs_version's stat cache (see vcache.c). */
#ifndef DFS_VCACHE_H
#define DFS_VCACHE_H

#include <stdint.h>
#include <sys/stat.h>

struct dfs_vcache;

int dfs__vcache_new(struct dfs_vcache **out);
void dfs__vcache_free(struct dfs_vcache *c);
/* 1 and *version if id's entry matches sb exactly, else 0. */
int dfs__vcache_get(struct dfs_vcache *c, const char *id, const struct stat *sb, int64_t *version);
/* Remember (id, sb) -> version if the file has settled (see vcache.c). */
void dfs__vcache_put(struct dfs_vcache *c, const char *id, const struct stat *sb, int64_t version);
void dfs__vcache_forget(struct dfs_vcache *c, const char *id);

#endif
