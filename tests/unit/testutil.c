/* testutil.c: helpers shared by the unit tests (see testutil.h). */
#include "testutil.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/log.h"
#include "crypto/crypto.h"

void tu_init(void)
{
    assert_int_equal(psl_crypto_init(), PSL_OK);
    log_set_level(PSL_LOG_WARN);
}

void tu_seed(uint8_t out[32], unsigned n)
{
    char tag[32];
    snprintf(tag, sizeof tag, "psl-test-seed-%u", n);
    hash_sha256(out, tag, strlen(tag));
}

uint8_t *tu_read_hex(const char *path, size_t *size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    size_t cap = 1024, n = 0;
    char *text = malloc(cap);
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (n + 1 >= cap)
            text = realloc(text, cap *= 2);
        text[n++] = (char)c;
    }
    fclose(f);
    text[n] = '\0';
    assert_true(n % 2 == 0);
    uint8_t *out = malloc(n / 2 + 1);
    assert_int_equal(hex_decode(out, n / 2, text), PSL_OK);
    free(text);
    *size = n / 2;
    return out;
}

void tu_flip(uint8_t *buf, size_t bit)
{
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

void tu_dir_remove(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}
