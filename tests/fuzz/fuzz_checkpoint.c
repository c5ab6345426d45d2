/* fuzz_checkpoint.c: libFuzzer target for checkpoint_decode, the decoder of CHECKPOINT payloads
 * (capsule/checkpoint.h) that storage servers act on. Invariants checked: a payload that decodes
 * re-encodes to exactly the input bytes; every listed head is found by its writer and every live
 * hash by itself; the collection rule never lets a server drop a CERT, a record at or above its
 * writer's head, a record of a writer the cut omits, or a live block. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "capsule/checkpoint.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fixture_get();
    struct checkpoint cp;
    if (checkpoint_decode(&cp, data, size) != PSL_OK)
        return 0;
    PSL_ASSERT(cp.head_count <= PSL_CUT_HEADS_MAX && cp.live_count <= PSL_CHECKPOINT_BLOCKS_MAX);
    PSL_ASSERT(size == checkpoint_encoded_size(cp.head_count, cp.live_count));

    struct checkpoint_head *heads = malloc((cp.head_count ? cp.head_count : 1) * sizeof *heads);
    uint8_t *out = malloc(size);
    PSL_ASSERT(heads && out);
    for (size_t i = 0; i < cp.head_count; i++) {
        checkpoint_head_at(&cp, i, &heads[i]);
        struct checkpoint_head f;
        PSL_ASSERT(checkpoint_head_find(&cp, heads[i].writer, &f));
        PSL_ASSERT(f.seq == heads[i].seq && memcmp(f.hash, heads[i].hash, HASH_SIZE) == 0);
        struct record_header h;
        memset(&h, 0, sizeof h);
        memcpy(h.writer, heads[i].writer, HASH_SIZE);
        for (uint8_t t = REC_CERT; t <= REC_TYPE_MAX; t++) {
            h.type = t;
            h.seq = 1;
            PSL_ASSERT(!checkpoint_may_collect(&cp, NULL, &h, heads[i].hash));
            h.seq = heads[i].seq;
            PSL_ASSERT(!checkpoint_may_collect(&cp, NULL, &h, heads[i].hash));
            if (cp.live_count && t == REC_LSM_BLOCK && heads[i].seq > 2) {
                h.seq = heads[i].seq - 1;
                PSL_ASSERT(!checkpoint_may_collect(&cp, NULL, &h, cp.live[0]));
            }
        }
    }
    for (size_t i = 0; i < cp.live_count; i++)
        PSL_ASSERT(checkpoint_is_live(&cp, cp.live[i]));
    struct checkpoint re = cp;
    re.heads = heads;
    struct wr w;
    wr_init(&w, out, size);
    PSL_ASSERT(checkpoint_encode(&re, &w) == PSL_OK);
    PSL_ASSERT(w.pos == size && memcmp(out, data, size) == 0);
    free(out);
    free(heads);
    return 0;
}
