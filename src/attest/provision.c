/* provision.c: provisioning bundles (issuer to enclave) and sealed results (worker to client).
 * Both are signed plaintexts inside anonymous sealed boxes. A receiver checks sizes against
 * their limits, opens the box, verifies the signature over the raw plaintext, and only then
 * parses fields and allocates; the bundle plaintext carries the capsule key, so it only ever
 * lives in secret memory, and every failure path wipes what it opened. */
#include "attest/provision.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/rng.h"

static const uint8_t prov_magic[4] = {'P', 'S', 'L', 'P'};
static const uint8_t result_magic[4] = {'P', 'S', 'L', 'O'};
#define PROV_SIG_TAG   "psl-prov-v1"
#define RESULT_SIG_TAG "psl-result-v1"

_Static_assert(PROVISION_FIXED_SIZE + META_SIZE_MAX + DELEG_SIZE + PROVISION_CHUNK_NAME_SIZE_MAX +
                       PSL_SCRIPT_SIZE_MAX + PSL_ARGS_SIZE_MAX <=
                   PSL_PROVISION_SIZE_MAX,
               "a bundle at every limit fits PSL_PROVISION_SIZE_MAX");
_Static_assert(META_SIZE_MAX <= UINT16_MAX, "meta_size is a u16");

/* ---- issuer side ---- */

psl_err provision_issue_cert(const struct provision_issuer *is, const struct attest_verified *v,
                             const struct provision_cert_spec *spec, uint64_t now_ms,
                             struct writer_cert *out)
{
    struct writer_cert c;
    memset(&c, 0, sizeof c);
    c.role = spec->role;
    memcpy(c.capsule, is->meta->name, HASH_SIZE);
    memcpy(c.sign_pk, v->sign_pk, SIGN_PK_SIZE);
    memcpy(c.kx_pk, v->kx_pk, KX_PK_SIZE);
    memcpy(c.measurement, v->measurement, HASH_SIZE);
    c.not_before_ms = spec->not_before_ms;
    c.not_after_ms = spec->not_after_ms;
    c.serial = spec->serial ? spec->serial : rng_u64();
    cert_sign(&c, is->signer);
    psl_err err = cert_verify(&c, is->deleg, is->meta, now_ms);
    if (err)
        return err;
    *out = c;
    return PSL_OK;
}

static size_t chunk_name_size(const struct provision_job *job)
{
    return job->chunk_name ? strnlen(job->chunk_name, PROVISION_CHUNK_NAME_SIZE_MAX + 1) : 0;
}

