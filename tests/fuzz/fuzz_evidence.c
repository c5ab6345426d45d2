/* fuzz_evidence.c: libFuzzer target for evidence_decode and attest_msg_decode (the same bytes
 * through both), then attest_verify. The target needs no fixture keys: it trusts whatever
 * platform key the input names and expects the nonce the input carries, so that valid seeds of
 * any origin reach every verifier check. Invariants: decoded evidence and messages re-encode to
 * the input bytes; a message that verifies is sim evidence, signed, for its own keys and nonce,
 * is described as unprotected, and verifies for no other nonce and under no empty policy. */
#include <string.h>

#include "attest/evidence.h"
#include "base/assert.h"
#include "fuzz_fixture.h"

static struct attest_policy policy;

static void check_evidence(const uint8_t *data, size_t size)
{
    struct evidence ev;
    if (evidence_decode(&ev, data, size) != PSL_OK)
        return;
    PSL_ASSERT(size >= EVIDENCE_FIXED_SIZE && size <= PSL_EVIDENCE_SIZE_MAX);
    PSL_ASSERT(ev.tee_type >= TEE_SIM && ev.tee_type <= TEE_TYPE_MAX);
    PSL_ASSERT((ev.tee_type == TEE_SIM) == (ev.hw_report_size == 0));
    PSL_ASSERT(ev.hw_report_size == 0 ||
               (ev.hw_report >= data && ev.hw_report + ev.hw_report_size <= data + size));
    uint8_t out[PSL_EVIDENCE_SIZE_MAX];
    size_t n = 0;
    PSL_ASSERT(evidence_encode(&ev, out, sizeof out, &n) == PSL_OK);
    PSL_ASSERT(n == size && memcmp(out, data, size) == 0);
}

static void check_msg(const uint8_t *data, size_t size)
{
    struct attest_msg m;
    if (attest_msg_decode(&m, data, size) != PSL_OK)
        return;
    PSL_ASSERT(m.evidence_size <= PSL_EVIDENCE_SIZE_MAX);
    PSL_ASSERT(m.evidence == data + ATTEST_MSG_HEADER_SIZE);
    PSL_ASSERT(size == ATTEST_MSG_HEADER_SIZE + m.evidence_size);
    struct evidence ev;
    if (evidence_decode(&ev, m.evidence, m.evidence_size) != PSL_OK)
        return;
    uint8_t out[ATTEST_MSG_SIZE_MAX];
    size_t n = 0;
    PSL_ASSERT(attest_msg_encode(&ev, m.sign_pk, m.kx_pk, out, sizeof out, &n) == PSL_OK);
    PSL_ASSERT(n == size && memcmp(out, data, size) == 0);

    /* Trust the named platform, allow any measurement and debug: only the evidence's own
     * integrity and binding decide. */
    attest_policy_init(&policy, NULL);
    policy.allow_debug = true;
    const uint8_t *nonce = ev.report_data + HASH_SIZE;
    struct attest_verified v;
    psl_err err = attest_verify(&policy, data, size, nonce, &v);
    PSL_ASSERT(err == PSL_ERR_ATTEST_PLATFORM); /* nobody trusted yet */
    PSL_ASSERT(attest_policy_trust_platform(&policy, ev.platform_pk) == PSL_OK);
    err = attest_verify(&policy, data, size, nonce, &v);
    if (err != PSL_OK)
        return;
    PSL_ASSERT(v.tee_type == TEE_SIM && ev.tee_type == TEE_SIM);
    PSL_ASSERT(memcmp(v.sign_pk, m.sign_pk, SIGN_PK_SIZE) == 0);
    PSL_ASSERT(memcmp(v.kx_pk, m.kx_pk, KX_PK_SIZE) == 0);
    PSL_ASSERT(memcmp(v.measurement, ev.measurement, HASH_SIZE) == 0);
    PSL_ASSERT(strstr(v.description, "simulation: no hardware protection") != NULL);
    uint8_t rd[EVIDENCE_REPORT_DATA_SIZE];
    attest_report_data(rd, m.sign_pk, m.kx_pk, nonce);
    PSL_ASSERT(memcmp(rd, ev.report_data, sizeof rd) == 0);
    uint8_t other[ATTEST_NONCE_SIZE];
    memcpy(other, nonce, sizeof other);
    other[0] ^= 1;
    PSL_ASSERT(attest_verify(&policy, data, size, other, &v) == PSL_ERR_ATTEST_NONCE);
    /* A measurement policy that excludes it. */
    policy.measurement_count = 1;
    memcpy(policy.measurements[0], ev.measurement, HASH_SIZE);
    policy.measurements[0][0] ^= 1;
    PSL_ASSERT(attest_verify(&policy, data, size, nonce, &v) == PSL_ERR_ATTEST_MEASUREMENT);
    /* And the keys swapped. */
    if (memcmp(m.sign_pk, m.kx_pk, SIGN_PK_SIZE) != 0) {
        uint8_t *swapped = (uint8_t *)out; /* the re-encoding, a private copy of the input */
        memcpy(swapped + 5, m.kx_pk, KX_PK_SIZE);
        memcpy(swapped + 5 + SIGN_PK_SIZE, m.sign_pk, SIGN_PK_SIZE);
        policy.measurement_count = 0;
        PSL_ASSERT(attest_verify(&policy, swapped, size, nonce, &v) == PSL_ERR_ATTEST_BINDING);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fixture_get(); /* initialises crypto; the fixture itself is not needed here */
    check_evidence(data, size);
    check_msg(data, size);
    return 0;
}
