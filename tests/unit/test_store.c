/* test_store.c: the LMDB storage engine of a capsule server (DESIGN §9), with real sealed
 * records: reads after appends, group commit, duplicates, out-of-order arrival and gaps, bad
 * prev links, forks kept as evidence, metadata, reopening, durability of every acknowledged
 * record across kill -9 of the process, a full map (refusal, retry, recovery), and the
 * write-ahead log (replay after a crash, a torn tail, garbage, checkpoints). Every test
 * works in its own mkdtemp directory under /tmp, removed afterwards. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capsule_fixture.h"

#include "base/bytes.h"
#include "base/clock.h"
#include "base/rng.h"
#include "store/store.h"

/* ---- helpers ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

/* A writer's chain of sealed records, seq 1..n: its CERT record first (a writer's first record
 * is always its certificate), then DATA records with real operations (payload_size 0) or
 * LSM_BLOCK records of payload_size (encrypted) bytes. A recset made for a writer that already
 * has records continues its chain. */
struct recset {
    size_t n;
    uint8_t **data;
    size_t *size;
    uint8_t (*hash)[HASH_SIZE];
};

static void recset_make(struct recset *r, struct fx *f, unsigned writer, size_t n,
                        size_t payload_size)
{
    struct fx_writer *w = &f->w[writer];
    r->n = n;
    r->data = calloc(n, sizeof *r->data);
    r->size = calloc(n, sizeof *r->size);
    r->hash = calloc(n, sizeof *r->hash);
    assert_non_null(r->data);
    assert_non_null(r->size);
    assert_non_null(r->hash);
    uint8_t *plain = NULL;
    if (payload_size) {
        plain = malloc(payload_size);
        assert_non_null(plain);
    }
    for (size_t i = 0; i < n; i++) {
        if (w->chain.seq == 0) {
            r->data[i] = fx_seal_cert(f, w, &r->size[i], r->hash[i]);
        } else if (payload_size) {
            for (size_t j = 0; j < payload_size; j++)
                plain[j] = (uint8_t)(i * 7 + j);
            r->data[i] = fx_seal(w, REC_LSM_BLOCK, plain, payload_size, &r->size[i], r->hash[i]);
        } else {
            r->data[i] =
                fx_seal_data(w, 1 + (unsigned)(i % 4), (unsigned)i, &r->size[i], r->hash[i]);
        }
    }
    free(plain);
}

static void recset_free(struct recset *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->data[i]);
    free(r->data);
    free(r->size);
    free(r->hash);
    memset(r, 0, sizeof *r);
}

/* Acknowledgements: one slot per append, counted together. */
struct acks {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n;
};

struct ack {
    struct acks *all;
    int calls;
    psl_err err;
    uint8_t hash[HASH_SIZE];
};

static void acks_init(struct acks *a)
{
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->n = 0;
}

static void acks_deinit(struct acks *a)
{
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

static void ack_cb(void *ctx, psl_err err, const uint8_t hash[HASH_SIZE])
{
    struct ack *k = ctx;
    pthread_mutex_lock(&k->all->mu);
    k->calls++;
    k->err = err;
    memcpy(k->hash, hash, HASH_SIZE);
    k->all->n++;
    pthread_cond_broadcast(&k->all->cv);
    pthread_mutex_unlock(&k->all->mu);
}

static size_t acks_count(struct acks *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static size_t acks_wait(struct acks *a, size_t n, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&a->mu);
    while (a->n < n && now_ms() < deadline) {
        struct timespec ts;
        clock_deadline(&ts, 10000000u); /* 10 ms */
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    size_t c = a->n;
    pthread_mutex_unlock(&a->mu);
    return c;
}

static psl_err append_async(struct store *st, const uint8_t *rec, size_t size, struct ack *slot)
{
    struct record_view v;
    assert_int_equal(record_parse(&v, rec, size), PSL_OK);
    return store_append(st, &v, ack_cb, slot);
}

/* Appends one record and waits for its callback; returns the callback's result (or the
 * immediate refusal). */
static psl_err append_sync(struct store *st, const uint8_t *rec, size_t size)
{
    struct acks a;
    acks_init(&a);
    struct ack slot = {.all = &a};
    psl_err err = append_async(st, rec, size, &slot);
    if (err == PSL_OK) {
        assert_int_equal(acks_wait(&a, 1, 30000), 1);
        assert_int_equal(slot.calls, 1);
        struct record_view v;
        assert_int_equal(record_parse(&v, rec, size), PSL_OK);
        assert_memory_equal(slot.hash, v.hash, HASH_SIZE);
        err = slot.err;
    }
    acks_deinit(&a);
    return err;
}

/* Records returned by a read, copied. */
#define COLLECT_MAX 64
struct collect {
    size_t n;
    size_t stop_after; /* 0: never stop */
    uint8_t *data[COLLECT_MAX];
    size_t size[COLLECT_MAX];
};

static bool collect_fn(void *ctx, const uint8_t *rec, size_t size)
{
    struct collect *c = ctx;
    if (c->n < COLLECT_MAX) {
        c->data[c->n] = malloc(size);
        if (c->data[c->n])
            memcpy(c->data[c->n], rec, size);
        c->size[c->n] = size;
    }
    c->n++;
    return !(c->stop_after && c->n >= c->stop_after);
}

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n && i < COLLECT_MAX; i++)
        free(c->data[i]);
    memset(c, 0, sizeof *c);
}

static bool collected_is(const struct collect *c, size_t i, const uint8_t *rec, size_t size)
{
    return i < c->n && i < COLLECT_MAX && c->data[i] && c->size[i] == size &&
           memcmp(c->data[i], rec, size) == 0;
}

/* Whether the stored record with this hash is exactly rec. */
static bool stored_is(struct store *st, const uint8_t hash[HASH_SIZE], const uint8_t *rec,
                      size_t size)
{
    struct collect c = {0};
    psl_err err = store_get(st, hash, collect_fn, &c);
    bool ok = err == PSL_OK && c.n == 1 && collected_is(&c, 0, rec, size);
    collect_free(&c);
    return ok;
}

#define HEADS_MAX 8
struct heads {
    size_t n;
    struct store_head h[HEADS_MAX];
};

static bool heads_fn(void *ctx, const struct store_head *h)
{
    struct heads *hs = ctx;
    if (hs->n < HEADS_MAX)
        hs->h[hs->n] = *h;
    hs->n++;
    return true;
}

struct tstate {
    struct fx fx;
    char dir[64];
};

