/*
 * test_seal.c — AES-256-GCM sealing (deltafs/seal.h): known answers,
 * round trips, every way an unseal must refuse, key parsing and key files.
 *
 * Known answers: test cases 13, 14 and 15 of McGrew & Viega, "The
 * Galois/Counter Mode of Operation (GCM)", revised 2005, appendix B — the
 * 256-bit-key cases without additional data (16 uses AAD, which the
 * DeltaDatabase format does not).  The hex below was copied from the
 * paper; the base64 forms of iv/tag were computed from that hex once with
 * Python's base64 module, and the ciphertext||tag values cross-checked once
 * with Python's `cryptography` AESGCM(key).encrypt(nonce, pt, None) — the
 * same layout as Go's gcm.Seal(nil, nonce, pt, nil).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "fault.h"
#include "seal_int.h"

static void from_hex(const char *hex, unsigned char *out, size_t n)
{
  assert_int_equal(strlen(hex), 2 * n);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (unsigned char)v;
  }
}

static dfs_key key_of(const char *hex)
{
  dfs_key k;
  assert_ok(dfs_key_from_hex(&k, hex, strlen(hex)));
  return k;
}

static dfs_meta meta_of(const dfs_sealed *s)
{
  dfs_meta m;
  memset(&m, 0, sizeof m);
  assert_ok(dfs_sealed_to_meta(s, &m));
  return m;
}

/* ---- known answers ---------------------------------------------------- */

struct kat {
  const char *name, *key, *iv, *pt, *ct, *tag, *iv_b64, *tag_b64;
};

static const struct kat kats[] = {
    {"McGrew-Viega test case 13",
     "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "530f8afbc74536b9a963b4f1c4cb738b",
     "AAAAAAAAAAAAAAAA", "Uw+K+8dFNrmpY7TxxMtziw=="},
    {"McGrew-Viega test case 14",
     "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919",
     "AAAAAAAAAAAAAAAA", "0NHIp5mZa/AmW5i11Iq5GQ=="},
    {"McGrew-Viega test case 15",
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c", "yv66vvrO263eyviI", "sJTaxdk0cb3sGlAicOPMbA=="},
};

static void seal__known_answers(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
    const struct kat *t = &kats[i];
    size_t n = strlen(t->pt) / 2;
    unsigned char nonce[12], pt[64], ct[64];
    dfs_key k = key_of(t->key);
    dfs_sealed s;
    dfs_meta m;
    void *back;
    size_t back_len;

    print_message("  %s\n", t->name);
    from_hex(t->iv, nonce, 12);
    from_hex(t->pt, pt, n);
    from_hex(t->ct, ct, n);
    assert_ok(dfs__seal_with_nonce(&k, nonce, pt, n, &s));
    assert_int_equal(s.blob_len, n);
    assert_memory_equal(s.blob, ct, n);
    assert_string_equal(s.iv, t->iv_b64);
    assert_string_equal(s.tag, t->tag_b64);

    /* And the other direction: the published ciphertext opens. */
    m = meta_of(&s);
    assert_string_equal(m.alg, "AES-GCM");
    assert_ok(dfs_unseal(&k, ct, n, &m, &back, &back_len));
    assert_int_equal(back_len, n);
    assert_memory_equal(back, pt, n);
    assert_int_equal(((char *)back)[n], '\0');
    dfs_unseal_free(back, back_len);
    dfs_sealed_free(&s);
    assert_null(s.blob);
  }
}

/* ---- round trips ------------------------------------------------------ */

static void seal__round_trip_sizes(void **state)
{
  static const size_t sizes[] = {0, 1, 15, 16, 17, 255, 4096, 100003};
  dfs_key k;
  (void)state;
  assert_ok(dfs_key_generate(&k));
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *pt = malloc(n ? n : 1);
    dfs_sealed s;
    dfs_meta m;
    void *back;
    size_t back_len;

    for (size_t j = 0; j < n; j++)
      pt[j] = (unsigned char)(j * 131 + 7);
    assert_ok(dfs_seal(&k, pt, n, &s));
    assert_non_null(s.blob);
    assert_int_equal(s.blob_len, n);
    assert_int_equal(strlen(s.iv), DFS_SEAL_IV_B64_LEN);
    assert_int_equal(strlen(s.tag), DFS_SEAL_TAG_B64_LEN);
    if (n >= 16)
      assert_memory_not_equal(s.blob, pt, 16); /* it is not the plaintext */
    m = meta_of(&s);
    assert_ok(dfs_unseal(&k, s.blob, s.blob_len, &m, &back, &back_len));
    assert_int_equal(back_len, n);
    if (n)
      assert_memory_equal(back, pt, n);
    dfs_unseal_free(back, back_len);
    dfs_sealed_free(&s);
    free(pt);
  }
  dfs_key_wipe(&k);
}

