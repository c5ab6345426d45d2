/* capsule_fixture.h: a small, fully deterministic capsule shared by the src/capsule unit tests:
 * an owner, three storage servers, signed metadata (k = 2 of 3, one allowed measurement), a
 * second capsule by another owner, a leader delegation, five writers with certificates and
 * capsule keys, and helpers that seal records into malloc'd buffers. Everything derives from
 * tu_seed, so a failure replays identically. All helpers are static inline so that a test file
 * that does not use one of them does not warn. */
#ifndef PSL_TESTS_CAPSULE_FIXTURE_H
#define PSL_TESTS_CAPSULE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/limits.h"
#include "capsule/cert.h"
#include "capsule/chain.h"
#include "capsule/meta.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "crypto/crypto.h"
#include "testutil.h"

/* A fixed "now" and validity windows around it, so no test depends on the wall clock. */
#define FX_NOW      1700000000000ull
#define FX_HOUR_MS  3600000ull
#define FX_CERT_NB  (FX_NOW - FX_HOUR_MS)
#define FX_CERT_NA  (FX_NOW + FX_HOUR_MS)
#define FX_DELEG_NB (FX_NOW - 2 * FX_HOUR_MS)
#define FX_DELEG_NA (FX_NOW + 2 * FX_HOUR_MS)

#define FX_SERVERS 3
#define FX_WRITERS 5
/* Writer slots and their roles. FX_LEADER's signing key is also the delegated leader's key, and
 * FX_DELEGATED is certified by it under the owner's delegation. */
enum { FX_W0 = 0, FX_W1 = 1, FX_COORD = 2, FX_LEADER = 3, FX_DELEGATED = 4 };

/* Seed numbers (tu_seed). */
enum {
    FX_SEED_OWNER = 1,
    FX_SEED_STRANGER = 2,
    FX_SEED_SERVER = 10,
    FX_SEED_WRITER_SIGN = 20,
    FX_SEED_WRITER_KX = 40,
    FX_SEED_CAPSULE_KEY = 60,
    FX_SEED_OTHER_KEY = 61,
    FX_SEED_MEASUREMENT = 100,
    FX_SEED_OTHER_MEASUREMENT = 101,
};

struct fx_writer {
    struct writer_keys keys;
    struct writer_cert cert;
    struct record_chain chain;
    bool by_leader;
};

struct fx {
    struct signer owner;
    struct signer stranger; /* a key with no standing in the capsule */
    struct signer servers[FX_SERVERS];
    uint8_t measurement[HASH_SIZE];
    uint8_t other_measurement[HASH_SIZE];
    struct capsule_meta meta;
    uint8_t meta_enc[META_SIZE_MAX];
    size_t meta_size;
    struct capsule_meta other; /* the same fields, owned (and so named) by the stranger */
    uint8_t capsule_key[AEAD_KEY_SIZE];
    uint8_t other_key[AEAD_KEY_SIZE];
    struct delegation deleg; /* owner -> writer FX_LEADER, workers and coordinators */
    struct fx_writer w[FX_WRITERS];
};

static inline void fx_meta_fill(struct fx *f, struct capsule_meta *m)
{
    memset(m, 0, sizeof *m);
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = FX_NOW - 24 * FX_HOUR_MS;
    static const char label[] = "psl unit-test capsule";
    m->label_size = (uint8_t)(sizeof label - 1);
    memcpy(m->label, label, sizeof label - 1);
    m->quorum_k = 2;
    m->replica_count = FX_SERVERS;
    for (unsigned i = 0; i < FX_SERVERS; i++)
        memcpy(m->replicas[i], f->servers[i].pk, SIGN_PK_SIZE);
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = 1;
    memcpy(m->measurements[0], f->measurement, HASH_SIZE);
}

/* Fills a certificate for wk (window FX_CERT_NB..FX_CERT_NA, the fixture measurement) and signs
 * it with issuer. */
static inline void fx_cert_make(const struct fx *f, struct writer_cert *c,
                                const struct writer_keys *wk, uint8_t role,
                                const struct signer *issuer)
{
    memset(c, 0, sizeof *c);
    c->role = role;
    memcpy(c->capsule, f->meta.name, HASH_SIZE);
    memcpy(c->sign_pk, wk->sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, wk->kx.pk, KX_PK_SIZE);
    memcpy(c->measurement, f->measurement, HASH_SIZE);
    c->not_before_ms = FX_CERT_NB;
    c->not_after_ms = FX_CERT_NA;
    c->serial = 1000u + role;
    cert_sign(c, issuer);
}

