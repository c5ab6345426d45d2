/* store.c: LMDB storage with group commit (see store.h for the layout and guarantees).
 * One committer thread owns every write transaction; readers use short read-only transactions
 * from any thread (MDB_NOTLS). An append's callback runs only after mdb_txn_commit returned,
 * i.e. after LMDB's fsync, which is what makes an acknowledgement durable. */
#include "store/store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"

#define IDX_KEY_SIZE (2 * HASH_SIZE + 8)
#define HEAD_KEY_SIZE (2 * HASH_SIZE)
#define HEAD_VAL_SIZE (8 + HASH_SIZE + 8 + 1)
#define FULL_RETRY_NS 1000000000ull

struct pending {
    struct pending *next;
    store_append_cb cb;
    void *ctx;
    struct record_header h;
    uint8_t hash[HASH_SIZE];
    psl_err result;
    size_t size;
    uint8_t data[];
};

struct store {
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_rec, dbi_idx, dbi_head;
    MDB_dbi dbi_gc; /* collection state (store_collect) */
    pthread_t committer;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    struct pending *head, *tail;
    size_t pending_bytes;
    uint64_t first_ns; /* arrival of the oldest pending append */
    bool stopping;
    bool full;
    uint64_t full_since_ns;
    uint32_t window_us;
    size_t batch_bytes_max;
    void (*batch_done)(void *ctx);
    void *batch_ctx;
    struct store_stats stats;
};

static psl_err map_mdb(int rc)
{
    switch (rc) {
    case 0:
        return PSL_OK;
    case MDB_NOTFOUND:
        return PSL_ERR_NOT_FOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
        return PSL_ERR_STORAGE_FULL;
    case ENOMEM:
        return PSL_ERR_NOMEM;
    default:
        return PSL_ERR_IO;
    }
}

static void idx_key(uint8_t key[IDX_KEY_SIZE], const uint8_t capsule[HASH_SIZE],
                    const uint8_t writer[HASH_SIZE], uint64_t seq)
{
    memcpy(key, capsule, HASH_SIZE);
    memcpy(key + HASH_SIZE, writer, HASH_SIZE);
    for (unsigned i = 0; i < 8; i++) /* big-endian so that cursor order is seq order */
        key[2 * HASH_SIZE + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static void head_decode_val(struct store_head *h, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    h->contiguous = get_le64(p);
    memcpy(h->hash, p + 8, HASH_SIZE);
    h->max_seq = get_le64(p + 8 + HASH_SIZE);
    h->forked = p[8 + HASH_SIZE + 8] & 1;
}

static void head_encode_val(uint8_t out[HEAD_VAL_SIZE], const struct store_head *h)
{
    put_le64(out, h->contiguous);
    memcpy(out + 8, h->hash, HASH_SIZE);
    put_le64(out + 8 + HASH_SIZE, h->max_seq);
    out[8 + HASH_SIZE + 8] = h->forked ? 1 : 0;
}

/* Reads the first record hash stored under (capsule, writer, seq). */
static int idx_first(MDB_txn *txn, const struct store *s, const uint8_t capsule[HASH_SIZE],
                     const uint8_t writer[HASH_SIZE], uint64_t seq, uint8_t out[HASH_SIZE])
{
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, seq);
    MDB_val key = {IDX_KEY_SIZE, k}, val;
    int rc = mdb_get(txn, s->dbi_idx, &key, &val);
    if (rc == 0) {
        if (val.mv_size != HASH_SIZE)
            return MDB_CORRUPTED;
        memcpy(out, val.mv_data, HASH_SIZE);
    }
    return rc;
}

/* Whether hash is one of the records stored under (capsule, writer, seq): 0, or MDB_NOTFOUND. */
static int idx_has(MDB_txn *txn, const struct store *s, const uint8_t capsule[HASH_SIZE],
                   const uint8_t writer[HASH_SIZE], uint64_t seq, const uint8_t hash[HASH_SIZE])
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi_idx, &cur);
    if (rc)
        return rc;
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, seq);
    MDB_val key = {IDX_KEY_SIZE, k}, val = {HASH_SIZE, (void *)hash};
    rc = mdb_cursor_get(cur, &key, &val, MDB_GET_BOTH);
    mdb_cursor_close(cur);
    return rc;
}

