/*
 * lockmgr.c — dfs_lockmgr: per-entity locks of a store, held by threads.
 *
 * Why flock alone is not enough
 * -----------------------------
 * flock(2) locks belong to an open file description, not to a thread.  If
 * two threads of a process each open the lock file they do exclude each
 * other, but then a process holding 50 entities for 8 threads burns 400
 * descriptors, and "does this thread already hold it?" cannot be answered.
 * If they share one descriptor, flock sees ONE holder: the second thread's
 * LOCK_EX on a descriptor that already holds LOCK_EX succeeds at once, and
 * LOCK_UN by either thread releases both.  So the manager arbitrates
 * between its threads itself, with a mutex and a condition variable, and
 * holds at most ONE flock per entity, on one cached descriptor, on behalf
 * of all its holder threads:
 *
 *   - the first thread to hold an entity takes the flock (LOCK_SH or
 *     LOCK_EX, as it asked);
 *   - further threads asking SHARED while the holders are shared join
 *     without a system call;
 *   - everyone else (any EXCLUSIVE request, or SHARED while a thread holds
 *     it exclusively) waits on the entry's condition variable until the
 *     holders are gone, then takes the flock anew;
 *   - the last holder to release unlocks the flock, so other processes get
 *     their turn: the manager never keeps a lock nobody asked for.
 * No flock is ever converted (SH<->EX), because flock conversion releases
 * before it re-acquires and is therefore not atomic.
 *
 * Entry states
 * ------------
 * One `struct entry` per entity the manager has seen recently, in a hash
 * table keyed by id:
 *
 *   IDLE      no holders, no thread working on it; fd is open and unlocked
 *             (or -1).  On the idle list (LRU) — the descriptor cache.
 *   HELD      nholders > 0 threads hold it in `mode`; fd holds the flock.
 *   IO        one thread (the "I/O owner") is opening, flocking, re-checking
 *             or unlocking the file with the manager mutex RELEASED, so a
 *             blocked flock never stalls the manager.  io says how long it
 *             may take: IO_QUICK (non-blocking flock, open, unlock: a try
 *             waits for it to end) or IO_BLOCKING (a blocking flock, which
 *             may take forever: a try answers DFS_EBUSY at once).
 *   + pins    threads waiting on the entry or working on it; a pinned entry
 *             is never evicted (its memory stays valid while they sleep).
 *
 *   IDLE --first acquirer--> IO --flock ok--> HELD --last release--> IO
 *     ^                       |                                      |
 *     +-------busy/error------+-------------- unlocked --------------+
 *   IDLE --cache over capacity--> evicted (descriptor closed, freed)
 *
 * Invariant: io != IO_NONE implies nholders == 0.  I/O happens only when
 * nobody holds the entry (to take the flock, or to drop it after the last
 * holder), and nobody joins an entry that has I/O in progress.
 *
 * Mutex rules
 * -----------
 *   m->mu       guards everything in the manager: the hash table, the idle
 *               list, and every entry field EXCEPT that, while e->io is
 *               set, e->fd/dev/ino/stale belong to the I/O owner alone (it
 *               set io under m->mu and clears it under m->mu, which orders
 *               its writes before anyone else's reads).  e->name, idlen and
 *               hash never change after creation.
 *               m->mu is never held across a blocking system call (flock,
 *               open, close of a locked file, unlink): only across lookup
 *               and bookkeeping, so an acquire of one entity never delays
 *               another.
 *   e->cv       waits use m->mu; broadcast whenever io ends or the holders
 *               drop to zero and someone waits (e->waiters > 0).
 *   st->mgr_mu  (storage_int.h) guards the list of managers of a store
 *               (st->mgr_head, m->mgr_next).
 *   Order: st->mgr_mu before m->mu.  Nothing takes st->mgr_mu while
 *   holding an m->mu.  dfs__lockmgr_unlink_if_held_exclusive (dfs_delete)
 *   holds both around one unlinkat: never a wait for a lock.
 *
 * Fast path (uncontended acquire + release): hash lookup, flock(LOCK_NB),
 * one fstatat for the re-check against the dev/ino remembered at open,
 * flock(LOCK_UN); no malloc (entries and their holder arrays are reused).
 *
 * Thread exit
 * -----------
 * A hold belongs to a thread, so a thread that exits while holding would
 * leave a hold nobody can release (and glibc reuses pthread_t values, so a
 * later thread would "inherit" it).  The first acquire of each thread sets
 * a pthread key (tx_key; after that, one thread-local load per acquire);
 * the key's destructor runs when the thread exits and releases the
 * thread's holds in every manager in the process-wide registry (reg_head,
 * guarded by reg_mu; dfs_lockmgr_free unregisters first, so a freed
 * manager is never touched).  Nothing is allocated per thread.  Order:
 * reg_mu before m->mu; st->mgr_mu is never held while taking reg_mu.
 * fork() takes reg_mu around the fork (pthread_atfork).  The main thread's
 * return from main() runs no destructors; process exit closes the
 * descriptors, which releases the flocks anyway.
 *
 * Descriptor cache: idle entries keep their descriptor so a hot entity is
 * not reopened each time; at most idle_cap of them (1024, or a quarter of
 * RLIMIT_NOFILE if that is smaller) — beyond that the least recently used
 * idle entry is closed and freed.  Entries that are held or pinned do not
 * count and are never evicted.  If an open fails with EMFILE/ENFILE, all
 * idle descriptors are closed and the open is retried once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>

#include "deltafs/lock.h"
#include "error_int.h"
#include "lockfile.h"
#include "storage_int.h"
#include "sys.h"

enum { IO_NONE = 0, IO_QUICK = 1, IO_BLOCKING = 2 };

#define INLINE_HOLDERS 4
#define IDLE_CAP_MAX 1024
#define IDLE_CAP_MIN 16

struct entry {
  struct entry *hnext;               /* hash chain                           */
  struct entry *lru_prev, *lru_next; /* idle list, linked iff in_lru         */
  struct entry *work_next;           /* release_all's private work list      */
  uint64_t hash;                     /* of the id; immutable                 */
  pthread_cond_t cv;                 /* waiters for this entity (with m->mu) */
  int fd;                            /* lock file, -1 if not open (I/O owner) */
  dev_t dev;                         /* its identity at open, for re-check   */
  ino_t ino;
  int stale;          /* deleted by dfs_delete while held: unlink+close at release */
  int io;             /* IO_*: an I/O owner is working on fd                 */
  int in_lru;         /* on the idle list                                    */
  dfs_lock_type mode; /* of the holders; meaningful iff nholders > 0         */
  unsigned nholders;  /* threads holding it                                  */
  unsigned cap;       /* capacity of holders                                 */
  pthread_t *holders; /* inline_holders, or malloc'd when more are needed    */
  pthread_t inline_holders[INLINE_HOLDERS];
  unsigned pins;      /* threads referencing it outside `holders`            */
  unsigned waiters;   /* threads in pthread_cond_wait on cv                  */
  size_t idlen;       /* strlen(id); name[0..idlen) is the id                */
  char name[];        /* "<id>.json.enc.lock"; immutable                     */
};

