/* log.c: the key=value logger. One fprintf per line keeps lines from interleaving between
 * threads (stdio locks the stream per call). The time comes from the clock seam so that the
 * simulator's logs carry simulated time. */
#include "base/log.h"

#include <stdarg.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"

static enum psl_log_level log_level = PSL_LOG_INFO;
static FILE *log_sink;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(enum psl_log_level level)
{
    log_level = level;
}

enum psl_log_level log_get_level(void)
{
    return log_level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i <= PSL_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_sink(FILE *sink)
{
    log_sink = sink;
}

void log_write(enum psl_log_level level, const char *comp, const char *fmt, ...)
{
    if (level < log_level || level >= PSL_LOG_OFF)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint64_t ms = clock_wall_ms();
    fprintf(log_sink ? log_sink : stderr, "ts=%llu.%03u level=%s comp=%s %s\n",
            (unsigned long long)(ms / 1000), (unsigned)(ms % 1000), level_names[level], comp, msg);
}

_Noreturn void psl_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "psl: internal invariant broken: %s at %s:%d (this is a bug)\n", expr, file,
            line);
    fflush(stderr);
    __builtin_trap();
}
