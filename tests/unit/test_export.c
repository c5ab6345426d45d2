/* test_export.c: unit tests of capsule export files (src/capsule/export.c): the streaming writer
 * and the in-memory parser, every framing rule (magic, version, reserved bytes, limits, the end
 * mark and its count), truncation at every length, and file_read_all. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsule/export.h"
#include "capsule_fixture.h"

enum { OFF_VERSION = 4, OFF_RESERVED = 5, OFF_META_SIZE = 8, HEADER_SIZE = 12 };

/* Three records of W0 (CERT, DATA, HEAD). */
static void make_records(struct fx *f, struct fx_recs *r)
{
    memset(r, 0, sizeof *r);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cert(f, &f->w[FX_W0], &size, hash);
    fx_recs_add(r, rec, size, hash);
    rec = fx_seal_data(&f->w[FX_W0], 3, 1, &size, hash);
    fx_recs_add(r, rec, size, hash);
    rec = fx_seal_head(&f->w[FX_W0], FX_NOW, &size, hash);
    fx_recs_add(r, rec, size, hash);
}

/* Writes an export of meta and r into a malloc'd buffer. */
static uint8_t *make_export(const uint8_t *meta, size_t meta_size, const struct fx_recs *r,
                            size_t *size_out)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *mf = open_memstream(&buf, &size);
    assert_non_null(mf);
    struct export_writer x;
    export_begin(&x, mf, meta, meta_size);
    for (size_t i = 0; i < r->n; i++)
        export_add(&x, r->data[i], r->size[i]);
    assert_int_equal(export_finish(&x), PSL_OK);
    assert_true(x.count == r->n);
    assert_int_equal(fclose(mf), 0);
    *size_out = size;
    return (uint8_t *)buf;
}

static void want_parse(const uint8_t *buf, size_t size, psl_err want)
{
    struct export_view v;
    memset(&v, 0x5e, sizeof v);
    struct export_view before = v;
    psl_err got = export_parse(buf, size, &v);
    if (got != want)
        fail_msg("export_parse: got %s, want %s (size %zu)", psl_err_name(got), psl_err_name(want),
                 size);
    if (want == PSL_OK)
        export_view_free(&v);
    else
        assert_memory_equal(&v, &before, sizeof v);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n, size_t extra)
{
    uint8_t *q = malloc(n + extra ? n + extra : 1);
    assert_non_null(q);
    memcpy(q, p, n);
    if (extra)
        memset(q + n, 0, extra);
    return q;
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    struct fx_recs r;
    make_records(f, &r);
    size_t size;
    uint8_t *buf = make_export(f->meta_enc, f->meta_size, &r, &size);
    size_t want = HEADER_SIZE + f->meta_size + 12; /* header, metadata, end mark */
    for (size_t i = 0; i < r.n; i++)
        want += 4 + r.size[i];
    assert_int_equal(size, want);
    assert_memory_equal(buf, "PSLX", 4);
    assert_int_equal(buf[OFF_VERSION], EXPORT_VERSION);
    assert_int_equal(get_le32(buf + OFF_META_SIZE), f->meta_size);
    /* The end mark: size 0, then the record count. */
    assert_int_equal(get_le32(buf + size - 12), 0);
    assert_true(get_le64(buf + size - 8) == 3);

    struct export_view v;
    assert_int_equal(export_parse(buf, size, &v), PSL_OK);
    assert_int_equal(v.meta_size, f->meta_size);
    assert_ptr_equal(v.meta, buf + HEADER_SIZE);
    assert_memory_equal(v.meta, f->meta_enc, f->meta_size);
    assert_int_equal(v.record_count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(v.records[i].size, r.size[i]);
        assert_memory_equal(v.records[i].data, r.data[i], r.size[i]);
        assert_true(v.records[i].data > buf && v.records[i].data < buf + size);
    }
    /* What an auditor does next: the metadata and the records verify. */
    struct capsule_meta m;
    assert_int_equal(meta_decode(&m, v.meta, v.meta_size), PSL_OK);
    assert_memory_equal(m.name, f->meta.name, HASH_SIZE);
    struct chain_report rep;
    assert_int_equal(chain_verify(&m, v.records, v.record_count, FX_NOW, f->capsule_key, &rep),
                     PSL_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.valid_count, 3);
    assert_true(rep.writers[0].data_ops == 3);
    chain_report_free(&rep);
    export_view_free(&v);
    assert_null(v.records);
    assert_int_equal(v.record_count, 0);
    free(buf);
    fx_recs_free(&r);
}

