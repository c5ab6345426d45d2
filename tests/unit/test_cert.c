/* test_cert.c: unit tests of writer certificates and leader delegations (src/capsule/cert.c):
 * encodings, and every check of cert_verify and deleg_verify, each with the exact error. A
 * certificate is believed only when it chains to the capsule owner, directly or through an
 * owner-signed delegation that allows its role and covers its validity window. */
#include "capsule_fixture.h"

static void want_verify(const struct writer_cert *c, const struct delegation *d,
                        const struct capsule_meta *m, uint64_t now, psl_err want)
{
    psl_err got = cert_verify(c, d, m, now);
    if (got != want)
        fail_msg("cert_verify: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK)
        assert_int_equal(psl_err_outward(got), PSL_ERR_AUTH);
}

static void assert_cert_equal(const struct writer_cert *a, const struct writer_cert *b)
{
    assert_int_equal(a->role, b->role);
    assert_memory_equal(a->capsule, b->capsule, HASH_SIZE);
    assert_memory_equal(a->sign_pk, b->sign_pk, SIGN_PK_SIZE);
    assert_memory_equal(a->kx_pk, b->kx_pk, KX_PK_SIZE);
    assert_memory_equal(a->measurement, b->measurement, HASH_SIZE);
    assert_true(a->not_before_ms == b->not_before_ms);
    assert_true(a->not_after_ms == b->not_after_ms);
    assert_true(a->serial == b->serial);
    assert_memory_equal(a->issuer_pk, b->issuer_pk, SIGN_PK_SIZE);
    assert_memory_equal(a->sig, b->sig, SIGN_SIG_SIZE);
    assert_memory_equal(a->writer_id, b->writer_id, HASH_SIZE);
}

/* ---- owner-issued certificates ---- */

static void test_owner_issued_verifies(void **state)
{
    struct fx *f = *state;
    for (unsigned i = 0; i < FX_WRITERS; i++) {
        if (f->w[i].by_leader)
            continue;
        const struct writer_cert *c = &f->w[i].cert;
        want_verify(c, NULL, &f->meta, FX_NOW, PSL_OK);
        /* A delegation passed along is irrelevant when the owner issued the certificate. */
        want_verify(c, &f->deleg, &f->meta, FX_NOW, PSL_OK);
        assert_memory_equal(c->issuer_pk, f->owner.pk, SIGN_PK_SIZE);
        uint8_t id[HASH_SIZE];
        hash_sha256(id, f->w[i].keys.sign.pk, SIGN_PK_SIZE);
        assert_memory_equal(c->writer_id, id, HASH_SIZE);
        assert_memory_equal(c->writer_id, f->w[i].keys.writer_id, HASH_SIZE);
    }
}

static void test_encode_decode_round_trip(void **state)
{
    struct fx *f = *state;
    const struct writer_cert *c = &f->w[FX_COORD].cert;
    uint8_t buf[CERT_SIZE];
    cert_encode(c, buf);
    assert_memory_equal(buf, "PSLC", 4);
    assert_int_equal(buf[4], CERT_VERSION);
    assert_int_equal(buf[5], ROLE_COORDINATOR);
    struct writer_cert back;
    assert_int_equal(cert_decode(&back, buf, sizeof buf), PSL_OK);
    assert_cert_equal(&back, c);
    want_verify(&back, NULL, &f->meta, FX_NOW, PSL_OK);
    uint8_t again[CERT_SIZE];
    cert_encode(&back, again);
    assert_memory_equal(again, buf, CERT_SIZE);
}

static void test_wrong_capsule(void **state)
{
    struct fx *f = *state;
    /* Issued by this owner, but for another capsule. */
    struct writer_cert c = f->w[FX_W0].cert;
    memcpy(c.capsule, f->other.name, HASH_SIZE);
    cert_sign(&c, &f->owner);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_FOREIGN);
    /* A valid certificate of this capsule presented against another capsule. */
    want_verify(&f->w[FX_W0].cert, NULL, &f->other, FX_NOW, PSL_ERR_CERT_FOREIGN);
}