static int store_setup(void **state)
{
    struct tstate *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    fx_init(&t->fx);
    snprintf(t->dir, sizeof t->dir, "/tmp/psl-store-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    *state = t;
    return 0;
}

static int store_teardown(void **state)
{
    struct tstate *t = *state;
    tu_dir_remove(t->dir);
    fx_deinit(&t->fx);
    free(t);
    return 0;
}

static struct store *open_store(const char *dir, size_t map_size, uint32_t window_us)
{
    struct store_config cfg = {
        .dir = dir, .map_size_bytes = map_size, .commit_window_us = window_us};
    struct store *st = NULL;
    assert_int_equal(store_open(&st, &cfg), PSL_OK);
    assert_non_null(st);
    return st;
}

static void expect_head(struct store *st, const uint8_t capsule[HASH_SIZE],
                        const uint8_t writer[HASH_SIZE], uint64_t contiguous, const uint8_t *hash,
                        uint64_t max_seq, bool forked)
{
    struct store_head h;
    memset(&h, 0xee, sizeof h);
    assert_int_equal(store_head_get(st, capsule, writer, &h), PSL_OK);
    assert_memory_equal(h.writer, writer, HASH_SIZE);
    assert_int_equal(h.contiguous, contiguous);
    if (hash)
        assert_memory_equal(h.hash, hash, HASH_SIZE);
    assert_int_equal(h.max_seq, max_seq);
    assert_int_equal(h.forked, forked);
}

/* ---- basic appends and reads ---- */

static void check_basic_contents(struct tstate *t, struct store *st, const struct recset *a,
                                 const struct recset *b)
{
    const uint8_t *cap = t->fx.meta.name;
    const uint8_t *wa = t->fx.w[FX_W0].keys.writer_id, *wb = t->fx.w[FX_W1].keys.writer_id;
    for (size_t i = 0; i < a->n; i++)
        assert_true(stored_is(st, a->hash[i], a->data[i], a->size[i]));
    for (size_t i = 0; i < b->n; i++)
        assert_true(stored_is(st, b->hash[i], b->data[i], b->size[i]));

    /* a hash never stored */
    uint8_t unknown[HASH_SIZE];
    memset(unknown, 0x5a, sizeof unknown);
    struct collect c = {0};
    assert_int_equal(store_get(st, unknown, collect_fn, &c), PSL_ERR_NOT_FOUND);
    assert_int_equal(c.n, 0);

    /* ranges, in seq order */
    assert_int_equal(store_range(st, cap, wa, 1, a->n, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, a->n);
    for (size_t i = 0; i < a->n; i++)
        assert_true(collected_is(&c, i, a->data[i], a->size[i]));
    collect_free(&c);
    assert_int_equal(store_range(st, cap, wa, 2, 3, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 2);
    assert_true(collected_is(&c, 0, a->data[1], a->size[1]));
    assert_true(collected_is(&c, 1, a->data[2], a->size[2]));
    collect_free(&c);
    assert_int_equal(store_range(st, cap, wa, 0, UINT64_MAX, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, a->n);
    collect_free(&c);
    assert_int_equal(store_range(st, cap, wa, 4, 2, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(store_range(st, cap, wa, a->n + 1, a->n + 100, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 0);
    c.stop_after = 2; /* fn returning false stops the walk */
    assert_int_equal(store_range(st, cap, wa, 1, a->n, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 2);
    collect_free(&c);
    /* the other writer's range holds only its own records */
    assert_int_equal(store_range(st, cap, wb, 1, UINT64_MAX, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, b->n);
    for (size_t i = 0; i < b->n; i++)
        assert_true(collected_is(&c, i, b->data[i], b->size[i]));
    collect_free(&c);
    /* another capsule has nothing */
    assert_int_equal(store_range(st, t->fx.other.name, wa, 1, UINT64_MAX, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 0);

    /* heads */
    expect_head(st, cap, wa, a->n, a->hash[a->n - 1], a->n, false);
    expect_head(st, cap, wb, b->n, b->hash[b->n - 1], b->n, false);
    struct store_head h;
    assert_int_equal(store_head_get(st, cap, t->fx.w[FX_COORD].keys.writer_id, &h),
                     PSL_ERR_NOT_FOUND);
    assert_int_equal(store_head_get(st, t->fx.other.name, wa, &h), PSL_ERR_NOT_FOUND);
    struct heads hs = {0};
    assert_int_equal(store_heads(st, cap, heads_fn, &hs), PSL_OK);
    assert_int_equal(hs.n, 2);
    assert_true(memcmp(hs.h[0].writer, hs.h[1].writer, HASH_SIZE) < 0); /* writer id order */
    for (size_t i = 0; i < 2; i++) {
        bool is_a = memcmp(hs.h[i].writer, wa, HASH_SIZE) == 0;
        const struct recset *r = is_a ? a : b;
        assert_true(is_a || memcmp(hs.h[i].writer, wb, HASH_SIZE) == 0);
        assert_int_equal(hs.h[i].contiguous, r->n);
        assert_int_equal(hs.h[i].max_seq, r->n);
        assert_memory_equal(hs.h[i].hash, r->hash[r->n - 1], HASH_SIZE);
        assert_false(hs.h[i].forked);
    }
    struct heads none = {0};
    assert_int_equal(store_heads(st, t->fx.other.name, heads_fn, &none), PSL_OK);
    assert_int_equal(none.n, 0);
}

struct meta_seen {
    size_t n;
    uint8_t *raw[4];
    size_t size[4];
};

static void meta_fn(void *ctx, const uint8_t *raw, size_t size)
{
    struct meta_seen *m = ctx;
    if (m->n < 4) {
        m->raw[m->n] = malloc(size);
        if (m->raw[m->n])
            memcpy(m->raw[m->n], raw, size);
        m->size[m->n] = size;
    }
    m->n++;
}

static void meta_seen_free(struct meta_seen *m)
{
    for (size_t i = 0; i < m->n && i < 4; i++)
        free(m->raw[i]);
    memset(m, 0, sizeof *m);
}

static bool meta_seen_has(const struct meta_seen *m, const uint8_t *raw, size_t size)
{
    for (size_t i = 0; i < m->n && i < 4; i++)
        if (m->raw[i] && m->size[i] == size && memcmp(m->raw[i], raw, size) == 0)
            return true;
    return false;
}

static void test_store_append_and_read(void **state)
{
    struct tstate *t = *state;
    struct recset a, b;
    recset_make(&a, &t->fx, FX_W0, 6, 0);
    recset_make(&b, &t->fx, FX_W1, 3, 3000); /* larger than a page */
    struct store *st = open_store(t->dir, 0, 0);

    uint64_t bytes = 0;
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(append_sync(st, a.data[i], a.size[i]), PSL_OK);
        bytes += a.size[i];
    }
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(append_sync(st, b.data[i], b.size[i]), PSL_OK);
        bytes += b.size[i];
    }
    check_basic_contents(t, st, &a, &b);

    /* metadata */
    uint8_t other_enc[META_SIZE_MAX];
    size_t other_size;
    assert_int_equal(meta_encode(&t->fx.other, other_enc, sizeof other_enc, &other_size), PSL_OK);
    assert_int_equal(store_meta_put(st, t->fx.meta.name, t->fx.meta_enc, t->fx.meta_size), PSL_OK);
    assert_int_equal(store_meta_put(st, t->fx.other.name, other_enc, other_size), PSL_OK);
    assert_int_equal(store_meta_put(st, t->fx.meta.name, t->fx.meta_enc, t->fx.meta_size), PSL_OK);
    struct meta_seen ms = {0};
    assert_int_equal(store_meta_each(st, meta_fn, &ms), PSL_OK);
    assert_int_equal(ms.n, 2); /* a second put of one name replaces it */
    assert_true(meta_seen_has(&ms, t->fx.meta_enc, t->fx.meta_size));
    assert_true(meta_seen_has(&ms, other_enc, other_size));
    meta_seen_free(&ms);

    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.appends, a.n + b.n);
    assert_int_equal(stats.bytes, bytes);
    assert_int_equal(stats.duplicates, 0);
    assert_int_equal(stats.forks, 0);
    assert_int_equal(stats.bad_prev, 0);
    assert_int_equal(stats.failed_batches, 0);
    assert_true(stats.commits >= 1 && stats.commits <= a.n + b.n);
    assert_false(stats.full);
    store_close(st);

    /* Reopen: everything is still there. */
    st = open_store(t->dir, 0, 0);
    check_basic_contents(t, st, &a, &b);
    assert_int_equal(store_meta_each(st, meta_fn, &ms), PSL_OK);
    assert_int_equal(ms.n, 2);
    assert_true(meta_seen_has(&ms, t->fx.meta_enc, t->fx.meta_size));
    assert_true(meta_seen_has(&ms, other_enc, other_size));
    meta_seen_free(&ms);
    /* and the chains continue where they were */
    struct recset more;
    recset_make(&more, &t->fx, FX_W0, 2, 0);
    for (size_t i = 0; i < more.n; i++)
        assert_int_equal(append_sync(st, more.data[i], more.size[i]), PSL_OK);
    expect_head(st, t->fx.meta.name, t->fx.w[FX_W0].keys.writer_id, a.n + more.n,
                more.hash[more.n - 1], a.n + more.n, false);
    store_close(st);
    recset_free(&more);
    recset_free(&a);
    recset_free(&b);
}

/* ---- group commit ---- */

static void test_store_group_commit(void **state)
{
    struct tstate *t = *state;
    enum { N = 300 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 0);
    struct store *st = open_store(t->dir, 0, 5000); /* 5 ms window */
    struct acks a;
    acks_init(&a);
    struct ack *slots = calloc(N, sizeof *slots);
    assert_non_null(slots);
    for (size_t i = 0; i < N; i++) {
        slots[i].all = &a;
        assert_int_equal(append_async(st, r.data[i], r.size[i], &slots[i]), PSL_OK);
    }
    assert_int_equal(acks_wait(&a, N, 30000), N);
    sleep_ms(20);
    assert_int_equal(acks_count(&a), N); /* no extra callbacks */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(slots[i].calls, 1);
        assert_int_equal(slots[i].err, PSL_OK);
        assert_memory_equal(slots[i].hash, r.hash[i], HASH_SIZE);
    }
    struct store_stats stats;
    store_get_stats(st, &stats);
    print_message("group commit: %zu appends in %llu commits\n", (size_t)N,
                  (unsigned long long)stats.commits);
    assert_int_equal(stats.appends, N);
    assert_true(stats.commits >= 1);
    assert_true(stats.commits < N / 4);
    expect_head(st, t->fx.meta.name, t->fx.w[FX_W0].keys.writer_id, N, r.hash[N - 1], N, false);

    /* The window delays a lone append by about its length... */
    struct recset one;
    recset_make(&one, &t->fx, FX_W0, 2, 0);
    store_close(st);
    st = open_store(t->dir, 0, 300000); /* 300 ms */
    uint64_t t0 = now_ms();
    assert_int_equal(append_sync(st, one.data[0], one.size[0]), PSL_OK);
    assert_true(now_ms() - t0 >= 250);
    store_close(st);
    /* ...unless the batch reaches commit_bytes_max. */
    struct store_config cfg = {
        .dir = t->dir, .commit_window_us = 60u * 1000000u, .commit_bytes_max = 1};
    assert_int_equal(store_open(&st, &cfg), PSL_OK);
    t0 = now_ms();
    assert_int_equal(append_sync(st, one.data[1], one.size[1]), PSL_OK);
    assert_true(now_ms() - t0 < 10000);
    store_close(st);

    acks_deinit(&a);
    free(slots);
    recset_free(&one);
    recset_free(&r);
}

static void test_store_close_commits_queued(void **state)
{
    struct tstate *t = *state;
    enum { N = 50 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W1, N, 0);
    struct store *st = open_store(t->dir, 0, 10u * 1000000u); /* a 10 s window */
    struct acks a;
    acks_init(&a);
    struct ack slots[N];
    memset(slots, 0, sizeof slots);
    for (size_t i = 0; i < N; i++) {
        slots[i].all = &a;
        assert_int_equal(append_async(st, r.data[i], r.size[i], &slots[i]), PSL_OK);
    }
    uint64_t t0 = now_ms();
    store_close(st); /* commits what is queued without waiting out the window */
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(acks_count(&a), N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(slots[i].calls, 1);
        assert_int_equal(slots[i].err, PSL_OK);
    }
    st = open_store(t->dir, 0, 0);
    for (size_t i = 0; i < N; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    expect_head(st, t->fx.meta.name, t->fx.w[FX_W1].keys.writer_id, N, r.hash[N - 1], N, false);
    store_close(st);
    acks_deinit(&a);
    recset_free(&r);
}

/* ---- chain facts ---- */

static void test_store_duplicates(void **state)
{
    struct tstate *t = *state;
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, 3, 0);
    struct store *st = open_store(t->dir, 0, 20000);
    assert_int_equal(append_sync(st, r.data[0], r.size[0]), PSL_OK);
    assert_int_equal(append_sync(st, r.data[0], r.size[0]), PSL_OK); /* acked again */
    /* twice in one batch */
    struct acks a;
    acks_init(&a);
    struct ack s1 = {.all = &a}, s2 = {.all = &a};
    assert_int_equal(append_async(st, r.data[1], r.size[1], &s1), PSL_OK);
    assert_int_equal(append_async(st, r.data[1], r.size[1], &s2), PSL_OK);
    assert_int_equal(acks_wait(&a, 2, 30000), 2);
    assert_int_equal(s1.err, PSL_OK);
    assert_int_equal(s2.err, PSL_OK);
    assert_int_equal(s1.calls, 1);
    assert_int_equal(s2.calls, 1);
    acks_deinit(&a);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.appends, 2);
    assert_int_equal(stats.duplicates, 2);
    assert_int_equal(stats.bytes, r.size[0] + r.size[1]);
    struct collect c = {0};
    assert_int_equal(
        store_range(st, t->fx.meta.name, t->fx.w[FX_W0].keys.writer_id, 1, 10, collect_fn, &c),
        PSL_OK);
    assert_int_equal(c.n, 2); /* stored once each */
    collect_free(&c);
    expect_head(st, t->fx.meta.name, t->fx.w[FX_W0].keys.writer_id, 2, r.hash[1], 2, false);
    store_close(st);
    recset_free(&r);
}

static void test_store_out_of_order_and_gap(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W1].keys.writer_id;
    struct recset r;
    recset_make(&r, &t->fx, FX_W1, 6, 0);
    struct store *st = open_store(t->dir, 0, 0);
    assert_int_equal(append_sync(st, r.data[0], r.size[0]), PSL_OK);
    assert_int_equal(append_sync(st, r.data[2], r.size[2]), PSL_OK); /* seq 3 before 2 */
    expect_head(st, cap, w, 1, r.hash[0], 3, false);
    assert_int_equal(append_sync(st, r.data[1], r.size[1]), PSL_OK); /* 2 arrives */
    expect_head(st, cap, w, 3, r.hash[2], 3, false);
    assert_int_equal(append_sync(st, r.data[4], r.size[4]), PSL_OK); /* 5: a gap at 4 */
    assert_int_equal(append_sync(st, r.data[5], r.size[5]), PSL_OK);
    expect_head(st, cap, w, 3, r.hash[2], 6, false);
    struct collect c = {0};
    assert_int_equal(store_range(st, cap, w, 1, 6, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 5);
    assert_true(collected_is(&c, 2, r.data[2], r.size[2]));
    assert_true(collected_is(&c, 3, r.data[4], r.size[4])); /* seq 4 missing */
    collect_free(&c);
    assert_int_equal(append_sync(st, r.data[3], r.size[3]), PSL_OK); /* the gap fills */
    expect_head(st, cap, w, 6, r.hash[5], 6, false);

    /* A writer whose seq 1 never arrived: nothing is contiguous. */
    const uint8_t *w2 = t->fx.w[FX_COORD].keys.writer_id;
    struct recset r2;
    recset_make(&r2, &t->fx, FX_COORD, 3, 0);
    assert_int_equal(append_sync(st, r2.data[1], r2.size[1]), PSL_OK);
    assert_int_equal(append_sync(st, r2.data[2], r2.size[2]), PSL_OK);
    struct store_head h;
    assert_int_equal(store_head_get(st, cap, w2, &h), PSL_OK);
    assert_int_equal(h.contiguous, 0);
    assert_int_equal(h.max_seq, 3);
    assert_int_equal(append_sync(st, r2.data[0], r2.size[0]), PSL_OK);
    expect_head(st, cap, w2, 3, r2.hash[2], 3, false);
    store_close(st);
    recset_free(&r2);
    recset_free(&r);
}

/* Seals a record of w at seq with an explicit prev and lamport (outside w's chain). */
static uint8_t *seal_at(struct tstate *t, unsigned writer, uint64_t seq, const uint8_t *prev,
                        uint64_t lamport, size_t *size, uint8_t hash[HASH_SIZE])
{
    struct record_header h;
    memset(&h, 0, sizeof h);
    h.type = REC_DATA;
    memcpy(h.capsule, t->fx.meta.name, HASH_SIZE);
    h.seq = seq;
    h.lamport = lamport;
    memcpy(h.prev, prev, HASH_SIZE);
    uint8_t pl[512];
    size_t n = fx_data_plain(pl, sizeof pl, 2, (unsigned)lamport);
    return fx_seal_hdr(&t->fx.w[writer].keys, &h, pl, n, size, hash);
}

static void test_store_bad_prev(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, 3, 0);
    struct store *st = open_store(t->dir, 0, 0);
    assert_int_equal(append_sync(st, r.data[0], r.size[0]), PSL_OK);
    assert_int_equal(append_sync(st, r.data[1], r.size[1]), PSL_OK);
    /* seq 3 whose prev is not the stored seq 2 */
    uint8_t wrong[HASH_SIZE], bad_hash[HASH_SIZE];
    memcpy(wrong, r.hash[0], HASH_SIZE);
    size_t bad_size;
    uint8_t *bad = seal_at(t, FX_W0, 3, wrong, 3, &bad_size, bad_hash);
    assert_int_equal(append_sync(st, bad, bad_size), PSL_ERR_BAD_PREV);
    struct collect c = {0};
    assert_int_equal(store_get(st, bad_hash, collect_fn, &c), PSL_ERR_NOT_FOUND);
    assert_int_equal(store_range(st, cap, w, 3, 3, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 0);
    expect_head(st, cap, w, 2, r.hash[1], 2, false); /* untouched */
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.bad_prev, 1);
    assert_int_equal(stats.appends, 2);
    /* the genuine seq 3 still goes in */
    assert_int_equal(append_sync(st, r.data[2], r.size[2]), PSL_OK);
    expect_head(st, cap, w, 3, r.hash[2], 3, false);
    store_close(st);
    free(bad);
    recset_free(&r);
}

static void test_store_fork(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, 4, 0);
    struct store *st = open_store(t->dir, 0, 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(append_sync(st, r.data[i], r.size[i]), PSL_OK);
    /* A second valid record for (writer, seq 2): same prev, other contents. Pick one whose
     * hash sorts before the genuine one, so that the index's first entry for seq 2 is the
     * fork (the harder case for the prev check of the genuine seq 3 below). */
    uint8_t fork_hash[HASH_SIZE];
    size_t fork_size = 0;
    uint8_t *fork = NULL;
    for (uint64_t lamport = 1000; lamport < 1100; lamport++) {
        free(fork);
        fork = seal_at(t, FX_W0, 2, r.hash[0], lamport, &fork_size, fork_hash);
        if (memcmp(fork_hash, r.hash[1], HASH_SIZE) < 0)
            break;
    }
    assert_true(memcmp(fork_hash, r.hash[1], HASH_SIZE) < 0);
    assert_int_equal(append_sync(st, fork, fork_size), PSL_ERR_FORK);
    /* both are kept as evidence */
    assert_true(stored_is(st, fork_hash, fork, fork_size));
    assert_true(stored_is(st, r.hash[1], r.data[1], r.size[1]));
    struct collect c = {0};
    assert_int_equal(store_range(st, cap, w, 2, 2, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 2);
    assert_true(
        (collected_is(&c, 0, fork, fork_size) && collected_is(&c, 1, r.data[1], r.size[1])) ||
        (collected_is(&c, 1, fork, fork_size) && collected_is(&c, 0, r.data[1], r.size[1])));
    collect_free(&c);
    assert_int_equal(store_range(st, cap, w, 1, 10, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 3);
    assert_true(collected_is(&c, 0, r.data[0], r.size[0]));
    collect_free(&c);
    expect_head(st, cap, w, 2, r.hash[1], 2, true);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.forks, 1);
    assert_int_equal(stats.appends, 2); /* the fork is evidence, not an acknowledged append */
    /* The fork again: it is stored, so now it is a duplicate. */
    assert_int_equal(append_sync(st, fork, fork_size), PSL_OK);
    /* The writer goes on from the genuine branch: its seq 3 links to a stored seq 2 (not the
     * first one in the index), so it is no bad prev. */
    assert_int_equal(append_sync(st, r.data[2], r.size[2]), PSL_OK);
    assert_int_equal(append_sync(st, r.data[3], r.size[3]), PSL_OK);
    /* A seq 3 on the fork's branch is a second fork, kept too. */
    size_t on_fork_size;
    uint8_t on_fork_hash[HASH_SIZE];
    uint8_t *on_fork = seal_at(t, FX_W0, 3, fork_hash, 2000, &on_fork_size, on_fork_hash);
    assert_int_equal(append_sync(st, on_fork, on_fork_size), PSL_ERR_FORK);
    assert_true(stored_is(st, on_fork_hash, on_fork, on_fork_size));
    struct store_head h;
    assert_int_equal(store_head_get(st, cap, w, &h), PSL_OK);
    assert_true(h.forked);
    assert_int_equal(h.max_seq, 4);
    assert_true(h.contiguous <= 4);
    store_close(st);

    /* The fork survives a reopen. */
    st = open_store(t->dir, 0, 0);
    assert_int_equal(store_head_get(st, cap, w, &h), PSL_OK);
    assert_true(h.forked);
    assert_int_equal(h.max_seq, 4);
    assert_int_equal(store_range(st, cap, w, 2, 3, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, 4);
    collect_free(&c);
    store_close(st);
    free(on_fork);
    free(fork);
    recset_free(&r);
}

/* Records of several writers appended from several threads while heads are read. */
struct writer_job {
    struct store *st;
    struct recset *r;
    struct acks *a;
    struct ack *slots;
    psl_err err;
};

static void *writer_thread(void *arg)
{
    struct writer_job *j = arg;
    for (size_t i = 0; i < j->r->n; i++) {
        struct record_view v;
        psl_err err = record_parse(&v, j->r->data[i], j->r->size[i]);
        if (!err)
            err = store_append(j->st, &v, ack_cb, &j->slots[i]);
        if (err) {
            j->err = err;
            break;
        }
        if (i % 16 == 0)
            sleep_ms(1);
    }
    return NULL;
}

static void test_store_concurrent_writers(void **state)
{
    struct tstate *t = *state;
    enum { W = 4, N = 120 };
    struct recset r[W];
    for (unsigned i = 0; i < W; i++)
        recset_make(&r[i], &t->fx, i, N, i == 3 ? 5000 : 0);
    struct store *st = open_store(t->dir, 0, 1000);
    struct acks a;
    acks_init(&a);
    struct writer_job jobs[W];
    pthread_t th[W];
    for (unsigned i = 0; i < W; i++) {
        jobs[i] = (struct writer_job){.st = st, .r = &r[i], .a = &a};
        jobs[i].slots = calloc(N, sizeof *jobs[i].slots);
        assert_non_null(jobs[i].slots);
        for (size_t k = 0; k < N; k++)
            jobs[i].slots[k].all = &a;
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &jobs[i]), 0);
    }
    /* Read while they write: heads only ever move forward. */
    uint64_t last[W] = {0};
    uint64_t deadline = now_ms() + 60000;
    while (acks_count(&a) < W * N && now_ms() < deadline) {
        struct heads hs = {0};
        assert_int_equal(store_heads(st, t->fx.meta.name, heads_fn, &hs), PSL_OK);
        assert_true(hs.n <= W);
        for (size_t k = 0; k < hs.n; k++)
            for (unsigned i = 0; i < W; i++)
                if (!memcmp(hs.h[k].writer, t->fx.w[i].keys.writer_id, HASH_SIZE)) {
                    assert_true(hs.h[k].contiguous >= last[i]);
                    last[i] = hs.h[k].contiguous;
                }
        if (acks_wait(&a, W * N, 5) >= W * N)
            break;
    }
    for (unsigned i = 0; i < W; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].err, PSL_OK);
    }
    assert_int_equal(acks_wait(&a, W * N, 30000), W * N);
    for (unsigned i = 0; i < W; i++) {
        for (size_t k = 0; k < N; k++) {
            assert_int_equal(jobs[i].slots[k].calls, 1);
            assert_int_equal(jobs[i].slots[k].err, PSL_OK);
        }
        expect_head(st, t->fx.meta.name, t->fx.w[i].keys.writer_id, N, r[i].hash[N - 1], N, false);
        free(jobs[i].slots);
    }
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.appends, W * N);
    store_close(st);
    acks_deinit(&a);
    for (unsigned i = 0; i < W; i++)
        recset_free(&r[i]);
}

/* ---- durability across kill -9 ---- */

static int g_ack_fd = -1; /* the child's end of the pipe */

static void crash_ack_cb(void *ctx, psl_err err, const uint8_t hash[HASH_SIZE])
{
    (void)hash;
    const uint64_t *seq = ctx;
    if (err == PSL_OK) {
        ssize_t w = write(g_ack_fd, seq, sizeof *seq);
        (void)w;
    }
}

/* The child: appends the records in order, a few at a time, reporting every acknowledged seq
 * on the pipe; then idles until killed. Never returns. */
static _Noreturn void crash_child(const char *dir, const struct recset *r, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    g_ack_fd = fd;
    uint64_t *seqs = malloc(r->n * sizeof *seqs);
    if (!seqs)
        _exit(2);
    struct store_config cfg = {.dir = dir, .map_size_bytes = 256u << 20, .commit_window_us = 300};
    struct store *st;
    if (store_open(&st, &cfg) != PSL_OK)
        _exit(3);
    for (size_t i = 0; i < r->n; i++) {
        struct record_view v;
        if (record_parse(&v, r->data[i], r->size[i]) != PSL_OK)
            _exit(4);
        seqs[i] = v.h.seq;
        if (store_append(st, &v, crash_ack_cb, &seqs[i]) != PSL_OK)
            _exit(5);
        if (i % 4 == 3) {
            struct timespec ts = {0, 300000};
            nanosleep(&ts, NULL);
        }
    }
    for (;;)
        pause();
}

static void test_store_survives_kill9(void **state)
{
    struct tstate *t = *state;
    enum { N = 3000 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 0);
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    static const unsigned delays_ms[] = {5, 20, 45, 80, 130, 190};
    uint8_t *acked = calloc(N + 1, 1);
    assert_non_null(acked);
    for (size_t round = 0; round < sizeof delays_ms / sizeof delays_ms[0]; round++) {
        char dir[96];
        snprintf(dir, sizeof dir, "%s/kill%zu", t->dir, round);
        int p[2];
        assert_int_equal(pipe(p), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(dir, &r, p[1]);
        }
        close(p[1]);
        memset(acked, 0, N + 1);
        uint64_t max_acked = 0;
        size_t n_acked = 0;
        /* Read acknowledgements for a while, then kill the child wherever it is. */
        unsigned delay = delays_ms[round] + (unsigned)(clock_mono_ns() % 7u);
        uint64_t kill_at = now_ms() + delay;
        bool killed = false;
        for (;;) {
            int timeout = 50;
            if (!killed) {
                uint64_t now = now_ms();
                if (now >= kill_at) {
                    assert_int_equal(kill(pid, SIGKILL), 0);
                    killed = true;
                } else {
                    timeout = (int)(kill_at - now);
                }
            }
            struct pollfd pfd = {.fd = p[0], .events = POLLIN};
            int pr = poll(&pfd, 1, timeout);
            if (pr < 0 && errno == EINTR)
                continue;
            assert_true(pr >= 0);
            if (pr == 0)
                continue;
            uint64_t seq;
            ssize_t got = read(p[0], &seq, sizeof seq);
            if (got == 0)
                break; /* EOF: the child is gone */
            assert_int_equal(got, sizeof seq);
            assert_true(seq >= 1 && seq <= N);
            assert_int_equal(acked[seq], 0); /* each acknowledged once */
            acked[seq] = 1;
            n_acked++;
            if (seq > max_acked)
                max_acked = seq;
        }
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("the child ended by itself (status %d) instead of being killed", status);
        print_message("kill -9 after %u ms: %zu records acknowledged\n", delay, n_acked);

        /* Reopen after the crash: opens cleanly, every acknowledged record is there. */
        struct store *st = open_store(dir, 256u << 20, 0);
        for (uint64_t s = 1; s <= N; s++)
            if (acked[s])
                assert_true(stored_is(st, r.hash[s - 1], r.data[s - 1], r.size[s - 1]));
        struct store_head h = {0};
        psl_err err = store_head_get(st, cap, w, &h);
        if (max_acked) {
            assert_int_equal(err, PSL_OK);
            /* appends were in order and each ack covers everything before it */
            assert_true(h.contiguous >= max_acked);
            assert_int_equal(n_acked, max_acked);
        }
        assert_false(h.forked);
        /* The writer lock is free and the database writable: continue the chain (some of
         * these may have been committed but not acknowledged: duplicates). */
        uint64_t from = h.contiguous;
        for (uint64_t s = from + 1; s <= from + 5 && s <= N; s++)
            assert_int_equal(append_sync(st, r.data[s - 1], r.size[s - 1]), PSL_OK);
        if (from + 5 <= N)
            expect_head(st, cap, w, from + 5, r.hash[from + 4],
                        h.max_seq > from + 5 ? h.max_seq : from + 5, false);
        store_close(st);
        tu_dir_remove(dir);
    }
    free(acked);
    recset_free(&r);
}

/* ---- a full map ---- */

static void test_store_full(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    enum { N = 200 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 20000); /* about 5 pages each */
    struct store *st = open_store(t->dir, 1u << 20, 0);
    size_t acked = 0;
    psl_err err = PSL_OK;
    while (acked < N) {
        err = append_sync(st, r.data[acked], r.size[acked]);
        if (err != PSL_OK)
            break;
        acked++;
    }
    assert_int_equal(err, PSL_ERR_STORAGE_FULL);
    print_message("a 1 MiB map took %zu records of %zu bytes\n", acked, r.size[1]);
    assert_true(acked >= 5);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_true(stats.full);
    assert_int_equal(stats.failed_batches, 1);
    assert_int_equal(stats.appends, acked); /* the failed batch counts nothing */

    /* Refused at once while full; the callback is never called. */
    struct acks a;
    acks_init(&a);
    struct ack slot = {.all = &a};
    assert_int_equal(append_async(st, r.data[acked], r.size[acked], &slot), PSL_ERR_STORAGE_FULL);
    assert_int_equal(append_async(st, r.data[0], r.size[0], &slot), PSL_ERR_STORAGE_FULL);

    /* Reads still work and everything acknowledged is intact. */
    for (size_t i = 0; i < acked; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    struct collect c = {0};
    assert_int_equal(store_get(st, r.hash[acked], collect_fn, &c), PSL_ERR_NOT_FOUND);
    assert_int_equal(store_range(st, cap, w, 1, N, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, acked);
    collect_free(&c);
    struct heads hs = {0};
    assert_int_equal(store_heads(st, cap, heads_fn, &hs), PSL_OK);
    assert_int_equal(hs.n, 1);
    assert_int_equal(hs.h[0].contiguous, acked);
    assert_memory_equal(hs.h[0].hash, r.hash[acked - 1], HASH_SIZE);
    struct meta_seen ms = {0};
    assert_int_equal(store_meta_each(st, meta_fn, &ms), PSL_OK);
    meta_seen_free(&ms);

    /* After the retry interval (1 s) an append is tried again, and fails again while the map
     * is still full; then it is refused at once again. */
    sleep_ms(1100);
    assert_int_equal(append_sync(st, r.data[acked], r.size[acked]), PSL_ERR_STORAGE_FULL);
    store_get_stats(st, &stats);
    assert_int_equal(stats.failed_batches, 2);
    assert_true(stats.full);
    assert_int_equal(stats.appends, acked);
    assert_int_equal(append_async(st, r.data[acked], r.size[acked], &slot), PSL_ERR_STORAGE_FULL);
    assert_int_equal(acks_count(&a), 0);
    acks_deinit(&a);
    store_close(st);

    /* Space returns (a larger map): appends succeed again, old data intact. */
    st = open_store(t->dir, 16u << 20, 0);
    for (size_t i = 0; i < acked; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    size_t more = acked + 20 <= N ? acked + 20 : N;
    for (size_t i = acked; i < more; i++)
        assert_int_equal(append_sync(st, r.data[i], r.size[i]), PSL_OK);
    expect_head(st, cap, w, more, r.hash[more - 1], more, false);
    store_get_stats(st, &stats);
    assert_false(stats.full);
    assert_int_equal(stats.appends, more - acked);
    assert_int_equal(stats.failed_batches, 0);
    store_close(st);
    recset_free(&r);
}

/* ---- the write-ahead log ---- */

/* Opens the store in a child process, appends records [from, to) of r, waits for every
 * callback, optionally lets a checkpoint happen (idle for longer than its interval), appends
 * [to, to2), waits again, then ends with _exit and no store_close: a crash after the acks.
 * Reports its stats before the exit on the pipe. */
static _Noreturn void wal_child(const char *dir, const struct recset *r, size_t from, size_t to,
                                bool checkpoint, size_t to2, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct store_config cfg = {.dir = dir, .map_size_bytes = 256u << 20};
    struct store *st;
    if (store_open(&st, &cfg) != PSL_OK)
        _exit(3);
    struct acks a;
    acks_init(&a);
    struct ack *slots = calloc(r->n, sizeof *slots);
    if (!slots)
        _exit(2);
    for (size_t i = from; i < to2; i++) {
        if (i == to) {
            if (acks_wait(&a, to - from, 30000) != to - from)
                _exit(6);
            if (checkpoint)
                sleep_ms(1500);
        }
        slots[i].all = &a;
        struct record_view v;
        if (record_parse(&v, r->data[i], r->size[i]) != PSL_OK ||
            store_append(st, &v, ack_cb, &slots[i]) != PSL_OK)
            _exit(5);
    }
    if (acks_wait(&a, to2 - from, 30000) != to2 - from)
        _exit(6);
    for (size_t i = from; i < to2; i++)
        if (slots[i].err != PSL_OK)
            _exit(7);
    struct store_stats stats;
    store_get_stats(st, &stats);
    ssize_t w = write(fd, &stats, sizeof stats);
    _exit(w == (ssize_t)sizeof stats ? 0 : 8);
}

/* Runs wal_child and returns its stats. */
static struct store_stats run_wal_child(const char *dir, const struct recset *r, size_t from,
                                        size_t to, bool checkpoint, size_t to2)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        wal_child(dir, r, from, to, checkpoint, to2, p[1]);
    }
    close(p[1]);
    struct store_stats stats;
    memset(&stats, 0, sizeof stats);
    ssize_t got = read(p[0], &stats, sizeof stats);
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the WAL child failed (status %d)", status);
    assert_int_equal(got, sizeof stats);
    return stats;
}

/* Offsets of the frames of the current generation in a WAL file, as store.c writes it: a
 * 4096-byte header block (salt at bytes 8..15), then frames of a 48-byte header (magic, record
 * size at bytes 4..7, salt at 8..15) and the record. Returns the frame count. */
static size_t wal_frames(const char *dir, size_t *off, size_t max)
{
    char path[128];
    snprintf(path, sizeof path, "%s/wal", dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t n = 0, pos = 4096;
    uint8_t salt[8];
    assert_int_equal(pread(fd, salt, sizeof salt, 8), (ssize_t)sizeof salt);
    while (n < max && pos + 48 <= (size_t)st.st_size) {
        uint8_t fh[48];
        assert_int_equal(pread(fd, fh, sizeof fh, (off_t)pos), (ssize_t)sizeof fh);
        uint32_t size = get_le32(fh + 4);
        if (get_le32(fh) != 0x464c5350u || memcmp(fh + 8, salt, 8) != 0 || size == 0)
            break;
        off[n++] = pos;
        pos += 48 + size;
    }
    close(fd);
    return n;
}

static void patch_file(const char *dir, const char *name, size_t off, const void *bytes,
                       size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, size, (off_t)off), (ssize_t)size);
    close(fd);
}

static void test_store_wal_replay_after_crash(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    enum { N = 200 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 0);
    /* The child stores every record (acknowledged) and dies before any checkpoint. */
    struct store_stats cs = run_wal_child(t->dir, &r, 0, N, false, N);
    assert_int_equal(cs.appends, N);
    assert_int_equal(cs.checkpoints, 0);
    assert_true(cs.wal_bytes > 0);
    struct store *st = open_store(t->dir, 0, 0);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, N);
    assert_int_equal(stats.wal_bytes, 0); /* moved into the main database at open */
    assert_int_equal(stats.appends, 0);
    for (size_t i = 0; i < N; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    expect_head(st, cap, w, N, r.hash[N - 1], N, false);
    struct collect c = {0};
    assert_int_equal(store_range(st, cap, w, 1, N, collect_fn, &c), PSL_OK);
    assert_int_equal(c.n, N);
    collect_free(&c);
    /* Resent records are duplicates, the chain continues. */
    assert_int_equal(append_sync(st, r.data[N - 1], r.size[N - 1]), PSL_OK);
    store_get_stats(st, &stats);
    assert_int_equal(stats.duplicates, 1);
    assert_int_equal(stats.appends, 0);
    store_close(st);

    /* A crash after a checkpoint: the first part is in the main database, the second in a new
     * WAL generation written over the start of the old one; the old frames beyond its end are
     * not replayed (their salt is the old one). */
    struct recset r2;
    recset_make(&r2, &t->fx, FX_W0, 60, 0);
    cs = run_wal_child(t->dir, &r2, 0, 50, true, 60);
    assert_true(cs.checkpoints >= 1);
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 10);
    for (size_t i = 0; i < r2.n; i++)
        assert_true(stored_is(st, r2.hash[i], r2.data[i], r2.size[i]));
    expect_head(st, cap, w, N + 60, r2.hash[59], N + 60, false);
    store_close(st);
    recset_free(&r2);
    recset_free(&r);
}

