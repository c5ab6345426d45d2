/* engine.h: the Secure Concurrency Layer engine (DESIGN §5), sans-I/O: events in, actions out.
 * It owns one writer identity (its keys, its chain, its Lamport clock), the memtable, the queues
 * of the write path, the verified state of every other writer, and durability bookkeeping. It
 * opens no socket, reads no clock and draws no randomness of its own (time comes in through
 * scl_tick, randomness through the rng seam), so the same code runs inside an enclave, in the
 * simulator and in tests.
 *
 * Write path: put/del stamp the operation with the Lamport clock, apply it to the memtable (a
 * writer reads its own writes) and queue it. scl_actor_step() is the crypto actor: it seals the
 * next record (the control queue first: CERT, EOE, SYNC; then a batch of data operations up to
 * the byte and operation limits: encrypt once, hash once, sign once) and emits it. Exactly one
 * actor sequences and chains the writer's records at a time.
 * Receive path: records are checked in the order of DESIGN §3.3 (header limits, capsule,
 * certificate, signature, prev link, decrypt) before anything is applied; operations apply under
 * last-writer-wins on (lamport, writer); duplicates are dropped by (writer, seq); gaps and
 * unknown prev links start fetches; two valid records for one (writer, seq) are a fork: both are
 * kept as evidence, the writer is quarantined and an alert is emitted.
 * Epochs: a coordinator engine asks for end-of-epoch reports (it seals an EOE record that serves
 * as the request), workers answer with EOE records of their heads, the coordinator seals a SYNC
 * record listing every writer's head; workers fill gaps up to the cut and then link their next
 * records to it. Losing the coordinator stops epochs, never convergence.
 * Durability: ACKs from replica-set servers are verified and counted (k of n); flush tickets
 * complete when every earlier operation is in a durable record; records not yet durable are
 * re-sent after a quiet period.
 *
 * CapsuleDB (DESIGN §6, docs/capsuledb.md): an engine whose certificate has ROLE_COMPACTOR
 * turns the operations of each adopted SYNC cut into sealed LSM_BLOCK records, merges levels, and
 * publishes a signed LSM_INDEX once its blocks are durable. Every engine adopts the newest index
 * signed by a compactor; with a memory bound it evicts keys whose newest version the index
 * covers, and a get that needs the tree fetches blocks by hash through server requests: the get
 * answers PSL_ERR_BUSY until the reply is in (scl_runner_get waits). With checkpoint_recovery, a
 * joining engine loads the newest index and replays only the records after its cut.
 *
 * Thread-safe: one mutex guards the state; crypto runs outside it where it can. */
#ifndef PSL_SCL_ENGINE_H
#define PSL_SCL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsule/cert.h"
#include "capsule/record.h"

struct lsm_policy; /* lsm/compact.h */

struct scl_config {
    const struct capsule_meta *meta;     /* copied */
    const uint8_t *capsule_key;          /* AEAD_KEY_SIZE bytes, copied into secret memory */
    const struct writer_cert *cert;      /* this engine's certificate (copied); must certify keys */
    const struct delegation *deleg;      /* when a leader issued cert; may be NULL */
    size_t batch_ops_max;                /* ops per DATA record (default 1000) */
    size_t batch_bytes_max;              /* plaintext bytes per DATA record (default 256 KiB) */
    size_t queue_ops_max;                /* queued, unsealed ops before put says BUSY (default 100000) */
    size_t queue_bytes_max;              /* same in bytes (default 64 MiB) */
    size_t unacked_bytes_max;            /* sealed, not yet durable bytes before actors pause (64 MiB) */
    uint32_t resend_ms;                  /* re-send undurable records after this quiet time (500) */
    uint32_t fetch_retry_ms;             /* ask again for missing records after this (300) */
    uint32_t epoch_ms;                   /* coordinator only: epoch length (0: no epochs) */
    size_t pending_records_max;          /* records held while their writer's CERT is fetched (1024) */
    /* CapsuleDB. Every engine adopts indexes; the rest is off unless set. */
    size_t memtable_bytes_max;   /* evict covered keys past this many bytes (0: unbounded) */
    size_t lsm_cache_bytes_max;  /* decoded blocks cached by the reader (default 16 MiB) */
    bool checkpoint_recovery;    /* join from the newest index (compactors always do) */
    const struct lsm_policy *lsm_policy; /* compactor: level policy (NULL: lsm_policy_default) */
};