/* The prev field of a stored record, read straight from its header. */
static int stored_prev(MDB_txn *txn, const struct store *s, const uint8_t hash[HASH_SIZE],
                       uint8_t prev[HASH_SIZE])
{
    MDB_val key = {HASH_SIZE, (void *)hash}, val;
    int rc = mdb_get(txn, s->dbi_rec, &key, &val);
    if (rc)
        return rc;
    if (val.mv_size < PSL_RECORD_HEADER_SIZE)
        return MDB_CORRUPTED;
    memcpy(prev, (const uint8_t *)val.mv_data + RECORD_OFFSET_PREV, HASH_SIZE);
    return 0;
}

/* Writes one pending record inside the committer's transaction; sets p->result and counts into
 * delta (merged into the stats only if the transaction commits). Returns an LMDB error only for
 * failures that must abort the whole transaction. */
static int apply_one(MDB_txn *txn, struct store *s, struct pending *p, struct store_stats *delta)
{
    const struct record_header *h = &p->h;
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, h->capsule, h->writer, h->seq);
    MDB_val key = {IDX_KEY_SIZE, k}, val;

    /* Already stored? Then this is a resend: acknowledge it again. */
    MDB_val rkey = {HASH_SIZE, p->hash};
    int rc = mdb_get(txn, s->dbi_rec, &rkey, &val);
    if (rc == 0) {
        p->result = PSL_OK;
        delta->duplicates++;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;

    /* A different record already holds (writer, seq): a fork. Keep it as evidence. */
    uint8_t existing[HASH_SIZE];
    rc = idx_first(txn, s, h->capsule, h->writer, h->seq, existing);
    bool fork = rc == 0;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* The prev link must match a stored previous record, when there is one (after a fork
     * there are several, and a record may extend any of them). */
    if (!fork && h->seq > 1) {
        uint8_t before[HASH_SIZE];
        rc = idx_first(txn, s, h->capsule, h->writer, h->seq - 1, before);
        if (rc == 0) {
            rc = idx_has(txn, s, h->capsule, h->writer, h->seq - 1, h->prev);
            if (rc == MDB_NOTFOUND) {
                p->result = PSL_ERR_BAD_PREV;
                delta->bad_prev++;
                return 0;
            }
        }
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    MDB_val rval = {p->size, p->data};
    if ((rc = mdb_put(txn, s->dbi_rec, &rkey, &rval, MDB_NOOVERWRITE)))
        return rc;
    MDB_val hval = {HASH_SIZE, p->hash};
    if ((rc = mdb_put(txn, s->dbi_idx, &key, &hval, MDB_NODUPDATA)) && rc != MDB_KEYEXIST)
        return rc;

    /* Update the writer's head: extend the contiguous prefix as far as stored records allow. */
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, h->capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, h->writer, HASH_SIZE);
    MDB_val hkey = {HEAD_KEY_SIZE, hk};
    struct store_head head;
    memset(&head, 0, sizeof head);
    rc = mdb_get(txn, s->dbi_head, &hkey, &val);
    if (rc == 0 && val.mv_size == HEAD_VAL_SIZE)
        head_decode_val(&head, &val);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (h->seq > head.max_seq)
        head.max_seq = h->seq;
    if (fork) {
        head.forked = true;
        delta->forks++;
        LOG_WARN("store", "msg=\"fork detected: two records for one (writer, seq)\" seq=%llu",
                 (unsigned long long)h->seq);
    }
    while (!head.forked && head.contiguous < head.max_seq) {
        uint8_t next[HASH_SIZE], prev[HASH_SIZE];
        rc = idx_first(txn, s, h->capsule, h->writer, head.contiguous + 1, next);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc)
            return rc;
        if ((rc = stored_prev(txn, s, next, prev)))
            return rc;
        static const uint8_t zero[HASH_SIZE];
        if (memcmp(prev, head.contiguous ? head.hash : zero, HASH_SIZE) != 0)
            break;
        head.contiguous++;
        memcpy(head.hash, next, HASH_SIZE);
    }
    uint8_t hv[HEAD_VAL_SIZE];
    head_encode_val(hv, &head);
    MDB_val hval2 = {HEAD_VAL_SIZE, hv};
    if ((rc = mdb_put(txn, s->dbi_head, &hkey, &hval2, 0)))
        return rc;
    p->result = fork ? PSL_ERR_FORK : PSL_OK;
    if (!fork) {
        delta->appends++;
        delta->bytes += p->size;
    }
    return 0;
}

