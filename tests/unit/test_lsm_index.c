/* test_lsm_index.c: unit tests of the CapsuleDB index (src/lsm/index.c): the codec with a
 * known-answer encoding, every structural refusal of the decoder (head order, runs per level,
 * trailing empty levels, block limits and key ranges, overlapping blocks, truncation at every
 * length, trailing bytes), the encoder's limits, the cut queries (coverage for eviction, heads
 * for recovery, the tombstone horizon), and sealing and receiving the index as an LSM_INDEX
 * record, accepted only from a writer certified as compactor. */
#include <stdlib.h>

#include "capsule_fixture.h"
#include "lsm/bloom.h"
#include "lsm/index.h"

static const uint8_t bloom_bits[4] = {0xff, 0x0f, 0x00, 0x01};

static struct lsm_block_ref ref_make(uint8_t tag, const char *min, const char *max,
                                     uint32_t entries, uint64_t lamport_max)
{
    struct lsm_block_ref r;
    memset(&r, 0, sizeof r);
    memset(r.hash, tag, HASH_SIZE);
    r.entry_count = entries;
    r.data_size = LSM_BLOCK_HEADER_SIZE + entries * (LSM_ENTRY_OVERHEAD + 8);
    r.lamport_max = lamport_max;
    r.min_key = (const uint8_t *)min;
    r.min_key_size = (uint16_t)strlen(min);
    r.max_key = (const uint8_t *)max;
    r.max_key_size = (uint16_t)strlen(max);
    r.bloom_hashes = 3;
    r.bloom = bloom_bits;
    r.bloom_size = sizeof bloom_bits;
    return r;
}

/* A sample index: three heads, level 0 with two runs, level 1 empty, level 2 with one run. */
struct sample {
    struct lsm_index_head heads[3];
    struct lsm_block_ref l0a[1], l0b[2], l2[3];
    struct lsm_run l0[2], l2run[1];
    struct lsm_index ix;
};

static void sample_init(struct sample *s)
{
    memset(s, 0, sizeof *s);
    for (unsigned i = 0; i < 3; i++) {
        memset(s->heads[i].writer, (int)(0x10 * (i + 1)), HASH_SIZE);
        s->heads[i].seq = 10 + i;
        s->heads[i].lamport = 100 + 50 * i;
        memset(s->heads[i].hash, (int)(0xc0 + i), HASH_SIZE);
    }
    s->l0a[0] = ref_make(1, "k", "k", 1, 140);
    s->l0b[0] = ref_make(2, "a", "f", 3, 120);
    s->l0b[1] = ref_make(3, "g", "z", 2, 130);
    s->l2[0] = ref_make(4, "a", "c", 5, 90);
    s->l2[1] = ref_make(5, "ca", "m", 5, 95);
    s->l2[2] = ref_make(6, "n", "zz", 9, 99);
    s->l0[0] = (struct lsm_run){.blocks = s->l0a, .block_count = 1};
    s->l0[1] = (struct lsm_run){.blocks = s->l0b, .block_count = 2};
    s->l2run[0] = (struct lsm_run){.blocks = s->l2, .block_count = 3};
    lsm_index_init(&s->ix);
    s->ix.generation = 42;
    memset(s->ix.sync_hash, 0x5a, HASH_SIZE);
    s->ix.epoch = 7;
    s->ix.horizon = 100;
    s->ix.heads = s->heads;
    s->ix.head_count = 3;
    s->ix.levels[0] = (struct lsm_level){.runs = s->l0, .run_count = 2};
    s->ix.levels[1] = (struct lsm_level){.runs = NULL, .run_count = 0};
    s->ix.levels[2] = (struct lsm_level){.runs = s->l2run, .run_count = 1};
    s->ix.level_count = 3;
}

static uint8_t *encode_index(const struct lsm_index *ix, size_t *size)
{
    size_t n = lsm_index_encoded_size(ix);
    assert_true(n > 0);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    struct wr w;
    wr_init(&w, buf, n);
    assert_int_equal(lsm_index_encode(ix, &w), PSL_OK);
    assert_int_equal(w.pos, n);
    *size = n;
    return buf;
}

