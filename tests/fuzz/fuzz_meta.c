/*
 * fuzz_meta.c — dfs_meta_parse, the parser every metadata file read from a
 * (possibly hostile or damaged) store goes through.
 *
 * Properties, beyond "no crash, no leak, no UB" (ASan + UBSan):
 *  - a failure is DFS_ECORRUPT (or DFS_ENOMEM) and leaves *out NULL;
 *  - a success gives non-NULL strings, nsec in 0..999999999;
 *  - ROUND TRIP: what parsed, serialized again (dfs__meta_to_json, the
 *    writer's own serializer) parses to the same record, integrity keys
 *    included — unless the timestamp cannot be written (a year outside
 *    0000..9999 reached through a zone offset), which must be DFS_EINVAL.
 */
#include <string.h>

#include "deltafs/error.h"
#include "deltafs/meta.h"
#include "deltafs/storage.h"
#include "fuzz.h"
#include "meta_int.h"

static void same_meta(const dfs_meta *a, const dfs_meta *b)
{
  const char *sa[] = {a->key_id, a->alg, a->iv, a->tag, a->schema_id, a->writer_id,
                      a->database, a->entity_key};
  const char *sb[] = {b->key_id, b->alg, b->iv, b->tag, b->schema_id, b->writer_id,
                      b->database, b->entity_key};
  for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++)
    if (!sa[i] || !sb[i] || strcmp(sa[i], sb[i]) != 0)
      fuzz_fail("string field %zu differs after the round trip", i);
  if (a->version != b->version)
    fuzz_fail("version %lld became %lld", (long long)a->version, (long long)b->version);
  if (a->timestamp_sec != b->timestamp_sec || a->timestamp_nsec != b->timestamp_nsec)
    fuzz_fail("timestamp %lld.%09d became %lld.%09d", (long long)a->timestamp_sec,
              (int)a->timestamp_nsec, (long long)b->timestamp_sec, (int)b->timestamp_nsec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  dfs_meta *m = (dfs_meta *)&size, *m2 = NULL; /* must be reset */
  uint64_t bs = 7, bh = 7, bs2, bh2;
  int has = 7, has2, rc;
  char *json = NULL;
  size_t jlen = 0;

  rc = dfs_meta_parse((const char *)data, size, &m, &bs, &bh, &has);
  if (rc != 0) {
    if (rc != DFS_ECORRUPT && rc != DFS_ENOMEM)
      fuzz_fail("parse failed with %d (%s)", rc, dfs_strerror(rc));
    if (m != NULL)
      fuzz_fail("failed parse left *out set");
    if (!dfs_last_error()[0])
      fuzz_fail("failed parse without a detail");
    return 0;
  }
  if (!m->key_id || !m->alg || !m->iv || !m->tag || !m->schema_id || !m->writer_id ||
      !m->database || !m->entity_key)
    fuzz_fail("NULL string in a parsed record");
  if (m->timestamp_nsec < 0 || m->timestamp_nsec > 999999999)
    fuzz_fail("nsec %d out of range", (int)m->timestamp_nsec);
  if (has != 0 && has != 1)
    fuzz_fail("has_integrity is %d", has);

  rc = dfs__meta_to_json(m, bs, bh, &json, &jlen);
  if (rc == 0) {
    rc = dfs_meta_parse(json, jlen, &m2, &bs2, &bh2, &has2);
    if (rc != 0)
      fuzz_fail("our own JSON does not parse: %s\n%s", dfs_last_error(), json);
    same_meta(m, m2);
    /* The serializer always writes the integrity keys. */
    if (!has2 || bh2 != bh || (bs2 != bs && bs <= (uint64_t)INT64_MAX))
      fuzz_fail("integrity keys changed in the round trip");
    dfs_free(m2);
    free(json);
  } else {
    char ts[DFS_TIMESTAMP_MAX];
    if (rc != DFS_EINVAL && rc != DFS_ENOMEM)
      fuzz_fail("serializing a parsed record failed with %d: %s", rc, dfs_last_error());
    if (rc == DFS_EINVAL &&
        dfs_timestamp_format(m->timestamp_sec, m->timestamp_nsec, ts, sizeof ts) == 0)
      fuzz_fail("serializing failed, but not for the timestamp: %s", dfs_last_error());
  }
  dfs_free(m);
  return 0;
}
