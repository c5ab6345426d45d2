/* enclave.c: the enclave event loop (see enclave.h). Three kinds of thread, all created before
 * the enclave confines itself: the receive loop (the calling thread) copies each host message
 * out of the ring and dispatches it; the runner's crypto actors and ticker seal and time the SCL
 * engine; the job thread waits for provisioning and runs the lambda. The invariant that matters:
 * nothing from the host is used before it has been copied (ring_recv) and checked, and no secret
 * (capsule key, writer keys, plaintext keys or values, code, results) is ever written to the
 * outbound ring except sealed. */
#include "enclave/enclave.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "attest/evidence.h"
#include "attest/provision.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "enclave/confine.h"
#include "enclave/lambda.h"
#include "ring/abi.h"
#include "scl/runner.h"

#define FLUSH_TIMEOUT_MS 120000u
#define GET_TIMEOUT_MS 60000u
#define STATS_INTERVAL_MS 200u
#define RECV_POLL_MS 50

enum enclave_state {
    EST_NEW,         /* keys made; waiting for an ATTEST nonce */
    EST_ATTESTED,    /* report sent for nonce; waiting for the sealed bundle */
    EST_PROVISIONED, /* engine live; the job runs */
    EST_DONE,        /* result sent; records are still applied until SHUTDOWN */
};

struct enclave {
    struct enclave_config cfg;
    /* Output: a ring (tx, under tx_mu) or, for the fuzz target, a sink. */
    struct ring *tx;
    pthread_mutex_t tx_mu;
    void (*sink)(void *ctx, uint32_t type, const uint8_t *data, size_t size);
    void *sink_ctx;
    /* Identity, made at start-up: secret seeds, the Ed25519 signer and the X25519 pair. */
    uint8_t *seeds; /* secret memory: sign seed[32] || kx seed[32] */
    struct signer sk;
    struct kx_keypair kx;
    /* State, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum enclave_state state;
    bool shutdown;
    uint8_t nonce[ATTEST_NONCE_SIZE];
    struct provision_bundle bundle; /* valid from EST_PROVISIONED */
    struct scl_engine *eng;         /* valid from EST_PROVISIONED */
    struct scl_runner *runner;      /* NULL in the fuzz harness */
    /* Leader mode (the bundle's certificate has role leader): no engine, no lambda; the enclave
     * certifies workers under the owner's delegation. */
    bool leader;
    struct delegation deleg;
    struct attest_policy policy;
    uint8_t *nonces;         /* worker_count * 32: the nonce chosen for each worker */
    uint8_t *nonce_set;      /* worker_count flags */
    const uint8_t *worker_args; /* inside the bundle's args */
    size_t worker_args_size;
    /* Function mode (a function bundle, DESIGN §7.4): the job thread runs one invocation at a
     * time, handed over by the receive loop under mu; ids seen are remembered to refuse
     * replays (abi.h, RING_INVOKE_SEEN_MAX). */
    bool function;
    bool inv_pending;
    struct invoke_opened inv;
    uint8_t (*seen_ids)[INVOKE_ID_SIZE]; /* RING_INVOKE_SEEN_MAX entries, a FIFO */
    uint64_t *seen_ms;
    unsigned seen_count, seen_next;
    uint64_t seen_floor_ms;
    _Atomic uint64_t bytes_sealed;
    uint64_t stats_sent[RING_STATS_COUNT];
    uint64_t stats_ms;
};

/* ---- output ---- */

/* Sends one message of up to two segments. Waits while the ring is full: the host must keep
 * reading (backpressure), and an enclave never drops its own output. */
static void out2(struct enclave *e, uint32_t type, const void *a, size_t an, const void *b,
                 size_t bn)
{
    if (e->sink) {
        uint8_t *buf = malloc(an + bn + 1);
        if (!buf)
            return;
        if (an)
            memcpy(buf, a, an);
        if (bn)
            memcpy(buf + an, b, bn);
        e->sink(e->sink_ctx, type, buf, an + bn);
        free(buf);
        return;
    }
    struct iovec iov[2] = {{.iov_base = (void *)(uintptr_t)a, .iov_len = an},
                           {.iov_base = (void *)(uintptr_t)b, .iov_len = bn}};
    pthread_mutex_lock(&e->tx_mu);
    psl_err err = ring_sendv(e->tx, type, iov, 2, -1);
    (void)err; /* fails only when the ring is closed or broken: the receive loop then stops */
    pthread_mutex_unlock(&e->tx_mu);
}

static void out(struct enclave *e, uint32_t type, const void *data, size_t size)
{
    out2(e, type, data, size, NULL, 0);
}

/* Answers a refused host message: err and a one-line reason. The reason names what was wrong
 * with the message, never a secret. */
static void refuse(struct enclave *e, psl_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct enclave *e, psl_err err, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    uint8_t code[2];
    put_le16(code, (uint16_t)err);
    out2(e, RING_E2H_ERROR, code, 2, text, n < 0 ? 0 : strnlen(text, sizeof text));
}

