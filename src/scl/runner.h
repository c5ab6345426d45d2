/* runner.h: the threads that drive one SCL engine: crypto actor threads that seal while there is
 * work, and a ticker that drives the engine's timers. The engine's actions go to an emit
 * callback, so the same runner serves the thread-mode host (actions to a fabric) and the enclave
 * (actions to the outbound ring). Threads are created once, before any engine exists, and an
 * engine is attached later: an enclave creates its threads before it confines itself with
 * seccomp, and provisioning (which creates the engine) comes after. */
#ifndef PSL_SCL_RUNNER_H
#define PSL_SCL_RUNNER_H

#include "scl/engine.h"

struct scl_runner_config {
    unsigned actors;  /* crypto actor threads (default 1; at most 16) */
    uint32_t tick_ms; /* timer resolution (default 5) */
    /* Receives every action of the attached engine, in the engine's order, from one runner
     * thread at a time. The action's data is borrowed for the call (the runner frees it). */
    void (*emit)(void *ctx, const struct scl_action *a);
    void *ctx;
};

struct scl_runner;

/* Starts the threads, idle until an engine is attached. */
psl_err scl_runner_start(struct scl_runner **out, const struct scl_runner_config *cfg) PSL_MUST_USE;
/* Attaches engine e (borrowed until detached; NULL detaches). Returns once no runner thread
 * uses the previous engine any more, so the caller may destroy it afterwards. */
void scl_runner_attach(struct scl_runner *r, struct scl_engine *e);
/* Wakes the actors now (after local puts or incoming messages) instead of at the next tick. */
void scl_runner_kick(struct scl_runner *r);
/* After a put that found the queue empty (scl_wants_kick): if every actor sleeps and puts had
 * paused (no such call for 200 us), seals the queued operations on the calling thread at once
 * (a batch of one, as an idle engine sends), saving the actor's wake-up on the latency of an
 * isolated write; otherwise the same as scl_runner_kick, so that batches form under load. */
void scl_runner_kick_put(struct scl_runner *r);
/* Emits every pending action of the attached engine now, on the calling thread. */
void scl_runner_drain(struct scl_runner *r);
/* scl_get for callers that may block (lambdas, tests, benchmarks): while the engine answers
 * PSL_ERR_BUSY (a CapsuleDB block or checkpoint recovery is under way), emits its requests and
 * waits for the next kick (the host kicks on every reply) or tick, up to timeout_ms.
 * Errors: those of scl_get, PSL_ERR_TIMEOUT, PSL_ERR_CLOSED (no engine attached). */
psl_err scl_runner_get(struct scl_runner *r, const uint8_t *key, size_t key_size, uint8_t *out,
                       size_t cap, size_t *size, uint32_t timeout_ms) PSL_MUST_USE;
/* Stops and joins the threads; the engine (if any) stays usable. NULL is a no-op. */
void scl_runner_stop(struct scl_runner *r);

#endif
