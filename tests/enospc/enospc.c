/*
 * enospc.c — writes into a filesystem that really runs full.
 *
 * The fault sweep (test_faults.c) injects ENOSPC at one syscall at a time;
 * this test lets the kernel produce it, wherever it comes (a short write,
 * write(2) itself, fsync, the creation of a temp, a rename that needs a
 * new directory block...), on two filesystems:
 *
 *   tmpfs  mounted with size=2m;
 *   ext4   an 8 MiB image (mkfs.ext4, journaled, delayed allocation),
 *          loop-mounted — only if mkfs.ext4 and loop devices are there.
 *
 * Scenario on each: a store with 16 entities and a template at version 1;
 * then rounds of overwriting every entity with ever larger blobs (and a
 * new id, and the template) until the filesystem is full and every write
 * fails.  After EVERY call:
 *   - success: the entity now reads the new version;
 *   - failure: DFS_EWRITE, a detail naming the store and "No space left on
 *     device", the previous version of that entity still reads intact
 *     (byte for byte), a new id does not exist, no temp file is left
 *     (.deltafs-tmp, files/, templates/);
 * then every entity reads its last acknowledged version, a re-open of the
 * full store works, and after deleting half of the entities writes succeed
 * again.
 *
 * Isolation and cleanup: the process unshares its mount namespace (made
 * private) before mounting, so the mounts exist only for it and disappear
 * with it on every path, even SIGKILL; a loop device set up by mount(8) is
 * auto-cleared when that mount goes.  It also unmounts and removes its
 * directory and image itself on the normal and the failing path.
 *
 * Needs root; exits 77 (skipped) otherwise or when mounting is not
 * possible (a container without CAP_SYS_ADMIN).  Runs in about a second.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deltafs/deltafs.h"
#include "support.h"

#define N_ENT 16

static char g_dir[256];    /* mount point                                */
static char g_image[300];  /* ext4 image file (outside the mount)        */
static int g_mounted;

static void cleanup(void)
{
  if (g_mounted)
    (void)umount2(g_dir, MNT_DETACH);
  g_mounted = 0;
  if (g_dir[0])
    (void)rmdir(g_dir);
  if (g_image[0])
    (void)unlink(g_image);
}

static void die(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "enospc: FAILED: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  last error: %s\n", dfs_last_error());
  cleanup();
  exit(1);
}

static void skip(const char *why)
{
  printf("enospc: skipped: %s\n", why);
  cleanup();
  exit(77);
}

static int count_dir(const char *base, const char *sub, int dots_only)
{
  char cmd[600];
  FILE *p;
  int n = -1;
  /* ls -A: every name but . and .. */
  CHECKED_SNPRINTF(cmd, sizeof cmd, "ls -A '%s/%s' | grep -c '%s' || true", base, sub,
           dots_only ? "^\\." : ".");
  p = popen(cmd, "r");
  if (p) {
    if (fscanf(p, "%d", &n) != 1)
      n = -1;
    pclose(p);
  }
  return n;
}

static int temps_left(const char *base)
{
  return count_dir(base, ".deltafs-tmp", 0) + count_dir(base, "files", 1) +
         count_dir(base, "templates", 1);
}

/* Blob of entity i at version v: deterministic, size given. */
static void fill_blob(char *buf, size_t size, int i, int v)
{
  for (size_t k = 0; k < size; k++)
    buf[k] = (char)('a' + (int)((k * 7 + (size_t)i * 13 + (size_t)v * 31) % 26));
}

struct state {
  int version[N_ENT];     /* last acknowledged version               */
  size_t size[N_ENT];     /* its blob size                           */
  int tpl_version;
  size_t tpl_size;
};

static void check_entity(dfs_storage *st, const struct state *s, int i)
{
  char id[16], *want;
  dfs_file *f = NULL;
  int rc;
  CHECKED_SNPRINTF(id, sizeof id, "e%02d", i);
  rc = dfs_read(st, id, &f);
  if (rc != 0)
    die("%s (version %d) does not read: %d", id, s->version[i], rc);
  want = malloc(s->size[i] ? s->size[i] : 1);
  fill_blob(want, s->size[i], i, s->version[i]);
  if (f->meta.version != s->version[i] || f->blob_len != s->size[i] ||
      memcmp(f->blob, want, s->size[i]) != 0)
    die("%s reads version %lld (%zu bytes), acknowledged %d (%zu bytes)", id,
        (long long)f->meta.version, f->blob_len, s->version[i], s->size[i]);
  free(want);
  dfs_file_free(f);
}

