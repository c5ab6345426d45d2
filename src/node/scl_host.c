/* scl_host.c: thread-mode host of an SCL engine (see scl_host.h). A runner (src/scl/runner.h)
 * provides the actor and ticker threads; this file subscribes to the engine's topics, feeds
 * what arrives to the engine, and publishes what the engine emits. */
#include "node/scl_host.h"

#include <stdlib.h>

#include "base/bytes.h"
#include "scl/runner.h"

struct scl_host {
    struct scl_host_config cfg;
    struct scl_engine *e;
    struct scl_runner *runner;
    char t_rec[FABRIC_TOPIC_SIZE_MAX];
    char t_req[FABRIC_TOPIC_SIZE_MAX];
    uint64_t subs[3];
    size_t sub_count;
};

static void emit(void *ctx, const struct scl_action *a)
{
    struct scl_host *h = ctx;
    if (a->kind == SCL_ACT_PUBLISH)
        (void)fabric_publish(h->cfg.fabric, h->t_rec, a->data, a->size);
    else if (a->kind == SCL_ACT_REQUEST)
        (void)fabric_publish(h->cfg.fabric, h->t_req, a->data, a->size);
    else if (a->kind == SCL_ACT_ALERT && h->cfg.on_alert)
        h->cfg.on_alert(h->cfg.alert_ctx, a);
}

void scl_host_kick(struct scl_host *h)
{
    scl_runner_kick(h->runner);
}

void scl_host_kick_put(struct scl_host *h)
{
    scl_runner_kick_put(h->runner);
}

/* The handlers never publish: they run on the fabric's delivery thread, and a publish from it
 * can wait for a full bus that only this thread empties (in-process bus: deadlock). They kick
 * the actors, which emit. */
static void on_record(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_record(h->e, data, size);
    if (scl_has_work(h->e))
        scl_runner_kick(h->runner); /* an EOE request, a SYNC or a gap fetch queued work */
}

static void on_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_ack(h->e, data, size);
    scl_runner_kick(h->runner); /* durability may have unpaused the actors */
}

static void on_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct scl_host *h = ctx;
    (void)scl_on_reply(h->e, data, size);
    scl_runner_kick(h->runner);
}

psl_err scl_host_start(struct scl_host **out, struct scl_engine *e,
                       const struct scl_host_config *cfg)
{
    struct scl_host *h = calloc(1, sizeof *h);
    if (!h)
        return PSL_ERR_NOMEM;
    h->cfg = *cfg;
    h->e = e;
    struct scl_runner_config rc = {
        .actors = cfg->actors, .tick_ms = cfg->tick_ms, .emit = emit, .ctx = h};
    psl_err err = scl_runner_start(&h->runner, &rc);
    if (err) {
        free(h);
        return err;
    }
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
    if ((err = fabric_subscribe(cfg->fabric, h->t_rec, on_record, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    if ((err = fabric_subscribe(cfg->fabric, t_ack, on_ack, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    if ((err = fabric_subscribe(cfg->fabric, t_rep, on_reply, h, &h->subs[h->sub_count])))
        goto out_fail;
    h->sub_count++;
    scl_runner_attach(h->runner, e);
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
    scl_runner_stop(h->runner);
    free(h);
}
