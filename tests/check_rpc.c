/*
 * Tests of net/rpc (the RPC server) and client/qsclient (its C client) over
 * a real Unix socket in a temporary directory.
 *
 * The server runs on an event_base driven by a thread of its own; the test
 * thread talks to it with the client library or a raw socket, and touches
 * server-side state only through run_on_loop(), which runs a function on
 * the loop thread and waits for it. The fake handler answers GetStatus at
 * once, SubmitBatch after gas_bucket_start ms and NotifyCommit after
 * block_timestamp_us ms (timers), and holds GetBatch calls until the test
 * answers them.
 */
#include "client/qsclient.h"
#include "config/config.h"
#include "core/error.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"
#include "net/rpc.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#define CHAIN_ID    7
#define EPOCH       3
#define FRAME_MAX   (64 * 1024)
#define WAIT_MS     5000 /* most any condition may take */
#define IO_MS       5000 /* client timeouts */
#define MAX_HELD    (QS_RPC_MAX_OUTSTANDING + 64)
#define SERVER_VER  "9.9.9-test"
#define STALL_MS    500          /* rpc.write_stall_timeout_ms of the slow-client tests */
#define BIG_REASON  (256 * 1024) /* GetStatus answers far over the socket buffers */
#define SLOW_READER "qsd_rpc_disconnects_total{reason=\"slow_reader\"}"

struct delayed {
	LIST_ENTRY(delayed) link;
	struct event *ev;
	struct qs_rpc_call *call;
	Quorumstore__V1__Request__BodyCase body;
	uint64_t value;
	size_t n_txns;
	bool keyed;
};

static char tmpdir[256];
static char sock_path[PATH_MAX];
static struct event_base *base;
static struct qs_metrics *metrics;
static struct qs_config cfg;
static struct qs_rpc *rpc;
static pthread_t loop_thread;
static bool loop_running;
static const char *status_reason = ""; /* GetStatus storage_reason */

/* Loop thread only (or through run_on_loop()). */
static struct qs_rpc_call *held[MAX_HELD];
static size_t n_held;
static LIST_HEAD(, delayed) delayed_list = LIST_HEAD_INITIALIZER(delayed_list);

/* ---- the fake handler (loop thread) ---- */

static void
answer_delayed(struct delayed *d)
{
	Quorumstore__V1__SubmitBatchResponse submit = QUORUMSTORE__V1__SUBMIT_BATCH_RESPONSE__INIT;
	Quorumstore__V1__NotifyCommitResponse commit =
	    QUORUMSTORE__V1__NOTIFY_COMMIT_RESPONSE__INIT;
	Quorumstore__V1__BatchInfo info = QUORUMSTORE__V1__BATCH_INFO__INIT;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	static uint8_t digest[32] = {0xab, 0xcd};

	if (d->body == QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH) {
		info.batch_id = d->value;
		info.num_txns = (uint32_t)d->n_txns;
		info.epoch = EPOCH;
		info.expiration_us = 1767225600000000u;
		info.digest.data = digest;
		info.digest.len = sizeof(digest);
		submit.info = &info;
		submit.duplicate = d->keyed;
		resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH;
		resp.submit_batch = &submit;
	} else {
		commit.proofs_removed = 1;
		resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_NOTIFY_COMMIT;
		resp.notify_commit = &commit;
	}
	qs_rpc_respond(d->call, &resp);
	LIST_REMOVE(d, link);
	event_free(d->ev);
	free(d);
}

static void
delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	answer_delayed(arg);
}

static void
fake_request(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	Quorumstore__V1__GetStatusResponse status = QUORUMSTORE__V1__GET_STATUS_RESPONSE__INIT;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	struct delayed *d;
	struct timeval tv = {0, 0};

	ck_assert_uint_eq(qs_rpc_call_id(call), req->request_id);
	switch (req->body_case) {
	case QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS:
		status.server_version = SERVER_VER;
		status.epoch = EPOCH;
		status.chain_id = CHAIN_ID;
		status.storage_state = QUORUMSTORE__V1__STORAGE_STATE__STORAGE_STATE_OK;
		status.storage_reason = (char *)status_reason;
		status.batches_stored = 42;
		resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS;
		resp.get_status = &status;
		qs_rpc_respond(call, &resp);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH:
	case QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT:
		d = calloc(1, sizeof(*d));
		ck_assert_ptr_nonnull(d);
		d->call = call;
		d->body = req->body_case;
		if (req->body_case == QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH) {
			d->value = req->submit_batch->gas_bucket_start;
			d->n_txns = req->submit_batch->n_transactions;
			d->keyed = req->submit_batch->idempotency_key.len > 0;
		} else {
			d->value = req->notify_commit->block_timestamp_us;
		}
		tv.tv_sec = (time_t)(d->value / 1000);
		tv.tv_usec = (suseconds_t)(d->value % 1000 * 1000);
		d->ev = evtimer_new(base, delayed_cb, d);
		ck_assert_ptr_nonnull(d->ev);
		ck_assert_int_eq(evtimer_add(d->ev, &tv), 0);
		LIST_INSERT_HEAD(&delayed_list, d, link);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH:
		ck_assert_uint_lt(n_held, MAX_HELD);
		held[n_held++] = call;
		break;
	default:
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "not in this test");
		break;
	}
	qs_frame_msg_free(&req->base);
}

static const struct qs_rpc_ops fake_ops = {.request = fake_request};

/* ---- the loop thread ---- */

