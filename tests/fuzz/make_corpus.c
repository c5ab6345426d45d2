/* make_corpus.c: writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/).
 * Usage: make_corpus CORPUS_DIR. Every seed is built from the fixture of fuzz_fixture.h and the
 * seeded rng, so a rerun writes identical bytes; records are sealed by the fixture writers, so in
 * the fuzz targets they pass the signature checks and reach decryption and payload decoding.
 * Valid seeds are checked here with the receivers' own functions before they are written, and the
 * limits of src/base/limits.h get seeds that sit exactly at them (label, replicas, measurements,
 * key size). The evidence export adds validly signed records that chain verification must flag
 * (replay, fork, bad prev, bad SYNCs, revocations), since mutations cannot forge such records.
 * Old seed-* files of a target are removed first; other files are left alone.
 * This is a tool, not a test: the test run replays what it wrote. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/chain.h"
#include "capsule/checkpoint.h"
#include "capsule/export.h"
#include "capsule/payload.h"
#include "capsule/proto.h"
#include "fuzz_fixture.h"
#include "store/store.h"

#define GEN_BUF_SIZE    (256u << 10)
#define GEN_RECORDS_MAX 48u
#define GEN_WRITERS     (FIXTURE_WRITERS + 1) /* the fixture's, then the leader as a writer */
#define GEN_LEADER      FIXTURE_WRITERS
#define GEN_TARGETS_MAX 24u
#define GEN_RNG_SEED    0x70736c2d66757aull

struct gen_record {
    uint8_t *data;
    size_t size;
    uint8_t hash[HASH_SIZE];
    unsigned writer;
    uint64_t seq;
};

struct gen {
    const char *out_dir;
    struct fuzz_fixture fx;
    struct rng_seeded rng;
    /* Writers: the fixture's, and the leader writing under an owner-issued LEADER certificate
     * (only in the evidence export, where it revokes a worker). */
    const struct writer_keys *keys[GEN_WRITERS];
    const struct writer_cert *certs[GEN_WRITERS];
    struct writer_keys leader_keys;
    struct writer_cert leader_cert;
    struct record_chain chains[GEN_WRITERS];
    uint64_t lamport;
    uint8_t *buf; /* sealing buffer: header, payload, tag, signature */
    struct gen_record recs[GEN_RECORDS_MAX];
    size_t rec_count;
    size_t base_count; /* records of the valid capsule; evidence records follow */
    const char *cleaned[GEN_TARGETS_MAX];
    size_t cleaned_count;
    size_t files, bytes;
};

static void gen_die(const char *what, psl_err err)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, psl_strerror(err));
    exit(1);
}

static void gen_ok(psl_err err, const char *what)
{
    if (err != PSL_OK)
        gen_die(what, err);
}

static int unlink_seeds_filter(const struct dirent *e)
{
    return strncmp(e->d_name, "seed-", 5) == 0;
}

/* Creates CORPUS_DIR/fuzz_<target> and, the first time, removes its old seed-* files. */
static void gen_target_dir(struct gen *g, const char *target, char *dir, size_t dir_size)
{
    int n = snprintf(dir, dir_size, "%s/fuzz_%s", g->out_dir, target);
    PSL_ASSERT(n > 0 && (size_t)n < dir_size);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: mkdir %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    for (size_t i = 0; i < g->cleaned_count; i++)
        if (strcmp(g->cleaned[i], target) == 0)
            return;
    PSL_ASSERT(g->cleaned_count < GEN_TARGETS_MAX);
    g->cleaned[g->cleaned_count++] = target;
    struct dirent **names;
    int count = scandir(dir, &names, unlink_seeds_filter, alphasort);
    PSL_ASSERT(count >= 0);
    for (int i = 0; i < count; i++) {
        char path[4096];
        n = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        PSL_ASSERT(n > 0 && (size_t)n < sizeof path);
        if (unlink(path) != 0)
            fprintf(stderr, "make_corpus: unlink %s: %s\n", path, strerror(errno));
        free(names[i]);
    }
    free(names);
}