static psl_err commit_batch(struct store *s, struct pending *batch, struct store_stats *delta)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return map_mdb(rc);
    for (struct pending *p = batch; p; p = p->next) {
        if ((rc = apply_one(txn, s, p, delta))) {
            mdb_txn_abort(txn);
            return map_mdb(rc);
        }
    }
    rc = mdb_txn_commit(txn); /* fsync happens here */
    return map_mdb(rc);
}

static void *committer_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break;
        /* Gather: wait out the window from the first arrival, unless the batch is big enough. */
        while (!s->stopping && s->pending_bytes < s->batch_bytes_max) {
            uint64_t now = clock_mono_ns(), deadline = s->first_ns + (uint64_t)s->window_us * 1000u;
            if (now >= deadline)
                break;
            struct timespec ts;
            clock_deadline(&ts, deadline - now);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        struct pending *batch = s->head;
        s->head = s->tail = NULL;
        s->pending_bytes = 0;
        pthread_mutex_unlock(&s->mu);

        uint64_t t0 = clock_mono_ns();
        struct store_stats delta;
        memset(&delta, 0, sizeof delta);
        psl_err err = commit_batch(s, batch, &delta);
        uint64_t dt = clock_mono_ns() - t0;

        pthread_mutex_lock(&s->mu);
        if (err) {
            s->stats.failed_batches++;
            if (err == PSL_ERR_STORAGE_FULL && !s->full) {
                s->full = true;
                LOG_ERROR("store", "msg=\"storage full: refusing appends until space returns\"");
            }
            s->full_since_ns = clock_mono_ns();
        } else {
            if (s->full)
                LOG_INFO("store", "msg=\"storage has space again: accepting appends\"");
            s->full = false;
            s->stats.appends += delta.appends;
            s->stats.duplicates += delta.duplicates;
            s->stats.bytes += delta.bytes;
            s->stats.forks += delta.forks;
            s->stats.bad_prev += delta.bad_prev;
            s->stats.commits++;
            s->stats.commit_ns_total += dt;
            if (dt > s->stats.commit_ns_max)
                s->stats.commit_ns_max = dt;
            unsigned b = 0;
            for (uint64_t us = dt / 1000; us > 1 && b < 31; us >>= 1)
                b++;
            s->stats.commit_hist[b]++;
        }
        s->stats.full = s->full;
        pthread_mutex_unlock(&s->mu);

        while (batch) {
            struct pending *p = batch;
            batch = p->next;
            if (p->cb)
                p->cb(p->ctx, err ? err : p->result, p->hash);
            free(p);
        }
        if (s->batch_done)
            s->batch_done(s->batch_ctx);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

psl_err store_open(struct store **out, const struct store_config *cfg)
{
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST)
        return PSL_ERR_IO;
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    s->window_us = cfg->commit_window_us;
    s->batch_bytes_max = cfg->commit_bytes_max ? cfg->commit_bytes_max : (8u << 20);
    s->batch_done = cfg->batch_done;
    s->batch_ctx = cfg->batch_ctx;
    int rc;
    MDB_txn *txn = NULL;
    if ((rc = mdb_env_create(&s->env)))
        goto out_free;
    if ((rc = mdb_env_set_maxdbs(s->env, 8)) ||
        (rc = mdb_env_set_mapsize(s->env, cfg->map_size_bytes ? cfg->map_size_bytes : (1ull << 30))) ||
        (rc = mdb_env_set_maxreaders(s->env, 256)) ||
        (rc = mdb_env_open(s->env, cfg->dir, MDB_NOTLS, 0600)))
        goto out_env;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
        goto out_env;
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->dbi_meta)) ||
        (rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &s->dbi_rec)) ||
        (rc = mdb_dbi_open(txn, "idx", MDB_CREATE | MDB_DUPSORT, &s->dbi_idx)) ||
        (rc = mdb_dbi_open(txn, "head", MDB_CREATE, &s->dbi_head)) ||
        (rc = mdb_dbi_open(txn, "gc", MDB_CREATE, &s->dbi_gc))) {
        mdb_txn_abort(txn);
        goto out_env;
    }
    if ((rc = mdb_txn_commit(txn)))
        goto out_env;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        rc = ENOMEM;
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        goto out_env;
    }
    *out = s;
    return PSL_OK;