static void *
loop_main(void *arg)
{
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct job {
	void (*fn)(void *);
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void
job_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	j->fn(j->arg);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

/* Run fn(arg) on the loop thread (here if it is not running) and wait. */
static void
run_on_loop(void (*fn)(void *), void *arg)
{
	struct job j = {.fn = fn, .arg = arg, .done = false};
	struct timeval zero = {0, 0};
	struct timespec until;
	int rc = 0;

	if (!loop_running) {
		fn(arg);
		return;
	}
	pthread_mutex_init(&j.mu, NULL);
	pthread_cond_init(&j.cv, NULL);
	ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, job_cb, &j, &zero), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&j.mu);
	while (!j.done && rc == 0)
		rc = pthread_cond_timedwait(&j.cv, &j.mu, &until);
	pthread_mutex_unlock(&j.mu);
	ck_assert_msg(j.done, "the loop did not run the job");
	pthread_mutex_destroy(&j.mu);
	pthread_cond_destroy(&j.cv);
}

static void
answer_held_fn(void *arg)
{
	for (size_t i = 0; i < n_held; i++)
		qs_rpc_respond_error(held[i], QUORUMSTORE__V1__STATUS__STATUS_NOT_FOUND, "late");
	n_held = 0;
}

static void
answer_held(void)
{
	run_on_loop(answer_held_fn, NULL);
}

static void
held_count_fn(void *arg)
{
	*(size_t *)arg = n_held;
}

static size_t
held_count(void)
{
	size_t n = 0;

	run_on_loop(held_count_fn, &n);
	return n;
}

static void
free_rpc_fn(void *arg)
{
	qs_rpc_free(rpc);
	rpc = NULL;
}

/* Free the server, answer what the handler holds, stop the loop. */
static void
shutdown_fn(void *arg)
{
	struct delayed *d;

	free_rpc_fn(NULL);
	answer_held_fn(NULL);
	while ((d = LIST_FIRST(&delayed_list)) != NULL)
		answer_delayed(d);
	if (loop_running)
		event_base_loopbreak(base);
}

/* ---- fixture ---- */

