/* clock.h: the time seam. Production reads CLOCK_MONOTONIC and CLOCK_REALTIME; the simulator
 * installs its own source so that runs replay exactly from a seed. */
#ifndef PSL_BASE_CLOCK_H
#define PSL_BASE_CLOCK_H

#include <stdint.h>

struct clock_source {
    uint64_t (*mono_ns)(void *ctx); /* monotonic nanoseconds */
    uint64_t (*wall_ms)(void *ctx); /* Unix epoch milliseconds */
    void *ctx;
};

/* Installs a source; NULL restores the system clocks. The source is borrowed until replaced. */
void clock_set_source(const struct clock_source *src);
uint64_t clock_mono_ns(void);
uint64_t clock_wall_ms(void);

struct timespec;
/* Fills ts with the absolute CLOCK_REALTIME time delay_ns from now: the deadline form that
 * pthread_cond_timedwait takes. Real time, not the seam: it bounds a real thread's sleep. */
void clock_deadline(struct timespec *ts, uint64_t delay_ns);

#endif
