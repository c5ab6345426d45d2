/* store.h: the storage engine of a capsule server (DESIGN §9), over LMDB.
 * Databases: meta (capsule name -> metadata bytes), rec (record hash -> record bytes),
 * idx (capsule || writer || seq big-endian -> record hash; duplicates kept: a fork's two
 * records are both evidence), head (capsule || writer -> contiguous seq, its hash, highest seq,
 * flags).
 * Files in the store directory: data.mdb (the main LMDB environment, every commit synced), wal
 * (the write-ahead log) and hot.mdb (a scratch LMDB environment holding what was appended since
 * the last checkpoint; rebuilt from the WAL at every open). One process per directory (the WAL
 * is locked).
 * Appends go through group commit: a committer thread gathers appends for a short window (or up
 * to a byte budget), writes them to the WAL and fdatasyncs it once, applies them where reads
 * find them, and only then calls each append's callback. So a callback with PSL_OK means the
 * record survives kill -9 and power loss, and reads see it. Checkpoints (the WAL at 16 MiB, a
 * second after its first frame, at close) move the scratch contents into the main environment
 * in one synced transaction and reset the WAL; store_open replays the WAL first.
 * A full map or a full disk fails the batch with PSL_ERR_STORAGE_FULL, refuses appends while
 * full (reads keep working), and retries at most once a second until space returns. (A full
 * main map shows at a checkpoint; one is forced before any batch that might not fit, so the
 * batch that does not fit is the one that fails, and what was acknowledged stays readable in
 * the scratch environment and durable in the WAL.)
 * The store trusts its caller to have verified records (signature, certificate); it checks the
 * chain facts it owns: duplicates, forks and prev links against what it has stored. */
#ifndef PSL_STORE_STORE_H
#define PSL_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "capsule/checkpoint.h"
#include "capsule/record.h"

struct store_config {
    const char *dir;             /* created if missing */
    size_t map_size_bytes;       /* LMDB map size: the most the database may hold */
    uint32_t commit_window_us;   /* extra time the committer gathers appends (0: none; what
                                  * arrives during a commit still forms the next batch) */
    size_t commit_bytes_max;     /* a batch this large commits without waiting out the window */
    /* Optional: called on the committer thread after the callbacks of each batch have run. */
    void (*batch_done)(void *ctx);
    void *batch_ctx;
    /* With no commit window: an append to an idle store (nothing queued or committing, none
     * for twice the moving average of commit times, at least 200 us) is committed by
     * store_append itself, and its callback and batch_done
     * run on the appending thread before store_append returns. Set it only when the appending
     * threads hold no lock that the callbacks take. */
    bool inline_when_idle;
};

struct store_head {
    uint8_t writer[HASH_SIZE];
    uint64_t contiguous;        /* highest seq with every record 1..seq stored and prev-linked */
    uint8_t hash[HASH_SIZE];    /* hash of the record at `contiguous` */
    uint64_t max_seq;           /* highest seq stored */
    bool forked;
};

struct store_stats {
    uint64_t appends;           /* records durably stored */
    uint64_t duplicates;        /* appends of records already stored (acknowledged again) */
    uint64_t bytes;             /* bytes of records durably stored */
    uint64_t commits;
    uint64_t inline_commits;    /* of which committed on an appending thread (inline_when_idle) */
    uint64_t commit_ns_total;
    uint64_t commit_ns_max;
    uint64_t failed_batches;    /* batches refused because storage was full or failed */
    uint64_t forks;
    uint64_t bad_prev;
    bool full;
    uint64_t wal_bytes;         /* frames in the WAL since the last checkpoint */
    uint64_t wal_replayed;      /* records replayed from the WAL when the store opened */
    uint64_t checkpoints;
    uint64_t checkpoint_ns_max;
    uint64_t commit_hist[32];   /* commits by latency: bucket i holds [2^i, 2^(i+1)) microseconds */
};

/* Approximate latency quantile (0 < q < 1) in nanoseconds from the commit histogram. */
uint64_t store_commit_quantile_ns(const struct store_stats *st, double q);

struct store;

psl_err store_open(struct store **out, const struct store_config *cfg) PSL_MUST_USE;
/* Commits what is queued (callbacks run), checkpoints, then closes. */
void store_close(struct store *s);

/* Stores capsule metadata (verified by the caller) synchronously. */
psl_err store_meta_put(struct store *s, const uint8_t name[HASH_SIZE], const uint8_t *raw,
                       size_t size) PSL_MUST_USE;
/* Calls fn for every stored metadata (bytes borrowed during the call). */
psl_err store_meta_each(struct store *s, void (*fn)(void *ctx, const uint8_t *raw, size_t size),
                        void *ctx) PSL_MUST_USE;

/* Result of one append, from the committer thread (or the appending one: inline_when_idle): PSL_OK (durable, new or duplicate),
 * PSL_ERR_FORK (stored as evidence, not acknowledged), PSL_ERR_BAD_PREV (refused),
 * PSL_ERR_STORAGE_FULL or PSL_ERR_IO. */
