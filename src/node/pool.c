/* pool.c: the enclave pool (see pool.h). The pool thread is the only thread that starts
 * enclaves, so every psl-enclave's parent thread lives as long as the pool (PR_SET_PDEATHSIG
 * fires when the forking thread ends, not the process). Invariant: a slot is either on the idle
 * list (owned by the pool) or taken (owned by one job until pool_release), never both; `busy`
 * counts the taken ones. */
#include "node/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"

#define POOL_START_TIMEOUT_MS 10000
#define POOL_TICK_MS 200
#define POOL_RETRY_NS (500ull * 1000000u) /* after a failed start */
#define POOL_ENCLAVES_MAX_DEFAULT 64u

struct pool_slot {
    struct pool *p;
    struct enclave_host *h;
    _Atomic(void *) owner; /* the job's context for log lines; NULL while idle */
    char name[32];
    struct pool_slot *next; /* idle list */
};

struct pool {
    struct pool_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* idle count or demand changed, or closing */
    struct pool_slot *idle;
    unsigned idle_count, busy, demand;
    bool closing;
    uint64_t started, start_failures, died_idle, serial;
    uint64_t retry_after_ns;
    char last_failure[160];
};

static void slot_log(void *ctx, const char *name, const char *line, size_t size)
{
    struct pool_slot *s = ctx;
    void *owner = atomic_load_explicit(&s->owner, memory_order_acquire); /* pairs with set_owner */
    if (owner && s->p->cfg.on_log)
        s->p->cfg.on_log(s->p->cfg.log_ctx, owner, name, line, size);
    else
        LOG_DEBUG("pool", "msg=\"idle enclave log\" enclave=%s line=\"%.*s\"", name, (int)size, line);
}

static void slot_sealed_log(void *ctx, const char *name, const uint8_t *sealed, size_t size)
{
    struct pool_slot *s = ctx;
    void *owner = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (owner && s->p->cfg.on_sealed_log)
        s->p->cfg.on_sealed_log(s->p->cfg.log_ctx, owner, name, sealed, size);
}

/* Starts one enclave; called on the pool thread without the lock. */
static psl_err start_one(struct pool *p, uint64_t serial, struct pool_slot **out)
{
    struct pool_slot *s = calloc(1, sizeof *s);
    if (!s)
        return PSL_ERR_NOMEM;
    s->p = p;
    atomic_init(&s->owner, NULL);
    snprintf(s->name, sizeof s->name, "e%llu", (unsigned long long)serial);
    struct enclave_host_config hc = {.enclave_path = p->cfg.enclave_path,
                                     .actors = p->cfg.actors,
                                     .name = s->name,
                                     .on_log = slot_log,
                                     .on_sealed_log = slot_sealed_log,
                                     .log_ctx = s,
                                     .on_tap = p->cfg.on_tap,
                                     .tap_ctx = p->cfg.tap_ctx};
    psl_err err = enclave_host_start(&s->h, &hc, p->cfg.fabric, POOL_START_TIMEOUT_MS);
    if (err) {
        free(s);
        return err;
    }
    *out = s;
    return PSL_OK;
}

/* Removes dead idle enclaves from the list (under the lock); returns them chained. */
static struct pool_slot *reap_dead_locked(struct pool *p)
{
    struct pool_slot *dead = NULL, **pp = &p->idle;
    while (*pp) {
        struct pool_slot *s = *pp;
        if (enclave_host_dead(s->h)) {
            *pp = s->next;
            s->next = dead;
            dead = s;
            p->idle_count--;
            p->died_idle++;
        } else {
            pp = &s->next;
        }
    }
    return dead;
}

