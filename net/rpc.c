/*
 * The RPC server on a Unix stream socket (see net/rpc.h).
 *
 * A connection is OPEN (reading requests; Hello first) or CLOSING (its last
 * response, a refusal, is being flushed; nothing more is read). Closing it
 * for good detaches its calls and the bufferevent at once, but frees the
 * struct only when no frame loop for it is on the stack (`busy`), so a
 * handler answering a call (which may close the connection as a slow reader)
 * cannot pull the connection from under the loop that called it.
 *
 * Calls. A call sits in its connection's list from ops->request until it is
 * answered; the list is what detaching walks, and its length is what
 * QS_RPC_MAX_OUTSTANDING bounds. A call whose deadline passed stays in the
 * list (the handler still holds it) but is marked expired, so its answer is
 * dropped. A detached call has conn == NULL and points at nothing else.
 */
#include "net/rpc.h"

#include "config/config.h"
#include "core/codec.h"
#include "core/error.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <systemd/sd-daemon.h>

#define QS_RPC_ACCEPT_RETRY_MS 100 /* after accept() failed (EMFILE...) */
#define QS_RPC_MESSAGE_MAX     1024
#define QS_RPC_DETAIL_MAX      256

enum qs_rpc_method {
	QS_RPC_HELLO,
	QS_RPC_GET_PAYLOAD,
	QS_RPC_GET_BATCH,
	QS_RPC_NOTIFY_COMMIT,
	QS_RPC_SUBMIT_BATCH,
	QS_RPC_NEW_EPOCH,
	QS_RPC_GET_STATUS,
	QS_RPC_LIST_BATCHES,
	QS_RPC_LIST_PROOFS,
	QS_RPC_N_METHODS,
};

static const char *const qs_rpc_method_names[QS_RPC_N_METHODS] = {
    [QS_RPC_HELLO] = "hello",
    [QS_RPC_GET_PAYLOAD] = "get_payload",
    [QS_RPC_GET_BATCH] = "get_batch",
    [QS_RPC_NOTIFY_COMMIT] = "notify_commit",
    [QS_RPC_SUBMIT_BATCH] = "submit_batch",
    [QS_RPC_NEW_EPOCH] = "new_epoch",
    [QS_RPC_GET_STATUS] = "get_status",
    [QS_RPC_LIST_BATCHES] = "list_batches",
    [QS_RPC_LIST_PROOFS] = "list_proofs",
};

/* Labels of qsd_rpc_errors_total; "other" for numbers outside the enum. */
static const char *const qs_rpc_status_names[] = {
    "cancelled",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "internal",
    "unavailable",
    "unimplemented",
    "other",
};

#define QS_RPC_N_STATUS (sizeof(qs_rpc_status_names) / sizeof(qs_rpc_status_names[0]))

/* Why a connection was closed: qsd_rpc_disconnects_total{reason}. */
enum qs_rpc_why {
	QS_RPC_WHY_EOF,
	QS_RPC_WHY_ERROR,
	QS_RPC_WHY_OVERSIZED_FRAME,
	QS_RPC_WHY_UNDECODABLE,
	QS_RPC_WHY_NO_HELLO,
	QS_RPC_WHY_HELLO_INVALID,
	QS_RPC_WHY_HELLO_TIMEOUT,
	QS_RPC_WHY_SLOW_READER,
	QS_RPC_WHY_SHUTDOWN,
	QS_RPC_WHY_UID_REVOKED,
	QS_RPC_WHY_N,
};

static const char *const qs_rpc_why_names[QS_RPC_WHY_N] = {
    [QS_RPC_WHY_EOF] = "eof",
    [QS_RPC_WHY_ERROR] = "error",
    [QS_RPC_WHY_OVERSIZED_FRAME] = "oversized_frame",
    [QS_RPC_WHY_UNDECODABLE] = "undecodable",
    [QS_RPC_WHY_NO_HELLO] = "no_hello",
    [QS_RPC_WHY_HELLO_INVALID] = "hello_invalid",
    [QS_RPC_WHY_HELLO_TIMEOUT] = "hello_timeout",
    [QS_RPC_WHY_SLOW_READER] = "slow_reader",
    [QS_RPC_WHY_SHUTDOWN] = "shutdown",
    [QS_RPC_WHY_UID_REVOKED] = "uid_revoked",
};

enum qs_rpc_refusal {
	QS_RPC_REFUSED_UID,
	QS_RPC_REFUSED_TOO_MANY,
	QS_RPC_REFUSED_N,
};

static const char *const qs_rpc_refusal_names[QS_RPC_REFUSED_N] = {
    [QS_RPC_REFUSED_UID] = "uid",
    [QS_RPC_REFUSED_TOO_MANY] = "too_many_connections",
};

enum qs_rpc_drop {
	QS_RPC_DROP_DEADLINE,
	QS_RPC_DROP_DISCONNECTED,
	QS_RPC_DROP_SHUTDOWN,
	QS_RPC_DROP_N,
};

static const char *const qs_rpc_drop_names[QS_RPC_DROP_N] = {
    [QS_RPC_DROP_DEADLINE] = "deadline_exceeded",
    [QS_RPC_DROP_DISCONNECTED] = "disconnected",
    [QS_RPC_DROP_SHUTDOWN] = "shutdown",
};

static const double qs_rpc_seconds_bounds[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                               0.5,    1,      5,     10,    30,   60};

struct qs_rpc_conn;

struct qs_rpc_call {
	struct qs_rpc_conn *conn; /* NULL once detached */
	TAILQ_ENTRY(qs_rpc_call) link;
	struct event *deadline; /* until it fires or the call is answered */
	uint64_t request_id;
	uint64_t start_ns; /* monotonic, when the request was taken */
	enum qs_rpc_method method;
	bool expired; /* DEADLINE_EXCEEDED was sent for it */
};

TAILQ_HEAD(qs_rpc_calls, qs_rpc_call);