static void test_validity_window(void **state)
{
    struct fx *f = *state;
    const struct writer_cert *c = &f->w[FX_W0].cert;
    want_verify(c, NULL, &f->meta, FX_CERT_NB, PSL_OK);
    want_verify(c, NULL, &f->meta, FX_CERT_NA, PSL_OK);
    want_verify(c, NULL, &f->meta, FX_CERT_NB - 1, PSL_ERR_CERT_EXPIRED); /* not yet valid */
    want_verify(c, NULL, &f->meta, FX_CERT_NA + 1, PSL_ERR_CERT_EXPIRED); /* expired */
    want_verify(c, NULL, &f->meta, 0, PSL_ERR_CERT_EXPIRED);
    want_verify(c, NULL, &f->meta, UINT64_MAX, PSL_ERR_CERT_EXPIRED);
    /* An inverted window contains nothing. */
    struct writer_cert inv = *c;
    inv.not_before_ms = FX_CERT_NA;
    inv.not_after_ms = FX_CERT_NB;
    cert_sign(&inv, &f->owner);
    want_verify(&inv, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_EXPIRED);
}

static void test_measurement_not_in_policy(void **state)
{
    struct fx *f = *state;
    struct writer_cert c = f->w[FX_W0].cert;
    memcpy(c.measurement, f->other_measurement, HASH_SIZE);
    cert_sign(&c, &f->owner);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_MEASUREMENT);
    /* The same certificate under a policy that allows any measurement is fine. */
    struct capsule_meta open = f->meta;
    open.measurement_count = 0;
    want_verify(&c, NULL, &open, FX_NOW, PSL_OK);
}

static void test_issuer_not_owner_nor_delegated(void **state)
{
    struct fx *f = *state;
    struct writer_cert c;
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_WORKER, &f->stranger);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
    /* The fixture delegation names another leader. */
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
    /* A writer certifying itself. */
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_WORKER, &f->w[FX_W0].keys.sign);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
}

/* ---- leader-issued certificates ---- */

static void test_leader_issued_verifies(void **state)
{
    struct fx *f = *state;
    const struct writer_cert *c = &f->w[FX_DELEGATED].cert;
    assert_memory_equal(c->issuer_pk, f->w[FX_LEADER].keys.sign.pk, SIGN_PK_SIZE);
    want_verify(c, &f->deleg, &f->meta, FX_NOW, PSL_OK);
    assert_int_equal(deleg_verify(&f->deleg, &f->meta, FX_NOW), PSL_OK);
    /* A coordinator is allowed by the fixture delegation too. */
    struct writer_cert k;
    fx_cert_make(f, &k, &f->w[FX_W1].keys, ROLE_COORDINATOR, &f->w[FX_LEADER].keys.sign);
    want_verify(&k, &f->deleg, &f->meta, FX_NOW, PSL_OK);
}

static void test_leader_issued_without_delegation(void **state)
{
    struct fx *f = *state;
    const struct writer_cert *c = &f->w[FX_DELEGATED].cert;
    want_verify(c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
    /* A delegation, owner-signed and valid, but for another leader. */
    struct delegation other;
    fx_deleg_make(f, &other, f->w[FX_COORD].keys.sign.pk, (uint8_t)ROLE_MASK_ALL, &f->owner);
    assert_int_equal(deleg_verify(&other, &f->meta, FX_NOW), PSL_OK);
    want_verify(c, &other, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
}

static void test_delegation_role_not_allowed(void **state)
{
    struct fx *f = *state;
    /* The fixture delegation allows workers and coordinators, not compactors or leaders. */
    struct writer_cert c;
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_COMPACTOR, &f->w[FX_LEADER].keys.sign);
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_CERT_ROLE);
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_LEADER, &f->w[FX_LEADER].keys.sign);
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_CERT_ROLE);
    /* A delegation that allows nothing. */
    struct delegation none;
    fx_deleg_make(f, &none, f->w[FX_LEADER].keys.sign.pk, 0, &f->owner);
    want_verify(&f->w[FX_DELEGATED].cert, &none, &f->meta, FX_NOW, PSL_ERR_CERT_ROLE);
}

