/* client.c: the client side of the capsule servers (see client.h).
 * Durability: per writer the client keeps the records it published and, per replica-set server,
 * the highest seq that server acknowledged with a hash equal to the client's own record at that
 * seq (an ACK covers the server's whole contiguous prefix). A seq is durable once k servers'
 * acknowledged seqs reach it; records up to the durable seq are then released. One mutex guards
 * everything; waiters sleep on one condition variable. */
#include "capsuled/client.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/durability.h"
#include "capsule/record.h"

#define CLIENT_WRITERS_MAX 1024u
#define RESEND_BACKOFF_MAX 32u

struct rec_copy {
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
    uint64_t sent_ns;
    size_t size;
    uint8_t *data;
};

struct cwriter {
    uint8_t id[HASH_SIZE];
    uint64_t sub_id;
    struct rec_copy *recs; /* not yet durable, ascending seq */
    size_t count, cap;
    uint64_t max_seq;
    uint64_t durable;      /* records up to here were released */
    uint64_t resend_at_ns; /* no re-send before this: resend_ms after the last progress */
    unsigned backoff;      /* resend_ms multiplier while stalled (to RESEND_BACKOFF_MAX) */
    struct durability dur;
    struct ack_keys keys;  /* the writer's ACK MAC keys, when the caller gave its key pair;
                            * without them its ACKs are checked by signature (set once) */
};

struct creply {
    struct creply *next;
    uint8_t server_pk[SIGN_PK_SIZE];
    uint8_t status;
    uint8_t more;
    size_t body_size;
    uint8_t body[];
};

struct creq {
    struct creq *next;
    uint64_t id;
    uint8_t type;
    bool has_server;
    uint8_t server_pk[SIGN_PK_SIZE];
    struct creply *replies, **tail;
};

struct capsule_client {
    struct capsule_client_config cfg;
    struct capsule_meta meta;
    char t_rec[FABRIC_TOPIC_SIZE_MAX];
    char t_req[FABRIC_TOPIC_SIZE_MAX];
    uint8_t requester[HASH_SIZE];
    uint64_t rep_sub;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* durability, room to publish, replies */
    pthread_cond_t resend_cv; /* the resender's timer; signaled only to stop it, so that the
                               * events above do not wake it */
    struct cwriter *writers[CLIENT_WRITERS_MAX];
    size_t writer_count;
    size_t unacked_bytes;
    struct creq *reqs;
    struct capsule_client_stats st;
    pthread_t resender;
    bool stopping;
};

/* Caller holds mu. */
static struct cwriter *find_writer(struct capsule_client *c, const uint8_t id[HASH_SIZE])
{
    for (size_t i = 0; i < c->writer_count; i++)
        if (memcmp(c->writers[i]->id, id, HASH_SIZE) == 0)
            return c->writers[i];
    return NULL;
}

static void release_durable(struct capsule_client *c, struct cwriter *w)
{
    uint64_t d = w->dur.durable;
    if (d <= w->durable)
        return;
    w->durable = d;
    w->resend_at_ns = clock_mono_ns() + (uint64_t)c->cfg.resend_ms * 1000000u;
    w->backoff = 1;
    size_t drop = 0;
    while (drop < w->count && w->recs[drop].seq <= d) {
        c->unacked_bytes -= w->recs[drop].size;
        free(w->recs[drop].data);
        drop++;
    }
    memmove(w->recs, w->recs + drop, (w->count - drop) * sizeof *w->recs);
    w->count -= drop;
    pthread_cond_broadcast(&c->cv);
}

