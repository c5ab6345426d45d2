/* test_fabric.c: the pub/sub fabric (DESIGN §8): topic rules, the in-process bus (ordering,
 * unsubscribe, re-entrancy, flush, backpressure, limits), the fault-injecting wrapper (loss,
 * duplication, delay and reordering, determinism per seed) and the NATS backend against a real
 * nats-server that this program starts on a free loopback port and always stops. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "fabric/fabric.h"
#include "testutil.h"

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

/* A message carries its number in its first four bytes; the rest is filler. */
static void msg_fill(uint8_t *buf, size_t size, uint32_t num)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(num * 31u + i);
    if (size >= 4)
        put_le32(buf, num);
}

static bool msg_check(const uint8_t *buf, size_t size, uint32_t num)
{
    if (size >= 4 && get_le32(buf) != num)
        return false;
    for (size_t i = 4; i < size; i++)
        if (buf[i] != (uint8_t)(num * 31u + i))
            return false;
    return true;
}

/* A receiver: counts deliveries and records message numbers in arrival order. */
#define RX_NUMS_MAX 4096
struct rx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t count;
    size_t bad; /* deliveries with a malformed body or the wrong topic */
    uint32_t nums[RX_NUMS_MAX];
    uint64_t at_ms[RX_NUMS_MAX];
    size_t sizes[RX_NUMS_MAX];
    char last_topic[FABRIC_TOPIC_SIZE_MAX];
    const char *expect_topic; /* NULL: any */
    unsigned sleep_ms;        /* per delivery, to make a slow subscriber */
    atomic_int in_handler;
    struct shared_log *log;
    int tag;
};

/* One log shared by several receivers: (tag, number) in global delivery order. */
struct shared_log {
    pthread_mutex_t mu;
    size_t n;
    int tag[RX_NUMS_MAX];
    uint32_t num[RX_NUMS_MAX];
};

static struct rx *rx_new(void)
{
    struct rx *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->in_handler, 0);
    return r;
}

static void rx_free(struct rx *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void rx_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    struct rx *r = ctx;
    atomic_store(&r->in_handler, 1);
    if (r->sleep_ms)
        sleep_ms(r->sleep_ms);
    uint32_t num = size >= 4 ? get_le32(data) : UINT32_MAX;
    bool ok = (size < 4 || msg_check(data, size, num)) &&
              (!r->expect_topic || strcmp(topic, r->expect_topic) == 0);
    if (r->log) {
        pthread_mutex_lock(&r->log->mu);
        if (r->log->n < RX_NUMS_MAX) {
            r->log->tag[r->log->n] = r->tag;
            r->log->num[r->log->n] = num;
            r->log->n++;
        }
        pthread_mutex_unlock(&r->log->mu);
    }
    pthread_mutex_lock(&r->mu);
    if (r->count < RX_NUMS_MAX) {
        r->nums[r->count] = num;
        r->at_ms[r->count] = now_ms();
        r->sizes[r->count] = size;
    }
    r->count++;
    if (!ok)
        r->bad++;
    snprintf(r->last_topic, sizeof r->last_topic, "%s", topic);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    atomic_store(&r->in_handler, 0);
}

