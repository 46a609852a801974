/*
 * sd_notify(3) for qsd: see daemon/notify.h for the messages and the
 * watchdog contract.
 */
#include "daemon/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/clock.h"
#include "daemon/log.h"

struct qs_notify {
	struct event_base *base;
	struct qs_notify_ops ops;
	uint64_t watchdog_us; /* 0: systemd set no watchdog */
	struct event *watchdog;
	struct event *status;
	char last_status[QS_NOTIFY_STATUS_MAX];
	bool withheld; /* the last watchdog tick sent no ping */
	bool send_failed;
	bool sync_ready; /* lock and wake initialised */

	/* The extension thread; `what`, `stop` and `running` under `lock`. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stop;
	char what[QS_NOTIFY_STATUS_MAX];
	uint64_t extend_started_us;
	uint64_t extend_max_us;
};

/* Copy `text` into buf, control characters as spaces, cut to fit. */
static void
qs_notify_clean(char *buf, size_t len, const char *text)
{
	size_t i;

	snprintf(buf, len, "%s", text != NULL ? text : "");
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = ' ';
}

/* sd_notify(), logging the first failure (a dead socket is not fatal). */
static int
qs_notify_send(struct qs_notify *n, const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0 && !n->send_failed) {
		n->send_failed = true;
		qs_log_warn("notify_failed", "error=\"%s\"", strerror(-rc));
	}
	return rc;
}

int
qs_notify_format_status(const struct qs_notify_status *st, char *buf, size_t len)
{
	return snprintf(buf, len,
	                "epoch %" PRIu64 ", peers %zu/%zu, %" PRIu64 " batches, %" PRIu64
	                " proofs, storage %s",
	                st->epoch, st->peers_connected, st->peers_total, st->batches, st->proofs,
	                st->storage != NULL ? st->storage : "-");
}

/* The current status line into buf; false when there is no status callback. */
static bool
qs_notify_current_status(struct qs_notify *n, char *buf, size_t len)
{
	struct qs_notify_status st;
	char line[QS_NOTIFY_STATUS_MAX];

	if (n->ops.status == NULL)
		return false;
	memset(&st, 0, sizeof(st));
	n->ops.status(n->ops.arg, &st);
	qs_notify_format_status(&st, line, sizeof(line));
	qs_notify_clean(buf, len, line);
	return true;
}

static void
qs_notify_on_status(evutil_socket_t fd, short what, void *arg)
{
	struct qs_notify *n = arg;
	char line[QS_NOTIFY_STATUS_MAX], msg[QS_NOTIFY_STATUS_MAX + 8];

	if (!qs_notify_current_status(n, line, sizeof(line)) || strcmp(line, n->last_status) == 0)
		return;
	memcpy(n->last_status, line, sizeof(line));
	snprintf(msg, sizeof(msg), "STATUS=%s", line);
	qs_notify_send(n, msg);
}

static void
qs_notify_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct qs_notify *n = arg;
	bool ok = n->ops.healthy == NULL || n->ops.healthy(n->ops.arg) == 1;

	if (!ok) {
		if (!n->withheld)
			qs_log_warn("watchdog_withheld",
			            "interval_us=%" PRIu64 " reason=\"no progress\"",
			            n->watchdog_us);
		n->withheld = true;
		return;
	}
	if (n->withheld)
		qs_log_notice("watchdog_resumed", "interval_us=%" PRIu64, n->watchdog_us);
	n->withheld = false;
	qs_notify_send(n, "WATCHDOG=1");
}

/* The lock and condition variable of the extension thread. */
static int
qs_notify_init_sync(struct qs_notify *n)
{
	pthread_condattr_t attr;
	int rc = -ENOMEM;

	if (pthread_condattr_init(&attr) != 0)
		goto out;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&n->wake, &attr) != 0)
		goto out_attr;
	if (pthread_mutex_init(&n->lock, NULL) != 0) {
		pthread_cond_destroy(&n->wake);
		goto out_attr;
	}
	n->sync_ready = true;
	rc = 0;
out_attr:
	pthread_condattr_destroy(&attr);
out:
	return rc;
}

int
qs_notify_new(struct event_base *base, const struct qs_notify_ops *ops, struct qs_notify **out)
{
	struct qs_notify *n = calloc(1, sizeof(*n));
	uint64_t usec = 0;
	int rc = -ENOMEM;

	if (n == NULL || qs_notify_init_sync(n) != 0)
		goto out;
	n->base = base;
	if (ops != NULL)
		n->ops = *ops;
	if (n->ops.status_interval_ms == 0)
		n->ops.status_interval_ms = QS_NOTIFY_STATUS_INTERVAL_MS;
	if (n->ops.extend_interval_ms == 0)
		n->ops.extend_interval_ms = QS_NOTIFY_EXTEND_INTERVAL_MS;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		n->watchdog_us = usec;
	n->status = event_new(base, -1, EV_PERSIST, qs_notify_on_status, n);
	if (n->status == NULL)
		goto out;
	if (n->watchdog_us > 0) {
		n->watchdog = event_new(base, -1, EV_PERSIST, qs_notify_on_watchdog, n);
		if (n->watchdog == NULL)
			goto out;
	}
	*out = n;
	n = NULL;
	rc = 0;
out:
	qs_notify_free(n);
	return rc;
}

