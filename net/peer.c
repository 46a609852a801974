/*
 * The peer transport: TCP + TLS 1.3 connections between validators, each
 * carrying frames of one PeerMessage (see net/peer.h).
 *
 * A connection goes CONNECTING (outbound only: our non-blocking connect) ->
 * HANDSHAKE (TLS) -> HELLO (our Hello sent, theirs awaited) -> READY (the
 * validator's one usable connection, in its slot). A deadline timer covers
 * everything before READY.
 *
 * Closing. qs_conn_close() detaches a connection at once (slot, list,
 * bufferevent, timers) but frees the struct only when no handler call for it
 * is on the stack (`busy`), so a handler may close any connection, its own
 * included, and the frame loop that called it notices (`dead`) and stops.
 */
#include "net/peer.h"

#include "config/config.h"
#include "core/addr.h"
#include "core/codec.h"
#include "core/error.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define QS_PEER_ACCEPT_RETRY_MS 100 /* after accept() failed (EMFILE...) */
#define QS_PEER_KEEPIDLE_S      30  /* TCP keepalive: a silent dead peer */
#define QS_PEER_KEEPINTVL_S     10
#define QS_PEER_KEEPCNT         3
#define QS_PEER_ADDR_MAX        (INET6_ADDRSTRLEN + 8) /* "[addr]:port" */
#define QS_PEER_DETAIL_MAX      256

enum qs_conn_state {
	QS_CONN_CONNECTING,
	QS_CONN_HANDSHAKE,
	QS_CONN_HELLO,
	QS_CONN_READY,
};

/* Why a connection is closed. The first group labels
 * qsd_peer_disconnects_total, the second qsd_tls_handshake_failures_total. */
enum qs_why {
	QS_WHY_OVERSIZED_FRAME,
	QS_WHY_UNDECODABLE,
	QS_WHY_UNEXPECTED_MESSAGE,
	QS_WHY_EOF,
	QS_WHY_ERROR,
	QS_WHY_REPLACED,
	QS_WHY_SLOW_READER,
	QS_WHY_PROTOCOL_VIOLATION,
	QS_WHY_SHUTDOWN,
	QS_WHY_ADDRESS_CHANGED,
	QS_WHY_N_DISCONNECT,

	QS_WHY_UNKNOWN_KEY = QS_WHY_N_DISCONNECT,
	QS_WHY_NOT_ED25519,
	QS_WHY_NO_CERTIFICATE,
	QS_WHY_HANDSHAKE_ERROR,
	QS_WHY_HELLO_INVALID,
	QS_WHY_TIMEOUT,
	QS_WHY_N,
};

static const char *const qs_why_names[QS_WHY_N] = {
    [QS_WHY_OVERSIZED_FRAME] = "oversized_frame",
    [QS_WHY_UNDECODABLE] = "undecodable",
    [QS_WHY_UNEXPECTED_MESSAGE] = "unexpected_message",
    [QS_WHY_EOF] = "eof",
    [QS_WHY_ERROR] = "error",
    [QS_WHY_REPLACED] = "replaced",
    [QS_WHY_SLOW_READER] = "slow_reader",
    [QS_WHY_PROTOCOL_VIOLATION] = "protocol_violation",
    [QS_WHY_SHUTDOWN] = "shutdown",
    [QS_WHY_ADDRESS_CHANGED] = "address_changed",
    [QS_WHY_UNKNOWN_KEY] = "unknown_key",
    [QS_WHY_NOT_ED25519] = "not_ed25519",
    [QS_WHY_NO_CERTIFICATE] = "no_certificate",
    [QS_WHY_HANDSHAKE_ERROR] = "handshake_error",
    [QS_WHY_HELLO_INVALID] = "hello_invalid",
    [QS_WHY_TIMEOUT] = "timeout",
};

struct qs_peers;

struct qs_conn {
	struct qs_peers *p;
	LIST_ENTRY(qs_conn) link;
	enum qs_conn_state state;
	int peer;                 /* validator named by the pin, or -1 */
	int dialed;               /* validator we dialed, or -1 if inbound */
	bool pending_inbound;     /* counted in p->n_pending_inbound */
	bool dead;                /* closed; freed when busy drops to 0 */
	int busy;                 /* handler calls on the stack */
	evutil_socket_t fd;       /* CONNECTING only; then the bufferevent's */
	struct event *connect_ev; /* CONNECTING: the socket became writable */
	struct event *deadline;   /* until READY */
	struct bufferevent *bev;
	uint64_t ready_ms; /* monotonic, when it became READY */
	char addr[QS_PEER_ADDR_MAX];
};

/* One validator of the set. */
struct qs_slot {
	struct qs_peers *p;
	int idx;
	struct sockaddr_storage sa; /* its address, parsed at start */
	socklen_t sa_len;
	struct qs_conn *active;  /* READY connection, or NULL */
	struct qs_conn *dialing; /* our outbound connection before READY */
	struct event *redial;    /* timer: next dial (validators after self) */
	uint32_t backoff_ms;     /* base of the next redial delay */
	unsigned failures;       /* attempts failed in a row, for logs */
	int64_t skew_us;
};

struct qs_peers {
	struct event_base *base;
	const struct qs_config *cfg;
	int self;
	size_t n;
	struct qs_peers_handlers h;
	void *arg;
	SSL_CTX *server_ctx;
	SSL_CTX *client_ctx;
	struct evconnlistener *listener;
	struct event *accept_retry;
	struct event *resume; /* deliver held frames after reading resumes */
	LIST_HEAD(, qs_conn) conns;
	unsigned n_pending_inbound;
	bool reading;
	bool freeing;
	size_t frame_max;
	size_t budget;
	size_t outbuf_max;
	uint8_t signing_key[QS_KEY_BYTES];
	struct qs_metric *m_connected;
	struct qs_metric *m_skew;
	struct qs_metric *m_handshake_failures;
	struct qs_metric *m_disconnects;
	struct qs_metric *m_frames;
	struct qs_metric *m_bytes;
	struct qs_slot *slots;
};

