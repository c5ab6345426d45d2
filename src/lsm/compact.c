/* compact.c: the compactor's steps (contract in compact.h): flush an epoch's updates into a
 * level-0 run, and k-way merge a level into the next, splitting output into blocks that go to a
 * sink, then assemble the new index and round-trip it through its own decoder.
 * Invariants: every index returned here passed lsm_index_decode; within a step every pinned input
 * block stays pinned until its entries are copied into the output; the output depends only on the
 * inputs and the hashes the sink returns (no clock, randomness or address enters it). */
#include "lsm/compact.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "lsm/bloom.h"

void lsm_policy_default(struct lsm_policy *p)
{
    *p = (struct lsm_policy){
        .block_target_size = 256u << 10,
        .level0_runs_max = 4,
        .level1_size_max = 10u << 20,
        .growth_factor = 10,
        .level_count_max = 7,
        .bloom_bits_per_key = LSM_BLOOM_BITS_PER_KEY_DEFAULT,
        .bloom_hashes = LSM_BLOOM_HASHES_DEFAULT,
    };
}

psl_err lsm_policy_check(const struct lsm_policy *p)
{
    if (p->block_target_size < LSM_BLOCK_TARGET_SIZE_MIN ||
        p->block_target_size > LSM_BLOCK_TARGET_SIZE_MAX)
        return PSL_ERR_INVALID_ARG;
    if (p->level0_runs_max < 1 || p->level0_runs_max >= LSM_LEVEL0_RUNS_MAX)
        return PSL_ERR_INVALID_ARG;
    if (p->level1_size_max < 1 || p->growth_factor < 2 || p->growth_factor > 1000)
        return PSL_ERR_INVALID_ARG;
    if (p->level_count_max < 2 || p->level_count_max > LSM_LEVELS_MAX)
        return PSL_ERR_INVALID_ARG;
    if (p->bloom_bits_per_key < 1 || p->bloom_bits_per_key > LSM_BLOOM_BITS_PER_KEY_MAX ||
        p->bloom_hashes < 1 || p->bloom_hashes > LSM_BLOOM_HASHES_MAX)
        return PSL_ERR_INVALID_ARG;
    return PSL_OK;
}

static void stats_add(struct lsm_compact_stats *to, const struct lsm_compact_stats *s)
{
    if (!to)
        return;
    to->blocks_written += s->blocks_written;
    to->bytes_written += s->bytes_written;
    to->blocks_read += s->blocks_read;
    to->bytes_read += s->bytes_read;
    to->blocks_kept += s->blocks_kept;
    to->versions_dropped += s->versions_dropped;
    to->tombstones_dropped += s->tombstones_dropped;
}

psl_err lsm_index_clone(const struct lsm_index *ix, struct lsm_index *out)
{
    size_t size = lsm_index_encoded_size(ix);
    if (!size)
        return PSL_ERR_TOO_LARGE;
    uint8_t *buf = malloc(size);
    if (!buf)
        return PSL_ERR_NOMEM;
    struct wr w;
    wr_init(&w, buf, size);
    psl_err err = lsm_index_encode(ix, &w);
    if (!err)
        err = lsm_index_decode(out, buf, size);
    secret_wipe(buf, size);
    free(buf);
    return err;
}

/* ---- the block builder: entries in, sealed blocks and their index entries out ---- */

struct new_block {
    struct lsm_block_ref ref; /* min_key, max_key and bloom point into keys and bloom */
    uint8_t *keys;            /* owned: min_key || max_key */
    uint8_t *bloom;           /* owned */
};

struct builder {
    const struct lsm_policy *p;
    const struct lsm_sink *sink;
    struct lsm_compact_stats *stats;
    uint8_t *buf; /* owned sealing buffer; the plaintext starts at PSL_RECORD_HEADER_SIZE */
    size_t cap;
    size_t size;  /* plaintext bytes so far, header included (0 when no block is open) */
    size_t count; /* entries of the open block */
    uint64_t lamport_max;
    size_t first_off, last_off;     /* plaintext offsets of the first and last entry */
    struct lsm_bloom_probe *probes; /* owned; one per entry of the open block */
    size_t probes_cap;
    size_t mark;           /* split mark of the open block (see builder_add) */
    struct new_block *out; /* owned, out_count blocks, in key order */
    size_t out_count, out_cap;
};

