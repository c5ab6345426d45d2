/* record.c: sealing and verifying capsule records. Sealing works in place on one buffer (the
 * payload is encrypted where it was encoded, hashed once together with the header, signed once),
 * so batching amortises one signature over many operations. Verification follows DESIGN §3.3 in
 * order and releases no plaintext unless every earlier step passed. */
#include "capsule/record.h"

#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "capsule/payload.h"

static const uint8_t record_magic[4] = {'P', 'S', 'L', 'R'};
static const uint8_t zero_hash[HASH_SIZE];

const char *record_type_name(uint8_t type)
{
    static const char *const names[] = {"?",      "CERT",   "DATA",      "EOE",
                                        "SYNC",   "HEAD",   "LSM_BLOCK", "LSM_INDEX",
                                        "RESULT", "REVOKE", "CHECKPOINT"};
    return type <= REC_TYPE_MAX ? names[type] : "?";
}

bool record_type_is_encrypted(uint8_t type)
{
    return type == REC_DATA || type == REC_LSM_BLOCK || type == REC_LSM_INDEX;
}

void record_header_encode(const struct record_header *h, uint8_t out[PSL_RECORD_HEADER_SIZE])
{
    struct wr w;
    wr_init(&w, out, PSL_RECORD_HEADER_SIZE);
    wr_bytes(&w, record_magic, 4);
    wr_u8(&w, RECORD_VERSION);
    wr_u8(&w, h->type);
    wr_u16(&w, h->flags);
    wr_u32(&w, h->payload_size);
    wr_bytes(&w, h->capsule, HASH_SIZE);
    wr_bytes(&w, h->writer, HASH_SIZE);
    wr_u64(&w, h->seq);
    wr_u64(&w, h->lamport);
    wr_bytes(&w, h->prev, HASH_SIZE);
    wr_bytes(&w, h->sync, HASH_SIZE);
    PSL_ASSERT_SIZE(w, PSL_RECORD_HEADER_SIZE);
}

