/* enclave.h: the trusted worker (DESIGN §7): one enclave answers attestation, accepts one sealed
 * provisioning bundle, runs the SCL engine and the job's Lua lambda on it, flushes, and returns
 * the lambda's result signed and sealed to the client; a function enclave (a function bundle)
 * instead stays provisioned and answers sealed invocations one at a time (DESIGN §7.4). It talks to the untrusted host only
 * through two rings (src/ring/abi.h lists the messages). The same loop runs as the psl-enclave
 * process (confined by seccomp) or on threads of the host (thread mode). */
#ifndef PSL_ENCLAVE_ENCLAVE_H
#define PSL_ENCLAVE_ENCLAVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "ring/ring.h"

struct enclave_config {
    unsigned actors;     /* crypto actor threads (default 1: two cores are shared with the host) */
    bool confine;        /* install the seccomp allow-list after start-up (process mode) */
    bool redirect_logs;  /* send the enclave's log lines through the ring (process mode) */
    uint8_t tee_type;    /* evidence TEE type announced in HELLO (sim) */
    bool selftest_forbidden; /* after confining, try a forbidden system call (tests) */
};

/* Runs an enclave on rings rx (host to enclave) and tx (enclave to host), both borrowed, until
 * the host sends SHUTDOWN or closes its ring. Returns PSL_OK, or the error that stopped it
 * (start-up failures; a refused host message is answered and never stops the loop). */
psl_err enclave_run(struct ring *rx, struct ring *tx, const struct enclave_config *cfg);

/* ---- for the fuzz target: the dispatcher without threads or rings ---- */
struct enclave;
/* An enclave whose outgoing messages go to out(ctx, type, data, size) instead of a ring, with
 * keys but no runner threads. Destroy with enclave_test_destroy. */
psl_err enclave_test_create(struct enclave **out,
                            void (*sink)(void *ctx, uint32_t type, const uint8_t *data,
                                         size_t size),
                            void *ctx) PSL_MUST_USE;
/* Hands one host message (untrusted bytes, borrowed) to the dispatcher. */
void enclave_test_handle(struct enclave *e, uint32_t type, const uint8_t *data, size_t size);
void enclave_test_destroy(struct enclave *e);

#endif
