/* meta_int.h — metadata serialization for the storage layer (meta.c). */
#ifndef DFS_META_INT_H
#define DFS_META_INT_H

#include <stddef.h>
#include <stdint.h>

#include "deltafs/meta.h"

/* Largest metadata file deltafs will read (hostile stores). */
#define DFS_META_MAX (1u << 20)

/* Serialize m plus deltafs's integrity keys (blob_size, blob_xxh3) as one
 * JSON object, keys in Go's field order.  *out is malloc'd, NUL-terminated.
 * Returns 0, DFS_EINVAL (bad timestamp, string not UTF-8), DFS_ENOMEM. */
int dfs__meta_to_json(const dfs_meta *m, uint64_t blob_size, uint64_t blob_hash,
                      char **out, size_t *out_len);

/* Replace the blob_xxh3 value in JSON made by dfs__meta_to_json (it is the
 * last key, 16 hex digits at a fixed place from the end). */
void dfs__meta_set_hash(char *json, size_t len, uint64_t blob_hash);

/* A deep copy of m in one allocation (free() it); NULL on ENOMEM. */
dfs_meta *dfs__meta_dup(const dfs_meta *m);

/* XXH3-64 of a blob (the integrity hash). */
uint64_t dfs__blob_hash(const void *blob, size_t len);

#endif