static void test_store_wal_torn_tail(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W1].keys.writer_id;
    enum { N = 30 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W1, N, 0);
    (void)run_wal_child(t->dir, &r, 0, N, false, N);
    size_t off[N + 1];
    assert_int_equal(wal_frames(t->dir, off, N + 1), N);
    /* A torn last frame: one flipped byte in the record's signature (which the record hash
     * does not cover, so only the frame check can see it). */
    size_t last = off[N - 1] + 48 + r.size[N - 1] - 10;
    uint8_t b = 0x5a;
    patch_file(t->dir, "wal", last, &b, 1);
    struct store *st = open_store(t->dir, 0, 0);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, N - 1);
    for (size_t i = 0; i < N - 1; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    assert_false(store_has(st, r.hash[N - 1]));
    expect_head(st, cap, w, N - 1, r.hash[N - 2], N - 1, false);
    /* The store goes on: the record that was torn is appended again. */
    assert_int_equal(append_sync(st, r.data[N - 1], r.size[N - 1]), PSL_OK);
    expect_head(st, cap, w, N, r.hash[N - 1], N, false);
    store_close(st);

    /* A frame cut short in the middle: the frames before it are replayed. */
    struct recset r2;
    recset_make(&r2, &t->fx, FX_W1, 10, 0);
    (void)run_wal_child(t->dir, &r2, 0, 10, false, 10);
    size_t off2[11];
    assert_int_equal(wal_frames(t->dir, off2, 11), 10);
    char path[128];
    snprintf(path, sizeof path, "%s/wal", t->dir);
    assert_int_equal(truncate(path, (off_t)(off2[7] + 48 + 100)), 0);
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 7);
    expect_head(st, cap, w, N + 7, r2.hash[6], N + 7, false);
    assert_false(store_has(st, r2.hash[7]));
    store_close(st);
    recset_free(&r2);
    recset_free(&r);
}

