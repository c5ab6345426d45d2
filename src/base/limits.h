/* limits.h: every bound that a decoder of outside bytes enforces, in one place.
 * Checklist: a limit changed or added here is mirrored in docs/protocol.md, and the fuzz target
 * of the decoder that enforces it gets a seed that sits exactly at the limit. */
#ifndef PSL_BASE_LIMITS_H
#define PSL_BASE_LIMITS_H

/* Capsule metadata (DESIGN §3.1). */
#define PSL_LABEL_SIZE_MAX 255u
#define PSL_REPLICAS_MAX 16u
#define PSL_MEASUREMENTS_MAX 32u

/* Records (DESIGN §3.3). The payload includes the 16-byte AEAD tag when encrypted. */
#define PSL_RECORD_HEADER_SIZE 156u
#define PSL_RECORD_SIG_SIZE 64u
#define PSL_RECORD_PAYLOAD_SIZE_MAX (4u << 20)
#define PSL_RECORD_SIZE_MAX (PSL_RECORD_HEADER_SIZE + PSL_RECORD_PAYLOAD_SIZE_MAX + PSL_RECORD_SIG_SIZE)

/* Largest message on the fabric: a maximal record plus a request/reply envelope. */
#define PSL_MSG_SIZE_MAX (PSL_RECORD_PAYLOAD_SIZE_MAX + 4096u)

/* DATA payload operations. */
#define PSL_KEY_SIZE_MAX 1024u
#define PSL_VALUE_SIZE_MAX (1u << 20)
#define PSL_DATA_OPS_MAX 65536u

/* Heads listed by EOE and SYNC records (and by the cut of a CHECKPOINT). */
#define PSL_CUT_HEADS_MAX 4096u

/* CHECKPOINT records (capsule/checkpoint.h): live block hashes listed (as many as an index may
 * name, LSM_INDEX_BLOCKS_MAX in lsm/index.h). */
#define PSL_CHECKPOINT_BLOCKS_MAX 65536u

/* Opaque payloads: sealed RESULT records. */
#define PSL_RESULT_SIZE_MAX (1u << 20)

/* Export files (capsule audit). */
#define PSL_EXPORT_RECORDS_MAX (1u << 24)
#define PSL_EXPORT_SIZE_MAX (16ull << 30)

/* Chain verification: the number of distinct writers tracked in one capsule. */
#define PSL_WRITERS_MAX 65536u

/* Enclave boundary (src/ring): one framed message on a ring, and the default ring capacity. */
#define PSL_RING_MSG_SIZE_MAX (PSL_MSG_SIZE_MAX + 256u)
#define PSL_RING_CAPACITY_DEFAULT (16u << 20)

/* Lambdas (src/enclave): script size, arguments, log lines, and the default per-job caps. */
#define PSL_SCRIPT_SIZE_MAX (1u << 20)
#define PSL_ARGS_SIZE_MAX (1u << 20)
#define PSL_LOG_LINE_SIZE_MAX 4096u
#define PSL_LAMBDA_MEM_DEFAULT (256ull << 20)
#define PSL_LAMBDA_INSN_DEFAULT 20000000000ull /* about a minute or more of Lua on this machine */
#define PSL_BARRIER_NAME_SIZE_MAX 128u

/* Attestation and provisioning (src/attest). */
#define PSL_EVIDENCE_SIZE_MAX 4096u
#define PSL_PLATFORM_KEYS_MAX 64u
#define PSL_PROVISION_SIZE_MAX (PSL_SCRIPT_SIZE_MAX + PSL_ARGS_SIZE_MAX + 16384u)

#endif
