/* scl_cluster.c: four SCL workers over a real nats-server and real psl-capsuled servers
 * (started by scl_cluster.sh). Each worker is one engine with fresh writer keys certified by the
 * capsule owner, its own NATS connection and its own thread-mode host; worker 0 is also the
 * coordinator (epochs on). Each does seeded random puts and deletes on one shared key space,
 * waits until its writes are durable (scl_flush_done), and then the program waits until every
 * worker holds every other worker's records up to the flushed heads and all four state digests
 * are equal. The invariant checked is the one users rely on: after every worker flushed, all
 * replicas converge to one state. Exit 0 on success; 1 with a one-line reason otherwise.
 *
 * Usage: scl_cluster CAPSULE_DIR NATS_URL [--ops N] [--keys N] [--seed S] [--timeout-s T] */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/cert.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsule/meta.h"
#include "crypto/crypto.h"
#include "fabric/fabric.h"
#include "node/scl_host.h"
#include "scl/engine.h"

#define WORKERS 4
#define PATH_SIZE 1024
#define VALUE_MAX 64u

struct worker {
    unsigned index;
    struct fabric *fabric;
    struct scl_engine *e;
    struct scl_host *h;
    uint64_t seed;
    uint64_t ops;
    uint64_t keys;
    uint64_t puts, dels;
    psl_err err;
    uint64_t flushed_seq; /* sealed seq when the flush completed */
    double flush_s;
    _Atomic bool alert;
};

static struct {
    struct capsule_meta meta;
    uint8_t *capsule_key;
    struct signer owner;
    double timeout_s;
} G;

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static _Noreturn void fail(const char *what, psl_err err)
{
    printf("FAIL: scl_cluster: %s: %s\n", what, psl_strerror(err));
    fflush(stdout);
    exit(1);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void load_capsule(const char *dir)
{
    char p[PATH_SIZE];
    uint8_t *buf;
    size_t size;
    struct export_view view;
    snprintf(p, sizeof p, "%s/capsule.pslx", dir);
    psl_err err = file_read_all(p, &buf, &size);
    if (err || (err = export_parse(buf, size, &view)))
        fail(p, err);
    err = meta_decode(&G.meta, view.meta, view.meta_size);
    export_view_free(&view);
    free(buf);
    if (err)
        fail("capsule metadata", err);
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    G.capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!seed || !G.capsule_key)
        fail("secret_alloc", PSL_ERR_NOMEM);
    snprintf(p, sizeof p, "%s/owner.key", dir);
    if ((err = keyfile_read(p, KEYFILE_SIGNING, seed)) || (err = signer_init(&G.owner, seed)))
        fail(p, err);
    secret_free(seed);
    snprintf(p, sizeof p, "%s/capsule.key", dir);
    if ((err = keyfile_read(p, KEYFILE_CAPSULE, G.capsule_key)))
        fail(p, err);
}

static void on_alert(void *ctx, const struct scl_action *a)
{
    (void)a;
    struct worker *w = ctx;
    atomic_store_explicit(&w->alert, true, memory_order_relaxed);
}

