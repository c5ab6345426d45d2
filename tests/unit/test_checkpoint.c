/* test_checkpoint.c: the CHECKPOINT payload codec and the collection rule (capsule/checkpoint.h):
 * a known-answer encoding, round trips, every limit (at and one past), truncation at every byte,
 * trailing bytes, and each malformed field the decoder refuses; then which records the rule lets
 * a server drop and which it always keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/limits.h"
#include "capsule/checkpoint.h"
#include "capsule/record.h"
#include "testutil.h"

static void fill(uint8_t *p, size_t n, uint8_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tag + 3 * i);
}

/* A small valid checkpoint: 2 heads (writers 0x10.., 0x20..), 3 live hashes. */
struct sample {
    struct checkpoint_head heads[2];
    uint8_t live[3][HASH_SIZE];
    struct checkpoint cp;
};

static void sample_init(struct sample *s)
{
    memset(s, 0, sizeof *s);
    memset(s->heads[0].writer, 0x10, HASH_SIZE);
    s->heads[0].seq = 7;
    memset(s->heads[0].hash, 0xa7, HASH_SIZE);
    memset(s->heads[1].writer, 0x20, HASH_SIZE);
    s->heads[1].seq = 3;
    memset(s->heads[1].hash, 0xa3, HASH_SIZE);
    memset(s->live[0], 0x01, HASH_SIZE);
    memset(s->live[1], 0x02, HASH_SIZE);
    memset(s->live[2], 0x03, HASH_SIZE);
    memset(s->cp.index_hash, 0xcc, HASH_SIZE);
    s->cp.index_seq = 42;
    s->cp.generation = 5;
    s->cp.head_count = 2;
    s->cp.heads = s->heads;
    s->cp.live_count = 3;
    s->cp.live = (const uint8_t(*)[HASH_SIZE])s->live;
}

static size_t encode(const struct checkpoint *cp, uint8_t *buf, size_t cap)
{
    struct wr w;
    wr_init(&w, buf, cap);
    assert_int_equal(checkpoint_encode(cp, &w), PSL_OK);
    assert_int_equal(w.pos, checkpoint_encoded_size(cp->head_count, cp->live_count));
    return w.pos;
}

static void test_known_answer(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    s.cp.head_count = 1;
    s.cp.live_count = 1;
    uint8_t buf[256];
    size_t n = encode(&s.cp, buf, sizeof buf);
    assert_int_equal(n, 1 + 32 + 8 + 8 + 4 + 72 + 4 + 32);
    uint8_t want[1 + 32 + 8 + 8 + 4 + 72 + 4 + 32];
    size_t o = 0;
    want[o++] = 1;
    memset(want + o, 0xcc, 32);
    o += 32;
    const uint8_t seq42[8] = {42, 0, 0, 0, 0, 0, 0, 0}, gen5[8] = {5, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want + o, seq42, 8);
    o += 8;
    memcpy(want + o, gen5, 8);
    o += 8;
    const uint8_t one[4] = {1, 0, 0, 0};
    memcpy(want + o, one, 4);
    o += 4;
    memset(want + o, 0x10, 32);
    o += 32;
    const uint8_t seq7[8] = {7, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want + o, seq7, 8);
    o += 8;
    memset(want + o, 0xa7, 32);
    o += 32;
    memcpy(want + o, one, 4);
    o += 4;
    memset(want + o, 0x01, 32);
    o += 32;
    assert_int_equal(o, n);
    assert_memory_equal(buf, want, n);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    uint8_t buf[512];
    size_t n = encode(&s.cp, buf, sizeof buf);
    struct checkpoint d;
    assert_int_equal(checkpoint_decode(&d, buf, n), PSL_OK);
    assert_memory_equal(d.index_hash, s.cp.index_hash, HASH_SIZE);
    assert_true(d.index_seq == 42 && d.generation == 5);
    assert_int_equal(d.head_count, 2);
    assert_int_equal(d.live_count, 3);
    for (size_t i = 0; i < 2; i++) {
        struct checkpoint_head h;
        checkpoint_head_at(&d, i, &h);
        assert_memory_equal(&h.writer, s.heads[i].writer, HASH_SIZE);
        assert_true(h.seq == s.heads[i].seq);
        assert_memory_equal(h.hash, s.heads[i].hash, HASH_SIZE);
        struct checkpoint_head f;
        assert_true(checkpoint_head_find(&d, s.heads[i].writer, &f));
        assert_true(f.seq == s.heads[i].seq);
        assert_true(checkpoint_is_live(&d, s.live[i]));
    }
    assert_true(checkpoint_is_live(&d, s.live[2]));
    uint8_t other[HASH_SIZE];
    memset(other, 0x15, HASH_SIZE);
    struct checkpoint_head f;
    assert_false(checkpoint_head_find(&d, other, &f));
    assert_false(checkpoint_is_live(&d, other));

    /* Empty cut and empty live list. */
    s.cp.head_count = 0;
    s.cp.live_count = 0;
    n = encode(&s.cp, buf, sizeof buf);
    assert_int_equal(n, CHECKPOINT_FIXED_SIZE);
    assert_int_equal(checkpoint_decode(&d, buf, n), PSL_OK);
    assert_int_equal(d.head_count, 0);
    assert_false(checkpoint_head_find(&d, other, &f));
    assert_false(checkpoint_is_live(&d, other));
}

