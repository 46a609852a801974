/*
 * qsbench: load generator and verifier for qsd, over the real peer protocol
 * and the RPC socket.
 *
 *   qsbench run -d DIR [options]            drive a node as one or more validators
 *   qsbench submit -d DIR [options]         drive a node as its consensus process
 *   qsbench verify -d DIR -f RECORD [opts]  fetch recorded batches back and check them
 *
 * DIR is a cluster written by tools/mkcluster: DIR/vI/qsd.yaml and
 * DIR/vI/keys/. Each simulated validator is one TLS connection made with that
 * validator's own network key, so the target sees exactly what a real peer
 * would send. Payloads are derived from (seed, author, payload_id, txn index),
 * where payload_id is the batch_id for run and a per-run counter for submit
 * (qsd assigns the batch_id), so `verify` regenerates them from a one-line
 * record instead of storing them.
 *
 * See docs/qsbench.md. Exit status: 0 success; 1 a bad signature, protocol
 * error, failed connection or failed verification; 2 usage or config error.
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "client/qsclient.h"
#include "config/config.h"
#include "core/addr.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "daemon/clock.h"
#include "daemon/keys.h"
#include "net/frame.h"
#include "net/tls.h"
#include "quorumstore/v1/peer.pb-c.h"

#ifndef QS_VERSION
#define QS_VERSION "0.0.0-unknown"
#endif

#define QSB_EXIT_FAIL  1
#define QSB_EXIT_USAGE 2

#define QSB_RETRY_US              200000  /* -R: reconnect period */
#define QSB_CONNECT_TIMEOUT_S     10      /* TCP + TLS + Hello */
#define QSB_VERIFY_TIMEOUT_S      30      /* silence while requests are outstanding */
#define QSB_VERIFY_RATE           900     /* requests/s; qsd serves 1000/s per peer */
#define QSB_VERIFY_RETRY_US       2000000 /* ask again when unanswered this long */
#define QSB_VERIFY_TRIES          5
#define QSB_VERIFY_SCAN_US        100000
/* qsd closes a peer whose unsent answers exceed 64 MiB as a slow reader. */
#define QSB_VERIFY_INFLIGHT_BYTES (16u << 20)
#define QSB_PACE_US               2000 /* -r: token refill period */
#define QSB_MAX_INFLIGHT          16384
#define QSB_RATE_INFLIGHT         1024 /* in-flight bound with -r and no -i */
#define QSB_MAX_BATCHES_PER_MSG   1024
#define QSB_MAX_TXNS              1000000
#define QSB_MAX_RATE              1000000
#define QSB_MAX_DURATION_S        (7 * 86400)
#define QSB_MAX_LIFETIME_S        (365 * 86400)
#define QSB_MAX_LAT_SAMPLES       (UINT32_C(1) << 27) /* 512 MiB; reservoir beyond */
#define QSB_MAX_REPORTS           10                  /* detailed messages per kind */
#define QSB_NACK_SLOTS            32 /* reasons 0..31, the rest counted as "other" */
#define QSB_RECORD_LINE_MAX       512
#define QSB_RECORD_FIELDS         9  /* written by run */
#define QSB_RECORD_FIELDS_MAX     10 /* written by submit: payload_id too */
/* Packed size of one Batch besides its transactions, and per transaction. */
#define QSB_BATCH_OVERHEAD        256
#define QSB_TXN_OVERHEAD          6
#define QSB_MSG_OVERHEAD          64
/* protobuf-c allocates at most this multiple of a frame's size while decoding. */
#define QSB_BUDGET_FACTOR         4

#define QSB_MIN(a, b) ((a) < (b) ? (a) : (b))

/* ---------------------------------------------------------------------------
 * Payload generator: shared by run and verify, documented in docs/qsbench.md.
 */

#define QSB_GOLDEN UINT64_C(0x9e3779b97f4a7c15)

static uint64_t
qsb_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Length of transaction i of a batch of n transactions splitting `bytes`. */
static size_t
qsb_txn_len(uint64_t bytes, uint32_t n, uint32_t i)
{
	return (size_t)(bytes / n + (i < bytes % n ? 1 : 0));
}

/*
 * The bytes of transaction `txn`: a splitmix64 stream, little-endian words.
 * `payload_id` is the batch_id for run; for submit, whose batch_id qsd
 * assigns, a per-run counter recorded beside it.
 */
static void
qsb_txn_fill(uint64_t seed, uint32_t author, uint64_t payload_id, uint32_t txn, uint8_t *p,
             size_t len)
{
	uint64_t x = qsb_mix64(seed + QSB_GOLDEN);

	x = qsb_mix64(x ^ author);
	x = qsb_mix64(x ^ payload_id);
	x = qsb_mix64(x ^ txn);
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t le;

		x += QSB_GOLDEN;
		le = htole64(qsb_mix64(x));
		memcpy(p, &le, 8);
	}
	if (len) {
		uint64_t v;
		size_t i;

		x += QSB_GOLDEN;
		v = qsb_mix64(x);
		for (i = 0; i < len; i++)
			p[i] = (uint8_t)(v >> (8 * i));
	}
}

/* ---------------------------------------------------------------------------
 * Small helpers.
 */

/* Decimal u64 in [min, max], nothing else (no sign, no spaces, no suffix). */
static int
qsb_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static const char *qsb_cmd = "qsbench";

static void qsb_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
qsb_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", qsb_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", usage);
}

/* Parse option -c's argument into *out or print why not. */
static int
qsb_opt_u64(const char *usage, int c, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	if (qsb_parse_u64(arg, min, max, out) == 0)
		return 0;
	qsb_usage_error(usage, "-%c: '%s' is not a number from %" PRIu64 " to %" PRIu64, c, arg,
	                min, max);
	return -EINVAL;
}

/* Name of a NackReason without its prefix, lower case ("overloaded"). */
static void
qsb_nack_name(unsigned reason, char *buf, size_t len)
{
	const ProtobufCEnumValue *v;
	const char *name;
	size_t i;

	v = protobuf_c_enum_descriptor_get_value(&quorumstore__v1__nack_reason__descriptor,
	                                         (int)reason);
	if (reason >= QSB_NACK_SLOTS) {
		snprintf(buf, len, "other");
		return;
	}
	if (!v) {
		snprintf(buf, len, "reason_%u", reason);
		return;
	}
	name = v->name;
	if (strncmp(name, "NACK_REASON_", 12) == 0)
		name += 12;
	for (i = 0; name[i] && i + 1 < len; i++)
		buf[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	buf[i] = '\0';
}

/* ---------------------------------------------------------------------------
 * Latency samples in microseconds: every sample (reservoir-sampled beyond
 * QSB_MAX_LAT_SAMPLES) and, apart, the current second's (QSB_TICK_LAT).
 */

#define QSB_TICK_LAT 8192 /* latency samples kept per second */

struct qsb_lat {
	uint32_t *all;
	size_t n_all, cap_all;
	uint64_t seen;
	uint32_t tick[QSB_TICK_LAT]; /* this second's latencies (reservoir) */
	size_t n_tick;
	uint64_t tick_seen;
	uint64_t rng;
};

static void
qsb_lat_add(struct qsb_lat *l, uint64_t us)
{
	uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;

	l->seen++;
	l->tick_seen++;
	if (l->n_tick < QSB_TICK_LAT) {
		l->tick[l->n_tick++] = v;
	} else {
		uint64_t j;

		l->rng += QSB_GOLDEN;
		j = qsb_mix64(l->rng) % l->tick_seen;
		if (j < QSB_TICK_LAT)
			l->tick[j] = v;
	}
	if (l->n_all == l->cap_all && l->cap_all < QSB_MAX_LAT_SAMPLES) {
		size_t cap =
		    l->cap_all ? QSB_MIN(2 * l->cap_all, (size_t)QSB_MAX_LAT_SAMPLES) : 4096;
		uint32_t *all = realloc(l->all, cap * sizeof(*all));

		if (all) {
			l->all = all;
			l->cap_all = cap;
		}
	}
	if (l->n_all < l->cap_all) {
		l->all[l->n_all++] = v;
	} else if (l->n_all) {
		/* Reservoir sampling once the array is at its bound. */
		uint64_t j;

		l->rng += QSB_GOLDEN;
		j = qsb_mix64(l->rng) % l->seen;
		if (j < l->n_all)
			l->all[j] = v;
	}
}

static int
qsb_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted samples; 0 without samples. */
static uint32_t
qsb_pct(const uint32_t *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	return v[QSB_MIN(k, n) - 1];
}

/* This second's median and 99th percentile, in ms; then start the next second. */
static void
qsb_lat_tick(struct qsb_lat *l, double *p50_ms, double *p99_ms)
{
	qsort(l->tick, l->n_tick, sizeof(l->tick[0]), qsb_u32_cmp);
	*p50_ms = qsb_pct(l->tick, l->n_tick, 0.50) / 1000.0;
	*p99_ms = qsb_pct(l->tick, l->n_tick, 0.99) / 1000.0;
	l->n_tick = 0;
	l->tick_seen = 0;
}

/* Sort every sample, for qsb_pct() over l->all. */
static void
qsb_lat_sort(struct qsb_lat *l)
{
	if (l->all)
		qsort(l->all, l->n_all, sizeof(*l->all), qsb_u32_cmp);
}

/* ---------------------------------------------------------------------------
 * Connections: one per simulated validator, TLS pinned to the target's
 * network key, Hello first in each direction. The command (run or verify)
 * plugs in through struct qsb_ops.
 */

struct qsb_peer;

struct qsb_ops {
	/* Hello was exchanged; the connection is usable. */
	void (*ready)(struct qsb_peer *p);
	/* A message after Hello. Returns 0, or a negative code to close the
	 * connection as a protocol error (the handler printed why). */
	int (*message)(struct qsb_peer *p, const Quorumstore__V1__PeerMessage *m);
	/* The connection ended. `was_ready`: Hello had been exchanged;
	 * `protocol_error`: it was closed because the target broke the protocol. */
	void (*closed)(struct qsb_peer *p, bool was_ready, bool protocol_error);
};

struct qsb_env {
	struct event_base *base;
	struct qs_config *cfg; /* the target's config */
	const char *dir;
	int target;
	const char *addr_str; /* cfg->validators[target].address */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	size_t frame_max;
	size_t budget;
	const struct qsb_ops *ops;
	void *cmd; /* struct qsb_run or struct qsb_verify */
	uint64_t protocol_errors;
	struct event *sig_int;
	struct event *sig_term;
};

enum qsb_state {
	QSB_DOWN,
	QSB_CONNECTING, /* TCP and TLS handshake */
	QSB_HELLO,      /* our Hello sent, waiting for the target's */
	QSB_READY,
};

/* Run-mode bookkeeping of one batch in flight. */
struct qsb_slot {
	struct qs_batch_info info;
	uint64_t sent_us; /* monotonic */
	bool used;
};

struct qsb_peer {
	struct qsb_env *env;
	int index; /* validator index, directory DIR/vI */
	EVP_PKEY *signing_key;
	uint8_t signing_pub[QS_PUBKEY_BYTES];
	SSL_CTX *ssl_ctx;
	struct bufferevent *bev;
	enum qsb_state state;
	bool ever_ready;
	bool stopped;      /* will not connect again */
	uint64_t attempts; /* failed connection attempts since the last success */
	struct event *retry_ev;

	/* run */
	struct qsb_slot *slots; /* indexed by sequence & slot_mask */
	uint32_t slot_mask;
	uint32_t inflight;
	uint64_t next_seq; /* batch_id = base + seq */
	uint64_t count;    /* with -c: batches to send */
	uint64_t sent;
	double tokens;
};

static int
qsb_pin(void *arg, const uint8_t key[32])
{
	struct qsb_env *env = arg;

	return memcmp(key, env->cfg->validators[env->target].network_key, QS_KEY_BYTES) == 0
	           ? env->target
	           : -1;
}

/* Why a bufferevent failed, in one line. */
static void
qsb_bev_reason(struct bufferevent *bev, short what, int sys_err, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	const char *refused = ssl ? qs_tls_failure_reason(ssl) : NULL;
	unsigned long e;
	size_t used = 0;
	int so_err = 0;
	socklen_t so_len = sizeof(so_err);
	evutil_socket_t fd;

	buf[0] = '\0';
	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(buf, len, "timed out");
		return;
	}
	if (refused) {
		snprintf(buf, len,
		         "we refused the target's certificate (%s): it is not the "
		         "configured network key",
		         refused);
		return;
	}
	while ((e = bufferevent_get_openssl_error(bev)) != 0 && used + 1 < len) {
		char one[256];

		/* libevent queues SSL_get_error() codes too (library 0): for
		 * SSL_ERROR_SYSCALL the reason is errno, below. */
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, one, sizeof(one));
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
	}
	if (used)
		return;
	/*
	 * With dirty shutdowns allowed, libevent reports a refused or reset
	 * connection as EOF; errno still says which (other values may be stale).
	 */
	switch (sys_err) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EPIPE:
		snprintf(buf, len, "%s", strerror(sys_err));
		return;
	default:
		break;
	}
	if (what & BEV_EVENT_EOF) {
		snprintf(buf, len, "closed by the target");
		return;
	}
	fd = bufferevent_getfd(bev);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &so_len) == 0 && so_err)
		sys_err = so_err;
	snprintf(buf, len, "%s", sys_err ? strerror(sys_err) : "connection failed");
}

static void qsb_peer_close(struct qsb_peer *p, bool protocol_error);
static void qsb_readcb(struct bufferevent *bev, void *arg);
static void qsb_eventcb(struct bufferevent *bev, short what, void *arg);

/* Start connecting; on failure the connection is closed through ops->closed. */
static void
qsb_peer_connect(struct qsb_peer *p)
{
	struct qsb_env *env = p->env;
	struct timeval tmo = {.tv_sec = QSB_CONNECT_TIMEOUT_S};
	SSL *ssl;
	int rc = -ENOMEM;

	ssl = SSL_new(p->ssl_ctx);
	if (!ssl)
		goto out;
	p->bev = bufferevent_openssl_socket_new(env->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!p->bev) {
		SSL_free(ssl);
		goto out;
	}
	p->state = QSB_CONNECTING;
	bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
	bufferevent_setcb(p->bev, qsb_readcb, NULL, qsb_eventcb, p);
	bufferevent_set_timeouts(p->bev, &tmo, &tmo);
	if (qs_frame_bev_tune(p->bev) != 0 || bufferevent_enable(p->bev, EV_READ | EV_WRITE) < 0)
		goto out;
	rc = 0;
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&env->addr, (int)env->addr_len) <
	    0)
		rc = errno ? -errno : -ECONNREFUSED;
out:
	if (rc && p->attempts == 0)
		fprintf(stderr, "%s: v%d: cannot connect to %s: %s\n", qsb_cmd, p->index,
		        env->addr_str, strerror(-rc));
	if (rc)
		qsb_peer_close(p, false);
}

static void
qsb_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qsb_peer *p = arg;

	if (!p->stopped && p->state == QSB_DOWN)
		qsb_peer_connect(p);
}

/* Reconnect after QSB_RETRY_US. Returns 0 or -ENOMEM. */
static int
qsb_peer_retry_later(struct qsb_peer *p)
{
	struct timeval tv = qs_clock_tv_us(QSB_RETRY_US);

	if (!p->retry_ev) {
		p->retry_ev = evtimer_new(p->env->base, qsb_retry_cb, p);
		if (!p->retry_ev)
			return -ENOMEM;
	}
	return evtimer_add(p->retry_ev, &tv) < 0 ? -ENOMEM : 0;
}

static void
qsb_peer_close(struct qsb_peer *p, bool protocol_error)
{
	bool was_ready = p->state == QSB_READY;

	if (protocol_error)
		fprintf(stderr, "%s: v%d: closing the connection: protocol error\n", qsb_cmd,
		        p->index);
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	p->state = QSB_DOWN;
	if (protocol_error)
		p->env->protocol_errors++;
	if (!was_ready)
		p->attempts++;
	p->env->ops->closed(p, was_ready, protocol_error);
}

static int
qsb_send(struct qsb_peer *p, Quorumstore__V1__PeerMessage *m)
{
	int rc = qs_frame_write(bufferevent_get_output(p->bev), &m->base, p->env->frame_max);

	if (rc)
		fprintf(stderr, "%s: v%d: cannot send a message: %s\n", qsb_cmd, p->index,
		        qs_strerror(rc));
	return rc;
}

static int
qsb_send_hello(struct qsb_peer *p)
{
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__Hello h = QUORUMSTORE__V1__HELLO__INIT;

	h.epoch = p->env->cfg->epoch;
	h.author.len = QS_PUBKEY_BYTES;
	h.author.data = p->signing_pub;
	h.protocol_version = QS_PROTOCOL_VERSION;
	h.chain_id = p->env->cfg->chain_id;
	h.now_us = qs_clock_wall_us();
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO;
	m.hello = &h;
	return qsb_send(p, &m);
}

/* Check the target's Hello. Returns 0 or QS_EDECODE (after printing why). */
static int
qsb_check_hello(struct qsb_peer *p, const Quorumstore__V1__PeerMessage *m)
{
	const struct qs_config *cfg = p->env->cfg;
	const Quorumstore__V1__Hello *h = m->hello;
	char why[128] = "";

	if (m->msg_case != QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO || !h)
		snprintf(why, sizeof(why), "first message is not Hello (case %d)",
		         (int)m->msg_case);
	else if (h->protocol_version != QS_PROTOCOL_VERSION)
		snprintf(why, sizeof(why), "protocol_version %u, expected %u", h->protocol_version,
		         QS_PROTOCOL_VERSION);
	else if (h->chain_id != cfg->chain_id)
		snprintf(why, sizeof(why), "chain_id %u, expected %u", h->chain_id, cfg->chain_id);
	else if (h->author.len != QS_PUBKEY_BYTES ||
	         memcmp(h->author.data, cfg->validators[p->env->target].signing_key,
	                QS_PUBKEY_BYTES) != 0)
		snprintf(why, sizeof(why), "author is not v%d's signing key", p->env->target);
	if (why[0]) {
		fprintf(stderr, "%s: v%d: bad Hello from the target: %s\n", qsb_cmd, p->index, why);
		return QS_EDECODE;
	}
	/* Accepted, as qsd does; the target will refuse our batches' epoch. */
	if (h->epoch != cfg->epoch)
		fprintf(stderr,
		        "%s: v%d: the target is at epoch %" PRIu64 ", the config says %" PRIu64
		        "\n",
		        qsb_cmd, p->index, h->epoch, cfg->epoch);
	return 0;
}

/* A polite peer answers BatchRequest; we store nothing, so NotFound. */
static int
qsb_answer_request(struct qsb_peer *p, const Quorumstore__V1__BatchRequest *req)
{
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchResponse r = QUORUMSTORE__V1__BATCH_RESPONSE__INIT;
	Quorumstore__V1__BatchNotFound nf = QUORUMSTORE__V1__BATCH_NOT_FOUND__INIT;

	nf.digest = req->digest;
	r.request_id = req->request_id;
	r.result_case = QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND;
	r.not_found = &nf;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE;
	m.batch_response = &r;
	return qsb_send(p, &m);
}

static void
qsb_readcb(struct bufferevent *bev, void *arg)
{
	struct qsb_peer *p = arg;
	struct qsb_env *env = p->env;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (p->bev == bev) {
		ProtobufCMessage *msg = NULL;
		const Quorumstore__V1__PeerMessage *m;
		int rc;

		rc = qs_frame_read(in, env->frame_max, &quorumstore__v1__peer_message__descriptor,
		                   env->budget, &msg);
		if (rc == 0)
			break;
		if (rc < 0) {
			fprintf(stderr, "%s: v%d: bad frame from the target: %s\n", qsb_cmd,
			        p->index, qs_strerror(rc));
			qsb_peer_close(p, true);
			break;
		}
		m = (const Quorumstore__V1__PeerMessage *)msg;
		if (p->state == QSB_HELLO) {
			rc = qsb_check_hello(p, m);
			if (rc == 0) {
				if (p->attempts || p->ever_ready)
					fprintf(stderr,
					        "%s: v%d: connected%s after %" PRIu64
					        " failed attempts\n",
					        qsb_cmd, p->index, p->ever_ready ? " again" : "",
					        p->attempts);
				p->state = QSB_READY;
				p->ever_ready = true;
				p->attempts = 0;
				bufferevent_set_timeouts(bev, NULL, NULL);
				env->ops->ready(p);
			}
		} else if (p->state != QSB_READY) {
			fprintf(stderr, "%s: v%d: message before the TLS handshake ended\n",
			        qsb_cmd, p->index);
			rc = QS_EDECODE;
		} else if (m->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO) {
			fprintf(stderr, "%s: v%d: second Hello from the target\n", qsb_cmd,
			        p->index);
			rc = QS_EDECODE;
		} else if (m->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST &&
		           m->batch_request) {
			rc = qsb_answer_request(p, m->batch_request);
			if (rc)
				rc = 0; /* our failure, not the target's; keep going */
		} else {
			rc = env->ops->message(p, m);
		}
		qs_frame_msg_free(msg);
		if (rc && p->bev == bev)
			qsb_peer_close(p, true);
	}
}

static void
qsb_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct qsb_peer *p = arg;
	struct qsb_env *env = p->env;
	int sys_err = EVUTIL_SOCKET_ERROR();
	char reason[512];

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		int one = 1;

		/* As qsd does for its peers: without it, the tail of each frame
		 * waits for the ack of the one before (Nagle), which the target
		 * delays by up to 40 ms: latency the protocol does not have. */
		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
		                 sizeof(one));
		if (!ssl || qs_tls_peer_index(ssl) != env->target) {
			fprintf(stderr, "%s: v%d: %s did not present v%d's network key\n", qsb_cmd,
			        p->index, env->addr_str, env->target);
			qsb_peer_close(p, true);
			return;
		}
		if (qsb_send_hello(p)) {
			qsb_peer_close(p, false);
			return;
		}
		p->state = QSB_HELLO;
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	qsb_bev_reason(bev, what, sys_err, reason, sizeof(reason));
	if (p->state == QSB_READY) {
		size_t left = evbuffer_get_length(bufferevent_get_input(bev));

		fprintf(stderr, "%s: v%d: connection lost: %s%s\n", qsb_cmd, p->index, reason,
		        left ? " (in the middle of a frame)" : "");
	} else if (p->attempts == 0) {
		fprintf(stderr, "%s: v%d: cannot connect to %s (%s): %s\n", qsb_cmd, p->index,
		        env->addr_str, p->state == QSB_HELLO ? "during Hello" : "TCP/TLS", reason);
	}
	qsb_peer_close(p, false);
}

/* Load DIR/vI/qsd.yaml into *out. Returns 0 or an error after printing it. */
static int
qsb_load_config(const char *dir, int index, struct qs_config **out)
{
	char path[PATH_MAX];
	char err[QS_CONFIG_ERR_MAX];
	int n, rc;

	n = snprintf(path, sizeof(path), "%s/v%d/qsd.yaml", dir, index);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "%s: %s/v%d/qsd.yaml: path too long\n", qsb_cmd, dir, index);
		return -ENAMETOOLONG;
	}
	err[0] = '\0';
	rc = qs_config_load(path, out, err, sizeof(err));
	if (rc)
		fprintf(stderr, "%s: %s\n", qsb_cmd, err[0] ? err : qs_strerror(rc));
	return rc;
}

/*
 * Set up validator `index` of the target's set: its keys from DIR/vI/qsd.yaml,
 * checked against the target's validator list, and its client SSL_CTX pinned
 * to the target's network key. Returns 0, or an error after printing it.
 */
