/* cmd_capsule.c: `psl capsule create|verify|log`. create signs metadata and writes it as an
 * export with no records; verify runs the chain verifier over an export and prints writers,
 * heads, forks and failures (exit 1 unless it verified); log lists records, decrypting DATA
 * payloads only when given the capsule key. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "capsule/chain.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsule/payload.h"
#include "cli/cli.h"

int cli_load_export(const char *path, uint8_t **buf, struct export_view *view,
                    struct capsule_meta *meta)
{
    size_t size;
    psl_err err = file_read_all(path, buf, &size);
    if (err) {
        cli_error("cannot read %s: %s", path, psl_strerror(err));
        return EXIT_RUNTIME;
    }
    err = export_parse(*buf, size, view);
    if (err) {
        cli_error("%s is not a valid capsule export: %s", path, psl_strerror(err));
        free(*buf);
        return EXIT_VERIFY_FAILED;
    }
    err = meta_decode(meta, view->meta, view->meta_size);
    if (err) {
        cli_error("the capsule metadata in %s does not verify: %s", path, psl_strerror(err));
        export_view_free(view);
        free(*buf);
        return EXIT_VERIFY_FAILED;
    }
    return EXIT_OK;
}

uint8_t *cli_load_capsule_key(const char *path)
{
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    if (!key) {
        cli_error("out of secure memory");
        return NULL;
    }
    psl_err err = keyfile_read(path, KEYFILE_CAPSULE, key);
    if (err) {
        if (err == PSL_ERR_INVALID_ARG)
            cli_error("%s is readable by others; run `chmod 600 %s` first", path, path);
        else
            cli_error("cannot load capsule key %s: %s", path, psl_strerror(err));
        secret_free(key);
        return NULL;
    }
    return key;
}

/* Accepts a 64-digit hex public key, or the path of a signing key file. */
static psl_err parse_public_key(const char *arg, uint8_t pk[SIGN_PK_SIZE])
{
    if (strlen(arg) == 2 * SIGN_PK_SIZE && hex_decode(pk, SIGN_PK_SIZE, arg) == PSL_OK)
        return PSL_OK;
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return PSL_ERR_NOMEM;
    psl_err err = keyfile_read(arg, KEYFILE_SIGNING, seed);
    struct signer s;
    if (!err && !(err = signer_init(&s, seed))) {
        memcpy(pk, s.pk, SIGN_PK_SIZE);
        signer_deinit(&s);
    }
    secret_free(seed);
    return err;
}

static const char create_usage[] =
    "Usage: psl capsule create --owner KEYFILE --replica KEY [--replica KEY ...] --out FILE\n"
    "                          [--label TEXT] [--quorum K] [--measurement HEX ...]\n"
    "                          [--retention keep-all|collect]\n"
    "\n"
    "Signs a new capsule's metadata with the owner key and writes it to FILE as an export with\n"
    "no records yet. Prints the capsule name (SHA-256 of the metadata).\n"
    "  --replica KEY      a storage server's public key (64 hex digits) or its key file;\n"
    "                     repeat for each server of the replica set (at most 16)\n"
    "  --quorum K         acks needed for durability (default: a majority of the replicas)\n"
    "  --measurement HEX  an enclave measurement the capsule admits (repeatable; none given\n"
    "                     means any measurement: fine for tests, not for production)\n"
    "  --retention        keep-all (default, full audit) or collect (servers may drop records\n"
    "                     covered by a checkpoint)\n";