static void on_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct capsule_client *c = ctx;
    struct ack a;
    int idx = -1;
    if (ack_decode(&a, data, size) != PSL_OK) {
        pthread_mutex_lock(&c->mu);
        c->st.acks_rejected++;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    /* Writers are never removed while subscribed and their keys are set before their first
     * record: look the writer up, then verify without holding the lock. */
    pthread_mutex_lock(&c->mu);
    struct cwriter *w = find_writer(c, a.writer);
    const struct ack_keys *ks = w && w->keys.count ? &w->keys : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!w)
        return; /* not ours */
    bool valid = ks ? ack_verify_mac(&a, &c->meta, ks, &idx) == PSL_OK
                    : ack_verify(&a, &c->meta) == PSL_OK &&
                          (idx = meta_replica_index(&c->meta, a.server_pk)) >= 0;
    pthread_mutex_lock(&c->mu);
    if (!valid) {
        c->st.acks_rejected++;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (a.seq > w->max_seq || a.seq <= w->dur.acked[idx]) {
        pthread_mutex_unlock(&c->mu);
        return; /* not ours, from the future, or old news */
    }
    /* The ACK must name our own record at that seq (when we still hold it). Held records are
     * in ascending seq order: binary search. */
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->recs[mid].seq < a.seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->count && w->recs[lo].seq == a.seq &&
        memcmp(w->recs[lo].hash, a.record_hash, HASH_SIZE) != 0) {
        c->st.acks_conflicting++;
        pthread_mutex_unlock(&c->mu);
        LOG_WARN("client", "msg=\"server acknowledged a different record: fork evidence\" seq=%llu",
                 (unsigned long long)a.seq);
        return;
    }
    c->st.acks_valid++;
    if (durability_ack(&w->dur, (unsigned)idx, a.seq))
        release_durable(c, w);
    pthread_mutex_unlock(&c->mu);
}

static void on_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct capsule_client *c = ctx;
    struct proto_reply r;
    if (proto_reply_open(&r, data, size) || memcmp(r.capsule, c->meta.name, HASH_SIZE) != 0)
        return;
    pthread_mutex_lock(&c->mu);
    if (meta_replica_index(&c->meta, r.server_pk) < 0)
        goto out;
    for (struct creq *q = c->reqs; q; q = q->next) {
        if (q->id != r.request_id || q->type != r.type)
            continue;
        if (q->has_server && memcmp(q->server_pk, r.server_pk, SIGN_PK_SIZE) != 0)
            break;
        struct creply *cr = malloc(sizeof *cr + r.body_size);
        if (!cr)
            break;
        cr->next = NULL;
        memcpy(cr->server_pk, r.server_pk, SIGN_PK_SIZE);
        cr->status = r.status;
        cr->more = r.more;
        cr->body_size = r.body_size;
        memcpy(cr->body, r.body, r.body_size);
        *q->tail = cr;
        q->tail = &cr->next;
        pthread_cond_broadcast(&c->cv);
        break;
    }
out:
    pthread_mutex_unlock(&c->mu);
}

static void *resender_main(void *arg)
{
    struct capsule_client *c = arg;
    uint64_t resend_ns = (uint64_t)c->cfg.resend_ms * 1000000u;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)(c->cfg.resend_ms / 2 + 1) * 1000000u);
        pthread_cond_timedwait(&c->resend_cv, &c->mu, &ts);
        uint64_t now = clock_mono_ns();
        for (size_t i = 0; i < c->writer_count && !c->stopping; i++) {
            struct cwriter *w = c->writers[i];
            /* Servers that are still acknowledging are working through a backlog, not losing
             * records: re-sending then only doubles their work (each copy is verified again)
             * and can collapse throughput. So re-send only once the writer's durable seq has
             * not moved for resend_ms, and while it still does not move, back off
             * exponentially so that unreachable servers do not turn every pending record into
             * a message per resend_ms on the fabric. */
            if (!w->count || now < w->resend_at_ns)
                continue;
            w->backoff = w->backoff < RESEND_BACKOFF_MAX ? w->backoff * 2 : RESEND_BACKOFF_MAX;
            w->resend_at_ns = now + resend_ns * w->backoff;
            for (size_t j = 0; j < w->count; j++) {
                struct rec_copy *r = &w->recs[j];
                if (now - r->sent_ns < resend_ns)
                    continue;
                r->sent_ns = now;
                c->st.resent++;
                /* Publishing under the lock keeps the record alive; the fabric copies it. */
                (void)fabric_publish(c->cfg.fabric, c->t_rec, r->data, r->size);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

psl_err capsule_client_open(struct capsule_client **out, const struct capsule_client_config *cfg)
{
    struct capsule_client *c = calloc(1, sizeof *c);
    if (!c)
        return PSL_ERR_NOMEM;
    c->cfg = *cfg;
    if (!c->cfg.resend_ms)
        c->cfg.resend_ms = 500;
    if (!c->cfg.unacked_bytes_max)
        c->cfg.unacked_bytes_max = 64u << 20;
    c->meta = *cfg->meta;
    topic_capsule(c->t_rec, c->meta.name, "rec", NULL);
    topic_capsule(c->t_req, c->meta.name, "req", NULL);
    rng_bytes(c->requester, HASH_SIZE);
    char rhex[2 * HASH_SIZE + 1], t_rep[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(rhex, c->requester, HASH_SIZE);
    topic_capsule(t_rep, c->meta.name, "rep", rhex);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->resend_cv, NULL);
    psl_err err = fabric_subscribe(c->cfg.fabric, t_rep, on_reply, c, &c->rep_sub);
    if (err)
        goto out_free;
    if (pthread_create(&c->resender, NULL, resender_main, c) != 0) {
        fabric_unsubscribe(c->cfg.fabric, c->rep_sub);
        err = PSL_ERR_NOMEM;
        goto out_free;
    }
    *out = c;
    return PSL_OK;
out_free:
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->resend_cv);
    free(c);
    return err;
}

void capsule_client_close(struct capsule_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->resend_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->resender, NULL);
    /* Stop every handler first (each unsubscribe waits for a running one), then free: an ACK
     * handler of one writer walks the whole writer table. */
    fabric_unsubscribe(c->cfg.fabric, c->rep_sub);
    for (size_t i = 0; i < c->writer_count; i++)
        fabric_unsubscribe(c->cfg.fabric, c->writers[i]->sub_id);
    for (size_t i = 0; i < c->writer_count; i++) {
        struct cwriter *w = c->writers[i];
        for (size_t j = 0; j < w->count; j++)
            free(w->recs[j].data);
        free(w->recs);
        ack_keys_free(&w->keys);
        free(w);
    }
    PSL_ASSERT(c->reqs == NULL); /* every request waits for its answers before returning */
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->resend_cv);
    free(c);
}

