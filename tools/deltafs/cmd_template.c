/*
 * cmd_template.c — template put | get | ls: JSON Schema templates, stored
 * as opaque bytes in templates/<schema-id>.json.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* dfs_list promises sorted ids; sort again so the output order never
 * depends on the library version (bytewise, like LC_ALL=C sort). */
static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char template_help[] =
    "usage: deltafs [--root DIR] template put SCHEMA_ID [FILE]\n"
    "       deltafs [--root DIR] template get [-o FILE] SCHEMA_ID\n"
    "       deltafs [--root DIR] template ls\n"
    "\n"
    "JSON Schema templates, stored as given in templates/<SCHEMA_ID>.json.\n"
    "  put   store FILE (or standard input, also as '-'), atomically and durably\n"
    "  get   write the template to standard output, or FILE with -o; exit 1 if\n"
    "        there is no such template\n"
    "  ls    list the schema ids, one per line\n";

static int template_put(dfs_storage *st, const char *sid, const char *file)
{
  char *data;
  size_t len;
  int rc;
  char what[300];

  if ((rc = cli_read_input("template", file, &data, &len)) != 0)
    return rc;
  rc = dfs_template_write(st, sid, data, len);
  free(data);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot write template %s", sid);
    rc = cli_fail_rc("template", rc, what);
    return rc == CLI_EXIT_NO ? CLI_EXIT_FAIL : rc;
  }
  return CLI_EXIT_OK;
}

static int template_get(dfs_storage *st, const char *sid, const char *output)
{
  void *data;
  size_t len;
  int rc;
  char what[300];

  rc = dfs_template_read(st, sid, &data, &len);
  if (rc < 0) {
    snprintf(what, sizeof what, "cannot read template %s", sid);
    return cli_fail_rc("template", rc, what);
  }
  rc = cli_write_output("template", output, data, len, 0644);
  dfs_free(data);
  return rc;
}

static int template_ls(dfs_storage *st)
{
  dfs_id_list *l;
  int rc = dfs_template_list(st, &l);
  if (rc < 0) {
    rc = cli_fail_rc("template", rc, "cannot list templates");
    return rc == CLI_EXIT_NO ? CLI_EXIT_FAIL : rc;
  }
  qsort(l->ids, l->count, sizeof l->ids[0], cmp_str);
  for (size_t i = 0; i < l->count; i++)
    printf("%s\n", l->ids[i]);
  dfs_list_free(l);
  if (fflush(stdout) != 0) {
    cli_errorf("template", "cannot write standard output");
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

int cmd_template(int argc, char **argv)
{
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"output", 1, NULL, 'o'},
      {NULL, 0, NULL, 0},
  };
  const char *output = NULL, *sub;
  dfs_storage *st;
  int opt, rc, nargs;

  while ((opt = getopt_long(argc, argv, ":o:", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, template_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    if (opt == 'o') {
      output = optarg;
      continue;
    }
    return cli_option_error("template", opt, argv);
  }
  if (optind >= argc)
    return cli_usage_error("template", "missing subcommand (put, get or ls)");
  sub = argv[optind++];
  nargs = argc - optind;
  if (strcmp(sub, "put") == 0) {
    if (nargs < 1 || nargs > 2)
      return cli_usage_error("template", "put wants SCHEMA_ID [FILE]");
    if (output)
      return cli_usage_error("template", "-o is for 'template get'");
  } else if (strcmp(sub, "get") == 0) {
    if (nargs != 1)
      return cli_usage_error("template", "get wants SCHEMA_ID");
  } else if (strcmp(sub, "ls") == 0) {
    if (nargs != 0)
      return cli_usage_error("template", "ls takes no arguments");
  } else {
    return cli_usage_error("template", "unknown subcommand '%s' (put, get or ls)", sub);
  }
  if (nargs >= 1 && (rc = cli_check_id("template", argv[optind])) != 0)
    return rc;
  if ((rc = cli_open_store("template", &st)) != 0)
    return rc;
  if (sub[0] == 'p')
    rc = template_put(st, argv[optind], nargs == 2 ? argv[optind + 1] : NULL);
  else if (sub[0] == 'g')
    rc = template_get(st, argv[optind], output);
  else
    rc = template_ls(st);
  dfs_storage_close(st);
  return rc;
}
