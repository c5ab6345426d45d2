/* crypto.c: library initialisation, secret memory, SHA-256, HMAC and HKDF.
 * libgcrypt is set up once with a secure-memory pool (auto-expanding) so that the AES key
 * schedules it holds live in locked memory that it wipes when a handle is closed. */
#include "crypto/crypto.h"
#include "crypto/crypto_int.h"

#include <gcrypt.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "base/assert.h"
#include "base/rng.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static psl_err init_result = PSL_ERR_CRYPTO_INIT;

static void crypto_do_init(void)
{
    if (sodium_init() < 0)
        return;
    if (!gcry_check_version("1.8.0"))
        return;
    gcry_control(GCRYCTL_SUSPEND_SECMEM_WARN);
    gcry_control(GCRYCTL_INIT_SECMEM, 1 << 20, 0);
    gcry_control(GCRYCTL_AUTO_EXPAND_SECMEM, 1 << 20, 0);
    gcry_control(GCRYCTL_RESUME_SECMEM_WARN);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    init_result = PSL_OK;
}

psl_err psl_crypto_init(void)
{
    pthread_once(&init_once, crypto_do_init);
    return init_result;
}

psl_err keypair_from_seed(seed_keypair_fn derive, size_t sk_size, const uint8_t seed[32],
                          uint8_t *pk_out, size_t pk_size, uint8_t **sk_out)
{
    uint8_t *sk = secret_alloc(sk_size);
    uint8_t *fresh = secret_alloc(32);
    uint8_t pk[64];
    psl_err err = PSL_ERR_NOMEM;
    PSL_ASSERT(pk_size <= sizeof pk);
    if (!sk || !fresh)
        goto out_free;
    if (!seed) {
        rng_bytes(fresh, 32);
        seed = fresh;
    }
    if (derive(pk, sk, seed) != 0) {
        err = PSL_ERR_CRYPTO;
        goto out_free;
    }
    memcpy(pk_out, pk, pk_size);
    *sk_out = sk;
    sk = NULL;
    err = PSL_OK;
out_free:
    secret_free(fresh);
    secret_free(sk);
    return err;
}

void *secret_alloc(size_t size)
{
    return sodium_malloc(size);
}

void secret_free(void *p)
{
    if (p)
        sodium_free(p);
}

bool ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void secret_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

void hash_sha256(uint8_t out[HASH_SIZE], const void *data, size_t size)
{
    gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, size);
}

void hash_sha256_parts(uint8_t out[HASH_SIZE], const struct hash_part *parts, size_t count)
{
    gcry_buffer_t iov[8];
    PSL_ASSERT(count <= 8);
    for (size_t i = 0; i < count; i++) {
        iov[i] = (gcry_buffer_t){.size = 0, .off = 0, .len = parts[i].size,
                                 .data = (void *)(uintptr_t)parts[i].data};
    }
    gcry_error_t e = gcry_md_hash_buffers(GCRY_MD_SHA256, 0, out, iov, (int)count);
    PSL_ASSERT(e == 0);
}

psl_err hmac_sha256(uint8_t out[HASH_SIZE], const uint8_t *key, size_t key_size, const void *msg,
                    size_t msg_size)
{
    gcry_mac_hd_t hd;
    if (gcry_mac_open(&hd, GCRY_MAC_HMAC_SHA256, GCRY_MAC_FLAG_SECURE, NULL))
        return PSL_ERR_CRYPTO;
    psl_err err = PSL_ERR_CRYPTO;
    size_t len = HASH_SIZE;
    /* HMAC accepts an empty key; libgcrypt wants a non-NULL pointer for it. */
    static const uint8_t empty[1];
    if (gcry_mac_setkey(hd, key_size ? key : empty, key_size))
        goto out_close;
    if (msg_size && gcry_mac_write(hd, msg, msg_size))
        goto out_close;
    if (gcry_mac_read(hd, out, &len) || len != HASH_SIZE)
        goto out_close;
    err = PSL_OK;
out_close:
    gcry_mac_close(hd);
    return err;
}

psl_err hkdf_sha256(uint8_t *out, size_t out_size, const uint8_t *ikm, size_t ikm_size,
                    const uint8_t *salt, size_t salt_size, const void *info, size_t info_size)
{
    static const uint8_t zero_salt[HASH_SIZE];
    if (out_size > 255u * HASH_SIZE || info_size > 1024)
        return PSL_ERR_INVALID_ARG;
    if (!salt) {
        salt = zero_salt;
        salt_size = sizeof zero_salt;
    }
    uint8_t *prk = secret_alloc(HASH_SIZE);
    /* T(i) = HMAC(PRK, T(i-1) || info || i); the block holds the largest such message. */
    uint8_t *block = secret_alloc(HASH_SIZE + 1024 + 1);
    uint8_t *t = secret_alloc(HASH_SIZE);
    psl_err err = PSL_ERR_NOMEM;
    if (!prk || !block || !t)
        goto out_free;
    err = hmac_sha256(prk, salt, salt_size, ikm, ikm_size);
    if (err)
        goto out_free;
    size_t done = 0, tlen = 0;
    for (uint8_t i = 1; done < out_size; i++) {
        memcpy(block, t, tlen);
        if (info_size) /* info may be NULL when empty; memcpy(_, NULL, 0) is undefined */
            memcpy(block + tlen, info, info_size);
        block[tlen + info_size] = i;
        err = hmac_sha256(t, prk, HASH_SIZE, block, tlen + info_size + 1);
        if (err)
            goto out_free;
        tlen = HASH_SIZE;
        size_t n = out_size - done < HASH_SIZE ? out_size - done : HASH_SIZE;
        memcpy(out + done, t, n);
        done += n;
    }
out_free:
    if (err && out_size)
        secret_wipe(out, out_size);
    secret_free(t);
    secret_free(block);
    secret_free(prk);
    return err;
}