static void test_store_wal_garbage(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, 12, 0);
    (void)run_wal_child(t->dir, &r, 0, 4, false, 4);
    size_t off[8];
    assert_int_equal(wal_frames(t->dir, off, 8), 4);
    /* Frame 3 claims the largest size there is (and more than the file holds); frame 2 is
     * intact. Then random bytes over the whole rest of the file. */
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    patch_file(t->dir, "wal", off[2] + 4, huge, sizeof huge);
    uint8_t junk[65536];
    rng_bytes(junk, sizeof junk);
    patch_file(t->dir, "wal", off[3], junk, sizeof junk);
    uint64_t t0 = now_ms();
    struct store *st = open_store(t->dir, 0, 0);
    assert_true(now_ms() - t0 < 5000);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 2);
    expect_head(st, cap, w, 2, r.hash[1], 2, false);
    store_close(st);

    /* A size at the limit that the file does not hold, after a valid first frame. */
    (void)run_wal_child(t->dir, &r, 2, 6, false, 6);
    assert_int_equal(wal_frames(t->dir, off, 8), 4);
    uint8_t at_limit[4];
    put_le32(at_limit, PSL_RECORD_SIZE_MAX);
    patch_file(t->dir, "wal", off[1] + 4, at_limit, sizeof at_limit);
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 1);
    expect_head(st, cap, w, 3, r.hash[2], 3, false);
    store_close(st);

    /* The whole WAL is random bytes (the header too): nothing to replay, opens cleanly and
     * takes appends. */
    uint8_t *big = malloc(1u << 20);
    assert_non_null(big);
    rng_bytes(big, 1u << 20);
    patch_file(t->dir, "wal", 0, big, 1u << 20);
    free(big);
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 0);
    expect_head(st, cap, w, 3, r.hash[2], 3, false);
    for (size_t i = 3; i < 12; i++)
        assert_int_equal(append_sync(st, r.data[i], r.size[i]), PSL_OK);
    expect_head(st, cap, w, 12, r.hash[11], 12, false);
    store_close(st);
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 0); /* close checkpointed */
    expect_head(st, cap, w, 12, r.hash[11], 12, false);
    store_close(st);
    recset_free(&r);
}

