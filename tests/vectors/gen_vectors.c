/* gen_vectors.c: writes the known-answer vectors (a NAME.hex per vector in tests/vectors) from vectors.h.
 * Run only when an encoding changes on purpose: `build/tests/gen_vectors tests/vectors`; the
 * unit test test_vectors then pins the new bytes. */
#include "vectors.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_vectors DIR\n");
        return 2;
    }
    if (psl_crypto_init() != PSL_OK)
        return 3;
    struct vec_keys *k = malloc(sizeof *k);
    if (!k)
        return 3;
    vec_build(k);
    for (size_t i = 0; i < k->count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.hex", argv[1], k->v[i].name);
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 3;
        }
        for (size_t j = 0; j < k->v[i].size; j++)
            fprintf(f, "%02x%s", k->v[i].bytes[j], (j % 32 == 31 || j + 1 == k->v[i].size) ? "\n" : "");
        fclose(f);
        printf("wrote %s (%zu bytes)\n", path, k->v[i].size);
    }
    vec_free(k);
    free(k);
    return 0;
}