static int
qsb_peer_init(struct qsb_peer *p, struct qsb_env *env, int index)
{
	const struct qs_validator *v = &env->cfg->validators[index];
	struct qs_config *pcfg = NULL;
	EVP_PKEY *net_key = NULL;
	uint8_t net_pub[QS_KEYS_PUB_BYTES];
	char err[512];
	int rc;

	p->env = env;
	p->index = index;
	rc = qsb_load_config(env->dir, index, &pcfg);
	if (rc)
		goto out;
	if (pcfg->chain_id != env->cfg->chain_id || pcfg->epoch != env->cfg->epoch) {
		fprintf(stderr, "%s: %s: chain_id or epoch differ from the target's config\n",
		        qsb_cmd, pcfg->path);
		rc = QS_ECONFIG;
		goto out;
	}
	rc =
	    qs_keys_load(pcfg->signing_key_file, &p->signing_key, p->signing_pub, err, sizeof(err));
	if (rc == 0)
		rc = qs_keys_load(pcfg->network_key_file, &net_key, net_pub, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "%s: %s\n", qsb_cmd, err);
		goto out;
	}
	if (memcmp(p->signing_pub, v->signing_key, QS_KEY_BYTES) != 0 ||
	    memcmp(net_pub, v->network_key, QS_KEY_BYTES) != 0) {
		fprintf(stderr, "%s: the keys of %s are not those of validator %d (%s) in %s\n",
		        qsb_cmd, pcfg->path, index, v->name, env->cfg->path);
		rc = QS_ECONFIG;
		goto out;
	}
	rc = qs_tls_ctx_new(net_key, 0, qsb_pin, env, &p->ssl_ctx, err, sizeof(err));
	if (rc)
		fprintf(stderr, "%s: v%d: %s\n", qsb_cmd, index, err);
out:
	EVP_PKEY_free(net_key);
	qs_config_free(pcfg);
	return rc;
}

static void
qsb_peer_destroy(struct qsb_peer *p)
{
	if (p->bev)
		bufferevent_free(p->bev);
	p->bev = NULL;
	if (p->retry_ev)
		event_free(p->retry_ev);
	p->retry_ev = NULL;
	SSL_CTX_free(p->ssl_ctx);
	p->ssl_ctx = NULL;
	EVP_PKEY_free(p->signing_key);
	p->signing_key = NULL;
	free(p->slots);
	p->slots = NULL;
}

/*
 * Load the target's config, parse its address, make the event base.
 * Returns 0, or an error after printing it.
 */
static int
qsb_env_init(struct qsb_env *env, const char *dir, int target, const char *usage)
{
	const char *why;
	struct stat st;
	int rc;

	env->dir = dir;
	env->target = target;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s: not a cluster directory (see tools/mkcluster)\n", qsb_cmd,
		        dir);
		return -ENOENT;
	}
	rc = qsb_load_config(dir, target, &env->cfg);
	if (rc)
		return rc;
	if ((size_t)target >= env->cfg->n_validators) {
		qsb_usage_error(usage,
		                "-n: target %d is not in the validator set of %s (%zu "
		                "validators)",
		                target, env->cfg->path, env->cfg->n_validators);
		return QS_ECONFIG;
	}
	env->addr_str = env->cfg->validators[target].address;
	if (qs_addr_parse(env->addr_str, &env->addr, &env->addr_len, &why) != 0) {
		fprintf(stderr, "%s: v%d: address '%s': %s\n", qsb_cmd, target, env->addr_str, why);
		return QS_ECONFIG;
	}
	env->frame_max = (size_t)env->cfg->limits.frame_max_bytes;
	env->budget = QSB_BUDGET_FACTOR * env->frame_max;
	env->base = event_base_new();
	if (!env->base) {
		fprintf(stderr, "%s: cannot make an event base\n", qsb_cmd);
		return -ENOMEM;
	}
	return 0;
}

static void
qsb_env_destroy(struct qsb_env *env)
{
	if (env->sig_int)
		event_free(env->sig_int);
	if (env->sig_term)
		event_free(env->sig_term);
	if (env->base)
		event_base_free(env->base);
	qs_config_free(env->cfg);
	memset(env, 0, sizeof(*env));
}

static int
qsb_env_signals(struct qsb_env *env, event_callback_fn cb, void *arg)
{
	env->sig_int = evsignal_new(env->base, SIGINT, cb, arg);
	env->sig_term = evsignal_new(env->base, SIGTERM, cb, arg);
	if (!env->sig_int || !env->sig_term || evsignal_add(env->sig_int, NULL) < 0 ||
	    evsignal_add(env->sig_term, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* ---------------------------------------------------------------------------
 * run
 */

static const char qsb_run_usage[] =
    "usage: qsbench run -d DIR [-n TARGET] [-p PEERS] [-s BATCH_BYTES] [-t TXNS_PER_BATCH]\n"
    "                   [-b BATCHES_PER_MSG] [-i MAX_INFLIGHT_PER_PEER | -r RATE_PER_PEER]\n"
    "                   [-D DURATION_S | -c COUNT_PER_PEER] [-S SEED] [-B BASE]\n"
    "                   [-l LIFETIME_S] [-g DRAIN_S] [-o RECORD_FILE] [-R] [-V] [-q] [-j]\n"
    "  -d DIR   cluster written by tools/mkcluster      -n TARGET  node to load (0)\n"
    "  -p LIST  simulated validators, e.g. 1,2,3 (all others)\n"
    "  -s N     payload bytes per batch (65536)        -t N  transactions per batch (16)\n"
    "  -b N     batches per BatchMsg (1)\n"
    "  -i N     batches in flight per validator (32; 1024 with -r)\n"
    "  -r N     batches per second per validator (paced; default: as fast as -i allows)\n"
    "  -D S     send for S seconds (10)                 -c N  send N batches per validator\n"
    "  -S SEED  payload seed (1)                        -B N  first batch_id (wall clock us)\n"
    "  -l S     batch lifetime (3600, capped below the target's max_batch_lifetime)\n"
    "  -g S     wait S seconds for answers after sending stopped (5)\n"
    "  -o FILE  record every acked batch (for verify)  -R  reconnect every 200 ms\n"
    "  -V       check the signatures after the run, not as they come (a benchmark:\n"
    "           the load generator's checks then take no CPU from the target)\n"
    "  -q       no per-second lines                    -j  summary as JSON\n";

/* Options shared by run and submit. */
struct qsb_load_opts {
	const char *dir;
	int node; /* run: the target; submit: the node to drive */
	uint64_t batch_bytes;
	uint32_t txns;
	uint32_t inflight;
	bool inflight_set;
	uint64_t rate; /* 0: closed loop */
	uint64_t duration_s;
	bool duration_set;
	uint64_t count; /* 0: by duration */
	uint64_t seed;
	uint64_t base;
	bool base_set;
	uint64_t drain_s;
	const char *record;
	bool quiet;
	bool json;
};

/*
 * Handles the getopt options run and submit share. Returns 1 if c was not
 * one of them, 0 if it was, -1 after -h, or the exit status for a usage error.
 */
static int
qsb_load_opt(const char *u, int c, const char *arg, struct qsb_load_opts *o)
{
	uint64_t v;

	switch (c) {
	case 'd':
		o->dir = arg;
		break;
	case 'n':
		if (qsb_opt_u64(u, c, arg, 0, QS_MAX_VALIDATORS - 1, &v))
			return QSB_EXIT_USAGE;
		o->node = (int)v;
		break;
	case 's':
		if (qsb_opt_u64(u, c, arg, 1, 256u << 20, &o->batch_bytes))
			return QSB_EXIT_USAGE;
		break;
	case 't':
		if (qsb_opt_u64(u, c, arg, 1, QSB_MAX_TXNS, &v))
			return QSB_EXIT_USAGE;
		o->txns = (uint32_t)v;
		break;
	case 'i':
		if (qsb_opt_u64(u, c, arg, 1, QSB_MAX_INFLIGHT, &v))
			return QSB_EXIT_USAGE;
		o->inflight = (uint32_t)v;
		o->inflight_set = true;
		break;
	case 'r':
		if (qsb_opt_u64(u, c, arg, 1, QSB_MAX_RATE, &o->rate))
			return QSB_EXIT_USAGE;
		break;
	case 'D':
		if (qsb_opt_u64(u, c, arg, 1, QSB_MAX_DURATION_S, &o->duration_s))
			return QSB_EXIT_USAGE;
		o->duration_set = true;
		break;
	case 'c':
		if (qsb_opt_u64(u, c, arg, 1, UINT64_C(1) << 40, &o->count))
			return QSB_EXIT_USAGE;
		break;
	case 'S':
		if (qsb_opt_u64(u, c, arg, 0, UINT64_MAX, &o->seed))
			return QSB_EXIT_USAGE;
		break;
	case 'B':
		if (qsb_opt_u64(u, c, arg, 0, UINT64_MAX / 2, &o->base))
			return QSB_EXIT_USAGE;
		o->base_set = true;
		break;
	case 'g':
		if (qsb_opt_u64(u, c, arg, 0, 3600, &o->drain_s))
			return QSB_EXIT_USAGE;
		break;
	case 'o':
		o->record = arg;
		break;
	case 'q':
		o->quiet = true;
		break;
	case 'j':
		o->json = true;
		break;
	case 'h':
		fputs(u, stdout);
		return -1;
	case ':':
		qsb_usage_error(u, "-%c needs an argument", optopt);
		return QSB_EXIT_USAGE;
	default:
		return 1;
	}
	return 0;
}

/*
 * The checks run and submit share, after getopt. per_msg is run's -b (1 for
 * submit), checked against the in-flight bound. Returns 0 or the exit status
 * for a usage error.
 */
static int
qsb_load_check(const char *u, int argc, char **argv, struct qsb_load_opts *o, uint32_t per_msg)
{
	if (optind < argc) {
		qsb_usage_error(u, "unexpected argument '%s'", argv[optind]);
		return QSB_EXIT_USAGE;
	}
	if (!o->dir) {
		qsb_usage_error(u, "-d DIR is required");
		return QSB_EXIT_USAGE;
	}
	if (o->batch_bytes < o->txns) {
		qsb_usage_error(u,
		                "-s %" PRIu64 " is less than -t %" PRIu32
		                " (every transaction needs a byte)",
		                o->batch_bytes, o->txns);
		return QSB_EXIT_USAGE;
	}
	if (o->rate && !o->inflight_set)
		o->inflight = QSB_RATE_INFLIGHT;
	if (per_msg > o->inflight) {
		qsb_usage_error(u, "-b %" PRIu32 " is more than the in-flight bound %" PRIu32,
		                per_msg, o->inflight);
		return QSB_EXIT_USAGE;
	}
	if (o->count && o->duration_set)
		fprintf(stderr, "%s: -c given: -D %" PRIu64 " only bounds the run's length\n",
		        qsb_cmd, o->duration_s);
	return 0;
}

struct qsb_run_opts {
	struct qsb_load_opts l; /* l.node: the target */
	int peers[QS_MAX_VALIDATORS];
	size_t n_peers; /* 0: all but the target */
	uint32_t per_msg;
	uint64_t lifetime_s;
	bool lifetime_set;
	bool retry;
	bool verify_after; /* -V */
	bool proofs;       /* qsbench proofs: a proof of store for every ack */
	uint32_t authors;  /* proofs: how many of the peers author batches */
};

enum qsb_phase {
	QSB_RUNNING,
	QSB_DRAINING,
	QSB_DONE,
};

struct qsb_run {
	struct qsb_env env;
	struct qsb_run_opts o;
	struct qsb_peer *peers;
	size_t n_peers;
	enum qsb_phase phase;
	uint64_t lifetime_us;
	uint64_t start_us; /* monotonic */
	uint64_t end_us;
	struct event *tick_ev;
	struct event *pace_ev;
	struct event *end_ev; /* end of duration, then end of drain */
	uint64_t last_pace_us;
	bool failed; /* an internal error (not the target's) */

	/* one BatchMsg being built */
	uint8_t *payload;
	ProtobufCBinaryData *txns;
	Quorumstore__V1__BatchInfo *infos;
	Quorumstore__V1__Batch *batches;
	Quorumstore__V1__Batch **batch_ptrs;

	/* results */
	uint64_t sent, acked, acked_bytes, nacked;
	uint64_t nacks[QSB_NACK_SLOTS + 1];
	uint64_t bad_signatures, unexpected, lost_inflight, disconnects, connect_failures;
	uint64_t ignored;
	uint64_t tick_n, tick_us, tick_acks, tick_bytes;

	struct qsb_lat lat; /* ack latencies */

	FILE *rec;
	char *rec_buf;

	/* proofs */
	struct qsb_peer *by_index[QS_MAX_VALIDATORS]; /* the simulated validators */
	uint64_t total_power;
	size_t signers; /* signatures per proof (the most of any author) */
	uint64_t proofs_sent, queue_before, queue_after;

	/* -V: acks counted, their signatures checked after the run */
	struct qsb_deferred *deferred;
	size_t n_deferred, cap_deferred;
};

/* An ack whose signature is checked after the run (-V). */
struct qsb_deferred {
	struct qs_batch_info info;
	uint8_t sig[QS_SIG_BYTES];
	int peer;
};

/* Beyond this many deferred acks (about 200 MiB) the rest are checked as they
 * come. */
#define QSB_DEFER_MAX (1u << 20)

static uint32_t
qsb_run_inflight(const struct qsb_run *r)
{
	uint32_t n = 0;
	size_t i;

	for (i = 0; i < r->n_peers; i++)
		n += r->peers[i].inflight;
	return n;
}

static void qsb_run_drain(struct qsb_run *r);

static void
qsb_run_stop(struct qsb_run *r)
{
	if (r->phase == QSB_DONE)
		return;
	r->phase = QSB_DONE;
	r->end_us = qs_clock_mono_us();
	event_base_loopbreak(r->env.base);
}

/* End the run when nothing more can happen. */
static void
qsb_run_check_done(struct qsb_run *r)
{
	bool all_stopped = true, all_idle = true, all_sent = true;
	size_t i;

	for (i = 0; i < r->n_peers; i++) {
		const struct qsb_peer *p = &r->peers[i];
		bool sent_all = r->o.l.count && p->sent >= p->count;

		if (p->stopped)
			continue;
		all_stopped = false;
		if (!sent_all)
			all_sent = false;
		if (p->state != QSB_READY) {
			/* Still connecting or waiting to reconnect (-R). */
			if (r->phase == QSB_RUNNING)
				all_idle = false;
			continue;
		}
		if (p->inflight || (r->phase == QSB_RUNNING && !sent_all))
			all_idle = false;
	}
	if (all_stopped || (all_idle && (r->phase == QSB_DRAINING || r->o.l.count)))
		qsb_run_stop(r);
	else if (r->phase == QSB_RUNNING && r->o.l.count && all_sent)
		qsb_run_drain(r); /* bound the wait for the last answers */
}

/*
 * Build and send one BatchMsg of k batches on p, whose slots are free.
 * Returns 0 or an error (printed).
 */
static int
qsb_run_send(struct qsb_run *r, struct qsb_peer *p, uint32_t k)
{
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchMsg bm = QUORUMSTORE__V1__BATCH_MSG__INIT;
	const struct qs_config *cfg = r->env.cfg;
	uint64_t expiration_us = qs_clock_wall_us() + r->lifetime_us;
	uint64_t now;
	uint32_t i, j;
	int rc;

	for (i = 0; i < k; i++) {
		uint64_t seq = p->next_seq + i;
		struct qsb_slot *s = &p->slots[seq & p->slot_mask];
		ProtobufCBinaryData *txns = &r->txns[(size_t)i * r->o.l.txns];
		uint8_t *data = r->payload + (size_t)i * r->o.l.batch_bytes;
		Quorumstore__V1__BatchInfo *info = &r->infos[i];

		memset(&s->info, 0, sizeof(s->info));
		memcpy(s->info.author, p->signing_pub, QS_PUBKEY_BYTES);
		s->info.batch_id = r->o.l.base + seq;
		s->info.epoch = cfg->epoch;
		s->info.expiration_us = expiration_us;
		s->info.num_txns = r->o.l.txns;
		s->info.num_bytes = r->o.l.batch_bytes;
		for (j = 0; j < r->o.l.txns; j++) {
			size_t len = qsb_txn_len(r->o.l.batch_bytes, r->o.l.txns, j);

			qsb_txn_fill(r->o.l.seed, (uint32_t)p->index, s->info.batch_id, j, data,
			             len);
			txns[j].data = data;
			txns[j].len = len;
			data += len;
		}
		rc = qs_codec_batch_digest(cfg->chain_id, s->info.author, s->info.epoch,
		                           s->info.batch_id, txns, r->o.l.txns, s->info.digest);
		if (rc) {
			fprintf(stderr, "%s: cannot compute a digest: %s\n", qsb_cmd,
			        qs_strerror(rc));
			return rc;
		}
		quorumstore__v1__batch_info__init(info);
		info->author.len = QS_PUBKEY_BYTES;
		info->author.data = p->signing_pub;
		info->batch_id = s->info.batch_id;
		info->epoch = s->info.epoch;
		info->expiration_us = s->info.expiration_us;
		info->digest.len = QS_DIGEST_BYTES;
		info->digest.data = s->info.digest;
		info->num_txns = s->info.num_txns;
		info->num_bytes = s->info.num_bytes;
		info->gas_bucket_start = 0;
		quorumstore__v1__batch__init(&r->batches[i]);
		r->batches[i].info = info;
		r->batches[i].n_transactions = r->o.l.txns;
		r->batches[i].transactions = &r->txns[(size_t)i * r->o.l.txns];
		r->batch_ptrs[i] = &r->batches[i];
	}
	bm.n_batches = k;
	bm.batches = r->batch_ptrs;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_MSG;
	m.batch_msg = &bm;
	rc = qsb_send(p, &m);
	if (rc)
		return rc;
	now = qs_clock_mono_us();
	for (i = 0; i < k; i++) {
		struct qsb_slot *s = &p->slots[(p->next_seq + i) & p->slot_mask];

		s->used = true;
		s->sent_us = now;
	}
	p->next_seq += k;
	p->inflight += k;
	p->sent += k;
	r->sent += k;
	return 0;
}

/* Send on p as much as its in-flight bound, its tokens and -c allow. */
static void
qsb_run_fill(struct qsb_run *r, struct qsb_peer *p)
{
	while (r->phase == QSB_RUNNING && p->state == QSB_READY) {
		uint32_t k = r->o.per_msg;
		uint32_t i;

		if (r->o.l.count)
			k = (uint32_t)QSB_MIN((uint64_t)k, p->count - p->sent);
		if (k == 0 || p->inflight + k > r->o.l.inflight)
			break;
		if (r->o.l.rate && p->tokens < (double)k)
			break;
		for (i = 0; i < k; i++) {
			if (p->slots[(p->next_seq + i) & p->slot_mask].used)
				break;
		}
		if (i < k)
			break; /* an old batch still holds the slot: wait for it */
		if (qsb_run_send(r, p, k)) {
			r->failed = true;
			qsb_run_stop(r);
			return;
		}
		if (r->o.l.rate)
			p->tokens -= (double)k;
	}
}

static void
qsb_run_ready(struct qsb_peer *p)
{
	struct qsb_run *r = p->env->cmd;

	p->tokens = 0;
	qsb_run_fill(r, p);
	qsb_run_check_done(r);
}

/* The slot of an answer: by batch_id, else (a NACK without one) by digest. */
static struct qsb_slot *
qsb_run_find(struct qsb_run *r, struct qsb_peer *p, uint64_t batch_id, const uint8_t *digest)
{
	uint32_t i;

	if (batch_id >= r->o.l.base && batch_id - r->o.l.base < p->next_seq) {
		struct qsb_slot *s = &p->slots[(batch_id - r->o.l.base) & p->slot_mask];

		if (s->used && s->info.batch_id == batch_id &&
		    (!digest || memcmp(s->info.digest, digest, QS_DIGEST_BYTES) == 0))
			return s;
	}
	if (!digest)
		return NULL;
	for (i = 0; i <= p->slot_mask; i++) {
		struct qsb_slot *s = &p->slots[i];

		if (s->used && memcmp(s->info.digest, digest, QS_DIGEST_BYTES) == 0)
			return s;
	}
	return NULL;
}

static void
qsb_run_release(struct qsb_peer *p, struct qsb_slot *s)
{
	s->used = false;
	p->inflight--;
}

/* Which field of a returned info differs from the one sent, or NULL. */
static const char *
qsb_info_diff(const Quorumstore__V1__BatchInfo *got, const struct qs_batch_info *sent)
{
	if (got->author.len != QS_PUBKEY_BYTES ||
	    memcmp(got->author.data, sent->author, QS_PUBKEY_BYTES) != 0)
		return "author";
	if (got->batch_id != sent->batch_id)
		return "batch_id";
	if (got->epoch != sent->epoch)
		return "epoch";
	if (got->expiration_us != sent->expiration_us)
		return "expiration_us";
	if (got->digest.len != QS_DIGEST_BYTES ||
	    memcmp(got->digest.data, sent->digest, QS_DIGEST_BYTES) != 0)
		return "digest";
	if (got->num_txns != sent->num_txns)
		return "num_txns";
	if (got->num_bytes != sent->num_bytes)
		return "num_bytes";
	if (got->gas_bucket_start != sent->gas_bucket_start)
		return "gas_bucket_start";
	return NULL;
}

static int
qsb_run_record(struct qsb_run *r, const struct qsb_peer *p, const struct qs_batch_info *info)
{
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(info->digest, QS_DIGEST_BYTES, hex);
	if (fprintf(r->rec,
	            "%s %d %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu32
	            " %" PRIu64 "\n",
	            hex, p->index, info->batch_id, info->expiration_us, info->num_txns,
	            info->num_bytes, r->o.l.seed, r->o.l.txns, r->o.l.batch_bytes) < 0) {
		fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, r->o.l.record, strerror(errno));
		return -EIO;
	}
	return 0;
}

/*
 * The validators that sign author's proofs: from the author on, in config
 * order and round, the simulated ones until their power is a quorum
 * (3 x signed > 2 x total). Sets chosen[i]; returns how many, or 0 when the
 * simulated validators are not a quorum.
 */
static size_t
qsb_proofs_signers(const struct qsb_run *r, int author, bool chosen[QS_MAX_VALIDATORS])
{
	const struct qs_config *cfg = r->env.cfg;
	size_t n = cfg->n_validators, k, m = 0;
	uint64_t power = 0;

	memset(chosen, 0, QS_MAX_VALIDATORS * sizeof(*chosen));
	for (k = 0; k < n; k++) {
		size_t i = ((size_t)author + k) % n;

		if (!r->by_index[i])
			continue;
		chosen[i] = true;
		m++;
		power += cfg->validators[i].voting_power;
		if (power > UINT64_MAX / 3 || 3 * power > 2 * r->total_power)
			return m;
	}
	return 0;
}

/* Send p's proof of store for the acked batch `info`, as a ProofMsg. */
static int
qsb_proofs_send(struct qsb_run *r, struct qsb_peer *p, const struct qs_batch_info *info)
{
	const struct qs_config *cfg = r->env.cfg;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__ProofMsg pm = QUORUMSTORE__V1__PROOF_MSG__INIT;
	Quorumstore__V1__ProofOfStore pos = QUORUMSTORE__V1__PROOF_OF_STORE__INIT;
	Quorumstore__V1__ProofOfStore *posp = &pos;
	Quorumstore__V1__BatchInfo bi = QUORUMSTORE__V1__BATCH_INFO__INIT;
	uint8_t sigs[QS_MAX_VALIDATORS][QS_SIG_BYTES];
	ProtobufCBinaryData sig_pb[QS_MAX_VALIDATORS];
	uint8_t bitmap[(QS_MAX_VALIDATORS + 7) / 8];
	bool chosen[QS_MAX_VALIDATORS];
	size_t n = cfg->n_validators, i, k = 0;
	int rc;

	if (!qsb_proofs_signers(r, p->index, chosen))
		abort(); /* checked before the run */
	memset(bitmap, 0, sizeof(bitmap));
	for (i = 0; i < n; i++) {
		if (!chosen[i])
			continue;
		rc = qs_codec_info_sign(r->by_index[i]->signing_key, cfg->chain_id, info, sigs[k]);
		if (rc) {
			fprintf(stderr, "%s: v%zu cannot sign: %s\n", qsb_cmd, i, qs_strerror(rc));
			return rc;
		}
		bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		sig_pb[k].data = sigs[k];
		sig_pb[k].len = QS_SIG_BYTES;
		k++;
	}
	bi.author.len = QS_PUBKEY_BYTES;
	bi.author.data = (uint8_t *)info->author;
	bi.batch_id = info->batch_id;
	bi.epoch = info->epoch;
	bi.expiration_us = info->expiration_us;
	bi.digest.len = QS_DIGEST_BYTES;
	bi.digest.data = (uint8_t *)info->digest;
	bi.num_txns = info->num_txns;
	bi.num_bytes = info->num_bytes;
	bi.gas_bucket_start = info->gas_bucket_start;
	pos.info = &bi;
	pos.signer_bitmap.len = (n + 7) / 8;
	pos.signer_bitmap.data = bitmap;
	pos.n_signatures = k;
	pos.signatures = sig_pb;
	pm.n_proofs = 1;
	pm.proofs = &posp;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG;
	m.proof_msg = &pm;
	rc = qsb_send(p, &m);
	if (rc == 0)
		r->proofs_sent++;
	return rc;
}

/* Keep an ack for the check after the run; -1 when the list is full. */
static int
qsb_run_defer(struct qsb_run *r, const struct qsb_peer *p, const struct qs_batch_info *info,
              const uint8_t *sig)
{
	struct qsb_deferred *d;

	if (r->n_deferred == r->cap_deferred) {
		size_t cap = r->cap_deferred ? 2 * r->cap_deferred : 4096;

		if (cap > QSB_DEFER_MAX)
			return -1;
		d = realloc(r->deferred, cap * sizeof(*d));
		if (!d)
			return -1;
		r->deferred = d;
		r->cap_deferred = cap;
	}
	d = &r->deferred[r->n_deferred++];
	d->info = *info;
	memcpy(d->sig, sig, QS_SIG_BYTES);
	d->peer = p->index;
	return 0;
}

/* Check the target's signature over `info`: 0, QS_EBADSIG, or QS_ECRYPTO. */
static int
qsb_run_verify(struct qsb_run *r, const struct qs_batch_info *info, const uint8_t *sig)
{
	return qs_codec_info_verify(r->env.cfg->validators[r->env.target].signing_key,
	                            r->env.cfg->chain_id, info, sig);
}

/* -V: check the kept acks; one that does not verify is not an ack. */
static void
qsb_run_check_deferred(struct qsb_run *r)
{
	char hex[2 * QS_DIGEST_BYTES + 1];
	int rc;

	for (size_t i = 0; i < r->n_deferred; i++) {
		const struct qsb_deferred *d = &r->deferred[i];

		rc = qsb_run_verify(r, &d->info, d->sig);
		if (rc == 0)
			continue;
		if (rc != QS_EBADSIG) {
			fprintf(stderr, "%s: verifying a signature: %s\n", qsb_cmd,
			        qs_strerror(rc));
			r->failed = true;
			return;
		}
		r->acked--;
		r->acked_bytes -= d->info.num_bytes;
		if (r->bad_signatures++ < QSB_MAX_REPORTS) {
			qs_hex_encode(d->info.digest, QS_DIGEST_BYTES, hex);
			fprintf(stderr, "%s: v%d: BAD SIGNATURE for batch %" PRIu64 " %s: %s\n",
			        qsb_cmd, d->peer, d->info.batch_id, hex,
			        "signature does not verify");
		}
	}
}

static int
qsb_run_signed(struct qsb_run *r, struct qsb_peer *p, const Quorumstore__V1__SignedBatchInfo *sbi)
{
	const uint8_t *target_pub = r->env.cfg->validators[r->env.target].signing_key;
	const Quorumstore__V1__BatchInfo *info = sbi ? sbi->info : NULL;
	const uint8_t *digest = NULL;
	struct qsb_slot *s;
	const char *why;
	char hex[2 * QS_DIGEST_BYTES + 1];
	int rc;

	if (!info) {
		fprintf(stderr, "%s: v%d: SignedBatchInfo without an info\n", qsb_cmd, p->index);
		r->unexpected++;
		return QS_EDECODE;
	}
	if (info->digest.len == QS_DIGEST_BYTES)
		digest = info->digest.data;
	s = qsb_run_find(r, p, info->batch_id, NULL);
	if (!s && digest)
		s = qsb_run_find(r, p, info->batch_id, digest);
	if (!s) {
		if (r->unexpected++ < QSB_MAX_REPORTS)
			fprintf(stderr,
			        "%s: v%d: signature for batch_id %" PRIu64
			        " which is not in flight\n",
			        qsb_cmd, p->index, info->batch_id);
		return QS_EDECODE;
	}
	why = qsb_info_diff(info, &s->info);
	if (!why && (sbi->signer.len != QS_PUBKEY_BYTES ||
	             memcmp(sbi->signer.data, target_pub, QS_PUBKEY_BYTES) != 0))
		why = "signer is not the target's signing key";
	if (!why && sbi->signature.len != QS_SIG_BYTES)
		why = "signature is not 64 bytes";
	if (!why && r->o.verify_after && qsb_run_defer(r, p, &s->info, sbi->signature.data) == 0)
		goto counted;
	if (!why) {
		rc = qsb_run_verify(r, &s->info, sbi->signature.data);
		if (rc == QS_EBADSIG)
			why = "signature does not verify";
		else if (rc) {
			fprintf(stderr, "%s: verifying a signature: %s\n", qsb_cmd,
			        qs_strerror(rc));
			r->failed = true;
			qsb_run_stop(r);
			return 0;
		}
	}
	if (why) {
		r->bad_signatures++;
		if (r->bad_signatures <= QSB_MAX_REPORTS) {
			qs_hex_encode(s->info.digest, QS_DIGEST_BYTES, hex);
			fprintf(stderr, "%s: v%d: BAD SIGNATURE for batch %" PRIu64 " %s: %s\n",
			        qsb_cmd, p->index, s->info.batch_id, hex, why);
		}
		qsb_run_release(p, s);
		return 0;
	}
	if (r->rec && qsb_run_record(r, p, &s->info)) {
		r->failed = true;
		qsb_run_release(p, s);
		qsb_run_stop(r);
		return 0;
	}
counted:
	r->acked++;
	r->acked_bytes += s->info.num_bytes;
	qsb_lat_add(&r->lat, qs_clock_mono_us() - s->sent_us);
	if (r->o.proofs && qsb_proofs_send(r, p, &s->info)) {
		r->failed = true;
		qsb_run_release(p, s);
		qsb_run_stop(r);
		return 0;
	}
	qsb_run_release(p, s);
	return 0;
}

static int
qsb_run_nack(struct qsb_run *r, struct qsb_peer *p, const Quorumstore__V1__BatchNack *n)
{
	struct qsb_slot *s = NULL;
	unsigned reason = (unsigned)n->reason;
	char name[64];

	if (n->digest.len == QS_DIGEST_BYTES)
		s = qsb_run_find(r, p, n->batch_id, n->digest.data);
	if (!s) {
		if (r->unexpected++ < QSB_MAX_REPORTS)
			fprintf(stderr,
			        "%s: v%d: NACK for batch_id %" PRIu64 " which is not in flight\n",
			        qsb_cmd, p->index, n->batch_id);
		return QS_EDECODE;
	}
	if (reason >= QSB_NACK_SLOTS)
		reason = QSB_NACK_SLOTS;
	if (r->nacks[reason]++ == 0) {
		qsb_nack_name(reason, name, sizeof(name));
		fprintf(stderr, "%s: v%d: first NACK %s for batch %" PRIu64 "%s%s\n", qsb_cmd,
		        p->index, name, s->info.batch_id, n->detail && n->detail[0] ? ": " : "",
		        n->detail ? n->detail : "");
	}
	r->nacked++;
	qsb_run_release(p, s);
	return 0;
}

static int
qsb_run_message(struct qsb_peer *p, const Quorumstore__V1__PeerMessage *m)
{
	struct qsb_run *r = p->env->cmd;
	int rc = 0;
	size_t i;

	switch (m->msg_case) {
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG:
		if (!m->signed_batch_info_msg)
			break;
		for (i = 0; i < m->signed_batch_info_msg->n_infos && rc == 0; i++)
			rc = qsb_run_signed(r, p, m->signed_batch_info_msg->infos[i]);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK:
		if (m->batch_nack)
			rc = qsb_run_nack(r, p, m->batch_nack);
		break;
	default:
		/* The target's own batches, proofs and responses are none of ours. */
		r->ignored++;
		break;
	}
	if (rc == 0 && r->phase != QSB_DONE) {
		qsb_run_fill(r, p);
		qsb_run_check_done(r);
	}
	return rc;
}

static void
qsb_run_closed(struct qsb_peer *p, bool was_ready, bool protocol_error)
{
	struct qsb_run *r = p->env->cmd;
	uint32_t i;

	if (p->inflight) {
		fprintf(stderr, "%s: v%d: %" PRIu32 " batches in flight lost\n", qsb_cmd, p->index,
		        p->inflight);
		r->lost_inflight += p->inflight;
	}
	for (i = 0; p->slots && i <= p->slot_mask; i++)
		p->slots[i].used = false;
	p->inflight = 0;
	if (was_ready)
		r->disconnects++;
	else
		r->connect_failures++;
	if (r->phase == QSB_RUNNING && r->o.retry && !protocol_error &&
	    !(r->o.l.count && p->sent >= p->count)) {
		if (qsb_peer_retry_later(p) == 0)
			goto out;
	}
	p->stopped = true;
out:
	if (r->phase != QSB_DONE)
		qsb_run_check_done(r);
}

static const struct qsb_ops qsb_run_ops = {
    .ready = qsb_run_ready,
    .message = qsb_run_message,
    .closed = qsb_run_closed,
};

static void
qsb_run_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qsb_run *r = arg;
	uint64_t now = qs_clock_mono_us();
	double dt = (double)(now - r->tick_us) / 1e6;
	uint64_t acks = r->acked - r->tick_acks;
	uint64_t bytes = r->acked_bytes - r->tick_bytes;
	double p50_ms, p99_ms;

	r->tick_n++;
	if (dt <= 0)
		dt = 1e-6;
	qsb_lat_tick(&r->lat, &p50_ms, &p99_ms);
	if (!r->o.l.quiet)
		fprintf(stderr,
		        "t=%" PRIu64 "s acks=%" PRIu64 " acks/s=%.0f MB/s=%.1f nacks=%" PRIu64
		        " inflight=%" PRIu32 " p50_ms=%.1f p99_ms=%.1f\n",
		        r->tick_n, r->acked, (double)acks / dt, (double)bytes / dt / 1e6, r->nacked,
		        qsb_run_inflight(r), p50_ms, p99_ms);
	r->tick_us = now;
	r->tick_acks = r->acked;
	r->tick_bytes = r->acked_bytes;
}

static void
qsb_run_pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qsb_run *r = arg;
	uint64_t now = qs_clock_mono_us();
	double add = (double)r->o.l.rate * (double)(now - r->last_pace_us) / 1e6;
	/* Burst at most 50 ms worth (and at least one message) after a stall. */
	double cap = (double)r->o.per_msg + (double)r->o.l.rate * 0.05;
	size_t i;

	r->last_pace_us = now;
	for (i = 0; i < r->n_peers && r->phase == QSB_RUNNING; i++) {
		struct qsb_peer *p = &r->peers[i];

		if (p->state != QSB_READY)
			continue;
		p->tokens += add;
		if (p->tokens > cap)
			p->tokens = cap;
		qsb_run_fill(r, p);
	}
}