/* Waits (up to 5 s) for the first checkpoint of an idle store: one, and the WAL reset. */
static void expect_timed_checkpoint(struct store *st)
{
    struct store_stats stats;
    uint64_t deadline = now_ms() + 5000;
    do {
        sleep_ms(50);
        store_get_stats(st, &stats);
    } while (stats.checkpoints == 0 && now_ms() < deadline);
    assert_int_equal(stats.checkpoints, 1);
    assert_int_equal(stats.wal_bytes, 0);
}

static void test_store_checkpoint(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name, *w = t->fx.w[FX_W0].keys.writer_id;
    enum { N = 20, BIG = 900 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 0);
    struct store *st = open_store(t->dir, 0, 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(append_sync(st, r.data[i], r.size[i]), PSL_OK);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.checkpoints, 0);
    assert_true(stats.wal_bytes >= N * 48);
    /* About a second after the first frame, the idle store checkpoints and resets the WAL. */
    expect_timed_checkpoint(st);
    uint64_t deadline;
    for (size_t i = 0; i < N; i++)
        assert_true(stored_is(st, r.hash[i], r.data[i], r.size[i]));
    expect_head(st, cap, w, N, r.hash[N - 1], N, false);
    size_t off[2];
    assert_int_equal(wal_frames(t->dir, off, 2), 0); /* no frame of the new generation */

    /* 16 MiB of frames make a checkpoint without waiting. */
    struct recset big;
    recset_make(&big, &t->fx, FX_W0, BIG, 20000);
    struct acks a;
    acks_init(&a);
    struct ack *slots = calloc(BIG, sizeof *slots);
    assert_non_null(slots);
    for (size_t i = 0; i < BIG; i++) {
        slots[i].all = &a;
        assert_int_equal(append_async(st, big.data[i], big.size[i], &slots[i]), PSL_OK);
    }
    assert_int_equal(acks_wait(&a, BIG, 60000), BIG);
    deadline = now_ms() + 900; /* well before the interval: the size is the trigger */
    do { /* the checkpoint follows the callbacks of the batch that filled the WAL */
        store_get_stats(st, &stats);
        if (stats.checkpoints < 2)
            sleep_ms(10);
    } while (stats.checkpoints < 2 && now_ms() < deadline);
    assert_true(stats.checkpoints >= 2);
    assert_true(stats.wal_bytes < (16u << 20));
    expect_head(st, cap, w, N + BIG, big.hash[BIG - 1], N + BIG, false);
    store_close(st); /* checkpoints what is left */
    st = open_store(t->dir, 0, 0);
    store_get_stats(st, &stats);
    assert_int_equal(stats.wal_replayed, 0);
    for (size_t i = 0; i < BIG; i += 97)
        assert_true(stored_is(st, big.hash[i], big.data[i], big.size[i]));
    expect_head(st, cap, w, N + BIG, big.hash[BIG - 1], N + BIG, false);
    store_close(st);
    acks_deinit(&a);
    free(slots);
    recset_free(&big);
    recset_free(&r);
}

