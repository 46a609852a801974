/*
 * Tests of net/peer (and net/tls): real TCP + TLS 1.3 connections on
 * 127.0.0.1 between qs_peers instances sharing one event_base, and a raw
 * TLS client on its own thread that misbehaves on purpose.
 *
 * Each test runs in its own forked child with a fresh temporary directory
 * holding the validators' key files (made with qs_keys_generate) and
 * configs parsed with qs_config_parse().
 */
#include "config/config.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"
#include "net/peer.h"
#include "net/tls.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define N        3
#define MAX_MSGS 64
#define CHAIN_ID 7
#define EPOCH    3
#define WAIT_MS  8000 /* most a condition may take */

struct node {
	int idx;
	struct qs_config *cfg;
	EVP_PKEY *nk;
	struct qs_metrics *metrics;
	struct qs_peers *peers;
	int connected[N]; /* as on_state said last */
	int ups[N];
	int downs[N];
	int n_msgs;
	int from[MAX_MSGS];
	uint64_t ids[MAX_MSGS];
	int pause_after;   /* set_reading(0) once this many arrived; 0: never */
	bool close_on_msg; /* qs_peers_close() the sender from the handler */
};

static char tmpdir[256];
static char nk_path[N][PATH_MAX];
static char sk_path[N][PATH_MAX];
static uint8_t nk_pub[N][QS_KEY_BYTES];
static uint8_t sk_pub[N][QS_KEY_BYTES];
static uint16_t ports[N];
static struct event_base *base;
static struct event *tick;
static struct node nodes[N];

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static uint16_t
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void
setup(void)
{
	struct timeval tv = {0, 10000};

	signal(SIGPIPE, SIG_IGN);
	qs_log_set_level(getenv("QS_TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
	qs_test_mkdtemp(tmpdir, sizeof(tmpdir));
	for (int i = 0; i < N; i++) {
		snprintf(nk_path[i], PATH_MAX, "%s/nk%d.key", tmpdir, i);
		snprintf(sk_path[i], PATH_MAX, "%s/sk%d.key", tmpdir, i);
		ck_assert_int_eq(qs_keys_generate(nk_path[i], nk_pub[i]), 0);
		ck_assert_int_eq(qs_keys_generate(sk_path[i], sk_pub[i]), 0);
		do {
			ports[i] = free_port();
		} while (i > 0 && (ports[i] == ports[0] || ports[i] == ports[i - 1]));
	}
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	/* Wakes the loop regularly so run_until() can check its deadline. */
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	ck_assert_int_eq(event_add(tick, &tv), 0);
	memset(nodes, 0, sizeof(nodes));
}

static void
stop_node(int i)
{
	struct node *n = &nodes[i];

	qs_peers_free(n->peers);
	qs_metrics_free(n->metrics);
	EVP_PKEY_free(n->nk);
	qs_config_free(n->cfg);
	memset(n, 0, sizeof(*n));
}

static void
teardown(void)
{
	for (int i = 0; i < N; i++)
		stop_node(i);
	event_free(tick);
	event_base_free(base);
	qs_test_rmtree(tmpdir);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until pred(arg) holds or `ms` passed; returns pred(arg). */
static bool
run_until(bool (*pred)(void *), void *arg, uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (!pred(arg) && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	return pred(arg);
}

static bool
never(void *arg)
{
	return false;
}

static void
run_for(uint64_t ms)
{
	run_until(never, NULL, ms);
}

/* The config of node `self` with limits.frame_max_bytes `frame_max`. */
static struct qs_config *
make_config(int self, uint64_t frame_max)
{
	char yaml[8192], hex_nk[2 * QS_KEY_BYTES + 1], hex_sk[2 * QS_KEY_BYTES + 1];
	char errbuf[QS_CONFIG_ERR_MAX] = "";
	struct qs_config *cfg = NULL;
	size_t n;
	int rc;

	n = (size_t)snprintf(yaml, sizeof(yaml),
	                     "chain_id: %d\nepoch: %d\nlisten: 127.0.0.1:%u\ndata_dir: %s/data\n"
	                     "network_key: %s\nsigning_key: %s\nlimits:\n"
	                     "  batch_max_bytes: %" PRIu64 "\n  msg_max_bytes: %" PRIu64 "\n"
	                     "  frame_max_bytes: %" PRIu64 "\nvalidators:\n",
	                     CHAIN_ID, EPOCH, ports[self], tmpdir, nk_path[self], sk_path[self],
	                     frame_max / 2, frame_max / 2, frame_max);
	for (int i = 0; i < N; i++) {
		qs_hex_encode(nk_pub[i], QS_KEY_BYTES, hex_nk);
		qs_hex_encode(sk_pub[i], QS_KEY_BYTES, hex_sk);
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
		                      "  - name: v%d\n    address: 127.0.0.1:%u\n"
		                      "    network_key: %s\n    signing_key: %s\n"
		                      "    voting_power: 1\n",
		                      i, ports[i], hex_nk, hex_sk);
	}
	ck_assert_uint_lt(n, sizeof(yaml));
	rc = qs_config_parse("peer.yaml", yaml, n, &cfg, errbuf, sizeof(errbuf));
	ck_assert_msg(rc == 0, "config: %s", errbuf);
	return cfg;
}

static void
on_message(void *arg, int peer, Quorumstore__V1__PeerMessage *msg)
{
	struct node *n = arg;
	uint64_t id = 0;

	if (msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST)
		id = msg->batch_request->request_id;
	else if (msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK)
		id = msg->batch_nack->batch_id;
	if (n->n_msgs < MAX_MSGS) {
		n->from[n->n_msgs] = peer;
		n->ids[n->n_msgs] = id;
	}
	n->n_msgs++;
	qs_frame_msg_free(&msg->base);
	if (n->pause_after != 0 && n->n_msgs == n->pause_after)
		qs_peers_set_reading(n->peers, 0);
	if (n->close_on_msg)
		qs_peers_close(n->peers, peer, "the handler closes it");
}

static void
on_state(void *arg, int peer, int connected)
{
	struct node *n = arg;

	ck_assert_int_ge(peer, 0);
	ck_assert_int_lt(peer, N);
	ck_assert_int_ne(peer, n->idx);
	n->connected[peer] = connected;
	if (connected)
		n->ups[peer]++;
	else
		n->downs[peer]++;
}

static const struct qs_peers_handlers handlers = {
    .on_message = on_message,
    .on_state = on_state,
};

static void
start_node_limit(int i, uint64_t frame_max)
{
	struct node *n = &nodes[i];
	char errbuf[256] = "";
	uint8_t pub[QS_KEY_BYTES];
	int rc;

	memset(n, 0, sizeof(*n));
	n->idx = i;
	n->cfg = make_config(i, frame_max);
	ck_assert_int_eq(qs_keys_load(nk_path[i], &n->nk, pub, errbuf, sizeof(errbuf)), 0);
	n->metrics = qs_metrics_new();
	ck_assert_ptr_nonnull(n->metrics);
	rc = qs_peers_start(base, n->cfg, i, n->nk, sk_pub[i], &handlers, n, n->metrics, &n->peers,
	                    errbuf, sizeof(errbuf));
	ck_assert_msg(rc == 0, "qs_peers_start: %d %s", rc, errbuf);
}

static void
start_node(int i)
{
	start_node_limit(i, 4 * 1024 * 1024 + 64 * 1024);
}

/* The value of `series` (e.g. `qsd_peer_connected{peer="v1"}`) in `i`'s
 * registry, or -1 if absent. */
static long long
metric(int i, const char *series)
{
	char *text = NULL, *line;
	size_t len, slen = strlen(series);
	long long v = -1;

	ck_assert_int_eq(qs_metrics_render(nodes[i].metrics, &text, &len), 0);
	for (line = text; line != NULL; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, series, slen) == 0 && line[slen] == ' ') {
			v = strtoll(line + slen + 1, NULL, 10);
			break;
		}
	}
	free(text);
	return v;
}

struct metric_wait {
	int node;
	const char *series;
	long long value;
};

static bool
metric_reached(void *arg)
{
	struct metric_wait *w = arg;

	return metric(w->node, w->series) >= w->value;
}

static bool
wait_metric(int node, const char *series, long long value)
{
	struct metric_wait w = {node, series, value};

	return run_until(metric_reached, &w, WAIT_MS);
}

struct pair {
	int a, b;
};

static bool
pair_connected(void *arg)
{
	struct pair *pr = arg;

	return nodes[pr->a].connected[pr->b] && nodes[pr->b].connected[pr->a];
}

static void
wait_connected(int a, int b)
{
	struct pair pr = {a, b};

	ck_assert_msg(run_until(pair_connected, &pr, WAIT_MS), "v%d and v%d did not connect", a, b);
}

static bool
msgs_reached(void *arg)
{
	struct metric_wait *w = arg;

	return nodes[w->node].n_msgs >= w->value;
}

static bool
wait_msgs(int node, int count)
{
	struct metric_wait w = {node, NULL, count};

	return run_until(msgs_reached, &w, WAIT_MS);
}

/* *m: a BatchRequest `id` (in *req) for an all-zero digest. */
static void
make_request(Quorumstore__V1__BatchRequest *req, Quorumstore__V1__PeerMessage *m, uint64_t id)
{
	static uint8_t digest[QS_DIGEST_BYTES];

	quorumstore__v1__batch_request__init(req);
	quorumstore__v1__peer_message__init(m);
	req->request_id = id;
	req->digest.data = digest;
	req->digest.len = sizeof(digest);
	m->msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST;
	m->batch_request = req;
}

static void
send_request(int from, int to, uint64_t id)
{
	Quorumstore__V1__BatchRequest req;
	Quorumstore__V1__PeerMessage m;

	make_request(&req, &m, id);
	ck_assert_int_eq(qs_peers_send(nodes[from].peers, to, &m), 0);
}

/* ---- a raw TLS client on its own thread ---- */

struct client {
	EVP_PKEY *key; /* certificate key; NULL: no certificate */
	X509 *cert;    /* with `key`: present this instead of our own */
	uint16_t port;
	struct evbuffer *out; /* sent once the handshake is done */
	pthread_t thread;
	atomic_int done;
	atomic_int handshake_ok;
	atomic_int closed;      /* the server closed or refused the connection */
	atomic_size_t received; /* bytes read before that */
};

static int
accept_any(void *arg, const uint8_t key[QS_TLS_KEY_BYTES])
{
	return 0;
}

static SSL_CTX *
client_ctx(struct client *cl)
{
	SSL_CTX *ctx = NULL;
	char err[256];

	if (cl->key != NULL && cl->cert == NULL) {
		if (qs_tls_ctx_new(cl->key, 0, accept_any, NULL, &ctx, err, sizeof(err)) != 0)
			return NULL;
		return ctx;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cl->cert != NULL && (SSL_CTX_use_certificate(ctx, cl->cert) != 1 ||
	                         SSL_CTX_use_PrivateKey(ctx, cl->key) != 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(cl->port)};
	struct timeval tv = {5, 0};
	SSL_CTX *ctx = client_ctx(cl);
	SSL *ssl = NULL;
	char buf[4096];
	size_t len;
	int fd = -1, r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ctx == NULL)
		goto out;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	if (SSL_connect(ssl) != 1) {
		atomic_store(&cl->closed, 1);
		goto out;
	}
	atomic_store(&cl->handshake_ok, 1);
	len = cl->out != NULL ? evbuffer_get_length(cl->out) : 0;
	if (len > 0 && SSL_write(ssl, evbuffer_pullup(cl->out, -1), (int)len) <= 0) {
		atomic_store(&cl->closed, 1);
		goto out;
	}
	for (;;) {
		r = SSL_read(ssl, buf, sizeof(buf));
		if (r <= 0) {
			/* A receive timeout is not a close by the server. */
			if (!(SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL &&
			      (errno == EAGAIN || errno == EWOULDBLOCK)))
				atomic_store(&cl->closed, 1);
			break;
		}
		atomic_fetch_add(&cl->received, (size_t)r);
	}
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	atomic_store(&cl->done, 1);
	return NULL;
}

static void
client_start(struct client *cl)
{
	ck_assert_int_eq(pthread_create(&cl->thread, NULL, client_main, cl), 0);
}

static bool
client_done(void *arg)
{
	return atomic_load(&((struct client *)arg)->done) != 0;
}

static bool
client_received(void *arg)
{
	return atomic_load(&((struct client *)arg)->received) > 0;
}

/* Runs the loop until the client finished, then joins it. */
static void
client_finish(struct client *cl)
{
	ck_assert_msg(run_until(client_done, cl, WAIT_MS), "the client did not finish");
	ck_assert_int_eq(pthread_join(cl->thread, NULL), 0);
}

static void
add_hello(struct evbuffer *b, const uint8_t author[QS_KEY_BYTES], uint32_t chain_id)
{
	Quorumstore__V1__Hello hello = QUORUMSTORE__V1__HELLO__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;

	hello.epoch = EPOCH;
	hello.author.data = (uint8_t *)author;
	hello.author.len = QS_KEY_BYTES;
	hello.protocol_version = QS_PROTOCOL_VERSION;
	hello.chain_id = chain_id;
	hello.now_us = (uint64_t)time(NULL) * 1000000;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_HELLO;
	m.hello = &hello;
	ck_assert_int_eq(qs_frame_write(b, &m.base, 1 << 20), 0);
}

static void
add_header(struct evbuffer *b, uint32_t len)
{
	uint8_t h[QS_FRAME_HEADER_BYTES];

	qs_put_be32(h, len);
	evbuffer_add(b, h, sizeof(h));
}

/* A client presenting validator v`as`'s network key. */
static void
client_as(struct client *cl, int as, int port_of)
{
	uint8_t pub[QS_KEY_BYTES];
	char errbuf[256];

	memset(cl, 0, sizeof(*cl));
	ck_assert_int_eq(qs_keys_load(nk_path[as], &cl->key, pub, errbuf, sizeof(errbuf)), 0);
	cl->port = ports[port_of];
	cl->out = evbuffer_new();
}

static void
client_free(struct client *cl)
{
	EVP_PKEY_free(cl->key);
	X509_free(cl->cert);
	if (cl->out != NULL)
		evbuffer_free(cl->out);
}

/* ---- tests ---- */

START_TEST(peers_connect_and_exchange_hello)
{
	for (int i = 0; i < N; i++)
		start_node(i);
	wait_connected(0, 1);
	wait_connected(0, 2);
	wait_connected(1, 2);
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			ck_assert_int_eq(qs_peers_connected(nodes[i].peers, j), i != j);
			if (i != j) {
				ck_assert_int_eq(nodes[i].ups[j], 1);
				ck_assert_int_eq(nodes[i].downs[j], 0);
				ck_assert_int_lt(llabs(qs_peers_clock_skew_us(nodes[i].peers, j)),
				                 1000000);
			}
		}
		ck_assert_int_eq(metric(i, "qsd_peer_frames_received_total"), 2);
		ck_assert_int_gt(metric(i, "qsd_peer_bytes_received_total"), 2 * 40);
	}
	ck_assert_int_eq(metric(0, "qsd_peer_connected{peer=\"v0\"}"), 0);
	ck_assert_int_eq(metric(0, "qsd_peer_connected{peer=\"v1\"}"), 1);
	ck_assert_int_eq(metric(0, "qsd_peer_connected{peer=\"v2\"}"), 1);
	ck_assert_int_eq(metric(0, "qsd_peer_clock_skew_seconds{peer=\"v1\"}"), 0);
	ck_assert_int_eq(metric(0, "qsd_tls_handshake_failures_total{reason=\"unknown_key\"}"), 0);
	/* One connection per pair: nothing was replaced. */
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(metric(i, "qsd_peer_disconnects_total{reason=\"replaced\"}"), 0);
}
END_TEST

