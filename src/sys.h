/*
 * sys.h — every system call deltafs makes that can fail goes through here.
 *
 * Why: so that (1) EINTR is retried in exactly one place, O_CLOEXEC is
 * never forgotten, and close() is never retried; and (2) a test build can
 * fail the Nth call with a chosen errno, or kill the process at the Nth
 * call, to prove every error path and every crash point (the idea of
 * SQLite's aSyscall[] table, src/test_syscall.c).
 *
 * In a normal build (DFS_FAULT_INJECTION undefined) the fault hook is a
 * constant 0 and compiles away: the wrappers are the bare syscalls plus the
 * EINTR loop.  In a test build (-DDFS_FAULT_INJECTION=1, the deltafs_fi
 * library the tests link) each wrapper first asks dfs__fault_hit(kind),
 * which counts calls and, at the armed position, returns an errno to fail
 * with (see src/fault.h for the test-side API).
 *
 * EINTR: an injected EINTR is returned to the wrapper exactly as the kernel
 * would return it, so the wrapper's retry loop is what is tested.
 */
#ifndef DFS_SYS_H
#define DFS_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Call kinds, for counting and for arming faults at one kind only. */
enum dfs_sys_kind {
  DFS_SYS_OPEN = 0,  /* open, openat                     */
  DFS_SYS_READ,      /* read, pread                      */
  DFS_SYS_WRITE,     /* write, pwrite                    */
  DFS_SYS_FSYNC,     /* fsync                            */
  DFS_SYS_FDATASYNC, /* fdatasync, sync_file_range       */
  DFS_SYS_RENAME,    /* renameat                         */
  DFS_SYS_UNLINK,    /* unlinkat (files and dirs)        */
  DFS_SYS_MKDIR,     /* mkdirat                          */
  DFS_SYS_FLOCK,     /* flock                            */
  DFS_SYS_FSTAT,     /* fstat, fstatat                   */
  DFS_SYS_GETDENTS,  /* getdents64                       */
  DFS_SYS_CLOSE,     /* close                            */
  DFS_SYS_MALLOC,    /* malloc, calloc, realloc, strdup  */
  DFS_SYS_FUTIMENS,  /* futimens                         */
  DFS_SYS_KIND_COUNT
};

#ifdef DFS_FAULT_INJECTION
int dfs__fault_hit(enum dfs_sys_kind kind);
#else
static inline int dfs__fault_hit(enum dfs_sys_kind kind) { (void)kind; return 0; }
#endif

/* All return what the syscall returns (-1 with errno set on failure), after
 * retrying EINTR.  openat always adds O_CLOEXEC. */
int dfs_sys_openat(int dirfd, const char *path, int flags, unsigned mode);
ssize_t dfs_sys_read(int fd, void *buf, size_t len);
ssize_t dfs_sys_pread(int fd, void *buf, size_t len, off_t off);
ssize_t dfs_sys_write(int fd, const void *buf, size_t len);
int dfs_sys_fsync(int fd);
int dfs_sys_fdatasync(int fd);
int dfs_sys_renameat(int olddir, const char *oldp, int newdir, const char *newp);
/* renameat2(2) with flags (RENAME_EXCHANGE...); counted as DFS_SYS_RENAME. */
int dfs_sys_renameat2(int olddir, const char *oldp, int newdir, const char *newp,
                      unsigned flags);
int dfs_sys_unlinkat(int dirfd, const char *path, int flags);
int dfs_sys_mkdirat(int dirfd, const char *path, unsigned mode);
int dfs_sys_flock(int fd, int op);
int dfs_sys_fstat(int fd, struct stat *st);
int dfs_sys_fstatat(int dirfd, const char *path, struct stat *st, int flags);
ssize_t dfs_sys_getdents64(int fd, void *buf, size_t len);
int dfs_sys_futimens(int fd, const struct timespec times[2]);
/* close is never retried (on Linux the descriptor is gone even on EINTR);
 * errno is preserved when ignore_errors is set, for cleanup paths. */
int dfs_sys_close(int fd);
void dfs_sys_close_quiet(int fd);

/* Allocation goes through here too, so ENOMEM paths can be tested. */
void *dfs_malloc(size_t n);
void *dfs_calloc(size_t n, size_t size);
void *dfs_realloc(void *p, size_t n);
char *dfs_strdup(const char *s);
char *dfs_strndup(const char *s, size_t n);

/* Write all len bytes (short writes and EINTR handled).  0 or -1/errno. */
int dfs_sys_write_all(int fd, const void *buf, size_t len);
/* Read a whole regular file from fd, at most max bytes (more: -1/EFBIG).
 * *out is NUL-terminated (not counted); free with free().  0 or -1/errno. */
int dfs_sys_read_all(int fd, size_t max, char **out, size_t *out_len);
/* The same, also giving the fstat of the descriptor that was read. */
int dfs_sys_read_all_st(int fd, size_t max, char **out, size_t *out_len, struct stat *st_out);

/* Read dirfd/name whole: open O_RDONLY | O_NOFOLLOW | O_NONBLOCK, then
 * dfs_sys_read_all_st.  O_NOFOLLOW: a symlink planted in the store is never
 * read through; O_NONBLOCK: a FIFO planted there cannot hang the open (and
 * read_all refuses anything not regular).  0, or -1 with errno. */
int dfs_sys_load_at(int dirfd, const char *name, size_t max, char **out, size_t *out_len,
                    struct stat *st_out);

/* Call fn(name, d_type, p) for every entry of directory dirfd except "."
 * and "..", reading it with getdents64 through a fresh descriptor (so
 * concurrent walks do not share an offset) and a bufsz-byte buffer.
 * Returns fn's first non-zero value (which stops the walk) or 0 at the end.
 * If open, the buffer's allocation or getdents64 fails, *failed is set to
 * 1, errno says why, and the return value is 0. */
int dfs_sys_dir_each(int dirfd, size_t bufsz,
                     int (*fn)(const char *name, unsigned char type, void *p), void *p,
                     int *failed);

/* 64 random bits, cheap (per-thread generator seeded from getrandom). */
uint64_t dfs_random64(void);

#endif /* DFS_SYS_H */
