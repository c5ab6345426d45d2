/* engine.c: the SCL engine (see engine.h for the protocol it keeps).
 * Locks: seal_mu is held by the one actor that is sealing (it owns the writer's chain); mu guards
 * everything else. Order: seal_mu before mu. Verification of received records runs outside mu:
 * the certificate is copied out under mu, the signature checked without it, then mu is taken
 * again to apply (re-checking what may have changed meanwhile).
 * Per other writer the engine keeps, by seq, the hash and prev of every record it verified, so
 * that duplicates, gaps, broken links and forks are recognised; memory grows with history until
 * CapsuleDB checkpoints arrive (DESIGN §6). */
#include "scl/engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/durability.h"
#include "capsule/payload.h"
#include "capsule/proto.h"
#include "scl/memtable.h"

#define PEERS_MAX PSL_WRITERS_MAX
#define FETCH_CHUNK 512u
/* Records are tracked at most this far beyond a writer's contiguous prefix: a seq chosen by a
 * peer never sizes an allocation beyond it (farther records are fetched once the gap closes). */
#define SEEN_WINDOW 65536u
/* Lamport values at or above this are refused: a peer must not be able to wrap our clock. */
#define LAMPORT_MAX (1ull << 62)
#define PENDING_BYTES_MAX (64u << 20)
#define HEADS_POLL_MS 2000u

struct qop {
    struct qop *next;
    uint8_t op;
    uint64_t lamport;
    uint16_t key_size;
    uint32_t value_size;
    uint8_t data[]; /* key, then value */
};

struct ctrl {
    struct ctrl *next;
    uint8_t type;    /* REC_CERT, REC_EOE, REC_SYNC */
    uint64_t epoch;  /* EOE, SYNC */
};

struct sealed {
    uint64_t seq;
    uint64_t ops_cum; /* local operations sealed up to and including this record */
    uint8_t hash[HASH_SIZE];
    uint8_t *data;
    size_t size;
};

struct seen {
    uint8_t hash[HASH_SIZE];
    uint8_t prev[HASH_SIZE];
    bool known;
};

struct peer {
    uint8_t id[HASH_SIZE];
    bool has_cert;
    bool forked;
    struct writer_cert cert;
    struct aead_key key;
    struct seen *seen; /* index seq - 1 */
    size_t seen_cap;
    uint64_t contiguous;
    uint64_t max_seq;
    uint64_t fetch_ms;   /* last request for its records */
    uint64_t eoe_epoch;  /* we are coordinator: highest epoch this worker answered */
    uint64_t answered_epoch; /* it is a coordinator: highest of its epochs we answered */
    uint64_t adopted_epoch;  /* it is a coordinator: highest of its SYNCs we adopted */
};

struct pending {
    struct pending *next;
    uint8_t writer[HASH_SIZE];
    size_t size;
    uint8_t data[];
};

struct action_node {
    struct action_node *next;
    struct scl_action a;
};

struct scl_engine {
    struct scl_config cfg;
    struct capsule_meta meta;
    struct writer_keys keys;
    struct writer_cert cert;
    struct delegation deleg;
    bool has_deleg;
    bool coordinator;
    uint8_t *capsule_key; /* secret memory */
    uint8_t requester[HASH_SIZE];

    pthread_mutex_t seal_mu; /* the sealing actor: owns chain and buf */
    struct record_chain chain;
    uint8_t *buf;
    size_t buf_size;

    pthread_mutex_t mu;
    struct memtable mt;
    uint64_t clock;
    struct qop *q_head, *q_tail;
    size_t q_ops, q_bytes;
    struct ctrl *c_head, *c_tail;
    uint8_t sync_next[HASH_SIZE]; /* SYNC adopted: the next records link to it */
    uint64_t ops_issued, ops_sealed, ops_durable;
    struct sealed *unacked;
    size_t unacked_count, unacked_cap, unacked_bytes;
    struct durability dur;
    uint64_t progress_ms;
    unsigned backoff;
    struct peer **peers;
    size_t peer_count, peer_cap;
    struct pending *pending;
    size_t pending_count, pending_bytes;
    uint32_t heads_answered;   /* replica indices that answered GET_HEADS (bit mask) */
    uint64_t heads_asked_ms;
    struct action_node *out_head, *out_tail;
    uint64_t now_ms;
    /* epochs */
    uint64_t epoch;            /* coordinator: current epoch; worker: highest answered */
    uint64_t epoch_start_ms;
    bool epoch_open;           /* coordinator: EOE sent, SYNC not yet */
    uint8_t *sync_pending;     /* worker: SYNC record payload waiting for its cut to be filled */
    size_t sync_pending_size;
    uint8_t sync_pending_hash[HASH_SIZE];
    uint64_t sync_pending_epoch;
    struct peer *sync_pending_from; /* the coordinator that sealed it */
    struct scl_stats st;
};

static const uint8_t zero_hash[HASH_SIZE];

/* ---- small helpers (caller holds mu unless said otherwise) ---- */

static void emit(struct scl_engine *e, uint8_t kind, const uint8_t *writer, const uint8_t *data,
                 size_t size)
{
    struct action_node *n = malloc(sizeof *n);
    uint8_t *copy = malloc(size ? size : 1);
    if (!n || !copy) {
        free(n);
        free(copy);
        return; /* an action lost to memory pressure is a message lost on the fabric */
    }
    memcpy(copy, data, size);
    n->next = NULL;
    n->a = (struct scl_action){.kind = kind, .data = copy, .size = size};
    if (writer)
        memcpy(n->a.writer, writer, HASH_SIZE);
    if (e->out_tail)
        e->out_tail->next = n;
    else
        e->out_head = n;
    e->out_tail = n;
}

