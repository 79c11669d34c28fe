/*
 * test_storage.c — the store: every public storage call, the on-disk
 * format, id validation at every call, symlinks, torn pairs, the version
 * cache, recovery, and a crash at every syscall of a write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "testutil.h"

struct fx {
  char *dir;
  dfs_storage *st;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);
  dfs_options o = DFS_OPTIONS_INIT;
  f->dir = tu_mkdtemp("storage");
  if (dfs_storage_open(&f->st, f->dir, &o) != 0) {
    fprintf(stderr, "open: %s\n", dfs_last_error());
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  dfs_fault_disarm();
  dfs_storage_close(f->st);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static char *path_in(struct fx *f, const char *sub, const char *name)
{
  static char buf[8][4096];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 4096, "%s/%s/%s", f->dir, sub, name);
  return p;
}

/* Snapshot of the names in the store's three directories, for "nothing
 * was touched" checks. */
static char *snapshot(struct fx *f)
{
  static const char *subs[] = {"files", "templates", ".deltafs-tmp", "."};
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap);
  for (size_t i = 0; i < 4; i++) {
    char p[4096];
    DIR *d;
    struct dirent *e;
    snprintf(p, sizeof p, "%s/%s", f->dir, subs[i]);
    d = opendir(p);
    assert_non_null(d);
    while ((e = readdir(d)))
      len += (size_t)snprintf(out + len, cap - len, "%s/%s\n", subs[i], e->d_name);
    closedir(d);
  }
  return out;
}

static void read_expect(dfs_storage *st, const char *id, const void *blob, size_t len,
                        int64_t version)
{
  dfs_file *file = NULL;
  assert_ok(dfs_read(st, id, &file));
  assert_int_equal(file->blob_len, len);
  if (len)
    assert_memory_equal(file->blob, blob, len);
  assert_int_equal(file->meta.version, version);
  dfs_file_free(file);
}

/* ---- basic read / write ----------------------------------------------- */

