/*
 * cmd_demo.c — `deltafs demo`: a guided tour on a scratch store.
 *
 * It does, with the library, what a DeltaDatabase deployment does: make a
 * key, store sealed JSON entities, show what lands on disk, read them
 * back, and let several worker processes update one entity concurrently
 * under its exclusive lock.  Every claim it prints is checked; any failed
 * check makes it exit non-zero.  The equivalent CLI commands are shown as
 * `$ deltafs ...` lines so the tour doubles as a tutorial.
 *
 * The demo only touches its own ids (demo-*) and its key file (demo.key in
 * the store root); it removes what an earlier run left of them first, so
 * the counter's expected final value is exact.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "progress.h"

static const char demo_help[] =
    "usage: deltafs [--root DIR] demo [--workers N] [--increments N]\n"
    "\n"
    "A guided tour on a scratch store (default ./deltafs-data): generate a key,\n"
    "store sealed JSON entities, show the ciphertext and metadata on disk, read\n"
    "them back, then run N worker processes that each increment a shared\n"
    "counter entity under its exclusive lock, and check the exact final count.\n"
    "It only touches ids starting with 'demo-' and the key file demo.key.\n"
    "Exit 0 if every check passed.\n"
    "\n"
    "  --workers N       worker processes (default 4, 1..64)\n"
    "  --increments N    increments per worker (default 25, 1..100000)\n"
    "  -h, --help        this help\n";

#define COUNTER_ID "demo-counter"

static int color;    /* stdout is a terminal */
static int failures; /* checks that did not hold */
static int checks;   /* checks made */

static const char *bold(void) { return color ? "\033[1m" : ""; }
static const char *dim(void) { return color ? "\033[2m" : ""; }
static const char *green(void) { return color ? "\033[32m" : ""; }
static const char *red(void) { return color ? "\033[31m" : ""; }
static const char *reset(void) { return color ? "\033[0m" : ""; }

static void step(int n, int total, const char *title)
{
  printf("\n%s[%d/%d] %s%s\n", bold(), n, total, title, reset());
}

/* Show the equivalent command line. */
static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void shell(const char *fmt, ...)
{
  va_list ap;
  printf("  %s$ deltafs ", dim());
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("%s\n", reset());
}

/* Record and print a check. */
static void check(int ok, const char *what)
{
  checks++;
  if (ok)
    printf("  %s[ok]%s %s\n", green(), reset(), what);
  else {
    printf("  %s[FAILED]%s %s\n", red(), reset(), what);
    failures++;
  }
}

/* Print a library failure as the CLI's one error line and count it. */
static int lib_fail(int rc, const char *what)
{
  fflush(stdout);
  cli_fail_rc("demo", rc, what);
  failures++;
  return rc;
}

static void hexdump(const unsigned char *p, size_t len, size_t max)
{
  size_t n = len < max ? len : max;
  for (size_t off = 0; off < n; off += 16) {
    printf("    %s%04zx%s  ", dim(), off, reset());
    for (size_t i = 0; i < 16; i++) {
      if (off + i < n)
        printf("%02x ", p[off + i]);
      else
        printf("   ");
    }
    printf(" |");
    for (size_t i = 0; i < 16 && off + i < n; i++)
      putchar(p[off + i] >= 0x20 && p[off + i] < 0x7f ? p[off + i] : '.');
    printf("|\n");
  }
  if (len > n)
    printf("    %s... %zu more bytes%s\n", dim(), len - n, reset());
}

static dfs_meta demo_meta(const char *writer, const char *entity_key)
{
  dfs_meta m;
  struct timespec now;
  memset(&m, 0, sizeof m);
  clock_gettime(CLOCK_REALTIME, &now);
  m.key_id = "demo-key";
  m.schema_id = "chat.v1";
  m.writer_id = writer;
  m.database = "demo";
  m.entity_key = entity_key;
  m.timestamp_sec = (int64_t)now.tv_sec;
  m.timestamp_nsec = (int32_t)now.tv_nsec;
  return m;
}

