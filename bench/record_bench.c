/* record_bench.c: throughput of sealing (producer) and verifying (verifier) DATA records of 1, 10,
 * 100 and 1000 operations (16-byte keys, 32-byte values) on one thread, beside the raw floor of
 * the same run: the bare primitives one record costs for the same bytes (one AEAD, one SHA-256,
 * one Ed25519 sign or verify). Every record produced or verified is checked, and the program
 * stops at the first failure, so a figure is never the speed of doing the wrong thing.
 *
 * Method. For each batch size, the producer, its floor, the verifier and its floor run in
 * repetitions (7 by default) of a fixed budget of thread CPU time each; within a repetition the
 * four alternate in 10 ms slices in a rotating order, so the noise of a shared two-core machine
 * falls on all of them alike, and time the thread spent preempted is not counted (the share is
 * printed). The figure is the median time per record over the repetitions.
 *   producer  = build the op views, data_encode into the record buffer, record_seal
 *               (header, AES-256-GCM in place, SHA-256 once, Ed25519 sign once)
 *   p. floor  = aead_seal of the same plaintext with the header as AAD, hash_sha256 of
 *               header || payload, sign_tagged of that hash
 *   verifier  = record_parse (header limits, hash), record_check (capsule, certificate,
 *               signature, prev link), record_open into a private buffer, data_decode
 *   v. floor  = hash_sha256 of header || payload, sign_verify_tagged, aead_open of the payload
 *               (aead_open works in place, so the floor copies the ciphertext into the private
 *               buffer first, as record_open must: bytes are copied into private memory once)
 * overhead_vs_floor = median time per record / median floor time per record (1.0 = no framing
 * cost at all). ops/s counts KV operations; records/s counts records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/limits.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "crypto/crypto.h"

#define KEY_SIZE 16u
#define VALUE_SIZE 32u
#define OPS_MAX 1000u
#define BATCH_COUNT 4
#define REPS_MAX 51
#define CHUNK 8               /* records between two clock reads */
#define SLICE_MS 10           /* kinds alternate in slices this long within a repetition */
#define CHAIN_BYTES (2u << 20) /* verifier input per batch size: about 2 MiB of records */
#define CHAIN_RECORDS_MAX 1024u

static const size_t batch_sizes[BATCH_COUNT] = {1, 10, 100, 1000};

enum kind { K_PROD, K_PROD_FLOOR, K_VER, K_VER_FLOOR, KIND_COUNT };

/* Pre-sealed records of one batch size, consecutive in one writer's chain, for the verifier. */
struct chain {
    size_t n;          /* operations per record */
    size_t count;      /* records */
    size_t rec_size;   /* every record of a chain has the same size */
    size_t stride;     /* distance between records in recs */
    uint8_t *recs;     /* owned */
    uint64_t seq0;     /* seq of the first record */
    uint8_t prev0[HASH_SIZE]; /* hash of the record before the first */
};

struct bench {
    struct signer owner;
    struct capsule_meta meta;
    struct writer_cert cert;
    struct writer_keys wk;     /* the producer */
    struct aead_key read_key;  /* the verifier's copy, derived from the capsule key */
    struct aead_key floor_key; /* the producer floor's key: its own nonce space */
    uint64_t floor_nonce;
    uint64_t now_ms;

    /* producer state: one writer chain across the whole run */
    uint64_t seq;
    uint64_t lamport;
    uint8_t prev[HASH_SIZE];

    uint8_t keys[OPS_MAX][KEY_SIZE];
    uint8_t values[OPS_MAX][VALUE_SIZE];
    struct kv_op ops[OPS_MAX];     /* producer op views */
    struct kv_op decoded[OPS_MAX]; /* verifier output */

    uint8_t *buf;       /* producer record buffer, owned */
    uint8_t *floor_buf; /* producer floor buffer, owned */
    size_t buf_cap;
    uint8_t *plain; /* verifier private plaintext, owned */
    size_t plain_cap;

    struct chain chains[BATCH_COUNT];
};

static struct bench B;

static _Noreturn void die(const char *what, psl_err err)
{
    fprintf(stderr, "record_bench: %s failed: %s\n", what, psl_strerror(err));
    exit(1);
}

