/* test_scl_engine.c: the Secure Concurrency Layer engine (src/scl/engine.c), driven through a
 * small deterministic network: N engines and three storage-server models (k = 2 of 3) that keep
 * records per writer, acknowledge their contiguous heads with signed ACKs and answer GET_RANGE,
 * GET_HEADS and GET_HASH with signed replies. The tests pin what users of the engine rely on:
 * the lambda-facing API, batching and backpressure, convergence under reordering, duplication and
 * loss, durability from k distinct valid ACKs, rejection of bad records, fork detection, epochs
 * and recovery. Convergence is checked twice: digests equal across engines, and every engine's
 * values equal a last-writer-wins model built independently from the decrypted records. Cases that
 * could hang or abort the process run in a child process with a time limit. The clock is fake
 * and every random choice derives from a fixed seed, so a failure replays exactly. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/cert.h"
#include "capsule/checkpoint.h"
#include "capsule/payload.h"
#include "capsule/proto.h"
#include "capsule/record.h"
#include "capsule_fixture.h"
#include "lsm/compact.h"
#include "lsm/index.h"
#include "scl/engine.h"
#include "scl/memtable.h"
#include "testutil.h"

/* ---- fake clock and seeded randomness ---- */

static uint64_t g_wall_ms = FX_NOW;
static struct rng_seeded g_rng;

static uint64_t fake_mono_ns(void *ctx)
{
    (void)ctx;
    return (g_wall_ms - FX_NOW) * 1000000u;
}

static uint64_t fake_wall_ms(void *ctx)
{
    (void)ctx;
    return g_wall_ms;
}

static const struct clock_source g_clock = {.mono_ns = fake_mono_ns, .wall_ms = fake_wall_ms};

/* Networks still alive: a failed assertion leaves its test early, teardown frees them. */
struct net;
#define LIVE_NETS_MAX 4
static struct net *g_live[LIVE_NETS_MAX];
static void net_free(struct net *n);

static int setup(void **state)
{
    if (fx_setup(state))
        return -1;
    g_wall_ms = FX_NOW;
    clock_set_source(&g_clock);
    rng_seeded_init(&g_rng, 0x5c1e0001);
    rng_set_source(&g_rng.source);
    return 0;
}

static int teardown(void **state)
{
    for (size_t k = 0; k < LIVE_NETS_MAX; k++)
        if (g_live[k])
            net_free(g_live[k]);
    clock_set_source(NULL);
    rng_set_source(NULL);
    return fx_teardown(state);
}

/* ---- the network harness ---- */

#define NET_ENGINES_MAX  16
#define NET_TICK_MS      50u
#define NET_QUIET_ROUNDS 24u /* 1.2 s of fake time: longer than every engine timer */
#define NONE             SIZE_MAX
#define SRV_WRITERS_MAX  32
#define SRV_SEQ_MAX      (1u << 16)
#define REPLY_PART_MAX   (64u << 10) /* servers split long answers (more = 1) past this body size */
#define ENGINE_SEED0     5u          /* writer seed numbers of engines (the fixture uses 0..4) */

struct srv_writer {
    uint8_t id[HASH_SIZE];
    uint8_t **rec; /* indexed by seq; owned */
    size_t *size;
    uint8_t (*hash)[HASH_SIZE];
    size_t cap;
    uint64_t contiguous;
    uint64_t max_seq;
    bool forked;
    bool dirty; /* received something since the last group commit: ACK again */
    uint64_t horizon; /* collection: records 1 < seq < horizon were dropped */
};

/* A storage server: checks nothing beyond record_parse (and the capsule), stores records per
 * writer by seq, ACKs contiguous heads once per round (group commit), answers requests. */
struct srv_model {
    const struct signer *key; /* borrowed from the fixture */
    struct srv_writer w[SRV_WRITERS_MAX];
    size_t nw;
    bool down; /* neither stores, nor acknowledges, nor answers */
    uint64_t requests;
    /* A lying server (CapsuleDB tests): answers GET_HASH for a block with tampered bytes or with
     * another block, or hides a writer's records after stale_max (heads and ranges). */
    uint8_t lie;
    uint8_t stale_writer[HASH_SIZE];
    uint64_t stale_max;
    /* Collection (retention COLLECT_COVERED), as psl-capsuled does it with the same rule
     * (checkpoint_may_collect): CHECKPOINT records of compactors newer than the last applied one
     * drop what they cover; the applied one is sent first to range requests below a horizon. */
    bool collect;
    uint64_t ck_gen;
    uint8_t *ck_rec; /* owned */
    size_t ck_size;
    uint64_t ck_applied, ck_stale, ck_refused, collected;
};

enum { LIE_NONE = 0, LIE_TAMPER = 1, LIE_SUBSTITUTE = 2, LIE_STALE = 3 };

enum msg_kind { M_REC = 1, M_ACK = 2, M_REQ = 3, M_REP = 4 };

struct msg {
    uint8_t kind;
    size_t src; /* engine (M_REC, M_REQ) or server (M_ACK, M_REP) */
    size_t dst; /* engine, or server when to_server */
    bool to_server;
    uint8_t type;  /* M_REC: record type; M_REQ, M_REP: request type */
    uint64_t seq;  /* M_REC: record seq; M_ACK: acknowledged seq */
    uint8_t *data; /* owned */
    size_t size;
};

/* One record an engine published (re-sends included), in publication order. */
struct pub {
    size_t engine;
    uint8_t *data; /* owned */
    size_t size;
    uint8_t type;
    uint64_t seq;
    uint64_t lamport;
    uint8_t hash[HASH_SIZE];
    uint8_t sync[HASH_SIZE];
};

struct net;
/* A delivery filter: false drops the message. */
typedef bool (*net_keep_fn)(struct net *n, const struct msg *m);

struct net {
    struct fx *f;
    size_t ne;
    struct scl_engine *e[NET_ENGINES_MAX];
    struct writer_keys wk[NET_ENGINES_MAX];    /* handed to the engine (taken) */
    struct writer_keys clone[NET_ENGINES_MAX]; /* the same seeds: the test's copy */
    struct writer_cert cert[NET_ENGINES_MAX];
    bool has_clone[NET_ENGINES_MAX];
    struct srv_model s[FX_SERVERS];
    struct msg *q;
    size_t qn, qcap;
    struct pub *log;
    size_t logn, logcap;
    uint64_t now_ms;
    uint64_t rnd;
    unsigned loss_pct; /* records to engines */
    unsigned dup_pct;  /* any message */
    bool shuffle;
    net_keep_fn keep;
    size_t keep_engine; /* parameters for filters */
    bool keep_flag;
    uint64_t requests[NET_ENGINES_MAX][REQ_GET_META + 1];
    uint64_t req_first[NET_ENGINES_MAX][REQ_GET_META + 1]; /* order of the first request */
    uint64_t req_counter;
    uint64_t alerts[NET_ENGINES_MAX];
    uint8_t alert_writer[NET_ENGINES_MAX][HASH_SIZE];
    uint8_t alert_data[NET_ENGINES_MAX][4 * HASH_SIZE];
    size_t alert_size[NET_ENGINES_MAX];
    uint64_t replies_more; /* partial replies sent (more = 1) */
};

static uint64_t net_rnd(struct net *n) /* splitmix64 */
{
    uint64_t z = (n->rnd += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t net_below(struct net *n, size_t k)
{
    return (size_t)(net_rnd(n) % k);
}

static struct net *net_new(struct fx *f, uint64_t seed)
{
    struct net *n = calloc(1, sizeof *n);
    assert_non_null(n);
    n->f = f;
    n->rnd = seed;
    n->now_ms = 1000;
    g_wall_ms = FX_NOW + n->now_ms;
    for (size_t i = 0; i < FX_SERVERS; i++)
        n->s[i].key = &f->servers[i];
    size_t k = 0;
    while (k < LIVE_NETS_MAX && g_live[k])
        k++;
    assert_true(k < LIVE_NETS_MAX);
    g_live[k] = n;
    return n;
}

static struct scl_config cfg_default(const struct fx *f)
{
    return (struct scl_config){
        .meta = &f->meta,
        .capsule_key = f->capsule_key,
        .batch_ops_max = 1000,
        .batch_bytes_max = 256u << 10,
        .queue_ops_max = 100000,
        .queue_bytes_max = 64u << 20,
        .unacked_bytes_max = 64u << 20,
        .resend_ms = 500,
        .fetch_retry_ms = 300,
        .epoch_ms = 0,
        .pending_records_max = 1024,
    };
}

/* Adds an engine whose writer keys come from fixture seed seed_no, certified by the owner. */
static size_t net_add_engine(struct net *n, unsigned seed_no, uint8_t role,
                             const struct scl_config *tmpl)
{
    size_t i = n->ne;
    assert_true(i < NET_ENGINES_MAX);
    fx_writer_keys(&n->wk[i], seed_no, n->f->capsule_key);
    fx_writer_keys(&n->clone[i], seed_no, n->f->capsule_key);
    n->has_clone[i] = true;
    fx_cert_make(n->f, &n->cert[i], &n->clone[i], role, &n->f->owner);
    struct scl_config cfg = *tmpl;
    cfg.cert = &n->cert[i];
    psl_err err = scl_create(&n->e[i], &cfg, &n->wk[i]);
    if (err)
        fail_msg("scl_create: %s", psl_err_name(err));
    assert_memory_equal(scl_writer_id(n->e[i]), n->cert[i].writer_id, HASH_SIZE);
    n->ne++;
    scl_tick(n->e[i], n->now_ms);
    return i;
}

static void srv_free(struct srv_model *s)
{
    for (size_t w = 0; w < s->nw; w++) {
        for (size_t q = 0; q < s->w[w].cap; q++)
            free(s->w[w].rec[q]);
        free(s->w[w].rec);
        free(s->w[w].size);
        free(s->w[w].hash);
    }
    s->nw = 0;
    free(s->ck_rec);
    s->ck_rec = NULL;
}

static void net_free(struct net *n)
{
    for (size_t k = 0; k < LIVE_NETS_MAX; k++)
        if (g_live[k] == n)
            g_live[k] = NULL;
    for (size_t i = 0; i < n->ne; i++) {
        if (n->e[i])
            scl_destroy(n->e[i]);
        if (n->has_clone[i])
            writer_keys_deinit(&n->clone[i]);
    }
    for (size_t i = 0; i < FX_SERVERS; i++)
        srv_free(&n->s[i]);
    for (size_t i = 0; i < n->qn; i++)
        free(n->q[i].data);
    free(n->q);
    for (size_t i = 0; i < n->logn; i++)
        free(n->log[i].data);
    free(n->log);
    free(n);
}

static void net_push(struct net *n, uint8_t kind, size_t src, size_t dst, bool to_server,
                     const uint8_t *data, size_t size, uint8_t type, uint64_t seq)
{
    if (n->qn == n->qcap) {
        n->qcap = n->qcap ? 2 * n->qcap : 256;
        n->q = realloc(n->q, n->qcap * sizeof *n->q);
        assert_non_null(n->q);
    }
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, data, size);
    n->q[n->qn++] = (struct msg){.kind = kind,
                                 .src = src,
                                 .dst = dst,
                                 .to_server = to_server,
                                 .type = type,
                                 .seq = seq,
                                 .data = copy,
                                 .size = size};
}

static size_t net_engine_of(const struct net *n, const uint8_t writer[HASH_SIZE])
{
    for (size_t i = 0; i < n->ne; i++)
        if (n->e[i] && memcmp(n->cert[i].writer_id, writer, HASH_SIZE) == 0)
            return i;
    return NONE;
}

static const struct pub *log_find(const struct net *n, size_t engine, uint64_t seq)
{
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine == engine && n->log[k].seq == seq)
            return &n->log[k];
    return NULL;
}

static uint64_t log_last_seq(const struct net *n, size_t engine)
{
    uint64_t seq = 0;
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine == engine && n->log[k].seq > seq)
            seq = n->log[k].seq;
    return seq;
}

/* Distinct records (by seq) of a type published by an engine. */
static size_t log_count(const struct net *n, size_t engine, uint8_t type)
{
    size_t count = 0;
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine == engine && n->log[k].type == type &&
            log_find(n, engine, n->log[k].seq) == &n->log[k])
            count++;
    return count;
}

/* A PUBLISH action: takes data. Checks the engine's own invariants (a valid record of its writer,
 * never two different records for one seq), logs it and sends it to every other engine and to
 * every server. */
static void net_on_publish(struct net *n, size_t i, uint8_t *data, size_t size)
{
    struct record_view v;
    psl_err err = record_parse(&v, data, size);
    if (err)
        fail_msg("engine %zu published an unparsable record: %s", i, psl_err_name(err));
    assert_memory_equal(v.h.writer, n->cert[i].writer_id, HASH_SIZE);
    assert_memory_equal(v.h.capsule, n->f->meta.name, HASH_SIZE);
    const struct pub *old = log_find(n, i, v.h.seq);
    if (old && (old->size != size || memcmp(old->data, data, size) != 0))
        fail_msg("engine %zu published two different records for seq %" PRIu64, i, v.h.seq);
    if (n->logn == n->logcap) {
        n->logcap = n->logcap ? 2 * n->logcap : 256;
        n->log = realloc(n->log, n->logcap * sizeof *n->log);
        assert_non_null(n->log);
    }
    struct pub *p = &n->log[n->logn++];
    *p = (struct pub){.engine = i,
                      .data = data,
                      .size = size,
                      .type = v.h.type,
                      .seq = v.h.seq,
                      .lamport = v.h.lamport};
    memcpy(p->hash, v.hash, HASH_SIZE);
    memcpy(p->sync, v.h.sync, HASH_SIZE);
    for (size_t j = 0; j < n->ne; j++)
        if (j != i && n->e[j])
            net_push(n, M_REC, i, j, false, data, size, v.h.type, v.h.seq);
    for (size_t s = 0; s < FX_SERVERS; s++)
        net_push(n, M_REC, i, s, true, data, size, v.h.type, v.h.seq);
}

static void net_on_request(struct net *n, size_t i, const uint8_t *data, size_t size)
{
    struct proto_req q;
    psl_err err = proto_req_decode(&q, data, size);
    if (err)
        fail_msg("engine %zu emitted an undecodable request: %s", i, psl_err_name(err));
    assert_memory_equal(q.requester, scl_requester_id(n->e[i]), HASH_SIZE);
    assert_memory_equal(q.capsule, n->f->meta.name, HASH_SIZE);
    n->requests[i][q.type]++;
    if (!n->req_first[i][q.type])
        n->req_first[i][q.type] = ++n->req_counter;
    for (size_t s = 0; s < FX_SERVERS; s++)
        net_push(n, M_REQ, i, s, true, data, size, q.type, 0);
}

static size_t net_poll(struct net *n, size_t i)
{
    size_t count = 0;
    struct scl_action a;
    while (scl_poll(n->e[i], &a)) {
        count++;
        switch (a.kind) {
        case SCL_ACT_PUBLISH:
            net_on_publish(n, i, a.data, a.size);
            a.data = NULL; /* the log owns it now */
            break;
        case SCL_ACT_REQUEST:
            net_on_request(n, i, a.data, a.size);
            break;
        case SCL_ACT_ALERT:
            if (!n->alerts[i]) {
                memcpy(n->alert_writer[i], a.writer, HASH_SIZE);
                n->alert_size[i] = a.size;
                if (a.size <= sizeof n->alert_data[i] && a.data)
                    memcpy(n->alert_data[i], a.data, a.size);
            }
            n->alerts[i]++;
            break;
        default:
            fail_msg("engine %zu: unknown action kind %u", i, a.kind);
        }
        free(a.data);
    }
    return count;
}

/* Runs each engine's crypto actor until idle (or paused), then drains its actions. */
static size_t net_actors(struct net *n)
{
    size_t count = 0;
    for (size_t i = 0; i < n->ne; i++) {
        if (!n->e[i])
            continue;
        for (unsigned guard = 0;; guard++) {
            assert_true(guard < 1000000);
            psl_err err = scl_actor_step(n->e[i]);
            if (err == PSL_ERR_NOT_FOUND || err == PSL_ERR_BUSY)
                break;
            if (err)
                fail_msg("engine %zu: scl_actor_step: %s", i, psl_err_name(err));
        }
        count += net_poll(n, i);
    }
    return count;
}

/* ---- storage-server models ---- */

static struct srv_writer *srv_writer_of(struct srv_model *s, const uint8_t id[HASH_SIZE],
                                        bool create)
{
    for (size_t w = 0; w < s->nw; w++)
        if (memcmp(s->w[w].id, id, HASH_SIZE) == 0)
            return &s->w[w];
    if (!create || s->nw == SRV_WRITERS_MAX)
        return NULL;
    struct srv_writer *w = &s->w[s->nw++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, id, HASH_SIZE);
    return w;
}

static void srv_writer_grow(struct srv_writer *w, uint64_t seq)
{
    if (seq < w->cap)
        return;
    size_t cap = w->cap ? w->cap : 64;
    while (cap <= seq)
        cap *= 2;
    w->rec = realloc(w->rec, cap * sizeof *w->rec);
    w->size = realloc(w->size, cap * sizeof *w->size);
    w->hash = realloc(w->hash, cap * sizeof *w->hash);
    assert_true(w->rec && w->size && w->hash);
    for (size_t k = w->cap; k < cap; k++) {
        w->rec[k] = NULL;
        w->size[k] = 0;
    }
    w->cap = cap;
}

