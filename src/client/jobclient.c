/* jobclient.c: the client side of a job (see jobclient.h). Invariant: a bundle is sealed only
 * to keys that verified evidence bound to this worker's nonce, and a result is accepted only
 * when it was signed by the key certified for that same worker. Secrets (capsule key, result
 * key seed) live in secret memory and are wiped by jobclient_deinit. */
#include "client/jobclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/rng.h"

#define CERT_LIFETIME_MS (7ull * 24 * 3600 * 1000)
#define CERT_SKEW_MS 60000ull

psl_err jobclient_capsule_new(const struct signer *owner, const struct jobclient_capsule_spec *spec,
                              uint8_t *out, size_t cap, size_t *out_size)
{
    if (spec->replica_count < 1 || spec->replica_count > PSL_REPLICAS_MAX ||
        spec->quorum_k > spec->replica_count || spec->measurement_count > PSL_MEASUREMENTS_MAX)
        return PSL_ERR_INVALID_ARG;
    struct capsule_meta m;
    memset(&m, 0, sizeof m);
    m.version = META_VERSION;
    m.suite = PSL_SUITE_1;
    m.created_ms = clock_wall_ms();
    size_t n = spec->label ? strlen(spec->label) : 0;
    if (n > PSL_LABEL_SIZE_MAX)
        n = PSL_LABEL_SIZE_MAX;
    if (n)
        memcpy(m.label, spec->label, n);
    m.label_size = (uint8_t)n;
    m.quorum_k = (uint8_t)(spec->quorum_k ? spec->quorum_k : spec->replica_count / 2 + 1);
    m.replica_count = (uint8_t)spec->replica_count;
    memcpy(m.replicas, spec->replicas, (size_t)spec->replica_count * SIGN_PK_SIZE);
    m.retention = RETENTION_KEEP_ALL;
    m.measurement_count = (uint8_t)spec->measurement_count;
    if (spec->measurement_count)
        memcpy(m.measurements, spec->measurements, (size_t)spec->measurement_count * HASH_SIZE);
    psl_err err = meta_sign(&m, owner);
    if (err)
        return err;
    return meta_encode(&m, out, cap, out_size);
}

/* The common part of init and restore. */
static psl_err setup(struct jobclient *c, const uint8_t *meta_raw, size_t meta_size,
                     const uint8_t capsule_key[AEAD_KEY_SIZE], const uint8_t *kx_seed,
                     unsigned workers)
{
    memset(c, 0, sizeof *c);
    if (workers < 1 || workers > JOBCLIENT_WORKERS_MAX || meta_size > sizeof c->meta_raw)
        return PSL_ERR_INVALID_ARG;
    psl_err err = meta_decode(&c->meta, meta_raw, meta_size);
    if (err)
        return err;
    memcpy(c->meta_raw, meta_raw, meta_size);
    c->meta_size = meta_size;
    c->workers = workers;
    c->w = calloc(workers, sizeof *c->w);
    c->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    c->kx_seed = secret_alloc(32);
    if (!c->w || !c->capsule_key || !c->kx_seed) {
        err = PSL_ERR_NOMEM;
        goto out_fail;
    }
    memcpy(c->capsule_key, capsule_key, AEAD_KEY_SIZE);
    if (kx_seed)
        memcpy(c->kx_seed, kx_seed, 32);
    else
        rng_bytes(c->kx_seed, 32);
    if ((err = kx_init(&c->kx, c->kx_seed)))
        goto out_fail;
    attest_policy_init(&c->policy, &c->meta);
    return PSL_OK;
out_fail:
    free(c->w);
    secret_free(c->capsule_key);
    secret_free(c->kx_seed);
    memset(c, 0, sizeof *c);
    return err;
}

psl_err jobclient_init(struct jobclient *c, const uint8_t *meta_raw, size_t meta_size,
                       const uint8_t capsule_key[AEAD_KEY_SIZE], unsigned workers)
{
    psl_err err = setup(c, meta_raw, meta_size, capsule_key, NULL, workers);
    if (err)
        return err;
    rng_bytes(c->job_id, JOB_ID_SIZE);
    for (unsigned i = 0; i < workers; i++)
        attest_nonce_new(c->w[i].nonce);
    return PSL_OK;
}

