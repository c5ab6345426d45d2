/* fuzz_record.c: libFuzzer target for the record decoders: record_header_decode, record_parse,
 * then the receiver's checks against the fixture capsule (record_check, or record_check_cert for
 * CERT records), record_open with the fixture writer's key, and the decoder of the opened payload.
 * Seeds sealed by fixture writers pass every check, so mutations start from records that reach
 * decryption. Invariants checked: parse agrees with the header decoder and with the framing, the
 * header re-encodes to the input's first bytes, and a verified CERT names the writer it certifies.
 * The plaintext buffer has exactly the size record_open needs, so any overrun is seen by ASan. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "capsule/checkpoint.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "fuzz_fixture.h"

static struct kv_op *fuzz_ops;
static struct cut_head *fuzz_heads;

/* Decodes an opened payload as its receiver would; errors are expected for fuzzed bytes. */
static void decode_payload(const struct fuzz_fixture *fx, uint8_t type, const uint8_t *p, size_t n)
{
    size_t count = 0;
    uint64_t u = 0;
    psl_err err = PSL_OK;
    switch (type) {
    case REC_CERT: {
        struct writer_cert c;
        struct delegation d;
        bool has_deleg = false;
        err = certpl_decode(p, n, &c, &d, &has_deleg);
        break;
    }
    case REC_DATA:
        err = data_decode(p, n, fuzz_ops, PSL_DATA_OPS_MAX, &count);
        PSL_ASSERT(err || count <= PSL_DATA_OPS_MAX);
        break;
    case REC_EOE:
    case REC_SYNC:
        err = cut_decode(p, n, &u, fuzz_heads, PSL_CUT_HEADS_MAX, &count);
        PSL_ASSERT(err || count <= PSL_CUT_HEADS_MAX);
        break;
    case REC_HEAD:
        err = head_decode(p, n, &u);
        break;
    case REC_REVOKE: {
        struct revocation r;
        err = revoke_decode(p, n, &r);
        if (!err)
            (void)revoke_verify(&r, fx->meta.name);
        break;
    }
    case REC_CHECKPOINT: {
        struct checkpoint cp;
        err = checkpoint_decode(&cp, p, n);
        PSL_ASSERT(err || cp.head_count <= PSL_CUT_HEADS_MAX);
        break;
    }
    default: /* RESULT, LSM_BLOCK, LSM_INDEX: opaque at this layer */
        break;
    }
    (void)err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    if (!fuzz_ops) {
        fuzz_ops = calloc(PSL_DATA_OPS_MAX, sizeof *fuzz_ops);
        fuzz_heads = calloc(PSL_CUT_HEADS_MAX, sizeof *fuzz_heads);
        PSL_ASSERT(fuzz_ops && fuzz_heads);
    }

    struct record_header h;
    psl_err herr = record_header_decode(&h, data, size);
    struct record_view v;
    if (record_parse(&v, data, size) != PSL_OK)
        return 0;

    /* Parsing implies a valid header and exact framing. */
    PSL_ASSERT(herr == PSL_OK);
    PSL_ASSERT(v.raw == data && v.raw_size == size);
    PSL_ASSERT(size == PSL_RECORD_HEADER_SIZE + (size_t)v.h.payload_size + PSL_RECORD_SIG_SIZE);
    PSL_ASSERT(v.h.seq >= 1 && (v.h.type == REC_CERT) == (v.h.seq == 1));
    uint8_t hdr[PSL_RECORD_HEADER_SIZE];
    record_header_encode(&v.h, hdr);
    PSL_ASSERT(memcmp(hdr, data, PSL_RECORD_HEADER_SIZE) == 0);
    record_header_encode(&h, hdr);
    PSL_ASSERT(memcmp(hdr, data, PSL_RECORD_HEADER_SIZE) == 0);

    int wi = fixture_writer_index(fx, v.h.writer);
    psl_err check;
    if (v.h.type == REC_CERT) {
        struct writer_cert cert;
        check = record_check_cert(&v, &fx->meta, FIXTURE_NOW_MS, &cert);
        if (check == PSL_OK)
            PSL_ASSERT(memcmp(cert.writer_id, v.h.writer, HASH_SIZE) == 0 &&
                       memcmp(cert.capsule, fx->meta.name, HASH_SIZE) == 0);
    } else {
        check = record_check(&v, &fx->meta, wi >= 0 ? &fx->certs[wi] : NULL, FIXTURE_NOW_MS, NULL);
        if (check == PSL_OK)
            PSL_ASSERT(wi >= 0);
    }
    (void)check;

    /* Open with the writer's key (writer 0's for an unknown writer: the tag must then fail). */
    bool enc = record_type_is_encrypted(v.h.type);
    size_t plain_cap = v.h.payload_size - (enc ? AEAD_TAG_SIZE : 0);
    uint8_t *plain = malloc(plain_cap ? plain_cap : 1);
    PSL_ASSERT(plain);
    size_t plain_size = 0;
    const struct aead_key *key = &fx->writers[wi >= 0 ? wi : 0].aead;
    if (record_open(&v, key, plain, plain_cap, &plain_size) == PSL_OK) {
        PSL_ASSERT(plain_size == plain_cap);
        decode_payload(fx, v.h.type, plain, plain_size);
    }
    free(plain);
    return 0;
}