/* The role in a writer's CERT record as stored (the model verifies nothing: see above). */
static uint8_t srv_role(struct srv_writer *w)
{
    struct record_view v;
    struct writer_cert c;
    struct delegation d;
    bool has_deleg;
    if (w->cap < 2 || !w->rec[1] || record_parse(&v, w->rec[1], w->size[1]) != PSL_OK ||
        certpl_decode(v.payload, v.h.payload_size, &c, &d, &has_deleg) != PSL_OK)
        return 0;
    return c.role;
}

/* Applies a compactor's checkpoint: the rule of psl-capsuled's store_collect. */
static void srv_checkpoint(struct srv_model *s, const struct record_view *v)
{
    struct checkpoint cp;
    if (checkpoint_decode(&cp, v->payload, v->h.payload_size) != PSL_OK) {
        s->ck_refused++;
        return;
    }
    if (cp.generation <= s->ck_gen) {
        s->ck_stale++;
        return;
    }
    s->ck_gen = cp.generation;
    s->ck_applied++;
    /* The checkpoint applied before this one: its live blocks stay one notice longer. */
    uint8_t *prev_rec = s->ck_rec;
    struct checkpoint prev_cp, *prev = NULL;
    struct record_view pv;
    if (prev_rec && record_parse(&pv, prev_rec, s->ck_size) == PSL_OK &&
        checkpoint_decode(&prev_cp, pv.payload, pv.h.payload_size) == PSL_OK)
        prev = &prev_cp;
    s->ck_rec = malloc(v->raw_size);
    assert_non_null(s->ck_rec);
    memcpy(s->ck_rec, v->raw, v->raw_size);
    s->ck_size = v->raw_size;
    for (size_t i = 0; i < cp.head_count; i++) {
        struct checkpoint_head h;
        checkpoint_head_at(&cp, i, &h);
        if (h.seq >= SRV_SEQ_MAX)
            continue;
        struct srv_writer *w = srv_writer_of(s, h.writer, true);
        if (!w || w->forked)
            continue;
        srv_writer_grow(w, h.seq);
        if (w->rec[h.seq] && memcmp(w->hash[h.seq], h.hash, HASH_SIZE) != 0)
            continue;
        for (uint64_t q = 2; q < h.seq; q++) {
            struct record_header rh;
            if (!w->rec[q] || record_header_decode(&rh, w->rec[q], w->size[q]) != PSL_OK ||
                !checkpoint_may_collect(&cp, prev, &rh, w->hash[q]))
                continue;
            free(w->rec[q]);
            w->rec[q] = NULL;
            s->collected++;
        }
        if (h.seq > w->horizon)
            w->horizon = h.seq;
        if (w->contiguous < h.seq) { /* behind: the cut is the base */
            w->contiguous = h.seq;
            memcpy(w->hash[h.seq], h.hash, HASH_SIZE);
            if (w->max_seq < h.seq)
                w->max_seq = h.seq;
            while (w->contiguous + 1 < w->cap && w->rec[w->contiguous + 1] &&
                   memcmp(w->rec[w->contiguous + 1] + RECORD_OFFSET_PREV, w->hash[w->contiguous],
                          HASH_SIZE) == 0)
                w->contiguous++;
        }
    }
    free(prev_rec);
}

static void srv_on_record(struct net *n, struct srv_model *s, const uint8_t *data, size_t size)
{
    if (s->down)
        return;
    struct record_view v;
    if (record_parse(&v, data, size) != PSL_OK)
        return;
    if (memcmp(v.h.capsule, n->f->meta.name, HASH_SIZE) != 0 || v.h.seq >= SRV_SEQ_MAX)
        return;
    struct srv_writer *w = srv_writer_of(s, v.h.writer, true);
    if (!w)
        return;
    if (s->collect && v.h.seq > 1 && v.h.seq < w->horizon) {
        w->dirty = true; /* covered: acknowledged, not stored again */
        return;
    }
    if (s->collect && v.h.type == REC_CHECKPOINT) {
        if (srv_role(w) != ROLE_COMPACTOR) {
            s->ck_refused++; /* not stored, changes nothing */
            return;
        }
        srv_checkpoint(s, &v);
    }
    srv_writer_grow(w, v.h.seq);
    size_t seq = (size_t)v.h.seq;
    w->dirty = true; /* a re-sent record is acknowledged again */
    if (w->rec[seq]) {
        if (memcmp(w->hash[seq], v.hash, HASH_SIZE) != 0)
            w->forked = true;
        return;
    }
    w->rec[seq] = malloc(size);
    assert_non_null(w->rec[seq]);
    memcpy(w->rec[seq], data, size);
    w->size[seq] = size;
    memcpy(w->hash[seq], v.hash, HASH_SIZE);
    if (v.h.seq > w->max_seq)
        w->max_seq = v.h.seq;
    while (w->contiguous + 1 < w->cap && w->rec[w->contiguous + 1] &&
           (w->contiguous == 0 || memcmp(w->rec[w->contiguous + 1] + RECORD_OFFSET_PREV,
                                         w->hash[w->contiguous], HASH_SIZE) == 0))
        w->contiguous++;
}

/* Group commit: one ACK of the contiguous head per writer that sent something this round. */
static size_t net_commit(struct net *n)
{
    size_t count = 0;
    for (size_t si = 0; si < FX_SERVERS; si++) {
        struct srv_model *s = &n->s[si];
        for (size_t k = 0; k < s->nw; k++) {
            struct srv_writer *w = &s->w[k];
            if (!w->dirty)
                continue;
            w->dirty = false;
            size_t dst = net_engine_of(n, w->id);
            if (s->down || !w->contiguous || dst == NONE)
                continue;
            struct ack a;
            memset(&a, 0, sizeof a);
            memcpy(a.capsule, n->f->meta.name, HASH_SIZE);
            memcpy(a.writer, w->id, HASH_SIZE);
            a.seq = w->contiguous;
            memcpy(a.record_hash, w->hash[w->contiguous], HASH_SIZE);
            assert_int_equal(ack_sign_for(&a, s->key, n->cert[dst].kx_pk), PSL_OK);
            uint8_t buf[ACK_SIZE];
            ack_encode(&a, buf);
            net_push(n, M_ACK, si, dst, false, buf, ACK_SIZE, 0, a.seq);
            count++;
        }
    }
    return count;
}

struct reply_buf {
    uint8_t *buf;
    size_t cap;
    size_t body;
    uint32_t count;
};

static void rb_reserve(struct reply_buf *b, size_t more)
{
    size_t need = PROTO_REPLY_HEADER_SIZE + b->body + more + SIGN_SIG_SIZE;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    b->buf = realloc(b->buf, cap);
    assert_non_null(b->buf);
    b->cap = cap;
}

static void srv_reply_send(struct net *n, size_t si, size_t dst, const struct proto_req *q,
                           struct reply_buf *b, uint8_t status, bool more)
{
    struct proto_reply r = {
        .type = q->type, .request_id = q->request_id, .status = status, .more = more ? 1 : 0};
    memcpy(r.capsule, n->f->meta.name, HASH_SIZE);
    if (q->type != REQ_GET_META)
        put_le32(b->buf + PROTO_REPLY_HEADER_SIZE, b->count);
    size_t size = proto_reply_seal(&r, n->s[si].key, b->buf, b->body);
    net_push(n, M_REP, si, dst, false, b->buf, size, q->type, 0);
    if (more)
        n->replies_more++;
    b->body = 4;
    b->count = 0;
}

static void rb_add_record(struct net *n, size_t si, size_t dst, const struct proto_req *q,
                          struct reply_buf *b, const uint8_t *rec, size_t size)
{
    if (b->count && b->body + 4 + size > REPLY_PART_MAX)
        srv_reply_send(n, si, dst, q, b, REP_OK, true);
    rb_reserve(b, 4 + size);
    put_le32(b->buf + PROTO_REPLY_HEADER_SIZE + b->body, (uint32_t)size);
    memcpy(b->buf + PROTO_REPLY_HEADER_SIZE + b->body + 4, rec, size);
    b->body += 4 + size;
    b->count++;
}

static void srv_on_request(struct net *n, size_t si, size_t from, const uint8_t *data, size_t size)
{
    struct srv_model *s = &n->s[si];
    if (s->down)
        return;
    struct proto_req q;
    if (proto_req_decode(&q, data, size) != PSL_OK ||
        memcmp(q.capsule, n->f->meta.name, HASH_SIZE) != 0)
        return;
    s->requests++;
    struct reply_buf b = {.buf = NULL};
    rb_reserve(&b, 4);
    b.body = 4;
    uint8_t status = REP_OK;
    switch (q.type) {
    case REQ_GET_HASH: {
        bool found = false;
        for (size_t k = 0; k < s->nw && !found; k++)
            for (size_t seq = 1; seq < s->w[k].cap && !found; seq++)
                if (s->w[k].rec[seq] && memcmp(s->w[k].hash[seq], q.hash, HASH_SIZE) == 0) {
                    const uint8_t *rec = s->w[k].rec[seq];
                    size_t rsize = s->w[k].size[seq];
                    uint8_t *bad = NULL;
                    if (s->lie == LIE_TAMPER && rec[5] == REC_LSM_BLOCK) {
                        bad = malloc(rsize);
                        assert_non_null(bad);
                        memcpy(bad, rec, rsize);
                        bad[PSL_RECORD_HEADER_SIZE + 3] ^= 0x40; /* inside the ciphertext */
                        rec = bad;
                    } else if (s->lie == LIE_SUBSTITUTE && rec[5] == REC_LSM_BLOCK) {
                        for (size_t o = 1; o < s->w[k].cap; o++) /* another block of its chain */
                            if (o != seq && s->w[k].rec[o] && s->w[k].rec[o][5] == REC_LSM_BLOCK) {
                                rec = s->w[k].rec[o];
                                rsize = s->w[k].size[o];
                                break;
                            }
                    }
                    rb_add_record(n, si, from, &q, &b, rec, rsize);
                    free(bad);
                    found = true;
                }
        if (!found)
            status = REP_NOT_FOUND;
        break;
    }
    case REQ_GET_RANGE: {
        struct srv_writer *w = srv_writer_of(s, q.writer, false);
        bool hide = s->lie == LIE_STALE && w && memcmp(w->id, s->stale_writer, HASH_SIZE) == 0;
        uint64_t lo = q.from < 2 ? 2 : q.from;
        if (w && s->ck_rec && lo <= q.to && lo < w->horizon)
            rb_add_record(n, si, from, &q, &b, s->ck_rec, s->ck_size);
        for (uint64_t seq = q.from; w && seq <= q.to && seq < w->cap; seq++)
            if (w->rec[seq] && !(hide && seq > s->stale_max))
                rb_add_record(n, si, from, &q, &b, w->rec[seq], w->size[seq]);
        break;
    }
    case REQ_GET_HEADS:
        for (size_t k = 0; k < s->nw; k++) {
            struct srv_writer *w = &s->w[k];
            struct proto_head h = {
                .contiguous = w->contiguous, .max_seq = w->max_seq, .forked = w->forked};
            if (s->lie == LIE_STALE && memcmp(w->id, s->stale_writer, HASH_SIZE) == 0 &&
                h.contiguous > s->stale_max)
                h.contiguous = h.max_seq = s->stale_max;
            memcpy(h.writer, w->id, HASH_SIZE);
            if (h.contiguous)
                memcpy(h.hash, w->hash[h.contiguous], HASH_SIZE);
            else
                memset(h.hash, 0, HASH_SIZE);
            rb_reserve(&b, PROTO_HEAD_ENTRY_SIZE);
            proto_head_put(b.buf + PROTO_REPLY_HEADER_SIZE + b.body, &h);
            b.body += PROTO_HEAD_ENTRY_SIZE;
            b.count++;
        }
        break;
    case REQ_GET_META:
        b.body = 0;
        rb_reserve(&b, n->f->meta_size);
        memcpy(b.buf + PROTO_REPLY_HEADER_SIZE, n->f->meta_enc, n->f->meta_size);
        b.body = n->f->meta_size;
        break;
    default:
        status = REP_REFUSED;
        break;
    }
    srv_reply_send(n, si, from, &q, &b, status, false);
    free(b.buf);
}

/* ---- delivery and rounds ---- */

static void net_deliver_one(struct net *n, const struct msg *m)
{
    switch (m->kind) {
    case M_REC:
        if (m->to_server)
            srv_on_record(n, &n->s[m->dst], m->data, m->size);
        else if (n->e[m->dst])
            (void)scl_on_record(n->e[m->dst], m->data, m->size);
        break;
    case M_ACK:
        if (n->e[m->dst])
            (void)scl_on_ack(n->e[m->dst], m->data, m->size);
        break;
    case M_REQ:
        srv_on_request(n, m->dst, m->src, m->data, m->size);
        break;
    case M_REP:
        if (n->e[m->dst])
            (void)scl_on_reply(n->e[m->dst], m->data, m->size);
        break;
    default:
        fail_msg("bad message kind %u", m->kind);
    }
}

/* Delivers what was in flight at the start of the call; what deliveries produce (replies)
 * travels in the next round. */
static size_t net_deliver(struct net *n)
{
    struct msg *batch = n->q;
    size_t count = n->qn;
    n->q = NULL;
    n->qn = n->qcap = 0;
    if (n->shuffle)
        for (size_t k = count; k > 1; k--) {
            size_t j = net_below(n, k);
            struct msg t = batch[k - 1];
            batch[k - 1] = batch[j];
            batch[j] = t;
        }
    for (size_t k = 0; k < count; k++) {
        struct msg *m = &batch[k];
        bool keep = !n->keep || n->keep(n, m);
        if (keep && m->kind == M_REC && !m->to_server && n->loss_pct &&
            net_below(n, 100) < n->loss_pct)
            keep = false;
        if (keep) {
            if (n->dup_pct && net_below(n, 100) < n->dup_pct)
                net_push(n, m->kind, m->src, m->dst, m->to_server, m->data, m->size, m->type,
                         m->seq);
            net_deliver_one(n, m);
        }
        free(m->data);
    }
    free(batch);
    return count;
}

static void net_tick(struct net *n)
{
    n->now_ms += NET_TICK_MS;
    g_wall_ms = FX_NOW + n->now_ms;
    for (size_t i = 0; i < n->ne; i++)
        if (n->e[i])
            scl_tick(n->e[i], n->now_ms);
}

/* One step: actors and actions, deliveries, servers' group commit, then time advances. Returns
 * how much happened (0: nothing at all). */
static size_t net_round(struct net *n)
{
    size_t activity = net_actors(n);
    activity += net_deliver(n);
    activity += net_commit(n);
    net_tick(n);
    return activity;
}

static void net_rounds(struct net *n, unsigned rounds)
{
    for (unsigned r = 0; r < rounds; r++)
        (void)net_round(n);
}

/* Runs until nothing happened for NET_QUIET_ROUNDS rounds in a row; false if max_rounds pass
 * first. */
static bool net_settle(struct net *n, unsigned max_rounds)
{
    unsigned quiet = 0;
    for (unsigned r = 0; r < max_rounds; r++) {
        if (net_round(n) == 0) {
            if (++quiet >= NET_QUIET_ROUNDS)
                return true;
        } else {
            quiet = 0;
        }
    }
    return false;
}

/* ---- key-value helpers ---- */

static psl_err put_s(struct scl_engine *e, const char *key, const char *value)
{
    return scl_put(e, (const uint8_t *)key, strlen(key), (const uint8_t *)value, strlen(value));
}

static psl_err del_s(struct scl_engine *e, const char *key)
{
    return scl_del(e, (const uint8_t *)key, strlen(key));
}

static void put_ok(struct scl_engine *e, const char *key, const char *value)
{
    psl_err err = put_s(e, key, value);
    if (err)
        fail_msg("put %s: %s", key, psl_err_name(err));
}

static void del_ok(struct scl_engine *e, const char *key)
{
    psl_err err = del_s(e, key);
    if (err)
        fail_msg("del %s: %s", key, psl_err_name(err));
}

/* Asserts the value of key (NULL: absent). */
static void expect_kv(struct scl_engine *e, const char *key, const char *want)
{
    uint8_t out[512];
    size_t size = 0;
    psl_err err = scl_get(e, (const uint8_t *)key, strlen(key), out, sizeof out, &size);
    if (!want) {
        if (err != PSL_ERR_NOT_FOUND)
            fail_msg("get %s: want NOT_FOUND, got %s", key, psl_err_name(err));
        return;
    }
    if (err)
        fail_msg("get %s: want \"%s\", got %s", key, want, psl_err_name(err));
    assert_int_equal(size, strlen(want));
    assert_memory_equal(out, want, size);
}

static void digest_of(struct scl_engine *e, uint8_t out[HASH_SIZE])
{
    assert_int_equal(scl_digest(e, out), PSL_OK);
}

static struct scl_stats stats_of(struct scl_engine *e)
{
    struct scl_stats st;
    memset(&st, 0, sizeof st);
    scl_get_stats(e, &st);
    return st;
}

static void expect_same_digest(struct net *n, size_t a, size_t b)
{
    uint8_t da[HASH_SIZE], db[HASH_SIZE];
    digest_of(n->e[a], da);
    digest_of(n->e[b], db);
    if (memcmp(da, db, HASH_SIZE) != 0)
        fail_msg("engines %zu and %zu diverged", a, b);
}