static psl_err builder_init(struct builder *b, const struct lsm_policy *p,
                            const struct lsm_sink *sink, struct lsm_compact_stats *stats)
{
    memset(b, 0, sizeof *b);
    b->p = p;
    b->sink = sink;
    b->stats = stats;
    /* A block passes the target by at most one entry, or is one maximal entry. */
    size_t plain_max = p->block_target_size + LSM_ENTRY_SIZE_MAX;
    if (plain_max > LSM_BLOCK_SIZE_MAX)
        plain_max = LSM_BLOCK_SIZE_MAX;
    b->cap = record_sealed_size(plain_max, REC_LSM_BLOCK);
    b->buf = malloc(b->cap);
    return b->buf ? PSL_OK : PSL_ERR_NOMEM;
}

static void new_block_free(struct new_block *nb)
{
    if (nb->keys) {
        secret_wipe(nb->keys, (size_t)nb->ref.min_key_size + nb->ref.max_key_size);
        free(nb->keys);
    }
    if (nb->bloom) {
        secret_wipe(nb->bloom, nb->ref.bloom_size);
        free(nb->bloom);
    }
}

static void builder_deinit(struct builder *b)
{
    if (b->buf) {
        secret_wipe(b->buf, b->cap);
        free(b->buf);
    }
    free(b->probes);
    for (size_t i = 0; i < b->out_count; i++)
        new_block_free(&b->out[i]);
    free(b->out);
    memset(b, 0, sizeof *b);
}

static uint8_t *builder_plain(struct builder *b)
{
    return b->buf + PSL_RECORD_HEADER_SIZE;
}

static void entry_key_at(const uint8_t *p, const uint8_t **key, uint16_t *key_size)
{
    *key_size = (uint16_t)(p[41] | (unsigned)p[42] << 8);
    *key = p + LSM_ENTRY_OVERHEAD;
}

/* Closes the open block: header, filter, key range, then the sink seals it. */
static psl_err builder_close(struct builder *b)
{
    if (b->count == 0)
        return PSL_OK;
    if (b->out_count == b->out_cap) {
        size_t n = b->out_cap ? b->out_cap * 2 : 8;
        struct new_block *o = realloc(b->out, n * sizeof *o);
        if (!o)
            return PSL_ERR_NOMEM;
        b->out = o;
        b->out_cap = n;
    }
    uint8_t *plain = builder_plain(b);
    lsm_block_header_write(plain, (uint32_t)b->count);
    struct new_block nb;
    memset(&nb, 0, sizeof nb);
    const uint8_t *min_key, *max_key;
    entry_key_at(plain + b->first_off, &min_key, &nb.ref.min_key_size);
    entry_key_at(plain + b->last_off, &max_key, &nb.ref.max_key_size);
    size_t bloom_size = lsm_bloom_size_for(b->count, b->p->bloom_bits_per_key);
    nb.keys = malloc((size_t)nb.ref.min_key_size + nb.ref.max_key_size);
    nb.bloom = calloc(1, bloom_size);
    if (!nb.keys || !nb.bloom) {
        free(nb.keys);
        free(nb.bloom);
        return PSL_ERR_NOMEM;
    }
    memcpy(nb.keys, min_key, nb.ref.min_key_size);
    memcpy(nb.keys + nb.ref.min_key_size, max_key, nb.ref.max_key_size);
    for (size_t i = 0; i < b->count; i++)
        lsm_bloom_add(nb.bloom, bloom_size, b->p->bloom_hashes, &b->probes[i]);
    nb.ref.min_key = nb.keys;
    nb.ref.max_key = nb.keys + nb.ref.min_key_size;
    nb.ref.bloom = nb.bloom;
    nb.ref.bloom_size = (uint32_t)bloom_size;
    nb.ref.bloom_hashes = (uint8_t)b->p->bloom_hashes;
    nb.ref.entry_count = (uint32_t)b->count;
    nb.ref.data_size = (uint32_t)b->size;
    nb.ref.lamport_max = b->lamport_max;
    psl_err err = b->sink->put(b->sink->ctx, b->buf, b->cap, b->size, nb.ref.hash);
    if (err) {
        new_block_free(&nb);
        return err;
    }
    b->stats->blocks_written++;
    b->stats->bytes_written += b->size;
    b->out[b->out_count++] = nb;
    b->count = 0;
    b->size = 0;
    b->lamport_max = 0;
    return PSL_OK;
}

