/* node_bench.c: the product's figures, each beside a physical floor measured in the same run.
 * 1. `psl run` throughput of a put-heavy example (examples/kvload.lua) through the whole embedded
 *    federation (psl-enclave processes, rings, SCL batching, three embedded storage servers with
 *    fsync, flush, audit), in operations per second from the last provisioning to the last
 *    verified result. Floor: the record producer of the same run at the batch size the job
 *    reached (ops per DATA record): one core sealing DATA records of 16-byte keys and 32-byte
 *    values (encode, AES-GCM, SHA-256, Ed25519 sign), the crypto every operation must go through.
 * 2. Against a real psl-node process that this program starts (a free loopback port, embedded
 *    storage servers, its own temp data dir; SIGTERM and removal at the end, also on a failure or
 *    a signal), through the HTTP API and the client library as `psl job submit` and `psl deploy`
 *    / `psl invoke` drive it (src/cli/cmd_job.c):
 *    - job cold start: a fresh capsule and job client, POST /v1/jobs (an enclave from the node's
 *      pre-forked pool, its report, sim evidence), the client's verification, certificate and
 *      sealed bundle, POST provision, and polling until the worker runs (READY). Floor: a bare
 *      fork + exec + wait of /bin/true.
 *    - warm invocations of examples/rest_counter.lua, deployed once: each freshly sealed and
 *      signed, relayed, run (a durable write), answered, opened and verified. Floors: a bare HTTP
 *      round trip to GET /healthz, and the enclave-side crypto of one invocation (seal_box,
 *      seal_open, one Ed25519 sign and one verify).
 *    - invocations per second with a few concurrent clients. The node serves one invocation at a
 *      time per function (429 otherwise), so the clients each invoke their own deployed function;
 *      the same clients on one function are shown beside it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/rng.h"
#include "capsule/export.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "client/b64.h"
#include "client/http.h"
#include "client/jobclient.h"
#include "node/federation.h"

#define KEY_SIZE 16u
#define VALUE_SIZE 32u

#define NODE_POOL 2u          /* --pool: idle enclaves the node keeps */
#define COLD_RUNS 30u         /* jobs for the cold start */
#define FORK_RUNS 30u         /* fork + exec of /bin/true */
#define HEALTHZ_RUNS 500u     /* GET /healthz round trips */
#define INVOKE_WARMUP 20u     /* invocations before the timed ones */
#define INVOKE_RUNS 500u      /* sequential timed invocations */
#define CLIENTS 4u            /* concurrent clients */
#define CONCURRENT_NS 3000000000ull /* each concurrent run */
#define POLL_NS 500000L       /* job state polling while timed (psl job submit: 250 ms) */
#define API_BODY_MAX (8u << 20)
#define REQUEST_TIMEOUT_MS 15000
#define CREATE_TIMEOUT_MS 90000

/* Set by the first thread that dies: it alone runs exit() (and so the node's clean-up); others
 * (concurrent clients whose requests fail as the node stops) wait for the process to end. */
static atomic_flag dying = ATOMIC_FLAG_INIT;

_Noreturn static void die_msg(const char *what, const char *why)
{
    if (atomic_flag_test_and_set_explicit(&dying, memory_order_acq_rel))
        for (;;)
            pause();
    fprintf(stderr, "node_bench: %s: %s\n", what, why);
    exit(1);
}

_Noreturn static void die(const char *what, psl_err err)
{
    die_msg(what, psl_strerror(err));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile (nearest rank) of n samples; sorts them. */
static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static void sleep_ns(long ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- 1. psl run ---- */

/* Sealing throughput (ops/s) of DATA records of `batch` operations, for about 1 s of CPU. */
static double producer_floor(size_t batch)
{
    struct writer_keys wk;
    uint8_t key[AEAD_KEY_SIZE] = {7};
    psl_err err = writer_keys_init(&wk, NULL, NULL, key);
    if (err)
        die("writer_keys_init", err);
    struct record_chain ch;
    uint8_t capsule[HASH_SIZE] = {1};
    record_chain_init(&ch, capsule);
    struct kv_op *ops = calloc(batch, sizeof *ops);
    uint8_t *keys = malloc(batch * KEY_SIZE), val[VALUE_SIZE];
    size_t cap = PSL_RECORD_HEADER_SIZE + batch * (15 + KEY_SIZE + VALUE_SIZE) + 256;
    uint8_t *buf = malloc(cap);
    if (!ops || !keys || !buf)
        die("malloc", PSL_ERR_NOMEM);
    memset(val, 'v', sizeof val);
    uint64_t lamport = 0, done = 0, t0 = clock_mono_ns();
    while (clock_mono_ns() - t0 < 1000000000ull) {
        for (size_t i = 0; i < batch; i++) {
            snprintf((char *)keys + i * KEY_SIZE, KEY_SIZE, "w000/%010llu",
                     (unsigned long long)(done + i));
            ops[i] = (struct kv_op){.op = OP_PUT, .lamport = ++lamport, .key_size = KEY_SIZE,
                                    .key = keys + i * KEY_SIZE, .value_size = VALUE_SIZE,
                                    .value = val};
        }
        struct wr w;
        wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, cap - PSL_RECORD_HEADER_SIZE - 80);
        data_encode(&w, ops, batch);
        if (w.err)
            die("data_encode", w.err);
        size_t size;
        uint8_t hash[HASH_SIZE];
        if ((err = record_chain_seal(&ch, &wk, REC_DATA, lamport, buf, cap, w.pos, &size, hash)))
            die("record_chain_seal", err);
        done += batch;
    }
    double s = (double)(clock_mono_ns() - t0) / 1e9;
    free(ops);
    free(keys);
    free(buf);
    writer_keys_deinit(&wk);
    return (double)done / s;
}

/* The federation's temp dir: removed after the runs, or at exit when one fails. */
static char run_dir[] = "/tmp/psl-node-bench.XXXXXX";

static void run_dir_remove(void)
{
    if (strncmp(run_dir + strlen(run_dir) - 6, "XXXXXX", 6) == 0)
        return; /* not created */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "node_bench: could not remove %s\n", run_dir);
    strcpy(run_dir + strlen(run_dir) - 6, "XXXXXX");
}

