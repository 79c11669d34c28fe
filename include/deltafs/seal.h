/*
 * deltafs/seal.h — AES-256-GCM sealing of a blob, compatible with
 * DeltaDatabase's Go workers.
 *
 * What it does
 * ------------
 * The storage layer never sees plaintext: a caller seals the plaintext JSON
 * into a ciphertext blob plus three metadata strings, stores the blob with
 * dfs_write() and the strings in dfs_meta (`alg`, `iv`, `tag`), and opens it
 * again after dfs_read() with dfs_unseal().  The format is exactly what the
 * Go worker writes with
 *
 *     gcm, _ := cipher.NewGCM(aes.NewCipher(key))       // 32-byte key
 *     out := gcm.Seal(nil, nonce, plaintext, nil)       // 12-byte nonce
 *     blob, tag := out[:len(out)-16], out[len(out)-16:]
 *
 * that is:
 *   alg   "AES-GCM"
 *   iv    the 12-byte random nonce, standard base64 with padding (16 chars)
 *   tag   the 16-byte GCM tag, standard base64 with padding (24 chars)
 *   blob  the ciphertext, as long as the plaintext, without the tag
 * and no additional authenticated data.  So a blob sealed here opens in Go
 * and vice versa.  Note what that implies: the metadata (version, ids,
 * timestamps) is NOT authenticated; the tag protects the blob only.
 *
 * Keys
 * ----
 * A key is 32 raw bytes (AES-256) in a dfs_key.  Its text form, in key files
 * and on DeltaDatabase's `-master-key` flag, is 64 hexadecimal digits (either
 * case); a key file holds those digits, optionally surrounded by whitespace
 * (a trailing newline is usual).  `deltafs keygen` writes one, mode 0600.
 *
 * Calling sequence
 * ----------------
 *   dfs_key key;
 *   int loose;
 *   if (dfs_key_load(&key, "/etc/deltadb/master.key", &loose) < 0) ...
 *   if (loose) warn("key file is readable by group or others");
 *
 *   dfs_sealed s;                              // seal
 *   dfs_seal(&key, json, json_len, &s);
 *   dfs_meta meta = {0};
 *   dfs_sealed_to_meta(&s, &meta);             // meta.alg/iv/tag point into s
 *   meta.key_id = "k1"; ... dfs_write(st, id, s.blob, s.blob_len, &meta);
 *   dfs_sealed_free(&s);
 *
 *   dfs_file *f; void *pt; size_t pt_len;      // open
 *   dfs_read(st, id, &f);
 *   if (dfs_unseal(&key, f->blob, f->blob_len, &f->meta, &pt, &pt_len) == 0) {
 *       ... use pt (NUL-terminated for convenience) ...
 *       dfs_unseal_free(pt, pt_len);           // wipes, then frees
 *   }
 *   dfs_file_free(f);
 *   dfs_key_wipe(&key);
 *
 * Errors
 * ------
 * 0 or a negative DFS_E* code (deltafs/error.h), detail in dfs_last_error().
 * The one that matters: DFS_ECORRUPT from dfs_unseal means the blob could
 * not be authenticated — wrong key, a changed blob, iv or tag, a malformed
 * iv/tag, or an algorithm other than "AES-GCM".  Those cases are not told
 * apart on purpose (GCM cannot tell a wrong key from a tampered blob), and
 * no plaintext is ever returned for them.
 *
 * Thread-safety
 * -------------
 * All functions are thread-safe and keep no state between calls; a dfs_key
 * may be shared read-only by many threads.  Nonces come from OpenSSL's
 * RAND_bytes (a CSPRNG, fork-safe in OpenSSL 3), fresh for every seal.
 *
 * Caveats
 * -------
 * - Random 96-bit nonces: NIST SP 800-38D limits one key to about 2^32
 *   seals before the chance of a repeated nonce becomes a concern.  Rotate
 *   keys (key_id) well before that.
 * - Wiping: key bytes and plaintext buffers the library owns are cleared
 *   with OPENSSL_cleanse before they are freed.  Copies the caller makes,
 *   and pages the kernel swapped out, are the caller's concern.
 * - Plaintext is limited to 64 GiB minus 32 bytes per seal (GCM's bound);
 *   larger inputs are DFS_EINVAL.
 */
#ifndef DELTAFS_SEAL_H
#define DELTAFS_SEAL_H

#include <stddef.h>

#include "deltafs/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DFS_KEY_SIZE 32         /* AES-256 key, bytes                         */
#define DFS_KEY_HEX_LEN 64      /* hex digits of a key                        */
#define DFS_SEAL_NONCE_SIZE 12  /* GCM nonce (iv), bytes                      */
#define DFS_SEAL_TAG_SIZE 16    /* GCM tag, bytes                             */
#define DFS_SEAL_ALG "AES-GCM"  /* the `alg` metadata value                   */
#define DFS_SEAL_IV_B64_LEN 16  /* base64 characters of an iv                 */
#define DFS_SEAL_TAG_B64_LEN 24 /* base64 characters of a tag                 */