/* Appends e (a valid entry, keys ascending across calls). A block is closed first when e would
 * take it past the target size or the entry limit, or when mark differs from the open block's
 * mark: the merge passes the number of kept blocks below e's key, so no output block spans a
 * kept block. */
static psl_err builder_add(struct builder *b, const struct lsm_entry *e, size_t mark)
{
    size_t esize = lsm_entry_size(e);
    if (b->count > 0 && (b->size + esize > b->p->block_target_size ||
                         b->count == LSM_BLOCK_ENTRIES_MAX || mark != b->mark)) {
        psl_err err = builder_close(b);
        if (err)
            return err;
    }
    if (b->count == 0) {
        b->size = LSM_BLOCK_HEADER_SIZE;
        b->mark = mark;
    }
    if (b->count == b->probes_cap) {
        size_t n = b->probes_cap ? b->probes_cap * 2 : 256;
        struct lsm_bloom_probe *pr = realloc(b->probes, n * sizeof *pr);
        if (!pr)
            return PSL_ERR_NOMEM;
        b->probes = pr;
        b->probes_cap = n;
    }
    PSL_ASSERT(PSL_RECORD_HEADER_SIZE + b->size + esize + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE <=
               b->cap);
    lsm_entry_write(builder_plain(b) + b->size, e);
    if (b->count == 0)
        b->first_off = b->size;
    b->last_off = b->size;
    lsm_bloom_probe_init(&b->probes[b->count], e->key, e->key_size);
    if (e->lamport > b->lamport_max)
        b->lamport_max = e->lamport;
    b->count++;
    b->size += esize;
    return PSL_OK;
}

/* ---- assembling a new index ---- */

/* An unowned copy of old's view, to be changed into the next index and cloned. */
static void draft_from(struct lsm_index *ix, const struct lsm_index *old)
{
    *ix = *old;
    ix->own_heads = NULL;
    ix->own_runs = NULL;
    ix->own_blocks = NULL;
    ix->own_buf = NULL;
    ix->own_buf_size = 0;
    ix->generation = old->generation + 1;
}

/* Canonical form: no trailing empty level. */
static void draft_trim(struct lsm_index *ix)
{
    while (ix->level_count > 0 && ix->levels[ix->level_count - 1].run_count == 0)
        ix->level_count--;
}

static int head_cmp(const void *a, const void *b)
{
    return memcmp(((const struct lsm_index_head *)a)->writer,
                  ((const struct lsm_index_head *)b)->writer, HASH_SIZE);
}

/* ---- flush ---- */

static int update_cmp(const void *a, const void *b)
{
    const struct lsm_entry *x = *(const struct lsm_entry *const *)a;
    const struct lsm_entry *y = *(const struct lsm_entry *const *)b;
    int c = lsm_key_cmp(x->key, x->key_size, y->key, y->key_size);
    if (c != 0)
        return c;
    return -lsm_version_cmp(x, y); /* greatest version first */
}

psl_err lsm_flush(const struct lsm_index *old, const struct lsm_policy *p,
                  const struct lsm_cut *cut, const struct lsm_entry *updates, size_t count,
                  const struct lsm_sink *sink, struct lsm_index *out,
                  struct lsm_compact_stats *stats)
{
    psl_err err = lsm_policy_check(p);
    if (err)
        return err;
    if (old->generation > 0 && cut->epoch <= old->epoch)
        return PSL_ERR_INVALID_ARG;
    if (cut->head_count > PSL_CUT_HEADS_MAX)
        return PSL_ERR_TOO_LARGE;
    if (count > 0 && old->level_count > 0 && old->levels[0].run_count >= LSM_LEVEL0_RUNS_MAX)
        return PSL_ERR_INVALID_ARG;
    for (size_t i = 0; i < count; i++)
        if (!lsm_entry_is_valid(&updates[i]))
            return PSL_ERR_INVALID_ARG;