static void run_section(const char *enclave, const char *script_path)
{
    unsigned workers = 2;
    const char *puts = "100000";
    uint8_t *script;
    size_t script_size;
    psl_err err = file_read_all(script_path, &script, &script_size);
    if (err)
        die(script_path, err);
    char *dir = run_dir;
    if (!mkdtemp(dir))
        die("mkdtemp", PSL_ERR_IO);
    atexit(run_dir_remove);
    struct fed_config fc = {.data_dir = dir, .enclave_path = enclave};
    struct fed *f;
    if ((err = fed_open(&f, &fc)))
        die("fed_open", err);
    printf("# psl run %s --workers %u --args %s (process enclaves, 3 embedded servers, k=2)\n",
           script_path, workers, puts);
    double rate[3];
    uint64_t ops = 0, records = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct fed_job_config jc = {.name = "kvload.lua", .script = script,
                                    .script_size = script_size, .args = (const uint8_t *)puts,
                                    .args_size = strlen(puts), .workers = workers,
                                    .timeout_ms = 300000};
        struct fed_job_report rep_out;
        if ((err = fed_run_job(f, &jc, &rep_out)))
            die("fed_run_job", err);
        for (unsigned i = 0; i < workers; i++)
            if (!rep_out.results[i].ok || !rep_out.results[i].verified)
                die("a worker failed", rep_out.results[i].err);
        if (!rep_out.chain_verified || !rep_out.durable)
            die("the capsule did not verify or was not durable", PSL_ERR_AUTH);
        rate[rep] = (double)rep_out.ops / rep_out.run_s;
        ops = rep_out.ops;
        records = rep_out.records;
        printf("# run %d: %llu ops in %llu records, %.2f s, %.0f ops/s\n", rep,
               (unsigned long long)rep_out.ops, (unsigned long long)rep_out.records,
               rep_out.run_s, rate[rep]);
        fed_job_report_free(&rep_out);
    }
    fed_close(f);
    free(script);
    run_dir_remove();
    /* median of three */
    double a = rate[0], b = rate[1], c = rate[2];
    double med = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
    size_t batch = records ? (size_t)(ops / records) : 1;
    if (batch < 1)
        batch = 1;
    double floor = producer_floor(batch);
    printf("# floor: one core sealing DATA records of %zu ops (the job's mean batch)\n", batch);
    printf("RESULT name=node.run_ops_per_s value=%.0f unit=ops/s floor=%.0f ratio=%.3f\n", med,
           floor, med / floor);
    printf("RESULT name=node.run_floor_producer_ops_per_s value=%.0f unit=ops/s\n", floor);
    fflush(stdout);
}

/* ---- the psl-node process ---- */

/* The node this program started, for the exit and signal paths; set once before the node is
 * forked, cleared once it was stopped. Only async-signal-safe calls touch them in a handler. */
static volatile pid_t node_pid = -1;
static char node_dir[64];
static char *rm_argv[] = {"rm", "-rf", "--", node_dir, NULL};

/* SIGTERM, then SIGKILL after 10 s; returns the wait status (-1: none). Async-signal-safe. */
static int node_kill_wait(void)
{
    pid_t pid = node_pid;
    int st = -1;
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            node_pid = -1;
            return r == pid ? st : -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    node_pid = -1;
    return -1;
}

/* rm -rf the node's data dir (fork + execv + waitpid: usable in a signal handler). */
static void node_dir_remove(void)
{
    if (!node_dir[0])
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execv("/bin/rm", rm_argv);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    node_dir[0] = '\0';
}

static void node_cleanup_atexit(void)
{
    node_kill_wait();
    node_dir_remove();
}

static void node_cleanup_signal(int sig)
{
    node_kill_wait();
    node_dir_remove();
    signal(sig, SIG_DFL);
    raise(sig);
}

struct node {
    struct http_url u;
    char url[64];
    uint8_t platform_pk[SIGN_PK_SIZE];
    uint8_t measurement[HASH_SIZE];
    uint8_t servers[PSL_REPLICAS_MAX][SIGN_PK_SIZE];
    unsigned server_count;
};

/* Starts psl-node on 127.0.0.1:0 (the kernel picks a free port; the node writes it to its ready
 * file) with NODE_POOL pre-forked enclaves and 3 embedded storage servers on the in-process bus. */