/* A 256-bit key.  Plain bytes so it can live on the stack; wipe it with
 * dfs_key_wipe() when done. */
typedef struct dfs_key {
  unsigned char bytes[DFS_KEY_SIZE];
} dfs_key;

/* The result of dfs_seal().  blob is the caller's until dfs_sealed_free(). */
typedef struct dfs_sealed {
  unsigned char *blob;                     /* ciphertext; never NULL       */
  size_t blob_len;                         /* == plaintext length          */
  char iv[DFS_SEAL_IV_B64_LEN + 1];        /* nonce, base64, NUL-terminated */
  char tag[DFS_SEAL_TAG_B64_LEN + 1];      /* tag, base64, NUL-terminated   */
} dfs_sealed;

/* ---- keys ------------------------------------------------------------ */

/* Parse a key from text: exactly 64 hex digits (0-9, a-f, A-F), optionally
 * surrounded by whitespace (spaces, tabs, CR, LF).  hex need not be
 * NUL-terminated; len is its length.  *out is wiped on failure.
 * Returns 0, DFS_EINVAL (NULL, wrong number of digits, a non-hex character
 * — the detail says which, without echoing key material). */
int dfs_key_from_hex(dfs_key *out, const char *hex, size_t len);

/* Read a key file (64 hex digits, whitespace around them allowed; at most
 * 4 KiB).  *loose_perms (may be NULL) is set to 1 when the file is readable
 * or writable by group or others (mode & 077), which callers should warn
 * about, else 0.  The read buffer is wiped.
 * Returns 0, DFS_ENOTFOUND (no such file), DFS_EREAD (cannot open or read
 * it, not a regular file, too big), DFS_EINVAL (contents not a key, NULL). */
int dfs_key_load(dfs_key *out, const char *path, int *loose_perms);

/* A fresh random key from OpenSSL's CSPRNG (RAND_priv_bytes).
 * Returns 0, DFS_EINVAL (NULL), DFS_EREAD (the RNG failed; *out wiped). */
int dfs_key_generate(dfs_key *out);

/* 64 lower-case hex digits and a NUL into buf (size >= DFS_KEY_HEX_LEN + 1).
 * Returns 0 or DFS_EINVAL (NULL, small buffer). */
int dfs_key_to_hex(const dfs_key *key, char *buf, size_t size);

/* Overwrite the key with zeros (OPENSSL_cleanse: not optimized away).
 * NULL is fine. */
void dfs_key_wipe(dfs_key *key);

/* ---- sealing ---------------------------------------------------------- */

/* Encrypt len bytes at pt (pt may be NULL when len is 0) under key with a
 * fresh random nonce.  On success *out holds the ciphertext and the base64
 * iv and tag; free with dfs_sealed_free().  On failure *out is zeroed.
 * Returns 0, DFS_EINVAL (NULL, len over the GCM limit), DFS_ENOMEM,
 * DFS_EWRITE (OpenSSL failed: the RNG or the cipher; detail says which). */
int dfs_seal(const dfs_key *key, const void *pt, size_t len, dfs_sealed *out);

/* Point meta->alg, meta->iv and meta->tag at s (DFS_SEAL_ALG, s->iv,
 * s->tag); the other fields are left alone.  s must outlive the use of meta.
 * Returns 0 or DFS_EINVAL. */
int dfs_sealed_to_meta(const dfs_sealed *s, dfs_meta *meta);

/* Free the ciphertext and zero *s; NULL is fine. */
void dfs_sealed_free(dfs_sealed *s);

/* Authenticate and decrypt blob with the alg/iv/tag of meta.  On success
 * *pt is a new buffer of *pt_len bytes, plus a NUL not counted (handy for
 * JSON), to be released with dfs_unseal_free().  On any failure *pt is NULL
 * and *pt_len 0: no unauthenticated plaintext is ever returned.
 * Returns 0,
 *   DFS_ECORRUPT  meta->alg is not "AES-GCM"; iv is not the base64 of 12
 *                 bytes or tag of 16 (strictly: canonical, padded, no
 *                 whitespace); or the tag does not verify (wrong key, or the
 *                 blob, iv or tag was changed),
 *   DFS_EINVAL    NULL arguments, blob NULL with len > 0,
 *   DFS_ENOMEM,
 *   DFS_EREAD     OpenSSL failed for another reason. */
int dfs_unseal(const dfs_key *key, const void *blob, size_t len, const dfs_meta *meta,
               void **pt, size_t *pt_len);

/* Wipe (OPENSSL_cleanse) the len + 1 bytes of a dfs_unseal() result, then
 * free it.  NULL is fine. */
void dfs_unseal_free(void *pt, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* DELTAFS_SEAL_H */