struct dfs_lockmgr {
  dfs_storage *st;              /* the store (outlives the manager)        */
  struct dfs_lockmgr *mgr_next; /* st's manager list; st->mgr_mu           */
  struct dfs_lockmgr *reg_next; /* the process-wide registry; reg_mu       */
  pthread_mutex_t mu;           /* guards all below and the entries        */
  pthread_condattr_t cvattr;    /* CLOCK_MONOTONIC, for timed waits        */
  struct entry **buckets;       /* hash table, nbuckets (power of two)     */
  size_t nbuckets;
  size_t nentries;
  struct entry *lru_head;       /* idle entries, most recently used first  */
  struct entry *lru_tail;
  size_t nidle;
  size_t idle_cap;              /* most idle entries (descriptors) kept    */
};

/* ---- hash table and idle list (all with m->mu held) ------------------ */

static uint64_t hash_id(const char *id, size_t len)
{
  /* FNV-1a: ids are short, and this is cheaper than the syscalls around it. */
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)id[i];
    h *= 1099511628211ull;
  }
  return h;
}

static struct entry *find(dfs_lockmgr *m, const char *id, size_t len, uint64_t h)
{
  struct entry *e = m->buckets[h & (m->nbuckets - 1)];
  for (; e; e = e->hnext)
    if (e->hash == h && e->idlen == len && memcmp(e->name, id, len) == 0)
      return e;
  return NULL;
}