static void
setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	qs_log_set_level(getenv("QS_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT);
	ck_assert_int_eq(evthread_use_pthreads(), 0);
	qs_test_mkdtemp(tmpdir, sizeof(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/rpc.sock", tmpdir);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	metrics = qs_metrics_new();
	ck_assert_ptr_nonnull(metrics);
	memset(&cfg, 0, sizeof(cfg));
	cfg.rpc_socket = sock_path;
	cfg.limits.frame_max_bytes = FRAME_MAX;
	cfg.chain_id = CHAIN_ID;
	cfg.epoch = EPOCH;
	rpc = NULL;
	n_held = 0;
	loop_running = false;
	status_reason = "";
}

static void
teardown(void)
{
	run_on_loop(shutdown_fn, NULL);
	if (loop_running) {
		pthread_join(loop_thread, NULL);
		loop_running = false;
	}
	/* libevent frees a bufferevent from a finalizer callback: run it. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	qs_metrics_free(metrics);
	qs_test_rmtree(tmpdir);
}

static void
fill_info(struct qs_rpc_info *info)
{
	memset(info, 0, sizeof(*info));
	info->server_version = SERVER_VER;
	info->epoch = EPOCH;
	info->chain_id = CHAIN_ID;
	for (size_t i = 0; i < sizeof(info->author); i++)
		info->author[i] = (uint8_t)i;
}

/* Start a server on `b` registering in `reg`; returns qs_rpc_start()'s code. */
static int
try_start(struct event_base *b, struct qs_metrics *reg, struct qs_rpc **out, char *err,
          size_t errlen)
{
	struct qs_rpc_info info;

	fill_info(&info);
	return qs_rpc_start(b, &cfg, &fake_ops, NULL, &info, reg, out, err, errlen);
}

static void
start_server(void)
{
	char err[256] = "";
	int rc = try_start(base, metrics, &rpc, err, sizeof(err));

	ck_assert_msg(rc == 0, "qs_rpc_start: %s (%s)", qs_strerror(rc), err);
	ck_assert_int_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
	loop_running = true;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The value of `series` in the registry, or -1 if absent. */
static long long
metric(const char *series)
{
	char *text = NULL, *line;
	size_t len, slen = strlen(series);
	long long v = -1;

	ck_assert_int_eq(qs_metrics_render(metrics, &text, &len), 0);
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

/* Waits until `series` equals `value`; returns whether it did. */
static bool
wait_metric(const char *series, long long value)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (metric(series) != value && now_ms() < end)
		usleep(2000);
	return metric(series) == value;
}

static bool
wait_held(size_t n)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (held_count() != n && now_ms() < end)
		usleep(2000);
	return held_count() == n;
}

static struct qs_client *
connect_client(void)
{
	struct qs_client *c = NULL;
	char err[256] = "";
	int rc = qs_client_connect(sock_path, "check_rpc", IO_MS, &c, err, sizeof(err));

	ck_assert_msg(rc == 0, "qs_client_connect: %s (%s)", qs_strerror(rc), err);
	return c;
}

static void
make_get_batch(Quorumstore__V1__Request *req, Quorumstore__V1__GetBatchRequest *gb)
{
	static uint8_t digest[32];

	quorumstore__v1__get_batch_request__init(gb);
	quorumstore__v1__request__init(req);
	gb->digest.data = digest;
	gb->digest.len = sizeof(digest);
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH;
	req->get_batch = gb;
}

static void
make_status(Quorumstore__V1__Request *req, Quorumstore__V1__GetStatusRequest *gs)
{
	quorumstore__v1__get_status_request__init(gs);
	quorumstore__v1__request__init(req);
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS;
	req->get_status = gs;
}

static void
make_submit(Quorumstore__V1__Request *req, Quorumstore__V1__SubmitBatchRequest *sb,
            ProtobufCBinaryData *txns, size_t n, uint64_t delay_ms)
{
	quorumstore__v1__submit_batch_request__init(sb);
	quorumstore__v1__request__init(req);
	sb->n_transactions = n;
	sb->transactions = txns;
	sb->gas_bucket_start = delay_ms;
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH;
	req->submit_batch = sb;
}

static void
make_commit(Quorumstore__V1__Request *req, Quorumstore__V1__NotifyCommitRequest *nc,
            uint64_t delay_ms)
{
	quorumstore__v1__notify_commit_request__init(nc);
	quorumstore__v1__request__init(req);
	nc->block_timestamp_us = delay_ms;
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT;
	req->notify_commit = nc;
}

/* ---- raw sockets ---- */

static int
raw_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {WAIT_MS / 1000, 0};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

static void
raw_write(int fd, const void *buf, size_t len)
{
	ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void
raw_send(int fd, const Quorumstore__V1__Request *req)
{
	size_t len = quorumstore__v1__request__get_packed_size(req);
	uint8_t *buf = malloc(4 + len);

	ck_assert_ptr_nonnull(buf);
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	quorumstore__v1__request__pack(req, buf + 4);
	raw_write(fd, buf, 4 + len);
	free(buf);
}

static void
raw_read_all(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = recv(fd, buf + done, len - done, 0);

		ck_assert_msg(n > 0, "recv: %zd %s", n, strerror(errno));
		done += (size_t)n;
	}
}

static Quorumstore__V1__Response *
raw_recv(int fd)
{
	Quorumstore__V1__Response *resp;
	uint8_t header[4], *buf;
	size_t len;

	raw_read_all(fd, header, sizeof(header));
	len =
	    (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
	ck_assert_uint_le(len, 1024 * 1024);
	buf = malloc(len + 1);
	ck_assert_ptr_nonnull(buf);
	raw_read_all(fd, buf, len);
	resp = quorumstore__v1__response__unpack(NULL, len, buf);
	free(buf);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

/* The server closes `fd` (EOF or reset) within the receive timeout. */
static void
raw_expect_close(int fd)
{
	uint8_t b;
	ssize_t n = recv(fd, &b, 1, 0);

	ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "expected a close: %zd %s", n,
	              n < 0 ? strerror(errno) : "data");
}

static void
raw_hello(int fd, uint32_t version)
{
	Quorumstore__V1__HelloRequest hello = QUORUMSTORE__V1__HELLO_REQUEST__INIT;
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;

	hello.protocol_version = version;
	hello.client_name = "raw";
	req.request_id = 1;
	req.body_case = QUORUMSTORE__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	raw_send(fd, &req);
}

/* ---- tests: protocol ---- */

START_TEST(hello_must_be_first)
{
	Quorumstore__V1__GetStatusRequest gs;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp;
	int fd;

	start_server();
	fd = raw_connect();
	make_status(&req, &gs);
	req.request_id = 77;
	raw_send(fd, &req);
	resp = raw_recv(fd);
	ck_assert_uint_eq(resp->request_id, 77);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY__NOT_SET);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	raw_expect_close(fd);
	close(fd);
	ck_assert(wait_metric("qsd_rpc_disconnects_total{reason=\"no_hello\"}", 1));
	ck_assert(wait_metric("qsd_rpc_connections", 0));
	ck_assert_int_eq(metric("qsd_rpc_errors_total{status=\"failed_precondition\"}"), 1);
}
END_TEST

START_TEST(hello_with_other_protocol_version_is_refused)
{
	Quorumstore__V1__Response *resp;
	int fd;

	start_server();
	fd = raw_connect();
	raw_hello(fd, 2);
	resp = raw_recv(fd);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	raw_expect_close(fd);
	close(fd);
	ck_assert(wait_metric("qsd_rpc_disconnects_total{reason=\"hello_invalid\"}", 1));
}
END_TEST

START_TEST(hello_is_answered_with_server_info)
{
	const Quorumstore__V1__HelloResponse *h;
	struct qs_client *c;

	start_server();
	c = connect_client();
	h = qs_client_server(c);
	ck_assert_str_eq(h->server_version, SERVER_VER);
	ck_assert_uint_eq(h->protocol_version, 1);
	ck_assert_uint_eq(h->epoch, EPOCH);
	ck_assert_uint_eq(h->chain_id, CHAIN_ID);
	ck_assert_uint_eq(h->author.len, 32);
	for (size_t i = 0; i < 32; i++)
		ck_assert_uint_eq(h->author.data[i], i);
	ck_assert_int_eq(metric("qsd_rpc_requests_total{method=\"hello\"}"), 1);
	ck_assert_int_eq(metric("qsd_rpc_connections"), 1);
	qs_client_close(c);
	ck_assert(wait_metric("qsd_rpc_disconnects_total{reason=\"eof\"}", 1));
	ck_assert(wait_metric("qsd_rpc_connections", 0));
}
END_TEST

START_TEST(pipelined_requests_are_all_answered_with_their_ids)
{
	enum {
		N = 100
	};
	static uint8_t bytes[5][8];
	ProtobufCBinaryData txns[5];
	Quorumstore__V1__SubmitBatchRequest sb;
	Quorumstore__V1__GetStatusRequest gs;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp;
	uint64_t ids[N], first_id;
	bool seen[N] = {false};
	bool reordered = false;
	struct qs_client *c;
	size_t i, k;

	for (i = 0; i < 5; i++) {
		txns[i].data = bytes[i];
		txns[i].len = sizeof(bytes[i]);
	}
	start_server();
	c = connect_client();
	for (i = 0; i < N; i++) {
		if (i % 2 == 0)
			make_submit(&req, &sb, txns, i % 5 + 1, (i * 7) % 23);
		else
			make_status(&req, &gs);
		ck_assert_int_eq(qs_client_send(c, &req, &ids[i]), 0);
		ck_assert_uint_eq(req.request_id, ids[i]);
		if (i > 0)
			ck_assert_uint_eq(ids[i], ids[i - 1] + 1);
	}
	first_id = ids[0];
	for (k = 0; k < N; k++) {
		ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), 0);
		ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_OK);
		ck_assert_uint_ge(resp->request_id, first_id);
		i = (size_t)(resp->request_id - first_id);
		ck_assert_uint_lt(i, N);
		ck_assert_msg(!seen[i], "request %zu answered twice", i);
		seen[i] = true;
		if (i != k)
			reordered = true;
		if (i % 2 == 0) {
			ck_assert_int_eq(resp->body_case,
			                 QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH);
			ck_assert_uint_eq(resp->submit_batch->info->batch_id, (i * 7) % 23);
			ck_assert_uint_eq(resp->submit_batch->info->num_txns, i % 5 + 1);
		} else {
			ck_assert_int_eq(resp->body_case,
			                 QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
			ck_assert_uint_eq(resp->get_status->batches_stored, 42);
		}
		qs_client_response_free(resp);
	}
	/* Answers follow completion, not request order. */
	ck_assert(reordered);
	ck_assert_int_eq(qs_client_recv(c, 50, &resp), -ETIMEDOUT);
	ck_assert_int_eq(metric("qsd_rpc_requests_total{method=\"submit_batch\"}"), N / 2);
	ck_assert_int_eq(metric("qsd_rpc_requests_total{method=\"get_status\"}"), N / 2);
	qs_client_close(c);
}
END_TEST

START_TEST(request_without_body_is_invalid_argument)
{
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__Response *resp;
	struct qs_client *c;

	start_server();
	c = connect_client();
	ck_assert_int_eq(qs_client_call(c, &req, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT);
	ck_assert_uint_eq(resp->request_id, req.request_id);
	qs_client_response_free(resp);
	/* The connection stays usable. */
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_OK);
	qs_client_response_free(resp);
	ck_assert_int_eq(metric("qsd_rpc_errors_total{status=\"invalid_argument\"}"), 1);
	qs_client_close(c);
}
END_TEST

START_TEST(deadline_exceeded_is_answered_and_late_answer_dropped)
{
	Quorumstore__V1__NotifyCommitRequest nc;
	Quorumstore__V1__GetBatchRequest gb;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp;
	uint64_t late_id, never_id, t0;
	struct qs_client *c;

	start_server();
	c = connect_client();
	t0 = now_ms();
	make_commit(&req, &nc, 300); /* answered after 300 ms */
	req.deadline_ms = 100;
	ck_assert_int_eq(qs_client_send(c, &req, &late_id), 0);
	make_get_batch(&req, &gb); /* never answered */
	req.deadline_ms = 150;
	ck_assert_int_eq(qs_client_send(c, &req, &never_id), 0);

	ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), 0);
	ck_assert_uint_eq(resp->request_id, late_id);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED);
	qs_client_response_free(resp);
	ck_assert_uint_lt(now_ms() - t0, 290);
	ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), 0);
	ck_assert_uint_eq(resp->request_id, never_id);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED);
	qs_client_response_free(resp);

	/* The handler's answer at 300 ms is not sent. */
	usleep(400 * 1000);
	ck_assert_int_eq(qs_client_recv(c, 200, &resp), -ETIMEDOUT);
	answer_held(); /* the GetBatch, long after its deadline */
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
	qs_client_response_free(resp);
	ck_assert_int_eq(qs_client_recv(c, 100, &resp), -ETIMEDOUT);
	ck_assert_int_eq(metric("qsd_rpc_responses_dropped_total{reason=\"deadline_exceeded\"}"),
	                 2);
	ck_assert_int_eq(metric("qsd_rpc_errors_total{status=\"deadline_exceeded\"}"), 2);
	ck_assert_int_eq(metric("qsd_rpc_errors_total{status=\"not_found\"}"), 0);
	qs_client_close(c);
}
END_TEST