static size_t rx_count(struct rx *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->count;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until r has at least n deliveries or timeout_ms passed; returns the count. */
static size_t rx_wait(struct rx *r, size_t n, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    while (r->count < n && now_ms() < deadline) {
        struct timespec ts;
        clock_deadline(&ts, 10000000u); /* 10 ms */
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    size_t c = r->count;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static void publish_num(struct fabric *f, const char *topic, uint32_t num, size_t size)
{
    uint8_t buf[64];
    assert_true(size <= sizeof buf);
    msg_fill(buf, size, num);
    assert_int_equal(fabric_publish(f, topic, buf, size), PSL_OK);
}

/* ---- topics ---- */

static void test_topic_matches(void **state)
{
    (void)state;
    /* exact */
    assert_true(topic_matches("a", "a"));
    assert_true(topic_matches("a.b.c", "a.b.c"));
    assert_false(topic_matches("a.b.c", "a.b.d"));
    /* length differences */
    assert_false(topic_matches("a.b.c", "a.b"));
    assert_false(topic_matches("a.b", "a.b.c"));
    assert_false(topic_matches("a", "a.b"));
    /* no partial-token matches */
    assert_false(topic_matches("a.b", "a.bc"));
    assert_false(topic_matches("a.bc", "a.b"));
    assert_false(topic_matches("ab.c", "a.c"));
    assert_false(topic_matches("a.c", "ab.c"));
    assert_false(topic_matches("a*.c", "ab.c"));
    assert_false(topic_matches("a.b*", "a.bc"));
    assert_false(topic_matches("a.b>", "a.bc.d"));
    /* `*` is exactly one token */
    assert_true(topic_matches("*", "a"));
    assert_false(topic_matches("*", "a.b"));
    assert_true(topic_matches("a.*.c", "a.b.c"));
    assert_true(topic_matches("a.*.c", "a.xyz.c"));
    assert_false(topic_matches("a.*.c", "a.b.d"));
    assert_false(topic_matches("a.*.c", "a.c"));
    assert_false(topic_matches("a.*", "a.b.c"));
    assert_false(topic_matches("a.*", "a"));
    assert_true(topic_matches("*.*", "a.b"));
    assert_true(topic_matches("*.b.*", "x.b.y"));
    /* `>` is the rest, at least one token */
    assert_true(topic_matches(">", "a"));
    assert_true(topic_matches(">", "a.b.c"));
    assert_true(topic_matches("a.>", "a.b"));
    assert_true(topic_matches("a.>", "a.b.c.d"));
    assert_false(topic_matches("a.>", "a"));
    assert_false(topic_matches("a.>", "b.c"));
    assert_true(topic_matches("*.b.>", "x.b.y.z"));
    assert_false(topic_matches("*.b.>", "x.b"));
    /* topic names of DESIGN §8 */
    assert_true(topic_matches("psl.*.ack.>", "psl.00ff.ack.w1"));
    assert_false(topic_matches("psl.*.ack.>", "psl.00ff.rec"));
}

static void test_topic_is_valid(void **state)
{
    (void)state;
    assert_true(topic_is_valid("a"));
    assert_true(topic_is_valid("a.b"));
    assert_true(topic_is_valid("psl.abc-DEF_09.rec"));
    /* empty topic and empty tokens */
    assert_false(topic_is_valid(""));
    assert_false(topic_is_valid("."));
    assert_false(topic_is_valid(".a"));
    assert_false(topic_is_valid("a."));
    assert_false(topic_is_valid("a..b"));
    /* wildcards are for patterns only */
    assert_false(topic_is_valid("*"));
    assert_false(topic_is_valid("a.*"));
    assert_false(topic_is_valid("a.>"));
    assert_false(topic_is_valid(">"));
    /* characters outside [A-Za-z0-9_-] */
    assert_false(topic_is_valid("a b"));
    assert_false(topic_is_valid("a/b"));
    assert_false(topic_is_valid("a\tb"));
    assert_false(topic_is_valid("a\nb"));
    assert_false(topic_is_valid("caf\xc3\xa9"));
    /* length: at most FABRIC_TOPIC_SIZE_MAX - 1 characters */
    char t[1024];
    memset(t, 'x', sizeof t);
    t[FABRIC_TOPIC_SIZE_MAX - 1] = '\0';
    assert_true(topic_is_valid(t));
    memset(t, 'x', sizeof t);
    t[FABRIC_TOPIC_SIZE_MAX] = '\0';
    assert_false(topic_is_valid(t));
    t[sizeof t - 1] = '\0';
    assert_false(topic_is_valid(t));
}

static void test_topic_capsule(void **state)
{
    (void)state;
    uint8_t cap[HASH_SIZE];
    for (unsigned i = 0; i < HASH_SIZE; i++)
        cap[i] = (uint8_t)i;
    char t[FABRIC_TOPIC_SIZE_MAX];
    topic_capsule(t, cap, "rec", NULL);
    assert_string_equal(t,
                        "psl.000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f.rec");
    assert_true(topic_is_valid(t));
    topic_capsule(t, cap, "ack", "w1");
    assert_true(topic_is_valid(t));
    assert_true(topic_matches("psl.*.ack.>", t));
    assert_int_equal(strlen(t), 4 + 64 + 1 + 3 + 1 + 2);
}

/* ---- in-process bus ---- */

struct bus_state {
    struct inproc_bus *bus;
    struct fabric *c1, *c2;
    struct rx *rx[4];
};

/* A bus with two connections made by connect (plain or inline) and four receivers. */
static int bus_setup_with(void **state, psl_err (*connect)(struct inproc_bus *, struct fabric **))
{
    struct bus_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    if (inproc_bus_create(&s->bus, 1 << 20) != PSL_OK || connect(s->bus, &s->c1) != PSL_OK ||
        connect(s->bus, &s->c2) != PSL_OK)
        return -1;
    for (unsigned i = 0; i < 4; i++)
        s->rx[i] = rx_new();
    *state = s;
    return 0;
}

static int bus_setup(void **state)
{
    return bus_setup_with(state, fabric_inproc_connect);
}

/* The same bus with inline connections (fabric_inproc_connect_inline): every inproc test that
 * runs on it must hold with deliveries on the publishing thread as well. */
static int bus_setup_inline(void **state)
{
    return bus_setup_with(state, fabric_inproc_connect_inline);
}

/* Connections first (their subscriptions go, handlers stop), then the bus, then receivers. */
static int bus_teardown(void **state)
{
    struct bus_state *s = *state;
    fabric_destroy(s->c1);
    fabric_destroy(s->c2);
    inproc_bus_destroy(s->bus);
    for (unsigned i = 0; i < 4; i++)
        rx_free(s->rx[i]);
    free(s);
    return 0;
}

static void test_inproc_order_and_fanout(void **state)
{
    struct bus_state *s = *state;
    struct shared_log *log = calloc(1, sizeof *log);
    assert_non_null(log);
    pthread_mutex_init(&log->mu, NULL);
    uint64_t id[3];
    /* c1 subscribes to what it publishes itself; c2 with a wildcard and an exact pattern that
     * does not match. */
    for (unsigned i = 0; i < 3; i++) {
        s->rx[i]->log = log;
        s->rx[i]->tag = (int)i;
    }
    assert_int_equal(fabric_subscribe(s->c1, "t.a", rx_handler, s->rx[0], &id[0]), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c2, "t.*", rx_handler, s->rx[1], &id[1]), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c2, "t.b", rx_handler, s->rx[2], &id[2]), PSL_OK);
    assert_true(id[0] != id[1] && id[1] != id[2] && id[0] != id[2]);
    const uint32_t n = 300;
    for (uint32_t i = 0; i < n; i++)
        publish_num(s->c1, (i % 3 == 2) ? "t.b" : "t.a", i, 16);
    assert_int_equal(fabric_flush(s->c1), PSL_OK);
    /* flush returned: everything published before it has been delivered */
    assert_int_equal(rx_count(s->rx[0]), n - n / 3);
    assert_int_equal(rx_count(s->rx[1]), n);
    assert_int_equal(rx_count(s->rx[2]), n / 3);
    for (unsigned k = 0; k < 3; k++)
        assert_int_equal(s->rx[k]->bad, 0);
    /* per subscriber: in publish order */
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(s->rx[1]->nums[i], i);
    for (size_t i = 1; i < rx_count(s->rx[0]); i++)
        assert_true(s->rx[0]->nums[i] > s->rx[0]->nums[i - 1]);
    for (size_t i = 1; i < rx_count(s->rx[2]); i++)
        assert_true(s->rx[2]->nums[i] > s->rx[2]->nums[i - 1]);
    /* globally: a message reaches all its subscribers before the next message reaches any */
    pthread_mutex_lock(&log->mu);
    assert_int_equal(log->n, n + n);
    for (size_t i = 1; i < log->n; i++)
        assert_true(log->num[i] >= log->num[i - 1]);
    pthread_mutex_unlock(&log->mu);
    for (unsigned i = 0; i < 3; i++)
        s->rx[i]->log = NULL;
    fabric_unsubscribe(s->c1, id[0]);
    fabric_unsubscribe(s->c2, id[1]);
    fabric_unsubscribe(s->c2, id[2]);
    pthread_mutex_destroy(&log->mu);
    free(log);
}

static void test_inproc_unsubscribe(void **state)
{
    struct bus_state *s = *state;
    uint64_t a, b;
    assert_int_equal(fabric_subscribe(s->c2, "u.x", rx_handler, s->rx[0], &a), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c2, "u.x", rx_handler, s->rx[1], &b), PSL_OK);
    for (uint32_t i = 0; i < 10; i++)
        publish_num(s->c1, "u.x", i, 8);
    assert_int_equal(fabric_flush(s->c1), PSL_OK);
    assert_int_equal(rx_count(s->rx[0]), 10);
    fabric_unsubscribe(s->c2, a);
    for (uint32_t i = 10; i < 20; i++)
        publish_num(s->c1, "u.x", i, 8);
    assert_int_equal(fabric_flush(s->c1), PSL_OK);
    assert_int_equal(rx_count(s->rx[0]), 10); /* nothing after unsubscribe returned */
    assert_int_equal(rx_count(s->rx[1]), 20); /* the other subscription is untouched */
    /* Unknown ids and a second unsubscribe are harmless. */
    fabric_unsubscribe(s->c2, a);
    fabric_unsubscribe(s->c2, 999999);
    fabric_unsubscribe(s->c2, b);

    /* Unsubscribe from another thread while the handler runs: it returns only after the
     * handler has finished, and the handler is not called again. */
    s->rx[2]->sleep_ms = 200;
    uint64_t c;
    assert_int_equal(fabric_subscribe(s->c2, "u.slow", rx_handler, s->rx[2], &c), PSL_OK);
    /* From a plain connection: an inline one could run the slow handler on this thread. */
    struct fabric *plain;
    assert_int_equal(fabric_inproc_connect(s->bus, &plain), PSL_OK);
    publish_num(plain, "u.slow", 1, 8);
    publish_num(plain, "u.slow", 2, 8);
    uint64_t deadline = now_ms() + 5000;
    while (!atomic_load(&s->rx[2]->in_handler) && now_ms() < deadline)
        sleep_ms(1);
    assert_true(atomic_load(&s->rx[2]->in_handler));
    fabric_unsubscribe(s->c2, c);
    assert_false(atomic_load(&s->rx[2]->in_handler));
    assert_int_equal(rx_count(s->rx[2]), 1);
    assert_int_equal(fabric_flush(plain), PSL_OK);
    assert_int_equal(rx_count(s->rx[2]), 1);
    fabric_destroy(plain);
}

