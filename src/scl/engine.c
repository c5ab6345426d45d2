/* engine.c: the SCL engine (see engine.h for the protocol it keeps).
 * Locks: seal_mu is held by the one actor that is sealing (it owns the writer's chain); mu guards
 * everything else. Order: seal_mu before mu. Verification of received records runs outside mu:
 * the certificate is copied out under mu, the signature checked without it, then mu is taken
 * again to apply (re-checking what may have changed meanwhile).
 * Per other writer the engine keeps, by seq, the hash and prev of every record it verified, so
 * that duplicates, gaps, broken links and forks are recognised; memory grows with history until
 * CapsuleDB checkpoints arrive (DESIGN §6); a writer seeded from a checkpoint keeps only what
 * follows the seq the index lists for it (its base).
 * CapsuleDB state: the adopted index ix and a reader rd over it (used under mu by gets); blocks
 * fetched for it land in a staging list (one answer per server per wanted hash), which the
 * reader's fetch callback serves, so a lookup never waits: a hash it lacks becomes a GET_HASH
 * request and the get answers BUSY. The compactor keeps, per writer, the decrypted operations of
 * records not yet flushed, flushes them when a SYNC cut is adopted, and merges with its own
 * reader crd (used by the sealing actor only, under seal_mu). */
#include "scl/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/checkpoint.h"
#include "capsule/durability.h"
#include "capsule/payload.h"
#include "capsule/proto.h"
#include "lsm/block.h"
#include "lsm/compact.h"
#include "lsm/index.h"
#include "lsm/lookup.h"
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
#define STAGED_BYTES_MAX (64u << 20)    /* fetched block records awaiting a reader */
#define STAGED_MS 10000u                /* ... for at most this long */
#define WANT_TRIES_MAX 6u               /* GET_HASH rounds before a block counts as missing */
#define WANTS_MAX 256u
#define RECOVERY_PROBE 8u               /* records first probed at a compactor's head for its index */
#define RECOVERY_TAIL_GROWTH 8u        /* ... and if it holds no index, 8 times more, and so on */
#define TAIL_REQUESTS_MAX 16u           /* compactors' tail requests tracked during recovery */

/* A batch in the making: local operations already in the DATA op encoding (payload.h), at most
 * one record's worth (batch_ops_max, batch_bytes_max; a single larger op gets a batch of its
 * own). A put appends to the newest batch; an actor detaches the oldest whole, in O(1) under
 * the lock, and copies it into its record. No allocation per operation: batches are reused. */
struct qbuf {
    struct qbuf *next;
    size_t ops;
    size_t size; /* bytes used */
    size_t cap;
    uint8_t data[];
};
#define QBUF_CAP_MIN (64u << 10)

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
    uint64_t lamport; /* the record's header lamport (an index head needs it) */
    bool known;
};

/* Compactor: the decrypted operations of one DATA record, kept until a cut covers it. */
struct cbuf {
    struct cbuf *next;
    uint64_t seq;
    uint8_t writer[HASH_SIZE];
    uint8_t *plain; /* owned, secret: ops point into it */
    size_t plain_size;
    struct kv_op *ops;
    size_t count;
};

