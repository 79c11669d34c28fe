/*
 * plcommon.c — deterministic content of the power-loss workload
 * (plcommon.h).
 */
#include "plcommon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t pl_rand(uint64_t *state)
{
  uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t seed_of(const char *id, int64_t version)
{
  uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a over the id */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * UINT64_C(1099511628211);
  return h ^ ((uint64_t)version * UINT64_C(0x2545f4914f6cdd1d));
}

size_t pl_content_len(const char *id, int64_t version)
{
  /* 0: empty blob; 37, 1500: sub-block; 4096: exactly one block; 4097 ..
   * 300000: several blocks, so a torn write can keep some and lose others
   * (300000 spans several 128 KiB FUSE write requests). */
  static const size_t sizes[] = {37, 4096, 9000, 70000, 4097, 1500, 0, 20000, 300000};
  uint64_t s = seed_of(id, version);
  return sizes[pl_rand(&s) % (sizeof sizes / sizeof sizes[0])];
}

void pl_content_fill(const char *id, int64_t version, unsigned char *buf, size_t len)
{
  uint64_t s = seed_of(id, version) ^ UINT64_C(0x5555aaaa5555aaaa);
  for (size_t i = 0; i < len; i += 8) {
    uint64_t r = pl_rand(&s);
    size_t n = len - i < 8 ? len - i : 8;
    memcpy(buf + i, &r, n);
  }
  /* Never all zeros: a zero-filled block (data lost, size kept) must not
   * pass for content. */
  if (len > 0)
    buf[0] |= 1;
}

int pl_content_is(const char *id, int64_t version, const void *data, size_t len)
{
  unsigned char *want;
  int same;
  if (len != pl_content_len(id, version))
    return 0;
  if (len == 0)
    return 1;
  want = malloc(len);
  if (!want)
    return 0;
  pl_content_fill(id, version, want, len);
  same = memcmp(want, data, len) == 0;
  free(want);
  return same;
}

void pl_meta_fill(const char *id, int64_t version, dfs_meta *m, struct pl_meta_strs *strs)
{
  snprintf(strs->iv, sizeof strs->iv, "aXY-%s-%lld", id, (long long)version);
  snprintf(strs->tag, sizeof strs->tag, "dGFn-%lld", (long long)version);
  memset(m, 0, sizeof *m);
  m->key_id = "pl-key";
  m->alg = "AES-GCM";
  m->iv = strs->iv;
  m->tag = strs->tag;
  m->schema_id = "pl-schema";
  m->version = version;
  m->writer_id = "powerloss";
  m->timestamp_sec = 1700000000 + version;
  m->timestamp_nsec = 0;
  m->database = "pl-db";
  m->entity_key = id;
}
