/* fuzz_deleg.c: libFuzzer target for deleg_decode (leader delegations) and deleg_verify against
 * the fixture capsule. Invariants checked: a delegation that decodes re-encodes to the input
 * bytes, and the fixture's leader-issued certificate verifies under it only if it verifies. */
#include <string.h>

#include "base/assert.h"
#include "capsule/cert.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct delegation d;
    if (deleg_decode(&d, data, size) != PSL_OK)
        return 0;

    PSL_ASSERT(size == DELEG_SIZE);
    uint8_t out[DELEG_SIZE];
    deleg_encode(&d, out);
    PSL_ASSERT(memcmp(out, data, DELEG_SIZE) == 0);
    PSL_ASSERT((d.roles_mask & ~ROLE_MASK_ALL) == 0);

    psl_err err = deleg_verify(&d, &fx->meta, FIXTURE_NOW_MS);
    if (err == PSL_OK)
        PSL_ASSERT(memcmp(d.capsule, fx->meta.name, HASH_SIZE) == 0);
    psl_err cerr = cert_verify(&fx->certs[FIXTURE_COORDINATOR], &d, &fx->meta, FIXTURE_NOW_MS);
    if (cerr == PSL_OK)
        PSL_ASSERT(err == PSL_OK);
    return 0;
}
