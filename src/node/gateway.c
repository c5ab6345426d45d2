/* gateway.c: the HTTP API of psl-node (see gateway.h, docs/api.md). Each connection runs on its
 * own libmicrohttpd thread; a request body is collected into a buffer bounded by
 * GATEWAY_BODY_SIZE_MAX (a Content-Length over it is refused at once, a body that grows past it
 * is discarded and refused), then parsed and validated field by field before anything reaches
 * the job host. Handlers never start enclaves themselves (the pool thread does). */
#include "node/gateway.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/bytes.h"
#include "base/log.h"
#include "capsule/export.h"
#include "capsuled/client.h"
#include "client/b64.h"
#include "client/jobclient.h"

#define EXPORT_TIMEOUT_MS 10000
#define METRICS_SIZE_MAX 16384u

struct gateway {
    struct gateway_config cfg;
    struct MHD_Daemon *d;
    uint16_t port;
    _Atomic uint64_t requests, rejected_4xx, errors_5xx, too_large;
    /* Invocations of deployed functions: answered (a sealed result), refused by the enclave
     * (busy, forged, replayed), failed at the node (no function, dead enclave, timeout), and
     * the time the answered ones took at the node. */
    _Atomic uint64_t invocations, invocations_refused, invocations_failed, invoke_ns_sum;
    _Atomic uint64_t functions_deployed;
};

/* Per-request state: the body collected so far. */
struct req {
    uint8_t *body;
    size_t size, cap;
    bool too_large;
};

/* ---- responses ---- */

static enum MHD_Result send_text(struct gateway *g, struct MHD_Connection *c, unsigned status,
                                 const char *type, char *text, size_t size, bool take)
{
    atomic_fetch_add_explicit(&g->requests, 1, memory_order_relaxed);
    if (status >= 400 && status < 500)
        atomic_fetch_add_explicit(&g->rejected_4xx, 1, memory_order_relaxed);
    else if (status >= 500)
        atomic_fetch_add_explicit(&g->errors_5xx, 1, memory_order_relaxed);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        size, text, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (take)
            free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, POST");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Sends o (taken) as JSON. */
static enum MHD_Result send_json(struct gateway *g, struct MHD_Connection *c, unsigned status,
                                 json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl) {
        text = withnl;
        text[n++] = '\n';
        text[n] = '\0';
    }
    return send_text(g, c, status, "application/json", text, n, true);
}

