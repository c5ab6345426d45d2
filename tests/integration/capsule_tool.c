/* capsule_tool.c: the driver of the integration tests of psl-capsuled (the scenario scripts
 * beside it). It plays every role around real storage servers over a real nats-server: the owner
 * (setup), writers (load, prime), an auditor that asks each server for everything it holds and
 * verifies it (compare, check-acked), a reader (fresh) and an attacker (inject, garbage). Each
 * subcommand exits 0 only when what it checks holds, and prints one clear line per finding
 * otherwise. Invariant it keeps: nothing here trusts what a server says; every record a check
 * relies on is fetched from the named server and verified against the capsule metadata. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "capsuled/client.h"
#include "capsule/proto.h"
#include "fabric/fabric.h"

#define TOOL_WRITERS_MAX 64u
#define PATH_SIZE        1024u

/* ---- options (one table for every subcommand; each reads what it needs) ---- */

struct opts {
    const char *fabric;
    unsigned servers, quorum;
    unsigned writers;
    uint64_t records;
    size_t value_size;
    unsigned ops;
    bool all_acks;
    uint32_t timeout_ms;
    const char *ack_log;
    long expect_writers;
    long long expect_total;
    long long expect_seq;
    int expect_lag_bound; /* -1: no expectation */
    unsigned min_servers;
    const char *kind;
    unsigned answers;
    uint32_t wait_ms;
    uint64_t count;
    uint64_t seed;
    size_t inflight_bytes;
    uint32_t resend_ms;
    const char *only; /* comma-separated server indices */
};

static void opts_default(struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->fabric = "nats://127.0.0.1:4222";
    o->servers = 3;
    o->quorum = 2;
    o->writers = 1;
    o->records = 100;
    o->value_size = 256;
    o->ops = 1;
    o->timeout_ms = 120000;
    o->expect_writers = -1;
    o->expect_total = -1;
    o->expect_seq = -1;
    o->expect_lag_bound = -1;
    o->count = 1000;
    o->seed = 1;
    o->inflight_bytes = 16u << 20;
    o->resend_ms = 1000;
}

static const char usage[] =
    "Usage: capsule_tool COMMAND DIR [OPTIONS]\n"
    "  setup DIR [--servers N] [--quorum K]   owner.key, s<i>.key, capsule.key, capsule.pslx\n"
    "  load DIR --fabric URL [--writers W] [--records R] [--value-size B] [--ops N]\n"
    "       [--all-acks] [--timeout-ms T] [--ack-log FILE] [--inflight-mb M] [--resend-ms T]\n"
    "  compare DIR --fabric URL [--expect-writers W] [--expect-total N] [--wait-ms T]\n"
    "       [--only 0,1]\n"
    "  heads DIR --fabric URL [--only 0,1]          writers and summed heads per server\n"
    "  check-acked DIR --fabric URL --ack-log FILE [--min-servers M] [--only 0,1]\n"
    "  prime DIR --fabric URL [--records R]       the victim writer of inject (victim.key)\n"
    "  inject DIR --fabric URL --kind forged|forged-cert|bitflip|replay|\n"
    "       wrong-capsule|uncertified|no-cert|oversized\n"
    "  fresh DIR --fabric URL [--answers N] [--expect-seq S] [--expect-writers W]\n"
    "       [--expect-lag-bound 0|1]\n"
    "  garbage DIR --fabric URL [--count N] [--seed S]\n"
    "Exit codes: 0 the check held, 1 it did not, 2 usage, 3 runtime error.\n";

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static int opts_parse(struct opts *o, int argc, char **argv)
{
    static const struct option table[] = {{"fabric", required_argument, NULL, 'f'},
                                          {"servers", required_argument, NULL, 'n'},
                                          {"quorum", required_argument, NULL, 'k'},
                                          {"writers", required_argument, NULL, 'w'},
                                          {"records", required_argument, NULL, 'r'},
                                          {"value-size", required_argument, NULL, 'b'},
                                          {"ops", required_argument, NULL, 'o'},
                                          {"all-acks", no_argument, NULL, 'A'},
                                          {"timeout-ms", required_argument, NULL, 't'},
                                          {"ack-log", required_argument, NULL, 'l'},
                                          {"expect-writers", required_argument, NULL, 'W'},
                                          {"expect-total", required_argument, NULL, 'T'},
                                          {"expect-seq", required_argument, NULL, 'S'},
                                          {"expect-lag-bound", required_argument, NULL, 'L'},
                                          {"min-servers", required_argument, NULL, 'm'},
                                          {"kind", required_argument, NULL, 'K'},
                                          {"answers", required_argument, NULL, 'a'},
                                          {"wait-ms", required_argument, NULL, 'x'},
                                          {"count", required_argument, NULL, 'c'},
                                          {"seed", required_argument, NULL, 's'},
                                          {"inflight-mb", required_argument, NULL, 'i'},
                                          {"resend-ms", required_argument, NULL, 'R'},
                                          {"only", required_argument, NULL, 'O'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", table, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        if (ch != 'f' && ch != 'l' && ch != 'K' && ch != 'O' && ch != 'A' && ch != 'h' && ch != '?')
            ok = parse_u64(optarg, &v);
        switch (ch) {
        case 'f':
            o->fabric = optarg;
            break;
        case 'n':
            o->servers = (unsigned)v;
            ok = ok && v >= 1 && v <= PSL_REPLICAS_MAX;
            break;
        case 'k':
            o->quorum = (unsigned)v;
            ok = ok && v >= 1;
            break;
        case 'w':
            o->writers = (unsigned)v;
            ok = ok && v >= 1 && v <= TOOL_WRITERS_MAX;
            break;
        case 'r':
            o->records = v;
            break;
        case 'b':
            o->value_size = (size_t)v;
            ok = ok && v <= PSL_VALUE_SIZE_MAX;
            break;
        case 'o':
            o->ops = (unsigned)v;
            ok = ok && v >= 1 && v <= 1000;
            break;
        case 'A':
            o->all_acks = true;
            break;
        case 't':
            o->timeout_ms = (uint32_t)v;
            break;
        case 'l':
            o->ack_log = optarg;
            break;
        case 'W':
            o->expect_writers = (long)v;
            break;
        case 'T':
            o->expect_total = (long long)v;
            break;
        case 'S':
            o->expect_seq = (long long)v;
            break;
        case 'L':
            o->expect_lag_bound = v ? 1 : 0;
            break;
        case 'm':
            o->min_servers = (unsigned)v;
            break;
        case 'K':
            o->kind = optarg;
            break;
        case 'a':
            o->answers = (unsigned)v;
            break;
        case 'x':
            o->wait_ms = (uint32_t)v;
            break;
        case 'c':
            o->count = v;
            break;
        case 's':
            o->seed = v;
            break;
        case 'i':
            o->inflight_bytes = (size_t)v << 20;
            ok = ok && v >= 1;
            break;
        case 'R':
            o->resend_ms = (uint32_t)v;
            ok = ok && v >= 1;
            break;
        case 'O':
            o->only = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            ok = false;
            break;
        }
        if (!ok) {
            fputs(usage, stderr);
            return 2;
        }
    }
    return 0;
}

/* ---- a set of SHA-256 digests of whole records (signature included) already verified ---- */

/* Servers holding the same records send the same bytes: verifying each distinct record once
 * (its raw bytes, signature included, hashed into this set) keeps a full audit of n servers at
 * about the cost of one. */
struct hset {
    uint8_t (*slot)[HASH_SIZE];
    size_t cap, count;
};

static bool hset_has(const struct hset *s, const uint8_t h[HASH_SIZE])
{
    if (!s->cap)
        return false;
    uint64_t x;
    memcpy(&x, h, sizeof x);
    static const uint8_t zero[HASH_SIZE];
    for (size_t j = (size_t)x & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (!memcmp(s->slot[j], zero, HASH_SIZE))
            return false;
        if (!memcmp(s->slot[j], h, HASH_SIZE))
            return true;
    }
}

static void hset_add(struct hset *s, const uint8_t h[HASH_SIZE])
{
    static const uint8_t zero[HASH_SIZE];
    if (hset_has(s, h) || !memcmp(h, zero, HASH_SIZE))
        return;
    if ((s->count + 1) * 2 > s->cap) {
        struct hset n = {.cap = s->cap ? s->cap * 2 : 1u << 16};
        n.slot = calloc(n.cap, HASH_SIZE);
        if (!n.slot) {
            fprintf(stderr, "capsule_tool: out of memory\n");
            exit(3);
        }
        for (size_t i = 0; i < s->cap; i++)
            if (memcmp(s->slot[i], zero, HASH_SIZE))
                hset_add(&n, s->slot[i]);
        free(s->slot);
        *s = n;
    }
    uint64_t x;
    memcpy(&x, h, sizeof x);
    size_t j = (size_t)x & (s->cap - 1);
    while (memcmp(s->slot[j], zero, HASH_SIZE))
        j = (j + 1) & (s->cap - 1);
    memcpy(s->slot[j], h, HASH_SIZE);
    s->count++;
}

/* ---- the capsule as the test sees it ---- */

struct tool {
    const char *dir;
    struct opts o;
    uint8_t *meta_buf; /* the export file, owned */
    const uint8_t *meta_raw;
    size_t meta_size;
    struct capsule_meta meta;
    struct signer owner;
    uint8_t *capsule_key; /* secret memory, owned */
    struct fabric *fabric;
    struct capsule_client *client;
    /* per-server requests (GET_HEADS to one named server) */
    uint8_t requester[HASH_SIZE];
    uint64_t rep_sub;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t want_id;
    uint8_t want_server[SIGN_PK_SIZE];
    uint8_t *reply_body;
    size_t reply_size;
    uint8_t reply_status;
    bool reply_got;
    struct hset verified; /* whole-record digests already verified by fetch_record */
};

static _Noreturn void die(const char *what, psl_err err)
{
    fprintf(stderr, "capsule_tool: error: %s: %s\n", what, psl_strerror(err));
    exit(3);
}

static void path_of(char out[PATH_SIZE], const char *dir, const char *name)
{
    snprintf(out, PATH_SIZE, "%s/%s", dir, name);
}

static void short_hex(char out[17], const uint8_t *id)
{
    hex_encode(out, id, 8);
}

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void read_signing_key(const char *path, struct signer *out)
{
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        die("secret_alloc", PSL_ERR_NOMEM);
    psl_err err = keyfile_read(path, KEYFILE_SIGNING, seed);
    if (!err)
        err = signer_init(out, seed);
    secret_free(seed);
    if (err)
        die(path, err);
}

/* Loads the capsule of DIR: metadata from capsule.pslx, the owner key and the capsule key. */
static void tool_load(struct tool *t)
{
    char p[PATH_SIZE];
    size_t size;
    struct export_view view;
    path_of(p, t->dir, "capsule.pslx");
    psl_err err = file_read_all(p, &t->meta_buf, &size);
    if (err || (err = export_parse(t->meta_buf, size, &view)))
        die(p, err);
    t->meta_raw = view.meta;
    t->meta_size = view.meta_size;
    export_view_free(&view);
    if ((err = meta_decode(&t->meta, t->meta_raw, t->meta_size)))
        die("capsule metadata", err);
    path_of(p, t->dir, "owner.key");
    read_signing_key(p, &t->owner);
    t->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!t->capsule_key)
        die("secret_alloc", PSL_ERR_NOMEM);
    path_of(p, t->dir, "capsule.key");
    if ((err = keyfile_read(p, KEYFILE_CAPSULE, t->capsule_key)))
        die(p, err);
}

