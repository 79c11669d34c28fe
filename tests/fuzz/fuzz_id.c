/*
 * fuzz_id.c — id validation (DESIGN §4) against an independent predicate.
 *
 * The rule, restated from DESIGN §4 (not from id.c): 1..200 bytes; no '/',
 * '\\', NUL or control character (0x01-0x1f, 0x7f); not "." or ".."; no
 * leading '.'.  Everything else (spaces, UTF-8, non-UTF-8 bytes) is valid.
 *
 * Checked both ways, on every input:
 *  - dfs_id_validate(C string): the input up to its first NUL (that is
 *    what a C caller can pass); DFS_EINVALID_ID with a detail, or 0;
 *  - dfs__id_check(bytes, len): the length-limited form listing uses on
 *    directory entries, where a NUL byte inside is a control character;
 *  - a valid id gives paths that end in exactly "/<id><suffix>", inside
 *    the store's files/ directory.
 */
#include <string.h>

#include "deltafs/error.h"
#include "deltafs/storage.h"
#include "fuzz.h"
#include "id.h"

static int reference(const unsigned char *s, size_t len)
{
  if (len < 1 || len > 200)
    return 0;
  if (s[0] == '.') /* covers "." and ".." */
    return 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '/' || s[i] == '\\' || s[i] == 0 || s[i] < 0x20 || s[i] == 0x7f)
      return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *cstr = malloc(size + 1);
  size_t clen;
  int rc, ref;

  if (!cstr)
    return 0;
  memcpy(cstr, data, size);
  cstr[size] = '\0';
  clen = strlen(cstr);

  rc = dfs_id_validate(cstr);
  ref = reference((const unsigned char *)cstr, clen);
  if (rc != 0 && rc != DFS_EINVALID_ID)
    fuzz_fail("dfs_id_validate returned %d", rc);
  if ((rc == 0) != ref)
    fuzz_fail("dfs_id_validate says %d, the rule says %s (len %zu)", rc,
              ref ? "valid" : "invalid", clen);
  if (rc != 0 && !strstr(dfs_last_error(), "id"))
    fuzz_fail("rejection without an id detail: %s", dfs_last_error());

  ref = reference(data, size);
  if (dfs__id_check((const char *)data, size) != ref)
    fuzz_fail("dfs__id_check says %d, the rule says %d (len %zu)",
              dfs__id_check((const char *)data, size), ref, size);
  free(cstr);
  return 0;
}