typedef void (*store_append_cb)(void *ctx, psl_err err, const uint8_t hash[HASH_SIZE]);
/* Queues a parsed record (copied) for the next group commit. Returns PSL_ERR_STORAGE_FULL at
 * once while the store is full, PSL_ERR_CLOSED when closing. */
psl_err store_append(struct store *s, const struct record_view *v, store_append_cb cb,
                     void *ctx) PSL_MUST_USE;

/* Reads. The record bytes passed to fn are borrowed for the call; fn returns false to stop. */
typedef bool (*store_record_fn)(void *ctx, const uint8_t *rec, size_t size);
psl_err store_get(struct store *s, const uint8_t hash[HASH_SIZE], store_record_fn fn,
                  void *ctx) PSL_MUST_USE;
/* True when a record with this hash is durably stored (a cheap check before verifying again). */
bool store_has(struct store *s, const uint8_t hash[HASH_SIZE]);
/* Records of one writer with from <= seq <= to, in seq order (fork evidence included). */
psl_err store_range(struct store *s, const uint8_t capsule[HASH_SIZE],
                    const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to,
                    store_record_fn fn, void *ctx) PSL_MUST_USE;
/* Heads of every writer of a capsule, in writer id order; fn returns false to stop. */
typedef bool (*store_head_fn)(void *ctx, const struct store_head *h);
psl_err store_heads(struct store *s, const uint8_t capsule[HASH_SIZE], store_head_fn fn,
                    void *ctx) PSL_MUST_USE;
/* The head of one writer; PSL_ERR_NOT_FOUND when nothing of it is stored. */
psl_err store_head_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                       const uint8_t writer[HASH_SIZE], struct store_head *out) PSL_MUST_USE;

void store_get_stats(struct store *s, struct store_stats *out);

/* ---- collection (retention COLLECT_COVERED; docs/capsuledb.md "Collection") ----
 * Database gc: capsule -> the last applied checkpoint (struct store_gc_state); capsule || writer
 * -> that writer's collected horizon (records 1 < seq < horizon were dropped; the CERT at seq 1 and
 * the record at the horizon stay). Heads keep their meaning: `contiguous` never goes down, and a
 * writer whose contiguous head was below the checkpoint's cut moves up to it (the checkpoint
 * vouches for the head hash; the next record must link to it). */
struct store_gc_state {
    uint64_t generation;            /* of the last applied checkpoint (0: none) */
    uint8_t record_hash[HASH_SIZE]; /* that CHECKPOINT record */
    uint8_t compactor[HASH_SIZE];   /* its writer */
    uint64_t records, bytes;        /* dropped in this capsule so far */
};

enum store_collect_outcome {
    STORE_COLLECT_APPLIED = 0,
    STORE_COLLECT_STALE = 1,    /* generation <= the last applied one: nothing changed */
    STORE_COLLECT_KEEP_ALL = 2, /* the capsule's retention keeps everything: nothing changed */
};

struct store_collect_result {
    int outcome;
    uint64_t records, bytes; /* dropped by this call */
    uint32_t writers;        /* cut writers whose prefix was visited */
    uint32_t skipped;        /* cut writers left alone: forked, or another record at the head */
    uint32_t rebased;        /* cut writers whose contiguous head moved up to the cut */
};

/* Applies a verified checkpoint (the caller checked the record's signature, that its writer is a
 * compactor, and decoded cp from its payload) to capsule: in one durable LMDB transaction, drops
 * every stored record checkpoint_may_collect allows for the writers of the cut, raises their
 * horizons, rebases heads below the cut, and records the checkpoint as applied. Does nothing
 * (outcome STALE / KEEP_ALL) when cp is not newer than the last applied one or when the
 * capsule's stored metadata says keep-all. A cut writer whose chain is forked here, or whose
 * stored record at the head seq is not the head hash, is left alone (skipped). It runs between
 * group commits: it first checkpoints the scratch environment into the main one (so the WAL is
 * empty and everything stored is where the collection looks), then collects in one synced
 * transaction. Errors: PSL_ERR_NOT_FOUND (no metadata stored for capsule), PSL_ERR_NOMEM,
 * PSL_ERR_STORAGE_FULL (also when that checkpoint found no room), PSL_ERR_IO; nothing changed
 * then. */
psl_err store_collect(struct store *s, const uint8_t capsule[HASH_SIZE],
                      const uint8_t record_hash[HASH_SIZE], const uint8_t compactor[HASH_SIZE],
                      const struct checkpoint *cp, struct store_collect_result *out) PSL_MUST_USE;
/* The last applied checkpoint of capsule; PSL_ERR_NOT_FOUND when none. */
psl_err store_gc_state_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                           struct store_gc_state *out) PSL_MUST_USE;
/* The collected horizon of a writer (0: nothing collected). */
uint64_t store_horizon_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                           const uint8_t writer[HASH_SIZE]);

#endif
