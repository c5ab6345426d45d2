/* test_crypto.c: unit tests of src/crypto. Known-answer vectors come from the standards that
 * define each primitive (FIPS 180-2 examples for SHA-256, RFC 4231 for HMAC-SHA256, RFC 5869 for
 * HKDF, the McGrew-Viega GCM specification for AES-256-GCM, RFC 8032 §7.1 for Ed25519); the
 * rest checks the wrappers' contracts: failures are reported, and no plaintext is released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/rng.h"
#include "crypto/crypto.h"
#include "testutil.h"

/* Decodes a vector typed in as hex; the length must match exactly. */
static void unhex(uint8_t *out, size_t n, const char *hex)
{
    assert_int_equal(strlen(hex), 2 * n);
    assert_int_equal(hex_decode(out, n, hex), PSL_OK);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int setup(void **state)
{
    (void)state;
    tu_init();
    return 0;
}

static void test_init_idempotent(void **state)
{
    (void)state;
    assert_int_equal(psl_crypto_init(), PSL_OK);
    assert_int_equal(psl_crypto_init(), PSL_OK);
}

/* ---- SHA-256 ---- */

static const char sha_448_msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
#define SHA_448_DIGEST "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

static void test_sha256_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        const char *digest;
    } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {sha_448_msg, SHA_448_DIGEST},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t want[HASH_SIZE], got[HASH_SIZE];
        unhex(want, sizeof want, v[i].digest);
        hash_sha256(got, v[i].msg, strlen(v[i].msg));
        assert_memory_equal(got, want, HASH_SIZE);
    }
    assert_int_equal(strlen(sha_448_msg), 448 / 8);

    /* One million 'a' (FIPS 180-2, appendix B.3). */
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    uint8_t want[HASH_SIZE], got[HASH_SIZE];
    unhex(want, sizeof want, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    hash_sha256(got, a, n);
    assert_memory_equal(got, want, HASH_SIZE);
    free(a);
}