static void seal__fresh_nonce_every_time(void **state)
{
  dfs_key k = key_of("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const char *pt = "{\"same\":\"plaintext\"}";
  dfs_sealed a, b;
  (void)state;
  assert_ok(dfs_seal(&k, pt, strlen(pt), &a));
  assert_ok(dfs_seal(&k, pt, strlen(pt), &b));
  assert_string_not_equal(a.iv, b.iv);
  assert_string_not_equal(a.tag, b.tag);
  assert_memory_not_equal(a.blob, b.blob, a.blob_len);
  dfs_sealed_free(&a);
  dfs_sealed_free(&b);
}

/* ---- refusals ---------------------------------------------------------- */

struct sealed_fixture {
  dfs_key key;
  dfs_sealed s;
  dfs_meta m;
};

static void make_fixture(struct sealed_fixture *f)
{
  static const char pt[] = "{\"chat\":\"hello, world\",\"n\":42}";
  f->key = key_of("8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
  assert_ok(dfs_seal(&f->key, pt, sizeof pt - 1, &f->s));
  f->m = meta_of(&f->s);
}

/* Expect dfs_unseal to refuse with DFS_ECORRUPT and return no plaintext. */
static void expect_corrupt(const dfs_key *k, const void *blob, size_t len, const dfs_meta *m)
{
  void *pt = (void *)1;
  size_t pt_len = 99;
  assert_dfs(dfs_unseal(k, blob, len, m, &pt, &pt_len), DFS_ECORRUPT);
  assert_null(pt);
  assert_int_equal(pt_len, 0);
}

static void unseal__wrong_key_is_corrupt(void **state)
{
  struct sealed_fixture f;
  dfs_key other;
  (void)state;
  make_fixture(&f);
  other = f.key;
  other.bytes[31] ^= 1; /* one bit off */
  expect_corrupt(&other, f.s.blob, f.s.blob_len, &f.m);
  assert_non_null(strstr(dfs_last_error(), "authentication failed"));
  dfs_sealed_free(&f.s);
}

static void unseal__tampered_blob_is_corrupt(void **state)
{
  struct sealed_fixture f;
  (void)state;
  make_fixture(&f);
  for (size_t i = 0; i < f.s.blob_len; i++) {
    f.s.blob[i] ^= 0x01;
    expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
    f.s.blob[i] ^= 0x01;
  }
  /* truncated and extended blobs too */
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len - 1, &f.m);
  {
    unsigned char *longer = malloc(f.s.blob_len + 1);
    memcpy(longer, f.s.blob, f.s.blob_len);
    longer[f.s.blob_len] = 0;
    expect_corrupt(&f.key, longer, f.s.blob_len + 1, &f.m);
    free(longer);
  }
  /* and the untouched blob still opens: the loop above restored it */
  {
    void *pt;
    size_t n;
    assert_ok(dfs_unseal(&f.key, f.s.blob, f.s.blob_len, &f.m, &pt, &n));
    dfs_unseal_free(pt, n);
  }
  dfs_sealed_free(&f.s);
}

/* Replace character i of a base64 string with another alphabet character
 * that keeps it canonical (a change in a full 6-bit group). */
static void flip_b64(char *s, size_t i)
{
  s[i] = s[i] == 'A' ? 'B' : 'A';
}

static void unseal__tampered_iv_or_tag_is_corrupt(void **state)
{
  struct sealed_fixture f;
  char iv[sizeof f.s.iv], tag[sizeof f.s.tag];
  (void)state;
  make_fixture(&f);
  for (size_t i = 0; i < DFS_SEAL_IV_B64_LEN; i++) {
    memcpy(iv, f.s.iv, sizeof iv);
    flip_b64(iv, i);
    f.m.iv = iv;
    expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  }
  f.m.iv = f.s.iv;
  /* the tag's last data character (index 21) holds 2 data bits + 4 zero
   * bits, so only full groups 0..20 are flipped canonically */
  for (size_t i = 0; i < 21; i++) {
    memcpy(tag, f.s.tag, sizeof tag);
    flip_b64(tag, i);
    f.m.tag = tag;
    expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  }
  dfs_sealed_free(&f.s);
}

static void unseal__malformed_iv_or_tag_is_corrupt(void **state)
{
  struct sealed_fixture f;
  char buf[64];
  (void)state;
  make_fixture(&f);

  static const char *bad_ivs[] = {
      "",                   /* empty */
      "AAAAAAAAAAAAAAA",    /* 15 chars */
      "AAAAAAAAAAAAAAAAAAAA", /* 20 chars: 15 bytes */
      "AAAAAAAAAAAAAAA=",   /* padded: 11 bytes */
      "AAAAAAAA AAAAAAA",   /* a space */
      "AAAAAAAAAAAAAAA!",   /* not base64 */
      "AAAAAAAAAAAAAAAAAAAAAA==", /* 16 bytes: a tag, not an iv */
  };
  for (size_t i = 0; i < sizeof bad_ivs / sizeof bad_ivs[0]; i++) {
    f.m.iv = bad_ivs[i];
    expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
    assert_non_null(strstr(dfs_last_error(), "iv"));
  }
  f.m.iv = NULL;
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  f.m.iv = f.s.iv;

  /* tag without padding, with whitespace, 15 bytes, non-canonical bits */
  snprintf(buf, sizeof buf, "%.22s", f.s.tag);
  f.m.tag = buf;
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  snprintf(buf, sizeof buf, " %s", f.s.tag);
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  snprintf(buf, sizeof buf, "%s\n", f.s.tag);
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  snprintf(buf, sizeof buf, "%.20s===", f.s.tag);
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  /* index 21 carries 4 must-be-zero bits: set one; EVP_DecodeBlock alone
   * would accept it and decode the same 16 bytes */
  snprintf(buf, sizeof buf, "%s", f.s.tag);
  {
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(alpha, buf[21]);
    assert_non_null(p);
    buf[21] = alpha[(size_t)(p - alpha) | 1];
  }
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  assert_non_null(strstr(dfs_last_error(), "tag"));
  f.m.tag = NULL;
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  f.m.tag = f.s.tag;

  /* algorithms */
  f.m.alg = "";
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  assert_non_null(strstr(dfs_last_error(), "not sealed"));
  f.m.alg = "AES-CBC";
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  f.m.alg = "aes-gcm";
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);
  f.m.alg = NULL;
  expect_corrupt(&f.key, f.s.blob, f.s.blob_len, &f.m);

  /* with everything restored it opens */
  f.m.alg = "AES-GCM";
  {
    void *pt;
    size_t n;
    assert_ok(dfs_unseal(&f.key, f.s.blob, f.s.blob_len, &f.m, &pt, &n));
    dfs_unseal_free(pt, n);
  }
  dfs_sealed_free(&f.s);
}

static void seal__bad_arguments(void **state)
{
  dfs_key k = key_of("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  dfs_sealed s;
  dfs_meta m;
  void *pt;
  size_t n;
  (void)state;
  assert_dfs(dfs_seal(NULL, "x", 1, &s), DFS_EINVAL);
  assert_null(s.blob);
  assert_dfs(dfs_seal(&k, NULL, 1, &s), DFS_EINVAL);
  assert_dfs(dfs_seal(&k, "x", 1, NULL), DFS_EINVAL);
  assert_ok(dfs_seal(&k, NULL, 0, &s)); /* empty plaintext is fine */
  m = meta_of(&s);
  assert_dfs(dfs_unseal(NULL, s.blob, 0, &m, &pt, &n), DFS_EINVAL);
  assert_dfs(dfs_unseal(&k, s.blob, 0, NULL, &pt, &n), DFS_EINVAL);
  assert_dfs(dfs_unseal(&k, NULL, 5, &m, &pt, &n), DFS_EINVAL);
  assert_dfs(dfs_unseal(&k, s.blob, 0, &m, NULL, &n), DFS_EINVAL);
  assert_ok(dfs_unseal(&k, NULL, 0, &m, &pt, &n));
  assert_int_equal(n, 0);
  assert_string_equal(pt, "");
  dfs_unseal_free(pt, n);
  assert_dfs(dfs_sealed_to_meta(NULL, &m), DFS_EINVAL);
  dfs_sealed_free(&s);
  dfs_sealed_free(NULL);
  dfs_unseal_free(NULL, 0);
  dfs_key_wipe(NULL);
}

static void seal__out_of_memory(void **state)
{
  dfs_key k = key_of("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  dfs_sealed s;
  dfs_meta m;
  void *pt;
  size_t n;
  (void)state;
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_MALLOC), 1, DFS_FAULT_FAIL, ENOMEM, 0);
  assert_dfs(dfs_seal(&k, "abc", 3, &s), DFS_ENOMEM);
  dfs_fault_disarm();
  assert_null(s.blob);
  assert_ok(dfs_seal(&k, "abc", 3, &s));
  m = meta_of(&s);
  dfs_fault_arm(DFS_FAULT_MASK(DFS_SYS_MALLOC), 1, DFS_FAULT_FAIL, ENOMEM, 0);
  assert_dfs(dfs_unseal(&k, s.blob, s.blob_len, &m, &pt, &n), DFS_ENOMEM);
  dfs_fault_disarm();
  assert_null(pt);
  dfs_sealed_free(&s);
}

/* ---- keys -------------------------------------------------------------- */

static void key__from_hex_accepts_64_digits(void **state)
{
  static const char hex[] = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
  char text[128], out[DFS_KEY_HEX_LEN + 1];
  dfs_key k;
  (void)state;
  assert_ok(dfs_key_from_hex(&k, hex, 64));
  assert_int_equal(k.bytes[0], 0x00);
  assert_int_equal(k.bytes[1], 0x11);
  assert_int_equal(k.bytes[10], 0xaa);
  assert_int_equal(k.bytes[31], 0xff);
  assert_ok(dfs_key_to_hex(&k, out, sizeof out));
  assert_string_equal(out, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  snprintf(text, sizeof text, "  \t%s\r\n\n", hex);
  assert_ok(dfs_key_from_hex(&k, text, strlen(text)));
  assert_int_equal(k.bytes[31], 0xff);
  /* not NUL-terminated: only len bytes are read */
  memcpy(text, hex, 64);
  text[64] = 'z';
  assert_ok(dfs_key_from_hex(&k, text, 64));
  assert_dfs(dfs_key_to_hex(&k, out, DFS_KEY_HEX_LEN), DFS_EINVAL);
}

static void key__from_hex_rejects_bad_keys(void **state)
{
  static const char *bad[] = {
      "",
      "\n",
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef",   /* 63 */
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0", /* 65 */
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg",  /* g */
      "0011223344556677 8899aabbccddeeff00112233445566778899aabbccddeeff", /* inner space */
      "0x112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
      "00112233445566778899aabbccddeeff",                                  /* AES-128 */
      "correct horse battery staple",
  };
  dfs_key k;
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&k, 0xa5, sizeof k);
    assert_dfs(dfs_key_from_hex(&k, bad[i], strlen(bad[i])), DFS_EINVAL);
    for (size_t j = 0; j < sizeof k.bytes; j++)
      assert_int_equal(k.bytes[j], 0); /* wiped, no half-parsed key */
  }
  assert_dfs(dfs_key_from_hex(NULL, "00", 2), DFS_EINVAL);
  assert_dfs(dfs_key_from_hex(&k, NULL, 64), DFS_EINVAL);
}

