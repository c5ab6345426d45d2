/* test_attest.c: unit tests of src/attest: sim evidence and its verifier, provisioning bundles
 * (owner and leader paths) and sealed results, end to end and each refusal with its exact error.
 * The host relays every message and may replay, swap or forge any of them; an enclave must only
 * ever be provisioned by its capsule's owner or delegated leader, for its own keys and this
 * session, and a client must only accept results signed by a certified worker of its job.
 * With PSL_ATTEST_SEED_DIR set, test_write_fuzz_seeds also writes the seed corpora of
 * fuzz_evidence, fuzz_provision and fuzz_result (deterministic bytes) under that directory:
 *   PSL_ATTEST_SEED_DIR=tests/fuzz/corpus build/tests/test_attest */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/evidence.h"
#include "attest/provision.h"
#include "capsule_fixture.h"

#define EVIDENCE_SIG_TAG "psl-evidence-v1"
#define PROV_SIG_TAG     "psl-prov-v1"

enum {
    AFX_SEED_PLATFORM = 200,
    AFX_SEED_OTHER_PLATFORM = 201,
    AFX_SEED_CLIENT_KX = 202,
    AFX_SEED_OTHER_CLIENT_KX = 203,
    AFX_SEED_JOB = 210,
    AFX_SEED_NONCE = 220,
    AFX_SEED_ENCLAVE = 300,
};

/* An enclave's keys: made inside it, never stored outside. */
struct encl {
    struct signer sign;
    struct kx_keypair kx;
};

struct afx {
    struct fx f;
    struct signer platform;       /* this host's sim platform key (trusted by the policy) */
    struct signer other_platform; /* a platform key nobody trusts */
    struct encl enc;              /* the enclave under test */
    struct encl enc2;             /* another enclave on the same host */
    struct kx_keypair client_kx;
    struct kx_keypair other_client_kx;
    struct attest_policy policy;
    uint8_t nonce[ATTEST_NONCE_SIZE];
    uint8_t nonce2[ATTEST_NONCE_SIZE]; /* a later session's */
    struct provision_issuer owner_is;
    struct provision_issuer leader_is;
    struct provision_cert_spec spec;
    struct provision_job job;
};

static const char afx_script[] = "function main(args) return 'sum=' .. (args.a + args.b) end";
static const char afx_args[] = "{\"a\": 2, \"b\": 3}";

static void want_at(psl_err got, psl_err want, const char *what, int line)
{
    if (got != want)
        fail_msg("line %d: %s: got %s, want %s", line, what, psl_err_name(got), psl_err_name(want));
    if (psl_err_is_auth(want))
        assert_int_equal(psl_err_outward(got), PSL_ERR_AUTH);
}
#define WANT(call, want) want_at((call), (want), #call, __LINE__)

static void encl_init(struct encl *e, unsigned n)
{
    uint8_t seed[32];
    tu_seed(seed, AFX_SEED_ENCLAVE + 2 * n);
    assert_int_equal(signer_init(&e->sign, seed), PSL_OK);
    tu_seed(seed, AFX_SEED_ENCLAVE + 2 * n + 1);
    assert_int_equal(kx_init(&e->kx, seed), PSL_OK);
}

static void encl_deinit(struct encl *e)
{
    signer_deinit(&e->sign);
    kx_deinit(&e->kx);
}

static void kx_from_seed(struct kx_keypair *kp, unsigned n)
{
    uint8_t seed[32];
    tu_seed(seed, n);
    assert_int_equal(kx_init(kp, seed), PSL_OK);
}

static void job_fill(struct afx *a, struct provision_job *j)
{
    uint8_t seed[32];
    memset(j, 0, sizeof *j);
    tu_seed(seed, AFX_SEED_JOB);
    memcpy(j->job_id, seed, JOB_ID_SIZE);
    j->worker_index = 1;
    j->worker_count = 3;
    memcpy(j->client_kx_pk, a->client_kx.pk, KX_PK_SIZE);
    memcpy(j->client_sign_pk, a->f.owner.pk, SIGN_PK_SIZE);
    j->mem_bytes = 64u << 20;
    j->insn_budget = 1000000;
    j->chunk_name = "=job.lua";
    j->script = (const uint8_t *)afx_script;
    j->script_size = sizeof afx_script - 1;
    j->args = (const uint8_t *)afx_args;
    j->args_size = sizeof afx_args - 1;
}

static int afx_setup(void **state)
{
    struct afx *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    fx_init(&a->f);
    fx_signer(&a->platform, AFX_SEED_PLATFORM);
    fx_signer(&a->other_platform, AFX_SEED_OTHER_PLATFORM);
    encl_init(&a->enc, 0);
    encl_init(&a->enc2, 1);
    kx_from_seed(&a->client_kx, AFX_SEED_CLIENT_KX);
    kx_from_seed(&a->other_client_kx, AFX_SEED_OTHER_CLIENT_KX);
    attest_policy_init(&a->policy, &a->f.meta);
    assert_int_equal(attest_policy_trust_platform(&a->policy, a->platform.pk), PSL_OK);
    tu_seed(a->nonce, AFX_SEED_NONCE);
    tu_seed(a->nonce2, AFX_SEED_NONCE + 1);
    a->owner_is = (struct provision_issuer){
        .signer = &a->f.owner, .deleg = NULL, .meta = &a->f.meta, .capsule_key = a->f.capsule_key};
    a->leader_is = (struct provision_issuer){.signer = &a->f.w[FX_LEADER].keys.sign,
                                             .deleg = &a->f.deleg,
                                             .meta = &a->f.meta,
                                             .capsule_key = a->f.capsule_key};
    a->spec = (struct provision_cert_spec){
        .role = ROLE_WORKER, .not_before_ms = FX_CERT_NB, .not_after_ms = FX_CERT_NA, .serial = 77};
    job_fill(a, &a->job);
    *state = a;
    return 0;
}

static int afx_teardown(void **state)
{
    struct afx *a = *state;
    kx_deinit(&a->other_client_kx);
    kx_deinit(&a->client_kx);
    encl_deinit(&a->enc2);
    encl_deinit(&a->enc);
    signer_deinit(&a->other_platform);
    signer_deinit(&a->platform);
    fx_deinit(&a->f);
    free(a);
    return 0;
}

/* ---- helpers ---- */

/* What the host's sim platform does when enclave e asks for a report over nonce: evidence. */
static void evidence_for(struct evidence *ev, const struct signer *platform,
                         const uint8_t measurement[HASH_SIZE], const struct encl *e,
                         const uint8_t nonce[ATTEST_NONCE_SIZE])
{
    uint8_t rd[EVIDENCE_REPORT_DATA_SIZE];
    attest_report_data(rd, e->sign.pk, e->kx.pk, nonce);
    evidence_sim_sign(ev, platform, measurement, rd);
}

/* The attestation message enclave e sends for nonce: its keys and the platform's evidence. */
static size_t msg_for(uint8_t *msg, const struct signer *platform,
                      const uint8_t measurement[HASH_SIZE], const struct encl *e,
                      const uint8_t nonce[ATTEST_NONCE_SIZE])
{
    struct evidence ev;
    evidence_for(&ev, platform, measurement, e, nonce);
    size_t n = 0;
    assert_int_equal(attest_msg_encode(&ev, e->sign.pk, e->kx.pk, msg, ATTEST_MSG_SIZE_MAX, &n),
                     PSL_OK);
    return n;
}

/* Signs evidence with key as a platform would (the format's tag and digest, by hand). */
static void evidence_resign(struct evidence *ev, const struct signer *key)
{
    uint8_t buf[PSL_EVIDENCE_SIZE_MAX], h[HASH_SIZE];
    size_t n = 0;
    memcpy(ev->platform_pk, key->pk, SIGN_PK_SIZE);
    assert_int_equal(evidence_encode(ev, buf, sizeof buf, &n), PSL_OK);
    hash_sha256(h, buf, n - SIGN_SIG_SIZE);
    sign_tagged(key, ev->sig, EVIDENCE_SIG_TAG, h);
}

static size_t msg_of(uint8_t *msg, const struct evidence *ev, const struct encl *e)
{
    size_t n = 0;
    assert_int_equal(attest_msg_encode(ev, e->sign.pk, e->kx.pk, msg, ATTEST_MSG_SIZE_MAX, &n),
                     PSL_OK);
    return n;
}

/* Verifies and checks that *out is untouched on failure. */
static psl_err verify_msg(const struct attest_policy *p, const uint8_t *msg, size_t size,
                          const uint8_t nonce[ATTEST_NONCE_SIZE], struct attest_verified *out)
{
    struct attest_verified v, before;
    memset(&v, 0x5a, sizeof v);
    before = v;
    psl_err err = attest_verify(p, msg, size, nonce, &v);
    if (err)
        assert_memory_equal(&v, &before, sizeof v);
    else if (out)
        *out = v;
    return err;
}

/* Verified enclave e as the owner's client sees it after attestation. */
static void verified_of(struct afx *a, const struct encl *e, struct attest_verified *v)
{
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(msg, &a->platform, a->f.measurement, e, a->nonce);
    assert_int_equal(attest_verify(&a->policy, msg, n, a->nonce, v), PSL_OK);
}

/* A sealed bundle for recipient with this certificate, signed by is. Returns malloc'd bytes. */
static uint8_t *seal_with(const struct afx *a, const struct provision_issuer *is,
                          const struct writer_cert *c, const uint8_t nonce[ATTEST_NONCE_SIZE],
                          const uint8_t recipient[KX_PK_SIZE], size_t *size)
{
    uint8_t *sealed = NULL;
    assert_int_equal(provision_seal(is, c, nonce, &a->job, recipient, &sealed, size), PSL_OK);
    return sealed;
}

/* A certificate for enclave e signed by issuer (no checks, so tests can forge). */
static void cert_for(const struct afx *a, struct writer_cert *c, const struct encl *e,
                     const uint8_t capsule[HASH_SIZE], const struct signer *issuer)
{
    memset(c, 0, sizeof *c);
    c->role = ROLE_WORKER;
    memcpy(c->capsule, capsule, HASH_SIZE);
    memcpy(c->sign_pk, e->sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, e->kx.pk, KX_PK_SIZE);
    memcpy(c->measurement, a->f.measurement, HASH_SIZE);
    c->not_before_ms = FX_CERT_NB;
    c->not_after_ms = FX_CERT_NA;
    c->serial = 5;
    cert_sign(c, issuer);
}

/* Opens a bundle as enclave e in session nonce; checks that *out stays untouched on failure. */
static psl_err open_as(const struct encl *e, const uint8_t nonce[ATTEST_NONCE_SIZE],
                       const uint8_t *sealed, size_t size, struct provision_bundle *out)
{
    struct provision_bundle b, before;
    memset(&b, 0x6b, sizeof b);
    before = b;
    psl_err err = provision_open(&e->kx, e->sign.pk, nonce, sealed, size, FX_NOW, &b);
    if (err) {
        assert_memory_equal(&b, &before, sizeof b);
        return err;
    }
    if (out)
        *out = b;
    else
        provision_bundle_free(&b);
    return PSL_OK;
}