static int capsule_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"owner", required_argument, NULL, 'o'},   {"replica", required_argument, NULL, 'r'},
        {"out", required_argument, NULL, 'f'},     {"label", required_argument, NULL, 'l'},
        {"quorum", required_argument, NULL, 'k'},  {"measurement", required_argument, NULL, 'm'},
        {"retention", required_argument, NULL, 'R'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct capsule_meta m;
    memset(&m, 0, sizeof m);
    m.version = META_VERSION;
    m.suite = PSL_SUITE_1;
    m.created_ms = clock_wall_ms();
    const char *owner = NULL, *out = NULL;
    long quorum = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:r:f:l:k:m:R:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            owner = optarg;
            break;
        case 'f':
            out = optarg;
            break;
        case 'l':
            if (strlen(optarg) > PSL_LABEL_SIZE_MAX) {
                cli_error("--label is longer than %u bytes", PSL_LABEL_SIZE_MAX);
                return EXIT_USAGE;
            }
            m.label_size = (uint8_t)strlen(optarg);
            memcpy(m.label, optarg, m.label_size);
            break;
        case 'r':
            if (m.replica_count == PSL_REPLICAS_MAX) {
                cli_error("at most %u replicas", PSL_REPLICAS_MAX);
                return EXIT_USAGE;
            }
            if (parse_public_key(optarg, m.replicas[m.replica_count]) != PSL_OK) {
                cli_error("--replica '%s' is neither 64 hex digits nor a readable signing key file", optarg);
                return EXIT_USAGE;
            }
            m.replica_count++;
            break;
        case 'k': {
            char *end;
            quorum = strtol(optarg, &end, 10);
            if (*end || quorum < 1) {
                cli_error("--quorum must be a positive integer");
                return EXIT_USAGE;
            }
            break;
        }
        case 'm':
            if (m.measurement_count == PSL_MEASUREMENTS_MAX ||
                hex_decode(m.measurements[m.measurement_count], HASH_SIZE, optarg) != PSL_OK) {
                cli_error("--measurement must be 64 hex digits (at most %u of them)", PSL_MEASUREMENTS_MAX);
                return EXIT_USAGE;
            }
            m.measurement_count++;
            break;
        case 'R':
            if (!strcmp(optarg, "keep-all"))
                m.retention = RETENTION_KEEP_ALL;
            else if (!strcmp(optarg, "collect"))
                m.retention = RETENTION_COLLECT_COVERED;
            else {
                cli_error("--retention must be keep-all or collect");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(create_usage, stdout);
            return EXIT_OK;
        default:
            fputs(create_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!owner || !out || m.replica_count == 0 || optind != argc) {
        cli_error("capsule create needs --owner, --out and at least one --replica; see `psl capsule create --help`");
        return EXIT_USAGE;
    }
    if (quorum > m.replica_count) {
        cli_error("--quorum %ld is larger than the %u replicas", quorum, m.replica_count);
        return EXIT_USAGE;
    }
    m.quorum_k = (uint8_t)(quorum ? quorum : m.replica_count / 2 + 1);

    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    struct signer s = {0};
    psl_err err = keyfile_read(owner, KEYFILE_SIGNING, seed);
    if (err) {
        cli_error("cannot load owner key %s: %s", owner, err == PSL_ERR_INVALID_ARG ? "file is readable by others (chmod 600)" : psl_strerror(err));
        goto out_free;
    }
    if ((err = signer_init(&s, seed)) || (err = meta_sign(&m, &s))) {
        cli_error("cannot sign the metadata: %s", psl_strerror(err));
        goto out_free;
    }
    uint8_t enc[META_SIZE_MAX];
    size_t enc_size;
    if ((err = meta_encode(&m, enc, sizeof enc, &enc_size))) {
        cli_error("cannot encode the metadata: %s", psl_strerror(err));
        goto out_free;
    }
    FILE *f = fopen(out, "wx");
    if (!f) {
        cli_error("cannot create %s (it must not exist yet)", out);
        goto out_free;
    }
    struct export_writer x;
    export_begin(&x, f, enc, enc_size);
    err = export_finish(&x);
    if (fclose(f) != 0 || err) {
        cli_error("cannot write %s", out);
        goto out_free;
    }
    char hex[65];
    hex_encode(hex, m.name, HASH_SIZE);
    printf("%s\n", hex);
    rc = EXIT_OK;
out_free:
    signer_deinit(&s);
    secret_free(seed);
    return rc;
}

static void print_meta(const struct capsule_meta *m)
{
    char hex[65];
    hex_encode(hex, m->name, HASH_SIZE);
    printf("capsule   %s\n", hex);
    printf("label     %.*s\n", m->label_size, m->label);
    hex_encode(hex, m->owner_pk, SIGN_PK_SIZE);
    printf("owner     %s\n", hex);
    printf("replicas  n=%u k=%u retention=%s\n", m->replica_count, m->quorum_k,
           m->retention == RETENTION_KEEP_ALL ? "keep-all" : "collect");
    if (m->measurement_count)
        printf("policy    %u allowed measurement(s)\n", m->measurement_count);
    else
        printf("policy    any measurement (unrestricted)\n");
}

/* Prints a report; returns true when the capsule verified. */
static bool print_report(const struct chain_report *r)
{
    printf("records   %zu (valid %zu, duplicates %zu):", r->record_count, r->valid_count,
           r->duplicate_count);
    for (unsigned t = 1; t <= REC_TYPE_MAX; t++)
        if (r->type_count[t])
            printf(" %s=%zu", record_type_name((uint8_t)t), r->type_count[t]);
    printf("\nwriters   %zu\n", r->writer_count);
    char a[17], b[17];
    for (size_t i = 0; i < r->writer_count; i++) {
        const struct chain_writer *w = &r->writers[i];
        printf("  writer %s role=%-11s head=%llu verified=%llu records=%llu ops=%llu%s%s\n",
               cli_short(w->id, a), role_name(w->cert.role), (unsigned long long)w->max_seq,
               (unsigned long long)w->verified_seq, (unsigned long long)w->records,
               (unsigned long long)w->data_ops, w->forked ? " FORKED" : "",
               w->revoked ? " REVOKED" : "");
    }
    for (size_t i = 0; i < r->writer_count; i++)
        if (r->writers[i].collected_to)
            printf("  writer %s: seq %llu..%llu collected by the servers, covered by the compactor's "
                   "checkpoint of generation %llu (the chain continues from its head)\n",
                   cli_short(r->writers[i].id, a), (unsigned long long)r->writers[i].collected_from,
                   (unsigned long long)r->writers[i].collected_to,
                   (unsigned long long)r->writers[i].collected_generation);
    printf("sync      %zu record(s) linked to SYNC merges\n", r->sync_links);
    if (r->sync_links_unresolved)
        printf("          %zu link(s) to a SYNC that is not in the set (it may lie in a collected "
               "range)\n",
               r->sync_links_unresolved);
    printf("forks     %zu\n", r->fork_count);
    for (size_t i = 0; i < r->fork_count; i++) {
        const struct chain_fork *f = &r->forks[i];
        printf("  fork writer=%s seq=%llu records #%zu (%s) and #%zu (%s)\n", cli_short(f->writer, a),
               (unsigned long long)f->seq, f->index_a, cli_short(f->hash_a, b), f->index_b,
               cli_short(f->hash_b, a));
    }
    printf("failures  %zu\n", r->failure_count);
    for (size_t i = 0; i < r->failure_count && i < 50; i++)
        printf("  record #%zu: %s (%s)\n", r->failures[i].index, psl_err_name(r->failures[i].err),
               psl_strerror(r->failures[i].err));
    if (r->failure_count > 50)
        printf("  ... %zu more\n", r->failure_count - 50);
    for (size_t i = 0; i < r->writer_count; i++)
        if (r->writers[i].verified_seq != r->writers[i].max_seq && !r->writers[i].forked)
            printf("  writer %s: chain verified only up to seq %llu of %llu (gap or broken link)\n",
                   cli_short(r->writers[i].id, a), (unsigned long long)r->writers[i].verified_seq,
                   (unsigned long long)r->writers[i].max_seq);
    printf("result    %s\n", r->ok ? "VERIFIED" : "NOT VERIFIED");
    return r->ok;
}

static const char verify_usage[] =
    "Usage: psl capsule verify FILE [--key CAPSULE_KEY_FILE] [--at UNIX_MS]\n"
    "\n"
    "Verifies an exported capsule: the owner's signature on the metadata, every writer's\n"
    "certificate, every record's signature, per-writer seq contiguity and prev links, SYNC\n"
    "merges, and forks. With --key, encrypted records are also decrypted and decoded.\n"
    "A capsule whose servers collected records (retention collect) verifies across each\n"
    "writer's collected range when a compactor's CHECKPOINT in the set names the record that\n"
    "follows it; the range and the checkpoint's generation are listed.\n"
    "Certificates are checked at the current time, or at --at (milliseconds since the epoch)\n"
    "to audit an old capsule. Exit code 0 when everything verified, 1 when not.\n";

static const char log_usage[] =
    "Usage: psl capsule log FILE [--key CAPSULE_KEY_FILE]\n"
    "\n"
    "Lists the records of an exported capsule, one line each: position, type, writer, seq,\n"
    "lamport clock, size, hash, prev and sync links. Payloads stay encrypted unless --key\n"
    "gives the capsule key; then DATA operations are shown (long values shortened).\n"
    "log does not verify signatures: use `psl capsule verify`.\n";

static int parse_file_key_at(int argc, char **argv, const char *usage, const char **file,
                             const char **key, uint64_t *at_ms)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            *key = optarg;
            break;
        case 'a': {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!at_ms || *end || !*optarg) {
                cli_error("--at takes milliseconds since the Unix epoch");
                return EXIT_USAGE;
            }
            *at_ms = v;
            break;
        }
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("expected exactly one export FILE; see --help");
        return EXIT_USAGE;
    }
    *file = argv[optind];
    return EXIT_OK;
}

