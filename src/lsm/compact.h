/* compact.h: the CapsuleDB compactor's pure steps (DESIGN §6): turn one SYNC epoch's updates into
 * a level-0 run, and merge a level into the next under a level policy with a fixed growth factor.
 * Each step takes an index and returns a new one (generation + 1) without touching the old; the
 * blocks it creates go to a sink that seals them as LSM_BLOCK records and returns their hashes.
 * Given the same inputs and a deterministic sink, every step produces the same bytes.
 *
 * Shape: level 0 holds up to level0_runs_max runs (one per flush, newest first, overlapping each
 * other); every deeper level holds one sorted run of disjoint blocks. Level i >= 1 may hold
 * level1_size_max * growth_factor^(i-1) bytes of block plaintext; the last level
 * (level_count_max - 1) is unbounded. Merging level s into s+1 reads the input blocks (those of
 * both levels) whose key range meets another input block, writes their merged entries as new
 * blocks split at block_target_size and at the edges of kept blocks, and keeps every other input
 * block by reference (same hash, not rewritten): target blocks that nothing lands on stay, and
 * source blocks that land on nothing move down (a "trivial move").
 * Versions: one per key per run, the greatest under lsm_version_cmp (the memtable's order).
 * Tombstones: kept, except when a merge writes the bottom level (no deeper level holds blocks),
 * the tombstone's lamport is below the index's horizon (every operation still to come is stamped
 * higher, so none can be older than the delete), and no run outside the merge
 * may hold the key (by key range and filter). Without the last two rules a delete could be lost
 * to a PUT with a smaller stamp, because stamps are not ordered by level. */
#ifndef PSL_LSM_COMPACT_H
#define PSL_LSM_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "lsm/block.h"
#include "lsm/index.h"
#include "lsm/lookup.h"

/* The largest block_target_size: a block over the target by one maximal entry still fits. */
#define LSM_BLOCK_TARGET_SIZE_MAX (LSM_BLOCK_SIZE_MAX - LSM_BLOCK_HEADER_SIZE - LSM_ENTRY_SIZE_MAX)
#define LSM_BLOCK_TARGET_SIZE_MIN 64u

struct lsm_policy {
    size_t block_target_size;    /* close an output block before it would pass this many bytes */
    size_t level0_runs_max;      /* merge level 0 down when it holds more runs (1..63) */
    uint64_t level1_size_max;    /* bytes of level 1; level i holds growth^(i-1) times that */
    unsigned growth_factor;      /* 2..1000 */
    unsigned level_count_max;    /* 2..LSM_LEVELS_MAX */
    unsigned bloom_bits_per_key; /* 1..LSM_BLOOM_BITS_PER_KEY_MAX */
    unsigned bloom_hashes;       /* 1..LSM_BLOOM_HASHES_MAX */
};

/* 256 KiB blocks, 4 level-0 runs, 10 MiB at level 1, growth 10, 7 levels, 10 bits and 7
 * hashes per key. */
void lsm_policy_default(struct lsm_policy *p);
/* PSL_ERR_INVALID_ARG when a field is outside its range. */
psl_err lsm_policy_check(const struct lsm_policy *p) PSL_MUST_USE;

/* Seals the block plaintext at buf + PSL_RECORD_HEADER_SIZE (plain_size bytes; cap >=
 * record_sealed_size(plain_size, REC_LSM_BLOCK)) as an LSM_BLOCK record, in place (buf may be
 * overwritten), hands it to the storage servers and writes its record hash (lsm_block_seal does
 * the sealing). An error aborts the step; blocks sealed before it are simply unreferenced. */
struct lsm_sink {
    psl_err (*put)(void *ctx, uint8_t *buf, size_t cap, size_t plain_size,
                   uint8_t hash_out[HASH_SIZE]);
    void *ctx;
};

/* The SYNC cut a flush covers: heads in any order (copied, then sorted by writer), and the
 * tombstone horizon (index.h): at most every head's lamport; their minimum when the cut lists
 * every writer that may still write; 0 keeps every tombstone. */