/* Plaintext-level forgery: plain (secret memory from provision_encode) re-signed by s and sealed
 * to recipient. */
static void bundle_resign(uint8_t *plain, size_t size, const struct signer *s)
{
    uint8_t h[HASH_SIZE];
    memcpy(plain + size - SIGN_SIG_SIZE - SIGN_PK_SIZE, s->pk, SIGN_PK_SIZE);
    hash_sha256(h, plain, size - SIGN_SIG_SIZE);
    sign_tagged(s, plain + size - SIGN_SIG_SIZE, PROV_SIG_TAG, h);
}

static uint8_t *seal_plain(const uint8_t *plain, size_t size, const uint8_t recipient[KX_PK_SIZE],
                           size_t *sealed_size)
{
    uint8_t *sealed = malloc(size + SEAL_OVERHEAD);
    assert_non_null(sealed);
    assert_int_equal(seal_box(sealed, plain, size, recipient), PSL_OK);
    *sealed_size = size + SEAL_OVERHEAD;
    return sealed;
}

/* An honestly provisioned bundle for a->enc (owner path). */
static void provisioned(struct afx *a, struct provision_bundle *b)
{
    struct attest_verified v;
    verified_of(a, &a->enc, &v);
    struct writer_cert c;
    assert_int_equal(provision_issue_cert(&a->owner_is, &v, &a->spec, FX_NOW, &c), PSL_OK);
    size_t size = 0;
    uint8_t *sealed = seal_with(a, &a->owner_is, &c, a->nonce, v.kx_pk, &size);
    assert_int_equal(open_as(&a->enc, a->nonce, sealed, size, b), PSL_OK);
    free(sealed);
}

/* ---- the honest path ---- */

static void test_honest_path_end_to_end(void **state)
{
    struct afx *a = *state;
    /* 1. The client picks a fresh nonce; the enclave's host answers with sim evidence. */
    uint8_t nonce[ATTEST_NONCE_SIZE];
    attest_nonce_new(nonce);
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t msg_size = msg_for(msg, &a->platform, a->f.measurement, &a->enc, nonce);
    assert_int_equal(msg_size, ATTEST_MSG_HEADER_SIZE + EVIDENCE_FIXED_SIZE);

    /* 2. The client verifies it against the capsule's policy. */
    struct attest_verified v;
    assert_int_equal(verify_msg(&a->policy, msg, msg_size, nonce, &v), PSL_OK);
    assert_int_equal(v.tee_type, TEE_SIM);
    assert_memory_equal(v.measurement, a->f.measurement, HASH_SIZE);
    assert_memory_equal(v.sign_pk, a->enc.sign.pk, SIGN_PK_SIZE);
    assert_memory_equal(v.kx_pk, a->enc.kx.pk, KX_PK_SIZE);
    assert_memory_equal(v.platform_pk, a->platform.pk, SIGN_PK_SIZE);
    assert_non_null(strstr(v.description, "simulation: no hardware protection"));

    /* 3. It certifies the enclave's keys and seals the bundle to it. */
    struct writer_cert c;
    assert_int_equal(provision_issue_cert(&a->owner_is, &v, &a->spec, FX_NOW, &c), PSL_OK);
    assert_int_equal(c.role, ROLE_WORKER);
    assert_memory_equal(c.capsule, a->f.meta.name, HASH_SIZE);
    assert_memory_equal(c.measurement, a->f.measurement, HASH_SIZE);
    assert_memory_equal(c.issuer_pk, a->f.owner.pk, SIGN_PK_SIZE);
    assert_true(c.serial == 77);
    uint8_t *sealed = NULL;
    size_t sealed_size = 0;
    assert_int_equal(
        provision_seal(&a->owner_is, &c, nonce, &a->job, v.kx_pk, &sealed, &sealed_size), PSL_OK);
    /* The host sees neither the script nor the capsule key. */
    assert_null(memmem(sealed, sealed_size, afx_script, 8));
    assert_null(memmem(sealed, sealed_size, a->f.capsule_key, 8));

    /* 4. The enclave opens it for its own keys and this session. */
    struct provision_bundle b;
    assert_int_equal(open_as(&a->enc, nonce, sealed, sealed_size, &b), PSL_OK);
    free(sealed);
    assert_memory_equal(b.meta.name, a->f.meta.name, HASH_SIZE);
    assert_memory_equal(b.capsule_key, a->f.capsule_key, AEAD_KEY_SIZE);
    uint8_t ce1[CERT_SIZE], ce2[CERT_SIZE];
    cert_encode(&b.cert, ce1);
    cert_encode(&c, ce2);
    assert_memory_equal(ce1, ce2, CERT_SIZE);
    assert_false(b.has_deleg);
    assert_memory_equal(b.job_id, a->job.job_id, JOB_ID_SIZE);
    assert_memory_equal(b.nonce, nonce, ATTEST_NONCE_SIZE);
    assert_int_equal(b.worker_index, 1);
    assert_int_equal(b.worker_count, 3);
    assert_memory_equal(b.client_kx_pk, a->client_kx.pk, KX_PK_SIZE);
    assert_memory_equal(b.client_sign_pk, a->f.owner.pk, SIGN_PK_SIZE);
    assert_true(b.mem_bytes == 64u << 20);
    assert_true(b.insn_budget == 1000000);
    assert_string_equal(b.chunk_name, "=job.lua");
    assert_int_equal(b.script_size, sizeof afx_script - 1);
    assert_string_equal((const char *)b.script, afx_script);
    assert_int_equal(b.args_size, sizeof afx_args - 1);
    assert_string_equal((const char *)b.args, afx_args);
    assert_memory_equal(b.issuer_pk, a->f.owner.pk, SIGN_PK_SIZE);

    /* 5. The worker seals its result to the client; the client opens and verifies it. */
    static const char out_text[] = "sum=5";
    uint8_t rbuf[1024];
    size_t rsize = 0;
    assert_int_equal(result_seal(&a->enc.sign, &b, (const uint8_t *)out_text, sizeof out_text - 1,
                                 rbuf, sizeof rbuf, &rsize),
                     PSL_OK);
    assert_int_equal(rsize, result_sealed_size(&b, sizeof out_text - 1));
    assert_null(memmem(rbuf, rsize, out_text, sizeof out_text - 1));
    struct result_opened r;
    assert_int_equal(result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, rbuf, rsize, &r),
                     PSL_OK);
    assert_int_equal(r.worker_index, 1);
    assert_int_equal(r.size, sizeof out_text - 1);
    assert_memory_equal(r.data, out_text, r.size);
    assert_memory_equal(r.cert.sign_pk, a->enc.sign.pk, SIGN_PK_SIZE);
    result_opened_free(&r);
    assert_null(r.buf);

    provision_bundle_free(&b);
    assert_null(b.capsule_key);
    assert_null(b.script);
}

static void test_defaults_and_coordinator(void **state)
{
    struct afx *a = *state;
    /* Limits left at 0 travel as the defaults; no chunk name and no args are fine. */
    struct provision_job j = a->job;
    j.mem_bytes = 0;
    j.insn_budget = 0;
    j.chunk_name = NULL;
    j.args = NULL;
    j.args_size = 0;
    j.worker_index = 0;
    j.worker_count = 1;
    struct attest_verified v;
    verified_of(a, &a->enc, &v);
    struct provision_cert_spec spec = a->spec;
    spec.role = ROLE_COORDINATOR;
    spec.serial = 0; /* random */
    struct writer_cert c;
    assert_int_equal(provision_issue_cert(&a->owner_is, &v, &spec, FX_NOW, &c), PSL_OK);
    assert_int_equal(c.role, ROLE_COORDINATOR);
    uint8_t *sealed = NULL;
    size_t size = 0;
    assert_int_equal(provision_seal(&a->owner_is, &c, a->nonce, &j, v.kx_pk, &sealed, &size),
                     PSL_OK);
    struct provision_bundle b;
    assert_int_equal(open_as(&a->enc, a->nonce, sealed, size, &b), PSL_OK);
    free(sealed);
    assert_true(b.mem_bytes == PSL_LAMBDA_MEM_DEFAULT);
    assert_true(b.insn_budget == PSL_LAMBDA_INSN_DEFAULT);
    assert_string_equal(b.chunk_name, "");
    assert_int_equal(b.args_size, 0);
    assert_string_equal((const char *)b.args, "");
    assert_int_equal(b.worker_count, 1);
    assert_int_equal(b.cert.role, ROLE_COORDINATOR);
    provision_bundle_free(&b);
}

/* ---- evidence and attestation message encodings ---- */

static void test_report_data_known_answer(void **state)
{
    struct afx *a = *state;
    uint8_t rd[EVIDENCE_REPORT_DATA_SIZE], cat[13 + 32 + 32], h[HASH_SIZE];
    attest_report_data(rd, a->enc.sign.pk, a->enc.kx.pk, a->nonce);
    memcpy(cat, "psl-report-v1", 13);
    memcpy(cat + 13, a->enc.sign.pk, 32);
    memcpy(cat + 45, a->enc.kx.pk, 32);
    hash_sha256(h, cat, sizeof cat);
    assert_memory_equal(rd, h, HASH_SIZE);
    assert_memory_equal(rd + HASH_SIZE, a->nonce, ATTEST_NONCE_SIZE);
    /* The key order matters: swapped keys give other report data. */
    uint8_t swapped[EVIDENCE_REPORT_DATA_SIZE];
    attest_report_data(swapped, a->enc.kx.pk, a->enc.sign.pk, a->nonce);
    assert_memory_not_equal(rd, swapped, HASH_SIZE);
}

