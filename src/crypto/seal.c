/* seal.c: X25519 key pairs and anonymous sealed boxes (libsodium crypto_box_seal), used to
 * provision secrets to attested enclaves and to seal results to clients. */
#include "crypto/crypto.h"

#include <sodium.h>
#include <string.h>

#include "crypto/crypto_int.h"

_Static_assert(SEAL_OVERHEAD == crypto_box_SEALBYTES, "sealed box overhead");
_Static_assert(KX_PK_SIZE == crypto_box_PUBLICKEYBYTES, "x25519 public key size");
_Static_assert(KX_SHARED_SIZE == crypto_scalarmult_BYTES, "x25519 shared secret size");

psl_err kx_init(struct kx_keypair *kp, const uint8_t seed[32])
{
    return keypair_from_seed(crypto_box_seed_keypair, crypto_box_SECRETKEYBYTES, seed, kp->pk,
                             KX_PK_SIZE, &kp->sk);
}

void kx_deinit(struct kx_keypair *kp)
{
    secret_free(kp->sk);
    kp->sk = NULL;
}

psl_err kx_from_signer(struct kx_keypair *kp, const struct signer *s)
{
    uint8_t *sk = secret_alloc(crypto_scalarmult_curve25519_BYTES);
    if (!sk)
        return PSL_ERR_NOMEM;
    if (crypto_sign_ed25519_sk_to_curve25519(sk, s->sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(kp->pk, s->pk) != 0) {
        secret_free(sk);
        return PSL_ERR_CRYPTO;
    }
    kp->sk = sk;
    return PSL_OK;
}

psl_err kx_pk_from_sign_pk(uint8_t out[KX_PK_SIZE], const uint8_t pk[SIGN_PK_SIZE])
{
    return crypto_sign_ed25519_pk_to_curve25519(out, pk) == 0 ? PSL_OK : PSL_ERR_CRYPTO;
}

psl_err kx_agree(uint8_t out[KX_SHARED_SIZE], const struct kx_keypair *kp,
                 const uint8_t peer_pk[KX_PK_SIZE])
{
    /* libsodium returns -1 when the result is all zeros (a small-order peer key). */
    if (crypto_scalarmult(out, kp->sk, peer_pk) != 0) {
        secret_wipe(out, KX_SHARED_SIZE);
        return PSL_ERR_CRYPTO;
    }
    return PSL_OK;
}

psl_err seal_box(uint8_t *out, const void *msg, size_t msg_size,
                 const uint8_t recipient_pk[KX_PK_SIZE])
{
    return crypto_box_seal(out, msg, msg_size, recipient_pk) == 0 ? PSL_OK : PSL_ERR_CRYPTO;
}

psl_err seal_open(uint8_t *out, const uint8_t *c, size_t c_size, const struct kx_keypair *kp)
{
    if (c_size < SEAL_OVERHEAD)
        return PSL_ERR_TRUNCATED;
    if (crypto_box_seal_open(out, c, c_size, kp->pk, kp->sk) != 0)
        return PSL_ERR_DECRYPT;
    return PSL_OK;
}
