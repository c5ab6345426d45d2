/* test_meta.c: unit tests of capsule metadata (src/capsule/meta.c): the canonical encoding, the
 * name as the hash of the body, and every check meta_decode makes on untrusted bytes, each with
 * the exact error a caller relies on. A failed decode must leave the output untouched. */
#include "capsule_fixture.h"

/* Offsets into the fixture's encoding (see meta.h for the layout). */
struct meta_offsets {
    size_t label_size, quorum, replica_count, replicas, retention, measurement_count, measurements,
        body;
};

static struct meta_offsets meta_offsets_of(const struct capsule_meta *m)
{
    struct meta_offsets o;
    o.label_size = 4 + 1 + 1 + 32 + 8;
    o.quorum = o.label_size + 1 + m->label_size;
    o.replica_count = o.quorum + 1;
    o.replicas = o.replica_count + 1;
    o.retention = o.replicas + 32u * m->replica_count;
    o.measurement_count = o.retention + 1;
    o.measurements = o.measurement_count + 1;
    o.body = o.measurements + 32u * m->measurement_count;
    return o;
}

/* Decodes buf and asserts the error; on failure the output must be untouched. */
static void want_decode(const uint8_t *buf, size_t size, psl_err want)
{
    struct capsule_meta out, before;
    memset(&out, 0x5a, sizeof out);
    memcpy(&before, &out, sizeof out);
    psl_err got = meta_decode(&out, buf, size);
    if (got != want)
        fail_msg("meta_decode: got %s, want %s (size %zu)", psl_err_name(got), psl_err_name(want),
                 size);
    if (want != PSL_OK)
        assert_memory_equal(&out, &before, sizeof out);
}

static void assert_meta_equal(const struct capsule_meta *a, const struct capsule_meta *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->suite, b->suite);
    assert_memory_equal(a->owner_pk, b->owner_pk, SIGN_PK_SIZE);
    assert_true(a->created_ms == b->created_ms);
    assert_int_equal(a->label_size, b->label_size);
    assert_memory_equal(a->label, b->label, a->label_size);
    assert_int_equal(a->quorum_k, b->quorum_k);
    assert_int_equal(a->replica_count, b->replica_count);
    assert_memory_equal(a->replicas, b->replicas, 32u * a->replica_count);
    assert_int_equal(a->retention, b->retention);
    assert_int_equal(a->measurement_count, b->measurement_count);
    assert_memory_equal(a->measurements, b->measurements, 32u * a->measurement_count);
    assert_memory_equal(a->sig, b->sig, SIGN_SIG_SIZE);
    assert_memory_equal(a->name, b->name, HASH_SIZE);
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    struct meta_offsets o = meta_offsets_of(&f->meta);
    assert_int_equal(f->meta_size, o.body + SIGN_SIG_SIZE);
    assert_memory_equal(f->meta_enc, "PSLM", 4);

    struct capsule_meta m;
    assert_int_equal(meta_decode(&m, f->meta_enc, f->meta_size), PSL_OK);
    assert_meta_equal(&m, &f->meta);
    assert_memory_equal(m.owner_pk, f->owner.pk, SIGN_PK_SIZE);
    assert_int_equal(m.label[m.label_size], '\0');

    /* The encoding is canonical: re-encoding the decoded metadata gives the same bytes. */
    uint8_t again[META_SIZE_MAX];
    size_t n = 0;
    assert_int_equal(meta_encode(&m, again, sizeof again, &n), PSL_OK);
    assert_int_equal(n, f->meta_size);
    assert_memory_equal(again, f->meta_enc, n);
}

static void test_name_is_hash_of_body(void **state)
{
    struct fx *f = *state;
    size_t body = f->meta_size - SIGN_SIG_SIZE;
    uint8_t want[HASH_SIZE];
    hash_sha256(want, f->meta_enc, body);
    assert_memory_equal(f->meta.name, want, HASH_SIZE);
    struct capsule_meta m;
    assert_int_equal(meta_decode(&m, f->meta_enc, f->meta_size), PSL_OK);
    assert_memory_equal(m.name, want, HASH_SIZE);
    /* The signature is over the tagged name. */
    assert_true(sign_verify_tagged(f->owner.pk, m.sig, "psl-meta-v1", want));
    /* Any change to the body changes the name. */
    struct capsule_meta m2 = f->meta;
    m2.created_ms++;
    assert_int_equal(meta_sign(&m2, &f->owner), PSL_OK);
    assert_memory_not_equal(m2.name, f->meta.name, HASH_SIZE);
}

