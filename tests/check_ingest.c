/*
 * qsd's ingest path seen from outside: one real qsd (validator v0 of a
 * 4-validator cluster written by tools/mkcluster) runs for the whole file,
 * and each test connects to it over TLS 1.3 as v1, v2 or v3 with their own
 * keys, as a real peer would. Every malformed input is checked three ways:
 * the answer (the exact BatchNack reason and no SignedBatchInfo, or the
 * connection closed), the metric that counts it, and another validator's
 * connection that still gets its batches stored and validly signed.
 *
 * Run from the repository root (make check-unit does). Environment: B, the
 * build directory holding qsd and qsctl (default: the one this binary is in,
 * else build). QS_TEST_KEEP=1 keeps the temporary directory (cluster, qsd's
 * database and log).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "daemon/keys.h"
#include "net/tls.h"
#include "quorumstore/v1/peer.pb-c.h"
#include "tests/lib/node.h"
#include "tests/lib/tmpdir.h"

#define N_VALIDATORS   4
#define IO_TIMEOUT_MS  15000 /* one answer from qsd; sanitized builds are slow */
#define METRIC_WAIT_MS 10000 /* a counter to reach its expected value */
#define TEST_TIMEOUT_S 45
#define READ_FRAME_MAX (16u << 20)
#define QS_FRAME_HDR   4

/* Limits written into v0's config; the cases are sized against them. */
#define LIM_BATCH_TXNS   16
#define LIM_BATCH_BYTES  65536
#define LIM_MSG_BATCHES  4
#define LIM_MSG_BYTES    262144
#define LIM_FRAME_BYTES  327680
/* Small enough that one batch under LIM_BATCH_BYTES exceeds it, large
 * enough for every small batch the whole file sends as one author. */
#define QUOTA_DISK_BYTES 49152
#define LIFETIME_MS      3600000

#define NACK(name)    QUORUMSTORE__V1__NACK_REASON__NACK_REASON_##name
#define PM_CASE(name) QUORUMSTORE__V1__PEER_MESSAGE__MSG_##name

#define PERSISTED       "qsd_batches_persisted_total"
#define SIGNED          "qsd_batches_signed_total"
#define ACK_SECONDS     "qsd_batch_ack_seconds"
#define REJECTED(r)     "qsd_batches_rejected_total{reason=\"" r "\"}"
#define DISCONNECTS(r)  "qsd_peer_disconnects_total{reason=\"" r "\"}"
#define HS_FAILURES(r)  "qsd_tls_handshake_failures_total{reason=\"" r "\"}"
#define PROTO_ERRORS(r) "qsd_peer_protocol_errors_total{reason=\"" r "\"}"
#define REQUESTS(r)     "qsd_batch_requests_total{result=\"" r "\"}"
#define IGNORED(t)      "qsd_peer_messages_ignored_total{type=\"" t "\"}"

/* The cluster and the qsd under test, set up in main() before any test
 * forks, read-only afterwards. */
static struct {
	char build[256];
	char dir[256];
	struct qs_test_node node; /* v0, the qsd under test */
	int base_port;
	int placeholder[N_VALIDATORS]; /* peer ports of v1..v3, bound, not listening */
	struct qs_config *cfg;
	EVP_PKEY *net_key[N_VALIDATORS];
	EVP_PKEY *sign_key[N_VALIDATORS];
	uint8_t net_pub[N_VALIDATORS][QS_PUBKEY_BYTES];
	uint8_t sign_pub[N_VALIDATORS][QS_PUBKEY_BYTES];
} cl = {.placeholder = {-1, -1, -1, -1}};

/* ------------------------------------------------------------------------
 * Metrics of the qsd under test (tests/lib/node.h scrapes them).
 */

/* Poll `series` until it reaches `want` (or METRIC_WAIT_MS passed); the last
 * value read. Counters move on qsd's loop around the time an answer or a
 * close is seen here, so the test polls instead of scraping once. */
static double
wait_metric(const char *series, double want)
{
	return qs_test_wait_metric(&cl.node, series, want, METRIC_WAIT_MS);
}

/* Counters a test expects to move by an exact amount (or at least by it). */
struct watch {
	const char *series;
	double delta;
	int at_least;
	double before;
};

static void
watch_start(struct watch *ws, size_t n)
{
	char *text = qs_test_scrape(&cl.node);

	for (size_t i = 0; i < n; i++) {
		ws[i].before = qs_test_metric_in(text, ws[i].series);
		if (isnan(ws[i].before)) {
			free(text);
			ck_abort_msg("qsd does not export %s", ws[i].series);
		}
	}
	free(text);
}

static void
watch_check(const struct watch *ws, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double want = ws[i].before + ws[i].delta;
		double got = wait_metric(ws[i].series, want);

		if (ws[i].at_least)
			ck_assert_msg(got >= want, "%s went from %.0f to %.0f, want at least +%.0f",
			              ws[i].series, ws[i].before, got, ws[i].delta);
		else
			ck_assert_msg(got == want, "%s went from %.0f to %.0f, want +%.0f",
			              ws[i].series, ws[i].before, got, ws[i].delta);
	}
}

#define N_WATCH(w) (sizeof(w) / sizeof((w)[0]))

static void
assert_healthy(void)
{
	char *body = NULL;
	int status = 0;

	ck_assert_msg(kill(cl.node.pid, 0) == 0, "qsd is gone");
	ck_assert_msg(qs_test_http_get(cl.node.metrics_port, "/healthz", &status, &body) == 0,
	              "no answer from /healthz");
	/* v1..v3 are only the test's connections, never a quorum for long:
	 * that is the one reason to be unhealthy allowed here. */
	ck_assert_msg((status == 200 && strcmp(body, "ok\n") == 0) ||
	                  (status == 503 && strcmp(body, "no quorum of peers\n") == 0),
	              "/healthz: %d %s", status, body);
	free(body);
}

/* ------------------------------------------------------------------------
 * Peer connections: blocking TCP + TLS 1.3, frames of one PeerMessage.
 */

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int dead; /* the connection failed: no close_notify */
};

static int
pin_v0(void *arg, const uint8_t key[QS_TLS_KEY_BYTES])
{
	return memcmp(key, cl.net_pub[0], QS_TLS_KEY_BYTES) == 0 ? 0 : -1;
}

static int
tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	/* Reads wake up this often to check their deadline. */
	struct timeval rtv = {0, 100000};
	struct timeval wtv = {10, 0};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "cannot connect to qsd's peer port %d: %s", port, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wtv, sizeof(wtv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Connect and run the TLS handshake with `ctx` (taken over by c). Returns 1
 * when SSL_connect succeeded. A TLS 1.3 client finishes its handshake before
 * the server has checked the client's certificate, so a refusal may only
 * show on the first read. */
static int
conn_tls(struct conn *c, SSL_CTX *ctx)
{
	uint64_t deadline = qs_test_now_ms() + IO_TIMEOUT_MS;

	memset(c, 0, sizeof(*c));
	c->ctx = ctx;
	c->fd = tcp_connect(cl.base_port);
	c->ssl = SSL_new(ctx);
	ck_assert_ptr_nonnull(c->ssl);
	ck_assert_int_eq(SSL_set_fd(c->ssl, c->fd), 1);
	for (;;) {
		int r = SSL_connect(c->ssl);
		int e;

		if (r == 1)
			return 1;
		e = SSL_get_error(c->ssl, r);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    qs_test_now_ms() < deadline)
			continue;
		ERR_clear_error();
		c->dead = 1;
		return 0;
	}
}

static SSL_CTX *
client_ctx(EVP_PKEY *network_key)
{
	SSL_CTX *ctx = NULL;
	char err[256];

	ck_assert_msg(qs_tls_ctx_new(network_key, 0, pin_v0, NULL, &ctx, err, sizeof(err)) == 0,
	              "client TLS context: %s", err);
	return ctx;
}

/* TLS as validator v (its own network key), not yet any Hello. */
static void
conn_open_as(struct conn *c, int v)
{
	ck_assert_msg(conn_tls(c, client_ctx(cl.net_key[v])), "TLS handshake as v%d failed", v);
	ck_assert_int_eq(qs_tls_peer_index(c->ssl), 0);
}