static void lru_unlink(dfs_lockmgr *m, struct entry *e)
{
  if (!e->in_lru)
    return;
  if (e->lru_prev)
    e->lru_prev->lru_next = e->lru_next;
  else
    m->lru_head = e->lru_next;
  if (e->lru_next)
    e->lru_next->lru_prev = e->lru_prev;
  else
    m->lru_tail = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
  e->in_lru = 0;
  m->nidle--;
}

static void hash_remove(dfs_lockmgr *m, struct entry *e)
{
  struct entry **pp = &m->buckets[e->hash & (m->nbuckets - 1)];
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  m->nentries--;
}

/* Double the table when chains get long.  A failed allocation just keeps
 * the old table: slower lookups, never an error. */
static void maybe_grow(dfs_lockmgr *m)
{
  size_t n = m->nbuckets * 2;
  struct entry **nb;

  if (m->nentries <= m->nbuckets * 2)
    return;
  nb = dfs_calloc(n, sizeof *nb);
  if (!nb)
    return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->hnext;
      e->hnext = nb[e->hash & (n - 1)];
      nb[e->hash & (n - 1)] = e;
    }
  }
  free(m->buckets);
  m->buckets = nb;
  m->nbuckets = n;
}

/* Return e to the idle list if nothing references it any more, then trim
 * the list to idle_cap; trimmed entries go to *evicted, to be destroyed
 * after m->mu is released (closing descriptors is a system call). */
static void settle(dfs_lockmgr *m, struct entry *e, struct entry **evicted)
{
  if (e && e->nholders == 0 && e->pins == 0 && e->io == IO_NONE && !e->in_lru) {
    e->lru_prev = NULL;
    e->lru_next = m->lru_head;
    if (m->lru_head)
      m->lru_head->lru_prev = e;
    else
      m->lru_tail = e;
    m->lru_head = e;
    e->in_lru = 1;
    m->nidle++;
  }
  while (m->nidle > m->idle_cap) {
    struct entry *victim = m->lru_tail;
    lru_unlink(m, victim);
    hash_remove(m, victim);
    victim->work_next = *evicted;
    *evicted = victim;
  }
}

static void entry_destroy(struct entry *e)
{
  if (e->fd >= 0)
    dfs_sys_close_quiet(e->fd);
  if (e->holders != e->inline_holders)
    free(e->holders);
  pthread_cond_destroy(&e->cv);
  free(e);
}

static void destroy_list(struct entry *e)
{
  while (e) {
    struct entry *next = e->work_next;
    entry_destroy(e);
    e = next;
  }
}

/* Find or create the entry of id; NULL on ENOMEM (detail set). */
static struct entry *get_entry(dfs_lockmgr *m, const char *id, size_t len, uint64_t h)
{
  struct entry *e = find(m, id, len, h);
  size_t slot;

  if (e)
    return e;
  e = dfs_malloc(sizeof *e + len + sizeof DFS_LOCK_SUFFIX);
  if (!e) {
    dfs__errno(DFS_ENOMEM, ENOMEM, "lock %s", id);
    return NULL;
  }
  memset(e, 0, sizeof *e);
  if (pthread_cond_init(&e->cv, &m->cvattr) != 0) {
    free(e);
    dfs__errno(DFS_ENOMEM, ENOMEM, "lock %s: pthread_cond_init", id);
    return NULL;
  }
  e->hash = h;
  e->fd = -1;
  e->holders = e->inline_holders;
  e->cap = INLINE_HOLDERS;
  e->idlen = len;
  memcpy(e->name, id, len);
  memcpy(e->name + len, DFS_LOCK_SUFFIX, sizeof DFS_LOCK_SUFFIX);
  slot = h & (m->nbuckets - 1);
  e->hnext = m->buckets[slot];
  m->buckets[slot] = e;
  m->nentries++;
  maybe_grow(m);
  return e;
}

/* ---- holders (m->mu held) -------------------------------------------- */

