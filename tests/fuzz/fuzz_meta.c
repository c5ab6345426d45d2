/* fuzz_meta.c: libFuzzer target for meta_decode, the decoder of capsule metadata (the root of
 * trust of a capsule). Invariant checked: metadata that decodes re-encodes to exactly the input
 * bytes, since the capsule name is the hash of that encoding and must not depend on who encoded. */
#include <string.h>

#include "base/assert.h"
#include "capsule/meta.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct capsule_meta m;
    if (meta_decode(&m, data, size) != PSL_OK)
        return 0;

    uint8_t out[META_SIZE_MAX];
    size_t out_size = 0;
    PSL_ASSERT(meta_encode(&m, out, sizeof out, &out_size) == PSL_OK);
    PSL_ASSERT(out_size == size && memcmp(out, data, size) == 0);
    PSL_ASSERT(m.label[m.label_size] == '\0');
    uint8_t name[HASH_SIZE];
    hash_sha256(name, data, size - SIGN_SIG_SIZE);
    PSL_ASSERT(memcmp(name, m.name, HASH_SIZE) == 0);

    /* The policy helpers on decoded metadata. */
    bool allowed = meta_allows_measurement(&m, fx->certs[0].measurement);
    PSL_ASSERT(allowed || m.measurement_count > 0);
    int idx = meta_replica_index(&m, fx->servers[0].pk);
    PSL_ASSERT(idx < (int)m.replica_count);
    if (idx >= 0)
        PSL_ASSERT(memcmp(m.replicas[idx], fx->servers[0].pk, SIGN_PK_SIZE) == 0);
    return 0;
}
