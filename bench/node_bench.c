/* node_bench.c: the product's throughput: `psl run` of a put-heavy example (examples/kvload.lua)
 * through the whole embedded federation (psl-enclave processes, rings, SCL batching, three
 * embedded storage servers with fsync, flush, audit), in operations per second from the last
 * provisioning to the last verified result. The floor printed beside it is the record producer
 * of the same run at the batch size the job reached (ops per DATA record): one core sealing
 * DATA records of 16-byte keys and 32-byte values (encode, AES-GCM, SHA-256, Ed25519 sign), the
 * crypto every operation of the job must go through at least once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "capsule/export.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "node/federation.h"

#define KEY_SIZE 16u
#define VALUE_SIZE 32u

static void die(const char *what, psl_err err)
{
    fprintf(stderr, "node_bench: %s: %s\n", what, psl_strerror(err));
    exit(1);
}

/* Sealing throughput (ops/s) of DATA records of `batch` operations, for about 1 s of CPU. */
static double producer_floor(size_t batch)
{
    struct writer_keys wk;
    uint8_t key[AEAD_KEY_SIZE] = {7};
    psl_err err = writer_keys_init(&wk, NULL, NULL, key);
    if (err)
        die("writer_keys_init", err);
    struct record_chain ch;
    uint8_t capsule[HASH_SIZE] = {1};
    record_chain_init(&ch, capsule);
    struct kv_op *ops = calloc(batch, sizeof *ops);
    uint8_t *keys = malloc(batch * KEY_SIZE), val[VALUE_SIZE];
    size_t cap = PSL_RECORD_HEADER_SIZE + batch * (15 + KEY_SIZE + VALUE_SIZE) + 256;
    uint8_t *buf = malloc(cap);
    if (!ops || !keys || !buf)
        die("malloc", PSL_ERR_NOMEM);
    memset(val, 'v', sizeof val);
    uint64_t lamport = 0, done = 0, t0 = clock_mono_ns();
    while (clock_mono_ns() - t0 < 1000000000ull) {
        for (size_t i = 0; i < batch; i++) {
            snprintf((char *)keys + i * KEY_SIZE, KEY_SIZE, "w000/%010llu",
                     (unsigned long long)(done + i));
            ops[i] = (struct kv_op){.op = OP_PUT, .lamport = ++lamport, .key_size = KEY_SIZE,
                                    .key = keys + i * KEY_SIZE, .value_size = VALUE_SIZE,
                                    .value = val};
        }
        struct wr w;
        wr_init(&w, buf + PSL_RECORD_HEADER_SIZE, cap - PSL_RECORD_HEADER_SIZE - 80);
        data_encode(&w, ops, batch);
        if (w.err)
            die("data_encode", w.err);
        size_t size;
        uint8_t hash[HASH_SIZE];
        if ((err = record_chain_seal(&ch, &wk, REC_DATA, lamport, buf, cap, w.pos, &size, hash)))
            die("record_chain_seal", err);
        done += batch;
    }
    double s = (double)(clock_mono_ns() - t0) / 1e9;
    free(ops);
    free(keys);
    free(buf);
    writer_keys_deinit(&wk);
    return (double)done / s;
}

int main(int argc, char **argv)
{
    if (psl_crypto_init() != PSL_OK)
        return 1;
    const char *enclave = getenv("PSL_ENCLAVE") ? getenv("PSL_ENCLAVE") : PSL_ENCLAVE_PATH;
    const char *script_path = argc > 1 ? argv[1] : PSL_EXAMPLES_DIR "/kvload.lua";
    unsigned workers = 2;
    const char *puts = "100000";
    uint8_t *script;
    size_t script_size;
    psl_err err = file_read_all(script_path, &script, &script_size);
    if (err)
        die(script_path, err);
    char dir[] = "/tmp/psl-node-bench.XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", PSL_ERR_IO);
    struct fed_config fc = {.data_dir = dir, .enclave_path = enclave};
    struct fed *f;
    if ((err = fed_open(&f, &fc)))
        die("fed_open", err);
    printf("# psl run %s --workers %u --args %s (process enclaves, 3 embedded servers, k=2)\n",
           script_path, workers, puts);
    double rate[3];
    uint64_t ops = 0, records = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct fed_job_config jc = {.name = "kvload.lua", .script = script,
                                    .script_size = script_size, .args = (const uint8_t *)puts,
                                    .args_size = strlen(puts), .workers = workers,
                                    .timeout_ms = 300000};
        struct fed_job_report rep_out;
        if ((err = fed_run_job(f, &jc, &rep_out)))
            die("fed_run_job", err);
        for (unsigned i = 0; i < workers; i++)
            if (!rep_out.results[i].ok || !rep_out.results[i].verified)
                die("a worker failed", rep_out.results[i].err);
        if (!rep_out.chain_verified || !rep_out.durable)
            die("the capsule did not verify or was not durable", PSL_ERR_AUTH);
        rate[rep] = (double)rep_out.ops / rep_out.run_s;
        ops = rep_out.ops;
        records = rep_out.records;
        printf("# run %d: %llu ops in %llu records, %.2f s, %.0f ops/s\n", rep,
               (unsigned long long)rep_out.ops, (unsigned long long)rep_out.records,
               rep_out.run_s, rate[rep]);
        fed_job_report_free(&rep_out);
    }
    fed_close(f);
    free(script);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "node_bench: could not remove %s\n", dir);
    /* median of three */
    double a = rate[0], b = rate[1], c = rate[2];
    double med = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
    size_t batch = records ? (size_t)(ops / records) : 1;
    if (batch < 1)
        batch = 1;
    double floor = producer_floor(batch);
    printf("# floor: one core sealing DATA records of %zu ops (the job's mean batch)\n", batch);
    printf("RESULT name=node.run_ops_per_s value=%.0f unit=ops/s floor=%.0f ratio=%.3f\n", med,
           floor, med / floor);
    printf("RESULT name=node.run_floor_producer_ops_per_s value=%.0f unit=ops/s\n", floor);
    return 0;
}
