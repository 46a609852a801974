/*
 * daemon/fetch: fetching a batch from its signers, on a real event_base,
 * against a table of fake peers. Each fake peer answers the way its test
 * sets (the batch, not_found, a batch of another digest, transactions that
 * do not hash to the digest, garbage, a wrong request id, or nothing), after
 * a delay, through event_base_once() and a pack/decode round trip, so that
 * answers arrive asynchronously and as the transport would hand them over.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "daemon/clock.h"
#include "daemon/fetch.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"
#include "quorumstore/v1/peer.pb-c.h"

#define CHAIN        7
#define EPOCH        3
#define N_VAL        5 /* validator 0 is this node */
#define SELF         0
#define MAX_TXNS     8
#define MAX_BYTES    4096
#define LIFETIME_US  UINT64_C(60000000)
#define LONG_US      UINT64_C(10000000) /* longer than any test runs */
#define SHORT_US     UINT64_C(20000)    /* tens of ms */
#define WAIT_MS      5000               /* most a test waits for its callbacks */
#define DECODE_BYTES (1u << 20)
#define MAX_REQUESTS 256
#define POOL         16 /* distinct batches fetched at once */

#define RESPONSES(r) "qsd_fetch_responses_total{result=\"" r "\"}"
#define SENT         "qsd_fetch_requests_sent_total"

/* How a fake peer answers a BatchRequest. */
enum answer {
	A_BATCH,       /* the batch asked for */
	A_NOT_FOUND,   /* not_found naming the digest */
	A_SILENT,      /* nothing */
	A_SILENT_ONCE, /* nothing to its first request, the batch to the next */
	A_BAD_DIGEST,  /* the asked digest, one transaction changed */
	A_OTHER_BATCH, /* a valid batch of another digest */
	A_GARBAGE,     /* a BatchResponse with neither a batch nor not_found */
	A_NO_INFO,     /* a batch without its BatchInfo */
	A_OVER_LIMIT,  /* a consistent batch with more transactions than allowed */
	A_WRONG_ID,    /* the batch, under another request id */
	A_TWICE,       /* the batch, sent twice */
};

struct tbatch {
	struct qs_batch_info info;
	char bodies[MAX_TXNS + 2][24];
	ProtobufCBinaryData txns[MAX_TXNS + 2];
	size_t n_txns;
};

/* What a fake transport's send() does besides answering. */
enum send_mode {
	S_QUEUE, /* queues the request: returns 0 */
	S_FAIL,  /* refuses it */
	S_CLOSE, /* closes the connection as a slow reader, from inside send() */
};

struct fake_peer {
	int connected;
	enum answer answer;
	enum send_mode send;
	unsigned delay_ms;
	int requests; /* BatchRequests received */
};

struct request {
	int peer;
	uint64_t id;
};

struct outcome {
	int calls;
	int result;
	struct qs_fetch_result *res;
	int during_free; /* completed from inside qs_fetch_free() */
};

/* One test's world; each test runs in its own process. */
static struct {
	struct event_base *base;
	struct qs_metrics *metrics;
	struct qs_fetch *f;
	struct qs_limits limits;
	struct fake_peer peer[N_VAL];
	struct request req[MAX_REQUESTS];
	int n_req;
	struct tbatch good;       /* the batch peers answer with */
	struct tbatch other;      /* another valid batch */
	struct tbatch big;        /* over the transaction limit */
	struct tbatch pool[POOL]; /* more batches, answered by digest */
	int in_free;
	int in_start;
	int done_calls;
} T;

/* In fork mode every passing ck_assert reports to the parent: loops use this. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #cond);              \
	} while (0)

/* ------------------------------------------------------------------------
 * Batches.
 */

static void
make_batch(struct tbatch *tb, uint64_t batch_id, size_t n_txns, uint64_t epoch)
{
	memset(tb, 0, sizeof(*tb));
	memset(tb->info.author, 0xa5, sizeof(tb->info.author));
	tb->info.batch_id = batch_id;
	tb->info.epoch = epoch;
	tb->info.expiration_us = qs_clock_wall_us() + 30000000;
	tb->info.gas_bucket_start = 11;
	tb->n_txns = n_txns;
	for (size_t i = 0; i < n_txns; i++) {
		int len = snprintf(tb->bodies[i], sizeof(tb->bodies[i]), "txn-%" PRIu64 "-%zu",
		                   batch_id, i);

		tb->txns[i].data = (uint8_t *)tb->bodies[i];
		tb->txns[i].len = (size_t)len;
		tb->info.num_bytes += (uint64_t)len;
	}
	tb->info.num_txns = (uint32_t)n_txns;
	REQUIRE(qs_codec_batch_digest(CHAIN, tb->info.author, epoch, batch_id, tb->txns, n_txns,
	                              tb->info.digest) == 0);
}

/* What a caller with a proof asks for: the proof's BatchInfo. */
static struct qs_batch_info
want_of(const struct tbatch *tb, uint64_t expiration_us)
{
	struct qs_batch_info w = tb->info;

	w.expiration_us = expiration_us;
	w.gas_bucket_start = 99;
	return w;
}

/* ------------------------------------------------------------------------
 * The fake transport.
 */

struct delivery {
	int peer;
	uint8_t *buf;
	size_t len;
	struct delivery *next;
};

static struct delivery *pending; /* scheduled, not delivered yet */