START_TEST(outstanding_calls_over_limit_get_resource_exhausted)
{
	Quorumstore__V1__GetBatchRequest gb;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp;
	uint64_t id;
	struct qs_client *c;

	start_server();
	c = connect_client();
	for (int i = 0; i <= QS_RPC_MAX_OUTSTANDING; i++) {
		make_get_batch(&req, &gb);
		ck_assert_int_eq(qs_client_send(c, &req, &id), 0);
	}
	ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), 0);
	ck_assert_uint_eq(resp->request_id, id);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED);
	qs_client_response_free(resp);
	ck_assert_uint_eq(held_count(), QS_RPC_MAX_OUTSTANDING);
	answer_held();
	for (int i = 0; i < QS_RPC_MAX_OUTSTANDING; i++) {
		ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), 0);
		ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_NOT_FOUND);
		qs_client_response_free(resp);
	}
	qs_client_close(c);
}
END_TEST

/* ---- tests: lifetimes ---- */

START_TEST(client_disconnect_with_calls_outstanding_is_safe)
{
	Quorumstore__V1__NotifyCommitRequest nc;
	Quorumstore__V1__GetBatchRequest gb;
	Quorumstore__V1__Request req;
	struct qs_client *c;

	start_server();
	c = connect_client();
	for (int i = 0; i < 5; i++) {
		make_get_batch(&req, &gb);
		ck_assert_int_eq(qs_client_send(c, &req, NULL), 0);
	}
	make_commit(&req, &nc, 200);
	ck_assert_int_eq(qs_client_send(c, &req, NULL), 0);
	ck_assert(wait_held(5));
	qs_client_close(c);
	ck_assert(wait_metric("qsd_rpc_connections", 0));
	ck_assert_int_eq(metric("qsd_rpc_responses_dropped_total{reason=\"disconnected\"}"), 6);
	/* Answering the orphaned calls is a no-op, now and from the timer. */
	answer_held();
	usleep(300 * 1000);
	ck_assert_int_eq(metric("qsd_rpc_errors_total{status=\"not_found\"}"), 0);
	/* The server still serves others. */
	c = connect_client();
	qs_client_close(c);
}
END_TEST

