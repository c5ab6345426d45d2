/* test_base.c: unit tests of src/base: the bounded reader and writer, hex helpers, error table,
 * logger, and the clock and rng seams. Every test restores the global seams (clock, rng, log sink
 * and level) it changes, so the order of tests does not matter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/rng.h"
#include "testutil.h"

/* ---- bounded reader ---- */

static void test_rd_reads_little_endian(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x01,                                           /* u8 */
                                 0x02, 0x03,                                     /* u16 */
                                 0x04, 0x05, 0x06, 0x07,                         /* u32 */
                                 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, /* u64 */
                                 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0x80};
    struct rd r;
    rd_init(&r, in, sizeof in);
    assert_int_equal(rd_left(&r), sizeof in);
    assert_int_equal(rd_u8(&r), 0x01);
    assert_int_equal(rd_u16(&r), 0x0302);
    assert_int_equal(rd_u32(&r), 0x07060504u);
    assert_true(rd_u64(&r) == 0x0f0e0d0c0b0a0908ull);
    assert_true(rd_u64(&r) == 0x80f9fafbfcfdfeffull);
    assert_int_equal(rd_left(&r), 0);
    assert_int_equal(r.err, PSL_OK);
    assert_int_equal(rd_finish(&r), PSL_OK);
}

static void test_rd_take_and_copy(void **state)
{
    (void)state;
    static const uint8_t in[] = {'a', 'b', 'c', 'd', 'e'};
    struct rd r;
    rd_init(&r, in, sizeof in);
    const uint8_t *p = rd_take(&r, 2);
    assert_ptr_equal(p, in); /* borrowed, not copied */
    assert_int_equal(r.pos, 2);
    /* A zero-length take succeeds and does not move. */
    assert_ptr_equal(rd_take(&r, 0), in + 2);
    assert_int_equal(r.pos, 2);
    uint8_t out[3];
    rd_copy(&r, out, 3);
    assert_memory_equal(out, "cde", 3);
    assert_int_equal(rd_finish(&r), PSL_OK);
}

static void test_rd_truncation_is_sticky(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x11, 0x22, 0x33};
    struct rd r;
    rd_init(&r, in, sizeof in);
    assert_int_equal(rd_u16(&r), 0x2211);
    /* Two bytes wanted, one left: fails, returns 0, does not advance. */
    assert_int_equal(rd_u16(&r), 0);
    assert_int_equal(r.err, PSL_ERR_TRUNCATED);
    assert_int_equal(r.pos, 2);
    /* The byte that is left is not handed out after the failure: the error is sticky. */
    assert_int_equal(rd_u8(&r), 0);
    assert_int_equal(rd_u32(&r), 0);
    assert_true(rd_u64(&r) == 0);
    assert_null(rd_take(&r, 0));
    assert_null(rd_take(&r, 1));
    assert_int_equal(r.pos, 2);
    /* rd_copy zero-fills its output on failure rather than leaving stale bytes. */
    uint8_t out[4];
    memset(out, 0xaa, sizeof out);
    rd_copy(&r, out, sizeof out);
    static const uint8_t zeros[4];
    assert_memory_equal(out, zeros, sizeof out);
    /* The first error wins: finish reports TRUNCATED, not TRAILING, though bytes are left. */
    assert_int_equal(rd_finish(&r), PSL_ERR_TRUNCATED);
    assert_int_equal(r.err, PSL_ERR_TRUNCATED);
}