START_TEST(message_arrives_with_sender_index)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);
	send_request(0, 1, 42);
	ck_assert(wait_msgs(1, 1));
	ck_assert_int_eq(nodes[1].from[0], 0);
	ck_assert_uint_eq(nodes[1].ids[0], 42);
	/* And the other way, on the connection 0 dialed. */
	send_request(1, 0, 43);
	ck_assert(wait_msgs(0, 1));
	ck_assert_int_eq(nodes[0].from[0], 1);
	ck_assert_uint_eq(nodes[0].ids[0], 43);
	ck_assert_int_eq(nodes[0].n_msgs, 1);
	ck_assert_int_eq(nodes[1].n_msgs, 1);
}
END_TEST

START_TEST(broadcast_packs_once_and_reaches_every_connected_peer)
{
	Quorumstore__V1__BatchRequest req;
	Quorumstore__V1__PeerMessage m;

	make_request(&req, &m, 7);
	start_node(0);
	ck_assert_int_eq(qs_peers_broadcast(nodes[0].peers, &m), 0); /* nobody connected */
	start_node(1);
	start_node(2);
	wait_connected(0, 1);
	wait_connected(0, 2);
	req.request_id = 8;
	ck_assert_int_eq(qs_peers_broadcast(nodes[0].peers, &m), 2);
	req.request_id = 9; /* the first frame is already packed: this is a second one */
	ck_assert_int_eq(qs_peers_broadcast(nodes[0].peers, &m), 2);
	ck_assert(wait_msgs(1, 2));
	ck_assert(wait_msgs(2, 2));
	for (int i = 1; i < N; i++) {
		ck_assert_int_eq(nodes[i].n_msgs, 2);
		ck_assert_int_eq(nodes[i].from[0], 0);
		ck_assert_uint_eq(nodes[i].ids[0], 8);
		ck_assert_uint_eq(nodes[i].ids[1], 9);
	}
}
END_TEST