static inline void fx_deleg_make(const struct fx *f, struct delegation *d,
                                 const uint8_t leader_pk[SIGN_PK_SIZE], uint8_t roles_mask,
                                 const struct signer *by)
{
    memset(d, 0, sizeof *d);
    d->roles_mask = roles_mask;
    memcpy(d->capsule, f->meta.name, HASH_SIZE);
    memcpy(d->leader_pk, leader_pk, SIGN_PK_SIZE);
    memcpy(d->measurement, f->measurement, HASH_SIZE);
    d->not_before_ms = FX_DELEG_NB;
    d->not_after_ms = FX_DELEG_NA;
    d->serial = 7;
    deleg_sign(d, by);
}

static inline void fx_signer(struct signer *s, unsigned seed_no)
{
    uint8_t seed[SIGN_SEED_SIZE];
    tu_seed(seed, seed_no);
    assert_int_equal(signer_init(s, seed), PSL_OK);
}

/* Writer keys from fixed seeds; capsule_key may be NULL (plaintext-only writer). */
static inline void fx_writer_keys(struct writer_keys *wk, unsigned n, const uint8_t *capsule_key)
{
    uint8_t ss[SIGN_SEED_SIZE], ks[32];
    tu_seed(ss, FX_SEED_WRITER_SIGN + n);
    tu_seed(ks, FX_SEED_WRITER_KX + n);
    assert_int_equal(writer_keys_init(wk, ss, ks, capsule_key), PSL_OK);
}

static inline void fx_init(struct fx *f)
{
    tu_init();
    memset(f, 0, sizeof *f);
    fx_signer(&f->owner, FX_SEED_OWNER);
    fx_signer(&f->stranger, FX_SEED_STRANGER);
    for (unsigned i = 0; i < FX_SERVERS; i++)
        fx_signer(&f->servers[i], FX_SEED_SERVER + i);
    tu_seed(f->measurement, FX_SEED_MEASUREMENT);
    tu_seed(f->other_measurement, FX_SEED_OTHER_MEASUREMENT);
    tu_seed(f->capsule_key, FX_SEED_CAPSULE_KEY);
    tu_seed(f->other_key, FX_SEED_OTHER_KEY);

    fx_meta_fill(f, &f->meta);
    assert_int_equal(meta_sign(&f->meta, &f->owner), PSL_OK);
    assert_int_equal(meta_encode(&f->meta, f->meta_enc, sizeof f->meta_enc, &f->meta_size), PSL_OK);
    fx_meta_fill(f, &f->other);
    assert_int_equal(meta_sign(&f->other, &f->stranger), PSL_OK);

    static const uint8_t roles[FX_WRITERS] = {ROLE_WORKER, ROLE_WORKER, ROLE_COORDINATOR,
                                              ROLE_LEADER, ROLE_WORKER};
    for (unsigned i = 0; i < FX_WRITERS; i++) {
        struct fx_writer *w = &f->w[i];
        fx_writer_keys(&w->keys, i, f->capsule_key);
        record_chain_init(&w->chain, f->meta.name);
    }
    fx_deleg_make(f, &f->deleg, f->w[FX_LEADER].keys.sign.pk,
                  (uint8_t)(ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR)), &f->owner);
    for (unsigned i = 0; i < FX_WRITERS; i++) {
        struct fx_writer *w = &f->w[i];
        w->by_leader = i == FX_DELEGATED;
        fx_cert_make(f, &w->cert, &w->keys, roles[i],
                     w->by_leader ? &f->w[FX_LEADER].keys.sign : &f->owner);
    }
}

static inline void fx_deinit(struct fx *f)
{
    for (unsigned i = 0; i < FX_WRITERS; i++)
        writer_keys_deinit(&f->w[i].keys);
    for (unsigned i = 0; i < FX_SERVERS; i++)
        signer_deinit(&f->servers[i]);
    signer_deinit(&f->stranger);
    signer_deinit(&f->owner);
}