static void test_rd_each_width_truncates(void **state)
{
    (void)state;
    static const uint8_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct rd r;

    rd_init(&r, in, 0);
    assert_int_equal(rd_u8(&r), 0);
    assert_int_equal(rd_finish(&r), PSL_ERR_TRUNCATED);

    rd_init(&r, in, 1);
    assert_int_equal(rd_u16(&r), 0);
    assert_int_equal(r.pos, 0);
    assert_int_equal(rd_finish(&r), PSL_ERR_TRUNCATED);

    rd_init(&r, in, 3);
    assert_int_equal(rd_u32(&r), 0);
    assert_int_equal(r.pos, 0);
    assert_int_equal(rd_finish(&r), PSL_ERR_TRUNCATED);

    /* A u64 with only 4..7 bytes left must fail as a whole: no half value, no half advance. */
    for (size_t size = 0; size < 8; size++) {
        rd_init(&r, in, size);
        assert_true(rd_u64(&r) == 0);
        assert_int_equal(r.err, PSL_ERR_TRUNCATED);
        assert_int_equal(r.pos, 0);
    }
    rd_init(&r, in, 8);
    assert_true(rd_u64(&r) == 0x0807060504030201ull);
    assert_int_equal(rd_finish(&r), PSL_OK);
}

static void test_rd_take_huge_does_not_wrap(void **state)
{
    (void)state;
    static const uint8_t in[16];
    struct rd r;
    rd_init(&r, in, sizeof in);
    assert_int_equal(rd_u8(&r), 0);
    /* pos + SIZE_MAX wraps to pos - 1; a `pos + n > size` check would accept it. */
    assert_null(rd_take(&r, SIZE_MAX));
    assert_int_equal(r.err, PSL_ERR_TRUNCATED);
    assert_int_equal(r.pos, 1);

    rd_init(&r, in, sizeof in);
    (void)rd_take(&r, 5);
    assert_null(rd_take(&r, SIZE_MAX - 4)); /* pos + n == 0 after wrapping */
    assert_int_equal(r.err, PSL_ERR_TRUNCATED);
    assert_int_equal(r.pos, 5);

    /* Exactly the rest is fine; one more byte is not. */
    rd_init(&r, in, sizeof in);
    (void)rd_take(&r, 5);
    assert_non_null(rd_take(&r, sizeof in - 5));
    assert_int_equal(rd_finish(&r), PSL_OK);
    rd_init(&r, in, sizeof in);
    (void)rd_take(&r, 5);
    assert_null(rd_take(&r, sizeof in - 4));
    assert_int_equal(rd_finish(&r), PSL_ERR_TRUNCATED);
}

static void test_rd_finish_reports_trailing(void **state)
{
    (void)state;
    static const uint8_t in[] = {1, 2, 3};
    struct rd r;
    rd_init(&r, in, sizeof in);
    assert_int_equal(rd_u16(&r), 0x0201);
    assert_int_equal(rd_finish(&r), PSL_ERR_TRAILING);
    /* The error is recorded, so later reads are refused too. */
    assert_int_equal(r.err, PSL_ERR_TRAILING);
    assert_int_equal(rd_u8(&r), 0);

    rd_init(&r, in, 0);
    assert_int_equal(rd_finish(&r), PSL_OK); /* empty input, nothing read: fully consumed */
}

/* ---- bounded writer ---- */

static void test_wr_writes_little_endian(void **state)
{
    (void)state;
    static const uint8_t want[] = {0xa1, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x10, 0x0f,
                                   0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 'x',  'y',  'z'};
    uint8_t buf[sizeof want];
    struct wr w;
    wr_init(&w, buf, sizeof buf);
    wr_u8(&w, 0xa1);
    wr_u16(&w, 0x0102);
    wr_u32(&w, 0x03040506u);
    wr_u64(&w, 0x090a0b0c0d0e0f10ull);
    wr_bytes(&w, "xyz", 3);
    wr_bytes(&w, NULL, 0);
    assert_int_equal(w.err, PSL_OK);
    assert_int_equal(w.pos, sizeof want);
    assert_memory_equal(buf, want, sizeof want);

    /* What the writer wrote, the reader reads back. */
    struct rd r;
    rd_init(&r, buf, w.pos);
    assert_int_equal(rd_u8(&r), 0xa1);
    assert_int_equal(rd_u16(&r), 0x0102);
    assert_int_equal(rd_u32(&r), 0x03040506u);
    assert_true(rd_u64(&r) == 0x090a0b0c0d0e0f10ull);
    assert_memory_equal(rd_take(&r, 3), "xyz", 3);
    assert_int_equal(rd_finish(&r), PSL_OK);
}