struct peer {
    uint8_t id[HASH_SIZE];
    bool has_cert;
    bool forked;
    struct writer_cert cert;
    struct aead_key key;
    struct seen *seen; /* index seq - base - 1 */
    size_t seen_cap;
    uint64_t base;     /* seeded from a checkpoint: records up to base are in the index */
    uint8_t base_hash[HASH_SIZE];
    uint64_t base_lamport;
    uint64_t rec_head; /* recovery: highest contiguous head a server reported */
    bool tail_index;   /* recovery: a verified index of this compactor arrived in its tail */
    uint64_t flushed_seq; /* compactor: records up to here are in an index */
    struct cbuf *cbuf;    /* compactor: records after flushed_seq */
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

/* A block hash a get or a merge needs, asked from the servers. */
struct want {
    uint8_t hash[HASH_SIZE];
    uint64_t request_id;
    uint64_t asked_ms;
    unsigned tries;
    uint32_t answered; /* replica indices that answered (anything) */
    bool staged;       /* a block naming this hash was staged: the want is answered */
};

/* One server's answer for a wanted hash (the record bytes, unchecked: the reader checks). */
struct staged {
    struct staged *next;
    uint8_t hash[HASH_SIZE];
    unsigned server;
    uint64_t at_ms;
    size_t size;
    uint8_t data[];
};

/* Compactor: an adopted cut to flush, with the operations it covers (detached from the peers). */
struct flush_job {
    struct flush_job *next;
    uint8_t sync_hash[HASH_SIZE];
    uint64_t epoch;
    struct lsm_index_head *heads;
    size_t head_count;
    struct cbuf *bufs;
    uint8_t (*writers)[HASH_SIZE]; /* writer of each buf, same order */
    size_t buf_count;
};

/* Recovery phases: heads, certificates, compactors' tails (records set aside meanwhile), then
 * the replay after the checkpoint (records flow; put and get wait), then live. */
enum { RECOV_LIVE = 0, RECOV_HEADS, RECOV_CERTS, RECOV_TAILS, RECOV_REPLAY };

struct action_node {
    struct action_node *next;
    struct scl_action a;
};

struct scl_engine {
    struct scl_config cfg;
    struct capsule_meta meta;
    struct writer_keys keys;
    struct ack_keys ack_keys; /* MAC keys shared with each replica-set server, for its ACKs */
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
    struct qbuf *q_head, *q_tail;
    struct qbuf *q_spare; /* one emptied batch kept for reuse */
    _Atomic bool kick_wanted; /* a put found the queue empty (scl_wants_kick) */
    _Atomic uint64_t applied_version; /* bumped after other writers' operations are applied */
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
    /* CapsuleDB */
    bool compactor;
    struct lsm_policy policy;
    struct lsm_index ix;        /* adopted (empty: generation 0) */
    bool ix_fresh;              /* adopted since the last eviction pass */
    bool partial;               /* the memtable may lack versions the index holds */
    struct lsm_reader rd;       /* gets, under mu */
    struct want *wants;
    size_t want_count;
    struct staged *staged;
    size_t staged_bytes;
    bool miss;                  /* set by the fetch callback: a hash not staged */
    uint8_t miss_hash[HASH_SIZE];
    struct lsm_reader crd;      /* compactor merges, under seal_mu */
    struct lsm_index cix;       /* compactor: the newest index it made (or recovered) */
    struct flush_job *jobs, *jobs_tail;
    bool compact_broken;        /* a flush failed: no later index may claim its cut */
    uint8_t *held;              /* compactor: sealed index waiting for its blocks' durability */
    size_t held_size;
    uint64_t held_seq, held_after;
    uint8_t held_hash[HASH_SIZE];
    uint8_t *held_ck; /* compactor: its CHECKPOINT, waiting for the index's durability */
    size_t held_ck_size;
    uint64_t held_ck_seq;
    uint8_t held_ck_hash[HASH_SIZE];
    uint64_t *own_lamport;      /* compactor: lamport of each own record, index seq - 1 */
    size_t own_lamport_cap;
    /* recovery */
    int recov;
    uint64_t recov_ms;
    uint32_t recov_servers;     /* replica indices that answered a tail request completely */
    uint64_t tail_req[TAIL_REQUESTS_MAX]; /* request ids of the compactors' tails */
    size_t tail_req_count;
    uint64_t tail_span;         /* records asked at each compactor's head (a probe, then more) */
    struct lsm_index cand;      /* the best index seen while recovering */
    uint8_t cand_writer[HASH_SIZE]; /* ... the compactor that sealed it, and its seq there */
    uint64_t cand_seq;
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
static uint64_t emit_request(struct scl_engine *e, uint8_t type, const uint8_t *writer,
                             uint64_t from, uint64_t to, const uint8_t *hash)
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
    return q.request_id;
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
    if (seq <= p->base)
        return NULL; /* seq 0, or inside a checkpoint */
    uint64_t rel = seq - p->base;
    if (rel > p->seen_cap) {
        if (!grow)
            return NULL;
        if (seq > (uint64_t)p->contiguous + SEEN_WINDOW)
            return NULL; /* beyond the window: the caller refuses it for now */
        size_t cap = p->seen_cap ? p->seen_cap : 64;
        while (cap < rel)
            cap *= 2; /* rel <= contiguous - base + window, so this cannot overflow */
        struct seen *n = realloc(p->seen, cap * sizeof *n);
        if (!n)
            return NULL;
        memset(n + p->seen_cap, 0, (cap - p->seen_cap) * sizeof *n);
        p->seen = n;
        p->seen_cap = cap;
    }
    return &p->seen[rel - 1];
}

/* The hash of a writer's record we hold at seq (the checkpoint's for seq == base), or NULL. */
static const uint8_t *peer_hash_at(struct peer *p, uint64_t seq)
{
    if (seq && seq == p->base)
        return p->base_hash;
    struct seen *s = seen_at(p, seq, false);
    return s && s->known ? s->hash : NULL;
}

static uint64_t peer_lamport_at(struct peer *p, uint64_t seq)
{
    if (seq && seq == p->base)
        return p->base_lamport;
    struct seen *s = seen_at(p, seq, false);
    return s && s->known ? s->lamport : 0;
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

/* ---- CapsuleDB: staged block answers and wanted hashes (caller holds mu) ---- */

static struct want *want_find(struct scl_engine *e, const uint8_t hash[HASH_SIZE])
{
    for (size_t i = 0; i < e->want_count; i++)
        if (memcmp(e->wants[i].hash, hash, HASH_SIZE) == 0)
            return &e->wants[i];
    return NULL;
}

static void want_remove(struct scl_engine *e, struct want *w)
{
    size_t i = (size_t)(w - e->wants);
    e->wants[i] = e->wants[--e->want_count];
}

static void staged_unlink(struct scl_engine *e, struct staged **pp)
{
    struct staged *g = *pp;
    *pp = g->next;
    e->staged_bytes -= g->size;
    free(g);
}

/* Drops the staged answers for hash (NULL: those past their time). */
static void staged_drop(struct scl_engine *e, const uint8_t *hash)
{
    struct staged **pp = &e->staged;
    while (*pp) {
        bool old = !hash && e->now_ms - (*pp)->at_ms >= STAGED_MS;
        if (old || (hash && memcmp((*pp)->hash, hash, HASH_SIZE) == 0))
            staged_unlink(e, pp);
        else
            pp = &(*pp)->next;
    }
}

static bool staged_has(struct scl_engine *e, const uint8_t hash[HASH_SIZE])
{
    for (struct staged *g = e->staged; g; g = g->next)
        if (memcmp(g->hash, hash, HASH_SIZE) == 0)
            return true;
    return false;
}

/* Keeps one server's answer for a wanted hash. Record bytes are copied once, here; the reader
 * checks them when it asks for them. */
static void staged_add(struct scl_engine *e, const uint8_t hash[HASH_SIZE], unsigned server,
                       const uint8_t *data, size_t size)
{
    for (struct staged *g = e->staged; g; g = g->next)
        if (g->server == server && memcmp(g->hash, hash, HASH_SIZE) == 0)
            return; /* the first answer of a server stands */
    while (e->staged && e->staged_bytes + size > STAGED_BYTES_MAX) {
        struct staged **pp = &e->staged; /* the oldest is last: the list is pushed at the front */
        while ((*pp)->next)
            pp = &(*pp)->next;
        staged_unlink(e, pp);
    }
    struct staged *g = malloc(sizeof *g + size);
    if (!g)
        return;
    memcpy(g->hash, hash, HASH_SIZE);
    g->server = server;
    g->at_ms = e->now_ms;
    g->size = size;
    memcpy(g->data, data, size);
    g->next = e->staged;
    e->staged = g;
    e->staged_bytes += size;
}

/* Asks the servers for the record named hash unless that is under way. Returns false once the
 * hash was asked WANT_TRIES_MAX times without an answer that passed (the want is then forgotten,
 * so that a later read starts over). */
static bool want_hash(struct scl_engine *e, const uint8_t hash[HASH_SIZE])
{
    struct want *w = want_find(e, hash);
    if (w) {
        if (w->tries >= WANT_TRIES_MAX && e->now_ms - w->asked_ms >= e->cfg.fetch_retry_ms) {
            want_remove(e, w);
            staged_drop(e, hash);
            return false;
        }
        return true;
    }
    if (e->want_count == WANTS_MAX) {
        /* Wants whose block is staged are answered: their slots go to new ones, or a merge
         * that needs more blocks than the table holds would wait for ever (its staged blocks
         * are only read once every block is at hand). The staged bytes stay until read,
         * replaced or expired. */
        for (size_t i = 0; i < e->want_count;) {
            if (e->wants[i].staged)
                e->wants[i] = e->wants[--e->want_count];
            else
                i++;
        }
        if (e->want_count == WANTS_MAX)
            return true; /* asked once some others are done */
    }
    w = &e->wants[e->want_count++];
    memset(w, 0, sizeof *w);
    memcpy(w->hash, hash, HASH_SIZE);
    w->request_id = emit_request(e, REQ_GET_HASH, NULL, 0, 0, hash);
    w->asked_ms = e->now_ms;
    w->tries = 1;
    e->st.lsm_block_requests++;
    return true;
}

/* Forgets the wants (and staged answers) of blocks rd now holds. */
static void wants_settle(struct scl_engine *e, const struct lsm_reader *rd)
{
    for (size_t i = 0; i < e->want_count;) {
        if (lsm_reader_cached(rd, e->wants[i].hash)) {
            staged_drop(e, e->wants[i].hash);
            e->wants[i] = e->wants[--e->want_count];
        } else {
            i++;
        }
    }
}

static psl_err fetch_staged(struct scl_engine *e, unsigned source, const uint8_t hash[HASH_SIZE],
                            uint8_t *buf, size_t cap, size_t *size)
{
    for (struct staged *g = e->staged; g; g = g->next) {
        if (g->server != source || memcmp(g->hash, hash, HASH_SIZE) != 0)
            continue;
        if (g->size > cap)
            return PSL_ERR_TOO_LARGE;
        memcpy(buf, g->data, g->size);
        *size = g->size;
        return PSL_OK;
    }
    e->miss = true;
    memcpy(e->miss_hash, hash, HASH_SIZE);
    return PSL_ERR_NOT_FOUND;
}

/* The fetch callback of rd: called under mu (gets). */
static psl_err rd_fetch(void *ctx, unsigned source, const uint8_t hash[HASH_SIZE], uint8_t *buf,
                        size_t cap, size_t *size)
{
    return fetch_staged(ctx, source, hash, buf, cap, size);
}

/* The fetch callback of crd: called by the sealing actor without mu. */
static psl_err crd_fetch(void *ctx, unsigned source, const uint8_t hash[HASH_SIZE], uint8_t *buf,
                         size_t cap, size_t *size)
{
    struct scl_engine *e = ctx;
    pthread_mutex_lock(&e->mu);
    psl_err err = fetch_staged(e, source, hash, buf, cap, size);
    pthread_mutex_unlock(&e->mu);
    return err;
}

/* ---- CapsuleDB: the index in use, eviction ---- */

/* Adopts nix (taken) when it is newer than the index in use (caller holds mu). */
static void index_adopt(struct scl_engine *e, struct lsm_index *nix)
{
    if (nix->generation <= e->ix.generation) {
        lsm_index_deinit(nix);
        return;
    }
    lsm_index_deinit(&e->ix);
    e->ix = *nix;
    lsm_index_init(nix);
    e->ix_fresh = true;
    e->st.lsm_generation = e->ix.generation;
    e->st.lsm_indexes_adopted++;
}

/* Decrypts and decodes a verified LSM_INDEX record of p (caller holds mu). Only a compactor's
 * index counts (DESIGN §6): any other writer's is refused with PSL_ERR_CERT_ROLE. */
static psl_err index_open(struct peer *p, const struct record_view *v, struct lsm_index *out)
{
    if (p->cert.role != ROLE_COMPACTOR)
        return PSL_ERR_CERT_ROLE;
    uint8_t *plain = malloc(v->h.payload_size ? v->h.payload_size : 1);
    if (!plain)
        return PSL_ERR_NOMEM;
    size_t n = 0;
    psl_err err = record_open(v, &p->key, plain, v->h.payload_size, &n);
    if (!err)
        err = lsm_index_decode(out, plain, n);
    secret_wipe(plain, v->h.payload_size);
    free(plain);
    return err;
}

struct evict_ctx {
    const struct lsm_index *ix;
    size_t goal;  /* bytes to free */
    size_t freed;
    uint8_t **keys;
    size_t *sizes;
    size_t count, cap;
};

static psl_err evict_visit(void *ctx, const struct memtable_entry_view *v)
{
    struct evict_ctx *c = ctx;
    if (c->freed >= c->goal)
        return PSL_ERR_EXISTS; /* enough: stop the walk */
    if (!lsm_index_covers(c->ix, v->writer, v->lamport))
        return PSL_OK;
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        uint8_t **k = realloc(c->keys, cap * sizeof *k);
        if (!k)
            return PSL_ERR_NOMEM;
        c->keys = k;
        size_t *s = realloc(c->sizes, cap * sizeof *s);
        if (!s)
            return PSL_ERR_NOMEM;
        c->sizes = s;
        c->cap = cap;
    }
    uint8_t *k = malloc(v->key_size);
    if (!k)
        return PSL_ERR_NOMEM;
    memcpy(k, v->key, v->key_size);
    c->keys[c->count] = k;
    c->sizes[c->count++] = v->key_size;
    c->freed += v->key_size + v->value_size + 64;
    return PSL_OK;
}

/* Past the memory bound, evicts keys whose version the index in use covers (DESIGN §6) down to
 * three quarters of the bound; only a new index can make more keys evictable, so the walk runs
 * once per adopted index (caller holds mu). */
static void evict_covered(struct scl_engine *e)
{
    size_t bound = e->cfg.memtable_bytes_max;
    if (!bound || !e->ix_fresh || memtable_bytes(&e->mt) <= bound)
        return;
    e->ix_fresh = false;
    struct evict_ctx c = {.ix = &e->ix, .goal = memtable_bytes(&e->mt) - bound / 4 * 3};
    /* The walk stops early with EXISTS (enough found) or NOMEM; either way, evict what it found. */
    psl_err walked = memtable_foreach(&e->mt, evict_visit, &c);
    (void)walked;
    for (size_t i = 0; i < c.count; i++) {
        if (memtable_remove(&e->mt, c.keys[i], c.sizes[i]))
            e->st.lsm_evicted++;
        secret_wipe(c.keys[i], c.sizes[i]);
        free(c.keys[i]);
    }
    if (c.count)
        e->partial = true;
    free(c.keys);
    free(c.sizes);
}

/* Reads key through the tree when the memtable may not hold its newest version (caller holds
 * mu; mv is the memtable's entry or NULL). Answers like scl_get. */
static psl_err lsm_get_locked(struct scl_engine *e, const uint8_t *key, size_t key_size,
                              const struct memtable_entry_view *mv, uint8_t *out, size_t cap,
                              size_t *size)
{
    struct lsm_result res;
    e->miss = false;
    e->st.lsm_lookups++;
    uint64_t refused = e->rd.stats.refused;
    psl_err err = lsm_lookup(&e->rd, &e->ix, key, key_size, &res);
    e->st.lsm_blocks_refused += e->rd.stats.refused - refused;
    if (err == PSL_ERR_IO || err == PSL_ERR_AUTH) {
        if (e->miss)
            return want_hash(e, e->miss_hash) ? PSL_ERR_BUSY : PSL_ERR_IO;
        return err; /* every server answered, and every answer was refused */
    }
    if (err)
        return err;
    wants_settle(e, &e->rd);
    const uint8_t *v = NULL;
    size_t n = 0;
    bool live;
    struct lsm_entry me;
    if (mv) {
        me = (struct lsm_entry){.kind = mv->tombstone ? OP_DEL : OP_PUT, .lamport = mv->lamport,
                                .writer = mv->writer, .key = mv->key,
                                .key_size = (uint16_t)mv->key_size, .value = mv->value,
                                .value_size = (uint32_t)mv->value_size};
    }
    if (res.found && (!mv || lsm_version_cmp(&res.entry, &me) > 0)) {
        live = res.entry.kind == OP_PUT;
        v = res.entry.value;
        n = res.entry.value_size;
    } else {
        live = mv && !mv->tombstone;
        v = mv ? mv->value : NULL;
        n = mv ? mv->value_size : 0;
    }
    err = PSL_ERR_NOT_FOUND;
    if (live) {
        *size = n;
        err = n > cap ? PSL_ERR_TOO_LARGE : PSL_OK;
        if (!err && n)
            memcpy(out, v, n);
    }
    lsm_result_release(&e->rd, &res);
    return err;
}

/* ---- CapsuleDB: the compactor ---- */

static void own_lamport_set(struct scl_engine *e, uint64_t seq, uint64_t lamport)
{
    if (!e->compactor || seq == 0)
        return;
    if (seq > e->own_lamport_cap) {
        size_t cap = e->own_lamport_cap ? e->own_lamport_cap : 64;
        while (cap < seq)
            cap *= 2;
        uint64_t *n = realloc(e->own_lamport, cap * sizeof *n);
        if (!n)
            return; /* this head is then left out of the index: replayed, never lost */
        memset(n + e->own_lamport_cap, 0, (cap - e->own_lamport_cap) * sizeof *n);
        e->own_lamport = n;
        e->own_lamport_cap = cap;
    }
    e->own_lamport[seq - 1] = lamport;
}

/* Keeps a sealed record of ours until it is durable, and publishes it (caller holds mu). */
static void track_sealed(struct scl_engine *e, const uint8_t *data, size_t size,
                         const uint8_t hash[HASH_SIZE], uint64_t seq)
{
    uint8_t *copy = malloc(size);
    if (copy && e->unacked_count == e->unacked_cap) {
        size_t cap = e->unacked_cap ? e->unacked_cap * 2 : 64;
        struct sealed *n = realloc(e->unacked, cap * sizeof *n);
        if (n) {
            e->unacked = n;
            e->unacked_cap = cap;
        }
    }
    if (copy && e->unacked_count < e->unacked_cap) {
        memcpy(copy, data, size);
        struct sealed *s = &e->unacked[e->unacked_count++];
        *s = (struct sealed){.seq = seq, .ops_cum = e->ops_sealed, .data = copy, .size = size};
        memcpy(s->hash, hash, HASH_SIZE);
        e->unacked_bytes += size;
        copy = NULL;
    }
    free(copy);
    if (e->unacked_count == 1)
        e->progress_ms = e->now_ms; /* the quiet time before a re-send starts now */
    e->st.records_sealed++;
    e->st.sealed_seq = seq;
    emit(e, SCL_ACT_PUBLISH, NULL, data, size);
}

/* Publishes the held index once every block before it is durable, then the held CHECKPOINT
 * once the index itself is durable (caller holds mu): a storage server may act on the notice
 * (drop what it covers), so nothing it names may be missing from k servers by then. */
static void release_held(struct scl_engine *e)
{
    bool released = false;
    if (e->held && e->dur.durable >= e->held_after) {
        track_sealed(e, e->held, e->held_size, e->held_hash, e->held_seq);
        free(e->held);
        e->held = NULL;
        released = true;
    }
    if (!e->held && e->held_ck && e->dur.durable >= e->held_ck_seq - 1) {
        track_sealed(e, e->held_ck, e->held_ck_size, e->held_ck_hash, e->held_ck_seq);
        free(e->held_ck);
        e->held_ck = NULL;
        released = true;
    }
    if (released && !e->held && !e->held_ck)
        e->st.sealed_seq = e->chain.seq;
}

static int hash_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HASH_SIZE);
}

