/* test_lsm_block.c: unit tests of CapsuleDB blocks and filters (src/lsm/block.c, bloom.c): the
 * plaintext codec with a known-answer encoding, every refusal of the decoder (order, duplicates,
 * limits, truncation at every length, trailing bytes), the limits themselves, the version order
 * shared with the memtable, Bloom filters (no false negatives, the false-positive rate, fixed
 * bits), and sealing and opening blocks as LSM_BLOCK records checked by content address. */
#include <stdlib.h>

#include "capsule_fixture.h"
#include "lsm/block.h"
#include "lsm/bloom.h"

static uint8_t writer_a[HASH_SIZE], writer_b[HASH_SIZE];

static void writers_init(void)
{
    memset(writer_a, 0xaa, HASH_SIZE);
    memset(writer_b, 0xbb, HASH_SIZE);
}

static struct lsm_entry put_e(const char *key, const char *value, uint64_t lamport,
                              const uint8_t *writer)
{
    return (struct lsm_entry){.kind = OP_PUT,
                              .lamport = lamport,
                              .writer = writer,
                              .key = (const uint8_t *)key,
                              .key_size = (uint16_t)strlen(key),
                              .value = (const uint8_t *)value,
                              .value_size = (uint32_t)strlen(value)};
}

static struct lsm_entry del_e(const char *key, uint64_t lamport, const uint8_t *writer)
{
    return (struct lsm_entry){.kind = OP_DEL,
                              .lamport = lamport,
                              .writer = writer,
                              .key = (const uint8_t *)key,
                              .key_size = (uint16_t)strlen(key)};
}

static void assert_entry_equal(const struct lsm_entry *a, const struct lsm_entry *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_true(a->lamport == b->lamport);
    assert_memory_equal(a->writer, b->writer, HASH_SIZE);
    assert_int_equal(a->key_size, b->key_size);
    assert_memory_equal(a->key, b->key, a->key_size);
    assert_int_equal(a->value_size, b->value_size);
    if (a->value_size)
        assert_memory_equal(a->value, b->value, a->value_size);
}

/* Encodes entries into a malloc'd buffer of exactly the encoded size. */
static uint8_t *encode_block(const struct lsm_entry *e, size_t n, size_t *size)
{
    size_t want = lsm_block_encoded_size(e, n);
    assert_true(want > 0);
    uint8_t *buf = malloc(want);
    assert_non_null(buf);
    struct wr w;
    wr_init(&w, buf, want);
    assert_int_equal(lsm_block_encode(&w, e, n), PSL_OK);
    assert_int_equal(w.pos, want);
    *size = want;
    return buf;
}

static void want_parse(const uint8_t *buf, size_t size, psl_err want)
{
    uint32_t offsets[16];
    size_t count = 777;
    psl_err got = lsm_block_parse(buf, size, offsets, 16, &count);
    if (got != want)
        fail_msg("lsm_block_parse: got %s, want %s (size %zu)", psl_err_name(got),
                 psl_err_name(want), size);
    if (want != PSL_OK)
        assert_int_equal(count, 777);
}

/* ---- codec ---- */

static void test_block_round_trip(void **state)
{
    (void)state;
    writers_init();
    const struct lsm_entry e[] = {
        put_e("alpha", "one", 5, writer_a),
        del_e("beta", UINT64_MAX, writer_b),
        put_e("beta2", "", 7, writer_a),
    };
    size_t size;
    uint8_t *buf = encode_block(e, 3, &size);
    assert_int_equal(size, LSM_BLOCK_HEADER_SIZE + 3 * LSM_ENTRY_OVERHEAD + 5 + 3 + 4 + 5);
    size_t count = 0;
    assert_int_equal(lsm_block_count(buf, size, &count), PSL_OK);
    assert_int_equal(count, 3);

    uint8_t *plain = malloc(size);
    assert_non_null(plain);
    memcpy(plain, buf, size);
    struct lsm_block b;
    assert_int_equal(lsm_block_load(&b, plain, size), PSL_OK);
    assert_int_equal(b.count, 3);
    assert_int_equal(lsm_block_mem_size(&b), size + 3 * sizeof(uint32_t));
    for (size_t i = 0; i < 3; i++) {
        struct lsm_entry got;
        lsm_block_entry(&b, i, &got);
        assert_entry_equal(&got, &e[i]);
        size_t at = 99;
        assert_true(lsm_block_find(&b, e[i].key, e[i].key_size, &at));
        assert_int_equal(at, i);
    }
    struct lsm_entry got;
    lsm_block_entry(&b, 1, &got);
    assert_null(got.value);
    static const char *absent[] = {"a", "alph", "alphaa", "b", "beta1", "beta3", "zzz"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
        size_t at;
        assert_false(lsm_block_find(&b, (const uint8_t *)absent[i], strlen(absent[i]), &at));
    }
    lsm_block_deinit(&b);
    assert_null(b.plain);
    free(buf);
}

