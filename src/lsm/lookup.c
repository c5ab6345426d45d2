/* lookup.c: the CapsuleDB read path: fetch a block by content address from one source after
 * another, refuse anything but the record the index names, decrypt and decode it, cache it under
 * a byte bound, and answer point lookups as the greatest version over every run.
 * Invariants: every block the reader hands out passed lsm_record_check_hash against the hash
 * the caller's index gives, and agrees with that index entry; cache_bytes (the blocks the cache
 * holds) never exceeds cache_bytes_max after a call returns; a pinned block is never freed. */
#include "lsm/lookup.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "lsm/bloom.h"

struct lsm_cached {
    struct lsm_block block;
    uint8_t hash[HASH_SIZE];
    size_t mem_size; /* what the cache accounts for this block */
    unsigned pins;
    bool in_cache;
    struct lsm_cached *prev, *next; /* LRU list, while in_cache */
    struct lsm_cached *chain;       /* bucket chain, while in_cache */
};

#define BUCKETS_INITIAL 16u

psl_err lsm_reader_init(struct lsm_reader *rd, const uint8_t capsule[HASH_SIZE],
                        const uint8_t capsule_key[AEAD_KEY_SIZE], const struct lsm_source *src,
                        size_t cache_bytes_max)
{
    if (!src || !src->fetch || src->count == 0)
        return PSL_ERR_INVALID_ARG;
    struct lsm_reader r;
    memset(&r, 0, sizeof r);
    memcpy(r.capsule, capsule, HASH_SIZE);
    r.src = *src;
    r.cache_bytes_max = cache_bytes_max;
    r.capsule_key = secret_alloc(AEAD_KEY_SIZE);
    r.fetch_buf = malloc(PSL_RECORD_SIZE_MAX);
    r.buckets = calloc(BUCKETS_INITIAL, sizeof *r.buckets);
    if (!r.capsule_key || !r.fetch_buf || !r.buckets) {
        secret_free(r.capsule_key);
        free(r.fetch_buf);
        free(r.buckets);
        return PSL_ERR_NOMEM;
    }
    r.bucket_count = BUCKETS_INITIAL;
    memcpy(r.capsule_key, capsule_key, AEAD_KEY_SIZE);
    *rd = r;
    return PSL_OK;
}

static void cached_free(struct lsm_cached *c)
{
    lsm_block_deinit(&c->block);
    free(c);
}

/* ---- the cache: a chained hash table on the block hash plus an LRU list ---- */

static size_t bucket_of(const struct lsm_reader *rd, const uint8_t hash[HASH_SIZE])
{
    /* Block hashes are SHA-256 outputs of records the compactor sealed. */
    return (size_t)(get_le64(hash) & (rd->bucket_count - 1));
}

static struct lsm_cached *cache_find(const struct lsm_reader *rd, const uint8_t hash[HASH_SIZE])
{
    for (struct lsm_cached *c = rd->buckets[bucket_of(rd, hash)]; c; c = c->chain)
        if (memcmp(c->hash, hash, HASH_SIZE) == 0)
            return c;
    return NULL;
}

static void lru_unlink(struct lsm_reader *rd, struct lsm_cached *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        rd->lru_first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        rd->lru_last = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_front(struct lsm_reader *rd, struct lsm_cached *c)
{
    c->prev = NULL;
    c->next = rd->lru_first;
    if (rd->lru_first)
        rd->lru_first->prev = c;
    else
        rd->lru_last = c;
    rd->lru_first = c;
}

/* Removes c from the cache; frees it unless it is pinned (the last unpin frees it then). */
static void cache_remove(struct lsm_reader *rd, struct lsm_cached *c)
{
    PSL_ASSERT(c->in_cache);
    struct lsm_cached **pp = &rd->buckets[bucket_of(rd, c->hash)];
    while (*pp != c)
        pp = &(*pp)->chain;
    *pp = c->chain;
    c->chain = NULL;
    lru_unlink(rd, c);
    c->in_cache = false;
    rd->cached_count--;
    rd->cache_bytes -= c->mem_size;
    if (c->pins == 0) {
        PSL_ASSERT(rd->lru_first != c && rd->lru_last != c);
        cached_free(c);
    }
}

static void cache_grow(struct lsm_reader *rd)
{
    size_t n = rd->bucket_count * 2;
    struct lsm_cached **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < rd->bucket_count; i++) {
        struct lsm_cached *c = rd->buckets[i];
        while (c) {
            struct lsm_cached *next = c->chain;
            size_t k = (size_t)(get_le64(c->hash) & (n - 1));
            c->chain = b[k];
            b[k] = c;
            c = next;
        }
    }
    free(rd->buckets);
    rd->buckets = b;
    rd->bucket_count = n;
}