static void qs_conn_close(struct qs_conn *c, enum qs_why why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void qs_conn_process(struct qs_conn *c);

static const char *
qs_peers_name(const struct qs_peers *p, int idx)
{
	return idx >= 0 && (size_t)idx < p->n ? p->cfg->validators[idx].name : "-";
}

static void
qs_peers_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

/* Latency over throughput for small messages, and keepalive so that a peer
 * that vanished without a FIN or RST is noticed. Failures only cost that. */
static void
qs_peers_tune_socket(evutil_socket_t fd)
{
	int one = 1, idle = QS_PEER_KEEPIDLE_S, intvl = QS_PEER_KEEPINTVL_S;
	int cnt = QS_PEER_KEEPCNT;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* The TLS pin: a validator's network key names it; our own is refused. */
static int
qs_peers_pin(void *arg, const uint8_t key[QS_TLS_KEY_BYTES])
{
	struct qs_peers *p = arg;
	int idx = qs_config_find_network_key(p->cfg, key);

	return idx == p->self ? -1 : idx;
}

/* ---- redialing ---- */

/* `base_ms` +- QS_PEER_BACKOFF_JITTER_PCT percent. */
static uint64_t
qs_peers_jitter(uint32_t base_ms)
{
	uint32_t r;
	uint64_t span = (uint64_t)base_ms * QS_PEER_BACKOFF_JITTER_PCT * 2 / 100;

	evutil_secure_rng_get_bytes(&r, sizeof(r));
	return (uint64_t)base_ms - span / 2 + (span > 0 ? r % (span + 1) : 0);
}

/*
 * Validator `idx` lost its connection or a dial failed: if it is ours to
 * dial and nothing is under way, dial again after the backoff. `lived_ms` is
 * how long the lost connection was usable (0 for a failed dial).
 */
static void
qs_slot_schedule(struct qs_peers *p, int idx, uint64_t lived_ms)
{
	struct qs_slot *s;
	struct timeval tv;
	uint64_t delay;

	if (p->freeing || idx <= p->self || (size_t)idx >= p->n)
		return;
	s = &p->slots[idx];
	if (s->active != NULL || s->dialing != NULL || evtimer_pending(s->redial, NULL))
		return;
	if (lived_ms > QS_PEER_BACKOFF_RESET_MS)
		s->backoff_ms = QS_PEER_BACKOFF_MIN_MS;
	delay = qs_peers_jitter(s->backoff_ms);
	s->backoff_ms = s->backoff_ms >= QS_PEER_BACKOFF_MAX_MS / 2 ? QS_PEER_BACKOFF_MAX_MS
	                                                            : s->backoff_ms * 2;
	tv = qs_clock_tv_ms(delay);
	evtimer_add(s->redial, &tv);
}

/* A dial attempt failed before TLS: first one in a row at notice, then debug. */
static void
qs_slot_dial_failed(struct qs_slot *s, const char *what, int err)
{
	struct qs_peers *p = s->p;
	char addr[QS_PEER_ADDR_MAX];

	s->failures++;
	qs_peers_format_addr((const struct sockaddr *)&s->sa, addr, sizeof(addr));
	qs_log(s->failures == 1 ? LOG_NOTICE : LOG_DEBUG, "peer_dial_failed",
	       "peer=%s addr=%s step=%s error=\"%s\" failures=%u", qs_peers_name(p, s->idx), addr,
	       what, strerror(err), s->failures);
}

/* ---- connections ---- */

static struct qs_conn *
qs_conn_new(struct qs_peers *p, int dialed, const struct sockaddr *sa)
{
	struct qs_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->p = p;
	c->peer = -1;
	c->dialed = dialed;
	c->fd = -1;
	qs_peers_format_addr(sa, c->addr, sizeof(c->addr));
	LIST_INSERT_HEAD(&p->conns, c, link);
	return c;
}

static void qs_conn_deadline(evutil_socket_t fd, short what, void *arg);

static int
qs_conn_arm_deadline(struct qs_conn *c)
{
	struct timeval tv = qs_clock_tv_ms(QS_PEER_HANDSHAKE_TIMEOUT_MS);

	c->deadline = evtimer_new(c->p->base, qs_conn_deadline, c);
	if (c->deadline == NULL || evtimer_add(c->deadline, &tv) != 0)
		return -ENOMEM;
	return 0;
}

static const char *
qs_conn_direction(const struct qs_conn *c)
{
	return c->dialed >= 0 ? "outbound" : "inbound";
}

/* The detail of a bufferevent error: OpenSSL's first error, else the
 * socket's pending error. */
static void
qs_conn_error_detail(struct qs_conn *c, char *buf, size_t len)
{
	unsigned long e, first = 0;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	evutil_socket_t fd;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (first == 0)
			first = e;
	if (first != 0) {
		ERR_error_string_n(first, buf, len);
		return;
	}
	fd = bufferevent_getfd(c->bev);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
		snprintf(buf, len, "%s", strerror(soerr));
	else
		snprintf(buf, len, "connection error");
}

static void
qs_conn_free(struct qs_conn *c)
{
	free(c);
}

/* A usable connection ended: log and count it as a disconnect. */
static void
qs_conn_report_disconnect(struct qs_conn *c, enum qs_why why, const char *detail)
{
	struct qs_peers *p = c->p;
	int prio;

	if (why >= QS_WHY_N_DISCONNECT)
		why = QS_WHY_ERROR;
	switch (why) {
	case QS_WHY_EOF:
	case QS_WHY_REPLACED:
	case QS_WHY_ADDRESS_CHANGED:
		prio = LOG_NOTICE;
		break;
	case QS_WHY_SHUTDOWN:
		prio = LOG_INFO;
		break;
	default:
		prio = LOG_WARNING;
		break;
	}
	qs_metric_add(p->m_disconnects, (size_t)why, 1);
	qs_log(prio, "peer_closed", "peer=%s direction=%s addr=%s reason=%s detail=\"%s\"",
	       qs_peers_name(p, c->peer), qs_conn_direction(c), c->addr, qs_why_names[why], detail);
}

/*
 * A connection failed before its Hello was accepted: log and count it as a
 * handshake failure. A bad first frame is hello_invalid; a transport error
 * is handshake_error unless our own TLS refusal caused it, which names the
 * reason better. Our own dials log the first failure in a row at notice and
 * the rest at debug, so an absent peer costs one line.
 */
static void
qs_conn_report_handshake(struct qs_conn *c, enum qs_why why, const char *detail)
{
	struct qs_peers *p = c->p;
	const char *tls_reason = NULL;
	int prio = LOG_WARNING;

	if (why == QS_WHY_EOF || why == QS_WHY_ERROR)
		why = QS_WHY_HANDSHAKE_ERROR;
	else if (why < QS_WHY_N_DISCONNECT)
		why = QS_WHY_HELLO_INVALID;
	if (why == QS_WHY_HANDSHAKE_ERROR && c->bev != NULL)
		tls_reason = qs_tls_failure_reason(bufferevent_openssl_get_ssl(c->bev));
	for (int i = QS_WHY_N_DISCONNECT; tls_reason != NULL && i < QS_WHY_N; i++)
		if (strcmp(qs_why_names[i], tls_reason) == 0)
			why = (enum qs_why)i;
	qs_metric_add(p->m_handshake_failures, (size_t)(why - QS_WHY_N_DISCONNECT), 1);
	if (c->dialed >= 0) {
		p->slots[c->dialed].failures++;
		prio = p->slots[c->dialed].failures == 1 ? LOG_NOTICE : LOG_DEBUG;
	}
	qs_log(prio, "peer_handshake_failed",
	       "peer=%s direction=%s addr=%s reason=%s "
	       "detail=\"%s\"",
	       qs_peers_name(p, c->peer >= 0 ? c->peer : c->dialed), qs_conn_direction(c), c->addr,
	       qs_why_names[why], detail);
}

/* Our TCP connect failed: not a handshake, just an absent peer. */
static void
qs_conn_report_dial(struct qs_conn *c, const char *detail)
{
	struct qs_slot *s = &c->p->slots[c->dialed];

	s->failures++;
	qs_log(s->failures == 1 ? LOG_NOTICE : LOG_DEBUG, "peer_dial_failed",
	       "peer=%s addr=%s step=connect error=\"%s\" failures=%u",
	       qs_peers_name(c->p, c->dialed), c->addr, detail, s->failures);
}

/* Unlink `c` from everything and release its socket, events and TLS. */
static void
qs_conn_detach(struct qs_conn *c)
{
	struct qs_peers *p = c->p;

	c->dead = true;
	LIST_REMOVE(c, link);
	if (c->pending_inbound)
		p->n_pending_inbound--;
	c->pending_inbound = false;
	if (c->dialed >= 0 && p->slots[c->dialed].dialing == c)
		p->slots[c->dialed].dialing = NULL;
	if (c->state == QS_CONN_READY && p->slots[c->peer].active == c) {
		p->slots[c->peer].active = NULL;
		qs_metric_set(p->m_connected, (size_t)c->peer, 0);
	}
	if (c->deadline != NULL)
		event_free(c->deadline);
	c->deadline = NULL;
	if (c->connect_ev != NULL)
		event_free(c->connect_ev);
	c->connect_ev = NULL;
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	c->fd = -1;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
}

/*
 * Close `c` (see the top of the file): log, count, detach, tell the handler
 * if it was usable, and redial if the validator is ours to dial. Closing at
 * shutdown reports only usable connections.
 */
static void
qs_conn_close(struct qs_conn *c, enum qs_why why, const char *fmt, ...)
{
	struct qs_peers *p = c->p;
	char detail[QS_PEER_DETAIL_MAX] = "";
	bool was_ready = c->state == QS_CONN_READY;
	uint64_t lived_ms = 0;
	int idx;
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (was_ready) {
		lived_ms = qs_clock_mono_ms() - c->ready_ms;
		qs_conn_report_disconnect(c, why, detail);
	} else if (why == QS_WHY_SHUTDOWN || why == QS_WHY_ADDRESS_CHANGED) {
		/* Our own decision, not a failure of the peer. */
	} else if (c->state == QS_CONN_CONNECTING) {
		qs_conn_report_dial(c, detail);
	} else {
		qs_conn_report_handshake(c, why, detail);
	}
	qs_conn_detach(c);
	idx = was_ready ? c->peer : c->dialed;
	if (was_ready && !p->freeing && p->h.on_state != NULL) {
		c->busy++;
		p->h.on_state(p->arg, c->peer, 0);
		c->busy--;
	}
	if (why != QS_WHY_REPLACED)
		qs_slot_schedule(p, idx, lived_ms);
	if (c->busy == 0)
		qs_conn_free(c);
}

static void
qs_conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct qs_conn *c = arg;

	if (c->state == QS_CONN_CONNECTING)
		qs_conn_close(c, QS_WHY_ERROR, "%s", strerror(ETIMEDOUT));
	else
		qs_conn_close(c, QS_WHY_TIMEOUT, "no Hello within %d ms",
		              QS_PEER_HANDSHAKE_TIMEOUT_MS);
}

/* Send our Hello; the first frame in each direction. */
static int
qs_conn_send_hello(struct qs_conn *c)
{
	struct qs_peers *p = c->p;
	Quorumstore__V1__Hello hello = QUORUMSTORE__V1__HELLO__INIT;
	Quorumstore__V1__PeerMessage msg = QUORUMSTORE__V1__PEER_MESSAGE__INIT;

	hello.epoch = p->cfg->epoch;
	hello.author.data = p->signing_key;
	hello.author.len = sizeof(p->signing_key);
	hello.protocol_version = QS_PROTOCOL_VERSION;
	hello.chain_id = p->cfg->chain_id;
	hello.now_us = qs_clock_wall_us();
	msg.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO;
	msg.hello = &hello;
	return qs_frame_write(bufferevent_get_output(c->bev), &msg.base, p->frame_max);
}

/* The TLS handshake completed: name the peer from its pinned key. */
static void
qs_conn_handshake_done(struct qs_conn *c)
{
	struct qs_peers *p = c->p;
	int idx = qs_tls_peer_index(bufferevent_openssl_get_ssl(c->bev));
	int rc;

	if (idx < 0 || (size_t)idx >= p->n || idx == p->self) {
		qs_conn_close(c, QS_WHY_UNKNOWN_KEY, "no pinned key after the handshake");
		return;
	}
	if (c->dialed >= 0 && idx != c->dialed) {
		qs_conn_close(c, QS_WHY_UNKNOWN_KEY, "dialed %s but the key is %s's",
		              qs_peers_name(p, c->dialed), qs_peers_name(p, idx));
		return;
	}
	c->peer = idx;
	rc = qs_conn_send_hello(c);
	if (rc != 0) {
		qs_conn_close(c, QS_WHY_HANDSHAKE_ERROR, "cannot queue our Hello: %s",
		              qs_strerror(rc));
		return;
	}
	c->state = QS_CONN_HELLO;
	qs_conn_process(c); /* their Hello may have come with the handshake */
}

/* Their Hello arrived: check it, then make `c` the validator's connection. */
static void
qs_conn_hello(struct qs_conn *c, const Quorumstore__V1__PeerMessage *msg)
{
	struct qs_peers *p = c->p;
	const struct qs_validator *v = &p->cfg->validators[c->peer];
	const Quorumstore__V1__Hello *h = msg->hello;
	struct qs_slot *s = &p->slots[c->peer];
	uint64_t now_us = qs_clock_wall_us();
	struct timeval stall;
	int64_t skew_us;

	if (msg->msg_case != QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO || h == NULL) {
		qs_conn_close(c, QS_WHY_HELLO_INVALID, "first message is not a Hello (case %d)",
		              (int)msg->msg_case);
		return;
	}
	if (h->protocol_version != QS_PROTOCOL_VERSION) {
		qs_conn_close(c, QS_WHY_HELLO_INVALID, "protocol_version %" PRIu32 ", ours %d",
		              h->protocol_version, QS_PROTOCOL_VERSION);
		return;
	}
	if (h->chain_id != p->cfg->chain_id) {
		qs_conn_close(c, QS_WHY_HELLO_INVALID, "chain_id %" PRIu32 ", ours %" PRIu32,
		              h->chain_id, p->cfg->chain_id);
		return;
	}
	if (h->author.len != QS_KEY_BYTES ||
	    memcmp(h->author.data, v->signing_key, QS_KEY_BYTES) != 0) {
		qs_conn_close(c, QS_WHY_HELLO_INVALID, "author is not %s's signing key", v->name);
		return;
	}
	if (h->epoch != p->cfg->epoch)
		qs_log_notice("peer_epoch_differs", "peer=%s epoch=%" PRIu64 " ours=%" PRIu64,
		              v->name, h->epoch, p->cfg->epoch);
	skew_us = (int64_t)(h->now_us > INT64_MAX ? INT64_MAX : h->now_us) - (int64_t)now_us;
	/* The write stall, for the usable connection this becomes: libevent's
	 * write timeout runs only while output is pending and restarts on
	 * every write that makes progress. */
	stall = qs_clock_tv_ms(QS_PEER_WRITE_STALL_MS);
	if (bufferevent_set_timeouts(c->bev, NULL, &stall) != 0) {
		qs_conn_close(c, QS_WHY_HANDSHAKE_ERROR, "cannot arm the write-stall timeout");
		return;
	}

	if (s->active != NULL) {
		qs_log_notice("peer_replaced",
		              "peer=%s old_direction=%s old_addr=%s "
		              "new_direction=%s new_addr=%s",
		              v->name, qs_conn_direction(s->active), s->active->addr,
		              qs_conn_direction(c), c->addr);
		qs_conn_close(s->active, QS_WHY_REPLACED, "a new connection completed its Hello");
	}
	if (c->dialed >= 0 && s->dialing == c)
		s->dialing = NULL;
	if (c->pending_inbound)
		p->n_pending_inbound--;
	c->pending_inbound = false;
	if (c->deadline != NULL)
		event_free(c->deadline);
	c->deadline = NULL;
	c->state = QS_CONN_READY;
	c->ready_ms = qs_clock_mono_ms();
	s->active = c;
	s->failures = 0;
	s->skew_us = skew_us;
	qs_metric_set(p->m_connected, (size_t)c->peer, 1);
	qs_metric_set(p->m_skew, (size_t)c->peer,
	              (skew_us + (skew_us >= 0 ? 500000 : -500000)) / 1000000);
	qs_log_info("peer_connected",
	            "peer=%s direction=%s addr=%s epoch=%" PRIu64 " skew_us=%" PRId64, v->name,
	            qs_conn_direction(c), c->addr, h->epoch, skew_us);
	if (!p->reading)
		bufferevent_disable(c->bev, EV_READ);
	if (p->h.on_state != NULL)
		p->h.on_state(p->arg, c->peer, 1); /* c->busy: in qs_conn_process() */
}

/*
 * Take every whole frame from the input, while the connection lives and,
 * once READY, while reading is enabled. Frames left in the buffer wait for
 * the next read or for qs_peers_set_reading(p, 1).
 */
static void
qs_conn_process(struct qs_conn *c)
{
	struct qs_peers *p = c->p;
	Quorumstore__V1__PeerMessage *msg;
	ProtobufCMessage *m = NULL;
	struct evbuffer *in;
	size_t before;
	char detail[QS_PEER_DETAIL_MAX];
	int rc;

	c->busy++;
	while (!c->dead &&
	       (c->state == QS_CONN_HELLO || (c->state == QS_CONN_READY && p->reading))) {
		in = bufferevent_get_input(c->bev);
		before = evbuffer_get_length(in);
		rc = qs_frame_read(in, p->frame_max, &quorumstore__v1__peer_message__descriptor,
		                   p->budget, &m);
		if (rc == 0)
			break;
		if (rc < 0) {
			qs_frame_read_failure(rc, in, before, p->frame_max, detail, sizeof(detail));
			qs_conn_close(c,
			              rc == QS_ELIMIT    ? QS_WHY_OVERSIZED_FRAME
			              : rc == QS_EDECODE ? QS_WHY_UNDECODABLE
			                                 : QS_WHY_ERROR,
			              "%s", detail);
			break;
		}
		qs_metric_add(p->m_frames, 0, 1);
		qs_metric_add(p->m_bytes, 0, before - evbuffer_get_length(in));
		msg = (Quorumstore__V1__PeerMessage *)m;
		if (c->state == QS_CONN_HELLO) {
			qs_conn_hello(c, msg);
			qs_frame_msg_free(m);
			continue;
		}
		if (msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG__NOT_SET) {
			qs_frame_msg_free(m);
			qs_conn_close(c, QS_WHY_UNEXPECTED_MESSAGE,
			              "a PeerMessage with no field set");
			break;
		}
		if (msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO) {
			qs_frame_msg_free(m);
			qs_conn_close(c, QS_WHY_UNEXPECTED_MESSAGE, "a second Hello");
			break;
		}
		p->h.on_message(p->arg, c->peer, msg);
	}
	c->busy--;
	if (c->dead && c->busy == 0)
		qs_conn_free(c);
}

static void
qs_conn_read(struct bufferevent *bev, void *arg)
{
	struct qs_conn *c = arg;

	if (c->state == QS_CONN_HELLO || c->state == QS_CONN_READY)
		qs_conn_process(c);
}

static void
qs_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct qs_conn *c = arg;
	char detail[QS_PEER_DETAIL_MAX];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == QS_CONN_HANDSHAKE)
			qs_conn_handshake_done(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		qs_conn_close(c, QS_WHY_EOF, "the peer closed the connection");
	} else if (what & BEV_EVENT_ERROR) {
		qs_conn_error_detail(c, detail, sizeof(detail));
		qs_conn_close(c, QS_WHY_ERROR, "%s", detail);
	} else if (what & BEV_EVENT_TIMEOUT) {
		/* Only the write timeout is set, from READY on. */
		qs_conn_close(c, QS_WHY_SLOW_READER, "no byte written for %d ms, %zu unsent",
		              QS_PEER_WRITE_STALL_MS,
		              evbuffer_get_length(bufferevent_get_output(bev)));
	}
}