static void node_start(struct node *n, const char *node_path, const char *enclave)
{
    snprintf(node_dir, sizeof node_dir, "/tmp/psl-node-bench-node.XXXXXX");
    if (!mkdtemp(node_dir))
        die("mkdtemp", PSL_ERR_IO);
    atexit(node_cleanup_atexit);
    struct sigaction sa = {.sa_handler = node_cleanup_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    char data[128], ready[128], logf[128], pool[16];
    snprintf(data, sizeof data, "%s/data", node_dir);
    snprintf(ready, sizeof ready, "%s/ready", node_dir);
    snprintf(logf, sizeof logf, "%s/node.log", node_dir);
    snprintf(pool, sizeof pool, "%u", NODE_POOL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork", PSL_ERR_IO);
    if (pid == 0) {
        /* The node (and through its own PDEATHSIG its enclaves) dies with this program. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(node_path, node_path, "--listen", "127.0.0.1:0", "--fabric", "inproc",
              "--embedded-servers", "3", "--data-dir", data, "--ready-file", ready, "--pool", pool,
              "--enclave", enclave, "--node-id", "bench", (char *)NULL);
        _exit(127);
    }
    node_pid = pid;
    unsigned port = 0;
    for (int i = 0; i < 2000 && !port; i++) {
        FILE *f = fopen(ready, "r");
        if (f) {
            if (fscanf(f, "%u", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port)
            break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            node_pid = -1;
            fprintf(stderr, "node_bench: psl-node exited during start-up (status %d); its log:\n",
                    st);
            char cmd[200];
            snprintf(cmd, sizeof cmd, "cat '%s' >&2", logf);
            if (system(cmd) != 0)
                fprintf(stderr, "(cannot show %s)\n", logf);
            exit(1);
        }
        sleep_ns(10000000L);
    }
    if (!port)
        die_msg("psl-node", "not ready after 20 s");
    snprintf(n->url, sizeof n->url, "http://127.0.0.1:%u", port);
    if (http_url_parse(n->url, &n->u) != PSL_OK)
        die_msg("http_url_parse", n->url);
}

/* One API call, as cmd_job.c's api(): *out (taken) is the JSON answer of a 2xx; otherwise why
 * says what the node said. Returns the HTTP status, or 0 when there was no answer. */
static unsigned api(const struct node *n, const char *method, const char *path, json_t *body,
                    int timeout_ms, json_t **out, char *why, size_t why_cap)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct http_response r;
    psl_err err = http_request(&n->u, method, path, text ? "application/json" : NULL, text,
                               text ? strlen(text) : 0, timeout_ms, API_BODY_MAX, &r);
    free(text);
    *out = NULL;
    if (err) {
        snprintf(why, why_cap, "%s %s: no answer: %s", method, path, psl_strerror(err));
        return 0;
    }
    json_error_t jerr;
    json_t *o = r.size ? json_loadb((const char *)r.body, r.size, 0, &jerr) : NULL;
    unsigned status = r.status;
    http_response_free(&r);
    if (status / 100 != 2) {
        json_t *e = o ? json_object_get(o, "error") : NULL;
        snprintf(why, why_cap, "%s %s answered %u: %s", method, path, status,
                 json_is_string(e) ? json_string_value(e) : "(no error message)");
        json_decref(o);
        return status;
    }
    if (!json_is_object(o)) {
        snprintf(why, why_cap, "%s %s: the answer is not a JSON object", method, path);
        json_decref(o);
        return 0;
    }
    *out = o;
    return status;
}

/* The API call must answer `want`; returns its JSON answer (taken). */
static json_t *api_must(const struct node *n, const char *method, const char *path, json_t *body,
                        int timeout_ms, unsigned want)
{
    char why[400];
    json_t *o;
    unsigned st = api(n, method, path, body, timeout_ms, &o, why, sizeof why);
    if (st != want) {
        json_decref(o);
        die_msg("psl-node", why);
    }
    return o;
}

static bool get_hex(json_t *o, const char *name, uint8_t *out, size_t size)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) && hex_decode_exact(out, size, json_string_value(v)) == PSL_OK;
}

static json_t *jhex(const uint8_t *b, size_t size)
{
    char hex[2 * 64 + 1];
    hex_encode(hex, b, size);
    return json_string(hex);
}

static json_t *jb64(const uint8_t *b, size_t size)
{
    char *s = b64_encode_alloc(b, size);
    if (!s)
        die("b64_encode_alloc", PSL_ERR_NOMEM);
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* GET /v1/status: the platform key (pinned from here on, as --trust-platform would), the
 * enclave measurement a new capsule admits, and the embedded servers (--servers-from-node). */
static void node_learn(struct node *n)
{
    json_t *o = api_must(n, "GET", "/v1/status", NULL, REQUEST_TIMEOUT_MS, 200);
    if (!get_hex(o, "platform_pk", n->platform_pk, SIGN_PK_SIZE) ||
        !get_hex(o, "measurement", n->measurement, HASH_SIZE))
        die_msg("/v1/status", "no platform_pk or measurement");
    json_t *sv = json_object_get(o, "servers");
    for (size_t i = 0; json_is_array(sv) && i < json_array_size(sv) &&
                       n->server_count < PSL_REPLICAS_MAX; i++) {
        json_t *e = json_array_get(sv, i);
        if (json_is_string(e) && hex_decode_exact(n->servers[n->server_count], SIGN_PK_SIZE,
                                                  json_string_value(e)) == PSL_OK)
            n->server_count++;
    }
    json_decref(o);
    if (!n->server_count)
        die_msg("/v1/status", "the node embeds no storage servers");
}

/* Untimed: waits until the pool holds NODE_POOL idle enclaves again, so that the next job takes
 * a pre-forked one (the node refills it in the background after each job or deploy). */
static void wait_pool_full(const struct node *n)
{
    uint64_t t0 = clock_mono_ns();
    for (;;) {
        json_t *o = api_must(n, "GET", "/v1/status", NULL, REQUEST_TIMEOUT_MS, 200);
        json_int_t idle = json_integer_value(json_object_get(json_object_get(o, "pool"), "idle"));
        json_decref(o);
        if (idle >= (json_int_t)NODE_POOL)
            return;
        if (clock_mono_ns() - t0 > 30000000000ull)
            die_msg("psl-node", "the pool did not refill within 30 s");
        sleep_ns(2000000L);
    }
}

/* ---- jobs and functions through the API (cmd_job.c's job_submit, for one worker) ---- */

enum { T_START, T_CLIENT, T_ATTESTED, T_ADMITTED, T_PROVISIONED, T_RUNNING, T_COUNT };

struct started {
    struct jobclient c;
    char job[2 * 16 + 1];
    char name[64]; /* a function's, or "" */
    uint64_t t[T_COUNT];
};

/* Creates a capsule on the node's servers, asks for a one-worker job (fname NULL) or function,
 * verifies the attestation, certifies the enclave and provisions it, then polls until the worker
 * runs (or, a job, has already finished). Everything is timed into s->t. */
static void start_one(const struct node *n, const struct signer *owner, const char *fname,
                      const char *chunk, const uint8_t *script, size_t script_size,
                      struct started *s)
{
    memset(s, 0, sizeof *s);
    s->t[T_START] = clock_mono_ns();
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    struct jobclient_capsule_spec spec = {
        .label = "node_bench", .replicas = (const uint8_t(*)[SIGN_PK_SIZE])n->servers,
        .replica_count = n->server_count, .quorum_k = 0,
        .measurements = (const uint8_t(*)[HASH_SIZE])n->measurement, .measurement_count = 1};
    psl_err err = jobclient_capsule_new(owner, &spec, meta_raw, sizeof meta_raw, &meta_size);
    if (err)
        die("jobclient_capsule_new", err);
    uint8_t *capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!capsule_key)
        die("secret_alloc", PSL_ERR_NOMEM);
    rng_bytes(capsule_key, AEAD_KEY_SIZE);
    err = jobclient_init(&s->c, meta_raw, meta_size, capsule_key, 1);
    secret_free(capsule_key);
    if (err || (err = jobclient_trust_platform(&s->c, n->platform_pk)))
        die("jobclient_init", err);
    s->t[T_CLIENT] = clock_mono_ns();

    json_t *nonces = json_array();
    json_array_append_new(nonces, jhex(s->c.w[0].nonce, ATTEST_NONCE_SIZE));
    json_t *body = json_pack("{s:o,s:i,s:o,s:i}", "capsule", jb64(meta_raw, meta_size), "workers",
                             1, "nonces", nonces, "timeout_s", 600);
    if (fname) {
        snprintf(s->name, sizeof s->name, "%s", fname);
        json_object_set_new(body, "name", json_string(fname));
    } else {
        json_object_set_new(body, "worker_indices", json_pack("[i]", 0));
    }
    json_t *r = api_must(n, "POST", fname ? "/v1/functions" : "/v1/jobs", body, CREATE_TIMEOUT_MS,
                         201);
    json_decref(body);
    json_t *jid = json_object_get(r, "id"), *att = json_array_get(json_object_get(r, "attestations"), 0);
    if (!json_is_string(jid) || json_string_length(jid) != 32 || !json_is_string(att))
        die_msg("POST /v1/jobs", "no id or no attestation");
    snprintf(s->job, sizeof s->job, "%s", json_string_value(jid));
    uint8_t *msg;
    size_t msg_size;
    if (b64_decode_alloc(json_string_value(att), json_string_length(att), ATTEST_MSG_SIZE_MAX, &msg,
                         &msg_size) != PSL_OK)
        die_msg("POST /v1/jobs", "an attestation that is not base64");
    json_decref(r);
    s->t[T_ATTESTED] = clock_mono_ns();

    struct jobclient_job job = {.name = chunk, .script = script, .script_size = script_size,
                                .mode = fname ? PROVISION_MODE_FUNCTION : PROVISION_MODE_JOB};
    uint8_t *sealed;
    size_t sealed_size;
    char why[256];
    err = jobclient_admit(&s->c, owner, 0, msg, msg_size, &job, &sealed, &sealed_size, why,
                          sizeof why);
    free(msg);
    if (err)
        die_msg("the attestation was refused", why);
    s->t[T_ADMITTED] = clock_mono_ns();

    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/provision", s->job);
    body = json_pack("{s:[o]}", "bundles", jb64(sealed, sealed_size));
    free(sealed);
    json_decref(api_must(n, "POST", path, body, REQUEST_TIMEOUT_MS, 202));
    json_decref(body);
    s->t[T_PROVISIONED] = clock_mono_ns();

    snprintf(path, sizeof path, "/v1/jobs/%s", s->job);
    for (;;) {
        r = api_must(n, "GET", path, NULL, REQUEST_TIMEOUT_MS, 200);
        json_t *w = json_array_get(json_object_get(r, "workers"), 0);
        const char *st = json_string_value(json_object_get(w, "state"));
        if (st && (!strcmp(st, "running") || (!fname && !strcmp(st, "done")))) {
            json_decref(r);
            break;
        }
        if (!st || !strcmp(st, "failed") || !strcmp(st, "done")) {
            const char *e = json_string_value(json_object_get(w, "error"));
            snprintf(why, sizeof why, "%s", e ? e : st ? st : "no state");
            json_decref(r);
            die_msg("the worker did not start", why);
        }
        json_decref(r);
        sleep_ns(POLL_NS);
    }
    s->t[T_RUNNING] = clock_mono_ns();
}

/* Untimed: waits for the job's result, opens it and checks it (signed by the enclave certified
 * for the worker, sealed to this client, the lambda's value). */
static void finish_job(const struct node *n, struct started *s, const char *want)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", s->job);
    uint64_t t0 = clock_mono_ns();
    for (;;) {
        json_t *r = api_must(n, "GET", path, NULL, REQUEST_TIMEOUT_MS, 200);
        json_t *w = json_array_get(json_object_get(r, "workers"), 0);
        const char *st = json_string_value(json_object_get(w, "state"));
        json_t *res = json_object_get(w, "result");
        if (st && !strcmp(st, "done") && json_is_string(res)) {
            uint8_t *sealed;
            size_t size;
            if (b64_decode_alloc(json_string_value(res), json_string_length(res),
                                 PSL_RESULT_SIZE_MAX, &sealed, &size) != PSL_OK)
                die_msg("job", "a result that is not base64");
            const char *je = json_string_value(json_object_get(w, "job_err"));
            struct jobclient_result jr;
            jobclient_open_result(&s->c, 0, je && !strcmp(je, "ok") ? PSL_OK : PSL_ERR_LAMBDA,
                                  sealed, size, &jr);
            free(sealed);
            if (!jr.verified || !jr.ok || !jr.text || strcmp(jr.text, want) != 0)
                die_msg("job result", jr.verified ? (jr.text ? jr.text : "?") : jr.why);
            jobclient_result_free(&jr);
            json_decref(r);
            break;
        }
        if (!st || !strcmp(st, "failed"))
            die_msg("job", "failed");
        json_decref(r);
        if (clock_mono_ns() - t0 > 30000000000ull)
            die_msg("job", "no result within 30 s");
        sleep_ns(1000000L);
    }
    jobclient_deinit(&s->c);
}

