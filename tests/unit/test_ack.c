/* test_ack.c: unit tests of storage-server acknowledgements (src/capsule/ack.c): the encoding,
 * and that an ACK counts only when it names this capsule, comes from a server of the replica
 * set and carries that server's valid signature. Any single flipped bit must be caught. */
#include "capsule/ack.h"

#include "capsule_fixture.h"

static void make_ack(const struct fx *f, struct ack *a, const struct signer *server)
{
    memset(a, 0, sizeof *a);
    memcpy(a->capsule, f->meta.name, HASH_SIZE);
    memcpy(a->writer, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    a->seq = 17;
    memset(a->record_hash, 0xc3, HASH_SIZE);
    ack_sign(a, server);
}

static void want_verify(const struct ack *a, const struct capsule_meta *m, psl_err want)
{
    psl_err got = ack_verify(a, m);
    if (got != want)
        fail_msg("ack_verify: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK)
        assert_int_equal(psl_err_outward(got), PSL_ERR_AUTH);
}

static void want_decode(const uint8_t *buf, size_t size, psl_err want)
{
    struct ack a, before;
    memset(&a, 0x99, sizeof a);
    before = a;
    psl_err got = ack_decode(&a, buf, size);
    if (got != want)
        fail_msg("ack_decode: got %s, want %s (size %zu)", psl_err_name(got), psl_err_name(want),
                 size);
    if (want != PSL_OK)
        assert_memory_equal(&a, &before, sizeof a);
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    for (unsigned s = 0; s < FX_SERVERS; s++) {
        struct ack a;
        make_ack(f, &a, &f->servers[s]);
        assert_memory_equal(a.server_pk, f->servers[s].pk, SIGN_PK_SIZE);
        want_verify(&a, &f->meta, PSL_OK);
        uint8_t buf[ACK_SIZE];
        ack_encode(&a, buf);
        assert_memory_equal(buf, "PSLA", 4);
        assert_int_equal(buf[4], ACK_VERSION);
        struct ack back;
        assert_int_equal(ack_decode(&back, buf, sizeof buf), PSL_OK);
        assert_memory_equal(back.capsule, a.capsule, HASH_SIZE);
        assert_memory_equal(back.writer, a.writer, HASH_SIZE);
        assert_true(back.seq == 17);
        assert_memory_equal(back.record_hash, a.record_hash, HASH_SIZE);
        assert_memory_equal(back.server_pk, f->servers[s].pk, SIGN_PK_SIZE);
        assert_memory_equal(back.sig, a.sig, SIGN_SIG_SIZE);
        want_verify(&back, &f->meta, PSL_OK);
        uint8_t again[ACK_SIZE];
        ack_encode(&back, again);
        assert_memory_equal(again, buf, ACK_SIZE);
    }
}

static void test_not_replica(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->stranger);
    want_verify(&a, &f->meta, PSL_ERR_NOT_REPLICA);
    /* Not even the owner's key counts toward the quorum. */
    make_ack(f, &a, &f->owner);
    want_verify(&a, &f->meta, PSL_ERR_NOT_REPLICA);
    /* A writer's key. */
    make_ack(f, &a, &f->w[FX_W0].keys.sign);
    want_verify(&a, &f->meta, PSL_ERR_NOT_REPLICA);
    /* A server dropped from the replica set. */
    struct capsule_meta smaller = f->meta;
    smaller.replica_count = 2;
    make_ack(f, &a, &f->servers[2]);
    want_verify(&a, &smaller, PSL_ERR_NOT_REPLICA);
    make_ack(f, &a, &f->servers[1]);
    want_verify(&a, &smaller, PSL_OK);
}

static void test_wrong_capsule(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->servers[0]);
    /* The other capsule has the same replica set: only the name differs. */
    want_verify(&a, &f->other, PSL_ERR_WRONG_CAPSULE);
    memcpy(a.capsule, f->other.name, HASH_SIZE);
    ack_sign(&a, &f->servers[0]);
    want_verify(&a, &f->meta, PSL_ERR_WRONG_CAPSULE);
    want_verify(&a, &f->other, PSL_OK);
    /* The capsule is checked before membership. */
    make_ack(f, &a, &f->stranger);
    want_verify(&a, &f->other, PSL_ERR_WRONG_CAPSULE);
}

static void test_bad_signature(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->servers[0]);
    /* Server 0's ack relabelled as server 1's. */
    memcpy(a.server_pk, f->servers[1].pk, SIGN_PK_SIZE);
    want_verify(&a, &f->meta, PSL_ERR_BAD_SIGNATURE);
    /* Fields changed after signing. */
    make_ack(f, &a, &f->servers[0]);
    a.seq++;
    want_verify(&a, &f->meta, PSL_ERR_BAD_SIGNATURE);
    make_ack(f, &a, &f->servers[0]);
    a.record_hash[0] ^= 1;
    want_verify(&a, &f->meta, PSL_ERR_BAD_SIGNATURE);
    make_ack(f, &a, &f->servers[0]);
    a.writer[31] ^= 0x80;
    want_verify(&a, &f->meta, PSL_ERR_BAD_SIGNATURE);
    make_ack(f, &a, &f->servers[0]);
    a.sig[63] ^= 0x01;
    want_verify(&a, &f->meta, PSL_ERR_BAD_SIGNATURE);
}

static void test_every_flipped_bit_fails(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->servers[2]);
    uint8_t good[ACK_SIZE];
    ack_encode(&a, good);
    size_t decode_fails = 0;
    for (size_t bit = 0; bit < ACK_SIZE * 8; bit++) {
        uint8_t buf[ACK_SIZE];
        memcpy(buf, good, sizeof buf);
        tu_flip(buf, bit);
        struct ack b;
        if (ack_decode(&b, buf, sizeof buf) != PSL_OK) {
            decode_fails++;
            continue;
        }
        if (ack_verify(&b, &f->meta) == PSL_OK)
            fail_msg("ack with bit %zu flipped verifies", bit);
    }
    /* Magic and version bits are caught by the decoder itself. */
    assert_true(decode_fails >= 5 * 8);
}

static void test_decode_rejects(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->servers[0]);
    uint8_t good[ACK_SIZE + 1];
    ack_encode(&a, good);
    good[ACK_SIZE] = 0;
    for (size_t n = 0; n < ACK_SIZE; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, good, n);
        want_decode(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
    want_decode(good, ACK_SIZE + 1, PSL_ERR_TRAILING);
    uint8_t buf[ACK_SIZE];
    memcpy(buf, good, ACK_SIZE);
    buf[3] = 'R'; /* a record's magic */
    want_decode(buf, ACK_SIZE, PSL_ERR_BAD_MAGIC);
    memcpy(buf, good, ACK_SIZE);
    buf[4] = 0;
    want_decode(buf, ACK_SIZE, PSL_ERR_BAD_VERSION);
    buf[4] = ACK_VERSION + 1;
    want_decode(buf, ACK_SIZE, PSL_ERR_BAD_VERSION);

    /* seq 0 names no record, even when properly signed. */
    a.seq = 0;
    ack_sign(&a, &f->servers[0]);
    ack_encode(&a, buf);
    want_decode(buf, ACK_SIZE, PSL_ERR_BAD_SEQ);
    /* The largest seq is fine. */
    a.seq = UINT64_MAX;
    ack_sign(&a, &f->servers[0]);
    ack_encode(&a, buf);
    want_decode(buf, ACK_SIZE, PSL_OK);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_not_replica),
        T(test_wrong_capsule),
        T(test_bad_signature),
        T(test_every_flipped_bit_fails),
        T(test_decode_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