static void on_tool_reply(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct tool *t = ctx;
    struct proto_reply r;
    if (proto_reply_open(&r, data, size) || memcmp(r.capsule, t->meta.name, HASH_SIZE) != 0)
        return;
    pthread_mutex_lock(&t->mu);
    if (!t->reply_got && r.request_id == t->want_id &&
        memcmp(r.server_pk, t->want_server, SIGN_PK_SIZE) == 0) {
        t->reply_body = malloc(r.body_size ? r.body_size : 1);
        if (t->reply_body) {
            memcpy(t->reply_body, r.body, r.body_size);
            t->reply_size = r.body_size;
            t->reply_status = r.status;
            t->reply_got = true;
            pthread_cond_broadcast(&t->cv);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

static void tool_connect(struct tool *t)
{
    psl_err err = fabric_nats_connect(t->o.fabric, "capsule_tool", &t->fabric);
    if (err)
        die("connect to the fabric", err);
    struct capsule_client_config cc = {.fabric = t->fabric,
                                       .meta = &t->meta,
                                       .resend_ms = t->o.resend_ms,
                                       .unacked_bytes_max = t->o.inflight_bytes};
    if ((err = capsule_client_open(&t->client, &cc)))
        die("capsule_client_open", err);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    rng_bytes(t->requester, HASH_SIZE);
    char rhex[2 * HASH_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(rhex, t->requester, HASH_SIZE);
    topic_capsule(topic, t->meta.name, "rep", rhex);
    if ((err = fabric_subscribe(t->fabric, topic, on_tool_reply, t, &t->rep_sub)))
        die("subscribe", err);
    if ((err = fabric_flush(t->fabric)))
        die("fabric flush", err);
}

static void tool_close(struct tool *t)
{
    if (t->client) {
        (void)fabric_flush(t->fabric);
        fabric_unsubscribe(t->fabric, t->rep_sub);
        capsule_client_close(t->client);
        fabric_destroy(t->fabric);
    }
    signer_deinit(&t->owner);
    secret_free(t->capsule_key);
    free(t->meta_buf);
    free(t->verified.slot);
}

/* Asks one server (by key) for the heads it holds. *body is owned by the caller. */
static psl_err heads_from(struct tool *t, const uint8_t server_pk[SIGN_PK_SIZE],
                          uint32_t timeout_ms, uint8_t **body, size_t *count)
{
    struct proto_req q = {.type = REQ_GET_HEADS, .request_id = rng_u64()};
    memcpy(q.requester, t->requester, HASH_SIZE);
    memcpy(q.capsule, t->meta.name, HASH_SIZE);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, buf);
    char shex[2 * SIGN_PK_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(shex, server_pk, SIGN_PK_SIZE);
    topic_capsule(topic, t->meta.name, "req", shex);
    pthread_mutex_lock(&t->mu);
    t->want_id = q.request_id;
    memcpy(t->want_server, server_pk, SIGN_PK_SIZE);
    t->reply_got = false;
    pthread_mutex_unlock(&t->mu);
    psl_err err = fabric_publish(t->fabric, topic, buf, n);
    if (err)
        return err;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&t->mu);
    while (!t->reply_got)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0 && !t->reply_got)
            break;
    bool got = t->reply_got;
    t->want_id = 0;
    t->reply_got = false;
    uint8_t *b = t->reply_body;
    size_t size = t->reply_size;
    uint8_t status = t->reply_status;
    t->reply_body = NULL;
    pthread_mutex_unlock(&t->mu);
    if (!got)
        return PSL_ERR_TIMEOUT;
    if (status != REP_OK) {
        free(b);
        return PSL_ERR_BUSY;
    }
    if ((err = proto_heads_count(b, size, count))) {
        free(b);
        return err;
    }
    *body = b;
    return PSL_OK;
}

/* Selected servers: all of the replica set, or the --only list. */
static void selected_servers(const struct tool *t, bool sel[PSL_REPLICAS_MAX])
{
    for (unsigned i = 0; i < PSL_REPLICAS_MAX; i++)
        sel[i] = !t->o.only && i < t->meta.replica_count;
    if (!t->o.only)
        return;
    const char *p = t->o.only;
    while (*p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p)
            break;
        if (v < t->meta.replica_count)
            sel[v] = true;
        p = *end == ',' ? end + 1 : end;
    }
}

/* ---- setup ---- */

static void write_signing_key(const char *path, uint8_t pk_out[SIGN_PK_SIZE])
{
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    struct signer s;
    if (!seed)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(seed, SIGN_SEED_SIZE);
    psl_err err = signer_init(&s, seed);
    if (!err)
        err = keyfile_write(path, KEYFILE_SIGNING, seed, s.pk);
    if (err)
        die(path, err);
    memcpy(pk_out, s.pk, SIGN_PK_SIZE);
    signer_deinit(&s);
    secret_free(seed);
}

static int cmd_setup(struct tool *t)
{
    struct opts *o = &t->o;
    if (o->quorum > o->servers) {
        fprintf(stderr, "capsule_tool: --quorum %u is larger than --servers %u\n", o->quorum,
                o->servers);
        return 2;
    }
    if (mkdir(t->dir, 0700) != 0 && errno != EEXIST)
        die(t->dir, PSL_ERR_IO);
    char p[PATH_SIZE];
    uint8_t pk[SIGN_PK_SIZE];
    path_of(p, t->dir, "owner.key");
    write_signing_key(p, pk);
    read_signing_key(p, &t->owner);
    struct capsule_meta m;
    memset(&m, 0, sizeof m);
    m.version = META_VERSION;
    m.suite = PSL_SUITE_1;
    m.created_ms = clock_wall_ms();
    static const char label[] = "psl integration test";
    m.label_size = sizeof label - 1;
    memcpy(m.label, label, sizeof label - 1);
    m.quorum_k = (uint8_t)o->quorum;
    m.replica_count = (uint8_t)o->servers;
    for (unsigned i = 0; i < o->servers; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%u.key", i);
        path_of(p, t->dir, name);
        write_signing_key(p, m.replicas[i]);
    }
    psl_err err = meta_sign(&m, &t->owner);
    uint8_t enc[META_SIZE_MAX];
    size_t enc_size;
    if (err || (err = meta_encode(&m, enc, sizeof enc, &enc_size)))
        die("metadata", err);
    uint8_t *ck = secret_alloc(AEAD_KEY_SIZE);
    if (!ck)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(ck, AEAD_KEY_SIZE);
    path_of(p, t->dir, "capsule.key");
    if ((err = keyfile_write(p, KEYFILE_CAPSULE, ck, NULL)))
        die(p, err);
    secret_free(ck);
    path_of(p, t->dir, "capsule.pslx");
    FILE *f = fopen(p, "wx");
    if (!f)
        die(p, PSL_ERR_EXISTS);
    struct export_writer x;
    export_begin(&x, f, enc, enc_size);
    err = export_finish(&x);
    if (fclose(f) != 0 || err)
        die(p, PSL_ERR_IO);
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, m.name, HASH_SIZE);
    printf("%s\n", hex);
    signer_deinit(&t->owner);
    return 0;
}

/* ---- writers ---- */