static void test_delegation_signed_by_non_owner(void **state)
{
    struct fx *f = *state;
    struct delegation d;
    fx_deleg_make(f, &d, f->w[FX_LEADER].keys.sign.pk,
                  (uint8_t)(ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR)), &f->stranger);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_ERR_BAD_SIGNATURE);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* The leader delegating to itself. */
    fx_deleg_make(f, &d, f->w[FX_LEADER].keys.sign.pk,
                  (uint8_t)(ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR)),
                  &f->w[FX_LEADER].keys.sign);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* An owner-signed delegation widened after signing. */
    d = f->deleg;
    d.roles_mask = (uint8_t)ROLE_MASK_ALL;
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
}

static void test_delegation_expired(void **state)
{
    struct fx *f = *state;
    /* The delegation ended before now; the certificate's own window still holds now. */
    struct delegation d = f->deleg;
    d.not_before_ms = FX_NOW - 3 * FX_HOUR_MS;
    d.not_after_ms = FX_NOW - 1;
    deleg_sign(&d, &f->owner);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_ERR_CERT_EXPIRED);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_CERT_EXPIRED);
    /* Not yet valid. */
    d.not_before_ms = FX_NOW + 1;
    d.not_after_ms = FX_NOW + 3 * FX_HOUR_MS;
    deleg_sign(&d, &f->owner);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_ERR_CERT_EXPIRED);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_CERT_EXPIRED);
}

static void test_cert_window_outside_delegation(void **state)
{
    struct fx *f = *state;
    const struct signer *leader = &f->w[FX_LEADER].keys.sign;
    struct writer_cert c;
    /* Starts before the delegation does. */
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_WORKER, leader);
    c.not_before_ms = FX_DELEG_NB - 1;
    cert_sign(&c, leader);
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_CERT_EXPIRED);
    /* Outlives the delegation. */
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_WORKER, leader);
    c.not_after_ms = FX_DELEG_NA + 1;
    cert_sign(&c, leader);
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_CERT_EXPIRED);
    /* Exactly the delegation's window is fine. */
    fx_cert_make(f, &c, &f->w[FX_W0].keys, ROLE_WORKER, leader);
    c.not_before_ms = FX_DELEG_NB;
    c.not_after_ms = FX_DELEG_NA;
    cert_sign(&c, leader);
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_OK);
}

static void test_delegation_foreign_or_bad_measurement(void **state)
{
    struct fx *f = *state;
    struct delegation d = f->deleg;
    memcpy(d.capsule, f->other.name, HASH_SIZE);
    deleg_sign(&d, &f->owner);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_ERR_CERT_FOREIGN);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_CERT_FOREIGN);

    d = f->deleg;
    memcpy(d.measurement, f->other_measurement, HASH_SIZE);
    deleg_sign(&d, &f->owner);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_ERR_CERT_MEASUREMENT);
    want_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW, PSL_ERR_CERT_MEASUREMENT);
}

/* ---- signatures ---- */

