/* clock.c: system clocks behind the seam of clock.h. */
#include "base/clock.h"

#include <stddef.h>
#include <time.h>

static const struct clock_source *clock_src;

void clock_set_source(const struct clock_source *src)
{
    clock_src = src;
}

uint64_t clock_mono_ns(void)
{
    if (clock_src)
        return clock_src->mono_ns(clock_src->ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void clock_deadline(struct timespec *ts, uint64_t delay_ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + delay_ns % 1000000000u;
    ts->tv_sec += (time_t)(delay_ns / 1000000000u + ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

uint64_t clock_wall_ms(void)
{
    if (clock_src)
        return clock_src->wall_ms(clock_src->ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
