/* cmd_demo.c: `psl demo`, what `make run` runs until the embedded federation exists. It plays
 * every role of a small capsule in one process (owner, a delegated leader, three workers, a
 * coordinator, three storage servers signing ACKs), writes DATA records with an EOE/SYNC merge
 * in the middle, exports the capsule, reads the export back from disk, verifies it as an auditor
 * would, and shows that a single flipped bit is caught. The writers are plain in-process keys
 * here, not enclaves: the output says so. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/chain.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsule/payload.h"
#include "cli/cli.h"

#define DEMO_WORKERS 3
#define DEMO_SERVERS 3
#define DEMO_OPS_PER_RECORD 10
#define DEMO_RECORDS_MAX 64
#define DEMO_BUF_SIZE 8192

struct demo_writer {
    struct writer_keys keys;
    struct record_chain chain;
    struct writer_cert cert;
    const char *name;
};

struct demo {
    struct capsule_meta meta;
    uint8_t *capsule_key;
    struct signer owner, leader;
    struct signer servers[DEMO_SERVERS];
    struct delegation deleg;
    struct demo_writer w[DEMO_WORKERS + 1]; /* the last one is the coordinator */
    uint8_t *recs[DEMO_RECORDS_MAX];
    size_t rec_size[DEMO_RECORDS_MAX];
    size_t rec_count;
    uint64_t lamport;
    uint64_t ops;
};

static const char demo_usage[] =
    "Usage: psl demo [--data DIR]\n"
    "\n"
    "Builds a demo capsule (three workers, one coordinator, a SYNC merge, three storage\n"
    "servers acknowledging every record), exports it to DIR/demo.pslx with its keys beside it,\n"
    "verifies the export from disk and prints a summary. DIR defaults to ./psl-data.\n"
    "Afterwards try: psl capsule verify DIR/demo.pslx --key DIR/demo-capsule.key\n";

/* Seals the payload in buf (plain_size bytes after the header) as the writer's next record and
 * keeps a copy. */
