/* index.c: the CapsuleDB index codec (format in index.h), its queries, and sealing and receiving
 * it as an LSM_INDEX record. Invariant: an index that lsm_index_decode produced satisfies every
 * structural rule readers rely on (sorted, disjoint runs; at most one run below level 0; sorted
 * heads), so lookups and compactions never re-check them; the decoder parses a private copy of
 * the bytes, validating and counting in a first pass before it allocates anything. */
#include "lsm/index.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "lsm/bloom.h"

static const uint8_t index_magic[4] = {'P', 'S', 'L', 'I'};
#define INDEX_FIXED_SIZE   (4u + 1 + 8 + HASH_SIZE + 8 + 8 + 4 + 1)
#define BLOCK_REF_MIN_SIZE (LSM_BLOCK_REF_FIXED_SIZE + 1 + 1 + 1)
#define RUN_MIN_SIZE       (4u + BLOCK_REF_MIN_SIZE)

void lsm_index_init(struct lsm_index *ix)
{
    memset(ix, 0, sizeof *ix);
}

void lsm_index_deinit(struct lsm_index *ix)
{
    if (ix->own_buf) {
        secret_wipe(ix->own_buf, ix->own_buf_size);
        free(ix->own_buf);
    }
    free(ix->own_heads);
    free(ix->own_runs);
    free(ix->own_blocks);
    memset(ix, 0, sizeof *ix);
}

/* ---- encoding ---- */

static size_t block_ref_size(const struct lsm_block_ref *b)
{
    return LSM_BLOCK_REF_FIXED_SIZE + (size_t)b->min_key_size + b->max_key_size + b->bloom_size;
}

size_t lsm_index_encoded_size(const struct lsm_index *ix)
{
    if (ix->head_count > PSL_CUT_HEADS_MAX || ix->level_count > LSM_LEVELS_MAX)
        return 0;
    size_t n = INDEX_FIXED_SIZE + ix->head_count * LSM_INDEX_HEAD_SIZE;
    size_t blocks = 0;
    for (size_t l = 0; l < ix->level_count; l++) {
        const struct lsm_level *lv = &ix->levels[l];
        if (lv->run_count > LSM_LEVEL0_RUNS_MAX)
            return 0;
        n += 4;
        for (size_t r = 0; r < lv->run_count; r++) {
            const struct lsm_run *run = &lv->runs[r];
            blocks += run->block_count;
            if (blocks > LSM_INDEX_BLOCKS_MAX)
                return 0;
            n += 4;
            for (size_t b = 0; b < run->block_count; b++) {
                const struct lsm_block_ref *ref = &run->blocks[b];
                if (ref->min_key_size > PSL_KEY_SIZE_MAX || ref->max_key_size > PSL_KEY_SIZE_MAX ||
                    ref->bloom_size > LSM_BLOOM_SIZE_MAX)
                    return 0;
                n += block_ref_size(ref);
            }
            if (n > LSM_INDEX_SIZE_MAX)
                return 0;
        }
    }
    return n;
}

static void block_ref_write(struct wr *w, const struct lsm_block_ref *b)
{
    wr_bytes(w, b->hash, HASH_SIZE);
    wr_u32(w, b->entry_count);
    wr_u32(w, b->data_size);
    wr_u64(w, b->lamport_max);
    wr_u16(w, b->min_key_size);
    wr_bytes(w, b->min_key, b->min_key_size);
    wr_u16(w, b->max_key_size);
    wr_bytes(w, b->max_key, b->max_key_size);
    wr_u8(w, b->bloom_hashes);
    wr_u32(w, b->bloom_size);
    wr_bytes(w, b->bloom, b->bloom_size);
}

psl_err lsm_index_encode(const struct lsm_index *ix, struct wr *w)
{
    size_t total = lsm_index_encoded_size(ix);
    if (!total || w->err != PSL_OK || total > w->size - w->pos)
        return PSL_ERR_TOO_LARGE;
    size_t start = w->pos;
    wr_bytes(w, index_magic, 4);
    wr_u8(w, LSM_INDEX_VERSION);
    wr_u64(w, ix->generation);
    wr_bytes(w, ix->sync_hash, HASH_SIZE);
    wr_u64(w, ix->epoch);
    wr_u64(w, ix->horizon);
    wr_u32(w, (uint32_t)ix->head_count);
    for (size_t i = 0; i < ix->head_count; i++) {
        const struct lsm_index_head *h = &ix->heads[i];
        wr_bytes(w, h->writer, HASH_SIZE);
        wr_u64(w, h->seq);
        wr_u64(w, h->lamport);
        wr_bytes(w, h->hash, HASH_SIZE);
    }
    wr_u8(w, (uint8_t)ix->level_count);
    for (size_t l = 0; l < ix->level_count; l++) {
        const struct lsm_level *lv = &ix->levels[l];
        wr_u32(w, (uint32_t)lv->run_count);
        for (size_t r = 0; r < lv->run_count; r++) {
            wr_u32(w, (uint32_t)lv->runs[r].block_count);
            for (size_t b = 0; b < lv->runs[r].block_count; b++)
                block_ref_write(w, &lv->runs[r].blocks[b]);
        }
    }
    PSL_ASSERT(w->err == PSL_OK && w->pos - start == total);
    return PSL_OK;
}