psl_err jobclient_restore(struct jobclient *c, const uint8_t *meta_raw, size_t meta_size,
                          const uint8_t capsule_key[AEAD_KEY_SIZE], const uint8_t kx_seed[32],
                          const uint8_t job_id[JOB_ID_SIZE], unsigned workers,
                          const uint8_t *const *cert_sign_pks)
{
    psl_err err = setup(c, meta_raw, meta_size, capsule_key, kx_seed, workers);
    if (err)
        return err;
    memcpy(c->job_id, job_id, JOB_ID_SIZE);
    for (unsigned i = 0; i < workers; i++) {
        if (!cert_sign_pks[i])
            continue;
        c->w[i].certified = true;
        memcpy(c->w[i].cert.sign_pk, cert_sign_pks[i], SIGN_PK_SIZE);
    }
    return PSL_OK;
}

void jobclient_deinit(struct jobclient *c)
{
    if (!c->w && !c->capsule_key)
        return;
    free(c->w);
    secret_free(c->capsule_key);
    secret_free(c->kx_seed);
    kx_deinit(&c->kx);
    memset(c, 0, sizeof *c);
}

psl_err jobclient_trust_platform(struct jobclient *c, const uint8_t pk[SIGN_PK_SIZE])
{
    return attest_policy_trust_platform(&c->policy, pk);
}

psl_err jobclient_admit(struct jobclient *c, const struct signer *owner, unsigned i,
                        const uint8_t *msg, size_t msg_size, const struct jobclient_job *job,
                        uint8_t **sealed, size_t *sealed_size, char *why, size_t why_cap)
{
    if (i >= c->workers) {
        snprintf(why, why_cap, "no worker %u", i);
        return PSL_ERR_INVALID_ARG;
    }
    struct jobclient_worker *w = &c->w[i];
    struct attest_verified v;
    psl_err err = attest_verify(&c->policy, msg, msg_size, w->nonce, &v);
    if (err) {
        snprintf(why, why_cap, "attestation refused: %s", psl_strerror(err));
        return err;
    }
    uint64_t now = clock_wall_ms();
    struct provision_issuer is = {.signer = owner, .meta = &c->meta,
                                  .capsule_key = c->capsule_key};
    bool coord = i == 0 && c->workers > 1;
    struct provision_cert_spec spec = {.role = coord ? ROLE_COORDINATOR : ROLE_WORKER,
                                       .not_before_ms = now - CERT_SKEW_MS,
                                       .not_after_ms = now + CERT_LIFETIME_MS};
    struct writer_cert cert;
    if ((err = provision_issue_cert(&is, &v, &spec, now, &cert))) {
        snprintf(why, why_cap, "certificate: %s", psl_strerror(err));
        return err;
    }
    struct provision_job pj = {.mode = job->mode,
                               .worker_index = i,
                               .worker_count = c->workers,
                               .mem_bytes = job->mem_bytes,
                               .insn_budget = job->insn_budget,
                               .chunk_name = job->name,
                               .script = job->script,
                               .script_size = job->script_size,
                               .args = job->args,
                               .args_size = job->args_size};
    memcpy(pj.job_id, c->job_id, JOB_ID_SIZE);
    memcpy(pj.client_kx_pk, c->kx.pk, KX_PK_SIZE);
    memcpy(pj.client_sign_pk, owner->pk, SIGN_PK_SIZE);
    if ((err = provision_seal(&is, &cert, w->nonce, &pj, v.kx_pk, sealed, sealed_size))) {
        snprintf(why, why_cap, "sealing the job: %s", psl_strerror(err));
        return err;
    }
    w->cert = cert;
    w->certified = true;
    return PSL_OK;
}

