/* ack.h: a storage server's acknowledgement of a durably stored record (DESIGN §3.4, amended in
 * docs/protocol.md). Encoding ("PSLA", 237 bytes):
 *   magic[4] version u8 capsule[32] writer[32] seq u64 record_hash[32] server_pk[32]   (body)
 *   mac[32]:       HMAC-SHA256(ack key, "psl-ack-v2" || body), for the writer
 *   signature[64]: by the server over ("psl-ack-v2" || SHA-256(body)), for everyone else
 * The ack key is one only the server and the writer can compute: HKDF-SHA256 of their X25519
 * agreement (the server's Ed25519 key converted, the writer's certified kx key), bound to both
 * public keys. The writer decides durability on MACs (a microsecond each, where a signature
 * check costs ~70 us on its critical path, k times per record); the signature keeps every ACK
 * evidence a third party can check. Only servers in the capsule's replica set count. */
#ifndef PSL_CAPSULE_ACK_H
#define PSL_CAPSULE_ACK_H

#include <stdint.h>

#include "capsule/meta.h"

#define ACK_VERSION 2u
#define ACK_SIZE 237u
#define ACK_KEY_SIZE 32u

struct ack {
    uint8_t capsule[HASH_SIZE];
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint8_t record_hash[HASH_SIZE];
    uint8_t server_pk[SIGN_PK_SIZE];
    uint8_t mac[HASH_SIZE];
    uint8_t sig[SIGN_SIG_SIZE];
};

/* The ack key of (server, writer) into key (the caller's secret memory). The server passes its
 * X25519 pair (kx_from_signer) and the writer's certified kx_pk; the writer passes its kx pair
 * and the server's signing key. Both arrive at the same key. */
psl_err ack_key_for_writer(uint8_t key[ACK_KEY_SIZE], const struct kx_keypair *server_kx,
                           const uint8_t server_pk[SIGN_PK_SIZE],
                           const uint8_t writer_kx_pk[KX_PK_SIZE]) PSL_MUST_USE;
psl_err ack_key_for_server(uint8_t key[ACK_KEY_SIZE], const struct kx_keypair *writer_kx,
                           const uint8_t server_pk[SIGN_PK_SIZE]) PSL_MUST_USE;

/* A writer's ack keys, one per replica-set server, in metadata order (secret memory). A server
 * whose signing key has no X25519 form (not a valid point, or of small order) gets no key: its
 * ACKs fail ack_verify_mac, and only its. */
struct ack_keys {
    uint8_t *k; /* count * ACK_KEY_SIZE bytes, owned; NULL when empty */
    unsigned count;
    bool usable[PSL_REPLICAS_MAX];
};
/* PSL_ERR_NOMEM is its only failure. */
psl_err ack_keys_init(struct ack_keys *ks, const struct kx_keypair *writer_kx,
                      const struct capsule_meta *m) PSL_MUST_USE;
void ack_keys_free(struct ack_keys *ks);

/* Sets server_pk, the MAC under key, and the signature. */
psl_err ack_sign(struct ack *a, const struct signer *server,
                 const uint8_t key[ACK_KEY_SIZE]) PSL_MUST_USE;
/* ack_sign with the key derived on the spot from the server's key and the writer's certified
 * kx key (costs two X25519 operations: for tools and tests; servers cache their keys). */
psl_err ack_sign_for(struct ack *a, const struct signer *server,
                     const uint8_t writer_kx_pk[KX_PK_SIZE]) PSL_MUST_USE;
void ack_encode(const struct ack *a, uint8_t out[ACK_SIZE]);
psl_err ack_decode(struct ack *a, const uint8_t *buf, size_t size) PSL_MUST_USE;
/* For anyone: capsule name, replica-set membership of the server, then the signature. */
psl_err ack_verify(const struct ack *a, const struct capsule_meta *m) PSL_MUST_USE;
/* For the writer: capsule name, membership, then the MAC under its key for that server. On
 * success *server_index is the server's replica index. */
psl_err ack_verify_mac(const struct ack *a, const struct capsule_meta *m,
                       const struct ack_keys *ks, int *server_index) PSL_MUST_USE;

#endif