static void
qsb_run_drain(struct qsb_run *r)
{
	struct timeval tv = qs_clock_tv_us(r->o.l.drain_s * 1000000);
	size_t i;

	if (r->phase != QSB_RUNNING)
		return;
	r->phase = QSB_DRAINING;
	if (r->pace_ev)
		evtimer_del(r->pace_ev);
	for (i = 0; i < r->n_peers; i++) {
		struct qsb_peer *p = &r->peers[i];

		if (p->state == QSB_DOWN) {
			p->stopped = true;
			if (p->retry_ev)
				evtimer_del(p->retry_ev);
		}
	}
	if (evtimer_add(r->end_ev, &tv) < 0) {
		qsb_run_stop(r);
		return;
	}
	qsb_run_check_done(r);
}

static void
qsb_run_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qsb_run *r = arg;

	if (r->phase == QSB_RUNNING)
		qsb_run_drain(r);
	else
		qsb_run_stop(r);
}

static void
qsb_run_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct qsb_run *r = arg;

	fprintf(stderr, "%s: %s: %s\n", qsb_cmd, strsignal((int)sig),
	        r->phase == QSB_RUNNING ? "stopping (again to stop at once)" : "stopping now");
	if (r->phase == QSB_RUNNING)
		qsb_run_drain(r);
	else
		qsb_run_stop(r);
}

/* "1,2,3" into o->peers. Returns 0 or -EINVAL after printing why. */
static int
qsb_parse_peers(struct qsb_run_opts *o, const char *arg)
{
	const char *s = arg;
	int rc = -EINVAL;

	o->n_peers = 0;
	while (*s) {
		char num[16];
		size_t len = strcspn(s, ",");
		uint64_t v;
		size_t i;

		if (len == 0 || len >= sizeof(num) || o->n_peers == QS_MAX_VALIDATORS)
			goto out;
		memcpy(num, s, len);
		num[len] = '\0';
		if (qsb_parse_u64(num, 0, QS_MAX_VALIDATORS - 1, &v))
			goto out;
		for (i = 0; i < o->n_peers; i++) {
			if (o->peers[i] == (int)v)
				goto out;
		}
		o->peers[o->n_peers++] = (int)v;
		s += len;
		if (*s == ',' && *++s == '\0')
			goto out;
	}
	if (o->n_peers)
		rc = 0;
out:
	if (rc)
		qsb_usage_error(qsb_run_usage,
		                "-p: '%s' is not a list of distinct validator "
		                "indices like 1,2,3",
		                arg);
	return rc;
}

static const char qsb_proofs_usage[] =
    "usage: qsbench proofs -d DIR -c COUNT [-n TARGET] [-a AUTHORS] [-s BATCH_BYTES]\n"
    "                      [-t TXNS_PER_BATCH] [-i MAX_INFLIGHT_PER_AUTHOR] [-D DURATION_S]\n"
    "                      [-S SEED] [-B BASE] [-l LIFETIME_S] [-g DRAIN_S] [-q] [-j]\n"
    "  -d DIR   cluster written by tools/mkcluster (N = AUTHORS + 1: every other\n"
    "           validator is simulated and signs)      -n TARGET  node to fill (0)\n"
    "  -c N     proofs to make, spread over the authors (required)\n"
    "  -a N     authors: the first N validators that are not the target (all of them)\n"
    "  -s N     payload bytes per batch (1024)         -t N  transactions per batch (8)\n"
    "  -i N     batches in flight per author (32)      -D S  give up after S seconds\n"
    "  -S SEED  payload seed (1)                        -B N  first batch_id (wall clock us)\n"
    "  -l S     batch lifetime (3600, capped below the target's max_batch_lifetime)\n"
    "  -g S     wait S seconds for the last acks and for the proofs to be queued (10)\n"
    "  -q       no per-second lines                    -j  summary as JSON\n";

/*
 * The options of run and, with `proofs`, of proofs: one parser, each mode
 * with its own usage, option letters and defaults (getopt returns only the
 * letters of the mode's string). Returns 0, or the exit status for a usage
 * error.
 */
static int
qsb_run_parse_mode(int argc, char **argv, struct qsb_run_opts *o, bool proofs)
{
	const char *u = proofs ? qsb_proofs_usage : qsb_run_usage;
	const char *letters =
	    proofs ? ":d:n:a:s:t:i:D:c:S:B:l:g:qjh" : ":d:n:p:s:t:b:i:r:D:c:S:B:l:g:o:RVqjh";
	uint64_t v;
	int c, rc;

	o->proofs = proofs;
	o->l.batch_bytes = proofs ? 1024 : 65536;
	o->l.txns = proofs ? 8 : 16;
	o->per_msg = 1;
	o->l.inflight = 32;
	o->l.duration_s = 10;
	o->l.seed = 1;
	o->lifetime_s = 3600;
	o->l.drain_s = proofs ? 10 : 5;
	optind = 1;
	while ((c = getopt(argc, argv, letters)) != -1) {
		rc = qsb_load_opt(u, c, optarg, &o->l);
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		switch (c) {
		case 'p':
			if (qsb_parse_peers(o, optarg))
				return QSB_EXIT_USAGE;
			break;
		case 'a':
			if (qsb_opt_u64(u, c, optarg, 1, QS_MAX_VALIDATORS - 1, &v))
				return QSB_EXIT_USAGE;
			o->authors = (uint32_t)v;
			break;
		case 'b':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_MAX_BATCHES_PER_MSG, &v))
				return QSB_EXIT_USAGE;
			o->per_msg = (uint32_t)v;
			break;
		case 'l':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_MAX_LIFETIME_S, &o->lifetime_s))
				return QSB_EXIT_USAGE;
			o->lifetime_set = true;
			break;
		case 'R':
			o->retry = true;
			break;
		case 'V':
			o->verify_after = true;
			break;
		default:
			qsb_usage_error(u, "unknown option -%c", optopt);
			return QSB_EXIT_USAGE;
		}
	}
	if (o->verify_after && o->l.record) {
		qsb_usage_error(u, "-V and -o: a record holds only checked acks");
		return QSB_EXIT_USAGE;
	}
	rc = qsb_load_check(u, argc, argv, &o->l, o->per_msg);
	if (rc)
		return rc;
	if (proofs && !o->l.count) {
		qsb_usage_error(u, "-c COUNT is required");
		return QSB_EXIT_USAGE;
	}
	return 0;
}

static int
qsb_run_parse(int argc, char **argv, struct qsb_run_opts *o)
{
	return qsb_run_parse_mode(argc, argv, o, false);
}

/* Checks that need the target's config. Returns 0 or an exit status. */
static int
qsb_run_check_config(struct qsb_run *r)
{
	struct qsb_run_opts *o = &r->o;
	const struct qs_config *cfg = r->env.cfg;
	uint64_t max_lifetime = cfg->max_batch_lifetime_us;
	uint64_t msg_bytes;
	size_t i;

	if (o->n_peers == 0) {
		for (i = 0; i < cfg->n_validators; i++) {
			if ((int)i != o->l.node)
				o->peers[o->n_peers++] = (int)i;
		}
		if (o->n_peers == 0) {
			qsb_usage_error(qsb_run_usage,
			                "the cluster has no validator besides "
			                "the target v%d",
			                o->l.node);
			return QSB_EXIT_USAGE;
		}
	}
	for (i = 0; i < o->n_peers; i++) {
		if ((size_t)o->peers[i] >= cfg->n_validators || o->peers[i] == o->l.node) {
			qsb_usage_error(qsb_run_usage, "-p: v%d is %s", o->peers[i],
			                o->peers[i] == o->l.node ? "the target"
			                                         : "not in the validator set");
			return QSB_EXIT_USAGE;
		}
	}
	/* The whole BatchMsg must fit in one frame of the target's limit. */
	msg_bytes =
	    (uint64_t)o->per_msg *
		(o->l.batch_bytes + (uint64_t)o->l.txns * QSB_TXN_OVERHEAD + QSB_BATCH_OVERHEAD) +
	    QSB_MSG_OVERHEAD;
	if (msg_bytes > cfg->limits.frame_max_bytes) {
		qsb_usage_error(qsb_run_usage,
		                "-b %" PRIu32 " batches of -s %" PRIu64 " bytes (-t %" PRIu32
		                ") do not fit in a frame of the target's "
		                "limits.frame_max_bytes %" PRIu64,
		                o->per_msg, o->l.batch_bytes, o->l.txns,
		                cfg->limits.frame_max_bytes);
		return QSB_EXIT_USAGE;
	}
	/*
	 * qsd refuses expirations beyond now + max_batch_lifetime. Unless -l
	 * was given (to test that refusal), stay one second inside it.
	 */
	r->lifetime_us = o->lifetime_s * 1000000;
	if (!o->lifetime_set && r->lifetime_us >= max_lifetime)
		r->lifetime_us = max_lifetime > 2000000 ? max_lifetime - 1000000 : max_lifetime / 2;
	if (!o->l.base_set)
		o->l.base = qs_clock_wall_us();
	return 0;
}

static int
qsb_run_alloc(struct qsb_run *r)
{
	size_t k = r->o.per_msg;
	uint32_t n_slots = 64;
	size_t i;

	while (n_slots < 2 * r->o.l.inflight)
		n_slots *= 2;
	r->payload = malloc(k * r->o.l.batch_bytes);
	r->txns = calloc(k * r->o.l.txns, sizeof(*r->txns));
	r->infos = calloc(k, sizeof(*r->infos));
	r->batches = calloc(k, sizeof(*r->batches));
	r->batch_ptrs = calloc(k, sizeof(*r->batch_ptrs));
	r->peers = calloc(r->o.n_peers, sizeof(*r->peers));
	if (!r->payload || !r->txns || !r->infos || !r->batches || !r->batch_ptrs || !r->peers)
		return -ENOMEM;
	r->n_peers = r->o.n_peers;
	for (i = 0; i < r->n_peers; i++) {
		r->peers[i].slots = calloc(n_slots, sizeof(*r->peers[i].slots));
		if (!r->peers[i].slots)
			return -ENOMEM;
		r->peers[i].slot_mask = n_slots - 1;
	}
	return 0;
}

static void
qsb_run_summary(struct qsb_run *r, double secs)
{
	double acks_s = secs > 0 ? (double)r->acked / secs : 0;
	double mb_s = secs > 0 ? (double)r->acked_bytes / secs / 1e6 : 0;
	uint32_t p50 = qsb_pct(r->lat.all, r->lat.n_all, 0.50);
	uint32_t p99 = qsb_pct(r->lat.all, r->lat.n_all, 0.99);
	uint32_t p999 = qsb_pct(r->lat.all, r->lat.n_all, 0.999);
	char name[64];
	bool first = true;
	unsigned i;

	if (r->o.l.json) {
		printf("{\"target\":%d,\"peers\":%zu,\"batch_bytes\":%" PRIu64
		       ",\"txns_per_batch\":%" PRIu32 ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64
		       ",\"nacked\":%" PRIu64 ",\"nacks\":{",
		       r->env.target, r->n_peers, r->o.l.batch_bytes, r->o.l.txns, r->sent,
		       r->acked, r->nacked);
		for (i = 0; i <= QSB_NACK_SLOTS; i++) {
			if (!r->nacks[i])
				continue;
			qsb_nack_name(i, name, sizeof(name));
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", name, r->nacks[i]);
			first = false;
		}
		printf("},\"bad_signatures\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
		       ",\"lost_inflight\":%" PRIu64 ",\"disconnects\":%" PRIu64
		       ",\"connect_failures\":%" PRIu64 ",\"duration_s\":%.3f,\"acks_per_s\":%.1f"
		       ",\"mb_per_s\":%.2f,\"latency_us\":{\"p50\":%" PRIu32 ",\"p99\":%" PRIu32
		       ",\"p999\":%" PRIu32 ",\"samples\":%" PRIu64 "}}\n",
		       r->bad_signatures, r->env.protocol_errors, r->lost_inflight, r->disconnects,
		       r->connect_failures, secs, acks_s, mb_s, p50, p99, p999, r->lat.seen);
		return;
	}
	printf("sent=%" PRIu64 " acked=%" PRIu64 " nacked=%" PRIu64 " bad_signatures=%" PRIu64
	       " protocol_errors=%" PRIu64 " lost_inflight=%" PRIu64 " disconnects=%" PRIu64
	       " connect_failures=%" PRIu64 "\n",
	       r->sent, r->acked, r->nacked, r->bad_signatures, r->env.protocol_errors,
	       r->lost_inflight, r->disconnects, r->connect_failures);
	printf("nacks:");
	for (i = 0; i <= QSB_NACK_SLOTS; i++) {
		if (!r->nacks[i])
			continue;
		qsb_nack_name(i, name, sizeof(name));
		printf(" %s=%" PRIu64, name, r->nacks[i]);
		first = false;
	}
	printf("%s\n", first ? " none" : "");
	printf("duration_s=%.3f acks/s=%.1f MB/s=%.2f latency_us p50=%" PRIu32 " p99=%" PRIu32
	       " p999=%" PRIu32 "\n",
	       secs, acks_s, mb_s, p50, p99, p999);
}

/* ---------------------------------------------------------------------------
 * proofs: fill the target's proof queue. Every batch a simulated validator
 * authors and the target acks gets a proof of store signed by a quorum of the
 * simulated validators, sent to the target as a ProofMsg.
 */

#define QSB_PROOFS_POLL_US   100000
#define QSB_PROOFS_STABLE_US 2000000 /* queue size unchanged this long: done */

/* Returns 0, -1 after -h, or the exit status for a usage error. */
static int
qsb_proofs_parse(int argc, char **argv, struct qsb_run_opts *o)
{
	return qsb_run_parse_mode(argc, argv, o, true);
}

