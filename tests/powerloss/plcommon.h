/*
 * plcommon.h — what the power-loss workload writes, so the replay can tell
 * a version that was written from a torn, empty or garbage one.
 *
 * Every (id, version) has one deterministic content: its length is chosen
 * from a set of sizes that covers an empty blob, sub-block, exactly one
 * 4 KiB block and multi-block blobs (a multi-block blob can be torn across
 * blocks after a power cut), and its bytes come from a PRNG seeded with
 * (id, version).  Entity versions never repeat for an id (a re-created id
 * continues counting), so content identifies the write that made it.
 */
#ifndef DFS_PLCOMMON_H
#define DFS_PLCOMMON_H

#include <stddef.h>
#include <stdint.h>

#include "deltafs/meta.h"

/* Length of the blob (or template) written as `version` of `id`. */
size_t pl_content_len(const char *id, int64_t version);

/* Fill buf (pl_content_len bytes) with that content. */
void pl_content_fill(const char *id, int64_t version, unsigned char *buf, size_t len);

/* 1 if data/len is exactly the content of (id, version). */
int pl_content_is(const char *id, int64_t version, const void *data, size_t len);

/* The metadata written with (id, version); strings point into `strs`,
 * which must outlive `m` (64 bytes each for iv and tag). */
struct pl_meta_strs {
  char iv[64];
  char tag[64];
};
void pl_meta_fill(const char *id, int64_t version, dfs_meta *m, struct pl_meta_strs *strs);

/* A small seeded PRNG (splitmix64) shared by the workload and the replay. */
uint64_t pl_rand(uint64_t *state);

#endif /* DFS_PLCOMMON_H */