static void send_stats(struct enclave *e, bool force)
{
    if (!e->eng)
        return;
    struct scl_stats st;
    scl_get_stats(e->eng, &st);
    uint64_t v[RING_STATS_COUNT] = {
        [RING_STAT_OPS] = st.ops_local,
        [RING_STAT_RECORDS] = st.records_sealed,
        [RING_STAT_BYTES] = atomic_load(&e->bytes_sealed),
        [RING_STAT_DURABLE_SEQ] = st.durable_seq,
        [RING_STAT_SEALED_SEQ] = st.sealed_seq,
        [RING_STAT_OPS_APPLIED] = st.ops_applied,
        [RING_STAT_REJECTED] = st.rejected,
        [RING_STAT_FORKS] = st.forks,
    };
    if (!force && memcmp(v, e->stats_sent, sizeof v) == 0)
        return;
    memcpy(e->stats_sent, v, sizeof v);
    uint8_t buf[RING_STATS_SIZE];
    for (unsigned i = 0; i < RING_STATS_COUNT; i++)
        put_le64(buf + 8 * i, v[i]);
    out(e, RING_E2H_STATS, buf, sizeof buf);
}

/* The runner's emit: records and requests leave as they are (already sealed or public). */
static void emit(void *ctx, const struct scl_action *a)
{
    struct enclave *e = ctx;
    if (a->kind == SCL_ACT_PUBLISH) {
        atomic_fetch_add(&e->bytes_sealed, a->size);
        out(e, RING_E2H_PUBLISH, a->data, a->size);
    } else if (a->kind == SCL_ACT_REQUEST) {
        out(e, RING_E2H_REQUEST, a->data, a->size);
    } else if (a->kind == SCL_ACT_ALERT) {
        out2(e, RING_E2H_ALERT, a->writer, HASH_SIZE, a->data, a->size);
    }
}

/* ---- the lambda's psl module, over the engine ---- */

static void nap_us(unsigned us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
    nanosleep(&ts, NULL);
}

static psl_err op_get(void *ctx, const uint8_t *key, size_t key_size, uint8_t **value,
                      size_t *value_size)
{
    struct enclave *e = ctx;
    size_t cap = 256, size = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return PSL_ERR_NOMEM;
    psl_err err;
    /* scl_runner_get waits while the engine fetches a CapsuleDB block or recovers. */
    while ((err = scl_runner_get(e->runner, key, key_size, buf, cap, &size, GET_TIMEOUT_MS)) ==
           PSL_ERR_TOO_LARGE) {
        uint8_t *bigger = realloc(buf, size);
        if (!bigger) {
            free(buf);
            return PSL_ERR_NOMEM;
        }
        buf = bigger;
        cap = size;
    }
    if (err) {
        free(buf);
        return err;
    }
    *value = buf;
    *value_size = size;
    return PSL_OK;
}

/* put and del wait while the queues are full: the actors drain them (backpressure). */
static psl_err op_put(void *ctx, const uint8_t *key, size_t key_size, const uint8_t *value,
                      size_t value_size)
{
    struct enclave *e = ctx;
    psl_err err;
    while ((err = scl_put(e->eng, key, key_size, value, value_size)) == PSL_ERR_BUSY) {
        scl_runner_kick(e->runner);
        nap_us(200);
    }
    if (!err && scl_wants_kick(e->eng))
        scl_runner_kick_put(e->runner); /* only an empty queue can leave the actors asleep */
    return err;
}

static psl_err op_del(void *ctx, const uint8_t *key, size_t key_size)
{
    struct enclave *e = ctx;
    psl_err err;
    while ((err = scl_del(e->eng, key, key_size)) == PSL_ERR_BUSY) {
        scl_runner_kick(e->runner);
        nap_us(200);
    }
    if (!err && scl_wants_kick(e->eng))
        scl_runner_kick_put(e->runner);
    return err;
}

static psl_err op_flush(void *ctx)
{
    struct enclave *e = ctx;
    uint64_t ticket = scl_flush_ticket(e->eng);
    scl_runner_kick(e->runner);
    uint64_t deadline = clock_mono_ns() + (uint64_t)FLUSH_TIMEOUT_MS * 1000000u;
    unsigned wait_us = 50;
    while (!scl_flush_done(e->eng, ticket)) {
        if (clock_mono_ns() > deadline)
            return PSL_ERR_TIMEOUT;
        nap_us(wait_us);
        if (wait_us < 2000)
            wait_us *= 2;
    }
    return PSL_OK;
}

static bool op_caught_up(void *ctx)
{
    struct enclave *e = ctx;
    return scl_caught_up(e->eng);
}

static void op_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The enclave's own log lines (no secrets: ids, counters, error names). */
static void own_log(struct enclave *e, const char *line, size_t size)
{
    uint8_t level = PSL_LOG_INFO;
    out2(e, RING_E2H_LOG, &level, 1, line, size);
}

/* A lambda's log line may carry keys and values: it leaves sealed to the client's key (a sealed
 * box: confidential, but anonymous, so the client treats log lines as unauthenticated). */