START_TEST(server_freed_with_calls_outstanding_is_safe)
{
	Quorumstore__V1__GetBatchRequest gb;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *c;

	start_server();
	c = connect_client();
	for (int i = 0; i < 3; i++) {
		make_get_batch(&req, &gb);
		ck_assert_int_eq(qs_client_send(c, &req, NULL), 0);
	}
	ck_assert(wait_held(3));
	run_on_loop(free_rpc_fn, NULL);
	ck_assert_int_eq(qs_client_recv(c, IO_MS, &resp), -ECONNRESET);
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), -EPIPE);
	answer_held();
	ck_assert_int_eq(metric("qsd_rpc_responses_dropped_total{reason=\"shutdown\"}"), 3);
	ck_assert_int_eq(metric("qsd_rpc_disconnects_total{reason=\"shutdown\"}"), 1);
	ck_assert_int_eq(metric("qsd_rpc_connections"), 0);
	/* The socket file went with the server. */
	ck_assert_int_eq(access(sock_path, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	qs_client_close(c);
}
END_TEST

/* ---- tests: frames ---- */

START_TEST(oversized_frame_closes_connection)
{
	Quorumstore__V1__Response *resp;
	uint32_t len = FRAME_MAX + 1;
	uint8_t header[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                     (uint8_t)len};
	int fd;

	start_server();
	fd = raw_connect();
	raw_hello(fd, 1);
	resp = raw_recv(fd);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_OK);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	raw_write(fd, header, sizeof(header));
	raw_expect_close(fd);
	close(fd);
	ck_assert(wait_metric("qsd_rpc_disconnects_total{reason=\"oversized_frame\"}", 1));
	ck_assert(wait_metric("qsd_rpc_connections", 0));
}
END_TEST

START_TEST(undecodable_frame_closes_connection)
{
	/* Field 1 (varint) whose varint never ends. */
	static const uint8_t frame[] = {0, 0, 0, 3, 0x08, 0xff, 0xff};
	int fd;

	start_server();
	fd = raw_connect();
	raw_write(fd, frame, sizeof(frame));
	raw_expect_close(fd);
	close(fd);
	ck_assert(wait_metric("qsd_rpc_disconnects_total{reason=\"undecodable\"}", 1));
}
END_TEST

/* ---- tests: the socket file ---- */

START_TEST(socket_mode_is_0660)
{
	struct stat st;

	umask(0);
	start_server();
	ck_assert_int_eq(lstat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
}
END_TEST

START_TEST(stale_socket_is_replaced)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct qs_client *c;
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* A socket file that nobody listens on: what a crashed qsd leaves. */
	ck_assert_int_ge(fd, 0);
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	ck_assert_int_eq(lstat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	start_server();
	c = connect_client();
	qs_client_close(c);
}
END_TEST

START_TEST(live_socket_is_not_taken)
{
	struct event_base *b2 = event_base_new();
	struct qs_metrics *m2 = qs_metrics_new();
	struct qs_rpc *second = NULL;
	struct qs_client *c;
	char err[256] = "";

	start_server();
	ck_assert_int_eq(try_start(b2, m2, &second, err, sizeof(err)), -EADDRINUSE);
	ck_assert_ptr_null(second);
	ck_assert_msg(strstr(err, "in use") != NULL, "err: %s", err);
	/* The first server still has its socket. */
	c = connect_client();
	qs_client_close(c);
	qs_metrics_free(m2);
	event_base_free(b2);
}
END_TEST

START_TEST(regular_file_at_path_is_not_removed)
{
	struct qs_rpc *r = NULL;
	char err[256] = "", buf[16] = "";
	FILE *f = fopen(sock_path, "w");

	ck_assert_ptr_nonnull(f);
	fputs("keep me", f);
	fclose(f);
	ck_assert_int_eq(try_start(base, metrics, &r, err, sizeof(err)), -EEXIST);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(err, "not a socket") != NULL, "err: %s", err);
	f = fopen(sock_path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "keep me");
	/* Nothing was registered: a start that failed can be retried. */
	ck_assert_int_eq(metric("qsd_rpc_connections"), -1);
}
END_TEST

/* ---- tests: admission ---- */

