/* test_record.c: unit tests of capsule records (src/capsule/record.c): sealing, parsing,
 * verification and opening, and a negative test for every check of DESIGN §3.3 in its order:
 * header limits, framing, capsule name, writer certificate, signature, prev link, decryption.
 * A failed verification must release no plaintext, and every verification error collapses to
 * PSL_ERR_AUTH for a peer. */
#include "capsule_fixture.h"

/* Header field offsets (record.h). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_TYPE = 5,
    OFF_FLAGS = 6,
    OFF_PAYLOAD_SIZE = 8,
    OFF_CAPSULE = 12,
    OFF_WRITER = 44,
    OFF_SEQ = 76,
    OFF_LAMPORT = 84,
    OFF_PREV = 92,
    OFF_SYNC = 124,
};

static const char plain_text[] = "the same plaintext, twice: nonces must differ";

/* A writer's CERT record followed by one DATA record, both of writer FX_W0. */
struct two {
    uint8_t *cert;
    size_t cert_size;
    uint8_t cert_hash[HASH_SIZE];
    uint8_t *data;
    size_t data_size;
    uint8_t data_hash[HASH_SIZE];
};

static void two_make(struct fx *f, struct two *t)
{
    t->cert = fx_seal_cert(f, &f->w[FX_W0], &t->cert_size, t->cert_hash);
    t->data = fx_seal_data(&f->w[FX_W0], 3, 1, &t->data_size, t->data_hash);
}

static void two_free(struct two *t)
{
    free(t->cert);
    free(t->data);
}

static void want_parse(const uint8_t *buf, size_t size, psl_err want)
{
    struct record_view v;
    psl_err got = record_parse(&v, buf, size);
    if (got != want)
        fail_msg("record_parse: got %s, want %s", psl_err_name(got), psl_err_name(want));
}

/* Parses a copy of rec with one byte set, and expects want. */
static void want_parse_with_byte(const uint8_t *rec, size_t size, size_t off, uint8_t val,
                                 psl_err want)
{
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    memcpy(buf, rec, size);
    buf[off] = val;
    want_parse(buf, size, want);
    free(buf);
}

static psl_err parse_and_check(const uint8_t *buf, size_t size, const struct capsule_meta *m,
                               const struct writer_cert *cert, uint64_t now,
                               const uint8_t *prev_known)
{
    struct record_view v;
    psl_err err = record_parse(&v, buf, size);
    if (err)
        return err;
    return record_check(&v, m, cert, now, prev_known);
}

static void want_check(const uint8_t *buf, size_t size, const struct capsule_meta *m,
                       const struct writer_cert *cert, uint64_t now, const uint8_t *prev_known,
                       psl_err want)
{
    psl_err got = parse_and_check(buf, size, m, cert, now, prev_known);
    if (got != want)
        fail_msg("record_check: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK) {
        assert_true(psl_err_is_auth(got));
        assert_int_equal(psl_err_outward(got), PSL_ERR_AUTH);
    }
}