struct qs_rpc_conn {
	struct qs_rpc *rpc;
	LIST_ENTRY(qs_rpc_conn) link;
	struct bufferevent *bev;
	struct event *timer; /* the Hello deadline, then the flush deadline */
	struct qs_rpc_calls calls;
	size_t n_calls;
	uint64_t serial; /* names the connection in logs */
	uid_t uid;
	pid_t pid;
	bool hello_done;
	bool closing; /* flushing a final response */
	bool paused;  /* not reading: too many response bytes unsent */
	bool dead;    /* closed; freed when busy drops to 0 */
	int busy;     /* frame loops on the stack */
	char name[QS_RPC_CLIENT_NAME_MAX + 1];
};

struct qs_rpc {
	struct event_base *base;
	const struct qs_config *cfg;
	struct qs_rpc_ops ops;
	void *arg;
	char *server_version;
	uint64_t epoch;
	uint32_t chain_id;
	uint8_t author[32];
	char *path;
	bool bound;     /* path is our socket: dev/ino below */
	bool activated; /* the socket came from systemd (qsd.socket) */
	dev_t dev;
	ino_t ino;
	struct evconnlistener *listener;
	struct event *accept_retry;
	LIST_HEAD(, qs_rpc_conn) conns;
	size_t n_conns;
	uint64_t next_serial;
	size_t frame_max;
	size_t budget;
	uint64_t stall_us;      /* rpc.write_stall_timeout_ms the connections have */
	uint64_t poll_until_us; /* rpc.busy_poll_us after the last answer (monotonic) */
	/* Armed with no timeout while the busy-poll window lasts: the loop
	 * then calls epoll_wait without sleeping. */
	struct event *poll_tick;
	/* A response packed here is written to an idle socket at once; what
	 * the socket does not take moves to the connection's output. */
	struct evbuffer *direct;
	uid_t euid;
	struct qs_metric *m_requests;
	struct qs_metric *m_errors;
	struct qs_metric *m_seconds;
	struct qs_metric *m_dropped;
	struct qs_metric *m_connections;
	struct qs_metric *m_refused;
	struct qs_metric *m_disconnects;
};

static void qs_rpc_conn_close(struct qs_rpc_conn *c, enum qs_rpc_why why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void qs_rpc_conn_finish(struct qs_rpc_conn *c, enum qs_rpc_why why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void qs_rpc_conn_send_status(struct qs_rpc_conn *c, uint64_t request_id,
                                    Quorumstore__V1__Status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void qs_rpc_conn_process(struct qs_rpc_conn *c);

static int
qs_rpc_method_of(Quorumstore__V1__Request__BodyCase body)
{
	switch (body) {
	case QUORUMSTORE__V1__REQUEST__BODY_HELLO:
		return QS_RPC_HELLO;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD:
		return QS_RPC_GET_PAYLOAD;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH:
		return QS_RPC_GET_BATCH;
	case QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT:
		return QS_RPC_NOTIFY_COMMIT;
	case QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH:
		return QS_RPC_SUBMIT_BATCH;
	case QUORUMSTORE__V1__REQUEST__BODY_NEW_EPOCH:
		return QS_RPC_NEW_EPOCH;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS:
		return QS_RPC_GET_STATUS;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_BATCHES:
		return QS_RPC_LIST_BATCHES;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_PROOFS:
		return QS_RPC_LIST_PROOFS;
	default:
		return -1;
	}
}

static size_t
qs_rpc_status_index(Quorumstore__V1__Status status)
{
	switch (status) {
	case QUORUMSTORE__V1__STATUS__STATUS_CANCELLED:
		return 0;
	case QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT:
		return 1;
	case QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED:
		return 2;
	case QUORUMSTORE__V1__STATUS__STATUS_NOT_FOUND:
		return 3;
	case QUORUMSTORE__V1__STATUS__STATUS_PERMISSION_DENIED:
		return 4;
	case QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED:
		return 5;
	case QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION:
		return 6;
	case QUORUMSTORE__V1__STATUS__STATUS_INTERNAL:
		return 7;
	case QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE:
		return 8;
	case QUORUMSTORE__V1__STATUS__STATUS_UNIMPLEMENTED:
		return 9;
	default:
		return QS_RPC_N_STATUS - 1;
	}
}

/* The Hello client name, made safe for a quoted log value. */
static void
qs_rpc_copy_name(char *dst, const char *src)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != '\0' && i < QS_RPC_CLIENT_NAME_MAX; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
	}
	dst[i] = '\0';
}

/* ---- calls ---- */

/* Take `call` off its connection's list; it stays attached (conn set). */
static void
qs_rpc_call_unlink(struct qs_rpc_call *call)
{
	struct qs_rpc_conn *c = call->conn;

	TAILQ_REMOVE(&c->calls, call, link);
	c->n_calls--;
	if (call->deadline != NULL)
		event_free(call->deadline);
	call->deadline = NULL;
}

/* The server gives up on `call`: it keeps no pointer into the server. */
static void
qs_rpc_call_detach(struct qs_rpc_call *call, enum qs_rpc_drop why)
{
	struct qs_rpc *rpc = call->conn->rpc;

	qs_rpc_call_unlink(call);
	if (!call->expired)
		qs_metric_add(rpc->m_dropped, why, 1);
	call->conn = NULL;
}

/* ---- connections ---- */

/* Close for good: detach the calls, drop the socket; no log, no count. */
static void
qs_rpc_conn_release(struct qs_rpc_conn *c, enum qs_rpc_drop drop)
{
	struct qs_rpc *rpc = c->rpc;
	struct qs_rpc_call *call;

	if (c->dead)
		return;
	c->dead = true;
	while ((call = TAILQ_FIRST(&c->calls)) != NULL)
		qs_rpc_call_detach(call, drop);
	LIST_REMOVE(c, link);
	rpc->n_conns--;
	qs_metric_gauge_add(rpc->m_connections, 0, -1);
	if (c->timer != NULL)
		event_free(c->timer);
	c->timer = NULL;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->busy == 0)
		free(c);
}