/* One invocation, all of the client's cost: seal and sign, POST, open and verify. Returns the
 * HTTP status: 200; 429 when the node sees the function serving another invocation; 409 when
 * the enclave itself refused it as busy (it answers an invocation before it is ready for the
 * next one, so a request right behind another can be refused). *value is the counter the answer
 * carries. t[3] gets: seal done, answer received, answer verified. */
static unsigned invoke_one(const struct node *n, const struct signer *owner,
                           const struct started *f, const char *args, long long *value,
                           uint64_t t[3])
{
    struct jobclient_invocation inv;
    psl_err err = jobclient_invoke_seal(owner, f->c.w[0].cert.kx_pk, (const uint8_t *)args,
                                        strlen(args), &inv);
    if (err)
        die("jobclient_invoke_seal", err);
    json_t *body = json_pack("{s:o,s:o}", "id", jhex(inv.id, INVOKE_ID_SIZE), "invocation",
                             jb64(inv.sealed, inv.sealed_size));
    t[0] = clock_mono_ns();
    char path[128], why[400];
    snprintf(path, sizeof path, "/v1/functions/%s/invoke", f->name);
    json_t *r;
    unsigned status = api(n, "POST", path, body, CREATE_TIMEOUT_MS, &r, why, sizeof why);
    json_decref(body);
    t[1] = clock_mono_ns();
    if (status == 429 || (status == 409 && strstr(why, "refused the invocation: busy"))) {
        jobclient_invocation_free(&inv);
        return status;
    }
    if (status != 200)
        die_msg("invoke", why);
    json_t *jr = json_object_get(r, "result");
    const char *e = json_string_value(json_object_get(r, "err"));
    uint8_t *sealed;
    size_t size;
    if (!json_is_string(jr) || b64_decode_alloc(json_string_value(jr), json_string_length(jr),
                                                PSL_RESULT_SIZE_MAX, &sealed, &size) != PSL_OK)
        die_msg("invoke", "no sealed result");
    struct jobclient_result res;
    jobclient_invoke_open(&inv, &f->c.meta, f->c.w[0].cert.sign_pk,
                          e && !strcmp(e, "ok") ? PSL_OK : PSL_ERR_LAMBDA, sealed, size, &res);
    free(sealed);
    json_decref(r);
    if (!res.verified || !res.ok || !res.text)
        die_msg("invoke: the answer", res.verified ? (res.text ? res.text : "?") : res.why);
    json_t *val = json_loads(res.text, 0, NULL);
    if (!json_is_integer(json_object_get(val, "value")))
        die_msg("invoke: an answer without a value", res.text);
    *value = json_integer_value(json_object_get(val, "value"));
    json_decref(val);
    jobclient_result_free(&res);
    jobclient_invocation_free(&inv);
    t[2] = clock_mono_ns();
    return status;
}

