/* server.c: the capsule server (see server.h). Threads: fabric handler threads (records,
 * requests, gossip, replies) verify and queue; the store's committer thread commits and, after
 * each batch, publishes one ACK per writer whose contiguous head moved (or was asked for again
 * by a resend); an anti-entropy thread gossips heads. Shared state of a capsule (its writers'
 * certificates, records waiting for a certificate) is guarded by that capsule's mutex; counters
 * by the server's mutex. */
#include "capsuled/server.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/payload.h"
#include "capsule/proto.h"

#define FETCH_RETRY_NS 1000000000ull
#define AE_FETCH_BATCH 512u
#define PENDING_BYTES_MAX (64u << 20)
#define PENDING_TTL_NS (30ull * 1000000000u) /* a CERT that has not come by then is not coming */
#define REJECT_LOG_NS 1000000000ull
#define REACK_MAX 64u /* re-ACKs queued while ack_mu is taken (more: the writers re-send) */

struct writer_entry {
    uint8_t id[HASH_SIZE];
    bool used;
    bool has_cert;
    bool dirty;           /* an ACK of its head is due after the current batch */
    struct writer_cert cert;
    uint64_t fetch_ns;    /* when we last asked peers for its records or its CERT */
    uint64_t ae_contig;   /* our contiguous head at the last gossip round: still moving means
                           * live records are flowing, so anti-entropy waits */
    uint64_t acked_seq;   /* highest seq acknowledged (guarded by ack_mu) */
    uint32_t key_slot;    /* 1 + index of its ACK MAC key in the capsule's key arena (0:
                           * none yet); derived from its certified kx key at its first ACK */
    bool key_valid;       /* the slot holds the key of the current certificate */
};

struct pending_rec {
    struct pending_rec *next;
    uint64_t added_ns;
    uint8_t writer[HASH_SIZE];
    size_t size;
    uint8_t data[];
};

struct served {
    struct served *next;
    struct capsuled *srv;
    struct capsule_meta meta;
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    char t_rec[FABRIC_TOPIC_SIZE_MAX], t_req[FABRIC_TOPIC_SIZE_MAX];
    char t_req_me[FABRIC_TOPIC_SIZE_MAX], t_heads[FABRIC_TOPIC_SIZE_MAX];
    char t_rep_me[FABRIC_TOPIC_SIZE_MAX];
    uint64_t subs[5];
    size_t sub_count;
    pthread_mutex_t mu; /* guards the writer table, the dirty list and the pending list */
    pthread_mutex_t ack_mu; /* serialises ACKs so that each writer's ACKs never go backwards */
    struct writer_entry *w;
    size_t w_cap, w_count;
    uint8_t *ack_key;    /* scratch copy of the key of the ACK being made (guarded by ack_mu) */
    uint8_t reack[REACK_MAX][HASH_SIZE]; /* writers whose re-ACK found ack_mu taken: whoever
                                          * holds it sends them (guarded by mu) */
    size_t reack_count;
    uint8_t *keys;       /* writers' ACK keys, key_count of key_cap slots: one secret arena
                          * (a sodium_malloc per writer would cost 4 mappings each) */
    uint32_t key_cap, key_count;
    size_t *dirty;       /* indices into w of writers due an ACK */
    size_t dirty_count, dirty_cap;
    struct pending_rec *pending;
    size_t pending_count, pending_bytes;
};

struct capsuled {
    struct capsuled_config cfg;
    struct kx_keypair kx; /* the server key's X25519 form, for ACK keys */
    struct store *store;
    pthread_mutex_t mu; /* guards caps list and counters */
    struct served *caps;
    struct capsuled_stats st;
    uint64_t reject_logged_ns[PSL_ERR__COUNT];
    uint8_t requester[HASH_SIZE];
    char server_hex[2 * SIGN_PK_SIZE + 1];
    char requester_hex[2 * HASH_SIZE + 1];
    pthread_t ae_thread;
    pthread_cond_t ae_cv;
    bool ae_running;
    bool stopping;
    uint8_t owners[CAPSULED_OWNERS_MAX][SIGN_PK_SIZE]; /* admitted owners (capsuled_admit) */
    size_t owner_count;
    uint64_t admit_sub;
    bool admit_subscribed;
};

struct append_ctx {
    struct served *sc;
    uint8_t writer[HASH_SIZE];
};

/* Counts a refused record by reason and logs it, at most once a second per reason (a peer
 * sending garbage must not flood the log). */
static void count_reject(struct capsuled *s, psl_err err)
{
    unsigned r = (unsigned)err < PSL_ERR__COUNT ? (unsigned)err : PSL_ERR_MALFORMED;
    uint64_t now = clock_mono_ns();
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->st.rejected[r];
    bool log = now - s->reject_logged_ns[r] >= REJECT_LOG_NS;
    if (log)
        s->reject_logged_ns[r] = now;
    pthread_mutex_unlock(&s->mu);
    if (log)
        LOG_WARN("capsuled", "msg=\"record refused\" reason=%s total=%llu", psl_err_name((psl_err)r),
                 (unsigned long long)n);
}

static void count_add(struct capsuled *s, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    *field += n;
    pthread_mutex_unlock(&s->mu);
}

/* ---- writer table (open addressing on the writer id; caller holds sc->mu) ---- */

static struct writer_entry *writer_slot(struct served *sc, const uint8_t id[HASH_SIZE], bool create)
{
    if (create && (sc->w_count + 1) * 2 > sc->w_cap) {
        if (sc->w_count >= PSL_WRITERS_MAX)
            return NULL;
        size_t cap = sc->w_cap ? sc->w_cap * 2 : 64;
        struct writer_entry *n = calloc(cap, sizeof *n);
        if (!n)
            return NULL;
        /* Indices move: the dirty list is rebuilt with the new ones (as many entries as
         * before are dirty, so it has room). */
        sc->dirty_count = 0;
        for (size_t i = 0; i < sc->w_cap; i++) {
            if (!sc->w[i].used)
                continue;
            uint64_t h;
            memcpy(&h, sc->w[i].id, sizeof h);
            size_t j = (size_t)h & (cap - 1);
            while (n[j].used)
                j = (j + 1) & (cap - 1);
            n[j] = sc->w[i];
            if (n[j].dirty)
                sc->dirty[sc->dirty_count++] = j;
        }
        free(sc->w);
        sc->w = n;
        sc->w_cap = cap;
    }
    if (!sc->w_cap)
        return NULL;
    uint64_t h;
    memcpy(&h, id, sizeof h);
    size_t j = (size_t)h & (sc->w_cap - 1);
    while (sc->w[j].used) {
        if (memcmp(sc->w[j].id, id, HASH_SIZE) == 0)
            return &sc->w[j];
        j = (j + 1) & (sc->w_cap - 1);
    }
    if (!create)
        return NULL;
    memset(&sc->w[j], 0, sizeof sc->w[j]);
    sc->w[j].used = true;
    memcpy(sc->w[j].id, id, HASH_SIZE);
    sc->w_count++;
    return &sc->w[j];
}

