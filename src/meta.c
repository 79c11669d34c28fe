/*
 * meta.c — the metadata record <-> JSON (DESIGN §1), with jansson.
 *
 * Compatibility with Go's encoding/json is the point of this file:
 * - the ten keys, in FileMetadata's field order, strings and one integer;
 * - `timestamp` as time.Time marshals: RFC 3339 in UTC with only the
 *   fractional digits needed ("...:01.1234Z", "...:01Z"); read with any
 *   zone offset and 1..9 fractional digits; the zero time is
 *   "0001-01-01T00:00:00Z";
 * - unknown keys ignored, a missing key or JSON null is the zero value
 *   (as Go leaves the field untouched);
 * - a known key of the wrong type, an integer beyond int64, duplicate keys,
 *   invalid UTF-8, or a document over DFS_META_MAX is DFS_ECORRUPT.
 * deltafs adds `blob_size` (integer) and `blob_xxh3` (16 hex digits).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "deltafs/storage.h"
#include "error_int.h"
#include "meta_int.h"
#include "sys.h"

uint64_t dfs__blob_hash(const void *blob, size_t len)
{
  return (uint64_t)XXH3_64bits(blob, len);
}

/* ---- civil time (proleptic Gregorian, days since 1970-01-01) ---------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
  static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

int dfs_timestamp_format(int64_t sec, int32_t nsec, char *buf, size_t size)
{
  int64_t days, rem, y;
  unsigned mo, d;
  int n;

  if (!buf || size < DFS_TIMESTAMP_MAX || nsec < 0 || nsec > 999999999)
    return dfs__err(DFS_EINVAL, "timestamp: invalid argument");
  days = sec / 86400;
  rem = sec % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  civil_from_days(days, &y, &mo, &d);
  if (y < 0 || y > 9999)
    return dfs__err(DFS_EINVAL, "timestamp: year %lld outside 0000..9999", (long long)y);
  n = snprintf(buf, size, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, mo, d, (int)(rem / 3600),
               (int)(rem / 60 % 60), (int)(rem % 60));
  if (nsec) {
    char frac[16];
    int len = 9;
    snprintf(frac, sizeof frac, "%09d", (int)nsec);
    while (len > 0 && frac[len - 1] == '0')
      len--;
    n += snprintf(buf + n, size - (size_t)n, ".%.*s", len, frac);
  }
  snprintf(buf + n, size - (size_t)n, "Z");
  return 0;
}

/* Parse exactly `width` decimal digits at s. */
static int digits(const char *s, int width, int *out)
{
  int v = 0;
  for (int i = 0; i < width; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int dfs_timestamp_parse(const char *s, size_t len, int64_t *sec, int32_t *nsec)
{
  int y, mo, d, h, mi, se, ns = 0, off = 0;
  size_t i = 19;

  if (!s || !sec || !nsec)
    return dfs__err(DFS_EINVAL, "timestamp: invalid argument");
  /* YYYY-MM-DDTHH:MM:SS is 19 bytes, then [.f{1,9}] then Z or ±hh:mm */
  if (len < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
      s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
    goto bad;
  if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo) || h > 23 ||
      mi > 59 || se > 59)
    goto bad;
  if (s[i] == '.') {
    int nd = 0;
    i++;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (++nd > 9)
        goto bad;
      ns = ns * 10 + (s[i] - '0');
      i++;
    }
    if (nd == 0)
      goto bad;
    for (int k = nd; k < 9; k++)
      ns *= 10;
  }
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (len - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || digits(s + i + 4, 2, &om) ||
        oh > 23 || om > 59)
      goto bad;
    off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    goto bad;
  }
  if (i != len)
    goto bad;
  *sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
  *nsec = ns;
  return 0;
bad:
  return dfs__err(DFS_ECORRUPT, "timestamp \"%.*s\" is not RFC 3339", (int)(len > 64 ? 64 : len), s);
}

/* ---- JSON -> dfs_meta ------------------------------------------------- */

static const char *const string_keys[] = {"key_id",    "alg",      "iv",        "tag",
                                          "schema_id", "writer_id", "database", "entity_key"};
#define N_STRING_KEYS (sizeof string_keys / sizeof string_keys[0])

static const char **string_slot(dfs_meta *m, size_t i)
{
  const char **slots[N_STRING_KEYS] = {&m->key_id,    &m->alg,       &m->iv,       &m->tag,
                                       &m->schema_id, &m->writer_id, &m->database, &m->entity_key};
  return slots[i];
}

static int parse_hex64(const char *s, size_t len, uint64_t *out)
{
  uint64_t v = 0;
  if (len != 16)
    return -1;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (x < 0)
      return -1;
    v = v << 4 | (uint64_t)x;
  }
  *out = v;
  return 0;
}