/* ---- floors ---- */

static uint64_t fork_exec_ns(const char *path)
{
    uint64_t t0 = clock_mono_ns();
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        die("fork /bin/true", PSL_ERR_IO);
    return clock_mono_ns() - t0;
}

/* One 4 KiB write + fdatasync in dir (the node's data dir: the servers' file system), p50 ns. */
static uint64_t fdatasync_ns(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/fsync-floor", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open the fsync floor file", PSL_ERR_IO);
    uint8_t block[4096];
    memset(block, 'f', sizeof block);
    uint64_t t[50];
    for (unsigned i = 0; i < 50; i++) {
        uint64_t t0 = clock_mono_ns();
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fdatasync(fd) != 0)
            die("fdatasync", PSL_ERR_IO);
        t[i] = clock_mono_ns() - t0;
    }
    close(fd);
    unlink(path);
    return pct(t, 50, 0.5);
}

/* The enclave's crypto for one invocation, on one core: open the sealed invocation, verify the
 * owner's signature, sign the answer, seal it to the reply key (sizes as rest_counter's). */
static double crypto_floor_us(void)
{
    struct kx_keypair enclave_kx, reply_kx;
    struct signer owner, enclave;
    if (kx_init(&enclave_kx, NULL) || kx_init(&reply_kx, NULL) || signer_init(&owner, NULL) ||
        signer_init(&enclave, NULL))
        die("crypto floor keys", PSL_ERR_NOMEM);
    uint8_t inv[INVOKE_FIXED_SIZE + 16], ans[200], sig[SIGN_SIG_SIZE];
    uint8_t inv_c[sizeof inv + SEAL_OVERHEAD], inv_p[sizeof inv], ans_c[sizeof ans + SEAL_OVERHEAD];
    memset(inv, 'i', sizeof inv);
    memset(ans, 'a', sizeof ans);
    sign_detached(&owner, sig, inv, sizeof inv);
    if (seal_box(inv_c, inv, sizeof inv, enclave_kx.pk))
        die("seal_box", PSL_ERR_INVALID_ARG);
    uint64_t n = 0, t0 = clock_mono_ns();
    while (clock_mono_ns() - t0 < 500000000ull) {
        psl_err err = seal_open(inv_p, inv_c, sizeof inv_c, &enclave_kx);
        bool ok = sign_verify(owner.pk, sig, inv_p, sizeof inv_p);
        sign_detached(&enclave, ans, ans + 64, sizeof ans - 64);
        err |= seal_box(ans_c, ans, sizeof ans, reply_kx.pk);
        if (err || !ok)
            die("crypto floor", PSL_ERR_AUTH);
        n++;
    }
    double us = (double)(clock_mono_ns() - t0) / 1e3 / (double)n;
    kx_deinit(&enclave_kx);
    kx_deinit(&reply_kx);
    signer_deinit(&owner);
    signer_deinit(&enclave);
    return us;
}

