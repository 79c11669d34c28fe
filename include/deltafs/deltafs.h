/*
 * deltafs/deltafs.h — umbrella header: the whole public API.
 *
 *   error.h    DFS_E* codes, dfs_strerror, dfs_last_error
 *   meta.h     dfs_meta, the metadata record; timestamp helpers
 *   storage.h  dfs_storage: write/read/delete/list, templates
 *   lock.h     dfs_flock (one lock file), dfs_lockmgr (per-entity)
 *   seal.h     AES-256-GCM seal/open of a blob + its metadata
 *   fsck.h     check and repair a whole store
 *
 * Link with `pkg-config --cflags --libs deltafs`.
 */
#ifndef DELTAFS_H
#define DELTAFS_H

#define DELTAFS_VERSION_MAJOR 0
#define DELTAFS_VERSION_MINOR 1
#define DELTAFS_VERSION_PATCH 0

#include "deltafs/error.h"
#include "deltafs/fsck.h"
#include "deltafs/lock.h"
#include "deltafs/meta.h"
#include "deltafs/seal.h"
#include "deltafs/storage.h"

#endif /* DELTAFS_H */
