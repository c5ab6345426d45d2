/* inproc.c: the in-process bus, the fabric of the embedded default. One dispatcher thread
 * delivers messages in publish order to every matching subscription of every connection; the
 * queue is bounded in bytes and publishers wait while it is full, so a fast producer cannot
 * grow memory without limit. The dispatcher holds deliver_mu while a handler runs, which is how
 * unsubscribe guarantees that a handler is not running after it returns.
 *
 * Inline delivery (connections made with fabric_inproc_connect_inline): a message published
 * while the bus is quiet (the queue empty, no delivery under way, and no message published for
 * INLINE_QUIET_NS) is delivered on the publishing thread,
 * which then plays the dispatcher's part for that one message (busy, deliverer, deliver_mu), so
 * handlers still run one at a time and in publish order; messages published meanwhile queue up
 * for the dispatcher, which waits while busy. That saves the dispatcher's wake-up on an idle bus;
 * a stream of messages still goes through the dispatcher, so publishers under load keep their
 * own thread for their own work.
 * It is opt-in because the publishing thread then runs every handler: its caller must hold no
 * lock that a handler on the bus may take, and must not be a thread a handler waits for. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "fabric/fabric.h"

#define INLINE_QUIET_NS 200000u /* 200 us without a publish: the bus counts as idle */

struct inproc_msg {
    struct inproc_msg *next;
    size_t size;
    char topic[FABRIC_TOPIC_SIZE_MAX];
    uint8_t data[];
};

struct inproc_sub {
    struct inproc_sub *next;
    uint64_t id;
    struct inproc_conn *conn;
    char pattern[FABRIC_TOPIC_SIZE_MAX];
    fabric_handler handler;
    void *ctx;
};

struct inproc_bus {
    pthread_mutex_t mu; /* guards the queue and the subscription list */
    pthread_cond_t cv_nonempty;
    pthread_cond_t cv_space;    /* broadcast when a message leaves the queue or is delivered */
    pthread_mutex_t deliver_mu; /* held by the deliverer while a handler runs */
    pthread_t dispatcher;
    bool busy;           /* a message is being delivered (by the dispatcher or inline) */
    uint64_t last_publish_ns; /* clock_mono_ns of the latest publish */
    pthread_t deliverer; /* the thread delivering it, valid while busy */
    struct inproc_msg *head, *tail;
    size_t queued_bytes; /* data plus per-message overhead of the queued messages */
    size_t queue_bytes_max;
    uint64_t enqueued;  /* messages ever queued */
    uint64_t delivered; /* messages taken and delivered to every subscriber (a prefix) */
    struct inproc_sub *subs;
    uint64_t next_sub_id;
    bool stopping;
};

struct inproc_conn {
    struct fabric base;
    struct inproc_bus *bus;
    bool inline_ok; /* publishes may be delivered on the publishing thread (see the top) */
};

/* True on the thread delivering a message now (caller holds mu): it must not wait for itself. */
static bool on_deliverer(const struct inproc_bus *bus)
{
    return bus->busy && pthread_equal(pthread_self(), bus->deliverer);
}

/* Delivers one message to every matching subscription (caller holds mu and has set busy; mu is
 * dropped around each handler). The list may change while a handler runs (a handler may
 * subscribe or unsubscribe), so walk by id: find the next matching subscription with an id
 * above the last one delivered. */
static void deliver(struct inproc_bus *bus, const char *topic, const uint8_t *data, size_t size)
{
    uint64_t last = 0;
    for (;;) {
        struct inproc_sub *best = NULL;
        for (struct inproc_sub *s = bus->subs; s; s = s->next)
            if (s->id > last && (!best || s->id < best->id) && topic_matches(s->pattern, topic))
                best = s;
        if (!best)
            break;
        last = best->id;
        fabric_handler h = best->handler;
        void *ctx = best->ctx;
        pthread_mutex_lock(&bus->deliver_mu);
        pthread_mutex_unlock(&bus->mu);
        h(ctx, topic, data, size);
        pthread_mutex_unlock(&bus->deliver_mu);
        pthread_mutex_lock(&bus->mu);
    }
}

