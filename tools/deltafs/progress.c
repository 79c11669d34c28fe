/*
 * progress.c — see progress.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

double cli_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
  const char *env = getenv("DELTAFS_PROGRESS");
  memset(p, 0, sizeof *p);
  p->label = label ? label : "";
  p->total = total;
  if (env && strcmp(env, "0") == 0)
    p->enabled = 0;
  else if (env && strcmp(env, "1") == 0)
    p->enabled = 1;
  else
    p->enabled = isatty(STDERR_FILENO);
  p->start = cli_now();
  p->last_draw = 0;
}

static void draw(cli_progress *p)
{
  double el = cli_now() - p->start;
  double rate = el > 0 ? (double)p->done / el : 0;
  if (p->total)
    fprintf(stderr, "\r\033[K%s: %llu/%llu (%3.0f%%) %.0f/s", p->label,
            (unsigned long long)p->done, (unsigned long long)p->total,
            100.0 * (double)p->done / (double)p->total, rate);
  else
    fprintf(stderr, "\r\033[K%s: %llu %.0f/s", p->label, (unsigned long long)p->done, rate);
  fflush(stderr);
  p->drawn = 1;
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
  double now;
  p->done = done;
  if (!p->enabled)
    return;
  now = cli_now();
  if (now - p->last_draw < 0.1 && !(p->total && done == p->total))
    return;
  p->last_draw = now;
  draw(p);
}

void cli_progress_done(cli_progress *p)
{
  if (p->enabled && p->drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  p->drawn = 0;
}
