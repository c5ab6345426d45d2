/* main.c: the psl-capsuled daemon: configuration (INI file and flags), the server key, the
 * fabric connection, the capsules to serve, a Prometheus /metrics endpoint, and a graceful
 * shutdown on SIGTERM or SIGINT that commits what is queued before exiting. */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/bytes.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsuled/server.h"

#define CAPSULES_MAX 64

struct config {
    char data_dir[1024];
    char key_file[1024];
    char fabric[512];
    char capsules[CAPSULES_MAX][1024];
    int capsule_count;
    long commit_window_us;
    long map_size_mb;
    long anti_entropy_ms;
    long metrics_port;
    long stale_heads_by;
    char ready_file[1024];
    char log_level[16];
    uint8_t owners[CAPSULED_OWNERS_MAX][SIGN_PK_SIZE];
    size_t owner_count;
};

static const char usage[] =
    "Usage: psl-capsuled [--config FILE] [OPTIONS]\n"
    "\n"
    "A DataCapsule storage server: verifies, stores (LMDB, group commit) and acknowledges the\n"
    "records of the capsules it serves, answers reads, and replicates with its peers.\n"
    "Options (each also settable in the [server] section of the INI file, same name with _):\n"
    "  --config FILE          INI file; flags override it\n"
    "  --data-dir DIR         database directory (default ./capsuled-data)\n"
    "  --key FILE             server key file (make one: psl keygen --type server --out FILE)\n"
    "  --fabric URL           nats://HOST:PORT (default nats://127.0.0.1:4222)\n"
    "  --capsule FILE         serve the capsule of this export/metadata file (psl capsule\n"
    "                         create writes one); repeatable, or `capsule = FILE` lines\n"
    "  --admit-owner HEX      accept capsules of this owner (public key, 64 hex digits, as\n"
    "                         `psl keygen` prints) at run time: `psl capsule serve` publishes\n"
    "                         them; repeatable (at most 64)\n"
    "  --commit-window-us N   extra group commit wait in microseconds (default 0: records\n"
    "                         arriving during a commit form the next batch anyway)\n"
    "  --map-size-mb N        most the database may hold, in MiB (default 1024)\n"
    "  --anti-entropy-ms N    heads gossip interval (default 500; 0 disables)\n"
    "  --metrics-port N       serve Prometheus text on 127.0.0.1:N/metrics (default 0: off)\n"
    "  --ready-file FILE      create FILE once serving (for supervisors and tests)\n"
    "  --log-level LEVEL      debug, info (default), warn, error\n"
    "  --stale-heads N        TESTING ONLY: report heads N records behind (a lagging server)\n"
    "  --help\n"
    "Capsules accepted before (files or admissions) are served again after a restart.\n"
    "Signals: SIGTERM or SIGINT stop it gracefully (queued records are committed first).\n"
    "Exit codes: 0 clean stop, 2 usage or configuration error, 3 runtime error.\n";

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static bool parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || !*s || v < 0)
        return false;
    *out = v;
    return true;
}

/* Applies one setting by name (flag or INI key); false when the name or value is bad. */
static bool config_set(struct config *c, const char *name, const char *value)
{
    if (!strcmp(name, "data_dir"))
        copy_str(c->data_dir, sizeof c->data_dir, value);
    else if (!strcmp(name, "key") || !strcmp(name, "key_file"))
        copy_str(c->key_file, sizeof c->key_file, value);
    else if (!strcmp(name, "fabric"))
        copy_str(c->fabric, sizeof c->fabric, value);
    else if (!strcmp(name, "capsule")) {
        if (c->capsule_count == CAPSULES_MAX)
            return false;
        copy_str(c->capsules[c->capsule_count++], sizeof c->capsules[0], value);
    } else if (!strcmp(name, "admit_owner")) {
        if (c->owner_count == CAPSULED_OWNERS_MAX || strlen(value) != 2 * SIGN_PK_SIZE ||
            hex_decode(c->owners[c->owner_count], SIGN_PK_SIZE, value) != PSL_OK)
            return false;
        c->owner_count++;
    } else if (!strcmp(name, "commit_window_us"))
        return parse_long(value, &c->commit_window_us);
    else if (!strcmp(name, "map_size_mb"))
        return parse_long(value, &c->map_size_mb) && c->map_size_mb > 0;
    else if (!strcmp(name, "anti_entropy_ms"))
        return parse_long(value, &c->anti_entropy_ms);
    else if (!strcmp(name, "metrics_port"))
        return parse_long(value, &c->metrics_port) && c->metrics_port < 65536;
    else if (!strcmp(name, "stale_heads"))
        return parse_long(value, &c->stale_heads_by);
    else if (!strcmp(name, "ready_file"))
        copy_str(c->ready_file, sizeof c->ready_file, value);
    else if (!strcmp(name, "log_level")) {
        if (log_level_parse(value) < 0)
            return false;
        copy_str(c->log_level, sizeof c->log_level, value);
    } else
        return false;
    return true;
}

