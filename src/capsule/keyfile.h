/* keyfile.h: key files for the CLI: text, one `name=value` per line, mode 0600, never
 * overwritten. An owner or server key file holds an Ed25519 seed and its public key; a capsule
 * key file holds the 32-byte capsule secret. Seeds are read into secret memory. */
#ifndef PSL_CAPSULE_KEYFILE_H
#define PSL_CAPSULE_KEYFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"

enum keyfile_kind { KEYFILE_SIGNING = 1, KEYFILE_CAPSULE = 2 };

/* Writes a new key file (O_EXCL, 0600). secret is 32 bytes; pk (32 bytes) may be NULL for a
 * capsule key. Returns PSL_ERR_EXISTS when the path exists. */
psl_err keyfile_write(const char *path, enum keyfile_kind kind, const uint8_t *secret,
                      const uint8_t *pk) PSL_MUST_USE;
/* Reads a key file of the given kind; out_secret is 32 bytes of the caller's secret memory.
 * Refuses files readable by group or others. */
psl_err keyfile_read(const char *path, enum keyfile_kind kind, uint8_t *out_secret) PSL_MUST_USE;
/* Loads the signing key at path into *out (released with signer_deinit), creating a fresh one
 * first when the file does not exist. Another process may win the race to create it (O_EXCL):
 * then its key is the one loaded. *created (may be NULL) says whether this call made it. */
psl_err keyfile_signer(struct signer *out, const char *path, bool *created) PSL_MUST_USE;

#endif