static void
deliver(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg, **pp;
	ProtobufCMessage *msg = NULL;

	for (pp = &pending; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	REQUIRE(qs_frame_unpack(&quorumstore__v1__peer_message__descriptor, d->buf, d->len,
	                        DECODE_BYTES, &msg) == 0);
	qs_fetch_on_response(T.f, d->peer, (Quorumstore__V1__PeerMessage *)msg);
	free(d->buf);
	free(d);
}

/* Pack `pm` and hand it to the fetcher as if from `peer`, `delay_ms` later. */
static void
deliver_later(int peer, const Quorumstore__V1__PeerMessage *pm, unsigned delay_ms)
{
	struct delivery *d = calloc(1, sizeof(*d));
	struct timeval tv = qs_clock_tv_ms(delay_ms);

	REQUIRE(d);
	d->peer = peer;
	d->len = quorumstore__v1__peer_message__get_packed_size(pm);
	d->buf = malloc(d->len ? d->len : 1);
	REQUIRE(d->buf);
	quorumstore__v1__peer_message__pack(pm, d->buf);
	d->next = pending;
	pending = d;
	REQUIRE(event_base_once(T.base, -1, EV_TIMEOUT, deliver, d, &tv) == 0);
}

/* The batch a peer holds under `digest`: one of the pool, else the good one. */
static const struct tbatch *
held(const uint8_t *digest)
{
	for (int i = 0; digest && i < POOL; i++) {
		if (memcmp(T.pool[i].info.digest, digest, QS_DIGEST_BYTES) == 0)
			return &T.pool[i];
	}
	return &T.good;
}

/* A BatchResponse of kind `a` to request `id` for `digest` from `peer`. */
static void
respond(int peer, uint64_t id, const uint8_t *digest, enum answer a, unsigned delay_ms)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchResponse resp = QUORUMSTORE__V1__BATCH_RESPONSE__INIT;
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__BatchNotFound nf = QUORUMSTORE__V1__BATCH_NOT_FOUND__INIT;
	Quorumstore__V1__BatchInfo info;
	const struct tbatch *tb = a == A_OTHER_BATCH  ? &T.other
	                          : a == A_OVER_LIMIT ? &T.big
	                                              : held(digest);
	ProtobufCBinaryData txns[MAX_TXNS + 2];
	uint8_t changed[24];

	memcpy(txns, tb->txns, sizeof(txns));
	qs_batch_info_to_pb(&tb->info, &info);
	batch.info = a == A_NO_INFO ? NULL : &info;
	batch.transactions = txns;
	batch.n_transactions = tb->n_txns;
	if (a == A_BAD_DIGEST) {
		memcpy(changed, txns[0].data, txns[0].len);
		changed[0] ^= 1;
		txns[0].data = changed;
	}
	resp.request_id = a == A_WRONG_ID ? id + 1 : id;
	if (a == A_NOT_FOUND) {
		nf.digest.data = T.good.info.digest;
		nf.digest.len = QS_DIGEST_BYTES;
		resp.result_case = QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND;
		resp.not_found = &nf;
	} else if (a != A_GARBAGE) {
		resp.result_case = QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH;
		resp.batch = &batch;
	}
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE;
	pm.batch_response = &resp;
	deliver_later(peer, &pm, delay_ms);
	if (a == A_TWICE)
		deliver_later(peer, &pm, delay_ms + 1);
}

static int
fake_send(void *arg, int peer, const Quorumstore__V1__PeerMessage *pm)
{
	struct fake_peer *p;
	const Quorumstore__V1__BatchRequest *req;
	enum answer a;

	REQUIRE(peer > 0 && peer < N_VAL);
	REQUIRE(pm->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST);
	req = pm->batch_request;
	REQUIRE(req->digest.len == QS_DIGEST_BYTES);
	p = &T.peer[peer];
	if (!p->connected || p->send == S_FAIL)
		return -ENOTCONN;
	if (p->send == S_CLOSE) {
		p->connected = 0;
		qs_fetch_on_state(T.f, peer, 0);
		return -ENOTCONN;
	}
	REQUIRE(T.n_req < MAX_REQUESTS);
	T.req[T.n_req].peer = peer;
	T.req[T.n_req].id = req->request_id;
	T.n_req++;
	p->requests++;
	a = p->answer;
	if (a == A_SILENT_ONCE)
		a = p->requests == 1 ? A_SILENT : A_BATCH;
	if (a != A_SILENT)
		respond(peer, req->request_id, req->digest.data, a, p->delay_ms);
	return 0;
}

static int
fake_connected(void *arg, int peer)
{
	return peer >= 0 && peer < N_VAL && T.peer[peer].connected;
}

/* ------------------------------------------------------------------------
 * Set-up, the loop, callbacks, metrics.
 */

static struct qs_fetch_options
options(uint32_t parallel, uint64_t try_timeout_us, size_t max_fetches)
{
	struct qs_fetch_options o = {
	    .base = T.base,
	    .chain_id = CHAIN,
	    .limits = &T.limits,
	    .n_validators = N_VAL,
	    .self = SELF,
	    .try_timeout_us = try_timeout_us,
	    .parallel = parallel,
	    .max_fetches = max_fetches,
	    .max_lifetime_us = LIFETIME_US,
	    .send = fake_send,
	    .connected = fake_connected,
	    .transport_arg = NULL,
	    .metrics = T.metrics,
	};

	return o;
}

static void
setup_with(uint32_t parallel, uint64_t try_timeout_us, size_t max_fetches)
{
	struct qs_fetch_options o;

	memset(&T, 0, sizeof(T));
	pending = NULL;
	T.base = event_base_new();
	T.metrics = qs_metrics_new();
	ck_assert_ptr_nonnull(T.base);
	ck_assert_ptr_nonnull(T.metrics);
	T.limits.batch_max_txns = MAX_TXNS;
	T.limits.batch_max_bytes = MAX_BYTES;
	for (int i = 0; i < N_VAL; i++)
		T.peer[i].connected = i != SELF;
	make_batch(&T.good, 42, 3, EPOCH);
	make_batch(&T.other, 43, 2, EPOCH);
	make_batch(&T.big, 44, MAX_TXNS + 1, EPOCH);
	for (int i = 0; i < POOL; i++)
		make_batch(&T.pool[i], 100 + (uint64_t)i, 1 + (size_t)i % MAX_TXNS, EPOCH);
	o = options(parallel, try_timeout_us, max_fetches);
	ck_assert_int_eq(qs_fetch_new(&o, &T.f), 0);
}

static void
setup(uint32_t parallel, uint64_t try_timeout_us)
{
	setup_with(parallel, try_timeout_us, 16);
}

static void
teardown(void)
{
	struct delivery *d;

	qs_fetch_free(T.f);
	while ((d = pending)) {
		pending = d->next;
		free(d->buf);
		free(d);
	}
	event_base_free(T.base);
	qs_metrics_free(T.metrics);
}

static void
on_done(void *arg, int result, struct qs_fetch_result *res)
{
	struct outcome *o = arg;

	REQUIRE(!T.in_start);
	o->calls++;
	o->result = result;
	o->res = res;
	o->during_free = T.in_free;
	T.done_calls++;
}

static int
start(const struct qs_batch_info *want, const int *signers, size_t n, uint64_t deadline_us,
      struct outcome *o, struct qs_fetch_waiter **handle)
{
	int rc;

