/*
 * id.c — the one place ids are validated (DESIGN §4).
 *
 * An id becomes part of a file name inside files/ or templates/, so it is
 * checked once, strictly, before any file is touched: 1..DFS_ID_MAX bytes,
 * no '/', '\\', NUL, control characters (0x01-0x1f, 0x7f), not "." or
 * "..", no leading '.' (deltafs's own names use it).  Everything else —
 * including non-ASCII UTF-8 and spaces — is accepted, as the Go workers do.
 */
#include <string.h>

#include "deltafs/storage.h"
#include "error_int.h"
#include "id.h"

int dfs__id_check(const char *id, size_t len)
{
  if (len == 0)
    return 0;
  if (len > DFS_ID_MAX)
    return 0;
  if (id[0] == '.') /* also rejects "." and ".." */
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
      return 0;
  }
  return 1;
}

int dfs_id_validate(const char *id)
{
  size_t len;
  if (!id)
    return dfs__err(DFS_EINVALID_ID, "invalid id: NULL");
  len = strnlen(id, DFS_ID_MAX + 1);
  if (len == 0)
    return dfs__err(DFS_EINVALID_ID, "invalid id: empty");
  if (len > DFS_ID_MAX)
    return dfs__err(DFS_EINVALID_ID, "invalid id: longer than %d bytes", DFS_ID_MAX);
  if (id[0] == '.')
    return dfs__err(DFS_EINVALID_ID, "invalid id \"%.40s\": starts with '.'", id);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c == '/' || c == '\\')
      return dfs__err(DFS_EINVALID_ID, "invalid id: contains '%c'", c);
    if (c < 0x20 || c == 0x7f)
      return dfs__err(DFS_EINVALID_ID, "invalid id: contains control character 0x%02x", c);
  }
  return 0;
}
