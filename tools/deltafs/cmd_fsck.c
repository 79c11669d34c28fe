/*
 * cmd_fsck.c — `deltafs fsck [--repair] [--json] [--quick] [--go-compat]`:
 * check a whole store and repair what is safe (dfs_fsck, deltafs/fsck.h).
 *
 * Output: one line per finding on stdout, then a summary line; with --json
 * one JSON document instead (streamed finding by finding, so a store with a
 * million damaged entities does not need a million objects in memory).
 * Progress goes to stderr, and only when stderr is a terminal (progress.h).
 *
 * Exit status: 0 nothing remains wrong (clean, or everything repaired;
 * writes in progress are not problems), 4 problems remain, 6 the store
 * could not be checked, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "progress.h"

static const char fsck_help[] =
    "usage: deltafs fsck [--repair] [--json] [--quick] [--go-compat]\n"
    "\n"
    "Check the whole store: leftovers of crashed writers in .deltafs-tmp/\n"
    "(reported as live when their writer still runs), writes to roll forward,\n"
    "torn blob/metadata pairs, metadata without a blob (an interrupted delete),\n"
    "blobs without metadata, corrupt metadata, stale lock files and names that\n"
    "deltafs did not write.  Unlike every other command, fsck does not recover\n"
    "the store before looking, so it reports what recovery would do.\n"
    "\n"
    "  --repair     fix what is safe: roll forward, remove dead temps, finish\n"
    "               interrupted deletes, remove stale lock files; each under\n"
    "               the entity's exclusive lock (busy: skipped, in use).  Torn\n"
    "               pairs, orphan blobs and corrupt metadata are only reported:\n"
    "               they may hold the only copy of the data.\n"
    "  --json       print one JSON document: {\"findings\": [...], \"summary\": {...}}\n"
    "  --quick      compare blob sizes only (do not read and hash every blob)\n"
    "  --go-compat  the store is shared with Go workers: lock files are kept\n"
    "  --root DIR   the store\n"
    "  -h, --help   this help\n"
    "\n"
    "Exit status: 0 nothing remains wrong, 4 problems remain, 6 the store\n"
    "could not be checked, 2 usage.\n";

struct out {
  int json;
  int first;         /* no finding printed yet (JSON commas) */
  int fixable;       /* findings --repair would fix (status "found") */
  cli_progress prog;
};

static int print_finding(const dfs_fsck_finding *f, void *payload)
{
  struct out *o = payload;
  /* A finding line must not be drawn over by the progress line. */
  cli_progress_done(&o->prog);
  o->fixable += f->status == DFS_FSCK_FOUND;
  if (o->json) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:b}", "kind",
                          dfs_fsck_kind_name(f->kind), "status",
                          dfs_fsck_status_name(f->status), "dir", f->dir, "name", f->name,
                          "id", f->id, "detail", f->detail, "repaired",
                          f->status == DFS_FSCK_REPAIRED);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (s) {
      printf("%s\n    %s", o->first ? "" : ",", s);
      o->first = 0;
    }
    free(s);
    json_decref(j);
  } else {
    printf("%s [%s] %s/%s: %s\n", dfs_fsck_kind_name(f->kind), dfs_fsck_status_name(f->status),
           f->dir, f->name, f->detail);
  }
  return 0;
}

static void on_progress(uint64_t done, void *payload)
{
  struct out *o = payload;
  cli_progress_update(&o->prog, done);
}

static void print_json_summary(const char *root, unsigned flags, const dfs_fsck_summary *s,
                               int rc)
{
  json_t *kinds = json_object(), *doc;
  char *str;
  for (int k = 0; k < DFS_FSCK_KIND_COUNT; k++)
    json_object_set_new(kinds, dfs_fsck_kind_name((dfs_fsck_kind)k),
                        json_integer((json_int_t)s->by_kind[k]));
  doc = json_pack("{s:s, s:b, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}}",
                  "store", root, "repair", (flags & DFS_FSCK_REPAIR) != 0, "clean",
                  rc == 0 && s->remaining == 0, "summary", "entities", (json_int_t)s->entities,
                  "templates", (json_int_t)s->templates, "temps", (json_int_t)s->temps,
                  "go_written", (json_int_t)s->go_written, "live", (json_int_t)s->live,
                  "problems", (json_int_t)s->problems, "repaired", (json_int_t)s->repaired,
                  "remaining", (json_int_t)s->remaining, "skipped", (json_int_t)s->skipped,
                  "by_kind", kinds);
  if (doc && rc != 0)
    json_object_set_new(doc, "error", json_string(dfs_last_error()));
  str = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  /* The findings array is already open; the rest of the document follows
   * it: drop the summary object's braces and append its members. */
  if (str) {
    size_t n = strlen(str);
    str[n - 1] = '\0';
    printf("\n  ],\n  %s}\n", str + 1);
  } else {
    printf("\n  ]}\n");
  }
  free(str);
  json_decref(doc);
}

int cmd_fsck(int argc, char **argv)
{
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"repair", 0, NULL, 'r'},
      {"json", 0, NULL, 'j'},
      {"quick", 0, NULL, 'q'},
      {"go-compat", 0, NULL, 'g'},
      {NULL, 0, NULL, 0},
  };
  dfs_fsck_options fo = DFS_FSCK_OPTIONS_INIT;
  dfs_fsck_summary sum;
  struct out o = {0, 1, 0, {0}};
  const char *root;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, fsck_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    switch (opt) {
    case 'r': fo.flags |= DFS_FSCK_REPAIR; break;
    case 'j': o.json = 1; break;
    case 'q': fo.flags |= DFS_FSCK_QUICK; break;
    case 'g': fo.flags |= DFS_FSCK_GO_COMPAT; break;
    default: return cli_option_error("fsck", opt, argv);
    }
  }
  if (optind != argc)
    return cli_usage_error("fsck", "unexpected argument '%s'", argv[optind]);
  root = cli_root();
  fo.fn = print_finding;
  fo.payload = &o;
  fo.progress = on_progress;
  if (o.json)
    printf("{\n  \"findings\": [");
  cli_progress_start(&o.prog, "fsck: entities checked", 0);
  rc = dfs_fsck(root, &fo, &sum);
  cli_progress_done(&o.prog);
  if (o.json)
    print_json_summary(root, fo.flags, &sum, rc);
  if (rc < 0) {
    char what[1200];
    snprintf(what, sizeof what, "cannot check store %s", root);
    rc = cli_fail_rc("fsck", rc, what);
    /* a store that cannot be checked is never "no" or "usage" */
    return rc == CLI_EXIT_NO || rc == CLI_EXIT_USAGE ? CLI_EXIT_FAIL : rc;
  }
  if (!o.json)
    printf("fsck %s: %llu entities, %llu templates, %llu temps; %llu problems, %llu repaired, "
           "%llu remaining%s; %llu writes in progress%s\n",
           root, (unsigned long long)sum.entities, (unsigned long long)sum.templates,
           (unsigned long long)sum.temps, (unsigned long long)sum.problems,
           (unsigned long long)sum.repaired, (unsigned long long)sum.remaining,
           sum.skipped ? " (some in use: run again)" : "", (unsigned long long)sum.live,
           o.fixable ? " (--repair fixes some)" : "");
  if (fflush(stdout) != 0) {
    cli_errorf("fsck", "cannot write the report: standard output failed");
    return CLI_EXIT_FAIL;
  }
  return sum.remaining ? CLI_EXIT_CORRUPT : CLI_EXIT_OK;
}
