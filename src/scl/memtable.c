/* memtable.c: the SCL's last-writer-wins key-value table (DESIGN §5.3), an open-addressing hash
 * table (linear probing, keyed SipHash-2-4, power-of-two capacity, load <= 3/4) of entries that
 * each hold one key with its value or tombstone and the (lamport, writer) stamp that wrote it.
 * Invariant: every stored entry is the maximum, under (lamport, writer, content), of the
 * operations applied for its key; nothing is removed except by memtable_remove (CapsuleDB
 * eviction, whose caller holds the entry's version in a covering index), so no older operation
 * can undo it.
 * Entries are single allocations (header, key, value) that never move when the table grows, and
 * are wiped before they are freed. */
#include "scl/memtable.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/limits.h"
#include "capsule/payload.h"

_Static_assert(MEMTABLE_HASH_KEY_SIZE == crypto_shorthash_KEYBYTES, "SipHash key size");
_Static_assert(crypto_shorthash_BYTES == 8, "SipHash output size");
_Static_assert(PSL_KEY_SIZE_MAX <= UINT16_MAX, "key sizes are stored in 16 bits");
_Static_assert(PSL_VALUE_SIZE_MAX <= UINT32_MAX, "value sizes are stored in 32 bits");

#define MEMTABLE_CAPACITY_MIN 16u
/* 2^30 slots (16 GiB of slots, 805M entries) is far past any enclave's memory: a request beyond
 * it is refused as PSL_ERR_NOMEM rather than handed to the allocator. */
#define MEMTABLE_CAPACITY_MAX ((size_t)1 << 30)

struct mt_entry {
    uint64_t lamport;
    uint32_t value_size;
    uint16_t key_size;
    uint8_t tombstone; /* 1: deleted (value_size is 0) */
    uint8_t writer[MEMTABLE_WRITER_SIZE];
    uint8_t data[]; /* key_size bytes of key, then value_size bytes of value */
};

struct memtable_slot {
    uint64_t hash;          /* keyed hash of the entry's key: probes skip most compares */
    struct mt_entry *entry; /* owned; NULL marks an empty slot */
};

/* ---- entries ---- */

static size_t entry_size(size_t key_size, size_t value_size)
{
    return sizeof(struct mt_entry) + key_size + value_size;
}

static const uint8_t *entry_value(const struct mt_entry *e)
{
    return e->data + e->key_size;
}

/* Fills the stamp and value of e (whose key is already in place); value_size fits e. */
static void entry_set(struct mt_entry *e, bool tombstone, uint64_t lamport,
                      const uint8_t writer[MEMTABLE_WRITER_SIZE], const uint8_t *value,
                      size_t value_size)
{
    e->lamport = lamport;
    e->tombstone = tombstone ? 1 : 0;
    memcpy(e->writer, writer, MEMTABLE_WRITER_SIZE);
    e->value_size = (uint32_t)value_size;
    if (value_size)
        memmove(e->data + e->key_size, value, value_size); /* value may alias e's own value */
}

/* Returns a new entry, or NULL. key and value are copied. */
static struct mt_entry *entry_new(const uint8_t *key, size_t key_size, bool tombstone,
                                  uint64_t lamport, const uint8_t writer[MEMTABLE_WRITER_SIZE],
                                  const uint8_t *value, size_t value_size)
{
    struct mt_entry *e = malloc(entry_size(key_size, value_size));
    if (!e)
        return NULL;
    e->key_size = (uint16_t)key_size;
    memcpy(e->data, key, key_size);
    entry_set(e, tombstone, lamport, writer, value, value_size);
    return e;
}

static void entry_free(struct mt_entry *e)
{
    sodium_memzero(e, entry_size(e->key_size, e->value_size));
    free(e);
}

static void entry_view(const struct mt_entry *e, struct memtable_entry_view *v)
{
    v->key = e->data;
    v->key_size = e->key_size;
    v->value = e->tombstone ? NULL : entry_value(e);
    v->value_size = e->value_size;
    v->lamport = e->lamport;
    memcpy(v->writer, e->writer, MEMTABLE_WRITER_SIZE);
    v->tombstone = e->tombstone != 0;
}

/* ---- orders ---- */

/* Bytewise, a shorter string first on a common prefix: the key order of the digest and the
 * content order of equivocating operations. */
static int bytes_cmp(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    size_t n = a_size < b_size ? a_size : b_size;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return (a_size > b_size) - (a_size < b_size);
}