static void
conn_close(struct conn *c)
{
	if (c->ssl) {
		if (!c->dead)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd > 0)
		close(c->fd);
	SSL_CTX_free(c->ctx);
	ERR_clear_error();
	memset(c, 0, sizeof(*c));
}

/* Write all of p; 0, or -1 when the connection failed (qsd may close it
 * while a test is still writing its garbage). */
static int
conn_write(struct conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
		int r = SSL_write(c->ssl, b, chunk);

		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
				continue;
			ERR_clear_error();
			c->dead = 1;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One frame: the 4-byte big-endian length, then the body. */
static int
send_frame(struct conn *c, const void *body, size_t len)
{
	uint8_t *buf = malloc(QS_FRAME_HDR + len);
	int rc;

	ck_assert_ptr_nonnull(buf);
	qs_put_be32(buf, (uint32_t)len);
	if (len)
		memcpy(buf + QS_FRAME_HDR, body, len);
	rc = conn_write(c, buf, QS_FRAME_HDR + len);
	free(buf);
	return rc;
}

static int
send_pm(struct conn *c, const Quorumstore__V1__PeerMessage *pm)
{
	size_t len = protobuf_c_message_get_packed_size(&pm->base);
	uint8_t *buf = malloc(len ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(protobuf_c_message_pack(&pm->base, buf), len);
	rc = send_frame(c, buf, len);
	free(buf);
	return rc;
}

enum {
	READ_TIMEOUT = -1,
	READ_CLOSED = 0,
	READ_OK = 1
};

static int
read_exact(struct conn *c, uint8_t *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		int e;

		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (qs_test_now_ms() < deadline)
				continue;
			return READ_TIMEOUT;
		}
		/* close_notify, EOF (SSL_OP_IGNORE_UNEXPECTED_EOF), a reset or an
		 * alert: the connection is over. */
		ERR_clear_error();
		c->dead = 1;
		return READ_CLOSED;
	}
	return READ_OK;
}

static int
read_msg(struct conn *c, Quorumstore__V1__PeerMessage **out, unsigned timeout_ms)
{
	uint64_t deadline = qs_test_now_ms() + timeout_ms;
	uint8_t hdr[QS_FRAME_HDR], *body;
	uint32_t len;
	int r;

	*out = NULL;
	if (c->dead)
		return READ_CLOSED;
	r = read_exact(c, hdr, sizeof(hdr), deadline);
	if (r != READ_OK)
		return r;
	len = qs_get_be32(hdr);
	ck_assert_msg(len <= READ_FRAME_MAX, "qsd sent a frame of %u bytes", len);
	body = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(body);
	r = read_exact(c, body, len, deadline);
	if (r == READ_OK) {
		*out = quorumstore__v1__peer_message__unpack(NULL, len, body);
		if (!*out) {
			free(body);
			ck_abort_msg("qsd sent a frame that is not a PeerMessage");
		}
	}
	free(body);
	return r;
}

static void
msg_free(Quorumstore__V1__PeerMessage *m)
{
	if (m)
		quorumstore__v1__peer_message__free_unpacked(m, NULL);
}

static const char *
msg_name(const Quorumstore__V1__PeerMessage *m)
{
	switch (m->msg_case) {
	case PM_CASE(HELLO):
		return "Hello";
	case PM_CASE(BATCH_MSG):
		return "BatchMsg";
	case PM_CASE(SIGNED_BATCH_INFO_MSG):
		return "SignedBatchInfoMsg";
	case PM_CASE(BATCH_NACK):
		return "BatchNack";
	case PM_CASE(PROOF_MSG):
		return "ProofMsg";
	case PM_CASE(BATCH_REQUEST):
		return "BatchRequest";
	case PM_CASE(BATCH_RESPONSE):
		return "BatchResponse";
	default:
		return "an empty PeerMessage";
	}
}

static Quorumstore__V1__PeerMessage *
next_msg(struct conn *c, const char *what)
{
	Quorumstore__V1__PeerMessage *m = NULL;
	int r = read_msg(c, &m, IO_TIMEOUT_MS);

	ck_assert_msg(r != READ_TIMEOUT, "timed out waiting for %s", what);
	ck_assert_msg(r != READ_CLOSED, "qsd closed the connection while we waited for %s", what);
	return m;
}

/* The connection ends within IO_TIMEOUT_MS; only qsd's Hello may come
 * before (never an answer to a batch). */
static void
expect_closed(struct conn *c)
{
	uint64_t deadline = qs_test_now_ms() + IO_TIMEOUT_MS;

	for (;;) {
		Quorumstore__V1__PeerMessage *m = NULL;
		uint64_t now = qs_test_now_ms();
		int r = read_msg(c, &m, now < deadline ? (unsigned)(deadline - now) : 0);

		if (r == READ_CLOSED)
			return;
		ck_assert_msg(r == READ_OK, "qsd did not close the connection");
		if (m->msg_case != PM_CASE(HELLO)) {
			const char *name = msg_name(m);

			msg_free(m);
			ck_abort_msg("got %s on a connection qsd should close", name);
		}
		msg_free(m);
	}
}

/* Added to now_us in the Hellos this test sends (a peer with a wrong clock). */
static int64_t hello_clock_offset_us;

static void
send_hello(struct conn *c, const uint8_t *author, size_t author_len, uint32_t chain_id,
           uint32_t version, uint64_t epoch)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__Hello h = QUORUMSTORE__V1__HELLO__INIT;

	h.epoch = epoch;
	h.author.data = (uint8_t *)author;
	h.author.len = author_len;
	h.protocol_version = version;
	h.chain_id = chain_id;
	h.now_us = (uint64_t)((int64_t)qs_test_wall_us() + hello_clock_offset_us);
	pm.msg_case = PM_CASE(HELLO);
	pm.hello = &h;
	send_pm(c, &pm);
}

static void
expect_server_hello(struct conn *c)
{
	Quorumstore__V1__PeerMessage *m = next_msg(c, "qsd's Hello");
	Quorumstore__V1__Hello *h = m->hello;

	ck_assert_msg(m->msg_case == PM_CASE(HELLO), "first message is %s, not Hello", msg_name(m));
	ck_assert_uint_eq(h->author.len, QS_PUBKEY_BYTES);
	ck_assert_mem_eq(h->author.data, cl.sign_pub[0], QS_PUBKEY_BYTES);
	ck_assert_uint_eq(h->chain_id, cl.cfg->chain_id);
	ck_assert_uint_eq(h->protocol_version, QS_PROTOCOL_VERSION);
	ck_assert_uint_eq(h->epoch, cl.cfg->epoch);
	ck_assert_msg(h->now_us + 60000000u > qs_test_wall_us() &&
	                  h->now_us < qs_test_wall_us() + 60000000u,
	              "qsd's Hello now_us is off by more than a minute");
	msg_free(m);
}

/* A usable connection as validator v: TLS with its network key, then the
 * Hello exchange. */
static void
conn_peer(struct conn *c, int v)
{
	conn_open_as(c, v);
	send_hello(c, cl.sign_pub[v], QS_PUBKEY_BYTES, cl.cfg->chain_id, QS_PROTOCOL_VERSION,
	           cl.cfg->epoch);
	expect_server_hello(c);
}

/* ------------------------------------------------------------------------
 * Batches.
 */

struct tbatch {
	Quorumstore__V1__Batch pb;
	Quorumstore__V1__BatchInfo ipb; /* pb.info; points into info */
	struct qs_batch_info info;      /* what a valid answer must carry */
	ProtobufCBinaryData *txns;
	uint8_t *payload;
	size_t n_txns;
};

static void
tb_digest(struct tbatch *b)
{
	ck_assert_int_eq(qs_codec_batch_digest(cl.cfg->chain_id, b->info.author, b->info.epoch,
	                                       b->info.batch_id, b->txns, b->n_txns,
	                                       b->info.digest),
	                 0);
}

/* Rebuild the protobuf form from b->info (after a test changed it). */
static void
tb_sync(struct tbatch *b)
{
	qs_batch_info_to_pb(&b->info, &b->ipb);
	quorumstore__v1__batch__init(&b->pb);
	b->pb.info = &b->ipb;
	b->pb.n_transactions = b->n_txns;
	b->pb.transactions = b->n_txns ? b->txns : NULL;
}