/* Creates the writer's entry (with its ACK keys when kx is given) and subscribes to its ACK
 * topic (caller does not hold mu). */
static psl_err writer_add(struct capsule_client *c, const uint8_t id[HASH_SIZE],
                          const struct kx_keypair *kx)
{
    struct cwriter *w = calloc(1, sizeof *w);
    if (!w)
        return PSL_ERR_NOMEM;
    if (kx) {
        psl_err kerr = ack_keys_init(&w->keys, kx, &c->meta);
        if (kerr) {
            free(w);
            return kerr;
        }
    }
    memcpy(w->id, id, HASH_SIZE);
    durability_init(&w->dur, c->meta.replica_count, c->meta.quorum_k);
    char whex[2 * HASH_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, id, HASH_SIZE);
    topic_capsule(topic, c->meta.name, "ack", whex);
    psl_err err = fabric_subscribe(c->cfg.fabric, topic, on_ack, c, &w->sub_id);
    if (err) {
        ack_keys_free(&w->keys);
        free(w);
        return err;
    }
    pthread_mutex_lock(&c->mu);
    struct cwriter *old = find_writer(c, id);
    if (old || c->writer_count == CLIENT_WRITERS_MAX) {
        err = old ? PSL_OK : PSL_ERR_TOO_LARGE;
        if (old && !old->keys.count) { /* seen through a publish first: adopt its keys now */
            old->keys = w->keys;
            w->keys = (struct ack_keys){0};
        }
        pthread_mutex_unlock(&c->mu);
        fabric_unsubscribe(c->cfg.fabric, w->sub_id);
        ack_keys_free(&w->keys);
        free(w);
        return err;
    }
    c->writers[c->writer_count++] = w;
    pthread_mutex_unlock(&c->mu);
    return PSL_OK;
}

psl_err capsule_client_add_writer(struct capsule_client *c, const struct writer_keys *wk)
{
    return writer_add(c, wk->writer_id, &wk->kx);
}