static void op_log(void *ctx, const char *line, size_t size)
{
    struct enclave *e = ctx;
    if (size > PSL_LOG_LINE_SIZE_MAX)
        size = PSL_LOG_LINE_SIZE_MAX;
    uint8_t sealed[PSL_LOG_LINE_SIZE_MAX + SEAL_OVERHEAD];
    if (seal_box(sealed, line, size, e->bundle.client_kx_pk) != PSL_OK)
        return;
    uint8_t level = PSL_LOG_INFO | RING_LOG_SEALED;
    out2(e, RING_E2H_LOG, &level, 1, sealed, size + SEAL_OVERHEAD);
}

/* Runs the lambda once (entry NULL: main), then a flush of everything it wrote, and seals the
 * outcome with rb (rb->job_id, rb->client_kx_pk say for whom; rb->cert is this enclave's).
 * Result plaintext (inside the seal): ok u8 (1 or 0), then the entry's return value as JSON text
 * (ok) or the one-line error message (not ok). *sealed (malloc, the caller frees) on PSL_OK;
 * *job_err is the lambda's outcome. */
static psl_err run_sealed(struct enclave *e, const struct provision_bundle *rb, const char *entry,
                          const uint8_t *args, size_t args_size, psl_err *job_err,
                          uint8_t **sealed_out, size_t *sealed_size_out)
{
    struct provision_bundle *b = &e->bundle;
    struct lambda_ops ops = {.ctx = e,
                             .get = op_get,
                             .put = op_put,
                             .del = op_del,
                             .flush = op_flush,
                             .sleep_ms = op_sleep_ms,
                             .caught_up = op_caught_up,
                             .log = op_log};
    struct lambda_limits lim = {.mem_bytes_max = b->mem_bytes, .insn_max = b->insn_budget};
    struct lambda_job job = {.code = (const char *)b->script,
                             .code_size = b->script_size,
                             .chunkname = b->chunk_name[0] ? b->chunk_name : "lambda",
                             .args = args,
                             .args_size = args_size,
                             .worker = b->worker_index,
                             .workers = b->worker_count,
                             .job_id = rb->job_id,
                             .job_id_size = JOB_ID_SIZE,
                             .entry = entry};
    char *result = NULL;
    size_t result_size = 0;
    char msg[1024] = "";
    psl_err err = lambda_run(&job, &lim, &ops, &result, &result_size, msg, sizeof msg);
    /* Whatever the lambda wrote before it returned or failed is made durable: a finished job
     * (or invocation) is a flushed one (DESIGN §5.5). */
    psl_err ferr = op_flush(e);
    if (!err && ferr) {
        err = ferr;
        snprintf(msg, sizeof msg, "flush: %s (fewer than k storage servers acknowledged)",
                 psl_strerror(ferr));
    }
    const char *text = err ? msg : result;
    size_t text_size = err ? strlen(msg) : result_size;
    size_t plain_size = 1 + text_size;
    uint8_t *plain = malloc(plain_size);
    uint8_t *sealed = NULL;
    size_t sealed_size = 0;
    psl_err serr = PSL_ERR_NOMEM;
    if (plain) {
        plain[0] = err ? 0 : 1;
        memcpy(plain + 1, text, text_size);
        sealed_size = result_sealed_size(rb, plain_size);
        sealed = malloc(sealed_size);
        serr = sealed ? result_seal(&e->sk, rb, plain, plain_size, sealed, sealed_size,
                                    &sealed_size)
                      : PSL_ERR_NOMEM;
        sodium_memzero(plain, plain_size);
        free(plain);
    }
    if (result) {
        sodium_memzero(result, result_size);
        free(result);
    }
    sodium_memzero(msg, sizeof msg);
    if (serr) {
        free(sealed);
        return serr;
    }
    *job_err = err;
    *sealed_out = sealed;
    *sealed_size_out = sealed_size;
    return PSL_OK;
}

/* Runs the job: the lambda's main once, then the sealed result. */
static void run_job(struct enclave *e)
{
    psl_err err = PSL_OK;
    uint8_t *sealed = NULL;
    size_t sealed_size = 0;
    psl_err serr = run_sealed(e, &e->bundle, NULL, e->bundle.args, e->bundle.args_size, &err,
                              &sealed, &sealed_size);
    scl_runner_drain(e->runner);
    send_stats(e, true);
    if (serr) {
        refuse(e, serr, "result could not be sealed: %s", psl_strerror(serr));
    } else {
        uint8_t code[2];
        put_le16(code, (uint16_t)err);
        out2(e, RING_E2H_RESULT, code, 2, sealed, sealed_size);
        free(sealed);
    }
    pthread_mutex_lock(&e->mu);
    e->state = EST_DONE;
    pthread_mutex_unlock(&e->mu);
}

