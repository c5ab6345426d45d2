/* sim.c: a deterministic simulation of the Secure Concurrency Layer (DESIGN §12). Real SCL
 * engines (src/scl/engine.c) talk through a simulated fabric (a priority queue of timed
 * deliveries keyed by (time, sequence number)) to storage-server models, under a simulated
 * clock, with loss, duplication, reordering, delays, symmetric and asymmetric partitions,
 * crashes and restarts of workers and servers, and an adversary on the fabric. Everything is
 * drawn from one seed: fabric faults from a splitmix64 stream of the simulator, keys and request
 * ids from the rng seam (a separate seeded ChaCha20 stream), so a fault never perturbs a key.
 *
 * The storage-server model reuses the verification, ACK and reply code of psl-capsuled
 * (record_parse, record_check_cert / record_check against the metadata and the CERT-derived
 * certificate, ack_sign, proto_reply_seal), not its threading shell, its LMDB store or its
 * server-to-server anti-entropy: records are kept in memory per writer by seq, the contiguous
 * head is acknowledged once per step (group commit). A crashed server keeps everything it
 * acknowledged (the lossy variant drops what it held but had not acknowledged yet).
 *
 * Invariants (the first broken one fails the run with its seed):
 *  I1 authenticity, every step: every value a worker holds was issued by an honest, certified
 *     writer for that very key (values name their writer slot and op number); forged,
 *     flipped, replayed or uncertified records never reach the state.
 *  I2 convergence, after heal and quiescence: every live worker's scl_digest is identical and
 *     equals the digest of a reference memtable built from the honest records the servers hold
 *     (their verified prefixes), and every key's value equals an independent LWW model of them.
 *     Exactly guaranteed: live writers' operations all arrive; a crashed writer's records count
 *     iff some server holds them in a linked prefix. If a crashed writer's record reached a
 *     worker but no server, replicas may legitimately differ (the design has no peer-to-peer
 *     anti-entropy): the run is marked convergence_exempt and I2 is skipped, never hidden.
 *  I3 durability: when scl_flush_done(t) first holds, every record up to the one carrying op t
 *     is in the linked prefix of >= k servers (so any k-1 may be lost); rechecked at the end,
 *     and a fresh reader that cannot reach k-1 random servers catches up to every flushed seq.
 *  I4 fork detection: every fork the adversary makes (a clone of an honest writer's key signing
 *     a different record at a used seq) is reported by a worker (SCL_ACT_ALERT) or recorded by a
 *     server model by the end of the run.
 *  I0 engine self-consistency: an engine never publishes two different records for one seq.
 *  I5 CapsuleDB (every fourth seed, or --lsm: a compactor runs, crashes and restarts like a
 *     worker): no compactor ever skips a cut, no live node refuses an index (only the certified
 *     compactor makes them), and every index a live node uses is one a compactor published.
 *     A compactor that restarted joined from a checkpoint, so its memtable holds only what came
 *     after it: I1 and I2 read every other node, not it. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/proto.h"
#include "capsule/record.h"
#include "crypto/crypto.h"
#include "lsm/compact.h"
#include "scl/engine.h"
#include "scl/memtable.h"

#define NSRV         3u
#define K_QUORUM     2u
#define NODES_MAX    14u /* engine slots: initial workers, restarts, the reader */
#define SRV_NODE     16u /* servers are nodes SRV_NODE + s */
#define ADV_NODE     31u
#define TICK_MS      20u
#define SIM_EPOCH_MS 1700000000000ull
#define HOUR_MS      3600000ull
#define KEYS         24u
#define VKEYS        8u
#define WINDOWS_MAX  3u
#define REPLY_PART_MAX (64u << 10)
#define PENDING_MAX  256u
#define SEQ_MAX      (1u << 14)
#define WORK_MS_MAX  8000u

/* ---- deterministic randomness of the fabric ---- */

static uint64_t rnd_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the world ---- */

enum { M_REC = 1, M_ACK, M_REQ, M_REP };

struct msg {
    uint64_t at, seq;
    uint8_t kind;
    uint8_t src, dst;
    uint8_t *data;
    size_t size;
};

struct logrec { /* one sealed record of an honest writer, by seq */
    uint8_t *data;
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint64_t ops_cum; /* local operations carried up to and including this record */
    bool delivered;   /* reached some engine (directly or through a reply) */
};

struct node {
    struct scl_engine *e;
    bool used, alive, victim, reader, crashing;
    uint8_t role;
    uint8_t id[HASH_SIZE];
    uint8_t requester[HASH_SIZE];
    uint8_t sign_seed[32], kx_seed[32];
    struct writer_cert cert;
    uint64_t ops_left, issued;
    uint8_t *op_key; /* key index of each issued op (1-based op number) */
    size_t op_key_cap;
    uint64_t ticket;        /* pending flush ticket (0: none) */
    uint64_t flushed_seq;   /* highest seq confirmed by a flush */
    uint64_t crash_deadline;
    struct logrec *log; /* index seq */
    size_t log_cap;
    uint64_t log_max;
    uint64_t alerts;
    uint8_t alert_writer[HASH_SIZE];
    uint32_t blocked_srv; /* reader: servers it cannot reach (lost) */
};

struct srec {
    uint8_t *data;
    size_t size;
    uint8_t hash[HASH_SIZE];
};

struct swriter {
    uint8_t id[HASH_SIZE];
    bool has_cert, forked, dirty;
    struct writer_cert cert;
    struct srec *rec; /* index seq */
    size_t cap;
    uint64_t contiguous, max_seq, acked;
    uint8_t *ack_key; /* shared with the writer for its ACK MACs (secret memory), at first use */
};

struct spend {
    struct spend *next;
    uint8_t writer[HASH_SIZE];
    size_t size;
    uint8_t data[];
};

struct server {
    struct signer key;
    struct swriter *w;
    size_t nw;
    bool down, liar;
    uint64_t up_at;
    struct spend *pending;
    size_t pending_count;
};

struct window {
    uint64_t from, to;
    bool asym;
    uint8_t side[32]; /* per node id */
};

struct sim {
    uint64_t seed, rnd, now;
    const struct sim_options *o;
    struct sim_result *r;
    bool failed;
    /* capsule */
    struct signer owner, stranger;
    struct capsule_meta meta;
    uint8_t capsule_key[AEAD_KEY_SIZE];
    struct server srv[NSRV];
    struct node n[NODES_MAX];
    /* fabric */
    struct msg *heap;
    size_t hn, hcap;
    uint64_t mseq;
    unsigned loss_pct, dup_pct, flip_pm, delay_max;
    bool faults_on, adversary_on;
    struct window win[WINDOWS_MAX];
    size_t nwin;
    /* scenario */
    bool crashes, server_crashes, lossy_servers, fork_run, lsm;
    struct lsm_policy pol;
    uint64_t lsm_gen_max; /* the newest index generation any compactor published */
    unsigned worker_crashes_left;
    uint64_t restart_at[NODES_MAX]; /* pending restarts: role by slot of the dead one */
    uint8_t restart_role[NODES_MAX];
    size_t restarts;
    /* adversary */
    struct writer_keys rogue; /* certified by the stranger: no standing in the capsule */
    struct writer_cert rogue_cert;
    struct record_chain rogue_chain;
    bool rogue_cert_sent;
    bool fork_done;
    uint8_t fork_writer[HASH_SIZE];
    size_t victim;
};

/* ---- reporting ---- */

static void vlog(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(struct sim *s, const char *fmt, ...)
{
    if (!s->o->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%8" PRIu64 " ms] ", s->now);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void fail(struct sim *s, const char *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct sim *s, const char *inv, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    s->r->ok = false;
    snprintf(s->r->invariant, sizeof s->r->invariant, "%s", inv);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->r->detail, sizeof s->r->detail, fmt, ap);
    va_end(ap);
    vlog(s, "INVARIANT BROKEN %s: %s", inv, s->r->detail);
}

static uint64_t rnd(struct sim *s)
{
    return rnd_next(&s->rnd);
}

static unsigned below(struct sim *s, unsigned k)
{
    return k ? (unsigned)(rnd(s) % k) : 0;
}

static bool chance_pm(struct sim *s, unsigned per_mille)
{
    return below(s, 1000) < per_mille;
}

/* ---- seams: the simulated clock ---- */

static uint64_t g_now_ms;
static uint64_t sim_mono_ns(void *ctx)
{
    (void)ctx;
    return g_now_ms * 1000000ull;
}
static uint64_t sim_wall_ms(void *ctx)
{
    (void)ctx;
    return SIM_EPOCH_MS + g_now_ms;
}
static const struct clock_source g_clock = {.mono_ns = sim_mono_ns, .wall_ms = sim_wall_ms};

static void seed_bytes(struct sim *s, uint8_t out[32])
{
    for (int i = 0; i < 4; i++)
        put_le64(out + 8 * i, rnd(s));
}

/* ---- the fabric: a binary heap on (at, seq) ---- */