/* ---- concurrent clients ---- */

struct client_arg {
    const struct node *n;
    const struct signer *owner;
    const struct started *f;
    uint64_t until_ns;
    bool own_function; /* the counter is this client's alone: check each value */
    long long next;    /* the value the next answer must carry (own_function) */
    uint64_t ok, busy, refused;
};

static void *client_main(void *p)
{
    struct client_arg *a = p;
    while (clock_mono_ns() < a->until_ns) {
        long long v;
        uint64_t t[3];
        unsigned st = invoke_one(a->n, a->owner, a->f, "incr hits", &v, t);
        if (st != 200) {
            a->busy += st == 429;
            a->refused += st == 409;
            sleep_ns(1000000L); /* the function serves another client; retry in 1 ms */
            continue;
        }
        if (a->own_function && v != a->next)
            die_msg("invoke", "a counter skipped or repeated a value");
        a->next = v + 1;
        a->ok++;
    }
    return NULL;
}

/* count clients for CONCURRENT_NS, client i on fs[i % nf]; returns answered invocations/s. */
static double concurrent(const struct node *n, const struct signer *owner, struct started *fs,
                         unsigned nf, long long *next, unsigned count, uint64_t *busy,
                         uint64_t *refused)
{
    struct client_arg a[CLIENTS];
    pthread_t th[CLIENTS];
    uint64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < count; i++) {
        a[i] = (struct client_arg){.n = n, .owner = owner, .f = &fs[i % nf],
                                   .until_ns = t0 + CONCURRENT_NS, .own_function = nf == count,
                                   .next = next[i % nf]};
        if (pthread_create(&th[i], NULL, client_main, &a[i]) != 0)
            die("pthread_create", PSL_ERR_NOMEM);
    }
    uint64_t ok = 0;
    *busy = *refused = 0;
    for (unsigned i = 0; i < count; i++) {
        pthread_join(th[i], NULL);
        ok += a[i].ok;
        *busy += a[i].busy;
        *refused += a[i].refused;
        if (a[i].next > next[i % nf])
            next[i % nf] = a[i].next;
    }
    return (double)ok / ((double)(clock_mono_ns() - t0) / 1e9);
}

/* psl_node_invoke_seconds_{sum,count} of GET /metrics: the node's own time per invocation. */
static void node_invoke_seconds(const struct node *n, double *sum, double *count)
{
    struct http_response r;
    *sum = *count = 0;
    if (http_request(&n->u, "GET", "/metrics", NULL, NULL, 0, REQUEST_TIMEOUT_MS, API_BODY_MAX,
                     &r) != PSL_OK)
        return;
    const char *s = (const char *)r.body;
    const char *p = s ? strstr(s, "\npsl_node_invoke_seconds_sum ") : NULL;
    const char *q = s ? strstr(s, "\npsl_node_invoke_seconds_count ") : NULL;
    if (p)
        *sum = strtod(p + strlen("\npsl_node_invoke_seconds_sum "), NULL);
    if (q)
        *count = strtod(q + strlen("\npsl_node_invoke_seconds_count "), NULL);
    http_response_free(&r);
}

