/* store.c: the storage engine of a capsule server: a write-ahead log, a scratch LMDB environment
 * for what was appended since the last checkpoint, and the main LMDB environment (see store.h
 * for the layout and the guarantees). One committer thread owns every write; readers use short
 * read-only transactions from any thread (MDB_NOTLS). Invariant: every record a callback has
 * acknowledged is in the main environment (committed with LMDB's own fsyncs) or in a frame of
 * the current WAL generation that a completed fdatasync covered.
 *
 * Why three parts. A group commit used to be one LMDB transaction, and mdb_txn_commit syncs
 * twice (the data pages, then the meta page). LMDB's MDB_NOSYNC would make the commit free, but
 * LMDB documents that a system crash can then corrupt the database unless the file system keeps
 * write order (ext4 does not for overwrites): a power loss while written-but-unsynced meta and
 * data pages reach the disk in any order could lose far more than the last batch. So the main
 * environment (data.mdb) only ever sees normally synced commits, and a batch instead costs:
 *   1. its records as frames, one pwrite into the WAL (file `wal`), one fdatasync. The WAL is
 *      zero-filled ahead in 1 MiB steps and overwritten in place after a checkpoint, so that
 *      fdatasync normally changes no file metadata and costs one device flush;
 *   2. the same chain logic as before (duplicates, forks, prev links, heads) run against the
 *      union of the main environment and the scratch environment (hot.mdb), writing into the
 *      scratch one in a transaction committed without any sync (its env has MDB_NOSYNC);
 *   3. the callbacks. Readers see a record once its callback runs, and only after it is durable
 *      (a server acknowledges a re-sent record on store_has alone).
 * The scratch environment is never trusted after a crash: store_open deletes it and rebuilds it
 * by replaying the WAL, so its lack of syncs costs nothing in safety.
 *
 * Checkpoint (the WAL reaches CKPT_WAL_BYTES, CKPT_INTERVAL_NS after its first frame, at close,
 * and before a batch that could not be checkpointed later): copy everything in the scratch
 * environment into the main one in one normally synced transaction, empty the scratch one, then
 * reset the WAL by writing a fresh random salt into its header. Frames carry the salt, so frames
 * of older generations left in the reused file are never replayed. The new header reaches disk
 * with the next batch's fdatasync, before anything of the new generation is acknowledged; if a
 * crash comes first, the old generation is replayed, and everything in it is already in the main
 * environment (duplicates, acknowledged again at most). Readers look in the scratch environment
 * first and the main one second, so a record moving between them during a checkpoint (main
 * commit, then scratch emptied) is always found.
 *
 * Full storage (the contract in store.h). (a) The WAL cannot grow or be written (ENOSPC): the
 * batch fails before anything is acknowledged and the WAL position does not move. (b) The scratch
 * commit fails after the WAL was synced: the batch fails, unacknowledged; its frames are
 * invalidated by rewinding the WAL position and zeroing the first frame header. If that
 * invalidation is lost in a crash, the replay stores records that were verified but never
 * acknowledged, which is harmless. (c) The main map or disk is full at a checkpoint: its
 * transaction aborts and changes nothing; every acknowledged record stays in the scratch
 * environment (readable) and in the synced WAL (durable); the store turns full, refuses appends
 * and retries about once a second. To make (c) fail the batch that does not fit rather than
 * records already acknowledged piling up uncheckpointable, a checkpoint runs before a batch when
 * the main map's unused space is under twice the WAL plus the batch; the WAL and the scratch
 * environment therefore stay within one checkpoint's worth. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"

#define IDX_KEY_SIZE  (2 * HASH_SIZE + 8)
#define HEAD_KEY_SIZE (2 * HASH_SIZE)
#define HEAD_VAL_SIZE (8 + HASH_SIZE + 8 + 1)
#define FULL_RETRY_NS 1000000000ull

/* WAL layout. Header at 0: magic[8] | salt u64 | generation u64 | check[32] = SHA-256 of the 24
 * bytes before it. Frames from WAL_DATA_OFFSET on, back to back:
 *   magic u32 | size u32 | salt u64 | check[32] = SHA-256(magic | size | salt | record) | record
 * A frame is valid when its magic and salt match, PSL_RECORD_HEADER_SIZE + PSL_RECORD_SIG_SIZE
 * <= size <= PSL_RECORD_SIZE_MAX, it fits in the file, the check matches and the record parses.
 * Replay stops at the first invalid frame (a torn tail, or the end of this generation). */
#define WAL_NAME          "wal"
#define HOT_NAME          "hot.mdb"
#define WAL_MAGIC         "PSLWAL\0\1"
#define WAL_HEADER_SIZE   (8 + 8 + 8 + HASH_SIZE)
#define WAL_DATA_OFFSET   4096u       /* the header has a block of its own */
#define FRAME_MAGIC       0x464c5350u /* "PSLF" little-endian */
#define FRAME_HEADER_SIZE (4 + 4 + 8 + HASH_SIZE)
#define WAL_GROW_BYTES    (1u << 20)
#define WAL_KEEP_BYTES    (64u << 20)   /* a reset trims a WAL grown past this */
#define CKPT_WAL_BYTES    (16u << 20)   /* checkpoint after a batch leaves this much */
#define CKPT_INTERVAL_NS  1000000000ull /* ...or this long after the first frame of a generation */
#define HOT_MAP_MIN       (256ull << 20)
#define STORE_QUIET_NS    200000ull     /* an append after at least this long idle may commit
                                         * inline (inline_when_idle) */

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

/* The three record databases; the main and the scratch environment each have them. */
struct dbs {
    MDB_dbi rec, idx, head;
};

/* A consistent view for the chain logic and the readers: scratch first, then main. The
 * scratch transaction is the committer's write transaction while applying a batch. */
struct view {
    const struct store *s;
    MDB_txn *hot, *cold;
};

struct store {
    MDB_env *env; /* main: every commit synced */
    MDB_env *hot; /* scratch: MDB_NOSYNC, rebuilt from the WAL at open */
    MDB_dbi dbi_meta;
    MDB_dbi dbi_gc; /* main only: collection state (store_collect) */
    struct dbs cold_db, hot_db;
    /* Held by whoever writes the WAL or an environment: the committer around a batch or a
     * checkpoint, store_collect around its forced checkpoint and its transaction. Never held
     * while callbacks run, so it never waits on the fabric. */
    pthread_mutex_t write_mu;
    pthread_t committer;
    pthread_mutex_t mu; /* guards the fields below, up to the committer's own */
    pthread_cond_t cv;
    struct pending *head, *tail;
    size_t pending_bytes;
    uint64_t first_ns; /* arrival of the oldest pending append */
    uint64_t last_append_ns; /* arrival of the newest append */
    bool committing;   /* a batch is being committed (by the committer, or inline) */
    bool committer_waits; /* the committer waits for an inline batch to end */
    bool committer_untimed; /* the idle committer sleeps with an empty WAL (no timer) */
    uint64_t commit_avg_ns; /* moving average of commit times (1/8 weight to the newest) */
    bool inline_idle;  /* an append to an idle store commits on the appending thread */
    bool stopping;
    bool full;
    uint64_t full_since_ns;
    uint32_t window_us;
    size_t batch_bytes_max;
    void (*batch_done)(void *ctx);
    void *batch_ctx;
    struct store_stats stats;
    /* Owned by the committer thread (and by store_open before it starts). */
    int wal_fd;
    uint64_t wal_salt, wal_generation;
    uint64_t wal_pos;       /* end of the last synced frame */
    uint64_t wal_cap;       /* file size, zero-filled */
    uint64_t wal_first_ns;  /* when the first frame of this generation was synced */
    uint64_t ckpt_retry_ns; /* no checkpoint attempt before this (after a failure) */
    uint8_t *wbuf;          /* frames of one batch */
    size_t wbuf_cap;
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

/* ---- the union of the scratch and the main environment ---- */

/* Opens a read view: the scratch snapshot first, then the main one (see the top comment). */
static int view_begin(struct view *v, const struct store *s)
{
    v->s = s;
    v->hot = v->cold = NULL;
    int rc = mdb_txn_begin(s->hot, NULL, MDB_RDONLY, &v->hot);
    if (rc)
        return rc;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &v->cold))) {
        mdb_txn_abort(v->hot);
        v->hot = NULL;
    }
    return rc;
}