static inline int fx_setup(void **state)
{
    struct fx *f = malloc(sizeof *f);
    if (!f)
        return -1;
    fx_init(f);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    fx_deinit(f);
    free(f);
    return 0;
}

/* ---- sealing ---- */

/* Seals plain as the next record of w's chain; returns a malloc'd record of exactly *size_out
 * bytes and its hash (hash_out may be NULL). lamport is the new seq. */
static inline uint8_t *fx_seal(struct fx_writer *w, uint8_t type, const void *plain,
                               size_t plain_size, size_t *size_out, uint8_t *hash_out)
{
    size_t cap = record_sealed_size(plain_size, type);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    if (plain_size)
        memcpy(buf + PSL_RECORD_HEADER_SIZE, plain, plain_size);
    size_t size = 0;
    uint8_t hash[HASH_SIZE];
    uint64_t old_seq = w->chain.seq;
    assert_int_equal(record_chain_seal(&w->chain, &w->keys, type, old_seq + 1, buf, cap, plain_size,
                                       &size, hash),
                     PSL_OK);
    assert_int_equal(size, cap);
    assert_true(w->chain.seq == old_seq + 1);
    assert_memory_equal(w->chain.head, hash, HASH_SIZE);
    if (hash_out)
        memcpy(hash_out, hash, HASH_SIZE);
    *size_out = size;
    return buf;
}

/* Seals with an explicit header (for records a well-behaved chain would never produce). */
static inline uint8_t *fx_seal_hdr(const struct writer_keys *wk, struct record_header *h,
                                   const void *plain, size_t plain_size, size_t *size_out,
                                   uint8_t *hash_out)
{
    size_t cap = record_sealed_size(plain_size, h->type);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    if (plain_size)
        memcpy(buf + PSL_RECORD_HEADER_SIZE, plain, plain_size);
    uint8_t hash[HASH_SIZE];
    assert_int_equal(record_seal(wk, h, buf, cap, plain_size, size_out, hash), PSL_OK);
    if (hash_out)
        memcpy(hash_out, hash, HASH_SIZE);
    return buf;
}

/* Recomputes the hash of a (modified) record and signs it again with by, as a forger holding
 * that key would. Uses the payload size written in the header. */
static inline void fx_resign(uint8_t *rec, size_t size, const struct signer *by)
{
    size_t payload = get_le32(rec + 8);
    assert_true(PSL_RECORD_HEADER_SIZE + payload + PSL_RECORD_SIG_SIZE <= size);
    uint8_t hash[HASH_SIZE];
    hash_sha256(hash, rec, PSL_RECORD_HEADER_SIZE + payload);
    sign_tagged(by, rec + PSL_RECORD_HEADER_SIZE + payload, RECORD_SIG_TAG, hash);
}

/* The CERT record of w (with the delegation when a leader issued its certificate). */
static inline uint8_t *fx_seal_cert(struct fx *f, struct fx_writer *w, size_t *size_out,
                                    uint8_t *hash_out)
{
    uint8_t pl[1 + CERT_SIZE + DELEG_SIZE];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &w->cert, w->by_leader ? &f->deleg : NULL);
    assert_int_equal(wr.err, PSL_OK);
    return fx_seal(w, REC_CERT, pl, wr.pos, size_out, hash_out);
}

/* A DATA record of nops operations (the last one a DEL when nops > 1), keys tagged by tag. */
#define FX_OPS_MAX 16
static inline size_t fx_data_plain(uint8_t *out, size_t cap, unsigned nops, unsigned tag)
{
    char keys[FX_OPS_MAX][24], vals[FX_OPS_MAX][32];
    struct kv_op ops[FX_OPS_MAX];
    assert_true(nops <= FX_OPS_MAX);
    for (unsigned i = 0; i < nops; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%u-%u", tag, i);
        snprintf(vals[i], sizeof vals[i], "value %u of record %u", i, tag);
        bool del = nops > 1 && i == nops - 1;
        ops[i] = (struct kv_op){.op = del ? OP_DEL : OP_PUT,
                                .lamport = 100u * tag + i,
                                .key_size = (uint16_t)strlen(keys[i]),
                                .key = (const uint8_t *)keys[i],
                                .value_size = del ? 0 : (uint32_t)strlen(vals[i]),
                                .value = del ? NULL : (const uint8_t *)vals[i]};
    }
    struct wr wr;
    wr_init(&wr, out, cap);
    data_encode(&wr, ops, nops);
    assert_int_equal(wr.err, PSL_OK);
    assert_int_equal(wr.pos, data_encoded_size(ops, nops));
    return wr.pos;
}

