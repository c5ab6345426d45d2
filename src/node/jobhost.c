/* jobhost.c: the host side of jobs (see jobhost.h). Threads: callers create jobs and queue
 * bundles; one provisioner thread relays queued bundles and waits for READY; one monitor thread
 * collects results, notices dead enclaves, enforces the deadlines and, when every slot of a job
 * has ended, stops its enclaves. All job state is under jh->mu; enclaves are never stopped while
 * holding it (an enclave's receive thread takes it to deliver log lines, and stopping joins that
 * thread). A job's memory is freed only after its slots were released, so a log callback never
 * sees a freed worker. */
#include "node/jobhost.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"

#define MONITOR_TICK_MS 20
#define RELEASE_TIMEOUT_MS 2000
#define TAKE_TIMEOUT_MS 30000

struct hjob;

struct hworker {
    struct hjob *job;
    struct pool_slot *slot; /* NULL once released */
    unsigned index;
    enum jobhost_wstate state;
    char error[192];
    psl_err error_code;
    uint8_t *bundle; /* queued, owned */
    size_t bundle_size;
    uint8_t *result; /* sealed, owned */
    size_t result_size;
    psl_err job_err;
    uint64_t stats[RING_STATS_COUNT];
    bool in_flight; /* the provisioner is using the slot without the lock */
};

struct hjob {
    struct jobhost *jh;
    bool used;
    bool ended;    /* every slot terminal; slots are being or have been released */
    bool released; /* slots released: memory may go */
    uint8_t id[JOBHOST_ID_SIZE];
    uint8_t meta_raw[META_SIZE_MAX];
    size_t meta_size;
    uint8_t capsule[HASH_SIZE];
    unsigned workers;
    struct hworker *w;
    uint32_t timeout_ms;
    uint64_t created_ns, first_bundle_ns, ended_ns;
    struct jobhost_log_line *logs; /* ring of JOBHOST_LOG_LINES_MAX */
    uint64_t log_first, log_next;  /* sequence numbers kept: [log_first, log_next) */
    char function[JOBHOST_FUNCTION_NAME_SIZE_MAX + 1]; /* "" for a job */
    bool invoking;                                     /* an invocation is being relayed */
};

struct jobhost {
    struct jobhost_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* bundles queued, or closing */
    bool closing;
    struct hjob *jobs; /* jobs_max entries */
    pthread_t monitor, provisioner;
    bool monitor_running, provisioner_running;
    struct jobhost_stats st; /* cumulative counters (jobs[] is computed on demand) */
};

static const char *const job_states[JOB_STATE_COUNT] = {"attesting", "running", "done", "failed"};
static const char *const w_states[W_STATE_COUNT] = {"attesting", "waiting", "provisioning",
                                                    "running",   "done",    "failed"};

const char *jobhost_state_name(enum jobhost_state s)
{
    return (unsigned)s < JOB_STATE_COUNT ? job_states[s] : "?";
}

const char *jobhost_wstate_name(enum jobhost_wstate s)
{
    return (unsigned)s < W_STATE_COUNT ? w_states[s] : "?";
}

static bool terminal(enum jobhost_wstate s)
{
    return s == W_DONE || s == W_FAILED;
}

static enum jobhost_state job_state(const struct hjob *j)
{
    bool all_terminal = true, all_done = true, started = false;
    for (unsigned i = 0; i < j->workers; i++) {
        enum jobhost_wstate s = j->w[i].state;
        all_terminal &= terminal(s);
        all_done &= s == W_DONE;
        started |= s == W_PROVISIONING || s == W_RUNNING || s == W_DONE;
    }
    if (all_terminal)
        return all_done ? JOB_DONE : JOB_FAILED;
    return started ? JOB_RUNNING : JOB_ATTESTING;
}

static struct hjob *find_locked(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE])
{
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++)
        if (jh->jobs[i].used && memcmp(jh->jobs[i].id, id, JOBHOST_ID_SIZE) == 0)
            return &jh->jobs[i];
    return NULL;
}

