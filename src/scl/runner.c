/* runner.c: actor and ticker threads around an SCL engine (see runner.h). Actors sleep on a
 * condition variable and are woken by kicks and by the ticker; each wake seals until the engine
 * is idle, then emits the engine's actions. The engine pointer is guarded by a read-write lock:
 * threads hold it shared while they use the engine, attach takes it exclusively, so a detached
 * engine is never touched again. */
#include "scl/runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base/assert.h"
#include "base/clock.h"

#define ACTORS_MAX 16

struct scl_runner {
    struct scl_runner_config cfg;
    pthread_rwlock_t elock; /* guards e: shared while in use, exclusive to attach */
    struct scl_engine *e;
    pthread_t actors[ACTORS_MAX];
    unsigned actor_count;
    pthread_t ticker;
    bool ticker_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* actors wait here for kicks */
    pthread_cond_t tick_cv; /* the ticker waits here for its period (or stop): a kick, which
                             * wakes sleeping actors, must not wake the ticker too */
    /* Kicks are counted without the mutex; a kicker takes the mutex to broadcast only when an
     * actor sleeps. The seq_cst increment of kicks pairs with the seq_cst increment of sleepers
     * in actor_main (each side stores, then loads the other's counter), so a kick is never lost
     * between an actor's check and its wait. */
    _Atomic uint64_t kicks;
    _Atomic unsigned sleepers;
    _Atomic uint64_t put_kick_ns; /* time of the last scl_runner_kick_put (clock_mono_ns) */
    pthread_mutex_t out_mu; /* one emitter at a time keeps the engine's output order */
    bool stopping;
};

/* Emits everything the engine has to say. Caller holds elock shared and e is not NULL. */
static void drain_locked(struct scl_runner *r)
{
    pthread_mutex_lock(&r->out_mu);
    struct scl_action a;
    while (scl_poll(r->e, &a)) {
        r->cfg.emit(r->cfg.ctx, &a);
        free(a.data);
    }
    pthread_mutex_unlock(&r->out_mu);
}

/* One actor's pass: seals until the engine is idle, emitting as it goes. */
static void seal_all(struct scl_runner *r)
{
    pthread_rwlock_rdlock(&r->elock);
    if (r->e) {
        while (scl_actor_step(r->e) == PSL_OK)
            drain_locked(r);
        drain_locked(r);
    }
    pthread_rwlock_unlock(&r->elock);
}

void scl_runner_drain(struct scl_runner *r)
{
    pthread_rwlock_rdlock(&r->elock);
    if (r->e)
        drain_locked(r);
    pthread_rwlock_unlock(&r->elock);
}

void scl_runner_kick(struct scl_runner *r)
{
    atomic_fetch_add(&r->kicks, 1);
    if (atomic_load(&r->sleepers) == 0)
        return; /* every actor is awake and will look at the engine again */
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* How long puts must have paused before the next one is sealed on the putting thread: several
 * seal times (one seal is ~30 us here). A put loop kicks far more often than that, so while puts
 * keep coming the actors seal and batches form by themselves; only the first put after a pause
 * skips the actor's wake-up (tens of microseconds on a loaded or virtual machine). */
#define PUT_IDLE_NS 200000u

void scl_runner_kick_put(struct scl_runner *r)
{
    uint64_t now = clock_mono_ns();
    /* Relaxed: a heuristic, not a synchronisation (a stale value only picks the other path). */
    uint64_t last = atomic_exchange_explicit(&r->put_kick_ns, now, memory_order_relaxed);
    /* Every actor asleep means none is sealing: the caller becomes the actor for this batch,
     * exactly as a woken actor would (actor steps may run on several threads at once; the
     * engine sequences a writer's records itself). Otherwise an actor is awake or the puts are
     * frequent: wake the actors as usual. */
    if (now - last < PUT_IDLE_NS || atomic_load(&r->sleepers) < r->actor_count) {
        scl_runner_kick(r);
        return;
    }
    seal_all(r);
}

psl_err scl_runner_get(struct scl_runner *r, const uint8_t *key, size_t key_size, uint8_t *out,
                       size_t cap, size_t *size, uint32_t timeout_ms)
{
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t seen = atomic_load(&r->kicks);
        pthread_rwlock_rdlock(&r->elock);
        psl_err err = r->e ? scl_get(r->e, key, key_size, out, cap, size) : PSL_ERR_CLOSED;
        if (err == PSL_ERR_BUSY)
            drain_locked(r); /* the block request goes out now, not at the next tick */
        pthread_rwlock_unlock(&r->elock);
        if (err != PSL_ERR_BUSY)
            return err;
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            return PSL_ERR_TIMEOUT;
        /* Sleep as an actor does (counted in sleepers, so kicks broadcast), until a kick or at
         * most one tick. */
        struct timespec ts;
        uint64_t wait = (uint64_t)r->cfg.tick_ms * 1000000u;
        clock_deadline(&ts, wait < deadline - now ? wait : deadline - now);
        pthread_mutex_lock(&r->mu);
        atomic_fetch_add(&r->sleepers, 1);
        while (!r->stopping && atomic_load(&r->kicks) == seen &&
               pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0) {
        }
        atomic_fetch_sub(&r->sleepers, 1);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return PSL_ERR_CLOSED;
    }
}