/* Random puts and deletes over keys k00..k<keyspace-1>. */
static void random_ops(struct net *n, size_t i, unsigned count, unsigned keyspace, unsigned tag)
{
    for (unsigned c = 0; c < count; c++) {
        char key[16], val[48];
        snprintf(key, sizeof key, "k%02zu", net_below(n, keyspace));
        if (net_below(n, 100) < 30) {
            del_ok(n->e[i], key);
        } else {
            snprintf(val, sizeof val, "v-%u-%zu-%u", tag, i, c);
            put_ok(n->e[i], key, val);
        }
    }
}

/* ---- reading published records back (the test holds a copy of every writer key) ---- */

/* Decrypts a DATA record of the log; returns its ops (malloc'd, views into *plain, also
 * malloc'd). */
static struct kv_op *pub_ops(const struct net *n, const struct pub *p, size_t *count,
                             uint8_t **plain, size_t *plain_size)
{
    struct record_view v;
    assert_int_equal(record_parse(&v, p->data, p->size), PSL_OK);
    assert_int_equal(v.h.type, REC_DATA);
    uint8_t *buf = malloc(v.h.payload_size);
    assert_non_null(buf);
    size_t size = 0;
    psl_err err = record_open(&v, &n->clone[p->engine].aead, buf, v.h.payload_size, &size);
    if (err)
        fail_msg("DATA seq %" PRIu64 " of engine %zu does not open: %s", p->seq, p->engine,
                 psl_err_name(err));
    size_t c = 0;
    assert_int_equal(data_count(buf, size, &c), PSL_OK);
    struct kv_op *ops = calloc(c ? c : 1, sizeof *ops);
    assert_non_null(ops);
    size_t got = 0;
    assert_int_equal(data_decode(buf, size, ops, c, &got), PSL_OK);
    assert_int_equal(got, c);
    *count = c;
    *plain = buf;
    if (plain_size)
        *plain_size = size;
    return ops;
}

/* A last-writer-wins model of the state, built from the decrypted records. */
#define MODEL_KEYS_MAX 512
#define MODEL_KEY_MAX  64
#define MODEL_VAL_MAX  160
struct model_ent {
    char key[MODEL_KEY_MAX + 1];
    uint64_t lamport;
    uint8_t writer[HASH_SIZE];
    bool del;
    char val[MODEL_VAL_MAX + 1];
};
struct model {
    struct model_ent e[MODEL_KEYS_MAX];
    size_t n;
};

static void model_apply(struct model *m, const struct kv_op *op, const uint8_t writer[HASH_SIZE])
{
    assert_true(op->key_size <= MODEL_KEY_MAX && op->value_size <= MODEL_VAL_MAX);
    struct model_ent *e = NULL;
    for (size_t k = 0; k < m->n && !e; k++)
        if (strlen(m->e[k].key) == op->key_size && memcmp(m->e[k].key, op->key, op->key_size) == 0)
            e = &m->e[k];
    if (e) {
        int c = memcmp(writer, e->writer, HASH_SIZE);
        if (op->lamport < e->lamport || (op->lamport == e->lamport && c <= 0))
            return;
    } else {
        assert_true(m->n < MODEL_KEYS_MAX);
        e = &m->e[m->n++];
        memcpy(e->key, op->key, op->key_size);
        e->key[op->key_size] = '\0';
    }
    e->lamport = op->lamport;
    memcpy(e->writer, writer, HASH_SIZE);
    e->del = op->op == OP_DEL;
    if (op->value_size)
        memcpy(e->val, op->value, op->value_size);
    e->val[op->value_size] = '\0';
}

static struct model *model_from_log(const struct net *n)
{
    struct model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    for (size_t k = 0; k < n->logn; k++) {
        const struct pub *p = &n->log[k];
        if (p->type != REC_DATA || log_find(n, p->engine, p->seq) != p)
            continue;
        size_t count = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, p, &count, &plain, NULL);
        for (size_t o = 0; o < count; o++)
            model_apply(m, &ops[o], n->cert[p->engine].writer_id);
        free(ops);
        free(plain);
    }
    return m;
}

static void expect_model(struct scl_engine *e, const struct model *m)
{
    for (size_t k = 0; k < m->n; k++)
        expect_kv(e, m->e[k].key, m->e[k].del ? NULL : m->e[k].val);
}

/* Lamport stamp of the first operation on key in engine i's records (0: none). */
static uint64_t op_lamport(const struct net *n, size_t i, const char *key)
{
    for (size_t k = 0; k < n->logn; k++) {
        const struct pub *p = &n->log[k];
        if (p->engine != i || p->type != REC_DATA)
            continue;
        size_t count = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, p, &count, &plain, NULL);
        uint64_t found = 0;
        for (size_t o = 0; o < count && !found; o++)
            if (ops[o].key_size == strlen(key) && memcmp(ops[o].key, key, ops[o].key_size) == 0)
                found = ops[o].lamport;
        free(ops);
        free(plain);
        if (found)
            return found;
    }
    return 0;
}

/* A one-operation DATA record sealed as the next record of rc (a test-held chain). */
static uint8_t *seal_kv(const struct writer_keys *wk, struct record_chain *rc, const char *key,
                        const char *val, uint64_t lamport, size_t *size_out,
                        uint8_t hash_out[HASH_SIZE])
{
    struct kv_op op = {.op = val ? OP_PUT : OP_DEL,
                       .lamport = lamport,
                       .key_size = (uint16_t)strlen(key),
                       .key = (const uint8_t *)key,
                       .value_size = val ? (uint32_t)strlen(val) : 0,
                       .value = (const uint8_t *)val};
    uint8_t plain[512];
    struct wr w;
    wr_init(&w, plain, sizeof plain);
    data_encode(&w, &op, 1);
    assert_int_equal(w.err, PSL_OK);
    size_t cap = record_sealed_size(w.pos, REC_DATA);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    memcpy(buf + PSL_RECORD_HEADER_SIZE, plain, w.pos);
    uint8_t hash[HASH_SIZE];
    assert_int_equal(record_chain_seal(rc, wk, REC_DATA, lamport, buf, cap, w.pos, size_out, hash),
                     PSL_OK);
    if (hash_out)
        memcpy(hash_out, hash, HASH_SIZE);
    return buf;
}

/* ======================================================================================== */
/* 0. creation */

/* After a failed scl_create: the header does not say whether wk was taken then; the engine
 * clears what it takes, so free what is still there. */
static void keys_release_if_kept(struct writer_keys *wk)
{
    if (wk->sign.sk)
        writer_keys_deinit(wk);
}

static void test_create_checks_certificate(void **state)
{
    struct fx *f = *state;
    struct scl_config cfg = cfg_default(f);
    struct writer_keys wk;
    struct scl_engine *e = NULL;

    /* A certificate for other keys (writer 0's) than the ones handed in. */
    fx_writer_keys(&wk, ENGINE_SEED0, f->capsule_key);
    cfg.cert = &f->w[FX_W0].cert;
    assert_int_not_equal(scl_create(&e, &cfg, &wk), PSL_OK);
    assert_null(e);
    keys_release_if_kept(&wk);

    /* A certificate signed by a key that is not the owner. */
    struct writer_cert c;
    fx_writer_keys(&wk, ENGINE_SEED0, f->capsule_key);
    fx_cert_make(f, &c, &wk, ROLE_WORKER, &f->stranger);
    cfg.cert = &c;
    assert_int_not_equal(scl_create(&e, &cfg, &wk), PSL_OK);
    assert_null(e);
    keys_release_if_kept(&wk);

    /* Expired at the engine's wall clock. */
    fx_writer_keys(&wk, ENGINE_SEED0, f->capsule_key);
    fx_cert_make(f, &c, &wk, ROLE_WORKER, &f->owner);
    g_wall_ms = FX_CERT_NA + 1;
    cfg.cert = &c;
    assert_int_not_equal(scl_create(&e, &cfg, &wk), PSL_OK);
    assert_null(e);
    keys_release_if_kept(&wk);
    g_wall_ms = FX_NOW;

    /* Valid, with every tunable left at 0: the documented defaults apply. */
    struct scl_config zero = {.meta = &f->meta, .capsule_key = f->capsule_key};
    struct net *n = net_new(f, 7);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &zero);
    for (unsigned k = 0; k < 20; k++) {
        char key[16];
        snprintf(key, sizeof key, "d%u", k);
        put_ok(n->e[a], key, "x");
    }
    net_actors(n);
    assert_int_equal(log_count(n, a, REC_CERT), 1);
    assert_int_equal(log_count(n, a, REC_DATA), 1); /* default batch: 1000 ops */
    net_free(n);
}

/* 1. the lambda-facing API on one engine */

static void test_local_api(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 1);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    struct scl_engine *e = n->e[a];
    uint8_t out[256];
    size_t size = 12345;

    assert_int_equal(scl_get(e, (const uint8_t *)"missing", 7, out, sizeof out, &size),
                     PSL_ERR_NOT_FOUND);
    put_ok(e, "alpha", "one");
    expect_kv(e, "alpha", "one"); /* read-your-writes, before any record is sealed */
    put_ok(e, "alpha", "two");
    expect_kv(e, "alpha", "two");
    del_ok(e, "alpha");
    expect_kv(e, "alpha", NULL);
    put_ok(e, "alpha", "three"); /* a put after a delete brings the key back */
    expect_kv(e, "alpha", "three");
    del_ok(e, "never-written"); /* deleting an absent key is fine */
    expect_kv(e, "never-written", NULL);

    /* An empty value is a value, not an absence. */
    assert_int_equal(scl_put(e, (const uint8_t *)"empty", 5, (const uint8_t *)"", 0), PSL_OK);
    size = 12345;
    assert_int_equal(scl_get(e, (const uint8_t *)"empty", 5, out, sizeof out, &size), PSL_OK);
    assert_int_equal(size, 0);

    /* Too small a buffer: TOO_LARGE with the size needed. */
    uint8_t big[100];
    for (size_t k = 0; k < sizeof big; k++)
        big[k] = (uint8_t)(k * 7);
    assert_int_equal(scl_put(e, (const uint8_t *)"big", 3, big, sizeof big), PSL_OK);
    size = 0;
    assert_int_equal(scl_get(e, (const uint8_t *)"big", 3, out, 10, &size), PSL_ERR_TOO_LARGE);
    assert_int_equal(size, sizeof big);
    size = 0;
    assert_int_equal(scl_get(e, (const uint8_t *)"big", 3, out, sizeof big, &size), PSL_OK);
    assert_int_equal(size, sizeof big);
    assert_memory_equal(out, big, sizeof big);

    /* Bad arguments are refused and change nothing. */
    uint8_t longkey[PSL_KEY_SIZE_MAX + 1];
    memset(longkey, 'k', sizeof longkey);
    assert_int_not_equal(scl_put(e, (const uint8_t *)"", 0, (const uint8_t *)"v", 1), PSL_OK);
    assert_int_not_equal(scl_put(e, longkey, sizeof longkey, (const uint8_t *)"v", 1), PSL_OK);
    assert_int_not_equal(scl_del(e, longkey, sizeof longkey), PSL_OK);
    uint8_t *huge = calloc(1, PSL_VALUE_SIZE_MAX + 1);
    assert_non_null(huge);
    assert_int_not_equal(scl_put(e, (const uint8_t *)"huge", 4, huge, PSL_VALUE_SIZE_MAX + 1),
                         PSL_OK);
    free(huge);
    expect_kv(e, "huge", NULL);

    struct scl_stats st = stats_of(e);
    assert_int_equal(st.ops_local, 7); /* 4 on alpha, 1 del of an absent key, empty, big */

    /* Sealing changes no state a reader sees. */
    uint8_t d1[HASH_SIZE], d2[HASH_SIZE];
    digest_of(e, d1);
    net_actors(n);
    digest_of(e, d2);
    assert_memory_equal(d1, d2, HASH_SIZE);
    expect_kv(e, "alpha", "three");
    net_free(n);
}

/* 2. batching */

/* Checks engine i's records: the CERT at seq 1, then contiguous, prev-chained records, each
 * signed by the certified key. */
static void check_chain(const struct net *n, size_t i)
{
    const uint8_t *prev = NULL;
    uint64_t last = log_last_seq(n, i);
    for (uint64_t seq = 1; seq <= last; seq++) {
        const struct pub *p = log_find(n, i, seq);
        if (!p)
            fail_msg("engine %zu: seq %" PRIu64 " missing (not contiguous)", i, seq);
        struct record_view v;
        assert_int_equal(record_parse(&v, p->data, p->size), PSL_OK);
        if (seq == 1) {
            assert_int_equal(v.h.type, REC_CERT);
            struct writer_cert c;
            assert_int_equal(record_check_cert(&v, &n->f->meta, g_wall_ms, &c), PSL_OK);
            assert_memory_equal(c.writer_id, n->cert[i].writer_id, HASH_SIZE);
        } else {
            assert_int_not_equal(v.h.type, REC_CERT);
            psl_err err = record_check(&v, &n->f->meta, &n->cert[i], g_wall_ms, prev);
            if (err)
                fail_msg("engine %zu seq %" PRIu64 ": %s", i, seq, psl_err_name(err));
        }
        prev = p->hash;
    }
}

static void test_batching(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 2);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 100;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (unsigned k = 0; k < 1000; k++) {
        char key[16], val[24];
        snprintf(key, sizeof key, "k%04u", k);
        snprintf(val, sizeof val, "value-%u", k);
        put_ok(n->e[a], key, val);
    }
    net_actors(n);
    assert_int_equal(n->logn, 11);
    assert_int_equal(log_count(n, a, REC_CERT), 1);
    assert_int_equal(log_count(n, a, REC_DATA), 10);
    assert_int_equal(n->log[0].type, REC_CERT);
    assert_int_equal(n->log[0].seq, 1);
    check_chain(n, a);

    /* The operations come out in order, 100 per record, stamped with increasing Lamports. A
     * record's lamport is above its operations and not above any operation of a later record
     * (they were all queued, stamped earlier, when it was sealed): an index whose cut head is
     * that record covers exactly the operations below its lamport. */
    unsigned next = 0;
    uint64_t lamport = 0, prev_record = 0;
    for (uint64_t seq = 2; seq <= 11; seq++) {
        const struct pub *p = log_find(n, a, seq);
        size_t count = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, p, &count, &plain, NULL);
        assert_int_equal(count, 100);
        assert_true(prev_record <= ops[0].lamport);
        prev_record = p->lamport;
        for (size_t o = 0; o < count; o++, next++) {
            char key[16];
            snprintf(key, sizeof key, "k%04u", next);
            assert_int_equal(ops[o].op, OP_PUT);
            assert_int_equal(ops[o].key_size, strlen(key));
            assert_memory_equal(ops[o].key, key, ops[o].key_size);
            assert_true(ops[o].lamport > lamport);
            lamport = ops[o].lamport;
        }
        assert_true(p->lamport >= ops[count - 1].lamport);
        free(ops);
        free(plain);
    }
    struct scl_stats st = stats_of(n->e[a]);
    assert_int_equal(st.ops_local, 1000);
    assert_int_equal(st.records_sealed, 11);
    assert_int_equal(st.sealed_seq, 11);
    net_free(n);

    /* Unbatched: every operation is its own record. */
    n = net_new(f, 3);
    cfg.batch_ops_max = 1;
    a = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    for (unsigned k = 0; k < 50; k++) {
        char key[16];
        snprintf(key, sizeof key, "u%02u", k);
        if (k % 5 == 4)
            del_ok(n->e[a], key);
        else
            put_ok(n->e[a], key, "v");
    }
    net_actors(n);
    assert_int_equal(log_count(n, a, REC_CERT), 1);
    assert_int_equal(log_count(n, a, REC_DATA), 50);
    check_chain(n, a);
    for (uint64_t seq = 2; seq <= 51; seq++) {
        size_t count = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, log_find(n, a, seq), &count, &plain, NULL);
        assert_int_equal(count, 1);
        assert_int_equal(ops[0].op, (seq - 2) % 5 == 4 ? OP_DEL : OP_PUT);
        free(ops);
        free(plain);
    }
    net_free(n);

    /* An idle actor sends a batch of one at once; later operations go into later records. */
    n = net_new(f, 4);
    cfg.batch_ops_max = 1000;
    a = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_WORKER, &cfg);
    put_ok(n->e[a], "first", "1");
    net_actors(n);
    assert_int_equal(log_count(n, a, REC_DATA), 1);
    put_ok(n->e[a], "second", "2");
    put_ok(n->e[a], "third", "3");
    net_actors(n);
    assert_int_equal(log_count(n, a, REC_DATA), 2);
    check_chain(n, a);
    net_free(n);
}

static void test_batch_bytes(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 5);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1000;
    cfg.batch_bytes_max = 1000;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    char val[101];
    memset(val, 'x', 100);
    val[100] = '\0';
    for (unsigned k = 0; k < 80; k++) {
        char key[16];
        snprintf(key, sizeof key, "b%07u", k); /* 8 bytes: 123 encoded bytes per op */
        put_ok(n->e[a], key, val);
    }
    net_actors(n);
    check_chain(n, a);
    size_t records = log_count(n, a, REC_DATA), ops_total = 0;
    for (uint64_t seq = 2; seq <= log_last_seq(n, a); seq++) {
        size_t count = 0, plain_size = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, log_find(n, a, seq), &count, &plain, &plain_size);
        if (plain_size > cfg.batch_bytes_max)
            fail_msg("DATA seq %" PRIu64 " has %zu plaintext bytes > batch_bytes_max", seq,
                     plain_size);
        assert_true(count >= 1);
        ops_total += count;
        free(ops);
        free(plain);
    }
    assert_int_equal(ops_total, 80);
    assert_int_equal(records, 10); /* 8 ops of 123 bytes fit in 1000, 9 do not */
    net_free(n);
}