static void gen_write(struct gen *g, const char *target, const char *name, const uint8_t *data,
                      size_t size)
{
    char dir[4096], path[4200];
    gen_target_dir(g, target, dir, sizeof dir);
    int n = snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    PSL_ASSERT(n > 0 && (size_t)n < sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    g->files++;
    g->bytes += size;
}

/* Writes data truncated to `keep` bytes. */
static void gen_write_cut(struct gen *g, const char *target, const char *name, const uint8_t *data,
                          size_t keep)
{
    gen_write(g, target, name, data, keep);
}

/* Writes data with one byte xored with `mask`. */
static void gen_write_flip(struct gen *g, const char *target, const char *name, const uint8_t *data,
                           size_t size, size_t at, uint8_t mask)
{
    uint8_t *copy = malloc(size);
    PSL_ASSERT(copy && at < size);
    memcpy(copy, data, size);
    copy[at] ^= mask;
    gen_write(g, target, name, copy, size);
    free(copy);
}

/* ---- metadata, certificates, delegations ---- */

static void gen_meta_seed(struct gen *g, const char *name, const struct capsule_meta *m,
                          size_t expect_size)
{
    uint8_t out[META_SIZE_MAX];
    size_t size;
    gen_ok(meta_encode(m, out, sizeof out, &size), name);
    struct capsule_meta back;
    gen_ok(meta_decode(&back, out, size), name);
    PSL_ASSERT(memcmp(back.name, m->name, HASH_SIZE) == 0);
    PSL_ASSERT(expect_size == 0 || size == expect_size);
    gen_write(g, "meta", name, out, size);
}

static void gen_metas(struct gen *g)
{
    struct capsule_meta m;
    char label[PSL_LABEL_SIZE_MAX];
    for (size_t i = 0; i < sizeof label; i++)
        label[i] = (char)('a' + i % 26);

    gen_meta_seed(g, "meta-basic", &g->fx.meta, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, "one", 3, 1, 0), "meta 1 replica");
    gen_meta_seed(g, "meta-1-replica-0-measurements", &m, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, "", 0, 1, 0), "meta empty label");
    gen_meta_seed(g, "meta-empty-label", &m, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, "sixteen", 7, PSL_REPLICAS_MAX, 1), "meta 16 replicas");
    gen_meta_seed(g, "meta-16-replicas", &m, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, "measured", 8, 2, PSL_MEASUREMENTS_MAX), "meta 32 meas");
    gen_meta_seed(g, "meta-32-measurements", &m, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, label, PSL_LABEL_SIZE_MAX, 3, 1), "meta label 255");
    gen_meta_seed(g, "meta-label-255", &m, 0);
    gen_ok(fixture_meta_make(&g->fx, &m, label, PSL_LABEL_SIZE_MAX, PSL_REPLICAS_MAX,
                             PSL_MEASUREMENTS_MAX),
           "meta at limits");
    gen_meta_seed(g, "meta-at-limits", &m, META_SIZE_MAX);
    m = g->fx.meta;
    m.retention = RETENTION_COLLECT_COVERED;
    m.quorum_k = FIXTURE_REPLICAS;
    gen_ok(meta_sign(&m, &g->fx.owner), "meta collect");
    gen_meta_seed(g, "meta-collect-covered", &m, 0);

    /* Invalid: truncated, bad magic, bad signature, a duplicated replica (signed). */
    uint8_t out[META_SIZE_MAX];
    size_t size;
    gen_ok(meta_encode(&g->fx.meta, out, sizeof out, &size), "meta");
    gen_write_cut(g, "meta", "meta-truncated", out, size - 1);
    gen_write_flip(g, "meta", "meta-bad-magic", out, size, 0, 0x20);
    gen_write_flip(g, "meta", "meta-bad-signature", out, size, size - 1, 0x01);
    gen_write_flip(g, "meta", "meta-bad-version", out, size, 4, 0x02);
}

static void gen_certs(struct gen *g)
{
    uint8_t out[CERT_SIZE];
    cert_encode(&g->fx.certs[0], out);
    gen_write(g, "cert", "cert-owner-worker", out, sizeof out);
    gen_write_cut(g, "cert", "cert-truncated", out, sizeof out - 1);
    gen_write_flip(g, "cert", "cert-bad-magic", out, sizeof out, 1, 0x40);
    gen_write_flip(g, "cert", "cert-bad-signature", out, sizeof out, sizeof out - 3, 0x08);
    cert_encode(&g->fx.certs[FIXTURE_COORDINATOR], out);
    gen_write(g, "cert", "cert-leader-coordinator", out, sizeof out);

    /* The owner-issued leader certificate of the evidence export, and one that expired before
     * the fixture's now. */
    gen_ok(cert_verify(&g->leader_cert, NULL, &g->fx.meta, FIXTURE_NOW_MS), "leader cert");
    cert_encode(&g->leader_cert, out);
    gen_write(g, "cert", "cert-owner-leader", out, sizeof out);
    struct writer_cert c = g->fx.certs[2];
    c.not_after_ms = FIXTURE_NOW_MS - 1;
    cert_sign(&c, &g->fx.owner);
    PSL_ASSERT(cert_verify(&c, NULL, &g->fx.meta, FIXTURE_NOW_MS) == PSL_ERR_CERT_EXPIRED);
    cert_encode(&c, out);
    gen_write(g, "cert", "cert-expired", out, sizeof out);

    for (unsigned i = 0; i < FIXTURE_WRITERS; i++) {
        const struct delegation *d = i == FIXTURE_COORDINATOR ? &g->fx.deleg : NULL;
        gen_ok(cert_verify(&g->fx.certs[i], d, &g->fx.meta, FIXTURE_NOW_MS), "fixture cert");
    }
}

static void gen_delegs(struct gen *g)
{
    uint8_t out[DELEG_SIZE];
    gen_ok(deleg_verify(&g->fx.deleg, &g->fx.meta, FIXTURE_NOW_MS), "fixture delegation");
    deleg_encode(&g->fx.deleg, out);
    gen_write(g, "deleg", "deleg-basic", out, sizeof out);
    gen_write_cut(g, "deleg", "deleg-truncated", out, sizeof out - 1);
    gen_write_flip(g, "deleg", "deleg-bad-magic", out, sizeof out, 3, 0x01);
    gen_write_flip(g, "deleg", "deleg-bad-signature", out, sizeof out, sizeof out - 1, 0x80);

    struct delegation d = g->fx.deleg;
    d.roles_mask = ROLE_MASK_ALL;
    d.serial = 2;
    deleg_sign(&d, &g->fx.owner);
    gen_ok(deleg_verify(&d, &g->fx.meta, FIXTURE_NOW_MS), "delegation all roles");
    deleg_encode(&d, out);
    gen_write(g, "deleg", "deleg-all-roles", out, sizeof out);
    d = g->fx.deleg;
    d.roles_mask = ROLE_BIT(ROLE_WORKER); /* does not cover the coordinator certificate */
    d.serial = 3;
    deleg_sign(&d, &g->fx.owner);
    deleg_encode(&d, out);
    gen_write(g, "deleg", "deleg-workers-only", out, sizeof out);
}

/* ---- records ---- */

static uint8_t *gen_payload(struct gen *g)
{
    return g->buf + PSL_RECORD_HEADER_SIZE;
}

