/* vectors.h: builds the known-answer vectors of psl's encodings from fixed keys and inputs.
 * Included by the generator (tests/vectors/gen_vectors.c, which writes the committed *.hex
 * files) and by tests/unit/test_vectors.c (which rebuilds them and compares byte for byte).
 * Everything here is deterministic: Ed25519 signatures and AES-GCM under fixed keys and nonces
 * are. Checklist: a new encoding gets a vector here, a row in vec_names, and a check in
 * test_vectors.c. */
#ifndef PSL_TESTS_VECTORS_H
#define PSL_TESTS_VECTORS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "capsule/ack.h"
#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/record.h"

#define VEC_CREATED_MS 1767225600000ull /* 2026-01-01T00:00:00Z */
#define VEC_NOT_BEFORE_MS 1767225600000ull
#define VEC_NOT_AFTER_MS 1798761600000ull /* 2027-01-01T00:00:00Z */
#define VEC_NOW_MS 1780000000000ull       /* inside every validity window */
#define VEC_MAX 24
#define VEC_BUF_SIZE 4096

struct vec {
    const char *name;
    uint8_t *bytes;
    size_t size;
};

struct vec_keys {
    struct signer owner, leader, server[3];
    struct writer_keys worker_a, worker_b, coord;
    uint8_t capsule_key[AEAD_KEY_SIZE];
    struct capsule_meta meta;
    struct delegation deleg;
    struct writer_cert cert_a, cert_b, cert_coord;
    struct record_chain chain_a, chain_b, chain_coord;
    struct vec v[VEC_MAX];
    size_t count;
};

static void vec_seed(uint8_t out[32], const char *what)
{
    char tag[64];
    snprintf(tag, sizeof tag, "psl-vector-%s", what);
    hash_sha256(out, tag, strlen(tag));
}

static void vec_add(struct vec_keys *k, const char *name, const uint8_t *bytes, size_t size)
{
    PSL_ASSERT(k->count < VEC_MAX);
    uint8_t *copy = malloc(size);
    PSL_ASSERT(copy);
    memcpy(copy, bytes, size);
    k->v[k->count++] = (struct vec){.name = name, .bytes = copy, .size = size};
}

static void vec_signer(struct signer *s, const char *what)
{
    uint8_t seed[32];
    vec_seed(seed, what);
    PSL_ASSERT(signer_init(s, seed) == PSL_OK);
}

static void vec_writer(struct vec_keys *k, struct writer_keys *wk, const char *what)
{
    uint8_t s1[32], s2[32];
    char tag[48];
    snprintf(tag, sizeof tag, "%s-sign", what);
    vec_seed(s1, tag);
    snprintf(tag, sizeof tag, "%s-kx", what);
    vec_seed(s2, tag);
    PSL_ASSERT(writer_keys_init(wk, s1, s2, k->capsule_key) == PSL_OK);
}

static void vec_cert(struct vec_keys *k, struct writer_cert *c, const struct writer_keys *wk,
                     uint8_t role, const struct signer *issuer, uint64_t serial)
{
    memset(c, 0, sizeof *c);
    c->role = role;
    memcpy(c->capsule, k->meta.name, HASH_SIZE);
    memcpy(c->sign_pk, wk->sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, wk->kx.pk, KX_PK_SIZE);
    memcpy(c->measurement, k->meta.measurements[0], HASH_SIZE);
    c->not_before_ms = VEC_NOT_BEFORE_MS;
    c->not_after_ms = VEC_NOT_AFTER_MS;
    c->serial = serial;
    cert_sign(c, issuer);
}

/* Seals the writer's next record with the payload written by the caller into buf. */
static void vec_record(struct vec_keys *k, const char *name, struct record_chain *rc,
                       const struct writer_keys *wk, uint8_t type, uint64_t lamport, uint8_t *buf,
                       size_t plain_size)
{
    size_t size;
    uint8_t hash[HASH_SIZE];
    PSL_ASSERT(record_chain_seal(rc, wk, type, lamport, buf, VEC_BUF_SIZE, plain_size, &size,
                                 hash) == PSL_OK);
    vec_add(k, name, buf, size);
}

static struct wr vec_payload(uint8_t *buf)
{
    struct wr w;
    wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, VEC_BUF_SIZE - PSL_RECORD_HEADER_SIZE - 100);
    return w;
}

