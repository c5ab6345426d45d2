/* test_vectors.c: known-answer vectors of every encoding (the .hex files in tests/vectors).
 * For each vector: the committed bytes equal what the code produces from the fixed keys (byte
 * exact), decoding gives the fields back, verification passes, and flipping any single bit of
 * it (every bit position) makes verification fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"
#include "vectors.h"

static struct vec_keys *K;

static int setup(void **state)
{
    (void)state;
    tu_init();
    K = malloc(sizeof *K);
    vec_build(K);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vec_free(K);
    free(K);
    return 0;
}

static uint8_t *load(const char *name, size_t *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.hex", PSL_VECTOR_DIR, name);
    return tu_read_hex(path, size);
}

static const struct writer_cert *cert_of(const uint8_t writer[HASH_SIZE])
{
    const struct writer_cert *certs[] = {&K->cert_a, &K->cert_b, &K->cert_coord};
    for (int i = 0; i < 3; i++)
        if (!memcmp(certs[i]->writer_id, writer, HASH_SIZE))
            return certs[i];
    return NULL;
}

static const struct aead_key *key_of(const uint8_t writer[HASH_SIZE])
{
    const struct writer_keys *wks[] = {&K->worker_a, &K->worker_b, &K->coord};
    for (int i = 0; i < 3; i++)
        if (!memcmp(wks[i]->writer_id, writer, HASH_SIZE))
            return &wks[i]->aead;
    return NULL;
}

/* The hash of the committed record vector of (writer, seq), if any. */
static bool prev_of(const uint8_t writer[HASH_SIZE], uint64_t seq, uint8_t out[HASH_SIZE])
{
    for (size_t i = 0; i < K->count; i++) {
        if (strncmp(K->v[i].name, "record_", 7) != 0)
            continue;
        struct record_view v;
        if (record_parse(&v, K->v[i].bytes, K->v[i].size) == PSL_OK && v.h.seq == seq &&
            !memcmp(v.h.writer, writer, HASH_SIZE)) {
            memcpy(out, v.hash, HASH_SIZE);
            return true;
        }
    }
    return false;
}

/* Full decode and verification of one vector, as a receiver would do it. */
static psl_err verify_vec(const char *name, const uint8_t *b, size_t n)
{
    psl_err err;
    if (!strcmp(name, "meta")) {
        struct capsule_meta m;
        return meta_decode(&m, b, n);
    }
    if (!strcmp(name, "delegation")) {
        struct delegation d;
        if ((err = deleg_decode(&d, b, n)))
            return err;
        return deleg_verify(&d, &K->meta, VEC_NOW_MS);
    }
    if (!strncmp(name, "cert_", 5)) {
        struct writer_cert c;
        if ((err = cert_decode(&c, b, n)))
            return err;
        return cert_verify(&c, &K->deleg, &K->meta, VEC_NOW_MS);
    }
    if (!strcmp(name, "ack")) {
        struct ack a;
        if ((err = ack_decode(&a, b, n)) || (err = ack_verify(&a, &K->meta)))
            return err;
        /* and the MAC, as the writer (worker a) checks it */
        struct ack_keys ks;
        int idx;
        if ((err = ack_keys_init(&ks, &K->worker_a.kx, &K->meta)))
            return err;
        err = ack_verify_mac(&a, &K->meta, &ks, &idx);
        ack_keys_free(&ks);
        return err;
    }
    if (!strcmp(name, "data_payload")) {
        struct kv_op ops[8];
        size_t count;
        return data_decode(b, n, ops, 8, &count);
    }
    struct record_view v;
    if ((err = record_parse(&v, b, n)))
        return err;
    if (v.h.type == REC_CERT) {
        struct writer_cert c;
        return record_check_cert(&v, &K->meta, VEC_NOW_MS, &c);
    }
    uint8_t prev[HASH_SIZE];
    bool has_prev = prev_of(v.h.writer, v.h.seq - 1, prev);
    if ((err = record_check(&v, &K->meta, cert_of(v.h.writer), VEC_NOW_MS, has_prev ? prev : NULL)))
        return err;
    uint8_t plain[VEC_BUF_SIZE];
    size_t plain_size;
    if (v.h.payload_size > sizeof plain)
        return PSL_ERR_TOO_LARGE;
    if ((err = record_open(&v, key_of(v.h.writer), plain, sizeof plain, &plain_size)))
        return err;
    if (v.h.type == REC_DATA) {
        struct kv_op ops[8];
        size_t count;
        return data_decode(plain, plain_size, ops, 8, &count);
    }
    return PSL_OK;
}

