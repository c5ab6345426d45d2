/* http.c: the minimal HTTP/1.1 client (see http.h). Everything from the server is untrusted:
 * the response is read into a buffer bounded by the header limit plus body_max, then parsed
 * with explicit length checks; nothing is read past what was received. */
#include "client/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"

psl_err http_url_parse(const char *url, struct http_url *out)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return PSL_ERR_INVALID_ARG;
    const char *h = url + sizeof scheme - 1, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend)
            return PSL_ERR_INVALID_ARG;
        h++;
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= sizeof out->host)
        return PSL_ERR_INVALID_ARG;
    struct http_url u;
    memcpy(u.host, h, hlen);
    u.host[hlen] = '\0';
    snprintf(u.port, sizeof u.port, "80");
    if (*p == ':') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 5)
            return PSL_ERR_INVALID_ARG;
        long port = strtol(p, NULL, 10);
        if (port < 1 || port > 65535)
            return PSL_ERR_INVALID_ARG;
        snprintf(u.port, sizeof u.port, "%ld", port);
        p += n;
    }
    if (*p == '/')
        p++;
    if (*p)
        return PSL_ERR_INVALID_ARG;
    *out = u;
    return PSL_OK;
}

/* Finds the end of the header block ("\r\n\r\n") within the first limit bytes. */
static const uint8_t *header_end(const uint8_t *buf, size_t size)
{
    for (size_t i = 0; i + 4 <= size; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return buf + i + 4;
    return NULL;
}

psl_err http_response_parse(const uint8_t *buf, size_t size, size_t body_max,
                            struct http_response *out)
{
    size_t hsize_max = size < HTTP_HEADER_SIZE_MAX ? size : HTTP_HEADER_SIZE_MAX;
    const uint8_t *body = header_end(buf, hsize_max);
    if (!body)
        return size >= HTTP_HEADER_SIZE_MAX ? PSL_ERR_TOO_LARGE
               : size < 12                  ? PSL_ERR_TRUNCATED
                                            : PSL_ERR_MALFORMED;
    size_t hsize = (size_t)(body - buf);
    char head[HTTP_HEADER_SIZE_MAX + 1];
    memcpy(head, buf, hsize);
    head[hsize] = '\0';
    /* Status line: HTTP/1.x NNN reason */
    if (strncmp(head, "HTTP/1.", 7) != 0 || (head[7] != '0' && head[7] != '1') || head[8] != ' ')
        return PSL_ERR_MALFORMED;
    unsigned status = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return PSL_ERR_MALFORMED;
        status = status * 10 + (unsigned)(head[i] - '0');
    }
    if (status < 100 || (head[12] != ' ' && head[12] != '\r'))
        return PSL_ERR_MALFORMED;
    struct http_response r = {.status = status};
    bool have_length = false;
    size_t length = 0;
    char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        char *end = strstr(line, "\r\n");
        if (!end)
            return PSL_ERR_MALFORMED;
        *end = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            return PSL_ERR_MALFORMED;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (!strcasecmp(line, "Content-Length")) {
            size_t n = strspn(v, "0123456789");
            if (n == 0 || n > 15 || v[n] != '\0' || have_length)
                return PSL_ERR_MALFORMED;
            length = (size_t)strtoull(v, NULL, 10);
            have_length = true;
        } else if (!strcasecmp(line, "Transfer-Encoding")) {
            return PSL_ERR_MALFORMED;
        } else if (!strcasecmp(line, "Content-Type")) {
            snprintf(r.content_type, sizeof r.content_type, "%s", v);
        }
        *end = '\r';
        line = end;
    }
    size_t avail = size - hsize;
    if (!have_length)
        length = avail;
    if (length > body_max)
        return PSL_ERR_TOO_LARGE;
    if (avail < length)
        return PSL_ERR_TRUNCATED;
    if (length) {
        r.body = malloc(length + 1);
        if (!r.body)
            return PSL_ERR_NOMEM;
        memcpy(r.body, body, length);
        r.body[length] = '\0';
        r.size = length;
    }
    *out = r;
    return PSL_OK;
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = clock_mono_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

/* Waits until fd is ready for events; PSL_ERR_TIMEOUT at the deadline. */
static psl_err wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int ms = remaining_ms(deadline);
        if (ms == 0)
            return PSL_ERR_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return PSL_OK;
        if (n < 0 && errno != EINTR)
            return PSL_ERR_IO;
    }
}

static psl_err connect_to(const struct http_url *u, uint64_t deadline, int *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
        return PSL_ERR_IO;
    psl_err err = PSL_ERR_IO;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && (err = wait_fd(fd, POLLOUT, deadline)) == PSL_OK)) {
            int soerr = 0;
            socklen_t len = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
                *out = fd;
                freeaddrinfo(res);
                return PSL_OK;
            }
            err = PSL_ERR_IO;
        }
        close(fd);
        if (err == PSL_ERR_TIMEOUT)
            break;
    }
    freeaddrinfo(res);
    return err;
}

static psl_err send_all(int fd, const void *data, size_t size, uint64_t deadline)
{
    const uint8_t *p = data;
    while (size) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            size -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return PSL_ERR_IO;
        psl_err err = wait_fd(fd, POLLOUT, deadline);
        if (err)
            return err;
    }
    return PSL_OK;
}

psl_err http_request(const struct http_url *u, const char *method, const char *path,
                     const char *content_type, const void *body, size_t body_size,
                     int timeout_ms, size_t body_max, struct http_response *out)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    int fd;
    psl_err err = connect_to(u, deadline, &fd);
    if (err)
        return err;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: psl\r\nAccept: application/json\r\n"
                     "Connection: close\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, u->host, u->port, content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "", body_size);
    if (n < 0 || (size_t)n >= sizeof head) {
        close(fd);
        return PSL_ERR_TOO_LARGE;
    }
    size_t cap = HTTP_HEADER_SIZE_MAX + body_max, size = 0, alloc = 65536;
    uint8_t *buf = NULL;
    if ((err = send_all(fd, head, (size_t)n, deadline)) ||
        (body_size && (err = send_all(fd, body, body_size, deadline))))
        goto out;
    buf = malloc(alloc);
    if (!buf) {
        err = PSL_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (size == alloc) {
            if (alloc >= cap) {
                err = PSL_ERR_TOO_LARGE;
                goto out;
            }
            size_t grow = alloc * 2 < cap ? alloc * 2 : cap;
            uint8_t *nb = realloc(buf, grow);
            if (!nb) {
                err = PSL_ERR_NOMEM;
                goto out;
            }
            buf = nb;
            alloc = grow;
        }
        ssize_t r = recv(fd, buf + size, alloc - size, 0);
        if (r > 0) {
            size += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        if (errno != EAGAIN && errno != EINTR) {
            err = PSL_ERR_IO;
            goto out;
        }
        if ((err = wait_fd(fd, POLLIN, deadline)))
            goto out;
    }
    err = http_response_parse(buf, size, body_max, out);
out:
    free(buf);
    close(fd);
    return err;
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
    r->size = 0;
}