static inline uint8_t *fx_seal_data(struct fx_writer *w, unsigned nops, unsigned tag,
                                    size_t *size_out, uint8_t *hash_out)
{
    uint8_t pl[2048];
    size_t n = fx_data_plain(pl, sizeof pl, nops, tag);
    return fx_seal(w, REC_DATA, pl, n, size_out, hash_out);
}

/* An EOE or SYNC record carrying a cut. */
static inline uint8_t *fx_seal_cut(struct fx_writer *w, uint8_t type, uint64_t epoch,
                                   const struct cut_head *heads, size_t count, size_t *size_out,
                                   uint8_t *hash_out)
{
    size_t cap = 12 + count * CUT_HEAD_SIZE;
    uint8_t *pl = malloc(cap);
    assert_non_null(pl);
    struct wr wr;
    wr_init(&wr, pl, cap);
    cut_encode(&wr, epoch, heads, count);
    assert_int_equal(wr.err, PSL_OK);
    assert_int_equal(wr.pos, cap);
    uint8_t *rec = fx_seal(w, type, pl, wr.pos, size_out, hash_out);
    free(pl);
    return rec;
}

static inline uint8_t *fx_seal_head(struct fx_writer *w, uint64_t wall_ms, size_t *size_out,
                                    uint8_t *hash_out)
{
    uint8_t pl[8];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    head_encode(&wr, wall_ms);
    assert_int_equal(wr.err, PSL_OK);
    return fx_seal(w, REC_HEAD, pl, wr.pos, size_out, hash_out);
}

/* A REVOKE record written by w, carrying a revocation of target signed by by. */
static inline uint8_t *fx_seal_revoke(struct fx *f, struct fx_writer *w,
                                      const uint8_t target[HASH_SIZE], const struct signer *by,
                                      size_t *size_out, uint8_t *hash_out)
{
    struct revocation r;
    memset(&r, 0, sizeof r);
    memcpy(r.target, target, HASH_SIZE);
    r.serial = 99;
    revoke_sign(&r, f->meta.name, by);
    uint8_t pl[REVOKE_SIZE];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    revoke_encode(&wr, &r);
    assert_int_equal(wr.err, PSL_OK);
    assert_int_equal(wr.pos, REVOKE_SIZE);
    return fx_seal(w, REC_REVOKE, pl, wr.pos, size_out, hash_out);
}

/* ---- a set of records (for chain and export tests) ---- */

#define FX_RECS_MAX 128
struct fx_recs {
    uint8_t *data[FX_RECS_MAX]; /* owned */
    size_t size[FX_RECS_MAX];
    uint8_t hash[FX_RECS_MAX][HASH_SIZE];
    size_t n;
};

/* Takes rec; returns its index. */
static inline size_t fx_recs_add(struct fx_recs *r, uint8_t *rec, size_t size, const uint8_t *hash)
{
    assert_true(r->n < FX_RECS_MAX);
    r->data[r->n] = rec;
    r->size[r->n] = size;
    if (hash)
        memcpy(r->hash[r->n], hash, HASH_SIZE);
    else
        memset(r->hash[r->n], 0, HASH_SIZE);
    return r->n++;
}

/* Adds a copy of record i (a replay); returns the new index. */
static inline size_t fx_recs_dup(struct fx_recs *r, size_t i)
{
    uint8_t *copy = malloc(r->size[i]);
    assert_non_null(copy);
    memcpy(copy, r->data[i], r->size[i]);
    return fx_recs_add(r, copy, r->size[i], r->hash[i]);
}

static inline void fx_recs_inputs(const struct fx_recs *r, struct chain_input *in)
{
    for (size_t i = 0; i < r->n; i++)
        in[i] = (struct chain_input){.data = r->data[i], .size = r->size[i]};
}

static inline void fx_recs_free(struct fx_recs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->data[i]);
    r->n = 0;
}

#endif