/* A handler that publishes (and subscribes, and unsubscribes itself) on the dispatcher thread. */
struct reentrant {
    struct fabric *f;
    uint64_t self_id;
    atomic_int calls;
    psl_err pub_err, sub_err, flush_err;
    uint64_t new_id;
};

static void reentrant_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct reentrant *r = ctx;
    uint32_t num = get_le32(data);
    (void)size;
    atomic_fetch_add(&r->calls, 1);
    uint8_t out[8];
    msg_fill(out, sizeof out, num + 1000);
    r->pub_err = fabric_publish(r->f, "r.out", out, sizeof out);
    r->flush_err = fabric_flush(r->f); /* must not wait for itself */
    if (num == 0) {
        r->sub_err = fabric_subscribe(r->f, "r.never", rx_handler, NULL, &r->new_id);
        fabric_unsubscribe(r->f, r->new_id);
    }
    if (num == 4)
        fabric_unsubscribe(r->f, r->self_id); /* from inside: stops future calls */
}

static void test_inproc_reentrant_handler(void **state)
{
    struct bus_state *s = *state;
    struct reentrant *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->f = s->c1;
    atomic_init(&r->calls, 0);
    uint64_t out_id;
    assert_int_equal(fabric_subscribe(s->c2, "r.out", rx_handler, s->rx[0], &out_id), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c1, "r.in", reentrant_handler, r, &r->self_id), PSL_OK);
    for (uint32_t i = 0; i < 10; i++)
        publish_num(s->c2, "r.in", i, 8);
    /* The first flush covers r.in; the r.out messages published by the handler were queued
     * before each r.in delivery finished, so a second flush covers them. */
    assert_int_equal(fabric_flush(s->c2), PSL_OK);
    assert_int_equal(fabric_flush(s->c2), PSL_OK);
    assert_int_equal(atomic_load(&r->calls), 5);
    assert_int_equal(r->pub_err, PSL_OK);
    assert_int_equal(r->flush_err, PSL_OK);
    assert_int_equal(r->sub_err, PSL_OK);
    assert_int_equal(rx_count(s->rx[0]), 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(s->rx[0]->nums[i], 1000 + i);
    fabric_unsubscribe(s->c2, out_id);
    free(r);
}

static void test_inproc_flush_waits_for_delivery(void **state)
{
    struct bus_state *s = *state;
    /* Two slow subscribers of one topic: flush must not return before the last message has
     * reached both. */
    s->rx[0]->sleep_ms = 1;
    s->rx[1]->sleep_ms = 1;
    uint64_t a, b;
    assert_int_equal(fabric_subscribe(s->c2, "f.x", rx_handler, s->rx[0], &a), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c1, "f.*", rx_handler, s->rx[1], &b), PSL_OK);
    for (unsigned round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < 5; i++)
            publish_num(s->c1, "f.x", round * 5 + i, 8);
        assert_int_equal(fabric_flush(s->c1), PSL_OK);
        assert_int_equal(rx_count(s->rx[0]), (round + 1) * 5);
        assert_int_equal(rx_count(s->rx[1]), (round + 1) * 5);
    }
    /* flush with nothing queued returns at once */
    assert_int_equal(fabric_flush(s->c2), PSL_OK);
    fabric_unsubscribe(s->c2, a);
    fabric_unsubscribe(s->c1, b);
}

/* Inline delivery: on a quiet bus the handler runs on the publishing thread before publish
 * returns; a burst goes through the dispatcher; a handler that publishes, flushes and
 * unsubscribes itself during an inline delivery neither deadlocks nor reorders. */
struct inline_rx {
    pthread_t publisher;
    atomic_uint on_publisher, elsewhere;
};

static void inline_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    (void)data;
    (void)size;
    struct inline_rx *r = ctx;
    if (pthread_equal(pthread_self(), r->publisher))
        atomic_fetch_add(&r->on_publisher, 1);
    else
        atomic_fetch_add(&r->elsewhere, 1);
}

static void test_inproc_inline_delivery(void **state)
{
    struct bus_state *s = *state;
    struct inline_rx r = {.publisher = pthread_self()};
    atomic_init(&r.on_publisher, 0);
    atomic_init(&r.elsewhere, 0);
    uint64_t id;
    assert_int_equal(fabric_subscribe(s->c2, "i.x", inline_handler, &r, &id), PSL_OK);
    for (uint32_t i = 0; i < 20; i++) {
        sleep_ms(1); /* quiet: more than 200 us since the last publish */
        publish_num(s->c1, "i.x", i, 8);
        /* delivered before publish returned, on this thread */
        assert_int_equal(atomic_load(&r.on_publisher) + atomic_load(&r.elsewhere), i + 1);
    }
    assert_true(atomic_load(&r.on_publisher) >= 19); /* a preempted publisher may miss once */
    /* A burst: only its first message can be inline; the rest queue for the dispatcher. */
    unsigned before = atomic_load(&r.elsewhere);
    for (uint32_t i = 0; i < 100; i++)
        publish_num(s->c1, "i.x", 100 + i, 8);
    assert_int_equal(fabric_flush(s->c1), PSL_OK);
    assert_int_equal(atomic_load(&r.on_publisher) + atomic_load(&r.elsewhere), 120);
    assert_true(atomic_load(&r.elsewhere) - before >= 99);
    fabric_unsubscribe(s->c2, id);
    /* A plain connection never delivers on the publishing thread. */
    struct fabric *plain;
    assert_int_equal(fabric_inproc_connect(s->bus, &plain), PSL_OK);
    struct inline_rx q = {.publisher = pthread_self()};
    atomic_init(&q.on_publisher, 0);
    atomic_init(&q.elsewhere, 0);
    assert_int_equal(fabric_subscribe(s->c2, "i.y", inline_handler, &q, &id), PSL_OK);
    for (uint32_t i = 0; i < 5; i++) {
        sleep_ms(1);
        publish_num(plain, "i.y", i, 8);
    }
    assert_int_equal(fabric_flush(plain), PSL_OK);
    assert_int_equal(atomic_load(&q.on_publisher), 0);
    assert_int_equal(atomic_load(&q.elsewhere), 5);
    fabric_unsubscribe(s->c2, id);
    fabric_destroy(plain);
}