static void mark_dirty(struct served *sc, struct writer_entry *e)
{
    if (e->dirty)
        return;
    if (sc->dirty_count == sc->dirty_cap) {
        size_t cap = sc->dirty_cap ? sc->dirty_cap * 2 : 64;
        size_t *n = realloc(sc->dirty, cap * sizeof *n);
        if (!n)
            return; /* the writer's next resend asks for the ACK again */
        sc->dirty = n;
        sc->dirty_cap = cap;
    }
    e->dirty = true;
    sc->dirty[sc->dirty_count++] = (size_t)(e - sc->w);
}

/* A writer's certificate (re)learned: a new kx key means a new ACK key. Under sc->mu. */
static void set_cert(struct writer_entry *e, const struct writer_cert *c)
{
    if (e->has_cert && memcmp(e->cert.kx_pk, c->kx_pk, KX_PK_SIZE) != 0)
        e->key_valid = false;
    e->cert = *c;
    e->has_cert = true;
}

/* What publish_ack needs of the writer, under sc->mu: -1 no ACK (unknown, backwards, or no
 * certificate: *unkeyed says which), 1 its key copied into sc->ack_key, 0 no key yet (kx set
 * to its certified kx key, to derive one). Records the ACK's seq as acknowledged. */
static int ack_key_copy(struct served *sc, const uint8_t writer[HASH_SIZE], uint64_t seq,
                        uint8_t kx[KX_PK_SIZE], bool *unkeyed)
{
    int r = -1;
    *unkeyed = false;
    pthread_mutex_lock(&sc->mu);
    struct writer_entry *e = writer_slot(sc, writer, false);
    if (e && seq < e->acked_seq)
        goto out;
    if (!e || !e->has_cert) { /* stored, so certified: its entry or certificate is missing */
        *unkeyed = true;
        goto out;
    }
    e->acked_seq = seq;
    if (e->key_slot && e->key_valid) {
        memcpy(sc->ack_key, sc->keys + (size_t)(e->key_slot - 1) * ACK_KEY_SIZE, ACK_KEY_SIZE);
        r = 1;
    } else {
        memcpy(kx, e->cert.kx_pk, KX_PK_SIZE);
        r = 0;
    }
out:
    pthread_mutex_unlock(&sc->mu);
    return r;
}

/* Keeps the key just derived into sc->ack_key for the writer, if its certificate still has
 * that kx key (best effort: without room it is derived again next time). Takes sc->mu. */
static void ack_key_keep(struct served *sc, const uint8_t writer[HASH_SIZE],
                         const uint8_t kx[KX_PK_SIZE])
{
    pthread_mutex_lock(&sc->mu);
    struct writer_entry *e = writer_slot(sc, writer, false);
    if (!e || !e->has_cert || memcmp(e->cert.kx_pk, kx, KX_PK_SIZE) != 0)
        goto out;
    if (!e->key_slot) {
        if (sc->key_count == sc->key_cap) {
            uint32_t cap = sc->key_cap ? sc->key_cap * 2 : 64;
            uint8_t *n = secret_alloc((size_t)cap * ACK_KEY_SIZE);
            if (!n)
                goto out;
            if (sc->key_count)
                memcpy(n, sc->keys, (size_t)sc->key_count * ACK_KEY_SIZE);
            secret_free(sc->keys); /* wipes */
            sc->keys = n;
            sc->key_cap = cap;
        }
        e->key_slot = ++sc->key_count;
    }
    memcpy(sc->keys + (size_t)(e->key_slot - 1) * ACK_KEY_SIZE, sc->ack_key, ACK_KEY_SIZE);
    e->key_valid = true;
out:
    pthread_mutex_unlock(&sc->mu);
}

/* ---- publishing ---- */

static void publish_request(struct served *sc, const char *topic, uint8_t type,
                            const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to)
{
    struct proto_req q = {.type = type, .request_id = rng_u64(), .from = from, .to = to};
    memcpy(q.requester, sc->srv->requester, HASH_SIZE);
    memcpy(q.capsule, sc->meta.name, HASH_SIZE);
    if (writer)
        memcpy(q.writer, writer, HASH_SIZE);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, buf);
    (void)fabric_publish(sc->srv->cfg.fabric, topic, buf, n);
}

/* Makes and publishes the ACK of a writer's contiguous head (caller holds ack_mu). */
static void ack_locked(struct served *sc, const uint8_t writer[HASH_SIZE])
{
    struct capsuled *s = sc->srv;
    bool unkeyed = false;
    struct store_head h;
    if (store_head_get(s->store, sc->meta.name, writer, &h) != PSL_OK || h.contiguous == 0)
        return;
    uint8_t kx[KX_PK_SIZE];
    int have = ack_key_copy(sc, writer, h.contiguous, kx, &unkeyed);
    if (have == 0) {
        /* The writer's first ACK: two X25519 operations, outside sc->mu. */
        if (ack_key_for_writer(sc->ack_key, &s->kx, s->cfg.key->pk, kx) == PSL_OK) {
            ack_key_keep(sc, writer, kx);
        } else {
            unkeyed = true;
            have = -1;
        }
    }
    struct ack a = {.seq = h.contiguous};
    memcpy(a.capsule, sc->meta.name, HASH_SIZE);
    memcpy(a.writer, writer, HASH_SIZE);
    memcpy(a.record_hash, h.hash, HASH_SIZE);
    psl_err err = have < 0 ? PSL_ERR_AUTH : ack_sign(&a, s->cfg.key, sc->ack_key);
    secret_wipe(sc->ack_key, ACK_KEY_SIZE);
    /* A stored writer whose entry or certificate is not in memory (the writer table is full)
     * or whose kx key is unusable: its records stay stored, unacknowledged here. */
    if (unkeyed)
        count_add(s, &s->st.acks_unkeyed, 1);
    if (err)
        return;
    uint8_t wire[ACK_SIZE];
    ack_encode(&a, wire);
    char whex[2 * HASH_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, writer, HASH_SIZE);
    topic_capsule(topic, sc->meta.name, "ack", whex);
    if (fabric_publish(s->cfg.fabric, topic, wire, sizeof wire) == PSL_OK)
        count_add(s, &s->st.acks_sent, 1);
}

/* Publishes the ACK of a writer's contiguous head: from the committer (or the thread that
 * committed inline) after a batch, or from a handler when a re-sent record shows that an
 * earlier ACK was lost (again). Under ack_mu, the head read and the publish are one step, so a
 * writer's ACKs from this server never go backwards on a connection. A handler does not wait
 * for ack_mu: on the in-process bus the holder's publish may wait for room that only the
 * handler's own dispatcher can make. It queues the writer instead, and whoever holds ack_mu
 * sends the queued ACKs before letting go. */