static void storage__open_creates_layout(void **state)
{
  struct fx *f = *state;
  struct stat sb;
  assert_int_equal(stat(path_in(f, "files", ""), &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  assert_int_equal(stat(path_in(f, "templates", ""), &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  {
    char want[4096];
    snprintf(want, sizeof want, "%s/files", f->dir);
    assert_string_equal(dfs_files_dir(f->st), want);
    snprintf(want, sizeof want, "%s/templates", f->dir);
    assert_string_equal(dfs_templates_dir(f->st), want);
  }
}

static void storage__write_then_read_back_empty_binary_and_10mib(void **state)
{
  struct fx *f = *state;
  unsigned char bin[256];
  size_t big_len = 10u << 20;
  unsigned char *big = malloc(big_len);
  dfs_meta m = tu_meta(1);

  for (int i = 0; i < 256; i++)
    bin[i] = (unsigned char)i;
  for (size_t i = 0; i < big_len; i++)
    big[i] = (unsigned char)(i * 2654435761u >> 13);

  assert_ok(dfs_write(f->st, "empty", NULL, 0, &m));
  read_expect(f->st, "empty", "", 0, 1);
  assert_ok(dfs_write(f->st, "binary", bin, sizeof bin, &m));
  read_expect(f->st, "binary", bin, sizeof bin, 1);
  assert_ok(dfs_write(f->st, "big", big, big_len, &m));
  read_expect(f->st, "big", big, big_len, 1);
  /* On disk: the blob is exactly the bytes, under the normative name. */
  {
    size_t len;
    char *disk = tu_read_file(path_in(f, "files", "binary.json.enc"), &len);
    assert_int_equal(len, 256);
    assert_memory_equal(disk, bin, 256);
    free(disk);
  }
  assert_int_equal(tu_count_temps(f->dir), 0);
  free(big);
}

static void storage__overwrite_replaces_pair(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  assert_ok(dfs_write(f->st, "Chat_1", "first", 5, &m));
  m.version = 2;
  m.writer_id = "worker-2";
  assert_ok(dfs_write(f->st, "Chat_1", "second!", 7, &m));
  {
    dfs_file *file;
    assert_ok(dfs_read(f->st, "Chat_1", &file));
    assert_int_equal(file->blob_len, 7);
    assert_memory_equal(file->blob, "second!", 7);
    assert_int_equal(file->meta.version, 2);
    assert_string_equal(file->meta.writer_id, "worker-2");
    dfs_file_free(file);
  }
  assert_int_equal(tu_count_temps(f->dir), 0);
  /* Exactly the two entity files (the lock file only appears with locks). */
  assert_int_equal(tu_count_entries(path_in(f, "files", ""), "Chat_1"), 2);
}

static void storage__every_meta_field_round_trips(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(77);
  dfs_file *file;
  m.key_id = "kid-\xc3\xa9";
  m.timestamp_sec = DFS_ZERO_TIME_SEC;
  m.timestamp_nsec = 0;
  assert_ok(dfs_write(f->st, "fields", "x", 1, &m));
  assert_ok(dfs_read(f->st, "fields", &file));
  assert_string_equal(file->meta.key_id, m.key_id);
  assert_string_equal(file->meta.alg, m.alg);
  assert_string_equal(file->meta.iv, m.iv);
  assert_string_equal(file->meta.tag, m.tag);
  assert_string_equal(file->meta.schema_id, m.schema_id);
  assert_int_equal(file->meta.version, 77);
  assert_string_equal(file->meta.writer_id, m.writer_id);
  assert_int_equal(file->meta.timestamp_sec, DFS_ZERO_TIME_SEC);
  assert_int_equal(file->meta.timestamp_nsec, 0);
  assert_string_equal(file->meta.database, m.database);
  assert_string_equal(file->meta.entity_key, m.entity_key);
  dfs_file_free(file);
  /* And the file is the JSON the Go workers read: the ten keys plus ours. */
  {
    char *json = tu_read_file(path_in(f, "files", "fields.meta.json"), NULL);
    static const char *keys[] = {"\"key_id\"",    "\"alg\"",      "\"iv\"",        "\"tag\"",
                                 "\"schema_id\"", "\"version\"",  "\"writer_id\"", "\"timestamp\"",
                                 "\"database\"",  "\"entity_key\"", "\"blob_size\"", "\"blob_xxh3\""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      assert_non_null(strstr(json, keys[i]));
    assert_non_null(strstr(json, "\"timestamp\":\"0001-01-01T00:00:00Z\""));
    free(json);
  }
}

static void storage__null_meta_strings_written_as_empty(void **state)
{
  struct fx *f = *state;
  dfs_meta m = {0};
  dfs_file *file;
  m.version = 3;
  assert_ok(dfs_write(f->st, "nulls", "x", 1, &m));
  assert_ok(dfs_read(f->st, "nulls", &file));
  assert_string_equal(file->meta.key_id, "");
  assert_string_equal(file->meta.entity_key, "");
  assert_int_equal(file->meta.timestamp_sec, 0);
  dfs_file_free(file);
}

static void storage__go_written_files_read(void **state)
{
  struct fx *f = *state;
  static const char *names[] = {"indented", "zero-time", "fractional-offset", "unknown-key"};
  for (size_t i = 0; i < 4; i++) {
    char src[4096], *json;
    size_t len;
    dfs_file *file;
    const char *dir = getenv("DFS_FIXTURES");
    snprintf(src, sizeof src, "%s/go/%s.meta.json", dir ? dir : DFS_FIXTURES_DIR, names[i]);
    json = tu_read_file(src, &len);
    assert_non_null(json);
    {
      char n1[256], n2[256];
      snprintf(n1, sizeof n1, "%s.meta.json", names[i]);
      snprintf(n2, sizeof n2, "%s.json.enc", names[i]);
      tu_write_file(path_in(f, "files", n1), json, len);
      tu_write_file(path_in(f, "files", n2), "ciphertext", 10);
    }
    assert_ok(dfs_read(f->st, names[i], &file));
    assert_int_equal(file->blob_len, 10);
    assert_memory_equal(file->blob, "ciphertext", 10);
    if (i == 0) {
      assert_int_equal(file->meta.version, 7);
      assert_int_equal(file->meta.timestamp_nsec, 123456789);
    }
    if (i == 1)
      assert_int_equal(file->meta.timestamp_sec, DFS_ZERO_TIME_SEC);
    dfs_file_free(file);
    free(json);
  }
}

/* ---- exists / delete / list ------------------------------------------- */

static void storage__exists_needs_both_files(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  assert_int_equal(dfs_exists(f->st, "nope"), 0);
  assert_ok(dfs_write(f->st, "both", "b", 1, &m));
  assert_int_equal(dfs_exists(f->st, "both"), 1);
  tu_write_file(path_in(f, "files", "blobonly.json.enc"), "b", 1);
  assert_int_equal(dfs_exists(f->st, "blobonly"), 0);
  tu_write_file(path_in(f, "files", "metaonly.meta.json"), "{}", 2);
  assert_int_equal(dfs_exists(f->st, "metaonly"), 0);
  {
    dfs_file *file;
    assert_dfs(dfs_read(f->st, "blobonly", &file), DFS_ENOTFOUND);
    assert_dfs(dfs_read(f->st, "metaonly", &file), DFS_ENOTFOUND);
    assert_dfs(dfs_read(f->st, "nope", &file), DFS_ENOTFOUND);
    assert_null(file);
  }
}

static void storage__delete_removes_pair_and_missing_is_ok(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_file *file;
  assert_ok(dfs_delete(f->st, "never-existed"));
  assert_ok(dfs_write(f->st, "gone", "x", 1, &m));
  assert_ok(dfs_delete(f->st, "gone"));
  assert_int_equal(dfs_exists(f->st, "gone"), 0);
  assert_dfs(dfs_read(f->st, "gone", &file), DFS_ENOTFOUND);
  assert_int_equal(tu_count_entries(path_in(f, "files", ""), "gone"), 0);
  assert_ok(dfs_delete(f->st, "gone"));
}

struct seen {
  int count;
  char ids[16][64];
  int stop_after;
};

static int seen_cb(const char *id, void *p)
{
  struct seen *s = p;
  if (s->count < 16)
    snprintf(s->ids[s->count], 64, "%s", id);
  s->count++;
  return s->stop_after && s->count == s->stop_after ? 42 : 0;
}

static int has_id(const struct seen *s, const char *id)
{
  for (int i = 0; i < s->count && i < 16; i++)
    if (!strcmp(s->ids[i], id))
      return 1;
  return 0;
}

static void storage__list_ignores_foreign_temp_and_lock_files(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_id_list *l;
  struct seen s = {0};
  assert_ok(dfs_write(f->st, "a", "1", 1, &m));
  assert_ok(dfs_write(f->st, "b.json.enc", "2", 1, &m)); /* suffix inside a valid id */
  assert_ok(dfs_write(f->st, "c", "3", 1, &m));
  tu_write_file(path_in(f, "files", "readme.txt"), "hi", 2);
  tu_write_file(path_in(f, "files", ".x.json.enc"), "t", 1);
  tu_write_file(path_in(f, "files", "a.json.enc.lock"), "", 0);
  tu_write_file(path_in(f, "files", "zz.json.enc.tmp"), "", 0);
  tu_write_file(path_in(f, "files", ".json.enc"), "", 0);
  mkdir(path_in(f, "files", "dir.json.enc"), 0755);
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, 3);
  {
    int got = 0;
    for (size_t i = 0; i < l->count; i++)
      got |= (!strcmp(l->ids[i], "a")) | (!strcmp(l->ids[i], "b.json.enc")) << 1 |
             (!strcmp(l->ids[i], "c")) << 2;
    assert_int_equal(got, 7);
  }
  dfs_list_free(l);
  assert_ok(dfs_list_each(f->st, seen_cb, &s));
  assert_int_equal(s.count, 3);
  assert_true(has_id(&s, "a") && has_id(&s, "b.json.enc") && has_id(&s, "c"));
  read_expect(f->st, "b.json.enc", "2", 1, 1);
}

static void storage__list_each_stops_on_nonzero(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  struct seen s = {0};
  char id[16];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "e%d", i);
    assert_ok(dfs_write(f->st, id, "x", 1, &m));
  }
  s.stop_after = 2;
  assert_int_equal(dfs_list_each(f->st, seen_cb, &s), 42);
  assert_int_equal(s.count, 2);
}

static void storage__list_empty_store(void **state)
{
  struct fx *f = *state;
  dfs_id_list *l;
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, 0);
  dfs_list_free(l);
  dfs_list_free(NULL);
}

static void storage__list_many(void **state)
{
  struct fx *f = *state;
  dfs_options o = DFS_OPTIONS_INIT;
  dfs_storage *st;
  dfs_id_list *l;
  dfs_meta m = tu_meta(1);
  char id[32];
  int *seen = calloc(2000, sizeof *seen);
  o.flags = DFS_OPT_NO_SYNC;
  assert_ok(dfs_storage_open(&st, f->dir, &o));
  for (int i = 0; i < 2000; i++) {
    snprintf(id, sizeof id, "entity-%d", i);
    assert_ok(dfs_write(st, id, id, strlen(id), &m));
  }
  assert_ok(dfs_list(f->st, &l));
  assert_int_equal(l->count, 2000);
  for (size_t i = 0; i < l->count; i++) {
    int n = atoi(l->ids[i] + 7);
    assert_false(seen[n]);
    seen[n] = 1;
  }
  dfs_list_free(l);
  dfs_storage_close(st);
  free(seen);
}

/* ---- two handles, version ---------------------------------------------- */

static void storage__two_handles_see_each_other(void **state)
{
  struct fx *f = *state;
  dfs_storage *b;
  dfs_meta m = tu_meta(1);
  int64_t v = 0;
  assert_ok(dfs_storage_open(&b, f->dir, NULL));
  assert_ok(dfs_write(f->st, "shared", "one", 3, &m));
  read_expect(b, "shared", "one", 3, 1);
  assert_ok(dfs_version(b, "shared", &v));
  assert_int_equal(v, 1);
  m.version = 2;
  assert_ok(dfs_write(b, "shared", "two", 3, &m));
  read_expect(f->st, "shared", "two", 3, 2);
  assert_ok(dfs_version(f->st, "shared", &v));
  assert_int_equal(v, 2);
  assert_ok(dfs_delete(b, "shared"));
  assert_dfs(dfs_version(f->st, "shared", &v), DFS_ENOTFOUND);
  dfs_storage_close(b);
}

static void storage__version_agrees_with_read_through_rapid_overwrites(void **state)
{
  struct fx *f = *state;
  dfs_storage *other;
  dfs_meta m = tu_meta(1);
  dfs_options o = DFS_OPTIONS_INIT;
  o.flags = DFS_OPT_NO_SYNC;
  assert_ok(dfs_storage_open(&other, f->dir, &o));
  for (int i = 1; i <= 200; i++) {
    int64_t v = -1;
    dfs_file *file;
    m.version = i;
    /* Alternate writers, same-sized metadata: inode numbers are reused and
     * timestamps are coarse, the case the settle rule exists for. */
    assert_ok(dfs_write(i % 2 ? other : f->st, "v", "same", 4, &m));
    assert_ok(dfs_version(f->st, "v", &v));
    assert_int_equal(v, i);
    assert_ok(dfs_read(f->st, "v", &file));
    assert_int_equal(file->meta.version, v);
    dfs_file_free(file);
  }
  dfs_storage_close(other);
}

static void storage__version_cache_sees_replacement_after_settling(void **state)
{
  struct fx *f = *state;
  dfs_storage *other;
  dfs_meta m = tu_meta(1);
  int64_t v = 0;
  assert_ok(dfs_storage_open(&other, f->dir, NULL));
  assert_ok(dfs_write(f->st, "settled", "a", 1, &m));
  usleep((DFS_VERSION_SETTLE_MS + 200) * 1000);
  assert_ok(dfs_version(f->st, "settled", &v)); /* parsed and cached */
  assert_int_equal(v, 1);
  assert_ok(dfs_version(f->st, "settled", &v)); /* answered from the cache */
  assert_int_equal(v, 1);
  read_expect(f->st, "settled", "a", 1, 1); /* metadata from the cache */
  /* The cached metadata never vouches for a blob that is not its own. */
  tu_write_file(path_in(f, "files", "settled.json.enc"), "b", 1);
  {
    dfs_file *file;
    assert_dfs(dfs_read(f->st, "settled", &file), DFS_ECORRUPT);
  }
  tu_write_file(path_in(f, "files", "settled.json.enc"), "a", 1);
  read_expect(f->st, "settled", "a", 1, 1);
  m.version = 2;
  assert_ok(dfs_write(other, "settled", "a", 1, &m)); /* same size, maybe same inode */
  assert_ok(dfs_version(f->st, "settled", &v));
  assert_int_equal(v, 2);
  dfs_storage_close(other);
}

/* ---- write_if_version ------------------------------------------------- */

static void storage__write_if_version_conflict_and_success(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  assert_dfs(dfs_write_if_version(f->st, "cas", "x", 1, &m, 3), DFS_ECONFLICT);
  assert_int_equal(dfs_exists(f->st, "cas"), 0);
  assert_ok(dfs_write_if_version(f->st, "cas", "v1", 2, &m, 0));
  assert_dfs(dfs_write_if_version(f->st, "cas", "x", 1, &m, 0), DFS_ECONFLICT);
  m.version = 2;
  assert_dfs(dfs_write_if_version(f->st, "cas", "stale", 5, &m, 5), DFS_ECONFLICT);
  assert_non_null(strstr(dfs_last_error(), "stored version is 1"));
  read_expect(f->st, "cas", "v1", 2, 1);
  assert_ok(dfs_write_if_version(f->st, "cas", "v2", 2, &m, 1));
  read_expect(f->st, "cas", "v2", 2, 2);
  assert_int_equal(tu_count_temps(f->dir), 0);
}

/* ---- templates -------------------------------------------------------- */

static void storage__templates_write_read_list(void **state)
{
  struct fx *f = *state;
  const char *schema = "{\"type\":\"object\"}";
  void *data;
  size_t len;
  dfs_id_list *l;
  assert_dfs(dfs_template_read(f->st, "chat.v1", &data, &len), DFS_ENOTFOUND);
  assert_ok(dfs_template_write(f->st, "chat.v1", schema, strlen(schema)));
  assert_ok(dfs_template_read(f->st, "chat.v1", &data, &len));
  assert_int_equal(len, strlen(schema));
  assert_memory_equal(data, schema, len);
  dfs_free(data);
  assert_ok(dfs_template_write(f->st, "chat.v1", "{}", 2));
  assert_ok(dfs_template_read(f->st, "chat.v1", &data, &len));
  assert_int_equal(len, 2);
  assert_string_equal(data, "{}");
  dfs_free(data);
  {
    size_t n;
    char *disk = tu_read_file(path_in(f, "templates", "chat.v1.json"), &n);
    assert_int_equal(n, 2);
    free(disk);
  }
  assert_ok(dfs_template_write(f->st, "other", "", 0));
  assert_ok(dfs_template_list(f->st, &l));
  assert_int_equal(l->count, 2);
  dfs_list_free(l);
  assert_int_equal(tu_count_temps(f->dir), 0);
}

/* ---- ids -------------------------------------------------------------- */

static const char *const bad_ids[] = {
    "", ".", "..", "../x", "a/b", "/abs", "a\\b", "x\ny", "tab\there", "\x01", "del\x7f",
    ".hidden", ".x.json.enc.0123456789abcdef",
    /* 201 bytes */
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxx",
};

static void storage__invalid_ids_rejected_by_every_call_before_touching_files(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  char *before, *after, buf[512];
  assert_ok(dfs_write(f->st, "keep", "k", 1, &m));
  before = snapshot(f);
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    const char *id = bad_ids[i];
    dfs_file *file;
    int64_t v;
    void *data;
    size_t len;
    assert_dfs(dfs_write(f->st, id, "x", 1, &m), DFS_EINVALID_ID);
    assert_dfs(dfs_write_if_version(f->st, id, "x", 1, &m, 0), DFS_EINVALID_ID);
    assert_dfs(dfs_read(f->st, id, &file), DFS_EINVALID_ID);
    assert_dfs(dfs_version(f->st, id, &v), DFS_EINVALID_ID);
    assert_dfs(dfs_delete(f->st, id), DFS_EINVALID_ID);
    assert_dfs(dfs_exists(f->st, id), DFS_EINVALID_ID);
    assert_dfs(dfs_template_write(f->st, id, "x", 1), DFS_EINVALID_ID);
    assert_dfs(dfs_template_read(f->st, id, &data, &len), DFS_EINVALID_ID);
    assert_dfs(dfs_blob_path(f->st, id, buf, sizeof buf), DFS_EINVALID_ID);
    assert_dfs(dfs_meta_path(f->st, id, buf, sizeof buf), DFS_EINVALID_ID);
    assert_dfs(dfs_id_validate(id), DFS_EINVALID_ID);
    assert_non_null(strstr(dfs_last_error(), "invalid id"));
  }
  assert_dfs(dfs_write(f->st, NULL, "x", 1, &m), DFS_EINVALID_ID);
  after = snapshot(f);
  assert_string_equal(before, after);
  free(before);
  free(after);
  /* The longest valid id, and non-ASCII, are accepted. */
  memset(buf, 'y', 200);
  buf[200] = '\0';
  assert_ok(dfs_write(f->st, buf, "z", 1, &m));
  read_expect(f->st, buf, "z", 1, 1);
  assert_ok(dfs_write(f->st, "\xc3\xa9t\xc3\xa9 id with spaces", "z", 1, &m));
}