static void test_bad_signature(void **state)
{
    struct fx *f = *state;
    struct writer_cert c = f->w[FX_W0].cert;
    c.sig[17] ^= 0x04;
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* Fields changed after signing. */
    c = f->w[FX_W0].cert;
    c.serial++;
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    c = f->w[FX_W0].cert;
    c.role = ROLE_LEADER; /* a worker promoting itself */
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    c = f->w[FX_W0].cert;
    c.not_after_ms += 1;
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* Another writer's key under this certificate's signature. */
    c = f->w[FX_W0].cert;
    memcpy(c.sign_pk, f->w[FX_W1].keys.sign.pk, SIGN_PK_SIZE);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* Leader-issued, tampered. */
    c = f->w[FX_DELEGATED].cert;
    c.kx_pk[0] ^= 1;
    want_verify(&c, &f->deleg, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
}

static void test_every_flipped_bit_fails(void **state)
{
    struct fx *f = *state;
    uint8_t good[CERT_SIZE];
    cert_encode(&f->w[FX_W0].cert, good);
    for (size_t bit = 0; bit < CERT_SIZE * 8; bit++) {
        uint8_t buf[CERT_SIZE];
        memcpy(buf, good, sizeof buf);
        tu_flip(buf, bit);
        struct writer_cert c;
        if (cert_decode(&c, buf, sizeof buf) != PSL_OK)
            continue;
        if (cert_verify(&c, NULL, &f->meta, FX_NOW) == PSL_OK)
            fail_msg("certificate with bit %zu flipped verifies", bit);
    }
    uint8_t dgood[DELEG_SIZE];
    deleg_encode(&f->deleg, dgood);
    for (size_t bit = 0; bit < DELEG_SIZE * 8; bit++) {
        uint8_t buf[DELEG_SIZE];
        memcpy(buf, dgood, sizeof buf);
        tu_flip(buf, bit);
        struct delegation d;
        if (deleg_decode(&d, buf, sizeof buf) != PSL_OK)
            continue;
        if (cert_verify(&f->w[FX_DELEGATED].cert, &d, &f->meta, FX_NOW) == PSL_OK)
            fail_msg("delegation with bit %zu flipped verifies", bit);
    }
}

/* ---- decoding ---- */

static void want_cert_decode(const uint8_t *buf, size_t size, psl_err want)
{
    struct writer_cert c, before;
    memset(&c, 0x3c, sizeof c);
    before = c;
    psl_err got = cert_decode(&c, buf, size);
    if (got != want)
        fail_msg("cert_decode: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK)
        assert_memory_equal(&c, &before, sizeof c);
}

static void test_cert_decode_rejects(void **state)
{
    struct fx *f = *state;
    uint8_t good[CERT_SIZE + 1];
    cert_encode(&f->w[FX_W0].cert, good);
    good[CERT_SIZE] = 0;
    uint8_t buf[CERT_SIZE + 1];

    for (size_t n = 0; n < CERT_SIZE; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, good, n);
        want_cert_decode(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
    want_cert_decode(good, CERT_SIZE + 1, PSL_ERR_TRAILING);

    memcpy(buf, good, CERT_SIZE);
    buf[0] = 'X';
    want_cert_decode(buf, CERT_SIZE, PSL_ERR_BAD_MAGIC);
    memcpy(buf, good, CERT_SIZE);
    buf[1] = 'S' ^ 1;
    want_cert_decode(buf, CERT_SIZE, PSL_ERR_BAD_MAGIC);
    memcpy(buf, good, CERT_SIZE);
    buf[4] = CERT_VERSION + 1;
    want_cert_decode(buf, CERT_SIZE, PSL_ERR_BAD_VERSION);
    memcpy(buf, good, CERT_SIZE);
    buf[4] = 0;
    want_cert_decode(buf, CERT_SIZE, PSL_ERR_BAD_VERSION);

    static const uint8_t bad_roles[] = {0, ROLE_LEADER + 1, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad_roles; i++) {
        memcpy(buf, good, CERT_SIZE);
        buf[5] = bad_roles[i];
        want_cert_decode(buf, CERT_SIZE, PSL_ERR_CERT_ROLE);
    }
    for (uint8_t role = ROLE_WORKER; role <= ROLE_LEADER; role++) {
        memcpy(buf, good, CERT_SIZE);
        buf[5] = role;
        want_cert_decode(buf, CERT_SIZE, PSL_OK);
    }
    /* An unknown role in a struct (not from the decoder) is refused by verify as well. */
    struct writer_cert c = f->w[FX_W0].cert;
    c.role = 9;
    cert_sign(&c, &f->owner);
    want_verify(&c, NULL, &f->meta, FX_NOW, PSL_ERR_CERT_ROLE);
}

static void test_deleg_round_trip_and_decode(void **state)
{
    struct fx *f = *state;
    uint8_t good[DELEG_SIZE + 1];
    deleg_encode(&f->deleg, good);
    good[DELEG_SIZE] = 0;
    assert_memory_equal(good, "PSLD", 4);
    struct delegation d;
    assert_int_equal(deleg_decode(&d, good, DELEG_SIZE), PSL_OK);
    assert_int_equal(d.roles_mask, f->deleg.roles_mask);
    assert_memory_equal(d.capsule, f->deleg.capsule, HASH_SIZE);
    assert_memory_equal(d.leader_pk, f->deleg.leader_pk, SIGN_PK_SIZE);
    assert_memory_equal(d.measurement, f->deleg.measurement, HASH_SIZE);
    assert_true(d.not_before_ms == FX_DELEG_NB && d.not_after_ms == FX_DELEG_NA);
    assert_true(d.serial == 7);
    assert_memory_equal(d.sig, f->deleg.sig, SIGN_SIG_SIZE);
    assert_int_equal(deleg_verify(&d, &f->meta, FX_NOW), PSL_OK);

    struct delegation untouched;
    memset(&untouched, 0x77, sizeof untouched);
    d = untouched;
    for (size_t n = 0; n < DELEG_SIZE; n++)
        assert_int_equal(deleg_decode(&d, good, n), PSL_ERR_TRUNCATED);
    assert_int_equal(deleg_decode(&d, good, DELEG_SIZE + 1), PSL_ERR_TRAILING);
    uint8_t buf[DELEG_SIZE];
    memcpy(buf, good, DELEG_SIZE);
    buf[3] = 'C'; /* a certificate's magic */
    assert_int_equal(deleg_decode(&d, buf, DELEG_SIZE), PSL_ERR_BAD_MAGIC);
    memcpy(buf, good, DELEG_SIZE);
    buf[4] = 2;
    assert_int_equal(deleg_decode(&d, buf, DELEG_SIZE), PSL_ERR_BAD_VERSION);
    memcpy(buf, good, DELEG_SIZE);
    buf[5] = 0x01; /* bit 0 is no role */
    assert_int_equal(deleg_decode(&d, buf, DELEG_SIZE), PSL_ERR_CERT_ROLE);
    buf[5] = (uint8_t)(ROLE_MASK_ALL | 0x20);
    assert_int_equal(deleg_decode(&d, buf, DELEG_SIZE), PSL_ERR_CERT_ROLE);
    assert_memory_equal(&d, &untouched, sizeof d);
    /* A certificate is not a delegation, nor the other way round. */
    uint8_t cbuf[CERT_SIZE];
    cert_encode(&f->w[FX_W0].cert, cbuf);
    assert_int_equal(deleg_decode(&d, cbuf, DELEG_SIZE), PSL_ERR_BAD_MAGIC);
    struct writer_cert c;
    assert_int_equal(cert_decode(&c, good, DELEG_SIZE), PSL_ERR_TRUNCATED);
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(role_name(ROLE_WORKER), "worker");
    assert_string_equal(role_name(ROLE_COORDINATOR), "coordinator");
    assert_string_equal(role_name(ROLE_COMPACTOR), "compactor");
    assert_string_equal(role_name(ROLE_LEADER), "leader");
    assert_string_equal(role_name(0), "?");
    assert_string_equal(role_name(5), "?");
    assert_int_equal(ROLE_MASK_ALL, 0x1e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_owner_issued_verifies, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_encode_decode_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_capsule, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_validity_window, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_measurement_not_in_policy, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_issuer_not_owner_nor_delegated, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_leader_issued_verifies, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_leader_issued_without_delegation, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_delegation_role_not_allowed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delegation_signed_by_non_owner, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delegation_expired, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cert_window_outside_delegation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delegation_foreign_or_bad_measurement, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_signature, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_every_flipped_bit_fails, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cert_decode_rejects, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_deleg_round_trip_and_decode, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_role_names, NULL, NULL),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
