/* fuzz_wal.c: libFuzzer target for the storage engine's write-ahead log replay (src/store): each
 * input is written as the `wal` file of an otherwise empty store directory, which store_open
 * replays into the scratch environment. A WAL is the server's own file, but a torn write, a
 * stale generation or a damaged disk can leave anything in it, and opening must cost bounded
 * work and never crash. Invariants checked: store_open succeeds or fails with a clean error;
 * after a successful open every head of the fixture capsule names a record that is readable,
 * parses and hashes to the head's hash; and a close (which checkpoints) and a second open report
 * exactly the same heads, so replay and checkpoint agree. Slow by fuzzing standards (LMDB
 * environments and fsyncs per input): point TMPDIR at a tmpfs for campaigns. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/assert.h"
#include "capsule/record.h"
#include "fuzz_fixture.h"
#include "store/store.h"

#define HEADS_MAX 64u

static char dir[4096];

static void dir_clear(void)
{
    DIR *d = opendir(dir);
    PSL_ASSERT(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        PSL_ASSERT(unlink(p) == 0);
    }
    closedir(d);
}

static void dir_remove(void)
{
    dir_clear();
    rmdir(dir);
}

struct heads {
    struct store_head h[HEADS_MAX];
    size_t n;
    bool over;
};

static bool on_head(void *ctx, const struct store_head *h)
{
    struct heads *hs = ctx;
    if (hs->n == HEADS_MAX) {
        hs->over = true;
        return false;
    }
    hs->h[hs->n++] = *h;
    return true;
}

struct got {
    const uint8_t *want;
    bool ok;
};

static bool on_record(void *ctx, const uint8_t *rec, size_t size)
{
    struct got *g = ctx;
    struct record_view v;
    g->ok = record_parse(&v, rec, size) == PSL_OK && memcmp(v.hash, g->want, HASH_SIZE) == 0;
    return false;
}

static struct store *open_store(void)
{
    struct store_config cfg = {.dir = dir, .map_size_bytes = 64u << 20};
    struct store *s = NULL;
    return store_open(&s, &cfg) == PSL_OK ? s : NULL;
}

static void heads_of(struct store *s, const uint8_t capsule[HASH_SIZE], struct heads *hs)
{
    memset(hs, 0, sizeof *hs);
    PSL_ASSERT(store_heads(s, capsule, on_head, hs) == PSL_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/psl-fuzz-wal.XXXXXX", tmp);
        PSL_ASSERT(mkdtemp(dir));
        atexit(dir_remove);
    }
    dir_clear();
    char path[4200];
    snprintf(path, sizeof path, "%s/wal", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    PSL_ASSERT(fd >= 0);
    PSL_ASSERT(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);

    struct store *s = open_store();
    if (!s)
        return 0; /* a clean refusal */
    static struct heads before, after;
    heads_of(s, fx->meta.name, &before);
    for (size_t i = 0; i < before.n; i++) {
        const struct store_head *h = &before.h[i];
        PSL_ASSERT(h->contiguous <= h->max_seq);
        if (h->contiguous == 0)
            continue;
        struct got g = {.want = h->hash};
        PSL_ASSERT(store_get(s, h->hash, on_record, &g) == PSL_OK && g.ok);
    }
    store_close(s);

    s = open_store();
    PSL_ASSERT(s); /* what opened once opens again after its own checkpoint */
    heads_of(s, fx->meta.name, &after);
    store_close(s);
    PSL_ASSERT(before.n == after.n && before.over == after.over);
    for (size_t i = 0; i < before.n; i++) {
        const struct store_head *a = &before.h[i], *b = &after.h[i];
        PSL_ASSERT(memcmp(a->writer, b->writer, HASH_SIZE) == 0);
        PSL_ASSERT(a->contiguous == b->contiguous && a->max_seq == b->max_seq);
        PSL_ASSERT(a->forked == b->forked);
        PSL_ASSERT(a->contiguous == 0 || memcmp(a->hash, b->hash, HASH_SIZE) == 0);
    }
    return 0;
}