/* GetStatus's proof_queue_size, on an open client. */
static int
qsb_proofs_queue_size(struct qs_client *c, uint64_t *out)
{
	Quorumstore__V1__Response *resp = NULL;
	int rc = qs_client_status(c, QSB_CONNECT_TIMEOUT_S * 1000, &resp);

	if (rc == 0 &&
	    (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK ||
	     resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS || !resp->get_status)) {
		fprintf(stderr, "%s: GetStatus: %s %s\n", qsb_cmd,
		        qs_client_status_name(resp->status), resp->message ? resp->message : "");
		rc = -EPROTO;
	}
	if (rc == 0)
		*out = resp->get_status->proof_queue_size;
	else if (rc != -EPROTO)
		fprintf(stderr, "%s: GetStatus: %s\n", qsb_cmd, qs_strerror(rc));
	qs_client_response_free(resp);
	return rc;
}

static int
qsb_proofs_connect(struct qsb_run *r, struct qs_client **out)
{
	const char *path = r->env.cfg->rpc_socket;
	char err[512];
	int rc;

	if (!path || !path[0]) {
		fprintf(stderr, "%s: %s: no rpc.socket\n", qsb_cmd, r->env.cfg->path);
		return -ENOENT;
	}
	err[0] = '\0';
	rc =
	    qs_client_connect(path, "qsbench", QSB_CONNECT_TIMEOUT_S * 1000, out, err, sizeof(err));
	if (rc)
		fprintf(stderr, "%s: cannot connect to %s: %s\n", qsb_cmd, path,
		        err[0] ? err : qs_strerror(rc));
	return rc;
}

/*
 * Before the run: the simulated validators, the authors' shares of -c, the
 * quorum check and the target's queue size. Returns 0 or an exit status.
 */
static int
qsb_proofs_prepare(struct qsb_run *r)
{
	const struct qs_config *cfg = r->env.cfg;
	bool chosen[QS_MAX_VALIDATORS];
	struct qs_client *c = NULL;
	uint32_t authors = r->o.authors ? r->o.authors : (uint32_t)r->n_peers;
	size_t i;
	int rc;

	if (authors > r->n_peers) {
		qsb_usage_error(qsb_proofs_usage,
		                "-a %" PRIu32 ": the cluster has %zu validators besides the target",
		                authors, r->n_peers);
		return QSB_EXIT_USAGE;
	}
	r->o.authors = authors;
	for (i = 0; i < cfg->n_validators; i++)
		r->total_power += cfg->validators[i].voting_power;
	for (i = 0; i < r->n_peers; i++)
		r->by_index[r->peers[i].index] = &r->peers[i];
	for (i = 0; i < r->n_peers; i++) {
		struct qsb_peer *p = &r->peers[i];
		size_t k = qsb_proofs_signers(r, p->index, chosen);

		if (!k) {
			qsb_usage_error(qsb_proofs_usage,
			                "the %zu simulated validators do not hold a quorum of the "
			                "voting power (more than 2/3): run tools/mkcluster with "
			                "AUTHORS + 1 validators",
			                r->n_peers);
			return QSB_EXIT_USAGE;
		}
		if (i < authors) {
			p->count = r->o.l.count / authors + (i < r->o.l.count % authors ? 1 : 0);
			if (k > r->signers)
				r->signers = k;
		} else {
			p->count = 0;
		}
		if (!p->count)
			p->stopped = true; /* signs only */
	}
	rc = qsb_proofs_connect(r, &c);
	if (rc == 0)
		rc = qsb_proofs_queue_size(c, &r->queue_before);
	qs_client_close(c);
	return rc ? QSB_EXIT_FAIL : 0;
}

/* After the run: write out the proofs still buffered, within -g. */
static void
qsb_proofs_flush(struct qsb_run *r, uint64_t end_us)
{
	for (;;) {
		struct timeval tv = qs_clock_tv_us(QSB_PROOFS_POLL_US);
		bool pending = false;
		size_t i;

		for (i = 0; i < r->n_peers; i++) {
			struct qsb_peer *p = &r->peers[i];

			if (p->bev && evbuffer_get_length(bufferevent_get_output(p->bev)))
				pending = true;
		}
		if (!pending || qs_clock_mono_us() >= end_us)
			return;
		evtimer_add(r->end_ev, &tv);
		event_base_loop(r->env.base, EVLOOP_ONCE);
	}
}

/*
 * Wait until the target queued every proof sent (GetStatus proof_queue_size
 * grew by as much), its size stayed put for 2 s, or end_us. Returns 0 or
 * an error (printed).
 */
static int
qsb_proofs_wait(struct qsb_run *r, uint64_t end_us)
{
	struct qs_client *c = NULL;
	uint64_t last = UINT64_MAX, since = qs_clock_mono_us();
	int rc = qsb_proofs_connect(r, &c);

	while (rc == 0) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = QSB_PROOFS_POLL_US * 1000};
		uint64_t now;

		rc = qsb_proofs_queue_size(c, &r->queue_after);
		if (rc)
			break;
		now = qs_clock_mono_us();
		if (r->queue_after != last) {
			last = r->queue_after;
			since = now;
		}
		if (r->queue_after >= r->queue_before + r->proofs_sent || now >= end_us ||
		    now - since >= QSB_PROOFS_STABLE_US)
			break;
		nanosleep(&ts, NULL);
	}
	qs_client_close(c);
	return rc;
}

static void
qsb_proofs_summary(struct qsb_run *r, double secs)
{
	uint64_t queued = r->queue_after > r->queue_before ? r->queue_after - r->queue_before : 0;
	double per_s = secs > 0 ? (double)r->proofs_sent / secs : 0;
	char name[64];
	bool first = true;
	unsigned i;

	if (r->o.l.json) {
		printf("{\"target\":%d,\"authors\":%" PRIu32
		       ",\"signers\":%zu,\"batch_bytes\":%" PRIu64 ",\"txns_per_batch\":%" PRIu32
		       ",\"count\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64
		       ",\"nacked\":%" PRIu64 ",\"nacks\":{",
		       r->env.target, r->o.authors, r->signers, r->o.l.batch_bytes, r->o.l.txns,
		       r->o.l.count, r->sent, r->acked, r->nacked);
		for (i = 0; i <= QSB_NACK_SLOTS; i++) {
			if (!r->nacks[i])
				continue;
			qsb_nack_name(i, name, sizeof(name));
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", name, r->nacks[i]);
			first = false;
		}
		printf("},\"proofs_sent\":%" PRIu64 ",\"proof_queue_before\":%" PRIu64
		       ",\"proof_queue_size\":%" PRIu64 ",\"queued\":%" PRIu64
		       ",\"bad_signatures\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
		       ",\"lost_inflight\":%" PRIu64 ",\"disconnects\":%" PRIu64
		       ",\"connect_failures\":%" PRIu64
		       ",\"duration_s\":%.3f,\"proofs_per_s\":%.1f}\n",
		       r->proofs_sent, r->queue_before, r->queue_after, queued, r->bad_signatures,
		       r->env.protocol_errors, r->lost_inflight, r->disconnects,
		       r->connect_failures, secs, per_s);
		return;
	}
	printf("sent=%" PRIu64 " acked=%" PRIu64 " nacked=%" PRIu64 " proofs_sent=%" PRIu64
	       " bad_signatures=%" PRIu64 " protocol_errors=%" PRIu64 " lost_inflight=%" PRIu64
	       " disconnects=%" PRIu64 " connect_failures=%" PRIu64 "\n",
	       r->sent, r->acked, r->nacked, r->proofs_sent, r->bad_signatures,
	       r->env.protocol_errors, r->lost_inflight, r->disconnects, r->connect_failures);
	printf("nacks:");
	for (i = 0; i <= QSB_NACK_SLOTS; i++) {
		if (!r->nacks[i])
			continue;
		qsb_nack_name(i, name, sizeof(name));
		printf(" %s=%" PRIu64, name, r->nacks[i]);
		first = false;
	}
	printf("%s\n", first ? " none" : "");
	printf("authors=%" PRIu32 " signers=%zu proof_queue_before=%" PRIu64
	       " proof_queue_size=%" PRIu64 " queued=%" PRIu64 " duration_s=%.3f proofs/s=%.1f\n",
	       r->o.authors, r->signers, r->queue_before, r->queue_after, queued, secs, per_s);
}

static int
qsb_run_main(int argc, char **argv, bool proofs)
{
	struct qsb_run *r;
	struct timeval tv;
	int status = QSB_EXIT_FAIL;
	int rc;
	size_t i;
	double secs;

	r = calloc(1, sizeof(*r));
	if (!r) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		return QSB_EXIT_FAIL;
	}
	rc = proofs ? qsb_proofs_parse(argc, argv, &r->o) : qsb_run_parse(argc, argv, &r->o);
	if (rc) {
		status = rc < 0 ? 0 : rc;
		goto out;
	}
	status = QSB_EXIT_USAGE;
	r->env.ops = &qsb_run_ops;
	r->env.cmd = r;
	if (qsb_env_init(&r->env, r->o.l.dir, r->o.l.node,
	                 proofs ? qsb_proofs_usage : qsb_run_usage))
		goto out;
	rc = qsb_run_check_config(r);
	if (rc) {
		status = rc;
		goto out;
	}
	status = QSB_EXIT_FAIL;
	if (qsb_run_alloc(r)) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	status = QSB_EXIT_USAGE;
	for (i = 0; i < r->n_peers; i++) {
		if (qsb_peer_init(&r->peers[i], &r->env, r->o.peers[i]))
			goto out;
		r->peers[i].count = r->o.l.count;
	}
	if (proofs) {
		rc = qsb_proofs_prepare(r);
		if (rc) {
			status = rc;
			goto out;
		}
	}
	if (r->o.l.record) {
		r->rec = fopen(r->o.l.record, "we");
		if (!r->rec) {
			fprintf(stderr, "%s: %s: %s\n", qsb_cmd, r->o.l.record, strerror(errno));
			goto out;
		}
		r->rec_buf = malloc(1 << 16);
		if (r->rec_buf)
			setvbuf(r->rec, r->rec_buf, _IOFBF, 1 << 16);
	}

	status = QSB_EXIT_FAIL;
	r->tick_ev = event_new(r->env.base, -1, EV_PERSIST, qsb_run_tick_cb, r);
	r->end_ev = evtimer_new(r->env.base, qsb_run_end_cb, r);
	if (r->o.l.rate)
		r->pace_ev = event_new(r->env.base, -1, EV_PERSIST, qsb_run_pace_cb, r);
	if (!r->tick_ev || !r->end_ev || (r->o.l.rate && !r->pace_ev) ||
	    qsb_env_signals(&r->env, qsb_run_signal_cb, r)) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	r->start_us = qs_clock_mono_us();
	r->tick_us = r->start_us;
	r->last_pace_us = r->start_us;
	r->lat.rng = r->o.l.seed;
	tv = qs_clock_tv_us(1000000);
	evtimer_add(r->tick_ev, &tv);
	if (r->pace_ev) {
		tv = qs_clock_tv_us(QSB_PACE_US);
		evtimer_add(r->pace_ev, &tv);
	}
	if (!r->o.l.count || r->o.l.duration_set) {
		tv = qs_clock_tv_us(r->o.l.duration_s * 1000000);
		evtimer_add(r->end_ev, &tv);
	}
	if (!r->o.l.quiet)
		fprintf(stderr,
		        "%s: %zu validators -> v%d %s: %" PRIu64 " bytes x %" PRIu32
		        " txns per batch, %s %" PRIu64 ", lifetime %" PRIu64 " s, base %" PRIu64
		        "\n",
		        qsb_cmd, r->n_peers, r->o.l.node, r->env.addr_str, r->o.l.batch_bytes,
		        r->o.l.txns, r->o.l.rate ? "rate/s" : "in flight",
		        r->o.l.rate ? r->o.l.rate : (uint64_t)r->o.l.inflight,
		        r->lifetime_us / 1000000, r->o.l.base);
	for (i = 0; i < r->n_peers; i++) {
		if (!r->peers[i].stopped)
			qsb_peer_connect(&r->peers[i]);
	}
	if (r->phase != QSB_DONE)
		event_base_dispatch(r->env.base);
	if (r->phase != QSB_DONE)
		r->end_us = qs_clock_mono_us();
	if (proofs)
		qsb_proofs_flush(r, r->end_us + r->o.l.drain_s * 1000000);

	/* Whatever is still unanswered will not be: close and count it. */
	for (i = 0; i < r->n_peers; i++) {
		struct qsb_peer *p = &r->peers[i];

		r->lost_inflight += p->inflight;
		p->inflight = 0;
		if (p->bev) {
			bufferevent_free(p->bev);
			p->bev = NULL;
		}
	}
	if (r->rec) {
		if (fflush(r->rec) != 0 || fsync(fileno(r->rec)) < 0) {
			fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, r->o.l.record,
			        strerror(errno));
			r->failed = true;
		}
	}

	qsb_run_check_deferred(r);
	secs = (double)(r->end_us - r->start_us) / 1e6;
	if (proofs && qsb_proofs_wait(r, qs_clock_mono_us() + r->o.l.drain_s * 1000000))
		r->failed = true;
	qsb_lat_sort(&r->lat);
	if (proofs)
		qsb_proofs_summary(r, secs);
	else
		qsb_run_summary(r, secs);

	status = 0;
	if (proofs &&
	    (r->proofs_sent < r->o.l.count || r->queue_after < r->queue_before + r->proofs_sent)) {
		fprintf(stderr,
		        "%s: %" PRIu64 " proofs of %" PRIu64 " sent, the queue grew by %" PRIu64
		        "\n",
		        qsb_cmd, r->proofs_sent, r->o.l.count,
		        r->queue_after > r->queue_before ? r->queue_after - r->queue_before : 0);
		status = QSB_EXIT_FAIL;
	}
	for (i = 0; i < r->n_peers; i++) {
		if (r->peers[i].count == 0 && proofs)
			continue;
		if (!r->peers[i].ever_ready) {
			fprintf(stderr, "%s: v%d never connected to v%d at %s\n", qsb_cmd,
			        r->peers[i].index, r->o.l.node, r->env.addr_str);
			status = QSB_EXIT_FAIL;
		}
	}
	if (r->failed || r->bad_signatures || r->env.protocol_errors)
		status = QSB_EXIT_FAIL;
out:
	if (r->rec && fclose(r->rec) != 0 && status == 0) {
		fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, r->o.l.record, strerror(errno));
		status = QSB_EXIT_FAIL;
	}
	free(r->rec_buf);
	for (i = 0; r->peers && i < r->n_peers; i++)
		qsb_peer_destroy(&r->peers[i]);
	free(r->peers);
	if (r->tick_ev)
		event_free(r->tick_ev);
	if (r->pace_ev)
		event_free(r->pace_ev);
	if (r->end_ev)
		event_free(r->end_ev);
	qsb_env_destroy(&r->env);
	free(r->payload);
	free(r->txns);
	free(r->infos);
	free(r->batches);
	free(r->batch_ptrs);
	free(r->lat.all);
	free(r->deferred);
	free(r);
	return status;
}

/* ---------------------------------------------------------------------------
 * verify
 */

static const char qsb_verify_usage[] =
    "usage: qsbench verify -d DIR -f RECORD_FILE [-n TARGET] [-p PEER] [-i MAX_INFLIGHT]\n"
    "                      [-r RATE]\n"
    "  -d DIR   cluster written by tools/mkcluster      -f FILE  record of qsbench run -o\n"
    "  -n N     node to ask (0)                         -p N  ask as validator N\n"
    "  -i N     requests in flight (64)\n"
    "  -r N     requests per second, 0 unpaced (900: qsd serves 1000/s per peer)\n";

struct qsb_record {
	unsigned long line;
	uint8_t digest[QS_DIGEST_BYTES];
	uint32_t author;
	uint64_t batch_id;
	uint64_t expiration_us;
	uint32_t num_txns;
	uint64_t num_bytes;
	uint64_t seed;
	uint32_t txns_per_batch;
	uint64_t batch_bytes;
	uint64_t payload_id; /* the generator's batch_id: the 10th field, else batch_id */
};

struct qsb_vslot {
	struct qsb_record rec;
	uint64_t request_id;
	uint64_t sent_us; /* monotonic, of the last try */
	unsigned tries;
	bool used;
};

struct qsb_verify {
	struct qsb_env env;
	struct qsb_peer peer;
	const char *path;
	FILE *f;
	unsigned long line;
	bool eof;
	struct qsb_vslot *slots;
	uint32_t slot_mask;
	uint32_t cap;
	uint32_t inflight;
	uint64_t inflight_bytes; /* payload bytes asked for and not answered */
	uint64_t last_bytes;     /* batch_bytes of the last record read */
	uint64_t next_request;
	uint64_t rate; /* requests per second, 0: unpaced */
	double tokens;
	uint64_t pace_us;
	uint64_t scan_us;
	struct event *pace_ev;
	uint64_t verified, missing, altered, skipped, unanswered, retries, late;
	uint8_t *scratch;
	size_t scratch_len;
	bool done;
	int status; /* 0, or the exit status of a failure */
};

static void
qsb_verify_stop(struct qsb_verify *v, int status)
{
	if (status && !v->status)
		v->status = status;
	if (!v->done) {
		v->done = true;
		event_base_loopbreak(v->env.base);
	}
}

/*
 * Parse one record line (its newline removed). Returns 0, or -EINVAL after
 * printing FILE:LINE and why.
 */
static int
qsb_record_parse(struct qsb_verify *v, char *line, struct qsb_record *rec)
{
	const struct qs_config *cfg = v->env.cfg;
	char *field[QSB_RECORD_FIELDS_MAX];
	char *save = NULL, *tok;
	uint64_t a, nt, tpb;
	size_t n = 0;
	const char *why = NULL;

	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == QSB_RECORD_FIELDS_MAX) {
			why = "more than 10 fields";
			goto out;
		}
		field[n++] = tok;
	}
	rec->line = v->line;
	if (n < QSB_RECORD_FIELDS)
		why = "fewer than 9 fields";
	else if (qs_hex_decode(field[0], rec->digest, QS_DIGEST_BYTES))
		why = "digest is not 64 hex digits";
	else if (qsb_parse_u64(field[1], 0, cfg->n_validators - 1, &a))
		why = "author_index is not a validator of the target's config";
	else if (qsb_parse_u64(field[2], 0, UINT64_MAX, &rec->batch_id) ||
	         qsb_parse_u64(field[3], 0, UINT64_MAX, &rec->expiration_us))
		why = "bad batch_id or expiration_us";
	else if (qsb_parse_u64(field[4], 1, QSB_MAX_TXNS, &nt) ||
	         qsb_parse_u64(field[7], 1, QSB_MAX_TXNS, &tpb) || nt != tpb)
		why = "num_txns and txns_per_batch differ or are out of range";
	else if (qsb_parse_u64(field[5], nt, v->env.frame_max, &rec->num_bytes) ||
	         qsb_parse_u64(field[8], nt, v->env.frame_max, &rec->batch_bytes) ||
	         rec->num_bytes != rec->batch_bytes)
		why = "num_bytes and batch_bytes differ or are out of range";
	else if (qsb_parse_u64(field[6], 0, UINT64_MAX, &rec->seed))
		why = "bad seed";
	else if (n == QSB_RECORD_FIELDS_MAX &&
	         qsb_parse_u64(field[9], 0, UINT64_MAX, &rec->payload_id))
		why = "bad payload_id";
	if (why)
		goto out;
	if (n == QSB_RECORD_FIELDS)
		rec->payload_id = rec->batch_id;
	rec->author = (uint32_t)a;
	rec->num_txns = (uint32_t)nt;
	rec->txns_per_batch = (uint32_t)tpb;
out:
	if (!why)
		return 0;
	fprintf(stderr, "%s: %s:%lu: %s\n", qsb_cmd, v->path, v->line, why);
	return -EINVAL;
}

/* Read the next record whose batch has not expired. Returns 1, 0 at EOF, or -errno. */
static int
qsb_verify_next(struct qsb_verify *v, struct qsb_record *rec)
{
	char line[QSB_RECORD_LINE_MAX];

	while (!v->eof) {
		size_t len;

		if (!fgets(line, sizeof(line), v->f)) {
			if (ferror(v->f)) {
				fprintf(stderr, "%s: reading %s: %s\n", qsb_cmd, v->path,
				        strerror(errno));
				return -EIO;
			}
			v->eof = true;
			break;
		}
		v->line++;
		len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(v->f)) {
			fprintf(stderr, "%s: %s:%lu: line longer than %d bytes\n", qsb_cmd, v->path,
			        v->line, QSB_RECORD_LINE_MAX - 2);
			return -EINVAL;
		}
		if (len == 0)
			continue;
		if (qsb_record_parse(v, line, rec))
			return -EINVAL;
		if (rec->expiration_us <= qs_clock_wall_us()) {
			v->skipped++;
			continue;
		}
		return 1;
	}
	return 0;
}

static int qsb_verify_request(struct qsb_verify *v, struct qsb_vslot *s);

static void
qsb_verify_fill(struct qsb_verify *v)
{
	struct qsb_peer *p = &v->peer;

	while (!v->done && p->state == QSB_READY && v->inflight < v->cap) {
		struct qsb_vslot *s = &v->slots[v->next_request & v->slot_mask];
		int rc;

		if (s->used || (v->rate && v->tokens < 1))
			break; /* an old request still holds the slot, or paced */
		if (v->inflight && v->inflight_bytes + v->last_bytes > QSB_VERIFY_INFLIGHT_BYTES)
			break;
		rc = qsb_verify_next(v, &s->rec);
		if (rc < 0) {
			qsb_verify_stop(v, rc == -EINVAL ? QSB_EXIT_USAGE : QSB_EXIT_FAIL);
			return;
		}
		if (rc == 0)
			break;
		s->request_id = v->next_request++;
		s->tries = 0;
		if (qsb_verify_request(v, s))
			return;
		s->used = true;
		v->inflight++;
		v->inflight_bytes += s->rec.batch_bytes;
		v->last_bytes = s->rec.batch_bytes;
	}
	if (v->eof && v->inflight == 0)
		qsb_verify_stop(v, 0);
}

/*
 * qsd drops BatchRequests over its per-peer rate or when its reader is
 * busy, without an answer: ask again after QSB_VERIFY_RETRY_US, at most
 * QSB_VERIFY_TRIES times, then count the batch as unanswered.
 */
static void
qsb_verify_pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qsb_verify *v = arg;
	uint64_t now = qs_clock_mono_us();
	uint32_t i;

	if (v->rate) {
		v->tokens += (double)v->rate * (double)(now - v->pace_us) / 1e6;
		if (v->tokens > 1 + (double)v->rate * 0.05)
			v->tokens = 1 + (double)v->rate * 0.05;
	}
	v->pace_us = now;
	if (v->peer.state != QSB_READY || v->done)
		return;
	if (now - v->scan_us >= QSB_VERIFY_SCAN_US) {
		v->scan_us = now;
		for (i = 0; i <= v->slot_mask && !v->done; i++) {
			struct qsb_vslot *s = &v->slots[i];

			if (!s->used || now - s->sent_us < QSB_VERIFY_RETRY_US)
				continue;
			if (s->tries >= QSB_VERIFY_TRIES) {
				char hex[2 * QS_DIGEST_BYTES + 1];

				qs_hex_encode(s->rec.digest, QS_DIGEST_BYTES, hex);
				if (v->unanswered++ < QSB_MAX_REPORTS)
					fprintf(stderr,
					        "%s: %s:%lu: batch %s: no answer to %u "
					        "requests\n",
					        qsb_cmd, v->path, s->rec.line, hex, s->tries);
				s->used = false;
				v->inflight--;
				v->inflight_bytes -= s->rec.batch_bytes;
				continue;
			}
			if (v->rate && v->tokens < 1)
				break;
			v->retries++;
			if (qsb_verify_request(v, s))
				return;
		}
	}
	qsb_verify_fill(v);
}

/* Send (again) the request of slot s. Returns 0, or stops the run. */
static int
qsb_verify_request(struct qsb_verify *v, struct qsb_vslot *s)
{
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;

	req.request_id = s->request_id;
	req.digest.len = QS_DIGEST_BYTES;
	req.digest.data = s->rec.digest;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST;
	m.batch_request = &req;
	if (qsb_send(&v->peer, &m)) {
		qsb_verify_stop(v, QSB_EXIT_FAIL);
		return -EIO;
	}
	s->sent_us = qs_clock_mono_us();
	s->tries++;
	if (v->rate)
		v->tokens -= 1;
	return 0;
}

