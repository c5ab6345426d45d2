/* payload.h: the plaintext payloads carried by records.
 * DATA:   op_count u32, then op_count times
 *         { op u8 (1 PUT, 2 DEL) | lamport u64 | key_size u16 | value_size u32 | key | value }
 *         (DEL has value_size 0; key_size >= 1).
 * EOE/SYNC (a cut): epoch u64 | head_count u32 | head_count times { writer[32] seq u64 hash[32] }
 * HEAD:   wall_ms u64
 * CERT:   has_delegation u8 | certificate[254] | [delegation[190]]
 * REVOKE: target_writer[32] serial u64 revoker_pk[32] signature[64]
 *         (signature by the owner or a leader over "psl-revoke-v1" || SHA-256(capsule || the
 *         first 72 bytes))
 * RESULT, LSM_BLOCK, LSM_INDEX: opaque here (sealed box; CapsuleDB formats). */
#ifndef PSL_CAPSULE_PAYLOAD_H
#define PSL_CAPSULE_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "capsule/cert.h"

enum kv_opcode { OP_PUT = 1, OP_DEL = 2 };

struct kv_op {
    uint8_t op;
    uint64_t lamport;
    uint16_t key_size;
    uint32_t value_size;
    const uint8_t *key;   /* borrowed */
    const uint8_t *value; /* borrowed; NULL for DEL */
};

#define DATA_OP_OVERHEAD 15u /* op + lamport + key_size + value_size */

/* Encoded size of ops, or 0 when any op breaks a limit. */
size_t data_encoded_size(const struct kv_op *ops, size_t count);
/* Appends the encoding of ops to w, or nothing when any op breaks a limit or w is too small
 * (sticky error). */
void data_encode(struct wr *w, const struct kv_op *ops, size_t count);
/* Decodes a DATA plaintext. Every op is limit-checked; ops are views into buf. At most cap ops are
 * written; a larger op_count (or one over PSL_DATA_OPS_MAX) fails with PSL_ERR_TOO_LARGE before
 * anything is written. */
psl_err data_decode(const uint8_t *buf, size_t size, struct kv_op *ops, size_t cap,
                    size_t *count) PSL_MUST_USE;
/* Reads only the op count (bounded) so a caller can size its array first. */
psl_err data_count(const uint8_t *buf, size_t size, size_t *count) PSL_MUST_USE;

struct cut_head {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
};
#define CUT_HEAD_SIZE 72u

void cut_encode(struct wr *w, uint64_t epoch, const struct cut_head *heads, size_t count);
/* Decodes a cut; the same cap rules as data_decode (limit PSL_CUT_HEADS_MAX). */
psl_err cut_decode(const uint8_t *buf, size_t size, uint64_t *epoch, struct cut_head *heads,
                   size_t cap, size_t *count) PSL_MUST_USE;

void head_encode(struct wr *w, uint64_t wall_ms);
psl_err head_decode(const uint8_t *buf, size_t size, uint64_t *wall_ms) PSL_MUST_USE;

/* CERT payload. deleg may be NULL. */
void certpl_encode(struct wr *w, const struct writer_cert *c, const struct delegation *deleg);
/* Parses (does not verify). *has_deleg says whether *deleg was filled. */
psl_err certpl_decode(const uint8_t *buf, size_t size, struct writer_cert *c,
                      struct delegation *deleg, bool *has_deleg) PSL_MUST_USE;

struct revocation {
    uint8_t target[HASH_SIZE];
    uint64_t serial;
    uint8_t revoker_pk[SIGN_PK_SIZE];
    uint8_t sig[SIGN_SIG_SIZE];
};
#define REVOKE_SIZE 136u
void revoke_sign(struct revocation *r, const uint8_t capsule[HASH_SIZE], const struct signer *by);
void revoke_encode(struct wr *w, const struct revocation *r);
psl_err revoke_decode(const uint8_t *buf, size_t size, struct revocation *r) PSL_MUST_USE;
/* Verifies the revoker's signature for this capsule (who may revoke is the caller's policy). */
bool revoke_verify(const struct revocation *r, const uint8_t capsule[HASH_SIZE]);

#endif
