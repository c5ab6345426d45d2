/* sign.c: Ed25519 signing keys (libsodium). The 64-byte secret key lives in secret memory for
 * its whole life; a key pair made from the rng seam is reproducible under a seeded source. */
#include "crypto/crypto.h"

#include <sodium.h>
#include <string.h>

#include "base/assert.h"
#include "crypto/crypto_int.h"

psl_err signer_init(struct signer *s, const uint8_t seed[SIGN_SEED_SIZE])
{
    return keypair_from_seed(crypto_sign_seed_keypair, crypto_sign_SECRETKEYBYTES, seed, s->pk,
                             SIGN_PK_SIZE, &s->sk);
}

void signer_deinit(struct signer *s)
{
    secret_free(s->sk);
    s->sk = NULL;
}

void signer_seed(const struct signer *s, uint8_t out[SIGN_SEED_SIZE])
{
    PSL_ASSERT(s->sk);
    crypto_sign_ed25519_sk_to_seed(out, s->sk);
}

void sign_detached(const struct signer *s, uint8_t sig[SIGN_SIG_SIZE], const void *msg,
                   size_t msg_size)
{
    PSL_ASSERT(s->sk);
    int rc = crypto_sign_detached(sig, NULL, msg, msg_size, s->sk);
    PSL_ASSERT(rc == 0);
}

bool sign_verify(const uint8_t pk[SIGN_PK_SIZE], const uint8_t sig[SIGN_SIG_SIZE], const void *msg,
                 size_t msg_size)
{
    return crypto_sign_verify_detached(sig, msg, msg_size, pk) == 0;
}

/* The tagged message is tag || hash; tags are short fixed ASCII strings ("psl-rec-v1"). */
static size_t tagged_msg(uint8_t *buf, size_t cap, const char *tag, const uint8_t hash[HASH_SIZE])
{
    size_t tl = strlen(tag);
    PSL_ASSERT(tl + HASH_SIZE <= cap);
    memcpy(buf, tag, tl);
    memcpy(buf + tl, hash, HASH_SIZE);
    return tl + HASH_SIZE;
}

void sign_tagged(const struct signer *s, uint8_t sig[SIGN_SIG_SIZE], const char *tag,
                 const uint8_t hash[HASH_SIZE])
{
    uint8_t m[64];
    size_t n = tagged_msg(m, sizeof m, tag, hash);
    sign_detached(s, sig, m, n);
}

bool sign_verify_tagged(const uint8_t pk[SIGN_PK_SIZE], const uint8_t sig[SIGN_SIG_SIZE],
                        const char *tag, const uint8_t hash[HASH_SIZE])
{
    uint8_t m[64];
    size_t n = tagged_msg(m, sizeof m, tag, hash);
    return sign_verify(pk, sig, m, n);
}
