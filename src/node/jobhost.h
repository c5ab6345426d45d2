/* jobhost.h: the host side of jobs (DESIGN §7.3, §7.4), for psl-node and the embedded
 * federation alike. A job here is the share of a client's job that runs on this host: N
 * enclaves taken from the pool, each asked for a report over the client's nonce, wrapped in
 * evidence signed by this host's (sim) platform key, then provisioned with the sealed bundles
 * the client sends back, relayed to the fabric while they run, and watched until each returns
 * its sealed result or dies. The host reads none of it: bundles, results and lambda log lines
 * are sealed to the enclave or to the client. Worker numbers here are slots 0..N-1 of this
 * host's share; `index` is the client's worker number, a label only. */
#ifndef PSL_NODE_JOBHOST_H
#define PSL_NODE_JOBHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "attest/evidence.h"
#include "capsuled/server.h"
#include "node/pool.h"

#define JOBHOST_ID_SIZE 16u
/* Workers of one job on one host, and kept jobs (finished ones are forgotten oldest first). */
#define JOBHOST_WORKERS_MAX 64u
#define JOBHOST_JOBS_MAX_DEFAULT 256u
/* Sealed lambda log lines kept per job (older ones are dropped; the count says how many). */
#define JOBHOST_LOG_LINES_MAX 1024u
#define JOBHOST_TIMEOUT_MS_DEFAULT 600000u
#define JOBHOST_TIMEOUT_MS_MAX (7u * 24 * 3600 * 1000)
#define JOBHOST_FUNCTION_NAME_SIZE_MAX 63u
#define JOBHOST_INVOKE_TIMEOUT_MS_DEFAULT 60000u

struct jobhost_config {
    struct pool *pool;             /* borrowed */
    const struct signer *platform; /* borrowed: the host's (sim) platform key */
    uint8_t measurement[HASH_SIZE];
    /* Optional: storage servers embedded in this host; each job's capsule is served by those
     * of them its replica set names. Both arrays borrowed, server_count entries. */
    struct capsuled *const *servers;
    const uint8_t (*server_pks)[SIGN_PK_SIZE];
    unsigned server_count;
    unsigned jobs_max;          /* default JOBHOST_JOBS_MAX_DEFAULT */
    uint32_t provision_wait_ms; /* from the attestation to the bundles (default 120000) */
    uint32_t step_timeout_ms;   /* a report, a READY (default 10000) */
    /* Optional: a job's enclave lines as they arrive (on an enclave's receive thread): sealed
     * ones (a lambda's psl.log, sealed to the client) or the enclave's own plaintext lines. */
    void (*on_log)(void *ctx, const uint8_t job_id[JOBHOST_ID_SIZE], unsigned index, bool sealed,
                   const uint8_t *data, size_t size);
    void *log_ctx;
};

enum jobhost_state { JOB_ATTESTING, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_STATE_COUNT };
enum jobhost_wstate {
    W_ATTESTING,    /* asking the enclave for its report */
    W_WAITING,      /* attested: waiting for the client's bundle */
    W_PROVISIONING, /* the bundle is being relayed; waiting for READY */
    W_RUNNING,      /* provisioned; the lambda runs */
    W_DONE,         /* its sealed result is here */
    W_FAILED,       /* no result will come: error says why */
    W_STATE_COUNT
};
const char *jobhost_state_name(enum jobhost_state s);
const char *jobhost_wstate_name(enum jobhost_wstate s);

struct jobhost;

/* The pool's log callbacks (pool_config.on_log / on_sealed_log, any log_ctx): they route the
 * lines of a taken enclave to its job. */
void jobhost_on_log(void *ctx, void *owner, const char *name, const char *line, size_t size);
void jobhost_on_sealed_log(void *ctx, void *owner, const char *name, const uint8_t *sealed,
                           size_t size);

psl_err jobhost_open(struct jobhost **out, const struct jobhost_config *cfg) PSL_MUST_USE;
/* Stops every job's enclaves and forgets every job. */
void jobhost_close(struct jobhost *jh);

/* An attestation message for one slot; size 0 when the enclave gave no report (why says). */
struct jobhost_attestation {
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t size;
    char why[160];
};

struct jobhost_create {
    const uint8_t *meta; /* the capsule's signed metadata (untrusted bytes: decoded here) */
    size_t meta_size;
    unsigned workers;                        /* 1..JOBHOST_WORKERS_MAX */
    const uint8_t (*nonces)[ATTEST_NONCE_SIZE]; /* workers entries: the client's */
    const unsigned *indices;                 /* optional labels (client worker numbers) */
    uint32_t timeout_ms;                     /* from the first bundle (0: default) */
    /* Optional: a deployed function's name (DESIGN §7.4; 1..JOBHOST_FUNCTION_NAME_SIZE_MAX
     * bytes, unique among the node's live functions: PSL_ERR_EXISTS). Its single enclave is
     * provisioned like a job's worker and then serves jobhost_invoke until it dies or the
     * function is stopped; no time limit applies once it runs. */
    const char *function;
};

/* Creates a job: decodes and verifies the metadata (PSL_ERR_* of meta_decode), serves the
 * capsule on the embedded servers it names, takes the enclaves (PSL_ERR_BUSY, PSL_ERR_TIMEOUT:
 * none free), and attests them. out[workers] gets one attestation per slot. why[why_cap] says
 * what went wrong on failure. Blocks for the reports (a few ms each). */