static int holds(const struct entry *e, pthread_t self)
{
  for (unsigned i = 0; i < e->nholders; i++)
    if (pthread_equal(e->holders[i], self))
      return 1;
  return 0;
}

static int add_holder(struct entry *e, pthread_t self, const char *id)
{
  if (e->nholders == e->cap) {
    /* Only when more than INLINE_HOLDERS threads share one entity; the
     * grown array is kept for the entry's lifetime. */
    unsigned ncap = e->cap * 2;
    pthread_t *nh = dfs_malloc(ncap * sizeof *nh);
    if (!nh)
      return dfs__errno(DFS_ENOMEM, ENOMEM, "lock %s", id);
    memcpy(nh, e->holders, e->nholders * sizeof *nh);
    if (e->holders != e->inline_holders)
      free(e->holders);
    e->holders = nh;
    e->cap = ncap;
  }
  e->holders[e->nholders++] = self;
  return 0;
}

static void remove_holder(struct entry *e, pthread_t self)
{
  for (unsigned i = 0; i < e->nholders; i++) {
    if (pthread_equal(e->holders[i], self)) {
      e->holders[i] = e->holders[--e->nholders];
      return;
    }
  }
}

/* ---- I/O steps: called with m->mu held, return with it held ---------- */

static void io_begin(dfs_lockmgr *m, struct entry *e, int kind)
{
  e->io = kind;
  pthread_mutex_unlock(&m->mu);
}

static void io_end(dfs_lockmgr *m, struct entry *e)
{
  pthread_mutex_lock(&m->mu);
  e->io = IO_NONE;
  if (e->waiters)
    pthread_cond_broadcast(&e->cv);
}

/* Close every idle descriptor (EMFILE relief).  Takes m->mu itself: called
 * by an I/O owner, which does not hold it. */
static void drop_idle(dfs_lockmgr *m)
{
  struct entry *evicted = NULL;
  pthread_mutex_lock(&m->mu);
  while (m->lru_tail) {
    struct entry *victim = m->lru_tail;
    lru_unlink(m, victim);
    hash_remove(m, victim);
    victim->work_next = evicted;
    evicted = victim;
  }
  pthread_mutex_unlock(&m->mu);
  destroy_list(evicted);
}

/* As I/O owner (m->mu released): take the flock on e's file with `op`,
 * opening it if needed, and re-check that the locked file is still the one
 * at the path (lockfile.h).  0: held.  DFS_EBUSY (LOCK_NB): fd kept open,
 * unlocked.  Other errors: fd closed, nothing held. */
static int flock_io(dfs_lockmgr *m, struct entry *e, const char *id, int op)
{
  dfs_storage *st = m->st;
  int retried_emfile = 0;

  for (;;) {
    int r;
    if (e->fd < 0) {
      r = dfs__lockfile_open(st, id, e->name, 1, &e->fd, &e->dev, &e->ino);
      if (r < 0 && (errno == EMFILE || errno == ENFILE) && !retried_emfile) {
        retried_emfile = 1;
        drop_idle(m);
        continue;
      }
      if (r < 0)
        return r;
      e->stale = 0;
    }
    if (dfs_sys_flock(e->fd, op) < 0) {
      int err = errno;
      if (err == EWOULDBLOCK)
        return dfs__err(DFS_EBUSY, "lock %s: %s/%s is held by another holder", id,
                        st->files_path, e->name);
      /* Unknown state after a failed flock: close so nothing can stay held. */
      dfs_sys_close_quiet(e->fd);
      e->fd = -1;
      return dfs__errno(DFS_ELOCK, err, "lock %s: flock %s/%s", id, st->files_path, e->name);
    }
    r = dfs__lockfile_is_current(st, id, e->name, e->dev, e->ino);
    if (r == 1)
      return 0;
    /* The file was unlinked (or replaced) by a delete while we waited, or
     * since we cached it: this lock is worthless.  Closing drops it; open
     * the file now at the path and lock that. */
    dfs_sys_close_quiet(e->fd);
    e->fd = -1;
    if (r < 0)
      return r;
  }
}

