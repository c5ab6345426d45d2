/* main.c: the psl-node daemon (DESIGN §2, §10): an untrusted host of enclaves. It loads its
 * configuration (INI file, then flags), its sim platform key from the data directory, connects to
 * the fabric (NATS, or an in-process bus with embedded storage servers for one machine), keeps a
 * pool of pre-forked psl-enclave processes, and serves the HTTP API (docs/api.md) until SIGTERM
 * or SIGINT, when it stops accepting requests, stops every enclave and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/log.h"
#include "node/gateway.h"
#include "node/jobhost.h"
#include "node/pool.h"
#include "node/servers.h"

struct config {
    char listen[128];
    char fabric[512];
    char data_dir[NODE_PATH_SIZE];
    char enclave[NODE_PATH_SIZE];
    char node_id[128];
    char ready_file[NODE_PATH_SIZE];
    char log_level[16];
    long embedded_servers; /* -1: default (3 with inproc, 0 with NATS) */
    long pool;
    long enclaves_max;
    long actors;
    long jobs_max;
};

static const char usage[] =
    "Usage: psl-node [--config FILE] [OPTIONS]\n"
    "\n"
    "An untrusted host of psl enclaves: keeps a pool of pre-forked psl-enclave processes, runs\n"
    "jobs on them for clients (attestation, sealed provisioning, sealed results), relays their\n"
    "traffic to the fabric, and serves an HTTP API (docs/api.md). TEE: sim (simulation: no\n"
    "hardware protection; the host can read its enclaves).\n"
    "Options (each also settable in the [node] section of the INI file, same name with _):\n"
    "  --config FILE            INI file; flags override it\n"
    "  --listen HOST:PORT       HTTP API address (default 127.0.0.1:8080; IPv4)\n"
    "  --fabric URL             nats://HOST:PORT, or `inproc` (default): an in-process bus,\n"
    "                           for a single machine, with embedded storage servers\n"
    "  --embedded-servers N     storage servers run inside the node (default 3 with inproc,\n"
    "                           0 with NATS; at most 16); their keys: GET /v1/status\n"
    "  --data-dir DIR           platform key, embedded servers' keys and databases\n"
    "                           (default ./psl-node-data)\n"
    "  --enclave PATH           the psl-enclave binary (default: next to psl-node)\n"
    "  --pool N                 idle enclaves kept ready (default 2)\n"
    "  --enclaves-max N         enclaves alive at once (default 64)\n"
    "  --actors N               crypto actors per enclave (default 1)\n"
    "  --jobs-max N             jobs kept for status (default 256; finished ones go first)\n"
    "  --node-id NAME           shown in /v1/status (default: the listen address)\n"
    "  --ready-file FILE        create FILE once serving (for supervisors and tests)\n"
    "  --log-level LEVEL        debug, info (default), warn, error\n"
    "  --help\n"
    "Signals: SIGTERM or SIGINT stop it gracefully (enclaves are stopped, servers commit).\n"
    "Exit codes: 0 clean stop, 2 usage or configuration error, 3 runtime error.\n";

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || !*s || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Applies one setting by name (flag or INI key); false when the name or value is bad. */
static bool config_set(struct config *c, const char *name, const char *value)
{
    if (!strcmp(name, "listen"))
        copy_str(c->listen, sizeof c->listen, value);
    else if (!strcmp(name, "fabric"))
        copy_str(c->fabric, sizeof c->fabric, value);
    else if (!strcmp(name, "data_dir"))
        copy_str(c->data_dir, sizeof c->data_dir, value);
    else if (!strcmp(name, "enclave"))
        copy_str(c->enclave, sizeof c->enclave, value);
    else if (!strcmp(name, "node_id"))
        copy_str(c->node_id, sizeof c->node_id, value);
    else if (!strcmp(name, "ready_file"))
        copy_str(c->ready_file, sizeof c->ready_file, value);
    else if (!strcmp(name, "embedded_servers"))
        return parse_long(value, 0, NODE_SERVERS_MAX, &c->embedded_servers);
    else if (!strcmp(name, "pool"))
        return parse_long(value, 0, 1024, &c->pool);
    else if (!strcmp(name, "enclaves_max"))
        return parse_long(value, 1, 1024, &c->enclaves_max);
    else if (!strcmp(name, "actors"))
        return parse_long(value, 1, 16, &c->actors);
    else if (!strcmp(name, "jobs_max"))
        return parse_long(value, 1, 65536, &c->jobs_max);
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
    if (strcmp(section, "node") != 0 && strcmp(section, "") != 0) {
        fprintf(stderr, "psl-node: error: unknown section [%s] in the config file (use [node])\n",
                section);
        return 0;
    }
    if (!config_set(user, name, value)) {
        fprintf(stderr, "psl-node: error: bad config entry %s = %s\n", name, value);
        return 0;
    }
    return 1;
}

