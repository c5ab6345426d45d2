/* provision.h: provisioning bundles and sealed results (DESIGN §7.3, §7.4).
 * After verifying an enclave's evidence, the issuer (the capsule owner's client, or a leader
 * enclave under an owner-signed delegation) certifies the enclave's keys and seals it a bundle:
 * the capsule metadata and key, the certificate, the job. Sealed boxes are anonymous, so the
 * bundle is signed by the issuer inside the box. Plaintext ("PSLP"):
 *   magic[4] version u8 | meta_size u16 meta[meta_size] | capsule_key[32] | cert[254]
 *   has_deleg u8 (0/1) deleg[190]? | job_id[16] | nonce[32] | worker_index u32 | worker_count u32
 *   client_kx_pk[32] | client_sign_pk[32] | mem_bytes u64 | insn_budget u64
 *   chunk_name_size u8 chunk_name | script_size u32 script | args_size u32 args | issuer_pk[32]
 *   signature[64]: issuer over ("psl-prov-v1" || SHA-256(all before the signature))
 * then seal_box(plaintext, enclave kx_pk). The worker returns its result the same way ("PSLO"):
 *   magic[4] version u8 | job_id[16] | worker_index u32 | cert[254] | has_deleg u8 deleg[190]?
 *   result_size u32 result | signature[64]: worker over ("psl-result-v1" ||
 *   SHA-256(job_id || worker_index u32 || SHA-256(result)))
 * then seal_box(plaintext, client kx_pk); the sealed result fits a RESULT record (≤
 * PSL_RESULT_SIZE_MAX). docs/protocol.md has both formats. */
#ifndef PSL_ATTEST_PROVISION_H
#define PSL_ATTEST_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/evidence.h"
#include "capsule/cert.h"
#include "capsule/meta.h"

#define PROVISION_VERSION 2u /* 2: the mode byte after worker_count */
#define JOB_ID_SIZE       16u
/* Bounded by its u8 length prefix (like the capsule label). */
#define PROVISION_CHUNK_NAME_SIZE_MAX 255u
/* Workers of one job are writers of one capsule. */
#define PROVISION_WORKERS_MAX PSL_WRITERS_MAX
/* Bytes of a bundle plaintext besides metadata, delegation, chunk name, script and args. */
#define PROVISION_FIXED_SIZE                                                                       \
    (4u + 1 + 2 + AEAD_KEY_SIZE + CERT_SIZE + 1 + JOB_ID_SIZE + ATTEST_NONCE_SIZE + 4 + 4 + 1 +    \
     KX_PK_SIZE + SIGN_PK_SIZE + 8 + 8 + 1 + 4 + 4 + SIGN_PK_SIZE + SIGN_SIG_SIZE)
#define PROVISION_SEALED_SIZE_MAX (PSL_PROVISION_SIZE_MAX + SEAL_OVERHEAD)

#define RESULT_VERSION 1u
/* Bytes of a result plaintext besides the delegation and the result. */
#define RESULT_FIXED_SIZE (4u + 1 + JOB_ID_SIZE + 4 + CERT_SIZE + 1 + 4 + SIGN_SIG_SIZE)
/* The largest result a worker can return: sealed, with a delegation, it fits one RESULT record. */
#define RESULT_DATA_SIZE_MAX (PSL_RESULT_SIZE_MAX - SEAL_OVERHEAD - RESULT_FIXED_SIZE - DELEG_SIZE)

/* Who issues: the owner (deleg NULL) or a leader enclave holding the owner's delegation. */
struct provision_issuer {
    const struct signer *signer;     /* borrowed */
    const struct delegation *deleg;  /* borrowed; NULL when signer is the capsule owner */
    const struct capsule_meta *meta; /* borrowed: the capsule (signed, as from meta_decode) */
    const uint8_t *capsule_key;      /* AEAD_KEY_SIZE bytes, borrowed secret */
};

/* The certificate an issuer grants an attested enclave. */
struct provision_cert_spec {
    uint8_t role;           /* enum writer_role, usually ROLE_WORKER or ROLE_COORDINATOR */
    uint64_t not_before_ms; /* validity window; it must contain the issuing time */
    uint64_t not_after_ms;
    uint64_t serial; /* 0: a random serial */
};

/* The job an enclave is provisioned for. Every pointer is borrowed for the call. */
/* What a bundle provisions: a job (run main once) or a deployed function (serve invocations). */
enum provision_mode {
    PROVISION_MODE_JOB = 0,
    PROVISION_MODE_FUNCTION = 1,
};

