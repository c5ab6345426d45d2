/* cert.c: writer certificates and leader delegations. Decoding only parses fixed-size fields;
 * nothing in a certificate is believed until cert_verify has checked it against the capsule
 * metadata (and, for a leader-issued certificate, the owner's delegation). */
#include "capsule/cert.h"

#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"

static const uint8_t cert_magic[4] = {'P', 'S', 'L', 'C'};
static const uint8_t deleg_magic[4] = {'P', 'S', 'L', 'D'};
#define CERT_SIG_TAG "psl-cert-v1"
#define DELEG_SIG_TAG "psl-deleg-v1"
#define CERT_BODY_SIZE (CERT_SIZE - SIGN_SIG_SIZE)
#define DELEG_BODY_SIZE (DELEG_SIZE - SIGN_SIG_SIZE)

const char *role_name(uint8_t role)
{
    switch (role) {
    case ROLE_WORKER:
        return "worker";
    case ROLE_COORDINATOR:
        return "coordinator";
    case ROLE_COMPACTOR:
        return "compactor";
    case ROLE_LEADER:
        return "leader";
    default:
        return "?";
    }
}

static bool role_is_known(uint8_t role)
{
    return role >= ROLE_WORKER && role <= ROLE_LEADER;
}

void writer_id_of(uint8_t out[HASH_SIZE], const uint8_t sign_pk[SIGN_PK_SIZE])
{
    hash_sha256(out, sign_pk, SIGN_PK_SIZE);
}

static void cert_encode_body(const struct writer_cert *c, uint8_t out[CERT_BODY_SIZE])
{
    struct wr w;
    wr_init(&w, out, CERT_BODY_SIZE);
    wr_bytes(&w, cert_magic, 4);
    wr_u8(&w, CERT_VERSION);
    wr_u8(&w, c->role);
    wr_bytes(&w, c->capsule, HASH_SIZE);
    wr_bytes(&w, c->sign_pk, SIGN_PK_SIZE);
    wr_bytes(&w, c->kx_pk, KX_PK_SIZE);
    wr_bytes(&w, c->measurement, HASH_SIZE);
    wr_u64(&w, c->not_before_ms);
    wr_u64(&w, c->not_after_ms);
    wr_u64(&w, c->serial);
    wr_bytes(&w, c->issuer_pk, SIGN_PK_SIZE);
    PSL_ASSERT_SIZE(w, CERT_BODY_SIZE);
}

void cert_sign(struct writer_cert *c, const struct signer *issuer)
{
    memcpy(c->issuer_pk, issuer->pk, SIGN_PK_SIZE);
    writer_id_of(c->writer_id, c->sign_pk);
    uint8_t body[CERT_BODY_SIZE], h[HASH_SIZE];
    cert_encode_body(c, body);
    hash_sha256(h, body, sizeof body);
    sign_tagged(issuer, c->sig, CERT_SIG_TAG, h);
}

void cert_encode(const struct writer_cert *c, uint8_t out[CERT_SIZE])
{
    cert_encode_body(c, out);
    memcpy(out + CERT_BODY_SIZE, c->sig, SIGN_SIG_SIZE);
}