static void test_sha256_parts(void **state)
{
    (void)state;
    uint8_t want[HASH_SIZE], got[HASH_SIZE];
    unhex(want, sizeof want, SHA_448_DIGEST);

    /* Split at odd places, with empty parts in between and at the ends. */
    const char *m = sha_448_msg;
    struct hash_part parts[] = {
        {"", 0}, {m, 1}, {m + 1, 0}, {m + 1, 20}, {m + 21, 34}, {m + 55, 1}, {NULL, 0},
    };
    hash_sha256_parts(got, parts, sizeof parts / sizeof parts[0]);
    assert_memory_equal(got, want, HASH_SIZE);

    /* The same as hashing the concatenation, for a split across a 64-byte block boundary. */
    uint8_t buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint8_t whole[HASH_SIZE];
    hash_sha256(whole, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 13) {
        struct hash_part two[] = {{buf, cut}, {buf + cut, sizeof buf - cut}};
        hash_sha256_parts(got, two, 2);
        assert_memory_equal(got, whole, HASH_SIZE);
    }
    /* Eight parts, the most the function takes. */
    struct hash_part eight[8];
    for (size_t i = 0; i < 8; i++)
        eight[i] = (struct hash_part){buf + i * 25, 25};
    hash_sha256_parts(got, eight, 8);
    assert_memory_equal(got, whole, HASH_SIZE);

    /* Order matters: the parts are concatenated, not combined. */
    struct hash_part swapped[] = {{buf + 100, 100}, {buf, 100}};
    hash_sha256_parts(got, swapped, 2);
    assert_memory_not_equal(got, whole, HASH_SIZE);

    /* No parts at all is the empty message. */
    unhex(want, sizeof want, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hash_sha256_parts(got, parts, 0);
    assert_memory_equal(got, want, HASH_SIZE);
}

/* ---- HMAC-SHA256 (RFC 4231) ---- */

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131], want[HASH_SIZE], got[HASH_SIZE];

    /* Test case 1 */
    memset(key, 0x0b, 20);
    unhex(want, sizeof want, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_int_equal(hmac_sha256(got, key, 20, "Hi There", 8), PSL_OK);
    assert_memory_equal(got, want, HASH_SIZE);

    /* Test case 2: key shorter than the output */
    const char *m2 = "what do ya want for nothing?";
    unhex(want, sizeof want, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_int_equal(hmac_sha256(got, (const uint8_t *)"Jefe", 4, m2, strlen(m2)), PSL_OK);
    assert_memory_equal(got, want, HASH_SIZE);

    /* Test case 6: key longer than the block size, hashed first */
    memset(key, 0xaa, 131);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    unhex(want, sizeof want, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    assert_int_equal(hmac_sha256(got, key, 131, m6, strlen(m6)), PSL_OK);
    assert_memory_equal(got, want, HASH_SIZE);

    /* A different key or message gives a different tag. */
    assert_int_equal(hmac_sha256(got, key, 130, m6, strlen(m6)), PSL_OK);
    assert_memory_not_equal(got, want, HASH_SIZE);

    /* Empty key and empty message (HMAC-SHA256("", "")). */
    unhex(want, sizeof want, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    assert_int_equal(hmac_sha256(got, NULL, 0, NULL, 0), PSL_OK);
    assert_memory_equal(got, want, HASH_SIZE);
}

/* ---- HKDF-SHA256 (RFC 5869, appendix A) ---- */

static void test_hkdf_rfc5869_case1(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], want[42], got[42];
    memset(ikm, 0x0b, sizeof ikm);
    unhex(salt, sizeof salt, "000102030405060708090a0b0c");
    unhex(info, sizeof info, "f0f1f2f3f4f5f6f7f8f9");
    unhex(want, sizeof want,
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    assert_int_equal(
        hkdf_sha256(got, sizeof got, ikm, sizeof ikm, salt, sizeof salt, info, sizeof info),
        PSL_OK);
    assert_memory_equal(got, want, sizeof want);

    /* A shorter output is a prefix of the longer one. */
    uint8_t short_out[20];
    assert_int_equal(hkdf_sha256(short_out, sizeof short_out, ikm, sizeof ikm, salt, sizeof salt,
                                 info, sizeof info),
                     PSL_OK);
    assert_memory_equal(short_out, want, sizeof short_out);

    /* The extract step is HMAC(salt, ikm): PRK of the RFC. */
    uint8_t prk[HASH_SIZE], want_prk[HASH_SIZE];
    unhex(want_prk, sizeof want_prk,
          "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    assert_int_equal(hmac_sha256(prk, salt, sizeof salt, ikm, sizeof ikm), PSL_OK);
    assert_memory_equal(prk, want_prk, HASH_SIZE);
}

static void test_hkdf_rfc5869_case2(void **state)
{
    (void)state;
    uint8_t ikm[80], salt[80], info[80], want[82], got[82];
    for (size_t i = 0; i < 80; i++) {
        ikm[i] = (uint8_t)i;
        salt[i] = (uint8_t)(0x60 + i);
        info[i] = (uint8_t)(0xb0 + i);
    }
    unhex(want, sizeof want,
          "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
          "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
          "cc30c58179ec3e87c14c01d5c1f3434f1d87");
    assert_int_equal(
        hkdf_sha256(got, sizeof got, ikm, sizeof ikm, salt, sizeof salt, info, sizeof info),
        PSL_OK);
    assert_memory_equal(got, want, sizeof want);
}

static void test_hkdf_rfc5869_case3(void **state)
{
    (void)state;
    uint8_t ikm[22], want[42], got[42];
    memset(ikm, 0x0b, sizeof ikm);
    unhex(want, sizeof want,
          "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    /* RFC 5869 §2.2: an absent salt is HashLen zero bytes; the API spells that salt = NULL. */
    memset(got, 0xee, sizeof got);
    assert_int_equal(hkdf_sha256(got, sizeof got, ikm, sizeof ikm, NULL, 0, NULL, 0), PSL_OK);
    assert_memory_equal(got, want, sizeof want);
    /* An empty (non-NULL) salt gives the same result, since HMAC pads keys with zeros. */
    memset(got, 0xee, sizeof got);
    assert_int_equal(hkdf_sha256(got, sizeof got, ikm, sizeof ikm, (const uint8_t *)"", 0, "", 0),
                     PSL_OK);
    assert_memory_equal(got, want, sizeof want);
    /* So does an explicit salt of 32 zero bytes. */
    static const uint8_t zero_salt[HASH_SIZE];
    memset(got, 0xee, sizeof got);
    assert_int_equal(
        hkdf_sha256(got, sizeof got, ikm, sizeof ikm, zero_salt, sizeof zero_salt, NULL, 0),
        PSL_OK);
    assert_memory_equal(got, want, sizeof want);
}

static void test_hkdf_output_limit(void **state)
{
    (void)state;
    size_t max = 255u * HASH_SIZE;
    uint8_t *out = malloc(max + 1);
    assert_non_null(out);
    static const uint8_t ikm[32] = {1};

    memset(out, 0xee, max + 1);
    assert_int_equal(hkdf_sha256(out, max + 1, ikm, sizeof ikm, NULL, 0, "x", 1),
                     PSL_ERR_INVALID_ARG);
    /* Nothing was written. */
    for (size_t i = 0; i <= max; i++)
        assert_int_equal(out[i], 0xee);
    assert_int_equal(hkdf_sha256(out, SIZE_MAX, ikm, sizeof ikm, NULL, 0, "x", 1),
                     PSL_ERR_INVALID_ARG);

    /* Exactly 255 blocks is allowed, and its first bytes agree with a short derivation. */
    assert_int_equal(hkdf_sha256(out, max, ikm, sizeof ikm, NULL, 0, "x", 1), PSL_OK);
    assert_int_equal(out[max], 0xee); /* and not a byte more */
    uint8_t head[40];
    assert_int_equal(hkdf_sha256(head, sizeof head, ikm, sizeof ikm, NULL, 0, "x", 1), PSL_OK);
    assert_memory_equal(out, head, sizeof head);
    /* The last block differs from the first (the counter byte reaches 255 without wrapping). */
    assert_memory_not_equal(out + max - HASH_SIZE, out, HASH_SIZE);
    free(out);

    /* Different info gives unrelated keys. */
    uint8_t a[32], b[32];
    assert_int_equal(hkdf_sha256(a, sizeof a, ikm, sizeof ikm, NULL, 0, "psl-a", 5), PSL_OK);
    assert_int_equal(hkdf_sha256(b, sizeof b, ikm, sizeof ikm, NULL, 0, "psl-b", 5), PSL_OK);
    assert_memory_not_equal(a, b, sizeof a);
}

/* ---- AES-256-GCM (McGrew-Viega, "The Galois/Counter Mode of Operation", appendix B) ---- */

#define GCM_K15  "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define GCM_IV15 "cafebabefacedbaddecaf888"
#define GCM_P15                                                                                    \
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"                             \
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
#define GCM_C15                                                                                    \
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"                             \
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"

struct gcm_vector {
    const char *name;
    const char *key, *iv, *aad, *pt, *ct, *tag;
};

static const struct gcm_vector gcm_vectors[] = {
    {"case 13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case 14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "00000000000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case 15", GCM_K15, GCM_IV15, "", GCM_P15, GCM_C15, "b094dac5d93471bdec1a502270e3cc6c"},
    /* Case 16: the first 60 bytes of case 15's plaintext, with 20 bytes of AAD. */
    {"case 16", GCM_K15, GCM_IV15, "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

struct gcm_bytes {
    uint8_t key[AEAD_KEY_SIZE], iv[AEAD_NONCE_SIZE], tag[AEAD_TAG_SIZE];
    uint8_t aad[64], pt[64], ct[64];
    size_t aad_size, size;
};

static void gcm_load(struct gcm_bytes *g, const struct gcm_vector *v)
{
    unhex(g->key, sizeof g->key, v->key);
    unhex(g->iv, sizeof g->iv, v->iv);
    unhex(g->tag, sizeof g->tag, v->tag);
    g->aad_size = strlen(v->aad) / 2;
    g->size = strlen(v->pt) / 2;
    assert_true(g->aad_size <= sizeof g->aad && g->size <= sizeof g->pt);
    unhex(g->aad, g->aad_size, v->aad);
    unhex(g->pt, g->size, v->pt);
    unhex(g->ct, g->size, v->ct);
}

static void test_aead_known_answer(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gcm_vectors / sizeof gcm_vectors[0]; i++) {
        struct gcm_bytes g;
        gcm_load(&g, &gcm_vectors[i]);
        struct aead_key k;
        assert_int_equal(aead_key_init(&k, g.key), PSL_OK);

        uint8_t buf[64], tag[AEAD_TAG_SIZE];
        memcpy(buf, g.pt, g.size);
        assert_int_equal(
            aead_seal(&k, g.iv, g.aad_size ? g.aad : NULL, g.aad_size, buf, g.size, tag), PSL_OK);
        if (g.size)
            assert_memory_equal(buf, g.ct, g.size);
        assert_memory_equal(tag, g.tag, AEAD_TAG_SIZE);

        /* Open in place, twice: the key handle is reused across operations. */
        for (int round = 0; round < 2; round++) {
            memcpy(buf, g.ct, g.size);
            assert_int_equal(
                aead_open(&k, g.iv, g.aad_size ? g.aad : NULL, g.aad_size, buf, g.size, g.tag),
                PSL_OK);
            if (g.size)
                assert_memory_equal(buf, g.pt, g.size);
        }
        aead_key_deinit(&k);
        assert_null(k.hd);
        aead_key_deinit(&k); /* deinit twice is harmless */
    }
}

/* Opens ct with one bit flipped in tag, ciphertext, AAD or nonce, and checks the refusal. */
static void test_aead_tamper(void **state)
{
    (void)state;
    struct gcm_bytes g;
    gcm_load(&g, &gcm_vectors[3]); /* case 16: has AAD */
    struct aead_key k;
    assert_int_equal(aead_key_init(&k, g.key), PSL_OK);
    uint8_t buf[64];

    for (size_t bit = 0; bit < AEAD_TAG_SIZE * 8; bit++) {
        uint8_t tag[AEAD_TAG_SIZE];
        memcpy(tag, g.tag, sizeof tag);
        tu_flip(tag, bit);
        memcpy(buf, g.ct, g.size);
        assert_int_equal(aead_open(&k, g.iv, g.aad, g.aad_size, buf, g.size, tag), PSL_ERR_DECRYPT);
        assert_true(all_zero(buf, g.size)); /* no plaintext released */
    }
    for (size_t bit = 0; bit < g.size * 8; bit += 7) {
        memcpy(buf, g.ct, g.size);
        tu_flip(buf, bit);
        assert_int_equal(aead_open(&k, g.iv, g.aad, g.aad_size, buf, g.size, g.tag),
                         PSL_ERR_DECRYPT);
        assert_true(all_zero(buf, g.size));
    }
    for (size_t bit = 0; bit < g.aad_size * 8; bit += 3) {
        uint8_t aad[64];
        memcpy(aad, g.aad, g.aad_size);
        tu_flip(aad, bit);
        memcpy(buf, g.ct, g.size);
        assert_int_equal(aead_open(&k, g.iv, aad, g.aad_size, buf, g.size, g.tag), PSL_ERR_DECRYPT);
        assert_true(all_zero(buf, g.size));
    }
    /* Missing AAD, truncated AAD, wrong nonce, truncated ciphertext. */
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&k, g.iv, NULL, 0, buf, g.size, g.tag), PSL_ERR_DECRYPT);
    assert_true(all_zero(buf, g.size));
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&k, g.iv, g.aad, g.aad_size - 1, buf, g.size, g.tag),
                     PSL_ERR_DECRYPT);
    assert_true(all_zero(buf, g.size));
    uint8_t iv[AEAD_NONCE_SIZE];
    memcpy(iv, g.iv, sizeof iv);
    tu_flip(iv, 95);
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&k, iv, g.aad, g.aad_size, buf, g.size, g.tag), PSL_ERR_DECRYPT);
    assert_true(all_zero(buf, g.size));
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&k, g.iv, g.aad, g.aad_size, buf, g.size - 1, g.tag),
                     PSL_ERR_DECRYPT);
    assert_true(all_zero(buf, g.size - 1));

    /* A failure leaves the key handle usable: the genuine message still opens. */
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&k, g.iv, g.aad, g.aad_size, buf, g.size, g.tag), PSL_OK);
    assert_memory_equal(buf, g.pt, g.size);

    /* A different key refuses it. */
    struct aead_key other;
    uint8_t key2[AEAD_KEY_SIZE];
    memcpy(key2, g.key, sizeof key2);
    tu_flip(key2, 0);
    assert_int_equal(aead_key_init(&other, key2), PSL_OK);
    memcpy(buf, g.ct, g.size);
    assert_int_equal(aead_open(&other, g.iv, g.aad, g.aad_size, buf, g.size, g.tag),
                     PSL_ERR_DECRYPT);
    assert_true(all_zero(buf, g.size));
    aead_key_deinit(&other);
    aead_key_deinit(&k);
}