static void *pool_main(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->closing) {
        struct pool_slot *dead = reap_dead_locked(p);
        if (dead) {
            pthread_mutex_unlock(&p->mu);
            while (dead) {
                struct pool_slot *s = dead;
                dead = s->next;
                LOG_WARN("pool", "msg=\"idle enclave died; replacing it\" enclave=%s reason=\"%s\"",
                         s->name, enclave_host_exit_reason(s->h));
                enclave_host_stop(s->h, 0);
                free(s);
            }
            pthread_mutex_lock(&p->mu);
            continue;
        }
        unsigned want = p->cfg.size + p->demand;
        uint64_t now = clock_mono_ns();
        if (p->idle_count < want && p->idle_count + p->busy < p->cfg.enclaves_max &&
            now >= p->retry_after_ns) {
            uint64_t serial = ++p->serial;
            pthread_mutex_unlock(&p->mu);
            struct pool_slot *s = NULL;
            psl_err err = start_one(p, serial, &s);
            pthread_mutex_lock(&p->mu);
            if (err) {
                p->start_failures++;
                snprintf(p->last_failure, sizeof p->last_failure, "enclave did not start: %s",
                         psl_strerror(err));
                p->retry_after_ns = clock_mono_ns() + POOL_RETRY_NS;
                LOG_WARN("pool", "msg=\"enclave did not start\" err=%s path=%s", psl_err_name(err),
                         p->cfg.enclave_path ? p->cfg.enclave_path : "(thread mode)");
            } else {
                s->next = p->idle;
                p->idle = s;
                p->idle_count++;
                p->started++;
            }
            pthread_cond_broadcast(&p->cv);
            continue;
        }
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)POOL_TICK_MS * 1000000u);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    /* Closing: stop the idle enclaves from this thread, their parent. */
    struct pool_slot *s = p->idle;
    p->idle = NULL;
    p->idle_count = 0;
    pthread_mutex_unlock(&p->mu);
    while (s) {
        struct pool_slot *next = s->next;
        enclave_host_stop(s->h, 1000);
        free(s);
        s = next;
    }
    return NULL;
}

psl_err pool_open(struct pool **out, const struct pool_config *cfg)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return PSL_ERR_NOMEM;
    p->cfg = *cfg;
    if (!p->cfg.enclaves_max)
        p->cfg.enclaves_max = POOL_ENCLAVES_MAX_DEFAULT;
    if (p->cfg.size > p->cfg.enclaves_max)
        p->cfg.size = p->cfg.enclaves_max;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, pool_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return PSL_ERR_NOMEM;
    }
    *out = p;
    return PSL_OK;
}

void pool_close(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    PSL_ASSERT(p->busy == 0);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

psl_err pool_take(struct pool *p, unsigned count, struct pool_slot **out, int timeout_ms)
{
    PSL_ASSERT(count >= 1);
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_lock(&p->mu);
    if (p->closing || count > p->cfg.enclaves_max || p->busy + count > p->cfg.enclaves_max) {
        pthread_mutex_unlock(&p->mu);
        return PSL_ERR_BUSY;
    }
    p->demand += count;
    pthread_cond_broadcast(&p->cv);
    psl_err err = PSL_OK;
    for (;;) {
        struct pool_slot *dead = reap_dead_locked(p);
        if (dead) {
            /* The pool thread reports and frees them; hand them back to it by re-listing is not
             * possible (they are dead), so stop them here: the kill only reaps the process. */
            pthread_mutex_unlock(&p->mu);
            while (dead) {
                struct pool_slot *s = dead;
                dead = s->next;
                LOG_WARN("pool", "msg=\"idle enclave died; replacing it\" enclave=%s reason=\"%s\"",
                         s->name, enclave_host_exit_reason(s->h));
                enclave_host_stop(s->h, 0);
                free(s);
            }
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->cv);
            continue;
        }
        if (p->idle_count >= count)
            break;
        uint64_t now = clock_mono_ns();
        if (now >= deadline || p->closing) {
            err = PSL_ERR_TIMEOUT;
            break;
        }
        struct timespec ts;
        clock_deadline(&ts, deadline - now);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    p->demand -= count;
    if (!err) {
        for (unsigned i = 0; i < count; i++) {
            struct pool_slot *s = p->idle;
            p->idle = s->next;
            s->next = NULL;
            out[i] = s;
        }
        p->idle_count -= count;
        p->busy += count;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return err;
}

void pool_release(struct pool *p, struct pool_slot *s, int timeout_ms)
{
    if (!s)
        return;
    atomic_store_explicit(&s->owner, NULL, memory_order_release);
    enclave_host_stop(s->h, timeout_ms);
    free(s);
    pthread_mutex_lock(&p->mu);
    PSL_ASSERT(p->busy > 0);
    p->busy--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

struct enclave_host *pool_slot_host(struct pool_slot *s)
{
    return s->h;
}

void pool_slot_set_owner(struct pool_slot *s, void *owner)
{
    atomic_store_explicit(&s->owner, owner, memory_order_release); /* pairs with slot_log */
}

void pool_get_stats(struct pool *p, struct pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->idle = p->idle_count;
    out->busy = p->busy;
    out->started = p->started;
    out->start_failures = p->start_failures;
    out->died_idle = p->died_idle;
    snprintf(out->last_failure, sizeof out->last_failure, "%s", p->last_failure);
    pthread_mutex_unlock(&p->mu);
}