static void node_section(const char *node_path, const char *enclave)
{
    struct node n = {0};
    printf("# psl-node %s: --listen 127.0.0.1:0 --fabric inproc --embedded-servers 3 --pool %u "
           "(its own temp data dir)\n", node_path, NODE_POOL);
    fflush(stdout);
    node_start(&n, node_path, enclave);
    node_learn(&n);
    printf("# node serving on %s, %u embedded servers; platform key pinned from GET /v1/status\n",
           n.url, n.server_count);
    struct signer owner;
    if (signer_init(&owner, NULL))
        die("signer_init", PSL_ERR_NOMEM);

    /* Floors. */
    uint64_t fork_ns[FORK_RUNS], hz[HEALTHZ_RUNS];
    for (unsigned i = 0; i < FORK_RUNS; i++)
        fork_ns[i] = fork_exec_ns("/bin/true");
    for (unsigned i = 0; i < HEALTHZ_RUNS; i++) {
        struct http_response r;
        uint64_t t0 = clock_mono_ns();
        psl_err err = http_request(&n.u, "GET", "/healthz", NULL, NULL, 0, REQUEST_TIMEOUT_MS,
                                   4096, &r);
        hz[i] = clock_mono_ns() - t0;
        if (err || r.status != 200)
            die("GET /healthz", err ? err : PSL_ERR_IO);
        http_response_free(&r);
    }
    double fork_ms = (double)pct(fork_ns, FORK_RUNS, 0.5) / 1e6;
    double healthz_us = (double)pct(hz, HEALTHZ_RUNS, 0.5) / 1e3;
    double crypto_us = crypto_floor_us();
    double fsync_us = (double)fdatasync_ns(node_dir) / 1e3;
    printf("# floors: fork+exec+wait of /bin/true (%u runs); GET /healthz round trip, a new TCP "
           "connection each (%u runs); enclave crypto of one invocation on one core "
           "(seal_open + verify + sign + seal_box); for reference, a 4 KiB write + fdatasync in the "
           "node's data dir (an invocation's answer waits for a durable write)\n",
           FORK_RUNS, HEALTHZ_RUNS);
    printf("RESULT name=node.floor_fork_exec_p50_ms value=%.3f unit=ms\n", fork_ms);
    printf("RESULT name=node.floor_healthz_p50_us value=%.1f unit=us\n", healthz_us);
    printf("RESULT name=node.floor_invoke_crypto_us value=%.1f unit=us\n", crypto_us);
    printf("RESULT name=node.floor_fdatasync_p50_us value=%.1f unit=us\n", fsync_us);
    fflush(stdout);

    /* Job cold start. */
    static const char trivial[] = "function main() return 1 end\n";
    uint64_t cold[COLD_RUNS], seg[T_COUNT][COLD_RUNS];
    printf("# job cold start: %u one-worker jobs of a trivial script, one at a time; timed from "
           "the new capsule to the worker seen running (polled every %ld us); between jobs "
           "(untimed) the result is opened and verified and the pool refills to %u idle\n",
           COLD_RUNS, POLL_NS / 1000, NODE_POOL);
    fflush(stdout);
    for (unsigned i = 0; i < COLD_RUNS; i++) {
        wait_pool_full(&n);
        struct started s;
        start_one(&n, &owner, NULL, "trivial.lua", (const uint8_t *)trivial, sizeof trivial - 1,
                  &s);
        cold[i] = s.t[T_RUNNING] - s.t[T_START];
        for (unsigned k = 1; k < T_COUNT; k++)
            seg[k][i] = s.t[k] - s.t[k - 1];
        finish_job(&n, &s, "1");
    }
    double cold50 = (double)pct(cold, COLD_RUNS, 0.5) / 1e6;
    double cold99 = (double)pct(cold, COLD_RUNS, 0.99) / 1e6;
    printf("# cold start spread (ms): min %.3f p90 %.3f max %.3f\n", (double)cold[0] / 1e6,
           (double)pct(cold, COLD_RUNS, 0.9) / 1e6, (double)cold[COLD_RUNS - 1] / 1e6);
    printf("# where it goes (medians, ms): capsule + job client %.3f | POST /v1/jobs (pool take, "
           "report, evidence) %.3f | verify + certificate + seal %.3f | POST provision %.3f | "
           "until seen running (READY) %.3f\n",
           (double)pct(seg[T_CLIENT], COLD_RUNS, 0.5) / 1e6,
           (double)pct(seg[T_ATTESTED], COLD_RUNS, 0.5) / 1e6,
           (double)pct(seg[T_ADMITTED], COLD_RUNS, 0.5) / 1e6,
           (double)pct(seg[T_PROVISIONED], COLD_RUNS, 0.5) / 1e6,
           (double)pct(seg[T_RUNNING], COLD_RUNS, 0.5) / 1e6);
    printf("RESULT name=node.job_cold_start_p50_ms value=%.3f unit=ms floor=%.3f ratio=%.2f\n",
           cold50, fork_ms, cold50 / fork_ms);
    printf("RESULT name=node.job_cold_start_p99_ms value=%.3f unit=ms floor=%.3f ratio=%.2f\n",
           cold99, fork_ms, cold99 / fork_ms);
    fflush(stdout);

    /* Warm invocations. */
    const char *counter_path = PSL_EXAMPLES_DIR "/rest_counter.lua";
    uint8_t *script;
    size_t script_size;
    psl_err err = file_read_all(counter_path, &script, &script_size);
    if (err)
        die(counter_path, err);
    struct started fs[CLIENTS];
    long long next[CLIENTS];
    for (unsigned i = 0; i < CLIENTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "counter-%u", i);
        wait_pool_full(&n);
        start_one(&n, &owner, name, "rest_counter.lua", script, script_size, &fs[i]);
        next[i] = 1;
    }
    free(script);
    printf("# deployed rest_counter.lua as %u functions (deploy to serving, first: %.1f ms); "
           "%u sequential invocations of \"incr hits\" on counter-0 after %u warm-up ones: each "
           "sealed + signed, POST, opened + verified, the counter checked\n",
           CLIENTS, (double)(fs[0].t[T_RUNNING] - fs[0].t[T_START]) / 1e6, INVOKE_RUNS,
           INVOKE_WARMUP);
    fflush(stdout);
    static uint64_t lat[INVOKE_RUNS], seal_t[INVOKE_RUNS], http_t[INVOKE_RUNS], open_t[INVOKE_RUNS];
    double ns_sum0, cnt0, ns_sum1, cnt1;
    unsigned seq_refused = 0;
    for (unsigned i = 0; i < INVOKE_WARMUP + INVOKE_RUNS; i++) {
        if (i == INVOKE_WARMUP)
            node_invoke_seconds(&n, &ns_sum0, &cnt0);
        long long v;
        uint64_t t[3], t0 = clock_mono_ns();
        unsigned tries = 0;
        while (invoke_one(&n, &owner, &fs[0], "incr hits", &v, t) != 200) {
            seq_refused += i >= INVOKE_WARMUP; /* counted in this invocation's latency */
            if (++tries == 1000)
                die_msg("invoke", "refused as busy 1000 times with nobody else invoking");
        }
        if (v != next[0])
            die_msg("invoke", "the counter skipped or repeated a value");
        next[0]++;
        if (i >= INVOKE_WARMUP) {
            unsigned k = i - INVOKE_WARMUP;
            lat[k] = t[2] - t0;
            seal_t[k] = t[0] - t0;
            http_t[k] = t[1] - t[0];
            open_t[k] = t[2] - t[1];
        }
    }
    node_invoke_seconds(&n, &ns_sum1, &cnt1);
    double inv50 = (double)pct(lat, INVOKE_RUNS, 0.5) / 1e3;
    double inv99 = (double)pct(lat, INVOKE_RUNS, 0.99) / 1e3;
    double node_us = cnt1 > cnt0 ? (ns_sum1 - ns_sum0) / (cnt1 - cnt0) * 1e6 : 0;
    printf("# where it goes (medians, us): client seal + sign %.1f | POST until the answer %.1f "
           "(the node's own mean, relay + run + flush: %.1f) | open + verify %.1f; %u refused "
           "busy and sent again\n",
           (double)pct(seal_t, INVOKE_RUNS, 0.5) / 1e3, (double)pct(http_t, INVOKE_RUNS, 0.5) / 1e3,
           node_us, (double)pct(open_t, INVOKE_RUNS, 0.5) / 1e3, seq_refused);
    printf("RESULT name=node.invoke_p50_us value=%.1f unit=us floor=%.1f ratio=%.2f\n", inv50,
           healthz_us + crypto_us, inv50 / (healthz_us + crypto_us));
    printf("RESULT name=node.invoke_p99_us value=%.1f unit=us floor=%.1f ratio=%.2f\n", inv99,
           healthz_us + crypto_us, inv99 / (healthz_us + crypto_us));
    printf("# invoke floor = healthz round trip %.1f us + enclave crypto %.1f us (the durable "
           "write, at least one fdatasync of %.1f us on k servers, is not in it)\n", healthz_us,
           crypto_us, fsync_us);
    fflush(stdout);

    /* Concurrent clients. */
    uint64_t busy_own, busy_one, ref_own, ref_one;
    double own = concurrent(&n, &owner, fs, CLIENTS, next, CLIENTS, &busy_own, &ref_own);
    double one = concurrent(&n, &owner, fs, 1, next, CLIENTS, &busy_one, &ref_one);
    double seq = 1e6 / inv50;
    double ceiling = 1e6 / crypto_us;
    printf("# %u concurrent clients for %.0f s each: on %u functions (one each), then all on "
           "counter-0, which serves one invocation at a time and answers 429 to the others "
           "(they retry after 1 ms); 2 cores shared by clients, node and enclaves\n",
           CLIENTS, (double)CONCURRENT_NS / 1e9, CLIENTS);
    printf("# sequential, one client: %.0f/s; %u clients on one function: %.0f/s (%llu answered "
           "429 by the node, %llu refused busy by the enclave); %u clients on %u functions: "
           "%.0f/s (%llu 429, %llu busy)\n",
           seq, CLIENTS, one, (unsigned long long)busy_one, (unsigned long long)ref_one, CLIENTS,
           CLIENTS, own, (unsigned long long)busy_own, (unsigned long long)ref_own);
    printf("RESULT name=node.invoke_per_s value=%.0f unit=invocations/s floor=%.0f ratio=%.3f\n",
           own, ceiling, own / ceiling);
    printf("# invoke_per_s floor = one core doing only the enclave crypto (1 / %.1f us)\n",
           crypto_us);
    fflush(stdout);

    /* Stop: delete the functions, SIGTERM the node, remove its dir. */
    for (unsigned i = 0; i < CLIENTS; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/functions/%s", fs[i].name);
        json_decref(api_must(&n, "DELETE", path, NULL, REQUEST_TIMEOUT_MS, 200));
        jobclient_deinit(&fs[i].c);
    }
    signer_deinit(&owner);
    int st = node_kill_wait();
    printf("# psl-node stopped with SIGTERM: %s\n",
           st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "exit 0" : "NOT a clean exit");
    node_dir_remove();
}

int main(int argc, char **argv)
{
    if (psl_crypto_init() != PSL_OK)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *enclave = getenv("PSL_ENCLAVE") ? getenv("PSL_ENCLAVE") : PSL_ENCLAVE_PATH;
    const char *node = getenv("PSL_NODE") ? getenv("PSL_NODE") : PSL_NODE_PATH;
    const char *script_path = argc > 1 ? argv[1] : PSL_EXAMPLES_DIR "/kvload.lua";
    printf("## 1. psl run throughput (embedded federation)\n");
    run_section(enclave, script_path);
    printf("## 2. psl-node over HTTP: job cold start, warm invocations\n");
    node_section(node, enclave);
    return 0;
}