	T.in_start = 1;
	rc = qs_fetch_start(T.f, want, signers, n, deadline_us, on_done, o, handle);
	T.in_start = 0;
	return rc;
}

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until `cond(arg)` holds or WAIT_MS passed; returns cond. */
static int
run_until(int (*cond)(void *), void *arg)
{
	int expired = 0;
	struct event *guard = evtimer_new(T.base, on_guard, &expired);
	struct timeval tv = qs_clock_tv_ms(WAIT_MS);

	REQUIRE(guard);
	evtimer_add(guard, &tv);
	while (!cond(arg) && !expired)
		event_base_loop(T.base, EVLOOP_ONCE);
	event_free(guard);
	return cond(arg);
}

/* Run the loop for `ms` milliseconds. */
static void
run_for(unsigned ms)
{
	int expired = 0;
	struct event *guard = evtimer_new(T.base, on_guard, &expired);
	struct timeval tv = qs_clock_tv_ms(ms);

	REQUIRE(guard);
	evtimer_add(guard, &tv);
	while (!expired)
		event_base_loop(T.base, EVLOOP_ONCE);
	event_free(guard);
}

static int
done_calls_reach(void *arg)
{
	return T.done_calls >= *(int *)arg;
}

static void
wait_done(int calls)
{
	ck_assert_msg(run_until(done_calls_reach, &calls), "%d done() calls after %d ms, want %d",
	              T.done_calls, WAIT_MS, calls);
}

static int
requests_reach(void *arg)
{
	return T.n_req >= *(int *)arg;
}

static void
wait_requests(int n)
{
	ck_assert_msg(run_until(requests_reach, &n), "%d requests after %d ms, want %d", T.n_req,
	              WAIT_MS, n);
}

/* The value of one series in the rendered registry (0 when absent). */
static uint64_t
metric(const char *series)
{
	char *text = NULL, *p;
	size_t len, n = strlen(series);
	uint64_t v = 0;

	REQUIRE(qs_metrics_render(T.metrics, &text, &len) == 0);
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			v = strtoull(p + n + 1, NULL, 10);
			break;
		}
	}
	free(text);
	return v;
}

static void
check_is_good(const struct qs_fetch_result *r)
{
	ck_assert_ptr_nonnull(r);
	ck_assert_mem_eq(r->info.digest, T.good.info.digest, QS_DIGEST_BYTES);
	ck_assert_mem_eq(r->info.author, T.good.info.author, QS_PUBKEY_BYTES);
	ck_assert_uint_eq(r->info.epoch, EPOCH);
	ck_assert_uint_eq(r->info.batch_id, T.good.info.batch_id);
	ck_assert_uint_eq(r->info.num_txns, T.good.n_txns);
	ck_assert_uint_eq(r->info.num_bytes, T.good.info.num_bytes);
	ck_assert_uint_eq(r->n_txns, T.good.n_txns);
	for (size_t i = 0; i < r->n_txns; i++) {
		REQUIRE(r->txns[i].len == T.good.txns[i].len);
		REQUIRE(memcmp(r->txns[i].data, T.good.txns[i].data, r->txns[i].len) == 0);
	}
	ck_assert_ptr_nonnull(r->msg);
}

static uint64_t
after_us(uint64_t us)
{
	return qs_clock_mono_us() + us;
}

/* setup(), and what most cases fetch: the good batch, without a proof. */
static struct qs_batch_info
setup_good(uint32_t parallel, uint64_t try_timeout_us)
{
	setup(parallel, try_timeout_us);
	return want_of(&T.good, 0);
}

/* The first caller: fetch want from signers (deadline LONG_US away) and
 * wait for its done(). */
static void
fetch_wait(const struct qs_batch_info *want, const int *signers, size_t n, struct outcome *o)
{
	ck_assert_int_eq(start(want, signers, n, after_us(LONG_US), o, NULL), 0);
	wait_done(1);
}

/* Every validator but this node answers a. */
static void
all_answer(enum answer a)
{
	for (int i = 1; i < N_VAL; i++)
		T.peer[i].answer = a;
}

/* A fetch won by `peer`. */
static void
expect_from(const struct outcome *o, int peer)
{
	ck_assert_int_eq(o->result, 0);
	ck_assert_int_eq(o->res->from_peer, peer);
}

/* teardown(), after freeing the result o holds. */
static void
teardown_with(struct outcome *o)
{
	qs_fetch_result_free(o->res);
	teardown();
}

/* ------------------------------------------------------------------------
 * Winning.
 */

START_TEST(first_valid_answer_wins)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};
	uint64_t exp_us = qs_clock_wall_us() + 45000000;

	setup(2, LONG_US);
	want = want_of(&T.good, exp_us);
	T.peer[1].delay_ms = 1;
	T.peer[2].delay_ms = 60;
	ck_assert_int_eq(start(&want, signers, 4, after_us(LONG_US), &o, NULL), 0);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 1);
	wait_done(1);
	ck_assert_int_eq(o.result, 0);
	check_is_good(o.res);
	ck_assert_int_eq(o.res->from_peer, 1);
	/* The proof's fields the digest does not cover are the caller's. */
	ck_assert_uint_eq(o.res->info.expiration_us, exp_us);
	ck_assert_uint_eq(o.res->info.gas_bucket_start, 99);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);

	/* The slower signer's answer arrives after the fetch ended. */
	run_for(120);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(T.n_req, 2);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 1);
	ck_assert_uint_eq(metric(RESPONSES("late")), 1);
	ck_assert_uint_eq(metric(SENT), 2);
	teardown_with(&o);
}
END_TEST

START_TEST(result_outlives_the_fetcher)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	fetch_wait(&want, signers, 1, &o);
	ck_assert_int_eq(o.result, 0);
	teardown();
	/* Fetcher, loop and registry are gone; the result still holds. */
	check_is_good(o.res);
	qs_fetch_result_free(o.res);
}
END_TEST

START_TEST(responder_expiration_is_clamped_when_caller_knows_none)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};
	uint64_t before_us;

	setup(1, LONG_US);
	T.good.info.expiration_us = UINT64_MAX - 1; /* not covered by the digest */
	want = want_of(&T.good, 0);
	before_us = qs_clock_wall_us();
	fetch_wait(&want, signers, 1, &o);
	ck_assert_int_eq(o.result, 0);
	ck_assert_uint_ge(o.res->info.expiration_us, before_us);
	ck_assert_uint_le(o.res->info.expiration_us, qs_clock_wall_us() + LIFETIME_US);
	/* Without a proof, gas_bucket_start is the responder's. */
	ck_assert_uint_eq(o.res->info.gas_bucket_start, 11);
	teardown_with(&o);
}
END_TEST