/* Emits a server request; writer/from/to for GET_RANGE, hash for GET_HASH (NULL otherwise). */
static void emit_request(struct scl_engine *e, uint8_t type, const uint8_t *writer, uint64_t from,
                         uint64_t to, const uint8_t *hash)
{
    struct proto_req q = {.type = type, .request_id = rng_u64(), .from = from, .to = to};
    memcpy(q.requester, e->requester, HASH_SIZE);
    memcpy(q.capsule, e->meta.name, HASH_SIZE);
    if (writer)
        memcpy(q.writer, writer, HASH_SIZE);
    if (hash)
        memcpy(q.hash, hash, HASH_SIZE);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, buf);
    emit(e, SCL_ACT_REQUEST, NULL, buf, n);
}

static void reject(struct scl_engine *e, psl_err err)
{
    e->st.rejected++;
    e->st.rejected_by[(unsigned)err < PSL_ERR__COUNT ? err : PSL_ERR_MALFORMED]++;
}

static struct peer *peer_find(struct scl_engine *e, const uint8_t id[HASH_SIZE])
{
    for (size_t i = 0; i < e->peer_count; i++)
        if (memcmp(e->peers[i]->id, id, HASH_SIZE) == 0)
            return e->peers[i];
    return NULL;
}

static struct peer *peer_get(struct scl_engine *e, const uint8_t id[HASH_SIZE])
{
    struct peer *p = peer_find(e, id);
    if (p || e->peer_count == PEERS_MAX)
        return p;
    if (e->peer_count == e->peer_cap) {
        size_t cap = e->peer_cap ? e->peer_cap * 2 : 16;
        struct peer **n = realloc(e->peers, cap * sizeof *n);
        if (!n)
            return NULL;
        e->peers = n;
        e->peer_cap = cap;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->id, id, HASH_SIZE);
    e->peers[e->peer_count++] = p;
    return p;
}

static struct seen *seen_at(struct peer *p, uint64_t seq, bool grow)
{
    if (seq == 0)
        return NULL;
    if (seq > p->seen_cap) {
        if (!grow)
            return NULL;
        if (seq > (uint64_t)p->contiguous + SEEN_WINDOW)
            return NULL; /* beyond the window: the caller refuses it for now */
        size_t cap = p->seen_cap ? p->seen_cap : 64;
        while (cap < seq)
            cap *= 2; /* seq <= contiguous + window, so this cannot overflow */
        struct seen *n = realloc(p->seen, cap * sizeof *n);
        if (!n)
            return NULL;
        memset(n + p->seen_cap, 0, (cap - p->seen_cap) * sizeof *n);
        p->seen = n;
        p->seen_cap = cap;
    }
    return &p->seen[seq - 1];
}

static void fork_alert(struct scl_engine *e, struct peer *p, const uint8_t a[HASH_SIZE],
                       const uint8_t b[HASH_SIZE])
{
    if (p->forked)
        return;
    p->forked = true;
    e->st.forks++;
    uint8_t evidence[2 * HASH_SIZE];
    memcpy(evidence, a, HASH_SIZE);
    memcpy(evidence + HASH_SIZE, b, HASH_SIZE);
    emit(e, SCL_ACT_ALERT, p->id, evidence, sizeof evidence);
    LOG_WARN("scl", "msg=\"fork: writer quarantined\" writer=%02x%02x%02x%02x", p->id[0], p->id[1],
             p->id[2], p->id[3]);
}

/* ---- creation ---- */

static void queue_ctrl(struct scl_engine *e, uint8_t type, uint64_t epoch)
{
    struct ctrl *c = malloc(sizeof *c);
    if (!c)
        return;
    *c = (struct ctrl){.type = type, .epoch = epoch};
    if (e->c_tail)
        e->c_tail->next = c;
    else
        e->c_head = c;
    e->c_tail = c;
}

psl_err scl_create(struct scl_engine **out, const struct scl_config *cfg, struct writer_keys *wk)
{
    if (memcmp(cfg->cert->writer_id, wk->writer_id, HASH_SIZE) != 0 ||
        memcmp(cfg->cert->sign_pk, wk->sign.pk, SIGN_PK_SIZE) != 0)
        return PSL_ERR_INVALID_ARG;
    psl_err err = cert_verify(cfg->cert, cfg->deleg, cfg->meta, clock_wall_ms());
    if (err)
        return err;
    struct scl_engine *e = calloc(1, sizeof *e);
    if (!e)
        return PSL_ERR_NOMEM;
    e->cfg = *cfg;
    struct scl_config *c = &e->cfg;
    if (!c->batch_ops_max)
        c->batch_ops_max = 1000;
    if (!c->batch_bytes_max)
        c->batch_bytes_max = 256u << 10;
    if (!c->queue_ops_max)
        c->queue_ops_max = 100000;
    if (!c->queue_bytes_max)
        c->queue_bytes_max = 64u << 20;
    if (!c->unacked_bytes_max)
        c->unacked_bytes_max = 64u << 20;
    if (!c->resend_ms)
        c->resend_ms = 500;
    if (!c->fetch_retry_ms)
        c->fetch_retry_ms = 300;
    if (!c->pending_records_max)
        c->pending_records_max = 1024;
    if (c->batch_ops_max > PSL_DATA_OPS_MAX)
        c->batch_ops_max = PSL_DATA_OPS_MAX;
    /* A batch plus one maximal op must fit one record's payload. */
    size_t batch_limit = PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE - 4 - DATA_OP_OVERHEAD -
                         PSL_KEY_SIZE_MAX - PSL_VALUE_SIZE_MAX;
    if (c->batch_bytes_max > batch_limit)
        c->batch_bytes_max = batch_limit;
    e->meta = *cfg->meta;
    e->cert = *cfg->cert;
    e->coordinator = cfg->cert->role == ROLE_COORDINATOR || cfg->cert->role == ROLE_LEADER;
    if (cfg->deleg) {
        e->deleg = *cfg->deleg;
        e->has_deleg = true;
    }
    /* One data batch at its limits, plus the largest single op, must fit the sealing buffer. */
    size_t plain = 4 + c->batch_bytes_max + DATA_OP_OVERHEAD + PSL_KEY_SIZE_MAX + PSL_VALUE_SIZE_MAX;
    size_t cut = 12 + (size_t)PSL_CUT_HEADS_MAX * CUT_HEAD_SIZE;
    if (plain < cut)
        plain = cut;
    if (plain > PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE)
        plain = PSL_RECORD_PAYLOAD_SIZE_MAX - AEAD_TAG_SIZE;
    e->buf_size = PSL_RECORD_HEADER_SIZE + plain + AEAD_TAG_SIZE + PSL_RECORD_SIG_SIZE;
    e->buf = malloc(e->buf_size);
    e->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    uint8_t hkey[MEMTABLE_HASH_KEY_SIZE];
    rng_bytes(hkey, sizeof hkey);
    err = PSL_ERR_NOMEM;
    if (!e->buf || !e->capsule_key || memtable_init(&e->mt, hkey) != PSL_OK)
        goto out_free;
    memcpy(e->capsule_key, cfg->capsule_key, AEAD_KEY_SIZE);
    e->keys = *wk; /* taken */
    memset(wk, 0, sizeof *wk);
    rng_bytes(e->requester, HASH_SIZE);
    record_chain_init(&e->chain, e->meta.name);
    durability_init(&e->dur, e->meta.replica_count, e->meta.quorum_k);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->seal_mu, NULL);
    queue_ctrl(e, REC_CERT, 0);
    /* Joining: learn every writer's head from the servers and catch up (DESIGN §5.6). */
    emit_request(e, REQ_GET_HEADS, NULL, 0, 0, NULL);
    *out = e;
    return PSL_OK;