static enum MHD_Result send_error(struct gateway *g, struct MHD_Connection *c, unsigned status,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(struct gateway *g, struct MHD_Connection *c, unsigned status,
                                  const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    LOG_INFO("gateway", "msg=\"request refused\" status=%u why=\"%s\"", status, msg);
    return send_json(g, c, status, json_pack("{s:s}", "error", msg));
}

static json_t *json_hex(const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    if (n > 64)
        return json_null();
    hex_encode(hex, b, n);
    return json_string(hex);
}

static json_t *json_b64(const uint8_t *b, size_t n)
{
    char *s = b64_encode_alloc(b, n);
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* ---- validation of client JSON ---- */

/* Checks that o has only the allowed keys; names the first other one in why. */
static bool only_keys(json_t *o, const char *const *allowed, char *why, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(key, *a) == 0;
        if (!ok) {
            snprintf(why, cap, "unknown field '%.64s'", key);
            return false;
        }
    }
    return true;
}

/* An integer field in [min, max]; missing is allowed when dflt is given (>= 0). */
static bool get_int(json_t *o, const char *name, json_int_t min, json_int_t max, json_int_t dflt,
                    json_int_t *out, char *why, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (!v && dflt >= 0) {
        *out = dflt;
        return true;
    }
    if (!v) {
        snprintf(why, cap, "missing field '%s' (an integer %lld..%lld)", name, (long long)min,
                 (long long)max);
        return false;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(why, cap, "field '%s' must be an integer %lld..%lld", name, (long long)min,
                 (long long)max);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* Decodes a base64 string value into a malloc'd buffer of at most size_max bytes. */
static bool get_b64(json_t *v, const char *what, size_t size_max, uint8_t **out, size_t *out_size,
                    char *why, size_t cap)
{
    if (!json_is_string(v)) {
        snprintf(why, cap, "%s must be a base64 string", what);
        return false;
    }
    psl_err err = b64_decode_alloc(json_string_value(v), json_string_length(v), size_max, out,
                                   out_size);
    if (err == PSL_ERR_TOO_LARGE)
        snprintf(why, cap, "%s is larger than %zu bytes", what, size_max);
    else if (err)
        snprintf(why, cap, "%s is not valid base64", what);
    return err == PSL_OK;
}

/* Parses the request body as a JSON object. */
static json_t *parse_body(const struct req *r, char *why, size_t cap)
{
    if (!r->size) {
        snprintf(why, cap, "the request needs a JSON body");
        return NULL;
    }
    json_error_t jerr;
    json_t *o = json_loadb((const char *)r->body, r->size, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        snprintf(why, cap, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(why, cap, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

static unsigned status_of(psl_err err)
{
    switch (err) {
    case PSL_ERR_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case PSL_ERR_EXISTS:
        return MHD_HTTP_CONFLICT;
    case PSL_ERR_BUSY:
    case PSL_ERR_TIMEOUT:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case PSL_ERR_NOMEM:
    case PSL_ERR_IO:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    case PSL_ERR_ATTEST_MEASUREMENT:
    case PSL_ERR_NOT_REPLICA:
        return MHD_HTTP_UNPROCESSABLE_CONTENT;
    default:
        return MHD_HTTP_BAD_REQUEST;
    }
}

/* ---- handlers ---- */

/* A function name: 1..JOBHOST_FUNCTION_NAME_SIZE_MAX of [A-Za-z0-9._-] (it appears in URLs). */
static bool valid_function_name(const char *s, size_t n)
{
    if (n < 1 || n > JOBHOST_FUNCTION_NAME_SIZE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* POST /v1/jobs, and POST /v1/functions (function: the body also names the function; one
 * worker, whose enclave serves invocations once provisioned). */
static enum MHD_Result post_jobs(struct gateway *g, struct MHD_Connection *c, const struct req *r,
                                 bool function)
{
    char why[256];
    json_t *o = parse_body(r, why, sizeof why);
    if (!o)
        return send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
    static const char *const job_keys[] = {"capsule", "workers", "nonces", "worker_indices",
                                           "timeout_s", NULL};
    static const char *const fn_keys[] = {"name", "capsule", "workers", "nonces", "timeout_s",
                                          NULL};
    const char *const *keys = function ? fn_keys : job_keys;
    json_t *jname = json_object_get(o, "name");
    enum MHD_Result ret;
    uint8_t *meta = NULL;
    size_t meta_size = 0;
    uint8_t(*nonces)[ATTEST_NONCE_SIZE] = NULL;
    unsigned indices[JOBHOST_WORKERS_MAX];
    struct jobhost_attestation *att = NULL;
    json_int_t workers, timeout_s;
    json_t *jn, *ji;
    if (!only_keys(o, keys, why, sizeof why) ||
        !get_int(o, "workers", 1, function ? 1 : JOBHOST_WORKERS_MAX, function ? 1 : -1, &workers,
                 why, sizeof why) ||
        !get_int(o, "timeout_s", 1, JOBHOST_TIMEOUT_MS_MAX / 1000, 0, &timeout_s, why,
                 sizeof why))
        goto bad;
    if (function && (!json_is_string(jname) ||
                     !valid_function_name(json_string_value(jname), json_string_length(jname)))) {
        snprintf(why, sizeof why, "field 'name' must be 1..%u characters of A-Z a-z 0-9 . _ -",
                 JOBHOST_FUNCTION_NAME_SIZE_MAX);
        goto bad;
    }
    if (!json_object_get(o, "capsule")) {
        snprintf(why, sizeof why, "missing field 'capsule' (the capsule metadata, base64)");
        goto bad;
    }
    if (!get_b64(json_object_get(o, "capsule"), "'capsule'", META_SIZE_MAX, &meta, &meta_size, why,
                 sizeof why))
        goto bad;
    jn = json_object_get(o, "nonces");
    if (!json_is_array(jn) || json_array_size(jn) != (size_t)workers) {
        snprintf(why, sizeof why, "field 'nonces' must be an array of %lld hex strings (one per worker)",
                 (long long)workers);
        goto bad;
    }
    nonces = calloc((size_t)workers, ATTEST_NONCE_SIZE);
    att = calloc((size_t)workers, sizeof *att);
    if (!nonces || !att) {
        ret = send_error(g, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < (size_t)workers; i++) {
        json_t *v = json_array_get(jn, i);
        if (!json_is_string(v) ||
            hex_decode_exact(nonces[i], ATTEST_NONCE_SIZE, json_string_value(v)) != PSL_OK) {
            snprintf(why, sizeof why, "nonces[%zu] must be %u hex digits", i, 2 * ATTEST_NONCE_SIZE);
            goto bad;
        }
    }
    ji = json_object_get(o, "worker_indices");
    if (ji && (!json_is_array(ji) || json_array_size(ji) != (size_t)workers)) {
        snprintf(why, sizeof why, "field 'worker_indices' must be an array of %lld integers",
                 (long long)workers);
        goto bad;
    }
    for (size_t i = 0; ji && i < (size_t)workers; i++) {
        json_t *v = json_array_get(ji, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= JOBCLIENT_WORKERS_MAX) {
            snprintf(why, sizeof why, "worker_indices[%zu] must be an integer 0..%u", i,
                     JOBCLIENT_WORKERS_MAX - 1);
            goto bad;
        }
        indices[i] = (unsigned)json_integer_value(v);
    }
    struct jobhost_create jc = {.meta = meta,
                                .meta_size = meta_size,
                                .workers = (unsigned)workers,
                                .nonces = (const uint8_t(*)[ATTEST_NONCE_SIZE])nonces,
                                .indices = ji ? indices : NULL,
                                .timeout_ms = (uint32_t)timeout_s * 1000u,
                                .function = function ? json_string_value(jname) : NULL};
    uint8_t id[JOBHOST_ID_SIZE];
    psl_err err = jobhost_create(g->cfg.jobhost, &jc, id, att, why, sizeof why);
    if (err) {
        ret = send_error(g, c, status_of(err), "%s", why);
        goto out;
    }
    struct capsule_meta m;
    if (meta_decode(&m, meta, meta_size) != PSL_OK)
        memset(&m, 0, sizeof m); /* decoded by jobhost_create already: cannot fail */
    json_t *arr = json_array(), *errs = json_array();
    for (size_t i = 0; i < (size_t)workers; i++) {
        json_array_append_new(arr, att[i].size ? json_b64(att[i].msg, att[i].size) : json_null());
        json_array_append_new(errs, att[i].size ? json_null() : json_string(att[i].why));
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "id", json_hex(id, JOBHOST_ID_SIZE));
    json_object_set_new(resp, "capsule", json_hex(m.name, HASH_SIZE));
    json_object_set_new(resp, "attestations", arr);
    json_object_set_new(resp, "errors", errs);
    json_object_set_new(resp, "platform_pk", json_hex(g->cfg.platform->pk, SIGN_PK_SIZE));
    json_object_set_new(resp, "measurement", json_hex(g->cfg.measurement, HASH_SIZE));
    json_object_set_new(resp, "tee", json_string(evidence_describe(TEE_SIM)));
    if (function)
        json_object_set_new(resp, "name", json_string(json_string_value(jname)));
    char hex[2 * JOBHOST_ID_SIZE + 1];
    hex_encode(hex, id, JOBHOST_ID_SIZE);
    LOG_INFO("gateway", "msg=\"%s created\" job=%s workers=%lld", function ? "function" : "job",
             hex, (long long)workers);
    ret = send_json(g, c, MHD_HTTP_CREATED, resp);
    goto out;
bad:
    ret = send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
out:
    json_decref(o);
    free(meta);
    free(nonces);
    free(att);
    return ret;
}

static enum MHD_Result post_provision(struct gateway *g, struct MHD_Connection *c,
                                      const uint8_t id[JOBHOST_ID_SIZE], const struct req *r)
{
    char why[256];
    json_t *o = parse_body(r, why, sizeof why);
    if (!o)
        return send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
    static const char *const keys[] = {"bundles", "cancel", "why", NULL};
    uint8_t *bundles[JOBHOST_WORKERS_MAX] = {0};
    size_t sizes[JOBHOST_WORKERS_MAX] = {0};
    size_t n = 0;
    enum MHD_Result ret;
    json_t *jb = json_object_get(o, "bundles"), *jc = json_object_get(o, "cancel"),
           *jw = json_object_get(o, "why");
    if (!only_keys(o, keys, why, sizeof why))
        goto bad;
    if (!json_is_array(jb) || json_array_size(jb) < 1 ||
        json_array_size(jb) > JOBHOST_WORKERS_MAX) {
        snprintf(why, sizeof why,
                 "field 'bundles' must be an array with one entry per worker of the job on this "
                 "node (base64 or null)");
        goto bad;
    }
    if (jc && (!json_is_array(jc) || json_array_size(jc) > JOBHOST_WORKERS_MAX)) {
        snprintf(why, sizeof why, "field 'cancel' must be an array of worker slots");
        goto bad;
    }
    if (jw && (!json_is_string(jw) || json_string_length(jw) > 160)) {
        snprintf(why, sizeof why, "field 'why' must be a string of at most 160 bytes");
        goto bad;
    }
    n = json_array_size(jb);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(jb, i);
        if (json_is_null(v))
            continue;
        char what[32];
        snprintf(what, sizeof what, "bundles[%zu]", i);
        if (!get_b64(v, what, PROVISION_SEALED_SIZE_MAX, &bundles[i], &sizes[i], why, sizeof why))
            goto bad;
    }
    for (size_t i = 0; jc && i < json_array_size(jc); i++) {
        json_t *v = json_array_get(jc, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (size_t)json_integer_value(v) >= n || bundles[json_integer_value(v)]) {
            snprintf(why, sizeof why, "cancel[%zu] must be the slot of a worker given no bundle", i);
            goto bad;
        }
    }
    psl_err err = jobhost_provision(g->cfg.jobhost, id, (const uint8_t *const *)bundles, sizes,
                                    (unsigned)n, why, sizeof why);
    if (err) {
        ret = send_error(g, c, status_of(err), "%s", why);
        goto out;
    }
    for (size_t i = 0; jc && i < json_array_size(jc); i++) {
        unsigned slot = (unsigned)json_integer_value(json_array_get(jc, i));
        if (jobhost_cancel(g->cfg.jobhost, id, slot,
                           jw ? json_string_value(jw) : "refused by the client") != PSL_OK)
            LOG_INFO("gateway", "msg=\"cancel ignored: the slot is not waiting\" slot=%u", slot);
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "id", json_hex(id, JOBHOST_ID_SIZE));
    json_object_set_new(resp, "accepted", json_true());
    ret = send_json(g, c, MHD_HTTP_ACCEPTED, resp);
    goto out;
bad:
    ret = send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
out:
    for (size_t i = 0; i < JOBHOST_WORKERS_MAX; i++)
        free(bundles[i]);
    json_decref(o);
    return ret;
}

/* POST /v1/functions/{name}/invoke: relays a sealed invocation to the function's enclave and
 * its sealed answer back. The node can read neither (DESIGN §7.4). */
static enum MHD_Result post_invoke(struct gateway *g, struct MHD_Connection *c, const char *name,
                                   const struct req *r)
{
    char why[256];
    json_t *o = parse_body(r, why, sizeof why);
    if (!o)
        return send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
    static const char *const keys[] = {"id", "invocation", "timeout_s", NULL};
    enum MHD_Result ret;
    uint8_t *inv = NULL, *result = NULL;
    size_t inv_size = 0, result_size = 0;
    uint8_t inv_id[INVOKE_ID_SIZE], job_id[JOBHOST_ID_SIZE];
    json_int_t timeout_s;
    json_t *jid = json_object_get(o, "id");
    if (!only_keys(o, keys, why, sizeof why) ||
        !get_int(o, "timeout_s", 1, 3600, JOBHOST_INVOKE_TIMEOUT_MS_DEFAULT / 1000, &timeout_s,
                 why, sizeof why))
        goto bad;
    if (!json_is_string(jid) ||
        hex_decode_exact(inv_id, INVOKE_ID_SIZE, json_string_value(jid)) != PSL_OK) {
        snprintf(why, sizeof why, "field 'id' must be the invocation id, %u hex digits",
                 2 * INVOKE_ID_SIZE);
        goto bad;
    }
    if (!json_object_get(o, "invocation")) {
        snprintf(why, sizeof why, "missing field 'invocation' (the sealed invocation, base64)");
        goto bad;
    }
    if (!get_b64(json_object_get(o, "invocation"), "'invocation'", INVOKE_SEALED_SIZE_MAX, &inv,
                 &inv_size, why, sizeof why))
        goto bad;
    psl_err inv_err = PSL_OK;
    uint64_t t0 = clock_mono_ns();
    psl_err err = jobhost_invoke(g->cfg.jobhost, name, inv_id, inv, inv_size,
                                 (uint32_t)timeout_s * 1000u, &inv_err, &result, &result_size,
                                 job_id, why, sizeof why);
    if (err)
        atomic_fetch_add_explicit(&g->invocations_failed, 1, memory_order_relaxed);
    else if (!result_size)
        atomic_fetch_add_explicit(&g->invocations_refused, 1, memory_order_relaxed);
    else {
        atomic_fetch_add_explicit(&g->invocations, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g->invoke_ns_sum, clock_mono_ns() - t0, memory_order_relaxed);
    }
    if (err) {
        ret = send_error(g, c, err == PSL_ERR_PEER_DEAD ? MHD_HTTP_BAD_GATEWAY
                               : err == PSL_ERR_TIMEOUT ? MHD_HTTP_GATEWAY_TIMEOUT
                               : err == PSL_ERR_BUSY    ? MHD_HTTP_TOO_MANY_REQUESTS
                                                        : status_of(err),
                         "%s", why);
        goto out;
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "id", json_hex(inv_id, INVOKE_ID_SIZE));
    json_object_set_new(resp, "job", json_hex(job_id, JOBHOST_ID_SIZE));
    json_object_set_new(resp, "err", json_string(psl_err_name(inv_err)));
    json_object_set_new(resp, "result", result_size ? json_b64(result, result_size) : json_null());
    if (!result_size)
        json_object_set_new(resp, "error",
                            json_pack("s++", "the enclave refused the invocation: ",
                                      psl_err_name(inv_err), ""));
    /* A refused invocation (busy, forged, replayed) is the client's problem: 409 with the
     * enclave's verdict; a handler error still has its sealed result and answers 200. */
    ret = send_json(g, c, result_size ? MHD_HTTP_OK : MHD_HTTP_CONFLICT, resp);
    goto out;
bad:
    ret = send_error(g, c, MHD_HTTP_BAD_REQUEST, "%s", why);
out:
    free(inv);
    free(result);
    json_decref(o);
    return ret;
}

static enum MHD_Result get_job(struct gateway *g, struct MHD_Connection *c,
                               const uint8_t id[JOBHOST_ID_SIZE])
{
    uint64_t log_from = 0;
    const char *lf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "logs_from");
    if (lf) {
        size_t n = strspn(lf, "0123456789");
        if (n == 0 || n > 18 || lf[n])
            return send_error(g, c, MHD_HTTP_BAD_REQUEST,
                              "query logs_from must be a non-negative integer");
        log_from = strtoull(lf, NULL, 10);
    }
    struct jobhost_status st;
    psl_err err = jobhost_status(g->cfg.jobhost, id, true, log_from, GATEWAY_LOG_LINES_PER_GET, &st);
    if (err == PSL_ERR_NOT_FOUND)
        return send_error(g, c, MHD_HTTP_NOT_FOUND, "no such job on this node");
    if (err)
        return send_error(g, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    json_t *o = json_object();
    json_object_set_new(o, "id", json_hex(st.id, JOBHOST_ID_SIZE));
    json_object_set_new(o, "capsule", json_hex(st.capsule, HASH_SIZE));
    json_object_set_new(o, "status", json_string(jobhost_state_name(st.state)));
    json_object_set_new(o, "worker_count", json_integer(st.workers));
    json_object_set_new(o, "elapsed_s", json_real(st.elapsed_s));
    json_object_set_new(o, "run_s", json_real(st.run_s));
    json_t *ws = json_array();
    for (unsigned i = 0; i < st.workers; i++) {
        const struct jobhost_worker_status *w = &st.w[i];
        json_t *e = json_object();
        json_object_set_new(e, "slot", json_integer(i));
        json_object_set_new(e, "index", json_integer(w->index));
        json_object_set_new(e, "state", json_string(jobhost_wstate_name(w->state)));
        json_object_set_new(e, "ops", json_integer((json_int_t)w->stats[RING_STAT_OPS]));
        json_object_set_new(e, "records", json_integer((json_int_t)w->stats[RING_STAT_RECORDS]));
        json_object_set_new(e, "bytes", json_integer((json_int_t)w->stats[RING_STAT_BYTES]));
        json_object_set_new(e, "durable_seq",
                            json_integer((json_int_t)w->stats[RING_STAT_DURABLE_SEQ]));
        json_object_set_new(e, "sealed_seq",
                            json_integer((json_int_t)w->stats[RING_STAT_SEALED_SEQ]));
        json_object_set_new(e, "ops_applied",
                            json_integer((json_int_t)w->stats[RING_STAT_OPS_APPLIED]));
        json_object_set_new(e, "rejected", json_integer((json_int_t)w->stats[RING_STAT_REJECTED]));
        json_object_set_new(e, "error", w->state == W_FAILED ? json_string(w->error) : json_null());
        json_object_set_new(e, "job_err",
                            w->state == W_DONE ? json_string(psl_err_name(w->job_err)) : json_null());
        json_object_set_new(e, "result", w->result ? json_b64(w->result, w->result_size) : json_null());
        json_array_append_new(ws, e);
    }
    json_object_set_new(o, "workers", ws);
    json_t *lines = json_array();
    for (size_t i = 0; i < st.log_count; i++)
        json_array_append_new(lines, json_pack("{s:i,s:o}", "worker", (json_int_t)st.logs[i].index,
                                               "sealed", json_b64(st.logs[i].sealed, st.logs[i].size)));
    json_object_set_new(o, "logs", json_pack("{s:I,s:I,s:o}", "next", (json_int_t)st.log_next,
                                             "dropped", (json_int_t)st.log_dropped, "lines", lines));
    jobhost_status_free(&st);
    return send_json(g, c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_status(struct gateway *g, struct MHD_Connection *c)
{
    struct pool_stats ps;
    struct jobhost_stats js;
    pool_get_stats(g->cfg.pool, &ps);
    jobhost_get_stats(g->cfg.jobhost, &js);
    json_t *o = json_object();
    json_object_set_new(o, "node", json_string(g->cfg.node_id));
    json_object_set_new(o, "platform_pk", json_hex(g->cfg.platform->pk, SIGN_PK_SIZE));
    json_object_set_new(o, "tee", json_string(evidence_describe(TEE_SIM)));
    json_object_set_new(o, "measurement", json_hex(g->cfg.measurement, HASH_SIZE));
    json_object_set_new(o, "fabric", json_string(g->cfg.fabric_name));
    json_t *pool = json_object();
    json_object_set_new(pool, "idle", json_integer(ps.idle));
    json_object_set_new(pool, "busy", json_integer(ps.busy));
    json_object_set_new(pool, "started", json_integer((json_int_t)ps.started));
    json_object_set_new(pool, "start_failures", json_integer((json_int_t)ps.start_failures));
    json_object_set_new(pool, "died_idle", json_integer((json_int_t)ps.died_idle));
    json_object_set_new(pool, "last_failure", ps.last_failure[0] ? json_string(ps.last_failure)
                                                                  : json_null());
    json_object_set_new(o, "pool", pool);
    json_object_set_new(o, "enclaves", json_integer(ps.idle + ps.busy));
    json_t *jobs = json_object();
    for (unsigned s = 0; s < JOB_STATE_COUNT; s++)
        json_object_set_new(jobs, jobhost_state_name((enum jobhost_state)s), json_integer(js.jobs[s]));
    json_object_set_new(o, "jobs", jobs);
    json_t *servers = json_array();
    for (unsigned i = 0; g->cfg.servers && i < g->cfg.servers->count; i++)
        json_array_append_new(servers, json_hex(g->cfg.servers->pks[i], SIGN_PK_SIZE));
    json_object_set_new(o, "servers", servers);
    return send_json(g, c, MHD_HTTP_OK, o);
}

/* Appends to buf[cap] at *n, truncating (cap >= 1). */
static void emit(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n = (size_t)k < cap - *n ? *n + (size_t)k : cap - 1;
}

static size_t metrics_text(struct gateway *g, char *buf, size_t cap)
{
    struct pool_stats ps;
    struct jobhost_stats js;
    pool_get_stats(g->cfg.pool, &ps);
    jobhost_get_stats(g->cfg.jobhost, &js);
    size_t n = 0;
#define EMIT(...) emit(buf, cap, &n, __VA_ARGS__)
    EMIT("# HELP psl_node_enclaves Enclaves alive, by state (idle: pre-forked, busy: in jobs).\n"
         "# TYPE psl_node_enclaves gauge\n"
         "psl_node_enclaves{state=\"idle\"} %u\npsl_node_enclaves{state=\"busy\"} %u\n",
         ps.idle, ps.busy);
    EMIT("# HELP psl_node_enclaves_started_total Enclaves started.\n"
         "# TYPE psl_node_enclaves_started_total counter\npsl_node_enclaves_started_total %" PRIu64 "\n"
         "# HELP psl_node_enclave_start_failures_total Enclave starts that failed.\n"
         "# TYPE psl_node_enclave_start_failures_total counter\n"
         "psl_node_enclave_start_failures_total %" PRIu64 "\n"
         "# HELP psl_node_enclaves_died_idle_total Idle enclaves that died and were replaced.\n"
         "# TYPE psl_node_enclaves_died_idle_total counter\n"
         "psl_node_enclaves_died_idle_total %" PRIu64 "\n",
         ps.started, ps.start_failures, ps.died_idle);
    EMIT("# HELP psl_node_jobs Jobs kept by the node, by state.\n# TYPE psl_node_jobs gauge\n");
    for (unsigned s = 0; s < JOB_STATE_COUNT; s++)
        EMIT("psl_node_jobs{state=\"%s\"} %u\n", jobhost_state_name((enum jobhost_state)s), js.jobs[s]);
    EMIT("# HELP psl_node_jobs_total Jobs by outcome (created, done, failed).\n"
         "# TYPE psl_node_jobs_total counter\n"
         "psl_node_jobs_total{event=\"created\"} %" PRIu64 "\n"
         "psl_node_jobs_total{event=\"done\"} %" PRIu64 "\n"
         "psl_node_jobs_total{event=\"failed\"} %" PRIu64 "\n",
         js.jobs_created, js.jobs_done, js.jobs_failed);
    EMIT("# HELP psl_node_workers_failed_total Workers that ended without a result.\n"
         "# TYPE psl_node_workers_failed_total counter\npsl_node_workers_failed_total %" PRIu64 "\n"
         "# HELP psl_node_provision_refused_total Sealed bundles an enclave refused.\n"
         "# TYPE psl_node_provision_refused_total counter\n"
         "psl_node_provision_refused_total %" PRIu64 "\n",
         js.workers_failed, js.provision_refused);
    EMIT("# HELP psl_node_ops_total Lambda put/del operations of this node's workers.\n"
         "# TYPE psl_node_ops_total counter\npsl_node_ops_total %" PRIu64 "\n"
         "# HELP psl_node_records_total Records sealed by this node's workers.\n"
         "# TYPE psl_node_records_total counter\npsl_node_records_total %" PRIu64 "\n"
         "# HELP psl_node_record_bytes_total Bytes of records sealed by this node's workers.\n"
         "# TYPE psl_node_record_bytes_total counter\npsl_node_record_bytes_total %" PRIu64 "\n"
         "# HELP psl_node_relay_dropped_total Fabric messages dropped at a full enclave ring.\n"
         "# TYPE psl_node_relay_dropped_total counter\npsl_node_relay_dropped_total %" PRIu64 "\n",
         js.ops, js.records, js.bytes, js.relay_dropped);
    EMIT("# HELP psl_node_attest_seconds Attestation of a job's enclaves (POST /v1/jobs).\n"
         "# TYPE psl_node_attest_seconds summary\npsl_node_attest_seconds_sum %.6f\n"
         "psl_node_attest_seconds_count %" PRIu64 "\n"
         "# HELP psl_node_job_run_seconds From the first bundle to the end of a job.\n"
         "# TYPE psl_node_job_run_seconds summary\npsl_node_job_run_seconds_sum %.6f\n"
         "psl_node_job_run_seconds_count %" PRIu64 "\n",
         (double)js.attest_ns_sum / 1e9, js.attest_count, (double)js.run_ns_sum / 1e9,
         js.run_count);
    EMIT("# HELP psl_node_invocations_total Function invocations, by outcome.\n"
         "# TYPE psl_node_invocations_total counter\n"
         "psl_node_invocations_total{outcome=\"answered\"} %" PRIu64 "\n"
         "psl_node_invocations_total{outcome=\"refused\"} %" PRIu64 "\n"
         "psl_node_invocations_total{outcome=\"failed\"} %" PRIu64 "\n"
         "# HELP psl_node_invoke_seconds Answered invocations at the node (relay, run, flush).\n"
         "# TYPE psl_node_invoke_seconds summary\npsl_node_invoke_seconds_sum %.6f\n"
         "psl_node_invoke_seconds_count %" PRIu64 "\n",
         atomic_load(&g->invocations), atomic_load(&g->invocations_refused),
         atomic_load(&g->invocations_failed), (double)atomic_load(&g->invoke_ns_sum) / 1e9,
         atomic_load(&g->invocations));
    EMIT("# HELP psl_node_http_requests_total HTTP requests answered, by class.\n"
         "# TYPE psl_node_http_requests_total counter\n"
         "psl_node_http_requests_total{class=\"all\"} %" PRIu64 "\n"
         "psl_node_http_requests_total{class=\"4xx\"} %" PRIu64 "\n"
         "psl_node_http_requests_total{class=\"5xx\"} %" PRIu64 "\n"
         "# HELP psl_node_http_too_large_total Request bodies refused for their size (413).\n"
         "# TYPE psl_node_http_too_large_total counter\npsl_node_http_too_large_total %" PRIu64 "\n",
         atomic_load(&g->requests), atomic_load(&g->rejected_4xx), atomic_load(&g->errors_5xx),
         atomic_load(&g->too_large));
    if (g->cfg.servers && g->cfg.servers->count) {
        uint64_t received = 0, stored = 0, rejected = 0, acks = 0;
        for (unsigned i = 0; i < g->cfg.servers->count; i++) {
            struct capsuled_stats st;
            capsuled_get_stats(g->cfg.servers->servers[i], &st);
            received += st.received;
            stored += st.accepted;
            acks += st.acks_sent;
            for (unsigned e = 0; e < PSL_ERR__COUNT; e++)
                rejected += st.rejected[e];
        }
        EMIT("# HELP psl_node_server_records_total Records at the embedded storage servers.\n"
             "# TYPE psl_node_server_records_total counter\n"
             "psl_node_server_records_total{event=\"received\"} %" PRIu64 "\n"
             "psl_node_server_records_total{event=\"stored\"} %" PRIu64 "\n"
             "psl_node_server_records_total{event=\"rejected\"} %" PRIu64 "\n"
             "# HELP psl_node_server_acks_total Durable ACKs sent by the embedded servers.\n"
             "# TYPE psl_node_server_acks_total counter\npsl_node_server_acks_total %" PRIu64 "\n",
             received, stored, rejected, acks);
    }
#undef EMIT
    return n;
}

static bool export_take(void *ctx, const uint8_t *rec, size_t size)
{
    export_add(ctx, rec, size);
    return true;
}

/* The capsule as the storage servers hold it (a freshness read), as an export file. The client
 * verifies it: nothing here is trusted, and the node only relays ciphertext and signatures. */
static enum MHD_Result get_export(struct gateway *g, struct MHD_Connection *c,
                                  const uint8_t name[HASH_SIZE])
{
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    struct capsule_meta m;
    if (jobhost_capsule_meta(g->cfg.jobhost, name, meta_raw, sizeof meta_raw, &meta_size) ||
        meta_decode(&m, meta_raw, meta_size))
        return send_error(g, c, MHD_HTTP_NOT_FOUND, "no job on this node used that capsule");
    struct capsule_client *cl;
    struct capsule_client_config cc = {.fabric = g->cfg.fabric, .meta = &m};
    if (capsule_client_open(&cl, &cc) != PSL_OK)
        return send_error(g, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot open a capsule client");
    char *buf = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&buf, &size);
    if (!fp) {
        capsule_client_close(cl);
        return send_error(g, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    struct export_writer x;
    export_begin(&x, fp, meta_raw, meta_size);
    struct fetch_summary sum;
    psl_err err = capsule_client_fetch_all(cl, 0, EXPORT_TIMEOUT_MS, export_take, &x, &sum);
    capsule_client_close(cl);
    psl_err ferr = export_finish(&x);
    fclose(fp);
    if (err || ferr || size > GATEWAY_EXPORT_SIZE_MAX) {
        free(buf);
        return send_error(g, c, err == PSL_ERR_TIMEOUT ? MHD_HTTP_GATEWAY_TIMEOUT
                                                       : MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "the export failed: %s",
                          err ? psl_strerror(err)
                              : size > GATEWAY_EXPORT_SIZE_MAX ? "larger than the node's limit"
                                                               : psl_strerror(ferr));
    }
    atomic_fetch_add_explicit(&g->requests, 1, memory_order_relaxed);
    struct MHD_Response *r = MHD_create_response_from_buffer(size, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "X-Psl-Lag-Bound-Met", sum.lag_bound_met ? "yes" : "no");
    MHD_add_response_header(r, "X-Psl-Complete", sum.complete ? "yes" : "no");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routing ---- */

/* Matches "/v1/<prefix>/<32|64 hex>[<suffix>]": the id decoded into id[n]. */
static bool match_id(const char *url, const char *prefix, const char *suffix, uint8_t *id, size_t n)
{
    size_t pl = strlen(prefix);
    if (strncmp(url, prefix, pl) != 0)
        return false;
    const char *h = url + pl;
    size_t hl = strspn(h, "0123456789abcdefABCDEF");
    if (strcmp(h + hl, suffix) != 0)
        return false;
    char hex[2 * HASH_SIZE + 1];
    if (hl != 2 * n || hl >= sizeof hex)
        return false;
    memcpy(hex, h, hl);
    hex[hl] = '\0';
    return hex_decode(id, n, hex) == PSL_OK;
}

/* Under a known prefix but not a well-formed id: a 404 that says so. */
static bool under(const char *url, const char *prefix)
{
    return strncmp(url, prefix, strlen(prefix)) == 0;
}

static enum MHD_Result route(struct gateway *g, struct MHD_Connection *c, const char *url,
                             const char *method, const struct req *r)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    uint8_t id[HASH_SIZE];
    if (!strcmp(url, "/healthz")) {
        if (!get)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for /healthz");
        return send_text(g, c, MHD_HTTP_OK, "text/plain", "ok\n", 3, false);
    }
    if (!strcmp(url, "/metrics")) {
        if (!get)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for /metrics");
        char *buf = malloc(METRICS_SIZE_MAX);
        if (!buf)
            return MHD_NO;
        size_t n = metrics_text(g, buf, METRICS_SIZE_MAX);
        return send_text(g, c, MHD_HTTP_OK, "text/plain; version=0.0.4", buf, n, true);
    }
    if (!strcmp(url, "/v1/status")) {
        if (!get)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for /v1/status");
        return get_status(g, c);
    }
    if (!strcmp(url, "/v1/jobs")) {
        if (!post)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST for /v1/jobs");
        return post_jobs(g, c, r, false);
    }
    if (match_id(url, "/v1/jobs/", "/provision", id, JOBHOST_ID_SIZE)) {
        if (!post)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST for %s", url);
        return post_provision(g, c, id, r);
    }
    if (match_id(url, "/v1/jobs/", "", id, JOBHOST_ID_SIZE)) {
        if (!get)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for %s", url);
        return get_job(g, c, id);
    }
    if (match_id(url, "/v1/capsules/", "/export", id, HASH_SIZE)) {
        if (!get)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for %s", url);
        return get_export(g, c, id);
    }
    if (!strcmp(url, "/v1/functions")) {
        if (!post)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST for /v1/functions");
        return post_jobs(g, c, r, true);
    }
    if (under(url, "/v1/functions/")) {
        const char *name = url + strlen("/v1/functions/");
        const char *slash = strchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        char fname[JOBHOST_FUNCTION_NAME_SIZE_MAX + 1];
        if (!valid_function_name(name, n) || (slash && strcmp(slash, "/invoke") != 0))
            return send_error(g, c, MHD_HTTP_NOT_FOUND,
                              "no such function path (/v1/functions/NAME/invoke, "
                              "DELETE /v1/functions/NAME)");
        memcpy(fname, name, n);
        fname[n] = '\0';
        if (slash) {
            if (!post)
                return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST for %s", url);
            return post_invoke(g, c, fname, r);
        }
        if (strcmp(method, "DELETE") != 0)
            return send_error(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use DELETE for %s", url);
        if (jobhost_function_stop(g->cfg.jobhost, fname) != PSL_OK)
            return send_error(g, c, MHD_HTTP_NOT_FOUND, "no function named %s runs here", fname);
        json_t *resp = json_object();
        json_object_set_new(resp, "name", json_string(fname));
        json_object_set_new(resp, "stopped", json_true());
        return send_json(g, c, MHD_HTTP_OK, resp);
    }
    if (under(url, "/v1/jobs/"))
        return send_error(g, c, MHD_HTTP_NOT_FOUND,
                          "no such job path: job ids are %u hex digits (/v1/jobs/ID, "
                          "/v1/jobs/ID/provision)", 2 * JOBHOST_ID_SIZE);
    return send_error(g, c, MHD_HTTP_NOT_FOUND,
                      "unknown path %.100s: see docs/api.md (/v1/status, /v1/jobs, /healthz, "
                      "/metrics)", url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct gateway *g = cls;
    (void)version;
    struct req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            size_t n = strspn(cl, "0123456789");
            if (n == 0 || cl[n] || n > 15 || strtoull(cl, NULL, 10) > GATEWAY_BODY_SIZE_MAX) {
                r->too_large = true;
                atomic_fetch_add_explicit(&g->too_large, 1, memory_order_relaxed);
                /* Answer now: the body is never read (the connection closes after this). */
                return send_error(g, c, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "the request body is larger than %u bytes", GATEWAY_BODY_SIZE_MAX);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large) {
            if (*upload_size > GATEWAY_BODY_SIZE_MAX - r->size) {
                r->too_large = true;
                atomic_fetch_add_explicit(&g->too_large, 1, memory_order_relaxed);
                free(r->body);
                r->body = NULL;
                r->size = r->cap = 0;
            } else {
                if (r->size + *upload_size > r->cap) {
                    size_t cap = r->cap ? r->cap : 4096;
                    while (cap < r->size + *upload_size)
                        cap *= 2;
                    if (cap > GATEWAY_BODY_SIZE_MAX)
                        cap = GATEWAY_BODY_SIZE_MAX;
                    uint8_t *nb = realloc(r->body, cap);
                    if (!nb)
                        return MHD_NO;
                    r->body = nb;
                    r->cap = cap;
                }
                memcpy(r->body + r->size, upload, *upload_size);
                r->size += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_large)
        return send_error(g, c, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is larger than %u bytes",
                          GATEWAY_BODY_SIZE_MAX);
    return route(g, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

psl_err gateway_start(struct gateway **out, const struct gateway_config *cfg)
{
    char host[64];
    const char *colon = strrchr(cfg->listen, ':');
    if (!colon || (size_t)(colon - cfg->listen) >= sizeof host)
        return PSL_ERR_INVALID_ARG;
    memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
    host[colon - cfg->listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    if (*end || port < 0 || port > 65535 || !colon[1] || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return PSL_ERR_INVALID_ARG;
    addr.sin_port = htons((uint16_t)port);
    struct gateway *g = calloc(1, sizeof *g);
    if (!g)
        return PSL_ERR_NOMEM;
    g->cfg = *cfg;
    g->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                            (uint16_t)port, NULL, NULL, on_request, g, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, g, MHD_OPTION_END);
    if (!g->d) {
        free(g);
        return PSL_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_BIND_PORT);
    g->port = info ? info->port : (uint16_t)port;
    *out = g;
    return PSL_OK;
}

void gateway_stop(struct gateway *g)
{
    if (!g)
        return;
    MHD_stop_daemon(g->d);
    free(g);
}

uint16_t gateway_port(const struct gateway *g)
{
    return g->port;
}