struct twriter {
    struct tool *t;
    unsigned index;
    struct writer_keys wk;
    struct writer_cert cert;
    struct record_chain chain;
    uint64_t lamport;
    uint8_t *buf;
    size_t cap;
    uint8_t (*hashes)[HASH_SIZE]; /* hashes[seq - 1], owned */
    uint64_t records;             /* DATA records to write after the CERT */
    psl_err err;
    const char *err_what;
    double t_published;
};

/* Creates a writer (fresh keys, or from sign_seed) certified by the owner. */
static void twriter_init(struct twriter *w, struct tool *t, unsigned index,
                         const uint8_t *sign_seed, size_t payload_max)
{
    memset(w, 0, sizeof *w);
    w->t = t;
    w->index = index;
    /* A writer made again from its signing seed (the victim) keeps its kx key too: servers
     * know that one from its CERT and derive its ACK keys from it. */
    uint8_t kx_seed[HASH_SIZE];
    if (sign_seed)
        hash_sha256(kx_seed, sign_seed, SIGN_SEED_SIZE);
    psl_err err = writer_keys_init(&w->wk, sign_seed, sign_seed ? kx_seed : NULL, t->capsule_key);
    secret_wipe(kx_seed, sizeof kx_seed);
    if (err)
        die("writer_keys_init", err);
    /* Its ACKs are then checked by their MACs, as a writer does. */
    if (t->client && (err = capsule_client_add_writer(t->client, &w->wk)))
        die("capsule_client_add_writer", err);
    uint64_t now = clock_wall_ms();
    w->cert.role = ROLE_WORKER;
    memcpy(w->cert.capsule, t->meta.name, HASH_SIZE);
    memcpy(w->cert.sign_pk, w->wk.sign.pk, SIGN_PK_SIZE);
    memcpy(w->cert.kx_pk, w->wk.kx.pk, KX_PK_SIZE);
    if (t->meta.measurement_count)
        memcpy(w->cert.measurement, t->meta.measurements[0], HASH_SIZE);
    w->cert.not_before_ms = now - 3600 * 1000ull;
    w->cert.not_after_ms = now + 7 * 24 * 3600 * 1000ull;
    w->cert.serial = rng_u64();
    cert_sign(&w->cert, &t->owner);
    record_chain_init(&w->chain, t->meta.name);
    w->cap = record_sealed_size(payload_max + 1024, REC_DATA);
    w->buf = malloc(w->cap);
    if (!w->buf)
        die("malloc", PSL_ERR_NOMEM);
}

static void twriter_deinit(struct twriter *w)
{
    writer_keys_deinit(&w->wk);
    free(w->buf);
    free(w->hashes);
}

/* Seals the writer's CERT record into w->buf; returns its size. */
static size_t seal_cert(struct twriter *w)
{
    struct wr wr;
    wr_init(&wr, w->buf + PSL_RECORD_HEADER_SIZE, w->cap - PSL_RECORD_HEADER_SIZE);
    certpl_encode(&wr, &w->cert, NULL);
    if (wr.err)
        die("certpl_encode", wr.err);
    size_t size;
    uint8_t hash[HASH_SIZE];
    psl_err err = record_chain_seal(&w->chain, &w->wk, REC_CERT, ++w->lamport, w->buf, w->cap,
                                    wr.pos, &size, hash);
    if (err)
        die("record_chain_seal", err);
    if (w->hashes)
        memcpy(w->hashes[0], hash, HASH_SIZE);
    return size;
}

/* Seals the writer's next DATA record (ops PUTs of value_size bytes each) into w->buf. The
 * payload is written field by field in the DATA format (docs/protocol.md) so that the value bytes
 * need no separate buffer. */
static size_t seal_data(struct twriter *w, unsigned ops, size_t value_size)
{
    struct wr wr;
    wr_init(&wr, w->buf + PSL_RECORD_HEADER_SIZE,
            w->cap - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
    uint64_t seq = w->chain.seq + 1;
    wr_u32(&wr, ops);
    for (unsigned i = 0; i < ops; i++) {
        char key[48];
        int key_size = snprintf(key, sizeof key, "w%u/s%" PRIu64 "/o%u", w->index, seq, i);
        wr_u8(&wr, OP_PUT);
        wr_u64(&wr, ++w->lamport);
        wr_u16(&wr, (uint16_t)key_size);
        wr_u32(&wr, (uint32_t)value_size);
        wr_bytes(&wr, key, (size_t)key_size);
        uint8_t *v = wr_reserve(&wr, value_size);
        if (v) {
            memset(v, (int)(seq & 0xff), value_size);
            if (value_size >= 8)
                put_le64(v, seq);
        }
    }
    if (wr.err)
        die("encoding a DATA payload", wr.err);
    size_t size;
    uint8_t hash[HASH_SIZE];
    psl_err err = record_chain_seal(&w->chain, &w->wk, REC_DATA, w->lamport, w->buf, w->cap, wr.pos,
                                    &size, hash);
    if (err)
        die("record_chain_seal", err);
    if (w->hashes)
        memcpy(w->hashes[seq - 1], hash, HASH_SIZE);
    return size;
}

static void *writer_main(void *arg)
{
    struct twriter *w = arg;
    struct tool *t = w->t;
    size_t size = seal_cert(w);
    psl_err err = capsule_client_publish(t->client, w->buf, size, t->o.timeout_ms);
    for (uint64_t i = 0; !err && i < w->records; i++) {
        size = seal_data(w, t->o.ops, t->o.value_size);
        err = capsule_client_publish(t->client, w->buf, size, t->o.timeout_ms);
    }
    w->t_published = now_s();
    if (err) {
        w->err = err;
        w->err_what = "publish";
    }
    return NULL;
}

/* Highest seq (and its hash) each replica-set server acknowledged, per writer: an ACK covers
 * the server's whole contiguous prefix, so this is everything the server vouched for. */
struct ack_track {
    pthread_mutex_t mu;
    const struct capsule_meta *meta;
    size_t writer_count;
    uint8_t writers[TOOL_WRITERS_MAX][HASH_SIZE];
    uint64_t seq[TOOL_WRITERS_MAX][PSL_REPLICAS_MAX];
    uint8_t hash[TOOL_WRITERS_MAX][PSL_REPLICAS_MAX][HASH_SIZE];
    uint64_t bad;
    uint64_t regressions; /* a server acknowledged less than it had before: it lost records */
};

static void on_any_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct ack_track *a = ctx;
    struct ack k;
    int idx;
    if (ack_decode(&k, data, size) || ack_verify(&k, a->meta) ||
        (idx = meta_replica_index(a->meta, k.server_pk)) < 0) {
        pthread_mutex_lock(&a->mu);
        a->bad++;
        pthread_mutex_unlock(&a->mu);
        return;
    }
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->writer_count; i++) {
        if (memcmp(a->writers[i], k.writer, HASH_SIZE) != 0)
            continue;
        /* A server acknowledges its contiguous head, which only grows while it keeps what it
         * stored: a lower ACK after a higher one means it lost acknowledged records. */
        if (k.seq < a->seq[i][idx]) {
            a->regressions++;
            fprintf(stderr,
                    "capsule_tool: server %d acknowledged seq %" PRIu64 " after %" PRIu64 "\n", idx,
                    k.seq, a->seq[i][idx]);
        } else if (k.seq > a->seq[i][idx]) {
            a->seq[i][idx] = k.seq;
            memcpy(a->hash[i][idx], k.record_hash, HASH_SIZE);
        }
    }
    pthread_mutex_unlock(&a->mu);
}

