/* federation.h: the embedded default (DESIGN §2, §10): a whole federation in one process tree.
 * An in-process bus is the fabric; storage servers run embedded, each with its own key and
 * database under the data directory; enclaves are psl-enclave processes (sim TEE) started by
 * this process, which plays the host. The client role lives here too: it owns the capsule's
 * owner key, verifies each enclave's evidence, issues its certificate, seals its provisioning,
 * and opens and verifies each worker's sealed result. Every protocol step of a real deployment
 * runs; only the places of the parties differ. */
#ifndef PSL_NODE_FEDERATION_H
#define PSL_NODE_FEDERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "ring/abi.h"

struct fed_config {
    const char *data_dir;     /* keys and server databases (created when missing) */
    const char *enclave_path; /* psl-enclave; NULL runs enclaves on threads (thread mode) */
    unsigned servers;         /* storage servers (default 3) */
    unsigned quorum_k;        /* acks for durability (default 2) */
    unsigned actors;          /* crypto actors per enclave (default 1) */
    /* Optional: enclave log lines (the lambdas' psl.log and print). */
    void (*on_log)(void *ctx, const char *worker, const char *line, size_t size);
    void *log_ctx;
    /* Optional (tests): every message across every enclave boundary as the host sees it
     * (enclave_host_config.on_tap), and every message on the fabric. */
    void (*on_tap)(void *ctx, int dir, uint32_t type, const uint8_t *data, size_t size);
    void (*on_fabric_tap)(void *ctx, const char *topic, const uint8_t *data, size_t size);
    void *tap_ctx;
};

struct fed_job_config {
    const char *name;       /* the script's name, for chunk names and the capsule label */
    const uint8_t *script;  /* Lua source (borrowed) */
    size_t script_size;
    const uint8_t *args;    /* given to every worker's main (may be NULL) */
    size_t args_size;
    unsigned workers;       /* 1..PSL_WORKERS_MAX of the CLI */
    uint64_t mem_bytes;     /* per worker; 0: default */
    uint64_t insn_budget;   /* per worker; 0: default */
    uint32_t timeout_ms;    /* whole job (0: none) */
    /* Optional: called about every 250 ms while the job runs with the summed counters. */
    void (*on_progress)(void *ctx, const uint64_t stats[RING_STATS_COUNT], unsigned done,
                        unsigned workers, double elapsed_s);
    void *progress_ctx;
};

struct fed_worker_result {
    unsigned worker;
    bool ok;              /* the lambda returned (its result is JSON text) */
    bool verified;        /* the sealed result opened and its signature and cert verified */
    psl_err err;          /* why not ok or not verified */
    char *text;           /* JSON text of main's result, or the error message (owned) */
    char why[256];        /* a host-side reason (the enclave died, provisioning refused, ...) */
    uint64_t stats[RING_STATS_COUNT];
};

struct fed_job_report {
    uint8_t capsule[HASH_SIZE];
    char export_path[1024];   /* the capsule exported from the servers after the job */
    char key_path[1024];      /* its capsule key (0600), for `psl capsule verify --key` */
    unsigned workers;
    struct fed_worker_result *results; /* workers entries, owned */
    uint64_t records, ops, bytes;      /* sealed by the workers */
    bool durable;             /* every worker's records acknowledged by k servers */
    uint64_t acks;            /* ACKs the servers sent */
    bool chain_verified;      /* the export verifies: signatures, chains, no fork, decrypts */
    size_t chain_records;
    size_t forks;
    bool lag_bound_met;       /* the export's freshness read had n-k+1 answers */
    double elapsed_s;         /* from the first spawn to the last result */
    double run_s;             /* from the last provisioning to the last result */
    char tee[64];             /* "sim (simulation: no hardware protection)" */
};

struct fed;

/* Opens the data directory (creating keys and server databases on first use) and starts the
 * bus and the servers. Errors name the path in the log. */
psl_err fed_open(struct fed **out, const struct fed_config *cfg) PSL_MUST_USE;
void fed_close(struct fed *f);

/* Runs one job: a new capsule (owner key of the data directory, the servers as replica set,
 * the enclave's measurement as policy), one enclave per worker attested and provisioned, every
 * worker's main, their flushes, then the capsule exported and verified. Returns PSL_OK when the
 * report was produced (look at its fields for the outcome), or the error that prevented it. */
psl_err fed_run_job(struct fed *f, const struct fed_job_config *jc,
                    struct fed_job_report *out) PSL_MUST_USE;
void fed_job_report_free(struct fed_job_report *r);

#endif
