/* federation.c: the embedded default (see federation.h). The flow of one job:
 *   capsule: metadata signed by the owner key of the data directory; replica set = the embedded
 *            servers; measurement policy = the psl-enclave binary; a fresh capsule key.
 *   workers: spawn, report over a fresh nonce, sim evidence by the host's platform key, verified
 *            by the client against the policy, certificate issued for the attested keys, job
 *            sealed to the attested X25519 key, READY, the lambda runs, flush, sealed result.
 *   audit:   the client opens and verifies every result, exports the capsule from the servers
 *            through a freshness read, and verifies the whole DAG with the capsule key.
 * The host side (enclave_host) never holds the capsule key or any plaintext; the client side
 * here does, as the client always does. */
#include "node/federation.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#include "node/enclave_host.h"

#define FED_SERVERS_MAX 16u
#define PATH_SIZE 1024
#define SPAWN_TIMEOUT_MS 10000
#define STEP_TIMEOUT_MS 10000
#define EXPORT_TIMEOUT_MS 10000

struct fed {
    struct fed_config cfg;
    char dir[PATH_SIZE];
    struct inproc_bus *bus;
    struct fabric *host_fabric;   /* the untrusted host's connection: relays enclave traffic */
    struct fabric *client_fabric; /* the client's: exports and audits */
    struct signer owner;
    struct signer platform; /* the sim TEE's platform key: the host "hardware" */
    uint8_t measurement[HASH_SIZE];
    unsigned server_count;
    struct signer server_keys[FED_SERVERS_MAX];
    struct fabric *server_fabrics[FED_SERVERS_MAX];
    struct capsuled *servers[FED_SERVERS_MAX];
    const struct kx_keypair *job_kx; /* the running job's client key: opens sealed log lines */
    struct fabric *tap_fabric;       /* tests: sees everything published */
    uint64_t tap_sub;
};

/* Formats a path; PSL_ERR_TOO_LARGE when it does not fit. */
static psl_err pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static psl_err pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? PSL_ERR_TOO_LARGE : PSL_OK;
}

static psl_err mkdir_p(const char *path)
{
    char tmp[PATH_SIZE];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return PSL_ERR_TOO_LARGE;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return PSL_ERR_IO;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return PSL_ERR_IO;
    return PSL_OK;
}

/* Loads the signing key at path, creating it on first use. */
static psl_err signing_key(struct signer *out, const char *path)
{
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return PSL_ERR_NOMEM;
    psl_err err = keyfile_read(path, KEYFILE_SIGNING, seed);
    if (err == PSL_ERR_NOT_FOUND || (err == PSL_ERR_IO && access(path, F_OK) != 0)) {
        struct signer fresh;
        if ((err = signer_init(&fresh, NULL)))
            goto out_free;
        signer_seed(&fresh, seed);
        err = keyfile_write(path, KEYFILE_SIGNING, seed, fresh.pk);
        signer_deinit(&fresh);
        if (err)
            goto out_free;
        LOG_INFO("fed", "msg=\"created key\" path=%s", path);
    } else if (err) {
        LOG_ERROR("fed", "msg=\"cannot read key file\" path=%s err=%s", path, psl_err_name(err));
        goto out_free;
    }
    err = signer_init(out, seed);
out_free:
    secret_free(seed);
    return err;
}

