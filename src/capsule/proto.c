/* proto.c: encoding and decoding of capsule server requests and replies (format in proto.h).
 * Pure format code: servers, clients and enclaves share it; it does no I/O.
 * Decoders are the only code that touches reply and request bytes from the fabric; every
 * length is checked against the bytes present and its limit before use. */
#include "capsule/proto.h"

#include <string.h>

#include "base/assert.h"

static const uint8_t req_magic[4] = {'P', 'S', 'L', 'Q'};
static const uint8_t rep_magic[4] = {'P', 'S', 'L', 'P'};
#define REPLY_SIG_TAG "psl-rep-v1"

size_t proto_req_encode(const struct proto_req *q, uint8_t out[PROTO_REQ_SIZE_MAX])
{
    struct wr w;
    wr_init(&w, out, PROTO_REQ_SIZE_MAX);
    wr_bytes(&w, req_magic, 4);
    wr_u8(&w, PROTO_VERSION);
    wr_u8(&w, q->type);
    wr_u64(&w, q->request_id);
    wr_bytes(&w, q->requester, HASH_SIZE);
    wr_bytes(&w, q->capsule, HASH_SIZE);
    if (q->type == REQ_GET_HASH) {
        wr_bytes(&w, q->hash, HASH_SIZE);
    } else if (q->type == REQ_GET_RANGE) {
        wr_bytes(&w, q->writer, HASH_SIZE);
        wr_u64(&w, q->from);
        wr_u64(&w, q->to);
    }
    PSL_ASSERT(w.err == PSL_OK);
    return w.pos;
}