static void test_aead_round_trip_sizes(void **state)
{
    (void)state;
    uint8_t key[AEAD_KEY_SIZE], nonce[AEAD_NONCE_SIZE] = {0};
    tu_seed(key, 1);
    struct aead_key k;
    assert_int_equal(aead_key_init(&k, key), PSL_OK);
    static const size_t sizes[] = {0, 1, 15, 16, 17, 255, 4096, 65537};
    uint8_t *msg = malloc(65537), *buf = malloc(65537);
    assert_non_null(msg);
    assert_non_null(buf);
    for (size_t i = 0; i < 65537; i++)
        msg[i] = (uint8_t)(i * 31);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        put_le64(nonce, i); /* a fresh nonce for every message */
        uint8_t tag[AEAD_TAG_SIZE];
        memcpy(buf, msg, n);
        assert_int_equal(aead_seal(&k, nonce, "hdr", 3, buf, n, tag), PSL_OK);
        if (n >= 16)
            assert_memory_not_equal(buf, msg, n);
        assert_int_equal(aead_open(&k, nonce, "hdr", 3, buf, n, tag), PSL_OK);
        if (n)
            assert_memory_equal(buf, msg, n);
    }
    free(buf);
    free(msg);
    aead_key_deinit(&k);
}

/* ---- Ed25519 (RFC 8032 §7.1) ---- */