/* As I/O owner: drop the flock of the last holder.  A stale file (its
 * entity deleted by dfs_delete during the hold) is unlinked here, at the
 * very end of the hold and while still held exclusively — unless the
 * holder re-created the entity since — and closed rather than kept.
 * Unlinking it any earlier (in dfs_delete) would let a new acquirer create
 * a fresh lock file and get in while the deleting holder still works under
 * its lock: two exclusive holders.  Best effort: a lock file left behind
 * is harmless.  A failed LOCK_UN closes too — closing the description
 * releases the lock for certain, so a failed release never leaves it held. */
static int unlock_io(dfs_lockmgr *m, struct entry *e, const char *id)
{
  if (e->fd < 0)
    return 0;
  if (e->stale) {
    char bname[DFS_NAME_MAX];
    struct stat sb;
    dfs__entity_name(bname, id, DFS_BLOB_SUFFIX);
    if (e->mode == DFS_LOCK_EXCLUSIVE &&
        dfs_sys_fstatat(m->st->files_fd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
      (void)dfs__lockfile_unlink_if_current(m->st, id, e->name, e->dev, e->ino);
    dfs_sys_close_quiet(e->fd);
    e->fd = -1;
    return 0;
  }
  if (dfs_sys_flock(e->fd, LOCK_UN) < 0) {
    int err = errno;
    dfs_sys_close_quiet(e->fd);
    e->fd = -1;
    return dfs__errno(DFS_EUNLOCK, err, "unlock %s: flock %s/%s", id, m->st->files_path,
                      e->name);
  }
  return 0;
}

/* ---- thread exit ------------------------------------------------------ */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static dfs_lockmgr *reg_head;   /* live managers; reg_mu                    */
static pthread_once_t tx_once = PTHREAD_ONCE_INIT;
static pthread_key_t tx_key;
static int tx_key_err;          /* tx_init's result (tx_once)               */
static _Thread_local int tx_armed; /* this thread has set tx_key            */

static void release_thread_holds(dfs_lockmgr *m);

static void tx_thread_exit(void *unused)
{
  (void)unused;
  pthread_mutex_lock(&reg_mu); /* keeps dfs_lockmgr_free out */
  for (dfs_lockmgr *m = reg_head; m; m = m->reg_next)
    release_thread_holds(m);
  pthread_mutex_unlock(&reg_mu);
}

/* fork(): a child must be able to create managers, so reg_mu is never
 * left locked by a thread that does not exist in the child. */
static void reg_fork_prepare(void) { pthread_mutex_lock(&reg_mu); }
static void reg_fork_release(void) { pthread_mutex_unlock(&reg_mu); }

static void tx_init(void)
{
  tx_key_err = pthread_key_create(&tx_key, tx_thread_exit);
  if (tx_key_err == 0)
    tx_key_err = pthread_atfork(reg_fork_prepare, reg_fork_release, reg_fork_release);
}

/* Make sure this thread's holds are released if it exits: after the first
 * time, one thread-local load. */
static int tx_arm(void)
{
  int r;
  if (tx_armed)
    return 0;
  if ((r = pthread_setspecific(tx_key, &tx_armed)) != 0)
    return dfs__errno(DFS_ENOMEM, r, "lock manager: pthread_setspecific");
  tx_armed = 1;
  return 0;
}

/* ---- public API ------------------------------------------------------- */

int dfs_lockmgr_new(dfs_lockmgr **out, dfs_storage *st)
{
  dfs_lockmgr *m;
  struct rlimit rl;

  DFS_CHECK_ARG(out != NULL, "out is NULL");
  *out = NULL;
  DFS_CHECK_ARG(st != NULL, "storage is NULL");
  pthread_once(&tx_once, tx_init);
  if (tx_key_err)
    return dfs__errno(DFS_ELOCK, tx_key_err, "lock manager: thread-exit key");
  m = dfs_calloc(1, sizeof *m);
  if (!m)
    return dfs__errno(DFS_ENOMEM, ENOMEM, "lock manager of %s", st->files_path);
  m->st = st;
  m->nbuckets = 64;
  m->buckets = dfs_calloc(m->nbuckets, sizeof *m->buckets);
  if (!m->buckets) {
    free(m);
    return dfs__errno(DFS_ENOMEM, ENOMEM, "lock manager of %s", st->files_path);
  }
  /* Cached descriptors must not starve the application of descriptors:
   * keep at most a quarter of the soft limit. */
  m->idle_cap = IDLE_CAP_MAX;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur / 4 < IDLE_CAP_MAX)
    m->idle_cap = rl.rlim_cur / 4 < IDLE_CAP_MIN ? IDLE_CAP_MIN : (size_t)(rl.rlim_cur / 4);
  pthread_mutex_init(&m->mu, NULL);
  pthread_condattr_init(&m->cvattr);
  pthread_condattr_setclock(&m->cvattr, CLOCK_MONOTONIC);

  pthread_mutex_lock(&reg_mu);
  m->reg_next = reg_head;
  reg_head = m;
  pthread_mutex_unlock(&reg_mu);

  pthread_mutex_lock(&st->mgr_mu);
  m->mgr_next = st->mgr_head;
  st->mgr_head = m;
  pthread_mutex_unlock(&st->mgr_mu);
  *out = m;
  return 0;
}

/* timeout_ms: < 0 block, 0 try, > 0 wait at most that long. */
static int acquire(dfs_lockmgr *m, const char *id, dfs_lock_type type, int timeout_ms)
{
  struct entry *e, *evicted = NULL;
  pthread_t self = pthread_self();
  int64_t deadline = 0, delay = 0;
  int rc = 1, tried_nb = 0, r;
  size_t len;
  uint64_t h;

  DFS_CHECK_ARG(m != NULL, "lock manager is NULL");
  DFS_CHECK_ARG(type == DFS_LOCK_SHARED || type == DFS_LOCK_EXCLUSIVE, "unknown lock type");
  if ((r = dfs_id_validate(id)) < 0)
    return r;
  if ((r = tx_arm()) < 0)
    return r;
  if (timeout_ms > 0)
    deadline = dfs__lock_deadline_ns(timeout_ms);
  len = strlen(id);
  h = hash_id(id, len);

  pthread_mutex_lock(&m->mu);
  e = get_entry(m, id, len, h);
  if (!e) {
    pthread_mutex_unlock(&m->mu);
    return DFS_ENOMEM;
  }
  if (holds(e, self)) {
    pthread_mutex_unlock(&m->mu);
    return dfs__err(DFS_EALREADY_LOCKED, "lock %s: this thread already holds it (%s)", id,
                    e->mode == DFS_LOCK_SHARED ? "shared" : "exclusive");
  }
  e->pins++;
  lru_unlink(m, e);

  while (rc == 1) {
    if (e->io == IO_NONE) {
      if (e->nholders > 0 && type == DFS_LOCK_SHARED && e->mode == DFS_LOCK_SHARED) {
        rc = add_holder(e, self, id); /* join: the flock is already ours */
        break;
      }
      if (e->nholders == 0) {
        /* Nobody in this manager holds it: take the flock.  First without
         * blocking (quick, a concurrent try may wait for it); a blocking
         * acquire that met a holder then waits inside flock() as
         * IO_BLOCKING, with m->mu released. */
        int blocking = timeout_ms < 0 && tried_nb;
        io_begin(m, e, blocking ? IO_BLOCKING : IO_QUICK);
        r = flock_io(m, e, id, (type == DFS_LOCK_SHARED ? LOCK_SH : LOCK_EX) |
                                   (blocking ? 0 : LOCK_NB));
        io_end(m, e);
        if (r == 0) {
          e->mode = type;
          rc = add_holder(e, self, id);
          if (rc < 0) { /* cannot record the hold: do not keep the lock */
            io_begin(m, e, IO_QUICK);
            (void)unlock_io(m, e, id);
            io_end(m, e);
          }
          break;
        }
        if (r != DFS_EBUSY) {
          rc = r;
          break;
        }
        tried_nb = 1;
        if (timeout_ms < 0)
          continue; /* now wait in flock() */
        if (timeout_ms == 0) {
          rc = DFS_EBUSY; /* detail set by flock_io */
          break;
        }
        if (dfs__lock_now_ns() >= deadline) {
          rc = dfs__err(DFS_ETIMEDOUT, "lock %s: %s/%s still held by another holder after %d ms",
                        id, m->st->files_path, e->name, timeout_ms);
          break;
        }
        /* Timed: flock cannot time out, so poll.  Sleep without m->mu and
         * without owning the entry, so other threads may use it. */
        pthread_mutex_unlock(&m->mu);
        dfs__lock_backoff(&delay, deadline);
        pthread_mutex_lock(&m->mu);
        continue;
      }
    }

    /* Another thread of this manager holds it incompatibly, or is doing
     * I/O on it: wait for that to change. */
    if (timeout_ms == 0 && e->io != IO_QUICK) {
      rc = dfs__err(DFS_EBUSY, "lock %s: %s", id,
                    e->io == IO_BLOCKING ? "another thread of this process is waiting for it"
                                         : "held by another thread of this process");
      break;
    }
    e->waiters++;
    if (timeout_ms > 0) {
      struct timespec ts;
      ts.tv_sec = (time_t)(deadline / 1000000000);
      ts.tv_nsec = (long)(deadline % 1000000000);
      r = pthread_cond_timedwait(&e->cv, &m->mu, &ts);
      e->waiters--;
      if (r == ETIMEDOUT && dfs__lock_now_ns() >= deadline &&
          !(e->io == IO_NONE && (e->nholders == 0 || (type == DFS_LOCK_SHARED &&
                                                      e->mode == DFS_LOCK_SHARED)))) {
        rc = dfs__err(DFS_ETIMEDOUT, "lock %s: still held by another thread after %d ms", id,
                      timeout_ms);
        break;
      }
    } else {
      pthread_cond_wait(&e->cv, &m->mu);
      e->waiters--;
    }
    tried_nb = 0; /* things changed: try without blocking first again */
  }

  e->pins--;
  settle(m, e, &evicted);
  pthread_mutex_unlock(&m->mu);
  destroy_list(evicted);
  return rc;
}

int dfs_lockmgr_acquire(dfs_lockmgr *m, const char *id, dfs_lock_type type)
{
  return acquire(m, id, type, -1);
}

int dfs_lockmgr_try_acquire(dfs_lockmgr *m, const char *id, dfs_lock_type type)
{
  return acquire(m, id, type, 0);
}

int dfs_lockmgr_acquire_timeout(dfs_lockmgr *m, const char *id, dfs_lock_type type,
                                int timeout_ms)
{
  return acquire(m, id, type, timeout_ms);
}

int dfs_lockmgr_release(dfs_lockmgr *m, const char *id)
{
  struct entry *e, *evicted = NULL;
  pthread_t self = pthread_self();
  size_t len;
  int r, rc = 0;

  DFS_CHECK_ARG(m != NULL, "lock manager is NULL");
  if ((r = dfs_id_validate(id)) < 0)
    return r;
  len = strlen(id);

  pthread_mutex_lock(&m->mu);
  e = find(m, id, len, hash_id(id, len));
  if (!e || !holds(e, self)) {
    pthread_mutex_unlock(&m->mu);
    return 0; /* not held by this thread: nothing to do */
  }
  remove_holder(e, self);
  if (e->nholders == 0) {
    /* Last holder: give the flock back so other processes get a turn.
     * Done as I/O owner with m->mu released (LOCK_UN is a network round
     * trip on a network filesystem). */
    e->pins++;
    io_begin(m, e, IO_QUICK);
    rc = unlock_io(m, e, id);
    io_end(m, e);
    e->pins--;
  }
  settle(m, e, &evicted);
  pthread_mutex_unlock(&m->mu);
  destroy_list(evicted);
  return rc;
}

int dfs_lockmgr_release_all(dfs_lockmgr *m)
{
  struct entry *work = NULL, *e, *evicted = NULL;
  int rc = 0;

  DFS_CHECK_ARG(m != NULL, "lock manager is NULL");
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (e = m->buckets[i]; e; e = e->hnext) {
      if (e->nholders == 0)
        continue; /* idle, or I/O in progress (never with holders) */
      e->nholders = 0;
      e->pins++;
      e->io = IO_QUICK; /* we are its I/O owner until io_end */
      e->work_next = work;
      work = e;
    }
  }
  pthread_mutex_unlock(&m->mu);

  for (e = work; e; e = e->work_next) {
    char id[DFS_ID_MAX + 1];
    memcpy(id, e->name, e->idlen);
    id[e->idlen] = '\0';
    int r = unlock_io(m, e, id);
    if (r < 0 && rc == 0)
      rc = r;
  }

  pthread_mutex_lock(&m->mu);
  while (work) {
    e = work;
    work = e->work_next;
    e->io = IO_NONE;
    e->pins--;
    if (e->waiters)
      pthread_cond_broadcast(&e->cv);
    settle(m, e, &evicted);
  }
  pthread_mutex_unlock(&m->mu);
  destroy_list(evicted);
  return rc;
}

