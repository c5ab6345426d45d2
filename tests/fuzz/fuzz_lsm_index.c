/* fuzz_lsm_index.c: libFuzzer target for the CapsuleDB index decoder (src/lsm/index.c):
 * lsm_index_decode on the raw bytes as an index plaintext, and, when the bytes parse as a record,
 * lsm_index_open with a compactor certificate for fixture writer 0 (signed here by the fixture
 * owner) and with that writer's own certificate (a worker: refused for its role). Invariants
 * checked for a decoded index: it re-encodes to exactly the input and clones to the same bytes;
 * heads ascend and none is below the horizon; levels below 0 hold at most one run; every run
 * ascends with disjoint ranges and lsm_run_find finds each block by its first and last key; the
 * cut queries agree with the heads. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "fuzz_fixture.h"
#include "lsm/compact.h"
#include "lsm/index.h"
#include "lsm/lookup.h"

static struct writer_cert compactor_cert;
static bool compactor_ready;

static void check_index(const struct lsm_index *ix, const uint8_t *data, size_t size)
{
    PSL_ASSERT(ix->head_count <= PSL_CUT_HEADS_MAX && ix->level_count <= LSM_LEVELS_MAX);
    for (size_t i = 0; i < ix->head_count; i++) {
        const struct lsm_index_head *h = &ix->heads[i];
        PSL_ASSERT(h->seq >= 1 && h->lamport >= ix->horizon);
        if (i > 0)
            PSL_ASSERT(memcmp(ix->heads[i - 1].writer, h->writer, HASH_SIZE) < 0);
        PSL_ASSERT(lsm_index_head_find(ix, h->writer) == h);
        PSL_ASSERT(!lsm_index_covers(ix, h->writer, h->lamport));
        if (h->lamport > 0)
            PSL_ASSERT(lsm_index_covers(ix, h->writer, h->lamport - 1));
    }
    PSL_ASSERT(ix->head_count > 0 || ix->horizon == 0);
    size_t blocks = 0;
    for (size_t l = 0; l < ix->level_count; l++) {
        const struct lsm_level *lv = &ix->levels[l];
        PSL_ASSERT(l == 0 ? lv->run_count <= LSM_LEVEL0_RUNS_MAX : lv->run_count <= 1);
        PSL_ASSERT(l + 1 < ix->level_count || lv->run_count >= 1);
        for (size_t r = 0; r < lv->run_count; r++) {
            const struct lsm_run *run = &lv->runs[r];
            PSL_ASSERT(run->block_count >= 1);
            for (size_t b = 0; b < run->block_count; b++, blocks++) {
                const struct lsm_block_ref *ref = &run->blocks[b];
                PSL_ASSERT(ref->min_key >= ix->own_buf &&
                           ref->bloom + ref->bloom_size <= ix->own_buf + ix->own_buf_size);
                PSL_ASSERT(lsm_key_cmp(ref->min_key, ref->min_key_size, ref->max_key,
                                       ref->max_key_size) <= 0);
                if (b > 0)
                    PSL_ASSERT(lsm_key_cmp(run->blocks[b - 1].max_key,
                                           run->blocks[b - 1].max_key_size, ref->min_key,
                                           ref->min_key_size) < 0);
                PSL_ASSERT(lsm_run_find(run, ref->min_key, ref->min_key_size) == ref);
                PSL_ASSERT(lsm_run_find(run, ref->max_key, ref->max_key_size) == ref);
            }
        }
    }
    PSL_ASSERT(blocks == lsm_index_block_count(ix) && blocks <= LSM_INDEX_BLOCKS_MAX);
    PSL_ASSERT(lsm_index_encoded_size(ix) == size);
    uint8_t *out = malloc(size);
    PSL_ASSERT(out);
    struct wr w;
    wr_init(&w, out, size);
    PSL_ASSERT(lsm_index_encode(ix, &w) == PSL_OK);
    PSL_ASSERT_SIZE(w, size);
    PSL_ASSERT(memcmp(out, data, size) == 0);
    struct lsm_index clone;
    PSL_ASSERT(lsm_index_clone(ix, &clone) == PSL_OK);
    PSL_ASSERT(clone.own_buf_size == size && memcmp(clone.own_buf, data, size) == 0);
    lsm_index_deinit(&clone);
    free(out);
}

static void check_record(const struct fuzz_fixture *fx, const uint8_t *data, size_t size)
{
    struct record_view v;
    if (record_parse(&v, data, size) != PSL_OK)
        return;
    if (!compactor_ready) {
        compactor_cert = fx->certs[0];
        compactor_cert.role = ROLE_COMPACTOR;
        cert_sign(&compactor_cert, &fx->owner);
        PSL_ASSERT(cert_verify(&compactor_cert, NULL, &fx->meta, FIXTURE_NOW_MS) == PSL_OK);
        compactor_ready = true;
    }
    struct lsm_index ix;
    psl_err err = lsm_index_open(data, size, &fx->meta, &compactor_cert, FIXTURE_NOW_MS, NULL,
                                 fx->capsule_key, &ix);
    if (err == PSL_OK) {
        PSL_ASSERT(v.h.type == REC_LSM_INDEX &&
                   memcmp(v.h.writer, compactor_cert.writer_id, HASH_SIZE) == 0);
        const uint8_t *plain = ix.own_buf;
        check_index(&ix, plain, ix.own_buf_size);
        lsm_index_deinit(&ix);
    }
    /* The same writer certified as a worker is never accepted. */
    struct lsm_index other;
    err = lsm_index_open(data, size, &fx->meta, &fx->certs[0], FIXTURE_NOW_MS, NULL,
                         fx->capsule_key, &other);
    PSL_ASSERT(err != PSL_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct lsm_index ix;
    if (lsm_index_decode(&ix, data, size) == PSL_OK) {
        check_index(&ix, data, size);
        lsm_index_deinit(&ix);
    }
    check_record(fx, data, size);
    return 0;
}