static void assert_ref_equal(const struct lsm_block_ref *a, const struct lsm_block_ref *b)
{
    assert_memory_equal(a->hash, b->hash, HASH_SIZE);
    assert_int_equal(a->entry_count, b->entry_count);
    assert_int_equal(a->data_size, b->data_size);
    assert_true(a->lamport_max == b->lamport_max);
    assert_int_equal(a->min_key_size, b->min_key_size);
    assert_memory_equal(a->min_key, b->min_key, a->min_key_size);
    assert_int_equal(a->max_key_size, b->max_key_size);
    assert_memory_equal(a->max_key, b->max_key, a->max_key_size);
    assert_int_equal(a->bloom_hashes, b->bloom_hashes);
    assert_int_equal(a->bloom_size, b->bloom_size);
    assert_memory_equal(a->bloom, b->bloom, a->bloom_size);
}

static void assert_index_equal(const struct lsm_index *a, const struct lsm_index *b)
{
    assert_true(a->generation == b->generation);
    assert_memory_equal(a->sync_hash, b->sync_hash, HASH_SIZE);
    assert_true(a->epoch == b->epoch);
    assert_int_equal(a->head_count, b->head_count);
    assert_memory_equal(a->heads, b->heads, a->head_count * sizeof *a->heads);
    assert_int_equal(a->level_count, b->level_count);
    for (size_t l = 0; l < a->level_count; l++) {
        assert_int_equal(a->levels[l].run_count, b->levels[l].run_count);
        for (size_t r = 0; r < a->levels[l].run_count; r++) {
            assert_int_equal(a->levels[l].runs[r].block_count, b->levels[l].runs[r].block_count);
            for (size_t i = 0; i < a->levels[l].runs[r].block_count; i++)
                assert_ref_equal(&a->levels[l].runs[r].blocks[i], &b->levels[l].runs[r].blocks[i]);
        }
    }
}

static void want_decode(const uint8_t *buf, size_t size, psl_err want)
{
    struct lsm_index ix;
    memset(&ix, 0x77, sizeof ix);
    psl_err got = lsm_index_decode(&ix, buf, size);
    if (got != want)
        fail_msg("lsm_index_decode: got %s, want %s (size %zu)", psl_err_name(got),
                 psl_err_name(want), size);
    if (got == PSL_OK)
        lsm_index_deinit(&ix);
    else
        assert_true(ix.generation == 0x7777777777777777ull); /* untouched */
}

/* ---- codec ---- */

static void test_index_round_trip(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    size_t size;
    uint8_t *buf = encode_index(&s.ix, &size);
    struct lsm_index ix;
    assert_int_equal(lsm_index_decode(&ix, buf, size), PSL_OK);
    assert_index_equal(&ix, &s.ix);
    assert_int_equal(lsm_index_block_count(&ix), 6);
    /* The decoded index owns a private copy: the input may go. */
    memset(buf, 0, size);
    assert_memory_equal(ix.levels[2].runs[0].blocks[1].min_key, "ca", 2);
    size_t size2;
    uint8_t *buf2 = encode_index(&ix, &size2);
    assert_int_equal(size2, size);
    lsm_index_deinit(&ix);
    assert_int_equal(lsm_index_decode(&ix, buf2, size2), PSL_OK);
    assert_index_equal(&ix, &s.ix);
    lsm_index_deinit(&ix);
    assert_null(ix.own_buf);
    free(buf2);
    free(buf);

    /* The empty index. */
    struct lsm_index empty;
    lsm_index_init(&empty);
    buf = encode_index(&empty, &size);
    assert_int_equal(size, 4 + 1 + 8 + HASH_SIZE + 8 + 8 + 4 + 1);
    assert_int_equal(lsm_index_decode(&ix, buf, size), PSL_OK);
    assert_int_equal(ix.level_count, 0);
    assert_int_equal(ix.head_count, 0);
    assert_int_equal(lsm_index_block_count(&ix), 0);
    assert_true(lsm_index_lamport_max(&ix) == 0);
    assert_true(lsm_index_horizon(&ix) == 0);
    lsm_index_deinit(&ix);
    free(buf);
    /* A horizon with no heads to justify it. */
    empty.horizon = 5;
    buf = encode_index(&empty, &size);
    want_decode(buf, size, PSL_ERR_MALFORMED);
    free(buf);
}