static psl_err demo_seal(struct demo *d, struct demo_writer *w, uint8_t type, uint8_t *buf,
                         size_t plain_size, uint8_t hash[HASH_SIZE])
{
    if (d->rec_count == DEMO_RECORDS_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t size;
    psl_err err = record_chain_seal(&w->chain, &w->keys, type, ++d->lamport, buf, DEMO_BUF_SIZE,
                                    plain_size, &size, hash);
    if (err)
        return err;
    uint8_t *copy = malloc(size);
    if (!copy)
        return PSL_ERR_NOMEM;
    memcpy(copy, buf, size);
    d->recs[d->rec_count] = copy;
    d->rec_size[d->rec_count++] = size;
    return PSL_OK;
}

static psl_err demo_data(struct demo *d, struct demo_writer *w, unsigned widx, unsigned round,
                         uint8_t *buf)
{
    char keys[DEMO_OPS_PER_RECORD][32], vals[DEMO_OPS_PER_RECORD][48];
    struct kv_op ops[DEMO_OPS_PER_RECORD];
    for (unsigned i = 0; i < DEMO_OPS_PER_RECORD; i++) {
        snprintf(keys[i], sizeof keys[i], "worker%u/key%02u", widx, i);
        snprintf(vals[i], sizeof vals[i], "round %u value %u from worker %u", round, i, widx);
        /* Every worker also updates one shared key: LWW on (lamport, writer) decides. */
        if (i == 0)
            snprintf(keys[i], sizeof keys[i], "shared/last-writer");
        bool del = round == 4 && i == DEMO_OPS_PER_RECORD - 1;
        ops[i] = (struct kv_op){.op = del ? OP_DEL : OP_PUT, .lamport = d->lamport + 1,
                                .key_size = (uint16_t)strlen(keys[i]), .key = (uint8_t *)keys[i],
                                .value_size = del ? 0 : (uint32_t)strlen(vals[i]),
                                .value = del ? NULL : (uint8_t *)vals[i]};
    }
    struct wr wr;
    wr_init(&wr, buf + PSL_RECORD_HEADER_SIZE, DEMO_BUF_SIZE - PSL_RECORD_HEADER_SIZE - 80);
    data_encode(&wr, ops, DEMO_OPS_PER_RECORD);
    if (wr.err)
        return wr.err;
    d->ops += DEMO_OPS_PER_RECORD;
    uint8_t hash[HASH_SIZE];
    return demo_seal(d, w, REC_DATA, buf, wr.pos, hash);
}

static psl_err demo_cert(struct demo *d, struct demo_writer *w, uint8_t role, bool by_leader,
                         uint8_t *buf)
{
    uint64_t now = clock_wall_ms();
    memset(&w->cert, 0, sizeof w->cert);
    w->cert.role = role;
    memcpy(w->cert.capsule, d->meta.name, HASH_SIZE);
    memcpy(w->cert.sign_pk, w->keys.sign.pk, SIGN_PK_SIZE);
    memcpy(w->cert.kx_pk, w->keys.kx.pk, KX_PK_SIZE);
    memcpy(w->cert.measurement, d->meta.measurements[0], HASH_SIZE);
    w->cert.not_before_ms = now - 60000;
    w->cert.not_after_ms = now + 24ull * 3600 * 1000;
    w->cert.serial = rng_u64();
    cert_sign(&w->cert, by_leader ? &d->leader : &d->owner);
    record_chain_init(&w->chain, d->meta.name);
    struct wr wr;
    wr_init(&wr, buf + PSL_RECORD_HEADER_SIZE, DEMO_BUF_SIZE - PSL_RECORD_HEADER_SIZE - 80);
    certpl_encode(&wr, &w->cert, by_leader ? &d->deleg : NULL);
    if (wr.err)
        return wr.err;
    uint8_t hash[HASH_SIZE];
    return demo_seal(d, w, REC_CERT, buf, wr.pos, hash);
}

static psl_err demo_setup(struct demo *d)
{
    psl_err err;
    if ((err = signer_init(&d->owner, NULL)) || (err = signer_init(&d->leader, NULL)))
        return err;
    struct capsule_meta *m = &d->meta;
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = clock_wall_ms();
    static const char label[] = "psl demo capsule";
    m->label_size = sizeof label - 1;
    memcpy(m->label, label, sizeof label - 1);
    m->replica_count = DEMO_SERVERS;
    m->quorum_k = 2;
    for (unsigned i = 0; i < DEMO_SERVERS; i++) {
        if ((err = signer_init(&d->servers[i], NULL)))
            return err;
        memcpy(m->replicas[i], d->servers[i].pk, SIGN_PK_SIZE);
    }
    /* Stand-in measurement until enclaves exist: the hash of a fixed demo string. */
    static const char measured[] = "psl demo writer (in-process, no enclave)";
    hash_sha256(m->measurements[0], measured, sizeof measured - 1);
    m->measurement_count = 1;
    if ((err = meta_sign(m, &d->owner)))
        return err;
    d->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!d->capsule_key)
        return PSL_ERR_NOMEM;
    rng_bytes(d->capsule_key, AEAD_KEY_SIZE);
    /* The owner delegates worker certification to a leader. */
    uint64_t now = clock_wall_ms();
    d->deleg = (struct delegation){.roles_mask = ROLE_BIT(ROLE_WORKER),
                                   .not_before_ms = now - 60000,
                                   .not_after_ms = now + 7ull * 24 * 3600 * 1000,
                                   .serial = 1};
    memcpy(d->deleg.capsule, m->name, HASH_SIZE);
    memcpy(d->deleg.leader_pk, d->leader.pk, SIGN_PK_SIZE);
    memcpy(d->deleg.measurement, m->measurements[0], HASH_SIZE);
    deleg_sign(&d->deleg, &d->owner);
    for (unsigned i = 0; i <= DEMO_WORKERS; i++)
        if ((err = writer_keys_init(&d->w[i].keys, NULL, NULL, d->capsule_key)))
            return err;
    return PSL_OK;
}