/* Answers one invocation: err, then the sealed result (or nothing when refused). */
static void invoke_answer(struct enclave *e, const uint8_t id[INVOKE_ID_SIZE], psl_err err,
                          const uint8_t *sealed, size_t sealed_size)
{
    uint8_t head[RING_INVOKE_RESULT_HEAD_SIZE];
    memcpy(head, id, INVOKE_ID_SIZE);
    put_le16(head + INVOKE_ID_SIZE, (uint16_t)err);
    out2(e, RING_E2H_INVOKE_RESULT, head, sizeof head, sealed, sealed_size);
}

/* Runs the pending invocation on the job thread: the script's handle(args) in a fresh sandbox,
 * a flush (the caller sees the answer only once the writes are durable), and the result signed
 * by this enclave and sealed to the invocation's reply key, with the invocation id as job id. */
static void run_invocation(struct enclave *e)
{
    struct invoke_opened *inv = &e->inv;
    struct provision_bundle rb = e->bundle; /* a shallow copy: only the result's addressing */
    memcpy(rb.job_id, inv->id, JOB_ID_SIZE);
    memcpy(rb.client_kx_pk, inv->reply_kx_pk, KX_PK_SIZE);
    psl_err err = PSL_OK;
    uint8_t *sealed = NULL;
    size_t sealed_size = 0;
    psl_err serr = run_sealed(e, &rb, FUNCTION_ENTRY, inv->args, inv->args_size, &err, &sealed,
                              &sealed_size);
    send_stats(e, true);
    /* Free for the next invocation before answering this one: a caller that sends its next
     * invocation as soon as it has the answer must not find the enclave still busy. */
    uint8_t id[INVOKE_ID_SIZE];
    memcpy(id, inv->id, sizeof id);
    pthread_mutex_lock(&e->mu);
    invoke_opened_free(&e->inv);
    e->inv_pending = false;
    pthread_mutex_unlock(&e->mu);
    if (serr)
        invoke_answer(e, id, serr, NULL, 0);
    else
        invoke_answer(e, id, err, sealed, sealed_size);
    free(sealed);
}

static void serve_function(struct enclave *e)
{
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->shutdown && !e->inv_pending)
            pthread_cond_wait(&e->cv, &e->mu);
        bool stop = e->shutdown;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            return;
        run_invocation(e);
    }
}

static void *job_main(void *arg)
{
    struct enclave *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->shutdown && e->state != EST_PROVISIONED)
        pthread_cond_wait(&e->cv, &e->mu);
    bool go = !e->shutdown && !e->leader;
    bool function = e->function;
    pthread_mutex_unlock(&e->mu);
    if (go && function)
        serve_function(e);
    else if (go)
        run_job(e);
    return NULL;
}

/* ---- the dispatcher of host messages ---- */

static void on_attest(struct enclave *e, const uint8_t *data, size_t size)
{
    if (size != RING_ATTEST_SIZE) {
        refuse(e, PSL_ERR_MALFORMED, "attest: nonce must be %u bytes, got %zu", RING_ATTEST_SIZE,
               size);
        return;
    }
    pthread_mutex_lock(&e->mu);
    bool ok = e->state == EST_NEW || e->state == EST_ATTESTED;
    if (ok) {
        memcpy(e->nonce, data, ATTEST_NONCE_SIZE);
        e->state = EST_ATTESTED;
    }
    pthread_mutex_unlock(&e->mu);
    if (!ok) {
        refuse(e, PSL_ERR_INVALID_ARG, "attest: already provisioned");
        return;
    }
    uint8_t rep[RING_REPORT_SIZE];
    attest_report_data(rep, e->sk.pk, e->kx.pk, data);
    memcpy(rep + 64, e->sk.pk, SIGN_PK_SIZE);
    memcpy(rep + 96, e->kx.pk, KX_PK_SIZE);
    out(e, RING_E2H_REPORT, rep, sizeof rep);
}

static psl_err leader_setup(struct enclave *e, const struct provision_bundle *b);