static void
qs_rpc_conn_vlog(struct qs_rpc_conn *c, enum qs_rpc_why why, const char *fmt, va_list ap)
{
	char detail[QS_RPC_DETAIL_MAX];
	int prio;

	vsnprintf(detail, sizeof(detail), fmt, ap);
	switch (why) {
	case QS_RPC_WHY_EOF:
	case QS_RPC_WHY_SHUTDOWN:
		prio = LOG_INFO;
		break;
	default:
		prio = LOG_WARNING;
		break;
	}
	qs_metric_add(c->rpc->m_disconnects, why, 1);
	qs_log(prio, "rpc_disconnected",
	       "conn=%" PRIu64 " uid=%u pid=%d client=\"%s\" reason=%s outstanding=%zu "
	       "detail=\"%s\"",
	       c->serial, (unsigned)c->uid, (int)c->pid, c->name, qs_rpc_why_names[why], c->n_calls,
	       detail);
}

/* Close `c` now, logged and counted as `why`. */
static void
qs_rpc_conn_close(struct qs_rpc_conn *c, enum qs_rpc_why why, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	if (!c->closing) {
		va_start(ap, fmt);
		qs_rpc_conn_vlog(c, why, fmt, ap);
		va_end(ap);
	}
	qs_rpc_conn_release(c, why == QS_RPC_WHY_SHUTDOWN ? QS_RPC_DROP_SHUTDOWN
	                                                  : QS_RPC_DROP_DISCONNECTED);
}

/*
 * Close `c` once the response just queued is written (or after
 * QS_RPC_CLOSE_FLUSH_MS), logged and counted as `why` now. Nothing more is
 * read from it.
 */
static void
qs_rpc_conn_finish(struct qs_rpc_conn *c, enum qs_rpc_why why, const char *fmt, ...)
{
	struct timeval tv = qs_clock_tv_ms(QS_RPC_CLOSE_FLUSH_MS);
	va_list ap;

	if (c->dead || c->closing)
		return;
	va_start(ap, fmt);
	qs_rpc_conn_vlog(c, why, fmt, ap);
	va_end(ap);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 ||
	    evtimer_add(c->timer, &tv) != 0)
		qs_rpc_conn_release(c, QS_RPC_DROP_DISCONNECTED);
}

/*
 * Queue `resp` on `c`. A response over QS_RPC_RESPONSE_MAX_BYTES becomes
 * RESOURCE_EXHAUSTED. Stops reading when the output grows beyond the pause
 * mark, closes the connection beyond the slow-reader mark.
 */
static void
qs_rpc_conn_send(struct qs_rpc_conn *c, Quorumstore__V1__Response *resp)
{
	struct qs_rpc *rpc = c->rpc;
	Quorumstore__V1__Response big = QUORUMSTORE__V1__RESPONSE__INIT;
	char message[QS_RPC_MESSAGE_MAX];
	struct evbuffer *out;
	size_t len;
	int rc;

	if (c->dead)
		return;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) == 0)
		out = rpc->direct;
	rc = qs_frame_write(out, &resp->base, QS_RPC_RESPONSE_MAX_BYTES);
	if (rc == QS_ELIMIT) {
		len = protobuf_c_message_get_packed_size(&resp->base);
		snprintf(message, sizeof(message),
		         "the response of %zu bytes is over the limit of %u", len,
		         QS_RPC_RESPONSE_MAX_BYTES);
		qs_log_warn("rpc_response_too_large",
		            "conn=%" PRIu64 " request_id=%" PRIu64 " bytes=%zu limit=%u", c->serial,
		            resp->request_id, len, QS_RPC_RESPONSE_MAX_BYTES);
		big.request_id = resp->request_id;
		big.status = QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED;
		big.message = message;
		resp = &big;
		rc = qs_frame_write(out, &resp->base, QS_RPC_RESPONSE_MAX_BYTES);
	}
	if (rc == 0 && out == rpc->direct) {
		/*
		 * Nothing was pending: write now rather than through a write
		 * event (two epoll_ctl and an epoll_wait per answer). A failed
		 * or short write leaves the rest to the bufferevent, which
		 * reports the error or waits for room as for any response.
		 */
		(void)evbuffer_write(out, bufferevent_getfd(c->bev));
		out = bufferevent_get_output(c->bev);
		if (evbuffer_get_length(rpc->direct) != 0 &&
		    bufferevent_write_buffer(c->bev, rpc->direct) != 0) {
			evbuffer_drain(rpc->direct, evbuffer_get_length(rpc->direct));
			rc = -ENOMEM;
		}
	}
	if (rc != 0) {
		qs_rpc_conn_close(c, QS_RPC_WHY_ERROR, "cannot queue a response: %s",
		                  qs_strerror(rc));
		return;
	}
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK)
		qs_metric_add(rpc->m_errors, qs_rpc_status_index(resp->status), 1);
	len = evbuffer_get_length(out);
	if (len > QS_RPC_OUTBUF_MAX_BYTES) {
		qs_rpc_conn_close(c, QS_RPC_WHY_SLOW_READER, "%zu response bytes unsent, limit %u",
		                  len, QS_RPC_OUTBUF_MAX_BYTES);
	} else if (len > QS_RPC_OUTBUF_PAUSE_BYTES && !c->paused && !c->closing) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
		qs_log_debug("rpc_paused", "conn=%" PRIu64 " unsent=%zu", c->serial, len);
	}
}