static void test_inproc_inline_reentrant(void **state)
{
    struct bus_state *s = *state;
    struct reentrant *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->f = s->c1;
    atomic_init(&r->calls, 0);
    uint64_t out_id;
    assert_int_equal(fabric_subscribe(s->c2, "r.out", rx_handler, s->rx[0], &out_id), PSL_OK);
    assert_int_equal(fabric_subscribe(s->c1, "r.in", reentrant_handler, r, &r->self_id), PSL_OK);
    for (uint32_t i = 0; i < 10; i++) {
        sleep_ms(1); /* each r.in is delivered inline; its r.out queues for the dispatcher */
        publish_num(s->c2, "r.in", i, 8);
    }
    assert_int_equal(fabric_flush(s->c2), PSL_OK);
    assert_int_equal(atomic_load(&r->calls), 5);
    assert_int_equal(r->pub_err, PSL_OK);
    assert_int_equal(r->flush_err, PSL_OK);
    assert_int_equal(r->sub_err, PSL_OK);
    assert_int_equal(rx_count(s->rx[0]), 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(s->rx[0]->nums[i], 1000 + i);
    fabric_unsubscribe(s->c2, out_id);
    free(r);
}

static void test_inproc_limits(void **state)
{
    struct bus_state *s = *state;
    uint64_t id;
    assert_int_equal(fabric_subscribe(s->c2, "l.>", rx_handler, s->rx[0], &id), PSL_OK);
    size_t big = FABRIC_MSG_SIZE_MAX + 1;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    msg_fill(buf, big, 7);
    assert_int_equal(fabric_publish(s->c1, "l.big", buf, big), PSL_ERR_TOO_LARGE);
    assert_int_equal(fabric_publish(s->c1, "l.big", buf, SIZE_MAX), PSL_ERR_TOO_LARGE);
    /* invalid topics */
    assert_int_equal(fabric_publish(s->c1, "", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(s->c1, "l..x", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(s->c1, "l.*", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(s->c1, "l.>", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(s->c1, "l x", buf, 8), PSL_ERR_INVALID_ARG);
    char longt[FABRIC_TOPIC_SIZE_MAX + 8];
    memset(longt, 'x', sizeof longt);
    longt[0] = 'l';
    longt[1] = '.';
    longt[FABRIC_TOPIC_SIZE_MAX] = '\0';
    assert_int_equal(fabric_publish(s->c1, longt, buf, 8), PSL_ERR_INVALID_ARG);
    /* invalid patterns */
    uint64_t bad_id;
    assert_int_equal(fabric_subscribe(s->c1, "", rx_handler, s->rx[1], &bad_id),
                     PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_subscribe(s->c1, longt, rx_handler, s->rx[1], &bad_id),
                     PSL_ERR_INVALID_ARG);
    /* the largest message and an empty one go through */
    msg_fill(buf, FABRIC_MSG_SIZE_MAX, 8);
    assert_int_equal(fabric_publish(s->c1, "l.max", buf, FABRIC_MSG_SIZE_MAX), PSL_OK);
    assert_int_equal(fabric_publish(s->c1, "l.empty", NULL, 0), PSL_OK);
    assert_int_equal(fabric_flush(s->c1), PSL_OK);
    assert_int_equal(rx_count(s->rx[0]), 2);
    assert_int_equal(s->rx[0]->bad, 0);
    assert_int_equal(s->rx[0]->sizes[0], FABRIC_MSG_SIZE_MAX);
    assert_int_equal(s->rx[0]->nums[0], 8);
    assert_int_equal(s->rx[0]->sizes[1], 0);
    assert_string_equal(s->rx[0]->last_topic, "l.empty");
    free(buf);
    fabric_unsubscribe(s->c2, id);
}

/* Backpressure: a publisher thread outruns a slow subscriber; it must block rather than grow the
 * queue, and nothing may be dropped. */
struct bp {
    struct fabric *f;
    uint32_t n;
    size_t size;
    atomic_size_t published;
    atomic_size_t delivered;
    atomic_size_t max_outstanding;
    atomic_size_t bad;
    psl_err err;
};

static void bp_note(struct bp *b)
{
    size_t p = atomic_load(&b->published), d = atomic_load(&b->delivered);
    size_t out = p > d ? p - d : 0, m = atomic_load(&b->max_outstanding);
    while (out > m && !atomic_compare_exchange_weak(&b->max_outstanding, &m, out)) {
    }
}

static void *bp_publisher(void *arg)
{
    struct bp *b = arg;
    uint8_t *buf = malloc(b->size);
    if (!buf) {
        b->err = PSL_ERR_NOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        msg_fill(buf, b->size, i);
        psl_err err = fabric_publish(b->f, "bp.x", buf, b->size);
        if (err) {
            b->err = err;
            break;
        }
        atomic_fetch_add(&b->published, 1);
        bp_note(b);
    }
    free(buf);
    return NULL;
}

static void bp_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct bp *b = ctx;
    size_t d = atomic_load(&b->delivered);
    if (size != b->size || get_le32(data) != d || !msg_check(data, size, (uint32_t)d))
        atomic_fetch_add(&b->bad, 1);
    /* slow consumer: the publisher needs well under a millisecond per message */
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&b->delivered, 1);
    bp_note(b);
}

static void test_inproc_backpressure(void **state)
{
    (void)state;
    struct inproc_bus *bus;
    /* A tiny bound; the bus still admits one maximal message (FABRIC_MSG_SIZE_MAX). */
    assert_int_equal(inproc_bus_create(&bus, 1), PSL_OK);
    struct fabric *pub, *sub;
    assert_int_equal(fabric_inproc_connect(bus, &pub), PSL_OK);
    assert_int_equal(fabric_inproc_connect(bus, &sub), PSL_OK);
    struct bp *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->f = pub;
    b->n = 400;
    b->size = 128u << 10;
    uint64_t id;
    assert_int_equal(fabric_subscribe(sub, "bp.x", bp_handler, b, &id), PSL_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bp_publisher, b), 0);
    pthread_join(t, NULL);
    assert_int_equal(b->err, PSL_OK);
    assert_int_equal(fabric_flush(pub), PSL_OK);
    assert_int_equal(atomic_load(&b->delivered), b->n); /* nothing dropped */
    assert_int_equal(atomic_load(&b->bad), 0);          /* in order, intact */
    /* Queued messages never exceed the bound: published-but-undelivered stays within what
     * FABRIC_MSG_SIZE_MAX bytes hold, plus the one being delivered and the counters' slack. */
    size_t bound = FABRIC_MSG_SIZE_MAX / b->size + 3;
    print_message("backpressure: max outstanding %zu messages of %zu bytes (bound %zu)\n",
                  atomic_load(&b->max_outstanding), b->size, bound);
    assert_true(atomic_load(&b->max_outstanding) <= bound);
    assert_true(atomic_load(&b->max_outstanding) >= 2); /* the publisher did run ahead */
    fabric_destroy(sub);
    fabric_destroy(pub);
    inproc_bus_destroy(bus);
    free(b);
}

/* Empty messages take memory too: a publisher of empty messages must also block while a
 * subscriber is stuck, instead of queueing without bound. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    atomic_size_t delivered;
};

static void gate_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    (void)data;
    (void)size;
    struct gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->delivered, 1);
}

struct empty_pub {
    struct fabric *f;
    size_t n;
    atomic_size_t published;
    psl_err err;
};

static void *empty_publisher(void *arg)
{
    struct empty_pub *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        psl_err err = fabric_publish(p->f, "e.x", NULL, 0);
        if (err) {
            p->err = err;
            break;
        }
        atomic_fetch_add(&p->published, 1);
    }
    return NULL;
}

static void test_inproc_backpressure_empty_messages(void **state)
{
    (void)state;
    struct inproc_bus *bus;
    assert_int_equal(inproc_bus_create(&bus, 1), PSL_OK);
    struct fabric *pub, *sub;
    assert_int_equal(fabric_inproc_connect(bus, &pub), PSL_OK);
    assert_int_equal(fabric_inproc_connect(bus, &sub), PSL_OK);
    struct gate *g = calloc(1, sizeof *g);
    struct empty_pub *p = calloc(1, sizeof *p);
    assert_non_null(g);
    assert_non_null(p);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    uint64_t id;
    assert_int_equal(fabric_subscribe(sub, "e.x", gate_handler, g, &id), PSL_OK);
    p->f = pub;
    p->n = 1000000; /* far more than FABRIC_MSG_SIZE_MAX bytes of queue entries */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, empty_publisher, p), 0);
    /* wait until the publisher stalls */
    size_t last = 0;
    for (int i = 0; i < 500; i++) {
        sleep_ms(20);
        size_t now = atomic_load(&p->published);
        if (now == last && now > 0)
            break;
        last = now;
    }
    size_t stalled = atomic_load(&p->published);
    print_message("empty messages: publisher stalled after %zu while the subscriber was stuck\n",
                  stalled);
    assert_true(stalled < p->n);
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(t, NULL);
    assert_int_equal(p->err, PSL_OK);
    assert_int_equal(fabric_flush(pub), PSL_OK);
    assert_int_equal(atomic_load(&g->delivered), p->n);
    fabric_destroy(sub);
    fabric_destroy(pub);
    inproc_bus_destroy(bus);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    free(p);
}

