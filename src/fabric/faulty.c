/* faulty.c: a fault-injecting wrapper around any fabric, for tests: seeded loss, duplication
 * and delay (delay reorders, since later messages overtake held ones). Decisions come from a
 * splitmix64 stream of the seed in publish order, so a single-threaded publisher sees the same
 * faults for the same seed. Held messages are released by a timer thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "fabric/fabric.h"

struct held_msg {
    struct held_msg *next;
    uint64_t release_ns;
    size_t size;
    char topic[FABRIC_TOPIC_SIZE_MAX];
    uint8_t data[];
};

struct faulty {
    struct fabric base;
    struct fabric *inner;
    struct fabric_faults cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t rng;
    struct held_msg *held;
    pthread_t timer;
    bool stopping;
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit_draw(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) / 9007199254740992.0;
}

static void *faulty_timer(void *arg)
{
    struct faulty *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping || f->held) {
        uint64_t now = clock_mono_ns();
        struct held_msg **pp = &f->held, *due = NULL;
        while (*pp) {
            if ((*pp)->release_ns <= now || f->stopping) {
                due = *pp;
                *pp = due->next;
                break;
            }
            pp = &(*pp)->next;
        }
        if (due) {
            pthread_mutex_unlock(&f->mu);
            (void)fabric_publish(f->inner, due->topic, due->data, due->size);
            free(due);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        struct timespec ts;
        clock_deadline(&ts, 1000000u);
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static psl_err faulty_publish(struct fabric *base, const char *topic, const uint8_t *data,
                              size_t size)
{
    struct faulty *f = (struct faulty *)base;
    /* Refuse what the inner fabric would refuse, before a message is held back and the error
     * could no longer reach the publisher. */
    if (size > FABRIC_MSG_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (!topic_is_valid(topic))
        return PSL_ERR_INVALID_ARG;
    pthread_mutex_lock(&f->mu);
    double loss = unit_draw(&f->rng), dup = unit_draw(&f->rng), delay = unit_draw(&f->rng);
    uint64_t delay_ms =
        f->cfg.delay_ms_max ? splitmix64(&f->rng) % ((uint64_t)f->cfg.delay_ms_max + 1u) : 0;
    pthread_mutex_unlock(&f->mu);
    if (loss < f->cfg.loss)
        return PSL_OK; /* dropped: the publisher cannot tell, as on a real network */
    int copies = dup < f->cfg.duplicate ? 2 : 1;
    for (int i = 0; i < copies; i++) {
        if (delay < f->cfg.delay) {
            struct held_msg *m = malloc(sizeof *m + size);
            if (!m)
                return PSL_ERR_NOMEM;
            m->size = size;
            strcpy(m->topic, topic);
            if (size)
                memcpy(m->data, data, size);
            m->release_ns = clock_mono_ns() + delay_ms * 1000000u;
            pthread_mutex_lock(&f->mu);
            m->next = f->held;
            f->held = m;
            pthread_cond_signal(&f->cv);
            pthread_mutex_unlock(&f->mu);
        } else {
            psl_err err = fabric_publish(f->inner, topic, data, size);
            if (err)
                return err;
        }
    }
    return PSL_OK;
}

static psl_err faulty_subscribe(struct fabric *base, const char *pattern, fabric_handler h,
                                void *ctx, uint64_t *sub_id)
{
    struct faulty *f = (struct faulty *)base;
    return fabric_subscribe(f->inner, pattern, h, ctx, sub_id);
}

static void faulty_unsubscribe(struct fabric *base, uint64_t sub_id)
{
    struct faulty *f = (struct faulty *)base;
    fabric_unsubscribe(f->inner, sub_id);
}

static psl_err faulty_flush(struct fabric *base)
{
    struct faulty *f = (struct faulty *)base;
    return fabric_flush(f->inner);
}

static void faulty_destroy(struct fabric *base)
{
    struct faulty *f = (struct faulty *)base;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->timer, NULL);
    fabric_destroy(f->inner);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static const struct fabric_ops faulty_ops = {
    .publish = faulty_publish,
    .subscribe = faulty_subscribe,
    .unsubscribe = faulty_unsubscribe,
    .flush = faulty_flush,
    .destroy = faulty_destroy,
};

psl_err fabric_faulty_wrap(struct fabric *inner, const struct fabric_faults *faults,
                           struct fabric **out)
{
    struct faulty *f = calloc(1, sizeof *f);
    if (!f)
        return PSL_ERR_NOMEM;
    f->base.ops = &faulty_ops;
    f->inner = inner;
    f->cfg = *faults;
    f->rng = faults->seed;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->timer, NULL, faulty_timer, f) != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
        return PSL_ERR_NOMEM;
    }
    *out = &f->base;
    return PSL_OK;
}
