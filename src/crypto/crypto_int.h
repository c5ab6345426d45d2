/* crypto_int.h: internals shared by the files of the crypto module. */
#ifndef PSL_CRYPTO_CRYPTO_INT_H
#define PSL_CRYPTO_CRYPTO_INT_H

#include "crypto/crypto.h"

/* libsodium's "key pair from a 32-byte seed" shape (crypto_sign_seed_keypair,
 * crypto_box_seed_keypair). */
typedef int (*seed_keypair_fn)(unsigned char *pk, unsigned char *sk, const unsigned char *seed);

/* Makes a key pair from seed (or from the rng seam when seed is NULL): the secret key goes into
 * new secret memory returned in *sk_out, the public key into pk_out. */
psl_err keypair_from_seed(seed_keypair_fn derive, size_t sk_size, const uint8_t seed[32],
                          uint8_t *pk_out, size_t pk_size, uint8_t **sk_out) PSL_MUST_USE;

#endif