static void worker_start(struct worker *w, const char *url)
{
    struct writer_keys wk;
    struct writer_cert cert;
    psl_err err = writer_keys_init(&wk, NULL, NULL, G.capsule_key);
    if (err)
        fail("writer_keys_init", err);
    uint64_t now = clock_wall_ms();
    memset(&cert, 0, sizeof cert);
    cert.role = w->index == 0 ? ROLE_COORDINATOR : ROLE_WORKER;
    memcpy(cert.capsule, G.meta.name, HASH_SIZE);
    memcpy(cert.sign_pk, wk.sign.pk, SIGN_PK_SIZE);
    memcpy(cert.kx_pk, wk.kx.pk, KX_PK_SIZE);
    if (G.meta.measurement_count)
        memcpy(cert.measurement, G.meta.measurements[0], HASH_SIZE);
    cert.not_before_ms = now - 3600000u;
    cert.not_after_ms = now + 24 * 3600000ull;
    cert.serial = rng_u64();
    cert_sign(&cert, &G.owner);
    struct scl_config cfg = {.meta = &G.meta,
                             .capsule_key = G.capsule_key,
                             .cert = &cert,
                             .epoch_ms = w->index == 0 ? 250u : 0u};
    if ((err = scl_create(&w->e, &cfg, &wk))) {
        writer_keys_deinit(&wk);
        fail("scl_create", err);
    }
    char name[32];
    snprintf(name, sizeof name, "scl_cluster-w%u", w->index);
    if ((err = fabric_nats_connect(url, name, &w->fabric)))
        fail("fabric_nats_connect", err);
    struct scl_host_config hc = {.fabric = w->fabric, .on_alert = on_alert, .alert_ctx = w};
    if ((err = scl_host_start(&w->h, w->e, &hc)))
        fail("scl_host_start", err);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t s = w->seed;
    uint8_t key[16], value[VALUE_MAX];
    for (uint64_t i = 0; i < w->ops; i++) {
        uint64_t r = splitmix(&s);
        int ks = snprintf((char *)key, sizeof key, "k%" PRIu64, r % w->keys);
        bool del = (r >> 32) % 10 < 3;
        size_t vs = 1 + (size_t)((r >> 40) % VALUE_MAX);
        for (size_t j = 0; j < vs; j++)
            value[j] = (uint8_t)splitmix(&s);
        psl_err err;
        for (;;) {
            err = del ? scl_del(w->e, key, (size_t)ks) : scl_put(w->e, key, (size_t)ks, value, vs);
            scl_host_kick(w->h);
            if (err != PSL_ERR_BUSY)
                break;
            sched_yield();
        }
        if (err) {
            w->err = err;
            return NULL;
        }
        del ? w->dels++ : w->puts++;
        if ((r >> 48) % 8 == 0)
            sleep_ms(1 + (unsigned)((r >> 56) % 3)); /* let records of every size form */
    }
    double t0 = now_s();
    uint64_t ticket = scl_flush_ticket(w->e);
    while (!scl_flush_done(w->e, ticket)) {
        if (now_s() - t0 > G.timeout_s) {
            w->err = PSL_ERR_TIMEOUT;
            return NULL;
        }
        sleep_ms(5);
    }
    w->flush_s = now_s() - t0;
    struct scl_stats st;
    scl_get_stats(w->e, &st);
    w->flushed_seq = st.durable_seq;
    return NULL;
}