static void *actor_main(void *arg)
{
    struct scl_runner *r = arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        atomic_fetch_add(&r->sleepers, 1);
        while (!r->stopping && atomic_load(&r->kicks) == seen)
            pthread_cond_wait(&r->cv, &r->mu);
        atomic_fetch_sub(&r->sleepers, 1);
        bool stop = r->stopping;
        seen = atomic_load(&r->kicks);
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        seal_all(r);
    }
}

static void *ticker_main(void *arg)
{
    struct scl_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)r->cfg.tick_ms * 1000000u);
        pthread_cond_timedwait(&r->tick_cv, &r->mu, &ts);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->mu);
        pthread_rwlock_rdlock(&r->elock);
        if (r->e) {
            scl_tick(r->e, clock_mono_ns() / 1000000u);
            drain_locked(r);
        }
        pthread_rwlock_unlock(&r->elock);
        scl_runner_kick(r); /* timers may have queued records (EOE, SYNC, re-sends) */
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

psl_err scl_runner_start(struct scl_runner **out, const struct scl_runner_config *cfg)
{
    PSL_ASSERT(cfg->emit);
    struct scl_runner *r = calloc(1, sizeof *r);
    if (!r)
        return PSL_ERR_NOMEM;
    r->cfg = *cfg;
    if (!r->cfg.actors)
        r->cfg.actors = 1;
    if (r->cfg.actors > ACTORS_MAX)
        r->cfg.actors = ACTORS_MAX;
    if (!r->cfg.tick_ms)
        r->cfg.tick_ms = 5;
    pthread_rwlock_init(&r->elock, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->out_mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->tick_cv, NULL);
    for (unsigned i = 0; i < r->cfg.actors; i++) {
        if (pthread_create(&r->actors[i], NULL, actor_main, r) != 0)
            goto out_fail;
        r->actor_count++;
    }
    if (pthread_create(&r->ticker, NULL, ticker_main, r) != 0)
        goto out_fail;
    r->ticker_running = true;
    *out = r;
    return PSL_OK;
out_fail:
    scl_runner_stop(r);
    return PSL_ERR_NOMEM;
}

void scl_runner_attach(struct scl_runner *r, struct scl_engine *e)
{
    pthread_rwlock_wrlock(&r->elock);
    r->e = e;
    pthread_rwlock_unlock(&r->elock);
    if (e) {
        scl_runner_drain(r); /* the engine's first requests (heads) */
        scl_runner_kick(r);
    }
}

void scl_runner_stop(struct scl_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->tick_cv);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->actor_count; i++)
        pthread_join(r->actors[i], NULL);
    if (r->ticker_running)
        pthread_join(r->ticker, NULL);
    pthread_rwlock_destroy(&r->elock);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->out_mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->tick_cv);
    free(r);
}