static void storage__path_helpers(void **state)
{
  struct fx *f = *state;
  char buf[4096], want[4096];
  assert_ok(dfs_blob_path(f->st, "Chat_1", buf, sizeof buf));
  snprintf(want, sizeof want, "%s/files/Chat_1.json.enc", f->dir);
  assert_string_equal(buf, want);
  assert_ok(dfs_meta_path(f->st, "Chat_1", buf, sizeof buf));
  snprintf(want, sizeof want, "%s/files/Chat_1.meta.json", f->dir);
  assert_string_equal(buf, want);
  assert_ok(dfs_lock_path(f->st, "Chat_1", buf, sizeof buf));
  snprintf(want, sizeof want, "%s/files/Chat_1.json.enc.lock", f->dir);
  assert_string_equal(buf, want);
  assert_dfs(dfs_blob_path(f->st, "Chat_1", buf, 10), DFS_EINVAL);
  assert_string_equal(dfs_base_dir(f->st), f->dir);
}

static void storage__bad_arguments_are_einval(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_storage *st = (dfs_storage *)0x1;
  dfs_options o = DFS_OPTIONS_INIT;
  dfs_file *file;
  assert_dfs(dfs_storage_open(NULL, f->dir, NULL), DFS_EINVAL);
  assert_dfs(dfs_storage_open(&st, NULL, NULL), DFS_EINVAL);
  assert_null(st);
  o.version = 99;
  assert_dfs(dfs_storage_open(&st, f->dir, &o), DFS_EINVAL);
  o.version = DFS_OPTIONS_VERSION;
  o.flags = 1u << 7;
  assert_dfs(dfs_storage_open(&st, f->dir, &o), DFS_EINVAL);
  o.flags = 0;
  o.file_mode = 0100644;
  assert_dfs(dfs_storage_open(&st, f->dir, &o), DFS_EINVAL);
  assert_dfs(dfs_write(NULL, "a", "x", 1, &m), DFS_EINVAL);
  assert_dfs(dfs_write(f->st, "a", "x", 1, NULL), DFS_EINVAL);
  assert_dfs(dfs_write(f->st, "a", NULL, 5, &m), DFS_EINVAL);
  assert_dfs(dfs_read(f->st, "a", NULL), DFS_EINVAL);
  assert_dfs(dfs_read(NULL, "a", &file), DFS_EINVAL);
  assert_dfs(dfs_version(f->st, "a", NULL), DFS_EINVAL);
  assert_dfs(dfs_list(NULL, NULL), DFS_EINVAL);
  assert_dfs(dfs_list_each(f->st, NULL, NULL), DFS_EINVAL);
  m.timestamp_nsec = 2000000000;
  assert_dfs(dfs_write(f->st, "a", "x", 1, &m), DFS_EINVAL);
  assert_int_equal(dfs_exists(f->st, "a"), 0);
  assert_int_equal(tu_count_temps(f->dir), 0);
  dfs_storage_close(NULL);
  dfs_file_free(NULL);
}