/* Release every hold of the calling thread (it is exiting).  One entry at
 * a time through dfs_lockmgr_release, which does the I/O without m->mu. */
static void release_thread_holds(dfs_lockmgr *m)
{
  pthread_t self = pthread_self();
  char id[DFS_ID_MAX + 1];

  for (;;) {
    int found = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nbuckets && !found; i++) {
      for (struct entry *e = m->buckets[i]; e; e = e->hnext) {
        if (holds(e, self)) {
          memcpy(id, e->name, e->idlen);
          id[e->idlen] = '\0';
          found = 1;
          break;
        }
      }
    }
    pthread_mutex_unlock(&m->mu);
    if (!found)
      return;
    (void)dfs_lockmgr_release(m, id); /* the hold is gone even on EUNLOCK */
  }
}

void dfs_lockmgr_free(dfs_lockmgr *m)
{
  dfs_lockmgr **pp;
  struct entry *all = NULL;

  if (!m)
    return;
  /* Unregister first, so dfs_delete no longer looks at us. */
  pthread_mutex_lock(&m->st->mgr_mu);
  for (pp = &m->st->mgr_head; *pp; pp = &(*pp)->mgr_next) {
    if (*pp == m) {
      *pp = m->mgr_next;
      break;
    }
  }
  pthread_mutex_unlock(&m->st->mgr_mu);
  /* ... and from the registry, so no exiting thread looks at us (waits for
   * one that is releasing its holds here). */
  pthread_mutex_lock(&reg_mu);
  for (pp = &reg_head; *pp; pp = &(*pp)->reg_next) {
    if (*pp == m) {
      *pp = m->reg_next;
      break;
    }
  }
  pthread_mutex_unlock(&reg_mu);

  (void)dfs_lockmgr_release_all(m); /* best effort: closing releases anyway */
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->hnext;
      e->work_next = all;
      all = e;
    }
  }
  destroy_list(all);
  free(m->buckets);
  pthread_condattr_destroy(&m->cvattr);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

