/* record.h: capsule records (DESIGN §3.3): the 156-byte header, sealing by a writer, parsing
 * and verification by a receiver.
 * Wire form: header[156] || payload[payload_size] || signature[64]
 *   header: magic "PSLR" | version u8 | type u8 | flags u16 | payload_size u32 |
 *           capsule[32] | writer[32] | seq u64 | lamport u64 | prev[32] | sync[32]
 *   record hash = SHA-256(header || payload); signature = Ed25519(writer, "psl-rec-v1" || hash)
 * Encrypted types (DATA, LSM_BLOCK, LSM_INDEX) carry AES-256-GCM ciphertext || tag[16] under
 * the per-writer key HKDF-SHA256(capsule_key, info = "psl-writer" || writer_id), with nonce
 * seq (u64 LE, then four zero bytes) and the header as AAD.
 * Receivers check, in this order, before any allocation sized by the record: header limits,
 * capsule name, writer certificate known and valid, signature, prev link, then decrypt. */
#ifndef PSL_CAPSULE_RECORD_H
#define PSL_CAPSULE_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/limits.h"
#include "capsule/cert.h"
#include "capsule/meta.h"

#define RECORD_VERSION 1u
#define RECORD_SIG_TAG "psl-rec-v1"
/* Byte offsets of header fields, for readers of stored records that need one field. */
#define RECORD_OFFSET_SEQ 76u
#define RECORD_OFFSET_PREV 92u

enum record_type {
    REC_CERT = 1,
    REC_DATA = 2,
    REC_EOE = 3,
    REC_SYNC = 4,
    REC_HEAD = 5,
    REC_LSM_BLOCK = 6,
    REC_LSM_INDEX = 7,
    REC_RESULT = 8,
    REC_REVOKE = 9,
    REC_CHECKPOINT = 10, /* compactor: public notice of a durable index (capsule/checkpoint.h) */
};
#define REC_TYPE_MAX 10

const char *record_type_name(uint8_t type);
/* Whether the payload of this type is AEAD-encrypted under the writer key. */
bool record_type_is_encrypted(uint8_t type);

struct record_header {
    uint8_t type;
    uint16_t flags; /* reserved: must be 0 in version 1 */
    uint32_t payload_size;
    uint8_t capsule[HASH_SIZE];
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    uint64_t lamport;
    uint8_t prev[HASH_SIZE];
    uint8_t sync[HASH_SIZE];
};

void record_header_encode(const struct record_header *h, uint8_t out[PSL_RECORD_HEADER_SIZE]);
/* Parses and limit-checks a header: magic, version, known type, zero flags, payload size within
 * limit, seq >= 1, and for seq 1 a zero prev. */
psl_err record_header_decode(struct record_header *h, const uint8_t *buf,
                             size_t size) PSL_MUST_USE;

/* A writer's signing identity and payload key. */
struct writer_keys {
    struct signer sign;
    struct kx_keypair kx;
    struct aead_key aead; /* hd NULL when the writer has no capsule key */
    uint8_t writer_id[HASH_SIZE];
};

/* Derives the per-writer AEAD key into out (secret memory of the caller). */
psl_err record_key_derive(uint8_t out[AEAD_KEY_SIZE], const uint8_t capsule_key[AEAD_KEY_SIZE],
                          const uint8_t writer_id[HASH_SIZE]) PSL_MUST_USE;
/* Creates writer keys from seeds (NULL: fresh from the rng seam). capsule_key may be NULL for a
 * writer that only writes plaintext types. */
psl_err writer_keys_init(struct writer_keys *wk, const uint8_t sign_seed[SIGN_SEED_SIZE],
                         const uint8_t kx_seed[32], const uint8_t *capsule_key) PSL_MUST_USE;
void writer_keys_deinit(struct writer_keys *wk);

/* Room needed in a sealing buffer for a plaintext payload of plain_size bytes. */
static inline size_t record_sealed_size(size_t plain_size, uint8_t type)
{
    return PSL_RECORD_HEADER_SIZE + plain_size + (record_type_is_encrypted(type) ? AEAD_TAG_SIZE : 0) +
           PSL_RECORD_SIG_SIZE;
}

/* Seals a record in place. The caller has written plain_size bytes of plaintext payload at
 * buf + PSL_RECORD_HEADER_SIZE and filled h's type, capsule, seq, lamport, prev and sync; this
 * sets h->writer and h->payload_size, writes the header, encrypts the payload when the type says
 * so, hashes once and signs once. buf must hold record_sealed_size(plain_size, type) bytes.
 * On success *out_size is the record size and hash_out its hash. */
psl_err record_seal(const struct writer_keys *wk, struct record_header *h, uint8_t *buf,
                    size_t cap, size_t plain_size, size_t *out_size,
                    uint8_t hash_out[HASH_SIZE]) PSL_MUST_USE;

/* A writer's position in its own chain: the one place that assigns seq and prev, so records of
 * a writer are sequenced and chained by exactly one owner. */
struct record_chain {
    uint8_t capsule[HASH_SIZE];
    uint64_t seq;            /* seq of the last sealed record (0: none yet) */
    uint8_t head[HASH_SIZE]; /* hash of the last sealed record */
    uint8_t sync[HASH_SIZE]; /* newest SYNC record applied (zeros: none) */
};
void record_chain_init(struct record_chain *rc, const uint8_t capsule[HASH_SIZE]);
/* Seals the next record of the chain (plaintext payload already at buf + header size) and
 * advances seq and head on success. */
psl_err record_chain_seal(struct record_chain *rc, const struct writer_keys *wk, uint8_t type,
                          uint64_t lamport, uint8_t *buf, size_t cap, size_t plain_size,
                          size_t *out_size, uint8_t hash_out[HASH_SIZE]) PSL_MUST_USE;

/* A parsed record: pointers borrowed from the buffer given to record_parse. */
struct record_view {
    struct record_header h;
    const uint8_t *raw;
    size_t raw_size;
    const uint8_t *payload;
    const uint8_t *sig;
    uint8_t hash[HASH_SIZE];
};

/* Step 1 of verification: header limits and exact framing; computes the record hash. */
psl_err record_parse(struct record_view *v, const uint8_t *buf, size_t size) PSL_MUST_USE;

/* Steps 2-5 for a non-CERT record: capsule name, certificate known (cert may be NULL: unknown
 * writer) and valid at now_ms, signature, and prev link when the writer's previous record hash
 * is known (prev_known may be NULL). The certificate must have been verified already. */
psl_err record_check(const struct record_view *v, const struct capsule_meta *m,
                     const struct writer_cert *cert, uint64_t now_ms,
                     const uint8_t *prev_known) PSL_MUST_USE;

/* Verification of a CERT record, whose payload carries its certificate (and a delegation when a
 * leader issued it): the certificate is verified first, then the record signature with the
 * certified key. On success *cert_out holds the verified certificate. */
psl_err record_check_cert(const struct record_view *v, const struct capsule_meta *m,
                          uint64_t now_ms, struct writer_cert *cert_out) PSL_MUST_USE;

/* Step 6: decrypts the payload of an encrypted record into out (private memory, at least
 * payload_size - AEAD_TAG_SIZE bytes); copies the payload of a plaintext type. On failure out
 * holds nothing usable (wiped). *out_size is the plaintext size. */
psl_err record_open(const struct record_view *v, const struct aead_key *key, uint8_t *out,
                    size_t cap, size_t *out_size) PSL_MUST_USE;

#endif
