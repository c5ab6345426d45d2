/* fabric.h: the untrusted pub/sub interface (DESIGN §8). A fabric may lose, duplicate, delay
 * and reorder messages; nothing received from it is trusted, every message is authenticated by
 * its receiver. Backends: an in-process bus (the embedded default), NATS through libnats, and a
 * fault-injecting wrapper around either.
 * Topics are dot-separated tokens; patterns use NATS wildcards: `*` matches one token, `>` the
 * rest. Handlers run on a backend thread, may publish, and must not block for long. A message
 * and its topic are borrowed for the duration of the handler call only. */
#ifndef PSL_FABRIC_FABRIC_H
#define PSL_FABRIC_FABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"
#include "crypto/crypto.h"

/* Largest message the fabric carries: a maximal record plus a request envelope. */
#define FABRIC_MSG_SIZE_MAX PSL_MSG_SIZE_MAX
#define FABRIC_TOPIC_SIZE_MAX 192u

typedef void (*fabric_handler)(void *ctx, const char *topic, const uint8_t *data, size_t size);

struct fabric;
struct fabric_ops {
    psl_err (*publish)(struct fabric *f, const char *topic, const uint8_t *data, size_t size);
    psl_err (*subscribe)(struct fabric *f, const char *pattern, fabric_handler h, void *ctx,
                         uint64_t *sub_id);
    /* After return the handler is not running and will not be called again (unless called from
     * inside that handler, where it only stops future calls). */
    void (*unsubscribe)(struct fabric *f, uint64_t sub_id);
    /* Pushes out anything buffered; returns when the backend has sent it (or an error). */
    psl_err (*flush)(struct fabric *f);
    void (*destroy)(struct fabric *f);
};

struct fabric {
    const struct fabric_ops *ops;
};

static inline psl_err fabric_publish(struct fabric *f, const char *topic, const uint8_t *data,
                                     size_t size)
{
    return f->ops->publish(f, topic, data, size);
}
static inline psl_err fabric_subscribe(struct fabric *f, const char *pattern, fabric_handler h,
                                       void *ctx, uint64_t *sub_id)
{
    return f->ops->subscribe(f, pattern, h, ctx, sub_id);
}
static inline void fabric_unsubscribe(struct fabric *f, uint64_t sub_id)
{
    f->ops->unsubscribe(f, sub_id);
}
static inline psl_err fabric_flush(struct fabric *f)
{
    return f->ops->flush(f);
}
static inline void fabric_destroy(struct fabric *f)
{
    if (f)
        f->ops->destroy(f);
}

/* True when topic matches pattern (NATS rules). Both are bounded by FABRIC_TOPIC_SIZE_MAX. */
bool topic_matches(const char *pattern, const char *topic);
/* True for a well-formed topic: non-empty tokens of [A-Za-z0-9_-], no wildcards. */
bool topic_is_valid(const char *topic);

/* Topic names of DESIGN §8; out holds FABRIC_TOPIC_SIZE_MAX bytes. suffix may be NULL. */
void topic_capsule(char *out, const uint8_t capsule[HASH_SIZE], const char *kind,
                   const char *suffix);

/* ---- in-process bus ---- */
struct inproc_bus;
/* A bus delivers on its own dispatcher thread, in publish order, to every matching subscriber
 * of every connection. queue_bytes_max bounds buffered messages: publishers block (backpressure)
 * while it is full. */
psl_err inproc_bus_create(struct inproc_bus **out, size_t queue_bytes_max) PSL_MUST_USE;
/* Stops the dispatcher after the queue drains. All connections must be destroyed first. */
void inproc_bus_destroy(struct inproc_bus *bus);
psl_err fabric_inproc_connect(struct inproc_bus *bus, struct fabric **out) PSL_MUST_USE;
/* The same, but a message this connection publishes while the bus is idle (nothing queued,
 * nothing being delivered) is delivered on the publishing thread before publish returns, in
 * the same order and one handler at a time, which saves the dispatcher's wake-up. Only for
 * publishers that hold no lock a handler on the bus may take and that no handler waits for
 * (the thread-mode SCL host's runner threads: src/node/scl_host.h). */
psl_err fabric_inproc_connect_inline(struct inproc_bus *bus, struct fabric **out) PSL_MUST_USE;

/* ---- NATS ---- */
/* Connects to a nats-server (url like nats://127.0.0.1:4222); name shows in server monitoring.
 * Reconnects by itself; messages published while disconnected may be lost (SCL copes). */
psl_err fabric_nats_connect(const char *url, const char *name, struct fabric **out) PSL_MUST_USE;

/* ---- fault injection (tests and simulation) ---- */
struct fabric_faults {
    uint64_t seed;
    double loss;        /* probability a published message is dropped */
    double duplicate;   /* probability it is delivered twice */
    double delay;       /* probability it is held back (which reorders it) */
    uint32_t delay_ms_max;
};
/* Wraps inner (taken: destroyed with the wrapper). Faults apply to publishes made through the
 * wrapper. Deterministic for a seed and a sequence of publishes. */
psl_err fabric_faulty_wrap(struct fabric *inner, const struct fabric_faults *faults,
                           struct fabric **out) PSL_MUST_USE;

#endif
