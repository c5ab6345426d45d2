/* block.h: CapsuleDB blocks (DESIGN §6): one sorted run of key versions, the plaintext payload of
 * an LSM_BLOCK record sealed by the compactor (AEAD under its writer key, like DATA).
 * Plaintext ("PSLB"):
 *   magic[4] "PSLB" | version u8 = 1 | entry_count u32 (1..LSM_BLOCK_ENTRIES_MAX), then
 *   entry_count times
 *   { kind u8 (1 PUT, 2 DEL) | lamport u64 | writer[32] | key_size u16 (1..1024) |
 *     value_size u32 (<= 1 MiB; 0 for DEL) | key | value }
 * Keys are strictly ascending (bytewise, a shorter key first on a common prefix): one version per
 * key, so a block is a map. A block is named by the hash of its record (its content address);
 * readers find that hash in a signed index, so a fetched block is checked by hash, then opened.
 * Checklist: a change here changes lsm_block_parse, its fuzz target (fuzz_lsm_block) and corpus,
 * the LSM section of docs/protocol.md, and the known-answer test in test_lsm_block.c. */
#ifndef PSL_LSM_BLOCK_H
#define PSL_LSM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/limits.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "crypto/crypto.h"

#define LSM_BLOCK_VERSION     1u
#define LSM_BLOCK_HEADER_SIZE 9u  /* magic, version, entry_count */
#define LSM_ENTRY_OVERHEAD    47u /* kind, lamport, writer, key_size, value_size */
#define LSM_ENTRY_SIZE_MAX    (LSM_ENTRY_OVERHEAD + PSL_KEY_SIZE_MAX + PSL_VALUE_SIZE_MAX)
/* A block plaintext fills at most one record payload (less the AEAD tag). */
#define LSM_BLOCK_SIZE_MAX    (PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE)
#define LSM_BLOCK_ENTRIES_MAX 65536u

/* One key version, as stored in a block and as given to the compactor. Pointers are borrowed
 * (from a block's plaintext, or from the caller for compactor input). */
struct lsm_entry {
    uint8_t kind; /* OP_PUT or OP_DEL (capsule/payload.h) */
    uint64_t lamport;
    const uint8_t *writer; /* HASH_SIZE bytes */
    const uint8_t *key;
    uint16_t key_size;
    const uint8_t *value; /* NULL for DEL (and may be NULL for an empty PUT) */
    uint32_t value_size;  /* 0 for DEL */
};

/* Key order of blocks and indexes: bytewise, a shorter key first on a common prefix (the order of
 * memtable_digest). Returns <0, 0, >0. */
int lsm_key_cmp(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size);

/* Version order of one key, the memtable's (scl/memtable.h): (lamport, writer) first; for equal
 * stamps (an equivocating writer) a DEL is above any PUT and PUT values compare as keys do. The
 * greater version wins everywhere in CapsuleDB. Returns <0, 0 (same version), >0. */
int lsm_version_cmp(const struct lsm_entry *a, const struct lsm_entry *b);

/* Whether e respects the limits (kind, key 1..PSL_KEY_SIZE_MAX, value <= PSL_VALUE_SIZE_MAX and
 * 0 for DEL, non-NULL writer, key and value pointers where sizes say so). */
bool lsm_entry_is_valid(const struct lsm_entry *e);
/* Encoded size of a valid entry. */
size_t lsm_entry_size(const struct lsm_entry *e);

/* ---- encoding ---- */

/* Writes the block header for count entries at p (LSM_BLOCK_HEADER_SIZE bytes). */
void lsm_block_header_write(uint8_t *p, uint32_t count);
/* Writes a valid entry at p (lsm_entry_size(e) bytes). The builder primitive of compact.c. */
void lsm_entry_write(uint8_t *p, const struct lsm_entry *e);

/* Encoded size of a block of these entries, or 0 when it breaks a limit (an invalid entry, no
 * entries, more than LSM_BLOCK_ENTRIES_MAX, or more than LSM_BLOCK_SIZE_MAX bytes). */
size_t lsm_block_encoded_size(const struct lsm_entry *entries, size_t count);
/* Appends a block to w. Errors: PSL_ERR_TOO_LARGE (a limit, as above, or w too small),
 * PSL_ERR_INVALID_ARG (keys not strictly ascending); nothing is written on error. */
