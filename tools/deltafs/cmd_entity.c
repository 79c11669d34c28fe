/*
 * cmd_entity.c — init, put, get, meta, ls, exists, rm.
 *
 * Writers follow the DeltaDatabase worker protocol: exclusive entity lock →
 * read the stored version → write version+1 → release.  Readers (get) hold
 * the shared lock while reading.  Sealing happens before the lock is taken
 * and decryption after it is released, so no lock is held across crypto or
 * standard input.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cli.h"

/* dfs_list promises sorted ids; sort again so the output order never
 * depends on the library version (bytewise, like LC_ALL=C sort). */
static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Take id's lock through a new manager of st: wait forever (timeout < 0)
 * or timeout_ms.  Under a parent `deltafs lock` of the same id and store
 * (cli_parent_holds) nothing is taken and *out is NULL.  Prints and
 * returns an exit status on failure. */
static int take_lock(const char *cmd, dfs_storage *st, const char *id, dfs_lock_type type,
                     long long timeout_ms, dfs_lockmgr **out)
{
  char what[300];
  int rc, parent = cli_parent_holds(st, id, type);

  *out = NULL;
  if (parent > 0)
    return 0; /* a parent `deltafs lock` holds it for us: *out stays NULL */
  if (parent < 0) {
    cli_errorf(cmd, "cannot lock %s: the enclosing 'deltafs lock --shared' holds it shared "
               "and an exclusive lock would deadlock", id);
    return CLI_EXIT_BUSY;
  }
  rc = dfs_lockmgr_new(out, st);
  if (rc < 0)
    return cli_fail_rc(cmd, rc, "cannot create a lock manager");
  if (timeout_ms < 0)
    rc = dfs_lockmgr_acquire(*out, id, type);
  else
    rc = dfs_lockmgr_acquire_timeout(*out, id, type, (int)timeout_ms);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot lock %s", id);
    dfs_lockmgr_free(*out);
    *out = NULL;
    rc = cli_fail_rc(cmd, rc, what);
    return rc == CLI_EXIT_NO ? CLI_EXIT_FAIL : rc;
  }
  return 0;
}

/* Release and free; a failed release is reported (the kernel drops the
 * lock at exit anyway) and turns success into CLI_EXIT_FAIL. */
static int drop_lock(const char *cmd, dfs_lockmgr *m, const char *id, int status)
{
  int rc;
  if (!m)
    return status;
  rc = dfs_lockmgr_release(m, id);
  dfs_lockmgr_free(m);
  if (rc < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot unlock %s", id);
    cli_fail_rc(cmd, rc, what);
    return status ? status : CLI_EXIT_FAIL;
  }
  return status;
}

/* Parse a --timeout value (ms, >= 0). */
static int parse_timeout(const char *cmd, const char *s, long long *out)
{
  if (cli_parse_i64(s, 0, 2147483647LL, out) < 0)
    return cli_usage_error(cmd, "--timeout wants milliseconds >= 0, not '%s'", s);
  return 0;
}

/* ---- init -------------------------------------------------------------- */

static const char init_help[] =
    "usage: deltafs [--root DIR] init\n"
    "\n"
    "Create the store layout (files/, templates/) at the root if needed and\n"
    "print its absolute path.  Every other command creates it too.\n";

int cmd_init(int argc, char **argv)
{
  static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  dfs_storage *st;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, init_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    return cli_option_error("init", opt, argv);
  }
  if (optind != argc)
    return cli_usage_error("init", "unexpected argument '%s'", argv[optind]);
  if ((rc = cli_open_store("init", &st)) != 0)
    return rc;
  printf("%s\n", dfs_base_dir(st));
  dfs_storage_close(st);
  return CLI_EXIT_OK;
}

/* ---- put --------------------------------------------------------------- */

static const char put_help[] =
    "usage: deltafs [--root DIR] put [OPTIONS] ID [FILE]\n"
    "\n"
    "Store FILE (or standard input, also as '-') as entity ID.  Under the\n"
    "entity's exclusive lock, read the stored version (0 if none) and write\n"
    "version+1, with the current time and the metadata below.\n"
    "\n"
    "  -k, --key KEYFILE     seal the blob with AES-256-GCM under this key\n"
    "                        (64 hex digits); fills alg, iv and tag\n"
    "      --key-id K        key_id metadata (which key sealed it)\n"
    "      --schema-id S     schema_id metadata\n"
    "      --database D      database metadata\n"
    "      --entity-key K    entity_key metadata\n"
    "      --writer-id W     writer_id metadata (default deltafs-cli@HOST:PID)\n"
    "      --if-version N    write only if the stored version is N (0: only if\n"
    "                        the entity does not exist); else exit 5\n"
    "      --timeout MS      wait at most MS milliseconds for the lock (exit 3)\n"
    "  -h, --help            this help\n";