static void publish_ack(struct served *sc, const uint8_t writer[HASH_SIZE], bool again)
{
    if (!again) {
        pthread_mutex_lock(&sc->ack_mu);
    } else if (pthread_mutex_trylock(&sc->ack_mu) != 0) {
        pthread_mutex_lock(&sc->mu);
        bool queued = false;
        for (size_t i = 0; i < sc->reack_count && !queued; i++)
            queued = memcmp(sc->reack[i], writer, HASH_SIZE) == 0;
        if (!queued && sc->reack_count < REACK_MAX)
            memcpy(sc->reack[sc->reack_count++], writer, HASH_SIZE);
        pthread_mutex_unlock(&sc->mu);
        /* The holder may have looked at the queue already: try once more to send it here. */
        if (pthread_mutex_trylock(&sc->ack_mu) != 0)
            return;
        writer = NULL;
    }
    if (writer)
        ack_locked(sc, writer);
    for (;;) {
        uint8_t id[HASH_SIZE];
        pthread_mutex_lock(&sc->mu);
        bool any = sc->reack_count > 0;
        if (any)
            memcpy(id, sc->reack[--sc->reack_count], HASH_SIZE);
        pthread_mutex_unlock(&sc->mu);
        if (!any)
            break;
        ack_locked(sc, id);
    }
    pthread_mutex_unlock(&sc->ack_mu);
}

static void on_batch_done(void *ctx)
{
    struct capsuled *s = ctx;
    pthread_mutex_lock(&s->mu);
    struct served *caps = s->caps;
    pthread_mutex_unlock(&s->mu);
    for (struct served *sc = caps; sc; sc = sc->next) {
        /* Take the dirty list, then publish without holding the lock. */
        pthread_mutex_lock(&sc->mu);
        size_t n = sc->dirty_count;
        uint8_t(*ids)[HASH_SIZE] = n ? malloc(n * HASH_SIZE) : NULL;
        for (size_t i = 0; i < n; i++) {
            struct writer_entry *e = &sc->w[sc->dirty[i]];
            e->dirty = false;
            if (ids)
                memcpy(ids[i], e->id, HASH_SIZE);
        }
        sc->dirty_count = 0;
        pthread_mutex_unlock(&sc->mu);
        for (size_t i = 0; ids && i < n; i++)
            publish_ack(sc, ids[i], false);
        free(ids);
    }
}

static void on_stored(void *ctx, psl_err err, const uint8_t hash[HASH_SIZE])
{
    (void)hash;
    struct append_ctx *ac = ctx;
    struct served *sc = ac->sc;
    if (err == PSL_OK) {
        pthread_mutex_lock(&sc->mu);
        struct writer_entry *e = writer_slot(sc, ac->writer, false);
        if (e)
            mark_dirty(sc, e);
        pthread_mutex_unlock(&sc->mu);
        count_add(sc->srv, &sc->srv->st.accepted, 1);
    } else {
        count_reject(sc->srv, err);
    }
    free(ac);
}

/* ---- records ---- */

static void handle_record(struct served *sc, const uint8_t *data, size_t size, bool from_peer);

static void append_verified(struct served *sc, const struct record_view *v)
{
    struct append_ctx *ac = malloc(sizeof *ac);
    if (!ac) {
        count_reject(sc->srv, PSL_ERR_NOMEM);
        return;
    }
    ac->sc = sc;
    memcpy(ac->writer, v->h.writer, HASH_SIZE);
    psl_err err = store_append(sc->srv->store, v, on_stored, ac);
    if (err) {
        free(ac);
        count_reject(sc->srv, err);
    }
}

/* Holds a record of a writer whose CERT has not arrived, within bounds, and asks peers for the
 * CERT. Past the bounds the record is dropped (anti-entropy brings it back later). */
static void hold_for_cert(struct served *sc, const struct record_view *v)
{
    struct capsuled *s = sc->srv;
    bool ask = false;
    pthread_mutex_lock(&sc->mu);
    struct writer_entry *e = writer_slot(sc, v->h.writer, true);
    if (!e || sc->pending_count >= s->cfg.pending_records_max ||
        sc->pending_bytes + v->raw_size > PENDING_BYTES_MAX) {
        pthread_mutex_unlock(&sc->mu);
        count_reject(s, PSL_ERR_UNKNOWN_WRITER);
        return;
    }
    struct pending_rec *p = malloc(sizeof *p + v->raw_size);
    if (p) {
        p->added_ns = clock_mono_ns();
        memcpy(p->writer, v->h.writer, HASH_SIZE);
        p->size = v->raw_size;
        memcpy(p->data, v->raw, v->raw_size);
        p->next = sc->pending;
        sc->pending = p;
        sc->pending_count++;
        sc->pending_bytes += v->raw_size;
    }
    uint64_t now = clock_mono_ns();
    if (now - e->fetch_ns > FETCH_RETRY_NS) {
        e->fetch_ns = now;
        ask = true;
    }
    pthread_mutex_unlock(&sc->mu);
    if (ask)
        publish_request(sc, sc->t_req, REQ_GET_RANGE, v->h.writer, 1, 1);
}

