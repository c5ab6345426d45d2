/* block.c: the CapsuleDB block codec (format in block.h) and the checks that turn fetched record
 * bytes into a block. Invariant: a struct lsm_block only ever holds a plaintext that passed
 * lsm_block_parse (limits, strictly ascending keys, exact framing), taken from a record whose
 * hash was the one asked for; its plaintext is wiped whenever it is freed. */
#include "lsm/block.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"

static const uint8_t block_magic[4] = {'P', 'S', 'L', 'B'};

int lsm_key_cmp(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    size_t n = a_size < b_size ? a_size : b_size;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return (a_size > b_size) - (a_size < b_size);
}

int lsm_version_cmp(const struct lsm_entry *a, const struct lsm_entry *b)
{
    if (a->lamport != b->lamport)
        return a->lamport < b->lamport ? -1 : 1;
    int c = memcmp(a->writer, b->writer, HASH_SIZE);
    if (c != 0)
        return c;
    bool a_del = a->kind == OP_DEL, b_del = b->kind == OP_DEL;
    if (a_del != b_del)
        return a_del ? 1 : -1;
    if (a_del)
        return 0;
    return lsm_key_cmp(a->value, a->value_size, b->value, b->value_size);
}

bool lsm_entry_is_valid(const struct lsm_entry *e)
{
    if (!e->writer || !e->key || e->key_size < 1 || e->key_size > PSL_KEY_SIZE_MAX)
        return false;
    if (e->kind == OP_DEL)
        return e->value_size == 0;
    if (e->kind != OP_PUT)
        return false;
    return e->value_size <= PSL_VALUE_SIZE_MAX && (e->value_size == 0 || e->value);
}

size_t lsm_entry_size(const struct lsm_entry *e)
{
    return LSM_ENTRY_OVERHEAD + (size_t)e->key_size + e->value_size;
}

void lsm_block_header_write(uint8_t *p, uint32_t count)
{
    memcpy(p, block_magic, 4);
    p[4] = LSM_BLOCK_VERSION;
    put_le32(p + 5, count);
}

void lsm_entry_write(uint8_t *p, const struct lsm_entry *e)
{
    p[0] = e->kind;
    put_le64(p + 1, e->lamport);
    memcpy(p + 9, e->writer, HASH_SIZE);
    put_le16(p + 41, e->key_size);
    put_le32(p + 43, e->value_size);
    memcpy(p + LSM_ENTRY_OVERHEAD, e->key, e->key_size);
    if (e->value_size)
        memcpy(p + LSM_ENTRY_OVERHEAD + e->key_size, e->value, e->value_size);
}

size_t lsm_block_encoded_size(const struct lsm_entry *entries, size_t count)
{
    if (count < 1 || count > LSM_BLOCK_ENTRIES_MAX)
        return 0;
    size_t n = LSM_BLOCK_HEADER_SIZE;
    for (size_t i = 0; i < count; i++) {
        if (!lsm_entry_is_valid(&entries[i]))
            return 0;
        n += lsm_entry_size(&entries[i]);
        if (n > LSM_BLOCK_SIZE_MAX)
            return 0;
    }
    return n;
}

psl_err lsm_block_encode(struct wr *w, const struct lsm_entry *entries, size_t count)
{
    size_t total = lsm_block_encoded_size(entries, count);
    if (!total)
        return PSL_ERR_TOO_LARGE;
    for (size_t i = 1; i < count; i++)
        if (lsm_key_cmp(entries[i - 1].key, entries[i - 1].key_size, entries[i].key,
                        entries[i].key_size) >= 0)
            return PSL_ERR_INVALID_ARG;
    uint8_t *p = wr_reserve(w, total);
    if (!p)
        return PSL_ERR_TOO_LARGE;
    lsm_block_header_write(p, (uint32_t)count);
    p += LSM_BLOCK_HEADER_SIZE;
    for (size_t i = 0; i < count; i++) {
        lsm_entry_write(p, &entries[i]);
        p += lsm_entry_size(&entries[i]);
    }
    return PSL_OK;
}