static void *inproc_dispatch(void *arg)
{
    struct inproc_bus *bus = arg;
    pthread_mutex_lock(&bus->mu);
    for (;;) {
        while ((!bus->head || bus->busy) && !bus->stopping)
            pthread_cond_wait(&bus->cv_nonempty, &bus->mu);
        if (!bus->head)
            break;
        if (bus->busy) { /* stopping, but an inline delivery is not done: wait for it */
            pthread_cond_wait(&bus->cv_nonempty, &bus->mu);
            continue;
        }
        struct inproc_msg *m = bus->head;
        bus->head = m->next;
        if (!bus->head)
            bus->tail = NULL;
        bus->queued_bytes -= sizeof *m + m->size;
        pthread_cond_broadcast(&bus->cv_space);
        bus->busy = true;
        bus->deliverer = pthread_self();
        deliver(bus, m->topic, m->data, m->size);
        bus->busy = false;
        free(m);
        bus->delivered++;
        pthread_cond_broadcast(&bus->cv_space); /* flush waits for this */
    }
    pthread_mutex_unlock(&bus->mu);
    return NULL;
}

psl_err inproc_bus_create(struct inproc_bus **out, size_t queue_bytes_max)
{
    struct inproc_bus *bus = calloc(1, sizeof *bus);
    if (!bus)
        return PSL_ERR_NOMEM;
    bus->queue_bytes_max = queue_bytes_max < FABRIC_MSG_SIZE_MAX ? FABRIC_MSG_SIZE_MAX : queue_bytes_max;
    bus->next_sub_id = 1;
    pthread_mutex_init(&bus->mu, NULL);
    pthread_mutex_init(&bus->deliver_mu, NULL);
    pthread_cond_init(&bus->cv_nonempty, NULL);
    pthread_cond_init(&bus->cv_space, NULL);
    if (pthread_create(&bus->dispatcher, NULL, inproc_dispatch, bus) != 0) {
        free(bus);
        return PSL_ERR_NOMEM;
    }
    *out = bus;
    return PSL_OK;
}

void inproc_bus_destroy(struct inproc_bus *bus)
{
    if (!bus)
        return;
    pthread_mutex_lock(&bus->mu);
    bus->stopping = true;
    pthread_cond_broadcast(&bus->cv_nonempty);
    pthread_mutex_unlock(&bus->mu);
    pthread_join(bus->dispatcher, NULL);
    PSL_ASSERT(bus->subs == NULL); /* every connection was destroyed first */
    pthread_mutex_destroy(&bus->mu);
    pthread_mutex_destroy(&bus->deliver_mu);
    pthread_cond_destroy(&bus->cv_nonempty);
    pthread_cond_destroy(&bus->cv_space);
    free(bus);
}

