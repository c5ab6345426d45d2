/* test_ack.c: unit tests of storage-server acknowledgements (src/capsule/ack.c): the encoding,
 * and that an ACK counts only when it names this capsule, comes from a server of the replica
 * set and carries that server's valid signature (anyone's check) and its valid MAC under the
 * key only that server and the writer share (the writer's check). Forgeries by other servers,
 * other writers and strangers, relabelling and any single flipped bit must be caught. */
#include "capsule/ack.h"

#include "capsule_fixture.h"

/* An ACK of writer W0's seq 17 by server, MAC'd under the key server shares with writer wi. */
static void make_ack_for(const struct fx *f, struct ack *a, const struct signer *server,
                         unsigned wi)
{
    memset(a, 0, sizeof *a);
    memcpy(a->capsule, f->meta.name, HASH_SIZE);
    memcpy(a->writer, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    a->seq = 17;
    memset(a->record_hash, 0xc3, HASH_SIZE);
    assert_int_equal(ack_sign_for(a, server, f->w[wi].keys.kx.pk), PSL_OK);
}

static void make_ack(const struct fx *f, struct ack *a, const struct signer *server)
{
    make_ack_for(f, a, server, FX_W0);
}

/* Re-signs (signature and MAC) after a field was changed on purpose. */
static void resign(const struct fx *f, struct ack *a, const struct signer *server)
{
    assert_int_equal(ack_sign_for(a, server, f->w[FX_W0].keys.kx.pk), PSL_OK);
}

/* The writer's check, with W0's keys for the metadata m. */
static void want_mac(const struct fx *f, const struct ack *a, const struct capsule_meta *m,
                     psl_err want)
{
    struct ack_keys ks;
    assert_int_equal(ack_keys_init(&ks, &f->w[FX_W0].keys.kx, m), PSL_OK);
    int idx = -1;
    psl_err got = ack_verify_mac(a, m, &ks, &idx);
    ack_keys_free(&ks);
    if (got != want)
        fail_msg("ack_verify_mac: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want == PSL_OK)
        assert_int_equal(idx, meta_replica_index(m, a->server_pk));
    else
        assert_int_equal(psl_err_outward(got), PSL_ERR_AUTH);
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
        assert_memory_equal(back.mac, a.mac, HASH_SIZE);
        want_verify(&back, &f->meta, PSL_OK);
        want_mac(f, &back, &f->meta, PSL_OK);
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
    want_mac(f, &a, &smaller, PSL_ERR_NOT_REPLICA);
    make_ack(f, &a, &f->servers[1]);
    want_verify(&a, &smaller, PSL_OK);
    want_mac(f, &a, &smaller, PSL_OK);
    /* A stranger that knows the writer's public kx key still is no replica. */
    make_ack(f, &a, &f->stranger);
    want_mac(f, &a, &f->meta, PSL_ERR_NOT_REPLICA);
}

static void test_wrong_capsule(void **state)
{
    struct fx *f = *state;
    struct ack a;
    make_ack(f, &a, &f->servers[0]);
    /* The other capsule has the same replica set: only the name differs. */
    want_verify(&a, &f->other, PSL_ERR_WRONG_CAPSULE);
    want_mac(f, &a, &f->other, PSL_ERR_WRONG_CAPSULE);
    memcpy(a.capsule, f->other.name, HASH_SIZE);
    resign(f, &a, &f->servers[0]);
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

/* Both ends of a (server, writer) pair derive the same key; different pairs different keys; a
 * small-order kx key (which would force a known agreement) is refused. */
static void test_key_agreement(void **state)
{
    struct fx *f = *state;
    uint8_t *ks = secret_alloc(ACK_KEY_SIZE), *kw = secret_alloc(ACK_KEY_SIZE);
    uint8_t *k2 = secret_alloc(ACK_KEY_SIZE);
    assert_non_null(ks);
    assert_non_null(kw);
    assert_non_null(k2);
    for (unsigned s = 0; s < FX_SERVERS; s++) {
        struct kx_keypair skx;
        assert_int_equal(kx_from_signer(&skx, &f->servers[s]), PSL_OK);
        assert_int_equal(ack_key_for_writer(ks, &skx, f->servers[s].pk, f->w[FX_W0].keys.kx.pk),
                         PSL_OK);
        assert_int_equal(ack_key_for_server(kw, &f->w[FX_W0].keys.kx, f->servers[s].pk), PSL_OK);
        assert_memory_equal(ks, kw, ACK_KEY_SIZE);
        assert_int_equal(ack_key_for_writer(k2, &skx, f->servers[s].pk, f->w[FX_W1].keys.kx.pk),
                         PSL_OK);
        assert_memory_not_equal(ks, k2, ACK_KEY_SIZE);
        uint8_t zero[KX_PK_SIZE] = {0};
        assert_int_equal(ack_key_for_writer(k2, &skx, f->servers[s].pk, zero), PSL_ERR_CRYPTO);
        kx_deinit(&skx);
    }
    secret_free(ks);
    secret_free(kw);
    secret_free(k2);
}

/* The writer's check: a MAC made by anyone but the named server, for anyone but this writer,
 * or over other fields fails, whatever the signature says. */
static void test_bad_mac(void **state)
{
    struct fx *f = *state;
    struct ack a, b;
    make_ack(f, &a, &f->servers[0]);
    want_mac(f, &a, &f->meta, PSL_OK);
    /* Server 1 makes an ACK in server 0's name: its own key with the writer is another key. */
    make_ack(f, &b, &f->servers[1]);
    memcpy(b.server_pk, f->servers[0].pk, SIGN_PK_SIZE);
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    /* Server 0's ACK MAC'd for writer W1, relabelled as W0's: W1's key is not W0's. */
    make_ack_for(f, &b, &f->servers[0], FX_W1);
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    want_verify(&b, &f->meta, PSL_OK); /* its signature is fine: only the MAC tells */
    /* Fields changed after the MAC. */
    b = a;
    b.seq++;
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    b = a;
    b.record_hash[5] ^= 0x10;
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    b = a;
    b.writer[0] ^= 1;
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    b = a;
    b.mac[31] ^= 0x80;
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    /* A replayed MAC from another ACK of the same pair does not fit new fields. */
    struct ack older = a;
    older.seq = 3;
    resign(f, &older, &f->servers[0]);
    b = a;
    memcpy(b.mac, older.mac, HASH_SIZE);
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    /* A valid signature does not stand in for the MAC, nor the MAC for the signature. */
    b = a;
    memset(b.mac, 0, HASH_SIZE);
    want_verify(&b, &f->meta, PSL_OK);
    want_mac(f, &b, &f->meta, PSL_ERR_BAD_MAC);
    b = a;
    memset(b.sig, 0, SIGN_SIG_SIZE);
    want_mac(f, &b, &f->meta, PSL_OK);
    want_verify(&b, &f->meta, PSL_ERR_BAD_SIGNATURE);
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
        /* The signature covers the body; the MAC the body and the MAC. */
        bool in_mac = bit >= (ACK_SIZE - SIGN_SIG_SIZE - HASH_SIZE) * 8 &&
                      bit < (ACK_SIZE - SIGN_SIG_SIZE) * 8;
        bool in_sig = bit >= (ACK_SIZE - SIGN_SIG_SIZE) * 8;
        if (!in_mac && ack_verify(&b, &f->meta) == PSL_OK)
            fail_msg("ack with bit %zu flipped verifies", bit);
        struct ack_keys ks;
        assert_int_equal(ack_keys_init(&ks, &f->w[FX_W0].keys.kx, &f->meta), PSL_OK);
        int idx;
        psl_err mac = ack_verify_mac(&b, &f->meta, &ks, &idx);
        ack_keys_free(&ks);
        if (!in_sig && mac == PSL_OK)
            fail_msg("ack with bit %zu flipped passes its MAC", bit);
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
    resign(f, &a, &f->servers[0]);
    ack_encode(&a, buf);
    want_decode(buf, ACK_SIZE, PSL_ERR_BAD_SEQ);
    /* The largest seq is fine. */
    a.seq = UINT64_MAX;
    resign(f, &a, &f->servers[0]);
    ack_encode(&a, buf);
    want_decode(buf, ACK_SIZE, PSL_OK);
}

/* A replica key with no X25519 form (here the identity point, of small order) costs only that
 * server its ACKs: the writer's keys for the others are made and work. */
static void test_unusable_replica_key(void **state)
{
    struct fx *f = *state;
    struct capsule_meta m = f->meta;
    memset(m.replicas[1], 0, SIGN_PK_SIZE);
    m.replicas[1][0] = 1; /* y = 1: the neutral element */
    struct ack_keys ks;
    assert_int_equal(ack_keys_init(&ks, &f->w[FX_W0].keys.kx, &m), PSL_OK);
    assert_int_equal(ks.count, FX_SERVERS);
    assert_true(ks.usable[0] && !ks.usable[1] && ks.usable[2]);
    struct ack a;
    int idx = -1;
    make_ack(f, &a, &f->servers[2]);
    assert_int_equal(ack_verify_mac(&a, &m, &ks, &idx), PSL_OK);
    assert_int_equal(idx, 2);
    /* An ACK in the unusable server's name never verifies, whatever its MAC. */
    make_ack(f, &a, &f->servers[0]);
    memcpy(a.server_pk, m.replicas[1], SIGN_PK_SIZE);
    assert_int_equal(ack_verify_mac(&a, &m, &ks, &idx), PSL_ERR_BAD_MAC);
    memset(a.mac, 0, HASH_SIZE);
    assert_int_equal(ack_verify_mac(&a, &m, &ks, &idx), PSL_ERR_BAD_MAC);
    /* Nor one MAC'd under the all-zero key, or the key left in the slot. */
    uint8_t *zero = secret_alloc(ACK_KEY_SIZE);
    assert_non_null(zero);
    make_ack(f, &a, &f->servers[0]);
    memcpy(a.server_pk, m.replicas[1], SIGN_PK_SIZE);
    struct signer fake = f->servers[0];
    memcpy(fake.pk, m.replicas[1], SIGN_PK_SIZE); /* ack_sign names fake.pk as the server */
    assert_int_equal(ack_sign(&a, &fake, zero), PSL_OK);
    assert_int_equal(ack_verify_mac(&a, &m, &ks, &idx), PSL_ERR_BAD_MAC);
    assert_int_equal(ack_sign(&a, &fake, ks.k + ACK_KEY_SIZE), PSL_OK);
    assert_int_equal(ack_verify_mac(&a, &m, &ks, &idx), PSL_ERR_BAD_MAC);
    secret_free(zero);
    ack_keys_free(&ks);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_not_replica),
        T(test_wrong_capsule),
        T(test_bad_signature),
        T(test_key_agreement),
        T(test_bad_mac),
        T(test_unusable_replica_key),
        T(test_every_flipped_bit_fails),
        T(test_decode_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
