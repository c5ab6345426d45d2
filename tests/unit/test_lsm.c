/* test_lsm.c: unit tests of CapsuleDB as a whole (src/lsm/compact.c, lookup.c) over real sealed
 * LSM_BLOCK records held by an in-memory store with scriptable sources (honest, missing,
 * tampering, substituting, truncating): last-writer-wins within and across runs (equal lamports
 * from different writers, late operations with small stamps), when tombstones go and when they
 * must stay, the level policy, blocks kept by reference, determinism, refusal of tampered and
 * substituted blocks with fallback to an honest source, the cache's byte bound and LRU order,
 * and a seeded differential test against a plain map through many flushes and compactions. */
#include <stdlib.h>

#include "capsule_fixture.h"
#include "lsm/block.h"
#include "lsm/bloom.h"
#include "lsm/compact.h"
#include "lsm/index.h"
#include "lsm/lookup.h"

/* ---- a store of sealed records, the compactor's sink, and scriptable sources ---- */

enum src_mode { SRC_HONEST, SRC_MISSING, SRC_TAMPER, SRC_SUBSTITUTE, SRC_TRUNCATE, SRC_IO };
#define SOURCES_MAX 4

struct stored {
    uint8_t hash[HASH_SIZE];
    uint8_t *rec;
    size_t size;
};

struct store {
    struct writer_keys wk; /* the compactor */
    struct record_chain rc;
    uint64_t lamport;
    struct stored *items;
    size_t n, cap;
    enum src_mode mode[SOURCES_MAX];
    unsigned calls[SOURCES_MAX];
    size_t sink_fail_at; /* the sink fails its n-th call (1-based); 0: never */
    size_t sink_calls;
};

static uint8_t writer_ids[8][HASH_SIZE];

static void store_init(struct store *st, struct fx *f)
{
    memset(st, 0, sizeof *st);
    fx_writer_keys(&st->wk, 7, f->capsule_key);
    record_chain_init(&st->rc, f->meta.name);
    st->rc.seq = 1; /* seq 1 is the compactor's CERT record */
    memset(st->rc.head, 0x11, HASH_SIZE);
    for (unsigned i = 0; i < 8; i++)
        memset(writer_ids[i], (int)(0x10 * (i + 1)), HASH_SIZE);
}

static void store_deinit(struct store *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->items[i].rec);
    free(st->items);
    writer_keys_deinit(&st->wk);
}

static const struct stored *store_find(const struct store *st, const uint8_t hash[HASH_SIZE])
{
    for (size_t i = st->n; i-- > 0;)
        if (memcmp(st->items[i].hash, hash, HASH_SIZE) == 0)
            return &st->items[i];
    return NULL;
}

static psl_err sink_put(void *ctx, uint8_t *buf, size_t cap, size_t plain_size,
                        uint8_t hash_out[HASH_SIZE])
{
    struct store *st = ctx;
    if (++st->sink_calls == st->sink_fail_at)
        return PSL_ERR_STORAGE_FULL;
    size_t size;
    psl_err err =
        lsm_block_seal(&st->rc, &st->wk, ++st->lamport, buf, cap, plain_size, &size, hash_out);
    if (err)
        return err;
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 64;
        st->items = realloc(st->items, st->cap * sizeof *st->items);
        assert_non_null(st->items);
    }
    struct stored *s = &st->items[st->n++];
    memcpy(s->hash, hash_out, HASH_SIZE);
    s->rec = malloc(size);
    assert_non_null(s->rec);
    memcpy(s->rec, buf, size);
    s->size = size;
    return PSL_OK;
}

static psl_err fetch(void *ctx, unsigned source, const uint8_t hash[HASH_SIZE], uint8_t *buf,
                     size_t cap, size_t *size)
{
    struct store *st = ctx;
    assert_true(source < SOURCES_MAX);
    st->calls[source]++;
    const struct stored *s = store_find(st, hash);
    switch (st->mode[source]) {
    case SRC_MISSING:
        return PSL_ERR_NOT_FOUND;
    case SRC_IO:
        return PSL_ERR_TIMEOUT;
    case SRC_SUBSTITUTE: /* another valid block record of the same compactor */
        for (size_t i = 0; i < st->n; i++)
            if (memcmp(st->items[i].hash, hash, HASH_SIZE) != 0) {
                s = &st->items[i];
                break;
            }
        break;
    default:
        break;
    }
    if (!s)
        return PSL_ERR_NOT_FOUND;
    assert_true(s->size <= cap);
    memcpy(buf, s->rec, s->size);
    *size = s->size;
    if (st->mode[source] == SRC_TAMPER)
        buf[PSL_RECORD_HEADER_SIZE + 1] ^= 0x40;
    if (st->mode[source] == SRC_TRUNCATE)
        *size -= 1;
    return PSL_OK;
}

static struct lsm_sink store_sink(struct store *st)
{
    return (struct lsm_sink){.put = sink_put, .ctx = st};
}

static void reader_make(struct lsm_reader *rd, struct fx *f, struct store *st, unsigned sources,
                        size_t cache_bytes)
{
    struct lsm_source src = {.fetch = fetch, .ctx = st, .count = sources};
    assert_int_equal(lsm_reader_init(rd, f->meta.name, f->capsule_key, &src, cache_bytes), PSL_OK);
}

/* ---- building updates and cuts ---- */

static struct lsm_entry put_e(const char *key, const char *value, uint64_t lamport, unsigned w)
{
    return (struct lsm_entry){.kind = OP_PUT,
                              .lamport = lamport,
                              .writer = writer_ids[w],
                              .key = (const uint8_t *)key,
                              .key_size = (uint16_t)strlen(key),
                              .value = (const uint8_t *)value,
                              .value_size = (uint32_t)strlen(value)};
}

static struct lsm_entry del_e(const char *key, uint64_t lamport, unsigned w)
{
    return (struct lsm_entry){.kind = OP_DEL,
                              .lamport = lamport,
                              .writer = writer_ids[w],
                              .key = (const uint8_t *)key,
                              .key_size = (uint16_t)strlen(key)};
}

/* A cut listing writers 0..3, every head at head_lamport, the horizon at horizon. */
static void flush_at(struct store *st, const struct lsm_index *old, const struct lsm_policy *p,
                     uint64_t epoch, uint64_t head_lamport, uint64_t horizon,
                     const struct lsm_entry *u, size_t n, struct lsm_index *out,
                     struct lsm_compact_stats *stats)
{
    struct lsm_index_head heads[4];
    memset(heads, 0, sizeof heads);
    for (unsigned i = 0; i < 4; i++) {
        memcpy(heads[3 - i].writer, writer_ids[i], HASH_SIZE); /* given in reverse order */
        heads[3 - i].seq = epoch + 1;
        heads[3 - i].lamport = head_lamport;
    }
    struct lsm_cut cut = {.epoch = epoch, .horizon = horizon, .heads = heads, .head_count = 4};
    memset(cut.sync_hash, (int)epoch, HASH_SIZE);
    struct lsm_sink sink = store_sink(st);
    assert_int_equal(lsm_flush(old, p, &cut, u, n, &sink, out, stats), PSL_OK);
}

