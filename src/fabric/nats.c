/* nats.c: the fabric over NATS (libnats against a nats-server). Subscriptions are asynchronous:
 * libnats calls the handler on its delivery thread for that subscription. A slow subscriber's
 * backlog is bounded by libnats' pending limits; beyond them messages are dropped, which the
 * protocol above tolerates like any other loss.
 * libnats may still run (or be about to run) a handler after natsSubscription_Unsubscribe
 * returns; its completion callback says when the handler has returned for the last time. So
 * unsubscribe waits for that completion (unless called from the handler itself), and a
 * subscription's state is freed by whichever of unsubscribe and completion comes last. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "fabric/fabric.h"

struct nats_sub {
    struct nats_sub *next;
    uint64_t id;
    natsSubscription *sub;
    fabric_handler handler;
    void *ctx;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    bool completed; /* libnats will not call the handler again */
    int refs;       /* the owner (until unsubscribed) and libnats (until completed) */
    bool in_handler;
    pthread_t dlv_thread; /* valid while in_handler */
};

struct nats_conn {
    struct fabric base;
    natsConnection *nc;
    pthread_mutex_t mu; /* guards subs */
    struct nats_sub *subs;
    uint64_t next_id;
};

static pthread_once_t nats_once = PTHREAD_ONCE_INIT;
static natsStatus nats_open_status;

static void nats_lib_open(void)
{
    nats_open_status = nats_Open(-1);
}

static void nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct nats_sub *s = closure;
    int len = natsMsg_GetDataLength(msg);
    if (len >= 0) { /* oversized messages reach the handler too: its decoder refuses and counts them */
        pthread_mutex_lock(&s->mu);
        s->in_handler = true;
        s->dlv_thread = pthread_self();
        pthread_mutex_unlock(&s->mu);
        s->handler(s->ctx, natsMsg_GetSubject(msg), (const uint8_t *)natsMsg_GetData(msg),
                   (size_t)len);
        pthread_mutex_lock(&s->mu);
        s->in_handler = false;
        pthread_mutex_unlock(&s->mu);
    }
    natsMsg_Destroy(msg);
}

static void nats_sub_release(struct nats_sub *s)
{
    pthread_mutex_lock(&s->mu);
    int refs = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (refs > 0)
        return;
    natsSubscription_Destroy(s->sub);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* From libnats' delivery thread, after the handler returned for the last time. */
static void nats_on_complete(void *closure)
{
    struct nats_sub *s = closure;
    pthread_mutex_lock(&s->mu);
    s->completed = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    nats_sub_release(s);
}

static psl_err nats_publish(struct fabric *f, const char *topic, const uint8_t *data, size_t size)
{
    struct nats_conn *c = (struct nats_conn *)f;
    if (size > FABRIC_MSG_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (!topic_is_valid(topic))
        return PSL_ERR_INVALID_ARG;
    natsStatus s = natsConnection_Publish(c->nc, topic, data, (int)size);
    return s == NATS_OK ? PSL_OK : PSL_ERR_IO;
}

static psl_err nats_subscribe(struct fabric *f, const char *pattern, fabric_handler h, void *ctx,
                              uint64_t *sub_id)
{
    struct nats_conn *c = (struct nats_conn *)f;
    struct nats_sub *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    s->handler = h;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->refs = 2;
    natsStatus st = natsConnection_Subscribe(&s->sub, c->nc, pattern, nats_on_msg, s);
    if (st != NATS_OK) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return PSL_ERR_IO;
    }
    /* This fails only for a subscription that is closed already (its connection closed).
     * Then no completion will tell when a handler started before the close has returned, so s
     * cannot be freed safely: it is left allocated (a few bytes, on a dead connection). */
    if (natsSubscription_SetOnCompleteCB(s->sub, nats_on_complete, s) != NATS_OK) {
        natsSubscription_Destroy(s->sub);
        return PSL_ERR_IO;
    }
    /* Generous backlog limits: a burst of records must not be dropped at the subscriber. */
    natsSubscription_SetPendingLimits(s->sub, 1 << 20, 1 << 30);
    pthread_mutex_lock(&c->mu);
    s->id = c->next_id++;
    s->next = c->subs;
    c->subs = s;
    pthread_mutex_unlock(&c->mu);
    *sub_id = s->id;
    return PSL_OK;
}

static void nats_sub_free(struct nats_sub *s)
{
    /* Unsubscribe stops deliveries (it closes the subscription even when the server cannot be
     * told); then wait until the handler has returned for the last time, unless we are that
     * handler: its completion comes after it returns. */
    natsSubscription_Unsubscribe(s->sub);
    pthread_mutex_lock(&s->mu);
    bool from_handler = s->in_handler && pthread_equal(s->dlv_thread, pthread_self());
    while (!from_handler && !s->completed)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    nats_sub_release(s);
}

static void nats_unsubscribe(struct fabric *f, uint64_t sub_id)
{
    struct nats_conn *c = (struct nats_conn *)f;
    pthread_mutex_lock(&c->mu);
    struct nats_sub **pp = &c->subs, *found = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == sub_id) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (found)
        nats_sub_free(found);
}

static psl_err nats_flush(struct fabric *f)
{
    struct nats_conn *c = (struct nats_conn *)f;
    return natsConnection_FlushTimeout(c->nc, 10000) == NATS_OK ? PSL_OK : PSL_ERR_IO;
}

static void nats_destroy(struct fabric *f)
{
    struct nats_conn *c = (struct nats_conn *)f;
    natsConnection_FlushTimeout(c->nc, 2000);
    while (c->subs) {
        struct nats_sub *s = c->subs;
        c->subs = s->next;
        nats_sub_free(s);
    }
    natsConnection_Close(c->nc);
    natsConnection_Destroy(c->nc);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static const struct fabric_ops nats_ops = {
    .publish = nats_publish,
    .subscribe = nats_subscribe,
    .unsubscribe = nats_unsubscribe,
    .flush = nats_flush,
    .destroy = nats_destroy,
};

psl_err fabric_nats_connect(const char *url, const char *name, struct fabric **out)
{
    pthread_once(&nats_once, nats_lib_open);
    if (nats_open_status != NATS_OK)
        return PSL_ERR_IO;
    natsOptions *opts = NULL;
    struct nats_conn *c = calloc(1, sizeof *c);
    if (!c)
        return PSL_ERR_NOMEM;
    psl_err err = PSL_ERR_IO;
    if (natsOptions_Create(&opts) != NATS_OK || natsOptions_SetURL(opts, url) != NATS_OK ||
        natsOptions_SetName(opts, name) != NATS_OK ||
        natsOptions_SetMaxReconnect(opts, -1) != NATS_OK ||
        natsOptions_SetReconnectWait(opts, 200) != NATS_OK ||
        natsOptions_SetTimeout(opts, 5000) != NATS_OK ||
        /* Records are latency-sensitive (ACK round trips); send without coalescing delay. */
        natsOptions_SetSendAsap(opts, true) != NATS_OK)
        goto out_free;
    natsStatus st = natsConnection_Connect(&c->nc, opts);
    if (st != NATS_OK) {
        LOG_WARN("fabric", "msg=\"cannot connect to NATS\" url=%s status=%s", url,
                 natsStatus_GetText(st));
        goto out_free;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->next_id = 1;
    c->base.ops = &nats_ops;
    *out = &c->base;
    c = NULL;
    err = PSL_OK;
out_free:
    natsOptions_Destroy(opts);
    free(c);
    return err;
}
