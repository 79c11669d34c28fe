/*
 * deltafs/storage.h — the store: entities (blob + metadata) and templates.
 *
 * Layout (DESIGN §1; normative, Go workers read it):
 *
 *   <base>/files/<id>.json.enc        encrypted blob, opaque bytes
 *   <base>/files/<id>.meta.json       metadata JSON (deltafs/meta.h)
 *   <base>/files/<id>.json.enc.lock   lock file, 0 bytes (deltafs/lock.h)
 *   <base>/templates/<schema-id>.json JSON Schema template, opaque bytes
 *   <base>/.deltafs-tmp/              deltafs's in-flight temp files
 *
 * Lifecycle
 * ---------
 *   dfs_storage *st;
 *   if (dfs_storage_open(&st, "/shared/db", NULL) < 0)
 *       fprintf(stderr, "%s\n", dfs_last_error());
 *   ... dfs_write / dfs_read / ... ...
 *   dfs_storage_close(st);
 *
 * dfs_storage_open() creates the directories if needed, opens them once
 * (every later access goes through those directory descriptors with
 * openat/renameat and O_NOFOLLOW, so a symlink planted in the store is never
 * followed) and recovers what a crashed writer left in `.deltafs-tmp/`.
 *
 * Durability
 * ----------
 * dfs_write() returns 0 only when the new pair is durable: both files were
 * fsync'd and renamed into place and `files/` was fsync'd.  After a crash
 * (process or power) at any point, a read returns the old pair or the new
 * pair, never a mix, and a write that returned 0 is never lost.  The
 * protocol and its recovery are described at the top of src/storage.c.
 * DFS_OPT_NO_SYNC skips every fsync: for tests and scratch stores only.
 *
 * Concurrency
 * -----------
 * A dfs_storage handle may be used by many threads at once.  Any number of
 * handles, processes and hosts may share one store.  A reader never sees a
 * mixed pair: if a read meets a blob that does not belong to its metadata
 * it resolves it (a writer mid-commit, or a crash) or returns DFS_ECORRUPT;
 * it never returns wrong data.  Writers of ONE entity must be serialized by
 * the caller with the entity's exclusive lock (deltafs/lock.h), as the Go
 * workers do; dfs_write_if_version's check is atomic only under that lock.
 *
 * Errors: every call returns 0 or a negative DFS_E* code (deltafs/error.h),
 * with the detail in dfs_last_error().  A failed call leaves the store as it
 * was: no partial file at a final name, no temp file, no lock held.
 *
 * Ids (entity ids and schema ids) must be 1..200 bytes, contain no '/',
 * '\\', NUL or control character (0x01-0x1f, 0x7f), not be "." or "..", and
 * not start with '.'.  Anything else is DFS_EINVALID_ID before any file is
 * touched.
 *
 * Caveats
 * -------
 * - ext4 without a journal cannot make a rename-overwrite crash-atomic: use
 *   a journaled filesystem (ext4 default, XFS) or a network filesystem.
 * - Clocks: dfs_version()'s stat cache trusts a metadata file only once its
 *   ctime is DFS_VERSION_SETTLE_MS in the past, so hosts sharing a store
 *   should keep clocks within that of each other (NTP).
 */
#ifndef DELTAFS_STORAGE_H
#define DELTAFS_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "deltafs/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dfs_storage dfs_storage;

#define DFS_OPTIONS_VERSION 1u

typedef struct dfs_options {
  unsigned version;   /* DFS_OPTIONS_VERSION                               */
  unsigned flags;     /* DFS_OPT_*                                         */
  unsigned file_mode; /* mode of new files, before umask; 0 means 0640     */
} dfs_options;

#define DFS_OPT_GO_COMPAT (1u << 0) /* never unlink lock files               */
#define DFS_OPT_NO_SYNC (1u << 1)   /* skip fsync: tests and scratch stores only */

#define DFS_OPTIONS_INIT {DFS_OPTIONS_VERSION, 0u, 0640u}

/* Longest valid id, in bytes. */
#define DFS_ID_MAX 200

/* How long (ms) a metadata file must be unchanged before dfs_version may
 * answer from its stat cache (see dfs_version). */
#define DFS_VERSION_SETTLE_MS 1000

typedef struct dfs_file {
  const void *blob;  /* the blob; never NULL (an empty blob points at "")   */
  size_t blob_len;   /* its length                                         */
  dfs_meta meta;     /* strings owned by the dfs_file                      */
} dfs_file;

typedef struct dfs_id_list {
  size_t count; /* number of ids                                           */
  char **ids;   /* count ids, in directory order                          */
} dfs_id_list;

/* 0 if `id` is a valid entity/schema id, else DFS_EINVALID_ID (detail set). */
int dfs_id_validate(const char *id);

/* Open (creating if needed) the store at base_path.  opts may be NULL for
 * the defaults.  Returns 0, DFS_EINVAL (NULL, bad options version or flags),
 * DFS_EWRITE (cannot create a directory), DFS_EREAD (cannot open one, e.g.
 * no permission, or a symlink in place of files/), DFS_ENOMEM. */
int dfs_storage_open(dfs_storage **out, const char *base_path, const dfs_options *opts);

/* Close the handle; NULL is fine.  Lock managers of the store must be freed
 * first. */
void dfs_storage_close(dfs_storage *st);

/* Atomically replace entity `id` with blob + meta, durably (see above).
 * meta->version is stored as given (the caller bumps it).
 * Returns 0, DFS_EINVALID_ID, DFS_EINVAL (NULL st/meta, NULL blob with
 * len > 0, timestamp out of range), DFS_EWRITE, DFS_ENOMEM. */