/* The live (not ended) function of that name, or NULL. */
static struct hjob *function_find_locked(struct jobhost *jh, const char *name)
{
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++) {
        struct hjob *j = &jh->jobs[i];
        if (j->used && !j->ended && j->function[0] && strcmp(j->function, name) == 0)
            return j;
    }
    return NULL;
}

static void job_free_locked(struct hjob *j)
{
    for (unsigned i = 0; i < j->workers; i++) {
        PSL_ASSERT(j->w[i].slot == NULL);
        free(j->w[i].bundle);
        free(j->w[i].result);
    }
    free(j->w);
    if (j->logs) {
        for (uint64_t s = j->log_first; s < j->log_next; s++)
            free(j->logs[s % JOBHOST_LOG_LINES_MAX].sealed);
        free(j->logs);
    }
    memset(j, 0, sizeof *j);
}

static void fail_worker_locked(struct jobhost *jh, struct hworker *w, psl_err code,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_worker_locked(struct jobhost *jh, struct hworker *w, psl_err code,
                               const char *fmt, ...)
{
    if (terminal(w->state))
        return;
    w->error_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    w->state = W_FAILED;
    jh->st.workers_failed++;
    char hex[2 * JOBHOST_ID_SIZE + 1];
    hex_encode(hex, w->job->id, JOBHOST_ID_SIZE);
    LOG_WARN("jobhost", "msg=\"worker failed\" job=%s worker=%u why=\"%s\"", hex, w->index,
             w->error);
}

/* ---- log lines of a job's enclaves ---- */

void jobhost_on_log(void *ctx, void *owner, const char *name, const char *line, size_t size)
{
    struct hworker *w = owner;
    struct jobhost *jh = w->job->jh;
    (void)ctx;
    (void)name;
    if (jh->cfg.on_log)
        jh->cfg.on_log(jh->cfg.log_ctx, w->job->id, w->index, false, (const uint8_t *)line, size);
    else
        LOG_INFO("enclave", "worker=%u line=\"%.*s\"", w->index, (int)size, line);
}

void jobhost_on_sealed_log(void *ctx, void *owner, const char *name, const uint8_t *sealed,
                           size_t size)
{
    struct hworker *w = owner;
    struct jobhost *jh = w->job->jh;
    (void)ctx;
    (void)name;
    if (jh->cfg.on_log)
        jh->cfg.on_log(jh->cfg.log_ctx, w->job->id, w->index, true, sealed, size);
    if (size > PSL_LOG_LINE_SIZE_MAX + SEAL_OVERHEAD)
        return;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return;
    memcpy(copy, sealed, size);
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = w->job;
    if (j->logs) {
        if (j->log_next - j->log_first == JOBHOST_LOG_LINES_MAX) {
            free(j->logs[j->log_first % JOBHOST_LOG_LINES_MAX].sealed);
            j->log_first++;
        }
        j->logs[j->log_next % JOBHOST_LOG_LINES_MAX] =
            (struct jobhost_log_line){.index = w->index, .sealed = copy, .size = size};
        j->log_next++;
        copy = NULL;
    }
    pthread_mutex_unlock(&jh->mu);
    free(copy);
}

/* ---- threads ---- */

/* Relays one queued bundle at a time: the enclave answers READY or refuses within a step. */
static void *provisioner_main(void *arg)
{
    struct jobhost *jh = arg;
    pthread_mutex_lock(&jh->mu);
    while (!jh->closing) {
        struct hworker *w = NULL;
        for (unsigned i = 0; i < jh->cfg.jobs_max && !w; i++) {
            struct hjob *j = &jh->jobs[i];
            if (!j->used || j->ended)
                continue;
            for (unsigned k = 0; k < j->workers && !w; k++)
                if (j->w[k].state == W_PROVISIONING && j->w[k].bundle)
                    w = &j->w[k];
        }
        if (!w) {
            pthread_cond_wait(&jh->cv, &jh->mu);
            continue;
        }
        uint8_t *bundle = w->bundle;
        size_t size = w->bundle_size;
        w->bundle = NULL;
        w->in_flight = true;
        struct enclave_host *h = pool_slot_host(w->slot);
        pthread_mutex_unlock(&jh->mu);
        char why[160] = "";
        psl_err err = enclave_host_provision(h, bundle, size, why, sizeof why,
                                             (int)jh->cfg.step_timeout_ms);
        free(bundle);
        pthread_mutex_lock(&jh->mu);
        w->in_flight = false;
        if (w->state != W_PROVISIONING)
            continue; /* the monitor failed it meanwhile (deadline) */
        if (err == PSL_OK) {
            w->state = W_RUNNING;
        } else {
            if (err == PSL_ERR_AUTH)
                jh->st.provision_refused++;
            fail_worker_locked(jh, w, err, "provisioning %s: %s",
                               err == PSL_ERR_AUTH ? "refused by the enclave" : "failed",
                               why[0] ? why : psl_strerror(err));
        }
    }
    pthread_mutex_unlock(&jh->mu);
    return NULL;
}

/* One pass over a job (under the lock); returns true when it has just ended. */
static bool monitor_job_locked(struct jobhost *jh, struct hjob *j, uint64_t now)
{
    for (unsigned i = 0; i < j->workers; i++) {
        struct hworker *w = &j->w[i];
        if (terminal(w->state) || !w->slot)
            continue;
        struct enclave_host *h = pool_slot_host(w->slot);
        enclave_host_stats(h, w->stats);
        if (w->state == W_RUNNING) {
            psl_err job_err;
            uint8_t *sealed;
            size_t sealed_size;
            psl_err err = enclave_host_wait_result(h, 0, &job_err, &sealed, &sealed_size);
            if (err == PSL_OK) {
                w->result = sealed;
                w->result_size = sealed_size;
                w->job_err = job_err;
                w->state = W_DONE;
                continue;
            }
            if (err == PSL_ERR_PEER_DEAD) {
                fail_worker_locked(jh, w, PSL_ERR_PEER_DEAD, "enclave %s", enclave_host_exit_reason(h));
                continue;
            }
        } else if (w->state == W_WAITING && enclave_host_dead(h)) {
            fail_worker_locked(jh, w, PSL_ERR_PEER_DEAD, "enclave %s before it was provisioned",
                               enclave_host_exit_reason(h));
            continue;
        }
        if (w->state == W_WAITING &&
            now - j->created_ns > (uint64_t)jh->cfg.provision_wait_ms * 1000000u)
            fail_worker_locked(jh, w, PSL_ERR_TIMEOUT, "no bundle within %u s of the attestation",
                               jh->cfg.provision_wait_ms / 1000);
        else if ((w->state == W_PROVISIONING || (w->state == W_RUNNING && !j->function[0])) &&
                 j->first_bundle_ns &&
                 now - j->first_bundle_ns > (uint64_t)j->timeout_ms * 1000000u)
            fail_worker_locked(jh, w, PSL_ERR_TIMEOUT, "no result within the job's time limit (%u s)",
                               j->timeout_ms / 1000);
    }
    enum jobhost_state s = job_state(j);
    if (s != JOB_DONE && s != JOB_FAILED)
        return false;
    j->ended = true;
    j->ended_ns = now;
    if (s == JOB_DONE)
        jh->st.jobs_done++;
    else
        jh->st.jobs_failed++;
    if (j->first_bundle_ns) {
        jh->st.run_ns_sum += now - j->first_bundle_ns;
        jh->st.run_count++;
    }
    for (unsigned i = 0; i < j->workers; i++) {
        jh->st.ops += j->w[i].stats[RING_STAT_OPS];
        jh->st.records += j->w[i].stats[RING_STAT_RECORDS];
        jh->st.bytes += j->w[i].stats[RING_STAT_BYTES];
        if (j->w[i].slot)
            jh->st.relay_dropped += enclave_host_relay_dropped(pool_slot_host(j->w[i].slot));
    }
    char hex[2 * JOBHOST_ID_SIZE + 1];
    hex_encode(hex, j->id, JOBHOST_ID_SIZE);
    LOG_INFO("jobhost", "msg=\"job ended\" job=%s state=%s workers=%u", hex, job_states[s],
             j->workers);
    return true;
}

static void *monitor_main(void *arg)
{
    struct jobhost *jh = arg;
    pthread_mutex_lock(&jh->mu);
    while (!jh->closing) {
        uint64_t now = clock_mono_ns();
        struct hjob *release = NULL;
        for (unsigned i = 0; i < jh->cfg.jobs_max && !release; i++) {
            struct hjob *j = &jh->jobs[i];
            if (!j->used || j->released)
                continue;
            if (!j->ended && !monitor_job_locked(jh, j, now))
                continue;
            bool in_flight = false;
            for (unsigned k = 0; k < j->workers; k++)
                in_flight |= j->w[k].in_flight;
            if (!in_flight)
                release = j;
        }
        if (release) {
            /* Stop its enclaves without the lock: their receive threads may be waiting for it. */
            struct pool_slot *slots[JOBHOST_WORKERS_MAX];
            unsigned n = release->workers;
            for (unsigned i = 0; i < n; i++) {
                slots[i] = release->w[i].slot;
                release->w[i].slot = NULL;
            }
            pthread_mutex_unlock(&jh->mu);
            for (unsigned i = 0; i < n; i++)
                pool_release(jh->cfg.pool, slots[i], RELEASE_TIMEOUT_MS);
            pthread_mutex_lock(&jh->mu);
            release->released = true;
            continue;
        }
        struct timespec ts;
        clock_deadline(&ts, (uint64_t)MONITOR_TICK_MS * 1000000u);
        pthread_cond_timedwait(&jh->cv, &jh->mu, &ts);
    }
    pthread_mutex_unlock(&jh->mu);
    return NULL;
}

/* ---- API ---- */

psl_err jobhost_open(struct jobhost **out, const struct jobhost_config *cfg)
{
    struct jobhost *jh = calloc(1, sizeof *jh);
    if (!jh)
        return PSL_ERR_NOMEM;
    jh->cfg = *cfg;
    if (!jh->cfg.jobs_max)
        jh->cfg.jobs_max = JOBHOST_JOBS_MAX_DEFAULT;
    if (!jh->cfg.provision_wait_ms)
        jh->cfg.provision_wait_ms = 120000;
    if (!jh->cfg.step_timeout_ms)
        jh->cfg.step_timeout_ms = 10000;
    jh->jobs = calloc(jh->cfg.jobs_max, sizeof *jh->jobs);
    if (!jh->jobs) {
        free(jh);
        return PSL_ERR_NOMEM;
    }
    pthread_mutex_init(&jh->mu, NULL);
    pthread_cond_init(&jh->cv, NULL);
    if (pthread_create(&jh->monitor, NULL, monitor_main, jh) != 0) {
        jobhost_close(jh);
        return PSL_ERR_NOMEM;
    }
    jh->monitor_running = true;
    if (pthread_create(&jh->provisioner, NULL, provisioner_main, jh) != 0) {
        jobhost_close(jh);
        return PSL_ERR_NOMEM;
    }
    jh->provisioner_running = true;
    *out = jh;
    return PSL_OK;
}

void jobhost_close(struct jobhost *jh)
{
    if (!jh)
        return;
    pthread_mutex_lock(&jh->mu);
    jh->closing = true;
    pthread_cond_broadcast(&jh->cv);
    pthread_mutex_unlock(&jh->mu);
    if (jh->monitor_running)
        pthread_join(jh->monitor, NULL);
    if (jh->provisioner_running)
        pthread_join(jh->provisioner, NULL);
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++) {
        struct hjob *j = &jh->jobs[i];
        if (!j->used)
            continue;
        for (unsigned k = 0; k < j->workers; k++) {
            pool_release(jh->cfg.pool, j->w[k].slot, 0);
            j->w[k].slot = NULL;
        }
        job_free_locked(j);
    }
    free(jh->jobs);
    pthread_mutex_destroy(&jh->mu);
    pthread_cond_destroy(&jh->cv);
    free(jh);
}