START_TEST(uid_not_allowed_is_refused_and_counted)
{
	struct qs_client *c = NULL;
	char err[256] = "";
	int rc;

	cfg.allowed_uids[0] = geteuid() + 1;
	cfg.n_allowed_uids = 1;
	start_server();
	rc = qs_client_connect(sock_path, "intruder", IO_MS, &c, err, sizeof(err));
	ck_assert_int_eq(rc, -ECONNRESET);
	ck_assert_ptr_null(c);
	ck_assert(wait_metric("qsd_rpc_refused_total{reason=\"uid\"}", 1));
	ck_assert_int_eq(metric("qsd_rpc_connections"), 0);
	ck_assert_int_eq(metric("qsd_rpc_requests_total{method=\"hello\"}"), 0);
}
END_TEST

START_TEST(listed_uid_is_allowed)
{
	struct qs_client *c;

	cfg.allowed_uids[0] = geteuid() + 1;
	cfg.allowed_uids[1] = geteuid();
	cfg.n_allowed_uids = 2;
	start_server();
	c = connect_client();
	qs_client_close(c);
}
END_TEST

START_TEST(connections_over_limit_are_refused)
{
	int fds[QS_RPC_MAX_CONNECTIONS], extra;

	start_server();
	for (int i = 0; i < QS_RPC_MAX_CONNECTIONS; i++)
		fds[i] = raw_connect();
	ck_assert(wait_metric("qsd_rpc_connections", QS_RPC_MAX_CONNECTIONS));
	extra = raw_connect();
	raw_expect_close(extra);
	close(extra);
	ck_assert(wait_metric("qsd_rpc_refused_total{reason=\"too_many_connections\"}", 1));
	for (int i = 0; i < QS_RPC_MAX_CONNECTIONS; i++)
		close(fds[i]);
	ck_assert(wait_metric("qsd_rpc_connections", 0));
}
END_TEST

/* ---- tests: the client library ---- */

START_TEST(client_call_queues_responses_for_other_ids)
{
	static uint8_t tx[4] = {1, 2, 3, 4};
	ProtobufCBinaryData txn = {.len = sizeof(tx), .data = tx};
	Quorumstore__V1__SubmitBatchRequest sb;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp;
	uint64_t ids[3];
	struct qs_client *c;

	start_server();
	c = connect_client();
	for (int i = 0; i < 3; i++) {
		make_submit(&req, &sb, &txn, 1, (uint64_t)i * 10);
		ck_assert_int_eq(qs_client_send(c, &req, &ids[i]), 0);
	}
	usleep(150 * 1000); /* their answers are on the socket before the call */
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
	ck_assert_uint_eq(resp->request_id, ids[2] + 1);
	qs_client_response_free(resp);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(qs_client_recv(c, 0, &resp), 0);
		ck_assert_uint_eq(resp->request_id, ids[i]);
		ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH);
		qs_client_response_free(resp);
	}
	ck_assert_int_eq(qs_client_recv(c, 50, &resp), -ETIMEDOUT);
	qs_client_close(c);
}
END_TEST

START_TEST(client_submit_returns_batch_info)
{
	static uint8_t a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8};
	static const uint8_t key[64] = {9};
	ProtobufCBinaryData txns[2] = {{sizeof(a), a}, {sizeof(b), b}};
	Quorumstore__V1__Response *resp;
	struct qs_client *c;

	start_server();
	c = connect_client();
	ck_assert_int_eq(qs_client_submit(c, txns, 2, key, 65, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_submit(c, txns, 2, key, sizeof(key), IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_OK);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH);
	ck_assert_uint_eq(resp->submit_batch->info->num_txns, 2);
	ck_assert(resp->submit_batch->duplicate);
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

START_TEST(client_call_timeout_discards_late_response)
{
	Quorumstore__V1__NotifyCommitRequest nc;
	Quorumstore__V1__Request req;
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *c;

	start_server();
	c = connect_client();
	make_commit(&req, &nc, 200);
	req.deadline_ms = 5000;
	ck_assert_int_eq(qs_client_call(c, &req, 50, &resp), -ETIMEDOUT);
	usleep(300 * 1000);
	/* The late answer is read and dropped, not returned. */
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
	qs_client_response_free(resp);
	ck_assert_int_eq(qs_client_recv(c, 100, &resp), -ETIMEDOUT);
	qs_client_close(c);
}
END_TEST

START_TEST(client_refuses_frame_over_its_limit)
{
	static char reason[400];
	struct qs_client_opts opts = {.frame_max_bytes = 200};
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *c = NULL;
	char err[256] = "";

	memset(reason, 'x', sizeof(reason) - 1);
	status_reason = reason; /* before the loop starts: no race */
	start_server();
	ck_assert_int_eq(
	    qs_client_connect_opts(sock_path, "small", &opts, IO_MS, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), QS_ELIMIT);
	ck_assert_ptr_null(resp);
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), -EPIPE);
	qs_client_close(c);
}
END_TEST

START_TEST(client_connect_without_server_fails)
{
	struct qs_client *c = NULL;
	char err[256] = "";

	ck_assert_int_eq(qs_client_connect(sock_path, "nobody", 200, &c, err, sizeof(err)),
	                 -ENOENT);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err, sock_path) != NULL, "err: %s", err);
}
END_TEST

/* ---- tests: clients that do not read ---- */

static char big_reason[BIG_REASON + 1];

/* GetStatus answers of BIG_REASON bytes each, with a write-stall timeout of
 * `stall_ms` (0: none). Before the loop starts: no race. */