static void storage__file_mode_applies(void **state)
{
  struct fx *f = *state;
  dfs_storage *st;
  dfs_options o = DFS_OPTIONS_INIT;
  dfs_meta m = tu_meta(1);
  struct stat sb;
  mode_t old = umask(022);
  assert_ok(dfs_write(f->st, "default", "x", 1, &m));
  assert_int_equal(stat(path_in(f, "files", "default.json.enc"), &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0640);
  assert_int_equal(stat(path_in(f, "files", "default.meta.json"), &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0640);
  o.file_mode = 0600;
  assert_ok(dfs_storage_open(&st, f->dir, &o));
  assert_ok(dfs_write(st, "private", "x", 1, &m));
  assert_int_equal(stat(path_in(f, "files", "private.json.enc"), &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  dfs_storage_close(st);
  umask(old);
}

/* ---- symlinks, torn pairs --------------------------------------------- */

static void storage__planted_symlinks_are_never_followed(void **state)
{
  struct fx *f = *state;
  char outside[4096];
  dfs_meta m = tu_meta(1);
  dfs_file *file;
  void *data;
  size_t len;
  char *content;
  snprintf(outside, sizeof outside, "%s/outside-secret", f->dir);
  tu_write_file(outside, "SECRET", 6);

  assert_int_equal(symlink(outside, path_in(f, "files", "sl.json.enc")), 0);
  tu_write_file(path_in(f, "files", "sl.meta.json"), "{}", 2);
  assert_dfs(dfs_read(f->st, "sl", &file), DFS_EREAD);
  assert_non_null(strstr(dfs_last_error(), "symbolic link"));
  assert_dfs(dfs_exists(f->st, "sl"), DFS_EREAD);

  assert_int_equal(symlink(outside, path_in(f, "files", "sm.meta.json")), 0);
  tu_write_file(path_in(f, "files", "sm.json.enc"), "x", 1);
  assert_dfs(dfs_read(f->st, "sm", &file), DFS_EREAD);

  assert_int_equal(symlink(outside, path_in(f, "templates", "st.json")), 0);
  assert_dfs(dfs_template_read(f->st, "st", &data, &len), DFS_EREAD);

  /* Writing over a symlink replaces the link, not its target. */
  assert_ok(dfs_write(f->st, "sl", "new", 3, &m));
  assert_ok(dfs_template_write(f->st, "st", "{}", 2));
  content = tu_read_file(outside, &len);
  assert_int_equal(len, 6);
  assert_memory_equal(content, "SECRET", 6);
  free(content);
  read_expect(f->st, "sl", "new", 3, 1);
  /* Deleting removes the link, not the target. */
  assert_ok(dfs_delete(f->st, "sm"));
  content = tu_read_file(outside, &len);
  assert_non_null(content);
  free(content);
}

static void storage__symlinked_files_dir_is_refused(void **state)
{
  struct fx *f = *state;
  char base[4096], target[4096], link[4200];
  dfs_storage *st = NULL;
  snprintf(base, sizeof base, "%s/evil", f->dir);
  snprintf(target, sizeof target, "%s/elsewhere", f->dir);
  snprintf(link, sizeof link, "%s/files", base);
  assert_int_equal(mkdir(base, 0755), 0);
  assert_int_equal(mkdir(target, 0755), 0);
  assert_int_equal(symlink(target, link), 0);
  assert_dfs(dfs_storage_open(&st, base, NULL), DFS_EREAD);
  assert_null(st);
  assert_non_null(strstr(dfs_last_error(), "files"));
}

static void storage__torn_pair_is_ecorrupt(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_file *file;
  char *meta1;
  size_t len;
  int64_t v;
  assert_ok(dfs_write(f->st, "torn", "version one", 11, &m));
  meta1 = tu_read_file(path_in(f, "files", "torn.meta.json"), &len);
  m.version = 2;
  assert_ok(dfs_write(f->st, "torn", "version two", 11, &m)); /* same size, other hash */
  tu_write_file(path_in(f, "files", "torn.meta.json"), meta1, len);
  assert_dfs(dfs_read(f->st, "torn", &file), DFS_ECORRUPT);
  assert_non_null(strstr(dfs_last_error(), "does not match"));
  assert_dfs(dfs_write_if_version(f->st, "torn", "x", 1, &m, 1), DFS_ECORRUPT);
  assert_ok(dfs_version(f->st, "torn", &v)); /* metadata only: same sizes */
  assert_int_equal(v, 1);
  /* A write repairs it. */
  m.version = 3;
  assert_ok(dfs_write(f->st, "torn", "three", 5, &m));
  read_expect(f->st, "torn", "three", 5, 3);
  free(meta1);
}

static void storage__truncated_blob_is_ecorrupt(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_file *file;
  assert_ok(dfs_write(f->st, "trunc", "0123456789", 10, &m));
  assert_int_equal(truncate(path_in(f, "files", "trunc.json.enc"), 4), 0);
  assert_dfs(dfs_read(f->st, "trunc", &file), DFS_ECORRUPT);
}

/* ---- failures leave nothing behind ------------------------------------- */

static void storage__failed_write_leaves_old_version_and_no_temps(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  unsigned long calls;
  assert_ok(dfs_write(f->st, "f", "old", 3, &m));
  m.version = 2;
  dfs_fault_count_start(DFS_FAULT_MASK_ALL);
  assert_ok(dfs_write(f->st, "f", "new!", 4, &m));
  calls = dfs_fault_count();
  assert_true(calls >= 8);
  m.version = 1;
  assert_ok(dfs_write(f->st, "f", "old", 3, &m)); /* back to v1 */
  /* Fail each call in turn with EIO: before the commit point the store is
   * as it was; after it (the directory fsync) the new version is in place. */
  for (unsigned long n = 1; n <= calls; n++) {
    int rc;
    dfs_file *file;
    m.version = 2;
    dfs_fault_arm(DFS_FAULT_MASK_ALL, n, DFS_FAULT_FAIL, EIO, 0);
    rc = dfs_write(f->st, "f", "new!", 4, &m);
    dfs_fault_disarm();
    if (tu_count_temps(f->dir) != 0) {
      /* Only acceptable after success (removing the replaced blob failed
       * after the commit: garbage that recovery removes), or as the
       * pending metadata of a blob rename that could not be undone. */
      dfs_storage *fresh;
      if (rc != 0 && !strstr(dfs_last_error(), "no RENAME_EXCHANGE"))
        fail_msg("fault at call %lu (rc %d: %s) left a temp file", n, rc, dfs_last_error());
      assert_ok(dfs_storage_open(&fresh, f->dir, NULL));
      dfs_storage_close(fresh);
      assert_int_equal(tu_count_temps(f->dir), 0);
    }
    assert_ok(dfs_read(f->st, "f", &file));
    if (rc == 0) {
      /* An injected failure on a path that tolerates it (e.g. removal of
       * the old blob after commit). */
      assert_int_equal(file->meta.version, 2);
    } else {
      assert_int_equal(rc, DFS_EWRITE);
      assert_non_null(strstr(dfs_last_error(), "Input/output error"));
      if (strstr(dfs_last_error(), "may not be durable") ||
          strstr(dfs_last_error(), "no RENAME_EXCHANGE"))
        /* After the commit point, or (a filesystem without
         * RENAME_EXCHANGE, e.g. GlusterFS) after a blob rename that cannot
         * be undone: the new pair, with its metadata pending roll-forward. */
        assert_int_equal(file->meta.version, 2);
      else
        assert_int_equal(file->meta.version, 1);
    }
    dfs_file_free(file);
    m.version = 1;
    assert_ok(dfs_write(f->st, "f", "old", 3, &m));
  }
}

static void storage__eintr_everywhere_is_retried(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_file *file;
  for (unsigned long n = 1; n <= 30; n++) {
    m.version = (int64_t)n;
    dfs_fault_arm(DFS_FAULT_MASK_ALL & ~DFS_FAULT_MASK(DFS_SYS_CLOSE) &
                      ~DFS_FAULT_MASK(DFS_SYS_MALLOC),
                  n, DFS_FAULT_FAIL, EINTR, 0);
    assert_ok(dfs_write(f->st, "intr", "data", 4, &m));
    assert_ok(dfs_read(f->st, "intr", &file));
    dfs_fault_disarm();
    assert_int_equal(file->meta.version, (int64_t)n);
    dfs_file_free(file);
  }
}

/* A filesystem without RENAME_EXCHANGE (FUSE, GlusterFS, NFS), simulated
 * by failing the exchange with EINVAL: the write falls back to a plain
 * rename, later writes do not try the exchange again, and a commit that
 * then fails leaves the new pair pending (read as new, rolled forward by
 * recovery), never a torn pair. */
static void storage__without_rename_exchange_falls_back_and_rolls_forward(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  dfs_storage *fresh;
  unsigned long renames;
  assert_ok(dfs_write(f->st, "nx", "one", 3, &m));
  m.version = 2;
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_RENAME), 1, DFS_FAULT_FAIL, EINVAL, 0);
  assert_ok(dfs_write(f->st, "nx", "two", 3, &m));
  assert_int_equal(dfs_fault_fired(), 1);
  dfs_fault_disarm();
  read_expect(f->st, "nx", "two", 3, 2);
  /* Remembered: two plain renames per write from now on, no exchange. */
  m.version = 3;
  dfs_fault_count_start(DFS_FAULT_MASK(DFS_SYS_RENAME));
  assert_ok(dfs_write(f->st, "nx", "three", 5, &m));
  renames = dfs_fault_count();
  dfs_fault_disarm();
  assert_int_equal(renames, 2);
  read_expect(f->st, "nx", "three", 5, 3);
  /* The commit (second rename) fails: the old blob is already replaced, so
   * the new metadata stays pending; readers get the new pair. */
  m.version = 4;
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_RENAME), 2, DFS_FAULT_FAIL, EIO, 1);
  assert_dfs(dfs_write(f->st, "nx", "four", 4, &m), DFS_EWRITE);
  dfs_fault_disarm();
  assert_non_null(strstr(dfs_last_error(), "no RENAME_EXCHANGE"));
  read_expect(f->st, "nx", "four", 4, 4);
  assert_int_equal(tu_count_temps(f->dir), 1);
  assert_ok(dfs_storage_open(&fresh, f->dir, NULL)); /* recovery rolls it forward */
  assert_int_equal(tu_count_temps(f->dir), 0);
  read_expect(fresh, "nx", "four", 4, 4);
  {
    char *json = tu_read_file(path_in(f, "files", "nx.meta.json"), NULL);
    assert_non_null(strstr(json, "\"version\":4"));
    free(json);
  }
  dfs_storage_close(fresh);
}