psl_err fed_open(struct fed **out, const struct fed_config *cfg)
{
    struct fed *f = calloc(1, sizeof *f);
    if (!f)
        return PSL_ERR_NOMEM;
    f->cfg = *cfg;
    f->server_count = cfg->servers ? cfg->servers : 3;
    if (f->server_count > FED_SERVERS_MAX)
        f->server_count = FED_SERVERS_MAX;
    if (!f->cfg.quorum_k)
        f->cfg.quorum_k = f->server_count >= 2 ? 2 : 1;
    psl_err err;
    if ((err = pathf(f->dir, sizeof f->dir, "%s", cfg->data_dir))) {
        free(f);
        return err;
    }
    char path[PATH_SIZE];
    if ((err = pathf(path, sizeof path, "%s/servers", f->dir)) || (err = mkdir_p(path))) {
        LOG_ERROR("fed", "msg=\"cannot create the data directory\" path=%s", path);
        goto out_fail;
    }
    if ((err = pathf(path, sizeof path, "%s/capsules", f->dir)) || (err = mkdir_p(path)))
        goto out_fail;
    if ((err = pathf(path, sizeof path, "%s/owner.key", f->dir)) ||
        (err = signing_key(&f->owner, path)))
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
    for (unsigned i = 0; i < f->server_count; i++) {
        if ((err = pathf(path, sizeof path, "%s/servers/s%u.key", f->dir, i)) ||
            (err = signing_key(&f->server_keys[i], path)))
            goto out_fail;
        if ((err = pathf(path, sizeof path, "%s/servers/s%u", f->dir, i)) ||
            (err = mkdir_p(path)) ||
            (err = fabric_inproc_connect(f->bus, &f->server_fabrics[i])))
            goto out_fail;
        struct capsuled_config sc = {.data_dir = path,
                                     .key = &f->server_keys[i],
                                     .fabric = f->server_fabrics[i]};
        if ((err = capsuled_start(&f->servers[i], &sc))) {
            LOG_ERROR("fed", "msg=\"cannot start an embedded storage server\" path=%s err=%s",
                      path, psl_err_name(err));
            goto out_fail;
        }
    }
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
    for (unsigned i = 0; i < f->server_count; i++) {
        capsuled_stop(f->servers[i]);
        fabric_destroy(f->server_fabrics[i]);
        signer_deinit(&f->server_keys[i]);
    }
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
    struct capsule_meta meta;
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    uint8_t *capsule_key; /* secret */
    struct kx_keypair client_kx;
    uint8_t job_id[JOB_ID_SIZE];
    struct attest_policy policy;
    struct enclave_host **hosts;
    struct writer_cert *certs; /* issued, per worker */
};

static psl_err make_capsule(struct job *j)
{
    struct fed *f = j->f;
    struct capsule_meta *m = &j->meta;
    memset(m, 0, sizeof *m);
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = clock_wall_ms();
    int n = snprintf(m->label, sizeof m->label, "psl run %s", j->jc->name ? j->jc->name : "");
    m->label_size = (uint8_t)(n < 0 ? 0 : (size_t)n < PSL_LABEL_SIZE_MAX ? (size_t)n : PSL_LABEL_SIZE_MAX);
    m->label[m->label_size] = '\0';
    m->quorum_k = (uint8_t)f->cfg.quorum_k;
    m->replica_count = (uint8_t)f->server_count;
    for (unsigned i = 0; i < f->server_count; i++)
        memcpy(m->replicas[i], f->server_keys[i].pk, SIGN_PK_SIZE);
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = 1;
    memcpy(m->measurements[0], f->measurement, HASH_SIZE);
    psl_err err;
    if ((err = meta_sign(m, &f->owner)) ||
        (err = meta_encode(m, j->meta_raw, sizeof j->meta_raw, &j->meta_size)))
        return err;
    j->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!j->capsule_key)
        return PSL_ERR_NOMEM;
    rng_bytes(j->capsule_key, AEAD_KEY_SIZE);
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, m->name, HASH_SIZE);
    hex[16] = '\0';
    if ((err = pathf(j->rep->key_path, sizeof j->rep->key_path, "%s/capsules/%s.key", f->dir,
                     hex)) ||
        (err = pathf(j->rep->export_path, sizeof j->rep->export_path, "%s/capsules/%s.pslx",
                     f->dir, hex)) ||
        (err = keyfile_write(j->rep->key_path, KEYFILE_CAPSULE, j->capsule_key, NULL)))
        return err;
    memcpy(j->rep->capsule, m->name, HASH_SIZE);
    for (unsigned i = 0; i < f->server_count; i++)
        if ((err = capsuled_serve(f->servers[i], j->meta_raw, j->meta_size)))
            return err;
    attest_policy_init(&j->policy, m);
    if ((err = attest_policy_trust_platform(&j->policy, f->platform.pk)))
        return err;
    rng_bytes(j->job_id, sizeof j->job_id);
    return kx_init(&j->client_kx, NULL);
}

static void host_log(void *ctx, const char *name, const char *line, size_t size)
{
    struct fed *f = ctx;
    if (f->cfg.on_log)
        f->cfg.on_log(f->cfg.log_ctx, name, line, size);
}