static int stamp_cmp(uint64_t a_lamport, const uint8_t *a_writer, uint64_t b_lamport,
                     const uint8_t *b_writer)
{
    if (a_lamport != b_lamport)
        return a_lamport < b_lamport ? -1 : 1;
    return memcmp(a_writer, b_writer, MEMTABLE_WRITER_SIZE);
}

/* Breaks ties between operations with the same stamp: a tombstone is above any value, values
 * compare as bytes. Only an equivocating writer makes this matter. */
static int content_cmp(bool a_tombstone, const uint8_t *a_value, size_t a_size, bool b_tombstone,
                       const uint8_t *b_value, size_t b_size)
{
    if (a_tombstone != b_tombstone)
        return a_tombstone ? 1 : -1;
    if (a_tombstone)
        return 0;
    return bytes_cmp(a_value, a_size, b_value, b_size);
}

/* ---- slots ---- */

static uint64_t key_hash(const struct memtable *mt, const uint8_t *key, size_t key_size)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, key_size, mt->hash_key);
    return get_le64(h);
}

/* Returns the slot holding key, or the empty slot where it would go (*found false). The load
 * bound guarantees an empty slot, so the probe ends. */
static size_t slot_find(const struct memtable *mt, uint64_t hash, const uint8_t *key,
                        size_t key_size, bool *found)
{
    size_t mask = mt->capacity - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        const struct memtable_slot *s = &mt->slots[i];
        if (!s->entry) {
            *found = false;
            return i;
        }
        if (s->hash == hash && s->entry->key_size == key_size &&
            memcmp(s->entry->data, key, key_size) == 0) {
            *found = true;
            return i;
        }
    }
}

/* Smallest capacity (a power of two, at least the minimum) that holds count entries within the
 * load bound; false when that is over the maximum. */
static bool capacity_for(size_t count, size_t *capacity)
{
    size_t cap = MEMTABLE_CAPACITY_MIN;
    while (cap / 4 * 3 < count) {
        if (cap >= MEMTABLE_CAPACITY_MAX)
            return false;
        cap *= 2;
    }
    *capacity = cap;
    return true;
}

/* Moves every entry into a new slot array of new_capacity slots. On failure nothing changes. */
static psl_err table_resize(struct memtable *mt, size_t new_capacity)
{
    PSL_ASSERT(new_capacity / 4 * 3 >= mt->count);
    PSL_ASSERT((new_capacity & (new_capacity - 1)) == 0);
    PSL_ASSERT(new_capacity <= MEMTABLE_CAPACITY_MAX);
    struct memtable_slot *slots = calloc(new_capacity, sizeof *slots);
    if (!slots)
        return PSL_ERR_NOMEM;
    size_t mask = new_capacity - 1;
    for (size_t j = 0; j < mt->capacity; j++) {
        const struct memtable_slot *s = &mt->slots[j];
        if (!s->entry)
            continue;
        size_t i = (size_t)s->hash & mask;
        while (slots[i].entry)
            i = (i + 1) & mask;
        slots[i] = *s;
    }
    sodium_memzero(mt->slots, mt->capacity * sizeof *mt->slots);
    free(mt->slots);
    mt->slots = slots;
    mt->capacity = new_capacity;
    return PSL_OK;
}

/* ---- interface ---- */

psl_err memtable_init(struct memtable *mt, const uint8_t hash_key[MEMTABLE_HASH_KEY_SIZE])
{
    PSL_ASSERT(mt && hash_key);
    struct memtable t = {0};
    t.hash_key = secret_alloc(MEMTABLE_HASH_KEY_SIZE);
    if (!t.hash_key)
        return PSL_ERR_NOMEM;
    memcpy(t.hash_key, hash_key, MEMTABLE_HASH_KEY_SIZE);
    t.slots = calloc(MEMTABLE_CAPACITY_MIN, sizeof *t.slots);
    if (!t.slots)
        goto out_free_hash_key;
    t.capacity = MEMTABLE_CAPACITY_MIN;
    *mt = t;
    return PSL_OK;

out_free_hash_key:
    secret_free(t.hash_key);
    return PSL_ERR_NOMEM;
}

void memtable_deinit(struct memtable *mt)
{
    if (mt->slots) {
        for (size_t i = 0; i < mt->capacity; i++) {
            if (mt->slots[i].entry)
                entry_free(mt->slots[i].entry);
        }
        sodium_memzero(mt->slots, mt->capacity * sizeof *mt->slots);
        free(mt->slots);
    }
    if (mt->hash_key)
        secret_free(mt->hash_key);
    sodium_memzero(mt, sizeof *mt);
}