/* Wrap a connected socket in TLS; `fd` is owned by the connection on return. */
static int
qs_conn_start_tls(struct qs_conn *c, evutil_socket_t fd, enum bufferevent_ssl_state state)
{
	struct qs_peers *p = c->p;
	SSL *ssl;

	ssl = SSL_new(state == BUFFEREVENT_SSL_ACCEPTING ? p->server_ctx : p->client_ctx);
	if (ssl == NULL) {
		ERR_clear_error();
		c->fd = fd;
		return -ENOMEM;
	}
	c->bev = bufferevent_openssl_socket_new(p->base, fd, ssl, state,
	                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		/* libevent frees the SSL on this path (BEV_OPT_CLOSE_ON_FREE)
		 * but not the socket. */
		c->fd = fd;
		return -ENOMEM;
	}
	c->fd = -1;
	c->state = QS_CONN_HANDSHAKE;
	/* A peer that crashed sends no close_notify; that is an end of
	 * stream like any other (the framing detects truncation). */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, qs_conn_read, NULL, qs_conn_event, c);
	if (qs_frame_bev_tune(c->bev) != 0 || bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		return -ENOMEM;
	return 0;
}

/* ---- outbound ---- */

static void
qs_conn_connect_done(evutil_socket_t fd, short what, void *arg)
{
	struct qs_conn *c = arg;
	int soerr = 0, rc;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr != 0) {
		qs_conn_close(c, QS_WHY_ERROR, "%s", strerror(soerr));
		return;
	}
	event_free(c->connect_ev);
	c->connect_ev = NULL;
	c->fd = -1;
	rc = qs_conn_start_tls(c, fd, BUFFEREVENT_SSL_CONNECTING);
	if (rc != 0)
		qs_conn_close(c, QS_WHY_HANDSHAKE_ERROR, "cannot start TLS: %s", qs_strerror(rc));
}