    struct lsm_compact_stats st = {0};
    struct builder b;
    const struct lsm_entry **order = NULL;
    struct lsm_index_head *heads = NULL;
    struct lsm_run *runs = NULL;
    struct lsm_block_ref *refs = NULL;
    err = builder_init(&b, p, sink, &st);
    if (err)
        goto out;
    heads = malloc((cut->head_count ? cut->head_count : 1) * sizeof *heads);
    order = malloc((count ? count : 1) * sizeof *order);
    runs = malloc(LSM_LEVEL0_RUNS_MAX * sizeof *runs);
    if (!heads || !order || !runs) {
        err = PSL_ERR_NOMEM;
        goto out;
    }
    if (cut->head_count)
        memcpy(heads, cut->heads, cut->head_count * sizeof *heads);
    qsort(heads, cut->head_count, sizeof *heads, head_cmp);
    for (size_t i = 0; i < cut->head_count; i++)
        if (heads[i].seq == 0 || heads[i].lamport < cut->horizon ||
            (i > 0 && head_cmp(&heads[i - 1], &heads[i]) == 0)) {
            err = PSL_ERR_INVALID_ARG;
            goto out;
        }
    if (cut->head_count == 0 && cut->horizon != 0) {
        err = PSL_ERR_INVALID_ARG;
        goto out;
    }

    /* The comparison is a total order on (key, version), so ties are identical entries and the
     * result does not depend on qsort's stability or on the input order. */
    for (size_t i = 0; i < count; i++)
        order[i] = &updates[i];
    qsort(order, count, sizeof *order, update_cmp);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && lsm_key_cmp(order[i - 1]->key, order[i - 1]->key_size, order[i]->key,
                                 order[i]->key_size) == 0) {
            st.versions_dropped++;
            continue;
        }
        err = builder_add(&b, order[i], 0);
        if (err)
            goto out;
    }
    err = builder_close(&b);
    if (err)
        goto out;

    struct lsm_index ix;
    draft_from(&ix, old);
    memcpy(ix.sync_hash, cut->sync_hash, HASH_SIZE);
    ix.epoch = cut->epoch;
    ix.horizon = cut->horizon;
    ix.heads = heads;
    ix.head_count = cut->head_count;
    if (b.out_count > 0) {
        refs = malloc(b.out_count * sizeof *refs);
        if (!refs) {
            err = PSL_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < b.out_count; i++)
            refs[i] = b.out[i].ref;
        size_t old_runs = old->level_count > 0 ? old->levels[0].run_count : 0;
        runs[0] = (struct lsm_run){.blocks = refs, .block_count = b.out_count};
        for (size_t r = 0; r < old_runs; r++)
            runs[r + 1] = old->levels[0].runs[r];
        ix.levels[0] = (struct lsm_level){.runs = runs, .run_count = old_runs + 1};
        if (ix.level_count == 0)
            ix.level_count = 1;
    }
    err = lsm_index_clone(&ix, out);
out:
    if (!err)
        stats_add(stats, &st);
    free(refs);
    free(runs);
    free(order);
    free(heads);
    builder_deinit(&b);
    return err;
}

/* ---- policy ---- */

static uint64_t level_capacity(const struct lsm_policy *p, size_t level)
{
    uint64_t cap = p->level1_size_max;
    for (size_t i = 1; i < level; i++) {
        if (cap > UINT64_MAX / p->growth_factor)
            return UINT64_MAX;
        cap *= p->growth_factor;
    }
    return cap;
}