psl_err cert_decode(struct writer_cert *out, const uint8_t *buf, size_t size)
{
    if (size < CERT_SIZE)
        return PSL_ERR_TRUNCATED;
    if (size > CERT_SIZE)
        return PSL_ERR_TRAILING;
    if (memcmp(buf, cert_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct writer_cert c;
    struct rd r;
    rd_init(&r, buf + 4, size - 4);
    if (rd_u8(&r) != CERT_VERSION)
        return PSL_ERR_BAD_VERSION;
    c.role = rd_u8(&r);
    if (!role_is_known(c.role))
        return PSL_ERR_CERT_ROLE;
    rd_copy(&r, c.capsule, HASH_SIZE);
    rd_copy(&r, c.sign_pk, SIGN_PK_SIZE);
    rd_copy(&r, c.kx_pk, KX_PK_SIZE);
    rd_copy(&r, c.measurement, HASH_SIZE);
    c.not_before_ms = rd_u64(&r);
    c.not_after_ms = rd_u64(&r);
    c.serial = rd_u64(&r);
    rd_copy(&r, c.issuer_pk, SIGN_PK_SIZE);
    rd_copy(&r, c.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    writer_id_of(c.writer_id, c.sign_pk);
    *out = c;
    return PSL_OK;
}

static bool window_contains(uint64_t not_before, uint64_t not_after, uint64_t now)
{
    return not_before <= now && now <= not_after;
}

psl_err cert_verify(const struct writer_cert *c, const struct delegation *deleg,
                    const struct capsule_meta *m, uint64_t now_ms)
{
    if (memcmp(c->capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_CERT_FOREIGN;
    if (!role_is_known(c->role))
        return PSL_ERR_CERT_ROLE;
    if (!window_contains(c->not_before_ms, c->not_after_ms, now_ms))
        return PSL_ERR_CERT_EXPIRED;
    if (!meta_allows_measurement(m, c->measurement))
        return PSL_ERR_CERT_MEASUREMENT;
    if (memcmp(c->issuer_pk, m->owner_pk, SIGN_PK_SIZE) != 0) {
        /* Issued by a leader: only under an owner-signed delegation for this capsule. */
        if (!deleg || memcmp(deleg->leader_pk, c->issuer_pk, SIGN_PK_SIZE) != 0)
            return PSL_ERR_CERT_ISSUER;
        psl_err err = deleg_verify(deleg, m, now_ms);
        if (err)
            return err;
        if (!(deleg->roles_mask & ROLE_BIT(c->role)))
            return PSL_ERR_CERT_ROLE;
        if (c->not_before_ms < deleg->not_before_ms || c->not_after_ms > deleg->not_after_ms)
            return PSL_ERR_CERT_EXPIRED;
    }
    uint8_t body[CERT_BODY_SIZE], h[HASH_SIZE];
    cert_encode_body(c, body);
    hash_sha256(h, body, sizeof body);
    if (!sign_verify_tagged(c->issuer_pk, c->sig, CERT_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return PSL_OK;
}

static void deleg_encode_body(const struct delegation *d, uint8_t out[DELEG_BODY_SIZE])
{
    struct wr w;
    wr_init(&w, out, DELEG_BODY_SIZE);
    wr_bytes(&w, deleg_magic, 4);
    wr_u8(&w, CERT_VERSION);
    wr_u8(&w, d->roles_mask);
    wr_bytes(&w, d->capsule, HASH_SIZE);
    wr_bytes(&w, d->leader_pk, SIGN_PK_SIZE);
    wr_bytes(&w, d->measurement, HASH_SIZE);
    wr_u64(&w, d->not_before_ms);
    wr_u64(&w, d->not_after_ms);
    wr_u64(&w, d->serial);
    PSL_ASSERT_SIZE(w, DELEG_BODY_SIZE);
}

void deleg_sign(struct delegation *d, const struct signer *owner)
{
    uint8_t body[DELEG_BODY_SIZE], h[HASH_SIZE];
    deleg_encode_body(d, body);
    hash_sha256(h, body, sizeof body);
    sign_tagged(owner, d->sig, DELEG_SIG_TAG, h);
}

void deleg_encode(const struct delegation *d, uint8_t out[DELEG_SIZE])
{
    deleg_encode_body(d, out);
    memcpy(out + DELEG_BODY_SIZE, d->sig, SIGN_SIG_SIZE);
}

psl_err deleg_decode(struct delegation *out, const uint8_t *buf, size_t size)
{
    if (size < DELEG_SIZE)
        return PSL_ERR_TRUNCATED;
    if (size > DELEG_SIZE)
        return PSL_ERR_TRAILING;
    if (memcmp(buf, deleg_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct delegation d;
    struct rd r;
    rd_init(&r, buf + 4, size - 4);
    if (rd_u8(&r) != CERT_VERSION)
        return PSL_ERR_BAD_VERSION;
    d.roles_mask = rd_u8(&r);
    if (d.roles_mask & ~ROLE_MASK_ALL)
        return PSL_ERR_CERT_ROLE;
    rd_copy(&r, d.capsule, HASH_SIZE);
    rd_copy(&r, d.leader_pk, SIGN_PK_SIZE);
    rd_copy(&r, d.measurement, HASH_SIZE);
    d.not_before_ms = rd_u64(&r);
    d.not_after_ms = rd_u64(&r);
    d.serial = rd_u64(&r);
    rd_copy(&r, d.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *out = d;
    return PSL_OK;
}

psl_err deleg_verify(const struct delegation *d, const struct capsule_meta *m, uint64_t now_ms)
{
    if (memcmp(d->capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_CERT_FOREIGN;
    if (!window_contains(d->not_before_ms, d->not_after_ms, now_ms))
        return PSL_ERR_CERT_EXPIRED;
    if (!meta_allows_measurement(m, d->measurement))
        return PSL_ERR_CERT_MEASUREMENT;
    uint8_t body[DELEG_BODY_SIZE], h[HASH_SIZE];
    deleg_encode_body(d, body);
    hash_sha256(h, body, sizeof body);
    if (!sign_verify_tagged(m->owner_pk, d->sig, DELEG_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return PSL_OK;
}
