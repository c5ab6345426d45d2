/* test_ring.c: unit tests of src/ring: framing and order, wrap-around, backpressure, timeouts,
 * close, the futex sleep and wake-up across two processes, a producer killed while writing, and
 * a hostile peer writing the shared header and frames (every violation gets PSL_ERR_MALFORMED,
 * never a crash). Children of fork() report through exit codes, never through cmocka. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/limits.h"
#include "ring/ring.h"

#define SMALL_CAP 4096u
#define BUF_MAX   (64u << 10)

/* ---- helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The content of message `seq`: every byte is a function of (seq, index). */
static uint8_t pattern_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static void pattern_fill(uint8_t *buf, uint64_t seq, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = pattern_byte(seq, i);
}

static bool pattern_ok(const uint8_t *buf, uint64_t seq, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (buf[i] != pattern_byte(seq, i))
            return false;
    return true;
}

/* A formatted, attached ring in private memory. */
struct fixture {
    void *mem;
    size_t size;
    struct ring r;
};

static void fixture_init(struct fixture *f, uint32_t cap)
{
    f->size = ring_region_size(cap);
    assert_true(f->size > 0);
    f->mem = aligned_alloc(4096, f->size);
    assert_non_null(f->mem);
    assert_int_equal(ring_format(f->mem, f->size, cap), PSL_OK);
    assert_int_equal(ring_attach(&f->r, f->mem, f->size), PSL_OK);
}

static void fixture_deinit(struct fixture *f)
{
    free(f->mem);
}

static struct ring_shared *shared_of(struct fixture *f)
{
    return f->mem;
}

static uint8_t *data_of(struct fixture *f)
{
    return (uint8_t *)f->mem + RING_HEADER_SIZE;
}

/* Writes a frame header as a (hostile) producer would. */
static void poke_frame(struct fixture *f, uint32_t off, uint32_t type, uint32_t size)
{
    memcpy(data_of(f) + off, &type, 4);
    memcpy(data_of(f) + off + 4, &size, 4);
}

static void poke_tail(struct fixture *f, uint64_t tail)
{
    atomic_store(&shared_of(f)->tail, tail);
}

static psl_err recv_poll(struct ring *r, uint8_t *buf, size_t cap, uint32_t *type, size_t *size)
{
    return ring_recv(r, type, buf, cap, size, 0);
}

/* Sends and receives messages until the shared positions reach `pos` (a multiple of 8); the
 * ring must be empty and positions below pos. */
static void advance_to(struct fixture *f, uint64_t pos)
{
    static uint8_t buf[BUF_MAX];
    uint32_t max = ring_msg_size_max(f->r.cap);
    while (f->r.tail < pos) {
        uint64_t left = pos - f->r.tail;
        uint32_t off = (uint32_t)(f->r.tail & (f->r.cap - 1u));
        uint64_t room = f->r.cap - off;
        uint64_t step = left < room ? left : room; /* never wrap: no pad frames */
        if (step > max + 8u)
            step = max + 8u;
        assert_true(step >= 8);
        assert_int_equal(ring_send(&f->r, 1, buf, (size_t)(step - 8), 0), PSL_OK);
        uint32_t type;
        size_t size;
        assert_int_equal(recv_poll(&f->r, buf, sizeof buf, &type, &size), PSL_OK);
    }
    assert_true(f->r.tail == pos && f->r.head == pos);
}

/* ---- sizes, format, attach ---- */

static void test_region_size_and_limits(void **state)
{
    (void)state;
    assert_int_equal(ring_region_size(0), 0);
    assert_int_equal(ring_region_size(2048), 0);                   /* below the minimum */
    assert_int_equal(ring_region_size(5000), 0);                   /* not a power of two */
    assert_int_equal(ring_region_size(RING_CAPACITY_MAX * 2u), 0); /* above the maximum */
    assert_int_equal(ring_region_size(4096), RING_HEADER_SIZE + 4096);
    assert_int_equal(ring_msg_size_max(4096), 2040);
    assert_int_equal(ring_msg_size_max(PSL_RING_CAPACITY_DEFAULT), PSL_RING_MSG_SIZE_MAX);
    /* The default ring carries the largest message, with room for a pad before it. */
    assert_true(2u * (PSL_RING_MSG_SIZE_MAX + RING_FRAME_HEADER_SIZE) <= PSL_RING_CAPACITY_DEFAULT);
    assert_true(sizeof(struct ring_shared) <= RING_HEADER_SIZE);
}

static void test_format_rejects_bad_arguments(void **state)
{
    (void)state;
    size_t size = ring_region_size(SMALL_CAP);
    uint8_t *mem = aligned_alloc(4096, size + 4096);
    assert_non_null(mem);
    assert_int_equal(ring_format(NULL, size, SMALL_CAP), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_format(mem, size, 5000), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_format(mem, size, 2048), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_format(mem, size + 8, SMALL_CAP), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_format(mem + 8, size, SMALL_CAP), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_format(mem, size, SMALL_CAP), PSL_OK);
    free(mem);
}

