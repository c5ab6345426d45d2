/* b64.c: base64 and hex for the node API (see b64.h). */
#include "client/b64.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/bytes.h"

char *b64_encode_alloc(const uint8_t *in, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (out)
        sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

psl_err b64_decode_alloc(const char *text, size_t len, size_t size_max, uint8_t **out,
                         size_t *out_size)
{
    /* 4 characters carry 3 bytes: refuse what cannot fit before allocating. */
    if (len / 4 * 3 > size_max + 2)
        return PSL_ERR_TOO_LARGE;
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return PSL_ERR_NOMEM;
    size_t n;
    const char *end;
    if (len % 4 != 0 ||
        sodium_base642bin(buf, cap, text, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + len) {
        free(buf);
        return PSL_ERR_MALFORMED;
    }
    if (n > size_max) {
        free(buf);
        return PSL_ERR_TOO_LARGE;
    }
    *out = buf;
    *out_size = n;
    return PSL_OK;
}

psl_err hex_decode_exact(uint8_t *out, size_t n, const char *text)
{
    if (strlen(text) != 2 * n)
        return PSL_ERR_MALFORMED;
    return hex_decode(out, n, text) == PSL_OK ? PSL_OK : PSL_ERR_MALFORMED;
}