/* A valid batch of `author`: n_txns random transactions of txn_len bytes, a
 * fresh random batch id, ten minutes to live. */
static void
tb_make(struct tbatch *b, int author, size_t n_txns, size_t txn_len)
{
	size_t total = n_txns * txn_len;

	memset(b, 0, sizeof(*b));
	b->n_txns = n_txns;
	b->txns = calloc(n_txns ? n_txns : 1, sizeof(*b->txns));
	b->payload = malloc(total ? total : 1);
	ck_assert(b->txns && b->payload);
	if (total > 0)
		ck_assert_int_eq(RAND_bytes(b->payload, (int)total), 1);
	for (size_t i = 0; i < n_txns; i++) {
		b->txns[i].data = b->payload + i * txn_len;
		b->txns[i].len = txn_len;
	}
	memcpy(b->info.author, cl.sign_pub[author], QS_PUBKEY_BYTES);
	b->info.batch_id = qs_test_rand64() >> 1;
	b->info.epoch = cl.cfg->epoch;
	b->info.expiration_us = qs_test_wall_us() + 600 * 1000000ull;
	b->info.num_txns = (uint32_t)n_txns;
	b->info.num_bytes = total;
	b->info.gas_bucket_start = 7;
	tb_digest(b);
	tb_sync(b);
}

static void
tb_free(struct tbatch *b)
{
	free(b->txns);
	free(b->payload);
	memset(b, 0, sizeof(*b));
}

static void
send_batches(struct conn *c, struct tbatch *const *bs, size_t n)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchMsg bm = QUORUMSTORE__V1__BATCH_MSG__INIT;
	Quorumstore__V1__Batch **list = calloc(n ? n : 1, sizeof(*list));

	ck_assert_ptr_nonnull(list);
	for (size_t i = 0; i < n; i++)
		list[i] = &bs[i]->pb;
	bm.n_batches = n;
	bm.batches = list;
	pm.msg_case = PM_CASE(BATCH_MSG);
	pm.batch_msg = &bm;
	send_pm(c, &pm);
	free(list);
}

static void
send_batch(struct conn *c, struct tbatch *b)
{
	send_batches(c, &b, 1);
}

static void
assert_info_eq(const struct qs_batch_info *got, const struct qs_batch_info *want)
{
	ck_assert_mem_eq(got->author, want->author, QS_PUBKEY_BYTES);
	ck_assert_uint_eq(got->batch_id, want->batch_id);
	ck_assert_uint_eq(got->epoch, want->epoch);
	ck_assert_uint_eq(got->expiration_us, want->expiration_us);
	ck_assert_mem_eq(got->digest, want->digest, QS_DIGEST_BYTES);
	ck_assert_uint_eq(got->num_txns, want->num_txns);
	ck_assert_uint_eq(got->num_bytes, want->num_bytes);
	ck_assert_uint_eq(got->gas_bucket_start, want->gas_bucket_start);
}

/* The digest and batch id a BatchNack must name for b: what b carried when
 * they were usable, zeros otherwise. */
static void
nack_names(const struct tbatch *b, uint8_t digest[QS_DIGEST_BYTES], uint64_t *batch_id)
{
	memset(digest, 0, QS_DIGEST_BYTES);
	*batch_id = 0;
	if (!b->pb.info)
		return;
	*batch_id = b->pb.info->batch_id;
	if (b->pb.info->digest.len == QS_DIGEST_BYTES)
		memcpy(digest, b->pb.info->digest.data, QS_DIGEST_BYTES);
}

/*
 * Read answers until each of the n batches got exactly one: a
 * SignedBatchInfo by v0 over exactly its info, with a valid signature, when
 * reasons[i] is 0; a BatchNack naming it with reasons[i] otherwise. Any other
 * message, a second answer or a wrong one fails the test.
 */
static void
expect_answers(struct conn *c, struct tbatch *const *bs, const int *reasons, size_t n)
{
	int answered[64] = {0};
	size_t left = n;

	ck_assert_uint_le(n, 64);
	while (left > 0) {
		Quorumstore__V1__PeerMessage *m = next_msg(c, "the answer to a batch");
		size_t i;

		if (m->msg_case == PM_CASE(BATCH_NACK)) {
			const Quorumstore__V1__BatchNack *k = m->batch_nack;

			for (i = 0; i < n; i++) {
				uint8_t d[QS_DIGEST_BYTES];
				uint64_t id;

				nack_names(bs[i], d, &id);
				if (!answered[i] && reasons[i] &&
				    k->digest.len == QS_DIGEST_BYTES &&
				    memcmp(k->digest.data, d, QS_DIGEST_BYTES) == 0 &&
				    k->batch_id == id)
					break;
			}
			if (i == n) {
				int reason = k->reason;

				msg_free(m);
				ck_abort_msg("unexpected BatchNack %s",
				             qs_nack_reason_name(reason));
			}
			ck_assert_msg((int)k->reason == reasons[i], "BatchNack %s, want %s",
			              qs_nack_reason_name(k->reason),
			              qs_nack_reason_name(reasons[i]));
			ck_assert_ptr_nonnull(k->detail);
		} else if (m->msg_case == PM_CASE(SIGNED_BATCH_INFO_MSG)) {
			const Quorumstore__V1__SignedBatchInfoMsg *sm = m->signed_batch_info_msg;

			ck_assert_uint_ge(sm->n_infos, 1);
			for (size_t s = 0; s < sm->n_infos; s++) {
				const Quorumstore__V1__SignedBatchInfo *sbi = sm->infos[s];
				struct qs_batch_info got;

				ck_assert_int_eq(qs_batch_info_from_pb(sbi->info, &got), 0);
				for (i = 0; i < n; i++)
					if (!answered[i] && !reasons[i] &&
					    memcmp(got.digest, bs[i]->info.digest,
					           QS_DIGEST_BYTES) == 0)
						break;
				ck_assert_msg(i < n,
				              "SignedBatchInfo for a batch that should get none "
				              "(or a second one)");
				assert_info_eq(&got, &bs[i]->info);
				ck_assert_uint_eq(sbi->signer.len, QS_PUBKEY_BYTES);
				ck_assert_mem_eq(sbi->signer.data, cl.sign_pub[0], QS_PUBKEY_BYTES);
				ck_assert_uint_eq(sbi->signature.len, QS_SIG_BYTES);
				ck_assert_msg(
				    qs_codec_info_verify(cl.sign_pub[0], cl.cfg->chain_id, &got,
				                         sbi->signature.data) == 0,
				    "SignedBatchInfo signature does not verify with v0's key");
				answered[i] = 1;
				left--;
			}
			msg_free(m);
			continue;
		} else {
			const char *name = msg_name(m);

			msg_free(m);
			ck_abort_msg("got %s while waiting for answers to batches", name);
		}
		answered[i] = 1;
		left--;
		msg_free(m);
	}
}

static void
expect_signed(struct conn *c, struct tbatch *b)
{
	int ok = 0;

	expect_answers(c, &b, &ok, 1);
}

static void
expect_nack(struct conn *c, struct tbatch *b, int reason)
{
	expect_answers(c, &b, &reason, 1);
}

/* A fresh small batch of v is stored and validly signed. */
static void
ack_round(struct conn *c, int v)
{
	struct tbatch g;

	tb_make(&g, v, 2, 16);
	send_batch(c, &g);
	expect_signed(c, &g);
	tb_free(&g);
}

/* ------------------------------------------------------------------------
 * The shape of every case: a witness connection (another validator) is up
 * before the bad input and still gets its batches signed afterwards.
 */

/*
 * Send `bad` as validator `from` and expect BatchNack `reason`. Checks that
 * qsd_batches_rejected_total{reason} went up by one, that nothing was stored
 * for it (no SignedBatchInfo came for it before the one of a good batch sent
 * after it on the same connection, and qsd_batches_persisted_total counts
 * only the two good batches), and that a witness validator is unaffected.
 * `a` and `w` are open (as `from` and `witness`) and closed here.
 */
