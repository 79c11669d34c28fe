/*
 * deltafs/meta.h — the metadata record stored beside each blob.
 *
 * On disk it is the JSON object of DESIGN §1 (`<id>.meta.json`), the same
 * ten keys DeltaDatabase's Go workers write with encoding/json:
 *
 *   key_id alg iv tag schema_id version writer_id timestamp database entity_key
 *
 * deltafs adds two keys of its own, `blob_size` (integer) and `blob_xxh3`
 * (16 lower-case hex digits, XXH3-64 of the blob), which let a read detect a
 * blob that does not belong to its metadata.  Files without them (written by
 * Go) still read; Go ignores them.
 *
 * Ownership: on write (dfs_write) every string is borrowed for the duration
 * of the call, and a NULL string is written as "".  On read (dfs_read) the
 * strings are owned by the dfs_file and freed with it; they are never NULL.
 *
 * Timestamps are Unix seconds UTC plus nanoseconds (0..999999999).  They are
 * written as RFC 3339 in UTC with a `Z` and only the fractional digits
 * needed, exactly as Go's time.Time marshals; read with any zone offset and
 * up to 9 fractional digits.  Go's zero time ("0001-01-01T00:00:00Z") is
 * DFS_ZERO_TIME_SEC and round-trips.
 */
#ifndef DELTAFS_META_H
#define DELTAFS_META_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Go's zero time.Time, 0001-01-01T00:00:00Z, in Unix seconds. */
#define DFS_ZERO_TIME_SEC INT64_C(-62135596800)

typedef struct dfs_meta {
  const char *key_id;        /* encryption key identifier                   */
  const char *alg;           /* algorithm, e.g. "AES-GCM"                   */
  const char *iv;            /* nonce, standard base64                      */
  const char *tag;           /* GCM auth tag, standard base64               */
  const char *schema_id;     /* JSON Schema template id                     */
  int64_t version;           /* bumped by every writer; cache coherence     */
  const char *writer_id;     /* worker that wrote the file                  */
  int64_t timestamp_sec;     /* Unix seconds UTC; Go's zero time is -62135596800 */
  int32_t timestamp_nsec;    /* 0..999999999                                */
  const char *database;      /* database name                               */
  const char *entity_key;    /* entity key within the database              */
} dfs_meta;

/* Parse one metadata JSON document (as stored in <id>.meta.json).
 * On success *out is a dfs_meta whose strings live in the same allocation;
 * free it with dfs_free().  `blob_size`/`blob_hash` (either may be NULL)
 * receive deltafs's integrity keys; *has_integrity (may be NULL) is set to 1
 * when both were present, 0 for a Go-written file.
 * Returns 0, DFS_ECORRUPT (not JSON, not an object, a known key of the wrong
 * type, an integer outside int64, a bad timestamp, over 1 MiB), DFS_EINVAL,
 * DFS_ENOMEM. */
int dfs_meta_parse(const char *json, size_t len, dfs_meta **out,
                   uint64_t *blob_size, uint64_t *blob_hash, int *has_integrity);

/* Format a timestamp as Go's time.Time MarshalJSON does (without quotes):
 * "2026-11-27T19:53:01.123456789Z", trailing zeros of the fraction dropped.
 * buf needs DFS_TIMESTAMP_MAX bytes.  Returns 0 or DFS_EINVAL (nsec out of
 * range, year outside 0000..9999, small buffer). */
#define DFS_TIMESTAMP_MAX 40
int dfs_timestamp_format(int64_t sec, int32_t nsec, char *buf, size_t size);

/* Parse an RFC 3339 timestamp: "YYYY-MM-DDTHH:MM:SS[.frac]{Z|+hh:mm|-hh:mm}",
 * 1..9 fractional digits.  Returns 0 or DFS_ECORRUPT. */
int dfs_timestamp_parse(const char *s, size_t len, int64_t *sec, int32_t *nsec);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_META_H */