static void test_wr_overflow_is_sticky(void **state)
{
    (void)state;
    uint8_t buf[8];
    memset(buf, 0xee, sizeof buf);
    struct wr w;
    wr_init(&w, buf, 6);
    wr_u32(&w, 0x44332211u);
    assert_int_equal(w.err, PSL_OK);
    /* Four more bytes do not fit in the two left: nothing is written. */
    wr_u32(&w, 0x88776655u);
    assert_int_equal(w.err, PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 4);
    /* A write that would fit is refused after the failure. */
    wr_u8(&w, 0x99);
    wr_u16(&w, 0x9999);
    wr_bytes(&w, "\x99", 1);
    assert_null(wr_reserve(&w, 0));
    assert_int_equal(w.err, PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 4);
    static const uint8_t want[8] = {0x11, 0x22, 0x33, 0x44, 0xee, 0xee, 0xee, 0xee};
    assert_memory_equal(buf, want, sizeof want);

    /* wr_reserve with a huge n does not wrap either. */
    wr_init(&w, buf, sizeof buf);
    wr_u8(&w, 0);
    assert_null(wr_reserve(&w, SIZE_MAX));
    assert_int_equal(w.err, PSL_ERR_TOO_LARGE);
    assert_int_equal(w.pos, 1);

    /* Filling exactly to the end is fine. */
    wr_init(&w, buf, sizeof buf);
    wr_u64(&w, 1);
    assert_int_equal(w.err, PSL_OK);
    wr_u8(&w, 1);
    assert_int_equal(w.err, PSL_ERR_TOO_LARGE);
}

