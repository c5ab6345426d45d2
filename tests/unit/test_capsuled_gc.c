/* test_capsuled_gc.c: collection and ACKs in a real psl-capsuled server (src/capsuled/server.c
 * over LMDB) on the in-process bus, fed sealed records of fixture writers. ACKs: each of 70
 * writers (more than the first key arena holds) gets an ACK whose MAC verifies under its own key
 * only and whose signature verifies for anyone; after a restart past the writers'
 * certificates, a re-sent record is acknowledged again under the same key while a new record is
 * refused as expired. Collection: a compactor's CHECKPOINT drops
 * what it covers in a collecting capsule, and only then; one signed by a worker is refused and
 * changes nothing; a stale one collects nothing more, also after a restart; records below a
 * collected horizon are not stored again; a range request that reaches below the horizon gets
 * the checkpoint first; the counters reach the Prometheus output. Wall time is pinned to the
 * fixture's "now" (certificate windows); waits poll the server's counters with a deadline. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "capsule_fixture.h"

#include "base/clock.h"
#include "capsule/ack.h"
#include "capsule/checkpoint.h"
#include "capsule/proto.h"
#include "capsuled/server.h"
#include "fabric/fabric.h"

static uint64_t real_mono_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic uint64_t g_wall_ms = FX_NOW;

static uint64_t fixed_wall_ms(void *ctx)
{
    (void)ctx;
    return g_wall_ms;
}

static const struct clock_source g_clock = {.mono_ns = real_mono_ns, .wall_ms = fixed_wall_ms};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the world: a fixture capsule, a compactor writer, one server on a bus ---- */

struct world {
    struct fx fx;
    struct fx_writer comp; /* certified as compactor */
    struct inproc_bus *bus;
    struct fabric *srv_fab, *cli_fab;
    struct capsuled *srv;
    char dir[64];
    char t_rec[FABRIC_TOPIC_SIZE_MAX];
    /* replies to our GET_RANGE */
    pthread_mutex_t mu;
    uint8_t *reply;
    size_t reply_size;
};

/* Re-signs the fixture for retention (a new capsule name) and certifies every writer again. */
static void world_capsule(struct world *wd, uint8_t retention)
{
    struct fx *f = &wd->fx;
    f->meta.retention = retention;
    assert_int_equal(meta_sign(&f->meta, &f->owner), PSL_OK);
    assert_int_equal(meta_encode(&f->meta, f->meta_enc, sizeof f->meta_enc, &f->meta_size), PSL_OK);
    static const uint8_t roles[3] = {ROLE_WORKER, ROLE_WORKER, ROLE_COORDINATOR};
    for (unsigned i = 0; i < 3; i++) {
        record_chain_init(&f->w[i].chain, f->meta.name);
        fx_cert_make(f, &f->w[i].cert, &f->w[i].keys, roles[i], &f->owner);
    }
    record_chain_init(&wd->comp.chain, f->meta.name);
    fx_cert_make(f, &wd->comp.cert, &wd->comp.keys, ROLE_COMPACTOR, &f->owner);
    topic_capsule(wd->t_rec, f->meta.name, "rec", NULL);
}

static void server_start(struct world *wd)
{
    struct capsuled_config cfg = {.data_dir = wd->dir,
                                  .key = &wd->fx.servers[0],
                                  .fabric = wd->srv_fab,
                                  .anti_entropy_ms = 0};
    assert_int_equal(capsuled_start(&wd->srv, &cfg), PSL_OK);
}