/* What differs between a served batch and its record, or NULL. */
static const char *
qsb_verify_batch(struct qsb_verify *v, const struct qsb_record *rec,
                 const Quorumstore__V1__Batch *b, char *buf, size_t len)
{
	const struct qs_config *cfg = v->env.cfg;
	const uint8_t *author = cfg->validators[rec->author].signing_key;
	const Quorumstore__V1__BatchInfo *info = b ? b->info : NULL;
	uint8_t digest[QS_DIGEST_BYTES];
	size_t max_len = qsb_txn_len(rec->batch_bytes, rec->txns_per_batch, 0);
	uint32_t i;
	int rc;

	if (!info)
		return "response has no batch info";
	if (info->author.len != QS_PUBKEY_BYTES ||
	    memcmp(info->author.data, author, QS_PUBKEY_BYTES) != 0)
		return "info.author";
	if (info->batch_id != rec->batch_id)
		return "info.batch_id";
	if (info->epoch != cfg->epoch)
		return "info.epoch";
	if (info->expiration_us != rec->expiration_us)
		return "info.expiration_us";
	if (info->digest.len != QS_DIGEST_BYTES ||
	    memcmp(info->digest.data, rec->digest, QS_DIGEST_BYTES) != 0)
		return "info.digest";
	if (info->num_txns != rec->num_txns)
		return "info.num_txns";
	if (info->num_bytes != rec->num_bytes)
		return "info.num_bytes";
	if (info->gas_bucket_start != 0)
		return "info.gas_bucket_start";
	if (b->n_transactions != rec->txns_per_batch)
		return "transaction count";
	if (max_len > v->scratch_len) {
		uint8_t *s = realloc(v->scratch, max_len);

		if (!s)
			return "out of memory regenerating the payload";
		v->scratch = s;
		v->scratch_len = max_len;
	}
	for (i = 0; i < rec->txns_per_batch; i++) {
		size_t tl = qsb_txn_len(rec->batch_bytes, rec->txns_per_batch, i);

		if (b->transactions[i].len != tl) {
			snprintf(buf, len, "transaction %" PRIu32 " length %zu, expected %zu", i,
			         b->transactions[i].len, tl);
			return buf;
		}
		qsb_txn_fill(rec->seed, rec->author, rec->payload_id, i, v->scratch, tl);
		if (tl && memcmp(b->transactions[i].data, v->scratch, tl) != 0) {
			snprintf(buf, len, "transaction %" PRIu32 " bytes", i);
			return buf;
		}
	}
	rc = qs_codec_batch_digest(cfg->chain_id, author, cfg->epoch, rec->batch_id,
	                           b->transactions, b->n_transactions, digest);
	if (rc) {
		snprintf(buf, len, "cannot recompute the digest: %s", qs_strerror(rc));
		return buf;
	}
	if (memcmp(digest, rec->digest, QS_DIGEST_BYTES) != 0)
		return "recomputed digest";
	return NULL;
}

static int
qsb_verify_message(struct qsb_peer *p, const Quorumstore__V1__PeerMessage *m)
{
	struct qsb_verify *v = p->env->cmd;
	const Quorumstore__V1__BatchResponse *resp = m->batch_response;
	struct qsb_vslot *s;
	char hex[2 * QS_DIGEST_BYTES + 1];
	char buf[128];
	const char *why;

	switch (m->msg_case) {
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE:
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG:
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK:
		fprintf(stderr, "%s: v%d: answer to a batch that was never sent\n", qsb_cmd,
		        p->index);
		return QS_EDECODE;
	default:
		return 0;
	}
	if (!resp)
		return QS_EDECODE;
	if (resp->request_id == 0 || resp->request_id >= v->next_request) {
		fprintf(stderr, "%s: v%d: response to request %" PRIu64 " never made\n", qsb_cmd,
		        p->index, resp->request_id);
		return QS_EDECODE;
	}
	s = &v->slots[resp->request_id & v->slot_mask];
	if (!s->used || s->request_id != resp->request_id) {
		v->late++; /* a second answer to a request we repeated */
		return 0;
	}
	s->used = false;
	v->inflight--;
	v->inflight_bytes -= s->rec.batch_bytes;
	qs_hex_encode(s->rec.digest, QS_DIGEST_BYTES, hex);
	if (resp->result_case == QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH) {
		why = qsb_verify_batch(v, &s->rec, resp->batch, buf, sizeof(buf));
		if (why) {
			if (v->altered++ < QSB_MAX_REPORTS)
				fprintf(stderr, "%s: %s:%lu: batch %s ALTERED: %s\n", qsb_cmd,
				        v->path, s->rec.line, hex, why);
		} else {
			v->verified++;
		}
	} else {
		bool nf = resp->result_case == QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND;

		if (v->missing++ < QSB_MAX_REPORTS)
			fprintf(stderr, "%s: %s:%lu: batch %s MISSING%s\n", qsb_cmd, v->path,
			        s->rec.line, hex, nf ? "" : " (response without a result)");
	}
	qsb_verify_fill(v);
	return 0;
}

static void
qsb_verify_ready(struct qsb_peer *p)
{
	struct qsb_verify *v = p->env->cmd;
	struct timeval tmo = {.tv_sec = QSB_VERIFY_TIMEOUT_S};

	/* Silence while requests are outstanding is a failure. */
	bufferevent_set_timeouts(p->bev, &tmo, NULL);
	qsb_verify_fill(v);
}

static void
qsb_verify_closed(struct qsb_peer *p, bool was_ready, bool protocol_error)
{
	struct qsb_verify *v = p->env->cmd;

	p->stopped = true;
	if (!v->done) {
		if (was_ready)
			fprintf(stderr,
			        "%s: connection ended with %" PRIu32 " requests "
			        "unanswered\n",
			        qsb_cmd, v->inflight);
		qsb_verify_stop(v, QSB_EXIT_FAIL);
	}
}

static const struct qsb_ops qsb_verify_ops = {
    .ready = qsb_verify_ready,
    .message = qsb_verify_message,
    .closed = qsb_verify_closed,
};

static void
qsb_verify_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct qsb_verify *v = arg;

	fprintf(stderr, "%s: %s: stopping\n", qsb_cmd, strsignal((int)sig));
	qsb_verify_stop(v, QSB_EXIT_FAIL);
}

static int
qsb_verify_main(int argc, char **argv)
{
	const char *u = qsb_verify_usage;
	const char *dir = NULL;
	struct qsb_verify *v;
	uint64_t target = 0, peer = UINT64_MAX, cap = 64, rate = QSB_VERIFY_RATE;
	struct timeval tv;
	uint32_t n_slots = 64;
	int status = QSB_EXIT_USAGE;
	int c;

	v = calloc(1, sizeof(*v));
	if (!v) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		return QSB_EXIT_FAIL;
	}
	optind = 1;
	while ((c = getopt(argc, argv, ":d:f:n:p:i:r:h")) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'f':
			v->path = optarg;
			break;
		case 'n':
			if (qsb_opt_u64(u, c, optarg, 0, QS_MAX_VALIDATORS - 1, &target))
				goto out;
			break;
		case 'p':
			if (qsb_opt_u64(u, c, optarg, 0, QS_MAX_VALIDATORS - 1, &peer))
				goto out;
			break;
		case 'i':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_MAX_INFLIGHT, &cap))
				goto out;
			break;
		case 'r':
			if (qsb_opt_u64(u, c, optarg, 0, QSB_MAX_RATE, &rate))
				goto out;
			break;
		case 'h':
			fputs(u, stdout);
			status = 0;
			goto out;
		case ':':
			qsb_usage_error(u, "-%c needs an argument", optopt);
			goto out;
		default:
			qsb_usage_error(u, "unknown option -%c", optopt);
			goto out;
		}
	}
	if (optind < argc) {
		qsb_usage_error(u, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!dir || !v->path) {
		qsb_usage_error(u, "-d DIR and -f RECORD_FILE are required");
		goto out;
	}
	v->env.ops = &qsb_verify_ops;
	v->env.cmd = v;
	if (qsb_env_init(&v->env, dir, (int)target, u))
		goto out;
	if (peer == UINT64_MAX)
		peer = target == 0 ? 1 : 0;
	if (peer == target || peer >= v->env.cfg->n_validators) {
		qsb_usage_error(u, "-p: v%" PRIu64 " is %s", peer,
		                peer == target ? "the target" : "not in the validator set");
		goto out;
	}
	v->f = fopen(v->path, "re");
	if (!v->f) {
		fprintf(stderr, "%s: %s: %s\n", qsb_cmd, v->path, strerror(errno));
		goto out;
	}
	if (qsb_peer_init(&v->peer, &v->env, (int)peer))
		goto out;
	status = QSB_EXIT_FAIL;
	v->cap = (uint32_t)cap;
	while (n_slots < 2 * v->cap)
		n_slots *= 2;
	v->slots = calloc(n_slots, sizeof(*v->slots));
	v->pace_ev = event_new(v->env.base, -1, EV_PERSIST, qsb_verify_pace_cb, v);
	if (!v->slots || !v->pace_ev || qsb_env_signals(&v->env, qsb_verify_signal_cb, v)) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	v->slot_mask = n_slots - 1;
	v->next_request = 1;
	v->rate = rate;
	v->pace_us = qs_clock_mono_us();
	v->scan_us = v->pace_us;
	tv = qs_clock_tv_us(QSB_PACE_US);
	evtimer_add(v->pace_ev, &tv);

	qsb_peer_connect(&v->peer);
	if (!v->done)
		event_base_dispatch(v->env.base);

	printf("verified=%" PRIu64 " missing=%" PRIu64 " altered=%" PRIu64
	       " skipped_expired=%" PRIu64 "\n",
	       v->verified, v->missing, v->altered, v->skipped);
	if (v->unanswered)
		fprintf(stderr, "%s: %" PRIu64 " batches got no answer to %d requests each\n",
		        qsb_cmd, v->unanswered, QSB_VERIFY_TRIES);
	status = v->status;
	if (!status && (v->missing || v->altered || v->unanswered))
		status = QSB_EXIT_FAIL;
	if (!status && v->env.protocol_errors)
		status = QSB_EXIT_FAIL;
out:
	qsb_peer_destroy(&v->peer);
	if (v->f)
		fclose(v->f);
	if (v->pace_ev)
		event_free(v->pace_ev);
	free(v->slots);
	free(v->scratch);
	qsb_env_destroy(&v->env);
	free(v);
	return status;
}

/* ---------------------------------------------------------------------------
 * submit: drive one node as its local consensus process, over its RPC socket
 * with the client library (pipelined SubmitBatch requests).
 */

#define QSB_SUBMIT_IO_MS      10000  /* connect + Hello; a send blocked this long fails */
#define QSB_SUBMIT_WAIT_US    100000 /* -w: connection retry period */
#define QSB_SUBMIT_POLL_MS    100    /* longest wait for a response: signals are seen */
#define QSB_SUBMIT_BACKOFF_US 10000  /* no new request this long after back pressure */
#define QSB_SUBMIT_MAX_WAIT_S 3600
#define QSB_STATUS_SLOTS      32 /* statuses 0..31, the rest counted as "other" */

static const char qsb_submit_usage[] =
    "usage: qsbench submit -d DIR [-n NODE] [-s BATCH_BYTES] [-t TXNS_PER_BATCH]\n"
    "                      [-i MAX_INFLIGHT | -r RATE] [-D DURATION_S | -c COUNT]\n"
    "                      [-S SEED] [-B BASE] [-g DRAIN_S] [-w WAIT_S] [-o RECORD_FILE]\n"
    "                      [-q] [-j]\n"
    "  -d DIR   cluster written by tools/mkcluster      -n NODE  node to drive (0)\n"
    "  -s N     payload bytes per batch (16384)         -t N  transactions per batch (8)\n"
    "  -i N     SubmitBatch requests in flight (16; 1024 with -r)\n"
    "  -r N     requests per second (paced; default: as fast as -i allows)\n"
    "  -D S     submit for S seconds (10)               -c N  submit N batches\n"
    "  -S SEED  payload seed (1)                        -B N  first payload id (wall clock us)\n"
    "  -g S     wait S seconds for answers after submitting stopped (5)\n"
    "  -w S     wait up to S seconds for the socket to accept, trying every 100 ms (0)\n"
    "  -o FILE  record every stored batch (for verify)\n"
    "  -q       no per-second lines                    -j  summary as JSON\n";

static const char qsb_consensus_usage[] =
    "usage: qsbench consensus -d DIR [submit options] [-I INTERVAL_MS] [-P PIPELINE]\n"
    "                         [--max-txns N] [--max-bytes N] [--max-inline-txns N]\n"
    "                         [--max-inline-bytes N] [--full-only]\n"
    "  submit as 'qsbench submit' does (-n -s -t -i -r -D -c -S -B -g -w -o -q -j), and\n"
    "  every INTERVAL_MS propose a block (GetPayload), execute it (GetBatch of every\n"
    "  proof, digests checked) and commit it (NotifyCommit) once PIPELINE more blocks\n"
    "  were proposed\n"
    "  -I MS    GetPayload period (250)                -P N  pipeline depth in blocks (2)\n"
    "  --max-txns N (2000)  --max-bytes N (8388608)  limits of a payload\n"
    "  --max-inline-txns N (100)  --max-inline-bytes N (262144)  of those, inline\n"
    "  --full-only  return_non_full false (default true)\n";

/* Long options of consensus and payload: GetPayload's limits. */
enum {
	QSB_OPT_MAX_TXNS = 256,
	QSB_OPT_MAX_BYTES,
	QSB_OPT_MAX_INLINE_TXNS,
	QSB_OPT_MAX_INLINE_BYTES,
	QSB_OPT_FULL_ONLY,
};

static const struct option qsb_limit_options[] = {
    {"max-txns", required_argument, NULL, QSB_OPT_MAX_TXNS},
    {"max-bytes", required_argument, NULL, QSB_OPT_MAX_BYTES},
    {"max-inline-txns", required_argument, NULL, QSB_OPT_MAX_INLINE_TXNS},
    {"max-inline-bytes", required_argument, NULL, QSB_OPT_MAX_INLINE_BYTES},
    {"full-only", no_argument, NULL, QSB_OPT_FULL_ONLY},
    {NULL, 0, NULL, 0},
};

/* The defaults of a validator's GetPayload. */
static void
qsb_limits_default(struct qs_client_payload_limits *lim)
{
	lim->max_txns = 2000;
	lim->max_bytes = 8u << 20;
	lim->max_inline_txns = 100;
	lim->max_inline_bytes = 256u << 10;
	lim->return_non_full = true;
}

/* Handle a limit option. Returns 1 if c is not one, 0, or a usage exit status. */
static int
qsb_limit_opt(const char *u, int c, const char *arg, struct qs_client_payload_limits *lim)
{
	const char *name;
	uint64_t *v;

	switch (c) {
	case QSB_OPT_MAX_TXNS:
		name = "--max-txns";
		v = &lim->max_txns;
		break;
	case QSB_OPT_MAX_BYTES:
		name = "--max-bytes";
		v = &lim->max_bytes;
		break;
	case QSB_OPT_MAX_INLINE_TXNS:
		name = "--max-inline-txns";
		v = &lim->max_inline_txns;
		break;
	case QSB_OPT_MAX_INLINE_BYTES:
		name = "--max-inline-bytes";
		v = &lim->max_inline_bytes;
		break;
	case QSB_OPT_FULL_ONLY:
		lim->return_non_full = false;
		return 0;
	default:
		return 1;
	}
	if (qsb_parse_u64(arg, 0, UINT64_MAX, v) == 0)
		return 0;
	qsb_usage_error(u, "%s: '%s' is not a number", name, arg);
	return QSB_EXIT_USAGE;
}

struct qsb_cons_opts {
	bool on;
	uint64_t interval_ms;
	uint64_t pipeline; /* blocks proposed after a block before it is committed */
	struct qs_client_payload_limits lim;
};

struct qsb_submit_opts {
	struct qsb_load_opts l;
	uint64_t wait_s;
	struct qsb_cons_opts c;
};

/* What a request in flight on the RPC socket is. */
enum qsb_req_kind {
	QSB_REQ_SUBMIT,
	QSB_REQ_PAYLOAD, /* consensus: GetPayload of block `block` */
	QSB_REQ_BATCH,   /* consensus: GetBatch of item `item` of block `block` */
	QSB_REQ_COMMIT,  /* consensus: NotifyCommit of block `block` */
};

/* One request awaiting its response. */
struct qsb_sslot {
	uint64_t request_id;
	uint64_t payload_id; /* submit */
	uint64_t block;      /* consensus: the block's sequence number */
	uint64_t sent_us;    /* monotonic */
	uint32_t item;
	enum qsb_req_kind kind;
	bool used;
};

/*
 * consensus: blocks proposed (GetPayload answered), executed (every batch
 * read back with GetBatch and checked) and committed (NotifyCommit) in
 * sequence, pipelined as a validator's consensus does.
 */
#define QSB_CONS_MAX_PIPELINE    64
#define QSB_CONS_SLACK           2 /* pending blocks beyond the pipeline: one executing, one asked for */
#define QSB_CONS_RING            128 /* > QSB_CONS_MAX_PIPELINE + QSB_CONS_SLACK */
#define QSB_CONS_FETCHES         256 /* GetBatch in flight (qsd fetches at most 256 batches at once) */
#define QSB_CONS_MAX_INTERVAL_MS 60000
#define QSB_SOURCE_SLOTS         4 /* BatchSource 0..3 */

enum qsb_block_state {
	QSB_BLOCK_FREE,
	QSB_BLOCK_PROPOSING,  /* GetPayload sent */
	QSB_BLOCK_EXECUTING,  /* GetBatch of its batches */
	QSB_BLOCK_EXECUTED,   /* waiting for the pipeline before its commit */
	QSB_BLOCK_COMMITTING, /* NotifyCommit sent */
};

struct qsb_block {
	enum qsb_block_state state;
	Quorumstore__V1__Response *payload; /* owned: the GetPayload answer */
	size_t next_fetch;                  /* next proof to GetBatch */
	size_t fetched;                     /* proofs answered */
};

struct qsb_cons {
	struct qsb_block ring[QSB_CONS_RING]; /* block seq at ring[seq % QSB_CONS_RING] */
	uint64_t head;                        /* oldest block not committed */
	uint64_t tail;                        /* next block */
	uint64_t commit_next;                 /* next block to commit */
	uint32_t inflight;                    /* requests without a response */
	uint32_t fetching;                    /* GetBatch in flight */
	bool proposing;
	uint64_t next_us; /* next GetPayload (monotonic) */
	ProtobufCBinaryData *exclude;
	size_t exclude_cap;
	ProtobufCBinaryData *digests;
	size_t digests_cap;

	uint64_t payloads, proofs, inline_batches, batches, misses, mismatches, errors;
	uint64_t sources[QSB_SOURCE_SLOTS];
	uint64_t commits, proofs_removed, stalls, unanswered;
	uint64_t tick_payloads, tick_proofs, tick_inline, tick_commits, tick_removed;
	uint64_t tick_sources[QSB_SOURCE_SLOTS];
	struct qsb_lat lat_payload, lat_batch;
};

struct qsb_submit {
	struct qsb_submit_opts o;
	struct qs_config *cfg; /* DIR/vNODE/qsd.yaml */
	const uint8_t *author; /* the node's signing key, from cfg */
	uint64_t epoch;        /* the server's, from its Hello */
	struct qs_client *client;
	struct qsb_sslot *slots; /* linear probing from request_id & slot_mask */
	uint32_t slot_mask;
	uint32_t inflight;
	uint64_t next; /* payload_id = base + next */
	enum qsb_phase phase;
	uint64_t start_us, end_us; /* monotonic */
	uint64_t send_end_us;      /* -D; UINT64_MAX with -c alone */
	uint64_t drain_end_us;
	uint64_t next_tick_us;
	uint64_t pace_us;
	double tokens;
	uint64_t backoff_until_us;
	bool lost;         /* the connection broke or a request could not be sent */
	bool failed;       /* an error of ours (record file, memory) */
	bool fatal_status; /* a non-OK status other than back pressure */

	uint8_t *payload; /* one batch: to send, or to check a response */
	ProtobufCBinaryData *txns;

	uint64_t submitted, ok, ok_bytes, duplicates, error_total, bad_responses, unanswered;
	uint64_t errors[QSB_STATUS_SLOTS + 1];
	uint64_t tick_n, tick_us, tick_ok, tick_bytes;
	struct qsb_lat lat; /* OK responses only */

	FILE *rec;
	char *rec_buf;

	struct qsb_cons *cons; /* consensus only */
};

static volatile sig_atomic_t qsb_signal_count;
static volatile sig_atomic_t qsb_signal_last;

static void
qsb_submit_on_signal(int sig)
{
	qsb_signal_last = sig;
	qsb_signal_count = qsb_signal_count + 1;
}