static void
nack_and_recover(struct conn *a, int from, struct conn *w, int witness, struct tbatch *bad,
                 int reason)
{
	char series[128];
	struct watch ws[2] = {
	    {.series = series, .delta = 1},
	    {.series = PERSISTED, .delta = 2},
	};

	snprintf(series, sizeof(series), "qsd_batches_rejected_total{reason=\"%s\"}",
	         qs_nack_reason_name(reason));
	watch_start(ws, N_WATCH(ws));
	send_batch(a, bad);
	expect_nack(a, bad, reason);
	ack_round(a, from);
	ack_round(w, witness);
	watch_check(ws, N_WATCH(ws));
	conn_close(a);
	conn_close(w);
}

/* The common case: v1 sends `bad`, v2 is the witness. */
static void
nack_case(struct tbatch *bad, int reason)
{
	struct conn a, w;

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	nack_and_recover(&a, 1, &w, 2, bad, reason);
}

/* After a connection was refused or closed: qsd lives, and the witness still
 * gets its batches signed. */
static void
witness_ok(struct conn *w, int witness)
{
	ack_round(w, witness);
	assert_healthy();
	conn_close(w);
}

/* ------------------------------------------------------------------------
 * Good input.
 */

START_TEST(good_batch_is_signed_by_v0_after_it_is_persisted)
{
	struct conn a;
	struct tbatch b;
	struct watch ws[] = {
	    {.series = PERSISTED, .delta = 1},
	    {.series = SIGNED, .delta = 1},
	    {.series = "qsd_batches_received_total", .delta = 1},
	    {.series = ACK_SECONDS "_count", .delta = 1},
	    {.series = ACK_SECONDS "_bucket{le=\"+Inf\"}", .delta = 1},
	};

	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	tb_make(&b, 1, 3, 20);
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_check(ws, N_WATCH(ws));
	tb_free(&b);
	conn_close(&a);
}
END_TEST

START_TEST(one_message_mixing_good_and_bad_batches_answers_each_once)
{
	struct conn a, w;
	struct tbatch g1, bad, empty, g2;
	struct tbatch *list[] = {&g1, &bad, &empty, &g2};
	int reasons[] = {0, NACK(BAD_DIGEST), NACK(EMPTY_BATCH), 0};
	struct watch ws[] = {
	    {.series = REJECTED("BAD_DIGEST"), .delta = 1},
	    {.series = REJECTED("EMPTY_BATCH"), .delta = 1},
	    {.series = PERSISTED, .delta = 3},
	    {.series = "qsd_batches_received_total", .delta = 5},
	    /* the three signed, not the two refused */
	    {.series = ACK_SECONDS "_count", .delta = 3},
	};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	tb_make(&g1, 1, 2, 16);
	tb_make(&bad, 1, 2, 16);
	bad.info.digest[5] ^= 0x10;
	tb_sync(&bad);
	tb_make(&empty, 1, 0, 0);
	tb_make(&g2, 1, 1, 40);
	watch_start(ws, N_WATCH(ws));
	send_batches(&a, list, 4);
	expect_answers(&a, list, reasons, 4);
	ack_round(&w, 2);
	watch_check(ws, N_WATCH(ws));
	for (size_t i = 0; i < 4; i++)
		tb_free(list[i]);
	conn_close(&a);
	conn_close(&w);
}
END_TEST

/* ------------------------------------------------------------------------
 * Batches refused with a BatchNack.
 */

START_TEST(nack_wrong_author_for_batch_of_another_validator)
{
	struct tbatch b;

	/* Authored (and digested) as v2, sent on v1's connection. */
	tb_make(&b, 2, 2, 16);
	nack_case(&b, NACK(WRONG_AUTHOR));
	tb_free(&b);
}
END_TEST

START_TEST(nack_bad_digest_when_digest_does_not_cover_payload)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.payload[3] ^= 0x01; /* the digest was computed over other bytes */
	nack_case(&b, NACK(BAD_DIGEST));
	tb_free(&b);
}
END_TEST

START_TEST(nack_expired_when_expiration_is_past)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.info.expiration_us = qs_test_wall_us() - 1000000;
	tb_sync(&b);
	nack_case(&b, NACK(EXPIRED));
	tb_free(&b);
}
END_TEST

START_TEST(nack_beyond_lifetime_when_expiration_is_too_far)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.info.expiration_us = qs_test_wall_us() + (LIFETIME_MS + 600000ull) * 1000u;
	tb_sync(&b);
	nack_case(&b, NACK(BEYOND_LIFETIME));
	tb_free(&b);
}
END_TEST

START_TEST(nack_wrong_epoch)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.info.epoch = cl.cfg->epoch + 1;
	tb_digest(&b); /* a correct digest, so only the epoch is wrong */
	tb_sync(&b);
	nack_case(&b, NACK(WRONG_EPOCH));
	tb_free(&b);
}
END_TEST

START_TEST(nack_count_mismatch_when_num_txns_is_wrong)
{
	struct tbatch b;

	tb_make(&b, 1, 3, 16);
	b.info.num_txns = 2;
	tb_sync(&b);
	nack_case(&b, NACK(COUNT_MISMATCH));
	tb_free(&b);
}
END_TEST

START_TEST(nack_count_mismatch_when_num_bytes_is_wrong)
{
	struct tbatch b;

	tb_make(&b, 1, 3, 16);
	b.info.num_bytes = 47;
	tb_sync(&b);
	nack_case(&b, NACK(COUNT_MISMATCH));
	tb_free(&b);
}
END_TEST

START_TEST(nack_too_many_txns_over_batch_limit)
{
	struct tbatch b;

	tb_make(&b, 1, LIM_BATCH_TXNS + 1, 1);
	nack_case(&b, NACK(TOO_MANY_TXNS));
	tb_free(&b);
}
END_TEST

START_TEST(nack_too_many_bytes_over_batch_limit)
{
	struct tbatch b;

	tb_make(&b, 1, 1, LIM_BATCH_BYTES + 1);
	nack_case(&b, NACK(TOO_MANY_BYTES));
	tb_free(&b);
}
END_TEST

START_TEST(nack_empty_batch)
{
	struct tbatch b;

	tb_make(&b, 1, 0, 0);
	nack_case(&b, NACK(EMPTY_BATCH));
	tb_free(&b);
}
END_TEST

START_TEST(nack_malformed_when_digest_is_31_bytes)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.ipb.digest.len = QS_DIGEST_BYTES - 1;
	nack_case(&b, NACK(MALFORMED));
	tb_free(&b);
}
END_TEST

START_TEST(nack_malformed_when_author_is_33_bytes)
{
	struct tbatch b;
	uint8_t author[QS_PUBKEY_BYTES + 1];

	tb_make(&b, 1, 2, 16);
	memcpy(author, cl.sign_pub[1], QS_PUBKEY_BYTES);
	author[QS_PUBKEY_BYTES] = 0;
	b.ipb.author.data = author;
	b.ipb.author.len = sizeof(author);
	nack_case(&b, NACK(MALFORMED));
	tb_free(&b);
}
END_TEST

START_TEST(nack_malformed_when_info_is_missing)
{
	struct tbatch b;

	tb_make(&b, 1, 2, 16);
	b.pb.info = NULL;
	nack_case(&b, NACK(MALFORMED));
	tb_free(&b);
}
END_TEST

START_TEST(nack_over_quota_when_author_disk_quota_is_exceeded)
{
	struct tbatch b;

	/* Under every batch limit, over the author's disk quota. */
	_Static_assert(4 * 15000 <= LIM_BATCH_BYTES && 4 * 15000 > QUOTA_DISK_BYTES,
	               "the over-quota batch must pass the batch limits");
	tb_make(&b, 1, 4, 15000);
	nack_case(&b, NACK(OVER_QUOTA));
	tb_free(&b);
}
END_TEST