/* ---- recovery and crashes ---------------------------------------------- */

static void storage__recovery_leaves_live_temps_and_removes_dead_ones(void **state)
{
  struct fx *f = *state;
  dfs_storage *st;
  int fd;
  const char *live = "e.x.meta.json.00000000000000aa";
  const char *dead = "e.y.meta.json.00000000000000bb";
  const char *deadblob = "e.y.json.enc.00000000000000bb";
  fd = open(path_in(f, ".deltafs-tmp", live), O_CREAT | O_RDWR, 0600);
  assert_true(fd >= 0);
  assert_int_equal(flock(fd, LOCK_EX), 0);
  tu_write_file(path_in(f, ".deltafs-tmp", dead), "{\"version\":1}", 13);
  tu_write_file(path_in(f, ".deltafs-tmp", deadblob), "zz", 2);
  assert_ok(dfs_storage_open(&st, f->dir, NULL));
  assert_int_equal(access(path_in(f, ".deltafs-tmp", live), F_OK), 0);
  assert_int_equal(access(path_in(f, ".deltafs-tmp", dead), F_OK), -1);
  assert_int_equal(access(path_in(f, ".deltafs-tmp", deadblob), F_OK), -1);
  dfs_storage_close(st);
  close(fd); /* its writer "dies" */
  assert_ok(dfs_storage_open(&st, f->dir, NULL));
  assert_int_equal(tu_count_temps(f->dir), 0);
  dfs_storage_close(st);
}