static void on_provision(struct enclave *e, const uint8_t *data, size_t size)
{
    pthread_mutex_lock(&e->mu);
    enum enclave_state st = e->state;
    uint8_t nonce[ATTEST_NONCE_SIZE];
    memcpy(nonce, e->nonce, sizeof nonce);
    pthread_mutex_unlock(&e->mu);
    if (st != EST_ATTESTED) {
        refuse(e, PSL_ERR_INVALID_ARG, "provision: %s",
               st == EST_NEW ? "no attestation nonce yet" : "already provisioned");
        return;
    }
    struct provision_bundle b;
    psl_err err = provision_open(&e->kx, e->sk.pk, nonce, data, size, clock_wall_ms(), &b);
    if (err) {
        /* The host is a peer: it learns that provisioning failed authentication, not which
         * check failed (STYLE "Errors"); the client's own checks say more. */
        err = psl_err_outward(err);
        refuse(e, err, "provision: refused: %s", psl_strerror(err));
        return;
    }
    if (b.cert.role == ROLE_LEADER) {
        /* A leader certifies workers; it does not write to the capsule. */
        pthread_mutex_lock(&e->mu);
        e->bundle = b;
        err = leader_setup(e, &e->bundle);
        if (err) {
            e->bundle = (struct provision_bundle){0};
            pthread_mutex_unlock(&e->mu);
            free(e->nonces);
            free(e->nonce_set);
            e->nonces = e->nonce_set = NULL;
            provision_bundle_free(&b);
            refuse(e, err, "provision: leader configuration refused: %s", psl_strerror(err));
            return;
        }
        e->leader = true;
        e->state = EST_PROVISIONED;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        uint8_t ready[RING_READY_SIZE] = {0};
        memcpy(ready, b.meta.name, HASH_SIZE);
        memcpy(ready + 32, b.cert.writer_id, HASH_SIZE);
        memcpy(ready + 64, b.cert.writer_id, HASH_SIZE);
        put_le32(ready + 96, b.worker_index);
        put_le32(ready + 100, b.worker_count);
        out(e, RING_E2H_READY, ready, sizeof ready);
        return;
    }
    struct writer_keys wk;
    if ((err = writer_keys_init(&wk, e->seeds, e->seeds + SIGN_SEED_SIZE, b.capsule_key))) {
        refuse(e, err, "provision: writer keys: %s", psl_strerror(err));
        provision_bundle_free(&b);
        return;
    }
    struct scl_config sc = {.meta = &b.meta,
                            .capsule_key = b.capsule_key,
                            .cert = &b.cert,
                            .deleg = b.has_deleg ? &b.deleg : NULL,
                            .epoch_ms = b.cert.role == ROLE_COORDINATOR ? 250u : 0u};
    struct scl_engine *eng;
    if ((err = scl_create(&eng, &sc, &wk))) {
        writer_keys_deinit(&wk);
        refuse(e, err, "provision: engine: %s", psl_strerror(err));
        provision_bundle_free(&b);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->bundle = b;
    e->eng = eng;
    e->function = provision_is_function(&b);
    e->state = EST_PROVISIONED;
    pthread_mutex_unlock(&e->mu);
    uint8_t ready[RING_READY_SIZE];
    memcpy(ready, scl_capsule_name(eng), HASH_SIZE);
    memcpy(ready + 32, scl_writer_id(eng), HASH_SIZE);
    memcpy(ready + 64, scl_requester_id(eng), HASH_SIZE);
    put_le32(ready + 96, b.worker_index);
    put_le32(ready + 100, b.worker_count);
    out(e, RING_E2H_READY, ready, sizeof ready);
    if (e->runner)
        scl_runner_attach(e->runner, eng); /* emits the engine's first records and requests */
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cv); /* the job thread starts */
    pthread_mutex_unlock(&e->mu);
}

/* ---- leader mode ---- */

/* Parses the leader configuration in the bundle's args (abi.h), checks the delegation names
 * this enclave and verifies, and builds the evidence policy. The bytes were signed by the owner
 * with the bundle, but are still decoded with limits. */
