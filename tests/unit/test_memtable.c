/* test_memtable.c: the SCL memtable (src/scl/memtable.c): last-writer-wins under (lamport,
 * writer), tombstones, idempotence, limits, growth, and the state digest. The convergence
 * property test applies one seeded set of operations in many orders, with duplicates, into tables
 * with different hash keys and capacities, and checks every digest against a reference model
 * that encodes and hashes the expected state independently. Every random choice derives from a
 * fixed seed, so a failure replays exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/limits.h"
#include "capsule/payload.h"
#include "crypto/crypto.h"
#include "scl/memtable.h"
#include "testutil.h"

/* ---- helpers ---- */

static uint64_t rnd_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static void hash_key_n(uint8_t out[MEMTABLE_HASH_KEY_SIZE], unsigned n)
{
    uint8_t seed[32];
    tu_seed(seed, 9000 + n);
    memcpy(out, seed, MEMTABLE_HASH_KEY_SIZE);
}

static void mt_new(struct memtable *mt, unsigned hash_key)
{
    uint8_t hk[MEMTABLE_HASH_KEY_SIZE];
    hash_key_n(hk, hash_key);
    assert_int_equal(memtable_init(mt, hk), PSL_OK);
}

/* Writers whose order is obvious: W(1) < W(2) < ... (all bytes equal to n). */
static const uint8_t *W(uint8_t n)
{
    static uint8_t ids[256][MEMTABLE_WRITER_SIZE];
    memset(ids[n], n, MEMTABLE_WRITER_SIZE);
    return ids[n];
}

/* Applies a string key/value op and checks its result and applied flag. */
static void put_s(struct memtable *mt, uint64_t lamport, const uint8_t *w, const char *key,
                  const char *value, bool want_applied)
{
    bool applied = !want_applied;
    assert_int_equal(memtable_apply(mt, OP_PUT, lamport, w, (const uint8_t *)key, strlen(key),
                                    (const uint8_t *)value, strlen(value), &applied),
                     PSL_OK);
    assert_int_equal(applied, want_applied);
}

static void del_s(struct memtable *mt, uint64_t lamport, const uint8_t *w, const char *key,
                  bool want_applied)
{
    bool applied = !want_applied;
    assert_int_equal(memtable_apply(mt, OP_DEL, lamport, w, (const uint8_t *)key, strlen(key), NULL,
                                    0, &applied),
                     PSL_OK);
    assert_int_equal(applied, want_applied);
}

/* Checks the live value of key, or that it reads as absent when want is NULL. */
static void want_s(const struct memtable *mt, const char *key, const char *want)
{
    const uint8_t *v = (const uint8_t *)"sentinel";
    size_t size = 777;
    psl_err err = memtable_get(mt, (const uint8_t *)key, strlen(key), &v, &size);
    if (!want) {
        assert_int_equal(err, PSL_ERR_NOT_FOUND);
        assert_string_equal((const char *)v, "sentinel"); /* outputs only on success */
        assert_int_equal(size, 777);
        return;
    }
    assert_int_equal(err, PSL_OK);
    assert_non_null(v);
    assert_int_equal(size, strlen(want));
    if (size)
        assert_memory_equal(v, want, size);
}

static void digest_of(const struct memtable *mt, uint8_t out[MEMTABLE_DIGEST_SIZE])
{
    assert_int_equal(memtable_digest(mt, out), PSL_OK);
}

/* ---- basics ---- */

static void test_put_get_del(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 0);
    assert_int_equal(memtable_count(&mt), 0);
    want_s(&mt, "k", NULL);
    struct memtable_entry_view v;
    assert_int_equal(memtable_lookup(&mt, (const uint8_t *)"k", 1, &v), PSL_ERR_NOT_FOUND);

    put_s(&mt, 5, W(1), "k", "one", true);
    want_s(&mt, "k", "one");
    assert_int_equal(memtable_count(&mt), 1);
    assert_int_equal(memtable_lookup(&mt, (const uint8_t *)"k", 1, &v), PSL_OK);
    assert_false(v.tombstone);
    assert_int_equal(v.lamport, 5);
    assert_memory_equal(v.writer, W(1), MEMTABLE_WRITER_SIZE);
    assert_int_equal(v.key_size, 1);
    assert_memory_equal(v.key, "k", 1);
    assert_int_equal(v.value_size, 3);
    assert_memory_equal(v.value, "one", 3);

    /* A newer put replaces, an older or equal-stamped one with other content does not. */
    put_s(&mt, 6, W(1), "k", "two!", true);
    want_s(&mt, "k", "two!");
    put_s(&mt, 4, W(9), "k", "old", false);
    want_s(&mt, "k", "two!");

    /* The tombstone hides the key but keeps its stamp. */
    del_s(&mt, 7, W(1), "k", true);
    want_s(&mt, "k", NULL);
    assert_int_equal(memtable_count(&mt), 1);
    assert_int_equal(memtable_lookup(&mt, (const uint8_t *)"k", 1, &v), PSL_OK);
    assert_true(v.tombstone);
    assert_int_equal(v.lamport, 7);
    assert_null(v.value);
    assert_int_equal(v.value_size, 0);

    /* An older put arriving after the delete cannot resurrect the key... */
    put_s(&mt, 6, W(2), "k", "zombie", false);
    put_s(&mt, 7, W(0), "k", "zombie", false); /* same lamport, smaller writer */
    want_s(&mt, "k", NULL);
    /* ...a later one revives it. */
    put_s(&mt, 7, W(2), "k", "alive", true); /* same lamport, greater writer */
    want_s(&mt, "k", "alive");
    del_s(&mt, 8, W(1), "k", true);
    put_s(&mt, 9, W(1), "k", "again", true);
    want_s(&mt, "k", "again");

    /* A delete of an unknown key stores a tombstone, so the older put stays dead. */
    del_s(&mt, 10, W(3), "ghost", true);
    assert_int_equal(memtable_count(&mt), 2);
    put_s(&mt, 3, W(3), "ghost", "boo", false);
    want_s(&mt, "ghost", NULL);

    /* An empty value is a live value, distinct from a tombstone. */
    put_s(&mt, 1, W(1), "empty", "", true);
    const uint8_t *p = NULL;
    size_t size = 99;
    assert_int_equal(memtable_get(&mt, (const uint8_t *)"empty", 5, &p, &size), PSL_OK);
    assert_non_null(p);
    assert_int_equal(size, 0);

    /* NULL applied is allowed. */
    assert_int_equal(memtable_apply(&mt, OP_PUT, 2, W(1), (const uint8_t *)"x", 1,
                                    (const uint8_t *)"y", 1, NULL),
                     PSL_OK);
    want_s(&mt, "x", "y");
    memtable_deinit(&mt);
    memtable_deinit(&mt); /* harmless twice */
}