/* psl-enclave next to this executable. */
static bool default_enclave(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    int k = snprintf(out, cap, "%s/psl-enclave", self);
    return k > 0 && (size_t)k < cap;
}

struct node {
    struct inproc_bus *bus;
    char nats_url[512];
};

static psl_err connect_fabric(void *ctx, unsigned i, struct fabric **out)
{
    struct node *n = ctx;
    if (n->bus)
        return fabric_inproc_connect(n->bus, out);
    char name[32];
    snprintf(name, sizeof name, "psl-node-server-%u", i);
    return fabric_nats_connect(n->nats_url, name, out);
}

static int run(struct config *c)
{
    int rc = 3;
    bool inproc = !strcmp(c->fabric, "inproc");
    unsigned servers = (unsigned)(c->embedded_servers >= 0 ? c->embedded_servers : inproc ? 3 : 0);
    struct node nd = {0};
    struct signer platform = {0};
    struct fabric *fabric = NULL;
    struct node_servers srv = {0};
    struct pool *pool = NULL;
    struct jobhost *jh = NULL;
    struct gateway *gw = NULL;
    uint8_t measurement[HASH_SIZE];
    psl_err err = PSL_OK;
    if (inproc && servers == 0) {
        fprintf(stderr, "psl-node: error: --fabric inproc needs --embedded-servers >= 1 (nothing "
                        "else can store the capsules)\n");
        return 2;
    }
    if (access(c->enclave, X_OK) != 0) {
        fprintf(stderr, "psl-node: error: cannot execute the enclave binary %s; build psl-enclave "
                        "or pass --enclave PATH\n", c->enclave);
        return 2;
    }
    if (node_mkdir_p(c->data_dir) != PSL_OK) {
        fprintf(stderr, "psl-node: error: cannot create the data directory %s\n", c->data_dir);
        return 2;
    }
    if ((err = attest_sim_platform_load(&platform, c->data_dir))) {
        fprintf(stderr, "psl-node: error: cannot load or create the platform key in %s: %s\n",
                c->data_dir, psl_strerror(err));
        return 2;
    }
    if ((err = attest_measure_file(c->enclave, measurement))) {
        fprintf(stderr, "psl-node: error: cannot measure %s: %s\n", c->enclave, psl_strerror(err));
        goto out;
    }
    if (inproc) {
        if ((err = inproc_bus_create(&nd.bus, 256u << 20)) ||
            (err = fabric_inproc_connect(nd.bus, &fabric)))
            goto out;
    } else {
        copy_str(nd.nats_url, sizeof nd.nats_url, c->fabric);
        if (fabric_nats_connect(c->fabric, "psl-node", &fabric) != PSL_OK) {
            fprintf(stderr, "psl-node: error: cannot connect to the fabric at %s; is nats-server "
                            "running?\n", c->fabric);
            goto out;
        }
    }
    /* Over NATS each embedded server has delivery threads of its own (inline commits). */
    if ((err = node_servers_start(&srv, c->data_dir, servers, connect_fabric, &nd, !nd.bus))) {
        fprintf(stderr, "psl-node: error: cannot start the embedded storage servers in %s/servers: "
                        "%s\n", c->data_dir, psl_strerror(err));
        goto out;
    }
    struct pool_config pc = {.enclave_path = c->enclave,
                             .actors = (unsigned)c->actors,
                             .size = (unsigned)c->pool,
                             .enclaves_max = (unsigned)c->enclaves_max,
                             .fabric = fabric,
                             .on_log = jobhost_on_log,
                             .on_sealed_log = jobhost_on_sealed_log};
    if ((err = pool_open(&pool, &pc)))
        goto out;
    struct jobhost_config hc = {.pool = pool,
                                .platform = &platform,
                                .servers = srv.servers,
                                .server_pks = srv.pks,
                                .server_count = srv.count,
                                .jobs_max = (unsigned)c->jobs_max};
    memcpy(hc.measurement, measurement, HASH_SIZE);
    if ((err = jobhost_open(&jh, &hc)))
        goto out;
    if (!c->node_id[0])
        copy_str(c->node_id, sizeof c->node_id, c->listen);
    struct gateway_config gc = {.listen = c->listen,
                                .node_id = c->node_id,
                                .fabric_name = c->fabric,
                                .jobhost = jh,
                                .pool = pool,
                                .platform = &platform,
                                .servers = &srv,
                                .fabric = fabric};
    memcpy(gc.measurement, measurement, HASH_SIZE);
    if ((err = gateway_start(&gw, &gc))) {
        fprintf(stderr, "psl-node: error: cannot listen on %s%s\n", c->listen,
                err == PSL_ERR_INVALID_ARG ? " (use an IPv4 HOST:PORT)" : " (port in use?)");
        rc = err == PSL_ERR_INVALID_ARG ? 2 : 3;
        goto out;
    }
    char pk[2 * SIGN_PK_SIZE + 1], meas[2 * HASH_SIZE + 1];
    hex_encode(pk, platform.pk, SIGN_PK_SIZE);
    hex_encode(meas, measurement, HASH_SIZE);
    LOG_WARN("node", "msg=\"TEE is sim: simulation, no hardware protection; this host can read "
                     "its enclaves\"");
    LOG_INFO("node", "msg=ready listen=%s node=%s fabric=%s embedded_servers=%u pool=%ld "
                     "platform_pk=%s measurement=%s",
             c->listen, c->node_id, c->fabric, srv.count, c->pool, pk, meas);
    if (c->ready_file[0]) {
        FILE *f = fopen(c->ready_file, "w");
        if (f) {
            fprintf(f, "%u\n", gateway_port(gw));
            fclose(f);
        }
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig;
    sigwait(&set, &sig);
    LOG_INFO("node", "msg=stopping signal=%d", sig);
    rc = 0;
out:
    gateway_stop(gw);
    jobhost_close(jh);
    pool_close(pool);
    node_servers_stop(&srv);
    fabric_destroy(fabric);
    if (nd.bus)
        inproc_bus_destroy(nd.bus);
    signer_deinit(&platform);
    if (rc == 3 && err)
        fprintf(stderr, "psl-node: error: start-up failed: %s\n", psl_strerror(err));
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},       {"listen", required_argument, NULL, 'L'},
        {"fabric", required_argument, NULL, 'f'},       {"embedded-servers", required_argument, NULL, 'S'},
        {"data-dir", required_argument, NULL, 'd'},     {"enclave", required_argument, NULL, 'e'},
        {"pool", required_argument, NULL, 'p'},         {"enclaves-max", required_argument, NULL, 'M'},
        {"actors", required_argument, NULL, 'a'},       {"jobs-max", required_argument, NULL, 'J'},
        {"node-id", required_argument, NULL, 'n'},      {"ready-file", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'l'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const char *const names[128] = {
        ['L'] = "listen",   ['f'] = "fabric",      ['S'] = "embedded_servers",
        ['d'] = "data_dir", ['e'] = "enclave",     ['p'] = "pool",
        ['M'] = "enclaves_max", ['a'] = "actors",  ['J'] = "jobs_max",
        ['n'] = "node_id",  ['r'] = "ready_file",  ['l'] = "log_level"};
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return 3;
    copy_str(c->listen, sizeof c->listen, "127.0.0.1:8080");
    copy_str(c->fabric, sizeof c->fabric, "inproc");
    copy_str(c->data_dir, sizeof c->data_dir, "psl-node-data");
    copy_str(c->log_level, sizeof c->log_level, "info");
    c->embedded_servers = -1;
    c->pool = 2;
    c->enclaves_max = 64;
    c->actors = 1;
    c->jobs_max = JOBHOST_JOBS_MAX_DEFAULT;
    /* The config file first, so that flags override it. */
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "--config")) {
            int line = ini_parse(argv[i + 1], ini_entry, c);
            if (line != 0) {
                if (line > 0)
                    fprintf(stderr, "psl-node: error: %s line %d\n", argv[i + 1], line);
                else
                    fprintf(stderr, "psl-node: error: cannot read config file %s\n", argv[i + 1]);
                free(c);
                return 2;
            }
        }
    }
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(usage, stdout);
            free(c);
            return 0;
        }
        if (ch == 'c')
            continue;
        if (ch < 0 || ch >= 128 || !names[ch] || !config_set(c, names[ch], optarg)) {
            if (ch != '?')
                fprintf(stderr, "psl-node: error: bad value '%s' for --%s\n", optarg, names[ch & 127]);
            fputs(usage, stderr);
            free(c);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "psl-node: error: unexpected argument '%s'; see psl-node --help\n", argv[optind]);
        free(c);
        return 2;
    }
    if (strcmp(c->fabric, "inproc") != 0 && strncmp(c->fabric, "nats://", 7) != 0) {
        fprintf(stderr, "psl-node: error: --fabric must be `inproc` or nats://HOST:PORT\n");
        free(c);
        return 2;
    }
    if (!c->enclave[0] && !default_enclave(c->enclave, sizeof c->enclave)) {
        fprintf(stderr, "psl-node: error: cannot locate psl-enclave; pass --enclave PATH\n");
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
        fprintf(stderr, "psl-node: error: cannot initialise the crypto libraries\n");
        free(c);
        return 3;
    }
    int rc = run(c);
    free(c);
    return rc;
}