static void test_evidence_layout_and_round_trip(void **state)
{
    struct afx *a = *state;
    struct evidence ev;
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    uint8_t buf[PSL_EVIDENCE_SIZE_MAX];
    size_t n = 0;
    assert_int_equal(evidence_encode(&ev, buf, sizeof buf, &n), PSL_OK);
    assert_int_equal(n, EVIDENCE_FIXED_SIZE);
    assert_int_equal(EVIDENCE_FIXED_SIZE, 202);
    assert_memory_equal(buf, "PSLE", 4);
    assert_int_equal(buf[4], EVIDENCE_VERSION);
    assert_int_equal(buf[5], TEE_SIM);
    assert_int_equal(buf[6] | buf[7] << 8, 0);
    assert_memory_equal(buf + 8, a->f.measurement, HASH_SIZE);
    assert_memory_equal(buf + 40, ev.report_data, EVIDENCE_REPORT_DATA_SIZE);
    assert_memory_equal(buf + 104, a->platform.pk, SIGN_PK_SIZE);
    assert_int_equal(buf[136] | buf[137] << 8, 0);
    /* The signature is the platform's over the tag and the hash of everything before it. */
    uint8_t h[HASH_SIZE];
    hash_sha256(h, buf, n - SIGN_SIG_SIZE);
    assert_true(sign_verify_tagged(a->platform.pk, buf + 138, EVIDENCE_SIG_TAG, h));

    struct evidence back;
    assert_int_equal(evidence_decode(&back, buf, n), PSL_OK);
    assert_int_equal(back.tee_type, TEE_SIM);
    assert_int_equal(back.hw_report_size, 0);
    assert_null(back.hw_report);
    uint8_t again[PSL_EVIDENCE_SIZE_MAX];
    size_t m = 0;
    assert_int_equal(evidence_encode(&back, again, sizeof again, &m), PSL_OK);
    assert_int_equal(m, n);
    assert_memory_equal(again, buf, n);

    /* The attestation message: header, then the evidence bytes. */
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t ms = msg_of(msg, &ev, &a->enc);
    assert_int_equal(ATTEST_MSG_HEADER_SIZE, 71);
    assert_memory_equal(msg, "PSLT", 4);
    assert_int_equal(msg[4], EVIDENCE_VERSION);
    assert_memory_equal(msg + 5, a->enc.sign.pk, SIGN_PK_SIZE);
    assert_memory_equal(msg + 37, a->enc.kx.pk, KX_PK_SIZE);
    assert_int_equal(msg[69] | msg[70] << 8, n);
    assert_memory_equal(msg + 71, buf, n);
    struct attest_msg am;
    assert_int_equal(attest_msg_decode(&am, msg, ms), PSL_OK);
    assert_memory_equal(am.sign_pk, a->enc.sign.pk, SIGN_PK_SIZE);
    assert_memory_equal(am.kx_pk, a->enc.kx.pk, KX_PK_SIZE);
    assert_ptr_equal(am.evidence, msg + ATTEST_MSG_HEADER_SIZE);
    assert_int_equal(am.evidence_size, n);
}

static void want_evidence_decode(const uint8_t *buf, size_t size, psl_err want, int line)
{
    struct evidence ev, before;
    memset(&ev, 0x3c, sizeof ev);
    before = ev;
    want_at(evidence_decode(&ev, buf, size), want, "evidence_decode", line);
    if (want != PSL_OK)
        assert_memory_equal(&ev, &before, sizeof ev);
}

static void test_evidence_decode_rejects(void **state)
{
    struct afx *a = *state;
    struct evidence ev;
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    uint8_t good[PSL_EVIDENCE_SIZE_MAX + 1], buf[PSL_EVIDENCE_SIZE_MAX + 1];
    size_t n = 0;
    assert_int_equal(evidence_encode(&ev, good, sizeof good, &n), PSL_OK);

    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);
        assert_non_null(p);
        memcpy(p, good, len);
        want_evidence_decode(p, len, PSL_ERR_TRUNCATED, __LINE__);
        free(p);
    }
    memcpy(buf, good, n);
    buf[n] = 0;
    want_evidence_decode(buf, n + 1, PSL_ERR_TRAILING, __LINE__);
    memset(buf, 0, sizeof buf);
    memcpy(buf, good, n);
    want_evidence_decode(buf, PSL_EVIDENCE_SIZE_MAX + 1, PSL_ERR_TOO_LARGE, __LINE__);

    memcpy(buf, good, n);
    buf[3] = 'X';
    want_evidence_decode(buf, n, PSL_ERR_BAD_MAGIC, __LINE__);
    static const uint8_t bad_versions[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof bad_versions; i++) {
        memcpy(buf, good, n);
        buf[4] = bad_versions[i];
        want_evidence_decode(buf, n, PSL_ERR_BAD_VERSION, __LINE__);
    }
    static const uint8_t bad_types[] = {0, TEE_TYPE_MAX + 1, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        memcpy(buf, good, n);
        buf[5] = bad_types[i];
        want_evidence_decode(buf, n, PSL_ERR_BAD_TYPE, __LINE__);
    }
    /* A reserved hardware type decodes only with its hardware report; sim only without. */
    memcpy(buf, good, n);
    buf[5] = TEE_SGX;
    want_evidence_decode(buf, n, PSL_ERR_MALFORMED, __LINE__);
    static const uint16_t bad_flags[] = {0x0002, 0x8000, 0xffff};
    for (size_t i = 0; i < 3; i++) {
        memcpy(buf, good, n);
        put_le16(buf + 6, bad_flags[i]);
        want_evidence_decode(buf, n, PSL_ERR_MALFORMED, __LINE__);
    }
    memcpy(buf, good, n);
    put_le16(buf + 6, EVIDENCE_FLAG_DEBUG);
    want_evidence_decode(buf, n, PSL_OK, __LINE__);

    /* A sim evidence with a hardware report. */
    struct evidence hw = ev;
    static const uint8_t quote[40] = {1, 2, 3};
    hw.hw_report = quote;
    hw.hw_report_size = sizeof quote;
    size_t hn = 0;
    assert_int_equal(evidence_encode(&hw, buf, sizeof buf, &hn), PSL_OK);
    want_evidence_decode(buf, hn, PSL_ERR_MALFORMED, __LINE__);
    buf[5] = TEE_SEV_SNP;
    want_evidence_decode(buf, hn, PSL_OK, __LINE__);
    /* A hardware report length past the end. */
    put_le16(buf + 136, (uint16_t)(sizeof quote + 1));
    want_evidence_decode(buf, hn, PSL_ERR_TRUNCATED, __LINE__);

    /* Exactly at the limit, and one past it. */
    static uint8_t big[EVIDENCE_HW_REPORT_SIZE_MAX + 1];
    hw.tee_type = TEE_TDX;
    hw.hw_report = big;
    hw.hw_report_size = EVIDENCE_HW_REPORT_SIZE_MAX;
    assert_int_equal(evidence_encode(&hw, buf, sizeof buf, &hn), PSL_OK);
    assert_int_equal(hn, PSL_EVIDENCE_SIZE_MAX);
    want_evidence_decode(buf, hn, PSL_OK, __LINE__);
    hw.hw_report_size = EVIDENCE_HW_REPORT_SIZE_MAX + 1;
    assert_int_equal(evidence_encode(&hw, buf, sizeof buf, &hn), PSL_ERR_TOO_LARGE);
    /* A short output buffer. */
    assert_int_equal(evidence_encode(&ev, buf, EVIDENCE_FIXED_SIZE - 1, &hn), PSL_ERR_TOO_LARGE);
}

static void want_msg_decode(const uint8_t *buf, size_t size, psl_err want, int line)
{
    struct attest_msg m, before;
    memset(&m, 0x3c, sizeof m);
    before = m;
    want_at(attest_msg_decode(&m, buf, size), want, "attest_msg_decode", line);
    if (want != PSL_OK)
        assert_memory_equal(&m, &before, sizeof m);
}

static void test_attest_msg_decode_rejects(void **state)
{
    struct afx *a = *state;
    uint8_t good[ATTEST_MSG_SIZE_MAX + 1], buf[ATTEST_MSG_SIZE_MAX + 1];
    size_t n = msg_for(good, &a->platform, a->f.measurement, &a->enc, a->nonce);
    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);
        assert_non_null(p);
        memcpy(p, good, len);
        want_msg_decode(p, len, PSL_ERR_TRUNCATED, __LINE__);
        free(p);
    }
    memcpy(buf, good, n);
    buf[n] = 7;
    want_msg_decode(buf, n + 1, PSL_ERR_TRAILING, __LINE__);
    memset(buf, 0, sizeof buf);
    memcpy(buf, good, n);
    want_msg_decode(buf, ATTEST_MSG_SIZE_MAX + 1, PSL_ERR_TOO_LARGE, __LINE__);
    memcpy(buf, good, n);
    buf[0] = 'Q';
    want_msg_decode(buf, n, PSL_ERR_BAD_MAGIC, __LINE__);
    memcpy(buf, good, n);
    buf[4] = 9;
    want_msg_decode(buf, n, PSL_ERR_BAD_VERSION, __LINE__);
    memcpy(buf, good, n);
    put_le16(buf + 69, PSL_EVIDENCE_SIZE_MAX + 1);
    want_msg_decode(buf, n, PSL_ERR_TOO_LARGE, __LINE__);
    put_le16(buf + 69, 0xffff);
    want_msg_decode(buf, n, PSL_ERR_TOO_LARGE, __LINE__);
    /* An empty evidence frames fine and fails verification as truncated evidence. */
    memcpy(buf, good, ATTEST_MSG_HEADER_SIZE);
    put_le16(buf + 69, 0);
    want_msg_decode(buf, ATTEST_MSG_HEADER_SIZE, PSL_OK, __LINE__);
    WANT(verify_msg(&a->policy, buf, ATTEST_MSG_HEADER_SIZE, a->nonce, NULL), PSL_ERR_TRUNCATED);
}

/* ---- verifier refusals ---- */

static void test_wrong_measurement(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(msg, &a->platform, a->f.other_measurement, &a->enc, a->nonce);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_MEASUREMENT);
    /* A policy built without a capsule, or from one that lists none, allows any measurement. */
    struct attest_policy any;
    attest_policy_init(&any, NULL);
    assert_int_equal(attest_policy_trust_platform(&any, a->platform.pk), PSL_OK);
    WANT(verify_msg(&any, msg, n, a->nonce, NULL), PSL_OK);
    struct capsule_meta open = a->f.meta;
    open.measurement_count = 0;
    attest_policy_init(&any, &open);
    assert_int_equal(attest_policy_trust_platform(&any, a->platform.pk), PSL_OK);
    WANT(verify_msg(&any, msg, n, a->nonce, NULL), PSL_OK);
    /* The binary's own measurement, for a policy that lists it among others. */
    struct attest_policy two = a->policy;
    memcpy(two.measurements[1], a->f.other_measurement, HASH_SIZE);
    two.measurement_count = 2;
    WANT(verify_msg(&two, msg, n, a->nonce, NULL), PSL_OK);
}