static psl_err check_key(const uint8_t *key, size_t key_size)
{
    if (key_size == 0 || !key)
        return PSL_ERR_INVALID_ARG;
    if (key_size > PSL_KEY_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    return PSL_OK;
}

psl_err memtable_apply(struct memtable *mt, uint8_t op, uint64_t lamport,
                       const uint8_t writer[MEMTABLE_WRITER_SIZE], const uint8_t *key,
                       size_t key_size, const uint8_t *value, size_t value_size, bool *applied)
{
    PSL_ASSERT(mt->slots && mt->count < mt->capacity);
    PSL_ASSERT(writer);
    psl_err err = check_key(key, key_size);
    if (err != PSL_OK)
        return err;
    if (op != OP_PUT && op != OP_DEL)
        return PSL_ERR_INVALID_ARG;
    if (value_size > PSL_VALUE_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if ((value_size && !value) || (op == OP_DEL && value_size))
        return PSL_ERR_INVALID_ARG;
    bool tombstone = op == OP_DEL;

    uint64_t hash = key_hash(mt, key, key_size);
    bool found;
    size_t i = slot_find(mt, hash, key, key_size, &found);
    if (found) {
        struct mt_entry *e = mt->slots[i].entry;
        int c = stamp_cmp(lamport, writer, e->lamport, e->writer);
        if (c == 0) {
            c = content_cmp(tombstone, value, value_size, e->tombstone != 0, entry_value(e),
                            e->value_size);
            if (c != 0)
                mt->conflict_count++;
        }
        if (c <= 0) {
            if (applied)
                *applied = false;
            return PSL_OK;
        }
        if (value_size == e->value_size) {
            entry_set(e, tombstone, lamport, writer, value, value_size);
        } else {
            struct mt_entry *n =
                entry_new(e->data, e->key_size, tombstone, lamport, writer, value, value_size);
            if (!n)
                return PSL_ERR_NOMEM;
            mt->slots[i].entry = n;
            mt->entry_bytes -= entry_size(e->key_size, e->value_size);
            mt->entry_bytes += entry_size(key_size, value_size);
            entry_free(e); /* after the copy: value may have pointed into e */
        }
        if (applied)
            *applied = true;
        return PSL_OK;
    }

    if (mt->count + 1 > mt->capacity / 4 * 3) {
        if (mt->capacity >= MEMTABLE_CAPACITY_MAX)
            return PSL_ERR_NOMEM;
        err = table_resize(mt, mt->capacity * 2);
        if (err != PSL_OK)
            return err;
        i = slot_find(mt, hash, key, key_size, &found);
        PSL_ASSERT(!found);
    }
    struct mt_entry *e = entry_new(key, key_size, tombstone, lamport, writer, value, value_size);
    if (!e)
        return PSL_ERR_NOMEM; /* the table may have grown, but holds the same entries */
    mt->slots[i] = (struct memtable_slot){.hash = hash, .entry = e};
    mt->count++;
    mt->entry_bytes += entry_size(key_size, value_size);
    if (applied)
        *applied = true;
    return PSL_OK;
}

psl_err memtable_lookup(const struct memtable *mt, const uint8_t *key, size_t key_size,
                        struct memtable_entry_view *out)
{
    PSL_ASSERT(mt->slots);
    psl_err err = check_key(key, key_size);
    if (err != PSL_OK)
        return err;
    bool found;
    size_t i = slot_find(mt, key_hash(mt, key, key_size), key, key_size, &found);
    if (!found)
        return PSL_ERR_NOT_FOUND;
    entry_view(mt->slots[i].entry, out);
    return PSL_OK;
}

psl_err memtable_get(const struct memtable *mt, const uint8_t *key, size_t key_size,
                     const uint8_t **value, size_t *value_size)
{
    struct memtable_entry_view v;
    psl_err err = memtable_lookup(mt, key, key_size, &v);
    if (err != PSL_OK)
        return err;
    if (v.tombstone)
        return PSL_ERR_NOT_FOUND;
    *value = v.value;
    *value_size = v.value_size;
    return PSL_OK;
}

bool memtable_remove(struct memtable *mt, const uint8_t *key, size_t key_size)
{
    if (check_key(key, key_size) != PSL_OK)
        return false;
    bool found;
    size_t i = slot_find(mt, key_hash(mt, key, key_size), key, key_size, &found);
    if (!found)
        return false;
    struct mt_entry *e = mt->slots[i].entry;
    mt->entry_bytes -= entry_size(e->key_size, e->value_size);
    entry_free(e);
    mt->count--;
    /* Backward-shift deletion: move later entries of the probe run into the hole when their home
     * slot does not lie cyclically in (hole, j], so that every probe still finds its key. */
    size_t mask = mt->capacity - 1, hole = i;
    mt->slots[hole] = (struct memtable_slot){0};
    for (size_t j = (hole + 1) & mask; mt->slots[j].entry; j = (j + 1) & mask) {
        size_t home = (size_t)mt->slots[j].hash & mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        mt->slots[hole] = mt->slots[j];
        mt->slots[j] = (struct memtable_slot){0};
        hole = j;
    }
    return true;
}

size_t memtable_count(const struct memtable *mt)
{
    return mt->count;
}

size_t memtable_bytes(const struct memtable *mt)
{
    return mt->capacity * sizeof *mt->slots + mt->entry_bytes;
}

size_t memtable_capacity(const struct memtable *mt)
{
    return mt->capacity;
}

uint64_t memtable_conflict_count(const struct memtable *mt)
{
    return mt->conflict_count;
}

psl_err memtable_reserve(struct memtable *mt, size_t count)
{
    PSL_ASSERT(mt->slots);
    size_t cap;
    if (!capacity_for(count, &cap))
        return PSL_ERR_NOMEM;
    if (cap <= mt->capacity)
        return PSL_OK;
    return table_resize(mt, cap);
}

static int slot_key_cmp(const void *a, const void *b)
{
    const struct mt_entry *x = ((const struct memtable_slot *)a)->entry;
    const struct mt_entry *y = ((const struct memtable_slot *)b)->entry;
    return bytes_cmp(x->data, x->key_size, y->data, y->key_size);
}

/* SHA-256 through libsodium's incremental interface: src/crypto offers only one-shot hashing
 * (libgcrypt), and the digest must not need a copy of the whole state. Same function, same
 * output; the digest is for checks, not a hot path. */
psl_err memtable_digest(const struct memtable *mt, uint8_t out[MEMTABLE_DIGEST_SIZE])
{
    PSL_ASSERT(mt->slots);
    struct memtable_slot *sorted = NULL; /* the occupied slots, in key order */
    if (mt->count) {
        sorted = calloc(mt->count, sizeof *sorted);
        if (!sorted)
            return PSL_ERR_NOMEM;
        size_t n = 0;
        for (size_t i = 0; i < mt->capacity; i++) {
            if (mt->slots[i].entry)
                sorted[n++] = mt->slots[i];
        }
        PSL_ASSERT(n == mt->count);
        qsort(sorted, n, sizeof *sorted, slot_key_cmp);
    }

    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t k = 0; k < mt->count; k++) {
        const struct mt_entry *e = sorted[k].entry;
        uint8_t key_size[2];
        uint8_t fixed[1 + 8 + MEMTABLE_WRITER_SIZE + 4]; /* tombstone lamport writer value_size */
        put_le16(key_size, e->key_size);
        fixed[0] = e->tombstone;
        put_le64(fixed + 1, e->lamport);
        memcpy(fixed + 9, e->writer, MEMTABLE_WRITER_SIZE);
        put_le32(fixed + 9 + MEMTABLE_WRITER_SIZE, e->value_size);
        crypto_hash_sha256_update(&st, key_size, sizeof key_size);
        crypto_hash_sha256_update(&st, e->data, e->key_size);
        crypto_hash_sha256_update(&st, fixed, sizeof fixed);
        if (e->value_size)
            crypto_hash_sha256_update(&st, entry_value(e), e->value_size);
    }
    uint8_t digest[MEMTABLE_DIGEST_SIZE];
    crypto_hash_sha256_final(&st, digest);
    sodium_memzero(&st, sizeof st); /* its buffer held plaintext */
    if (sorted) {
        sodium_memzero(sorted, mt->count * sizeof *sorted);
        free(sorted);
    }
    memcpy(out, digest, sizeof digest);
    return PSL_OK;
}

psl_err memtable_foreach(const struct memtable *mt, memtable_visit_fn fn, void *ctx)
{
    PSL_ASSERT(mt->slots && fn);
    for (size_t i = 0; i < mt->capacity; i++) {
        const struct mt_entry *e = mt->slots[i].entry;
        if (!e)
            continue;
        struct memtable_entry_view v;
        entry_view(e, &v);
        psl_err err = fn(ctx, &v);
        if (err != PSL_OK)
            return err;
    }
    return PSL_OK;
}