struct ed_vector {
    const char *sk, *pk, *msg, *sig;
};

static const struct ed_vector ed_vectors[] = {
    /* TEST 1 */
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    /* TEST 2 */
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    /* TEST 3 */
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

static void test_ed25519_rfc8032(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ed_vectors / sizeof ed_vectors[0]; i++) {
        const struct ed_vector *v = &ed_vectors[i];
        uint8_t seed[SIGN_SEED_SIZE], pk[SIGN_PK_SIZE], want_sig[SIGN_SIG_SIZE];
        uint8_t msg[4];
        size_t msg_size = strlen(v->msg) / 2;
        unhex(seed, sizeof seed, v->sk);
        unhex(pk, sizeof pk, v->pk);
        unhex(want_sig, sizeof want_sig, v->sig);
        unhex(msg, msg_size, v->msg);

        struct signer s;
        assert_int_equal(signer_init(&s, seed), PSL_OK);
        assert_non_null(s.sk);
        assert_memory_equal(s.pk, pk, SIGN_PK_SIZE);

        uint8_t sig[SIGN_SIG_SIZE];
        sign_detached(&s, sig, msg, msg_size);
        assert_memory_equal(sig, want_sig, SIGN_SIG_SIZE);
        assert_true(sign_verify(pk, sig, msg, msg_size));

        /* Any flipped bit of the signature is refused. */
        for (size_t bit = 0; bit < SIGN_SIG_SIZE * 8; bit++) {
            uint8_t bad[SIGN_SIG_SIZE];
            memcpy(bad, sig, sizeof bad);
            tu_flip(bad, bit);
            assert_false(sign_verify(pk, bad, msg, msg_size));
        }
        /* Any flipped bit of the public key is refused. */
        for (size_t bit = 0; bit < SIGN_PK_SIZE * 8; bit++) {
            uint8_t bad[SIGN_PK_SIZE];
            memcpy(bad, pk, sizeof bad);
            tu_flip(bad, bit);
            assert_false(sign_verify(bad, sig, msg, msg_size));
        }
        /* Any flipped bit of the message is refused, and so is a longer or shorter one. */
        for (size_t bit = 0; bit < msg_size * 8; bit++) {
            uint8_t bad[4];
            memcpy(bad, msg, msg_size);
            tu_flip(bad, bit);
            assert_false(sign_verify(pk, sig, bad, msg_size));
        }
        uint8_t longer[5] = {0};
        memcpy(longer, msg, msg_size);
        assert_false(sign_verify(pk, sig, longer, msg_size + 1));
        if (msg_size)
            assert_false(sign_verify(pk, sig, msg, msg_size - 1));

        signer_deinit(&s);
        assert_null(s.sk);
    }
}