static void print_digests(struct worker *ws, uint8_t d[WORKERS][HASH_SIZE])
{
    for (unsigned i = 0; i < WORKERS; i++) {
        char hex[2 * HASH_SIZE + 1], wid[17];
        hex_encode(hex, d[i], HASH_SIZE);
        hex_encode(wid, scl_writer_id(ws[i].e), 8);
        struct scl_stats st;
        scl_get_stats(ws[i].e, &st);
        printf("worker %u writer %s digest %s sealed=%" PRIu64 " applied=%" PRIu64
               " ops_applied=%" PRIu64 " dup=%" PRIu64 " rejected=%" PRIu64 " fetches=%" PRIu64
               " resent=%" PRIu64 " epochs=%" PRIu64 "\n",
               i, wid, hex, st.sealed_seq, st.records_applied, st.ops_applied, st.duplicates,
               st.rejected, st.fetches, st.resent, st.epochs);
        for (unsigned r = 0; r < PSL_ERR__COUNT; r++)
            if (st.rejected_by[r])
                printf("worker %u   rejected %" PRIu64 " x %s\n", i, st.rejected_by[r],
                       psl_strerror((psl_err)r));
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: scl_cluster CAPSULE_DIR NATS_URL [--ops N] [--keys N] [--seed S] "
                        "[--timeout-s T]\n");
        return 2;
    }
    uint64_t ops = 4000, keys = 256, seed = 1;
    G.timeout_s = 30;
    for (int i = 3; i + 1 < argc; i += 2) {
        uint64_t v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--ops"))
            ops = v;
        else if (!strcmp(argv[i], "--keys") && v)
            keys = v;
        else if (!strcmp(argv[i], "--seed"))
            seed = v;
        else if (!strcmp(argv[i], "--timeout-s") && v)
            G.timeout_s = (double)v;
        else {
            fprintf(stderr, "scl_cluster: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (psl_crypto_init() != PSL_OK)
        fail("psl_crypto_init", PSL_ERR_NOMEM);
    log_set_level(PSL_LOG_WARN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    load_capsule(argv[1]);

    static struct worker ws[WORKERS];
    double t0 = now_s();
    for (unsigned i = 0; i < WORKERS; i++) {
        ws[i] = (struct worker){.index = i, .seed = seed * 1000003u + i, .ops = ops, .keys = keys};
        worker_start(&ws[i], argv[2]);
    }
    printf("scl_cluster: %d workers started (worker 0 coordinator), %" PRIu64
           " ops each on %" PRIu64 " keys, seed %" PRIu64 "\n",
           WORKERS, ops, keys, seed);
    pthread_t th[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0)
            fail("pthread_create", PSL_ERR_NOMEM);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    double t_flushed = now_s();
    int rc = 0;
    for (unsigned i = 0; i < WORKERS; i++) {
        if (ws[i].err) {
            printf("FAIL: scl_cluster: worker %u: %s (%s)\n", i,
                   ws[i].err == PSL_ERR_TIMEOUT ? "writes not durable in time" : "put/del failed",
                   psl_strerror(ws[i].err));
            rc = 1;
        } else {
            printf("worker %u: %" PRIu64 " puts, %" PRIu64 " deletes, durable up to seq %" PRIu64
                   " (flush took %.2f s)\n",
                   i, ws[i].puts, ws[i].dels, ws[i].flushed_seq, ws[i].flush_s);
        }
    }
    if (rc)
        goto out;

    /* Convergence: every worker holds every other's records up to its flushed head, and the
     * four digests are equal. */
    uint8_t d[WORKERS][HASH_SIZE];
    bool converged = false;
    double deadline = now_s() + G.timeout_s;
    while (!converged && now_s() < deadline) {
        converged = true;
        for (unsigned i = 0; i < WORKERS && converged; i++)
            for (unsigned j = 0; j < WORKERS && converged; j++)
                if (i != j && scl_peer_contiguous(ws[i].e, scl_writer_id(ws[j].e)) <
                                  ws[j].flushed_seq)
                    converged = false;
        for (unsigned i = 0; i < WORKERS; i++) {
            psl_err err = scl_digest(ws[i].e, d[i]);
            if (err)
                fail("scl_digest", err);
            if (memcmp(d[i], d[0], HASH_SIZE) != 0)
                converged = false;
        }
        if (!converged)
            sleep_ms(20);
    }
    print_digests(ws, d);
    for (unsigned i = 0; i < WORKERS; i++) {
        if (atomic_load_explicit(&ws[i].alert, memory_order_relaxed)) {
            printf("FAIL: scl_cluster: worker %u raised a fork alert among honest writers\n", i);
            rc = 1;
        }
    }
    if (!converged) {
        for (unsigned i = 0; i < WORKERS; i++)
            for (unsigned j = 0; j < WORKERS; j++)
                if (i != j)
                    printf("worker %u holds writer %u up to seq %" PRIu64 " (flushed %" PRIu64
                           ")\n",
                           i, j, scl_peer_contiguous(ws[i].e, scl_writer_id(ws[j].e)),
                           ws[j].flushed_seq);
        printf("FAIL: scl_cluster: states did not converge within %.0f s after the flush\n",
               G.timeout_s);
        rc = 1;
    } else if (!rc) {
        printf("PASS: scl_cluster: 4 digests equal; writes+flush %.2f s, convergence %.2f s "
               "after the last flush\n",
               t_flushed - t0, now_s() - t_flushed);
    }
out:
    for (unsigned i = 0; i < WORKERS; i++) {
        scl_host_stop(ws[i].h);
        fabric_destroy(ws[i].fabric);
        scl_destroy(ws[i].e);
    }
    signer_deinit(&G.owner);
    secret_free(G.capsule_key);
    return rc;
}
