/* scl_bench.c: the Secure Concurrency Layer in thread mode (engine + scl_host on an in-process
 * bus, full crypto, one writer), beside the floors measured in the same run. It keeps one
 * invariant: every figure is taken from what actually left the engine (records counted on the
 * bus, values read back through scl_get), so a figure is never the speed of skipping work.
 *
 * Results (16-byte keys, 32-byte values):
 *   scl.put.ops_per_s_batched    puts/s from the first scl_put until the record sealing the last
 *                                op reached the bus (default batch limits: batches form by
 *                                themselves while the putting thread outruns the actor).
 *                                floor = record producer (data_encode + record_seal, one thread)
 *                                at the mean batch size the engine formed, measured here.
 *   scl.put.ops_per_s_unbatched  the same with batch_ops_max = 1 (one op per record);
 *                                floor = record producer at 1 op per record.
 *   scl.put.speedup_batched_vs_unbatched  the ratio of the two (floor: the producer's ratio).
 *   scl.put.ratio_vs_record_floor  batched puts/s / producer ops/s at the same batch size.
 *   scl.get.ops_per_s            scl_get hits on a memtable of 50k keys; floor = memtable_get on
 *                                a bare memtable of the same keys (no engine lock).
 *   scl.propagation_p50_us, _p99_us   put on writer A -> value visible through scl_get on
 *                                engine B (both hosted on one bus): at low load (one probe at a
 *                                time, 1 ms apart) and at saturation (a thread puts into A as
 *                                fast as the queue admits meanwhile; bus queue 8 MiB). The probe
 *                                puts as a lambda does (scl_runner_kick_put: after a pause the
 *                                putting thread seals), A's connection is inline
 *                                (fabric_inproc_connect_inline: on a quiet bus the sealing
 *                                thread delivers), and the reader spins on
 *                                scl_applied_version, calling scl_get when it moves.
 *   scl.crypto_floor_1op_us      bare crypto on the critical path of a one-op record: Ed25519
 *                                sign + verify, AES-256-GCM seal + open, SHA-256 of the record.
 *   scl.propagation_p50.ratio_vs_crypto_floor   low-load p50 / that floor.
 * Durability: nothing acknowledges records here (no storage servers). unacked_bytes_max is
 * raised to 6 GiB (a saturated writer seals about 250 MB/s) and resend_ms to an hour so that the actors never pause or re-send: "put
 * throughput" is the sealing throughput of the writer (servers' verification and group commit
 * are measured by capsuled_bench). Breakdown lines (not RESULT) split the propagation time into
 * writer side (kick, actor wake-up, seal, bus) and reader side (verify, decrypt, apply, poll),
 * and give the raw thread wake-up latency of a condition variable on this machine. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "crypto/crypto.h"
#include "fabric/fabric.h"
#include "node/scl_host.h"
#include "scl/engine.h"
#include "scl/memtable.h"

#define KEY_SIZE 16u
#define VALUE_SIZE 32u
#define OP_BYTES (DATA_OP_OVERHEAD + KEY_SIZE + VALUE_SIZE)
#define KEYSPACE 65536u
#define REPS 5
#define PUT_OPS_BATCHED 1000000u
#define PUT_OPS_UNBATCHED 20000u
#define GET_KEYS 50000u
#define PROBES_LOW 500u
#define PROBES_SAT 500u
#define SAT_SECONDS_MAX 8.0
#define WAIT_S 60.0

static _Noreturn void die(const char *what, psl_err err)
{
    fprintf(stderr, "scl_bench: %s failed: %s\n", what, psl_strerror(err));
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

static void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(double *v, size_t n)
{
    return quantile(v, n, 0.5);
}

static void key_of(uint8_t k[KEY_SIZE], uint64_t i)
{
    memset(k, 'k', KEY_SIZE);
    put_le64(k + KEY_SIZE - 8, i);
}

/* ---- the capsule: owner, metadata naming 3 (absent) servers, capsule key ---- */

static struct {
    struct signer owner;
    struct capsule_meta meta;
    uint8_t *capsule_key;
} C;