static void test_limits_round_trip(void **state)
{
    struct fx *f = *state;
    /* Every variable field at its limit: the encoding is exactly META_SIZE_MAX. */
    struct capsule_meta m;
    memset(&m, 0, sizeof m);
    m.version = META_VERSION;
    m.suite = PSL_SUITE_1;
    m.label_size = PSL_LABEL_SIZE_MAX;
    memset(m.label, 'x', PSL_LABEL_SIZE_MAX);
    m.label[3] = '\0'; /* any bytes are allowed in a label */
    m.replica_count = PSL_REPLICAS_MAX;
    m.quorum_k = PSL_REPLICAS_MAX;
    for (unsigned i = 0; i < PSL_REPLICAS_MAX; i++)
        tu_seed(m.replicas[i], 500 + i);
    m.measurement_count = PSL_MEASUREMENTS_MAX;
    for (unsigned i = 0; i < PSL_MEASUREMENTS_MAX; i++)
        tu_seed(m.measurements[i], 600 + i);
    m.retention = RETENTION_COLLECT_COVERED;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_OK);
    uint8_t buf[META_SIZE_MAX];
    size_t n = 0;
    assert_int_equal(meta_encode(&m, buf, sizeof buf, &n), PSL_OK);
    assert_int_equal(n, META_SIZE_MAX);
    struct capsule_meta back;
    assert_int_equal(meta_decode(&back, buf, n), PSL_OK);
    assert_meta_equal(&back, &m);
    /* One byte short of room: the encoder refuses rather than truncating. */
    assert_int_equal(meta_encode(&m, buf, n - 1, &n), PSL_ERR_TOO_LARGE);
    assert_int_equal(n, META_SIZE_MAX);
}

static void test_empty_label_and_any_measurement(void **state)
{
    struct fx *f = *state;
    struct capsule_meta m = f->meta;
    m.label_size = 0;
    m.label[0] = '\0';
    m.measurement_count = 0;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_OK);
    uint8_t buf[META_SIZE_MAX];
    size_t n = 0;
    assert_int_equal(meta_encode(&m, buf, sizeof buf, &n), PSL_OK);
    struct capsule_meta back;
    assert_int_equal(meta_decode(&back, buf, n), PSL_OK);
    assert_int_equal(back.measurement_count, 0);
    /* An empty policy allows any measurement. */
    assert_true(meta_allows_measurement(&back, f->other_measurement));
}

static void test_decode_bad_magic(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < 4; i++) {
        uint8_t buf[META_SIZE_MAX];
        memcpy(buf, f->meta_enc, f->meta_size);
        buf[i] ^= 0x20;
        want_decode(buf, f->meta_size, PSL_ERR_BAD_MAGIC);
    }
}

static void test_decode_bad_version_and_suite(void **state)
{
    struct fx *f = *state;
    static const uint8_t bad[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t buf[META_SIZE_MAX];
        memcpy(buf, f->meta_enc, f->meta_size);
        buf[4] = bad[i];
        want_decode(buf, f->meta_size, PSL_ERR_BAD_VERSION);
        memcpy(buf, f->meta_enc, f->meta_size);
        buf[5] = bad[i];
        want_decode(buf, f->meta_size, PSL_ERR_BAD_SUITE);
    }
}

static void test_decode_replica_count(void **state)
{
    struct fx *f = *state;
    struct meta_offsets o = meta_offsets_of(&f->meta);
    uint8_t buf[META_SIZE_MAX];
    memcpy(buf, f->meta_enc, f->meta_size);
    buf[o.replica_count] = 0;
    want_decode(buf, f->meta_size, PSL_ERR_TOO_LARGE);
    buf[o.replica_count] = PSL_REPLICAS_MAX + 1;
    want_decode(buf, f->meta_size, PSL_ERR_TOO_LARGE);
    buf[o.replica_count] = 0xff;
    want_decode(buf, f->meta_size, PSL_ERR_TOO_LARGE);
    /* A count within the limit but more than the bytes hold is truncation, not a crash. */
    buf[o.replica_count] = PSL_REPLICAS_MAX;
    want_decode(buf, f->meta_size, PSL_ERR_TRUNCATED);
}