/* Seals the CHECKPOINT notice of the index just sealed (hash ihash at seq chain.seq) as the
 * next record of our chain: the index's cut and every block it names, sorted (caller holds
 * seal_mu, not mu). On success the record is returned in *out (malloc'd) for the caller to hold.
 * A failure only means no notice for this index: servers collect nothing for it. */
static psl_err checkpoint_seal(struct scl_engine *e, const struct lsm_index *ix,
                               const uint8_t ihash[HASH_SIZE], uint8_t **out, size_t *out_size,
                               uint8_t hash_out[HASH_SIZE])
{
    size_t nb = lsm_index_block_count(ix);
    struct checkpoint_head *heads = calloc(ix->head_count ? ix->head_count : 1, sizeof *heads);
    uint8_t(*live)[HASH_SIZE] = malloc((nb ? nb : 1) * HASH_SIZE);
    uint8_t *buf = NULL;
    psl_err err = heads && live ? PSL_OK : PSL_ERR_NOMEM;
    size_t nl = 0;
    for (size_t l = 0; !err && l < ix->level_count; l++)
        for (size_t r = 0; r < ix->levels[l].run_count; r++)
            for (size_t b = 0; b < ix->levels[l].runs[r].block_count && nl < nb; b++)
                memcpy(live[nl++], ix->levels[l].runs[r].blocks[b].hash, HASH_SIZE);
    if (!err) {
        qsort(live, nl, HASH_SIZE, hash_cmp);
        size_t u = 0;
        for (size_t i = 0; i < nl; i++)
            if (u == 0 || memcmp(live[u - 1], live[i], HASH_SIZE) != 0)
                memmove(live[u++], live[i], HASH_SIZE);
        nl = u;
        for (size_t i = 0; i < ix->head_count; i++) { /* already ascending by writer */
            memcpy(heads[i].writer, ix->heads[i].writer, HASH_SIZE);
            heads[i].seq = ix->heads[i].seq;
            memcpy(heads[i].hash, ix->heads[i].hash, HASH_SIZE);
        }
    }
    struct checkpoint cp = {.index_seq = e->chain.seq,
                            .generation = ix->generation,
                            .head_count = ix->head_count,
                            .heads = heads,
                            .live_count = nl,
                            .live = (const uint8_t(*)[HASH_SIZE])live};
    memcpy(cp.index_hash, ihash, HASH_SIZE);
    size_t plain = checkpoint_encoded_size(cp.head_count, cp.live_count);
    size_t cap = record_sealed_size(plain, REC_CHECKPOINT);
    if (!err && !(buf = malloc(cap)))
        err = PSL_ERR_NOMEM;
    if (!err) {
        struct wr w;
        wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, plain);
        err = checkpoint_encode(&cp, &w);
    }
    if (!err) {
        pthread_mutex_lock(&e->mu);
        uint64_t lamport = ++e->clock;
        memcpy(e->chain.sync, e->sync_next, HASH_SIZE);
        pthread_mutex_unlock(&e->mu);
        err = record_chain_seal(&e->chain, &e->keys, REC_CHECKPOINT, lamport, buf, cap, plain,
                                out_size, hash_out);
        if (!err) {
            pthread_mutex_lock(&e->mu);
            own_lamport_set(e, e->chain.seq, lamport);
            pthread_mutex_unlock(&e->mu);
        }
    }
    free(heads);
    free(live);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    return PSL_OK;
}

/* The cut of a new index: the heads of the flushed SYNC, plus every head of the previous index
 * that the SYNC does not list (or lists lower). Everything up to those is in the tree already, so
 * the claim stays true, and cuts only grow: a writer listed by one index is listed, at the same
 * head or a later one, by every later index. Collection relies on that (servers drop records
 * below the heads of a checkpoint; a reader replays a writer the cut omits from seq 1). Returns a
 * malloc'd array in *out (caller holds seal_mu). */
