/* enclave_host.h: the untrusted host side of one enclave (DESIGN §7.1). It starts psl-enclave
 * as a child process with a ring channel (or runs the enclave loop on a thread: thread mode),
 * relays between the rings and the fabric once the enclave is provisioned (records, ACKs and
 * replies in; records and requests out), and turns the enclave's messages into events the
 * orchestrator waits for: the attestation report, readiness, progress, the sealed result, and
 * the enclave's death. It never sees a secret: what it relays is sealed or encrypted. */
#ifndef PSL_NODE_ENCLAVE_HOST_H
#define PSL_NODE_ENCLAVE_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto/crypto.h"
#include "fabric/fabric.h"
#include "ring/abi.h"

struct enclave_host_config {
    const char *enclave_path; /* the psl-enclave binary; NULL runs the enclave on a thread */
    unsigned actors;          /* crypto actors inside the enclave (default 1) */
    bool no_confine;          /* process mode: skip seccomp (debugging) */
    bool selftest_seccomp;    /* process mode: the enclave tries a forbidden call (tests) */
    uint32_t ring_capacity;   /* bytes per ring (default PSL_RING_CAPACITY_DEFAULT) */
    const char *name;         /* for logs, e.g. "w3" (copied, truncated to 31 bytes) */
    /* Optional: called from the host's receive thread for every LOG line of the enclave. */
    void (*on_log)(void *ctx, const char *name, const char *line, size_t size);
    /* Optional: lambda log lines arrive sealed to the client (the host cannot read them); this
     * gets them as they came, for the client to open. */
    void (*on_sealed_log)(void *ctx, const char *name, const uint8_t *sealed, size_t size);
    void *log_ctx;
    /* Optional (tests): every message across the boundary, as the host sees it; dir 0 is to the
     * enclave, 1 from it. */
    void (*on_tap)(void *ctx, int dir, uint32_t type, const uint8_t *data, size_t size);
    void *tap_ctx;
};

struct enclave_report {
    uint8_t report_data[64];
    uint8_t sign_pk[SIGN_PK_SIZE];
    uint8_t kx_pk[KX_PK_SIZE];
};

struct enclave_host;

/* Starts an enclave and waits (up to timeout_ms) for its HELLO. fabric is borrowed for the
 * host's life. Errors: PSL_ERR_IO (spawn), PSL_ERR_TIMEOUT, PSL_ERR_PEER_DEAD (it died). */
psl_err enclave_host_start(struct enclave_host **out, const struct enclave_host_config *cfg,
                           struct fabric *fabric, int timeout_ms) PSL_MUST_USE;
/* Asks for a report binding the enclave's keys to nonce and waits for it. */
psl_err enclave_host_report(struct enclave_host *h, const uint8_t nonce[32],
                            struct enclave_report *out, int timeout_ms) PSL_MUST_USE;
/* Hands the sealed bundle to the enclave and waits for READY (then relaying starts) or for its
 * refusal, whose one-line reason goes to why[why_cap]. */
psl_err enclave_host_provision(struct enclave_host *h, const uint8_t *sealed, size_t size,
                               char *why, size_t why_cap, int timeout_ms) PSL_MUST_USE;
/* Waits for the job's sealed result. *job_err is the job's psl_err as the enclave reported it;
 * *sealed (malloc'd, caller frees) is what only the client can open. PSL_ERR_PEER_DEAD when the
 * enclave died first (enclave_host_exit_reason says how). */
psl_err enclave_host_wait_result(struct enclave_host *h, int timeout_ms, psl_err *job_err,
                                 uint8_t **sealed, size_t *sealed_size) PSL_MUST_USE;
/* The newest progress counters (RING_STAT_*), zeros before the first report. */
void enclave_host_stats(struct enclave_host *h, uint64_t out[RING_STATS_COUNT]);
/* The enclave's writer id (valid after provisioning). */
const uint8_t *enclave_host_writer(const struct enclave_host *h);
/* True once the enclave process (or thread) has ended. */
bool enclave_host_dead(struct enclave_host *h);
/* A one-line description of how the enclave ended ("exited 0", "killed by SIGSYS (seccomp: a
 * forbidden system call)", ...), or "" while it runs. */
const char *enclave_host_exit_reason(struct enclave_host *h);
/* The last ERROR the enclave sent (refused host messages), or "". */
const char *enclave_host_last_error(struct enclave_host *h);
/* Messages from the fabric dropped because the enclave's inbound ring was full (the fabric may
 * drop; SCL re-fetches), and ERROR messages received. */
uint64_t enclave_host_relay_dropped(struct enclave_host *h);
/* Leader enclaves: asks the leader for a fresh nonce for worker's evidence. */
psl_err enclave_host_leader_nonce(struct enclave_host *h, uint32_t worker, uint8_t nonce[32],
                                  int timeout_ms) PSL_MUST_USE;
/* Hands worker's attestation message to the leader and waits for the worker's sealed bundle
 * (*sealed malloc'd, caller frees) or the leader's refusal (why). */
psl_err enclave_host_leader_issue(struct enclave_host *h, uint32_t worker, const uint8_t *msg,
                                  size_t msg_size, uint8_t **sealed, size_t *sealed_size,
                                  char *why, size_t why_cap, int timeout_ms) PSL_MUST_USE;
/* Function enclaves: hands one sealed invocation (untrusted to the host: it only relays) with
 * its id to the enclave and waits for its answer. PSL_OK with *inv_err (the enclave's verdict:
 * PSL_OK or the handler's error with a sealed result in *result, malloc'd, caller frees; or a
 * refusal such as PSL_ERR_BUSY, PSL_ERR_AUTH, PSL_ERR_REPLAY with *result_size 0); otherwise
 * PSL_ERR_TIMEOUT or PSL_ERR_PEER_DEAD. One invocation at a time per host. */
psl_err enclave_host_invoke(struct enclave_host *h, const uint8_t id[16], const uint8_t *sealed,
                            size_t size, psl_err *inv_err, uint8_t **result, size_t *result_size,
                            int timeout_ms) PSL_MUST_USE;
/* Sends a raw message to the enclave (tests: garbage must be refused, never crash it). */
psl_err enclave_host_send_raw(struct enclave_host *h, uint32_t type, const uint8_t *data,
                              size_t size) PSL_MUST_USE;
/* Asks the enclave to stop, waits up to timeout_ms, kills it if it does not, and frees h. */
void enclave_host_stop(struct enclave_host *h, int timeout_ms);

#endif
