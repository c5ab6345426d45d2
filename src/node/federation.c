/* federation.c: the embedded default (see federation.h). The flow of one job:
 *   capsule: metadata signed by the owner key of the data directory; replica set = the embedded
 *            servers; measurement policy = the psl-enclave binary; a fresh capsule key.
 *   workers: the host side (node/jobhost: enclaves from a pool, reports over the client's
 *            nonces, sim evidence by the host's platform key) and the client side
 *            (client/jobclient: verify against the policy, certify the attested keys, seal the
 *            job to the attested X25519 key) talk through the same calls psl-node's HTTP API
 *            makes, only in one process; then READY, the lambda runs, flush, sealed result.
 *   audit:   the client opens and verifies every result, exports the capsule from the servers
 *            through a freshness read, and verifies the whole DAG with the capsule key.
 * The host side never holds the capsule key or any plaintext; the client side here does, as the
 * client always does. */
#include "node/federation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest/evidence.h"
#include "attest/provision.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/chain.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsuled/client.h"
#include "capsuled/server.h"
#include "client/jobclient.h"
#include "node/jobhost.h"
#include "node/pool.h"
#include "node/servers.h"

#define EXPORT_TIMEOUT_MS 10000
#define FED_ENCLAVES_MAX 64u
#define POLL_MS 10
#define PROGRESS_MS 250

struct fed {
    struct fed_config cfg;
    char dir[NODE_PATH_SIZE];
    struct inproc_bus *bus;
    struct fabric *host_fabric;   /* the untrusted host's connection: relays enclave traffic */
    struct fabric *client_fabric; /* the client's: exports and audits */
    struct signer owner;
    struct signer platform; /* the sim TEE's platform key: the host "hardware" */
    uint8_t measurement[HASH_SIZE];
    struct node_servers servers;
    struct pool *pool;       /* host: enclaves started on demand */
    struct jobhost *jobhost; /* host: the job's share of this host (all of it) */
    struct jobclient *job_client; /* the running job's client: opens sealed log lines */
    struct fabric *tap_fabric;    /* tests: sees everything published */
    uint64_t tap_sub;
};

static psl_err connect_server(void *ctx, unsigned i, struct fabric **out)
{
    struct fed *f = ctx;
    (void)i;
    return fabric_inproc_connect(f->bus, out);
}

/* Enclave lines of the job: the host relays them; the client opens the sealed ones. */
static void host_log(void *ctx, const uint8_t job_id[JOBHOST_ID_SIZE], unsigned index,
                     bool sealed, const uint8_t *data, size_t size)
{
    struct fed *f = ctx;
    (void)job_id;
    if (!f->cfg.on_log)
        return;
    char name[32];
    snprintf(name, sizeof name, "w%u", index);
    if (!sealed) {
        f->cfg.on_log(f->cfg.log_ctx, name, (const char *)data, size);
        return;
    }
    char line[PSL_LOG_LINE_SIZE_MAX + 1];
    size_t len;
    if (!f->job_client ||
        jobclient_open_log(f->job_client, data, size, line, sizeof line, &len) != PSL_OK) {
        static const char bad[] = "(a sealed log line did not open: dropped)";
        f->cfg.on_log(f->cfg.log_ctx, name, bad, sizeof bad - 1);
        return;
    }
    f->cfg.on_log(f->cfg.log_ctx, name, line, len);
}

