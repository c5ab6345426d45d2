/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over committed inputs, so that the normal
 * test run (and the sanitizer build) replays every corpus without libFuzzer (SQLite's fuzzcheck).
 * Usage: replay_<target> DIR|FILE...  Every regular file of a directory is one input (names that
 * start with '.' are skipped), in name order. A missing path, an unreadable or oversized file, or
 * a directory with no inputs fails the run: a corpus that is not there must not pass silently.
 * Each input is copied into a buffer of exactly its size, so ASan sees any read past its end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_fixture.h"

#define REPLAY_INPUT_SIZE_MAX (64u << 20)

/* Reads one regular file and runs it; returns 0, or -1 after printing why not. */
static int replay_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    uint8_t *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "replay: %s: not a regular file\n", path);
        goto out_close;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > REPLAY_INPUT_SIZE_MAX) {
        fprintf(stderr, "replay: %s: larger than %u bytes\n", path, REPLAY_INPUT_SIZE_MAX);
        goto out_close;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        goto out_close;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "replay: %s: short read\n", path);
            goto out_close;
        }
        done += (size_t)n;
    }
    (void)LLVMFuzzerTestOneInput(buf, size);
    rc = 0;
out_close:
    free(buf);
    close(fd);
    return rc;
}

static int skip_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Replays every regular file of dir; returns the number replayed, or -1. */
static long replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, skip_hidden, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (count >= 0 && (len < 0 || (size_t)len >= sizeof path)) {
            fprintf(stderr, "replay: %s/%s: path too long\n", dir, names[i]->d_name);
            count = -1;
        } else if (count >= 0 && stat(path, &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
            count = -1;
        } else if (count >= 0 && S_ISREG(st.st_mode)) {
            count = replay_file(path) == 0 ? count + 1 : -1;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        long count;
        if (S_ISDIR(st.st_mode))
            count = replay_dir(argv[i]);
        else
            count = replay_file(argv[i]) == 0 ? 1 : -1;
        if (count < 0)
            return 1;
        if (count == 0) {
            fprintf(stderr, "replay: %s: no inputs\n", argv[i]);
            return 1;
        }
        printf("replayed %ld inputs from %s\n", count, argv[i]);
    }
    return 0;
}
