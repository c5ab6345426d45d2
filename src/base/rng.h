/* rng.h: the randomness seam. Production draws from libsodium's CSPRNG; the simulator and the
 * known-answer tests install a deterministic source. All key generation goes through here. */
#ifndef PSL_BASE_RNG_H
#define PSL_BASE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng_source {
    void (*fill)(void *ctx, uint8_t *buf, size_t size);
    void *ctx;
};

/* Installs a source; NULL restores the system CSPRNG. Borrowed until replaced. */
void rng_set_source(const struct rng_source *src);
void rng_bytes(uint8_t *buf, size_t size);
uint64_t rng_u64(void);

/* A deterministic source (ChaCha20 keystream of a 64-bit seed), for simulation and tests only. */
struct rng_seeded {
    uint8_t key[32];
    uint64_t counter;
    struct rng_source source;
};
void rng_seeded_init(struct rng_seeded *r, uint64_t seed);

#endif