out_free:
    secret_free(e->capsule_key);
    free(e->buf);
    free(e);
    return err;
}

void scl_destroy(struct scl_engine *e)
{
    if (!e)
        return;
    while (e->q_head) {
        struct qop *q = e->q_head;
        e->q_head = q->next;
        secret_wipe(q->data, (size_t)q->key_size + q->value_size);
        free(q);
    }
    while (e->c_head) {
        struct ctrl *c = e->c_head;
        e->c_head = c->next;
        free(c);
    }
    for (size_t i = 0; i < e->unacked_count; i++)
        free(e->unacked[i].data);
    free(e->unacked);
    for (size_t i = 0; i < e->peer_count; i++) {
        aead_key_deinit(&e->peers[i]->key);
        free(e->peers[i]->seen);
        free(e->peers[i]);
    }
    free(e->peers);
    while (e->pending) {
        struct pending *p = e->pending;
        e->pending = p->next;
        free(p);
    }
    while (e->out_head) {
        struct action_node *n = e->out_head;
        e->out_head = n->next;
        free(n->a.data);
        free(n);
    }
    free(e->sync_pending);
    memtable_deinit(&e->mt);
    writer_keys_deinit(&e->keys);
    secret_free(e->capsule_key);
    if (e->buf)
        secret_wipe(e->buf, e->buf_size);
    free(e->buf);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->seal_mu);
    free(e);
}

/* ---- local operations ---- */

static psl_err local_op(struct scl_engine *e, uint8_t op, const uint8_t *key, size_t key_size,
                        const uint8_t *value, size_t value_size)
{
    if (key_size < 1 || key_size > PSL_KEY_SIZE_MAX || value_size > PSL_VALUE_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t bytes = DATA_OP_OVERHEAD + key_size + value_size;
    pthread_mutex_lock(&e->mu);
    if (e->q_ops && (e->q_ops >= e->cfg.queue_ops_max || e->q_bytes + bytes > e->cfg.queue_bytes_max)) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_BUSY;
    }
    struct qop *q = malloc(sizeof *q + key_size + value_size);
    if (!q) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_NOMEM;
    }
    uint64_t lamport = ++e->clock;
    bool applied;
    psl_err err = memtable_apply(&e->mt, op, lamport, e->keys.writer_id, key, key_size, value,
                                 value_size, &applied);
    if (err) {
        e->clock--;
        pthread_mutex_unlock(&e->mu);
        free(q);
        return err;
    }
    *q = (struct qop){.op = op, .lamport = lamport, .key_size = (uint16_t)key_size,
                      .value_size = (uint32_t)value_size};
    memcpy(q->data, key, key_size);
    if (value_size)
        memcpy(q->data + key_size, value, value_size);
    if (e->q_tail)
        e->q_tail->next = q;
    else
        e->q_head = q;
    e->q_tail = q;
    e->q_ops++;
    e->q_bytes += bytes;
    e->ops_issued++;
    e->st.ops_local++;
    pthread_mutex_unlock(&e->mu);
    return PSL_OK;
}

psl_err scl_put(struct scl_engine *e, const uint8_t *key, size_t key_size, const uint8_t *value,
                size_t value_size)
{
    return local_op(e, OP_PUT, key, key_size, value, value_size);
}

psl_err scl_del(struct scl_engine *e, const uint8_t *key, size_t key_size)
{
    return local_op(e, OP_DEL, key, key_size, NULL, 0);
}

psl_err scl_get(struct scl_engine *e, const uint8_t *key, size_t key_size, uint8_t *out,
                size_t cap, size_t *size)
{
    pthread_mutex_lock(&e->mu);
    const uint8_t *v;
    size_t n;
    psl_err err = memtable_get(&e->mt, key, key_size, &v, &n);
    if (!err) {
        *size = n;
        if (n > cap)
            err = PSL_ERR_TOO_LARGE;
        else if (n)
            memcpy(out, v, n);
    }
    pthread_mutex_unlock(&e->mu);
    return err;
}

uint64_t scl_flush_ticket(struct scl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t t = e->ops_issued;
    pthread_mutex_unlock(&e->mu);
    return t;
}

bool scl_flush_done(struct scl_engine *e, uint64_t ticket)
{
    pthread_mutex_lock(&e->mu);
    bool done = e->ops_durable >= ticket;
    pthread_mutex_unlock(&e->mu);
    return done;
}

/* ---- the crypto actor ---- */