/* The operations of the DATA vector: two puts and a delete. */
static size_t vec_data_ops(struct kv_op ops[3])
{
    ops[0] = (struct kv_op){.op = OP_PUT, .lamport = 5, .key_size = 5, .key = (const uint8_t *)"alpha",
                            .value_size = 11, .value = (const uint8_t *)"first value"};
    ops[1] = (struct kv_op){.op = OP_PUT, .lamport = 6, .key_size = 4, .key = (const uint8_t *)"beta",
                            .value_size = 0, .value = NULL};
    ops[2] = (struct kv_op){.op = OP_DEL, .lamport = 7, .key_size = 5, .key = (const uint8_t *)"gamma"};
    return 3;
}

/* Builds every vector into k (in a fixed order; see vec_names in the generator). */
static void vec_build(struct vec_keys *k)
{
    memset(k, 0, sizeof *k);
    vec_signer(&k->owner, "owner");
    vec_signer(&k->leader, "leader");
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "server-%d", i);
        vec_signer(&k->server[i], tag);
    }
    vec_seed(k->capsule_key, "capsule-key");

    struct capsule_meta *m = &k->meta;
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = VEC_CREATED_MS;
    m->label_size = 23;
    memcpy(m->label, "psl test vector capsule", 23);
    m->quorum_k = 2;
    m->replica_count = 3;
    for (int i = 0; i < 3; i++)
        memcpy(m->replicas[i], k->server[i].pk, SIGN_PK_SIZE);
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = 1;
    vec_seed(m->measurements[0], "measurement");
    PSL_ASSERT(meta_sign(m, &k->owner) == PSL_OK);
    uint8_t buf[VEC_BUF_SIZE];
    size_t n;
    PSL_ASSERT(meta_encode(m, buf, sizeof buf, &n) == PSL_OK);
    vec_add(k, "meta", buf, n);

    vec_writer(k, &k->worker_a, "worker-a");
    vec_writer(k, &k->worker_b, "worker-b");
    vec_writer(k, &k->coord, "coordinator");

    k->deleg = (struct delegation){.roles_mask = ROLE_BIT(ROLE_WORKER),
                                   .not_before_ms = VEC_NOT_BEFORE_MS,
                                   .not_after_ms = VEC_NOT_AFTER_MS,
                                   .serial = 7};
    memcpy(k->deleg.capsule, m->name, HASH_SIZE);
    memcpy(k->deleg.leader_pk, k->leader.pk, SIGN_PK_SIZE);
    memcpy(k->deleg.measurement, m->measurements[0], HASH_SIZE);
    deleg_sign(&k->deleg, &k->owner);
    deleg_encode(&k->deleg, buf);
    vec_add(k, "delegation", buf, DELEG_SIZE);

    vec_cert(k, &k->cert_a, &k->worker_a, ROLE_WORKER, &k->owner, 1);
    cert_encode(&k->cert_a, buf);
    vec_add(k, "cert_owner", buf, CERT_SIZE);
    vec_cert(k, &k->cert_b, &k->worker_b, ROLE_WORKER, &k->leader, 2);
    cert_encode(&k->cert_b, buf);
    vec_add(k, "cert_leader", buf, CERT_SIZE);
    vec_cert(k, &k->cert_coord, &k->coord, ROLE_COORDINATOR, &k->owner, 3);

    record_chain_init(&k->chain_a, m->name);
    record_chain_init(&k->chain_b, m->name);
    record_chain_init(&k->chain_coord, m->name);
    struct wr w;

    w = vec_payload(buf);
    certpl_encode(&w, &k->cert_a, NULL);
    vec_record(k, "record_cert", &k->chain_a, &k->worker_a, REC_CERT, 1, buf, w.pos);
    w = vec_payload(buf);
    certpl_encode(&w, &k->cert_b, &k->deleg);
    vec_record(k, "record_cert_delegated", &k->chain_b, &k->worker_b, REC_CERT, 2, buf, w.pos);
    w = vec_payload(buf);
    certpl_encode(&w, &k->cert_coord, NULL);
    vec_record(k, "record_cert_coordinator", &k->chain_coord, &k->coord, REC_CERT, 3, buf, w.pos);

    struct kv_op ops[3];
    size_t nops = vec_data_ops(ops);
    w = vec_payload(buf);
    data_encode(&w, ops, nops);
    PSL_ASSERT(w.err == PSL_OK);
    vec_add(k, "data_payload", buf + PSL_RECORD_HEADER_SIZE, w.pos);
    vec_record(k, "record_data", &k->chain_a, &k->worker_a, REC_DATA, 8, buf, w.pos);

    struct cut_head head_a = {.seq = k->chain_a.seq};
    memcpy(head_a.writer, k->worker_a.writer_id, HASH_SIZE);
    memcpy(head_a.hash, k->chain_a.head, HASH_SIZE);
    w = vec_payload(buf);
    cut_encode(&w, 1, &head_a, 1);
    vec_record(k, "record_eoe", &k->chain_a, &k->worker_a, REC_EOE, 9, buf, w.pos);

    struct cut_head cut[2] = {{.seq = k->chain_a.seq}, {.seq = k->chain_b.seq}};
    memcpy(cut[0].writer, k->worker_a.writer_id, HASH_SIZE);
    memcpy(cut[0].hash, k->chain_a.head, HASH_SIZE);
    memcpy(cut[1].writer, k->worker_b.writer_id, HASH_SIZE);
    memcpy(cut[1].hash, k->chain_b.head, HASH_SIZE);
    w = vec_payload(buf);
    cut_encode(&w, 1, cut, 2);
    vec_record(k, "record_sync", &k->chain_coord, &k->coord, REC_SYNC, 10, buf, w.pos);
    memcpy(k->chain_a.sync, k->chain_coord.head, HASH_SIZE);

    w = vec_payload(buf);
    head_encode(&w, VEC_NOW_MS);
    vec_record(k, "record_head", &k->chain_a, &k->worker_a, REC_HEAD, 11, buf, w.pos);

    static const char result[] = "opaque sealed result bytes";
    w = vec_payload(buf);
    wr_bytes(&w, result, sizeof result - 1);
    vec_record(k, "record_result", &k->chain_a, &k->worker_a, REC_RESULT, 12, buf, w.pos);

    static const char block[] = "opaque LSM block bytes (encrypted)";
    w = vec_payload(buf);
    wr_bytes(&w, block, sizeof block - 1);
    vec_record(k, "record_lsm_block", &k->chain_coord, &k->coord, REC_LSM_BLOCK, 13, buf, w.pos);
    static const char index[] = "opaque LSM index bytes (encrypted)";
    w = vec_payload(buf);
    wr_bytes(&w, index, sizeof index - 1);
    vec_record(k, "record_lsm_index", &k->chain_coord, &k->coord, REC_LSM_INDEX, 14, buf, w.pos);

    struct revocation rv = {.serial = 2};
    memcpy(rv.target, k->worker_b.writer_id, HASH_SIZE);
    revoke_sign(&rv, m->name, &k->owner);
    w = vec_payload(buf);
    revoke_encode(&w, &rv);
    vec_record(k, "record_revoke", &k->chain_coord, &k->coord, REC_REVOKE, 15, buf, w.pos);

    struct ack a = {.seq = 2};
    memcpy(a.capsule, m->name, HASH_SIZE);
    memcpy(a.writer, k->worker_a.writer_id, HASH_SIZE);
    hash_sha256(a.record_hash, "record", 6);
    PSL_ASSERT(ack_sign_for(&a, &k->server[1], k->worker_a.kx.pk) == PSL_OK);
    ack_encode(&a, buf);
    vec_add(k, "ack", buf, ACK_SIZE);
}

__attribute__((unused)) static const struct vec *vec_find(const struct vec_keys *k, const char *name)
{
    for (size_t i = 0; i < k->count; i++)
        if (!strcmp(k->v[i].name, name))
            return &k->v[i];
    return NULL;
}

static void vec_free(struct vec_keys *k)
{
    for (size_t i = 0; i < k->count; i++)
        free(k->v[i].bytes);
    writer_keys_deinit(&k->worker_a);
    writer_keys_deinit(&k->worker_b);
    writer_keys_deinit(&k->coord);
    for (int i = 0; i < 3; i++)
        signer_deinit(&k->server[i]);
    signer_deinit(&k->leader);
    signer_deinit(&k->owner);
}

#endif
