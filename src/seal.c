/*
 * seal.c — AES-256-GCM seal/unseal and key handling (deltafs/seal.h).
 *
 * Everything cryptographic is OpenSSL's: EVP AES-256-GCM, RAND_bytes,
 * EVP_EncodeBlock/EVP_DecodeBlock for base64, OPENSSL_cleanse for wiping.
 * This file only arranges the bytes the way Go's crypto/cipher does
 * (ciphertext || tag, split; 12-byte nonce; no AAD) and checks inputs
 * strictly, because everything it parses (iv, tag, key files) may come
 * from a hostile or damaged store.
 *
 * Strict base64: EVP_DecodeBlock is lenient (it skips surrounding
 * whitespace and counts padding as zero bytes), so a decoded iv/tag is
 * accepted only if its length is exact and encoding it again gives back
 * the very same string.  That rejects whitespace, missing or extra
 * padding, non-alphabet characters and non-zero trailing bits in one test.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "deltafs/seal.h"
#include "error_int.h"
#include "seal_int.h"
#include "sys.h"

/* Largest key file read (a key is 64 digits; the rest is slack for
 * whitespace, but a big file is surely not a key). */
#define KEY_FILE_MAX 4096
/* GCM's plaintext bound: 2^39 - 256 bits = 2^36 - 32 bytes. */
#define GCM_MAX_PT ((UINT64_C(1) << 36) - 32)
/* EVP_*Update take int lengths: feed at most this much per call. */
#define EVP_CHUNK (1 << 30)

/* The most specific OpenSSL reason we have, for the detail line. */
static const char *ossl_reason(void)
{
  unsigned long e = ERR_get_error();
  const char *r;
  ERR_clear_error();
  if (!e)
    return "unknown OpenSSL error";
  r = ERR_reason_error_string(e);
  return r ? r : "unknown OpenSSL error";
}

/* ---- keys ---------------------------------------------------------- */

static int is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hex_val(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int dfs_key_from_hex(dfs_key *out, const char *hex, size_t len)
{
  size_t b = 0, e = len, n;

  DFS_CHECK_ARG(out, "NULL key");
  dfs_key_wipe(out);
  DFS_CHECK_ARG(hex || len == 0, "NULL hex");
  while (b < e && is_space(hex[b]))
    b++;
  while (e > b && is_space(hex[e - 1]))
    e--;
  n = e - b;
  /* Find the first bad character before judging the length, so that
   * "64 chars but one is 'g'" and "a passphrase" get the helpful message. */
  for (size_t i = b; i < e; i++) {
    if (hex_val(hex[i]) < 0)
      return dfs__err(DFS_EINVAL,
                      "key: character %zu is not a hexadecimal digit (a key is %d hex digits)",
                      i - b + 1, DFS_KEY_HEX_LEN);
  }
  if (n != DFS_KEY_HEX_LEN)
    return dfs__err(DFS_EINVAL, "key: %zu hex digits, expected exactly %d (256 bits)", n,
                    DFS_KEY_HEX_LEN);
  for (size_t i = 0; i < DFS_KEY_SIZE; i++)
    out->bytes[i] = (unsigned char)(hex_val(hex[b + 2 * i]) << 4 | hex_val(hex[b + 2 * i + 1]));
  return 0;
}

int dfs_key_load(dfs_key *out, const char *path, int *loose_perms)
{
  char buf[KEY_FILE_MAX + 1];
  struct stat sb;
  size_t got = 0;
  ssize_t n;
  int fd, rc;

  DFS_CHECK_ARG(out, "NULL key");
  dfs_key_wipe(out);
  DFS_CHECK_ARG(path, "NULL path");
  if (loose_perms)
    *loose_perms = 0;
  /* O_CLOEXEC: a key descriptor must never leak into an exec'd child.
   * O_NOCTTY: a path naming a terminal must not become our tty. */
  fd = dfs_sys_openat(AT_FDCWD, path, O_RDONLY | O_NOCTTY, 0);
  if (fd < 0)
    return dfs__errno(errno == ENOENT ? DFS_ENOTFOUND : DFS_EREAD, errno, "key file %s", path);
  if (dfs_sys_fstat(fd, &sb) < 0) {
    rc = dfs__errno(DFS_EREAD, errno, "key file %s: stat", path);
    goto out;
  }
  if (!S_ISREG(sb.st_mode)) {
    rc = dfs__err(DFS_EREAD, "key file %s: not a regular file", path);
    goto out;
  }
  if (sb.st_size > KEY_FILE_MAX) {
    rc = dfs__err(DFS_EREAD, "key file %s: %lld bytes, too big to be a key", path,
                  (long long)sb.st_size);
    goto out;
  }
  while (got < sizeof buf && (n = dfs_sys_read(fd, buf + got, sizeof buf - got)) != 0) {
    if (n < 0) {
      rc = dfs__errno(DFS_EREAD, errno, "key file %s: read", path);
      goto out;
    }
    got += (size_t)n;
  }
  if (got > KEY_FILE_MAX) {
    rc = dfs__err(DFS_EREAD, "key file %s: too big to be a key", path);
    goto out;
  }
  rc = dfs_key_from_hex(out, buf, got);
  if (rc < 0) {
    dfs__err_prefix("key file %s", path);
    goto out;
  }
  if (loose_perms)
    *loose_perms = (sb.st_mode & 077) != 0;
out:
  OPENSSL_cleanse(buf, sizeof buf);
  dfs_sys_close_quiet(fd);
  return rc;
}

int dfs_key_generate(dfs_key *out)
{
  DFS_CHECK_ARG(out, "NULL key");
  /* RAND_priv_bytes: OpenSSL's generator reserved for long-term secrets. */
  if (RAND_priv_bytes(out->bytes, DFS_KEY_SIZE) != 1) {
    dfs_key_wipe(out);
    return dfs__err(DFS_EREAD, "key: random generator failed: %s", ossl_reason());
  }
  return 0;
}

int dfs_key_to_hex(const dfs_key *key, char *buf, size_t size)
{
  static const char digits[] = "0123456789abcdef";

  DFS_CHECK_ARG(key && buf, "NULL key or buffer");
  DFS_CHECK_ARG(size >= DFS_KEY_HEX_LEN + 1, "buffer smaller than DFS_KEY_HEX_LEN + 1");
  for (size_t i = 0; i < DFS_KEY_SIZE; i++) {
    buf[2 * i] = digits[key->bytes[i] >> 4];
    buf[2 * i + 1] = digits[key->bytes[i] & 15];
  }
  buf[DFS_KEY_HEX_LEN] = '\0';
  return 0;
}

void dfs_key_wipe(dfs_key *key)
{
  if (key)
    OPENSSL_cleanse(key->bytes, sizeof key->bytes);
}

/* ---- base64 ----------------------------------------------------------- */

/* Encode n bytes into out (4*ceil(n/3)+1 bytes), NUL-terminated. */
static void b64_encode(char *out, const unsigned char *in, size_t n)
{
  EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Decode s, which must be the canonical padded base64 of exactly n bytes
 * (n <= 16), into out.  0 or -1. */
static int b64_decode_exact(const char *s, unsigned char *out, size_t n)
{
  unsigned char tmp[24];
  char again[4 * ((16 + 2) / 3) + 1];
  size_t enc_len = 4 * ((n + 2) / 3);

  if (!s || n > 16 || strlen(s) != enc_len)
    return -1;
  /* Decoded length counts padding as bytes: 3 * enc_len / 4. */
  if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)enc_len) != (int)(3 * enc_len / 4))
    return -1;
  b64_encode(again, tmp, n);
  if (strcmp(again, s) != 0)
    return -1;
  memcpy(out, tmp, n);
  return 0;
}

