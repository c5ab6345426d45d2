/* fuzz_lsm_block.c: libFuzzer target for the CapsuleDB block decoders (src/lsm/block.c):
 * lsm_block_count and lsm_block_parse on the raw bytes as a block plaintext, and, when the bytes
 * parse as a record, the reader's path: lsm_record_check_hash against the record's own hash, then
 * lsm_block_open with the key of the fixture writer that sealed it. Invariants checked: parse
 * agrees with count, every entry lies inside the input and keeps the limits, keys are strictly
 * ascending, the block re-encodes to exactly the input (the encoding is canonical), every key is
 * found by lsm_block_find, and a filter built from the keys has no false negatives. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "fuzz_fixture.h"
#include "lsm/block.h"
#include "lsm/bloom.h"

static uint32_t *fuzz_offsets;
static struct lsm_entry *fuzz_entries;

static void check_loaded(const struct lsm_block *b)
{
    PSL_ASSERT(b->count >= 1 && b->count <= LSM_BLOCK_ENTRIES_MAX);
    size_t bloom_size = lsm_bloom_size_for(b->count, LSM_BLOOM_BITS_PER_KEY_DEFAULT);
    uint8_t *bloom = calloc(1, bloom_size);
    PSL_ASSERT(bloom);
    for (size_t i = 0; i < b->count; i++) {
        struct lsm_entry e;
        lsm_block_entry(b, i, &e);
        PSL_ASSERT(lsm_entry_is_valid(&e));
        size_t at = 0;
        PSL_ASSERT(lsm_block_find(b, e.key, e.key_size, &at) && at == i);
        struct lsm_bloom_probe p;
        lsm_bloom_probe_init(&p, e.key, e.key_size);
        lsm_bloom_add(bloom, bloom_size, LSM_BLOOM_HASHES_DEFAULT, &p);
    }
    for (size_t i = 0; i < b->count; i++) {
        struct lsm_entry e;
        lsm_block_entry(b, i, &e);
        struct lsm_bloom_probe p;
        lsm_bloom_probe_init(&p, e.key, e.key_size);
        PSL_ASSERT(lsm_bloom_may_contain(bloom, bloom_size, LSM_BLOOM_HASHES_DEFAULT, &p));
    }
    free(bloom);
}

static void check_plain(const uint8_t *data, size_t size)
{
    size_t counted = 0, count = 0;
    psl_err cerr = lsm_block_count(data, size, &counted);
    if (lsm_block_parse(data, size, fuzz_offsets, LSM_BLOCK_ENTRIES_MAX, &count) != PSL_OK)
        return;
    PSL_ASSERT(cerr == PSL_OK && counted == count);
    for (size_t i = 0; i < count; i++) {
        PSL_ASSERT(fuzz_offsets[i] >= LSM_BLOCK_HEADER_SIZE && fuzz_offsets[i] < size);
        PSL_ASSERT(size - fuzz_offsets[i] >= LSM_ENTRY_OVERHEAD + 1);
    }
    /* A view of the entries, through a loaded private copy. */
    uint8_t *copy = malloc(size);
    PSL_ASSERT(copy);
    memcpy(copy, data, size);
    struct lsm_block b;
    PSL_ASSERT(lsm_block_load(&b, copy, size) == PSL_OK && b.count == count);
    check_loaded(&b);
    for (size_t i = 0; i < count; i++) {
        lsm_block_entry(&b, i, &fuzz_entries[i]);
        PSL_ASSERT(b.offsets[i] == fuzz_offsets[i]);
        if (i > 0)
            PSL_ASSERT(lsm_key_cmp(fuzz_entries[i - 1].key, fuzz_entries[i - 1].key_size,
                                   fuzz_entries[i].key, fuzz_entries[i].key_size) < 0);
    }
    PSL_ASSERT(lsm_block_encoded_size(fuzz_entries, count) == size);
    uint8_t *out = malloc(size);
    PSL_ASSERT(out);
    struct wr w;
    wr_init(&w, out, size);
    PSL_ASSERT(lsm_block_encode(&w, fuzz_entries, count) == PSL_OK);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
    free(out);
    lsm_block_deinit(&b);
}

static void check_record(const struct fuzz_fixture *fx, const uint8_t *data, size_t size)
{
    struct record_view v;
    if (record_parse(&v, data, size) != PSL_OK)
        return;
    uint8_t hash[HASH_SIZE];
    memcpy(hash, v.hash, HASH_SIZE);
    if (lsm_record_check_hash(&v, data, size, REC_LSM_BLOCK, fx->meta.name, hash) != PSL_OK)
        return;
    PSL_ASSERT(v.h.type == REC_LSM_BLOCK);
    /* Any other content address is refused. */
    hash[0] ^= 1;
    struct record_view x;
    PSL_ASSERT(lsm_record_check_hash(&x, data, size, REC_LSM_BLOCK, fx->meta.name, hash) ==
               PSL_ERR_AUTH);
    int wi = fixture_writer_index(fx, v.h.writer);
    struct lsm_block b;
    if (lsm_block_open(&v, &fx->writers[wi >= 0 ? wi : 0].aead, &b) != PSL_OK)
        return;
    PSL_ASSERT(wi >= 0); /* another key never opens it */
    PSL_ASSERT(b.plain_size == v.h.payload_size - AEAD_TAG_SIZE);
    check_loaded(&b);
    lsm_block_deinit(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    if (!fuzz_offsets) {
        fuzz_offsets = calloc(LSM_BLOCK_ENTRIES_MAX, sizeof *fuzz_offsets);
        fuzz_entries = calloc(LSM_BLOCK_ENTRIES_MAX, sizeof *fuzz_entries);
        PSL_ASSERT(fuzz_offsets && fuzz_entries);
    }
    check_plain(data, size);
    check_record(fx, data, size);
    return 0;
}