struct lsm_cut {
    uint8_t sync_hash[HASH_SIZE];
    uint64_t epoch;
    uint64_t horizon;
    const struct lsm_index_head *heads;
    size_t head_count;
};

/* Counters a step adds to (never reset here). */
struct lsm_compact_stats {
    uint64_t blocks_written, bytes_written; /* new blocks, plaintext bytes */
    uint64_t blocks_read, bytes_read;       /* blocks merged */
    uint64_t blocks_kept;                   /* input blocks moved or kept by reference */
    uint64_t versions_dropped;              /* older versions of a key that a newer replaced */
    uint64_t tombstones_dropped;
};

/* Makes the index for one more SYNC epoch: old's levels plus, when updates is not empty, a new
 * newest level-0 run holding the greatest version of each updated key (tombstones included),
 * and cut as the covered cut. updates are borrowed (any order, duplicates allowed). cut->epoch
 * must be greater than old's unless old is the empty index. out is a new, owning index; old is
 * unchanged. stats may be NULL.
 * Errors: PSL_ERR_INVALID_ARG (policy, an invalid update, epoch not increasing, a head with seq
 * 0 or a lamport below the horizon, a writer listed twice, a horizon without heads, level 0 already
 * at LSM_LEVEL0_RUNS_MAX runs), PSL_ERR_TOO_LARGE (the index would pass its limits), PSL_ERR_NOMEM,
 * and the sink's errors. */
psl_err lsm_flush(const struct lsm_index *old, const struct lsm_policy *p,
                  const struct lsm_cut *cut, const struct lsm_entry *updates, size_t count,
                  const struct lsm_sink *sink, struct lsm_index *out,
                  struct lsm_compact_stats *stats) PSL_MUST_USE;

/* The level the policy wants merged into the next one (level 0 first, then the shallowest level
 * over its size), or -1 when the tree is in shape. */
int lsm_compact_pick(const struct lsm_index *ix, const struct lsm_policy *p);

/* Merges level `level` of old into level + 1 (see above), reading blocks through rd.
 * Errors: PSL_ERR_INVALID_ARG (policy, an empty level, or level + 1 >= level_count_max),
 * PSL_ERR_TOO_LARGE, PSL_ERR_NOMEM, the sink's errors and lsm_reader_pin's. */
psl_err lsm_compact_level(const struct lsm_index *old, const struct lsm_policy *p, size_t level,
                          struct lsm_reader *rd, const struct lsm_sink *sink, struct lsm_index *out,
                          struct lsm_compact_stats *stats) PSL_MUST_USE;

/* Like lsm_compact_level, for a slice of a level >= 1 (a single run): merges its first `count`
 * blocks into level + 1 and leaves the others in the level (SIZE_MAX, or count >= the run's
 * blocks: the whole level). Lookups stay right whatever the split, since versions are not
 * ordered by level; a tombstone goes only if no block that stays may hold its key. It bounds the
 * blocks one merge needs at hand: those of the slice and the target blocks they meet.
 * Errors: lsm_compact_level's, and PSL_ERR_INVALID_ARG for a count of 0 or a slice of level 0. */
psl_err lsm_compact_slice(const struct lsm_index *old, const struct lsm_policy *p, size_t level,
                          size_t count, struct lsm_reader *rd, const struct lsm_sink *sink,
                          struct lsm_index *out, struct lsm_compact_stats *stats) PSL_MUST_USE;

/* Runs lsm_compact_level on lsm_compact_pick's level until the tree is in shape (at most
 * level_count_max steps: each empties the level it merges). out is a new owning index (a copy of
 * old when nothing was needed). */
psl_err lsm_compact(const struct lsm_index *old, const struct lsm_policy *p, struct lsm_reader *rd,
                    const struct lsm_sink *sink, struct lsm_index *out,
                    struct lsm_compact_stats *stats) PSL_MUST_USE;

/* A deep, owning copy of ix (encoded, then decoded, so it is also checked). */
psl_err lsm_index_clone(const struct lsm_index *ix, struct lsm_index *out) PSL_MUST_USE;

#endif
