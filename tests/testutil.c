/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag)
{
  const char *tmp = getenv("DFS_TEST_DIR");
  char *path;
  if (!tmp)
    tmp = getenv("TMPDIR");
  if (!tmp)
    tmp = "/var/tmp";
  if (asprintf(&path, "%s/dfs-%s-XXXXXX", tmp, tag) < 0)
    abort();
  if (!mkdtemp(path)) {
    perror("mkdtemp");
    abort();
  }
  return path;
}

int tu_count_entries(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (!d)
    return -1;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      n++;
  }
  closedir(d);
  return n;
}

int tu_count_temps(const char *base)
{
  char p[4096];
  int n = 0, k;
  snprintf(p, sizeof p, "%s/.deltafs-tmp", base);
  if ((k = tu_count_entries(p, "")) > 0)
    n += k;
  snprintf(p, sizeof p, "%s/files", base);
  if ((k = tu_count_entries(p, ".")) > 0)
    n += k;
  snprintf(p, sizeof p, "%s/templates", base);
  if ((k = tu_count_entries(p, ".")) > 0)
    n += k;
  return n;
}

void tu_write_file(const char *path, const void *data, size_t len)
{
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    abort();
  }
}

char *tu_read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n)
    abort();
  buf[n] = 0;
  fclose(f);
  if (len)
    *len = (size_t)n;
  return buf;
}