static void test_lww_equal_lamport(void **state)
{
    (void)state;
    /* Writers that differ only in their last byte: the tie-break must read all 32 bytes. */
    uint8_t lo[MEMTABLE_WRITER_SIZE], hi[MEMTABLE_WRITER_SIZE];
    memset(lo, 0xab, sizeof lo);
    memcpy(hi, lo, sizeof hi);
    hi[MEMTABLE_WRITER_SIZE - 1] = 0xac;
    for (int order = 0; order < 2; order++) {
        struct memtable mt;
        mt_new(&mt, (unsigned)order);
        if (order == 0) {
            put_s(&mt, 42, lo, "k", "from-lo", true);
            put_s(&mt, 42, hi, "k", "from-hi", true);
            del_s(&mt, 42, lo, "d", true);
            put_s(&mt, 42, hi, "d", "kept", true);
            put_s(&mt, 42, lo, "t", "gone", true);
            del_s(&mt, 42, hi, "t", true);
        } else {
            put_s(&mt, 42, hi, "k", "from-hi", true);
            put_s(&mt, 42, lo, "k", "from-lo", false);
            put_s(&mt, 42, hi, "d", "kept", true);
            del_s(&mt, 42, lo, "d", false);
            del_s(&mt, 42, hi, "t", true);
            put_s(&mt, 42, lo, "t", "gone", false);
        }
        want_s(&mt, "k", "from-hi");
        want_s(&mt, "d", "kept");
        want_s(&mt, "t", NULL);
        struct memtable_entry_view v;
        assert_int_equal(memtable_lookup(&mt, (const uint8_t *)"k", 1, &v), PSL_OK);
        assert_memory_equal(v.writer, hi, sizeof hi);
        /* Lamport dominates the writer. */
        put_s(&mt, 43, lo, "k", "later-lo", true);
        put_s(&mt, 42, W(0xff), "k", "max-writer", false);
        want_s(&mt, "k", "later-lo");
        /* The lamport order is unsigned over the full 64 bits. */
        put_s(&mt, UINT64_MAX, lo, "k", "top", true);
        put_s(&mt, UINT64_MAX - 1, hi, "k", "below", false);
        want_s(&mt, "k", "top");
        assert_int_equal(memtable_conflict_count(&mt), 0);
        memtable_deinit(&mt);
    }
}

/* Same (lamport, writer), different content: only an equivocating writer does this. The winner
 * is fixed by content (tombstone > value > shorter prefix), whatever the arrival order. */
static void test_equivocation_converges(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        struct memtable mt;
        mt_new(&mt, 7);
        if (order == 0) {
            put_s(&mt, 3, W(1), "a", "apple", true);
            put_s(&mt, 3, W(1), "a", "banana", true);
            put_s(&mt, 3, W(1), "b", "x", true);
            del_s(&mt, 3, W(1), "b", true);
            put_s(&mt, 3, W(1), "c", "ab", true);
            put_s(&mt, 3, W(1), "c", "abc", true);
            put_s(&mt, 3, W(1), "e", "", true);
            del_s(&mt, 3, W(1), "e", true); /* same size as the empty value: replaced in place */
        } else {
            put_s(&mt, 3, W(1), "a", "banana", true);
            put_s(&mt, 3, W(1), "a", "apple", false);
            del_s(&mt, 3, W(1), "b", true);
            put_s(&mt, 3, W(1), "b", "x", false);
            put_s(&mt, 3, W(1), "c", "abc", true);
            put_s(&mt, 3, W(1), "c", "ab", false);
            del_s(&mt, 3, W(1), "e", true);
            put_s(&mt, 3, W(1), "e", "", false);
        }
        want_s(&mt, "a", "banana");
        want_s(&mt, "b", NULL);
        want_s(&mt, "c", "abc");
        want_s(&mt, "e", NULL);
        assert_int_equal(memtable_conflict_count(&mt), 4);
        /* A true duplicate is not a conflict. */
        put_s(&mt, 3, W(1), "a", "banana", false);
        assert_int_equal(memtable_conflict_count(&mt), 4);
        memtable_deinit(&mt);
    }
}