/* Builds an EOE or SYNC payload (a cut) into w. Caller holds seal_mu and mu. */
static void build_cut(struct scl_engine *e, struct wr *w, uint8_t type, uint64_t epoch)
{
    size_t cap = type == REC_SYNC ? e->peer_count + 1 : 1;
    if (cap > PSL_CUT_HEADS_MAX)
        cap = PSL_CUT_HEADS_MAX;
    struct cut_head *heads = calloc(cap, sizeof *heads);
    if (!heads) {
        w->err = PSL_ERR_NOMEM;
        return;
    }
    size_t n = 0;
    /* Our own head before this record (the record itself links to it as prev). */
    if (e->chain.seq) {
        memcpy(heads[n].writer, e->keys.writer_id, HASH_SIZE);
        heads[n].seq = e->chain.seq;
        memcpy(heads[n].hash, e->chain.head, HASH_SIZE);
        n++;
    }
    for (size_t i = 0; type == REC_SYNC && i < e->peer_count && n < cap; i++) {
        struct peer *p = e->peers[i];
        struct seen *s = seen_at(p, p->contiguous, false);
        if (!p->has_cert || p->forked || !s)
            continue;
        memcpy(heads[n].writer, p->id, HASH_SIZE);
        heads[n].seq = p->contiguous;
        memcpy(heads[n].hash, s->hash, HASH_SIZE);
        n++;
    }
    cut_encode(w, epoch, heads, n);
    free(heads);
}

psl_err scl_actor_step(struct scl_engine *e)
{
    pthread_mutex_lock(&e->seal_mu);
    pthread_mutex_lock(&e->mu);
    if (e->unacked_bytes > e->cfg.unacked_bytes_max) {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&e->seal_mu);
        return PSL_ERR_BUSY;
    }
    struct ctrl *c = e->c_head;
    struct qop *batch = NULL;
    size_t batch_ops = 0;
    uint8_t type;
    struct wr w;
    wr_init(&w, e->buf + PSL_RECORD_HEADER_SIZE,
            e->buf_size - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
    if (c) {
        e->c_head = c->next;
        if (!e->c_head)
            e->c_tail = NULL;
        type = c->type;
        if (type == REC_CERT)
            certpl_encode(&w, &e->cert, e->has_deleg ? &e->deleg : NULL);
        else
            build_cut(e, &w, type, c->epoch);
        free(c);
    } else if (e->q_head) {
        /* Take what queued meanwhile, up to the limits (at least one op). */
        type = REC_DATA;
        size_t bytes = 4;
        struct qop **tail = &e->q_head;
        while (*tail && batch_ops < e->cfg.batch_ops_max) {
            size_t ob = DATA_OP_OVERHEAD + (*tail)->key_size + (*tail)->value_size;
            if (batch_ops && bytes + ob > e->cfg.batch_bytes_max)
                break;
            bytes += ob;
            batch_ops++;
            tail = &(*tail)->next;
        }
        batch = e->q_head;
        e->q_head = *tail;
        *tail = NULL;
        if (!e->q_head)
            e->q_tail = NULL;
        e->q_ops -= batch_ops;
        e->q_bytes -= bytes - 4;
    } else {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&e->seal_mu);
        return PSL_ERR_NOT_FOUND;
    }
    memcpy(e->chain.sync, e->sync_next, HASH_SIZE);
    uint64_t lamport = ++e->clock;
    pthread_mutex_unlock(&e->mu);
    /* The detached batch and the buffer belong to this actor (seal_mu): encode without mu, so
     * puts are not held up, then wipe and free the queue nodes. */
    if (batch) {
        wr_u32(&w, (uint32_t)batch_ops);
        for (struct qop *q = batch; q; q = q->next) {
            uint8_t *p = wr_reserve(&w, DATA_OP_OVERHEAD + q->key_size + q->value_size);
            if (!p)
                break;
            p[0] = q->op;
            put_le64(p + 1, q->lamport);
            put_le16(p + 9, q->key_size);
            put_le32(p + 11, q->value_size);
            memcpy(p + DATA_OP_OVERHEAD, q->data, (size_t)q->key_size + q->value_size);
        }
    }
    while (batch) {
        struct qop *q = batch;
        batch = q->next;
        secret_wipe(q->data, (size_t)q->key_size + q->value_size);
        free(q);
    }
    PSL_ASSERT(w.err == PSL_OK); /* the buffer was sized for the largest batch and cut */
    size_t size;
    uint8_t hash[HASH_SIZE];
    psl_err err = record_chain_seal(&e->chain, &e->keys, type, lamport, e->buf, e->buf_size, w.pos,
                                    &size, hash);
    PSL_ASSERT(err == PSL_OK);
    uint8_t *copy = malloc(size);
    pthread_mutex_lock(&e->mu);
    if (copy && e->unacked_count == e->unacked_cap) {
        size_t cap = e->unacked_cap ? e->unacked_cap * 2 : 64;
        struct sealed *n = realloc(e->unacked, cap * sizeof *n);
        if (n) {
            e->unacked = n;
            e->unacked_cap = cap;
        }
    }
    e->ops_sealed += batch_ops;
    e->st.ops_sealed = e->ops_sealed;
    if (copy && e->unacked_count < e->unacked_cap) {
        memcpy(copy, e->buf, size);
        struct sealed *s = &e->unacked[e->unacked_count++];
        *s = (struct sealed){.seq = e->chain.seq, .ops_cum = e->ops_sealed, .data = copy, .size = size};
        memcpy(s->hash, hash, HASH_SIZE);
        e->unacked_bytes += size;
        copy = NULL;
    }
    if (e->unacked_count == 1)
        e->progress_ms = e->now_ms; /* the quiet time before a re-send starts now */
    e->st.records_sealed++;
    e->st.sealed_seq = e->chain.seq;
    if (type == REC_SYNC)
        e->st.epochs++;
    emit(e, SCL_ACT_PUBLISH, NULL, e->buf, size);
    pthread_mutex_unlock(&e->mu);
    free(copy);
    pthread_mutex_unlock(&e->seal_mu);
    return PSL_OK;
}

/* ---- receive path ---- */

static bool fetch_due(struct scl_engine *e, struct peer *p)
{
    if (p->fetch_ms && e->now_ms - p->fetch_ms < e->cfg.fetch_retry_ms)
        return false;
    p->fetch_ms = e->now_ms ? e->now_ms : 1;
    return true;
}