/* The epoch step: each worker reports its head (EOE), the coordinator publishes the cut (SYNC)
 * and every worker links its next records to it. */
static psl_err demo_epoch(struct demo *d, uint8_t *buf)
{
    struct cut_head heads[DEMO_WORKERS];
    struct wr wr;
    uint8_t hash[HASH_SIZE];
    psl_err err;
    for (unsigned i = 0; i < DEMO_WORKERS; i++) {
        struct demo_writer *w = &d->w[i];
        struct cut_head own = {.seq = w->chain.seq + 1};
        memcpy(own.writer, w->keys.writer_id, HASH_SIZE);
        /* The EOE reports the head before it (the EOE itself becomes the head in the cut). */
        memcpy(own.hash, w->chain.head, HASH_SIZE);
        own.seq = w->chain.seq;
        wr_init(&wr, buf + PSL_RECORD_HEADER_SIZE, DEMO_BUF_SIZE - PSL_RECORD_HEADER_SIZE - 80);
        cut_encode(&wr, 1, &own, 1);
        if (wr.err)
            return wr.err;
        if ((err = demo_seal(d, w, REC_EOE, buf, wr.pos, hash)))
            return err;
        memcpy(heads[i].writer, w->keys.writer_id, HASH_SIZE);
        heads[i].seq = w->chain.seq;
        memcpy(heads[i].hash, hash, HASH_SIZE);
    }
    struct demo_writer *coord = &d->w[DEMO_WORKERS];
    wr_init(&wr, buf + PSL_RECORD_HEADER_SIZE, DEMO_BUF_SIZE - PSL_RECORD_HEADER_SIZE - 80);
    cut_encode(&wr, 1, heads, DEMO_WORKERS);
    if (wr.err)
        return wr.err;
    if ((err = demo_seal(d, coord, REC_SYNC, buf, wr.pos, hash)))
        return err;
    for (unsigned i = 0; i <= DEMO_WORKERS; i++)
        memcpy(d->w[i].chain.sync, hash, HASH_SIZE);
    return PSL_OK;
}

/* One server's ACK of one record: what the server makes (MAC under the key it shares with the
 * record's writer, and its signature), checked as the writer checks it (the MAC) and as anyone
 * else can (the signature). */
static bool demo_ack_one(const struct demo *d, unsigned s, const struct demo_writer *w,
                         const struct ack_keys *wkeys, const struct record_view *v)
{
    struct ack a = {.seq = v->h.seq};
    memcpy(a.capsule, v->h.capsule, HASH_SIZE);
    memcpy(a.writer, v->h.writer, HASH_SIZE);
    memcpy(a.record_hash, v->hash, HASH_SIZE);
    if (ack_sign_for(&a, &d->servers[s], w->keys.kx.pk) != PSL_OK)
        return false;
    uint8_t wire[ACK_SIZE];
    ack_encode(&a, wire);
    struct ack back;
    int idx;
    return ack_decode(&back, wire, sizeof wire) == PSL_OK &&
           ack_verify_mac(&back, &d->meta, wkeys, &idx) == PSL_OK && idx == (int)s &&
           ack_verify(&back, &d->meta) == PSL_OK;
}

/* Every server acknowledges every record; returns how many records reached k valid ACKs. */
static size_t demo_acks(const struct demo *d, size_t *acks_valid)
{
    size_t durable = 0;
    *acks_valid = 0;
    struct ack_keys wkeys[DEMO_WORKERS + 1];
    for (unsigned i = 0; i <= DEMO_WORKERS; i++)
        if (ack_keys_init(&wkeys[i], &d->w[i].keys.kx, &d->meta))
            wkeys[i] = (struct ack_keys){0}; /* its ACKs then fail to verify, and show it */
    for (size_t r = 0; r < d->rec_count; r++) {
        struct record_view v;
        if (record_parse(&v, d->recs[r], d->rec_size[r]))
            continue;
        unsigned wi = 0;
        while (wi <= DEMO_WORKERS && memcmp(d->w[wi].keys.writer_id, v.h.writer, HASH_SIZE))
            wi++;
        if (wi > DEMO_WORKERS)
            continue;
        unsigned valid = 0;
        for (unsigned s = 0; s < DEMO_SERVERS; s++)
            valid += demo_ack_one(d, s, &d->w[wi], &wkeys[wi], &v);
        *acks_valid += valid;
        durable += valid >= d->meta.quorum_k;
    }
    for (unsigned i = 0; i <= DEMO_WORKERS; i++)
        ack_keys_free(&wkeys[i]);
    return durable;
}