static psl_err cut_carry_over(const struct lsm_index *old, const struct lsm_index_head *heads,
                              size_t n, struct lsm_index_head **out, size_t *out_n)
{
    struct lsm_index_head *m = malloc((n + old->head_count ? n + old->head_count : 1) * sizeof *m);
    if (!m)
        return PSL_ERR_NOMEM;
    if (n)
        memcpy(m, heads, n * sizeof *m);
    size_t k = n;
    for (size_t i = 0; i < old->head_count; i++) {
        const struct lsm_index_head *o = &old->heads[i];
        size_t j = 0;
        while (j < n && memcmp(m[j].writer, o->writer, HASH_SIZE) != 0)
            j++;
        if (j == n)
            m[k++] = *o;
        else if (m[j].seq < o->seq)
            m[j] = *o;
    }
    *out = m;
    *out_n = k;
    return PSL_OK;
}

/* The sink of the compactor's steps: seals a block as the next record of our chain, publishes
 * it, and caches its plaintext for later merges (caller holds seal_mu, not mu). */
static psl_err sink_put(void *ctx, uint8_t *buf, size_t cap, size_t plain_size,
                        uint8_t hash_out[HASH_SIZE])
{
    struct scl_engine *e = ctx;
    uint8_t *plain = malloc(plain_size);
    if (!plain)
        return PSL_ERR_NOMEM;
    memcpy(plain, buf + PSL_RECORD_HEADER_SIZE, plain_size);
    pthread_mutex_lock(&e->mu);
    uint64_t lamport = ++e->clock;
    memcpy(e->chain.sync, e->sync_next, HASH_SIZE);
    pthread_mutex_unlock(&e->mu);
    size_t size;
    psl_err err = lsm_block_seal(&e->chain, &e->keys, lamport, buf, cap, plain_size, &size,
                                 hash_out);
    if (err) {
        secret_wipe(plain, plain_size);
        free(plain);
        return err;
    }
    pthread_mutex_lock(&e->mu);
    own_lamport_set(e, e->chain.seq, lamport);
    track_sealed(e, buf, size, hash_out, e->chain.seq);
    e->st.lsm_blocks_written++;
    e->st.lsm_record_bytes += size;
    pthread_mutex_unlock(&e->mu);
    struct lsm_block b;
    if (lsm_block_load(&b, plain, plain_size) != PSL_OK) {
        secret_wipe(plain, plain_size);
        free(plain);
        return PSL_OK;
    }
    if (lsm_reader_insert(&e->crd, hash_out, &b) != PSL_OK)
        LOG_DEBUG("scl", "msg=\"new block not cached\""); /* fetched back if a merge needs it */
    return PSL_OK;
}

/* Whether a block is at hand for a merge: decoded in the compactor's cache or fetched and
 * staged (caller holds mu). */
static bool block_at_hand(struct scl_engine *e, const uint8_t hash[HASH_SIZE])
{
    return lsm_reader_cached(&e->crd, hash) || staged_has(e, hash);
}

/* Whether every block of levels lv and lv + 1 is at hand for a merge; asks for the others
 * (caller holds seal_mu, not mu). A merge reads only blocks that overlap, but finding those is
 * the merge's own work: asking for all is the simple upper bound. */
static bool merge_ready(struct scl_engine *e, const struct lsm_index *ix, size_t lv)
{
    bool ready = true;
    pthread_mutex_lock(&e->mu);
    for (size_t l = lv; l <= lv + 1 && l < ix->level_count; l++)
        for (size_t r = 0; r < ix->levels[l].run_count; r++)
            for (size_t b = 0; b < ix->levels[l].runs[r].block_count; b++) {
                const uint8_t *h = ix->levels[l].runs[r].blocks[b].hash;
                if (!block_at_hand(e, h)) {
                    ready = false;
                    (void)want_hash(e, h);
                }
            }
    pthread_mutex_unlock(&e->mu);
    return ready;
}

/* Whether two block key ranges meet. */
static bool refs_meet(const struct lsm_block_ref *a, const struct lsm_block_ref *b)
{
    return lsm_key_cmp(a->min_key, a->min_key_size, b->max_key, b->max_key_size) <= 0 &&
           lsm_key_cmp(b->min_key, b->min_key_size, a->max_key, a->max_key_size) <= 0;
}

/* How much of level lv to merge now (caller holds seal_mu, not mu): SIZE_MAX for the whole
 * level, a count of its first blocks, or 0 for nothing yet. Level 0 (overlapping runs) merges
 * whole, once every block of both levels is at hand. A deeper level (one run) merges a slice:
 * its first blocks and the target blocks they meet, as many as are at hand, up to half the
 * compactor's cache, so that a merge never needs more at once than the cache and the staging
 * area can hold, however large the levels grow. What the next slice needs is asked for. */
static size_t merge_plan(struct scl_engine *e, const struct lsm_index *ix, size_t lv)
{
    const struct lsm_level *src = &ix->levels[lv];
    if (lv == 0 || src->run_count != 1)
        return merge_ready(e, ix, lv) ? SIZE_MAX : 0;
    const struct lsm_run *s = &src->runs[0];
    const struct lsm_run *t = lv + 1 < ix->level_count && ix->levels[lv + 1].run_count == 1
                                  ? &ix->levels[lv + 1].runs[0]
                                  : NULL;
    uint64_t budget = e->crd.cache_bytes_max / 2, used = 0, asked = 0;
    size_t count = 0, ti = 0;
    bool short_of = false;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < s->block_count; i++) {
        /* This block and the target blocks it meets (those not counted for an earlier one). */
        const struct lsm_block_ref *b = &s->blocks[i];
        uint64_t need = b->data_size;
        bool here = block_at_hand(e, b->hash);
        if (!here && asked < budget) {
            (void)want_hash(e, b->hash);
            asked += b->data_size;
        }
        size_t tj = ti;
        while (t && tj < t->block_count &&
               lsm_key_cmp(t->blocks[tj].min_key, t->blocks[tj].min_key_size, b->max_key,
                           b->max_key_size) <= 0) {
            if (refs_meet(&t->blocks[tj], b)) {
                need += t->blocks[tj].data_size;
                if (!block_at_hand(e, t->blocks[tj].hash)) {
                    here = false;
                    if (asked < budget) {
                        (void)want_hash(e, t->blocks[tj].hash);
                        asked += t->blocks[tj].data_size;
                    }
                }
            }
            tj++;
        }
        /* The last target block met may reach into the next source block: count it again. */
        ti = tj > ti ? tj - 1 : ti;
        if (!here)
            short_of = true;
        if (short_of || (count && used + need > budget)) {
            if (asked >= budget)
                break;
            continue; /* only asking now */
        }
        used += need;
        count++;
    }
    pthread_mutex_unlock(&e->mu);
    if (count == s->block_count)
        return SIZE_MAX;
    return count;
}

static void flush_job_free(struct flush_job *j)
{
    while (j->bufs) {
        struct cbuf *b = j->bufs;
        j->bufs = b->next;
        secret_wipe(b->plain, b->plain_size);
        free(b->plain);
        free(b->ops);
        free(b);
    }
    free(j->writers);
    free(j->heads);
    free(j);
}

/* One adopted cut: flush its operations as a level-0 run, merge what the policy asks for (when
 * the blocks are at hand), seal the index and hold it until its blocks are durable. Caller holds
 * seal_mu, not mu. An error here would leave a cut's operations out of every later index, so it
 * stops compaction for good (compact_broken: the tree stays at the last index, memtables keep
 * what they hold) and is logged. */
