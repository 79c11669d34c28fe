/*
 * vcache.c — the stat cache of parsed metadata, behind dfs_version() and
 * dfs_read().
 *
 * dfs_version() is called by workers before every use of a cached entity,
 * so it must cost about one fstatat(); dfs_read() is held against a bare
 * open/read/close of both files, and parsing the metadata JSON costs more
 * than all of its syscalls.  The cache maps an id to the identity of the
 * metadata file it last parsed — (st_dev, st_ino, st_size, st_mtim,
 * st_ctim) — and what it said (the dfs_meta and the blob's size and hash).
 * Every write replaces the metadata file by rename, so a changed file has a
 * new identity.  dfs_read still reads the blob and checks it against the
 * cached size and hash, so a cache hit can never pair metadata with a blob
 * that does not belong to it.
 *
 * The trap is the one git calls "racily clean": filesystems reuse inode
 * numbers at once, timestamps may be coarse (ext4 ticks every few ms), and
 * sizes repeat, so a file replaced within one clock tick could carry the
 * same identity as the one it replaced.  The rule that closes it: an entry
 * is stored only if the file's ctime is at least DFS_VERSION_SETTLE_MS
 * older than now.  Any later replacement gets a ctime of "now" or later,
 * which differs from the cached one (given clocks within that margin, see
 * storage.h Caveats).  A file changed in the last second is simply re-read.
 *
 * Structure: a direct-mapped table of VC_SLOTS entries indexed by XXH3 of
 * the id; a collision evicts.  One mutex guards the table; it is held for
 * a memcmp, never across a syscall.
 */
#include "vcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "deltafs/error.h"
#include "deltafs/storage.h"
#include "meta_int.h"
#include "sys.h"

#define VC_SLOTS 4096

struct vc_entry {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  dfs_meta *m;                    /* private copy, one allocation */
  struct dfs_vc_integrity integ;
  unsigned char idlen; /* 0: empty slot */
  char id[DFS_ID_MAX];
};

struct dfs_vcache {
  pthread_mutex_t mu; /* guards slots */
  struct vc_entry slots[VC_SLOTS];
};

int dfs__vcache_new(struct dfs_vcache **out)
{
  struct dfs_vcache *c = dfs_calloc(1, sizeof *c);
  if (!c)
    return DFS_ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

void dfs__vcache_free(struct dfs_vcache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < VC_SLOTS; i++)
    free(c->slots[i].m);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static struct vc_entry *slot(struct dfs_vcache *c, const char *id, size_t len)
{
  return &c->slots[XXH3_64bits(id, len) & (VC_SLOTS - 1)];
}

static int same_ts(const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int matches(const struct vc_entry *e, const char *id, size_t len, const struct stat *sb)
{
  return e->idlen == len && memcmp(e->id, id, len) == 0 && e->dev == sb->st_dev &&
         e->ino == sb->st_ino && e->size == sb->st_size && same_ts(&e->mtime, &sb->st_mtim) &&
         same_ts(&e->ctime, &sb->st_ctim);
}

int dfs__vcache_get(struct dfs_vcache *c, const char *id, const struct stat *sb, int64_t *version)
{
  size_t len = strlen(id);
  struct vc_entry *e = slot(c, id, len);
  int hit;
  pthread_mutex_lock(&c->mu);
  hit = matches(e, id, len, sb);
  if (hit)
    *version = e->m->version;
  pthread_mutex_unlock(&c->mu);
  return hit;
}

int dfs__vcache_get_meta(struct dfs_vcache *c, const char *id, const struct stat *sb,
                         dfs_meta **m, struct dfs_vc_integrity *integ)
{
  size_t len = strlen(id);
  struct vc_entry *e = slot(c, id, len);
  int hit;
  pthread_mutex_lock(&c->mu);
  hit = matches(e, id, len, sb);
  if (hit) {
    *m = dfs__meta_dup(e->m);
    *integ = e->integ;
    hit = *m != NULL;
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

void dfs__vcache_put(struct dfs_vcache *c, const char *id, const struct stat *sb,
                     const dfs_meta *m, const struct dfs_vc_integrity *integ)
{
  size_t len = strlen(id);
  struct vc_entry *e;
  struct timespec now;
  int64_t age_ms;
  dfs_meta *copy, *old;

  clock_gettime(CLOCK_REALTIME, &now);
  age_ms = (int64_t)(now.tv_sec - sb->st_ctim.tv_sec) * 1000 +
           (now.tv_nsec - sb->st_ctim.tv_nsec) / 1000000;
  if (age_ms < DFS_VERSION_SETTLE_MS)
    return; /* racily new: see the top of this file */
  copy = dfs__meta_dup(m);
  if (!copy)
    return; /* a cache, not a promise */
  e = slot(c, id, len);
  pthread_mutex_lock(&c->mu);
  old = e->m;
  e->dev = sb->st_dev;
  e->ino = sb->st_ino;
  e->size = sb->st_size;
  e->mtime = sb->st_mtim;
  e->ctime = sb->st_ctim;
  e->m = copy;
  e->integ = *integ;
  memcpy(e->id, id, len);
  e->idlen = (unsigned char)len;
  pthread_mutex_unlock(&c->mu);
  free(old);
}

void dfs__vcache_forget(struct dfs_vcache *c, const char *id)
{
  size_t len = strlen(id);
  struct vc_entry *e = slot(c, id, len);
  dfs_meta *old = NULL;
  pthread_mutex_lock(&c->mu);
  if (e->idlen == len && memcmp(e->id, id, len) == 0) {
    e->idlen = 0;
    old = e->m;
    e->m = NULL;
  }
  pthread_mutex_unlock(&c->mu);
  free(old);
}