static void test_attach_validates_header(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    struct ring_shared *sh = shared_of(&f);
    struct ring r;

    sh->magic ^= 1u;
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_BAD_MAGIC);
    sh->magic ^= 1u;
    sh->version = RING_VERSION + 1u;
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_BAD_VERSION);
    sh->version = RING_VERSION;
    sh->capacity = 3000; /* not a power of two */
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_MALFORMED);
    sh->capacity = 2 * SMALL_CAP; /* larger than the mapping */
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_MALFORMED);
    sh->capacity = SMALL_CAP;
    assert_int_equal(ring_attach(&r, f.mem, f.size - 8), PSL_ERR_MALFORMED);
    sh->header_size = 64;
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_MALFORMED);
    sh->header_size = RING_HEADER_SIZE;
    poke_tail(&f, SMALL_CAP + 8u); /* more than a ring ahead of the head */
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_MALFORMED);
    poke_tail(&f, 12); /* unaligned */
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_ERR_MALFORMED);
    poke_tail(&f, 0);
    assert_int_equal(ring_attach(&r, (uint8_t *)f.mem + 8, f.size - 8), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_attach(&r, f.mem, f.size), PSL_OK);
    fixture_deinit(&f);
}

/* ---- messages ---- */

static void test_send_recv_basic(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    uint8_t buf[2048];
    uint32_t type = 0;
    size_t size = 0;

    assert_int_equal(ring_send(&f.r, 42, "hello", 5, 0), PSL_OK);
    assert_int_equal(ring_send(&f.r, 43, NULL, 0, 0), PSL_OK); /* empty payload */
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 42);
    assert_int_equal(size, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 43);
    assert_int_equal(size, 0);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);

    /* Argument errors. */
    assert_int_equal(ring_send(&f.r, RING_TYPE_PAD, "x", 1, 0), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_send(&f.r, 1, NULL, 1, 0), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_send(&f.r, 1, buf, ring_msg_size_max(SMALL_CAP) + 1u, 0),
                     PSL_ERR_TOO_LARGE);
    assert_int_equal(ring_recv(&f.r, NULL, buf, sizeof buf, &size, 0), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_recv(&f.r, &type, NULL, 1, &size, 0), PSL_ERR_INVALID_ARG);
    /* The largest message fits. */
    memset(buf, 0x77, sizeof buf);
    assert_int_equal(ring_send(&f.r, 2, buf, ring_msg_size_max(SMALL_CAP), 0), PSL_OK);
    memset(buf, 0, sizeof buf);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(size, ring_msg_size_max(SMALL_CAP));
    assert_int_equal(buf[0], 0x77);
    assert_int_equal(buf[size - 1], 0x77);
    fixture_deinit(&f);
}

static void test_recv_too_large_keeps_message(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    uint8_t msg[100], buf[100];
    pattern_fill(msg, 9, sizeof msg);
    assert_int_equal(ring_send(&f.r, 7, msg, sizeof msg, 0), PSL_OK);
    uint32_t type = 0;
    size_t size = 0;
    assert_int_equal(recv_poll(&f.r, buf, 99, &type, &size), PSL_ERR_TOO_LARGE);
    assert_int_equal(size, 100);
    assert_int_equal(type, 0); /* nothing else written */
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 7);
    assert_int_equal(size, 100);
    assert_memory_equal(buf, msg, sizeof msg);
    fixture_deinit(&f);
}

static void test_sendv_gathers(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    struct iovec iov[4] = {{.iov_base = "head", .iov_len = 4},
                           {.iov_base = NULL, .iov_len = 0},
                           {.iov_base = "-body-", .iov_len = 6},
                           {.iov_base = "tail", .iov_len = 4}};
    assert_int_equal(ring_sendv(&f.r, 5, iov, 4, 0), PSL_OK);
    assert_int_equal(ring_sendv(&f.r, 6, NULL, 0, 0), PSL_OK);
    assert_int_equal(ring_sendv(&f.r, 6, NULL, 1, 0), PSL_ERR_INVALID_ARG);
    struct iovec bad = {.iov_base = NULL, .iov_len = 3};
    assert_int_equal(ring_sendv(&f.r, 6, &bad, 1, 0), PSL_ERR_INVALID_ARG);
    uint8_t big[2048];
    struct iovec over[2] = {{.iov_base = big, .iov_len = 2000}, {.iov_base = big, .iov_len = 41}};
    assert_int_equal(ring_sendv(&f.r, 6, over, 2, 0), PSL_ERR_TOO_LARGE);
    uint8_t buf[64];
    uint32_t type;
    size_t size;
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 5);
    assert_int_equal(size, 14);
    assert_memory_equal(buf, "head-body-tail", 14);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 6);
    assert_int_equal(size, 0);
    fixture_deinit(&f);
}

/* Messages whose frames straddle the end of a small ring, over many laps: the producer pads and
 * wraps, the consumer skips the pads, and every message comes back intact and in order. */
