/* fuzz_result.c: libFuzzer target for result_decode, the decoder of an opened sealed result,
 * then result_verify: against the result's own job id (so the worker's signature is checked
 * with the key of the certificate it carries) and the fixture capsule. Invariants: a decoded
 * result lies within the input and its limit; one that verifies was signed by its
 * certificate's key, for a certificate of the fixture capsule; none verifies for another job. */
#include <string.h>

#include "attest/provision.h"
#include "base/assert.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct result_plain r;
    if (result_decode(&r, data, size) != PSL_OK)
        return 0;
    PSL_ASSERT(size >= RESULT_FIXED_SIZE && size <= PSL_RESULT_SIZE_MAX - SEAL_OVERHEAD);
    PSL_ASSERT(r.size <= RESULT_DATA_SIZE_MAX);
    PSL_ASSERT(r.data >= data && r.data + r.size <= data + size);
    PSL_ASSERT(size == RESULT_FIXED_SIZE + (r.has_deleg ? DELEG_SIZE : 0) + r.size);

    psl_err err = result_verify(&r, &fx->meta, r.job_id, FIXTURE_NOW_MS);
    if (err == PSL_OK)
        PSL_ASSERT(memcmp(r.cert.capsule, fx->meta.name, HASH_SIZE) == 0);
    /* Past the job id, the first check is the signature: err tells whether it held. */
    bool signed_ok = err == PSL_OK || err != PSL_ERR_BAD_SIGNATURE;
    uint8_t other[JOB_ID_SIZE];
    memcpy(other, r.job_id, sizeof other);
    other[JOB_ID_SIZE - 1] ^= 1;
    PSL_ASSERT(result_verify(&r, &fx->meta, other, FIXTURE_NOW_MS) == PSL_ERR_REPLAY);
    if (signed_ok && r.size) {
        /* Any change to the result bytes breaks the signature. */
        uint8_t copy[4096];
        if (size <= sizeof copy) {
            memcpy(copy, data, size);
            struct result_plain t;
            PSL_ASSERT(result_decode(&t, copy, size) == PSL_OK);
            copy[t.data - copy] ^= 1;
            PSL_ASSERT(result_verify(&t, &fx->meta, t.job_id, FIXTURE_NOW_MS) ==
                       PSL_ERR_BAD_SIGNATURE);
        }
    }
    return 0;
}
