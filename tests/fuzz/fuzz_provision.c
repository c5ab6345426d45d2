/* fuzz_provision.c: libFuzzer target for provision_bundle_decode, the decoder of an opened
 * provisioning bundle (the sealed box itself is opaque to a fuzzer), then
 * provision_bundle_check. Each input runs twice: as it is, and re-signed by the fixture owner
 * (issuer_pk and signature at the end replaced), so that mutations get past the issuer signature
 * into the field decoders. The checks use the bundle's own certificate keys, nonce and validity
 * start, so that valid seeds of any origin reach every check. Invariants: what decodes is
 * signed by the issuer it names, is within every limit, and owns memory that
 * provision_bundle_free releases; what passes the checks was issued by the capsule owner or a
 * delegated leader, for this capsule, and passes for no other nonce or enclave. */
#include <stdlib.h>
#include <string.h>

#include "attest/provision.h"
#include "base/assert.h"
#include "fuzz_fixture.h"

#define PROV_SIG_TAG "psl-prov-v1"

static void run(const uint8_t *data, size_t size)
{
    struct provision_bundle b;
    if (provision_bundle_decode(&b, data, size) != PSL_OK)
        return;
    PSL_ASSERT(size >= PROVISION_FIXED_SIZE && size <= PSL_PROVISION_SIZE_MAX);
    PSL_ASSERT(memcmp(b.issuer_pk, data + size - SIGN_SIG_SIZE - SIGN_PK_SIZE, SIGN_PK_SIZE) == 0);
    PSL_ASSERT(b.capsule_key != NULL && b.script != NULL);
    PSL_ASSERT(b.script_size >= 1 && b.script_size <= PSL_SCRIPT_SIZE_MAX);
    PSL_ASSERT(b.args_size <= PSL_ARGS_SIZE_MAX);
    PSL_ASSERT(b.script[b.script_size] == '\0' && b.args[b.args_size] == '\0');
    PSL_ASSERT(b.args == b.script + b.script_size + 1);
    PSL_ASSERT(strlen(b.chunk_name) <= PROVISION_CHUNK_NAME_SIZE_MAX);
    PSL_ASSERT(b.worker_count >= 1 && b.worker_index < b.worker_count);
    PSL_ASSERT(b.mem_bytes > 0 && b.insn_budget > 0);
    PSL_ASSERT(memmem(data, size, b.script, b.script_size) != NULL);

    uint64_t now = b.cert.not_before_ms;
    psl_err err = provision_bundle_check(&b, b.cert.sign_pk, b.cert.kx_pk, b.nonce, now);
    if (err == PSL_OK) {
        PSL_ASSERT(memcmp(b.cert.capsule, b.meta.name, HASH_SIZE) == 0);
        bool by_owner = memcmp(b.issuer_pk, b.meta.owner_pk, SIGN_PK_SIZE) == 0;
        PSL_ASSERT(by_owner ||
                   (b.has_deleg && memcmp(b.deleg.leader_pk, b.issuer_pk, SIGN_PK_SIZE) == 0));
        PSL_ASSERT(cert_verify(&b.cert, b.has_deleg ? &b.deleg : NULL, &b.meta, now) == PSL_OK);
        uint8_t other[ATTEST_NONCE_SIZE];
        memcpy(other, b.nonce, sizeof other);
        other[31] ^= 0x80;
        PSL_ASSERT(provision_bundle_check(&b, b.cert.sign_pk, b.cert.kx_pk, other, now) ==
                   PSL_ERR_ATTEST_NONCE);
        uint8_t kx[KX_PK_SIZE];
        memcpy(kx, b.cert.kx_pk, sizeof kx);
        kx[0] ^= 1;
        PSL_ASSERT(provision_bundle_check(&b, b.cert.sign_pk, kx, b.nonce, now) ==
                   PSL_ERR_ATTEST_BINDING);
    }
    provision_bundle_free(&b);
    PSL_ASSERT(b.capsule_key == NULL && b.script == NULL && b.args == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get(); /* initialises crypto */
    run(data, size);
    if (size < PROVISION_FIXED_SIZE || size > PSL_PROVISION_SIZE_MAX)
        return 0;
    uint8_t *copy = malloc(size);
    PSL_ASSERT(copy != NULL);
    memcpy(copy, data, size);
    uint8_t h[HASH_SIZE];
    memcpy(copy + size - SIGN_SIG_SIZE - SIGN_PK_SIZE, fx->owner.pk, SIGN_PK_SIZE);
    hash_sha256(h, copy, size - SIGN_SIG_SIZE);
    sign_tagged(&fx->owner, copy + size - SIGN_SIG_SIZE, PROV_SIG_TAG, h);
    run(copy, size);
    free(copy);
    return 0;
}