static psl_err job_check(const struct provision_job *job)
{
    if (job->script_size > PSL_SCRIPT_SIZE_MAX || job->args_size > PSL_ARGS_SIZE_MAX ||
        chunk_name_size(job) > PROVISION_CHUNK_NAME_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (job->script_size == 0 || job->worker_count == 0 ||
        job->worker_count > PROVISION_WORKERS_MAX || job->worker_index >= job->worker_count ||
        job->mode > PROVISION_MODE_FUNCTION)
        return PSL_ERR_INVALID_ARG;
    return PSL_OK;
}

psl_err provision_encode(const struct provision_issuer *is, const struct writer_cert *cert,
                         const uint8_t nonce[ATTEST_NONCE_SIZE], const struct provision_job *job,
                         uint8_t **out, size_t *out_size)
{
    psl_err err = job_check(job);
    if (err)
        return err;
    uint8_t meta[META_SIZE_MAX];
    size_t meta_size = 0;
    err = meta_encode(is->meta, meta, sizeof meta, &meta_size);
    if (err)
        return err;
    size_t name_size = chunk_name_size(job);
    size_t size = PROVISION_FIXED_SIZE + meta_size + (is->deleg ? DELEG_SIZE : 0) + name_size +
                  job->script_size + job->args_size;
    PSL_ASSERT(size <= PSL_PROVISION_SIZE_MAX);
    uint8_t *buf = secret_alloc(size);
    if (!buf)
        return PSL_ERR_NOMEM;

    struct wr w;
    wr_init(&w, buf, size);
    wr_bytes(&w, prov_magic, sizeof prov_magic);
    wr_u8(&w, PROVISION_VERSION);
    wr_u16(&w, (uint16_t)meta_size);
    wr_bytes(&w, meta, meta_size);
    wr_bytes(&w, is->capsule_key, AEAD_KEY_SIZE);
    uint8_t *cert_p = wr_reserve(&w, CERT_SIZE);
    if (cert_p)
        cert_encode(cert, cert_p);
    wr_u8(&w, is->deleg ? 1 : 0);
    if (is->deleg) {
        uint8_t *deleg_p = wr_reserve(&w, DELEG_SIZE);
        if (deleg_p)
            deleg_encode(is->deleg, deleg_p);
    }
    wr_bytes(&w, job->job_id, JOB_ID_SIZE);
    wr_bytes(&w, nonce, ATTEST_NONCE_SIZE);
    wr_u32(&w, job->worker_index);
    wr_u32(&w, job->worker_count);
    wr_u8(&w, job->mode);
    wr_bytes(&w, job->client_kx_pk, KX_PK_SIZE);
    wr_bytes(&w, job->client_sign_pk, SIGN_PK_SIZE);
    wr_u64(&w, job->mem_bytes ? job->mem_bytes : PSL_LAMBDA_MEM_DEFAULT);
    wr_u64(&w, job->insn_budget ? job->insn_budget : PSL_LAMBDA_INSN_DEFAULT);
    wr_u8(&w, (uint8_t)name_size);
    wr_bytes(&w, job->chunk_name, name_size);
    wr_u32(&w, (uint32_t)job->script_size);
    wr_bytes(&w, job->script, job->script_size);
    wr_u32(&w, (uint32_t)job->args_size);
    wr_bytes(&w, job->args, job->args_size);
    wr_bytes(&w, is->signer->pk, SIGN_PK_SIZE);
    uint8_t *sig = wr_reserve(&w, SIGN_SIG_SIZE);
    PSL_ASSERT_SIZE(w, size);
    uint8_t h[HASH_SIZE];
    hash_sha256(h, buf, size - SIGN_SIG_SIZE);
    sign_tagged(is->signer, sig, PROV_SIG_TAG, h);
    *out = buf;
    *out_size = size;
    return PSL_OK;
}

psl_err provision_seal(const struct provision_issuer *is, const struct writer_cert *cert,
                       const uint8_t nonce[ATTEST_NONCE_SIZE], const struct provision_job *job,
                       const uint8_t recipient_kx_pk[KX_PK_SIZE], uint8_t **out, size_t *out_size)
{
    uint8_t *plain = NULL;
    size_t plain_size = 0;
    psl_err err = provision_encode(is, cert, nonce, job, &plain, &plain_size);
    if (err)
        return err;
    uint8_t *sealed = malloc(plain_size + SEAL_OVERHEAD);
    err = PSL_ERR_NOMEM;
    if (!sealed)
        goto out_free_plain;
    err = seal_box(sealed, plain, plain_size, recipient_kx_pk);
    if (err) {
        free(sealed);
        goto out_free_plain;
    }
    *out = sealed;
    *out_size = plain_size + SEAL_OVERHEAD;
out_free_plain:
    secret_free(plain);
    return err;
}

psl_err provision_leader_issue(const struct provision_issuer *leader,
                               const struct attest_policy *policy, const uint8_t *attest_msg,
                               size_t attest_msg_size, const uint8_t nonce[ATTEST_NONCE_SIZE],
                               const struct provision_cert_spec *spec,
                               const struct provision_job *job, uint64_t now_ms,
                               struct attest_verified *out_verified, uint8_t **out,
                               size_t *out_size)
{
    const struct delegation *d = leader->deleg;
    if (!d || memcmp(d->leader_pk, leader->signer->pk, SIGN_PK_SIZE) != 0)
        return PSL_ERR_CERT_ISSUER;
    psl_err err = deleg_verify(d, leader->meta, now_ms);
    if (err)
        return err;
    if (spec->role >= 8 || !(d->roles_mask & ROLE_BIT(spec->role))) /* roles_mask is a u8 */
        return PSL_ERR_CERT_ROLE;

    struct attest_verified v;
    err = attest_verify(policy, attest_msg, attest_msg_size, nonce, &v);
    if (err)
        return err;
    if (memcmp(v.measurement, d->measurement, HASH_SIZE) != 0)
        return PSL_ERR_ATTEST_MEASUREMENT;

    struct writer_cert c;
    err = provision_issue_cert(leader, &v, spec, now_ms, &c);
    if (err)
        return err;
    err = provision_seal(leader, &c, nonce, job, v.kx_pk, out, out_size);
    if (err)
        return err;
    *out_verified = v;
    return PSL_OK;
}

/* ---- enclave side ---- */

/* Verifies the issuer's signature at the end of a bundle plaintext of at least
 * PROVISION_FIXED_SIZE bytes: issuer_pk[32] then signature[64]. */
static bool bundle_signature_ok(const uint8_t *plain, size_t size)
{
    const uint8_t *sig = plain + size - SIGN_SIG_SIZE;
    const uint8_t *issuer_pk = sig - SIGN_PK_SIZE;
    uint8_t h[HASH_SIZE];
    hash_sha256(h, plain, size - SIGN_SIG_SIZE);
    return sign_verify_tagged(issuer_pk, sig, PROV_SIG_TAG, h);
}

psl_err provision_bundle_decode(struct provision_bundle *out, const uint8_t *plain, size_t size)
{
    if (size > PSL_PROVISION_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (size < PROVISION_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(plain, prov_magic, sizeof prov_magic) != 0)
        return PSL_ERR_BAD_MAGIC;
    /* Authenticate before interpreting. Who the issuer is, and whether it may issue, is
     * provision_bundle_check's question; here the bytes must be exactly what it signed. */
    if (!bundle_signature_ok(plain, size))
        return PSL_ERR_BAD_SIGNATURE;

    struct provision_bundle b;
    memset(&b, 0, sizeof b);
    struct rd r;
    rd_init(&r, plain + sizeof prov_magic, size - sizeof prov_magic);
    if (rd_u8(&r) != PROVISION_VERSION)
        return PSL_ERR_BAD_VERSION;
    size_t meta_size = rd_u16(&r);
    if (meta_size > META_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    const uint8_t *meta_p = rd_take(&r, meta_size);
    const uint8_t *key_p = rd_take(&r, AEAD_KEY_SIZE);
    const uint8_t *cert_p = rd_take(&r, CERT_SIZE);
    uint8_t has_deleg = rd_u8(&r);
    if (has_deleg > 1)
        return PSL_ERR_MALFORMED;
    const uint8_t *deleg_p = has_deleg ? rd_take(&r, DELEG_SIZE) : NULL;
    rd_copy(&r, b.job_id, JOB_ID_SIZE);
    rd_copy(&r, b.nonce, ATTEST_NONCE_SIZE);
    b.worker_index = rd_u32(&r);
    b.worker_count = rd_u32(&r);
    b.mode = rd_u8(&r);
    if (b.mode > PROVISION_MODE_FUNCTION)
        return PSL_ERR_BAD_TYPE;
    rd_copy(&r, b.client_kx_pk, KX_PK_SIZE);
    rd_copy(&r, b.client_sign_pk, SIGN_PK_SIZE);
    b.mem_bytes = rd_u64(&r);
    b.insn_budget = rd_u64(&r);
    size_t name_size = rd_u8(&r);
    const uint8_t *name_p = rd_take(&r, name_size);
    size_t script_size = rd_u32(&r);
    if (script_size > PSL_SCRIPT_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    const uint8_t *script_p = rd_take(&r, script_size);
    size_t args_size = rd_u32(&r);
    if (args_size > PSL_ARGS_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    const uint8_t *args_p = rd_take(&r, args_size);
    rd_copy(&r, b.issuer_pk, SIGN_PK_SIZE);
    (void)rd_take(&r, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;

    if (script_size == 0 || b.worker_count == 0 || b.worker_count > PROVISION_WORKERS_MAX ||
        b.worker_index >= b.worker_count || b.mem_bytes == 0 || b.insn_budget == 0 ||
        (name_size && memchr(name_p, 0, name_size)))
        return PSL_ERR_MALFORMED;
    err = meta_decode(&b.meta, meta_p, meta_size);
    if (err)
        return err;
    err = cert_decode(&b.cert, cert_p, CERT_SIZE);
    if (err)
        return err;
    b.has_deleg = has_deleg;
    if (has_deleg && (err = deleg_decode(&b.deleg, deleg_p, DELEG_SIZE)))
        return err;
    if (name_size)
        memcpy(b.chunk_name, name_p, name_size);
    b.chunk_name[name_size] = '\0';

    /* Everything is bounded and authenticated: allocate. */
    b.capsule_key = secret_alloc(AEAD_KEY_SIZE);
    b.script = malloc(script_size + 1 + args_size + 1);
    if (!b.capsule_key || !b.script) {
        secret_free(b.capsule_key);
        free(b.script);
        return PSL_ERR_NOMEM;
    }
    memcpy(b.capsule_key, key_p, AEAD_KEY_SIZE);
    memcpy(b.script, script_p, script_size);
    b.script[script_size] = '\0';
    b.script_size = script_size;
    uint8_t *args = b.script + script_size + 1;
    if (args_size)
        memcpy(args, args_p, args_size);
    args[args_size] = '\0';
    b.args = args;
    b.args_size = args_size;
    *out = b;
    return PSL_OK;
}

psl_err provision_bundle_check(const struct provision_bundle *b,
                               const uint8_t sign_pk[SIGN_PK_SIZE], const uint8_t kx_pk[KX_PK_SIZE],
                               const uint8_t nonce[ATTEST_NONCE_SIZE], uint64_t now_ms)
{
    const struct delegation *d = b->has_deleg ? &b->deleg : NULL;
    if (memcmp(b->issuer_pk, b->meta.owner_pk, SIGN_PK_SIZE) != 0) {
        /* Not the owner: only the leader named by an owner-signed delegation of this capsule. */
        if (!d || memcmp(d->leader_pk, b->issuer_pk, SIGN_PK_SIZE) != 0)
            return PSL_ERR_CERT_ISSUER;
        psl_err err = deleg_verify(d, &b->meta, now_ms);
        if (err)
            return err;
    }
    if (!ct_equal(b->nonce, nonce, ATTEST_NONCE_SIZE))
        return PSL_ERR_ATTEST_NONCE;
    psl_err err = cert_verify(&b->cert, d, &b->meta, now_ms);
    if (err)
        return err;
    if (memcmp(b->cert.sign_pk, sign_pk, SIGN_PK_SIZE) != 0 ||
        memcmp(b->cert.kx_pk, kx_pk, KX_PK_SIZE) != 0)
        return PSL_ERR_ATTEST_BINDING;
    return PSL_OK;
}

psl_err provision_open(const struct kx_keypair *kx, const uint8_t sign_pk[SIGN_PK_SIZE],
                       const uint8_t nonce[ATTEST_NONCE_SIZE], const uint8_t *sealed,
                       size_t sealed_size, uint64_t now_ms, struct provision_bundle *out)
{
    if (sealed_size > PROVISION_SEALED_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (sealed_size < SEAL_OVERHEAD + PROVISION_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    size_t size = sealed_size - SEAL_OVERHEAD;
    uint8_t *plain = secret_alloc(size);
    if (!plain)
        return PSL_ERR_NOMEM;
    struct provision_bundle b;
    psl_err err = seal_open(plain, sealed, sealed_size, kx);
    if (err)
        goto out_free_plain;
    err = provision_bundle_decode(&b, plain, size);
    if (err)
        goto out_free_plain;
    err = provision_bundle_check(&b, sign_pk, kx->pk, nonce, now_ms);
    if (err) {
        provision_bundle_free(&b);
        goto out_free_plain;
    }
    *out = b;
out_free_plain:
    secret_free(plain); /* wipes */
    return err;
}

void provision_bundle_free(struct provision_bundle *b)
{
    secret_free(b->capsule_key);
    if (b->script) {
        secret_wipe(b->script, b->script_size + 1 + b->args_size + 1);
        free(b->script);
    }
    secret_wipe(b, sizeof *b);
}

/* ---- results ---- */

/* SHA-256(job_id || worker_index u32 || SHA-256(result)), signed as "psl-result-v1" || it. */
static void result_digest(uint8_t out[HASH_SIZE], const uint8_t job_id[JOB_ID_SIZE],
                          uint32_t worker_index, const uint8_t *data, size_t size)
{
    uint8_t inner[JOB_ID_SIZE + 4 + HASH_SIZE];
    memcpy(inner, job_id, JOB_ID_SIZE);
    put_le32(inner + JOB_ID_SIZE, worker_index);
    hash_sha256(inner + JOB_ID_SIZE + 4, data, size);
    hash_sha256(out, inner, sizeof inner);
}

psl_err result_seal(const struct signer *worker, const struct provision_bundle *b,
                    const uint8_t *result, size_t result_size, uint8_t *out, size_t cap,
                    size_t *out_size)
{
    if (result_size > RESULT_DATA_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (memcmp(worker->pk, b->cert.sign_pk, SIGN_PK_SIZE) != 0)
        return PSL_ERR_INVALID_ARG;
    size_t sealed_size = result_sealed_size(b, result_size);
    if (cap < sealed_size)
        return PSL_ERR_TOO_LARGE;
    size_t size = sealed_size - SEAL_OVERHEAD;
    uint8_t *plain = malloc(size);
    if (!plain)
        return PSL_ERR_NOMEM;
    struct wr w;
    wr_init(&w, plain, size);
    wr_bytes(&w, result_magic, sizeof result_magic);
    wr_u8(&w, RESULT_VERSION);
    wr_bytes(&w, b->job_id, JOB_ID_SIZE);
    wr_u32(&w, b->worker_index);
    uint8_t *cert_p = wr_reserve(&w, CERT_SIZE);
    if (cert_p)
        cert_encode(&b->cert, cert_p);
    wr_u8(&w, b->has_deleg ? 1 : 0);
    if (b->has_deleg) {
        uint8_t *deleg_p = wr_reserve(&w, DELEG_SIZE);
        if (deleg_p)
            deleg_encode(&b->deleg, deleg_p);
    }
    wr_u32(&w, (uint32_t)result_size);
    wr_bytes(&w, result, result_size);
    uint8_t *sig = wr_reserve(&w, SIGN_SIG_SIZE);
    PSL_ASSERT_SIZE(w, size);
    uint8_t h[HASH_SIZE];
    result_digest(h, b->job_id, b->worker_index, result, result_size);
    sign_tagged(worker, sig, RESULT_SIG_TAG, h);
    psl_err err = seal_box(out, plain, size, b->client_kx_pk);
    secret_wipe(plain, size); /* the result is the client's secret too */
    free(plain);
    if (err)
        return err;
    *out_size = sealed_size;
    return PSL_OK;
}

psl_err result_decode(struct result_plain *out, const uint8_t *plain, size_t size)
{
    if (size > PSL_RESULT_SIZE_MAX - SEAL_OVERHEAD)
        return PSL_ERR_TOO_LARGE;
    if (size < RESULT_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(plain, result_magic, sizeof result_magic) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct result_plain p;
    memset(&p, 0, sizeof p);
    struct rd r;
    rd_init(&r, plain + sizeof result_magic, size - sizeof result_magic);
    if (rd_u8(&r) != RESULT_VERSION)
        return PSL_ERR_BAD_VERSION;
    rd_copy(&r, p.job_id, JOB_ID_SIZE);
    p.worker_index = rd_u32(&r);
    const uint8_t *cert_p = rd_take(&r, CERT_SIZE);
    uint8_t has_deleg = rd_u8(&r);
    if (has_deleg > 1)
        return PSL_ERR_MALFORMED;
    const uint8_t *deleg_p = has_deleg ? rd_take(&r, DELEG_SIZE) : NULL;
    p.size = rd_u32(&r);
    if (p.size > RESULT_DATA_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    p.data = rd_take(&r, p.size);
    rd_copy(&r, p.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    err = cert_decode(&p.cert, cert_p, CERT_SIZE);
    if (err)
        return err;
    p.has_deleg = has_deleg;
    if (has_deleg && (err = deleg_decode(&p.deleg, deleg_p, DELEG_SIZE)))
        return err;
    *out = p;
    return PSL_OK;
}

psl_err result_verify(const struct result_plain *r, const struct capsule_meta *m,
                      const uint8_t job_id[JOB_ID_SIZE], uint64_t now_ms)
{
    /* A result of another job is a replay across jobs, whoever signed it. */
    if (memcmp(r->job_id, job_id, JOB_ID_SIZE) != 0)
        return PSL_ERR_REPLAY;
    uint8_t h[HASH_SIZE];
    result_digest(h, r->job_id, r->worker_index, r->data, r->size);
    if (!sign_verify_tagged(r->cert.sign_pk, r->sig, RESULT_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return cert_verify(&r->cert, r->has_deleg ? &r->deleg : NULL, m, now_ms);
}

psl_err result_open(const struct kx_keypair *kx, const struct capsule_meta *m,
                    const uint8_t job_id[JOB_ID_SIZE], uint64_t now_ms, const uint8_t *sealed,
                    size_t sealed_size, struct result_opened *out)
{
    if (sealed_size > PSL_RESULT_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (sealed_size < SEAL_OVERHEAD + RESULT_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    size_t size = sealed_size - SEAL_OVERHEAD;
    uint8_t *buf = malloc(size);
    if (!buf)
        return PSL_ERR_NOMEM;
    struct result_plain p;
    psl_err err = seal_open(buf, sealed, sealed_size, kx);
    if (err)
        goto out_free;
    err = result_decode(&p, buf, size);
    if (err)
        goto out_free;
    err = result_verify(&p, m, job_id, now_ms);
    if (err)
        goto out_free;
    out->worker_index = p.worker_index;
    out->cert = p.cert;
    out->data = p.data;
    out->size = p.size;
    out->buf = buf;
    out->buf_size = size;
    return PSL_OK;
out_free:
    secret_wipe(buf, size);
    free(buf);
    return err;
}

void result_opened_free(struct result_opened *r)
{
    if (r->buf) {
        secret_wipe(r->buf, r->buf_size);
        free(r->buf);
    }
    memset(r, 0, sizeof *r);
}

/* ---- deployed functions ---- */

static const uint8_t invoke_magic[4] = {'P', 'S', 'L', 'I'};
#define INVOKE_SIG_TAG "psl-invoke-v1"

bool provision_is_function(const struct provision_bundle *b)
{
    return b->mode == PROVISION_MODE_FUNCTION;
}

psl_err invoke_seal(const struct signer *client, const uint8_t enclave_kx_pk[KX_PK_SIZE],
                    const struct invoke_request *req, uint8_t **out, size_t *out_size)
{
    if (req->args_size > PSL_ARGS_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t size = INVOKE_FIXED_SIZE + req->args_size;
    uint8_t *plain = malloc(size);
    uint8_t *sealed = malloc(size + SEAL_OVERHEAD);
    if (!plain || !sealed) {
        free(plain);
        free(sealed);
        return PSL_ERR_NOMEM;
    }
    struct wr w;
    wr_init(&w, plain, size);
    wr_bytes(&w, invoke_magic, 4);
    wr_u8(&w, INVOKE_VERSION);
    wr_bytes(&w, req->id, INVOKE_ID_SIZE);
    wr_u64(&w, req->issued_ms);
    wr_bytes(&w, req->reply_kx_pk, KX_PK_SIZE);
    wr_u32(&w, (uint32_t)req->args_size);
    if (req->args_size)
        wr_bytes(&w, req->args, req->args_size);
    PSL_ASSERT(!w.err && w.pos == size - SIGN_SIG_SIZE);
    uint8_t h[HASH_SIZE];
    hash_sha256(h, plain, size - SIGN_SIG_SIZE);
    sign_tagged(client, plain + size - SIGN_SIG_SIZE, INVOKE_SIG_TAG, h);
    psl_err err = seal_box(sealed, plain, size, enclave_kx_pk);
    secret_wipe(plain, size);
    free(plain);
    if (err) {
        free(sealed);
        return err;
    }
    *out = sealed;
    *out_size = size + SEAL_OVERHEAD;
    return PSL_OK;
}

psl_err invoke_decode(struct invoke_opened *out, const uint8_t client_sign_pk[SIGN_PK_SIZE],
                      const uint8_t *plain, size_t size)
{
    if (size < INVOKE_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    if (size > INVOKE_FIXED_SIZE + PSL_ARGS_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    uint8_t h[HASH_SIZE];
    hash_sha256(h, plain, size - SIGN_SIG_SIZE);
    if (!sign_verify_tagged(client_sign_pk, plain + size - SIGN_SIG_SIZE, INVOKE_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    struct invoke_opened o;
    memset(&o, 0, sizeof o);
    struct rd r;
    rd_init(&r, plain, size - SIGN_SIG_SIZE);
    const uint8_t *magic = rd_take(&r, 4);
    uint8_t version = rd_u8(&r);
    rd_copy(&r, o.id, INVOKE_ID_SIZE);
    o.issued_ms = rd_u64(&r);
    rd_copy(&r, o.reply_kx_pk, KX_PK_SIZE);
    uint32_t args_size = rd_u32(&r);
    if (r.err)
        return r.err;
    if (memcmp(magic, invoke_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (version != INVOKE_VERSION)
        return PSL_ERR_BAD_VERSION;
    if (args_size != rd_left(&r))
        return PSL_ERR_MALFORMED;
    o.args = rd_take(&r, args_size);
    o.args_size = args_size;
    *out = o;
    return PSL_OK;
}

psl_err invoke_open(const struct kx_keypair *kx, const uint8_t client_sign_pk[SIGN_PK_SIZE],
                    const uint8_t *sealed, size_t sealed_size, struct invoke_opened *out)
{
    if (sealed_size < SEAL_OVERHEAD + INVOKE_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    if (sealed_size > INVOKE_SEALED_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t size = sealed_size - SEAL_OVERHEAD;
    uint8_t *plain = malloc(size);
    if (!plain)
        return PSL_ERR_NOMEM;
    psl_err err = seal_open(plain, sealed, sealed_size, kx);
    struct invoke_opened o;
    if (!err)
        err = invoke_decode(&o, client_sign_pk, plain, size);
    if (err) {
        secret_wipe(plain, size);
        free(plain);
        return err;
    }
    o.buf = plain;
    o.buf_size = size;
    *out = o;
    return PSL_OK;
}

void invoke_opened_free(struct invoke_opened *o)
{
    if (o->buf) {
        secret_wipe(o->buf, o->buf_size);
        free(o->buf);
    }
    memset(o, 0, sizeof *o);
}