static void small_policy(struct lsm_policy *p)
{
    lsm_policy_default(p);
    p->block_target_size = 256;
    p->level0_runs_max = 2;
    p->level1_size_max = 2048;
    p->growth_factor = 3;
    p->level_count_max = 4;
}

/* Replaces *ix by the merge of its level `level` into the next. */
static void compact_level(struct store *st, struct lsm_reader *rd, const struct lsm_policy *p,
                          struct lsm_index *ix, size_t level, struct lsm_compact_stats *stats)
{
    struct lsm_sink sink = store_sink(st);
    struct lsm_index next;
    assert_int_equal(lsm_compact_level(ix, p, level, rd, &sink, &next, stats), PSL_OK);
    assert_true(next.generation == ix->generation + 1);
    lsm_index_deinit(ix);
    *ix = next;
}

static void replace(struct lsm_index *ix, struct lsm_index *next)
{
    lsm_index_deinit(ix);
    *ix = *next;
}

/* Looks key up and checks the answer: want_kind 0 = absent. */
static void expect(struct lsm_reader *rd, const struct lsm_index *ix, const char *key,
                   uint8_t want_kind, const char *want_value, uint64_t want_lamport,
                   unsigned want_writer)
{
    struct lsm_result res;
    psl_err err = lsm_lookup(rd, ix, (const uint8_t *)key, strlen(key), &res);
    if (err)
        fail_msg("lookup %s: %s", key, psl_err_name(err));
    if (!want_kind) {
        if (res.found)
            fail_msg("lookup %s: found, want absent", key);
        lsm_result_release(rd, &res);
        return;
    }
    if (!res.found)
        fail_msg("lookup %s: absent", key);
    assert_int_equal(res.entry.kind, want_kind);
    assert_true(res.entry.lamport == want_lamport);
    assert_memory_equal(res.entry.writer, writer_ids[want_writer], HASH_SIZE);
    if (want_kind == OP_PUT) {
        assert_int_equal(res.entry.value_size, strlen(want_value));
        if (res.entry.value_size)
            assert_memory_equal(res.entry.value, want_value, res.entry.value_size);
    }
    lsm_result_release(rd, &res);
}

/* ---- last writer wins ---- */