static void test_wrap_around(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    static uint8_t msg[2048], buf[2048];
    uint64_t seq_out = 0, seq_in = 0;
    uint64_t pads = 0;
    uint32_t sizes[] = {1000, 1, 2040, 333, 7, 1500, 64, 0, 1999, 812};
    for (int round = 0; round < 400; round++) {
        /* Two messages in flight at a time, so frames sit next to each other across the end. */
        for (int k = 0; k < 2; k++) {
            uint32_t size = sizes[seq_out % (sizeof sizes / sizeof sizes[0])];
            uint32_t off = (uint32_t)(f.r.tail & (SMALL_CAP - 1u));
            uint64_t frame = 8u + ((size + 7u) & ~7u);
            pattern_fill(msg, seq_out, size);
            psl_err err = ring_send(&f.r, (uint32_t)seq_out + 1u, msg, size, 0);
            if (err == PSL_ERR_BUSY)
                break;
            assert_int_equal(err, PSL_OK);
            if (frame > SMALL_CAP - off)
                pads++;
            seq_out++;
        }
        for (;;) {
            uint32_t type;
            size_t size;
            psl_err err = recv_poll(&f.r, buf, sizeof buf, &type, &size);
            if (err == PSL_ERR_NOT_FOUND)
                break;
            assert_int_equal(err, PSL_OK);
            assert_int_equal(type, (uint32_t)seq_in + 1u);
            assert_int_equal(size, sizes[seq_in % (sizeof sizes / sizeof sizes[0])]);
            assert_true(pattern_ok(buf, seq_in, size));
            seq_in++;
        }
    }
    assert_true(seq_in == seq_out && seq_out > 600);
    assert_true(pads > 50);                  /* the end was crossed many times */
    assert_true(f.r.tail > 50u * SMALL_CAP); /* many laps */
    /* A frame that ends exactly at the end of the area needs no pad. */
    advance_to(&f, (f.r.tail + SMALL_CAP - 1u) & ~(uint64_t)(SMALL_CAP - 1u));
    advance_to(&f, f.r.tail + SMALL_CAP - 1016u);
    uint64_t before = f.r.tail;
    assert_int_equal(ring_send(&f.r, 1, msg, 1008, 0), PSL_OK); /* frame of 1016 bytes */
    assert_true(f.r.tail == before + 1016u);
    fixture_deinit(&f);
}

/* ---- two threads ---- */

struct stream_args {
    struct ring *r;
    uint64_t count;
    uint32_t size_max;
    int timeout_ms;
    psl_err err;
    uint64_t done;
};

static uint32_t size_of_seq(uint64_t seq, uint32_t size_max)
{
    uint64_t x = seq * 6364136223846793005ull + 1442695040888963407ull;
    x ^= x >> 29;
    return (uint32_t)(x % (size_max + 1u));
}

static void *stream_producer(void *arg)
{
    struct stream_args *a = arg;
    static uint8_t msg[BUF_MAX];
    for (uint64_t seq = 0; seq < a->count; seq++) {
        uint32_t size = size_of_seq(seq, a->size_max);
        pattern_fill(msg, seq, size);
        psl_err err = ring_send(a->r, (uint32_t)seq + 1u, msg, size, a->timeout_ms);
        if (err != PSL_OK) {
            a->err = err;
            return NULL;
        }
        a->done = seq + 1;
    }
    return NULL;
}

/* Streams count messages of varied sizes through a ring between two threads, checking order
 * and content; spin_ns applies to both ends. */
static void stream(uint32_t cap, uint64_t count, uint32_t size_max, uint32_t spin_ns,
                   struct ring_stats *stats)
{
    struct fixture f;
    fixture_init(&f, cap);
    ring_set_spin(&f.r, spin_ns);
    /* The timeouts turn a lost wake-up into a failure instead of a hang. */
    struct stream_args a = {.r = &f.r, .count = count, .size_max = size_max, .timeout_ms = 10000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stream_producer, &a), 0);
    static uint8_t buf[BUF_MAX];
    uint64_t seq = 0;
    psl_err err = PSL_OK;
    bool ok = true;
    for (; seq < count; seq++) {
        uint32_t type;
        size_t size;
        err = ring_recv(&f.r, &type, buf, sizeof buf, &size, 10000);
        if (err != PSL_OK)
            break;
        if (type != (uint32_t)seq + 1u || size != size_of_seq(seq, size_max) ||
            !pattern_ok(buf, seq, size)) {
            ok = false;
            break;
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(err, PSL_OK);
    assert_int_equal(a.err, PSL_OK);
    assert_true(ok);
    assert_true(seq == count);
    ring_get_stats(&f.r, stats);
    fixture_deinit(&f);
}

static void test_order_two_threads(void **state)
{
    (void)state;
    struct ring_stats st;
    stream(16384, 60000, 3000, RING_SPIN_NS_DEFAULT, &st);
    stream(SMALL_CAP, 30000, ring_msg_size_max(SMALL_CAP), RING_SPIN_NS_DEFAULT, &st);
}

/* No spinning at all: every wait is a futex sleep, so a lost wake-up (the race the fences
 * close) would show up here as a 10-second timeout. */
static void test_order_futex_only(void **state)
{
    (void)state;
    struct ring_stats st;
    stream(SMALL_CAP, 20000, 1500, 0, &st);
    assert_true(st.recv_sleeps + st.send_sleeps > 0);
    assert_true(st.recv_wakes + st.send_wakes > 0);
}

/* ---- waiting, backpressure, close ---- */

static void test_empty_ring_poll_and_timeout(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    uint8_t buf[16];
    uint32_t type;
    size_t size;
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);
    uint64_t t0 = now_ms();
    assert_int_equal(ring_recv(&f.r, &type, buf, sizeof buf, &size, 30), PSL_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 29);
    ring_set_spin(&f.r, 0);
    t0 = now_ms();
    assert_int_equal(ring_recv(&f.r, &type, buf, sizeof buf, &size, 30), PSL_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 29);
    struct ring_stats st;
    ring_get_stats(&f.r, &st);
    assert_true(st.recv_sleeps >= 1);
    fixture_deinit(&f);
}

