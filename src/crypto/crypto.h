/* crypto.h: the crypto suite of DESIGN §4 (suite id 1) behind small wrappers.
 * Ed25519, X25519 sealed boxes, randomness and secret memory come from libsodium; AES-256-GCM,
 * SHA-256 and HMAC-SHA256 (for HKDF) come from libgcrypt. No primitive is written by hand.
 * Secrets live in sodium_malloc memory (guard pages, mlock, wiped on free) and are compared in
 * constant time only. psl_crypto_init() must succeed before anything else here is called. */
#ifndef PSL_CRYPTO_CRYPTO_H
#define PSL_CRYPTO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define PSL_SUITE_1 1u

#define HASH_SIZE 32u
#define SIGN_PK_SIZE 32u
#define SIGN_SEED_SIZE 32u
#define SIGN_SIG_SIZE 64u
#define KX_PK_SIZE 32u
#define AEAD_KEY_SIZE 32u
#define AEAD_NONCE_SIZE 12u
#define AEAD_TAG_SIZE 16u
#define SEAL_OVERHEAD 48u /* crypto_box_SEALBYTES */

/* Initialises libsodium and libgcrypt (secure memory, self-tests). Idempotent, thread-safe after
 * the first call returns. */
psl_err psl_crypto_init(void) PSL_MUST_USE;

/* ---- secret memory ---- */
/* Allocates size bytes of guarded, locked memory, or NULL. Free with secret_free (wipes). */
void *secret_alloc(size_t size);
void secret_free(void *p);
/* Constant-time equality of two n-byte buffers. */
bool ct_equal(const void *a, const void *b, size_t n);
void secret_wipe(void *p, size_t n);

/* ---- SHA-256 ---- */
struct hash_part {
    const void *data; /* borrowed */
    size_t size;
};
void hash_sha256(uint8_t out[HASH_SIZE], const void *data, size_t size);
/* Hash of the concatenation of parts, without copying them together. */
void hash_sha256_parts(uint8_t out[HASH_SIZE], const struct hash_part *parts, size_t count);

/* ---- HMAC-SHA256 and HKDF-SHA256 (RFC 5869) ---- */
psl_err hmac_sha256(uint8_t out[HASH_SIZE], const uint8_t *key, size_t key_size, const void *msg,
                    size_t msg_size) PSL_MUST_USE;
/* out_size <= 255 * 32. salt may be NULL (all-zero salt). */
psl_err hkdf_sha256(uint8_t *out, size_t out_size, const uint8_t *ikm, size_t ikm_size,
                    const uint8_t *salt, size_t salt_size, const void *info,
                    size_t info_size) PSL_MUST_USE;

/* ---- Ed25519 ---- */
struct signer {
    uint8_t pk[SIGN_PK_SIZE];
    uint8_t *sk; /* 64 bytes of secret memory, owned */
};
/* Key pair from a 32-byte seed (deterministic), or from the rng seam when seed is NULL. */
psl_err signer_init(struct signer *s, const uint8_t seed[SIGN_SEED_SIZE]) PSL_MUST_USE;
void signer_deinit(struct signer *s);
/* Copies the 32-byte seed out of the secret key (for key files). out is the caller's secret. */
void signer_seed(const struct signer *s, uint8_t out[SIGN_SEED_SIZE]);
void sign_detached(const struct signer *s, uint8_t sig[SIGN_SIG_SIZE], const void *msg,
                   size_t msg_size);
/* Verifies with domain separation already applied by the caller. */
bool sign_verify(const uint8_t pk[SIGN_PK_SIZE], const uint8_t sig[SIGN_SIG_SIZE], const void *msg,
                 size_t msg_size);
/* Domain-separated variants: the signed message is (tag || hash), tag a short ASCII string. */
void sign_tagged(const struct signer *s, uint8_t sig[SIGN_SIG_SIZE], const char *tag,
                 const uint8_t hash[HASH_SIZE]);
bool sign_verify_tagged(const uint8_t pk[SIGN_PK_SIZE], const uint8_t sig[SIGN_SIG_SIZE],
                        const char *tag, const uint8_t hash[HASH_SIZE]);

/* ---- X25519 sealed boxes ---- */
struct kx_keypair {
    uint8_t pk[KX_PK_SIZE];
    uint8_t *sk; /* 32 bytes of secret memory, owned */
};
psl_err kx_init(struct kx_keypair *kp, const uint8_t seed[32]) PSL_MUST_USE;
void kx_deinit(struct kx_keypair *kp);
/* The X25519 form of a signing key pair (RFC 7748 birational map; libsodium's conversion), for
 * parties whose only published key is their Ed25519 one (storage servers). */
psl_err kx_from_signer(struct kx_keypair *kp, const struct signer *s) PSL_MUST_USE;
/* The X25519 form of an Ed25519 public key; PSL_ERR_CRYPTO when it is not a valid point. */
psl_err kx_pk_from_sign_pk(uint8_t out[KX_PK_SIZE], const uint8_t pk[SIGN_PK_SIZE]) PSL_MUST_USE;
#define KX_SHARED_SIZE 32u
/* X25519 agreement into out (the caller's secret memory); PSL_ERR_CRYPTO for a peer key of
 * small order (an all-zero result), so a hostile key cannot force a known secret. */
psl_err kx_agree(uint8_t out[KX_SHARED_SIZE], const struct kx_keypair *kp,
                 const uint8_t peer_pk[KX_PK_SIZE]) PSL_MUST_USE;
/* out must hold msg_size + SEAL_OVERHEAD bytes. Anonymous: callers that need the sender's
 * identity also sign what they seal. */
psl_err seal_box(uint8_t *out, const void *msg, size_t msg_size,
                 const uint8_t recipient_pk[KX_PK_SIZE]) PSL_MUST_USE;
/* out must hold c_size - SEAL_OVERHEAD bytes; PSL_ERR_DECRYPT when it does not open. */
psl_err seal_open(uint8_t *out, const uint8_t *c, size_t c_size,
                  const struct kx_keypair *kp) PSL_MUST_USE;

/* ---- AES-256-GCM ---- */
struct aead_key {
    void *hd; /* gcry_cipher_hd_t in libgcrypt's secure memory, owned; key schedule inside */
};
psl_err aead_key_init(struct aead_key *k, const uint8_t key[AEAD_KEY_SIZE]) PSL_MUST_USE;
void aead_key_deinit(struct aead_key *k);
/* Encrypts buf in place and writes the tag. The nonce must never repeat under one key. */
psl_err aead_seal(const struct aead_key *k, const uint8_t nonce[AEAD_NONCE_SIZE], const void *aad,
                  size_t aad_size, uint8_t *buf, size_t size,
                  uint8_t tag[AEAD_TAG_SIZE]) PSL_MUST_USE;
/* Decrypts buf in place; on a bad tag returns PSL_ERR_DECRYPT and wipes buf (no plaintext is
 * released on failure). */
psl_err aead_open(const struct aead_key *k, const uint8_t nonce[AEAD_NONCE_SIZE], const void *aad,
                  size_t aad_size, uint8_t *buf, size_t size,
                  const uint8_t tag[AEAD_TAG_SIZE]) PSL_MUST_USE;

#endif
