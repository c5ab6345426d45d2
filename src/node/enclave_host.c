/* enclave_host.c: the host side of one enclave (see enclave_host.h). One receive thread reads
 * the enclave's outbound ring and acts on each message; fabric handlers write the inbound ring.
 * Deadlock freedom: fabric handlers never wait for ring space (a full inbound ring drops the
 * fabric message, which the fabric is allowed to do and SCL repairs by re-fetching), so the
 * receive thread's publishes, which may wait for the fabric, can always complete. */
#include "node/enclave_host.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "enclave/confine.h"
#include "enclave/enclave.h"
#include "ring/ring.h"

#define RX_POLL_MS 50
#define RX_BUF_SIZE (PSL_MSG_SIZE_MAX + 4096u)

struct enclave_host {
    struct enclave_host_config cfg;
    char name[32];
    struct fabric *fabric;
    struct ring_chan ch;
    pthread_mutex_t tx_mu; /* one producer on the inbound ring */
    pid_t pid;             /* process mode; 0 in thread mode */
    pthread_t thread;      /* thread mode: the enclave */
    bool thread_running;
    struct ring_chan ech; /* thread mode: the enclave's side of the channel */
    pthread_t rx;
    bool rx_running;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hello, have_report, ready, have_result, dead, stopping;
    uint64_t errors_seen;
    struct enclave_report report;
    uint8_t capsule[HASH_SIZE], writer[HASH_SIZE], requester[HASH_SIZE];
    psl_err job_err;
    uint8_t *result;
    size_t result_size;
    uint64_t stats[RING_STATS_COUNT];
    char last_error[512];
    /* leader replies: the newest nonce and bundle, for the worker named */
    bool have_lnonce, have_lbundle;
    uint32_t lworker;
    uint8_t lnonce[32];
    uint8_t *lbundle;
    size_t lbundle_size;
    /* function enclaves: the answer to the invocation waited for (one at a time) */
    bool have_inv;
    uint8_t inv_id[16];
    psl_err inv_err;
    uint8_t *inv_result;
    size_t inv_result_size;
    char exit_reason[128];
    psl_err thread_err;

    char t_rec[FABRIC_TOPIC_SIZE_MAX], t_req[FABRIC_TOPIC_SIZE_MAX];
    uint64_t subs[3];
    size_t sub_count;
    _Atomic uint64_t relay_dropped;
};

/* ---- inbound: fabric to enclave ---- */

static psl_err send_in(struct enclave_host *h, uint32_t type, const uint8_t *data, size_t size,
                       int timeout_ms)
{
    pthread_mutex_lock(&h->tx_mu);
    psl_err err = ring_send(&h->ch.tx, type, data, size, timeout_ms);
    pthread_mutex_unlock(&h->tx_mu);
    if (!err && h->cfg.on_tap)
        h->cfg.on_tap(h->cfg.tap_ctx, 0, type, data, size);
    return err;
}

static void relay(struct enclave_host *h, uint32_t type, const uint8_t *data, size_t size)
{
    if (send_in(h, type, data, size, 0) != PSL_OK)
        atomic_fetch_add(&h->relay_dropped, 1);
}

static void on_rec(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    relay(ctx, RING_H2E_RECORD, data, size);
}

static void on_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    relay(ctx, RING_H2E_ACK, data, size);
}

static void on_rep(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    relay(ctx, RING_H2E_REPLY, data, size);
}

/* Subscribes the capsule's topics for the enclave's ids (from READY). */
static psl_err subscribe_topics(struct enclave_host *h)
{
    char whex[2 * HASH_SIZE + 1], rhex[2 * HASH_SIZE + 1];
    char t_ack[FABRIC_TOPIC_SIZE_MAX], t_rep[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, h->writer, HASH_SIZE);
    hex_encode(rhex, h->requester, HASH_SIZE);
    topic_capsule(h->t_rec, h->capsule, "rec", NULL);
    topic_capsule(h->t_req, h->capsule, "req", NULL);
    topic_capsule(t_ack, h->capsule, "ack", whex);
    topic_capsule(t_rep, h->capsule, "rep", rhex);
    psl_err err;
    if ((err = fabric_subscribe(h->fabric, h->t_rec, on_rec, h, &h->subs[h->sub_count])))
        return err;
    h->sub_count++;
    if ((err = fabric_subscribe(h->fabric, t_ack, on_ack, h, &h->subs[h->sub_count])))
        return err;
    h->sub_count++;
    if ((err = fabric_subscribe(h->fabric, t_rep, on_rep, h, &h->subs[h->sub_count])))
        return err;
    h->sub_count++;
    return PSL_OK;
}