struct drain_args {
    struct ring *r;
    unsigned delay_ms;
    unsigned count;
    psl_err err;
};

static void *drain_later(void *arg)
{
    struct drain_args *a = arg;
    sleep_ms(a->delay_ms);
    static uint8_t buf[SMALL_CAP];
    for (unsigned i = 0; i < a->count; i++) {
        uint32_t type;
        size_t size;
        psl_err err = ring_recv(a->r, &type, buf, sizeof buf, &size, 5000);
        if (err != PSL_OK) {
            a->err = err;
            return NULL;
        }
    }
    return NULL;
}

static void test_full_ring_backpressure(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    uint8_t msg[1000];
    memset(msg, 1, sizeof msg);
    unsigned queued = 0;
    while (ring_send(&f.r, 1, msg, sizeof msg, 0) == PSL_OK)
        queued++;
    assert_int_equal(queued, 4); /* 4 frames of 1008 bytes in 4096 */
    assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 0), PSL_ERR_BUSY);
    uint64_t t0 = now_ms();
    assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 40), PSL_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 39);
    /* A blocked send completes once the consumer drains. */
    ring_set_spin(&f.r, 0);
    struct drain_args d = {.r = &f.r, .delay_ms = 100, .count = 5};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_later, &d), 0);
    t0 = now_ms();
    assert_int_equal(ring_send(&f.r, 2, msg, sizeof msg, -1), PSL_OK);
    assert_true(now_ms() - t0 >= 50);
    pthread_join(t, NULL);
    assert_int_equal(d.err, PSL_OK);
    struct ring_stats st;
    ring_get_stats(&f.r, &st);
    assert_true(st.send_sleeps >= 1); /* it slept on the futex ... */
    assert_true(st.recv_wakes >= 1);  /* ... and the consumer woke it */
    uint8_t buf[16];
    uint32_t type;
    size_t size;
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);
    fixture_deinit(&f);
}

static void test_close_semantics(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    assert_false(ring_is_closed(&f.r));
    assert_int_equal(ring_send(&f.r, 1, "a", 1, 0), PSL_OK);
    assert_int_equal(ring_send(&f.r, 2, "bb", 2, 0), PSL_OK);
    ring_close(&f.r);
    ring_close(&f.r); /* idempotent */
    assert_true(ring_is_closed(&f.r));
    assert_int_equal(ring_send(&f.r, 3, "c", 1, 0), PSL_ERR_CLOSED);
    assert_int_equal(ring_send(&f.r, 3, "c", 1, -1), PSL_ERR_CLOSED);
    uint8_t buf[16];
    uint32_t type;
    size_t size;
    /* What was sent before the close is still delivered, then CLOSED, every time. */
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 1);
    assert_int_equal(ring_recv(&f.r, &type, buf, sizeof buf, &size, -1), PSL_OK);
    assert_int_equal(type, 2);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_CLOSED);
    assert_int_equal(ring_recv(&f.r, &type, buf, sizeof buf, &size, -1), PSL_ERR_CLOSED);
    fixture_deinit(&f);
}

struct blocked_args {
    struct ring *r;
    bool sending;
    psl_err err;
};

static void *block_forever(void *arg)
{
    struct blocked_args *a = arg;
    static uint8_t buf[2048];
    uint32_t type;
    size_t size;
    if (a->sending)
        a->err = ring_send(a->r, 1, buf, 2000, -1);
    else
        a->err = ring_recv(a->r, &type, buf, sizeof buf, &size, -1);
    return NULL;
}

/* Close wakes a consumer blocked on an empty ring and a producer blocked on a full one, both
 * asleep on their futex (spin 0). */
