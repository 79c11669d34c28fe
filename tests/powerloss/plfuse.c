/*
 * plfuse.c — the power-loss recorder: a FUSE filesystem that serves one
 * disk image and logs every write and every flush to it, in order.
 *
 *   plfuse IMAGE LOG MOUNTPOINT
 *
 * MOUNTPOINT then holds two files:
 *   disk.img  IMAGE, read/write.  A loop device is set up on it and ext4 is
 *             mounted on the loop device (powerloss.sh).  Every write is
 *             applied to IMAGE and appended to LOG (PL_WRITE); every fsync
 *             is appended as PL_FLUSH — the loop driver turns a block-layer
 *             cache flush (REQ_PREFLUSH, and FUA, which it emulates with a
 *             flush) into vfs_fsync() on its backing file, which FUSE
 *             delivers here.  fallocate punch-hole/zero-range (loop's
 *             DISCARD / WRITE_ZEROES) is logged as PL_ZERO.
 *   ctl       write-only side channel: each write() is one workload marker
 *             ("B W id ver", "A W id ver", ...), appended to LOG as PL_MARK.
 *
 * Why markers go through the same daemon: it is single-threaded (-s), so a
 * marker is logged after every request the kernel sent before the marker's
 * write() — in particular after the flush that made an acknowledged write
 * durable (dfs_write returns only after its directory fsync completed, and
 * that fsync's FUSE reply came from this loop).  The log is therefore one
 * total order of disk writes, flushes and workload events, with no clock.
 *
 * Every file is opened with direct_io, so no FUSE page cache sits between
 * the loop device and this process: each write the loop device issues is
 * one request here, in the order the kernel issued them.  The image's own
 * page cache (IMAGE on the host filesystem) is only the "live" copy; the
 * replay rebuilds crash states from the log alone.
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_log.h"

static int img_fd = -1;
static FILE *log_fp;
static uint64_t img_size;
static int log_failed;

/* Append one record; a log we cannot write makes the whole recording
 * worthless, so the failure is remembered and reported at exit (and every
 * later request fails with EIO so the workload stops early). */
static void log_rec(uint32_t type, uint64_t off, const void *data, uint32_t len,
                    uint32_t zero_len)
{
  struct pl_rec r = {type, data ? len : zero_len, off};
  if (fwrite(&r, sizeof r, 1, log_fp) != 1 || (data && len && fwrite(data, len, 1, log_fp) != 1))
    log_failed = 1;
}

static int is_disk(const char *path)
{
  return strcmp(path, "/disk.img") == 0;
}

static int is_ctl(const char *path)
{
  return strcmp(path, "/ctl") == 0;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
  (void)fi;
  memset(st, 0, sizeof *st);
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else if (is_disk(path)) {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = (off_t)img_size;
  } else if (is_ctl(path)) {
    st->st_mode = S_IFREG | 0200;
    st->st_nlink = 1;
  } else {
    return -ENOENT;
  }
  return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  (void)off;
  (void)fi;
  (void)flags;
  if (strcmp(path, "/") != 0)
    return -ENOENT;
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  fill(buf, "disk.img", NULL, 0, 0);
  fill(buf, "ctl", NULL, 0, 0);
  return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
  if (!is_disk(path) && !is_ctl(path))
    return -ENOENT;
  /* No FUSE page cache: every write reaches us as its own request, in the
   * order the loop device issued it (see the top of the file). */
  fi->direct_io = 1;
  fi->keep_cache = 0;
  return 0;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
  (void)fi;
  /* O_TRUNC on ctl is harmless; the disk never changes size. */
  if (is_ctl(path))
    return 0;
  if (is_disk(path))
    return (uint64_t)size == img_size ? 0 : -EPERM;
  return -ENOENT;
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
  ssize_t n;
  (void)fi;
  if (!is_disk(path))
    return is_ctl(path) ? 0 : -ENOENT;
  if ((uint64_t)off >= img_size)
    return 0;
  if ((uint64_t)off + size > img_size)
    size = (size_t)(img_size - (uint64_t)off);
  n = pread(img_fd, buf, size, off);
  return n < 0 ? -errno : (int)n;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
  (void)fi;
  if (log_failed)
    return -EIO;
  if (is_ctl(path)) {
    size_t n = size;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
      n--;
    log_rec(PL_MARK, 0, buf, (uint32_t)n, 0);
    return (int)size;
  }
  if (!is_disk(path))
    return -ENOENT;
  if (off < 0 || (uint64_t)off + size > img_size)
    return -ENOSPC;
  for (size_t done = 0; done < size;) {
    ssize_t n = pwrite(img_fd, buf + done, size - done, off + (off_t)done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += (size_t)n;
  }
  log_rec(PL_WRITE, (uint64_t)off, buf, (uint32_t)size, 0);
  return (int)size;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
  (void)datasync;
  (void)fi;
  if (log_failed)
    return -EIO;
  /* The live image needs no fsync of its own: durability is what the log
   * says, and the replay rebuilds every state from the log. */
  if (is_disk(path))
    log_rec(PL_FLUSH, 0, NULL, 0, 0);
  return 0;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
  static const char zeros[65536];
  (void)fi;
  if (!is_disk(path))
    return -EOPNOTSUPP;
  if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
    return 0; /* plain preallocation: the image is fully allocated already */
  if (off < 0 || len < 0 || (uint64_t)off + (uint64_t)len > img_size)
    return -EINVAL;
  /* Written as zeros rather than punched so the live image stays a plain
   * file; the log records one PL_ZERO. */
  for (off_t done = 0; done < len;) {
    size_t n = (size_t)(len - done) < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
    ssize_t w = pwrite(img_fd, zeros, n, off + done);
    if (w < 0)
      return -errno;
    done += w;
  }
  if (log_failed)
    return -EIO;
  log_rec(PL_ZERO, (uint64_t)off, NULL, 0, (uint32_t)len);
  return 0;
}

static const struct fuse_operations ops = {
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .truncate = op_truncate,
    .read = op_read,
    .write = op_write,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
};

int main(int argc, char **argv)
{
  struct stat sb;
  int rc;

  if (argc != 4) {
    fprintf(stderr, "usage: %s IMAGE LOG MOUNTPOINT\n", argv[0]);
    return 2;
  }
  img_fd = open(argv[1], O_RDWR | O_CLOEXEC);
  if (img_fd < 0 || fstat(img_fd, &sb) < 0) {
    perror(argv[1]);
    return 1;
  }
  img_size = (uint64_t)sb.st_size;
  log_fp = fopen(argv[2], "wbe");
  if (!log_fp) {
    perror(argv[2]);
    return 1;
  }
  /* A large buffer: the log is read only after the daemon exits. */
  setvbuf(log_fp, NULL, _IOFBF, 1 << 20);
  if (fwrite(PL_MAGIC, 8, 1, log_fp) != 1 || fwrite(&img_size, sizeof img_size, 1, log_fp) != 1) {
    perror(argv[2]);
    return 1;
  }
  {
    /* -f: foreground (the harness owns the process); -s: single-threaded,
     * which is what makes the log one total order (top of the file);
     * auto_unmount: the mount goes away if this process dies. */
    char *fargv[] = {argv[0], argv[3], "-f", "-s", "-o", "auto_unmount,fsname=dfs-plrec", NULL};
    rc = fuse_main(6, fargv, &ops, NULL);
  }
  if (fclose(log_fp) != 0)
    log_failed = 1;
  if (log_failed) {
    fprintf(stderr, "plfuse: writing the log %s failed: the recording is incomplete\n", argv[2]);
    return 1;
  }
  return rc;
}