/* Asks the servers for a writer's records after its contiguous prefix (caller holds mu). */
static void request_gap(struct scl_engine *e, struct peer *p, uint64_t upto)
{
    if (upto <= p->contiguous || !fetch_due(e, p))
        return;
    uint64_t from = p->contiguous + 1;
    uint64_t to = upto - from >= FETCH_CHUNK ? from + FETCH_CHUNK - 1 : upto;
    emit_request(e, REQ_GET_RANGE, p->id, from, to, NULL);
    e->st.fetches++;
}

static void advance_contiguous(struct peer *p)
{
    for (;;) {
        struct seen *next = seen_at(p, p->contiguous + 1, false);
        if (!next || !next->known)
            return;
        const uint8_t *want = p->contiguous ? seen_at(p, p->contiguous, false)->hash : zero_hash;
        if (memcmp(next->prev, want, HASH_SIZE) != 0)
            return;
        p->contiguous++;
    }
}

static void drop_pending_sync(struct scl_engine *e)
{
    free(e->sync_pending);
    e->sync_pending = NULL;
}

/* Worker: adopts a pending SYNC once every head it lists is held with the hash it names (caller
 * holds mu). A head whose hash differs from the record we hold is evidence against the
 * coordinator or that writer: the SYNC is refused and the named record fetched. */
static void try_adopt_sync(struct scl_engine *e)
{
    if (!e->sync_pending)
        return;
    size_t cap = e->sync_pending_size / CUT_HEAD_SIZE + 1;
    struct cut_head *heads = malloc(cap * sizeof *heads);
    uint64_t epoch;
    size_t n;
    if (!heads)
        return;
    if (cut_decode(e->sync_pending, e->sync_pending_size, &epoch, heads, cap, &n) != PSL_OK) {
        free(heads);
        drop_pending_sync(e);
        return;
    }
    bool ready = true;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(heads[i].writer, e->keys.writer_id, HASH_SIZE) == 0)
            continue;
        struct peer *p = peer_get(e, heads[i].writer);
        if (!p) {
            ready = false;
            break;
        }
        if (p->forked)
            continue; /* a quarantined writer cannot hold a cut back */
        if (p->contiguous < heads[i].seq) {
            if (heads[i].seq > p->max_seq)
                p->max_seq = heads[i].seq;
            request_gap(e, p, heads[i].seq);
            ready = false;
            continue;
        }
        struct seen *s = seen_at(p, heads[i].seq, false);
        if (s && memcmp(s->hash, heads[i].hash, HASH_SIZE) != 0) {
            reject(e, PSL_ERR_BAD_SYNC);
            emit_request(e, REQ_GET_HASH, NULL, 0, 0, heads[i].hash);
            free(heads);
            drop_pending_sync(e);
            return;
        }
    }
    free(heads);
    if (!ready)
        return;
    memcpy(e->sync_next, e->sync_pending_hash, HASH_SIZE);
    if (e->sync_pending_from)
        e->sync_pending_from->adopted_epoch = e->sync_pending_epoch;
    e->st.epochs++;
    drop_pending_sync(e);
}

/* Epoch messages of a verified record (caller holds mu). Epochs are numbered per coordinator,
 * so a replacement coordinator is followed even though it counts from where it starts. */
static void on_epoch_record(struct scl_engine *e, struct peer *p, const struct record_view *v)
{
    uint64_t epoch;
    size_t n;
    struct cut_head one;
    bool from_coord = p->cert.role == ROLE_COORDINATOR || p->cert.role == ROLE_LEADER;
    if (v->h.type == REC_EOE) {
        /* An EOE has at most one head; a coordinator's EOE asks the workers to report. */
        if (cut_decode(v->payload, v->h.payload_size, &epoch, &one, 1, &n) != PSL_OK)
            return;
        if (from_coord && e->coordinator) {
            if (epoch > e->epoch)
                e->epoch = epoch; /* another coordinator: continue after its epochs */
        } else if (from_coord && epoch > p->answered_epoch) {
            p->answered_epoch = epoch;
            queue_ctrl(e, REC_EOE, epoch);
        } else if (!from_coord && e->coordinator && e->epoch_open && epoch == e->epoch) {
            p->eoe_epoch = epoch;
        }
        return;
    }
    if (v->h.type != REC_SYNC || !from_coord)
        return;
    size_t cap = v->h.payload_size / CUT_HEAD_SIZE + 1;
    struct cut_head *heads = malloc(cap * sizeof *heads);
    bool ok = heads && cut_decode(v->payload, v->h.payload_size, &epoch, heads, cap, &n) == PSL_OK;
    free(heads);
    if (!ok)
        return;
    if (e->coordinator) {
        if (epoch > e->epoch)
            e->epoch = epoch;
        return;
    }
    if (epoch <= p->adopted_epoch ||
        (e->sync_pending && e->sync_pending_from == p && epoch <= e->sync_pending_epoch))
        return;
    uint8_t *copy = malloc(v->h.payload_size);
    if (!copy)
        return;
    memcpy(copy, v->payload, v->h.payload_size);
    free(e->sync_pending);
    e->sync_pending = copy;
    e->sync_pending_size = v->h.payload_size;
    e->sync_pending_epoch = epoch;
    e->sync_pending_from = p;
    memcpy(e->sync_pending_hash, v->hash, HASH_SIZE);
}

/* Decrypts (DATA) and applies a verified record (caller holds mu). Returns a verification error
 * when the payload does not decrypt or decode; nothing is applied then. */