static bool msg_less(const struct msg *a, const struct msg *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct msg m)
{
    if (s->hn == s->hcap) {
        s->hcap = s->hcap ? 2 * s->hcap : 1024;
        s->heap = realloc(s->heap, s->hcap * sizeof *s->heap);
        if (!s->heap)
            abort();
    }
    size_t i = s->hn++;
    s->heap[i] = m;
    while (i && msg_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
        struct msg t = s->heap[i];
        s->heap[i] = s->heap[(i - 1) / 2];
        s->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct msg heap_pop(struct sim *s)
{
    struct msg top = s->heap[0];
    s->heap[0] = s->heap[--s->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->hn && msg_less(&s->heap[l], &s->heap[m]))
            m = l;
        if (r < s->hn && msg_less(&s->heap[r], &s->heap[m]))
            m = r;
        if (m == i)
            break;
        struct msg t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
    return top;
}

static bool partitioned(struct sim *s, unsigned src, unsigned dst)
{
    if (src == ADV_NODE || dst == ADV_NODE)
        return false;
    for (size_t w = 0; w < s->nwin; w++) {
        struct window *x = &s->win[w];
        if (s->now < x->from || s->now >= x->to || x->side[src] == x->side[dst])
            continue;
        if (!x->asym || x->side[src] == 0)
            return true;
    }
    if (src < NODES_MAX && dst >= SRV_NODE && (s->n[src].blocked_srv >> (dst - SRV_NODE)) & 1)
        return true;
    if (dst < NODES_MAX && src >= SRV_NODE && (s->n[dst].blocked_srv >> (src - SRV_NODE)) & 1)
        return true;
    return false;
}

/* Sends a copy of data from src to dst through the faulty fabric. */
static void fab_send(struct sim *s, uint8_t kind, unsigned src, unsigned dst, const uint8_t *data,
                 size_t size)
{
    s->r->messages++;
    if (partitioned(s, src, dst)) {
        s->r->dropped++;
        return;
    }
    bool adv = src == ADV_NODE;
    if (s->faults_on && !adv && below(s, 100) < s->loss_pct) {
        s->r->dropped++;
        return;
    }
    unsigned copies = s->faults_on && below(s, 100) < s->dup_pct ? 2u : 1u;
    for (unsigned c = 0; c < copies; c++) {
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
            abort();
        memcpy(copy, data, size);
        if (s->adversary_on && size && chance_pm(s, s->flip_pm)) {
            size_t bit = (size_t)(rnd(s) % (size * 8));
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            s->r->flipped++;
        }
        uint64_t delay = 1 + (s->faults_on ? below(s, s->delay_max) : 0);
        heap_push(s, (struct msg){.at = s->now + delay, .seq = s->mseq++, .kind = kind,
                                  .src = (uint8_t)src, .dst = (uint8_t)dst, .data = copy,
                                  .size = size});
    }
}

/* ---- storage-server model ---- */

static struct swriter *sw_of(struct server *v, const uint8_t id[HASH_SIZE], bool create)
{
    for (size_t i = 0; i < v->nw; i++)
        if (memcmp(v->w[i].id, id, HASH_SIZE) == 0)
            return &v->w[i];
    if (!create)
        return NULL;
    v->w = realloc(v->w, (v->nw + 1) * sizeof *v->w);
    if (!v->w)
        abort();
    struct swriter *w = &v->w[v->nw++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, id, HASH_SIZE);
    return w;
}

static void sw_grow(struct swriter *w, uint64_t seq)
{
    if (seq < w->cap)
        return;
    size_t cap = w->cap ? w->cap : 64;
    while (cap <= seq)
        cap *= 2;
    w->rec = realloc(w->rec, cap * sizeof *w->rec);
    if (!w->rec)
        abort();
    memset(w->rec + w->cap, 0, (cap - w->cap) * sizeof *w->rec);
    w->cap = cap;
}

static void sw_advance(struct swriter *w)
{
    while (w->contiguous + 1 < w->cap && w->rec[w->contiguous + 1].data &&
           (w->contiguous == 0 ||
            memcmp(w->rec[w->contiguous + 1].data + RECORD_OFFSET_PREV,
                   w->rec[w->contiguous].hash, HASH_SIZE) == 0))
        w->contiguous++;
}

static size_t node_of_writer(struct sim *s, const uint8_t id[HASH_SIZE])
{
    for (size_t i = 0; i < NODES_MAX; i++)
        if (s->n[i].used && memcmp(s->n[i].id, id, HASH_SIZE) == 0)
            return i;
    return SIZE_MAX;
}

static void srv_ack(struct sim *s, unsigned si, struct swriter *w)
{
    if (!w->contiguous)
        return;
    if (w->contiguous > w->acked)
        w->acked = w->contiguous;
    size_t dst = node_of_writer(s, w->id);
    if (dst == SIZE_MAX || !s->n[dst].alive)
        return;
    if (!w->has_cert)
        return;
    if (!w->ack_key) {
        struct kx_keypair kx;
        if (!(w->ack_key = secret_alloc(ACK_KEY_SIZE)) || kx_from_signer(&kx, &s->srv[si].key))
            abort();
        if (ack_key_for_writer(w->ack_key, &kx, s->srv[si].key.pk, w->cert.kx_pk))
            abort();
        kx_deinit(&kx);
    }
    struct ack a = {.seq = w->contiguous};
    memcpy(a.capsule, s->meta.name, HASH_SIZE);
    memcpy(a.writer, w->id, HASH_SIZE);
    memcpy(a.record_hash, w->rec[w->contiguous].hash, HASH_SIZE);
    if (ack_sign(&a, &s->srv[si].key, w->ack_key))
        abort();
    uint8_t buf[ACK_SIZE];
    ack_encode(&a, buf);
    fab_send(s, M_ACK, SRV_NODE + si, (unsigned)dst, buf, ACK_SIZE);
}

static void srv_store(struct server *v, struct swriter *w, const struct record_view *rv)
{
    if (rv->h.seq >= SEQ_MAX)
        return;
    sw_grow(w, rv->h.seq);
    struct srec *r = &w->rec[rv->h.seq];
    if (r->data) {
        if (memcmp(r->hash, rv->hash, HASH_SIZE) != 0)
            w->forked = true; /* two valid records for one seq: keep the first as the store does */
        return;
    }
    r->data = malloc(rv->raw_size);
    if (!r->data)
        abort();
    memcpy(r->data, rv->raw, rv->raw_size);
    r->size = rv->raw_size;
    memcpy(r->hash, rv->hash, HASH_SIZE);
    if (rv->h.seq > w->max_seq)
        w->max_seq = rv->h.seq;
    sw_advance(w);
    w->dirty = true;
    (void)v;
}

static void srv_on_record(struct sim *s, unsigned si, const uint8_t *data, size_t size);

static void srv_release(struct sim *s, unsigned si, const uint8_t writer[HASH_SIZE])
{
    struct server *v = &s->srv[si];
    struct spend *mine = NULL, **pp = &v->pending;
    while (*pp) {
        struct spend *p = *pp;
        if (memcmp(p->writer, writer, HASH_SIZE) == 0) {
            *pp = p->next;
            v->pending_count--;
            p->next = mine;
            mine = p;
        } else {
            pp = &p->next;
        }
    }
    while (mine) {
        struct spend *p = mine;
        mine = p->next;
        srv_on_record(s, si, p->data, p->size);
        free(p);
    }
}

/* The verification path of capsuled's handle_record, step for step. */
static void srv_on_record(struct sim *s, unsigned si, const uint8_t *data, size_t size)
{
    struct server *v = &s->srv[si];
    struct record_view rv;
    if (record_parse(&rv, data, size) != PSL_OK ||
        memcmp(rv.h.capsule, s->meta.name, HASH_SIZE) != 0)
        return;
    struct swriter *w = sw_of(v, rv.h.writer, false);
    if (w && rv.h.seq < w->cap && w->rec[rv.h.seq].data &&
        memcmp(w->rec[rv.h.seq].hash, rv.hash, HASH_SIZE) == 0) {
        srv_ack(s, si, w); /* a re-send: our ACK was lost, acknowledge again at once */
        return;
    }
    uint64_t now = clock_wall_ms();
    if (rv.h.type == REC_CERT) {
        struct writer_cert c;
        if (record_check_cert(&rv, &s->meta, now, &c) != PSL_OK)
            return;
        w = sw_of(v, c.writer_id, true);
        w->cert = c;
        w->has_cert = true;
        srv_store(v, w, &rv);
        srv_release(s, si, c.writer_id);
        return;
    }
    if (!w || !w->has_cert) {
        if (v->pending_count >= PENDING_MAX)
            return;
        struct spend *p = malloc(sizeof *p + size);
        if (!p)
            abort();
        memcpy(p->writer, rv.h.writer, HASH_SIZE);
        p->size = size;
        memcpy(p->data, data, size);
        p->next = v->pending;
        v->pending = p;
        v->pending_count++;
        return;
    }
    if (record_check(&rv, &s->meta, &w->cert, now, NULL) != PSL_OK)
        return;
    srv_store(v, w, &rv);
}

/* Group commit: one ACK of the contiguous head per writer that received something. */
static void srv_commit(struct sim *s)
{
    for (unsigned si = 0; si < NSRV; si++) {
        struct server *v = &s->srv[si];
        if (v->down)
            continue;
        for (size_t k = 0; k < v->nw; k++)
            if (v->w[k].dirty) {
                v->w[k].dirty = false;
                srv_ack(s, si, &v->w[k]);
            }
    }
}

struct rbuf {
    uint8_t *buf;
    size_t cap, body;
    uint32_t count;
};

static void rb_reserve(struct rbuf *b, size_t more)
{
    size_t need = PROTO_REPLY_HEADER_SIZE + b->body + more + SIGN_SIG_SIZE;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    b->buf = realloc(b->buf, cap);
    if (!b->buf)
        abort();
    b->cap = cap;
}

static void rb_send(struct sim *s, unsigned si, unsigned dst, const struct proto_req *q,
                    struct rbuf *b, uint8_t status, bool more)
{
    struct proto_reply r = {
        .type = q->type, .request_id = q->request_id, .status = status, .more = more};
    memcpy(r.capsule, s->meta.name, HASH_SIZE);
    if (status != REP_OK) {
        b->body = 4;
        b->count = 0;
    }
    put_le32(b->buf + PROTO_REPLY_HEADER_SIZE, b->count);
    size_t size = proto_reply_seal(&r, &s->srv[si].key, b->buf, b->body);
    fab_send(s, M_REP, SRV_NODE + si, dst, b->buf, size);
    b->body = 4;
    b->count = 0;
}

static void mark_delivered(struct sim *s, const uint8_t *rec, size_t size);

static void rb_add(struct sim *s, unsigned si, unsigned dst, const struct proto_req *q,
                   struct rbuf *b, const struct srec *r)
{
    if (b->count && b->body + 4 + r->size > REPLY_PART_MAX)
        rb_send(s, si, dst, q, b, REP_OK, true);
    rb_reserve(b, 4 + r->size);
    put_le32(b->buf + PROTO_REPLY_HEADER_SIZE + b->body, (uint32_t)r->size);
    memcpy(b->buf + PROTO_REPLY_HEADER_SIZE + b->body + 4, r->data, r->size);
    b->body += 4 + r->size;
    b->count++;
    mark_delivered(s, r->data, r->size);
}

static void srv_on_request(struct sim *s, unsigned si, unsigned from, const uint8_t *data,
                           size_t size)
{
    struct server *v = &s->srv[si];
    struct proto_req q;
    if (proto_req_decode(&q, data, size) != PSL_OK ||
        memcmp(q.capsule, s->meta.name, HASH_SIZE) != 0)
        return;
    bool lie = v->liar && s->adversary_on;
    struct rbuf b = {.buf = NULL};
    rb_reserve(&b, 4);
    b.body = 4;
    uint8_t status = REP_OK;
    switch (q.type) {
    case REQ_GET_HASH: {
        const struct srec *found = NULL;
        for (size_t k = 0; k < v->nw && !found; k++)
            for (size_t seq = 1; seq < v->w[k].cap && !found; seq++)
                if (v->w[k].rec[seq].data &&
                    memcmp(v->w[k].rec[seq].hash, q.hash, HASH_SIZE) == 0)
                    found = &v->w[k].rec[seq];
        if (found && !(lie && below(s, 2)))
            rb_add(s, si, from, &q, &b, found);
        else
            status = REP_NOT_FOUND;
        break;
    }
    case REQ_GET_RANGE: {
        struct swriter *w = sw_of(v, q.writer, false);
        for (uint64_t seq = q.from; w && seq <= q.to && seq < w->cap; seq++)
            if (w->rec[seq].data && !(lie && below(s, 2))) /* the liar withholds some */
                rb_add(s, si, from, &q, &b, &w->rec[seq]);
        break;
    }
    case REQ_GET_HEADS:
        for (size_t k = 0; k < v->nw; k++) {
            struct swriter *w = &v->w[k];
            struct proto_head h = {
                .contiguous = w->contiguous, .max_seq = w->max_seq, .forked = w->forked};
            if (lie && h.contiguous > 1 && below(s, 2)) { /* a stale head */
                h.contiguous -= 1 + below(s, (unsigned)h.contiguous - 1);
                h.max_seq = h.contiguous;
            }
            memcpy(h.writer, w->id, HASH_SIZE);
            if (h.contiguous)
                memcpy(h.hash, w->rec[h.contiguous].hash, HASH_SIZE);
            else
                memset(h.hash, 0, HASH_SIZE);
            rb_reserve(&b, PROTO_HEAD_ENTRY_SIZE);
            proto_head_put(b.buf + PROTO_REPLY_HEADER_SIZE + b.body, &h);
            b.body += PROTO_HEAD_ENTRY_SIZE;
            b.count++;
        }
        break;
    default:
        status = REP_REFUSED;
        break;
    }
    rb_send(s, si, from, &q, &b, status, false);
    free(b.buf);
}

static void srv_crash(struct sim *s, unsigned si, uint64_t down_ms)
{
    struct server *v = &s->srv[si];
    if (v->down)
        return;
    v->down = true;
    v->up_at = s->now + down_ms;
    s->r->server_crashes++;
    while (v->pending) { /* held records were never stored */
        struct spend *p = v->pending;
        v->pending = p->next;
        free(p);
    }
    v->pending_count = 0;
    if (s->lossy_servers)
        for (size_t k = 0; k < v->nw; k++) {
            struct swriter *w = &v->w[k];
            for (size_t seq = w->acked + 1; seq < w->cap; seq++) {
                free(w->rec[seq].data);
                memset(&w->rec[seq], 0, sizeof w->rec[seq]);
            }
            w->contiguous = w->acked;
            w->max_seq = w->acked;
            w->dirty = false;
        }
    vlog(s, "server %u crashes for %" PRIu64 " ms%s", si, down_ms,
         s->lossy_servers ? " (losing what it had not acknowledged)" : "");
}

/* ---- engines ---- */

static struct logrec *log_at(struct node *nd, uint64_t seq)
{
    if (seq >= nd->log_cap) {
        size_t cap = nd->log_cap ? nd->log_cap : 64;
        while (cap <= seq)
            cap *= 2;
        nd->log = realloc(nd->log, cap * sizeof *nd->log);
        if (!nd->log)
            abort();
        memset(nd->log + nd->log_cap, 0, (cap - nd->log_cap) * sizeof *nd->log);
        nd->log_cap = cap;
    }
    return &nd->log[seq];
}

static void mark_delivered(struct sim *s, const uint8_t *rec, size_t size)
{
    if (size < PSL_RECORD_HEADER_SIZE)
        return;
    size_t i = node_of_writer(s, rec + 44);
    uint64_t seq = get_le64(rec + RECORD_OFFSET_SEQ);
    if (i == SIZE_MAX || seq >= s->n[i].log_cap || !s->n[i].log[seq].data)
        return;
    struct logrec *l = &s->n[i].log[seq];
    if (l->size == size && memcmp(l->data, rec, size) == 0)
        l->delivered = true;
}

static int key_index(const uint8_t *key, size_t size)
{
    if (size != 3 || (key[0] != 'k' && key[0] != 'v') || key[1] < '0' || key[1] > '9' ||
        key[2] < '0' || key[2] > '9')
        return -1;
    int k = (key[1] - '0') * 10 + (key[2] - '0');
    return key[0] == 'k' ? (k < (int)KEYS ? k : -1) : (k < (int)VKEYS ? (int)KEYS + k : -1);
}

static void key_name(char out[4], unsigned ki)
{
    if (ki < KEYS)
        snprintf(out, 4, "k%02u", ki);
    else
        snprintf(out, 4, "v%02u", ki - KEYS);
}

/* Decrypts a DATA record of node i's log; calls fn for each op. Returns the op count. */
typedef void (*op_fn)(void *ctx, const struct kv_op *op, const uint8_t writer[HASH_SIZE]);
static size_t log_ops(struct sim *s, size_t i, const uint8_t *rec, size_t size, op_fn fn,
                      void *ctx)
{
    struct record_view rv;
    if (record_parse(&rv, rec, size) != PSL_OK || rv.h.type != REC_DATA)
        return 0;
    uint8_t *kd = secret_alloc(AEAD_KEY_SIZE);
    struct aead_key key = {.hd = NULL};
    size_t count = 0;
    uint8_t *plain = malloc(rv.h.payload_size);
    struct kv_op *ops = NULL;
    if (!kd || !plain || record_key_derive(kd, s->capsule_key, s->n[i].id) ||
        aead_key_init(&key, kd))
        abort();
    size_t plain_size;
    if (record_open(&rv, &key, plain, rv.h.payload_size, &plain_size) == PSL_OK &&
        data_count(plain, plain_size, &count) == PSL_OK &&
        (ops = malloc((count ? count : 1) * sizeof *ops)) &&
        data_decode(plain, plain_size, ops, count, &count) == PSL_OK) {
        for (size_t k = 0; fn && k < count; k++)
            fn(ctx, &ops[k], s->n[i].id);
    } else {
        count = 0;
    }
    free(ops);
    free(plain);
    aead_key_deinit(&key);
    secret_free(kd);
    return count;
}

static void on_publish(struct sim *s, size_t i, const uint8_t *data, size_t size)
{
    struct node *nd = &s->n[i];
    struct record_view rv;
    if (record_parse(&rv, data, size) != PSL_OK ||
        memcmp(rv.h.writer, nd->id, HASH_SIZE) != 0) {
        fail(s, "engine-published-bad-record", "node %zu published a record that does not parse "
             "or is not its own", i);
        return;
    }
    struct logrec *l = log_at(nd, rv.h.seq);
    if (l->data) {
        if (l->size != size || memcmp(l->data, data, size) != 0)
            fail(s, "engine-equivocated", "node %zu published two records for seq %" PRIu64, i,
                 rv.h.seq);
    } else {
        l->data = malloc(size);
        if (!l->data)
            abort();
        memcpy(l->data, data, size);
        l->size = size;
        memcpy(l->hash, rv.hash, HASH_SIZE);
        uint64_t prev_cum = rv.h.seq > 1 ? log_at(nd, rv.h.seq - 1)->ops_cum : 0;
        l = log_at(nd, rv.h.seq);
        l->ops_cum = prev_cum + log_ops(s, i, data, size, NULL, NULL);
        if (rv.h.seq > nd->log_max)
            nd->log_max = rv.h.seq;
        s->r->records++;
    }
    for (unsigned j = 0; j < NODES_MAX; j++)
        if (j != i && s->n[j].alive)
            fab_send(s, M_REC, (unsigned)i, j, data, size);
    for (unsigned si = 0; si < NSRV; si++)
        fab_send(s, M_REC, (unsigned)i, SRV_NODE + si, data, size);
}

static void drain(struct sim *s, size_t i)
{
    struct node *nd = &s->n[i];
    for (unsigned guard = 0; guard < 100000; guard++) {
        psl_err err = scl_actor_step(nd->e);
        if (err == PSL_ERR_NOT_FOUND || err == PSL_ERR_BUSY)
            break;
        if (err) {
            fail(s, "actor-error", "node %zu: scl_actor_step: %s", i, psl_err_name(err));
            break;
        }
    }
    struct scl_action a;
    while (scl_poll(nd->e, &a)) {
        switch (a.kind) {
        case SCL_ACT_PUBLISH:
            on_publish(s, i, a.data, a.size);
            break;
        case SCL_ACT_REQUEST:
            for (unsigned si = 0; si < NSRV; si++)
                fab_send(s, M_REQ, (unsigned)i, SRV_NODE + si, a.data, a.size);
            break;
        case SCL_ACT_ALERT:
            if (!nd->alerts)
                memcpy(nd->alert_writer, a.writer, HASH_SIZE);
            nd->alerts++;
            vlog(s, "node %zu raises a fork alert", i);
            break;
        default:
            fail(s, "engine-bad-action", "node %zu: action kind %u", i, a.kind);
        }
        free(a.data);
    }
}

static size_t node_spawn(struct sim *s, uint8_t role, bool victim, bool reader, uint64_t ops)
{
    size_t i = 0;
    while (i < NODES_MAX && s->n[i].used)
        i++;
    if (i == NODES_MAX)
        return SIZE_MAX;
    struct node *nd = &s->n[i];
    memset(nd, 0, sizeof *nd);
    seed_bytes(s, nd->sign_seed);
    seed_bytes(s, nd->kx_seed);
    struct writer_keys wk;
    if (writer_keys_init(&wk, nd->sign_seed, nd->kx_seed, s->capsule_key))
        abort();
    memset(&nd->cert, 0, sizeof nd->cert);
    nd->cert.role = role;
    memcpy(nd->cert.capsule, s->meta.name, HASH_SIZE);
    memcpy(nd->cert.sign_pk, wk.sign.pk, SIGN_PK_SIZE);
    memcpy(nd->cert.kx_pk, wk.kx.pk, KX_PK_SIZE);
    nd->cert.not_before_ms = SIM_EPOCH_MS - HOUR_MS;
    nd->cert.not_after_ms = SIM_EPOCH_MS + HOUR_MS;
    nd->cert.serial = 100 + i;
    cert_sign(&nd->cert, &s->owner);
    struct scl_config cfg = {.meta = &s->meta,
                             .capsule_key = s->capsule_key,
                             .cert = &nd->cert,
                             .batch_ops_max = 1 + below(s, 16),
                             .epoch_ms = role == ROLE_COORDINATOR ? 1000 : 0,
                             .lsm_policy = role == ROLE_COMPACTOR ? &s->pol : NULL};
    psl_err err = scl_create(&nd->e, &cfg, &wk);
    if (err) {
        writer_keys_deinit(&wk);
        fail(s, "engine-create", "scl_create: %s", psl_err_name(err));
        return SIZE_MAX;
    }
    nd->used = nd->alive = true;
    nd->role = role;
    nd->victim = victim;
    nd->reader = reader;
    nd->ops_left = ops;
    memcpy(nd->id, nd->cert.writer_id, HASH_SIZE);
    memcpy(nd->requester, scl_requester_id(nd->e), HASH_SIZE);
    scl_tick(nd->e, s->now);
    vlog(s, "node %zu joins (%s%s%s) writer %02x%02x", i, role_name(role), victim ? ", victim" : "",
         reader ? ", reader" : "", nd->id[0], nd->id[1]);
    return i;
}

static void node_kill(struct sim *s, size_t i, bool restart)
{
    struct node *nd = &s->n[i];
    uint64_t t = scl_flush_ticket(nd->e);
    bool clean = scl_flush_done(nd->e, t);
    scl_destroy(nd->e);
    nd->e = NULL;
    nd->alive = false;
    nd->crashing = false;
    s->r->worker_crashes++;
    vlog(s, "node %zu crashes (%s)", i, clean ? "everything durable" : "with undurable work");
    if (restart && s->restarts < NODES_MAX) {
        s->restart_at[s->restarts] = s->now + 200 + below(s, 1800);
        s->restart_role[s->restarts] = nd->role;
        s->restarts++;
    }
}

/* ---- invariants ---- */

/* A compactor that joined from a checkpoint holds only what came after it (see I5); one that is
 * still recovering answers nothing. */
static bool is_checkpointed(struct sim *s, size_t i)
{
    struct scl_stats st;
    if (!s->lsm || s->n[i].role != ROLE_COMPACTOR)
        return false;
    if (!scl_is_ready(s->n[i].e))
        return true; /* still choosing its checkpoint: it answers nothing yet */
    scl_get_stats(s->n[i].e, &st);
    return st.recovery_index_generation != 0;
}

/* I1: every value held names an op its writer issued for that key. */
static void check_values(struct sim *s, size_t i)
{
    struct node *nd = &s->n[i];
    if (is_checkpointed(s, i))
        return;
    for (unsigned ki = 0; ki < KEYS + VKEYS && !s->failed; ki++) {
        char key[4];
        key_name(key, ki);
        uint8_t val[64];
        size_t n;
        psl_err err = scl_get(nd->e, (const uint8_t *)key, 3, val, sizeof val - 1, &n);
        if (err == PSL_ERR_NOT_FOUND)
            continue;
        if (err) {
            fail(s, "I1-authenticity", "node %zu: get %s: %s", i, key, psl_err_name(err));
            return;
        }
        val[n] = 0;
        unsigned slot, gen;
        unsigned long long op;
        char k2[4];
        if (s->fork_done && ki >= KEYS && strcmp((char *)val + 3, "|fork") == 0 &&
            memcmp(val, key, 3) == 0)
            continue; /* the forked writer's clone: validly signed by a certified key */
        if (sscanf((char *)val, "%3[kv0-9]|n%u.g%u.o%llu", k2, &slot, &gen, &op) != 4 ||
            strcmp(k2, key) != 0 || slot >= NODES_MAX || !s->n[slot].used || op == 0 ||
            op > s->n[slot].issued || s->n[slot].op_key[op] != ki) {
            fail(s, "I1-authenticity", "node %zu holds %s = \"%s\", which no honest writer issued",
                 i, key, (char *)val);
            return;
        }
        (void)gen;
    }
}

/* Servers whose linked prefix of writer id reaches seq with this hash. */
static unsigned holders(struct sim *s, const uint8_t id[HASH_SIZE], uint64_t seq,
                        const uint8_t hash[HASH_SIZE])
{
    unsigned count = 0;
    for (unsigned si = 0; si < NSRV; si++) {
        struct swriter *w = sw_of(&s->srv[si], id, false);
        if (w && w->contiguous >= seq && memcmp(w->rec[seq].hash, hash, HASH_SIZE) == 0)
            count++;
    }
    return count;
}

/* I3 at the moment a flush completes. */
static void check_flush(struct sim *s, size_t i)
{
    struct node *nd = &s->n[i];
    if (!nd->ticket || !scl_flush_done(nd->e, nd->ticket))
        return;
    uint64_t seq = 0;
    for (uint64_t q = 1; q <= nd->log_max; q++)
        if (nd->log[q].data && nd->log[q].ops_cum >= nd->ticket) {
            seq = q;
            break;
        }
    s->r->flushes_checked++;
    if (!seq) {
        fail(s, "I3-durability", "node %zu: flush of op %" PRIu64 " done, no record carries it", i,
             nd->ticket);
        return;
    }
    unsigned h = holders(s, nd->id, seq, nd->log[seq].hash);
    if (h < K_QUORUM) {
        fail(s, "I3-durability", "node %zu: flush of op %" PRIu64 " done at seq %" PRIu64
             " but only %u servers hold it", i, nd->ticket, seq, h);
        return;
    }
    if (seq > nd->flushed_seq)
        nd->flushed_seq = seq;
    nd->ticket = 0;
}

/* ---- workload, faults and the adversary ---- */

static void issue_ops(struct sim *s, size_t i)
{
    struct node *nd = &s->n[i];
    unsigned burst = 1 + below(s, 6);
    for (unsigned b = 0; b < burst && nd->ops_left; b++) {
        unsigned ki = nd->victim ? KEYS + below(s, VKEYS) : below(s, KEYS);
        char key[4];
        key_name(key, ki);
        uint64_t op = nd->issued + 1;
        psl_err err;
        if (below(s, 5) == 0) {
            err = scl_del(nd->e, (const uint8_t *)key, 3);
        } else {
            char val[48];
            int len = snprintf(val, sizeof val, "%s|n%zu.g0.o%" PRIu64, key, i, op);
            err = scl_put(nd->e, (const uint8_t *)key, 3, (const uint8_t *)val, (size_t)len);
        }
        if (err == PSL_ERR_BUSY)
            return;
        if (err) {
            fail(s, "engine-api", "node %zu: put/del: %s", i, psl_err_name(err));
            return;
        }
        if (op >= nd->op_key_cap) {
            nd->op_key_cap = nd->op_key_cap ? 2 * nd->op_key_cap : 256;
            nd->op_key = realloc(nd->op_key, nd->op_key_cap);
            if (!nd->op_key)
                abort();
        }
        nd->op_key[op] = (uint8_t)ki;
        nd->issued = op;
        nd->ops_left--;
    }
    if (!nd->ticket && below(s, 4) == 0)
        nd->ticket = scl_flush_ticket(nd->e);
}

static size_t pick_alive(struct sim *s, bool honest_writer_only)
{
    size_t cand[NODES_MAX], n = 0;
    for (size_t i = 0; i < NODES_MAX; i++)
        if (s->n[i].alive &&
            !(honest_writer_only && (s->n[i].victim || s->n[i].reader || s->n[i].crashing)))
            cand[n++] = i;
    return n ? cand[below(s, (unsigned)n)] : SIZE_MAX;
}

static unsigned random_dst(struct sim *s)
{
    size_t i = pick_alive(s, false);
    if (below(s, 2) || i == SIZE_MAX)
        return SRV_NODE + below(s, NSRV);
    return (unsigned)i;
}

static void adv_send_all(struct sim *s, uint8_t kind, const uint8_t *data, size_t size)
{
    for (unsigned j = 0; j < NODES_MAX; j++)
        if (s->n[j].alive)
            fab_send(s, kind, ADV_NODE, j, data, size);
    if (kind == M_REC)
        for (unsigned si = 0; si < NSRV; si++)
            fab_send(s, kind, ADV_NODE, SRV_NODE + si, data, size);
}

/* A DATA record of evil values (or the fork clone's values) sealed with header h by wk. */
static void adv_seal_data(struct sim *s, const struct writer_keys *wk, struct record_header *h,
                          bool fork_values)
{
    char keys[4][4], vals[4][24];
    struct kv_op ops[4];
    unsigned nops = 1 + below(s, 4);
    for (unsigned k = 0; k < nops; k++) {
        key_name(keys[k], fork_values ? KEYS + below(s, VKEYS) : below(s, KEYS));
        snprintf(vals[k], sizeof vals[k], "%s|%s", keys[k], fork_values ? "fork" : "EVIL");
        ops[k] = (struct kv_op){.op = OP_PUT, .lamport = h->lamport + k,
                                .key_size = 3, .key = (const uint8_t *)keys[k],
                                .value_size = (uint32_t)strlen(vals[k]),
                                .value = (const uint8_t *)vals[k]};
    }
    uint8_t buf[1024];
    struct wr w;
    wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, 512);
    data_encode(&w, ops, nops);
    size_t size;
    uint8_t hash[HASH_SIZE];
    if (w.err || record_seal(wk, h, buf, sizeof buf, w.pos, &size, hash))
        abort();
    adv_send_all(s, M_REC, buf, size);
}

static void adv_step(struct sim *s)
{
    /* Replays: an old honest record to someone. */
    if (chance_pm(s, 60)) {
        size_t i = below(s, NODES_MAX);
        struct node *nd = &s->n[i];
        if (nd->used && nd->log_max) {
            uint64_t seq = 1 + below(s, (unsigned)nd->log_max);
            if (nd->log[seq].data) {
                fab_send(s, M_REC, ADV_NODE, random_dst(s), nd->log[seq].data, nd->log[seq].size);
                s->r->replayed++;
            }
        }
    }
    /* An uncertified writer (certificate by a stranger) writes. */
    if (chance_pm(s, 8)) {
        uint8_t pl[1 + CERT_SIZE];
        struct wr w;
        if (!s->rogue_cert_sent) {
            uint8_t buf[PSL_RECORD_HEADER_SIZE + sizeof pl + PSL_RECORD_SIG_SIZE];
            wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, sizeof pl);
            certpl_encode(&w, &s->rogue_cert, NULL);
            size_t size;
            uint8_t hash[HASH_SIZE];
            if (w.err || record_chain_seal(&s->rogue_chain, &s->rogue, REC_CERT, 1, buf,
                                           sizeof buf, w.pos, &size, hash))
                abort();
            adv_send_all(s, M_REC, buf, size);
            s->rogue_cert_sent = true;
        }
        struct record_header h = {.type = REC_DATA, .seq = s->rogue_chain.seq + 1,
                                  .lamport = 1000000 + below(s, 1000)};
        memcpy(h.capsule, s->meta.name, HASH_SIZE);
        memcpy(h.prev, s->rogue_chain.head, HASH_SIZE);
        adv_seal_data(s, &s->rogue, &h, false);
        s->r->forged++;
    }
    /* A record claiming an honest writer's id, encrypted under its key, signed by the rogue. */
    if (chance_pm(s, 8)) {
        size_t i = pick_alive(s, true);
        if (i != SIZE_MAX && s->n[i].log_max) {
            struct node *nd = &s->n[i];
            struct writer_keys wk = s->rogue;
            memcpy(wk.writer_id, nd->id, HASH_SIZE);
            uint8_t *kd = secret_alloc(AEAD_KEY_SIZE);
            if (!kd || record_key_derive(kd, s->capsule_key, nd->id) ||
                aead_key_init(&wk.aead, kd))
                abort();
            secret_free(kd);
            uint64_t seq = 1 + below(s, (unsigned)nd->log_max + 1);
            struct record_header h = {.type = REC_DATA, .seq = seq, .lamport = 1000000};
            memcpy(h.capsule, s->meta.name, HASH_SIZE);
            if (seq > 1 && nd->log[seq - 1].data)
                memcpy(h.prev, nd->log[seq - 1].hash, HASH_SIZE);
            if (seq > 1)
                adv_seal_data(s, &wk, &h, false);
            aead_key_deinit(&wk.aead);
            s->r->forged++;
        }
    }
    /* A forged ACK (by a key outside the replica set) for a writer's newest record. */
    if (chance_pm(s, 8)) {
        size_t i = pick_alive(s, false);
        if (i != SIZE_MAX && s->n[i].log_max) {
            struct ack a = {.seq = s->n[i].log_max};
            memcpy(a.capsule, s->meta.name, HASH_SIZE);
            memcpy(a.writer, s->n[i].id, HASH_SIZE);
            memcpy(a.record_hash, s->n[i].log[a.seq].hash, HASH_SIZE);
            if (ack_sign_for(&a, &s->stranger, s->n[i].cert.kx_pk))
                abort();
            uint8_t buf[ACK_SIZE];
            ack_encode(&a, buf);
            for (int c = 0; c < 3; c++)
                fab_send(s, M_ACK, ADV_NODE, (unsigned)i, buf, ACK_SIZE);
            s->r->forged++;
        }
    }
    /* A real fork: a clone of the victim's key signs a different record at a used seq. */
    if (s->fork_run && !s->fork_done && s->victim != SIZE_MAX && s->n[s->victim].log_max >= 3 &&
        chance_pm(s, 50)) {
        struct node *nd = &s->n[s->victim];
        struct writer_keys clone;
        if (writer_keys_init(&clone, nd->sign_seed, nd->kx_seed, s->capsule_key))
            abort();
        uint64_t seq = 2 + below(s, (unsigned)nd->log_max - 1);
        struct record_header h = {.type = REC_DATA, .seq = seq, .lamport = 500 + below(s, 500)};
        memcpy(h.capsule, s->meta.name, HASH_SIZE);
        memcpy(h.prev, nd->log[seq - 1].hash, HASH_SIZE);
        memcpy(h.sync, nd->log[seq].data + 124, HASH_SIZE);
        adv_seal_data(s, &clone, &h, true);
        writer_keys_deinit(&clone);
        s->fork_done = true;
        memcpy(s->fork_writer, nd->id, HASH_SIZE);
        s->r->forks++;
        vlog(s, "adversary forks node %zu at seq %" PRIu64, s->victim, seq);
    }
}