static void test_close_wakes_waiters(void **state)
{
    (void)state;
    for (int sending = 0; sending < 2; sending++) {
        struct fixture f;
        fixture_init(&f, SMALL_CAP);
        ring_set_spin(&f.r, 0);
        uint8_t msg[2000] = {0};
        if (sending) {
            assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 0), PSL_OK);
            assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 0), PSL_OK);
            assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 0), PSL_ERR_BUSY);
        }
        struct blocked_args a = {.r = &f.r, .sending = sending != 0, .err = PSL_OK};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, block_forever, &a), 0);
        sleep_ms(50);
        ring_close(&f.r);
        pthread_join(t, NULL);
        assert_int_equal(a.err, PSL_ERR_CLOSED);
        fixture_deinit(&f);
    }
}

/* ---- the channel and two processes ---- */

static void test_chan_create_attach(void **state)
{
    (void)state;
    struct ring_chan host, encl;
    assert_int_equal(ring_chan_create(&host, 5000), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_chan_create(&host, SMALL_CAP), PSL_OK);
    int fd = dup(host.fd);
    assert_true(fd >= 0);
    assert_int_equal(ring_chan_attach_fd(&encl, fd), PSL_OK);
    uint8_t buf[16];
    uint32_t type;
    size_t size;
    assert_int_equal(ring_send(&host.tx, 1, "to-enclave", 10, 0), PSL_OK);
    assert_int_equal(ring_recv(&encl.rx, &type, buf, sizeof buf, &size, 0), PSL_OK);
    assert_int_equal(size, 10);
    assert_memory_equal(buf, "to-enclave", 10);
    assert_int_equal(ring_send(&encl.tx, 2, "to-host", 7, 0), PSL_OK);
    assert_int_equal(ring_recv(&host.rx, &type, buf, sizeof buf, &size, 0), PSL_OK);
    assert_int_equal(type, 2);
    assert_memory_equal(buf, "to-host", 7);
    /* The host's memfd cannot be truncated under the enclave's mapping. */
    assert_true(ftruncate(host.fd, 4096) != 0);
    ring_chan_destroy(&encl);
    ring_chan_destroy(&encl); /* again: nothing */
    ring_chan_destroy(&host);
    assert_int_equal(host.fd, -1);
}