static void view_end(struct view *v)
{
    mdb_txn_abort(v->cold);
    mdb_txn_abort(v->hot);
}

/* A record's bytes, from the scratch environment or else the main one. */
static int view_rec(const struct view *v, const uint8_t hash[HASH_SIZE], MDB_val *val)
{
    MDB_val key = {HASH_SIZE, (void *)hash};
    int rc = mdb_get(v->hot, v->s->hot_db.rec, &key, val);
    if (rc != MDB_NOTFOUND)
        return rc;
    return mdb_get(v->cold, v->s->cold_db.rec, &key, val);
}

/* A writer's head value, from the scratch environment (it is always the newer) or the main. */
static int view_head(const struct view *v, const uint8_t hk[HEAD_KEY_SIZE], MDB_val *val)
{
    MDB_val key = {HEAD_KEY_SIZE, (void *)hk};
    int rc = mdb_get(v->hot, v->s->hot_db.head, &key, val);
    if (rc != MDB_NOTFOUND)
        return rc;
    return mdb_get(v->cold, v->s->cold_db.head, &key, val);
}

/* The first (lowest) record hash stored under (capsule, writer, seq) in either environment:
 * the same answer mdb_get gives on one DUPSORT database holding both. */
static int idx_first(const struct view *v, const uint8_t capsule[HASH_SIZE],
                     const uint8_t writer[HASH_SIZE], uint64_t seq, uint8_t out[HASH_SIZE])
{
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, seq);
    MDB_val key = {IDX_KEY_SIZE, k}, hv, cv;
    int rh = mdb_get(v->hot, v->s->hot_db.idx, &key, &hv);
    if (rh && rh != MDB_NOTFOUND)
        return rh;
    int rcold = mdb_get(v->cold, v->s->cold_db.idx, &key, &cv);
    if (rcold && rcold != MDB_NOTFOUND)
        return rcold;
    if ((rh == 0 && hv.mv_size != HASH_SIZE) || (rcold == 0 && cv.mv_size != HASH_SIZE))
        return MDB_CORRUPTED;
    const MDB_val *pick = NULL;
    if (rh == 0 && rcold == 0)
        pick = memcmp(hv.mv_data, cv.mv_data, HASH_SIZE) <= 0 ? &hv : &cv;
    else if (rh == 0)
        pick = &hv;
    else if (rcold == 0)
        pick = &cv;
    if (!pick)
        return MDB_NOTFOUND;
    memcpy(out, pick->mv_data, HASH_SIZE);
    return 0;
}

static int idx_has_one(MDB_txn *txn, MDB_dbi dbi, const uint8_t k[IDX_KEY_SIZE],
                       const uint8_t hash[HASH_SIZE])
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    MDB_val key = {IDX_KEY_SIZE, (void *)k}, val = {HASH_SIZE, (void *)hash};
    rc = mdb_cursor_get(cur, &key, &val, MDB_GET_BOTH);
    mdb_cursor_close(cur);
    return rc;
}

/* Whether hash is one of the records stored under (capsule, writer, seq): 0, or MDB_NOTFOUND. */
static int idx_has(const struct view *v, const uint8_t capsule[HASH_SIZE],
                   const uint8_t writer[HASH_SIZE], uint64_t seq, const uint8_t hash[HASH_SIZE])
{
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, seq);
    int rc = idx_has_one(v->hot, v->s->hot_db.idx, k, hash);
    if (rc != MDB_NOTFOUND)
        return rc;
    return idx_has_one(v->cold, v->s->cold_db.idx, k, hash);
}

/* The prev field of a stored record, read straight from its header. */
static int stored_prev(const struct view *v, const uint8_t hash[HASH_SIZE], uint8_t prev[HASH_SIZE])
{
    MDB_val val;
    int rc = view_rec(v, hash, &val);
    if (rc)
        return rc;
    if (val.mv_size < PSL_RECORD_HEADER_SIZE)
        return MDB_CORRUPTED;
    memcpy(prev, (const uint8_t *)val.mv_data + RECORD_OFFSET_PREV, HASH_SIZE);
    return 0;
}

/* ---- applying records (the chain facts) ---- */

/* Applies one pending record to the view (writing into its scratch transaction); sets
 * p->result and counts into delta (merged into the stats only if the batch succeeds). Returns
 * an LMDB error only for failures that must abort the whole transaction. */
static int apply_one(const struct view *v, struct pending *p, struct store_stats *delta)
{
    const struct store *s = v->s;
    const struct record_header *h = &p->h;
    uint8_t k[IDX_KEY_SIZE];
    idx_key(k, h->capsule, h->writer, h->seq);
    MDB_val key = {IDX_KEY_SIZE, k}, val;

    /* Already stored? Then this is a resend: acknowledge it again. */
    int rc = view_rec(v, p->hash, &val);
    if (rc == 0) {
        p->result = PSL_OK;
        delta->duplicates++;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;

    /* A different record already holds (writer, seq): a fork. Keep it as evidence. */
    uint8_t existing[HASH_SIZE];
    rc = idx_first(v, h->capsule, h->writer, h->seq, existing);
    bool fork = rc == 0;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* The prev link must match a stored previous record, when there is one (after a fork
     * there are several, and a record may extend any of them). */
    if (!fork && h->seq > 1) {
        uint8_t before[HASH_SIZE];
        rc = idx_first(v, h->capsule, h->writer, h->seq - 1, before);
        if (rc == 0) {
            rc = idx_has(v, h->capsule, h->writer, h->seq - 1, h->prev);
            if (rc == MDB_NOTFOUND) {
                p->result = PSL_ERR_BAD_PREV;
                delta->bad_prev++;
                return 0;
            }
        }
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    MDB_val rkey = {HASH_SIZE, p->hash}, rval = {p->size, p->data};
    if ((rc = mdb_put(v->hot, s->hot_db.rec, &rkey, &rval, MDB_NOOVERWRITE)))
        return rc;
    MDB_val hval = {HASH_SIZE, p->hash};
    if ((rc = mdb_put(v->hot, s->hot_db.idx, &key, &hval, MDB_NODUPDATA)) && rc != MDB_KEYEXIST)
        return rc;

    /* Update the writer's head: extend the contiguous prefix as far as stored records allow. */
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, h->capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, h->writer, HASH_SIZE);
    struct store_head head;
    memset(&head, 0, sizeof head);
    rc = view_head(v, hk, &val);
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
        rc = idx_first(v, h->capsule, h->writer, head.contiguous + 1, next);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc)
            return rc;
        if ((rc = stored_prev(v, next, prev)))
            return rc;
        static const uint8_t zero[HASH_SIZE];
        if (memcmp(prev, head.contiguous ? head.hash : zero, HASH_SIZE) != 0)
            break;
        head.contiguous++;
        memcpy(head.hash, next, HASH_SIZE);
    }
    uint8_t hv[HEAD_VAL_SIZE];
    head_encode_val(hv, &head);
    MDB_val hkey = {HEAD_KEY_SIZE, hk}, hval2 = {HEAD_VAL_SIZE, hv};
    if ((rc = mdb_put(v->hot, s->hot_db.head, &hkey, &hval2, 0)))
        return rc;
    p->result = fork ? PSL_ERR_FORK : PSL_OK;
    if (!fork) {
        delta->appends++;
        delta->bytes += p->size;
    }
    return 0;
}