static int cmd_load(struct tool *t)
{
    struct opts *o = &t->o;
    tool_load(t);
    tool_connect(t);
    unsigned n = t->meta.replica_count;
    static struct ack_track track;
    pthread_mutex_init(&track.mu, NULL);
    track.meta = &t->meta;
    struct twriter *ws = calloc(o->writers, sizeof *ws);
    if (!ws)
        die("calloc", PSL_ERR_NOMEM);
    size_t payload_max = 4 + (size_t)o->ops * (DATA_OP_OVERHEAD + 48 + o->value_size);
    for (unsigned i = 0; i < o->writers; i++) {
        twriter_init(&ws[i], t, i, NULL, payload_max);
        ws[i].records = o->records;
        ws[i].hashes = calloc(o->records + 1, HASH_SIZE);
        if (!ws[i].hashes)
            die("calloc", PSL_ERR_NOMEM);
        memcpy(track.writers[i], ws[i].wk.writer_id, HASH_SIZE);
    }
    track.writer_count = o->writers;
    char topic[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(topic, t->meta.name, "ack", "*");
    uint64_t ack_sub;
    psl_err err = fabric_subscribe(t->fabric, topic, on_any_ack, &track, &ack_sub);
    if (err || (err = fabric_flush(t->fabric)))
        die("subscribe to ACKs", err);

    double t0 = now_s();
    pthread_t th[TOOL_WRITERS_MAX];
    for (unsigned i = 0; i < o->writers; i++)
        if (pthread_create(&th[i], NULL, writer_main, &ws[i]) != 0)
            die("pthread_create", PSL_ERR_NOMEM);
    for (unsigned i = 0; i < o->writers; i++)
        pthread_join(th[i], NULL);
    double t_pub = now_s();
    int rc = 0;
    uint64_t deadline_ns = clock_mono_ns() + (uint64_t)o->timeout_ms * 1000000u;
    for (unsigned i = 0; i < o->writers; i++) {
        struct twriter *w = &ws[i];
        if (w->err) {
            fprintf(stderr, "capsule_tool: writer %u: %s failed: %s\n", i, w->err_what,
                    psl_strerror(w->err));
            rc = 1;
            continue;
        }
        uint64_t left =
            deadline_ns > clock_mono_ns() ? (deadline_ns - clock_mono_ns()) / 1000000u : 0;
        if ((err = capsule_client_wait_durable(t->client, w->wk.writer_id, w->chain.seq,
                                               (uint32_t)left))) {
            fprintf(stderr,
                    "capsule_tool: writer %u: seq %" PRIu64 " not durable (durable %" PRIu64
                    "): %s\n",
                    i, w->chain.seq, capsule_client_durable_seq(t->client, w->wk.writer_id),
                    psl_strerror(err));
            rc = 1;
        }
    }
    double t_durable = now_s();
    uint64_t total = (uint64_t)o->writers * (o->records + 1);
    printf("load: writers=%u records=%" PRIu64
           " record_bytes=%zu published_in=%.2fs durable_in=%.2fs "
           "durable_rate=%.0f records/s\n",
           o->writers, total, record_sealed_size(payload_max, REC_DATA), t_pub - t0, t_durable - t0,
           (double)total / (t_durable - t0));
    if (rc == 0 && o->all_acks) {
        for (unsigned i = 0; i < o->writers; i++) {
            struct twriter *w = &ws[i];
            while (capsule_client_ack_count(t->client, w->wk.writer_id, w->chain.seq) < n &&
                   clock_mono_ns() < deadline_ns)
                sleep_ms(10);
            unsigned got = capsule_client_ack_count(t->client, w->wk.writer_id, w->chain.seq);
            if (got < n) {
                fprintf(stderr,
                        "capsule_tool: writer %u: seq %" PRIu64
                        " acknowledged by %u of %u servers\n",
                        i, w->chain.seq, got, n);
                rc = 1;
            }
        }
        printf("load: all %u servers acknowledged every record after %.2fs\n", n, now_s() - t0);
    }
    /* The ACKs that arrived on the tracker settle a moment after the client saw them. */
    sleep_ms(100);
    fabric_unsubscribe(t->fabric, ack_sub);
    struct capsule_client_stats cs;
    capsule_client_get_stats(t->client, &cs);
    printf("load: published=%" PRIu64 " resent=%" PRIu64 " acks_valid=%" PRIu64
           " acks_rejected=%" PRIu64 " acks_conflicting=%" PRIu64 "\n",
           cs.published, cs.resent, cs.acks_valid, cs.acks_rejected, cs.acks_conflicting);
    printf("load: ACK regressions (a server acknowledging less than before): %" PRIu64 "\n",
           track.regressions);
    if (track.regressions)
        rc = 1;
    if (cs.acks_conflicting) {
        fprintf(stderr, "capsule_tool: a server acknowledged a different record (fork evidence)\n");
        rc = 1;
    }
    if (o->ack_log) {
        FILE *f = fopen(o->ack_log, "a");
        if (!f)
            die(o->ack_log, PSL_ERR_IO);
        for (unsigned i = 0; i < o->writers; i++) {
            struct twriter *w = &ws[i];
            char whex[2 * HASH_SIZE + 1], hhex[2 * HASH_SIZE + 1];
            hex_encode(whex, w->wk.writer_id, HASH_SIZE);
            /* Only what was confirmed durable: that is the promise later checks hold us to. */
            uint64_t durable = capsule_client_durable_seq(t->client, w->wk.writer_id);
            for (uint64_t s = 1; s <= durable && s <= w->chain.seq; s++) {
                hex_encode(hhex, w->hashes[s - 1], HASH_SIZE);
                fprintf(f, "rec %s %" PRIu64 " %s\n", whex, s, hhex);
            }
            for (unsigned k = 0; k < n; k++) {
                if (!track.seq[i][k])
                    continue;
                char shex[2 * SIGN_PK_SIZE + 1];
                hex_encode(shex, t->meta.replicas[k], SIGN_PK_SIZE);
                hex_encode(hhex, track.hash[i][k], HASH_SIZE);
                fprintf(f, "ack %s %s %" PRIu64 " %s\n", shex, whex, track.seq[i][k], hhex);
            }
        }
        if (fclose(f) != 0)
            die(o->ack_log, PSL_ERR_IO);
    }
    for (unsigned i = 0; i < o->writers; i++)
        twriter_deinit(&ws[i]);
    free(ws);
    tool_close(t);
    return rc;
}

/* ---- fetching and verifying what one server holds ---- */

/* The payload key of a writer, as a reader holding the capsule key derives it. */
static psl_err reader_key_init(struct aead_key *key, const uint8_t *capsule_key,
                               const uint8_t writer_id[HASH_SIZE])
{
    uint8_t *k = secret_alloc(AEAD_KEY_SIZE);
    if (!k)
        return PSL_ERR_NOMEM;
    psl_err err = record_key_derive(k, capsule_key, writer_id);
    if (!err)
        err = aead_key_init(key, k);
    secret_free(k);
    return err;
}

struct entry {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
};

struct fetch_ctx {
    struct tool *t;
    const uint8_t *writer;
    uint64_t next_seq; /* the seq expected next */
    struct writer_cert cert;
    bool have_cert;
    uint8_t prev[HASH_SIZE];
    struct aead_key key;
    uint8_t *plain;
    psl_err err; /* first failure */
    uint64_t err_seq;
    bool gap;          /* the server holds records past a seq it does not hold */
    struct entry *out; /* appended to */
    size_t *out_count, *out_cap;
};

static bool fetch_record(void *ctx, const uint8_t *rec, size_t size)
{
    struct fetch_ctx *f = ctx;
    struct record_view v;
    psl_err err = record_parse(&v, rec, size);
    if (!err && memcmp(v.h.writer, f->writer, HASH_SIZE) != 0)
        err = PSL_ERR_UNKNOWN_WRITER;
    if (!err && v.h.seq > f->next_seq) {
        f->gap = true; /* stored out of order past a missing record: the prefix ends here */
        return false;
    }
    if (!err && v.h.seq < f->next_seq)
        err = PSL_ERR_FORK; /* a second record for a seq already seen */
    uint64_t now = clock_wall_ms();
    uint8_t whole[HASH_SIZE];
    hash_sha256(whole, rec, size);
    if (!err && v.h.seq == 1) {
        err = record_check_cert(&v, &f->t->meta, now, &f->cert);
        f->have_cert = err == PSL_OK;
        if (!err)
            err = reader_key_init(&f->key, f->t->capsule_key, f->cert.writer_id);
    } else if (!err && hset_has(&f->t->verified, whole)) {
        /* The same bytes verified before: only the link to this chain is new. */
        if (memcmp(v.h.prev, f->prev, HASH_SIZE) != 0)
            err = PSL_ERR_BAD_PREV;
    } else if (!err) {
        err = f->have_cert ? record_check(&v, &f->t->meta, &f->cert, now, f->prev)
                           : PSL_ERR_UNKNOWN_WRITER;
        size_t plain_size, ops;
        if (!err && v.h.type == REC_DATA &&
            !(err = record_open(&v, &f->key, f->plain, PSL_RECORD_PAYLOAD_SIZE_MAX, &plain_size)))
            err = data_count(f->plain, plain_size, &ops);
        if (!err)
            hset_add(&f->t->verified, whole);
    }
    if (err) {
        f->err = err;
        f->err_seq = f->next_seq;
        return false;
    }
    if (*f->out_count == *f->out_cap) {
        size_t cap = *f->out_cap ? *f->out_cap * 2 : 4096;
        struct entry *n = realloc(f->out, cap * sizeof *n);
        if (!n)
            die("realloc", PSL_ERR_NOMEM);
        f->out = n;
        *f->out_cap = cap;
    }
    struct entry *e = &f->out[(*f->out_count)++];
    memcpy(e->writer, f->writer, HASH_SIZE);
    e->seq = v.h.seq;
    memcpy(e->hash, v.hash, HASH_SIZE);
    memcpy(f->prev, v.hash, HASH_SIZE);
    f->next_seq++;
    return true;
}

/* Fetches records from..to of a writer from one server, in chunks the protocol allows, through
 * fetch_record (which verifies and stops at the first failure or gap). */
static psl_err fetch_writer(struct tool *t, unsigned server, struct fetch_ctx *f, uint64_t to,
                            uint32_t timeout_ms)
{
    while (!f->err && !f->gap && f->next_seq <= to) {
        uint64_t from = f->next_seq;
        uint64_t end = to - from >= PROTO_RANGE_MAX ? from + PROTO_RANGE_MAX - 1 : to;
        psl_err err = capsule_client_range(t->client, t->meta.replicas[server], f->writer, from,
                                           end, timeout_ms, fetch_record, f);
        if (err)
            return err;
        if (f->next_seq == from)
            break; /* the server has nothing at from: a gap */
    }
    return PSL_OK;
}

static void fetch_init(struct fetch_ctx *f, struct tool *t, const uint8_t *writer,
                       struct entry **out, size_t *count, size_t *cap)
{
    memset(f, 0, sizeof *f);
    f->t = t;
    f->writer = writer;
    f->next_seq = 1;
    f->out = *out;
    f->out_count = count;
    f->out_cap = cap;
    f->plain = malloc(PSL_RECORD_PAYLOAD_SIZE_MAX);
    if (!f->plain)
        die("malloc", PSL_ERR_NOMEM);
}

static void fetch_deinit(struct fetch_ctx *f, struct entry **out)
{
    *out = f->out;
    aead_key_deinit(&f->key);
    free(f->plain);
}

/* What one server holds: its heads, then every record of every writer, verified. */
struct snapshot {
    bool answered;
    uint8_t *heads; /* GET_HEADS body, owned */
    size_t head_count;
    size_t heads_size;
    bool ok;
    char problem[256];
    struct entry *e;
    size_t n, cap;
    uint8_t digest[HASH_SIZE];
};

static void snapshot_free(struct snapshot *s)
{
    free(s->heads);
    free(s->e);
    memset(s, 0, sizeof *s);
}

static void snapshot_heads(struct tool *t, unsigned server, struct snapshot *s, uint32_t timeout_ms)
{
    free(s->heads);
    s->heads = NULL;
    s->answered =
        heads_from(t, t->meta.replicas[server], timeout_ms, &s->heads, &s->head_count) == PSL_OK;
    s->heads_size = s->answered ? 4 + s->head_count * PROTO_HEAD_ENTRY_SIZE : 0;
}

static void snapshot_records(struct tool *t, unsigned server, struct snapshot *s,
                             uint32_t timeout_ms)
{
    s->ok = s->answered;
    if (!s->answered) {
        snprintf(s->problem, sizeof s->problem, "no answer to GET_HEADS");
        return;
    }
    for (size_t i = 0; i < s->head_count && s->ok; i++) {
        struct proto_head h;
        proto_head_at(s->heads, i, &h);
        char w16[17];
        short_hex(w16, h.writer);
        if (h.forked || h.contiguous != h.max_seq) {
            snprintf(s->problem, sizeof s->problem,
                     "writer %s: contiguous %" PRIu64 " max %" PRIu64 "%s", w16, h.contiguous,
                     h.max_seq, h.forked ? " FORKED" : "");
            s->ok = false;
            break;
        }
        struct fetch_ctx f;
        fetch_init(&f, t, h.writer, &s->e, &s->n, &s->cap);
        psl_err err = fetch_writer(t, server, &f, h.max_seq, timeout_ms);
        fetch_deinit(&f, &s->e);
        if (err || f.err) {
            snprintf(s->problem, sizeof s->problem, "writer %s: record %" PRIu64 ": %s", w16,
                     f.err ? f.err_seq : f.next_seq, psl_strerror(err ? err : f.err));
            s->ok = false;
        } else if (f.next_seq != h.max_seq + 1) {
            snprintf(s->problem, sizeof s->problem,
                     "writer %s: got records up to %" PRIu64 " of %" PRIu64, w16, f.next_seq - 1,
                     h.max_seq);
            s->ok = false;
        } else if (memcmp(f.prev, h.hash, HASH_SIZE) != 0) {
            snprintf(s->problem, sizeof s->problem,
                     "writer %s: head hash does not match its records", w16);
            s->ok = false;
        }
    }
    hash_sha256(s->digest, s->e, s->n * sizeof *s->e);
}

static int cmd_compare(struct tool *t)
{
    struct opts *o = &t->o;
    tool_load(t);
    tool_connect(t);
    bool sel[PSL_REPLICAS_MAX];
    selected_servers(t, sel);
    struct snapshot snap[PSL_REPLICAS_MAX];
    memset(snap, 0, sizeof snap);
    unsigned n = t->meta.replica_count;
    double t0 = now_s();
    uint64_t deadline = clock_mono_ns() + (uint64_t)o->wait_ms * 1000000u;
    int first = -1;
    bool same = false;
    /* Cheap convergence test on the heads first; the full fetch runs once they agree. */
    for (unsigned round = 0;; round++) {
        same = true;
        first = -1;
        for (unsigned i = 0; i < n; i++) {
            if (!sel[i])
                continue;
            snapshot_heads(t, i, &snap[i], 2000);
            if (!snap[i].answered) {
                same = false;
                continue;
            }
            for (size_t k = 0; k < snap[i].head_count; k++) {
                struct proto_head h;
                proto_head_at(snap[i].heads, k, &h);
                same &= h.contiguous == h.max_seq && !h.forked;
            }
            if (first < 0)
                first = (int)i;
            else
                same &= snap[i].heads_size == snap[first].heads_size &&
                        memcmp(snap[i].heads, snap[first].heads, snap[i].heads_size) == 0;
        }
        if (same || clock_mono_ns() >= deadline)
            break;
        if (round % 20 == 0 && round) {
            printf("compare: waiting for convergence (%.1fs):", now_s() - t0);
            for (unsigned i = 0; i < n; i++) {
                uint64_t sum = 0;
                for (size_t k = 0; sel[i] && snap[i].answered && k < snap[i].head_count; k++) {
                    struct proto_head h;
                    proto_head_at(snap[i].heads, k, &h);
                    sum += h.contiguous;
                }
                if (sel[i])
                    printf(" s%u=%s%" PRIu64, i, snap[i].answered ? "" : "(no answer)", sum);
            }
            printf("\n");
            fflush(stdout);
        }
        sleep_ms(250);
    }
    printf("compare: heads %s after %.2fs\n", same ? "agree" : "DIFFER", now_s() - t0);
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!sel[i])
            continue;
        snapshot_records(t, i, &snap[i], 20000);
        char pk16[17], d16[17];
        short_hex(pk16, t->meta.replicas[i]);
        short_hex(d16, snap[i].digest);
        printf("compare: s%u %s writers=%zu records=%zu digest=%s %s%s\n", i, pk16,
               snap[i].head_count, snap[i].n, d16,
               snap[i].ok ? "verified" : "FAILED: ", snap[i].ok ? "" : snap[i].problem);
        if (!snap[i].ok)
            rc = 1;
        if (o->expect_writers >= 0 && snap[i].head_count != (size_t)o->expect_writers) {
            printf("compare: s%u holds %zu writers, expected %ld\n", i, snap[i].head_count,
                   o->expect_writers);
            rc = 1;
        }
        if (o->expect_total >= 0 && snap[i].n != (size_t)o->expect_total) {
            printf("compare: s%u holds %zu records, expected %lld\n", i, snap[i].n,
                   o->expect_total);
            rc = 1;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!sel[i] || first < 0 || (int)i == first)
            continue;
        if (snap[i].n != snap[first].n ||
            memcmp(snap[i].digest, snap[first].digest, HASH_SIZE) != 0) {
            printf("compare: s%u and s%d hold different record sets\n", i, first);
            rc = 1;
        }
    }
    if (first < 0) {
        printf("compare: no server answered\n");
        rc = 1;
    }
    printf("compare: %s\n", rc ? "FAILED" : "identical, fully verified, contiguous record sets");
    for (unsigned i = 0; i < n; i++)
        snapshot_free(&snap[i]);
    tool_close(t);
    return rc;
}

