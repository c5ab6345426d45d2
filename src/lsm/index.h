/* index.h: the CapsuleDB index (DESIGN §6): which blocks make up the tree, and which SYNC cut
 * they cover. It is the plaintext payload of an LSM_INDEX record, encrypted and signed by the
 * compactor; receivers accept it only from a writer certified with the compactor role.
 * Plaintext ("PSLI"):
 *   magic[4] "PSLI" | version u8 = 1 | generation u64 | sync_hash[32] | epoch u64
 *   horizon u64 (<= every head's lamport; 0 without heads)
 *   head_count u32 (<= PSL_CUT_HEADS_MAX), head_count times
 *     { writer[32] | seq u64 (>= 1) | lamport u64 | hash[32] }     writers strictly ascending
 *   level_count u8 (<= LSM_LEVELS_MAX; the last level holds at least one run), per level
 *     run_count u32 (level 0: <= LSM_LEVEL0_RUNS_MAX, newest run first; deeper levels: <= 1),
 *     per run: block_count u32 (>= 1), per block (ascending, key ranges disjoint)
 *       { hash[32] | entry_count u32 (1..LSM_BLOCK_ENTRIES_MAX) | data_size u32 |
 *         lamport_max u64 | min_key_size u16 | min_key | max_key_size u16 | max_key |
 *         bloom_hashes u8 (1..16) | bloom_size u32 (1..LSM_BLOOM_SIZE_MAX) | bloom }
 * The cut is the SYNC record (hash, epoch) whose updates, and all earlier ones, the blocks hold,
 * with every head it lists: (writer, seq, hash) as in the SYNC, plus the lamport of that head
 * record. A writer stamps its records above every operation in them and its clock only grows, so
 * a version (lamport, writer) is covered exactly when the cut lists writer with a greater head
 * lamport. The horizon is the compactor's promise that every operation not yet in the index is
 * stamped above it: the minimum head lamport when the cut lists every writer that may still
 * write, lower (0: never) otherwise. Tombstones below it may be dropped (compact.h).
 * Checklist: a change here changes lsm_index_decode, fuzz_lsm_index and its corpus, the LSM
 * section of docs/protocol.md, and the known-answer test in test_lsm_index.c. */
#ifndef PSL_LSM_INDEX_H
#define PSL_LSM_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/err.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/record.h"
#include "lsm/block.h"

#define LSM_INDEX_VERSION        1u
#define LSM_LEVELS_MAX           8u
#define LSM_LEVEL0_RUNS_MAX      64u
#define LSM_INDEX_BLOCKS_MAX     65536u
#define LSM_INDEX_SIZE_MAX       (PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE)
#define LSM_INDEX_HEAD_SIZE      80u
#define LSM_BLOCK_REF_FIXED_SIZE 57u /* a block entry without its keys and filter */

struct lsm_index_head {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint64_t lamport; /* the lamport of the head record (its header field) */
    uint8_t hash[HASH_SIZE];
};

/* One block as the index lists it. Pointers are borrowed from the index's storage. */
struct lsm_block_ref {
    uint8_t hash[HASH_SIZE]; /* content address: the LSM_BLOCK record's hash */
    uint32_t entry_count;
    uint32_t data_size;   /* block plaintext bytes (the level policy counts these) */
    uint64_t lamport_max; /* the highest lamport of any entry */
    const uint8_t *min_key;
    const uint8_t *max_key;
    uint16_t min_key_size;
    uint16_t max_key_size;
    uint8_t bloom_hashes;
    uint32_t bloom_size;
    const uint8_t *bloom;
};

/* A sorted run: blocks ascending with disjoint key ranges. */
struct lsm_run {
    const struct lsm_block_ref *blocks;
    size_t block_count;
};

struct lsm_level {
    const struct lsm_run *runs; /* level 0: newest first; deeper levels: at most one */
    size_t run_count;
};

/* An index in memory. One from lsm_index_decode owns its storage (the plaintext copy the refs
 * point into and the arrays); compact.c also assembles unowned ones to encode them. */