static void test_bytes_exact(void **state)
{
    (void)state;
    assert_int_equal(K->count, 17);
    for (size_t i = 0; i < K->count; i++) {
        size_t n;
        uint8_t *b = load(K->v[i].name, &n);
        if (n != K->v[i].size || memcmp(b, K->v[i].bytes, n) != 0)
            fail_msg("vector %s: encoding differs from the committed bytes", K->v[i].name);
        free(b);
    }
}

static void test_verify_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < K->count; i++) {
        size_t n;
        uint8_t *b = load(K->v[i].name, &n);
        psl_err err = verify_vec(K->v[i].name, b, n);
        if (err)
            fail_msg("vector %s does not verify: %s", K->v[i].name, psl_err_name(err));
        free(b);
    }
}

static void test_every_bit_flip_fails(void **state)
{
    (void)state;
    for (size_t i = 0; i < K->count; i++) {
        const char *name = K->v[i].name;
        if (!strcmp(name, "data_payload"))
            continue; /* plaintext inside a record: authenticated by the record, not alone */
        size_t n;
        uint8_t *b = load(name, &n);
        for (size_t bit = 0; bit < n * 8; bit++) {
            tu_flip(b, bit);
            if (verify_vec(name, b, n) == PSL_OK)
                fail_msg("vector %s: flipping bit %zu still verifies", name, bit);
            tu_flip(b, bit);
        }
        assert_int_equal(verify_vec(name, b, n), PSL_OK);
        free(b);
    }
}

static void test_meta_fields(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("meta", &n);
    struct capsule_meta m;
    assert_int_equal(meta_decode(&m, b, n), PSL_OK);
    assert_memory_equal(m.name, K->meta.name, HASH_SIZE);
    uint8_t body_hash[HASH_SIZE];
    hash_sha256(body_hash, b, n - SIGN_SIG_SIZE);
    assert_memory_equal(m.name, body_hash, HASH_SIZE);
    assert_memory_equal(m.owner_pk, K->owner.pk, SIGN_PK_SIZE);
    assert_int_equal(m.created_ms, VEC_CREATED_MS);
    assert_int_equal(m.label_size, 23);
    assert_memory_equal(m.label, "psl test vector capsule", 23);
    assert_int_equal(m.quorum_k, 2);
    assert_int_equal(m.replica_count, 3);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(m.replicas[i], K->server[i].pk, SIGN_PK_SIZE);
    assert_int_equal(m.measurement_count, 1);
    assert_memory_equal(m.measurements[0], K->meta.measurements[0], HASH_SIZE);
    assert_int_equal(m.retention, RETENTION_KEEP_ALL);
    free(b);
}

static void test_cert_fields(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("cert_leader", &n);
    struct writer_cert c;
    assert_int_equal(cert_decode(&c, b, n), PSL_OK);
    assert_int_equal(c.role, ROLE_WORKER);
    assert_memory_equal(c.capsule, K->meta.name, HASH_SIZE);
    assert_memory_equal(c.sign_pk, K->worker_b.sign.pk, SIGN_PK_SIZE);
    assert_memory_equal(c.kx_pk, K->worker_b.kx.pk, KX_PK_SIZE);
    assert_memory_equal(c.writer_id, K->worker_b.writer_id, HASH_SIZE);
    assert_memory_equal(c.issuer_pk, K->leader.pk, SIGN_PK_SIZE);
    assert_int_equal(c.not_before_ms, VEC_NOT_BEFORE_MS);
    assert_int_equal(c.not_after_ms, VEC_NOT_AFTER_MS);
    assert_int_equal(c.serial, 2);
    /* A leader-issued certificate needs the delegation. */
    assert_int_equal(cert_verify(&c, NULL, &K->meta, VEC_NOW_MS), PSL_ERR_CERT_ISSUER);
    free(b);

    b = load("delegation", &n);
    struct delegation d;
    assert_int_equal(deleg_decode(&d, b, n), PSL_OK);
    assert_int_equal(d.roles_mask, ROLE_BIT(ROLE_WORKER));
    assert_memory_equal(d.leader_pk, K->leader.pk, SIGN_PK_SIZE);
    assert_int_equal(d.serial, 7);
    free(b);
}

