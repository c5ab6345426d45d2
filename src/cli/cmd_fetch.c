/* cmd_fetch.c: `psl capsule fetch`: exports a capsule from its storage servers. A freshness
 * read finds every writer's newest verified head (n-k+1 answers by default), then each writer's
 * records are fetched by range and written to an export file that `psl capsule verify` audits. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "capsule/export.h"
#include "base/clock.h"
#include "capsuled/client.h"
#include "capsuled/server.h"
#include "cli/cli.h"

static const char fetch_usage[] =
    "Usage: psl capsule fetch CAPSULE_FILE --out FILE [--fabric URL] [--answers N]\n"
    "                         [--timeout-ms MS]\n"
    "\n"
    "Exports a capsule from its storage servers. CAPSULE_FILE is any export of the capsule (the\n"
    "one `psl capsule create` wrote will do): it names the capsule and its replica set.\n"
    "  --fabric URL     NATS URL (default nats://127.0.0.1:4222)\n"
    "  --answers N      servers that must answer the freshness read (default n-k+1, which no\n"
    "                   lagging server can roll back; n-k+f+1 tolerates f lying servers)\n"
    "  --timeout-ms MS  per request (default 5000)\n"
    "Then audit it: psl capsule verify FILE\n";

static bool fetch_take(void *ctx, const uint8_t *rec, size_t size)
{
    export_add(ctx, rec, size);
    return true;
}

int cmd_fetch(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"fabric", required_argument, NULL, 'f'},
                                         {"answers", required_argument, NULL, 'a'},
                                         {"timeout-ms", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *url = "nats://127.0.0.1:4222";
    long answers = 0, timeout_ms = 5000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:f:a:t:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            url = optarg;
            break;
        case 'a':
            answers = strtol(optarg, &end, 10);
            break;
        case 't':
            timeout_ms = strtol(optarg, &end, 10);
            break;
        case 'h':
            fputs(fetch_usage, stdout);
            return EXIT_OK;
        default:
            fputs(fetch_usage, stderr);
            return EXIT_USAGE;
        }
        if (end && (*end || answers < 0 || timeout_ms <= 0)) {
            cli_error("--answers and --timeout-ms take positive integers");
            return EXIT_USAGE;
        }
    }
    if (!out || optind != argc - 1) {
        cli_error("fetch needs CAPSULE_FILE and --out FILE; see `psl capsule fetch --help`");
        return EXIT_USAGE;
    }
    uint8_t *buf;
    struct export_view view;
    struct capsule_meta m;
    int rc = cli_load_export(argv[optind], &buf, &view, &m);
    if (rc)
        return rc;
    if (answers > m.replica_count) {
        cli_error("--answers %ld is more than the %u servers of the replica set", answers, m.replica_count);
        rc = EXIT_USAGE;
        goto out_view;
    }
    struct fabric *fabric = NULL;
    struct capsule_client *cl = NULL;
    FILE *f = NULL;
    rc = EXIT_RUNTIME;
    if (fabric_nats_connect(url, "psl-fetch", &fabric) != PSL_OK) {
        cli_error("cannot connect to the fabric at %s; is nats-server running?", url);
        goto out_view;
    }
    struct capsule_client_config cc = {.fabric = fabric, .meta = &m};
    if (capsule_client_open(&cl, &cc) != PSL_OK)
        goto out_fabric;
    f = fopen(out, "wx");
    if (!f) {
        cli_error("cannot create %s (it must not exist yet)", out);
        goto out_client;
    }
    struct export_writer x;
    export_begin(&x, f, view.meta, view.meta_size);
    struct fetch_summary sum;
    psl_err err = capsule_client_fetch_all(cl, (unsigned)answers, (uint32_t)timeout_ms, fetch_take,
                                           &x, &sum);
    if (err) {
        cli_error("freshness read failed: %s (fewer servers answered than required)", psl_strerror(err));
        fclose(f);
        unlink(out);
        goto out_client;
    }
    err = export_finish(&x);
    if (fclose(f) != 0 || err) {
        cli_error("cannot write %s", out);
    } else {
        printf("fetched   %zu records of %zu writers from %u of %u servers (%s%s)\n", sum.records,
               sum.writers, sum.answers, m.replica_count,
               sum.lag_bound_met ? "lag bound met: no confirmed write missed" : "lag bound NOT met",
               sum.claims_refuted ? "; some claimed heads did not verify" : "");
        printf("wrote     %s%s\n", out, sum.complete ? "" : " (incomplete: some records could not be fetched)");
        rc = sum.complete ? EXIT_OK : EXIT_VERIFY_FAILED;
    }
out_client:
    capsule_client_close(cl);
out_fabric:
    fabric_destroy(fabric);
out_view:
    export_view_free(&view);
    free(buf);
    return rc;
}

static const char serve_usage[] =
    "Usage: psl capsule serve CAPSULE_FILE [--fabric URL] [--answers N] [--timeout-ms MS]\n"
    "\n"
    "Asks the storage servers of a capsule's replica set to serve it: publishes its owner-signed\n"
    "metadata for admission (servers started with --admit-owner for this owner accept it), then\n"
    "waits until the servers answer for the capsule. CAPSULE_FILE is the export `psl capsule\n"
    "create` wrote.\n"
    "  --fabric URL     NATS URL (default nats://127.0.0.1:4222)\n"
    "  --answers N      servers that must serve it (default: all n of the replica set)\n"
    "  --timeout-ms MS  give up after MS (default 10000)\n";

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"fabric", required_argument, NULL, 'f'},
                                         {"answers", required_argument, NULL, 'a'},
                                         {"timeout-ms", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = "nats://127.0.0.1:4222";
    long answers = 0, timeout_ms = 10000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:a:t:h", opts, NULL)) != -1) {
        char *end = NULL;
        if (c == 'f') {
            url = optarg;
        } else if (c == 'a') {
            answers = strtol(optarg, &end, 10);
        } else if (c == 't') {
            timeout_ms = strtol(optarg, &end, 10);
        } else if (c == 'h') {
            fputs(serve_usage, stdout);
            return EXIT_OK;
        } else {
            fputs(serve_usage, stderr);
            return EXIT_USAGE;
        }
        if (end && (*end || answers < 0 || timeout_ms <= 0)) {
            cli_error("--answers and --timeout-ms take positive integers");
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("serve needs one CAPSULE_FILE; see `psl capsule serve --help`");
        return EXIT_USAGE;
    }
    uint8_t *buf;
    struct export_view view;
    struct capsule_meta m;
    int rc = cli_load_export(argv[optind], &buf, &view, &m);
    if (rc)
        return rc;
    if (!answers)
        answers = m.replica_count;
    if (answers > m.replica_count) {
        cli_error("--answers %ld is more than the %u servers of the replica set", answers,
                  m.replica_count);
        rc = EXIT_USAGE;
        goto out_view;
    }
    struct fabric *fabric = NULL;
    struct capsule_client *cl = NULL;
    rc = EXIT_RUNTIME;
    if (fabric_nats_connect(url, "psl-serve", &fabric) != PSL_OK) {
        cli_error("cannot connect to the fabric at %s; is nats-server running?", url);
        goto out_view;
    }
    struct capsule_client_config cc = {.fabric = fabric, .meta = &m};
    if (capsule_client_open(&cl, &cc) != PSL_OK)
        goto out_fabric;
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    unsigned best = 0;
    for (;;) {
        /* Published again on every round: a server that starts late still hears it. */
        if (fabric_publish(fabric, CAPSULED_ADMIT_TOPIC, view.meta, view.meta_size) != PSL_OK) {
            cli_error("cannot publish on the fabric at %s", url);
            goto out_client;
        }
        struct fresh_result fr;
        psl_err err = capsule_client_fresh_heads(cl, (unsigned)answers, 1000, &fr);
        if (!err) {
            best = fr.answers;
            fresh_result_free(&fr);
            break;
        }
        if (clock_mono_ns() > deadline)
            break;
    }
    if (best >= (unsigned)answers) {
        char hex[2 * HASH_SIZE + 1];
        hex_encode(hex, m.name, HASH_SIZE);
        printf("served    %s by %u of %u servers\n", hex, best, m.replica_count);
        rc = EXIT_OK;
    } else {
        cli_error("fewer than %ld of the %u servers serve the capsule after %ld ms; were they "
                  "started with --admit-owner for this capsule's owner?",
                  answers, m.replica_count, timeout_ms);
        rc = EXIT_VERIFY_FAILED;
    }
out_client:
    capsule_client_close(cl);
out_fabric:
    fabric_destroy(fabric);
out_view:
    export_view_free(&view);
    free(buf);
    return rc;
}