struct lsm_index {
    uint64_t generation; /* grows with every index the compactor makes */
    uint8_t sync_hash[HASH_SIZE];
    uint64_t epoch;
    uint64_t horizon;
    const struct lsm_index_head *heads;
    size_t head_count;
    struct lsm_level levels[LSM_LEVELS_MAX];
    size_t level_count;
    /* storage, owned when decoded (NULL otherwise) */
    struct lsm_index_head *own_heads;
    struct lsm_run *own_runs;
    struct lsm_block_ref *own_blocks;
    uint8_t *own_buf; /* the plaintext (confidential: keys and filters), wiped when freed */
    size_t own_buf_size;
};

/* The empty index: generation 0, no cut, no levels (what a capsule has before its first). */
void lsm_index_init(struct lsm_index *ix);
/* Frees (wiping the plaintext) what ix owns; leaves it empty. */
void lsm_index_deinit(struct lsm_index *ix);

/* Encoded size, or 0 when the index cannot be encoded within the limits (counts, key sizes,
 * LSM_INDEX_SIZE_MAX). Structure (order, disjointness) is checked by the decoder only. */
size_t lsm_index_encoded_size(const struct lsm_index *ix);
/* Appends the encoding. Errors: PSL_ERR_TOO_LARGE (a limit, or w too small); nothing written. */
psl_err lsm_index_encode(const struct lsm_index *ix, struct wr *w) PSL_MUST_USE;

/* Decodes an untrusted index plaintext into out, which then owns a private copy of buf. Checks
 * every limit and count against the bytes present before allocating, then: heads strictly
 * ascending by writer with seq >= 1; the horizon at most every head's lamport; the run limits per
 * level; the last level non-empty; per block the entry and size limits, min_key <= max_key (equal
 * exactly when entry_count is 1), bloom limits; blocks of a run strictly ascending and disjoint;
 * exact framing. Errors: TRUNCATED, TRAILING, BAD_MAGIC, BAD_VERSION, TOO_LARGE, MALFORMED, NOMEM;
 * out is not written on error. */
psl_err lsm_index_decode(struct lsm_index *out, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* Whether the version (lamport, writer) is covered by the index's cut (see above): the rule for
 * evicting a key from a memtable. */
bool lsm_index_covers(const struct lsm_index *ix, const uint8_t writer[HASH_SIZE],
                      uint64_t lamport);
/* The head of writer in the cut, or NULL (for recovery: replay that writer after head->seq). */
const struct lsm_index_head *lsm_index_head_find(const struct lsm_index *ix,
                                                 const uint8_t writer[HASH_SIZE]);
/* The tombstone horizon: every operation not yet in the index has a greater lamport. */
uint64_t lsm_index_horizon(const struct lsm_index *ix);
/* Highest lamport of any entry of any block (0 when empty). */
uint64_t lsm_index_lamport_max(const struct lsm_index *ix);
/* Sum of data_size over a level's blocks. */
uint64_t lsm_level_data_size(const struct lsm_level *level);
size_t lsm_index_block_count(const struct lsm_index *ix);

/* Encodes ix at buf + PSL_RECORD_HEADER_SIZE and seals it as the next LSM_INDEX record of the
 * compactor's chain. cap must be at least record_sealed_size(lsm_index_encoded_size(ix),
 * REC_LSM_INDEX). Errors: TOO_LARGE, INVALID_ARG (cap), those of record_chain_seal. */
psl_err lsm_index_seal(struct record_chain *rc, const struct writer_keys *wk, uint64_t lamport,
                       const struct lsm_index *ix, uint8_t *buf, size_t cap, size_t *out_size,
                       uint8_t hash_out[HASH_SIZE]) PSL_MUST_USE;

/* Receives an LSM_INDEX record (the newest one found by a freshness read, say): record_parse,
 * type, record_check against m with the writer's certificate (already verified with cert_verify;
 * prev_known may be NULL), the compactor role (PSL_ERR_CERT_ROLE otherwise), then decryption
 * under the writer's key derived from capsule_key, then lsm_index_decode. *out is written only
 * on success; no plaintext survives an error. */
psl_err lsm_index_open(const uint8_t *rec, size_t size, const struct capsule_meta *m,
                       const struct writer_cert *cert, uint64_t now_ms, const uint8_t *prev_known,
                       const uint8_t capsule_key[AEAD_KEY_SIZE],
                       struct lsm_index *out) PSL_MUST_USE;

#endif