psl_err fed_open(struct fed **out, const struct fed_config *cfg)
{
    struct fed *f = calloc(1, sizeof *f);
    if (!f)
        return PSL_ERR_NOMEM;
    f->cfg = *cfg;
    unsigned server_count = cfg->servers ? cfg->servers : 3;
    if (server_count > NODE_SERVERS_MAX)
        server_count = NODE_SERVERS_MAX;
    if (!f->cfg.quorum_k)
        f->cfg.quorum_k = server_count >= 2 ? 2 : 1;
    psl_err err;
    if ((err = node_pathf(f->dir, sizeof f->dir, "%s", cfg->data_dir))) {
        free(f);
        return err;
    }
    char path[NODE_PATH_SIZE];
    if ((err = node_pathf(path, sizeof path, "%s/capsules", f->dir)) ||
        (err = node_mkdir_p(path))) {
        LOG_ERROR("fed", "msg=\"cannot create the data directory\" path=%s", path);
        goto out_fail;
    }
    if ((err = node_pathf(path, sizeof path, "%s/owner.key", f->dir)) ||
        (err = node_signing_key(&f->owner, path)))
        goto out_fail;
    if ((err = attest_sim_platform_load(&f->platform, f->dir)))
        goto out_fail;
    const char *measured = cfg->enclave_path ? cfg->enclave_path : "/proc/self/exe";
    if ((err = attest_measure_file(measured, f->measurement))) {
        LOG_ERROR("fed", "msg=\"cannot measure the enclave binary\" path=%s", measured);
        goto out_fail;
    }
    if ((err = inproc_bus_create(&f->bus, 256u << 20)) ||
        (err = fabric_inproc_connect(f->bus, &f->host_fabric)) ||
        (err = fabric_inproc_connect(f->bus, &f->client_fabric)))
        goto out_fail;
    if (cfg->on_fabric_tap &&
        ((err = fabric_inproc_connect(f->bus, &f->tap_fabric)) ||
         (err = fabric_subscribe(f->tap_fabric, ">", cfg->on_fabric_tap, cfg->tap_ctx,
                                 &f->tap_sub))))
        goto out_fail;
    if ((err = node_servers_start(&f->servers, f->dir, server_count, connect_server, f, false)))
        goto out_fail;
    struct pool_config pc = {.enclave_path = cfg->enclave_path,
                             .actors = cfg->actors,
                             .size = 0,
                             .enclaves_max = FED_ENCLAVES_MAX,
                             .fabric = f->host_fabric,
                             .on_log = jobhost_on_log,
                             .on_sealed_log = jobhost_on_sealed_log,
                             .on_tap = cfg->on_tap,
                             .tap_ctx = cfg->tap_ctx};
    if ((err = pool_open(&f->pool, &pc)))
        goto out_fail;
    struct jobhost_config hc = {.pool = f->pool,
                                .platform = &f->platform,
                                .servers = f->servers.servers,
                                .server_pks = f->servers.pks,
                                .server_count = f->servers.count,
                                .jobs_max = 4,
                                .on_log = host_log,
                                .log_ctx = f};
    memcpy(hc.measurement, f->measurement, HASH_SIZE);
    if ((err = jobhost_open(&f->jobhost, &hc)))
        goto out_fail;
    *out = f;
    return PSL_OK;
out_fail:
    fed_close(f);
    return err;
}

void fed_close(struct fed *f)
{
    if (!f)
        return;
    jobhost_close(f->jobhost);
    pool_close(f->pool);
    node_servers_stop(&f->servers);
    fabric_destroy(f->host_fabric);
    fabric_destroy(f->client_fabric);
    fabric_destroy(f->tap_fabric);
    if (f->bus)
        inproc_bus_destroy(f->bus);
    signer_deinit(&f->owner);
    signer_deinit(&f->platform);
    free(f);
}

/* ---- one job ---- */

struct job {
    struct fed *f;
    const struct fed_job_config *jc;
    struct fed_job_report *rep;
    struct jobclient c;
    uint8_t id[JOBHOST_ID_SIZE]; /* the host's */
};

/* The client makes the capsule: the embedded servers as replica set, the enclave binary's
 * measurement as policy, a fresh capsule key kept in a key file for audits. */
