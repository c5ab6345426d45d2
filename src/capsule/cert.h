/* cert.h: writer certificates and leader delegations (DESIGN §3.2).
 * Certificate ("PSLC", 254 bytes):
 *   magic[4] version u8 role u8 capsule[32] sign_pk[32] kx_pk[32] measurement[32]
 *   not_before_ms u64 not_after_ms u64 serial u64 issuer_pk[32]
 *   signature[64]: by issuer over ("psl-cert-v1" || SHA-256(all before the signature))
 * Delegation ("PSLD", 190 bytes): the owner lets a leader enclave certify writers.
 *   magic[4] version u8 roles_mask u8 capsule[32] leader_pk[32] measurement[32]
 *   not_before_ms u64 not_after_ms u64 serial u64
 *   signature[64]: by the owner over ("psl-deleg-v1" || SHA-256(all before the signature))
 * Writer id = SHA-256(sign_pk). */
#ifndef PSL_CAPSULE_CERT_H
#define PSL_CAPSULE_CERT_H

#include <stdint.h>

#include "capsule/meta.h"

#define CERT_VERSION 1u
#define CERT_SIZE 254u
#define DELEG_SIZE 190u

enum writer_role {
    ROLE_WORKER = 1,
    ROLE_COORDINATOR = 2,
    ROLE_COMPACTOR = 3,
    ROLE_LEADER = 4,
};
#define ROLE_BIT(r) (1u << (r))
#define ROLE_MASK_ALL (ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR) | ROLE_BIT(ROLE_COMPACTOR) | ROLE_BIT(ROLE_LEADER))

/* "worker", "coordinator", ...; "?" for an unknown value. */
const char *role_name(uint8_t role);

struct writer_cert {
    uint8_t role;
    uint8_t capsule[HASH_SIZE];
    uint8_t sign_pk[SIGN_PK_SIZE];
    uint8_t kx_pk[KX_PK_SIZE];
    uint8_t measurement[HASH_SIZE];
    uint64_t not_before_ms;
    uint64_t not_after_ms;
    uint64_t serial;
    uint8_t issuer_pk[SIGN_PK_SIZE];
    uint8_t sig[SIGN_SIG_SIZE];
    uint8_t writer_id[HASH_SIZE]; /* derived: SHA-256(sign_pk) */
};

struct delegation {
    uint8_t roles_mask;
    uint8_t capsule[HASH_SIZE];
    uint8_t leader_pk[SIGN_PK_SIZE];
    uint8_t measurement[HASH_SIZE];
    uint64_t not_before_ms;
    uint64_t not_after_ms;
    uint64_t serial;
    uint8_t sig[SIGN_SIG_SIZE];
};

void writer_id_of(uint8_t out[HASH_SIZE], const uint8_t sign_pk[SIGN_PK_SIZE]);

/* Sets issuer_pk and writer_id and signs c with issuer (the owner or a delegated leader). */
void cert_sign(struct writer_cert *c, const struct signer *issuer);
void cert_encode(const struct writer_cert *c, uint8_t out[CERT_SIZE]);
/* Parses untrusted bytes (exact size, magic, version, role). Does not verify: see cert_verify. */
psl_err cert_decode(struct writer_cert *c, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* Verifies c for capsule m at time now_ms: capsule name, validity window, measurement policy,
 * issuer (the owner, or the leader of deleg, which must itself verify and allow c's role), and
 * the signature. deleg may be NULL when the owner issued c. */
psl_err cert_verify(const struct writer_cert *c, const struct delegation *deleg,
                    const struct capsule_meta *m, uint64_t now_ms) PSL_MUST_USE;

void deleg_sign(struct delegation *d, const struct signer *owner);
void deleg_encode(const struct delegation *d, uint8_t out[DELEG_SIZE]);
psl_err deleg_decode(struct delegation *d, const uint8_t *buf, size_t size) PSL_MUST_USE;
/* Verifies the owner's signature, the capsule and the validity window of d. */
psl_err deleg_verify(const struct delegation *d, const struct capsule_meta *m,
                     uint64_t now_ms) PSL_MUST_USE;

#endif