psl_err record_header_decode(struct record_header *out, const uint8_t *buf, size_t size)
{
    if (size < PSL_RECORD_HEADER_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, record_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct record_header h;
    struct rd r;
    rd_init(&r, buf + 4, PSL_RECORD_HEADER_SIZE - 4);
    if (rd_u8(&r) != RECORD_VERSION)
        return PSL_ERR_BAD_VERSION;
    h.type = rd_u8(&r);
    if (h.type < REC_CERT || h.type > REC_TYPE_MAX)
        return PSL_ERR_BAD_TYPE;
    h.flags = rd_u16(&r);
    if (h.flags != 0)
        return PSL_ERR_MALFORMED;
    h.payload_size = rd_u32(&r);
    if (h.payload_size > PSL_RECORD_PAYLOAD_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (record_type_is_encrypted(h.type) && h.payload_size < AEAD_TAG_SIZE)
        return PSL_ERR_TRUNCATED;
    rd_copy(&r, h.capsule, HASH_SIZE);
    rd_copy(&r, h.writer, HASH_SIZE);
    h.seq = rd_u64(&r);
    h.lamport = rd_u64(&r);
    rd_copy(&r, h.prev, HASH_SIZE);
    rd_copy(&r, h.sync, HASH_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (h.seq == 0 || h.seq == UINT64_MAX)
        return PSL_ERR_BAD_SEQ;
    /* The first record of a writer has nothing before it; a CERT is always the first. */
    if (h.seq == 1 && memcmp(h.prev, zero_hash, HASH_SIZE) != 0)
        return PSL_ERR_BAD_PREV;
    if ((h.type == REC_CERT) != (h.seq == 1))
        return PSL_ERR_BAD_SEQ;
    *out = h;
    return PSL_OK;
}

psl_err record_key_derive(uint8_t out[AEAD_KEY_SIZE], const uint8_t capsule_key[AEAD_KEY_SIZE],
                          const uint8_t writer_id[HASH_SIZE])
{
    static const char label[] = "psl-writer";
    uint8_t info[sizeof label - 1 + HASH_SIZE];
    memcpy(info, label, sizeof label - 1);
    memcpy(info + sizeof label - 1, writer_id, HASH_SIZE);
    return hkdf_sha256(out, AEAD_KEY_SIZE, capsule_key, AEAD_KEY_SIZE, NULL, 0, info, sizeof info);
}

psl_err writer_keys_init(struct writer_keys *wk, const uint8_t sign_seed[SIGN_SEED_SIZE],
                         const uint8_t kx_seed[32], const uint8_t *capsule_key)
{
    memset(wk, 0, sizeof *wk);
    psl_err err = signer_init(&wk->sign, sign_seed);
    if (err)
        return err;
    err = kx_init(&wk->kx, kx_seed);
    if (err)
        goto out_sign;
    writer_id_of(wk->writer_id, wk->sign.pk);
    if (!capsule_key)
        return PSL_OK;
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    if (!key) {
        err = PSL_ERR_NOMEM;
        goto out_kx;
    }
    err = record_key_derive(key, capsule_key, wk->writer_id);
    if (!err)
        err = aead_key_init(&wk->aead, key);
    secret_free(key);
    if (!err)
        return PSL_OK;
out_kx:
    kx_deinit(&wk->kx);
out_sign:
    signer_deinit(&wk->sign);
    return err;
}

void writer_keys_deinit(struct writer_keys *wk)
{
    aead_key_deinit(&wk->aead);
    kx_deinit(&wk->kx);
    signer_deinit(&wk->sign);
}

static void record_nonce(uint8_t nonce[AEAD_NONCE_SIZE], uint64_t seq)
{
    put_le64(nonce, seq);
    memset(nonce + 8, 0, AEAD_NONCE_SIZE - 8);
}

psl_err record_seal(const struct writer_keys *wk, struct record_header *h, uint8_t *buf,
                    size_t cap, size_t plain_size, size_t *out_size, uint8_t hash_out[HASH_SIZE])
{
    bool enc = record_type_is_encrypted(h->type);
    size_t payload = plain_size + (enc ? AEAD_TAG_SIZE : 0);
    if (payload > PSL_RECORD_PAYLOAD_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (cap < record_sealed_size(plain_size, h->type))
        return PSL_ERR_INVALID_ARG;
    if (enc && !wk->aead.hd)
        return PSL_ERR_INVALID_ARG;
    PSL_ASSERT(h->seq >= 1);
    memcpy(h->writer, wk->writer_id, HASH_SIZE);
    h->payload_size = (uint32_t)payload;
    record_header_encode(h, buf);
    uint8_t *body = buf + PSL_RECORD_HEADER_SIZE;
    if (enc) {
        uint8_t nonce[AEAD_NONCE_SIZE];
        record_nonce(nonce, h->seq);
        psl_err err = aead_seal(&wk->aead, nonce, buf, PSL_RECORD_HEADER_SIZE, body, plain_size,
                                body + plain_size);
        if (err)
            return err;
    }
    uint8_t hash[HASH_SIZE];
    hash_sha256(hash, buf, PSL_RECORD_HEADER_SIZE + payload);
    sign_tagged(&wk->sign, body + payload, RECORD_SIG_TAG, hash);
    memcpy(hash_out, hash, HASH_SIZE);
    *out_size = PSL_RECORD_HEADER_SIZE + payload + PSL_RECORD_SIG_SIZE;
    return PSL_OK;
}

void record_chain_init(struct record_chain *rc, const uint8_t capsule[HASH_SIZE])
{
    memset(rc, 0, sizeof *rc);
    memcpy(rc->capsule, capsule, HASH_SIZE);
}

psl_err record_chain_seal(struct record_chain *rc, const struct writer_keys *wk, uint8_t type,
                          uint64_t lamport, uint8_t *buf, size_t cap, size_t plain_size,
                          size_t *out_size, uint8_t hash_out[HASH_SIZE])
{
    struct record_header h = {.type = type, .seq = rc->seq + 1, .lamport = lamport};
    memcpy(h.capsule, rc->capsule, HASH_SIZE);
    memcpy(h.prev, rc->head, HASH_SIZE);
    memcpy(h.sync, rc->sync, HASH_SIZE);
    uint8_t hash[HASH_SIZE];
    psl_err err = record_seal(wk, &h, buf, cap, plain_size, out_size, hash);
    if (err)
        return err;
    rc->seq = h.seq;
    memcpy(rc->head, hash, HASH_SIZE);
    memcpy(hash_out, hash, HASH_SIZE);
    return PSL_OK;
}

psl_err record_parse(struct record_view *v, const uint8_t *buf, size_t size)
{
    if (size > PSL_RECORD_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    struct record_header h;
    psl_err err = record_header_decode(&h, buf, size);
    if (err)
        return err;
    size_t need = (size_t)h.payload_size + PSL_RECORD_SIG_SIZE;
    if (size - PSL_RECORD_HEADER_SIZE < need)
        return PSL_ERR_TRUNCATED;
    if (size - PSL_RECORD_HEADER_SIZE > need)
        return PSL_ERR_TRAILING;
    v->h = h;
    v->raw = buf;
    v->raw_size = size;
    v->payload = buf + PSL_RECORD_HEADER_SIZE;
    v->sig = v->payload + h.payload_size;
    hash_sha256(v->hash, buf, PSL_RECORD_HEADER_SIZE + h.payload_size);
    return PSL_OK;
}

static psl_err record_check_prev(const struct record_view *v, const uint8_t *prev_known)
{
    if (prev_known && memcmp(v->h.prev, prev_known, HASH_SIZE) != 0)
        return PSL_ERR_BAD_PREV;
    return PSL_OK;
}

psl_err record_check(const struct record_view *v, const struct capsule_meta *m,
                     const struct writer_cert *cert, uint64_t now_ms, const uint8_t *prev_known)
{
    if (memcmp(v->h.capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    if (v->h.type == REC_CERT)
        return PSL_ERR_BAD_TYPE; /* CERT records go through record_check_cert */
    if (!cert || memcmp(cert->writer_id, v->h.writer, HASH_SIZE) != 0)
        return PSL_ERR_UNKNOWN_WRITER;
    if (memcmp(cert->capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_CERT_FOREIGN;
    if (now_ms < cert->not_before_ms || now_ms > cert->not_after_ms)
        return PSL_ERR_CERT_EXPIRED;
    if (!sign_verify_tagged(cert->sign_pk, v->sig, RECORD_SIG_TAG, v->hash))
        return PSL_ERR_BAD_SIGNATURE;
    return record_check_prev(v, prev_known);
}

psl_err record_check_cert(const struct record_view *v, const struct capsule_meta *m,
                          uint64_t now_ms, struct writer_cert *cert_out)
{
    if (memcmp(v->h.capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    if (v->h.type != REC_CERT)
        return PSL_ERR_BAD_TYPE;
    struct writer_cert c;
    struct delegation d;
    bool has_deleg = false;
    psl_err err = certpl_decode(v->payload, v->h.payload_size, &c, &d, &has_deleg);
    if (err)
        return err;
    if (memcmp(c.writer_id, v->h.writer, HASH_SIZE) != 0)
        return PSL_ERR_UNKNOWN_WRITER;
    err = cert_verify(&c, has_deleg ? &d : NULL, m, now_ms);
    if (err)
        return err;
    if (!sign_verify_tagged(c.sign_pk, v->sig, RECORD_SIG_TAG, v->hash))
        return PSL_ERR_BAD_SIGNATURE;
    *cert_out = c;
    return PSL_OK;
}

psl_err record_open(const struct record_view *v, const struct aead_key *key, uint8_t *out,
                    size_t cap, size_t *out_size)
{
    if (!record_type_is_encrypted(v->h.type)) {
        if (cap < v->h.payload_size)
            return PSL_ERR_INVALID_ARG;
        memcpy(out, v->payload, v->h.payload_size);
        *out_size = v->h.payload_size;
        return PSL_OK;
    }
    size_t plain = v->h.payload_size - AEAD_TAG_SIZE; /* header decode ensured >= tag size */
    if (cap < plain || !key || !key->hd)
        return PSL_ERR_INVALID_ARG;
    memcpy(out, v->payload, plain);
    uint8_t nonce[AEAD_NONCE_SIZE];
    record_nonce(nonce, v->h.seq);
    psl_err err = aead_open(key, nonce, v->raw, PSL_RECORD_HEADER_SIZE, out, plain,
                            v->payload + plain);
    if (err)
        return err;
    *out_size = plain;
    return PSL_OK;
}