static void test_chan_attach_rejects(void **state)
{
    (void)state;
    struct ring_chan c;
    size_t size = 2 * ring_region_size(SMALL_CAP);
    assert_int_equal(ring_chan_attach_fd(&c, -1), PSL_ERR_INVALID_ARG);
    /* Not sealed: the peer could shrink it under us. */
    int fd = memfd_create("t", MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(ring_chan_attach_fd(&c, fd), PSL_ERR_IO);
    /* Sealed, but all zeros: no ring in it. */
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    assert_int_equal(ring_chan_attach_fd(&c, fd), PSL_ERR_MALFORMED);
    close(fd);
    /* A real channel whose second ring was tampered with. */
    struct ring_chan host;
    assert_int_equal(ring_chan_create(&host, SMALL_CAP), PSL_OK);
    ((struct ring_shared *)((uint8_t *)host.map + size / 2))->magic = 0;
    fd = dup(host.fd);
    assert_int_equal(ring_chan_attach_fd(&c, fd), PSL_ERR_BAD_MAGIC);
    close(fd);
    /* Capacity in ring 0 that does not match the file size. */
    ((struct ring_shared *)((uint8_t *)host.map + size / 2))->magic = RING_MAGIC;
    ((struct ring_shared *)host.map)->capacity = 2 * SMALL_CAP;
    fd = dup(host.fd);
    assert_int_equal(ring_chan_attach_fd(&c, fd), PSL_ERR_MALFORMED);
    close(fd);
    ring_chan_destroy(&host);
}

static psl_err child_attach(struct ring_chan *host, struct ring_chan *out)
{
    int fd = dup(host->fd);
    if (fd < 0)
        return PSL_ERR_IO;
    return ring_chan_attach_fd(out, fd);
}

static char proc_state(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return '?';
    char state = '?';
    if (fgets(line, sizeof line, fp)) {
        const char *p = strrchr(line, ')');
        if (p && p[1] == ' ')
            state = p[2];
    }
    fclose(fp);
    return state;
}

/* A consumer in another process, with no spinning, is asleep in FUTEX_WAIT when the message is
 * sent, and the producer's FUTEX_WAKE (shared, not private) wakes it. */
static void test_cross_process_wake(void **state)
{
    (void)state;
    struct ring_chan host;
    assert_int_equal(ring_chan_create(&host, SMALL_CAP), PSL_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ring_chan e;
        if (child_attach(&host, &e) != PSL_OK)
            _exit(10);
        ring_set_spin(&e.rx, 0);
        uint8_t buf[64];
        uint32_t type;
        size_t size;
        if (ring_recv(&e.rx, &type, buf, sizeof buf, &size, 20000) != PSL_OK)
            _exit(11);
        if (type != 9 || size != 5 || memcmp(buf, "wake!", 5) != 0)
            _exit(12);
        struct ring_stats st;
        ring_get_stats(&e.rx, &st);
        if (ring_send(&e.tx, 10, &st.recv_sleeps, sizeof st.recv_sleeps, 5000) != PSL_OK)
            _exit(13);
        _exit(0);
    }
    /* Wait until the child sleeps, then some more: it is parked in the kernel, not spinning. */
    uint64_t t0 = now_ms();
    while (proc_state(pid) != 'S' && now_ms() - t0 < 10000)
        sleep_ms(5);
    sleep_ms(200);
    assert_int_equal(proc_state(pid), 'S');
    assert_int_equal(atomic_load(&host.tx.sh->data_wait), 1); /* it announced its sleep */
    assert_int_equal(ring_send(&host.tx, 9, "wake!", 5, 0), PSL_OK);
    struct ring_stats st;
    ring_get_stats(&host.tx, &st);
    assert_int_equal(st.send_wakes, 1);
    uint64_t sleeps = 0;
    uint32_t type;
    size_t size;
    assert_int_equal(ring_recv(&host.rx, &type, &sleeps, sizeof sleeps, &size, 20000), PSL_OK);
    assert_int_equal(type, 10);
    assert_true(sleeps >= 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    ring_chan_destroy(&host);
}

static void die_by_sigkill(int sig)
{
    (void)sig;
    raise(SIGKILL);
}

#define MARK_SIZE 1024u

/* A producer process dies in the middle of writing a frame (its payload copy faults on a
 * PROT_NONE page half-way; the fault handler raises SIGKILL). The consumer sees the whole
 * messages sent before, and nothing of the partial one, although its first half is in the
 * ring. */
static void test_killed_mid_write(void **state)
{
    (void)state;
    struct ring_chan host;
    assert_int_equal(ring_chan_create(&host, 16384), PSL_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ring_chan e;
        if (child_attach(&host, &e) != PSL_OK)
            _exit(10);
        static uint8_t msg[3000];
        for (uint64_t seq = 0; seq < 3; seq++) {
            pattern_fill(msg, seq, sizeof msg);
            if (ring_send(&e.tx, (uint32_t)seq + 1u, msg, sizeof msg, 0) != PSL_OK)
                _exit(11);
        }
        uint8_t *guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard == MAP_FAILED)
            _exit(12);
        memset(msg, 0xEE, MARK_SIZE);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = die_by_sigkill;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        struct iovec iov[2] = {{.iov_base = msg, .iov_len = MARK_SIZE},
                               {.iov_base = guard, .iov_len = 1000}};
        if (ring_sendv(&e.tx, 99, iov, 2, 0) != PSL_OK)
            _exit(14);
        _exit(0); /* not reached: the copy of iov[1] faults */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Killed (or, if a sanitizer kept its own fault handler, exited 1 after reporting). */
    assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 1));
    /* The first half of the partial payload is in the ring's data area. */
    const uint8_t *area = (const uint8_t *)host.rx.data;
    size_t run = 0, best = 0;
    for (size_t i = 0; i < host.rx.cap; i++) {
        run = area[i] == 0xEE ? run + 1 : 0;
        best = run > best ? run : best;
    }
    assert_true(best >= MARK_SIZE);
    static uint8_t buf[4096];
    uint32_t type;
    size_t size;
    for (uint64_t seq = 0; seq < 3; seq++) {
        assert_int_equal(ring_recv(&host.rx, &type, buf, sizeof buf, &size, 0), PSL_OK);
        assert_int_equal(type, (uint32_t)seq + 1u);
        assert_int_equal(size, 3000);
        assert_true(pattern_ok(buf, seq, size));
    }
    assert_int_equal(ring_recv(&host.rx, &type, buf, sizeof buf, &size, 0), PSL_ERR_NOT_FOUND);
    ring_chan_destroy(&host);
}

#define BIG_SIZE (4u << 20)

static void big_fill(uint8_t *buf, uint64_t seq)
{
    memset(buf, (int)(seq * 37u + 11u), BIG_SIZE);
    memcpy(buf, &seq, sizeof seq);
    memcpy(buf + BIG_SIZE - sizeof seq, &seq, sizeof seq);
}

static bool big_ok(const uint8_t *buf, size_t size, uint64_t seq)
{
    if (size != BIG_SIZE)
        return false;
    uint64_t a, b;
    memcpy(&a, buf, sizeof a);
    memcpy(&b, buf + BIG_SIZE - sizeof b, sizeof b);
    if (a != seq || b != seq)
        return false;
    uint8_t v = (uint8_t)(seq * 37u + 11u);
    for (size_t i = sizeof seq; i < BIG_SIZE - sizeof seq; i++)
        if (buf[i] != v)
            return false;
    return true;
}

/* A producer process sending 4 MiB messages in a loop is killed with SIGKILL at a random moment
 * (most likely while it copies a message): the consumer receives only whole messages, in
 * order, and then finds the ring empty. */