static void want_check_cert(const uint8_t *buf, size_t size, const struct capsule_meta *m,
                            uint64_t now, psl_err want)
{
    struct record_view v;
    assert_int_equal(record_parse(&v, buf, size), PSL_OK);
    struct writer_cert out, before;
    memset(&out, 0x6b, sizeof out);
    before = out;
    psl_err got = record_check_cert(&v, m, now, &out);
    if (got != want)
        fail_msg("record_check_cert: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK)
        assert_memory_equal(&out, &before, sizeof out);
}

/* ---- round trips ---- */

static void test_round_trip_every_type(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w = &f->w[FX_W0];
    uint8_t plain[200];
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (uint8_t)(i * 7 + 1);

    for (uint8_t type = REC_DATA; type <= REC_TYPE_MAX; type++) {
        record_chain_init(&w->chain, f->meta.name);
        size_t cert_size, size;
        uint8_t cert_hash[HASH_SIZE], hash[HASH_SIZE];
        uint8_t *cert = fx_seal_cert(f, w, &cert_size, cert_hash);

        /* The CERT record carries the certificate; verifying it yields that certificate. */
        struct record_view cv;
        assert_int_equal(record_parse(&cv, cert, cert_size), PSL_OK);
        assert_int_equal(cv.h.type, REC_CERT);
        assert_true(cv.h.seq == 1);
        assert_memory_equal(cv.hash, cert_hash, HASH_SIZE);
        struct writer_cert got;
        assert_int_equal(record_check_cert(&cv, &f->meta, FX_NOW, &got), PSL_OK);
        assert_memory_equal(got.writer_id, w->keys.writer_id, HASH_SIZE);
        assert_memory_equal(got.sig, w->cert.sig, SIGN_SIG_SIZE);
        assert_int_equal(got.role, ROLE_WORKER);

        uint8_t *rec = fx_seal(w, type, plain, sizeof plain, &size, hash);
        bool enc = record_type_is_encrypted(type);
        assert_int_equal(size, PSL_RECORD_HEADER_SIZE + sizeof plain + (enc ? AEAD_TAG_SIZE : 0) +
                                   PSL_RECORD_SIG_SIZE);
        struct record_view v;
        assert_int_equal(record_parse(&v, rec, size), PSL_OK);
        assert_int_equal(v.h.type, type);
        assert_int_equal(v.h.flags, 0);
        assert_int_equal(v.h.payload_size, sizeof plain + (enc ? AEAD_TAG_SIZE : 0));
        assert_memory_equal(v.h.capsule, f->meta.name, HASH_SIZE);
        assert_memory_equal(v.h.writer, w->keys.writer_id, HASH_SIZE);
        assert_true(v.h.seq == 2);
        assert_true(v.h.lamport == 2);
        assert_memory_equal(v.h.prev, cert_hash, HASH_SIZE);
        assert_ptr_equal(v.raw, rec);
        assert_int_equal(v.raw_size, size);
        assert_ptr_equal(v.payload, rec + PSL_RECORD_HEADER_SIZE);
        assert_ptr_equal(v.sig, rec + PSL_RECORD_HEADER_SIZE + v.h.payload_size);

        /* record hash = SHA-256(header || payload), signed under the record tag. */
        uint8_t want_hash[HASH_SIZE];
        hash_sha256(want_hash, rec, PSL_RECORD_HEADER_SIZE + v.h.payload_size);
        assert_memory_equal(v.hash, want_hash, HASH_SIZE);
        assert_memory_equal(hash, want_hash, HASH_SIZE);
        assert_true(sign_verify_tagged(w->keys.sign.pk, v.sig, "psl-rec-v1", want_hash));

        /* Encrypted types do not carry the plaintext; plaintext types carry it as is. */
        if (enc)
            assert_memory_not_equal(v.payload, plain, sizeof plain);
        else
            assert_memory_equal(v.payload, plain, sizeof plain);

        assert_int_equal(record_check(&v, &f->meta, &w->cert, FX_NOW, cert_hash), PSL_OK);
        assert_int_equal(record_check(&v, &f->meta, &w->cert, FX_NOW, NULL), PSL_OK);
        uint8_t out[sizeof plain];
        size_t out_size = 0;
        assert_int_equal(record_open(&v, &w->keys.aead, out, sizeof out, &out_size), PSL_OK);
        assert_int_equal(out_size, sizeof plain);
        assert_memory_equal(out, plain, sizeof plain);
        free(rec);
        free(cert);
    }
}

static void test_round_trip_plaintext_only_writer(void **state)
{
    struct fx *f = *state;
    /* A writer without a capsule key may write public types; it cannot seal encrypted ones. */
    struct writer_keys wk;
    fx_writer_keys(&wk, FX_W1, NULL);
    assert_null(wk.aead.hd);
    struct record_header h = {.type = REC_HEAD, .seq = 2, .lamport = 5};
    memcpy(h.capsule, f->meta.name, HASH_SIZE);
    memset(h.prev, 0xab, HASH_SIZE);
    uint8_t pl[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t size;
    uint8_t *rec = fx_seal_hdr(&wk, &h, pl, sizeof pl, &size, NULL);
    want_check(rec, size, &f->meta, &f->w[FX_W1].cert, FX_NOW, h.prev, PSL_OK);
    struct record_view v;
    assert_int_equal(record_parse(&v, rec, size), PSL_OK);
    uint8_t out[8];
    size_t n = 0;
    assert_int_equal(record_open(&v, NULL, out, sizeof out, &n), PSL_OK);
    assert_int_equal(n, 8);
    assert_memory_equal(out, pl, 8);
    free(rec);

    static const uint8_t enc_types[] = {REC_DATA, REC_LSM_BLOCK, REC_LSM_INDEX};
    for (size_t i = 0; i < sizeof enc_types; i++) {
        h.type = enc_types[i];
        uint8_t buf[PSL_RECORD_HEADER_SIZE + 8 + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE];
        size_t out_size = 999;
        uint8_t hash[HASH_SIZE];
        assert_int_equal(record_seal(&wk, &h, buf, sizeof buf, 8, &out_size, hash),
                         PSL_ERR_INVALID_ARG);
        assert_int_equal(out_size, 999);
    }
    writer_keys_deinit(&wk);
}

static void test_empty_payloads(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w = &f->w[FX_W0];
    size_t cs, s1, s2;
    uint8_t ch[HASH_SIZE], h1[HASH_SIZE];
    uint8_t *cert = fx_seal_cert(f, w, &cs, ch);
    /* An empty encrypted payload is just the tag; an empty plaintext payload is nothing. */
    uint8_t *data = fx_seal(w, REC_DATA, NULL, 0, &s1, h1);
    uint8_t *res = fx_seal(w, REC_RESULT, NULL, 0, &s2, NULL);
    assert_int_equal(s1, PSL_RECORD_HEADER_SIZE + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE);
    assert_int_equal(s2, PSL_RECORD_HEADER_SIZE + PSL_RECORD_SIG_SIZE);
    want_check(data, s1, &f->meta, &w->cert, FX_NOW, ch, PSL_OK);
    want_check(res, s2, &f->meta, &w->cert, FX_NOW, h1, PSL_OK);
    struct record_view v;
    assert_int_equal(record_parse(&v, data, s1), PSL_OK);
    uint8_t out[1];
    size_t n = 77;
    assert_int_equal(record_open(&v, &w->keys.aead, out, 0, &n), PSL_OK);
    assert_int_equal(n, 0);
    free(cert);
    free(data);
    free(res);
}

static void test_chain_seal_links(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w = &f->w[FX_W1];
    size_t s1, s2, s3;
    uint8_t h1[HASH_SIZE], h2[HASH_SIZE], h3[HASH_SIZE];
    uint8_t *r1 = fx_seal_cert(f, w, &s1, h1);
    uint8_t *r2 = fx_seal_data(w, 2, 9, &s2, h2);
    uint8_t sync[HASH_SIZE];
    memset(sync, 0x5c, sizeof sync);
    memcpy(w->chain.sync, sync, HASH_SIZE);
    uint8_t *r3 = fx_seal_head(w, 1234, &s3, h3);
    struct record_view v1, v2, v3;
    assert_int_equal(record_parse(&v1, r1, s1), PSL_OK);
    assert_int_equal(record_parse(&v2, r2, s2), PSL_OK);
    assert_int_equal(record_parse(&v3, r3, s3), PSL_OK);
    static const uint8_t zero[HASH_SIZE];
    assert_memory_equal(v1.h.prev, zero, HASH_SIZE);
    assert_memory_equal(v1.h.sync, zero, HASH_SIZE);
    assert_true(v2.h.seq == 2 && v3.h.seq == 3);
    assert_memory_equal(v2.h.prev, h1, HASH_SIZE);
    assert_memory_equal(v3.h.prev, h2, HASH_SIZE);
    assert_memory_equal(v3.h.sync, sync, HASH_SIZE);
    want_check(r3, s3, &f->meta, &w->cert, FX_NOW, h2, PSL_OK);

    /* A failed seal leaves the chain where it was. */
    uint8_t small[PSL_RECORD_HEADER_SIZE + 8];
    size_t size = 0;
    uint8_t hash[HASH_SIZE];
    assert_int_equal(
        record_chain_seal(&w->chain, &w->keys, REC_HEAD, 4, small, sizeof small, 8, &size, hash),
        PSL_ERR_INVALID_ARG);
    assert_true(w->chain.seq == 3);
    assert_memory_equal(w->chain.head, h3, HASH_SIZE);
    free(r1);
    free(r2);
    free(r3);
}

/* ---- step 1: header limits ---- */

static void test_header_limits(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    const uint8_t *r = t.data;
    size_t n = t.data_size;
    want_parse(r, n, PSL_OK);

    want_parse_with_byte(r, n, OFF_MAGIC, 'X', PSL_ERR_BAD_MAGIC);
    want_parse_with_byte(r, n, OFF_MAGIC + 3, 'A', PSL_ERR_BAD_MAGIC); /* "PSLA": an ack */
    want_parse_with_byte(r, n, OFF_VERSION, 0, PSL_ERR_BAD_VERSION);
    want_parse_with_byte(r, n, OFF_VERSION, RECORD_VERSION + 1, PSL_ERR_BAD_VERSION);
    want_parse_with_byte(r, n, OFF_TYPE, 0, PSL_ERR_BAD_TYPE);
    want_parse_with_byte(r, n, OFF_TYPE, REC_TYPE_MAX + 1, PSL_ERR_BAD_TYPE);
    want_parse_with_byte(r, n, OFF_TYPE, 0xff, PSL_ERR_BAD_TYPE);
    want_parse_with_byte(r, n, OFF_FLAGS, 1, PSL_ERR_MALFORMED);
    want_parse_with_byte(r, n, OFF_FLAGS + 1, 0x80, PSL_ERR_MALFORMED);

    /* payload_size over the limit, whatever the bytes that follow. */
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    memcpy(buf, r, n);
    put_le32(buf + OFF_PAYLOAD_SIZE, PSL_RECORD_PAYLOAD_SIZE_MAX + 1);
    want_parse(buf, n, PSL_ERR_TOO_LARGE);
    put_le32(buf + OFF_PAYLOAD_SIZE, UINT32_MAX);
    want_parse(buf, n, PSL_ERR_TOO_LARGE);
    /* An encrypted payload shorter than its tag. */
    for (uint32_t p = 0; p < AEAD_TAG_SIZE; p++) {
        put_le32(buf + OFF_PAYLOAD_SIZE, p);
        want_parse(buf, n, PSL_ERR_TRUNCATED);
    }
    /* seq 0 and the reserved seq UINT64_MAX. */
    memcpy(buf, r, n);
    put_le64(buf + OFF_SEQ, 0);
    want_parse(buf, n, PSL_ERR_BAD_SEQ);
    put_le64(buf + OFF_SEQ, UINT64_MAX);
    want_parse(buf, n, PSL_ERR_BAD_SEQ);

    /* The first fault in check order wins: bad version before bad type, bad type before flags,
     * flags before payload size, payload size before seq. */
    memcpy(buf, r, n);
    buf[OFF_VERSION] = 9;
    buf[OFF_TYPE] = 0;
    want_parse(buf, n, PSL_ERR_BAD_VERSION);
    buf[OFF_VERSION] = RECORD_VERSION;
    buf[OFF_FLAGS] = 1;
    want_parse(buf, n, PSL_ERR_BAD_TYPE);
    buf[OFF_TYPE] = REC_DATA;
    put_le32(buf + OFF_PAYLOAD_SIZE, UINT32_MAX);
    want_parse(buf, n, PSL_ERR_MALFORMED);
    buf[OFF_FLAGS] = 0;
    put_le64(buf + OFF_SEQ, 0);
    want_parse(buf, n, PSL_ERR_TOO_LARGE);
    free(buf);

    /* A HEAD record (8-byte payload) relabelled as DATA: shorter than a tag. */
    size_t hs;
    uint8_t *head = fx_seal_head(&f->w[FX_W0], 42, &hs, NULL);
    want_parse(head, hs, PSL_OK);
    want_parse_with_byte(head, hs, OFF_TYPE, REC_DATA, PSL_ERR_TRUNCATED);
    want_parse_with_byte(head, hs, OFF_TYPE, REC_LSM_INDEX, PSL_ERR_TRUNCATED);
    free(head);

    /* record_header_decode alone: short input, and a good header. */
    struct record_header h;
    assert_int_equal(record_header_decode(&h, r, PSL_RECORD_HEADER_SIZE - 1), PSL_ERR_TRUNCATED);
    assert_int_equal(record_header_decode(&h, r, PSL_RECORD_HEADER_SIZE), PSL_OK);
    assert_true(h.seq == 2);
    two_free(&t);
}

static void test_header_seq_rules(void **state)
{
    struct fx *f = *state;
    const struct writer_keys *wk = &f->w[FX_W0].keys;
    uint8_t pl[1 + CERT_SIZE];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &f->w[FX_W0].cert, NULL);
    assert_int_equal(wr.err, PSL_OK);
    size_t size;

    /* seq 1 with a nonzero prev: nothing comes before a writer's first record. Signed, still
     * refused. */
    struct record_header h = {.type = REC_CERT, .seq = 1};
    memcpy(h.capsule, f->meta.name, HASH_SIZE);
    h.prev[31] = 1;
    uint8_t *rec = fx_seal_hdr(wk, &h, pl, sizeof pl, &size, NULL);
    want_parse(rec, size, PSL_ERR_BAD_PREV);
    free(rec);

    /* A CERT that is not the first record. */
    memset(h.prev, 0x11, HASH_SIZE);
    h.seq = 2;
    rec = fx_seal_hdr(wk, &h, pl, sizeof pl, &size, NULL);
    want_parse(rec, size, PSL_ERR_BAD_SEQ);
    free(rec);
    memset(h.prev, 0, HASH_SIZE);
    rec = fx_seal_hdr(wk, &h, pl, sizeof pl, &size, NULL);
    want_parse(rec, size, PSL_ERR_BAD_SEQ);
    free(rec);

    /* A first record that is not a CERT, for every other type. */
    for (uint8_t type = REC_DATA; type <= REC_TYPE_MAX; type++) {
        struct record_header d = {.type = type, .seq = 1};
        memcpy(d.capsule, f->meta.name, HASH_SIZE);
        rec = fx_seal_hdr(wk, &d, "abcdefgh", 8, &size, NULL);
        want_parse(rec, size, PSL_ERR_BAD_SEQ);
        free(rec);
    }
    /* record_chain_seal would do the same for a writer that starts without its CERT. */
    struct fx_writer *w = &f->w[FX_W1];
    rec = fx_seal_data(w, 1, 1, &size, NULL);
    want_parse(rec, size, PSL_ERR_BAD_SEQ);
    free(rec);

    /* Nonzero flags, properly signed: refused by the header check. */
    struct record_header g = {.type = REC_HEAD, .seq = 5, .flags = 1};
    memcpy(g.capsule, f->meta.name, HASH_SIZE);
    rec = fx_seal_hdr(wk, &g, "abcdefgh", 8, &size, NULL);
    want_parse(rec, size, PSL_ERR_MALFORMED);
    free(rec);
}

/* ---- step 1: framing ---- */

static void test_framing(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    /* Every proper prefix is truncated (exact-size copies, so ASan sees any over-read). */
    for (size_t n = 0; n < t.data_size; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, t.data, n);
        want_parse(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
    for (size_t n = 0; n < t.cert_size; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, t.cert, n);
        want_parse(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
    /* Trailing bytes. */
    uint8_t *p = malloc(t.data_size + 1);
    assert_non_null(p);
    memcpy(p, t.data, t.data_size);
    p[t.data_size] = 0;
    want_parse(p, t.data_size + 1, PSL_ERR_TRAILING);
    /* A payload_size that disagrees with the bytes present. */
    memcpy(p, t.data, t.data_size);
    put_le32(p + OFF_PAYLOAD_SIZE, get_le32(t.data + OFF_PAYLOAD_SIZE) + 1);
    want_parse(p, t.data_size, PSL_ERR_TRUNCATED);
    put_le32(p + OFF_PAYLOAD_SIZE, get_le32(t.data + OFF_PAYLOAD_SIZE) - 1);
    want_parse(p, t.data_size, PSL_ERR_TRAILING);
    free(p);

    /* Over the record size limit: refused before the header is looked at. */
    uint8_t *big = calloc(1, PSL_RECORD_SIZE_MAX + 1);
    assert_non_null(big);
    memcpy(big, t.data, t.data_size);
    want_parse(big, PSL_RECORD_SIZE_MAX + 1, PSL_ERR_TOO_LARGE);
    free(big);
    two_free(&t);
}

static void test_payload_at_limit(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w = &f->w[FX_W0];
    size_t cs;
    uint8_t ch[HASH_SIZE];
    uint8_t *cert = fx_seal_cert(f, w, &cs, ch);

    /* A plaintext type with the largest payload: the record is exactly PSL_RECORD_SIZE_MAX. */
    size_t cap = record_sealed_size(PSL_RECORD_PAYLOAD_SIZE_MAX + 1, REC_RESULT);
    uint8_t *buf = calloc(1, cap);
    assert_non_null(buf);
    size_t size = 0;
    uint8_t hash[HASH_SIZE];
    struct record_chain saved = w->chain;
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, REC_RESULT, 2, buf, cap,
                                       PSL_RECORD_PAYLOAD_SIZE_MAX, &size, hash),
                     PSL_OK);
    assert_int_equal(size, PSL_RECORD_SIZE_MAX);
    want_check(buf, size, &f->meta, &w->cert, FX_NOW, ch, PSL_OK);

    /* One byte more is refused, even with room in the buffer. */
    w->chain = saved;
    size = 0;
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, REC_RESULT, 2, buf, cap,
                                       PSL_RECORD_PAYLOAD_SIZE_MAX + 1, &size, hash),
                     PSL_ERR_TOO_LARGE);
    assert_int_equal(size, 0);
    /* For an encrypted type the tag counts toward the limit. */
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, REC_DATA, 2, buf, cap,
                                       PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE + 1, &size,
                                       hash),
                     PSL_ERR_TOO_LARGE);
    assert_true(w->chain.seq == 1);
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, REC_DATA, 2, buf, cap,
                                       PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE, &size, hash),
                     PSL_OK);
    assert_int_equal(size, PSL_RECORD_SIZE_MAX);
    want_check(buf, size, &f->meta, &w->cert, FX_NOW, ch, PSL_OK);

    /* A buffer one byte too small. */
    w->chain = saved;
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, REC_DATA, 2, buf,
                                       record_sealed_size(10, REC_DATA) - 1, 10, &size, hash),
                     PSL_ERR_INVALID_ARG);
    free(buf);
    free(cert);
}

