/* lookup.h: reading CapsuleDB (DESIGN §6): blocks fetched by content address from untrusted
 * storage servers, checked against the hash the signed index gives, decrypted inside the enclave
 * and kept in a bounded LRU cache; and point lookups over an index.
 * A block is fetched through a caller's callback from a list of sources (the capsule's replica
 * servers in order of preference, say): bytes whose hash is not the one asked for, or that do not
 * open, are refused and the next source is tried, so one lying server cannot deny a read while
 * another holds the block.
 * Not thread-safe: a reader has one owner (the enclave's lookup path, or the compactor). */
#ifndef PSL_LSM_LOOKUP_H
#define PSL_LSM_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "lsm/block.h"
#include "lsm/index.h"

/* Copies the record whose hash is `hash` from source number `source` (0 <= source < count) into
 * buf (cap = PSL_RECORD_SIZE_MAX bytes of the reader's private memory) and sets *size. Any error
 * (PSL_ERR_NOT_FOUND, PSL_ERR_TIMEOUT, PSL_ERR_IO, ...) means "this source failed"; the reader
 * then tries the next one. The bytes are untrusted: the reader checks them. */
typedef psl_err (*lsm_fetch_fn)(void *ctx, unsigned source, const uint8_t hash[HASH_SIZE],
                                uint8_t *buf, size_t cap, size_t *size);

struct lsm_source {
    lsm_fetch_fn fetch;
    void *ctx; /* borrowed, passed to fetch */
    unsigned count;
};

struct lsm_reader_stats {
    uint64_t hits;           /* pins served from the cache */
    uint64_t misses;         /* pins that fetched */
    uint64_t fetches;        /* callback calls */
    uint64_t fetch_failures; /* callback errors */
    uint64_t refused;        /* fetched bytes refused: wrong hash, framing, type, decryption... */
    uint64_t bloom_skips;    /* lookups that skipped a block on its filter */
    uint64_t lamport_skips;  /* ... because its lamport_max could not beat the best version */
};

/* A decoded block, reference counted: held by the cache and by each pin. Opaque. */
struct lsm_cached;

struct lsm_reader {
    uint8_t capsule[HASH_SIZE];
    uint8_t *capsule_key; /* AEAD_KEY_SIZE bytes of secret memory, owned */
    struct lsm_source src;
    uint8_t *fetch_buf; /* PSL_RECORD_SIZE_MAX bytes, owned: fetched bytes land here first */
    uint8_t key_writer[HASH_SIZE];
    struct aead_key key; /* the key of key_writer, the last block writer seen (hd NULL: none) */
    struct lsm_cached **buckets; /* owned; bucket_count (a power of two) chains */
    size_t bucket_count;
    size_t cached_count;
    struct lsm_cached *lru_first, *lru_last; /* most recently used first */
    size_t cache_bytes;
    size_t cache_bytes_max;
    size_t pinned_count;
    struct lsm_reader_stats stats;
};

/* Initialises a reader for capsule, copying capsule_key into secret memory and *src. The cache
 * holds at most cache_bytes_max bytes of decoded blocks (plaintext, offsets and bookkeeping; 0
 * disables caching). Allocates the PSL_RECORD_SIZE_MAX fetch buffer.
 * Errors: PSL_ERR_INVALID_ARG (no fetch callback or no source), PSL_ERR_NOMEM. */
psl_err lsm_reader_init(struct lsm_reader *rd, const uint8_t capsule[HASH_SIZE],
                        const uint8_t capsule_key[AEAD_KEY_SIZE], const struct lsm_source *src,
                        size_t cache_bytes_max) PSL_MUST_USE;
/* Frees everything, wiping keys and plaintexts. Every pin must have been released. */
void lsm_reader_deinit(struct lsm_reader *rd);

/* Pins the block ref names: from the cache, or fetched from the sources in order, each answer
 * checked (lsm_record_check_hash, decryption under the key of the record's writer, block decode,
 * and agreement with ref: entry count, size, first and last key) until one passes. The block is
 * then cached (if it fits the bound, evicting the least recently used) and *out pinned: valid
 * until lsm_reader_unpin, even if evicted meanwhile.
 * Errors: PSL_ERR_AUTH (some source answered with bytes that were refused, and none passed),
 * PSL_ERR_IO (every source failed to answer), PSL_ERR_NOMEM. */
psl_err lsm_reader_pin(struct lsm_reader *rd, const struct lsm_block_ref *ref,
                       struct lsm_cached **out) PSL_MUST_USE;
/* The pinned block (borrowed until the pin is released). */
const struct lsm_block *lsm_cached_block(const struct lsm_cached *c);
void lsm_reader_unpin(struct lsm_reader *rd, struct lsm_cached *c);
/* Whether the block named hash is in the cache (a pin would not fetch). */
bool lsm_reader_cached(const struct lsm_reader *rd, const uint8_t hash[HASH_SIZE]);
/* Caches a block the caller made itself (the compactor, right after sealing it), under hash, so
 * that the next merge does not fetch it back. b is taken (its plaintext then belongs to the
 * cache; the struct is zeroed); the caller vouches that it is the block hash names, since nothing
 * is checked. A block already cached, or larger than the cache, is simply freed.
 * Errors: PSL_ERR_NOMEM (b freed). */
psl_err lsm_reader_insert(struct lsm_reader *rd, const uint8_t hash[HASH_SIZE],
                          struct lsm_block *b) PSL_MUST_USE;
/* Drops every cached block that is not pinned. */
void lsm_reader_cache_clear(struct lsm_reader *rd);

/* The answer of a lookup. */
struct lsm_result {
    bool found;             /* false: no version of the key anywhere in the tree */
    struct lsm_entry entry; /* found: the greatest version (a PUT, or a DEL: a tombstone) */
    struct lsm_cached *pin; /* holds entry's pointers; release with lsm_result_release */
};

/* Finds the greatest version (lsm_version_cmp) of key in the tree of ix. Versions are not
 * ordered by level (an operation delayed past a cut can land in a newer run with a smaller
 * lamport), so every run whose key range and filter admit the key is consulted, newest first,
 * except blocks whose lamport_max cannot beat the version found so far.
 * key: 1..PSL_KEY_SIZE_MAX bytes. Errors: PSL_ERR_INVALID_ARG, PSL_ERR_TOO_LARGE (key), and those
 * of lsm_reader_pin; *out is written only on success (release it even when !found: a no-op). */
psl_err lsm_lookup(struct lsm_reader *rd, const struct lsm_index *ix, const uint8_t *key,
                   size_t key_size, struct lsm_result *out) PSL_MUST_USE;
void lsm_result_release(struct lsm_reader *rd, struct lsm_result *res);

/* The block of run that may hold key (its range contains key), or NULL. */
const struct lsm_block_ref *lsm_run_find(const struct lsm_run *run, const uint8_t *key,
                                         size_t key_size);

#endif