static void check(psl_err err, const char *what)
{
    if (err != PSL_OK)
        die(what, err);
}

static void *alloc_aligned(size_t size)
{
    size_t rounded = (size + 63u) & ~(size_t)63u;
    void *p = aligned_alloc(64, rounded);
    if (!p)
        die("allocation", PSL_ERR_NOMEM);
    memset(p, 0, rounded);
    return p;
}

static void seed_of(uint8_t out[32], const char *tag)
{
    hash_sha256(out, tag, strlen(tag));
}

static size_t plain_size_of(size_t n)
{
    return 4u + n * (DATA_OP_OVERHEAD + KEY_SIZE + VALUE_SIZE);
}

static void nonce_of(uint8_t nonce[AEAD_NONCE_SIZE], uint64_t v)
{
    put_le64(nonce, v);
    memset(nonce + 8, 0, AEAD_NONCE_SIZE - 8);
}

/* ---- producer ---- */

/* Seals the next DATA record of n operations into buf; *size_out is its size. */
static void produce_one(struct bench *b, uint8_t *buf, size_t n, size_t *size_out)
{
    for (size_t i = 0; i < n; i++) {
        b->ops[i] = (struct kv_op){.op = OP_PUT,
                                   .lamport = ++b->lamport,
                                   .key_size = KEY_SIZE,
                                   .value_size = VALUE_SIZE,
                                   .key = b->keys[i],
                                   .value = b->values[i]};
    }
    struct wr w;
    wr_init(&w, buf + PSL_RECORD_HEADER_SIZE,
            b->buf_cap - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
    data_encode(&w, b->ops, n);
    check(w.err, "data_encode");
    struct record_header h = {.type = REC_DATA, .seq = b->seq, .lamport = b->lamport};
    memcpy(h.capsule, b->meta.name, HASH_SIZE);
    memcpy(h.prev, b->prev, HASH_SIZE);
    check(record_seal(&b->wk, &h, buf, b->buf_cap, w.pos, size_out, b->prev), "record_seal");
    b->seq++;
}

/* The bare primitives of one producer record of plain_size plaintext bytes. */
static void produce_floor_one(struct bench *b, size_t plain_size)
{
    uint8_t *buf = b->floor_buf;
    uint8_t *body = buf + PSL_RECORD_HEADER_SIZE;
    uint8_t nonce[AEAD_NONCE_SIZE];
    uint8_t hash[HASH_SIZE];
    nonce_of(nonce, ++b->floor_nonce);
    check(aead_seal(&b->floor_key, nonce, buf, PSL_RECORD_HEADER_SIZE, body, plain_size,
                    body + plain_size),
          "aead_seal");
    hash_sha256(hash, buf, PSL_RECORD_HEADER_SIZE + plain_size + AEAD_TAG_SIZE);
    sign_tagged(&b->wk.sign, body + plain_size + AEAD_TAG_SIZE, RECORD_SIG_TAG, hash);
}

/* ---- verifier ---- */

/* Verifies one record completely; prev holds the previous record's hash and becomes this one's. */
static void verify_one(struct bench *b, const uint8_t *rec, size_t size, size_t n,
                       uint8_t prev[HASH_SIZE])
{
    struct record_view v;
    size_t plain_size, count;
    check(record_parse(&v, rec, size), "record_parse");
    check(record_check(&v, &b->meta, &b->cert, b->now_ms, prev), "record_check");
    check(record_open(&v, &b->read_key, b->plain, b->plain_cap, &plain_size), "record_open");
    check(data_decode(b->plain, plain_size, b->decoded, OPS_MAX, &count), "data_decode");
    if (count != n)
        die("data_decode count", PSL_ERR_MALFORMED);
    memcpy(prev, v.hash, HASH_SIZE);
}

/* The bare primitives of verifying one record: hash, signature, copy-in and AEAD open. */
static void verify_floor_one(struct bench *b, const uint8_t *rec, size_t plain_size, uint64_t seq)
{
    size_t payload = plain_size + AEAD_TAG_SIZE;
    const uint8_t *body = rec + PSL_RECORD_HEADER_SIZE;
    uint8_t hash[HASH_SIZE];
    uint8_t nonce[AEAD_NONCE_SIZE];
    hash_sha256(hash, rec, PSL_RECORD_HEADER_SIZE + payload);
    if (!sign_verify_tagged(b->cert.sign_pk, body + payload, RECORD_SIG_TAG, hash))
        die("sign_verify_tagged", PSL_ERR_BAD_SIGNATURE);
    memcpy(b->plain, body, plain_size);
    nonce_of(nonce, seq);
    check(aead_open(&b->read_key, nonce, rec, PSL_RECORD_HEADER_SIZE, b->plain, plain_size,
                    body + plain_size),
          "aead_open");
}

/* ---- correctness checks outside the timed loops ---- */

/* Verifies rec as a receiver would and compares every decoded op with what was written. */
static void check_record_contents(struct bench *b, const uint8_t *rec, size_t size, size_t n,
                                  const uint8_t prev[HASH_SIZE], uint64_t lamport_last)
{
    uint8_t p[HASH_SIZE];
    memcpy(p, prev, HASH_SIZE);
    verify_one(b, rec, size, n, p);
    for (size_t i = 0; i < n; i++) {
        const struct kv_op *op = &b->decoded[i];
        if (op->op != OP_PUT || op->key_size != KEY_SIZE || op->value_size != VALUE_SIZE ||
            op->lamport != lamport_last - n + 1 + i || memcmp(op->key, b->keys[i], KEY_SIZE) ||
            memcmp(op->value, b->values[i], VALUE_SIZE))
            die("decoded op comparison", PSL_ERR_MALFORMED);
    }
}

/* A tampered record must be rejected: one flipped bit in the ciphertext, then in the header. */
static void check_tamper(struct bench *b, const uint8_t *rec, size_t size,
                         const uint8_t prev[HASH_SIZE])
{
    uint8_t *copy = alloc_aligned(size);
    size_t spots[2] = {PSL_RECORD_HEADER_SIZE + 7, 88}; /* ciphertext; lamport */
    for (size_t k = 0; k < 2; k++) {
        memcpy(copy, rec, size);
        copy[spots[k]] ^= 0x10;
        struct record_view v;
        psl_err err = record_parse(&v, copy, size);
        if (err == PSL_OK)
            err = record_check(&v, &b->meta, &b->cert, b->now_ms, prev);
        if (err == PSL_OK)
            die("tamper check (a flipped bit was accepted)", PSL_ERR_AUTH);
    }
    free(copy);
}

/* ---- set-up ---- */

static void setup_identity(struct bench *b)
{
    uint8_t seed[32], kx_seed[32], capsule_key[AEAD_KEY_SIZE], floor_key[AEAD_KEY_SIZE];
    seed_of(seed, "psl-bench-owner");
    check(signer_init(&b->owner, seed), "signer_init");
    b->now_ms = clock_wall_ms();

    struct capsule_meta *m = &b->meta;
    memset(m, 0, sizeof *m);
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = b->now_ms;
    m->label_size = (uint8_t)strlen("record-bench");
    memcpy(m->label, "record-bench", m->label_size);
    m->quorum_k = 1;
    m->replica_count = 1;
    seed_of(m->replicas[0], "psl-bench-replica");
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = 0;
    check(meta_sign(m, &b->owner), "meta_sign");

    seed_of(capsule_key, "psl-bench-capsule-key");
    seed_of(seed, "psl-bench-writer");
    seed_of(kx_seed, "psl-bench-writer-kx");
    check(writer_keys_init(&b->wk, seed, kx_seed, capsule_key), "writer_keys_init");

    struct writer_cert *c = &b->cert;
    memset(c, 0, sizeof *c);
    c->role = ROLE_WORKER;
    memcpy(c->capsule, m->name, HASH_SIZE);
    memcpy(c->sign_pk, b->wk.sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, b->wk.kx.pk, KX_PK_SIZE);
    seed_of(c->measurement, "psl-bench-measurement");
    c->not_before_ms = 0;
    c->not_after_ms = UINT64_MAX;
    c->serial = 1;
    cert_sign(c, &b->owner);
    check(cert_verify(c, NULL, m, b->now_ms), "cert_verify");

    /* The verifier derives the writer key on its own, from the capsule key and the certificate. */
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    if (!key)
        die("secret_alloc", PSL_ERR_NOMEM);
    check(record_key_derive(key, capsule_key, c->writer_id), "record_key_derive");
    check(aead_key_init(&b->read_key, key), "aead_key_init");
    secret_free(key);
    seed_of(floor_key, "psl-bench-floor-key");
    check(aead_key_init(&b->floor_key, floor_key), "aead_key_init");
    secret_wipe(capsule_key, sizeof capsule_key);
    secret_wipe(floor_key, sizeof floor_key);
    secret_wipe(seed, sizeof seed);
    secret_wipe(kx_seed, sizeof kx_seed);

    /* Deterministic, distinct keys and values. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < OPS_MAX; i++) {
        for (size_t j = 0; j < KEY_SIZE; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b->keys[i][j] = (uint8_t)x;
        }
        put_le32(b->keys[i], (uint32_t)i);
        for (size_t j = 0; j < VALUE_SIZE; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b->values[i][j] = (uint8_t)x;
        }
    }

    b->buf_cap = record_sealed_size(plain_size_of(OPS_MAX), REC_DATA);
    b->buf = alloc_aligned(b->buf_cap);
    b->floor_buf = alloc_aligned(b->buf_cap);
    b->plain_cap = plain_size_of(OPS_MAX);
    b->plain = alloc_aligned(b->plain_cap);

    /* The writer's first record is its CERT; the DATA records chain after it. */
    struct wr w;
    wr_init(&w, b->buf + PSL_RECORD_HEADER_SIZE, b->buf_cap - PSL_RECORD_HEADER_SIZE);
    certpl_encode(&w, c, NULL);
    check(w.err, "certpl_encode");
    struct record_header h = {.type = REC_CERT, .seq = 1, .lamport = 0};
    memcpy(h.capsule, m->name, HASH_SIZE);
    size_t size;
    check(record_seal(&b->wk, &h, b->buf, b->buf_cap, w.pos, &size, b->prev), "record_seal");
    struct record_view v;
    struct writer_cert got;
    check(record_parse(&v, b->buf, size), "record_parse");
    check(record_check_cert(&v, m, b->now_ms, &got), "record_check_cert");
    b->seq = 2;
}

/* Seals the verifier's input for each batch size and checks every record once. */
static void setup_chains(struct bench *b)
{
    for (size_t k = 0; k < BATCH_COUNT; k++) {
        struct chain *ch = &b->chains[k];
        ch->n = batch_sizes[k];
        ch->rec_size = record_sealed_size(plain_size_of(ch->n), REC_DATA);
        ch->stride = (ch->rec_size + 63u) & ~(size_t)63u;
        ch->count = CHAIN_BYTES / ch->stride;
        if (ch->count > CHAIN_RECORDS_MAX)
            ch->count = CHAIN_RECORDS_MAX;
        if (ch->count < 8)
            ch->count = 8;
        ch->recs = alloc_aligned(ch->stride * ch->count);
        ch->seq0 = b->seq;
        memcpy(ch->prev0, b->prev, HASH_SIZE);
        uint8_t prev[HASH_SIZE];
        memcpy(prev, b->prev, HASH_SIZE);
        for (size_t i = 0; i < ch->count; i++) {
            size_t size;
            uint8_t *rec = ch->recs + i * ch->stride;
            produce_one(b, rec, ch->n, &size);
            if (size != ch->rec_size)
                die("record size", PSL_ERR_MALFORMED);
            check_record_contents(b, rec, size, ch->n, prev, b->lamport);
            memcpy(prev, b->prev, HASH_SIZE);
        }
        check_tamper(b, ch->recs, ch->rec_size, ch->prev0);
    }
}

/* ---- timing ---- */

/* CPU time of this thread: on a shared machine, the time the benchmark was preempted is not
 * charged to whichever kind happened to be running. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        die("clock_gettime", PSL_ERR_IO);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct acc {
    uint64_t cpu_ns;
    uint64_t wall_ns;
    uint64_t records;
};

/* Runs one kind for about budget_ns of CPU time and adds what it did to *a. */
static void run_kind(struct bench *b, enum kind kind, size_t k, uint64_t budget_ns, struct acc *a)
{
    struct chain *ch = &b->chains[k];
    size_t n = ch->n, plain = plain_size_of(n), size;
    uint64_t records = 0, w0 = clock_mono_ns(), t0 = cpu_ns(), t;
    size_t at = 0;
    uint8_t prev[HASH_SIZE];
    memcpy(prev, ch->prev0, HASH_SIZE);
    b->now_ms = clock_wall_ms();
    do {
        for (int c = 0; c < CHUNK; c++) {
            switch (kind) {
            case K_PROD:
                produce_one(b, b->buf, n, &size);
                break;
            case K_PROD_FLOOR:
                produce_floor_one(b, plain);
                break;
            case K_VER:
                verify_one(b, ch->recs + at * ch->stride, ch->rec_size, n, prev);
                break;
            case K_VER_FLOOR:
                verify_floor_one(b, ch->recs + at * ch->stride, plain, ch->seq0 + at);
                break;
            case KIND_COUNT:
                break;
            }
            if (++at == ch->count) {
                at = 0;
                memcpy(prev, ch->prev0, HASH_SIZE);
            }
        }
        records += CHUNK;
        t = cpu_ns();
    } while (t - t0 < budget_ns);
    a->cpu_ns += t - t0;
    a->wall_ns += clock_mono_ns() - w0;
    a->records += records;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int count)
{
    double s[REPS_MAX];
    memcpy(s, v, sizeof *v * (size_t)count);
    qsort(s, (size_t)count, sizeof *s, cmp_double);
    return count % 2 ? s[count / 2] : (s[count / 2 - 1] + s[count / 2]) / 2;
}

static double min_of(const double *v, int count)
{
    double m = v[0];
    for (int i = 1; i < count; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double max_of(const double *v, int count)
{
    double m = v[0];
    for (int i = 1; i < count; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static void usage(void)
{
    fprintf(stderr, "usage: record_bench [--quick] [--reps N] [--time-ms MS]\n"
                    "  --quick      3 repetitions of 60 ms (about 5 s)\n"
                    "  --reps N     repetitions per batch size and kind (default 7, max %d)\n"
                    "  --time-ms MS CPU time of one repetition of one kind (default 250)\n",
            REPS_MAX);
}

int main(int argc, char **argv)
{
    int reps = 7;
    long time_ms = 250;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            reps = 3;
            time_ms = 60;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--time-ms") == 0 && i + 1 < argc) {
            time_ms = atol(argv[++i]);
        } else {
            usage();
            return 2;
        }
    }
    if (reps < 1 || reps > REPS_MAX || time_ms < 1 || time_ms > 60000) {
        usage();
        return 2;
    }
    check(psl_crypto_init(), "psl_crypto_init");

    struct bench *b = &B;
    setup_identity(b);
    setup_chains(b);

    uint64_t budget_ns = (uint64_t)time_ms * 1000000u;
    uint64_t slices = (uint64_t)time_ms / SLICE_MS ? (uint64_t)time_ms / SLICE_MS : 1;
    uint64_t slice_ns = budget_ns / slices;
    static const char *const kind_names[KIND_COUNT] = {"producer", "producer floor", "verifier",
                                                       "verifier floor"};
    double ns[BATCH_COUNT][KIND_COUNT][REPS_MAX];
    double med[BATCH_COUNT][KIND_COUNT];
    uint64_t cpu_total = 0, wall_total = 0;

    printf("# record_bench: DATA records, %u-byte keys, %u-byte values, 1 thread, %d reps x %ld ms "
           "of thread CPU time per kind, in %" PRIu64 " alternating slices\n",
           KEY_SIZE, VALUE_SIZE, reps, time_ms, slices);
    for (size_t k = 0; k < BATCH_COUNT; k++) {
        /* Warm-up (caches, branch predictors, CPU frequency), not counted. */
        for (int kind = 0; kind < KIND_COUNT; kind++) {
            struct acc warm = {0, 0, 0};
            run_kind(b, (enum kind)kind, k, budget_ns / 5 + 1, &warm);
        }
        for (int r = 0; r < reps; r++) {
            /* The kinds alternate in short slices, each slice in a rotated order, so that a burst
             * of load from other processes falls on all four kinds alike. */
            struct acc a[KIND_COUNT];
            memset(a, 0, sizeof a);
            for (uint64_t sl = 0; sl < slices; sl++) {
                for (int j = 0; j < KIND_COUNT; j++) {
                    int kind = (int)((uint64_t)j + sl + (uint64_t)r) % KIND_COUNT;
                    run_kind(b, (enum kind)kind, k, slice_ns, &a[kind]);
                }
            }
            for (int kind = 0; kind < KIND_COUNT; kind++) {
                ns[k][kind][r] = (double)a[kind].cpu_ns / (double)a[kind].records;
                cpu_total += a[kind].cpu_ns;
                wall_total += a[kind].wall_ns;
            }
        }
        for (int kind = 0; kind < KIND_COUNT; kind++)
            med[k][kind] = median(ns[k][kind], reps);

        /* The producer's chain is still valid: seal one more record and verify it fully. */
        uint8_t prev[HASH_SIZE];
        size_t size;
        memcpy(prev, b->prev, HASH_SIZE);
        produce_one(b, b->buf, batch_sizes[k], &size);
        check_record_contents(b, b->buf, size, batch_sizes[k], prev, b->lamport);
    }

    printf("#\n# %5s %-15s %10s %12s %12s %14s %7s %22s\n", "ops", "kind", "bytes", "us/record",
           "records/s", "ops/s", "x floor", "spread us (min..max)");
    for (size_t k = 0; k < BATCH_COUNT; k++) {
        size_t n = batch_sizes[k];
        for (int kind = 0; kind < KIND_COUNT; kind++) {
            double t = med[k][kind];
            int floor_kind = kind < K_VER ? K_PROD_FLOOR : K_VER_FLOOR;
            printf("# %5zu %-15s %10zu %12.2f %12.0f %14.0f %7.3f %10.2f..%-10.2f\n", n,
                   kind_names[kind], b->chains[k].rec_size, t / 1e3, 1e9 / t,
                   1e9 * (double)n / t, t / med[k][floor_kind],
                   min_of(ns[k][kind], reps) / 1e3, max_of(ns[k][kind], reps) / 1e3);
        }
    }
    printf("# the benchmark thread ran %.1f%% of the wall time it was measured (the rest: "
           "preempted by other load, not counted)\n#\n",
           100.0 * (double)cpu_total / (double)(wall_total ? wall_total : 1));

    static const char *const role[2] = {"producer", "verifier"};
    for (int s = 0; s < 2; s++) {
        int kind = s == 0 ? K_PROD : K_VER, floor_kind = kind + 1;
        for (size_t k = 0; k < BATCH_COUNT; k++) {
            size_t n = batch_sizes[k];
            double t = med[k][kind], f = med[k][floor_kind];
            printf("RESULT name=record.%s.ops_per_s_%zu value=%.0f unit=ops/s floor=%.0f "
                   "ratio=%.3f\n",
                   role[s], n, 1e9 * (double)n / t, 1e9 * (double)n / f, t / f);
            printf("RESULT name=record.%s.records_per_s_%zu value=%.0f unit=records/s floor=%.0f "
                   "ratio=%.3f\n",
                   role[s], n, 1e9 / t, 1e9 / f, t / f);
            printf("RESULT name=record.%s.overhead_vs_floor_%zu value=%.3f unit=x\n", role[s], n,
                   t / f);
        }
        double speedup = 1000.0 * med[0][kind] / med[BATCH_COUNT - 1][kind];
        double floor_speedup = 1000.0 * med[0][floor_kind] / med[BATCH_COUNT - 1][floor_kind];
        printf("RESULT name=record.%s.speedup_1000_vs_1 value=%.1f unit=x floor=%.1f\n", role[s],
               speedup, floor_speedup);
        printf("RESULT name=record.%s.floor_speedup_1000_vs_1 value=%.1f unit=x\n", role[s],
               floor_speedup);
    }

    for (size_t k = 0; k < BATCH_COUNT; k++)
        free(b->chains[k].recs);
    free(b->plain);
    free(b->floor_buf);
    free(b->buf);
    aead_key_deinit(&b->floor_key);
    aead_key_deinit(&b->read_key);
    writer_keys_deinit(&b->wk);
    signer_deinit(&b->owner);
    return 0;
}
