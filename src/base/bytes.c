/* bytes.c: hex helpers (the reader and writer are inline in bytes.h). */
#include "base/bytes.h"

void hex_encode(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

psl_err hex_decode(uint8_t *out, size_t n, const char *in)
{
    if (strlen(in) != 2 * n)
        return PSL_ERR_MALFORMED;
    for (size_t i = 0; i < 2 * n; i++)
        if (hex_val(in[i]) < 0)
            return PSL_ERR_MALFORMED;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)((unsigned)hex_val(in[2 * i]) << 4 | (unsigned)hex_val(in[2 * i + 1]));
    return PSL_OK;
}
