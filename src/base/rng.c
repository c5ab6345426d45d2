/* rng.c: libsodium's CSPRNG behind the seam of rng.h, and a seeded ChaCha20 source for
 * deterministic runs. The seeded source is never installed by production code paths. */
#include "base/rng.h"

#include <sodium.h>
#include <string.h>

static const struct rng_source *rng_src;

void rng_set_source(const struct rng_source *src)
{
    rng_src = src;
}

void rng_bytes(uint8_t *buf, size_t size)
{
    if (rng_src)
        rng_src->fill(rng_src->ctx, buf, size);
    else
        randombytes_buf(buf, size);
}

uint64_t rng_u64(void)
{
    uint8_t b[8];
    rng_bytes(b, sizeof b);
    uint64_t v;
    memcpy(&v, b, sizeof v);
    return v;
}

static void seeded_fill(void *ctx, uint8_t *buf, size_t size)
{
    struct rng_seeded *r = ctx;
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    memset(buf, 0, size);
    memcpy(nonce, &r->counter, sizeof nonce);
    crypto_stream_chacha20_xor(buf, buf, size, nonce, r->key);
    r->counter++;
}

void rng_seeded_init(struct rng_seeded *r, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    memcpy(r->key, &seed, sizeof seed);
    memcpy(r->key + 8, "psl-seeded-rng", 14);
    r->source.fill = seeded_fill;
    r->source.ctx = r;
}