static void compactor_run(struct scl_engine *e, struct flush_job *j)
{
    size_t total = 0, k = 0;
    for (struct cbuf *b = j->bufs; b; b = b->next)
        total += b->count;
    struct lsm_entry *ents = malloc((total ? total : 1) * sizeof *ents);
    struct lsm_index nix, merged;
    lsm_index_init(&nix);
    struct lsm_sink sink = {.put = sink_put, .ctx = e};
    struct lsm_compact_stats cst = {0};
    psl_err err = ents ? PSL_OK : PSL_ERR_NOMEM;
    size_t bi = 0;
    for (struct cbuf *b = j->bufs; b && !err; b = b->next, bi++)
        for (size_t i = 0; i < b->count; i++) {
            const struct kv_op *o = &b->ops[i];
            ents[k++] = (struct lsm_entry){.kind = o->op, .lamport = o->lamport,
                                           .writer = j->writers[bi], .key = o->key,
                                           .key_size = o->key_size, .value = o->value,
                                           .value_size = o->value_size};
        }
    /* Epochs are numbered per coordinator; a replacement coordinator may count from lower, and
     * the index's epoch must grow, so it is the compactor's count when they disagree. */
    struct lsm_index_head *cut_heads = NULL;
    size_t cut_n = 0;
    if (!err)
        err = cut_carry_over(&e->cix, j->heads, j->head_count, &cut_heads, &cut_n);
    struct lsm_cut cut = {.epoch = j->epoch, .horizon = 0, .heads = cut_heads, .head_count = cut_n};
    if (e->cix.generation && cut.epoch <= e->cix.epoch)
        cut.epoch = e->cix.epoch + 1;
    memcpy(cut.sync_hash, j->sync_hash, HASH_SIZE);
    if (!err)
        err = lsm_flush(&e->cix, &e->policy, &cut, ents, total, &sink, &nix, &cst);
    free(ents);
    free(cut_heads);
    for (unsigned guard = 0; !err && guard < LSM_LEVELS_MAX; guard++) {
        int lv = lsm_compact_pick(&nix, &e->policy);
        size_t count = lv < 0 ? 0 : merge_plan(e, &nix, (size_t)lv);
        if (!count)
            break;
        psl_err merr = lsm_compact_slice(&nix, &e->policy, (size_t)lv, count, &e->crd, &sink,
                                         &merged, &cst);
        if (merr) {
            LOG_WARN("scl", "msg=\"merge postponed\" level=%d err=%s", lv, psl_err_name(merr));
            break; /* blocks sealed for it stay unreferenced; the next cut tries again */
        }
        lsm_index_deinit(&nix);
        nix = merged;
        pthread_mutex_lock(&e->mu);
        e->st.lsm_merges++;
        e->st.lsm_merge_slices += count != SIZE_MAX;
        pthread_mutex_unlock(&e->mu);
    }
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0;
    uint8_t hash[HASH_SIZE];
    if (!err) {
        cap = record_sealed_size(lsm_index_encoded_size(&nix), REC_LSM_INDEX);
        buf = malloc(cap);
        err = buf ? PSL_OK : PSL_ERR_NOMEM;
    }
    uint64_t lamport = 0;
    if (!err) {
        pthread_mutex_lock(&e->mu);
        lamport = ++e->clock;
        memcpy(e->chain.sync, e->sync_next, HASH_SIZE);
        pthread_mutex_unlock(&e->mu);
        err = lsm_index_seal(&e->chain, &e->keys, lamport, &nix, buf, cap, &size, hash);
    }
    struct lsm_index mine;
    lsm_index_init(&mine);
    if (!err)
        err = lsm_index_clone(&nix, &mine);
    uint64_t index_seq = e->chain.seq;
    uint8_t *ck = NULL;
    size_t ck_size = 0;
    uint8_t ck_hash[HASH_SIZE];
    /* The notice is for servers that collect: a keep-all capsule's servers would only store
     * it (a live list of 32 bytes per block every epoch is write amplification for nothing). */
    if (!err && e->meta.retention == RETENTION_COLLECT_COVERED) {
        psl_err cerr = checkpoint_seal(e, &nix, hash, &ck, &ck_size, ck_hash);
        if (cerr)
            LOG_WARN("scl", "msg=\"no checkpoint notice for this index\" err=%s",
                     psl_err_name(cerr));
    }
    pthread_mutex_lock(&e->mu);
    if (err) {
        e->compact_broken = true;
        e->st.lsm_flush_skipped++;
        LOG_ERROR("scl", "msg=\"compaction stopped\" err=%s", psl_err_name(err));
        free(buf);
    } else {
        own_lamport_set(e, index_seq, lamport);
        e->held = buf;
        e->held_size = size;
        e->held_seq = index_seq;
        e->held_after = index_seq - 1;
        memcpy(e->held_hash, hash, HASH_SIZE);
        if (ck) {
            e->held_ck = ck;
            e->held_ck_size = ck_size;
            e->held_ck_seq = index_seq + 1;
            memcpy(e->held_ck_hash, ck_hash, HASH_SIZE);
        }
        e->st.lsm_flushes++;
        e->st.lsm_record_bytes += size;
        index_adopt(e, &mine);
        release_held(e);
    }
    pthread_mutex_unlock(&e->mu);
    if (!err) {
        lsm_index_deinit(&e->cix);
        e->cix = nix;
    } else {
        lsm_index_deinit(&nix);
    }
    lsm_index_deinit(&mine);
    flush_job_free(j);
}

/* Compactor, at the adoption of a SYNC cut (caller holds mu): the heads it can vouch for (the
 * records it holds with those hashes, with their lamports) and the buffered operations they
 * cover become a flush job for the sealing actor. */
static void compactor_queue(struct scl_engine *e, const struct cut_head *heads, size_t n,
                            uint64_t epoch, const uint8_t sync_hash[HASH_SIZE])
{
    if (!e->compactor || e->compact_broken)
        return;
    struct flush_job *j = calloc(1, sizeof *j);
    if (j)
        j->heads = calloc(n ? n : 1, sizeof *j->heads);
    if (!j || !j->heads) {
        free(j);
        e->compact_broken = true; /* a cut left out: no later index may claim it */
        e->st.lsm_flush_skipped++;
        return;
    }
    j->epoch = epoch;
    memcpy(j->sync_hash, sync_hash, HASH_SIZE);
    struct cbuf **tail = &j->bufs;
    for (size_t i = 0; i < n; i++) {
        struct lsm_index_head *h = &j->heads[j->head_count];
        memcpy(h->writer, heads[i].writer, HASH_SIZE);
        h->seq = heads[i].seq;
        memcpy(h->hash, heads[i].hash, HASH_SIZE);
        if (memcmp(heads[i].writer, e->keys.writer_id, HASH_SIZE) == 0) {
            if (heads[i].seq > e->own_lamport_cap || !e->own_lamport[heads[i].seq - 1])
                continue;
            h->lamport = e->own_lamport[heads[i].seq - 1];
            j->head_count++;
            continue;
        }
        struct peer *p = peer_find(e, heads[i].writer);
        const uint8_t *held = p ? peer_hash_at(p, heads[i].seq) : NULL;
        if (!p || p->forked || !held || memcmp(held, heads[i].hash, HASH_SIZE) != 0)
            continue; /* left out: recovery replays that writer from further back */
        h->lamport = peer_lamport_at(p, heads[i].seq);
        if (!h->lamport)
            continue;
        j->head_count++;
        struct cbuf **pp = &p->cbuf;
        while (*pp) {
            struct cbuf *b = *pp;
            if (b->seq <= heads[i].seq) {
                *pp = b->next;
                b->next = NULL;
                *tail = b;
                tail = &b->next;
                j->buf_count++;
            } else {
                pp = &b->next;
            }
        }
        if (heads[i].seq > p->flushed_seq)
            p->flushed_seq = heads[i].seq;
    }
    /* Each buf's writer, in list order (the entries point at these ids). */
    j->writers = malloc((j->buf_count ? j->buf_count : 1) * sizeof *j->writers);
    if (!j->writers) {
        flush_job_free(j);
        e->compact_broken = true;
        e->st.lsm_flush_skipped++;
        return;
    }
    size_t bi = 0;
    for (struct cbuf *b = j->bufs; b; b = b->next)
        memcpy(j->writers[bi++], b->writer, HASH_SIZE);
    if (e->jobs_tail)
        e->jobs_tail->next = j;
    else
        e->jobs = j;
    e->jobs_tail = j;
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
    e->compactor = cfg->cert->role == ROLE_COMPACTOR;
    if (cfg->lsm_policy)
        e->policy = *cfg->lsm_policy;
    else
        lsm_policy_default(&e->policy);
    if (lsm_policy_check(&e->policy) != PSL_OK) {
        free(e);
        return PSL_ERR_INVALID_ARG;
    }
    if (!c->lsm_cache_bytes_max)
        c->lsm_cache_bytes_max = 16u << 20;
    lsm_index_init(&e->ix);
    lsm_index_init(&e->cix);
    lsm_index_init(&e->cand);
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
    e->wants = calloc(WANTS_MAX, sizeof *e->wants);
    struct lsm_source rsrc = {.fetch = rd_fetch, .ctx = e, .count = cfg->meta->replica_count};
    struct lsm_source csrc = {.fetch = crd_fetch, .ctx = e, .count = cfg->meta->replica_count};
    if (!e->buf || !e->capsule_key || !e->wants)
        goto out_free;
    if (lsm_reader_init(&e->rd, cfg->meta->name, cfg->capsule_key, &rsrc,
                        c->lsm_cache_bytes_max) != PSL_OK)
        goto out_free;
    if (e->compactor && lsm_reader_init(&e->crd, cfg->meta->name, cfg->capsule_key, &csrc,
                                        c->lsm_cache_bytes_max) != PSL_OK)
        goto out_free_rd;
    if (memtable_init(&e->mt, hkey) != PSL_OK)
        goto out_free_crd;
    if (ack_keys_init(&e->ack_keys, &wk->kx, cfg->meta) != PSL_OK) {
        memtable_deinit(&e->mt);
        goto out_free_crd;
    }
    memcpy(e->capsule_key, cfg->capsule_key, AEAD_KEY_SIZE);
    e->keys = *wk; /* taken */
    memset(wk, 0, sizeof *wk);
    rng_bytes(e->requester, HASH_SIZE);
    record_chain_init(&e->chain, e->meta.name);
    durability_init(&e->dur, e->meta.replica_count, e->meta.quorum_k);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->seal_mu, NULL);
    queue_ctrl(e, REC_CERT, 0);
    /* A compactor must continue from the newest index, never start a new lineage. */
    /* In a collecting capsule the log below the newest checkpoint may be gone from the servers:
     * a full replay from seq 1 would stop at the first collected record, so every engine joins
     * from the checkpoint. */
    if (c->checkpoint_recovery || e->compactor || e->meta.retention == RETENTION_COLLECT_COVERED)
        e->recov = RECOV_HEADS;
    /* Joining: learn every writer's head from the servers and catch up (DESIGN §5.6). */
    emit_request(e, REQ_GET_HEADS, NULL, 0, 0, NULL);
    *out = e;
    return PSL_OK;