START_TEST(send_without_connection_is_enotconn)
{
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;

	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST;
	m.batch_request = &req;
	start_node(0);
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, 1, &m), -ENOTCONN);
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, 0, &m), -ENOTCONN);
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, N, &m), -ENOTCONN);
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, -1, &m), -ENOTCONN);
	ck_assert_int_eq(qs_peers_connected(nodes[0].peers, 1), 0);
}
END_TEST

START_TEST(send_over_frame_limit_is_elimit_and_keeps_connection)
{
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	char *detail = malloc(70000);

	memset(detail, 'x', 69999);
	detail[69999] = '\0';
	nack.detail = detail;
	nack.batch_id = 5;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	m.batch_nack = &nack;
	start_node_limit(0, 65536);
	start_node_limit(1, 65536);
	wait_connected(0, 1);
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, 1, &m), QS_ELIMIT);
	ck_assert_int_eq(qs_peers_broadcast(nodes[0].peers, &m), QS_ELIMIT);
	ck_assert_int_eq(qs_peers_connected(nodes[0].peers, 1), 1);
	detail[1000] = '\0';
	ck_assert_int_eq(qs_peers_send(nodes[0].peers, 1, &m), 0);
	ck_assert(wait_msgs(1, 1));
	ck_assert_uint_eq(nodes[1].ids[0], 5);
	free(detail);
}
END_TEST