static void test_inproc_destroy_with_queued(void **state)
{
    (void)state;
    /* Connections with live subscriptions and queued messages, destroyed mid-stream, then the
     * bus: no leak, no late delivery (checked under ASan). */
    for (unsigned round = 0; round < 20; round++) {
        struct inproc_bus *bus;
        assert_int_equal(inproc_bus_create(&bus, 1 << 16), PSL_OK);
        struct fabric *a, *b;
        assert_int_equal(fabric_inproc_connect(bus, &a), PSL_OK);
        assert_int_equal(fabric_inproc_connect(bus, &b), PSL_OK);
        struct rx *r = rx_new();
        uint64_t id;
        assert_int_equal(fabric_subscribe(b, "d.>", rx_handler, r, &id), PSL_OK);
        assert_int_equal(fabric_subscribe(a, "d.x", rx_handler, r, &id), PSL_OK);
        for (uint32_t i = 0; i < 50; i++)
            publish_num(a, "d.x", i, 32);
        fabric_destroy(b);
        fabric_destroy(a);
        size_t seen = rx_count(r);
        inproc_bus_destroy(bus);
        assert_int_equal(rx_count(r), seen);
        rx_free(r);
    }
    inproc_bus_destroy(NULL);
    fabric_destroy(NULL);
}

/* ---- fault injection ---- */

struct faulty_run {
    struct inproc_bus *bus;
    struct fabric *pub; /* the wrapper */
    struct fabric *sub;
    struct rx *rx;
};

static void faulty_open(struct faulty_run *r, const struct fabric_faults *ff)
{
    assert_int_equal(inproc_bus_create(&r->bus, 1 << 20), PSL_OK);
    struct fabric *inner;
    assert_int_equal(fabric_inproc_connect(r->bus, &inner), PSL_OK);
    assert_int_equal(fabric_faulty_wrap(inner, ff, &r->pub), PSL_OK);
    assert_int_equal(fabric_inproc_connect(r->bus, &r->sub), PSL_OK);
    r->rx = rx_new();
    uint64_t id;
    assert_int_equal(fabric_subscribe(r->sub, "q.>", rx_handler, r->rx, &id), PSL_OK);
}

static void faulty_close(struct faulty_run *r)
{
    fabric_destroy(r->pub);
    fabric_destroy(r->sub);
    inproc_bus_destroy(r->bus);
    rx_free(r->rx);
}

/* Publishes n numbered messages through a fresh wrapper; marks each number received. */
static void faulty_received(const struct fabric_faults *ff, uint32_t n, uint8_t *got)
{
    struct faulty_run r;
    faulty_open(&r, ff);
    for (uint32_t i = 0; i < n; i++)
        publish_num(r.pub, "q.x", i, 8);
    assert_int_equal(fabric_flush(r.pub), PSL_OK);
    assert_int_equal(fabric_flush(r.sub), PSL_OK);
    memset(got, 0, n);
    size_t c = rx_count(r.rx);
    assert_true(c <= RX_NUMS_MAX);
    for (size_t i = 0; i < c; i++) {
        assert_true(r.rx->nums[i] < n);
        got[r.rx->nums[i]]++;
    }
    assert_int_equal(r.rx->bad, 0);
    faulty_close(&r);
}

static void test_faulty_loss_all(void **state)
{
    (void)state;
    struct fabric_faults ff = {.seed = 1, .loss = 1.0};
    uint8_t got[200];
    faulty_received(&ff, 200, got);
    for (unsigned i = 0; i < 200; i++)
        assert_int_equal(got[i], 0);
}

static void test_faulty_duplicate_all(void **state)
{
    (void)state;
    struct fabric_faults ff = {.seed = 2, .loss = 0.0, .duplicate = 1.0};
    uint8_t got[200];
    faulty_received(&ff, 200, got);
    for (unsigned i = 0; i < 200; i++)
        assert_int_equal(got[i], 2);
}

