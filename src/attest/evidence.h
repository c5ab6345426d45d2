/* evidence.h: attestation evidence, the simulated TEE platform and the verifier policy
 * (DESIGN §7.3). An enclave proves what it runs and which keys it holds with evidence:
 *   magic "PSLE" | version u8 | tee_type u8 | flags u16 | measurement[32] | report_data[64]
 *   platform_pk[32] | hw_report_size u16 | hw_report[hw_report_size]
 *   signature[64]: by platform_pk over ("psl-evidence-v1" || SHA-256(all before the signature))
 * report_data = SHA-256("psl-report-v1" || enclave sign_pk || enclave kx_pk) || nonce[32], where
 * the nonce is the verifier's, fresh for each verification session. The enclave's keys travel
 * beside the evidence in an attestation message:
 *   magic "PSLT" | version u8 | sign_pk[32] | kx_pk[32] | evidence_size u16 | evidence[size]
 * Sim (tee_type 1) is the only backend built: a per-host Ed25519 "platform key" signs, the
 * measurement is the SHA-256 of the psl-enclave binary, hw_report is empty. It exercises every
 * protocol step and protects nothing against the host (docs/attestation.md). Hardware types are
 * reserved: their evidence decodes (the hardware quote in hw_report) but no verifier accepts it
 * until its backend exists. */
#ifndef PSL_ATTEST_EVIDENCE_H
#define PSL_ATTEST_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"
#include "capsule/meta.h"
#include "crypto/crypto.h"

#define EVIDENCE_VERSION          1u
#define ATTEST_NONCE_SIZE         32u
#define EVIDENCE_REPORT_DATA_SIZE 64u
/* Everything but hw_report; a sim evidence is exactly this size. */
#define EVIDENCE_FIXED_SIZE                                                                        \
    (4u + 1 + 1 + 2 + HASH_SIZE + EVIDENCE_REPORT_DATA_SIZE + SIGN_PK_SIZE + 2 + SIGN_SIG_SIZE)
#define EVIDENCE_HW_REPORT_SIZE_MAX (PSL_EVIDENCE_SIZE_MAX - EVIDENCE_FIXED_SIZE)
#define ATTEST_MSG_HEADER_SIZE      (4u + 1 + SIGN_PK_SIZE + KX_PK_SIZE + 2)
#define ATTEST_MSG_SIZE_MAX         (ATTEST_MSG_HEADER_SIZE + PSL_EVIDENCE_SIZE_MAX)

/* TEE types. Only TEE_SIM has a backend; the others are reserved for docs/attestation.md. */
enum tee_type {
    TEE_SIM = 1,     /* simulation: a host-held key signs; no hardware protection */
    TEE_SGX = 2,     /* Intel SGX through Gramine: DCAP quote, measurement = MRENCLAVE */
    TEE_SEV_SNP = 3, /* AMD SEV-SNP confidential VM: attestation report via configfs-tsm */
    TEE_TDX = 4,     /* Intel TDX confidential VM: TD quote via configfs-tsm */
};
#define TEE_TYPE_MAX TEE_TDX
#define TEE_BIT(t)   (1u << (t))

/* flags: the platform reports a debug enclave or VM (its memory is readable by the host).
 * Unknown bits are refused by the decoder. */
#define EVIDENCE_FLAG_DEBUG  0x0001u
#define EVIDENCE_FLAGS_KNOWN EVIDENCE_FLAG_DEBUG

struct evidence {
    uint8_t tee_type;
    uint16_t flags;
    uint8_t measurement[HASH_SIZE];
    uint8_t report_data[EVIDENCE_REPORT_DATA_SIZE];
    uint8_t platform_pk[SIGN_PK_SIZE];
    uint16_t hw_report_size;
    const uint8_t *hw_report; /* borrowed: from the decoded bytes or the caller; NULL when empty */
    uint8_t sig[SIGN_SIG_SIZE];
};

/* A human description for logs and status output; never NULL. For TEE_SIM it is
 * "sim (simulation: no hardware protection)", so that no sim enclave is ever mistaken for a
 * protected one. */
const char *evidence_describe(uint8_t tee_type);

/* 32 fresh random bytes (rng seam): one per verification session. */
void attest_nonce_new(uint8_t out[ATTEST_NONCE_SIZE]);

/* report_data = SHA-256("psl-report-v1" || sign_pk || kx_pk) || nonce. */
void attest_report_data(uint8_t out[EVIDENCE_REPORT_DATA_SIZE], const uint8_t sign_pk[SIGN_PK_SIZE],
                        const uint8_t kx_pk[KX_PK_SIZE], const uint8_t nonce[ATTEST_NONCE_SIZE]);

/* Encodes ev (signed or not) into out; *out_size on success. cap >= PSL_EVIDENCE_SIZE_MAX is
 * always enough. PSL_ERR_TOO_LARGE when the hw_report is over its limit or cap is short. */
psl_err evidence_encode(const struct evidence *ev, uint8_t *out, size_t cap,
                        size_t *out_size) PSL_MUST_USE;
/* Parses untrusted bytes: size limits, magic, version, a known TEE type, known flags, an empty
 * hw_report for sim. Does not verify anything (see attest_verify_evidence). ev->hw_report
 * points into buf (borrowed until buf goes). On failure *ev is untouched. */
