/* meta.h: capsule metadata (DESIGN §3.1), the immutable root of trust of a capsule.
 * Canonical encoding ("PSLM"):
 *   magic[4] version u8 suite u8 owner_pk[32] created_ms u64
 *   label_size u8 label[label_size] quorum_k u8 replica_count u8 replicas[count][32]
 *   retention u8 measurement_count u8 measurements[count][32]      -- the "body"
 *   signature[64]: Ed25519 by the owner over ("psl-meta-v1" || SHA-256(body))
 * Capsule name = SHA-256(body). Nothing about a capsule is trusted unless it chains to it. */
#ifndef PSL_CAPSULE_META_H
#define PSL_CAPSULE_META_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"
#include "crypto/crypto.h"

#define META_VERSION 1u
#define META_SIZE_MAX                                                                              \
    (4u + 1 + 1 + 32 + 8 + 1 + PSL_LABEL_SIZE_MAX + 1 + 1 + 32u * PSL_REPLICAS_MAX + 1 + 1 +       \
     32u * PSL_MEASUREMENTS_MAX + SIGN_SIG_SIZE)

enum capsule_retention {
    RETENTION_KEEP_ALL = 0,       /* servers keep every record (audit) */
    RETENTION_COLLECT_COVERED = 1 /* records covered by a checkpoint may be collected */
};

struct capsule_meta {
    uint8_t version;
    uint8_t suite;
    uint8_t owner_pk[SIGN_PK_SIZE];
    uint64_t created_ms;
    uint8_t label_size;
    char label[PSL_LABEL_SIZE_MAX + 1]; /* NUL-terminated copy; may contain any bytes */
    uint8_t quorum_k;
    uint8_t replica_count;
    uint8_t replicas[PSL_REPLICAS_MAX][SIGN_PK_SIZE];
    uint8_t retention;
    uint8_t measurement_count; /* 0: the policy allows any measurement */
    uint8_t measurements[PSL_MEASUREMENTS_MAX][HASH_SIZE];
    uint8_t sig[SIGN_SIG_SIZE];
    uint8_t name[HASH_SIZE]; /* derived: SHA-256 of the body */
};

/* Checks the fields of m (counts, quorum, duplicates) without any signature. */
psl_err meta_check_fields(const struct capsule_meta *m) PSL_MUST_USE;

/* Fills m->owner_pk from owner, computes the name and signs. m's other fields are the caller's. */
psl_err meta_sign(struct capsule_meta *m, const struct signer *owner) PSL_MUST_USE;

/* Encodes a signed m into out (cap >= META_SIZE_MAX is always enough); *out_size on success. */
psl_err meta_encode(const struct capsule_meta *m, uint8_t *out, size_t cap,
                    size_t *out_size) PSL_MUST_USE;

/* Decodes and verifies untrusted bytes: limits, fields, then the owner signature over the raw
 * body. On success *m holds the metadata and its name; on failure *m is untouched. */
psl_err meta_decode(struct capsule_meta *m, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* True when the policy allows this enclave measurement. */
bool meta_allows_measurement(const struct capsule_meta *m, const uint8_t measurement[HASH_SIZE]);

/* Index of a server key in the replica set, or -1. */
int meta_replica_index(const struct capsule_meta *m, const uint8_t server_pk[SIGN_PK_SIZE]);

#endif