/* Seal `json` and write it as `id` with version+1, under the exclusive
 * lock (the worker protocol).  *version_out gets the new version. */
static int put_sealed(dfs_storage *st, dfs_lockmgr *m, const dfs_key *key, const char *id,
                      const char *json, const char *writer, int64_t *version_out)
{
  dfs_sealed s;
  dfs_meta meta = demo_meta(writer, id);
  int64_t v = 0;
  int rc;

  rc = dfs_seal(key, json, strlen(json), &s);
  if (rc < 0)
    return lib_fail(rc, "cannot seal");
  dfs_sealed_to_meta(&s, &meta);
  rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_EXCLUSIVE);
  if (rc < 0) {
    dfs_sealed_free(&s);
    return lib_fail(rc, "cannot lock");
  }
  rc = dfs_version(st, id, &v);
  if (rc == DFS_ENOTFOUND)
    rc = 0, v = 0;
  if (rc == 0) {
    meta.version = v + 1;
    rc = dfs_write(st, id, s.blob, s.blob_len, &meta);
  }
  dfs_lockmgr_release(m, id);
  dfs_sealed_free(&s);
  if (rc < 0)
    return lib_fail(rc, "cannot write");
  *version_out = v + 1;
  return 0;
}

/* Read and open `id`; *pt is freed with dfs_unseal_free. */
static int get_sealed(dfs_storage *st, dfs_lockmgr *m, const dfs_key *key, const char *id,
                      char **pt, size_t *pt_len, int64_t *version)
{
  dfs_file *f = NULL;
  void *p;
  int rc = dfs_lockmgr_acquire(m, id, DFS_LOCK_SHARED);
  if (rc < 0)
    return rc;
  rc = dfs_read(st, id, &f);
  dfs_lockmgr_release(m, id);
  if (rc < 0)
    return rc;
  rc = dfs_unseal(key, f->blob, f->blob_len, &f->meta, &p, pt_len);
  if (rc == 0) {
    *pt = p;
    if (version)
      *version = f->meta.version;
  }
  dfs_file_free(f);
  return rc;
}

/* ---- the concurrent workers ---------------------------------------------- */

/* One worker process (exec'd by run_workers): `n` read-modify-write
 * increments of the counter, with its own store handle and manager.
 * Writes how often it found the lock taken to report_fd; returns the exit
 * status: 0, or 1 after printing why. */