static void capsule_init(void)
{
    check(signer_init(&C.owner, NULL), "owner key");
    memset(&C.meta, 0, sizeof C.meta);
    C.meta.version = META_VERSION;
    C.meta.suite = PSL_SUITE_1;
    C.meta.created_ms = clock_wall_ms();
    C.meta.quorum_k = 2;
    C.meta.replica_count = 3;
    memcpy(C.meta.label, "scl bench", 9);
    C.meta.label_size = 9;
    for (int i = 0; i < 3; i++) {
        struct signer s;
        check(signer_init(&s, NULL), "server key");
        memcpy(C.meta.replicas[i], s.pk, SIGN_PK_SIZE);
        signer_deinit(&s);
    }
    check(meta_sign(&C.meta, &C.owner), "metadata");
    C.capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!C.capsule_key)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(C.capsule_key, AEAD_KEY_SIZE);
}

static void cert_for(struct writer_cert *c, const struct writer_keys *wk, uint8_t role)
{
    uint64_t now = clock_wall_ms();
    memset(c, 0, sizeof *c);
    c->role = role;
    memcpy(c->capsule, C.meta.name, HASH_SIZE);
    memcpy(c->sign_pk, wk->sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, wk->kx.pk, KX_PK_SIZE);
    c->not_before_ms = now - 3600000u;
    c->not_after_ms = now + 24 * 3600000ull;
    c->serial = rng_u64();
    cert_sign(c, &C.owner);
}

/* An engine with fresh writer keys; nothing acknowledges, so it never pauses nor re-sends. */
static struct scl_engine *engine_new(size_t batch_ops_max)
{
    struct writer_keys wk;
    struct writer_cert cert;
    check(writer_keys_init(&wk, NULL, NULL, C.capsule_key), "writer keys");
    cert_for(&cert, &wk, ROLE_WORKER);
    struct scl_config cfg = {.meta = &C.meta,
                             .capsule_key = C.capsule_key,
                             .cert = &cert,
                             .batch_ops_max = batch_ops_max,
                             .unacked_bytes_max = (size_t)6 << 30,
                             .resend_ms = 3600000u};
    struct scl_engine *e;
    psl_err err = scl_create(&e, &cfg, &wk);
    if (err) {
        writer_keys_deinit(&wk);
        die("scl_create", err);
    }
    return e;
}

static struct scl_host *host_new(struct scl_engine *e, struct fabric *f)
{
    struct scl_host_config hc = {.fabric = f, .actors = 1};
    struct scl_host *h;
    check(scl_host_start(&h, e, &hc), "scl_host_start");
    return h;
}

/* ---- a bus observer: counts one writer's DATA records and ops as they reach the bus ---- */

struct counter {
    uint8_t writer[HASH_SIZE];
    _Atomic uint64_t records, ops;
    _Atomic uint64_t last_ns; /* arrival of the newest DATA record of the writer */
};

static void on_count(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct counter *c = ctx;
    uint64_t t = clock_mono_ns();
    struct record_header h;
    if (record_header_decode(&h, data, size) != PSL_OK || h.type != REC_DATA ||
        memcmp(h.writer, c->writer, HASH_SIZE) != 0)
        return;
    /* Every op of this bench has the same size: the count follows from the payload size. */
    uint64_t ops = (h.payload_size - AEAD_TAG_SIZE - 4u) / OP_BYTES;
    /* Relaxed: the readers only need eventually-consistent counters; last_ns is written before
     * ops with release, read after ops with acquire by the waiter. */
    atomic_store_explicit(&c->last_ns, t, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->records, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->ops, ops, memory_order_release);
}

struct rig {
    struct inproc_bus *bus;
    struct fabric *fa, *fb, *fobs;
    struct scl_engine *a, *b;
    struct scl_host *ha, *hb;
    struct counter cnt;
    uint64_t obs_sub;
};