static void key__generate_is_random(void **state)
{
  dfs_key a, b;
  char ha[65], hb[65];
  (void)state;
  assert_ok(dfs_key_generate(&a));
  assert_ok(dfs_key_generate(&b));
  assert_memory_not_equal(a.bytes, b.bytes, DFS_KEY_SIZE);
  assert_ok(dfs_key_to_hex(&a, ha, sizeof ha));
  assert_ok(dfs_key_to_hex(&b, hb, sizeof hb));
  assert_int_equal(strlen(ha), 64);
  /* the hex form reads back as the same key */
  {
    dfs_key c;
    assert_ok(dfs_key_from_hex(&c, ha, 64));
    assert_memory_equal(c.bytes, a.bytes, DFS_KEY_SIZE);
  }
  dfs_key_wipe(&a);
  for (size_t i = 0; i < DFS_KEY_SIZE; i++)
    assert_int_equal(a.bytes[i], 0);
  assert_dfs(dfs_key_generate(NULL), DFS_EINVAL);
}

static void key__load_files(void **state)
{
  static const char hex[] = "4a5b6c7d8e9f000102030405060708090a0b0c0d0e0f10111213141516171819";
  char *dir = tu_mkdtemp("seal");
  char path[512], text[128];
  dfs_key k;
  int loose = -1;
  (void)state;

  snprintf(path, sizeof path, "%s/good.key", dir);
  snprintf(text, sizeof text, "%s\n", hex);
  tu_write_file(path, text, strlen(text));
  assert_int_equal(chmod(path, 0600), 0);
  assert_ok(dfs_key_load(&k, path, &loose));
  assert_int_equal(loose, 0);
  assert_int_equal(k.bytes[0], 0x4a);
  assert_int_equal(k.bytes[31], 0x19);

  assert_int_equal(chmod(path, 0644), 0);
  assert_ok(dfs_key_load(&k, path, &loose));
  assert_int_equal(loose, 1);
  assert_int_equal(chmod(path, 0620), 0);
  assert_ok(dfs_key_load(&k, path, &loose));
  assert_int_equal(loose, 1);
  assert_ok(dfs_key_load(&k, path, NULL));

  snprintf(path, sizeof path, "%s/missing.key", dir);
  assert_dfs(dfs_key_load(&k, path, &loose), DFS_ENOTFOUND);
  assert_non_null(strstr(dfs_last_error(), "missing.key"));

  snprintf(path, sizeof path, "%s/short.key", dir);
  tu_write_file(path, hex, 62);
  assert_dfs(dfs_key_load(&k, path, &loose), DFS_EINVAL);
  assert_non_null(strstr(dfs_last_error(), "62 hex digits"));

  snprintf(path, sizeof path, "%s/nothex.key", dir);
  tu_write_file(path, "not a key at all", 16);
  assert_dfs(dfs_key_load(&k, path, &loose), DFS_EINVAL);

  snprintf(path, sizeof path, "%s/empty.key", dir);
  tu_write_file(path, "", 0);
  assert_dfs(dfs_key_load(&k, path, &loose), DFS_EINVAL);

  snprintf(path, sizeof path, "%s/big.key", dir);
  {
    char *big = malloc(8192);
    memset(big, 'a', 8192);
    tu_write_file(path, big, 8192);
    free(big);
  }
  assert_dfs(dfs_key_load(&k, path, &loose), DFS_EREAD);

  assert_dfs(dfs_key_load(&k, dir, &loose), DFS_EREAD); /* a directory */
  assert_dfs(dfs_key_load(&k, NULL, &loose), DFS_EINVAL);
  tu_rmrf(dir);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(seal__known_answers),
      cmocka_unit_test(seal__round_trip_sizes),
      cmocka_unit_test(seal__fresh_nonce_every_time),
      cmocka_unit_test(unseal__wrong_key_is_corrupt),
      cmocka_unit_test(unseal__tampered_blob_is_corrupt),
      cmocka_unit_test(unseal__tampered_iv_or_tag_is_corrupt),
      cmocka_unit_test(unseal__malformed_iv_or_tag_is_corrupt),
      cmocka_unit_test(seal__bad_arguments),
      cmocka_unit_test(seal__out_of_memory),
      cmocka_unit_test(key__from_hex_accepts_64_digits),
      cmocka_unit_test(key__from_hex_rejects_bad_keys),
      cmocka_unit_test(key__generate_is_random),
      cmocka_unit_test(key__load_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
