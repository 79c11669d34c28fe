/*
 * util.c — helpers shared by the deltafs commands (cli.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *root_opt; /* --root, if given */

const char *cli_root(void)
{
  const char *env;
  if (root_opt)
    return root_opt;
  env = getenv("DELTAFS_ROOT");
  if (env && *env)
    return env;
  return "./deltafs-data";
}

void cli_set_root(const char *dir)
{
  root_opt = dir;
}

int cli_exit_code(int rc)
{
  switch (rc) {
  case DFS_OK: return CLI_EXIT_OK;
  case DFS_ENOTFOUND: return CLI_EXIT_NO;
  case DFS_EINVALID_ID: return CLI_EXIT_USAGE;
  case DFS_EBUSY:
  case DFS_ETIMEDOUT: return CLI_EXIT_BUSY;
  case DFS_ECORRUPT: return CLI_EXIT_CORRUPT;
  case DFS_ECONFLICT: return CLI_EXIT_CONFLICT;
  default: return CLI_EXIT_FAIL;
  }
}

void cli_errorf(const char *cmd, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* One line, always: a detail must not split it. */
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fflush(stdout);
  fprintf(stderr, "deltafs: %s: %s\n", cmd, msg);
}

int cli_fail_rc(const char *cmd, int rc, const char *what)
{
  const char *why = dfs_last_error();
  if (!why || !*why)
    why = dfs_strerror(rc);
  cli_errorf(cmd, "%s: %s", what, why);
  return cli_exit_code(rc);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cli_errorf(cmd, "usage: %s (try 'deltafs %s --help')", msg, cmd);
  return CLI_EXIT_USAGE;
}

int cli_check_id(const char *cmd, const char *id)
{
  int rc = dfs_id_validate(id);
  if (rc < 0) {
    char what[64];
    snprintf(what, sizeof what, "\"%.40s%s\"", id, strlen(id) > 40 ? "..." : "");
    return cli_fail_rc(cmd, rc, what);
  }
  return 0;
}

int cli_open_store(const char *cmd, dfs_storage **out)
{
  const char *root = cli_root();
  int rc = dfs_storage_open(out, root, NULL);
  if (rc < 0) {
    char what[1200];
    snprintf(what, sizeof what, "cannot open store %s", root);
    rc = cli_fail_rc(cmd, rc, what);
    /* a store that cannot be opened is never "no" or "usage" */
    return rc == CLI_EXIT_NO || rc == CLI_EXIT_USAGE ? CLI_EXIT_FAIL : rc;
  }
  return 0;
}

int cli_common_option(int opt, const char *help)
{
  switch (opt) {
  case 'h':
    fputs(help, stdout);
    return CLI_EXIT_OK;
  case 'R':
    cli_set_root(optarg);
    return CLI_CONTINUE;
  default:
    return -1;
  }
}