int dfs__lockmgr_unlink_if_held_exclusive(dfs_storage *st, const char *id)
{
  pthread_t self = pthread_self();
  size_t len;
  uint64_t h;
  int rc = 0;

  if (!st || dfs_id_validate(id) < 0)
    return 0; /* dfs_delete validated the id; nothing can hold an invalid one */
  /* Go workers do not re-check after flock, so in a store shared with them
   * a lock file must never be removed: refuse here too, whatever the
   * caller checks. */
  if (st->flags & DFS_OPT_GO_COMPAT)
    return 0;
  len = strlen(id);
  h = hash_id(id, len);

  pthread_mutex_lock(&st->mgr_mu);
  for (dfs_lockmgr *m = st->mgr_head; m && rc == 0; m = m->mgr_next) {
    struct entry *e;
    pthread_mutex_lock(&m->mu);
    e = find(m, id, len, h);
    /* Held exclusively by this thread means: holders == {self}, mode EX,
     * and therefore no I/O in progress — e->fd/dev/ino are stable and
     * locked LOCK_EX by us. */
    if (e && e->nholders == 1 && e->mode == DFS_LOCK_EXCLUSIVE &&
        pthread_equal(e->holders[0], self) && e->fd >= 0) {
      e->stale = 1; /* unlinked and closed at release (unlock_io) */
      rc = 1;
    }
    pthread_mutex_unlock(&m->mu);
  }
  pthread_mutex_unlock(&st->mgr_mu);
  return rc;
}