/* The client opens a lambda's sealed log line; one that does not open is reported as such. */
static void host_sealed_log(void *ctx, const char *name, const uint8_t *sealed, size_t size)
{
    struct fed *f = ctx;
    if (!f->cfg.on_log || !f->job_kx)
        return;
    char line[PSL_LOG_LINE_SIZE_MAX + 1];
    if (size < SEAL_OVERHEAD || size - SEAL_OVERHEAD > PSL_LOG_LINE_SIZE_MAX ||
        seal_open((uint8_t *)line, sealed, size, f->job_kx) != PSL_OK) {
        static const char bad[] = "(a sealed log line did not open: dropped)";
        f->cfg.on_log(f->cfg.log_ctx, name, bad, sizeof bad - 1);
        return;
    }
    f->cfg.on_log(f->cfg.log_ctx, name, line, size - SEAL_OVERHEAD);
}

/* Attests and provisions worker i: the host asks for a report, its platform signs evidence, the
 * client verifies it, issues the certificate and seals the job to the attested key. */
static psl_err provision_worker(struct job *j, unsigned i, char *why, size_t why_cap)
{
    struct fed *f = j->f;
    struct enclave_host *h = j->hosts[i];
    /* client: a fresh nonce for this verification session */
    uint8_t nonce[ATTEST_NONCE_SIZE];
    attest_nonce_new(nonce);
    /* host: the enclave's report, and the (simulated) platform's evidence over it */
    struct enclave_report rp;
    psl_err err = enclave_host_report(h, nonce, &rp, STEP_TIMEOUT_MS);
    if (err) {
        snprintf(why, why_cap, "no attestation report: %s", psl_strerror(err));
        return err;
    }
    struct evidence ev;
    evidence_sim_sign(&ev, &f->platform, f->measurement, rp.report_data);
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t msg_size;
    if ((err = attest_msg_encode(&ev, rp.sign_pk, rp.kx_pk, msg, sizeof msg, &msg_size)))
        return err;
    /* client: verify, certify, seal */
    struct attest_verified v;
    if ((err = attest_verify(&j->policy, msg, msg_size, nonce, &v))) {
        snprintf(why, why_cap, "attestation refused: %s", psl_strerror(err));
        return err;
    }
    uint64_t now = clock_wall_ms();
    struct provision_issuer is = {.signer = &f->owner, .meta = &j->meta,
                                  .capsule_key = j->capsule_key};
    bool coord = i == 0 && j->jc->workers > 1;
    struct provision_cert_spec spec = {.role = coord ? ROLE_COORDINATOR : ROLE_WORKER,
                                       .not_before_ms = now - 60000,
                                       .not_after_ms = now + 7ull * 24 * 3600 * 1000};
    if ((err = provision_issue_cert(&is, &v, &spec, now, &j->certs[i]))) {
        snprintf(why, why_cap, "certificate: %s", psl_strerror(err));
        return err;
    }
    struct provision_job pj = {.worker_index = i,
                               .worker_count = j->jc->workers,
                               .mem_bytes = j->jc->mem_bytes,
                               .insn_budget = j->jc->insn_budget,
                               .chunk_name = j->jc->name,
                               .script = j->jc->script,
                               .script_size = j->jc->script_size,
                               .args = j->jc->args,
                               .args_size = j->jc->args_size};
    memcpy(pj.job_id, j->job_id, JOB_ID_SIZE);
    memcpy(pj.client_kx_pk, j->client_kx.pk, KX_PK_SIZE);
    memcpy(pj.client_sign_pk, f->owner.pk, SIGN_PK_SIZE);
    uint8_t *sealed;
    size_t sealed_size;
    if ((err = provision_seal(&is, &j->certs[i], nonce, &pj, v.kx_pk, &sealed, &sealed_size))) {
        snprintf(why, why_cap, "sealing the job: %s", psl_strerror(err));
        return err;
    }
    /* host: relays the sealed bundle; it cannot read it */
    err = enclave_host_provision(h, sealed, sealed_size, why, why_cap, STEP_TIMEOUT_MS);
    free(sealed);
    return err;
}

static void sum_stats(struct job *j, uint64_t sum[RING_STATS_COUNT])
{
    memset(sum, 0, sizeof(uint64_t) * RING_STATS_COUNT);
    for (unsigned i = 0; i < j->jc->workers; i++) {
        if (!j->hosts[i])
            continue;
        uint64_t s[RING_STATS_COUNT];
        enclave_host_stats(j->hosts[i], s);
        for (unsigned k = 0; k < RING_STATS_COUNT; k++)
            sum[k] += s[k];
    }
}