static void plan_partitions(struct sim *s, uint64_t work_ms)
{
    s->nwin = below(s, WINDOWS_MAX + 1);
    for (size_t w = 0; w < s->nwin; w++) {
        struct window *x = &s->win[w];
        x->from = 500 + below(s, (unsigned)work_ms);
        x->to = x->from + 200 + below(s, 2500);
        x->asym = below(s, 3) == 0;
        for (size_t k = 0; k < sizeof x->side; k++)
            x->side[k] = (uint8_t)below(s, 2);
        s->r->partitions++;
        vlog(s, "partition %zu: %" PRIu64 "..%" PRIu64 " ms, %s", w, x->from, x->to,
             x->asym ? "asymmetric" : "symmetric");
    }
}

/* ---- the event loop ---- */

static void deliver_due(struct sim *s)
{
    while (s->hn && s->heap[0].at <= s->now && !s->failed) {
        struct msg m = heap_pop(s);
        if (m.dst >= SRV_NODE && m.dst < SRV_NODE + NSRV) {
            unsigned si = m.dst - SRV_NODE;
            if (!s->srv[si].down) {
                if (m.kind == M_REC)
                    srv_on_record(s, si, m.data, m.size);
                else if (m.kind == M_REQ)
                    srv_on_request(s, si, m.src, m.data, m.size);
            }
        } else if (m.dst < NODES_MAX && s->n[m.dst].alive) {
            struct scl_engine *e = s->n[m.dst].e;
            switch (m.kind) {
            case M_REC:
                mark_delivered(s, m.data, m.size);
                (void)scl_on_record(e, m.data, m.size);
                break;
            case M_ACK:
                (void)scl_on_ack(e, m.data, m.size);
                break;
            case M_REP:
                (void)scl_on_reply(e, m.data, m.size);
                break;
            default:
                break;
            }
        }
        free(m.data);
    }
}