/* Prints each selected server's heads: writers and the sum of their contiguous heads. */
static int cmd_heads(struct tool *t)
{
    tool_load(t);
    tool_connect(t);
    bool sel[PSL_REPLICAS_MAX];
    selected_servers(t, sel);
    int rc = 0;
    for (unsigned i = 0; i < t->meta.replica_count; i++) {
        if (!sel[i])
            continue;
        struct snapshot s;
        memset(&s, 0, sizeof s);
        snapshot_heads(t, i, &s, 2000);
        uint64_t contiguous = 0, max = 0;
        for (size_t k = 0; s.answered && k < s.head_count; k++) {
            struct proto_head h;
            proto_head_at(s.heads, k, &h);
            contiguous += h.contiguous;
            max += h.max_seq;
        }
        if (s.answered)
            printf("heads: s%u writers=%zu contiguous=%" PRIu64 " max=%" PRIu64 "\n", i,
                   s.head_count, contiguous, max);
        else
            printf("heads: s%u no answer\n", i);
        rc |= !s.answered;
        snapshot_free(&s);
    }
    tool_close(t);
    return rc;
}

/* ---- check-acked ---- */

struct logged_writer {
    uint8_t id[HASH_SIZE];
    uint64_t max_seq;
    uint8_t (*hash)[HASH_SIZE]; /* hash[seq - 1]; zeros where the log has no line */
    uint64_t cap;
    unsigned *held; /* servers holding each seq */
    uint64_t ack_seq[PSL_REPLICAS_MAX];
    uint8_t ack_hash[PSL_REPLICAS_MAX][HASH_SIZE];
};

static struct logged_writer *logged_find(struct logged_writer **ws, size_t *count, size_t *cap,
                                         const uint8_t id[HASH_SIZE])
{
    for (size_t i = 0; i < *count; i++)
        if (memcmp((*ws)[i].id, id, HASH_SIZE) == 0)
            return &(*ws)[i];
    if (*count == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct logged_writer *n = realloc(*ws, c * sizeof *n);
        if (!n)
            die("realloc", PSL_ERR_NOMEM);
        *ws = n;
        *cap = c;
    }
    struct logged_writer *w = &(*ws)[(*count)++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, id, HASH_SIZE);
    return w;
}