START_TEST(responder_expiration_in_the_past_is_raised_to_now)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};
	uint64_t before_us;

	setup(1, LONG_US);
	T.good.info.expiration_us = 1;
	want = want_of(&T.good, 0);
	before_us = qs_clock_wall_us();
	fetch_wait(&want, signers, 1, &o);
	ck_assert_int_eq(o.result, 0);
	ck_assert_uint_ge(o.res->info.expiration_us, before_us);
	teardown_with(&o);
}
END_TEST

/* ------------------------------------------------------------------------
 * Invalid answers.
 */

static void
refused_then_next_signer(enum answer bad, const char *label)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	setup(1, LONG_US);
	want = want_of(&T.good, qs_clock_wall_us() + 30000000);
	T.peer[1].answer = bad;
	fetch_wait(&want, signers, 2, &o);
	ck_assert_int_eq(o.result, 0);
	check_is_good(o.res);
	ck_assert_int_eq(o.res->from_peer, 2);
	/* The refused signer was asked once, and not again. */
	ck_assert_int_eq(T.peer[1].requests, 1);
	ck_assert_int_eq(T.peer[2].requests, 1);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 1);
	ck_assert_uint_eq(metric(label), 1);
	teardown_with(&o);
}

START_TEST(wrong_digest_answer_is_ignored_and_next_signer_asked)
{
	refused_then_next_signer(A_BAD_DIGEST, RESPONSES("bad_digest"));
}
END_TEST

START_TEST(another_batch_is_ignored_and_next_signer_asked)
{
	refused_then_next_signer(A_OTHER_BATCH, RESPONSES("bad_digest"));
}
END_TEST

START_TEST(garbage_answer_is_malformed_and_next_signer_asked)
{
	refused_then_next_signer(A_GARBAGE, RESPONSES("malformed"));
}
END_TEST

START_TEST(batch_without_info_is_malformed_and_next_signer_asked)
{
	refused_then_next_signer(A_NO_INFO, RESPONSES("malformed"));
}
END_TEST

START_TEST(batch_over_the_limits_is_malformed_and_next_signer_asked)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	setup(1, LONG_US);
	/* It claims the digest asked, so only the limit check can refuse it. */
	memcpy(T.big.info.digest, T.good.info.digest, QS_DIGEST_BYTES);
	want = want_of(&T.good, qs_clock_wall_us() + 30000000);
	T.peer[1].answer = A_OVER_LIMIT;
	fetch_wait(&want, signers, 2, &o);
	expect_from(&o, 2);
	ck_assert_uint_eq(metric(RESPONSES("malformed")), 1);
	teardown_with(&o);
}
END_TEST

START_TEST(batch_of_another_epoch_than_asked_is_refused)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	setup(1, LONG_US);
	/* The caller's proof names epoch 4 for a digest that covers epoch 3:
	 * no answer can be valid. */
	want = want_of(&T.good, qs_clock_wall_us() + 30000000);
	want.epoch = EPOCH + 1;
	fetch_wait(&want, signers, 2, &o);
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	ck_assert_ptr_null(o.res);
	ck_assert_uint_eq(metric(RESPONSES("malformed")), 2);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * Not found, timeouts.
 */

START_TEST(all_not_found_completes_before_the_deadline)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};

	/* Tries and deadline far longer than the wait: only the answers can
	 * end it. */
	want = setup_good(2, LONG_US);
	all_answer(A_NOT_FOUND);
	fetch_wait(&want, signers, 4, &o);
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	ck_assert_ptr_null(o.res);
	ck_assert_int_eq(T.n_req, 4);
	ck_assert_uint_eq(metric(RESPONSES("not_found")), 4);
	ck_assert_uint_eq(metric(SENT), 4);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	teardown();
}
END_TEST

START_TEST(not_found_and_invalid_answers_together_are_not_found)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(2, LONG_US);
	T.peer[1].answer = A_NOT_FOUND;
	T.peer[2].answer = A_BAD_DIGEST;
	fetch_wait(&want, signers, 2, &o);
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	teardown();
}
END_TEST

START_TEST(silent_signer_is_left_after_try_timeout)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, SHORT_US);
	T.peer[1].answer = A_SILENT;
	fetch_wait(&want, signers, 2, &o);
	expect_from(&o, 2);
	ck_assert_int_ge(T.peer[1].requests, 1);
	teardown_with(&o);
}
END_TEST

START_TEST(silent_signer_is_asked_again_in_a_later_round)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, SHORT_US);
	T.peer[1].answer = A_SILENT_ONCE;
	fetch_wait(&want, signers, 1, &o);
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(T.peer[1].requests, 2);
	/* Both requests carried the fetch's one id. */
	ck_assert_uint_eq(T.req[0].id, T.req[1].id);
	teardown_with(&o);
}
END_TEST

START_TEST(silent_signers_time_out_at_the_deadline)
{
	int signers[] = {1, 2, 3};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, SHORT_US);
	all_answer(A_SILENT);
	ck_assert_int_eq(start(&want, signers, 3, after_us(8 * SHORT_US), &o, NULL), 0);
	wait_done(1);
	ck_assert_int_eq(o.result, -ETIMEDOUT);
	ck_assert_ptr_null(o.res);
	ck_assert_int_ge(T.n_req, 1);
	ck_assert_uint_eq(metric(SENT), (uint64_t)T.n_req);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	teardown();
}
END_TEST

START_TEST(deadline_already_passed_completes_on_the_loop)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, SHORT_US);
	ck_assert_int_eq(start(&want, signers, 1, qs_clock_mono_us() - 1, &o, NULL), 0);
	ck_assert_int_eq(o.calls, 0);
	wait_done(1);
	/* Nobody was asked. */
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	ck_assert_int_eq(T.n_req, 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * Connections.
 */

START_TEST(disconnected_signers_are_skipped)
{
	int signers[] = {1, 2, 3};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].connected = 0;
	T.peer[2].connected = 0;
	fetch_wait(&want, signers, 3, &o);
	expect_from(&o, 3);
	ck_assert_int_eq(T.peer[1].requests, 0);
	ck_assert_int_eq(T.peer[2].requests, 0);
	teardown_with(&o);
}
END_TEST

START_TEST(none_connected_is_not_found_at_the_deadline)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(2, SHORT_US);
	for (int i = 1; i < N_VAL; i++)
		T.peer[i].connected = 0;
	ck_assert_int_eq(start(&want, signers, 4, after_us(3 * SHORT_US), &o, NULL), 0);
	wait_done(1);
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	ck_assert_int_eq(T.n_req, 0);
	ck_assert_uint_eq(metric(SENT), 0);
	teardown();
}
END_TEST