static int world_setup(void **state)
{
    struct world *wd = calloc(1, sizeof *wd);
    if (!wd)
        return -1;
    fx_init(&wd->fx);
    g_wall_ms = FX_NOW;
    clock_set_source(&g_clock);
    fx_writer_keys(&wd->comp.keys, 30, wd->fx.capsule_key);
    snprintf(wd->dir, sizeof wd->dir, "/tmp/psl-gc-XXXXXX");
    assert_non_null(mkdtemp(wd->dir));
    assert_int_equal(inproc_bus_create(&wd->bus, 64u << 20), PSL_OK);
    assert_int_equal(fabric_inproc_connect(wd->bus, &wd->srv_fab), PSL_OK);
    assert_int_equal(fabric_inproc_connect(wd->bus, &wd->cli_fab), PSL_OK);
    pthread_mutex_init(&wd->mu, NULL);
    *state = wd;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *wd = *state;
    capsuled_stop(wd->srv);
    fabric_destroy(wd->cli_fab);
    fabric_destroy(wd->srv_fab);
    inproc_bus_destroy(wd->bus);
    tu_dir_remove(wd->dir);
    writer_keys_deinit(&wd->comp.keys);
    fx_deinit(&wd->fx);
    clock_set_source(NULL);
    pthread_mutex_destroy(&wd->mu);
    free(wd->reply);
    free(wd);
    return 0;
}

static void publish(struct world *wd, uint8_t *rec, size_t size)
{
    assert_int_equal(fabric_publish(wd->cli_fab, wd->t_rec, rec, size), PSL_OK);
    free(rec);
}

static struct capsuled_stats stats(struct world *wd)
{
    struct capsuled_stats st;
    capsuled_get_stats(wd->srv, &st);
    return st;
}

/* Waits until the server has processed `count` record messages (received, from the topic). */
static void wait_received(struct world *wd, uint64_t count)
{
    for (unsigned i = 0; i < 1000 && stats(wd).received < count; i++)
        sleep_ms(5);
    assert_true(stats(wd).received >= count);
    /* The handler returns after queueing; give the group commit a moment to finish. */
    for (unsigned i = 0; i < 200; i++) {
        struct capsuled_stats st = stats(wd);
        uint64_t done = st.accepted + st.duplicates + st.below_horizon + st.checkpoints_refused;
        for (unsigned r = 0; r < PSL_ERR__COUNT; r++)
            done += r == PSL_ERR_CERT_ROLE ? 0 : st.rejected[r];
        if (done >= count)
            break;
        sleep_ms(5);
    }
}

static uint64_t sent;

static uint64_t checkpoints_seen(struct world *wd)
{
    struct capsuled_stats st = stats(wd);
    return st.checkpoints_applied + st.checkpoints_stale + st.checkpoints_kept +
           st.checkpoints_refused;
}

/* Publishes a record and waits until the server is done with it (for a CHECKPOINT: until its
 * outcome is counted, which comes after the collection's commit). */
static void send(struct world *wd, uint8_t *rec, const size_t *size)
{
    bool ck = rec[5] == REC_CHECKPOINT;
    uint64_t before = ck ? checkpoints_seen(wd) : 0;
    publish(wd, rec, *size); /* size by pointer: it is written by the call that makes rec */
    wait_received(wd, ++sent);
    for (unsigned i = 0; ck && i < 1000 && checkpoints_seen(wd) == before; i++)
        sleep_ms(5);
    assert_true(!ck || checkpoints_seen(wd) == before + 1);
}

/* A checkpoint record sealed by w: index at index_seq, one head (writer, seq, hash). */
static uint8_t *seal_checkpoint(struct fx_writer *w, uint64_t index_seq, uint64_t gen,
                                const uint8_t writer[HASH_SIZE], uint64_t seq,
                                const uint8_t hash[HASH_SIZE], size_t *size, uint8_t *rec_hash)
{
    struct checkpoint_head h;
    memcpy(h.writer, writer, HASH_SIZE);
    h.seq = seq;
    memcpy(h.hash, hash, HASH_SIZE);
    struct checkpoint cp = {
        .index_seq = index_seq, .generation = gen, .head_count = 1, .heads = &h};
    memset(cp.index_hash, 0x11, HASH_SIZE);
    uint8_t pl[256];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    assert_int_equal(checkpoint_encode(&cp, &wr), PSL_OK);
    return fx_seal(w, REC_CHECKPOINT, pl, wr.pos, size, rec_hash);
}

/* ---- replies ---- */

static void on_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct world *wd = ctx;
    pthread_mutex_lock(&wd->mu);
    free(wd->reply);
    wd->reply = malloc(size);
    if (wd->reply)
        memcpy(wd->reply, data, size);
    wd->reply_size = wd->reply ? size : 0;
    pthread_mutex_unlock(&wd->mu);
}