static int worker(const dfs_key *key, int index, int n, int report_fd)
{
  dfs_storage *st;
  dfs_lockmgr *m;
  char writer[64], json[64];
  int waited = 0, rc;

  snprintf(writer, sizeof writer, "demo-worker-%d:%ld", index, (long)getpid());
  if ((rc = dfs_storage_open(&st, cli_root(), NULL)) < 0)
    return lib_fail(rc, "worker: cannot open the store"), 1;
  if ((rc = dfs_lockmgr_new(&m, st)) < 0)
    return lib_fail(rc, "worker: cannot create a lock manager"), 1;
  for (int i = 0; i < n; i++) {
    dfs_file *f = NULL;
    dfs_sealed s;
    dfs_meta meta;
    void *pt;
    size_t pt_len;
    long long count = 0;
    int64_t version = 0;

    /* Try first, only to count how often another worker was in the way. */
    rc = dfs_lockmgr_try_acquire(m, COUNTER_ID, DFS_LOCK_EXCLUSIVE);
    if (rc == DFS_EBUSY) {
      waited++;
      rc = dfs_lockmgr_acquire(m, COUNTER_ID, DFS_LOCK_EXCLUSIVE);
    }
    if (rc < 0)
      return lib_fail(rc, "worker: cannot lock the counter"), 1;
    rc = dfs_read(st, COUNTER_ID, &f);
    if (rc == 0) {
      rc = dfs_unseal(key, f->blob, f->blob_len, &f->meta, &pt, &pt_len);
      if (rc == 0) {
        int parsed = sscanf(pt, "{\"count\":%lld}", &count);
        dfs_unseal_free(pt, pt_len);
        if (parsed != 1) {
          cli_errorf("demo", "worker: the counter is not {\"count\":N}");
          return 1;
        }
      }
      version = f->meta.version;
      dfs_file_free(f);
    } else if (rc == DFS_ENOTFOUND) {
      rc = 0; /* the first increment creates it */
    }
    if (rc < 0)
      return lib_fail(rc, "worker: cannot read the counter"), 1;
    snprintf(json, sizeof json, "{\"count\":%lld}", count + 1);
    if ((rc = dfs_seal(key, json, strlen(json), &s)) < 0)
      return lib_fail(rc, "worker: cannot seal"), 1;
    meta = demo_meta(writer, "counter");
    dfs_sealed_to_meta(&s, &meta);
    meta.version = version + 1;
    /* if-version is a second guard: were the lock not exclusive, racing
     * workers would fail here with a conflict instead of losing updates. */
    rc = dfs_write_if_version(st, COUNTER_ID, s.blob, s.blob_len, &meta, version);
    dfs_sealed_free(&s);
    if (rc < 0)
      return lib_fail(rc, "worker: cannot write the counter"), 1;
    if ((rc = dfs_lockmgr_release(m, COUNTER_ID)) < 0)
      return lib_fail(rc, "worker: cannot unlock the counter"), 1;
  }
  dfs_lockmgr_free(m);
  dfs_storage_close(st);
  /* one short line: atomic on a pipe (< PIPE_BUF) */
  {
    char line[32];
    int len = snprintf(line, sizeof line, "waits %d\n", waited);
    if (write(report_fd, line, (size_t)len) != len)
      return 1;
  }
  return 0;
}

struct run_result {
  int ok;         /* every worker exited 0                                   */
  double seconds; /* wall time of the whole run                              */
  long waits;     /* how often a worker found the lock taken and had to wait */
};

/* Start the workers as fresh processes: fork, then exec this same binary
 * as `deltafs --root ROOT demo --worker-index I --increments N --key-file
 * KEY`, its stdout a pipe for the "waits N" line.  Exec'd workers share
 * nothing with this process but the store and the key file, exactly like
 * DeltaDatabase workers on different hosts. */
static struct run_result run_workers(dfs_storage *st, const char *keypath, int nworkers, int n)
{
  struct run_result res = {1, 0, 0};
  int live = 0, report[2];
  char self[4096], nbuf[32], buf[4096];
  size_t got = 0;
  ssize_t len;
  cli_progress prog;
  double t0 = cli_now();