struct provision_job {
    uint8_t mode;          /* enum provision_mode (0: a job) */
    uint8_t job_id[JOB_ID_SIZE];
    uint32_t worker_index;                /* < worker_count */
    uint32_t worker_count;                /* 1..PROVISION_WORKERS_MAX */
    uint8_t client_kx_pk[KX_PK_SIZE];     /* results are sealed to this key */
    uint8_t client_sign_pk[SIGN_PK_SIZE]; /* the client that started the job */
    uint64_t mem_bytes;                   /* lambda memory cap; 0: PSL_LAMBDA_MEM_DEFAULT */
    uint64_t insn_budget;   /* lambda instruction budget; 0: PSL_LAMBDA_INSN_DEFAULT */
    const char *chunk_name; /* NUL-terminated, ≤ PROVISION_CHUNK_NAME_SIZE_MAX; NULL: "" */
    const uint8_t *script;  /* 1..PSL_SCRIPT_SIZE_MAX bytes of Lua source */
    size_t script_size;
    const uint8_t *args; /* 0..PSL_ARGS_SIZE_MAX bytes */
    size_t args_size;
};

/* A bundle as the enclave holds it after provision_open (or provision_bundle_decode). */
struct provision_bundle {
    uint8_t mode;             /* enum provision_mode */
    struct capsule_meta meta; /* its owner signature verified */
    uint8_t *capsule_key;     /* AEAD_KEY_SIZE bytes of secret memory, owned */
    struct writer_cert cert;
    bool has_deleg;
    struct delegation deleg;
    uint8_t job_id[JOB_ID_SIZE];
    uint8_t nonce[ATTEST_NONCE_SIZE];
    uint32_t worker_index;
    uint32_t worker_count;
    uint8_t client_kx_pk[KX_PK_SIZE];
    uint8_t client_sign_pk[SIGN_PK_SIZE];
    uint64_t mem_bytes;
    uint64_t insn_budget;
    char chunk_name[PROVISION_CHUNK_NAME_SIZE_MAX + 1]; /* NUL-terminated, no NUL inside */
    uint8_t *script; /* owned (malloc, wiped on free), NUL-terminated after script_size */
    size_t script_size;
    const uint8_t *args; /* inside script's allocation (after the script's NUL) */
    size_t args_size;
    uint8_t issuer_pk[SIGN_PK_SIZE];
};

/* ---- issuer side (client or leader) ---- */

/* Issues the writer certificate for an attested enclave: role and window from spec, capsule =
 * the issuer's capsule, the enclave's keys and measurement from v, signed by the issuer. It
 * refuses to issue what the enclave would refuse: the certificate must cert_verify at now_ms
 * (measurement allowed by the capsule, issuer the owner or the delegated leader, role and window
 * within the delegation). *out is written on success only. */
psl_err provision_issue_cert(const struct provision_issuer *is, const struct attest_verified *v,
                             const struct provision_cert_spec *spec, uint64_t now_ms,
                             struct writer_cert *out) PSL_MUST_USE;

/* Encodes and signs the bundle plaintext for cert (not checked here: the enclave checks it).
 * *out is AEAD-key-bearing secret memory, returned owned: release it with secret_free.
 * PSL_ERR_TOO_LARGE for a script, args or chunk name over its limit, PSL_ERR_INVALID_ARG for an
 * empty script or a worker index out of range. */
psl_err provision_encode(const struct provision_issuer *is, const struct writer_cert *cert,
                         const uint8_t nonce[ATTEST_NONCE_SIZE], const struct provision_job *job,
                         uint8_t **out, size_t *out_size) PSL_MUST_USE;

/* provision_encode, then seal_box to recipient_kx_pk (the attested enclave's, v->kx_pk).
 * *out is returned owned (malloc; the box hides its contents): release it with free. */
psl_err provision_seal(const struct provision_issuer *is, const struct writer_cert *cert,
                       const uint8_t nonce[ATTEST_NONCE_SIZE], const struct provision_job *job,
                       const uint8_t recipient_kx_pk[KX_PK_SIZE], uint8_t **out,
                       size_t *out_size) PSL_MUST_USE;

/* The leader path: a leader enclave provisions a worker without the owner online. It checks its
 * own standing first (leader->deleg names leader->signer and verifies against the capsule at
 * now_ms: PSL_ERR_CERT_ISSUER or deleg_verify's error; spec->role is delegated:
 * PSL_ERR_CERT_ROLE), then verifies the worker's attestation message against policy for nonce
 * (attest_verify), then requires the worker to run the delegation's measurement (a leader admits
 * only the code the owner attested it for: PSL_ERR_ATTEST_MEASUREMENT), issues the certificate
 * and seals the bundle. *out (malloc, owned by the caller) and *out_verified on success only. */