static void test_idempotence(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 1);
    static const char *const keys[] = {"alpha", "beta", "gamma", "delta"};
    uint8_t before[MEMTABLE_DIGEST_SIZE], after[MEMTABLE_DIGEST_SIZE];
    for (unsigned i = 0; i < 40; i++) {
        const char *k = keys[i % 4];
        char value[32];
        snprintf(value, sizeof value, "value-%u", i * 7);
        bool del = i % 5 == 3;
        if (del)
            del_s(&mt, i, W((uint8_t)(i % 3)), k, true);
        else
            put_s(&mt, i, W((uint8_t)(i % 3)), k, value, true);
        digest_of(&mt, before);
        size_t bytes = memtable_bytes(&mt), count = memtable_count(&mt);
        if (del)
            del_s(&mt, i, W((uint8_t)(i % 3)), k, false);
        else
            put_s(&mt, i, W((uint8_t)(i % 3)), k, value, false);
        digest_of(&mt, after);
        assert_memory_equal(before, after, sizeof before);
        assert_int_equal(memtable_bytes(&mt), bytes);
        assert_int_equal(memtable_count(&mt), count);
    }
    assert_int_equal(memtable_conflict_count(&mt), 0);
    memtable_deinit(&mt);
}

/* The value given to apply may be the table's own borrowed value (a caller copying an entry
 * forward): the replacement must copy it before freeing the old entry. ASan checks this. */
static void test_apply_own_value(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 2);
    put_s(&mt, 1, W(1), "k", "abcdef", true);
    const uint8_t *v;
    size_t size;
    assert_int_equal(memtable_get(&mt, (const uint8_t *)"k", 1, &v, &size), PSL_OK);
    bool applied = false;
    assert_int_equal(
        memtable_apply(&mt, OP_PUT, 2, W(1), (const uint8_t *)"k", 1, v, size, &applied),
        PSL_OK); /* same size: rewritten in place */
    assert_true(applied);
    want_s(&mt, "k", "abcdef");
    assert_int_equal(memtable_get(&mt, (const uint8_t *)"k", 1, &v, &size), PSL_OK);
    assert_int_equal(
        memtable_apply(&mt, OP_PUT, 3, W(1), (const uint8_t *)"k", 1, v + 1, size - 2, &applied),
        PSL_OK); /* other size: a new entry */
    assert_true(applied);
    want_s(&mt, "k", "bcde");
    /* The key may be borrowed from the table too. */
    struct memtable_entry_view e;
    assert_int_equal(memtable_lookup(&mt, (const uint8_t *)"k", 1, &e), PSL_OK);
    assert_int_equal(memtable_apply(&mt, OP_PUT, 4, W(1), e.key, e.key_size,
                                    (const uint8_t *)"longer value", 12, &applied),
                     PSL_OK);
    want_s(&mt, "k", "longer value");
    assert_int_equal(memtable_count(&mt), 1);
    memtable_deinit(&mt);
}

/* ---- limits ---- */

static void want_apply_err(struct memtable *mt, uint8_t op, const uint8_t *key, size_t key_size,
                           const uint8_t *value, size_t value_size, psl_err want)
{
    bool applied = true;
    psl_err got = memtable_apply(mt, op, 1, W(1), key, key_size, value, value_size, &applied);
    if (got != want)
        fail_msg("apply(op %u, key %zu, value %zu): got %s, want %s", op, key_size, value_size,
                 psl_err_name(got), psl_err_name(want));
    assert_true(applied); /* not written on error */
}

