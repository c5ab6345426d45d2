/* test_lambda.c: the Lua lambda sandbox (src/enclave/lambda.c) over an in-memory map that
 * implements lambda_ops behind one mutex, so that several workers can run on threads and meet
 * at barriers. Covers the psl module, the JSON result (known answers, byte for byte), and the
 * escapes a hostile script tries: each is refused with the error code a caller relies on and a
 * message that names the cause and, where there is one, the script line. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/err.h"
#include "base/limits.h"
#include "enclave/lambda.h"
#include "testutil.h"

/* ---- an in-memory lambda_ops backend ---- */

#define LOG_LINES_MAX 8

struct entry {
    uint8_t *key, *value;
    size_t key_size, value_size;
};

struct tmap {
    pthread_mutex_t mu;
    struct entry *e;
    size_t n, cap;
    psl_err put_err; /* injected failure of put */
    unsigned flushes;
    uint64_t slept_ms;
    char log[LOG_LINES_MAX][PSL_LOG_LINE_SIZE_MAX + 1];
    size_t log_size[LOG_LINES_MAX];
    size_t log_count;
};

static void tmap_init(struct tmap *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

static void tmap_deinit(struct tmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].key);
        free(m->e[i].value);
    }
    free(m->e);
    pthread_mutex_destroy(&m->mu);
}

static struct entry *tmap_find(struct tmap *m, const uint8_t *key, size_t key_size)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].key_size == key_size && memcmp(m->e[i].key, key, key_size) == 0)
            return &m->e[i];
    return NULL;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static void tmap_set(struct tmap *m, const void *key, size_t key_size, const void *value,
                     size_t value_size)
{
    pthread_mutex_lock(&m->mu);
    struct entry *e = tmap_find(m, key, key_size);
    if (!e) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            m->e = realloc(m->e, m->cap * sizeof *m->e);
            assert_non_null(m->e);
        }
        e = &m->e[m->n++];
        e->key = dup_bytes(key, key_size);
        e->key_size = key_size;
    } else {
        free(e->value);
    }
    e->value = dup_bytes(value, value_size);
    e->value_size = value_size;
    pthread_mutex_unlock(&m->mu);
}

/* The value of key as a NUL-terminated copy (caller frees), or NULL. */
static char *tmap_get_str(struct tmap *m, const void *key, size_t key_size)
{
    pthread_mutex_lock(&m->mu);
    struct entry *e = tmap_find(m, key, key_size);
    char *s = NULL;
    if (e) {
        s = malloc(e->value_size + 1);
        memcpy(s, e->value, e->value_size);
        s[e->value_size] = '\0';
    }
    pthread_mutex_unlock(&m->mu);
    return s;
}

static psl_err m_get(void *ctx, const uint8_t *key, size_t key_size, uint8_t **value,
                     size_t *value_size)
{
    struct tmap *m = ctx;
    pthread_mutex_lock(&m->mu);
    struct entry *e = tmap_find(m, key, key_size);
    psl_err err = PSL_ERR_NOT_FOUND;
    if (e) {
        *value = malloc(e->value_size ? e->value_size : 1);
        memcpy(*value, e->value, e->value_size);
        *value_size = e->value_size;
        err = PSL_OK;
    }
    pthread_mutex_unlock(&m->mu);
    return err;
}

static psl_err m_put(void *ctx, const uint8_t *key, size_t key_size, const uint8_t *value,
                     size_t value_size)
{
    struct tmap *m = ctx;
    if (m->put_err)
        return m->put_err;
    tmap_set(m, key, key_size, value, value_size);
    return PSL_OK;
}

static psl_err m_del(void *ctx, const uint8_t *key, size_t key_size)
{
    struct tmap *m = ctx;
    pthread_mutex_lock(&m->mu);
    struct entry *e = tmap_find(m, key, key_size);
    psl_err err = PSL_ERR_NOT_FOUND;
    if (e) {
        free(e->key);
        free(e->value);
        *e = m->e[--m->n];
        err = PSL_OK;
    }
    pthread_mutex_unlock(&m->mu);
    return err;
}

static psl_err m_flush(void *ctx)
{
    struct tmap *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->flushes++;
    pthread_mutex_unlock(&m->mu);
    return PSL_OK;
}