static void check_template(dfs_storage *st, const struct state *s)
{
  void *buf = NULL;
  size_t len = 0;
  char *want = malloc(s->tpl_size);
  if (dfs_template_read(st, "schema", &buf, &len) != 0)
    die("template does not read");
  fill_blob(want, s->tpl_size, 99, s->tpl_version);
  if (len != s->tpl_size || memcmp(buf, want, len) != 0)
    die("template is not version %d", s->tpl_version);
  free(want);
  dfs_free(buf);
}

static void check_failure(int rc, const char *base, const char *what)
{
  if (rc != DFS_EWRITE)
    die("%s failed with %d (%s), not DFS_EWRITE", what, rc, dfs_strerror(rc));
  if (!strstr(dfs_last_error(), base))
    die("%s: detail does not name the store", what);
  if (!strstr(dfs_last_error(), strerror(ENOSPC)) && !strstr(dfs_last_error(), strerror(EDQUOT)))
    die("%s: detail does not say the disk is full", what);
  if (temps_left(base) != 0)
    die("%s: a failed write left %d temp files", what, temps_left(base));
}

static dfs_meta meta_v(int v)
{
  dfs_meta m = {0};
  m.key_id = "k";
  m.alg = "AES-GCM";
  m.version = v;
  m.writer_id = "enospc";
  m.timestamp_sec = 1795809181;
  return m;
}

static void scenario(const char *fs)
{
  char base[300];
  dfs_storage *st;
  struct state s = {{0}, {0}, 0, 0};
  size_t size = 1024, cap = 4u << 20;
  char *blob = malloc(cap);
  unsigned ok = 0, failed = 0;
  dfs_meta m;

  CHECKED_SNPRINTF(base, sizeof base, "%s/store", g_dir);
  if (dfs_storage_open(&st, base, NULL) != 0)
    die("%s: open", fs);
  for (int i = 0; i < N_ENT; i++) {
    char id[16];
    CHECKED_SNPRINTF(id, sizeof id, "e%02d", i);
    fill_blob(blob, 512, i, 1);
    m = meta_v(1);
    if (dfs_write(st, id, blob, 512, &m) != 0)
      die("%s: initial write of %s", fs, id);
    s.version[i] = 1;
    s.size[i] = 512;
  }
  fill_blob(blob, 256, 99, 1);
  if (dfs_template_write(st, "schema", blob, 256) != 0)
    die("%s: initial template", fs);
  s.tpl_version = 1;
  s.tpl_size = 256;

  /* 1 KiB doubling to 2 MiB (12 rounds), then 3 more rounds at 2 MiB:
   * a fixed count, since small writes (the template) may keep fitting. */
  for (int round = 0; round < 15; round++) {
    for (int i = 0; i < N_ENT; i++) {
      char id[16], what[64];
      int v = s.version[i] + 1, rc;
      CHECKED_SNPRINTF(id, sizeof id, "e%02d", i);
      CHECKED_SNPRINTF(what, sizeof what, "%s: write %s v%d (%zu bytes)", fs, id, v, size);
      fill_blob(blob, size, i, v);
      m = meta_v(v);
      rc = dfs_write(st, id, blob, size, &m);
      if (rc == 0) {
        s.version[i] = v;
        s.size[i] = size;
        ok++;
      } else {
        check_failure(rc, base, what);
        failed++;
      }
      check_entity(st, &s, i);
    }
    {
      /* A new id: all or nothing. */
      int rc;
      fill_blob(blob, size, 50, 1);
      m = meta_v(1);
      rc = dfs_write(st, "newcomer", blob, size, &m);
      if (rc == 0) {
        if (dfs_delete(st, "newcomer") != 0)
          die("%s: delete newcomer", fs);
      } else {
        check_failure(rc, base, "write of a new id");
        if (dfs_exists(st, "newcomer") != 0)
          die("%s: a failed write of a new id left it existing", fs);
      }
    }
    {
      int rc;
      size_t tsz = size > 64 * 1024 ? 64 * 1024 : size;
      fill_blob(blob, tsz, 99, s.tpl_version + 1);
      rc = dfs_template_write(st, "schema", blob, tsz);
      if (rc == 0) {
        s.tpl_version++;
        s.tpl_size = tsz;
      } else {
        check_failure(rc, base, "template write");
      }
      check_template(st, &s);
    }
    if (size < cap / 2)
      size *= 2;
  }
  if (failed == 0 || ok == 0)
    die("%s: the filesystem never ran full (%u ok, %u failed)", fs, ok, failed);

  /* Everything acknowledged is there, through a fresh handle too. */
  for (int i = 0; i < N_ENT; i++)
    check_entity(st, &s, i);
  dfs_storage_close(st);
  if (dfs_storage_open(&st, base, NULL) != 0)
    die("%s: re-open of the full store", fs);
  if (temps_left(base) != 0)
    die("%s: temps after re-open", fs);
  for (int i = 0; i < N_ENT; i++)
    check_entity(st, &s, i);
  check_template(st, &s);

  /* Free space: delete half, then writing works again. */
  for (int i = 0; i < N_ENT; i += 2) {
    char id[16];
    CHECKED_SNPRINTF(id, sizeof id, "e%02d", i);
    if (dfs_delete(st, id) != 0)
      die("%s: delete %s on a full filesystem", fs, id);
  }
  fill_blob(blob, 512, 1, s.version[1] + 1);
  m = meta_v(s.version[1] + 1);
  if (dfs_write(st, "e01", blob, 512, &m) != 0)
    die("%s: write after freeing space", fs);
  s.version[1]++;
  s.size[1] = 512;
  check_entity(st, &s, 1);
  dfs_storage_close(st);
  free(blob);
  printf("enospc: %s: %u writes acknowledged, %u failed cleanly with ENOSPC\n", fs, ok, failed);
}