static void
qs_slot_dial(evutil_socket_t unused, short what, void *arg)
{
	struct qs_slot *s = arg;
	struct qs_peers *p = s->p;
	struct qs_conn *c = NULL;
	evutil_socket_t fd;
	int rc;

	if (s->active != NULL || s->dialing != NULL)
		return;
	fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		qs_slot_dial_failed(s, "socket", errno);
		qs_slot_schedule(p, s->idx, 0);
		return;
	}
	qs_peers_tune_socket(fd);
	if (connect(fd, (const struct sockaddr *)&s->sa, s->sa_len) != 0 && errno != EINPROGRESS) {
		rc = errno;
		evutil_closesocket(fd);
		qs_slot_dial_failed(s, "connect", rc);
		qs_slot_schedule(p, s->idx, 0);
		return;
	}
	c = qs_conn_new(p, s->idx, (const struct sockaddr *)&s->sa);
	if (c == NULL) {
		evutil_closesocket(fd);
		qs_slot_dial_failed(s, "connect", ENOMEM);
		qs_slot_schedule(p, s->idx, 0);
		return;
	}
	c->state = QS_CONN_CONNECTING;
	c->fd = fd;
	s->dialing = c;
	c->connect_ev = event_new(p->base, fd, EV_WRITE, qs_conn_connect_done, c);
	if (c->connect_ev == NULL || event_add(c->connect_ev, NULL) != 0 ||
	    qs_conn_arm_deadline(c) != 0)
		qs_conn_close(c, QS_WHY_ERROR, "%s", strerror(ENOMEM));
}