/* Name of a Status without its prefix, lower case ("resource_exhausted"). */
static void
qsb_status_name(unsigned status, char *buf, size_t len)
{
	const char *name;
	size_t i;

	if (status >= QSB_STATUS_SLOTS) {
		snprintf(buf, len, "other");
		return;
	}
	name = qs_client_status_name((Quorumstore__V1__Status)status);
	if (strcmp(name, "UNKNOWN") == 0) {
		snprintf(buf, len, "status_%u", status);
		return;
	}
	for (i = 0; name[i] && i + 1 < len; i++)
		buf[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	buf[i] = '\0';
}

/* Regenerate batch `payload_id` into s->payload and s->txns. */
static void
qsb_submit_payload(struct qsb_submit *s, uint64_t payload_id)
{
	uint8_t *data = s->payload;
	uint32_t j;

	for (j = 0; j < s->o.l.txns; j++) {
		size_t len = qsb_txn_len(s->o.l.batch_bytes, s->o.l.txns, j);

		qsb_txn_fill(s->o.l.seed, (uint32_t)s->o.l.node, payload_id, j, data, len);
		s->txns[j].data = data;
		s->txns[j].len = len;
		data += len;
	}
}

/*
 * The idempotency key of batch `payload_id`: unique per (node, seed,
 * payload_id), so that a repeated run (same -S and -B) gets its batches back
 * as duplicates. Returns its length, at most QS_CLIENT_IDEMPOTENCY_KEY_MAX.
 */
static size_t
qsb_submit_key(const struct qsb_submit *s, uint64_t payload_id,
               char buf[QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1])
{
	int n = snprintf(buf, QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1, "qsbench/%d/%" PRIu64 "/%" PRIu64,
	                 s->o.l.node, s->o.l.seed, payload_id);

	if (n < 0 || n > QS_CLIENT_IDEMPOTENCY_KEY_MAX)
		abort(); /* at most 8 + 2 + 1 + 20 + 1 + 20 bytes */
	return (size_t)n;
}

/* The slot of request `id`, or NULL. */
static struct qsb_sslot *
qsb_submit_find(struct qsb_submit *s, uint64_t id)
{
	uint32_t i;

	for (i = 0; i <= s->slot_mask; i++) {
		struct qsb_sslot *slot = &s->slots[(id + i) & s->slot_mask];

		if (slot->used && slot->request_id == id)
			return slot;
	}
	return NULL;
}

/* A free slot near request `id`'s; there is one, as slots > 2 x in flight. */
static struct qsb_sslot *
qsb_submit_slot_new(struct qsb_submit *s, uint64_t id)
{
	uint32_t i;

	for (i = 0; i <= s->slot_mask; i++) {
		struct qsb_sslot *slot = &s->slots[(id + i) & s->slot_mask];

		if (!slot->used)
			return slot;
	}
	fprintf(stderr, "%s: no free slot with %" PRIu32 " requests in flight\n", qsb_cmd,
	        s->inflight);
	abort();
}

/* Build the request of the next batch into *req (pointing into sb and key). */
static void
qsb_submit_build(struct qsb_submit *s, uint64_t payload_id, Quorumstore__V1__Request *req,
                 Quorumstore__V1__SubmitBatchRequest *sb,
                 char key[QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1])
{
	qsb_submit_payload(s, payload_id);
	quorumstore__v1__request__init(req);
	quorumstore__v1__submit_batch_request__init(sb);
	sb->n_transactions = s->o.l.txns;
	sb->transactions = s->txns;
	sb->idempotency_key.len = qsb_submit_key(s, payload_id, key);
	sb->idempotency_key.data = (uint8_t *)key;
	sb->gas_bucket_start = 0;
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH;
	req->submit_batch = sb;
}

/* Send the next batch. Returns 0 or an error (printed). */
static int
qsb_submit_send(struct qsb_submit *s)
{
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	char key[QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1];
	uint64_t payload_id = s->o.l.base + s->next;
	struct qsb_sslot *slot;
	uint64_t id, sent_us;
	int rc;

	qsb_submit_build(s, payload_id, &req, &sb, key);
	sent_us = qs_clock_mono_us();
	rc = qs_client_send(s->client, &req, &id);
	if (rc) {
		fprintf(stderr,
		        "%s: cannot send SubmitBatch: %s (%" PRIu32 " requests in flight)\n",
		        qsb_cmd, qs_strerror(rc), s->inflight);
		return rc;
	}
	slot = qsb_submit_slot_new(s, id);
	slot->request_id = id;
	slot->kind = QSB_REQ_SUBMIT;
	slot->payload_id = payload_id;
	slot->sent_us = sent_us;
	slot->used = true;
	s->next++;
	s->inflight++;
	s->submitted++;
	return 0;
}

static void
qsb_submit_stop(struct qsb_submit *s)
{
	if (s->phase == QSB_DONE)
		return;
	s->phase = QSB_DONE;
	s->end_us = qs_clock_mono_us();
}

/* Stop sending; wait at most -g seconds for what is in flight. */
static void
qsb_submit_drain(struct qsb_submit *s, uint64_t now)
{
	if (s->phase != QSB_RUNNING)
		return;
	s->phase = QSB_DRAINING;
	s->drain_end_us = now + s->o.l.drain_s * 1000000;
}

static bool
qsb_submit_all_sent(const struct qsb_submit *s)
{
	return s->o.l.count && s->next >= s->o.l.count;
}

/* Send as much as the in-flight bound, the tokens, back pressure and -c allow. */
static void
qsb_submit_fill(struct qsb_submit *s, uint64_t now)
{
	while (s->phase == QSB_RUNNING && s->inflight < s->o.l.inflight &&
	       !qsb_submit_all_sent(s) && now >= s->backoff_until_us &&
	       (!s->o.l.rate || s->tokens >= 1)) {
		if (qsb_submit_send(s)) {
			s->lost = true;
			qsb_submit_stop(s);
			return;
		}
		if (s->o.l.rate)
			s->tokens -= 1;
	}
}

/* What is wrong with an OK response to batch `payload_id`, or NULL. */
static const char *
qsb_submit_check(struct qsb_submit *s, const Quorumstore__V1__Response *resp, uint64_t payload_id,
                 char *buf, size_t len)
{
	const Quorumstore__V1__BatchInfo *info;
	uint8_t digest[QS_DIGEST_BYTES];
	int rc;

	if (resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH ||
	    !resp->submit_batch || !resp->submit_batch->info)
		return "OK without a SubmitBatchResponse.info";
	info = resp->submit_batch->info;
	if (info->author.len != QS_PUBKEY_BYTES ||
	    memcmp(info->author.data, s->author, QS_PUBKEY_BYTES) != 0)
		return "info.author is not the node's signing key";
	if (info->epoch != s->epoch)
		return "info.epoch is not the server's";
	if (info->num_txns != s->o.l.txns)
		return "info.num_txns";
	if (info->num_bytes != s->o.l.batch_bytes)
		return "info.num_bytes";
	if (info->gas_bucket_start != 0)
		return "info.gas_bucket_start";
	if (info->expiration_us <= qs_clock_wall_us())
		return "info.expiration_us is not in the future";
	if (info->digest.len != QS_DIGEST_BYTES)
		return "info.digest is not 32 bytes";
	qsb_submit_payload(s, payload_id);
	rc = qs_codec_batch_digest(s->cfg->chain_id, s->author, info->epoch, info->batch_id,
	                           s->txns, s->o.l.txns, digest);
	if (rc) {
		snprintf(buf, len, "cannot compute the digest: %s", qs_strerror(rc));
		return buf;
	}
	if (memcmp(digest, info->digest.data, QS_DIGEST_BYTES) != 0)
		return "info.digest is not the digest of the transactions sent";
	return NULL;
}

static int
qsb_submit_record(struct qsb_submit *s, const Quorumstore__V1__BatchInfo *info, uint64_t payload_id)
{
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(info->digest.data, QS_DIGEST_BYTES, hex);
	if (fprintf(s->rec,
	            "%s %d %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu32
	            " %" PRIu64 " %" PRIu64 "\n",
	            hex, s->o.l.node, info->batch_id, info->expiration_us, info->num_txns,
	            info->num_bytes, s->o.l.seed, s->o.l.txns, s->o.l.batch_bytes,
	            payload_id) < 0) {
		fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, s->o.l.record, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* A response to a SubmitBatch (slot: its request). */
static void
qsb_submit_response(struct qsb_submit *s, struct qsb_sslot *slot,
                    const Quorumstore__V1__Response *resp)
{
	const Quorumstore__V1__BatchInfo *info;
	uint64_t payload_id, sent_us;
	const char *why;
	char buf[128];
	unsigned status;

	payload_id = slot->payload_id;
	sent_us = slot->sent_us;
	slot->used = false;
	s->inflight--;
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK) {
		status = (unsigned)resp->status;
		if (status > QSB_STATUS_SLOTS)
			status = QSB_STATUS_SLOTS;
		s->error_total++;
		if (resp->status == QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED ||
		    resp->status == QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE)
			s->backoff_until_us = qs_clock_mono_us() + QSB_SUBMIT_BACKOFF_US;
		else
			s->fatal_status = true;
		if (s->errors[status]++ == 0) {
			qsb_status_name(status, buf, sizeof(buf));
			fprintf(stderr, "%s: first %s for SubmitBatch %" PRIu64 "%s%s\n", qsb_cmd,
			        buf, resp->request_id,
			        resp->message && resp->message[0] ? ": " : "",
			        resp->message ? resp->message : "");
		}
		return;
	}
	why = qsb_submit_check(s, resp, payload_id, buf, sizeof(buf));
	if (why) {
		if (s->bad_responses++ < QSB_MAX_REPORTS)
			fprintf(stderr,
			        "%s: BAD RESPONSE to SubmitBatch %" PRIu64 " (payload %" PRIu64
			        "): %s\n",
			        qsb_cmd, resp->request_id, payload_id, why);
		return;
	}
	info = resp->submit_batch->info;
	if (resp->submit_batch->duplicate)
		s->duplicates++;
	if (s->rec && qsb_submit_record(s, info, payload_id)) {
		s->failed = true;
		qsb_submit_stop(s);
		return;
	}
	s->ok++;
	s->ok_bytes += info->num_bytes;
	qsb_lat_add(&s->lat, qs_clock_mono_us() - sent_us);
}

/* ---------------------------------------------------------------------------
 * consensus: the rest of a validator's consensus process on the same socket.
 */

static struct qsb_block *
qsb_cons_block(struct qsb_cons *c, uint64_t seq)
{
	return &c->ring[seq % QSB_CONS_RING];
}

/* Take a slot for a consensus request just sent as `id`. */
static void
qsb_cons_slot(struct qsb_submit *s, uint64_t id, enum qsb_req_kind kind, uint64_t block,
              uint32_t item, uint64_t sent_us)
{
	struct qsb_sslot *slot = qsb_submit_slot_new(s, id);

	slot->request_id = id;
	slot->kind = kind;
	slot->block = block;
	slot->item = item;
	slot->sent_us = sent_us;
	slot->used = true;
	s->cons->inflight++;
}

/* Grow *arr to hold n digests. Returns 0 or -ENOMEM. */
static int
qsb_cons_reserve(ProtobufCBinaryData **arr, size_t *cap, size_t n)
{
	ProtobufCBinaryData *a;
	size_t want = *cap ? *cap : 256;

	if (n <= *cap)
		return 0;
	while (want < n)
		want *= 2;
	a = realloc(*arr, want * sizeof(*a));
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = want;
	return 0;
}

/* Append the digests of block b's proofs and inline batches to *arr at *n. */
static int
qsb_cons_digests(const struct qsb_block *b, ProtobufCBinaryData **arr, size_t *cap, size_t *n)
{
	const Quorumstore__V1__GetPayloadResponse *gp = b->payload->get_payload;
	size_t i;

	if (qsb_cons_reserve(arr, cap, *n + gp->n_proofs + gp->n_inline_batches))
		return -ENOMEM;
	for (i = 0; i < gp->n_proofs; i++)
		(*arr)[(*n)++] = gp->proofs[i]->info->digest;
	for (i = 0; i < gp->n_inline_batches; i++)
		(*arr)[(*n)++] = gp->inline_batches[i]->info->digest;
	return 0;
}

/* GetPayload for block c->tail, excluding every pending block's batches. */
static int
qsb_cons_propose(struct qsb_submit *s)
{
	struct qsb_cons *c = s->cons;
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__GetPayloadRequest gp = QUORUMSTORE__V1__GET_PAYLOAD_REQUEST__INIT;
	size_t n = 0;
	uint64_t seq, id, sent_us;
	int rc;

	for (seq = c->head; seq < c->tail; seq++) {
		const struct qsb_block *b = qsb_cons_block(c, seq);

		if (b->payload && qsb_cons_digests(b, &c->exclude, &c->exclude_cap, &n))
			return -ENOMEM;
	}
	gp.max_txns = s->o.c.lim.max_txns;
	gp.max_bytes = s->o.c.lim.max_bytes;
	gp.max_inline_txns = s->o.c.lim.max_inline_txns;
	gp.max_inline_bytes = s->o.c.lim.max_inline_bytes;
	gp.return_non_full = s->o.c.lim.return_non_full;
	gp.n_exclude = n;
	gp.exclude = c->exclude;
	req.body_case = QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD;
	req.get_payload = &gp;
	sent_us = qs_clock_mono_us();
	rc = qs_client_send(s->client, &req, &id);
	if (rc) {
		fprintf(stderr, "%s: cannot send GetPayload: %s\n", qsb_cmd, qs_strerror(rc));
		return rc;
	}
	qsb_cons_slot(s, id, QSB_REQ_PAYLOAD, c->tail, 0, sent_us);
	qsb_cons_block(c, c->tail)->state = QSB_BLOCK_PROPOSING;
	c->tail++;
	c->proposing = true;
	return 0;
}

/* GetBatch of the next proof of block seq. */
static int
qsb_cons_fetch(struct qsb_submit *s, uint64_t seq)
{
	struct qsb_cons *c = s->cons;
	struct qsb_block *b = qsb_cons_block(c, seq);
	const Quorumstore__V1__ProofOfStore *p = b->payload->get_payload->proofs[b->next_fetch];
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__GetBatchRequest gb = QUORUMSTORE__V1__GET_BATCH_REQUEST__INIT;
	uint64_t id, sent_us;
	int rc;

	gb.digest = p->info->digest;
	req.body_case = QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH;
	req.get_batch = &gb;
	sent_us = qs_clock_mono_us();
	rc = qs_client_send(s->client, &req, &id);
	if (rc) {
		fprintf(stderr, "%s: cannot send GetBatch: %s\n", qsb_cmd, qs_strerror(rc));
		return rc;
	}
	qsb_cons_slot(s, id, QSB_REQ_BATCH, seq, (uint32_t)b->next_fetch, sent_us);
	b->next_fetch++;
	c->fetching++;
	return 0;
}

/* NotifyCommit of block seq, stamped now. */
static int
qsb_cons_commit(struct qsb_submit *s, uint64_t seq)
{
	struct qsb_cons *c = s->cons;
	struct qsb_block *b = qsb_cons_block(c, seq);
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__NotifyCommitRequest nc = QUORUMSTORE__V1__NOTIFY_COMMIT_REQUEST__INIT;
	size_t n = 0;
	uint64_t id;
	int rc;

	if (qsb_cons_digests(b, &c->digests, &c->digests_cap, &n))
		return -ENOMEM;
	nc.block_timestamp_us = qs_clock_wall_us();
	nc.n_digests = n;
	nc.digests = c->digests;
	req.body_case = QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT;
	req.notify_commit = &nc;
	rc = qs_client_send(s->client, &req, &id);
	if (rc) {
		fprintf(stderr, "%s: cannot send NotifyCommit: %s\n", qsb_cmd, qs_strerror(rc));
		return rc;
	}
	qsb_cons_slot(s, id, QSB_REQ_COMMIT, seq, 0, qs_clock_mono_us());
	b->state = QSB_BLOCK_COMMITTING;
	c->commit_next++;
	return 0;
}

/* Blocks proposed after block seq (their payload arrived). */
static uint64_t
qsb_cons_after(const struct qsb_cons *c, uint64_t seq)
{
	uint64_t n = c->tail - seq - 1;

	return c->proposing ? n - 1 : n;
}

/*
 * Send what is due: the GetBatch requests of the blocks being executed
 * (oldest first, at most QSB_CONS_FETCHES in flight), the commits of the
 * executed blocks with enough blocks after them (all of them once submitting
 * stopped), and every interval the next GetPayload. Returns 0 or an error.
 */
static int
qsb_cons_step(struct qsb_submit *s, uint64_t now)
{
	struct qsb_cons *c = s->cons;
	uint64_t seq;
	int rc;

	for (seq = c->head; seq < c->tail && c->fetching < QSB_CONS_FETCHES; seq++) {
		struct qsb_block *b = qsb_cons_block(c, seq);

		while (b->state == QSB_BLOCK_EXECUTING && c->fetching < QSB_CONS_FETCHES &&
		       b->next_fetch < b->payload->get_payload->n_proofs) {
			rc = qsb_cons_fetch(s, seq);
			if (rc)
				return rc;
		}
	}
	while (c->commit_next < c->tail) {
		struct qsb_block *b = qsb_cons_block(c, c->commit_next);

		if (b->state != QSB_BLOCK_EXECUTED ||
		    (s->phase == QSB_RUNNING &&
		     qsb_cons_after(c, c->commit_next) < s->o.c.pipeline))
			break;
		rc = qsb_cons_commit(s, c->commit_next);
		if (rc)
			return rc;
	}
	if (s->phase != QSB_RUNNING || now < c->next_us)
		return 0;
	c->next_us += s->o.c.interval_ms * 1000;
	if (c->next_us <= now)
		c->next_us = now + s->o.c.interval_ms * 1000; /* late: do not catch up */
	if (c->proposing || c->tail - c->head >= s->o.c.pipeline + QSB_CONS_SLACK) {
		c->stalls++;
		return 0;
	}
	return qsb_cons_propose(s);
}

/* Nothing in flight and every block committed. */
static bool
qsb_cons_idle(const struct qsb_submit *s)
{
	return !s->cons || (s->cons->inflight == 0 && s->cons->head == s->cons->tail);
}

/* Print the first few problems of the consensus side. */
static void qsb_cons_report(struct qsb_submit *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
qsb_cons_report(struct qsb_submit *s, const char *fmt, ...)
{
	va_list ap;

	if (s->cons->errors + s->cons->misses + s->cons->mismatches > QSB_MAX_REPORTS)
		return;
	fprintf(stderr, "%s: ", qsb_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A non-OK status of a consensus request: counted, reported. */
static void
qsb_cons_status(struct qsb_submit *s, const char *what, const Quorumstore__V1__Response *resp)
{
	s->cons->errors++;
	qsb_cons_report(s, "%s: %s%s%s", what, qs_client_status_name(resp->status),
	                resp->message && resp->message[0] ? ": " : "",
	                resp->message ? resp->message : "");
}

/* The digest of `txns` under `info` is info's digest. */
static int
qsb_cons_digest_ok(struct qsb_submit *s, const Quorumstore__V1__BatchInfo *info,
                   const ProtobufCBinaryData *txns, size_t n)
{
	uint8_t digest[QS_DIGEST_BYTES];

	if (qs_codec_batch_digest(s->cfg->chain_id, info->author.data, info->epoch, info->batch_id,
	                          txns, n, digest))
		return 0;
	return memcmp(digest, info->digest.data, QS_DIGEST_BYTES) == 0;
}

static bool
qsb_cons_info_ok(const Quorumstore__V1__BatchInfo *info)
{
	return info && info->author.len == QS_PUBKEY_BYTES && info->digest.len == QS_DIGEST_BYTES;
}

/* Every proof and inline batch has an info with a 32-byte author and digest. */
static bool
qsb_cons_payload_ok(const Quorumstore__V1__GetPayloadResponse *gp)
{
	size_t i;

	for (i = 0; i < gp->n_proofs; i++) {
		if (!qsb_cons_info_ok(gp->proofs[i]->info))
			return false;
	}
	for (i = 0; i < gp->n_inline_batches; i++) {
		if (!qsb_cons_info_ok(gp->inline_batches[i]->info))
			return false;
	}
	return true;
}

/* A GetPayload answer for block seq; returns true when the block kept resp. */
static bool
qsb_cons_payload(struct qsb_submit *s, uint64_t seq, Quorumstore__V1__Response *resp)
{
	struct qsb_cons *c = s->cons;
	struct qsb_block *b = qsb_cons_block(c, seq);
	const Quorumstore__V1__GetPayloadResponse *gp = resp->get_payload;
	char hex[2 * QS_DIGEST_BYTES + 1];
	size_t i;

	c->proposing = false;
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK ||
	    resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_GET_PAYLOAD || !gp) {
		if (resp->status == QUORUMSTORE__V1__STATUS__STATUS_OK) {
			c->errors++;
			qsb_cons_report(s, "GetPayload: OK without a GetPayloadResponse");
		} else {
			qsb_cons_status(s, "GetPayload", resp);
		}
		b->state = QSB_BLOCK_FREE;
		c->tail--; /* the newest block: nothing after it yet */
		return false;
	}
	if (!qsb_cons_payload_ok(gp)) {
		c->errors++;
		qsb_cons_report(s, "GetPayload: a proof or batch without a valid info");
		b->state = QSB_BLOCK_FREE;
		c->tail--;
		return false;
	}
	c->payloads++;
	c->proofs += gp->n_proofs;
	c->inline_batches += gp->n_inline_batches;
	for (i = 0; i < gp->n_inline_batches; i++) {
		const Quorumstore__V1__Batch *ib = gp->inline_batches[i];

		if (!qsb_cons_digest_ok(s, ib->info, ib->transactions, ib->n_transactions)) {
			c->mismatches++;
			qs_hex_encode(ib->info->digest.data, QS_DIGEST_BYTES, hex);
			qsb_cons_report(s, "DIGEST MISMATCH: inline batch %s", hex);
		}
	}
	b->payload = resp;
	b->next_fetch = 0;
	b->fetched = 0;
	b->state = gp->n_proofs ? QSB_BLOCK_EXECUTING : QSB_BLOCK_EXECUTED;
	return true;
}

/* A GetBatch answer for proof `item` of block seq. */
static void
qsb_cons_batch(struct qsb_submit *s, uint64_t seq, uint32_t item,
               const Quorumstore__V1__Response *resp)
{
	struct qsb_cons *c = s->cons;
	struct qsb_block *b = qsb_cons_block(c, seq);
	const Quorumstore__V1__BatchInfo *info = b->payload->get_payload->proofs[item]->info;
	const Quorumstore__V1__GetBatchResponse *gb = resp->get_batch;
	char hex[2 * QS_DIGEST_BYTES + 1];

	c->fetching--;
	if (++b->fetched == b->payload->get_payload->n_proofs)
		b->state = QSB_BLOCK_EXECUTED;
	qs_hex_encode(info->digest.data, QS_DIGEST_BYTES, hex);
	if (resp->status == QUORUMSTORE__V1__STATUS__STATUS_NOT_FOUND ||
	    resp->status == QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED) {
		c->misses++;
		qsb_cons_report(s, "MISS: GetBatch %s: %s%s%s", hex,
		                qs_client_status_name(resp->status),
		                resp->message && resp->message[0] ? ": " : "",
		                resp->message ? resp->message : "");
		return;
	}
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK) {
		qsb_cons_status(s, "GetBatch", resp);
		return;
	}
	if (resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_GET_BATCH || !gb || !gb->batch) {
		c->errors++;
		qsb_cons_report(s, "GetBatch %s: OK without a batch", hex);
		return;
	}
	c->batches++;
	c->sources[(unsigned)gb->source < QSB_SOURCE_SLOTS ? (unsigned)gb->source : 0]++;
	if (!qsb_cons_digest_ok(s, info, gb->batch->transactions, gb->batch->n_transactions)) {
		c->mismatches++;
		qsb_cons_report(s, "DIGEST MISMATCH: GetBatch %s (source %d)", hex,
		                (int)gb->source);
	}
}

/* A NotifyCommit answer for block seq: the block leaves the pipeline. */
static void
qsb_cons_committed(struct qsb_submit *s, uint64_t seq, const Quorumstore__V1__Response *resp)
{
	struct qsb_cons *c = s->cons;
	struct qsb_block *b = qsb_cons_block(c, seq);

	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK)
		qsb_cons_status(s, "NotifyCommit", resp);
	else if (resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_NOTIFY_COMMIT ||
	         !resp->notify_commit)
		qsb_cons_report(s, "NotifyCommit: OK without a NotifyCommitResponse");
	else {
		c->commits++;
		c->proofs_removed += resp->notify_commit->proofs_removed;
	}
	qs_client_response_free(b->payload);
	b->payload = NULL;
	b->state = QSB_BLOCK_FREE;
	while (c->head < c->commit_next && qsb_cons_block(c, c->head)->state == QSB_BLOCK_FREE)
		c->head++;
}

/* A response to a consensus request; returns true when it was kept. */
static bool
qsb_cons_response(struct qsb_submit *s, struct qsb_sslot *slot, Quorumstore__V1__Response *resp)
{
	uint64_t lat = qs_clock_mono_us() - slot->sent_us;
	bool kept = false;

	slot->used = false;
	s->cons->inflight--;
	switch (slot->kind) {
	case QSB_REQ_PAYLOAD:
		qsb_lat_add(&s->cons->lat_payload, lat);
		kept = qsb_cons_payload(s, slot->block, resp);
		break;
	case QSB_REQ_BATCH:
		qsb_lat_add(&s->cons->lat_batch, lat);
		qsb_cons_batch(s, slot->block, slot->item, resp);
		break;
	case QSB_REQ_COMMIT:
		qsb_cons_committed(s, slot->block, resp);
		break;
	case QSB_REQ_SUBMIT:
		abort();
	}
	return kept;
}

/* The consensus part of a per-second line, into buf. */
static void
qsb_cons_tick(struct qsb_submit *s, double dt, char *buf, size_t len)
{
	struct qsb_cons *c = s->cons;
	uint64_t payloads = c->payloads - c->tick_payloads;
	unsigned i;

	snprintf(buf, len,
	         " payloads/s=%.0f proofs/s=%.0f proofs/payload=%.1f inline/payload=%.1f"
	         " memory/s=%.0f disk/s=%.0f peer/s=%.0f misses=%" PRIu64 " errors=%" PRIu64
	         " commits/s=%.0f removed/s=%.0f",
	         (double)payloads / dt, (double)(c->proofs - c->tick_proofs) / dt,
	         payloads ? (double)(c->proofs - c->tick_proofs) / (double)payloads : 0.0,
	         payloads ? (double)(c->inline_batches - c->tick_inline) / (double)payloads : 0.0,
	         (double)(c->sources[1] - c->tick_sources[1]) / dt,
	         (double)(c->sources[2] - c->tick_sources[2]) / dt,
	         (double)(c->sources[3] - c->tick_sources[3]) / dt, c->misses,
	         c->errors + c->mismatches, (double)(c->commits - c->tick_commits) / dt,
	         (double)(c->proofs_removed - c->tick_removed) / dt);
	c->tick_payloads = c->payloads;
	c->tick_proofs = c->proofs;
	c->tick_inline = c->inline_batches;
	c->tick_commits = c->commits;
	c->tick_removed = c->proofs_removed;
	for (i = 0; i < QSB_SOURCE_SLOTS; i++)
		c->tick_sources[i] = c->sources[i];
}

static void
qsb_cons_free(struct qsb_cons *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < QSB_CONS_RING; i++)
		qs_client_response_free(c->ring[i].payload);
	free(c->exclude);
	free(c->digests);
	free(c->lat_payload.all);
	free(c->lat_batch.all);
	free(c);
}

static void
qsb_submit_tick(struct qsb_submit *s, uint64_t now)
{
	double dt = (double)(now - s->tick_us) / 1e6;
	double p50_ms, p99_ms;
	char cons[384] = "";

	s->tick_n++;
	if (dt <= 0)
		dt = 1e-6;
	qsb_lat_tick(&s->lat, &p50_ms, &p99_ms);
	if (s->cons)
		qsb_cons_tick(s, dt, cons, sizeof(cons));
	if (!s->o.l.quiet)
		fprintf(stderr,
		        "t=%" PRIu64 "s submitted=%" PRIu64 " ok=%" PRIu64 " ok/s=%.0f MB/s=%.1f"
		        " errors=%" PRIu64 " inflight=%" PRIu32 " p50_ms=%.1f p99_ms=%.1f%s\n",
		        s->tick_n, s->submitted, s->ok, (double)(s->ok - s->tick_ok) / dt,
		        (double)(s->ok_bytes - s->tick_bytes) / dt / 1e6, s->error_total,
		        s->inflight, p50_ms, p99_ms, cons);
	s->tick_us = now;
	s->tick_ok = s->ok;
	s->tick_bytes = s->ok_bytes;
	s->next_tick_us += 1000000;
	if (s->next_tick_us <= now)
		s->next_tick_us = now + 1000000; /* a send was blocked: do not catch up */
}

/* When the loop must next look at the clock, whatever arrives. */
static uint64_t
qsb_submit_wake(const struct qsb_submit *s, uint64_t now)
{
	uint64_t wake = QSB_MIN(s->next_tick_us, now + QSB_SUBMIT_POLL_MS * 1000);

	if (s->cons && s->phase == QSB_RUNNING)
		wake = QSB_MIN(wake, s->cons->next_us);
	if (s->phase == QSB_DRAINING)
		return QSB_MIN(wake, s->drain_end_us);
	wake = QSB_MIN(wake, s->send_end_us);
	if (s->inflight >= s->o.l.inflight || qsb_submit_all_sent(s))
		return wake;
	if (now < s->backoff_until_us)
		return QSB_MIN(wake, s->backoff_until_us);
	if (s->o.l.rate && s->tokens < 1)
		wake = QSB_MIN(wake,
		               now + 1 + (uint64_t)((1 - s->tokens) * 1e6 / (double)s->o.l.rate));
	return wake;
}

/* Any response on the socket; returns true when it was kept (not to be freed). */
static bool
qsb_rpc_response(struct qsb_submit *s, Quorumstore__V1__Response *resp)
{
	struct qsb_sslot *slot = qsb_submit_find(s, resp->request_id);

	if (!slot) {
		if (s->bad_responses++ < QSB_MAX_REPORTS)
			fprintf(stderr,
			        "%s: response to request %" PRIu64 " which is not in flight\n",
			        qsb_cmd, resp->request_id);
		return false;
	}
	if (slot->kind != QSB_REQ_SUBMIT)
		return qsb_cons_response(s, slot, resp);
	qsb_submit_response(s, slot, resp);
	return false;
}

static void
qsb_submit_loop(struct qsb_submit *s)
{
	sig_atomic_t seen = qsb_signal_count;
	/* Burst at most 50 ms worth (and at least one request) after a stall. */
	double cap = 1 + (double)s->o.l.rate * 0.05;

	while (s->phase != QSB_DONE) {
		Quorumstore__V1__Response *resp = NULL;
		uint64_t now = qs_clock_mono_us(), wake;
		int rc;

		if (qsb_signal_count != seen) {
			seen = qsb_signal_count;
			fprintf(stderr, "%s: %s: %s\n", qsb_cmd, strsignal((int)qsb_signal_last),
			        s->phase == QSB_RUNNING ? "stopping (again to stop at once)"
			                                : "stopping now");
			if (s->phase != QSB_RUNNING) {
				qsb_submit_stop(s);
				break;
			}
			qsb_submit_drain(s, now);
		}
		if (now >= s->next_tick_us)
			qsb_submit_tick(s, now);
		if (s->phase == QSB_RUNNING && (now >= s->send_end_us || qsb_submit_all_sent(s)))
			qsb_submit_drain(s, now);
		if (s->cons && s->phase != QSB_DONE && qsb_cons_step(s, now)) {
			s->lost = true;
			qsb_submit_stop(s);
			break;
		}
		if (s->phase == QSB_DRAINING &&
		    ((s->inflight == 0 && qsb_cons_idle(s)) || now >= s->drain_end_us)) {
			qsb_submit_stop(s);
			break;
		}
		if (s->phase == QSB_RUNNING) {
			if (s->o.l.rate) {
				s->tokens += (double)s->o.l.rate * (double)(now - s->pace_us) / 1e6;
				if (s->tokens > cap)
					s->tokens = cap;
				s->pace_us = now;
			}
			qsb_submit_fill(s, now);
			if (s->phase == QSB_DONE)
				break;
			if (qsb_submit_all_sent(s))
				continue; /* drain, or stop when nothing is in flight */
			now = qs_clock_mono_us();
		}
		wake = qsb_submit_wake(s, now);
		rc = qs_client_recv(s->client, wake <= now ? 0 : (int)((wake - now + 999) / 1000),
		                    &resp);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc) {
			fprintf(stderr,
			        "%s: connection lost: %s (%" PRIu32 " requests in flight)\n",
			        qsb_cmd, qs_strerror(rc), s->inflight);
			s->lost = true;
			qsb_submit_stop(s);
			break;
		}
		if (!qsb_rpc_response(s, resp))
			qs_client_response_free(resp);
	}
	/* Whatever is still unanswered will not be. */
	s->unanswered += s->inflight;
	s->inflight = 0;
	if (s->cons) {
		s->cons->unanswered += s->cons->inflight;
		s->cons->inflight = 0;
	}
}