psl_err provision_leader_issue(const struct provision_issuer *leader,
                               const struct attest_policy *policy, const uint8_t *attest_msg,
                               size_t attest_msg_size, const uint8_t nonce[ATTEST_NONCE_SIZE],
                               const struct provision_cert_spec *spec,
                               const struct provision_job *job, uint64_t now_ms,
                               struct attest_verified *out_verified, uint8_t **out,
                               size_t *out_size) PSL_MUST_USE;

/* ---- enclave side ---- */

/* Opens a sealed bundle (untrusted bytes from the host) for this enclave and session, checking
 * in order: size limits; the box opens with kx (PSL_ERR_DECRYPT: sealed to another enclave);
 * the issuer signature over the plaintext (PSL_ERR_BAD_SIGNATURE); decoding and the metadata's
 * owner signature (provision_bundle_decode); then provision_bundle_check. *out is written on
 * success only; release it with provision_bundle_free. No plaintext survives a failure. */
psl_err provision_open(const struct kx_keypair *kx, const uint8_t sign_pk[SIGN_PK_SIZE],
                       const uint8_t nonce[ATTEST_NONCE_SIZE], const uint8_t *sealed,
                       size_t sealed_size, uint64_t now_ms,
                       struct provision_bundle *out) PSL_MUST_USE;

/* The inner decoder (exposed for the fuzz target): limits on every length before anything is
 * allocated, then the issuer signature over the raw bytes, then the fields (meta_decode verifies
 * the owner's signature on the metadata). It does not check who the issuer is, the nonce or the
 * certificate: provision_bundle_check does. *out on success only. */
psl_err provision_bundle_decode(struct provision_bundle *out, const uint8_t *plain,
                                size_t size) PSL_MUST_USE;

/* The checks of a decoded bundle for one enclave and session, in order: the issuer is the
 * capsule owner, or the leader of the bundle's delegation, valid for this capsule at now_ms
 * (PSL_ERR_CERT_ISSUER, or deleg_verify's error); the nonce is this session's
 * (PSL_ERR_ATTEST_NONCE: a bundle replayed from another session); the certificate verifies for
 * this capsule at now_ms (cert_verify: PSL_ERR_CERT_FOREIGN for another capsule, ...); and it
 * certifies this enclave's keys (PSL_ERR_ATTEST_BINDING: a certificate for another enclave). */
psl_err provision_bundle_check(const struct provision_bundle *b,
                               const uint8_t sign_pk[SIGN_PK_SIZE], const uint8_t kx_pk[KX_PK_SIZE],
                               const uint8_t nonce[ATTEST_NONCE_SIZE],
                               uint64_t now_ms) PSL_MUST_USE;

/* Wipes and frees what b owns (capsule key, script, args) and zeroes b. Safe on a zeroed b. */
void provision_bundle_free(struct provision_bundle *b);

/* ---- results ---- */

/* Size of the sealed result of result_size bytes from a worker of bundle b. */
static inline size_t result_sealed_size(const struct provision_bundle *b, size_t result_size)
{
    return SEAL_OVERHEAD + RESULT_FIXED_SIZE + (b->has_deleg ? DELEG_SIZE : 0u) + result_size;
}

/* Signs and seals a worker's result for the client of bundle b (b->cert names worker's keys;
 * b->job_id, b->worker_index, b->client_kx_pk, b->deleg come along). out must hold
 * result_sealed_size(b, result_size) bytes. PSL_ERR_TOO_LARGE past RESULT_DATA_SIZE_MAX,
 * PSL_ERR_INVALID_ARG when worker is not the certified key. */
psl_err result_seal(const struct signer *worker, const struct provision_bundle *b,
                    const uint8_t *result, size_t result_size, uint8_t *out, size_t cap,
                    size_t *out_size) PSL_MUST_USE;

/* A decoded result plaintext; pointers borrowed from the plaintext. */
struct result_plain {
    uint8_t job_id[JOB_ID_SIZE];
    uint32_t worker_index;
    struct writer_cert cert;
    bool has_deleg;
    struct delegation deleg;
    const uint8_t *data;
    size_t size;
    uint8_t sig[SIGN_SIG_SIZE];
};

/* The inner decoder (exposed for the fuzz target): limits, magic, version, framing. */
psl_err result_decode(struct result_plain *out, const uint8_t *plain, size_t size) PSL_MUST_USE;

/* Checks a decoded result, in order: it is for job_id (PSL_ERR_REPLAY: a result of another job);
 * the worker's signature under its certificate's key (PSL_ERR_BAD_SIGNATURE); the certificate
 * verifies for capsule m at now_ms, through the carried delegation if a leader issued it
 * (cert_verify: PSL_ERR_CERT_FOREIGN for another capsule, ...). */
psl_err result_verify(const struct result_plain *r, const struct capsule_meta *m,
                      const uint8_t job_id[JOB_ID_SIZE], uint64_t now_ms) PSL_MUST_USE;