START_TEST(unknown_tls_key_is_refused_and_counted)
{
	struct client cl;

	memset(&cl, 0, sizeof(cl));
	cl.key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ck_assert_ptr_nonnull(cl.key);
	cl.port = ports[0];
	cl.out = evbuffer_new();
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"unknown_key\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(atomic_load(&cl.closed), 1);
	ck_assert_uint_eq(atomic_load(&cl.received), 0);
	for (int j = 0; j < N; j++)
		ck_assert_int_eq(nodes[0].ups[j], 0);
	ck_assert_int_eq(metric(0, "qsd_peer_frames_received_total"), 0);
	client_free(&cl);
}
END_TEST

START_TEST(own_key_is_refused_as_unknown)
{
	struct client cl;

	client_as(&cl, 0, 0);
	add_hello(cl.out, sk_pub[0], CHAIN_ID);
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"unknown_key\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(atomic_load(&cl.closed), 1);
	client_free(&cl);
}
END_TEST

START_TEST(client_without_certificate_is_refused)
{
	struct client cl;

	memset(&cl, 0, sizeof(cl));
	cl.port = ports[0];
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"no_certificate\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(atomic_load(&cl.closed), 1);
	client_free(&cl);
}
END_TEST

/* A self-signed P-256 certificate. */
static X509 *
p256_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();

	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_set_version(x, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"p256", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	return x;
}

