/* scl_host.h: the host side of one SCL engine in thread mode (DESIGN §7.1: the same engine loop
 * on threads of the host process, for benchmarks, tests and whole-VM TEEs). It relays between the
 * engine and a fabric: records, ACKs of the engine's writer and server replies go in; the
 * engine's records and requests go out; crypto actor threads seal; a ticker drives timers.
 * The host is untrusted in the design: everything it passes in is verified by the engine. */
#ifndef PSL_NODE_SCL_HOST_H
#define PSL_NODE_SCL_HOST_H

#include "fabric/fabric.h"
#include "scl/engine.h"

struct scl_host_config {
    struct fabric *fabric;   /* borrowed for the host's life */
    unsigned actors;         /* crypto actor threads (default 1) */
    uint32_t tick_ms;        /* timer resolution (default 5) */
    /* Optional: called for every fork alert (from a host thread). */
    void (*on_alert)(void *ctx, const struct scl_action *a);
    void *alert_ctx;
};

struct scl_host;

/* Starts relaying for engine e (borrowed; it must outlive the host). */
psl_err scl_host_start(struct scl_host **out, struct scl_engine *e,
                       const struct scl_host_config *cfg) PSL_MUST_USE;
/* Stops the threads and unsubscribes; the engine stays usable (and idle). */
void scl_host_stop(struct scl_host *h);
/* Wakes the actors at once (after local puts), instead of at the next tick. */
void scl_host_kick(struct scl_host *h);
/* After a local put that found the queue empty: scl_runner_kick_put (src/scl/runner.h). */
void scl_host_kick_put(struct scl_host *h);

#endif