START_TEST(signer_that_goes_away_is_left_at_once)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	/* Tries longer than the wait: only the disconnection moves it on. */
	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_SILENT;
	ck_assert_int_eq(start(&want, signers, 2, after_us(LONG_US), &o, NULL), 0);
	wait_requests(1);
	ck_assert_int_eq(T.req[0].peer, 1);
	T.peer[1].connected = 0;
	qs_fetch_on_state(T.f, 1, 0);
	ck_assert_int_eq(o.calls, 0);
	wait_done(1);
	expect_from(&o, 2);
	teardown_with(&o);
}
END_TEST

START_TEST(signer_that_connects_is_asked)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].connected = 0;
	T.peer[2].connected = 0;
	ck_assert_int_eq(start(&want, signers, 2, after_us(LONG_US), &o, NULL), 0);
	run_for(30);
	ck_assert_int_eq(T.n_req, 0);
	ck_assert_int_eq(o.calls, 0);
	T.peer[2].connected = 1;
	qs_fetch_on_state(T.f, 2, 1);
	wait_done(1);
	expect_from(&o, 2);
	teardown_with(&o);
}
END_TEST

START_TEST(answer_lost_with_its_connection_is_asked_again)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_SILENT;
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &o, NULL), 0);
	wait_requests(1);
	/* The connection drops and comes back; the request went with it. */
	qs_fetch_on_state(T.f, 1, 0);
	T.peer[1].answer = A_BATCH;
	qs_fetch_on_state(T.f, 1, 1);
	wait_done(1);
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(T.peer[1].requests, 2);
	teardown_with(&o);
}
END_TEST

START_TEST(refused_send_moves_on_to_the_next_signer)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].send = S_FAIL;
	fetch_wait(&want, signers, 2, &o);
	expect_from(&o, 2);
	/* Only requests the transport queued are counted. */
	ck_assert_uint_eq(metric(SENT), 1);
	teardown_with(&o);
}
END_TEST

START_TEST(connection_closed_from_inside_send_moves_on)
{
	int signers[] = {1, 2, 3};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(2, LONG_US);
	T.peer[1].send = S_CLOSE;
	T.peer[2].answer = A_SILENT;
	fetch_wait(&want, signers, 3, &o);
	expect_from(&o, 3);
	teardown_with(&o);
}
END_TEST

START_TEST(self_is_never_asked)
{
	int signers[] = {SELF};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &o, NULL), 0);
	ck_assert_int_eq(o.calls, 0);
	wait_done(1);
	ck_assert_int_eq(o.result, QS_ENOTFOUND);
	ck_assert_int_eq(T.n_req, 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * Who may answer.
 */

/* A response from `peer` to request `id` carrying the good batch, now. */
static void
inject(int peer, uint64_t id)
{
	respond(peer, id, NULL, A_BATCH, 0);
	run_for(10);
}

START_TEST(unknown_ids_and_peers_not_asked_are_dropped_and_counted)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};
	uint64_t id;

	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_SILENT;
	ck_assert_int_eq(start(&want, signers, 2, after_us(LONG_US), &o, NULL), 0);
	wait_requests(1);
	ck_assert_int_eq(T.req[0].peer, 1);
	id = T.req[0].id;

	inject(3, id);     /* a validator that was not asked */
	inject(2, id);     /* a signer not asked yet */
	inject(1, id + 1); /* the asked one, under another id */
	inject(1, 0);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_uint_eq(metric(RESPONSES("unsolicited")), 4);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 0);

	inject(1, id);
	ck_assert_int_eq(o.calls, 1);
	expect_from(&o, 1);
	teardown_with(&o);
}
END_TEST

START_TEST(answer_under_a_wrong_id_does_not_win)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, SHORT_US);
	T.peer[1].answer = A_WRONG_ID;
	fetch_wait(&want, signers, 2, &o);
	expect_from(&o, 2);
	ck_assert_uint_ge(metric(RESPONSES("unsolicited")), 1);
	teardown_with(&o);
}
END_TEST

START_TEST(second_answer_from_one_peer_is_unsolicited)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_NOT_FOUND;
	T.peer[2].delay_ms = 50;
	ck_assert_int_eq(start(&want, signers, 2, after_us(LONG_US), &o, NULL), 0);
	wait_requests(2);
	/* Peer 1 said not_found; now it claims to have the batch. */
	inject(1, T.req[0].id);
	run_for(20);
	ck_assert_uint_eq(metric(RESPONSES("unsolicited")), 1);
	wait_done(1);
	ck_assert_int_eq(o.res->from_peer, 2);
	teardown_with(&o);
}
END_TEST

START_TEST(message_that_is_not_a_response_is_unsolicited)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;

	setup(1, LONG_US);
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST;
	pm.batch_request = &req;
	deliver_later(1, &pm, 0);
	run_for(10);
	ck_assert_uint_eq(metric(RESPONSES("unsolicited")), 1);
	qs_fetch_on_response(T.f, 1, NULL);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * Callers.
 */

START_TEST(two_callers_share_one_network_fetch)
{
	int signers_a[] = {1, 2}, signers_b[] = {2, 1};
	struct qs_batch_info want_a, want_b;
	struct outcome a = {0}, b = {0};
	uint64_t exp_us = qs_clock_wall_us() + 40000000;

	setup(1, LONG_US);
	want_a = want_of(&T.good, exp_us);
	want_b = want_of(&T.good, 0);
	T.peer[1].delay_ms = 5;
	ck_assert_int_eq(start(&want_a, signers_a, 2, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want_b, signers_b, 2, after_us(LONG_US), &b, NULL), 0);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 1);
	wait_done(2);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(a.result, 0);
	ck_assert_int_eq(b.result, 0);
	check_is_good(a.res);
	check_is_good(b.res);
	ck_assert_int_eq(T.n_req, 1);
	ck_assert_uint_eq(metric(SENT), 1);
	/* Each caller's info is its own: a had a proof, b had none. */
	ck_assert_uint_eq(a.res->info.expiration_us, exp_us);
	ck_assert_uint_eq(b.res->info.expiration_us, T.good.info.expiration_us);
	ck_assert_uint_eq(b.res->info.gas_bucket_start, 11);
	/* Shared, and each result freed on its own. */
	ck_assert_ptr_eq(a.res->txns, b.res->txns);
	qs_fetch_result_free(a.res);
	check_is_good(b.res);
	qs_fetch_result_free(b.res);
	teardown();
}
END_TEST

