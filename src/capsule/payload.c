/* payload.c: encodings of record payloads (see payload.h for the formats). Decoders check every
 * count against its limit and against the bytes actually present before writing any output. */
#include "capsule/payload.h"

#include <string.h>

#include "base/limits.h"

static bool op_is_valid(const struct kv_op *op)
{
    if (op->key_size < 1 || op->key_size > PSL_KEY_SIZE_MAX)
        return false;
    if (op->op == OP_PUT)
        return op->value_size <= PSL_VALUE_SIZE_MAX;
    if (op->op == OP_DEL)
        return op->value_size == 0;
    return false;
}

size_t data_encoded_size(const struct kv_op *ops, size_t count)
{
    if (count > PSL_DATA_OPS_MAX)
        return 0;
    size_t n = 4;
    for (size_t i = 0; i < count; i++) {
        if (!op_is_valid(&ops[i]))
            return 0;
        n += DATA_OP_OVERHEAD + ops[i].key_size + ops[i].value_size;
    }
    return n;
}

void data_encode(struct wr *w, const struct kv_op *ops, size_t count)
{
    /* Validate everything first, then reserve once: a bad op writes nothing at all. */
    size_t total = data_encoded_size(ops, count);
    if (!total) {
        if (w->err == PSL_OK)
            w->err = PSL_ERR_TOO_LARGE;
        return;
    }
    uint8_t *p = wr_reserve(w, total);
    if (!p)
        return;
    put_le32(p, (uint32_t)count);
    p += 4;
    for (size_t i = 0; i < count; i++) {
        const struct kv_op *op = &ops[i];
        p[0] = op->op;
        put_le64(p + 1, op->lamport);
        put_le16(p + 9, op->key_size);
        put_le32(p + 11, op->value_size);
        p += DATA_OP_OVERHEAD;
        memcpy(p, op->key, op->key_size);
        p += op->key_size;
        if (op->value_size)
            memcpy(p, op->value, op->value_size);
        p += op->value_size;
    }
}

psl_err data_count(const uint8_t *buf, size_t size, size_t *count)
{
    struct rd r;
    rd_init(&r, buf, size);
    uint32_t n = rd_u32(&r);
    if (r.err)
        return r.err;
    if (n > PSL_DATA_OPS_MAX)
        return PSL_ERR_TOO_LARGE;
    /* Each op needs at least its fixed part and a 1-byte key. */
    if (n > rd_left(&r) / (DATA_OP_OVERHEAD + 1))
        return PSL_ERR_TRUNCATED;
    *count = n;
    return PSL_OK;
}

psl_err data_decode(const uint8_t *buf, size_t size, struct kv_op *ops, size_t cap, size_t *count)
{
    size_t n;
    psl_err err = data_count(buf, size, &n);
    if (err)
        return err;
    if (n > cap)
        return PSL_ERR_TOO_LARGE;
    struct rd r;
    rd_init(&r, buf + 4, size - 4);
    for (size_t i = 0; i < n; i++) {
        struct kv_op op;
        op.op = rd_u8(&r);
        op.lamport = rd_u64(&r);
        op.key_size = rd_u16(&r);
        op.value_size = rd_u32(&r);
        if (r.err)
            return r.err;
        if (op.op != OP_PUT && op.op != OP_DEL)
            return PSL_ERR_MALFORMED;
        if (!op_is_valid(&op))
            return op.key_size == 0 || (op.op == OP_DEL && op.value_size) ? PSL_ERR_MALFORMED
                                                                          : PSL_ERR_TOO_LARGE;
        op.key = rd_take(&r, op.key_size);
        op.value = op.value_size ? rd_take(&r, op.value_size) : NULL;
        if (r.err)
            return r.err;
        ops[i] = op;
    }
    err = rd_finish(&r);
    if (err)
        return err;
    *count = n;
    return PSL_OK;
}

void cut_encode(struct wr *w, uint64_t epoch, const struct cut_head *heads, size_t count)
{
    if (count > PSL_CUT_HEADS_MAX) {
        w->err = PSL_ERR_TOO_LARGE;
        return;
    }
    wr_u64(w, epoch);
    wr_u32(w, (uint32_t)count);
    for (size_t i = 0; i < count; i++) {
        wr_bytes(w, heads[i].writer, HASH_SIZE);
        wr_u64(w, heads[i].seq);
        wr_bytes(w, heads[i].hash, HASH_SIZE);
    }
}