static int demo_write_files(const struct demo *d, const char *dir, char *export_path, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/demo-owner.key", dir);
    unlink(path); /* the demo owns these file names and makes them anew each run */
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return EXIT_RUNTIME;
    signer_seed(&d->owner, seed);
    psl_err err = keyfile_write(path, KEYFILE_SIGNING, seed, d->owner.pk);
    secret_free(seed);
    snprintf(path, sizeof path, "%s/demo-capsule.key", dir);
    unlink(path);
    if (!err)
        err = keyfile_write(path, KEYFILE_CAPSULE, d->capsule_key, NULL);
    if (err) {
        cli_error("cannot write key files under %s: %s", dir, psl_strerror(err));
        return EXIT_RUNTIME;
    }
    snprintf(export_path, cap, "%s/demo.pslx", dir);
    FILE *f = fopen(export_path, "w");
    if (!f) {
        cli_error("cannot create %s: %s", export_path, strerror(errno));
        return EXIT_RUNTIME;
    }
    uint8_t meta[META_SIZE_MAX];
    size_t meta_size;
    if (meta_encode(&d->meta, meta, sizeof meta, &meta_size) != PSL_OK) {
        fclose(f);
        return EXIT_RUNTIME;
    }
    struct export_writer x;
    export_begin(&x, f, meta, meta_size);
    for (size_t i = 0; i < d->rec_count; i++)
        export_add(&x, d->recs[i], d->rec_size[i]);
    err = export_finish(&x);
    if (fclose(f) != 0 || err) {
        cli_error("cannot write %s", export_path);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Reads the export back from disk and verifies it; then flips one bit of one record. */
static int demo_verify(const struct demo *d, const char *export_path)
{
    uint8_t *buf;
    struct export_view view;
    struct capsule_meta m;
    int rc = cli_load_export(export_path, &buf, &view, &m);
    if (rc)
        return rc;
    struct chain_report rep;
    psl_err err = chain_verify(&m, view.records, view.record_count, clock_wall_ms(),
                               d->capsule_key, &rep);
    if (err) {
        cli_error("verification could not run: %s", psl_strerror(err));
        rc = EXIT_RUNTIME;
        goto out_free;
    }
    uint64_t ops = 0;
    for (size_t i = 0; i < rep.writer_count; i++)
        ops += rep.writers[i].data_ops;
    printf("verify    %zu records from %zu writers, %llu operations decrypted, %zu sync links, "
           "%zu forks, %zu failures: %s\n",
           rep.valid_count, rep.writer_count, (unsigned long long)ops, rep.sync_links,
           rep.fork_count, rep.failure_count, rep.ok ? "VERIFIED" : "NOT VERIFIED");
    rc = rep.ok ? EXIT_OK : EXIT_VERIFY_FAILED;
    chain_report_free(&rep);
    if (rc)
        goto out_free;

    /* Tamper: flip one bit in the middle of a DATA record's ciphertext. */
    size_t victim = view.record_count / 2;
    uint8_t *copy = malloc(view.records[victim].size);
    if (!copy) {
        rc = EXIT_RUNTIME;
        goto out_free;
    }
    memcpy(copy, view.records[victim].data, view.records[victim].size);
    copy[PSL_RECORD_HEADER_SIZE + 5] ^= 0x10;
    struct chain_input saved = view.records[victim];
    view.records[victim] = (struct chain_input){.data = copy, .size = saved.size};
    err = chain_verify(&m, view.records, view.record_count, clock_wall_ms(), d->capsule_key, &rep);
    view.records[victim] = saved;
    free(copy);
    if (err) {
        rc = EXIT_RUNTIME;
        goto out_free;
    }
    printf("tamper    flipped 1 bit of record #%zu: %s (%s)\n", victim,
           rep.ok ? "NOT DETECTED" : "rejected",
           rep.failure_count ? psl_err_name(rep.failures[0].err) : "-");
    if (rep.ok)
        rc = EXIT_VERIFY_FAILED;
    chain_report_free(&rep);
out_free:
    export_view_free(&view);
    free(buf);
    return rc;
}

static void demo_free(struct demo *d)
{
    for (size_t i = 0; i < d->rec_count; i++)
        free(d->recs[i]);
    for (unsigned i = 0; i <= DEMO_WORKERS; i++)
        writer_keys_deinit(&d->w[i].keys);
    for (unsigned i = 0; i < DEMO_SERVERS; i++)
        signer_deinit(&d->servers[i]);
    signer_deinit(&d->leader);
    signer_deinit(&d->owner);
    secret_free(d->capsule_key);
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = "psl-data";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        if (c == 'd') {
            dir = optarg;
        } else if (c == 'h') {
            fputs(demo_usage, stdout);
            return EXIT_OK;
        } else {
            fputs(demo_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        cli_error("demo takes no arguments besides --data DIR");
        return EXIT_USAGE;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_error("cannot create data directory %s: %s", dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    struct demo *d = calloc(1, sizeof *d);
    uint8_t *buf = malloc(DEMO_BUF_SIZE);
    int rc = EXIT_RUNTIME;
    psl_err err = PSL_ERR_NOMEM;
    if (!d || !buf || (err = demo_setup(d)))
        goto out_fail;
    uint64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < DEMO_WORKERS && !err; i++)
        err = demo_cert(d, &d->w[i], ROLE_WORKER, true, buf);
    if (!err)
        err = demo_cert(d, &d->w[DEMO_WORKERS], ROLE_COORDINATOR, false, buf);
    for (unsigned round = 1; round <= 2 && !err; round++)
        for (unsigned i = 0; i < DEMO_WORKERS && !err; i++)
            err = demo_data(d, &d->w[i], i, round, buf);
    if (!err)
        err = demo_epoch(d, buf);
    for (unsigned round = 3; round <= 4 && !err; round++)
        for (unsigned i = 0; i < DEMO_WORKERS && !err; i++)
            err = demo_data(d, &d->w[i], i, round, buf);
    if (err)
        goto out_fail;
    uint64_t t1 = clock_mono_ns();

    char name[65];
    hex_encode(name, d->meta.name, HASH_SIZE);
    printf("psl demo: one capsule, every role played in this process (writers are in-process\n"
           "keys, not enclaves: the sim TEE arrives with the enclave work)\n");
    printf("capsule   %s\n", name);
    printf("replicas  n=%u k=%u; workers certified by a delegated leader, coordinator by the owner\n",
           d->meta.replica_count, d->meta.quorum_k);
    printf("wrote     %zu records (%llu operations) from %d workers and 1 coordinator in %.2f ms, "
           "with one EOE/SYNC merge\n",
           d->rec_count, (unsigned long long)d->ops, DEMO_WORKERS, (double)(t1 - t0) / 1e6);
    size_t acks;
    size_t durable = demo_acks(d, &acks);
    printf("acks      %zu valid server ACKs; %zu of %zu records durable at k=%u\n", acks, durable,
           d->rec_count, d->meta.quorum_k);
    char export_path[4096];
    rc = demo_write_files(d, dir, export_path, sizeof export_path);
    if (rc)
        goto out_free;
    printf("export    %s (keys: %s/demo-owner.key, %s/demo-capsule.key)\n", export_path, dir, dir);
    rc = demo_verify(d, export_path);
    if (rc == EXIT_OK)
        printf("next      psl capsule verify %s --key %s/demo-capsule.key\n", export_path, dir);
    goto out_free;
out_fail:
    cli_error("demo failed: %s", psl_strerror(err));
out_free:
    if (d)
        demo_free(d);
    free(d);
    free(buf);
    return rc;
}
