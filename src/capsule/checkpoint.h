/* checkpoint.h: the CHECKPOINT record (issue 7, garbage collection): a public, plaintext notice
 * that a compactor writes in its own chain right after an LSM_INDEX record, once that index and
 * every block it names are durable. Storage servers cannot read the encrypted index; the notice
 * tells them, in the clear and under the compactor's signature, which index it is, which cut of
 * the log that index covers, and which LSM_BLOCK records it still names. A server whose capsule
 * has retention COLLECT_COVERED may then drop what the checkpoint covers (checkpoint_may_collect).
 * Payload (plaintext, little-endian):
 *   version u8 = 1 | index_hash[32] | index_seq u64 (>= 2) | generation u64 (>= 1)
 *   head_count u32 (<= PSL_CUT_HEADS_MAX), head_count times
 *     { writer[32] | seq u64 (>= 1) | hash[32] }            writers strictly ascending
 *   live_count u32 (<= PSL_CHECKPOINT_BLOCKS_MAX), live_count times
 *     { block record hash[32] }                            strictly ascending
 * The heads are the index's cut (without lamports); the live list is every block the index names.
 * The codec lives here rather than in src/lsm: the storage server, the chain verifier and the
 * engine all read it, and only the engine links psl_lsm.
 * Checklist: a change here changes checkpoint_decode, fuzz_checkpoint and its corpus
 * (make_corpus), the CHECKPOINT section of docs/protocol.md and the known-answer test in
 * test_checkpoint.c. */
#ifndef PSL_CAPSULE_CHECKPOINT_H
#define PSL_CAPSULE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/limits.h"
#include "capsule/record.h"

#define CHECKPOINT_VERSION    1u
#define CHECKPOINT_FIXED_SIZE (1u + HASH_SIZE + 8u + 8u + 4u + 4u)
#define CHECKPOINT_HEAD_SIZE  (HASH_SIZE + 8u + HASH_SIZE)
#define CHECKPOINT_SIZE_MAX                                                                        \
    (CHECKPOINT_FIXED_SIZE + (size_t)PSL_CUT_HEADS_MAX * CHECKPOINT_HEAD_SIZE +                    \
     (size_t)PSL_CHECKPOINT_BLOCKS_MAX * HASH_SIZE)

struct checkpoint_head {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
};

/* A checkpoint. From checkpoint_decode, heads_raw and live point into the decoded buffer
 * (borrowed: valid while it is); for checkpoint_encode the caller fills heads and live. */
struct checkpoint {
    uint8_t index_hash[HASH_SIZE]; /* the LSM_INDEX record this notice is about */
    uint64_t index_seq;            /* its seq in the compactor's chain (the notice's own chain) */
    uint64_t generation;           /* the index's generation */
    size_t head_count;
    const struct checkpoint_head *heads; /* encode only (decode: NULL, use checkpoint_head_at) */
    const uint8_t *heads_raw;            /* decode only: head_count * CHECKPOINT_HEAD_SIZE bytes */
    size_t live_count;
    const uint8_t (*live)[HASH_SIZE]; /* strictly ascending */
};

/* Encoded size for these counts (no limit check). */
size_t checkpoint_encoded_size(size_t head_count, size_t live_count);
/* Appends the encoding of cp. Errors (nothing written): PSL_ERR_TOO_LARGE (a count over its
 * limit, or w too small), PSL_ERR_MALFORMED (what the decoder would refuse: heads or live hashes
 * not strictly ascending, a head seq of 0, index_seq < 2, generation 0). */
psl_err checkpoint_encode(const struct checkpoint *cp, struct wr *w) PSL_MUST_USE;

/* Decodes an untrusted payload without allocating: version, counts against their limits and
 * against the bytes present, index_seq >= 2, generation >= 1, heads strictly ascending by writer
 * with seq >= 1, live hashes strictly ascending, exact framing. Errors: TRUNCATED, TRAILING,
 * BAD_VERSION, TOO_LARGE, MALFORMED; *out is written only on success. */
psl_err checkpoint_decode(struct checkpoint *out, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* Head i of a decoded checkpoint (i < head_count). */
void checkpoint_head_at(const struct checkpoint *cp, size_t i, struct checkpoint_head *out);
/* The head of writer in a decoded checkpoint (binary search); false when the cut omits it. */
bool checkpoint_head_find(const struct checkpoint *cp, const uint8_t writer[HASH_SIZE],
                          struct checkpoint_head *out);
/* Whether hash is in the live list (binary search). */
bool checkpoint_is_live(const struct checkpoint *cp, const uint8_t hash[HASH_SIZE]);

/* The collection rule, shared by the storage server and its test models. A stored record (header
 * h, hash) of a decoded checkpoint's capsule may be dropped exactly when its writer is in the
 * cut with head seq s, 1 < h->seq < s (the CERT at seq 1 and the head record itself stay), and
 * its type is DATA, EOE, SYNC, HEAD, LSM_INDEX, CHECKPOINT, or an LSM_BLOCK that neither the live
 * list nor that of prev (the checkpoint applied before this one, NULL if none) names. Keeping
 * the previous index's blocks one notice longer lets a reader that still uses that index (it
 * adopts the new one a little later) find every block it names. CERT, RESULT and REVOKE records
 * are never dropped, nor the index the notice names. Nothing at or above a cut head is ever
 * dropped, so a reader that replays a writer after its head in this (or any later) checkpoint
 * finds every record it asks for. */
bool checkpoint_may_collect(const struct checkpoint *cp, const struct checkpoint *prev,
                            const struct record_header *h, const uint8_t hash[HASH_SIZE]);

#endif