/* A free entry: an unused one, or the oldest released job (forgotten). */
static struct hjob *entry_locked(struct jobhost *jh)
{
    struct hjob *oldest = NULL;
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++) {
        struct hjob *j = &jh->jobs[i];
        if (!j->used)
            return j;
        if (j->released && (!oldest || j->ended_ns < oldest->ended_ns))
            oldest = j;
    }
    if (oldest)
        job_free_locked(oldest);
    return oldest;
}

psl_err jobhost_create(struct jobhost *jh, const struct jobhost_create *jc,
                       uint8_t id[JOBHOST_ID_SIZE], struct jobhost_attestation *out, char *why,
                       size_t why_cap)
{
    if (jc->workers < 1 || jc->workers > JOBHOST_WORKERS_MAX) {
        snprintf(why, why_cap, "workers must be 1..%u on one node", JOBHOST_WORKERS_MAX);
        return PSL_ERR_INVALID_ARG;
    }
    if (jc->timeout_ms > JOBHOST_TIMEOUT_MS_MAX) {
        snprintf(why, why_cap, "the time limit is more than %u s", JOBHOST_TIMEOUT_MS_MAX / 1000);
        return PSL_ERR_INVALID_ARG;
    }
    struct capsule_meta meta;
    psl_err err = meta_decode(&meta, jc->meta, jc->meta_size);
    if (err) {
        snprintf(why, why_cap, "the capsule metadata does not verify: %s", psl_strerror(err));
        return err;
    }
    if (meta.measurement_count && !meta_allows_measurement(&meta, jh->cfg.measurement)) {
        snprintf(why, why_cap, "the capsule does not admit this node's enclave measurement");
        return PSL_ERR_ATTEST_MEASUREMENT;
    }
    for (unsigned s = 0; s < jh->cfg.server_count; s++) {
        if (meta_replica_index(&meta, jh->cfg.server_pks[s]) < 0)
            continue;
        if ((err = capsuled_serve(jh->cfg.servers[s], jc->meta, jc->meta_size))) {
            snprintf(why, why_cap, "an embedded storage server cannot serve the capsule: %s",
                     psl_strerror(err));
            return err;
        }
    }
    struct hworker *w = calloc(jc->workers, sizeof *w);
    struct jobhost_log_line *logs = calloc(JOBHOST_LOG_LINES_MAX, sizeof *logs);
    struct pool_slot *slots[JOBHOST_WORKERS_MAX];
    if (!w || !logs) {
        free(w);
        free(logs);
        snprintf(why, why_cap, "out of memory");
        return PSL_ERR_NOMEM;
    }
    uint64_t t0 = clock_mono_ns();
    if ((err = pool_take(jh->cfg.pool, jc->workers, slots, TAKE_TIMEOUT_MS))) {
        struct pool_stats ps;
        pool_get_stats(jh->cfg.pool, &ps);
        if (err == PSL_ERR_BUSY)
            snprintf(why, why_cap, "not enough enclaves free on this node for %u workers",
                     jc->workers);
        else
            snprintf(why, why_cap, "no enclaves could be started: %s",
                     ps.last_failure[0] ? ps.last_failure : psl_strerror(err));
        free(w);
        free(logs);
        return err;
    }
    pthread_mutex_lock(&jh->mu);
    if (jc->function && function_find_locked(jh, jc->function)) {
        pthread_mutex_unlock(&jh->mu);
        for (unsigned i = 0; i < jc->workers; i++)
            pool_release(jh->cfg.pool, slots[i], 0);
        free(w);
        free(logs);
        snprintf(why, why_cap, "a function named %s runs on this node", jc->function);
        return PSL_ERR_EXISTS;
    }
    struct hjob *j = entry_locked(jh);
    if (!j) {
        pthread_mutex_unlock(&jh->mu);
        for (unsigned i = 0; i < jc->workers; i++)
            pool_release(jh->cfg.pool, slots[i], 0);
        free(w);
        free(logs);
        snprintf(why, why_cap, "too many jobs on this node (%u kept, none finished)",
                 jh->cfg.jobs_max);
        return PSL_ERR_BUSY;
    }
    j->used = true;
    j->jh = jh;
    rng_bytes(j->id, JOBHOST_ID_SIZE);
    memcpy(j->meta_raw, jc->meta, jc->meta_size);
    j->meta_size = jc->meta_size;
    memcpy(j->capsule, meta.name, HASH_SIZE);
    j->workers = jc->workers;
    j->w = w;
    j->logs = logs;
    j->timeout_ms = jc->timeout_ms ? jc->timeout_ms : JOBHOST_TIMEOUT_MS_DEFAULT;
    if (jc->function)
        snprintf(j->function, sizeof j->function, "%s", jc->function);
    j->created_ns = t0;
    for (unsigned i = 0; i < jc->workers; i++) {
        w[i].job = j;
        w[i].slot = slots[i];
        w[i].index = jc->indices ? jc->indices[i] : i;
        w[i].state = W_ATTESTING;
        pool_slot_set_owner(slots[i], &w[i]);
    }
    memcpy(id, j->id, JOBHOST_ID_SIZE);
    jh->st.jobs_created++;
    pthread_mutex_unlock(&jh->mu);
    /* The reports, without the lock. The entry is not `ended`, so the monitor leaves attesting
     * slots alone; nobody else knows the id yet. */
    for (unsigned i = 0; i < jc->workers; i++) {
        struct jobhost_attestation *a = &out[i];
        a->size = 0;
        a->why[0] = '\0';
        struct enclave_report rp;
        err = enclave_host_report(pool_slot_host(slots[i]), jc->nonces[i], &rp,
                                  (int)jh->cfg.step_timeout_ms);
        if (!err)
            err = attest_sim_message(jh->cfg.platform, jh->cfg.measurement, rp.report_data,
                                     rp.sign_pk, rp.kx_pk, a->msg, sizeof a->msg, &a->size);
        pthread_mutex_lock(&jh->mu);
        if (err) {
            a->size = 0;
            snprintf(a->why, sizeof a->why, "no attestation report: %s%s%s", psl_strerror(err),
                     enclave_host_dead(pool_slot_host(slots[i])) ? ": enclave " : "",
                     enclave_host_exit_reason(pool_slot_host(slots[i])));
            fail_worker_locked(jh, &w[i], err, "%s", a->why);
        } else {
            w[i].state = W_WAITING;
        }
        pthread_mutex_unlock(&jh->mu);
    }
    uint64_t t1 = clock_mono_ns();
    pthread_mutex_lock(&jh->mu);
    jh->st.attest_ns_sum += t1 - t0;
    jh->st.attest_count++;
    pthread_mutex_unlock(&jh->mu);
    return PSL_OK;
}