/* Applies a batch to the scratch environment in one transaction (no sync: MDB_NOSYNC). */
static psl_err apply_batch(struct store *s, struct pending *batch, struct store_stats *delta)
{
    struct view v = {.s = s};
    int rc = mdb_txn_begin(s->hot, NULL, 0, &v.hot);
    if (rc)
        return map_mdb(rc);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &v.cold))) {
        mdb_txn_abort(v.hot);
        return map_mdb(rc);
    }
    for (struct pending *p = batch; p; p = p->next) {
        if ((rc = apply_one(&v, p, delta))) {
            mdb_txn_abort(v.cold);
            mdb_txn_abort(v.hot);
            return map_mdb(rc);
        }
    }
    mdb_txn_abort(v.cold);
    return map_mdb(mdb_txn_commit(v.hot));
}

/* ---- the write-ahead log ---- */

static psl_err errno_err(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? PSL_ERR_STORAGE_FULL
           : e == ENOMEM                ? PSL_ERR_NOMEM
                                        : PSL_ERR_IO;
}

static psl_err pwrite_all(int fd, const void *buf, size_t size, uint64_t off)
{
    const uint8_t *p = buf;
    while (size) {
        ssize_t n = pwrite(fd, p, size, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno_err(n < 0 ? errno : ENOSPC);
        p += n;
        size -= (size_t)n;
        off += (uint64_t)n;
    }
    return PSL_OK;
}

/* Reads exactly size bytes at off: PSL_ERR_TRUNCATED on a short file, PSL_ERR_IO on an error. */
static psl_err pread_all(int fd, void *buf, size_t size, uint64_t off)
{
    uint8_t *p = buf;
    while (size) {
        ssize_t n = pread(fd, p, size, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PSL_ERR_IO;
        if (n == 0)
            return PSL_ERR_TRUNCATED;
        p += n;
        size -= (size_t)n;
        off += (uint64_t)n;
    }
    return PSL_OK;
}

static psl_err wal_sync(int fd)
{
    while (fdatasync(fd) != 0) {
        if (errno != EINTR)
            return errno_err(errno);
    }
    return PSL_OK;
}

static psl_err wal_fill(struct store *s, uint64_t target)
{
    static const uint8_t zeros[65536];
    for (uint64_t off = s->wal_cap; off < target;) {
        size_t n = target - off < sizeof zeros ? (size_t)(target - off) : sizeof zeros;
        psl_err err = pwrite_all(s->wal_fd, zeros, n, off);
        if (err) {
            if (ftruncate(s->wal_fd, (off_t)s->wal_cap) != 0)
                LOG_WARN("store", "msg=\"cannot cut the WAL back after a failed growth\"");
            return err;
        }
        off += n;
    }
    s->wal_cap = target;
    return PSL_OK;
}

/* Zero-fills the WAL up to at least end, in WAL_GROW_BYTES steps (or just enough when space is
 * short), so that later overwrites change no file metadata. Not synced here: the batch's
 * fdatasync covers it. On failure the file is cut back to its old size (best effort). */
static psl_err wal_grow(struct store *s, uint64_t end)
{
    psl_err err = wal_fill(s, (end + WAL_GROW_BYTES - 1) / WAL_GROW_BYTES * WAL_GROW_BYTES);
    if (err == PSL_ERR_STORAGE_FULL)
        err = wal_fill(s, (end + 4095u) / 4096u * 4096u);
    return err;
}

static void frame_check(uint8_t out[HASH_SIZE], const uint8_t fh[16], const uint8_t *rec,
                        size_t size)
{
    struct hash_part parts[2] = {{fh, 16}, {rec, size}};
    hash_sha256_parts(out, parts, 2);
}

/* Writes the header of a new WAL generation (fresh salt). Not synced: see the top comment. */
static psl_err wal_write_header(struct store *s, uint64_t salt, uint64_t generation)
{
    if (s->wal_cap < WAL_DATA_OFFSET) { /* a new file: its header block */
        psl_err err = wal_fill(s, WAL_DATA_OFFSET);
        if (err)
            return err;
    }
    uint8_t hdr[WAL_HEADER_SIZE];
    memcpy(hdr, WAL_MAGIC, 8);
    put_le64(hdr + 8, salt);
    put_le64(hdr + 16, generation);
    hash_sha256(hdr + 24, hdr, 24);
    psl_err err = pwrite_all(s->wal_fd, hdr, sizeof hdr, 0);
    if (err)
        return err;
    s->wal_salt = salt;
    s->wal_generation = generation;
    s->wal_pos = WAL_DATA_OFFSET;
    s->wal_first_ns = 0;
    return PSL_OK;
}

/* Makes a frame header at pos unreadable (best effort, not synced): frames of a batch that was
 * written but then failed are never replayed unless a crash loses this write. */
static void wal_invalidate(struct store *s, uint64_t pos)
{
    static const uint8_t zeros[FRAME_HEADER_SIZE];
    if (pos + FRAME_HEADER_SIZE <= s->wal_cap &&
        pwrite_all(s->wal_fd, zeros, sizeof zeros, pos) != PSL_OK)
        LOG_WARN("store", "msg=\"cannot invalidate a failed batch in the WAL\"");
}

/* Writes the batch's records as frames at the WAL position and syncs them: one fdatasync. */
static psl_err wal_append(struct store *s, const struct pending *batch)
{
    size_t total = 0;
    for (const struct pending *p = batch; p; p = p->next)
        total += FRAME_HEADER_SIZE + p->size;
    if (total > s->wbuf_cap) {
        uint8_t *nb = realloc(s->wbuf, total);
        if (!nb)
            return PSL_ERR_NOMEM;
        s->wbuf = nb;
        s->wbuf_cap = total;
    }
    uint8_t *w = s->wbuf;
    for (const struct pending *p = batch; p; p = p->next) {
        PSL_ASSERT(p->size <= PSL_RECORD_SIZE_MAX);
        put_le32(w, FRAME_MAGIC);
        put_le32(w + 4, (uint32_t)p->size);
        put_le64(w + 8, s->wal_salt);
        frame_check(w + 16, w, p->data, p->size);
        memcpy(w + FRAME_HEADER_SIZE, p->data, p->size);
        w += FRAME_HEADER_SIZE + p->size;
    }
    psl_err err = PSL_OK;
    if (s->wal_pos + total > s->wal_cap)
        err = wal_grow(s, s->wal_pos + total);
    if (!err)
        err = pwrite_all(s->wal_fd, s->wbuf, total, s->wal_pos);
    if (!err)
        err = wal_sync(s->wal_fd);
    if (err) {
        wal_invalidate(s, s->wal_pos);
        return err;
    }
    if (s->wal_pos == WAL_DATA_OFFSET)
        s->wal_first_ns = clock_mono_ns();
    s->wal_pos += total;
    if (s->wbuf_cap > CKPT_WAL_BYTES) { /* do not keep a huge buffer for one odd batch */
        free(s->wbuf);
        s->wbuf = NULL;
        s->wbuf_cap = 0;
    }
    return PSL_OK;
}

/* ---- checkpoints ---- */

/* Copies every entry of one scratch database into the main one. */
static int copy_db(MDB_txn *from, MDB_dbi from_dbi, MDB_txn *to, MDB_dbi to_dbi, unsigned put_flags)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(from, from_dbi, &cur);
    if (rc)
        return rc;
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        int prc = mdb_put(to, to_dbi, &key, &val, put_flags);
        if (prc && prc != MDB_KEYEXIST) {
            rc = prc;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Moves the scratch environment into the main one (synced commit), empties it and starts a new
 * WAL generation. On failure nothing acknowledged is lost: see the top comment. */
static psl_err checkpoint(struct store *s)
{
    if (s->wal_pos == WAL_DATA_OFFSET)
        return PSL_OK;
    uint64_t t0 = clock_mono_ns();
    MDB_txn *from, *to;
    int rc = mdb_txn_begin(s->hot, NULL, MDB_RDONLY, &from);
    if (rc)
        return map_mdb(rc);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &to))) {
        mdb_txn_abort(from);
        return map_mdb(rc);
    }
    if ((rc = copy_db(from, s->hot_db.rec, to, s->cold_db.rec, MDB_NOOVERWRITE)) ||
        (rc = copy_db(from, s->hot_db.idx, to, s->cold_db.idx, MDB_NODUPDATA)) ||
        (rc = copy_db(from, s->hot_db.head, to, s->cold_db.head, 0))) {
        mdb_txn_abort(to);
        mdb_txn_abort(from);
        return map_mdb(rc);
    }
    mdb_txn_abort(from);
    if ((rc = mdb_txn_commit(to))) /* LMDB's own fsyncs: from here the main env has it all */
        return map_mdb(rc);

    /* Empty the scratch environment. Should this fail, it merely keeps copies of records the
     * main environment holds too; the next checkpoint copies them again (no-ops). */
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->hot, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_drop(txn, s->hot_db.rec, 0)) || (rc = mdb_drop(txn, s->hot_db.idx, 0)) ||
            (rc = mdb_drop(txn, s->hot_db.head, 0)))
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    if (rc)
        LOG_WARN("store", "msg=\"cannot empty the scratch database\" error=\"%s\"",
                 mdb_strerror(rc));

    psl_err err = wal_write_header(s, rng_u64(), s->wal_generation + 1);
    if (err) {
        LOG_WARN("store", "msg=\"cannot reset the WAL: it keeps growing\" error=\"%s\"",
                 psl_strerror(err));
        return PSL_OK; /* the checkpoint itself succeeded */
    }
    if (s->wal_cap > WAL_KEEP_BYTES && ftruncate(s->wal_fd, WAL_KEEP_BYTES) == 0)
        s->wal_cap = WAL_KEEP_BYTES;
    uint64_t dt = clock_mono_ns() - t0;
    pthread_mutex_lock(&s->mu);
    s->stats.checkpoints++;
    s->stats.wal_bytes = 0;
    if (dt > s->stats.checkpoint_ns_max)
        s->stats.checkpoint_ns_max = dt;
    pthread_mutex_unlock(&s->mu);
    return PSL_OK;
}