/* After a writer's CERT is accepted, runs its held records through the normal path. */
static void release_pending(struct served *sc, const uint8_t writer[HASH_SIZE])
{
    pthread_mutex_lock(&sc->mu);
    struct pending_rec *mine = NULL, **pp = &sc->pending;
    while (*pp) {
        struct pending_rec *p = *pp;
        if (memcmp(p->writer, writer, HASH_SIZE) == 0) {
            *pp = p->next;
            sc->pending_count--;
            sc->pending_bytes -= p->size;
            p->next = mine;
            mine = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    while (mine) {
        struct pending_rec *p = mine;
        mine = p->next;
        handle_record(sc, p->data, p->size, false);
        free(p);
    }
}

/* A verified CHECKPOINT record (signature and certificate checked). Only a compactor may
 * publish one: from any other writer it is refused and changes nothing. In a collecting capsule a
 * checkpoint newer than the last applied one drops what it covers, durably, in one transaction. */
static void handle_checkpoint(struct served *sc, const struct record_view *v,
                              const struct writer_cert *cert)
{
    struct capsuled *s = sc->srv;
    struct checkpoint cp;
    psl_err err = cert->role == ROLE_COMPACTOR
                      ? checkpoint_decode(&cp, v->payload, v->h.payload_size)
                      : PSL_ERR_CERT_ROLE;
    if (!err && cp.index_seq >= v->h.seq)
        err = PSL_ERR_MALFORMED; /* the notice follows its index in the same chain */
    if (err) {
        count_add(s, &s->st.checkpoints_refused, 1);
        count_reject(s, err);
        return;
    }
    append_verified(sc, v);
    if (sc->meta.retention != RETENTION_COLLECT_COVERED) {
        count_add(s, &s->st.checkpoints_kept, 1);
        return;
    }
    struct store_collect_result res;
    char name[2 * HASH_SIZE + 1];
    hex_encode(name, sc->meta.name, HASH_SIZE);
    if ((err = store_collect(s->store, sc->meta.name, v->hash, v->h.writer, &cp, &res))) {
        LOG_ERROR("capsuled", "msg=\"collection failed\" capsule=%.16s generation=%llu err=%s", name,
                  (unsigned long long)cp.generation, psl_err_name(err));
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (res.outcome == STORE_COLLECT_APPLIED) {
        s->st.checkpoints_applied++;
        s->st.collected_records += res.records;
        s->st.collected_bytes += res.bytes;
    } else if (res.outcome == STORE_COLLECT_STALE) {
        s->st.checkpoints_stale++;
    } else {
        s->st.checkpoints_kept++;
    }
    pthread_mutex_unlock(&s->mu);
    if (res.outcome == STORE_COLLECT_APPLIED)
        LOG_INFO("capsuled",
                 "msg=\"collected\" capsule=%.16s generation=%llu records=%llu bytes=%llu "
                 "writers=%u skipped=%u rebased=%u live_blocks=%zu",
                 name, (unsigned long long)cp.generation, (unsigned long long)res.records,
                 (unsigned long long)res.bytes, res.writers, res.skipped, res.rebased,
                 cp.live_count);
}

static void handle_record(struct served *sc, const uint8_t *data, size_t size, bool from_peer)
{
    struct capsuled *s = sc->srv;
    count_add(s, from_peer ? &s->st.ae_fetched : &s->st.received, 1);
    struct record_view v;
    psl_err err = record_parse(&v, data, size);
    if (err) {
        count_reject(s, err);
        return;
    }
    if (memcmp(v.h.capsule, sc->meta.name, HASH_SIZE) != 0) {
        count_reject(s, PSL_ERR_WRONG_CAPSULE);
        return;
    }
    /* Already stored: the bytes hash to a record we verified before, so skip the signature
     * check. A writer's re-send means our ACK was lost: acknowledge again at once. */
    if (store_has(s->store, v.hash)) {
        count_add(s, &s->st.duplicates, 1);
        if (!from_peer)
            publish_ack(sc, v.h.writer, true);
        return;
    }
    /* Below the writer's collected horizon: covered by an applied checkpoint, so it is not stored
     * again; a writer re-sending it still gets the ACK of its (covered) head. */
    if (sc->meta.retention == RETENTION_COLLECT_COVERED && v.h.seq > 1 &&
        v.h.seq < store_horizon_get(s->store, sc->meta.name, v.h.writer)) {
        count_add(s, &s->st.below_horizon, 1);
        if (!from_peer)
            publish_ack(sc, v.h.writer, true);
        return;
    }
    uint64_t now = clock_wall_ms();
    if (v.h.type == REC_CERT) {
        struct writer_cert c;
        if ((err = record_check_cert(&v, &sc->meta, now, &c))) {
            count_reject(s, err);
            return;
        }
        pthread_mutex_lock(&sc->mu);
        struct writer_entry *e = writer_slot(sc, c.writer_id, true);
        if (e)
            set_cert(e, &c);
        pthread_mutex_unlock(&sc->mu);
        if (!e) {
            count_reject(s, PSL_ERR_TOO_LARGE);
            return;
        }
        append_verified(sc, &v);
        release_pending(sc, c.writer_id);
        return;
    }
    struct writer_cert cert;
    bool known = false;
    pthread_mutex_lock(&sc->mu);
    struct writer_entry *e = writer_slot(sc, v.h.writer, false);
    if (e && e->has_cert) {
        cert = e->cert;
        known = true;
    }
    pthread_mutex_unlock(&sc->mu);
    if (!known) {
        hold_for_cert(sc, &v);
        return;
    }
    if ((err = record_check(&v, &sc->meta, &cert, now, NULL))) {
        count_reject(s, err);
        return;
    }
    if (v.h.type == REC_CHECKPOINT) {
        handle_checkpoint(sc, &v, &cert);
        return;
    }
    append_verified(sc, &v);
}

static void on_record_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    handle_record(ctx, data, size, false);
}

/* ---- requests ---- */

struct reply_builder {
    struct served *sc;
    const struct proto_req *q;
    uint8_t *buf;
    size_t cap;
    size_t body;     /* body bytes written after the header */
    uint32_t count;  /* records in the body */
    bool failed;
};

/* Bodies of every reply but GET_META start with an entry count. */
static bool body_has_count(uint8_t type)
{
    return type != REQ_GET_META;
}

static void reply_send(struct reply_builder *b, uint8_t status, bool more)
{
    struct capsuled *s = b->sc->srv;
    struct proto_reply r = {.type = b->q->type, .request_id = b->q->request_id,
                            .status = status, .more = more ? 1 : 0};
    memcpy(r.capsule, b->sc->meta.name, HASH_SIZE);
    if (body_has_count(b->q->type))
        put_le32(b->buf + PROTO_REPLY_HEADER_SIZE, b->count);
    size_t n = proto_reply_seal(&r, s->cfg.key, b->buf, b->body);
    char rhex[2 * HASH_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(rhex, b->q->requester, HASH_SIZE);
    topic_capsule(topic, b->sc->meta.name, "rep", rhex);
    (void)fabric_publish(s->cfg.fabric, topic, b->buf, n);
    b->body = body_has_count(b->q->type) ? 4 : 0;
    b->count = 0;
}

/* Makes room for n more body bytes, sending a partial reply first when the message would grow
 * past the fabric limit. */
static bool reply_reserve(struct reply_builder *b, size_t n)
{
    size_t limit = FABRIC_MSG_SIZE_MAX - PROTO_REPLY_HEADER_SIZE - SIGN_SIG_SIZE;
    if (b->body + n > limit && b->count) {
        reply_send(b, REP_OK, true);
    }
    if (b->body + n > limit)
        return false;
    size_t need = PROTO_REPLY_HEADER_SIZE + b->body + n + SIGN_SIG_SIZE;
    if (need > b->cap) {
        size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb)
            return false;
        b->buf = nb;
        b->cap = cap;
    }
    return true;
}

static bool reply_add_record(void *ctx, const uint8_t *rec, size_t size)
{
    struct reply_builder *b = ctx;
    if (!reply_reserve(b, 4 + size)) {
        b->failed = true;
        return false;
    }
    put_le32(b->buf + PROTO_REPLY_HEADER_SIZE + b->body, (uint32_t)size);
    memcpy(b->buf + PROTO_REPLY_HEADER_SIZE + b->body + 4, rec, size);
    b->body += 4 + size;
    b->count++;
    return true;
}

struct stale_ctx {
    uint8_t hash[HASH_SIZE];
    bool found;
};

static bool stale_hash(void *ctx, const uint8_t *rec, size_t size)
{
    struct stale_ctx *c = ctx;
    struct record_view v;
    if (record_parse(&v, rec, size) == PSL_OK) {
        memcpy(c->hash, v.hash, HASH_SIZE);
        c->found = true;
    }
    return false;
}

static bool reply_add_head(void *ctx, const struct store_head *h)
{
    struct reply_builder *b = ctx;
    struct capsuled *s = b->sc->srv;
    struct proto_head ph = {.contiguous = h->contiguous, .max_seq = h->max_seq, .forked = h->forked};
    memcpy(ph.writer, h->writer, HASH_SIZE);
    memcpy(ph.hash, h->hash, HASH_SIZE);
    uint32_t stale = s->cfg.stale_heads_by;
    if (stale && ph.contiguous > 0) {
        /* Test double: pretend to lag behind by `stale` records (a rolled-back server). */
        uint64_t seq = ph.contiguous > stale ? ph.contiguous - stale : 0;
        struct stale_ctx c = {.found = false};
        if (seq && store_range(s->store, b->sc->meta.name, h->writer, seq, seq, stale_hash, &c))
            c.found = false;
        ph.contiguous = c.found ? seq : 0;
        ph.max_seq = ph.contiguous;
        memcpy(ph.hash, c.hash, HASH_SIZE);
    }
    if (!reply_reserve(b, PROTO_HEAD_ENTRY_SIZE) || b->count == PSL_WRITERS_MAX) {
        b->failed = true;
        return false;
    }
    proto_head_put(b->buf + PROTO_REPLY_HEADER_SIZE + b->body, &ph);
    b->body += PROTO_HEAD_ENTRY_SIZE;
    b->count++;
    return true;
}

/* Builds the heads body (count + entries) into b; used by GET_HEADS and by gossip. */
static psl_err build_heads(struct reply_builder *b)
{
    b->body = 4;
    b->count = 0;
    psl_err err = store_heads(b->sc->srv->store, b->sc->meta.name, reply_add_head, b);
    if (!err && b->failed)
        err = PSL_ERR_TOO_LARGE;
    put_le32(b->buf + PROTO_REPLY_HEADER_SIZE, b->count);
    return err;
}

static void serve_request(struct served *sc, const uint8_t *data, size_t size)
{
    struct capsuled *s = sc->srv;
    count_add(s, &s->st.requests, 1);
    struct proto_req q;
    psl_err err = proto_req_decode(&q, data, size);
    if (err || memcmp(q.capsule, sc->meta.name, HASH_SIZE) != 0) {
        count_add(s, &s->st.requests_refused, 1);
        return; /* no reply: the requester id of a malformed request cannot be trusted */
    }
    struct reply_builder b = {.sc = sc, .q = &q, .cap = 64 << 10};
    b.buf = malloc(b.cap);
    if (!b.buf)
        return;
    uint8_t status = REP_OK;
    switch (q.type) {
    case REQ_GET_HASH:
        b.body = 4;
        err = store_get(s->store, q.hash, reply_add_record, &b);
        status = err == PSL_ERR_NOT_FOUND ? REP_NOT_FOUND : err ? REP_BUSY : REP_OK;
        break;
    case REQ_GET_RANGE:
        b.body = 4;
        err = PSL_OK;
        if (sc->meta.retention == RETENTION_COLLECT_COVERED) {
            /* The range reaches below the collected horizon: the applied checkpoint comes
             * first, so that the requester learns why those records are gone. */
            uint64_t lo = q.from < 2 ? 2 : q.from;
            struct store_gc_state g;
            if (lo <= q.to && lo < store_horizon_get(s->store, q.capsule, q.writer) &&
                store_gc_state_get(s->store, q.capsule, &g) == PSL_OK &&
                store_get(s->store, g.record_hash, reply_add_record, &b) == PSL_ERR_IO)
                err = PSL_ERR_IO;
        }
        if (!err)
            err = store_range(s->store, q.capsule, q.writer, q.from, q.to, reply_add_record, &b);
        status = err ? REP_BUSY : REP_OK;
        break;
    case REQ_GET_HEADS:
        status = build_heads(&b) ? REP_BUSY : REP_OK;
        break;
    case REQ_GET_META:
        if (reply_reserve(&b, sc->meta_size)) {
            memcpy(b.buf + PROTO_REPLY_HEADER_SIZE, sc->meta_raw, sc->meta_size);
            b.body = sc->meta_size;
        }
        break;
    default:
        break;
    }
    if (b.failed)
        status = REP_BUSY;
    if (status != REP_OK) { /* an error reply carries an empty body */
        b.body = body_has_count(q.type) ? 4 : 0;
        b.count = 0;
    }
    reply_send(&b, status, false);
    free(b.buf);
}

static void on_request_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    serve_request(ctx, data, size);
}

/* ---- anti-entropy ---- */

static void gossip_heads(struct served *sc)
{
    struct proto_req q = {.type = REQ_GET_HEADS};
    memcpy(q.requester, sc->srv->requester, HASH_SIZE);
    struct reply_builder b = {.sc = sc, .q = &q, .cap = 64 << 10};
    b.buf = malloc(b.cap);
    if (!b.buf)
        return;
    if (build_heads(&b) == PSL_OK) {
        struct proto_reply r = {.type = REQ_GET_HEADS, .status = REP_OK};
        memcpy(r.capsule, sc->meta.name, HASH_SIZE);
        size_t n = proto_reply_seal(&r, sc->srv->cfg.key, b.buf, b.body);
        (void)fabric_publish(sc->srv->cfg.fabric, sc->t_heads, b.buf, n);
    }
    free(b.buf);
}

/* A peer's heads: fetch what it has beyond our contiguous heads, from it. */
static void on_heads_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct served *sc = ctx;
    struct capsuled *s = sc->srv;
    struct proto_reply r;
    size_t count;
    if (proto_reply_open(&r, data, size) || r.type != REQ_GET_HEADS ||
        memcmp(r.capsule, sc->meta.name, HASH_SIZE) != 0 ||
        meta_replica_index(&sc->meta, r.server_pk) < 0 ||
        memcmp(r.server_pk, s->cfg.key->pk, SIGN_PK_SIZE) == 0 ||
        proto_heads_count(r.body, r.body_size, &count))
        return;
    char peer_hex[2 * SIGN_PK_SIZE + 1], peer_topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(peer_hex, r.server_pk, SIGN_PK_SIZE);
    topic_capsule(peer_topic, sc->meta.name, "req", peer_hex);
    for (size_t i = 0; i < count; i++) {
        struct proto_head h;
        proto_head_at(r.body, i, &h);
        struct store_head mine;
        if (store_head_get(s->store, sc->meta.name, h.writer, &mine) != PSL_OK)
            mine.contiguous = 0;
        if (h.contiguous <= mine.contiguous)
            continue;
        uint64_t now = clock_mono_ns();
        pthread_mutex_lock(&sc->mu);
        struct writer_entry *e = writer_slot(sc, h.writer, true);
        /* Ask only when our head stood still since the last round: while it moves, live records
         * are arriving and fetching them again would only cost verifications. */
        bool moving = e && mine.contiguous > e->ae_contig;
        if (e)
            e->ae_contig = mine.contiguous;
        bool ask = e && !moving && now - e->fetch_ns > FETCH_RETRY_NS / 2;
        if (ask)
            e->fetch_ns = now;
        pthread_mutex_unlock(&sc->mu);
        if (!ask)
            continue;
        uint64_t from = mine.contiguous + 1;
        uint64_t to = h.contiguous - from >= AE_FETCH_BATCH ? from + AE_FETCH_BATCH - 1 : h.contiguous;
        publish_request(sc, peer_topic, REQ_GET_RANGE, h.writer, from, to);
    }
}