/* 3. backpressure */

static void test_backpressure(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 6);
    struct scl_config cfg = cfg_default(f);
    cfg.queue_ops_max = 10;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    struct scl_engine *e = n->e[a];
    char key[16];
    for (unsigned k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "q%02u", k);
        put_ok(e, key, "v");
    }
    assert_int_equal(put_s(e, "q10", "v"), PSL_ERR_BUSY);
    assert_int_equal(del_s(e, "q00"), PSL_ERR_BUSY);
    /* A refused operation is not applied locally either (it would never reach anyone else). */
    expect_kv(e, "q10", NULL);
    expect_kv(e, "q00", "v");
    assert_int_equal(stats_of(e).ops_local, 10);

    net_actors(n); /* the actors drain the queue */
    for (unsigned k = 10; k < 20; k++) {
        snprintf(key, sizeof key, "q%02u", k);
        put_ok(e, key, "w");
    }
    assert_int_equal(put_s(e, "q20", "w"), PSL_ERR_BUSY);
    net_actors(n);
    put_ok(e, "q20", "w");
    net_free(n);

    /* The byte bound: 300-byte values against 2000 queued bytes. */
    n = net_new(f, 7);
    cfg = cfg_default(f);
    cfg.queue_bytes_max = 2000;
    a = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    e = n->e[a];
    char val[301];
    memset(val, 'y', 300);
    val[300] = '\0';
    unsigned ok = 0;
    psl_err err = PSL_OK;
    for (unsigned k = 0; k < 20 && err == PSL_OK; k++) {
        snprintf(key, sizeof key, "y%02u", k);
        err = put_s(e, key, val);
        if (!err)
            ok++;
    }
    assert_int_equal(err, PSL_ERR_BUSY);
    assert_true(ok >= 1 && ok <= 6);
    net_actors(n);
    put_ok(e, "after", val);
    net_free(n);
}

/* The actor pauses when too many sealed bytes await durability, and resumes as ACKs come. */
static void test_unacked_pause(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 8);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    cfg.unacked_bytes_max = 4096;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    char val[201];
    memset(val, 'p', 200);
    val[200] = '\0';
    for (unsigned k = 0; k < 50; k++) {
        char key[16];
        snprintf(key, sizeof key, "p%02u", k);
        put_ok(n->e[a], key, val);
    }
    net_rounds(n, 4);
    assert_int_equal(scl_actor_step(n->e[a]), PSL_ERR_BUSY);
    size_t sealed = log_count(n, a, REC_DATA);
    assert_true(sealed >= 1 && sealed < 50);
    assert_true(stats_of(n->e[a]).sealed_seq <= 1 + 4096 / 200 + 1);

    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = false;
    assert_true(net_settle(n, 600));
    assert_int_equal(log_count(n, a, REC_DATA), 50);
    struct scl_stats st = stats_of(n->e[a]);
    assert_int_equal(st.sealed_seq, 51);
    assert_int_equal(st.durable_seq, 51);
    assert_true(st.resent > 0); /* what the servers missed while down was sent again */
    net_free(n);
}

/* 4. convergence */

static void test_convergence(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xc0117);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 4;
    for (unsigned i = 0; i < 3; i++)
        net_add_engine(n, ENGINE_SEED0 + i, ROLE_WORKER, &cfg);

    /* Equal-Lamport conflicts: fresh engines stamp their first operations alike. */
    char val[32];
    for (size_t i = 0; i < 3; i++) {
        snprintf(val, sizeof val, "from-%zu", i);
        put_ok(n->e[i], "conflict", val);
    }
    put_ok(n->e[0], "dk", "put-by-0");
    del_ok(n->e[1], "dk");

    n->shuffle = true;
    n->dup_pct = 25;
    for (unsigned r = 0; r < 25; r++) {
        for (size_t i = 0; i < 3; i++)
            random_ops(n, i, (unsigned)net_below(n, 5), 20, r);
        (void)net_round(n);
    }
    assert_true(net_settle(n, 800));

    uint64_t l0 = op_lamport(n, 0, "conflict");
    assert_true(l0 > 0);
    size_t winner = 0;
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(op_lamport(n, i, "conflict"), l0);
        if (memcmp(n->cert[i].writer_id, n->cert[winner].writer_id, HASH_SIZE) > 0)
            winner = i;
    }
    assert_int_equal(op_lamport(n, 1, "dk"), op_lamport(n, 0, "dk"));
    bool del_wins = memcmp(n->cert[1].writer_id, n->cert[0].writer_id, HASH_SIZE) > 0;
    snprintf(val, sizeof val, "from-%zu", winner);

    struct model *m = model_from_log(n);
    for (size_t i = 0; i < 3; i++) {
        expect_kv(n->e[i], "conflict", val);
        expect_kv(n->e[i], "dk", del_wins ? NULL : "put-by-0");
        expect_model(n->e[i], m);
        for (size_t j = 0; j < 3; j++)
            if (j != i)
                assert_int_equal(scl_peer_contiguous(n->e[i], n->cert[j].writer_id),
                                 log_last_seq(n, j));
        struct scl_stats st = stats_of(n->e[i]);
        assert_true(st.records_applied > 0);
        assert_true(st.duplicates > 0);
        assert_int_equal(st.forks, 0);
    }
    expect_same_digest(n, 0, 1);
    expect_same_digest(n, 0, 2);
    uint8_t want[HASH_SIZE];
    digest_of(n->e[0], want);

    /* A fresh engine fed every record in a shuffled order, then again backwards, converges to
     * the same state (no server answers it: everything comes from the replay). */
    struct net *r = net_new(f, 0x5e9);
    size_t z = net_add_engine(r, ENGINE_SEED0 + 3, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        r->s[s].down = true;
    size_t *order = malloc(n->logn * sizeof *order);
    assert_non_null(order);
    for (size_t k = 0; k < n->logn; k++)
        order[k] = k;
    for (size_t k = n->logn; k > 1; k--) {
        size_t j = net_below(r, k);
        size_t t = order[k - 1];
        order[k - 1] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < n->logn; k++) {
        (void)scl_on_record(r->e[z], n->log[order[k]].data, n->log[order[k]].size);
        if (k % 16 == 0)
            (void)net_round(r);
    }
    for (size_t k = n->logn; k-- > 0;)
        (void)scl_on_record(r->e[z], n->log[k].data, n->log[k].size);
    net_rounds(r, 4);
    uint8_t got[HASH_SIZE];
    digest_of(r->e[z], got);
    expect_model(r->e[z], m);
    assert_memory_equal(got, want, HASH_SIZE);
    for (size_t j = 0; j < 3; j++)
        assert_int_equal(scl_peer_contiguous(r->e[z], n->cert[j].writer_id), log_last_seq(n, j));
    free(order);
    free(m);
    net_free(r);
    net_free(n);
}

/* 5. loss and gap fill */

static bool keep_gap(struct net *n, const struct msg *m)
{
    (void)n;
    return !(m->kind == M_REC && !m->to_server && m->src == 0 && m->dst == 2 &&
             (m->seq == 3 || m->seq == 4 || m->seq == 7));
}

static bool keep_no_cert(struct net *n, const struct msg *m)
{
    (void)n;
    return !(m->kind == M_REC && !m->to_server && m->src == 0 && m->dst == 2 && m->seq == 1);
}

static void gap_scenario(struct fx *f, net_keep_fn keep, uint64_t seed)
{
    struct net *n = net_new(f, seed);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    for (unsigned i = 0; i < 3; i++)
        net_add_engine(n, ENGINE_SEED0 + i, ROLE_WORKER, &cfg);
    n->keep = keep;
    for (unsigned r = 0; r < 10; r++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "g%u", r);
        snprintf(val, sizeof val, "r%u", r);
        put_ok(n->e[0], key, val);
        if (r % 3 == 0)
            put_ok(n->e[1], key, "from-1");
        (void)net_round(n);
    }
    assert_true(net_settle(n, 600));
    struct scl_stats st = stats_of(n->e[2]);
    assert_true(st.fetches >= 1);
    assert_true(n->requests[2][REQ_GET_RANGE] + n->requests[2][REQ_GET_HASH] >= 1);
    assert_int_equal(log_last_seq(n, 0), 11);
    assert_int_equal(scl_peer_contiguous(n->e[2], n->cert[0].writer_id), 11);
    assert_int_equal(scl_peer_contiguous(n->e[2], n->cert[1].writer_id), log_last_seq(n, 1));
    struct model *m = model_from_log(n);
    for (size_t i = 0; i < 3; i++)
        expect_model(n->e[i], m);
    expect_same_digest(n, 0, 2);
    expect_same_digest(n, 1, 2);
    free(m);
    net_free(n);
}

static void test_gap_fill(void **state)
{
    gap_scenario(*state, keep_gap, 0x6a9);
}

static void test_lost_cert(void **state)
{
    gap_scenario(*state, keep_no_cert, 0xce27);
}

static void test_random_loss(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x1055);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 3;
    for (unsigned i = 0; i < 3; i++)
        net_add_engine(n, ENGINE_SEED0 + i, ROLE_WORKER, &cfg);
    n->loss_pct = 30;
    n->shuffle = true;
    for (unsigned r = 0; r < 20; r++) {
        for (size_t i = 0; i < 3; i++)
            random_ops(n, i, (unsigned)net_below(n, 6), 15, r);
        (void)net_round(n);
    }
    net_rounds(n, 10);
    /* The last record of every writer gets through: it reveals whatever tail was lost. */
    n->loss_pct = 0;
    for (size_t i = 0; i < 3; i++)
        put_ok(n->e[i], "final", i == 0 ? "0" : i == 1 ? "1" : "2");
    assert_true(net_settle(n, 1000));
    struct model *m = model_from_log(n);
    for (size_t i = 0; i < 3; i++) {
        expect_model(n->e[i], m);
        for (size_t j = 0; j < 3; j++)
            if (j != i)
                assert_int_equal(scl_peer_contiguous(n->e[i], n->cert[j].writer_id),
                                 log_last_seq(n, j));
    }
    expect_same_digest(n, 0, 1);
    expect_same_digest(n, 0, 2);
    free(m);
    net_free(n);
}

/* 6. flush and durability */

static void send_ack(struct net *n, size_t i, const struct signer *by, uint64_t seq,
                     const uint8_t hash[HASH_SIZE], const uint8_t *capsule, long flip_bit)
{
    struct ack a;
    memset(&a, 0, sizeof a);
    memcpy(a.capsule, capsule ? capsule : n->f->meta.name, HASH_SIZE);
    memcpy(a.writer, n->cert[i].writer_id, HASH_SIZE);
    a.seq = seq;
    memcpy(a.record_hash, hash, HASH_SIZE);
    assert_int_equal(ack_sign_for(&a, by, n->cert[i].kx_pk), PSL_OK);
    uint8_t buf[ACK_SIZE];
    ack_encode(&a, buf);
    if (flip_bit >= 0)
        tu_flip(buf, (size_t)flip_bit);
    (void)scl_on_ack(n->e[i], buf, sizeof buf);
}

static void test_flush_acks(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xf1);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    struct scl_engine *e = n->e[a];
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true; /* the test plays the servers' ACKs itself */

    /* Nothing written yet: nothing to wait for. */
    assert_true(scl_flush_done(e, scl_flush_ticket(e)));

    put_ok(e, "a", "1");
    put_ok(e, "b", "2");
    uint64_t t1 = scl_flush_ticket(e);
    assert_false(scl_flush_done(e, t1));
    net_rounds(n, 2);
    assert_int_equal(log_last_seq(n, a), 2);
    const struct pub *cert = log_find(n, a, 1), *d2 = log_find(n, a, 2);
    assert_false(scl_flush_done(e, t1));

    send_ack(n, a, &f->servers[0], 2, d2->hash, NULL, -1);
    assert_false(scl_flush_done(e, t1)); /* one of k = 2 */
    send_ack(n, a, &f->servers[0], 2, d2->hash, NULL, -1);
    assert_false(scl_flush_done(e, t1)); /* the same server twice still counts once */
    send_ack(n, a, &f->stranger, 2, d2->hash, NULL, -1);
    assert_false(scl_flush_done(e, t1)); /* not a replica */
    send_ack(n, a, &f->servers[1], 2, d2->hash, NULL, (long)((ACK_SIZE - SIGN_SIG_SIZE) * 8 - 3));
    assert_false(scl_flush_done(e, t1)); /* bad MAC (the writer's check; the signature is for
                                          * third parties) */
    send_ack(n, a, &f->servers[1], 2, d2->hash, NULL, (4 + 1 + 32 + 32 + 8 + 3) * 8 + 5);
    assert_false(scl_flush_done(e, t1)); /* flipped hash field */
    send_ack(n, a, &f->servers[1], 2, cert->hash, NULL, -1);
    assert_false(scl_flush_done(e, t1)); /* a hash that is not the record at seq 2 */
    send_ack(n, a, &f->servers[1], 2, d2->hash, f->other.name, -1);
    assert_false(scl_flush_done(e, t1)); /* another capsule */
    send_ack(n, a, &f->servers[1], 1, cert->hash, NULL, -1);
    assert_false(scl_flush_done(e, t1)); /* covers seq 1 only */
    assert_true(stats_of(e).durable_seq <= 1);
    send_ack(n, a, &f->servers[1], 2, d2->hash, NULL, -1);
    assert_true(scl_flush_done(e, t1));
    assert_int_equal(stats_of(e).durable_seq, 2);

    /* A later ticket waits for its own record; the earlier one stays done. */
    put_ok(e, "c", "3");
    uint64_t t2 = scl_flush_ticket(e);
    assert_true(t2 != t1);
    assert_true(scl_flush_done(e, t1));
    assert_false(scl_flush_done(e, t2));
    net_rounds(n, 2);
    assert_int_equal(log_last_seq(n, a), 3);
    const struct pub *d3 = log_find(n, a, 3);
    uint8_t bogus[HASH_SIZE];
    memset(bogus, 0xb0, sizeof bogus);
    send_ack(n, a, &f->servers[0], 99, bogus, NULL, -1); /* for records never sealed */
    send_ack(n, a, &f->servers[2], 99, bogus, NULL, -1);
    assert_false(scl_flush_done(e, t2));
    assert_int_equal(stats_of(e).durable_seq, 2);
    send_ack(n, a, &f->servers[2], 3, d3->hash, NULL, -1);
    assert_false(scl_flush_done(e, t2));
    send_ack(n, a, &f->servers[1], 3, d3->hash, NULL, -1);
    assert_true(scl_flush_done(e, t2));
    assert_int_equal(stats_of(e).durable_seq, 3);
    net_free(n);
}

static bool keep_no_acks(struct net *n, const struct msg *m)
{
    return !(n->keep_flag && m->kind == M_ACK);
}

static void test_flush_lost_acks(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xf2);
    struct scl_config cfg = cfg_default(f);
    cfg.resend_ms = 500;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    struct scl_engine *e = n->e[a];
    n->keep = keep_no_acks;
    n->keep_flag = true;
    put_ok(e, "a", "1");
    put_ok(e, "b", "2");
    uint64_t t = scl_flush_ticket(e);
    net_rounds(n, 30); /* 1.5 s: past resend_ms */
    assert_false(scl_flush_done(e, t));
    assert_true(stats_of(e).resent > 0);
    size_t copies = 0;
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].seq == 2)
            copies++;
    assert_true(copies >= 2); /* re-sent, byte for byte (net_on_publish checks) */

    n->keep_flag = false;
    assert_true(net_settle(n, 400));
    assert_true(scl_flush_done(e, t));
    struct scl_stats st = stats_of(e);
    assert_int_equal(st.durable_seq, st.sealed_seq);
    net_free(n);
}

static void test_flush_server_down(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xf3);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    struct scl_engine *e = n->e[a];
    n->s[1].down = true;
    n->s[2].down = true;
    put_ok(e, "a", "1");
    uint64_t t = scl_flush_ticket(e);
    net_rounds(n, 30);
    assert_false(scl_flush_done(e, t)); /* one server of k = 2 */
    n->s[1].down = false;               /* it missed the records: only a re-send helps */
    assert_true(net_settle(n, 400));
    assert_true(scl_flush_done(e, t));
    struct srv_writer *w = srv_writer_of(&n->s[1], n->cert[a].writer_id, false);
    assert_non_null(w);
    assert_int_equal(w->contiguous, stats_of(e).sealed_seq);
    net_free(n);
}

/* 7. rejections */

static void inject(struct net *n, size_t i, const uint8_t *rec, size_t size)
{
    (void)scl_on_record(n->e[i], rec, size);
    net_actors(n);
}

static void expect_unchanged(struct net *n, size_t i, const uint8_t want[HASH_SIZE])
{
    uint8_t got[HASH_SIZE];
    digest_of(n->e[i], got);
    assert_memory_equal(got, want, HASH_SIZE);
}