static void
start_big_status_server(uint64_t stall_ms)
{
	memset(big_reason, 'r', BIG_REASON);
	status_reason = big_reason;
	cfg.rpc_write_stall_timeout_us = stall_ms * 1000;
	start_server();
}

/* A raw connection past Hello. */
static int
raw_connect_hello(void)
{
	Quorumstore__V1__Response *resp;
	int fd = raw_connect();

	raw_hello(fd, 1);
	resp = raw_recv(fd);
	ck_assert_int_eq(resp->status, QUORUMSTORE__V1__STATUS__STATUS_OK);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	return fd;
}

/* `n` GetStatus requests, ids 100.., in one write. */
static void
raw_send_statuses(int fd, int n)
{
	Quorumstore__V1__GetStatusRequest gs;
	Quorumstore__V1__Request req;

	for (int i = 0; i < n; i++) {
		make_status(&req, &gs);
		req.request_id = 100 + (uint64_t)i;
		raw_send(fd, &req);
	}
}

/* Read until the server closed `fd` (EOF or reset); fails on the receive
 * timeout. */
static void
raw_drain_to_close(int fd)
{
	static uint8_t buf[64 * 1024];
	ssize_t n;

	do
		n = recv(fd, buf, sizeof(buf), 0);
	while (n > 0);
	ck_assert_msg(n == 0 || errno == ECONNRESET, "expected a close: %s", strerror(errno));
}

/* raw_read_all() at most `chunk` bytes at a time, `pause_ms` apart. */
static void
slow_read_all(int fd, uint8_t *buf, size_t len, size_t chunk, unsigned pause_ms)
{
	for (size_t done = 0; done < len;) {
		size_t n = len - done < chunk ? len - done : chunk;

		raw_read_all(fd, buf + done, n);
		done += n;
		usleep(pause_ms * 1000);
	}
}

START_TEST(client_that_stops_reading_is_closed_after_the_write_stall_timeout)
{
	/* Enough answers to pass the pause mark: qsd stops reading this
	 * client's requests, so only the timeout can end it. */
	int n = (int)(QS_RPC_OUTBUF_PAUSE_BYTES / BIG_REASON) + 8;
	uint64_t t0, elapsed;
	int fd;

	start_big_status_server(STALL_MS);
	fd = raw_connect_hello();
	t0 = now_ms();
	raw_send_statuses(fd, n);
	ck_assert(wait_metric(SLOW_READER, 1));
	elapsed = now_ms() - t0;
	/* Not before the timeout (libevent's coarse clock may be a tick
	 * early), and nothing else closed it. */
	ck_assert_msg(elapsed + 20 >= STALL_MS, "closed after %" PRIu64 " ms", elapsed);
	ck_assert(wait_metric("qsd_rpc_connections", 0));
	ck_assert_int_eq(metric("qsd_rpc_disconnects_total{reason=\"error\"}"), 0);
	raw_drain_to_close(fd);
	close(fd);
	/* The server still serves others. */
	fd = raw_connect_hello();
	close(fd);
}
END_TEST

START_TEST(client_that_reads_slowly_is_not_closed)
{
	/* Answers pending for about 1.5 s, three times the timeout, but read
	 * 64 KiB every 15 ms: the server's writes keep making progress. */
	const int n = 24;
	static uint8_t buf[BIG_REASON + 1024];
	Quorumstore__V1__Response *resp;
	uint8_t header[4];
	uint64_t t0;
	size_t len;
	int fd;

	start_big_status_server(STALL_MS);
	fd = raw_connect_hello();
	t0 = now_ms();
	raw_send_statuses(fd, n);
	for (int i = 0; i < n; i++) {
		slow_read_all(fd, header, sizeof(header), sizeof(header), 0);
		len = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 |
		      header[3];
		ck_assert_uint_le(len, sizeof(buf));
		slow_read_all(fd, buf, len, 64 * 1024, 15);
		resp = quorumstore__v1__response__unpack(NULL, len, buf);
		ck_assert_ptr_nonnull(resp);
		ck_assert_uint_eq(resp->request_id, 100 + (uint64_t)i);
		ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
		ck_assert_uint_eq(strlen(resp->get_status->storage_reason), BIG_REASON);
		quorumstore__v1__response__free_unpacked(resp, NULL);
	}
	ck_assert_uint_ge(now_ms() - t0, 2 * STALL_MS);
	ck_assert_int_eq(metric(SLOW_READER), 0);
	ck_assert_int_eq(metric("qsd_rpc_connections"), 1);
	/* And it goes on being served. */
	raw_send_statuses(fd, 1);
	resp = raw_recv(fd);
	ck_assert_uint_eq(resp->request_id, 100);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	close(fd);
}
END_TEST

static void
reload_stall_fn(void *arg)
{
	cfg.rpc_write_stall_timeout_us = STALL_MS * 1000;
	qs_rpc_reload(rpc);
}

START_TEST(reload_gives_open_connections_the_write_stall_timeout)
{
	int fd;

	start_big_status_server(0);
	fd = raw_connect_hello();
	raw_send_statuses(fd, 16);
	usleep(2 * STALL_MS * 1000);
	ck_assert_int_eq(metric(SLOW_READER), 0);
	ck_assert_int_eq(metric("qsd_rpc_connections"), 1);
	run_on_loop(reload_stall_fn, NULL);
	ck_assert(wait_metric(SLOW_READER, 1));
	ck_assert(wait_metric("qsd_rpc_connections", 0));
	raw_drain_to_close(fd);
	close(fd);
}
END_TEST