static void test_truncated_and_trailing(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    uint8_t buf[512];
    size_t n = encode(&s.cp, buf, sizeof buf);
    struct checkpoint d;
    memset(&d, 0x5a, sizeof d);
    struct checkpoint before = d;
    for (size_t k = 0; k < n; k++) {
        psl_err err = checkpoint_decode(&d, buf, k);
        assert_int_equal(err, PSL_ERR_TRUNCATED);
        assert_memory_equal(&d, &before, sizeof d); /* not written on error */
    }
    buf[n] = 0;
    assert_int_equal(checkpoint_decode(&d, buf, n + 1), PSL_ERR_TRAILING);
}

/* Encodes the fixed part with the given counts and nothing after them. */
static size_t fixed_with_counts(uint8_t *buf, uint32_t heads)
{
    struct wr w;
    wr_init(&w, buf, 64);
    wr_u8(&w, 1);
    uint8_t h[HASH_SIZE];
    memset(h, 0xcc, HASH_SIZE);
    wr_bytes(&w, h, HASH_SIZE);
    wr_u64(&w, 9);
    wr_u64(&w, 1);
    wr_u32(&w, heads);
    return w.pos;
}

static void test_limits(void **state)
{
    (void)state;
    size_t big = checkpoint_encoded_size(PSL_CUT_HEADS_MAX + 1, PSL_CHECKPOINT_BLOCKS_MAX + 1);
    uint8_t *buf = calloc(1, big);
    struct checkpoint_head *heads = calloc(PSL_CUT_HEADS_MAX + 1, sizeof *heads);
    uint8_t(*live)[HASH_SIZE] = calloc(PSL_CHECKPOINT_BLOCKS_MAX + 1, HASH_SIZE);
    assert_true(buf && heads && live);
    for (uint32_t i = 0; i <= PSL_CUT_HEADS_MAX; i++) {
        for (int b = 0; b < 4; b++) /* big-endian at the front: ascending writers */
            heads[i].writer[b] = (uint8_t)(i >> (24 - 8 * b));
        heads[i].seq = 1 + i;
    }
    for (uint32_t i = 0; i <= PSL_CHECKPOINT_BLOCKS_MAX; i++)
        for (int b = 0; b < 4; b++)
            live[i][b] = (uint8_t)(i >> (24 - 8 * b));
    struct checkpoint cp = {.index_seq = 2,
                            .generation = 1,
                            .head_count = PSL_CUT_HEADS_MAX,
                            .heads = heads,
                            .live_count = PSL_CHECKPOINT_BLOCKS_MAX,
                            .live = (const uint8_t(*)[HASH_SIZE])live};
    /* At both limits: encodes, fits in one record, decodes. */
    size_t n = encode(&cp, buf, big);
    assert_true(n <= CHECKPOINT_SIZE_MAX && n <= PSL_RECORD_PAYLOAD_SIZE_MAX);
    struct checkpoint d;
    assert_int_equal(checkpoint_decode(&d, buf, n), PSL_OK);
    assert_int_equal(d.head_count, PSL_CUT_HEADS_MAX);
    assert_int_equal(d.live_count, PSL_CHECKPOINT_BLOCKS_MAX);
    assert_true(checkpoint_is_live(&d, live[PSL_CHECKPOINT_BLOCKS_MAX - 1]));
    assert_false(checkpoint_is_live(&d, live[PSL_CHECKPOINT_BLOCKS_MAX]));

    /* One past either limit: the encoder refuses, and the decoder refuses on the count alone,
     * even when the bytes are all there. */
    struct wr w;
    wr_init(&w, buf, big);
    cp.head_count = PSL_CUT_HEADS_MAX + 1;
    assert_int_equal(checkpoint_encode(&cp, &w), PSL_ERR_TOO_LARGE);
    cp.head_count = PSL_CUT_HEADS_MAX;
    cp.live_count = PSL_CHECKPOINT_BLOCKS_MAX + 1;
    assert_int_equal(checkpoint_encode(&cp, &w), PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 0);

    size_t f = fixed_with_counts(buf, PSL_CUT_HEADS_MAX + 1);
    memset(buf + f, 0, big - f);
    assert_int_equal(checkpoint_decode(&d, buf, big), PSL_ERR_TOO_LARGE);
    /* live_count one past: heads 0, then the count. */
    f = fixed_with_counts(buf, 0);
    put_le32(buf + f, PSL_CHECKPOINT_BLOCKS_MAX + 1);
    assert_int_equal(checkpoint_decode(&d, buf, big), PSL_ERR_TOO_LARGE);
    /* Counts larger than the bytes present: truncated, before anything is looked at. */
    f = fixed_with_counts(buf, 3);
    assert_int_equal(checkpoint_decode(&d, buf, f + 2 * CHECKPOINT_HEAD_SIZE), PSL_ERR_TRUNCATED);
    f = fixed_with_counts(buf, 0);
    put_le32(buf + f, 2);
    assert_int_equal(checkpoint_decode(&d, buf, f + 4 + HASH_SIZE), PSL_ERR_TRUNCATED);

    /* A writer buffer too small: refused, nothing written. */
    uint8_t small[16];
    wr_init(&w, small, sizeof small);
    struct sample s;
    sample_init(&s);
    assert_int_equal(checkpoint_encode(&s.cp, &w), PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 0);
    free(buf);
    free(heads);
    free(live);
}