static void step(struct sim *s, bool workload)
{
    s->now += TICK_MS;
    g_now_ms = s->now;
    s->r->steps++;
    deliver_due(s);
    for (unsigned si = 0; si < NSRV; si++)
        if (s->srv[si].down && s->now >= s->srv[si].up_at) {
            s->srv[si].down = false;
            vlog(s, "server %u restarts", si);
        }
    if (workload) {
        if (s->adversary_on)
            adv_step(s);
        if (s->server_crashes && chance_pm(s, 4))
            srv_crash(s, below(s, NSRV), 300 + below(s, 2700));
        if (s->crashes && s->worker_crashes_left && chance_pm(s, 3)) {
            size_t i = pick_alive(s, true);
            if (i != SIZE_MAX) {
                s->worker_crashes_left--;
                if (below(s, 2)) {
                    node_kill(s, i, true); /* at once, whatever is in flight */
                } else {
                    s->n[i].crashing = true; /* stops working, flushes, then dies */
                    s->n[i].crash_deadline = s->now + 3000;
                    s->n[i].ticket = scl_flush_ticket(s->n[i].e);
                }
            }
        }
        for (size_t k = 0; k < s->restarts; k++)
            if (s->restart_at[k] && s->now >= s->restart_at[k]) {
                s->restart_at[k] = 0;
                (void)node_spawn(s, s->restart_role[k], false, false, 20 + below(s, 40));
            }
    }
    for (size_t i = 0; i < NODES_MAX && !s->failed; i++) {
        struct node *nd = &s->n[i];
        if (!nd->alive)
            continue;
        if (workload && !nd->crashing && nd->ops_left && below(s, 3) == 0)
            issue_ops(s, i);
        drain(s, i);
        scl_tick(nd->e, s->now);
        drain(s, i);
        if (s->lsm && nd->role == ROLE_COMPACTOR) {
            struct scl_stats st;
            scl_get_stats(nd->e, &st);
            if (st.lsm_flushes && st.lsm_generation > s->lsm_gen_max)
                s->lsm_gen_max = st.lsm_generation;
        }
        check_flush(s, i);
        if (!s->failed && (s->r->steps % 4 == 0 || !workload))
            check_values(s, i);
        if (nd->crashing && (!nd->ticket || s->now >= nd->crash_deadline)) {
            nd->crashing = false;
            node_kill(s, i, true);
        }
    }
    srv_commit(s);
}

