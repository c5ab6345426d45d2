/* http.h: a minimal, bounded HTTP/1.1 client for talking to psl-node (part of libpsl). One
 * request per connection ("Connection: close"), a body with Content-Length, and a response read
 * with limits on the header size and the body size; chunked responses are refused (psl-node
 * never sends them). Only http:// URLs: put TLS in front with a proxy when crossing networks. */
#ifndef PSL_CLIENT_HTTP_H
#define PSL_CLIENT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define HTTP_HEADER_SIZE_MAX 16384u
#define HTTP_HOST_SIZE_MAX 256u

struct http_url {
    char host[HTTP_HOST_SIZE_MAX];
    char port[8];
};

/* Parses "http://HOST:PORT" (an optional trailing '/'; PORT defaults to 80; HOST may be an
 * IPv6 literal in brackets). PSL_ERR_INVALID_ARG for anything else. */
psl_err http_url_parse(const char *url, struct http_url *out) PSL_MUST_USE;

struct http_response {
    unsigned status;
    char content_type[64];
    uint8_t *body; /* owned (malloc), NUL-terminated after size; NULL when size is 0 */
    size_t size;
};

/* Parses a complete response held in buf (what the server sent before closing): the status
 * line, headers (at most HTTP_HEADER_SIZE_MAX bytes), and a body of Content-Length bytes, or up
 * to the end without one. Errors: PSL_ERR_MALFORMED (not HTTP, chunked, a bad length),
 * PSL_ERR_TRUNCATED (shorter than its Content-Length), PSL_ERR_TOO_LARGE (body_max). */
psl_err http_response_parse(const uint8_t *buf, size_t size, size_t body_max,
                            struct http_response *out) PSL_MUST_USE;

/* Sends one request (body may be NULL with body_size 0; content_type NULL: none) and reads the
 * response, all within timeout_ms. Errors: PSL_ERR_IO (cannot connect or send: the log-free
 * message is the caller's), PSL_ERR_TIMEOUT, and http_response_parse's. */
psl_err http_request(const struct http_url *u, const char *method, const char *path,
                     const char *content_type, const void *body, size_t body_size,
                     int timeout_ms, size_t body_max, struct http_response *out) PSL_MUST_USE;
void http_response_free(struct http_response *r);

#endif