out_env:
    LOG_ERROR("store", "msg=\"cannot open the database\" dir=%s error=\"%s\"", cfg->dir, mdb_strerror(rc));
    mdb_env_close(s->env);
out_free:
    free(s);
    return map_mdb(rc);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->committer, NULL);
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

psl_err store_meta_put(struct store *s, const uint8_t name[HASH_SIZE], const uint8_t *raw,
                       size_t size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return map_mdb(rc);
    MDB_val key = {HASH_SIZE, (void *)name}, val = {size, (void *)raw};
    if ((rc = mdb_put(txn, s->dbi_meta, &key, &val, 0))) {
        mdb_txn_abort(txn);
        return map_mdb(rc);
    }
    return map_mdb(mdb_txn_commit(txn));
}

psl_err store_meta_each(struct store *s, void (*fn)(void *ctx, const uint8_t *raw, size_t size),
                        void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    if ((rc = mdb_cursor_open(txn, s->dbi_meta, &cur))) {
        mdb_txn_abort(txn);
        return map_mdb(rc);
    }
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
        fn(ctx, val.mv_data, val.mv_size);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? PSL_OK : map_mdb(rc);
}

psl_err store_append(struct store *s, const struct record_view *v, store_append_cb cb, void *ctx)
{
    struct pending *p = malloc(sizeof *p + v->raw_size);
    if (!p)
        return PSL_ERR_NOMEM;
    p->next = NULL;
    p->cb = cb;
    p->ctx = ctx;
    p->h = v->h;
    memcpy(p->hash, v->hash, HASH_SIZE);
    p->result = PSL_ERR_IO;
    p->size = v->raw_size;
    memcpy(p->data, v->raw, v->raw_size);
    pthread_mutex_lock(&s->mu);
    psl_err err = PSL_OK;
    if (s->stopping)
        err = PSL_ERR_CLOSED;
    else if (s->full && clock_mono_ns() - s->full_since_ns < FULL_RETRY_NS)
        err = PSL_ERR_STORAGE_FULL;
    if (err) {
        pthread_mutex_unlock(&s->mu);
        free(p);
        return err;
    }
    if (!s->head)
        s->first_ns = clock_mono_ns();
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    s->pending_bytes += p->size;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return PSL_OK;
}

psl_err store_get(struct store *s, const uint8_t hash[HASH_SIZE], store_record_fn fn, void *ctx)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    MDB_val key = {HASH_SIZE, (void *)hash}, val;
    rc = mdb_get(txn, s->dbi_rec, &key, &val);
    if (rc == 0)
        fn(ctx, val.mv_data, val.mv_size);
    mdb_txn_abort(txn);
    return map_mdb(rc);
}

bool store_has(struct store *s, const uint8_t hash[HASH_SIZE])
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
        return false;
    MDB_val key = {HASH_SIZE, (void *)hash}, val;
    bool found = mdb_get(txn, s->dbi_rec, &key, &val) == 0;
    mdb_txn_abort(txn);
    return found;
}

psl_err store_range(struct store *s, const uint8_t capsule[HASH_SIZE],
                    const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to,
                    store_record_fn fn, void *ctx)
{
    if (from == 0)
        from = 1;
    if (from > to)
        return PSL_OK;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    if ((rc = mdb_cursor_open(txn, s->dbi_idx, &cur))) {
        mdb_txn_abort(txn);
        return map_mdb(rc);
    }
    uint8_t k[IDX_KEY_SIZE], end[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, from);
    idx_key(end, capsule, writer, to);
    MDB_val key = {IDX_KEY_SIZE, k}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != IDX_KEY_SIZE || memcmp(key.mv_data, end, IDX_KEY_SIZE) > 0)
            break;
        MDB_val rv;
        MDB_val rk = {HASH_SIZE, val.mv_data};
        if (val.mv_size != HASH_SIZE || (rc = mdb_get(txn, s->dbi_rec, &rk, &rv)))
            break;
        if (!fn(ctx, rv.mv_data, rv.mv_size))
            break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return (rc == 0 || rc == MDB_NOTFOUND) ? PSL_OK : map_mdb(rc);
}