static int ini_entry(void *user, const char *section, const char *name, const char *value)
{
    if (strcmp(section, "server") != 0 && strcmp(section, "") != 0) {
        fprintf(stderr, "psl-capsuled: error: unknown section [%s] in the config file\n", section);
        return 0;
    }
    if (!config_set(user, name, value)) {
        fprintf(stderr, "psl-capsuled: error: bad config entry %s = %s\n", name, value);
        return 0;
    }
    return 1;
}

static struct capsuled *metrics_server;

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    static char buf[16384];
    static char not_found[] = "not found: try /metrics\n";
    struct MHD_Response *resp;
    unsigned status = MHD_HTTP_OK;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0) {
        size_t n = capsuled_metrics(metrics_server, buf, sizeof buf);
        resp = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    } else {
        status = MHD_HTTP_NOT_FOUND;
        resp = MHD_create_response_from_buffer(sizeof not_found - 1, not_found,
                                               MHD_RESPMEM_PERSISTENT);
    }
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static int run(const struct config *c)
{
    int rc = 3;
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    struct signer key = {0};
    struct fabric *fabric = NULL;
    struct capsuled *srv = NULL;
    struct MHD_Daemon *http = NULL;
    if (!seed)
        goto out;
    psl_err err = keyfile_read(c->key_file, KEYFILE_SIGNING, seed);
    if (err || (err = signer_init(&key, seed))) {
        fprintf(stderr, "psl-capsuled: error: cannot load server key %s: %s%s\n", c->key_file,
                psl_strerror(err), err == PSL_ERR_INVALID_ARG ? " (file readable by others: chmod 600)" : "");
        rc = 2;
        goto out;
    }
    if (fabric_nats_connect(c->fabric, "psl-capsuled", &fabric) != PSL_OK) {
        fprintf(stderr, "psl-capsuled: error: cannot connect to the fabric at %s; is nats-server running?\n",
                c->fabric);
        goto out;
    }
    struct capsuled_config cfg = {.data_dir = c->data_dir,
                                  .key = &key,
                                  .fabric = fabric,
                                  .commit_window_us = (uint32_t)c->commit_window_us,
                                  .map_size_bytes = (size_t)c->map_size_mb << 20,
                                  .anti_entropy_ms = (uint32_t)c->anti_entropy_ms,
                                  .stale_heads_by = (uint32_t)c->stale_heads_by,
                                  .inline_commit = true /* NATS: delivery threads of its own */};
    if ((err = capsuled_start(&srv, &cfg))) {
        fprintf(stderr, "psl-capsuled: error: cannot open storage in %s: %s\n", c->data_dir,
                psl_strerror(err));
        goto out;
    }
    for (int i = 0; i < c->capsule_count; i++) {
        uint8_t *buf;
        size_t size;
        struct export_view view;
        if ((err = file_read_all(c->capsules[i], &buf, &size))) {
            fprintf(stderr, "psl-capsuled: error: cannot read capsule file %s: %s\n", c->capsules[i],
                    psl_strerror(err));
            rc = 2;
            goto out;
        }
        if (!(err = export_parse(buf, size, &view))) {
            err = capsuled_serve(srv, view.meta, view.meta_size);
            export_view_free(&view);
        }
        free(buf);
        if (err) {
            fprintf(stderr, "psl-capsuled: error: cannot serve %s: %s%s\n", c->capsules[i],
                    psl_strerror(err),
                    err == PSL_ERR_NOT_REPLICA ? " (this server's key is not in the capsule's replica set)" : "");
            rc = 2;
            goto out;
        }
    }
    size_t stored = 0;
    if ((err = capsuled_serve_stored(srv, &stored))) {
        fprintf(stderr, "psl-capsuled: error: cannot read the stored capsules in %s: %s\n",
                c->data_dir, psl_strerror(err));
        goto out;
    }
    if (c->owner_count && (err = capsuled_admit(srv, (const uint8_t(*)[SIGN_PK_SIZE])c->owners,
                                                c->owner_count))) {
        fprintf(stderr, "psl-capsuled: error: cannot listen for admissions: %s\n",
                psl_strerror(err));
        goto out;
    }
    if (c->metrics_port) {
        metrics_server = srv;
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->metrics_port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)c->metrics_port, NULL,
                                NULL, on_http, NULL, MHD_OPTION_SOCK_ADDR, &addr,
                                MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_END);
        if (!http) {
            fprintf(stderr, "psl-capsuled: error: cannot listen on 127.0.0.1:%ld for metrics\n",
                    c->metrics_port);
            goto out;
        }
    }
    if (c->ready_file[0]) {
        FILE *f = fopen(c->ready_file, "w");
        if (f)
            fclose(f);
    }
    LOG_INFO("capsuled", "msg=ready capsules=%zu admit_owners=%zu fabric=%s", stored,
             c->owner_count, c->fabric);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig;
    sigwait(&set, &sig);
    LOG_INFO("capsuled", "msg=\"stopping\" signal=%d", sig);
    rc = 0;
