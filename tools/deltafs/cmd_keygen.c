/*
 * cmd_keygen.c — keygen: a new AES-256 key as 64 hex digits, the form of
 * DeltaDatabase's -master-key.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

static const char keygen_help[] =
    "usage: deltafs keygen [-o KEYFILE] [--force]\n"
    "\n"
    "Generate a random 256-bit key and print it as 64 hex digits and a newline\n"
    "(the form of DeltaDatabase's -master-key and of --key files).\n"
    "\n"
    "  -o, --output KEYFILE  write it to KEYFILE, created with mode 0600; an\n"
    "                        existing file is not overwritten unless --force\n"
    "  -f, --force           replace an existing KEYFILE\n"
    "  -h, --help            this help\n";

int cmd_keygen(int argc, char **argv)
{
  static const struct option opts[] = {
      CLI_COMMON_OPTIONS,
      {"output", 1, NULL, 'o'},
      {"force", 0, NULL, 'f'},
      {NULL, 0, NULL, 0},
  };
  const char *output = NULL;
  char hex[DFS_KEY_HEX_LEN + 2];
  dfs_key key;
  int opt, rc, force = 0, status;

  while ((opt = getopt_long(argc, argv, ":o:f", opts, NULL)) != -1) {
    if ((rc = cli_common_option(opt, keygen_help)) == CLI_CONTINUE)
      continue;
    if (rc >= 0)
      return rc;
    if (opt == 'o')
      output = optarg;
    else if (opt == 'f')
      force = 1;
    else
      return cli_option_error("keygen", opt, argv);
  }
  if (optind != argc)
    return cli_usage_error("keygen", "unexpected argument '%s'", argv[optind]);
  rc = dfs_key_generate(&key);
  if (rc < 0)
    return cli_fail_rc("keygen", rc, "cannot generate a key");
  dfs_key_to_hex(&key, hex, sizeof hex);
  dfs_key_wipe(&key);
  hex[DFS_KEY_HEX_LEN] = '\n';
  hex[DFS_KEY_HEX_LEN + 1] = '\0';

  if (!output || strcmp(output, "-") == 0) {
    status = cli_write_output("keygen", NULL, hex, DFS_KEY_HEX_LEN + 1, 0);
  } else {
    /* O_EXCL: never overwrite a key silently; 0600 from the first byte. */
    int fd = open(output, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL),
                  0600);
    status = CLI_EXIT_OK;
    if (fd < 0) {
      cli_errorf("keygen", "cannot create %s: %s%s", output, strerror(errno),
                 errno == EEXIST ? " (use --force to replace it)" : "");
      status = CLI_EXIT_FAIL;
    } else {
      /* --force on an existing file, or a umask-free mode: make it 0600. */
      if (fchmod(fd, 0600) < 0 || write(fd, hex, DFS_KEY_HEX_LEN + 1) != DFS_KEY_HEX_LEN + 1 ||
          fsync(fd) < 0) {
        cli_errorf("keygen", "cannot write %s: %s", output, strerror(errno));
        status = CLI_EXIT_FAIL;
      }
      if (close(fd) < 0 && status == CLI_EXIT_OK) {
        cli_errorf("keygen", "cannot write %s: %s", output, strerror(errno));
        status = CLI_EXIT_FAIL;
      }
      if (status != CLI_EXIT_OK && !force)
        unlink(output); /* ours, half-written: do not leave it */
    }
  }
  OPENSSL_cleanse(hex, sizeof hex);
  return status;
}
