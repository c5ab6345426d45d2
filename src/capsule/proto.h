/* proto.h: the capsule server protocol over the fabric (DESIGN §8, §9).
 * Topics (capsule as 64 hex digits, ids likewise):
 *   psl.<capsule>.rec                 records published by writers (and re-sent)
 *   psl.<capsule>.ack.<writer>        ACKs for a writer, MAC'd and signed (capsule/ack.h)
 *   psl.<capsule>.req                 requests to every server of the capsule
 *   psl.<capsule>.req.<server>        requests to one server (server = hex of its public key)
 *   psl.<capsule>.rep.<requester>     replies to a requester (random 32-byte id)
 *   psl.<capsule>.srv.heads           anti-entropy: servers' signed heads, unsolicited
 * Request ("PSLQ"): magic[4] version u8 type u8 request_id u64 requester[32] capsule[32] params
 *   GET_HASH  hash[32]
 *   GET_RANGE writer[32] from u64 to u64            (1 <= from <= to, to-from < 4096)
 *   GET_HEADS, GET_META                            (no params)
 * Reply ("PSLP"): magic[4] version u8 type u8 request_id u64 capsule[32] server_pk[32] status u8
 *   more u8 body_size u32 body signature[64]
 *   signature by the server over ("psl-rep-v1" || SHA-256(all before)): replies count toward a
 *   freshness quorum only when signed by a replica-set member, so nobody on the fabric can forge
 *   a server's answer.
 *   body of GET_HASH/GET_RANGE: count u32, then count times (size u32, record[size])
 *   body of GET_HEADS: count u32, then count times
 *       (writer[32] contiguous u64 hash[32] max_seq u64 flags u8 (bit 0: forked))
 *   body of GET_META: the metadata bytes
 * Requests are not signed: they reveal nothing a server would not serve to anyone (records are
 * ciphertext), and answering costs bounded work. */
#ifndef PSL_CAPSULED_PROTO_H
#define PSL_CAPSULED_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "capsule/meta.h"

#define PROTO_VERSION 1u
#define PROTO_REQ_SIZE_MAX 256u
#define PROTO_RANGE_MAX 4096u
#define PROTO_REPLY_HEADER_SIZE (4u + 1 + 1 + 8 + HASH_SIZE + SIGN_PK_SIZE + 1 + 1 + 4)
#define PROTO_HEAD_ENTRY_SIZE (HASH_SIZE + 8 + HASH_SIZE + 8 + 1)

enum proto_type {
    REQ_GET_HASH = 1,
    REQ_GET_RANGE = 2,
    REQ_GET_HEADS = 3,
    REQ_GET_META = 4,
};

enum proto_status {
    REP_OK = 0,
    REP_NOT_FOUND = 1,
    REP_REFUSED = 2, /* bad request, or a capsule this server does not serve */
    REP_BUSY = 3,
};

struct proto_req {
    uint8_t type;
    uint64_t request_id;
    uint8_t requester[HASH_SIZE];
    uint8_t capsule[HASH_SIZE];
    uint8_t hash[HASH_SIZE];   /* GET_HASH */
    uint8_t writer[HASH_SIZE]; /* GET_RANGE */
    uint64_t from, to;         /* GET_RANGE */
};

/* Encodes into out (PROTO_REQ_SIZE_MAX bytes); returns the size. */
size_t proto_req_encode(const struct proto_req *q, uint8_t out[PROTO_REQ_SIZE_MAX]);
/* Decodes an untrusted request (exact size per type, range bounds). */
psl_err proto_req_decode(struct proto_req *q, const uint8_t *buf, size_t size) PSL_MUST_USE;

struct proto_reply {
    uint8_t type;
    uint64_t request_id;
    uint8_t capsule[HASH_SIZE];
    uint8_t server_pk[SIGN_PK_SIZE];
    uint8_t status;
    uint8_t more; /* 1: more replies follow for this request */
    const uint8_t *body; /* borrowed from the decoded buffer */
    uint32_t body_size;
};

/* Builds a reply in place: the caller reserves PROTO_REPLY_HEADER_SIZE bytes at buf, writes
 * body_size bytes of body after them, then calls this to fill the header and append the
 * signature. buf must hold PROTO_REPLY_HEADER_SIZE + body_size + SIGN_SIG_SIZE. Returns the
 * total size. */
size_t proto_reply_seal(const struct proto_reply *r, const struct signer *server, uint8_t *buf,
                        size_t body_size);
/* Decodes and authenticates a reply: framing, then the signature (by r->server_pk); whether
 * that key is in the replica set is the caller's check (meta_replica_index). */
psl_err proto_reply_open(struct proto_reply *r, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* Walks the records of a GET_HASH/GET_RANGE body. Returns false at the end or on a framing
 * error (then *err is set). Records are borrowed views into the body. */
struct proto_rec_iter {
    struct rd r;
    uint32_t left;
};
psl_err proto_rec_iter_init(struct proto_rec_iter *it, const uint8_t *body, size_t size) PSL_MUST_USE;
bool proto_rec_iter_next(struct proto_rec_iter *it, const uint8_t **rec, size_t *size, psl_err *err);

struct proto_head {
    uint8_t writer[HASH_SIZE];
    uint64_t contiguous;
    uint8_t hash[HASH_SIZE];
    uint64_t max_seq;
    bool forked;
};
/* Head entries of a GET_HEADS body; the count is checked against the bytes before any use. */
psl_err proto_heads_count(const uint8_t *body, size_t size, size_t *count) PSL_MUST_USE;
void proto_head_at(const uint8_t *body, size_t i, struct proto_head *h);
void proto_head_put(uint8_t *out, const struct proto_head *h);

#endif