void jobclient_open_result(struct jobclient *c, unsigned i, psl_err job_err, const uint8_t *sealed,
                           size_t size, struct jobclient_result *out)
{
    memset(out, 0, sizeof *out);
    if (i >= c->workers || !c->w[i].certified) {
        out->err = PSL_ERR_AUTH;
        snprintf(out->why, sizeof out->why, "result refused: worker %u was never certified", i);
        return;
    }
    struct result_opened ro;
    psl_err err = result_open(&c->kx, &c->meta, c->job_id, clock_wall_ms(), sealed, size, &ro);
    if (err) {
        out->err = err;
        snprintf(out->why, sizeof out->why, "result refused: %s", psl_strerror(err));
        return;
    }
    if (ro.worker_index != i ||
        !ct_equal(ro.cert.sign_pk, c->w[i].cert.sign_pk, SIGN_PK_SIZE) || ro.size < 1) {
        out->err = PSL_ERR_AUTH;
        snprintf(out->why, sizeof out->why, "result refused: not signed by worker %u's enclave", i);
        result_opened_free(&ro);
        return;
    }
    out->verified = true;
    out->ok = ro.data[0] == 1 && job_err == PSL_OK;
    out->err = out->ok ? PSL_OK : job_err ? job_err : PSL_ERR_LAMBDA;
    out->text = malloc(ro.size);
    if (out->text) {
        memcpy(out->text, ro.data + 1, ro.size - 1);
        out->text[ro.size - 1] = '\0';
    }
    result_opened_free(&ro);
}

void jobclient_result_free(struct jobclient_result *r)
{
    free(r->text);
    r->text = NULL;
}

psl_err jobclient_open_log(const struct jobclient *c, const uint8_t *sealed, size_t size, char *line,
                           size_t cap, size_t *len)
{
    if (size < SEAL_OVERHEAD || size - SEAL_OVERHEAD > PSL_LOG_LINE_SIZE_MAX ||
        size - SEAL_OVERHEAD >= cap)
        return PSL_ERR_TOO_LARGE;
    psl_err err = seal_open((uint8_t *)line, sealed, size, &c->kx);
    if (err)
        return err;
    *len = size - SEAL_OVERHEAD;
    line[*len] = '\0';
    return PSL_OK;
}

/* ---- deployed functions ---- */

psl_err jobclient_invoke_seal(const struct signer *owner, const uint8_t enclave_kx_pk[KX_PK_SIZE],
                              const uint8_t *args, size_t args_size,
                              struct jobclient_invocation *out)
{
    memset(out, 0, sizeof *out);
    psl_err err = kx_init(&out->reply, NULL);
    if (err)
        return err;
    struct invoke_request req = {.issued_ms = clock_wall_ms(), .args = args, .args_size = args_size};
    rng_bytes(out->id, INVOKE_ID_SIZE);
    memcpy(req.id, out->id, INVOKE_ID_SIZE);
    memcpy(req.reply_kx_pk, out->reply.pk, KX_PK_SIZE);
    if ((err = invoke_seal(owner, enclave_kx_pk, &req, &out->sealed, &out->sealed_size))) {
        jobclient_invocation_free(out);
        return err;
    }
    return PSL_OK;
}

void jobclient_invoke_open(const struct jobclient_invocation *inv, const struct capsule_meta *m,
                           const uint8_t enclave_sign_pk[SIGN_PK_SIZE], psl_err inv_err,
                           const uint8_t *sealed, size_t size, struct jobclient_result *out)
{
    memset(out, 0, sizeof *out);
    struct result_opened ro;
    psl_err err = result_open(&inv->reply, m, inv->id, clock_wall_ms(), sealed, size, &ro);
    if (err) {
        out->err = err;
        snprintf(out->why, sizeof out->why, "result refused: %s", psl_strerror(err));
        return;
    }
    if (!ct_equal(ro.cert.sign_pk, enclave_sign_pk, SIGN_PK_SIZE) || ro.size < 1) {
        out->err = PSL_ERR_AUTH;
        snprintf(out->why, sizeof out->why, "result refused: not signed by the function's enclave");
        result_opened_free(&ro);
        return;
    }
    out->verified = true;
    out->ok = ro.data[0] == 1 && inv_err == PSL_OK;
    out->err = out->ok ? PSL_OK : inv_err ? inv_err : PSL_ERR_LAMBDA;
    out->text = malloc(ro.size);
    if (out->text) {
        memcpy(out->text, ro.data + 1, ro.size - 1);
        out->text[ro.size - 1] = '\0';
    }
    result_opened_free(&ro);
}

void jobclient_invocation_free(struct jobclient_invocation *inv)
{
    if (inv->reply.sk)
        kx_deinit(&inv->reply);
    free(inv->sealed);
    memset(inv, 0, sizeof *inv);
}
