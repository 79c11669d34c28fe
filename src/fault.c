/*
 * fault.c — counting and injection behind sys.h's wrappers (test builds).
 * See fault.h for the model.
 */
#include "fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_uint g_mask;          /* kinds counted (and armed)            */
static atomic_ulong g_count;        /* matching calls since arm             */
static atomic_ulong g_nth;          /* 0: disarmed                          */
static atomic_int g_action;         /* enum dfs_fault_action                */
static atomic_int g_err;            /* errno to inject                      */
static atomic_int g_sticky;         /* fail every call from nth on          */
static atomic_ulong g_fired;        /* how often it fired                   */
static atomic_int g_env_done;       /* DFS_FAULT parsed                     */

static const char *const kind_names[DFS_SYS_KIND_COUNT] = {
    "open", "read", "write", "fsync", "fdatasync", "rename", "unlink",
    "mkdir", "flock", "fstat", "getdents", "close", "malloc", "futimens"};

const char *dfs_fault_kind_name(enum dfs_sys_kind kind)
{
  return (unsigned)kind < DFS_SYS_KIND_COUNT ? kind_names[kind] : "?";
}

void dfs_fault_arm(unsigned mask, unsigned long nth, enum dfs_fault_action action,
                   int err, int sticky)
{
  atomic_store(&g_env_done, 1);
  atomic_store(&g_nth, 0);
  atomic_store(&g_count, 0);
  atomic_store(&g_fired, 0);
  atomic_store(&g_mask, mask);
  atomic_store(&g_action, (int)action);
  atomic_store(&g_err, err);
  atomic_store(&g_sticky, sticky);
  atomic_store(&g_nth, nth);
}

void dfs_fault_disarm(void)
{
  atomic_store(&g_nth, 0);
}

void dfs_fault_count_start(unsigned mask)
{
  dfs_fault_arm(mask, 0, DFS_FAULT_FAIL, 0, 0);
}

unsigned long dfs_fault_count(void)
{
  return atomic_load(&g_count);
}

unsigned long dfs_fault_fired(void)
{
  return atomic_load(&g_fired);
}

static void parse_env(void)
{
  const char *s = getenv("DFS_FAULT");
  char buf[128], *kind, *nth, *act, *err, *save = NULL;
  unsigned mask = DFS_FAULT_MASK_ALL;
  int e = 5 /* EIO */;
  enum dfs_fault_action action = DFS_FAULT_FAIL;

  if (!s || strlen(s) >= sizeof buf)
    return;
  strcpy(buf, s);
  kind = strtok_r(buf, ":", &save);
  nth = strtok_r(NULL, ":", &save);
  act = strtok_r(NULL, ":", &save);
  err = strtok_r(NULL, ":", &save);
  if (!kind || !nth)
    return;
  if (strcmp(kind, "all") != 0) {
    mask = 0;
    for (unsigned k = 0; k < DFS_SYS_KIND_COUNT; k++)
      if (strcmp(kind, kind_names[k]) == 0)
        mask = 1u << k;
    if (!mask)
      return;
  }
  if (act && strcmp(act, "kill") == 0)
    action = DFS_FAULT_KILL;
  if (err)
    e = atoi(err);
  dfs_fault_arm(mask, strtoul(nth, NULL, 10), action, e, 0);
}

int dfs__fault_hit(enum dfs_sys_kind kind)
{
  unsigned long n, nth;

  if (!atomic_load_explicit(&g_env_done, memory_order_relaxed)) {
    if (atomic_exchange(&g_env_done, 1) == 0)
      parse_env();
  }
  if (!(atomic_load_explicit(&g_mask, memory_order_relaxed) & (1u << kind)))
    return 0;
  n = atomic_fetch_add(&g_count, 1) + 1;
  nth = atomic_load(&g_nth);
  if (nth == 0 || n < nth || (n > nth && !atomic_load(&g_sticky)))
    return 0;
  atomic_fetch_add(&g_fired, 1);
  if (atomic_load(&g_action) == DFS_FAULT_KILL) {
    kill(getpid(), SIGKILL);
    for (;;)
      pause();
  }
  return atomic_load(&g_err);
}
