#include "daemon/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QS_LOG_LINE_MAX 2048

static atomic_int qs_log_level = LOG_INFO;

void
qs_log_set_level(int level)
{
	atomic_store_explicit(&qs_log_level, level, memory_order_relaxed);
}

int
qs_log_get_level(void)
{
	return atomic_load_explicit(&qs_log_level, memory_order_relaxed);
}

void
qs_log(int prio, const char *event, const char *fmt, ...)
{
	char line[QS_LOG_LINE_MAX];
	size_t n;
	int len;
	va_list ap;

	if (prio > qs_log_get_level())
		return;
	len = snprintf(line, sizeof(line), "<%d>event=%s", prio, event);
	n = len < 0 ? 0 : (size_t)len;
	if (fmt && n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fmt);
		len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (len > 0)
			n += (size_t)len;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	/* One write per line keeps lines from different threads whole; if
	 * stderr itself fails there is nowhere left to report it. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