START_TEST(joined_callers_signers_are_asked_too)
{
	int signers_a[] = {1}, signers_b[] = {2};
	struct qs_batch_info want;
	struct outcome a = {0}, b = {0};

	want = setup_good(1, SHORT_US);
	T.peer[1].answer = A_NOT_FOUND;
	T.peer[1].delay_ms = 30;
	ck_assert_int_eq(start(&want, signers_a, 1, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want, signers_b, 1, after_us(LONG_US), &b, NULL), 0);
	wait_done(2);
	ck_assert_int_eq(a.result, 0);
	ck_assert_int_eq(b.result, 0);
	ck_assert_int_eq(a.res->from_peer, 2);
	qs_fetch_result_free(a.res);
	qs_fetch_result_free(b.res);
	teardown();
}
END_TEST

START_TEST(same_digest_of_another_epoch_is_another_fetch)
{
	int signers[] = {1};
	struct qs_batch_info want_a, want_b;
	struct outcome a = {0}, b = {0};

	setup(1, LONG_US);
	want_a = want_of(&T.good, 0);
	want_b = want_a;
	want_b.epoch = EPOCH + 1;
	ck_assert_int_eq(start(&want_a, signers, 1, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want_b, signers, 1, after_us(LONG_US), &b, NULL), 0);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 2);
	wait_done(2);
	ck_assert_int_eq(a.result, 0);
	ck_assert_int_eq(b.result, QS_ENOTFOUND);
	qs_fetch_result_free(a.res);
	teardown();
}
END_TEST

START_TEST(joined_caller_with_an_earlier_deadline_times_out_alone)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome a = {0}, b = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].delay_ms = 200;
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want, signers, 1, after_us(3 * SHORT_US), &b, NULL), 0);
	wait_done(1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(b.result, -ETIMEDOUT);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 1);
	wait_done(2);
	ck_assert_int_eq(a.result, 0);
	ck_assert_int_eq(T.n_req, 1);
	qs_fetch_result_free(a.res);
	teardown();
}
END_TEST

START_TEST(many_fetches_at_once_each_get_their_batch)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	static struct outcome o[POOL];
	struct qs_fetch_waiter *w[POOL];

	setup_with(2, LONG_US, POOL);
	for (int i = 0; i < POOL; i++) {
		want = want_of(&T.pool[i], 0);
		REQUIRE(start(&want, signers, 4, after_us(LONG_US), &o[i], &w[i]) == 0);
	}
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), POOL);
	/* Withdraw every third caller: their fetches leave the tables. */
	for (int i = 0; i < POOL; i += 3)
		qs_fetch_cancel(w[i]);
	wait_done(POOL - (POOL + 2) / 3);
	for (int i = 0; i < POOL; i++) {
		if (i % 3 == 0) {
			REQUIRE(o[i].calls == 0);
			continue;
		}
		REQUIRE(o[i].calls == 1 && o[i].result == 0);
		REQUIRE(memcmp(o[i].res->info.digest, T.pool[i].info.digest, QS_DIGEST_BYTES) == 0);
		REQUIRE(o[i].res->n_txns == T.pool[i].n_txns);
		qs_fetch_result_free(o[i].res);
	}
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	teardown();
}
END_TEST

START_TEST(cancelled_caller_is_not_called_and_the_other_is)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome a = {0}, b = {0};
	struct qs_fetch_waiter *wa = NULL;

	want = setup_good(1, LONG_US);
	T.peer[1].delay_ms = 20;
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &a, &wa), 0);
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &b, NULL), 0);
	ck_assert_ptr_nonnull(wa);
	qs_fetch_cancel(wa);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 1);
	wait_done(1);
	run_for(20);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(b.result, 0);
	qs_fetch_result_free(b.res);
	teardown();
}
END_TEST

START_TEST(cancelling_the_last_caller_stops_the_fetch)
{
	int signers[] = {1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};
	struct qs_fetch_waiter *w = NULL;

	want = setup_good(1, SHORT_US);
	T.peer[1].delay_ms = 60;
	ck_assert_int_eq(start(&want, signers, 2, after_us(LONG_US), &o, &w), 0);
	wait_requests(1);
	qs_fetch_cancel(w);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	/* No more tries, and the answer that arrives is late. */
	run_for(150);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(T.n_req, 1);
	ck_assert_uint_eq(metric(RESPONSES("late")), 1);
	qs_fetch_cancel(NULL);
	teardown();
}
END_TEST

START_TEST(cancel_right_after_start_sends_nothing)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};
	struct qs_fetch_waiter *w = NULL;

	want = setup_good(1, LONG_US);
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &o, &w), 0);
	qs_fetch_cancel(w);
	run_for(30);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(T.n_req, 0);
	teardown();
}
END_TEST

START_TEST(free_completes_every_caller_with_shutdown)
{
	int signers[] = {1, 2};
	struct qs_batch_info want_a, want_b;
	struct outcome a = {0}, b = {0}, c = {0};

	setup(1, LONG_US);
	want_a = want_of(&T.good, 0);
	want_b = want_of(&T.other, 0);
	all_answer(A_SILENT);
	ck_assert_int_eq(start(&want_a, signers, 2, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want_a, signers, 2, after_us(LONG_US), &b, NULL), 0);
	ck_assert_int_eq(start(&want_b, signers, 2, after_us(LONG_US), &c, NULL), 0);
	wait_requests(2);
	T.in_free = 1;
	qs_fetch_free(T.f);
	T.in_free = 0;
	T.f = NULL;
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(a.result, QS_ESHUTDOWN);
	ck_assert_int_eq(b.result, QS_ESHUTDOWN);
	ck_assert_int_eq(c.result, QS_ESHUTDOWN);
	ck_assert(a.during_free && b.during_free && c.during_free);
	teardown();
}
END_TEST

/* A done() that starts a new fetch while qs_fetch_free() runs. */
static struct qs_batch_info restart_want;
static int restart_rc;

static void
on_done_restart(void *arg, int result, struct qs_fetch_result *res)
{
	int signers[] = {1};

	on_done(arg, result, res);
	restart_rc =
	    qs_fetch_start(T.f, &restart_want, signers, 1, after_us(LONG_US), on_done, arg, NULL);
}

START_TEST(start_from_a_done_during_free_is_refused)
{
	int signers[] = {1};
	struct outcome o = {0};

	setup(1, LONG_US);
	restart_want = want_of(&T.good, 0);
	T.peer[1].answer = A_SILENT;
	ck_assert_int_eq(qs_fetch_start(T.f, &restart_want, signers, 1, after_us(LONG_US),
	                                on_done_restart, &o, NULL),
	                 0);
	qs_fetch_free(T.f);
	T.f = NULL;
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(restart_rc, QS_ESHUTDOWN);
	teardown();
}
END_TEST