static void test_signer_seed_round_trip(void **state)
{
    (void)state;
    uint8_t seed[SIGN_SEED_SIZE], back[SIGN_SEED_SIZE];
    tu_seed(seed, 7);
    struct signer a, b;
    assert_int_equal(signer_init(&a, seed), PSL_OK);
    signer_seed(&a, back);
    assert_memory_equal(back, seed, SIGN_SEED_SIZE);
    assert_int_equal(signer_init(&b, back), PSL_OK);
    assert_memory_equal(a.pk, b.pk, SIGN_PK_SIZE);
    /* Deterministic signatures: the same key signs a message the same way. */
    uint8_t s1[SIGN_SIG_SIZE], s2[SIGN_SIG_SIZE];
    sign_detached(&a, s1, "m", 1);
    sign_detached(&b, s2, "m", 1);
    assert_memory_equal(s1, s2, SIGN_SIG_SIZE);
    signer_deinit(&a);
    signer_deinit(&b);

    /* The RFC 8032 TEST 1 secret comes back out of the key. */
    unhex(seed, sizeof seed, ed_vectors[0].sk);
    assert_int_equal(signer_init(&a, seed), PSL_OK);
    signer_seed(&a, back);
    assert_memory_equal(back, seed, SIGN_SEED_SIZE);
    signer_deinit(&a);

    /* A different seed is a different key. */
    tu_seed(seed, 8);
    assert_int_equal(signer_init(&a, seed), PSL_OK);
    tu_seed(seed, 9);
    assert_int_equal(signer_init(&b, seed), PSL_OK);
    assert_memory_not_equal(a.pk, b.pk, SIGN_PK_SIZE);
    signer_deinit(&a);
    signer_deinit(&b);
}