/* A writer A (hosted), an observer, and optionally a reader B (hosted), on one bus. */
static void rig_start(struct rig *r, size_t batch_ops_max, bool with_reader, size_t bus_bytes)
{
    memset(r, 0, sizeof *r);
    check(inproc_bus_create(&r->bus, bus_bytes), "inproc_bus_create");
    /* A's runner threads hold no lock a handler takes: its records may be delivered on the
     * sealing thread when the bus is idle (fabric_inproc_connect_inline). */
    check(fabric_inproc_connect_inline(r->bus, &r->fa), "connect");
    check(fabric_inproc_connect(r->bus, &r->fobs), "connect");
    r->a = engine_new(batch_ops_max);
    memcpy(r->cnt.writer, scl_writer_id(r->a), HASH_SIZE);
    char topic[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(topic, C.meta.name, "rec", NULL);
    /* The observer subscribes before B's host: the bus calls it first for each record. */
    check(fabric_subscribe(r->fobs, topic, on_count, &r->cnt, &r->obs_sub), "subscribe");
    if (with_reader) {
        check(fabric_inproc_connect(r->bus, &r->fb), "connect");
        r->b = engine_new(0);
        r->hb = host_new(r->b, r->fb);
    }
    r->ha = host_new(r->a, r->fa);
    /* Wait for A's CERT to be sealed (and, with a reader, verified by B). */
    double t0 = now_s();
    for (;;) {
        struct scl_stats st;
        scl_get_stats(r->a, &st);
        bool ok = st.records_sealed >= 1 &&
                  (!with_reader || scl_peer_contiguous(r->b, scl_writer_id(r->a)) >= 1);
        if (ok)
            break;
        if (now_s() - t0 > WAIT_S)
            die("waiting for the CERT record", PSL_ERR_TIMEOUT);
        sleep_us(200);
    }
}

static void rig_stop(struct rig *r)
{
    scl_host_stop(r->ha);
    if (r->hb)
        scl_host_stop(r->hb);
    fabric_unsubscribe(r->fobs, r->obs_sub);
    fabric_destroy(r->fa);
    fabric_destroy(r->fobs);
    if (r->fb)
        fabric_destroy(r->fb);
    inproc_bus_destroy(r->bus);
    scl_destroy(r->a);
    if (r->b)
        scl_destroy(r->b);
}

/* Puts one op into A, waiting while the queues are full (backpressure). */
static void put_one(struct rig *r, uint64_t i, const uint8_t *value)
{
    uint8_t k[KEY_SIZE];
    key_of(k, i % KEYSPACE);
    for (;;) {
        psl_err err = scl_put(r->a, k, KEY_SIZE, value, VALUE_SIZE);
        if (err == PSL_OK) {
            if (scl_wants_kick(r->a)) /* the queue was empty: an actor may sleep */
                scl_host_kick_put(r->ha);
            return;
        }
        scl_host_kick(r->ha); /* full: make sure the actors drain */
        if (err != PSL_ERR_BUSY)
            die("scl_put", err);
        sched_yield();
    }
}

/* ---- put throughput ---- */

struct put_result {
    double ops_per_s;
    double batch_mean; /* ops per DATA record */
};

static struct put_result put_run(size_t batch_ops_max, uint64_t n)
{
    struct rig r;
    rig_start(&r, batch_ops_max, false, (size_t)256 << 20);
    uint8_t value[VALUE_SIZE];
    memset(value, 'v', sizeof value);
    uint64_t t0 = clock_mono_ns();
    for (uint64_t i = 0; i < n; i++)
        put_one(&r, i, value);
    double w0 = now_s();
    while (atomic_load_explicit(&r.cnt.ops, memory_order_acquire) < n) {
        if (now_s() - w0 > WAIT_S)
            die("waiting for the last op to be sealed", PSL_ERR_TIMEOUT);
        sleep_us(50);
    }
    uint64_t t1 = atomic_load_explicit(&r.cnt.last_ns, memory_order_relaxed);
    uint64_t recs = atomic_load_explicit(&r.cnt.records, memory_order_relaxed);
    struct put_result res = {.ops_per_s = (double)n / ((double)(t1 - t0) / 1e9),
                             .batch_mean = (double)n / (double)recs};
    rig_stop(&r);
    return res;
}

/* ---- the record producer floor (as record_bench: data_encode + record_seal) ---- */

static double producer_ops_per_s(size_t n_ops)
{
    struct writer_keys wk;
    check(writer_keys_init(&wk, NULL, NULL, C.capsule_key), "writer keys");
    size_t plain = 4 + n_ops * OP_BYTES;
    size_t cap = record_sealed_size(plain, REC_DATA);
    uint8_t *buf = malloc(cap);
    struct kv_op *ops = malloc(n_ops * sizeof *ops);
    uint8_t(*keys)[KEY_SIZE] = malloc(n_ops * KEY_SIZE);
    if (!buf || !ops || !keys)
        die("malloc", PSL_ERR_NOMEM);
    uint8_t value[VALUE_SIZE];
    memset(value, 'v', sizeof value);
    for (size_t i = 0; i < n_ops; i++)
        key_of(keys[i], i);
    uint64_t seq = 1, lamport = 0;
    uint8_t prev[HASH_SIZE] = {0};
    double rates[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t records = 0;
        double t0 = now_s(), t;
        do {
            for (int j = 0; j < 4; j++) {
                for (size_t i = 0; i < n_ops; i++)
                    ops[i] = (struct kv_op){.op = OP_PUT, .lamport = ++lamport,
                                            .key_size = KEY_SIZE, .value_size = VALUE_SIZE,
                                            .key = keys[i], .value = value};
                struct wr w;
                wr_init(&w, buf + PSL_RECORD_HEADER_SIZE,
                        cap - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
                data_encode(&w, ops, n_ops);
                check(w.err, "data_encode");
                struct record_header h = {.type = REC_DATA, .seq = seq++, .lamport = lamport};
                memcpy(h.capsule, C.meta.name, HASH_SIZE);
                memcpy(h.prev, prev, HASH_SIZE);
                size_t size;
                check(record_seal(&wk, &h, buf, cap, w.pos, &size, prev), "record_seal");
                records++;
            }
            t = now_s();
        } while (t - t0 < 0.2);
        rates[rep] = (double)(records * n_ops) / (t - t0);
    }
    free(keys);
    free(ops);
    free(buf);
    writer_keys_deinit(&wk);
    return median(rates, REPS);
}

/* ---- bare crypto of a one-op record: sign + verify + AES-GCM seal + open + SHA-256 ---- */

static double crypto_floor_1op_us(void)
{
    struct signer s;
    check(signer_init(&s, NULL), "signer");
    struct aead_key k;
    uint8_t key[AEAD_KEY_SIZE];
    rng_bytes(key, sizeof key);
    check(aead_key_init(&k, key), "aead key");
    size_t plain = 4 + OP_BYTES;
    size_t rec = record_sealed_size(plain, REC_DATA);
    uint8_t buf[512], nonce[AEAD_NONCE_SIZE] = {0}, tag[AEAD_TAG_SIZE], hash[HASH_SIZE],
                      sig[SIGN_SIG_SIZE];
    memset(buf, 7, sizeof buf);
    double per[REPS];
    uint64_t nv = 0;
    for (int rep = 0; rep < REPS; rep++) {
        unsigned n = 0;
        double t0 = now_s(), t;
        do {
            put_le64(nonce, ++nv);
            check(aead_seal(&k, nonce, buf, PSL_RECORD_HEADER_SIZE, buf + PSL_RECORD_HEADER_SIZE,
                            plain, tag),
                  "aead_seal");
            hash_sha256(hash, buf, rec - SIGN_SIG_SIZE);
            sign_tagged(&s, sig, RECORD_SIG_TAG, hash);
            if (!sign_verify_tagged(s.pk, sig, RECORD_SIG_TAG, hash))
                die("sign_verify_tagged", PSL_ERR_BAD_SIGNATURE);
            check(aead_open(&k, nonce, buf, PSL_RECORD_HEADER_SIZE, buf + PSL_RECORD_HEADER_SIZE,
                            plain, tag),
                  "aead_open");
            n++;
            t = now_s();
        } while (t - t0 < 0.2);
        per[rep] = (t - t0) / n * 1e6;
    }
    aead_key_deinit(&k);
    signer_deinit(&s);
    return median(per, REPS);
}

/* ---- raw wake-up: one thread signals a condition variable another waits on ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t posted, seen;
    uint64_t t_post;
    bool stop;
    double lat_us[PROBES_LOW];
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *waker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&W.mu);
    for (;;) {
        while (!W.stop && W.posted == W.seen)
            pthread_cond_wait(&W.cv, &W.mu);
        if (W.stop)
            break;
        uint64_t t = clock_mono_ns();
        W.lat_us[W.seen % PROBES_LOW] = (double)(t - W.t_post) / 1e3;
        W.seen = W.posted;
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

static double wake_p50_us(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, waker_main, NULL) != 0)
        die("pthread_create", PSL_ERR_NOMEM);
    sleep_us(2000);
    for (unsigned i = 0; i < PROBES_LOW; i++) {
        pthread_mutex_lock(&W.mu);
        W.t_post = clock_mono_ns();
        W.posted++;
        pthread_cond_broadcast(&W.cv);
        pthread_mutex_unlock(&W.mu);
        sleep_us(1000);
    }
    pthread_mutex_lock(&W.mu);
    W.stop = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(th, NULL);
    return median(W.lat_us, PROBES_LOW);
}

/* ---- get throughput ---- */

static void get_bench(double *ops_per_s, double *floor_per_s)
{
    struct scl_engine *e = engine_new(0);
    struct memtable mt;
    uint8_t hkey[MEMTABLE_HASH_KEY_SIZE];
    rng_bytes(hkey, sizeof hkey);
    check(memtable_init(&mt, hkey), "memtable_init");
    uint8_t value[VALUE_SIZE], out[VALUE_SIZE], wid[HASH_SIZE];
    memset(value, 'v', sizeof value);
    rng_bytes(wid, sizeof wid);
    for (uint64_t i = 0; i < GET_KEYS; i++) {
        uint8_t k[KEY_SIZE];
        key_of(k, i);
        check(scl_put(e, k, KEY_SIZE, value, VALUE_SIZE), "scl_put");
        bool applied;
        check(memtable_apply(&mt, OP_PUT, i + 1, wid, k, KEY_SIZE, value, VALUE_SIZE, &applied),
              "memtable_apply");
    }
    double rate[2][REPS];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int rep = 0; rep < REPS; rep++) {
        for (int kind = 0; kind < 2; kind++) {
            uint64_t n = 0;
            double t0 = now_s(), t;
            do {
                for (int j = 0; j < 1024; j++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    uint8_t k[KEY_SIZE];
                    key_of(k, x % GET_KEYS);
                    size_t size;
                    if (kind == 0) {
                        check(scl_get(e, k, KEY_SIZE, out, sizeof out, &size), "scl_get");
                    } else {
                        const uint8_t *v;
                        check(memtable_get(&mt, k, KEY_SIZE, &v, &size), "memtable_get");
                        memcpy(out, v, size);
                    }
                    if (size != VALUE_SIZE || out[0] != 'v')
                        die("get returned a wrong value", PSL_ERR_MALFORMED);
                }
                n += 1024;
                t = now_s();
            } while (t - t0 < 0.2);
            rate[kind][rep] = (double)n / (t - t0);
        }
    }
    *ops_per_s = median(rate[0], REPS);
    *floor_per_s = median(rate[1], REPS);
    memtable_deinit(&mt);
    scl_destroy(e);
}

/* ---- propagation ---- */

struct saturator {
    struct rig *r;
    _Atomic bool stop;
    uint64_t puts;
};

static void *saturate_main(void *arg)
{
    struct saturator *s = arg;
    uint8_t value[VALUE_SIZE];
    memset(value, 's', sizeof value);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
        put_one(s->r, 1 + s->puts++ % 10000u, value); /* key 0 is the probe */
    return NULL;
}

struct prop {
    double p50, p99, wside_p50, rside_p50;
    unsigned samples;
};

/* Probes: put key 0 with a fresh value on A, kick, poll B until it reads that value. */
static struct prop propagate(struct rig *r, unsigned probes, unsigned gap_us, double max_s)
{
    double *lat = calloc(probes, sizeof *lat), *ws = calloc(probes, sizeof *ws),
           *rs = calloc(probes, sizeof *rs);
    if (!lat || !ws || !rs)
        die("calloc", PSL_ERR_NOMEM);
    static uint64_t probe_no;
    uint8_t k[KEY_SIZE], value[VALUE_SIZE], out[VALUE_SIZE];
    key_of(k, 0);
    memset(value, 'p', sizeof value);
    double start = now_s();
    unsigned n = 0;
    for (; n < probes && now_s() - start < max_s; n++) {
        put_le64(value, ++probe_no);
        uint64_t seen0 = atomic_load_explicit(&r->cnt.records, memory_order_relaxed);
        uint64_t t0 = clock_mono_ns();
        for (;;) {
            psl_err err = scl_put(r->a, k, KEY_SIZE, value, VALUE_SIZE);
            if (err == PSL_OK)
                break;
            if (err != PSL_ERR_BUSY)
                die("scl_put", err);
            sched_yield();
        }
        if (scl_wants_kick(r->a))
            scl_host_kick_put(r->ha); /* as a lambda's put does (src/enclave/enclave.c) */
        else
            scl_host_kick(r->ha);
        uint64_t t1;
        uint64_t version = scl_applied_version(r->b);
        for (;;) {
            size_t size;
            psl_err err = scl_get(r->b, k, KEY_SIZE, out, sizeof out, &size);
            t1 = clock_mono_ns();
            if (err == PSL_OK && get_le64(out) == probe_no)
                break;
            if (err && err != PSL_ERR_NOT_FOUND)
                die("scl_get", err);
            if ((double)(t1 - t0) / 1e9 > WAIT_S)
                die("waiting for propagation", PSL_ERR_TIMEOUT);
            /* A reader that polls without sleeping (a 5 us nanosleep lasts ~45 us here, which
             * would be measured as propagation), and without the engine's lock until B applied
             * something (taking it on every poll delays B's receive path, which needs it). */
            while (scl_applied_version(r->b) == version &&
                   (double)(clock_mono_ns() - t0) / 1e9 <= WAIT_S)
                cpu_pause();
            version = scl_applied_version(r->b);
        }
        lat[n] = (double)(t1 - t0) / 1e3;
        /* The newest record of A on the bus when the value became visible carried the probe
         * (at low load exactly one record was sealed per probe). */
        uint64_t arr = atomic_load_explicit(&r->cnt.last_ns, memory_order_relaxed);
        bool one = atomic_load_explicit(&r->cnt.records, memory_order_relaxed) == seen0 + 1;
        ws[n] = one && arr > t0 ? (double)(arr - t0) / 1e3 : lat[n];
        rs[n] = lat[n] - ws[n];
        if (gap_us)
            sleep_us(gap_us);
    }
    struct prop p = {.samples = n};
    p.wside_p50 = median(ws, n);
    p.rside_p50 = median(rs, n);
    p.p99 = quantile(lat, n, 0.99);
    p.p50 = quantile(lat, n, 0.5);
    free(lat);
    free(ws);
    free(rs);
    return p;
}

int main(int argc, char **argv)
{
    /* --propagation: only the propagation section and its floors (a quicker run to iterate). */
    bool prop_only = argc == 2 && strcmp(argv[1], "--propagation") == 0;
    if (argc > 1 && !prop_only) {
        fprintf(stderr, "usage: scl_bench [--propagation]\n");
        return 2;
    }
    check(psl_crypto_init(), "psl_crypto_init");
    log_set_level(PSL_LOG_ERROR);
    /* Short sleeps in the pollers should be short (the default slack is 50 us). */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    capsule_init();
    printf("# scl_bench: 1 writer, full crypto, in-process bus, %u-byte keys, %u-byte values, "
           "1 actor thread, tick 5 ms, no storage servers (sealing throughput)\n",
           KEY_SIZE, VALUE_SIZE);

    double batched = 0, unbatched = 0, batch_mean = 0, floor_b = 0, floor_u = 0, floor_1000 = 0;
    double get_rate = 0, get_floor = 0;
    if (!prop_only) {
        /* Put throughput: batched (default limits) and unbatched, alternating repetitions. */
        double b_rate[REPS], u_rate[REPS], b_batch[REPS];
        for (int rep = 0; rep < REPS; rep++) {
            struct put_result b = put_run(0, PUT_OPS_BATCHED);
            struct put_result u = put_run(1, PUT_OPS_UNBATCHED);
            b_rate[rep] = b.ops_per_s;
            b_batch[rep] = b.batch_mean;
            u_rate[rep] = u.ops_per_s;
            printf("# rep %d: batched %.0f ops/s (mean %.1f ops/record), unbatched %.0f ops/s "
                   "(%.2f ops/record)\n",
                   rep, b.ops_per_s, b.batch_mean, u.ops_per_s, u.batch_mean);
        }
        batched = median(b_rate, REPS);
        unbatched = median(u_rate, REPS);
        batch_mean = median(b_batch, REPS);
        size_t batch_n = (size_t)(batch_mean + 0.5);
        if (batch_n < 1)
            batch_n = 1;
        floor_b = producer_ops_per_s(batch_n);
        floor_u = producer_ops_per_s(1);
        floor_1000 = producer_ops_per_s(1000);
        printf("# record producer floor: %.0f ops/s at %zu ops/record (engine's mean batch), %.0f at "
               "1, %.0f at 1000\n",
               floor_b, batch_n, floor_u, floor_1000);

        get_bench(&get_rate, &get_floor);
    }

    double crypto_us = crypto_floor_1op_us();
    double wake_us = wake_p50_us();

    struct rig r;
    /* A small bus queue: a full bus blocks A's publisher, so at saturation the reader's pace
     * backs up to the writer's queue (with 256 MiB the backlog, and the latency, grow without
     * bound: nothing else slows a writer down for a slow reader). */
    rig_start(&r, 0, true, (size_t)8 << 20);
    struct prop low = propagate(&r, PROBES_LOW, 1000, 60.0);
    struct saturator sat = {.r = &r};
    pthread_t th;
    if (pthread_create(&th, NULL, saturate_main, &sat) != 0)
        die("pthread_create", PSL_ERR_NOMEM);
    sleep_us(200000);
    struct prop high = propagate(&r, PROBES_SAT, 0, SAT_SECONDS_MAX);
    atomic_store_explicit(&sat.stop, true, memory_order_relaxed);
    pthread_join(th, NULL);
    struct scl_stats sa, sb;
    scl_get_stats(r.a, &sa);
    scl_get_stats(r.b, &sb);
    rig_stop(&r);

    printf("# propagation low load: %u samples, p50 %.1f us = writer side %.1f us (kick, actor "
           "wake-up, seal, bus) + reader side %.1f us (verify, decrypt, apply, poll); "
           "condvar wake-up p50 on this machine %.1f us\n",
           low.samples, low.p50, low.wside_p50, low.rside_p50, wake_us);
    printf("# propagation saturation: %u samples in <= %.0f s, p50 %.1f us, p99 %.1f us; "
           "writer sealed %" PRIu64 " records, reader applied %" PRIu64 " records (%" PRIu64
           " ops)\n",
           high.samples, SAT_SECONDS_MAX, high.p50, high.p99, sa.records_sealed, sb.records_applied,
           sb.ops_applied);

    if (!prop_only) {
        printf("RESULT name=scl.put.ops_per_s_batched value=%.0f unit=ops/s floor=%.0f ratio=%.3f\n",
               batched, floor_b, batched / floor_b);
        printf("RESULT name=scl.put.batch_mean_ops value=%.1f unit=ops/record\n", batch_mean);
        printf("RESULT name=scl.put.ops_per_s_unbatched value=%.0f unit=ops/s floor=%.0f ratio=%.3f\n",
               unbatched, floor_u, unbatched / floor_u);
        printf("RESULT name=scl.put.speedup_batched_vs_unbatched value=%.1f unit=x floor=%.1f\n",
               batched / unbatched, floor_b / floor_u);
        printf("RESULT name=scl.put.ratio_vs_record_floor value=%.3f unit=x floor=%.0f\n",
               batched / floor_b, floor_b);
        printf("RESULT name=scl.put.record_floor_ops_per_s_1000 value=%.0f unit=ops/s\n", floor_1000);
        printf("RESULT name=scl.get.ops_per_s value=%.0f unit=ops/s floor=%.0f ratio=%.3f\n", get_rate,
               get_floor, get_rate / get_floor);
    }
    printf("RESULT name=scl.crypto_floor_1op_us value=%.1f unit=us\n", crypto_us);
    printf("RESULT name=scl.host.condvar_wake_p50_us value=%.1f unit=us\n", wake_us);
    printf("RESULT name=scl.propagation_p50_us value=%.1f unit=us floor=%.1f ratio=%.3f\n", low.p50,
           crypto_us, low.p50 / crypto_us);
    printf("RESULT name=scl.propagation_p99_us value=%.1f unit=us floor=%.1f ratio=%.3f\n", low.p99,
           crypto_us, low.p99 / crypto_us);
    printf("RESULT name=scl.propagation_p50.ratio_vs_crypto_floor value=%.3f unit=x floor=%.1f\n",
           low.p50 / crypto_us, crypto_us);
    printf("RESULT name=scl.propagation_sat_p50_us value=%.1f unit=us floor=%.1f ratio=%.3f\n",
           high.p50, crypto_us, high.p50 / crypto_us);
    printf("RESULT name=scl.propagation_sat_p99_us value=%.1f unit=us floor=%.1f ratio=%.3f\n",
           high.p99, crypto_us, high.p99 / crypto_us);
    secret_free(C.capsule_key);
    signer_deinit(&C.owner);
    return 0;
}
