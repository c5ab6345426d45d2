/* fuzz_proto_reply.c: libFuzzer target for the decoders of server replies a client or a peer
 * server reads from the fabric: proto_reply_open (framing and server signature), then the body
 * walkers (records, heads). Invariants: an opened reply's body lies inside the input, walked
 * records lie inside the body, and head counts agree with the body size. */
#include <string.h>

#include "base/assert.h"
#include "capsule/proto.h"
#include "fuzz_fixture.h"

static void walk_body(const uint8_t *body, size_t size)
{
    struct proto_rec_iter it;
    if (proto_rec_iter_init(&it, body, size) == PSL_OK) {
        const uint8_t *rec;
        size_t n;
        psl_err err;
        while (proto_rec_iter_next(&it, &rec, &n, &err)) {
            PSL_ASSERT(rec >= body && rec + n <= body + size);
            struct record_view v;
            if (record_parse(&v, rec, n) == PSL_OK)
                PSL_ASSERT(v.raw_size == n);
        }
    }
    size_t count;
    if (proto_heads_count(body, size, &count) == PSL_OK) {
        PSL_ASSERT(4 + count * PROTO_HEAD_ENTRY_SIZE == size);
        for (size_t i = 0; i < count; i++) {
            struct proto_head h;
            proto_head_at(body, i, &h);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fixture_get();
    struct proto_reply r;
    if (proto_reply_open(&r, data, size) == PSL_OK) {
        PSL_ASSERT(r.body >= data && r.body + r.body_size <= data + size);
        walk_body(r.body, r.body_size);
    }
    /* The body walkers also see unauthenticated bytes in tests: exercise them directly. */
    walk_body(data, size);
    return 0;
}