psl_err evidence_decode(struct evidence *ev, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* ---- the sim backend ---- */

/* Loads the host's simulated platform key from <dir>/platform.key, creating it (a fresh key,
 * mode 0600 through keyfile_write) when it does not exist. *out is initialised on success only;
 * release it with signer_deinit. */
psl_err attest_sim_platform_load(struct signer *out, const char *dir) PSL_MUST_USE;

/* The sim measurement: SHA-256 of the file at path (the psl-enclave binary). */
psl_err attest_measure_file(const char *path, uint8_t out[HASH_SIZE]) PSL_MUST_USE;

/* Fills and signs sim evidence, as the host's "platform" does for an enclave that asked for a
 * report over report_data (attest_report_data of its keys and the verifier's nonce). */
void evidence_sim_sign(struct evidence *ev, const struct signer *platform,
                       const uint8_t measurement[HASH_SIZE],
                       const uint8_t report_data[EVIDENCE_REPORT_DATA_SIZE]);

/* ---- attestation messages ---- */

/* The sim platform's whole answer for an enclave that reported report_data for its keys:
 * evidence_sim_sign, then attest_msg_encode into out (cap >= ATTEST_MSG_SIZE_MAX is always
 * enough). What a host hands the verifier. */
psl_err attest_sim_message(const struct signer *platform, const uint8_t measurement[HASH_SIZE],
                           const uint8_t report_data[EVIDENCE_REPORT_DATA_SIZE],
                           const uint8_t sign_pk[SIGN_PK_SIZE], const uint8_t kx_pk[KX_PK_SIZE],
                           uint8_t *out, size_t cap, size_t *out_size) PSL_MUST_USE;

struct attest_msg {
    uint8_t sign_pk[SIGN_PK_SIZE];
    uint8_t kx_pk[KX_PK_SIZE];
    const uint8_t *evidence; /* borrowed from the decoded bytes */
    size_t evidence_size;
};

/* Encodes {sign_pk, kx_pk, evidence ev}; cap >= ATTEST_MSG_SIZE_MAX is always enough. */
psl_err attest_msg_encode(const struct evidence *ev, const uint8_t sign_pk[SIGN_PK_SIZE],
                          const uint8_t kx_pk[KX_PK_SIZE], uint8_t *out, size_t cap,
                          size_t *out_size) PSL_MUST_USE;
/* Parses untrusted bytes (limits, magic, version, framing); the evidence inside is not decoded
 * here. On failure *m is untouched. */
psl_err attest_msg_decode(struct attest_msg *m, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* ---- verification ---- */

/* What a verifier accepts. Build with attest_policy_init, then trust platform keys. */
struct attest_policy {
    uint32_t tee_mask; /* TEE_BIT(t) set: evidence of type t may be accepted */
    bool allow_debug;  /* accept evidence flagged EVIDENCE_FLAG_DEBUG (default false) */
    unsigned platform_key_count;
    uint8_t platform_keys[PSL_PLATFORM_KEYS_MAX][SIGN_PK_SIZE];
    unsigned measurement_count; /* 0: any measurement */
    uint8_t measurements[PSL_MEASUREMENTS_MAX][HASH_SIZE];
};

/* A policy that accepts sim evidence (for now: clear TEE_BIT(TEE_SIM) in tee_mask to refuse
 * it), trusts no platform key yet, and allows exactly the measurements of capsule m (m may be
 * NULL, or list none: any measurement). */
void attest_policy_init(struct attest_policy *p, const struct capsule_meta *m);
/* Adds a trusted platform key (a no-op if already there); PSL_ERR_TOO_LARGE past
 * PSL_PLATFORM_KEYS_MAX. */
psl_err attest_policy_trust_platform(struct attest_policy *p,
                                     const uint8_t pk[SIGN_PK_SIZE]) PSL_MUST_USE;

/* What verification established about an enclave. */
struct attest_verified {
    uint8_t tee_type;
    uint16_t flags;
    uint8_t measurement[HASH_SIZE];
    uint8_t sign_pk[SIGN_PK_SIZE];
    uint8_t kx_pk[KX_PK_SIZE];
    uint8_t platform_pk[SIGN_PK_SIZE];
    const char *description; /* static: evidence_describe(tee_type), for logs and status */
};

/* Verifies evidence bytes for the keys presented with it, in this order: decoding limits; the
 * TEE type is allowed (and debug only if allowed): PSL_ERR_ATTEST_PLATFORM; the platform key is
 * trusted: PSL_ERR_ATTEST_PLATFORM; the signature: PSL_ERR_BAD_SIGNATURE; the nonce is
 * `nonce`: PSL_ERR_ATTEST_NONCE; the report data binds sign_pk and kx_pk:
 * PSL_ERR_ATTEST_BINDING; the measurement is allowed: PSL_ERR_ATTEST_MEASUREMENT. Evidence of
 * a hardware type gets PSL_ERR_ATTEST_PLATFORM (no backend in this build). *out is written on
 * success only. */
psl_err attest_verify_evidence(const struct attest_policy *p, const uint8_t *evidence,
                               size_t evidence_size, const uint8_t sign_pk[SIGN_PK_SIZE],
                               const uint8_t kx_pk[KX_PK_SIZE],
                               const uint8_t nonce[ATTEST_NONCE_SIZE],
                               struct attest_verified *out) PSL_MUST_USE;

/* Decodes an attestation message (untrusted bytes) and verifies its evidence for the keys it
 * presents (attest_verify_evidence). *out is written on success only. */
psl_err attest_verify(const struct attest_policy *p, const uint8_t *msg, size_t msg_size,
                      const uint8_t nonce[ATTEST_NONCE_SIZE],
                      struct attest_verified *out) PSL_MUST_USE;

#endif