static void
qs_rpc_conn_send_status(struct qs_rpc_conn *c, uint64_t request_id, Quorumstore__V1__Status status,
                        const char *fmt, ...)
{
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	char message[QS_RPC_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	resp.request_id = request_id;
	resp.status = status;
	resp.message = message;
	qs_rpc_conn_send(c, &resp);
}

static void
qs_rpc_conn_send_hello(struct qs_rpc_conn *c, uint64_t request_id)
{
	struct qs_rpc *rpc = c->rpc;
	Quorumstore__V1__HelloResponse hello = QUORUMSTORE__V1__HELLO_RESPONSE__INIT;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;

	hello.server_version = rpc->server_version;
	hello.protocol_version = QS_PROTOCOL_VERSION;
	hello.epoch = rpc->epoch;
	hello.chain_id = rpc->chain_id;
	hello.author.data = rpc->author;
	hello.author.len = sizeof(rpc->author);
	resp.request_id = request_id;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hello;
	qs_rpc_conn_send(c, &resp);
}

static void
qs_rpc_call_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct qs_rpc_call *call = arg;
	struct qs_rpc_conn *c = call->conn;
	struct qs_rpc *rpc = c->rpc;

	event_free(call->deadline);
	call->deadline = NULL;
	call->expired = true;
	qs_metric_add(rpc->m_dropped, QS_RPC_DROP_DEADLINE, 1);
	qs_metric_observe(rpc->m_seconds, call->method,
	                  (double)(qs_clock_mono_ns() - call->start_ns) / 1e9);
	qs_log_debug("rpc_deadline_exceeded", "conn=%" PRIu64 " request_id=%" PRIu64 " method=%s",
	             c->serial, call->request_id, qs_rpc_method_names[call->method]);
	qs_rpc_conn_send_status(c, call->request_id,
	                        QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED,
	                        "no answer within the deadline");
}

/* The first request, which must be a Hello. Returns true when accepted. */
static bool
qs_rpc_conn_hello(struct qs_rpc_conn *c, const Quorumstore__V1__Request *req, int method)
{
	if (method != QS_RPC_HELLO) {
		qs_rpc_conn_send_status(c, req->request_id,
		                        QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION,
		                        "the first request on a connection must be Hello");
		qs_rpc_conn_finish(c, QS_RPC_WHY_NO_HELLO, "first request is not a Hello (body %d)",
		                   (int)req->body_case);
		return false;
	}
	if (req->hello->protocol_version != QS_PROTOCOL_VERSION) {
		qs_rpc_conn_send_status(c, req->request_id,
		                        QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION,
		                        "protocol_version %" PRIu32 " is not supported; the server "
		                        "speaks %d",
		                        req->hello->protocol_version, QS_PROTOCOL_VERSION);
		qs_rpc_conn_finish(c, QS_RPC_WHY_HELLO_INVALID,
		                   "protocol_version %" PRIu32 ", ours %d",
		                   req->hello->protocol_version, QS_PROTOCOL_VERSION);
		return false;
	}
	c->hello_done = true;
	evtimer_del(c->timer);
	qs_rpc_copy_name(c->name, req->hello->client_name);
	qs_log_info("rpc_hello", "conn=%" PRIu64 " uid=%u pid=%d client=\"%s\"", c->serial,
	            (unsigned)c->uid, (int)c->pid, c->name);
	qs_rpc_conn_send_hello(c, req->request_id);
	return true;
}

/* One decoded request; takes `req`. */
static void
qs_rpc_conn_request(struct qs_rpc_conn *c, Quorumstore__V1__Request *req)
{
	struct qs_rpc *rpc = c->rpc;
	struct qs_rpc_call *call;
	struct timeval tv;
	uint32_t deadline_ms;
	int method = qs_rpc_method_of(req->body_case);

	if (method >= 0)
		qs_metric_add(rpc->m_requests, (size_t)method, 1);
	if (!c->hello_done) {
		qs_rpc_conn_hello(c, req, method);
		goto out;
	}
	if (method == QS_RPC_HELLO) {
		qs_rpc_conn_send_hello(c, req->request_id);
		goto out;
	}
	if (method < 0) {
		qs_rpc_conn_send_status(c, req->request_id,
		                        QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                        "the request has no body this server knows");
		goto out;
	}
	if (c->n_calls >= QS_RPC_MAX_OUTSTANDING) {
		qs_rpc_conn_send_status(
		    c, req->request_id, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		    "%d requests of this connection are outstanding", QS_RPC_MAX_OUTSTANDING);
		goto out;
	}
	call = calloc(1, sizeof(*call));
	if (call != NULL)
		call->deadline = evtimer_new(rpc->base, qs_rpc_call_deadline, call);
	deadline_ms = req->deadline_ms == 0 ? QS_RPC_DEFAULT_DEADLINE_MS : req->deadline_ms;
	if (deadline_ms > QS_RPC_MAX_DEADLINE_MS)
		deadline_ms = QS_RPC_MAX_DEADLINE_MS;
	tv = qs_clock_tv_ms(deadline_ms);
	if (call == NULL || call->deadline == NULL || evtimer_add(call->deadline, &tv) != 0) {
		if (call != NULL && call->deadline != NULL)
			event_free(call->deadline);
		free(call);
		qs_rpc_conn_send_status(c, req->request_id,
		                        QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                        "out of memory");
		goto out;
	}
	call->conn = c;
	call->request_id = req->request_id;
	call->method = (enum qs_rpc_method)method;
	call->start_ns = qs_clock_mono_ns();
	TAILQ_INSERT_TAIL(&c->calls, call, link);
	c->n_calls++;
	rpc->ops.request(rpc->arg, call, req);
	return;
out:
	qs_frame_msg_free(&req->base);
}

/*
 * Take every whole frame from the input while the connection is open and
 * not paused. Frames left in the buffer wait for the next read, or for the
 * output to drain (qs_rpc_conn_write).
 */