static void test_killed_while_sending_big(void **state)
{
    (void)state;
    uint8_t *buf = malloc(BIG_SIZE);
    assert_non_null(buf);
    srand(12345);
    for (int round = 0; round < 3; round++) {
        struct ring_chan host;
        assert_int_equal(ring_chan_create(&host, PSL_RING_CAPACITY_DEFAULT), PSL_OK);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct ring_chan e;
            uint8_t *msg = malloc(BIG_SIZE);
            if (!msg || child_attach(&host, &e) != PSL_OK)
                _exit(10);
            for (uint64_t seq = 0;; seq++) {
                big_fill(msg, seq);
                if (ring_send(&e.tx, 1, msg, BIG_SIZE, -1) != PSL_OK)
                    _exit(11);
            }
        }
        uint32_t type;
        size_t size;
        uint64_t seq = 0;
        for (; seq < 2; seq++) {
            assert_int_equal(ring_recv(&host.rx, &type, buf, BIG_SIZE, &size, 20000), PSL_OK);
            assert_true(big_ok(buf, size, seq));
        }
        /* Kill it 0-3 ms later: filling and copying one message takes about that long. */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(rand() % 3000) * 1000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        psl_err err;
        while ((err = ring_recv(&host.rx, &type, buf, BIG_SIZE, &size, 0)) == PSL_OK) {
            assert_true(big_ok(buf, size, seq));
            seq++;
        }
        assert_int_equal(err, PSL_ERR_NOT_FOUND);
        ring_chan_destroy(&host);
    }
    free(buf);
}

/* A consumer in another process closes its receiving ring; the producer learns it. */
static void test_cross_process_close(void **state)
{
    (void)state;
    struct ring_chan host;
    assert_int_equal(ring_chan_create(&host, SMALL_CAP), PSL_OK);
    ring_set_spin(&host.rx, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ring_chan e;
        if (child_attach(&host, &e) != PSL_OK)
            _exit(10);
        sleep_ms(50);
        ring_close(&e.rx); /* the enclave is done reading */
        ring_close(&e.tx); /* and writing */
        _exit(0);
    }
    uint8_t buf[8];
    uint32_t type;
    size_t size;
    /* Blocked forever until the peer's close wakes it. */
    assert_int_equal(ring_recv(&host.rx, &type, buf, sizeof buf, &size, -1), PSL_ERR_CLOSED);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(ring_send(&host.tx, 1, "x", 1, 0), PSL_ERR_CLOSED);
    ring_chan_destroy(&host);
}

/* ---- a hostile producer (the consumer's checks) ---- */

static void expect_broken(struct fixture *f)
{
    uint8_t buf[64];
    uint32_t type = 0xabcd;
    size_t size = 0xabcd;
    assert_int_equal(recv_poll(&f->r, buf, sizeof buf, &type, &size), PSL_ERR_MALFORMED);
    assert_int_equal(type, 0xabcd); /* outputs untouched */
    assert_int_equal(size, 0xabcd);
    /* Sticky: every later call fails, whatever the peer writes now (here: a sound frame). */
    poke_frame(f, (uint32_t)(f->r.head & (f->r.cap - 1u)), 1, 0);
    assert_int_equal(recv_poll(&f->r, buf, sizeof buf, &type, &size), PSL_ERR_MALFORMED);
    assert_int_equal(ring_recv(&f->r, &type, buf, sizeof buf, &size, -1), PSL_ERR_MALFORMED);
    assert_int_equal(ring_send(&f->r, 1, "x", 1, 0), PSL_ERR_MALFORMED);
}

/* The consumer waits on the frame header at its head, not on the shared tail: a tail the peer
 * scribbles over (ahead, behind, unaligned) neither breaks the ring nor makes frames appear. */
static void test_hostile_tail_ignored(void **state)
{
    (void)state;
    int64_t deltas[] = {(int64_t)SMALL_CAP + 8, -512, -2048, 12};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        struct fixture f;
        fixture_init(&f, SMALL_CAP);
        advance_to(&f, 1024);
        poke_tail(&f, (uint64_t)(1024 + deltas[i]));
        uint8_t buf[16];
        uint32_t type;
        size_t size;
        assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);
        assert_int_equal(ring_send(&f.r, 3, "ok", 2, 0), PSL_OK);
        assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
        assert_int_equal(type, 3);
        assert_int_equal(size, 2);
        fixture_deinit(&f);
    }
}

/* A stale header of the previous lap is never taken for a new frame: every send clears the slot
 * after its frame, and the type that marks an empty slot cannot be sent. */
static void test_empty_slot_type_reserved(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    assert_int_equal(ring_send(&f.r, RING_TYPE_NONE, "x", 1, 0), PSL_ERR_INVALID_ARG);
    assert_int_equal(ring_send(&f.r, RING_TYPE_PAD, "x", 1, 0), PSL_ERR_INVALID_ARG);
    /* Two laps of one message size, then the slot where the first lap's frames were: empty. */
    advance_to(&f, 2u * SMALL_CAP);
    uint32_t type;
    size_t size;
    uint8_t buf[16];
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);
    uint64_t next;
    memcpy(&next, data_of(&f), sizeof next);
    assert_true(next == 0); /* the slot at the head reads RING_TYPE_NONE */
    fixture_deinit(&f);
}