/* Asks the server for writer's records from..to; returns the seqs and types in order. */
static size_t get_range(struct world *wd, const uint8_t writer[HASH_SIZE], uint64_t from,
                        uint64_t to, uint64_t *seqs, uint8_t *types, size_t cap)
{
    struct proto_req q = {.type = REQ_GET_RANGE, .request_id = 77, .from = from, .to = to};
    memset(q.requester, 0x3c, HASH_SIZE);
    memcpy(q.capsule, wd->fx.meta.name, HASH_SIZE);
    memcpy(q.writer, writer, HASH_SIZE);
    char rhex[2 * HASH_SIZE + 1], t_rep[FABRIC_TOPIC_SIZE_MAX], t_req[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(rhex, q.requester, HASH_SIZE);
    topic_capsule(t_rep, wd->fx.meta.name, "rep", rhex);
    topic_capsule(t_req, wd->fx.meta.name, "req", NULL);
    uint64_t sub;
    assert_int_equal(fabric_subscribe(wd->cli_fab, t_rep, on_reply, wd, &sub), PSL_OK);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, buf);
    assert_int_equal(fabric_publish(wd->cli_fab, t_req, buf, n), PSL_OK);
    size_t count = 0;
    for (unsigned i = 0; i < 1000; i++) {
        pthread_mutex_lock(&wd->mu);
        bool got = wd->reply != NULL;
        pthread_mutex_unlock(&wd->mu);
        if (got)
            break;
        sleep_ms(5);
    }
    fabric_unsubscribe(wd->cli_fab, sub);
    pthread_mutex_lock(&wd->mu);
    struct proto_reply r;
    assert_non_null(wd->reply);
    assert_int_equal(proto_reply_open(&r, wd->reply, wd->reply_size), PSL_OK);
    assert_int_equal(r.status, REP_OK);
    struct proto_rec_iter it;
    assert_int_equal(proto_rec_iter_init(&it, r.body, r.body_size), PSL_OK);
    const uint8_t *rec;
    size_t rs;
    psl_err err;
    while (proto_rec_iter_next(&it, &rec, &rs, &err) && count < cap) {
        struct record_header h;
        assert_int_equal(record_header_decode(&h, rec, rs), PSL_OK);
        seqs[count] = h.seq;
        types[count] = h.type;
        count++;
    }
    free(wd->reply);
    wd->reply = NULL;
    pthread_mutex_unlock(&wd->mu);
    return count;
}

/* ---- tests ---- */

/* A fresh capsule of that retention, served by a fresh server. */
static void world_serve(struct world *wd, uint8_t retention)
{
    sent = 0;
    world_capsule(wd, retention);
    server_start(wd);
    assert_int_equal(capsuled_serve(wd->srv, wd->fx.meta_enc, wd->fx.meta_size), PSL_OK);
}

/* W0 writes CERT + 9 DATA (seq 1..10); the compactor writes CERT, an index (seq 2) and its
 * checkpoint (seq 3) listing W0 at seq 8. */