/* ---- steps 2-5: capsule, writer, certificate, signature, prev ---- */

static void test_wrong_capsule(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    /* A good record of this capsule, checked against another capsule. */
    want_check(t.data, t.data_size, &f->other, &f->w[FX_W0].cert, FX_NOW, NULL,
               PSL_ERR_WRONG_CAPSULE);
    /* The same writer writing into another capsule's name. */
    struct fx_writer *w = &f->w[FX_W0];
    record_chain_init(&w->chain, f->other.name);
    w->chain.seq = 1;
    size_t size;
    uint8_t *rec = fx_seal_data(w, 1, 2, &size, NULL);
    want_check(rec, size, &f->meta, &w->cert, FX_NOW, NULL, PSL_ERR_WRONG_CAPSULE);
    /* The capsule is checked before the writer is looked up. */
    want_check(rec, size, &f->meta, NULL, FX_NOW, NULL, PSL_ERR_WRONG_CAPSULE);
    struct record_view v;
    assert_int_equal(record_parse(&v, t.cert, t.cert_size), PSL_OK);
    struct writer_cert c;
    assert_int_equal(record_check_cert(&v, &f->other, FX_NOW, &c), PSL_ERR_WRONG_CAPSULE);
    free(rec);
    two_free(&t);
}

static void test_cert_type_through_wrong_check(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    /* A caller's mistake (the wrong entry point), not an authentication failure. */
    assert_int_equal(
        parse_and_check(t.cert, t.cert_size, &f->meta, &f->w[FX_W0].cert, FX_NOW, NULL),
        PSL_ERR_BAD_TYPE);
    want_check_cert(t.data, t.data_size, &f->meta, FX_NOW, PSL_ERR_BAD_TYPE);
    two_free(&t);
}