psl_err capsule_client_publish(struct capsule_client *c, const uint8_t *rec, size_t size,
                               uint32_t timeout_ms)
{
    struct record_view v;
    psl_err err = record_parse(&v, rec, size);
    if (err)
        return err;
    if (memcmp(v.h.capsule, c->meta.name, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    pthread_mutex_lock(&c->mu);
    bool known = find_writer(c, v.h.writer) != NULL;
    pthread_mutex_unlock(&c->mu);
    if (!known && (err = writer_add(c, v.h.writer, NULL)))
        return err;
    uint8_t *copy = malloc(size);
    if (!copy)
        return PSL_ERR_NOMEM;
    memcpy(copy, rec, size);
    struct timespec ts;
    clock_deadline(&ts, (uint64_t)timeout_ms * 1000000u);
    pthread_mutex_lock(&c->mu);
    while (c->unacked_bytes + size > c->cfg.unacked_bytes_max && c->unacked_bytes > 0 &&
           !c->stopping) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) {
            pthread_mutex_unlock(&c->mu);
            free(copy);
            return PSL_ERR_TIMEOUT;
        }
    }
    struct cwriter *w = find_writer(c, v.h.writer);
    if (v.h.seq <= w->max_seq) {
        pthread_mutex_unlock(&c->mu);
        free(copy);
        return PSL_ERR_BAD_SEQ; /* records of a writer go out in seq order, once */
    }
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct rec_copy *n = realloc(w->recs, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&c->mu);
            free(copy);
            return PSL_ERR_NOMEM;
        }
        w->recs = n;
        w->cap = cap;
    }
    struct rec_copy *r = &w->recs[w->count++];
    r->seq = v.h.seq;
    memcpy(r->hash, v.hash, HASH_SIZE);
    r->sent_ns = clock_mono_ns();
    if (w->count == 1) { /* nothing was pending: the progress clock starts now */
        w->resend_at_ns = r->sent_ns + (uint64_t)c->cfg.resend_ms * 1000000u;
        w->backoff = 1;
    }
    r->size = size;
    r->data = copy;
    w->max_seq = v.h.seq;
    c->unacked_bytes += size;
    c->st.published++;
    pthread_mutex_unlock(&c->mu);
    return fabric_publish(c->cfg.fabric, c->t_rec, rec, size);
}

uint64_t capsule_client_durable_seq(struct capsule_client *c, const uint8_t writer[HASH_SIZE])
{
    pthread_mutex_lock(&c->mu);
    struct cwriter *w = find_writer(c, writer);
    uint64_t d = w ? w->durable : 0;
    pthread_mutex_unlock(&c->mu);
    return d;
}

