/* checkpoint.c: the CHECKPOINT payload codec and the collection rule (see checkpoint.h). The
 * decoder never allocates: it checks every count against its limit and against the bytes left
 * before looking at an entry, and hands out views into the caller's buffer. The rule keeps every
 * record at or above a cut head, which is what lets a reader start after any head it trusts. */
#include "capsule/checkpoint.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(CHECKPOINT_SIZE_MAX <= PSL_RECORD_PAYLOAD_SIZE_MAX,
               "a maximal checkpoint must fit in one record");

size_t checkpoint_encoded_size(size_t head_count, size_t live_count)
{
    return CHECKPOINT_FIXED_SIZE + head_count * CHECKPOINT_HEAD_SIZE + live_count * HASH_SIZE;
}

psl_err checkpoint_encode(const struct checkpoint *cp, struct wr *w)
{
    if (cp->head_count > PSL_CUT_HEADS_MAX || cp->live_count > PSL_CHECKPOINT_BLOCKS_MAX)
        return PSL_ERR_TOO_LARGE;
    if (cp->index_seq < 2 || cp->generation == 0)
        return PSL_ERR_MALFORMED;
    for (size_t i = 0; i < cp->head_count; i++)
        if (cp->heads[i].seq == 0 ||
            (i > 0 && memcmp(cp->heads[i - 1].writer, cp->heads[i].writer, HASH_SIZE) >= 0))
            return PSL_ERR_MALFORMED;
    for (size_t i = 1; i < cp->live_count; i++)
        if (memcmp(cp->live[i - 1], cp->live[i], HASH_SIZE) >= 0)
            return PSL_ERR_MALFORMED;
    size_t need = checkpoint_encoded_size(cp->head_count, cp->live_count);
    if (w->err || need > w->size - w->pos)
        return PSL_ERR_TOO_LARGE;
    wr_u8(w, CHECKPOINT_VERSION);
    wr_bytes(w, cp->index_hash, HASH_SIZE);
    wr_u64(w, cp->index_seq);
    wr_u64(w, cp->generation);
    wr_u32(w, (uint32_t)cp->head_count);
    for (size_t i = 0; i < cp->head_count; i++) {
        wr_bytes(w, cp->heads[i].writer, HASH_SIZE);
        wr_u64(w, cp->heads[i].seq);
        wr_bytes(w, cp->heads[i].hash, HASH_SIZE);
    }
    wr_u32(w, (uint32_t)cp->live_count);
    for (size_t i = 0; i < cp->live_count; i++)
        wr_bytes(w, cp->live[i], HASH_SIZE);
    return w->err;
}

psl_err checkpoint_decode(struct checkpoint *out, const uint8_t *buf, size_t size)
{
    struct rd r;
    rd_init(&r, buf, size);
    struct checkpoint cp;
    memset(&cp, 0, sizeof cp);
    uint8_t version = rd_u8(&r);
    if (r.err)
        return r.err;
    if (version != CHECKPOINT_VERSION)
        return PSL_ERR_BAD_VERSION;
    rd_copy(&r, cp.index_hash, HASH_SIZE);
    cp.index_seq = rd_u64(&r);
    cp.generation = rd_u64(&r);
    uint32_t heads = rd_u32(&r);
    if (r.err)
        return r.err;
    if (cp.index_seq < 2 || cp.generation == 0)
        return PSL_ERR_MALFORMED;
    if (heads > PSL_CUT_HEADS_MAX)
        return PSL_ERR_TOO_LARGE;
    if ((size_t)heads > rd_left(&r) / CHECKPOINT_HEAD_SIZE)
        return PSL_ERR_TRUNCATED;
    cp.head_count = heads;
    cp.heads_raw = rd_take(&r, (size_t)heads * CHECKPOINT_HEAD_SIZE);
    for (size_t i = 0; i < cp.head_count; i++) {
        const uint8_t *h = cp.heads_raw + i * CHECKPOINT_HEAD_SIZE;
        if (get_le64(h + HASH_SIZE) == 0)
            return PSL_ERR_MALFORMED;
        if (i > 0 && memcmp(h - CHECKPOINT_HEAD_SIZE, h, HASH_SIZE) >= 0)
            return PSL_ERR_MALFORMED;
    }
    uint32_t live = rd_u32(&r);
    if (r.err)
        return r.err;
    if (live > PSL_CHECKPOINT_BLOCKS_MAX)
        return PSL_ERR_TOO_LARGE;
    if ((size_t)live > rd_left(&r) / HASH_SIZE)
        return PSL_ERR_TRUNCATED;
    cp.live_count = live;
    const uint8_t *lv = rd_take(&r, (size_t)live * HASH_SIZE);
    if (live && !lv)
        return PSL_ERR_TRUNCATED;
    cp.live = (const uint8_t(*)[HASH_SIZE])(const void *)lv;
    for (size_t i = 1; i < cp.live_count; i++)
        if (memcmp(cp.live[i - 1], cp.live[i], HASH_SIZE) >= 0)
            return PSL_ERR_MALFORMED;
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    if (cp.head_count == 0)
        cp.heads_raw = NULL;
    if (cp.live_count == 0)
        cp.live = NULL;
    *out = cp;
    return PSL_OK;
}

void checkpoint_head_at(const struct checkpoint *cp, size_t i, struct checkpoint_head *out)
{
    const uint8_t *h = cp->heads_raw + i * CHECKPOINT_HEAD_SIZE;
    memcpy(out->writer, h, HASH_SIZE);
    out->seq = get_le64(h + HASH_SIZE);
    memcpy(out->hash, h + HASH_SIZE + 8, HASH_SIZE);
}

/* bsearch order of the heads and the live list: both are sorted by a leading 32-byte hash. */
static int hash_prefix_cmp(const void *key, const void *elem)
{
    return memcmp(key, elem, HASH_SIZE);
}

bool checkpoint_head_find(const struct checkpoint *cp, const uint8_t writer[HASH_SIZE],
                          struct checkpoint_head *out)
{
    const uint8_t *h = cp->head_count ? bsearch(writer, cp->heads_raw, cp->head_count,
                                                CHECKPOINT_HEAD_SIZE, hash_prefix_cmp)
                                      : NULL;
    if (!h)
        return false;
    checkpoint_head_at(cp, (size_t)(h - cp->heads_raw) / CHECKPOINT_HEAD_SIZE, out);
    return true;
}

bool checkpoint_is_live(const struct checkpoint *cp, const uint8_t hash[HASH_SIZE])
{
    return cp->live_count &&
           bsearch(hash, cp->live, cp->live_count, HASH_SIZE, hash_prefix_cmp) != NULL;
}

bool checkpoint_may_collect(const struct checkpoint *cp, const struct checkpoint *prev,
                            const struct record_header *h, const uint8_t hash[HASH_SIZE])
{
    struct checkpoint_head head;
    if (h->seq <= 1 || !checkpoint_head_find(cp, h->writer, &head) || h->seq >= head.seq)
        return false;
    if (memcmp(hash, cp->index_hash, HASH_SIZE) == 0)
        return false;
    switch (h->type) {
    case REC_DATA:
    case REC_EOE:
    case REC_SYNC:
    case REC_HEAD:
    case REC_LSM_INDEX:
    case REC_CHECKPOINT:
        return true;
    case REC_LSM_BLOCK:
        return !checkpoint_is_live(cp, hash) && !(prev && checkpoint_is_live(prev, hash));
    default: /* CERT, RESULT (a client may not have fetched it yet), REVOKE: kept for good */
        return false;
    }
}