/* Kill a child writer at syscall n of an overwrite (v1 "old-blob" ->
 * v2 "new-blob-longer").  Returns what the blob file held after the kill:
 * 1 old, 2 new. */
static int crash_overwrite_at(struct fx *f, unsigned long n, int *died)
{
  pid_t pid = fork();
  int status;
  assert_true(pid >= 0);
  if (pid == 0) {
    dfs_storage *st;
    dfs_meta m = tu_meta(2);
    if (dfs_storage_open(&st, f->dir, NULL) != 0)
      _exit(3);
    dfs_fault_arm(DFS_FAULT_MASK_ALL, n, DFS_FAULT_KILL, 0, 0);
    _exit(dfs_write(st, "crash", "new-blob-longer", 15, &m) == 0 ? 0 : 4);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  *died = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!*died)
    assert_int_equal(WEXITSTATUS(status), 0);
  {
    size_t len;
    char *b = tu_read_file(path_in(f, "files", "crash.json.enc"), &len);
    int which = b && len == 15 ? 2 : 1;
    free(b);
    return which;
  }
}

static void storage__crash_at_every_syscall_of_a_write_reads_old_or_new(void **state)
{
  struct fx *f = *state;
  dfs_meta m = tu_meta(1);
  int kills = 0;
  for (unsigned long n = 1;; n++) {
    int died, blob_state;
    dfs_file *file;
    dfs_storage *fresh;
    m.version = 1;
    assert_ok(dfs_write(f->st, "crash", "old-blob", 8, &m));
    blob_state = crash_overwrite_at(f, n, &died);
    if (!died)
      break; /* n is past the last syscall: the write completed */
    kills++;
    /* Before recovery (this handle opened before the crash): old or new,
     * never a mix, and the new one once the blob was swapped in. */
    assert_ok(dfs_read(f->st, "crash", &file));
    if (file->meta.version == 1) {
      assert_int_equal(file->blob_len, 8);
      assert_memory_equal(file->blob, "old-blob", 8);
    } else {
      assert_int_equal(file->meta.version, 2);
      assert_int_equal(file->blob_len, 15);
      assert_memory_equal(file->blob, "new-blob-longer", 15);
    }
    if (blob_state == 2)
      assert_int_equal(file->meta.version, 2);
    dfs_file_free(file);
    /* Recovery (at open): the same answer, and nothing left behind. */
    assert_ok(dfs_storage_open(&fresh, f->dir, NULL));
    assert_int_equal(tu_count_temps(f->dir), 0);
    assert_ok(dfs_read(fresh, "crash", &file));
    assert_int_equal(file->meta.version, blob_state == 2 ? 2 : 1);
    assert_int_equal(file->blob_len, blob_state == 2 ? 15 : 8);
    dfs_file_free(file);
    {
      int64_t v;
      assert_ok(dfs_version(fresh, "crash", &v));
      assert_int_equal(v, blob_state == 2 ? 2 : 1);
    }
    dfs_storage_close(fresh);
  }
  assert_true(kills >= 8); /* every syscall of the write was a crash point */
}