static psl_err make_capsule(struct job *j)
{
    struct fed *f = j->f;
    char label[PSL_LABEL_SIZE_MAX + 1];
    snprintf(label, sizeof label, "psl run %s", j->jc->name ? j->jc->name : "");
    const uint8_t(*measurements)[HASH_SIZE] = (const uint8_t(*)[HASH_SIZE])f->measurement;
    struct jobclient_capsule_spec spec = {.label = label,
                                          .replicas = (const uint8_t(*)[SIGN_PK_SIZE])f->servers.pks,
                                          .replica_count = f->servers.count,
                                          .quorum_k = f->cfg.quorum_k,
                                          .measurements = measurements,
                                          .measurement_count = 1};
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    psl_err err = jobclient_capsule_new(&f->owner, &spec, meta_raw, sizeof meta_raw, &meta_size);
    if (err)
        return err;
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    if (!key)
        return PSL_ERR_NOMEM;
    rng_bytes(key, AEAD_KEY_SIZE);
    err = jobclient_init(&j->c, meta_raw, meta_size, key, j->jc->workers);
    secret_free(key);
    if (err)
        return err;
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, j->c.meta.name, HASH_SIZE);
    hex[16] = '\0';
    if ((err = node_pathf(j->rep->key_path, sizeof j->rep->key_path, "%s/capsules/%s.key", f->dir,
                          hex)) ||
        (err = node_pathf(j->rep->export_path, sizeof j->rep->export_path,
                          "%s/capsules/%s.pslx", f->dir, hex)) ||
        (err = keyfile_write(j->rep->key_path, KEYFILE_CAPSULE, j->c.capsule_key, NULL)))
        return err;
    memcpy(j->rep->capsule, j->c.meta.name, HASH_SIZE);
    return jobclient_trust_platform(&j->c, f->platform.pk);
}

/* Attestation and provisioning of every worker: the host takes enclaves and returns their
 * evidence over the client's nonces; the client verifies, certifies and seals; the host relays
 * the sealed bundles. A worker that fails here is reported; the others still run. */
static psl_err attest_and_provision(struct job *j)
{
    struct fed *f = j->f;
    unsigned n = j->jc->workers;
    struct jobhost_attestation *att = calloc(n, sizeof *att);
    uint8_t(*nonces)[ATTEST_NONCE_SIZE] = calloc(n, ATTEST_NONCE_SIZE);
    uint8_t **bundles = calloc(n, sizeof *bundles);
    size_t *sizes = calloc(n, sizeof *sizes);
    psl_err err = PSL_ERR_NOMEM;
    if (!att || !nonces || !bundles || !sizes)
        goto out;
    for (unsigned i = 0; i < n; i++)
        memcpy(nonces[i], j->c.w[i].nonce, ATTEST_NONCE_SIZE);
    struct jobhost_create hc = {.meta = j->c.meta_raw,
                                .meta_size = j->c.meta_size,
                                .workers = n,
                                .nonces = (const uint8_t(*)[ATTEST_NONCE_SIZE])nonces,
                                .timeout_ms = j->jc->timeout_ms ? j->jc->timeout_ms
                                                                : JOBHOST_TIMEOUT_MS_MAX};
    char why[256];
    if ((err = jobhost_create(f->jobhost, &hc, j->id, att, why, sizeof why))) {
        LOG_ERROR("fed", "msg=\"the host could not start the job\" why=\"%s\"", why);
        goto out;
    }
    struct jobclient_job job = {.name = j->jc->name,
                                .script = j->jc->script,
                                .script_size = j->jc->script_size,
                                .args = j->jc->args,
                                .args_size = j->jc->args_size,
                                .mem_bytes = j->jc->mem_bytes,
                                .insn_budget = j->jc->insn_budget};
    for (unsigned i = 0; i < n; i++) {
        struct fed_worker_result *r = &j->rep->results[i];
        if (!att[i].size)
            continue; /* the host reports why in the job's status */
        psl_err e2 = jobclient_admit(&j->c, &f->owner, i, att[i].msg, att[i].size, &job,
                                     &bundles[i], &sizes[i], r->why, sizeof r->why);
        if (e2) {
            r->err = e2;
            LOG_WARN("fed", "msg=\"worker not provisioned\" worker=%u why=\"%s\"", i, r->why);
            if (jobhost_cancel(f->jobhost, j->id, i, r->why) != PSL_OK)
                LOG_WARN("fed", "msg=\"cannot cancel a worker\" worker=%u", i);
        }
    }
    err = jobhost_provision(f->jobhost, j->id, (const uint8_t *const *)bundles, sizes, n, why,
                            sizeof why);
    if (err)
        LOG_ERROR("fed", "msg=\"the host refused the bundles\" why=\"%s\"", why);
out:
    if (bundles)
        for (unsigned i = 0; i < n; i++)
            free(bundles[i]);
    free(bundles);
    free(sizes);
    free(nonces);
    free(att);
    return err;
}