static void test_faulty_passthrough(void **state)
{
    (void)state;
    struct fabric_faults ff = {.seed = 3};
    uint8_t got[200];
    faulty_received(&ff, 200, got);
    for (unsigned i = 0; i < 200; i++)
        assert_int_equal(got[i], 1);
    /* the wrapper refuses what the inner fabric refuses */
    struct faulty_run r;
    faulty_open(&r, &ff);
    uint8_t b[8] = {0};
    assert_int_equal(fabric_publish(r.pub, "q..x", b, sizeof b), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(r.pub, "q.x", b, FABRIC_MSG_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    faulty_close(&r);
    /* also when the message would have been held back (the error cannot come later) */
    struct fabric_faults held = {.seed = 3, .delay = 1.0, .delay_ms_max = 5};
    faulty_open(&r, &held);
    assert_int_equal(fabric_publish(r.pub, "q..x", b, sizeof b), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(r.pub, "q.*", b, sizeof b), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(r.pub, "q.x", b, FABRIC_MSG_SIZE_MAX + 1), PSL_ERR_TOO_LARGE);
    assert_int_equal(fabric_publish(r.pub, "q.empty", NULL, 0), PSL_OK);
    assert_int_equal(rx_wait(r.rx, 1, 5000), 1);
    assert_int_equal(r.rx->sizes[0], 0);
    faulty_close(&r);
}

static void test_faulty_delay_reorders(void **state)
{
    (void)state;
    const uint32_t n = 200;
    bool reordered = false;
    for (uint64_t seed = 10; seed < 15 && !reordered; seed++) {
        struct fabric_faults ff = {.seed = seed, .delay = 1.0, .delay_ms_max = 20};
        struct faulty_run r;
        faulty_open(&r, &ff);
        uint64_t t0 = now_ms();
        for (uint32_t i = 0; i < n; i++)
            publish_num(r.pub, "q.x", i, 8);
        assert_int_equal(fabric_flush(r.pub), PSL_OK);
        /* Held back: not everything is there right after publishing. */
        assert_true(rx_count(r.rx) < n);
        assert_int_equal(rx_wait(r.rx, n, 10000), n);
        sleep_ms(30); /* nothing more arrives (no duplicates) */
        assert_int_equal(rx_count(r.rx), n);
        uint8_t got[200] = {0};
        uint64_t latest = 0;
        for (uint32_t i = 0; i < n; i++) {
            got[r.rx->nums[i]]++;
            if (r.rx->at_ms[i] - t0 > latest)
                latest = r.rx->at_ms[i] - t0;
            if (i && r.rx->nums[i] < r.rx->nums[i - 1])
                reordered = true;
        }
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(got[i], 1);
        assert_true(latest >= 5); /* some were delayed by several ms */
        assert_int_equal(r.rx->bad, 0);
        faulty_close(&r);
    }
    assert_true(reordered);
}

static void test_faulty_seed_is_deterministic(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint8_t *a = malloc(N), *b = malloc(N), *c = malloc(N);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    struct fabric_faults ff = {.seed = 0x5eed, .loss = 0.3};
    faulty_received(&ff, N, a);
    faulty_received(&ff, N, b);
    ff.seed = 0x5eee;
    faulty_received(&ff, N, c);
    assert_memory_equal(a, b, N);
    assert_memory_not_equal(a, c, N);
    size_t kept = 0;
    for (unsigned i = 0; i < N; i++) {
        assert_true(a[i] <= 1);
        kept += a[i];
    }
    assert_true(kept > 600 && kept < 800); /* about 70% */
    free(a);
    free(b);
    free(c);
}

static void test_faulty_destroy_releases_held(void **state)
{
    (void)state;
    /* Messages held for up to a minute: destroying the wrapper hands them all to the inner
     * fabric at once instead of waiting them out or leaking them. */
    struct fabric_faults ff = {.seed = 4, .delay = 1.0, .delay_ms_max = 60000};
    struct faulty_run r;
    faulty_open(&r, &ff);
    for (uint32_t i = 0; i < 20; i++)
        publish_num(r.pub, "q.x", i, 8);
    assert_int_equal(fabric_flush(r.pub), PSL_OK);
    assert_true(rx_count(r.rx) < 20);
    uint64_t t0 = now_ms();
    fabric_destroy(r.pub);
    r.pub = NULL;
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(fabric_flush(r.sub), PSL_OK);
    assert_int_equal(rx_count(r.rx), 20);
    faulty_close(&r);
}

/* ---- NATS, against a real nats-server ---- */

struct nats_env {
    pid_t pid;
    bool have_server;
    char bin[512];
    char dir[64];
    char conf[128];
    char logf[128];
    char url[64];
};
static struct nats_env g_nats;

static bool find_nats_server(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/bin",
             path ? path : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (!*d)
            continue;
        snprintf(out, cap, "%s/nats-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static int free_loopback_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  nats-server: %s", line);
    fclose(f);
}

static void nats_server_stop(void)
{
    if (g_nats.pid <= 0)
        return;
    kill(g_nats.pid, SIGTERM);
    int status;
    for (int i = 0; i < 500; i++) {
        pid_t w = waitpid(g_nats.pid, &status, WNOHANG);
        if (w == g_nats.pid || (w < 0 && errno != EINTR))
            goto out;
        sleep_ms(10);
    }
    kill(g_nats.pid, SIGKILL);
    while (waitpid(g_nats.pid, &status, 0) < 0 && errno == EINTR) {
    }
out:
    g_nats.pid = 0;
}

/* Starts nats-server on a free loopback port with an 8 MB max_payload; true once it accepts. */
static bool nats_server_start(void)
{
    int port = free_loopback_port();
    if (port <= 0)
        return false;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* The server dies with this test program, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(g_nats.bin, "nats-server", "-a", "127.0.0.1", "-p", port_s, "-c", g_nats.conf, "-l",
              g_nats.logf, (char *)NULL);
        _exit(127);
    }
    g_nats.pid = pid;
    snprintf(g_nats.url, sizeof g_nats.url, "nats://127.0.0.1:%d", port);
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            g_nats.pid = 0;
            fprintf(stderr, "nats-server exited at start (status %d); its log:\n", status);
            print_file(g_nats.logf);
            return false;
        }
        if (port_accepts(port))
            return true;
        sleep_ms(20);
    }
    fprintf(stderr, "nats-server did not accept connections on port %d within 10 s\n", port);
    print_file(g_nats.logf);
    nats_server_stop();
    return false;
}