enum scl_action_kind {
    SCL_ACT_PUBLISH = 1, /* a record: publish on the capsule's record topic */
    SCL_ACT_REQUEST = 2, /* a server request (capsule/proto.h): publish on the request topic */
    SCL_ACT_ALERT = 3,   /* a fork: data is the two records' hashes, writer in `writer` */
};

struct scl_action {
    uint8_t kind;
    uint8_t writer[HASH_SIZE]; /* ALERT: the forking writer */
    uint8_t *data;             /* owned by the caller after scl_poll: free() it */
    size_t size;
};

struct scl_stats {
    uint64_t ops_local;        /* put/del by this engine */
    uint64_t records_sealed;
    uint64_t ops_sealed;       /* local operations sealed into records */
    uint64_t records_applied;  /* other writers' records verified and applied */
    uint64_t ops_applied;      /* their operations */
    uint64_t duplicates;
    uint64_t rejected;         /* records failing a check (counted per reason below) */
    uint64_t rejected_by[PSL_ERR__COUNT];
    uint64_t forks;
    uint64_t fetches;          /* requests for missing records */
    uint64_t resent;
    uint64_t durable_seq;
    uint64_t sealed_seq;
    uint64_t epochs;           /* SYNC records sealed (coordinator) or adopted (worker) */
    /* CapsuleDB */
    uint64_t lsm_generation;      /* generation of the index in use (0: none) */
    uint64_t lsm_indexes_adopted;
    uint64_t lsm_indexes_refused; /* LSM_INDEX records not signed by a compactor, or undecodable */
    uint64_t lsm_evicted;         /* keys evicted from the memtable */
    uint64_t lsm_lookups;         /* gets that consulted the tree */
    uint64_t lsm_block_requests;  /* GET_HASH requests for blocks */
    uint64_t lsm_blocks_refused;  /* fetched block bytes refused (hash, decryption, index) */
    uint64_t lsm_flushes;         /* compactor: indexes published */
    uint64_t lsm_merges;          /* compactor: level merges */
    uint64_t lsm_merge_slices;    /* of which merged a slice of their level (merge_plan) */
    uint64_t lsm_flush_skipped;   /* compactor: cuts not flushed (an error; compaction stops) */
    uint64_t lsm_blocks_written;  /* compactor: LSM_BLOCK records sealed */
    uint64_t lsm_record_bytes;    /* compactor: sealed bytes of its blocks and indexes */
    uint64_t recovery_index_generation; /* checkpoint the engine joined from (0: none) */
    uint64_t recovery_deferred;   /* records set aside during recovery (fetched after it) */
};

struct scl_engine;

/* Creates an engine for writer keys wk (taken on success: destroyed with the engine; left to
 * the caller on failure), whose certificate is cfg->cert. The CERT record is queued first. */
psl_err scl_create(struct scl_engine **out, const struct scl_config *cfg,
                   struct writer_keys *wk) PSL_MUST_USE;
void scl_destroy(struct scl_engine *e);

/* ---- the lambda-facing API (DESIGN §5.1) ---- */
/* PSL_ERR_BUSY when the queues are full (backpressure: run actors, wait, retry). */
psl_err scl_put(struct scl_engine *e, const uint8_t *key, size_t key_size, const uint8_t *value,
                size_t value_size) PSL_MUST_USE;
