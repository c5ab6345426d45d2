/* abi.h: the messages that cross the enclave boundary (DESIGN §7.1), one per ring frame. The
 * frame type is the message type; the payload layouts are below (little-endian, fixed width).
 * The enclave treats every host message as hostile: it copies the frame once (ring_recv), then
 * checks the exact size or the limit of its type before it looks inside, and answers garbage
 * with RING_E2H_ERROR. Nothing secret ever crosses in plaintext: provisioning arrives sealed to
 * the enclave's X25519 key, results leave sealed to the client's, records are already encrypted.
 * Checklist: a new message type touches this file, the enclave's dispatcher (src/enclave), the
 * host's relay (src/node/enclave_host.c), fuzz_enclave's seeds and docs/protocol.md. */
#ifndef PSL_RING_ABI_H
#define PSL_RING_ABI_H

#include <stdint.h>

#include "base/limits.h"

#define RING_ABI_VERSION 1u

enum ring_h2e {
    RING_H2E_ATTEST = 1,    /* nonce[32]: produce a report binding the enclave keys to it */
    RING_H2E_PROVISION = 2, /* sealed provisioning bundle (src/attest/provision.h) */
    RING_H2E_RECORD = 3,    /* a record from the capsule's record topic */
    RING_H2E_ACK = 4,       /* a server ACK addressed to this enclave's writer */
    RING_H2E_REPLY = 5,     /* a server reply addressed to this enclave's requester id */
    RING_H2E_SHUTDOWN = 6,  /* empty: stop (after the job's result has been sent) */
    /* A leader enclave (provisioned with role leader, DESIGN §7.3) certifies workers: */
    RING_H2E_LEADER_NONCE = 7, /* worker u32: choose a fresh nonce for that worker's evidence */
    RING_H2E_LEADER_ISSUE = 8, /* worker u32, attestation message: verify it against the
                                * nonce chosen for the worker; answer with a sealed bundle */
    /* A function enclave (provisioned with a function bundle, attest/provision.h) serves: */
    RING_H2E_INVOKE = 9, /* invocation_id[16], sealed invocation (invoke_seal): run handle once */
};

enum ring_e2h {
    RING_E2H_HELLO = 101,   /* abi u8, tee u8, sign_pk[32], kx_pk[32]: sent once at start-up */
    RING_E2H_REPORT = 102,  /* report_data[64], sign_pk[32], kx_pk[32]: answer to ATTEST */
    RING_E2H_READY = 103,   /* capsule[32], writer[32], requester[32], worker u32, workers u32:
                             * provisioned; relay the capsule's topics for these ids */
    RING_E2H_PUBLISH = 104, /* a sealed record: publish on the capsule's record topic */
    RING_E2H_REQUEST = 105, /* a server request: publish on the capsule's request topic */
    RING_E2H_ALERT = 106,   /* writer[32] then the alert body: a fork was detected */
    RING_E2H_LOG = 107,     /* level u8, then text (the enclave's own lines: no secrets) or, when
                             * level has RING_LOG_SEALED, a lambda's line sealed to the client */
    RING_E2H_RESULT = 108,  /* err u16 (psl_err of the job), sealed result (attest/provision.h) */
    RING_E2H_ERROR = 109,   /* err u16, text: a host message was refused (garbage, wrong state) */
    RING_E2H_STATS = 110,   /* RING_STATS_COUNT u64 counters: progress while a job runs */
    RING_E2H_LEADER_NONCE = 111,  /* worker u32, nonce[32] */
    RING_E2H_LEADER_BUNDLE = 112, /* worker u32, the worker's sealed provisioning bundle */
    RING_E2H_INVOKE_RESULT = 113, /* invocation_id[16], err u16, sealed result (empty when the
                                   * invocation was refused: BUSY, AUTH, REPLAY, ...) */
};

/* RING_E2H_STATS counters, in order. */
enum ring_stat {
    RING_STAT_OPS = 0,     /* local put/del */
    RING_STAT_RECORDS,     /* records sealed */
    RING_STAT_BYTES,       /* bytes of sealed records */
    RING_STAT_DURABLE_SEQ, /* highest seq acknowledged by k servers */
    RING_STAT_SEALED_SEQ,  /* highest seq sealed */
    RING_STAT_OPS_APPLIED, /* other writers' operations applied */
    RING_STAT_REJECTED,    /* records refused by the receive path */
    RING_STAT_FORKS,
    RING_STATS_COUNT
};

#define RING_LOG_SEALED 0x80u

#define RING_ATTEST_SIZE 32u
#define RING_HELLO_SIZE (2u + 32u + 32u)
#define RING_REPORT_SIZE (64u + 32u + 32u)
#define RING_READY_SIZE (32u * 3 + 4u + 4u)
#define RING_STATS_SIZE (8u * RING_STATS_COUNT)
#define RING_LEADER_NONCE_SIZE (4u + 32u)
#define RING_INVOKE_HEAD_SIZE 16u
#define RING_INVOKE_RESULT_HEAD_SIZE (16u + 2u)
/* Invocations an enclave remembers to refuse replays, and how far an invocation's issued_ms may
 * lie from the enclave's clock. An id evicted from the memory raises a floor: nothing issued at
 * or before the newest evicted time is accepted, so a replay is refused either way. */
#define RING_INVOKE_SEEN_MAX 4096u
#define RING_INVOKE_WINDOW_MS (5u * 60u * 1000u)

/* A leader's provisioning bundle carries its configuration in the bundle's args (the owner
 * signed them with the rest of the bundle):
 *   magic "PSLL" | delegation[DELEG_SIZE] | key_count u8 | platform_pk[key_count][32]
 *   | the workers' args (the rest)
 * The delegation must name the leader's own key; the platform keys are the ones whose evidence
 * the leader trusts. The bundle's script, chunk name, limits, worker count and client keys are
 * the template of every worker's bundle. */
#define RING_LEADER_MAGIC "PSLL"
/* Every host message fits in one record-sized frame. */
#define RING_H2E_SIZE_MAX PSL_MSG_SIZE_MAX

#endif