static psl_err apply_record(struct scl_engine *e, struct peer *p, const struct record_view *v)
{
    uint64_t high = v->h.lamport;
    if (high >= LAMPORT_MAX)
        return PSL_ERR_MALFORMED;
    if (v->h.type == REC_DATA) {
        size_t plain_size, count;
        uint8_t *plain = malloc(v->h.payload_size);
        if (!plain)
            return PSL_ERR_NOMEM;
        psl_err err = record_open(v, &p->key, plain, v->h.payload_size, &plain_size);
        if (!err)
            err = data_count(plain, plain_size, &count);
        struct kv_op *ops = NULL;
        if (!err && !(ops = malloc((count ? count : 1) * sizeof *ops)))
            err = PSL_ERR_NOMEM;
        if (!err)
            err = data_decode(plain, plain_size, ops, count, &count);
        for (size_t i = 0; !err && i < count; i++)
            if (ops[i].lamport >= LAMPORT_MAX)
                err = PSL_ERR_MALFORMED; /* checked for all ops before any is applied */
        for (size_t i = 0; !err && i < count; i++) {
            bool applied;
            err = memtable_apply(&e->mt, ops[i].op, ops[i].lamport, p->id, ops[i].key,
                                 ops[i].key_size, ops[i].value, ops[i].value_size, &applied);
            if (ops[i].lamport > high)
                high = ops[i].lamport;
        }
        if (!err)
            e->st.ops_applied += count;
        free(ops);
        secret_wipe(plain, v->h.payload_size);
        free(plain);
        if (err)
            return err;
    } else if (v->h.type == REC_EOE || v->h.type == REC_SYNC) {
        uint64_t epoch;
        size_t n;
        struct cut_head *heads = malloc((size_t)PSL_CUT_HEADS_MAX * sizeof *heads);
        psl_err err = heads ? cut_decode(v->payload, v->h.payload_size, &epoch, heads,
                                         PSL_CUT_HEADS_MAX, &n)
                            : PSL_ERR_NOMEM;
        free(heads);
        if (err)
            return err;
        /* A SYNC from a writer that is not a coordinator stays in its chain but is no cut:
         * on_epoch_record only follows coordinators. */
    }
    /* Lamport receive rule. */
    if (high > e->clock)
        e->clock = high;
    e->clock++;
    on_epoch_record(e, p, v);
    return PSL_OK;
}

static void hold_pending(struct scl_engine *e, struct peer *p, const struct record_view *v)
{
    /* Held or dropped, the record says the writer exists up to this seq (a claim: what is
     * fetched must still verify), so the tick keeps asking until its CERT is in. */
    if (p && v->h.seq > p->max_seq && v->h.seq <= (uint64_t)p->contiguous + SEEN_WINDOW)
        p->max_seq = v->h.seq;
    if (p && fetch_due(e, p)) {
        emit_request(e, REQ_GET_RANGE, v->h.writer, 1, 1, NULL);
        e->st.fetches++;
    }
    if (e->pending_count >= e->cfg.pending_records_max ||
        e->pending_bytes + v->raw_size > PENDING_BYTES_MAX) {
        reject(e, PSL_ERR_UNKNOWN_WRITER); /* dropped: fetched again once the CERT is in */
        return;
    }
    struct pending *h = malloc(sizeof *h + v->raw_size);
    if (!h)
        return;
    memcpy(h->writer, v->h.writer, HASH_SIZE);
    h->size = v->raw_size;
    memcpy(h->data, v->raw, v->raw_size);
    h->next = e->pending;
    e->pending = h;
    e->pending_count++;
    e->pending_bytes += v->raw_size;
}

/* Takes the held records of a writer out of the pending list (caller holds mu). */
static struct pending *take_pending(struct scl_engine *e, const uint8_t writer[HASH_SIZE])
{
    struct pending *mine = NULL, **pp = &e->pending;
    while (*pp) {
        struct pending *h = *pp;
        if (memcmp(h->writer, writer, HASH_SIZE) == 0) {
            *pp = h->next;
            e->pending_count--;
            e->pending_bytes -= h->size;
            h->next = mine;
            mine = h;
        } else {
            pp = &h->next;
        }
    }
    return mine;
}