/* inline_when_idle: a lone append is committed by store_append itself (its callback has run
 * when it returns); the once-a-second checkpoint still happens when every commit is inline;
 * appends from two threads that come close together queue for the committer, and every
 * callback runs exactly once with the heads right. */
static void test_store_inline_idle(void **state)
{
    struct tstate *t = *state;
    const uint8_t *cap = t->fx.meta.name;
    enum { N = 6, M = 80 };
    struct recset r;
    recset_make(&r, &t->fx, FX_W0, N, 0);
    struct store_config cfg = {.dir = t->dir, .inline_when_idle = true};
    struct store *st = NULL;
    assert_int_equal(store_open(&st, &cfg), PSL_OK);
    struct acks a;
    acks_init(&a);
    struct ack slots[N];
    memset(slots, 0, sizeof slots);
    struct store_stats stats;
    for (size_t i = 0; i < N; i++) {
        slots[i].all = &a;
        store_get_stats(st, &stats); /* idle: longer than twice any commit so far */
        sleep_ms((unsigned)(2 * stats.commit_ns_max / 1000000u) + 20u);
        assert_int_equal(append_async(st, r.data[i], r.size[i], &slots[i]), PSL_OK);
        assert_int_equal(slots[i].calls, 1); /* committed and acknowledged already */
        assert_int_equal(slots[i].err, PSL_OK);
    }
    store_get_stats(st, &stats);
    assert_true(stats.inline_commits == N && stats.commits == N);
    assert_int_equal(stats.checkpoints, 0);
    /* Nothing went through the committer, yet it checkpoints about a second after the WAL's
     * first frame. */
    expect_timed_checkpoint(st);
    expect_head(st, cap, t->fx.w[FX_W0].keys.writer_id, N, r.hash[N - 1], N, false);

    /* Two threads, bursts with pauses: some commits inline, the rest batched. */
    struct recset rw[2];
    struct writer_job jobs[2];
    pthread_t th[2];
    struct acks b;
    acks_init(&b);
    for (unsigned i = 0; i < 2; i++) {
        recset_make(&rw[i], &t->fx, FX_W1 + i, M, 0);
        jobs[i] = (struct writer_job){.st = st, .r = &rw[i], .a = &b};
        jobs[i].slots = calloc(M, sizeof *jobs[i].slots);
        assert_non_null(jobs[i].slots);
        for (size_t k = 0; k < M; k++)
            jobs[i].slots[k].all = &b;
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &jobs[i]), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].err, PSL_OK);
    }
    assert_int_equal(acks_wait(&b, 2 * M, 30000), 2 * M);
    for (unsigned i = 0; i < 2; i++) {
        for (size_t k = 0; k < M; k++) {
            assert_int_equal(jobs[i].slots[k].calls, 1);
            assert_int_equal(jobs[i].slots[k].err, PSL_OK);
        }
        expect_head(st, cap, t->fx.w[FX_W1 + i].keys.writer_id, M, rw[i].hash[M - 1], M,
                    false);
        free(jobs[i].slots);
        recset_free(&rw[i]);
    }
    store_get_stats(st, &stats);
    assert_int_equal(stats.appends, N + 2 * M);
    assert_true(stats.inline_commits >= N && stats.inline_commits <= stats.commits);
    store_close(st);
    acks_deinit(&b);
    acks_deinit(&a);
    recset_free(&r);
}

