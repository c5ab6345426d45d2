/* fuzz_cert.c: libFuzzer target for cert_decode (writer certificates) and cert_verify against the
 * fixture capsule. Invariants checked: a certificate that decodes re-encodes to the input bytes,
 * and one that verifies without a delegation was issued by the capsule owner. */
#include <string.h>

#include "base/assert.h"
#include "capsule/cert.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct writer_cert c;
    if (cert_decode(&c, data, size) != PSL_OK)
        return 0;

    PSL_ASSERT(size == CERT_SIZE);
    uint8_t out[CERT_SIZE];
    cert_encode(&c, out);
    PSL_ASSERT(memcmp(out, data, CERT_SIZE) == 0);
    uint8_t id[HASH_SIZE];
    writer_id_of(id, c.sign_pk);
    PSL_ASSERT(memcmp(id, c.writer_id, HASH_SIZE) == 0);

    psl_err err = cert_verify(&c, NULL, &fx->meta, FIXTURE_NOW_MS);
    if (err == PSL_OK) {
        PSL_ASSERT(memcmp(c.issuer_pk, fx->meta.owner_pk, SIGN_PK_SIZE) == 0);
        PSL_ASSERT(memcmp(c.capsule, fx->meta.name, HASH_SIZE) == 0);
        PSL_ASSERT(c.not_before_ms <= FIXTURE_NOW_MS && FIXTURE_NOW_MS <= c.not_after_ms);
    } else if (err == PSL_ERR_CERT_ISSUER) {
        /* Not the owner's: try it as a leader-issued certificate under the fixture delegation. */
        err = cert_verify(&c, &fx->deleg, &fx->meta, FIXTURE_NOW_MS);
        if (err == PSL_OK) {
            PSL_ASSERT(memcmp(c.issuer_pk, fx->deleg.leader_pk, SIGN_PK_SIZE) == 0);
            PSL_ASSERT(fx->deleg.roles_mask & ROLE_BIT(c.role));
        }
    }
    return 0;
}