unsigned capsule_client_ack_count(struct capsule_client *c, const uint8_t writer[HASH_SIZE],
                                  uint64_t seq)
{
    pthread_mutex_lock(&c->mu);
    struct cwriter *w = find_writer(c, writer);
    unsigned n = w ? durability_count(&w->dur, seq) : 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

psl_err capsule_client_wait_durable(struct capsule_client *c, const uint8_t writer[HASH_SIZE],
                                    uint64_t seq, uint32_t timeout_ms)
{
    struct timespec ts;
    clock_deadline(&ts, (uint64_t)timeout_ms * 1000000u);
    pthread_mutex_lock(&c->mu);
    psl_err err = PSL_OK;
    for (;;) {
        struct cwriter *w = find_writer(c, writer);
        if (w && w->durable >= seq)
            break;
        if (!w) {
            err = PSL_ERR_NOT_FOUND;
            break;
        }
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) {
            err = (w->durable >= seq) ? PSL_OK : PSL_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

void capsule_client_get_stats(struct capsule_client *c, struct capsule_client_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

/* ---- requests ---- */

static void req_begin(struct capsule_client *c, struct creq *q, uint8_t type, const uint8_t *server)
{
    memset(q, 0, sizeof *q);
    q->id = rng_u64();
    q->type = type;
    q->tail = &q->replies;
    if (server) {
        q->has_server = true;
        memcpy(q->server_pk, server, SIGN_PK_SIZE);
    }
    pthread_mutex_lock(&c->mu);
    q->next = c->reqs;
    c->reqs = q;
    pthread_mutex_unlock(&c->mu);
}

static void req_end(struct capsule_client *c, struct creq *q)
{
    pthread_mutex_lock(&c->mu);
    for (struct creq **pp = &c->reqs; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    while (q->replies) {
        struct creply *r = q->replies;
        q->replies = r->next;
        free(r);
    }
}

static void req_send(struct capsule_client *c, const struct creq *q, const uint8_t *writer,
                     const uint8_t *hash, uint64_t from, uint64_t to)
{
    struct proto_req r = {.type = q->type, .request_id = q->id, .from = from, .to = to};
    memcpy(r.requester, c->requester, HASH_SIZE);
    memcpy(r.capsule, c->meta.name, HASH_SIZE);
    if (writer)
        memcpy(r.writer, writer, HASH_SIZE);
    if (hash)
        memcpy(r.hash, hash, HASH_SIZE);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&r, buf);
    char topic[FABRIC_TOPIC_SIZE_MAX];
    if (q->has_server) {
        char shex[2 * SIGN_PK_SIZE + 1];
        hex_encode(shex, q->server_pk, SIGN_PK_SIZE);
        topic_capsule(topic, c->meta.name, "req", shex);
    } else {
        memcpy(topic, c->t_req, sizeof topic);
    }
    (void)fabric_publish(c->cfg.fabric, topic, buf, n);
}

/* Takes the next reply of q, waiting until the deadline; NULL on timeout. Caller frees it. */
static struct creply *req_next(struct capsule_client *c, struct creq *q, const struct timespec *ts)
{
    pthread_mutex_lock(&c->mu);
    while (!q->replies) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, ts) != 0 && !q->replies) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
    }
    struct creply *r = q->replies;
    q->replies = r->next;
    if (!q->replies)
        q->tail = &q->replies;
    pthread_mutex_unlock(&c->mu);
    return r;
}

psl_err capsule_client_get(struct capsule_client *c, const uint8_t hash[HASH_SIZE],
                           uint32_t timeout_ms, client_record_fn fn, void *ctx)
{
    struct creq q;
    req_begin(c, &q, REQ_GET_HASH, NULL);
    req_send(c, &q, NULL, hash, 0, 0);
    struct timespec ts;
    clock_deadline(&ts, (uint64_t)timeout_ms * 1000000u);
    psl_err result = PSL_ERR_TIMEOUT;
    unsigned not_found = 0;
    struct creply *r;
    while (result == PSL_ERR_TIMEOUT && (r = req_next(c, &q, &ts))) {
        if (r->status == REP_NOT_FOUND && ++not_found == c->meta.replica_count)
            result = PSL_ERR_NOT_FOUND;
        struct proto_rec_iter it;
        const uint8_t *rec;
        size_t size;
        psl_err err;
        if (r->status == REP_OK && proto_rec_iter_init(&it, r->body, r->body_size) == PSL_OK &&
            proto_rec_iter_next(&it, &rec, &size, &err)) {
            struct record_view v;
            /* Content addressing: the bytes must hash to what we asked for. */
            if (record_parse(&v, rec, size) == PSL_OK && memcmp(v.hash, hash, HASH_SIZE) == 0) {
                fn(ctx, rec, size);
                result = PSL_OK;
            }
        }
        free(r);
    }
    req_end(c, &q);
    return result;
}

psl_err capsule_client_range(struct capsule_client *c, const uint8_t *server_pk,
                             const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to,
                             uint32_t timeout_ms, client_record_fn fn, void *ctx)
{
    if (from < 1 || to < from || to - from >= PROTO_RANGE_MAX)
        return PSL_ERR_INVALID_ARG;
    struct creq q;
    req_begin(c, &q, REQ_GET_RANGE, server_pk);
    req_send(c, &q, writer, NULL, from, to);
    struct timespec ts;
    clock_deadline(&ts, (uint64_t)timeout_ms * 1000000u);
    psl_err result = PSL_ERR_TIMEOUT;
    bool locked = false, stop = false;
    uint8_t from_server[SIGN_PK_SIZE];
    struct creply *r;
    while (result == PSL_ERR_TIMEOUT && (r = req_next(c, &q, &ts))) {
        /* Without a chosen server, follow the first one that answers (its replies may come in
         * several parts). */
        if (locked && memcmp(r->server_pk, from_server, SIGN_PK_SIZE) != 0) {
            free(r);
            continue;
        }
        locked = true;
        memcpy(from_server, r->server_pk, SIGN_PK_SIZE);
        if (r->status != REP_OK) {
            result = r->status == REP_NOT_FOUND ? PSL_ERR_NOT_FOUND : PSL_ERR_BUSY;
            free(r);
            break;
        }
        struct proto_rec_iter it;
        const uint8_t *rec;
        size_t size;
        psl_err err = proto_rec_iter_init(&it, r->body, r->body_size);
        while (!err && !stop && proto_rec_iter_next(&it, &rec, &size, &err))
            stop = !fn(ctx, rec, size);
        if (err)
            result = err;
        else if (!r->more || stop)
            result = PSL_OK;
        free(r);
    }
    req_end(c, &q);
    return result;
}

/* ---- freshness read ---- */

struct claim {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
    uint8_t server_pk[SIGN_PK_SIZE];
};

static int claim_cmp(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    int cw = memcmp(x->writer, y->writer, HASH_SIZE);
    if (cw)
        return cw;
    return x->seq > y->seq ? -1 : x->seq < y->seq; /* highest first */
}

struct verify_ctx {
    const struct capsule_meta *m;
    const struct claim *cl;
    struct writer_cert cert;
    bool have_cert;
    bool ok;
};

static bool take_cert(void *ctx, const uint8_t *rec, size_t size)
{
    struct verify_ctx *v = ctx;
    struct record_view rv;
    if (record_parse(&rv, rec, size) == PSL_OK &&
        memcmp(rv.h.writer, v->cl->writer, HASH_SIZE) == 0 &&
        record_check_cert(&rv, v->m, clock_wall_ms(), &v->cert) == PSL_OK)
        v->have_cert = true;
    return false;
}

static bool check_head(void *ctx, const uint8_t *rec, size_t size)
{
    struct verify_ctx *v = ctx;
    struct record_view rv;
    if (record_parse(&rv, rec, size) != PSL_OK || rv.h.seq != v->cl->seq ||
        memcmp(rv.h.writer, v->cl->writer, HASH_SIZE) != 0)
        return false;
    if (rv.h.type == REC_CERT) {
        struct writer_cert c;
        v->ok = record_check_cert(&rv, v->m, clock_wall_ms(), &c) == PSL_OK;
    } else {
        v->ok = v->have_cert && record_check(&rv, v->m, &v->cert, clock_wall_ms(), NULL) == PSL_OK;
    }
    return false;
}

/* Verifies one claimed head: the record must exist at the claiming server, hash to the claim,
 * and carry a valid signature of the certified writer. */
static bool claim_verifies(struct capsule_client *c, const struct claim *cl, uint32_t timeout_ms)
{
    struct verify_ctx v = {.m = &c->meta, .cl = cl};
    if (cl->seq > 1 &&
        capsule_client_range(c, cl->server_pk, cl->writer, 1, 1, timeout_ms, take_cert, &v) != PSL_OK)
        return false;
    if (capsule_client_get(c, cl->hash, timeout_ms, check_head, &v) != PSL_OK)
        return false;
    return v.ok;
}

psl_err capsule_client_fresh_heads(struct capsule_client *c, unsigned answers_min,
                                   uint32_t timeout_ms, struct fresh_result *out)
{
    unsigned n = c->meta.replica_count, k = c->meta.quorum_k;
    if (!answers_min)
        answers_min = n - k + 1;
    if (answers_min > n)
        return PSL_ERR_INVALID_ARG;
    struct creq q;
    req_begin(c, &q, REQ_GET_HEADS, NULL);
    req_send(c, &q, NULL, NULL, 0, 0);
    struct timespec ts;
    clock_deadline(&ts, (uint64_t)timeout_ms * 1000000u);
    uint8_t answered[PSL_REPLICAS_MAX][SIGN_PK_SIZE];
    unsigned answers = 0;
    struct claim *claims = NULL;
    size_t claim_count = 0, claim_cap = 0;
    psl_err err = PSL_OK;
    struct creply *r;
    /* Collect until every replica answered, or the deadline once answers_min is reached. */
    while (answers < n && (r = req_next(c, &q, &ts))) {
        bool dup = false;
        for (unsigned i = 0; i < answers; i++)
            dup |= memcmp(answered[i], r->server_pk, SIGN_PK_SIZE) == 0;
        size_t count;
        if (!dup && r->status == REP_OK && proto_heads_count(r->body, r->body_size, &count) == PSL_OK) {
            memcpy(answered[answers++], r->server_pk, SIGN_PK_SIZE);
            if (claim_count + count > claim_cap) {
                size_t cap = (claim_count + count) * 2;
                struct claim *nc = realloc(claims, cap * sizeof *nc);
                if (!nc) {
                    free(r);
                    err = PSL_ERR_NOMEM;
                    break;
                }
                claims = nc;
                claim_cap = cap;
            }
            for (size_t i = 0; i < count; i++) {
                struct proto_head h;
                proto_head_at(r->body, i, &h);
                if (h.contiguous == 0)
                    continue;
                struct claim *cl = &claims[claim_count++];
                memcpy(cl->writer, h.writer, HASH_SIZE);
                cl->seq = h.contiguous;
                memcpy(cl->hash, h.hash, HASH_SIZE);
                memcpy(cl->server_pk, r->server_pk, SIGN_PK_SIZE);
            }
        }
        free(r);
        if (answers >= answers_min) {
            /* Enough for the bound: give stragglers a short grace, not the whole timeout. */
            struct timespec grace;
            clock_deadline(&grace, 50000000u);
            if (grace.tv_sec < ts.tv_sec || (grace.tv_sec == ts.tv_sec && grace.tv_nsec < ts.tv_nsec))
                ts = grace;
        }
    }
    req_end(c, &q);
    if (!err && answers < answers_min)
        err = PSL_ERR_TIMEOUT;
    memset(out, 0, sizeof *out);
    if (err) {
        free(claims);
        return err;
    }
    if (claim_count)
        qsort(claims, claim_count, sizeof *claims, claim_cmp);
    out->heads = calloc(claim_count ? claim_count : 1, sizeof *out->heads);
    if (!out->heads) {
        free(claims);
        return PSL_ERR_NOMEM;
    }
    for (size_t i = 0; i < claim_count;) {
        size_t j = i;
        while (j < claim_count && memcmp(claims[j].writer, claims[i].writer, HASH_SIZE) == 0)
            j++;
        /* Highest claim first; a claim that does not verify is refuted and the next taken. */
        for (size_t t = i; t < j; t++) {
            if (t > i && claims[t].seq == claims[t - 1].seq &&
                memcmp(claims[t].hash, claims[t - 1].hash, HASH_SIZE) == 0)
                continue;
            if (!claim_verifies(c, &claims[t], timeout_ms)) {
                out->claims_refuted++;
                continue;
            }
            struct fresh_head *fh = &out->heads[out->count++];
            memcpy(fh->writer, claims[t].writer, HASH_SIZE);
            fh->seq = claims[t].seq;
            memcpy(fh->hash, claims[t].hash, HASH_SIZE);
            for (size_t u = i; u < j; u++)
                fh->reported_by += claims[u].seq >= fh->seq;
            break;
        }
        i = j;
    }
    free(claims);
    out->answers = answers;
    out->lag_bound_met = answers >= n - k + 1;
    out->liars_tolerated = answers >= n - k + 1 ? answers - (n - k + 1) : 0;
    return PSL_OK;
}

void fresh_result_free(struct fresh_result *r)
{
    free(r->heads);
    r->heads = NULL;
    r->count = 0;
}

/* Delivers the records of one writer in seq order, skipping anything a server sent that is not
 * the next seq (the caller's verifier reports gaps). */
struct fetch_state {
    client_record_fn fn;
    void *ctx;
    uint64_t next_seq;
    size_t records;
    bool stopped;
};

static bool fetch_take(void *ctx, const uint8_t *rec, size_t size)
{
    struct fetch_state *s = ctx;
    struct record_view v;
    if (record_parse(&v, rec, size) != PSL_OK || v.h.seq != s->next_seq)
        return true;
    s->next_seq++;
    s->records++;
    if (!s->fn(s->ctx, rec, size)) {
        s->stopped = true;
        return false;
    }
    return true;
}

psl_err capsule_client_fetch_all(struct capsule_client *c, unsigned answers_min,
                                 uint32_t timeout_ms, client_record_fn fn, void *ctx,
                                 struct fetch_summary *out)
{
    struct fresh_result fr;
    psl_err err = capsule_client_fresh_heads(c, answers_min, timeout_ms, &fr);
    if (err)
        return err;
    struct fetch_summary sum = {.writers = fr.count,
                                .answers = fr.answers,
                                .lag_bound_met = fr.lag_bound_met,
                                .claims_refuted = fr.claims_refuted,
                                .complete = true};
    for (size_t i = 0; i < fr.count; i++) {
        struct fetch_state st = {.fn = fn, .ctx = ctx, .next_seq = 1};
        while (st.next_seq <= fr.heads[i].seq && !st.stopped) {
            uint64_t from = st.next_seq, to = fr.heads[i].seq;
            if (to - from >= PROTO_RANGE_MAX)
                to = from + PROTO_RANGE_MAX - 1;
            err = capsule_client_range(c, NULL, fr.heads[i].writer, from, to, timeout_ms,
                                       fetch_take, &st);
            if (err || st.next_seq == from)
                break;
        }
        if (st.next_seq <= fr.heads[i].seq)
            sum.complete = false;
        sum.records += st.records;
        if (st.stopped)
            break;
    }
    fresh_result_free(&fr);
    *out = sum;
    return PSL_OK;
}