static void test_signer_from_rng_seam(void **state)
{
    (void)state;
    struct rng_seeded r1, r2, r3;
    rng_seeded_init(&r1, 99);
    rng_seeded_init(&r2, 99);
    rng_seeded_init(&r3, 100);
    struct signer a, b, c;
    rng_set_source(&r1.source);
    assert_int_equal(signer_init(&a, NULL), PSL_OK);
    rng_set_source(&r2.source);
    assert_int_equal(signer_init(&b, NULL), PSL_OK);
    rng_set_source(&r3.source);
    assert_int_equal(signer_init(&c, NULL), PSL_OK);
    rng_set_source(NULL);
    /* Reproducible under one seed, different under another. */
    assert_memory_equal(a.pk, b.pk, SIGN_PK_SIZE);
    assert_memory_not_equal(a.pk, c.pk, SIGN_PK_SIZE);
    signer_deinit(&a);
    signer_deinit(&b);
    signer_deinit(&c);

    /* The system CSPRNG gives fresh keys. */
    assert_int_equal(signer_init(&a, NULL), PSL_OK);
    assert_int_equal(signer_init(&b, NULL), PSL_OK);
    assert_memory_not_equal(a.pk, b.pk, SIGN_PK_SIZE);
    uint8_t sig[SIGN_SIG_SIZE];
    sign_detached(&a, sig, "hello", 5);
    assert_true(sign_verify(a.pk, sig, "hello", 5));
    assert_false(sign_verify(b.pk, sig, "hello", 5));
    signer_deinit(&a);
    signer_deinit(&b);
}

static void test_sign_tagged(void **state)
{
    (void)state;
    uint8_t seed[SIGN_SEED_SIZE], hash[HASH_SIZE];
    tu_seed(seed, 3);
    hash_sha256(hash, "record", 6);
    struct signer s, other;
    assert_int_equal(signer_init(&s, seed), PSL_OK);
    tu_seed(seed, 4);
    assert_int_equal(signer_init(&other, seed), PSL_OK);

    uint8_t sig[SIGN_SIG_SIZE];
    sign_tagged(&s, sig, "psl-rec-v1", hash);
    assert_true(sign_verify_tagged(s.pk, sig, "psl-rec-v1", hash));
    /* The signed message is exactly tag || hash. */
    uint8_t m[10 + HASH_SIZE];
    memcpy(m, "psl-rec-v1", 10);
    memcpy(m + 10, hash, HASH_SIZE);
    assert_true(sign_verify(s.pk, sig, m, sizeof m));
    /* ... so the bare hash does not verify: domain separation. */
    assert_false(sign_verify(s.pk, sig, hash, HASH_SIZE));

    /* Another tag, even one differing only in its last character or length, is refused. */
    assert_false(sign_verify_tagged(s.pk, sig, "psl-rec-v2", hash));
    assert_false(sign_verify_tagged(s.pk, sig, "psl-ack-v1", hash));
    assert_false(sign_verify_tagged(s.pk, sig, "psl-rec-v", hash));
    assert_false(sign_verify_tagged(s.pk, sig, "psl-rec-v1 ", hash));
    assert_false(sign_verify_tagged(s.pk, sig, "", hash));
    /* Another hash, key or signature is refused. */
    uint8_t hash2[HASH_SIZE];
    memcpy(hash2, hash, sizeof hash2);
    tu_flip(hash2, 255);
    assert_false(sign_verify_tagged(s.pk, sig, "psl-rec-v1", hash2));
    assert_false(sign_verify_tagged(other.pk, sig, "psl-rec-v1", hash));
    uint8_t bad[SIGN_SIG_SIZE];
    memcpy(bad, sig, sizeof bad);
    tu_flip(bad, 100);
    assert_false(sign_verify_tagged(s.pk, bad, "psl-rec-v1", hash));

    /* The same hash under two tags gives two different signatures. */
    uint8_t sig2[SIGN_SIG_SIZE];
    sign_tagged(&s, sig2, "psl-ack-v1", hash);
    assert_memory_not_equal(sig, sig2, SIGN_SIG_SIZE);
    assert_true(sign_verify_tagged(s.pk, sig2, "psl-ack-v1", hash));

    /* The longest tag that fits (32 chars) works. */
    const char *long_tag = "0123456789abcdef0123456789abcdef";
    sign_tagged(&s, sig2, long_tag, hash);
    assert_true(sign_verify_tagged(s.pk, sig2, long_tag, hash));

    signer_deinit(&s);
    signer_deinit(&other);
}

