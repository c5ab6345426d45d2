/* test_keyfile.c: unit tests of key files (src/capsule/keyfile.c): both kinds round trip, a key
 * file is created 0600 and never overwritten, a file others can read is refused, and any file
 * that is not exactly a key file of the wanted kind is refused without writing the output.
 * Each test works in its own mkdtemp directory under /tmp and removes it. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsule/keyfile.h"
#include "capsule_fixture.h"

struct kf {
    char dir[64];
    char path[128];
};

static int kf_setup(void **state)
{
    struct kf *k = calloc(1, sizeof *k);
    if (!k)
        return -1;
    tu_init();
    snprintf(k->dir, sizeof k->dir, "/tmp/psl-test-keyfile-XXXXXX");
    if (!mkdtemp(k->dir)) {
        free(k);
        return -1;
    }
    snprintf(k->path, sizeof k->path, "%s/test.key", k->dir);
    *state = k;
    return 0;
}

/* Removes every file in the directory, then the directory. */
static int kf_teardown(void **state)
{
    struct kf *k = *state;
    DIR *d = opendir(k->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
    int rc = rmdir(k->dir);
    free(k);
    return rc;
}

static void write_raw(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_true(write(fd, text, n) == (ssize_t)n);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0); /* independent of the umask */
}

/* The whole file as a NUL-terminated string (malloc'd). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 4096);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 4095, fp);
    assert_true(n < 4095);
    fclose(fp);
    return buf;
}

static void want_read(const char *path, enum keyfile_kind kind, psl_err want)
{
    uint8_t out[32];
    memset(out, 0xa7, sizeof out);
    psl_err got = keyfile_read(path, kind, out);
    if (got != want)
        fail_msg("keyfile_read: got %s, want %s", psl_err_name(got), psl_err_name(want));
    if (want != PSL_OK)
        for (size_t i = 0; i < sizeof out; i++)
            assert_int_equal(out[i], 0xa7);
}

static void test_signing_round_trip(void **state)
{
    struct kf *k = *state;
    struct signer owner;
    fx_signer(&owner, FX_SEED_OWNER);
    uint8_t seed[SIGN_SEED_SIZE];
    signer_seed(&owner, seed);
    assert_int_equal(keyfile_write(k->path, KEYFILE_SIGNING, seed, owner.pk), PSL_OK);

    uint8_t back[32];
    memset(back, 0, sizeof back);
    assert_int_equal(keyfile_read(k->path, KEYFILE_SIGNING, back), PSL_OK);
    assert_memory_equal(back, seed, 32);
    /* The seed gives back the same key pair. */
    struct signer again;
    assert_int_equal(signer_init(&again, back), PSL_OK);
    assert_memory_equal(again.pk, owner.pk, SIGN_PK_SIZE);
    signer_deinit(&again);

    /* The text names its kind and carries the public key beside the secret. */
    char *text = slurp(k->path);
    char hex[65];
    hex_encode(hex, owner.pk, 32);
    char line[80];
    snprintf(line, sizeof line, "\npublic=%s\n", hex);
    assert_non_null(strstr(text, line));
    assert_non_null(strstr(text, "\ntype=ed25519-seed\n"));
    assert_non_null(strstr(text, "format=psl-key-v1\n"));
    free(text);
    signer_deinit(&owner);
}

static void test_capsule_round_trip(void **state)
{
    struct kf *k = *state;
    uint8_t key[32];
    tu_seed(key, FX_SEED_CAPSULE_KEY);
    assert_int_equal(keyfile_write(k->path, KEYFILE_CAPSULE, key, NULL), PSL_OK);
    uint8_t back[32];
    memset(back, 0, sizeof back);
    assert_int_equal(keyfile_read(k->path, KEYFILE_CAPSULE, back), PSL_OK);
    assert_memory_equal(back, key, 32);
    char *text = slurp(k->path);
    assert_non_null(strstr(text, "\ntype=capsule-key\n"));
    assert_null(strstr(text, "public="));
    free(text);
}