static int cmd_check_acked(struct tool *t)
{
    struct opts *o = &t->o;
    if (!o->ack_log) {
        fputs("capsule_tool: check-acked needs --ack-log FILE\n", stderr);
        return 2;
    }
    tool_load(t);
    FILE *f = fopen(o->ack_log, "r");
    if (!f)
        die(o->ack_log, PSL_ERR_IO);
    struct logged_writer *ws = NULL;
    size_t wcount = 0, wcap = 0;
    char line[512];
    uint64_t recs = 0, acks = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[8], a[80], b[80], c[80], d[80];
        int k = sscanf(line, "%7s %79s %79s %79s %79s", kind, a, b, c, d);
        uint8_t writer[HASH_SIZE], hash[HASH_SIZE], server[SIGN_PK_SIZE];
        uint64_t seq;
        if (k == 4 && !strcmp(kind, "rec") && !hex_decode(writer, HASH_SIZE, a) &&
            parse_u64(b, &seq) && seq >= 1 && !hex_decode(hash, HASH_SIZE, c)) {
            struct logged_writer *w = logged_find(&ws, &wcount, &wcap, writer);
            if (seq > w->cap) {
                uint64_t nc = seq * 2;
                uint8_t(*nh)[HASH_SIZE] = realloc(w->hash, nc * HASH_SIZE);
                if (!nh)
                    die("realloc", PSL_ERR_NOMEM);
                memset(nh + w->cap, 0, (nc - w->cap) * HASH_SIZE);
                w->hash = nh;
                w->cap = nc;
            }
            memcpy(w->hash[seq - 1], hash, HASH_SIZE);
            if (seq > w->max_seq)
                w->max_seq = seq;
            recs++;
        } else if (k == 5 && !strcmp(kind, "ack") && !hex_decode(server, SIGN_PK_SIZE, a) &&
                   !hex_decode(writer, HASH_SIZE, b) && parse_u64(c, &seq) &&
                   !hex_decode(hash, HASH_SIZE, d)) {
            int idx = meta_replica_index(&t->meta, server);
            if (idx < 0)
                continue;
            struct logged_writer *w = logged_find(&ws, &wcount, &wcap, writer);
            if (seq > w->ack_seq[idx]) {
                w->ack_seq[idx] = seq;
                memcpy(w->ack_hash[idx], hash, HASH_SIZE);
            }
            acks++;
        } else {
            fprintf(stderr, "capsule_tool: bad ack log line: %s", line);
            fclose(f);
            return 2;
        }
    }
    fclose(f);
    for (size_t i = 0; i < wcount; i++) {
        ws[i].held = calloc(ws[i].max_seq + 1, sizeof *ws[i].held);
        if (!ws[i].held)
            die("calloc", PSL_ERR_NOMEM);
    }
    tool_connect(t);
    bool sel[PSL_REPLICAS_MAX];
    selected_servers(t, sel);
    unsigned n = t->meta.replica_count, nsel = 0;
    int rc = 0;
    uint64_t ack_missing = 0;
    for (unsigned s = 0; s < n; s++) {
        if (!sel[s])
            continue;
        nsel++;
        for (size_t i = 0; i < wcount; i++) {
            struct logged_writer *w = &ws[i];
            uint64_t upto = w->max_seq > w->ack_seq[s] ? w->max_seq : w->ack_seq[s];
            struct entry *e = NULL;
            size_t ecount = 0, ecap = 0;
            struct fetch_ctx fc;
            fetch_init(&fc, t, w->id, &e, &ecount, &ecap);
            psl_err err = fetch_writer(t, s, &fc, upto, 20000);
            fetch_deinit(&fc, &e);
            char w16[17];
            short_hex(w16, w->id);
            if (err || fc.err)
                printf("check-acked: s%u writer %s: verified prefix ends at %" PRIu64 " (%s)\n", s,
                       w16, fc.next_seq - 1, psl_strerror(err ? err : fc.err));
            else if (fc.gap)
                printf("check-acked: s%u writer %s: contiguous verified prefix ends at %" PRIu64
                       " (a gap, then later records)\n",
                       s, w16, fc.next_seq - 1);
            /* e[j] is seq j + 1: the verified contiguous prefix this server holds. */
            for (size_t j = 0; j < ecount; j++) {
                uint64_t seq = e[j].seq;
                if (seq <= w->max_seq && memcmp(w->hash[seq - 1], e[j].hash, HASH_SIZE) == 0)
                    w->held[seq]++;
            }
            if (w->ack_seq[s]) {
                uint64_t a = w->ack_seq[s];
                if (ecount < a || memcmp(e[a - 1].hash, w->ack_hash[s], HASH_SIZE) != 0) {
                    printf("check-acked: s%u acknowledged writer %s up to %" PRIu64
                           " but holds a verified chain only up to %zu%s\n",
                           s, w16, a, ecount, ecount >= a ? " with another hash" : "");
                    ack_missing++;
                    rc = 1;
                }
            }
            free(e);
        }
    }
    unsigned min = o->min_servers ? o->min_servers : nsel;
    uint64_t below = 0, absent = 0;
    for (size_t i = 0; i < wcount; i++) {
        struct logged_writer *w = &ws[i];
        static const uint8_t zero[HASH_SIZE];
        for (uint64_t seq = 1; seq <= w->max_seq; seq++) {
            if (!memcmp(w->hash[seq - 1], zero, HASH_SIZE))
                continue;
            if (w->held[seq] < min) {
                if (below < 5) {
                    char w16[17];
                    short_hex(w16, w->id);
                    printf("check-acked: writer %s seq %" PRIu64 " held by %u servers, need %u\n",
                           w16, seq, w->held[seq], min);
                }
                below++;
            }
            absent += w->held[seq] == 0;
        }
    }
    printf("check-acked: %" PRIu64 " durable records and %" PRIu64
           " per-server ACK claims over %zu writers "
           "checked on %u servers: %" PRIu64 " held by fewer than %u, %" PRIu64
           " held by none, %" PRIu64 " ACK claims broken\n",
           recs, acks, wcount, nsel, below, min, absent, ack_missing);
    if (below)
        rc = 1;
    for (size_t i = 0; i < wcount; i++) {
        free(ws[i].hash);
        free(ws[i].held);
    }
    free(ws);
    tool_close(t);
    return rc;
}

/* ---- the victim writer and the attacks ---- */

static void read_victim(struct tool *t, struct twriter *v)
{
    char p[PATH_SIZE];
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        die("secret_alloc", PSL_ERR_NOMEM);
    path_of(p, t->dir, "victim.key");
    psl_err err = keyfile_read(p, KEYFILE_SIGNING, seed);
    if (err)
        die("victim.key (run prime first)", err);
    twriter_init(v, t, 99, seed, 4096);
    secret_free(seed);
    path_of(p, t->dir, "victim.head");
    FILE *f = fopen(p, "r");
    char hex[80];
    unsigned long long seq;
    if (!f || fscanf(f, "%llu %79s", &seq, hex) != 2 || hex_decode(v->chain.head, HASH_SIZE, hex))
        die("victim.head (run prime first)", PSL_ERR_MALFORMED);
    fclose(f);
    v->chain.seq = seq;
}

static int cmd_prime(struct tool *t)
{
    tool_load(t);
    tool_connect(t);
    char p[PATH_SIZE];
    path_of(p, t->dir, "victim.key");
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    struct signer s;
    if (!seed)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(seed, SIGN_SEED_SIZE);
    psl_err err = signer_init(&s, seed);
    if (!err)
        err = keyfile_write(p, KEYFILE_SIGNING, seed, s.pk);
    if (err)
        die("victim.key (prime runs once per capsule)", err);
    signer_deinit(&s);
    struct twriter v;
    twriter_init(&v, t, 99, seed, 4096);
    secret_free(seed);
    int rc = 0;
    size_t size = seal_cert(&v);
    err = capsule_client_publish(t->client, v.buf, size, t->o.timeout_ms);
    for (uint64_t i = 0; !err && i < t->o.records; i++) {
        size = seal_data(&v, 1, 64);
        err = capsule_client_publish(t->client, v.buf, size, t->o.timeout_ms);
    }
    uint64_t deadline = clock_mono_ns() + (uint64_t)t->o.timeout_ms * 1000000u;
    while (!err &&
           capsule_client_ack_count(t->client, v.wk.writer_id, v.chain.seq) <
               t->meta.replica_count &&
           clock_mono_ns() < deadline)
        sleep_ms(10);
    if (err ||
        capsule_client_ack_count(t->client, v.wk.writer_id, v.chain.seq) < t->meta.replica_count) {
        fprintf(
            stderr,
            "capsule_tool: prime: the victim's records were not acknowledged by every server%s%s\n",
            err ? ": " : "", err ? psl_strerror(err) : "");
        rc = 1;
    }
    path_of(p, t->dir, "victim.head");
    FILE *f = fopen(p, "w");
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, v.chain.head, HASH_SIZE);
    if (!f || fprintf(f, "%" PRIu64 " %s\n", v.chain.seq, hex) < 0 || fclose(f) != 0)
        die(p, PSL_ERR_IO);
    char w16[17];
    short_hex(w16, v.wk.writer_id);
    printf("prime: victim writer %s head seq %" PRIu64 " acknowledged by all servers\n", w16,
           v.chain.seq);
    twriter_deinit(&v);
    tool_close(t);
    return rc;
}

/* Recomputes the hash of a record and signs it with s (the record's writer field unchanged). */
static void resign(uint8_t *rec, size_t size, const struct signer *s)
{
    uint8_t hash[HASH_SIZE];
    hash_sha256(hash, rec, size - PSL_RECORD_SIG_SIZE);
    sign_tagged(s, rec + size - PSL_RECORD_SIG_SIZE, RECORD_SIG_TAG, hash);
}