/* A done() that cancels the other caller of the same fetch. */
static struct qs_fetch_waiter *other_waiter;

static void
on_done_cancel_other(void *arg, int result, struct qs_fetch_result *res)
{
	on_done(arg, result, res);
	qs_fetch_cancel(other_waiter);
	other_waiter = NULL;
}

START_TEST(done_may_cancel_another_caller_of_its_fetch)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome a = {0}, b = {0};

	want = setup_good(1, LONG_US);
	ck_assert_int_eq(qs_fetch_start(T.f, &want, signers, 1, after_us(LONG_US),
	                                on_done_cancel_other, &a, NULL),
	                 0);
	ck_assert_int_eq(start(&want, signers, 1, after_us(LONG_US), &b, &other_waiter), 0);
	wait_done(1);
	run_for(20);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);
	qs_fetch_result_free(a.res);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * Parallelism, bounds, arguments.
 */

START_TEST(parallel_two_asks_two_at_once)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(2, LONG_US);
	all_answer(A_SILENT);
	ck_assert_int_eq(start(&want, signers, 4, after_us(LONG_US), &o, NULL), 0);
	wait_requests(2);
	run_for(50);
	ck_assert_int_eq(T.n_req, 2);
	ck_assert_int_ne(T.req[0].peer, T.req[1].peer);
	ck_assert_uint_eq(T.req[0].id, T.req[1].id);
	ck_assert_uint_eq(metric(SENT), 2);
	ck_assert_int_eq(o.calls, 0);
	teardown();
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.result, QS_ESHUTDOWN);
}
END_TEST

START_TEST(reloaded_parallel_applies_to_the_next_try)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	all_answer(A_SILENT);
	ck_assert_int_eq(qs_fetch_set_tries(T.f, 0, 2), -EINVAL);
	ck_assert_int_eq(qs_fetch_set_tries(T.f, LONG_US, 0), -EINVAL);
	ck_assert_int_eq(qs_fetch_set_tries(T.f, LONG_US, 3), 0);
	ck_assert_int_eq(start(&want, signers, 4, after_us(LONG_US), &o, NULL), 0);
	wait_requests(3);
	run_for(30);
	ck_assert_int_eq(T.n_req, 3);
	teardown();
}
END_TEST

START_TEST(next_try_takes_the_next_signers_round_robin)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};
	int seen[N_VAL] = {0};

	want = setup_good(2, SHORT_US);
	all_answer(A_SILENT);
	ck_assert_int_eq(start(&want, signers, 4, after_us(LONG_US), &o, NULL), 0);
	wait_requests(4);
	for (int i = 0; i < 4; i++)
		seen[T.req[i].peer]++;
	for (int i = 1; i < N_VAL; i++)
		ck_assert_int_eq(seen[i], 1);
	teardown();
}
END_TEST

START_TEST(max_fetches_bounds_distinct_digests)
{
	int signers[] = {1};
	struct qs_batch_info want_a, want_b;
	struct outcome a = {0}, b = {0}, c = {0};

	setup_with(1, LONG_US, 1);
	want_a = want_of(&T.good, 0);
	want_b = want_of(&T.other, 0);
	all_answer(A_SILENT);
	ck_assert_int_eq(start(&want_a, signers, 1, after_us(LONG_US), &a, NULL), 0);
	ck_assert_int_eq(start(&want_b, signers, 1, after_us(LONG_US), &b, NULL), QS_EQUEUEFULL);
	/* Joining a digest in flight takes no new slot. */
	ck_assert_int_eq(start(&want_a, signers, 1, after_us(LONG_US), &c, NULL), 0);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 1);
	teardown();
	ck_assert_int_eq(b.calls, 0);
}
END_TEST