/*
 * Connect and do the Hello, trying again every 100 ms for -w seconds while
 * the socket is missing or refuses. Returns 0, QS_ECONFIG when the socket
 * is another node's, or another error (printed).
 */
static int
qsb_submit_connect(struct qsb_submit *s)
{
	const char *path = s->cfg->rpc_socket;
	struct qs_client_opts opts = {.frame_max_bytes = (size_t)s->cfg->limits.frame_max_bytes};
	const Quorumstore__V1__HelloResponse *h;
	uint64_t deadline = qs_clock_mono_us() + s->o.wait_s * 1000000;
	sig_atomic_t seen = qsb_signal_count;
	char err[512];
	bool said = false;
	int rc;

	for (;;) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = QSB_SUBMIT_WAIT_US * 1000};

		err[0] = '\0';
		rc = qs_client_connect_opts(path, "qsbench", &opts, QSB_SUBMIT_IO_MS, &s->client,
		                            err, sizeof(err));
		if (rc == 0)
			break;
		if ((rc != -ENOENT && rc != -ECONNREFUSED) || qs_clock_mono_us() >= deadline ||
		    qsb_signal_count != seen)
			goto fail;
		if (!said && !s->o.l.quiet)
			fprintf(stderr, "%s: waiting up to %" PRIu64 " s for %s (%s)\n", qsb_cmd,
			        s->o.wait_s, path, strerror(-rc));
		said = true;
		nanosleep(&ts, NULL);
	}
	h = qs_client_server(s->client);
	if (!h || h->author.len != QS_PUBKEY_BYTES ||
	    memcmp(h->author.data, s->author, QS_PUBKEY_BYTES) != 0 ||
	    h->chain_id != s->cfg->chain_id) {
		fprintf(stderr,
		        "%s: %s is not served by v%d of %s (its Hello has another author or "
		        "chain_id)\n",
		        qsb_cmd, path, s->o.l.node, s->cfg->path);
		return QS_ECONFIG;
	}
	s->epoch = h->epoch;
	if (h->epoch != s->cfg->epoch)
		fprintf(stderr,
		        "%s: the node is at epoch %" PRIu64 ", the config says %" PRIu64
		        ": verify will not accept its batches\n",
		        qsb_cmd, h->epoch, s->cfg->epoch);
	return 0;
fail:
	fprintf(stderr, "%s: cannot connect: %s\n", qsb_cmd, err[0] ? err : qs_strerror(rc));
	return rc;
}

/* Returns 0, -1 after -h, or the exit status for a usage error. */
static int
qsb_submit_parse(int argc, char **argv, struct qsb_submit_opts *o)
{
	const char *u = o->c.on ? qsb_consensus_usage : qsb_submit_usage;
	const char *optstring =
	    o->c.on ? ":d:n:s:t:i:r:D:c:S:B:g:w:o:I:P:qjh" : ":d:n:s:t:i:r:D:c:S:B:g:w:o:qjh";
	int c, rc;

	o->l.batch_bytes = 16384;
	o->l.txns = 8;
	o->l.inflight = 16;
	o->l.duration_s = 10;
	o->l.seed = 1;
	o->l.drain_s = 5;
	o->c.interval_ms = 250;
	o->c.pipeline = 2;
	qsb_limits_default(&o->c.lim);
	optind = 1;
	while ((c = getopt_long(argc, argv, optstring, o->c.on ? qsb_limit_options : NULL, NULL)) !=
	       -1) {
		rc = qsb_load_opt(u, c, optarg, &o->l);
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		rc = o->c.on ? qsb_limit_opt(u, c, optarg, &o->c.lim) : 1;
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		switch (c) {
		case 'w':
			if (qsb_opt_u64(u, c, optarg, 0, QSB_SUBMIT_MAX_WAIT_S, &o->wait_s))
				return QSB_EXIT_USAGE;
			break;
		case 'I':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_CONS_MAX_INTERVAL_MS,
			                &o->c.interval_ms))
				return QSB_EXIT_USAGE;
			break;
		case 'P':
			if (qsb_opt_u64(u, c, optarg, 0, QSB_CONS_MAX_PIPELINE, &o->c.pipeline))
				return QSB_EXIT_USAGE;
			break;
		default:
			if (optopt && optopt != '-')
				qsb_usage_error(u, "unknown option -%c", optopt);
			else
				qsb_usage_error(u, "unknown long option");
			return QSB_EXIT_USAGE;
		}
	}
	rc = qsb_load_check(u, argc, argv, &o->l, 1);
	if (rc)
		return rc;
	if (!o->l.base_set)
		o->l.base = qs_clock_wall_us();
	return 0;
}

/* Load the node's config and check the batches against its limits. Returns 0 or an exit status. */
static int
qsb_submit_check_config(struct qsb_submit *s)
{
	const struct qsb_submit_opts *o = &s->o;
	const struct qs_limits *lim;
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	char key[QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1];
	struct stat st;
	size_t packed;

	if (stat(o->l.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s: not a cluster directory (see tools/mkcluster)\n", qsb_cmd,
		        o->l.dir);
		return QSB_EXIT_USAGE;
	}
	if (qsb_load_config(o->l.dir, o->l.node, &s->cfg))
		return QSB_EXIT_USAGE;
	if ((size_t)o->l.node >= s->cfg->n_validators) {
		qsb_usage_error(qsb_submit_usage,
		                "-n: node %d is not in the validator set of %s (%zu validators)",
		                o->l.node, s->cfg->path, s->cfg->n_validators);
		return QSB_EXIT_USAGE;
	}
	if (!s->cfg->rpc_socket || !s->cfg->rpc_socket[0]) {
		fprintf(stderr, "%s: %s: no rpc.socket\n", qsb_cmd, s->cfg->path);
		return QSB_EXIT_USAGE;
	}
	s->author = s->cfg->validators[o->l.node].signing_key;
	lim = &s->cfg->limits;
	if (o->l.batch_bytes > lim->batch_max_bytes || o->l.txns > lim->batch_max_txns) {
		qsb_usage_error(
		    qsb_submit_usage,
		    "-s %" PRIu64 " -t %" PRIu32 ": over the node's limits.batch_max_bytes "
		    "%" PRIu64 " or limits.batch_max_txns %" PRIu32,
		    o->l.batch_bytes, o->l.txns, lim->batch_max_bytes, lim->batch_max_txns);
		return QSB_EXIT_USAGE;
	}
	/* The largest request (all ids at their widest) must fit in one frame. */
	qsb_submit_build(s, UINT64_MAX / 2, &req, &sb, key);
	sb.idempotency_key.len = QS_CLIENT_IDEMPOTENCY_KEY_MAX;
	req.request_id = UINT64_MAX;
	packed = quorumstore__v1__request__get_packed_size(&req);
	if (packed > lim->frame_max_bytes) {
		qsb_usage_error(
		    qsb_submit_usage,
		    "-s %" PRIu64 " -t %" PRIu32 ": a SubmitBatch request of %zu bytes "
		    "does not fit in a frame of the node's limits.frame_max_bytes %" PRIu64,
		    o->l.batch_bytes, o->l.txns, packed, lim->frame_max_bytes);
		return QSB_EXIT_USAGE;
	}
	return 0;
}

/* The consensus summary: a line, or with -j the "consensus" member. */
static void
qsb_cons_summary(struct qsb_submit *s, double secs)
{
	struct qsb_cons *c = s->cons;
	double per = c->payloads ? (double)c->payloads : 1;
	uint32_t gp50, gp99, gb50, gb99;

	qsb_lat_sort(&c->lat_payload);
	qsb_lat_sort(&c->lat_batch);
	gp50 = qsb_pct(c->lat_payload.all, c->lat_payload.n_all, 0.50);
	gp99 = qsb_pct(c->lat_payload.all, c->lat_payload.n_all, 0.99);
	gb50 = qsb_pct(c->lat_batch.all, c->lat_batch.n_all, 0.50);
	gb99 = qsb_pct(c->lat_batch.all, c->lat_batch.n_all, 0.99);
	if (s->o.l.json) {
		printf(",\"consensus\":{\"interval_ms\":%" PRIu64 ",\"pipeline\":%" PRIu64
		       ",\"payloads\":%" PRIu64 ",\"payloads_per_s\":%.1f,\"proofs\":%" PRIu64
		       ",\"inline_batches\":%" PRIu64
		       ",\"proofs_per_payload\":%.2f,\"inline_per_payload\":%.2f"
		       ",\"get_batch\":{\"memory\":%" PRIu64 ",\"disk\":%" PRIu64
		       ",\"peer\":%" PRIu64 ",\"unspecified\":%" PRIu64 "},\"misses\":%" PRIu64
		       ",\"digest_mismatches\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"commits\":%" PRIu64 ",\"proofs_removed\":%" PRIu64 ",\"stalls\":%" PRIu64
		       ",\"unanswered\":%" PRIu64 ",\"get_payload_latency_us\":{\"p50\":%" PRIu32
		       ",\"p99\":%" PRIu32 ",\"samples\":%" PRIu64
		       "},\"get_batch_latency_us\":{\"p50\":%" PRIu32 ",\"p99\":%" PRIu32
		       ",\"samples\":%" PRIu64 "}}",
		       s->o.c.interval_ms, s->o.c.pipeline, c->payloads,
		       secs > 0 ? (double)c->payloads / secs : 0, c->proofs, c->inline_batches,
		       (double)c->proofs / per, (double)c->inline_batches / per, c->sources[1],
		       c->sources[2], c->sources[3], c->sources[0], c->misses, c->mismatches,
		       c->errors, c->commits, c->proofs_removed, c->stalls, c->unanswered, gp50,
		       gp99, c->lat_payload.seen, gb50, gb99, c->lat_batch.seen);
		return;
	}
	printf("payloads=%" PRIu64 " proofs=%" PRIu64 " inline_batches=%" PRIu64
	       " proofs/payload=%.2f inline/payload=%.2f commits=%" PRIu64
	       " proofs_removed=%" PRIu64 " stalls=%" PRIu64 " unanswered=%" PRIu64 "\n",
	       c->payloads, c->proofs, c->inline_batches, (double)c->proofs / per,
	       (double)c->inline_batches / per, c->commits, c->proofs_removed, c->stalls,
	       c->unanswered);
	printf("get_batch memory=%" PRIu64 " disk=%" PRIu64 " peer=%" PRIu64 " misses=%" PRIu64
	       " digest_mismatches=%" PRIu64 " errors=%" PRIu64 "\n",
	       c->sources[1], c->sources[2], c->sources[3], c->misses, c->mismatches, c->errors);
	printf("latency_us get_payload p50=%" PRIu32 " p99=%" PRIu32 " get_batch p50=%" PRIu32
	       " p99=%" PRIu32 "\n",
	       gp50, gp99, gb50, gb99);
}

static void
qsb_submit_summary(struct qsb_submit *s, double secs)
{
	double ok_s = secs > 0 ? (double)s->ok / secs : 0;
	double mb_s = secs > 0 ? (double)s->ok_bytes / secs / 1e6 : 0;
	uint32_t p50 = qsb_pct(s->lat.all, s->lat.n_all, 0.50);
	uint32_t p99 = qsb_pct(s->lat.all, s->lat.n_all, 0.99);
	uint32_t p999 = qsb_pct(s->lat.all, s->lat.n_all, 0.999);
	char name[64];
	bool first = true;
	unsigned i;

	if (s->o.l.json) {
		printf("{\"node\":%d,\"batch_bytes\":%" PRIu64 ",\"txns_per_batch\":%" PRIu32
		       ",\"submitted\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"duplicates\":%" PRIu64
		       ",\"errors\":{",
		       s->o.l.node, s->o.l.batch_bytes, s->o.l.txns, s->submitted, s->ok,
		       s->duplicates);
		for (i = 0; i <= QSB_STATUS_SLOTS; i++) {
			if (!s->errors[i])
				continue;
			qsb_status_name(i, name, sizeof(name));
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", name, s->errors[i]);
			first = false;
		}
		printf("},\"bad_responses\":%" PRIu64 ",\"unanswered\":%" PRIu64
		       ",\"disconnected\":%s,\"duration_s\":%.3f,\"ok_per_s\":%.1f"
		       ",\"mb_per_s\":%.2f,\"latency_us\":{\"p50\":%" PRIu32 ",\"p99\":%" PRIu32
		       ",\"p999\":%" PRIu32 ",\"samples\":%" PRIu64 "}",
		       s->bad_responses, s->unanswered, s->lost ? "true" : "false", secs, ok_s,
		       mb_s, p50, p99, p999, s->lat.seen);
		if (s->cons)
			qsb_cons_summary(s, secs);
		printf("}\n");
		return;
	}
	printf("submitted=%" PRIu64 " ok=%" PRIu64 " duplicates=%" PRIu64 " errors=%" PRIu64
	       " bad_responses=%" PRIu64 " unanswered=%" PRIu64 " disconnected=%d\n",
	       s->submitted, s->ok, s->duplicates, s->error_total, s->bad_responses, s->unanswered,
	       s->lost ? 1 : 0);
	printf("errors:");
	for (i = 0; i <= QSB_STATUS_SLOTS; i++) {
		if (!s->errors[i])
			continue;
		qsb_status_name(i, name, sizeof(name));
		printf(" %s=%" PRIu64, name, s->errors[i]);
		first = false;
	}
	printf("%s\n", first ? " none" : "");
	printf("duration_s=%.3f ok/s=%.1f MB/s=%.2f latency_us p50=%" PRIu32 " p99=%" PRIu32
	       " p999=%" PRIu32 "\n",
	       secs, ok_s, mb_s, p50, p99, p999);
	if (s->cons)
		qsb_cons_summary(s, secs);
}

static int
qsb_submit_main(int argc, char **argv, bool consensus)
{
	struct qsb_submit *s;
	struct sigaction sa;
	uint32_t n_slots = 64;
	int status = QSB_EXIT_FAIL;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		return QSB_EXIT_FAIL;
	}
	s->o.c.on = consensus;
	rc = qsb_submit_parse(argc, argv, &s->o);
	if (rc) {
		status = rc < 0 ? 0 : rc;
		goto out;
	}
	if (consensus) {
		s->cons = calloc(1, sizeof(*s->cons));
		if (!s->cons) {
			fprintf(stderr, "%s: out of memory\n", qsb_cmd);
			goto out;
		}
	}
	while (n_slots < 2 * (s->o.l.inflight + (consensus ? QSB_CONS_FETCHES + QSB_CONS_RING : 0)))
		n_slots *= 2;
	s->payload = malloc(s->o.l.batch_bytes);
	s->txns = calloc(s->o.l.txns, sizeof(*s->txns));
	s->slots = calloc(n_slots, sizeof(*s->slots));
	if (!s->payload || !s->txns || !s->slots) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	s->slot_mask = n_slots - 1;
	rc = qsb_submit_check_config(s);
	if (rc) {
		status = rc;
		goto out;
	}
	status = QSB_EXIT_USAGE;
	if (s->o.l.record) {
		s->rec = fopen(s->o.l.record, "we");
		if (!s->rec) {
			fprintf(stderr, "%s: %s: %s\n", qsb_cmd, s->o.l.record, strerror(errno));
			goto out;
		}
		s->rec_buf = malloc(1 << 16);
		if (s->rec_buf)
			setvbuf(s->rec, s->rec_buf, _IOFBF, 1 << 16);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = qsb_submit_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rc = qsb_submit_connect(s);
	if (rc) {
		status = rc == QS_ECONFIG ? QSB_EXIT_USAGE : QSB_EXIT_FAIL;
		goto out;
	}
	if (!s->o.l.quiet)
		fprintf(stderr,
		        "%s: -> v%d %s: %" PRIu64 " bytes x %" PRIu32 " txns per batch, %s %" PRIu64
		        ", seed %" PRIu64 ", base %" PRIu64 "\n",
		        qsb_cmd, s->o.l.node, s->cfg->rpc_socket, s->o.l.batch_bytes, s->o.l.txns,
		        s->o.l.rate ? "rate/s" : "in flight",
		        s->o.l.rate ? s->o.l.rate : (uint64_t)s->o.l.inflight, s->o.l.seed,
		        s->o.l.base);
	s->start_us = qs_clock_mono_us();
	s->tick_us = s->start_us;
	s->next_tick_us = s->start_us + 1000000;
	s->pace_us = s->start_us;
	s->lat.rng = s->o.l.seed;
	if (s->cons) {
		s->cons->next_us = s->start_us + s->o.c.interval_ms * 1000;
		s->cons->lat_payload.rng = s->o.l.seed + 1;
		s->cons->lat_batch.rng = s->o.l.seed + 2;
	}
	s->send_end_us = !s->o.l.count || s->o.l.duration_set
	                     ? s->start_us + s->o.l.duration_s * 1000000
	                     : UINT64_MAX;
	qsb_submit_loop(s);

	if (s->rec && (fflush(s->rec) != 0 || fsync(fileno(s->rec)) < 0)) {
		fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, s->o.l.record, strerror(errno));
		s->failed = true;
	}
	qsb_lat_sort(&s->lat);
	qsb_submit_summary(s, (double)(s->end_us - s->start_us) / 1e6);
	status = 0;
	if (s->lost || s->failed || s->fatal_status || s->bad_responses)
		status = QSB_EXIT_FAIL;
	if (s->cons && (s->cons->errors || s->cons->misses || s->cons->mismatches))
		status = QSB_EXIT_FAIL;
out:
	if (s->rec && fclose(s->rec) != 0 && status == 0) {
		fprintf(stderr, "%s: writing %s: %s\n", qsb_cmd, s->o.l.record, strerror(errno));
		status = QSB_EXIT_FAIL;
	}
	free(s->rec_buf);
	qs_client_close(s->client);
	qs_config_free(s->cfg);
	free(s->payload);
	free(s->txns);
	free(s->slots);
	free(s->lat.all);
	qsb_cons_free(s->cons);
	free(s);
	return status;
}

/* ---------------------------------------------------------------------------
 * payload: GetPayload as fast as one client can, pipelined.
 */

static const char qsb_payload_usage[] =
    "usage: qsbench payload -d DIR [-n NODE] [-D DURATION_S] [-i INFLIGHT] [-w WAIT_S]\n"
    "                       [--max-txns N] [--max-bytes N] [--max-inline-txns N]\n"
    "                       [--max-inline-bytes N] [--full-only] [-S US] [-q] [-j]\n"
    "  -d DIR   cluster written by tools/mkcluster      -n NODE  node to ask (0)\n"
    "  -D S     ask for S seconds (10)                 -i N  requests in flight (1)\n"
    "  -w S     wait up to S seconds for the socket to accept, trying every 100 ms (0)\n"
    "  -S US    the client reads without sleeping for up to US microseconds before\n"
    "           it waits for an answer (qs_client_opts.spin_us; 0)\n"
    "  --max-txns N (2000)  --max-bytes N (8388608)  limits of a payload\n"
    "  --max-inline-txns N (100)  --max-inline-bytes N (262144)  of those, inline\n"
    "  --full-only  return_non_full false (default true)\n"
    "  -q       no per-second lines                    -j  summary as JSON\n";

