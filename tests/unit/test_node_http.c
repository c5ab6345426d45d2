/* test_node_http.c: the client side's untrusted-input parsers: the HTTP response parser of the
 * minimal client (limits, truncation, chunked refused, bad status lines), URL parsing, and the
 * base64/hex decoders the node API uses (size bounds checked before allocation, garbage refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/b64.h"
#include "client/http.h"

static psl_err parse(const char *text, size_t body_max, struct http_response *r)
{
    return http_response_parse((const uint8_t *)text, strlen(text), body_max, r);
}

static void test_response_ok(void **state)
{
    (void)state;
    struct http_response r;
    assert_int_equal(parse("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                           "Content-Length: 7\r\n\r\n{\"a\":1}",
                           100, &r),
                     PSL_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.size, 7);
    assert_memory_equal(r.body, "{\"a\":1}", 7);
    http_response_free(&r);
    /* No Content-Length: the body runs to the end. */
    assert_int_equal(parse("HTTP/1.0 404 Not Found\r\n\r\nnope", 100, &r), PSL_OK);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.size, 4);
    http_response_free(&r);
}

static void test_response_bad(void **state)
{
    (void)state;
    struct http_response r;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 100, &r),
                     PSL_ERR_TRUNCATED);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 4, &r),
                     PSL_ERR_TOO_LARGE);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello", 100, &r),
                     PSL_ERR_MALFORMED);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 100, &r),
                     PSL_ERR_MALFORMED);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 100, &r),
                     PSL_ERR_MALFORMED);
    assert_int_equal(parse("SMTP/1.1 200 OK\r\n\r\n", 100, &r), PSL_ERR_MALFORMED);
    assert_int_equal(parse("HTTP/1.1 2x0 OK\r\n\r\n", 100, &r), PSL_ERR_MALFORMED);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 100, &r), PSL_ERR_MALFORMED);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\n", 100, &r), PSL_ERR_MALFORMED);
    /* Headers that never end are bounded. */
    size_t n = HTTP_HEADER_SIZE_MAX + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    big[n] = '\0';
    assert_int_equal(parse(big, 100, &r), PSL_ERR_TOO_LARGE);
    free(big);
}

static void test_url(void **state)
{
    (void)state;
    struct http_url u;
    assert_int_equal(http_url_parse("http://127.0.0.1:8080", &u), PSL_OK);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "8080");
    assert_int_equal(http_url_parse("http://node.example/", &u), PSL_OK);
    assert_string_equal(u.port, "80");
    assert_int_equal(http_url_parse("http://[::1]:9", &u), PSL_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(http_url_parse("https://x:1", &u), PSL_ERR_INVALID_ARG);
    assert_int_equal(http_url_parse("http://:80", &u), PSL_ERR_INVALID_ARG);
    assert_int_equal(http_url_parse("http://x:99999", &u), PSL_ERR_INVALID_ARG);
    assert_int_equal(http_url_parse("http://x:80/v1/jobs", &u), PSL_ERR_INVALID_ARG);
}

static void test_b64(void **state)
{
    (void)state;
    uint8_t *out;
    size_t size;
    char *enc = b64_encode_alloc((const uint8_t *)"hello", 5);
    assert_string_equal(enc, "aGVsbG8=");
    assert_int_equal(b64_decode_alloc(enc, strlen(enc), 5, &out, &size), PSL_OK);
    assert_int_equal(size, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    assert_int_equal(b64_decode_alloc(enc, strlen(enc), 4, &out, &size), PSL_ERR_TOO_LARGE);
    free(enc);
    assert_int_equal(b64_decode_alloc("aGVsbG8", 7, 100, &out, &size), PSL_ERR_MALFORMED);
    assert_int_equal(b64_decode_alloc("aGV$bG8=", 8, 100, &out, &size), PSL_ERR_MALFORMED);
    assert_int_equal(b64_decode_alloc("AAAAAAAAAAAA", 12, 3, &out, &size), PSL_ERR_TOO_LARGE);
    uint8_t h[2];
    assert_int_equal(hex_decode_exact(h, 2, "a0ff"), PSL_OK);
    assert_int_equal(h[1], 0xff);
    assert_int_equal(hex_decode_exact(h, 2, "a0f"), PSL_ERR_MALFORMED);
    assert_int_equal(hex_decode_exact(h, 2, "a0fz"), PSL_ERR_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_bad),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
