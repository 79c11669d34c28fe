/*
 * test_meta.c — metadata <-> JSON, timestamps, error strings.
 * Go compatibility is checked against fixtures in tests/fixtures/go/,
 * written as Go's encoding/json writes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "testutil.h"

static char *fixture(const char *name, size_t *len)
{
  char path[4096];
  const char *dir = getenv("DFS_FIXTURES");
  char *buf;
  snprintf(path, sizeof path, "%s/go/%s", dir ? dir : DFS_FIXTURES_DIR, name);
  buf = tu_read_file(path, len);
  if (!buf)
    fail_msg("fixture %s missing", path);
  return buf;
}

static dfs_meta *parse_fixture(const char *name, int *has_integrity)
{
  size_t len;
  char *json = fixture(name, &len);
  dfs_meta *m = NULL;
  assert_ok(dfs_meta_parse(json, len, &m, NULL, NULL, has_integrity));
  free(json);
  return m;
}

static void meta__go_indented_fixture_reads_every_field(void **state)
{
  int has = -1;
  dfs_meta *m = parse_fixture("indented.meta.json", &has);
  (void)state;
  assert_string_equal(m->key_id, "key-123");
  assert_string_equal(m->alg, "AES-GCM");
  assert_string_equal(m->iv, "AAECAwQFBgcICQoL");
  assert_string_equal(m->tag, "AAECAwQFBgcICQoLDA0ODw==");
  assert_string_equal(m->schema_id, "chat.v1");
  assert_int_equal(m->version, 7);
  assert_string_equal(m->writer_id, "worker-1");
  assert_int_equal(m->timestamp_sec, 1795809181); /* date -u -d 2026-11-27T19:53:01Z +%s */
  assert_int_equal(m->timestamp_nsec, 123456789);
  assert_string_equal(m->database, "chatdb");
  assert_string_equal(m->entity_key, "Chat_id");
  assert_int_equal(has, 0); /* Go writes no integrity keys */
  dfs_free(m);
}

static void meta__go_zero_time_fixture_is_go_zero(void **state)
{
  dfs_meta *m = parse_fixture("zero-time.meta.json", NULL);
  char buf[DFS_TIMESTAMP_MAX];
  (void)state;
  assert_int_equal(m->timestamp_sec, DFS_ZERO_TIME_SEC);
  assert_int_equal(m->timestamp_nsec, 0);
  assert_int_equal(m->version, 0);
  assert_string_equal(m->key_id, "");
  assert_string_equal(m->entity_key, "");
  assert_ok(dfs_timestamp_format(m->timestamp_sec, m->timestamp_nsec, buf, sizeof buf));
  assert_string_equal(buf, "0001-01-01T00:00:00Z");
  dfs_free(m);
}

static void meta__go_offset_and_html_escapes_decode(void **state)
{
  dfs_meta *m = parse_fixture("fractional-offset.meta.json", NULL);
  (void)state;
  /* 21:53:01.5+02:00 is 19:53:01.5Z */
  assert_int_equal(m->timestamp_sec, 1795809181);
  assert_int_equal(m->timestamp_nsec, 500000000);
  assert_string_equal(m->writer_id, "w<go>");
  assert_string_equal(m->database, "a&b");
  assert_int_equal(m->version, 42);
  dfs_free(m);
}

static void meta__go_unknown_keys_ignored_int64_max_version(void **state)
{
  dfs_meta *m = parse_fixture("unknown-key.meta.json", NULL);
  (void)state;
  assert_int_equal(m->version, INT64_MAX);
  assert_int_equal(m->timestamp_sec, 1772323199);
  assert_int_equal(m->timestamp_nsec, 100000000);
  assert_string_equal(m->schema_id, "chat.v2");
  dfs_free(m);
}

static void meta__missing_and_null_keys_are_zero_values(void **state)
{
  const char *json = "{\"version\": null, \"alg\": null}";
  dfs_meta *m = NULL;
  int has = -1;
  (void)state;
  assert_ok(dfs_meta_parse(json, strlen(json), &m, NULL, NULL, &has));
  assert_int_equal(m->version, 0);
  assert_string_equal(m->alg, "");
  assert_string_equal(m->iv, "");
  assert_int_equal(m->timestamp_sec, DFS_ZERO_TIME_SEC);
  assert_int_equal(has, 0);
  dfs_free(m);
}