/* The encoding written out field by field, independently of the encoder. */
static void test_block_known_answer(void **state)
{
    (void)state;
    writers_init();
    const struct lsm_entry e[] = {put_e("k", "vv", 0x0102030405060708ull, writer_a),
                                  del_e("m", 9, writer_b)};
    size_t size;
    uint8_t *buf = encode_block(e, 2, &size);
    uint8_t want[LSM_BLOCK_HEADER_SIZE + 2 * LSM_ENTRY_OVERHEAD + 1 + 2 + 1];
    uint8_t *p = want;
    memcpy(p, "PSLB\x01\x02\x00\x00\x00", 9);
    p += 9;
    *p++ = 1; /* PUT */
    memcpy(p, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
    p += 8;
    memset(p, 0xaa, 32);
    p += 32;
    memcpy(p, "\x01\x00\x02\x00\x00\x00kvv", 9);
    p += 9;
    *p++ = 2; /* DEL */
    memcpy(p, "\x09\x00\x00\x00\x00\x00\x00\x00", 8);
    p += 8;
    memset(p, 0xbb, 32);
    p += 32;
    memcpy(p, "\x01\x00\x00\x00\x00\x00m", 7);
    p += 7;
    assert_int_equal((size_t)(p - want), sizeof want);
    assert_int_equal(size, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    want_parse(want, sizeof want, PSL_OK);
    free(buf);
}

static void test_block_refusals(void **state)
{
    (void)state;
    writers_init();
    const struct lsm_entry e[] = {put_e("a", "x", 1, writer_a), put_e("b", "y", 2, writer_b)};
    size_t size;
    uint8_t *good = encode_block(e, 2, &size);
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    const size_t e1 = LSM_BLOCK_HEADER_SIZE;           /* first entry */
    const size_t e2 = e1 + LSM_ENTRY_OVERHEAD + 1 + 1; /* second entry */

#define MUTATE(stmt, want)                                                                         \
    do {                                                                                           \
        memcpy(buf, good, size);                                                                   \
        stmt;                                                                                      \
        want_parse(buf, size, want);                                                               \
    } while (0)
    MUTATE((void)0, PSL_OK);
    MUTATE(buf[0] = 'X', PSL_ERR_BAD_MAGIC);
    MUTATE(buf[4] = 2, PSL_ERR_BAD_VERSION);
    MUTATE(put_le32(buf + 5, 0), PSL_ERR_MALFORMED);
    MUTATE(put_le32(buf + 5, LSM_BLOCK_ENTRIES_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + 5, 3), PSL_ERR_TRUNCATED); /* more entries than bytes can hold */
    MUTATE(put_le32(buf + 5, 1), PSL_ERR_TRAILING);
    MUTATE(buf[e1] = 3, PSL_ERR_MALFORMED); /* unknown kind */
    MUTATE(buf[e2] = 0, PSL_ERR_MALFORMED);
    MUTATE(buf[e2] = OP_DEL, PSL_ERR_MALFORMED); /* DEL with a value */
    MUTATE(put_le16(buf + e1 + 41, 0), PSL_ERR_MALFORMED);
    MUTATE(put_le16(buf + e1 + 41, PSL_KEY_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + e1 + 43, PSL_VALUE_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + e1 + 43, 1000), PSL_ERR_TRUNCATED);
    MUTATE(buf[e2 + LSM_ENTRY_OVERHEAD] = 'a', PSL_ERR_MALFORMED); /* duplicate key */
    MUTATE(buf[e2 + LSM_ENTRY_OVERHEAD] = '0', PSL_ERR_MALFORMED); /* descending */
    MUTATE(buf[e1 + LSM_ENTRY_OVERHEAD] = 'c', PSL_ERR_MALFORMED); /* first above second */
#undef MUTATE

    /* Truncated at every length, and one trailing byte. */
    for (size_t n = 0; n < size; n++)
        want_parse(good, n, PSL_ERR_TRUNCATED);
    memcpy(buf, good, size);
    buf[size] = 0;
    want_parse(buf, size + 1, PSL_ERR_TRAILING);

    /* Output array too small: refused before anything is written. */
    uint32_t offsets[1];
    size_t count = 777;
    assert_int_equal(lsm_block_parse(good, size, offsets, 1, &count), PSL_ERR_TOO_LARGE);
    assert_int_equal(count, 777);
    /* lsm_block_load keeps nothing on failure: the caller still owns the bytes. */
    memcpy(buf, good, size);
    buf[0] = 'X';
    struct lsm_block b = {0};
    assert_int_equal(lsm_block_load(&b, buf, size), PSL_ERR_BAD_MAGIC);
    assert_null(b.plain);
    free(buf);
    free(good);
}

static void test_block_key_order_prefix(void **state)
{
    (void)state;
    writers_init();
    /* A key sorts before every longer key it is a prefix of. */
    const struct lsm_entry up[] = {put_e("ab", "1", 1, writer_a), put_e("abc", "2", 1, writer_a)};
    const struct lsm_entry down[] = {put_e("abc", "2", 1, writer_a), put_e("ab", "1", 1, writer_a)};
    size_t size;
    uint8_t *buf = encode_block(up, 2, &size);
    want_parse(buf, size, PSL_OK);
    free(buf);
    uint8_t tmp[256];
    struct wr w;
    wr_init(&w, tmp, sizeof tmp);
    assert_int_equal(lsm_block_encode(&w, down, 2), PSL_ERR_INVALID_ARG);
    assert_int_equal(w.pos, 0);
    /* The decoder refuses the same bytes written by hand. */
    size_t n = LSM_BLOCK_HEADER_SIZE;
    lsm_block_header_write(tmp, 2);
    lsm_entry_write(tmp + n, &down[0]);
    n += lsm_entry_size(&down[0]);
    lsm_entry_write(tmp + n, &down[1]);
    n += lsm_entry_size(&down[1]);
    want_parse(tmp, n, PSL_ERR_MALFORMED);
}

static void test_block_encode_refuses(void **state)
{
    (void)state;
    writers_init();
    uint8_t buf[512];
    struct wr w;
    struct lsm_entry e[2] = {put_e("a", "x", 1, writer_a), put_e("a", "y", 2, writer_a)};
    wr_init(&w, buf, sizeof buf);
    assert_int_equal(lsm_block_encode(&w, e, 2), PSL_ERR_INVALID_ARG); /* duplicate */
    assert_int_equal(lsm_block_encode(&w, e, 0), PSL_ERR_TOO_LARGE);   /* empty */
    assert_int_equal(lsm_block_encoded_size(e, 0), 0);
    struct lsm_entry bad = e[0];
    bad.key_size = 0;
    assert_int_equal(lsm_block_encode(&w, &bad, 1), PSL_ERR_TOO_LARGE);
    bad = e[0];
    bad.kind = 7;
    assert_false(lsm_entry_is_valid(&bad));
    bad = del_e("a", 1, writer_a);
    bad.value_size = 1;
    assert_false(lsm_entry_is_valid(&bad));
    bad = e[0];
    bad.writer = NULL;
    assert_false(lsm_entry_is_valid(&bad));
    bad = e[0];
    bad.value = NULL;
    assert_false(lsm_entry_is_valid(&bad));
    assert_int_equal(w.pos, 0);
    /* Too small a writer: nothing written. */
    wr_init(&w, buf, LSM_BLOCK_HEADER_SIZE + LSM_ENTRY_OVERHEAD + 1);
    assert_int_equal(lsm_block_encode(&w, e, 1), PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 0);
}

static void test_block_limits(void **state)
{
    (void)state;
    writers_init();
    /* One entry with a maximal key and value. */
    uint8_t *key = malloc(PSL_KEY_SIZE_MAX), *value = malloc(PSL_VALUE_SIZE_MAX);
    assert_non_null(key);
    assert_non_null(value);
    memset(key, 'k', PSL_KEY_SIZE_MAX);
    memset(value, 'v', PSL_VALUE_SIZE_MAX);
    struct lsm_entry big = {.kind = OP_PUT,
                            .lamport = 1,
                            .writer = writer_a,
                            .key = key,
                            .key_size = PSL_KEY_SIZE_MAX,
                            .value = value,
                            .value_size = PSL_VALUE_SIZE_MAX};
    size_t size;
    uint8_t *buf = encode_block(&big, 1, &size);
    assert_int_equal(size, LSM_BLOCK_HEADER_SIZE + LSM_ENTRY_SIZE_MAX);
    want_parse(buf, size, PSL_OK);
    free(buf);
    big.key_size = PSL_KEY_SIZE_MAX + 1;
    assert_int_equal(lsm_block_encoded_size(&big, 1), 0);
    big.key_size = PSL_KEY_SIZE_MAX;
    big.value_size = PSL_VALUE_SIZE_MAX + 1;
    assert_int_equal(lsm_block_encoded_size(&big, 1), 0);
    free(key);
    free(value);

    /* LSM_BLOCK_ENTRIES_MAX entries with 2-byte keys; one more is refused both ways. */
    size_t n = LSM_BLOCK_ENTRIES_MAX + 1;
    struct lsm_entry *e = calloc(n, sizeof *e);
    uint8_t *keys = malloc(2 * n);
    assert_non_null(e);
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++) {
        keys[2 * i] = (uint8_t)(i >> 8);
        keys[2 * i + 1] = (uint8_t)i;
        e[i] = (struct lsm_entry){
            .kind = OP_DEL, .lamport = i, .writer = writer_b, .key = keys + 2 * i, .key_size = 2};
    }
    assert_int_equal(lsm_block_encoded_size(e, LSM_BLOCK_ENTRIES_MAX + 1), 0);
    buf = encode_block(e, LSM_BLOCK_ENTRIES_MAX, &size);
    uint32_t *offsets = malloc(LSM_BLOCK_ENTRIES_MAX * sizeof *offsets);
    assert_non_null(offsets);
    size_t count = 0;
    assert_int_equal(lsm_block_parse(buf, size, offsets, LSM_BLOCK_ENTRIES_MAX, &count), PSL_OK);
    assert_int_equal(count, LSM_BLOCK_ENTRIES_MAX);
    put_le32(buf + 5, LSM_BLOCK_ENTRIES_MAX + 1);
    want_parse(buf, size, PSL_ERR_TOO_LARGE);
    free(offsets);
    free(buf);
    free(keys);
    free(e);

    /* A block larger than LSM_BLOCK_SIZE_MAX is refused before its entries are read. */
    uint8_t hdr[LSM_BLOCK_HEADER_SIZE];
    lsm_block_header_write(hdr, 1);
    count = 0;
    assert_int_equal(lsm_block_count(hdr, LSM_BLOCK_SIZE_MAX + 1, &count), PSL_ERR_TOO_LARGE);
}

static void test_version_order(void **state)
{
    (void)state;
    writers_init();
    struct lsm_entry a = put_e("k", "x", 5, writer_a), b = put_e("k", "x", 5, writer_b);
    assert_true(lsm_version_cmp(&a, &b) < 0); /* equal lamport: the writer decides */
    assert_true(lsm_version_cmp(&b, &a) > 0);
    b.lamport = 4;
    assert_true(lsm_version_cmp(&a, &b) > 0); /* lamport first */
    b = a;
    assert_int_equal(lsm_version_cmp(&a, &b), 0);
    struct lsm_entry d = del_e("k", 5, writer_a);
    assert_true(lsm_version_cmp(&d, &a) > 0); /* same stamp: the tombstone is above */
    struct lsm_entry c = put_e("k", "xy", 5, writer_a);
    assert_true(lsm_version_cmp(&c, &a) > 0); /* then values, shorter first */
    c = put_e("k", "w", 5, writer_a);
    assert_true(lsm_version_cmp(&c, &a) < 0);
    assert_true(lsm_key_cmp((const uint8_t *)"ab", 2, (const uint8_t *)"abc", 3) < 0);
    assert_true(lsm_key_cmp((const uint8_t *)"b", 1, (const uint8_t *)"abc", 3) > 0);
    assert_int_equal(lsm_key_cmp((const uint8_t *)"abc", 3, (const uint8_t *)"abc", 3), 0);
}

/* ---- Bloom filters ---- */

static void test_bloom(void **state)
{
    (void)state;
    tu_init();
    const size_t n = 10000;
    size_t size = lsm_bloom_size_for(n, 10);
    assert_int_equal(size, 12500);
    assert_int_equal(lsm_bloom_size_for(0, 10), 1);
    assert_int_equal(lsm_bloom_size_for(1, 10), 2);
    assert_int_equal(lsm_bloom_size_for(LSM_BLOCK_ENTRIES_MAX, 16), LSM_BLOOM_SIZE_MAX);
    uint8_t *bits = calloc(1, size);
    assert_non_null(bits);
    char key[32];
    struct lsm_bloom_probe p;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "key-%zu", i);
        lsm_bloom_probe_init(&p, (const uint8_t *)key, (size_t)len);
        lsm_bloom_add(bits, size, 7, &p);
    }
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "key-%zu", i);
        lsm_bloom_probe_init(&p, (const uint8_t *)key, (size_t)len);
        assert_true(lsm_bloom_may_contain(bits, size, 7, &p));
    }
    size_t fp = 0;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "other-%zu", i);
        lsm_bloom_probe_init(&p, (const uint8_t *)key, (size_t)len);
        fp += lsm_bloom_may_contain(bits, size, 7, &p);
    }
    /* About 0.8% expected at 10 bits per key and 7 hashes. */
    if (fp > n / 50)
        fail_msg("false positive rate %zu / %zu", fp, n);
    free(bits);

    /* Known answer: the bits of one key are fixed on every machine (they are signed). */
    uint8_t f[8] = {0};
    lsm_bloom_probe_init(&p, (const uint8_t *)"alpha", 5);
    uint8_t d[HASH_SIZE];
    hash_sha256(d, "psl-bloom-v1alpha", 17);
    assert_true(p.h1 == get_le64(d) && p.h2 == get_le64(d + 8));
    lsm_bloom_add(f, sizeof f, 3, &p);
    uint8_t want[8] = {0};
    for (uint64_t i = 0, h = p.h1; i < 3; i++, h += p.h2)
        want[(h % 64) / 8] |= (uint8_t)(1u << (h % 8));
    assert_memory_equal(f, want, sizeof f);
    assert_true(lsm_bloom_may_contain(f, sizeof f, 3, &p));
    /* An empty filter contains nothing. */
    uint8_t z[8] = {0};
    assert_false(lsm_bloom_may_contain(z, sizeof z, 1, &p));
}