/* Unused bytes at the end of the main map (pages on LMDB's free list not counted). */
static uint64_t cold_room(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st))
        return 0;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    return info.me_mapsize > used ? info.me_mapsize - used : 0;
}

/* Marks the store full (or not) after a failure or success; logs the transitions. A failed
 * batch restarts the interval in which appends are refused at once; a failed background
 * checkpoint retry does not (else appends would never get their own retry). */
static void note_result(struct store *s, psl_err err, bool from_batch)
{
    pthread_mutex_lock(&s->mu);
    if (err == PSL_ERR_STORAGE_FULL) {
        if (!s->full)
            LOG_ERROR("store", "msg=\"storage full: refusing appends until space returns\"");
        if (!s->full || from_batch)
            s->full_since_ns = clock_mono_ns();
        s->full = true;
    } else if (!err && s->full) {
        LOG_INFO("store", "msg=\"storage has space again: accepting appends\"");
        s->full = false;
    }
    s->stats.full = s->full;
    pthread_mutex_unlock(&s->mu);
}

static psl_err checkpoint_noted(struct store *s, bool from_batch)
{
    psl_err err = checkpoint(s);
    if (err) {
        s->ckpt_retry_ns = clock_mono_ns() + FULL_RETRY_NS;
        LOG_WARN("store", "msg=\"checkpoint failed: kept in the WAL, retried later\" error=\"%s\"",
                 psl_strerror(err));
        note_result(s, err, from_batch);
    } else {
        /* A WAL that could not be reset (its header write failed) is still due: retry later,
         * not in a loop. */
        s->ckpt_retry_ns = s->wal_pos != WAL_DATA_OFFSET ? clock_mono_ns() + FULL_RETRY_NS : 0;
        note_result(s, PSL_OK, from_batch);
    }
    return err;
}

/* ---- the committer ---- */

static psl_err commit_batch(struct store *s, struct pending *batch, size_t batch_bytes,
                            struct store_stats *delta)
{
    uint64_t wal_bytes = s->wal_pos - WAL_DATA_OFFSET;
    if (wal_bytes) {
        /* Checkpoint first when this batch might not fit in the main map later, or would make
         * the WAL outgrow its budget; a failure fails this batch, before it is written. */
        uint64_t need = 2 * (wal_bytes + batch_bytes) + (64u << 10);
        if (wal_bytes + batch_bytes > 2u * CKPT_WAL_BYTES || cold_room(s) < need) {
            psl_err err = checkpoint_noted(s, true);
            if (err)
                return err;
        }
    }
    uint64_t start = s->wal_pos;
    psl_err err = wal_append(s, batch);
    if (err)
        return err;
    err = apply_batch(s, batch, delta);
    if (err) {
        /* Synced but not applied: unacknowledged; rewind so the frames are not replayed. */
        s->wal_pos = start;
        wal_invalidate(s, start);
        if (start == WAL_DATA_OFFSET)
            s->wal_first_ns = 0;
    }
    return err;
}

/* Whether the idle committer should checkpoint now; *wait_ns says how long until it should. */
static bool checkpoint_due(const struct store *s, uint64_t now, uint64_t *wait_ns)
{
    *wait_ns = 0;
    if (s->wal_pos == WAL_DATA_OFFSET)
        return false;
    uint64_t due = s->wal_first_ns + CKPT_INTERVAL_NS;
    if (s->wal_pos - WAL_DATA_OFFSET >= CKPT_WAL_BYTES) /* grown by inline batches */
        due = now;
    if (s->ckpt_retry_ns > due)
        due = s->ckpt_retry_ns;
    if (now >= due)
        return true;
    *wait_ns = due - now;
    return false;
}

/* Commits everything queued as one batch and runs its callbacks. Called with mu held and a
 * batch queued; returns with mu held, the batch done, and the WAL's size after it in *wal_out
 * (0 when it failed). Whoever calls it is the only committer until it returns (committing).
 * inline_commit: called by store_append on the appending thread (counted apart). */