out_free_crd:
    if (e->compactor)
        lsm_reader_deinit(&e->crd);
out_free_rd:
    lsm_reader_deinit(&e->rd);
out_free:
    secret_free(e->capsule_key);
    free(e->wants);
    free(e->buf);
    free(e);
    return err;
}

void scl_destroy(struct scl_engine *e)
{
    if (!e)
        return;
    while (e->q_head) {
        struct qbuf *q = e->q_head;
        e->q_head = q->next;
        secret_wipe(q->data, q->size);
        free(q);
    }
    free(e->q_spare); /* wiped when it was emptied */
    while (e->c_head) {
        struct ctrl *c = e->c_head;
        e->c_head = c->next;
        free(c);
    }
    for (size_t i = 0; i < e->unacked_count; i++)
        free(e->unacked[i].data);
    free(e->unacked);
    for (size_t i = 0; i < e->peer_count; i++) {
        struct peer *p = e->peers[i];
        while (p->cbuf) {
            struct cbuf *b = p->cbuf;
            p->cbuf = b->next;
            secret_wipe(b->plain, b->plain_size);
            free(b->plain);
            free(b->ops);
            free(b);
        }
        aead_key_deinit(&p->key);
        free(p->seen);
        free(p);
    }
    while (e->jobs) {
        struct flush_job *j = e->jobs;
        e->jobs = j->next;
        flush_job_free(j);
    }
    while (e->staged)
        staged_unlink(e, &e->staged);
    free(e->wants);
    free(e->held);
    free(e->held_ck);
    free(e->own_lamport);
    lsm_reader_deinit(&e->rd);
    if (e->compactor)
        lsm_reader_deinit(&e->crd);
    lsm_index_deinit(&e->ix);
    lsm_index_deinit(&e->cix);
    lsm_index_deinit(&e->cand);
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
    ack_keys_free(&e->ack_keys);
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
    if (e->recov || (e->q_ops && (e->q_ops >= e->cfg.queue_ops_max ||
                                  e->q_bytes + bytes > e->cfg.queue_bytes_max))) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_BUSY;
    }
    /* The newest batch takes the op if it has room under the record's limits. */
    struct qbuf *q = e->q_tail, *fresh = NULL, *prev = e->q_tail;
    if (!q || (q->ops && (q->ops >= e->cfg.batch_ops_max ||
                          4 + q->size + bytes > e->cfg.batch_bytes_max)) ||
        bytes > q->cap - q->size) {
        size_t cap = e->cfg.batch_bytes_max < QBUF_CAP_MIN ? QBUF_CAP_MIN : e->cfg.batch_bytes_max;
        if (cap < bytes)
            cap = bytes;
        if (e->q_spare && e->q_spare->cap >= bytes) {
            q = e->q_spare;
            e->q_spare = NULL;
        } else {
            q = malloc(sizeof *q + cap);
            if (!q) {
                pthread_mutex_unlock(&e->mu);
                return PSL_ERR_NOMEM;
            }
            q->cap = cap;
        }
        q->next = NULL;
        q->ops = 0;
        q->size = 0;
        fresh = q;
        if (e->q_tail)
            e->q_tail->next = q;
        else
            e->q_head = q;
        e->q_tail = q;
    }
    uint64_t lamport = ++e->clock;
    bool applied;
    psl_err err = memtable_apply(&e->mt, op, lamport, e->keys.writer_id, key, key_size, value,
                                 value_size, &applied);
    if (err) {
        e->clock--;
        if (fresh) {
            /* Unlink the batch made for this op: actors never see an empty batch. */
            if (prev)
                prev->next = NULL;
            else
                e->q_head = NULL;
            e->q_tail = prev;
            if (!e->q_spare)
                e->q_spare = fresh;
            else
                free(fresh);
        }
        pthread_mutex_unlock(&e->mu);
        return err;
    }
    uint8_t *p = q->data + q->size;
    p[0] = op;
    put_le64(p + 1, lamport);
    put_le16(p + 9, (uint16_t)key_size);
    put_le32(p + 11, (uint32_t)value_size);
    memcpy(p + DATA_OP_OVERHEAD, key, key_size);
    if (value_size)
        memcpy(p + DATA_OP_OVERHEAD + key_size, value, value_size);
    q->size += bytes;
    q->ops++;
    if (e->q_ops++ == 0)
        /* Relaxed: read by the same (putting) thread in scl_wants_kick; the kick it leads to
         * orders everything else (the runner's seq_cst counters). */
        atomic_store_explicit(&e->kick_wanted, true, memory_order_relaxed);
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

bool scl_has_work(struct scl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool work = e->c_head || e->q_head || e->jobs || e->out_head;
    pthread_mutex_unlock(&e->mu);
    return work;
}

uint64_t scl_applied_version(struct scl_engine *e)
{
    /* Acquire: pairs with the release increment in the receive path. */
    return atomic_load_explicit(&e->applied_version, memory_order_acquire);
}

bool scl_wants_kick(struct scl_engine *e)
{
    /* Relaxed: see local_op. */
    return atomic_exchange_explicit(&e->kick_wanted, false, memory_order_relaxed);
}

psl_err scl_del(struct scl_engine *e, const uint8_t *key, size_t key_size)
{
    return local_op(e, OP_DEL, key, key_size, NULL, 0);
}

psl_err scl_get(struct scl_engine *e, const uint8_t *key, size_t key_size, uint8_t *out,
                size_t cap, size_t *size)
{
    pthread_mutex_lock(&e->mu);
    if (e->recov) {
        pthread_mutex_unlock(&e->mu);
        return PSL_ERR_BUSY;
    }
    if (e->partial && e->ix.level_count) {
        /* The memtable may lack the newest version: an evicted key, or one the checkpoint holds
         * (or one re-created by a late operation with an older stamp). */
        struct memtable_entry_view mv;
        psl_err lerr = memtable_lookup(&e->mt, key, key_size, &mv);
        if (lerr && lerr != PSL_ERR_NOT_FOUND) {
            pthread_mutex_unlock(&e->mu);
            return lerr;
        }
        if (lerr || mv.lamport <= lsm_index_lamport_max(&e->ix)) {
            lerr = lsm_get_locked(e, key, key_size, lerr ? NULL : &mv, out, cap, size);
            pthread_mutex_unlock(&e->mu);
            return lerr;
        }
    }
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

bool scl_is_ready(struct scl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool ready = e->recov == RECOV_LIVE;
    pthread_mutex_unlock(&e->mu);
    return ready;
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
        const uint8_t *h = peer_hash_at(p, p->contiguous);
        if (!p->has_cert || p->forked || !h)
            continue;
        memcpy(heads[n].writer, p->id, HASH_SIZE);
        heads[n].seq = p->contiguous;
        memcpy(heads[n].hash, h, HASH_SIZE);
        n++;
    }
    cut_encode(w, epoch, heads, n);
    free(heads);
}

psl_err scl_actor_step(struct scl_engine *e)
{
    pthread_mutex_lock(&e->seal_mu);
    pthread_mutex_lock(&e->mu);
    /* A held index (its blocks are not durable yet) must be the next record anyone sees. */
    if (e->held || e->held_ck || e->unacked_bytes > e->cfg.unacked_bytes_max) {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&e->seal_mu);
        return PSL_ERR_BUSY;
    }
    struct ctrl *c = e->c_head;
    struct qbuf *batch = NULL;
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
    } else if (e->jobs && !e->recov) {
        struct flush_job *j = e->jobs;
        e->jobs = j->next;
        if (!e->jobs)
            e->jobs_tail = NULL;
        pthread_mutex_unlock(&e->mu);
        compactor_run(e, j);
        pthread_mutex_unlock(&e->seal_mu);
        return PSL_OK;
    } else if (e->q_head) {
        /* Take the oldest batch whole: it holds what queued meanwhile, within the limits. */
        type = REC_DATA;
        batch = e->q_head;
        e->q_head = batch->next;
        if (!e->q_head)
            e->q_tail = NULL;
        batch_ops = batch->ops;
        e->q_ops -= batch->ops;
        e->q_bytes -= batch->size;
    } else {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&e->seal_mu);
        return PSL_ERR_NOT_FOUND;
    }
    memcpy(e->chain.sync, e->sync_next, HASH_SIZE);
    /* The record's lamport: above every operation in it, and not above any operation still
     * queued (stamped earlier, sealed in a later record). So an index whose cut head for this
     * writer is this record covers exactly the operations stamped below its lamport
     * (lsm_index_covers): none of those can turn up in a later record. Operations are stamped
     * in increasing order and queued in that order, so the oldest queued one is the lowest. */
    uint64_t lamport = ++e->clock;
    if (e->q_head && e->q_head->ops > 0) {
        uint64_t queued = get_le64(e->q_head->data + 1);
        if (queued < lamport)
            lamport = queued;
    }
    pthread_mutex_unlock(&e->mu);
    /* The detached batch and the buffer belong to this actor (seal_mu): encode without mu, so
     * puts are not held up, then wipe and free the queue nodes. */
    if (batch) {
        wr_u32(&w, (uint32_t)batch_ops);
        wr_bytes(&w, batch->data, batch->size);
        secret_wipe(batch->data, batch->size);
    }
    PSL_ASSERT(w.err == PSL_OK); /* the buffer was sized for the largest batch and cut */
    size_t size;
    uint8_t hash[HASH_SIZE];
    psl_err err = record_chain_seal(&e->chain, &e->keys, type, lamport, e->buf, e->buf_size, w.pos,
                                    &size, hash);
    PSL_ASSERT(err == PSL_OK);
    pthread_mutex_lock(&e->mu);
    if (batch) {
        /* Keep one emptied batch for the next puts; free the rest. */
        if (!e->q_spare) {
            e->q_spare = batch;
            batch = NULL;
        }
    }
    e->ops_sealed += batch_ops;
    e->st.ops_sealed = e->ops_sealed;
    own_lamport_set(e, e->chain.seq, lamport);
    track_sealed(e, e->buf, size, hash, e->chain.seq);
    if (type == REC_SYNC)
        e->st.epochs++;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&e->seal_mu);
    free(batch);
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
    if (e->recov && e->recov != RECOV_REPLAY)
        return; /* the checkpoint decides where replay starts */
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
        const uint8_t *want = p->contiguous ? peer_hash_at(p, p->contiguous) : zero_hash;
        if (!want || memcmp(next->prev, want, HASH_SIZE) != 0)
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
    if (ready)
        compactor_queue(e, heads, n, epoch, e->sync_pending_hash);
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