START_TEST(callers_per_fetch_are_bounded)
{
	int signers[] = {1};
	struct qs_batch_info want;
	static struct outcome o[QS_FETCH_MAX_WAITERS + 1];

	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_SILENT;
	for (int i = 0; i < QS_FETCH_MAX_WAITERS; i++)
		REQUIRE(start(&want, signers, 1, after_us(LONG_US), &o[i], NULL) == 0);
	ck_assert_int_eq(
	    start(&want, signers, 1, after_us(LONG_US), &o[QS_FETCH_MAX_WAITERS], NULL),
	    QS_EQUEUEFULL);
	teardown();
	ck_assert_int_eq(T.done_calls, QS_FETCH_MAX_WAITERS);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
	int signers[] = {1, 2};
	int out_of_range[] = {1, N_VAL};
	int negative[] = {-1};
	int too_many[N_VAL + 1] = {1, 2, 3, 4, 1, 2};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	ck_assert_int_eq(start(&want, signers, 0, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(start(&want, NULL, 1, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(start(NULL, signers, 2, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(start(&want, out_of_range, 2, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(start(&want, negative, 1, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(start(&want, too_many, N_VAL + 1, after_us(LONG_US), &o, NULL), -EINVAL);
	ck_assert_int_eq(qs_fetch_start(T.f, &want, signers, 2, after_us(LONG_US), NULL, &o, NULL),
	                 -EINVAL);
	ck_assert_uint_eq(qs_fetch_in_flight(T.f), 0);
	teardown();
	ck_assert_int_eq(o.calls, 0);
}
END_TEST

START_TEST(bad_options_are_refused)
{
	struct qs_fetch *f = NULL;
	struct qs_fetch_options o;

	setup(1, LONG_US);
	o = options(1, LONG_US, 4);
	o.parallel = 0;
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, 0, 4);
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, 0);
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, QS_FETCH_MAX_FETCHES + 1);
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, 4);
	o.self = N_VAL;
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, 4);
	o.n_validators = 0;
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, 4);
	o.send = NULL;
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	o = options(1, LONG_US, 4);
	o.max_lifetime_us = 0;
	ck_assert_int_eq(qs_fetch_new(&o, &f), -EINVAL);
	ck_assert_ptr_null(f);
	/* A second fetcher on the same registry shares its families. */
	o = options(1, LONG_US, 4);
	ck_assert_int_eq(qs_fetch_new(&o, &f), 0);
	qs_fetch_free(f);
	qs_fetch_free(NULL);
	teardown();
}
END_TEST

START_TEST(metrics_count_each_outcome)
{
	int signers[] = {1, 2, 3, 4};
	struct qs_batch_info want;
	struct outcome o = {0};

	/* One not_found, one bad digest, one garbage, then the winner; all
	 * asked at once so every answer reaches the running fetch. */
	want = setup_good(4, LONG_US);
	T.peer[1].answer = A_NOT_FOUND;
	T.peer[2].answer = A_BAD_DIGEST;
	T.peer[3].answer = A_GARBAGE;
	T.peer[4].delay_ms = 50;
	fetch_wait(&want, signers, 4, &o);
	expect_from(&o, 4);
	ck_assert_uint_eq(metric(SENT), 4);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 1);
	ck_assert_uint_eq(metric(RESPONSES("not_found")), 1);
	ck_assert_uint_eq(metric(RESPONSES("bad_digest")), 1);
	ck_assert_uint_eq(metric(RESPONSES("malformed")), 1);
	ck_assert_uint_eq(metric(RESPONSES("late")), 0);
	ck_assert_uint_eq(metric(RESPONSES("unsolicited")), 0);
	teardown_with(&o);
}
END_TEST

START_TEST(without_a_registry_nothing_is_counted)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};
	struct qs_fetch_options opt;

	setup(1, LONG_US);
	qs_fetch_free(T.f);
	opt = options(1, LONG_US, 4);
	opt.metrics = NULL;
	ck_assert_int_eq(qs_fetch_new(&opt, &T.f), 0);
	want = want_of(&T.good, 0);
	fetch_wait(&want, signers, 1, &o);
	ck_assert_int_eq(o.result, 0);
	teardown_with(&o);
}
END_TEST

START_TEST(duplicate_answer_after_the_win_is_unsolicited)
{
	int signers[] = {1};
	struct qs_batch_info want;
	struct outcome o = {0};

	want = setup_good(1, LONG_US);
	T.peer[1].answer = A_TWICE;
	fetch_wait(&want, signers, 1, &o);
	run_for(20);
	ck_assert_uint_eq(metric(RESPONSES("ok")), 1);
	ck_assert_uint_eq(metric(RESPONSES("unsolicited")), 1);
	ck_assert_uint_eq(metric(RESPONSES("late")), 0);
	teardown_with(&o);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fetch");
	TCase *win = tcase_create("win");
	TCase *bad = tcase_create("invalid_answers");
	TCase *time = tcase_create("not_found_and_time");
	TCase *conn = tcase_create("connections");
	TCase *who = tcase_create("who_may_answer");
	TCase *callers = tcase_create("callers");
	TCase *bounds = tcase_create("bounds");
	TCase *all[] = {win, bad, time, conn, who, callers, bounds};
	SRunner *sr;
	int failed;

	/* Refused answers are logged at LOG_WARNING; QS_TEST_DEBUG shows them. */
	qs_log_set_level(getenv("QS_TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_set_timeout(all[i], 30);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(win, first_valid_answer_wins);
	tcase_add_test(win, result_outlives_the_fetcher);
	tcase_add_test(win, responder_expiration_is_clamped_when_caller_knows_none);
	tcase_add_test(win, responder_expiration_in_the_past_is_raised_to_now);
	tcase_add_test(bad, wrong_digest_answer_is_ignored_and_next_signer_asked);
	tcase_add_test(bad, another_batch_is_ignored_and_next_signer_asked);
	tcase_add_test(bad, garbage_answer_is_malformed_and_next_signer_asked);
	tcase_add_test(bad, batch_without_info_is_malformed_and_next_signer_asked);
	tcase_add_test(bad, batch_over_the_limits_is_malformed_and_next_signer_asked);
	tcase_add_test(bad, batch_of_another_epoch_than_asked_is_refused);
	tcase_add_test(time, all_not_found_completes_before_the_deadline);
	tcase_add_test(time, not_found_and_invalid_answers_together_are_not_found);
	tcase_add_test(time, silent_signer_is_left_after_try_timeout);
	tcase_add_test(time, silent_signer_is_asked_again_in_a_later_round);
	tcase_add_test(time, silent_signers_time_out_at_the_deadline);
	tcase_add_test(time, deadline_already_passed_completes_on_the_loop);
	tcase_add_test(conn, disconnected_signers_are_skipped);
	tcase_add_test(conn, none_connected_is_not_found_at_the_deadline);
	tcase_add_test(conn, signer_that_goes_away_is_left_at_once);
	tcase_add_test(conn, signer_that_connects_is_asked);
	tcase_add_test(conn, answer_lost_with_its_connection_is_asked_again);
	tcase_add_test(conn, refused_send_moves_on_to_the_next_signer);
	tcase_add_test(conn, connection_closed_from_inside_send_moves_on);
	tcase_add_test(conn, self_is_never_asked);
	tcase_add_test(who, unknown_ids_and_peers_not_asked_are_dropped_and_counted);
	tcase_add_test(who, answer_under_a_wrong_id_does_not_win);
	tcase_add_test(who, second_answer_from_one_peer_is_unsolicited);
	tcase_add_test(who, duplicate_answer_after_the_win_is_unsolicited);
	tcase_add_test(who, message_that_is_not_a_response_is_unsolicited);
	tcase_add_test(callers, two_callers_share_one_network_fetch);
	tcase_add_test(callers, joined_callers_signers_are_asked_too);
	tcase_add_test(callers, same_digest_of_another_epoch_is_another_fetch);
	tcase_add_test(callers, joined_caller_with_an_earlier_deadline_times_out_alone);
	tcase_add_test(callers, many_fetches_at_once_each_get_their_batch);
	tcase_add_test(callers, cancelled_caller_is_not_called_and_the_other_is);
	tcase_add_test(callers, cancelling_the_last_caller_stops_the_fetch);
	tcase_add_test(callers, cancel_right_after_start_sends_nothing);
	tcase_add_test(callers, free_completes_every_caller_with_shutdown);
	tcase_add_test(callers, start_from_a_done_during_free_is_refused);
	tcase_add_test(callers, done_may_cancel_another_caller_of_its_fetch);
	tcase_add_test(bounds, parallel_two_asks_two_at_once);
	tcase_add_test(bounds, next_try_takes_the_next_signers_round_robin);
	tcase_add_test(bounds, reloaded_parallel_applies_to_the_next_try);
	tcase_add_test(bounds, max_fetches_bounds_distinct_digests);
	tcase_add_test(bounds, callers_per_fetch_are_bounded);
	tcase_add_test(bounds, bad_arguments_are_refused);
	tcase_add_test(bounds, bad_options_are_refused);
	tcase_add_test(bounds, metrics_count_each_outcome);
	tcase_add_test(bounds, without_a_registry_nothing_is_counted);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