static void
qs_rpc_conn_process(struct qs_rpc_conn *c)
{
	struct qs_rpc *rpc = c->rpc;
	ProtobufCMessage *m = NULL;
	char detail[QS_RPC_DETAIL_MAX];
	struct evbuffer *in;
	size_t before;
	int rc;

	c->busy++;
	while (!c->dead && !c->closing && !c->paused) {
		in = bufferevent_get_input(c->bev);
		before = evbuffer_get_length(in);
		rc = qs_frame_read(in, rpc->frame_max, &quorumstore__v1__request__descriptor,
		                   rpc->budget, &m);
		if (rc == 0)
			break;
		if (rc < 0) {
			qs_frame_read_failure(rc, in, before, rpc->frame_max, detail,
			                      sizeof(detail));
			qs_rpc_conn_close(c,
			                  rc == QS_ELIMIT    ? QS_RPC_WHY_OVERSIZED_FRAME
			                  : rc == QS_EDECODE ? QS_RPC_WHY_UNDECODABLE
			                                     : QS_RPC_WHY_ERROR,
			                  "%s", detail);
			break;
		}
		qs_rpc_conn_request(c, (Quorumstore__V1__Request *)m);
	}
	c->busy--;
	if (c->dead && c->busy == 0)
		free(c);
}

static void
qs_rpc_conn_read(struct bufferevent *bev, void *arg)
{
	qs_rpc_conn_process(arg);
}

/* Output drained below the low mark: finish a closing connection, or read
 * again after a pause. */
static void
qs_rpc_conn_write(struct bufferevent *bev, void *arg)
{
	struct qs_rpc_conn *c = arg;
	size_t len = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->closing) {
		if (len == 0)
			qs_rpc_conn_release(c, QS_RPC_DROP_DISCONNECTED);
		return;
	}
	if (c->paused && len <= QS_RPC_OUTBUF_PAUSE_BYTES / 2) {
		c->paused = false;
		bufferevent_enable(bev, EV_READ);
		qs_log_debug("rpc_resumed", "conn=%" PRIu64 " unsent=%zu", c->serial, len);
		/* Frames already in the input bring no read event. */
		qs_rpc_conn_process(c);
	}
}

static void
qs_rpc_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct qs_rpc_conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (c->closing) {
		qs_rpc_conn_release(c, QS_RPC_DROP_DISCONNECTED);
		return;
	}
	if (what & BEV_EVENT_EOF)
		qs_rpc_conn_close(c, QS_RPC_WHY_EOF, "the client closed the connection");
	else if (what & BEV_EVENT_ERROR)
		qs_rpc_conn_close(c, QS_RPC_WHY_ERROR, "%s", evutil_socket_error_to_string(err));
	else if (what & BEV_EVENT_TIMEOUT)
		/* Only the write timeout is set: responses pending, none of
		 * them written for that long. */
		qs_rpc_conn_close(c, QS_RPC_WHY_SLOW_READER,
		                  "no response byte written for %" PRIu64 " ms, %zu unsent",
		                  c->rpc->stall_us / 1000,
		                  evbuffer_get_length(bufferevent_get_output(bev)));
}

/* The Hello deadline, or the flush deadline of a closing connection. */
static void
qs_rpc_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qs_rpc_conn *c = arg;

	if (c->closing)
		qs_rpc_conn_release(c, QS_RPC_DROP_DISCONNECTED);
	else
		qs_rpc_conn_close(c, QS_RPC_WHY_HELLO_TIMEOUT, "no Hello within %d ms",
		                  QS_RPC_HELLO_TIMEOUT_MS);
}

/*
 * Arm the write-stall timeout of `c` (rpc->stall_us, 0: none): libevent's
 * write timeout runs only while output is pending, restarts at every
 * successful write, and fires (qs_rpc_conn_event, BEV_EVENT_TIMEOUT) when
 * none of it could be written for that long. Setting it restarts a running
 * one.
 */
static int
qs_rpc_conn_set_stall_timeout(struct qs_rpc_conn *c)
{
	struct timeval tv = qs_clock_tv_us(c->rpc->stall_us);

	return bufferevent_set_timeouts(c->bev, NULL, c->rpc->stall_us > 0 ? &tv : NULL);
}

/* ---- accepting ---- */

static bool
qs_rpc_uid_allowed(const struct qs_rpc *rpc, uid_t uid)
{
	const struct qs_config *cfg = rpc->cfg;

	if (cfg->n_allowed_uids == 0)
		return uid == rpc->euid;
	for (size_t i = 0; i < cfg->n_allowed_uids; i++)
		if (cfg->allowed_uids[i] == uid)
			return true;
	return false;
}

static void
qs_rpc_refuse(struct qs_rpc *rpc, evutil_socket_t fd, enum qs_rpc_refusal why, long uid, long pid,
              const char *detail)
{
	qs_metric_add(rpc->m_refused, why, 1);
	qs_log_warn("rpc_refused", "uid=%ld pid=%ld reason=%s detail=\"%s\"", uid, pid,
	            qs_rpc_refusal_names[why], detail);
	evutil_closesocket(fd);
}