static void test_unknown_writer(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    want_check(t.data, t.data_size, &f->meta, NULL, FX_NOW, NULL, PSL_ERR_UNKNOWN_WRITER);
    want_check(t.data, t.data_size, &f->meta, &f->w[FX_W1].cert, FX_NOW, NULL,
               PSL_ERR_UNKNOWN_WRITER);
    /* The writer is checked before the certificate's window and the signature. */
    want_check(t.data, t.data_size, &f->meta, &f->w[FX_W1].cert, FX_CERT_NA + 1, NULL,
               PSL_ERR_UNKNOWN_WRITER);
    two_free(&t);
}

static void test_cert_window_and_foreign(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    const struct writer_cert *c = &f->w[FX_W0].cert;
    want_check(t.data, t.data_size, &f->meta, c, FX_CERT_NB, NULL, PSL_OK);
    want_check(t.data, t.data_size, &f->meta, c, FX_CERT_NA, NULL, PSL_OK);
    want_check(t.data, t.data_size, &f->meta, c, FX_CERT_NB - 1, NULL, PSL_ERR_CERT_EXPIRED);
    want_check(t.data, t.data_size, &f->meta, c, FX_CERT_NA + 1, NULL, PSL_ERR_CERT_EXPIRED);
    /* Expiry is checked before the signature and the prev link. */
    uint8_t bad_prev[HASH_SIZE];
    memset(bad_prev, 0xee, sizeof bad_prev);
    want_check(t.data, t.data_size, &f->meta, c, FX_CERT_NA + 1, bad_prev, PSL_ERR_CERT_EXPIRED);

    struct writer_cert foreign = *c;
    memcpy(foreign.capsule, f->other.name, HASH_SIZE);
    want_check(t.data, t.data_size, &f->meta, &foreign, FX_NOW, NULL, PSL_ERR_CERT_FOREIGN);
    two_free(&t);
}