static void meta__corrupt_documents_are_ecorrupt(void **state)
{
  static const char *bad[] = {
      "",
      "not json",
      "[1,2,3]",
      "\"a string\"",
      "{\"version\": \"7\"}",
      "{\"version\": 7.5}",
      "{\"version\": 9223372036854775808}",
      "{\"version\": -9223372036854775809}",
      "{\"key_id\": 5}",
      "{\"alg\": {}}",
      "{\"timestamp\": 5}",
      "{\"timestamp\": \"yesterday\"}",
      "{\"timestamp\": \"2026-13-01T00:00:00Z\"}",
      "{\"version\": 1, \"version\": 2}",
      "{\"key_id\": \"a\\u0000b\"}",
      "{\"key_id\": \"\xff\xfe\"}",
      "{\"blob_xxh3\": \"xyz\"}",
      "{\"blob_size\": -1}",
      "{\"version\": 1",
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dfs_meta *m = (dfs_meta *)0x1;
    int rc = dfs_meta_parse(bad[i], strlen(bad[i]), &m, NULL, NULL, NULL);
    if (rc != DFS_ECORRUPT)
      fail_msg("document %zu (%s) gave %d, expected DFS_ECORRUPT", i, bad[i], rc);
    assert_null(m);
    assert_true(strlen(dfs_last_error()) > 0);
  }
}

