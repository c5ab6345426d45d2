/* fuzz_fixture.c: builds the fixed capsule shared by the fuzz targets and make_corpus (see
 * fuzz_fixture.h). Everything derives from fixed seeds, so two processes build identical bytes;
 * the fuzz targets build it once and keep it for the life of the process. */
#include "fuzz_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"

void fixture_seed(uint8_t out[32], const char *what, unsigned index)
{
    char tag[96];
    int n = snprintf(tag, sizeof tag, "psl-fuzz/%s/%u", what, index);
    PSL_ASSERT(n > 0 && (size_t)n < sizeof tag);
    hash_sha256(out, tag, (size_t)n);
}

void fixture_measurement(uint8_t out[HASH_SIZE], unsigned index)
{
    fixture_seed(out, "measurement", index);
}

psl_err fixture_meta_make(const struct fuzz_fixture *fx, struct capsule_meta *m, const char *label,
                          size_t label_size, unsigned replica_count, unsigned measurement_count)
{
    if (label_size > PSL_LABEL_SIZE_MAX || replica_count > FIXTURE_SERVERS ||
        measurement_count > PSL_MEASUREMENTS_MAX)
        return PSL_ERR_INVALID_ARG;
    memset(m, 0, sizeof *m);
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = FIXTURE_CREATED_MS;
    m->label_size = (uint8_t)label_size;
    memcpy(m->label, label, label_size);
    m->replica_count = (uint8_t)replica_count;
    m->quorum_k = (uint8_t)(replica_count < FIXTURE_QUORUM ? replica_count : FIXTURE_QUORUM);
    for (unsigned i = 0; i < replica_count; i++)
        memcpy(m->replicas[i], fx->servers[i].pk, SIGN_PK_SIZE);
    m->retention = RETENTION_KEEP_ALL;
    m->measurement_count = (uint8_t)measurement_count;
    for (unsigned i = 0; i < measurement_count; i++)
        fixture_measurement(m->measurements[i], i);
    return meta_sign(m, &fx->owner);
}

static void fixture_cert_make(struct fuzz_fixture *fx, unsigned i, uint8_t role,
                              const struct signer *issuer)
{
    struct writer_cert *c = &fx->certs[i];
    memset(c, 0, sizeof *c);
    c->role = role;
    memcpy(c->capsule, fx->meta.name, HASH_SIZE);
    memcpy(c->sign_pk, fx->writers[i].sign.pk, SIGN_PK_SIZE);
    memcpy(c->kx_pk, fx->writers[i].kx.pk, KX_PK_SIZE);
    fixture_measurement(c->measurement, 0);
    c->not_before_ms = FIXTURE_NOT_BEFORE_MS;
    c->not_after_ms = FIXTURE_NOT_AFTER_MS;
    c->serial = 100 + i;
    cert_sign(c, issuer);
}

psl_err fixture_init(struct fuzz_fixture *fx)
{
    uint8_t seed[32], kx_seed[32];
    psl_err err;
    memset(fx, 0, sizeof *fx);
    fixture_seed(seed, "owner", 0);
    if ((err = signer_init(&fx->owner, seed)))
        goto out_fail;
    fixture_seed(seed, "leader", 0);
    if ((err = signer_init(&fx->leader, seed)))
        goto out_fail;
    for (unsigned i = 0; i < FIXTURE_SERVERS; i++) {
        fixture_seed(seed, "server", i);
        if ((err = signer_init(&fx->servers[i], seed)))
            goto out_fail;
    }
    err = PSL_ERR_NOMEM;
    fx->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!fx->capsule_key)
        goto out_fail;
    fixture_seed(fx->capsule_key, "capsule-key", 0);

    static const char label[] = "psl fuzz fixture capsule";
    if ((err = fixture_meta_make(fx, &fx->meta, label, sizeof label - 1, FIXTURE_REPLICAS, 1)))
        goto out_fail;

    /* The owner lets the leader certify workers, coordinators and compactors. */
    struct delegation *d = &fx->deleg;
    d->roles_mask = ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR) | ROLE_BIT(ROLE_COMPACTOR);
    memcpy(d->capsule, fx->meta.name, HASH_SIZE);
    memcpy(d->leader_pk, fx->leader.pk, SIGN_PK_SIZE);
    fixture_measurement(d->measurement, 0);
    d->not_before_ms = FIXTURE_NOT_BEFORE_MS;
    d->not_after_ms = FIXTURE_NOT_AFTER_MS;
    d->serial = 1;
    deleg_sign(d, &fx->owner);

    for (unsigned i = 0; i < FIXTURE_WRITERS; i++) {
        fixture_seed(seed, "writer", i);
        fixture_seed(kx_seed, "writer-kx", i);
        if ((err = writer_keys_init(&fx->writers[i], seed, kx_seed, fx->capsule_key)))
            goto out_fail;
        if (i == FIXTURE_COORDINATOR)
            fixture_cert_make(fx, i, ROLE_COORDINATOR, &fx->leader);
        else
            fixture_cert_make(fx, i, ROLE_WORKER, &fx->owner);
    }
    return PSL_OK;
out_fail:
    fixture_deinit(fx);
    return err;
}

void fixture_deinit(struct fuzz_fixture *fx)
{
    for (unsigned i = 0; i < FIXTURE_WRITERS; i++)
        if (fx->writers[i].sign.sk)
            writer_keys_deinit(&fx->writers[i]);
    secret_free(fx->capsule_key);
    fx->capsule_key = NULL;
    for (unsigned i = 0; i < FIXTURE_SERVERS; i++)
        signer_deinit(&fx->servers[i]);
    signer_deinit(&fx->leader);
    signer_deinit(&fx->owner);
}

const struct fuzz_fixture *fixture_get(void)
{
    static struct fuzz_fixture fx;
    static bool ready;
    if (!ready) {
        if (psl_crypto_init() != PSL_OK || fixture_init(&fx) != PSL_OK) {
            fprintf(stderr, "fuzz fixture: cannot initialise crypto or build the fixture\n");
            abort();
        }
        ready = true;
    }
    return &fx;
}

int fixture_writer_index(const struct fuzz_fixture *fx, const uint8_t writer[HASH_SIZE])
{
    for (unsigned i = 0; i < FIXTURE_WRITERS; i++)
        if (memcmp(fx->writers[i].writer_id, writer, HASH_SIZE) == 0)
            return (int)i;
    return -1;
}