/* ---- outbound: the enclave's messages ---- */

static void set_error(struct enclave_host *h, const uint8_t *data, size_t size)
{
    /* err u16, then text: printable ASCII only reaches our logs. */
    size_t n = 0;
    if (size >= 2) {
        const uint8_t *t = data + 2;
        size_t len = size - 2;
        for (size_t i = 0; i < len && n + 1 < sizeof h->last_error; i++) {
            if (t[i] >= 0x20 && t[i] < 0x7f)
                h->last_error[n++] = (char)t[i];
            else
                h->last_error[n++] = '?';
        }
    }
    h->last_error[n] = '\0';
    h->errors_seen++;
}

static void handle(struct enclave_host *h, uint32_t type, const uint8_t *data, size_t size)
{
    if (h->cfg.on_tap)
        h->cfg.on_tap(h->cfg.tap_ctx, 1, type, data, size);
    pthread_mutex_lock(&h->mu);
    switch (type) {
    case RING_E2H_HELLO:
        if (size == RING_HELLO_SIZE)
            h->hello = true;
        break;
    case RING_E2H_REPORT:
        if (size == RING_REPORT_SIZE) {
            memcpy(h->report.report_data, data, 64);
            memcpy(h->report.sign_pk, data + 64, SIGN_PK_SIZE);
            memcpy(h->report.kx_pk, data + 96, KX_PK_SIZE);
            h->have_report = true;
        }
        break;
    case RING_E2H_READY:
        if (size == RING_READY_SIZE && !h->ready) {
            memcpy(h->capsule, data, HASH_SIZE);
            memcpy(h->writer, data + 32, HASH_SIZE);
            memcpy(h->requester, data + 64, HASH_SIZE);
            pthread_mutex_unlock(&h->mu);
            psl_err err = subscribe_topics(h);
            pthread_mutex_lock(&h->mu);
            if (err)
                snprintf(h->last_error, sizeof h->last_error, "host: subscribe failed: %s",
                         psl_strerror(err));
            h->ready = err == PSL_OK;
            if (err)
                h->errors_seen++;
        }
        break;
    case RING_E2H_PUBLISH:
    case RING_E2H_REQUEST: {
        bool ok = h->ready;
        const char *topic = type == RING_E2H_PUBLISH ? h->t_rec : h->t_req;
        pthread_mutex_unlock(&h->mu);
        if (ok)
            (void)fabric_publish(h->fabric, topic, data, size);
        return;
    }
    case RING_E2H_ALERT:
        LOG_WARN("enclave", "msg=\"fork detected by enclave\" enclave=%s", h->name);
        break;
    case RING_E2H_LOG:
        if (size >= 1) {
            pthread_mutex_unlock(&h->mu);
            if (data[0] & RING_LOG_SEALED) {
                if (h->cfg.on_sealed_log)
                    h->cfg.on_sealed_log(h->cfg.log_ctx, h->name, data + 1, size - 1);
            } else if (h->cfg.on_log) {
                h->cfg.on_log(h->cfg.log_ctx, h->name, (const char *)data + 1, size - 1);
            }
            return;
        }
        break;
    case RING_E2H_RESULT:
        if (size >= 2 && !h->have_result) {
            h->job_err = (psl_err)(data[0] | (data[1] << 8));
            h->result = malloc(size - 2 + 1);
            if (h->result) {
                memcpy(h->result, data + 2, size - 2);
                h->result_size = size - 2;
            }
            h->have_result = true;
        }
        break;
    case RING_E2H_ERROR:
        set_error(h, data, size);
        break;
    case RING_E2H_LEADER_NONCE:
        if (size == RING_LEADER_NONCE_SIZE) {
            h->lworker = get_le32(data);
            memcpy(h->lnonce, data + 4, 32);
            h->have_lnonce = true;
        }
        break;
    case RING_E2H_LEADER_BUNDLE:
        if (size > 4 && !h->have_lbundle) {
            free(h->lbundle);
            h->lbundle = malloc(size - 4);
            if (h->lbundle) {
                memcpy(h->lbundle, data + 4, size - 4);
                h->lbundle_size = size - 4;
                h->lworker = get_le32(data);
                h->have_lbundle = true;
            }
        }
        break;
    case RING_E2H_INVOKE_RESULT:
        /* Only the answer to the invocation being waited for is kept. */
        if (size >= RING_INVOKE_RESULT_HEAD_SIZE && !h->have_inv &&
            memcmp(data, h->inv_id, sizeof h->inv_id) == 0) {
            free(h->inv_result);
            h->inv_result_size = size - RING_INVOKE_RESULT_HEAD_SIZE;
            h->inv_result = malloc(h->inv_result_size + 1);
            if (h->inv_result)
                memcpy(h->inv_result, data + RING_INVOKE_RESULT_HEAD_SIZE, h->inv_result_size);
            h->inv_err = (psl_err)(data[16] | (data[17] << 8));
            h->have_inv = true;
        }
        break;
    case RING_E2H_STATS:
        if (size == RING_STATS_SIZE)
            for (unsigned i = 0; i < RING_STATS_COUNT; i++)
                h->stats[i] = get_le64(data + 8 * i);
        break;
    default:
        LOG_WARN("enclave", "msg=\"unknown message from enclave\" enclave=%s type=%u", h->name,
                 type);
        break;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Reaps a dead child without blocking; true when it has ended. */
static bool child_ended(struct enclave_host *h)
{
    if (h->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(h->pid, &status, WNOHANG);
    if (r != h->pid)
        return false;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(h->exit_reason, sizeof h->exit_reason, "killed by %s%s", sigabbrev_np(sig) ? "SIG" : "signal ",
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        if (sig == SIGSYS) {
            /* The enclave's exit note names the refused call (a hint: it wrote it). */
            uint32_t note = atomic_load_explicit(ring_note(&h->ch.rx), memory_order_relaxed);
            char what[96] = "a forbidden system call";
            if (note & CONFINE_NOTE_SYSCALL) {
                char name[48];
                confine_syscall_name((int)(note & 0xffffu), name, sizeof name);
                snprintf(what, sizeof what, "forbidden system call %s (%u)", name,
                         note & 0xffffu);
            }
            size_t len = strlen(h->exit_reason);
            snprintf(h->exit_reason + len, sizeof h->exit_reason - len, " (seccomp: %s)", what);
        }
    } else {
        snprintf(h->exit_reason, sizeof h->exit_reason, "exited %d", WEXITSTATUS(status));
    }
    h->pid = -1;
    return true;
}

static void *rx_main(void *arg)
{
    struct enclave_host *h = arg;
    uint8_t *buf = malloc(RX_BUF_SIZE);
    if (!buf)
        return NULL;
    for (;;) {
        uint32_t type;
        size_t size;
        psl_err err = ring_recv(&h->ch.rx, &type, buf, RX_BUF_SIZE, &size, RX_POLL_MS);
        if (err == PSL_OK) {
            handle(h, type, buf, size);
            continue;
        }
        bool end = false;
        if (err == PSL_ERR_TIMEOUT || err == PSL_ERR_NOT_FOUND) {
            pthread_mutex_lock(&h->mu);
            end = h->stopping;
            pthread_mutex_unlock(&h->mu);
            if (child_ended(h))
                end = true;
        } else {
            end = true; /* closed by the enclave, or broken: it is gone for us */
        }
        if (end)
            break;
    }
    free(buf);
    pthread_mutex_lock(&h->mu);
    h->dead = true;
    if (!h->exit_reason[0] && h->pid <= 0 && !h->thread_running)
        snprintf(h->exit_reason, sizeof h->exit_reason, "ended");
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- start, waits, stop ---- */

struct thread_arg {
    struct enclave_host *h;
    struct enclave_config cfg;
};

static void *enclave_thread(void *arg)
{
    struct thread_arg *ta = arg;
    struct enclave_host *h = ta->h;
    struct enclave_config cfg = ta->cfg;
    free(ta);
    h->thread_err = enclave_run(&h->ech.rx, &h->ech.tx, &cfg);
    return NULL;
}

static psl_err spawn_process(struct enclave_host *h)
{
    char fdarg[16], actors[16];
    snprintf(fdarg, sizeof fdarg, "%d", 3);
    snprintf(actors, sizeof actors, "%u", h->cfg.actors ? h->cfg.actors : 1);
    const char *argv[8];
    int n = 0;
    argv[n++] = h->cfg.enclave_path;
    argv[n++] = "--fd";
    argv[n++] = fdarg;
    argv[n++] = "--actors";
    argv[n++] = actors;
    if (h->cfg.no_confine)
        argv[n++] = "--no-confine";
    if (h->cfg.selftest_seccomp)
        argv[n++] = "--selftest-seccomp";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return PSL_ERR_IO;
    if (pid == 0) {
        /* The child keeps only stdio and the ring's memfd, as fd 3. */
        if (h->ch.fd != 3 && dup2(h->ch.fd, 3) < 0)
            _exit(127);
        for (int fd = 4; fd < 1024; fd++)
            close(fd);
        execv(h->cfg.enclave_path, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    h->pid = pid;
    return PSL_OK;
}

psl_err enclave_host_start(struct enclave_host **out, const struct enclave_host_config *cfg,
                           struct fabric *fabric, int timeout_ms)
{
    struct enclave_host *h = calloc(1, sizeof *h);
    if (!h)
        return PSL_ERR_NOMEM;
    h->cfg = *cfg;
    snprintf(h->name, sizeof h->name, "%s", cfg->name ? cfg->name : "enclave");
    h->cfg.name = h->name;
    h->fabric = fabric;
    h->ch.fd = -1;
    h->ech.fd = -1;
    pthread_mutex_init(&h->tx_mu, NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    uint32_t cap = cfg->ring_capacity ? cfg->ring_capacity : PSL_RING_CAPACITY_DEFAULT;
    psl_err err = ring_chan_create(&h->ch, cap);
    if (err)
        goto out_free;
    if (cfg->enclave_path) {
        if ((err = spawn_process(h)))
            goto out_chan;
    } else {
        int fd = dup(h->ch.fd);
        if (fd < 0) {
            err = PSL_ERR_IO;
            goto out_chan;
        }
        if ((err = ring_chan_attach_fd(&h->ech, fd))) {
            close(fd);
            goto out_chan;
        }
        struct thread_arg *ta = malloc(sizeof *ta);
        if (!ta) {
            err = PSL_ERR_NOMEM;
            goto out_chan;
        }
        ta->h = h;
        ta->cfg = (struct enclave_config){.actors = cfg->actors ? cfg->actors : 1,
                                          .tee_type = 1};
        if (pthread_create(&h->thread, NULL, enclave_thread, ta) != 0) {
            free(ta);
            err = PSL_ERR_NOMEM;
            goto out_chan;
        }
        h->thread_running = true;
    }
    if (pthread_create(&h->rx, NULL, rx_main, h) != 0) {
        err = PSL_ERR_NOMEM;
        enclave_host_stop(h, 0);
        return err;
    }
    h->rx_running = true;
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_lock(&h->mu);
    while (!h->hello && !h->dead) {
        struct timespec ts;
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            break;
        clock_deadline(&ts, deadline - now);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    bool ok = h->hello;
    bool dead = h->dead;
    pthread_mutex_unlock(&h->mu);
    if (!ok) {
        enclave_host_stop(h, 0);
        return dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
    }
    *out = h;
    return PSL_OK;
out_chan:
    ring_chan_destroy(&h->ch);
    ring_chan_destroy(&h->ech);
out_free:
    pthread_mutex_destroy(&h->tx_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    return err;
}

/* Waits under h->mu until *flag or death or the deadline. Returns the flag. */
static bool wait_for(struct enclave_host *h, const bool *flag, int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                       : clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!*flag && !h->dead) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_deadline(&ts, deadline - now > 1000000000u ? 1000000000u : deadline - now);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    return *flag;
}

psl_err enclave_host_report(struct enclave_host *h, const uint8_t nonce[32],
                            struct enclave_report *out, int timeout_ms)
{
    pthread_mutex_lock(&h->mu);
    h->have_report = false;
    pthread_mutex_unlock(&h->mu);
    psl_err err = send_in(h, RING_H2E_ATTEST, nonce, 32, timeout_ms);
    if (err)
        return err;
    pthread_mutex_lock(&h->mu);
    bool ok = wait_for(h, &h->have_report, timeout_ms);
    if (ok)
        *out = h->report;
    bool dead = h->dead;
    pthread_mutex_unlock(&h->mu);
    return ok ? PSL_OK : dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
}

psl_err enclave_host_provision(struct enclave_host *h, const uint8_t *sealed, size_t size,
                               char *why, size_t why_cap, int timeout_ms)
{
    pthread_mutex_lock(&h->mu);
    uint64_t errors_before = h->errors_seen;
    pthread_mutex_unlock(&h->mu);
    psl_err err = send_in(h, RING_H2E_PROVISION, sealed, size, timeout_ms);
    if (err)
        return err;
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_lock(&h->mu);
    while (!h->ready && !h->dead && h->errors_seen == errors_before) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_deadline(&ts, deadline - now);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    if (h->ready)
        err = PSL_OK;
    else if (h->errors_seen != errors_before)
        err = PSL_ERR_AUTH;
    else
        err = h->dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
    if (err && why && why_cap)
        snprintf(why, why_cap, "%s", h->errors_seen != errors_before ? h->last_error
                                     : h->dead ? h->exit_reason : "no answer");
    pthread_mutex_unlock(&h->mu);
    return err;
}

psl_err enclave_host_wait_result(struct enclave_host *h, int timeout_ms, psl_err *job_err,
                                 uint8_t **sealed, size_t *sealed_size)
{
    pthread_mutex_lock(&h->mu);
    bool ok = wait_for(h, &h->have_result, timeout_ms);
    psl_err err = PSL_OK;
    if (ok && h->result) {
        *job_err = h->job_err;
        *sealed = h->result;
        *sealed_size = h->result_size;
        h->result = NULL;
    } else if (ok) {
        err = PSL_ERR_NOMEM;
    } else {
        err = h->dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
    }
    pthread_mutex_unlock(&h->mu);
    return err;
}

void enclave_host_stats(struct enclave_host *h, uint64_t out[RING_STATS_COUNT])
{
    pthread_mutex_lock(&h->mu);
    memcpy(out, h->stats, sizeof h->stats);
    pthread_mutex_unlock(&h->mu);
}

const uint8_t *enclave_host_writer(const struct enclave_host *h)
{
    return h->writer;
}

bool enclave_host_dead(struct enclave_host *h)
{
    pthread_mutex_lock(&h->mu);
    bool d = h->dead;
    pthread_mutex_unlock(&h->mu);
    return d;
}

const char *enclave_host_exit_reason(struct enclave_host *h)
{
    return h->exit_reason;
}

const char *enclave_host_last_error(struct enclave_host *h)
{
    return h->last_error;
}

uint64_t enclave_host_relay_dropped(struct enclave_host *h)
{
    return atomic_load(&h->relay_dropped);
}

psl_err enclave_host_leader_nonce(struct enclave_host *h, uint32_t worker, uint8_t nonce[32],
                                  int timeout_ms)
{
    pthread_mutex_lock(&h->mu);
    h->have_lnonce = false;
    pthread_mutex_unlock(&h->mu);
    uint8_t msg[4];
    put_le32(msg, worker);
    psl_err err = send_in(h, RING_H2E_LEADER_NONCE, msg, sizeof msg, timeout_ms);
    if (err)
        return err;
    pthread_mutex_lock(&h->mu);
    bool ok = wait_for(h, &h->have_lnonce, timeout_ms) && h->lworker == worker;
    if (ok)
        memcpy(nonce, h->lnonce, 32);
    bool dead = h->dead;
    pthread_mutex_unlock(&h->mu);
    return ok ? PSL_OK : dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
}

psl_err enclave_host_leader_issue(struct enclave_host *h, uint32_t worker, const uint8_t *msg,
                                  size_t msg_size, uint8_t **sealed, size_t *sealed_size,
                                  char *why, size_t why_cap, int timeout_ms)
{
    uint8_t *buf = malloc(4 + msg_size);
    if (!buf)
        return PSL_ERR_NOMEM;
    put_le32(buf, worker);
    memcpy(buf + 4, msg, msg_size);
    pthread_mutex_lock(&h->mu);
    h->have_lbundle = false;
    uint64_t errors_before = h->errors_seen;
    pthread_mutex_unlock(&h->mu);
    psl_err err = send_in(h, RING_H2E_LEADER_ISSUE, buf, 4 + msg_size, timeout_ms);
    free(buf);
    if (err)
        return err;
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_lock(&h->mu);
    while (!h->have_lbundle && !h->dead && h->errors_seen == errors_before) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_deadline(&ts, deadline - now);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    if (h->have_lbundle && h->lworker == worker) {
        *sealed = h->lbundle;
        *sealed_size = h->lbundle_size;
        h->lbundle = NULL;
        h->have_lbundle = false;
        err = PSL_OK;
    } else if (h->errors_seen != errors_before) {
        err = PSL_ERR_AUTH;
        snprintf(why, why_cap, "%s", h->last_error);
    } else {
        err = h->dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
        snprintf(why, why_cap, "%s", h->dead ? h->exit_reason : "no answer from the leader");
    }
    pthread_mutex_unlock(&h->mu);
    return err;
}

psl_err enclave_host_invoke(struct enclave_host *h, const uint8_t id[16], const uint8_t *sealed,
                            size_t size, psl_err *inv_err, uint8_t **result, size_t *result_size,
                            int timeout_ms)
{
    if (size > RING_H2E_SIZE_MAX - RING_INVOKE_HEAD_SIZE)
        return PSL_ERR_TOO_LARGE;
    uint8_t *buf = malloc(RING_INVOKE_HEAD_SIZE + size);
    if (!buf)
        return PSL_ERR_NOMEM;
    memcpy(buf, id, RING_INVOKE_HEAD_SIZE);
    memcpy(buf + RING_INVOKE_HEAD_SIZE, sealed, size);
    pthread_mutex_lock(&h->mu);
    h->have_inv = false;
    memcpy(h->inv_id, id, sizeof h->inv_id);
    pthread_mutex_unlock(&h->mu);
    psl_err err = send_in(h, RING_H2E_INVOKE, buf, RING_INVOKE_HEAD_SIZE + size, timeout_ms);
    free(buf);
    if (err)
        return err;
    pthread_mutex_lock(&h->mu);
    bool ok = wait_for(h, &h->have_inv, timeout_ms);
    if (ok && (h->inv_result || h->inv_result_size == 0)) {
        *inv_err = h->inv_err;
        *result = h->inv_result;
        *result_size = h->inv_result_size;
        h->inv_result = NULL;
        err = PSL_OK;
    } else if (ok) {
        err = PSL_ERR_NOMEM;
    } else {
        err = h->dead ? PSL_ERR_PEER_DEAD : PSL_ERR_TIMEOUT;
    }
    /* A late answer to this invocation is dropped: no id is awaited any more. */
    h->have_inv = true;
    pthread_mutex_unlock(&h->mu);
    return err;
}

psl_err enclave_host_send_raw(struct enclave_host *h, uint32_t type, const uint8_t *data,
                              size_t size)
{
    return send_in(h, type, data, size, 1000);
}

void enclave_host_stop(struct enclave_host *h, int timeout_ms)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->sub_count; i++)
        fabric_unsubscribe(h->fabric, h->subs[i]);
    h->sub_count = 0;
    (void)send_in(h, RING_H2E_SHUTDOWN, NULL, 0, 0);
    if (h->rx_running) {
        pthread_mutex_lock(&h->mu);
        (void)wait_for(h, &h->dead, timeout_ms);
        h->stopping = true;
        pthread_mutex_unlock(&h->mu);
    }
    if (h->pid > 0) {
        if (!h->dead || timeout_ms == 0)
            kill(h->pid, SIGKILL);
    }
    ring_close(&h->ch.tx);
    ring_close(&h->ch.rx); /* wakes the receive thread now instead of at its next poll */
    if (h->rx_running)
        pthread_join(h->rx, NULL);
    if (h->pid > 0) {
        int status;
        while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR) {
        }
        h->pid = -1;
    }
    if (h->thread_running)
        pthread_join(h->thread, NULL);
    ring_chan_destroy(&h->ech);
    ring_chan_destroy(&h->ch);
    free(h->result);
    free(h->lbundle);
    free(h->inv_result);
    pthread_mutex_destroy(&h->tx_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