/* The encoding of a one-block index written out field by field. */
static void test_index_known_answer(void **state)
{
    (void)state;
    struct lsm_index_head head = {.seq = 3, .lamport = 0x0102};
    memset(head.writer, 0x21, HASH_SIZE);
    memset(head.hash, 0x22, HASH_SIZE);
    struct lsm_block_ref b = ref_make(0x33, "ab", "cd", 2, 9);
    b.data_size = 200;
    struct lsm_run run = {.blocks = &b, .block_count = 1};
    struct lsm_index ix;
    lsm_index_init(&ix);
    ix.generation = 5;
    memset(ix.sync_hash, 0x44, HASH_SIZE);
    ix.epoch = 6;
    ix.horizon = 0x0101;
    ix.heads = &head;
    ix.head_count = 1;
    ix.levels[0] = (struct lsm_level){.runs = &run, .run_count = 1};
    ix.level_count = 1;
    size_t size;
    uint8_t *buf = encode_index(&ix, &size);

    uint8_t want[512];
    uint8_t *p = want;
#define PUT(str, n)                                                                                \
    do {                                                                                           \
        memcpy(p, str, n);                                                                         \
        p += n;                                                                                    \
    } while (0)
#define FILL(byte, n)                                                                              \
    do {                                                                                           \
        memset(p, byte, n);                                                                        \
        p += n;                                                                                    \
    } while (0)
    PUT("PSLI\x01", 5);
    PUT("\x05\0\0\0\0\0\0\0", 8);   /* generation */
    FILL(0x44, 32);                 /* sync hash */
    PUT("\x06\0\0\0\0\0\0\0", 8);   /* epoch */
    PUT("\x01\x01\0\0\0\0\0\0", 8); /* horizon */
    PUT("\x01\0\0\0", 4);           /* head count */
    FILL(0x21, 32);
    PUT("\x03\0\0\0\0\0\0\0", 8);   /* seq */
    PUT("\x02\x01\0\0\0\0\0\0", 8); /* lamport */
    FILL(0x22, 32);
    PUT("\x01", 1);       /* level count */
    PUT("\x01\0\0\0", 4); /* runs of level 0 */
    PUT("\x01\0\0\0", 4); /* blocks of the run */
    FILL(0x33, 32);
    PUT("\x02\0\0\0", 4);         /* entries */
    PUT("\xc8\0\0\0", 4);         /* data size */
    PUT("\x09\0\0\0\0\0\0\0", 8); /* lamport max */
    PUT("\x02\0ab", 4);
    PUT("\x02\0cd", 4);
    PUT("\x03", 1); /* bloom hashes */
    PUT("\x04\0\0\0", 4);
    PUT(bloom_bits, 4);
#undef PUT
#undef FILL
    assert_int_equal(size, (size_t)(p - want));
    assert_memory_equal(buf, want, size);
    want_decode(want, size, PSL_OK);
    free(buf);
}

/* Offsets into the encoding of the sample. */
#define OFF_HORIZON (4u + 1 + 8 + HASH_SIZE + 8)
#define OFF_HEADS   (OFF_HORIZON + 8)
#define OFF_HEAD(i) (OFF_HEADS + 4 + (i)*LSM_INDEX_HEAD_SIZE)
#define OFF_LEVELS  OFF_HEAD(3)
#define OFF_L0_RUNS (OFF_LEVELS + 1)
#define OFF_RUN0    (OFF_L0_RUNS + 4) /* block count of level 0 run 0 */
#define OFF_BLOCK0  (OFF_RUN0 + 4)    /* the block "k".."k" */
#define BLOCK0_SIZE (LSM_BLOCK_REF_FIXED_SIZE + 1 + 1 + sizeof bloom_bits)
#define OFF_RUN1    (OFF_BLOCK0 + BLOCK0_SIZE)
#define OFF_BLOCK1  (OFF_RUN1 + 4) /* "a".."f" */
/* Fields of a block entry at offset b (for 1-byte keys). */
#define B_ENTRIES(b) ((b) + 32)
#define B_DATA(b)    ((b) + 36)
#define B_MINSZ(b)   ((b) + 48)
#define B_MIN(b)     ((b) + 50)
#define B_MAXSZ(b)   ((b) + 51)
#define B_MAX(b)     ((b) + 53)
#define B_HASHES(b)  ((b) + 54)
#define B_BLOOMSZ(b) ((b) + 55)

