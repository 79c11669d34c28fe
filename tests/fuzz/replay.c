/*
 * replay.c — run a fuzz target over files without libFuzzer.
 *
 *   fuzz_meta_replay DIR_OR_FILE...
 *
 * Every regular file (directories are read one level deep) is passed to
 * LLVMFuzzerTestOneInput once.  This turns each seed corpus — including
 * the inputs that once crashed, kept there as regression tests — into a
 * ctest that runs with any compiler (gcc builds have no libFuzzer).
 * Exits 0 after all inputs, non-zero if none was found; a broken property
 * aborts (fuzz.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;
  if (!f) {
    perror(path);
    return -1;
  }
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "%s: read failed\n", path);
    fclose(f);
    free(buf);
    return -1;
  }
  fclose(f);
  /* An exact-size heap copy, so ASan sees any read past the input. */
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  return 0;
}

int main(int argc, char **argv)
{
  long runs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) < 0) {
      perror(argv[i]);
      return 2;
    }
    if (S_ISDIR(sb.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      while (d && (e = readdir(d))) {
        char p[4096];
        struct stat fsb;
        snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
        if (stat(p, &fsb) == 0 && S_ISREG(fsb.st_mode)) {
          if (run_file(p) < 0)
            return 2;
          runs++;
        }
      }
      if (d)
        closedir(d);
    } else {
      if (run_file(argv[i]) < 0)
        return 2;
      runs++;
    }
  }
  printf("replayed %ld inputs\n", runs);
  return runs > 0 ? 0 : 1;
}
