/* fuzz_proto_req.c: libFuzzer target for proto_req_decode, the decoder of requests a capsule
 * server reads from the fabric. Invariants: a request that decodes respects the range limits
 * and re-encodes to exactly the input bytes. */
#include <string.h>

#include "base/assert.h"
#include "capsule/proto.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fixture_get(); /* crypto init, as in every target */
    struct proto_req q;
    if (proto_req_decode(&q, data, size) != PSL_OK)
        return 0;
    if (q.type == REQ_GET_RANGE)
        PSL_ASSERT(q.from >= 1 && q.to >= q.from && q.to - q.from < PROTO_RANGE_MAX);
    uint8_t out[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, out);
    PSL_ASSERT(n == size && memcmp(out, data, n) == 0);
    return 0;
}