static void test_mode_is_0600(void **state)
{
    struct kf *k = *state;
    uint8_t key[32];
    tu_seed(key, 5);
    mode_t old = umask(0); /* even with a permissive umask */
    psl_err err = keyfile_write(k->path, KEYFILE_CAPSULE, key, NULL);
    umask(old);
    assert_int_equal(err, PSL_OK);
    struct stat st;
    assert_int_equal(stat(k->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_never_overwrites(void **state)
{
    struct kf *k = *state;
    uint8_t a[32], b[32];
    tu_seed(a, 1);
    tu_seed(b, 2);
    assert_int_equal(keyfile_write(k->path, KEYFILE_CAPSULE, a, NULL), PSL_OK);
    char *before = slurp(k->path);
    assert_int_equal(keyfile_write(k->path, KEYFILE_CAPSULE, b, NULL), PSL_ERR_EXISTS);
    assert_int_equal(keyfile_write(k->path, KEYFILE_SIGNING, b, b), PSL_ERR_EXISTS);
    char *after = slurp(k->path);
    assert_string_equal(after, before);
    uint8_t back[32];
    assert_int_equal(keyfile_read(k->path, KEYFILE_CAPSULE, back), PSL_OK);
    assert_memory_equal(back, a, 32);
    free(before);
    free(after);
    /* Nor a file that is not a key file. */
    char other[160];
    snprintf(other, sizeof other, "%s/notes.txt", k->dir);
    write_raw(other, "do not clobber\n", 0644);
    assert_int_equal(keyfile_write(other, KEYFILE_CAPSULE, a, NULL), PSL_ERR_EXISTS);
    char *notes = slurp(other);
    assert_string_equal(notes, "do not clobber\n");
    free(notes);
}

static void test_refuses_readable_by_others(void **state)
{
    struct kf *k = *state;
    uint8_t key[32];
    tu_seed(key, 3);
    assert_int_equal(keyfile_write(k->path, KEYFILE_CAPSULE, key, NULL), PSL_OK);
    static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0777};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(k->path, bad[i]), 0);
        want_read(k->path, KEYFILE_CAPSULE, PSL_ERR_INVALID_ARG);
    }
    /* Owner-only modes are fine. */
    assert_int_equal(chmod(k->path, 0400), 0);
    want_read(k->path, KEYFILE_CAPSULE, PSL_OK);
    assert_int_equal(chmod(k->path, 0600), 0);
    want_read(k->path, KEYFILE_CAPSULE, PSL_OK);
}

static void test_wrong_kind(void **state)
{
    struct kf *k = *state;
    uint8_t key[32];
    tu_seed(key, 4);
    assert_int_equal(keyfile_write(k->path, KEYFILE_CAPSULE, key, NULL), PSL_OK);
    want_read(k->path, KEYFILE_SIGNING, PSL_ERR_MALFORMED);
    char p2[160];
    snprintf(p2, sizeof p2, "%s/signing.key", k->dir);
    assert_int_equal(keyfile_write(p2, KEYFILE_SIGNING, key, key), PSL_OK);
    want_read(p2, KEYFILE_CAPSULE, PSL_ERR_MALFORMED);
    want_read(p2, KEYFILE_SIGNING, PSL_OK);
}

static void test_garbage(void **state)
{
    struct kf *k = *state;
    static const char hex64[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char good[256];
    snprintf(good, sizeof good, "format=psl-key-v1\ntype=capsule-key\nsecret=%s\n", hex64);
    write_raw(k->path, good, 0600);
    want_read(k->path, KEYFILE_CAPSULE, PSL_OK);

    const char *bad[] = {
        "",
        "\n",
        "garbage\x01\x02\xff not a key file at all",
        /* no format line */
        "type=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        /* another format */
        "format=psl-key-v2\ntype=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        /* no type line */
        "format=psl-key-v1\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        /* no secret */
        "format=psl-key-v1\ntype=capsule-key\n",
        /* a short secret */
        "format=psl-key-v1\ntype=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n",
        /* a long secret */
        "format=psl-key-v1\ntype=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00\n",
        /* not hex */
        "format=psl-key-v1\ntype=capsule-key\nsecret="
        "0011223344556677889zaabbccddeeff00112233445566778899aabbccddeeff\n",
        /* secret without its line end */
        "format=psl-key-v1\ntype=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        /* a trailing space in the secret */
        "format=psl-key-v1\ntype=capsule-key\nsecret="
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_raw(k->path, bad[i], 0600);
        uint8_t out[32];
        memset(out, 0xa7, sizeof out);
        psl_err got = keyfile_read(k->path, KEYFILE_CAPSULE, out);
        if (got != PSL_ERR_MALFORMED)
            fail_msg("garbage %zu: got %s, want malformed", i, psl_err_name(got));
        for (size_t j = 0; j < sizeof out; j++)
            assert_int_equal(out[j], 0xa7);
    }
}

static void test_missing_paths(void **state)
{
    struct kf *k = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/absent.key", k->dir);
    want_read(p, KEYFILE_CAPSULE, PSL_ERR_NOT_FOUND);
    uint8_t key[32] = {1};
    snprintf(p, sizeof p, "%s/no/such/dir.key", k->dir);
    assert_int_equal(keyfile_write(p, KEYFILE_CAPSULE, key, NULL), PSL_ERR_IO);
}

int main(void)
{
#define K(fn) cmocka_unit_test_setup_teardown(fn, kf_setup, kf_teardown)
    const struct CMUnitTest tests[] = {
        K(test_signing_round_trip),
        K(test_capsule_round_trip),
        K(test_mode_is_0600),
        K(test_never_overwrites),
        K(test_refuses_readable_by_others),
        K(test_wrong_kind),
        K(test_garbage),
        K(test_missing_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
