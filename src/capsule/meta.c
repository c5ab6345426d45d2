/* meta.c: canonical encoding, signing and verification of capsule metadata.
 * The name is the hash of the body bytes exactly as encoded, so encode and decode must agree
 * byte for byte (the known-answer vectors pin this). */
#include "capsule/meta.h"

#include <string.h>

#include "base/bytes.h"

static const uint8_t meta_magic[4] = {'P', 'S', 'L', 'M'};
#define META_SIG_TAG "psl-meta-v1"

psl_err meta_check_fields(const struct capsule_meta *m)
{
    if (m->version != META_VERSION)
        return PSL_ERR_BAD_VERSION;
    if (m->suite != PSL_SUITE_1)
        return PSL_ERR_BAD_SUITE;
    if (m->replica_count < 1 || m->replica_count > PSL_REPLICAS_MAX ||
        m->measurement_count > PSL_MEASUREMENTS_MAX)
        return PSL_ERR_TOO_LARGE;
    if (m->quorum_k < 1 || m->quorum_k > m->replica_count)
        return PSL_ERR_MALFORMED;
    if (m->retention > RETENTION_COLLECT_COVERED)
        return PSL_ERR_MALFORMED;
    /* A replica listed twice would let one server count twice toward the quorum. */
    for (unsigned i = 0; i < m->replica_count; i++)
        for (unsigned j = i + 1; j < m->replica_count; j++)
            if (memcmp(m->replicas[i], m->replicas[j], SIGN_PK_SIZE) == 0)
                return PSL_ERR_MALFORMED;
    return PSL_OK;
}

/* Writes the body; returns its size (0 on overflow). */
static size_t meta_encode_body(const struct capsule_meta *m, uint8_t *out, size_t cap)
{
    struct wr w;
    wr_init(&w, out, cap);
    wr_bytes(&w, meta_magic, sizeof meta_magic);
    wr_u8(&w, m->version);
    wr_u8(&w, m->suite);
    wr_bytes(&w, m->owner_pk, SIGN_PK_SIZE);
    wr_u64(&w, m->created_ms);
    wr_u8(&w, m->label_size);
    wr_bytes(&w, m->label, m->label_size);
    wr_u8(&w, m->quorum_k);
    wr_u8(&w, m->replica_count);
    for (unsigned i = 0; i < m->replica_count && i < PSL_REPLICAS_MAX; i++)
        wr_bytes(&w, m->replicas[i], SIGN_PK_SIZE);
    wr_u8(&w, m->retention);
    wr_u8(&w, m->measurement_count);
    for (unsigned i = 0; i < m->measurement_count && i < PSL_MEASUREMENTS_MAX; i++)
        wr_bytes(&w, m->measurements[i], HASH_SIZE);
    return w.err ? 0 : w.pos;
}

psl_err meta_sign(struct capsule_meta *m, const struct signer *owner)
{
    psl_err err = meta_check_fields(m);
    if (err)
        return err;
    memcpy(m->owner_pk, owner->pk, SIGN_PK_SIZE);
    uint8_t body[META_SIZE_MAX];
    size_t n = meta_encode_body(m, body, sizeof body);
    if (!n)
        return PSL_ERR_TOO_LARGE;
    hash_sha256(m->name, body, n);
    sign_tagged(owner, m->sig, META_SIG_TAG, m->name);
    return PSL_OK;
}

psl_err meta_encode(const struct capsule_meta *m, uint8_t *out, size_t cap, size_t *out_size)
{
    psl_err err = meta_check_fields(m);
    if (err)
        return err;
    size_t n = meta_encode_body(m, out, cap);
    if (!n || cap - n < SIGN_SIG_SIZE)
        return PSL_ERR_TOO_LARGE;
    memcpy(out + n, m->sig, SIGN_SIG_SIZE);
    *out_size = n + SIGN_SIG_SIZE;
    return PSL_OK;
}

psl_err meta_decode(struct capsule_meta *out, const uint8_t *buf, size_t size)
{
    if (size > META_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    struct capsule_meta m;
    memset(&m, 0, sizeof m);
    struct rd r;
    rd_init(&r, buf, size);
    const uint8_t *magic = rd_take(&r, 4);
    if (!magic)
        return PSL_ERR_TRUNCATED;
    if (memcmp(magic, meta_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    m.version = rd_u8(&r);
    m.suite = rd_u8(&r);
    if (r.err)
        return r.err;
    if (m.version != META_VERSION)
        return PSL_ERR_BAD_VERSION;
    if (m.suite != PSL_SUITE_1)
        return PSL_ERR_BAD_SUITE;
    rd_copy(&r, m.owner_pk, SIGN_PK_SIZE);
    m.created_ms = rd_u64(&r);
    m.label_size = rd_u8(&r);
    rd_copy(&r, m.label, m.label_size);
    m.quorum_k = rd_u8(&r);
    m.replica_count = rd_u8(&r);
    if (r.err == PSL_OK && (m.replica_count < 1 || m.replica_count > PSL_REPLICAS_MAX))
        return PSL_ERR_TOO_LARGE;
    for (unsigned i = 0; i < m.replica_count; i++)
        rd_copy(&r, m.replicas[i], SIGN_PK_SIZE);
    m.retention = rd_u8(&r);
    m.measurement_count = rd_u8(&r);
    if (r.err == PSL_OK && m.measurement_count > PSL_MEASUREMENTS_MAX)
        return PSL_ERR_TOO_LARGE;
    for (unsigned i = 0; i < m.measurement_count; i++)
        rd_copy(&r, m.measurements[i], HASH_SIZE);
    size_t body_size = r.pos;
    rd_copy(&r, m.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    err = meta_check_fields(&m);
    if (err)
        return err;
    hash_sha256(m.name, buf, body_size);
    if (!sign_verify_tagged(m.owner_pk, m.sig, META_SIG_TAG, m.name))
        return PSL_ERR_BAD_SIGNATURE;
    *out = m;
    return PSL_OK;
}

bool meta_allows_measurement(const struct capsule_meta *m, const uint8_t measurement[HASH_SIZE])
{
    if (m->measurement_count == 0)
        return true;
    for (unsigned i = 0; i < m->measurement_count; i++)
        if (memcmp(m->measurements[i], measurement, HASH_SIZE) == 0)
            return true;
    return false;
}

int meta_replica_index(const struct capsule_meta *m, const uint8_t server_pk[SIGN_PK_SIZE])
{
    for (unsigned i = 0; i < m->replica_count; i++)
        if (memcmp(m->replicas[i], server_pk, SIGN_PK_SIZE) == 0)
            return (int)i;
    return -1;
}