static void test_rejections(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x7e);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    net_actors(n);
    uint8_t d0[HASH_SIZE];
    digest_of(n->e[a], d0);
    struct scl_stats st0 = stats_of(n->e[a]), st;
    size_t size = 0;
    uint8_t *rec, *rec2;

    /* A writer certified by a stranger, not the owner: its CERT and its data are refused. */
    struct fx_writer u = {.by_leader = false};
    fx_writer_keys(&u.keys, 12, f->capsule_key);
    fx_cert_make(f, &u.cert, &u.keys, ROLE_WORKER, &f->stranger);
    record_chain_init(&u.chain, f->meta.name);
    rec = fx_seal_cert(f, &u, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    st = stats_of(n->e[a]);
    assert_int_equal(st.rejected_by[PSL_ERR_CERT_ISSUER], 1);
    assert_true(st.rejected > st0.rejected);
    rec = fx_seal_data(&u, 3, 50, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    expect_unchanged(n, a, d0);
    expect_kv(n->e[a], "key-50-0", NULL);
    writer_keys_deinit(&u.keys);

    /* An expired certificate, and one for a measurement the policy does not allow. */
    struct fx_writer x = {.by_leader = false};
    fx_writer_keys(&x.keys, 13, f->capsule_key);
    fx_cert_make(f, &x.cert, &x.keys, ROLE_WORKER, &f->owner);
    x.cert.not_before_ms = FX_NOW - 3 * FX_HOUR_MS;
    x.cert.not_after_ms = FX_NOW - 2 * FX_HOUR_MS;
    cert_sign(&x.cert, &f->owner);
    record_chain_init(&x.chain, f->meta.name);
    rec = fx_seal_cert(f, &x, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    rec = fx_seal_data(&x, 2, 51, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    assert_int_equal(stats_of(n->e[a]).rejected_by[PSL_ERR_CERT_EXPIRED], 1);
    fx_cert_make(f, &x.cert, &x.keys, ROLE_WORKER, &f->owner);
    memcpy(x.cert.measurement, f->other_measurement, HASH_SIZE);
    cert_sign(&x.cert, &f->owner);
    record_chain_init(&x.chain, f->meta.name);
    rec = fx_seal_cert(f, &x, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    assert_int_equal(stats_of(n->e[a]).rejected_by[PSL_ERR_CERT_MEASUREMENT], 1);
    expect_unchanged(n, a, d0);
    writer_keys_deinit(&x.keys);

    /* A certified writer (fixture writer 1). */
    struct fx_writer *w1 = &f->w[FX_W1];
    rec = fx_seal_cert(f, w1, &size, NULL);
    st0 = stats_of(n->e[a]);
    inject(n, a, rec, size);
    free(rec);
    st = stats_of(n->e[a]);
    assert_int_equal(st.rejected, st0.rejected);
    expect_unchanged(n, a, d0);

    /* Bit flips in the payload, the signature and the magic: refused, counted. */
    uint8_t h2[HASH_SIZE];
    rec = fx_seal_data(w1, 3, 1, &size, h2);
    rec2 = malloc(size);
    assert_non_null(rec2);
    memcpy(rec2, rec, size);
    tu_flip(rec2, (PSL_RECORD_HEADER_SIZE + 5) * 8 + 2);
    inject(n, a, rec2, size);
    memcpy(rec2, rec, size);
    tu_flip(rec2, (size - 10) * 8);
    inject(n, a, rec2, size);
    st = stats_of(n->e[a]);
    assert_int_equal(st.rejected_by[PSL_ERR_BAD_SIGNATURE],
                     st0.rejected_by[PSL_ERR_BAD_SIGNATURE] + 2);
    memcpy(rec2, rec, size);
    tu_flip(rec2, 3);
    inject(n, a, rec2, size);
    inject(n, a, rec2, 10); /* truncated */
    st = stats_of(n->e[a]);
    assert_int_equal(st.rejected, st0.rejected + 4);
    expect_unchanged(n, a, d0);
    expect_kv(n->e[a], "key-1-0", NULL);

    /* The genuine record is applied: the forgeries left no trace (no duplicate, no fork). */
    inject(n, a, rec, size);
    expect_kv(n->e[a], "key-1-0", "value 0 of record 1");
    expect_kv(n->e[a], "key-1-2", NULL);
    st = stats_of(n->e[a]);
    assert_int_equal(st.forks, 0);
    assert_int_equal(st.duplicates, st0.duplicates);
    assert_int_equal(scl_peer_contiguous(n->e[a], w1->keys.writer_id), 2);
    uint8_t d1[HASH_SIZE];
    digest_of(n->e[a], d1);
    assert_memory_not_equal(d1, d0, HASH_SIZE);

    /* A replay is dropped and counted. */
    uint64_t applied = st.records_applied;
    inject(n, a, rec, size);
    st = stats_of(n->e[a]);
    assert_int_equal(st.duplicates, st0.duplicates + 1);
    assert_int_equal(st.records_applied, applied);
    expect_unchanged(n, a, d1);
    free(rec);
    free(rec2);

    /* The writer's next record, sealed for another capsule. */
    struct record_chain other = w1->chain;
    memcpy(other.capsule, f->other.name, HASH_SIZE);
    rec = seal_kv(&w1->keys, &other, "other-capsule", "x", 500, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    assert_int_equal(stats_of(n->e[a]).rejected_by[PSL_ERR_WRONG_CAPSULE], 1);
    expect_kv(n->e[a], "other-capsule", NULL);
    expect_unchanged(n, a, d1);

    /* The genuine seq 3 still applies. */
    rec = fx_seal_data(w1, 2, 2, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    expect_kv(n->e[a], "key-2-0", "value 0 of record 2");
    assert_int_equal(scl_peer_contiguous(n->e[a], w1->keys.writer_id), 3);

    /* Validly signed by a certified writer but encrypted under another capsule key. */
    struct fx_writer d = {.cert = f->w[FX_W0].cert};
    fx_writer_keys(&d.keys, FX_W0, f->other_key);
    record_chain_init(&d.chain, f->meta.name);
    rec = fx_seal_cert(f, &d, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    digest_of(n->e[a], d1);
    rec = fx_seal_data(&d, 2, 60, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    assert_int_equal(stats_of(n->e[a]).rejected_by[PSL_ERR_DECRYPT], 1);
    expect_kv(n->e[a], "key-60-0", NULL);
    expect_unchanged(n, a, d1);
    writer_keys_deinit(&d.keys);

    /* Garbage. */
    uint8_t junk[300];
    memset(junk, 0x41, sizeof junk);
    st0 = stats_of(n->e[a]);
    inject(n, a, junk, sizeof junk);
    inject(n, a, junk, 0);
    assert_int_equal(stats_of(n->e[a]).rejected, st0.rejected + 2);
    expect_unchanged(n, a, d1);
    net_free(n);
}

/* 8. forks */

static void test_fork(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xf0);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    put_ok(n->e[a], "x", "1");
    assert_true(net_settle(n, 200));
    expect_kv(n->e[b], "x", "1");
    uint64_t last = log_last_seq(n, a);
    const struct pub *head = log_find(n, a, last);

    /* Somebody holding a's key signs two different records for seq last + 1. */
    struct record_chain rc;
    record_chain_init(&rc, f->meta.name);
    rc.seq = last;
    memcpy(rc.head, head->hash, HASH_SIZE);
    memcpy(rc.sync, head->sync, HASH_SIZE);
    struct record_chain rc2 = rc;
    size_t s1 = 0, s2 = 0, s3 = 0;
    uint8_t h1[HASH_SIZE], h2[HASH_SIZE];
    uint8_t *r1 = seal_kv(&n->clone[a], &rc, "fork-1", "one", 1000, &s1, h1);
    uint8_t *r2 = seal_kv(&n->clone[a], &rc2, "fork-2", "two", 1000, &s2, h2);

    (void)scl_on_record(n->e[b], r1, s1);
    net_poll(n, b);
    expect_kv(n->e[b], "fork-1", "one");
    assert_false(scl_peer_forked(n->e[b], n->cert[a].writer_id));
    assert_int_equal(n->alerts[b], 0);

    (void)scl_on_record(n->e[b], r2, s2);
    net_poll(n, b);
    assert_int_equal(n->alerts[b], 1);
    assert_memory_equal(n->alert_writer[b], n->cert[a].writer_id, HASH_SIZE);
    assert_int_equal(n->alert_size[b], 2 * HASH_SIZE);
    bool order1 = memcmp(n->alert_data[b], h1, HASH_SIZE) == 0 &&
                  memcmp(n->alert_data[b] + HASH_SIZE, h2, HASH_SIZE) == 0;
    bool order2 = memcmp(n->alert_data[b], h2, HASH_SIZE) == 0 &&
                  memcmp(n->alert_data[b] + HASH_SIZE, h1, HASH_SIZE) == 0;
    assert_true(order1 || order2);
    assert_true(scl_peer_forked(n->e[b], n->cert[a].writer_id));
    assert_int_equal(stats_of(n->e[b]).forks, 1);
    expect_kv(n->e[b], "fork-2", NULL);

    /* The same evidence again raises nothing new. */
    (void)scl_on_record(n->e[b], r2, s2);
    (void)scl_on_record(n->e[b], r1, s1);
    net_poll(n, b);
    assert_int_equal(n->alerts[b], 1);
    assert_int_equal(stats_of(n->e[b]).forks, 1);

    /* Nothing more of that writer is applied: neither the forger's next record... */
    uint8_t d0[HASH_SIZE];
    digest_of(n->e[b], d0);
    uint8_t *r3 = seal_kv(&n->clone[a], &rc, "fork-3", "three", 1001, &s3, NULL);
    (void)scl_on_record(n->e[b], r3, s3);
    net_poll(n, b);
    expect_kv(n->e[b], "fork-3", NULL);
    expect_unchanged(n, b, d0);
    /* ...nor anything a's engine writes from now on. */
    put_ok(n->e[a], "after", "a");
    put_ok(n->e[a], "x", "2");
    net_rounds(n, 20);
    expect_kv(n->e[b], "after", NULL);
    expect_kv(n->e[b], "x", "1");
    expect_unchanged(n, b, d0);
    assert_true(scl_peer_forked(n->e[b], n->cert[a].writer_id));
    /* b's own writes still work. */
    put_ok(n->e[b], "b-key", "b");
    expect_kv(n->e[b], "b-key", "b");
    free(r1);
    free(r2);
    free(r3);
    net_free(n);
}

/* 9. epochs */

static const struct pub *log_last_of(const struct net *n, size_t engine, uint8_t type)
{
    const struct pub *p = NULL;
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine == engine && n->log[k].type == type)
            p = &n->log[k];
    return p;
}

static size_t log_first_index(const struct net *n, size_t engine, uint8_t type)
{
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine == engine && n->log[k].type == type)
            return k;
    return NONE;
}

/* Every head listed in a cut names the very record of that (writer, seq). */
static size_t check_cut(const struct net *n, const struct pub *p, bool *has_writer)
{
    struct record_view v;
    assert_int_equal(record_parse(&v, p->data, p->size), PSL_OK);
    struct cut_head heads[16];
    uint64_t epoch = 0;
    size_t count = 0;
    assert_int_equal(cut_decode(v.payload, v.h.payload_size, &epoch, heads, 16, &count), PSL_OK);
    for (size_t h = 0; h < count; h++) {
        size_t w = net_engine_of(n, heads[h].writer);
        if (w == NONE)
            fail_msg("a cut lists an unknown writer");
        const struct pub *r = log_find(n, w, heads[h].seq);
        if (!r || memcmp(r->hash, heads[h].hash, HASH_SIZE) != 0)
            fail_msg("a cut lists (engine %zu, seq %" PRIu64 ") with a wrong hash", w,
                     heads[h].seq);
        if (has_writer)
            has_writer[w] = true;
    }
    return count;
}

static void test_epochs(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xe0c);
    struct scl_config cfg = cfg_default(f);
    struct scl_config ccfg = cfg;
    ccfg.epoch_ms = 1000;
    size_t c = net_add_engine(n, ENGINE_SEED0, ROLE_COORDINATOR, &ccfg);
    size_t w1 = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    size_t w2 = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_WORKER, &cfg);
    for (unsigned r = 0; r < 5; r++) {
        random_ops(n, w1, 2, 10, r);
        random_ops(n, w2, 2, 10, r);
        (void)net_round(n);
    }
    unsigned r;
    for (r = 0; r < 100 && !log_last_of(n, c, REC_SYNC); r++)
        (void)net_round(n);
    const struct pub *sync = log_last_of(n, c, REC_SYNC);
    if (!sync)
        fail_msg("no SYNC after %u rounds (coordinator EOE: %zu, worker EOEs: %zu, %zu)", r,
                 log_count(n, c, REC_EOE), log_count(n, w1, REC_EOE), log_count(n, w2, REC_EOE));
    net_rounds(n, 3); /* deliver the SYNC (well before the next epoch) */

    size_t i_req = log_first_index(n, c, REC_EOE), i_sync = log_first_index(n, c, REC_SYNC);
    size_t i_w1 = log_first_index(n, w1, REC_EOE), i_w2 = log_first_index(n, w2, REC_EOE);
    assert_true(i_req != NONE && i_w1 != NONE && i_w2 != NONE);
    assert_true(i_req < i_w1 && i_req < i_w2);   /* workers answer the coordinator's request */
    assert_true(i_w1 < i_sync && i_w2 < i_sync); /* the cut follows their reports */
    bool listed[NET_ENGINES_MAX] = {false};
    assert_true(check_cut(n, &n->log[i_sync], listed) >= 2);
    assert_true(listed[w1] && listed[w2]);
    (void)check_cut(n, &n->log[i_w1], NULL);
    (void)check_cut(n, &n->log[i_w2], NULL);
    assert_true(stats_of(n->e[c]).epochs >= 1);
    assert_true(stats_of(n->e[w1]).epochs >= 1);
    assert_true(stats_of(n->e[w2]).epochs >= 1);

    /* Workers link their next records to the newest SYNC. */
    sync = log_last_of(n, c, REC_SYNC);
    uint8_t sync_hash[HASH_SIZE];
    memcpy(sync_hash, sync->hash, HASH_SIZE);
    put_ok(n->e[w1], "after-sync", "1");
    put_ok(n->e[w2], "after-sync-2", "2");
    net_actors(n);
    const struct pub *p1 = log_last_of(n, w1, REC_DATA), *p2 = log_last_of(n, w2, REC_DATA);
    assert_memory_equal(p1->sync, sync_hash, HASH_SIZE);
    assert_memory_equal(p2->sync, sync_hash, HASH_SIZE);

    (void)net_settle(n, 60); /* epochs keep the coordinator busy: it may never be quiet */
    net_rounds(n, 10);
    struct model *m = model_from_log(n);
    expect_model(n->e[c], m);
    expect_model(n->e[w1], m);
    expect_model(n->e[w2], m);
    expect_same_digest(n, w1, w2);
    expect_same_digest(n, c, w1);
    free(m);
    net_free(n);
}

static bool keep_not_from(struct net *n, const struct msg *m)
{
    return !((m->kind == M_REC || m->kind == M_REQ) && m->src == n->keep_engine);
}

static void test_epochs_without_coordinator(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xe0d);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 5;
    struct scl_config ccfg = cfg;
    ccfg.epoch_ms = 300;
    size_t c = net_add_engine(n, ENGINE_SEED0, ROLE_COORDINATOR, &ccfg);
    size_t w1 = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    size_t w2 = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_WORKER, &cfg);
    n->keep = keep_not_from;
    n->keep_engine = c;
    n->shuffle = true;
    for (unsigned r = 0; r < 30; r++) {
        random_ops(n, w1, (unsigned)net_below(n, 4), 12, r);
        random_ops(n, w2, (unsigned)net_below(n, 4), 12, r);
        (void)net_round(n);
    }
    net_rounds(n, 40);
    struct model *m = model_from_log(n);
    expect_model(n->e[w1], m);
    expect_model(n->e[w2], m);
    expect_same_digest(n, w1, w2);
    assert_int_equal(stats_of(n->e[w1]).epochs, 0);
    assert_int_equal(stats_of(n->e[w2]).epochs, 0);
    uint8_t zero[HASH_SIZE] = {0};
    for (size_t k = 0; k < n->logn; k++)
        if (n->log[k].engine != c)
            assert_memory_equal(n->log[k].sync, zero, HASH_SIZE);
    free(m);
    net_free(n);
}

/* 10. recovery */

static void test_recovery(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x2ec);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 10;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    for (unsigned r = 0; r < 10; r++) {
        random_ops(n, a, (unsigned)net_below(n, 9), 30, r);
        random_ops(n, b, (unsigned)net_below(n, 9), 30, r);
        (void)net_round(n);
    }
    assert_true(net_settle(n, 400));
    /* Server 2 misses a's last records: it lags, and recovery must not roll them back. */
    n->s[2].down = true;
    for (unsigned r = 0; r < 3; r++) {
        random_ops(n, a, 12, 30, 100 + r);
        (void)net_round(n);
    }
    assert_true(net_settle(n, 400));
    n->s[2].down = false;
    struct srv_writer *lag = srv_writer_of(&n->s[2], n->cert[a].writer_id, false);
    assert_non_null(lag);
    assert_true(lag->contiguous < log_last_seq(n, a));

    size_t z = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_WORKER, &cfg);
    assert_true(net_settle(n, 600));
    assert_true(n->requests[z][REQ_GET_HEADS] >= 1);
    assert_true(n->requests[z][REQ_GET_RANGE] >= 1);
    assert_true(n->req_first[z][REQ_GET_HEADS] < n->req_first[z][REQ_GET_RANGE]);
    assert_int_equal(scl_peer_contiguous(n->e[z], n->cert[a].writer_id), log_last_seq(n, a));
    assert_int_equal(scl_peer_contiguous(n->e[z], n->cert[b].writer_id), log_last_seq(n, b));
    struct model *m = model_from_log(n);
    expect_model(n->e[z], m);
    expect_same_digest(n, a, z);
    expect_same_digest(n, b, z);
    free(m);
    net_free(n);
}