psl_err jobhost_provision(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE],
                          const uint8_t *const *bundles, const size_t *sizes, unsigned count,
                          char *why, size_t why_cap)
{
    uint8_t *copies[JOBHOST_WORKERS_MAX] = {0};
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = find_locked(jh, id);
    psl_err err = PSL_OK;
    if (!j) {
        snprintf(why, why_cap, "no such job");
        err = PSL_ERR_NOT_FOUND;
        goto out;
    }
    if (count != j->workers) {
        snprintf(why, why_cap, "bundles has %u entries; the job has %u workers on this node", count,
                 j->workers);
        err = PSL_ERR_INVALID_ARG;
        goto out;
    }
    for (unsigned i = 0; i < count; i++) {
        if (!bundles[i])
            continue;
        if (j->ended || j->w[i].state != W_WAITING) {
            snprintf(why, why_cap, "worker slot %u is not waiting for a bundle (it is %s)", i,
                     j->ended && !terminal(j->w[i].state) ? "ended" : w_states[j->w[i].state]);
            err = PSL_ERR_EXISTS;
            goto out;
        }
        copies[i] = malloc(sizes[i] ? sizes[i] : 1);
        if (!copies[i]) {
            snprintf(why, why_cap, "out of memory");
            err = PSL_ERR_NOMEM;
            goto out;
        }
        memcpy(copies[i], bundles[i], sizes[i]);
    }
    for (unsigned i = 0; i < count; i++) {
        if (!copies[i])
            continue;
        j->w[i].bundle = copies[i];
        j->w[i].bundle_size = sizes[i];
        j->w[i].state = W_PROVISIONING;
        copies[i] = NULL;
        if (!j->first_bundle_ns)
            j->first_bundle_ns = clock_mono_ns();
    }
    pthread_cond_broadcast(&jh->cv);
out:
    pthread_mutex_unlock(&jh->mu);
    for (unsigned i = 0; i < JOBHOST_WORKERS_MAX; i++)
        free(copies[i]);
    return err;
}