int cmd_put(int argc, char **argv)
{
  enum { O_KEYID = 1000, O_SCHEMA, O_DB, O_EKEY, O_WRITER, O_IFV, O_TIMEOUT };
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"key", 1, NULL, 'k'},
      {"key-id", 1, NULL, O_KEYID},
      {"schema-id", 1, NULL, O_SCHEMA},
      {"database", 1, NULL, O_DB},
      {"entity-key", 1, NULL, O_EKEY},
      {"writer-id", 1, NULL, O_WRITER},
      {"if-version", 1, NULL, O_IFV},
      {"timeout", 1, NULL, O_TIMEOUT},
      {NULL, 0, NULL, 0},
  };
  const char *keyfile = NULL, *id, *file;
  char writer[512];
  long long if_version = -1, timeout = -1;
  dfs_meta meta;
  dfs_sealed sealed;
  dfs_storage *st = NULL;
  dfs_lockmgr *m = NULL;
  char *data = NULL;
  size_t len = 0;
  const void *blob;
  size_t blob_len;
  int64_t stored = 0;
  struct timespec now;
  int opt, rc, status;

  memset(&meta, 0, sizeof meta);
  memset(&sealed, 0, sizeof sealed);
  cli_default_writer_id(writer, sizeof writer);
  meta.writer_id = writer;
  while ((opt = getopt_long(argc, argv, ":k:", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, put_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case 'k': keyfile = optarg; break;
    case O_KEYID: meta.key_id = optarg; break;
    case O_SCHEMA: meta.schema_id = optarg; break;
    case O_DB: meta.database = optarg; break;
    case O_EKEY: meta.entity_key = optarg; break;
    case O_WRITER: meta.writer_id = optarg; break;
    case O_IFV:
      if (cli_parse_i64(optarg, 0, INT64_MAX - 1, &if_version) < 0)
        return cli_usage_error("put", "--if-version wants a version >= 0, not '%s'", optarg);
      break;
    case O_TIMEOUT:
      if ((rc = parse_timeout("put", optarg, &timeout)) != 0)
        return rc;
      break;
    default: return cli_option_error("put", opt, argv);
    }
  }
  if (optind >= argc)
    return cli_usage_error("put", "missing ID");
  if (argc - optind > 2)
    return cli_usage_error("put", "unexpected argument '%s'", argv[optind + 2]);
  id = argv[optind];
  file = optind + 1 < argc ? argv[optind + 1] : NULL;
  if ((rc = cli_check_id("put", id)) != 0)
    return rc;

  /* Everything slow or failing-prone happens before the lock. */
  if ((rc = cli_read_input("put", file, &data, &len)) != 0)
    return rc;
  blob = data;
  blob_len = len;
  if (keyfile) {
    dfs_key key;
    if ((status = cli_load_key("put", keyfile, &key)) != 0)
      goto out;
    rc = dfs_seal(&key, data, len, &sealed);
    dfs_key_wipe(&key);
    if (rc < 0) {
      status = cli_fail_rc("put", rc, "cannot seal");
      goto out;
    }
    dfs_sealed_to_meta(&sealed, &meta);
    blob = sealed.blob;
    blob_len = sealed.blob_len;
  }

  if ((status = cli_open_store("put", &st)) != 0)
    goto out;
  if ((status = take_lock("put", st, id, DFS_LOCK_EXCLUSIVE, timeout, &m)) != 0)
    goto out;
  rc = dfs_version(st, id, &stored);
  if (rc == DFS_ENOTFOUND) {
    stored = 0;
  } else if (rc < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot read the version of %s", id);
    status = cli_fail_rc("put", rc, what);
    goto out;
  }
  if (if_version >= 0 && stored != if_version) {
    cli_errorf("put", "version conflict on %s: stored version is %lld, --if-version %lld", id,
               (long long)stored, if_version);
    status = CLI_EXIT_CONFLICT;
    goto out;
  }
  meta.version = stored + 1;
  clock_gettime(CLOCK_REALTIME, &now);
  meta.timestamp_sec = (int64_t)now.tv_sec;
  meta.timestamp_nsec = (int32_t)now.tv_nsec;
  if (if_version >= 0)
    rc = dfs_write_if_version(st, id, blob, blob_len, &meta, if_version);
  else
    rc = dfs_write(st, id, blob, blob_len, &meta);
  if (rc < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot write %s", id);
    status = cli_fail_rc("put", rc, what);
    if (status == CLI_EXIT_NO)
      status = CLI_EXIT_FAIL;
    goto out;
  }
  status = CLI_EXIT_OK;
out:
  status = drop_lock("put", m, id, status);
  dfs_storage_close(st);
  dfs_sealed_free(&sealed);
  if (data) {
    OPENSSL_cleanse(data, len); /* it may be plaintext */
    free(data);
  }
  return status;
}