static void m_sleep_ms(void *ctx, uint32_t ms)
{
    struct tmap *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->slept_ms += ms;
    pthread_mutex_unlock(&m->mu);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void m_log(void *ctx, const char *line, size_t size)
{
    struct tmap *m = ctx;
    pthread_mutex_lock(&m->mu);
    assert_true(size <= PSL_LOG_LINE_SIZE_MAX);
    assert_int_equal(line[size], '\0');
    if (m->log_count < LOG_LINES_MAX) {
        memcpy(m->log[m->log_count], line, size + 1);
        m->log_size[m->log_count++] = size;
    }
    pthread_mutex_unlock(&m->mu);
}

static struct lambda_ops ops_of(struct tmap *m)
{
    return (struct lambda_ops){.ctx = m,
                               .get = m_get,
                               .put = m_put,
                               .del = m_del,
                               .flush = m_flush,
                               .sleep_ms = m_sleep_ms,
                               .log = m_log};
}

/* ---- running scripts ---- */

struct opts {
    uint64_t insn_max;
    size_t mem_max;
    const char *args;
    size_t args_size;
    uint32_t worker, workers;
    const uint8_t *job_id;
    size_t job_id_size;
};

static char errbuf[1024];

/* Runs code as "t.lua"; on success *result holds the JSON (caller frees). */
static psl_err run_with(struct tmap *m, const char *code, size_t code_size, const struct opts *o,
                        char **result)
{
    struct lambda_ops ops = ops_of(m);
    struct lambda_limits lim = {.mem_bytes_max = o ? o->mem_max : 0,
                                .insn_max = o ? o->insn_max : 0};
    struct lambda_job job = {.code = code,
                             .code_size = code_size,
                             .chunkname = "t.lua",
                             .args = o ? (const uint8_t *)o->args : NULL,
                             .args_size = o ? o->args_size : 0,
                             .worker = o ? o->worker : 0,
                             .workers = o && o->workers ? o->workers : 1,
                             .job_id = o ? o->job_id : NULL,
                             .job_id_size = o ? o->job_id_size : 0};
    size_t size = 0;
    *result = NULL;
    memset(errbuf, 'X', sizeof errbuf);
    psl_err err = lambda_run(&job, &lim, &ops, result, &size, errbuf, sizeof errbuf);
    if (err == PSL_OK) {
        assert_non_null(*result);
        assert_int_equal(strlen(*result), size);
        assert_true(size <= PSL_RESULT_SIZE_MAX);
        assert_string_equal(errbuf, "");
    } else {
        assert_null(*result);
        assert_true(strlen(errbuf) < sizeof errbuf);
        for (const char *p = errbuf; *p; p++)
            assert_true((unsigned char)*p >= 0x20); /* one line */
    }
    return err;
}

static void expect_ok_o(const char *code, const struct opts *o, const char *want)
{
    struct tmap m;
    tmap_init(&m);
    char *res;
    psl_err err = run_with(&m, code, strlen(code), o, &res);
    if (err)
        fail_msg("%s: %s", psl_err_name(err), errbuf);
    assert_string_equal(res, want);
    free(res);
    tmap_deinit(&m);
}

static void expect_ok(const char *code, const char *want)
{
    expect_ok_o(code, NULL, want);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* Expects err and an error message containing every given fragment (NULL-terminated list). */
static void expect_fail_o(const char *code, const struct opts *o, psl_err want, ...)
{
    struct tmap m;
    tmap_init(&m);
    char *res;
    psl_err err = run_with(&m, code, strlen(code), o, &res);
    if (err != want)
        fail_msg("want %s, got %s: %s (result %s)", psl_err_name(want), psl_err_name(err), errbuf,
                 res ? res : "-");
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        assert_contains(errbuf, s);
    va_end(ap);
    tmap_deinit(&m);
}

#define expect_fail(code, want, ...) expect_fail_o(code, NULL, want, __VA_ARGS__, (char *)NULL)

/* ---- the psl module ---- */

static void test_put_get_del(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    const char *code = "function main()\n"
                       "  assert(psl.get('k') == nil)\n"
                       "  psl.put('k', 'v1')\n"
                       "  local a = psl.get('k')\n"
                       "  psl.put('k', 'v2')\n"
                       "  local b = psl.get('k')\n"
                       "  psl.del('k')\n"
                       "  psl.del('never there')\n"
                       "  psl.put('bin', '\\0\\1\\255')\n"
                       "  psl.put('', 'empty key')\n"
                       "  psl.flush()\n"
                       "  return {a, b, psl.get('k') == nil, #psl.get('bin'), psl.get('')}\n"
                       "end\n";
    char *res;
    assert_int_equal(run_with(&m, code, strlen(code), NULL, &res), PSL_OK);
    assert_string_equal(res, "[\"v1\",\"v2\",true,3,\"empty key\"]");
    free(res);
    assert_null(tmap_get_str(&m, "k", 1));
    char *bin = tmap_get_str(&m, "bin", 3);
    assert_non_null(bin);
    assert_memory_equal(bin, "\0\1\377", 3);
    free(bin);
    assert_int_equal(m.flushes, 1);
    tmap_deinit(&m);
}

static void test_numbers_as_values(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    const char *code = "function main()\n"
                       "  psl.put('i', 42); psl.put('n', -7); psl.put('f', 1.5)\n"
                       "  psl.put('e', 2^63); psl.put('t', 1/3)\n"
                       "  return {type(psl.get('i')), psl.get('i') + 1}\n"
                       "end\n";
    char *res;
    assert_int_equal(run_with(&m, code, strlen(code), NULL, &res), PSL_OK);
    assert_string_equal(res, "[\"string\",43]");
    free(res);
    static const char *const want[][2] = {
        {"i", "42"},
        {"n", "-7"},
        {"f", "1.5"},
        {"e", "9.2233720368548e+18"},
        {"t", "0.33333333333333"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *v = tmap_get_str(&m, want[i][0], 1);
        assert_non_null(v);
        assert_string_equal(v, want[i][1]);
        free(v);
    }
    tmap_deinit(&m);
    expect_fail("function main()\n  psl.put('k', true)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: psl.put: value must be a string or a number (got boolean)");
    expect_fail("function main()\n  psl.get(1)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: psl.get: key must be a string (got number)");
}

static void test_worker_and_args(void **state)
{
    (void)state;
    struct opts o = {.worker = 2, .workers = 5};
    expect_ok_o("function main() return {psl.worker()} end", &o, "[2,5]");
    expect_ok("function main() return {psl.worker()} end", "[0,1]");
    struct opts a = {.args = "a\0b\"", .args_size = 4};
    expect_ok_o("function main(args) return args end", &a, "\"a\\u0000b\\\"\"");
    expect_ok("function main(args) return args == nil end", "true");
}

static void test_print_and_log(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    const char *code = "function main()\n"
                       "  print('a', 1, nil, true, 1.5)\n"
                       "  psl.log(setmetatable({}, {__tostring = function() return 'obj' end}))\n"
                       "  print(string.rep('x', 5000))\n"
                       "  print()\n"
                       "end\n";
    char *res;
    assert_int_equal(run_with(&m, code, strlen(code), NULL, &res), PSL_OK);
    free(res);
    assert_int_equal(m.log_count, 4);
    assert_string_equal(m.log[0], "a\t1\tnil\ttrue\t1.5");
    assert_string_equal(m.log[1], "obj");
    assert_int_equal(m.log_size[2], PSL_LOG_LINE_SIZE_MAX);
    assert_int_equal(m.log_size[3], 0);
    tmap_deinit(&m);
}

static void test_sleep_not_charged(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    struct opts o = {.insn_max = 20000};
    const char *code = "function main()\n"
                       "  for i = 1, 20 do psl.sleep(5) end\n"
                       "  return 'slept'\n"
                       "end\n";
    char *res;
    assert_int_equal(run_with(&m, code, strlen(code), &o, &res), PSL_OK);
    assert_string_equal(res, "\"slept\"");
    free(res);
    assert_int_equal(m.slept_ms, 100);
    tmap_deinit(&m);
    /* The same budget does not cover a busy loop of similar wall time. */
    expect_fail_o("function main()\n  local x = 0\n  for i = 1, 1e7 do x = x + i end\nend\n", &o,
                  PSL_ERR_LAMBDA_BUDGET, "t.lua:3: instruction budget of 20000 exhausted",
                  (char *)NULL);
    expect_fail("function main()\n  psl.sleep(-1)\nend\n", PSL_ERR_LAMBDA, "t.lua:2:", "sleep");
}

static void test_ops_errors(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    m.put_err = PSL_ERR_STORAGE_FULL;
    const char *code = "function main()\n"
                       "  local ok, e = pcall(psl.put, 'a', 'b')\n"
                       "  assert(not ok)\n"
                       "  psl.put('k', 'v')\n"
                       "end\n";
    char *res;
    assert_int_equal(run_with(&m, code, strlen(code), NULL, &res), PSL_ERR_LAMBDA);
    char want[256];
    snprintf(want, sizeof want, "t.lua:4: psl.put failed: %s", psl_strerror(PSL_ERR_STORAGE_FULL));
    assert_string_equal(errbuf, want);
    tmap_deinit(&m);
    expect_fail("function main()\n  psl.put('\\0psl/barrier/a/0/1', '1')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: psl.put: keys starting with", "reserved");
}

/* ---- the result ---- */

static void test_result_json(void **state)
{
    (void)state;
    expect_ok(
        "function main()\n"
        "  return {b = {1, 2, {x = 'y'}}, a = 'q\"\\\\\\n\\t\\1\\u{e9}\\255\\127', c = true,\n"
        "          d = 1.5, e = {}, f = 3.0, g = -0.0, h = 0.1, i = math.mininteger,\n"
        "          [1.5] = 'f', [10] = 10, j = 1/3, k = 1e300, l = 2^53, m = false}\n"
        "end\n",
        "{\"1.5\":\"f\",\"10\":10,\"a\":\"q\\\"\\\\\\n\\t\\u0001\xc3\xa9\xef\xbf\xbd\x7f\","
        "\"b\":[1,2,{\"x\":\"y\"}],\"c\":true,\"d\":1.5,\"e\":{},\"f\":3.0,\"g\":-0.0,"
        "\"h\":0.1,\"i\":-9223372036854775808,\"j\":0.3333333333333333,\"k\":1e+300,"
        "\"l\":9007199254740992.0,\"m\":false}");
    expect_ok("function main() return 'hi' end", "\"hi\"");
    expect_ok("function main() end", "null");
    expect_ok("function main() return nil, 2 end", "null");
    expect_ok("function main() return {[1] = 1, [3] = 3} end", "{\"1\":1,\"3\":3}");
    expect_ok("function main() return {[0] = 0, 1} end", "{\"0\":0,\"1\":1}");
    expect_ok("function main() return {'\\xed\\xa0\\x80', '\\xf4\\x90\\x80\\x80', '\\xc0\\xaf',\n"
              "  '\\u{10ffff}', '\\xe2\\x82'} end",
              "[\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
              "\xef\xbf\xbd\",\"\xef\xbf\xbd\xef\xbf\xbd\",\"\xf4\x8f\xbf\xbf\",\"\xef\xbf\xbd"
              "\xef\xbf\xbd\"]");
    expect_ok("function main() return {['\\255'] = 1} end", "{\"\xef\xbf\xbd\":1}");
    /* The result may be exactly PSL_RESULT_SIZE_MAX bytes, not one more. */
    expect_ok("function main() local s = string.rep('x', (1 << 20) - 2) return #s end", "1048574");
    struct tmap m;
    tmap_init(&m);
    const char *at_max = "function main() return string.rep('x', (1 << 20) - 2) end";
    char *res;
    assert_int_equal(run_with(&m, at_max, strlen(at_max), NULL, &res), PSL_OK);
    assert_int_equal(strlen(res), PSL_RESULT_SIZE_MAX);
    free(res);
    tmap_deinit(&m);
}

static void test_result_errors(void **state)
{
    (void)state;
    expect_fail("function main() return string.rep('x', (1 << 20) - 1) end", PSL_ERR_LAMBDA,
                "t.lua: result: JSON text exceeds 1048576 bytes (PSL_RESULT_SIZE_MAX)");
    expect_fail("function main() return {f = print} end", PSL_ERR_LAMBDA,
                "t.lua: result: cannot encode a function value");
    expect_fail("function main() local t = {} t.t = {t} return t end", PSL_ERR_LAMBDA,
                "t.lua: result: a table contains itself (cycle)");
    expect_fail("function main() local t = {} for i = 1, 100 do t = {t} end return t end",
                PSL_ERR_LAMBDA, "t.lua: result: tables nested deeper than 64");
    expect_fail("function main() return {0/0} end", PSL_ERR_LAMBDA, "cannot encode nan");
    expect_fail("function main() return -math.huge end", PSL_ERR_LAMBDA, "cannot encode -inf");
    expect_fail("function main() return {[true] = 1} end", PSL_ERR_LAMBDA,
                "t.lua: result: a boolean cannot be a JSON object key");
    expect_fail("function main() return {[1] = 'a', ['1'] = 'b'} end", PSL_ERR_LAMBDA,
                "give the same JSON key \"1\"");
    expect_fail("function main() return {['\\254'] = 1, ['\\255'] = 2} end", PSL_ERR_LAMBDA,
                "give the same JSON key");
    /* Shared (not cyclic) subtables are fine. */
    expect_ok("function main() local s = {1} return {s, s} end", "[[1],[1]]");
}

/* ---- workers on threads: barriers and shared state ---- */

struct worker_run {
    struct tmap *m;
    const char *code;
    struct opts o;
    psl_err err;
    char *result;
    char msg[256];
};

static void *worker_main(void *arg)
{
    struct worker_run *w = arg;
    struct lambda_ops ops = ops_of(w->m);
    struct lambda_job job = {.code = w->code,
                             .code_size = strlen(w->code),
                             .chunkname = "w.lua",
                             .worker = w->o.worker,
                             .workers = w->o.workers,
                             .job_id = w->o.job_id,
                             .job_id_size = w->o.job_id_size};
    size_t size;
    w->err = lambda_run(&job, NULL, &ops, &w->result, &size, w->msg, sizeof w->msg);
    return NULL;
}

static void test_barrier_threads(void **state)
{
    (void)state;
    enum { N = 4 };
    struct tmap m;
    tmap_init(&m);
    static const uint8_t job_id[] = {0xab, 0xcd};
    /* Worker w arrives w*15 ms late; after each barrier every worker's earlier put is visible. */
    const char *code = "function main()\n"
                       "  local w, n = psl.worker()\n"
                       "  psl.sleep(w * 15)\n"
                       "  psl.put('a/' .. w, '1')\n"
                       "  psl.barrier('a')\n"
                       "  for i = 0, n - 1 do assert(psl.get('a/' .. i), 'missing a/' .. i) end\n"
                       "  psl.put('b/' .. w, '1')\n"
                       "  psl.barrier('a')\n"
                       "  for i = 0, n - 1 do assert(psl.get('b/' .. i), 'missing b/' .. i) end\n"
                       "  psl.barrier('other/name')\n"
                       "  return w\n"
                       "end\n";
    struct worker_run w[N];
    pthread_t t[N];
    for (uint32_t i = 0; i < N; i++) {
        w[i] = (struct worker_run){
            .m = &m,
            .code = code,
            .o = {.worker = i, .workers = N, .job_id = job_id, .job_id_size = sizeof job_id}};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (uint32_t i = 0; i < N; i++) {
        if (w[i].err)
            fail_msg("worker %u: %s: %s", i, psl_err_name(w[i].err), w[i].msg);
        char want[8];
        snprintf(want, sizeof want, "%u", i);
        assert_string_equal(w[i].result, want);
        free(w[i].result);
    }
    /* Round 0 keys were deleted once round 1 passed; the last rounds' keys remain. */
    for (uint32_t i = 0; i < N; i++) {
        char k[64];
        int n = snprintf(k + 1, sizeof k - 1, "psl/barrier/abcd/a/0/%u", i);
        k[0] = '\0';
        assert_null(tmap_get_str(&m, k, (size_t)n + 1));
        n = snprintf(k + 1, sizeof k - 1, "psl/barrier/abcd/a/1/%u", i);
        char *v = tmap_get_str(&m, k, (size_t)n + 1);
        assert_non_null(v);
        free(v);
        n = snprintf(k + 1, sizeof k - 1, "psl/barrier/abcd/other/name/0/%u", i);
        v = tmap_get_str(&m, k, (size_t)n + 1);
        assert_non_null(v);
        free(v);
    }
    tmap_deinit(&m);
    /* A single worker passes at once and writes nothing. */
    tmap_init(&m);
    const char *one = "function main() psl.barrier('x') psl.barrier('x') return 1 end";
    char *res;
    assert_int_equal(run_with(&m, one, strlen(one), NULL, &res), PSL_OK);
    free(res);
    assert_int_equal(m.n, 0);
    tmap_deinit(&m);
    expect_fail("function main()\n  psl.barrier('')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2:", "PSL_BARRIER_NAME_SIZE_MAX");
}

static void test_polling_get_sees_other_thread(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    struct worker_run w = {.m = &m,
                           .code = "function main()\n"
                                   "  local polls = 0\n"
                                   "  while psl.get('flag') == nil do\n"
                                   "    polls = polls + 1\n"
                                   "    psl.sleep(1)\n"
                                   "  end\n"
                                   "  return {psl.get('flag'), polls > 0}\n"
                                   "end\n",
                           .o = {.workers = 1}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker_main, &w), 0);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
    nanosleep(&ts, NULL);
    tmap_set(&m, "flag", 4, "go", 2);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (w.err)
        fail_msg("%s: %s", psl_err_name(w.err), w.msg);
    assert_string_equal(w.result, "[\"go\",true]");
    free(w.result);
    tmap_deinit(&m);
}

/* ---- escapes, tried and refused ---- */

static void test_no_io_os_require(void **state)
{
    (void)state;
    expect_fail("function main()\n  return io.open('/etc/passwd')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to index a nil value (global 'io')");
    expect_fail("function main()\n  os.execute('id')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to index a nil value (global 'os')");
    expect_fail("function main()\n  require('io')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to call a nil value (global 'require')");
    expect_fail("function main()\n  dofile('/etc/passwd')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to call a nil value (global 'dofile')");
    expect_fail("function main()\n  loadfile('/etc/passwd')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to call a nil value (global 'loadfile')");
    expect_fail("function main()\n  debug.sethook()\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to index a nil value (global 'debug')");
    expect_fail("function main()\n  return package.loaded\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to index a nil value (global 'package')");
    expect_fail("function main()\n  coroutine.wrap(main)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to index a nil value (global 'coroutine')");
    expect_fail("function main()\n  return string.dump(main)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to call a nil value (field 'dump')");
    expect_fail("function main()\n  collectgarbage('stop')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: collectgarbage: option 'stop' is not available");
    expect_fail("function main()\n  collectgarbage('setpause', 0)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: collectgarbage: option 'setpause' is not available");
    expect_ok("function main() collectgarbage() collectgarbage('step')\n"
              "  return math.type(collectgarbage('count')) end",
              "\"float\"");
    /* What remains of the globals: nothing that reaches outside the state. */
    expect_ok("function main()\n"
              "  local names = {}\n"
              "  for k in pairs(_G) do names[#names + 1] = k end\n"
              "  table.sort(names)\n"
              "  return table.concat(names, ' ')\n"
              "end\n",
              "\"_G _VERSION assert collectgarbage error getmetatable ipairs load main math next "
              "pairs pcall print psl rawequal rawget rawlen rawset select setmetatable string "
              "table tonumber tostring type utf8 xpcall\"");
}

struct chunk_buf {
    char *data;
    size_t size;
};

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud)
{
    (void)L;
    struct chunk_buf *b = ud;
    b->data = realloc(b->data, b->size + size);
    assert_non_null(b->data);
    memcpy(b->data + b->size, p, size);
    b->size += size;
    return 0;
}

static void test_binary_chunks_refused(void **state)
{
    (void)state;
    /* Make a binary chunk in a separate, ordinary Lua state. */
    struct chunk_buf b = {NULL, 0};
    lua_State *Ls = luaL_newstate();
    assert_non_null(Ls);
    assert_int_equal(luaL_loadstring(Ls, "function main() return 'escaped' end"), LUA_OK);
    assert_int_equal(lua_dump(Ls, dump_writer, &b, 0), 0);
    lua_close(Ls);
    assert_true(b.size > 4 && b.data[0] == '\x1b');

    struct tmap m;
    tmap_init(&m);
    char *res;
    assert_int_equal(run_with(&m, b.data, b.size, NULL, &res), PSL_ERR_LAMBDA);
    assert_string_equal(errbuf, "t.lua: attempt to load a binary chunk (mode is 't')");
    tmap_deinit(&m);

    /* The same bytes as data, loaded from inside the script: as a string with mode "b", with the
     * default mode, and through a reader function. */
    struct opts o = {.args = b.data, .args_size = b.size};
    expect_fail_o("function main(chunk)\n"
                  "  local f, e = load(chunk, 'x', 'b')\n"
                  "  if f then return f() end\n"
                  "  error(e)\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA, "t.lua:4: attempt to load a binary chunk (mode is 't')",
                  (char *)NULL);
    expect_fail_o("function main(chunk)\n"
                  "  local f = assert(load(chunk))\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA, "t.lua:2: attempt to load a binary chunk", (char *)NULL);
    expect_fail_o("function main(chunk)\n"
                  "  local f = assert(load(function() local c = chunk; chunk = nil; return c end,\n"
                  "                        'r', 'bt'))\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA, "t.lua:2: attempt to load a binary chunk", (char *)NULL);
    free(b.data);
    /* Text chunks load, in the sandbox's globals or a given env. */
    expect_ok("function main()\n"
              "  return {load('return 1 + 1')(), load('return io')() == nil,\n"
              "          load('return x', 'c', 't', {x = 5})()}\n"
              "end\n",
              "[2,true,5]");
}

static void test_memory_cap(void **state)
{
    (void)state;
    expect_fail("function main()\n  return #string.rep('x', 1 << 30)\nend\n", PSL_ERR_LAMBDA_MEMORY,
                "t.lua:2: memory cap of 268435456 bytes exceeded");
    struct opts o = {.mem_max = 8u << 20};
    expect_fail_o("function main()\n  local t = {}\n  for i = 1, 1e8 do t[i] = i end\nend\n", &o,
                  PSL_ERR_LAMBDA_MEMORY, "t.lua:3: memory cap of 8388608 bytes exceeded",
                  (char *)NULL);
    expect_fail_o("function main()\n  local s = 'x'\n  while true do s = s .. s end\nend\n", &o,
                  PSL_ERR_LAMBDA_MEMORY, "memory cap of 8388608 bytes exceeded", (char *)NULL);
    /* A memory error the script catches is not sticky: the script lives within its cap. */
    expect_ok("function main() return pcall(string.rep, 'x', 1 << 30) end", "false");
    /* A cap too small for the state itself. */
    struct opts tiny = {.mem_max = 1024};
    expect_fail_o("function main() end", &tiny, PSL_ERR_LAMBDA_MEMORY, "t.lua: memory cap of 1024",
                  (char *)NULL);
}

static void test_instruction_budget(void **state)
{
    (void)state;
    struct opts o = {.insn_max = 100000};
    expect_fail_o("function main()\n  while true do end\nend\n", &o, PSL_ERR_LAMBDA_BUDGET,
                  "t.lua:2: instruction budget of 100000 exhausted", (char *)NULL);
    /* Catching the budget error does not help: it is raised again at every instruction. */
    expect_fail_o("function main()\n"
                  "  while true do\n"
                  "    pcall(function() while true do end end)\n"
                  "  end\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA_BUDGET, "instruction budget of 100000 exhausted",
                  (char *)NULL);
    expect_fail_o("function main()\n"
                  "  while true do\n"
                  "    xpcall(function() while true do end end, function() while true do end end)\n"
                  "  end\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA_BUDGET, "instruction budget of 100000 exhausted",
                  (char *)NULL);
    /* xpcall handlers still work for ordinary errors. */
    expect_ok_o("function main()\n"
                "  return {xpcall(error, function(e) return 'handled ' .. e end, 'x', 0)}\n"
                "end\n",
                &o, "[false,\"handled x\"]");
    /* Script code in a __close handler runs under the hook. */
    expect_fail_o(
        "function main()\n"
        "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
        "end\n",
        &o, PSL_ERR_LAMBDA_BUDGET, "t.lua:2: instruction budget", (char *)NULL);
    /* Top-level code is charged too. */
    expect_fail_o("while true do end\n", &o, PSL_ERR_LAMBDA_BUDGET, "t.lua:1: instruction budget",
                  (char *)NULL);
    /* Finalizers would run with hooks off: refused. */
    expect_fail("function main()\n"
                "  setmetatable({}, {__gc = function() while true do end end})\n"
                "end\n",
                PSL_ERR_LAMBDA, "t.lua:2: setmetatable: __gc metamethods are not available");
    /* Library loops that run no instructions are charged or cut short. */
    expect_fail_o("function main()\n  table.move({}, 1, math.maxinteger - 1, 2)\nend\n", &o,
                  PSL_ERR_LAMBDA_BUDGET, "t.lua:2: instruction budget", (char *)NULL);
    expect_fail_o(
        "function main()\n"
        "  local t = setmetatable({}, {__len = function() return math.maxinteger - 1 end})\n"
        "  table.insert(t, 1, 'x')\n"
        "end\n",
        &o, PSL_ERR_LAMBDA_BUDGET, "t.lua:3: instruction budget", (char *)NULL);
    expect_fail_o(
        "function main()\n"
        "  local t = setmetatable({}, {__len = function() return math.maxinteger - 1 end})\n"
        "  table.remove(t, 1)\n"
        "end\n",
        &o, PSL_ERR_LAMBDA_BUDGET, "t.lua:3: instruction budget", (char *)NULL);
    struct opts sort_budget = {.insn_max = 1500000};
    expect_fail_o("function main()\n"
                  "  local t = {}\n"
                  "  for i = 1, 100000 do t[i] = -i end\n"
                  "  table.sort(t)\n"
                  "end\n",
                  &sort_budget, PSL_ERR_LAMBDA_BUDGET, "t.lua:4: instruction budget", (char *)NULL);
    expect_ok_o("function main() return #string.rep('', math.maxinteger) end", &o, "0");
    expect_ok_o("function main() return #string.rep('', math.maxinteger, '') end", &o, "0");
}

static void test_table_library(void **state)
{
    (void)state;
    expect_ok("function main()\n"
              "  local t = {5, 3, 1}\n"
              "  table.insert(t, 4)\n"
              "  table.insert(t, 1, 0)\n"
              "  local r = table.remove(t, 2)\n"
              "  local last = table.remove(t)\n"
              "  table.insert(t, last)\n"
              "  table.sort(t)\n"
              "  local up = table.concat(t, ',')\n"
              "  table.sort(t, function(a, b) return a > b end)\n"
              "  local m = table.move(t, 1, 2, 1, {})\n"
              "  table.move(t, 1, 3, 2)\n"
              "  return {up, table.concat(t, ','), r, table.concat(m, '-'), table.unpack({7, 8})}\n"
              "end\n",
              "[\"0,1,3,4\",\"4,4,3,1\",5,\"4-3\",7,8]");
    expect_fail(
        "function main()\n  table.sort({3, nil, 1}, function(a, b) return a < b end)\nend\n",
        PSL_ERR_LAMBDA, "t.lua:2:");
    expect_fail("function main()\n  table.sort({1, 'x', 3})\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: attempt to compare");
    expect_fail("function main()\n  load(5 > 4)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: bad argument #1 to 'load' (string or function expected, got boolean)");
    expect_fail("function main()\n  string.rep('x', 1 << 40)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: resulting string too large");
    expect_fail("function main()\n  xpcall(print)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: bad argument #2 to 'xpcall' (function expected, got no value)");
    expect_fail("function main()\n  table.concat({1, {}, 3})\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: invalid value (at index 2) in table for 'concat'");
    expect_fail("function main()\n  table.insert({}, 5, 1)\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: bad argument #2 to 'insert' (position out of bounds)");
}

static void test_recursion(void **state)
{
    (void)state;
    expect_fail("local function f(n) return 1 + f(n + 1) end\n"
                "function main() return f(1) end\n",
                PSL_ERR_LAMBDA, "t.lua:1: stack overflow");
    /* Recursion through metamethods nests C calls: Lua stops it at LUAI_MAXCCALLS. */
    expect_fail("function main()\n"
                "  local t = setmetatable({}, {__index = function(t, k) return t[k] end})\n"
                "  return t.x\n"
                "end\n",
                PSL_ERR_LAMBDA, "stack overflow");
    expect_fail("function main()\n"
                "  local function f() return tostring(setmetatable({}, {__tostring = f})) end\n"
                "  return f()\n"
                "end\n",
                PSL_ERR_LAMBDA, "stack overflow");
}

static void test_limits_named(void **state)
{
    (void)state;
    expect_fail("function main()\n  psl.put(string.rep('k', 1025), 'v')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: psl.put: key of 1025 bytes exceeds the limit of 1024 bytes "
                "(PSL_KEY_SIZE_MAX)");
    expect_fail("function main()\n  psl.get(string.rep('k', 1025))\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: psl.get: key of 1025 bytes", "PSL_KEY_SIZE_MAX");
    expect_fail("function main()\n  psl.put('k', string.rep('v', (1 << 20) + 1))\nend\n",
                PSL_ERR_LAMBDA,
                "t.lua:2: psl.put: value of 1048577 bytes exceeds the limit of 1048576 bytes "
                "(PSL_VALUE_SIZE_MAX)");
    expect_ok("function main() psl.put(string.rep('k', 1024), string.rep('v', 1 << 20)) end",
              "null");

    struct tmap m;
    tmap_init(&m);
    size_t big = PSL_SCRIPT_SIZE_MAX + 1u;
    char *code = malloc(big);
    assert_non_null(code);
    memset(code, ' ', big);
    char *res;
    assert_int_equal(run_with(&m, code, big, NULL, &res), PSL_ERR_TOO_LARGE);
    assert_contains(errbuf, "t.lua: script of 1048577 bytes exceeds the limit of 1048576 bytes "
                            "(PSL_SCRIPT_SIZE_MAX)");
    /* Exactly at the limit is a script (without main). */
    assert_int_equal(run_with(&m, code, big - 1, NULL, &res), PSL_ERR_LAMBDA);
    assert_contains(errbuf, "no function main");
    free(code);
    size_t big_args = PSL_ARGS_SIZE_MAX + 1u;
    char *args = calloc(1, big_args);
    struct opts o = {.args = args, .args_size = big_args};
    const char *main_fn = "function main() end";
    assert_int_equal(run_with(&m, main_fn, strlen(main_fn), &o, &res), PSL_ERR_TOO_LARGE);
    assert_contains(errbuf, "PSL_ARGS_SIZE_MAX");
    free(args);
    tmap_deinit(&m);
}

static void test_error_objects(void **state)
{
    (void)state;
    struct opts o = {.insn_max = 10000000};
    /* A looping __tostring on the error object is never called. */
    expect_fail_o("function main()\n"
                  "  error(setmetatable({}, {__tostring = function() while true do end end}))\n"
                  "end\n",
                  &o, PSL_ERR_LAMBDA, "t.lua:2: (error object is a table value)", (char *)NULL);
    expect_fail("function main()\n  error(42)\nend\n", PSL_ERR_LAMBDA, "t.lua:2: 42");
    expect_fail("function main()\n  error()\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: (error object is a nil value)");
    expect_fail("function main()\n  error('boom', 0)\nend\n", PSL_ERR_LAMBDA, "t.lua: boom");
    expect_fail("function main()\n  error('multi\\nline')\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: multi line");
    expect_fail("function main()\n  load('error(\"inner\")')()\nend\n", PSL_ERR_LAMBDA,
                "[string \"error(\"inner\")\"]:1: inner");
    expect_fail("x = 1\n", PSL_ERR_LAMBDA, "t.lua: no function main");
    expect_fail("main = 5\n", PSL_ERR_LAMBDA, "t.lua: no function main");
    expect_fail("function main()\n  return 1 +\nend\n", PSL_ERR_LAMBDA, "t.lua:3:");
}

static void test_string_metatable(void **state)
{
    (void)state;
    expect_fail("function main()\n"
                "  getmetatable('').__index = function() return 'pwned' end\n"
                "end\n",
                PSL_ERR_LAMBDA, "t.lua:2: attempt to index a boolean value");
    expect_fail("function main()\n  setmetatable('', {})\nend\n", PSL_ERR_LAMBDA,
                "t.lua:2: bad argument #1 to 'setmetatable' (table expected, got string)");
    /* A script may change its own string table; the next run starts fresh. */
    expect_ok("string.upper = function() return 'pwned' end\n"
              "function main() return ('a'):upper() end\n",
              "\"pwned\"");
    expect_ok("function main() return ('a'):upper() end", "\"A\"");
}

static void test_run_after_failures(void **state)
{
    (void)state;
    struct opts o = {.insn_max = 100000};
    for (int i = 0; i < 3; i++) {
        expect_fail("function main() return #string.rep('x', 1 << 30) end", PSL_ERR_LAMBDA_MEMORY,
                    "memory cap");
        expect_fail_o("function main() while true do end end", &o, PSL_ERR_LAMBDA_BUDGET, "budget",
                      (char *)NULL);
        expect_fail("function main() error('x') end", PSL_ERR_LAMBDA, "t.lua:1: x");
        expect_ok_o("function main() return {ok = true} end", &o, "{\"ok\":true}");
    }
}

static void test_invalid_args(void **state)
{
    (void)state;
    struct tmap m;
    tmap_init(&m);
    struct lambda_ops ops = ops_of(&m);
    struct lambda_job job = {.code = "function main() end", .code_size = 19, .workers = 1};
    char *res = NULL;
    size_t size = 0;
    char e[128];
    assert_int_equal(lambda_run(&job, NULL, &ops, &res, &size, e, sizeof e), PSL_OK);
    assert_string_equal(res, "null");
    free(res);
    res = NULL;
    struct lambda_job bad = job;
    bad.code = NULL;
    assert_int_equal(lambda_run(&bad, NULL, &ops, &res, &size, e, sizeof e), PSL_ERR_INVALID_ARG);
    bad = job;
    bad.worker = 1;
    assert_int_equal(lambda_run(&bad, NULL, &ops, &res, &size, e, sizeof e), PSL_ERR_INVALID_ARG);
    assert_contains(e, "worker 1 of 1");
    bad = job;
    bad.workers = 0;
    assert_int_equal(lambda_run(&bad, NULL, &ops, &res, &size, e, sizeof e), PSL_ERR_INVALID_ARG);
    bad = job;
    bad.args_size = 3;
    assert_int_equal(lambda_run(&bad, NULL, &ops, &res, &size, e, sizeof e), PSL_ERR_INVALID_ARG);
    bad = job;
    bad.job_id = (const uint8_t *)"0123456789abcdef0123456789abcdef0";
    bad.job_id_size = LAMBDA_JOB_ID_SIZE_MAX + 1;
    assert_int_equal(lambda_run(&bad, NULL, &ops, &res, &size, e, sizeof e), PSL_ERR_INVALID_ARG);
    struct lambda_ops no_log = ops;
    no_log.log = NULL;
    assert_int_equal(lambda_run(&job, NULL, &no_log, &res, &size, e, sizeof e),
                     PSL_ERR_INVALID_ARG);
    assert_int_equal(lambda_run(&job, NULL, &ops, &res, &size, NULL, 5), PSL_ERR_INVALID_ARG);
    assert_null(res);
    /* A small errcap truncates and stays NUL-terminated. */
    struct lambda_job fails = {.code = "error('a long message')", .code_size = 23, .workers = 1};
    char small[8];
    assert_int_equal(lambda_run(&fails, NULL, &ops, &res, &size, small, sizeof small),
                     PSL_ERR_LAMBDA);
    assert_string_equal(small, "lambda:");
    assert_int_equal(lambda_run(&fails, NULL, &ops, &res, &size, NULL, 0), PSL_ERR_LAMBDA);
    tmap_deinit(&m);
}

static int group_setup(void **state)
{
    (void)state;
    tu_init();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_numbers_as_values),
        cmocka_unit_test(test_worker_and_args),
        cmocka_unit_test(test_print_and_log),
        cmocka_unit_test(test_sleep_not_charged),
        cmocka_unit_test(test_ops_errors),
        cmocka_unit_test(test_result_json),
        cmocka_unit_test(test_result_errors),
        cmocka_unit_test(test_barrier_threads),
        cmocka_unit_test(test_polling_get_sees_other_thread),
        cmocka_unit_test(test_no_io_os_require),
        cmocka_unit_test(test_binary_chunks_refused),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_instruction_budget),
        cmocka_unit_test(test_table_library),
        cmocka_unit_test(test_recursion),
        cmocka_unit_test(test_limits_named),
        cmocka_unit_test(test_error_objects),
        cmocka_unit_test(test_string_metatable),
        cmocka_unit_test(test_run_after_failures),
        cmocka_unit_test(test_invalid_args),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