static psl_err process_record(struct scl_engine *e, const uint8_t *data, size_t size)
{
    /* Our own records come back over the fabric: recognise them from the header alone, before
     * hashing the whole record. */
    struct record_header own;
    if (record_header_decode(&own, data, size) == PSL_OK &&
        memcmp(own.writer, e->keys.writer_id, HASH_SIZE) == 0 &&
        memcmp(own.capsule, e->meta.name, HASH_SIZE) == 0)
        return PSL_OK;
    struct record_view v;
    psl_err err = record_parse(&v, data, size);
    pthread_mutex_lock(&e->mu);
    if (err) {
        reject(e, err);
        pthread_mutex_unlock(&e->mu);
        return psl_err_outward(err);
    }
    if (memcmp(v.h.capsule, e->meta.name, HASH_SIZE) != 0) {
        reject(e, PSL_ERR_WRONG_CAPSULE);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    if (memcmp(v.h.writer, e->keys.writer_id, HASH_SIZE) == 0) {
        pthread_mutex_unlock(&e->mu); /* our own record coming back */
        return PSL_OK;
    }
    struct peer *p = peer_find(e, v.h.writer);
    if (p && p->forked) {
        reject(e, PSL_ERR_FORK);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    /* Same bytes as a record we verified: a duplicate, no need to verify again. */
    struct seen *known = p ? seen_at(p, v.h.seq, false) : NULL;
    if (known && known->known && memcmp(known->hash, v.hash, HASH_SIZE) == 0) {
        e->st.duplicates++;
        pthread_mutex_unlock(&e->mu);
        return PSL_OK;
    }
    struct writer_cert cert;
    bool has_cert = p && p->has_cert;
    if (has_cert)
        cert = p->cert;
    if (!has_cert && v.h.type != REC_CERT) {
        hold_pending(e, peer_get(e, v.h.writer), &v);
        pthread_mutex_unlock(&e->mu);
        return PSL_OK;
    }
    pthread_mutex_unlock(&e->mu);

    /* Verify outside the lock: certificate (for a CERT) and signature. */
    uint64_t now = clock_wall_ms();
    if (v.h.type == REC_CERT)
        err = record_check_cert(&v, &e->meta, now, &cert);
    else
        err = record_check(&v, &e->meta, &cert, now, NULL);
    pthread_mutex_lock(&e->mu);
    if (err) {
        reject(e, err);
        pthread_mutex_unlock(&e->mu);
        return psl_err_outward(err);
    }
    p = peer_get(e, v.h.writer);
    if (!p) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_NOMEM;
    }
    if (!p->has_cert) {
        uint8_t *k = secret_alloc(AEAD_KEY_SIZE);
        err = k ? record_key_derive(k, e->capsule_key, p->id) : PSL_ERR_NOMEM;
        if (!err)
            err = aead_key_init(&p->key, k);
        secret_free(k);
        if (err) {
            pthread_mutex_unlock(&e->mu);
            return err;
        }
        p->cert = cert;
        p->has_cert = true;
    }
    if (p->forked) {
        reject(e, PSL_ERR_FORK);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    /* Forks: a different valid record at this seq, or links that disagree with what we hold. */
    if (v.h.seq > (uint64_t)p->contiguous + SEEN_WINDOW) {
        reject(e, PSL_ERR_BAD_SEQ); /* too far ahead to track now; fetched when the gap closes */
        if (v.h.seq > p->max_seq)
            p->max_seq = (uint64_t)p->contiguous + SEEN_WINDOW;
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    struct seen *s = seen_at(p, v.h.seq, true);
    struct seen *before = seen_at(p, v.h.seq - 1, false);
    struct seen *after = seen_at(p, v.h.seq + 1, false);
    if (!s) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_NOMEM;
    }
    if (s->known) {
        if (memcmp(s->hash, v.hash, HASH_SIZE) == 0)
            e->st.duplicates++;
        else
            fork_alert(e, p, s->hash, v.hash);
        pthread_mutex_unlock(&e->mu);
        return PSL_OK;
    }
    /* Links that disagree with records we hold (DESIGN §3.3 step 5): refused and counted. A
     * fork is declared only on two records for one seq, which are evidence by themselves. */
    if ((before && before->known && memcmp(before->hash, v.h.prev, HASH_SIZE) != 0) ||
        (after && after->known && memcmp(after->prev, v.hash, HASH_SIZE) != 0)) {
        reject(e, PSL_ERR_BAD_PREV);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    if ((err = apply_record(e, p, &v))) {
        reject(e, err);
        pthread_mutex_unlock(&e->mu);
        return psl_err_outward(err);
    }
    memcpy(s->hash, v.hash, HASH_SIZE);
    memcpy(s->prev, v.h.prev, HASH_SIZE);
    s->known = true;
    if (v.h.seq > p->max_seq)
        p->max_seq = v.h.seq;
    advance_contiguous(p);
    e->st.records_applied++;
    if (v.h.seq > p->contiguous + 1)
        request_gap(e, p, v.h.seq - 1);
    try_adopt_sync(e);
    struct pending *held = v.h.type == REC_CERT ? take_pending(e, p->id) : NULL;
    pthread_mutex_unlock(&e->mu);
    /* Records that waited for this CERT go through the normal path now. */
    while (held) {
        struct pending *h = held;
        held = h->next;
        (void)process_record(e, h->data, h->size);
        free(h);
    }
    return PSL_OK;
}

psl_err scl_on_record(struct scl_engine *e, const uint8_t *data, size_t size)
{
    return process_record(e, data, size);
}

/* ---- durability ---- */

static void release_durable(struct scl_engine *e)
{
    uint64_t d = e->dur.durable;
    size_t drop = 0;
    while (drop < e->unacked_count && e->unacked[drop].seq <= d) {
        struct sealed *s = &e->unacked[drop];
        if (s->ops_cum > e->ops_durable)
            e->ops_durable = s->ops_cum;
        e->unacked_bytes -= s->size;
        free(s->data);
        drop++;
    }
    memmove(e->unacked, e->unacked + drop, (e->unacked_count - drop) * sizeof *e->unacked);
    e->unacked_count -= drop;
    e->progress_ms = e->now_ms;
    e->backoff = 1;
    e->st.durable_seq = d;
}

psl_err scl_on_ack(struct scl_engine *e, const uint8_t *data, size_t size)
{
    struct ack a;
    psl_err err = ack_decode(&a, data, size);
    if (!err)
        err = ack_verify(&a, &e->meta);
    int idx = err ? -1 : meta_replica_index(&e->meta, a.server_pk);
    pthread_mutex_lock(&e->mu);
    if (err || idx < 0) {
        reject(e, err ? err : PSL_ERR_NOT_REPLICA);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    if (memcmp(a.writer, e->keys.writer_id, HASH_SIZE) != 0 || a.seq > e->st.sealed_seq) {
        pthread_mutex_unlock(&e->mu);
        return PSL_OK; /* not for us, or for a seq we never sealed */
    }
    /* The ACK must name our own record at that seq, when we still hold it. */
    for (size_t i = 0; i < e->unacked_count; i++) {
        if (e->unacked[i].seq != a.seq)
            continue;
        if (memcmp(e->unacked[i].hash, a.record_hash, HASH_SIZE) != 0) {
            reject(e, PSL_ERR_FORK);
            pthread_mutex_unlock(&e->mu);
            return PSL_ERR_AUTH;
        }
        break;
    }
    if (durability_ack(&e->dur, (unsigned)idx, a.seq))
        release_durable(e);
    pthread_mutex_unlock(&e->mu);
    return PSL_OK;
}

/* ---- server replies ---- */

psl_err scl_on_reply(struct scl_engine *e, const uint8_t *data, size_t size)
{
    struct proto_reply r;
    psl_err err = proto_reply_open(&r, data, size);
    if (err || memcmp(r.capsule, e->meta.name, HASH_SIZE) != 0 ||
        meta_replica_index(&e->meta, r.server_pk) < 0) {
        pthread_mutex_lock(&e->mu);
        reject(e, err ? err : PSL_ERR_NOT_REPLICA);
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_AUTH;
    }
    if (r.status != REP_OK)
        return PSL_OK;
    if (r.type == REQ_GET_RANGE || r.type == REQ_GET_HASH) {
        struct proto_rec_iter it;
        if ((err = proto_rec_iter_init(&it, r.body, r.body_size)))
            return err;
        const uint8_t *rec;
        size_t n;
        while (proto_rec_iter_next(&it, &rec, &n, &err))
            (void)process_record(e, rec, n);
        return err;
    }
    if (r.type == REQ_GET_HEADS) {
        size_t count;
        if ((err = proto_heads_count(r.body, r.body_size, &count)))
            return err;
        pthread_mutex_lock(&e->mu);
        e->heads_answered |= 1u << meta_replica_index(&e->meta, r.server_pk);
        for (size_t i = 0; i < count; i++) {
            struct proto_head h;
            proto_head_at(r.body, i, &h);
            if (memcmp(h.writer, e->keys.writer_id, HASH_SIZE) == 0)
                continue;
            struct peer *p = peer_get(e, h.writer);
            if (p && !p->forked && h.contiguous > p->contiguous) {
                uint64_t claim = h.contiguous;
                if (claim > (uint64_t)p->contiguous + SEEN_WINDOW)
                    claim = (uint64_t)p->contiguous + SEEN_WINDOW;
                if (claim > p->max_seq)
                    p->max_seq = claim; /* a claim: fetched records must still verify */
                request_gap(e, p, h.contiguous);
            }
        }
        pthread_mutex_unlock(&e->mu);
    }
    return PSL_OK;
}

/* ---- timers ---- */

static void coordinator_tick(struct scl_engine *e)
{
    if (!e->coordinator || !e->cfg.epoch_ms)
        return;
    uint64_t since = e->now_ms - e->epoch_start_ms;
    if (!e->epoch_open) {
        if (since < e->cfg.epoch_ms)
            return;
        e->epoch++;
        e->epoch_open = true;
        e->epoch_start_ms = e->now_ms;
        queue_ctrl(e, REC_EOE, e->epoch); /* the request to report (RTS) */
        return;
    }
    size_t workers = 0, answered = 0;
    for (size_t i = 0; i < e->peer_count; i++) {
        struct peer *p = e->peers[i];
        if (!p->has_cert || p->forked || p->cert.role == ROLE_COORDINATOR)
            continue;
        workers++;
        answered += p->eoe_epoch >= e->epoch;
    }
    /* Close the epoch when every worker reported, or when the slow ones ran out of time. */
    if ((workers && answered == workers) || since >= e->cfg.epoch_ms) {
        queue_ctrl(e, REC_SYNC, e->epoch);
        e->epoch_open = false;
        e->epoch_start_ms = e->now_ms;
    }
}

void scl_tick(struct scl_engine *e, uint64_t now_ms)
{
    pthread_mutex_lock(&e->mu);
    e->now_ms = now_ms;
    /* Re-send what is not durable after a quiet period, backing off while nothing moves. */
    if (e->unacked_count &&
        now_ms - e->progress_ms >= (uint64_t)e->cfg.resend_ms * (e->backoff ? e->backoff : 1)) {
        for (size_t i = 0; i < e->unacked_count; i++)
            emit(e, SCL_ACT_PUBLISH, NULL, e->unacked[i].data, e->unacked[i].size);
        e->st.resent += e->unacked_count;
        e->progress_ms = now_ms;
        e->backoff = e->backoff && e->backoff < 8 ? e->backoff * 2 : 2;
    }
    for (size_t i = 0; i < e->peer_count; i++) {
        struct peer *p = e->peers[i];
        if (!p->forked && p->max_seq > p->contiguous)
            request_gap(e, p, p->max_seq);
    }
    /* Heads from the servers: until n - k + 1 of them answered (the freshness bound of a
     * joining writer), then periodically, which also reveals a lost last record. */
    unsigned answered = (unsigned)__builtin_popcount(e->heads_answered);
    uint64_t interval = answered >= e->meta.replica_count - e->meta.quorum_k + 1u
                            ? HEADS_POLL_MS
                            : e->cfg.fetch_retry_ms;
    if (now_ms - e->heads_asked_ms >= interval) {
        e->heads_asked_ms = now_ms;
        emit_request(e, REQ_GET_HEADS, NULL, 0, 0, NULL);
    }
    try_adopt_sync(e);
    coordinator_tick(e);
    pthread_mutex_unlock(&e->mu);
}

/* ---- actions and introspection ---- */

bool scl_poll(struct scl_engine *e, struct scl_action *out)
{
    pthread_mutex_lock(&e->mu);
    struct action_node *n = e->out_head;
    if (n) {
        e->out_head = n->next;
        if (!e->out_head)
            e->out_tail = NULL;
    }
    pthread_mutex_unlock(&e->mu);
    if (!n)
        return false;
    *out = n->a;
    free(n);
    return true;
}

void scl_get_stats(struct scl_engine *e, struct scl_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    pthread_mutex_unlock(&e->mu);
}

psl_err scl_digest(struct scl_engine *e, uint8_t out[HASH_SIZE])
{
    pthread_mutex_lock(&e->mu);
    psl_err err = memtable_digest(&e->mt, out);
    pthread_mutex_unlock(&e->mu);
    return err;
}

const uint8_t *scl_writer_id(const struct scl_engine *e)
{
    return e->keys.writer_id;
}

const uint8_t *scl_capsule_name(const struct scl_engine *e)
{
    return e->meta.name;
}

const uint8_t *scl_requester_id(const struct scl_engine *e)
{
    return e->requester;
}

uint64_t scl_peer_contiguous(struct scl_engine *e, const uint8_t writer[HASH_SIZE])
{
    pthread_mutex_lock(&e->mu);
    struct peer *p = peer_find(e, writer);
    uint64_t c = p ? p->contiguous : 0;
    pthread_mutex_unlock(&e->mu);
    return c;
}

bool scl_peer_forked(struct scl_engine *e, const uint8_t writer[HASH_SIZE])
{
    pthread_mutex_lock(&e->mu);
    struct peer *p = peer_find(e, writer);
    bool f = p && p->forked;
    pthread_mutex_unlock(&e->mu);
    return f;
}