static void test_limits(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 3);
    uint8_t *big = calloc(1, PSL_VALUE_SIZE_MAX + 1);
    assert_non_null(big);
    memset(big, 'v', PSL_VALUE_SIZE_MAX + 1);
    uint8_t key[PSL_KEY_SIZE_MAX + 1];
    memset(key, 'k', sizeof key);

    want_apply_err(&mt, OP_PUT, key, 0, big, 1, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, OP_DEL, key, 0, NULL, 0, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, OP_PUT, NULL, 3, big, 1, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, OP_PUT, key, PSL_KEY_SIZE_MAX + 1, big, 1, PSL_ERR_TOO_LARGE);
    want_apply_err(&mt, OP_DEL, key, PSL_KEY_SIZE_MAX + 1, NULL, 0, PSL_ERR_TOO_LARGE);
    want_apply_err(&mt, OP_PUT, key, 1, big, PSL_VALUE_SIZE_MAX + 1, PSL_ERR_TOO_LARGE);
    want_apply_err(&mt, OP_PUT, key, 1, big, SIZE_MAX, PSL_ERR_TOO_LARGE);
    want_apply_err(&mt, OP_PUT, key, 1, NULL, 5, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, OP_DEL, key, 1, big, 1, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, 0, key, 1, big, 1, PSL_ERR_INVALID_ARG);
    want_apply_err(&mt, 3, key, 1, NULL, 0, PSL_ERR_INVALID_ARG);
    assert_int_equal(memtable_count(&mt), 0);

    /* Exactly at the limits works. */
    bool applied = false;
    assert_int_equal(memtable_apply(&mt, OP_PUT, 1, W(1), key, PSL_KEY_SIZE_MAX, big,
                                    PSL_VALUE_SIZE_MAX, &applied),
                     PSL_OK);
    assert_true(applied);
    const uint8_t *v;
    size_t size;
    assert_int_equal(memtable_get(&mt, key, PSL_KEY_SIZE_MAX, &v, &size), PSL_OK);
    assert_int_equal(size, PSL_VALUE_SIZE_MAX);
    assert_memory_equal(v, big, size);
    assert_int_equal(memtable_get(&mt, key, PSL_KEY_SIZE_MAX - 1, &v, &size), PSL_ERR_NOT_FOUND);
    assert_int_equal(memtable_apply(&mt, OP_PUT, 1, W(1), key, 1, NULL, 0, &applied), PSL_OK);
    assert_true(applied);
    assert_true(memtable_bytes(&mt) > PSL_KEY_SIZE_MAX + PSL_VALUE_SIZE_MAX + 1);

    /* Readers check the key the same way. */
    struct memtable_entry_view e;
    assert_int_equal(memtable_get(&mt, key, 0, &v, &size), PSL_ERR_INVALID_ARG);
    assert_int_equal(memtable_get(&mt, NULL, 1, &v, &size), PSL_ERR_INVALID_ARG);
    assert_int_equal(memtable_get(&mt, key, PSL_KEY_SIZE_MAX + 1, &v, &size), PSL_ERR_TOO_LARGE);
    assert_int_equal(memtable_lookup(&mt, key, 0, &e), PSL_ERR_INVALID_ARG);
    assert_int_equal(memtable_lookup(&mt, key, PSL_KEY_SIZE_MAX + 1, &e), PSL_ERR_TOO_LARGE);

    /* A reservation that cannot be met leaves the table as it was. */
    uint8_t before[MEMTABLE_DIGEST_SIZE], after[MEMTABLE_DIGEST_SIZE];
    digest_of(&mt, before);
    size_t cap = memtable_capacity(&mt), bytes = memtable_bytes(&mt);
    assert_int_equal(memtable_reserve(&mt, SIZE_MAX), PSL_ERR_NOMEM);
    assert_int_equal(memtable_reserve(&mt, SIZE_MAX / 64), PSL_ERR_NOMEM);
    assert_int_equal(memtable_reserve(&mt, (size_t)1 << 30), PSL_ERR_NOMEM);
    assert_int_equal(memtable_capacity(&mt), cap);
    assert_int_equal(memtable_bytes(&mt), bytes);
    assert_int_equal(memtable_count(&mt), 2);
    digest_of(&mt, after);
    assert_memory_equal(before, after, sizeof before);
    free(big);
    memtable_deinit(&mt);
}

/* ---- growth ---- */

#define GROW_KEYS 100000u

static void grow_key(uint8_t key[6], uint32_t i)
{
    key[0] = 'g';
    put_le32(key + 1, i);
    key[5] = (uint8_t)(i * 31u);
}

static void test_growth(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 4);
    size_t kv_bytes = 0, value_bytes = 0, last = memtable_bytes(&mt);
    uint8_t value[17];
    for (uint32_t i = 0; i < GROW_KEYS; i++) {
        uint8_t key[6];
        grow_key(key, i);
        size_t vs = i % sizeof value;
        memset(value, (int)(i & 0xff), sizeof value);
        bool applied = false;
        assert_int_equal(
            memtable_apply(&mt, OP_PUT, i + 1, W(1), key, sizeof key, value, vs, &applied), PSL_OK);
        assert_true(applied);
        kv_bytes += sizeof key + vs;
        value_bytes += vs;
        size_t bytes = memtable_bytes(&mt);
        assert_true(bytes > last);
        last = bytes;
        size_t cap = memtable_capacity(&mt);
        assert_int_equal(cap & (cap - 1), 0);
        assert_true(memtable_count(&mt) * 4 <= cap * 3);
    }
    assert_int_equal(memtable_count(&mt), GROW_KEYS);
    /* Accounted memory: at least the keys and values, at most ~128 bytes of overhead each
     * (a 48-byte header and at most 16 / 0.375 bytes of slots). */
    size_t bytes = memtable_bytes(&mt);
    assert_true(bytes > kv_bytes + (size_t)GROW_KEYS * 32);
    assert_true(bytes < kv_bytes + (size_t)GROW_KEYS * 128);

    for (uint32_t i = 0; i < GROW_KEYS; i++) {
        uint8_t key[6];
        grow_key(key, i);
        const uint8_t *v;
        size_t size;
        assert_int_equal(memtable_get(&mt, key, sizeof key, &v, &size), PSL_OK);
        assert_int_equal(size, i % sizeof value);
        for (size_t j = 0; j < size; j++)
            assert_int_equal(v[j], i & 0xff);
    }
    uint8_t missing[6];
    grow_key(missing, GROW_KEYS);
    const uint8_t *v;
    size_t size;
    assert_int_equal(memtable_get(&mt, missing, sizeof missing, &v, &size), PSL_ERR_NOT_FOUND);

    /* Deleting everything frees exactly the values; the tombstones stay. */
    for (uint32_t i = 0; i < GROW_KEYS; i++) {
        uint8_t key[6];
        grow_key(key, i);
        bool applied = false;
        assert_int_equal(
            memtable_apply(&mt, OP_DEL, GROW_KEYS + 1, W(1), key, sizeof key, NULL, 0, &applied),
            PSL_OK);
        assert_true(applied);
    }
    assert_int_equal(memtable_bytes(&mt), bytes - value_bytes);
    assert_int_equal(memtable_count(&mt), GROW_KEYS);
    assert_int_equal(memtable_get(&mt, missing, sizeof missing, &v, &size), PSL_ERR_NOT_FOUND);
    for (uint32_t i = 0; i < GROW_KEYS; i += 997) {
        uint8_t key[6];
        grow_key(key, i);
        assert_int_equal(memtable_get(&mt, key, sizeof key, &v, &size), PSL_ERR_NOT_FOUND);
    }
    memtable_deinit(&mt);
}