static void run_batch(struct store *s, uint64_t *wal_out, bool inline_commit)
{
    struct pending *batch = s->head;
    size_t batch_bytes = s->pending_bytes;
    s->head = s->tail = NULL;
    s->pending_bytes = 0;
    s->committing = true;
    pthread_mutex_unlock(&s->mu);

    uint64_t t0 = clock_mono_ns();
    struct store_stats delta;
    memset(&delta, 0, sizeof delta);
    pthread_mutex_lock(&s->write_mu);
    psl_err err = commit_batch(s, batch, batch_bytes, &delta);
    uint64_t wal_bytes = s->wal_pos - WAL_DATA_OFFSET;
    /* Published under write_mu, as checkpoints do: a checkpoint between here and the stats
     * below must not be undone by this batch's older size (the idle committer reads it). */
    pthread_mutex_lock(&s->mu);
    s->stats.wal_bytes = wal_bytes;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->write_mu);
    uint64_t dt = clock_mono_ns() - t0;

    note_result(s, err, true);
    pthread_mutex_lock(&s->mu);
    if (err) {
        s->stats.failed_batches++;
    } else {
        s->stats.appends += delta.appends;
        s->stats.duplicates += delta.duplicates;
        s->stats.bytes += delta.bytes;
        s->stats.forks += delta.forks;
        s->stats.bad_prev += delta.bad_prev;
        s->stats.commits++;
        if (inline_commit)
            s->stats.inline_commits++;
        s->stats.commit_ns_total += dt;
        if (dt > s->stats.commit_ns_max)
            s->stats.commit_ns_max = dt;
        unsigned b = 0;
        for (uint64_t us = dt / 1000; us > 1 && b < 31; us >>= 1)
            b++;
        s->stats.commit_hist[b]++;
        s->commit_avg_ns = s->commit_avg_ns ? s->commit_avg_ns - s->commit_avg_ns / 8 + dt / 8 : dt;
    }
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
    s->committing = false;
    if (s->committer_waits) /* only then: an idle committer is not woken for nothing */
        pthread_cond_broadcast(&s->cv);
    *wal_out = err ? 0 : wal_bytes;
}

static void *committer_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->committing) { /* an appending thread commits inline: after it, look again */
            s->committer_waits = true;
            pthread_cond_wait(&s->cv, &s->mu);
            s->committer_waits = false;
            continue;
        }
        if (!s->head && !s->stopping) {
            /* The WAL's position and timers belong to whoever holds write_mu (store_collect
             * may checkpoint meanwhile): look at them, and checkpoint, under it. */
            uint64_t wait_ns;
            pthread_mutex_unlock(&s->mu);
            pthread_mutex_lock(&s->write_mu);
            bool due = checkpoint_due(s, clock_mono_ns(), &wait_ns);
            if (due)
                (void)checkpoint_noted(s, false);
            pthread_mutex_unlock(&s->write_mu);
            pthread_mutex_lock(&s->mu);
            if (due || s->head || s->stopping || s->committing) {
                continue;
            } else if (wait_ns) {
                struct timespec ts;
                clock_deadline(&ts, wait_ns);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            } else if (s->stats.wal_bytes) {
                /* An inline batch wrote the WAL meanwhile: look again (and arm the timer)
                 * shortly; a short wait rather than a loop, whatever the stat says. */
                struct timespec ts;
                clock_deadline(&ts, 1000000u);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            } else {
                /* Nothing in the WAL: sleep until an append, or until an inline batch starts
                 * a WAL generation (it wakes us then, so that its timer runs). */
                s->committer_untimed = true;
                pthread_cond_wait(&s->cv, &s->mu);
                s->committer_untimed = false;
            }
            continue;
        }
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
        if (!s->head || s->committing)
            continue;
        uint64_t wal_bytes;
        run_batch(s, &wal_bytes, false);
        if (wal_bytes >= CKPT_WAL_BYTES) {
            pthread_mutex_unlock(&s->mu);
            pthread_mutex_lock(&s->write_mu);
            uint64_t wait_ns;
            if (checkpoint_due(s, clock_mono_ns(), &wait_ns))
                (void)checkpoint_noted(s, false);
            pthread_mutex_unlock(&s->write_mu);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* Closing: everything queued is committed; checkpoint so the next open replays nothing.
     * If this fails (full), the WAL keeps the records for the next open. */
    pthread_mutex_lock(&s->write_mu);
    (void)checkpoint_noted(s, false);
    pthread_mutex_unlock(&s->write_mu);
    return NULL;
}

/* ---- open: replay ---- */

/* Replays the WAL's current generation into the scratch environment through the same path
 * appends take, so heads and chain facts come out as they did. Stops at the first invalid
 * frame; every size is checked against PSL_RECORD_SIZE_MAX and the file before anything is
 * allocated or read, so garbage costs at most one pass over the file. Sets the WAL position to
 * the end of the valid frames. */
static psl_err wal_replay(struct store *s, uint64_t file_size, uint64_t *replayed)
{
    *replayed = 0;
    uint64_t pos = WAL_DATA_OFFSET;
    struct pending *batch = NULL, **tailp = &batch;
    size_t batch_bytes = 0;
    psl_err err = PSL_OK;
    for (;;) {
        uint8_t fh[FRAME_HEADER_SIZE];
        if (pos > file_size || file_size - pos < FRAME_HEADER_SIZE)
            break;
        if ((err = pread_all(s->wal_fd, fh, sizeof fh, pos)))
            break;
        uint32_t size = get_le32(fh + 4);
        if (get_le32(fh) != FRAME_MAGIC || get_le64(fh + 8) != s->wal_salt ||
            size < PSL_RECORD_HEADER_SIZE + PSL_RECORD_SIG_SIZE || size > PSL_RECORD_SIZE_MAX ||
            size > file_size - pos - FRAME_HEADER_SIZE)
            break;
        struct pending *p = malloc(sizeof *p + size);
        if (!p) {
            err = PSL_ERR_NOMEM;
            break;
        }
        if ((err = pread_all(s->wal_fd, p->data, size, pos + FRAME_HEADER_SIZE))) {
            free(p);
            break;
        }
        uint8_t check[HASH_SIZE];
        frame_check(check, fh, p->data, size);
        struct record_view v;
        if (memcmp(check, fh + 16, HASH_SIZE) != 0 || record_parse(&v, p->data, size) != PSL_OK) {
            free(p); /* a torn or stale frame: the end of this generation */
            break;
        }
        memset(p, 0, sizeof *p);
        p->h = v.h;
        memcpy(p->hash, v.hash, HASH_SIZE);
        p->size = size;
        *tailp = p;
        tailp = &p->next;
        batch_bytes += size;
        pos += FRAME_HEADER_SIZE + size;
        (*replayed)++;
        if (batch_bytes >= (8u << 20)) {
            struct store_stats delta = {0}; /* replayed records are not counted */
            err = apply_batch(s, batch, &delta);
            while (batch) {
                struct pending *q = batch;
                batch = q->next;
                free(q);
            }
            tailp = &batch;
            batch_bytes = 0;
            if (err)
                break;
        }
    }
    if (batch) {
        struct store_stats delta = {0};
        psl_err e2 = apply_batch(s, batch, &delta);
        if (!err)
            err = e2;
        while (batch) {
            struct pending *q = batch;
            batch = q->next;
            free(q);
        }
    }
    s->wal_pos = pos;
    if (pos > WAL_DATA_OFFSET)
        s->wal_first_ns = clock_mono_ns();
    return err;
}