static void test_put_get_le_round_trip(void **state)
{
    (void)state;
    uint8_t b[8];
    put_le16(b, 0xbeef);
    assert_int_equal(b[0], 0xef);
    assert_int_equal(b[1], 0xbe);
    put_le32(b, 0x11223344u);
    static const uint8_t le32[] = {0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(b, le32, 4);
    assert_int_equal(get_le32(b), 0x11223344u);
    put_le64(b, 0x0102030405060708ull);
    static const uint8_t le64[] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    assert_memory_equal(b, le64, 8);

    static const uint64_t v64[] = {0,
                                   1,
                                   0xff,
                                   0x100,
                                   0x7fffffffffffffffull,
                                   0x8000000000000000ull,
                                   0xdeadbeefcafef00dull,
                                   UINT64_MAX};
    for (size_t i = 0; i < sizeof v64 / sizeof v64[0]; i++) {
        put_le64(b, v64[i]);
        assert_true(get_le64(b) == v64[i]);
        assert_int_equal(get_le32(b), (uint32_t)v64[i]);
        assert_int_equal(get_le32(b + 4), (uint32_t)(v64[i] >> 32));
    }
    static const uint32_t v32[] = {0, 1, 0x80, 0x8000, 0x80000000u, 0xfffffffeu, UINT32_MAX};
    for (size_t i = 0; i < sizeof v32 / sizeof v32[0]; i++) {
        put_le32(b, v32[i]);
        assert_int_equal(get_le32(b), v32[i]);
    }
    for (uint32_t v = 0; v <= 0xffff; v += 0x0101) {
        put_le16(b, (uint16_t)v);
        struct rd r;
        rd_init(&r, b, 2);
        assert_int_equal(rd_u16(&r), v);
    }
}

/* ---- hex ---- */

static void test_hex_encode(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
    char out[2 * sizeof in + 2];
    memset(out, '#', sizeof out);
    hex_encode(out, in, sizeof in);
    assert_string_equal(out, "00017f80abcdefff");
    assert_int_equal(out[2 * sizeof in + 1], '#'); /* writes exactly 2n+1 bytes */

    char empty[2] = {'#', '#'};
    hex_encode(empty, in, 0);
    assert_int_equal(empty[0], '\0');
    assert_int_equal(empty[1], '#');
}

static void test_hex_decode(void **state)
{
    (void)state;
    uint8_t out[5];
    assert_int_equal(hex_decode(out, 4, "0001abff"), PSL_OK);
    static const uint8_t want[] = {0x00, 0x01, 0xab, 0xff};
    assert_memory_equal(out, want, 4);
    /* Upper case is accepted too. */
    assert_int_equal(hex_decode(out, 4, "DEADbeef"), PSL_OK);
    static const uint8_t want2[] = {0xde, 0xad, 0xbe, 0xef};
    assert_memory_equal(out, want2, 4);
    assert_int_equal(hex_decode(out, 0, ""), PSL_OK);

    /* Round trip over every byte value. */
    uint8_t all[256], back[256];
    char text[513];
    for (size_t i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    hex_encode(text, all, sizeof all);
    assert_int_equal(hex_decode(back, sizeof back, text), PSL_OK);
    assert_memory_equal(all, back, sizeof all);
}

static void test_hex_decode_rejects_and_writes_nothing(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *in;
    } bad[] = {
        {2, "0g00"},       /* bad char */
        {2, "00 0"},       /* space */
        {2, "000x"},       /* bad char in the last position */
        {2, "0x00"},       /* prefix is not hex */
        {2, "abc"},        /* odd length */
        {2, "abcde"},      /* odd length, longer than 2n */
        {2, "ab"},         /* too short for n */
        {2, "abcdef"},     /* too long for n */
        {1, ""},           /* empty for n = 1 */
        {0, "00"},         /* n = 0 wants "" */
        {2, "ab\xc3\xa9"}, /* non-ASCII */
        {2, "ab:d"},       /* the chars right after '9' and before 'a', 'A' */
        {2, "ab@d"},       {2, "ab`d"}, {2, "abGd"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[4];
        memset(out, 0x5a, sizeof out);
        assert_int_equal(hex_decode(out, bad[i].n, bad[i].in), PSL_ERR_MALFORMED);
        static const uint8_t untouched[4] = {0x5a, 0x5a, 0x5a, 0x5a};
        assert_memory_equal(out, untouched, sizeof out);
    }
}

/* ---- errors ---- */

static void test_err_strings(void **state)
{
    (void)state;
    for (int e = 0; e < PSL_ERR__COUNT; e++) {
        const char *msg = psl_strerror((psl_err)e);
        const char *name = psl_err_name((psl_err)e);
        assert_non_null(msg);
        assert_non_null(name);
        /* Every value has its own row in the table (no gap falls back to "unknown"). */
        assert_string_not_equal(msg, "unknown error");
        assert_string_not_equal(name, "unknown");
        assert_true(strlen(msg) > 0);
        assert_true(strlen(name) > 0);
        /* Names are stable identifiers for key=value logs: lower case, digits and '_' only. */
        for (const char *c = name; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        /* And distinct. */
        for (int f = 0; f < e; f++)
            assert_string_not_equal(name, psl_err_name((psl_err)f));
    }
    assert_string_equal(psl_err_name(PSL_OK), "ok");
    assert_string_equal(psl_err_name(PSL_ERR_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(psl_err_name(PSL_ERR_TRUNCATED), "truncated");

    static const int out_of_range[] = {PSL_ERR__COUNT, PSL_ERR__COUNT + 1, 1000, -1, -1000};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        psl_err e = (psl_err)out_of_range[i];
        assert_non_null(psl_strerror(e));
        assert_non_null(psl_err_name(e));
        assert_string_equal(psl_strerror(e), "unknown error");
        assert_string_equal(psl_err_name(e), "unknown");
    }
}

static void test_err_outward(void **state)
{
    (void)state;
    /* The verification errors are one block of the enum, PSL_ERR_AUTH to PSL_ERR_ATTEST_BINDING:
     * they collapse outward, everything else is passed through unchanged. */
    for (int e = 0; e < PSL_ERR__COUNT; e++) {
        bool auth = e >= PSL_ERR_AUTH && e <= PSL_ERR_ATTEST_BINDING;
        assert_int_equal(psl_err_is_auth((psl_err)e), auth);
        assert_int_equal(psl_err_outward((psl_err)e), auth ? PSL_ERR_AUTH : e);
    }
    /* Spot checks, so a reordered enum cannot silently move errors out of the auth range. */
    static const psl_err collapsed[] = {
        PSL_ERR_AUTH,           PSL_ERR_WRONG_CAPSULE,
        PSL_ERR_UNKNOWN_WRITER, PSL_ERR_CERT_EXPIRED,
        PSL_ERR_CERT_FOREIGN,   PSL_ERR_CERT_ISSUER,
        PSL_ERR_CERT_ROLE,      PSL_ERR_CERT_MEASUREMENT,
        PSL_ERR_BAD_SIGNATURE,  PSL_ERR_BAD_PREV,
        PSL_ERR_BAD_SEQ,        PSL_ERR_DECRYPT,
        PSL_ERR_REPLAY,         PSL_ERR_FORK,
        PSL_ERR_NOT_REPLICA,    PSL_ERR_REVOKED,
    };
    for (size_t i = 0; i < sizeof collapsed / sizeof collapsed[0]; i++) {
        assert_true(psl_err_is_auth(collapsed[i]));
        assert_int_equal(psl_err_outward(collapsed[i]), PSL_ERR_AUTH);
    }
    static const psl_err kept[] = {PSL_OK,
                                   PSL_ERR_NOMEM,
                                   PSL_ERR_IO,
                                   PSL_ERR_TRUNCATED,
                                   PSL_ERR_TOO_LARGE,
                                   PSL_ERR_MALFORMED,
                                   PSL_ERR_BAD_TYPE,
                                   PSL_ERR_CRYPTO};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        assert_false(psl_err_is_auth(kept[i]));
        assert_int_equal(psl_err_outward(kept[i]), kept[i]);
    }
}

/* ---- log ---- */

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), PSL_LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), PSL_LOG_INFO);
    assert_int_equal(log_level_parse("warn"), PSL_LOG_WARN);
    assert_int_equal(log_level_parse("error"), PSL_LOG_ERROR);
    assert_int_equal(log_level_parse("off"), PSL_LOG_OFF);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse("warning"), -1);
    assert_int_equal(log_level_parse("inf"), -1);
    assert_int_equal(log_level_parse("info "), -1);
    assert_int_equal(log_level_parse("trace"), -1);
}

