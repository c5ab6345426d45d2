/* ack.c: storage server acknowledgements. An ACK counts only when its server is in the
 * capsule's replica set and it authenticates: its MAC for the writer (ack_verify_mac), its
 * signature for anyone else (ack_verify). */
#include "capsule/ack.h"

#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/rng.h"

static const uint8_t ack_magic[4] = {'P', 'S', 'L', 'A'};
#define ACK_TAG "psl-ack-v2"
#define ACK_KEY_INFO "psl-ack-key-v2"
#define ACK_BODY_SIZE (ACK_SIZE - HASH_SIZE - SIGN_SIG_SIZE)

static void ack_encode_body(const struct ack *a, uint8_t out[ACK_BODY_SIZE])
{
    struct wr w;
    wr_init(&w, out, ACK_BODY_SIZE);
    wr_bytes(&w, ack_magic, 4);
    wr_u8(&w, ACK_VERSION);
    wr_bytes(&w, a->capsule, HASH_SIZE);
    wr_bytes(&w, a->writer, HASH_SIZE);
    wr_u64(&w, a->seq);
    wr_bytes(&w, a->record_hash, HASH_SIZE);
    wr_bytes(&w, a->server_pk, SIGN_PK_SIZE);
    PSL_ASSERT_SIZE(w, ACK_BODY_SIZE);
}

static void ack_digest(uint8_t out[HASH_SIZE], const struct ack *a)
{
    uint8_t body[ACK_BODY_SIZE];
    ack_encode_body(a, body);
    hash_sha256(out, body, sizeof body);
}

/* HKDF-SHA256 of the X25519 agreement, bound to the server's signing key and the writer's kx
 * key, so a key is never shared between two pairs even if an agreement repeated. */
static psl_err ack_key_derive(uint8_t key[ACK_KEY_SIZE], const struct kx_keypair *mine,
                              const uint8_t peer_kx_pk[KX_PK_SIZE],
                              const uint8_t server_pk[SIGN_PK_SIZE],
                              const uint8_t writer_kx_pk[KX_PK_SIZE])
{
    uint8_t *shared = secret_alloc(KX_SHARED_SIZE);
    if (!shared)
        return PSL_ERR_NOMEM;
    psl_err err = kx_agree(shared, mine, peer_kx_pk);
    if (!err) {
        uint8_t info[sizeof ACK_KEY_INFO - 1 + SIGN_PK_SIZE + KX_PK_SIZE];
        memcpy(info, ACK_KEY_INFO, sizeof ACK_KEY_INFO - 1);
        memcpy(info + sizeof ACK_KEY_INFO - 1, server_pk, SIGN_PK_SIZE);
        memcpy(info + sizeof ACK_KEY_INFO - 1 + SIGN_PK_SIZE, writer_kx_pk, KX_PK_SIZE);
        err = hkdf_sha256(key, ACK_KEY_SIZE, shared, KX_SHARED_SIZE, NULL, 0, info, sizeof info);
    }
    secret_free(shared);
    return err;
}

/* HMAC-SHA256(key, tag || body): the tag keeps ack MACs apart from any other use of the key. */
static psl_err ack_mac(uint8_t out[HASH_SIZE], const struct ack *a, const uint8_t key[ACK_KEY_SIZE])
{
    uint8_t msg[sizeof ACK_TAG - 1 + ACK_BODY_SIZE];
    memcpy(msg, ACK_TAG, sizeof ACK_TAG - 1);
    ack_encode_body(a, msg + sizeof ACK_TAG - 1);
    return hmac_sha256(out, key, ACK_KEY_SIZE, msg, sizeof msg);
}

psl_err ack_key_for_writer(uint8_t key[ACK_KEY_SIZE], const struct kx_keypair *server_kx,
                           const uint8_t server_pk[SIGN_PK_SIZE],
                           const uint8_t writer_kx_pk[KX_PK_SIZE])
{
    return ack_key_derive(key, server_kx, writer_kx_pk, server_pk, writer_kx_pk);
}

psl_err ack_key_for_server(uint8_t key[ACK_KEY_SIZE], const struct kx_keypair *writer_kx,
                           const uint8_t server_pk[SIGN_PK_SIZE])
{
    uint8_t server_kx_pk[KX_PK_SIZE];
    psl_err err = kx_pk_from_sign_pk(server_kx_pk, server_pk);
    if (err)
        return err;
    return ack_key_derive(key, writer_kx, server_kx_pk, server_pk, writer_kx->pk);
}