static int nats_group_setup(void **state)
{
    (void)state;
    tu_init();
    memset(&g_nats, 0, sizeof g_nats);
    /* Missing nats-server is a failure of each test (with a message), not a skip. */
    g_nats.have_server = find_nats_server(g_nats.bin, sizeof g_nats.bin);
    if (!g_nats.have_server)
        return 0;
    snprintf(g_nats.dir, sizeof g_nats.dir, "/tmp/psl-nats-XXXXXX");
    if (!mkdtemp(g_nats.dir))
        return -1;
    snprintf(g_nats.conf, sizeof g_nats.conf, "%s/nats.conf", g_nats.dir);
    snprintf(g_nats.logf, sizeof g_nats.logf, "%s/nats.log", g_nats.dir);
    FILE *f = fopen(g_nats.conf, "w");
    if (!f)
        return -1;
    /* nats-server has no command-line flag for max_payload; a record (4 MiB) plus envelope
     * needs more than the 1 MB default. */
    fprintf(f, "max_payload: 8MB\n");
    fclose(f);
    for (int attempt = 0; attempt < 3; attempt++) /* a port can be taken between probe and bind */
        if (nats_server_start())
            return 0;
    fprintf(stderr, "could not start %s\n", g_nats.bin);
    return -1;
}

static int nats_group_teardown(void **state)
{
    (void)state;
    nats_server_stop();
    if (g_nats.dir[0]) {
        unlink(g_nats.conf);
        unlink(g_nats.logf);
        rmdir(g_nats.dir);
    }
    return 0;
}

struct nats_state {
    struct fabric *a, *b;
    struct rx *rx[3];
};

static int nats_setup(void **state)
{
    if (!g_nats.have_server) {
        *state = NULL;
        return 0;
    }
    struct nats_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    if (fabric_nats_connect(g_nats.url, "psl-test-a", &s->a) != PSL_OK ||
        fabric_nats_connect(g_nats.url, "psl-test-b", &s->b) != PSL_OK) {
        fprintf(stderr, "cannot connect to %s\n", g_nats.url);
        return -1;
    }
    for (unsigned i = 0; i < 3; i++)
        s->rx[i] = rx_new();
    *state = s;
    return 0;
}

static int nats_teardown(void **state)
{
    struct nats_state *s = *state;
    if (!s)
        return 0;
    fabric_destroy(s->a); /* waits out running handlers before the receivers go */
    fabric_destroy(s->b);
    for (unsigned i = 0; i < 3; i++)
        rx_free(s->rx[i]);
    free(s);
    return 0;
}

static struct nats_state *nats_state_get(void **state)
{
    if (!g_nats.have_server)
        fail_msg("nats-server not found in PATH or /usr/sbin: the NATS backend tests need a real "
                 "nats-server (make test installs it; apt-get install nats-server)");
    struct nats_state *s = *state;
    assert_non_null(s);
    return s;
}

static void test_nats_round_trip(void **state)
{
    struct nats_state *s = nats_state_get(state);
    uint64_t ida, idb;
    s->rx[0]->expect_topic = "psl.t.rec";
    s->rx[1]->expect_topic = "psl.t.rec";
    assert_int_equal(fabric_subscribe(s->a, "psl.t.rec", rx_handler, s->rx[0], &ida), PSL_OK);
    assert_int_equal(fabric_subscribe(s->b, "psl.t.rec", rx_handler, s->rx[1], &idb), PSL_OK);
    /* the server has the subscriptions once the subscribers' flush returned */
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    const uint32_t n = 500;
    for (uint32_t i = 0; i < n; i++)
        publish_num(s->b, "psl.t.rec", i, 40);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[0], n, 10000), n);
    assert_int_equal(rx_wait(s->rx[1], n, 10000), n); /* the publisher's own subscription */
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(s->rx[0]->nums[i], i); /* one publisher: in order */
        assert_int_equal(s->rx[1]->nums[i], i);
    }
    assert_int_equal(s->rx[0]->bad, 0);
    assert_int_equal(s->rx[1]->bad, 0);
    /* and back the other way */
    uint64_t idr;
    assert_int_equal(fabric_subscribe(s->b, "psl.t.rep.b", rx_handler, s->rx[2], &idr), PSL_OK);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    publish_num(s->a, "psl.t.rep.b", 77, 8);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    assert_int_equal(rx_wait(s->rx[2], 1, 10000), 1);
    assert_int_equal(s->rx[2]->nums[0], 77);
    assert_string_equal(s->rx[2]->last_topic, "psl.t.rep.b");
}

static void test_nats_wildcards(void **state)
{
    struct nats_state *s = nats_state_get(state);
    uint64_t id1, id2;
    assert_int_equal(fabric_subscribe(s->a, "psl.*.ack.>", rx_handler, s->rx[0], &id1), PSL_OK);
    assert_int_equal(fabric_subscribe(s->a, "psl.*.rec", rx_handler, s->rx[1], &id2), PSL_OK);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    publish_num(s->b, "psl.c1.ack.w1", 1, 8);   /* ack.> */
    publish_num(s->b, "psl.c1.ack", 2, 8);      /* > needs a token */
    publish_num(s->b, "psl.c1.x.ack.w1", 3, 8); /* * is one token */
    publish_num(s->b, "psl.c2.ack.w1.z", 4, 8); /* ack.> */
    publish_num(s->b, "psl.c1.rec", 5, 8);      /* rec */
    publish_num(s->b, "psl.c1.rec.x", 6, 8);    /* no */
    publish_num(s->b, "psl.c3.rec", 7, 8);      /* rec */
    publish_num(s->b, "psl.end.ack.end", 8, 8); /* last, per subscription in order */
    publish_num(s->b, "psl.end.rec", 9, 8);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[0], 3, 10000), 3);
    assert_int_equal(rx_wait(s->rx[1], 3, 10000), 3);
    sleep_ms(50);
    assert_int_equal(rx_count(s->rx[0]), 3);
    assert_int_equal(rx_count(s->rx[1]), 3);
    assert_int_equal(s->rx[0]->nums[0], 1);
    assert_int_equal(s->rx[0]->nums[1], 4);
    assert_int_equal(s->rx[0]->nums[2], 8);
    assert_int_equal(s->rx[1]->nums[0], 5);
    assert_int_equal(s->rx[1]->nums[1], 7);
    assert_int_equal(s->rx[1]->nums[2], 9);
}

