/* fuzz_ack.c: libFuzzer target for ack_decode (storage server acknowledgements), ack_verify and
 * ack_verify_mac (as the fixture's first writer) against the fixture capsule. Invariants
 * checked: an ACK that decodes re-encodes to the input bytes, and one that verifies either way
 * comes from a server of the replica set, for this capsule. */
#include <string.h>

#include "base/assert.h"
#include "capsule/ack.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct ack a;
    if (ack_decode(&a, data, size) != PSL_OK)
        return 0;

    PSL_ASSERT(size == ACK_SIZE && a.seq >= 1);
    uint8_t out[ACK_SIZE];
    ack_encode(&a, out);
    PSL_ASSERT(memcmp(out, data, ACK_SIZE) == 0);

    if (ack_verify(&a, &fx->meta) == PSL_OK) {
        PSL_ASSERT(memcmp(a.capsule, fx->meta.name, HASH_SIZE) == 0);
        PSL_ASSERT(meta_replica_index(&fx->meta, a.server_pk) >= 0);
    }
    static struct ack_keys ks; /* the writer's keys, made once */
    if (!ks.count)
        PSL_ASSERT(ack_keys_init(&ks, &fx->writers[0].kx, &fx->meta) == PSL_OK);
    int idx = -1;
    if (ack_verify_mac(&a, &fx->meta, &ks, &idx) == PSL_OK) {
        PSL_ASSERT(memcmp(a.capsule, fx->meta.name, HASH_SIZE) == 0);
        PSL_ASSERT(idx >= 0 && idx == meta_replica_index(&fx->meta, a.server_pk));
    }
    return 0;
}
