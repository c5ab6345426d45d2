/* aead.c: AES-256-GCM through libgcrypt (AES-NI/VAES on this machine). A key is expanded once
 * into a handle in libgcrypt's secure memory and reused for every record of that writer, so a
 * record costs one setiv + one pass, not a key schedule. Handles are not shared across threads. */
#include "crypto/crypto.h"

#include <gcrypt.h>

psl_err aead_key_init(struct aead_key *k, const uint8_t key[AEAD_KEY_SIZE])
{
    gcry_cipher_hd_t hd;
    if (gcry_cipher_open(&hd, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, GCRY_CIPHER_SECURE))
        return PSL_ERR_CRYPTO;
    if (gcry_cipher_setkey(hd, key, AEAD_KEY_SIZE)) {
        gcry_cipher_close(hd);
        return PSL_ERR_CRYPTO;
    }
    k->hd = hd;
    return PSL_OK;
}

void aead_key_deinit(struct aead_key *k)
{
    if (k->hd)
        gcry_cipher_close(k->hd); /* libgcrypt wipes the context on close */
    k->hd = NULL;
}

static psl_err aead_start(const struct aead_key *k, const uint8_t nonce[AEAD_NONCE_SIZE],
                          const void *aad, size_t aad_size)
{
    gcry_cipher_hd_t hd = k->hd;
    if (gcry_cipher_setiv(hd, nonce, AEAD_NONCE_SIZE))
        return PSL_ERR_CRYPTO;
    if (aad_size && gcry_cipher_authenticate(hd, aad, aad_size))
        return PSL_ERR_CRYPTO;
    return PSL_OK;
}

psl_err aead_seal(const struct aead_key *k, const uint8_t nonce[AEAD_NONCE_SIZE], const void *aad,
                  size_t aad_size, uint8_t *buf, size_t size, uint8_t tag[AEAD_TAG_SIZE])
{
    psl_err err = aead_start(k, nonce, aad, aad_size);
    if (err)
        return err;
    gcry_cipher_hd_t hd = k->hd;
    gcry_cipher_final(hd);
    if (gcry_cipher_encrypt(hd, buf, size, NULL, 0))
        return PSL_ERR_CRYPTO;
    if (gcry_cipher_gettag(hd, tag, AEAD_TAG_SIZE))
        return PSL_ERR_CRYPTO;
    return PSL_OK;
}

psl_err aead_open(const struct aead_key *k, const uint8_t nonce[AEAD_NONCE_SIZE], const void *aad,
                  size_t aad_size, uint8_t *buf, size_t size, const uint8_t tag[AEAD_TAG_SIZE])
{
    psl_err err = aead_start(k, nonce, aad, aad_size);
    if (err)
        return err;
    gcry_cipher_hd_t hd = k->hd;
    gcry_cipher_final(hd);
    if (gcry_cipher_decrypt(hd, buf, size, NULL, 0))
        return PSL_ERR_CRYPTO;
    if (gcry_cipher_checktag(hd, tag, AEAD_TAG_SIZE)) {
        secret_wipe(buf, size);
        return PSL_ERR_DECRYPT;
    }
    return PSL_OK;
}
