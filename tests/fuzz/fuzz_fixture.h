/* fuzz_fixture.h: the one fixed capsule of the fuzz targets and of make_corpus.
 * Every key comes from a fixed seed, and Ed25519 signing is deterministic, so the metadata,
 * delegation and certificates built here are the same bytes in every process: a record seed that
 * make_corpus sealed with fixture writer i passes record_check against fixture certificate i
 * inside a fuzz target, and so reaches decryption and payload decoding.
 * Checklist: a change here changes the seeds; rerun make_corpus and commit the corpus with it. */
#ifndef PSL_FUZZ_FIXTURE_H
#define PSL_FUZZ_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "capsule/cert.h"
#include "capsule/meta.h"
#include "capsule/record.h"

/* Times: every certificate and the delegation are valid at FIXTURE_NOW_MS. */
#define FIXTURE_CREATED_MS    1690000000000ull
#define FIXTURE_NOT_BEFORE_MS 1600000000000ull
#define FIXTURE_NOT_AFTER_MS  1900000000000ull
#define FIXTURE_NOW_MS        1700000000000ull

#define FIXTURE_SERVERS     16u /* server keys; the fixture capsule lists the first 3 */
#define FIXTURE_REPLICAS    3u
#define FIXTURE_QUORUM      2u
#define FIXTURE_WORKERS     3u
#define FIXTURE_WRITERS     4u /* three owner-certified workers, then the coordinator */
#define FIXTURE_COORDINATOR 3u /* certified by the leader under the owner's delegation */

struct fuzz_fixture {
    struct signer owner;
    struct signer leader;
    struct signer servers[FIXTURE_SERVERS];
    uint8_t *capsule_key; /* AEAD_KEY_SIZE bytes of secret memory, owned */
    struct capsule_meta meta;
    struct delegation deleg;
    struct writer_keys writers[FIXTURE_WRITERS];
    struct writer_cert certs[FIXTURE_WRITERS];
};

/* The libFuzzer entry point that each fuzz_<name>.c defines (declared for the replay driver). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed 32-byte seed: SHA-256 of "psl-fuzz/<what>/<index>". */
void fixture_seed(uint8_t out[32], const char *what, unsigned index);
/* Measurement i of the fixture's policies; measurement 0 is the one every certificate carries. */
void fixture_measurement(uint8_t out[HASH_SIZE], unsigned index);

/* Fills and signs m as a capsule of the fixture owner: the label (label_size bytes), the first
 * replica_count server keys (quorum min(2, replica_count)) and the first measurement_count
 * measurements. */
psl_err fixture_meta_make(const struct fuzz_fixture *fx, struct capsule_meta *m, const char *label,
                          size_t label_size, unsigned replica_count,
                          unsigned measurement_count) PSL_MUST_USE;

/* Builds the whole fixture (psl_crypto_init must have succeeded); fixture_deinit frees it. */
psl_err fixture_init(struct fuzz_fixture *fx) PSL_MUST_USE;
void fixture_deinit(struct fuzz_fixture *fx);

/* For the fuzz targets: initialises crypto and builds the fixture on first use (aborting if that
 * fails), then returns it borrowed for the life of the process. Single-threaded callers only. */
const struct fuzz_fixture *fixture_get(void);

/* Index of the fixture writer whose id is `writer`, or -1. */
int fixture_writer_index(const struct fuzz_fixture *fx, const uint8_t writer[HASH_SIZE]);

#endif