/* Opens (or creates) the WAL, takes its lock (one process per store directory) and reads its
 * header; an unreadable header means there is nothing to replay (see the top comment). */
static psl_err wal_open(struct store *s, const char *dir, uint64_t *file_size, bool *has_header)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" WAL_NAME, dir) >= sizeof path)
        return PSL_ERR_INVALID_ARG;
    s->wal_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->wal_fd < 0)
        return errno_err(errno);
    if (flock(s->wal_fd, LOCK_EX | LOCK_NB) != 0) {
        LOG_ERROR("store", "msg=\"the store directory is in use by another process\" dir=%s", dir);
        return PSL_ERR_IO;
    }
    struct stat st;
    if (fstat(s->wal_fd, &st) != 0)
        return errno_err(errno);
    *file_size = (uint64_t)st.st_size;
    s->wal_cap = *file_size;
    *has_header = false;
    uint8_t hdr[WAL_HEADER_SIZE], check[HASH_SIZE];
    if (*file_size >= WAL_DATA_OFFSET && pread_all(s->wal_fd, hdr, sizeof hdr, 0) == PSL_OK &&
        memcmp(hdr, WAL_MAGIC, 8) == 0) {
        hash_sha256(check, hdr, 24);
        if (memcmp(check, hdr + 24, HASH_SIZE) == 0) {
            s->wal_salt = get_le64(hdr + 8);
            s->wal_generation = get_le64(hdr + 16);
            *has_header = true;
        }
    }
    return PSL_OK;
}

static int open_dbs(MDB_env *env, struct dbs *d, MDB_dbi *meta, MDB_dbi *gc)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((meta && (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, meta))) ||
        (gc && (rc = mdb_dbi_open(txn, "gc", MDB_CREATE, gc))) ||
        (rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &d->rec)) ||
        (rc = mdb_dbi_open(txn, "idx", MDB_CREATE | MDB_DUPSORT, &d->idx)) ||
        (rc = mdb_dbi_open(txn, "head", MDB_CREATE, &d->head))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* Creates the scratch environment afresh: whatever a crash left of it is never trusted. */
static int hot_open(struct store *s, const char *dir, size_t map_size)
{
    char path[4096], lock[4096 + 8];
    if ((size_t)snprintf(path, sizeof path, "%s/" HOT_NAME, dir) >= sizeof path)
        return EINVAL;
    snprintf(lock, sizeof lock, "%s-lock", path);
    if ((unlink(path) != 0 && errno != ENOENT) || (unlink(lock) != 0 && errno != ENOENT))
        return errno;
    int rc;
    if ((rc = mdb_env_create(&s->hot)))
        return rc;
    if ((rc = mdb_env_set_maxdbs(s->hot, 4)) ||
        (rc = mdb_env_set_mapsize(s->hot, map_size > HOT_MAP_MIN ? map_size : HOT_MAP_MIN)) ||
        (rc = mdb_env_set_maxreaders(s->hot, 256)) ||
        (rc = mdb_env_open(s->hot, path, MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC, 0600)) ||
        (rc = open_dbs(s->hot, &s->hot_db, NULL, NULL))) {
        mdb_env_close(s->hot);
        s->hot = NULL;
    }
    return rc;
}

psl_err store_open(struct store **out, const struct store_config *cfg)
{
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST)
        return PSL_ERR_IO;
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    s->wal_fd = -1;
    s->wal_pos = WAL_DATA_OFFSET;
    s->window_us = cfg->commit_window_us;
    s->inline_idle = cfg->inline_when_idle;
    s->batch_bytes_max = cfg->commit_bytes_max ? cfg->commit_bytes_max : (8u << 20);
    s->batch_done = cfg->batch_done;
    s->batch_ctx = cfg->batch_ctx;
    size_t map_size = cfg->map_size_bytes ? cfg->map_size_bytes : (1ull << 30);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    uint64_t wal_size = 0, replayed = 0;
    bool has_header = false;
    psl_err err = wal_open(s, cfg->dir, &wal_size, &has_header);
    if (err)
        goto out_free;
    int rc;
    if ((rc = mdb_env_create(&s->env)))
        goto out_mdb;
    if ((rc = mdb_env_set_maxdbs(s->env, 8)) || (rc = mdb_env_set_mapsize(s->env, map_size)) ||
        (rc = mdb_env_set_maxreaders(s->env, 256)) ||
        (rc = mdb_env_open(s->env, cfg->dir, MDB_NOTLS, 0600)) ||
        (rc = open_dbs(s->env, &s->cold_db, &s->dbi_meta, &s->dbi_gc))) {
        mdb_env_close(s->env);
        s->env = NULL;
        goto out_mdb;
    }
    if ((rc = hot_open(s, cfg->dir, map_size)))
        goto out_mdb;

    /* Replay into the scratch environment. If that fails (no space for it, an I/O error), the
     * open fails: the WAL must not be reset or overwritten while it holds acknowledged
     * records that are nowhere else. */
    if (has_header && (err = wal_replay(s, wal_size, &replayed)))
        goto out_log;
    /* Frames a killed process wrote but never synced may sit in the page cache only: make them
     * durable before anything replayed becomes readable (a read of a record can lead to an ACK). */
    if (replayed && (err = wal_sync(s->wal_fd)))
        goto out_log;
    if (replayed)
        LOG_INFO("store", "msg=\"replayed the write-ahead log\" records=%llu",
                 (unsigned long long)replayed);
    /* Move what was replayed into the main environment, then start a fresh generation (so no
     * frame of an older run is ever mistaken for a new one). A full main map is not fatal: the
     * store opens full (reads work), appends after the replayed frames, and retries the
     * checkpoint like any full store. */
    err = checkpoint(s);
    if (!err && s->wal_pos == WAL_DATA_OFFSET &&
        ((err = wal_write_header(s, rng_u64(), s->wal_generation + 1)) ||
         (err = wal_sync(s->wal_fd))))
        goto out_log;
    if (err) {
        if (err != PSL_ERR_STORAGE_FULL)
            goto out_log;
        LOG_ERROR("store", "msg=\"storage full: refusing appends until space returns\"");
        s->full = true;
        s->full_since_ns = clock_mono_ns();
        s->ckpt_retry_ns = s->full_since_ns + FULL_RETRY_NS;
    }
    memset(&s->stats, 0, sizeof s->stats); /* replayed records are not this run's appends */
    s->stats.full = s->full;
    s->stats.wal_replayed = replayed;
    s->stats.wal_bytes = s->wal_pos - WAL_DATA_OFFSET;
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        err = PSL_ERR_NOMEM;
        goto out_envs;
    }
    *out = s;
    return PSL_OK;
out_mdb:
    err = map_mdb(rc);
    LOG_ERROR("store", "msg=\"cannot open the database\" dir=%s error=\"%s\"", cfg->dir,
              mdb_strerror(rc));
    goto out_envs;
out_log:
    LOG_ERROR("store", "msg=\"cannot open the write-ahead log\" dir=%s error=\"%s\"", cfg->dir,
              psl_strerror(err));
out_envs:
    if (s->hot)
        mdb_env_close(s->hot);
    if (s->env)
        mdb_env_close(s->env);
