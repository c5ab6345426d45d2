/* lsm_bench.c: CapsuleDB in the SCL engine (issue 7) with everything real: engines with full
 * crypto, three embedded psl-capsuled storage servers (LMDB, fsync per group commit) on the
 * in-process bus, a coordinator (epochs), a compactor, a writer and a reader worker, each driven
 * by a runner (the threads of scl_host, with the runner exposed so that gets can wait on it).
 * It keeps one invariant: every figure comes from work that was checked (each get's value is
 * compared with the version last written, each recovery ends only when the new engine holds
 * every writer's history up to the heads it had to reach), and each is printed beside a floor
 * measured in the same run.
 *
 * Workload: K keys of 16 bytes, values of 100 bytes; the policy is scaled down (8 KiB blocks,
 * 4 level-0 runs, 512 KiB at level 1, x10) so that this state spans three levels.
 * Phases:
 *   1. fill K/4 keys once (random order), wait until an index covers them; recovery of a new
 *      worker (checkpoint_recovery on) x3: "quarter state, 1x history".
 *   2. fill the other keys, wait; recovery x3 ("1x"), and one full replay (checkpoint off).
 *   3. overwrite every key 9 more times (random order each pass), wait; recovery x3 ("10x"),
 *      full replay x1. Write amplification is taken here.
 *   4. gets on the reader R (memtable_bytes_max 256 KiB, so almost every key was evicted):
 *      epochs paused (no new index meanwhile), hot keys written after the last index (memtable
 *      hits), then every key in random order twice. Each get is classified by the engine's own
 *      counters: no tree lookup = memtable hit; a lookup without a block request = cached block;
 *      a lookup that requested blocks from the servers = cold miss (the first touch of a block:
 *      the reader cache never held it).
 *   5. floors (below), then the servers stop and one server's LMDB is opened for the read floor.
 * Results:
 *   lsm.get_hit_p50_us/p99     floor: memtable_get on a bare memtable of the same keys.
 *   lsm.get_cached_p50_us/p99  floor: lsm_lookup on a warm reader over an in-memory tree (one
 *                              run; the engine's tree has several levels, each may be consulted).
 *   lsm.get_miss_p50_us/p99    floor: bus round trip (request out, block-sized reply back) + one
 *                              LMDB read of a block record + lsm_lookup with an emptied cache
 *                              (copy, hash check, AES-GCM open, block decode).
 *   lsm.write_amplification    bytes the servers stored (store.bytes, unique records of every type:
 *                              DATA, LSM_BLOCK, LSM_INDEX, CERT/EOE/SYNC), mean per server,
 *                              / key+value bytes put. Floor: the DATA records alone (the log that
 *                              must be stored anyway), same normalisation.
 *   lsm.recovery_{quarter_1x,1x,10x}_ms, lsm.recovery_full_replay_{1x,10x}_ms: engine creation
 *                              until scl_is_ready() and every writer (writer, compactor,
 *                              coordinator) is contiguous up to the seq it had sealed at the start.
 *   lsm.recovery.ratio_10x_history = recovery_10x / recovery_1x (target <= 2).
 *   lsm.floor.record_verify_us record_parse + record_check (Ed25519) + record_open of one DATA
 *                              record of one op; lsm.floor.lmdb_read_us store_get of a stored block
 *                              record by hash; lsm.floor.bus_rtt_us; lsm.floor.block_open_us.
 * Two cores run everything (servers, bus, five engines): latencies include wake-ups. */
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "capsuled/server.h"
#include "crypto/crypto.h"
#include "fabric/fabric.h"
#include "lsm/block.h"
#include "lsm/compact.h"
#include "lsm/index.h"
#include "lsm/lookup.h"
#include "node/servers.h"
#include "scl/engine.h"
#include "scl/memtable.h"
#include "scl/runner.h"
#include "store/store.h"

#define KEY_SIZE 16u
#define VALUE_SIZE 100u
#define OP_BYTES (KEY_SIZE + VALUE_SIZE)
#define KEYS 20000u
#define HISTORY 10u
#define HOT_KEYS 2000u
#define SERVERS 3u
#define EPOCH_MS 100u
#define R_MEMTABLE_BYTES (256u << 10)
#define REC_REPS 3
#define WAIT_S 120.0
#define GET_TIMEOUT_MS 10000u
#define BLOCK_HASHES_MAX 4096u
#define SEEN_SLOTS (1u << 18)
#define FLOOR_OPS 2000u
#define RTT_PROBES 1000u

static _Noreturn void die(const char *what, psl_err err)
{
    fprintf(stderr, "lsm_bench: %s failed: %s\n", what, psl_strerror(err));
    exit(1);
}