/* ---- X25519 sealed boxes ---- */

static void test_kx_init_deterministic(void **state)
{
    (void)state;
    uint8_t seed[32];
    tu_seed(seed, 11);
    struct kx_keypair a, b, c;
    assert_int_equal(kx_init(&a, seed), PSL_OK);
    assert_int_equal(kx_init(&b, seed), PSL_OK);
    assert_non_null(a.sk);
    assert_memory_equal(a.pk, b.pk, KX_PK_SIZE);
    assert_memory_equal(a.sk, b.sk, 32);
    tu_seed(seed, 12);
    assert_int_equal(kx_init(&c, seed), PSL_OK);
    assert_memory_not_equal(a.pk, c.pk, KX_PK_SIZE);
    kx_deinit(&a);
    kx_deinit(&b);
    kx_deinit(&c);
    assert_null(a.sk);

    /* From the rng seam: reproducible under a seeded source. */
    struct rng_seeded r1, r2;
    rng_seeded_init(&r1, 5);
    rng_seeded_init(&r2, 5);
    rng_set_source(&r1.source);
    assert_int_equal(kx_init(&a, NULL), PSL_OK);
    rng_set_source(&r2.source);
    assert_int_equal(kx_init(&b, NULL), PSL_OK);
    rng_set_source(NULL);
    assert_memory_equal(a.pk, b.pk, KX_PK_SIZE);
    assert_int_equal(kx_init(&c, NULL), PSL_OK);
    assert_memory_not_equal(a.pk, c.pk, KX_PK_SIZE);
    kx_deinit(&a);
    kx_deinit(&b);
    kx_deinit(&c);
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    uint8_t seed[32];
    tu_seed(seed, 21);
    struct kx_keypair kp;
    assert_int_equal(kx_init(&kp, seed), PSL_OK);

    static const char msg[] = "provisioned secret";
    size_t n = sizeof msg - 1;
    uint8_t c[sizeof msg - 1 + SEAL_OVERHEAD], c2[sizeof c];
    assert_int_equal(seal_box(c, msg, n, kp.pk), PSL_OK);
    uint8_t out[sizeof msg];
    assert_int_equal(seal_open(out, c, sizeof c, &kp), PSL_OK);
    assert_memory_equal(out, msg, n);

    /* Anonymous sealing uses a fresh ephemeral key each time. */
    assert_int_equal(seal_box(c2, msg, n, kp.pk), PSL_OK);
    assert_memory_not_equal(c, c2, sizeof c);
    assert_int_equal(seal_open(out, c2, sizeof c2, &kp), PSL_OK);
    assert_memory_equal(out, msg, n);

    /* An empty message seals to exactly the overhead and opens. */
    uint8_t e[SEAL_OVERHEAD], eout[1];
    assert_int_equal(seal_box(e, "", 0, kp.pk), PSL_OK);
    assert_int_equal(seal_open(eout, e, sizeof e, &kp), PSL_OK);
    kx_deinit(&kp);
}