  len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    cli_errorf("demo", "cannot find this program (/proc/self/exe): %s", strerror(errno));
    res.ok = 0;
    return res;
  }
  self[len] = '\0';
  if (pipe2(report, O_CLOEXEC) < 0) {
    cli_errorf("demo", "cannot create a pipe: %s", strerror(errno));
    res.ok = 0;
    return res;
  }
  snprintf(nbuf, sizeof nbuf, "%d", n);
  fflush(NULL);
  for (int w = 0; w < nworkers; w++) {
    pid_t pid = fork();
    if (pid < 0) {
      cli_errorf("demo", "cannot fork a worker: %s", strerror(errno));
      res.ok = 0;
      break;
    }
    if (pid == 0) {
      char ibuf[32];
      char *args[] = {self, "--root", (char *)dfs_base_dir(st), "demo", "--worker-index", ibuf,
                      "--increments", nbuf, "--key-file", (char *)keypath, NULL};
      snprintf(ibuf, sizeof ibuf, "%d", w + 1);
      if (dup2(report[1], STDOUT_FILENO) < 0)
        _exit(126);
      execv(self, args);
      _exit(127);
    }
    live++;
  }
  close(report[1]);
  cli_progress_start(&prog, "  increments", (uint64_t)nworkers * (uint64_t)n);
  while (live > 0) {
    int ws;
    int64_t v;
    pid_t pid = waitpid(-1, &ws, WNOHANG);
    if (pid < 0) {
      if (errno == EINTR)
        continue;
      res.ok = 0;
      break;
    }
    if (pid > 0) {
      live--;
      if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        res.ok = 0;
      continue;
    }
    if (dfs_version(st, COUNTER_ID, &v) == 0)
      cli_progress_update(&prog, (uint64_t)v);
    usleep(10000);
  }
  cli_progress_done(&prog);
  res.seconds = cli_now() - t0;
  while (got < sizeof buf - 1 && (len = read(report[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)len;
  buf[got] = '\0';
  close(report[0]);
  {
    int reports = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
      int k;
      if (sscanf(line, "waits %d", &k) == 1) {
        res.waits += k;
        reports++;
      }
    }
    if (reports != nworkers)
      res.ok = 0;
  }
  return res;
}

/* ---- the tour ------------------------------------------------------------ */

struct sample {
  const char *id, *file, *json, *needle;
};

static const struct sample samples[] = {
    {"demo-chat-1", "chat.json",
     "{\"title\":\"Launch plan\",\"messages\":[\"ship it\",\"tests first\"]}", "Launch plan"},
    {"demo-user-42", "user.json",
     "{\"name\":\"Ada\",\"email\":\"ada@example.com\",\"roles\":[\"admin\"]}", "ada@example.com"},
    {"demo-settings", "settings.json", "{\"theme\":\"dark\",\"retention_days\":30}", "dark"},
};
#define N_SAMPLES (sizeof samples / sizeof samples[0])

/* Read a whole file by path (for showing what is on disk); NULL if not. */
static char *slurp(const char *path, size_t *len)
{
  char *buf = NULL;
  size_t cap = 0, n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  for (;;) {
    ssize_t r;
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap ? cap * 2 : 4096);
      if (!nb)
        break;
      buf = nb;
      cap = cap ? cap * 2 : 4096;
    }
    r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0) {
        close(fd);
        buf[n] = '\0';
        *len = n;
        return buf;
      }
      break;
    }
    n += (size_t)r;
  }
  close(fd);
  free(buf);
  return NULL;
}

static int write_key_file(const char *path, const dfs_key *key)
{
  char hex[DFS_KEY_HEX_LEN + 2];
  int fd, ok;
  dfs_key_to_hex(key, hex, sizeof hex);
  hex[DFS_KEY_HEX_LEN] = '\n';
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  ok = fd >= 0 && fchmod(fd, 0600) == 0 &&
       write(fd, hex, DFS_KEY_HEX_LEN + 1) == DFS_KEY_HEX_LEN + 1;
  if (fd >= 0 && close(fd) < 0)
    ok = 0;
  OPENSSL_cleanse(hex, sizeof hex);
  if (!ok)
    cli_errorf("demo", "cannot write key file %s: %s", path, strerror(errno));
  return ok ? 0 : -1;
}