static void check(psl_err err, const char *what)
{
    if (err != PSL_OK)
        die(what, err);
}

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000L};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, size_t n, double q)
{
    if (!n)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(double *v, size_t n)
{
    return quantile(v, n, 0.5);
}

static uint64_t xs_state = 0x9e3779b97f4a7c15ull;

static uint64_t xs_next(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 7;
    xs_state ^= xs_state << 17;
    return xs_state;
}

static void shuffle(uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(xs_next() % i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void key_of(uint8_t k[KEY_SIZE + 1], const char *prefix, uint32_t i)
{
    char tmp[KEY_SIZE + 1];
    snprintf(tmp, sizeof tmp, "%s%012u", prefix, i);
    memcpy(k, tmp, KEY_SIZE + 1);
}

/* A value names its key and version; the rest is filler that differs per (key, version). */
static void value_of(uint8_t v[VALUE_SIZE], uint32_t key, uint32_t ver)
{
    put_le64(v, (uint64_t)ver << 32 | key);
    uint64_t x = ((uint64_t)key << 20) ^ ver ^ 0x5bd1e995u;
    for (size_t i = 8; i < VALUE_SIZE; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (uint8_t)(x >> 56);
    }
}

/* ---- the world: bus, servers, capsule ---- */

static struct {
    char dir[256];
    bool dir_made;
    struct inproc_bus *bus;
    struct node_servers srv;
    bool srv_up;
    struct signer owner;
    struct capsule_meta meta;
    uint8_t *ckey;
    struct lsm_policy pol;
    struct writer_cert comp_cert; /* the compactor's: the tap opens its indexes */
    uint8_t writer_id[HASH_SIZE]; /* the writer's: whose head the tap looks up in each cut */
    _Atomic bool comp_known;
} G;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_dir(void)
{
    if (G.dir_made) {
        (void)nftw(G.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        G.dir_made = false;
    }
}

static psl_err connect_server(void *ctx, unsigned i, struct fabric **out)
{
    (void)ctx;
    (void)i;
    return fabric_inproc_connect(G.bus, out);
}

static void world_start(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(G.dir, sizeof G.dir, "%s/lsm_bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(G.dir))
        die("mkdtemp", PSL_ERR_IO);
    G.dir_made = true;
    atexit(rm_dir);
    check(inproc_bus_create(&G.bus, (size_t)256 << 20), "inproc_bus_create");
    check(node_servers_start(&G.srv, G.dir, SERVERS, connect_server, NULL, false), "servers");
    G.srv_up = true;
    check(signer_init(&G.owner, NULL), "owner key");
    memset(&G.meta, 0, sizeof G.meta);
    G.meta.version = META_VERSION;
    G.meta.suite = PSL_SUITE_1;
    G.meta.created_ms = clock_wall_ms();
    G.meta.quorum_k = 2;
    G.meta.replica_count = SERVERS;
    memcpy(G.meta.label, "lsm bench", 9);
    G.meta.label_size = 9;
    for (unsigned i = 0; i < SERVERS; i++)
        memcpy(G.meta.replicas[i], G.srv.pks[i], SIGN_PK_SIZE);
    check(meta_sign(&G.meta, &G.owner), "metadata");
    uint8_t raw[META_SIZE_MAX];
    size_t raw_size;
    check(meta_encode(&G.meta, raw, sizeof raw, &raw_size), "meta_encode");
    for (unsigned i = 0; i < SERVERS; i++)
        check(capsuled_serve(G.srv.servers[i], raw, raw_size), "capsuled_serve");
    G.ckey = secret_alloc(AEAD_KEY_SIZE);
    if (!G.ckey)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(G.ckey, AEAD_KEY_SIZE);
    lsm_policy_default(&G.pol);
    G.pol.block_target_size = 8u << 10;
    G.pol.level0_runs_max = 4;
    G.pol.level1_size_max = 512u << 10;
    G.pol.growth_factor = 10;
}

static void cert_for(struct writer_cert *c, const struct writer_keys *wk, uint8_t role)
{
    uint64_t now = clock_wall_ms();
    memset(c, 0, sizeof *c);
    c->role = role;
    memcpy(c->capsule, G.meta.name, HASH_SIZE);
    memcpy(c->sign_pk, wk->sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, wk->kx.pk, KX_PK_SIZE);
    c->not_before_ms = now - 3600000u;
    c->not_after_ms = now + 24 * 3600000ull;
    c->serial = rng_u64();
    cert_sign(c, &G.owner);
}

static struct scl_engine *engine_new(uint8_t role, size_t memtable_bytes_max, bool checkpoint,
                                     uint32_t epoch_ms)
{
    struct writer_keys wk;
    struct writer_cert cert;
    check(writer_keys_init(&wk, NULL, NULL, G.ckey), "writer keys");
    cert_for(&cert, &wk, role);
    struct scl_config cfg = {.meta = &G.meta,
                             .capsule_key = G.ckey,
                             .cert = &cert,
                             .epoch_ms = epoch_ms,
                             .memtable_bytes_max = memtable_bytes_max,
                             .checkpoint_recovery = checkpoint,
                             .lsm_policy = role == ROLE_COMPACTOR ? &G.pol : NULL};
    if (role == ROLE_COMPACTOR) {
        G.comp_cert = cert;
        /* Release: the tap (bus thread) reads comp_cert after seeing comp_known. */
        atomic_store_explicit(&G.comp_known, true, memory_order_release);
    }
    struct scl_engine *e;
    psl_err err = scl_create(&e, &cfg, &wk);
    if (err) {
        writer_keys_deinit(&wk);
        die("scl_create", err);
    }
    return e;
}

/* ---- a host: scl_host's relay, with its runner at hand (scl_runner_get waits on it) ---- */

struct bhost {
    struct scl_engine *e;
    struct scl_runner *r;
    struct fabric *f;
    char t_rec[FABRIC_TOPIC_SIZE_MAX];
    char t_req[FABRIC_TOPIC_SIZE_MAX];
    uint64_t subs[3];
    size_t sub_count;
};

static void bh_emit(void *ctx, const struct scl_action *a)
{
    struct bhost *h = ctx;
    if (a->kind == SCL_ACT_PUBLISH)
        (void)fabric_publish(h->f, h->t_rec, a->data, a->size);
    else if (a->kind == SCL_ACT_REQUEST)
        (void)fabric_publish(h->f, h->t_req, a->data, a->size);
}

/* The handlers never publish (they run on the bus's delivery thread): they kick the actors. */
static void bh_on_record(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct bhost *h = ctx;
    (void)scl_on_record(h->e, data, size);
    scl_runner_kick(h->r);
}

static void bh_on_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct bhost *h = ctx;
    (void)scl_on_ack(h->e, data, size);
    scl_runner_kick(h->r);
}

static void bh_on_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct bhost *h = ctx;
    (void)scl_on_reply(h->e, data, size);
    scl_runner_kick(h->r);
}

static struct bhost *bh_start(struct scl_engine *e)
{
    struct bhost *h = calloc(1, sizeof *h);
    if (!h)
        die("calloc", PSL_ERR_NOMEM);
    h->e = e;
    check(fabric_inproc_connect(G.bus, &h->f), "connect");
    struct scl_runner_config rc = {.actors = 1, .tick_ms = 5, .emit = bh_emit, .ctx = h};
    check(scl_runner_start(&h->r, &rc), "scl_runner_start");
    char whex[2 * HASH_SIZE + 1], rhex[2 * HASH_SIZE + 1];
    char t_ack[FABRIC_TOPIC_SIZE_MAX], t_rep[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, scl_writer_id(e), HASH_SIZE);
    hex_encode(rhex, scl_requester_id(e), HASH_SIZE);
    topic_capsule(h->t_rec, G.meta.name, "rec", NULL);
    topic_capsule(h->t_req, G.meta.name, "req", NULL);
    topic_capsule(t_ack, G.meta.name, "ack", whex);
    topic_capsule(t_rep, G.meta.name, "rep", rhex);
    check(fabric_subscribe(h->f, h->t_rec, bh_on_record, h, &h->subs[h->sub_count++]), "sub");
    check(fabric_subscribe(h->f, t_ack, bh_on_ack, h, &h->subs[h->sub_count++]), "sub");
    check(fabric_subscribe(h->f, t_rep, bh_on_reply, h, &h->subs[h->sub_count++]), "sub");
    scl_runner_attach(h->r, e);
    return h;
}

/* Stops relaying and the threads; the engine stays (destroy it afterwards). */
static void bh_stop(struct bhost *h)
{
    for (size_t i = 0; i < h->sub_count; i++)
        fabric_unsubscribe(h->f, h->subs[i]);
    scl_runner_stop(h->r);
    fabric_destroy(h->f);
    free(h);
}

static struct scl_stats stats_of(struct scl_engine *e)
{
    struct scl_stats st;
    scl_get_stats(e, &st);
    return st;
}

/* ---- a bus tap: bytes of unique records by type, and block hashes for the LMDB floor ---- */

static struct {
    struct fabric *f;
    uint64_t sub;
    /* Written by the bus's delivery thread only; read by main after the bus went quiet
     * (relaxed atomics: counters, no ordering needed). */
    _Atomic uint64_t bytes[16], records[16];
    uint64_t (*seen)[2]; /* (writer prefix, seq) of records counted: re-sends count once */
    uint8_t (*block_hash)[HASH_SIZE];
    _Atomic size_t block_count;
    /* The newest index published: its generation, the writer's seq its cut covers, its size. */
    _Atomic uint64_t ix_generation, ix_writer_seq, ix_bytes, ix_blocks, ix_levels;
    _Atomic bool ix_in_shape; /* lsm_compact_pick finds nothing to merge in the newest index */
} T;

static bool tap_first_time(const uint8_t writer[HASH_SIZE], uint64_t seq)
{
    uint64_t w = get_le64(writer) | 1; /* slot value 0 means empty */
    uint64_t x = (w ^ (seq * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    for (size_t n = 0; n < SEEN_SLOTS; n++) {
        size_t i = (size_t)((x >> 40) + n) & (SEEN_SLOTS - 1);
        if (T.seen[i][0] == 0) {
            T.seen[i][0] = w;
            T.seen[i][1] = seq;
            return true;
        }
        if (T.seen[i][0] == w && T.seen[i][1] == seq)
            return false;
    }
    return true; /* full: counted (not expected at this bench's sizes) */
}

static void on_tap(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)ctx;
    (void)topic;
    struct record_header h;
    if (record_header_decode(&h, data, size) != PSL_OK || h.type >= 16)
        return;
    if (!tap_first_time(h.writer, h.seq))
        return;
    atomic_fetch_add_explicit(&T.bytes[h.type], size, memory_order_relaxed);
    atomic_fetch_add_explicit(&T.records[h.type], 1, memory_order_relaxed);
    if (h.type == REC_LSM_INDEX && atomic_load_explicit(&G.comp_known, memory_order_acquire) &&
        memcmp(h.writer, G.comp_cert.writer_id, HASH_SIZE) == 0) {
        struct lsm_index ix;
        if (lsm_index_open(data, size, &G.meta, &G.comp_cert, clock_wall_ms(), NULL, G.ckey,
                           &ix) == PSL_OK) {
            const struct lsm_index_head *wh = lsm_index_head_find(&ix, G.writer_id);
            if (ix.generation > atomic_load_explicit(&T.ix_generation, memory_order_relaxed)) {
                atomic_store_explicit(&T.ix_writer_seq, wh ? wh->seq : 0, memory_order_relaxed);
                atomic_store_explicit(&T.ix_bytes, size, memory_order_relaxed);
                atomic_store_explicit(&T.ix_blocks, lsm_index_block_count(&ix),
                                      memory_order_relaxed);
                atomic_store_explicit(&T.ix_levels, ix.level_count, memory_order_relaxed);
                atomic_store_explicit(&T.ix_in_shape, lsm_compact_pick(&ix, &G.pol) < 0,
                                      memory_order_relaxed);
                /* Release: pairs with the acquire in is_indexed (the fields above are set). */
                atomic_store_explicit(&T.ix_generation, ix.generation, memory_order_release);
            }
            lsm_index_deinit(&ix);
        }
    }
    size_t n = atomic_load_explicit(&T.block_count, memory_order_relaxed);
    if (h.type == REC_LSM_BLOCK && n < BLOCK_HASHES_MAX) {
        struct record_view v;
        if (record_parse(&v, data, size) == PSL_OK) {
            memcpy(T.block_hash[n], v.hash, HASH_SIZE);
            atomic_store_explicit(&T.block_count, n + 1, memory_order_relaxed);
        }
    }
}

static void tap_start(void)
{
    T.seen = calloc(SEEN_SLOTS, sizeof *T.seen);
    T.block_hash = calloc(BLOCK_HASHES_MAX, sizeof *T.block_hash);
    if (!T.seen || !T.block_hash)
        die("calloc", PSL_ERR_NOMEM);
    check(fabric_inproc_connect(G.bus, &T.f), "connect");
    char topic[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(topic, G.meta.name, "rec", NULL);
    check(fabric_subscribe(T.f, topic, on_tap, NULL, &T.sub), "subscribe");
}

/* ---- the engines of the run ---- */

static struct {
    struct scl_engine *coord, *comp, *wr, *rd;
    struct bhost *hcoord, *hcomp, *hwr, *hrd;
    uint32_t ver[KEYS]; /* version last written per key (0: never) */
    uint64_t puts, op_bytes;
} E;

static void wait_until(bool (*cond)(void *), void *ctx, const char *what)
{
    double t0 = now_s();
    while (!cond(ctx)) {
        if (now_s() - t0 > WAIT_S)
            die(what, PSL_ERR_TIMEOUT);
        sleep_us(500);
    }
}

static bool is_ready(void *ctx)
{
    return scl_is_ready(ctx);
}

static void put_kv(const uint8_t *k, const uint8_t *v)
{
    for (;;) {
        psl_err err = scl_put(E.wr, k, KEY_SIZE, v, VALUE_SIZE);
        if (err == PSL_OK)
            break;
        if (err != PSL_ERR_BUSY)
            die("scl_put", err);
        scl_runner_kick(E.hwr->r);
        sleep_us(200);
    }
    if (++E.puts % 256 == 0)
        scl_runner_kick(E.hwr->r);
    E.op_bytes += OP_BYTES;
}

/* Puts keys[0..n) at their next version. */
static void put_pass(const uint32_t *keys, size_t n)
{
    uint8_t k[KEY_SIZE + 1], v[VALUE_SIZE];
    for (size_t i = 0; i < n; i++) {
        uint32_t key = keys[i];
        key_of(k, "key-", key);
        value_of(v, key, ++E.ver[key]);
        put_kv(k, v);
    }
    scl_runner_kick(E.hwr->r);
}

struct durable_wait {
    struct scl_engine *e;
    uint64_t ticket;
};

static bool is_durable(void *ctx)
{
    struct durable_wait *d = ctx;
    return scl_flush_done(d->e, d->ticket);
}

struct index_wait {
    uint64_t writer_seq;
    uint64_t generation; /* set once an index covers writer_seq */
    double covered_s;    /* when that happened */
    bool in_shape;       /* false: gave up waiting for the merges the policy asks for */
};

/* An index covering writer_seq was published, and two more after it (the compactor has caught
 * up with the epochs: the merges the flush asked for are done, its queue is empty), and the
 * reader adopted it. */
static bool is_indexed(void *ctx)
{
    struct index_wait *w = ctx;
    if (stats_of(E.comp).lsm_flush_skipped)
        die("compaction (a flush was skipped)", PSL_ERR_IO);
    uint64_t g = atomic_load_explicit(&T.ix_generation, memory_order_acquire);
    if (!w->generation &&
        atomic_load_explicit(&T.ix_writer_seq, memory_order_relaxed) >= w->writer_seq) {
        w->generation = g;
        w->covered_s = now_s();
    }
    if (!w->generation || g < w->generation + 2 || stats_of(E.rd).lsm_generation < w->generation)
        return false;
    /* The merges may lag the policy (postponed while blocks are fetched); 15 s at most. */
    w->in_shape = atomic_load_explicit(&T.ix_in_shape, memory_order_relaxed);
    return w->in_shape || now_s() - w->covered_s > 15.0;
}

/* Waits until the writer's operations are durable and covered by a published index that the
 * reader adopted (the tap opens every index and looks the writer up in its cut), and until
 * compaction has run: the newest index is in shape under the policy (merges postponed for blocks
 * not at hand run at later cuts). */
static void wait_indexed(void)
{
    struct durable_wait d = {.e = E.wr, .ticket = scl_flush_ticket(E.wr)};
    wait_until(is_durable, &d, "waiting for durability");
    struct index_wait w = {.writer_seq = stats_of(E.wr).sealed_seq};
    wait_until(is_indexed, &w, "waiting for an index covering the writes, compaction done");
    if (!w.in_shape)
        printf("#   note: 15 s after the index covered the writes, the tree was still not in shape "
               "under the policy (merges pending); measuring anyway\n");
}

static void engines_start(void)
{
    E.coord = engine_new(ROLE_COORDINATOR, 0, false, EPOCH_MS);
    E.comp = engine_new(ROLE_COMPACTOR, 0, true, 0);
    E.wr = engine_new(ROLE_WORKER, 0, false, 0);
    memcpy(G.writer_id, scl_writer_id(E.wr), HASH_SIZE);
    E.rd = engine_new(ROLE_WORKER, R_MEMTABLE_BYTES, true, 0);
    E.hcoord = bh_start(E.coord);
    E.hcomp = bh_start(E.comp);
    E.hwr = bh_start(E.wr);
    E.hrd = bh_start(E.rd);
    wait_until(is_ready, E.comp, "compactor ready");
    wait_until(is_ready, E.rd, "reader ready");
}

/* ---- recovery of a new worker ---- */

struct recov {
    double ready_ms;
    double first_get_ms; /* engine start until a get of an evicted key answered */
    uint64_t generation;
    uint64_t applied;
    uint64_t fetches;
};

struct catch_up {
    struct scl_engine *e;
    struct scl_engine *peers[3];
    uint64_t seq[3];
};

static bool caught_up(void *ctx)
{
    struct catch_up *c = ctx;
    if (!scl_is_ready(c->e))
        return false;
    for (int i = 0; i < 3; i++)
        if (scl_peer_contiguous(c->e, scl_writer_id(c->peers[i])) < c->seq[i])
            return false;
    return true;
}

static bool check_value(uint32_t key, const uint8_t *out, size_t size)
{
    return size == VALUE_SIZE && get_le64(out) == ((uint64_t)E.ver[key] << 32 | key);
}

static struct recov recover_once(bool checkpoint)
{
    struct catch_up c = {.peers = {E.wr, E.comp, E.coord}};
    for (int i = 0; i < 3; i++)
        c.seq[i] = stats_of(c.peers[i]).sealed_seq;
    uint64_t t0 = clock_mono_ns();
    c.e = engine_new(ROLE_WORKER, R_MEMTABLE_BYTES, checkpoint, 0);
    struct bhost *h = bh_start(c.e);
    double t_start = now_s();
    while (!caught_up(&c)) {
        if (now_s() - t_start > WAIT_S) {
            fprintf(stderr, "lsm_bench: recovery stuck: ready %d; writer %" PRIu64 "/%" PRIu64
                    ", compactor %" PRIu64 "/%" PRIu64 ", coordinator %" PRIu64 "/%" PRIu64 "\n",
                    scl_is_ready(c.e), scl_peer_contiguous(c.e, scl_writer_id(E.wr)), c.seq[0],
                    scl_peer_contiguous(c.e, scl_writer_id(E.comp)), c.seq[1],
                    scl_peer_contiguous(c.e, scl_writer_id(E.coord)), c.seq[2]);
            die("waiting for recovery", PSL_ERR_TIMEOUT);
        }
        sleep_us(100);
    }
    uint64_t t1 = clock_mono_ns();
    uint32_t key;
    do
        key = (uint32_t)(xs_next() % KEYS);
    while (!E.ver[key]);
    uint8_t k[KEY_SIZE + 1], out[VALUE_SIZE];
    size_t size = 0;
    key_of(k, "key-", key);
    psl_err err = scl_runner_get(h->r, k, KEY_SIZE, out, sizeof out, &size, GET_TIMEOUT_MS);
    if (err)
        die("first get after recovery", err);
    if (!check_value(key, out, size))
        die("first get after recovery (wrong value)", PSL_ERR_MALFORMED);
    uint64_t t2 = clock_mono_ns();
    struct scl_stats st = stats_of(c.e);
    struct recov r = {.ready_ms = (double)(t1 - t0) / 1e6,
                      .first_get_ms = (double)(t2 - t0) / 1e6,
                      .generation = st.recovery_index_generation,
                      .applied = st.records_applied,
                      .fetches = st.fetches};
    bh_stop(h);
    scl_destroy(c.e);
    return r;
}

/* Median of reps recoveries; prints each. */
static double recover_median(const char *label, bool checkpoint, int reps, double *first_get_ms)
{
    double ready[REC_REPS], first[REC_REPS];
    for (int i = 0; i < reps; i++) {
        struct recov r = recover_once(checkpoint);
        ready[i] = r.ready_ms;
        first[i] = r.first_get_ms;
        printf("#   %s #%d: ready and caught up in %.1f ms, first get answered at %.1f ms; "
               "index generation %" PRIu64 ", %" PRIu64 " records applied, %" PRIu64
               " fetch requests\n",
               label, i + 1, r.ready_ms, r.first_get_ms, r.generation, r.applied, r.fetches);
        fflush(stdout);
    }
    if (first_get_ms)
        *first_get_ms = median(first, (size_t)reps);
    return median(ready, (size_t)reps);
}

static void print_tree(const char *when)
{
    struct scl_stats c = stats_of(E.comp), r = stats_of(E.rd);
    printf("#   %s: compactor generation %" PRIu64 ", %" PRIu64 " flushes, %" PRIu64
           " merges, %" PRIu64 " blocks written (%.1f MB of block and index records); newest "
           "index: %" PRIu64 " levels, %" PRIu64 " blocks, %.1f KB; reader evicted %" PRIu64
           " keys\n",
           when, c.lsm_generation, c.lsm_flushes, c.lsm_merges, c.lsm_blocks_written,
           (double)c.lsm_record_bytes / 1e6, (uint64_t)T.ix_levels, (uint64_t)T.ix_blocks,
           (double)T.ix_bytes / 1e3, r.lsm_evicted);
}

/* ---- gets on the reader ---- */

enum { CLS_HIT = 0, CLS_CACHED = 1, CLS_COLD = 2 };

struct samples {
    double *v[3];
    size_t n[3];
    uint64_t cold_requests;
};

static void get_timed(struct samples *s, const char *prefix, uint32_t key, bool check_it)
{
    uint8_t k[KEY_SIZE + 1], out[VALUE_SIZE];
    size_t size = 0;
    key_of(k, prefix, key);
    struct scl_stats a = stats_of(E.rd);
    uint64_t t0 = clock_mono_ns();
    psl_err err = scl_runner_get(E.hrd->r, k, KEY_SIZE, out, sizeof out, &size, GET_TIMEOUT_MS);
    uint64_t t1 = clock_mono_ns();
    struct scl_stats b = stats_of(E.rd);
    if (err)
        die("scl_runner_get", err);
    if (check_it ? !check_value(key, out, size) : size != VALUE_SIZE)
        die("get returned a wrong value", PSL_ERR_MALFORMED);
    int cls = CLS_HIT;
    if (b.lsm_block_requests > a.lsm_block_requests) {
        cls = CLS_COLD;
        s->cold_requests += b.lsm_block_requests - a.lsm_block_requests;
    } else if (b.lsm_lookups > a.lsm_lookups) {
        cls = CLS_CACHED;
    }
    s->v[cls][s->n[cls]++] = (double)(t1 - t0) / 1e3;
}

/* ---- floors ---- */

/* record_parse + record_check + record_open of one DATA record carrying one op. */
static double floor_record_verify_us(void)
{
    struct writer_keys wk;
    struct writer_cert cert;
    check(writer_keys_init(&wk, NULL, NULL, G.ckey), "writer keys");
    cert_for(&cert, &wk, ROLE_WORKER);
    uint8_t k[KEY_SIZE + 1], v[VALUE_SIZE];
    key_of(k, "key-", 1);
    value_of(v, 1, 1);
    struct kv_op op = {.op = OP_PUT, .lamport = 1, .key_size = KEY_SIZE,
                       .value_size = VALUE_SIZE, .key = k, .value = v};
    size_t plain = data_encoded_size(&op, 1);
    size_t cap = record_sealed_size(plain, REC_DATA);
    uint8_t *buf = malloc(cap), *out = malloc(plain + 16);
    if (!buf || !out)
        die("malloc", PSL_ERR_NOMEM);
    struct wr w;
    wr_init(&w, buf + PSL_RECORD_HEADER_SIZE,
            cap - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
    data_encode(&w, &op, 1);
    check(w.err, "data_encode");
    struct record_header h = {.type = REC_DATA, .seq = 2, .lamport = 1};
    memcpy(h.capsule, G.meta.name, HASH_SIZE);
    size_t size;
    uint8_t hash[HASH_SIZE];
    check(record_seal(&wk, &h, buf, cap, w.pos, &size, hash), "record_seal");
    uint64_t now = clock_wall_ms();
    double per[5];
    for (int rep = 0; rep < 5; rep++) {
        uint64_t t0 = clock_mono_ns();
        for (unsigned i = 0; i < FLOOR_OPS / 4; i++) {
            struct record_view rv;
            size_t n;
            check(record_parse(&rv, buf, size), "record_parse");
            check(record_check(&rv, &G.meta, &cert, now, NULL), "record_check");
            check(record_open(&rv, &wk.aead, out, plain + 16, &n), "record_open");
        }
        per[rep] = (double)(clock_mono_ns() - t0) / 1e3 / (FLOOR_OPS / 4);
    }
    free(buf);
    free(out);
    writer_keys_deinit(&wk);
    return median(per, 5);
}

/* memtable_get on a bare memtable holding the hot keys (same sizes). */
static double floor_memtable_get_us(void)
{
    struct memtable mt;
    uint8_t hkey[MEMTABLE_HASH_KEY_SIZE], wid[HASH_SIZE];
    rng_bytes(hkey, sizeof hkey);
    rng_bytes(wid, sizeof wid);
    check(memtable_init(&mt, hkey), "memtable_init");
    uint8_t k[KEY_SIZE + 1], v[VALUE_SIZE], out[VALUE_SIZE];
    for (uint32_t i = 0; i < KEYS; i++) {
        bool applied;
        key_of(k, "key-", i);
        value_of(v, i, 1);
        check(memtable_apply(&mt, OP_PUT, i + 1, wid, k, KEY_SIZE, v, VALUE_SIZE, &applied),
              "memtable_apply");
    }
    double *lat = malloc(FLOOR_OPS * sizeof *lat);
    if (!lat)
        die("malloc", PSL_ERR_NOMEM);
    for (unsigned i = 0; i < FLOOR_OPS; i++) {
        key_of(k, "key-", (uint32_t)(xs_next() % KEYS));
        const uint8_t *p;
        size_t n;
        uint64_t t0 = clock_mono_ns();
        check(memtable_get(&mt, k, KEY_SIZE, &p, &n), "memtable_get");
        memcpy(out, p, n);
        lat[i] = (double)(clock_mono_ns() - t0) / 1e3;
    }
    double r = median(lat, FLOOR_OPS);
    free(lat);
    memtable_deinit(&mt);
    return r;
}

/* An in-memory tree (one flush of every key, sealed as the compactor seals) read through a
 * reader whose fetch copies from memory: the CPU of a lookup without any I/O. */
struct memtree {
    struct record_chain chain;
    struct writer_keys wk;
    uint64_t lamport;
    uint8_t (*hash)[HASH_SIZE];
    uint8_t **rec;
    size_t *size;
    size_t count, cap;
};

static psl_err mt_sink(void *ctx, uint8_t *buf, size_t cap, size_t plain_size,
                       uint8_t hash_out[HASH_SIZE])
{
    struct memtree *t = ctx;
    size_t size;
    psl_err err = lsm_block_seal(&t->chain, &t->wk, ++t->lamport, buf, cap, plain_size, &size,
                                 hash_out);
    if (err)
        return err;
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->hash = realloc(t->hash, t->cap * sizeof *t->hash);
        t->rec = realloc(t->rec, t->cap * sizeof *t->rec);
        t->size = realloc(t->size, t->cap * sizeof *t->size);
        if (!t->hash || !t->rec || !t->size)
            return PSL_ERR_NOMEM;
    }
    t->rec[t->count] = malloc(size);
    if (!t->rec[t->count])
        return PSL_ERR_NOMEM;
    memcpy(t->rec[t->count], buf, size);
    memcpy(t->hash[t->count], hash_out, HASH_SIZE);
    t->size[t->count++] = size;
    return PSL_OK;
}

static psl_err mt_fetch(void *ctx, unsigned source, const uint8_t hash[HASH_SIZE], uint8_t *buf,
                        size_t cap, size_t *size)
{
    struct memtree *t = ctx;
    (void)source;
    for (size_t i = 0; i < t->count; i++) {
        if (memcmp(t->hash[i], hash, HASH_SIZE) != 0)
            continue;
        if (t->size[i] > cap)
            return PSL_ERR_TOO_LARGE;
        memcpy(buf, t->rec[i], t->size[i]);
        *size = t->size[i];
        return PSL_OK;
    }
    return PSL_ERR_NOT_FOUND;
}

struct lookup_floor {
    double warm_us, cold_us, block_bytes;
};

static struct lookup_floor floor_lookup(void)
{
    struct memtree t;
    memset(&t, 0, sizeof t);
    check(writer_keys_init(&t.wk, NULL, NULL, G.ckey), "writer keys");
    record_chain_init(&t.chain, G.meta.name);
    t.chain.seq = 1; /* as after the CERT record, which a chain starts with */
    rng_bytes(t.chain.head, HASH_SIZE);
    struct lsm_entry *ents = malloc(KEYS * sizeof *ents);
    uint8_t(*keys)[KEY_SIZE + 1] = malloc(KEYS * sizeof *keys);
    uint8_t(*vals)[VALUE_SIZE] = malloc(KEYS * sizeof *vals);
    if (!ents || !keys || !vals)
        die("malloc", PSL_ERR_NOMEM);
    for (uint32_t i = 0; i < KEYS; i++) {
        key_of(keys[i], "key-", i);
        value_of(vals[i], i, 1);
        ents[i] = (struct lsm_entry){.kind = OP_PUT, .lamport = i + 1u,
                                     .writer = t.wk.writer_id, .key = keys[i],
                                     .key_size = KEY_SIZE, .value = vals[i],
                                     .value_size = VALUE_SIZE};
    }
    struct lsm_index empty, ix;
    lsm_index_init(&empty);
    struct lsm_cut cut = {.epoch = 1};
    struct lsm_sink sink = {.put = mt_sink, .ctx = &t};
    struct lsm_compact_stats cst = {0};
    check(lsm_flush(&empty, &G.pol, &cut, ents, KEYS, &sink, &ix, &cst), "lsm_flush");
    struct lsm_source src = {.fetch = mt_fetch, .ctx = &t, .count = 1};
    struct lsm_reader rd;
    check(lsm_reader_init(&rd, G.meta.name, G.ckey, &src, 64u << 20), "lsm_reader_init");
    double *warm = malloc(FLOOR_OPS * sizeof *warm), *cold = malloc(FLOOR_OPS * sizeof *cold);
    if (!warm || !cold)
        die("malloc", PSL_ERR_NOMEM);
    for (int pass = 0; pass < 3; pass++) {
        for (unsigned i = 0; i < FLOOR_OPS; i++) {
            uint32_t key = (uint32_t)(xs_next() % KEYS);
            if (pass == 2)
                lsm_reader_cache_clear(&rd);
            struct lsm_result res;
            uint64_t t0 = clock_mono_ns();
            check(lsm_lookup(&rd, &ix, keys[key], KEY_SIZE, &res), "lsm_lookup");
            uint64_t t1 = clock_mono_ns();
            if (!res.found || res.entry.value_size != VALUE_SIZE ||
                get_le64(res.entry.value) != ((uint64_t)1 << 32 | key))
                die("lsm_lookup value", PSL_ERR_MALFORMED);
            lsm_result_release(&rd, &res);
            if (pass == 1)
                warm[i] = (double)(t1 - t0) / 1e3;
            else if (pass == 2)
                cold[i] = (double)(t1 - t0) / 1e3;
        }
        if (pass == 0) {
            /* Warm every block: pass 1 hits the cache only. */
            for (uint32_t key = 0; key < KEYS; key += 8) {
                struct lsm_result res;
                check(lsm_lookup(&rd, &ix, keys[key], KEY_SIZE, &res), "lsm_lookup");
                lsm_result_release(&rd, &res);
            }
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < t.count; i++)
        total += t.size[i];
    struct lookup_floor f = {.warm_us = median(warm, FLOOR_OPS),
                             .cold_us = median(cold, FLOOR_OPS),
                             .block_bytes = t.count ? (double)total / (double)t.count : 0};
    free(warm);
    free(cold);
    lsm_reader_deinit(&rd);
    lsm_index_deinit(&ix);
    for (size_t i = 0; i < t.count; i++)
        free(t.rec[i]);
    free(t.rec);
    free(t.hash);
    free(t.size);
    free(ents);
    free(keys);
    free(vals);
    writer_keys_deinit(&t.wk);
    return f;
}

/* Bus round trip: a small request out, a block-sized reply back, the waiter woken by a
 * condition variable (as scl_runner_get is). */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t pongs;
    struct fabric *fb;
    size_t reply_size;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_ping(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)ctx;
    (void)topic;
    (void)data;
    (void)size;
    static uint8_t reply[LSM_BLOCK_SIZE_MAX];
    (void)fabric_publish(B.fb, "lsmb.pong", reply, B.reply_size);
}

static void on_pong(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)ctx;
    (void)topic;
    (void)data;
    (void)size;
    pthread_mutex_lock(&B.mu);
    B.pongs++;
    pthread_cond_broadcast(&B.cv);
    pthread_mutex_unlock(&B.mu);
}

static double floor_bus_rtt_us(size_t reply_size)
{
    struct fabric *fa;
    uint64_t s1, s2;
    B.reply_size = reply_size;
    check(fabric_inproc_connect(G.bus, &fa), "connect");
    check(fabric_inproc_connect(G.bus, &B.fb), "connect");
    check(fabric_subscribe(B.fb, "lsmb.ping", on_ping, NULL, &s1), "subscribe");
    check(fabric_subscribe(fa, "lsmb.pong", on_pong, NULL, &s2), "subscribe");
    double *lat = malloc(RTT_PROBES * sizeof *lat);
    if (!lat)
        die("malloc", PSL_ERR_NOMEM);
    uint8_t req[128] = {0};
    for (unsigned i = 0; i < RTT_PROBES; i++) {
        pthread_mutex_lock(&B.mu);
        uint64_t want = B.pongs + 1;
        pthread_mutex_unlock(&B.mu);
        uint64_t t0 = clock_mono_ns();
        check(fabric_publish(fa, "lsmb.ping", req, sizeof req), "publish");
        pthread_mutex_lock(&B.mu);
        while (B.pongs < want)
            pthread_cond_wait(&B.cv, &B.mu);
        pthread_mutex_unlock(&B.mu);
        lat[i] = (double)(clock_mono_ns() - t0) / 1e3;
    }
    double r = median(lat, RTT_PROBES);
    free(lat);
    fabric_unsubscribe(fa, s2);
    fabric_unsubscribe(B.fb, s1);
    fabric_destroy(fa);
    fabric_destroy(B.fb);
    return r;
}

/* store_get of stored block records by hash, from server 0's LMDB (opened after it stopped). */
struct copy_ctx {
    uint8_t *buf;
    size_t size;
};

static bool copy_record(void *ctx, const uint8_t *rec, size_t size)
{
    struct copy_ctx *c = ctx;
    memcpy(c->buf, rec, size);
    c->size = size;
    return false;
}

static double floor_lmdb_read_us(void)
{
    char path[NODE_PATH_SIZE];
    check(node_pathf(path, sizeof path, "%s/servers/s0", G.dir), "path");
    struct store_config sc = {.dir = path};
    struct store *s;
    check(store_open(&s, &sc), "store_open");
    size_t n = atomic_load_explicit(&T.block_count, memory_order_relaxed);
    if (!n)
        die("no block hashes seen", PSL_ERR_NOT_FOUND);
    struct copy_ctx c = {.buf = malloc(PSL_RECORD_SIZE_MAX)};
    double *lat = malloc(FLOOR_OPS * sizeof *lat);
    if (!c.buf || !lat)
        die("malloc", PSL_ERR_NOMEM);
    for (int pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < FLOOR_OPS; i++) {
            size_t j = (size_t)(xs_next() % n);
            c.size = 0;
            uint64_t t0 = clock_mono_ns();
            check(store_get(s, T.block_hash[j], copy_record, &c), "store_get");
            uint64_t t1 = clock_mono_ns();
            if (!c.size)
                die("store_get found nothing", PSL_ERR_NOT_FOUND);
            lat[i] = (double)(t1 - t0) / 1e3; /* pass 0 warms the page cache */
        }
    double r = median(lat, FLOOR_OPS);
    free(lat);
    free(c.buf);
    store_close(s);
    return r;
}

/* ---- main ---- */

static void print_result(const char *name, double value, const char *unit, double floor)
{
    if (floor > 0)
        printf("RESULT name=%s value=%.3f unit=%s floor=%.3f ratio=%.3f\n", name, value, unit,
               floor, value / floor);
    else
        printf("RESULT name=%s value=%.3f unit=%s\n", name, value, unit);
}

static uint64_t server_bytes_mean(void)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < SERVERS; i++) {
        struct capsuled_stats st;
        capsuled_get_stats(G.srv.servers[i], &st);
        sum += st.store.bytes;
    }
    return sum / SERVERS;
}

int main(void)
{
    check(psl_crypto_init(), "psl_crypto_init");
    log_set_level(PSL_LOG_ERROR);
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    double t_start = now_s();
    world_start();
    tap_start();
    engines_start();
    printf("# lsm_bench: %u keys of %u B, values of %u B; %u embedded psl-capsuled servers "
           "(LMDB, fsync) on the in-process bus, k = 2; coordinator (epochs of %u ms), "
           "compactor (blocks %zu KiB, %zu level-0 runs, level 1 %" PRIu64
           " KiB, x%u), writer, reader (memtable_bytes_max %u KiB); runners with 1 actor, tick 5 ms; "
           "data in %s\n",
           KEYS, KEY_SIZE, VALUE_SIZE, SERVERS, EPOCH_MS, G.pol.block_target_size >> 10,
           G.pol.level0_runs_max, G.pol.level1_size_max >> 10, G.pol.growth_factor,
           R_MEMTABLE_BYTES >> 10, G.dir);
    fflush(stdout);

    uint32_t *perm = malloc(KEYS * sizeof *perm);
    if (!perm)
        die("malloc", PSL_ERR_NOMEM);
    for (uint32_t i = 0; i < KEYS; i++)
        perm[i] = i;
    shuffle(perm, KEYS);

    /* Phase 1: a quarter of the state, written once. */
    printf("# phase 1: put %u keys once (random order), wait for an index covering them, then "
           "%d recoveries of a new worker (checkpoint_recovery on)\n",
           KEYS / 4, REC_REPS);
    fflush(stdout);
    double t = now_s();
    put_pass(perm, KEYS / 4);
    wait_indexed();
    printf("#   written and indexed in %.1f s\n", now_s() - t);
    print_tree("tree");
    double rec_q = recover_median("quarter state, 1x, checkpoint", true, REC_REPS, NULL);

    /* Phase 2: the whole state, written once. */
    printf("# phase 2: put the other %u keys once, wait; %d recoveries with checkpoint_recovery "
           "on, 1 full replay (off)\n",
           KEYS - KEYS / 4, REC_REPS);
    fflush(stdout);
    t = now_s();
    put_pass(perm + KEYS / 4, KEYS - KEYS / 4);
    wait_indexed();
    printf("#   written and indexed in %.1f s\n", now_s() - t);
    print_tree("tree");
    double first_1x;
    double rec_1x = recover_median("1x, checkpoint", true, REC_REPS, &first_1x);
    double rec_full_1x = recover_median("1x, full replay", false, 1, NULL);

    /* Phase 3: nine more versions of every key. */
    printf("# phase 3: overwrite every key %u more times (random order each pass), wait; %d "
           "recoveries with checkpoint_recovery on, 1 full replay\n",
           HISTORY - 1, REC_REPS);
    fflush(stdout);
    t = now_s();
    for (unsigned pass = 1; pass < HISTORY; pass++) {
        shuffle(perm, KEYS);
        put_pass(perm, KEYS);
    }
    wait_indexed();
    double write_s = now_s() - t;
    printf("#   %u puts written and indexed in %.1f s\n", KEYS * (HISTORY - 1), write_s);
    print_tree("tree");
    /* Write amplification, taken now (before the recoveries add their CERT records). */
    uint64_t stored = server_bytes_mean();
    uint64_t data_bytes = atomic_load_explicit(&T.bytes[REC_DATA], memory_order_relaxed);
    uint64_t tap_total = 0;
    for (int i = 0; i < 16; i++)
        tap_total += atomic_load_explicit(&T.bytes[i], memory_order_relaxed);
    double wa = (double)stored / (double)E.op_bytes;
    double wa_floor = (double)data_bytes / (double)E.op_bytes;
    printf("#   stored per server %.1f MB for %.1f MB of keys+values put (%" PRIu64
           " puts); records seen on the bus (unique): DATA %.1f MB (%" PRIu64
           " records), LSM_BLOCK %.1f MB (%" PRIu64 "), LSM_INDEX %.1f MB (%" PRIu64
           "), CERT/EOE/SYNC %.2f MB; total %.1f MB\n",
           (double)stored / 1e6, (double)E.op_bytes / 1e6, E.puts, (double)data_bytes / 1e6,
           (uint64_t)T.records[REC_DATA], (double)T.bytes[REC_LSM_BLOCK] / 1e6,
           (uint64_t)T.records[REC_LSM_BLOCK], (double)T.bytes[REC_LSM_INDEX] / 1e6,
           (uint64_t)T.records[REC_LSM_INDEX],
           (double)(T.bytes[REC_CERT] + T.bytes[REC_EOE] + T.bytes[REC_SYNC]) / 1e6,
           (double)tap_total / 1e6);
    printf("#   write amplification by kind (bytes / key+value bytes): DATA %.2f, LSM_BLOCK "
           "%.2f, LSM_INDEX %.2f; all %u servers together: %.2f\n",
           wa_floor, (double)T.bytes[REC_LSM_BLOCK] / (double)E.op_bytes,
           (double)T.bytes[REC_LSM_INDEX] / (double)E.op_bytes, SERVERS, wa * SERVERS);
    fflush(stdout);
    double first_10x;
    double rec_10x = recover_median("10x, checkpoint", true, REC_REPS, &first_10x);
    double rec_full_10x = recover_median("10x, full replay", false, 1, NULL);

    /* Phase 4: gets on the reader. */
    printf("# phase 4: gets on the reader: epochs paused; %u hot keys written after the last "
           "index (memtable hits), then all %u keys in random order, twice\n",
           HOT_KEYS, KEYS);
    fflush(stdout);
    scl_runner_attach(E.hcoord->r, NULL); /* no more epochs: no new index during the gets */
    sleep_us(3 * EPOCH_MS * 1000u);
    {
        uint8_t k[KEY_SIZE + 1], v[VALUE_SIZE];
        for (uint32_t i = 0; i < HOT_KEYS; i++) {
            key_of(k, "hot-", i);
            value_of(v, i, 1);
            put_kv(k, v);
        }
        scl_runner_kick(E.hwr->r);
        struct durable_wait d = {.e = E.wr, .ticket = scl_flush_ticket(E.wr)};
        wait_until(is_durable, &d, "hot keys durable");
        struct catch_up c = {.e = E.rd, .peers = {E.wr, E.wr, E.wr}};
        c.seq[0] = c.seq[1] = c.seq[2] = stats_of(E.wr).sealed_seq;
        wait_until(caught_up, &c, "reader catching up with the hot keys");
    }
    struct samples s;
    memset(&s, 0, sizeof s);
    size_t cap = 3 * HOT_KEYS + 2 * KEYS;
    for (int i = 0; i < 3; i++) {
        s.v[i] = malloc(cap * sizeof(double));
        if (!s.v[i])
            die("malloc", PSL_ERR_NOMEM);
    }
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < HOT_KEYS; i++)
            get_timed(&s, "hot-", (uint32_t)(xs_next() % HOT_KEYS), false);
    size_t hits_hot = s.n[CLS_HIT];
    shuffle(perm, KEYS);
    for (int round = 0; round < 2; round++)
        for (uint32_t i = 0; i < KEYS; i++)
            get_timed(&s, "key-", perm[i], true);
    struct scl_stats rs = stats_of(E.rd);
    printf("#   %zu memtable hits (%zu of them hot keys), %zu cached-block reads, %zu cold misses "
           "(%.2f block requests each); reader: %" PRIu64 " evicted, %" PRIu64
           " tree lookups, %" PRIu64 " blocks refused\n",
           s.n[CLS_HIT], hits_hot, s.n[CLS_CACHED], s.n[CLS_COLD],
           s.n[CLS_COLD] ? (double)s.cold_requests / (double)s.n[CLS_COLD] : 0.0, rs.lsm_evicted,
           rs.lsm_lookups, rs.lsm_blocks_refused);
    double hit_p50 = quantile(s.v[CLS_HIT], s.n[CLS_HIT], 0.5);
    double hit_p99 = quantile(s.v[CLS_HIT], s.n[CLS_HIT], 0.99);
    double cached_p50 = quantile(s.v[CLS_CACHED], s.n[CLS_CACHED], 0.5);
    double cached_p99 = quantile(s.v[CLS_CACHED], s.n[CLS_CACHED], 0.99);
    double miss_p50 = quantile(s.v[CLS_COLD], s.n[CLS_COLD], 0.5);
    double miss_p99 = quantile(s.v[CLS_COLD], s.n[CLS_COLD], 0.99);

    /* Phase 5: floors. */
    printf("# phase 5: floors (bus round trip with the servers idle, CPU floors, then the "
           "servers stop and server 0's LMDB is read)\n");
    fflush(stdout);
    struct lookup_floor lf = floor_lookup();
    double rtt = floor_bus_rtt_us((size_t)lf.block_bytes);
    double verify_us = floor_record_verify_us();
    double mt_us = floor_memtable_get_us();
    bh_stop(E.hrd);
    bh_stop(E.hwr);
    bh_stop(E.hcomp);
    bh_stop(E.hcoord);
    fabric_unsubscribe(T.f, T.sub);
    node_servers_stop(&G.srv);
    G.srv_up = false;
    double lmdb_us = floor_lmdb_read_us();
    double miss_floor = rtt + lmdb_us + lf.cold_us;
    printf("#   bus round trip (128 B out, %.0f B back) %.1f us; LMDB read %.2f us; lookup with an "
           "empty cache (copy, hash, AES-GCM open, decode of one %.0f B block record) %.1f us; "
           "warm lookup %.2f us; memtable_get %.3f us; DATA record verify %.1f us\n",
           lf.block_bytes, rtt, lmdb_us, lf.block_bytes, lf.cold_us, lf.warm_us, mt_us,
           verify_us);

    print_result("lsm.get_hit_p50_us", hit_p50, "us", mt_us);
    print_result("lsm.get_hit_p99_us", hit_p99, "us", mt_us);
    print_result("lsm.get_cached_p50_us", cached_p50, "us", lf.warm_us);
    print_result("lsm.get_cached_p99_us", cached_p99, "us", lf.warm_us);
    print_result("lsm.get_miss_p50_us", miss_p50, "us", miss_floor);
    print_result("lsm.get_miss_p99_us", miss_p99, "us", miss_floor);
    print_result("lsm.write_amplification", wa, "x", wa_floor);
    print_result("lsm.recovery_quarter_1x_ms", rec_q, "ms", 0);
    print_result("lsm.recovery_1x_ms", rec_1x, "ms", 0);
    print_result("lsm.recovery_10x_ms", rec_10x, "ms", 0);
    print_result("lsm.recovery_first_get_1x_ms", first_1x, "ms", 0);
    print_result("lsm.recovery_first_get_10x_ms", first_10x, "ms", 0);
    print_result("lsm.recovery_full_replay_1x_ms", rec_full_1x, "ms", 0);
    print_result("lsm.recovery_full_replay_10x_ms", rec_full_10x, "ms", rec_10x);
    printf("RESULT name=lsm.recovery.ratio_10x_history value=%.3f unit=x floor=1.000 "
           "ratio=%.3f target=2\n",
           rec_10x / rec_1x, rec_10x / rec_1x);
    print_result("lsm.floor.record_verify_us", verify_us, "us", 0);
    print_result("lsm.floor.lmdb_read_us", lmdb_us, "us", 0);
    print_result("lsm.floor.bus_rtt_us", rtt, "us", 0);
    print_result("lsm.floor.block_open_us", lf.cold_us, "us", 0);
    printf("# total %.1f s\n", now_s() - t_start);

    scl_destroy(E.rd);
    scl_destroy(E.wr);
    scl_destroy(E.comp);
    scl_destroy(E.coord);
    fabric_destroy(T.f);
    inproc_bus_destroy(G.bus);
    for (int i = 0; i < 3; i++)
        free(s.v[i]);
    free(perm);
    free(T.seen);
    free(T.block_hash);
    secret_free(G.ckey);
    signer_deinit(&G.owner);
    rm_dir();
    return 0;
}