static void test_seal_rejects(void **state)
{
    (void)state;
    uint8_t seed[32];
    tu_seed(seed, 31);
    struct kx_keypair kp, wrong;
    assert_int_equal(kx_init(&kp, seed), PSL_OK);
    tu_seed(seed, 32);
    assert_int_equal(kx_init(&wrong, seed), PSL_OK);

    static const char msg[] = "0123456789";
    size_t n = sizeof msg - 1;
    uint8_t c[sizeof msg - 1 + SEAL_OVERHEAD];
    assert_int_equal(seal_box(c, msg, n, kp.pk), PSL_OK);

    /* A flipped bit anywhere (ephemeral key, tag or body) is refused, and out is not written. */
    for (size_t bit = 0; bit < sizeof c * 8; bit++) {
        uint8_t bad[sizeof c], out[sizeof msg];
        memcpy(bad, c, sizeof bad);
        tu_flip(bad, bit);
        memset(out, 0x5a, sizeof out);
        assert_int_equal(seal_open(out, bad, sizeof bad, &kp), PSL_ERR_DECRYPT);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i], 0x5a);
    }
    uint8_t out[sizeof msg];
    /* The wrong recipient cannot open it. */
    assert_int_equal(seal_open(out, c, sizeof c, &wrong), PSL_ERR_DECRYPT);
    /* Truncated or extended ciphertexts are refused. */
    assert_int_equal(seal_open(out, c, sizeof c - 1, &kp), PSL_ERR_DECRYPT);
    assert_int_equal(seal_open(out, c, SEAL_OVERHEAD, &kp), PSL_ERR_DECRYPT);
    assert_int_equal(seal_open(out, c, SEAL_OVERHEAD - 1, &kp), PSL_ERR_TRUNCATED);
    assert_int_equal(seal_open(out, c, 1, &kp), PSL_ERR_TRUNCATED);
    assert_int_equal(seal_open(out, c, 0, &kp), PSL_ERR_TRUNCATED);
    /* The genuine one still opens. */
    assert_int_equal(seal_open(out, c, sizeof c, &kp), PSL_OK);
    assert_memory_equal(out, msg, n);
    kx_deinit(&kp);
    kx_deinit(&wrong);
}

/* ---- constant-time compare and secret memory ---- */

static void test_ct_equal(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)i;
    assert_true(ct_equal(a, b, sizeof a));
    assert_true(ct_equal(a, b, 0));
    for (size_t bit = 0; bit < sizeof a * 8; bit += 5) {
        memcpy(b, a, sizeof b);
        tu_flip(b, bit);
        assert_false(ct_equal(a, b, sizeof a));
        assert_true(ct_equal(a, b, bit / 8)); /* the prefix before the flip still matches */
    }
    memcpy(b, a, sizeof b);
    b[63] ^= 0x80;
    assert_false(ct_equal(a, b, 64));
    assert_true(ct_equal(a, b, 63));
}

static void test_secret_memory(void **state)
{
    (void)state;
    uint8_t *p = secret_alloc(100);
    assert_non_null(p);
    memset(p, 0xa5, 100);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(p[i], 0xa5);
    secret_wipe(p, 100);
    assert_true(all_zero(p, 100));
    secret_free(p);
    secret_free(NULL); /* allowed, like free(NULL) */

    /* Many small allocations are independent. */
    uint8_t *q[16];
    for (size_t i = 0; i < 16; i++) {
        q[i] = secret_alloc(32);
        assert_non_null(q[i]);
        memset(q[i], (int)i, 32);
    }
    for (size_t i = 0; i < 16; i++) {
        for (size_t j = 0; j < 32; j++)
            assert_int_equal(q[i][j], i);
        secret_free(q[i]);
    }
    uint8_t stack[33];
    memset(stack, 0xff, sizeof stack);
    secret_wipe(stack, 32);
    assert_true(all_zero(stack, 32));
    assert_int_equal(stack[32], 0xff);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_idempotent),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_parts),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hkdf_rfc5869_case1),
        cmocka_unit_test(test_hkdf_rfc5869_case2),
        cmocka_unit_test(test_hkdf_rfc5869_case3),
        cmocka_unit_test(test_hkdf_output_limit),
        cmocka_unit_test(test_aead_known_answer),
        cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_aead_round_trip_sizes),
        cmocka_unit_test(test_ed25519_rfc8032),
        cmocka_unit_test(test_signer_seed_round_trip),
        cmocka_unit_test(test_signer_from_rng_seam),
        cmocka_unit_test(test_sign_tagged),
        cmocka_unit_test(test_kx_init_deterministic),
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_rejects),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_secret_memory),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
