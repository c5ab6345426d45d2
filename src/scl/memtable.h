/* memtable.h: the in-enclave key-value table of the Secure Concurrency Layer (DESIGN §5.3).
 * Every key holds one entry: a value or a tombstone, stamped with the (lamport, writer) of the
 * operation that wrote it. An operation replaces an entry only if it is greater in the total order
 * (lamport, writer, content); applying a set of operations is therefore commutative, associative
 * and idempotent, and replicas that saw the same operations hold the same state, which
 * memtable_digest() proves byte for byte.
 *
 * Not thread-safe: a memtable has one owner (the enclave's apply loop). Keys and values are
 * confidential plaintext; they are wiped when replaced and on memtable_deinit(). Hash-table
 * timing depends on keys (DESIGN §1 leaves side channels out of scope); what a peer can choose
 * (its keys) cannot flood one bucket, because slots are chosen by a keyed SipHash-2-4. */
#ifndef PSL_SCL_MEMTABLE_H
#define PSL_SCL_MEMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"

#define MEMTABLE_HASH_KEY_SIZE 16u       /* crypto_shorthash_KEYBYTES (SipHash-2-4) */
#define MEMTABLE_WRITER_SIZE   HASH_SIZE /* writer id = SHA-256 of the writer's public key */
#define MEMTABLE_DIGEST_SIZE   HASH_SIZE

struct memtable_slot;

/* A caller-provided struct; its fields are private to memtable.c. */
struct memtable {
    struct memtable_slot *slots; /* owned; capacity slots, open addressing, linear probing */
    size_t capacity;             /* power of two; count <= capacity * 3/4 */
    size_t count;                /* entries, live and tombstones */
    size_t entry_bytes;          /* sum of accounted entry sizes (see memtable_bytes) */
    uint64_t conflict_count;     /* see memtable_conflict_count */
    uint8_t *hash_key;           /* MEMTABLE_HASH_KEY_SIZE bytes of secret memory, owned */
};

/* One entry as seen by readers. Pointers are borrowed: valid until the entry's key is next
 * modified (memtable_apply with that key) or the table is deinitialised. */
struct memtable_entry_view {
    const uint8_t *key;
    size_t key_size;
    const uint8_t *value; /* NULL for a tombstone */
    size_t value_size;    /* 0 for a tombstone */
    uint64_t lamport;
    uint8_t writer[MEMTABLE_WRITER_SIZE];
    bool tombstone;
};

/* Initialises an empty table whose slots are chosen by SipHash-2-4 under hash_key (copied; the
 * caller may wipe its copy). In production hash_key is random per process: a peer that cannot
 * predict it cannot choose keys that collide. psl_crypto_init() must have succeeded.
 * Errors: PSL_ERR_NOMEM (nothing to deinit then). */
psl_err memtable_init(struct memtable *mt,
                      const uint8_t hash_key[MEMTABLE_HASH_KEY_SIZE]) PSL_MUST_USE;

/* Frees every entry and the table, wiping keys, values and the hash key first. The struct is left
 * zeroed, so a second call is harmless. */
void memtable_deinit(struct memtable *mt);

/* Applies one operation: op is OP_PUT or OP_DEL (capsule/payload.h), stamped (lamport, writer).
 * It replaces the key's entry only if (lamport, writer) is greater than the stored one (lamport
 * compared first, then writer bytes with memcmp); a DEL stores a tombstone with its stamp, kept
 * so that an older PUT arriving later cannot bring the key back. An operation with the same stamp
 * and the same content is a no-op (duplicates are harmless). Two operations with the same stamp
 * and different content can only come from a writer that equivocates; they are ordered by
 * content (a tombstone above any value, then the value compared as bytes, shorter first on a
 * common prefix) so that replicas still converge, and each such meeting is counted
 * (memtable_conflict_count).
 * key: 1..PSL_KEY_SIZE_MAX bytes; value: 0..PSL_VALUE_SIZE_MAX bytes (may be NULL when
 * value_size is 0; must be 0 for OP_DEL). Both borrowed for the call: the table keeps copies.
 * *applied (may be NULL) is set on success: true when the table changed.
 * Errors: PSL_ERR_INVALID_ARG (unknown op, empty or NULL key, NULL value with a size, DEL with a
 * value), PSL_ERR_TOO_LARGE (key or value over its limit), PSL_ERR_NOMEM (an allocation
 * failed, or a new key would take the table past its maximum size); on any error the table
 * is logically unchanged and *applied is not written. */