static void
qs_rpc_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
	struct qs_rpc *rpc = arg;
	struct timeval tv = qs_clock_tv_ms(QS_RPC_HELLO_TIMEOUT_MS);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct qs_rpc_conn *c;
	char detail[QS_RPC_DETAIL_MAX];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		snprintf(detail, sizeof(detail), "SO_PEERCRED: %s", strerror(errno));
		qs_rpc_refuse(rpc, fd, QS_RPC_REFUSED_UID, -1, -1, detail);
		return;
	}
	if (!qs_rpc_uid_allowed(rpc, cred.uid)) {
		qs_rpc_refuse(rpc, fd, QS_RPC_REFUSED_UID, (long)cred.uid, (long)cred.pid,
		              "uid not in rpc.allowed_uids");
		return;
	}
	if (rpc->n_conns >= QS_RPC_MAX_CONNECTIONS) {
		snprintf(detail, sizeof(detail), "%d connections already open",
		         QS_RPC_MAX_CONNECTIONS);
		qs_rpc_refuse(rpc, fd, QS_RPC_REFUSED_TOO_MANY, (long)cred.uid, (long)cred.pid,
		              detail);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->rpc = rpc;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->serial = ++rpc->next_serial;
	TAILQ_INIT(&c->calls);
	c->bev =
	    bufferevent_socket_new(rpc->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&rpc->conns, c, link);
	rpc->n_conns++;
	qs_metric_gauge_add(rpc->m_connections, 0, 1);
	qs_log_debug("rpc_connected", "conn=%" PRIu64 " uid=%u pid=%d", c->serial, (unsigned)c->uid,
	             (int)c->pid);
	bufferevent_setcb(c->bev, qs_rpc_conn_read, qs_rpc_conn_write, qs_rpc_conn_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, QS_RPC_OUTBUF_PAUSE_BYTES / 2, 0);
	c->timer = evtimer_new(rpc->base, qs_rpc_conn_timer, c);
	if (c->timer == NULL || evtimer_add(c->timer, &tv) != 0 ||
	    qs_rpc_conn_set_stall_timeout(c) != 0 || qs_frame_bev_tune(c->bev) != 0 ||
	    bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		qs_rpc_conn_close(c, QS_RPC_WHY_ERROR, "%s", strerror(ENOMEM));
}

static void
qs_rpc_accept_error(struct evconnlistener *l, void *arg)
{
	struct qs_rpc *rpc = arg;
	struct timeval tv = qs_clock_tv_ms(QS_RPC_ACCEPT_RETRY_MS);
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends leave the connection queued: pause instead of
	 * spinning on it. */
	qs_log_warn("rpc_accept_failed", "error=\"%s\" retry_ms=%d", strerror(err),
	            QS_RPC_ACCEPT_RETRY_MS);
	evconnlistener_disable(l);
	evtimer_add(rpc->accept_retry, &tv);
}

/*
 * Busy polling (rpc.busy_poll_us). After an answer the loop should read the
 * next request of a client asking one at a time without being woken by the
 * scheduler: a timer with no timeout is kept armed until the window after
 * the last answer has passed, so event_base_dispatch() calls epoll_wait
 * without sleeping and handles every event as usual meanwhile.
 */
static void
qs_rpc_poll_tick(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	struct qs_rpc *rpc = arg;

	(void)fd;
	(void)what;
	if (qs_clock_mono_us() < rpc->poll_until_us)
		evtimer_add(rpc->poll_tick, &now);
}

static void
qs_rpc_poll_open(struct qs_rpc *rpc, uint64_t now_us)
{
	if (rpc->cfg->rpc_busy_poll_us == 0)
		return;
	rpc->poll_until_us = now_us + rpc->cfg->rpc_busy_poll_us;
	if (!evtimer_pending(rpc->poll_tick, NULL))
		qs_rpc_poll_tick(-1, 0, rpc);
}

static void
qs_rpc_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct qs_rpc *rpc = arg;

	evconnlistener_enable(rpc->listener);
}

/* ---- the socket file ---- */

/* 0 when something accepts connections at `sun`, else -errno of connect(). */
static int
qs_rpc_probe(const struct sockaddr_un *sun)
{
	int fd, rc = 0;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) != 0)
		rc = -errno;
	close(fd);
	/* A full backlog or a connect still in progress: somebody listens. */
	if (rc == -EAGAIN || rc == -EINPROGRESS)
		rc = 0;
	return rc;
}

/*
 * The listening socket systemd passed under the name QS_RPC_FD_NAME (socket
 * activation, sd_listen_fds_with_names()): 1 and *fd_out when there is one,
 * 0 when there is none, QS_ECONFIG when it is not a listening Unix stream
 * socket at rpc->path. The LISTEN_* variables are consumed either way, and
 * every passed descriptor is close-on-exec.
 */
static int
qs_rpc_inherited(struct qs_rpc *rpc, int *fd_out, char *err, size_t errlen)
{
	char **names = NULL;
	int n, fd = -1, rc = 0;

	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		qs_log_warn("rpc_listen_fds_failed", "error=\"%s\"", strerror(-n));
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		if (names != NULL && names[i] != NULL && strcmp(names[i], QS_RPC_FD_NAME) == 0)
			fd = SD_LISTEN_FDS_START + i;
	}
	if (fd < 0)
		goto out;
	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, rpc->path, 0) <= 0) {
		rc = QS_ECONFIG;
		qs_errf(err, errlen,
		        "rpc: the socket systemd passed as \"%s\" is not a listening Unix stream "
		        "socket at rpc.socket %s (check ListenStream= in qsd.socket)",
		        QS_RPC_FD_NAME, rpc->path);
		goto out;
	}
	if (evutil_make_socket_nonblocking(fd) != 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: %s: %s", rpc->path, strerror(-rc));
		goto out;
	}
	*fd_out = fd;
	rc = 1;
out:
	for (int i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/*
 * Make the listening socket at rpc->path: replace a stale socket file,
 * refuse a live one or anything else, bind, chmod 0660, listen. On success
 * *fd_out is the listening socket and rpc->bound is set.
 */
static int
qs_rpc_bind(struct qs_rpc *rpc, int *fd_out, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	const char *path = rpc->path;
	struct stat st;
	int fd = -1, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			qs_errf(err, errlen, "rpc: %s exists and is not a socket; not removing it",
			        path);
			goto out;
		}
		rc = qs_rpc_probe(&sun);
		if (rc == 0) {
			rc = -EADDRINUSE;
			qs_errf(err, errlen,
			        "rpc: %s is in use: another process serves it (another qsd?)",
			        path);
			goto out;
		}
		if (rc != -ECONNREFUSED) {
			qs_errf(err, errlen,
			        "rpc: %s exists and cannot be probed (%s); not removing it", path,
			        strerror(-rc));
			goto out;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			rc = -errno;
			qs_errf(err, errlen, "rpc: cannot remove the stale socket %s: %s", path,
			        strerror(-rc));
			goto out;
		}
		qs_log_notice("rpc_stale_socket_removed", "path=\"%s\"", path);
	} else if (errno != ENOENT) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: %s: %s", path, strerror(-rc));
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: socket: %s", strerror(-rc));
		goto out;
	}
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: bind %s: %s", path, strerror(-rc));
		goto out;
	}
	if (lstat(path, &st) != 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: %s vanished after bind: %s", path, strerror(-rc));
		goto out;
	}
	rpc->bound = true;
	rpc->dev = st.st_dev;
	rpc->ino = st.st_ino;
	/* Before listen(): until then every connect() is refused, so no
	 * client ever connects under another mode. */
	if (chmod(path, QS_RPC_SOCKET_MODE) != 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: chmod %s: %s", path, strerror(-rc));
		goto out;
	}
	if (listen(fd, QS_RPC_LISTEN_BACKLOG) != 0) {
		rc = -errno;
		qs_errf(err, errlen, "rpc: listen %s: %s", path, strerror(-rc));
		goto out;
	}
	*fd_out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Unlink rpc->path if it is still the socket we bound. */