static void test_nats_large_message(void **state)
{
    struct nats_state *s = nats_state_get(state);
    uint64_t id;
    assert_int_equal(fabric_subscribe(s->a, "psl.big", rx_handler, s->rx[0], &id), PSL_OK);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    size_t size = 4u << 20;
    uint8_t *buf = malloc(FABRIC_MSG_SIZE_MAX + 1);
    assert_non_null(buf);
    msg_fill(buf, size, 4242);
    assert_int_equal(fabric_publish(s->b, "psl.big", buf, size), PSL_OK);
    msg_fill(buf, FABRIC_MSG_SIZE_MAX, 4243);
    assert_int_equal(fabric_publish(s->b, "psl.big", buf, FABRIC_MSG_SIZE_MAX), PSL_OK);
    assert_int_equal(fabric_publish(s->b, "psl.big", buf, FABRIC_MSG_SIZE_MAX + 1),
                     PSL_ERR_TOO_LARGE);
    assert_int_equal(fabric_publish(s->b, "psl..big", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_publish(s->b, "psl.*", buf, 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[0], 2, 20000), 2);
    assert_int_equal(s->rx[0]->sizes[0], size);
    assert_int_equal(s->rx[0]->nums[0], 4242);
    assert_int_equal(s->rx[0]->sizes[1], FABRIC_MSG_SIZE_MAX);
    assert_int_equal(s->rx[0]->nums[1], 4243);
    assert_int_equal(s->rx[0]->bad, 0); /* every byte checked */
    free(buf);
}

/* Unsubscribes itself from inside its own handler on the first message. */
struct self_unsub {
    struct fabric *f;
    uint64_t id;
    atomic_int calls;
};

static void self_unsub_handler(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    (void)data;
    (void)size;
    struct self_unsub *u = ctx;
    if (atomic_fetch_add(&u->calls, 1) == 0)
        fabric_unsubscribe(u->f, u->id);
}

static void test_nats_unsubscribe(void **state)
{
    struct nats_state *s = nats_state_get(state);
    uint64_t id, sentinel;
    assert_int_equal(fabric_subscribe(s->a, "psl.u", rx_handler, s->rx[0], &id), PSL_OK);
    assert_int_equal(fabric_subscribe(s->a, "psl.sentinel", rx_handler, s->rx[1], &sentinel),
                     PSL_OK);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    publish_num(s->b, "psl.u", 1, 8);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[0], 1, 10000), 1);
    fabric_unsubscribe(s->a, id);
    assert_int_equal(fabric_flush(s->a), PSL_OK); /* the server has the UNSUB */
    for (uint32_t i = 2; i < 12; i++)
        publish_num(s->b, "psl.u", i, 8);
    publish_num(s->b, "psl.sentinel", 99, 8);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[1], 1, 10000), 1);
    sleep_ms(100);
    assert_int_equal(rx_count(s->rx[0]), 1);
    fabric_unsubscribe(s->a, id); /* twice: harmless */
    fabric_unsubscribe(s->a, 12345);

    /* Unsubscribe while the handler runs, from another thread: it returns only once the
     * handler has finished (so the caller may free what the handler uses). */
    s->rx[2]->sleep_ms = 300;
    uint64_t slow;
    assert_int_equal(fabric_subscribe(s->a, "psl.slow", rx_handler, s->rx[2], &slow), PSL_OK);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    publish_num(s->b, "psl.slow", 1, 8);
    publish_num(s->b, "psl.slow", 2, 8);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    uint64_t deadline = now_ms() + 10000;
    while (!atomic_load(&s->rx[2]->in_handler) && now_ms() < deadline)
        sleep_ms(1);
    assert_true(atomic_load(&s->rx[2]->in_handler));
    fabric_unsubscribe(s->a, slow);
    assert_false(atomic_load(&s->rx[2]->in_handler));
    size_t seen = rx_count(s->rx[2]);
    assert_true(seen >= 1 && seen <= 2);
    sleep_ms(400);
    assert_int_equal(rx_count(s->rx[2]), seen);

    /* A handler that unsubscribes itself neither deadlocks nor runs again. */
    struct self_unsub *u = calloc(1, sizeof *u);
    assert_non_null(u);
    u->f = s->a;
    atomic_init(&u->calls, 0);
    assert_int_equal(fabric_subscribe(s->a, "psl.self", self_unsub_handler, u, &u->id), PSL_OK);
    assert_int_equal(fabric_flush(s->a), PSL_OK);
    for (uint32_t i = 0; i < 5; i++)
        publish_num(s->b, "psl.self", i, 8);
    publish_num(s->b, "psl.sentinel", 100, 8);
    assert_int_equal(fabric_flush(s->b), PSL_OK);
    assert_int_equal(rx_wait(s->rx[1], 2, 10000), 2);
    deadline = now_ms() + 5000;
    while (atomic_load(&u->calls) == 0 && now_ms() < deadline)
        sleep_ms(1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&u->calls), 1);
    /* u stays allocated until the connection is gone: the subscription's last act (its
     * completion) may still be running. */
    fabric_destroy(s->a);
    s->a = NULL;
    free(u);
}

static void test_nats_connect_refused(void **state)
{
    (void)nats_state_get(state);
    int port = free_loopback_port();
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    struct fabric *f = NULL;
    assert_int_equal(fabric_nats_connect(url, "psl-test-refused", &f), PSL_ERR_IO);
    assert_null(f);
}

int main(void)
{
    tu_init();
    const struct CMUnitTest local[] = {
        cmocka_unit_test(test_topic_matches),
        cmocka_unit_test(test_topic_is_valid),
        cmocka_unit_test(test_topic_capsule),
        cmocka_unit_test_setup_teardown(test_inproc_order_and_fanout, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_unsubscribe, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_reentrant_handler, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_flush_waits_for_delivery, bus_setup,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_limits, bus_setup, bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_order_and_fanout, bus_setup_inline,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_unsubscribe, bus_setup_inline, bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_reentrant_handler, bus_setup_inline,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_flush_waits_for_delivery, bus_setup_inline,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_inline_delivery, bus_setup_inline,
                                        bus_teardown),
        cmocka_unit_test_setup_teardown(test_inproc_inline_reentrant, bus_setup_inline,
                                        bus_teardown),
        cmocka_unit_test(test_inproc_backpressure),
        cmocka_unit_test(test_inproc_backpressure_empty_messages),
        cmocka_unit_test(test_inproc_destroy_with_queued),
        cmocka_unit_test(test_faulty_loss_all),
        cmocka_unit_test(test_faulty_duplicate_all),
        cmocka_unit_test(test_faulty_passthrough),
        cmocka_unit_test(test_faulty_delay_reorders),
        cmocka_unit_test(test_faulty_seed_is_deterministic),
        cmocka_unit_test(test_faulty_destroy_releases_held),
    };
    const struct CMUnitTest nats[] = {
        cmocka_unit_test_setup_teardown(test_nats_round_trip, nats_setup, nats_teardown),
        cmocka_unit_test_setup_teardown(test_nats_wildcards, nats_setup, nats_teardown),
        cmocka_unit_test_setup_teardown(test_nats_large_message, nats_setup, nats_teardown),
        cmocka_unit_test_setup_teardown(test_nats_unsubscribe, nats_setup, nats_teardown),
        cmocka_unit_test_setup_teardown(test_nats_connect_refused, nats_setup, nats_teardown),
    };
    int failed = cmocka_run_group_tests_name("fabric", local, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("fabric_nats", nats, nats_group_setup, nats_group_teardown);
    return failed ? 1 : 0;
}