psl_err ack_keys_init(struct ack_keys *ks, const struct kx_keypair *writer_kx,
                      const struct capsule_meta *m)
{
    memset(ks, 0, sizeof *ks);
    if (!m->replica_count)
        return PSL_OK;
    uint8_t *k = secret_alloc((size_t)m->replica_count * ACK_KEY_SIZE);
    if (!k)
        return PSL_ERR_NOMEM;
    for (unsigned i = 0; i < m->replica_count; i++) {
        psl_err err = ack_key_for_server(k + (size_t)i * ACK_KEY_SIZE, writer_kx, m->replicas[i]);
        if (err == PSL_ERR_NOMEM) {
            secret_free(k);
            return err;
        }
        ks->usable[i] = err == PSL_OK;
        if (err) /* never a key anyone knows, should the usable check ever be skipped */
            rng_bytes(k + (size_t)i * ACK_KEY_SIZE, ACK_KEY_SIZE);
    }
    ks->k = k;
    ks->count = m->replica_count;
    return PSL_OK;
}

void ack_keys_free(struct ack_keys *ks)
{
    secret_free(ks->k);
    memset(ks, 0, sizeof *ks);
}

psl_err ack_sign(struct ack *a, const struct signer *server, const uint8_t key[ACK_KEY_SIZE])
{
    memcpy(a->server_pk, server->pk, SIGN_PK_SIZE);
    psl_err err = ack_mac(a->mac, a, key);
    if (err)
        return err;
    uint8_t h[HASH_SIZE];
    ack_digest(h, a);
    sign_tagged(server, a->sig, ACK_TAG, h);
    return PSL_OK;
}

psl_err ack_sign_for(struct ack *a, const struct signer *server,
                     const uint8_t writer_kx_pk[KX_PK_SIZE])
{
    struct kx_keypair kx;
    psl_err err = kx_from_signer(&kx, server);
    if (err)
        return err;
    uint8_t *key = secret_alloc(ACK_KEY_SIZE);
    if (!key)
        err = PSL_ERR_NOMEM;
    else if (!(err = ack_key_for_writer(key, &kx, server->pk, writer_kx_pk)))
        err = ack_sign(a, server, key);
    secret_free(key);
    kx_deinit(&kx);
    return err;
}

void ack_encode(const struct ack *a, uint8_t out[ACK_SIZE])
{
    ack_encode_body(a, out);
    memcpy(out + ACK_BODY_SIZE, a->mac, HASH_SIZE);
    memcpy(out + ACK_BODY_SIZE + HASH_SIZE, a->sig, SIGN_SIG_SIZE);
}

psl_err ack_decode(struct ack *out, const uint8_t *buf, size_t size)
{
    if (size < ACK_SIZE)
        return PSL_ERR_TRUNCATED;
    if (size > ACK_SIZE)
        return PSL_ERR_TRAILING;
    if (memcmp(buf, ack_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct ack a;
    struct rd r;
    rd_init(&r, buf + 4, size - 4);
    if (rd_u8(&r) != ACK_VERSION)
        return PSL_ERR_BAD_VERSION;
    rd_copy(&r, a.capsule, HASH_SIZE);
    rd_copy(&r, a.writer, HASH_SIZE);
    a.seq = rd_u64(&r);
    rd_copy(&r, a.record_hash, HASH_SIZE);
    rd_copy(&r, a.server_pk, SIGN_PK_SIZE);
    rd_copy(&r, a.mac, HASH_SIZE);
    rd_copy(&r, a.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (a.seq == 0)
        return PSL_ERR_BAD_SEQ;
    *out = a;
    return PSL_OK;
}

/* What both checks share: the capsule, a real seq, a replica-set server (its index). */
static psl_err ack_check_common(const struct ack *a, const struct capsule_meta *m, int *idx)
{
    if (memcmp(a->capsule, m->name, HASH_SIZE) != 0)
        return PSL_ERR_WRONG_CAPSULE;
    if (a->seq == 0)
        return PSL_ERR_BAD_SEQ;
    if ((*idx = meta_replica_index(m, a->server_pk)) < 0)
        return PSL_ERR_NOT_REPLICA;
    return PSL_OK;
}

psl_err ack_verify(const struct ack *a, const struct capsule_meta *m)
{
    int idx;
    psl_err err = ack_check_common(a, m, &idx);
    if (err)
        return err;
    uint8_t h[HASH_SIZE];
    ack_digest(h, a);
    if (!sign_verify_tagged(a->server_pk, a->sig, ACK_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return PSL_OK;
}

psl_err ack_verify_mac(const struct ack *a, const struct capsule_meta *m,
                       const struct ack_keys *ks, int *server_index)
{
    int idx;
    psl_err err = ack_check_common(a, m, &idx);
    if (err)
        return err;
    if ((unsigned)idx >= ks->count)
        return PSL_ERR_NOT_REPLICA; /* keys made for other metadata */
    if (!ks->usable[idx])
        return PSL_ERR_BAD_MAC; /* a server key without an X25519 form: nothing verifies */
    uint8_t mac[HASH_SIZE];
    if ((err = ack_mac(mac, a, ks->k + (size_t)idx * ACK_KEY_SIZE)))
        return err;
    if (!ct_equal(mac, a->mac, HASH_SIZE))
        return PSL_ERR_BAD_MAC;
    *server_index = idx;
    return PSL_OK;
}