/* Collecting capsules only: servers drop a writer's records below its head in a checkpoint, so
 * a writer we hold only up to below its head in the adopted index (we were partitioned, or lost
 * records) could never be filled from the log. It continues from the head there, as a joining
 * engine would: the index holds those operations, and gets consult the tree (partial). Records
 * we hold past the head stay (the window shifts). A record we hold at the head seq with another
 * hash is a disagreement to leave to the fork logic: that writer is not moved (caller holds mu). */
static void rebase_on_index(struct scl_engine *e)
{
    if (e->compactor || e->recov || e->meta.retention != RETENTION_COLLECT_COVERED)
        return;
    bool moved = false;
    for (size_t i = 0; i < e->ix.head_count; i++) {
        const struct lsm_index_head *h = &e->ix.heads[i];
        struct peer *p = peer_find(e, h->writer);
        if (!p || p->forked || !p->has_cert || p->contiguous >= h->seq)
            continue;
        const struct seen *at = seen_at(p, h->seq, false);
        if (at && at->known && memcmp(at->hash, h->hash, HASH_SIZE) != 0)
            continue;
        uint64_t shift = h->seq - p->base;
        if (shift >= p->seen_cap) {
            if (p->seen_cap)
                memset(p->seen, 0, p->seen_cap * sizeof *p->seen);
        } else {
            size_t sh = (size_t)shift;
            memmove(p->seen, p->seen + sh, (p->seen_cap - sh) * sizeof *p->seen);
            memset(p->seen + (p->seen_cap - sh), 0, sh * sizeof *p->seen);
        }
        p->base = p->contiguous = h->seq;
        memcpy(p->base_hash, h->hash, HASH_SIZE);
        p->base_lamport = h->lamport;
        if (p->max_seq < h->seq)
            p->max_seq = h->seq;
        advance_contiguous(p);
        moved = true;
    }
    if (moved) {
        e->partial = true;
        if (lsm_index_lamport_max(&e->ix) >= e->clock)
            e->clock = lsm_index_lamport_max(&e->ix) + 1;
    }
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
        if (!err) {
            e->st.ops_applied += count;
            /* Release: pairs with the acquire load in scl_applied_version; a poller that sees
             * the new version and then takes mu sees these operations (mu orders them anyway:
             * the version only says when to look). */
            atomic_fetch_add_explicit(&e->applied_version, 1, memory_order_release);
        }
        struct cbuf *b = NULL;
        if (!err && e->compactor && v->h.seq > p->flushed_seq && (b = malloc(sizeof *b))) {
            *b = (struct cbuf){.next = p->cbuf, .seq = v->h.seq, .plain = plain,
                               .plain_size = v->h.payload_size, .ops = ops, .count = count};
            memcpy(b->writer, p->id, HASH_SIZE);
            p->cbuf = b; /* the ops point into plain: both kept until a cut covers them */
        } else {
            free(ops);
            secret_wipe(plain, v->h.payload_size);
            free(plain);
        }
        if (err)
            return err;
    } else if (v->h.type == REC_LSM_INDEX) {
        /* A validly signed record of its chain either way; adopted only from a compactor. */
        struct lsm_index nix;
        psl_err err = index_open(p, v, &nix);
        if (err == PSL_ERR_NOMEM)
            return err;
        if (err) {
            e->st.lsm_indexes_refused++;
            e->st.rejected_by[err]++;
        } else {
            index_adopt(e, &nix);
            rebase_on_index(e);
            evict_covered(e);
        }
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
    if (e->recov && e->recov != RECOV_REPLAY && v.h.type == REC_LSM_INDEX && e->cand.generation &&
        v.h.seq <= e->cand_seq && memcmp(v.h.writer, e->cand_writer, HASH_SIZE) == 0) {
        /* Recovering: the candidate's compactor made this index before (or as) the candidate,
         * so it is not newer; not opened again (each server sends the same tail). */
        e->st.duplicates++;
        pthread_mutex_unlock(&e->mu);
        return PSL_OK;
    }
    if (e->recov && e->recov != RECOV_REPLAY && v.h.type != REC_CERT &&
        v.h.type != REC_LSM_INDEX) {
        /* Recovering: only certificates and indexes count until the checkpoint is chosen; the
         * rest is fetched again from where the checkpoint ends (the seq is a claim). */
        if (p && v.h.seq > p->max_seq && v.h.seq <= (uint64_t)p->contiguous + SEEN_WINDOW)
            p->max_seq = v.h.seq;
        e->st.recovery_deferred++;
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
    if (e->recov && e->recov != RECOV_REPLAY && v.h.type == REC_LSM_INDEX) {
        /* A checkpoint candidate: the newest verified one wins when recovery ends. */
        struct lsm_index nix;
        err = index_open(p, &v, &nix);
        if (!err)
            p->tail_index = true;
        if (err) {
            e->st.lsm_indexes_refused++;
            e->st.rejected_by[err]++;
        } else if (nix.generation > e->cand.generation) {
            lsm_index_deinit(&e->cand);
            e->cand = nix;
            memcpy(e->cand_writer, v.h.writer, HASH_SIZE);
            e->cand_seq = v.h.seq;
        } else {
            lsm_index_deinit(&nix);
        }
        pthread_mutex_unlock(&e->mu);
        return PSL_OK;
    }
    if (v.h.seq <= p->base) {
        /* Inside the checkpoint: its operations are in the index already. */
        e->st.duplicates++;
        struct pending *old = v.h.type == REC_CERT ? take_pending(e, p->id) : NULL;
        pthread_mutex_unlock(&e->mu);
        while (old) {
            struct pending *h = old;
            old = h->next;
            (void)process_record(e, h->data, h->size);
            free(h);
        }
        return PSL_OK;
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
    s->lamport = v.h.lamport;
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
    release_held(e);
}

psl_err scl_on_ack(struct scl_engine *e, const uint8_t *data, size_t size)
{
    struct ack a;
    int idx = -1;
    psl_err err = ack_decode(&a, data, size);
    if (!err)
        err = ack_verify_mac(&a, &e->meta, &e->ack_keys, &idx);
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

/* Checkpoint recovery: counts server as having answered when r is the last part of its reply to
 * one of the compactors' tail requests, called after the part's records went through
 * process_record. Counting any GET_RANGE reply (a late answer to a certificate fetch) or a first
 * part (the newest index is at the end of the range) ended recovery before the index arrived, and
 * the engine then replayed from seq 1. */
static void tail_answered(struct scl_engine *e, const struct proto_reply *r, unsigned server)
{
    if (r->type != REQ_GET_RANGE || r->more)
        return;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; e->recov == RECOV_TAILS && i < e->tail_req_count; i++)
        if (e->tail_req[i] == r->request_id)
            e->recov_servers |= 1u << server;
    pthread_mutex_unlock(&e->mu);
}

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
    unsigned server = (unsigned)meta_replica_index(&e->meta, r.server_pk);
    if (r.type == REQ_GET_HASH) {
        pthread_mutex_lock(&e->mu);
        for (size_t i = 0; i < e->want_count; i++)
            if (e->wants[i].request_id == r.request_id)
                e->wants[i].answered |= 1u << server;
        pthread_mutex_unlock(&e->mu);
    }
    if (r.status != REP_OK) {
        tail_answered(e, &r, server);
        return PSL_OK;
    }
    if (r.type == REQ_GET_RANGE || r.type == REQ_GET_HASH) {
        struct proto_rec_iter it;
        if ((err = proto_rec_iter_init(&it, r.body, r.body_size))) {
            tail_answered(e, &r, server);
            return err;
        }
        const uint8_t *rec;
        size_t n;
        /* A compactor's tail holds an index per epoch, oldest first: only the newest of this
         * part is opened (the headers are read here only to skip; process_record checks all). */
        uint64_t newest_index = 0;
        if (r.type == REQ_GET_RANGE && e->recov == RECOV_TAILS) {
            struct proto_rec_iter scan = it;
            struct record_header hd;
            psl_err serr;
            while (proto_rec_iter_next(&scan, &rec, &n, &serr))
                if (record_header_decode(&hd, rec, n) == PSL_OK && hd.type == REC_LSM_INDEX &&
                    hd.seq > newest_index)
                    newest_index = hd.seq;
        }
        while (proto_rec_iter_next(&it, &rec, &n, &err)) {
            if (newest_index) {
                struct record_header hd;
                if (record_header_decode(&hd, rec, n) == PSL_OK && hd.type == REC_LSM_INDEX &&
                    hd.seq < newest_index)
                    continue;
            }
            if (r.type == REQ_GET_HASH) {
                /* A block someone waits for is staged for the reader, which checks it; bytes
                 * that name no wanted hash go the normal way (and are refused there). */
                uint8_t h[HASH_SIZE];
                struct record_header hd;
                bool staged = false;
                if (record_header_decode(&hd, rec, n) == PSL_OK && hd.type == REC_LSM_BLOCK) {
                    size_t hashed = PSL_RECORD_HEADER_SIZE + (size_t)hd.payload_size;
                    hash_sha256(h, rec, hashed < n ? hashed : n);
                    pthread_mutex_lock(&e->mu);
                    struct want *w = want_find(e, h);
                    if (w) {
                        staged_add(e, h, server, rec, n);
                        w->staged = true;
                        staged = true;
                    } else {
                        for (size_t i = 0; i < e->want_count; i++)
                            if (e->wants[i].request_id == r.request_id) {
                                e->st.lsm_blocks_refused++; /* not the block asked for */
                                staged = true;
                            }
                    }
                    pthread_mutex_unlock(&e->mu);
                }
                if (staged)
                    continue;
            }
            (void)process_record(e, rec, n);
        }
        tail_answered(e, &r, server);
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
            if (p && e->recov && h.contiguous > p->rec_head)
                p->rec_head = h.contiguous; /* the freshest claim; records must still verify */
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

/* Ends checkpoint recovery (caller holds mu): the best verified index becomes the one in use,
 * every writer it lists continues after its head there (the checkpoint's records are never
 * replayed), the clock moves past everything the checkpoint holds, and the engine goes live;
 * the tick then fetches each writer's records after its base. Without an index, recovery is the
 * full replay of DESIGN §5.6. */
static void recovery_finish(struct scl_engine *e)
{
    e->recov = RECOV_REPLAY;
    e->recov_ms = e->now_ms ? e->now_ms : 1;
    if (!e->cand.generation)
        return;
    uint64_t high = lsm_index_lamport_max(&e->cand);
    for (size_t i = 0; i < e->cand.head_count; i++) {
        const struct lsm_index_head *h = &e->cand.heads[i];
        if (h->lamport > high)
            high = h->lamport;
        if (memcmp(h->writer, e->keys.writer_id, HASH_SIZE) == 0)
            continue;
        struct peer *p = peer_get(e, h->writer);
        if (!p || p->contiguous > h->seq)
            continue;
        free(p->seen);
        p->seen = NULL;
        p->seen_cap = 0;
        p->base = p->contiguous = h->seq;
        memcpy(p->base_hash, h->hash, HASH_SIZE);
        p->base_lamport = h->lamport;
        p->flushed_seq = h->seq;
        if (p->max_seq < h->seq)
            p->max_seq = h->seq;
        p->fetch_ms = 0;
        /* Records held for this writer's CERT that the checkpoint covers are dropped there. */
    }
    if (high >= e->clock)
        e->clock = high + 1;
    e->st.recovery_index_generation = e->cand.generation;
    if (e->compactor) {
        struct lsm_index copy;
        if (lsm_index_clone(&e->cand, &copy) == PSL_OK) {
            lsm_index_deinit(&e->cix);
            e->cix = copy; /* the new identity continues this lineage */
        } else {
            e->compact_broken = true;
        }
    }
    e->partial = true;
    index_adopt(e, &e->cand);
    lsm_index_init(&e->cand);
}

/* Checkpoint recovery, one step per tick (caller holds mu): heads from n - k + 1 servers, then
 * the certificates of the writers they name (to know the compactors), then the tail of each
 * compactor's chain, where its newest index is, from n - k + 1 servers. Every phase also ends
 * after a few retry periods, so dead servers delay recovery, never stop it. */
static bool tail_wanted(const struct peer *p)
{
    return p->rec_head && p->has_cert && p->cert.role == ROLE_COMPACTOR && !p->forked;
}

/* Asks for the last `span` records of every compactor's chain (up to its reported head), where
 * its newest index is; false if there is no compactor. Caller holds mu. */
static bool request_tails(struct scl_engine *e, uint64_t span)
{
    bool any = false;
    e->tail_req_count = 0;
    for (size_t i = 0; i < e->peer_count; i++) {
        struct peer *p = e->peers[i];
        bool asked_all = span > RECOVERY_PROBE && p->rec_head <= span / RECOVERY_TAIL_GROWTH;
        if (!tail_wanted(p) || p->tail_index || asked_all)
            continue; /* found its index already, or its whole chain was asked for */
        uint64_t from = p->rec_head > span ? p->rec_head - span + 1 : 1;
        uint64_t id = emit_request(e, REQ_GET_RANGE, p->id, from, p->rec_head, NULL);
        if (e->tail_req_count < TAIL_REQUESTS_MAX)
            e->tail_req[e->tail_req_count++] = id;
        any = true;
    }
    if (!any)
        return false;
    e->tail_span = span;
    e->recov = RECOV_TAILS;
    e->recov_servers = 0;
    e->recov_ms = e->now_ms ? e->now_ms : 1;
    return true;
}

static void recovery_tick(struct scl_engine *e)
{
    unsigned fresh = e->meta.replica_count - e->meta.quorum_k + 1u;
    uint64_t patience = 4u * (uint64_t)e->cfg.fetch_retry_ms;
    if (!e->recov_ms)
        e->recov_ms = e->now_ms ? e->now_ms : 1;
    uint64_t waited = e->now_ms - e->recov_ms;
    if (e->recov == RECOV_HEADS) {
        if ((unsigned)__builtin_popcount(e->heads_answered) < fresh && waited < patience)
            return;
        for (size_t i = 0; i < e->peer_count; i++) {
            struct peer *p = e->peers[i];
            if (p->rec_head && !p->has_cert) {
                emit_request(e, REQ_GET_RANGE, p->id, 1, 1, NULL);
                e->st.fetches++;
            }
        }
        e->recov = RECOV_CERTS;
        e->recov_ms = e->now_ms ? e->now_ms : 1;
        return;
    }
    if (e->recov == RECOV_CERTS) {
        bool all = true;
        for (size_t i = 0; i < e->peer_count; i++)
            all = all && (!e->peers[i]->rec_head || e->peers[i]->has_cert);
        if (!all && waited < patience)
            return;
        if (!request_tails(e, RECOVERY_PROBE))
            recovery_finish(e);
        return;
    }
    if (e->recov == RECOV_TAILS &&
        ((unsigned)__builtin_popcount(e->recov_servers) >= fresh || waited >= patience)) {
        /* A compactor whose tail held no index (its newest index lies further back, behind
         * the blocks of a flush in progress, or it never wrote one) is asked for a tail 8
         * times longer, until an index turns up or its whole chain was asked for. An older
         * index than its newest would be correct but replay more, and in a collecting capsule
         * the records before the newest cut may be gone: recovery must find the newest. */
        bool again = false;
        for (size_t i = 0; i < e->peer_count; i++) {
            const struct peer *p = e->peers[i];
            again = again || (tail_wanted(p) && !p->tail_index && p->rec_head > e->tail_span);
        }
        if (!again || !request_tails(e, e->tail_span * RECOVERY_TAIL_GROWTH))
            recovery_finish(e);
    }
    if (e->recov == RECOV_REPLAY) {
        /* Live once every writer is replayed up to the freshest head the servers reported (a
         * head that never comes, claimed by a lying server, only delays this). */
        bool done = true;
        for (size_t i = 0; i < e->peer_count; i++) {
            struct peer *p = e->peers[i];
            done = done && (p->forked || p->contiguous >= p->rec_head);
        }
        if (done || waited >= 25u * patience)
            e->recov = RECOV_LIVE;
    }
}

/* Wanted blocks: asked again after the retry period, up to WANT_TRIES_MAX times (caller holds
 * mu). */
static void wants_tick(struct scl_engine *e)
{
    staged_drop(e, NULL);
    for (size_t i = 0; i < e->want_count; i++) {
        struct want *w = &e->wants[i];
        if (w->tries >= WANT_TRIES_MAX || e->now_ms - w->asked_ms < e->cfg.fetch_retry_ms)
            continue;
        w->request_id = emit_request(e, REQ_GET_HASH, NULL, 0, 0, w->hash);
        w->asked_ms = e->now_ms;
        w->answered = 0;
        w->tries++;
        e->st.lsm_block_requests++;
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
    if (e->recov)
        recovery_tick(e);
    wants_tick(e);
    evict_covered(e);
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

bool scl_caught_up(struct scl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool up = e->pending_count == 0;
    for (size_t i = 0; i < e->peer_count && up; i++) {
        const struct peer *p = e->peers[i];
        if (p->has_cert && !p->forked && p->contiguous < p->max_seq)
            up = false;
    }
    pthread_mutex_unlock(&e->mu);
    return up;
}