static void test_bad_signature(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    const struct writer_cert *c = &f->w[FX_W0].cert;
    uint8_t *buf = malloc(t.data_size);
    assert_non_null(buf);
    uint32_t payload = get_le32(t.data + OFF_PAYLOAD_SIZE);

    /* Every payload bit: the hash changes, so the signature fails. */
    for (size_t bit = 0; bit < payload * 8u; bit++) {
        memcpy(buf, t.data, t.data_size);
        tu_flip(buf + PSL_RECORD_HEADER_SIZE, bit);
        want_check(buf, t.data_size, &f->meta, c, FX_NOW, t.cert_hash, PSL_ERR_BAD_SIGNATURE);
    }
    /* Every signature bit. */
    for (size_t bit = 0; bit < PSL_RECORD_SIG_SIZE * 8; bit++) {
        memcpy(buf, t.data, t.data_size);
        tu_flip(buf + PSL_RECORD_HEADER_SIZE + payload, bit);
        want_check(buf, t.data_size, &f->meta, c, FX_NOW, t.cert_hash, PSL_ERR_BAD_SIGNATURE);
    }
    /* Header fields that no earlier check looks at: lamport, prev, sync. */
    static const size_t offs[] = {OFF_LAMPORT, OFF_LAMPORT + 7, OFF_PREV, OFF_SYNC + 31};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(buf, t.data, t.data_size);
        buf[offs[i]] ^= 0x10;
        want_check(buf, t.data_size, &f->meta, c, FX_NOW, NULL, PSL_ERR_BAD_SIGNATURE);
    }
    /* The signature is checked before the prev link. */
    memcpy(buf, t.data, t.data_size);
    buf[OFF_PREV] ^= 1;
    want_check(buf, t.data_size, &f->meta, c, FX_NOW, t.cert_hash, PSL_ERR_BAD_SIGNATURE);
    free(buf);
    two_free(&t);
}

static void test_every_bit_flip_is_caught(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    const struct writer_cert *c = &f->w[FX_W0].cert;
    uint8_t *buf = malloc(t.data_size);
    uint8_t *out = malloc(t.data_size);
    assert_non_null(buf);
    assert_non_null(out);
    for (size_t bit = 0; bit < t.data_size * 8; bit++) {
        memcpy(buf, t.data, t.data_size);
        tu_flip(buf, bit);
        struct record_view v;
        psl_err err = record_parse(&v, buf, t.data_size);
        if (!err)
            err = record_check(&v, &f->meta, c, FX_NOW, t.cert_hash);
        size_t n;
        if (!err)
            err = record_open(&v, &f->w[FX_W0].keys.aead, out, t.data_size, &n);
        if (err == PSL_OK)
            fail_msg("record with bit %zu flipped passed every check", bit);
    }
    free(out);
    free(buf);
    two_free(&t);
}