static void on_signal(int sig)
{
  /* The mounts go with our namespace; the directory and image are ours
   * to remove (best effort: async-signal-safe calls only). */
  if (g_mounted)
    (void)umount2(g_dir, MNT_DETACH);
  if (g_dir[0])
    (void)rmdir(g_dir);
  if (g_image[0])
    (void)unlink(g_image);
  signal(sig, SIG_DFL);
  raise(sig);
}

static int have(const char *prog)
{
  char cmd[300];
  CHECKED_SNPRINTF(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
  return system(cmd) == 0;
}

int main(void)
{
  char tmpl[] = "/tmp/dfs-enospc-XXXXXX";

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGALRM, on_signal);
  alarm(150); /* a watchdog below ctest's timeout: clean up, then die */
  if (geteuid() != 0)
    skip("needs root (mounts a tmpfs and an ext4 image)");
  if (unshare(CLONE_NEWNS) != 0)
    skip("cannot create a mount namespace (no CAP_SYS_ADMIN?)");
  /* Private: our mounts never propagate to the host's namespace. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    skip("cannot make the mount namespace private");
  if (!mkdtemp(tmpl))
    die("mkdtemp: %s", strerror(errno));
  CHECKED_SNPRINTF(g_dir, sizeof g_dir, "%s", tmpl);

  if (mount("tmpfs", g_dir, "tmpfs", 0, "size=2m,mode=0755") != 0)
    skip("cannot mount a tmpfs");
  g_mounted = 1;
  scenario("tmpfs");
  if (umount2(g_dir, 0) != 0)
    die("umount tmpfs: %s", strerror(errno));
  g_mounted = 0;

  if (!have("mkfs.ext4")) {
    printf("enospc: ext4 part skipped: mkfs.ext4 not installed (e2fsprogs)\n");
  } else {
    char cmd[800];
    int fd;
    CHECKED_SNPRINTF(g_image, sizeof g_image, "%s.img", g_dir);
    fd = open(g_image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 8 << 20) != 0)
      die("image: %s", strerror(errno));
    close(fd);
    CHECKED_SNPRINTF(cmd, sizeof cmd, "mkfs.ext4 -q -F '%s' >/dev/null 2>&1", g_image);
    if (system(cmd) != 0)
      die("mkfs.ext4 failed");
    CHECKED_SNPRINTF(cmd, sizeof cmd, "mount -o loop '%s' '%s' 2>/dev/null", g_image, g_dir);
    if (system(cmd) != 0) {
      printf("enospc: ext4 part skipped: cannot loop-mount (no loop devices?)\n");
    } else {
      g_mounted = 1;
      scenario("ext4");
      if (umount2(g_dir, 0) != 0)
        die("umount ext4: %s", strerror(errno));
      g_mounted = 0;
    }
  }
  cleanup();
  printf("enospc: passed\n");
  return 0;
}
