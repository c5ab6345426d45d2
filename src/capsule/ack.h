/* ack.h: a storage server's signed acknowledgement of a durably stored record (DESIGN §3.4).
 * Encoding ("PSLA", 205 bytes):
 *   magic[4] version u8 capsule[32] writer[32] seq u64 record_hash[32] server_pk[32]
 *   signature[64]: by the server over ("psl-ack-v1" || SHA-256(all before the signature))
 * Only servers in the capsule's replica set count toward the quorum k. */
#ifndef PSL_CAPSULE_ACK_H
#define PSL_CAPSULE_ACK_H

#include <stdint.h>

#include "capsule/meta.h"

#define ACK_VERSION 1u
#define ACK_SIZE 205u

struct ack {
    uint8_t capsule[HASH_SIZE];
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t record_hash[HASH_SIZE];
    uint8_t server_pk[SIGN_PK_SIZE];
    uint8_t sig[SIGN_SIG_SIZE];
};

/* Sets server_pk and signs. */
void ack_sign(struct ack *a, const struct signer *server);
void ack_encode(const struct ack *a, uint8_t out[ACK_SIZE]);
psl_err ack_decode(struct ack *a, const uint8_t *buf, size_t size) PSL_MUST_USE;
/* Capsule name, replica-set membership of the server, then the signature. */
psl_err ack_verify(const struct ack *a, const struct capsule_meta *m) PSL_MUST_USE;

#endif