static int capsule_verify(int argc, char **argv)
{
    const char *file = NULL, *keyfile = NULL;
    uint64_t at_ms = clock_wall_ms();
    int rc = parse_file_key_at(argc, argv, verify_usage, &file, &keyfile, &at_ms);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    uint8_t *key = NULL;
    if (keyfile && !(key = cli_load_capsule_key(keyfile)))
        return EXIT_RUNTIME;
    uint8_t *buf;
    struct export_view view;
    struct capsule_meta m;
    rc = cli_load_export(file, &buf, &view, &m);
    if (rc)
        goto out_key;
    print_meta(&m);
    struct chain_report rep;
    psl_err err = chain_verify(&m, view.records, view.record_count, at_ms, key, &rep);
    if (err) {
        cli_error("cannot verify %s: %s", file, psl_strerror(err));
        rc = EXIT_RUNTIME;
    } else {
        rc = print_report(&rep) ? EXIT_OK : EXIT_VERIFY_FAILED;
        chain_report_free(&rep);
    }
    export_view_free(&view);
    free(buf);
out_key:
    secret_free(key);
    return rc;
}

static void print_bytes(const uint8_t *p, size_t n)
{
    size_t shown = n > 24 ? 24 : n;
    putchar('"');
    for (size_t i = 0; i < shown; i++) {
        if (isprint(p[i]) && p[i] != '"' && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
    putchar('"');
    if (shown < n)
        printf("...(%zu bytes)", n);
}

/* Decrypts and prints the operations of one DATA record on the current line. */
static void log_data_ops(const struct record_view *v, const uint8_t *capsule_key, uint8_t *plain,
                         struct kv_op *ops)
{
    uint8_t *k = secret_alloc(AEAD_KEY_SIZE);
    struct aead_key key = {0};
    size_t plain_size, count;
    if (!k || record_key_derive(k, capsule_key, v->h.writer) || aead_key_init(&key, k) ||
        record_open(v, &key, plain, PSL_RECORD_PAYLOAD_SIZE_MAX, &plain_size) ||
        data_decode(plain, plain_size, ops, PSL_DATA_OPS_MAX, &count)) {
        printf(" ops=(does not decrypt or decode)");
        goto out;
    }
    printf(" ops=%zu [", count);
    for (size_t i = 0; i < count && i < 3; i++) {
        printf("%s%s ", i ? ", " : "", ops[i].op == OP_PUT ? "put" : "del");
        print_bytes(ops[i].key, ops[i].key_size);
        if (ops[i].op == OP_PUT) {
            putchar('=');
            print_bytes(ops[i].value, ops[i].value_size);
        }
    }
    printf("%s]", count > 3 ? ", ..." : "");
out:
    aead_key_deinit(&key);
    secret_free(k);
}

static int capsule_log(int argc, char **argv)
{
    const char *file = NULL, *keyfile = NULL;
    int rc = parse_file_key_at(argc, argv, log_usage, &file, &keyfile, NULL);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    uint8_t *key = NULL;
    if (keyfile && !(key = cli_load_capsule_key(keyfile)))
        return EXIT_RUNTIME;
    uint8_t *buf, *plain = NULL;
    struct kv_op *ops = NULL;
    struct export_view view;
    struct capsule_meta m;
    rc = cli_load_export(file, &buf, &view, &m);
    if (rc)
        goto out_key;
    if (key) {
        plain = secret_alloc(PSL_RECORD_PAYLOAD_SIZE_MAX);
        ops = malloc(PSL_DATA_OPS_MAX * sizeof *ops);
        if (!plain || !ops) {
            cli_error("out of memory");
            rc = EXIT_RUNTIME;
            goto out_free;
        }
    }
    char hx[4][17];
    for (size_t i = 0; i < view.record_count; i++) {
        struct record_view v;
        psl_err err = record_parse(&v, view.records[i].data, view.records[i].size);
        if (err) {
            printf("#%zu invalid: %s\n", i, psl_err_name(err));
            continue;
        }
        printf("#%zu %-9s writer=%s seq=%llu lamport=%llu size=%zu hash=%s prev=%s sync=%s", i,
               record_type_name(v.h.type), cli_short(v.h.writer, hx[0]),
               (unsigned long long)v.h.seq, (unsigned long long)v.h.lamport, v.raw_size,
               cli_short(v.hash, hx[1]), cli_short(v.h.prev, hx[2]), cli_short(v.h.sync, hx[3]));
        if (key && v.h.type == REC_DATA)
            log_data_ops(&v, key, plain, ops);
        putchar('\n');
    }
out_free:
    free(ops);
    secret_free(plain);
    export_view_free(&view);
    free(buf);
out_key:
    secret_free(key);
    return rc;
}

int cmd_capsule(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("Usage: psl capsule create|verify|log|fetch|serve|graph ...  (psl capsule SUBCOMMAND --help)\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "create"))
        return capsule_create(argc - 1, argv + 1);
    if (!strcmp(sub, "verify"))
        return capsule_verify(argc - 1, argv + 1);
    if (!strcmp(sub, "log"))
        return capsule_log(argc - 1, argv + 1);
    if (!strcmp(sub, "fetch"))
        return cmd_fetch(argc - 1, argv + 1);
    if (!strcmp(sub, "graph"))
        return cmd_graph(argc - 1, argv + 1);
    if (!strcmp(sub, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    cli_error("unknown capsule subcommand '%s'; use create, verify, log, fetch, serve or graph",
              sub);
    return EXIT_USAGE;
}