START_TEST(non_ed25519_certificate_is_refused)
{
	struct client cl;

	memset(&cl, 0, sizeof(cl));
	cl.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(cl.key);
	cl.cert = p256_cert(cl.key);
	cl.port = ports[0];
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"not_ed25519\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(atomic_load(&cl.closed), 1);
	client_free(&cl);
}
END_TEST

START_TEST(hello_with_wrong_author_is_refused)
{
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[1], CHAIN_ID); /* v1's signing key, from v2 */
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"hello_invalid\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(atomic_load(&cl.handshake_ok), 1);
	ck_assert_int_eq(atomic_load(&cl.closed), 1);
	ck_assert_int_eq(nodes[0].ups[2], 0);
	ck_assert_int_eq(nodes[0].ups[1], 0);
	client_free(&cl);
}
END_TEST

START_TEST(hello_with_wrong_chain_id_is_refused)
{
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[2], CHAIN_ID + 1);
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"hello_invalid\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(nodes[0].ups[2], 0);
	client_free(&cl);
}
END_TEST

START_TEST(first_message_not_hello_is_refused)
{
	struct client cl;
	Quorumstore__V1__BatchRequest req;
	Quorumstore__V1__PeerMessage m;

	make_request(&req, &m, 0);
	client_as(&cl, 2, 0);
	ck_assert_int_eq(qs_frame_write(cl.out, &m.base, 1 << 20), 0);
	start_node(0);
	client_start(&cl);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"hello_invalid\"}", 1));
	client_finish(&cl);
	ck_assert_int_eq(nodes[0].n_msgs, 0);
	client_free(&cl);
}
END_TEST

/* A client as v2 with a valid Hello followed by `tail`, against node 0:
 * the connection becomes usable, then closes for `reason`. */
static void
expect_close_after_hello(struct client *cl, const char *reason)
{
	char series[128];

	start_node(0);
	client_start(cl);
	snprintf(series, sizeof(series), "qsd_peer_disconnects_total{reason=\"%s\"}", reason);
	ck_assert_msg(wait_metric(0, series, 1), "%s not counted", series);
	client_finish(cl);
	ck_assert_int_eq(atomic_load(&cl->closed), 1);
	ck_assert_int_eq(nodes[0].ups[2], 1);
	ck_assert_int_eq(nodes[0].downs[2], 1);
	ck_assert_int_eq(nodes[0].connected[2], 0);
	ck_assert_int_eq(metric(0, "qsd_peer_connected{peer=\"v2\"}"), 0);
	ck_assert_int_eq(nodes[0].n_msgs, 0);
}

START_TEST(oversized_frame_closes_connection)
{
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	add_header(cl.out, 4 * 1024 * 1024 + 64 * 1024 + 1); /* the header is enough */
	expect_close_after_hello(&cl, "oversized_frame");
	client_free(&cl);
}
END_TEST

START_TEST(undecodable_frame_closes_connection)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	add_header(cl.out, sizeof(garbage));
	evbuffer_add(cl.out, garbage, sizeof(garbage));
	expect_close_after_hello(&cl, "undecodable");
	client_free(&cl);
}
END_TEST

START_TEST(empty_peer_message_closes_connection)
{
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	add_header(cl.out, 0);
	expect_close_after_hello(&cl, "unexpected_message");
	client_free(&cl);
}
END_TEST

START_TEST(second_hello_closes_connection)
{
	struct client cl;

	client_as(&cl, 2, 0);
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	add_hello(cl.out, sk_pub[2], CHAIN_ID);
	expect_close_after_hello(&cl, "unexpected_message");
	client_free(&cl);
}
END_TEST