/* ---- digest ---- */

static void test_digest_known_answers(void **state)
{
    (void)state;
    struct memtable mt;
    mt_new(&mt, 5);
    uint8_t d[MEMTABLE_DIGEST_SIZE], want[MEMTABLE_DIGEST_SIZE];
    digest_of(&mt, d);
    assert_int_equal(hex_decode(want, sizeof want,
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                     PSL_OK); /* SHA-256 of nothing */
    assert_memory_equal(d, want, sizeof d);

    /* Two entries, inserted out of order; "ab" sorts after its prefix "a" and before "b". The
     * encoding is written out byte by byte here. */
    put_s(&mt, 0x0102030405060708ull, W(0x11), "b", "xyz", true);
    del_s(&mt, 2, W(0x22), "ab", true);
    put_s(&mt, 1, W(0x33), "a", "", true);
    uint8_t enc[3 * (2 + 2 + 1 + 8 + 32 + 4 + 3)];
    struct wr w;
    wr_init(&w, enc, sizeof enc);
    static const uint8_t a_entry[] = {
        0x01, 0x00, 'a',                                /* key_size, key */
        0x00,                                           /* live */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* lamport 1 */
    };
    wr_bytes(&w, a_entry, sizeof a_entry);
    wr_bytes(&w, W(0x33), 32);
    wr_u32(&w, 0);
    wr_u16(&w, 2);
    wr_bytes(&w, "ab", 2);
    wr_u8(&w, 1); /* tombstone */
    wr_u64(&w, 2);
    wr_bytes(&w, W(0x22), 32);
    wr_u32(&w, 0);
    wr_u16(&w, 1);
    wr_bytes(&w, "b", 1);
    wr_u8(&w, 0);
    wr_u64(&w, 0x0102030405060708ull);
    wr_bytes(&w, W(0x11), 32);
    wr_u32(&w, 3);
    wr_bytes(&w, "xyz", 3);
    assert_int_equal(w.err, PSL_OK);
    hash_sha256(want, enc, w.pos);
    digest_of(&mt, d);
    assert_memory_equal(d, want, sizeof d);
    memtable_deinit(&mt);
}

/* The base state of test_digest_sensitivity, with one field changed by `variant`. */
static void build_variant(struct memtable *mt, int variant)
{
    mt_new(mt, (unsigned)(100 + variant));
    put_s(mt, 10, W(1), "k1", variant == 1 ? "valuf" : variant == 2 ? "value!" : "value", true);
    put_s(mt, variant == 3 ? 11 : 10, variant == 4 ? W(2) : W(1), "k2", "", true);
    if (variant == 5)
        del_s(mt, 10, W(1), "k3", true); /* a tombstone instead of the empty value */
    else
        put_s(mt, 10, W(1), "k3", "", true);
    del_s(mt, 12, W(1), variant == 6 ? "k5" : "k4", true);
    del_s(mt, variant == 7 ? 13 : 12, W(1), "k6", true);
    if (variant == 8)
        del_s(mt, 1, W(1), "k7", true); /* one more (dead) key */
}

static void test_digest_sensitivity(void **state)
{
    (void)state;
    enum { VARIANTS = 9 };
    uint8_t d[VARIANTS][MEMTABLE_DIGEST_SIZE];
    for (int i = 0; i < VARIANTS; i++) {
        struct memtable mt;
        build_variant(&mt, i);
        digest_of(&mt, d[i]);
        memtable_deinit(&mt);
    }
    for (int i = 0; i < VARIANTS; i++) {
        for (int j = i + 1; j < VARIANTS; j++) {
            if (memcmp(d[i], d[j], MEMTABLE_DIGEST_SIZE) == 0)
                fail_msg("variants %d and %d have the same digest", i, j);
        }
    }
}

static void test_digest_order_and_capacity(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct memtable a, b;
    mt_new(&a, 20);
    mt_new(&b, 21);
    assert_int_equal(memtable_reserve(&b, 50000), PSL_OK);
    assert_int_equal(memtable_reserve(&b, 10), PSL_OK); /* never shrinks */
    assert_true(memtable_capacity(&b) >= 65536);
    for (int pass = 0; pass < 2; pass++) {
        struct memtable *mt = pass ? &b : &a;
        for (int n = 0; n < N; n++) {
            int i = pass ? N - 1 - n : n;
            char key[16], value[24];
            snprintf(key, sizeof key, "key%d", i);
            snprintf(value, sizeof value, "%0*d", i % 20, i);
            put_s(mt, (uint64_t)i, W((uint8_t)(i % 4)), key, value, true);
            if (i % 3 == 0)
                del_s(mt, (uint64_t)i + 1, W(0), key, true);
        }
    }
    assert_true(memtable_capacity(&a) < memtable_capacity(&b));
    uint8_t da[MEMTABLE_DIGEST_SIZE], db[MEMTABLE_DIGEST_SIZE];
    digest_of(&a, da);
    digest_of(&b, db);
    assert_memory_equal(da, db, sizeof da);
    memtable_deinit(&a);
    memtable_deinit(&b);
}

/* ---- keyed hash and foreach ---- */

struct visit_log {
    uint8_t keys[2000][8];
    size_t count;
    size_t stop_after;
};

static psl_err visit(void *ctx, const struct memtable_entry_view *e)
{
    struct visit_log *log = ctx;
    if (log->count == log->stop_after)
        return PSL_ERR_BUSY;
    assert_int_equal(e->key_size, 8);
    memcpy(log->keys[log->count++], e->key, 8);
    return PSL_OK;
}

static void test_keyed_hash(void **state)
{
    (void)state;
    struct memtable a, b;
    uint8_t hk[MEMTABLE_HASH_KEY_SIZE];
    hash_key_n(hk, 30);
    assert_int_equal(memtable_init(&a, hk), PSL_OK);
    memset(hk, 0, sizeof hk); /* the table keeps its own copy */
    mt_new(&b, 31);
    for (uint64_t i = 0; i < 1000; i++) {
        uint8_t key[8];
        put_le64(key, i * 0x10001);
        bool applied;
        assert_int_equal(memtable_apply(&a, OP_PUT, i, W(1), key, 8, key, 8, &applied), PSL_OK);
        assert_int_equal(memtable_apply(&b, OP_PUT, i, W(1), key, 8, key, 8, &applied), PSL_OK);
    }
    uint8_t da[MEMTABLE_DIGEST_SIZE], db[MEMTABLE_DIGEST_SIZE];
    digest_of(&a, da);
    digest_of(&b, db);
    assert_memory_equal(da, db, sizeof da);

    /* foreach visits every entry once; the slot order follows the hash key. */
    static struct visit_log la, lb;
    la = (struct visit_log){.stop_after = SIZE_MAX};
    lb = (struct visit_log){.stop_after = SIZE_MAX};
    assert_int_equal(memtable_foreach(&a, visit, &la), PSL_OK);
    assert_int_equal(memtable_foreach(&b, visit, &lb), PSL_OK);
    assert_int_equal(la.count, 1000);
    assert_int_equal(lb.count, 1000);
    assert_true(memcmp(la.keys, lb.keys, sizeof la.keys) != 0);
    static bool seen[1000];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < la.count; i++) {
        uint64_t k = get_le64(la.keys[i]) / 0x10001;
        assert_true(k < 1000);
        assert_false(seen[k]);
        seen[k] = true;
    }
    /* A visitor's error stops the walk and is returned. */
    la = (struct visit_log){.stop_after = 3};
    assert_int_equal(memtable_foreach(&a, visit, &la), PSL_ERR_BUSY);
    assert_int_equal(la.count, 3);
    memtable_deinit(&a);
    memtable_deinit(&b);
}