static void test_empty_export(void **state)
{
    struct fx *f = *state;
    struct fx_recs none;
    memset(&none, 0, sizeof none);
    size_t size;
    uint8_t *buf = make_export(f->meta_enc, f->meta_size, &none, &size);
    assert_int_equal(size, HEADER_SIZE + f->meta_size + 12);
    struct export_view v;
    assert_int_equal(export_parse(buf, size, &v), PSL_OK);
    assert_int_equal(v.record_count, 0);
    export_view_free(&v);
    free(buf);
}

static void test_file_round_trip(void **state)
{
    struct fx *f = *state;
    struct fx_recs r;
    make_records(f, &r);
    char dir[] = "/tmp/psl-test-export-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/capsule.pslx", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    struct export_writer x;
    export_begin(&x, fp, f->meta_enc, f->meta_size);
    for (size_t i = 0; i < r.n; i++)
        export_add(&x, r.data[i], r.size[i]);
    assert_int_equal(export_finish(&x), PSL_OK);
    assert_int_equal(fclose(fp), 0);

    uint8_t *buf = NULL;
    size_t size = 0;
    assert_int_equal(file_read_all(path, &buf, &size), PSL_OK);
    size_t msize;
    uint8_t *mem = make_export(f->meta_enc, f->meta_size, &r, &msize);
    assert_int_equal(size, msize);
    assert_memory_equal(buf, mem, size);
    struct export_view v;
    assert_int_equal(export_parse(buf, size, &v), PSL_OK);
    assert_int_equal(v.record_count, 3);
    export_view_free(&v);
    free(mem);
    free(buf);

    /* A missing file, a directory, an empty file. */
    char missing[sizeof dir + 32];
    snprintf(missing, sizeof missing, "%s/nope.pslx", dir);
    buf = (uint8_t *)missing;
    size = 99;
    assert_int_equal(file_read_all(missing, &buf, &size), PSL_ERR_NOT_FOUND);
    assert_int_equal(file_read_all(dir, &buf, &size), PSL_ERR_IO);
    assert_ptr_equal(buf, (uint8_t *)missing);
    assert_int_equal(size, 99);
    char empty[sizeof dir + 32];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    int fd = open(empty, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(file_read_all(empty, &buf, &size), PSL_OK);
    assert_int_equal(size, 0);
    want_parse(buf, size, PSL_ERR_TRUNCATED);
    free(buf);

    assert_int_equal(unlink(empty), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    fx_recs_free(&r);
}

static void test_header_rejects(void **state)
{
    struct fx *f = *state;
    struct fx_recs r;
    make_records(f, &r);
    size_t size;
    uint8_t *good = make_export(f->meta_enc, f->meta_size, &r, &size);
    uint8_t *buf = dup_bytes(good, size, 0);

    for (size_t i = 0; i < 4; i++) {
        memcpy(buf, good, size);
        buf[i] ^= 0x01;
        want_parse(buf, size, PSL_ERR_BAD_MAGIC);
    }
    memcpy(buf, good, size);
    buf[OFF_VERSION] = 0;
    want_parse(buf, size, PSL_ERR_BAD_VERSION);
    buf[OFF_VERSION] = EXPORT_VERSION + 1;
    want_parse(buf, size, PSL_ERR_BAD_VERSION);
    for (size_t i = 0; i < 3; i++) {
        memcpy(buf, good, size);
        buf[OFF_RESERVED + i] = 1;
        want_parse(buf, size, PSL_ERR_MALFORMED);
    }
    memcpy(buf, good, size);
    put_le32(buf + OFF_META_SIZE, META_SIZE_MAX + 1);
    want_parse(buf, size, PSL_ERR_TOO_LARGE);
    put_le32(buf + OFF_META_SIZE, UINT32_MAX);
    want_parse(buf, size, PSL_ERR_TOO_LARGE);
    /* A meta_size within the limit but past the end of the bytes. */
    memcpy(buf, good, HEADER_SIZE + 10);
    put_le32(buf + OFF_META_SIZE, 200);
    want_parse(buf, HEADER_SIZE + 10, PSL_ERR_TRUNCATED);
    free(buf);
    free(good);
    fx_recs_free(&r);
}

static void test_framing_rejects(void **state)
{
    struct fx *f = *state;
    struct fx_recs r;
    make_records(f, &r);
    size_t size;
    uint8_t *good = make_export(f->meta_enc, f->meta_size, &r, &size);
    size_t first = HEADER_SIZE + f->meta_size; /* first record's size field */
    size_t second = first + 4 + r.size[0];     /* second record's size field */
    size_t end = size - 12;                    /* the end mark */
    uint8_t *buf = dup_bytes(good, size, 16);

    /* A size of 0 in the middle is the end mark: what follows is then trailing bytes... */
    memcpy(buf, good, size);
    put_le32(buf + second, 0);
    want_parse(buf, size, PSL_ERR_TRAILING);
    /* ... and an early end mark with the full count is a count mismatch. */
    memcpy(buf, good, second);
    put_le32(buf + second, 0);
    put_le64(buf + second + 4, 3);
    want_parse(buf, second + 12, PSL_ERR_MALFORMED);
    put_le64(buf + second + 4, 1); /* the true count of what precedes it is fine */
    want_parse(buf, second + 12, PSL_OK);

    /* A record over the size limit, and one past the end of the bytes. */
    memcpy(buf, good, size);
    put_le32(buf + first, PSL_RECORD_SIZE_MAX + 1);
    want_parse(buf, size, PSL_ERR_TOO_LARGE);
    put_le32(buf + first, UINT32_MAX);
    want_parse(buf, size, PSL_ERR_TOO_LARGE);
    put_le32(buf + first, PSL_RECORD_SIZE_MAX);
    want_parse(buf, size, PSL_ERR_TRUNCATED);

    /* The stated count disagrees. */
    memcpy(buf, good, size);
    put_le64(buf + end + 4, 4);
    want_parse(buf, size, PSL_ERR_MALFORMED);
    put_le64(buf + end + 4, 2);
    want_parse(buf, size, PSL_ERR_MALFORMED);
    put_le64(buf + end + 4, UINT64_MAX);
    want_parse(buf, size, PSL_ERR_MALFORMED);

    /* Trailing bytes after the end mark. */
    memcpy(buf, good, size);
    want_parse(buf, size + 1, PSL_ERR_TRAILING);
    want_parse(buf, size + 16, PSL_ERR_TRAILING);
    free(buf);

    /* Truncated at every length, including at every record boundary: the end mark is missing. */
    for (size_t n = 0; n < size; n++) {
        uint8_t *p = dup_bytes(good, n, 0);
        want_parse(p, n, PSL_ERR_TRUNCATED);
        free(p);
    }
    free(good);
    fx_recs_free(&r);
}

static void test_writer_errors(void **state)
{
    struct fx *f = *state;
    uint8_t rec[8] = {0};
    char *mbuf = NULL;
    size_t msize = 0;

    /* A record of size 0 would read as the end mark: the writer refuses it. */
    FILE *mf = open_memstream(&mbuf, &msize);
    assert_non_null(mf);
    struct export_writer x;
    export_begin(&x, mf, f->meta_enc, f->meta_size);
    export_add(&x, rec, 0);
    assert_int_equal(export_finish(&x), PSL_ERR_TOO_LARGE);
    fclose(mf);
    free(mbuf);

    /* Over the record limit (the error is sticky and nothing more is written or read). */
    mf = open_memstream(&mbuf, &msize);
    assert_non_null(mf);
    export_begin(&x, mf, f->meta_enc, f->meta_size);
    export_add(&x, rec, PSL_RECORD_SIZE_MAX + 1);
    export_add(&x, rec, sizeof rec);
    assert_int_equal(export_finish(&x), PSL_ERR_TOO_LARGE);
    fclose(mf);
    assert_int_equal(msize, HEADER_SIZE + f->meta_size);
    free(mbuf);

    /* Metadata over its limit. */
    mf = open_memstream(&mbuf, &msize);
    assert_non_null(mf);
    export_begin(&x, mf, f->meta_enc, META_SIZE_MAX + 1);
    assert_int_equal(export_finish(&x), PSL_ERR_TOO_LARGE);
    fclose(mf);
    assert_int_equal(msize, 0);
    free(mbuf);

    /* A full disk. */
    FILE *full = fopen("/dev/full", "wb");
    if (full) {
        export_begin(&x, full, f->meta_enc, f->meta_size);
        export_add(&x, rec, sizeof rec);
        assert_int_equal(export_finish(&x), PSL_ERR_IO);
        fclose(full);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip),     T(test_empty_export),    T(test_file_round_trip),
        T(test_header_rejects), T(test_framing_rejects), T(test_writer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