static void gen_payload_writer(struct gen *g, struct wr *w)
{
    wr_init(w, gen_payload(g),
            GEN_BUF_SIZE - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
}

/* Seals the plaintext payload in the buffer as writer wi's next record, checks it as a receiver
 * would (parse, certificate or record check with the prev link, open), keeps a copy and writes it
 * as a fuzz_record seed named record-<seed_name> unless seed_name is NULL. check_prev is false
 * only for a record sealed on purpose with a broken prev link. */
static const struct gen_record *gen_seal_as(struct gen *g, unsigned wi, uint8_t type,
                                            size_t plain_size, const char *seed_name,
                                            bool check_prev)
{
    PSL_ASSERT(g->rec_count < GEN_RECORDS_MAX);
    struct gen_record *r = &g->recs[g->rec_count++];
    uint8_t prev[HASH_SIZE];
    memcpy(prev, g->chains[wi].head, HASH_SIZE);
    size_t size;
    const char *what = seed_name ? seed_name : record_type_name(type);
    gen_ok(record_chain_seal(&g->chains[wi], g->keys[wi], type, ++g->lamport, g->buf, GEN_BUF_SIZE,
                             plain_size, &size, r->hash),
           what);
    r->data = malloc(size);
    PSL_ASSERT(r->data);
    memcpy(r->data, g->buf, size);
    r->size = size;
    r->writer = wi;
    r->seq = g->chains[wi].seq;

    struct record_view v;
    gen_ok(record_parse(&v, r->data, r->size), what);
    if (type == REC_CERT) {
        struct writer_cert c;
        gen_ok(record_check_cert(&v, &g->fx.meta, FIXTURE_NOW_MS, &c), what);
        PSL_ASSERT(memcmp(c.writer_id, g->keys[wi]->writer_id, HASH_SIZE) == 0);
    } else {
        gen_ok(
            record_check(&v, &g->fx.meta, g->certs[wi], FIXTURE_NOW_MS, check_prev ? prev : NULL),
            what);
    }
    uint8_t *plain = malloc(v.h.payload_size + 1u);
    size_t plain_size_back;
    PSL_ASSERT(plain);
    gen_ok(record_open(&v, &g->keys[wi]->aead, plain, v.h.payload_size, &plain_size_back), what);
    PSL_ASSERT(plain_size_back == plain_size);
    free(plain);

    if (!seed_name)
        return r;
    char name[64];
    int n = snprintf(name, sizeof name, "record-%s", seed_name);
    PSL_ASSERT(n > 0 && (size_t)n < sizeof name);
    gen_write(g, "record", name, r->data, r->size);
    return r;
}

static const struct gen_record *gen_seal(struct gen *g, unsigned wi, uint8_t type,
                                         size_t plain_size, const char *seed_name)
{
    return gen_seal_as(g, wi, type, plain_size, seed_name, true);
}

static void gen_cert_record(struct gen *g, unsigned wi, const char *seed_name)
{
    record_chain_init(&g->chains[wi], g->fx.meta.name);
    struct wr w;
    gen_payload_writer(g, &w);
    certpl_encode(&w, g->certs[wi], wi == FIXTURE_COORDINATOR ? &g->fx.deleg : NULL);
    gen_ok(w.err, "certpl");
    if (wi == 0)
        gen_write(g, "data", "certpl-owner", gen_payload(g), w.pos);
    if (wi == FIXTURE_COORDINATOR)
        gen_write(g, "data", "certpl-delegated", gen_payload(g), w.pos);
    gen_seal(g, wi, REC_CERT, w.pos, seed_name);
}

/* A DATA batch of `count` ops; every seventh op from the fourth is a DEL. With key_max, op 0 has
 * a key of exactly PSL_KEY_SIZE_MAX bytes. The plaintext is also a fuzz_data seed, and the record
 * a fuzz_record seed, unless seed_name is NULL. */
static const struct gen_record *gen_data_record(struct gen *g, unsigned wi, unsigned count,
                                                bool key_max, const char *seed_name)
{
    static char keys[128][24], vals[128][40];
    static uint8_t big_key[PSL_KEY_SIZE_MAX];
    struct kv_op ops[128];
    PSL_ASSERT(count <= 128);
    for (unsigned i = 0; i < count; i++) {
        bool del = i % 7 == 3;
        snprintf(keys[i], sizeof keys[i], "w%u/k%03u", wi, i);
        snprintf(vals[i], sizeof vals[i], "value %u of %s", i, seed_name ? seed_name : "w");
        ops[i] = (struct kv_op){.op = del ? OP_DEL : OP_PUT,
                                .lamport = g->lamport + 1,
                                .key_size = (uint16_t)strlen(keys[i]),
                                .key = (const uint8_t *)keys[i],
                                .value_size = del ? 0 : (uint32_t)strlen(vals[i]),
                                .value = del ? NULL : (const uint8_t *)vals[i]};
    }
    if (key_max) {
        for (size_t i = 0; i < sizeof big_key; i++)
            big_key[i] = (uint8_t)('A' + i % 26);
        ops[0].key = big_key;
        ops[0].key_size = PSL_KEY_SIZE_MAX;
    }
    struct wr w;
    gen_payload_writer(g, &w);
    data_encode(&w, ops, count);
    gen_ok(w.err, "data");
    PSL_ASSERT(w.pos == data_encoded_size(ops, count));
    if (seed_name)
        gen_write(g, "data", seed_name, gen_payload(g), w.pos);
    return gen_seal(g, wi, REC_DATA, w.pos, seed_name);
}

static const struct gen_record *gen_opaque_record(struct gen *g, unsigned wi, uint8_t type,
                                                  size_t size, const char *seed_name)
{
    rng_bytes(gen_payload(g), size);
    return gen_seal(g, wi, type, size, seed_name);
}

/* A cut record (EOE or SYNC) of writer wi listing heads. */
static const struct gen_record *gen_cut_record(struct gen *g, unsigned wi, uint8_t type,
                                               const struct cut_head *heads, size_t count,
                                               const char *seed_name)
{
    struct wr w;
    gen_payload_writer(g, &w);
    cut_encode(&w, 1, heads, count);
    gen_ok(w.err, "cut");
    return gen_seal(g, wi, type, w.pos, seed_name);
}

/* A REVOKE record of writer wi: `by` revokes `target`. */
static const struct gen_record *gen_revoke_record(struct gen *g, unsigned wi,
                                                  const uint8_t target[HASH_SIZE],
                                                  const struct signer *by, const char *seed_name)
{
    struct revocation rv = {.serial = 7};
    memcpy(rv.target, target, HASH_SIZE);
    revoke_sign(&rv, g->fx.meta.name, by);
    PSL_ASSERT(revoke_verify(&rv, g->fx.meta.name));
    struct wr w;
    gen_payload_writer(g, &w);
    revoke_encode(&w, &rv);
    gen_ok(w.err, "revoke");
    if (seed_name)
        gen_write(g, "data", seed_name, gen_payload(g), w.pos);
    return gen_seal(g, wi, REC_REVOKE, w.pos, seed_name);
}

static void gen_records(struct gen *g)
{
    gen_cert_record(g, 0, "cert-owner");
    gen_cert_record(g, 1, "cert-owner-2");
    gen_cert_record(g, 2, "cert-owner-3");
    gen_cert_record(g, FIXTURE_COORDINATOR, "cert-delegated");

    gen_data_record(g, 0, 1, false, "data-1");
    gen_data_record(g, 1, 10, false, "data-10");
    gen_data_record(g, 2, 100, false, "data-100");
    gen_data_record(g, 0, 2, true, "data-key-max");

    /* Epoch end: each worker reports its head (EOE), the coordinator publishes the cut (SYNC). */
    struct cut_head heads[FIXTURE_WORKERS];
    struct wr w;
    for (unsigned i = 0; i < FIXTURE_WORKERS; i++) {
        struct cut_head own = {.seq = g->chains[i].seq};
        memcpy(own.writer, g->fx.writers[i].writer_id, HASH_SIZE);
        memcpy(own.hash, g->chains[i].head, HASH_SIZE);
        gen_payload_writer(g, &w);
        cut_encode(&w, 1, &own, 1);
        gen_ok(w.err, "eoe");
        char name[32];
        snprintf(name, sizeof name, "eoe-%u", i);
        if (i == 0)
            gen_write(g, "data", "cut-eoe", gen_payload(g), w.pos);
        const struct gen_record *r = gen_seal(g, i, REC_EOE, w.pos, name);
        memcpy(heads[i].writer, g->fx.writers[i].writer_id, HASH_SIZE);
        heads[i].seq = r->seq;
        memcpy(heads[i].hash, r->hash, HASH_SIZE);
    }
    gen_payload_writer(g, &w);
    cut_encode(&w, 1, heads, FIXTURE_WORKERS);
    gen_ok(w.err, "sync");
    gen_write(g, "data", "cut-sync", gen_payload(g), w.pos);
    const struct gen_record *sync = gen_seal(g, FIXTURE_COORDINATOR, REC_SYNC, w.pos, "sync");
    for (unsigned i = 0; i < FIXTURE_WRITERS; i++)
        memcpy(g->chains[i].sync, sync->hash, HASH_SIZE);

    /* After the merge: records that link to the SYNC. */
    gen_payload_writer(g, &w);
    head_encode(&w, FIXTURE_NOW_MS);
    gen_ok(w.err, "head");
    gen_write(g, "data", "head", gen_payload(g), w.pos);
    gen_seal(g, 0, REC_HEAD, w.pos, "head");
    gen_data_record(g, 1, 3, false, "data-after-sync");
    gen_opaque_record(g, 1, REC_RESULT, SEAL_OVERHEAD + 40, "result");
    gen_opaque_record(g, 2, REC_LSM_BLOCK, 200, "lsm-block");
    gen_opaque_record(g, 2, REC_LSM_INDEX, 64, "lsm-index");

    /* The owner revokes a writer that is not in the set, recorded by the coordinator. */
    uint8_t retired[HASH_SIZE];
    fixture_seed(retired, "retired-writer", 0);
    gen_revoke_record(g, FIXTURE_COORDINATOR, retired, &g->fx.owner, "revoke");
    g->base_count = g->rec_count;

    /* Invalid records. */
    const struct gen_record *d10 = &g->recs[5];
    PSL_ASSERT(d10->writer == 1 && d10->seq == 2);
    gen_write_cut(g, "record", "record-truncated", d10->data, d10->size - 1);
    gen_write_flip(g, "record", "record-bad-magic", d10->data, d10->size, 0, 0x10);
    gen_write_flip(g, "record", "record-bad-signature", d10->data, d10->size, d10->size - 1, 1);
    gen_write_flip(g, "record", "record-bad-tag", d10->data, d10->size,
                   d10->size - PSL_RECORD_SIG_SIZE - 1, 1);

    /* Invalid payloads for fuzz_data. */
    static const uint8_t empty_data[4] = {0, 0, 0, 0};
    gen_write(g, "data", "data-0", empty_data, sizeof empty_data);
    /* clang-format off */
    static const uint8_t bad_op[4 + DATA_OP_OVERHEAD + 1] = {
        1, 0, 0, 0,             /* op_count 1 */
        3,                      /* op 3: neither PUT nor DEL */
        0, 0, 0, 0, 0, 0, 0, 0, /* lamport */
        1, 0,                   /* key_size 1 */
        0, 0, 0, 0,             /* value_size 0 */
        'k'};
    /* clang-format on */
    gen_write(g, "data", "data-bad-op", bad_op, sizeof bad_op);
    static const uint8_t too_many[8] = {0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0};
    gen_write(g, "data", "data-count-over-limit", too_many, sizeof too_many);
}

/* Records that are each valid on their own (signed by a certified writer) but that a chain
 * verification must flag: a replayed record, a fork, a broken prev link, a SYNC by a worker, a
 * SYNC whose cut disagrees with the records, a link to an unknown SYNC, a revocation by a writer
 * that may not revoke, and a leader (owner-certified) that revokes a worker. They go into the
 * evidence export only, after the valid capsule, so mutations can recombine them. */
static void gen_evidence(struct gen *g)
{
    /* A fork: two different DATA records of worker 0 at the same seq. */
    struct record_chain saved = g->chains[0];
    gen_data_record(g, 0, 2, false, NULL);
    g->chains[0] = saved;
    gen_data_record(g, 0, 3, false, NULL);

    /* Worker 2's next record names a prev that is not its head. */
    fixture_seed(g->chains[2].head, "not-the-head", 0);
    struct wr w;
    gen_payload_writer(g, &w);
    head_encode(&w, FIXTURE_NOW_MS + 1);
    gen_ok(w.err, "head");
    gen_seal_as(g, 2, REC_HEAD, w.pos, NULL, false);

    /* A worker may not publish a SYNC. */
    struct cut_head head = {.seq = 2};
    memcpy(head.writer, g->keys[1]->writer_id, HASH_SIZE);
    memcpy(head.hash, g->recs[5].hash, HASH_SIZE);
    PSL_ASSERT(g->recs[5].writer == 1 && g->recs[5].seq == 2);
    gen_cut_record(g, 1, REC_SYNC, &head, 1, NULL);

    /* The coordinator's SYNC names worker 1's seq 2 with the wrong hash. */
    fixture_seed(head.hash, "wrong-hash", 0);
    gen_cut_record(g, FIXTURE_COORDINATOR, REC_SYNC, &head, 1, NULL);

    /* Worker 1 links to a SYNC that is not in the set. */
    uint8_t sync[HASH_SIZE];
    memcpy(sync, g->chains[1].sync, HASH_SIZE);
    fixture_seed(g->chains[1].sync, "unknown-sync", 0);
    gen_data_record(g, 1, 1, false, NULL);
    memcpy(g->chains[1].sync, sync, HASH_SIZE);

    /* Worker 1 tries to revoke worker 0: only the owner or a leader may. */
    gen_revoke_record(g, 1, g->keys[0]->writer_id, &g->keys[1]->sign, NULL);

    /* The leader, certified by the owner, joins and revokes worker 2. */
    gen_cert_record(g, GEN_LEADER, NULL);
    gen_revoke_record(g, GEN_LEADER, g->keys[2]->writer_id, &g->keys[GEN_LEADER]->sign, NULL);
}

/* ---- acks ---- */

static void gen_ack(struct gen *g, const struct gen_record *r, unsigned server, const char *name,
                    psl_err expect)
{
    struct ack a = {.seq = r->seq};
    memcpy(a.capsule, g->fx.meta.name, HASH_SIZE);
    memcpy(a.writer, g->keys[r->writer]->writer_id, HASH_SIZE);
    memcpy(a.record_hash, r->hash, HASH_SIZE);
    gen_ok(ack_sign_for(&a, &g->fx.servers[server], g->keys[r->writer]->kx.pk), name);
    PSL_ASSERT(ack_verify(&a, &g->fx.meta) == expect);
    uint8_t out[ACK_SIZE];
    ack_encode(&a, out);
    gen_write(g, "ack", name, out, sizeof out);
    if (server == 0) {
        gen_write_cut(g, "ack", "ack-truncated", out, sizeof out - 1);
        gen_write_flip(g, "ack", "ack-bad-magic", out, sizeof out, 2, 0x04);
        gen_write_flip(g, "ack", "ack-bad-signature", out, sizeof out, sizeof out - 2, 0x04);
        gen_write_flip(g, "ack", "ack-bad-mac", out, sizeof out, ACK_SIZE - SIGN_SIG_SIZE - 1,
                       0x04);
    }
}

static void gen_acks(struct gen *g)
{
    gen_ack(g, &g->recs[0], 0, "ack-server-0-cert", PSL_OK);
    gen_ack(g, &g->recs[5], 1, "ack-server-1-data", PSL_OK);
    gen_ack(g, &g->recs[11], 2, "ack-server-2-sync", PSL_OK);
    gen_ack(g, &g->recs[5], 5, "ack-not-replica", PSL_ERR_NOT_REPLICA);
}

/* ---- exports ---- */

static uint8_t *gen_export_bytes(struct gen *g, const size_t *order, size_t count, size_t *size)
{
    uint8_t meta[META_SIZE_MAX];
    size_t meta_size;
    gen_ok(meta_encode(&g->fx.meta, meta, sizeof meta, &meta_size), "export meta");
    char *mem = NULL;
    size_t mem_size = 0;
    FILE *f = open_memstream(&mem, &mem_size);
    PSL_ASSERT(f);
    struct export_writer x;
    export_begin(&x, f, meta, meta_size);
    for (size_t i = 0; i < count; i++)
        export_add(&x, g->recs[order[i]].data, g->recs[order[i]].size);
    gen_ok(export_finish(&x), "export");
    PSL_ASSERT(fclose(f) == 0);
    *size = mem_size;
    return (uint8_t *)mem;
}

/* Parses and verifies an export as `psl capsule verify` does, with the capsule key. */
static void gen_export_check(struct gen *g, const uint8_t *bytes, size_t size, size_t expect)
{
    struct export_view xv;
    gen_ok(export_parse(bytes, size, &xv), "export parse");
    PSL_ASSERT(xv.record_count == expect);
    struct capsule_meta m;
    gen_ok(meta_decode(&m, xv.meta, xv.meta_size), "export meta decode");
    struct chain_report rep;
    gen_ok(chain_verify(&m, xv.records, xv.record_count, FIXTURE_NOW_MS, g->fx.capsule_key, &rep),
           "export chain");
    if (!rep.ok || rep.valid_count != expect) {
        fprintf(stderr, "make_corpus: export does not verify: %zu of %zu valid, %zu failures\n",
                rep.valid_count, expect, rep.failure_count);
        exit(1);
    }
    PSL_ASSERT(expect == 0 || (rep.writer_count == FIXTURE_WRITERS && rep.sync_links > 0));
    chain_report_free(&rep);
    export_view_free(&xv);
}

static bool report_has_failure(const struct chain_report *rep, psl_err err)
{
    for (size_t i = 0; i < rep->failure_count; i++)
        if (rep->failures[i].err == err)
            return true;
    return false;
}

/* The evidence export must show each thing its records were built to show. */
static void gen_evidence_check(struct gen *g, const uint8_t *bytes, size_t size)
{
    struct export_view xv;
    gen_ok(export_parse(bytes, size, &xv), "evidence parse");
    struct chain_report rep;
    gen_ok(chain_verify(&g->fx.meta, xv.records, xv.record_count, FIXTURE_NOW_MS, g->fx.capsule_key,
                        &rep),
           "evidence chain");
    PSL_ASSERT(!rep.ok && rep.duplicate_count == 1 && rep.fork_count == 1);
    PSL_ASSERT(rep.writer_count == GEN_WRITERS);
    PSL_ASSERT(report_has_failure(&rep, PSL_ERR_BAD_PREV));
    PSL_ASSERT(report_has_failure(&rep, PSL_ERR_CERT_ROLE));
    PSL_ASSERT(report_has_failure(&rep, PSL_ERR_BAD_SYNC));
    PSL_ASSERT(report_has_failure(&rep, PSL_ERR_REVOKED));
    bool revoked2 = false;
    for (size_t i = 0; i < rep.writer_count; i++) {
        bool is2 = memcmp(rep.writers[i].id, g->keys[2]->writer_id, HASH_SIZE) == 0;
        if (is2)
            revoked2 = rep.writers[i].revoked;
        else
            PSL_ASSERT(!rep.writers[i].revoked);
    }
    PSL_ASSERT(revoked2);
    chain_report_free(&rep);
    export_view_free(&xv);
}

static void gen_exports(struct gen *g)
{
    size_t order[GEN_RECORDS_MAX + 1], size;
    for (size_t i = 0; i < g->base_count; i++)
        order[i] = i;
    uint8_t *x = gen_export_bytes(g, order, g->base_count, &size);
    gen_export_check(g, x, size, g->base_count);
    gen_write(g, "export", "export-capsule", x, size);
    gen_write_cut(g, "export", "export-truncated", x, size / 2);
    gen_write_cut(g, "export", "export-no-end-mark", x, size - 12);
    gen_write_flip(g, "export", "export-bad-magic", x, size, 0, 0x01);
    gen_write_flip(g, "export", "export-bad-count", x, size, size - 8, 0x01);
    free(x);

    /* The same records in reverse order: verification must not depend on the order. */
    for (size_t i = 0; i < g->base_count; i++)
        order[i] = g->base_count - 1 - i;
    x = gen_export_bytes(g, order, g->base_count, &size);
    gen_export_check(g, x, size, g->base_count);
    gen_write(g, "export", "export-capsule-reversed", x, size);
    free(x);

    /* A SYNC and the records it names, without the rest (a partial but valid view is not ok:
     * writers without their CERT make the record checks fail, which is what it exercises). */
    static const size_t partial[] = {3, 8, 9, 10, 11};
    x = gen_export_bytes(g, partial, sizeof partial / sizeof partial[0], &size);
    gen_write(g, "export", "export-partial", x, size);
    free(x);

    x = gen_export_bytes(g, order, 0, &size);
    gen_export_check(g, x, size, 0);
    gen_write(g, "export", "export-empty", x, size);
    free(x);

    /* The capsule, a replay of its DATA record 5, and the evidence records. */
    size_t n = 0;
    for (size_t i = 0; i < g->base_count; i++)
        order[n++] = i;
    order[n++] = 5;
    for (size_t i = g->base_count; i < g->rec_count; i++)
        order[n++] = i;
    x = gen_export_bytes(g, order, n, &size);
    gen_evidence_check(g, x, size);
    gen_write(g, "export", "export-evidence", x, size);
    free(x);
}

/* The writer tables: the fixture's writers, then the leader's signing key as a writer with an
 * owner-issued LEADER certificate. */
static void gen_leader_init(struct gen *g)
{
    for (unsigned i = 0; i < FIXTURE_WRITERS; i++) {
        g->keys[i] = &g->fx.writers[i];
        g->certs[i] = &g->fx.certs[i];
    }
    uint8_t seed[32], kx_seed[32];
    fixture_seed(seed, "leader", 0);
    fixture_seed(kx_seed, "leader-kx", 0);
    gen_ok(writer_keys_init(&g->leader_keys, seed, kx_seed, g->fx.capsule_key), "leader keys");
    PSL_ASSERT(memcmp(g->leader_keys.sign.pk, g->fx.leader.pk, SIGN_PK_SIZE) == 0);
    struct writer_cert *c = &g->leader_cert;
    *c = g->fx.certs[0];
    c->role = ROLE_LEADER;
    memcpy(c->sign_pk, g->leader_keys.sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, g->leader_keys.kx.pk, KX_PK_SIZE);
    c->serial = 99;
    cert_sign(c, &g->fx.owner);
    g->keys[GEN_LEADER] = &g->leader_keys;
    g->certs[GEN_LEADER] = c;
}

/* ---- capsule server requests and replies ---- */

static void gen_protos(struct gen *g)
{
    struct proto_req q = {.type = REQ_GET_HASH, .request_id = 7};
    memset(q.requester, 0x42, HASH_SIZE);
    memcpy(q.capsule, g->fx.meta.name, HASH_SIZE);
    memcpy(q.hash, g->recs[0].hash, HASH_SIZE);
    uint8_t buf[PROTO_REQ_SIZE_MAX];
    size_t n = proto_req_encode(&q, buf);
    gen_write(g, "proto_req", "get-hash", buf, n);
    gen_write_cut(g, "proto_req", "get-hash-truncated", buf, n - 1);
    gen_write_flip(g, "proto_req", "bad-magic", buf, n, 0, 0x01);
    q.type = REQ_GET_RANGE;
    memcpy(q.writer, g->recs[0].data + 4 + 1 + 1 + 2 + 4 + HASH_SIZE, HASH_SIZE);
    q.from = 1;
    q.to = PROTO_RANGE_MAX; /* exactly at the limit */
    n = proto_req_encode(&q, buf);
    gen_write(g, "proto_req", "get-range-at-limit", buf, n);
    q.to = PROTO_RANGE_MAX + 1;
    n = proto_req_encode(&q, buf);
    gen_write(g, "proto_req", "get-range-over-limit", buf, n);
    q.type = REQ_GET_HEADS;
    n = proto_req_encode(&q, buf);
    gen_write(g, "proto_req", "get-heads", buf, n);
    q.type = REQ_GET_META;
    n = proto_req_encode(&q, buf);
    gen_write(g, "proto_req", "get-meta", buf, n);

    /* Replies, signed by a replica-set server of the fixture. */
    uint8_t *rep = malloc(PROTO_REPLY_HEADER_SIZE + GEN_BUF_SIZE + SIGN_SIG_SIZE);
    PSL_ASSERT(rep);
    struct proto_reply r = {.type = REQ_GET_RANGE, .request_id = 7, .status = REP_OK};
    memcpy(r.capsule, g->fx.meta.name, HASH_SIZE);
    uint8_t *body = rep + PROTO_REPLY_HEADER_SIZE;
    size_t bn = 4, count = 0;
    for (size_t i = 0; i < g->rec_count && count < 3; i++) {
        if (bn + 4 + g->recs[i].size > GEN_BUF_SIZE)
            break;
        put_le32(body + bn, (uint32_t)g->recs[i].size);
        memcpy(body + bn + 4, g->recs[i].data, g->recs[i].size);
        bn += 4 + g->recs[i].size;
        count++;
    }
    put_le32(body, (uint32_t)count);
    n = proto_reply_seal(&r, &g->fx.servers[0], rep, bn);
    struct proto_reply check;
    gen_ok(proto_reply_open(&check, rep, n), "range reply");
    gen_write(g, "proto_reply", "range", rep, n);
    gen_write_flip(g, "proto_reply", "range-bad-signature", rep, n, n - 1, 0x01);
    gen_write_cut(g, "proto_reply", "range-truncated", rep, n - 10);

    r.type = REQ_GET_HEADS;
    struct proto_head h = {.contiguous = 3, .max_seq = 5};
    memcpy(h.writer, g->recs[0].data + 44, HASH_SIZE);
    memcpy(h.hash, g->recs[0].hash, HASH_SIZE);
    put_le32(body, 2);
    proto_head_put(body + 4, &h);
    h.forked = true;
    proto_head_put(body + 4 + PROTO_HEAD_ENTRY_SIZE, &h);
    n = proto_reply_seal(&r, &g->fx.servers[1], rep, 4 + 2 * PROTO_HEAD_ENTRY_SIZE);
    gen_ok(proto_reply_open(&check, rep, n), "heads reply");
    gen_write(g, "proto_reply", "heads", rep, n);
    gen_write_flip(g, "proto_reply", "heads-bad-count", rep, n, PROTO_REPLY_HEADER_SIZE, 0x04);

    r.type = REQ_GET_META;
    r.status = REP_NOT_FOUND;
    n = proto_reply_seal(&r, &g->fx.servers[2], rep, 0);
    gen_write(g, "proto_reply", "not-found", rep, n);
    free(rep);
}

/* ---- CHECKPOINT payloads (fuzz_checkpoint) and one sealed CHECKPOINT record ----
 * Written last, so that the seeds of every other target stay byte for byte what they were. */

/* A checkpoint of `heads` cut heads and `live` live hashes, each named by its index big-endian
 * (ascending, and low-entropy so that the seeds at the limits compress well). */
static uint8_t *gen_checkpoint_bytes(size_t heads, size_t live, size_t *size)
{
    struct checkpoint_head *h = calloc(heads ? heads : 1, sizeof *h);
    uint8_t(*l)[HASH_SIZE] = calloc(live ? live : 1, HASH_SIZE);
    size_t n = checkpoint_encoded_size(heads, live);
    uint8_t *out = malloc(n);
    PSL_ASSERT(h && l && out);
    for (size_t i = 0; i < heads; i++) {
        for (unsigned b = 0; b < 4; b++)
            h[i].writer[b] = (uint8_t)(i >> (24 - 8 * b));
        h[i].seq = 2 + i;
        memset(h[i].hash, 0x5a, HASH_SIZE);
    }
    for (size_t i = 0; i < live; i++)
        for (unsigned b = 0; b < 4; b++)
            l[i][b] = (uint8_t)(i >> (24 - 8 * b));
    struct checkpoint cp = {.index_seq = 40,
                            .generation = 7,
                            .head_count = heads,
                            .heads = h,
                            .live_count = live,
                            .live = (const uint8_t(*)[HASH_SIZE])l};
    memset(cp.index_hash, 0xcc, HASH_SIZE);
    struct wr w;
    wr_init(&w, out, n);
    gen_ok(checkpoint_encode(&cp, &w), "checkpoint");
    free(h);
    free(l);
    *size = n;
    return out;
}

static void gen_checkpoints(struct gen *g)
{
    size_t n;
    uint8_t *b = gen_checkpoint_bytes(0, 0, &n);
    gen_write(g, "checkpoint", "checkpoint-empty", b, n);
    free(b);
    b = gen_checkpoint_bytes(3, 5, &n);
    gen_write(g, "checkpoint", "checkpoint-basic", b, n);
    gen_write_cut(g, "checkpoint", "checkpoint-truncated", b, n - 1);
    gen_write_flip(g, "checkpoint", "checkpoint-bad-version", b, n, 0, 0x02);
    gen_write_flip(g, "checkpoint", "checkpoint-heads-unsorted", b, n, CHECKPOINT_FIXED_SIZE - 4,
                   0x80);
    free(b);
    b = gen_checkpoint_bytes(PSL_CUT_HEADS_MAX, 1, &n);
    gen_write(g, "checkpoint", "checkpoint-heads-at-limit", b, n);
    free(b);
    /* No seed with the live list at its limit: 2 MB is too large to commit (test_checkpoint
     * decodes one in memory). */
    /* Counts one past their limits (and no entries behind them). */
    b = gen_checkpoint_bytes(0, 0, &n);
    put_le32(b + CHECKPOINT_FIXED_SIZE - 8, PSL_CUT_HEADS_MAX + 1);
    gen_write(g, "checkpoint", "checkpoint-heads-over-limit", b, n);
    put_le32(b + CHECKPOINT_FIXED_SIZE - 8, 0);
    put_le32(b + CHECKPOINT_FIXED_SIZE - 4, PSL_CHECKPOINT_BLOCKS_MAX + 1);
    gen_write(g, "checkpoint", "checkpoint-live-over-limit", b, n);
    free(b);

    /* A sealed CHECKPOINT record of the first worker for fuzz_record. */
    b = gen_checkpoint_bytes(2, 3, &n);
    memcpy(gen_payload(g), b, n);
    free(b);
    gen_seal(g, 0, REC_CHECKPOINT, n, "checkpoint");
}

/* ---- the storage engine's write-ahead log ---- */

struct wal_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t done;
};