psl_err lsm_block_encode(struct wr *w, const struct lsm_entry *entries, size_t count) PSL_MUST_USE;

/* ---- decoding (untrusted bytes) ---- */

/* Reads only the entry count, bounded by LSM_BLOCK_ENTRIES_MAX and by the bytes present, so a
 * caller can size its offset array. Errors: TRUNCATED, BAD_MAGIC, BAD_VERSION, TOO_LARGE,
 * MALFORMED (a count of 0). */
psl_err lsm_block_count(const uint8_t *buf, size_t size, size_t *count) PSL_MUST_USE;
/* Validates a whole block and writes the byte offset of every entry (from buf) into offsets.
 * Errors as lsm_block_count, and TOO_LARGE (count > cap, a key or value over its limit, size over
 * LSM_BLOCK_SIZE_MAX), MALFORMED (unknown kind, empty key, DEL with a value, keys not strictly
 * ascending), TRUNCATED, TRAILING. Nothing is written to *count on error. */
psl_err lsm_block_parse(const uint8_t *buf, size_t size, uint32_t *offsets, size_t cap,
                        size_t *count) PSL_MUST_USE;

/* A validated block held in memory. Its plaintext is confidential: it is wiped when freed. */
struct lsm_block {
    uint8_t *plain; /* owned (malloc) */
    size_t plain_size;
    uint32_t *offsets; /* owned: entry i starts at plain + offsets[i] */
    size_t count;
};

/* Validates plain (size bytes, malloc'd private memory) and takes it on success; on error the
 * caller still owns plain. Errors: those of lsm_block_parse, PSL_ERR_NOMEM. */
psl_err lsm_block_load(struct lsm_block *b, uint8_t *plain, size_t size) PSL_MUST_USE;
/* Wipes and frees; the struct is left zeroed. */
void lsm_block_deinit(struct lsm_block *b);
/* Memory the block holds (plaintext and offsets), for cache accounting. */
size_t lsm_block_mem_size(const struct lsm_block *b);
/* Entry i (< b->count); pointers borrowed from the block. */
void lsm_block_entry(const struct lsm_block *b, size_t i, struct lsm_entry *out);
/* Binary search: true and *index when key is in the block. */
bool lsm_block_find(const struct lsm_block *b, const uint8_t *key, size_t key_size, size_t *index);

/* ---- records ---- */

/* Seals the block plaintext already at buf + PSL_RECORD_HEADER_SIZE (plain_size bytes) as the
 * next LSM_BLOCK record of the compactor's chain (record_chain_seal); buf must hold
 * record_sealed_size(plain_size, REC_LSM_BLOCK) bytes. hash_out is the block's content address. */
psl_err lsm_block_seal(struct record_chain *rc, const struct writer_keys *wk, uint64_t lamport,
                       uint8_t *buf, size_t cap, size_t plain_size, size_t *out_size,
                       uint8_t hash_out[HASH_SIZE]) PSL_MUST_USE;

/* Checks record bytes fetched for a content address, before anything is decrypted: exact framing
 * (record_parse), record hash == expect_hash, type == type, capsule == capsule. No signature
 * check: the hash was taken from a verified, signed index. v's pointers borrow rec.
 * Errors: those of record_parse, PSL_ERR_AUTH (another record than the one asked for),
 * PSL_ERR_BAD_TYPE, PSL_ERR_WRONG_CAPSULE. */
psl_err lsm_record_check_hash(struct record_view *v, const uint8_t *rec, size_t size, uint8_t type,
                              const uint8_t capsule[HASH_SIZE],
                              const uint8_t expect_hash[HASH_SIZE]) PSL_MUST_USE;

/* Opens a checked LSM_BLOCK record: decrypts under key (the key of the record's writer, see
 * record_key_derive) into fresh private memory and loads it. Errors: PSL_ERR_DECRYPT, the
 * errors of lsm_block_load, PSL_ERR_NOMEM; no plaintext survives an error. */
psl_err lsm_block_open(const struct record_view *v, const struct aead_key *key,
                       struct lsm_block *out) PSL_MUST_USE;

#endif