/* ---- convergence property ---- */

#define P_OPS         5000u
#define P_KEYS        200u
#define P_WRITERS     5u
#define P_LAMPORT_MAX 60u
#define P_KEY_FAMILY  9u /* keys come in families of prefixes of one string: lengths 1..9 */

struct pop {
    uint8_t op;
    uint64_t lamport;
    unsigned writer;
    unsigned key;
    uint8_t *value; /* malloc'd, NULL when value_size is 0 */
    size_t value_size;
};

struct pworld {
    uint8_t keys[P_KEYS][P_KEY_FAMILY];
    size_t key_size[P_KEYS];
    uint8_t writers[P_WRITERS][MEMTABLE_WRITER_SIZE];
    struct pop ops[P_OPS];
    int best[P_KEYS]; /* reference model: index of the winning op per key, -1 if none */
    uint8_t digest[MEMTABLE_DIGEST_SIZE];
    size_t live_count;
    size_t key_count;
};

static int ref_bytes_cmp(const uint8_t *a, size_t as, const uint8_t *b, size_t bs)
{
    for (size_t i = 0; i < as && i < bs; i++) {
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    }
    return as < bs ? -1 : as > bs ? 1 : 0;
}

/* The reference total order: lamport, writer bytes, then content (tombstone on top). */
static int ref_op_cmp(const struct pworld *wd, const struct pop *a, const struct pop *b)
{
    if (a->lamport != b->lamport)
        return a->lamport < b->lamport ? -1 : 1;
    int c = ref_bytes_cmp(wd->writers[a->writer], MEMTABLE_WRITER_SIZE, wd->writers[b->writer],
                          MEMTABLE_WRITER_SIZE);
    if (c)
        return c;
    if (a->op != b->op)
        return a->op == OP_DEL ? 1 : -1;
    return ref_bytes_cmp(a->value, a->value_size, b->value, b->value_size);
}

static const struct pworld *sort_world;

static int key_index_cmp(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return ref_bytes_cmp(sort_world->keys[x], sort_world->key_size[x], sort_world->keys[y],
                         sort_world->key_size[y]);
}

static void value_new(struct pop *o)
{
    static const size_t sizes[] = {0, 0, 1, 2, 7, 8, 31, 64, 100, 255, 1000, 4096};
    o->value_size = sizes[rnd_below(sizeof sizes / sizeof sizes[0])];
    o->value = NULL;
    if (o->value_size) {
        o->value = malloc(o->value_size);
        assert_non_null(o->value);
        for (size_t i = 0; i < o->value_size; i++)
            o->value[i] = (uint8_t)(rnd_below(4) ? 'a' + rnd_below(3) : rnd()); /* prefixes */
    }
}

