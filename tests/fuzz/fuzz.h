/*
 * fuzz.h — shared by the fuzz targets (libFuzzer entry point) and the
 * corpus replayer (replay.c), which runs the same targets without clang.
 *
 * Every target checks a PROPERTY, not just "does not crash": a parser's
 * answer against an independent reference, or a round trip.  A broken
 * property calls fuzz_fail(), which prints what broke and aborts, so
 * libFuzzer saves the input as a crash.
 */
#ifndef DFS_FUZZ_H
#define DFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_fail(...)                                                         \
  do {                                                                         \
    fprintf(stderr, "PROPERTY BROKEN (%s:%d): ", __FILE__, __LINE__);          \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    abort();                                                                   \
  } while (0)

#endif