static int cmp_ids(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int remove_leftovers(dfs_storage *st)
{
  dfs_id_list *l;
  int removed = 0, rc = dfs_list(st, &l);
  if (rc < 0)
    return lib_fail(rc, "cannot list the store");
  for (size_t i = 0; i < l->count; i++) {
    if (strncmp(l->ids[i], "demo-", 5) != 0)
      continue;
    if ((rc = dfs_delete(st, l->ids[i])) < 0) {
      dfs_list_free(l);
      return lib_fail(rc, "cannot remove an earlier demo's entity");
    }
    removed++;
  }
  dfs_list_free(l);
  if (removed)
    printf("  %s(removed %d demo-* entities left by an earlier run)%s\n", dim(), removed,
           reset());
  return 0;
}

int cmd_demo(int argc, char **argv)
{
  enum { O_WORKERS = 1000, O_INCR, O_WINDEX, O_KEYFILE };
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"workers", 1, NULL, O_WORKERS},
      {"increments", 1, NULL, O_INCR},
      /* internal: how run_workers starts one worker process */
      {"worker-index", 1, NULL, O_WINDEX},
      {"key-file", 1, NULL, O_KEYFILE},
      {NULL, 0, NULL, 0},
  };
  long long nworkers = 4, nincr = 25, windex = 0;
  const char *worker_key = NULL;
  dfs_storage *st = NULL;
  dfs_lockmgr *m = NULL;
  dfs_key key, other;
  char keypath[4200], path[4200], hexkey[DFS_KEY_HEX_LEN + 1];
  int opt, rc, loose;
  const int nsteps = 6;

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, demo_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case O_WORKERS:
      if (cli_parse_i64(optarg, 1, 64, &nworkers) < 0)
        return cli_usage_error("demo", "--workers wants 1..64, not '%s'", optarg);
      break;
    case O_INCR:
      if (cli_parse_i64(optarg, 1, 100000, &nincr) < 0)
        return cli_usage_error("demo", "--increments wants 1..100000, not '%s'", optarg);
      break;
    case O_WINDEX:
      if (cli_parse_i64(optarg, 1, 64, &windex) < 0)
        return cli_usage_error("demo", "--worker-index wants 1..64");
      break;
    case O_KEYFILE: worker_key = optarg; break;
    default: return cli_option_error("demo", opt, argv);
    }
  }
  if (optind != argc)
    return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
  if (windex) { /* one worker process of step 5 */
    if (!worker_key)
      return cli_usage_error("demo", "--worker-index needs --key-file");
    if ((rc = cli_load_key("demo", worker_key, &key)) != 0)
      return rc;
    rc = worker(&key, (int)windex, (int)nincr, STDOUT_FILENO);
    dfs_key_wipe(&key);
    return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  }
  color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
  failures = checks = 0;

  if ((rc = cli_open_store("demo", &st)) != 0)
    return rc;
  if ((rc = dfs_lockmgr_new(&m, st)) < 0) {
    rc = cli_fail_rc("demo", rc, "cannot create a lock manager");
    dfs_storage_close(st);
    return rc;
  }
  printf("%sdeltafs demo%s — encrypted JSON entities on a shared filesystem,\n"
         "coordinated with per-entity flock(2) locks.\n"
         "Store: %s\n",
         bold(), reset(), dfs_base_dir(st));
  if (remove_leftovers(st) < 0)
    goto done;

  /* 1. key */
  step(1, nsteps, "A master key (AES-256, 64 hex digits, like DeltaDatabase's -master-key)");
  snprintf(keypath, sizeof keypath, "%s/demo.key", dfs_base_dir(st));
  shell("keygen -o %s", keypath);
  if ((rc = dfs_key_generate(&key)) < 0) {
    lib_fail(rc, "cannot generate a key");
    goto done;
  }
  if (write_key_file(keypath, &key) < 0) {
    failures++;
    goto done;
  }
  dfs_key_to_hex(&key, hexkey, sizeof hexkey);
  printf("  key %.8s...%s (the rest stays in the file)\n", hexkey, hexkey + 56);
  OPENSSL_cleanse(hexkey, sizeof hexkey);
  rc = dfs_key_load(&other, keypath, &loose);
  check(rc == 0 && memcmp(other.bytes, key.bytes, DFS_KEY_SIZE) == 0,
        "the key file reads back as the same key");
  check(rc == 0 && !loose, "the key file is private (mode 0600)");
  dfs_key_wipe(&other);

  /* 2. sealed puts */
  step(2, nsteps, "Sealed puts: AES-256-GCM, a fresh random nonce each time");
  for (size_t i = 0; i < N_SAMPLES; i++) {
    int64_t v = 0;
    shell("put --key demo.key --schema-id chat.v1 --database demo %s %s", samples[i].id,
          samples[i].file);
    if (put_sealed(st, m, &key, samples[i].id, samples[i].json, "deltafs-demo", &v) < 0)
      goto done;
    printf("  %-14s %zu plaintext bytes -> version %lld\n", samples[i].id,
           strlen(samples[i].json), (long long)v);
  }
  {
    static const char schema[] =
        "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\"}";
    shell("template put chat.v1 chat.schema.json");
    if ((rc = dfs_template_write(st, "chat.v1", schema, sizeof schema - 1)) < 0) {
      lib_fail(rc, "cannot write template chat.v1");
      goto done;
    }
  }

  /* 3. on disk */
  step(3, nsteps, "What is on disk: ciphertext, and metadata beside it");
  {
    const struct sample *sm = &samples[0];
    char *blob, *metatext;
    size_t blob_len = 0, meta_len = 0;

    dfs_blob_path(st, sm->id, path, sizeof path);
    blob = slurp(path, &blob_len);
    if (!blob) {
      cli_errorf("demo", "cannot read %s: %s", path, strerror(errno));
      failures++;
      goto done;
    }
    printf("  %s  (%zu bytes)\n", path, blob_len);
    hexdump((const unsigned char *)blob, blob_len, 32);
    check(memmem(blob, blob_len, sm->needle, strlen(sm->needle)) == NULL,
          "the plaintext does not appear in the blob");
    check(blob_len == strlen(sm->json),
          "the blob is exactly as long as the plaintext (the GCM tag is in the metadata)");
    free(blob);

    dfs_meta_path(st, sm->id, path, sizeof path);
    metatext = slurp(path, &meta_len);
    if (!metatext) {
      cli_errorf("demo", "cannot read %s: %s", path, strerror(errno));
      failures++;
      goto done;
    }
    printf("  %s:\n", path);
    for (char *line = strtok(metatext, "\n"); line; line = strtok(NULL, "\n"))
      printf("    %s\n", line);
    free(metatext);
    printf("  %s(alg/iv/tag are what DeltaDatabase's Go workers need to decrypt it;\n"
           "   blob_size/blob_xxh3 are deltafs's own torn-write check, ignored by Go)%s\n",
           dim(), reset());
  }

  /* 4. read back */
  step(4, nsteps, "Reading back: decrypt and authenticate");
  for (size_t i = 0; i < N_SAMPLES; i++) {
    char *pt = NULL;
    size_t pt_len = 0;
    char what[200];
    shell("get --key demo.key %s", samples[i].id);
    rc = get_sealed(st, m, &key, samples[i].id, &pt, &pt_len, NULL);
    if (rc < 0) {
      lib_fail(rc, "cannot read back");
      goto done;
    }
    printf("  %s\n", pt);
    snprintf(what, sizeof what, "%s decrypts to exactly what was put", samples[i].id);
    check(pt_len == strlen(samples[i].json) && memcmp(pt, samples[i].json, pt_len) == 0, what);
    dfs_unseal_free(pt, pt_len);
  }
  {
    dfs_file *f = NULL;
    void *pt = NULL;
    size_t pt_len = 0;
    if ((rc = dfs_read(st, samples[0].id, &f)) < 0) {
      lib_fail(rc, "cannot read");
      goto done;
    }
    if ((rc = dfs_key_generate(&other)) < 0) {
      dfs_file_free(f);
      lib_fail(rc, "cannot generate a key");
      goto done;
    }
    rc = dfs_unseal(&other, f->blob, f->blob_len, &f->meta, &pt, &pt_len);
    dfs_key_wipe(&other);
    check(rc == DFS_ECORRUPT && pt == NULL,
          "another key is refused (the CLI exits 4), no plaintext comes out");
    {
      unsigned char *copy = malloc(f->blob_len);
      if (copy) {
        memcpy(copy, f->blob, f->blob_len);
        copy[f->blob_len / 2] ^= 0x01;
        rc = dfs_unseal(&key, copy, f->blob_len, &f->meta, &pt, &pt_len);
        check(rc == DFS_ECORRUPT && pt == NULL,
              "one flipped bit in the blob is refused as well (GCM authenticates it)");
        free(copy);
      }
    }
    dfs_file_free(f);
  }

  /* 5. concurrency */
  {
    char title[160], what[200];
    struct run_result r;
    char *pt = NULL;
    size_t pt_len = 0;
    int64_t version = 0;
    long long count = -1, expect = nworkers * nincr;

    snprintf(title, sizeof title, "Concurrency: %lld worker processes x %lld increments of %s",
             nworkers, nincr, COUNTER_ID);
    step(5, nsteps, title);
    printf("  each increment: lock exclusive -> read -> decrypt -> +1 -> encrypt ->\n"
           "                  write version+1 -> unlock   (DeltaDatabase's worker protocol)\n");
    shell("lock %s -- sh -c 'deltafs get --key demo.key %s | ... | deltafs put ...'",
          COUNTER_ID, COUNTER_ID);
    r = run_workers(st, keypath, (int)nworkers, (int)nincr);
    check(r.ok, "every worker finished without an error");
    rc = get_sealed(st, m, &key, COUNTER_ID, &pt, &pt_len, &version);
    if (rc < 0) {
      lib_fail(rc, "cannot read the counter");
      goto done;
    }
    if (sscanf(pt, "{\"count\":%lld}", &count) != 1)
      count = -1;
    printf("  final: %s   version %lld   %.2f s, %.0f locked updates/s, "
           "a worker found the lock taken %ld times\n",
           pt, (long long)version, r.seconds, r.seconds > 0 ? (double)expect / r.seconds : 0.0,
           r.waits);
    dfs_unseal_free(pt, pt_len);
    snprintf(what, sizeof what, "count is exactly %lld: no update was lost", expect);
    check(count == expect, what);
    snprintf(what, sizeof what, "version is exactly %lld: one version per write", expect);
    check(version == expect, what);
  }

  /* 6. the store */
  step(6, nsteps, "The store");
  {
    dfs_id_list *l;
    shell("ls");
    if ((rc = dfs_list(st, &l)) < 0) {
      lib_fail(rc, "cannot list the store");
      goto done;
    }
    qsort(l->ids, l->count, sizeof l->ids[0], cmp_ids);
    printf("  %s%-16s %7s %6s  %-8s %s%s\n", bold(), "ID", "VERSION", "BYTES", "ALG", "WRITER",
           reset());
    for (size_t i = 0; i < l->count; i++) {
      dfs_file *f;
      if (dfs_read(st, l->ids[i], &f) < 0) {
        printf("  %-16s (unreadable: %s)\n", l->ids[i], dfs_last_error());
        continue;
      }
      printf("  %-16s %7lld %6zu  %-8s %s\n", l->ids[i], (long long)f->meta.version,
             f->blob_len, *f->meta.alg ? f->meta.alg : "-", f->meta.writer_id);
      dfs_file_free(f);
    }
    dfs_list_free(l);
  }

done:
  dfs_key_wipe(&key);
  dfs_lockmgr_free(m);
  {
    char root_copy[4200];
    snprintf(root_copy, sizeof root_copy, "%s", st ? dfs_base_dir(st) : cli_root());
    dfs_storage_close(st);
    if (failures) {
      printf("\n%s%d of %d checks FAILED%s\n", red(), failures, checks > failures ? checks : failures,
             reset());
      fflush(stdout);
      cli_errorf("demo", "%d check(s) failed", failures);
      return CLI_EXIT_FAIL;
    }
    printf("\n%sAll %d checks passed.%s  Explore the store:\n", green(), checks, reset());
    printf("  deltafs --root %s ls\n", root_copy);
    printf("  deltafs --root %s meta %s\n", root_copy, COUNTER_ID);
    printf("  deltafs --root %s get --key %s/demo.key %s\n", root_copy, root_copy, COUNTER_ID);
  }
  return CLI_EXIT_OK;
}