/* ---- get --------------------------------------------------------------- */

static const char get_help[] =
    "usage: deltafs [--root DIR] get [OPTIONS] ID\n"
    "\n"
    "Write entity ID's blob to standard output (binary-safe) or FILE, read\n"
    "under the entity's shared lock.  Exit 1 if there is no such entity.\n"
    "\n"
    "  -o, --output FILE     write to FILE instead (created 0600 when decrypted)\n"
    "  -k, --key KEYFILE     decrypt (AES-256-GCM); exit 4 if the blob does not\n"
    "                        authenticate (wrong key, tampered, not sealed)\n"
    "      --timeout MS      wait at most MS milliseconds for the lock (exit 3)\n"
    "  -h, --help            this help\n";

int cmd_get(int argc, char **argv)
{
  enum { O_TIMEOUT = 1000 };
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"output", 1, NULL, 'o'},
      {"key", 1, NULL, 'k'},
      {"timeout", 1, NULL, O_TIMEOUT},
      {NULL, 0, NULL, 0},
  };
  const char *keyfile = NULL, *output = NULL, *id;
  long long timeout = -1;
  dfs_storage *st = NULL;
  dfs_lockmgr *m = NULL;
  dfs_file *f = NULL;
  dfs_key key;
  void *pt = NULL;
  size_t pt_len = 0;
  int opt, rc, status, have_key = 0;
  char what[300];

  while ((opt = getopt_long(argc, argv, ":o:k:", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, get_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case 'o': output = optarg; break;
    case 'k': keyfile = optarg; break;
    case O_TIMEOUT:
      if ((rc = parse_timeout("get", optarg, &timeout)) != 0)
        return rc;
      break;
    default: return cli_option_error("get", opt, argv);
    }
  }
  if (optind >= argc)
    return cli_usage_error("get", "missing ID");
  if (argc - optind > 1)
    return cli_usage_error("get", "unexpected argument '%s'", argv[optind + 1]);
  id = argv[optind];
  if ((rc = cli_check_id("get", id)) != 0)
    return rc;
  if (keyfile) {
    if ((rc = cli_load_key("get", keyfile, &key)) != 0)
      return rc;
    have_key = 1;
  }
  if ((status = cli_open_store("get", &st)) != 0)
    goto out;
  /* Do not create a lock file for an id that is not there. */
  rc = dfs_exists(st, id);
  if (rc == 0) {
    cli_errorf("get", "%s: not found", id);
    status = CLI_EXIT_NO;
    goto out;
  }
  if ((status = take_lock("get", st, id, DFS_LOCK_SHARED, timeout, &m)) != 0)
    goto out;
  rc = dfs_read(st, id, &f);
  status = drop_lock("get", m, id, 0);
  m = NULL;
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot read %s", id);
    status = cli_fail_rc("get", rc, what);
    goto out;
  }
  if (status)
    goto out;
  if (have_key) {
    rc = dfs_unseal(&key, f->blob, f->blob_len, &f->meta, &pt, &pt_len);
    if (rc < 0) {
      snprintf(what, sizeof what, "cannot decrypt %s", id);
      status = cli_fail_rc("get", rc, what);
      goto out;
    }
    status = cli_write_output("get", output, pt, pt_len, 0600);
  } else {
    status = cli_write_output("get", output, f->blob, f->blob_len, 0644);
  }
out:
  status = drop_lock("get", m, id, status);
  dfs_unseal_free(pt, pt_len);
  dfs_file_free(f);
  dfs_storage_close(st);
  if (have_key)
    dfs_key_wipe(&key);
  return status;
}

/* ---- meta, ls, exists, rm ------------------------------------------------ */

static const char meta_help[] =
    "usage: deltafs [--root DIR] meta ID\n"
    "\n"
    "Print entity ID's metadata as a JSON object with DeltaDatabase's keys:\n"
    "key_id alg iv tag schema_id version writer_id timestamp database entity_key.\n"
    "Exit 1 if there is no such entity.\n";

int cmd_meta(int argc, char **argv)
{
  static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  dfs_storage *st;
  dfs_file *f;
  int opt, rc;
  char what[300];

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, meta_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    return cli_option_error("meta", opt, argv);
  }
  if (optind >= argc)
    return cli_usage_error("meta", "missing ID");
  if (argc - optind > 1)
    return cli_usage_error("meta", "unexpected argument '%s'", argv[optind + 1]);
  if ((rc = cli_check_id("meta", argv[optind])) != 0)
    return rc;
  if ((rc = cli_open_store("meta", &st)) != 0)
    return rc;
  rc = dfs_read(st, argv[optind], &f);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot read %s", argv[optind]);
    rc = cli_fail_rc("meta", rc, what);
    dfs_storage_close(st);
    return rc;
  }
  cli_print_meta_json(&f->meta, "");
  dfs_file_free(f);
  dfs_storage_close(st);
  return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static const char ls_help[] =
    "usage: deltafs [--root DIR] ls\n"
    "\n"
    "List the entity ids of the store, one per line, sorted bytewise.\n";

