/* jobclient.h: the client side of a job (DESIGN §7.3, §7.4), part of libpsl. The client holds
 * the capsule (signed metadata and capsule key), the owner key, a fresh X25519 key that results
 * and lambda log lines are sealed to, and one nonce per worker. For each worker it verifies the
 * attestation message a host returned for that nonce against a policy that trusts the hosts'
 * platform keys and the capsule's measurements, certifies the attested enclave keys, and seals
 * the job to the attested X25519 key; afterwards it opens each sealed result and checks that it
 * was signed by the very enclave it certified for that worker. Hosts only relay. */
#ifndef PSL_CLIENT_JOBCLIENT_H
#define PSL_CLIENT_JOBCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "attest/provision.h"

/* Workers of one job across all nodes. */
#define JOBCLIENT_WORKERS_MAX 256u

struct jobclient_worker {
    uint8_t nonce[ATTEST_NONCE_SIZE];
    bool certified;
    struct writer_cert cert; /* valid when certified */
};

struct jobclient {
    struct capsule_meta meta;
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    uint8_t *capsule_key; /* AEAD_KEY_SIZE bytes of secret memory, owned */
    uint8_t *kx_seed;     /* 32 bytes of secret memory, owned: re-creates kx (job files) */
    struct kx_keypair kx; /* results and sealed log lines open with it */
    uint8_t job_id[JOB_ID_SIZE];
    unsigned workers;
    struct jobclient_worker *w; /* workers entries, owned */
    struct attest_policy policy;
};

/* The capsule a new job runs on, as `psl capsule create` makes one. */
struct jobclient_capsule_spec {
    const char *label;                       /* NULL: "" (truncated to PSL_LABEL_SIZE_MAX) */
    const uint8_t (*replicas)[SIGN_PK_SIZE]; /* storage servers' public keys */
    unsigned replica_count;                  /* 1..PSL_REPLICAS_MAX */
    unsigned quorum_k;                       /* 1..replica_count; 0: a majority */
    const uint8_t (*measurements)[HASH_SIZE]; /* enclave binaries admitted; 0 of them: any */
    unsigned measurement_count;
};

/* Signs new capsule metadata with owner; *out_size bytes to out (cap >= META_SIZE_MAX). */
psl_err jobclient_capsule_new(const struct signer *owner, const struct jobclient_capsule_spec *spec,
                              uint8_t *out, size_t cap, size_t *out_size) PSL_MUST_USE;

/* Starts a job on the capsule meta_raw (decoded and verified here) with capsule_key (copied):
 * a fresh job id, result key and nonces, and a policy trusting no platform yet. On failure c
 * is zeroed. Release with jobclient_deinit. */
psl_err jobclient_init(struct jobclient *c, const uint8_t *meta_raw, size_t meta_size,
                       const uint8_t capsule_key[AEAD_KEY_SIZE], unsigned workers) PSL_MUST_USE;
/* Re-creates a job's client from what a job file kept: job id, the result key's seed, and for
 * each certified worker the public signing key of its certificate (NULL entries: not
 * certified). Only results can be opened with it (no nonces, no policy). */
psl_err jobclient_restore(struct jobclient *c, const uint8_t *meta_raw, size_t meta_size,
                          const uint8_t capsule_key[AEAD_KEY_SIZE], const uint8_t kx_seed[32],
                          const uint8_t job_id[JOB_ID_SIZE], unsigned workers,
                          const uint8_t *const *cert_sign_pks) PSL_MUST_USE;
void jobclient_deinit(struct jobclient *c);

/* Trusts a host's (sim) platform key for the evidence of this job. */
psl_err jobclient_trust_platform(struct jobclient *c, const uint8_t pk[SIGN_PK_SIZE]) PSL_MUST_USE;

/* What every worker runs; pointers borrowed for the call. */
struct jobclient_job {
    const char *name; /* chunk name (the script's file name) */
    const uint8_t *script;
    size_t script_size;
    const uint8_t *args;
    size_t args_size;
    uint64_t mem_bytes;   /* 0: default */
    uint64_t insn_budget; /* 0: default */
    uint8_t mode;         /* enum provision_mode: a job (0) or a deployed function */
};

/* Admits worker i: verifies the attestation message msg (untrusted bytes from a host) for the
 * worker's nonce, certifies the attested keys (worker 0 of several is the coordinator), and
 * seals the job to the attested enclave. *sealed (malloc, caller frees) on success; otherwise
 * why[why_cap] says which step refused, and the error is attest_verify's or the certificate's. */
psl_err jobclient_admit(struct jobclient *c, const struct signer *owner, unsigned i,
                        const uint8_t *msg, size_t msg_size, const struct jobclient_job *job,
                        uint8_t **sealed, size_t *sealed_size, char *why,
                        size_t why_cap) PSL_MUST_USE;

struct jobclient_result {
    bool verified; /* opened, signed under the certificate issued for this worker */
    bool ok;       /* the lambda returned: text is its JSON result */
    psl_err err;   /* why not verified, or the job's error */
    char *text;    /* JSON result, or the lambda's error message (owned, NUL-terminated) */
    char why[192]; /* set when not verified */
};

/* Opens worker i's sealed result (untrusted bytes) as the client: decrypt, check job, signature
 * and certificate, then that the signer is the enclave certified for worker i. job_err is the
 * error the host saw in the clear (a lambda failure makes ok false). Always fills *out; release
 * with jobclient_result_free. */
void jobclient_open_result(struct jobclient *c, unsigned i, psl_err job_err, const uint8_t *sealed,
                           size_t size, struct jobclient_result *out);
void jobclient_result_free(struct jobclient_result *r);

/* Opens a sealed lambda log line into line[cap] (NUL-terminated; *len without it). */
psl_err jobclient_open_log(const struct jobclient *c, const uint8_t *sealed, size_t size, char *line,
                           size_t cap, size_t *len) PSL_MUST_USE;

/* ---- deployed functions (DESIGN §7.4) ----
 * A function is deployed like a one-worker job whose bundle has mode PROVISION_MODE_FUNCTION
 * (attest/provision.h). Each invocation is sealed to the function's certified enclave and signed
 * by the owner; the answer is sealed to a fresh reply key and must be signed by that enclave. */
struct jobclient_invocation {
    uint8_t id[INVOKE_ID_SIZE];
    struct kx_keypair reply; /* fresh per invocation */
    uint8_t *sealed;         /* the sealed invocation (malloc, owned) */
    size_t sealed_size;
};

/* Seals args (borrowed) for the enclave whose certified X25519 key is enclave_kx_pk. On failure
 * *out is zeroed. Release with jobclient_invocation_free. */
psl_err jobclient_invoke_seal(const struct signer *owner, const uint8_t enclave_kx_pk[KX_PK_SIZE],
                              const uint8_t *args, size_t args_size,
                              struct jobclient_invocation *out) PSL_MUST_USE;
/* Opens the answer to inv (untrusted bytes): decrypt with the reply key, check it answers inv's
 * id, is signed under a certificate for capsule m, and that the certified key is
 * enclave_sign_pk (the function's enclave). inv_err is the verdict the node relayed. Always fills
 * *out; release with jobclient_result_free. */
void jobclient_invoke_open(const struct jobclient_invocation *inv, const struct capsule_meta *m,
                           const uint8_t enclave_sign_pk[SIGN_PK_SIZE], psl_err inv_err,
                           const uint8_t *sealed, size_t size, struct jobclient_result *out);
void jobclient_invocation_free(struct jobclient_invocation *inv);

#endif