/* ---- seal / unseal ----------------------------------------------------- */

int dfs__seal_with_nonce(const dfs_key *key, const unsigned char *nonce, const void *pt,
                         size_t len, dfs_sealed *out)
{
  unsigned char tag[DFS_SEAL_TAG_SIZE];
  const unsigned char *in = pt;
  EVP_CIPHER_CTX *ctx = NULL;
  size_t done = 0;
  int n, rc;

  DFS_CHECK_ARG(out, "NULL out");
  memset(out, 0, sizeof *out);
  DFS_CHECK_ARG(key && nonce, "NULL key or nonce");
  DFS_CHECK_ARG(pt || len == 0, "NULL plaintext with len > 0");
  if ((uint64_t)len > GCM_MAX_PT)
    return dfs__err(DFS_EINVAL, "seal: %zu bytes is over AES-GCM's 64 GiB limit", len);

  out->blob = dfs_malloc(len ? len : 1);
  if (!out->blob)
    return dfs__err(DFS_ENOMEM, "seal: out of memory for %zu bytes", len);
  ctx = EVP_CIPHER_CTX_new();
  if (!ctx) {
    rc = dfs__err(DFS_ENOMEM, "seal: cannot allocate a cipher context");
    goto fail;
  }
  /* The default GCM IV length is 12, as in Go's cipher.NewGCM. */
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->bytes, nonce) != 1)
    goto ossl;
  while (done < len) {
    size_t chunk = len - done > EVP_CHUNK ? EVP_CHUNK : len - done;
    if (EVP_EncryptUpdate(ctx, out->blob + done, &n, in + done, (int)chunk) != 1 ||
        (size_t)n != chunk)
      goto ossl;
    done += chunk;
  }
  if (EVP_EncryptFinal_ex(ctx, out->blob + done, &n) != 1 || n != 0)
    goto ossl;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, DFS_SEAL_TAG_SIZE, tag) != 1)
    goto ossl;
  EVP_CIPHER_CTX_free(ctx);
  out->blob_len = len;
  b64_encode(out->iv, nonce, DFS_SEAL_NONCE_SIZE);
  b64_encode(out->tag, tag, DFS_SEAL_TAG_SIZE);
  return 0;