/* Replies to our own requests (anti-entropy fetches, CERT fetches): feed the records in. */
static void on_reply_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct served *sc = ctx;
    struct proto_reply r;
    if (proto_reply_open(&r, data, size) || r.status != REP_OK ||
        (r.type != REQ_GET_RANGE && r.type != REQ_GET_HASH) ||
        meta_replica_index(&sc->meta, r.server_pk) < 0)
        return;
    struct proto_rec_iter it;
    if (proto_rec_iter_init(&it, r.body, r.body_size))
        return;
    const uint8_t *rec;
    size_t rec_size;
    psl_err err;
    bool got_any = false;
    while (proto_rec_iter_next(&it, &rec, &rec_size, &err)) {
        handle_record(sc, rec, rec_size, true);
        got_any = true;
    }
    if (got_any) {
        /* More may be missing: allow the next gossip round to ask again at once. */
        struct record_view v;
        if (record_parse(&v, rec, rec_size) == PSL_OK) {
            pthread_mutex_lock(&sc->mu);
            struct writer_entry *e = writer_slot(sc, v.h.writer, false);
            if (e)
                e->fetch_ns = 0;
            pthread_mutex_unlock(&sc->mu);
        }
    }
}

/* Drops held records whose writer's CERT never came (anti-entropy brings them back if it does). */
static void expire_pending(struct served *sc)
{
    uint64_t now = clock_mono_ns();
    size_t dropped = 0;
    pthread_mutex_lock(&sc->mu);
    struct pending_rec **pp = &sc->pending;
    while (*pp) {
        struct pending_rec *p = *pp;
        if (now - p->added_ns > PENDING_TTL_NS) {
            *pp = p->next;
            sc->pending_count--;
            sc->pending_bytes -= p->size;
            free(p);
            dropped++;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    for (size_t i = 0; i < dropped; i++)
        count_reject(sc->srv, PSL_ERR_UNKNOWN_WRITER);
}

static void *ae_main(void *arg)
{
    struct capsuled *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)s->cfg.anti_entropy_ms * 1000000u);
        pthread_cond_timedwait(&s->ae_cv, &s->mu, &ts);
        if (s->stopping)
            break;
        struct served *caps = s->caps;
        pthread_mutex_unlock(&s->mu);
        for (struct served *sc = caps; sc; sc = sc->next) {
            gossip_heads(sc);
            expire_pending(sc);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- life cycle ---- */

psl_err capsuled_start(struct capsuled **out, const struct capsuled_config *cfg)
{
    struct capsuled *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    s->cfg = *cfg;
    if (!s->cfg.pending_records_max)
        s->cfg.pending_records_max = 4096;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->ae_cv, NULL);
    rng_bytes(s->requester, HASH_SIZE);
    hex_encode(s->requester_hex, s->requester, HASH_SIZE);
    hex_encode(s->server_hex, cfg->key->pk, SIGN_PK_SIZE);
    psl_err err = kx_from_signer(&s->kx, cfg->key);
    if (err) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->ae_cv);
        free(s);
        return err;
    }
    struct store_config sc = {.dir = cfg->data_dir,
                              .map_size_bytes = cfg->map_size_bytes,
                              .commit_window_us = s->cfg.commit_window_us,
                              .batch_done = on_batch_done,
                              .batch_ctx = s,
                              /* record handlers hold no lock when they append */
                              .inline_when_idle = cfg->inline_commit};
    err = store_open(&s->store, &sc);
    if (err) {
        kx_deinit(&s->kx);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->ae_cv);
        free(s);
        return err;
    }
    if (s->cfg.anti_entropy_ms) {
        if (pthread_create(&s->ae_thread, NULL, ae_main, s) == 0)
            s->ae_running = true;
    }
    LOG_INFO("capsuled", "msg=\"server started\" server=%.16s data_dir=%s", s->server_hex,
             cfg->data_dir);
    *out = s;
    return PSL_OK;
}