/* ---- decoding ---- */

struct index_counts {
    size_t heads, runs, blocks;
};

static psl_err key_check(uint16_t size)
{
    if (size == 0)
        return PSL_ERR_MALFORMED;
    return size > PSL_KEY_SIZE_MAX ? PSL_ERR_TOO_LARGE : PSL_OK;
}

static psl_err block_ref_parse(struct rd *r, struct lsm_block_ref *out)
{
    struct lsm_block_ref b;
    rd_copy(r, b.hash, HASH_SIZE);
    b.entry_count = rd_u32(r);
    b.data_size = rd_u32(r);
    b.lamport_max = rd_u64(r);
    b.min_key_size = rd_u16(r);
    if (r->err)
        return r->err;
    psl_err err = key_check(b.min_key_size);
    if (err)
        return err;
    b.min_key = rd_take(r, b.min_key_size);
    b.max_key_size = rd_u16(r);
    if (r->err)
        return r->err;
    err = key_check(b.max_key_size);
    if (err)
        return err;
    b.max_key = rd_take(r, b.max_key_size);
    b.bloom_hashes = rd_u8(r);
    b.bloom_size = rd_u32(r);
    if (r->err)
        return r->err;
    if (b.entry_count == 0 || b.bloom_hashes == 0 || b.bloom_size == 0)
        return PSL_ERR_MALFORMED;
    if (b.entry_count > LSM_BLOCK_ENTRIES_MAX || b.data_size > LSM_BLOCK_SIZE_MAX ||
        b.bloom_hashes > LSM_BLOOM_HASHES_MAX || b.bloom_size > LSM_BLOOM_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    /* The smallest block of entry_count entries (1-byte keys, no values). */
    if (b.data_size < LSM_BLOCK_HEADER_SIZE + (size_t)b.entry_count * (LSM_ENTRY_OVERHEAD + 1))
        return PSL_ERR_MALFORMED;
    b.bloom = rd_take(r, b.bloom_size);
    if (r->err)
        return r->err;
    int c = lsm_key_cmp(b.min_key, b.min_key_size, b.max_key, b.max_key_size);
    if (c > 0 || (c == 0) != (b.entry_count == 1))
        return PSL_ERR_MALFORMED;
    *out = b;
    return PSL_OK;
}

/* One pass over the plaintext. With fill NULL it validates and counts; with fill (its arrays
 * allocated from the counts of a first pass over the same private bytes) it also fills. */
static psl_err index_parse(const uint8_t *buf, size_t size, struct lsm_index *fill,
                           struct index_counts *counts)
{
    if (size > LSM_INDEX_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (size < 5)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, index_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (buf[4] != LSM_INDEX_VERSION)
        return PSL_ERR_BAD_VERSION;
    struct rd r;
    rd_init(&r, buf, size);
    r.pos = 5;
    struct lsm_index ix;
    memset(&ix, 0, sizeof ix);
    ix.generation = rd_u64(&r);
    rd_copy(&r, ix.sync_hash, HASH_SIZE);
    ix.epoch = rd_u64(&r);
    ix.horizon = rd_u64(&r);
    uint32_t head_count = rd_u32(&r);
    if (r.err)
        return r.err;
    if (head_count > PSL_CUT_HEADS_MAX)
        return PSL_ERR_TOO_LARGE;
    if (head_count > rd_left(&r) / LSM_INDEX_HEAD_SIZE)
        return PSL_ERR_TRUNCATED;
    for (size_t i = 0; i < head_count; i++) {
        struct lsm_index_head h;
        rd_copy(&r, h.writer, HASH_SIZE);
        h.seq = rd_u64(&r);
        h.lamport = rd_u64(&r);
        rd_copy(&r, h.hash, HASH_SIZE);
        if (r.err)
            return r.err;
        if (h.seq == 0 || h.lamport < ix.horizon)
            return PSL_ERR_MALFORMED;
        if (i > 0) {
            const uint8_t *prev = buf + r.pos - 2 * LSM_INDEX_HEAD_SIZE;
            if (memcmp(prev, h.writer, HASH_SIZE) >= 0)
                return PSL_ERR_MALFORMED;
        }
        if (fill)
            fill->own_heads[i] = h;
    }
    if (head_count == 0 && ix.horizon != 0)
        return PSL_ERR_MALFORMED; /* nothing to bound the operations still to come */
    uint8_t level_count = rd_u8(&r);
    if (r.err)
        return r.err;
    if (level_count > LSM_LEVELS_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t runs = 0, blocks = 0;
    for (size_t l = 0; l < level_count; l++) {
        uint32_t run_count = rd_u32(&r);
        if (r.err)
            return r.err;
        if (l == 0 ? run_count > LSM_LEVEL0_RUNS_MAX : run_count > 1)
            return l == 0 ? PSL_ERR_TOO_LARGE : PSL_ERR_MALFORMED;
        if (run_count > rd_left(&r) / RUN_MIN_SIZE)
            return PSL_ERR_TRUNCATED;
        if (l + 1 == level_count && run_count == 0)
            return PSL_ERR_MALFORMED; /* canonical: no trailing empty level */
        if (fill) {
            fill->levels[l].runs = fill->own_runs + runs;
            fill->levels[l].run_count = run_count;
        }
        for (size_t ri = 0; ri < run_count; ri++, runs++) {
            uint32_t block_count = rd_u32(&r);
            if (r.err)
                return r.err;
            if (block_count == 0)
                return PSL_ERR_MALFORMED;
            if (block_count > LSM_INDEX_BLOCKS_MAX - blocks)
                return PSL_ERR_TOO_LARGE;
            if (block_count > rd_left(&r) / BLOCK_REF_MIN_SIZE)
                return PSL_ERR_TRUNCATED;
            if (fill)
                fill->own_runs[runs] = (struct lsm_run){.blocks = fill->own_blocks + blocks,
                                                        .block_count = block_count};
            const uint8_t *prev_max = NULL;
            uint16_t prev_max_size = 0;
            for (size_t bi = 0; bi < block_count; bi++, blocks++) {
                struct lsm_block_ref b;
                psl_err err = block_ref_parse(&r, &b);
                if (err)
                    return err;
                if (prev_max &&
                    lsm_key_cmp(prev_max, prev_max_size, b.min_key, b.min_key_size) >= 0)
                    return PSL_ERR_MALFORMED;
                prev_max = b.max_key;
                prev_max_size = b.max_key_size;
                if (fill)
                    fill->own_blocks[blocks] = b;
            }
        }
    }
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (fill) {
        PSL_ASSERT(counts->heads == head_count && counts->runs == runs && counts->blocks == blocks);
        fill->generation = ix.generation;
        memcpy(fill->sync_hash, ix.sync_hash, HASH_SIZE);
        fill->epoch = ix.epoch;
        fill->horizon = ix.horizon;
        fill->heads = fill->own_heads;
        fill->head_count = head_count;
        fill->level_count = level_count;
    } else {
        *counts = (struct index_counts){.heads = head_count, .runs = runs, .blocks = blocks};
    }
    return PSL_OK;
}

psl_err lsm_index_decode(struct lsm_index *out, const uint8_t *buf, size_t size)
{
    if (size > LSM_INDEX_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    /* Copy once into private memory, then validate and use only the copy. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return PSL_ERR_NOMEM;
    if (size)
        memcpy(copy, buf, size);
    struct lsm_index ix;
    lsm_index_init(&ix);
    struct index_counts counts;
    psl_err err = index_parse(copy, size, NULL, &counts);
    if (err)
        goto out_free;
    /* The counts were checked against the bytes present: each head, run and block occupies
     * at least its minimum encoded size, so these allocations are bounded by size. */
    ix.own_heads = malloc((counts.heads ? counts.heads : 1) * sizeof *ix.own_heads);
    ix.own_runs = malloc((counts.runs ? counts.runs : 1) * sizeof *ix.own_runs);
    ix.own_blocks = malloc((counts.blocks ? counts.blocks : 1) * sizeof *ix.own_blocks);
    if (!ix.own_heads || !ix.own_runs || !ix.own_blocks) {
        err = PSL_ERR_NOMEM;
        goto out_free;
    }
    err = index_parse(copy, size, &ix, &counts);
    PSL_ASSERT(err == PSL_OK); /* the same private bytes passed the first pass */
    ix.own_buf = copy;
    ix.own_buf_size = size;
    *out = ix;
    return PSL_OK;
out_free:
    lsm_index_deinit(&ix);
    secret_wipe(copy, size);
    free(copy);
    return err;
}

/* ---- queries ---- */

const struct lsm_index_head *lsm_index_head_find(const struct lsm_index *ix,
                                                 const uint8_t writer[HASH_SIZE])
{
    size_t lo = 0, hi = ix->head_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(ix->heads[mid].writer, writer, HASH_SIZE);
        if (c == 0)
            return &ix->heads[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool lsm_index_covers(const struct lsm_index *ix, const uint8_t writer[HASH_SIZE], uint64_t lamport)
{
    const struct lsm_index_head *h = lsm_index_head_find(ix, writer);
    return h && lamport < h->lamport;
}

uint64_t lsm_index_horizon(const struct lsm_index *ix)
{
    return ix->horizon;
}

uint64_t lsm_index_lamport_max(const struct lsm_index *ix)
{
    uint64_t m = 0;
    for (size_t l = 0; l < ix->level_count; l++)
        for (size_t r = 0; r < ix->levels[l].run_count; r++) {
            const struct lsm_run *run = &ix->levels[l].runs[r];
            for (size_t b = 0; b < run->block_count; b++)
                if (run->blocks[b].lamport_max > m)
                    m = run->blocks[b].lamport_max;
        }
    return m;
}

uint64_t lsm_level_data_size(const struct lsm_level *level)
{
    uint64_t n = 0;
    for (size_t r = 0; r < level->run_count; r++)
        for (size_t b = 0; b < level->runs[r].block_count; b++)
            n += level->runs[r].blocks[b].data_size;
    return n;
}

size_t lsm_index_block_count(const struct lsm_index *ix)
{
    size_t n = 0;
    for (size_t l = 0; l < ix->level_count; l++)
        for (size_t r = 0; r < ix->levels[l].run_count; r++)
            n += ix->levels[l].runs[r].block_count;
    return n;
}

/* ---- records ---- */

psl_err lsm_index_seal(struct record_chain *rc, const struct writer_keys *wk, uint64_t lamport,
                       const struct lsm_index *ix, uint8_t *buf, size_t cap, size_t *out_size,
                       uint8_t hash_out[HASH_SIZE])
{
    size_t plain = lsm_index_encoded_size(ix);
    if (!plain)
        return PSL_ERR_TOO_LARGE;
    if (cap < record_sealed_size(plain, REC_LSM_INDEX))
        return PSL_ERR_INVALID_ARG;
    struct wr w;
    wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, plain);
    psl_err err = lsm_index_encode(ix, &w);
    if (err)
        return err;
    return record_chain_seal(rc, wk, REC_LSM_INDEX, lamport, buf, cap, plain, out_size, hash_out);
}

psl_err lsm_index_open(const uint8_t *rec, size_t size, const struct capsule_meta *m,
                       const struct writer_cert *cert, uint64_t now_ms, const uint8_t *prev_known,
                       const uint8_t capsule_key[AEAD_KEY_SIZE], struct lsm_index *out)
{
    struct record_view v;
    psl_err err = record_parse(&v, rec, size);
    if (err)
        return err;
    if (v.h.type != REC_LSM_INDEX)
        return PSL_ERR_BAD_TYPE;
    err = record_check(&v, m, cert, now_ms, prev_known);
    if (err)
        return err;
    if (cert->role != ROLE_COMPACTOR)
        return PSL_ERR_CERT_ROLE;
    size_t cap = v.h.payload_size - AEAD_TAG_SIZE;
    uint8_t *plain = malloc(cap ? cap : 1);
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    struct aead_key ak = {0};
    if (!plain || !key) {
        err = PSL_ERR_NOMEM;
        goto out_free;
    }
    err = record_key_derive(key, capsule_key, v.h.writer);
    if (err)
        goto out_free;
    err = aead_key_init(&ak, key);
    if (err)
        goto out_free;
    size_t plain_size = 0;
    err = record_open(&v, &ak, plain, cap, &plain_size);
    if (!err)
        err = lsm_index_decode(out, plain, plain_size);
out_free:
    aead_key_deinit(&ak);
    secret_free(key);
    if (plain) {
        secret_wipe(plain, cap);
        free(plain);
    }
    return err;
}