int dfs_write(dfs_storage *st, const char *id, const void *blob, size_t len,
              const dfs_meta *meta);

/* As dfs_write, but only if the stored version equals expected_version
 * (0: the entity must not exist).  DFS_ECONFLICT otherwise, and nothing is
 * written.  Also DFS_ECORRUPT / DFS_EREAD if the stored version cannot be
 * read.  Atomic only while the caller holds the entity's exclusive lock. */
int dfs_write_if_version(dfs_storage *st, const char *id, const void *blob,
                         size_t len, const dfs_meta *meta, int64_t expected_version);

/* Read entity `id`.  *out is the caller's; free it with dfs_file_free().
 * The blob is verified against deltafs's integrity keys when present.
 * Returns 0, DFS_ENOTFOUND (neither file, or only one of them), 
 * DFS_EINVALID_ID, DFS_ECORRUPT (bad metadata, blob does not match it),
 * DFS_EREAD, DFS_EINVAL, DFS_ENOMEM. */
int dfs_read(dfs_storage *st, const char *id, dfs_file **out);
void dfs_file_free(dfs_file *f); /* NULL is fine */

/* The stored version of `id`, cheaply: one fstatat when the metadata file is
 * unchanged since this handle last parsed it and settled (its ctime is at
 * least DFS_VERSION_SETTLE_MS old); otherwise the metadata is parsed and the
 * blob's size checked against it (a write caught between its two renames is
 * resolved as dfs_read does).  The blob's hash is not checked: a torn pair
 * of equal sizes reports the metadata's version here and DFS_ECORRUPT from
 * dfs_read.
 * Returns 0, DFS_ENOTFOUND, DFS_EINVALID_ID, DFS_ECORRUPT, DFS_EREAD. */
int dfs_version(dfs_storage *st, const char *id, int64_t *out);

/* Remove both files of `id` (metadata first, so no reader sees a blob
 * without its metadata).  An absent entity is DFS_OK.
 * Lock file: unless the store was opened with DFS_OPT_GO_COMPAT, the lock
 * file goes too, always while it is held exclusively — either by the
 * calling thread through a dfs_lockmgr of this store (the usual sequence:
 * acquire exclusive, delete, release; the file is then removed by the
 * release, at the very end of the hold, so nobody can lock a fresh file and
 * get in while the deleter still works), or at once by dfs_delete itself
 * with a non-blocking try when nobody holds it.  If someone else holds it,
 * it is left in place (harmless; a later delete or `deltafs fsck --repair`
 * removes it).  Every acquirer re-checks that the file it locked is still
 * the one at the path, so the removal never lets two exclusive holders in.
 * Returns 0, DFS_EINVALID_ID, DFS_EWRITE, DFS_EINVAL. */
int dfs_delete(dfs_storage *st, const char *id);

/* 1 if both files of `id` exist, 0 if not (also when only one does),
 * or a negative code (DFS_EINVALID_ID, DFS_EREAD, DFS_EINVAL). */
int dfs_exists(dfs_storage *st, const char *id);

/* All entity ids (names `<id>.json.enc` whose id is valid), in directory
 * order (unsorted: sorting a million ids would cost more than reading the
 * directory; qsort the array if you need an order).  Temp
 * files, lock files, metadata and foreign files are ignored.
 * Returns 0, DFS_EREAD, DFS_ENOMEM, DFS_EINVAL. */
int dfs_list(dfs_storage *st, dfs_id_list **out);
void dfs_list_free(dfs_id_list *l); /* NULL is fine */

/* Call fn(id, payload) for every entity id, in directory order, without
 * building a list (constant memory).  A non-zero return from fn stops the
 * walk and is returned.  Returns 0, fn's value, DFS_EREAD, DFS_EINVAL. */
int dfs_list_each(dfs_storage *st, int (*fn)(const char *id, void *payload),
                  void *payload);

/* Templates: `templates/<schema_id>.json`, written with the same atomic,
 * durable routine as blobs.  dfs_template_read's *out (NUL-terminated for
 * convenience, not counted in *out_len) is freed with dfs_free().
 * Returns as dfs_write / dfs_read. */
int dfs_template_write(dfs_storage *st, const char *schema_id, const void *data,
                       size_t len);
int dfs_template_read(dfs_storage *st, const char *schema_id, void **out,
                      size_t *out_len);
/* Schema ids of all templates (as dfs_list). */
int dfs_template_list(dfs_storage *st, dfs_id_list **out);

/* Free a buffer the library allocated (dfs_template_read, dfs_meta_parse). */
void dfs_free(void *p);

/* The absolute directories of the store (valid while st is open). */
const char *dfs_files_dir(const dfs_storage *st);
const char *dfs_templates_dir(const dfs_storage *st);
const char *dfs_base_dir(const dfs_storage *st);

/* The absolute paths of id's blob and metadata into buf.  Returns 0,
 * DFS_EINVALID_ID, DFS_EINVAL (NULL or buf too small). */
int dfs_blob_path(const dfs_storage *st, const char *id, char *buf, size_t size);
int dfs_meta_path(const dfs_storage *st, const char *id, char *buf, size_t size);
int dfs_lock_path(const dfs_storage *st, const char *id, char *buf, size_t size);

/* The options the store was opened with (flags, file_mode). */
unsigned dfs_storage_flags(const dfs_storage *st);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_STORAGE_H */