#define QSB_PAYLOAD_MAX_INFLIGHT 1024

struct qsb_payload {
	struct qs_config *cfg;
	struct qs_client *client;
	const char *dir;
	int node;
	uint64_t duration_s;
	uint32_t inflight_max;
	uint64_t wait_s;
	uint32_t spin_us;
	bool quiet, json;
	struct qs_client_payload_limits lim;

	uint64_t *sent_us; /* by request_id & mask */
	uint64_t *ids;
	uint32_t mask;
	uint32_t inflight;

	uint64_t requests, ok, errors, proofs, inline_batches, empty, max_proofs, unanswered;
	size_t request_bytes, answer_bytes; /* on the wire, of the first request and OK answer */
	bool lost;
	uint64_t tick_n, tick_us, tick_ok, tick_proofs;
	struct qsb_lat lat;
};

static int
qsb_payload_parse(int argc, char **argv, struct qsb_payload *pl)
{
	const char *u = qsb_payload_usage;
	uint64_t v;
	int c, rc;

	pl->duration_s = 10;
	pl->inflight_max = 1;
	qsb_limits_default(&pl->lim);
	optind = 1;
	while ((c = getopt_long(argc, argv, ":d:n:D:i:w:S:qjh", qsb_limit_options, NULL)) != -1) {
		rc = qsb_limit_opt(u, c, optarg, &pl->lim);
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		switch (c) {
		case 'd':
			pl->dir = optarg;
			break;
		case 'n':
			if (qsb_opt_u64(u, c, optarg, 0, QS_MAX_VALIDATORS - 1, &v))
				return QSB_EXIT_USAGE;
			pl->node = (int)v;
			break;
		case 'D':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_MAX_DURATION_S, &pl->duration_s))
				return QSB_EXIT_USAGE;
			break;
		case 'i':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_PAYLOAD_MAX_INFLIGHT, &v))
				return QSB_EXIT_USAGE;
			pl->inflight_max = (uint32_t)v;
			break;
		case 'w':
			if (qsb_opt_u64(u, c, optarg, 0, QSB_SUBMIT_MAX_WAIT_S, &pl->wait_s))
				return QSB_EXIT_USAGE;
			break;
		case 'S':
			if (qsb_opt_u64(u, c, optarg, 0, QS_CLIENT_SPIN_MAX_US, &v))
				return QSB_EXIT_USAGE;
			pl->spin_us = (uint32_t)v;
			break;
		case 'q':
			pl->quiet = true;
			break;
		case 'j':
			pl->json = true;
			break;
		case 'h':
			fputs(u, stdout);
			return -1;
		case ':':
			qsb_usage_error(u, "-%c needs an argument", optopt);
			return QSB_EXIT_USAGE;
		default:
			if (optopt && optopt != '-')
				qsb_usage_error(u, "unknown option -%c", optopt);
			else
				qsb_usage_error(u, "unknown long option");
			return QSB_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		qsb_usage_error(u, "unexpected argument '%s'", argv[optind]);
		return QSB_EXIT_USAGE;
	}
	if (!pl->dir) {
		qsb_usage_error(u, "-d DIR is required");
		return QSB_EXIT_USAGE;
	}
	return 0;
}

/* Connect to the node's socket, trying again for -w seconds. Returns 0 or an exit status. */
static int
qsb_payload_connect(struct qsb_payload *pl)
{
	struct qs_client_opts opts = {.frame_max_bytes = (size_t)pl->cfg->limits.frame_max_bytes,
	                              .spin_us = pl->spin_us};
	uint64_t deadline = qs_clock_mono_us() + pl->wait_s * 1000000;
	const Quorumstore__V1__HelloResponse *h;
	char err[512];
	int rc;

	for (;;) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = QSB_SUBMIT_WAIT_US * 1000};

		err[0] = '\0';
		rc = qs_client_connect_opts(pl->cfg->rpc_socket, "qsbench", &opts, QSB_SUBMIT_IO_MS,
		                            &pl->client, err, sizeof(err));
		if (rc == 0)
			break;
		if ((rc != -ENOENT && rc != -ECONNREFUSED) || qs_clock_mono_us() >= deadline ||
		    qsb_signal_count) {
			fprintf(stderr, "%s: cannot connect: %s\n", qsb_cmd,
			        err[0] ? err : qs_strerror(rc));
			return QSB_EXIT_FAIL;
		}
		nanosleep(&ts, NULL);
	}
	h = qs_client_server(pl->client);
	if (!h || h->author.len != QS_PUBKEY_BYTES ||
	    memcmp(h->author.data, pl->cfg->validators[pl->node].signing_key, QS_PUBKEY_BYTES) !=
	        0) {
		fprintf(stderr, "%s: %s is not served by v%d of %s\n", qsb_cmd, pl->cfg->rpc_socket,
		        pl->node, pl->cfg->path);
		return QSB_EXIT_USAGE;
	}
	return 0;
}

static int
qsb_payload_send(struct qsb_payload *pl)
{
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__GetPayloadRequest gp = QUORUMSTORE__V1__GET_PAYLOAD_REQUEST__INIT;
	uint64_t id, sent_us;
	int rc;

	gp.max_txns = pl->lim.max_txns;
	gp.max_bytes = pl->lim.max_bytes;
	gp.max_inline_txns = pl->lim.max_inline_txns;
	gp.max_inline_bytes = pl->lim.max_inline_bytes;
	gp.return_non_full = pl->lim.return_non_full;
	req.body_case = QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD;
	req.get_payload = &gp;
	sent_us = qs_clock_mono_us();
	rc = qs_client_send(pl->client, &req, &id);
	if (rc) {
		fprintf(stderr, "%s: cannot send GetPayload: %s\n", qsb_cmd, qs_strerror(rc));
		return rc;
	}
	if (!pl->request_bytes) /* with the request_id the client set */
		pl->request_bytes =
		    QS_FRAME_HEADER_BYTES + protobuf_c_message_get_packed_size(&req.base);
	pl->ids[id & pl->mask] = id;
	pl->sent_us[id & pl->mask] = sent_us;
	pl->inflight++;
	pl->requests++;
	return 0;
}

static void
qsb_payload_response(struct qsb_payload *pl, const Quorumstore__V1__Response *resp)
{
	uint64_t i = resp->request_id & pl->mask;
	const Quorumstore__V1__GetPayloadResponse *gp = resp->get_payload;

	if (pl->ids[i] != resp->request_id || !pl->sent_us[i]) {
		pl->errors++;
		fprintf(stderr, "%s: response to request %" PRIu64 " which is not in flight\n",
		        qsb_cmd, resp->request_id);
		return;
	}
	pl->inflight--;
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK ||
	    resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_GET_PAYLOAD || !gp) {
		if (pl->errors++ < QSB_MAX_REPORTS)
			fprintf(stderr, "%s: GetPayload: %s%s%s\n", qsb_cmd,
			        qs_client_status_name(resp->status),
			        resp->message && resp->message[0] ? ": " : "",
			        resp->message ? resp->message : "");
		pl->sent_us[i] = 0;
		return;
	}
	qsb_lat_add(&pl->lat, qs_clock_mono_us() - pl->sent_us[i]);
	pl->sent_us[i] = 0;
	if (!pl->answer_bytes)
		pl->answer_bytes =
		    QS_FRAME_HEADER_BYTES + protobuf_c_message_get_packed_size(&resp->base);
	pl->ok++;
	pl->proofs += gp->n_proofs;
	pl->inline_batches += gp->n_inline_batches;
	if (!gp->n_proofs && !gp->n_inline_batches)
		pl->empty++;
	if (gp->n_proofs > pl->max_proofs)
		pl->max_proofs = gp->n_proofs;
}

static void
qsb_payload_tick(struct qsb_payload *pl, uint64_t now)
{
	double dt = (double)(now - pl->tick_us) / 1e6;
	uint64_t ok = pl->ok - pl->tick_ok;
	double p50_ms, p99_ms;

	pl->tick_n++;
	if (dt <= 0)
		dt = 1e-6;
	qsb_lat_tick(&pl->lat, &p50_ms, &p99_ms);
	if (!pl->quiet)
		fprintf(stderr,
		        "t=%" PRIu64 "s requests=%" PRIu64 " ok/s=%.0f proofs/answer=%.1f"
		        " errors=%" PRIu64 " p50_us=%.0f p99_us=%.0f\n",
		        pl->tick_n, pl->requests, (double)ok / dt,
		        ok ? (double)(pl->proofs - pl->tick_proofs) / (double)ok : 0.0, pl->errors,
		        p50_ms * 1000, p99_ms * 1000);
	pl->tick_us = now;
	pl->tick_ok = pl->ok;
	pl->tick_proofs = pl->proofs;
}

static void
qsb_payload_loop(struct qsb_payload *pl, uint64_t end_us)
{
	uint64_t next_tick = pl->tick_us + 1000000;
	bool sending = true;

	for (;;) {
		Quorumstore__V1__Response *resp = NULL;
		uint64_t now = qs_clock_mono_us();
		int rc;

		if (now >= next_tick) {
			qsb_payload_tick(pl, now);
			next_tick += 1000000;
		}
		if (now >= end_us || qsb_signal_count)
			sending = false;
		while (sending && pl->inflight < pl->inflight_max) {
			if (qsb_payload_send(pl)) {
				pl->lost = true;
				return;
			}
		}
		if (!pl->inflight)
			return;
		rc = qs_client_recv(pl->client, QSB_SUBMIT_IO_MS, &resp);
		if (rc) {
			fprintf(stderr, "%s: connection lost: %s\n", qsb_cmd, qs_strerror(rc));
			pl->lost = true;
			return;
		}
		qsb_payload_response(pl, resp);
		qs_client_response_free(resp);
	}
}

static void
qsb_payload_summary(struct qsb_payload *pl, double secs)
{
	double per = pl->ok ? (double)pl->ok : 1;
	double rps = secs > 0 ? (double)pl->ok / secs : 0;
	uint32_t p50 = qsb_pct(pl->lat.all, pl->lat.n_all, 0.50);
	uint32_t p99 = qsb_pct(pl->lat.all, pl->lat.n_all, 0.99);
	uint32_t p999 = qsb_pct(pl->lat.all, pl->lat.n_all, 0.999);

	if (pl->json) {
		printf("{\"node\":%d,\"inflight\":%" PRIu32 ",\"spin_us\":%" PRIu32
		       ",\"max_txns\":%" PRIu64 ",\"max_bytes\":%" PRIu64
		       ",\"max_inline_txns\":%" PRIu64 ",\"max_inline_bytes\":%" PRIu64
		       ",\"return_non_full\":%s"
		       ",\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"unanswered\":%" PRIu64 ",\"disconnected\":%s,\"duration_s\":%.3f"
		       ",\"requests_per_s\":%.1f,\"proofs_per_answer\":%.2f,\"max_proofs\":%" PRIu64
		       ",\"inline_per_answer\":%.2f,\"empty\":%" PRIu64
		       ",\"request_bytes\":%zu,\"answer_bytes\":%zu"
		       ",\"latency_us\":{\"p50\":%" PRIu32 ",\"p99\":%" PRIu32 ",\"p999\":%" PRIu32
		       ",\"samples\":%" PRIu64 "}}\n",
		       pl->node, pl->inflight_max, pl->spin_us, pl->lim.max_txns, pl->lim.max_bytes,
		       pl->lim.max_inline_txns, pl->lim.max_inline_bytes,
		       pl->lim.return_non_full ? "true" : "false", pl->requests, pl->ok, pl->errors,
		       pl->unanswered, pl->lost ? "true" : "false", secs, rps,
		       (double)pl->proofs / per, pl->max_proofs, (double)pl->inline_batches / per,
		       pl->empty, pl->request_bytes, pl->answer_bytes, p50, p99, p999,
		       pl->lat.seen);
		return;
	}
	printf("requests=%" PRIu64 " ok=%" PRIu64 " errors=%" PRIu64 " unanswered=%" PRIu64
	       " disconnected=%d\n",
	       pl->requests, pl->ok, pl->errors, pl->unanswered, pl->lost ? 1 : 0);
	printf("proofs/answer=%.2f max_proofs=%" PRIu64 " inline/answer=%.2f empty=%" PRIu64 "\n",
	       (double)pl->proofs / per, pl->max_proofs, (double)pl->inline_batches / per,
	       pl->empty);
	printf("duration_s=%.3f requests/s=%.1f latency_us p50=%" PRIu32 " p99=%" PRIu32
	       " p999=%" PRIu32 "\n",
	       secs, rps, p50, p99, p999);
}

static int
qsb_payload_main(int argc, char **argv)
{
	struct qsb_payload *pl;
	struct sigaction sa;
	uint32_t n_slots = 64;
	uint64_t start_us, end_us;
	int status = QSB_EXIT_FAIL;
	int rc;

	pl = calloc(1, sizeof(*pl));
	if (!pl) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		return QSB_EXIT_FAIL;
	}
	rc = qsb_payload_parse(argc, argv, pl);
	if (rc) {
		status = rc < 0 ? 0 : rc;
		goto out;
	}
	while (n_slots < 2 * pl->inflight_max)
		n_slots *= 2;
	pl->mask = n_slots - 1;
	pl->sent_us = calloc(n_slots, sizeof(*pl->sent_us));
	pl->ids = calloc(n_slots, sizeof(*pl->ids));
	if (!pl->sent_us || !pl->ids) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	status = QSB_EXIT_USAGE;
	if (qsb_load_config(pl->dir, pl->node, &pl->cfg))
		goto out;
	if ((size_t)pl->node >= pl->cfg->n_validators || !pl->cfg->rpc_socket ||
	    !pl->cfg->rpc_socket[0]) {
		qsb_usage_error(qsb_payload_usage, "-n: v%d of %s has no RPC socket", pl->node,
		                pl->cfg->path);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = qsb_submit_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = qsb_payload_connect(pl);
	if (rc) {
		status = rc;
		goto out;
	}
	start_us = qs_clock_mono_us();
	pl->tick_us = start_us;
	pl->lat.rng = start_us;
	qsb_payload_loop(pl, start_us + pl->duration_s * 1000000);
	end_us = qs_clock_mono_us();
	pl->unanswered = pl->inflight;
	qsb_lat_sort(&pl->lat);
	qsb_payload_summary(pl, (double)(end_us - start_us) / 1e6);
	status = pl->lost || pl->errors || !pl->ok ? QSB_EXIT_FAIL : 0;
out:
	qs_client_close(pl->client);
	qs_config_free(pl->cfg);
	free(pl->sent_us);
	free(pl->ids);
	free(pl->lat.all);
	free(pl);
	return status;
}

/* ---------------------------------------------------------------------------
 * pingpong: the machine's own floor for a request and its answer over a Unix
 * stream socket, with no qsd in the way. A child process waits in epoll as an
 * event loop does, reads each request whole and writes an answer of the given
 * size; the parent sends one request at a time and waits for the whole answer
 * as client/qsclient.c does (poll, then recv). bench/run runs it with
 * GetPayload's request and answer sizes, as fio is run beside the disk figures.
 */

static const char qsb_pingpong_usage[] =
    "usage: qsbench pingpong [-r REQUEST_BYTES] [-a ANSWER_BYTES] [-D DURATION_S] [-S US] [-j]\n"
    "  -r N  bytes per request (64)    -a N  bytes per answer (32768)\n"
    "  -D S  for S seconds (5)         -j    summary as JSON\n"
    "  -S US read without sleeping for up to US microseconds before waiting\n"
    "        for an answer, as qsbench payload -S (0)\n";

#define QSB_PINGPONG_MAX_BYTES (16u << 20)

/* Read exactly `len` bytes from the non-blocking `fd`, waiting in poll (the
 * client) or in epoll `ep` (the server); the client first reads without
 * sleeping for up to `spin_us`, as qs_client_opts.spin_us does. 0, or -1 on
 * EOF or an error. */
static int
qsb_pingpong_read(int fd, int ep, uint32_t spin_us, uint8_t *buf, size_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct epoll_event ev;
	uint64_t spin_until = spin_us ? qs_clock_mono_us() + spin_us : 0;
	size_t got = 0;
	ssize_t n;

	for (;;) {
		if (spin_until == 0 || qs_clock_mono_us() >= spin_until) {
			if (ep >= 0 ? epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR
			            : poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -1;
		}
		for (;;) {
			n = recv(fd, buf + got, len - got, 0);
			if (n > 0) {
				got += (size_t)n;
				if (got == len)
					return 0;
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				return -1;
			break;
		}
	}
}

/* Write all of `buf` to the non-blocking `fd`. 0, or -1. */
static int
qsb_pingpong_write(int fd, const uint8_t *buf, size_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EAGAIN)
			poll(&pfd, 1, -1);
		else if (n < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* The child: answer every request until the parent closes its end. */
static void
qsb_pingpong_serve(int fd, uint8_t *req, size_t req_len, const uint8_t *ans, size_t ans_len)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		_exit(QSB_EXIT_FAIL);
	while (qsb_pingpong_read(fd, ep, 0, req, req_len) == 0)
		if (qsb_pingpong_write(fd, ans, ans_len) != 0)
			_exit(QSB_EXIT_FAIL);
	_exit(0);
}

/* The summary line (or JSON) of `n` exchanges in `secs`, latencies sorted. */
static void
qsb_pingpong_summary(bool json, uint64_t req_len, uint64_t ans_len, uint64_t spin_us, uint64_t n,
                     double secs, const struct qsb_lat *lat)
{
	uint32_t p50 = qsb_pct(lat->all, lat->n_all, 0.50);
	uint32_t p99 = qsb_pct(lat->all, lat->n_all, 0.99);
	uint32_t p999 = qsb_pct(lat->all, lat->n_all, 0.999);

	if (json)
		printf("{\"request_bytes\":%" PRIu64 ",\"answer_bytes\":%" PRIu64
		       ",\"spin_us\":%" PRIu64 ",\"requests\":%" PRIu64
		       ",\"duration_s\":%.3f,\"requests_per_s\":%.1f"
		       ",\"latency_us\":{\"p50\":%" PRIu32 ",\"p99\":%" PRIu32 ",\"p999\":%" PRIu32
		       "}}\n",
		       req_len, ans_len, spin_us, n, secs, (double)n / secs, p50, p99, p999);
	else
		printf("request_bytes=%" PRIu64 " answer_bytes=%" PRIu64 " spin_us=%" PRIu64
		       " requests=%" PRIu64 " requests/s=%.1f latency_us p50=%" PRIu32
		       " p99=%" PRIu32 " p999=%" PRIu32 "\n",
		       req_len, ans_len, spin_us, n, (double)n / secs, p50, p99, p999);
}

static int
qsb_pingpong_main(int argc, char **argv)
{
	const char *u = qsb_pingpong_usage;
	uint64_t req_len = 64, ans_len = 32768, duration_s = 5, n = 0, start_us, end_us, t, now;
	uint64_t spin_us = 0;
	struct qsb_lat lat = {0};
	uint8_t *req = NULL, *ans = NULL;
	int sv[2] = {-1, -1}, status = QSB_EXIT_FAIL, c, wstatus;
	bool json = false;
	pid_t pid = -1;

	optind = 1;
	while ((c = getopt(argc, argv, ":r:a:D:S:jh")) != -1) {
		switch (c) {
		case 'S':
			if (qsb_opt_u64(u, c, optarg, 0, QS_CLIENT_SPIN_MAX_US, &spin_us))
				return QSB_EXIT_USAGE;
			break;
		case 'r':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_PINGPONG_MAX_BYTES, &req_len))
				return QSB_EXIT_USAGE;
			break;
		case 'a':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_PINGPONG_MAX_BYTES, &ans_len))
				return QSB_EXIT_USAGE;
			break;
		case 'D':
			if (qsb_opt_u64(u, c, optarg, 1, QSB_MAX_DURATION_S, &duration_s))
				return QSB_EXIT_USAGE;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(u, stdout);
			return 0;
		case ':':
			qsb_usage_error(u, "-%c needs an argument", optopt);
			return QSB_EXIT_USAGE;
		default:
			qsb_usage_error(u, "unknown option -%c", optopt);
			return QSB_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		qsb_usage_error(u, "unexpected argument '%s'", argv[optind]);
		return QSB_EXIT_USAGE;
	}
	req = calloc(1, req_len);
	ans = calloc(1, ans_len);
	if (!req || !ans) {
		fprintf(stderr, "%s: out of memory\n", qsb_cmd);
		goto out;
	}
	memset(ans, 0x5a, ans_len);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
		fprintf(stderr, "%s: socketpair: %s\n", qsb_cmd, strerror(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", qsb_cmd, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(sv[0]);
		qsb_pingpong_serve(sv[1], req, req_len, ans, ans_len);
	}
	close(sv[1]);
	sv[1] = -1;
	start_us = qs_clock_mono_us();
	lat.rng = start_us;
	end_us = start_us + duration_s * 1000000;
	for (t = start_us; t < end_us; n++) {
		if (qsb_pingpong_write(sv[0], req, req_len) != 0 ||
		    qsb_pingpong_read(sv[0], -1, spin_us, ans, ans_len) != 0) {
			fprintf(stderr, "%s: the answering process went away\n", qsb_cmd);
			goto out;
		}
		now = qs_clock_mono_us();
		qsb_lat_add(&lat, now - t);
		t = now;
	}
	qsb_lat_sort(&lat);
	qsb_pingpong_summary(json, req_len, ans_len, spin_us, n, (double)(t - start_us) / 1e6,
	                     &lat);
	status = 0;
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (pid > 0 && waitpid(pid, &wstatus, 0) == pid &&
	    (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) && status == 0) {
		fprintf(stderr, "%s: the answering process failed\n", qsb_cmd);
		status = QSB_EXIT_FAIL;
	}
	free(lat.all);
	free(req);
	free(ans);
	return status;
}

/* ---------------------------------------------------------------------------
 * main
 */

static void
qsb_usage(FILE *f)
{
	fprintf(f,
	        "usage: qsbench [-hV] COMMAND [OPTIONS]\n\n"
	        "  run     drive a qsd node as validators over the peer protocol\n"
	        "  submit  drive a qsd node as its consensus process over the RPC socket\n"
	        "  consensus  submit, and propose, execute and commit blocks as consensus does\n"
	        "  proofs  fill a node's proof queue: batches and proofs of store as validators\n"
	        "  payload GetPayload as fast as one client can, with its latency\n"
	        "  pingpong  a bare request and answer over a Unix socket: the machine's floor\n"
	        "  verify  fetch the batches a run or submit recorded and check every byte\n\n"
	        "'qsbench COMMAND -h' lists a command's options. Exit status: 0 success,\n"
	        "1 bad signature, protocol error or failed check, 2 usage or config error.\n");
}

int
main(int argc, char **argv)
{
	int status;

	/* Each 64 KiB frame is packed into a fresh evbuffer chain and freed
	 * once sent: with glibc's default trim threshold the heap top went
	 * back to the kernel between frames, and faulting it in again took a
	 * quarter of the generator's CPU samples, on the cores the target runs on. */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		qsb_usage(stderr);
		return QSB_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		qsb_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0) {
		printf("qsbench %s\n", QS_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0) {
		qsb_cmd = "qsbench run";
		status = qsb_run_main(argc - 1, argv + 1, false);
	} else if (strcmp(argv[1], "proofs") == 0) {
		qsb_cmd = "qsbench proofs";
		status = qsb_run_main(argc - 1, argv + 1, true);
	} else if (strcmp(argv[1], "submit") == 0) {
		qsb_cmd = "qsbench submit";
		status = qsb_submit_main(argc - 1, argv + 1, false);
	} else if (strcmp(argv[1], "consensus") == 0) {
		qsb_cmd = "qsbench consensus";
		status = qsb_submit_main(argc - 1, argv + 1, true);
	} else if (strcmp(argv[1], "payload") == 0) {
		qsb_cmd = "qsbench payload";
		status = qsb_payload_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "pingpong") == 0) {
		qsb_cmd = "qsbench pingpong";
		status = qsb_pingpong_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "verify") == 0) {
		qsb_cmd = "qsbench verify";
		status = qsb_verify_main(argc - 1, argv + 1);
	} else {
		fprintf(stderr, "qsbench: unknown command '%s'\n", argv[1]);
		qsb_usage(stderr);
		return QSB_EXIT_USAGE;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "qsbench: writing output: %s\n", strerror(errno));
		if (status == 0)
			status = QSB_EXIT_FAIL;
	}
	return status;
}