static void test_untrusted_platform(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    /* Forged: evidence signed by a platform key the policy does not trust. */
    size_t n = msg_for(msg, &a->other_platform, a->f.measurement, &a->enc, a->nonce);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    struct attest_policy none;
    attest_policy_init(&none, &a->f.meta);
    n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    WANT(verify_msg(&none, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    /* Forged: names the trusted key but is signed by another. */
    struct evidence ev;
    evidence_for(&ev, &a->other_platform, a->f.measurement, &a->enc, a->nonce);
    memcpy(ev.platform_pk, a->platform.pk, SIGN_PK_SIZE);
    n = msg_of(msg, &ev, &a->enc);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_BAD_SIGNATURE);
    /* Honest evidence whose fields were changed after signing. */
    evidence_for(&ev, &a->platform, a->f.other_measurement, &a->enc, a->nonce);
    memcpy(ev.measurement, a->f.measurement, HASH_SIZE);
    n = msg_of(msg, &ev, &a->enc);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_BAD_SIGNATURE);

    /* A policy that refuses sim, and one that accepts hardware types it cannot verify. */
    n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    struct attest_policy p = a->policy;
    p.tee_mask = 0;
    WANT(verify_msg(&p, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    p.tee_mask = TEE_BIT(TEE_SGX) | TEE_BIT(TEE_SEV_SNP) | TEE_BIT(TEE_TDX);
    WANT(verify_msg(&p, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    static const uint8_t quote[64] = {0x51};
    for (uint8_t t = TEE_SGX; t <= TEE_TDX; t++) {
        evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
        ev.tee_type = t;
        ev.hw_report = quote;
        ev.hw_report_size = sizeof quote;
        n = msg_of(msg, &ev, &a->enc);
        WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
        WANT(verify_msg(&p, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    }

    /* Debug evidence, honestly signed: refused unless the policy allows debug. */
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    ev.flags = EVIDENCE_FLAG_DEBUG;
    evidence_resign(&ev, &a->platform);
    n = msg_of(msg, &ev, &a->enc);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_PLATFORM);
    p = a->policy;
    p.allow_debug = true;
    struct attest_verified v;
    WANT(verify_msg(&p, msg, n, a->nonce, &v), PSL_OK);
    assert_int_equal(v.flags, EVIDENCE_FLAG_DEBUG);
}

static void test_policy_platform_keys(void **state)
{
    struct afx *a = *state;
    struct attest_policy p;
    attest_policy_init(&p, &a->f.meta);
    assert_true(p.tee_mask == TEE_BIT(TEE_SIM));
    assert_false(p.allow_debug);
    assert_int_equal(p.measurement_count, a->f.meta.measurement_count);
    uint8_t pk[SIGN_PK_SIZE];
    for (unsigned i = 0; i < PSL_PLATFORM_KEYS_MAX; i++) {
        memset(pk, 0, sizeof pk);
        put_le32(pk, i + 1);
        assert_int_equal(attest_policy_trust_platform(&p, pk), PSL_OK);
    }
    assert_int_equal(p.platform_key_count, PSL_PLATFORM_KEYS_MAX);
    /* Already trusted: no duplicate, even when full. */
    assert_int_equal(attest_policy_trust_platform(&p, pk), PSL_OK);
    assert_int_equal(p.platform_key_count, PSL_PLATFORM_KEYS_MAX);
    assert_int_equal(attest_policy_trust_platform(&p, a->platform.pk), PSL_ERR_TOO_LARGE);
    /* The last slot is honoured. */
    p.platform_key_count--;
    assert_int_equal(attest_policy_trust_platform(&p, a->platform.pk), PSL_OK);
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    WANT(verify_msg(&p, msg, n, a->nonce, NULL), PSL_OK);
}

static void test_every_flipped_bit_fails(void **state)
{
    struct afx *a = *state;
    uint8_t good[ATTEST_MSG_SIZE_MAX], buf[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(good, &a->platform, a->f.measurement, &a->enc, a->nonce);
    WANT(verify_msg(&a->policy, good, n, a->nonce, NULL), PSL_OK);
    /* A policy that allows any measurement and debug, so that only the evidence's own integrity
     * stands between a flipped bit and acceptance. */
    struct attest_policy lax;
    attest_policy_init(&lax, NULL);
    lax.allow_debug = true;
    assert_int_equal(attest_policy_trust_platform(&lax, a->platform.pk), PSL_OK);
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(buf, good, n);
        tu_flip(buf, bit);
        psl_err err = verify_msg(&lax, buf, n, a->nonce, NULL);
        if (err == PSL_OK)
            fail_msg("attestation message with bit %zu flipped verifies", bit);
    }
}

static void test_replayed_and_stale_nonce(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    /* Session 1's evidence, replayed by the host in session 2. */
    size_t n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_OK);
    WANT(verify_msg(&a->policy, msg, n, a->nonce2, NULL), PSL_ERR_ATTEST_NONCE);
    /* Stale: the host handed the enclave an older nonce than the verifier's current one. */
    n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce2);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_NONCE);
    /* An all-zero nonce is just another wrong one. */
    static const uint8_t zero[ATTEST_NONCE_SIZE];
    WANT(verify_msg(&a->policy, msg, n, zero, NULL), PSL_ERR_ATTEST_NONCE);
    /* Two fresh nonces differ. */
    uint8_t x[ATTEST_NONCE_SIZE], y[ATTEST_NONCE_SIZE];
    attest_nonce_new(x);
    attest_nonce_new(y);
    assert_memory_not_equal(x, y, ATTEST_NONCE_SIZE);
}

static void test_report_data_binds_keys(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    struct evidence ev;
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    /* The keys presented swapped. */
    size_t n = 0;
    assert_int_equal(attest_msg_encode(&ev, a->enc.kx.pk, a->enc.sign.pk, msg, sizeof msg, &n),
                     PSL_OK);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_BINDING);
    /* Another enclave's keys presented with this enclave's evidence (a host substituting keys
     * it controls, hoping to be provisioned in the enclave's place). */
    n = msg_of(msg, &ev, &a->enc2);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_BINDING);
    assert_int_equal(attest_msg_encode(&ev, a->enc.sign.pk, a->enc2.kx.pk, msg, sizeof msg, &n),
                     PSL_OK);
    WANT(verify_msg(&a->policy, msg, n, a->nonce, NULL), PSL_ERR_ATTEST_BINDING);
    /* The evidence-level entry point says the same. */
    uint8_t eb[PSL_EVIDENCE_SIZE_MAX];
    size_t en = 0;
    assert_int_equal(evidence_encode(&ev, eb, sizeof eb, &en), PSL_OK);
    struct attest_verified v;
    WANT(attest_verify_evidence(&a->policy, eb, en, a->enc2.sign.pk, a->enc2.kx.pk, a->nonce, &v),
         PSL_ERR_ATTEST_BINDING);
    WANT(attest_verify_evidence(&a->policy, eb, en, a->enc.sign.pk, a->enc.kx.pk, a->nonce, &v),
         PSL_OK);
}

/* ---- provisioning refusals ---- */

static void test_bundle_sealed_to_other_enclave(void **state)
{
    struct afx *a = *state;
    struct attest_verified v;
    verified_of(a, &a->enc, &v);
    struct writer_cert c;
    assert_int_equal(provision_issue_cert(&a->owner_is, &v, &a->spec, FX_NOW, &c), PSL_OK);
    size_t size = 0;
    uint8_t *sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc2, a->nonce, sealed, size, NULL), PSL_ERR_DECRYPT);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_OK);
    /* Any change to the box. */
    sealed[size / 2] ^= 1;
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_DECRYPT);
    free(sealed);
}

static void test_bundle_cert_for_other_capsule(void **state)
{
    struct afx *a = *state;
    /* Owner-signed, for this enclave, but for another capsule. */
    struct writer_cert c;
    cert_for(a, &c, &a->enc, a->f.other.name, &a->f.owner);
    size_t size = 0;
    uint8_t *sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_FOREIGN);
    free(sealed);
    /* The issuer's own check refuses to issue one for a capsule it does not hold either. */
    struct attest_verified v;
    verified_of(a, &a->enc, &v);
    struct provision_issuer is = a->owner_is;
    is.meta = &a->f.other; /* owned by the stranger, not by this signer */
    WANT(provision_issue_cert(&is, &v, &a->spec, FX_NOW, &c), PSL_ERR_CERT_ISSUER);
}

static void test_bundle_cert_for_other_enclave(void **state)
{
    struct afx *a = *state;
    struct writer_cert c;
    /* A valid certificate of this capsule for enclave 2, sealed to enclave 1. */
    cert_for(a, &c, &a->enc2, a->f.meta.name, &a->f.owner);
    size_t size = 0;
    uint8_t *sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_ATTEST_BINDING);
    free(sealed);
    /* Half of each: enclave 1's signing key with enclave 2's X25519 key, and the reverse. */
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    memcpy(c.kx_pk, a->enc2.kx.pk, KX_PK_SIZE);
    cert_sign(&c, &a->f.owner);
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_ATTEST_BINDING);
    free(sealed);
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    memcpy(c.sign_pk, a->enc2.sign.pk, SIGN_PK_SIZE);
    cert_sign(&c, &a->f.owner);
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_ATTEST_BINDING);
    free(sealed);
}

static void test_bundle_other_certificate_failures(void **state)
{
    struct afx *a = *state;
    struct writer_cert c;
    size_t size = 0;
    uint8_t *sealed;
    /* Expired at the enclave's clock. */
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    c.not_after_ms = FX_NOW - 1;
    cert_sign(&c, &a->f.owner);
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_EXPIRED);
    free(sealed);
    /* A measurement the capsule does not allow. */
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    memcpy(c.measurement, a->f.other_measurement, HASH_SIZE);
    cert_sign(&c, &a->f.owner);
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_MEASUREMENT);
    free(sealed);
    /* Signed by the stranger, in a bundle the owner signed. */
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.stranger);
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    /* Tampered after signing. */
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    c.role = ROLE_LEADER;
    sealed = seal_with(a, &a->owner_is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_BAD_SIGNATURE);
    free(sealed);
}