/* Decodes a sample with one byte (or field) changed. */
static psl_err decode_mutated(size_t off, const void *bytes, size_t len)
{
    struct sample s;
    sample_init(&s);
    uint8_t buf[512];
    size_t n = encode(&s.cp, buf, sizeof buf);
    memcpy(buf + off, bytes, len);
    struct checkpoint d;
    return checkpoint_decode(&d, buf, n);
}

static void test_garbage(void **state)
{
    (void)state;
    const size_t o_seq = 1 + HASH_SIZE, o_gen = o_seq + 8, o_heads = o_gen + 8 + 4;
    const size_t o_live = o_heads + 2 * CHECKPOINT_HEAD_SIZE + 4;
    uint8_t b;
    b = 2;
    assert_int_equal(decode_mutated(0, &b, 1), PSL_ERR_BAD_VERSION);
    b = 0;
    assert_int_equal(decode_mutated(0, &b, 1), PSL_ERR_BAD_VERSION);
    uint8_t u64[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_mutated(o_seq, u64, 8), PSL_ERR_MALFORMED); /* index_seq 1: a CERT */
    u64[0] = 0;
    assert_int_equal(decode_mutated(o_gen, u64, 8), PSL_ERR_MALFORMED); /* generation 0 */
    /* head seq 0 */
    assert_int_equal(decode_mutated(o_heads + HASH_SIZE, u64, 8), PSL_ERR_MALFORMED);
    /* heads out of order, and equal */
    uint8_t w[HASH_SIZE];
    memset(w, 0x30, HASH_SIZE);
    assert_int_equal(decode_mutated(o_heads, w, HASH_SIZE), PSL_ERR_MALFORMED);
    memset(w, 0x20, HASH_SIZE);
    assert_int_equal(decode_mutated(o_heads, w, HASH_SIZE), PSL_ERR_MALFORMED);
    /* live hashes out of order, and equal */
    memset(w, 0x09, HASH_SIZE);
    assert_int_equal(decode_mutated(o_live, w, HASH_SIZE), PSL_ERR_MALFORMED);
    memset(w, 0x02, HASH_SIZE);
    assert_int_equal(decode_mutated(o_live, w, HASH_SIZE), PSL_ERR_MALFORMED);
    /* A sane change decodes (the offsets above point where they should). */
    memset(w, 0x00, HASH_SIZE);
    assert_int_equal(decode_mutated(o_live, w, HASH_SIZE), PSL_OK);

    /* The encoder refuses what the decoder would. */
    struct sample s;
    sample_init(&s);
    uint8_t buf[512];
    struct wr wr;
    wr_init(&wr, buf, sizeof buf);
    s.heads[1] = s.heads[0];
    assert_int_equal(checkpoint_encode(&s.cp, &wr), PSL_ERR_MALFORMED);
    sample_init(&s);
    memcpy(s.live[2], s.live[0], HASH_SIZE);
    assert_int_equal(checkpoint_encode(&s.cp, &wr), PSL_ERR_MALFORMED);
    sample_init(&s);
    s.cp.generation = 0;
    assert_int_equal(checkpoint_encode(&s.cp, &wr), PSL_ERR_MALFORMED);
    sample_init(&s);
    s.heads[0].seq = 0;
    assert_int_equal(checkpoint_encode(&s.cp, &wr), PSL_ERR_MALFORMED);
    assert_int_equal(wr.pos, 0);

    /* Random bytes never crash the decoder and almost never decode. */
    uint8_t rnd[600];
    for (unsigned t = 0; t < 2000; t++) {
        size_t n = (size_t)(t % sizeof rnd);
        fill(rnd, n, (uint8_t)t);
        struct checkpoint d;
        psl_err err = checkpoint_decode(&d, rnd, n);
        assert_true(err != PSL_OK || d.head_count <= PSL_CUT_HEADS_MAX);
    }
}