psl_err jobhost_invoke(struct jobhost *jh, const char *name, const uint8_t id[16],
                       const uint8_t *sealed, size_t size, uint32_t timeout_ms, psl_err *inv_err,
                       uint8_t **result, size_t *result_size, uint8_t job_id[JOBHOST_ID_SIZE],
                       char *why, size_t why_cap)
{
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = function_find_locked(jh, name);
    if (!j) {
        pthread_mutex_unlock(&jh->mu);
        snprintf(why, why_cap, "no function named %s runs on this node", name);
        return PSL_ERR_NOT_FOUND;
    }
    struct hworker *w = &j->w[0];
    if (w->state != W_RUNNING || !w->slot) {
        pthread_mutex_unlock(&jh->mu);
        snprintf(why, why_cap, "function %s is not serving (its enclave is %s)", name,
                 w_states[w->state]);
        return PSL_ERR_EXISTS;
    }
    if (j->invoking) {
        pthread_mutex_unlock(&jh->mu);
        snprintf(why, why_cap, "function %s is serving another invocation", name);
        return PSL_ERR_BUSY;
    }
    /* in_flight keeps the monitor from releasing the slot while it is used without the lock. */
    j->invoking = true;
    w->in_flight = true;
    struct enclave_host *h = pool_slot_host(w->slot);
    if (job_id)
        memcpy(job_id, j->id, JOBHOST_ID_SIZE);
    pthread_mutex_unlock(&jh->mu);
    psl_err err = enclave_host_invoke(h, id, sealed, size, inv_err, result, result_size,
                                      (int)(timeout_ms ? timeout_ms
                                                       : JOBHOST_INVOKE_TIMEOUT_MS_DEFAULT));
    pthread_mutex_lock(&jh->mu);
    j->invoking = false;
    w->in_flight = false;
    pthread_cond_broadcast(&jh->cv);
    pthread_mutex_unlock(&jh->mu);
    if (err)
        snprintf(why, why_cap, "the invocation failed: %s%s%s", psl_strerror(err),
                 err == PSL_ERR_PEER_DEAD ? ": enclave " : "",
                 err == PSL_ERR_PEER_DEAD ? enclave_host_exit_reason(h) : "");
    return err;
}