static void test_prev_link(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    const struct writer_cert *c = &f->w[FX_W0].cert;
    want_check(t.data, t.data_size, &f->meta, c, FX_NOW, t.cert_hash, PSL_OK);
    want_check(t.data, t.data_size, &f->meta, c, FX_NOW, NULL, PSL_OK);
    uint8_t other[HASH_SIZE];
    memcpy(other, t.cert_hash, HASH_SIZE);
    other[HASH_SIZE - 1] ^= 1;
    want_check(t.data, t.data_size, &f->meta, c, FX_NOW, other, PSL_ERR_BAD_PREV);
    /* The record's own hash is not its prev. */
    want_check(t.data, t.data_size, &f->meta, c, FX_NOW, t.data_hash, PSL_ERR_BAD_PREV);

    /* A correctly signed record whose prev names something else. */
    struct record_header h = {.type = REC_DATA, .seq = 2, .lamport = 2};
    memcpy(h.capsule, f->meta.name, HASH_SIZE);
    memset(h.prev, 0x42, HASH_SIZE);
    uint8_t pl[64];
    size_t pn = fx_data_plain(pl, sizeof pl, 1, 3);
    size_t size;
    uint8_t *rec = fx_seal_hdr(&f->w[FX_W0].keys, &h, pl, pn, &size, NULL);
    want_check(rec, size, &f->meta, c, FX_NOW, NULL, PSL_OK); /* prev unknown: accepted */
    want_check(rec, size, &f->meta, c, FX_NOW, t.cert_hash, PSL_ERR_BAD_PREV);
    free(rec);
    two_free(&t);
}

static void test_resigned_by_other_writer(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    /* W1 re-signs W0's record (still claiming W0's id). */
    fx_resign(t.data, t.data_size, &f->w[FX_W1].keys.sign);
    want_check(t.data, t.data_size, &f->meta, &f->w[FX_W0].cert, FX_NOW, NULL,
               PSL_ERR_BAD_SIGNATURE);
    /* Its own record, relabelled with W0's id and re-signed by W1. */
    struct fx_writer *w1 = &f->w[FX_W1];
    w1->chain.seq = 1;
    size_t size;
    uint8_t *rec = fx_seal_data(w1, 2, 4, &size, NULL);
    memcpy(rec + OFF_WRITER, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    fx_resign(rec, size, &w1->keys.sign);
    want_check(rec, size, &f->meta, &f->w[FX_W0].cert, FX_NOW, NULL, PSL_ERR_BAD_SIGNATURE);
    /* Under W1's own certificate it is an unknown writer. */
    want_check(rec, size, &f->meta, &w1->cert, FX_NOW, NULL, PSL_ERR_UNKNOWN_WRITER);
    free(rec);
    two_free(&t);
}

/* ---- step 6: decryption ---- */

static void assert_wiped(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            fail_msg("output byte %zu not wiped after a failed open", i);
}

static void want_open_fails(const struct record_view *v, const struct aead_key *key)
{
    size_t plain = v->h.payload_size - AEAD_TAG_SIZE;
    uint8_t *out = malloc(plain + 8);
    assert_non_null(out);
    memset(out, 0xa5, plain + 8);
    size_t n = 31337;
    assert_int_equal(record_open(v, key, out, plain + 8, &n), PSL_ERR_DECRYPT);
    assert_int_equal(n, 31337);
    assert_wiped(out, plain);
    assert_int_equal(psl_err_outward(PSL_ERR_DECRYPT), PSL_ERR_AUTH);
    free(out);
}

static void test_decrypt_failures(void **state)
{
    struct fx *f = *state;
    struct two t;
    two_make(f, &t);
    struct record_view v;
    assert_int_equal(record_parse(&v, t.data, t.data_size), PSL_OK);
    want_check(t.data, t.data_size, &f->meta, &f->w[FX_W0].cert, FX_NOW, t.cert_hash, PSL_OK);

    /* Another writer's key. */
    want_open_fails(&v, &f->w[FX_W1].keys.aead);
    /* The right writer, derived from a wrong capsule key. */
    struct writer_keys wrong;
    fx_writer_keys(&wrong, FX_W0, f->other_key);
    want_open_fails(&v, &wrong.aead);
    writer_keys_deinit(&wrong);

    /* The per-writer key is HKDF(capsule_key, "psl-writer" || writer_id): derived by hand it
     * opens the record; derived for another writer id it does not. */
    uint8_t k[AEAD_KEY_SIZE];
    struct aead_key key;
    assert_int_equal(record_key_derive(k, f->capsule_key, f->w[FX_W0].keys.writer_id), PSL_OK);
    assert_int_equal(aead_key_init(&key, k), PSL_OK);
    uint8_t out[256];
    size_t n = 0;
    assert_int_equal(record_open(&v, &key, out, sizeof out, &n), PSL_OK);
    aead_key_deinit(&key);
    assert_int_equal(record_key_derive(k, f->capsule_key, f->w[FX_W1].keys.writer_id), PSL_OK);
    assert_int_equal(aead_key_init(&key, k), PSL_OK);
    want_open_fails(&v, &key);
    aead_key_deinit(&key);

    /* Opened without the signature check: the header is the AAD and seq the nonce, so a changed
     * header, ciphertext or tag does not decrypt either. */
    uint8_t *buf = malloc(t.data_size);
    assert_non_null(buf);
    static const size_t offs[] = {OFF_LAMPORT, OFF_SYNC, OFF_PREV + 5, OFF_SEQ,
                                  PSL_RECORD_HEADER_SIZE + 3};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(buf, t.data, t.data_size);
        buf[offs[i]] ^= 0x01; /* seq 2 -> 3 at OFF_SEQ */
        struct record_view bv;
        assert_int_equal(record_parse(&bv, buf, t.data_size), PSL_OK);
        want_open_fails(&bv, &f->w[FX_W0].keys.aead);
    }
    memcpy(buf, t.data, t.data_size);
    buf[PSL_RECORD_HEADER_SIZE + get_le32(t.data + OFF_PAYLOAD_SIZE) - 1] ^= 0x80; /* the tag */
    struct record_view tv;
    assert_int_equal(record_parse(&tv, buf, t.data_size), PSL_OK);
    want_open_fails(&tv, &f->w[FX_W0].keys.aead);
    free(buf);

    /* No key, or no room: refused without touching the output. */
    size_t plain = v.h.payload_size - AEAD_TAG_SIZE;
    memset(out, 0x33, sizeof out);
    n = 4242;
    assert_int_equal(record_open(&v, NULL, out, sizeof out, &n), PSL_ERR_INVALID_ARG);
    struct aead_key none = {.hd = NULL};
    assert_int_equal(record_open(&v, &none, out, sizeof out, &n), PSL_ERR_INVALID_ARG);
    assert_int_equal(record_open(&v, &f->w[FX_W0].keys.aead, out, plain - 1, &n),
                     PSL_ERR_INVALID_ARG);
    assert_int_equal(n, 4242);
    assert_int_equal(out[0], 0x33);
    assert_int_equal(record_open(&v, &f->w[FX_W0].keys.aead, out, plain, &n), PSL_OK);
    assert_int_equal(n, plain);
    /* A plaintext type with too little room. */
    size_t hs;
    uint8_t *head = fx_seal_head(&f->w[FX_W0], 7, &hs, NULL);
    struct record_view hv;
    assert_int_equal(record_parse(&hv, head, hs), PSL_OK);
    assert_int_equal(record_open(&hv, NULL, out, 7, &n), PSL_ERR_INVALID_ARG);
    assert_int_equal(record_open(&hv, NULL, out, 8, &n), PSL_OK);
    assert_int_equal(n, 8);
    free(head);
    two_free(&t);
}