/* Reads everything written to f so far into buf (NUL-terminated). */
static void slurp(FILE *f, char *buf, size_t cap)
{
    assert_int_equal(fflush(f), 0);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
}

static void test_log_sink_and_level(void **state)
{
    (void)state;
    enum psl_log_level saved = log_get_level();
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_sink(f);

    log_set_level(PSL_LOG_WARN);
    assert_int_equal(log_get_level(), PSL_LOG_WARN);
    LOG_DEBUG("tst", "msg=\"dropped-debug\"");
    LOG_INFO("tst", "msg=\"dropped-info\"");
    LOG_WARN("tst", "msg=\"kept-warn\" n=%d", 42);
    LOG_ERROR("store", "msg=\"kept-error\" err=%s", psl_err_name(PSL_ERR_IO));
    log_write(PSL_LOG_OFF, "tst", "msg=\"never\"");

    char buf[4096];
    slurp(f, buf, sizeof buf);
    assert_null(strstr(buf, "dropped"));
    assert_null(strstr(buf, "never"));
    assert_non_null(strstr(buf, "level=warn comp=tst msg=\"kept-warn\" n=42\n"));
    assert_non_null(strstr(buf, "level=error comp=store msg=\"kept-error\" err=io\n"));
    /* One line per call, each starting with a timestamp. */
    assert_int_equal(strncmp(buf, "ts=", 3), 0);
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    assert_int_equal(strncmp(second + 1, "ts=", 3), 0);
    assert_string_equal(strchr(second + 1, '\n'), "\n");

    /* Lowering the level lets debug through; OFF silences everything. */
    rewind(f);
    assert_int_equal(ftruncate(fileno(f), 0), 0);
    log_set_level(PSL_LOG_DEBUG);
    LOG_DEBUG("tst", "msg=\"now-debug\"");
    log_set_level(PSL_LOG_OFF);
    LOG_ERROR("tst", "msg=\"silenced\"");
    slurp(f, buf, sizeof buf);
    assert_non_null(strstr(buf, "level=debug comp=tst msg=\"now-debug\"\n"));
    assert_null(strstr(buf, "silenced"));

    log_set_sink(NULL);
    log_set_level(saved);
    fclose(f);
}