static void cache_insert(struct lsm_reader *rd, struct lsm_cached *c)
{
    if (c->mem_size > rd->cache_bytes_max)
        return; /* larger than the whole cache: the pin alone holds it */
    if (rd->cached_count >= rd->bucket_count)
        cache_grow(rd);
    size_t k = bucket_of(rd, c->hash);
    c->chain = rd->buckets[k];
    rd->buckets[k] = c;
    lru_push_front(rd, c);
    c->in_cache = true;
    rd->cached_count++;
    rd->cache_bytes += c->mem_size;
    while (rd->cache_bytes > rd->cache_bytes_max) {
        PSL_ASSERT(rd->lru_last && rd->lru_last != c); /* c alone fits */
        cache_remove(rd, rd->lru_last);
    }
}

bool lsm_reader_cached(const struct lsm_reader *rd, const uint8_t hash[HASH_SIZE])
{
    return cache_find(rd, hash) != NULL;
}

psl_err lsm_reader_insert(struct lsm_reader *rd, const uint8_t hash[HASH_SIZE],
                          struct lsm_block *b)
{
    struct lsm_cached *c = NULL;
    size_t mem = lsm_block_mem_size(b) + sizeof *c;
    if (cache_find(rd, hash) || mem > rd->cache_bytes_max) {
        lsm_block_deinit(b);
        return PSL_OK;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        lsm_block_deinit(b);
        return PSL_ERR_NOMEM;
    }
    c->block = *b;
    memset(b, 0, sizeof *b);
    memcpy(c->hash, hash, HASH_SIZE);
    c->mem_size = mem;
    cache_insert(rd, c);
    return PSL_OK;
}

void lsm_reader_cache_clear(struct lsm_reader *rd)
{
    while (rd->lru_last)
        cache_remove(rd, rd->lru_last);
}

void lsm_reader_deinit(struct lsm_reader *rd)
{
    PSL_ASSERT(rd->pinned_count == 0);
    if (rd->buckets)
        lsm_reader_cache_clear(rd);
    free(rd->buckets);
    free(rd->fetch_buf);
    secret_free(rd->capsule_key);
    aead_key_deinit(&rd->key);
    memset(rd, 0, sizeof *rd);
}

/* ---- fetching ---- */

/* Makes rd->key the key of writer (one derivation per change of block writer). */
static psl_err reader_key(struct lsm_reader *rd, const uint8_t writer[HASH_SIZE])
{
    if (rd->key.hd && memcmp(rd->key_writer, writer, HASH_SIZE) == 0)
        return PSL_OK;
    aead_key_deinit(&rd->key);
    uint8_t *k = secret_alloc(AEAD_KEY_SIZE);
    if (!k)
        return PSL_ERR_NOMEM;
    psl_err err = record_key_derive(k, rd->capsule_key, writer);
    if (!err)
        err = aead_key_init(&rd->key, k);
    secret_free(k);
    if (!err)
        memcpy(rd->key_writer, writer, HASH_SIZE);
    return err;
}

/* Whether a decoded block is the one the index entry describes. */
static bool block_matches(const struct lsm_block *b, const struct lsm_block_ref *ref)
{
    if (b->count != ref->entry_count || b->plain_size != ref->data_size)
        return false;
    struct lsm_entry first, last;
    lsm_block_entry(b, 0, &first);
    lsm_block_entry(b, b->count - 1, &last);
    return lsm_key_cmp(first.key, first.key_size, ref->min_key, ref->min_key_size) == 0 &&
           lsm_key_cmp(last.key, last.key_size, ref->max_key, ref->max_key_size) == 0;
}

/* Checks and opens size bytes of rd->fetch_buf as the block of ref. */
static psl_err reader_open(struct lsm_reader *rd, const struct lsm_block_ref *ref, size_t size,
                           struct lsm_block *out)
{
    struct record_view v;
    psl_err err =
        lsm_record_check_hash(&v, rd->fetch_buf, size, REC_LSM_BLOCK, rd->capsule, ref->hash);
    if (err)
        return err;
    err = reader_key(rd, v.h.writer);
    if (err)
        return err;
    struct lsm_block b;
    err = lsm_block_open(&v, &rd->key, &b);
    if (err)
        return err;
    if (!block_matches(&b, ref)) {
        lsm_block_deinit(&b);
        return PSL_ERR_MALFORMED;
    }
    *out = b;
    return PSL_OK;
}