static void meta__document_over_one_mib_is_ecorrupt(void **state)
{
  size_t n = DFS_META_MAX + 16;
  char *big = malloc(n);
  dfs_meta *m = NULL;
  (void)state;
  memset(big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  assert_dfs(dfs_meta_parse(big, n, &m, NULL, NULL, NULL), DFS_ECORRUPT);
  assert_non_null(strstr(dfs_last_error(), "limit"));
  free(big);
}

static void meta__to_json_round_trips_all_fields_and_integrity(void **state)
{
  dfs_meta in = tu_meta(123456789012LL), *out = NULL;
  char *json;
  size_t len;
  uint64_t size = 0, hash = 0;
  int has = 0;
  (void)state;
  in.database = "d\"b\\ \xc3\xa9"; /* quote, backslash, UTF-8 */
  assert_ok(dfs__meta_to_json(&in, 4096, 0x0123456789abcdefULL, &json, &len));
  assert_non_null(strstr(json, "\"blob_xxh3\":\"0123456789abcdef\""));
  assert_non_null(strstr(json, "\"timestamp\":\"2026-11-27T19:53:01.123456789Z\""));
  assert_ok(dfs_meta_parse(json, len, &out, &size, &hash, &has));
  assert_int_equal(has, 1);
  assert_int_equal(size, 4096);
  assert_int_equal(hash, 0x0123456789abcdefULL);
  assert_string_equal(out->key_id, in.key_id);
  assert_string_equal(out->alg, in.alg);
  assert_string_equal(out->iv, in.iv);
  assert_string_equal(out->tag, in.tag);
  assert_string_equal(out->schema_id, in.schema_id);
  assert_int_equal(out->version, in.version);
  assert_string_equal(out->writer_id, in.writer_id);
  assert_int_equal(out->timestamp_sec, in.timestamp_sec);
  assert_int_equal(out->timestamp_nsec, in.timestamp_nsec);
  assert_string_equal(out->database, in.database);
  assert_string_equal(out->entity_key, in.entity_key);
  /* Go's field order: key_id first, entity_key last of the ten. */
  assert_true(strstr(json, "\"key_id\"") < strstr(json, "\"version\""));
  assert_true(strstr(json, "\"version\"") < strstr(json, "\"timestamp\""));
  assert_true(strstr(json, "\"timestamp\"") < strstr(json, "\"entity_key\""));
  free(json);
  dfs_free(out);
}

static void meta__hash_filled_in_after_serializing(void **state)
{
  dfs_meta in = tu_meta(5), *out = NULL;
  char *json;
  size_t len;
  uint64_t size = 0, hash = 0;
  int has = 0;
  (void)state;
  assert_ok(dfs__meta_to_json(&in, 77, 0, &json, &len));
  dfs__meta_set_hash(json, len, 0xfedcba9876543210ULL);
  assert_ok(dfs_meta_parse(json, len, &out, &size, &hash, &has));
  assert_int_equal(has, 1);
  assert_int_equal(size, 77);
  assert_int_equal(hash, 0xfedcba9876543210ULL);
  assert_int_equal(out->version, 5);
  free(json);
  dfs_free(out);
}

static void meta__null_strings_are_written_empty(void **state)
{
  dfs_meta in = {0}, *out = NULL;
  char *json;
  size_t len;
  (void)state;
  in.timestamp_sec = DFS_ZERO_TIME_SEC;
  assert_ok(dfs__meta_to_json(&in, 0, 0, &json, &len));
  assert_non_null(strstr(json, "\"key_id\":\"\""));
  assert_non_null(strstr(json, "\"timestamp\":\"0001-01-01T00:00:00Z\""));
  assert_ok(dfs_meta_parse(json, len, &out, NULL, NULL, NULL));
  assert_string_equal(out->writer_id, "");
  free(json);
  dfs_free(out);
}

static void meta__invalid_utf8_is_refused_on_write(void **state)
{
  dfs_meta in = tu_meta(1);
  char *json = NULL;
  size_t len;
  (void)state;
  in.writer_id = "bad \xff byte";
  assert_dfs(dfs__meta_to_json(&in, 0, 0, &json, &len), DFS_EINVAL);
  assert_null(json);
  assert_non_null(strstr(dfs_last_error(), "writer_id"));
}

static void timestamp__format_matches_go(void **state)
{
  static const struct {
    int64_t sec;
    int32_t nsec;
    const char *want;
  } cases[] = {
      {1795809181, 123456789, "2026-11-27T19:53:01.123456789Z"},
      {1795809181, 500000000, "2026-11-27T19:53:01.5Z"},
      {1795809181, 120000, "2026-11-27T19:53:01.00012Z"},
      {1795809181, 0, "2026-11-27T19:53:01Z"},
      {0, 0, "1970-01-01T00:00:00Z"},
      {-1, 0, "1969-12-31T23:59:59Z"},
      {1709208000, 0, "2024-02-29T12:00:00Z"},
      {253402300799, 999999999, "9999-12-31T23:59:59.999999999Z"},
      {DFS_ZERO_TIME_SEC, 0, "0001-01-01T00:00:00Z"},
  };
  char buf[DFS_TIMESTAMP_MAX];
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_ok(dfs_timestamp_format(cases[i].sec, cases[i].nsec, buf, sizeof buf));
    assert_string_equal(buf, cases[i].want);
  }
  assert_dfs(dfs_timestamp_format(253402300800, 0, buf, sizeof buf), DFS_EINVAL); /* year 10000 */
  assert_dfs(dfs_timestamp_format(0, 1000000000, buf, sizeof buf), DFS_EINVAL);
  assert_dfs(dfs_timestamp_format(0, -1, buf, sizeof buf), DFS_EINVAL);
  assert_dfs(dfs_timestamp_format(0, 0, buf, 10), DFS_EINVAL);
}

