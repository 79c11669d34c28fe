/*
 * fuzz_key.c — the key parser behind `--key KEYFILE` (dfs_key_from_hex)
 * and the key-file loader around it (dfs_key_load).
 *
 * Properties:
 *  - REFERENCE: accepted exactly when the input, stripped of surrounding
 *    whitespace (space, \t, \n, \r, \v, \f), is 64 hex digits (either
 *    case), and then the key bytes are those digits, decoded here
 *    independently; dfs_key_to_hex gives them back in lower case;
 *  - a rejection is DFS_EINVAL, wipes the key (all zero) and its detail
 *    never echoes the input;
 *  - the loader reading the same bytes from a file (a memfd, via
 *    /proc/self/fd) gives the same answer, and refuses files over 4 KiB
 *    with DFS_EREAD.
 */
#include <ctype.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "deltafs/error.h"
#include "deltafs/seal.h"
#include "fuzz.h"

static int ws(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hexv(unsigned char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (unsigned char)tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static int reference(const uint8_t *d, size_t n, unsigned char key[32])
{
  size_t b = 0, e = n;
  while (b < e && ws(d[b]))
    b++;
  while (e > b && ws(d[e - 1]))
    e--;
  if (e - b != 64)
    return 0;
  for (size_t i = 0; i < 32; i++) {
    int hi = hexv(d[b + 2 * i]), lo = hexv(d[b + 2 * i + 1]);
    if (hi < 0 || lo < 0)
      return 0;
    key[i] = (unsigned char)(hi * 16 + lo);
  }
  return 1;
}

static const unsigned char zero[32];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  dfs_key k, k2;
  unsigned char want[32];
  char hex[DFS_KEY_HEX_LEN + 1];
  int rc, ref;

  memset(&k, 0xa5, sizeof k);
  rc = dfs_key_from_hex(&k, (const char *)data, size);
  ref = reference(data, size, want);
  if ((rc == 0) != ref)
    fuzz_fail("dfs_key_from_hex says %d, reference says %s", rc, ref ? "valid" : "invalid");
  if (rc == 0) {
    if (memcmp(k.bytes, want, 32) != 0)
      fuzz_fail("key bytes differ from the reference");
    if (dfs_key_to_hex(&k, hex, sizeof hex) != 0)
      fuzz_fail("dfs_key_to_hex failed");
    for (size_t i = 0; i < 64; i++)
      if (hex[i] != "0123456789abcdef"[i % 2 ? want[i / 2] & 15 : want[i / 2] >> 4])
        fuzz_fail("dfs_key_to_hex is not the lower-case digits");
  } else {
    if (rc != DFS_EINVAL)
      fuzz_fail("rejection is %d, not DFS_EINVAL", rc);
    if (memcmp(k.bytes, zero, 32) != 0)
      fuzz_fail("a rejected key was not wiped");
    /* The detail must not leak key material: no run of 8+ input bytes. */
    if (size >= 8) {
      const char *d = dfs_last_error();
      for (size_t i = 0; i + 8 <= size; i++) {
        int printable = 1;
        for (size_t j = 0; j < 8; j++)
          printable &= isxdigit(data[i + j]) != 0;
        if (printable && memmem(d, strlen(d), data + i, 8))
          fuzz_fail("the detail echoes the input: %s", d);
      }
    }
  }

  /* The same bytes as a key file. */
  {
    int fd = memfd_create("fuzz-key", MFD_CLOEXEC);
    char path[64];
    int loose = 7;
    if (fd < 0)
      return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
      close(fd);
      return 0;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    memset(&k2, 0x5a, sizeof k2);
    rc = dfs_key_load(&k2, path, &loose);
    close(fd);
    if (size > 4096) {
      if (rc != DFS_EREAD)
        fuzz_fail("a %zu-byte key file gave %d, not DFS_EREAD", size, rc);
    } else if ((rc == 0) != ref) {
      fuzz_fail("dfs_key_load says %d, reference says %d: %s", rc, ref, dfs_last_error());
    } else if (rc == 0 && memcmp(k2.bytes, want, 32) != 0) {
      fuzz_fail("dfs_key_load read other bytes than dfs_key_from_hex");
    }
    if (rc != 0 && memcmp(k2.bytes, zero, 32) != 0)
      fuzz_fail("a rejected key file left key bytes");
    if (loose != 0 && loose != 1)
      fuzz_fail("loose_perms is %d", loose);
  }
  dfs_key_wipe(&k);
  dfs_key_wipe(&k2);
  return 0;
}