psl_err scl_del(struct scl_engine *e, const uint8_t *key, size_t key_size) PSL_MUST_USE;
/* True (once) when a put or del since the last call found the data queue empty: only then can
 * the actors be asleep with work to do, so only then must the caller kick them. A put onto a
 * non-empty queue needs no kick: an actor drains until it finds the queue empty. Meant for the
 * putting thread (one flag; two putters may both see true or one see false: kicking is then
 * merely early or late by one put). */
bool scl_wants_kick(struct scl_engine *e);
/* Copies the value into out (cap bytes); PSL_ERR_NOT_FOUND when absent or deleted,
 * PSL_ERR_TOO_LARGE (with *size set) when cap is too small. PSL_ERR_BUSY while the answer waits
 * for something from the servers: a CapsuleDB block (the request is queued as an action; call
 * again after the next reply) or checkpoint recovery (scl_is_ready). PSL_ERR_IO when no server
 * produced a block the index names after repeated requests, PSL_ERR_AUTH when every answer was
 * refused. put and del also answer PSL_ERR_BUSY during recovery. */
psl_err scl_get(struct scl_engine *e, const uint8_t *key, size_t key_size, uint8_t *out,
                size_t cap, size_t *size) PSL_MUST_USE;
/* True when an actor has something to do: control records or operations to seal, a flush job,
 * or actions to emit. A host that hands the engine a record need not wake the actors otherwise
 * (a wake-up costs tens of microseconds on the delivering thread). */
bool scl_has_work(struct scl_engine *e);
/* A counter that grows whenever operations of other writers were applied, read without the
 * engine's lock: a reader waiting for another worker's update can watch it and call scl_get
 * only when it moved, instead of taking the lock on every poll (which delays the receive path
 * that needs it). */
uint64_t scl_applied_version(struct scl_engine *e);
/* False while checkpoint recovery runs (the engine then neither stamps nor answers). */
bool scl_is_ready(struct scl_engine *e);
/* A flush ticket for every operation issued so far; scl_flush_done says when they are durable. */
uint64_t scl_flush_ticket(struct scl_engine *e);
bool scl_flush_done(struct scl_engine *e, uint64_t ticket);

/* ---- crypto actors ---- */
/* Seals the next record if there is work; PSL_ERR_NOT_FOUND when idle, PSL_ERR_BUSY when too
 * many sealed bytes await durability. */
psl_err scl_actor_step(struct scl_engine *e) PSL_MUST_USE;

/* ---- events from the host (untrusted bytes) ---- */
psl_err scl_on_record(struct scl_engine *e, const uint8_t *data, size_t size);
psl_err scl_on_ack(struct scl_engine *e, const uint8_t *data, size_t size);
psl_err scl_on_reply(struct scl_engine *e, const uint8_t *data, size_t size);
/* Timers: re-sends, fetch retries, epochs. now_ms is monotonic milliseconds. */
void scl_tick(struct scl_engine *e, uint64_t now_ms);

/* ---- actions to the host ---- */
bool scl_poll(struct scl_engine *e, struct scl_action *out);

/* ---- introspection ---- */
void scl_get_stats(struct scl_engine *e, struct scl_stats *out);
/* State digest of the memtable (convergence checks). */
psl_err scl_digest(struct scl_engine *e, uint8_t out[HASH_SIZE]) PSL_MUST_USE;
const uint8_t *scl_writer_id(const struct scl_engine *e);
const uint8_t *scl_capsule_name(const struct scl_engine *e);
/* The requester id this engine puts in its server requests (replies come to rep.<id>). */
const uint8_t *scl_requester_id(const struct scl_engine *e);
/* Highest contiguous verified seq of another writer (0 when unknown). */
uint64_t scl_peer_contiguous(struct scl_engine *e, const uint8_t writer[HASH_SIZE]);
bool scl_peer_forked(struct scl_engine *e, const uint8_t writer[HASH_SIZE]);
/* True when every record seen from every other certified, unforked writer has been applied with
 * no gap before it, and no record waits for its writer's certificate. */
bool scl_caught_up(struct scl_engine *e);

#endif