static struct record_header hdr(const uint8_t writer[HASH_SIZE], uint64_t seq, uint8_t type)
{
    struct record_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.writer, writer, HASH_SIZE);
    h.seq = seq;
    h.type = type;
    return h;
}

static void test_collection_rule(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    uint8_t buf[512];
    size_t n = encode(&s.cp, buf, sizeof buf);
    struct checkpoint d;
    assert_int_equal(checkpoint_decode(&d, buf, n), PSL_OK);
    const uint8_t *w = s.heads[0].writer; /* head seq 7 */
    uint8_t h[HASH_SIZE], stranger[HASH_SIZE];
    memset(h, 0x77, HASH_SIZE);
    memset(stranger, 0x99, HASH_SIZE);
    struct record_header r;
    /* Below the head, collectable types. */
    const uint8_t drop[] = {REC_DATA,      REC_EOE,        REC_SYNC,     REC_HEAD,
                            REC_LSM_INDEX, REC_CHECKPOINT, REC_LSM_BLOCK};
    for (size_t i = 0; i < sizeof drop; i++) {
        r = hdr(w, 2, drop[i]);
        assert_true(checkpoint_may_collect(&d, NULL, &r, h));
        r = hdr(w, 6, drop[i]);
        assert_true(checkpoint_may_collect(&d, NULL, &r, h));
        /* The head record, and anything after it, stays. */
        r = hdr(w, 7, drop[i]);
        assert_false(checkpoint_may_collect(&d, NULL, &r, h));
        r = hdr(w, 8, drop[i]);
        assert_false(checkpoint_may_collect(&d, NULL, &r, h));
        /* A writer the cut does not list: everything stays. */
        r = hdr(stranger, 2, drop[i]);
        assert_false(checkpoint_may_collect(&d, NULL, &r, h));
    }
    /* Kept whatever their seq: the CERT (seq 1), RESULT, REVOKE, live blocks, the index. */
    r = hdr(w, 1, REC_CERT);
    assert_false(checkpoint_may_collect(&d, NULL, &r, h));
    r = hdr(w, 1, REC_DATA);
    assert_false(checkpoint_may_collect(&d, NULL, &r, h));
    r = hdr(w, 3, REC_RESULT);
    assert_false(checkpoint_may_collect(&d, NULL, &r, h));
    r = hdr(w, 3, REC_REVOKE);
    assert_false(checkpoint_may_collect(&d, NULL, &r, h));
    r = hdr(w, 3, REC_LSM_BLOCK);
    assert_false(checkpoint_may_collect(&d, NULL, &r, s.live[1]));
    r = hdr(w, 3, REC_LSM_INDEX);
    assert_false(checkpoint_may_collect(&d, NULL, &r, s.cp.index_hash));
    /* A block the previous checkpoint named stays one notice longer (its readers catch up);
     * one neither names goes. */
    struct checkpoint prev = d;
    uint8_t dead[HASH_SIZE];
    memset(dead, 0x5d, HASH_SIZE);
    r = hdr(w, 3, REC_LSM_BLOCK);
    assert_true(checkpoint_may_collect(&d, NULL, &r, dead));
    prev.live_count = 1;
    prev.live = (const uint8_t(*)[HASH_SIZE])dead;
    assert_false(checkpoint_may_collect(&d, &prev, &r, dead));
    assert_true(checkpoint_may_collect(&d, &prev, &r, stranger));
}

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_collection_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