psl_err store_heads(struct store *s, const uint8_t capsule[HASH_SIZE], store_head_fn fn, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    if ((rc = mdb_cursor_open(txn, s->dbi_head, &cur))) {
        mdb_txn_abort(txn);
        return map_mdb(rc);
    }
    MDB_val key = {HASH_SIZE, (void *)capsule}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != HEAD_KEY_SIZE || memcmp(key.mv_data, capsule, HASH_SIZE) != 0 ||
            val.mv_size != HEAD_VAL_SIZE)
            break;
        struct store_head h;
        memcpy(h.writer, (const uint8_t *)key.mv_data + HASH_SIZE, HASH_SIZE);
        head_decode_val(&h, &val);
        if (!fn(ctx, &h))
            break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return (rc == 0 || rc == MDB_NOTFOUND) ? PSL_OK : map_mdb(rc);
}

psl_err store_head_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                       const uint8_t writer[HASH_SIZE], struct store_head *out)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, writer, HASH_SIZE);
    MDB_val key = {HEAD_KEY_SIZE, hk}, val;
    rc = mdb_get(txn, s->dbi_head, &key, &val);
    if (rc == 0) {
        if (val.mv_size != HEAD_VAL_SIZE) {
            rc = MDB_CORRUPTED;
        } else {
            memcpy(out->writer, writer, HASH_SIZE);
            head_decode_val(out, &val);
        }
    }
    mdb_txn_abort(txn);
    return map_mdb(rc);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

uint64_t store_commit_quantile_ns(const struct store_stats *st, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < 32; i++)
        total += st->commit_hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)((double)total * q), seen = 0;
    for (unsigned i = 0; i < 32; i++) {
        seen += st->commit_hist[i];
        if (seen > want) /* report the bucket's geometric middle */
            return (uint64_t)((double)(1ull << i) * 1.414 * 1000.0);
    }
    return (1ull << 31) * 1000u;
}

/* ---- collection (store.h; docs/capsuledb.md "Collection") ----
 * Everything below runs in one write transaction per checkpoint, so a crash leaves either the
 * old state or the new one: records dropped, horizons raised, heads rebased and the checkpoint
 * marked applied together. */

#define GC_STATE_SIZE   (8 + 2 * HASH_SIZE + 8 + 8)
#define GC_HORIZON_SIZE (8 + HASH_SIZE)

static void gc_state_decode(struct store_gc_state *g, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    g->generation = get_le64(p);
    memcpy(g->record_hash, p + 8, HASH_SIZE);
    memcpy(g->compactor, p + 8 + HASH_SIZE, HASH_SIZE);
    g->records = get_le64(p + 8 + 2 * HASH_SIZE);
    g->bytes = get_le64(p + 16 + 2 * HASH_SIZE);
}

static int gc_state_read(MDB_txn *txn, const struct store *s, const uint8_t capsule[HASH_SIZE],
                         struct store_gc_state *g)
{
    MDB_val key = {HASH_SIZE, (void *)capsule}, val;
    int rc = mdb_get(txn, s->dbi_gc, &key, &val);
    if (rc == 0) {
        if (val.mv_size != GC_STATE_SIZE)
            return MDB_CORRUPTED;
        gc_state_decode(g, &val);
    }
    return rc;
}

static int horizon_read(MDB_txn *txn, const struct store *s, const uint8_t capsule[HASH_SIZE],
                        const uint8_t writer[HASH_SIZE], uint64_t *horizon)
{
    uint8_t k[HEAD_KEY_SIZE];
    memcpy(k, capsule, HASH_SIZE);
    memcpy(k + HASH_SIZE, writer, HASH_SIZE);
    MDB_val key = {HEAD_KEY_SIZE, k}, val;
    int rc = mdb_get(txn, s->dbi_gc, &key, &val);
    *horizon = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0 && val.mv_size != GC_HORIZON_SIZE)
        return MDB_CORRUPTED;
    if (rc == 0)
        *horizon = get_le64(val.mv_data);
    return rc;
}

/* A (seq, hash) pair of the idx database, listed before deletion. */
struct gc_victim {
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
};