struct cert_load_ctx {
    struct served *sc;
    size_t loaded, failed;
};

static bool load_cert_record(void *ctx, const uint8_t *rec, size_t size)
{
    struct cert_load_ctx *c = ctx;
    struct record_view v;
    struct writer_cert cert;
    psl_err err = record_parse(&v, rec, size);
    if (!err)
        err = record_check_cert(&v, &c->sc->meta, clock_wall_ms(), &cert);
    if (err == PSL_ERR_CERT_EXPIRED) {
        /* Verified when it was stored; kept for the writer's ACK key (re-sends of its stored
         * records still get ACKs). Its new records stay refused: record_check checks the
         * validity window at their arrival. So check it as of the start of its window. */
        struct writer_cert any;
        struct delegation d;
        bool has_deleg;
        if (certpl_decode(v.payload, v.h.payload_size, &any, &d, &has_deleg) == PSL_OK)
            err = record_check_cert(&v, &c->sc->meta, any.not_before_ms, &cert);
    }
    if (err) {
        c->failed++;
        return false;
    }
    struct writer_entry *e = writer_slot(c->sc, cert.writer_id, true);
    if (e) {
        set_cert(e, &cert);
        c->loaded++;
    }
    return false;
}

static bool load_writer(void *ctx, const struct store_head *h)
{
    struct cert_load_ctx *c = ctx;
    if (store_range(c->sc->srv->store, c->sc->meta.name, h->writer, 1, 1, load_cert_record, c))
        c->failed++;
    return true;
}