/* Generates the operations. Honest writers never reuse (writer, lamport) for one key; with
 * equivocate, some operations copy an earlier stamp with other content. */
static void world_build(struct pworld *wd, uint64_t seed, bool equivocate)
{
    rnd_state = seed;
    memset(wd, 0, sizeof *wd);
    for (unsigned f = 0; f * P_KEY_FAMILY < P_KEYS; f++) {
        uint8_t s[P_KEY_FAMILY];
        s[0] = (uint8_t)(f * 11u); /* distinct first bytes: families never share a key */
        for (unsigned j = 1; j < P_KEY_FAMILY; j++)
            s[j] = (uint8_t)(j % 3 == 0 ? (j & 1 ? 0x00 : 0xff) : rnd());
        for (unsigned j = 0; j < P_KEY_FAMILY && f * P_KEY_FAMILY + j < P_KEYS; j++) {
            memcpy(wd->keys[f * P_KEY_FAMILY + j], s, j + 1);
            wd->key_size[f * P_KEY_FAMILY + j] = j + 1;
        }
    }
    for (unsigned w = 0; w < P_WRITERS; w++)
        tu_seed(wd->writers[w], 500 + w);
    memcpy(wd->writers[1], wd->writers[0], MEMTABLE_WRITER_SIZE - 1); /* differ in the last byte */
    static bool used[P_KEYS][P_WRITERS][P_LAMPORT_MAX + 1];
    memset(used, 0, sizeof used);
    for (unsigned i = 0; i < P_OPS; i++) {
        struct pop *o = &wd->ops[i];
        if (equivocate && i > 0 && rnd_below(8) == 0) {
            const struct pop *old = &wd->ops[rnd_below(i)];
            o->lamport = old->lamport;
            o->writer = old->writer;
            o->key = old->key;
        } else {
            do {
                o->key = (unsigned)rnd_below(P_KEYS);
                o->writer = (unsigned)rnd_below(P_WRITERS);
                o->lamport = 1 + rnd_below(P_LAMPORT_MAX);
            } while (!equivocate && used[o->key][o->writer][o->lamport]);
        }
        used[o->key][o->writer][o->lamport] = true;
        o->op = rnd_below(4) == 0 ? OP_DEL : OP_PUT;
        if (o->op == OP_PUT)
            value_new(o);
    }

    /* Reference model: per key, the maximum op. */
    for (unsigned k = 0; k < P_KEYS; k++)
        wd->best[k] = -1;
    for (unsigned i = 0; i < P_OPS; i++) {
        int *b = &wd->best[wd->ops[i].key];
        if (*b < 0 || ref_op_cmp(wd, &wd->ops[i], &wd->ops[*b]) > 0)
            *b = (int)i;
    }
    /* Reference digest: encode the expected state in key order, hash once. */
    unsigned order[P_KEYS];
    size_t n = 0, enc_size = 0;
    for (unsigned k = 0; k < P_KEYS; k++) {
        if (wd->best[k] < 0)
            continue;
        order[n++] = k;
        enc_size += 2 + wd->key_size[k] + 1 + 8 + 32 + 4 + wd->ops[wd->best[k]].value_size;
    }
    sort_world = wd;
    qsort(order, n, sizeof order[0], key_index_cmp);
    uint8_t *enc = malloc(enc_size + 1);
    assert_non_null(enc);
    struct wr w;
    wr_init(&w, enc, enc_size);
    for (size_t j = 0; j < n; j++) {
        unsigned k = order[j];
        const struct pop *o = &wd->ops[wd->best[k]];
        wr_u16(&w, (uint16_t)wd->key_size[k]);
        wr_bytes(&w, wd->keys[k], wd->key_size[k]);
        wr_u8(&w, o->op == OP_DEL ? 1 : 0);
        wr_u64(&w, o->lamport);
        wr_bytes(&w, wd->writers[o->writer], MEMTABLE_WRITER_SIZE);
        wr_u32(&w, (uint32_t)o->value_size);
        wr_bytes(&w, o->value, o->value_size);
        if (o->op == OP_PUT)
            wd->live_count++;
    }
    assert_int_equal(w.err, PSL_OK);
    assert_int_equal(w.pos, enc_size);
    hash_sha256(wd->digest, enc, enc_size);
    free(enc);
    wd->key_count = n;
    /* The generated set must exercise what it is meant to. */
    assert_true(n > P_KEYS * 9 / 10);
    assert_true(wd->live_count > 0 && wd->live_count < n);
}

static void world_free(struct pworld *wd)
{
    for (unsigned i = 0; i < P_OPS; i++)
        free(wd->ops[i].value);
}

static bool apply_op(struct memtable *mt, const struct pworld *wd, const struct pop *o)
{
    bool applied = false;
    assert_int_equal(memtable_apply(mt, o->op, o->lamport, wd->writers[o->writer], wd->keys[o->key],
                                    wd->key_size[o->key], o->value, o->value_size, &applied),
                     PSL_OK);
    return applied;
}