/* Drops what cp allows of one writer's records below head->seq. */
static int gc_writer(MDB_txn *txn, struct store *s, const uint8_t capsule[HASH_SIZE],
                     const struct checkpoint *cp, const struct checkpoint_head *head,
                     struct store_collect_result *res)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi_idx, &cur);
    if (rc)
        return rc;
    struct gc_victim *v = NULL;
    size_t n = 0, cap = 0;
    uint8_t k[IDX_KEY_SIZE], end[IDX_KEY_SIZE];
    idx_key(k, capsule, head->writer, 2);
    idx_key(end, capsule, head->writer, head->seq - 1);
    MDB_val key = {IDX_KEY_SIZE, k}, val;
    for (rc = head->seq > 2 ? mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE) : MDB_NOTFOUND;
         rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != IDX_KEY_SIZE || memcmp(key.mv_data, end, IDX_KEY_SIZE) > 0)
            break;
        if (val.mv_size != HASH_SIZE) {
            rc = MDB_CORRUPTED;
            break;
        }
        MDB_val rk = {HASH_SIZE, val.mv_data}, rv;
        if ((rc = mdb_get(txn, s->dbi_rec, &rk, &rv)) == MDB_NOTFOUND)
            continue; /* an index entry without its record: nothing to drop */
        if (rc)
            break;
        struct record_header h;
        if (record_header_decode(&h, rv.mv_data, rv.mv_size) != PSL_OK) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (!checkpoint_may_collect(cp, &h, val.mv_data))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct gc_victim *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n].seq = h.seq;
        memcpy(v[n].hash, val.mv_data, HASH_SIZE);
        res->bytes += rv.mv_size;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        idx_key(k, capsule, head->writer, v[i].seq);
        MDB_val ik = {IDX_KEY_SIZE, k}, iv = {HASH_SIZE, v[i].hash};
        MDB_val rk = {HASH_SIZE, v[i].hash};
        if ((rc = mdb_del(txn, s->dbi_idx, &ik, &iv)) == 0 &&
            (rc = mdb_del(txn, s->dbi_rec, &rk, NULL)) == MDB_NOTFOUND)
            rc = 0;
    }
    res->records += n;
    free(v);
    return rc;
}

/* One writer of the cut: checks, drops, raises the horizon, rebases the head. */
static int gc_head(MDB_txn *txn, struct store *s, const uint8_t capsule[HASH_SIZE],
                   const struct checkpoint *cp, const struct checkpoint_head *ch,
                   struct store_collect_result *res)
{
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, ch->writer, HASH_SIZE);
    MDB_val hkey = {HEAD_KEY_SIZE, hk}, val;
    struct store_head head;
    memset(&head, 0, sizeof head);
    int rc = mdb_get(txn, s->dbi_head, &hkey, &val);
    if (rc == 0 && val.mv_size == HEAD_VAL_SIZE)
        head_decode_val(&head, &val);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* A fork is evidence, and a different record at the head seq means the cut and this store
     * disagree about the chain: keep everything of that writer. */
    uint8_t at_head[HASH_SIZE];
    rc = idx_first(txn, s, capsule, ch->writer, ch->seq, at_head);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    bool other = rc == 0 && idx_has(txn, s, capsule, ch->writer, ch->seq, ch->hash) != 0;
    if (head.forked || other) {
        res->skipped++;
        return 0;
    }
    res->writers++;
    if ((rc = gc_writer(txn, s, capsule, cp, ch, res)))
        return rc;
    uint64_t horizon;
    if ((rc = horizon_read(txn, s, capsule, ch->writer, &horizon)))
        return rc;
    if (ch->seq > horizon) {
        uint8_t hv[GC_HORIZON_SIZE];
        put_le64(hv, ch->seq);
        memcpy(hv + 8, ch->hash, HASH_SIZE);
        MDB_val gk = {HEAD_KEY_SIZE, hk}, gv = {GC_HORIZON_SIZE, hv};
        if ((rc = mdb_put(txn, s->dbi_gc, &gk, &gv, 0)))
            return rc;
    }
    if (head.contiguous >= ch->seq)
        return 0;
    /* Behind the cut: the checkpoint's head becomes this writer's base, and the records stored
     * after it extend the prefix when they link to it. */
    head.contiguous = ch->seq;
    memcpy(head.hash, ch->hash, HASH_SIZE);
    if (head.max_seq < ch->seq)
        head.max_seq = ch->seq;
    while (head.contiguous < head.max_seq) {
        uint8_t next[HASH_SIZE], prev[HASH_SIZE];
        rc = idx_first(txn, s, capsule, ch->writer, head.contiguous + 1, next);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc || (rc = stored_prev(txn, s, next, prev)))
            return rc;
        if (memcmp(prev, head.hash, HASH_SIZE) != 0)
            break;
        head.contiguous++;
        memcpy(head.hash, next, HASH_SIZE);
    }
    uint8_t hv[HEAD_VAL_SIZE];
    head_encode_val(hv, &head);
    MDB_val hval = {HEAD_VAL_SIZE, hv};
    if ((rc = mdb_put(txn, s->dbi_head, &hkey, &hval, 0)))
        return rc;
    res->rebased++;
    return 0;
}