static psl_err leader_setup(struct enclave *e, const struct provision_bundle *b)
{
    struct rd r;
    rd_init(&r, b->args, b->args_size);
    const uint8_t *magic = rd_take(&r, 4);
    const uint8_t *deleg = rd_take(&r, DELEG_SIZE);
    unsigned keys = rd_u8(&r);
    if (r.err)
        return r.err;
    if (memcmp(magic, RING_LEADER_MAGIC, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (keys == 0 || keys > PSL_PLATFORM_KEYS_MAX)
        return PSL_ERR_TOO_LARGE;
    psl_err err = deleg_decode(&e->deleg, deleg, DELEG_SIZE);
    if (err)
        return err;
    if (sodium_memcmp(e->deleg.leader_pk, e->sk.pk, SIGN_PK_SIZE) != 0)
        return PSL_ERR_CERT_ISSUER;
    if ((err = deleg_verify(&e->deleg, &b->meta, clock_wall_ms())))
        return err;
    attest_policy_init(&e->policy, &b->meta);
    for (unsigned i = 0; i < keys; i++) {
        const uint8_t *pk = rd_take(&r, SIGN_PK_SIZE);
        if (!pk)
            return r.err;
        if ((err = attest_policy_trust_platform(&e->policy, pk)))
            return err;
    }
    e->worker_args = b->args + r.pos;
    e->worker_args_size = rd_left(&r);
    e->nonces = calloc(b->worker_count, ATTEST_NONCE_SIZE);
    e->nonce_set = calloc(b->worker_count, 1);
    if (!e->nonces || !e->nonce_set)
        return PSL_ERR_NOMEM;
    return PSL_OK;
}

/* Reads the worker index of a leader message; refuses it outside the job. */
static bool leader_worker(struct enclave *e, const uint8_t *data, size_t size, size_t min,
                          uint32_t *worker)
{
    pthread_mutex_lock(&e->mu);
    bool leader = e->leader && e->state >= EST_PROVISIONED;
    pthread_mutex_unlock(&e->mu);
    if (!leader) {
        refuse(e, PSL_ERR_INVALID_ARG, "leader message to an enclave that is not a leader");
        return false;
    }
    if (size < min) {
        refuse(e, PSL_ERR_TRUNCATED, "leader message of %zu bytes", size);
        return false;
    }
    *worker = get_le32(data);
    if (*worker >= e->bundle.worker_count) {
        refuse(e, PSL_ERR_INVALID_ARG, "worker %u is outside the job's %u workers", *worker,
               e->bundle.worker_count);
        return false;
    }
    return true;
}

static void on_leader_nonce(struct enclave *e, const uint8_t *data, size_t size)
{
    uint32_t w;
    if (!leader_worker(e, data, size, 4, &w))
        return;
    uint8_t msg[RING_LEADER_NONCE_SIZE];
    put_le32(msg, w);
    attest_nonce_new(msg + 4);
    memcpy(e->nonces + (size_t)w * ATTEST_NONCE_SIZE, msg + 4, ATTEST_NONCE_SIZE);
    e->nonce_set[w] = 1;
    out(e, RING_E2H_LEADER_NONCE, msg, sizeof msg);
}

/* Verifies a worker's attestation against the nonce this leader chose for it, then issues its
 * certificate under the delegation and seals its bundle (provision_leader_issue). A nonce is
 * used once: a replayed attestation finds no nonce. */
static void on_leader_issue(struct enclave *e, const uint8_t *data, size_t size)
{
    uint32_t w;
    if (!leader_worker(e, data, size, 5, &w))
        return;
    if (!e->nonce_set[w]) {
        refuse(e, PSL_ERR_ATTEST_NONCE, "leader: no nonce outstanding for worker %u", w);
        return;
    }
    uint8_t nonce[ATTEST_NONCE_SIZE];
    memcpy(nonce, e->nonces + (size_t)w * ATTEST_NONCE_SIZE, sizeof nonce);
    e->nonce_set[w] = 0;
    const struct provision_bundle *b = &e->bundle;
    uint64_t now = clock_wall_ms();
    struct provision_issuer is = {.signer = &e->sk, .deleg = &e->deleg, .meta = &b->meta,
                                  .capsule_key = b->capsule_key};
    uint64_t nb = now - 60000, na = now + 24ull * 3600 * 1000;
    if (nb < e->deleg.not_before_ms)
        nb = e->deleg.not_before_ms;
    if (na > e->deleg.not_after_ms)
        na = e->deleg.not_after_ms;
    bool coord = w == 0 && b->worker_count > 1;
    struct provision_cert_spec spec = {.role = coord ? ROLE_COORDINATOR : ROLE_WORKER,
                                       .not_before_ms = nb,
                                       .not_after_ms = na};
    struct provision_job job = {.worker_index = w,
                                .worker_count = b->worker_count,
                                .mem_bytes = b->mem_bytes,
                                .insn_budget = b->insn_budget,
                                .chunk_name = b->chunk_name,
                                .script = b->script,
                                .script_size = b->script_size,
                                .args = e->worker_args,
                                .args_size = e->worker_args_size};
    memcpy(job.job_id, b->job_id, JOB_ID_SIZE);
    memcpy(job.client_kx_pk, b->client_kx_pk, KX_PK_SIZE);
    memcpy(job.client_sign_pk, b->client_sign_pk, SIGN_PK_SIZE);
    struct attest_verified v;
    uint8_t *sealed;
    size_t sealed_size;
    psl_err err = provision_leader_issue(&is, &e->policy, data + 4, size - 4, nonce, &spec, &job,
                                         now, &v, &sealed, &sealed_size);
    if (err) {
        err = psl_err_outward(err); /* the host learns that, not which check, failed */
        refuse(e, err, "leader: worker %u refused: %s", w, psl_strerror(err));
        return;
    }
    uint8_t head[4];
    put_le32(head, w);
    out2(e, RING_E2H_LEADER_BUNDLE, head, 4, sealed, sealed_size);
    free(sealed);
}

/* Remembers an accepted invocation id (FIFO); an evicted id raises the floor (abi.h). */
static void seen_add(struct enclave *e, const uint8_t id[INVOKE_ID_SIZE], uint64_t issued_ms)
{
    unsigned i = e->seen_next;
    if (e->seen_count == RING_INVOKE_SEEN_MAX) {
        if (e->seen_ms[i] > e->seen_floor_ms)
            e->seen_floor_ms = e->seen_ms[i];
    } else {
        e->seen_count++;
    }
    memcpy(e->seen_ids[i], id, INVOKE_ID_SIZE);
    e->seen_ms[i] = issued_ms;
    e->seen_next = (i + 1) % RING_INVOKE_SEEN_MAX;
}

static bool seen_has(const struct enclave *e, const uint8_t id[INVOKE_ID_SIZE])
{
    for (unsigned i = 0; i < e->seen_count; i++)
        if (memcmp(e->seen_ids[i], id, INVOKE_ID_SIZE) == 0)
            return true;
    return false;
}

/* An invocation, on the receive thread: checked here (the box opens with this enclave's key,
 * the deployer's signature, the outer id is the signed one, fresh), then handed to the job
 * thread. Every refusal is an INVOKE_RESULT with an error and no result, so the host can answer
 * its caller; like provisioning, authentication failures leave as PSL_ERR_AUTH. A replay is
 * named as such: the host relayed the same bytes twice and learns nothing new. */
static void on_invoke(struct enclave *e, const uint8_t *data, size_t size)
{
    if (size < RING_INVOKE_HEAD_SIZE) {
        refuse(e, PSL_ERR_TRUNCATED, "invoke: %zu bytes", size);
        return;
    }
    uint8_t id[INVOKE_ID_SIZE];
    memcpy(id, data, INVOKE_ID_SIZE);
    pthread_mutex_lock(&e->mu);
    bool serving = e->function && e->state == EST_PROVISIONED && !e->shutdown;
    bool busy = e->inv_pending;
    pthread_mutex_unlock(&e->mu);
    if (!serving) {
        invoke_answer(e, id, PSL_ERR_INVALID_ARG, NULL, 0);
        return;
    }
    if (busy) {
        invoke_answer(e, id, PSL_ERR_BUSY, NULL, 0);
        return;
    }
    struct invoke_opened o;
    psl_err err = invoke_open(&e->kx, e->bundle.client_sign_pk, data + RING_INVOKE_HEAD_SIZE,
                              size - RING_INVOKE_HEAD_SIZE, &o);
    if (err) {
        invoke_answer(e, id, psl_err_outward(err), NULL, 0);
        return;
    }
    if (sodium_memcmp(o.id, id, INVOKE_ID_SIZE) != 0) {
        invoke_opened_free(&o);
        invoke_answer(e, id, PSL_ERR_AUTH, NULL, 0);
        return;
    }
    uint64_t now = clock_wall_ms();
    bool stale = o.issued_ms + RING_INVOKE_WINDOW_MS < now ||
                 o.issued_ms > now + RING_INVOKE_WINDOW_MS || o.issued_ms <= e->seen_floor_ms;
    if (stale || seen_has(e, id)) {
        invoke_opened_free(&o);
        invoke_answer(e, id, PSL_ERR_REPLAY, NULL, 0);
        return;
    }
    seen_add(e, id, o.issued_ms);
    pthread_mutex_lock(&e->mu);
    e->inv = o;
    e->inv_pending = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void dispatch(struct enclave *e, uint32_t type, const uint8_t *data, size_t size)
{
    switch (type) {
    case RING_H2E_ATTEST:
        on_attest(e, data, size);
        return;
    case RING_H2E_PROVISION:
        on_provision(e, data, size);
        return;
    case RING_H2E_RECORD:
    case RING_H2E_ACK:
    case RING_H2E_REPLY: {
        pthread_mutex_lock(&e->mu);
        bool live = e->state >= EST_PROVISIONED;
        pthread_mutex_unlock(&e->mu);
        if (!live) {
            refuse(e, PSL_ERR_INVALID_ARG, "message type %u before provisioning", type);
            return;
        }
        if (!e->eng)
            return; /* a leader keeps no state of the capsule: nothing to apply */
        /* The engine verifies everything (DESIGN §3.3) and counts what it refuses. */
        if (type == RING_H2E_RECORD)
            (void)scl_on_record(e->eng, data, size);
        else if (type == RING_H2E_ACK)
            (void)scl_on_ack(e->eng, data, size);
        else
            (void)scl_on_reply(e->eng, data, size);
        if (e->runner)
            scl_runner_kick(e->runner);
        return;
    }
    case RING_H2E_LEADER_NONCE:
        on_leader_nonce(e, data, size);
        return;
    case RING_H2E_LEADER_ISSUE:
        on_leader_issue(e, data, size);
        return;
    case RING_H2E_INVOKE:
        on_invoke(e, data, size);
        return;
    case RING_H2E_SHUTDOWN:
        pthread_mutex_lock(&e->mu);
        e->shutdown = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        return;
    default:
        refuse(e, PSL_ERR_BAD_TYPE, "unknown message type %u (%zu bytes)", type, size);
        return;
    }
}

/* ---- life cycle ---- */

static psl_err enclave_init(struct enclave *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->tx_mu, NULL);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->seeds = sodium_malloc(SIGN_SEED_SIZE + 32);
    e->seen_ids = calloc(RING_INVOKE_SEEN_MAX, sizeof *e->seen_ids);
    e->seen_ms = calloc(RING_INVOKE_SEEN_MAX, sizeof *e->seen_ms);
    if (!e->seeds || !e->seen_ids || !e->seen_ms)
        return PSL_ERR_NOMEM;
    rng_bytes(e->seeds, SIGN_SEED_SIZE + 32);
    psl_err err = signer_init(&e->sk, e->seeds);
    if (err)
        return err;
    return kx_init(&e->kx, e->seeds + SIGN_SEED_SIZE);
}

static void enclave_deinit(struct enclave *e)
{
    if (e->eng)
        scl_destroy(e->eng);
    if (e->state >= EST_PROVISIONED)
        provision_bundle_free(&e->bundle);
    free(e->nonces);
    free(e->nonce_set);
    invoke_opened_free(&e->inv);
    free(e->seen_ids);
    free(e->seen_ms);
    signer_deinit(&e->sk);
    kx_deinit(&e->kx);
    if (e->seeds)
        sodium_free(e->seeds);
    pthread_mutex_destroy(&e->tx_mu);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
}

/* Log lines of the confined enclave leave through the ring (it has no stderr any more). */
static ssize_t log_cookie_write(void *cookie, const char *buf, size_t size)
{
    own_log(cookie, buf, size && buf[size - 1] == '\n' ? size - 1 : size);
    return (ssize_t)size;
}

psl_err enclave_run(struct ring *rx, struct ring *tx, const struct enclave_config *cfg)
{
    struct enclave *e = malloc(sizeof *e);
    if (!e)
        return PSL_ERR_NOMEM;
    psl_err err = enclave_init(e);
    if (err)
        goto out_deinit;
    e->cfg = *cfg;
    e->tx = tx;
    FILE *logf = NULL;
    if (cfg->redirect_logs) {
        cookie_io_functions_t io = {.write = log_cookie_write};
        logf = fopencookie(e, "w", io);
        if (logf) {
            setvbuf(logf, NULL, _IOLBF, 0);
            log_set_sink(logf);
        }
    }
    struct scl_runner_config rc = {.actors = cfg->actors, .emit = emit, .ctx = e};
    if ((err = scl_runner_start(&e->runner, &rc)))
        goto out_log;
    pthread_t job;
    if (pthread_create(&job, NULL, job_main, e) != 0) {
        err = PSL_ERR_NOMEM;
        goto out_runner;
    }
    /* Every thread exists: from here on the enclave needs only its rings, futexes, memory and
     * time, and the allow-list says so. */
    if (cfg->confine && (err = enclave_confine(ring_note(tx)))) {
        refuse(e, err, "seccomp: the allow-list could not be installed");
        goto out_job;
    }
    uint8_t hello[RING_HELLO_SIZE];
    hello[0] = RING_ABI_VERSION;
    hello[1] = cfg->tee_type;
    memcpy(hello + 2, e->sk.pk, SIGN_PK_SIZE);
    memcpy(hello + 34, e->kx.pk, KX_PK_SIZE);
    out(e, RING_E2H_HELLO, hello, sizeof hello);
    if (cfg->selftest_forbidden)
        enclave_confine_selftest(); /* confined: the kernel kills the process here */

    uint8_t *buf = malloc(RING_H2E_SIZE_MAX);
    if (!buf) {
        err = PSL_ERR_NOMEM;
        goto out_job;
    }
    for (;;) {
        uint32_t type;
        size_t size;
        psl_err rerr = ring_recv(rx, &type, buf, RING_H2E_SIZE_MAX, &size, RECV_POLL_MS);
        if (rerr == PSL_OK) {
            dispatch(e, type, buf, size);
        } else if (rerr == PSL_ERR_TOO_LARGE) {
            /* A frame over the ABI's limit cannot be consumed: the host broke the boundary. */
            err = PSL_ERR_MALFORMED;
            break;
        } else if (rerr != PSL_ERR_TIMEOUT && rerr != PSL_ERR_NOT_FOUND) {
            err = rerr == PSL_ERR_CLOSED ? PSL_OK : rerr;
            break;
        }
        uint64_t now = clock_mono_ns() / 1000000u;
        if (now - e->stats_ms >= STATS_INTERVAL_MS) {
            e->stats_ms = now;
            send_stats(e, false);
        }
        pthread_mutex_lock(&e->mu);
        bool stop = e->shutdown;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
    }
    free(buf);
out_job:
    pthread_mutex_lock(&e->mu);
    e->shutdown = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(job, NULL);
out_runner:
    scl_runner_attach(e->runner, NULL);
    scl_runner_stop(e->runner);
out_log:
    if (logf) {
        log_set_sink(NULL);
        fclose(logf);
    }
    ring_close(tx);
out_deinit:
    enclave_deinit(e);
    free(e);
    return err;
}

/* ---- fuzz harness ---- */

psl_err enclave_test_create(struct enclave **out,
                            void (*sink)(void *ctx, uint32_t type, const uint8_t *data,
                                         size_t size),
                            void *ctx)
{
    struct enclave *e = malloc(sizeof *e);
    if (!e)
        return PSL_ERR_NOMEM;
    psl_err err = enclave_init(e);
    if (err) {
        enclave_deinit(e);
        free(e);
        return err;
    }
    e->sink = sink;
    e->sink_ctx = ctx;
    *out = e;
    return PSL_OK;
}

void enclave_test_handle(struct enclave *e, uint32_t type, const uint8_t *data, size_t size)
{
    dispatch(e, type, data, size);
}

void enclave_test_destroy(struct enclave *e)
{
    enclave_deinit(e);
    free(e);
}