int dfs_meta_parse(const char *json, size_t len, dfs_meta **out, uint64_t *blob_size,
                   uint64_t *blob_hash, int *has_integrity)
{
  json_error_t jerr;
  json_t *root, *v;
  const char *strs[N_STRING_KEYS];
  size_t lens[N_STRING_KEYS], total = 0;
  int64_t version = 0, tsec = DFS_ZERO_TIME_SEC;
  int32_t tnsec = 0;
  uint64_t bsize = 0, bhash = 0;
  int have_size = 0, have_hash = 0, rc;
  dfs_meta *m;
  char *p;

  DFS_CHECK_ARG(json && out, "NULL json or out");
  *out = NULL;
  if (len > DFS_META_MAX)
    return dfs__err(DFS_ECORRUPT, "metadata: %zu bytes, over the %u-byte limit", len,
                    DFS_META_MAX);
  root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return dfs__err(DFS_ECORRUPT, "metadata: not valid JSON (line %d: %s)", jerr.line, jerr.text);
  if (!json_is_object(root)) {
    rc = dfs__err(DFS_ECORRUPT, "metadata: not a JSON object");
    goto out;
  }
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    strs[i] = "";
    lens[i] = 0;
    v = json_object_get(root, string_keys[i]);
    if (!v || json_is_null(v))
      continue;
    if (!json_is_string(v)) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"%s\" is not a string", string_keys[i]);
      goto out;
    }
    strs[i] = json_string_value(v);
    lens[i] = json_string_length(v);
    if (memchr(strs[i], '\0', lens[i])) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"%s\" contains NUL", string_keys[i]);
      goto out;
    }
    total += lens[i] + 1;
  }
  v = json_object_get(root, "version");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v)) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"version\" is not an integer");
      goto out;
    }
    version = (int64_t)json_integer_value(v);
  }
  v = json_object_get(root, "timestamp");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v)) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"timestamp\" is not a string");
      goto out;
    }
    rc = dfs_timestamp_parse(json_string_value(v), json_string_length(v), &tsec, &tnsec);
    if (rc < 0) {
      dfs__err_prefix("metadata");
      goto out;
    }
  }
  v = json_object_get(root, "blob_size");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"blob_size\" is not a non-negative integer");
      goto out;
    }
    bsize = (uint64_t)json_integer_value(v);
    have_size = 1;
  }
  v = json_object_get(root, "blob_xxh3");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || parse_hex64(json_string_value(v), json_string_length(v), &bhash)) {
      rc = dfs__err(DFS_ECORRUPT, "metadata: \"blob_xxh3\" is not 16 hex digits");
      goto out;
    }
    have_hash = 1;
  }

  m = dfs_malloc(sizeof *m + total);
  if (!m) {
    rc = dfs__err(DFS_ENOMEM, "metadata: out of memory");
    goto out;
  }
  memset(m, 0, sizeof *m);
  p = (char *)(m + 1);
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    if (lens[i] == 0) {
      *string_slot(m, i) = "";
      continue;
    }
    memcpy(p, strs[i], lens[i] + 1);
    *string_slot(m, i) = p;
    p += lens[i] + 1;
  }
  m->version = version;
  m->timestamp_sec = tsec;
  m->timestamp_nsec = tnsec;
  *out = m;
  if (blob_size)
    *blob_size = bsize;
  if (blob_hash)
    *blob_hash = bhash;
  if (has_integrity)
    *has_integrity = have_size && have_hash;
  rc = 0;
out:
  json_decref(root);
  return rc;
}

void dfs__meta_set_hash(char *json, size_t len, uint64_t blob_hash)
{
  /* ...,"blob_xxh3":"<16 hex>"}  — JSON_PRESERVE_ORDER keeps it last. */
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)blob_hash);
  memcpy(json + len - 18, hex, 16);
}

dfs_meta *dfs__meta_dup(const dfs_meta *src)
{
  dfs_meta tmp = *src, *m;
  size_t total = 0;
  char *p;
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    const char *sv = *string_slot(&tmp, i);
    total += sv ? strlen(sv) + 1 : 0;
  }
  m = dfs_malloc(sizeof *m + total);
  if (!m)
    return NULL;
  *m = *src;
  p = (char *)(m + 1);
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    const char **slot = string_slot(m, i);
    size_t n;
    if (!*slot || !**slot) {
      *slot = "";
      continue;
    }
    n = strlen(*slot) + 1;
    memcpy(p, *slot, n);
    *slot = p;
    p += n;
  }
  return m;
}

/* ---- dfs_meta -> JSON ------------------------------------------------- */

int dfs__meta_to_json(const dfs_meta *m, uint64_t blob_size, uint64_t blob_hash, char **out,
                      size_t *out_len)
{
  char ts[DFS_TIMESTAMP_MAX], hash[17];
  json_t *root;
  char *s;
  int rc;
  dfs_meta copy = *m;

  rc = dfs_timestamp_format(m->timestamp_sec, m->timestamp_nsec, ts, sizeof ts);
  if (rc < 0)
    return rc;
  if (blob_size > (uint64_t)INT64_MAX)
    return dfs__err(DFS_EINVAL, "metadata: blob too large");
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)blob_hash);
  root = json_object();
  if (!root)
    return dfs__err(DFS_ENOMEM, "metadata: out of memory");
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    const char *sv = *string_slot(&copy, i);
    json_t *js = json_string(sv ? sv : "");
    /* json_string returns NULL for invalid UTF-8: refuse to write metadata
     * that Go (or we) could not read back. */
    if (!js) {
      json_decref(root);
      return dfs__err(DFS_EINVAL, "metadata: \"%s\" is not valid UTF-8", string_keys[i]);
    }
    json_object_set_new_nocheck(root, string_keys[i], js);
    if (i == 4) { /* after schema_id: version, as Go's field order */
      json_object_set_new_nocheck(root, "version", json_integer((json_int_t)m->version));
    } else if (i == 5) { /* after writer_id: timestamp */
      json_object_set_new_nocheck(root, "timestamp", json_string_nocheck(ts));
    }
  }
  json_object_set_new_nocheck(root, "blob_size", json_integer((json_int_t)blob_size));
  json_object_set_new_nocheck(root, "blob_xxh3", json_string_nocheck(hash));
  s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!s)
    return dfs__err(DFS_ENOMEM, "metadata: out of memory");
  *out = s;
  *out_len = strlen(s);
  return 0;
}