int lsm_compact_pick(const struct lsm_index *ix, const struct lsm_policy *p)
{
    if (ix->level_count > 0 && ix->levels[0].run_count > p->level0_runs_max)
        return 0;
    for (size_t i = 1; i < ix->level_count && i + 1 < p->level_count_max; i++)
        if (lsm_level_data_size(&ix->levels[i]) > level_capacity(p, i))
            return (int)i;
    return -1;
}

/* ---- merge ---- */

/* A position in a sequence of blocks, holding the current one pinned. */
struct cursor {
    const struct lsm_block_ref *blocks;
    struct lsm_cached **pre; /* pins taken at setup, parallel to blocks (NULL: none) */
    size_t block_count;
    size_t bi, ei;
    struct lsm_cached *pin;
    struct lsm_entry e; /* the current entry while !done */
    bool done;
};

static psl_err cursor_load(struct cursor *c, struct lsm_reader *rd, struct lsm_compact_stats *st)
{
    if (c->bi >= c->block_count) {
        c->done = true;
        return PSL_OK;
    }
    if (c->pre[c->bi]) { /* pinned at setup: the cursor takes that pin over */
        c->pin = c->pre[c->bi];
        c->pre[c->bi] = NULL;
    } else {
        psl_err err = lsm_reader_pin(rd, &c->blocks[c->bi], &c->pin);
        if (err)
            return err;
    }
    st->blocks_read++;
    st->bytes_read += c->blocks[c->bi].data_size;
    c->ei = 0;
    lsm_block_entry(lsm_cached_block(c->pin), 0, &c->e); /* a loaded block has >= 1 entry */
    return PSL_OK;
}

static psl_err cursor_next(struct cursor *c, struct lsm_reader *rd, struct lsm_compact_stats *st)
{
    const struct lsm_block *blk = lsm_cached_block(c->pin);
    if (++c->ei < blk->count) {
        lsm_block_entry(blk, c->ei, &c->e);
        return PSL_OK;
    }
    lsm_reader_unpin(rd, c->pin);
    c->pin = NULL;
    c->bi++;
    return cursor_load(c, rd, st);
}

/* Whether a block of some run in runs[0..n) may hold key (range, then filter). */
static bool runs_may_contain(const struct lsm_run *const *runs, size_t n, const uint8_t *key,
                             size_t key_size)
{
    struct lsm_bloom_probe probe;
    bool probed = false;
    for (size_t i = 0; i < n; i++) {
        const struct lsm_block_ref *ref = lsm_run_find(runs[i], key, key_size);
        if (!ref)
            continue;
        if (!probed) {
            lsm_bloom_probe_init(&probe, key, key_size);
            probed = true;
        }
        if (lsm_bloom_may_contain(ref->bloom, ref->bloom_size, ref->bloom_hashes, &probe))
            return true;
    }
    return false;
}

/* Whether target block t meets the key range of some block of run r. */
static bool run_overlaps(const struct lsm_run *r, const struct lsm_block_ref *t)
{
    /* The first block whose max_key >= t->min_key meets t when its min_key <= t->max_key. */
    size_t lo = 0, hi = r->block_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct lsm_block_ref *b = &r->blocks[mid];
        if (lsm_key_cmp(b->max_key, b->max_key_size, t->min_key, t->min_key_size) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->block_count)
        return false;
    const struct lsm_block_ref *b = &r->blocks[lo];
    return lsm_key_cmp(b->min_key, b->min_key_size, t->max_key, t->max_key_size) <= 0;
}

struct merge {
    const struct lsm_index *old;
    const struct lsm_policy *p;
    struct lsm_reader *rd;
    struct lsm_compact_stats *st;
    struct cursor *cur; /* owned: one per source run, then the rewritten target blocks */
    size_t cur_count;
    struct lsm_block_ref *rewrite; /* owned: input blocks that meet another input block */
    struct lsm_cached **prepin;    /* owned, parallel to rewrite: pins of those cached at setup */
    size_t rewrite_count;
    struct lsm_block_ref *kept; /* owned: blocks moved or kept by reference, ascending */
    size_t kept_count;
    const struct lsm_run *outside[LSM_LEVELS_MAX + LSM_LEVEL0_RUNS_MAX + 1];
    size_t outside_count;
    struct lsm_run slice; /* the source blocks merged (a prefix of a single-run level) */
    struct lsm_run rest;  /* the source blocks after them, which stay (an outside run too) */
    bool bottom;
    uint64_t horizon;
};

