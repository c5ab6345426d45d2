/* server.h: the capsule server (psl-capsuled) as an embeddable component: the daemon runs it,
 * and the embedded default of later work runs it inside another process.
 * For each capsule it serves it subscribes to the record topic, verifies every record
 * (DESIGN §3.3) before storing it, stores it through group commit, and acknowledges durably
 * stored records with ACKs (a MAC for the writer, a signature for everyone: capsule/ack.h). An ACK for (writer, seq, hash) means the server holds every
 * record of that writer from 1 to seq, chained to hash: it acknowledges its contiguous head, so
 * one ACK can cover a whole batch. It answers requests (record by hash, a writer's seq range,
 * heads, metadata), and runs anti-entropy with the other servers of the replica set.
 * Collection: in a capsule with retention COLLECT_COVERED, a CHECKPOINT record from a writer
 * certified as compactor, newer than the last one applied, drops what it covers (store_collect).
 * From then on an ACK means "stored, or covered by the checkpoint", records below a writer's
 * collected horizon are acknowledged but not stored again, and a range request that reaches
 * below the horizon gets the applied CHECKPOINT record first (it explains the gap, and lets a
 * server that was behind rebase on it). */
#ifndef PSL_CAPSULED_SERVER_H
#define PSL_CAPSULED_SERVER_H

#include <stdint.h>

#include "fabric/fabric.h"
#include "store/store.h"

struct capsuled_config {
    const char *data_dir;
    const struct signer *key;    /* the server's identity (borrowed for the server's life) */
    struct fabric *fabric;       /* borrowed for the server's life */
    uint32_t commit_window_us;   /* extra group commit wait (0: none; appends arriving during a
                                  * commit still form the next batch) */
    size_t map_size_bytes;       /* LMDB map size (default 1 GiB) */
    uint32_t anti_entropy_ms;    /* heads gossip interval (default 500; 0 disables) */
    size_t pending_records_max;  /* records waiting for their writer's CERT (default 4096) */
    /* Test double for the freshness tests: report heads this many seqs behind the truth. */
    uint32_t stale_heads_by;
    /* Commit a record that reaches an idle store on the thread that received it (store.h
     * inline_when_idle): one thread wake less per lone record. Only for a fabric that gives
     * this server delivery threads of its own (NATS); on the in-process bus one dispatcher
     * serves every embedded server, and it would fsync for each of them in turn. */
    bool inline_commit;
};

struct capsuled_stats {
    struct store_stats store;
    uint64_t received;
    uint64_t accepted;
    uint64_t rejected[PSL_ERR__COUNT]; /* by reason */
    uint64_t acks_sent;
    uint64_t acks_unkeyed;        /* ACKs not sent: no certificate in memory, or no usable key */
    uint64_t requests;
    uint64_t requests_refused;
    uint64_t ae_fetched;          /* records obtained through anti-entropy */
    uint64_t duplicates;          /* records already stored when they arrived again */
    uint64_t pending;             /* records waiting for a CERT now */
    uint64_t commit_ns_p50, commit_ns_p99;
    uint64_t admitted;            /* capsules accepted at run time */
    uint64_t admissions_refused;  /* bad metadata, owner not admitted, or not a replica */
    /* Collection (CHECKPOINT records; docs/capsuledb.md "Collection"). */
    uint64_t checkpoints_applied;  /* newer checkpoints applied to a collecting capsule */
    uint64_t checkpoints_stale;    /* not newer than the last applied one: nothing collected */
    uint64_t checkpoints_kept;     /* stored in a keep-all capsule: nothing collected */
    uint64_t checkpoints_refused;  /* not from a compactor, or undecodable: not stored */
    uint64_t collected_records;    /* records dropped by applied checkpoints */
    uint64_t collected_bytes;
    uint64_t below_horizon;        /* records arriving below a writer's collected horizon */
};

struct capsuled;

psl_err capsuled_start(struct capsuled **out, const struct capsuled_config *cfg) PSL_MUST_USE;
/* Serves a capsule: verifies its metadata, requires this server to be in its replica set,
 * stores it, loads its writers' certificates from storage, and subscribes. Idempotent. */
psl_err capsuled_serve(struct capsuled *s, const uint8_t *meta_raw, size_t meta_size) PSL_MUST_USE;
/* Serves every capsule whose metadata this server stored before (a restarted server goes on
 * serving what it accepted). Capsules that no longer verify or list this server are skipped and
 * logged. *count (may be NULL) is how many are served. */
psl_err capsuled_serve_stored(struct capsuled *s, size_t *count) PSL_MUST_USE;
/* Accepts capsules at run time: owner-signed metadata published on CAPSULED_ADMIT_TOPIC is
 * served when its signature verifies, its owner is one of owners (count <= CAPSULED_OWNERS_MAX;
 * copied) and this server is in its replica set. Anything else is counted and dropped. */
#define CAPSULED_ADMIT_TOPIC "psl.admin.serve"
#define CAPSULED_OWNERS_MAX 64u
psl_err capsuled_admit(struct capsuled *s, const uint8_t (*owners)[SIGN_PK_SIZE],
                       size_t count) PSL_MUST_USE;
/* Unsubscribes everything, commits what is queued, closes storage. */
void capsuled_stop(struct capsuled *s);

void capsuled_get_stats(struct capsuled *s, struct capsuled_stats *out);
/* Prometheus text exposition of the stats; returns the length written (truncated to cap). */
size_t capsuled_metrics(struct capsuled *s, char *buf, size_t cap);

#endif