out_free:
    if (s->wal_fd >= 0)
        close(s->wal_fd); /* releases the lock */
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return err;
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
    mdb_env_close(s->hot);
    mdb_env_close(s->env);
    close(s->wal_fd);
    free(s->wbuf);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- metadata (main environment only, synced) ---- */

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
    if (v->raw_size > PSL_RECORD_SIZE_MAX) /* record_parse enforces it; the WAL relies on it */
        return PSL_ERR_TOO_LARGE;
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
    uint64_t now = clock_mono_ns();
    /* Idle (nothing queued or committing, no window to gather in, and no append for twice
     * the usual commit time, at least STORE_QUIET_NS): commit here rather than wake the
     * committer, one thread handoff less on the latency of a lone record. Records that come
     * closer together than commits take queue for the committer, which batches them while
     * the appending threads go on verifying the next ones. */
    uint64_t quiet = 2 * s->commit_avg_ns > STORE_QUIET_NS ? 2 * s->commit_avg_ns : STORE_QUIET_NS;
    bool here = s->inline_idle && !s->window_us && !s->head && !s->committing &&
                now - s->last_append_ns >= quiet;
    s->last_append_ns = now;
    if (!s->head)
        s->first_ns = now;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    s->pending_bytes += p->size;
    if (here) {
        uint64_t wal_bytes;
        run_batch(s, &wal_bytes, true);
        /* The committer checkpoints: at once past the WAL budget, else on its timer, which it
         * arms when it learns that the WAL is no longer empty. */
        if (wal_bytes >= CKPT_WAL_BYTES || (wal_bytes && s->committer_untimed))
            pthread_cond_signal(&s->cv);
    } else {
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return PSL_OK;
}

/* ---- reads: the union of both environments ---- */

psl_err store_get(struct store *s, const uint8_t hash[HASH_SIZE], store_record_fn fn, void *ctx)
{
    struct view v;
    int rc = view_begin(&v, s);
    if (rc)
        return map_mdb(rc);
    MDB_val val;
    rc = view_rec(&v, hash, &val);
    if (rc == 0)
        fn(ctx, val.mv_data, val.mv_size);
    view_end(&v);
    return map_mdb(rc);
}

bool store_has(struct store *s, const uint8_t hash[HASH_SIZE])
{
    struct view v;
    if (view_begin(&v, s))
        return false;
    MDB_val val;
    bool found = view_rec(&v, hash, &val) == 0;
    view_end(&v);
    return found;
}

/* One side of a merged walk over an index database: the current (key, value), or done. */
struct side {
    MDB_cursor *cur;
    MDB_val key, val;
    bool live;
};

/* Positions a side at the first entry >= key0 (first call) or the next entry; an entry whose
 * key is malformed or past the walk's end (cmp_size bytes compared with end) ends the side. */
static int side_step(struct side *sd, MDB_cursor_op op, const uint8_t *end, size_t key_size,
                     size_t cmp_size, size_t val_size)
{
    int rc = mdb_cursor_get(sd->cur, &sd->key, &sd->val, op);
    sd->live = false;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (sd->key.mv_size != key_size || sd->val.mv_size != val_size ||
        memcmp(sd->key.mv_data, end, cmp_size) > 0)
        return 0;
    sd->live = true;
    return 0;
}

/* Order of two live sides' entries: key, then value (LMDB's order for both databases). */
static int side_cmp(const struct side *a, const struct side *b, size_t key_size, size_t val_size)
{
    int c = memcmp(a->key.mv_data, b->key.mv_data, key_size);
    if (c == 0 && val_size)
        c = memcmp(a->val.mv_data, b->val.mv_data, val_size);
    return c;
}

/* Ends a two-sided walk (store_range, store_heads): closes the cursors and the view; a walk
 * that ran off the end (MDB_NOTFOUND) succeeded. */
static psl_err sides_end(struct view *v, struct side *hot, struct side *cold, int rc)
{
    if (hot->cur)
        mdb_cursor_close(hot->cur);
    if (cold->cur)
        mdb_cursor_close(cold->cur);
    view_end(v);
    return (rc == 0 || rc == MDB_NOTFOUND) ? PSL_OK : map_mdb(rc);
}

psl_err store_range(struct store *s, const uint8_t capsule[HASH_SIZE],
                    const uint8_t writer[HASH_SIZE], uint64_t from, uint64_t to, store_record_fn fn,
                    void *ctx)
{
    if (from == 0)
        from = 1;
    if (from > to)
        return PSL_OK;
    struct view v;
    int rc = view_begin(&v, s);
    if (rc)
        return map_mdb(rc);
    struct side hot = {0}, cold = {0};
    if ((rc = mdb_cursor_open(v.hot, s->hot_db.idx, &hot.cur)) ||
        (rc = mdb_cursor_open(v.cold, s->cold_db.idx, &cold.cur)))
        goto out;
    uint8_t k[IDX_KEY_SIZE], end[IDX_KEY_SIZE];
    idx_key(k, capsule, writer, from);
    idx_key(end, capsule, writer, to);
    hot.key = (MDB_val){IDX_KEY_SIZE, k};
    if ((rc = side_step(&hot, MDB_SET_RANGE, end, IDX_KEY_SIZE, IDX_KEY_SIZE, HASH_SIZE)))
        goto out;
    cold.key = (MDB_val){IDX_KEY_SIZE, k};
    if ((rc = side_step(&cold, MDB_SET_RANGE, end, IDX_KEY_SIZE, IDX_KEY_SIZE, HASH_SIZE)))
        goto out;
    while (hot.live || cold.live) {
        int c = !cold.live ? -1 : !hot.live ? 1 : side_cmp(&hot, &cold, IDX_KEY_SIZE, HASH_SIZE);
        const struct side *pick = c <= 0 ? &hot : &cold;
        MDB_val rv;
        if ((rc = view_rec(&v, pick->val.mv_data, &rv)))
            break; /* an index entry without its record: stop, as a broken walk */
        if (!fn(ctx, rv.mv_data, rv.mv_size))
            break;
        /* equal entries (mid-checkpoint copies) are one record: advance both */
        if (c <= 0 && (rc = side_step(&hot, MDB_NEXT, end, IDX_KEY_SIZE, IDX_KEY_SIZE, HASH_SIZE)))
            break;
        if (c >= 0 && (rc = side_step(&cold, MDB_NEXT, end, IDX_KEY_SIZE, IDX_KEY_SIZE, HASH_SIZE)))
            break;
    }
out:
    return sides_end(&v, &hot, &cold, rc);
}

psl_err store_heads(struct store *s, const uint8_t capsule[HASH_SIZE], store_head_fn fn, void *ctx)
{
    struct view v;
    int rc = view_begin(&v, s);
    if (rc)
        return map_mdb(rc);
    struct side hot = {0}, cold = {0};
    if ((rc = mdb_cursor_open(v.hot, s->hot_db.head, &hot.cur)) ||
        (rc = mdb_cursor_open(v.cold, s->cold_db.head, &cold.cur)))
        goto out;
    hot.key = (MDB_val){HASH_SIZE, (void *)capsule};
    if ((rc = side_step(&hot, MDB_SET_RANGE, capsule, HEAD_KEY_SIZE, HASH_SIZE, HEAD_VAL_SIZE)))
        goto out;
    cold.key = (MDB_val){HASH_SIZE, (void *)capsule};
    if ((rc = side_step(&cold, MDB_SET_RANGE, capsule, HEAD_KEY_SIZE, HASH_SIZE, HEAD_VAL_SIZE)))
        goto out;
    /* side_step ends a side past the capsule's prefix (keys compared on the capsule only) */
    while (hot.live || cold.live) {
        int c = !cold.live ? -1 : !hot.live ? 1 : side_cmp(&hot, &cold, HEAD_KEY_SIZE, 0);
        const struct side *pick = c <= 0 ? &hot : &cold; /* the scratch head is the newer */
        struct store_head h;
        memcpy(h.writer, (const uint8_t *)pick->key.mv_data + HASH_SIZE, HASH_SIZE);
        head_decode_val(&h, &pick->val);
        if (!fn(ctx, &h))
            break;
        if (c <= 0 &&
            (rc = side_step(&hot, MDB_NEXT, capsule, HEAD_KEY_SIZE, HASH_SIZE, HEAD_VAL_SIZE)))
            break;
        if (c >= 0 &&
            (rc = side_step(&cold, MDB_NEXT, capsule, HEAD_KEY_SIZE, HASH_SIZE, HEAD_VAL_SIZE)))
            break;
    }
out:
    return sides_end(&v, &hot, &cold, rc);
}

