/*
 * Logging: one line per event on stderr, "<N>event=NAME key=value ...", where
 * N is the syslog priority so that journald files it at the right level.
 * Safe to call from any thread; each line is a single write(2).
 */
#ifndef QS_DAEMON_LOG_H
#define QS_DAEMON_LOG_H

#include <syslog.h>

/* Lines with a priority above `level` (LOG_ERR .. LOG_DEBUG) are dropped. */
void qs_log_set_level(int level);
int qs_log_get_level(void);

/*
 * Log `event` (a short snake_case name) at syslog priority `prio`, followed
 * by the printf-formatted key=value pairs in fmt (may be NULL). Lines longer
 * than 2 KiB are truncated. Newlines in the output are replaced by spaces.
 */
void qs_log(int prio, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define qs_log_crit(ev, ...)   qs_log(LOG_CRIT, ev, __VA_ARGS__)
#define qs_log_err(ev, ...)    qs_log(LOG_ERR, ev, __VA_ARGS__)
#define qs_log_warn(ev, ...)   qs_log(LOG_WARNING, ev, __VA_ARGS__)
#define qs_log_notice(ev, ...) qs_log(LOG_NOTICE, ev, __VA_ARGS__)
#define qs_log_info(ev, ...)   qs_log(LOG_INFO, ev, __VA_ARGS__)
#define qs_log_debug(ev, ...)  qs_log(LOG_DEBUG, ev, __VA_ARGS__)

#endif
