/* log.h: levelled key=value logging to stderr (or a sink set by tests).
 * A line looks like `ts=1732790000.123 level=warn comp=capsule msg="..." key=value ...`.
 * Callers pass the key=value tail themselves; secrets must never be passed here. */
#ifndef PSL_BASE_LOG_H
#define PSL_BASE_LOG_H

#include <stdio.h>

enum psl_log_level { PSL_LOG_DEBUG, PSL_LOG_INFO, PSL_LOG_WARN, PSL_LOG_ERROR, PSL_LOG_OFF };

void log_set_level(enum psl_log_level level);
enum psl_log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 when unknown. */
int log_level_parse(const char *s);
/* Sink for log lines; NULL restores stderr. Borrowed until replaced. */
void log_set_sink(FILE *sink);

void log_write(enum psl_log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(comp, ...) log_write(PSL_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...) log_write(PSL_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...) log_write(PSL_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) log_write(PSL_LOG_ERROR, comp, __VA_ARGS__)

#endif