/* ---- clock seam ---- */

struct fake_clock {
    uint64_t mono_ns;
    uint64_t wall_ms;
    unsigned calls;
};

static uint64_t fake_mono_ns(void *ctx)
{
    struct fake_clock *c = ctx;
    c->calls++;
    return c->mono_ns;
}

static uint64_t fake_wall_ms(void *ctx)
{
    struct fake_clock *c = ctx;
    c->calls++;
    return c->wall_ms;
}

static void test_clock_seam(void **state)
{
    (void)state;
    struct fake_clock fc = {.mono_ns = 5, .wall_ms = 1732790000123ull};
    struct clock_source src = {.mono_ns = fake_mono_ns, .wall_ms = fake_wall_ms, .ctx = &fc};
    clock_set_source(&src);
    assert_true(clock_mono_ns() == 5);
    assert_true(clock_wall_ms() == 1732790000123ull);
    fc.mono_ns = 1000000007ull;
    fc.wall_ms = 42;
    assert_true(clock_mono_ns() == 1000000007ull);
    assert_true(clock_wall_ms() == 42);
    assert_int_equal(fc.calls, 4);

    /* The logger takes its timestamp from the seam (so simulated runs log simulated time). */
    fc.wall_ms = 1732790000007ull;
    enum psl_log_level saved = log_get_level();
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_sink(f);
    log_set_level(PSL_LOG_INFO);
    LOG_INFO("clk", "msg=\"tick\"");
    char buf[256];
    slurp(f, buf, sizeof buf);
    assert_string_equal(buf, "ts=1732790000.007 level=info comp=clk msg=\"tick\"\n");
    log_set_sink(NULL);
    log_set_level(saved);
    fclose(f);

    /* NULL restores the system clocks: the fake is no longer consulted. */
    clock_set_source(NULL);
    unsigned calls = fc.calls;
    uint64_t m1 = clock_mono_ns();
    uint64_t m2 = clock_mono_ns();
    assert_true(m2 >= m1);
    assert_true(m1 != 1000000007ull);
    uint64_t wall = clock_wall_ms();
    assert_true(wall > 1577836800000ull); /* after 2020-01-01 */
    assert_int_equal(fc.calls, calls);
}

/* ---- rng seam ---- */

static void draw(const struct rng_source *src, uint8_t *out, size_t size)
{
    rng_set_source(src);
    rng_bytes(out, size);
    rng_set_source(NULL);
}