psl_err jobhost_create(struct jobhost *jh, const struct jobhost_create *jc,
                       uint8_t id[JOBHOST_ID_SIZE], struct jobhost_attestation *out, char *why,
                       size_t why_cap) PSL_MUST_USE;

/* Queues sealed bundles for relaying: bundles[slot] (size sizes[slot]), NULL for a slot not
 * given in this call. Copied. Errors: PSL_ERR_NOT_FOUND (no such job), PSL_ERR_INVALID_ARG
 * (count is not the job's workers), PSL_ERR_EXISTS (a slot given is not waiting for its bundle:
 * given before, failed, or the job ended); nothing is queued on error. why says which slot. */
psl_err jobhost_provision(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE],
                          const uint8_t *const *bundles, const size_t *sizes, unsigned count,
                          char *why, size_t why_cap) PSL_MUST_USE;

/* Fails a slot still waiting for its bundle (the client refused its attestation): its enclave is
 * stopped with the job. PSL_OK also when the slot had already ended; PSL_ERR_EXISTS when it is
 * being provisioned or runs; PSL_ERR_NOT_FOUND, PSL_ERR_INVALID_ARG (no such slot). */
psl_err jobhost_cancel(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE], unsigned slot,
                       const char *why) PSL_MUST_USE;

struct jobhost_worker_status {
    unsigned index;
    enum jobhost_wstate state;
    char error[192];
    psl_err error_code; /* W_FAILED: PSL_ERR_PEER_DEAD, PSL_ERR_TIMEOUT, a refusal, ... */
    uint64_t stats[RING_STATS_COUNT];
    psl_err job_err;   /* W_DONE: the job's error as the enclave reported it */
    uint8_t *result;   /* W_DONE and asked for: the sealed result (owned copy) */
    size_t result_size;
};

struct jobhost_log_line {
    unsigned index;
    uint8_t *sealed; /* owned copy */
    size_t size;
};

struct jobhost_status {
    uint8_t id[JOBHOST_ID_SIZE];
    uint8_t capsule[HASH_SIZE];
    enum jobhost_state state;
    unsigned workers;
    struct jobhost_worker_status *w; /* workers entries, owned */
    double elapsed_s; /* since creation (to the end once ended) */
    double run_s;     /* since the first bundle (to the end once ended) */
    struct jobhost_log_line *logs;   /* sealed log lines from log_from on, owned */
    size_t log_count;
    uint64_t log_next;               /* the sequence number after the last line returned */
    uint64_t log_dropped;            /* lines dropped before log_from could see them */
};

/* A snapshot of a job. Sealed results are copied when with_results; sealed log lines from
 * sequence number log_from on, at most log_max of them. PSL_ERR_NOT_FOUND: no such job. */
psl_err jobhost_status(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE], bool with_results,
                       uint64_t log_from, size_t log_max,
                       struct jobhost_status *out) PSL_MUST_USE;
void jobhost_status_free(struct jobhost_status *s);

/* Relays one sealed invocation (id: the invocation id the client chose) to the live function
 * name and waits for the answer (enclave_host_invoke). PSL_OK with *inv_err and *result (sealed,
 * malloc'd, caller frees; size 0 when the enclave refused) and, when job_id is not NULL, the
 * function's job id; PSL_ERR_NOT_FOUND (no such live function), PSL_ERR_EXISTS (it is not
 * provisioned yet), PSL_ERR_BUSY (an invocation is running), PSL_ERR_TIMEOUT, PSL_ERR_PEER_DEAD.
 * why[why_cap] says what went wrong. */
psl_err jobhost_invoke(struct jobhost *jh, const char *name, const uint8_t id[16],
                       const uint8_t *sealed, size_t size, uint32_t timeout_ms, psl_err *inv_err,
                       uint8_t **result, size_t *result_size, uint8_t job_id[JOBHOST_ID_SIZE],
                       char *why, size_t why_cap) PSL_MUST_USE;
/* Stops the live function name: its enclave is released and the job ends (failed: "stopped").
 * PSL_ERR_NOT_FOUND when there is none. */
psl_err jobhost_function_stop(struct jobhost *jh, const char *name) PSL_MUST_USE;

/* The signed metadata of a capsule some kept job ran on (for exports); PSL_ERR_NOT_FOUND. */
psl_err jobhost_capsule_meta(struct jobhost *jh, const uint8_t name[HASH_SIZE], uint8_t *out,
                             size_t cap, size_t *out_size) PSL_MUST_USE;

struct jobhost_stats {
    unsigned jobs[JOB_STATE_COUNT];       /* kept jobs by state */
    uint64_t jobs_created, jobs_done, jobs_failed;
    uint64_t workers_failed;              /* workers that ended without a result */
    uint64_t provision_refused;           /* bundles an enclave refused */
    uint64_t ops, records, bytes;         /* ended workers plus running ones */
    uint64_t relay_dropped;               /* ended workers only */
    uint64_t attest_ns_sum, attest_count; /* jobhost_create's attestation phase */
    uint64_t run_ns_sum, run_count;       /* first bundle to the end, ended jobs */
};
void jobhost_get_stats(struct jobhost *jh, struct jobhost_stats *out);

#endif