static void test_bundle_issuer_signature_and_standing(void **state)
{
    struct afx *a = *state;
    struct writer_cert c;
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    uint8_t *plain = NULL, *sealed;
    size_t plain_size = 0, size = 0;
    assert_int_equal(provision_encode(&a->owner_is, &c, a->nonce, &a->job, &plain, &plain_size),
                     PSL_OK);
    /* Bit flips anywhere in the plaintext: the issuer signature fails. */
    static const size_t where[] = {0, 5, 7, 200, 1000, 1100};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        size_t at = where[i] < plain_size ? where[i] : plain_size - 1;
        plain[at] ^= 0x10;
        sealed = seal_plain(plain, plain_size, a->enc.kx.pk, &size);
        psl_err want = at < 4 ? PSL_ERR_BAD_MAGIC : PSL_ERR_BAD_SIGNATURE;
        WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), want);
        free(sealed);
        plain[at] ^= 0x10;
    }
    for (size_t at = plain_size - 100; at < plain_size; at++) { /* issuer_pk and signature */
        plain[at] ^= 0x01;
        sealed = seal_plain(plain, plain_size, a->enc.kx.pk, &size);
        WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_BAD_SIGNATURE);
        free(sealed);
        plain[at] ^= 0x01;
    }
    sealed = seal_plain(plain, plain_size, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_OK);
    free(sealed);
    /* The same bundle re-signed by a key with no standing in the capsule. */
    bundle_resign(plain, plain_size, &a->f.stranger);
    sealed = seal_plain(plain, plain_size, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    /* ... or by the enclave itself. */
    bundle_resign(plain, plain_size, &a->enc.sign);
    sealed = seal_plain(plain, plain_size, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    secret_free(plain);

    /* Signed through provision_seal by the stranger, the leader without a delegation, and the
     * leader with a delegation that names someone else. */
    struct provision_issuer is = a->owner_is;
    is.signer = &a->f.stranger;
    sealed = seal_with(a, &is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    is.signer = &a->f.w[FX_LEADER].keys.sign;
    sealed = seal_with(a, &is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    struct delegation other;
    fx_deleg_make(&a->f, &other, a->f.w[FX_COORD].keys.sign.pk, (uint8_t)ROLE_MASK_ALL,
                  &a->f.owner);
    is.deleg = &other;
    sealed = seal_with(a, &is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_ISSUER);
    free(sealed);
    /* A delegation naming the leader but signed by the leader itself, or expired. */
    struct delegation d;
    fx_deleg_make(&a->f, &d, a->f.w[FX_LEADER].keys.sign.pk, (uint8_t)ROLE_MASK_ALL,
                  &a->f.w[FX_LEADER].keys.sign);
    is.deleg = &d;
    sealed = seal_with(a, &is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_BAD_SIGNATURE);
    free(sealed);
    d = a->f.deleg;
    d.not_after_ms = FX_NOW - 1;
    deleg_sign(&d, &a->f.owner);
    sealed = seal_with(a, &is, &c, a->nonce, a->enc.kx.pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_ERR_CERT_EXPIRED);
    free(sealed);
}

static void test_bundle_replayed_from_earlier_session(void **state)
{
    struct afx *a = *state;
    struct attest_verified v;
    verified_of(a, &a->enc, &v);
    struct writer_cert c;
    assert_int_equal(provision_issue_cert(&a->owner_is, &v, &a->spec, FX_NOW, &c), PSL_OK);
    size_t size = 0;
    uint8_t *sealed = seal_with(a, &a->owner_is, &c, a->nonce, v.kx_pk, &size);
    WANT(open_as(&a->enc, a->nonce, sealed, size, NULL), PSL_OK);
    /* The host keeps it and replays it when the enclave is attested again (session 2). */
    WANT(open_as(&a->enc, a->nonce2, sealed, size, NULL), PSL_ERR_ATTEST_NONCE);
    free(sealed);
}

/* Offsets of the script_size and args_size fields, counted from the end of a plaintext. */
static size_t args_size_at(size_t plain_size, size_t args_size)
{
    return plain_size - SIGN_SIG_SIZE - SIGN_PK_SIZE - args_size - 4;
}

static size_t script_size_at(size_t plain_size, size_t script_size, size_t args_size)
{
    return args_size_at(plain_size, args_size) - script_size - 4;
}

static void test_bundle_limits(void **state)
{
    struct afx *a = *state;
    struct writer_cert c;
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    uint8_t *big = calloc(1, PSL_SCRIPT_SIZE_MAX + PSL_ARGS_SIZE_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', PSL_SCRIPT_SIZE_MAX + PSL_ARGS_SIZE_MAX + 2);
    uint8_t *out = NULL;
    size_t size = 0;

    /* Sealing side. */
    struct provision_job j = a->job;
    j.script = big;
    j.script_size = PSL_SCRIPT_SIZE_MAX + 1;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_TOO_LARGE);
    j = a->job;
    j.args = big;
    j.args_size = PSL_ARGS_SIZE_MAX + 1;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_TOO_LARGE);
    char name[PROVISION_CHUNK_NAME_SIZE_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    j = a->job;
    j.chunk_name = name;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_TOO_LARGE);
    j = a->job;
    j.script_size = 0;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_INVALID_ARG);
    j = a->job;
    j.worker_index = j.worker_count;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_INVALID_ARG);
    j.worker_index = 0;
    j.worker_count = 0;
    WANT(provision_seal(&a->owner_is, &c, a->nonce, &j, a->enc.kx.pk, &out, &size),
         PSL_ERR_INVALID_ARG);

    /* Everything exactly at its limit, with a delegation, round-trips. */
    j = a->job;
    j.script = big;
    j.script_size = PSL_SCRIPT_SIZE_MAX;
    j.args = big;
    j.args_size = PSL_ARGS_SIZE_MAX;
    name[PROVISION_CHUNK_NAME_SIZE_MAX] = '\0';
    j.chunk_name = name;
    struct writer_cert lc;
    cert_for(a, &lc, &a->enc, a->f.meta.name, &a->f.w[FX_LEADER].keys.sign);
    assert_int_equal(provision_seal(&a->leader_is, &lc, a->nonce, &j, a->enc.kx.pk, &out, &size),
                     PSL_OK);
    assert_true(size <= PROVISION_SEALED_SIZE_MAX);
    struct provision_bundle b;
    WANT(open_as(&a->enc, a->nonce, out, size, &b), PSL_OK);
    assert_int_equal(b.script_size, PSL_SCRIPT_SIZE_MAX);
    assert_int_equal(b.args_size, PSL_ARGS_SIZE_MAX);
    assert_int_equal(strlen(b.chunk_name), PROVISION_CHUNK_NAME_SIZE_MAX);
    assert_memory_equal(b.script, big, PSL_SCRIPT_SIZE_MAX);
    assert_memory_equal(b.args, big, PSL_ARGS_SIZE_MAX);
    assert_true(b.has_deleg);
    provision_bundle_free(&b);
    free(out);

    /* Opening side: a sealed blob over the limit is refused before it is opened. */
    uint8_t *huge = calloc(1, PROVISION_SEALED_SIZE_MAX + 1);
    assert_non_null(huge);
    WANT(open_as(&a->enc, a->nonce, huge, PROVISION_SEALED_SIZE_MAX + 1, NULL), PSL_ERR_TOO_LARGE);
    WANT(open_as(&a->enc, a->nonce, huge, SEAL_OVERHEAD + PROVISION_FIXED_SIZE - 1, NULL),
         PSL_ERR_TRUNCATED);
    WANT(open_as(&a->enc, a->nonce, huge, 0, NULL), PSL_ERR_TRUNCATED);
    free(huge);

    /* Validly signed bundles whose lengths claim more than the limits. */
    uint8_t *plain = NULL;
    size_t plain_size = 0;
    assert_int_equal(provision_encode(&a->owner_is, &c, a->nonce, &a->job, &plain, &plain_size),
                     PSL_OK);
    size_t script_at = script_size_at(plain_size, a->job.script_size, a->job.args_size);
    size_t args_at = args_size_at(plain_size, a->job.args_size);
    assert_int_equal(get_le32(plain + script_at), a->job.script_size);
    assert_int_equal(get_le32(plain + args_at), a->job.args_size);
    static const struct {
        uint32_t script, args;
        psl_err want;
    } cases[] = {
        {PSL_SCRIPT_SIZE_MAX + 1, sizeof afx_args - 1, PSL_ERR_TOO_LARGE},
        {UINT32_MAX, sizeof afx_args - 1, PSL_ERR_TOO_LARGE},
        {sizeof afx_script - 1, PSL_ARGS_SIZE_MAX + 1, PSL_ERR_TOO_LARGE},
        {sizeof afx_script - 1, UINT32_MAX, PSL_ERR_TOO_LARGE},
        {sizeof afx_script + 199, sizeof afx_args - 1, PSL_ERR_TRUNCATED},
        {sizeof afx_script - 2, sizeof afx_args - 1, PSL_ERR_TRUNCATED},
        {sizeof afx_script - 1, sizeof afx_args - 2, PSL_ERR_TRAILING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *p = secret_alloc(plain_size);
        assert_non_null(p);
        memcpy(p, plain, plain_size);
        put_le32(p + script_at, cases[i].script);
        put_le32(p + args_at, cases[i].args);
        bundle_resign(p, plain_size, &a->f.owner);
        uint8_t *sealed = seal_plain(p, plain_size, a->enc.kx.pk, &size);
        want_at(open_as(&a->enc, a->nonce, sealed, size, NULL), cases[i].want, "length case",
                (int)i);
        free(sealed);
        secret_free(p);
    }
    secret_free(plain);
    free(big);
}

static void test_bundle_decode_rejects(void **state)
{
    struct afx *a = *state;
    struct writer_cert c;
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    uint8_t *plain = NULL;
    size_t n = 0;
    assert_int_equal(provision_encode(&a->owner_is, &c, a->nonce, &a->job, &plain, &n), PSL_OK);
    assert_memory_equal(plain, "PSLP", 4);
    assert_int_equal(plain[4], PROVISION_VERSION);
    assert_int_equal(get_le32(plain + 5) & 0xffff, a->f.meta_size);
    assert_memory_equal(plain + 7, a->f.meta_enc, a->f.meta_size);
    assert_memory_equal(plain + 7 + a->f.meta_size, a->f.capsule_key, AEAD_KEY_SIZE);
    assert_int_equal(n, PROVISION_FIXED_SIZE + a->f.meta_size + strlen(a->job.chunk_name) +
                            a->job.script_size + a->job.args_size);

    uint8_t *p = secret_alloc(n + 1);
    assert_non_null(p);
    struct provision_bundle b, before;
    memset(&b, 0x2d, sizeof b);
    before = b;
#define DECODE_WANT(size, want)                                                                    \
    do {                                                                                           \
        want_at(provision_bundle_decode(&b, p, (size)), (want), "provision_bundle_decode",         \
                __LINE__);                                                                         \
        assert_memory_equal(&b, &before, sizeof b);                                                \
    } while (0)

    /* Only re-signed changes get past the signature to the field checks. */
    size_t meta_at = 7, cert_at = 7 + a->f.meta_size + AEAD_KEY_SIZE;
    size_t deleg_flag_at = cert_at + CERT_SIZE;
    size_t index_at = deleg_flag_at + 1 + JOB_ID_SIZE + ATTEST_NONCE_SIZE;
    size_t mode_at = index_at + 8;
    size_t mem_at = mode_at + 1 + KX_PK_SIZE + SIGN_PK_SIZE;
    size_t name_at = mem_at + 16 + 1;
    struct {
        size_t at;
        uint8_t value;
        psl_err want;
    } pokes[] = {
        {4, 1, PSL_ERR_BAD_VERSION}, /* version 1 had no mode byte */
        {6, 0xff, PSL_ERR_TOO_LARGE},                /* meta_size 0xff.. > META_SIZE_MAX */
        {meta_at + 4, 9, PSL_ERR_BAD_VERSION},       /* the metadata's version */
        {meta_at + 50, 0x55, PSL_ERR_BAD_SIGNATURE}, /* a metadata byte: the owner's signature */
        {cert_at, 'X', PSL_ERR_BAD_MAGIC},           /* the certificate's magic */
        {cert_at + 5, 9, PSL_ERR_CERT_ROLE},
        {deleg_flag_at, 2, PSL_ERR_MALFORMED},
        {index_at, 3, PSL_ERR_MALFORMED},     /* worker_index = worker_count */
        {index_at + 4, 0, PSL_ERR_MALFORMED}, /* worker_count 0 (low byte of 3) */
        {mode_at, 2, PSL_ERR_BAD_TYPE},       /* an unknown mode */
        {mem_at, 0, PSL_ERR_MALFORMED},       /* mem_bytes 0 (all 8 bytes cleared below) */
        {name_at + 2, 0, PSL_ERR_MALFORMED},  /* a NUL inside the chunk name */
    };
    for (size_t i = 0; i < sizeof pokes / sizeof pokes[0]; i++) {
        memcpy(p, plain, n);
        p[pokes[i].at] = pokes[i].value;
        if (pokes[i].at == mem_at)
            memset(p + mem_at, 0, 8);
        bundle_resign(p, n, &a->f.owner);
        want_at(provision_bundle_decode(&b, p, n), pokes[i].want, "poke", (int)i);
        assert_memory_equal(&b, &before, sizeof b);
    }
    memcpy(p, plain, n);
    assert_int_equal(provision_bundle_decode(&b, p, n), PSL_OK);
    provision_bundle_free(&b);
    memset(&b, 0x2d, sizeof b);
    DECODE_WANT(PROVISION_FIXED_SIZE - 1, PSL_ERR_TRUNCATED);
    DECODE_WANT(PSL_PROVISION_SIZE_MAX + 1, PSL_ERR_TOO_LARGE);
    p[n] = 0;
    DECODE_WANT(n + 1, PSL_ERR_BAD_SIGNATURE); /* the signature is found at the end */
    p[1] = 'X';
    DECODE_WANT(n, PSL_ERR_BAD_MAGIC);
#undef DECODE_WANT
    secret_free(p);
    secret_free(plain);
}

/* ---- the leader path ---- */

static void test_leader_path(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    struct attest_verified v;
    uint8_t *sealed = NULL;
    size_t size = 0;
    assert_int_equal(provision_leader_issue(&a->leader_is, &a->policy, msg, n, a->nonce, &a->spec,
                                            &a->job, FX_NOW, &v, &sealed, &size),
                     PSL_OK);
    assert_memory_equal(v.sign_pk, a->enc.sign.pk, SIGN_PK_SIZE);
    struct provision_bundle b;
    WANT(open_as(&a->enc, a->nonce, sealed, size, &b), PSL_OK);
    free(sealed);
    assert_true(b.has_deleg);
    uint8_t d1[DELEG_SIZE], d2[DELEG_SIZE];
    deleg_encode(&b.deleg, d1);
    deleg_encode(&a->f.deleg, d2);
    assert_memory_equal(d1, d2, DELEG_SIZE);
    assert_memory_equal(b.issuer_pk, a->f.w[FX_LEADER].keys.sign.pk, SIGN_PK_SIZE);
    assert_memory_equal(b.cert.issuer_pk, a->f.w[FX_LEADER].keys.sign.pk, SIGN_PK_SIZE);
    assert_int_equal(cert_verify(&b.cert, &b.deleg, &a->f.meta, FX_NOW), PSL_OK);
    assert_int_equal(cert_verify(&b.cert, NULL, &a->f.meta, FX_NOW), PSL_ERR_CERT_ISSUER);

    /* The worker's result carries the delegation, so the client verifies it without having
     * seen the certificate before. */
    uint8_t rbuf[2048];
    size_t rsize = 0;
    assert_int_equal(
        result_seal(&a->enc.sign, &b, (const uint8_t *)"ok", 2, rbuf, sizeof rbuf, &rsize), PSL_OK);
    assert_int_equal(rsize, SEAL_OVERHEAD + RESULT_FIXED_SIZE + DELEG_SIZE + 2);
    struct result_opened r;
    assert_int_equal(result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, rbuf, rsize, &r),
                     PSL_OK);
    assert_memory_equal(r.data, "ok", 2);
    result_opened_free(&r);
    provision_bundle_free(&b);

    /* A coordinator is delegated too; the leader attests each worker with its own nonce. */
    struct provision_cert_spec spec = a->spec;
    spec.role = ROLE_COORDINATOR;
    n = msg_for(msg, &a->platform, a->f.measurement, &a->enc2, a->nonce2);
    WANT(provision_leader_issue(&a->leader_is, &a->policy, msg, n, a->nonce2, &spec, &a->job,
                                FX_NOW, &v, &sealed, &size),
         PSL_OK);
    WANT(open_as(&a->enc2, a->nonce2, sealed, size, NULL), PSL_OK);
    free(sealed);
}