static psl_err reader_fetch(struct lsm_reader *rd, const struct lsm_block_ref *ref,
                            struct lsm_block *out)
{
    bool refused = false;
    for (unsigned s = 0; s < rd->src.count; s++) {
        size_t size = 0;
        rd->stats.fetches++;
        psl_err err =
            rd->src.fetch(rd->src.ctx, s, ref->hash, rd->fetch_buf, PSL_RECORD_SIZE_MAX, &size);
        if (err) {
            rd->stats.fetch_failures++;
            continue;
        }
        err = size <= PSL_RECORD_SIZE_MAX ? reader_open(rd, ref, size, out) : PSL_ERR_TOO_LARGE;
        if (err == PSL_OK)
            return PSL_OK;
        if (err == PSL_ERR_NOMEM)
            return err;
        rd->stats.refused++;
        refused = true;
    }
    return refused ? PSL_ERR_AUTH : PSL_ERR_IO;
}

psl_err lsm_reader_pin(struct lsm_reader *rd, const struct lsm_block_ref *ref,
                       struct lsm_cached **out)
{
    struct lsm_cached *c = cache_find(rd, ref->hash);
    if (c) {
        /* The same content address in another index entry must describe the same block. */
        if (!block_matches(&c->block, ref))
            return PSL_ERR_AUTH;
        rd->stats.hits++;
        lru_unlink(rd, c);
        lru_push_front(rd, c);
        c->pins++;
        rd->pinned_count++;
        *out = c;
        return PSL_OK;
    }
    rd->stats.misses++;
    c = calloc(1, sizeof *c);
    if (!c)
        return PSL_ERR_NOMEM;
    psl_err err = reader_fetch(rd, ref, &c->block);
    if (err) {
        free(c);
        return err;
    }
    memcpy(c->hash, ref->hash, HASH_SIZE);
    c->mem_size = lsm_block_mem_size(&c->block) + sizeof *c;
    c->pins = 1;
    rd->pinned_count++;
    cache_insert(rd, c);
    *out = c;
    return PSL_OK;
}

const struct lsm_block *lsm_cached_block(const struct lsm_cached *c)
{
    return &c->block;
}

void lsm_reader_unpin(struct lsm_reader *rd, struct lsm_cached *c)
{
    PSL_ASSERT(c->pins > 0 && rd->pinned_count > 0);
    c->pins--;
    rd->pinned_count--;
    if (c->pins == 0 && !c->in_cache) {
        /* Out of the cache means out of every list. */
        PSL_ASSERT(!c->prev && !c->next && !c->chain && rd->lru_first != c && rd->lru_last != c);
        cached_free(c);
    }
}

/* ---- lookups ---- */

const struct lsm_block_ref *lsm_run_find(const struct lsm_run *run, const uint8_t *key,
                                         size_t key_size)
{
    /* The last block whose min_key <= key, if key <= its max_key. */
    size_t lo = 0, hi = run->block_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct lsm_block_ref *b = &run->blocks[mid];
        if (lsm_key_cmp(b->min_key, b->min_key_size, key, key_size) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct lsm_block_ref *b = &run->blocks[lo - 1];
    return lsm_key_cmp(key, key_size, b->max_key, b->max_key_size) <= 0 ? b : NULL;
}

void lsm_result_release(struct lsm_reader *rd, struct lsm_result *res)
{
    if (res->pin)
        lsm_reader_unpin(rd, res->pin);
    memset(res, 0, sizeof *res);
}

psl_err lsm_lookup(struct lsm_reader *rd, const struct lsm_index *ix, const uint8_t *key,
                   size_t key_size, struct lsm_result *out)
{
    if (!key || key_size == 0)
        return PSL_ERR_INVALID_ARG;
    if (key_size > PSL_KEY_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    struct lsm_bloom_probe probe;
    lsm_bloom_probe_init(&probe, key, key_size);
    struct lsm_result best;
    memset(&best, 0, sizeof best);
    for (size_t l = 0; l < ix->level_count; l++) {
        const struct lsm_level *lv = &ix->levels[l];
        for (size_t r = 0; r < lv->run_count; r++) {
            const struct lsm_block_ref *ref = lsm_run_find(&lv->runs[r], key, key_size);
            if (!ref)
                continue;
            if (best.found && ref->lamport_max < best.entry.lamport) {
                rd->stats.lamport_skips++;
                continue;
            }
            if (!lsm_bloom_may_contain(ref->bloom, ref->bloom_size, ref->bloom_hashes, &probe)) {
                rd->stats.bloom_skips++;
                continue;
            }
            struct lsm_cached *c;
            psl_err err = lsm_reader_pin(rd, ref, &c);
            if (err) {
                lsm_result_release(rd, &best);
                return err;
            }
            size_t i;
            struct lsm_entry e;
            if (lsm_block_find(&c->block, key, key_size, &i)) {
                lsm_block_entry(&c->block, i, &e);
                if (!best.found || lsm_version_cmp(&e, &best.entry) > 0) {
                    lsm_result_release(rd, &best);
                    best = (struct lsm_result){.found = true, .entry = e, .pin = c};
                    continue;
                }
            }
            lsm_reader_unpin(rd, c);
        }
    }
    *out = best;
    return PSL_OK;
}
