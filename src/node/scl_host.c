/* scl_host.c: thread-mode host of an SCL engine (see scl_host.h). Actor threads sleep on a
 * condition variable and are woken by kicks, by incoming messages and by the ticker; each wake
 * seals until the engine is idle, then drains the engine's actions to the fabric. */
#include "node/scl_host.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes.h"
#include "base/clock.h"

#define ACTORS_MAX 16

struct scl_host {
    struct scl_host_config cfg;
    struct scl_engine *e;
    char t_rec[FABRIC_TOPIC_SIZE_MAX];
    char t_req[FABRIC_TOPIC_SIZE_MAX];
    uint64_t subs[3];
    size_t sub_count;
    pthread_t actors[ACTORS_MAX];
    unsigned actor_count;
    pthread_t ticker;
    bool ticker_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Kicks are counted without the mutex; a kicker takes the mutex to broadcast only when an
     * actor sleeps. The seq_cst increment of kicks pairs with the seq_cst increment of sleepers
     * in actor_main (each side stores, then loads the other's counter), so a kick is never lost
     * between an actor's check and its wait. */
    _Atomic uint64_t kicks;
    _Atomic unsigned sleepers;
    pthread_mutex_t out_mu; /* one drainer at a time keeps the engine's output order */
    bool stopping;
};

/* Publishes everything the engine has to say. */
static void drain(struct scl_host *h)
{
    pthread_mutex_lock(&h->out_mu);
    struct scl_action a;
    while (scl_poll(h->e, &a)) {
        if (a.kind == SCL_ACT_PUBLISH)
            (void)fabric_publish(h->cfg.fabric, h->t_rec, a.data, a.size);
        else if (a.kind == SCL_ACT_REQUEST)
            (void)fabric_publish(h->cfg.fabric, h->t_req, a.data, a.size);
        else if (a.kind == SCL_ACT_ALERT && h->cfg.on_alert)
            h->cfg.on_alert(h->cfg.alert_ctx, &a);
        free(a.data);
    }
    pthread_mutex_unlock(&h->out_mu);
}

void scl_host_kick(struct scl_host *h)
{
    atomic_fetch_add(&h->kicks, 1);
    if (atomic_load(&h->sleepers) == 0)
        return; /* every actor is awake and will look at the engine again */
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void *actor_main(void *arg)
{
    struct scl_host *h = arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        atomic_fetch_add(&h->sleepers, 1);
        while (!h->stopping && atomic_load(&h->kicks) == seen)
            pthread_cond_wait(&h->cv, &h->mu);
        atomic_fetch_sub(&h->sleepers, 1);
        bool stop = h->stopping;
        seen = atomic_load(&h->kicks);
        pthread_mutex_unlock(&h->mu);
        if (stop)
            return NULL;
        while (scl_actor_step(h->e) == PSL_OK)
            drain(h);
        drain(h);
    }
}

static void *ticker_main(void *arg)
{
    struct scl_host *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)h->cfg.tick_ms * 1000000u);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->mu);
        scl_tick(h->e, clock_mono_ns() / 1000000u);
        drain(h);
        scl_host_kick(h); /* timers may have queued records (EOE, SYNC) */
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void on_record(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_record(h->e, data, size);
    /* No drain here: this runs on the fabric's delivery thread, and a publish from it can wait
     * for a full bus that only this thread empties (in-process bus: deadlock). The actor drains. */
    scl_host_kick(h); /* an EOE request or a SYNC may have queued work */
}

static void on_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_ack(h->e, data, size);
    scl_host_kick(h); /* durability may have unpaused the actors */
}

static void on_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_reply(h->e, data, size);
    scl_host_kick(h); /* the actor drains (see on_record) */
}

psl_err scl_host_start(struct scl_host **out, struct scl_engine *e,
                       const struct scl_host_config *cfg)
{
    struct scl_host *h = calloc(1, sizeof *h);
    if (!h)
        return PSL_ERR_NOMEM;
    h->cfg = *cfg;
    if (!h->cfg.actors)
        h->cfg.actors = 1;
    if (h->cfg.actors > ACTORS_MAX)
        h->cfg.actors = ACTORS_MAX;
    if (!h->cfg.tick_ms)
        h->cfg.tick_ms = 5;
    h->e = e;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->out_mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    /* The capsule name is in every record; the engine exposes its writer and requester ids. */
    char whex[2 * HASH_SIZE + 1], rhex[2 * HASH_SIZE + 1];
    char t_ack[FABRIC_TOPIC_SIZE_MAX], t_rep[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, scl_writer_id(e), HASH_SIZE);
    hex_encode(rhex, scl_requester_id(e), HASH_SIZE);
    const uint8_t *capsule = scl_capsule_name(e);
    topic_capsule(h->t_rec, capsule, "rec", NULL);
    topic_capsule(h->t_req, capsule, "req", NULL);
    topic_capsule(t_ack, capsule, "ack", whex);
    topic_capsule(t_rep, capsule, "rep", rhex);
    psl_err err;
    if ((err = fabric_subscribe(cfg->fabric, h->t_rec, on_record, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    if ((err = fabric_subscribe(cfg->fabric, t_ack, on_ack, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    if ((err = fabric_subscribe(cfg->fabric, t_rep, on_reply, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    for (unsigned i = 0; i < h->cfg.actors; i++) {
        if (pthread_create(&h->actors[i], NULL, actor_main, h) != 0) {
            err = PSL_ERR_NOMEM;
            goto out_fail;
        }
        h->actor_count++;
    }
    if (pthread_create(&h->ticker, NULL, ticker_main, h) != 0) {
        err = PSL_ERR_NOMEM;
        goto out_fail;
    }
    h->ticker_running = true;
    drain(h); /* the engine's first requests (heads) */
    scl_host_kick(h);
    *out = h;
    return PSL_OK;
out_fail:
    scl_host_stop(h);
    return err;
}

void scl_host_stop(struct scl_host *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->sub_count; i++)
        fabric_unsubscribe(h->cfg.fabric, h->subs[i]);
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < h->actor_count; i++)
        pthread_join(h->actors[i], NULL);
    if (h->ticker_running)
        pthread_join(h->ticker, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->out_mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