static void test_leader_refusals(void **state)
{
    struct afx *a = *state;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce);
    struct attest_verified v, before;
    memset(&v, 0x11, sizeof v);
    before = v;
    uint8_t *sealed = NULL;
    size_t size = 0;
    struct provision_cert_spec spec = a->spec;
    struct provision_issuer is = a->leader_is;
#define LEADER_WANT(want)                                                                          \
    do {                                                                                           \
        want_at(provision_leader_issue(&is, &a->policy, msg, n, a->nonce, &spec, &a->job, FX_NOW,  \
                                       &v, &sealed, &size),                                        \
                (want), "provision_leader_issue", __LINE__);                                       \
        assert_memory_equal(&v, &before, sizeof v);                                                \
        assert_null(sealed);                                                                       \
    } while (0)

    /* Roles the delegation does not grant (workers and coordinators only). */
    spec.role = ROLE_COMPACTOR;
    LEADER_WANT(PSL_ERR_CERT_ROLE);
    spec.role = ROLE_LEADER;
    LEADER_WANT(PSL_ERR_CERT_ROLE);
    spec.role = 200;
    LEADER_WANT(PSL_ERR_CERT_ROLE);
    struct delegation d;
    fx_deleg_make(&a->f, &d, a->f.w[FX_LEADER].keys.sign.pk, (uint8_t)ROLE_BIT(ROLE_WORKER),
                  &a->f.owner);
    is.deleg = &d;
    spec.role = ROLE_COORDINATOR;
    LEADER_WANT(PSL_ERR_CERT_ROLE);
    spec = a->spec;

    /* No delegation, one for another leader, one not signed by the owner, one expired. */
    is.deleg = NULL;
    LEADER_WANT(PSL_ERR_CERT_ISSUER);
    fx_deleg_make(&a->f, &d, a->f.w[FX_COORD].keys.sign.pk, (uint8_t)ROLE_MASK_ALL, &a->f.owner);
    is.deleg = &d;
    LEADER_WANT(PSL_ERR_CERT_ISSUER);
    fx_deleg_make(&a->f, &d, a->f.w[FX_LEADER].keys.sign.pk, (uint8_t)ROLE_MASK_ALL,
                  &a->f.stranger);
    LEADER_WANT(PSL_ERR_BAD_SIGNATURE);
    d = a->f.deleg;
    d.not_after_ms = FX_NOW - 1;
    deleg_sign(&d, &a->f.owner);
    LEADER_WANT(PSL_ERR_CERT_EXPIRED);
    /* A certificate window that outlives the delegation. */
    is = a->leader_is;
    spec.not_after_ms = FX_DELEG_NA + 1;
    LEADER_WANT(PSL_ERR_CERT_EXPIRED);
    spec = a->spec;

    /* A delegation for other measurements: the capsule allows both, the owner delegated only
     * the other one, and the worker runs this one. */
    struct capsule_meta two;
    fx_meta_fill(&a->f, &two);
    two.measurement_count = 2;
    memcpy(two.measurements[1], a->f.other_measurement, HASH_SIZE);
    assert_int_equal(meta_sign(&two, &a->f.owner), PSL_OK);
    struct delegation dm = a->f.deleg;
    memcpy(dm.capsule, two.name, HASH_SIZE);
    memcpy(dm.measurement, a->f.other_measurement, HASH_SIZE);
    deleg_sign(&dm, &a->f.owner);
    is.meta = &two;
    is.deleg = &dm;
    struct attest_policy p2;
    attest_policy_init(&p2, &two);
    assert_int_equal(attest_policy_trust_platform(&p2, a->platform.pk), PSL_OK);
    want_at(provision_leader_issue(&is, &p2, msg, n, a->nonce, &spec, &a->job, FX_NOW, &v, &sealed,
                                   &size),
            PSL_ERR_ATTEST_MEASUREMENT, "other measurement", __LINE__);
    assert_null(sealed);
    /* The same leader admits a worker that runs the delegated measurement. */
    uint8_t msg2[ATTEST_MSG_SIZE_MAX];
    size_t n2 = msg_for(msg2, &a->platform, a->f.other_measurement, &a->enc, a->nonce);
    WANT(provision_leader_issue(&is, &p2, msg2, n2, a->nonce, &spec, &a->job, FX_NOW, &v, &sealed,
                                &size),
         PSL_OK);
    free(sealed);
    sealed = NULL;
    memset(&v, 0x11, sizeof v);

    /* The worker's evidence fails the leader's policy like any verifier's. */
    is = a->leader_is;
    n = msg_for(msg, &a->other_platform, a->f.measurement, &a->enc, a->nonce);
    LEADER_WANT(PSL_ERR_ATTEST_PLATFORM);
    n = msg_for(msg, &a->platform, a->f.measurement, &a->enc, a->nonce2);
    LEADER_WANT(PSL_ERR_ATTEST_NONCE);
    n = msg_for(msg, &a->platform, a->f.other_measurement, &a->enc, a->nonce);
    LEADER_WANT(PSL_ERR_ATTEST_MEASUREMENT);
#undef LEADER_WANT
}

/* ---- results ---- */

