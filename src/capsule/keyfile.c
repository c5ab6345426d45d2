/* keyfile.c: reading and writing key files (format in keyfile.h). A key file is created with
 * O_EXCL and mode 0600 so an existing key is never overwritten, and a file that others can read
 * is refused on load. The secret passes through secret memory only. */
#include "capsule/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/rng.h"

#define KEYFILE_TEXT_MAX 512

static const char *kind_name(enum keyfile_kind kind)
{
    return kind == KEYFILE_SIGNING ? "ed25519-seed" : "capsule-key";
}

psl_err keyfile_write(const char *path, enum keyfile_kind kind, const uint8_t *secret,
                      const uint8_t *pk)
{
    char *text = secret_alloc(KEYFILE_TEXT_MAX);
    if (!text)
        return PSL_ERR_NOMEM;
    char hex_secret[65], hex_pk[65] = "";
    hex_encode(hex_secret, secret, 32);
    if (pk)
        hex_encode(hex_pk, pk, 32);
    int len = snprintf(text, KEYFILE_TEXT_MAX, "# psl key file: keep it secret\nformat=psl-key-v1\ntype=%s\nsecret=%s\n%s%s%s",
                       kind_name(kind), hex_secret, pk ? "public=" : "", hex_pk, pk ? "\n" : "");
    secret_wipe(hex_secret, sizeof hex_secret);
    psl_err err = PSL_ERR_IO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = errno == EEXIST ? PSL_ERR_EXISTS : PSL_ERR_IO;
        goto out_free;
    }
    if (len > 0 && write(fd, text, (size_t)len) == (ssize_t)len && fsync(fd) == 0)
        err = PSL_OK;
    if (close(fd) != 0)
        err = PSL_ERR_IO;
    if (err)
        unlink(path);
out_free:
    secret_free(text);
    return err;
}

psl_err keyfile_read(const char *path, enum keyfile_kind kind, uint8_t *out_secret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PSL_ERR_NOT_FOUND : PSL_ERR_IO;
    char *text = secret_alloc(KEYFILE_TEXT_MAX);
    psl_err err = PSL_ERR_NOMEM;
    if (!text)
        goto out_close;
    struct stat st;
    err = PSL_ERR_IO;
    if (fstat(fd, &st) != 0)
        goto out_free;
    if (st.st_mode & 077) {
        err = PSL_ERR_INVALID_ARG; /* readable by others: refuse, as ssh does */
        goto out_free;
    }
    ssize_t n = read(fd, text, KEYFILE_TEXT_MAX - 1);
    if (n < 0)
        goto out_free;
    text[n] = '\0';
    err = PSL_ERR_MALFORMED;
    char want_type[64];
    snprintf(want_type, sizeof want_type, "\ntype=%s\n", kind_name(kind));
    if (!strstr(text, "format=psl-key-v1\n") || !strstr(text, want_type))
        goto out_free;
    char *s = strstr(text, "\nsecret=");
    if (!s)
        goto out_free;
    s += 8;
    char *end = strchr(s, '\n');
    if (!end)
        goto out_free;
    *end = '\0';
    err = hex_decode(out_secret, 32, s);
out_free:
    if (text)
        secret_free(text);
out_close:
    close(fd);
    return err;
}

psl_err keyfile_signer(struct signer *out, const char *path, bool *created)
{
    uint8_t *seed = secret_alloc(SIGN_SEED_SIZE);
    if (!seed)
        return PSL_ERR_NOMEM;
    bool made = false;
    struct signer s;
    psl_err err = keyfile_read(path, KEYFILE_SIGNING, seed);
    if (err == PSL_ERR_NOT_FOUND) {
        rng_bytes(seed, SIGN_SEED_SIZE);
        if ((err = signer_init(&s, seed)))
            goto out_free_seed;
        err = keyfile_write(path, KEYFILE_SIGNING, seed, s.pk);
        signer_deinit(&s);
        made = err == PSL_OK;
        if (err == PSL_ERR_EXISTS || err == PSL_OK)
            err = keyfile_read(path, KEYFILE_SIGNING, seed); /* the winner's key */
    }
    if (err)
        goto out_free_seed;
    if ((err = signer_init(&s, seed)))
        goto out_free_seed;
    *out = s;
    if (created)
        *created = made;
out_free_seed:
    secret_free(seed);
    return err;
}