/* ---- inbound ---- */

static void
qs_peers_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                void *arg)
{
	struct qs_peers *p = arg;
	struct qs_conn *c;
	char addr[QS_PEER_ADDR_MAX];
	int rc;

	if (p->n_pending_inbound >= QS_PEER_MAX_PENDING) {
		qs_peers_format_addr(sa, addr, sizeof(addr));
		qs_metric_add(p->m_handshake_failures, QS_WHY_HANDSHAKE_ERROR - QS_WHY_N_DISCONNECT,
		              1);
		qs_log_warn("peer_handshake_failed",
		            "peer=- direction=inbound addr=%s "
		            "reason=handshake_error detail=\"%d connections already in handshake\"",
		            addr, QS_PEER_MAX_PENDING);
		evutil_closesocket(fd);
		return;
	}
	c = qs_conn_new(p, -1, sa);
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->pending_inbound = true;
	p->n_pending_inbound++;
	c->state = QS_CONN_HANDSHAKE;
	qs_peers_tune_socket(fd);
	rc = qs_conn_arm_deadline(c);
	if (rc == 0)
		rc = qs_conn_start_tls(c, fd, BUFFEREVENT_SSL_ACCEPTING);
	else
		c->fd = fd;
	if (rc != 0)
		qs_conn_close(c, QS_WHY_HANDSHAKE_ERROR, "cannot start TLS: %s", qs_strerror(rc));
}

