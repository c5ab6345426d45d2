/* pool.h: a pool of pre-forked enclaves (DESIGN §7.1). One long-lived pool thread starts every
 * enclave (psl-enclave dies with the thread that forked it: PR_SET_PDEATHSIG), keeps `size`
 * started and unprovisioned enclaves idle, replaces idle ones that die (and reports them), and
 * starts more on demand when a job takes more than are idle, up to `enclaves_max` alive. An
 * enclave serves one job only: a job takes enclaves out of the pool and stops them when it ends
 * (pool_release); the pool never hands out an enclave twice. */
#ifndef PSL_NODE_POOL_H
#define PSL_NODE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "node/enclave_host.h"

struct pool_config {
    const char *enclave_path; /* psl-enclave; NULL: enclaves on threads (thread mode) */
    unsigned actors;          /* crypto actors per enclave (default 1) */
    unsigned size;            /* idle enclaves kept ready (0: start on demand only) */
    unsigned enclaves_max;    /* alive at once, idle and busy (default 64) */
    struct fabric *fabric;    /* borrowed for the pool's life: taken enclaves relay on it */
    /* Optional: the lines of taken enclaves, with the owner set by pool_slot_set_owner
     * (NULL for an idle enclave). Called on the enclave's receive thread. */
    void (*on_log)(void *ctx, void *owner, const char *name, const char *line, size_t size);
    void (*on_sealed_log)(void *ctx, void *owner, const char *name, const uint8_t *sealed,
                          size_t size);
    void *log_ctx;
    /* Optional (tests): enclave_host_config.on_tap for every enclave. */
    void (*on_tap)(void *ctx, int dir, uint32_t type, const uint8_t *data, size_t size);
    void *tap_ctx;
};

struct pool_stats {
    unsigned idle;              /* started, not taken */
    unsigned busy;              /* taken by jobs, not released */
    uint64_t started;           /* enclaves started since the pool opened */
    uint64_t start_failures;    /* starts that failed */
    uint64_t died_idle;         /* idle enclaves that died and were replaced */
    char last_failure[160];     /* why the last start failed, or "" */
};

struct pool;
struct pool_slot;

/* Starts the pool thread, which starts cfg->size enclaves in the background. */
psl_err pool_open(struct pool **out, const struct pool_config *cfg) PSL_MUST_USE;
/* Stops every idle enclave and the pool thread. Every taken slot must be released first. */
void pool_close(struct pool *p);

/* Takes count started enclaves, waiting up to timeout_ms while the pool thread starts missing
 * ones. out[count] receives slots owned by the caller until pool_release. Nothing is taken on
 * failure: PSL_ERR_BUSY when count more would pass enclaves_max, PSL_ERR_TIMEOUT when they could
 * not be started in time (pool_stats says why). */
psl_err pool_take(struct pool *p, unsigned count, struct pool_slot **out,
                  int timeout_ms) PSL_MUST_USE;
/* Stops the slot's enclave (waiting up to timeout_ms for it to end by itself) and frees it. */
void pool_release(struct pool *p, struct pool_slot *s, int timeout_ms);

/* The slot's enclave (borrowed until pool_release). */
struct enclave_host *pool_slot_host(struct pool_slot *s);
/* Routes the slot's log lines to the pool's callbacks with this owner (NULL: dropped). */
void pool_slot_set_owner(struct pool_slot *s, void *owner);

void pool_get_stats(struct pool *p, struct pool_stats *out);

#endif