/* A second store on the same directory is refused while the first is open. */
static void test_store_one_process(void **state)
{
    struct tstate *t = *state;
    struct store *st = open_store(t->dir, 0, 0);
    struct store_config cfg = {.dir = t->dir};
    struct store *again = NULL;
    assert_int_equal(store_open(&again, &cfg), PSL_ERR_IO);
    assert_null(again);
    store_close(st);
    st = open_store(t->dir, 0, 0);
    store_close(st);
}

static void test_store_open_errors(void **state)
{
    struct tstate *t = *state;
    /* a directory that cannot be created */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/missing/deeper", t->dir);
    struct store_config cfg = {.dir = bad};
    struct store *st = NULL;
    assert_int_not_equal(store_open(&st, &cfg), PSL_OK);
    assert_null(st);
    /* a file where the directory should be */
    char file[128];
    snprintf(file, sizeof file, "%s/file", t->dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    cfg.dir = file;
    assert_int_not_equal(store_open(&st, &cfg), PSL_OK);
    assert_null(st);
    unlink(file);
    store_close(NULL);
}

/* ---- collection (store_collect) ---- */

static int head_cmp(const void *a, const void *b)
{
    return memcmp(((const struct checkpoint_head *)a)->writer,
                  ((const struct checkpoint_head *)b)->writer, HASH_SIZE);
}

/* Encodes heads (sorted here) and live hashes (ascending already) as a checkpoint of generation
 * gen and decodes it into *cp, which points into *buf (free it after). */
static void make_cp(struct checkpoint *cp, uint8_t **buf, uint64_t gen, struct checkpoint_head *h,
                    size_t nh, const uint8_t (*live)[HASH_SIZE], size_t nl)
{
    qsort(h, nh, sizeof *h, head_cmp);
    struct checkpoint in = {.index_seq = 50,
                            .generation = gen,
                            .head_count = nh,
                            .heads = h,
                            .live_count = nl,
                            .live = live};
    memset(in.index_hash, 0xee, HASH_SIZE);
    size_t n = checkpoint_encoded_size(nh, nl);
    *buf = malloc(n);
    assert_non_null(*buf);
    struct wr w;
    wr_init(&w, *buf, n);
    assert_int_equal(checkpoint_encode(&in, &w), PSL_OK);
    assert_int_equal(checkpoint_decode(cp, *buf, n), PSL_OK);
}

static void set_head(struct checkpoint_head *h, const uint8_t writer[HASH_SIZE], uint64_t seq,
                     const uint8_t hash[HASH_SIZE])
{
    memcpy(h->writer, writer, HASH_SIZE);
    h->seq = seq;
    memcpy(h->hash, hash, HASH_SIZE);
}

/* The seqs of a writer's stored records, in order, as a bit mask (seq < 64). */
static uint64_t stored_seqs(struct store *st, const uint8_t capsule[HASH_SIZE],
                            const uint8_t writer[HASH_SIZE])
{
    struct collect c = {0};
    assert_int_equal(store_range(st, capsule, writer, 1, 63, collect_fn, &c), PSL_OK);
    uint64_t mask = 0;
    for (size_t i = 0; i < c.n && i < COLLECT_MAX; i++)
        mask |= 1ull << get_le64(c.data[i] + RECORD_OFFSET_SEQ);
    collect_free(&c);
    return mask;
}

#define SEQS(...) seqs_mask((const unsigned[]){__VA_ARGS__, 0})
static uint64_t seqs_mask(const unsigned *s)
{
    uint64_t m = 0;
    for (; *s; s++)
        m |= 1ull << *s;
    return m;
}

/* Switches the fixture to a capsule of the given retention (new name: chains restart). */
static void fx_retention(struct fx *f, uint8_t retention)
{
    f->meta.retention = retention;
    assert_int_equal(meta_sign(&f->meta, &f->owner), PSL_OK);
    assert_int_equal(meta_encode(&f->meta, f->meta_enc, sizeof f->meta_enc, &f->meta_size), PSL_OK);
    for (unsigned i = 0; i < FX_WRITERS; i++)
        record_chain_init(&f->w[i].chain, f->meta.name);
}

/* The records of the collection tests: W0 = CERT, DATA x4, RESULT, DATA x4 (seq 1..10);
 * W1 = CERT, LSM_BLOCK x4 (1..5); COORD = CERT, DATA x2 (1..3); LEADER = CERT, DATA x4 (1..5),
 * of which only seq 5 is appended (this store was behind on that writer). */
struct gc_world {
    struct recset w0a, w0b, w1, co, ld;
    uint8_t *result;
    size_t result_size;
    uint8_t result_hash[HASH_SIZE];
};

static void gc_world_make(struct gc_world *g, struct fx *f, struct store *st)
{
    recset_make(&g->w0a, f, FX_W0, 5, 0);
    g->result =
        fx_seal(&f->w[FX_W0], REC_RESULT, "sealed-result", 13, &g->result_size, g->result_hash);
    recset_make(&g->w0b, f, FX_W0, 4, 0);
    recset_make(&g->w1, f, FX_W1, 5, 300);
    recset_make(&g->co, f, FX_COORD, 3, 0);
    recset_make(&g->ld, f, FX_LEADER, 5, 0);
    for (size_t i = 0; i < g->w0a.n; i++)
        assert_int_equal(append_sync(st, g->w0a.data[i], g->w0a.size[i]), PSL_OK);
    assert_int_equal(append_sync(st, g->result, g->result_size), PSL_OK);
    for (size_t i = 0; i < g->w0b.n; i++)
        assert_int_equal(append_sync(st, g->w0b.data[i], g->w0b.size[i]), PSL_OK);
    for (size_t i = 0; i < g->w1.n; i++)
        assert_int_equal(append_sync(st, g->w1.data[i], g->w1.size[i]), PSL_OK);
    for (size_t i = 0; i < g->co.n; i++)
        assert_int_equal(append_sync(st, g->co.data[i], g->co.size[i]), PSL_OK);
    assert_int_equal(append_sync(st, g->ld.data[4], g->ld.size[4]), PSL_OK);
}

static void gc_world_free(struct gc_world *g)
{
    recset_free(&g->w0a);
    recset_free(&g->w0b);
    recset_free(&g->w1);
    recset_free(&g->co);
    recset_free(&g->ld);
    free(g->result);
}

/* A checkpoint of generation gen over the world: W0 at w0_head (7..10), W1 at 5 with its block
 * at seq 3 live, COORD at 3 with hash coord_hash, LEADER at 4. */
static void gc_world_cp(struct gc_world *g, struct fx *f, uint64_t gen, uint64_t w0_head,
                        const uint8_t *coord_hash, struct checkpoint *cp, uint8_t **buf)
{
    struct checkpoint_head h[4];
    set_head(&h[0], f->w[FX_W0].keys.writer_id, w0_head, g->w0b.hash[w0_head - 7]);
    set_head(&h[1], f->w[FX_W1].keys.writer_id, 5, g->w1.hash[4]);
    set_head(&h[2], f->w[FX_COORD].keys.writer_id, 3, coord_hash);
    set_head(&h[3], f->w[FX_LEADER].keys.writer_id, 4, g->ld.hash[3]);
    make_cp(cp, buf, gen, h, 4, (const uint8_t(*)[HASH_SIZE]) & g->w1.hash[2], 1);
}

static void test_store_collect(void **state)
{
    struct tstate *t = *state;
    struct fx *f = &t->fx;
    fx_retention(f, RETENTION_COLLECT_COVERED);
    const uint8_t *cap = f->meta.name;
    const uint8_t *w0 = f->w[FX_W0].keys.writer_id, *w1 = f->w[FX_W1].keys.writer_id;
    const uint8_t *co = f->w[FX_COORD].keys.writer_id, *ld = f->w[FX_LEADER].keys.writer_id;
    struct store *st = open_store(t->dir, 0, 0);
    struct checkpoint cp;
    uint8_t *buf;
    uint8_t rec_hash[HASH_SIZE];
    memset(rec_hash, 0x42, HASH_SIZE);
    struct store_collect_result res;
    struct gc_world g;
    gc_world_make(&g, f, st);
    gc_world_cp(&g, f, 3, 8, g.co.hash[2], &cp, &buf);

    /* No metadata stored: refused, nothing happens. */
    assert_int_equal(store_collect(st, cap, rec_hash, w1, &cp, &res), PSL_ERR_NOT_FOUND);
    struct store_gc_state gs;
    assert_int_equal(store_gc_state_get(st, cap, &gs), PSL_ERR_NOT_FOUND);
    assert_int_equal(store_meta_put(st, cap, f->meta_enc, f->meta_size), PSL_OK);

    uint64_t bytes = g.w0a.size[1] + g.w0a.size[2] + g.w0a.size[3] + g.w0a.size[4] + g.w0b.size[0] +
                     g.w1.size[1] + g.w1.size[3] + g.co.size[1];
    assert_int_equal(store_collect(st, cap, rec_hash, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_APPLIED);
    assert_int_equal(res.records, 8);
    assert_int_equal(res.bytes, bytes);
    assert_int_equal(res.writers, 4);
    assert_int_equal(res.skipped, 0);
    assert_int_equal(res.rebased, 1); /* LEADER: the store had only seq 5 */

    for (int round = 0; round < 2; round++) {
        /* W0: the CERT, the RESULT, the head and what follows stay. */
        assert_true(stored_seqs(st, cap, w0) == SEQS(1, 6, 8, 9, 10));
        /* W1: the CERT, the live block and the head stay. */
        assert_true(stored_seqs(st, cap, w1) == SEQS(1, 3, 5));
        assert_true(stored_seqs(st, cap, co) == SEQS(1, 3)); /* head at 3: seq 2 dropped */
        assert_false(store_has(st, g.w0a.hash[1]));
        assert_false(store_has(st, g.w1.hash[1]));
        assert_true(store_has(st, g.result_hash));
        /* Heads keep their meaning; the writer this store was behind on starts at the cut. */
        expect_head(st, cap, w0, 10, g.w0b.hash[3], 10, false);
        expect_head(st, cap, w1, 5, g.w1.hash[4], 5, false);
        expect_head(st, cap, ld, 5, g.ld.hash[4], 5, false); /* base 4 + the stored seq 5 */
        assert_true(store_horizon_get(st, cap, w0) == 8);
        assert_true(store_horizon_get(st, cap, w1) == 5);
        assert_true(store_horizon_get(st, cap, ld) == 4);
        uint8_t other[HASH_SIZE];
        memset(other, 9, HASH_SIZE);
        assert_true(store_horizon_get(st, cap, other) == 0);
        assert_int_equal(store_gc_state_get(st, cap, &gs), PSL_OK);
        assert_true(gs.generation == 3 && gs.records == 8 && gs.bytes == bytes);
        assert_memory_equal(gs.record_hash, rec_hash, HASH_SIZE);
        assert_memory_equal(gs.compactor, w1, HASH_SIZE);
        /* Idempotent: the same checkpoint again, or an older one, changes nothing. */
        assert_int_equal(store_collect(st, cap, rec_hash, w1, &cp, &res), PSL_OK);
        assert_int_equal(res.outcome, STORE_COLLECT_STALE);
        assert_int_equal(res.records, 0);
        if (round == 0) { /* persists across a restart */
            store_close(st);
            st = open_store(t->dir, 0, 0);
        }
    }
    free(buf);
    gc_world_cp(&g, f, 2, 10, g.co.hash[2], &cp, &buf);
    assert_int_equal(store_collect(st, cap, rec_hash, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_STALE);
    assert_true(stored_seqs(st, cap, w0) == SEQS(1, 6, 8, 9, 10));
    free(buf);

    /* The chains go on: the next record links to the head. */
    struct recset more;
    recset_make(&more, f, FX_W0, 1, 0);
    assert_int_equal(append_sync(st, more.data[0], more.size[0]), PSL_OK);
    expect_head(st, cap, w0, 11, more.hash[0], 11, false);
    recset_free(&more);

    /* A newer checkpoint moves W0's head to 10; the coordinator's head there names a record
     * this store does not hold at that seq: that writer is left alone. */
    uint8_t wrong[HASH_SIZE];
    memset(wrong, 0x13, HASH_SIZE);
    gc_world_cp(&g, f, 4, 10, wrong, &cp, &buf);
    assert_int_equal(store_collect(st, cap, rec_hash, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_APPLIED);
    assert_int_equal(res.records, 2); /* W0 seq 8 and 9 */
    assert_int_equal(res.skipped, 1);
    assert_true(stored_seqs(st, cap, w0) == SEQS(1, 6, 10, 11));
    assert_true(stored_seqs(st, cap, co) == SEQS(1, 3));
    assert_true(store_horizon_get(st, cap, w0) == 10);
    assert_int_equal(store_gc_state_get(st, cap, &gs), PSL_OK);
    assert_true(gs.generation == 4 && gs.records == 10);
    free(buf);
    store_close(st);
    gc_world_free(&g);
}

/* Seals cp's encoding as W1's next record (a CHECKPOINT), appends it, returns its hash. */
static void append_checkpoint(struct store *st, struct fx *f, const uint8_t *buf,
                              const struct checkpoint *cp, uint8_t hash[HASH_SIZE])
{
    size_t size, n = checkpoint_encoded_size(cp->head_count, cp->live_count);
    uint8_t *rec = fx_seal(&f->w[FX_W1], REC_CHECKPOINT, buf, n, &size, hash);
    assert_int_equal(append_sync(st, rec, size), PSL_OK);
    free(rec);
}

/* A block the previously applied checkpoint named stays until the next one: W1 = CERT,
 * LSM_BLOCK x4 (1..5); checkpoint 3 (live: the block at seq 3) is stored at seq 6, a block at
 * seq 7; checkpoint 5 (W1 at 7, nothing live) keeps block 3 (checkpoint 3 named it) and drops
 * checkpoint 3's record; checkpoint 6 (the same cut) then drops block 3. */
static void test_store_collect_keeps_previous_live(void **state)
{
    struct tstate *t = *state;
    struct fx *f = &t->fx;
    fx_retention(f, RETENTION_COLLECT_COVERED);
    const uint8_t *cap = f->meta.name, *w1 = f->w[FX_W1].keys.writer_id;
    struct store *st = open_store(t->dir, 0, 0);
    assert_int_equal(store_meta_put(st, cap, f->meta_enc, f->meta_size), PSL_OK);
    struct recset blocks, more;
    recset_make(&blocks, f, FX_W1, 5, 300);
    for (size_t i = 0; i < blocks.n; i++)
        assert_int_equal(append_sync(st, blocks.data[i], blocks.size[i]), PSL_OK);
    struct checkpoint_head h;
    struct checkpoint cp;
    uint8_t *buf, ck3[HASH_SIZE], ck5[HASH_SIZE], ck6[HASH_SIZE];
    struct store_collect_result res;
    set_head(&h, w1, 5, blocks.hash[4]);
    make_cp(&cp, &buf, 3, &h, 1, (const uint8_t(*)[HASH_SIZE]) & blocks.hash[2], 1);
    append_checkpoint(st, f, buf, &cp, ck3);
    assert_int_equal(store_collect(st, cap, ck3, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_APPLIED);
    assert_true(stored_seqs(st, cap, w1) == SEQS(1, 3, 5, 6));
    free(buf);
    recset_make(&more, f, FX_W1, 1, 300); /* seq 7 */
    assert_int_equal(append_sync(st, more.data[0], more.size[0]), PSL_OK);
    set_head(&h, w1, 7, more.hash[0]);
    make_cp(&cp, &buf, 5, &h, 1, NULL, 0);
    memset(ck5, 0x55, HASH_SIZE); /* not stored: only the applied one (3) is read back */
    assert_int_equal(store_collect(st, cap, ck5, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_APPLIED);
    assert_true(stored_seqs(st, cap, w1) == SEQS(1, 3, 7)); /* block 3 kept, checkpoint 3 gone */
    free(buf);
    make_cp(&cp, &buf, 6, &h, 1, NULL, 0);
    memset(ck6, 0x66, HASH_SIZE);
    assert_int_equal(store_collect(st, cap, ck6, w1, &cp, &res), PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_APPLIED);
    assert_true(stored_seqs(st, cap, w1) == SEQS(1, 7)); /* checkpoint 5 did not name it */
    free(buf);
    recset_free(&blocks);
    recset_free(&more);
    store_close(st);
}

/* Keep-all capsules: a checkpoint changes nothing, whatever it says. */
static void test_store_collect_keep_all(void **state)
{
    struct tstate *t = *state;
    struct fx *f = &t->fx;
    fx_retention(f, RETENTION_KEEP_ALL);
    const uint8_t *cap = f->meta.name;
    struct store *st = open_store(t->dir, 0, 0);
    assert_int_equal(store_meta_put(st, cap, f->meta_enc, f->meta_size), PSL_OK);
    struct gc_world g;
    gc_world_make(&g, f, st);
    struct checkpoint cp;
    uint8_t *buf;
    gc_world_cp(&g, f, 9, 10, g.co.hash[2], &cp, &buf);
    uint8_t rec_hash[HASH_SIZE];
    memset(rec_hash, 0x42, HASH_SIZE);
    struct store_collect_result res;
    assert_int_equal(store_collect(st, cap, rec_hash, f->w[FX_W1].keys.writer_id, &cp, &res),
                     PSL_OK);
    assert_int_equal(res.outcome, STORE_COLLECT_KEEP_ALL);
    assert_int_equal(res.records, 0);
    assert_true(stored_seqs(st, cap, f->w[FX_W0].keys.writer_id) ==
                SEQS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    assert_true(stored_seqs(st, cap, f->w[FX_W1].keys.writer_id) == SEQS(1, 2, 3, 4, 5));
    assert_true(store_horizon_get(st, cap, f->w[FX_W0].keys.writer_id) == 0);
    struct store_gc_state gs;
    assert_int_equal(store_gc_state_get(st, cap, &gs), PSL_ERR_NOT_FOUND);
    expect_head(st, cap, f->w[FX_LEADER].keys.writer_id, 0, NULL, 5, false);
    free(buf);
    store_close(st);
    gc_world_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_append_and_read, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_group_commit, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_close_commits_queued, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_duplicates, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_out_of_order_and_gap, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_bad_prev, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_fork, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_concurrent_writers, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_survives_kill9, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_full, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_wal_replay_after_crash, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_wal_torn_tail, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_wal_garbage, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_checkpoint, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_inline_idle, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_one_process, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_open_errors, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_collect, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_collect_keep_all, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_collect_keeps_previous_live, store_setup,
                                        store_teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