static void on_wal_stored(void *ctx, psl_err err, const uint8_t hash[HASH_SIZE])
{
    (void)hash;
    struct wal_wait *w = ctx;
    gen_ok(err, "wal append");
    pthread_mutex_lock(&w->mu);
    w->done++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A WAL as a store leaves it: the valid capsule's records appended to a fresh store, the file
 * read back before the close (whose checkpoint starts a new generation) and cut after its last
 * frame (the rest is the zero fill ahead). Runs last: the store draws its salt from the seeded
 * rng, so the bytes are the same on every run. */
static void gen_wal(struct gen *g)
{
    char dir[] = "/tmp/psl-make-corpus-wal.XXXXXX", path[64];
    PSL_ASSERT(mkdtemp(dir));
    struct store_config cfg = {.dir = dir, .map_size_bytes = 64u << 20};
    struct store *st;
    gen_ok(store_open(&st, &cfg), "wal store");
    static struct wal_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    for (size_t i = 0; i < g->base_count; i++) {
        struct record_view v;
        gen_ok(record_parse(&v, g->recs[i].data, g->recs[i].size), "wal record");
        gen_ok(store_append(st, &v, on_wal_stored, &w), "wal append");
    }
    pthread_mutex_lock(&w.mu);
    while (w.done < g->base_count)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    snprintf(path, sizeof path, "%s/wal", dir);
    FILE *f = fopen(path, "rb");
    PSL_ASSERT(f);
    static uint8_t wal[4u << 20];
    size_t size = fread(wal, 1, sizeof wal, f);
    PSL_ASSERT(size > 0 && size < sizeof wal);
    fclose(f);
    store_close(st);
    while (size > 0 && wal[size - 1] == 0) /* a frame ends with a signature */
        size--;
    PSL_ASSERT(size > 4096);
    gen_write(g, "wal", "wal-records", wal, size);
    gen_write_cut(g, "wal", "wal-torn-tail", wal, size - 40);
    gen_write_cut(g, "wal", "wal-header-only", wal, 4096);
    gen_write_flip(g, "wal", "wal-bad-frame", wal, size, 4096 + 48 + 200, 0x01);
    gen_write_flip(g, "wal", "wal-bad-header", wal, size, 9, 0x01);
    gen_write(g, "wal", "wal-empty", wal, 0);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char p[sizeof dir + 1 + 256];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (normally tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    static struct gen g;
    g.out_dir = argv[1];
    if (mkdir(g.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: mkdir %s: %s\n", g.out_dir, strerror(errno));
        return 1;
    }
    gen_ok(psl_crypto_init(), "crypto init");
    rng_seeded_init(&g.rng, GEN_RNG_SEED);
    rng_set_source(&g.rng.source);
    gen_ok(fixture_init(&g.fx), "fixture");
    g.buf = malloc(GEN_BUF_SIZE);
    PSL_ASSERT(g.buf);
    gen_leader_init(&g);

    gen_metas(&g);
    gen_certs(&g);
    gen_delegs(&g);
    gen_records(&g);
    gen_acks(&g);
    gen_evidence(&g);
    gen_exports(&g);
    gen_protos(&g);
    gen_checkpoints(&g);
    gen_wal(&g); /* last: see there */

    printf("make_corpus: wrote %zu seeds (%zu bytes) under %s\n", g.files, g.bytes, g.out_dir);
    for (size_t i = 0; i < g.rec_count; i++)
        free(g.recs[i].data);
    free(g.buf);
    writer_keys_deinit(&g.leader_keys);
    fixture_deinit(&g.fx);
    rng_set_source(NULL);
    return 0;
}