/* A chain longer than one GET_RANGE may ask for (4096), served in several reply parts. */
static void test_recovery_long_chain(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x2ed);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (unsigned k = 0; k < 4200; k++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "L%u", k % 300);
        snprintf(val, sizeof val, "v%u", k);
        put_ok(n->e[a], key, val);
    }
    assert_true(net_settle(n, 400));
    assert_int_equal(log_last_seq(n, a), 4201);
    size_t z = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    assert_true(net_settle(n, 600));
    assert_true(n->requests[z][REQ_GET_RANGE] >= 2);
    assert_true(n->replies_more >= 1);
    assert_int_equal(scl_peer_contiguous(n->e[z], n->cert[a].writer_id), 4201);
    expect_same_digest(n, a, z);
    expect_kv(n->e[z], "L299", "v4199");
    expect_kv(n->e[z], "L0", "v3900");
    net_free(n);
}

/* ======================================================================================== */
/* More: cases found while reading the protocol against the engine. */

/* DESIGN §3.3 / protocol.md "Verification order": a record whose prev link disagrees with the
 * writer's known previous record fails check 5: it is dropped and counted (BAD_PREV), never
 * applied, and the writer's genuine record for that seq still applies. */
static void test_reject_bad_prev(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x7f);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    struct fx_writer *w1 = &f->w[FX_W1];
    size_t size = 0;
    uint8_t *rec = fx_seal_cert(f, w1, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    rec = fx_seal_data(w1, 2, 1, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    uint8_t d1[HASH_SIZE];
    digest_of(n->e[a], d1);

    struct record_chain bad = w1->chain;
    memset(bad.head, 0x5a, HASH_SIZE);
    rec = seal_kv(&w1->keys, &bad, "bad-prev", "x", 501, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    expect_kv(n->e[a], "bad-prev", NULL);
    expect_unchanged(n, a, d1);
    struct scl_stats st = stats_of(n->e[a]);
    assert_int_equal(st.rejected_by[PSL_ERR_BAD_PREV], 1);
    assert_false(scl_peer_forked(n->e[a], w1->keys.writer_id));

    rec = fx_seal_data(w1, 2, 2, &size, NULL); /* the genuine seq 3 */
    inject(n, a, rec, size);
    free(rec);
    expect_kv(n->e[a], "key-2-0", "value 0 of record 2");
    assert_int_equal(scl_peer_contiguous(n->e[a], w1->keys.writer_id), 3);
    net_free(n);
}

static bool keep_cert_and_requests(struct net *n, const struct msg *m)
{
    if (m->kind == M_REC && !m->to_server && m->src == n->keep_engine && m->seq == 1)
        return false; /* a's CERT never reaches b directly */
    if (m->kind == M_REQ && m->src != n->keep_engine && n->keep_flag)
        return false; /* b's first requests are lost */
    return true;
}

/* Records that wait for their writer's CERT: the fetch of the CERT is lost once. The engine
 * must ask again (DESIGN §5.5: lost messages are re-sent after a timeout), not wait for the
 * writer to write again. */
static void test_cert_fetch_lost(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xce28);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    assert_true(net_settle(n, 100)); /* b's start-up GET_HEADS is answered before a exists */
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    n->keep = keep_cert_and_requests;
    n->keep_engine = a;
    n->keep_flag = true;
    put_ok(n->e[a], "c1", "1");
    put_ok(n->e[a], "c2", "2");
    put_ok(n->e[a], "c3", "3");
    net_rounds(n, 3);
    assert_true(n->requests[b][REQ_GET_RANGE] >= 1); /* it did ask, and the ask was lost */
    n->keep_flag = false;
    (void)net_settle(n, 400);
    assert_int_equal(scl_peer_contiguous(n->e[b], n->cert[a].writer_id), 4);
    expect_kv(n->e[b], "c3", "3");
    expect_same_digest(n, a, b);
    net_free(n);
}

static bool keep_no_cert_from_a(struct net *n, const struct msg *m)
{
    return !(m->kind == M_REC && !m->to_server && m->src == n->keep_engine && m->seq == 1);
}

/* More records wait for a CERT than pending_records_max holds: the rest are dropped, "fetched
 * again once the CERT is in" (engine.c) -- they must be, or the writer's tail is never seen. */
static void test_pending_overflow(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xce29);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    /* b joins first and is done with its start-up GET_HEADS before a exists, so nothing but
     * the path under test can tell b about a's records. */
    struct scl_config bcfg = cfg;
    bcfg.pending_records_max = 2;
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &bcfg);
    assert_true(net_settle(n, 100));
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    n->keep = keep_no_cert_from_a;
    n->keep_engine = a;
    for (unsigned k = 0; k < 6; k++) {
        char key[16];
        snprintf(key, sizeof key, "o%u", k);
        put_ok(n->e[a], key, "v");
    }
    (void)net_settle(n, 400);
    assert_int_equal(log_last_seq(n, a), 7);
    assert_true(stats_of(n->e[b]).rejected_by[PSL_ERR_UNKNOWN_WRITER] >= 1); /* some dropped */
    assert_int_equal(scl_peer_contiguous(n->e[b], n->cert[a].writer_id), 7);
    expect_kv(n->e[b], "o5", "v");
    expect_same_digest(n, a, b);
    net_free(n);
}

static bool keep_not_last_to_1(struct net *n, const struct msg *m)
{
    return !(m->kind == M_REC && !m->to_server && m->src == n->keep_engine && m->dst != m->src &&
             m->seq == 6 && m->dst == n->keep_engine + 1);
}

/* The last record of a writer is lost on the way to one engine (servers store it). Nothing
 * later reveals the gap; with no coordinator, anti-entropy with the servers (DESIGN §5.3, §5.4:
 * "workers keep converging through anti-entropy") must still bring it. */
static void test_tail_loss_without_coordinator(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x7a11);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    n->keep = keep_not_last_to_1;
    n->keep_engine = a;
    for (unsigned r = 0; r < 5; r++) {
        char key[16];
        snprintf(key, sizeof key, "t%u", r);
        put_ok(n->e[a], key, "v");
        (void)net_round(n);
    }
    net_rounds(n, 200); /* 10 s of fake time */
    assert_int_equal(log_last_seq(n, a), 6);
    assert_int_equal(scl_peer_contiguous(n->e[b], n->cert[a].writer_id), 6);
    expect_kv(n->e[b], "t4", "v");
    net_free(n);
}

/* The same loss with a coordinator: its SYNC cut lists the lost head, and the worker fetches it
 * before adopting the cut (DESIGN §5.4). */
static void test_tail_loss_healed_by_sync(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x7a12);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 1;
    struct scl_config ccfg = cfg;
    ccfg.epoch_ms = 500;
    size_t c = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_COORDINATOR, &ccfg);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    size_t b = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    (void)c;
    n->keep = keep_not_last_to_1;
    n->keep_engine = a;
    for (unsigned r = 0; r < 5; r++) {
        char key[16];
        snprintf(key, sizeof key, "t%u", r);
        put_ok(n->e[a], key, "v");
        (void)net_round(n);
    }
    net_rounds(n, 100);
    assert_true(log_last_seq(n, a) >= 6);
    assert_true(scl_peer_contiguous(n->e[b], n->cert[a].writer_id) >= 6);
    expect_kv(n->e[b], "t4", "v");
    net_free(n);
}

static bool keep_no_requests_while_flag(struct net *n, const struct msg *m)
{
    return !(n->keep_flag && m->kind == M_REQ && m->src == n->keep_engine);
}

/* A joining engine whose first GET_HEADS is lost (a server restart, a lossy fabric) must ask
 * again: otherwise it never learns the state written before it joined (DESIGN §5.6). */
static void test_recovery_heads_lost(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x2ee);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (unsigned k = 0; k < 20; k++) {
        char key[16];
        snprintf(key, sizeof key, "h%u", k);
        put_ok(n->e[a], key, "v");
    }
    assert_true(net_settle(n, 400));
    n->keep = keep_no_requests_while_flag;
    n->keep_flag = true;
    size_t z = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    n->keep_engine = z;
    net_rounds(n, 3);
    assert_true(n->requests[z][REQ_GET_HEADS] >= 1);
    n->keep_flag = false;
    net_rounds(n, 200); /* 10 s */
    assert_int_equal(scl_peer_contiguous(n->e[z], n->cert[a].writer_id), log_last_seq(n, a));
    expect_kv(n->e[z], "h19", "v");
    expect_same_digest(n, a, z);
    net_free(n);
}

/* A coordinator is replaced by a new one (a new writer identity whose epochs count from 1
 * again). Epochs must resume with it (DESIGN §5.4: "epochs simply pause until a new
 * coordinator is certified"), not stay ignored until its counter passes the old one's. */
static void test_coordinator_replaced(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0xc02d);
    struct scl_config cfg = cfg_default(f);
    struct scl_config ccfg = cfg;
    ccfg.epoch_ms = 100;
    size_t c1 = net_add_engine(n, ENGINE_SEED0, ROLE_COORDINATOR, &ccfg);
    size_t w1 = net_add_engine(n, ENGINE_SEED0 + 1, ROLE_WORKER, &cfg);
    size_t w2 = net_add_engine(n, ENGINE_SEED0 + 2, ROLE_WORKER, &cfg);
    for (unsigned r = 0; r < 60; r++) { /* 3 s: many epochs */
        if (r % 5 == 0) {
            random_ops(n, w1, 1, 5, r);
            random_ops(n, w2, 1, 5, r);
        }
        (void)net_round(n);
    }
    uint64_t e1 = stats_of(n->e[w1]).epochs, e2 = stats_of(n->e[w2]).epochs;
    assert_true(e1 >= 3 && e2 >= 3);
    scl_destroy(n->e[c1]);
    n->e[c1] = NULL;
    size_t c2 = net_add_engine(n, ENGINE_SEED0 + 3, ROLE_COORDINATOR, &ccfg);
    for (unsigned r = 0; r < 30; r++) { /* 1.5 s: fifteen epoch lengths of the new one */
        if (r % 5 == 0)
            random_ops(n, w1, 1, 5, 1000 + r);
        (void)net_round(n);
    }
    assert_true(stats_of(n->e[c2]).epochs >= 1);
    if (stats_of(n->e[w1]).epochs <= e1 || stats_of(n->e[w2]).epochs <= e2)
        fail_msg("workers adopted no SYNC of the new coordinator (its epochs: %" PRIu64
                 "; workers' epochs before: %" PRIu64 ", %" PRIu64 ")",
                 stats_of(n->e[c2]).epochs, e1, e2);
    net_free(n);
}

/* A SYNC counts only from a coordinator (or leader); a coordinator's SYNC is adopted once the
 * worker holds every head it lists, fetching what it lacks first. */
static void test_sync_adoption(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x5c);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    struct fx_writer *w1 = &f->w[FX_W1], *co = &f->w[FX_COORD];
    size_t size = 0;
    uint8_t h1[HASH_SIZE], h2[HASH_SIZE], h3[HASH_SIZE], hs[HASH_SIZE];
    uint8_t *rec = fx_seal_cert(f, w1, &size, h1);
    inject(n, a, rec, size);
    free(rec);
    rec = fx_seal_data(w1, 1, 1, &size, h2);
    inject(n, a, rec, size);
    free(rec);
    size_t s3 = 0;
    uint8_t *rec3 = fx_seal_data(w1, 1, 2, &s3, h3); /* held back for now */
    uint8_t zero[HASH_SIZE] = {0};

    /* A worker's "SYNC" is no cut. */
    struct cut_head head = {.seq = 2};
    memcpy(head.writer, w1->keys.writer_id, HASH_SIZE);
    memcpy(head.hash, h2, HASH_SIZE);
    rec = fx_seal_cut(w1, REC_SYNC, 1, &head, 1, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    put_ok(n->e[a], "p1", "1");
    net_actors(n);
    assert_memory_equal(log_last_of(n, a, REC_DATA)->sync, zero, HASH_SIZE);
    assert_int_equal(stats_of(n->e[a]).epochs, 0);

    /* A coordinator's SYNC listing w1's held-back record (seq 3: it was sealed before the fake
     * SYNC, which took seq 4 and was applied out of order, leaving a gap at 3). */
    uint8_t *c1 = fx_seal_cert(f, co, &size, NULL);
    inject(n, a, c1, size);
    free(c1);
    head.seq = 3;
    memcpy(head.hash, h3, HASH_SIZE);
    rec = fx_seal_cut(co, REC_SYNC, 1, &head, 1, &size, hs);
    uint64_t ranges = n->requests[a][REQ_GET_RANGE];
    inject(n, a, rec, size);
    free(rec);
    net_rounds(n, 8); /* the worker asks the (silent) servers for w1's seq 3 */
    assert_true(n->requests[a][REQ_GET_RANGE] > ranges);
    put_ok(n->e[a], "p2", "2");
    net_actors(n);
    assert_memory_equal(log_last_of(n, a, REC_DATA)->sync, zero, HASH_SIZE); /* not adopted yet */
    assert_int_equal(stats_of(n->e[a]).epochs, 0);

    inject(n, a, rec3, s3);
    free(rec3);
    net_rounds(n, 2);
    put_ok(n->e[a], "p3", "3");
    net_actors(n);
    assert_memory_equal(log_last_of(n, a, REC_DATA)->sync, hs, HASH_SIZE);
    assert_int_equal(stats_of(n->e[a]).epochs, 1);
    net_free(n);
}

/* protocol.md, chain verification: "every head a SYNC lists must match the record of that
 * (writer, seq) when the set has it". A coordinator's cut naming another record than the one
 * the worker holds at that (writer, seq) (the coordinator saw the other branch of a fork) must
 * not become the worker's merge point. */
static void test_sync_head_mismatch(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x5d);
    struct scl_config cfg = cfg_default(f);
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    struct fx_writer *w1 = &f->w[FX_W1], *co = &f->w[FX_COORD];
    size_t size = 0;
    uint8_t *rec = fx_seal_cert(f, w1, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    rec = fx_seal_data(w1, 1, 1, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    rec = fx_seal_cert(f, co, &size, NULL);
    inject(n, a, rec, size);
    free(rec);
    struct cut_head head = {.seq = 2};
    memcpy(head.writer, w1->keys.writer_id, HASH_SIZE);
    memset(head.hash, 0x3c, HASH_SIZE); /* not the hash of w1's seq 2 that the worker holds */
    uint8_t hs[HASH_SIZE];
    rec = fx_seal_cut(co, REC_SYNC, 1, &head, 1, &size, hs);
    inject(n, a, rec, size);
    free(rec);
    net_rounds(n, 4);
    put_ok(n->e[a], "m", "1");
    net_actors(n);
    const struct pub *p = log_last_of(n, a, REC_DATA);
    assert_non_null(p);
    if (memcmp(p->sync, hs, HASH_SIZE) == 0)
        fail_msg("the worker linked its record to a SYNC whose head contradicts its own copy");
    assert_int_equal(stats_of(n->e[a]).epochs, 0);
    net_free(n);
}

/* ---- cases that may hang or abort: run in a child process ---- */

/* Runs fn in a child process; returns its exit status, or -SIG when a signal ended it, or
 * -1000 when it did not finish in timeout_ms (then it is killed). The child must not use cmocka
 * assertions (a failure would jump back into the child's copy of the test runner). */
static int run_isolated(void (*fn)(struct fx *), struct fx *f, unsigned timeout_ms)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would turn a crash into "next test" inside the child. */
        static const int sigs[] = {SIGILL, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP};
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
            signal(sigs[k], SIG_DFL);
        fn(f);
        _exit(0);
    }
    for (unsigned waited = 0;; waited += 10) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        assert_true(r == 0);
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
            return -1000;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static struct scl_engine *child_engine(struct fx *f, const struct scl_config *cfg,
                                       struct writer_keys *wk, struct writer_cert *cert)
{
    fx_writer_keys(wk, ENGINE_SEED0, f->capsule_key);
    fx_cert_make(f, cert, wk, ROLE_WORKER, &f->owner);
    struct scl_config c = *cfg;
    c.cert = cert;
    struct scl_engine *e = NULL;
    if (scl_create(&e, &c, wk) != PSL_OK)
        _exit(3);
    scl_tick(e, 1000);
    return e;
}

