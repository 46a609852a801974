/*
 * The operator's HTTP endpoint (libevent's evhttp), meant for a loopback
 * address such as 127.0.0.1:9464:
 *   GET /metrics   200, the registry in the Prometheus text format 0.0.4
 *   GET /healthz   200 "ok\n", or 503 with one line per reason the health
 *                  callback reports ("storage full\nno quorum of peers\n")
 *   other paths    404; methods other than GET and HEAD get 405 on any path
 * HEAD is answered like GET without the body. Requests are bounded: headers
 * at most QS_HTTP_MAX_HEADERS_BYTES, a body at most QS_HTTP_MAX_BODY_BYTES,
 * and a connection idle for QS_HTTP_TIMEOUT_S seconds is closed.
 *
 * Everything runs on the thread of the event_base given to qs_http_start():
 * the health callback and the registry's callback gauges are called there.
 * A client that disconnects mid-response can raise SIGPIPE; the daemon
 * ignores SIGPIPE process-wide.
 */
#ifndef QS_NET_HTTP_H
#define QS_NET_HTTP_H

#include <stddef.h>

#define QS_HTTP_MAX_HEADERS_BYTES 8192
#define QS_HTTP_MAX_BODY_BYTES    1024
#define QS_HTTP_TIMEOUT_S         10
#define QS_HTTP_REASON_MAX        1024 /* health reasons buffer, NUL included */

struct event_base;
struct qs_metrics;
struct qs_http;

/*
 * Starts serving on `listen`, "A.B.C.D:PORT" or "[IPv6]:PORT" with a numeric
 * address (no host names: nothing is resolved) and a port in 1..65535.
 *
 * `metrics` is rendered for each /metrics request; it and `health_arg` are
 * borrowed and must outlive the listener. `health(health_arg, reasons,
 * reasons_len)` is called for each /healthz request with an empty buffer of
 * reasons_len (QS_HTTP_REASON_MAX) bytes: it returns 1 when healthy, anything
 * else when not, after writing its reasons into the buffer, NUL-terminated,
 * one per line ("storage full\nrecovering\n"; qs_http_reason_add() appends
 * one). The 503 body is those lines, each ending in "\n", with empty lines
 * dropped and other control characters shown as '?'; no reason at all is
 * sent as "unhealthy". A 200 body is always "ok". `health` may be NULL:
 * always healthy.
 *
 * On success returns 0 and sets *out, to be freed with qs_http_free(). On
 * failure *out is untouched, a message naming the address is written to
 * `err` (`errlen` bytes, may be 0) and the result is QS_ECONFIG for a
 * malformed `listen`, -errno when the socket cannot be bound or listened on
 * (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL, ...), or -ENOMEM.
 */
int qs_http_start(struct event_base *base, const char *listen, struct qs_metrics *metrics,
                  int (*health)(void *arg, char *reason, size_t reason_len), void *health_arg,
                  struct qs_http **out, char *err, size_t errlen);

/*
 * Appends one printf-formatted reason line (a "\n" is added) to the
 * NUL-terminated `reasons` buffer of `len` bytes, for health callbacks. A
 * line that does not fit whole is left out, so the body never ends in a cut
 * reason.
 */
void qs_http_reason_add(char *reasons, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Closes the listener and every open HTTP connection. Call it on the event
 * loop's thread (or while the loop is not running), before freeing the
 * event_base. Accepts NULL.
 */
void qs_http_free(struct qs_http *http);

#endif