psl_err memtable_apply(struct memtable *mt, uint8_t op, uint64_t lamport,
                       const uint8_t writer[MEMTABLE_WRITER_SIZE], const uint8_t *key,
                       size_t key_size, const uint8_t *value, size_t value_size,
                       bool *applied) PSL_MUST_USE;

/* Reads the live value of key. *value is borrowed (never NULL on success, even for an empty
 * value): valid until key is next modified or the table is deinitialised.
 * Errors: PSL_ERR_NOT_FOUND (absent or deleted), PSL_ERR_INVALID_ARG (empty or NULL key),
 * PSL_ERR_TOO_LARGE (key over PSL_KEY_SIZE_MAX). */
psl_err memtable_get(const struct memtable *mt, const uint8_t *key, size_t key_size,
                     const uint8_t **value, size_t *value_size) PSL_MUST_USE;

/* Like memtable_get, but also finds tombstones and reports the entry's stamp (for CapsuleDB
 * merges and eviction decisions). Errors: PSL_ERR_NOT_FOUND only when the key has no entry;
 * otherwise as memtable_get. */
psl_err memtable_lookup(const struct memtable *mt, const uint8_t *key, size_t key_size,
                        struct memtable_entry_view *out) PSL_MUST_USE;

/* Removes key's entry (value or tombstone) whatever its stamp, wiping it; returns whether there
 * was one. Only for CapsuleDB eviction (DESIGN §6): the caller must hold the entry's version (or
 * a greater one) elsewhere, in an index that covers it, or the key's history is lost and an older
 * operation could bring the key back. */
bool memtable_remove(struct memtable *mt, const uint8_t *key, size_t key_size);

/* Number of entries, live and tombstones. */
size_t memtable_count(const struct memtable *mt);

/* Memory the table accounts for: the slot array plus, per entry, its header, key and value (the
 * sizes requested from the allocator, not the allocator's own overhead). Replacing a value by a
 * smaller one or by a tombstone lowers it. */
size_t memtable_bytes(const struct memtable *mt);

/* Current slot capacity (a power of two), for tests and memory reports. */
size_t memtable_capacity(const struct memtable *mt);

/* Times two operations with the same (lamport, writer) but different content met in this table
 * (see memtable_apply). Honest writers never cause it; the count depends on arrival order, the
 * resulting state does not. */
uint64_t memtable_conflict_count(const struct memtable *mt);

/* Makes room for count entries in total without further growth. Never shrinks.
 * Errors: PSL_ERR_NOMEM (the allocation failed, or count is beyond the table's maximum of about
 * 805 million entries); the table is unchanged. */
psl_err memtable_reserve(struct memtable *mt, size_t count) PSL_MUST_USE;

/* State digest: SHA-256 over every entry in ascending key order (bytewise, a shorter key first
 * on a common prefix), each encoded little-endian as
 *   key_size u16 | key | tombstone u8 | lamport u64 | writer[32] | value_size u32 | value
 * Two tables with the same logical state have the same digest whatever their insertion order,
 * capacity or hash key. Takes O(n log n) time and 16 bytes of scratch memory per entry.
 * Errors: PSL_ERR_NOMEM (out not written). */
psl_err memtable_digest(const struct memtable *mt, uint8_t out[MEMTABLE_DIGEST_SIZE]) PSL_MUST_USE;

/* Called once per entry by memtable_foreach; a result other than PSL_OK stops the walk. */
typedef psl_err (*memtable_visit_fn)(void *ctx, const struct memtable_entry_view *entry);

/* Calls fn for every entry (live and tombstones), in an unspecified order that depends on the
 * hash key and capacity. fn must not modify the table. Returns PSL_OK, or the first non-OK
 * result of fn. */
psl_err memtable_foreach(const struct memtable *mt, memtable_visit_fn fn, void *ctx) PSL_MUST_USE;

#endif