static void test_collect_in_server(void **state)
{
    struct world *wd = *state;
    struct fx *f = &wd->fx;
    world_serve(wd, RETENTION_COLLECT_COVERED);
    struct fx_writer *w0 = &f->w[FX_W0], *w1 = &f->w[FX_W1];
    uint8_t h0[11][HASH_SIZE];
    size_t size;
    send(wd, fx_seal_cert(f, w0, &size, h0[1]), &size);
    for (unsigned s = 2; s <= 10; s++)
        send(wd, fx_seal_data(w0, 2, s, &size, h0[s]), &size);
    assert_int_equal(stats(wd).accepted, 10);

    /* A worker's checkpoint: refused (role), not stored, nothing collected. */
    send(wd, fx_seal_cert(f, w1, &size, NULL), &size);
    send(wd, fx_seal(w1, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    uint8_t wck[HASH_SIZE];
    send(wd, seal_checkpoint(w1, 2, 100, w0->keys.writer_id, 10, h0[10], &size, wck), &size);
    struct capsuled_stats st = stats(wd);
    assert_int_equal(st.checkpoints_refused, 1);
    assert_int_equal(st.rejected[PSL_ERR_CERT_ROLE], 1);
    assert_int_equal(st.checkpoints_applied, 0);
    assert_int_equal(st.collected_records, 0);

    /* The compactor's checkpoint of generation 3: W0's seq 2..7 go; 1 and 8..10 stay. */
    send(wd, fx_seal_cert(f, &wd->comp, &size, NULL), &size);
    send(wd, fx_seal(&wd->comp, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    uint8_t ck3[HASH_SIZE];
    send(wd, seal_checkpoint(&wd->comp, 2, 3, w0->keys.writer_id, 8, h0[8], &size, ck3), &size);
    st = stats(wd);
    assert_int_equal(st.checkpoints_applied, 1);
    assert_int_equal(st.collected_records, 6);
    assert_true(st.collected_bytes > 6 * PSL_RECORD_HEADER_SIZE);

    uint64_t seqs[16];
    uint8_t types[16];
    size_t n = get_range(wd, w0->keys.writer_id, 1, 10, seqs, types, 16);
    /* from 1 reaches below the horizon (8): the checkpoint comes first, then what is stored. */
    assert_int_equal(n, 5);
    assert_int_equal(types[0], REC_CHECKPOINT);
    assert_true(seqs[1] == 1 && seqs[2] == 8 && seqs[3] == 9 && seqs[4] == 10);
    n = get_range(wd, w0->keys.writer_id, 9, 10, seqs, types, 16);
    assert_int_equal(n, 2); /* above the horizon: just the records */
    assert_true(seqs[0] == 9 && types[0] == REC_DATA);

    /* A stale checkpoint (generation 2 < 3) collects nothing more. */
    send(wd, fx_seal(&wd->comp, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    send(wd, seal_checkpoint(&wd->comp, 4, 2, w0->keys.writer_id, 10, h0[10], &size, NULL), &size);
    st = stats(wd);
    assert_int_equal(st.checkpoints_stale, 1);
    assert_int_equal(st.collected_records, 6);
    n = get_range(wd, w0->keys.writer_id, 8, 10, seqs, types, 16);
    assert_int_equal(n, 3);

    /* A re-sent record below the horizon is acknowledged, not stored again. */
    w0->chain.seq = 2;
    memcpy(w0->chain.head, h0[2], HASH_SIZE);
    uint8_t again[HASH_SIZE];
    send(wd, fx_seal_data(w0, 2, 3, &size, again), &size);
    assert_memory_equal(again, h0[3], HASH_SIZE); /* the same record */
    assert_int_equal(stats(wd).below_horizon, 1);
    n = get_range(wd, w0->keys.writer_id, 3, 3, seqs, types, 16);
    assert_int_equal(n, 1);
    assert_int_equal(types[0], REC_CHECKPOINT);

    char text[8192];
    size_t tl = capsuled_metrics(wd->srv, text, sizeof text);
    assert_true(tl < sizeof text);
    text[tl] = 0;
    assert_non_null(strstr(text, "psl_capsuled_collected_records_total 6\n"));
    assert_non_null(strstr(text, "psl_capsuled_checkpoints_total{outcome=\"applied\"} 1\n"));
    assert_non_null(strstr(text, "psl_capsuled_checkpoints_total{outcome=\"refused\"} 1\n"));
    assert_non_null(strstr(text, "psl_capsuled_checkpoints_total{outcome=\"stale\"} 1\n"));
    assert_non_null(strstr(text, "psl_capsuled_below_horizon_total 1\n"));

    /* After a restart the server still knows generation 3: a generation-3 notice is stale. */
    capsuled_stop(wd->srv);
    wd->srv = NULL;
    server_start(wd);
    size_t served = 0;
    assert_int_equal(capsuled_serve_stored(wd->srv, &served), PSL_OK);
    assert_int_equal(served, 1);
    sent = 0;
    send(wd, fx_seal(&wd->comp, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    send(wd, seal_checkpoint(&wd->comp, 6, 3, w0->keys.writer_id, 10, h0[10], &size, NULL), &size);
    st = stats(wd);
    assert_int_equal(st.checkpoints_stale, 1);
    assert_int_equal(st.checkpoints_applied, 0);
    n = get_range(wd, w0->keys.writer_id, 8, 10, seqs, types, 16);
    assert_int_equal(n, 3);
    /* A newer one applies: W0's head moves to 10. */
    send(wd, fx_seal(&wd->comp, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    send(wd, seal_checkpoint(&wd->comp, 8, 4, w0->keys.writer_id, 10, h0[10], &size, NULL), &size);
    st = stats(wd);
    assert_int_equal(st.checkpoints_applied, 1);
    assert_int_equal(st.collected_records, 2);
    n = get_range(wd, w0->keys.writer_id, 10, 10, seqs, types, 16);
    assert_int_equal(n, 1);
}

/* A keep-all capsule: the checkpoint is stored like any record and nothing is dropped. */
static void test_keep_all_in_server(void **state)
{
    struct world *wd = *state;
    struct fx *f = &wd->fx;
    world_serve(wd, RETENTION_KEEP_ALL);
    struct fx_writer *w0 = &f->w[FX_W0];
    uint8_t h0[11][HASH_SIZE];
    size_t size;
    send(wd, fx_seal_cert(f, w0, &size, h0[1]), &size);
    for (unsigned s = 2; s <= 10; s++)
        send(wd, fx_seal_data(w0, 2, s, &size, h0[s]), &size);
    send(wd, fx_seal_cert(f, &wd->comp, &size, NULL), &size);
    send(wd, fx_seal(&wd->comp, REC_LSM_INDEX, "0123456789abcdefXYZ", 19, &size, NULL), &size);
    send(wd, seal_checkpoint(&wd->comp, 2, 3, w0->keys.writer_id, 10, h0[10], &size, NULL), &size);
    struct capsuled_stats st = stats(wd);
    assert_int_equal(st.checkpoints_kept, 1);
    assert_int_equal(st.checkpoints_applied, 0);
    assert_int_equal(st.collected_records, 0);
    assert_int_equal(st.accepted, 13); /* the checkpoint is stored too */
    uint64_t seqs[16];
    uint8_t types[16];
    size_t n = get_range(wd, w0->keys.writer_id, 1, 10, seqs, types, 16);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_true(seqs[i] == i + 1);
}

/* ---- ACKs ---- */

#define ACK_WRITERS 70u

struct ack_box {
    pthread_mutex_t mu;
    struct ack got[ACK_WRITERS]; /* the newest ACK per writer index (seq 0: none) */
    unsigned count;
    const struct fx_writer *w;
};

static void on_ack_msg(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct ack_box *b = ctx;
    struct ack a;
    assert_int_equal(ack_decode(&a, data, size), PSL_OK);
    pthread_mutex_lock(&b->mu);
    for (unsigned i = 0; i < ACK_WRITERS; i++)
        if (!memcmp(b->w[i].keys.writer_id, a.writer, HASH_SIZE)) {
            if (a.seq > b->got[i].seq)
                b->got[i] = a;
            b->count++;
        }
    pthread_mutex_unlock(&b->mu);
}

static uint64_t acked_seq(struct ack_box *b, unsigned i, struct ack *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->got[i];
    pthread_mutex_unlock(&b->mu);
    return out->seq;
}

static void wait_acked(struct ack_box *b, unsigned i, uint64_t seq)
{
    struct ack a;
    for (unsigned t = 0; t < 2000 && acked_seq(b, i, &a) < seq; t++)
        sleep_ms(5);
    assert_true(a.seq == seq);
}

static void test_acks_in_server(void **state)
{
    struct world *wd = *state;
    struct fx *f = &wd->fx;
    world_serve(wd, RETENTION_KEEP_ALL);
    static struct fx_writer w[ACK_WRITERS];
    static uint8_t hash[ACK_WRITERS][3][HASH_SIZE];
    static struct ack_box box;
    memset(&box, 0, sizeof box);
    pthread_mutex_init(&box.mu, NULL);
    box.w = w;
    char t_ack[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(t_ack, f->meta.name, "ack", NULL);
    strcat(t_ack, ".*");
    uint64_t sub;
    assert_int_equal(fabric_subscribe(wd->cli_fab, t_ack, on_ack_msg, &box, &sub), PSL_OK);
    size_t size;
    for (unsigned i = 0; i < ACK_WRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        fx_writer_keys(&w[i].keys, 200 + i, f->capsule_key);
        record_chain_init(&w[i].chain, f->meta.name);
        fx_cert_make(f, &w[i].cert, &w[i].keys, ROLE_WORKER, &f->owner);
        send(wd, fx_seal_cert(f, &w[i], &size, hash[i][1]), &size);
        send(wd, fx_seal_data(&w[i], 1, i, &size, hash[i][2]), &size);
    }
    struct ack_keys other;
    assert_int_equal(ack_keys_init(&other, &f->w[FX_W0].keys.kx, &f->meta), PSL_OK);
    for (unsigned i = 0; i < ACK_WRITERS; i++) {
        wait_acked(&box, i, 2);
        struct ack a;
        (void)acked_seq(&box, i, &a);
        assert_memory_equal(a.record_hash, hash[i][2], HASH_SIZE);
        assert_memory_equal(a.server_pk, f->servers[0].pk, SIGN_PK_SIZE);
        struct ack_keys ks;
        assert_int_equal(ack_keys_init(&ks, &w[i].keys.kx, &f->meta), PSL_OK);
        int idx = -1;
        assert_int_equal(ack_verify_mac(&a, &f->meta, &ks, &idx), PSL_OK);
        assert_int_equal(idx, 0);
        assert_int_equal(ack_verify(&a, &f->meta), PSL_OK);
        /* Another writer's keys do not verify it. */
        assert_int_equal(ack_verify_mac(&a, &f->meta, &other, &idx), PSL_ERR_BAD_MAC);
        ack_keys_free(&ks);
    }
    ack_keys_free(&other);
    assert_int_equal(stats(wd).acks_unkeyed, 0);

    /* Restart after every certificate expired: a re-sent record (the writer lost its ACK) is
     * acknowledged again under the same key; a new record is refused. */
    capsuled_stop(wd->srv);
    wd->srv = NULL;
    g_wall_ms = FX_CERT_NA + FX_HOUR_MS;
    server_start(wd);
    assert_int_equal(capsuled_serve(wd->srv, f->meta_enc, f->meta_size), PSL_OK);
    pthread_mutex_lock(&box.mu);
    box.got[5].seq = 0;
    box.got[6].seq = 0;
    pthread_mutex_unlock(&box.mu);
    sent = 0;
    uint8_t *again = fx_seal_data(&w[5], 1, 999, &size, NULL); /* seq 3, never stored: refused */
    send(wd, again, &size);
    assert_int_equal(stats(wd).rejected[PSL_ERR_CERT_EXPIRED], 1);
    w[6].chain.seq = 1; /* re-seal W6's seq 2 exactly: the same bytes */
    memcpy(w[6].chain.head, hash[6][1], HASH_SIZE);
    uint8_t h2[HASH_SIZE];
    uint8_t *dup = fx_seal_data(&w[6], 1, 6, &size, h2);
    assert_memory_equal(h2, hash[6][2], HASH_SIZE);
    send(wd, dup, &size);
    wait_acked(&box, 6, 2);
    struct ack a;
    (void)acked_seq(&box, 6, &a);
    struct ack_keys ks;
    assert_int_equal(ack_keys_init(&ks, &w[6].keys.kx, &f->meta), PSL_OK);
    int idx;
    assert_int_equal(ack_verify_mac(&a, &f->meta, &ks, &idx), PSL_OK);
    ack_keys_free(&ks);
    assert_int_equal(acked_seq(&box, 5, &a), 0);
    assert_int_equal(stats(wd).acks_unkeyed, 0);
    fabric_unsubscribe(wd->cli_fab, sub);
    for (unsigned i = 0; i < ACK_WRITERS; i++)
        writer_keys_deinit(&w[i].keys);
    pthread_mutex_destroy(&box.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collect_in_server, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_keep_all_in_server, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_acks_in_server, world_setup, world_teardown),
    };
    return cmocka_run_group_tests_name("capsuled_gc", tests, NULL, NULL);
}