struct first_rec {
    uint8_t *data;
    size_t size;
};

static bool take_first(void *ctx, const uint8_t *rec, size_t size)
{
    struct first_rec *r = ctx;
    r->data = malloc(size);
    if (r->data) {
        memcpy(r->data, rec, size);
        r->size = size;
    }
    return false;
}

static int cmd_inject(struct tool *t)
{
    const char *kind = t->o.kind ? t->o.kind : "";
    tool_load(t);
    tool_connect(t);
    struct twriter v;
    read_victim(t, &v);
    uint8_t *msg = NULL;
    size_t size = 0;
    const char *expect = "";
    if (!strcmp(kind, "forged")) {
        /* The victim's next record, written and signed by someone else. */
        struct twriter x;
        twriter_init(&x, t, 98, NULL, 4096);
        x.chain = v.chain;
        size = seal_data(&x, 1, 64);
        memcpy(x.buf + 44, v.wk.writer_id, HASH_SIZE); /* header writer field */
        resign(x.buf, size, &x.wk.sign);
        msg = malloc(size);
        memcpy(msg, x.buf, size);
        twriter_deinit(&x);
        expect = "bad_signature";
    } else if (!strcmp(kind, "bitflip")) {
        size = seal_data(&v, 1, 64);
        v.buf[PSL_RECORD_HEADER_SIZE + 5] ^= 0x04;
        msg = malloc(size);
        memcpy(msg, v.buf, size);
        expect = "bad_signature";
    } else if (!strcmp(kind, "replay")) {
        struct first_rec r = {0};
        uint64_t seq = v.chain.seq >= 2 ? 2 : 1;
        psl_err err =
            capsule_client_range(t->client, NULL, v.wk.writer_id, seq, seq, 5000, take_first, &r);
        if (err || !r.data)
            die("fetching a stored record of the victim", err ? err : PSL_ERR_NOT_FOUND);
        msg = r.data;
        size = r.size;
        expect = "(duplicate: psl_capsuled_records_duplicate_total)";
    } else if (!strcmp(kind, "wrong-capsule")) {
        /* Properly signed by the certified victim, but naming another capsule. */
        static const char other[] = "another capsule";
        hash_sha256(v.chain.capsule, other, sizeof other - 1);
        size = seal_data(&v, 1, 64);
        msg = malloc(size);
        memcpy(msg, v.buf, size);
        expect = "wrong_capsule";
    } else if (!strcmp(kind, "uncertified")) {
        /* A writer that certified itself: its CERT is not signed by the owner. */
        struct twriter x;
        twriter_init(&x, t, 97, NULL, 4096);
        cert_sign(&x.cert, &x.wk.sign);
        size = seal_cert(&x);
        msg = malloc(size);
        memcpy(msg, x.buf, size);
        twriter_deinit(&x);
        expect = "cert_issuer";
    } else if (!strcmp(kind, "forged-cert")) {
        /* A certificate that names the owner as issuer but carries someone else's signature. */
        struct twriter x;
        twriter_init(&x, t, 94, NULL, 4096);
        struct signer mallory;
        if (signer_init(&mallory, NULL))
            die("signer_init", PSL_ERR_CRYPTO);
        cert_sign(&x.cert, &mallory);
        memcpy(x.cert.issuer_pk, t->owner.pk, SIGN_PK_SIZE);
        signer_deinit(&mallory);
        size = seal_cert(&x);
        msg = malloc(size);
        memcpy(msg, x.buf, size);
        twriter_deinit(&x);
        expect = "bad_signature";
    } else if (!strcmp(kind, "no-cert")) {
        /* A DATA record of a writer whose CERT never existed: held (bounded), never stored. */
        struct twriter x;
        twriter_init(&x, t, 96, NULL, 4096);
        x.chain.seq = 1;
        rng_bytes(x.chain.head, HASH_SIZE);
        size = seal_data(&x, 1, 64);
        msg = malloc(size);
        memcpy(msg, x.buf, size);
        twriter_deinit(&x);
        expect = "(held: psl_capsuled_pending_records)";
    } else if (!strcmp(kind, "oversized")) {
        /* A header announcing one byte more payload than the limit, with every byte present. */
        size = PSL_RECORD_HEADER_SIZE + PSL_RECORD_PAYLOAD_SIZE_MAX + 1 + PSL_RECORD_SIG_SIZE;
        msg = calloc(1, size);
        struct record_header h = {.type = REC_DATA,
                                  .seq = v.chain.seq + 1,
                                  .payload_size = PSL_RECORD_PAYLOAD_SIZE_MAX + 1};
        memcpy(h.capsule, t->meta.name, HASH_SIZE);
        memcpy(h.writer, v.wk.writer_id, HASH_SIZE);
        memcpy(h.prev, v.chain.head, HASH_SIZE);
        if (msg)
            record_header_encode(&h, msg);
        expect = "too_large";
    } else {
        fprintf(stderr, "capsule_tool: unknown --kind '%s'\n%s", kind, usage);
        return 2;
    }
    if (!msg)
        die("malloc", PSL_ERR_NOMEM);
    char topic[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(topic, t->meta.name, "rec", NULL);
    psl_err err = fabric_publish(t->fabric, topic, msg, size);
    if (!err)
        err = fabric_flush(t->fabric);
    if (err)
        die("publish", err);
    printf("inject: kind=%s size=%zu expected=%s\n", kind, size, expect);
    free(msg);
    twriter_deinit(&v);
    tool_close(t);
    return 0;
}

/* ---- freshness read ---- */

static int cmd_fresh(struct tool *t)
{
    struct opts *o = &t->o;
    tool_load(t);
    tool_connect(t);
    struct fresh_result r;
    psl_err err = capsule_client_fresh_heads(t->client, o->answers,
                                             o->timeout_ms < 5000 ? o->timeout_ms : 5000, &r);
    int rc = 0;
    if (err) {
        printf("fresh: %s\n", psl_strerror(err));
        tool_close(t);
        return 1;
    }
    printf("fresh: answers=%u lag_bound_met=%d liars_tolerated=%u claims_refuted=%u writers=%zu\n",
           r.answers, r.lag_bound_met, r.liars_tolerated, r.claims_refuted, r.count);
    for (size_t i = 0; i < r.count; i++) {
        char w16[17];
        short_hex(w16, r.heads[i].writer);
        printf("fresh: writer %s head %" PRIu64 " reported_by=%u\n", w16, r.heads[i].seq,
               r.heads[i].reported_by);
        if (o->expect_seq >= 0 && r.heads[i].seq != (uint64_t)o->expect_seq) {
            printf("fresh: writer %s head %" PRIu64 ", expected %lld\n", w16, r.heads[i].seq,
                   o->expect_seq);
            rc = 1;
        }
    }
    if (o->expect_writers >= 0 && r.count != (size_t)o->expect_writers) {
        printf("fresh: %zu writers, expected %ld\n", r.count, o->expect_writers);
        rc = 1;
    }
    if (o->expect_lag_bound >= 0 && r.lag_bound_met != (o->expect_lag_bound == 1)) {
        printf("fresh: lag bound %s, expected %s\n", r.lag_bound_met ? "met" : "not met",
               o->expect_lag_bound ? "met" : "not met");
        rc = 1;
    }
    fresh_result_free(&r);
    tool_close(t);
    return rc;
}

/* ---- garbage: random and mutated messages on every topic a server listens to ---- */

struct prng {
    uint64_t s;
};

static uint64_t prng_next(struct prng *p)
{
    p->s ^= p->s << 13;
    p->s ^= p->s >> 7;
    p->s ^= p->s << 17;
    return p->s;
}

static size_t prng_below(struct prng *p, size_t n)
{
    return n ? (size_t)(prng_next(p) % n) : 0;
}

#define SEEDS_MAX 64u

struct seedbox {
    pthread_mutex_t mu;
    struct tool *t;
    uint8_t *msg[SEEDS_MAX];
    size_t size[SEEDS_MAX];
    size_t count;
    char rep_topics[8][FABRIC_TOPIC_SIZE_MAX];
    size_t rep_count;
};

static void seed_add(struct seedbox *b, const uint8_t *data, size_t size)
{
    if (b->count == SEEDS_MAX || size > (1u << 20))
        return;
    uint8_t *c = malloc(size ? size : 1);
    if (!c)
        return;
    memcpy(c, data, size);
    b->msg[b->count] = c;
    b->size[b->count++] = size;
}

/* Watches the servers' own traffic: requests (for their requester ids, whose reply topics are
 * then attacked too) and signed heads gossip, kept as seeds for mutation. */
static void on_watch(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    struct seedbox *b = ctx;
    struct proto_req q;
    pthread_mutex_lock(&b->mu);
    if (proto_req_decode(&q, data, size) == PSL_OK) {
        char rhex[2 * HASH_SIZE + 1], rt[FABRIC_TOPIC_SIZE_MAX];
        hex_encode(rhex, q.requester, HASH_SIZE);
        topic_capsule(rt, b->t->meta.name, "rep", rhex);
        bool known = false;
        for (size_t i = 0; i < b->rep_count; i++)
            known |= !strcmp(b->rep_topics[i], rt);
        if (!known && b->rep_count < 8 && memcmp(q.requester, b->t->requester, HASH_SIZE) != 0)
            memcpy(b->rep_topics[b->rep_count++], rt, FABRIC_TOPIC_SIZE_MAX);
        if (b->count < SEEDS_MAX / 2)
            seed_add(b, data, size);
    } else if (strstr(topic, ".srv.heads")) {
        seed_add(b, data, size);
    }
    pthread_mutex_unlock(&b->mu);
}

static void mutate(struct prng *p, uint8_t *m, size_t *size, size_t cap)
{
    switch (prng_below(p, 6)) {
    case 0: /* flip a few bits */
        for (size_t i = 0, n = 1 + prng_below(p, 8); i < n && *size; i++)
            m[prng_below(p, *size)] ^= (uint8_t)(1u << prng_below(p, 8));
        break;
    case 1: /* truncate */
        *size = prng_below(p, *size + 1);
        break;
    case 2: /* extend with junk */
        for (size_t n = 1 + prng_below(p, 64); n && *size < cap; n--)
            m[(*size)++] = (uint8_t)prng_next(p);
        break;
    case 3: /* a 32-bit field set to an extreme */
        if (*size >= 4) {
            static const uint32_t extreme[] = {0,           1,    0x7fffffff, 0x80000000u,
                                               0xffffffffu, 4096, 4097};
            put_le32(m + prng_below(p, *size - 3), extreme[prng_below(p, 7)]);
        }
        break;
    case 4: /* overwrite a run of bytes */
        if (*size) {
            size_t at = prng_below(p, *size), n = 1 + prng_below(p, 32);
            for (size_t i = at; i < at + n && i < *size; i++)
                m[i] = (uint8_t)prng_next(p);
        }
        break;
    default: /* a 64-bit field set to an extreme */
        if (*size >= 8)
            put_le64(m + prng_below(p, *size - 7), prng_below(p, 2) ? UINT64_MAX : 0);
        break;
    }
}

static int cmd_garbage(struct tool *t)
{
    struct opts *o = &t->o;
    tool_load(t);
    tool_connect(t);
    static struct seedbox box;
    pthread_mutex_init(&box.mu, NULL);
    box.t = t;
    uint64_t subs[3];
    char topic[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(topic, t->meta.name, "req", NULL);
    psl_err err = fabric_subscribe(t->fabric, topic, on_watch, &box, &subs[0]);
    topic_capsule(topic, t->meta.name, "req", "*");
    if (!err)
        err = fabric_subscribe(t->fabric, topic, on_watch, &box, &subs[1]);
    topic_capsule(topic, t->meta.name, "srv", "heads");
    if (!err)
        err = fabric_subscribe(t->fabric, topic, on_watch, &box, &subs[2]);
    if (err || (err = fabric_flush(t->fabric)))
        die("subscribe", err);
    /* Valid records as seeds: a writer of our own, durable before the attack. */
    struct twriter g;
    twriter_init(&g, t, 95, NULL, 4096);
    size_t size = seal_cert(&g);
    pthread_mutex_lock(&box.mu);
    seed_add(&box, g.buf, size);
    pthread_mutex_unlock(&box.mu);
    err = capsule_client_publish(t->client, g.buf, size, 10000);
    for (int i = 0; !err && i < 16; i++) {
        size = seal_data(&g, 1 + (unsigned)i % 3, 100);
        pthread_mutex_lock(&box.mu);
        seed_add(&box, g.buf, size);
        pthread_mutex_unlock(&box.mu);
        err = capsule_client_publish(t->client, g.buf, size, 10000);
    }
    if (!err)
        err = capsule_client_wait_durable(t->client, g.wk.writer_id, g.chain.seq, 20000);
    if (err)
        die("the seed writer's records did not become durable", err);
    /* Requests of our own as seeds too, and time to see the servers' gossip. */
    for (uint8_t type = REQ_GET_HASH; type <= REQ_GET_META; type++) {
        struct proto_req q = {.type = type, .request_id = rng_u64(), .from = 1, .to = 3};
        memcpy(q.requester, t->requester, HASH_SIZE);
        memcpy(q.capsule, t->meta.name, HASH_SIZE);
        memcpy(q.writer, g.wk.writer_id, HASH_SIZE);
        uint8_t buf[PROTO_REQ_SIZE_MAX];
        size_t n = proto_req_encode(&q, buf);
        pthread_mutex_lock(&box.mu);
        seed_add(&box, buf, n);
        pthread_mutex_unlock(&box.mu);
    }
    /* A record of a writer nobody knows makes every server ask its peers for the CERT: those
     * requests carry the servers' requester ids, so their reply topics can be attacked too. */
    struct twriter u;
    twriter_init(&u, t, 93, NULL, 4096);
    u.chain.seq = 1;
    rng_bytes(u.chain.head, HASH_SIZE);
    size = seal_data(&u, 1, 32);
    topic_capsule(topic, t->meta.name, "rec", NULL);
    if ((err = fabric_publish(t->fabric, topic, u.buf, size)) || (err = fabric_flush(t->fabric)))
        die("publish", err);
    twriter_deinit(&u);
    sleep_ms(1500);
    for (size_t i = 0; i < 3; i++)
        fabric_unsubscribe(t->fabric, subs[i]);

    char topics[16][FABRIC_TOPIC_SIZE_MAX];
    size_t topic_count = 0;
    topic_capsule(topics[topic_count++], t->meta.name, "rec", NULL);
    topic_capsule(topics[topic_count++], t->meta.name, "req", NULL);
    topic_capsule(topics[topic_count++], t->meta.name, "srv", "heads");
    for (unsigned i = 0; i < t->meta.replica_count && topic_count < 12; i++) {
        char shex[2 * SIGN_PK_SIZE + 1];
        hex_encode(shex, t->meta.replicas[i], SIGN_PK_SIZE);
        topic_capsule(topics[topic_count++], t->meta.name, "req", shex);
    }
    for (size_t i = 0; i < box.rep_count && topic_count < 16; i++)
        memcpy(topics[topic_count++], box.rep_topics[i], FABRIC_TOPIC_SIZE_MAX);
    printf("garbage: seed=%" PRIu64 " messages=%" PRIu64
           " topics=%zu (reply topics of servers: %zu) "
           "mutation seeds=%zu\n",
           o->seed, o->count, topic_count, box.rep_count, box.count);
    struct prng p = {.s = o->seed * 0x9e3779b97f4a7c15ull + 1};
    size_t cap = 256u << 10;
    uint8_t *m = malloc(cap);
    if (!m)
        die("malloc", PSL_ERR_NOMEM);
    uint64_t sent = 0;
    for (uint64_t i = 0; i < o->count; i++) {
        const char *tp = topics[prng_below(&p, topic_count)];
        size_t n;
        unsigned how = (unsigned)prng_below(&p, 10);
        if (how < 3 || !box.count) { /* pure noise, sometimes large */
            n = prng_below(&p, how == 0 ? cap : 512);
            for (size_t k = 0; k < n; k++)
                m[k] = (uint8_t)prng_next(&p);
        } else if (how < 4) { /* a plausible magic, then noise */
            static const char *magics[] = {"PSLR", "PSLQ", "PSLP", "PSLA"};
            n = 4 + prng_below(&p, 400);
            for (size_t k = 0; k < n; k++)
                m[k] = (uint8_t)prng_next(&p);
            memcpy(m, magics[prng_below(&p, 4)], 4);
            if (n > 4)
                m[4] = 1; /* the current version */
        } else {          /* a mutated valid message of any kind, on any topic */
            size_t s = prng_below(&p, box.count);
            n = box.size[s] < cap ? box.size[s] : cap;
            memcpy(m, box.msg[s], n);
            for (size_t k = 0, rounds = 1 + prng_below(&p, 3); k < rounds; k++)
                mutate(&p, m, &n, cap);
        }
        if (fabric_publish(t->fabric, tp, m, n) == PSL_OK)
            sent++;
        if (i % 256 == 255) {
            (void)fabric_flush(t->fabric);
            sleep_ms(2);
        }
    }
    (void)fabric_flush(t->fabric);
    printf("garbage: sent %" PRIu64 " messages\n", sent);
    free(m);
    for (size_t i = 0; i < box.count; i++)
        free(box.msg[i]);
    twriter_deinit(&g);
    tool_close(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    struct tool t;
    memset(&t, 0, sizeof t);
    t.dir = argv[2];
    opts_default(&t.o);
    int rc = opts_parse(&t.o, argc - 2, argv + 2);
    if (rc)
        return rc;
    if (optind != argc - 2) {
        fprintf(stderr, "capsule_tool: unexpected argument '%s'\n%s", argv[2 + optind], usage);
        return 2;
    }
    if (psl_crypto_init() != PSL_OK) {
        fputs("capsule_tool: cannot initialise the crypto libraries\n", stderr);
        return 3;
    }
    log_set_level(PSL_LOG_WARN);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "setup"))
        return cmd_setup(&t);
    if (!strcmp(cmd, "load"))
        return cmd_load(&t);
    if (!strcmp(cmd, "compare"))
        return cmd_compare(&t);
    if (!strcmp(cmd, "heads"))
        return cmd_heads(&t);
    if (!strcmp(cmd, "check-acked"))
        return cmd_check_acked(&t);
    if (!strcmp(cmd, "prime"))
        return cmd_prime(&t);
    if (!strcmp(cmd, "inject"))
        return cmd_inject(&t);
    if (!strcmp(cmd, "fresh"))
        return cmd_fresh(&t);
    if (!strcmp(cmd, "garbage"))
        return cmd_garbage(&t);
    fprintf(stderr, "capsule_tool: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