static void test_nonce_uniqueness(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w0 = &f->w[FX_W0], *w1 = &f->w[FX_W1];
    size_t s, s2, s3, t2;
    uint8_t *c0 = fx_seal_cert(f, w0, &s, NULL);
    uint8_t *c1 = fx_seal_cert(f, w1, &s, NULL);
    uint8_t *a = fx_seal(w0, REC_DATA, plain_text, sizeof plain_text, &s2, NULL);
    uint8_t *b = fx_seal(w0, REC_DATA, plain_text, sizeof plain_text, &s3, NULL);
    uint8_t *c = fx_seal(w1, REC_DATA, plain_text, sizeof plain_text, &t2, NULL);
    assert_int_equal(s2, s3);
    const uint8_t *pa = a + PSL_RECORD_HEADER_SIZE, *pb = b + PSL_RECORD_HEADER_SIZE,
                  *pc = c + PSL_RECORD_HEADER_SIZE;
    /* One writer, seq 2 and 3: different ciphertexts (and tags). */
    assert_memory_not_equal(pa, pb, sizeof plain_text);
    assert_memory_not_equal(pa + sizeof plain_text, pb + sizeof plain_text, AEAD_TAG_SIZE);
    /* Two writers at the same seq: different keys, different ciphertexts. */
    assert_memory_not_equal(pa, pc, sizeof plain_text);
    assert_memory_not_equal(pa, plain_text, sizeof plain_text);

    /* The nonce is seq (u64 LE) followed by four zero bytes, the AAD the header. */
    uint8_t nonce[AEAD_NONCE_SIZE] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t out[sizeof plain_text];
    memcpy(out, pb, sizeof plain_text);
    assert_int_equal(aead_open(&w0->keys.aead, nonce, b, PSL_RECORD_HEADER_SIZE, out,
                               sizeof plain_text, pb + sizeof plain_text),
                     PSL_OK);
    assert_memory_equal(out, plain_text, sizeof plain_text);
    free(a);
    free(b);
    free(c);
    free(c0);
    free(c1);
}

/* ---- CERT records ---- */