/* ---- records ---- */

static void test_block_seal_open(void **state)
{
    struct fx *f = *state;
    writers_init();
    struct writer_keys wk;
    fx_writer_keys(&wk, 7, f->capsule_key);
    struct record_chain rc;
    record_chain_init(&rc, f->meta.name);
    rc.seq = 1; /* seq 1 is the compactor's CERT record, as for every writer */
    memset(rc.head, 0x11, HASH_SIZE);
    const struct lsm_entry e[] = {put_e("apple", "red", 3, writer_a),
                                  put_e("banana", "yellow", 4, writer_b),
                                  del_e("cherry", 9, writer_a)};
    size_t plain_size = lsm_block_encoded_size(e, 3);
    size_t cap = record_sealed_size(plain_size, REC_LSM_BLOCK);
    uint8_t *rec = malloc(cap);
    assert_non_null(rec);
    struct wr w;
    wr_init(&w, rec + PSL_RECORD_HEADER_SIZE, plain_size);
    assert_int_equal(lsm_block_encode(&w, e, 3), PSL_OK);
    size_t size = 0;
    uint8_t hash[HASH_SIZE];
    assert_int_equal(lsm_block_seal(&rc, &wk, 11, rec, cap, plain_size, &size, hash), PSL_OK);
    assert_int_equal(size, cap);
    assert_int_equal(rc.seq, 2);
    /* The plaintext is not in the record. */
    assert_null(memmem(rec, size, "yellow", 6));

    uint8_t key[AEAD_KEY_SIZE];
    struct aead_key ak;
    assert_int_equal(record_key_derive(key, f->capsule_key, wk.writer_id), PSL_OK);
    assert_int_equal(aead_key_init(&ak, key), PSL_OK);

    struct record_view v;
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->meta.name, hash),
                     PSL_OK);
    struct lsm_block b;
    assert_int_equal(lsm_block_open(&v, &ak, &b), PSL_OK);
    assert_int_equal(b.count, 3);
    for (size_t i = 0; i < 3; i++) {
        struct lsm_entry got;
        lsm_block_entry(&b, i, &got);
        assert_entry_equal(&got, &e[i]);
    }
    lsm_block_deinit(&b);

    /* Refusals: another hash, another capsule, another type, a changed byte anywhere. */
    uint8_t other[HASH_SIZE];
    memcpy(other, hash, HASH_SIZE);
    other[5] ^= 1;
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->meta.name, other),
                     PSL_ERR_AUTH);
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->other.name, hash),
                     PSL_ERR_WRONG_CAPSULE);
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_INDEX, f->meta.name, hash),
                     PSL_ERR_BAD_TYPE);
    assert_int_equal(lsm_record_check_hash(&v, rec, size - 1, REC_LSM_BLOCK, f->meta.name, hash),
                     PSL_ERR_TRUNCATED);
    for (size_t bit = 0; bit < (size - PSL_RECORD_SIG_SIZE) * 8; bit += 37) {
        tu_flip(rec, bit);
        struct record_view x;
        psl_err err = lsm_record_check_hash(&x, rec, size, REC_LSM_BLOCK, f->meta.name, hash);
        if (err == PSL_OK)
            fail_msg("record with bit %zu flipped passes", bit);
        tu_flip(rec, bit);
    }
    /* The signature is not part of the content address (and is not checked here). */
    tu_flip(rec, (size - 1) * 8);
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->meta.name, hash),
                     PSL_OK);
    /* Ciphertext changed and the hash asked for updated to match: decryption refuses it. */
    rec[PSL_RECORD_HEADER_SIZE + 3] ^= 1;
    uint8_t forged[HASH_SIZE];
    hash_sha256(forged, rec, size - PSL_RECORD_SIG_SIZE);
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->meta.name, forged),
                     PSL_OK);
    assert_int_equal(lsm_block_open(&v, &ak, &b), PSL_ERR_DECRYPT);
    rec[PSL_RECORD_HEADER_SIZE + 3] ^= 1;
    /* The wrong key. */
    struct aead_key wrong;
    uint8_t wkey[AEAD_KEY_SIZE];
    assert_int_equal(record_key_derive(wkey, f->other_key, wk.writer_id), PSL_OK);
    assert_int_equal(aead_key_init(&wrong, wkey), PSL_OK);
    assert_int_equal(lsm_record_check_hash(&v, rec, size, REC_LSM_BLOCK, f->meta.name, hash),
                     PSL_OK);
    assert_int_equal(lsm_block_open(&v, &wrong, &b), PSL_ERR_DECRYPT);
    aead_key_deinit(&wrong);

    /* A well-sealed record whose plaintext is not a valid block (keys descending). */
    uint8_t bad[PSL_RECORD_HEADER_SIZE + 256];
    size_t n = LSM_BLOCK_HEADER_SIZE;
    lsm_block_header_write(bad + PSL_RECORD_HEADER_SIZE, 2);
    lsm_entry_write(bad + PSL_RECORD_HEADER_SIZE + n, &e[1]);
    n += lsm_entry_size(&e[1]);
    lsm_entry_write(bad + PSL_RECORD_HEADER_SIZE + n, &e[0]);
    n += lsm_entry_size(&e[0]);
    uint8_t *rec2 = malloc(record_sealed_size(n, REC_LSM_BLOCK));
    assert_non_null(rec2);
    memcpy(rec2 + PSL_RECORD_HEADER_SIZE, bad + PSL_RECORD_HEADER_SIZE, n);
    size_t size2;
    uint8_t hash2[HASH_SIZE];
    assert_int_equal(
        lsm_block_seal(&rc, &wk, 12, rec2, record_sealed_size(n, REC_LSM_BLOCK), n, &size2, hash2),
        PSL_OK);
    assert_int_equal(lsm_record_check_hash(&v, rec2, size2, REC_LSM_BLOCK, f->meta.name, hash2),
                     PSL_OK);
    assert_int_equal(lsm_block_open(&v, &ak, &b), PSL_ERR_MALFORMED);
    /* Too large a plaintext is refused before sealing. */
    assert_int_equal(lsm_block_seal(&rc, &wk, 13, rec2, 0, LSM_BLOCK_SIZE_MAX + 1, &size2, hash2),
                     PSL_ERR_TOO_LARGE);

    aead_key_deinit(&ak);
    writer_keys_deinit(&wk);
    free(rec2);
    free(rec);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_round_trip),
        cmocka_unit_test(test_block_known_answer),
        cmocka_unit_test(test_block_refusals),
        cmocka_unit_test(test_block_key_order_prefix),
        cmocka_unit_test(test_block_encode_refuses),
        cmocka_unit_test(test_block_limits),
        cmocka_unit_test(test_version_order),
        cmocka_unit_test(test_bloom),
        T(test_block_seal_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