static void child_far_seq(struct fx *f)
{
    struct scl_config cfg = cfg_default(f);
    struct writer_keys wk;
    struct writer_cert cert;
    struct scl_engine *e = child_engine(f, &cfg, &wk, &cert);
    struct fx_writer *w1 = &f->w[FX_W1];
    size_t size = 0;
    uint8_t *rec = fx_seal_cert(f, w1, &size, NULL);
    (void)scl_on_record(e, rec, size);
    free(rec);
    /* Validly signed by a certified writer, with a seq far ahead. */
    uint8_t plain[256];
    size_t pn = fx_data_plain(plain, sizeof plain, 1, 77);
    struct record_header h = {.type = REC_DATA, .seq = (1ull << 63) + 5, .lamport = 5};
    memcpy(h.capsule, f->meta.name, HASH_SIZE);
    memset(h.prev, 0x11, HASH_SIZE);
    rec = fx_seal_hdr(&w1->keys, &h, plain, pn, &size, NULL);
    (void)scl_on_record(e, rec, size);
    free(rec);
    scl_destroy(e);
}

/* One record with seq just past 2^63 from a certified writer: bounded work, no hang (DESIGN
 * §1: a malformed message costs bounded work). */
static void test_far_seq_bounded(void **state)
{
    int rc = run_isolated(child_far_seq, *state, 3000);
    if (rc == -1000)
        fail_msg("scl_on_record did not return within 3 s for a record with seq 2^63 + 5");
    if (rc != 0)
        fail_msg("the child ended with status %d", rc);
}

static void child_big_batch(struct fx *f)
{
    struct scl_config cfg = cfg_default(f);
    cfg.batch_bytes_max = 8u << 20; /* more than a record can carry */
    struct writer_keys wk;
    struct writer_cert cert;
    fx_writer_keys(&wk, ENGINE_SEED0, f->capsule_key);
    fx_cert_make(f, &cert, &wk, ROLE_WORKER, &f->owner);
    cfg.cert = &cert;
    struct scl_engine *e = NULL;
    if (scl_create(&e, &cfg, &wk) != PSL_OK)
        _exit(0); /* refusing the configuration is fine */
    uint8_t *val = calloc(1, PSL_VALUE_SIZE_MAX);
    for (unsigned k = 0; k < 5; k++) {
        uint8_t key[1] = {(uint8_t)('a' + k)};
        if (scl_put(e, key, 1, val, PSL_VALUE_SIZE_MAX) != PSL_OK)
            _exit(4);
    }
    free(val);
    for (unsigned guard = 0; guard < 100; guard++) {
        psl_err err = scl_actor_step(e);
        if (err == PSL_ERR_NOT_FOUND)
            break;
        if (err)
            _exit(5);
    }
    struct scl_action act;
    while (scl_poll(e, &act)) {
        if (act.kind == SCL_ACT_PUBLISH && act.size > PSL_RECORD_SIZE_MAX)
            _exit(6);
        free(act.data);
    }
    scl_destroy(e);
}

/* A batch_bytes_max above what one record can carry is refused at creation or honoured by
 * sealing smaller records; it must not stop the process. */
static void test_batch_bytes_over_record_limit(void **state)
{
    int rc = run_isolated(child_big_batch, *state, 10000);
    if (rc < 0)
        fail_msg("the engine died (%s) sealing five 1 MiB puts with batch_bytes_max = 8 MiB",
                 rc == -1000      ? "hang"
                 : rc == -SIGABRT ? "SIGABRT: PSL_ASSERT"
                                  : "signal");
    assert_int_equal(rc, 0);
}

/* ---- threads ---- */

struct thr_ctx {
    struct scl_engine *e;
    unsigned id;
    unsigned count;
    volatile int *stop;
    unsigned busy;
};

static void *thr_put(void *arg)
{
    struct thr_ctx *c = arg;
    for (unsigned k = 0; k < c->count; k++) {
        char key[24], val[24];
        snprintf(key, sizeof key, "t%u-%05u", c->id, k);
        snprintf(val, sizeof val, "v%u", k);
        psl_err err;
        while ((err = put_s(c->e, key, val)) == PSL_ERR_BUSY) {
            c->busy++;
            sched_yield();
        }
        if (err)
            return (void *)1;
    }
    return NULL;
}

static void *thr_actor(void *arg)
{
    struct thr_ctx *c = arg;
    while (!*c->stop) {
        psl_err err = scl_actor_step(c->e);
        if (err == PSL_ERR_NOT_FOUND || err == PSL_ERR_BUSY)
            sched_yield();
        else if (err)
            return (void *)1;
    }
    return NULL;
}

/* Two writers' threads and two actor threads on one engine: one valid chain, every operation
 * exactly once, in Lamport order. */
static void test_threads(void **state)
{
    struct fx *f = *state;
    struct net *n = net_new(f, 0x7d);
    struct scl_config cfg = cfg_default(f);
    cfg.batch_ops_max = 64;
    cfg.queue_ops_max = 500;
    size_t a = net_add_engine(n, ENGINE_SEED0, ROLE_WORKER, &cfg);
    for (size_t s = 0; s < FX_SERVERS; s++)
        n->s[s].down = true;
    volatile int stop = 0;
    enum { PER_THREAD = 4000 };
    struct thr_ctx pc[2], ac[2];
    pthread_t pt[2], at[2];
    for (unsigned t = 0; t < 2; t++) {
        pc[t] = (struct thr_ctx){.e = n->e[a], .id = t, .count = PER_THREAD, .stop = &stop};
        ac[t] = (struct thr_ctx){.e = n->e[a], .id = t, .stop = &stop};
        assert_int_equal(pthread_create(&at[t], NULL, thr_actor, &ac[t]), 0);
        assert_int_equal(pthread_create(&pt[t], NULL, thr_put, &pc[t]), 0);
    }
    for (unsigned t = 0; t < 2; t++) {
        void *r = NULL;
        assert_int_equal(pthread_join(pt[t], &r), 0);
        assert_null(r);
        (void)net_poll(n, a);
    }
    stop = 1;
    for (unsigned t = 0; t < 2; t++) {
        void *r = NULL;
        assert_int_equal(pthread_join(at[t], &r), 0);
        assert_null(r);
    }
    net_actors(n);
    check_chain(n, a);
    uint8_t *seen = calloc(2 * PER_THREAD, 1);
    assert_non_null(seen);
    uint64_t lamport = 0;
    size_t total = 0;
    for (uint64_t seq = 2; seq <= log_last_seq(n, a); seq++) {
        size_t count = 0;
        uint8_t *plain = NULL;
        struct kv_op *ops = pub_ops(n, log_find(n, a, seq), &count, &plain, NULL);
        for (size_t o = 0; o < count; o++) {
            unsigned t = 0, k = 0;
            char key[24];
            assert_true(ops[o].key_size < sizeof key);
            memcpy(key, ops[o].key, ops[o].key_size);
            key[ops[o].key_size] = '\0';
            assert_int_equal(sscanf(key, "t%u-%05u", &t, &k), 2);
            assert_true(t < 2 && k < PER_THREAD);
            assert_int_equal(seen[t * PER_THREAD + k], 0);
            seen[t * PER_THREAD + k] = 1;
            assert_true(ops[o].lamport > lamport);
            lamport = ops[o].lamport;
            total++;
        }
        free(ops);
        free(plain);
    }
    assert_int_equal(total, 2 * PER_THREAD);
    assert_int_equal(stats_of(n->e[a]).ops_local, 2 * PER_THREAD);
    expect_kv(n->e[a], "t1-03999", "v3999");
    free(seen);
    net_free(n);
}

/* ======================================================================================== */
/* CapsuleDB in the engine (issue 7): a compactor flushes every SYNC cut into blocks and an
 * index; workers with a small memory bound evict covered keys and read them back through the
 * tree; new workers and a new compactor join from the newest index. */

#define CDB_KEYS    300u
#define CDB_WORKERS 3u

struct cdb_world {
    struct net *n;
    struct lsm_policy pol;
    struct scl_config wcfg, ccfg, kcfg;
    size_t coord, comp;
    size_t w[CDB_WORKERS];
    unsigned next_seed;
    char *ref[CDB_KEYS]; /* the reference map: NULL when absent */
    uint64_t gets, busy_gets;
};

static void cdb_key(char out[16], unsigned k)
{
    snprintf(out, 16, "key%04u", k);
}

/* Waits (in network rounds) until engine i answers. */
static psl_err cdb_get(struct cdb_world *c, size_t i, const char *key, char *out, size_t cap,
                       size_t *size)
{
    c->gets++;
    for (unsigned r = 0; r < 400; r++) {
        psl_err err = scl_get(c->n->e[i], (const uint8_t *)key, strlen(key), (uint8_t *)out, cap,
                              size);
        if (err != PSL_ERR_BUSY)
            return err;
        c->busy_gets++;
        (void)net_round(c->n);
    }
    return PSL_ERR_TIMEOUT;
}

static void cdb_expect(struct cdb_world *c, size_t i, unsigned k)
{
    char key[16], out[128];
    size_t size = 0;
    cdb_key(key, k);
    psl_err err = cdb_get(c, i, key, out, sizeof out - 1, &size);
    const char *want = c->ref[k];
    if (!want) {
        if (err != PSL_ERR_NOT_FOUND)
            fail_msg("engine %zu: get %s: want absent, got %s", i, key, psl_err_name(err));
        return;
    }
    if (err)
        fail_msg("engine %zu: get %s: want \"%s\", got %s", i, key, want, psl_err_name(err));
    out[size] = 0;
    if (strcmp(out, want) != 0)
        fail_msg("engine %zu: get %s: want \"%s\", got \"%s\"", i, key, want, out);
}

static void cdb_wait_ready(struct cdb_world *c, size_t i)
{
    for (unsigned r = 0; r < 2000 && !scl_is_ready(c->n->e[i]); r++)
        (void)net_round(c->n);
    assert_true(scl_is_ready(c->n->e[i]));
}

/* Re-signs the fixture capsule with another retention (a new name; engines certified after). */
static void fx_set_retention(struct fx *f, uint8_t retention)
{
    if (f->meta.retention == retention)
        return;
    f->meta.retention = retention;
    assert_int_equal(meta_sign(&f->meta, &f->owner), PSL_OK);
    assert_int_equal(meta_encode(&f->meta, f->meta_enc, sizeof f->meta_enc, &f->meta_size), PSL_OK);
}

static size_t g_comp_cache = 1u << 20; /* the compactor's block cache (test_cdb_small_cache) */

static void cdb_init(struct cdb_world *c, struct fx *f, uint64_t seed, size_t memtable_bytes_max)
{
    memset(c, 0, sizeof *c);
    c->n = net_new(f, seed);
    for (size_t i = 0; i < FX_SERVERS; i++)
        c->n->s[i].collect = f->meta.retention == RETENTION_COLLECT_COVERED;
    lsm_policy_default(&c->pol);
    c->pol.block_target_size = 512;
    c->pol.level0_runs_max = 2;
    c->pol.level1_size_max = 2048;
    c->pol.growth_factor = 3;
    c->pol.level_count_max = 4;
    c->wcfg = cfg_default(f);
    c->wcfg.batch_ops_max = 8;
    c->wcfg.memtable_bytes_max = memtable_bytes_max;
    c->wcfg.lsm_cache_bytes_max = 2048; /* a few blocks: most tree reads are cold */
    c->wcfg.checkpoint_recovery = true;
    c->kcfg = cfg_default(f);
    c->kcfg.epoch_ms = 300;
    c->ccfg = c->wcfg;
    c->ccfg.lsm_policy = &c->pol;
    c->ccfg.lsm_cache_bytes_max = g_comp_cache;
    c->next_seed = ENGINE_SEED0;
    c->coord = net_add_engine(c->n, c->next_seed++, ROLE_COORDINATOR, &c->kcfg);
    c->comp = net_add_engine(c->n, c->next_seed++, ROLE_COMPACTOR, &c->ccfg);
    for (unsigned i = 0; i < CDB_WORKERS; i++)
        c->w[i] = net_add_engine(c->n, c->next_seed++, ROLE_WORKER, &c->wcfg);
    for (unsigned i = 0; i < CDB_WORKERS; i++)
        cdb_wait_ready(c, c->w[i]);
    cdb_wait_ready(c, c->comp);
}

static void cdb_deinit(struct cdb_world *c)
{
    for (unsigned k = 0; k < CDB_KEYS; k++)
        free(c->ref[k]);
}

/* Crashes engine i (after its work is durable, so the reference still holds) and starts a new
 * identity of the same role in its place; returns the new slot. */
static size_t cdb_restart(struct cdb_world *c, size_t i, uint8_t role, const struct scl_config *cfg)
{
    net_rounds(c->n, 30);
    assert_true(scl_flush_done(c->n->e[i], scl_flush_ticket(c->n->e[i])));
    scl_destroy(c->n->e[i]);
    c->n->e[i] = NULL;
    size_t j = net_add_engine(c->n, c->next_seed++, role, cfg);
    cdb_wait_ready(c, j);
    return j;
}

static void cdb_ops(struct cdb_world *c, size_t i, unsigned count)
{
    for (unsigned o = 0; o < count; o++) {
        unsigned k = (unsigned)net_below(c->n, CDB_KEYS);
        char key[16], val[64];
        cdb_key(key, k);
        psl_err err;
        bool del = net_below(c->n, 5) == 0;
        if (del) {
            err = del_s(c->n->e[i], key);
        } else {
            snprintf(val, sizeof val, "v%u.%" PRIu64 ".%zu-padding-padding-padding", k,
                     c->n->now_ms, i);
            err = put_s(c->n->e[i], key, val);
        }
        if (err == PSL_ERR_BUSY) {
            net_rounds(c->n, 2);
            o--;
            continue;
        }
        assert_int_equal(err, PSL_OK);
        free(c->ref[k]);
        c->ref[k] = del ? NULL : strdup(val);
        if (net_below(c->n, 3) == 0)
            cdb_expect(c, i, k); /* a worker reads its own writes */
    }
}

static void cdb_check_all(struct cdb_world *c)
{
    net_rounds(c->n, 20);
    for (unsigned i = 0; i < CDB_WORKERS; i++)
        for (unsigned k = 0; k < CDB_KEYS; k++)
            cdb_expect(c, c->w[i], k);
}

/* The differential test: random puts, deletes and gets, a memory bound far below the state,
 * crashes of workers and of the compactor; every read equals the reference map. */
static void cdb_differential(struct fx *f, uint64_t seed, uint64_t *slices)
{
    struct cdb_world c;
    cdb_init(&c, f, seed, 3000);
    for (unsigned step = 1; step <= 120; step++) {
        size_t i = c.w[net_below(c.n, CDB_WORKERS)];
        cdb_ops(&c, i, 1 + (unsigned)net_below(c.n, 12));
        net_rounds(c.n, 8);
        if (step % 40 == 0)
            cdb_check_all(&c);
        if (step % 30 == 10) {
            unsigned wi = (unsigned)net_below(c.n, CDB_WORKERS);
            c.w[wi] = cdb_restart(&c, c.w[wi], ROLE_WORKER, &c.wcfg);
        }
        if (step % 50 == 25)
            c.comp = cdb_restart(&c, c.comp, ROLE_COMPACTOR, &c.ccfg);
    }
    cdb_check_all(&c);
    struct scl_stats st;
    uint64_t evicted = 0, lookups = 0, requests = 0, recovered = 0;
    for (unsigned i = 0; i < CDB_WORKERS; i++) {
        st = stats_of(c.n->e[c.w[i]]);
        evicted += st.lsm_evicted;
        lookups += st.lsm_lookups;
        requests += st.lsm_block_requests;
        recovered += st.recovery_index_generation != 0;
        assert_true(st.lsm_generation > 0);
    }
    st = stats_of(c.n->e[c.comp]);
    print_message("cdb: gen %" PRIu64 " flushes %" PRIu64 " merges %" PRIu64 " blocks %" PRIu64
                  "; workers evicted %" PRIu64 " lookups %" PRIu64 " block requests %" PRIu64
                  " recovered %" PRIu64 "; gets %" PRIu64 " busy %" PRIu64 "\n",
                  st.lsm_generation, st.lsm_flushes, st.lsm_merges, st.lsm_blocks_written,
                  evicted, lookups, requests, recovered, c.gets, c.busy_gets);
    assert_true(st.recovery_index_generation > 0); /* the restarted compactor continued */
    assert_true(st.lsm_flushes > 0);
    assert_true(evicted > 0 && lookups > 0 && requests > 0);
    assert_true(recovered > 0);
    assert_int_equal(st.lsm_flush_skipped, 0);
    *slices = st.lsm_merge_slices;
    cdb_deinit(&c);
}

static void test_cdb_differential(void **state)
{
    uint64_t slices;
    cdb_differential(*state, 7001, &slices);
}

/* The same with a compactor whose cache holds a few blocks: levels are merged a slice at a
 * time, from blocks fetched back from the servers, and every read still equals the
 * reference. */
static void test_cdb_small_cache(void **state)
{
    uint64_t slices;
    g_comp_cache = 4096;
    cdb_differential(*state, 7004, &slices);
    g_comp_cache = 1u << 20;
    assert_true(slices > 0);
}

/* Lying servers: tampered and substituted blocks are refused and reads fall back to honest
 * replicas; an index signed by a worker is refused; a server that hides the newest index from a
 * joining worker does not make it start from a stale checkpoint. */
