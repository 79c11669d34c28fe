/*
 * support.c — see support.h.
 */
#include "support.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

dfs_meta tu_meta(int64_t version)
{
  dfs_meta m = {0};
  m.key_id = "key-123";
  m.alg = "AES-GCM";
  m.iv = "AAECAwQFBgcICQoL";
  m.tag = "AAECAwQFBgcICQoLDA0ODw==";
  m.schema_id = "chat.v1";
  m.version = version;
  m.writer_id = "worker-1";
  m.timestamp_sec = 1795809181; /* 2026-11-27T19:53:01Z */
  m.timestamp_nsec = 123456789;
  m.database = "chatdb";
  m.entity_key = "Chat_id";
  return m;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(p);
  return 0;
}

void tu_rmrf(const char *path)
{
  if (path)
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