START_TEST(new_connection_replaces_old)
{
	struct client a, b;

	client_as(&a, 2, 0);
	add_hello(a.out, sk_pub[2], CHAIN_ID);
	client_as(&b, 2, 0);
	add_hello(b.out, sk_pub[2], CHAIN_ID);
	start_node(0);
	client_start(&a);
	ck_assert(wait_metric(0, "qsd_peer_connected{peer=\"v2\"}", 1));
	client_start(&b);
	ck_assert(wait_metric(0, "qsd_peer_disconnects_total{reason=\"replaced\"}", 1));
	client_finish(&a);
	ck_assert_int_eq(atomic_load(&a.closed), 1);
	ck_assert_int_eq(nodes[0].ups[2], 2);
	ck_assert_int_eq(nodes[0].downs[2], 1);
	ck_assert_int_eq(qs_peers_connected(nodes[0].peers, 2), 1);
	/* Our Hello reached the survivor too. */
	ck_assert(run_until(client_received, &b, WAIT_MS));
	stop_node(0);
	client_finish(&b);
	ck_assert_int_eq(atomic_load(&b.closed), 1);
	client_free(&a);
	client_free(&b);
}
END_TEST

START_TEST(reading_disabled_holds_messages_until_enabled)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);

	/* Held in the kernel: nothing is read while disabled. */
	qs_peers_set_reading(nodes[1].peers, 0);
	qs_peers_set_reading(nodes[1].peers, 0);
	for (uint64_t id = 1; id <= 3; id++)
		send_request(0, 1, id);
	run_for(300);
	ck_assert_int_eq(nodes[1].n_msgs, 0);
	qs_peers_set_reading(nodes[1].peers, 1);
	ck_assert(wait_msgs(1, 3));

	/* Held in the input buffer: the handler stops reading mid-burst. */
	nodes[1].pause_after = 4;
	for (uint64_t id = 4; id <= 6; id++)
		send_request(0, 1, id);
	ck_assert(wait_msgs(1, 4));
	run_for(300);
	ck_assert_int_eq(nodes[1].n_msgs, 4);
	qs_peers_set_reading(nodes[1].peers, 1);
	ck_assert(wait_msgs(1, 6));
	for (int k = 0; k < 6; k++) {
		ck_assert_int_eq(nodes[1].from[k], 0);
		ck_assert_uint_eq(nodes[1].ids[k], (uint64_t)k + 1);
	}
	ck_assert_int_eq(nodes[1].downs[0], 0);
}
END_TEST

START_TEST(reconnects_after_the_other_side_restarts)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);
	stop_node(1);
	ck_assert(wait_metric(0, "qsd_peer_disconnects_total{reason=\"eof\"}", 1));
	ck_assert_int_eq(nodes[0].connected[1], 0);
	ck_assert_int_eq(nodes[0].downs[1], 1);
	run_for(300); /* a few dials fail meanwhile */
	start_node(1);
	wait_connected(0, 1);
	ck_assert_int_eq(nodes[0].ups[1], 2);
	send_request(0, 1, 77);
	ck_assert(wait_msgs(1, 1));
	ck_assert_uint_eq(nodes[1].ids[0], 77);
}
END_TEST

START_TEST(lower_index_restart_dials_again)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);
	stop_node(0);
	ck_assert(wait_metric(1, "qsd_peer_disconnects_total{reason=\"eof\"}", 1));
	start_node(0);
	wait_connected(0, 1);
	ck_assert_int_eq(nodes[1].ups[0], 2);
}
END_TEST

START_TEST(protocol_violation_close_is_counted_and_redialed)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);
	qs_peers_close(nodes[0].peers, 1, "test says so");
	ck_assert_int_eq(nodes[0].connected[1], 0);
	ck_assert_int_eq(nodes[0].downs[1], 1);
	ck_assert_int_eq(metric(0, "qsd_peer_disconnects_total{reason=\"protocol_violation\"}"), 1);
	qs_peers_close(nodes[0].peers, 1, "no connection: nothing happens");
	ck_assert_int_eq(nodes[0].downs[1], 1);
	/* 0 dials 1 again. */
	ck_assert(wait_metric(0, "qsd_peer_connected{peer=\"v1\"}", 1));
	ck_assert_int_eq(nodes[0].ups[1], 2);
}
END_TEST

START_TEST(handler_may_close_its_own_connection)
{
	start_node(0);
	start_node(1);
	wait_connected(0, 1);
	nodes[1].close_on_msg = true;
	for (uint64_t id = 1; id <= 3; id++)
		send_request(0, 1, id);
	ck_assert(wait_metric(1, "qsd_peer_disconnects_total{reason=\"protocol_violation\"}", 1));
	/* The frames after the first died with the connection. */
	run_for(200);
	ck_assert_int_eq(nodes[1].n_msgs, 1);
	ck_assert_int_eq(nodes[1].downs[0], 1);
	ck_assert(wait_metric(0, "qsd_peer_disconnects_total{reason=\"eof\"}", 1));
}
END_TEST

/*
 * Node 1 stops reading; node 0 queues 60 KB frames for it (one at a time with
 * qs_peers_send(), or with qs_peers_broadcast(), which queues by reference)
 * until it closes 1 as a slow reader, which must happen at the size bound.
 */