psl_err capsuled_serve(struct capsuled *s, const uint8_t *meta_raw, size_t meta_size)
{
    struct served *sc = calloc(1, sizeof *sc);
    if (!sc)
        return PSL_ERR_NOMEM;
    psl_err err = meta_decode(&sc->meta, meta_raw, meta_size);
    if (err)
        goto out_free;
    if (meta_replica_index(&sc->meta, s->cfg.key->pk) < 0) {
        err = PSL_ERR_NOT_REPLICA;
        goto out_free;
    }
    pthread_mutex_lock(&s->mu);
    for (struct served *o = s->caps; o; o = o->next) {
        if (memcmp(o->meta.name, sc->meta.name, HASH_SIZE) == 0) {
            pthread_mutex_unlock(&s->mu);
            free(sc);
            return PSL_OK;
        }
    }
    pthread_mutex_unlock(&s->mu);
    memcpy(sc->meta_raw, meta_raw, meta_size);
    sc->meta_size = meta_size;
    sc->srv = s;
    if (!(sc->ack_key = secret_alloc(ACK_KEY_SIZE))) {
        err = PSL_ERR_NOMEM;
        goto out_free;
    }
    pthread_mutex_init(&sc->mu, NULL);
    pthread_mutex_init(&sc->ack_mu, NULL);
    if ((err = store_meta_put(s->store, sc->meta.name, meta_raw, meta_size)))
        goto out_mutex;
    struct cert_load_ctx lc = {.sc = sc};
    pthread_mutex_lock(&sc->mu);
    err = store_heads(s->store, sc->meta.name, load_writer, &lc);
    pthread_mutex_unlock(&sc->mu);
    if (err)
        goto out_mutex;
    topic_capsule(sc->t_rec, sc->meta.name, "rec", NULL);
    topic_capsule(sc->t_req, sc->meta.name, "req", NULL);
    topic_capsule(sc->t_req_me, sc->meta.name, "req", s->server_hex);
    topic_capsule(sc->t_heads, sc->meta.name, "srv", "heads");
    topic_capsule(sc->t_rep_me, sc->meta.name, "rep", s->requester_hex);
    /* Visible to the committer (ACKs) and gossip before any record can arrive. */
    pthread_mutex_lock(&s->mu);
    sc->next = s->caps;
    s->caps = sc;
    pthread_mutex_unlock(&s->mu);
    struct {
        const char *topic;
        fabric_handler h;
    } subs[] = {{sc->t_rec, on_record_msg},
                {sc->t_req, on_request_msg},
                {sc->t_req_me, on_request_msg},
                {sc->t_heads, on_heads_msg},
                {sc->t_rep_me, on_reply_msg}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if ((err = fabric_subscribe(s->cfg.fabric, subs[i].topic, subs[i].h, sc, &sc->subs[i])))
            break;
        sc->sub_count++;
    }
    if (err)
        return err; /* stays listed; capsuled_stop unsubscribes what was subscribed */
    char name[2 * HASH_SIZE + 1];
    hex_encode(name, sc->meta.name, HASH_SIZE);
    LOG_INFO("capsuled", "msg=\"serving capsule\" capsule=%s writers=%zu certs_failed=%zu", name,
             lc.loaded, lc.failed);
    /* Catch up at once rather than at the first gossip tick. */
    publish_request(sc, sc->t_req, REQ_GET_HEADS, NULL, 0, 0);
    return PSL_OK;
out_mutex:
    pthread_mutex_destroy(&sc->ack_mu);
    pthread_mutex_destroy(&sc->mu);
out_free:
    secret_free(sc->ack_key);
    free(sc);
    return err;
}

struct stored_ctx {
    struct capsuled *s;
    size_t served;
};

static void serve_stored_one(void *ctx, const uint8_t *raw, size_t size)
{
    struct stored_ctx *c = ctx;
    psl_err err = capsuled_serve(c->s, raw, size);
    if (err) {
        LOG_WARN("capsuled", "msg=\"a stored capsule is not served\" err=%s", psl_err_name(err));
        return;
    }
    c->served++;
}

psl_err capsuled_serve_stored(struct capsuled *s, size_t *count)
{
    struct stored_ctx c = {.s = s};
    psl_err err = store_meta_each(s->store, serve_stored_one, &c);
    if (count)
        *count = c.served;
    return err;
}

/* An admission request: metadata bytes (untrusted). Verified (owner signature, limits), the
 * owner checked against the admitted list, then served (which checks the replica set). */
static void on_admit_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct capsuled *s = ctx;
    struct capsule_meta m;
    psl_err err = size <= META_SIZE_MAX ? meta_decode(&m, data, size) : PSL_ERR_TOO_LARGE;
    if (!err) {
        bool allowed = false;
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->owner_count && !allowed; i++)
            allowed = memcmp(s->owners[i], m.owner_pk, SIGN_PK_SIZE) == 0;
        pthread_mutex_unlock(&s->mu);
        err = !allowed ? PSL_ERR_CERT_ISSUER
              : meta_replica_index(&m, s->cfg.key->pk) < 0 ? PSL_ERR_NOT_REPLICA
                                                           : capsuled_serve(s, data, size);
    }
    pthread_mutex_lock(&s->mu);
    if (err)
        s->st.admissions_refused++;
    else
        s->st.admitted++;
    pthread_mutex_unlock(&s->mu);
    if (err == PSL_ERR_NOT_REPLICA)
        return; /* the request went to every server; most are not in this replica set */
    char hex[2 * HASH_SIZE + 1] = "-";
    if (!err)
        hex_encode(hex, m.name, HASH_SIZE);
    if (err)
        LOG_WARN("capsuled", "msg=\"capsule admission refused\" err=%s", psl_err_name(err));
    else
        LOG_INFO("capsuled", "msg=\"capsule admitted\" capsule=%s", hex);
}

psl_err capsuled_admit(struct capsuled *s, const uint8_t (*owners)[SIGN_PK_SIZE], size_t count)
{
    if (count == 0 || count > CAPSULED_OWNERS_MAX)
        return PSL_ERR_INVALID_ARG;
    pthread_mutex_lock(&s->mu);
    memcpy(s->owners, owners, count * SIGN_PK_SIZE);
    s->owner_count = count;
    bool subscribed = s->admit_subscribed;
    s->admit_subscribed = true;
    pthread_mutex_unlock(&s->mu);
    if (subscribed)
        return PSL_OK;
    psl_err err = fabric_subscribe(s->cfg.fabric, CAPSULED_ADMIT_TOPIC, on_admit_msg, s,
                                   &s->admit_sub);
    if (err) {
        pthread_mutex_lock(&s->mu);
        s->admit_subscribed = false;
        pthread_mutex_unlock(&s->mu);
    }
    return err;
}

void capsuled_stop(struct capsuled *s)
{
    if (!s)
        return;
    if (s->admit_subscribed)
        fabric_unsubscribe(s->cfg.fabric, s->admit_sub);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->ae_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->ae_running)
        pthread_join(s->ae_thread, NULL);
    for (struct served *sc = s->caps; sc; sc = sc->next)
        for (size_t i = 0; i < sc->sub_count; i++)
            fabric_unsubscribe(s->cfg.fabric, sc->subs[i]);
    store_close(s->store); /* commits what is queued; its ACKs still go out */
    while (s->caps) {
        struct served *sc = s->caps;
        s->caps = sc->next;
        while (sc->pending) {
            struct pending_rec *p = sc->pending;
            sc->pending = p->next;
            free(p);
        }
        secret_free(sc->keys);
        free(sc->w);
        free(sc->dirty);
        secret_free(sc->ack_key);
        pthread_mutex_destroy(&sc->ack_mu);
        pthread_mutex_destroy(&sc->mu);
        free(sc);
    }
    kx_deinit(&s->kx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->ae_cv);
    LOG_INFO("capsuled", "msg=\"server stopped\" server=%.16s", s->server_hex);
    free(s);
}