static void test_cdb_adversary(void **state)
{
    struct fx *f = *state;
    struct cdb_world c;
    cdb_init(&c, f, 7002, 2000);
    for (unsigned step = 0; step < 30; step++) {
        cdb_ops(&c, c.w[step % CDB_WORKERS], 10);
        net_rounds(c.n, 8);
    }
    net_rounds(c.n, 20);
    /* Server 0 tampers with blocks, server 1 substitutes them: reads still agree. */
    c.n->s[0].lie = LIE_TAMPER;
    c.n->s[1].lie = LIE_SUBSTITUTE;
    cdb_check_all(&c);
    uint64_t refused = 0;
    for (unsigned i = 0; i < CDB_WORKERS; i++)
        refused += stats_of(c.n->e[c.w[i]]).lsm_blocks_refused;
    assert_true(refused > 0);
    c.n->s[0].lie = c.n->s[1].lie = LIE_NONE;

    /* An index signed by a writer certified as a worker: refused, whatever its generation. */
    size_t a = c.w[0];
    struct scl_stats st0 = stats_of(c.n->e[a]);
    struct fx_writer u = {.by_leader = false};
    fx_writer_keys(&u.keys, 40, f->capsule_key);
    fx_cert_make(f, &u.cert, &u.keys, ROLE_WORKER, &f->owner);
    record_chain_init(&u.chain, f->meta.name);
    size_t size = 0;
    uint8_t *rec = fx_seal_cert(f, &u, &size, NULL);
    inject(c.n, a, rec, size);
    free(rec);
    struct lsm_index fake;
    lsm_index_init(&fake);
    fake.generation = st0.lsm_generation + 1000;
    fake.epoch = 1000;
    size_t cap = record_sealed_size(lsm_index_encoded_size(&fake), REC_LSM_INDEX);
    rec = malloc(cap);
    assert_non_null(rec);
    uint8_t h[HASH_SIZE];
    assert_int_equal(lsm_index_seal(&u.chain, &u.keys, 1u << 30, &fake, rec, cap, &size, h),
                     PSL_OK);
    inject(c.n, a, rec, size);
    free(rec);
    struct scl_stats st = stats_of(c.n->e[a]);
    assert_int_equal(st.lsm_indexes_refused, st0.lsm_indexes_refused + 1);
    assert_int_equal(st.rejected_by[PSL_ERR_CERT_ROLE], st0.rejected_by[PSL_ERR_CERT_ROLE] + 1);
    assert_int_equal(st.lsm_generation, st0.lsm_generation);
    writer_keys_deinit(&u.keys);

    /* Server 2 hides the compactor's records after an early index: a new worker still joins
     * from the newest one (heads and tails come from n - k + 1 servers, the newest wins). */
    const struct pub *first_index = NULL;
    for (size_t k = 0; k < c.n->logn && !first_index; k++)
        if (c.n->log[k].engine == c.comp && c.n->log[k].type == REC_LSM_INDEX)
            first_index = &c.n->log[k];
    assert_non_null(first_index);
    c.n->s[2].lie = LIE_STALE;
    memcpy(c.n->s[2].stale_writer, c.n->cert[c.comp].writer_id, HASH_SIZE);
    c.n->s[2].stale_max = first_index->seq;
    uint64_t newest = stats_of(c.n->e[c.comp]).lsm_generation;
    assert_true(newest > 1);
    net_rounds(c.n, 10);
    size_t j = net_add_engine(c.n, c.next_seed++, ROLE_WORKER, &c.wcfg);
    cdb_wait_ready(&c, j);
    st = stats_of(c.n->e[j]);
    assert_true(st.recovery_index_generation >= newest);
    c.w[0] = j;
    cdb_check_all(&c);
    c.n->s[2].lie = LIE_NONE;
    cdb_deinit(&c);
}

/* ---- collection (issue 7): storage servers drop what a compactor's checkpoint covers ---- */

/* Records of this type a server holds. */
static size_t srv_count(const struct srv_model *s, uint8_t type)
{
    size_t k = 0;
    for (size_t w = 0; w < s->nw; w++)
        for (size_t q = 1; q < s->w[w].cap; q++)
            k += s->w[w].rec[q] && s->w[w].rec[q][5] == type;
    return k;
}

/* Distinct records of this type the engines published (re-sends counted once). */
static size_t log_unique(const struct net *n, uint8_t type)
{
    size_t k = 0;
    for (size_t i = 0; i < n->logn; i++) {
        if (n->log[i].type != type)
            continue;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = !(n->log[j].engine == n->log[i].engine && n->log[j].seq == n->log[i].seq);
        k += first;
    }
    return k;
}

static void cdb_expect_every_key(struct cdb_world *c, size_t i)
{
    for (unsigned k = 0; k < CDB_KEYS; k++)
        cdb_expect(c, i, k);
}

/* Delivers a record to every server (as if published). */
static void srv_inject_all(struct net *n, const uint8_t *rec, size_t size)
{
    for (size_t si = 0; si < FX_SERVERS; si++)
        srv_on_record(n, &n->s[si], rec, size);
}

/* Workers, a coordinator and a compactor over several epochs with restarts, then two joining
 * workers (one configured without checkpoint recovery). Returns the world for more checks. */
static void cdb_collect_run(struct cdb_world *c, struct fx *f, uint8_t retention, uint64_t seed,
                            size_t *written, size_t *held_max)
{
    fx_set_retention(f, retention);
    cdb_init(c, f, seed, 3000);
    for (unsigned step = 1; step <= 90; step++) {
        size_t i = c->w[net_below(c->n, CDB_WORKERS)];
        cdb_ops(c, i, 1 + (unsigned)net_below(c->n, 12));
        net_rounds(c->n, 8);
        if (step % 30 == 10) {
            unsigned wi = (unsigned)net_below(c->n, CDB_WORKERS);
            c->w[wi] = cdb_restart(c, c->w[wi], ROLE_WORKER, &c->wcfg);
        }
        if (step == 45)
            c->comp = cdb_restart(c, c->comp, ROLE_COMPACTOR, &c->ccfg);
    }
    cdb_check_all(c);
    net_rounds(c->n, 60); /* the last epochs' indexes and notices land */
    *written = log_unique(c->n, REC_DATA);
    *held_max = 0;
    for (size_t si = 0; si < FX_SERVERS; si++) {
        size_t held = srv_count(&c->n->s[si], REC_DATA);
        if (held > *held_max)
            *held_max = held;
    }
    struct scl_stats cst = stats_of(c->n->e[c->comp]);
    print_message("collect(%s): DATA written %zu, most held by a server %zu; notices %zu, "
                  "applied %" PRIu64 ", collected %" PRIu64 " records; index gen %" PRIu64 "\n",
                  retention ? "collect" : "keep-all", *written, *held_max,
                  log_unique(c->n, REC_CHECKPOINT), c->n->s[0].ck_applied, c->n->s[0].collected,
                  cst.lsm_generation);
    assert_int_equal(cst.lsm_flush_skipped, 0);
    /* A notice per index in a collecting capsule; none in a keep-all one (nobody would act on
     * it). */
    if (retention)
        assert_true(log_unique(c->n, REC_CHECKPOINT) > 3);
    else
        assert_int_equal(log_unique(c->n, REC_CHECKPOINT), 0);

    /* A new worker joins and reads every key as the reference says; so does one configured for
     * a full replay (a collecting capsule makes it join from the checkpoint). */
    size_t j = net_add_engine(c->n, c->next_seed++, ROLE_WORKER, &c->wcfg);
    cdb_wait_ready(c, j);
    cdb_expect_every_key(c, j);
    assert_true(stats_of(c->n->e[j]).recovery_index_generation > 0);
    struct scl_config full = c->wcfg;
    full.checkpoint_recovery = false;
    size_t k = net_add_engine(c->n, c->next_seed++, ROLE_WORKER, &full);
    cdb_wait_ready(c, k);
    net_rounds(c->n, 60); /* a full replay answers at once (from what it has): let it catch up */
    cdb_expect_every_key(c, k);
    assert_true((stats_of(c->n->e[k]).recovery_index_generation > 0) ==
                (retention == RETENTION_COLLECT_COVERED));
    c->w[0] = j;
    c->w[1] = k;
    cdb_check_all(c);
}

static void test_cdb_collect(void **state)
{
    struct fx *f = *state;
    struct cdb_world c;
    size_t written, held;
    cdb_collect_run(&c, f, RETENTION_COLLECT_COVERED, 7101, &written, &held);
    struct net *n = c.n;
    /* The servers hold a small fraction of the log: at most a few records per writer past its
     * head in the newest checkpoint. */
    assert_true(written >= 100);
    assert_true(held * 4 < written);
    for (size_t si = 0; si < FX_SERVERS; si++) {
        assert_true(n->s[si].ck_applied > 3);
        assert_true(n->s[si].collected > written / 2);
        assert_int_equal(n->s[si].ck_refused, 0);
    }

    /* A CHECKPOINT signed by a worker, claiming a huge generation and far heads: refused,
     * nothing collected, nothing stored. */
    size_t before_collected = n->s[0].collected, before_data = srv_count(&n->s[0], REC_DATA);
    uint64_t before_gen = n->s[0].ck_gen;
    size_t wi = c.w[2];
    struct fx_writer u = {.by_leader = false};
    u.keys = n->clone[wi];
    u.cert = n->cert[wi];
    u.chain.seq = log_last_seq(n, wi);
    memcpy(u.chain.capsule, f->meta.name, HASH_SIZE);
    memcpy(u.chain.head, log_find(n, wi, u.chain.seq)->hash, HASH_SIZE);
    struct checkpoint_head h[1];
    memcpy(h[0].writer, n->cert[c.w[0]].writer_id, HASH_SIZE);
    h[0].seq = log_last_seq(n, c.w[0]);
    memcpy(h[0].hash, log_find(n, c.w[0], h[0].seq)->hash, HASH_SIZE);
    struct checkpoint cp = {
        .index_seq = 2, .generation = before_gen + 1000, .head_count = 1, .heads = h};
    uint8_t pl[512];
    struct wr w;
    wr_init(&w, pl, sizeof pl);
    assert_int_equal(checkpoint_encode(&cp, &w), PSL_OK);
    size_t size;
    uint8_t *rec = fx_seal(&u, REC_CHECKPOINT, pl, w.pos, &size, NULL);
    srv_inject_all(n, rec, size);
    free(rec);
    for (size_t si = 0; si < FX_SERVERS; si++) {
        assert_int_equal(n->s[si].ck_refused, 1);
        assert_true(n->s[si].ck_gen == before_gen);
    }
    assert_int_equal(n->s[0].collected, before_collected);
    assert_int_equal(srv_count(&n->s[0], REC_DATA), before_data);

    /* A stale notice, properly signed by the compactor (generation 1): nothing more collected. */
    size_t ci = c.comp;
    struct fx_writer comp = {.by_leader = false};
    comp.keys = n->clone[ci];
    comp.cert = n->cert[ci];
    comp.chain.seq = log_last_seq(n, ci) + 1; /* past its chain: the model checks no link */
    memcpy(comp.chain.capsule, f->meta.name, HASH_SIZE);
    memset(comp.chain.head, 0x77, HASH_SIZE);
    cp.generation = 1;
    cp.index_seq = comp.chain.seq;
    wr_init(&w, pl, sizeof pl);
    assert_int_equal(checkpoint_encode(&cp, &w), PSL_OK);
    rec = fx_seal(&comp, REC_CHECKPOINT, pl, w.pos, &size, NULL);
    uint64_t stale0 = n->s[0].ck_stale;
    srv_inject_all(n, rec, size);
    free(rec);
    assert_int_equal(n->s[0].ck_stale, stale0 + 1);
    assert_int_equal(n->s[0].collected, before_collected);
    assert_int_equal(srv_count(&n->s[0], REC_DATA), before_data);
    cdb_deinit(&c);
}

static void test_cdb_keep_all(void **state)
{
    struct fx *f = *state;
    struct cdb_world c;
    size_t written, held;
    cdb_collect_run(&c, f, RETENTION_KEEP_ALL, 7101, &written, &held);
    for (size_t si = 0; si < FX_SERVERS; si++) {
        assert_int_equal(srv_count(&c.n->s[si], REC_DATA), log_unique(c.n, REC_DATA));
        /* No notices in a keep-all capsule (servers that get one anyway ignore it: see
         * test_capsuled_gc and test_store_collect_keep_all). */
        assert_int_equal(srv_count(&c.n->s[si], REC_CHECKPOINT), 0);
        assert_int_equal(c.n->s[si].collected, 0);
    }
    cdb_deinit(&c);
}

/* Seqs engine i published after its newest record of type t (re-sends counted once). */
static uint64_t records_after_last(const struct net *n, size_t i, uint8_t t)
{
    uint64_t last_t = 0, last = 0;
    for (size_t k = 0; k < n->logn; k++) {
        if (n->log[k].engine != i)
            continue;
        if (n->log[k].seq > last)
            last = n->log[k].seq;
        if (n->log[k].type == t && n->log[k].seq > last_t)
            last_t = n->log[k].seq;
    }
    return last - last_t;
}

/* The acknowledgements to engine keep_engine are lost (keep_flag): for the compactor, its blocks
 * reach the servers, but the index after them stays held until they are durable. */
static bool keep_no_acks_to(struct net *n, const struct msg *m)
{
    return !(n->keep_flag && m->kind == M_ACK && m->dst == n->keep_engine);
}

/* Sets the reference map to last-writer-wins over every DATA record published (decrypted with
 * the test's copies of the keys). cdb_ops records the order in which the test issued its puts;
 * that is the LWW order only when each worker saw the previous worker's records before writing
 * (a few rounds between them). Workers writing without a round in between are concurrent: the
 * greater (lamport, writer) wins, whatever the test's order. */
static void cdb_ref_from_log(struct cdb_world *c)
{
    struct model *m = model_from_log(c->n);
    for (unsigned k = 0; k < CDB_KEYS; k++) {
        char key[16];
        cdb_key(key, k);
        free(c->ref[k]);
        c->ref[k] = NULL;
        for (size_t q = 0; q < m->n; q++)
            if (strcmp(m->e[q].key, key) == 0 && !m->e[q].del)
                c->ref[k] = strdup(m->e[q].val);
    }
    free(m);
}

/* The compactor's newest published index lies further back from its head than the first tail
 * probe (the blocks of a flush whose index waits for their acknowledgements): a joining worker
 * asks for the longer tail and still starts from that index, not from a full replay. Once the
 * acknowledgements flow again, it reads every key as the live workers do. The three workers
 * write the same keys in one step without exchanging records, so the expected values come from
 * last-writer-wins over the log (cdb_ref_from_log), not from the order of the test's puts: with
 * that order as the reference, every engine, the joiner first, "reads a key one version old"
 * (key0002: .3, stamped 540, beats .4, stamped 516 by a worker that had not seen it yet). */
static void test_cdb_index_behind_probe(void **state)
{
    struct fx *f = *state;
    struct cdb_world c;
    cdb_init(&c, f, 7003, 2000);
    for (unsigned step = 0; step < 12; step++) {
        cdb_ops(&c, c.w[step % CDB_WORKERS], 10);
        net_rounds(c.n, 8);
    }
    net_rounds(c.n, 40);
    uint64_t published = stats_of(c.n->e[c.comp]).lsm_generation;
    assert_true(published >= 1);
    /* Start right after an index (this capsule is keep-all: no CHECKPOINT notices follow it).
     * In a collecting capsule the notice would be held until its index is durable, and nothing
     * of the compactor is published after a held record. */
    for (unsigned r = 0; r < 200 && records_after_last(c.n, c.comp, REC_LSM_INDEX) != 0; r++)
        (void)net_round(c.n);
    assert_int_equal(records_after_last(c.n, c.comp, REC_LSM_INDEX), 0);
    published = stats_of(c.n->e[c.comp]).lsm_generation;
    c.n->keep = keep_no_acks_to;
    c.n->keep_engine = c.comp;
    c.n->keep_flag = true;
    for (unsigned step = 0; step < 30 && records_after_last(c.n, c.comp, REC_LSM_INDEX) < 8;
         step++) {
        for (unsigned w = 0; w < CDB_WORKERS; w++)
            cdb_ops(&c, c.w[w], 100); /* one epoch's flush of many small blocks */
        net_rounds(c.n, 8);
    }
    /* At least the first probe's length (RECOVERY_PROBE, 8 records in src/scl/engine.c). */
    assert_true(records_after_last(c.n, c.comp, REC_LSM_INDEX) >= 8);
    size_t j = net_add_engine(c.n, c.next_seed++, ROLE_WORKER, &c.wcfg);
    cdb_wait_ready(&c, j);
    assert_int_equal(stats_of(c.n->e[j]).recovery_index_generation, published);
    cdb_ref_from_log(&c); /* no puts after this point */
    /* Still inside the window: the next index is held, so the joiner's state is the published
     * index plus what it replayed after that index's heads; nothing newer can mask a record it
     * skipped or lost. */
    cdb_check_all(&c);
    cdb_expect_every_key(&c, j);
    assert_int_equal(stats_of(c.n->e[j]).lsm_generation, published);
    c.n->keep_flag = false;
    net_rounds(c.n, 400); /* acknowledgements flow again: re-sends after their back-off */
    assert_true(stats_of(c.n->e[j]).lsm_generation > published);
    cdb_check_all(&c);
    cdb_expect_every_key(&c, j);
    cdb_deinit(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_checks_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacked_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convergence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_lost_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_server_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epochs_without_coordinator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_long_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_bad_prev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_fetch_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_loss_without_coordinator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_loss_healed_by_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_heads_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_adoption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_head_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_far_seq_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bytes_over_record_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_differential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_small_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_adversary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_collect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_keep_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cdb_index_behind_probe, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