static void
check_slow_reader_closed(bool broadcast)
{
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	char *detail = malloc(60000);
	int rc = 0, sent = 0;

	memset(detail, 'x', 59999);
	detail[59999] = '\0';
	nack.detail = detail;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	m.batch_nack = &nack;
	start_node_limit(0, 65536);
	start_node_limit(1, 65536);
	wait_connected(0, 1);
	qs_peers_set_reading(nodes[1].peers, 0);
	/* Nothing leaves while the loop does not run: the buffer only grows. */
	while (sent < 2000) {
		if (broadcast)
			rc = qs_peers_broadcast(nodes[0].peers, &m) == 1 ? 0 : -ENOTCONN;
		else
			rc = qs_peers_send(nodes[0].peers, 1, &m);
		if (rc != 0)
			break;
		sent++;
	}
	ck_assert_int_eq(rc, -ENOTCONN);
	ck_assert_int_ge((long long)sent * 60000, (long long)QS_PEER_OUTBUF_MAX_BYTES - 60004);
	ck_assert_int_le((long long)sent * 60000, (long long)QS_PEER_OUTBUF_MAX_BYTES);
	ck_assert_int_eq(metric(0, "qsd_peer_disconnects_total{reason=\"slow_reader\"}"), 1);
	ck_assert_int_eq(nodes[0].downs[1], 1);
	ck_assert_int_eq(qs_peers_connected(nodes[0].peers, 1), 0);
	free(detail);
}

START_TEST(slow_reader_is_closed)
{
	check_slow_reader_closed(false);
}
END_TEST

START_TEST(slow_reader_of_broadcasts_is_closed)
{
	check_slow_reader_closed(true);
}
END_TEST

/* The peer stops reading with far less than the size bound queued and sends
 * nothing that would make the buffer grow: only the write stall finds it.
 * Idle connections (nothing to send) are never closed by it, and a write
 * that makes progress restarts its clock. */
START_TEST(stalled_reader_is_closed_after_the_write_stall)
{
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	const char *slow = "qsd_peer_disconnects_total{reason=\"slow_reader\"}";
	char *detail = malloc(60000);
	uint64_t t0;

	memset(detail, 'x', 59999);
	detail[59999] = '\0';
	nack.detail = detail;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	m.batch_nack = &nack;
	for (int i = 0; i < N; i++)
		start_node_limit(i, 65536);
	wait_connected(0, 1);
	wait_connected(0, 2);
	wait_connected(1, 2);
	qs_peers_set_reading(nodes[1].peers, 0);
	/* 30 MB: more than the kernel buffers take, under half the bound. */
	for (int k = 0; k < 500; k++)
		ck_assert_int_eq(qs_peers_send(nodes[0].peers, 1, &m), 0);
	run_for(QS_PEER_WRITE_STALL_MS * 7 / 10);
	ck_assert_int_eq(metric(0, slow), 0);
	/* 100 frames read, then nothing again: the clock starts over. */
	nodes[1].pause_after = nodes[1].n_msgs + 100;
	qs_peers_set_reading(nodes[1].peers, 1);
	ck_assert(wait_msgs(1, nodes[1].pause_after));
	t0 = now_ms();
	run_for(QS_PEER_WRITE_STALL_MS * 7 / 10);
	ck_assert_int_eq(metric(0, slow), 0);
	ck_assert_int_eq(nodes[0].downs[1], 0);
	ck_assert(wait_metric(0, slow, 1));
	ck_assert_uint_ge(now_ms() - t0, QS_PEER_WRITE_STALL_MS - 500);
	ck_assert_int_eq(nodes[0].downs[1], 1);
	ck_assert_int_eq(qs_peers_connected(nodes[0].peers, 1), 0);
	/* Idle all along (more than the stall): nobody else was closed. */
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(metric(i, slow), i == 0 ? 1 : 0);
	ck_assert_int_eq(nodes[0].downs[2], 0);
	ck_assert_int_eq(nodes[1].downs[2], 0);
	ck_assert_int_eq(nodes[2].downs[0], 0);
	ck_assert_int_eq(nodes[2].downs[1], 0);
	free(detail);
}
END_TEST

START_TEST(silent_connection_times_out)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	start_node(0);
	sin.sin_port = htons(ports[0]);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	run_for(QS_PEER_HANDSHAKE_TIMEOUT_MS - 1000);
	ck_assert_int_eq(metric(0, "qsd_tls_handshake_failures_total{reason=\"timeout\"}"), 0);
	ck_assert(wait_metric(0, "qsd_tls_handshake_failures_total{reason=\"timeout\"}", 1));
	close(fd);
}
END_TEST