START_TEST(nack_equivocation_for_same_batch_id_with_other_payload)
{
	struct conn a, w;
	struct tbatch first, other;
	struct watch eq[] = {{.series = PERSISTED, .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(eq, N_WATCH(eq));
	tb_make(&first, 1, 2, 16);
	send_batch(&a, &first);
	expect_signed(&a, &first);
	watch_check(eq, N_WATCH(eq));
	tb_make(&other, 1, 2, 16);
	other.info.batch_id = first.info.batch_id;
	tb_digest(&other);
	tb_sync(&other);
	nack_and_recover(&a, 1, &w, 2, &other, NACK(EQUIVOCATION));
	tb_free(&first);
	tb_free(&other);
}
END_TEST

/* Regression: gas_bucket_start is not covered by the digest. Re-sending an
 * acked batch with another value must not get a signature over a BatchInfo
 * that was never stored. */
START_TEST(nack_equivocation_for_same_batch_with_other_gas_bucket)
{
	struct conn a, w;
	struct tbatch b;

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	tb_make(&b, 1, 2, 16);
	send_batch(&a, &b);
	expect_signed(&a, &b);
	b.info.gas_bucket_start += 999;
	tb_sync(&b);
	nack_and_recover(&a, 1, &w, 2, &b, NACK(EQUIVOCATION));
	tb_free(&b);
}
END_TEST

/* A peer whose Hello says its clock is an hour ahead (beyond
 * max_clock_skew_ms) is connected, but its batches are refused. */
START_TEST(nack_clock_skew_beyond_tolerance)
{
	struct conn a, w;
	struct tbatch b;
	struct watch ws[] = {
	    {.series = "qsd_batches_rejected_total{reason=\"CLOCK_SKEW\"}", .delta = 1},
	    {.series = PERSISTED, .delta = 1},
	};

	conn_peer(&w, 2);
	hello_clock_offset_us = 3600 * 1000000LL;
	conn_peer(&a, 1);
	hello_clock_offset_us = 0;
	watch_start(ws, N_WATCH(ws));
	tb_make(&b, 1, 2, 16);
	send_batch(&a, &b);
	expect_nack(&a, &b, NACK(CLOCK_SKEW));
	ack_round(&w, 2);
	watch_check(ws, N_WATCH(ws));
	tb_free(&b);
	conn_close(&a);
	conn_close(&w);
}
END_TEST

/* ------------------------------------------------------------------------
 * Duplicates and re-issues.
 */

START_TEST(duplicate_batch_is_signed_twice_and_persisted_once)
{
	struct conn a;
	struct tbatch b;
	struct watch first[] = {
	    {.series = PERSISTED, .delta = 1},
	    {.series = SIGNED, .delta = 1},
	    {.series = "qsd_payload_cache_entries", .delta = 1},
	};
	struct watch again[] = {
	    {.series = PERSISTED, .delta = 0},
	    {.series = SIGNED, .delta = 1},
	    {.series = "qsd_batches_stored", .delta = 0},
	    {.series = "qsd_payload_cache_entries", .delta = 0},
	    {.series = "qsd_payload_cache_bytes", .delta = 0},
	};

	conn_peer(&a, 1);
	tb_make(&b, 1, 2, 16);
	watch_start(first, N_WATCH(first));
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_check(first, N_WATCH(first));
	watch_start(again, N_WATCH(again));
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_check(again, N_WATCH(again));
	tb_free(&b);
	conn_close(&a);
}
END_TEST

START_TEST(reissue_with_later_expiration_is_persisted_again_before_signing)
{
	struct conn a;
	struct tbatch b;
	uint64_t first_expiration;
	struct watch later[] = {{.series = PERSISTED, .delta = 1},
	                        {.series = "qsd_batches_stored", .delta = 0}};
	struct watch earlier[] = {{.series = PERSISTED, .delta = 0}};

	conn_peer(&a, 1);
	tb_make(&b, 1, 2, 16);
	first_expiration = b.info.expiration_us;
	send_batch(&a, &b);
	expect_signed(&a, &b);
	/* The expiration is not covered by the digest: same digest, later
	 * expiration, which must be on disk before it is signed. */
	watch_start(later, N_WATCH(later));
	b.info.expiration_us += 60 * 1000000ull;
	tb_sync(&b);
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_check(later, N_WATCH(later));
	/* The earlier expiration again: the disk holds it long enough. */
	watch_start(earlier, N_WATCH(earlier));
	b.info.expiration_us = first_expiration;
	tb_sync(&b);
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_check(earlier, N_WATCH(earlier));
	tb_free(&b);
	conn_close(&a);
}
END_TEST

/* ------------------------------------------------------------------------
 * Frames and messages that close the connection.
 */

START_TEST(truncated_frame_then_close_leaves_others_unaffected)
{
	struct conn a, w;
	uint8_t part[QS_FRAME_HDR + 10] = {0};
	/* A truncated frame is no frame: qsd counts the end of the connection
	 * (eof; at least, since a connection an earlier test left may end at
	 * the same time) and takes no frame from it. */
	struct watch ws[] = {
	    {.series = DISCONNECTS("eof"), .delta = 1, .at_least = 1},
	    {.series = "qsd_peer_frames_received_total", .delta = 1}, /* the witness's */
	    {.series = PERSISTED, .delta = 1},
	};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	qs_put_be32(part, 100); /* announces 100 bytes, sends 10 */
	memset(part + QS_FRAME_HDR, 0x0a, 10);
	conn_write(&a, part, sizeof(part));
	conn_close(&a);
	ck_assert_double_ge(wait_metric(DISCONNECTS("eof"), ws[0].before + 1), ws[0].before + 1);
	witness_ok(&w, 2);
	watch_check(ws, N_WATCH(ws));
}
END_TEST

START_TEST(oversized_frame_closes_connection)
{
	struct conn a, w;
	uint8_t hdr[QS_FRAME_HDR + 16] = {0};
	struct watch ws[] = {{.series = DISCONNECTS("oversized_frame"), .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	qs_put_be32(hdr, LIM_FRAME_BYTES + 1);
	conn_write(&a, hdr, sizeof(hdr));
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(undecodable_protobuf_closes_connection)
{
	struct conn a, w;
	/* Field 2 (batch_msg), length 80, but only 3 bytes follow. */
	static const uint8_t garbage[] = {0x12, 0x50, 0x01, 0x02, 0x03};
	struct watch ws[] = {{.series = DISCONNECTS("undecodable"), .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_frame(&a, garbage, sizeof(garbage));
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

START_TEST(frame_over_decode_budget_closes_connection)
{
	struct conn a, w;
	/* A BatchMsg of 100000 empty batches: 2 bytes each on the wire, tens
	 * of bytes each once decoded, far over the decode budget, while the
	 * frame is under the frame limit. */
	const size_t n = 100000;
	size_t len = 0;
	uint8_t *body = malloc(16 + 2 * n);
	struct watch ws[] = {
	    {.series = DISCONNECTS("undecodable"), .delta = 1},
	    {.series = PROTO_ERRORS("too_many_batches"), .delta = 0},
	};

	ck_assert_ptr_nonnull(body);
	body[len++] = 0x12;
	len += put_varint(body + len, 2 * n);
	for (size_t i = 0; i < n; i++) {
		body[len++] = 0x0a;
		body[len++] = 0x00;
	}
	ck_assert_uint_le(len, LIM_FRAME_BYTES);
	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_frame(&a, body, len);
	free(body);
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(empty_peer_message_closes_connection)
{
	struct conn a, w;
	struct watch ws[] = {{.series = DISCONNECTS("unexpected_message"), .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_frame(&a, NULL, 0); /* a PeerMessage with no field set */
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(peer_message_of_unknown_type_closes_connection)
{
	struct conn a, w;
	/* Field 99 (varint 1): a message type from a newer protocol. protobuf-c
	 * keeps it as an unknown field, so the oneof is empty. */
	static const uint8_t unknown[] = {0x98, 0x06, 0x01};
	struct watch ws[] = {{.series = DISCONNECTS("unexpected_message"), .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_frame(&a, unknown, sizeof(unknown));
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(too_many_batches_in_one_message_closes_connection)
{
	struct conn a, w;
	struct tbatch b[LIM_MSG_BATCHES + 1];
	struct tbatch *list[LIM_MSG_BATCHES + 1];
	struct watch ws[] = {
	    {.series = PROTO_ERRORS("too_many_batches"), .delta = 1},
	    {.series = DISCONNECTS("protocol_violation"), .delta = 1},
	    {.series = PERSISTED, .delta = 1}, /* the witness's only */
	};

	for (size_t i = 0; i < LIM_MSG_BATCHES + 1; i++) {
		tb_make(&b[i], 1, 1, 8);
		list[i] = &b[i];
	}
	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_batches(&a, list, LIM_MSG_BATCHES + 1);
	expect_closed(&a);
	conn_close(&a);
	witness_ok(&w, 2);
	watch_check(ws, N_WATCH(ws));
	for (size_t i = 0; i < LIM_MSG_BATCHES + 1; i++)
		tb_free(&b[i]);
}
END_TEST

START_TEST(message_over_byte_limit_closes_connection)
{
	struct conn a, w;
	struct tbatch b;
	struct watch ws[] = {
	    {.series = PROTO_ERRORS("message_too_large"), .delta = 1},
	    {.series = DISCONNECTS("protocol_violation"), .delta = 1},
	};

	/* Over limits.msg_max_bytes, under limits.frame_max_bytes. */
	_Static_assert(5 * 60000 > LIM_MSG_BYTES && 5 * 60000 + 1024 < LIM_FRAME_BYTES,
	               "the message must fit the frame and not the message limit");
	tb_make(&b, 1, 5, 60000);
	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_batch(&a, &b);
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
	tb_free(&b);
}
END_TEST

START_TEST(batch_request_with_malformed_digest_closes_connection)
{
	struct conn a, w;
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;
	uint8_t digest[QS_DIGEST_BYTES - 1] = {1};
	struct watch ws[] = {
	    {.series = PROTO_ERRORS("malformed_request"), .delta = 1},
	    {.series = DISCONNECTS("protocol_violation"), .delta = 1},
	};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	req.request_id = 9;
	req.digest.data = digest;
	req.digest.len = sizeof(digest);
	pm.msg_case = PM_CASE(BATCH_REQUEST);
	pm.batch_request = &req;
	send_pm(&a, &pm);
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(unsolicited_answers_and_proofs_are_ignored_and_counted)
{
	struct conn a, w;
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__SignedBatchInfoMsg sm = QUORUMSTORE__V1__SIGNED_BATCH_INFO_MSG__INIT;
	Quorumstore__V1__SignedBatchInfo sbi = QUORUMSTORE__V1__SIGNED_BATCH_INFO__INIT;
	Quorumstore__V1__SignedBatchInfo *sbis[1] = {&sbi};
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__ProofMsg proof = QUORUMSTORE__V1__PROOF_MSG__INIT;
	Quorumstore__V1__ProofOfStore pos = QUORUMSTORE__V1__PROOF_OF_STORE__INIT;
	Quorumstore__V1__ProofOfStore *poses[1] = {&pos};
	Quorumstore__V1__BatchResponse resp = QUORUMSTORE__V1__BATCH_RESPONSE__INIT;
	struct tbatch b;
	struct watch ws[] = {
	    /* A signature for a batch this node is not waiting on. */
	    {.series = "qsd_signatures_received_total{result=\"not_pending\"}", .delta = 1},
	    {.series = "qsd_own_batches_nacked_total", .delta = 1},
	    /* A proof without a BatchInfo. */
	    {.series = "qsd_proofs_received_total{result=\"malformed\"}", .delta = 1},
	    /* An answer to no fetch of this node's: the fetcher counts it. */
	    {.series = "qsd_fetch_responses_total{result=\"unsolicited\"}", .delta = 1},
	    {.series = IGNORED("batch_response"), .delta = 0},
	};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	tb_make(&b, 1, 1, 8);
	sbi.info = &b.ipb;
	sm.n_infos = 1;
	sm.infos = sbis;
	pm.msg_case = PM_CASE(SIGNED_BATCH_INFO_MSG);
	pm.signed_batch_info_msg = &sm;
	send_pm(&a, &pm);
	pm.msg_case = PM_CASE(BATCH_NACK);
	pm.batch_nack = &nack;
	send_pm(&a, &pm);
	proof.n_proofs = 1;
	proof.proofs = poses;
	pm.msg_case = PM_CASE(PROOF_MSG);
	pm.proof_msg = &proof;
	send_pm(&a, &pm);
	pm.msg_case = PM_CASE(BATCH_RESPONSE);
	pm.batch_response = &resp;
	send_pm(&a, &pm);
	/* The connection stays usable, and nothing answered those. */
	ack_round(&a, 1);
	watch_check(ws, N_WATCH(ws));
	tb_free(&b);
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * Handshake and Hello.
 */

START_TEST(unknown_tls_key_is_refused_in_handshake)
{
	struct conn a, w;
	EVP_PKEY *stranger = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct watch ws[] = {{.series = HS_FAILURES("unknown_key"), .delta = 1}};

	ck_assert_ptr_nonnull(stranger);
	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	/* A TLS 1.3 client may see the refusal only on its first read. */
	if (conn_tls(&a, client_ctx(stranger))) {
		send_hello(&a, cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id,
		           QS_PROTOCOL_VERSION, cl.cfg->epoch);
		expect_closed(&a);
	}
	EVP_PKEY_free(stranger);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(client_without_certificate_is_refused_in_handshake)
{
	struct conn a, w;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct watch ws[] = {{.series = HS_FAILURES("no_certificate"), .delta = 1}};

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	if (conn_tls(&a, ctx)) {
		send_hello(&a, cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id,
		           QS_PROTOCOL_VERSION, cl.cfg->epoch);
		expect_closed(&a);
	}
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(own_network_key_is_refused_in_handshake)
{
	struct conn a, w;
	struct watch ws[] = {{.series = HS_FAILURES("unknown_key"), .delta = 1}};

	/* v0's own key is pinned in the config, but qsd does not talk to
	 * itself. */
	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	if (conn_tls(&a, client_ctx(cl.net_key[0]))) {
		send_hello(&a, cl.sign_pub[0], QS_PUBKEY_BYTES, cl.cfg->chain_id,
		           QS_PROTOCOL_VERSION, cl.cfg->epoch);
		expect_closed(&a);
	}
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

START_TEST(plain_tcp_garbage_is_refused_in_handshake)
{
	struct conn w;
	struct watch ws[] = {{.series = HS_FAILURES("handshake_error"), .delta = 1}};
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
	char buf[256];
	uint64_t deadline;
	int fd;

	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	fd = tcp_connect(cl.base_port);
	ck_assert_int_eq(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
	/* qsd drops the connection (perhaps after an alert), sending nothing
	 * of the protocol. */
	deadline = qs_test_now_ms() + IO_TIMEOUT_MS;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			break;
		ck_assert_msg(qs_test_now_ms() < deadline,
		              "qsd did not close a non-TLS connection");
	}
	close(fd);
	watch_check(ws, N_WATCH(ws));
	witness_ok(&w, 2);
}
END_TEST

/* A client context presenting a self-signed ECDSA P-256 certificate. */
static SSL_CTX *
ecdsa_client_ctx(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509 *cert = X509_new();
	X509_NAME *name;

	ck_assert(key && ctx && cert);
	ck_assert_int_eq(X509_set_version(cert, X509_VERSION_3), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(cert), 1), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(cert), -3600));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(cert), 86400));
	name = X509_get_subject_name(cert);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)"qsd", -1, -1, 0),
	                 1);
	ck_assert_int_eq(X509_set_issuer_name(cert, name), 1);
	ck_assert_int_eq(X509_set_pubkey(cert, key), 1);
	ck_assert_int_gt(X509_sign(cert, key, EVP_sha256()), 0);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_use_certificate(ctx, cert), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, key), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ctx;
}

START_TEST(non_ed25519_certificate_is_refused_in_handshake)
{
	struct conn a, w;
	struct watch ws[] = {{.series = HS_FAILURES("not_ed25519"), .delta = 1}};

	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	if (conn_tls(&a, ecdsa_client_ctx())) {
		send_hello(&a, cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id,
		           QS_PROTOCOL_VERSION, cl.cfg->epoch);
		expect_closed(&a);
	}
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

/* Connect as v1 with a valid TLS identity, send the given Hello, expect the
 * connection closed and counted as hello_invalid. */
static void
bad_hello_case(const uint8_t *author, size_t author_len, uint32_t chain_id, uint32_t version)
{
	struct conn a, w;
	struct watch ws[] = {{.series = HS_FAILURES("hello_invalid"), .delta = 1}};

	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	conn_open_as(&a, 1);
	send_hello(&a, author, author_len, chain_id, version, cl.cfg->epoch);
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}

START_TEST(hello_with_another_validators_author_closes_connection)
{
	bad_hello_case(cl.sign_pub[2], QS_PUBKEY_BYTES, cl.cfg->chain_id, QS_PROTOCOL_VERSION);
}
END_TEST

START_TEST(hello_with_short_author_closes_connection)
{
	bad_hello_case(cl.sign_pub[1], QS_PUBKEY_BYTES - 1, cl.cfg->chain_id, QS_PROTOCOL_VERSION);
}
END_TEST

START_TEST(hello_with_wrong_chain_id_closes_connection)
{
	bad_hello_case(cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id + 1, QS_PROTOCOL_VERSION);
}
END_TEST

START_TEST(hello_with_wrong_protocol_version_closes_connection)
{
	bad_hello_case(cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id, QS_PROTOCOL_VERSION + 1);
}
END_TEST

START_TEST(batch_msg_before_hello_closes_connection)
{
	struct conn a, w;
	struct tbatch b;
	struct watch ws[] = {
	    {.series = HS_FAILURES("hello_invalid"), .delta = 1},
	    {.series = PERSISTED, .delta = 1}, /* the witness's only */
	};

	tb_make(&b, 1, 2, 16);
	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	conn_open_as(&a, 1);
	send_batch(&a, &b);
	expect_closed(&a);
	conn_close(&a);
	witness_ok(&w, 2);
	watch_check(ws, N_WATCH(ws));
	tb_free(&b);
}
END_TEST

START_TEST(second_hello_closes_connection)
{
	struct conn a, w;
	struct watch ws[] = {{.series = DISCONNECTS("unexpected_message"), .delta = 1}};

	conn_peer(&w, 2);
	conn_peer(&a, 1);
	watch_start(ws, N_WATCH(ws));
	send_hello(&a, cl.sign_pub[1], QS_PUBKEY_BYTES, cl.cfg->chain_id, QS_PROTOCOL_VERSION,
	           cl.cfg->epoch);
	expect_closed(&a);
	watch_check(ws, N_WATCH(ws));
	conn_close(&a);
	witness_ok(&w, 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * BatchRequest.
 */

static void
send_batch_request(struct conn *c, uint64_t request_id, const uint8_t *digest)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;

	req.request_id = request_id;
	req.digest.data = (uint8_t *)digest;
	req.digest.len = QS_DIGEST_BYTES;
	pm.msg_case = PM_CASE(BATCH_REQUEST);
	pm.batch_request = &req;
	send_pm(c, &pm);
}

START_TEST(batch_request_for_acked_digest_returns_exact_bytes)
{
	struct conn a, w;
	struct tbatch b;
	Quorumstore__V1__PeerMessage *m;
	Quorumstore__V1__BatchResponse *r;
	struct qs_batch_info got;
	uint8_t digest[QS_DIGEST_BYTES];
	uint64_t id = qs_test_rand64();
	struct watch ws[] = {{.series = REQUESTS("served"), .delta = 1}};

	conn_peer(&a, 1);
	conn_peer(&w, 2);
	/* Transactions of different lengths, one empty. */
	tb_make(&b, 1, 3, 24);
	b.txns[1].len = 0;
	b.txns[2].len = 5;
	b.info.num_bytes = 29;
	tb_digest(&b);
	tb_sync(&b);
	send_batch(&a, &b);
	expect_signed(&a, &b);
	watch_start(ws, N_WATCH(ws));
	/* Another validator fetches it. */
	send_batch_request(&w, id, b.info.digest);
	m = next_msg(&w, "the BatchResponse");
	ck_assert_msg(m->msg_case == PM_CASE(BATCH_RESPONSE), "got %s", msg_name(m));
	r = m->batch_response;
	ck_assert_uint_eq(r->request_id, id);
	ck_assert_int_eq(r->result_case, QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH);
	ck_assert_int_eq(qs_batch_info_from_pb(r->batch->info, &got), 0);
	assert_info_eq(&got, &b.info);
	ck_assert_uint_eq(r->batch->n_transactions, b.n_txns);
	for (size_t i = 0; i < b.n_txns; i++) {
		ck_assert_uint_eq(r->batch->transactions[i].len, b.txns[i].len);
		if (b.txns[i].len)
			ck_assert_mem_eq(r->batch->transactions[i].data, b.txns[i].data,
			                 b.txns[i].len);
	}
	ck_assert_int_eq(qs_codec_batch_digest(cl.cfg->chain_id, got.author, got.epoch,
	                                       got.batch_id, r->batch->transactions,
	                                       r->batch->n_transactions, digest),
	                 0);
	ck_assert_mem_eq(digest, b.info.digest, QS_DIGEST_BYTES);
	msg_free(m);
	watch_check(ws, N_WATCH(ws));
	tb_free(&b);
	conn_close(&a);
	conn_close(&w);
}
END_TEST

START_TEST(batch_request_for_unknown_digest_returns_not_found)
{
	struct conn w;
	Quorumstore__V1__PeerMessage *m;
	Quorumstore__V1__BatchResponse *r;
	uint8_t digest[QS_DIGEST_BYTES];
	uint64_t id = qs_test_rand64();
	struct watch ws[] = {{.series = REQUESTS("not_found"), .delta = 1}};

	ck_assert_int_eq(RAND_bytes(digest, sizeof(digest)), 1);
	conn_peer(&w, 2);
	watch_start(ws, N_WATCH(ws));
	send_batch_request(&w, id, digest);
	m = next_msg(&w, "the BatchResponse");
	ck_assert_msg(m->msg_case == PM_CASE(BATCH_RESPONSE), "got %s", msg_name(m));
	r = m->batch_response;
	ck_assert_uint_eq(r->request_id, id);
	ck_assert_int_eq(r->result_case, QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND);
	ck_assert_uint_eq(r->not_found->digest.len, QS_DIGEST_BYTES);
	ck_assert_mem_eq(r->not_found->digest.data, digest, QS_DIGEST_BYTES);
	msg_free(m);
	watch_check(ws, N_WATCH(ws));
	/* The connection stays usable. */
	ack_round(&w, 2);
	conn_close(&w);
}
END_TEST

/* ------------------------------------------------------------------------
 * The cluster: set up in main() before the tests fork, torn down after.
 */

/*
 * A random base port whose peer and metrics ports for v0 are free. The peer
 * ports of v1..v3 stay bound (not listening) for the whole run, so qsd's
 * dials to them are refused at once and nobody else can answer them.
 */
static int
pick_ports(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		/* Below the ephemeral range (32768+), apart from the shell tests. */
		int base = 26200 + (int)(qs_test_rand64() % 6000);
		int own = qs_test_bind_port(base), met = qs_test_bind_port(base + 100);
		int ok = own >= 0 && met >= 0;

		for (int i = 1; i < N_VALIDATORS && ok; i++) {
			cl.placeholder[i] = qs_test_bind_port(base + i);
			ok = cl.placeholder[i] >= 0;
		}
		if (own >= 0)
			close(own);
		if (met >= 0)
			close(met);
		if (ok) {
			cl.base_port = base;
			return 0;
		}
		for (int i = 1; i < N_VALIDATORS; i++) {
			if (cl.placeholder[i] >= 0)
				close(cl.placeholder[i]);
			cl.placeholder[i] = -1;
		}
	}
	return -1;
}

static int
write_config(void)
{
	FILE *f = fopen(cl.node.cfg, "a");

	if (!f)
		return -1;
	fprintf(f,
	        "# added by tests/check_ingest.c\n"
	        "max_batch_lifetime_ms: %d\n"
	        "limits:\n"
	        "  batch_max_txns: %d\n"
	        "  batch_max_bytes: %d\n"
	        "  msg_max_batches: %d\n"
	        "  msg_max_bytes: %d\n"
	        "  frame_max_bytes: %d\n"
	        "quotas:\n"
	        "  author_disk_bytes: %d\n"
	        "storage:\n"
	        "  free_space_watermark_bytes: 0\n"
	        "  db_write_buffer_bytes: 4MiB\n"
	        "  db_block_cache_bytes: 4MiB\n"
	        "  db_max_wal_bytes: 16MiB\n",
	        LIFETIME_MS, LIM_BATCH_TXNS, LIM_BATCH_BYTES, LIM_MSG_BATCHES, LIM_MSG_BYTES,
	        LIM_FRAME_BYTES, QUOTA_DISK_BYTES);
	return fclose(f) == 0 ? 0 : -1;
}

static int
load_keys(void)
{
	char path[700], err[512];

	for (int i = 0; i < N_VALIDATORS; i++) {
		snprintf(path, sizeof(path), "%s/c/v%d/keys/network.key", cl.dir, i);
		if (qs_keys_load(path, &cl.net_key[i], cl.net_pub[i], err, sizeof(err)) != 0)
			goto fail;
		snprintf(path, sizeof(path), "%s/c/v%d/keys/signing.key", cl.dir, i);
		if (qs_keys_load(path, &cl.sign_key[i], cl.sign_pub[i], err, sizeof(err)) != 0)
			goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "check_ingest: %s\n", err);
	return -1;
}

static int
cluster_up(const char *argv0)
{
	char cdir[300], log[300], err[512];

	qs_test_build_dir(argv0, cl.build, sizeof(cl.build));
	if (access("tools/mkcluster", X_OK) != 0) {
		fprintf(stderr, "check_ingest: run me from the repository root\n");
		return -1;
	}
	/* No ck_assert out here: Check has no test to report it to. */
	snprintf(cl.dir, sizeof(cl.dir), "%s/qsd-ingest-XXXXXX",
	         getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(cl.dir)) {
		fprintf(stderr, "check_ingest: mkdtemp %s: %s\n", cl.dir, strerror(errno));
		cl.dir[0] = '\0';
		return -1;
	}
	if (pick_ports() != 0) {
		fprintf(stderr, "check_ingest: no free ports\n");
		return -1;
	}
	snprintf(cdir, sizeof(cdir), "%s/c", cl.dir);
	snprintf(log, sizeof(log), "%s/qsd.log", cl.dir);
	qs_test_node_init(&cl.node, cl.build, cdir, 0, cl.base_port, log);
	if (qs_test_mkcluster(cl.build, N_VALIDATORS, cdir, cl.base_port) != 0)
		return -1;
	if (write_config() != 0) {
		fprintf(stderr, "check_ingest: cannot write %s\n", cl.node.cfg);
		return -1;
	}
	if (qs_config_load(cl.node.cfg, &cl.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "check_ingest: %s\n", err);
		return -1;
	}
	if (cl.cfg->limits.frame_max_bytes != LIM_FRAME_BYTES ||
	    cl.cfg->max_batch_lifetime_us != LIFETIME_MS * 1000ull ||
	    cl.cfg->n_validators != N_VALIDATORS) {
		fprintf(stderr, "check_ingest: %s does not say what the tests expect\n",
		        cl.node.cfg);
		return -1;
	}
	if (load_keys() != 0)
		return -1;
	return qs_test_node_start(&cl.node);
}

/* Stop qsd with SIGTERM; it must exit 0 after all the abuse. Returns 0 when
 * it did. */
static int
cluster_down(void)
{
	int rc = 0, wstatus;

	if (cl.node.pid > 0) {
		wstatus = qs_test_node_stop(&cl.node, SIGTERM);
		if (wstatus < 0) {
			fprintf(stderr, "check_ingest: qsd did not stop on SIGTERM\n");
			rc = -1;
		} else if (!qs_test_exited_ok(wstatus)) {
			fprintf(stderr, "check_ingest: qsd exited with status 0x%x after SIGTERM\n",
			        wstatus);
			rc = -1;
		}
	}
	for (int i = 0; i < N_VALIDATORS; i++) {
		if (cl.placeholder[i] >= 0)
			close(cl.placeholder[i]);
		cl.placeholder[i] = -1;
		EVP_PKEY_free(cl.net_key[i]);
		EVP_PKEY_free(cl.sign_key[i]);
		cl.net_key[i] = cl.sign_key[i] = NULL;
	}
	qs_config_free(cl.cfg);
	cl.cfg = NULL;
	return rc;
}

static Suite *
ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	TCase *good = tcase_create("good");
	TCase *nack = tcase_create("nack");
	TCase *dup = tcase_create("duplicate");
	TCase *close_tc = tcase_create("close");
	TCase *hs = tcase_create("handshake");
	TCase *req = tcase_create("request");
	TCase *all[] = {good, nack, dup, close_tc, hs, req};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_set_timeout(all[i], TEST_TIMEOUT_S);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(good, good_batch_is_signed_by_v0_after_it_is_persisted);
	tcase_add_test(good, one_message_mixing_good_and_bad_batches_answers_each_once);

	tcase_add_test(nack, nack_wrong_author_for_batch_of_another_validator);
	tcase_add_test(nack, nack_bad_digest_when_digest_does_not_cover_payload);
	tcase_add_test(nack, nack_expired_when_expiration_is_past);
	tcase_add_test(nack, nack_beyond_lifetime_when_expiration_is_too_far);
	tcase_add_test(nack, nack_wrong_epoch);
	tcase_add_test(nack, nack_count_mismatch_when_num_txns_is_wrong);
	tcase_add_test(nack, nack_count_mismatch_when_num_bytes_is_wrong);
	tcase_add_test(nack, nack_too_many_txns_over_batch_limit);
	tcase_add_test(nack, nack_too_many_bytes_over_batch_limit);
	tcase_add_test(nack, nack_empty_batch);
	tcase_add_test(nack, nack_malformed_when_digest_is_31_bytes);
	tcase_add_test(nack, nack_malformed_when_author_is_33_bytes);
	tcase_add_test(nack, nack_malformed_when_info_is_missing);
	tcase_add_test(nack, nack_over_quota_when_author_disk_quota_is_exceeded);
	tcase_add_test(nack, nack_equivocation_for_same_batch_id_with_other_payload);
	tcase_add_test(nack, nack_equivocation_for_same_batch_with_other_gas_bucket);
	tcase_add_test(nack, nack_clock_skew_beyond_tolerance);

	tcase_add_test(dup, duplicate_batch_is_signed_twice_and_persisted_once);
	tcase_add_test(dup, reissue_with_later_expiration_is_persisted_again_before_signing);

	tcase_add_test(close_tc, truncated_frame_then_close_leaves_others_unaffected);
	tcase_add_test(close_tc, oversized_frame_closes_connection);
	tcase_add_test(close_tc, undecodable_protobuf_closes_connection);
	tcase_add_test(close_tc, frame_over_decode_budget_closes_connection);
	tcase_add_test(close_tc, empty_peer_message_closes_connection);
	tcase_add_test(close_tc, peer_message_of_unknown_type_closes_connection);
	tcase_add_test(close_tc, too_many_batches_in_one_message_closes_connection);
	tcase_add_test(close_tc, message_over_byte_limit_closes_connection);
	tcase_add_test(close_tc, batch_request_with_malformed_digest_closes_connection);
	tcase_add_test(close_tc, unsolicited_answers_and_proofs_are_ignored_and_counted);

	tcase_add_test(hs, unknown_tls_key_is_refused_in_handshake);
	tcase_add_test(hs, client_without_certificate_is_refused_in_handshake);
	tcase_add_test(hs, non_ed25519_certificate_is_refused_in_handshake);
	tcase_add_test(hs, own_network_key_is_refused_in_handshake);
	tcase_add_test(hs, plain_tcp_garbage_is_refused_in_handshake);
	tcase_add_test(hs, hello_with_another_validators_author_closes_connection);
	tcase_add_test(hs, hello_with_short_author_closes_connection);
	tcase_add_test(hs, hello_with_wrong_chain_id_closes_connection);
	tcase_add_test(hs, hello_with_wrong_protocol_version_closes_connection);
	tcase_add_test(hs, batch_msg_before_hello_closes_connection);
	tcase_add_test(hs, second_hello_closes_connection);

	tcase_add_test(req, batch_request_for_acked_digest_returns_exact_bytes);
	tcase_add_test(req, batch_request_for_unknown_digest_returns_not_found);
	return s;
}

int
main(int argc, char **argv)
{
	SRunner *sr;
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	if (cluster_up(argv[0]) != 0) {
		failed = 1;
	} else {
		sr = srunner_create(ingest_suite());
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	if (cluster_down() != 0)
		failed++;
	if (failed && cl.node.log[0])
		qs_test_dump_log(cl.node.log);
	if (cl.dir[0]) {
		if (getenv("QS_TEST_KEEP"))
			fprintf(stderr, "check_ingest: kept %s\n", cl.dir);
		else
			qs_test_rmtree(cl.dir);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
