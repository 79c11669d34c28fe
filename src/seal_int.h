/*
 * seal_int.h — internal entry of seal.c for the known-answer tests: seal
 * with a caller-chosen nonce.  Never use it outside tests: a repeated
 * nonce under one key breaks GCM (it leaks the XOR of plaintexts and lets
 * an attacker forge tags).
 */
#ifndef DFS_SEAL_INT_H
#define DFS_SEAL_INT_H

#include "deltafs/seal.h"

/* As dfs_seal, with nonce (DFS_SEAL_NONCE_SIZE bytes) instead of a random
 * one. */
int dfs__seal_with_nonce(const dfs_key *key, const unsigned char *nonce, const void *pt,
                         size_t len, dfs_sealed *out);

#endif