static void test_rng_seeded_is_deterministic(void **state)
{
    (void)state;
    tu_init();
    struct rng_seeded a, b, c;
    rng_seeded_init(&a, 12345);
    rng_seeded_init(&b, 12345);
    rng_seeded_init(&c, 12346);

    uint8_t ra[3][64], rb[3][64], rc[64];
    for (int i = 0; i < 3; i++) {
        draw(&a.source, ra[i], sizeof ra[i]);
        draw(&b.source, rb[i], sizeof rb[i]);
    }
    /* Same seed: the same stream, call for call. */
    assert_memory_equal(ra, rb, sizeof ra);
    /* Successive calls do not repeat. */
    assert_memory_not_equal(ra[0], ra[1], 64);
    assert_memory_not_equal(ra[1], ra[2], 64);
    /* The output is not trivially zero. */
    static const uint8_t zeros[64];
    assert_memory_not_equal(ra[0], zeros, 64);
    /* A different seed gives a different stream. */
    draw(&c.source, rc, sizeof rc);
    assert_memory_not_equal(ra[0], rc, 64);

    /* rng_u64 goes through the installed source too. */
    struct rng_seeded d, e;
    rng_seeded_init(&d, 7);
    rng_seeded_init(&e, 7);
    rng_set_source(&d.source);
    uint64_t d1 = rng_u64(), d2 = rng_u64();
    rng_set_source(&e.source);
    uint64_t e1 = rng_u64(), e2 = rng_u64();
    rng_set_source(NULL);
    assert_true(d1 == e1);
    assert_true(d2 == e2);
    assert_true(d1 != d2);

    /* Re-initialising restarts the stream. */
    rng_seeded_init(&a, 12345);
    uint8_t again[64];
    draw(&a.source, again, sizeof again);
    assert_memory_equal(again, ra[0], 64);
}

static void test_rng_system(void **state)
{
    (void)state;
    tu_init();
    rng_set_source(NULL);
    uint8_t x[32], y[32];
    rng_bytes(x, sizeof x);
    rng_bytes(y, sizeof y);
    assert_memory_not_equal(x, y, sizeof x);
    assert_true(rng_u64() != rng_u64());
    rng_bytes(x, 0); /* a zero-size request is harmless */
}

/* ---- limits ---- */

static void test_limits_are_consistent(void **state)
{
    (void)state;
    assert_int_equal(PSL_RECORD_SIZE_MAX,
                     PSL_RECORD_HEADER_SIZE + PSL_RECORD_PAYLOAD_SIZE_MAX + PSL_RECORD_SIG_SIZE);
    assert_true(PSL_VALUE_SIZE_MAX < PSL_RECORD_PAYLOAD_SIZE_MAX);
    assert_true(PSL_KEY_SIZE_MAX < PSL_RECORD_PAYLOAD_SIZE_MAX);
    assert_true(PSL_RESULT_SIZE_MAX < PSL_RECORD_PAYLOAD_SIZE_MAX);
    /* A label length is one byte on the wire. */
    assert_true(PSL_LABEL_SIZE_MAX <= 255);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rd_reads_little_endian),
        cmocka_unit_test(test_rd_take_and_copy),
        cmocka_unit_test(test_rd_truncation_is_sticky),
        cmocka_unit_test(test_rd_each_width_truncates),
        cmocka_unit_test(test_rd_take_huge_does_not_wrap),
        cmocka_unit_test(test_rd_finish_reports_trailing),
        cmocka_unit_test(test_wr_writes_little_endian),
        cmocka_unit_test(test_wr_overflow_is_sticky),
        cmocka_unit_test(test_put_get_le_round_trip),
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_hex_decode),
        cmocka_unit_test(test_hex_decode_rejects_and_writes_nothing),
        cmocka_unit_test(test_err_strings),
        cmocka_unit_test(test_err_outward),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_sink_and_level),
        cmocka_unit_test(test_clock_seam),
        cmocka_unit_test(test_rng_seeded_is_deterministic),
        cmocka_unit_test(test_rng_system),
        cmocka_unit_test(test_limits_are_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
