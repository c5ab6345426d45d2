/* bytes.h: the bounded reader and writer through which all wire and disk formats pass.
 * Both keep a sticky error: after the first failure every further call is a no-op that reads
 * zeros, so a decoder checks once at the end (or before it allocates). Bounds are checked as
 * `need <= size - pos`, which cannot wrap. All integers are little-endian, fixed width. */
#ifndef PSL_BASE_BYTES_H
#define PSL_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"

struct rd {
    const uint8_t *base; /* borrowed */
    size_t size;
    size_t pos;
    psl_err err;
};

struct wr {
    uint8_t *base; /* borrowed */
    size_t size;
    size_t pos;
    psl_err err;
};

static inline void rd_init(struct rd *r, const void *base, size_t size)
{
    r->base = base;
    r->size = size;
    r->pos = 0;
    r->err = PSL_OK;
}

static inline size_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

static inline void rd_fail(struct rd *r, psl_err err)
{
    if (r->err == PSL_OK)
        r->err = err;
}

/* Returns a borrowed pointer to the next n bytes and advances, or NULL (and sets the error). */
static inline const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->err != PSL_OK)
        return NULL;
    if (n > r->size - r->pos) {
        rd_fail(r, PSL_ERR_TRUNCATED);
        return NULL;
    }
    const uint8_t *p = r->base + r->pos;
    r->pos += n;
    return p;
}

static inline void rd_copy(struct rd *r, void *out, size_t n)
{
    const uint8_t *p = rd_take(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

static inline uint8_t rd_u8(struct rd *r)
{
    const uint8_t *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

static inline uint16_t rd_u16(struct rd *r)
{
    const uint8_t *p = rd_take(r, 2);
    return p ? (uint16_t)(p[0] | (unsigned)p[1] << 8) : 0;
}

static inline uint32_t rd_u32(struct rd *r)
{
    const uint8_t *p = rd_take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static inline uint64_t rd_u64(struct rd *r)
{
    if (r->err == PSL_OK && rd_left(r) < 8)
        rd_fail(r, PSL_ERR_TRUNCATED); /* fail whole: no half value, no half advance */
    uint64_t lo = rd_u32(r);
    uint64_t hi = rd_u32(r);
    return lo | hi << 32;
}

/* Fails with PSL_ERR_TRAILING unless the whole input was consumed; returns the sticky error. */
static inline psl_err rd_finish(struct rd *r)
{
    if (r->err == PSL_OK && r->pos != r->size)
        r->err = PSL_ERR_TRAILING;
    return r->err;
}

static inline void wr_init(struct wr *w, void *base, size_t size)
{
    w->base = base;
    w->size = size;
    w->pos = 0;
    w->err = PSL_OK;
}

/* Reserves n bytes and returns them for the caller to fill, or NULL (error PSL_ERR_TOO_LARGE). */
static inline uint8_t *wr_reserve(struct wr *w, size_t n)
{
    if (w->err != PSL_OK)
        return NULL;
    if (n > w->size - w->pos) {
        w->err = PSL_ERR_TOO_LARGE;
        return NULL;
    }
    uint8_t *p = w->base + w->pos;
    w->pos += n;
    return p;
}

static inline void wr_bytes(struct wr *w, const void *src, size_t n)
{
    uint8_t *p = wr_reserve(w, n);
    if (n && w->err == PSL_OK) /* not `p &&`: gcc 12 then invents a NULL-base path and warns */
        memcpy(p, src, n);
}

static inline void wr_u8(struct wr *w, uint8_t v)
{
    uint8_t *p = wr_reserve(w, 1);
    if (p)
        p[0] = v;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void wr_u16(struct wr *w, uint16_t v)
{
    uint8_t *p = wr_reserve(w, 2);
    if (p)
        put_le16(p, v);
}

static inline void wr_u32(struct wr *w, uint32_t v)
{
    uint8_t *p = wr_reserve(w, 4);
    if (p)
        put_le32(p, v);
}

static inline void wr_u64(struct wr *w, uint64_t v)
{
    uint8_t *p = wr_reserve(w, 8);
    if (p)
        put_le64(p, v);
}

/* Hex helpers for CLI and logs: out must hold 2*n+1 bytes. */
void hex_encode(char *out, const uint8_t *in, size_t n);
/* Decodes exactly n bytes from a 2*n-character hex string; PSL_ERR_MALFORMED otherwise. */
psl_err hex_decode(uint8_t *out, size_t n, const char *in) PSL_MUST_USE;

#endif