static void test_cert_record_checks(void **state)
{
    struct fx *f = *state;
    struct fx_writer *w0 = &f->w[FX_W0], *w1 = &f->w[FX_W1];
    size_t size;

    /* Owner-issued and leader-issued (with its delegation) verify. */
    uint8_t *rec = fx_seal_cert(f, w0, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_OK);
    want_check_cert(rec, size, &f->meta, FX_CERT_NA + 1, PSL_ERR_CERT_EXPIRED);
    want_check_cert(rec, size, &f->meta, FX_CERT_NB - 1, PSL_ERR_CERT_EXPIRED);
    free(rec);
    rec = fx_seal_cert(f, &f->w[FX_DELEGATED], &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_OK);
    free(rec);

    uint8_t pl[1 + CERT_SIZE + DELEG_SIZE];
    struct wr wr;

    /* Leader-issued without its delegation. */
    struct fx_writer *wd = &f->w[FX_DELEGATED];
    record_chain_init(&wd->chain, f->meta.name);
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &wd->cert, NULL);
    rec = fx_seal(wd, REC_CERT, pl, wr.pos, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
    free(rec);

    /* A certificate issued by the owner for another capsule, in this capsule's CERT record. */
    struct writer_cert c = w1->cert;
    memcpy(c.capsule, f->other.name, HASH_SIZE);
    cert_sign(&c, &f->owner);
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &c, NULL);
    rec = fx_seal(w1, REC_CERT, pl, wr.pos, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_CERT_FOREIGN);
    free(rec);

    /* W0's certificate in a CERT record sealed by W1: the header names W1, the certificate W0. */
    record_chain_init(&w1->chain, f->meta.name);
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &w0->cert, NULL);
    size_t plen = wr.pos;
    rec = fx_seal(w1, REC_CERT, pl, plen, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_UNKNOWN_WRITER);
    /* ... and with the header relabelled to W0 and re-signed by W1: the certified key (W0's)
     * does not verify the record. */
    memcpy(rec + OFF_WRITER, w0->keys.writer_id, HASH_SIZE);
    fx_resign(rec, size, &w1->keys.sign);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    free(rec);

    /* A certificate whose issuer is nobody. */
    struct writer_cert s;
    fx_cert_make(f, &s, &w1->keys, ROLE_WORKER, &f->stranger);
    record_chain_init(&w1->chain, f->meta.name);
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &s, NULL);
    rec = fx_seal(w1, REC_CERT, pl, wr.pos, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_CERT_ISSUER);
    free(rec);

    /* Payload that is no certificate payload: a bad flag, a short certificate. */
    record_chain_init(&w0->chain, f->meta.name);
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &w0->cert, NULL);
    pl[0] = 2;
    rec = fx_seal(w0, REC_CERT, pl, wr.pos, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_MALFORMED);
    free(rec);
    pl[0] = 0;
    record_chain_init(&w0->chain, f->meta.name);
    rec = fx_seal(w0, REC_CERT, pl, 100, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_TRUNCATED);
    free(rec);
    pl[0] = 1; /* claims a delegation that is not there */
    record_chain_init(&w0->chain, f->meta.name);
    rec = fx_seal(w0, REC_CERT, pl, plen, &size, NULL);
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_TRUNCATED);
    free(rec);

    /* A flipped payload bit in a good CERT record: the certificate or the record signature
     * fails. */
    record_chain_init(&w0->chain, f->meta.name);
    rec = fx_seal_cert(f, w0, &size, NULL);
    rec[PSL_RECORD_HEADER_SIZE + 1 + 100] ^= 4; /* a byte of the certificate's kx_pk */
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    /* A flipped bit of the certified signing key: the certificate names another writer. */
    rec[PSL_RECORD_HEADER_SIZE + 1 + 100] ^= 4;
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_OK);
    rec[PSL_RECORD_HEADER_SIZE + 1 + 40] ^= 4;
    want_check_cert(rec, size, &f->meta, FX_NOW, PSL_ERR_UNKNOWN_WRITER);
    free(rec);
}

static void test_outward_is_auth(void **state)
{
    (void)state;
    static const psl_err verification[] = {
        PSL_ERR_WRONG_CAPSULE,    PSL_ERR_UNKNOWN_WRITER, PSL_ERR_CERT_EXPIRED,
        PSL_ERR_CERT_FOREIGN,     PSL_ERR_CERT_ISSUER,    PSL_ERR_CERT_ROLE,
        PSL_ERR_CERT_MEASUREMENT, PSL_ERR_BAD_SIGNATURE,  PSL_ERR_BAD_PREV,
        PSL_ERR_BAD_SEQ,          PSL_ERR_DECRYPT,        PSL_ERR_FORK,
        PSL_ERR_NOT_REPLICA,      PSL_ERR_REVOKED,        PSL_ERR_BAD_SYNC,
        PSL_ERR_ATTEST_PLATFORM,  PSL_ERR_ATTEST_MEASUREMENT, PSL_ERR_ATTEST_NONCE,
        PSL_ERR_ATTEST_BINDING,
    };
    for (size_t i = 0; i < sizeof verification / sizeof verification[0]; i++) {
        assert_true(psl_err_is_auth(verification[i]));
        assert_int_equal(psl_err_outward(verification[i]), PSL_ERR_AUTH);
    }
    /* Decoding and local errors pass through unchanged. */
    assert_int_equal(psl_err_outward(PSL_ERR_TRUNCATED), PSL_ERR_TRUNCATED);
    assert_int_equal(psl_err_outward(PSL_ERR_INVALID_ARG), PSL_ERR_INVALID_ARG);
    assert_int_equal(psl_err_outward(PSL_OK), PSL_OK);
    assert_false(psl_err_is_auth(PSL_ERR_LAMBDA));
    /* Every error has a name and a message. */
    for (int e = 0; e < PSL_ERR__COUNT; e++) {
        assert_string_not_equal(psl_err_name((psl_err)e), "unknown");
        assert_string_not_equal(psl_strerror((psl_err)e), "unknown error");
    }
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(record_type_name(REC_CERT), "CERT");
    assert_string_equal(record_type_name(REC_DATA), "DATA");
    assert_string_equal(record_type_name(REC_REVOKE), "REVOKE");
    assert_string_equal(record_type_name(0), "?");
    assert_string_equal(record_type_name(REC_TYPE_MAX + 1), "?");
    for (uint8_t t = 0; t <= REC_TYPE_MAX + 1; t++)
        assert_int_equal(record_type_is_encrypted(t),
                         t == REC_DATA || t == REC_LSM_BLOCK || t == REC_LSM_INDEX);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip_every_type),
        T(test_round_trip_plaintext_only_writer),
        T(test_empty_payloads),
        T(test_chain_seal_links),
        T(test_header_limits),
        T(test_header_seq_rules),
        T(test_framing),
        T(test_payload_at_limit),
        T(test_wrong_capsule),
        T(test_cert_type_through_wrong_check),
        T(test_unknown_writer),
        T(test_cert_window_and_foreign),
        T(test_bad_signature),
        T(test_every_bit_flip_is_caught),
        T(test_prev_link),
        T(test_resigned_by_other_writer),
        T(test_decrypt_failures),
        T(test_nonce_uniqueness),
        T(test_cert_record_checks),
        cmocka_unit_test(test_outward_is_auth),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
