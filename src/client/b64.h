/* b64.h: base64 (RFC 4648, with padding) and hex helpers for the JSON of the node API, on
 * libsodium's constant-time codecs. Decoding takes untrusted text: the output bound is checked
 * before anything is written, and trailing garbage is refused. */
#ifndef PSL_CLIENT_B64_H
#define PSL_CLIENT_B64_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Encodes n bytes; returns a malloc'd NUL-terminated string, or NULL (out of memory). */
char *b64_encode_alloc(const uint8_t *in, size_t n);
/* Decodes text (len chars) into a malloc'd buffer of at most size_max bytes. Errors:
 * PSL_ERR_TOO_LARGE (decodes to more than size_max), PSL_ERR_MALFORMED (not base64). */
psl_err b64_decode_alloc(const char *text, size_t len, size_t size_max, uint8_t **out,
                         size_t *out_size) PSL_MUST_USE;
/* Decodes exactly n bytes of hex (2n digits, no more) into out. */
psl_err hex_decode_exact(uint8_t *out, size_t n, const char *text) PSL_MUST_USE;

#endif