static void merge_deinit(struct merge *m)
{
    for (size_t i = 0; i < m->cur_count; i++)
        if (m->cur[i].pin)
            lsm_reader_unpin(m->rd, m->cur[i].pin);
    for (size_t i = 0; m->prepin && i < m->rewrite_count; i++)
        if (m->prepin[i])
            lsm_reader_unpin(m->rd, m->prepin[i]);
    free(m->prepin);
    free(m->cur);
    free(m->rewrite);
    free(m->kept);
}

static int ref_min_cmp(const struct lsm_block_ref *a, const struct lsm_block_ref *b)
{
    return lsm_key_cmp(a->min_key, a->min_key_size, b->min_key, b->min_key_size);
}

static int ref_min_qcmp(const void *a, const void *b)
{
    return ref_min_cmp(a, b);
}

/* Sorts the input blocks into those to rewrite and those to keep by reference, and sets up one
 * cursor per input with blocks to rewrite. A block is kept when its key range meets no other
 * input block: a target block that no source block meets stays where it is, and a source block
 * that meets no target block and no block of another source run moves down unchanged (its
 * versions are the only ones among the inputs, so the merge could not change them). Kept blocks
 * are disjoint from each other and from every rewritten block. */
static psl_err merge_setup(struct merge *m, size_t level, size_t count)
{
    const struct lsm_index *old = m->old;
    struct lsm_level src_level = old->levels[level];
    if (src_level.run_count == 1 && count < src_level.runs[0].block_count) {
        /* A slice: the first `count` blocks of the run; the rest stay in the level. */
        const struct lsm_run *r = &src_level.runs[0];
        m->slice = (struct lsm_run){.blocks = r->blocks, .block_count = count};
        m->rest = (struct lsm_run){.blocks = r->blocks + count, .block_count = r->block_count - count};
        src_level = (struct lsm_level){.runs = &m->slice, .run_count = 1};
    }
    const struct lsm_level *src = &src_level;
    const struct lsm_run *target = NULL;
    if (level + 1 < old->level_count && old->levels[level + 1].run_count == 1)
        target = &old->levels[level + 1].runs[0];
    size_t total = target ? target->block_count : 0;
    for (size_t r = 0; r < src->run_count; r++)
        total += src->runs[r].block_count;
    m->rewrite = malloc((total ? total : 1) * sizeof *m->rewrite);
    m->prepin = calloc(total ? total : 1, sizeof *m->prepin);
    m->kept = malloc((total ? total : 1) * sizeof *m->kept);
    m->cur = calloc(src->run_count + 1, sizeof *m->cur);
    if (!m->rewrite || !m->prepin || !m->kept || !m->cur)
        return PSL_ERR_NOMEM;
    for (size_t r = 0; r < src->run_count; r++) {
        size_t first = m->rewrite_count;
        for (size_t b = 0; b < src->runs[r].block_count; b++) {
            const struct lsm_block_ref *ref = &src->runs[r].blocks[b];
            bool meets = target && run_overlaps(target, ref);
            for (size_t r2 = 0; r2 < src->run_count && !meets; r2++)
                meets = r2 != r && run_overlaps(&src->runs[r2], ref);
            if (meets)
                m->rewrite[m->rewrite_count++] = *ref;
            else
                m->kept[m->kept_count++] = *ref;
        }
        if (m->rewrite_count > first)
            m->cur[m->cur_count++] = (struct cursor){.blocks = m->rewrite + first,
                                                     .pre = m->prepin + first,
                                                     .block_count = m->rewrite_count - first};
    }
    size_t first = m->rewrite_count;
    for (size_t i = 0; target && i < target->block_count; i++) {
        bool meets = false;
        for (size_t r = 0; r < src->run_count && !meets; r++)
            meets = run_overlaps(&src->runs[r], &target->blocks[i]);
        if (meets)
            m->rewrite[m->rewrite_count++] = target->blocks[i];
        else
            m->kept[m->kept_count++] = target->blocks[i];
    }
    if (m->rewrite_count > first)
        m->cur[m->cur_count++] = (struct cursor){.blocks = m->rewrite + first,
                                                 .pre = m->prepin + first,
                                                 .block_count = m->rewrite_count - first};
    /* Disjoint ranges: ordering by first key is a total order, whatever qsort's stability. */
    qsort(m->kept, m->kept_count, sizeof *m->kept, ref_min_qcmp);
    m->bottom = true;
    for (size_t l = level + 2; l < old->level_count; l++)
        if (old->levels[l].run_count > 0)
            m->bottom = false;
    for (size_t l = 0; l < level; l++)
        for (size_t r = 0; r < old->levels[l].run_count; r++)
            m->outside[m->outside_count++] = &old->levels[l].runs[r];
    /* A target block rewritten with the slice may reach past it, into the range of a block that
     * stays: versions there decide whether a tombstone may go, like a shallower run's. */
    if (m->rest.block_count)
        m->outside[m->outside_count++] = &m->rest;
    m->horizon = lsm_index_horizon(old);
    /* Pin every input block the cache holds now: blocks fetched during the merge go through
     * the cache too, and must not evict ones the merge reads later (a reader whose source can
     * no longer give them, like a compactor's staging area, would fail the merge). The memory
     * is the cache's plus what those fetches bring, at most. */
    for (size_t i = 0; i < m->rewrite_count; i++)
        if (lsm_reader_cached(m->rd, m->rewrite[i].hash) &&
            lsm_reader_pin(m->rd, &m->rewrite[i], &m->prepin[i]) != PSL_OK)
            m->prepin[i] = NULL; /* read when its turn comes, as before */
    for (size_t i = 0; i < m->cur_count; i++) {
        psl_err err = cursor_load(&m->cur[i], m->rd, m->st);
        if (err)
            return err;
    }
    return PSL_OK;
}

