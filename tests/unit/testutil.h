/* testutil.h: shared helpers of the unit tests: crypto init, deterministic keys, file slurp,
 * directory removal. */
#ifndef PSL_TESTUTIL_H
#define PSL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Initialises crypto (fails the test on error) and silences logs below warn. */
void tu_init(void);
/* A deterministic 32-byte seed derived from a small integer. */
void tu_seed(uint8_t out[32], unsigned n);
/* Reads a file of hex text (whitespace ignored) into a malloc'd buffer; fails the test on error. */
uint8_t *tu_read_hex(const char *path, size_t *size);
/* Removes a directory and the files in it (one level: what a store or a server leaves). */
void tu_dir_remove(const char *path);
/* Flips bit `bit` of buf. */
void tu_flip(uint8_t *buf, size_t bit);

#endif