psl_err jobhost_function_stop(struct jobhost *jh, const char *name)
{
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = function_find_locked(jh, name);
    if (j)
        fail_worker_locked(jh, &j->w[0], PSL_ERR_CLOSED, "stopped");
    pthread_cond_broadcast(&jh->cv);
    pthread_mutex_unlock(&jh->mu);
    return j ? PSL_OK : PSL_ERR_NOT_FOUND;
}

psl_err jobhost_cancel(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE], unsigned slot,
                       const char *why)
{
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = find_locked(jh, id);
    psl_err err = PSL_OK;
    if (!j)
        err = PSL_ERR_NOT_FOUND;
    else if (slot >= j->workers)
        err = PSL_ERR_INVALID_ARG;
    else if (j->w[slot].state != W_WAITING)
        err = terminal(j->w[slot].state) ? PSL_OK : PSL_ERR_EXISTS;
    else
        fail_worker_locked(jh, &j->w[slot], PSL_ERR_AUTH, "the client did not admit it: %.150s",
                           why);
    pthread_mutex_unlock(&jh->mu);
    return err;
}

psl_err jobhost_status(struct jobhost *jh, const uint8_t id[JOBHOST_ID_SIZE], bool with_results,
                       uint64_t log_from, size_t log_max, struct jobhost_status *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&jh->mu);
    struct hjob *j = find_locked(jh, id);
    if (!j) {
        pthread_mutex_unlock(&jh->mu);
        return PSL_ERR_NOT_FOUND;
    }
    psl_err err = PSL_ERR_NOMEM;
    out->w = calloc(j->workers, sizeof *out->w);
    if (!out->w)
        goto out;
    memcpy(out->id, j->id, JOBHOST_ID_SIZE);
    memcpy(out->capsule, j->capsule, HASH_SIZE);
    out->state = job_state(j);
    out->workers = j->workers;
    uint64_t end = j->ended ? j->ended_ns : clock_mono_ns();
    out->elapsed_s = (double)(end - j->created_ns) / 1e9;
    out->run_s = j->first_bundle_ns ? (double)(end - j->first_bundle_ns) / 1e9 : 0.0;
    for (unsigned i = 0; i < j->workers; i++) {
        const struct hworker *w = &j->w[i];
        struct jobhost_worker_status *o = &out->w[i];
        o->index = w->index;
        o->state = w->state;
        memcpy(o->error, w->error, sizeof o->error);
        o->error_code = w->error_code;
        memcpy(o->stats, w->stats, sizeof o->stats);
        o->job_err = w->job_err;
        if (with_results && w->result) {
            o->result = malloc(w->result_size);
            if (!o->result)
                goto out;
            memcpy(o->result, w->result, w->result_size);
            o->result_size = w->result_size;
        }
    }
    uint64_t from = log_from < j->log_first ? j->log_first : log_from;
    out->log_dropped = log_from < j->log_first ? j->log_first - log_from : 0;
    out->log_next = from;
    if (from < j->log_next && log_max) {
        uint64_t n = j->log_next - from;
        if (n > log_max)
            n = log_max;
        out->logs = calloc((size_t)n, sizeof *out->logs);
        if (!out->logs)
            goto out;
        for (uint64_t s = from; s < from + n; s++) {
            const struct jobhost_log_line *l = &j->logs[s % JOBHOST_LOG_LINES_MAX];
            struct jobhost_log_line *o = &out->logs[out->log_count];
            o->sealed = malloc(l->size ? l->size : 1);
            if (!o->sealed)
                goto out;
            memcpy(o->sealed, l->sealed, l->size);
            o->size = l->size;
            o->index = l->index;
            out->log_count++;
        }
        out->log_next = from + n;
    }
    err = PSL_OK;