/* ---- the end: heal, settle, check ---- */

struct lww {
    bool has[KEYS];
    bool del[KEYS];
    uint64_t lamport[KEYS];
    uint8_t writer[KEYS][HASH_SIZE];
    char val[KEYS][48];
    struct memtable mt;
    bool bad;
};

static void lww_apply(void *ctx, const struct kv_op *op, const uint8_t writer[HASH_SIZE])
{
    struct lww *m = ctx;
    int ki = key_index(op->key, op->key_size);
    if (ki < 0 || ki >= (int)KEYS || op->value_size >= sizeof m->val[0]) {
        m->bad = true;
        return;
    }
    bool applied;
    if (memtable_apply(&m->mt, op->op, op->lamport, writer, op->key, op->key_size, op->value,
                       op->value_size, &applied))
        m->bad = true;
    int c = !m->has[ki] ? 1
            : op->lamport != m->lamport[ki] ? (op->lamport > m->lamport[ki] ? 1 : -1)
                                            : memcmp(writer, m->writer[ki], HASH_SIZE);
    if (c <= 0)
        return;
    m->has[ki] = true;
    m->del[ki] = op->op == OP_DEL;
    m->lamport[ki] = op->lamport;
    memcpy(m->writer[ki], writer, HASH_SIZE);
    memcpy(m->val[ki], op->value ? (const char *)op->value : "", op->value_size);
    m->val[ki][op->value_size] = 0;
}

