/* fuzz_data.c: libFuzzer target for the record payload decoders of payload.h: data_count and
 * data_decode (DATA plaintext), cut_decode (EOE and SYNC), head_decode, certpl_decode (CERT) and
 * revoke_decode (REVOKE), all on the same bytes. Invariant checked for each: a payload that
 * decodes re-encodes to exactly the input bytes (the encodings are canonical). The op and head
 * arrays are allocated once, at their limits, as a receiver would. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "capsule/payload.h"
#include "fuzz_fixture.h"

static struct kv_op *fuzz_ops;
static struct cut_head *fuzz_heads;

static void check_data(const uint8_t *data, size_t size, uint8_t *out)
{
    size_t count = 0, counted = 0;
    psl_err cerr = data_count(data, size, &counted);
    if (data_decode(data, size, fuzz_ops, PSL_DATA_OPS_MAX, &count) != PSL_OK)
        return;
    PSL_ASSERT(cerr == PSL_OK && counted == count && count <= PSL_DATA_OPS_MAX);
    for (size_t i = 0; i < count; i++) {
        const struct kv_op *op = &fuzz_ops[i];
        PSL_ASSERT(op->key_size >= 1 && op->key_size <= PSL_KEY_SIZE_MAX);
        PSL_ASSERT(op->key >= data && op->key + op->key_size <= data + size);
        PSL_ASSERT(op->op == OP_PUT || (op->op == OP_DEL && op->value_size == 0));
        if (op->value_size)
            PSL_ASSERT(op->value >= data && op->value + op->value_size <= data + size);
    }
    PSL_ASSERT(data_encoded_size(fuzz_ops, count) == size);
    struct wr w;
    wr_init(&w, out, size);
    data_encode(&w, fuzz_ops, count);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
}

static void check_cut(const uint8_t *data, size_t size, uint8_t *out)
{
    uint64_t epoch = 0;
    size_t count = 0;
    if (cut_decode(data, size, &epoch, fuzz_heads, PSL_CUT_HEADS_MAX, &count) != PSL_OK)
        return;
    PSL_ASSERT(count <= PSL_CUT_HEADS_MAX);
    for (size_t i = 0; i < count; i++)
        PSL_ASSERT(fuzz_heads[i].seq >= 1);
    struct wr w;
    wr_init(&w, out, size);
    cut_encode(&w, epoch, fuzz_heads, count);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
}

static void check_head(const uint8_t *data, size_t size, uint8_t *out)
{
    uint64_t wall_ms = 0;
    if (head_decode(data, size, &wall_ms) != PSL_OK)
        return;
    struct wr w;
    wr_init(&w, out, size);
    head_encode(&w, wall_ms);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
}

static void check_certpl(const uint8_t *data, size_t size, uint8_t *out)
{
    struct writer_cert c;
    struct delegation d;
    bool has_deleg = false;
    if (certpl_decode(data, size, &c, &d, &has_deleg) != PSL_OK)
        return;
    struct wr w;
    wr_init(&w, out, size);
    certpl_encode(&w, &c, has_deleg ? &d : NULL);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
}

static void check_revoke(const struct fuzz_fixture *fx, const uint8_t *data, size_t size,
                         uint8_t *out)
{
    struct revocation r;
    if (revoke_decode(data, size, &r) != PSL_OK)
        return;
    PSL_ASSERT(size == REVOKE_SIZE);
    struct wr w;
    wr_init(&w, out, size);
    revoke_encode(&w, &r);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
    /* Who may revoke is the caller's policy; the signature binds the capsule, so a revocation
     * valid for the fixture capsule is not valid for another one. */
    if (revoke_verify(&r, fx->meta.name)) {
        uint8_t other[HASH_SIZE];
        memcpy(other, fx->meta.name, HASH_SIZE);
        other[0] ^= 1;
        PSL_ASSERT(!revoke_verify(&r, other));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    if (!fuzz_ops) {
        fuzz_ops = calloc(PSL_DATA_OPS_MAX, sizeof *fuzz_ops);
        fuzz_heads = calloc(PSL_CUT_HEADS_MAX, sizeof *fuzz_heads);
        PSL_ASSERT(fuzz_ops && fuzz_heads);
    }
    /* Re-encodings go to a buffer of exactly the input size, so an encoder that writes more than
     * the decoder consumed fails the sticky bound (and ASan sees any overrun). */
    uint8_t *out = malloc(size ? size : 1);
    PSL_ASSERT(out);
    check_data(data, size, out);
    check_cut(data, size, out);
    check_head(data, size, out);
    check_certpl(data, size, out);
    check_revoke(fx, data, size, out);
    free(out);
    return 0;
}