static void test_hostile_frames(void **state)
{
    (void)state;
    struct fixture f;
    uint32_t max = ring_msg_size_max(SMALL_CAP);

    /* Size over the limit. */
    fixture_init(&f, SMALL_CAP);
    poke_frame(&f, 0, 1, max + 1u);
    expect_broken(&f);
    fixture_deinit(&f);

    /* Size near 2^32 (would wrap a 32-bit frame computation). */
    fixture_init(&f, SMALL_CAP);
    poke_frame(&f, 0, 1, UINT32_MAX - 3u);
    expect_broken(&f);
    fixture_deinit(&f);

    /* A frame crossing the end of the area. */
    fixture_init(&f, SMALL_CAP);
    advance_to(&f, SMALL_CAP - 16u);
    poke_frame(&f, SMALL_CAP - 16u, 1, 64);
    expect_broken(&f);
    fixture_deinit(&f);

    /* A pad that does not run exactly to the end. */
    fixture_init(&f, SMALL_CAP);
    advance_to(&f, SMALL_CAP - 32u);
    poke_frame(&f, SMALL_CAP - 32u, RING_TYPE_PAD, 8);
    expect_broken(&f);
    fixture_deinit(&f);

    /* A pad at offset 0 (it would claim the whole area). */
    fixture_init(&f, SMALL_CAP);
    poke_frame(&f, 0, RING_TYPE_PAD, SMALL_CAP - 8u);
    expect_broken(&f);
    fixture_deinit(&f);

    /* A pad followed by another pad (a producer never writes two; the second, at offset 0,
     * would claim the whole area). */
    fixture_init(&f, SMALL_CAP);
    advance_to(&f, SMALL_CAP - 32u);
    poke_frame(&f, SMALL_CAP - 32u, RING_TYPE_PAD, 24);
    poke_frame(&f, 0, RING_TYPE_PAD, SMALL_CAP - 8u);
    expect_broken(&f);
    fixture_deinit(&f);
}

/* A hand-made but well-formed wrap from a hostile producer is accepted: validation is about
 * bounds, not about who wrote the bytes. */
static void test_hostile_valid_wrap_accepted(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, SMALL_CAP);
    advance_to(&f, SMALL_CAP - 16u);
    poke_frame(&f, SMALL_CAP - 16u, RING_TYPE_PAD, 8);
    poke_frame(&f, 0, 7, 4);
    memcpy(data_of(&f) + 8, "wrap", 4);
    poke_frame(&f, 16, RING_TYPE_NONE, 0);
    uint8_t buf[64];
    uint32_t type;
    size_t size;
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_OK);
    assert_int_equal(type, 7);
    assert_int_equal(size, 4);
    assert_memory_equal(buf, "wrap", 4);
    assert_int_equal(recv_poll(&f.r, buf, sizeof buf, &type, &size), PSL_ERR_NOT_FOUND);
    fixture_deinit(&f);
}

/* ---- a hostile consumer (the producer's checks) ---- */

static void test_hostile_head(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_init(&f, SMALL_CAP);
        advance_to(&f, 4096 + 512);
        uint8_t msg[1000] = {0};
        while (ring_send(&f.r, 1, msg, sizeof msg, 0) == PSL_OK) {
        }
        /* Full: the next send reloads the head. k = 0: past our tail; k = 1: backwards. */
        atomic_store(&shared_of(&f)->head, k == 0 ? f.r.tail + 8u : f.r.head_seen - 8u);
        assert_int_equal(ring_send(&f.r, 1, msg, sizeof msg, 0), PSL_ERR_MALFORMED);
        assert_int_equal(ring_send(&f.r, 1, msg, 1, 0), PSL_ERR_MALFORMED);
        fixture_deinit(&f);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_size_and_limits),
        cmocka_unit_test(test_format_rejects_bad_arguments),
        cmocka_unit_test(test_attach_validates_header),
        cmocka_unit_test(test_send_recv_basic),
        cmocka_unit_test(test_recv_too_large_keeps_message),
        cmocka_unit_test(test_sendv_gathers),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_order_two_threads),
        cmocka_unit_test(test_order_futex_only),
        cmocka_unit_test(test_empty_ring_poll_and_timeout),
        cmocka_unit_test(test_full_ring_backpressure),
        cmocka_unit_test(test_close_semantics),
        cmocka_unit_test(test_close_wakes_waiters),
        cmocka_unit_test(test_chan_create_attach),
        cmocka_unit_test(test_chan_attach_rejects),
        cmocka_unit_test(test_cross_process_wake),
        cmocka_unit_test(test_killed_mid_write),
        cmocka_unit_test(test_killed_while_sending_big),
        cmocka_unit_test(test_cross_process_close),
        cmocka_unit_test(test_hostile_tail_ignored),
        cmocka_unit_test(test_empty_slot_type_reserved),
        cmocka_unit_test(test_hostile_frames),
        cmocka_unit_test(test_hostile_valid_wrap_accepted),
        cmocka_unit_test(test_hostile_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