static bool is_fork_writer(struct sim *s, size_t i)
{
    return s->fork_run && s->n[i].victim;
}

/* The longest prefix of node i's records some server holds, linked and equal to what i sealed. */
static uint64_t avail_of(struct sim *s, size_t i)
{
    struct node *nd = &s->n[i];
    uint64_t avail = 0;
    for (unsigned si = 0; si < NSRV; si++) {
        struct swriter *w = sw_of(&s->srv[si], nd->id, false);
        if (w && w->contiguous > avail && w->contiguous <= nd->log_max &&
            memcmp(w->rec[w->contiguous].hash, nd->log[w->contiguous].hash, HASH_SIZE) == 0)
            avail = w->contiguous;
    }
    return avail;
}

static bool carries_ops(const struct node *nd, uint64_t seq)
{
    return nd->log[seq].data && nd->log[seq].ops_cum > (seq > 1 ? nd->log[seq - 1].ops_cum : 0);
}

/* Seq of node i's last record that carries operations (0: none). Control records (CERT, EOE,
 * SYNC) after it change no state: a coordinator seals them forever, so they are never all
 * durable at any given moment. */
static uint64_t last_data_seq(const struct node *nd)
{
    for (uint64_t q = nd->log_max; q >= 1; q--)
        if (carries_ops(nd, q))
            return q;
    return 0;
}

static void check_convergence(struct sim *s)
{
    struct lww *m = calloc(1, sizeof *m);
    uint8_t hk[MEMTABLE_HASH_KEY_SIZE] = {0};
    if (!m || memtable_init(&m->mt, hk))
        abort();
    /* Reference: the honest records in some server's linked prefix. */
    bool exempt = false;
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        if (!nd->used || is_fork_writer(s, i))
            continue;
        uint64_t avail = avail_of(s, i);
        if (nd->alive && avail < last_data_seq(nd)) {
            fail(s, "I2-convergence", "live node %zu: servers hold %" PRIu64 " of its %" PRIu64
                 " records after quiescence", i, avail, last_data_seq(nd));
            goto out;
        }
        for (uint64_t q = avail + 1; q <= nd->log_max; q++)
            if (carries_ops(nd, q) && nd->log[q].delivered)
                exempt = true;
        for (uint64_t q = 1; q <= avail; q++)
            (void)log_ops(s, i, nd->log[q].data, nd->log[q].size, lww_apply, m);
    }
    if (m->bad) {
        fail(s, "sim-reference", "an honest record did not decode in the reference model");
        goto out;
    }
    s->r->convergence_exempt = exempt;
    if (exempt) {
        vlog(s, "convergence exempt: a crashed writer's record reached a worker but no server");
        goto out;
    }
    uint8_t ref[HASH_SIZE];
    if (memtable_digest(&m->mt, ref))
        abort();
    for (size_t i = 0; i < NODES_MAX && !s->failed; i++) {
        struct node *nd = &s->n[i];
        if (!nd->alive || is_checkpointed(s, i))
            continue;
        if (!s->fork_run) {
            uint8_t d[HASH_SIZE];
            if (scl_digest(nd->e, d) || memcmp(d, ref, HASH_SIZE) != 0) {
                fail(s, "I2-convergence", "node %zu: state digest differs from the reference "
                     "(LWW of the honest records the servers hold)", i);
                break;
            }
        }
        for (unsigned ki = 0; ki < KEYS; ki++) {
            char key[4];
            key_name(key, ki);
            uint8_t val[64];
            size_t n;
            psl_err err = scl_get(nd->e, (const uint8_t *)key, 3, val, sizeof val - 1, &n);
            bool want = m->has[ki] && !m->del[ki];
            if (err == PSL_OK)
                val[n] = 0;
            if ((err == PSL_OK) != want || (want && strcmp((char *)val, m->val[ki]) != 0)) {
                fail(s, "I2-convergence", "node %zu: %s = \"%s\", the LWW model says \"%s\"", i,
                     key, err == PSL_OK ? (char *)val : "(absent)", want ? m->val[ki] : "(absent)");
                break;
            }
        }
    }