psl_err proto_req_decode(struct proto_req *out, const uint8_t *buf, size_t size)
{
    if (size > PROTO_REQ_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    struct rd r;
    rd_init(&r, buf, size);
    const uint8_t *magic = rd_take(&r, 4);
    if (!magic)
        return PSL_ERR_TRUNCATED;
    if (memcmp(magic, req_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (rd_u8(&r) != PROTO_VERSION)
        return r.err ? r.err : PSL_ERR_BAD_VERSION;
    struct proto_req q;
    memset(&q, 0, sizeof q);
    q.type = rd_u8(&r);
    q.request_id = rd_u64(&r);
    rd_copy(&r, q.requester, HASH_SIZE);
    rd_copy(&r, q.capsule, HASH_SIZE);
    switch (q.type) {
    case REQ_GET_HASH:
        rd_copy(&r, q.hash, HASH_SIZE);
        break;
    case REQ_GET_RANGE:
        rd_copy(&r, q.writer, HASH_SIZE);
        q.from = rd_u64(&r);
        q.to = rd_u64(&r);
        if (r.err == PSL_OK && (q.from < 1 || q.to < q.from))
            return PSL_ERR_MALFORMED;
        if (r.err == PSL_OK && q.to - q.from >= PROTO_RANGE_MAX)
            return PSL_ERR_TOO_LARGE;
        break;
    case REQ_GET_HEADS:
    case REQ_GET_META:
        break;
    default:
        return r.err ? r.err : PSL_ERR_BAD_TYPE;
    }
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *out = q;
    return PSL_OK;
}

size_t proto_reply_seal(const struct proto_reply *r, const struct signer *server, uint8_t *buf,
                        size_t body_size)
{
    PSL_ASSERT(body_size <= PSL_MSG_SIZE_MAX - PROTO_REPLY_HEADER_SIZE - SIGN_SIG_SIZE);
    struct wr w;
    wr_init(&w, buf, PROTO_REPLY_HEADER_SIZE);
    wr_bytes(&w, rep_magic, 4);
    wr_u8(&w, PROTO_VERSION);
    wr_u8(&w, r->type);
    wr_u64(&w, r->request_id);
    wr_bytes(&w, r->capsule, HASH_SIZE);
    wr_bytes(&w, server->pk, SIGN_PK_SIZE);
    wr_u8(&w, r->status);
    wr_u8(&w, r->more);
    wr_u32(&w, (uint32_t)body_size);
    PSL_ASSERT_SIZE(w, PROTO_REPLY_HEADER_SIZE);
    size_t signed_size = PROTO_REPLY_HEADER_SIZE + body_size;
    uint8_t h[HASH_SIZE];
    hash_sha256(h, buf, signed_size);
    sign_tagged(server, buf + signed_size, REPLY_SIG_TAG, h);
    return signed_size + SIGN_SIG_SIZE;
}

psl_err proto_reply_open(struct proto_reply *out, const uint8_t *buf, size_t size)
{
    if (size > PSL_MSG_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (size < PROTO_REPLY_HEADER_SIZE + SIGN_SIG_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, rep_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct rd r;
    rd_init(&r, buf + 4, PROTO_REPLY_HEADER_SIZE - 4);
    if (rd_u8(&r) != PROTO_VERSION)
        return PSL_ERR_BAD_VERSION;
    struct proto_reply rep;
    rep.type = rd_u8(&r);
    rep.request_id = rd_u64(&r);
    rd_copy(&r, rep.capsule, HASH_SIZE);
    rd_copy(&r, rep.server_pk, SIGN_PK_SIZE);
    rep.status = rd_u8(&r);
    rep.more = rd_u8(&r);
    rep.body_size = rd_u32(&r);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (rep.type < REQ_GET_HASH || rep.type > REQ_GET_META || rep.status > REP_BUSY || rep.more > 1)
        return PSL_ERR_MALFORMED;
    size_t rest = size - PROTO_REPLY_HEADER_SIZE;
    if (rep.body_size != rest - SIGN_SIG_SIZE)
        return rep.body_size > rest - SIGN_SIG_SIZE ? PSL_ERR_TRUNCATED : PSL_ERR_TRAILING;
    size_t signed_size = PROTO_REPLY_HEADER_SIZE + rep.body_size;
    uint8_t h[HASH_SIZE];
    hash_sha256(h, buf, signed_size);
    if (!sign_verify_tagged(rep.server_pk, buf + signed_size, REPLY_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    rep.body = buf + PROTO_REPLY_HEADER_SIZE;
    *out = rep;
    return PSL_OK;
}

psl_err proto_rec_iter_init(struct proto_rec_iter *it, const uint8_t *body, size_t size)
{
    rd_init(&it->r, body, size);
    it->left = rd_u32(&it->r);
    if (it->r.err)
        return it->r.err;
    /* Each record takes at least its size field, a header and a signature. */
    if (it->left > rd_left(&it->r) / (4 + PSL_RECORD_HEADER_SIZE + PSL_RECORD_SIG_SIZE))
        return PSL_ERR_TRUNCATED;
    return PSL_OK;
}

bool proto_rec_iter_next(struct proto_rec_iter *it, const uint8_t **rec, size_t *size, psl_err *err)
{
    *err = PSL_OK;
    if (it->left == 0) {
        *err = rd_finish(&it->r);
        return false;
    }
    uint32_t n = rd_u32(&it->r);
    if (it->r.err == PSL_OK && n > PSL_RECORD_SIZE_MAX) {
        *err = PSL_ERR_TOO_LARGE;
        return false;
    }
    const uint8_t *p = rd_take(&it->r, n);
    if (!p) {
        *err = it->r.err;
        return false;
    }
    it->left--;
    *rec = p;
    *size = n;
    return true;
}

psl_err proto_heads_count(const uint8_t *body, size_t size, size_t *count)
{
    if (size < 4)
        return PSL_ERR_TRUNCATED;
    uint32_t n = get_le32(body);
    if (n > PSL_WRITERS_MAX)
        return PSL_ERR_TOO_LARGE;
    if ((size - 4) != (size_t)n * PROTO_HEAD_ENTRY_SIZE)
        return (size - 4) < (size_t)n * PROTO_HEAD_ENTRY_SIZE ? PSL_ERR_TRUNCATED : PSL_ERR_TRAILING;
    *count = n;
    return PSL_OK;
}

void proto_head_at(const uint8_t *body, size_t i, struct proto_head *h)
{
    const uint8_t *p = body + 4 + i * PROTO_HEAD_ENTRY_SIZE;
    memcpy(h->writer, p, HASH_SIZE);
    h->contiguous = get_le64(p + HASH_SIZE);
    memcpy(h->hash, p + HASH_SIZE + 8, HASH_SIZE);
    h->max_seq = get_le64(p + 2 * HASH_SIZE + 8);
    h->forked = p[2 * HASH_SIZE + 16] & 1;
}

void proto_head_put(uint8_t *out, const struct proto_head *h)
{
    memcpy(out, h->writer, HASH_SIZE);
    put_le64(out + HASH_SIZE, h->contiguous);
    memcpy(out + HASH_SIZE + 8, h->hash, HASH_SIZE);
    put_le64(out + 2 * HASH_SIZE + 8, h->max_seq);
    out[2 * HASH_SIZE + 16] = h->forked ? 1 : 0;
}