psl_err store_collect(struct store *s, const uint8_t capsule[HASH_SIZE],
                      const uint8_t record_hash[HASH_SIZE], const uint8_t compactor[HASH_SIZE],
                      const struct checkpoint *cp, struct store_collect_result *out)
{
    struct store_collect_result res;
    memset(&res, 0, sizeof res);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return map_mdb(rc);
    /* Retention is read from the owner-signed metadata this store holds, not from the caller. */
    MDB_val mkey = {HASH_SIZE, (void *)capsule}, mval;
    struct capsule_meta m;
    if ((rc = mdb_get(txn, s->dbi_meta, &mkey, &mval)))
        goto out_abort;
    if (meta_decode(&m, mval.mv_data, mval.mv_size) != PSL_OK) {
        rc = MDB_CORRUPTED;
        goto out_abort;
    }
    if (m.retention != RETENTION_COLLECT_COVERED) {
        res.outcome = STORE_COLLECT_KEEP_ALL;
        goto out_done;
    }
    struct store_gc_state g;
    memset(&g, 0, sizeof g);
    rc = gc_state_read(txn, s, capsule, &g);
    if (rc && rc != MDB_NOTFOUND)
        goto out_abort;
    if (cp->generation <= g.generation) {
        res.outcome = STORE_COLLECT_STALE;
        goto out_done;
    }
    for (size_t i = 0; i < cp->head_count; i++) {
        struct checkpoint_head ch;
        checkpoint_head_at(cp, i, &ch);
        if ((rc = gc_head(txn, s, capsule, cp, &ch, &res)))
            goto out_abort;
    }
    g.generation = cp->generation;
    memcpy(g.record_hash, record_hash, HASH_SIZE);
    memcpy(g.compactor, compactor, HASH_SIZE);
    g.records += res.records;
    g.bytes += res.bytes;
    uint8_t gv[GC_STATE_SIZE];
    put_le64(gv, g.generation);
    memcpy(gv + 8, g.record_hash, HASH_SIZE);
    memcpy(gv + 8 + HASH_SIZE, g.compactor, HASH_SIZE);
    put_le64(gv + 8 + 2 * HASH_SIZE, g.records);
    put_le64(gv + 16 + 2 * HASH_SIZE, g.bytes);
    MDB_val gk = {HASH_SIZE, (void *)capsule}, gval = {GC_STATE_SIZE, gv};
    if ((rc = mdb_put(txn, s->dbi_gc, &gk, &gval, 0)))
        goto out_abort;
    if ((rc = mdb_txn_commit(txn))) /* durable (fsync) before anyone is told */
        return map_mdb(rc);
    res.outcome = STORE_COLLECT_APPLIED;
    *out = res;
    return PSL_OK;
out_done:
    mdb_txn_abort(txn);
    *out = res;
    return PSL_OK;
out_abort:
    mdb_txn_abort(txn);
    return map_mdb(rc);
}

psl_err store_gc_state_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                           struct store_gc_state *out)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return map_mdb(rc);
    struct store_gc_state g;
    rc = gc_state_read(txn, s, capsule, &g);
    mdb_txn_abort(txn);
    if (rc == 0)
        *out = g;
    return map_mdb(rc);
}

uint64_t store_horizon_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                           const uint8_t writer[HASH_SIZE])
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
        return 0;
    uint64_t horizon = 0;
    if (horizon_read(txn, s, capsule, writer, &horizon))
        horizon = 0;
    mdb_txn_abort(txn);
    return horizon;
}
