/*
 * fault.h — the test side of sys.h's fault injection (test builds only:
 * the deltafs_fi library, compiled with -DDFS_FAULT_INJECTION=1).
 *
 * The library counts every wrapped call whose kind is in the armed mask.
 * When the count reaches `nth` (1-based) the action fires:
 *   DFS_FAULT_FAIL   the call fails with `err` (once, or for every later
 *                    matching call too when `sticky` is set);
 *   DFS_FAULT_KILL   the process kills itself with SIGKILL before the call
 *                    runs — a crash exactly at that syscall.
 * A sweep runs an operation once unarmed with dfs_fault_count() to learn
 * how many calls it makes, then once per position.
 *
 * The counter is process-global and atomic; sweeps run single-threaded.
 */
#ifndef DFS_FAULT_H
#define DFS_FAULT_H

#include "sys.h"

#define DFS_FAULT_MASK_ALL ((1u << DFS_SYS_KIND_COUNT) - 1u)
#define DFS_FAULT_MASK(kind) (1u << (kind))

enum dfs_fault_action { DFS_FAULT_FAIL = 0, DFS_FAULT_KILL = 1 };

/* Reset the counter and arm: at the nth call of a kind in mask, act. */
void dfs_fault_arm(unsigned mask, unsigned long nth, enum dfs_fault_action action,
                   int err, int sticky);
/* Disarm; counting continues (of mask, all kinds after reset). */
void dfs_fault_disarm(void);
/* Reset the counter, count calls of kinds in mask, inject nothing. */
void dfs_fault_count_start(unsigned mask);
/* Calls counted since the last arm/count_start. */
unsigned long dfs_fault_count(void);
/* How many times the armed fault fired. */
unsigned long dfs_fault_fired(void);
/* Name of a kind ("fsync"), for messages. */
const char *dfs_fault_kind_name(enum dfs_sys_kind kind);

/* Environment arming, for whole programs built with fault injection (the
 * crash harness): DFS_FAULT="kind-or-all:nth:action[:errno]" read once at
 * the first call, e.g. DFS_FAULT=all:17:kill or DFS_FAULT=fsync:1:fail:5. */

#endif /* DFS_FAULT_H */