/* The k-way merge: per key, the greatest version of every input, written unless it is a
 * tombstone that may go (compact.h). */
static psl_err merge_run(struct merge *m, struct builder *b)
{
    size_t kept_below = 0;
    for (;;) {
        struct cursor *min = NULL;
        for (size_t i = 0; i < m->cur_count; i++) {
            struct cursor *c = &m->cur[i];
            if (!c->done &&
                (!min || lsm_key_cmp(c->e.key, c->e.key_size, min->e.key, min->e.key_size) < 0))
                min = c;
        }
        if (!min)
            return PSL_OK;
        struct lsm_entry best = min->e;
        size_t versions = 0;
        for (size_t i = 0; i < m->cur_count; i++) {
            struct cursor *c = &m->cur[i];
            if (c->done || lsm_key_cmp(c->e.key, c->e.key_size, best.key, best.key_size) != 0)
                continue;
            versions++;
            if (lsm_version_cmp(&c->e, &best) > 0)
                best = c->e;
        }
        m->st->versions_dropped += versions - 1;
        bool drop = best.kind == OP_DEL && m->bottom && best.lamport < m->horizon &&
                    !runs_may_contain(m->outside, m->outside_count, best.key, best.key_size);
        if (drop) {
            m->st->tombstones_dropped++;
        } else {
            while (kept_below < m->kept_count &&
                   lsm_key_cmp(m->kept[kept_below].max_key, m->kept[kept_below].max_key_size,
                               best.key, best.key_size) < 0)
                kept_below++;
            psl_err err = builder_add(b, &best, kept_below);
            if (err)
                return err;
        }
        /* best points into a pinned block: advance only after it was copied. */
        const uint8_t *key = best.key;
        size_t key_size = best.key_size;
        uint8_t key_copy[PSL_KEY_SIZE_MAX];
        memcpy(key_copy, key, key_size);
        for (size_t i = 0; i < m->cur_count; i++) {
            struct cursor *c = &m->cur[i];
            if (c->done || lsm_key_cmp(c->e.key, c->e.key_size, key_copy, key_size) != 0)
                continue;
            psl_err err = cursor_next(c, m->rd, m->st);
            if (err)
                return err;
        }
        secret_wipe(key_copy, key_size);
    }
}

