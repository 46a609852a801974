/*
 * systemd notifications for a Type=notify service (sd_notify(3)): readiness,
 * a one-line STATUS, start-timeout extension during a long recovery, reload,
 * stop, and the watchdog.
 *
 * Messages. Each function below sends one datagram to $NOTIFY_SOCKET; when
 * that variable is unset (qsd started by hand) nothing is sent and nothing
 * fails. The datagrams, exactly:
 *   qs_notify_extend_begin()  "EXTEND_TIMEOUT_USEC=<3 intervals>\nSTATUS=<what> (<s> s)"
 *                             now and then once per extend interval
 *   qs_notify_ready()         "READY=1\nSTATUS=<status line>"
 *   status timer              "STATUS=<status line>" when the line changed
 *   qs_notify_status_text()   "STATUS=<text>"
 *   qs_notify_reloading()     "RELOADING=1\nSTATUS=reloading the configuration"
 *   qs_notify_stopping()      "STOPPING=1\nSTATUS=stopping"
 *   watchdog timer            "WATCHDOG=1"
 * The status line is qs_notify_format_status()'s: "epoch 3, peers 2/3,
 * 1200 batches, 40 proofs, storage ok". A reload is RELOADING=1 followed by
 * READY=1 (qs_notify_ready() again); systemd 252 needs no MONOTONIC_USEC.
 *
 * Watchdog. When systemd set WATCHDOG_USEC for this process
 * (sd_watchdog_enabled()), qs_notify_ready() arms a libevent timer at half
 * the interval. Each tick calls ops->healthy(ops->arg) and sends WATCHDOG=1
 * only when it returns 1. The timer runs on the event loop, so a loop that is
 * blocked sends nothing and systemd kills the process after the interval;
 * healthy() covers the rest (the writer thread making progress). The first
 * tick that withholds the ping and the first that sends it again are logged.
 *
 * Start timeout. systemd's watchdog starts only once READY=1 was sent; until
 * then TimeoutStartSec= applies. Recovery runs before the event loop, so
 * qs_notify_extend_begin() starts a thread that sends EXTEND_TIMEOUT_USEC
 * every extend interval until qs_notify_extend_end(), at most for the
 * `max_us` given: a recovery that takes longer than that is left to
 * systemd's timeout.
 *
 * Threads. qs_notify_new(), _ready(), _reloading(), _stopping(),
 * _status_text() and _free() run on the event loop's thread (or before the
 * loop runs); the callbacks are called there. The extend thread only sends
 * datagrams.
 */
#ifndef QS_DAEMON_NOTIFY_H
#define QS_DAEMON_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define QS_NOTIFY_STATUS_INTERVAL_MS 2000 /* STATUS refresh, when it changed */
#define QS_NOTIFY_EXTEND_INTERVAL_MS 5000 /* EXTEND_TIMEOUT_USEC period */
#define QS_NOTIFY_EXTEND_FACTOR      3    /* each extension covers 3 periods */
#define QS_NOTIFY_STATUS_MAX         256  /* a STATUS line, NUL included */

struct event_base;
struct qs_notify;

/* What the STATUS line shows; filled in by ops->status. */
struct qs_notify_status {
	uint64_t epoch;
	size_t peers_connected; /* other validators with a usable connection */
	size_t peers_total;     /* other validators */
	uint64_t batches;       /* batches held (stored and durable) */
	uint64_t proofs;        /* proofs held */
	const char *storage;    /* "ok", "full", "failed", "recovering"; NULL: "-" */
};

struct qs_notify_ops {
	/*
	 * Progress check before each WATCHDOG=1: 1 when the loop and the
	 * writer make progress (a full disk is degraded, not hung), anything
	 * else to withhold the ping. NULL: always 1.
	 */
	int (*healthy)(void *arg);
	/* Fill in *st for the STATUS line (zeroed before the call). NULL: no
	 * STATUS line beyond READY=1. */
	void (*status)(void *arg, struct qs_notify_status *st);
	void *arg;
	/* Periods; 0 takes the QS_NOTIFY_* defaults (tests shorten them). */
	uint32_t status_interval_ms;
	uint32_t extend_interval_ms;
};

/*
 * Creates the notifier on `base` (borrowed; must outlive it); `ops` is
 * copied, ops->arg borrowed. Reads the watchdog settings of the environment
 * (WATCHDOG_USEC, WATCHDOG_PID) and leaves them set. Sends nothing. Returns
 * 0 and sets *out (free with qs_notify_free()), or -ENOMEM.
 */
int qs_notify_new(struct event_base *base, const struct qs_notify_ops *ops, struct qs_notify **out);

/* The watchdog interval systemd asked for, in microseconds; 0 when none. */
uint64_t qs_notify_watchdog_usec(const struct qs_notify *n);

/*
 * Writes the one-line status of `st` into buf (len bytes, cut if shorter):
 * "epoch E, peers C/T, B batches, P proofs, storage S". Returns the length
 * snprintf() would have written.
 */
int qs_notify_format_status(const struct qs_notify_status *st, char *buf, size_t len);

/*
 * Starts sending EXTEND_TIMEOUT_USEC (QS_NOTIFY_EXTEND_FACTOR extend
 * intervals) with "STATUS=<what> (<seconds> s)" now and every extend
 * interval, from a thread, until qs_notify_extend_end() or until `max_us`
 * passed since the first call. Calling it again while it runs replaces
 * `what` (copied, cut at QS_NOTIFY_STATUS_MAX) and keeps the deadline.
 * Returns 0, or -errno when the thread cannot be started (nothing is sent
 * then; the start timeout stays systemd's).
 */
int qs_notify_extend_begin(struct qs_notify *n, const char *what, uint64_t max_us);

/* Stops the extension thread and waits for it. No-op when not running. */
void qs_notify_extend_end(struct qs_notify *n);

/*
 * READY=1 with the status line, after recovery, the database open and every
 * listener bound; also the end of a reload. Stops the extension thread,
 * arms the status timer and, when systemd enabled it, the watchdog timer.
 * Returns what sd_notify() returned (> 0 sent, 0 no NOTIFY_SOCKET, -errno).
 */
int qs_notify_ready(struct qs_notify *n);

/* RELOADING=1 before a reload is applied; qs_notify_ready() ends it.
 * Returns as qs_notify_ready(). */
int qs_notify_reloading(struct qs_notify *n);

/*
 * STOPPING=1 when a stop begins. The status timer stops (the line stays
 * "stopping"); the watchdog keeps pinging while the drain runs on the loop.
 * Returns as qs_notify_ready().
 */
int qs_notify_stopping(struct qs_notify *n);

/* STATUS=<text>, for what the status line cannot say (control characters
 * become spaces; cut at QS_NOTIFY_STATUS_MAX). Returns as qs_notify_ready(). */
int qs_notify_status_text(struct qs_notify *n, const char *text);

/* Stops the timers and the extension thread. Accepts NULL. */
void qs_notify_free(struct qs_notify *n);

#endif