psl_err cut_decode(const uint8_t *buf, size_t size, uint64_t *epoch, struct cut_head *heads,
                   size_t cap, size_t *count)
{
    struct rd r;
    rd_init(&r, buf, size);
    uint64_t e = rd_u64(&r);
    uint32_t n = rd_u32(&r);
    if (r.err)
        return r.err;
    if (n > PSL_CUT_HEADS_MAX || n > cap)
        return PSL_ERR_TOO_LARGE;
    if (rd_left(&r) != (size_t)n * CUT_HEAD_SIZE)
        return rd_left(&r) < (size_t)n * CUT_HEAD_SIZE ? PSL_ERR_TRUNCATED : PSL_ERR_TRAILING;
    for (uint32_t i = 0; i < n; i++) {
        rd_copy(&r, heads[i].writer, HASH_SIZE);
        heads[i].seq = rd_u64(&r);
        rd_copy(&r, heads[i].hash, HASH_SIZE);
        if (heads[i].seq == 0)
            return PSL_ERR_BAD_SEQ;
    }
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *epoch = e;
    *count = n;
    return PSL_OK;
}

void head_encode(struct wr *w, uint64_t wall_ms)
{
    wr_u64(w, wall_ms);
}

psl_err head_decode(const uint8_t *buf, size_t size, uint64_t *wall_ms)
{
    struct rd r;
    rd_init(&r, buf, size);
    uint64_t v = rd_u64(&r);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *wall_ms = v;
    return PSL_OK;
}

void certpl_encode(struct wr *w, const struct writer_cert *c, const struct delegation *deleg)
{
    wr_u8(w, deleg ? 1 : 0);
    uint8_t *p = wr_reserve(w, CERT_SIZE);
    if (p)
        cert_encode(c, p);
    if (deleg) {
        p = wr_reserve(w, DELEG_SIZE);
        if (p)
            deleg_encode(deleg, p);
    }
}

psl_err certpl_decode(const uint8_t *buf, size_t size, struct writer_cert *c,
                      struct delegation *deleg, bool *has_deleg)
{
    if (size < 1)
        return PSL_ERR_TRUNCATED;
    uint8_t flag = buf[0];
    if (flag > 1)
        return PSL_ERR_MALFORMED;
    size_t want = 1 + CERT_SIZE + (flag ? DELEG_SIZE : 0);
    if (size != want)
        return size < want ? PSL_ERR_TRUNCATED : PSL_ERR_TRAILING;
    struct writer_cert cc;
    psl_err err = cert_decode(&cc, buf + 1, CERT_SIZE);
    if (err)
        return err;
    if (flag) {
        err = deleg_decode(deleg, buf + 1 + CERT_SIZE, DELEG_SIZE);
        if (err)
            return err;
    }
    *c = cc;
    *has_deleg = flag == 1;
    return PSL_OK;
}

#define REVOKE_SIG_TAG "psl-revoke-v1"
#define REVOKE_BODY_SIZE (REVOKE_SIZE - SIGN_SIG_SIZE)

static void revoke_digest(uint8_t out[HASH_SIZE], const struct revocation *r,
                          const uint8_t capsule[HASH_SIZE])
{
    uint8_t body[HASH_SIZE + REVOKE_BODY_SIZE];
    memcpy(body, capsule, HASH_SIZE);
    memcpy(body + HASH_SIZE, r->target, HASH_SIZE);
    put_le64(body + 2 * HASH_SIZE, r->serial);
    memcpy(body + 2 * HASH_SIZE + 8, r->revoker_pk, SIGN_PK_SIZE);
    hash_sha256(out, body, sizeof body);
}

void revoke_sign(struct revocation *r, const uint8_t capsule[HASH_SIZE], const struct signer *by)
{
    memcpy(r->revoker_pk, by->pk, SIGN_PK_SIZE);
    uint8_t h[HASH_SIZE];
    revoke_digest(h, r, capsule);
    sign_tagged(by, r->sig, REVOKE_SIG_TAG, h);
}

void revoke_encode(struct wr *w, const struct revocation *r)
{
    wr_bytes(w, r->target, HASH_SIZE);
    wr_u64(w, r->serial);
    wr_bytes(w, r->revoker_pk, SIGN_PK_SIZE);
    wr_bytes(w, r->sig, SIGN_SIG_SIZE);
}

psl_err revoke_decode(const uint8_t *buf, size_t size, struct revocation *out)
{
    struct revocation rv;
    struct rd r;
    rd_init(&r, buf, size);
    rd_copy(&r, rv.target, HASH_SIZE);
    rv.serial = rd_u64(&r);
    rd_copy(&r, rv.revoker_pk, SIGN_PK_SIZE);
    rd_copy(&r, rv.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *out = rv;
    return PSL_OK;
}

bool revoke_verify(const struct revocation *r, const uint8_t capsule[HASH_SIZE])
{
    uint8_t h[HASH_SIZE];
    revoke_digest(h, r, capsule);
    return sign_verify_tagged(r->revoker_pk, r->sig, REVOKE_SIG_TAG, h);
}