out:
    memtable_deinit(&m->mt);
    free(m);
}

static uint64_t avail_of(struct sim *s, size_t i);
static uint64_t last_data_seq(const struct node *nd);
static bool is_fork_writer(struct sim *s, size_t i);
static bool carries_ops(const struct node *nd, uint64_t seq);

/* A crashed writer's record that carries operations reached a worker but is in no server's
 * prefix: replicas may legitimately differ for good (see the file comment). */
static bool exempt_now(struct sim *s)
{
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        if (!nd->used || nd->alive || is_fork_writer(s, i))
            continue;
        for (uint64_t q = avail_of(s, i) + 1; q <= nd->log_max; q++)
            if (carries_ops(nd, q) && nd->log[q].delivered)
                return true;
    }
    return false;
}

/* Why the healed network is not quiet: the first lagging (node, writer) pair, into detail. */
static void explain_lag(struct sim *s, char *out, size_t cap)
{
    snprintf(out, cap, "digests differ");
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        if (!nd->alive)
            continue;
        uint64_t t = scl_flush_ticket(nd->e);
        if (!is_fork_writer(s, i) && !scl_flush_done(nd->e, t)) {
            snprintf(out, cap, "node %zu: flush of %" PRIu64 " ops never completes", i, t);
            return;
        }
        for (size_t j = 0; j < NODES_MAX; j++) {
            if (j == i || !s->n[j].used || is_fork_writer(s, j))
                continue;
            uint64_t need = s->n[j].alive ? last_data_seq(&s->n[j]) : avail_of(s, j);
            uint64_t have = scl_peer_contiguous(nd->e, s->n[j].id);
            if (have < need) {
                snprintf(out, cap, "node %zu holds node %zu's (%s) records up to %" PRIu64
                         ", servers hold %" PRIu64 " (heads %" PRIu64 "/%" PRIu64 "/%" PRIu64 ")",
                         i, j, s->n[j].alive ? "live" : "dead", have, need,
                         sw_of(&s->srv[0], s->n[j].id, false) ? sw_of(&s->srv[0], s->n[j].id, false)->contiguous : 0,
                         sw_of(&s->srv[1], s->n[j].id, false) ? sw_of(&s->srv[1], s->n[j].id, false)->contiguous : 0,
                         sw_of(&s->srv[2], s->n[j].id, false) ? sw_of(&s->srv[2], s->n[j].id, false)->contiguous : 0);
                return;
            }
        }
    }
}

static void settle(struct sim *s, uint64_t max_ms, bool (*done)(struct sim *))
{
    uint64_t until = s->now + max_ms;
    unsigned stable = 0;
    while (s->now < until && !s->failed) {
        for (unsigned k = 0; k < 25 && !s->failed; k++)
            step(s, false);
        stable = done(s) ? stable + 1 : 0;
        if (stable >= 3)
            return;
    }
    if (!s->failed) {
        char why[200];
        explain_lag(s, why, sizeof why);
        fail(s, "I2-liveness", "no quiescence after %" PRIu64 " ms of healed network: %s", max_ms,
             why);
    }
}

static bool all_flushed_and_equal(struct sim *s)
{
    uint8_t first[HASH_SIZE];
    bool have = false, same = true;
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        if (!nd->alive || is_fork_writer(s, i))
            continue; /* a forked writer's records stop becoming durable where the fork won */
        uint64_t t = scl_flush_ticket(nd->e);
        if (!scl_flush_done(nd->e, t))
            return false;
        if (nd->ticket)
            return false;
        nd->ticket = t ? t : 0;
        check_flush(s, i);
        if (is_fork_writer(s, i) || s->fork_run || is_checkpointed(s, i))
            continue;
        uint8_t d[HASH_SIZE];
        if (scl_digest(nd->e, d))
            return false;
        if (have && memcmp(d, first, HASH_SIZE) != 0)
            same = false;
        memcpy(first, d, HASH_SIZE);
        have = true;
    }
    /* Every live worker holds every live or durable writer's verified prefix. */
    for (size_t i = 0; i < NODES_MAX; i++) {
        if (!s->n[i].alive)
            continue;
        for (size_t j = 0; j < NODES_MAX; j++) {
            if (j == i || !s->n[j].used || is_fork_writer(s, j))
                continue;
            uint64_t need = s->n[j].alive ? last_data_seq(&s->n[j]) : avail_of(s, j);
            if (scl_peer_contiguous(s->n[i].e, s->n[j].id) < need)
                return false;
        }
    }
    return same || exempt_now(s);
}

static size_t g_reader;
static bool reader_caught_up(struct sim *s)
{
    struct node *rd = &s->n[g_reader];
    for (size_t j = 0; j < NODES_MAX; j++) {
        struct node *nd = &s->n[j];
        if (j == g_reader || !nd->used || is_fork_writer(s, j) || !nd->flushed_seq)
            continue;
        if (scl_peer_contiguous(rd->e, nd->id) < nd->flushed_seq)
            return false;
    }
    return true;
}

static void check_end(struct sim *s)
{
    /* I3 again: every flushed prefix is still on k servers. */
    for (size_t i = 0; i < NODES_MAX && !s->failed; i++) {
        struct node *nd = &s->n[i];
        if (nd->used && nd->flushed_seq &&
            holders(s, nd->id, nd->flushed_seq, nd->log[nd->flushed_seq].hash) < K_QUORUM)
            fail(s, "I3-durability", "node %zu: flushed seq %" PRIu64 " no longer on k servers", i,
                 nd->flushed_seq);
    }
    /* I4: the fork was seen. */
    if (s->fork_done && !s->failed) {
        bool seen = false;
        for (size_t i = 0; i < NODES_MAX; i++)
            if (s->n[i].used && s->n[i].alerts &&
                memcmp(s->n[i].alert_writer, s->fork_writer, HASH_SIZE) == 0)
                seen = true;
        for (unsigned si = 0; si < NSRV; si++) {
            struct swriter *w = sw_of(&s->srv[si], s->fork_writer, false);
            if (w && w->forked)
                seen = true;
        }
        if (!seen)
            fail(s, "I4-fork-detection", "the injected fork was reported by no worker or server");
    }
    /* I5: CapsuleDB. */
    for (size_t i = 0; s->lsm && i < NODES_MAX && !s->failed; i++) {
        struct node *nd = &s->n[i];
        if (!nd->alive)
            continue;
        struct scl_stats st;
        scl_get_stats(nd->e, &st);
        if (st.lsm_flush_skipped)
            fail(s, "I5-capsuledb", "node %zu skipped %" PRIu64 " cuts", i, st.lsm_flush_skipped);
        else if (st.lsm_indexes_refused)
            fail(s, "I5-capsuledb", "node %zu refused %" PRIu64 " indexes", i,
                 st.lsm_indexes_refused);
        else if (st.lsm_generation > s->lsm_gen_max)
            fail(s, "I5-capsuledb", "node %zu uses index generation %" PRIu64 ", no compactor "
                 "published past %" PRIu64, i, st.lsm_generation, s->lsm_gen_max);
        if (st.lsm_generation > s->r->lsm_generation)
            s->r->lsm_generation = st.lsm_generation;
    }
    /* Alerts only ever name the forked writer. */
    for (size_t i = 0; i < NODES_MAX && !s->failed; i++)
        if (s->n[i].used && s->n[i].alerts &&
            (!s->fork_done || memcmp(s->n[i].alert_writer, s->fork_writer, HASH_SIZE) != 0))
            fail(s, "I4-fork-detection", "node %zu alerted about a writer that never forked", i);
}