static void test_record_fields(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("record_data", &n);
    struct record_view v;
    assert_int_equal(record_parse(&v, b, n), PSL_OK);
    assert_int_equal(v.h.type, REC_DATA);
    assert_int_equal(v.h.flags, 0);
    assert_int_equal(v.h.seq, 2);
    assert_int_equal(v.h.lamport, 8);
    assert_memory_equal(v.h.capsule, K->meta.name, HASH_SIZE);
    assert_memory_equal(v.h.writer, K->worker_a.writer_id, HASH_SIZE);
    uint8_t prev[HASH_SIZE], zero[HASH_SIZE] = {0};
    assert_true(prev_of(v.h.writer, 1, prev));
    assert_memory_equal(v.h.prev, prev, HASH_SIZE);
    assert_memory_equal(v.h.sync, zero, HASH_SIZE);
    /* Record hash = SHA-256(header || payload). */
    uint8_t h[HASH_SIZE];
    hash_sha256(h, b, PSL_RECORD_HEADER_SIZE + v.h.payload_size);
    assert_memory_equal(v.hash, h, HASH_SIZE);
    /* The payload is ciphertext: the plaintext bytes do not appear in the record. */
    size_t pn;
    uint8_t *plain_vec = load("data_payload", &pn);
    assert_int_equal(v.h.payload_size, pn + AEAD_TAG_SIZE);
    assert_true(memcmp(v.payload, plain_vec, pn) != 0);
    uint8_t plain[VEC_BUF_SIZE];
    size_t plain_size;
    assert_int_equal(record_open(&v, &K->worker_a.aead, plain, sizeof plain, &plain_size), PSL_OK);
    assert_int_equal(plain_size, pn);
    assert_memory_equal(plain, plain_vec, pn);
    struct kv_op ops[8], want[3];
    size_t count;
    assert_int_equal(data_decode(plain, plain_size, ops, 8, &count), PSL_OK);
    assert_int_equal(count, vec_data_ops(want));
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(ops[i].op, want[i].op);
        assert_int_equal(ops[i].lamport, want[i].lamport);
        assert_int_equal(ops[i].key_size, want[i].key_size);
        assert_memory_equal(ops[i].key, want[i].key, want[i].key_size);
        assert_int_equal(ops[i].value_size, want[i].value_size);
        if (want[i].value_size)
            assert_memory_equal(ops[i].value, want[i].value, want[i].value_size);
    }
    free(plain_vec);
    free(b);

    /* The SYNC lists both workers' heads; the HEAD record after it links to it. */
    b = load("record_sync", &n);
    assert_int_equal(record_parse(&v, b, n), PSL_OK);
    uint8_t sync_hash[HASH_SIZE];
    memcpy(sync_hash, v.hash, HASH_SIZE);
    struct cut_head heads[4];
    uint64_t epoch;
    assert_int_equal(cut_decode(v.payload, v.h.payload_size, &epoch, heads, 4, &count), PSL_OK);
    assert_int_equal(epoch, 1);
    assert_int_equal(count, 2);
    assert_memory_equal(heads[0].writer, K->worker_a.writer_id, HASH_SIZE);
    assert_int_equal(heads[0].seq, 3);
    free(b);
    b = load("record_head", &n);
    assert_int_equal(record_parse(&v, b, n), PSL_OK);
    assert_memory_equal(v.h.sync, sync_hash, HASH_SIZE);
    free(b);

    b = load("ack", &n);
    struct ack a;
    assert_int_equal(ack_decode(&a, b, n), PSL_OK);
    assert_int_equal(a.seq, 2);
    assert_memory_equal(a.server_pk, K->server[1].pk, SIGN_PK_SIZE);
    assert_memory_equal(a.writer, K->worker_a.writer_id, HASH_SIZE);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_exact),   cmocka_unit_test(test_verify_all),
        cmocka_unit_test(test_meta_fields),   cmocka_unit_test(test_cert_fields),
        cmocka_unit_test(test_record_fields), cmocka_unit_test(test_every_bit_flip_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