/* Waits for every worker to end, reporting progress, and opens each result as it comes. */
static psl_err wait_results(struct job *j, uint64_t t0)
{
    struct fed *f = j->f;
    const struct fed_job_config *jc = j->jc;
    unsigned n = jc->workers;
    bool *have = calloc(n, sizeof *have);
    if (!have)
        return PSL_ERR_NOMEM;
    uint64_t last_progress = 0;
    psl_err err = PSL_OK;
    for (;;) {
        struct jobhost_status st;
        if ((err = jobhost_status(f->jobhost, j->id, true, 0, 0, &st)))
            break;
        unsigned done = 0;
        uint64_t sum[RING_STATS_COUNT] = {0};
        for (unsigned i = 0; i < n; i++) {
            const struct jobhost_worker_status *w = &st.w[i];
            struct fed_worker_result *r = &j->rep->results[i];
            for (unsigned k = 0; k < RING_STATS_COUNT; k++)
                sum[k] += w->stats[k];
            if (have[i]) {
                done++;
                continue;
            }
            if (w->state == W_DONE && w->result) {
                struct jobclient_result res;
                jobclient_open_result(&j->c, i, w->job_err, w->result, w->result_size, &res);
                r->verified = res.verified;
                r->ok = res.ok;
                r->err = res.err;
                r->text = res.text;
                if (!res.verified)
                    snprintf(r->why, sizeof r->why, "%s", res.why);
            } else if (w->state == W_FAILED) {
                if (!r->err)
                    r->err = w->error_code ? w->error_code : PSL_ERR_PEER_DEAD;
                if (!r->why[0])
                    snprintf(r->why, sizeof r->why, "%s", w->error);
            } else {
                continue;
            }
            memcpy(r->stats, w->stats, sizeof r->stats);
            have[i] = true;
            done++;
        }
        bool ended = st.state == JOB_DONE || st.state == JOB_FAILED;
        j->rep->run_s = st.run_s;
        jobhost_status_free(&st);
        if (ended && done == n)
            break;
        uint64_t now = clock_mono_ns();
        if (jc->on_progress && now - last_progress >= (uint64_t)PROGRESS_MS * 1000000u) {
            jc->on_progress(jc->progress_ctx, sum, done, n, (double)(now - t0) / 1e9);
            last_progress = now;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(have);
    return err;
}

static bool export_take(void *ctx, const uint8_t *rec, size_t size)
{
    export_add(ctx, rec, size);
    return true;
}

/* The audit: export the capsule from the servers through a freshness read, write it to disk,
 * read it back and verify the whole DAG with the capsule key. */
static psl_err audit(struct job *j)
{
    struct fed_job_report *rep = j->rep;
    struct capsule_client *cl;
    struct capsule_client_config cc = {.fabric = j->f->client_fabric, .meta = &j->c.meta};
    psl_err err = capsule_client_open(&cl, &cc);
    if (err)
        return err;
    FILE *fp = fopen(rep->export_path, "wx");
    if (!fp) {
        capsule_client_close(cl);
        return PSL_ERR_IO;
    }
    struct export_writer x;
    export_begin(&x, fp, j->c.meta_raw, j->c.meta_size);
    struct fetch_summary sum;
    err = capsule_client_fetch_all(cl, 0, EXPORT_TIMEOUT_MS, export_take, &x, &sum);
    capsule_client_close(cl);
    psl_err ferr = export_finish(&x);
    if (fclose(fp) != 0 && !ferr)
        ferr = PSL_ERR_IO;
    if (err || ferr)
        return err ? err : ferr;
    rep->lag_bound_met = sum.lag_bound_met;
    uint8_t *buf;
    size_t size;
    if ((err = file_read_all(rep->export_path, &buf, &size)))
        return err;
    struct export_view view;
    if ((err = export_parse(buf, size, &view))) {
        free(buf);
        return err;
    }
    struct chain_report cr;
    err = chain_verify(&j->c.meta, view.records, view.record_count, clock_wall_ms(),
                       j->c.capsule_key, &cr);
    if (!err) {
        rep->chain_verified = cr.ok && sum.complete;
        rep->chain_records = cr.record_count;
        rep->forks = cr.fork_count;
        chain_report_free(&cr);
    }
    export_view_free(&view);
    free(buf);
    return err;
}

psl_err fed_run_job(struct fed *f, const struct fed_job_config *jc, struct fed_job_report *out)
{
    PSL_ASSERT(jc->workers >= 1);
    struct fed_job_report *rep = out;
    memset(rep, 0, sizeof *rep);
    rep->workers = jc->workers;
    snprintf(rep->tee, sizeof rep->tee, "%s", evidence_describe(TEE_SIM));
    rep->results = calloc(jc->workers, sizeof *rep->results);
    if (!rep->results)
        return PSL_ERR_NOMEM;
    for (unsigned i = 0; i < jc->workers; i++)
        rep->results[i].worker = i;
    struct job j = {.f = f, .jc = jc, .rep = rep};
    uint64_t t0 = clock_mono_ns();
    psl_err err = make_capsule(&j);
    if (err) {
        LOG_ERROR("fed", "msg=\"cannot create the job's capsule\" err=%s", psl_err_name(err));
        goto out;
    }
    f->job_client = &j.c;
    uint64_t acks0 = node_servers_acks(&f->servers);
    if ((err = attest_and_provision(&j)) || (err = wait_results(&j, t0)))
        goto out;
    rep->elapsed_s = (double)(clock_mono_ns() - t0) / 1e9;
    rep->durable = true;
    for (unsigned i = 0; i < jc->workers; i++) {
        const uint64_t *s = rep->results[i].stats;
        rep->records += s[RING_STAT_RECORDS];
        rep->ops += s[RING_STAT_OPS];
        rep->bytes += s[RING_STAT_BYTES];
        /* A worker's result is sent only after its flush: k servers acknowledged every record
         * it wrote. A failed lambda still flushes, but its result does not say whether the
         * flush worked, so it does not count as durable. */
        if (!rep->results[i].verified || !rep->results[i].ok)
            rep->durable = false;
    }
    rep->acks = node_servers_acks(&f->servers) - acks0;
    if ((err = audit(&j)))
        LOG_ERROR("fed", "msg=\"capsule audit failed\" err=%s path=%s", psl_err_name(err),
                  rep->export_path);
    err = PSL_OK; /* the report says what failed */
out:
    f->job_client = NULL;
    jobclient_deinit(&j.c);
    if (err)
        fed_job_report_free(rep);
    return err;
}

void fed_job_report_free(struct fed_job_report *r)
{
    if (!r->results)
        return;
    for (unsigned i = 0; i < r->workers; i++)
        free(r->results[i].text);
    free(r->results);
    r->results = NULL;
}
