/*
 * pl_log.h — the power-loss recorder's log format, shared by the recorder
 * (plfuse.c) and the replayer (plreplay.c).  See powerloss.sh for the
 * harness design.
 *
 * The log is a header followed by records in the order the recorder served
 * them (it is single-threaded, so this is one total order):
 *
 *   header  "DFSPLOG1" (8 bytes), uint64 image size
 *   record  struct pl_rec, then `len` payload bytes for PL_WRITE/PL_MARK
 *
 * Integers are in host byte order: a log is read on the machine that wrote
 * it.
 */
#ifndef DFS_PL_LOG_H
#define DFS_PL_LOG_H

#include <stdint.h>

#define PL_MAGIC "DFSPLOG1"

enum pl_type {
  PL_WRITE = 'W', /* `len` bytes at `off` (payload: the data)                   */
  PL_ZERO = 'Z',  /* `len` zero bytes at `off` (punch hole / zero range)         */
  PL_FLUSH = 'F', /* fsync of the image: a device cache flush (REQ_PREFLUSH/FUA) */
  PL_MARK = 'M',  /* a workload marker (payload: one text line, no newline)      */
};

struct pl_rec {
  uint32_t type; /* enum pl_type                                             */
  uint32_t len;  /* payload length (PL_WRITE, PL_MARK) or zeroed length (Z)  */
  uint64_t off;  /* byte offset in the image (PL_WRITE, PL_ZERO)            */
};

#endif /* DFS_PL_LOG_H */