static void
poll_until_fn(void *arg)
{
	uint64_t *v = arg;

	v[0] = qs_clock_mono_us();
	v[1] = qs_rpc_poll_until(rpc);
	v[2] = qs_rpc_polling(rpc);
}

static void
set_busy_poll_fn(void *arg)
{
	cfg.rpc_busy_poll_us = *(const uint64_t *)arg;
}

/* An answer makes the loop poll for rpc.busy_poll_us after it and then
 * sleep again; with 0 (the default, or set in place as a reload does) it
 * never polls. (200 ms, over the config's range, so that the loop is
 * surely still polling when the test looks.) */
START_TEST(an_answer_opens_the_busy_poll_window_of_its_setting)
{
	uint64_t v[3], busy = 200000, off = 0, t0;
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *c;

	start_server();
	c = connect_client();
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	qs_client_response_free(resp);
	run_on_loop(poll_until_fn, v);
	ck_assert_uint_eq(v[1], 0);
	ck_assert_uint_eq(v[2], 0);

	run_on_loop(set_busy_poll_fn, &busy);
	t0 = qs_clock_mono_us();
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	qs_client_response_free(resp);
	run_on_loop(poll_until_fn, v);
	ck_assert_uint_ge(v[1], t0 + busy);
	ck_assert_uint_le(v[1], v[0] + busy);
	ck_assert_uint_eq(v[2], 1);
	while (qs_clock_mono_us() < v[1] + 50000)
		usleep(10000);
	run_on_loop(poll_until_fn, v);
	ck_assert_uint_eq(v[2], 0); /* the window has passed: asleep again */

	run_on_loop(set_busy_poll_fn, &off);
	t0 = v[1];
	ck_assert_int_eq(qs_client_status(c, IO_MS, &resp), 0);
	qs_client_response_free(resp);
	run_on_loop(poll_until_fn, v);
	ck_assert_uint_eq(v[1], t0); /* not moved by an answer made with 0 */
	ck_assert_uint_eq(v[2], 0);
	qs_client_close(c);
}
END_TEST

static Suite *
rpc_suite(void)
{
	Suite *s = suite_create("rpc");
	TCase *proto = tcase_create("protocol");
	TCase *life = tcase_create("lifetimes");
	TCase *frames = tcase_create("frames");
	TCase *file = tcase_create("socket_file");
	TCase *admit = tcase_create("admission");
	TCase *client = tcase_create("client");
	TCase *slow = tcase_create("slow_clients");

	tcase_add_checked_fixture(proto, setup, teardown);
	tcase_set_timeout(proto, 20);
	tcase_add_test(proto, hello_must_be_first);
	tcase_add_test(proto, hello_with_other_protocol_version_is_refused);
	tcase_add_test(proto, hello_is_answered_with_server_info);
	tcase_add_test(proto, an_answer_opens_the_busy_poll_window_of_its_setting);
	tcase_add_test(proto, pipelined_requests_are_all_answered_with_their_ids);
	tcase_add_test(proto, request_without_body_is_invalid_argument);
	tcase_add_test(proto, deadline_exceeded_is_answered_and_late_answer_dropped);
	tcase_add_test(proto, outstanding_calls_over_limit_get_resource_exhausted);
	suite_add_tcase(s, proto);

	tcase_add_checked_fixture(life, setup, teardown);
	tcase_set_timeout(life, 20);
	tcase_add_test(life, client_disconnect_with_calls_outstanding_is_safe);
	tcase_add_test(life, server_freed_with_calls_outstanding_is_safe);
	suite_add_tcase(s, life);

	tcase_add_checked_fixture(frames, setup, teardown);
	tcase_set_timeout(frames, 20);
	tcase_add_test(frames, oversized_frame_closes_connection);
	tcase_add_test(frames, undecodable_frame_closes_connection);
	suite_add_tcase(s, frames);

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_set_timeout(file, 20);
	tcase_add_test(file, socket_mode_is_0660);
	tcase_add_test(file, stale_socket_is_replaced);
	tcase_add_test(file, live_socket_is_not_taken);
	tcase_add_test(file, regular_file_at_path_is_not_removed);
	suite_add_tcase(s, file);

	tcase_add_checked_fixture(admit, setup, teardown);
	tcase_set_timeout(admit, 20);
	tcase_add_test(admit, uid_not_allowed_is_refused_and_counted);
	tcase_add_test(admit, listed_uid_is_allowed);
	tcase_add_test(admit, connections_over_limit_are_refused);
	suite_add_tcase(s, admit);

	tcase_add_checked_fixture(client, setup, teardown);
	tcase_set_timeout(client, 20);
	tcase_add_test(client, client_call_queues_responses_for_other_ids);
	tcase_add_test(client, client_submit_returns_batch_info);
	tcase_add_test(client, client_call_timeout_discards_late_response);
	tcase_add_test(client, client_refuses_frame_over_its_limit);
	tcase_add_test(client, client_connect_without_server_fails);
	suite_add_tcase(s, client);

	tcase_add_checked_fixture(slow, setup, teardown);
	tcase_set_timeout(slow, 20);
	tcase_add_test(slow, client_that_stops_reading_is_closed_after_the_write_stall_timeout);
	tcase_add_test(slow, client_that_reads_slowly_is_not_closed);
	tcase_add_test(slow, reload_gives_open_connections_the_write_stall_timeout);
	suite_add_tcase(s, slow);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(rpc_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