psl_err store_head_get(struct store *s, const uint8_t capsule[HASH_SIZE],
                       const uint8_t writer[HASH_SIZE], struct store_head *out)
{
    struct view v;
    int rc = view_begin(&v, s);
    if (rc)
        return map_mdb(rc);
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, writer, HASH_SIZE);
    MDB_val val;
    rc = view_head(&v, hk, &val);
    if (rc == 0) {
        if (val.mv_size != HEAD_VAL_SIZE) {
            rc = MDB_CORRUPTED;
        } else {
            memcpy(out->writer, writer, HASH_SIZE);
            head_decode_val(out, &val);
        }
    }
    view_end(&v);
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
                     const struct checkpoint *cp, const struct checkpoint *prev,
                     const struct checkpoint_head *head, struct store_collect_result *res)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->cold_db.idx, &cur);
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
        if ((rc = mdb_get(txn, s->cold_db.rec, &rk, &rv)) == MDB_NOTFOUND)
            continue; /* an index entry without its record: nothing to drop */
        if (rc)
            break;
        struct record_header h;
        if (record_header_decode(&h, rv.mv_data, rv.mv_size) != PSL_OK) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (!checkpoint_may_collect(cp, prev, &h, val.mv_data))
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
        if ((rc = mdb_del(txn, s->cold_db.idx, &ik, &iv)) == 0 &&
            (rc = mdb_del(txn, s->cold_db.rec, &rk, NULL)) == MDB_NOTFOUND)
            rc = 0;
    }
    res->records += n;
    free(v);
    return rc;
}

/* One writer of the cut: checks, drops, raises the horizon, rebases the head. */
static int gc_head(const struct view *vw, struct store *s, const uint8_t capsule[HASH_SIZE],
                   const struct checkpoint *cp, const struct checkpoint *prev_cp,
                   const struct checkpoint_head *ch, struct store_collect_result *res)
{
    MDB_txn *txn = vw->cold;
    uint8_t hk[HEAD_KEY_SIZE];
    memcpy(hk, capsule, HASH_SIZE);
    memcpy(hk + HASH_SIZE, ch->writer, HASH_SIZE);
    MDB_val hkey = {HEAD_KEY_SIZE, hk}, val;
    struct store_head head;
    memset(&head, 0, sizeof head);
    int rc = mdb_get(txn, s->cold_db.head, &hkey, &val);
    if (rc == 0 && val.mv_size == HEAD_VAL_SIZE)
        head_decode_val(&head, &val);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* A fork is evidence, and a different record at the head seq means the cut and this store
     * disagree about the chain: keep everything of that writer. */
    uint8_t at_head[HASH_SIZE];
    rc = idx_first(vw, capsule, ch->writer, ch->seq, at_head);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    bool other = rc == 0 && idx_has(vw, capsule, ch->writer, ch->seq, ch->hash) != 0;
    if (head.forked || other) {
        res->skipped++;
        return 0;
    }
    res->writers++;
    if ((rc = gc_writer(txn, s, capsule, cp, prev_cp, ch, res)))
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
        rc = idx_first(vw, capsule, ch->writer, head.contiguous + 1, next);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc || (rc = stored_prev(vw, next, prev)))
            return rc;
        if (memcmp(prev, head.hash, HASH_SIZE) != 0)
            break;
        head.contiguous++;
        memcpy(head.hash, next, HASH_SIZE);
    }
    uint8_t hv[HEAD_VAL_SIZE];
    head_encode_val(hv, &head);
    MDB_val hval = {HEAD_VAL_SIZE, hv};
    if ((rc = mdb_put(txn, s->cold_db.head, &hkey, &hval, 0)))
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
    /* Serialised with the committer (write_mu): first the scratch environment moves into the
     * main one (a synced checkpoint), so that every stored record, index entry and head is in
     * the main environment, where the collection runs as one synced transaction. The scratch
     * environment stays empty until write_mu is released. */
    pthread_mutex_lock(&s->write_mu);
    psl_err err = checkpoint_noted(s, false);
    if (err) {
        pthread_mutex_unlock(&s->write_mu);
        return err;
    }
    struct view vw = {.s = s};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->hot, NULL, MDB_RDONLY, &vw.hot);
    if (rc) {
        pthread_mutex_unlock(&s->write_mu);
        return map_mdb(rc);
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
        mdb_txn_abort(vw.hot);
        pthread_mutex_unlock(&s->write_mu);
        return map_mdb(rc);
    }
    vw.cold = txn;
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
    /* The previously applied checkpoint: its live blocks stay one notice longer. Copied out of
     * the map first: the deletions below may reuse the pages it lies in. */
    uint8_t *prev_rec = NULL;
    struct checkpoint prev_cp, *prev = NULL;
    rc = 0;
    if (g.generation) {
        MDB_val pk = {HASH_SIZE, g.record_hash}, pv;
        rc = mdb_get(txn, s->cold_db.rec, &pk, &pv);
        if (rc && rc != MDB_NOTFOUND)
            goto out_abort;
        struct record_view rv;
        if (rc == 0 && (prev_rec = malloc(pv.mv_size)) != NULL) {
            memcpy(prev_rec, pv.mv_data, pv.mv_size);
            if (record_parse(&rv, prev_rec, pv.mv_size) == PSL_OK &&
                rv.h.type == REC_CHECKPOINT &&
                checkpoint_decode(&prev_cp, rv.payload, rv.h.payload_size) == PSL_OK)
                prev = &prev_cp;
        } else if (rc == 0) {
            rc = ENOMEM;
            goto out_abort;
        }
        rc = 0;
    }
    for (size_t i = 0; i < cp->head_count && rc == 0; i++) {
        struct checkpoint_head ch;
        checkpoint_head_at(cp, i, &ch);
        rc = gc_head(&vw, s, capsule, cp, prev, &ch, &res);
    }
    free(prev_rec);
    if (rc)
        goto out_abort;
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
    rc = mdb_txn_commit(txn); /* durable (fsync) before anyone is told */
    mdb_txn_abort(vw.hot);
    pthread_mutex_unlock(&s->write_mu);
    if (rc)
        return map_mdb(rc);
    res.outcome = STORE_COLLECT_APPLIED;
    *out = res;
    return PSL_OK;
out_done:
    mdb_txn_abort(txn);
    mdb_txn_abort(vw.hot);
    pthread_mutex_unlock(&s->write_mu);
    *out = res;
    return PSL_OK;
out_abort:
    mdb_txn_abort(txn);
    mdb_txn_abort(vw.hot);
    pthread_mutex_unlock(&s->write_mu);
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