psl_err lsm_block_count(const uint8_t *buf, size_t size, size_t *count)
{
    if (size < LSM_BLOCK_HEADER_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, block_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (buf[4] != LSM_BLOCK_VERSION)
        return PSL_ERR_BAD_VERSION;
    if (size > LSM_BLOCK_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    uint32_t n = get_le32(buf + 5);
    if (n == 0)
        return PSL_ERR_MALFORMED;
    if (n > LSM_BLOCK_ENTRIES_MAX)
        return PSL_ERR_TOO_LARGE;
    /* Each entry needs at least its fixed part and a 1-byte key. */
    if (n > (size - LSM_BLOCK_HEADER_SIZE) / (LSM_ENTRY_OVERHEAD + 1))
        return PSL_ERR_TRUNCATED;
    *count = n;
    return PSL_OK;
}

psl_err lsm_block_parse(const uint8_t *buf, size_t size, uint32_t *offsets, size_t cap,
                        size_t *count)
{
    size_t n;
    psl_err err = lsm_block_count(buf, size, &n);
    if (err)
        return err;
    if (n > cap)
        return PSL_ERR_TOO_LARGE;
    struct rd r;
    rd_init(&r, buf, size);
    r.pos = LSM_BLOCK_HEADER_SIZE;
    const uint8_t *prev_key = NULL;
    size_t prev_size = 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = r.pos;
        uint8_t kind = rd_u8(&r);
        (void)rd_u64(&r);
        (void)rd_take(&r, HASH_SIZE);
        uint16_t key_size = rd_u16(&r);
        uint32_t value_size = rd_u32(&r);
        if (r.err)
            return r.err;
        if (kind != OP_PUT && kind != OP_DEL)
            return PSL_ERR_MALFORMED;
        if (key_size == 0 || (kind == OP_DEL && value_size != 0))
            return PSL_ERR_MALFORMED;
        if (key_size > PSL_KEY_SIZE_MAX || value_size > PSL_VALUE_SIZE_MAX)
            return PSL_ERR_TOO_LARGE;
        const uint8_t *key = rd_take(&r, key_size);
        (void)rd_take(&r, value_size);
        if (r.err)
            return r.err;
        if (prev_key && lsm_key_cmp(prev_key, prev_size, key, key_size) >= 0)
            return PSL_ERR_MALFORMED;
        prev_key = key;
        prev_size = key_size;
        offsets[i] = (uint32_t)at; /* at < size <= LSM_BLOCK_SIZE_MAX */
    }
    err = rd_finish(&r);
    if (err)
        return err;
    *count = n;
    return PSL_OK;
}

psl_err lsm_block_load(struct lsm_block *b, uint8_t *plain, size_t size)
{
    size_t n;
    psl_err err = lsm_block_count(plain, size, &n);
    if (err)
        return err;
    uint32_t *offsets = malloc(n * sizeof *offsets); /* n validated against the bytes present */
    if (!offsets)
        return PSL_ERR_NOMEM;
    err = lsm_block_parse(plain, size, offsets, n, &n);
    if (err) {
        free(offsets);
        return err;
    }
    b->plain = plain;
    b->plain_size = size;
    b->offsets = offsets;
    b->count = n;
    return PSL_OK;
}

void lsm_block_deinit(struct lsm_block *b)
{
    if (b->plain) {
        secret_wipe(b->plain, b->plain_size);
        free(b->plain);
    }
    free(b->offsets);
    memset(b, 0, sizeof *b);
}

size_t lsm_block_mem_size(const struct lsm_block *b)
{
    return b->plain_size + b->count * sizeof *b->offsets;
}

void lsm_block_entry(const struct lsm_block *b, size_t i, struct lsm_entry *out)
{
    PSL_ASSERT(i < b->count);
    const uint8_t *p = b->plain + b->offsets[i];
    out->kind = p[0];
    out->lamport = get_le64(p + 1);
    out->writer = p + 9;
    out->key_size = (uint16_t)(p[41] | (unsigned)p[42] << 8);
    out->value_size = get_le32(p + 43);
    out->key = p + LSM_ENTRY_OVERHEAD;
    out->value = out->value_size ? out->key + out->key_size : NULL;
}

static void block_key(const struct lsm_block *b, size_t i, const uint8_t **key, size_t *key_size)
{
    const uint8_t *p = b->plain + b->offsets[i];
    *key_size = (size_t)(p[41] | (unsigned)p[42] << 8);
    *key = p + LSM_ENTRY_OVERHEAD;
}

bool lsm_block_find(const struct lsm_block *b, const uint8_t *key, size_t key_size, size_t *index)
{
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *k;
        size_t ks;
        block_key(b, mid, &k, &ks);
        int c = lsm_key_cmp(k, ks, key, key_size);
        if (c == 0) {
            *index = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

psl_err lsm_block_seal(struct record_chain *rc, const struct writer_keys *wk, uint64_t lamport,
                       uint8_t *buf, size_t cap, size_t plain_size, size_t *out_size,
                       uint8_t hash_out[HASH_SIZE])
{
    if (plain_size > LSM_BLOCK_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    return record_chain_seal(rc, wk, REC_LSM_BLOCK, lamport, buf, cap, plain_size, out_size,
                             hash_out);
}

psl_err lsm_record_check_hash(struct record_view *v, const uint8_t *rec, size_t size, uint8_t type,
                              const uint8_t capsule[HASH_SIZE],
                              const uint8_t expect_hash[HASH_SIZE])
{
    struct record_view view;
    psl_err err = record_parse(&view, rec, size);
    if (err)
        return err;
    /* The content address is public (it is in requests), so a plain comparison is fine. */
    if (memcmp(view.hash, expect_hash, HASH_SIZE) != 0)
        return PSL_ERR_AUTH;
    if (view.h.type != type)
        return PSL_ERR_BAD_TYPE;
    if (memcmp(view.h.capsule, capsule, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    *v = view;
    return PSL_OK;
}

psl_err lsm_block_open(const struct record_view *v, const struct aead_key *key,
                       struct lsm_block *out)
{
    if (v->h.type != REC_LSM_BLOCK)
        return PSL_ERR_BAD_TYPE;
    size_t cap = v->h.payload_size - AEAD_TAG_SIZE; /* header decode ensured >= tag size */
    if (cap > LSM_BLOCK_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    uint8_t *plain = malloc(cap ? cap : 1);
    if (!plain)
        return PSL_ERR_NOMEM;
    size_t size = 0;
    psl_err err = record_open(v, key, plain, cap, &size);
    if (!err)
        err = lsm_block_load(out, plain, size);
    if (err) {
        secret_wipe(plain, cap);
        free(plain);
    }
    return err;
}