uint64_t
qs_notify_watchdog_usec(const struct qs_notify *n)
{
	return n->watchdog_us;
}

/* ---- start-timeout extension ---- */

static void *
qs_notify_extend_main(void *arg)
{
	struct qs_notify *n = arg;
	uint64_t interval_us = (uint64_t)n->ops.extend_interval_ms * 1000;
	uint64_t extend_us = QS_NOTIFY_EXTEND_FACTOR * interval_us;
	char msg[2 * QS_NOTIFY_STATUS_MAX];
	struct timespec until;
	uint64_t now_us, next_ns;

	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		now_us = qs_clock_mono_us();
		if (now_us - n->extend_started_us >= n->extend_max_us) {
			qs_log_warn("start_timeout_extension_ended",
			            "what=\"%s\" max_us=%" PRIu64
			            " detail=\"systemd's start timeout applies again\"",
			            n->what, n->extend_max_us);
			break;
		}
		snprintf(msg, sizeof(msg),
		         "EXTEND_TIMEOUT_USEC=%" PRIu64 "\nSTATUS=%s (%" PRIu64 " s)", extend_us,
		         n->what, (now_us - n->extend_started_us) / 1000000);
		/* Sending outside the lock would let `what` change under it;
		 * a datagram to a local socket does not block for long. */
		sd_notify(0, msg);
		next_ns = qs_clock_mono_ns() + interval_us * 1000;
		until.tv_sec = (time_t)(next_ns / 1000000000u);
		until.tv_nsec = (long)(next_ns % 1000000000u);
		while (!n->stop && pthread_cond_timedwait(&n->wake, &n->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int
qs_notify_extend_begin(struct qs_notify *n, const char *what, uint64_t max_us)
{
	int rc = 0;

	pthread_mutex_lock(&n->lock);
	qs_notify_clean(n->what, sizeof(n->what), what);
	if (n->running)
		goto out;
	n->stop = false;
	n->extend_started_us = qs_clock_mono_us();
	n->extend_max_us = max_us;
	rc = -pthread_create(&n->thread, NULL, qs_notify_extend_main, n);
	if (rc == 0)
		n->running = true;
	else
		qs_log_warn("start_timeout_extension_failed", "error=\"%s\"", strerror(-rc));
out:
	pthread_mutex_unlock(&n->lock);
	return rc;
}

void
qs_notify_extend_end(struct qs_notify *n)
{
	bool running;

	pthread_mutex_lock(&n->lock);
	running = n->running;
	n->stop = true;
	n->running = false;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
	if (running)
		pthread_join(n->thread, NULL);
}

/* ---- lifecycle ---- */

int
qs_notify_ready(struct qs_notify *n)
{
	char line[QS_NOTIFY_STATUS_MAX], msg[QS_NOTIFY_STATUS_MAX + 32];
	struct timeval tv;
	int rc;

	qs_notify_extend_end(n);
	if (qs_notify_current_status(n, line, sizeof(line))) {
		memcpy(n->last_status, line, sizeof(line));
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", line);
		rc = qs_notify_send(n, msg);
	} else {
		rc = qs_notify_send(n, "READY=1");
	}
	if (n->ops.status != NULL && !evtimer_pending(n->status, NULL)) {
		tv = qs_clock_tv_ms(n->ops.status_interval_ms);
		evtimer_add(n->status, &tv);
	}
	if (n->watchdog != NULL && !evtimer_pending(n->watchdog, NULL)) {
		tv = qs_clock_tv_us(n->watchdog_us / 2);
		evtimer_add(n->watchdog, &tv);
	}
	return rc;
}

int
qs_notify_reloading(struct qs_notify *n)
{
	snprintf(n->last_status, sizeof(n->last_status), "reloading the configuration");
	return qs_notify_send(n, "RELOADING=1\nSTATUS=reloading the configuration");
}

int
qs_notify_stopping(struct qs_notify *n)
{
	qs_notify_extend_end(n);
	if (n->status != NULL)
		evtimer_del(n->status);
	snprintf(n->last_status, sizeof(n->last_status), "stopping");
	return qs_notify_send(n, "STOPPING=1\nSTATUS=stopping");
}

int
qs_notify_status_text(struct qs_notify *n, const char *text)
{
	char msg[QS_NOTIFY_STATUS_MAX + 8];

	qs_notify_clean(n->last_status, sizeof(n->last_status), text);
	snprintf(msg, sizeof(msg), "STATUS=%s", n->last_status);
	return qs_notify_send(n, msg);
}

void
qs_notify_free(struct qs_notify *n)
{
	if (n == NULL)
		return;
	if (n->sync_ready)
		qs_notify_extend_end(n);
	if (n->watchdog != NULL)
		event_free(n->watchdog);
	if (n->status != NULL)
		event_free(n->status);
	if (n->sync_ready) {
		pthread_cond_destroy(&n->wake);
		pthread_mutex_destroy(&n->lock);
	}
	free(n);
}