psl_err lsm_compact_level(const struct lsm_index *old, const struct lsm_policy *p, size_t level,
                          struct lsm_reader *rd, const struct lsm_sink *sink, struct lsm_index *out,
                          struct lsm_compact_stats *stats)
{
    return lsm_compact_slice(old, p, level, SIZE_MAX, rd, sink, out, stats);
}

psl_err lsm_compact_slice(const struct lsm_index *old, const struct lsm_policy *p, size_t level,
                          size_t count, struct lsm_reader *rd, const struct lsm_sink *sink,
                          struct lsm_index *out, struct lsm_compact_stats *stats)
{
    psl_err err = lsm_policy_check(p);
    if (err)
        return err;
    if (level >= old->level_count || old->levels[level].run_count == 0 ||
        level + 1 >= p->level_count_max || level + 1 >= LSM_LEVELS_MAX || count == 0 ||
        (count != SIZE_MAX && (old->levels[level].run_count != 1 || level == 0)))
        return PSL_ERR_INVALID_ARG;
    struct lsm_compact_stats st = {0};
    struct merge m = {.old = old, .p = p, .rd = rd, .st = &st};
    struct builder b;
    struct lsm_block_ref *refs = NULL;
    err = builder_init(&b, p, sink, &st);
    if (err)
        goto out;
    err = merge_setup(&m, level, count);
    if (err)
        goto out;
    err = merge_run(&m, &b);
    if (err)
        goto out;
    err = builder_close(&b);
    if (err)
        goto out;
    st.blocks_kept += m.kept_count;

    /* The new target run: kept and new blocks, both ascending and disjoint, merged by key. */
    size_t n = m.kept_count + b.out_count;
    refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs) {
        err = PSL_ERR_NOMEM;
        goto out;
    }
    size_t ki = 0, ni = 0;
    for (size_t i = 0; i < n; i++) {
        bool take_kept = ni == b.out_count ||
                         (ki < m.kept_count && ref_min_cmp(&m.kept[ki], &b.out[ni].ref) < 0);
        refs[i] = take_kept ? m.kept[ki++] : b.out[ni++].ref;
    }
    struct lsm_run target_run = {.blocks = refs, .block_count = n};
    struct lsm_index ix;
    draft_from(&ix, old);
    ix.levels[level] = (struct lsm_level){.runs = m.rest.block_count ? &m.rest : NULL,
                                          .run_count = m.rest.block_count ? 1 : 0};
    ix.levels[level + 1] = (struct lsm_level){.runs = &target_run, .run_count = n ? 1 : 0};
    if (ix.level_count < level + 2)
        ix.level_count = level + 2;
    draft_trim(&ix);
    err = lsm_index_clone(&ix, out);
out:
    if (!err)
        stats_add(stats, &st);
    free(refs);
    merge_deinit(&m);
    builder_deinit(&b);
    return err;
}

psl_err lsm_compact(const struct lsm_index *old, const struct lsm_policy *p, struct lsm_reader *rd,
                    const struct lsm_sink *sink, struct lsm_index *out,
                    struct lsm_compact_stats *stats)
{
    psl_err err = lsm_policy_check(p);
    if (err)
        return err;
    struct lsm_index cur;
    err = lsm_index_clone(old, &cur);
    if (err)
        return err;
    int last = -1;
    for (int level; (level = lsm_compact_pick(&cur, p)) >= 0;) {
        PSL_ASSERT(level > last); /* a merge empties its level and grows only deeper ones */
        last = level;
        struct lsm_index next;
        err = lsm_compact_level(&cur, p, (size_t)level, rd, sink, &next, stats);
        if (err) {
            lsm_index_deinit(&cur);
            return err;
        }
        lsm_index_deinit(&cur);
        cur = next;
    }
    *out = cur;
    return PSL_OK;
}