int cmd_ls(int argc, char **argv)
{
  static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  dfs_storage *st;
  dfs_id_list *l;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, ls_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    return cli_option_error("ls", opt, argv);
  }
  if (optind != argc)
    return cli_usage_error("ls", "unexpected argument '%s'", argv[optind]);
  if ((rc = cli_open_store("ls", &st)) != 0)
    return rc;
  rc = dfs_list(st, &l);
  if (rc < 0) {
    rc = cli_fail_rc("ls", rc, "cannot list the store");
    dfs_storage_close(st);
    return rc;
  }
  qsort(l->ids, l->count, sizeof l->ids[0], cmp_str);
  for (size_t i = 0; i < l->count; i++)
    printf("%s\n", l->ids[i]);
  dfs_list_free(l);
  dfs_storage_close(st);
  if (fflush(stdout) != 0) {
    cli_errorf("ls", "cannot write standard output");
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

static const char exists_help[] =
    "usage: deltafs [--root DIR] exists ID\n"
    "\n"
    "Exit 0 if entity ID exists (blob and metadata), 1 if not.  Prints nothing.\n";

int cmd_exists(int argc, char **argv)
{
  static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  dfs_storage *st;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, exists_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    return cli_option_error("exists", opt, argv);
  }
  if (optind >= argc)
    return cli_usage_error("exists", "missing ID");
  if (argc - optind > 1)
    return cli_usage_error("exists", "unexpected argument '%s'", argv[optind + 1]);
  if ((rc = cli_check_id("exists", argv[optind])) != 0)
    return rc;
  if ((rc = cli_open_store("exists", &st)) != 0)
    return rc;
  rc = dfs_exists(st, argv[optind]);
  dfs_storage_close(st);
  if (rc < 0) {
    rc = cli_fail_rc("exists", rc, argv[optind]);
    return rc == CLI_EXIT_NO ? CLI_EXIT_FAIL : rc;
  }
  return rc ? CLI_EXIT_OK : CLI_EXIT_NO;
}

static const char rm_help[] =
    "usage: deltafs [--root DIR] rm [OPTIONS] ID\n"
    "\n"
    "Remove entity ID (metadata, blob and lock file) under its exclusive lock.\n"
    "Exit 1 if there is no such entity, unless --force.\n"
    "\n"
    "  -f, --force           a missing entity is not an error\n"
    "      --timeout MS      wait at most MS milliseconds for the lock (exit 3)\n"
    "  -h, --help            this help\n";

int cmd_rm(int argc, char **argv)
{
  enum { O_TIMEOUT = 1000 };
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"force", 0, NULL, 'f'},
      {"timeout", 1, NULL, O_TIMEOUT},
      {NULL, 0, NULL, 0},
  };
  dfs_storage *st;
  dfs_lockmgr *m = NULL;
  const char *id;
  long long timeout = -1;
  int opt, rc, force = 0, status;
  char what[300];

  while ((opt = getopt_long(argc, argv, ":f", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, rm_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case 'f': force = 1; break;
    case O_TIMEOUT:
      if ((rc = parse_timeout("rm", optarg, &timeout)) != 0)
        return rc;
      break;
    default: return cli_option_error("rm", opt, argv);
    }
  }
  if (optind >= argc)
    return cli_usage_error("rm", "missing ID");
  if (argc - optind > 1)
    return cli_usage_error("rm", "unexpected argument '%s'", argv[optind + 1]);
  id = argv[optind];
  if ((rc = cli_check_id("rm", id)) != 0)
    return rc;
  if ((rc = cli_open_store("rm", &st)) != 0)
    return rc;
  rc = dfs_exists(st, id);
  if (rc == 0) {
    dfs_storage_close(st);
    if (force)
      return CLI_EXIT_OK;
    cli_errorf("rm", "%s: not found", id);
    return CLI_EXIT_NO;
  }
  if ((status = take_lock("rm", st, id, DFS_LOCK_EXCLUSIVE, timeout, &m)) != 0) {
    dfs_storage_close(st);
    return status;
  }
  rc = dfs_delete(st, id);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot remove %s", id);
    status = cli_fail_rc("rm", rc, what);
  }
  status = drop_lock("rm", m, id, status);
  dfs_storage_close(st);
  return status;
}