static void test_flush_lww(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_policy p;
    lsm_policy_default(&p);
    const struct lsm_entry u[] = {
        put_e("a", "a-old", 5, 0), put_e("a", "a-new", 6, 0),   /* higher lamport wins */
        put_e("b", "b-w1", 7, 1),  put_e("b", "b-w2", 7, 2),    /* equal lamport: writer */
        put_e("c", "c", 9, 1),     del_e("c", 9, 1),            /* same stamp: the delete */
        del_e("d", 3, 0),          put_e("d", "d-later", 4, 3), /* a put after a delete */
        put_e("e", "e-dup", 2, 0), put_e("e", "e-dup", 2, 0),   /* duplicates */
        put_e("f", "", 1, 0),                                   /* an empty value */
    };
    struct lsm_index empty, ix;
    lsm_index_init(&empty);
    struct lsm_compact_stats stats = {0};
    flush_at(&st, &empty, &p, 1, 100, 100, u, sizeof u / sizeof *u, &ix, &stats);
    assert_int_equal(stats.versions_dropped, 5);
    assert_int_equal(stats.blocks_written, 1);
    assert_true(ix.generation == 1 && ix.epoch == 1 && ix.horizon == 100);
    assert_int_equal(ix.level_count, 1);
    assert_int_equal(ix.levels[0].run_count, 1);
    assert_int_equal(ix.levels[0].runs[0].blocks[0].entry_count, 6);
    /* Heads were sorted by writer. */
    assert_memory_equal(ix.heads[0].writer, writer_ids[0], HASH_SIZE);

    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    expect(&rd, &ix, "a", OP_PUT, "a-new", 6, 0);
    expect(&rd, &ix, "b", OP_PUT, "b-w2", 7, 2);
    expect(&rd, &ix, "c", OP_DEL, NULL, 9, 1);
    expect(&rd, &ix, "d", OP_PUT, "d-later", 4, 3);
    expect(&rd, &ix, "e", OP_PUT, "e-dup", 2, 0);
    expect(&rd, &ix, "f", OP_PUT, "", 1, 0);
    expect(&rd, &ix, "g", 0, NULL, 0, 0);
    expect(&rd, &ix, "0", 0, NULL, 0, 0);
    struct lsm_result res;
    assert_int_equal(lsm_lookup(&rd, &ix, (const uint8_t *)"a", 0, &res), PSL_ERR_INVALID_ARG);
    static uint8_t long_key[PSL_KEY_SIZE_MAX + 1];
    assert_int_equal(lsm_lookup(&rd, &ix, long_key, sizeof long_key, &res), PSL_ERR_TOO_LARGE);
    assert_int_equal(rd.stats.misses, 1); /* one block, fetched once */

    /* Across runs: a newer run's smaller stamp loses to an older run's larger one. */
    const struct lsm_entry late[] = {put_e("a", "late", 3, 3), put_e("b", "b-w3", 7, 3)};
    struct lsm_index ix2;
    flush_at(&st, &ix, &p, 2, 200, 200, late, 2, &ix2, NULL);
    assert_int_equal(ix2.levels[0].run_count, 2);
    expect(&rd, &ix2, "a", OP_PUT, "a-new", 6, 0);
    expect(&rd, &ix2, "b", OP_PUT, "b-w3", 7, 3); /* equal lamport, greater writer */
    /* The newer run's block cannot beat "a-new"... it is consulted first, then the older. And a
     * key whose newest run has the greater stamp skips the older block by lamport_max. */
    const struct lsm_entry hot[] = {put_e("c", "c-top", 1000, 0)};
    struct lsm_index ix3;
    flush_at(&st, &ix2, &p, 3, 2000, 0, hot, 1, &ix3, NULL);
    uint64_t skips = rd.stats.lamport_skips;
    expect(&rd, &ix3, "c", OP_PUT, "c-top", 1000, 0);
    assert_true(rd.stats.lamport_skips == skips + 1);
    lsm_index_deinit(&ix3);
    lsm_index_deinit(&ix2);

    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

static void test_flush_refusals_and_splits(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_policy p;
    small_policy(&p);
    char keys[64][8], vals[64][24];
    struct lsm_entry u[64];
    for (unsigned i = 0; i < 64; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02u", 63 - i); /* given in descending order */
        snprintf(vals[i], sizeof vals[i], "value-%u", i);
        u[i] = put_e(keys[i], vals[i], 10 + i, i % 4);
    }
    struct lsm_index empty, ix;
    lsm_index_init(&empty);
    struct lsm_compact_stats stats = {0};
    flush_at(&st, &empty, &p, 1, 100, 50, u, 64, &ix, &stats);
    const struct lsm_run *run = &ix.levels[0].runs[0];
    assert_true(run->block_count > 10);
    assert_int_equal(stats.blocks_written, run->block_count);
    size_t entries = 0;
    for (size_t i = 0; i < run->block_count; i++) {
        entries += run->blocks[i].entry_count;
        /* Split at the target: over it by less than one entry. */
        assert_true(run->blocks[i].data_size <= p.block_target_size);
        if (i + 1 < run->block_count)
            assert_true(run->blocks[i].data_size + LSM_ENTRY_OVERHEAD + 3 + 8 >
                        p.block_target_size);
    }
    assert_int_equal(entries, 64);
    assert_memory_equal(run->blocks[0].min_key, "k00", 3);

    /* Refusals: the old index and out are left alone. */
    struct lsm_sink sink = store_sink(&st);
    struct lsm_index_head h = {.seq = 1, .lamport = 10};
    struct lsm_index_head two[2] = {h, h};
    struct lsm_cut cut = {.epoch = 1, .heads = &h, .head_count = 1};
    struct lsm_index out;
    memset(&out, 0x77, sizeof out);
    assert_int_equal(lsm_flush(&ix, &p, &cut, u, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    cut.epoch = 2;
    cut.horizon = 11; /* above a head */
    assert_int_equal(lsm_flush(&ix, &p, &cut, u, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    cut.horizon = 0;
    cut.heads = two;
    cut.head_count = 2;
    assert_int_equal(lsm_flush(&ix, &p, &cut, u, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    cut.heads = NULL;
    cut.head_count = 0;
    cut.horizon = 1;
    assert_int_equal(lsm_flush(&ix, &p, &cut, u, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    cut.horizon = 0;
    struct lsm_entry bad = u[0];
    bad.key_size = 0;
    assert_int_equal(lsm_flush(&ix, &p, &cut, &bad, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    struct lsm_policy badp = p;
    badp.growth_factor = 1;
    assert_int_equal(lsm_flush(&ix, &badp, &cut, u, 1, &sink, &out, NULL), PSL_ERR_INVALID_ARG);
    /* A sink that fails aborts the step. */
    st.sink_fail_at = st.sink_calls + 2;
    assert_int_equal(lsm_flush(&ix, &p, &cut, u, 64, &sink, &out, NULL), PSL_ERR_STORAGE_FULL);
    st.sink_fail_at = 0;
    assert_true(out.generation == 0x7777777777777777ull);

    /* An epoch without updates only moves the cut. */
    assert_int_equal(lsm_flush(&ix, &p, &cut, NULL, 0, &sink, &out, NULL), PSL_OK);
    assert_true(out.generation == 2 && out.epoch == 2 && out.head_count == 0);
    assert_int_equal(out.levels[0].run_count, 1);
    assert_int_equal(lsm_index_block_count(&out), lsm_index_block_count(&ix));
    lsm_index_deinit(&out);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* ---- tombstones ---- */

static void test_tombstones(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    struct lsm_policy p;
    small_policy(&p);
    struct lsm_index ix, next;
    lsm_index_init(&ix);
    struct lsm_compact_stats stats = {0};

    const struct lsm_entry base[] = {put_e("k1", "one", 10, 0), put_e("k2", "two", 11, 0),
                                     put_e("k3", "three", 12, 0)};
    flush_at(&st, &ix, &p, 1, 20, 20, base, 3, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats); /* L0 -> L1 */
    assert_int_equal(ix.level_count, 2);

    /* A delete merged into the bottom level, below the horizon, nowhere else: it goes. */
    const struct lsm_entry d1[] = {del_e("k1", 30, 1)};
    flush_at(&st, &ix, &p, 2, 40, 40, d1, 1, &next, NULL);
    replace(&ix, &next);
    expect(&rd, &ix, "k1", OP_DEL, NULL, 30, 1);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    assert_int_equal(stats.tombstones_dropped, 1);
    expect(&rd, &ix, "k1", 0, NULL, 0, 0);
    expect(&rd, &ix, "k2", OP_PUT, "two", 11, 0);

    /* Not at the bottom: move level 1 down to level 2 first, then delete k2 above it. */
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(ix.level_count, 3);
    assert_int_equal(ix.levels[1].run_count, 0);
    const struct lsm_entry d2[] = {del_e("k2", 50, 1)};
    flush_at(&st, &ix, &p, 3, 60, 60, d2, 1, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats); /* L0 -> L1, and L2 still holds k2 */
    assert_int_equal(stats.tombstones_dropped, 1);
    expect(&rd, &ix, "k2", OP_DEL, NULL, 50, 1);
    compact_level(&st, &rd, &p, &ix, 1, &stats); /* L1 -> L2, the bottom */
    assert_int_equal(stats.tombstones_dropped, 2);
    expect(&rd, &ix, "k2", 0, NULL, 0, 0);

    /* At the horizon or above it: kept, even at the bottom. */
    const struct lsm_entry d3[] = {del_e("k3", 70, 1)};
    flush_at(&st, &ix, &p, 4, 70, 70, d3, 1, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(stats.tombstones_dropped, 2);
    expect(&rd, &ix, "k3", OP_DEL, NULL, 70, 1);
    /* ... and dropped once the horizon passes it, by the next merge that rewrites its block
     * (a run whose range spans k3). */
    const struct lsm_entry touch[] = {put_e("k0", "zero", 80, 0), put_e("k4", "four", 80, 0)};
    flush_at(&st, &ix, &p, 5, 90, 90, touch, 2, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(stats.tombstones_dropped, 3);
    expect(&rd, &ix, "k3", 0, NULL, 0, 0);
    expect(&rd, &ix, "k0", OP_PUT, "zero", 80, 0);

    /* A run outside the merge may hold the key with a smaller stamp (a late operation): the
     * tombstone must stay, or that PUT would come back. Level 1 holds DEL k0 and DEL k4 @100;
     * level 0 gets a late PUT k4 @85; merging level 1 into the bottom drops only DEL k0. */
    const struct lsm_entry d4[] = {del_e("k0", 100, 1), del_e("k4", 100, 1)};
    flush_at(&st, &ix, &p, 6, 110, 110, d4, 2, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    const struct lsm_entry late[] = {put_e("k4", "zombie", 85, 2)};
    flush_at(&st, &ix, &p, 7, 120, 110, late, 1, &next, NULL);
    replace(&ix, &next);
    assert_int_equal(ix.levels[0].run_count, 1);
    assert_int_equal(ix.levels[1].run_count, 1);
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(stats.tombstones_dropped, 4);
    expect(&rd, &ix, "k4", OP_DEL, NULL, 100, 1);
    expect(&rd, &ix, "k0", 0, NULL, 0, 0);
    /* When level 0 comes down, the delete still wins and the zombie is gone for good. */
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(stats.tombstones_dropped, 5);
    expect(&rd, &ix, "k4", 0, NULL, 0, 0);
    assert_int_equal(lsm_index_block_count(&ix), 0);
    assert_int_equal(ix.level_count, 0);

    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* A slice of a level merged into the bottom: a target block it rewrites may reach past the
 * slice, and a block that stays in the level may hold a late, smaller-stamped PUT of a key the
 * target deletes. The tombstone must stay until that block comes down too. */
static void test_slice_keeps_tombstone(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    struct lsm_policy p;
    small_policy(&p);
    struct lsm_index ix, next;
    lsm_index_init(&ix);
    struct lsm_compact_stats stats = {0};

    /* The bottom (level 2): one block [a, z] holding DEL m @100, kept so far (horizon 50). */
    const struct lsm_entry base[] = {put_e("a", "x", 10, 0), del_e("m", 100, 1),
                                     put_e("z", "x", 10, 0)};
    flush_at(&st, &ix, &p, 1, 101, 50, base, 3, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    compact_level(&st, &rd, &p, &ix, 1, &stats);
    assert_int_equal(ix.level_count, 3);
    assert_int_equal(ix.levels[2].runs[0].block_count, 1);
    assert_int_equal(stats.tombstones_dropped, 0);

    /* Level 1: one key per block (b, c, m, n); m is a late PUT @85 by writer 2. */
    char big[201];
    memset(big, 'v', 200);
    big[200] = 0;
    const struct lsm_entry more[] = {put_e("b", big, 150, 0), put_e("c", big, 150, 0),
                                     put_e("m", big, 85, 2), put_e("n", big, 150, 0)};
    flush_at(&st, &ix, &p, 2, 200, 200, more, 4, &next, NULL);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    assert_int_equal(ix.levels[1].run_count, 1);
    assert_true(ix.levels[1].runs[0].block_count >= 4);
    expect(&rd, &ix, "m", OP_DEL, NULL, 100, 1);

    /* Merge b alone: the bottom block [a, z] is rewritten, DEL m with it; m's block stays. */
    struct lsm_sink sink = store_sink(&st);
    assert_int_equal(lsm_compact_slice(&ix, &p, 1, 1, &rd, &sink, &next, &stats), PSL_OK);
    replace(&ix, &next);
    assert_int_equal(ix.levels[1].runs[0].block_count, 3);
    expect(&rd, &ix, "m", OP_DEL, NULL, 100, 1);
    expect(&rd, &ix, "b", OP_PUT, big, 150, 0);
    uint64_t dropped = stats.tombstones_dropped;
    /* The rest, a block at a time: when m's block comes down, the DEL wins and then goes. */
    while (ix.level_count > 2 && ix.levels[1].run_count) {
        assert_int_equal(lsm_compact_slice(&ix, &p, 1, 1, &rd, &sink, &next, &stats), PSL_OK);
        replace(&ix, &next);
        expect(&rd, &ix, "n", OP_PUT, big, 150, 0);
    }
    assert_true(stats.tombstones_dropped == dropped + 1);
    expect(&rd, &ix, "m", 0, NULL, 0, 0);
    expect(&rd, &ix, "a", OP_PUT, "x", 10, 0);
    expect(&rd, &ix, "c", OP_PUT, big, 150, 0);
    /* Slices are refused where they make no sense. */
    assert_int_equal(lsm_compact_slice(&ix, &p, 0, 1, &rd, &sink, &next, &stats),
                     PSL_ERR_INVALID_ARG);

    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* ---- the level policy, kept blocks, determinism ---- */

static void test_policy(void **state)
{
    (void)state;
    struct lsm_policy p;
    lsm_policy_default(&p);
    assert_int_equal(lsm_policy_check(&p), PSL_OK);
    struct lsm_policy q = p;
    q.block_target_size = LSM_BLOCK_TARGET_SIZE_MAX;
    assert_int_equal(lsm_policy_check(&q), PSL_OK);
    q.block_target_size = LSM_BLOCK_TARGET_SIZE_MAX + 1;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q = p;
    q.block_target_size = LSM_BLOCK_TARGET_SIZE_MIN - 1;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q = p;
    q.level0_runs_max = LSM_LEVEL0_RUNS_MAX;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q = p;
    q.level_count_max = 1;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q.level_count_max = LSM_LEVELS_MAX + 1;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q = p;
    q.bloom_hashes = 0;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);
    q = p;
    q.bloom_bits_per_key = LSM_BLOOM_BITS_PER_KEY_MAX + 1;
    assert_int_equal(lsm_policy_check(&q), PSL_ERR_INVALID_ARG);

    /* pick: level 0 by run count, deeper levels by size against base * growth^(i-1). */
    static const uint8_t bloom[1] = {0xff};
    struct lsm_block_ref r = {.entry_count = 1,
                              .min_key = (const uint8_t *)"a",
                              .max_key = (const uint8_t *)"a",
                              .min_key_size = 1,
                              .max_key_size = 1,
                              .bloom_hashes = 1,
                              .bloom_size = 1,
                              .bloom = bloom};
    struct lsm_block_ref l1 = r, l2 = r;
    struct lsm_run run0 = {.blocks = &r, .block_count = 1};
    struct lsm_run runs0[3] = {run0, run0, run0};
    struct lsm_run run1 = {.blocks = &l1, .block_count = 1};
    struct lsm_run run2 = {.blocks = &l2, .block_count = 1};
    struct lsm_index ix;
    lsm_index_init(&ix);
    small_policy(&p); /* 2 runs at level 0, 2048 bytes at level 1, growth 3, 4 levels */
    assert_int_equal(lsm_compact_pick(&ix, &p), -1);
    ix.level_count = 3;
    ix.levels[0] = (struct lsm_level){.runs = runs0, .run_count = 2};
    ix.levels[1] = (struct lsm_level){.runs = &run1, .run_count = 1};
    ix.levels[2] = (struct lsm_level){.runs = &run2, .run_count = 1};
    l1.data_size = 2048;
    l2.data_size = 3 * 2048;
    assert_int_equal(lsm_compact_pick(&ix, &p), -1);
    ix.levels[0].run_count = 3;
    assert_int_equal(lsm_compact_pick(&ix, &p), 0);
    ix.levels[0].run_count = 2;
    l1.data_size = 2049;
    assert_int_equal(lsm_compact_pick(&ix, &p), 1);
    l1.data_size = 2048;
    l2.data_size = 3 * 2048 + 1;
    assert_int_equal(lsm_compact_pick(&ix, &p), 2);
    p.level_count_max = 3; /* level 2 is then the last: unbounded */
    assert_int_equal(lsm_compact_pick(&ix, &p), -1);
}

/* Builds a wide bottom level of small blocks, then merges a narrow run into it: only the blocks
 * that meet the run are rewritten; the others stay, same hash. */
static void test_compact_keeps_disjoint_blocks(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    struct lsm_policy p;
    small_policy(&p);
    char keys[200][8];
    struct lsm_entry u[200];
    for (unsigned i = 0; i < 200; i++) {
        snprintf(keys[i], sizeof keys[i], "k%03u", i);
        u[i] = put_e(keys[i], "vvvvvvvv", 10, 0);
    }
    struct lsm_index ix, next;
    lsm_index_init(&ix);
    struct lsm_compact_stats stats = {0};
    flush_at(&st, &ix, &p, 1, 100, 100, u, 200, &next, &stats);
    replace(&ix, &next);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    const struct lsm_run *before = &ix.levels[1].runs[0];
    size_t nb = before->block_count;
    assert_true(nb >= 30);
    uint8_t(*old_hashes)[HASH_SIZE] = malloc(nb * HASH_SIZE);
    assert_non_null(old_hashes);
    for (size_t i = 0; i < nb; i++)
        memcpy(old_hashes[i], before->blocks[i].hash, HASH_SIZE);

    const struct lsm_entry upd[] = {put_e("k100", "new", 20, 1), put_e("k1005", "ins", 20, 1),
                                    del_e("k101", 20, 1)};
    flush_at(&st, &ix, &p, 2, 200, 0, upd, 3, &next, NULL);
    replace(&ix, &next);
    struct lsm_compact_stats s2 = {0};
    compact_level(&st, &rd, &p, &ix, 0, &s2);
    assert_true(s2.blocks_kept >= nb - 2);
    assert_true(s2.blocks_written <= 3);
    const struct lsm_run *after = &ix.levels[1].runs[0];
    size_t same = 0;
    for (size_t i = 0; i < after->block_count; i++)
        for (size_t j = 0; j < nb; j++)
            same += memcmp(after->blocks[i].hash, old_hashes[j], HASH_SIZE) == 0;
    assert_int_equal(same, s2.blocks_kept);
    expect(&rd, &ix, "k100", OP_PUT, "new", 20, 1);
    expect(&rd, &ix, "k1005", OP_PUT, "ins", 20, 1);
    expect(&rd, &ix, "k101", OP_DEL, NULL, 20, 1); /* horizon 0: kept */
    for (unsigned i = 0; i < 200; i += 7)
        if (i != 100 && i != 101)
            expect(&rd, &ix, keys[i], OP_PUT, "vvvvvvvv", 10, 0);
    free(old_hashes);
    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* Source blocks that meet no other input move down by reference; the others are merged. */
static void test_compact_trivial_move(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    struct lsm_policy p;
    small_policy(&p);
    p.level0_runs_max = 3;
    const struct lsm_entry r1[] = {put_e("a1", "x", 10, 0), put_e("a2", "x", 10, 0)};
    const struct lsm_entry r2[] = {put_e("m1", "y", 20, 0), put_e("m2", "y", 20, 0)};
    const struct lsm_entry r3[] = {put_e("a2", "z", 30, 1), put_e("a3", "z", 30, 1)};
    struct lsm_index ix, next;
    lsm_index_init(&ix);
    flush_at(&st, &ix, &p, 1, 100, 100, r1, 2, &next, NULL);
    replace(&ix, &next);
    flush_at(&st, &ix, &p, 2, 100, 100, r2, 2, &next, NULL);
    replace(&ix, &next);
    uint8_t moved[HASH_SIZE];
    memcpy(moved, ix.levels[0].runs[0].blocks[0].hash, HASH_SIZE); /* the m1..m2 block */
    flush_at(&st, &ix, &p, 3, 100, 100, r3, 2, &next, NULL);
    replace(&ix, &next);
    struct lsm_compact_stats stats = {0};
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    assert_int_equal(stats.blocks_kept, 1);
    assert_int_equal(stats.blocks_read, 2);    /* a1..a2 and a2..a3, not m1..m2 */
    assert_int_equal(stats.blocks_written, 1); /* a1, a2 (the newer), a3 */
    const struct lsm_run *run = &ix.levels[1].runs[0];
    assert_int_equal(run->block_count, 2);
    assert_memory_equal(run->blocks[1].hash, moved, HASH_SIZE);
    assert_int_equal(run->blocks[0].entry_count, 3);
    expect(&rd, &ix, "a2", OP_PUT, "z", 30, 1);
    expect(&rd, &ix, "m2", OP_PUT, "y", 20, 0);
    /* Into a non-empty level: a block landing between target blocks moves too. */
    const struct lsm_entry r4[] = {put_e("c1", "w", 40, 2), put_e("c2", "w", 40, 2)};
    flush_at(&st, &ix, &p, 4, 100, 100, r4, 2, &next, NULL);
    replace(&ix, &next);
    memset(&stats, 0, sizeof stats);
    compact_level(&st, &rd, &p, &ix, 0, &stats);
    assert_int_equal(stats.blocks_written, 0);
    assert_int_equal(stats.blocks_kept, 3);
    assert_int_equal(ix.levels[1].runs[0].block_count, 3);
    expect(&rd, &ix, "c1", OP_PUT, "w", 40, 2);
    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* Two compactors with the same keys and chain, fed the same epochs in different orders, write
 * the same records and the same index. */
static void test_determinism(void **state)
{
    struct fx *f = *state;
    uint8_t digest[2][HASH_SIZE];
    for (unsigned run = 0; run < 2; run++) {
        struct store st;
        store_init(&st, f);
        struct lsm_reader rd;
        reader_make(&rd, f, &st, 1, 4096);
        struct lsm_policy p;
        small_policy(&p);
        struct lsm_index ix, next;
        lsm_index_init(&ix);
        char keys[90][8], vals[90][16];
        for (uint64_t epoch = 1; epoch <= 6; epoch++) {
            struct lsm_entry u[90];
            for (unsigned i = 0; i < 90; i++) {
                unsigned j = run ? 89 - i : i;
                unsigned k = (unsigned)((j * 7 + epoch * 13) % 60);
                snprintf(keys[j], sizeof keys[j], "k%02u", k);
                snprintf(vals[j], sizeof vals[j], "v%u", (unsigned)(j + epoch));
                u[j] = j % 5 == 0 ? del_e(keys[j], epoch * 10 + j % 3, j % 4)
                                  : put_e(keys[j], vals[j], epoch * 10 + j % 3, j % 4);
            }
            flush_at(&st, &ix, &p, epoch, epoch * 10 + 5, epoch * 10, u, 90, &next, NULL);
            replace(&ix, &next);
            struct lsm_sink sink = store_sink(&st);
            assert_int_equal(lsm_compact(&ix, &p, &rd, &sink, &next, NULL), PSL_OK);
            replace(&ix, &next);
            assert_int_equal(lsm_compact_pick(&ix, &p), -1);
        }
        size_t size = lsm_index_encoded_size(&ix);
        uint8_t *buf = malloc(size);
        assert_non_null(buf);
        struct wr w;
        wr_init(&w, buf, size);
        assert_int_equal(lsm_index_encode(&ix, &w), PSL_OK);
        hash_sha256(digest[run], buf, size);
        free(buf);
        lsm_reader_deinit(&rd);
        lsm_index_deinit(&ix);
        store_deinit(&st);
    }
    assert_memory_equal(digest[0], digest[1], HASH_SIZE);
}

/* ---- untrusted sources ---- */

static void test_tampered_and_substituted_blocks(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_policy p;
    small_policy(&p);
    char keys[40][8];
    struct lsm_entry u[40];
    for (unsigned i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02u", i);
        u[i] = put_e(keys[i], "some value", 10 + i, 0);
    }
    struct lsm_index empty, ix;
    lsm_index_init(&empty);
    flush_at(&st, &empty, &p, 1, 100, 100, u, 40, &ix, NULL);
    assert_true(st.n >= 4);

    struct {
        enum src_mode modes[3];
        unsigned count;
        psl_err want;
        uint64_t refused, failures;
    } cases[] = {
        {{SRC_TAMPER, SRC_SUBSTITUTE, SRC_HONEST}, 3, PSL_OK, 2, 0},
        {{SRC_TRUNCATE, SRC_HONEST}, 2, PSL_OK, 1, 0},
        {{SRC_MISSING, SRC_IO, SRC_HONEST}, 3, PSL_OK, 0, 2},
        {{SRC_SUBSTITUTE}, 1, PSL_ERR_AUTH, 1, 0},
        {{SRC_TAMPER, SRC_MISSING}, 2, PSL_ERR_AUTH, 1, 1},
        {{SRC_MISSING, SRC_IO}, 2, PSL_ERR_IO, 0, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        memset(st.calls, 0, sizeof st.calls);
        for (unsigned s = 0; s < cases[c].count; s++)
            st.mode[s] = cases[c].modes[s];
        struct lsm_reader rd;
        reader_make(&rd, f, &st, cases[c].count, 1 << 20);
        struct lsm_result res;
        psl_err err = lsm_lookup(&rd, &ix, (const uint8_t *)"k07", 3, &res);
        if (err != cases[c].want)
            fail_msg("case %zu: got %s, want %s", c, psl_err_name(err),
                     psl_err_name(cases[c].want));
        assert_true(rd.stats.refused == cases[c].refused);
        assert_true(rd.stats.fetch_failures == cases[c].failures);
        for (unsigned s = 0; s < cases[c].count; s++)
            assert_int_equal(st.calls[s], 1); /* every source in order, once */
        if (!err) {
            assert_true(res.found);
            assert_memory_equal(res.entry.value, "some value", 10);
            lsm_result_release(&rd, &res);
            /* The honest copy is cached: no source is asked again. */
            expect(&rd, &ix, "k07", OP_PUT, "some value", 17, 0);
            for (unsigned s = 0; s < cases[c].count; s++)
                assert_int_equal(st.calls[s], 1);
        }
        lsm_reader_deinit(&rd);
    }
    memset(st.mode, 0, sizeof st.mode);

    /* An index entry that names the right hash but describes another block (a compactor bug or
     * a lie): the block is refused even though its record is genuine. */
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    const struct lsm_run *run = &ix.levels[0].runs[0];
    struct lsm_block_ref liar = run->blocks[0];
    liar.entry_count += 1;
    struct lsm_cached *pin;
    assert_int_equal(lsm_reader_pin(&rd, &liar, &pin), PSL_ERR_AUTH);
    assert_true(rd.stats.refused == 1);
    assert_int_equal(lsm_reader_pin(&rd, &run->blocks[0], &pin), PSL_OK);
    lsm_reader_unpin(&rd, pin);
    /* ... also when the block is already cached. */
    liar = run->blocks[0];
    liar.max_key = liar.min_key;
    liar.max_key_size = liar.min_key_size;
    assert_int_equal(lsm_reader_pin(&rd, &liar, &pin), PSL_ERR_AUTH);
    /* A block of another capsule key does not open. */
    lsm_reader_deinit(&rd);
    struct lsm_source src = {.fetch = fetch, .ctx = &st, .count = 1};
    assert_int_equal(lsm_reader_init(&rd, f->meta.name, f->other_key, &src, 1 << 20), PSL_OK);
    assert_int_equal(lsm_reader_pin(&rd, &run->blocks[0], &pin), PSL_ERR_AUTH);
    lsm_reader_deinit(&rd);
    /* ... nor one asked for in the name of another capsule. */
    assert_int_equal(lsm_reader_init(&rd, f->other.name, f->capsule_key, &src, 1 << 20), PSL_OK);
    assert_int_equal(lsm_reader_pin(&rd, &run->blocks[0], &pin), PSL_ERR_AUTH);
    lsm_reader_deinit(&rd);
    src.count = 0;
    assert_int_equal(lsm_reader_init(&rd, f->meta.name, f->capsule_key, &src, 1),
                     PSL_ERR_INVALID_ARG);

    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* ---- the cache ---- */

static void test_cache_bound(void **state)
{
    struct fx *f = *state;
    struct store st;
    store_init(&st, f);
    struct lsm_policy p;
    small_policy(&p);
    /* Equal-sized entries, so that every block has the same size. */
    char keys[60][8];
    struct lsm_entry u[60];
    for (unsigned i = 0; i < 60; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02u", i);
        u[i] = put_e(keys[i], "0123456789abcdef", 5, 0);
    }
    struct lsm_index empty, ix;
    lsm_index_init(&empty);
    flush_at(&st, &empty, &p, 1, 100, 100, u, 60, &ix, NULL);
    const struct lsm_run *run = &ix.levels[0].runs[0];
    size_t nb = run->block_count;
    assert_true(nb >= 10);
    size_t per = run->blocks[0].entry_count;
    for (size_t i = 0; i + 1 < nb; i++)
        assert_int_equal(run->blocks[i].entry_count, per);

    /* Measure one block's cost, then allow three. */
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, 1 << 20);
    expect(&rd, &ix, keys[0], OP_PUT, "0123456789abcdef", 5, 0);
    size_t one = rd.cache_bytes;
    assert_true(one > run->blocks[0].data_size);
    lsm_reader_deinit(&rd);
    reader_make(&rd, f, &st, 1, 3 * one + one / 2);
    for (unsigned i = 0; i < 60; i++) {
        expect(&rd, &ix, keys[i], OP_PUT, "0123456789abcdef", 5, 0);
        assert_true(rd.cache_bytes <= rd.cache_bytes_max);
    }
    assert_true(rd.cache_bytes == 3 * one);
    assert_int_equal(rd.stats.misses, nb);
    assert_int_equal(rd.stats.hits, 60 - nb);
    /* LRU: blocks A, B, C cached; touch A; read D: B goes, A stays. */
    lsm_reader_cache_clear(&rd);
    assert_int_equal(rd.cache_bytes, 0);
    const char *a = keys[0], *b = keys[per], *c = keys[2 * per], *d = keys[3 * per];
    expect(&rd, &ix, a, OP_PUT, "0123456789abcdef", 5, 0);
    expect(&rd, &ix, b, OP_PUT, "0123456789abcdef", 5, 0);
    expect(&rd, &ix, c, OP_PUT, "0123456789abcdef", 5, 0);
    expect(&rd, &ix, a, OP_PUT, "0123456789abcdef", 5, 0);
    uint64_t misses = rd.stats.misses;
    expect(&rd, &ix, d, OP_PUT, "0123456789abcdef", 5, 0);
    assert_true(rd.stats.misses == misses + 1);
    expect(&rd, &ix, a, OP_PUT, "0123456789abcdef", 5, 0);
    assert_true(rd.stats.misses == misses + 1);
    expect(&rd, &ix, b, OP_PUT, "0123456789abcdef", 5, 0);
    assert_true(rd.stats.misses == misses + 2);

    /* A pinned block survives its eviction; the last unpin frees it. */
    struct lsm_result held;
    assert_int_equal(lsm_lookup(&rd, &ix, (const uint8_t *)keys[5 * per], 3, &held), PSL_OK);
    for (unsigned i = 0; i < 60; i++)
        expect(&rd, &ix, keys[i], OP_PUT, "0123456789abcdef", 5, 0);
    assert_true(rd.cache_bytes <= rd.cache_bytes_max);
    assert_true(held.found);
    assert_memory_equal(held.entry.key, keys[5 * per], 3);
    assert_memory_equal(held.entry.value, "0123456789abcdef", 16);
    lsm_result_release(&rd, &held);
    lsm_result_release(&rd, &held); /* a released result is empty: harmless */
    lsm_reader_deinit(&rd);

    /* A cache smaller than one block: nothing is cached, everything still answers. */
    reader_make(&rd, f, &st, 1, 16);
    for (unsigned i = 0; i < 60; i += 9)
        expect(&rd, &ix, keys[i], OP_PUT, "0123456789abcdef", 5, 0);
    assert_int_equal(rd.cache_bytes, 0);
    assert_int_equal(rd.stats.hits, 0);
    lsm_reader_deinit(&rd);

    lsm_index_deinit(&ix);
    store_deinit(&st);
}

/* ---- differential test ---- */

#define DIFF_WRITERS 4
#define DIFF_KEYS    240
#define DIFF_EPOCHS  70

struct diff_op {
    unsigned key, writer;
    uint8_t kind;
    uint64_t lamport;
    char value[40];
    uint32_t value_size;
};

struct diff_rec {
    unsigned writer;
    uint64_t seq, lamport;
    size_t first, count; /* ops */
};

struct diff {
    uint64_t rng;
    char keys[DIFF_KEYS][12];
    struct diff_op *ops;
    size_t op_count, op_cap;
    struct diff_rec *recs;
    size_t rec_count, rec_cap;
    uint64_t clock[DIFF_WRITERS];
    uint64_t seq[DIFF_WRITERS];
    size_t next_rec[DIFF_WRITERS]; /* per writer: first record index not yet in a cut... */
    struct lsm_index_head heads[DIFF_WRITERS];
    bool have[DIFF_KEYS]; /* the reference: greatest version per key */
    struct diff_op ref[DIFF_KEYS];
    uint64_t seen_max;
};

static uint64_t diff_rand(struct diff *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

static unsigned diff_below(struct diff *d, unsigned n)
{
    return (unsigned)(diff_rand(d) % n);
}

static struct lsm_entry diff_entry(const struct diff *d, const struct diff_op *o)
{
    return (struct lsm_entry){.kind = o->kind,
                              .lamport = o->lamport,
                              .writer = writer_ids[o->writer],
                              .key = (const uint8_t *)d->keys[o->key],
                              .key_size = (uint16_t)strlen(d->keys[o->key]),
                              .value = o->value_size ? (const uint8_t *)o->value : NULL,
                              .value_size = o->value_size};
}

/* A writer seals one record of 1..3 operations: each stamped ++clock, the record after them. */
static void diff_write(struct diff *d, unsigned w)
{
    if (diff_below(d, 2))
        d->clock[w] = d->clock[w] > d->seen_max ? d->clock[w] : d->seen_max; /* heard others */
    if (d->rec_count == d->rec_cap) {
        d->rec_cap = d->rec_cap ? 2 * d->rec_cap : 256;
        d->recs = realloc(d->recs, d->rec_cap * sizeof *d->recs);
        assert_non_null(d->recs);
    }
    struct diff_rec *r = &d->recs[d->rec_count++];
    r->writer = w;
    r->first = d->op_count;
    r->count = 1 + diff_below(d, 3);
    for (size_t i = 0; i < r->count; i++) {
        if (d->op_count == d->op_cap) {
            d->op_cap = d->op_cap ? 2 * d->op_cap : 1024;
            d->ops = realloc(d->ops, d->op_cap * sizeof *d->ops);
            assert_non_null(d->ops);
        }
        struct diff_op *o = &d->ops[d->op_count++];
        memset(o, 0, sizeof *o);
        /* Half the operations hit a small hot set, so keys see many versions. */
        o->key = diff_below(d, 2) ? diff_below(d, 24) : diff_below(d, DIFF_KEYS);
        o->writer = w;
        o->kind = diff_below(d, 4) == 0 ? OP_DEL : OP_PUT;
        o->lamport = ++d->clock[w];
        if (o->kind == OP_PUT) {
            int n =
                snprintf(o->value, sizeof o->value, "v%llu.%u", (unsigned long long)o->lamport, w);
            size_t pad = diff_below(d, 20);
            memset(o->value + n, 'x', pad);
            o->value_size = (uint32_t)((size_t)n + pad);
        }
    }
    r->seq = ++d->seq[w];
    r->lamport = ++d->clock[w];
}

static int diff_version_cmp(const struct diff *d, const struct diff_op *a, const struct diff_op *b)
{
    struct lsm_entry x = diff_entry(d, a), y = diff_entry(d, b);
    return lsm_version_cmp(&x, &y);
}

/* The reference map: plain last-writer-wins, one version per key. */
static void diff_apply(struct diff *d, const struct diff_op *o)
{
    if (!d->have[o->key] || diff_version_cmp(d, o, &d->ref[o->key]) > 0) {
        d->ref[o->key] = *o;
        d->have[o->key] = true;
    }
    if (o->lamport > d->seen_max)
        d->seen_max = o->lamport;
}

static void diff_check(struct diff *d, struct lsm_reader *rd, const struct lsm_index *ix)
{
    for (unsigned k = 0; k < DIFF_KEYS; k++) {
        struct lsm_result res;
        assert_int_equal(lsm_lookup(rd, ix, (const uint8_t *)d->keys[k], strlen(d->keys[k]), &res),
                         PSL_OK);
        assert_true(rd->cache_bytes <= rd->cache_bytes_max);
        if (!d->have[k] || (d->ref[k].kind == OP_DEL && !res.found)) {
            /* absent, or deleted and the tombstone collected */
            if (res.found)
                fail_msg("key %s: found, reference has %s", d->keys[k],
                         d->have[k] ? "a delete" : "nothing");
            lsm_result_release(rd, &res);
            continue;
        }
        if (!res.found)
            fail_msg("key %s: absent, reference has a value", d->keys[k]);
        struct lsm_entry want = diff_entry(d, &d->ref[k]);
        if (lsm_version_cmp(&res.entry, &want) != 0)
            fail_msg("key %s: lamport %llu, reference %llu", d->keys[k],
                     (unsigned long long)res.entry.lamport, (unsigned long long)want.lamport);
        assert_int_equal(res.entry.kind, want.kind);
        lsm_result_release(rd, &res);
    }
}

/* lsm_compact, or (slice > 0) the same merges done at most `slice` source blocks at a time in
 * levels >= 1, as a compactor short of blocks at hand does (lsm_compact_slice). */
static void compact_all(const struct lsm_index *ix, const struct lsm_policy *p,
                        struct lsm_reader *rd, const struct lsm_sink *sink, struct lsm_index *out,
                        struct lsm_compact_stats *st, size_t slice, size_t *slices)
{
    if (!slice) {
        assert_int_equal(lsm_compact(ix, p, rd, sink, out, st), PSL_OK);
        return;
    }
    struct lsm_index cur;
    assert_int_equal(lsm_index_clone(ix, &cur), PSL_OK);
    for (int lv; (lv = lsm_compact_pick(&cur, p)) >= 0;) {
        struct lsm_index next;
        const struct lsm_level *l = &cur.levels[lv];
        bool part = lv > 0 && l->run_count == 1 && l->runs[0].block_count > slice;
        assert_int_equal(lsm_compact_slice(&cur, p, (size_t)lv, part ? slice : SIZE_MAX, rd, sink,
                                           &next, st),
                         PSL_OK);
        *slices += part;
        replace(&cur, &next);
    }
    *out = cur;
}

static void diff_run(struct fx *f, uint64_t seed, size_t cache_bytes,
                     struct lsm_compact_stats *flushed, struct lsm_compact_stats *compacted,
                     size_t slice, size_t *slices)
{
    struct diff *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (unsigned k = 0; k < DIFF_KEYS; k++)
        snprintf(d->keys[k], sizeof d->keys[k], "key-%u", k * 37 % 1000);
    /* Every writer's CERT record (seq 1) is in the first cut, so every cut lists every writer
     * and the minimum head lamport is a sound horizon. */
    for (unsigned w = 0; w < DIFF_WRITERS; w++) {
        d->seq[w] = 1;
        d->clock[w] = 1;
        memcpy(d->heads[w].writer, writer_ids[w], HASH_SIZE);
        d->heads[w].seq = 1;
        d->heads[w].lamport = 1;
    }
    struct store st;
    store_init(&st, f);
    struct lsm_reader rd;
    reader_make(&rd, f, &st, 1, cache_bytes);
    struct lsm_policy p;
    small_policy(&p);
    p.block_target_size = 200 + (size_t)(seed % 3) * 150;
    struct lsm_index ix, next;
    lsm_index_init(&ix);
    struct lsm_entry *u = NULL;
    size_t u_cap = 0;

    for (uint64_t epoch = 1; epoch <= DIFF_EPOCHS; epoch++) {
        for (unsigned w = 0; w < DIFF_WRITERS; w++)
            for (unsigned n = diff_below(d, 5); n > 0; n--)
                diff_write(d, w);
        /* The cut: per writer all its records so far, or (a lagging writer) only some; the last
         * epoch takes everything. */
        size_t n_ops = 0;
        size_t take_upto[DIFF_WRITERS];
        for (unsigned w = 0; w < DIFF_WRITERS; w++)
            take_upto[w] = diff_below(d, 4) == 0 && epoch < DIFF_EPOCHS ? diff_below(d, 3) : 1000;
        size_t taken[DIFF_WRITERS] = {0};
        for (size_t i = 0; i < d->rec_count; i++) {
            struct diff_rec *r = &d->recs[i];
            if (r->count == 0)
                continue; /* already in a cut */
            unsigned w = r->writer;
            if (taken[w] >= take_upto[w]) {
                take_upto[w] = 0; /* a writer's records enter cuts in seq order */
                continue;
            }
            taken[w]++;
            if (n_ops + r->count > u_cap) {
                u_cap = 2 * (n_ops + r->count);
                u = realloc(u, u_cap * sizeof *u);
                assert_non_null(u);
            }
            for (size_t j = 0; j < r->count; j++) {
                u[n_ops++] = diff_entry(d, &d->ops[r->first + j]);
                diff_apply(d, &d->ops[r->first + j]);
            }
            d->heads[w].seq = r->seq;
            d->heads[w].lamport = r->lamport;
            r->count = 0;
        }
        uint64_t horizon = UINT64_MAX;
        for (unsigned w = 0; w < DIFF_WRITERS; w++)
            if (d->heads[w].lamport < horizon)
                horizon = d->heads[w].lamport;
        struct lsm_cut cut = {
            .epoch = epoch, .horizon = horizon, .heads = d->heads, .head_count = DIFF_WRITERS};
        memset(cut.sync_hash, (int)epoch, HASH_SIZE);
        struct lsm_sink sink = store_sink(&st);
        assert_int_equal(lsm_flush(&ix, &p, &cut, u, n_ops, &sink, &next, flushed), PSL_OK);
        replace(&ix, &next);
        compact_all(&ix, &p, &rd, &sink, &next, compacted, slice, slices);
        replace(&ix, &next);
        assert_int_equal(lsm_compact_pick(&ix, &p), -1);
        /* Every operation in a cut is covered; the others are not. */
        for (size_t i = 0; i < d->rec_count; i++) {
            const struct diff_rec *r = &d->recs[i];
            if (r->seq != d->seq[r->writer])
                continue;                      /* check the newest record of each writer */
            uint64_t last_op = r->lamport - 1; /* the record is stamped just above its ops */
            bool in_cut = r->seq <= d->heads[r->writer].seq;
            assert_true(lsm_index_covers(&ix, writer_ids[r->writer], last_op) == in_cut);
        }
        if (epoch % 10 == 0 || epoch == DIFF_EPOCHS)
            diff_check(d, &rd, &ix);
    }
    /* The tree reached several levels. */
    assert_true(ix.level_count >= 3);

    free(u);
    free(d->ops);
    free(d->recs);
    free(d);
    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    store_deinit(&st);
}

static void test_differential(void **state)
{
    struct fx *f = *state;
    struct lsm_compact_stats flushed = {0}, compacted = {0};
    size_t slices = 0;
    diff_run(f, 1, 64 << 10, &flushed, &compacted, 0, &slices);
    diff_run(f, 2, 4 << 10, &flushed, &compacted, 0, &slices);
    diff_run(f, 3, 0, &flushed, &compacted, 0, &slices); /* no cache at all */
    assert_true(slices == 0);
    /* The same histories with levels merged a few blocks at a time: the same answers. */
    struct lsm_compact_stats sf = {0}, sc = {0};
    diff_run(f, 1, 64 << 10, &sf, &sc, 1, &slices);
    diff_run(f, 2, 4 << 10, &sf, &sc, 3, &slices);
    diff_run(f, 4, 0, &sf, &sc, 2, &slices);
    assert_true(slices > 0 && sc.tombstones_dropped > 0);
    /* The runs exercised what they are meant to. */
    assert_true(compacted.tombstones_dropped > 0);
    assert_true(compacted.blocks_kept > 0);
    assert_true(flushed.versions_dropped > 0 && compacted.versions_dropped > 0);
    /* Write amplification (block bytes written per byte flushed) stays under the leveled bound
     * of 1 + (levels - 1) * (growth + 1) = 13 for the small policy. */
    uint64_t written = flushed.bytes_written + compacted.bytes_written;
    assert_true(written < 13 * flushed.bytes_written);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_flush_lww),
        T(test_flush_refusals_and_splits),
        T(test_tombstones),
        T(test_slice_keeps_tombstone),
        cmocka_unit_test(test_policy),
        T(test_compact_keeps_disjoint_blocks),
        T(test_compact_trivial_move),
        T(test_determinism),
        T(test_tampered_and_substituted_blocks),
        T(test_cache_bound),
        T(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
