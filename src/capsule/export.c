/* export.c: capsule export files (format in export.h). The parser walks the framing twice: once
 * to validate every length against its limit and count the records, then to fill an array sized
 * by that count, so no allocation depends on an unchecked number from the file. */
#include "capsule/export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bytes.h"

static const uint8_t export_magic[4] = {'P', 'S', 'L', 'X'};
#define EXPORT_HEADER_SIZE 12u

static void export_put(struct export_writer *x, const void *p, size_t n)
{
    if (x->err == PSL_OK && n && fwrite(p, 1, n, x->f) != n)
        x->err = PSL_ERR_IO;
}

void export_begin(struct export_writer *x, FILE *f, const uint8_t *meta, size_t meta_size)
{
    x->f = f;
    x->count = 0;
    x->err = meta_size > META_SIZE_MAX ? PSL_ERR_TOO_LARGE : PSL_OK;
    uint8_t hdr[EXPORT_HEADER_SIZE] = {'P', 'S', 'L', 'X', EXPORT_VERSION, 0, 0, 0};
    put_le32(hdr + 8, (uint32_t)meta_size);
    export_put(x, hdr, sizeof hdr);
    export_put(x, meta, meta_size);
}

void export_add(struct export_writer *x, const uint8_t *rec, size_t size)
{
    if (x->err == PSL_OK && (size == 0 || size > PSL_RECORD_SIZE_MAX))
        x->err = PSL_ERR_TOO_LARGE;
    uint8_t len[4];
    put_le32(len, (uint32_t)size);
    export_put(x, len, sizeof len);
    export_put(x, rec, size);
    x->count++;
}

psl_err export_finish(struct export_writer *x)
{
    uint8_t end[12];
    put_le32(end, 0);
    put_le64(end + 4, x->count);
    export_put(x, end, sizeof end);
    if (x->err == PSL_OK && fflush(x->f) != 0)
        x->err = PSL_ERR_IO;
    return x->err;
}

/* Walks the record framing; fills recs when non-NULL. Returns the record count via *count. */
static psl_err export_walk(struct rd *r, struct chain_input *recs, size_t *count)
{
    size_t n = 0;
    for (;;) {
        uint32_t size = rd_u32(r);
        if (r->err)
            return r->err;
        if (size == 0)
            break;
        if (size > PSL_RECORD_SIZE_MAX)
            return PSL_ERR_TOO_LARGE;
        const uint8_t *p = rd_take(r, size);
        if (!p)
            return r->err;
        if (n == PSL_EXPORT_RECORDS_MAX)
            return PSL_ERR_TOO_LARGE;
        if (recs)
            recs[n] = (struct chain_input){.data = p, .size = size};
        n++;
    }
    uint64_t stated = rd_u64(r);
    psl_err err = rd_finish(r);
    if (err)
        return err;
    if (stated != n)
        return PSL_ERR_MALFORMED;
    *count = n;
    return PSL_OK;
}

psl_err export_parse(const uint8_t *buf, size_t size, struct export_view *out)
{
    struct rd r;
    rd_init(&r, buf, size);
    const uint8_t *hdr = rd_take(&r, EXPORT_HEADER_SIZE);
    if (!hdr)
        return PSL_ERR_TRUNCATED;
    if (memcmp(hdr, export_magic, 4) != 0)
        return PSL_ERR_BAD_MAGIC;
    if (hdr[4] != EXPORT_VERSION)
        return PSL_ERR_BAD_VERSION;
    if (hdr[5] || hdr[6] || hdr[7])
        return PSL_ERR_MALFORMED;
    uint32_t meta_size = get_le32(hdr + 8);
    if (meta_size > META_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    const uint8_t *meta = rd_take(&r, meta_size);
    if (!meta)
        return PSL_ERR_TRUNCATED;
    size_t body = r.pos;
    size_t count;
    psl_err err = export_walk(&r, NULL, &count);
    if (err)
        return err;
    struct chain_input *recs = calloc(count ? count : 1, sizeof *recs);
    if (!recs)
        return PSL_ERR_NOMEM;
    rd_init(&r, buf, size);
    r.pos = body;
    err = export_walk(&r, recs, &count);
    if (err) {
        free(recs);
        return err;
    }
    out->meta = meta;
    out->meta_size = meta_size;
    out->records = recs;
    out->record_count = count;
    return PSL_OK;
}

void export_view_free(struct export_view *v)
{
    free(v->records);
    v->records = NULL;
    v->record_count = 0;
}

psl_err file_read_all(const char *path, uint8_t **out, size_t *out_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PSL_ERR_NOT_FOUND : PSL_ERR_IO;
    psl_err err = PSL_ERR_IO;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto out_close;
    if ((unsigned long long)st.st_size > PSL_EXPORT_SIZE_MAX) {
        err = PSL_ERR_TOO_LARGE;
        goto out_close;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        err = PSL_ERR_NOMEM;
        goto out_close;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out_close;
        done += (size_t)n;
    }
    *out = buf;
    *out_size = size;
    buf = NULL;
    err = PSL_OK;
out_close:
    free(buf);
    close(fd);
    return err;
}