out:
    pthread_mutex_unlock(&jh->mu);
    if (err)
        jobhost_status_free(out);
    return err;
}

void jobhost_status_free(struct jobhost_status *s)
{
    if (s->w)
        for (unsigned i = 0; i < s->workers; i++)
            free(s->w[i].result);
    free(s->w);
    for (size_t i = 0; i < s->log_count; i++)
        free(s->logs[i].sealed);
    free(s->logs);
    memset(s, 0, sizeof *s);
}

psl_err jobhost_capsule_meta(struct jobhost *jh, const uint8_t name[HASH_SIZE], uint8_t *out,
                             size_t cap, size_t *out_size)
{
    psl_err err = PSL_ERR_NOT_FOUND;
    pthread_mutex_lock(&jh->mu);
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++) {
        const struct hjob *j = &jh->jobs[i];
        if (!j->used || memcmp(j->capsule, name, HASH_SIZE) != 0)
            continue;
        if (j->meta_size > cap) {
            err = PSL_ERR_TOO_LARGE;
            break;
        }
        memcpy(out, j->meta_raw, j->meta_size);
        *out_size = j->meta_size;
        err = PSL_OK;
        break;
    }
    pthread_mutex_unlock(&jh->mu);
    return err;
}

void jobhost_get_stats(struct jobhost *jh, struct jobhost_stats *out)
{
    pthread_mutex_lock(&jh->mu);
    *out = jh->st;
    memset(out->jobs, 0, sizeof out->jobs);
    for (unsigned i = 0; i < jh->cfg.jobs_max; i++) {
        const struct hjob *j = &jh->jobs[i];
        if (!j->used)
            continue;
        out->jobs[job_state(j)]++;
        if (j->ended)
            continue;
        for (unsigned k = 0; k < j->workers; k++) {
            out->ops += j->w[k].stats[RING_STAT_OPS];
            out->records += j->w[k].stats[RING_STAT_RECORDS];
            out->bytes += j->w[k].stats[RING_STAT_BYTES];
        }
    }
    pthread_mutex_unlock(&jh->mu);
}