int cli_option_error(const char *cmd, int opt, char **argv)
{
  const char *arg = optind > 0 ? argv[optind - 1] : "?";
  if (opt == ':')
    return cli_usage_error(cmd, "option '%s' needs a value", arg);
  if (optopt && optopt != '?')
    return cli_usage_error(cmd, "unknown option '-%c'", optopt);
  return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_parse_i64(const char *s, long long min, long long max, long long *out)
{
  char *end;
  long long v;
  if (!s || !*s)
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int cli_read_input(const char *cmd, const char *path, char **out, size_t *out_len)
{
  int use_stdin = !path || strcmp(path, "-") == 0;
  int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  size_t cap = 65536, len = 0;
  char *buf;

  *out = NULL;
  *out_len = 0;
  if (fd < 0) {
    cli_errorf(cmd, "cannot read %s: %s", path, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  buf = malloc(cap);
  if (!buf)
    goto nomem;
  for (;;) {
    ssize_t n;
    if (len + 1 >= cap) {
      char *nb = cap > ((size_t)-1) / 2 ? NULL : realloc(buf, cap * 2);
      if (!nb)
        goto nomem;
      buf = nb;
      cap *= 2;
    }
    n = read(fd, buf + len, cap - len - 1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      cli_errorf(cmd, "cannot read %s: %s", use_stdin ? "standard input" : path,
                 strerror(errno));
      free(buf);
      if (!use_stdin)
        close(fd);
      return CLI_EXIT_FAIL;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (!use_stdin)
    close(fd);
  buf[len] = '\0';
  *out = buf;
  *out_len = len;
  return 0;
nomem:
  free(buf);
  if (!use_stdin)
    close(fd);
  cli_errorf(cmd, "cannot read %s: out of memory", use_stdin ? "standard input" : path);
  return CLI_EXIT_FAIL;
}

int cli_write_output(const char *cmd, const char *path, const void *buf, size_t len,
                     unsigned mode)
{
  int use_stdout = !path || strcmp(path, "-") == 0;
  const char *name = use_stdout ? "standard output" : path;
  const char *p = buf;
  int fd;

  if (use_stdout) {
    fflush(stdout);
    fd = STDOUT_FILENO;
  } else {
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0) {
      cli_errorf(cmd, "cannot write %s: %s", name, strerror(errno));
      return CLI_EXIT_FAIL;
    }
  }
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      cli_errorf(cmd, "cannot write %s: %s", name, strerror(errno));
      if (!use_stdout)
        close(fd);
      return CLI_EXIT_FAIL;
    }
    p += n;
    len -= (size_t)n;
  }
  if (!use_stdout && close(fd) < 0) {
    cli_errorf(cmd, "cannot write %s: %s", name, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return 0;
}

int cli_load_key(const char *cmd, const char *path, dfs_key *out)
{
  int loose = 0;
  int rc = dfs_key_load(out, path, &loose);
  if (rc < 0) {
    cli_fail_rc(cmd, rc, "cannot load key");
    return rc == DFS_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
  }
  if (loose)
    fprintf(stderr,
            "deltafs: %s: warning: key file %s is accessible by group or others "
            "(chmod 600 %s)\n",
            cmd, path, path);
  return 0;
}

void cli_json_string(const char *s)
{
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", stdout); break;
    case '\\': fputs("\\\\", stdout); break;
    case '\n': fputs("\\n", stdout); break;
    case '\r': fputs("\\r", stdout); break;
    case '\t': fputs("\\t", stdout); break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        printf("\\u%04x", *p);
      else
        putchar(*p);
    }
  }
  putchar('"');
}

void cli_print_meta_json(const dfs_meta *m, const char *indent)
{
  char ts[DFS_TIMESTAMP_MAX];
  const char *ind = indent ? indent : "";
  if (dfs_timestamp_format(m->timestamp_sec, m->timestamp_nsec, ts, sizeof ts) < 0)
    snprintf(ts, sizeof ts, "0001-01-01T00:00:00Z");
#define STR_FIELD(name, val)                                                   \
  do {                                                                         \
    printf("%s  \"%s\": ", ind, name);                                         \
    cli_json_string(val);                                                      \
    fputs(",\n", stdout);                                                      \
  } while (0)
  printf("{\n");
  STR_FIELD("key_id", m->key_id);
  STR_FIELD("alg", m->alg);
  STR_FIELD("iv", m->iv);
  STR_FIELD("tag", m->tag);
  STR_FIELD("schema_id", m->schema_id);
  printf("%s  \"version\": %lld,\n", ind, (long long)m->version);
  STR_FIELD("writer_id", m->writer_id);
  STR_FIELD("timestamp", ts);
  STR_FIELD("database", m->database);
  printf("%s  \"entity_key\": ", ind);
  cli_json_string(m->entity_key);
  printf("\n%s}\n", ind);
#undef STR_FIELD
}

void cli_default_writer_id(char *buf, size_t size)
{
  char host[256];
  if (gethostname(host, sizeof host) < 0)
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  snprintf(buf, size, "deltafs-cli@%s:%ld", host, (long)getpid());
}

int cli_parent_holds(dfs_storage *st, const char *id, dfs_lock_type type)
{
  const char *root = getenv("DELTAFS_LOCK_ROOT");
  const char *lid = getenv("DELTAFS_LOCK_ID");
  const char *mode = getenv("DELTAFS_LOCK_MODE");
  if (!root || !lid || !mode || strcmp(root, dfs_base_dir(st)) != 0 || strcmp(lid, id) != 0)
    return 0;
  if (strcmp(mode, "exclusive") == 0)
    return 1;
  if (strcmp(mode, "shared") == 0)
    return type == DFS_LOCK_SHARED ? 1 : -1;
  return 0;
}