static void
qs_peers_accept_error(struct evconnlistener *l, void *arg)
{
	struct qs_peers *p = arg;
	struct timeval tv = qs_clock_tv_ms(QS_PEER_ACCEPT_RETRY_MS);
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends leave the connection queued: pause instead of
	 * spinning on it. */
	qs_log_warn("peer_accept_failed", "error=\"%s\" retry_ms=%d", strerror(err),
	            QS_PEER_ACCEPT_RETRY_MS);
	evconnlistener_disable(l);
	evtimer_add(p->accept_retry, &tv);
}

static void
qs_peers_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct qs_peers *p = arg;

	evconnlistener_enable(p->listener);
}

/* ---- public ---- */

static void
qs_peers_resume(evutil_socket_t fd, short what, void *arg)
{
	struct qs_peers *p = arg;

	for (size_t i = 0; i < p->n && p->reading; i++) {
		struct qs_conn *c = p->slots[i].active;

		if (c != NULL && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
			qs_conn_process(c);
	}
}

static struct qs_metric *
qs_peers_registered(struct qs_metric *m, const char *name)
{
	if (m == NULL) {
		fprintf(stderr, "qs_peers: cannot register metric %s\n", name);
		abort();
	}
	return m;
}

static void
qs_peers_register_metrics(struct qs_peers *p, struct qs_metrics *reg)
{
	const char *names[QS_METRICS_MAX_VALUES];

	if (reg == NULL)
		return;
	p->m_handshake_failures = qs_peers_registered(
	    qs_metrics_counter(reg, "qsd_tls_handshake_failures_total",
	                       "Peer connections that failed before their Hello was "
	                       "accepted, by reason.",
	                       "reason", &qs_why_names[QS_WHY_N_DISCONNECT],
	                       QS_WHY_N - QS_WHY_N_DISCONNECT),
	    "qsd_tls_handshake_failures_total");
	p->m_disconnects =
	    qs_peers_registered(qs_metrics_counter(reg, "qsd_peer_disconnects_total",
	                                           "Usable peer connections closed, by reason.",
	                                           "reason", qs_why_names, QS_WHY_N_DISCONNECT),
	                        "qsd_peer_disconnects_total");
	p->m_frames =
	    qs_peers_registered(qs_metrics_counter(reg, "qsd_peer_frames_received_total",
	                                           "Frames received from peers.", NULL, NULL, 0),
	                        "qsd_peer_frames_received_total");
	p->m_bytes = qs_peers_registered(
	    qs_metrics_counter(reg, "qsd_peer_bytes_received_total",
	                       "Bytes of frames received from peers, headers included.", NULL, NULL,
	                       0),
	    "qsd_peer_bytes_received_total");
	if (p->n > QS_METRICS_MAX_VALUES) {
		qs_log_notice("peer_metrics_reduced",
		              "validators=%zu max_label_values=%d "
		              "detail=\"no per-peer metrics\"",
		              p->n, QS_METRICS_MAX_VALUES);
		return;
	}
	for (size_t i = 0; i < p->n; i++)
		names[i] = p->cfg->validators[i].name;
	p->m_connected = qs_peers_registered(
	    qs_metrics_gauge(reg, "qsd_peer_connected",
	                     "1 while the validator has a usable peer connection.", "peer", names,
	                     p->n),
	    "qsd_peer_connected");
	p->m_skew = qs_peers_registered(
	    qs_metrics_gauge(reg, "qsd_peer_clock_skew_seconds",
	                     "The validator's clock minus ours, from its last Hello, "
	                     "rounded to whole seconds.",
	                     "peer", names, p->n),
	    "qsd_peer_clock_skew_seconds");
}

/* Checks that the keys we were given are ours in the config. */
static int
qs_peers_check_self(const struct qs_config *cfg, int self, EVP_PKEY *network_key,
                    const uint8_t self_signing_key[32], char *err, size_t errlen)
{
	uint8_t raw[QS_KEY_BYTES];
	size_t len = sizeof(raw);

	if (self < 0 || (size_t)self >= cfg->n_validators) {
		qs_errf(err, errlen, "peers: self index %d is not a validator (0..%zu)", self,
		        cfg->n_validators);
		return QS_ECONFIG;
	}
	if (network_key == NULL || EVP_PKEY_get_raw_public_key(network_key, raw, &len) != 1 ||
	    len != sizeof(raw) ||
	    memcmp(raw, cfg->validators[self].network_key, sizeof(raw)) != 0) {
		ERR_clear_error();
		qs_errf(err, errlen,
		        "peers: the network key is not validators[%d] "
		        "(%s)'s network_key",
		        self, cfg->validators[self].name);
		return QS_ECONFIG;
	}
	if (memcmp(self_signing_key, cfg->validators[self].signing_key, QS_KEY_BYTES) != 0) {
		qs_errf(err, errlen,
		        "peers: the signing key is not validators[%d] "
		        "(%s)'s signing_key",
		        self, cfg->validators[self].name);
		return QS_ECONFIG;
	}
	return 0;
}

int
qs_peers_start(struct event_base *base, const struct qs_config *cfg, int self,
               EVP_PKEY *network_key, const uint8_t self_signing_key[32],
               const struct qs_peers_handlers *h, void *arg, struct qs_metrics *metrics,
               struct qs_peers **out, char *err, size_t errlen)
{
	struct sockaddr_storage listen_sa;
	socklen_t listen_len;
	struct timeval now = {0, 0};
	struct qs_peers *p = NULL;
	size_t four_frames;
	int rc;

	rc = qs_peers_check_self(cfg, self, network_key, self_signing_key, err, errlen);
	if (rc != 0)
		goto out;
	if (h == NULL || h->on_message == NULL) {
		rc = QS_ECONFIG;
		qs_errf(err, errlen, "peers: no message handler");
		goto out;
	}
	if (qs_addr_parse(cfg->listen, &listen_sa, &listen_len, NULL) != 0) {
		rc = QS_ECONFIG;
		qs_errf(err, errlen,
		        "peers: listen \"%s\": expected a numeric "
		        "A.B.C.D:PORT or [IPv6]:PORT",
		        cfg->listen ? cfg->listen : "");
		goto out;
	}
	rc = -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto nomem;
	LIST_INIT(&p->conns);
	p->base = base;
	p->cfg = cfg;
	p->self = self;
	p->n = cfg->n_validators;
	p->h = *h;
	p->arg = arg;
	p->reading = true;
	memcpy(p->signing_key, self_signing_key, sizeof(p->signing_key));
	p->frame_max = cfg->limits.frame_max_bytes > UINT32_MAX
	                   ? UINT32_MAX
	                   : (size_t)cfg->limits.frame_max_bytes;
	p->budget = QS_PEER_DECODE_BUDGET(p->frame_max);
	four_frames = 4 * (p->frame_max + QS_FRAME_HEADER_BYTES);
	p->outbuf_max =
	    four_frames > QS_PEER_OUTBUF_MAX_BYTES ? four_frames : QS_PEER_OUTBUF_MAX_BYTES;
	p->slots = calloc(p->n, sizeof(*p->slots));
	if (p->slots == NULL)
		goto nomem;
	for (size_t i = 0; i < p->n; i++) {
		struct qs_slot *s = &p->slots[i];

		s->p = p;
		s->idx = (int)i;
		s->backoff_ms = QS_PEER_BACKOFF_MIN_MS;
		if ((int)i == self)
			continue;
		if (qs_addr_parse(cfg->validators[i].address, &s->sa, &s->sa_len, NULL) != 0) {
			rc = QS_ECONFIG;
			qs_errf(err, errlen,
			        "peers: validators[%zu] (%s) address \"%s\": "
			        "the peer transport needs a numeric A.B.C.D:PORT or "
			        "[IPv6]:PORT",
			        i, cfg->validators[i].name, cfg->validators[i].address);
			goto out;
		}
		if ((int)i > self) {
			s->redial = evtimer_new(base, qs_slot_dial, s);
			if (s->redial == NULL)
				goto nomem;
		}
	}
	rc = qs_tls_ctx_new(network_key, 1, qs_peers_pin, p, &p->server_ctx, err, errlen);
	if (rc != 0)
		goto out;
	rc = qs_tls_ctx_new(network_key, 0, qs_peers_pin, p, &p->client_ctx, err, errlen);
	if (rc != 0)
		goto out;
	rc = -ENOMEM;
	p->resume = event_new(base, -1, 0, qs_peers_resume, p);
	p->accept_retry = evtimer_new(base, qs_peers_accept_resume, p);
	if (p->resume == NULL || p->accept_retry == NULL)
		goto nomem;
	/* libevent keeps bind()'s or listen()'s errno when it fails. */
	errno = 0;
	p->listener = evconnlistener_new_bind(
	    base, qs_peers_accept, p,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    QS_PEER_LISTEN_BACKLOG, (struct sockaddr *)&listen_sa, (int)listen_len);
	if (p->listener == NULL) {
		rc = errno != 0 ? -errno : -EADDRNOTAVAIL;
		qs_errf(err, errlen, "peers: listen %s: %s", cfg->listen, strerror(-rc));
		goto out;
	}
	evconnlistener_set_error_cb(p->listener, qs_peers_accept_error);
	qs_peers_register_metrics(p, metrics);
	/* The first dials run from the loop, so no handler runs before we return. */
	for (size_t i = (size_t)self + 1; i < p->n; i++)
		evtimer_add(p->slots[i].redial, &now);
	qs_log_debug("peer_listening", "listen=%s self=%s validators=%zu", cfg->listen,
	             cfg->validators[self].name, p->n);
	*out = p;
	p = NULL;
	rc = 0;
	goto out;
nomem:
	rc = -ENOMEM;
	qs_errf(err, errlen, "peers: out of memory");
out:
	qs_peers_free(p);
	return rc;
}

/* After something was queued on `c`: a peer with more than outbuf_max bytes
 * unsent is not reading, and is closed as a slow reader. Returns 0, or
 * -ENOTCONN when it was closed. */
static int
qs_conn_check_backlog(struct qs_conn *c)
{
	struct qs_peers *p = c->p;
	size_t len = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (len <= p->outbuf_max)
		return 0;
	qs_conn_close(c, QS_WHY_SLOW_READER, "%zu bytes unsent, limit %zu", len, p->outbuf_max);
	return -ENOTCONN;
}

int
qs_peers_send(struct qs_peers *p, int peer, const Quorumstore__V1__PeerMessage *msg)
{
	struct qs_conn *c;
	int rc;

	if (peer < 0 || (size_t)peer >= p->n || p->slots[peer].active == NULL)
		return -ENOTCONN;
	c = p->slots[peer].active;
	rc = qs_frame_write(bufferevent_get_output(c->bev), &msg->base, p->frame_max);
	if (rc != 0)
		return rc;
	return qs_conn_check_backlog(c);
}

/* One packed frame queued by reference on several connections; freed when
 * the last of them has sent or dropped it (all on the loop's thread). */
struct qs_shared_frame {
	size_t refs;
	uint8_t data[];
};

static void
qs_shared_frame_unref(const void *data, size_t len, void *arg)
{
	struct qs_shared_frame *f = arg;

	(void)data;
	(void)len;
	if (--f->refs == 0)
		free(f);
}

int
qs_peers_broadcast(struct qs_peers *p, const Quorumstore__V1__PeerMessage *msg)
{
	struct qs_shared_frame *f;
	struct qs_conn *c;
	size_t len, flen;
	int sent = 0;

	if (qs_frame_size(&msg->base, p->frame_max, &len) != 0)
		return QS_ELIMIT;
	flen = QS_FRAME_HEADER_BYTES + len;
	f = malloc(sizeof(*f) + flen);
	if (f == NULL)
		return -ENOMEM;
	f->refs = 1; /* ours, until every connection holds its own */
	qs_frame_pack(&msg->base, len, f->data);
	for (size_t i = 0; i < p->n; i++) {
		c = p->slots[i].active;
		if (c == NULL)
			continue;
		f->refs++;
		if (evbuffer_add_reference(bufferevent_get_output(c->bev), f->data, flen,
		                           qs_shared_frame_unref, f) != 0) {
			f->refs--;
			continue;
		}
		if (qs_conn_check_backlog(c) == 0)
			sent++;
	}
	qs_shared_frame_unref(NULL, 0, f);
	return sent;
}

int
qs_peers_connected(const struct qs_peers *p, int peer)
{
	return peer >= 0 && (size_t)peer < p->n && p->slots[peer].active != NULL;
}

int64_t
qs_peers_clock_skew_us(const struct qs_peers *p, int peer)
{
	return peer >= 0 && (size_t)peer < p->n ? p->slots[peer].skew_us : 0;
}

void
qs_peers_set_reading(struct qs_peers *p, int enabled)
{
	bool on = enabled != 0;

	if (p->reading == on)
		return;
	p->reading = on;
	for (size_t i = 0; i < p->n; i++) {
		struct qs_conn *c = p->slots[i].active;

		if (c == NULL)
			continue;
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	}
	/* Frames already in the input buffers bring no read event. */
	if (on)
		event_active(p->resume, 0, 0);
}

void
qs_peers_close(struct qs_peers *p, int peer, const char *reason)
{
	if (peer < 0 || (size_t)peer >= p->n || p->slots[peer].active == NULL)
		return;
	qs_conn_close(p->slots[peer].active, QS_WHY_PROTOCOL_VIOLATION, "%s",
	              reason != NULL ? reason : "");
}

/* Redial validator `s` at its new address: drop what we dialed to the old
 * one and start again without backoff. */
static void
qs_slot_redial_now(struct qs_slot *s, const char *old, const char *new)
{
	struct qs_peers *p = s->p;
	struct qs_conn *active = s->active;

	s->backoff_ms = QS_PEER_BACKOFF_MIN_MS;
	s->failures = 0;
	evtimer_del(s->redial);
	if (s->dialing != NULL)
		qs_conn_close(s->dialing, QS_WHY_ADDRESS_CHANGED, "address %s -> %s", old, new);
	/* A usable connection we dialed goes too; one the validator dialed
	 * proves it reaches us and stays. */
	if (active != NULL && active->dialed >= 0)
		qs_conn_close(active, QS_WHY_ADDRESS_CHANGED, "address %s -> %s", old, new);
	qs_slot_schedule(p, s->idx, 0);
}

int
qs_peers_reload(struct qs_peers *p)
{
	const struct qs_config *cfg = p->cfg;
	struct sockaddr_storage sa;
	char old[QS_PEER_ADDR_MAX], new[QS_PEER_ADDR_MAX];
	socklen_t len;
	size_t four_frames;
	int rc = 0;

	p->frame_max = cfg->limits.frame_max_bytes > UINT32_MAX
	                   ? UINT32_MAX
	                   : (size_t)cfg->limits.frame_max_bytes;
	p->budget = QS_PEER_DECODE_BUDGET(p->frame_max);
	four_frames = 4 * (p->frame_max + QS_FRAME_HEADER_BYTES);
	p->outbuf_max =
	    four_frames > QS_PEER_OUTBUF_MAX_BYTES ? four_frames : QS_PEER_OUTBUF_MAX_BYTES;
	for (size_t i = 0; i < p->n && i < cfg->n_validators; i++) {
		struct qs_slot *s = &p->slots[i];

		if ((int)i == p->self)
			continue;
		memset(&sa, 0, sizeof(sa));
		if (qs_addr_parse(cfg->validators[i].address, &sa, &len, NULL) != 0) {
			qs_log_err("peer_address_invalid",
			           "peer=%s address=\"%s\" detail=\"kept the running address\"",
			           qs_peers_name(p, (int)i), cfg->validators[i].address);
			rc = QS_ECONFIG;
			continue;
		}
		if (len == s->sa_len && memcmp(&sa, &s->sa, len) == 0)
			continue;
		qs_peers_format_addr((const struct sockaddr *)&s->sa, old, sizeof(old));
		qs_peers_format_addr((const struct sockaddr *)&sa, new, sizeof(new));
		s->sa = sa;
		s->sa_len = len;
		qs_log_notice("peer_address_changed", "peer=%s old=%s new=%s dial=%s",
		              qs_peers_name(p, (int)i), old, new, (int)i > p->self ? "yes" : "no");
		if ((int)i > p->self)
			qs_slot_redial_now(s, old, new);
	}
	return rc;
}

void
qs_peers_free(struct qs_peers *p)
{
	struct qs_conn *c;

	if (p == NULL)
		return;
	p->freeing = true;
	if (p->listener != NULL)
		evconnlistener_free(p->listener);
	while ((c = LIST_FIRST(&p->conns)) != NULL)
		qs_conn_close(c, QS_WHY_SHUTDOWN, "shutting down");
	for (size_t i = 0; p->slots != NULL && i < p->n; i++)
		if (p->slots[i].redial != NULL)
			event_free(p->slots[i].redial);
	if (p->accept_retry != NULL)
		event_free(p->accept_retry);
	if (p->resume != NULL)
		event_free(p->resume);
	SSL_CTX_free(p->server_ctx);
	SSL_CTX_free(p->client_ctx);
	free(p->slots);
	free(p);
}