/* Opens worker i's sealed result as the client: decrypt, check job, signature and cert, and
 * that the signer is the enclave this client certified as worker i. */
static void open_result(struct job *j, unsigned i, psl_err job_err, const uint8_t *sealed,
                        size_t size)
{
    struct fed_worker_result *r = &j->rep->results[i];
    struct result_opened ro;
    psl_err err = result_open(&j->client_kx, &j->meta, j->job_id, clock_wall_ms(), sealed, size,
                              &ro);
    if (err) {
        r->err = err;
        snprintf(r->why, sizeof r->why, "result refused: %s", psl_strerror(err));
        return;
    }
    if (ro.worker_index != i || memcmp(ro.cert.sign_pk, j->certs[i].sign_pk, SIGN_PK_SIZE) != 0 ||
        ro.size < 1) {
        r->err = PSL_ERR_AUTH;
        snprintf(r->why, sizeof r->why, "result refused: not signed by worker %u's enclave", i);
        result_opened_free(&ro);
        return;
    }
    r->verified = true;
    r->ok = ro.data[0] == 1 && job_err == PSL_OK;
    r->err = r->ok ? PSL_OK : job_err ? job_err : PSL_ERR_LAMBDA;
    r->text = malloc(ro.size);
    if (r->text) {
        memcpy(r->text, ro.data + 1, ro.size - 1);
        r->text[ro.size - 1] = '\0';
    }
    result_opened_free(&ro);
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
    struct capsule_client_config cc = {.fabric = j->f->client_fabric, .meta = &j->meta};
    psl_err err = capsule_client_open(&cl, &cc);
    if (err)
        return err;
    FILE *fp = fopen(rep->export_path, "wx");
    if (!fp) {
        capsule_client_close(cl);
        return PSL_ERR_IO;
    }
    struct export_writer x;
    export_begin(&x, fp, j->meta_raw, j->meta_size);
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
    err = chain_verify(&j->meta, view.records, view.record_count, clock_wall_ms(),
                       j->capsule_key, &cr);
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
    struct job j = {.f = f, .jc = jc, .rep = rep};
    j.hosts = calloc(jc->workers, sizeof *j.hosts);
    j.certs = calloc(jc->workers, sizeof *j.certs);
    if (!rep->results || !j.hosts || !j.certs) {
        free(j.hosts);
        free(j.certs);
        fed_job_report_free(rep);
        return PSL_ERR_NOMEM;
    }
    uint64_t t0 = clock_mono_ns();
    psl_err err = make_capsule(&j);
    if (err) {
        LOG_ERROR("fed", "msg=\"cannot create the job's capsule\" err=%s", psl_err_name(err));
        goto out;
    }
    f->job_kx = &j.client_kx;
    uint64_t acks0 = 0;
    for (unsigned s = 0; s < f->server_count; s++) {
        struct capsuled_stats st;
        capsuled_get_stats(f->servers[s], &st);
        acks0 += st.acks_sent;
    }
    /* Spawn, attest and provision every worker. A worker that fails here is reported; the
     * others still run (the job reports exactly which workers failed). */
    for (unsigned i = 0; i < jc->workers; i++) {
        struct fed_worker_result *r = &rep->results[i];
        r->worker = i;
        char name[32];
        snprintf(name, sizeof name, "w%u", i);
        struct enclave_host_config hc = {.enclave_path = f->cfg.enclave_path,
                                         .actors = f->cfg.actors,
                                         .name = name,
                                         .on_log = host_log,
                                         .on_sealed_log = host_sealed_log,
                                         .log_ctx = f,
                                         .on_tap = f->cfg.on_tap,
                                         .tap_ctx = f->cfg.tap_ctx};
        psl_err e2 = enclave_host_start(&j.hosts[i], &hc, f->host_fabric, SPAWN_TIMEOUT_MS);
        if (e2) {
            r->err = e2;
            snprintf(r->why, sizeof r->why, "enclave did not start: %s", psl_strerror(e2));
            j.hosts[i] = NULL;
        }
    }
    for (unsigned i = 0; i < jc->workers; i++) {
        struct fed_worker_result *r = &rep->results[i];
        if (!j.hosts[i])
            continue;
        psl_err e2 = provision_worker(&j, i, r->why, sizeof r->why);
        if (e2) {
            r->err = e2;
            LOG_WARN("fed", "msg=\"worker not provisioned\" worker=%u why=\"%s\"", i, r->why);
            enclave_host_stop(j.hosts[i], 0);
            j.hosts[i] = NULL;
        }
    }
    uint64_t t_run = clock_mono_ns();
    /* Wait for every result, reporting progress. */
    uint64_t deadline = jc->timeout_ms ? t_run + (uint64_t)jc->timeout_ms * 1000000u : UINT64_MAX;
    bool *have = calloc(jc->workers, sizeof *have);
    if (!have) {
        err = PSL_ERR_NOMEM;
        goto out;
    }
    unsigned done = 0;
    for (unsigned i = 0; i < jc->workers; i++)
        if (!j.hosts[i]) {
            have[i] = true;
            done++;
        }
    while (done < jc->workers) {
        for (unsigned i = 0; i < jc->workers; i++) {
            if (have[i])
                continue;
            psl_err job_err;
            uint8_t *sealed;
            size_t sealed_size;
            psl_err e2 = enclave_host_wait_result(j.hosts[i], 0, &job_err, &sealed, &sealed_size);
            if (e2 == PSL_OK) {
                open_result(&j, i, job_err, sealed, sealed_size);
                free(sealed);
            } else if (e2 == PSL_ERR_PEER_DEAD) {
                rep->results[i].err = e2;
                snprintf(rep->results[i].why, sizeof rep->results[i].why, "enclave %s",
                         enclave_host_exit_reason(j.hosts[i]));
            } else {
                continue;
            }
            enclave_host_stats(j.hosts[i], rep->results[i].stats);
            have[i] = true;
            done++;
        }
        if (done == jc->workers)
            break;
        if (clock_mono_ns() > deadline) {
            for (unsigned i = 0; i < jc->workers; i++)
                if (!have[i]) {
                    rep->results[i].err = PSL_ERR_TIMEOUT;
                    snprintf(rep->results[i].why, sizeof rep->results[i].why,
                             "no result within the job's time limit");
                    enclave_host_stats(j.hosts[i], rep->results[i].stats);
                }
            break;
        }
        if (jc->on_progress) {
            uint64_t sum[RING_STATS_COUNT];
            sum_stats(&j, sum);
            jc->on_progress(jc->progress_ctx, sum, done, jc->workers,
                            (double)(clock_mono_ns() - t0) / 1e9);
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 250 * 1000000L};
        for (int k = 0; k < 25 && done < jc->workers; k++) {
            /* wake early when a result arrives: poll cheaply every 10 ms */
            ts.tv_nsec = 10 * 1000000L;
            nanosleep(&ts, NULL);
            bool any = false;
            for (unsigned i = 0; i < jc->workers && !any; i++)
                any = !have[i] && (enclave_host_dead(j.hosts[i]));
            if (any)
                break;
        }
    }
    free(have);
    uint64_t t_end = clock_mono_ns();
    rep->elapsed_s = (double)(t_end - t0) / 1e9;
    rep->run_s = (double)(t_end - t_run) / 1e9;
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
    for (unsigned i = 0; i < jc->workers; i++)
        if (j.hosts[i]) {
            enclave_host_stop(j.hosts[i], 2000);
            j.hosts[i] = NULL;
        }
    uint64_t acks1 = 0;
    for (unsigned s = 0; s < f->server_count; s++) {
        struct capsuled_stats st;
        capsuled_get_stats(f->servers[s], &st);
        acks1 += st.acks_sent;
    }
    rep->acks = acks1 - acks0;
    if ((err = audit(&j)))
        LOG_ERROR("fed", "msg=\"capsule audit failed\" err=%s path=%s", psl_err_name(err),
                  rep->export_path);
    err = PSL_OK; /* the report says what failed */
out:
    for (unsigned i = 0; i < jc->workers; i++)
        enclave_host_stop(j.hosts[i], 0);
    f->job_kx = NULL;
    free(j.hosts);
    free(j.certs);
    if (j.capsule_key)
        secret_free(j.capsule_key);
    kx_deinit(&j.client_kx);
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