static void
qs_rpc_unlink(struct qs_rpc *rpc)
{
	struct stat st;

	if (!rpc->bound)
		return;
	rpc->bound = false;
	if (lstat(rpc->path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_dev != rpc->dev ||
	    st.st_ino != rpc->ino)
		return;
	if (unlink(rpc->path) != 0)
		qs_log_warn("rpc_unlink_failed", "path=\"%s\" error=\"%s\"", rpc->path,
		            strerror(errno));
}

/* ---- public ---- */

static struct qs_metric *
qs_rpc_registered(struct qs_metric *m, const char *name)
{
	if (m == NULL) {
		fprintf(stderr, "qs_rpc: cannot register metric %s\n", name);
		abort();
	}
	return m;
}

static void
qs_rpc_register_metrics(struct qs_rpc *rpc, struct qs_metrics *reg)
{
	if (reg == NULL)
		return;
	rpc->m_requests = qs_rpc_registered(
	    qs_metrics_counter(reg, "qsd_rpc_requests_total", "RPC requests received, by method.",
	                       "method", qs_rpc_method_names, QS_RPC_N_METHODS),
	    "qsd_rpc_requests_total");
	rpc->m_errors =
	    qs_rpc_registered(qs_metrics_counter(reg, "qsd_rpc_errors_total",
	                                         "RPC responses with a non-OK status, "
	                                         "by status.",
	                                         "status", qs_rpc_status_names, QS_RPC_N_STATUS),
	                      "qsd_rpc_errors_total");
	rpc->m_seconds = qs_rpc_registered(
	    qs_metrics_histogram(reg, "qsd_rpc_request_seconds",
	                         "Time from an RPC request read to its response queued, by method.",
	                         qs_rpc_seconds_bounds,
	                         sizeof(qs_rpc_seconds_bounds) / sizeof(qs_rpc_seconds_bounds[0]),
	                         "method", qs_rpc_method_names, QS_RPC_N_METHODS),
	    "qsd_rpc_request_seconds");
	rpc->m_dropped = qs_rpc_registered(
	    qs_metrics_counter(reg, "qsd_rpc_responses_dropped_total",
	                       "RPC calls whose handler answer will not be sent, by reason.",
	                       "reason", qs_rpc_drop_names, QS_RPC_DROP_N),
	    "qsd_rpc_responses_dropped_total");
	rpc->m_connections = qs_rpc_registered(
	    qs_metrics_gauge(reg, "qsd_rpc_connections", "Open RPC connections.", NULL, NULL, 0),
	    "qsd_rpc_connections");
	rpc->m_refused =
	    qs_rpc_registered(qs_metrics_counter(reg, "qsd_rpc_refused_total",
	                                         "RPC connections refused at accept, by reason.",
	                                         "reason", qs_rpc_refusal_names, QS_RPC_REFUSED_N),
	                      "qsd_rpc_refused_total");
	rpc->m_disconnects =
	    qs_rpc_registered(qs_metrics_counter(reg, "qsd_rpc_disconnects_total",
	                                         "RPC connections closed, by reason.", "reason",
	                                         qs_rpc_why_names, QS_RPC_WHY_N),
	                      "qsd_rpc_disconnects_total");
}

int
qs_rpc_start(struct event_base *base, const struct qs_config *cfg, const struct qs_rpc_ops *ops,
             void *arg, const struct qs_rpc_info *info, struct qs_metrics *metrics,
             struct qs_rpc **out, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct qs_rpc *rpc = NULL;
	int fd = -1, rc;

	if (ops == NULL || ops->request == NULL || info == NULL) {
		rc = QS_ECONFIG;
		qs_errf(err, errlen, "rpc: no request handler or no server info");
		goto out;
	}
	if (cfg->rpc_socket == NULL || cfg->rpc_socket[0] == '\0' ||
	    strlen(cfg->rpc_socket) >= sizeof(sun.sun_path)) {
		rc = QS_ECONFIG;
		qs_errf(err, errlen, "rpc: socket path \"%s\" is empty or longer than %zu bytes",
		        cfg->rpc_socket != NULL ? cfg->rpc_socket : "", sizeof(sun.sun_path) - 1);
		goto out;
	}
	rc = -ENOMEM;
	rpc = calloc(1, sizeof(*rpc));
	if (rpc == NULL)
		goto nomem;
	LIST_INIT(&rpc->conns);
	rpc->base = base;
	rpc->cfg = cfg;
	rpc->ops = *ops;
	rpc->arg = arg;
	rpc->epoch = info->epoch;
	rpc->chain_id = info->chain_id;
	memcpy(rpc->author, info->author, sizeof(rpc->author));
	rpc->euid = geteuid();
	rpc->frame_max = cfg->limits.frame_max_bytes > UINT32_MAX
	                     ? UINT32_MAX
	                     : (size_t)cfg->limits.frame_max_bytes;
	rpc->budget = QS_RPC_DECODE_BUDGET(rpc->frame_max);
	rpc->stall_us = cfg->rpc_write_stall_timeout_us;
	rpc->server_version = strdup(info->server_version != NULL ? info->server_version : "");
	rpc->path = strdup(cfg->rpc_socket);
	if (rpc->server_version == NULL || rpc->path == NULL)
		goto nomem;
	rpc->accept_retry = evtimer_new(base, qs_rpc_accept_resume, rpc);
	rpc->poll_tick = evtimer_new(base, qs_rpc_poll_tick, rpc);
	rpc->direct = evbuffer_new();
	if (rpc->accept_retry == NULL || rpc->poll_tick == NULL || rpc->direct == NULL)
		goto nomem;
	rc = qs_rpc_inherited(rpc, &fd, err, errlen);
	if (rc == 1)
		rpc->activated = true;
	else if (rc == 0)
		rc = qs_rpc_bind(rpc, &fd, err, errlen);
	if (rc < 0)
		goto out;
	/* Backlog 0: the socket already listens. */
	rpc->listener = evconnlistener_new(base, qs_rpc_accept, rpc,
	                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (rpc->listener == NULL)
		goto nomem;
	fd = -1;
	evconnlistener_set_error_cb(rpc->listener, qs_rpc_accept_error);
	qs_rpc_register_metrics(rpc, metrics);
	if (rpc->activated)
		qs_log_info("rpc_listening", "path=\"%s\" from=systemd allowed_uids=%zu", rpc->path,
		            cfg->n_allowed_uids);
	else
		qs_log_info("rpc_listening", "path=\"%s\" mode=%04o allowed_uids=%zu", rpc->path,
		            QS_RPC_SOCKET_MODE, cfg->n_allowed_uids);
	*out = rpc;
	rpc = NULL;
	rc = 0;
	goto out;
nomem:
	rc = -ENOMEM;
	qs_errf(err, errlen, "rpc: out of memory");
out:
	if (fd >= 0)
		close(fd);
	qs_rpc_free(rpc);
	return rc;
}

void
qs_rpc_reload(struct qs_rpc *rpc)
{
	struct qs_rpc_conn *c, *next;
	size_t revoked = 0;
	bool stall_changed = rpc->stall_us != rpc->cfg->rpc_write_stall_timeout_us;

	rpc->frame_max = rpc->cfg->limits.frame_max_bytes > UINT32_MAX
	                     ? UINT32_MAX
	                     : (size_t)rpc->cfg->limits.frame_max_bytes;
	rpc->budget = QS_RPC_DECODE_BUDGET(rpc->frame_max);
	rpc->stall_us = rpc->cfg->rpc_write_stall_timeout_us;
	for (c = LIST_FIRST(&rpc->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->dead)
			continue;
		if (qs_rpc_uid_allowed(rpc, c->uid)) {
			/* Unchanged, a stall in progress keeps its start. */
			if (stall_changed && qs_rpc_conn_set_stall_timeout(c) != 0)
				qs_rpc_conn_close(c, QS_RPC_WHY_ERROR,
				                  "cannot set the write-stall timeout");
			continue;
		}
		qs_rpc_conn_close(c, QS_RPC_WHY_UID_REVOKED, "uid no longer in rpc.allowed_uids");
		revoked++;
	}
	qs_log_info("rpc_reloaded",
	            "allowed_uids=%zu frame_max_bytes=%zu write_stall_timeout_ms=%" PRIu64
	            " revoked=%zu",
	            rpc->cfg->n_allowed_uids, rpc->frame_max, rpc->stall_us / 1000, revoked);
}

uint64_t
qs_rpc_poll_until(const struct qs_rpc *rpc)
{
	return rpc != NULL ? rpc->poll_until_us : 0;
}

bool
qs_rpc_polling(const struct qs_rpc *rpc)
{
	return rpc != NULL && evtimer_pending(rpc->poll_tick, NULL);
}

void
qs_rpc_set_epoch(struct qs_rpc *rpc, uint64_t epoch)
{
	rpc->epoch = epoch;
}

void
qs_rpc_respond(struct qs_rpc_call *call, Quorumstore__V1__Response *resp)
{
	struct qs_rpc_conn *c;

	if (call == NULL)
		return;
	c = call->conn;
	resp->request_id = call->request_id;
	if (c != NULL) {
		qs_rpc_call_unlink(call);
		if (!call->expired) {
			struct qs_rpc *rpc = c->rpc; /* sending may close and free c */
			uint64_t now_ns = qs_clock_mono_ns();

			qs_metric_observe(rpc->m_seconds, call->method,
			                  (double)(now_ns - call->start_ns) / 1e9);
			qs_rpc_conn_send(c, resp);
			qs_rpc_poll_open(rpc, now_ns / 1000);
		}
	}
	free(call);
}

void
qs_rpc_respond_error(struct qs_rpc_call *call, Quorumstore__V1__Status status, const char *fmt, ...)
{
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	char message[QS_RPC_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	resp.status = status;
	resp.message = message;
	qs_rpc_respond(call, &resp);
}

uint64_t
qs_rpc_call_id(const struct qs_rpc_call *call)
{
	return call->request_id;
}

void
qs_rpc_free(struct qs_rpc *rpc)
{
	struct qs_rpc_conn *c;

	if (rpc == NULL)
		return;
	if (rpc->listener != NULL)
		evconnlistener_free(rpc->listener);
	while ((c = LIST_FIRST(&rpc->conns)) != NULL)
		qs_rpc_conn_close(c, QS_RPC_WHY_SHUTDOWN, "shutting down");
	if (rpc->accept_retry != NULL)
		event_free(rpc->accept_retry);
	if (rpc->poll_tick != NULL)
		event_free(rpc->poll_tick);
	if (rpc->direct != NULL)
		evbuffer_free(rpc->direct);
	qs_rpc_unlink(rpc);
	free(rpc->server_version);
	free(rpc->path);
	free(rpc);
}