out:
    if (http)
        MHD_stop_daemon(http);
    capsuled_stop(srv);
    fabric_destroy(fabric);
    signer_deinit(&key);
    secret_free(seed);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},       {"data-dir", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'},          {"fabric", required_argument, NULL, 'f'},
        {"capsule", required_argument, NULL, 'C'},      {"commit-window-us", required_argument, NULL, 'w'},
        {"map-size-mb", required_argument, NULL, 'm'},  {"anti-entropy-ms", required_argument, NULL, 'a'},
        {"metrics-port", required_argument, NULL, 'p'}, {"ready-file", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'l'},    {"stale-heads", required_argument, NULL, 's'},
        {"admit-owner", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
    static const char *const names[128] = {
        ['d'] = "data_dir",         ['k'] = "key",           ['f'] = "fabric",
        ['C'] = "capsule",          ['w'] = "commit_window_us", ['m'] = "map_size_mb",
        ['a'] = "anti_entropy_ms",  ['p'] = "metrics_port",  ['r'] = "ready_file",
        ['l'] = "log_level",        ['s'] = "stale_heads",   ['O'] = "admit_owner"};
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return 3;
    copy_str(c->data_dir, sizeof c->data_dir, "capsuled-data");
    copy_str(c->fabric, sizeof c->fabric, "nats://127.0.0.1:4222");
    copy_str(c->log_level, sizeof c->log_level, "info");
    c->commit_window_us = 0;
    c->map_size_mb = 1024;
    c->anti_entropy_ms = 500;
    /* The config file first, so that flags override it. */
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "--config")) {
            int line = ini_parse(argv[i + 1], ini_entry, c);
            if (line != 0) {
                if (line > 0)
                    fprintf(stderr, "psl-capsuled: error: %s line %d\n", argv[i + 1], line);
                else
                    fprintf(stderr, "psl-capsuled: error: cannot read config file %s\n", argv[i + 1]);
                free(c);
                return 2;
            }
        }
    }
    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:k:f:C:w:m:a:p:r:l:s:h", opts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(usage, stdout);
            free(c);
            return 0;
        }
        if (ch == 'c')
            continue;
        if (ch < 0 || ch >= 128 || !names[ch] || !config_set(c, names[ch], optarg)) {
            if (ch != '?')
                fprintf(stderr, "psl-capsuled: error: bad value '%s' for --%s\n", optarg, names[ch & 127]);
            fputs(usage, stderr);
            free(c);
            return 2;
        }
    }
    if (optind != argc || !c->key_file[0]) {
        fprintf(stderr, "psl-capsuled: error: %s\n",
                optind != argc ? "unexpected argument" : "--key FILE is required (psl keygen --type server --out FILE)");
        free(c);
        return 2;
    }
    log_set_level((enum psl_log_level)log_level_parse(c->log_level));
    /* Block the stop signals in every thread; main waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (psl_crypto_init() != PSL_OK) {
        fprintf(stderr, "psl-capsuled: error: cannot initialise the crypto libraries\n");
        free(c);
        return 3;
    }
    int rc = run(c);
    free(c);
    return rc;
}