static psl_err inproc_publish(struct fabric *f, const char *topic, const uint8_t *data, size_t size)
{
    struct inproc_conn *c = (struct inproc_conn *)f;
    struct inproc_bus *bus = c->bus;
    if (size > FABRIC_MSG_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (!topic_is_valid(topic))
        return PSL_ERR_INVALID_ARG;
    if (c->inline_ok) {
        uint64_t now = clock_mono_ns();
        pthread_mutex_lock(&bus->mu);
        bool quiet = now - bus->last_publish_ns >= INLINE_QUIET_NS;
        bus->last_publish_ns = now;
        if (quiet && !bus->head && !bus->busy && !bus->stopping) {
            /* Idle bus: deliver here (the numbering keeps flush's prefix: nothing is queued
             * or in delivery, so every earlier message has been delivered). */
            bus->enqueued++;
            bus->busy = true;
            bus->deliverer = pthread_self();
            deliver(bus, topic, data, size);
            bus->busy = false;
            bus->delivered++;
            if (bus->head) /* published by handlers or other threads meanwhile */
                pthread_cond_signal(&bus->cv_nonempty);
            pthread_cond_broadcast(&bus->cv_space);
            pthread_mutex_unlock(&bus->mu);
            return PSL_OK;
        }
        pthread_mutex_unlock(&bus->mu);
    }
    struct inproc_msg *m = malloc(sizeof *m + size);
    if (!m)
        return PSL_ERR_NOMEM;
    m->next = NULL;
    m->size = size;
    strcpy(m->topic, topic);
    if (size)
        memcpy(m->data, data, size);
    pthread_mutex_lock(&bus->mu);
    /* Backpressure: wait for room, counting each message's overhead too (so that empty
     * messages cannot grow the queue without bound); an empty queue always admits one. A
     * handler publishing on the delivering thread must not wait for itself, so it may overfill
     * the queue. */
    bool self = on_deliverer(bus);
    bus->last_publish_ns = clock_mono_ns();
    size_t charge = sizeof *m + size;
    while (!self && !bus->stopping && bus->queued_bytes != 0 &&
           bus->queued_bytes + charge > bus->queue_bytes_max)
        pthread_cond_wait(&bus->cv_space, &bus->mu);
    if (bus->tail)
        bus->tail->next = m;
    else
        bus->head = m;
    bus->tail = m;
    bus->queued_bytes += charge;
    bus->enqueued++;
    pthread_cond_signal(&bus->cv_nonempty);
    pthread_mutex_unlock(&bus->mu);
    return PSL_OK;
}

static psl_err inproc_subscribe(struct fabric *f, const char *pattern, fabric_handler h, void *ctx,
                                uint64_t *sub_id)
{
    struct inproc_conn *c = (struct inproc_conn *)f;
    if (strnlen(pattern, FABRIC_TOPIC_SIZE_MAX) == FABRIC_TOPIC_SIZE_MAX || !*pattern)
        return PSL_ERR_INVALID_ARG;
    struct inproc_sub *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    strcpy(s->pattern, pattern);
    s->handler = h;
    s->ctx = ctx;
    s->conn = c;
    pthread_mutex_lock(&c->bus->mu);
    s->id = c->bus->next_sub_id++;
    s->next = c->bus->subs;
    c->bus->subs = s;
    pthread_mutex_unlock(&c->bus->mu);
    *sub_id = s->id;
    return PSL_OK;
}

/* Removes matching subscriptions (one id, or all of a connection when id is 0). */
static void inproc_remove(struct inproc_conn *c, uint64_t id)
{
    struct inproc_bus *bus = c->bus;
    pthread_mutex_lock(&bus->mu);
    struct inproc_sub **pp = &bus->subs;
    while (*pp) {
        struct inproc_sub *s = *pp;
        if (s->conn == c && (id == 0 || s->id == id)) {
            *pp = s->next;
            free(s);
        } else {
            pp = &s->next;
        }
    }
    bool self = on_deliverer(bus);
    pthread_mutex_unlock(&bus->mu);
    /* Wait out a handler that may still be running, unless we are that handler. */
    if (!self) {
        pthread_mutex_lock(&bus->deliver_mu);
        pthread_mutex_unlock(&bus->deliver_mu);
    }
}

static void inproc_unsubscribe(struct fabric *f, uint64_t sub_id)
{
    inproc_remove((struct inproc_conn *)f, sub_id);
}

static psl_err inproc_flush(struct fabric *f)
{
    struct inproc_bus *bus = ((struct inproc_conn *)f)->bus;
    /* Wait until everything queued before this call has been delivered to every matching
     * subscriber. (An empty queue is not enough: the deliverer may still be between the
     * subscribers of the last message it took.) A handler cannot wait for its own delivery. */
    pthread_mutex_lock(&bus->mu);
    if (on_deliverer(bus) || pthread_equal(pthread_self(), bus->dispatcher)) {
        pthread_mutex_unlock(&bus->mu);
        return PSL_OK;
    }
    uint64_t target = bus->enqueued;
    while (bus->delivered < target && !bus->stopping)
        pthread_cond_wait(&bus->cv_space, &bus->mu);
    pthread_mutex_unlock(&bus->mu);
    return PSL_OK;
}

static void inproc_destroy(struct fabric *f)
{
    struct inproc_conn *c = (struct inproc_conn *)f;
    inproc_remove(c, 0);
    free(c);
}

static const struct fabric_ops inproc_ops = {
    .publish = inproc_publish,
    .subscribe = inproc_subscribe,
    .unsubscribe = inproc_unsubscribe,
    .flush = inproc_flush,
    .destroy = inproc_destroy,
};

static psl_err conn_new(struct inproc_bus *bus, struct fabric **out, bool inline_ok)
{
    struct inproc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return PSL_ERR_NOMEM;
    c->base.ops = &inproc_ops;
    c->bus = bus;
    c->inline_ok = inline_ok;
    *out = &c->base;
    return PSL_OK;
}

psl_err fabric_inproc_connect(struct inproc_bus *bus, struct fabric **out)
{
    return conn_new(bus, out, false);
}

psl_err fabric_inproc_connect_inline(struct inproc_bus *bus, struct fabric **out)
{
    return conn_new(bus, out, true);
}
