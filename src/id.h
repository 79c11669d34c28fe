/* id.h — id validation shared by storage, locks and listing (see id.c). */
#ifndef DFS_ID_H
#define DFS_ID_H
#include <stddef.h>
/* 1 if the first len bytes are a valid id (no detail set: for listing). */
int dfs__id_check(const char *id, size_t len);
#endif