static void test_result_refusals(void **state)
{
    struct afx *a = *state;
    struct provision_bundle b;
    provisioned(a, &b);
    static const uint8_t text[] = "the answer";
    uint8_t buf[4096];
    size_t size = 0;
    struct result_opened r, before;
    memset(&r, 0x4e, sizeof r);
    before = r;
#define OPEN_WANT(kx, job, now, want)                                                              \
    do {                                                                                           \
        want_at(result_open((kx), &a->f.meta, (job), (now), buf, size, &r), (want), "result_open", \
                __LINE__);                                                                         \
        assert_memory_equal(&r, &before, sizeof r);                                                \
    } while (0)

    assert_int_equal(result_seal(&a->enc.sign, &b, text, sizeof text, buf, sizeof buf, &size),
                     PSL_OK);
    /* Sealed to the client, not to anyone else. */
    OPEN_WANT(&a->other_client_kx, a->job.job_id, FX_NOW, PSL_ERR_DECRYPT);
    /* A result of this worker, replayed into another job. */
    uint8_t other_job[JOB_ID_SIZE];
    memcpy(other_job, a->job.job_id, JOB_ID_SIZE);
    other_job[0] ^= 1;
    OPEN_WANT(&a->client_kx, other_job, FX_NOW, PSL_ERR_REPLAY);
    /* The worker's certificate has expired by the time given. */
    OPEN_WANT(&a->client_kx, a->job.job_id, FX_CERT_NA + 1, PSL_ERR_CERT_EXPIRED);

    /* A worker whose certificate is for another capsule. */
    struct provision_bundle fb = b;
    cert_for(a, &fb.cert, &a->enc, a->f.other.name, &a->f.owner);
    assert_int_equal(result_seal(&a->enc.sign, &fb, text, sizeof text, buf, sizeof buf, &size),
                     PSL_OK);
    OPEN_WANT(&a->client_kx, a->job.job_id, FX_NOW, PSL_ERR_CERT_FOREIGN);
    /* ... or issued by someone with no standing. */
    cert_for(a, &fb.cert, &a->enc, a->f.meta.name, &a->f.stranger);
    assert_int_equal(result_seal(&a->enc.sign, &fb, text, sizeof text, buf, sizeof buf, &size),
                     PSL_OK);
    OPEN_WANT(&a->client_kx, a->job.job_id, FX_NOW, PSL_ERR_CERT_ISSUER);
    /* Another enclave signing under this worker's certificate. */
    fb = b;
    memcpy(fb.cert.sign_pk, a->enc2.sign.pk, SIGN_PK_SIZE); /* to get past result_seal's check */
    assert_int_equal(result_seal(&a->enc2.sign, &fb, text, sizeof text, buf, sizeof buf, &size),
                     PSL_OK);
    uint8_t *plain = malloc(size - SEAL_OVERHEAD);
    assert_non_null(plain);
    assert_int_equal(seal_open(plain, buf, size, &a->client_kx), PSL_OK);
    cert_encode(&b.cert, plain + 4 + 1 + JOB_ID_SIZE + 4); /* put the real certificate back */
    assert_int_equal(seal_box(buf, plain, size - SEAL_OVERHEAD, a->client_kx.pk), PSL_OK);
    OPEN_WANT(&a->client_kx, a->job.job_id, FX_NOW, PSL_ERR_BAD_SIGNATURE);

    /* Tampered inside the box (by someone who could seal to the client): the result bytes, the
     * worker index, the job id. */
    assert_int_equal(result_seal(&a->enc.sign, &b, text, sizeof text, buf, sizeof buf, &size),
                     PSL_OK);
    assert_int_equal(seal_open(plain, buf, size, &a->client_kx), PSL_OK);
    static const size_t where[] = {RESULT_FIXED_SIZE - SIGN_SIG_SIZE + 3, 4 + 1 + JOB_ID_SIZE,
                                   RESULT_FIXED_SIZE + sizeof text - 1};
    for (size_t i = 0; i < 3; i++) {
        plain[where[i]] ^= 0x20;
        assert_int_equal(seal_box(buf, plain, size - SEAL_OVERHEAD, a->client_kx.pk), PSL_OK);
        OPEN_WANT(&a->client_kx, a->job.job_id, FX_NOW, PSL_ERR_BAD_SIGNATURE);
        plain[where[i]] ^= 0x20;
    }
    plain[4 + 1] ^= 1; /* the job id, signed over */
    assert_int_equal(seal_box(buf, plain, size - SEAL_OVERHEAD, a->client_kx.pk), PSL_OK);
    memcpy(other_job, plain + 5, JOB_ID_SIZE);
    OPEN_WANT(&a->client_kx, other_job, FX_NOW, PSL_ERR_BAD_SIGNATURE);
    free(plain);

    /* Size limits on both sides. */
    uint8_t *big = calloc(1, PSL_RESULT_SIZE_MAX + 1);
    assert_non_null(big);
    WANT(result_seal(&a->enc.sign, &b, big, RESULT_DATA_SIZE_MAX + 1, big, PSL_RESULT_SIZE_MAX + 1,
                     &size),
         PSL_ERR_TOO_LARGE);
    WANT(result_seal(&a->enc.sign, &b, text, sizeof text, buf,
                     result_sealed_size(&b, sizeof text) - 1, &size),
         PSL_ERR_TOO_LARGE);
    WANT(result_seal(&a->enc2.sign, &b, text, sizeof text, buf, sizeof buf, &size),
         PSL_ERR_INVALID_ARG);
    WANT(result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, big, PSL_RESULT_SIZE_MAX + 1,
                     &r),
         PSL_ERR_TOO_LARGE);
    WANT(result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, big,
                     SEAL_OVERHEAD + RESULT_FIXED_SIZE - 1, &r),
         PSL_ERR_TRUNCATED);
    /* The largest result fits one RESULT record, even with a delegation aboard. */
    struct provision_bundle lb = b;
    lb.has_deleg = true;
    lb.deleg = a->f.deleg;
    uint8_t *sealed = malloc(PSL_RESULT_SIZE_MAX);
    assert_non_null(sealed);
    size_t ssize = 0;
    assert_int_equal(result_seal(&a->enc.sign, &lb, big, RESULT_DATA_SIZE_MAX, sealed,
                                 PSL_RESULT_SIZE_MAX, &ssize),
                     PSL_OK);
    assert_int_equal(ssize, PSL_RESULT_SIZE_MAX);
    struct result_opened ok;
    assert_int_equal(
        result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, sealed, ssize, &ok), PSL_OK);
    assert_int_equal(ok.size, RESULT_DATA_SIZE_MAX);
    result_opened_free(&ok);
    /* An empty result is a result. */
    assert_int_equal(result_seal(&a->enc.sign, &b, NULL, 0, sealed, PSL_RESULT_SIZE_MAX, &ssize),
                     PSL_OK);
    assert_int_equal(
        result_open(&a->client_kx, &a->f.meta, a->job.job_id, FX_NOW, sealed, ssize, &ok), PSL_OK);
    assert_int_equal(ok.size, 0);
    result_opened_free(&ok);
    free(sealed);
    free(big);
#undef OPEN_WANT
    provision_bundle_free(&b);
}

static void test_result_decode_rejects(void **state)
{
    struct afx *a = *state;
    struct provision_bundle b;
    provisioned(a, &b);
    uint8_t buf[1024], plain[1024];
    size_t size = 0;
    assert_int_equal(
        result_seal(&a->enc.sign, &b, (const uint8_t *)"abc", 3, buf, sizeof buf, &size), PSL_OK);
    size_t n = size - SEAL_OVERHEAD;
    assert_int_equal(seal_open(plain, buf, size, &a->client_kx), PSL_OK);
    assert_memory_equal(plain, "PSLO", 4);
    assert_int_equal(plain[4], RESULT_VERSION);
    assert_memory_equal(plain + 5, a->job.job_id, JOB_ID_SIZE);
    assert_int_equal(get_le32(plain + 21), 1);
    assert_int_equal(plain[25 + CERT_SIZE], 0);
    assert_int_equal(get_le32(plain + 26 + CERT_SIZE), 3);
    assert_memory_equal(plain + 30 + CERT_SIZE, "abc", 3);
    /* The signature: tag || SHA-256(job_id || index u32 || SHA-256(result)). */
    uint8_t inner[JOB_ID_SIZE + 4 + HASH_SIZE], h[HASH_SIZE];
    memcpy(inner, a->job.job_id, JOB_ID_SIZE);
    put_le32(inner + JOB_ID_SIZE, 1);
    hash_sha256(inner + JOB_ID_SIZE + 4, "abc", 3);
    hash_sha256(h, inner, sizeof inner);
    assert_true(sign_verify_tagged(a->enc.sign.pk, plain + n - SIGN_SIG_SIZE, "psl-result-v1", h));

    struct result_plain p;
    assert_int_equal(result_decode(&p, plain, n), PSL_OK);
    assert_int_equal(p.size, 3);
    assert_ptr_equal(p.data, plain + 30 + CERT_SIZE);
    for (size_t len = 0; len < n; len++)
        if (result_decode(&p, plain, len) == PSL_OK)
            fail_msg("a result cut to %zu bytes decodes", len);
    WANT(result_decode(&p, plain, RESULT_FIXED_SIZE - 1), PSL_ERR_TRUNCATED);
    plain[n] = 0;
    WANT(result_decode(&p, plain, n + 1), PSL_ERR_TRAILING);
    WANT(result_decode(&p, plain, PSL_RESULT_SIZE_MAX), PSL_ERR_TOO_LARGE);
    plain[25 + CERT_SIZE] = 2;
    WANT(result_decode(&p, plain, n), PSL_ERR_MALFORMED);
    plain[25 + CERT_SIZE] = 1; /* a delegation that is not there */
    WANT(result_decode(&p, plain, n), PSL_ERR_TRUNCATED);
    plain[25 + CERT_SIZE] = 0;
    put_le32(plain + 26 + CERT_SIZE, RESULT_DATA_SIZE_MAX + 1);
    WANT(result_decode(&p, plain, n), PSL_ERR_TOO_LARGE);
    put_le32(plain + 26 + CERT_SIZE, 3);
    plain[25] = 'Z'; /* the certificate's magic */
    WANT(result_decode(&p, plain, n), PSL_ERR_BAD_MAGIC);
    plain[25] = 'P';
    plain[4] = 7;
    WANT(result_decode(&p, plain, n), PSL_ERR_BAD_VERSION);
    plain[4] = RESULT_VERSION;
    plain[0] = 'Q';
    WANT(result_decode(&p, plain, n), PSL_ERR_BAD_MAGIC);
    provision_bundle_free(&b);
}

/* ---- the sim platform, measurement, descriptions ---- */