static void test_index_refusals(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    size_t size;
    uint8_t *good = encode_index(&s.ix, &size);
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    want_decode(good, size, PSL_OK);
    assert_int_equal(good[OFF_LEVELS], 3);
    assert_int_equal(get_le32(good + OFF_L0_RUNS), 2);
    assert_int_equal(get_le32(good + OFF_RUN0), 1);
    assert_int_equal(good[B_MIN(OFF_BLOCK0)], 'k');
    assert_int_equal(get_le32(good + OFF_RUN1), 2);
    assert_int_equal(good[B_MAX(OFF_BLOCK1)], 'f');

#define MUTATE(stmt, want)                                                                         \
    do {                                                                                           \
        memcpy(buf, good, size);                                                                   \
        stmt;                                                                                      \
        want_decode(buf, size, want);                                                              \
    } while (0)
    MUTATE(buf[1] = 'X', PSL_ERR_BAD_MAGIC);
    MUTATE(buf[4] = 2, PSL_ERR_BAD_VERSION);
    MUTATE(put_le32(buf + OFF_HEADS, PSL_CUT_HEADS_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + OFF_HEADS, PSL_CUT_HEADS_MAX), PSL_ERR_TRUNCATED);
    MUTATE(put_le64(buf + OFF_HEAD(1) + 32, 0), PSL_ERR_MALFORMED);        /* seq 0 */
    MUTATE(memset(buf + OFF_HEAD(1), 0x10, HASH_SIZE), PSL_ERR_MALFORMED); /* duplicate writer */
    MUTATE(memset(buf + OFF_HEAD(2), 0x01, HASH_SIZE), PSL_ERR_MALFORMED); /* descending */
    MUTATE(put_le64(buf + OFF_HORIZON, 101), PSL_ERR_MALFORMED); /* above the first head */
    MUTATE(put_le64(buf + OFF_HORIZON, 0), PSL_OK);
    MUTATE(put_le64(buf + OFF_HEAD(2) + 40, 99), PSL_ERR_MALFORMED); /* a head below it */
    MUTATE(buf[OFF_LEVELS] = LSM_LEVELS_MAX + 1, PSL_ERR_TOO_LARGE);
    MUTATE(buf[OFF_LEVELS] = 2, PSL_ERR_MALFORMED); /* level 1 is empty: a trailing empty level */
    MUTATE(buf[OFF_LEVELS] = 0, PSL_ERR_TRAILING);
    MUTATE(put_le32(buf + OFF_L0_RUNS, LSM_LEVEL0_RUNS_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + OFF_L0_RUNS, 1000), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + OFF_L0_RUNS, LSM_LEVEL0_RUNS_MAX), PSL_ERR_TRUNCATED);
    MUTATE(put_le32(buf + OFF_RUN0, 0), PSL_ERR_MALFORMED);
    MUTATE(put_le32(buf + OFF_RUN0, LSM_INDEX_BLOCKS_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + OFF_RUN0, 1000), PSL_ERR_TRUNCATED);
    MUTATE(put_le32(buf + B_ENTRIES(OFF_BLOCK0), 0), PSL_ERR_MALFORMED);
    MUTATE(put_le32(buf + B_ENTRIES(OFF_BLOCK0), LSM_BLOCK_ENTRIES_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + B_ENTRIES(OFF_BLOCK0), 2), PSL_ERR_MALFORMED); /* min == max, 2 keys */
    MUTATE(put_le32(buf + B_ENTRIES(OFF_BLOCK1), 1), PSL_ERR_MALFORMED); /* min < max, 1 key */
    MUTATE(put_le32(buf + B_DATA(OFF_BLOCK0), LSM_BLOCK_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + B_DATA(OFF_BLOCK0), LSM_BLOCK_HEADER_SIZE + LSM_ENTRY_OVERHEAD),
           PSL_ERR_MALFORMED); /* smaller than one entry */
    MUTATE(put_le32(buf + B_DATA(OFF_BLOCK0), LSM_BLOCK_HEADER_SIZE + LSM_ENTRY_OVERHEAD + 1),
           PSL_OK);
    MUTATE(put_le16(buf + B_MINSZ(OFF_BLOCK0), 0), PSL_ERR_MALFORMED);
    MUTATE(put_le16(buf + B_MINSZ(OFF_BLOCK0), PSL_KEY_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le16(buf + B_MAXSZ(OFF_BLOCK0), 0), PSL_ERR_MALFORMED);
    MUTATE(put_le16(buf + B_MAXSZ(OFF_BLOCK0), PSL_KEY_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(buf[B_MAX(OFF_BLOCK1)] = '0', PSL_ERR_MALFORMED); /* min > max */
    MUTATE(buf[B_HASHES(OFF_BLOCK0)] = 0, PSL_ERR_MALFORMED);
    MUTATE(buf[B_HASHES(OFF_BLOCK0)] = LSM_BLOOM_HASHES_MAX + 1, PSL_ERR_TOO_LARGE);
    MUTATE(buf[B_HASHES(OFF_BLOCK0)] = LSM_BLOOM_HASHES_MAX, PSL_OK);
    MUTATE(put_le32(buf + B_BLOOMSZ(OFF_BLOCK0), 0), PSL_ERR_MALFORMED);
    MUTATE(put_le32(buf + B_BLOOMSZ(OFF_BLOCK0), LSM_BLOOM_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    MUTATE(put_le32(buf + B_BLOOMSZ(OFF_BLOCK0), LSM_BLOOM_SIZE_MAX), PSL_ERR_TRUNCATED);
    /* Run 1 of level 0: "a".."f" then "g".."z"; make the first end at "h": they overlap. */
    MUTATE(buf[B_MAX(OFF_BLOCK1)] = 'h', PSL_ERR_MALFORMED);
    /* ... or end exactly where the next begins. */
    MUTATE(buf[B_MAX(OFF_BLOCK1)] = 'g', PSL_ERR_MALFORMED);
#undef MUTATE

    for (size_t n = 0; n < size; n++)
        want_decode(good, n, PSL_ERR_TRUNCATED);
    memcpy(buf, good, size);
    buf[size] = 0;
    want_decode(buf, size + 1, PSL_ERR_TRAILING);
    want_decode(good, LSM_INDEX_SIZE_MAX + 1, PSL_ERR_TOO_LARGE);
    free(buf);
    free(good);
}

/* Deeper levels hold at most one run. */
static void test_index_one_run_below_level0(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    struct lsm_run two[2] = {s.l2run[0], s.l2run[0]};
    s.ix.levels[2] = (struct lsm_level){.runs = two, .run_count = 2};
    size_t size;
    uint8_t *buf = encode_index(&s.ix, &size);
    want_decode(buf, size, PSL_ERR_MALFORMED);
    free(buf);
    /* Overlapping runs are fine in level 0. */
    s.ix.levels[2] = (struct lsm_level){.runs = s.l2run, .run_count = 1};
    struct lsm_run l0[3] = {s.l2run[0], s.l2run[0], s.l0[0]};
    s.ix.levels[0] = (struct lsm_level){.runs = l0, .run_count = 3};
    buf = encode_index(&s.ix, &size);
    want_decode(buf, size, PSL_OK);
    free(buf);
}

static void test_index_encode_limits(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    struct lsm_index ix = s.ix;
    ix.head_count = PSL_CUT_HEADS_MAX + 1;
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    ix = s.ix;
    ix.level_count = LSM_LEVELS_MAX + 1;
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    ix = s.ix;
    struct lsm_run many[LSM_LEVEL0_RUNS_MAX + 1];
    for (size_t i = 0; i < LSM_LEVEL0_RUNS_MAX + 1; i++)
        many[i] = s.l0[0];
    ix.levels[0] = (struct lsm_level){.runs = many, .run_count = LSM_LEVEL0_RUNS_MAX + 1};
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    /* Too many blocks, and too many bytes. */
    struct lsm_block_ref *refs = malloc((LSM_INDEX_BLOCKS_MAX + 1) * sizeof *refs);
    assert_non_null(refs);
    for (size_t i = 0; i < LSM_INDEX_BLOCKS_MAX + 1; i++)
        refs[i] = s.l0a[0];
    struct lsm_run big = {.blocks = refs, .block_count = LSM_INDEX_BLOCKS_MAX + 1};
    ix = s.ix;
    ix.levels[2] = (struct lsm_level){.runs = &big, .run_count = 1};
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    static uint8_t wide[LSM_BLOOM_SIZE_MAX];
    for (size_t i = 0; i < 40; i++) {
        refs[i].bloom = wide;
        refs[i].bloom_size = LSM_BLOOM_SIZE_MAX;
    }
    big.block_count = 40; /* 40 x 128 KiB > 4 MiB */
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    big.block_count = 30;
    assert_true(lsm_index_encoded_size(&ix) > 0);
    refs[0].bloom_size = LSM_BLOOM_SIZE_MAX + 1;
    assert_int_equal(lsm_index_encoded_size(&ix), 0);
    uint8_t small[16];
    struct wr w;
    wr_init(&w, small, sizeof small);
    assert_int_equal(lsm_index_encode(&s.ix, &w), PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 0);
    free(refs);
}

/* ---- queries ---- */

static void test_index_queries(void **state)
{
    (void)state;
    struct sample s;
    sample_init(&s);
    size_t size;
    uint8_t *buf = encode_index(&s.ix, &size);
    struct lsm_index ix;
    assert_int_equal(lsm_index_decode(&ix, buf, size), PSL_OK);
    free(buf);
    /* Heads: writers 0x10.., 0x20.., 0x30.. with lamports 100, 150, 200. */
    uint8_t w[HASH_SIZE];
    memset(w, 0x20, HASH_SIZE);
    const struct lsm_index_head *h = lsm_index_head_find(&ix, w);
    assert_non_null(h);
    assert_true(h->seq == 11 && h->lamport == 150);
    assert_true(lsm_index_covers(&ix, w, 149));
    assert_false(lsm_index_covers(&ix, w, 150)); /* the head record's own stamp is not an op's */
    assert_false(lsm_index_covers(&ix, w, 151));
    memset(w, 0x15, HASH_SIZE);
    assert_null(lsm_index_head_find(&ix, w));
    assert_false(lsm_index_covers(&ix, w, 0)); /* a writer the cut does not list */
    memset(w, 0x30, HASH_SIZE);
    assert_true(lsm_index_covers(&ix, w, 199));
    memset(w, 0x10, HASH_SIZE);
    assert_non_null(lsm_index_head_find(&ix, w));
    assert_true(lsm_index_horizon(&ix) == 100);
    assert_int_equal(ix.head_count, 3);
    assert_true(lsm_index_lamport_max(&ix) == 140);
    assert_true(lsm_level_data_size(&ix.levels[1]) == 0);
    assert_true(lsm_level_data_size(&ix.levels[0]) ==
                s.l0a[0].data_size + s.l0b[0].data_size + s.l0b[1].data_size);
    lsm_index_deinit(&ix);
}

/* ---- records ---- */

static void test_index_seal_open(void **state)
{
    struct fx *f = *state;
    struct writer_keys ck;
    fx_writer_keys(&ck, 7, f->capsule_key);
    struct writer_cert compactor, worker_cert;
    fx_cert_make(f, &compactor, &ck, ROLE_COMPACTOR, &f->owner);
    assert_int_equal(cert_verify(&compactor, NULL, &f->meta, FX_NOW), PSL_OK);
    fx_cert_make(f, &worker_cert, &ck, ROLE_WORKER, &f->owner);
    struct record_chain rc;
    record_chain_init(&rc, f->meta.name);
    rc.seq = 1; /* after the compactor's CERT record */
    memset(rc.head, 0x11, HASH_SIZE);

    struct sample s;
    sample_init(&s);
    size_t plain = lsm_index_encoded_size(&s.ix);
    size_t cap = record_sealed_size(plain, REC_LSM_INDEX);
    uint8_t *rec = malloc(cap);
    assert_non_null(rec);
    size_t size;
    uint8_t hash[HASH_SIZE];
    assert_int_equal(lsm_index_seal(&rc, &ck, 500, &s.ix, rec, cap - 1, &size, hash),
                     PSL_ERR_INVALID_ARG);
    assert_int_equal(lsm_index_seal(&rc, &ck, 500, &s.ix, rec, cap, &size, hash), PSL_OK);
    assert_int_equal(size, cap);
    uint8_t prev[HASH_SIZE];
    memset(prev, 0x11, HASH_SIZE);

    struct lsm_index ix;
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &compactor, FX_NOW, prev, f->capsule_key, &ix), PSL_OK);
    assert_index_equal(&ix, &s.ix);
    lsm_index_deinit(&ix);
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &compactor, FX_NOW, NULL, f->capsule_key, &ix), PSL_OK);
    lsm_index_deinit(&ix);

    memset(&ix, 0x77, sizeof ix);
    /* Not a compactor. */
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &worker_cert, FX_NOW, NULL, f->capsule_key, &ix),
        PSL_ERR_CERT_ROLE);
    /* Another writer's certificate. */
    assert_int_equal(lsm_index_open(rec, size, &f->meta, &f->w[FX_COORD].cert, FX_NOW, NULL,
                                    f->capsule_key, &ix),
                     PSL_ERR_UNKNOWN_WRITER);
    assert_int_equal(lsm_index_open(rec, size, &f->meta, NULL, FX_NOW, NULL, f->capsule_key, &ix),
                     PSL_ERR_UNKNOWN_WRITER);
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &compactor, FX_CERT_NA + 1, NULL, f->capsule_key, &ix),
        PSL_ERR_CERT_EXPIRED);
    assert_int_equal(
        lsm_index_open(rec, size, &f->other, &compactor, FX_NOW, NULL, f->capsule_key, &ix),
        PSL_ERR_WRONG_CAPSULE);
    uint8_t bad_prev[HASH_SIZE];
    memset(bad_prev, 0x12, HASH_SIZE);
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &compactor, FX_NOW, bad_prev, f->capsule_key, &ix),
        PSL_ERR_BAD_PREV);
    assert_int_equal(
        lsm_index_open(rec, size, &f->meta, &compactor, FX_NOW, NULL, f->other_key, &ix),
        PSL_ERR_DECRYPT);
    assert_int_equal(
        lsm_index_open(rec, size - 1, &f->meta, &compactor, FX_NOW, NULL, f->capsule_key, &ix),
        PSL_ERR_TRUNCATED);
    /* Any changed bit of the header or payload breaks the signature. */
    for (size_t bit = 0; bit < (size - PSL_RECORD_SIG_SIZE) * 8; bit += 41) {
        tu_flip(rec, bit);
        psl_err err =
            lsm_index_open(rec, size, &f->meta, &compactor, FX_NOW, NULL, f->capsule_key, &ix);
        if (err == PSL_OK)
            fail_msg("index record with bit %zu flipped opens", bit);
        tu_flip(rec, bit);
    }
    assert_true(ix.generation == 0x7777777777777777ull);

    /* A block record is not an index, even from the compactor. */
    uint8_t blk[PSL_RECORD_HEADER_SIZE + 64 + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE];
    memset(blk + PSL_RECORD_HEADER_SIZE, 0, 64);
    size_t bsize;
    uint8_t bhash[HASH_SIZE];
    assert_int_equal(lsm_block_seal(&rc, &ck, 501, blk, sizeof blk, 64, &bsize, bhash), PSL_OK);
    assert_int_equal(
        lsm_index_open(blk, bsize, &f->meta, &compactor, FX_NOW, NULL, f->capsule_key, &ix),
        PSL_ERR_BAD_TYPE);

    /* A signed, well-encrypted index whose plaintext is malformed. */
    uint8_t junk[PSL_RECORD_HEADER_SIZE + 16 + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE];
    memcpy(junk + PSL_RECORD_HEADER_SIZE, "PSLI\x01garbage-garb", 16);
    assert_int_equal(
        record_chain_seal(&rc, &ck, REC_LSM_INDEX, 502, junk, sizeof junk, 16, &bsize, bhash),
        PSL_OK);
    assert_int_equal(
        lsm_index_open(junk, bsize, &f->meta, &compactor, FX_NOW, NULL, f->capsule_key, &ix),
        PSL_ERR_TRUNCATED);

    writer_keys_deinit(&ck);
    free(rec);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    tu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_round_trip),
        cmocka_unit_test(test_index_known_answer),
        cmocka_unit_test(test_index_refusals),
        cmocka_unit_test(test_index_one_run_below_level0),
        cmocka_unit_test(test_index_encode_limits),
        cmocka_unit_test(test_index_queries),
        T(test_index_seal_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
