/* client.h: the client side of the capsule servers (part of libpsl): publishes a writer's
 * records, collects ACKs from replica-set servers only, reports durability when k distinct
 * servers' valid ACKs cover a writer's seq, re-sends what is not yet durable after a timeout,
 * fetches records by hash and by range, and performs freshness reads of writers' heads.
 * Thread-safe; ACK and reply handling runs on fabric threads, re-sending on its own thread. */
#ifndef PSL_CAPSULED_CLIENT_H
#define PSL_CAPSULED_CLIENT_H

#include <stdint.h>

#include "capsule/proto.h"
#include "capsule/record.h"
#include "fabric/fabric.h"

struct capsule_client_config {
    struct fabric *fabric;           /* borrowed */
    const struct capsule_meta *meta; /* copied */
    uint32_t resend_ms;              /* re-send records not durable after this long (default 500) */
    size_t unacked_bytes_max;        /* publish blocks beyond this (default 64 MiB) */
};

struct capsule_client_stats {
    uint64_t published;
    uint64_t resent;
    uint64_t acks_valid;
    uint64_t acks_rejected;    /* forged, not from the replica set, or for another capsule */
    uint64_t acks_conflicting; /* a server acknowledged a different history: fork evidence */
};

struct capsule_client;

psl_err capsule_client_open(struct capsule_client **out,
                            const struct capsule_client_config *cfg) PSL_MUST_USE;
void capsule_client_close(struct capsule_client *c);

/* Registers a writer whose records this client publishes, with its key pair: its ACKs are
 * then checked by their MACs (about a microsecond each; DESIGN §3.4 as amended in
 * docs/protocol.md). Writers never registered are tracked by ACK signatures (~70 us each): a
 * client that relays records it did not write can still tell when they are durable. */
psl_err capsule_client_add_writer(struct capsule_client *c,
                                  const struct writer_keys *wk) PSL_MUST_USE;
/* Publishes a record (copied and kept until durable). Records of one writer must be published
 * in seq order. Blocks while too many bytes are unacknowledged, up to timeout_ms
 * (PSL_ERR_TIMEOUT). */
psl_err capsule_client_publish(struct capsule_client *c, const uint8_t *rec, size_t size,
                               uint32_t timeout_ms) PSL_MUST_USE;
/* Highest seq of the writer that k distinct replica-set servers acknowledged (0: none). */
uint64_t capsule_client_durable_seq(struct capsule_client *c, const uint8_t writer[HASH_SIZE]);
/* Waits until seq of the writer is durable; PSL_ERR_TIMEOUT otherwise. */
psl_err capsule_client_wait_durable(struct capsule_client *c, const uint8_t writer[HASH_SIZE],
                                    uint64_t seq, uint32_t timeout_ms) PSL_MUST_USE;
/* How many distinct replica-set servers have acknowledged seq of the writer. */
unsigned capsule_client_ack_count(struct capsule_client *c, const uint8_t writer[HASH_SIZE],
                                  uint64_t seq);
void capsule_client_get_stats(struct capsule_client *c, struct capsule_client_stats *out);

/* Record bytes passed to the callbacks are borrowed for the call; return false to stop. */
typedef bool (*client_record_fn)(void *ctx, const uint8_t *rec, size_t size);

/* Fetches the record with this hash from any server; verifies that the bytes hash to it. */
psl_err capsule_client_get(struct capsule_client *c, const uint8_t hash[HASH_SIZE],
                           uint32_t timeout_ms, client_record_fn fn, void *ctx) PSL_MUST_USE;
/* Fetches a writer's records from..to from one server (server_pk), or from the first server to
 * answer (NULL). Records are delivered as the server sent them: verify before use. */
psl_err capsule_client_range(struct capsule_client *c, const uint8_t *server_pk,
                             const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to,
                             uint32_t timeout_ms, client_record_fn fn, void *ctx) PSL_MUST_USE;

struct fresh_head {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;              /* highest verified head among the answers */
    uint8_t hash[HASH_SIZE];
    unsigned reported_by;      /* servers whose answer reached this seq */
};

struct fresh_result {
    struct fresh_head *heads;  /* owned: free with fresh_result_free */
    size_t count;
    unsigned answers;          /* distinct replica-set servers that answered */
    bool lag_bound_met;        /* answers >= n - k + 1: no confirmed write can be missed */
    unsigned liars_tolerated;  /* largest f with answers >= n - k + f + 1 */
    unsigned claims_refuted;   /* heads claimed by a server that did not verify */
};

/* Freshness read (DESIGN §1, §5.6): asks every replica-set server for heads, waits for at
 * least answers_min signed answers (0: n - k + 1) or the timeout, takes the highest head per
 * writer whose record verifies (fetched by hash, certificate checked), and says which bound the
 * answers met. PSL_ERR_TIMEOUT when fewer than answers_min servers answered. */
psl_err capsule_client_fresh_heads(struct capsule_client *c, unsigned answers_min,
                                   uint32_t timeout_ms, struct fresh_result *out) PSL_MUST_USE;
void fresh_result_free(struct fresh_result *r);

struct fetch_summary {
    size_t writers;
    size_t records;          /* delivered to the callback */
    unsigned answers;        /* servers that answered the freshness read */
    bool lag_bound_met;      /* as in fresh_result */
    unsigned claims_refuted;
    bool complete;           /* every writer's records up to its fresh head were delivered */
};

/* Exports a capsule from its servers: a freshness read (answers_min as above), then every
 * writer's records 1..head by range, delivered to fn in seq order per writer (borrowed for the
 * call; fn returns false to stop). The records are not verified here: verify what fn receives
 * (chain_verify). PSL_ERR_TIMEOUT when the freshness read got too few answers. */
psl_err capsule_client_fetch_all(struct capsule_client *c, unsigned answers_min,
                                 uint32_t timeout_ms, client_record_fn fn, void *ctx,
                                 struct fetch_summary *out) PSL_MUST_USE;

#endif