static void test_sim_platform_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/psl-attest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/platform.key", dir);

    struct signer s1, s2;
    assert_int_equal(attest_sim_platform_load(&s1, dir), PSL_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The host's key persists: a second load (another enclave launch) gets the same key. */
    assert_int_equal(attest_sim_platform_load(&s2, dir), PSL_OK);
    assert_memory_equal(s1.pk, s2.pk, SIGN_PK_SIZE);
    uint8_t sig[SIGN_SIG_SIZE], h[HASH_SIZE] = {1};
    sign_tagged(&s2, sig, "t", h);
    assert_true(sign_verify_tagged(s1.pk, sig, "t", h));
    signer_deinit(&s2);
    /* A key file others can read is refused, as keyfile_read does. */
    assert_int_equal(chmod(path, 0644), 0);
    WANT(attest_sim_platform_load(&s2, dir), PSL_ERR_INVALID_ARG);
    /* A directory that does not exist: nothing is created. */
    char missing[sizeof dir + 16];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    WANT(attest_sim_platform_load(&s2, missing), PSL_ERR_IO);
    signer_deinit(&s1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_measure_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/psl-measure-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/enclave", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("abc", f);
    fclose(f);
    uint8_t m[HASH_SIZE], want[HASH_SIZE];
    assert_int_equal(attest_measure_file(path, m), PSL_OK);
    /* SHA-256("abc"), FIPS 180-2. */
    assert_int_equal(hex_decode(want, HASH_SIZE,
                                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                     PSL_OK);
    assert_memory_equal(m, want, HASH_SIZE);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(attest_measure_file(path, m), PSL_OK);
    hash_sha256(want, "", 0);
    assert_memory_equal(m, want, HASH_SIZE);
    WANT(attest_measure_file(dir, m), PSL_ERR_IO);
    assert_int_equal(unlink(path), 0);
    WANT(attest_measure_file(path, m), PSL_ERR_NOT_FOUND);
    assert_int_equal(rmdir(dir), 0);
    /* This very test binary measures like any file, the same twice. */
    uint8_t self1[HASH_SIZE], self2[HASH_SIZE];
    assert_int_equal(attest_measure_file("/proc/self/exe", self1), PSL_OK);
    assert_int_equal(attest_measure_file("/proc/self/exe", self2), PSL_OK);
    assert_memory_equal(self1, self2, HASH_SIZE);
}

/* Invocations of a deployed function: sealed to the enclave, signed by the deployer; anyone
 * else's signature, another enclave's key, a flipped byte and a truncation are refused. */
static void test_invoke_roundtrip(void **state)
{
    (void)state;
    struct signer client, other;
    struct kx_keypair enc, enc2, reply;
    assert_int_equal(signer_init(&client, NULL), PSL_OK);
    assert_int_equal(signer_init(&other, NULL), PSL_OK);
    assert_int_equal(kx_init(&enc, NULL), PSL_OK);
    assert_int_equal(kx_init(&enc2, NULL), PSL_OK);
    assert_int_equal(kx_init(&reply, NULL), PSL_OK);
    struct invoke_request req = {.issued_ms = 1234567, .args = (const uint8_t *)"incr hits",
                                 .args_size = 9};
    memset(req.id, 0x5a, sizeof req.id);
    memcpy(req.reply_kx_pk, reply.pk, KX_PK_SIZE);
    uint8_t *sealed;
    size_t size;
    assert_int_equal(invoke_seal(&client, enc.pk, &req, &sealed, &size), PSL_OK);
    assert_int_equal(size, SEAL_OVERHEAD + INVOKE_FIXED_SIZE + 9);
    struct invoke_opened o;
    assert_int_equal(invoke_open(&enc, client.pk, sealed, size, &o), PSL_OK);
    assert_memory_equal(o.id, req.id, INVOKE_ID_SIZE);
    assert_memory_equal(o.reply_kx_pk, reply.pk, KX_PK_SIZE);
    assert_int_equal(o.issued_ms, 1234567);
    assert_int_equal(o.args_size, 9);
    assert_memory_equal(o.args, "incr hits", 9);
    invoke_opened_free(&o);
    assert_int_equal(invoke_open(&enc, other.pk, sealed, size, &o), PSL_ERR_BAD_SIGNATURE);
    assert_int_equal(invoke_open(&enc2, client.pk, sealed, size, &o), PSL_ERR_DECRYPT);
    assert_int_equal(invoke_open(&enc, client.pk, sealed, SEAL_OVERHEAD + INVOKE_FIXED_SIZE - 1,
                                 &o),
                     PSL_ERR_TRUNCATED);
    sealed[size / 2] ^= 1;
    assert_int_equal(invoke_open(&enc, client.pk, sealed, size, &o), PSL_ERR_DECRYPT);
    free(sealed);
    req.args_size = PSL_ARGS_SIZE_MAX + 1;
    assert_int_equal(invoke_seal(&client, enc.pk, &req, &sealed, &size), PSL_ERR_TOO_LARGE);
    signer_deinit(&client);
    signer_deinit(&other);
    kx_deinit(&enc);
    kx_deinit(&enc2);
    kx_deinit(&reply);
}

static void test_describe(void **state)
{
    (void)state;
    assert_string_equal(evidence_describe(TEE_SIM), "sim (simulation: no hardware protection)");
    assert_string_equal(evidence_describe(TEE_SGX), "sgx");
    assert_string_equal(evidence_describe(TEE_SEV_SNP), "sev-snp");
    assert_string_equal(evidence_describe(TEE_TDX), "tdx");
    assert_string_equal(evidence_describe(0), "unknown tee");
    assert_string_equal(evidence_describe(99), "unknown tee");
}

/* ---- seed corpora (only with PSL_ATTEST_SEED_DIR) ---- */

static void write_seed(const char *root, const char *target, const char *name, const void *data,
                       size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        fail_msg("mkdir %s", path);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static void test_write_fuzz_seeds(void **state)
{
    struct afx *a = *state;
    const char *root = getenv("PSL_ATTEST_SEED_DIR");
    if (!root || !*root)
        return;
    uint8_t msg[ATTEST_MSG_SIZE_MAX], ev_buf[PSL_EVIDENCE_SIZE_MAX];
    struct evidence ev;
    size_t n;

    /* fuzz_evidence: evidences and attestation messages. */
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    assert_int_equal(evidence_encode(&ev, ev_buf, sizeof ev_buf, &n), PSL_OK);
    write_seed(root, "fuzz_evidence", "seed-evidence-sim", ev_buf, n);
    write_seed(root, "fuzz_evidence", "seed-evidence-truncated", ev_buf, n - 1);
    n = msg_of(msg, &ev, &a->enc);
    write_seed(root, "fuzz_evidence", "seed-msg-sim", msg, n);
    n = msg_of(msg, &ev, &a->enc2);
    write_seed(root, "fuzz_evidence", "seed-msg-other-keys", msg, n);
    evidence_for(&ev, &a->other_platform, a->f.other_measurement, &a->enc, a->nonce);
    n = msg_of(msg, &ev, &a->enc);
    write_seed(root, "fuzz_evidence", "seed-msg-other-platform", msg, n);
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    ev.flags = EVIDENCE_FLAG_DEBUG;
    evidence_resign(&ev, &a->platform);
    n = msg_of(msg, &ev, &a->enc);
    write_seed(root, "fuzz_evidence", "seed-msg-debug", msg, n);
    static uint8_t quote[EVIDENCE_HW_REPORT_SIZE_MAX];
    for (size_t i = 0; i < sizeof quote; i++)
        quote[i] = (uint8_t)(i * 7);
    evidence_for(&ev, &a->platform, a->f.measurement, &a->enc, a->nonce);
    ev.tee_type = TEE_SGX;
    ev.hw_report = quote;
    ev.hw_report_size = 96;
    n = msg_of(msg, &ev, &a->enc);
    write_seed(root, "fuzz_evidence", "seed-msg-sgx-quote", msg, n);
    ev.tee_type = TEE_TDX;
    ev.hw_report_size = EVIDENCE_HW_REPORT_SIZE_MAX; /* PSL_EVIDENCE_SIZE_MAX exactly */
    assert_int_equal(evidence_encode(&ev, ev_buf, sizeof ev_buf, &n), PSL_OK);
    write_seed(root, "fuzz_evidence", "seed-evidence-at-limit", ev_buf, n);
    n = msg_of(msg, &ev, &a->enc);
    write_seed(root, "fuzz_evidence", "seed-msg-at-limit", msg, n);

    /* fuzz_provision: bundle plaintexts (owner and leader), as provision_open sees them. */
    struct writer_cert c;
    uint8_t *plain = NULL;
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.owner);
    assert_int_equal(provision_encode(&a->owner_is, &c, a->nonce, &a->job, &plain, &n), PSL_OK);
    write_seed(root, "fuzz_provision", "seed-bundle-owner", plain, n);
    write_seed(root, "fuzz_provision", "seed-bundle-truncated", plain, n - 70);
    plain[n / 2] ^= 1;
    write_seed(root, "fuzz_provision", "seed-bundle-bad-signature", plain, n);
    secret_free(plain);
    cert_for(a, &c, &a->enc, a->f.meta.name, &a->f.w[FX_LEADER].keys.sign);
    struct provision_job j = a->job;
    j.chunk_name = NULL;
    j.args_size = 0;
    assert_int_equal(provision_encode(&a->leader_is, &c, a->nonce, &j, &plain, &n), PSL_OK);
    write_seed(root, "fuzz_provision", "seed-bundle-leader", plain, n);
    secret_free(plain);
    cert_for(a, &c, &a->enc2, a->f.other.name, &a->f.owner);
    assert_int_equal(provision_encode(&a->owner_is, &c, a->nonce, &a->job, &plain, &n), PSL_OK);
    write_seed(root, "fuzz_provision", "seed-bundle-foreign-cert", plain, n);
    secret_free(plain);

    /* fuzz_result: result plaintexts, as result_open sees them after the box. */
    struct provision_bundle b;
    provisioned(a, &b);
    uint8_t sealed[2048], rplain[2048];
    size_t ss = 0;
    assert_int_equal(
        result_seal(&a->enc.sign, &b, (const uint8_t *)"sum=5", 5, sealed, sizeof sealed, &ss),
        PSL_OK);
    assert_int_equal(seal_open(rplain, sealed, ss, &a->client_kx), PSL_OK);
    write_seed(root, "fuzz_result", "seed-result-owner", rplain, ss - SEAL_OVERHEAD);
    write_seed(root, "fuzz_result", "seed-result-truncated", rplain, ss - SEAL_OVERHEAD - 1);
    b.has_deleg = true;
    b.deleg = a->f.deleg;
    assert_int_equal(result_seal(&a->enc.sign, &b, NULL, 0, sealed, sizeof sealed, &ss), PSL_OK);
    assert_int_equal(seal_open(rplain, sealed, ss, &a->client_kx), PSL_OK);
    write_seed(root, "fuzz_result", "seed-result-empty-deleg", rplain, ss - SEAL_OVERHEAD);
    provision_bundle_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_path_end_to_end),
        cmocka_unit_test(test_defaults_and_coordinator),
        cmocka_unit_test(test_report_data_known_answer),
        cmocka_unit_test(test_evidence_layout_and_round_trip),
        cmocka_unit_test(test_evidence_decode_rejects),
        cmocka_unit_test(test_attest_msg_decode_rejects),
        cmocka_unit_test(test_wrong_measurement),
        cmocka_unit_test(test_untrusted_platform),
        cmocka_unit_test(test_policy_platform_keys),
        cmocka_unit_test(test_every_flipped_bit_fails),
        cmocka_unit_test(test_replayed_and_stale_nonce),
        cmocka_unit_test(test_report_data_binds_keys),
        cmocka_unit_test(test_bundle_sealed_to_other_enclave),
        cmocka_unit_test(test_bundle_cert_for_other_capsule),
        cmocka_unit_test(test_bundle_cert_for_other_enclave),
        cmocka_unit_test(test_bundle_other_certificate_failures),
        cmocka_unit_test(test_bundle_issuer_signature_and_standing),
        cmocka_unit_test(test_bundle_replayed_from_earlier_session),
        cmocka_unit_test(test_bundle_limits),
        cmocka_unit_test(test_bundle_decode_rejects),
        cmocka_unit_test(test_leader_path),
        cmocka_unit_test(test_leader_refusals),
        cmocka_unit_test(test_result_refusals),
        cmocka_unit_test(test_result_decode_rejects),
        cmocka_unit_test(test_sim_platform_key_file),
        cmocka_unit_test(test_measure_file),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_invoke_roundtrip),
        cmocka_unit_test(test_write_fuzz_seeds),
    };
    return cmocka_run_group_tests(tests, afx_setup, afx_teardown);
}