static void timestamp__parse_accepts_rfc3339_forms(void **state)
{
  static const struct {
    const char *s;
    int64_t sec;
    int32_t nsec;
  } cases[] = {
      {"2026-11-27T19:53:01Z", 1795809181, 0},
      {"2026-11-27T19:53:01.1Z", 1795809181, 100000000},
      {"2026-11-27T19:53:01.000000001Z", 1795809181, 1},
      {"2026-11-27T20:53:01+01:00", 1795809181, 0},
      {"2026-11-27T14:23:01.25-05:30", 1795809181, 250000000},
      {"2024-02-29T12:00:00Z", 1709208000, 0},
      {"0001-01-01T00:00:00Z", DFS_ZERO_TIME_SEC, 0},
      {"1969-12-31T23:59:59Z", -1, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t sec = 0;
    int32_t nsec = -1;
    assert_ok(dfs_timestamp_parse(cases[i].s, strlen(cases[i].s), &sec, &nsec));
    assert_int_equal(sec, cases[i].sec);
    assert_int_equal(nsec, cases[i].nsec);
  }
}

static void timestamp__parse_rejects_malformed(void **state)
{
  static const char *bad[] = {
      "",
      "2026-11-27",
      "2026-11-27T19:53:01",            /* no zone */
      "2026-11-27 19:53:01Z",           /* space */
      "2026-11-27T19:53:01.Z",          /* empty fraction */
      "2026-11-27T19:53:01.1234567890Z", /* 10 digits */
      "2026-13-27T19:53:01Z",
      "2026-00-27T19:53:01Z",
      "2026-02-29T00:00:00Z", /* not a leap year */
      "2026-04-31T00:00:00Z",
      "2026-11-27T24:00:00Z",
      "2026-11-27T23:60:00Z",
      "2026-11-27T23:59:60Z",
      "2026-11-27T19:53:01+0100",
      "2026-11-27T19:53:01+24:00",
      "2026-11-27T19:53:01Zjunk",
      "+2026-11-27T19:53:01Z",
      "2026-11-2TT19:53:01Z",
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t sec;
    int32_t nsec;
    int rc = dfs_timestamp_parse(bad[i], strlen(bad[i]), &sec, &nsec);
    if (rc != DFS_ECORRUPT)
      fail_msg("\"%s\" gave %d, expected DFS_ECORRUPT", bad[i], rc);
  }
}

static void timestamp__format_parse_round_trip(void **state)
{
  uint64_t x = 0x9e3779b97f4a7c15ull;
  (void)state;
  for (int i = 0; i < 20000; i++) {
    char buf[DFS_TIMESTAMP_MAX];
    int64_t sec, got_sec;
    int32_t nsec, got_nsec;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sec = DFS_ZERO_TIME_SEC + (int64_t)(x % (uint64_t)(253402300799 - DFS_ZERO_TIME_SEC));
    nsec = (int32_t)((x >> 20) % 1000000000u);
    assert_ok(dfs_timestamp_format(sec, nsec, buf, sizeof buf));
    assert_ok(dfs_timestamp_parse(buf, strlen(buf), &got_sec, &got_nsec));
    assert_int_equal(got_sec, sec);
    assert_int_equal(got_nsec, nsec);
  }
}

static void error__strerror_names_every_code(void **state)
{
  const char *seen[14] = {0};
  (void)state;
  for (int code = 0; code >= DFS_ENOMEM; code--) {
    const char *s = dfs_strerror(code);
    assert_non_null(s);
    assert_string_not_equal(s, "unknown error");
    for (int j = 0; j < -code; j++)
      assert_string_not_equal(s, seen[j]);
    seen[-code] = s;
  }
  assert_string_equal(dfs_strerror(-99), "unknown error");
  assert_string_equal(dfs_strerror(5), "unknown error");
  assert_non_null(dfs_last_error());
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(meta__go_indented_fixture_reads_every_field),
      cmocka_unit_test(meta__go_zero_time_fixture_is_go_zero),
      cmocka_unit_test(meta__go_offset_and_html_escapes_decode),
      cmocka_unit_test(meta__go_unknown_keys_ignored_int64_max_version),
      cmocka_unit_test(meta__missing_and_null_keys_are_zero_values),
      cmocka_unit_test(meta__corrupt_documents_are_ecorrupt),
      cmocka_unit_test(meta__document_over_one_mib_is_ecorrupt),
      cmocka_unit_test(meta__to_json_round_trips_all_fields_and_integrity),
      cmocka_unit_test(meta__hash_filled_in_after_serializing),
      cmocka_unit_test(meta__null_strings_are_written_empty),
      cmocka_unit_test(meta__invalid_utf8_is_refused_on_write),
      cmocka_unit_test(timestamp__format_matches_go),
      cmocka_unit_test(timestamp__parse_accepts_rfc3339_forms),
      cmocka_unit_test(timestamp__parse_rejects_malformed),
      cmocka_unit_test(timestamp__format_parse_round_trip),
      cmocka_unit_test(error__strerror_names_every_code),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