void capsuled_get_stats(struct capsuled *s, struct capsuled_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    uint64_t pending = 0;
    for (struct served *sc = s->caps; sc; sc = sc->next)
        pending += sc->pending_count;
    pthread_mutex_unlock(&s->mu);
    out->pending = pending;
    store_get_stats(s->store, &out->store);
    out->commit_ns_p50 = store_commit_quantile_ns(&out->store, 0.5);
    out->commit_ns_p99 = store_commit_quantile_ns(&out->store, 0.99);
}

size_t capsuled_metrics(struct capsuled *s, char *buf, size_t cap)
{
    struct capsuled_stats st;
    capsuled_get_stats(s, &st);
    size_t n = 0;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int k = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);                             \
        if (k > 0)                                                                                 \
            n += (size_t)k;                                                                        \
    } while (0)
    EMIT("# HELP psl_capsuled_records_received_total Records received on record topics.\n"
         "# TYPE psl_capsuled_records_received_total counter\n"
         "psl_capsuled_records_received_total %" PRIu64 "\n", st.received);
    EMIT("# TYPE psl_capsuled_records_stored_total counter\n"
         "psl_capsuled_records_stored_total %" PRIu64 "\n", st.store.appends);
    EMIT("# TYPE psl_capsuled_records_duplicate_total counter\n"
         "psl_capsuled_records_duplicate_total %" PRIu64 "\n", st.store.duplicates + st.duplicates);
    EMIT("# TYPE psl_capsuled_record_bytes_stored_total counter\n"
         "psl_capsuled_record_bytes_stored_total %" PRIu64 "\n", st.store.bytes);
    EMIT("# HELP psl_capsuled_records_rejected_total Records refused, by reason.\n"
         "# TYPE psl_capsuled_records_rejected_total counter\n");
    for (unsigned i = 0; i < PSL_ERR__COUNT; i++)
        if (st.rejected[i])
            EMIT("psl_capsuled_records_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                 psl_err_name((psl_err)i), st.rejected[i]);
    EMIT("# TYPE psl_capsuled_acks_sent_total counter\n"
         "psl_capsuled_acks_sent_total %" PRIu64 "\n", st.acks_sent);
    EMIT("# HELP psl_capsuled_acks_unkeyed_total ACKs not sent: the writer's certificate is not in memory or its kx key is unusable.\n"
         "# TYPE psl_capsuled_acks_unkeyed_total counter\n"
         "psl_capsuled_acks_unkeyed_total %" PRIu64 "\n", st.acks_unkeyed);
    EMIT("# TYPE psl_capsuled_commits_total counter\n"
         "psl_capsuled_commits_total %" PRIu64 "\n", st.store.commits);
    EMIT("# HELP psl_capsuled_inline_commits_total Commits made by the thread that received the record (idle store).\n"
         "# TYPE psl_capsuled_inline_commits_total counter\n"
         "psl_capsuled_inline_commits_total %" PRIu64 "\n", st.store.inline_commits);
    EMIT("# HELP psl_capsuled_commit_latency_seconds Group commit latency (WAL write + fdatasync + apply).\n"
         "# TYPE psl_capsuled_commit_latency_seconds summary\n"
         "psl_capsuled_commit_latency_seconds{quantile=\"0.5\"} %.6f\n"
         "psl_capsuled_commit_latency_seconds{quantile=\"0.99\"} %.6f\n"
         "psl_capsuled_commit_latency_seconds_sum %.6f\n"
         "psl_capsuled_commit_latency_seconds_count %" PRIu64 "\n",
         (double)st.commit_ns_p50 / 1e9, (double)st.commit_ns_p99 / 1e9,
         (double)st.store.commit_ns_total / 1e9, st.store.commits);
    EMIT("# TYPE psl_capsuled_storage_full gauge\npsl_capsuled_storage_full %d\n", st.store.full ? 1 : 0);
    EMIT("# TYPE psl_capsuled_wal_bytes gauge\npsl_capsuled_wal_bytes %" PRIu64 "\n", st.store.wal_bytes);
    EMIT("# TYPE psl_capsuled_checkpoints_total counter\n"
         "psl_capsuled_checkpoints_total %" PRIu64 "\n", st.store.checkpoints);
    EMIT("# TYPE psl_capsuled_pending_records gauge\npsl_capsuled_pending_records %" PRIu64 "\n", st.pending);
    EMIT("# TYPE psl_capsuled_requests_total counter\npsl_capsuled_requests_total %" PRIu64 "\n", st.requests);
    EMIT("# TYPE psl_capsuled_requests_refused_total counter\npsl_capsuled_requests_refused_total %" PRIu64 "\n",
         st.requests_refused);
    EMIT("# TYPE psl_capsuled_anti_entropy_records_total counter\n"
         "psl_capsuled_anti_entropy_records_total %" PRIu64 "\n", st.ae_fetched);
    EMIT("# TYPE psl_capsuled_forks_total counter\npsl_capsuled_forks_total %" PRIu64 "\n", st.store.forks);
    EMIT("# HELP psl_capsuled_checkpoints_total CHECKPOINT records, by outcome.\n"
         "# TYPE psl_capsuled_checkpoints_total counter\n"
         "psl_capsuled_checkpoints_total{outcome=\"applied\"} %" PRIu64 "\n"
         "psl_capsuled_checkpoints_total{outcome=\"stale\"} %" PRIu64 "\n"
         "psl_capsuled_checkpoints_total{outcome=\"keep_all\"} %" PRIu64 "\n"
         "psl_capsuled_checkpoints_total{outcome=\"refused\"} %" PRIu64 "\n",
         st.checkpoints_applied, st.checkpoints_stale, st.checkpoints_kept, st.checkpoints_refused);
    EMIT("# HELP psl_capsuled_collected_records_total Records dropped by applied checkpoints.\n"
         "# TYPE psl_capsuled_collected_records_total counter\n"
         "psl_capsuled_collected_records_total %" PRIu64 "\n", st.collected_records);
    EMIT("# TYPE psl_capsuled_collected_bytes_total counter\n"
         "psl_capsuled_collected_bytes_total %" PRIu64 "\n", st.collected_bytes);
    EMIT("# HELP psl_capsuled_below_horizon_total Records not stored again: below a collected "
         "horizon.\n"
         "# TYPE psl_capsuled_below_horizon_total counter\n"
         "psl_capsuled_below_horizon_total %" PRIu64 "\n", st.below_horizon);
    EMIT("# TYPE psl_capsuled_admitted_total counter\npsl_capsuled_admitted_total %" PRIu64 "\n",
         st.admitted);
    EMIT("# TYPE psl_capsuled_admissions_refused_total counter\n"
         "psl_capsuled_admissions_refused_total %" PRIu64 "\n", st.admissions_refused);
#undef EMIT
    return n < cap ? n : cap;
}
