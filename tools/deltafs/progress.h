/*
 * progress.h — a one-line progress display on stderr, for long-running
 * commands (fsck, bench, demo).
 *
 * It shows only when stderr is a terminal (isatty), so scripts, pipes and
 * logs never see it; set DELTAFS_PROGRESS=0 to turn it off, =1 to force it
 * on.  Redraws are rate-limited (10 per second), so calling
 * cli_progress_update() in a tight loop is cheap.  cli_progress_done()
 * erases the line, leaving stderr as it was.
 *
 *   cli_progress p;
 *   cli_progress_start(&p, "fsck", n_entities);     // total 0 = unknown
 *   for (...) cli_progress_update(&p, ++done);
 *   cli_progress_done(&p);
 *
 * Not thread-safe: one cli_progress per thread (or a lock around it).
 */
#ifndef DFS_CLI_PROGRESS_H
#define DFS_CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_progress {
  int enabled;          /* drawing at all (stderr is a tty, or forced)   */
  int drawn;            /* a line is on screen and must be erased        */
  const char *label;    /* shown before the counts                       */
  uint64_t total;       /* 0 = unknown: show only the count              */
  uint64_t done;        /* last count given                              */
  double start;         /* monotonic seconds at start                    */
  double last_draw;     /* monotonic seconds of the last redraw          */
} cli_progress;

/* Begin; draws nothing yet.  label must outlive p. */
void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
/* Record `done` items; redraws if enabled and 100 ms passed. */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Erase the line (if drawn). */
void cli_progress_done(cli_progress *p);
/* Monotonic clock in seconds (handy for rates). */
double cli_now(void);

#endif