static void fingerprint(struct sim *s)
{
    uint8_t buf[NODES_MAX * (HASH_SIZE + 24) + 64];
    size_t n = 0;
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        uint8_t d[HASH_SIZE] = {0};
        if (nd->alive && scl_digest(nd->e, d))
            memset(d, 0xff, sizeof d);
        memcpy(buf + n, d, HASH_SIZE);
        n += HASH_SIZE;
        put_le64(buf + n, nd->log_max);
        put_le64(buf + n + 8, nd->issued);
        put_le64(buf + n + 16, nd->alerts);
        n += 24;
    }
    put_le64(buf + n, s->now);
    put_le64(buf + n + 8, s->r->messages);
    put_le64(buf + n + 16, s->r->dropped);
    put_le64(buf + n + 24, s->r->records);
    n += 32;
    hash_sha256(s->r->fingerprint, buf, n);
}

static void free_all(struct sim *s)
{
    for (size_t i = 0; i < NODES_MAX; i++) {
        struct node *nd = &s->n[i];
        if (nd->alive)
            scl_destroy(nd->e);
        for (size_t q = 0; q < nd->log_cap; q++)
            free(nd->log[q].data);
        free(nd->log);
        free(nd->op_key);
    }
    for (unsigned si = 0; si < NSRV; si++) {
        struct server *v = &s->srv[si];
        for (size_t k = 0; k < v->nw; k++) {
            for (size_t q = 0; q < v->w[k].cap; q++)
                free(v->w[k].rec[q].data);
            free(v->w[k].rec);
            secret_free(v->w[k].ack_key);
        }
        free(v->w);
        while (v->pending) {
            struct spend *p = v->pending;
            v->pending = p->next;
            free(p);
        }
        signer_deinit(&v->key);
    }
    while (s->hn)
        free(heap_pop(s).data);
    free(s->heap);
    writer_keys_deinit(&s->rogue);
    signer_deinit(&s->owner);
    signer_deinit(&s->stranger);
}

void sim_run(uint64_t seed, const struct sim_options *o, struct sim_result *r)
{
    static struct rng_seeded rng;
    memset(r, 0, sizeof *r);
    r->ok = true;
    if (psl_crypto_init() != PSL_OK) {
        r->ok = false;
        snprintf(r->invariant, sizeof r->invariant, "setup");
        return;
    }
    if (!o->verbose)
        log_set_level(PSL_LOG_OFF);
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->seed = seed;
    s->rnd = seed ^ 0x5157u;
    s->o = o;
    s->r = r;
    s->victim = SIZE_MAX;
    g_now_ms = s->now = 1000;
    clock_set_source(&g_clock);
    rng_seeded_init(&rng, seed * 0x9e3779b97f4a7c15ull + 1);
    rng_set_source(&rng.source);

    /* The capsule: owner, servers, metadata (k = 2 of 3), capsule key; all from the seed. */
    uint8_t sd[32];
    seed_bytes(s, sd);
    if (signer_init(&s->owner, sd))
        abort();
    seed_bytes(s, sd);
    if (signer_init(&s->stranger, sd))
        abort();
    for (unsigned si = 0; si < NSRV; si++) {
        seed_bytes(s, sd);
        if (signer_init(&s->srv[si].key, sd))
            abort();
    }
    seed_bytes(s, s->capsule_key);
    struct capsule_meta *m = &s->meta;
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = SIM_EPOCH_MS - 2 * HOUR_MS;
    m->label_size = 3;
    memcpy(m->label, "sim", 3);
    m->quorum_k = K_QUORUM;
    m->replica_count = NSRV;
    for (unsigned si = 0; si < NSRV; si++)
        memcpy(m->replicas[si], s->srv[si].key.pk, SIGN_PK_SIZE);
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = 0;
    if (meta_sign(m, &s->owner))
        abort();
    /* The rogue: a well-formed writer whose certificate the stranger signed. */
    uint8_t kx[32];
    seed_bytes(s, sd);
    seed_bytes(s, kx);
    if (writer_keys_init(&s->rogue, sd, kx, s->capsule_key))
        abort();
    s->rogue_cert.role = ROLE_WORKER;
    memcpy(s->rogue_cert.capsule, m->name, HASH_SIZE);
    memcpy(s->rogue_cert.sign_pk, s->rogue.sign.pk, SIGN_PK_SIZE);
    memcpy(s->rogue_cert.kx_pk, s->rogue.kx.pk, KX_PK_SIZE);
    s->rogue_cert.not_before_ms = SIM_EPOCH_MS - HOUR_MS;
    s->rogue_cert.not_after_ms = SIM_EPOCH_MS + HOUR_MS;
    cert_sign(&s->rogue_cert, &s->stranger);
    record_chain_init(&s->rogue_chain, m->name);

    /* The scenario. */
    s->faults_on = true;
    s->loss_pct = below(s, 4) == 0 ? 0 : below(s, 25);
    s->dup_pct = below(s, 15);
    s->delay_max = 1 + below(s, 120);
    s->adversary_on = below(s, 4) != 0;
    s->flip_pm = s->adversary_on ? below(s, 30) : 0;
    s->crashes = below(s, 2);
    s->worker_crashes_left = 1 + below(s, 3);
    s->server_crashes = below(s, 2);
    s->lossy_servers = below(s, 2);
    s->srv[NSRV - 1].liar = s->adversary_on && below(s, 3) == 0;
    s->fork_run = s->adversary_on && below(s, 3) == 0;
    uint64_t work_ms = 2000 + below(s, WORK_MS_MAX - 2000);
    unsigned workers = 2 + below(s, 2);
    unsigned ops = o->ops_per_worker ? o->ops_per_worker : 40 + below(s, 80);
    vlog(s, "seed %" PRIu64 ": loss %u%% dup %u%% delay<%u ms adversary %d flips %u/1000 liar %d "
         "fork %d worker crashes %d server crashes %d (lossy %d) work %" PRIu64 " ms, %u workers",
         seed, s->loss_pct, s->dup_pct, s->delay_max, s->adversary_on, s->flip_pm,
         s->srv[NSRV - 1].liar, s->fork_run, s->crashes, s->server_crashes, s->lossy_servers,
         work_ms, workers);
    plan_partitions(s, work_ms);
    (void)node_spawn(s, ROLE_COORDINATOR, false, false, ops / 4);
    for (unsigned w = 0; w < workers; w++)
        (void)node_spawn(s, ROLE_WORKER, false, false, ops);
    if (s->fork_run)
        s->victim = node_spawn(s, ROLE_WORKER, true, false, ops / 2);
    /* CapsuleDB: decided by the seed's number, not its stream, so other seeds replay as before;
     * a small policy so that runs merge levels. */
    s->lsm = o->lsm || seed % 4 == 0;
    r->lsm = s->lsm;
    if (s->lsm) {
        lsm_policy_default(&s->pol);
        s->pol.block_target_size = 256;
        s->pol.level0_runs_max = 2;
        s->pol.level1_size_max = 1024;
        s->pol.growth_factor = 3;
        s->pol.level_count_max = 4;
        (void)node_spawn(s, ROLE_COMPACTOR, false, false, 0);
    }

    /* Traffic under faults. */
    uint64_t end = s->now + work_ms;
    while (s->now < end && !s->failed)
        step(s, true);

    /* Heal: no faults, every server back, pending restarts join now, crashing nodes die. */
    s->faults_on = false;
    s->flip_pm = 0;
    s->adversary_on = s->srv[NSRV - 1].liar; /* a liar keeps lying (adv_step runs no more) */
    s->nwin = 0;
    for (size_t i = 0; i < NODES_MAX; i++) {
        if (s->n[i].alive && s->n[i].crashing) {
            node_kill(s, i, true);
        }
        s->n[i].ops_left = 0;
    }
    for (size_t k = 0; k < s->restarts; k++)
        if (s->restart_at[k]) {
            s->restart_at[k] = 0;
            (void)node_spawn(s, s->restart_role[k], false, false, 0);
        }
    for (unsigned si = 0; si < NSRV; si++)
        s->srv[si].up_at = s->now;
    vlog(s, "network healed, traffic stopped");
    if (!s->failed)
        settle(s, 90000, all_flushed_and_equal);
    if (!s->failed)
        check_convergence(s);
    if (!s->failed)
        check_end(s);

    /* A fresh reader that has lost k-1 servers still reads every flushed write. */
    if (!s->failed) {
        size_t rd = node_spawn(s, ROLE_WORKER, false, true, 0);
        if (rd != SIZE_MAX) {
            unsigned lost = below(s, NSRV);
            s->n[rd].blocked_srv = 1u << lost;
            vlog(s, "reader node %zu joins without server %u", rd, lost);
            g_reader = rd;
            uint64_t until = s->now + 30000;
            unsigned stable = 0;
            while (s->now < until && !s->failed && stable < 2) {
                for (unsigned k = 0; k < 25; k++)
                    step(s, false);
                stable = reader_caught_up(s) ? stable + 1 : 0;
            }
            if (!s->failed && stable < 2)
                fail(s, "I3-durability", "a reader without server %u cannot read every flushed "
                     "write within 30 s", lost);
        }
    }
    r->sim_ms = s->now;
    fingerprint(s);
    free_all(s);
    free(s);
    rng_set_source(NULL);
    clock_set_source(NULL);
}