/* Checks every key of mt against the reference model, entry by entry. */
static void world_check_entries(const struct memtable *mt, const struct pworld *wd)
{
    assert_int_equal(memtable_count(mt), wd->key_count);
    for (unsigned k = 0; k < P_KEYS; k++) {
        struct memtable_entry_view v;
        psl_err err = memtable_lookup(mt, wd->keys[k], wd->key_size[k], &v);
        if (wd->best[k] < 0) {
            assert_int_equal(err, PSL_ERR_NOT_FOUND);
            continue;
        }
        const struct pop *o = &wd->ops[wd->best[k]];
        assert_int_equal(err, PSL_OK);
        assert_int_equal(v.tombstone, o->op == OP_DEL);
        assert_int_equal(v.lamport, o->lamport);
        assert_memory_equal(v.writer, wd->writers[o->writer], MEMTABLE_WRITER_SIZE);
        assert_int_equal(v.value_size, o->value_size);
        if (o->value_size)
            assert_memory_equal(v.value, o->value, o->value_size);
    }
}

struct merge_ctx {
    struct memtable *into;
};

/* Copies an entry into another table as the operation it records (anti-entropy, checkpoints). */
static psl_err merge_visit(void *ctx, const struct memtable_entry_view *e)
{
    struct merge_ctx *m = ctx;
    bool applied;
    return memtable_apply(m->into, e->tombstone ? OP_DEL : OP_PUT, e->lamport, e->writer, e->key,
                          e->key_size, e->value, e->value_size, &applied);
}

static void convergence(bool equivocate, uint64_t seed)
{
    static struct pworld wd;
    world_build(&wd, seed, equivocate);
    enum { TRIALS = 24, DUPS = P_OPS / 4 };
    static unsigned seq[P_OPS + DUPS];
    uint64_t conflicts_seen = 0;
    for (unsigned t = 0; t < TRIALS; t++) {
        /* Every op once plus random duplicates, in a random order. */
        size_t len = 0;
        for (unsigned i = 0; i < P_OPS; i++)
            seq[len++] = i;
        size_t dups = rnd_below(DUPS + 1);
        for (size_t d = 0; d < dups; d++)
            seq[len++] = (unsigned)rnd_below(P_OPS);
        for (size_t i = len - 1; i > 0; i--) {
            size_t j = rnd_below(i + 1);
            unsigned tmp = seq[i];
            seq[i] = seq[j];
            seq[j] = tmp;
        }
        struct memtable mt;
        mt_new(&mt, 200 + t);
        if (t % 3 == 1)
            assert_int_equal(memtable_reserve(&mt, 10000), PSL_OK);
        for (size_t i = 0; i < len; i++)
            (void)apply_op(&mt, &wd, &wd.ops[seq[i]]);
        uint8_t d[MEMTABLE_DIGEST_SIZE];
        digest_of(&mt, d);
        if (memcmp(d, wd.digest, sizeof d) != 0)
            fail_msg("seed %llu trial %u: digest differs from the reference",
                     (unsigned long long)seed, t);
        conflicts_seen += memtable_conflict_count(&mt);
        if (t == 0) {
            world_check_entries(&mt, &wd);
            /* The whole set again changes nothing. */
            for (unsigned i = 0; i < P_OPS; i++)
                assert_false(apply_op(&mt, &wd, &wd.ops[i]));
            uint8_t again[MEMTABLE_DIGEST_SIZE];
            digest_of(&mt, again);
            assert_memory_equal(again, d, sizeof d);
        }
        memtable_deinit(&mt);
    }
    if (equivocate)
        assert_true(conflicts_seen > 0);
    else
        assert_int_equal(conflicts_seen, 0);

    /* Associativity: split the ops over three tables, merge their states in different
     * groupings; every result equals the state of all ops. */
    struct memtable part[3];
    for (unsigned p = 0; p < 3; p++)
        mt_new(&part[p], 300 + p);
    for (unsigned i = 0; i < P_OPS; i++)
        (void)apply_op(&part[rnd_below(3)], &wd, &wd.ops[i]);
    static const unsigned groupings[3][3] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}};
    for (unsigned g = 0; g < 3; g++) {
        struct memtable m;
        mt_new(&m, 310 + g);
        struct merge_ctx ctx = {.into = &m};
        for (unsigned p = 0; p < 3; p++)
            assert_int_equal(memtable_foreach(&part[groupings[g][p]], merge_visit, &ctx), PSL_OK);
        uint8_t d[MEMTABLE_DIGEST_SIZE];
        digest_of(&m, d);
        assert_memory_equal(d, wd.digest, sizeof d);
        memtable_deinit(&m);
    }
    /* (A + B) + C with A as the target itself. */
    struct merge_ctx ctx = {.into = &part[0]};
    assert_int_equal(memtable_foreach(&part[1], merge_visit, &ctx), PSL_OK);
    assert_int_equal(memtable_foreach(&part[2], merge_visit, &ctx), PSL_OK);
    world_check_entries(&part[0], &wd);
    for (unsigned p = 0; p < 3; p++)
        memtable_deinit(&part[p]);
    world_free(&wd);
}

static void test_convergence_honest(void **state)
{
    (void)state;
    convergence(false, 0x5eed0001);
    convergence(false, 0x5eed0002);
}

static void test_convergence_equivocating(void **state)
{
    (void)state;
    convergence(true, 0x5eed0003);
}

static int group_setup(void **state)
{
    (void)state;
    tu_init();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_lww_equal_lamport),
        cmocka_unit_test(test_equivocation_converges),
        cmocka_unit_test(test_idempotence),
        cmocka_unit_test(test_apply_own_value),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_digest_known_answers),
        cmocka_unit_test(test_digest_sensitivity),
        cmocka_unit_test(test_digest_order_and_capacity),
        cmocka_unit_test(test_keyed_hash),
        cmocka_unit_test(test_convergence_honest),
        cmocka_unit_test(test_convergence_equivocating),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