static void test_decode_quorum(void **state)
{
    struct fx *f = *state;
    struct meta_offsets o = meta_offsets_of(&f->meta);
    uint8_t buf[META_SIZE_MAX];
    memcpy(buf, f->meta_enc, f->meta_size);
    buf[o.quorum] = 0;
    want_decode(buf, f->meta_size, PSL_ERR_MALFORMED);
    buf[o.quorum] = FX_SERVERS + 1;
    want_decode(buf, f->meta_size, PSL_ERR_MALFORMED);
    buf[o.quorum] = 0xff;
    want_decode(buf, f->meta_size, PSL_ERR_MALFORMED);
    /* k = n is allowed by the fields (the signature then fails: the body changed). */
    buf[o.quorum] = FX_SERVERS;
    want_decode(buf, f->meta_size, PSL_ERR_BAD_SIGNATURE);
}

static void test_decode_duplicate_replica(void **state)
{
    struct fx *f = *state;
    struct meta_offsets o = meta_offsets_of(&f->meta);
    uint8_t buf[META_SIZE_MAX];
    memcpy(buf, f->meta_enc, f->meta_size);
    memcpy(buf + o.replicas + 2 * 32, buf + o.replicas, 32); /* replica 2 := replica 0 */
    want_decode(buf, f->meta_size, PSL_ERR_MALFORMED);

    /* The owner cannot sign such metadata either (one server would count twice toward k). */
    struct capsule_meta m = f->meta;
    memcpy(m.replicas[1], m.replicas[0], SIGN_PK_SIZE);
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_MALFORMED);
    assert_int_equal(meta_check_fields(&m), PSL_ERR_MALFORMED);
}

static void test_decode_measurement_count_and_retention(void **state)
{
    struct fx *f = *state;
    struct meta_offsets o = meta_offsets_of(&f->meta);
    uint8_t buf[META_SIZE_MAX];
    memcpy(buf, f->meta_enc, f->meta_size);
    buf[o.measurement_count] = PSL_MEASUREMENTS_MAX + 1;
    want_decode(buf, f->meta_size, PSL_ERR_TOO_LARGE);
    buf[o.measurement_count] = 0xff;
    want_decode(buf, f->meta_size, PSL_ERR_TOO_LARGE);
    buf[o.measurement_count] = 3; /* more than the bytes hold */
    want_decode(buf, f->meta_size, PSL_ERR_TRUNCATED);

    memcpy(buf, f->meta_enc, f->meta_size);
    buf[o.retention] = RETENTION_COLLECT_COVERED + 1;
    want_decode(buf, f->meta_size, PSL_ERR_MALFORMED);
}