/* An opened, verified result. */
struct result_opened {
    uint32_t worker_index;
    struct writer_cert cert; /* the worker's, verified for the capsule */
    const uint8_t *data;     /* the result bytes, inside buf */
    size_t size;
    uint8_t *buf; /* owned (malloc); release with result_opened_free */
    size_t buf_size;
};

/* Opens a sealed result (untrusted bytes) with the client's key and verifies it for capsule m
 * and job_id at now_ms (a time the worker's certificate covers): size limits, PSL_ERR_DECRYPT
 * when not sealed to kx, result_decode, result_verify. The caller who issued the workers'
 * certificates may also compare out->cert.sign_pk with the one issued for out->worker_index.
 * *out on success only. */
psl_err result_open(const struct kx_keypair *kx, const struct capsule_meta *m,
                    const uint8_t job_id[JOB_ID_SIZE], uint64_t now_ms, const uint8_t *sealed,
                    size_t sealed_size, struct result_opened *out) PSL_MUST_USE;
/* Wipes and frees the result; zeroes r. */
void result_opened_free(struct result_opened *r);

/* ---- deployed functions (DESIGN §7.4) ----
 * A function is provisioned with a bundle of mode PROVISION_MODE_FUNCTION (signed by the owner
 * with the rest of the bundle): the enclave loads nothing yet, stays provisioned and runs the
 * script's global handle(args) once per invocation, in a fresh sandbox each time.
 * An invocation is sealed to the enclave's X25519 key and signed by the bundle's client key
 * (client_sign_pk): only the deployer may invoke. Plaintext ("PSLI"):
 *   magic[4] version u8 | invocation_id[16] | issued_ms u64 | reply_kx_pk[32] | args_size u32
 *   args | signature[64]: client over ("psl-invoke-v1" || SHA-256(all before the signature))
 * The answer is a sealed result (above) with job_id = invocation_id, sealed to reply_kx_pk. */
#define FUNCTION_ENTRY "handle"
#define INVOKE_VERSION 1u
#define INVOKE_ID_SIZE JOB_ID_SIZE
#define INVOKE_FIXED_SIZE (4u + 1 + INVOKE_ID_SIZE + 8 + KX_PK_SIZE + 4 + SIGN_SIG_SIZE)
#define INVOKE_SEALED_SIZE_MAX (SEAL_OVERHEAD + INVOKE_FIXED_SIZE + PSL_ARGS_SIZE_MAX)

/* True when the bundle deploys a function. */
bool provision_is_function(const struct provision_bundle *b);

struct invoke_request {
    uint8_t id[INVOKE_ID_SIZE]; /* fresh and random per invocation */
    uint64_t issued_ms;         /* wall clock of the client */
    uint8_t reply_kx_pk[KX_PK_SIZE];
    const uint8_t *args; /* borrowed; 0..PSL_ARGS_SIZE_MAX bytes */
    size_t args_size;
};

/* Encodes, signs with client and seals req to the function enclave's enclave_kx_pk. *out
 * (malloc, owned by the caller) on success; PSL_ERR_TOO_LARGE for args over the limit. */
psl_err invoke_seal(const struct signer *client, const uint8_t enclave_kx_pk[KX_PK_SIZE],
                    const struct invoke_request *req, uint8_t **out,
                    size_t *out_size) PSL_MUST_USE;

/* An opened invocation: args point into buf (owned, wiped on free). */
struct invoke_opened {
    uint8_t id[INVOKE_ID_SIZE];
    uint64_t issued_ms;
    uint8_t reply_kx_pk[KX_PK_SIZE];
    const uint8_t *args;
    size_t args_size;
    uint8_t *buf;
    size_t buf_size;
};

/* The inner decoder (exposed for the fuzz target): size, magic, version, framing, then the
 * signature under client_sign_pk over the raw bytes (PSL_ERR_BAD_SIGNATURE) before any field is
 * used. Pointers of *out borrow plain; out->buf is left NULL. *out on success only. */
psl_err invoke_decode(struct invoke_opened *out, const uint8_t client_sign_pk[SIGN_PK_SIZE],
                      const uint8_t *plain, size_t size) PSL_MUST_USE;

/* Opens an invocation (untrusted bytes from the host) with the enclave's kx and verifies it was
 * signed by client_sign_pk: size limits, PSL_ERR_DECRYPT, then invoke_decode. Replay checks are
 * the caller's (the enclave remembers ids). *out on success only; release with
 * invoke_opened_free. */
psl_err invoke_open(const struct kx_keypair *kx, const uint8_t client_sign_pk[SIGN_PK_SIZE],
                    const uint8_t *sealed, size_t sealed_size,
                    struct invoke_opened *out) PSL_MUST_USE;
void invoke_opened_free(struct invoke_opened *o);

#endif
