/* cmd_job.c: `psl job submit|status` and `psl status`: the client side of jobs on remote
 * psl-nodes over their HTTP API (docs/api.md). submit makes (or reuses) the capsule, spreads the
 * workers over the nodes round-robin, verifies every attestation against the nodes' platform
 * keys (pinned with --trust-platform, or trusted on first use and said so), seals each worker's
 * bundle, and keeps everything needed later in a job file (0600: it holds the capsule key and
 * the key results are sealed to). status reads the job file, polls the nodes, opens and verifies
 * every result, and once the job has ended exports the capsule and verifies it. The nodes relay
 * sealed bytes only; nothing they say is believed without a signature. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/rng.h"
#include "capsule/chain.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "cli/cli.h"
#include "client/b64.h"
#include "client/http.h"
#include "client/jobclient.h"

#define NODES_MAX 16u
#define JOB_WORKERS_MAX 256u
#define NODE_JOB_WORKERS_MAX 64u /* JOBHOST_WORKERS_MAX of psl-node */
#define API_BODY_MAX (8u << 20)  /* JSON answers: results are at most 1 MiB each, base64 */
#define EXPORT_BODY_MAX (256u << 20)
#define PROVISION_CHUNK_SIZE (3u << 20) /* base64 bytes per provisioning request (node: 4 MiB) */
#define CREATE_TIMEOUT_MS 90000
#define REQUEST_TIMEOUT_MS 15000
#define POLL_MS 250
#define JOB_FILE_VERSION 1

struct node_ref {
    char url[256];
    struct http_url u;
    uint8_t platform_pk[SIGN_PK_SIZE];
    uint8_t measurement[HASH_SIZE];
    char job[2 * 16 + 1]; /* the node's job id (hex) */
    unsigned slots;
    unsigned workers[NODE_JOB_WORKERS_MAX]; /* slot -> job worker */
    bool unreachable;
    char why[200];
    uint64_t log_next;
};

/* What the nodes last said about one worker. */
struct wstate {
    char state[16];
    char error[200];
    psl_err job_err;
    uint8_t *result;
    size_t result_size;
    uint64_t ops, records, bytes, durable_seq;
};

struct job {
    char path[1024];
    char key_file[1024];
    char export_path[1024];
    char script[256];
    struct jobclient c;
    unsigned node_count;
    struct node_ref nodes[NODES_MAX];
    unsigned workers;
    unsigned w_node[JOB_WORKERS_MAX], w_slot[JOB_WORKERS_MAX];
    char w_err[JOB_WORKERS_MAX][200]; /* refused by this client (attestation, ...) */
    struct wstate ws[JOB_WORKERS_MAX];
    uint64_t created_ms;
    /* A deployed function (psl deploy): its name, its enclave's certified X25519 key, and the
     * owner key file that signs invocations. */
    char function[64];
    uint8_t enclave_kx_pk[KX_PK_SIZE];
    char owner_file[1024];
};

struct out_opts {
    bool json, quiet, progress_shown, wait;
};

/* ---- HTTP + JSON ---- */

/* One API call. *out (taken by the caller) is the decoded JSON answer of a 2xx; otherwise why
 * says what the node said ({"error"}) or why it could not be reached. Returns the HTTP status, or
 * 0 when there was no answer. */
static unsigned api(const struct node_ref *n, const char *method, const char *path, json_t *body,
                    int timeout_ms, json_t **out, char *why, size_t why_cap)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct http_response r;
    psl_err err = http_request(&n->u, method, path, text ? "application/json" : NULL, text,
                               text ? strlen(text) : 0, timeout_ms, API_BODY_MAX, &r);
    free(text);
    *out = NULL;
    if (err) {
        snprintf(why, why_cap, "node %.120s unreachable: %s", n->url,
                 err == PSL_ERR_IO ? "cannot connect" : psl_strerror(err));
        return 0;
    }
    json_error_t jerr;
    json_t *o = r.size ? json_loadb((const char *)r.body, r.size, 0, &jerr) : NULL;
    unsigned status = r.status;
    http_response_free(&r);
    if (status / 100 != 2) {
        json_t *e = o ? json_object_get(o, "error") : NULL;
        snprintf(why, why_cap, "node %.120s answered %u: %s", n->url, status,
                 json_is_string(e) ? json_string_value(e) : "(no error message)");
        json_decref(o);
        return status;
    }
    if (!json_is_object(o)) {
        snprintf(why, why_cap, "node %.120s sent an answer that is not a JSON object", n->url);
        json_decref(o);
        return 0;
    }
    *out = o;
    return status;
}

static bool get_hex(json_t *o, const char *name, uint8_t *out, size_t n)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) && hex_decode_exact(out, n, json_string_value(v)) == PSL_OK;
}

static json_t *jhex(const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    hex_encode(hex, b, n);
    return json_string(hex);
}