static void test_decode_truncated_at_every_length(void **state)
{
    struct fx *f = *state;
    for (size_t n = 0; n < f->meta_size; n++) {
        /* A copy of exactly n bytes, so a read past the end is caught by ASan too. */
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, f->meta_enc, n);
        want_decode(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
}

static void test_decode_trailing_and_oversize(void **state)
{
    struct fx *f = *state;
    uint8_t buf[META_SIZE_MAX + 1];
    memcpy(buf, f->meta_enc, f->meta_size);
    buf[f->meta_size] = 0;
    want_decode(buf, f->meta_size + 1, PSL_ERR_TRAILING);
    memset(buf + f->meta_size, 0, sizeof buf - f->meta_size);
    want_decode(buf, sizeof buf, PSL_ERR_TOO_LARGE);
}

static void test_decode_flipped_signature_bits(void **state)
{
    struct fx *f = *state;
    size_t sig = f->meta_size - SIGN_SIG_SIZE;
    for (size_t bit = 0; bit < SIGN_SIG_SIZE * 8; bit++) {
        uint8_t buf[META_SIZE_MAX];
        memcpy(buf, f->meta_enc, f->meta_size);
        tu_flip(buf + sig, bit);
        want_decode(buf, f->meta_size, PSL_ERR_BAD_SIGNATURE);
    }
}

static void test_decode_flipped_body_bits(void **state)
{
    struct fx *f = *state;
    /* Every bit of the body: the decode must fail (which error depends on the field). */
    size_t body = f->meta_size - SIGN_SIG_SIZE;
    size_t sig_fails = 0;
    for (size_t bit = 0; bit < body * 8; bit++) {
        uint8_t buf[META_SIZE_MAX];
        memcpy(buf, f->meta_enc, f->meta_size);
        tu_flip(buf, bit);
        struct capsule_meta m;
        psl_err err = meta_decode(&m, buf, f->meta_size);
        if (err == PSL_OK)
            fail_msg("flipping body bit %zu was accepted", bit);
        sig_fails += err == PSL_ERR_BAD_SIGNATURE;
    }
    /* Owner key, time, label, replicas and measurements are covered by the signature alone. */
    assert_true(sig_fails >= 8 * (32 + 8 + f->meta.label_size + 32u * FX_SERVERS + 32));
}

static void test_resigned_by_other_key(void **state)
{
    struct fx *f = *state;
    /* The same fields signed by another key: valid metadata of another capsule. */
    uint8_t buf[META_SIZE_MAX];
    size_t n = 0;
    assert_int_equal(meta_encode(&f->other, buf, sizeof buf, &n), PSL_OK);
    assert_int_equal(n, f->meta_size);
    struct capsule_meta m;
    assert_int_equal(meta_decode(&m, buf, n), PSL_OK);
    assert_memory_equal(m.owner_pk, f->stranger.pk, SIGN_PK_SIZE);
    assert_memory_not_equal(m.name, f->meta.name, HASH_SIZE);

    /* The stranger's signature spliced onto the owner's body does not verify. */
    uint8_t spliced[META_SIZE_MAX];
    memcpy(spliced, f->meta_enc, f->meta_size);
    memcpy(spliced + f->meta_size - SIGN_SIG_SIZE, buf + n - SIGN_SIG_SIZE, SIGN_SIG_SIZE);
    want_decode(spliced, f->meta_size, PSL_ERR_BAD_SIGNATURE);

    /* Nor does the owner's signature with the owner key swapped for the stranger's. */
    memcpy(spliced, f->meta_enc, f->meta_size);
    memcpy(spliced + 6, f->stranger.pk, SIGN_PK_SIZE);
    want_decode(spliced, f->meta_size, PSL_ERR_BAD_SIGNATURE);
}

static void test_sign_refuses_bad_fields(void **state)
{
    struct fx *f = *state;
    struct capsule_meta m;

    m = f->meta;
    m.version = 2;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_BAD_VERSION);
    m = f->meta;
    m.suite = 0;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_BAD_SUITE);
    m = f->meta;
    m.replica_count = 0;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_TOO_LARGE);
    m = f->meta;
    m.replica_count = PSL_REPLICAS_MAX + 1;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_TOO_LARGE);
    m = f->meta;
    m.measurement_count = PSL_MEASUREMENTS_MAX + 1;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_TOO_LARGE);
    m = f->meta;
    m.quorum_k = 0;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_MALFORMED);
    m = f->meta;
    m.quorum_k = FX_SERVERS + 1;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_MALFORMED);
    m = f->meta;
    m.retention = 7;
    assert_int_equal(meta_sign(&m, &f->owner), PSL_ERR_MALFORMED);
    /* meta_encode checks the same fields. */
    uint8_t buf[META_SIZE_MAX];
    size_t n = 12345;
    assert_int_equal(meta_encode(&m, buf, sizeof buf, &n), PSL_ERR_MALFORMED);
    assert_int_equal(n, 12345);
}

static void test_policy_and_replica_lookup(void **state)
{
    struct fx *f = *state;
    assert_true(meta_allows_measurement(&f->meta, f->measurement));
    assert_false(meta_allows_measurement(&f->meta, f->other_measurement));
    for (unsigned i = 0; i < FX_SERVERS; i++)
        assert_int_equal(meta_replica_index(&f->meta, f->servers[i].pk), (int)i);
    assert_int_equal(meta_replica_index(&f->meta, f->owner.pk), -1);
    assert_int_equal(meta_replica_index(&f->meta, f->stranger.pk), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_name_is_hash_of_body, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_limits_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_label_and_any_measurement, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_bad_magic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_bad_version_and_suite, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_replica_count, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_quorum, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_duplicate_replica, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_measurement_count_and_retention, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_truncated_at_every_length, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_trailing_and_oversize, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_flipped_signature_bits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decode_flipped_body_bits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resigned_by_other_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sign_refuses_bad_fields, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_policy_and_replica_lookup, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
