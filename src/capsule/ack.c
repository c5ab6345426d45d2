/* ack.c: storage server acknowledgements. An ACK counts only when its server is in the
 * capsule's replica set and its signature verifies; both are checked by ack_verify. */
#include "capsule/ack.h"

#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"

static const uint8_t ack_magic[4] = {'P', 'S', 'L', 'A'};
#define ACK_SIG_TAG "psl-ack-v1"
#define ACK_BODY_SIZE (ACK_SIZE - SIGN_SIG_SIZE)

static void ack_encode_body(const struct ack *a, uint8_t out[ACK_BODY_SIZE])
{
    struct wr w;
    wr_init(&w, out, ACK_BODY_SIZE);
    wr_bytes(&w, ack_magic, 4);
    wr_u8(&w, ACK_VERSION);
    wr_bytes(&w, a->capsule, HASH_SIZE);
    wr_bytes(&w, a->writer, HASH_SIZE);
    wr_u64(&w, a->seq);
    wr_bytes(&w, a->record_hash, HASH_SIZE);
    wr_bytes(&w, a->server_pk, SIGN_PK_SIZE);
    PSL_ASSERT_SIZE(w, ACK_BODY_SIZE);
}

static void ack_digest(uint8_t out[HASH_SIZE], const struct ack *a)
{
    uint8_t body[ACK_BODY_SIZE];
    ack_encode_body(a, body);
    hash_sha256(out, body, sizeof body);
}

void ack_sign(struct ack *a, const struct signer *server)
{
    memcpy(a->server_pk, server->pk, SIGN_PK_SIZE);
    uint8_t h[HASH_SIZE];
    ack_digest(h, a);
    sign_tagged(server, a->sig, ACK_SIG_TAG, h);
}

void ack_encode(const struct ack *a, uint8_t out[ACK_SIZE])
{
    ack_encode_body(a, out);
    memcpy(out + ACK_BODY_SIZE, a->sig, SIGN_SIG_SIZE);
}

psl_err ack_decode(struct ack *out, const uint8_t *buf, size_t size)
{
    if (size < ACK_SIZE)
        return PSL_ERR_TRUNCATED;
    if (size > ACK_SIZE)
        return PSL_ERR_TRAILING;
    if (memcmp(buf, ack_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct ack a;
    struct rd r;
    rd_init(&r, buf + 4, size - 4);
    if (rd_u8(&r) != ACK_VERSION)
        return PSL_ERR_BAD_VERSION;
    rd_copy(&r, a.capsule, HASH_SIZE);
    rd_copy(&r, a.writer, HASH_SIZE);
    a.seq = rd_u64(&r);
    rd_copy(&r, a.record_hash, HASH_SIZE);
    rd_copy(&r, a.server_pk, SIGN_PK_SIZE);
    rd_copy(&r, a.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (a.seq == 0)
        return PSL_ERR_BAD_SEQ;
    *out = a;
    return PSL_OK;
}

psl_err ack_verify(const struct ack *a, const struct capsule_meta *m)
{
    if (memcmp(a->capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    if (a->seq == 0)
        return PSL_ERR_BAD_SEQ;
    if (meta_replica_index(m, a->server_pk) < 0)
        return PSL_ERR_NOT_REPLICA;
    uint8_t h[HASH_SIZE];
    ack_digest(h, a);
    if (!sign_verify_tagged(a->server_pk, a->sig, ACK_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return PSL_OK;
}