static void storage__crash_creating_a_new_entity(void **state)
{
  struct fx *f = *state;
  for (unsigned long n = 1;; n++) {
    int status;
    char id[32];
    pid_t pid;
    dfs_storage *fresh;
    dfs_file *file;
    int rc;
    snprintf(id, sizeof id, "new-%lu", n);
    pid = fork();
    if (pid == 0) {
      dfs_meta m = tu_meta(1);
      dfs_fault_arm(DFS_FAULT_MASK_ALL, n, DFS_FAULT_KILL, 0, 0);
      _exit(dfs_write(f->st, id, "fresh", 5, &m) == 0 ? 0 : 4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) {
      assert_int_equal(WEXITSTATUS(status), 0);
      read_expect(f->st, id, "fresh", 5, 1);
      break;
    }
    assert_ok(dfs_storage_open(&fresh, f->dir, NULL));
    assert_int_equal(tu_count_temps(f->dir), 0);
    rc = dfs_read(fresh, id, &file);
    if (rc == 0) {
      assert_int_equal(file->meta.version, 1);
      assert_memory_equal(file->blob, "fresh", 5);
      assert_int_equal(dfs_exists(fresh, id), 1);
      dfs_file_free(file);
    } else {
      assert_int_equal(rc, DFS_ENOTFOUND);
      assert_int_equal(dfs_exists(fresh, id), 0);
    }
    dfs_storage_close(fresh);
  }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(storage__open_creates_layout),
      T(storage__write_then_read_back_empty_binary_and_10mib),
      T(storage__overwrite_replaces_pair),
      T(storage__every_meta_field_round_trips),
      T(storage__null_meta_strings_written_as_empty),
      T(storage__go_written_files_read),
      T(storage__exists_needs_both_files),
      T(storage__delete_removes_pair_and_missing_is_ok),
      T(storage__list_ignores_foreign_temp_and_lock_files),
      T(storage__list_each_stops_on_nonzero),
      T(storage__list_empty_store),
      T(storage__list_many),
      T(storage__two_handles_see_each_other),
      T(storage__version_agrees_with_read_through_rapid_overwrites),
      T(storage__version_cache_sees_replacement_after_settling),
      T(storage__write_if_version_conflict_and_success),
      T(storage__templates_write_read_list),
      T(storage__invalid_ids_rejected_by_every_call_before_touching_files),
      T(storage__path_helpers),
      T(storage__bad_arguments_are_einval),
      T(storage__file_mode_applies),
      T(storage__planted_symlinks_are_never_followed),
      T(storage__symlinked_files_dir_is_refused),
      T(storage__torn_pair_is_ecorrupt),
      T(storage__truncated_blob_is_ecorrupt),
      T(storage__failed_write_leaves_old_version_and_no_temps),
      T(storage__eintr_everywhere_is_retried),
      T(storage__without_rename_exchange_falls_back_and_rolls_forward),
      T(storage__recovery_leaves_live_temps_and_removes_dead_ones),
      T(storage__crash_at_every_syscall_of_a_write_reads_old_or_new),
      T(storage__crash_creating_a_new_entity),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