ossl:
  rc = dfs__err(DFS_EWRITE, "seal: AES-256-GCM encryption failed: %s", ossl_reason());
fail:
  EVP_CIPHER_CTX_free(ctx);
  dfs_sealed_free(out);
  return rc;
}

int dfs_seal(const dfs_key *key, const void *pt, size_t len, dfs_sealed *out)
{
  unsigned char nonce[DFS_SEAL_NONCE_SIZE];

  DFS_CHECK_ARG(out, "NULL out");
  memset(out, 0, sizeof *out);
  DFS_CHECK_ARG(key, "NULL key");
  /* A fresh random nonce per seal: never reuse one under the same key. */
  if (RAND_bytes(nonce, sizeof nonce) != 1)
    return dfs__err(DFS_EWRITE, "seal: random nonce: %s", ossl_reason());
  return dfs__seal_with_nonce(key, nonce, pt, len, out);
}

int dfs_sealed_to_meta(const dfs_sealed *s, dfs_meta *meta)
{
  DFS_CHECK_ARG(s && meta, "NULL sealed or meta");
  meta->alg = DFS_SEAL_ALG;
  meta->iv = s->iv;
  meta->tag = s->tag;
  return 0;
}

void dfs_sealed_free(dfs_sealed *s)
{
  if (!s)
    return;
  free(s->blob);
  memset(s, 0, sizeof *s);
}

int dfs_unseal(const dfs_key *key, const void *blob, size_t len, const dfs_meta *meta,
               void **pt, size_t *pt_len)
{
  unsigned char nonce[DFS_SEAL_NONCE_SIZE], tag[DFS_SEAL_TAG_SIZE];
  const unsigned char *in = blob;
  unsigned char *buf = NULL;
  EVP_CIPHER_CTX *ctx = NULL;
  size_t done = 0;
  int n, rc;

  DFS_CHECK_ARG(pt && pt_len, "NULL output");
  *pt = NULL;
  *pt_len = 0;
  DFS_CHECK_ARG(key && meta, "NULL key or meta");
  DFS_CHECK_ARG(blob || len == 0, "NULL blob with len > 0");
  if (!meta->alg || strcmp(meta->alg, DFS_SEAL_ALG) != 0)
    return dfs__err(DFS_ECORRUPT, "unseal: algorithm \"%.40s\" is not \"" DFS_SEAL_ALG "\"%s",
                    meta->alg ? meta->alg : "",
                    meta->alg && *meta->alg ? "" : " (the entity is not sealed)");
  if (b64_decode_exact(meta->iv, nonce, sizeof nonce) < 0)
    return dfs__err(DFS_ECORRUPT, "unseal: iv is not the base64 of a %d-byte nonce",
                    DFS_SEAL_NONCE_SIZE);
  if (b64_decode_exact(meta->tag, tag, sizeof tag) < 0)
    return dfs__err(DFS_ECORRUPT, "unseal: tag is not the base64 of a %d-byte GCM tag",
                    DFS_SEAL_TAG_SIZE);
  if ((uint64_t)len > GCM_MAX_PT)
    return dfs__err(DFS_ECORRUPT, "unseal: %zu-byte blob is over AES-GCM's limit", len);

  buf = dfs_malloc(len + 1);
  if (!buf)
    return dfs__err(DFS_ENOMEM, "unseal: out of memory for %zu bytes", len);
  ctx = EVP_CIPHER_CTX_new();
  if (!ctx) {
    rc = dfs__err(DFS_ENOMEM, "unseal: cannot allocate a cipher context");
    goto fail;
  }
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->bytes, nonce) != 1)
    goto ossl;
  while (done < len) {
    size_t chunk = len - done > EVP_CHUNK ? EVP_CHUNK : len - done;
    if (EVP_DecryptUpdate(ctx, buf + done, &n, in + done, (int)chunk) != 1 ||
        (size_t)n != chunk)
      goto ossl;
    done += chunk;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DFS_SEAL_TAG_SIZE, tag) != 1)
    goto ossl;
  /* The tag is checked here; until it passes, buf is unauthenticated and
   * is wiped, never returned. */
  if (EVP_DecryptFinal_ex(ctx, buf + done, &n) != 1) {
    ERR_clear_error();
    rc = dfs__err(DFS_ECORRUPT,
                  "unseal: authentication failed (wrong key, or the blob, iv or tag was "
                  "modified)");
    goto fail;
  }
  EVP_CIPHER_CTX_free(ctx);
  buf[len] = '\0';
  *pt = buf;
  *pt_len = len;
  return 0;
ossl:
  rc = dfs__err(DFS_EREAD, "unseal: AES-256-GCM decryption failed: %s", ossl_reason());
fail:
  EVP_CIPHER_CTX_free(ctx);
  OPENSSL_cleanse(buf, len + 1);
  free(buf);
  return rc;
}

void dfs_unseal_free(void *pt, size_t len)
{
  if (!pt)
    return;
  OPENSSL_cleanse(pt, len + 1);
  free(pt);
}
