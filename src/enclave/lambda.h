/* lambda.h: the Lua 5.4 lambda sandbox (DESIGN §7.2). One call runs one lambda: a fresh Lua
 * state with only the base, table, string, math and utf8 libraries (no io, os, debug, package,
 * coroutine; no binary chunks; no string.dump; no __gc finalizers), a memory cap enforced by
 * the allocator and an instruction budget enforced by a count hook, and the `psl` module of
 * DESIGN §5.1, whose effects all go through a callback table the caller provides. The module
 * depends on nothing but base and Lua: no SCL, fabric, socket, file or environment access, so it
 * runs unchanged inside the seccomp-confined enclave and in tests. docs/lambda-api.md is the
 * reference for lambda authors.
 *
 * Thread-safe: runs share nothing, so several threads may call lambda_run at once (tests run the
 * workers of one job on threads that way). Each run needs about 1 MiB of C stack (Lua bounds
 * its C recursion at 200 levels); give sanitizer builds 4 MiB. */
#ifndef PSL_ENCLAVE_LAMBDA_H
#define PSL_ENCLAVE_LAMBDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"

#define LAMBDA_JOB_ID_SIZE_MAX  32u             /* job_id scopes barrier keys (see lambda_job) */
#define LAMBDA_WORKERS_MAX      PSL_WRITERS_MAX /* every worker is a writer of the capsule */
#define LAMBDA_RESULT_DEPTH_MAX 64u             /* nesting of tables in main's return value */
#define LAMBDA_ENTRY_SIZE_MAX   64u             /* name of the function lambda_run calls */

/* The psl module's backend: the SCL engine in the enclave, a map in tests. Every callback is
 * required. They are called on the thread that called lambda_run, one at a time per run; keys
 * and values are borrowed for the duration of the call. Keys given to them are at most
 * PSL_KEY_SIZE_MAX bytes and values at most PSL_VALUE_SIZE_MAX bytes (checked before the call).
 * An error other than the ones listed becomes a Lua error naming the operation and the error
 * (psl_strerror), which ends the lambda unless it catches it with pcall. */
struct lambda_ops {
    void *ctx; /* passed back to every callback */
    /* PSL_OK with *value (malloc'd, taken by the caller, who frees it; may be NULL when
     * *value_size is 0) or PSL_ERR_NOT_FOUND. */
    psl_err (*get)(void *ctx, const uint8_t *key, size_t key_size, uint8_t **value,
                   size_t *value_size);
    /* May block (backpressure). */
    psl_err (*put)(void *ctx, const uint8_t *key, size_t key_size, const uint8_t *value,
                   size_t value_size);
    /* PSL_ERR_NOT_FOUND is treated as success (deleting an absent key is not an error). */
    psl_err (*del)(void *ctx, const uint8_t *key, size_t key_size);
    /* Blocks until every earlier put and del of this run is durable. */
    psl_err (*flush)(void *ctx);
    /* Sleeps; not charged to the instruction budget. */
    void (*sleep_ms)(void *ctx, uint32_t ms);
    /* One line of the lambda's output (print, psl.log): NUL-terminated, size excludes the NUL,
     * at most PSL_LOG_LINE_SIZE_MAX bytes, borrowed for the call. */
    void (*log)(void *ctx, const char *line, size_t size);
    /* Optional (NULL: not consulted): true when every record seen from every other writer has
     * been applied, with no gap before it. psl.barrier passes only then, so the writes another
     * worker made before reaching the barrier are visible after it (records may arrive out of
     * order, and the one carrying a barrier key can overtake an earlier one). */
    bool (*caught_up)(void *ctx);
};

/* Per-job caps; a zero field (or a NULL struct) takes the default of limits.h. */
struct lambda_limits {
    size_t mem_bytes_max; /* bytes the Lua state may hold; 0: PSL_LAMBDA_MEM_DEFAULT */
    /* Budget in instructions; 0: PSL_LAMBDA_INSN_DEFAULT. Charged one per Lua VM instruction,
     * plus one per 8 bytes the lambda allocates, one per element that table.insert, remove,
     * move, concat and sort visit, and one per 8 heap bytes for collectgarbage("collect") and
     * ("step"): work done inside library calls costs budget too. */
    uint64_t insn_max;
};

/* What to run. Every pointer is borrowed for the duration of lambda_run. */
struct lambda_job {
    const char *code;      /* Lua source text (binary chunks are refused), not NUL-terminated */
    size_t code_size;      /* <= PSL_SCRIPT_SIZE_MAX */
    const char *chunkname; /* NUL-terminated name in messages, e.g. "pi.lua"; NULL: "lambda" */
    const uint8_t *args;   /* passed to main as a string; NULL when args_size is 0 */
    size_t args_size;      /* <= PSL_ARGS_SIZE_MAX; 0: main receives nil */
    uint32_t worker;       /* 0-based index of this worker, < workers */
    uint32_t workers;      /* 1..LAMBDA_WORKERS_MAX */
    /* Optional (NULL, 0): an identifier of the job, at most LAMBDA_JOB_ID_SIZE_MAX bytes, put
     * into psl.barrier's keys so that two jobs over one capsule never see each other's barrier
     * rounds. Every worker of a job must pass the same bytes. */
    const uint8_t *job_id;
    size_t job_id_size;
    /* Optional: the global function to call instead of main (a deployed function's handler,
     * DESIGN §7.4), NUL-terminated, at most LAMBDA_ENTRY_SIZE_MAX bytes; NULL: "main". */
    const char *entry;
};

/* Runs the script in a fresh sandbox, then calls its global function main(args) and encodes
 * main's first return value as JSON text (docs/lambda-api.md, "Result").
 * On success: PSL_OK, *result (malloc'd, NUL-terminated, taken by the caller) of *result_size
 * bytes (excluding the NUL, at most PSL_RESULT_SIZE_MAX), and err[0] = '\0' when errcap > 0.
 * On failure *result and *result_size are untouched and err receives a one-line message
 * (truncated to errcap - 1 bytes, control characters replaced by spaces) that names the cause
 * and, where known, the script position, e.g. "pi.lua:12: instruction budget of 20000000000
 * exhausted". Errors:
 *   PSL_ERR_INVALID_ARG   a NULL pointer or callback, worker >= workers, workers out of range,
 *                         job_id too long, or err NULL with errcap > 0
 *   PSL_ERR_TOO_LARGE     code_size > PSL_SCRIPT_SIZE_MAX or args_size > PSL_ARGS_SIZE_MAX
 *   PSL_ERR_LAMBDA        the script failed to load (syntax error, binary chunk), raised an
 *                         error, had no function main, or main's value cannot be encoded
 *   PSL_ERR_LAMBDA_BUDGET the instruction budget ran out
 *   PSL_ERR_LAMBDA_MEMORY the memory cap was reached (also: a cap too small for the state)
 *   PSL_ERR_NOMEM         the host itself ran out of memory below the cap
 * Whatever the script wrote through ops before failing stays written. */
psl_err lambda_run(const struct lambda_job *job, const struct lambda_limits *lim,
                   const struct lambda_ops *ops, char **result, size_t *result_size, char *err,
                   size_t errcap) PSL_MUST_USE;

#endif