static json_t *jb64(const uint8_t *b, size_t n)
{
    char *s = b64_encode_alloc(b, n);
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

static psl_err err_by_name(const char *name)
{
    for (int e = 0; e < PSL_ERR__COUNT; e++)
        if (!strcmp(psl_err_name((psl_err)e), name))
            return (psl_err)e;
    return PSL_ERR_LAMBDA;
}

/* GET /v1/status: the node's platform key and enclave measurement (and its servers). */
static int node_status(struct node_ref *n, json_t **out)
{
    char why[300];
    json_t *o;
    if (api(n, "GET", "/v1/status", NULL, REQUEST_TIMEOUT_MS, &o, why, sizeof why) != 200) {
        cli_error("%s; is psl-node running there?", why);
        return EXIT_RUNTIME;
    }
    if (!get_hex(o, "platform_pk", n->platform_pk, SIGN_PK_SIZE) ||
        !get_hex(o, "measurement", n->measurement, HASH_SIZE)) {
        cli_error("node %s: its /v1/status lacks platform_pk or measurement", n->url);
        json_decref(o);
        return EXIT_RUNTIME;
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    return EXIT_OK;
}

/* ---- keys ---- */

static psl_err load_signer(const char *path, struct signer *out)
{
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return PSL_ERR_NOMEM;
    psl_err err = keyfile_read(path, KEYFILE_SIGNING, seed);
    if (!err)
        err = signer_init(out, seed);
    secret_free(seed);
    return err;
}

/* A 64-hex-digit public key, or the path of a signing key file. */
static psl_err parse_public_key(const char *arg, uint8_t pk[SIGN_PK_SIZE])
{
    if (strlen(arg) == 2 * SIGN_PK_SIZE && hex_decode(pk, SIGN_PK_SIZE, arg) == PSL_OK)
        return PSL_OK;
    struct signer s;
    psl_err err = load_signer(arg, &s);
    if (!err) {
        memcpy(pk, s.pk, SIGN_PK_SIZE);
        signer_deinit(&s);
    }
    return err;
}

/* The servers file: one storage server per line (64 hex digits or a server key file), blank
 * lines and # comments ignored, and optionally `quorum K`. */
static int read_servers(const char *path, uint8_t (*pks)[SIGN_PK_SIZE], unsigned *count,
                        unsigned *quorum)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("cannot read the servers file %s: %s", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    char line[1200];
    unsigned lineno = 0;
    *count = 0;
    *quorum = 0;
    int rc = EXIT_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line + strspn(line, " \t");
        s[strcspn(s, "\r\n#")] = '\0';
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            s[--len] = '\0';
        if (!len)
            continue;
        if (!strncmp(s, "quorum", 6)) {
            char *v = s + 6 + strspn(s + 6, " \t=");
            char *end;
            long k = strtol(v, &end, 10);
            if (*end || k < 1) {
                cli_error("%s line %u: quorum takes a positive integer", path, lineno);
                rc = EXIT_USAGE;
                break;
            }
            *quorum = (unsigned)k;
            continue;
        }
        if (*count == PSL_REPLICAS_MAX) {
            cli_error("%s: at most %u storage servers", path, PSL_REPLICAS_MAX);
            rc = EXIT_USAGE;
            break;
        }
        if (parse_public_key(s, pks[*count]) != PSL_OK) {
            cli_error("%s line %u: '%s' is neither 64 hex digits nor a readable server key file",
                      path, lineno, s);
            rc = EXIT_USAGE;
            break;
        }
        (*count)++;
    }
    fclose(f);
    if (!rc && !*count) {
        cli_error("%s names no storage server (one public key or key file per line)", path);
        rc = EXIT_USAGE;
    }
    if (!rc && *quorum > *count) {
        cli_error("%s: quorum %u is more than its %u servers", path, *quorum, *count);
        rc = EXIT_USAGE;
    }
    return rc;
}

/* ---- the job file ---- */

static int job_file_write(const struct job *J, bool create)
{
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(JOB_FILE_VERSION));
    json_object_set_new(o, "job_id", jhex(J->c.job_id, JOB_ID_SIZE));
    json_object_set_new(o, "capsule", jhex(J->c.meta.name, HASH_SIZE));
    json_object_set_new(o, "meta", jb64(J->c.meta_raw, J->c.meta_size));
    json_object_set_new(o, "capsule_key", jhex(J->c.capsule_key, AEAD_KEY_SIZE));
    json_object_set_new(o, "capsule_key_file", json_string(J->key_file));
    json_object_set_new(o, "result_key_seed", jhex(J->c.kx_seed, 32));
    json_object_set_new(o, "script", json_string(J->script));
    json_object_set_new(o, "workers", json_integer(J->workers));
    json_object_set_new(o, "created_ms", json_integer((json_int_t)J->created_ms));
    json_t *nodes = json_array();
    for (unsigned k = 0; k < J->node_count; k++) {
        const struct node_ref *n = &J->nodes[k];
        json_array_append_new(nodes, json_pack("{s:s,s:o,s:s}", "url", n->url, "platform_pk",
                                               jhex(n->platform_pk, SIGN_PK_SIZE), "job", n->job));
    }
    json_object_set_new(o, "nodes", nodes);
    json_t *ws = json_array();
    for (unsigned i = 0; i < J->workers; i++) {
        json_t *e = json_pack("{s:i,s:i,s:i}", "worker", (json_int_t)i, "node",
                              (json_int_t)J->w_node[i], "slot", (json_int_t)J->w_slot[i]);
        json_object_set_new(e, "cert_pk", J->c.w[i].certified
                                              ? jhex(J->c.w[i].cert.sign_pk, SIGN_PK_SIZE)
                                              : json_null());
        json_object_set_new(e, "refused", J->w_err[i][0] ? json_string(J->w_err[i]) : json_null());
        json_array_append_new(ws, e);
    }
    json_object_set_new(o, "assignment", ws);
    if (J->function[0]) {
        json_object_set_new(o, "function", json_string(J->function));
        json_object_set_new(o, "enclave_kx_pk", jhex(J->enclave_kx_pk, KX_PK_SIZE));
        json_object_set_new(o, "owner_key_file", json_string(J->owner_file));
    }
    char *text = json_dumps(o, JSON_INDENT(1));
    json_decref(o);
    if (!text)
        return EXIT_RUNTIME;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", J->path);
    int rc = EXIT_RUNTIME;
    if (create && access(J->path, F_OK) == 0) {
        cli_error("the job file %s exists; psl never overwrites one (pick another with --job-file)",
                  J->path);
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_error("cannot write the job file %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, J->path) != 0) {
        cli_error("cannot write the job file %s: %s", J->path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = EXIT_OK;
out:
    secret_wipe(text, strlen(text));
    free(text);
    return rc;
}

static int job_file_read(struct job *J, const char *path)
{
    memset(J, 0, sizeof *J);
    snprintf(J->path, sizeof J->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_error("cannot read the job file %s: %s", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (st.st_mode & 077) {
        cli_error("%s is readable by others; it holds the capsule key: run `chmod 600 %s` first",
                  path, path);
        return EXIT_RUNTIME;
    }
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) {
        cli_error("%s is not a job file: %s (line %d)", path, jerr.text, jerr.line);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    uint8_t *meta = NULL, *key = secret_alloc(AEAD_KEY_SIZE), *seed = secret_alloc(32);
    size_t meta_size;
    uint8_t job_id[JOB_ID_SIZE];
    uint8_t pks[JOB_WORKERS_MAX][SIGN_PK_SIZE];
    const uint8_t *pk_ptrs[JOB_WORKERS_MAX] = {0};
    json_t *jm = json_object_get(o, "meta"), *jw = json_object_get(o, "workers"),
           *jn = json_object_get(o, "nodes"), *ja = json_object_get(o, "assignment"),
           *jk = json_object_get(o, "capsule_key_file"), *js = json_object_get(o, "script");
    if (!key || !seed || !json_is_string(jm) || !json_is_integer(jw) || !json_is_array(jn) ||
        !json_is_array(ja) || !json_is_string(jk) || !json_is_string(js) ||
        json_integer_value(jw) < 1 || json_integer_value(jw) > JOB_WORKERS_MAX ||
        json_array_size(jn) < 1 || json_array_size(jn) > NODES_MAX ||
        json_array_size(ja) != (size_t)json_integer_value(jw) ||
        !get_hex(o, "capsule_key", key, AEAD_KEY_SIZE) || !get_hex(o, "result_key_seed", seed, 32) ||
        !get_hex(o, "job_id", job_id, JOB_ID_SIZE) ||
        b64_decode_alloc(json_string_value(jm), json_string_length(jm), META_SIZE_MAX, &meta,
                         &meta_size) != PSL_OK)
        goto bad;
    J->workers = (unsigned)json_integer_value(jw);
    J->node_count = (unsigned)json_array_size(jn);
    snprintf(J->key_file, sizeof J->key_file, "%s", json_string_value(jk));
    snprintf(J->script, sizeof J->script, "%s", json_string_value(js));
    json_t *jc = json_object_get(o, "created_ms");
    J->created_ms = json_is_integer(jc) ? (uint64_t)json_integer_value(jc) : 0;
    for (unsigned k = 0; k < J->node_count; k++) {
        struct node_ref *n = &J->nodes[k];
        json_t *e = json_array_get(jn, k), *u = json_object_get(e, "url"),
               *jj = json_object_get(e, "job");
        if (!json_is_string(u) || !json_is_string(jj) || json_string_length(jj) != 32 ||
            !get_hex(e, "platform_pk", n->platform_pk, SIGN_PK_SIZE) ||
            http_url_parse(json_string_value(u), &n->u) != PSL_OK)
            goto bad;
        snprintf(n->url, sizeof n->url, "%s", json_string_value(u));
        snprintf(n->job, sizeof n->job, "%s", json_string_value(jj));
    }
    for (unsigned i = 0; i < J->workers; i++) {
        json_t *e = json_array_get(ja, i), *node = json_object_get(e, "node"),
               *slot = json_object_get(e, "slot"), *ref = json_object_get(e, "refused");
        if (!json_is_integer(node) || !json_is_integer(slot) || json_integer_value(node) < 0 ||
            json_integer_value(node) >= J->node_count || json_integer_value(slot) < 0 ||
            json_integer_value(slot) >= NODE_JOB_WORKERS_MAX)
            goto bad;
        J->w_node[i] = (unsigned)json_integer_value(node);
        J->w_slot[i] = (unsigned)json_integer_value(slot);
        struct node_ref *n = &J->nodes[J->w_node[i]];
        if (J->w_slot[i] + 1 > n->slots)
            n->slots = J->w_slot[i] + 1;
        n->workers[J->w_slot[i]] = i;
        if (get_hex(e, "cert_pk", pks[i], SIGN_PK_SIZE))
            pk_ptrs[i] = pks[i];
        if (json_is_string(ref))
            snprintf(J->w_err[i], sizeof J->w_err[i], "%s", json_string_value(ref));
    }
    json_t *jf = json_object_get(o, "function"), *jo = json_object_get(o, "owner_key_file");
    if (jf) {
        if (!json_is_string(jf) || json_string_length(jf) >= sizeof J->function ||
            !json_is_string(jo) || !get_hex(o, "enclave_kx_pk", J->enclave_kx_pk, KX_PK_SIZE))
            goto bad;
        snprintf(J->function, sizeof J->function, "%s", json_string_value(jf));
        snprintf(J->owner_file, sizeof J->owner_file, "%s", json_string_value(jo));
    }
    psl_err err = jobclient_restore(&J->c, meta, meta_size, key, seed, job_id, J->workers, pk_ptrs);
    if (err) {
        cli_error("%s: the capsule in the job file does not verify: %s", path, psl_strerror(err));
        rc = EXIT_VERIFY_FAILED;
        goto out;
    }
    rc = EXIT_OK;
    goto out;
bad:
    cli_error("%s is not a valid psl job file (a field is missing or out of range)", path);
out:
    json_decref(o);
    free(meta);
    secret_free(key);
    secret_free(seed);
    return rc;
}

/* ---- polling, results, the audit ---- */

static bool ended_state(const char *s)
{
    return !strcmp(s, "done") || !strcmp(s, "failed");
}

static void on_log_line(struct job *J, unsigned worker, const uint8_t *sealed, size_t size,
                        struct out_opts *o)
{
    char line[PSL_LOG_LINE_SIZE_MAX + 1];
    size_t len;
    if (o->quiet)
        return;
    if (o->progress_shown) {
        fputs("\r\033[K", stderr);
        o->progress_shown = false;
    }
    if (jobclient_open_log(&J->c, sealed, size, line, sizeof line, &len) != PSL_OK)
        fprintf(stderr, "[w%u] (a sealed log line did not open: dropped)\n", worker);
    else
        fprintf(stderr, "[w%u] %.*s\n", worker, (int)len, line);
}

/* Polls node k once: the states of its workers, results, log lines. */
static void poll_node(struct job *J, unsigned k, struct out_opts *o)
{
    struct node_ref *n = &J->nodes[k];
    char path[128], why[300];
    snprintf(path, sizeof path, "/v1/jobs/%s?logs_from=%llu", n->job,
             (unsigned long long)n->log_next);
    json_t *r;
    unsigned status = api(n, "GET", path, NULL, REQUEST_TIMEOUT_MS, &r, why, sizeof why);
    if (status != 200) {
        n->unreachable = true;
        snprintf(n->why, sizeof n->why, "%.190s", why);
        return;
    }
    n->unreachable = false;
    json_t *ws = json_object_get(r, "workers");
    for (size_t s = 0; json_is_array(ws) && s < json_array_size(ws) && s < n->slots; s++) {
        json_t *e = json_array_get(ws, s);
        unsigned i = n->workers[s];
        struct wstate *w = &J->ws[i];
        json_t *st = json_object_get(e, "state"), *er = json_object_get(e, "error"),
               *je = json_object_get(e, "job_err"), *res = json_object_get(e, "result");
        if (!json_is_string(st))
            continue;
        snprintf(w->state, sizeof w->state, "%s", json_string_value(st));
        snprintf(w->error, sizeof w->error, "%s", json_is_string(er) ? json_string_value(er) : "");
        w->job_err = json_is_string(je) ? err_by_name(json_string_value(je)) : PSL_OK;
        w->ops = (uint64_t)json_integer_value(json_object_get(e, "ops"));
        w->records = (uint64_t)json_integer_value(json_object_get(e, "records"));
        w->bytes = (uint64_t)json_integer_value(json_object_get(e, "bytes"));
        w->durable_seq = (uint64_t)json_integer_value(json_object_get(e, "durable_seq"));
        if (json_is_string(res) && !w->result) {
            if (b64_decode_alloc(json_string_value(res), json_string_length(res),
                                 PSL_RESULT_SIZE_MAX, &w->result, &w->result_size) != PSL_OK) {
                snprintf(w->state, sizeof w->state, "failed");
                snprintf(w->error, sizeof w->error, "the node sent a result that is not base64");
            }
        }
    }
    json_t *logs = json_object_get(r, "logs"), *lines = json_object_get(logs, "lines");
    for (size_t l = 0; json_is_array(lines) && l < json_array_size(lines); l++) {
        json_t *e = json_array_get(lines, l), *sv = json_object_get(e, "sealed");
        json_int_t wi = json_integer_value(json_object_get(e, "worker"));
        uint8_t *sealed;
        size_t size;
        if (json_is_string(sv) && b64_decode_alloc(json_string_value(sv), json_string_length(sv),
                                                   PSL_LOG_LINE_SIZE_MAX + SEAL_OVERHEAD, &sealed,
                                                   &size) == PSL_OK) {
            on_log_line(J, (unsigned)wi, sealed, size, o);
            free(sealed);
        }
    }
    json_t *next = json_object_get(logs, "next");
    if (json_is_integer(next))
        n->log_next = (uint64_t)json_integer_value(next);
    json_decref(r);
}

/* True when worker i will not change any more (ended, refused, or its node is gone). */
static bool worker_final(const struct job *J, unsigned i)
{
    return J->w_err[i][0] || J->nodes[J->w_node[i]].unreachable || ended_state(J->ws[i].state);
}

struct report {
    struct jobclient_result r[JOB_WORKERS_MAX];
    char why[JOB_WORKERS_MAX][256];
    bool final;
    unsigned done, failed;
    uint64_t records, ops, bytes;
    bool durable, chain_verified, chain_ran;
    size_t chain_records, forks;
};

static void build_report(struct job *J, struct report *R)
{
    memset(R, 0, sizeof *R);
    R->final = true;
    R->durable = true;
    for (unsigned i = 0; i < J->workers; i++) {
        struct wstate *w = &J->ws[i];
        struct jobclient_result *r = &R->r[i];
        R->records += w->records;
        R->ops += w->ops;
        R->bytes += w->bytes;
        if (J->w_err[i][0]) {
            snprintf(R->why[i], sizeof R->why[i], "%s", J->w_err[i]);
        } else if (!strcmp(w->state, "done") && w->result) {
            jobclient_open_result(&J->c, i, w->job_err, w->result, w->result_size, r);
            if (!r->verified)
                snprintf(R->why[i], sizeof R->why[i], "%s", r->why);
        } else if (!strcmp(w->state, "failed")) {
            snprintf(R->why[i], sizeof R->why[i], "%s", w->error[0] ? w->error : "failed");
        } else if (J->nodes[J->w_node[i]].unreachable) {
            snprintf(R->why[i], sizeof R->why[i], "%s (the worker was %s)",
                     J->nodes[J->w_node[i]].why, w->state[0] ? w->state : "in an unknown state");
        } else {
            R->final = false;
        }
        if (r->ok)
            R->done++;
        else if (worker_final(J, i))
            R->failed++;
        if (!r->verified || !r->ok)
            R->durable = false;
    }
}

static void report_free(struct job *J, struct report *R)
{
    for (unsigned i = 0; i < J->workers; i++)
        jobclient_result_free(&R->r[i]);
}

/* Exports the capsule through a node that ran it and verifies it with the capsule key. */
static void audit(struct job *J, struct report *R, struct out_opts *o)
{
    char name[2 * HASH_SIZE + 1], path[160], why[300];
    hex_encode(name, J->c.meta.name, HASH_SIZE);
    snprintf(path, sizeof path, "/v1/capsules/%s/export", name);
    for (unsigned k = 0; k < J->node_count; k++) {
        struct node_ref *n = &J->nodes[k];
        if (n->unreachable)
            continue;
        struct http_response hr;
        psl_err err = http_request(&n->u, "GET", path, NULL, NULL, 0, 30000, EXPORT_BODY_MAX, &hr);
        if (err || hr.status != 200) {
            if (!err)
                http_response_free(&hr);
            snprintf(why, sizeof why, "%s", err ? psl_strerror(err) : "refused");
            continue;
        }
        struct export_view view;
        struct chain_report cr;
        R->chain_ran = true;
        if (export_parse(hr.body, hr.size, &view) == PSL_OK) {
            if (view.meta_size == J->c.meta_size &&
                memcmp(view.meta, J->c.meta_raw, view.meta_size) == 0 &&
                chain_verify(&J->c.meta, view.records, view.record_count, clock_wall_ms(),
                             J->c.capsule_key, &cr) == PSL_OK) {
                R->chain_verified = cr.ok;
                R->chain_records = cr.record_count;
                R->forks = cr.fork_count;
                chain_report_free(&cr);
            }
            export_view_free(&view);
        }
        FILE *f = fopen(J->export_path, "w");
        if (!f || fwrite(hr.body, 1, hr.size, f) != hr.size) {
            if (!o->json)
                fprintf(stderr, "psl: warning: cannot write the export %s\n", J->export_path);
        }
        if (f)
            fclose(f);
        http_response_free(&hr);
        return;
    }
    if (!o->json && !o->quiet)
        fprintf(stderr, "psl: warning: no node could export the capsule; audit it with `psl "
                        "capsule fetch` from the storage servers\n");
}

static void print_report(const struct job *J, const struct report *R, const struct out_opts *o,
                         double elapsed_s)
{
    char cap[2 * HASH_SIZE + 1];
    hex_encode(cap, J->c.meta.name, HASH_SIZE);
    if (o->json) {
        json_t *out = json_object();
        json_object_set_new(out, "workers", json_integer(J->workers));
        json_object_set_new(out, "status", json_string(!R->final ? "running"
                                                       : R->failed ? "failed" : "done"));
        json_t *arr = json_array();
        for (unsigned i = 0; i < J->workers; i++) {
            const struct jobclient_result *r = &R->r[i];
            json_t *e = json_object();
            json_object_set_new(e, "worker", json_integer(i));
            json_t *val = r->ok && r->text ? json_loads(r->text, JSON_DECODE_ANY, NULL) : NULL;
            json_object_set_new(e, "result", val ? val : json_null());
            json_object_set_new(e, "ok", json_boolean(r->ok));
            json_object_set_new(e, "verified", json_boolean(r->verified));
            json_object_set_new(e, "state", json_string(J->w_err[i][0] ? "refused"
                                                        : J->ws[i].state[0] ? J->ws[i].state
                                                                            : "unknown"));
            json_object_set_new(e, "node", json_string(J->nodes[J->w_node[i]].url));
            if (!r->ok && worker_final(J, i))
                json_object_set_new(e, "error", json_string(R->why[i][0] ? R->why[i]
                                                            : r->text ? r->text
                                                                      : psl_strerror(r->err)));
            json_object_set_new(e, "ops", json_integer((json_int_t)J->ws[i].ops));
            json_object_set_new(e, "records", json_integer((json_int_t)J->ws[i].records));
            json_array_append_new(arr, e);
        }
        json_object_set_new(out, "results", arr);
        json_object_set_new(out, "records", json_integer((json_int_t)R->records));
        json_object_set_new(out, "ops", json_integer((json_int_t)R->ops));
        json_object_set_new(out, "bytes", json_integer((json_int_t)R->bytes));
        json_object_set_new(out, "durable", json_boolean(R->final && R->durable));
        json_object_set_new(out, "elapsed_s", json_real(elapsed_s));
        json_object_set_new(out, "capsule", json_string(cap));
        json_object_set_new(out, "chain_verified", json_boolean(R->chain_verified));
        json_object_set_new(out, "chain_records", json_integer((json_int_t)R->chain_records));
        json_object_set_new(out, "forks", json_integer((json_int_t)R->forks));
        json_object_set_new(out, "export", json_string(J->export_path));
        json_object_set_new(out, "capsule_key_file", json_string(J->key_file));
        json_object_set_new(out, "job_file", json_string(J->path));
        json_object_set_new(out, "tee", json_string(evidence_describe(TEE_SIM)));
        char *text = json_dumps(out, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
        json_decref(out);
        return;
    }
    for (unsigned i = 0; i < J->workers; i++) {
        const struct jobclient_result *r = &R->r[i];
        const char *node = J->nodes[J->w_node[i]].url;
        if (r->ok)
            printf("worker %-3u ok      %s  %s\n", i, r->verified ? "verified" : "NOT VERIFIED",
                   r->text ? r->text : "");
        else if (worker_final(J, i))
            printf("worker %-3u FAILED  %s  %s  [%s]\n", i, r->verified ? "verified" : "-",
                   R->why[i][0] ? R->why[i] : r->text ? r->text : psl_strerror(r->err), node);
        else
            printf("worker %-3u %-7s %llu ops, %llu records, durable seq %llu  [%s]\n", i,
                   J->ws[i].state[0] ? J->ws[i].state : "unknown",
                   (unsigned long long)J->ws[i].ops, (unsigned long long)J->ws[i].records,
                   (unsigned long long)J->ws[i].durable_seq, node);
    }
    printf("capsule   %s\n", cap);
    printf("records   %llu sealed, %llu operations, %.1f KiB\n", (unsigned long long)R->records,
           (unsigned long long)R->ops, (double)R->bytes / 1024.0);
    if (!R->final) {
        printf("status    running: %u of %u workers finished%s\n", R->done + R->failed, J->workers,
               R->failed ? " (some FAILED)" : "");
        printf("wait      psl job status %s --wait\n", J->path);
        return;
    }
    printf("durable   %s\n", R->durable ? "yes: every worker's records acknowledged by k storage servers"
                                        : "NO: some worker did not finish its flush");
    printf("elapsed   %.2f s\n", elapsed_s);
    printf("chain     %s (%zu records exported through a node, forks %zu)\n",
           R->chain_verified ? "verified" : R->chain_ran ? "NOT VERIFIED" : "not checked",
           R->chain_records, R->forks);
    printf("tee       %s\n", evidence_describe(TEE_SIM));
    printf("audit     psl capsule verify %s --key %s\n", J->export_path, J->key_file);
}

/* Polls until every worker is final (or once, without wait); then reports and audits. */
static int follow(struct job *J, struct out_opts *o)
{
    struct report *R = calloc(1, sizeof *R);
    if (!R) {
        cli_error("out of memory");
        return EXIT_RUNTIME;
    }
    uint64_t t0 = clock_mono_ns();
    for (;;) {
        for (unsigned k = 0; k < J->node_count; k++)
            poll_node(J, k, o);
        bool all = true;
        unsigned fin = 0;
        uint64_t ops = 0, recs = 0;
        for (unsigned i = 0; i < J->workers; i++) {
            all &= worker_final(J, i);
            fin += worker_final(J, i);
            ops += J->ws[i].ops;
            recs += J->ws[i].records;
        }
        if (all || !o->wait)
            break;
        if (!o->quiet && !o->json && isatty(STDERR_FILENO)) {
            fprintf(stderr, "\r\033[K  %.1fs  workers done %u/%u  ops %llu  records %llu",
                    (double)(clock_mono_ns() - t0) / 1e9, fin, J->workers,
                    (unsigned long long)ops, (unsigned long long)recs);
            o->progress_shown = true;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (o->progress_shown)
        fputs("\r\033[K", stderr);
    build_report(J, R);
    if (R->final)
        audit(J, R, o);
    double elapsed = J->created_ms ? (double)(clock_wall_ms() - J->created_ms) / 1000.0 : 0.0;
    print_report(J, R, o, elapsed);
    bool verified = true;
    for (unsigned i = 0; i < J->workers; i++)
        verified &= R->r[i].verified || !R->r[i].ok;
    for (unsigned i = 0; i < J->workers; i++)
        if (!strcmp(J->ws[i].state, "done") && J->ws[i].result && !R->r[i].verified)
            verified = false; /* a result that does not open: tampered or misrouted */
    int rc = !verified || (R->final && R->chain_ran && !R->chain_verified) ? EXIT_VERIFY_FAILED
             : R->failed                                                   ? EXIT_JOB_FAILED
                                                                           : EXIT_OK;
    report_free(J, R);
    free(R);
    return rc;
}

/* ---- psl job submit ---- */

static const char submit_usage[] =
    "Usage: psl job submit SCRIPT --node URL [--node URL ...] [--workers N]\n"
    "                      (--servers FILE | --servers-from-node | --capsule FILE --capsule-key F)\n"
    "                      --owner KEYFILE [--args STRING | --args-file FILE] [--wait] [--json]\n"
    "\n"
    "Runs the Lua lambda SCRIPT as a job of N workers on psl-nodes (spread round-robin), through\n"
    "their HTTP API: every worker's enclave is attested (its evidence verified against the node's\n"
    "platform key), certified by the owner key and provisioned with a bundle sealed to it; results\n"
    "come back signed and sealed to this client. The job file keeps what `psl job status` needs.\n"
    "\n"
    "  -n, --node URL          a psl-node (http://HOST:PORT); repeat for several nodes\n"
    "  -w, --workers N         workers (default 1, at most 256; 64 per node)\n"
    "  -o, --owner KEYFILE     the capsule owner's key (psl keygen --type owner)\n"
    "      --servers FILE      a new capsule on these storage servers: one public key (64 hex\n"
    "                          digits, as `psl keygen --type server` prints) or server key file\n"
    "                          per line, and optionally `quorum K` (default: a majority)\n"
    "      --servers-from-node a new capsule on the storage servers embedded in the first node\n"
    "                          (its GET /v1/status; for a single machine)\n"
    "      --capsule FILE      use an existing capsule (psl capsule create wrote FILE) ...\n"
    "      --capsule-key F     ... with its capsule key file (psl keygen --type capsule)\n"
    "      --measurement HEX   the enclave measurement a new capsule admits (repeatable;\n"
    "                          default: what the nodes report, trusted on first use)\n"
    "      --trust-platform HEX  accept evidence signed by this platform key only (repeatable;\n"
    "                          default: each node's key, trusted on first use and said so)\n"
    "  -a, --args STRING       passed to every worker's main\n"
    "      --args-file FILE    the same, read from FILE (at most 1 MiB)\n"
    "      --job-file FILE     where to keep the job (default psl-job-<capsule>.json; 0600)\n"
    "      --mem-mb N          memory cap per worker in MiB (default 256)\n"
    "      --insn N            instruction budget per worker (default 20000000000)\n"
    "      --timeout S         the nodes give up on workers after S seconds (default 600)\n"
    "      --wait              wait for the results, verify them and the capsule, like psl run\n"
    "      --json              print one JSON object (the fields of `psl run --json`)\n"
    "  -q, --quiet             no progress, no lambda log lines\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit status: 0 submitted (with --wait: every worker succeeded and everything verified);\n"
    "1 an attestation, a result or the capsule did not verify; 2 usage; 3 runtime error (a node\n"
    "unreachable, ...); 4 a worker failed.\n";

/* Provisions node n: the bundles of its slots (NULL: refused here) in requests under
 * PROVISION_CHUNK_SIZE, the refused slots cancelled in the first. */
static int provision_node(struct node_ref *n, uint8_t **bundles, size_t *sizes)
{
    unsigned s = 0;
    for (bool first = true;; first = false) {
        while (s < n->slots && !bundles[s])
            s++;
        if (!first && s >= n->slots)
            return EXIT_OK;
        unsigned end = s;
        size_t total = 0;
        for (; end < n->slots; end++) {
            size_t len = bundles[end] ? (sizes[end] + 2) / 3 * 4 + 4 : 4;
            if (total && total + len > PROVISION_CHUNK_SIZE)
                break;
            total += len;
        }
        json_t *arr = json_array(), *cancel = json_array();
        for (unsigned k = 0; k < n->slots; k++) {
            bool send = k >= s && k < end && bundles[k];
            json_array_append_new(arr, send ? jb64(bundles[k], sizes[k]) : json_null());
            if (first && !bundles[k])
                json_array_append_new(cancel, json_integer(k));
        }
        json_t *body = json_pack("{s:o}", "bundles", arr);
        if (json_array_size(cancel)) {
            json_object_set_new(body, "cancel", cancel);
            json_object_set_new(body, "why", json_string("attestation refused by the client"));
        } else {
            json_decref(cancel);
        }
        char path[96], why[300];
        snprintf(path, sizeof path, "/v1/jobs/%s/provision", n->job);
        json_t *r;
        unsigned status = api(n, "POST", path, body, REQUEST_TIMEOUT_MS, &r, why, sizeof why);
        json_decref(body);
        json_decref(r);
        if (status != 202) {
            cli_error("provisioning failed: %s", why);
            return EXIT_RUNTIME;
        }
        s = end;
    }
}

static const char deploy_usage[] =
    "Usage: psl deploy SCRIPT --node URL --name NAME --owner KEYFILE\n"
    "                  (--servers FILE | --servers-from-node | --capsule FILE --capsule-key F)\n"
    "                  [--func-file FILE] [--json]\n"
    "\n"
    "Deploys the Lua script SCRIPT as the function NAME on a psl-node: one warm enclave is\n"
    "attested, certified by the owner key and provisioned with a function bundle; it then runs\n"
    "the script's handle(args) once per `psl invoke`, over the function's capsule. The function\n"
    "file (default psl-func-NAME.json, 0600) keeps the capsule key, the enclave's certified keys\n"
    "and the node, for `psl invoke`.\n"
    "\n"
    "  -n, --node URL          the psl-node (http://HOST:PORT)\n"
    "      --name NAME         the function's name on the node (A-Z a-z 0-9 . _ -, at most 63)\n"
    "  -o, --owner KEYFILE     the capsule owner's key; it also signs every invocation\n"
    "      --servers FILE, --servers-from-node, --capsule FILE --capsule-key F,\n"
    "      --measurement HEX, --trust-platform HEX, --mem-mb N, --insn N, --json, --quiet\n"
    "                          as for `psl job submit` (the limits apply per invocation)\n"
    "      --func-file FILE    where to keep the function (default psl-func-NAME.json)\n"
    "\n"
    "Exit status: 0 deployed; 1 the attestation did not verify; 2 usage; 3 runtime error.\n";

/* After the function's bundle was sent: waits until its enclave serves (READY) or failed, then
 * writes the function file. */
static int deploy_finish(struct job *J, bool refused, const struct out_opts *o)
{
    struct node_ref *n = &J->nodes[0];
    if (refused || !J->c.w[0].certified) {
        cli_error("function %s: the enclave was not admitted: %s", J->function, J->w_err[0]);
        return refused ? EXIT_VERIFY_FAILED : EXIT_RUNTIME;
    }
    char path[96], why[300];
    snprintf(path, sizeof path, "/v1/jobs/%s", n->job);
    uint64_t deadline = clock_wall_ms() + CREATE_TIMEOUT_MS;
    for (;;) {
        json_t *r;
        unsigned status = api(n, "GET", path, NULL, REQUEST_TIMEOUT_MS, &r, why, sizeof why);
        if (status != 200) {
            cli_error("function %s: %s", J->function, why);
            return EXIT_RUNTIME;
        }
        json_t *w = json_array_get(json_object_get(r, "workers"), 0);
        const char *st = json_string_value(json_object_get(w, "state"));
        if (st && !strcmp(st, "running")) {
            json_decref(r);
            break;
        }
        if (!st || strcmp(st, "provisioning") != 0 || clock_wall_ms() > deadline) {
            const char *e = json_string_value(json_object_get(w, "error"));
            cli_error("function %s did not start: %s", J->function,
                      e ? e : st ? st : "no state");
            json_decref(r);
            return EXIT_RUNTIME;
        }
        json_decref(r);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    memcpy(J->enclave_kx_pk, J->c.w[0].cert.kx_pk, KX_PK_SIZE);
    int rc = job_file_write(J, true);
    if (rc)
        return rc;
    char hex[2 * HASH_SIZE + 1], epk[2 * SIGN_PK_SIZE + 1];
    hex_encode(hex, J->c.meta.name, HASH_SIZE);
    hex_encode(epk, J->c.w[0].cert.sign_pk, SIGN_PK_SIZE);
    if (o->json) {
        json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "function", J->function, "func_file",
                                J->path, "capsule", hex, "enclave_pk", epk, "node", n->url,
                                "capsule_key_file", J->key_file);
        char *text = json_dumps(out, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
        json_decref(out);
    } else {
        if (!o->quiet)
            fprintf(stderr, "psl: function %s deployed on %s (enclave %.16s); function file %s\n",
                    J->function, n->url, epk, J->path);
        printf("%s\n", J->path);
    }
    return EXIT_OK;
}

static int job_submit(int argc, char **argv, bool deploy)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},        {"workers", required_argument, NULL, 'w'},
        {"owner", required_argument, NULL, 'o'},       {"servers", required_argument, NULL, 'S'},
        {"servers-from-node", no_argument, NULL, 'N'}, {"capsule", required_argument, NULL, 'C'},
        {"capsule-key", required_argument, NULL, 'K'}, {"measurement", required_argument, NULL, 'm'},
        {"trust-platform", required_argument, NULL, 'T'}, {"args", required_argument, NULL, 'a'},
        {"args-file", required_argument, NULL, 'F'},   {"job-file", required_argument, NULL, 'j'},
        {"mem-mb", required_argument, NULL, 'M'},      {"insn", required_argument, NULL, 'I'},
        {"timeout", required_argument, NULL, 'D'},     {"wait", no_argument, NULL, 'W'},
        {"json", no_argument, NULL, 'J'},              {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},              {"name", required_argument, NULL, 'f'},
        {"func-file", required_argument, NULL, 'j'},   {NULL, 0, NULL, 0}};
    const char *usage = deploy ? deploy_usage : submit_usage;
    const char *fname = NULL;
    const char *node_urls[NODES_MAX];
    unsigned node_count = 0, trust_count = 0, meas_count = 0;
    uint8_t trust[NODES_MAX][SIGN_PK_SIZE], meas[PSL_MEASUREMENTS_MAX][HASH_SIZE];
    uint64_t workers = 1, mem_mb = 0, insn = 0, timeout_s = 600;
    const char *owner_path = NULL, *servers_path = NULL, *capsule_path = NULL,
               *capsule_key_path = NULL, *args = NULL, *args_file = NULL, *job_file = NULL;
    bool servers_from_node = false;
    struct out_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:w:o:a:qh", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'n':
            ok = node_count < NODES_MAX;
            if (ok)
                node_urls[node_count++] = optarg;
            break;
        case 'w':
            ok = cli_parse_u64(optarg, 1, JOB_WORKERS_MAX, &workers);
            break;
        case 'o':
            owner_path = optarg;
            break;
        case 'S':
            servers_path = optarg;
            break;
        case 'N':
            servers_from_node = true;
            break;
        case 'C':
            capsule_path = optarg;
            break;
        case 'K':
            capsule_key_path = optarg;
            break;
        case 'm':
            ok = meas_count < PSL_MEASUREMENTS_MAX &&
                 hex_decode_exact(meas[meas_count], HASH_SIZE, optarg) == PSL_OK;
            meas_count += ok;
            break;
        case 'T':
            ok = trust_count < NODES_MAX &&
                 hex_decode_exact(trust[trust_count], SIGN_PK_SIZE, optarg) == PSL_OK;
            trust_count += ok;
            break;
        case 'a':
            args = optarg;
            break;
        case 'F':
            args_file = optarg;
            break;
        case 'j':
            job_file = optarg;
            break;
        case 'M':
            ok = cli_parse_u64(optarg, 1, 1u << 20, &mem_mb);
            break;
        case 'I':
            ok = cli_parse_u64(optarg, 1000, UINT64_MAX, &insn);
            break;
        case 'D':
            ok = cli_parse_u64(optarg, 1, 7 * 24 * 3600, &timeout_s);
            break;
        case 'W':
            o.wait = true;
            break;
        case 'J':
            o.json = true;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'f':
            fname = optarg;
            ok = deploy;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_OK;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
        if (!ok) {
            cli_error("invalid value '%s' for --%s; see `psl job submit --help`", optarg,
                      c == 'n' ? "node (at most 16)" : c == 'w' ? "workers (1..256)"
                      : c == 'm' ? "measurement (64 hex digits)"
                      : c == 'T' ? "trust-platform (64 hex digits)" : "an option");
            return EXIT_USAGE;
        }
    }
    if (deploy && (!fname || node_count != 1 || workers != 1 || args || args_file || o.wait)) {
        cli_error("deploy needs SCRIPT, one --node URL, --name NAME and --owner KEYFILE (no "
                  "--workers, --args or --wait); see `psl deploy --help`");
        return EXIT_USAGE;
    }
    if (optind != argc - 1 || !node_count || !owner_path) {
        cli_error("job submit needs SCRIPT, --node URL and --owner KEYFILE; see `psl job submit --help`");
        return EXIT_USAGE;
    }
    int sources = (servers_path != NULL) + servers_from_node + (capsule_path != NULL);
    if (sources != 1 || (capsule_path && !capsule_key_path) || (!capsule_path && capsule_key_path)) {
        cli_error("give exactly one of --servers FILE, --servers-from-node, or --capsule FILE "
                  "with --capsule-key FILE");
        return EXIT_USAGE;
    }
    if (args && args_file) {
        cli_error("give --args or --args-file, not both");
        return EXIT_USAGE;
    }
    if (workers > (uint64_t)node_count * NODE_JOB_WORKERS_MAX) {
        cli_error("%llu workers on %u node(s) is more than %u per node", (unsigned long long)workers,
                  node_count, NODE_JOB_WORKERS_MAX);
        return EXIT_USAGE;
    }
    struct job *J = calloc(1, sizeof *J);
    uint8_t *script = NULL, *args_buf = NULL, *capsule_key = secret_alloc(AEAD_KEY_SIZE);
    uint8_t *exp_buf = NULL;
    size_t script_size = 0, args_size = args ? strlen(args) : 0;
    struct signer owner = {0};
    json_t *st0 = NULL;
    uint8_t **bundles = NULL;
    size_t *bsizes = NULL;
    int rc = EXIT_RUNTIME;
    if (!J || !capsule_key) {
        cli_error("out of memory");
        goto out;
    }
    J->created_ms = clock_wall_ms();
    J->workers = (unsigned)workers;
    J->node_count = node_count;
    for (unsigned k = 0; k < node_count; k++) {
        struct node_ref *n = &J->nodes[k];
        snprintf(n->url, sizeof n->url, "%s", node_urls[k]);
        if (http_url_parse(node_urls[k], &n->u) != PSL_OK) {
            cli_error("--node '%s' is not an http://HOST:PORT URL", node_urls[k]);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    const char *script_path = argv[optind];
    psl_err err = file_read_all(script_path, &script, &script_size);
    if (err) {
        cli_error("cannot read %s: %s", script_path, psl_strerror(err));
        goto out;
    }
    if (script_size == 0 || script_size > PSL_SCRIPT_SIZE_MAX) {
        cli_error("%s: a script must be 1 byte to %u KiB", script_path, PSL_SCRIPT_SIZE_MAX / 1024);
        rc = EXIT_USAGE;
        goto out;
    }
    if (args_file) {
        if ((err = file_read_all(args_file, &args_buf, &args_size))) {
            cli_error("cannot read %s: %s", args_file, psl_strerror(err));
            goto out;
        }
        args = (const char *)args_buf;
    }
    if (args_size > PSL_ARGS_SIZE_MAX) {
        cli_error("the args are %zu bytes; at most %u are allowed", args_size, PSL_ARGS_SIZE_MAX);
        rc = EXIT_USAGE;
        goto out;
    }
    const char *name = strrchr(script_path, '/');
    name = name ? name + 1 : script_path;
    snprintf(J->script, sizeof J->script, "%s", name);
    if ((err = load_signer(owner_path, &owner))) {
        cli_error("cannot load owner key %s: %s", owner_path,
                  err == PSL_ERR_INVALID_ARG ? "file is readable by others (chmod 600)" : psl_strerror(err));
        goto out;
    }
    /* The nodes: platform keys (pinned or trusted on first use) and measurements. */
    for (unsigned k = 0; k < node_count; k++) {
        struct node_ref *n = &J->nodes[k];
        if ((rc = node_status(n, k == 0 ? &st0 : NULL)))
            goto out;
        rc = EXIT_RUNTIME;
        char pk[2 * SIGN_PK_SIZE + 1];
        hex_encode(pk, n->platform_pk, SIGN_PK_SIZE);
        if (trust_count) {
            bool ok = false;
            for (unsigned t = 0; t < trust_count; t++)
                ok |= memcmp(trust[t], n->platform_pk, SIGN_PK_SIZE) == 0;
            if (!ok) {
                cli_error("node %s presents platform key %s, which no --trust-platform names; "
                          "refusing it", n->url, pk);
                rc = EXIT_VERIFY_FAILED;
                goto out;
            }
        } else if (!o.json || !o.quiet) {
            fprintf(stderr, "psl: TRUST ON FIRST USE: node %s platform key %s (sim: no hardware "
                            "protection); pin it with --trust-platform %s\n", n->url, pk, pk);
        }
    }
    /* The capsule. */
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size = 0;
    if (capsule_path) {
        struct export_view view;
        struct capsule_meta m;
        if ((rc = cli_load_export(capsule_path, &exp_buf, &view, &m)))
            goto out;
        rc = EXIT_RUNTIME;
        memcpy(meta_raw, view.meta, view.meta_size);
        meta_size = view.meta_size;
        export_view_free(&view);
        if (memcmp(m.owner_pk, owner.pk, SIGN_PK_SIZE) != 0) {
            cli_error("%s is not owned by %s: give the capsule's owner key", capsule_path, owner_path);
            rc = EXIT_USAGE;
            goto out;
        }
        if ((err = keyfile_read(capsule_key_path, KEYFILE_CAPSULE, capsule_key))) {
            cli_error("cannot load capsule key %s: %s", capsule_key_path,
                      err == PSL_ERR_INVALID_ARG ? "file is readable by others (chmod 600)" : psl_strerror(err));
            goto out;
        }
        snprintf(J->key_file, sizeof J->key_file, "%s", capsule_key_path);
    } else {
        uint8_t pks[PSL_REPLICAS_MAX][SIGN_PK_SIZE];
        unsigned count = 0, quorum = 0;
        if (servers_path) {
            if ((rc = read_servers(servers_path, pks, &count, &quorum)))
                goto out;
            rc = EXIT_RUNTIME;
        } else {
            json_t *sv = json_object_get(st0, "servers");
            for (size_t s = 0; json_is_array(sv) && s < json_array_size(sv) && count < PSL_REPLICAS_MAX; s++) {
                json_t *e = json_array_get(sv, s);
                if (json_is_string(e) && hex_decode_exact(pks[count], SIGN_PK_SIZE, json_string_value(e)) == PSL_OK)
                    count++;
            }
            if (!count) {
                cli_error("node %s embeds no storage servers; give --servers FILE", J->nodes[0].url);
                rc = EXIT_USAGE;
                goto out;
            }
            if (!o.quiet)
                fprintf(stderr, "psl: using the %u storage servers embedded in node %s as the "
                                "replica set (as that node reports them)\n", count, J->nodes[0].url);
        }
        if (!meas_count) {
            for (unsigned k = 0; k < node_count && meas_count < PSL_MEASUREMENTS_MAX; k++) {
                bool seen = false;
                for (unsigned m = 0; m < meas_count; m++)
                    seen |= memcmp(meas[m], J->nodes[k].measurement, HASH_SIZE) == 0;
                if (seen)
                    continue;
                memcpy(meas[meas_count++], J->nodes[k].measurement, HASH_SIZE);
                char mh[2 * HASH_SIZE + 1];
                hex_encode(mh, J->nodes[k].measurement, HASH_SIZE);
                if (!o.quiet)
                    fprintf(stderr, "psl: admitting enclave measurement %s as node %s reports it; "
                                    "pin it with --measurement\n", mh, J->nodes[k].url);
            }
        }
        char label[PSL_LABEL_SIZE_MAX + 1];
        snprintf(label, sizeof label, "psl job %s", name);
        struct jobclient_capsule_spec spec = {.label = label,
                                              .replicas = (const uint8_t(*)[SIGN_PK_SIZE])pks,
                                              .replica_count = count,
                                              .quorum_k = quorum,
                                              .measurements = (const uint8_t(*)[HASH_SIZE])meas,
                                              .measurement_count = meas_count};
        if ((err = jobclient_capsule_new(&owner, &spec, meta_raw, sizeof meta_raw, &meta_size))) {
            cli_error("cannot create the capsule: %s", psl_strerror(err));
            goto out;
        }
        rng_bytes(capsule_key, AEAD_KEY_SIZE);
    }
    if ((err = jobclient_init(&J->c, meta_raw, meta_size, capsule_key, J->workers))) {
        cli_error("the capsule does not verify: %s", psl_strerror(err));
        rc = EXIT_VERIFY_FAILED;
        goto out;
    }
    char cap16[17];
    cli_short(J->c.meta.name, cap16);
    if (job_file)
        snprintf(J->path, sizeof J->path, "%s", job_file);
    else if (deploy)
        snprintf(J->path, sizeof J->path, "psl-func-%.63s.json", fname);
    else
        snprintf(J->path, sizeof J->path, "psl-job-%s.json", cap16);
    if (deploy) {
        snprintf(J->function, sizeof J->function, "%s", fname);
        snprintf(J->owner_file, sizeof J->owner_file, "%s", owner_path);
    }
    {
        char base[1024];
        snprintf(base, sizeof base, "%s", J->path);
        size_t bl = strlen(base);
        if (bl > 5 && !strcmp(base + bl - 5, ".json"))
            base[bl - 5] = '\0';
        snprintf(J->export_path, sizeof J->export_path, "%.1000s.pslx", base);
        if (!capsule_path) {
            snprintf(J->key_file, sizeof J->key_file, "%.1000s.capsule.key", base);
            if ((err = keyfile_write(J->key_file, KEYFILE_CAPSULE, capsule_key, NULL))) {
                cli_error("cannot write the capsule key file %s: %s%s", J->key_file, psl_strerror(err),
                          err == PSL_ERR_EXISTS ? " (choose another --job-file)" : "");
                goto out;
            }
        }
    }
    if (access(J->path, F_OK) == 0) {
        cli_error("the job file %s exists; psl never overwrites one (pick another with --job-file)",
                  J->path);
        goto out;
    }
    for (unsigned t = 0; t < node_count; t++)
        if (jobclient_trust_platform(&J->c, J->nodes[t].platform_pk) != PSL_OK) {
            cli_error("too many platform keys");
            goto out;
        }
    /* Workers round-robin over the nodes. */
    for (unsigned i = 0; i < J->workers; i++) {
        struct node_ref *n = &J->nodes[i % node_count];
        J->w_node[i] = i % node_count;
        J->w_slot[i] = n->slots;
        n->workers[n->slots++] = i;
    }
    struct jobclient_job job = {.name = name,
                                .script = script,
                                .script_size = script_size,
                                .args = (const uint8_t *)args,
                                .args_size = args_size,
                                .mem_bytes = mem_mb << 20,
                                .insn_budget = insn,
                                .mode = deploy ? PROVISION_MODE_FUNCTION : PROVISION_MODE_JOB};
    bundles = calloc(NODE_JOB_WORKERS_MAX, sizeof *bundles);
    bsizes = calloc(NODE_JOB_WORKERS_MAX, sizeof *bsizes);
    if (!bundles || !bsizes)
        goto out;
    bool refused_any = false;
    for (unsigned k = 0; k < node_count; k++) {
        struct node_ref *n = &J->nodes[k];
        if (!n->slots)
            continue;
        json_t *nonces = json_array(), *idx = json_array();
        for (unsigned s = 0; s < n->slots; s++) {
            json_array_append_new(nonces, jhex(J->c.w[n->workers[s]].nonce, ATTEST_NONCE_SIZE));
            json_array_append_new(idx, json_integer(n->workers[s]));
        }
        json_t *body = json_pack("{s:o,s:i,s:o,s:I}", "capsule", jb64(meta_raw, meta_size),
                                 "workers", (json_int_t)n->slots, "nonces", nonces, "timeout_s",
                                 (json_int_t)timeout_s);
        if (deploy) {
            json_object_set_new(body, "name", json_string(fname));
            json_decref(idx);
        } else {
            json_object_set_new(body, "worker_indices", idx);
        }
        char why[300];
        json_t *r;
        unsigned status = api(n, "POST", deploy ? "/v1/functions" : "/v1/jobs", body,
                              CREATE_TIMEOUT_MS, &r, why, sizeof why);
        json_decref(body);
        if (status != 201) {
            cli_error("%s", why);
            goto out;
        }
        json_t *jid = json_object_get(r, "id"), *att = json_object_get(r, "attestations"),
               *errs = json_object_get(r, "errors");
        if (!json_is_string(jid) || json_string_length(jid) != 32 || !json_is_array(att) ||
            json_array_size(att) != n->slots) {
            cli_error("node %s answered POST /v1/jobs without an id or %u attestations", n->url,
                      n->slots);
            json_decref(r);
            goto out;
        }
        snprintf(n->job, sizeof n->job, "%s", json_string_value(jid));
        for (unsigned s = 0; s < n->slots; s++) {
            unsigned i = n->workers[s];
            json_t *a = json_array_get(att, s);
            uint8_t *msg = NULL;
            size_t msg_size = 0;
            bundles[s] = NULL;
            if (!json_is_string(a)) {
                json_t *e = json_array_get(errs, s);
                snprintf(J->w_err[i], sizeof J->w_err[i], "node %s: %s", n->url,
                         json_is_string(e) ? json_string_value(e) : "no attestation");
                continue;
            }
            if (b64_decode_alloc(json_string_value(a), json_string_length(a), ATTEST_MSG_SIZE_MAX,
                                 &msg, &msg_size) != PSL_OK) {
                snprintf(J->w_err[i], sizeof J->w_err[i], "attestation refused: not base64");
                refused_any = true;
                continue;
            }
            err = jobclient_admit(&J->c, &owner, i, msg, msg_size, &job, &bundles[s], &bsizes[s],
                                  J->w_err[i], sizeof J->w_err[i]);
            free(msg);
            if (err) {
                refused_any |= psl_err_is_auth(err);
                if (!o.json)
                    fprintf(stderr, "psl: worker %u on %s: %s\n", i, n->url, J->w_err[i]);
            }
        }
        json_decref(r);
        rc = provision_node(n, bundles, bsizes);
        for (unsigned s = 0; s < n->slots; s++) {
            free(bundles[s]);
            bundles[s] = NULL;
        }
        if (rc)
            goto out;
        rc = EXIT_RUNTIME;
    }
    if (deploy) {
        rc = deploy_finish(J, refused_any, &o);
        goto out;
    }
    if ((rc = job_file_write(J, true)))
        goto out;
    if (!o.json && !o.quiet)
        fprintf(stderr, "psl: job submitted: %u worker%s on %u node%s; job file %s\n", J->workers,
                J->workers == 1 ? "" : "s", node_count, node_count == 1 ? "" : "s", J->path);
    if (!o.wait) {
        if (o.json) {
            char hex[2 * HASH_SIZE + 1];
            hex_encode(hex, J->c.meta.name, HASH_SIZE);
            json_t *out = json_pack("{s:s,s:s,s:i,s:s}", "job_file", J->path, "capsule", hex,
                                    "workers", (json_int_t)J->workers, "capsule_key_file",
                                    J->key_file);
            char *text = json_dumps(out, JSON_COMPACT);
            if (text)
                puts(text);
            free(text);
            json_decref(out);
        } else {
            printf("%s\n", J->path);
        }
        rc = refused_any ? EXIT_VERIFY_FAILED : EXIT_OK;
        goto out;
    }
    rc = follow(J, &o);
    if (refused_any && rc != EXIT_RUNTIME)
        rc = EXIT_VERIFY_FAILED;
out:
    if (J) {
        for (unsigned i = 0; i < J->workers; i++)
            free(J->ws[i].result);
        jobclient_deinit(&J->c);
    }
    if (bundles)
        for (unsigned s = 0; s < NODE_JOB_WORKERS_MAX; s++)
            free(bundles[s]);
    free(bundles);
    free(bsizes);
    json_decref(st0);
    signer_deinit(&owner);
    secret_free(capsule_key);
    free(exp_buf);
    free(script);
    free(args_buf);
    free(J);
    return rc;
}

/* ---- psl job status ---- */

static const char status_usage[] =
    "Usage: psl job status JOBFILE [--wait] [--json] [--quiet]\n"
    "\n"
    "Asks the nodes of a submitted job how its workers are doing, opens and verifies every result\n"
    "that has come back (signed by the enclave certified for that worker, sealed to this client),\n"
    "and once every worker has ended, exports the capsule through a node and verifies it with the\n"
    "capsule key. A worker on a node that does not answer is reported as failed, with the node.\n"
    "  --wait    poll until every worker has ended\n"
    "  --json    one JSON object (the fields of `psl run --json`, plus status and job_file)\n"
    "  -q, --quiet  no progress, no lambda log lines\n"
    "Exit status: 0 no worker failed (yet) and everything verified; 1 a result or the capsule did\n"
    "not verify; 2 usage; 3 runtime error; 4 a worker failed.\n";

static int job_status(int argc, char **argv)
{
    static const struct option opts[] = {{"wait", no_argument, NULL, 'W'},
                                         {"json", no_argument, NULL, 'J'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct out_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'W':
            o.wait = true;
            break;
        case 'J':
            o.json = true;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'h':
            fputs(status_usage, stdout);
            return EXIT_OK;
        default:
            fputs(status_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("job status needs exactly one JOBFILE; see `psl job status --help`");
        return EXIT_USAGE;
    }
    struct job *J = calloc(1, sizeof *J);
    if (!J) {
        cli_error("out of memory");
        return EXIT_RUNTIME;
    }
    int rc = job_file_read(J, argv[optind]);
    if (!rc) {
        char base[1024];
        snprintf(base, sizeof base, "%s", J->path);
        size_t bl = strlen(base);
        if (bl > 5 && !strcmp(base + bl - 5, ".json"))
            base[bl - 5] = '\0';
        snprintf(J->export_path, sizeof J->export_path, "%.1000s.pslx", base);
        rc = follow(J, &o);
    }
    for (unsigned i = 0; i < J->workers; i++)
        free(J->ws[i].result);
    jobclient_deinit(&J->c);
    free(J);
    return rc;
}

int cmd_job(int argc, char **argv)
{
    static const char usage[] =
        "Usage: psl job submit SCRIPT --node URL ...   run a job on psl-nodes\n"
        "       psl job status JOBFILE [--wait]          follow it and verify its results\n"
        "Run `psl job submit --help` or `psl job status --help` for the options.\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "submit"))
        return job_submit(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "status"))
        return job_status(argc - 1, argv + 1);
    cli_error("unknown job command '%s'; use submit or status", argv[1]);
    return EXIT_USAGE;
}

/* ---- psl status ---- */

static const char node_status_usage[] =
    "Usage: psl status --node URL [--json]\n"
    "\n"
    "Shows a psl-node's status: its platform key (what --trust-platform pins), TEE, enclave\n"
    "measurement, pool of enclaves, jobs by state, and embedded storage servers' public keys.\n";

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'J'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            url = optarg;
            break;
        case 'J':
            json = true;
            break;
        case 'h':
            fputs(node_status_usage, stdout);
            return EXIT_OK;
        default:
            fputs(node_status_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!url || optind != argc) {
        cli_error("status needs --node URL; see `psl status --help`");
        return EXIT_USAGE;
    }
    struct node_ref n = {0};
    snprintf(n.url, sizeof n.url, "%s", url);
    if (http_url_parse(url, &n.u) != PSL_OK) {
        cli_error("--node '%s' is not an http://HOST:PORT URL", url);
        return EXIT_USAGE;
    }
    json_t *o;
    int rc = node_status(&n, &o);
    if (rc)
        return rc;
    if (json) {
        char *text = json_dumps(o, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
        json_decref(o);
        return EXIT_OK;
    }
    json_t *pool = json_object_get(o, "pool"), *jobs = json_object_get(o, "jobs"),
           *sv = json_object_get(o, "servers");
    printf("node        %s (%s)\n", jstr(o, "node"), url);
    printf("platform    %s\n", jstr(o, "platform_pk"));
    printf("tee         %s\n", jstr(o, "tee"));
    printf("measurement %s\n", jstr(o, "measurement"));
    printf("fabric      %s\n", jstr(o, "fabric"));
    printf("enclaves    %lld idle, %lld busy (%lld started, %lld idle ones died)\n",
           (long long)json_integer_value(json_object_get(pool, "idle")),
           (long long)json_integer_value(json_object_get(pool, "busy")),
           (long long)json_integer_value(json_object_get(pool, "started")),
           (long long)json_integer_value(json_object_get(pool, "died_idle")));
    printf("jobs        %lld attesting, %lld running, %lld done, %lld failed\n",
           (long long)json_integer_value(json_object_get(jobs, "attesting")),
           (long long)json_integer_value(json_object_get(jobs, "running")),
           (long long)json_integer_value(json_object_get(jobs, "done")),
           (long long)json_integer_value(json_object_get(jobs, "failed")));
    for (size_t s = 0; json_is_array(sv) && s < json_array_size(sv); s++)
        printf("server      %s\n", json_is_string(json_array_get(sv, s)) ? json_string_value(json_array_get(sv, s)) : "?");
    json_decref(o);
    return EXIT_OK;
}

/* ---- psl deploy, psl invoke ---- */

int cmd_deploy(int argc, char **argv)
{
    return job_submit(argc, argv, true);
}

static const char invoke_usage[] =
    "Usage: psl invoke NAME|FUNCFILE [--args STRING] [--node URL] [--owner KEYFILE] [--json]\n"
    "\n"
    "Invokes a deployed function: the arguments are signed by the owner key and sealed to the\n"
    "function's enclave (as `psl deploy` certified it); the node relays them and the answer, which\n"
    "is sealed to a fresh key of this call and must be signed by that enclave. The handler's\n"
    "writes are durable when the answer arrives. NAME stands for psl-func-NAME.json.\n"
    "\n"
    "  -a, --args STRING       passed to the script's handle(args)\n"
    "  -n, --node URL          the node (default: the one in the function file)\n"
    "  -o, --owner KEYFILE     the owner key (default: the one the function file names)\n"
    "      --save-request FILE write the request body to FILE as well (tests: replays)\n"
    "      --json              print {verified, ok, result|error, id}\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit status: 0 the handler returned and its answer verified; 1 the answer did not verify;\n"
    "2 usage; 3 runtime error (the node unreachable, ...); 4 the handler failed or the enclave\n"
    "refused the invocation.\n";

int cmd_invoke(int argc, char **argv)
{
    static const struct option opts[] = {
        {"args", required_argument, NULL, 'a'},         {"node", required_argument, NULL, 'n'},
        {"owner", required_argument, NULL, 'o'},        {"json", no_argument, NULL, 'J'},
        {"save-request", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *args = "", *node_url = NULL, *owner_path = NULL, *save = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:n:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            args = optarg;
            break;
        case 'n':
            node_url = optarg;
            break;
        case 'o':
            owner_path = optarg;
            break;
        case 'J':
            json = true;
            break;
        case 'S':
            save = optarg;
            break;
        case 'h':
            fputs(invoke_usage, stdout);
            return EXIT_OK;
        default:
            fputs(invoke_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("invoke needs NAME or FUNCFILE; see `psl invoke --help`");
        return EXIT_USAGE;
    }
    if (strlen(args) > PSL_ARGS_SIZE_MAX) {
        cli_error("the args are more than %u bytes", PSL_ARGS_SIZE_MAX);
        return EXIT_USAGE;
    }
    char path[1024];
    const char *arg = argv[optind];
    if (access(arg, F_OK) == 0 || strchr(arg, '/'))
        snprintf(path, sizeof path, "%s", arg);
    else
        snprintf(path, sizeof path, "psl-func-%.900s.json", arg);
    struct job *J = calloc(1, sizeof *J);
    struct signer owner = {0};
    struct jobclient_invocation inv = {0};
    struct jobclient_result res = {0};
    json_t *body = NULL, *r = NULL;
    uint8_t *sealed = NULL;
    size_t sealed_size = 0;
    int rc = EXIT_RUNTIME;
    if (!J) {
        cli_error("out of memory");
        return EXIT_RUNTIME;
    }
    if ((rc = job_file_read(J, path)))
        goto out;
    rc = EXIT_RUNTIME;
    if (!J->function[0] || !J->c.w[0].certified) {
        cli_error("%s is a job file, not a function file (psl deploy writes those)", path);
        rc = EXIT_USAGE;
        goto out;
    }
    struct node_ref *n = &J->nodes[0];
    if (node_url) {
        snprintf(n->url, sizeof n->url, "%s", node_url);
        if (http_url_parse(node_url, &n->u) != PSL_OK) {
            cli_error("--node '%s' is not an http://HOST:PORT URL", node_url);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    const char *op = owner_path ? owner_path : J->owner_file;
    psl_err err = load_signer(op, &owner);
    if (err) {
        cli_error("cannot load owner key %s: %s", op,
                  err == PSL_ERR_INVALID_ARG ? "file is readable by others (chmod 600)"
                                             : psl_strerror(err));
        goto out;
    }
    if ((err = jobclient_invoke_seal(&owner, J->enclave_kx_pk, (const uint8_t *)args,
                                     strlen(args), &inv))) {
        cli_error("cannot seal the invocation: %s", psl_strerror(err));
        goto out;
    }
    body = json_pack("{s:o,s:o}", "id", jhex(inv.id, INVOKE_ID_SIZE), "invocation",
                     jb64(inv.sealed, inv.sealed_size));
    if (save && json_dump_file(body, save, JSON_COMPACT) != 0) {
        cli_error("cannot write %s", save);
        goto out;
    }
    char url[160], why[400];
    snprintf(url, sizeof url, "/v1/functions/%s/invoke", J->function);
    unsigned status = api(n, "POST", url, body, CREATE_TIMEOUT_MS, &r, why, sizeof why);
    if (status != 200) {
        cli_error("function %s: %s", J->function, why);
        rc = status == 409 ? EXIT_JOB_FAILED : EXIT_RUNTIME;
        goto out;
    }
    json_t *jr = json_object_get(r, "result");
    psl_err inv_err = err_by_name(jstr(r, "err"));
    if (!json_is_string(jr) ||
        b64_decode_alloc(json_string_value(jr), json_string_length(jr), PSL_RESULT_SIZE_MAX,
                         &sealed, &sealed_size) != PSL_OK) {
        cli_error("function %s: the node's answer has no sealed result", J->function);
        rc = EXIT_VERIFY_FAILED;
        goto out;
    }
    jobclient_invoke_open(&inv, &J->c.meta, J->c.w[0].cert.sign_pk, inv_err, sealed, sealed_size,
                          &res);
    rc = !res.verified ? EXIT_VERIFY_FAILED : res.ok ? EXIT_OK : EXIT_JOB_FAILED;
    if (json) {
        json_error_t jerr;
        json_t *val = res.ok && res.text ? json_loads(res.text, JSON_DECODE_ANY, &jerr) : NULL;
        json_t *out = json_pack("{s:b,s:b,s:o}", "verified", res.verified, "ok", res.ok, "id",
                                jhex(inv.id, INVOKE_ID_SIZE));
        if (res.ok)
            json_object_set_new(out, "result", val ? val : json_null());
        else
            json_object_set_new(out, "error", json_string(res.verified && res.text ? res.text
                                                                                   : res.why));
        char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text)
            puts(text);
        free(text);
        json_decref(out);
    } else if (!res.verified) {
        cli_error("function %s: %s", J->function, res.why);
    } else if (res.ok) {
        printf("%s\n", res.text ? res.text : "null");
    } else {
        cli_error("function %s failed: %s", J->function, res.text ? res.text : "?");
    }
out:
    jobclient_result_free(&res);
    jobclient_invocation_free(&inv);
    free(sealed);
    json_decref(body);
    json_decref(r);
    signer_deinit(&owner);
    if (J)
        jobclient_deinit(&J->c);
    free(J);
    return rc;
}