START_TEST(start_refuses_keys_of_another_validator)
{
	struct qs_config *cfg = make_config(0, 1 << 20);
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_peers *p = NULL;
	EVP_PKEY *nk = NULL;
	uint8_t pub[QS_KEY_BYTES];
	char errbuf[256];

	ck_assert_int_eq(qs_keys_load(nk_path[0], &nk, pub, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(qs_peers_start(base, cfg, 1, nk, sk_pub[1], &handlers, NULL, reg, &p,
	                                errbuf, sizeof(errbuf)),
	                 QS_ECONFIG);
	ck_assert_ptr_nonnull(strstr(errbuf, "network key"));
	ck_assert_int_eq(qs_peers_start(base, cfg, 0, nk, sk_pub[1], &handlers, NULL, reg, &p,
	                                errbuf, sizeof(errbuf)),
	                 QS_ECONFIG);
	ck_assert_ptr_nonnull(strstr(errbuf, "signing key"));
	ck_assert_int_eq(qs_peers_start(base, cfg, N, nk, sk_pub[0], &handlers, NULL, reg, &p,
	                                errbuf, sizeof(errbuf)),
	                 QS_ECONFIG);
	ck_assert_ptr_null(p);
	EVP_PKEY_free(nk);
	qs_metrics_free(reg);
	qs_config_free(cfg);
}
END_TEST

START_TEST(start_reports_address_in_use)
{
	struct qs_config *cfg = make_config(0, 1 << 20);
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_peers *p = NULL;
	EVP_PKEY *nk = NULL;
	uint8_t pub[QS_KEY_BYTES];
	char errbuf[256];

	start_node(0);
	ck_assert_int_eq(qs_keys_load(nk_path[0], &nk, pub, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(qs_peers_start(base, cfg, 0, nk, sk_pub[0], &handlers, NULL, reg, &p,
	                                errbuf, sizeof(errbuf)),
	                 -EADDRINUSE);
	ck_assert_ptr_null(p);
	EVP_PKEY_free(nk);
	qs_metrics_free(reg);
	qs_config_free(cfg);
}
END_TEST

static Suite *
peer_suite(void)
{
	Suite *s = suite_create("peer");
	TCase *conn = tcase_create("connect");
	TCase *tls = tcase_create("tls");
	TCase *frames = tcase_create("frames");
	TCase *life = tcase_create("lifecycle");
	TCase *stall = tcase_create("stall");

	tcase_add_checked_fixture(conn, setup, teardown);
	tcase_set_timeout(conn, 30);
	tcase_add_test(conn, peers_connect_and_exchange_hello);
	tcase_add_test(conn, message_arrives_with_sender_index);
	tcase_add_test(conn, broadcast_packs_once_and_reaches_every_connected_peer);
	tcase_add_test(conn, slow_reader_of_broadcasts_is_closed);
	tcase_add_test(conn, send_without_connection_is_enotconn);
	tcase_add_test(conn, send_over_frame_limit_is_elimit_and_keeps_connection);
	tcase_add_test(conn, reading_disabled_holds_messages_until_enabled);
	suite_add_tcase(s, conn);

	tcase_add_checked_fixture(tls, setup, teardown);
	tcase_set_timeout(tls, 30);
	tcase_add_test(tls, unknown_tls_key_is_refused_and_counted);
	tcase_add_test(tls, own_key_is_refused_as_unknown);
	tcase_add_test(tls, client_without_certificate_is_refused);
	tcase_add_test(tls, non_ed25519_certificate_is_refused);
	tcase_add_test(tls, hello_with_wrong_author_is_refused);
	tcase_add_test(tls, hello_with_wrong_chain_id_is_refused);
	tcase_add_test(tls, first_message_not_hello_is_refused);
	tcase_add_test(tls, silent_connection_times_out);
	suite_add_tcase(s, tls);

	tcase_add_checked_fixture(frames, setup, teardown);
	tcase_set_timeout(frames, 30);
	tcase_add_test(frames, oversized_frame_closes_connection);
	tcase_add_test(frames, undecodable_frame_closes_connection);
	tcase_add_test(frames, empty_peer_message_closes_connection);
	tcase_add_test(frames, second_hello_closes_connection);
	suite_add_tcase(s, frames);

	tcase_add_checked_fixture(life, setup, teardown);
	tcase_set_timeout(life, 30);
	tcase_add_test(life, new_connection_replaces_old);
	tcase_add_test(life, reconnects_after_the_other_side_restarts);
	tcase_add_test(life, lower_index_restart_dials_again);
	tcase_add_test(life, protocol_violation_close_is_counted_and_redialed);
	tcase_add_test(life, handler_may_close_its_own_connection);
	tcase_add_test(life, slow_reader_is_closed);
	tcase_add_test(stall, stalled_reader_is_closed_after_the_write_stall);
	tcase_add_test(life, start_refuses_keys_of_another_validator);
	tcase_add_test(life, start_reports_address_in_use);
	suite_add_tcase(s, life);

	/* Waits out the write stall (QS_PEER_WRITE_STALL_MS) one and a half times. */
	tcase_add_checked_fixture(stall, setup, teardown);
	tcase_set_timeout(stall, 60);
	suite_add_tcase(s, stall);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(peer_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
