/*
 * SubmitBatch and GetStatus seen from a consensus process: a real qsd, the
 * only validator of a 1-validator cluster written by tools/mkcluster 1 (its
 * own signature alone is a quorum, so every batch it stores becomes a proof
 * of store at once, served by GetPayload), driven over its RPC socket with
 * the client library (client/qsclient.h). tests/check_serve.c tests the
 * serving requests in depth.
 *
 * One qsd (the "shared" node) runs for the whole file, started in main()
 * before the tests fork; the tests that need another config (allowed_uids)
 * or a restart start a node of their own, a child of the test process that
 * dies with it.
 *
 * Run from the repository root (make check-unit does). Environment: B, the
 * build directory holding qsd and qsctl (default: the one this binary is in,
 * else build). QS_TEST_KEEP=1 keeps the temporary directory (clusters, the
 * databases and qsd's logs).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/qsclient.h"
#include "core/codec.h"
#include "core/error.h"
#include "tests/lib/node.h"
#include "tests/lib/tmpdir.h"

#define IO_TIMEOUT_MS  30000 /* one answer from qsd; sanitized builds are slow */
#define TEST_TIMEOUT_S 120   /* the restart test starts qsd three times */

/* Written into every node's config; the cases are sized against them. */
#define LIM_BATCH_TXNS  16
#define LIM_BATCH_BYTES 65536
#define LIFETIME_MS     600000
#define TXN_BYTES       256
#define MAX_TXNS        (LIM_BATCH_TXNS + 1)
#define N_PIPELINED     100

#define STATUS(name) QUORUMSTORE__V1__STATUS__STATUS_##name
#define BODY(name)   QUORUMSTORE__V1__RESPONSE__BODY_##name

#define FORMED  "qsd_proofs_formed_total"
#define SUB_OK  "qsd_batches_submitted_total{result=\"ok\"}"
#define SUB_REF "qsd_batches_submitted_total{result=\"refused\"}"

/* Set up in main() before any test forks, read-only afterwards. */
static struct {
	char build[256];
	char dir[256];
	struct qs_test_node shared;
} cl;

static uint64_t
mix64(uint64_t z)
{
	z ^= z >> 30;
	z *= 0xbf58476d1ce4e5b9ull;
	z ^= z >> 27;
	z *= 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Write a 1-validator cluster into cl.dir/name with the limits the tests
 * expect and `extra` appended to the config. Returns an error rather than
 * asserting: main() uses it outside any test.
 */
static int
node_make(struct qs_test_node *n, const char *name, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
	         "# added by tests/check_submit.c\n"
	         "max_batch_lifetime_ms: %d\n"
	         "limits:\n"
	         "  batch_max_txns: %d\n"
	         "  batch_max_bytes: %d\n"
	         "storage:\n"
	         "  free_space_watermark_bytes: 0\n"
	         "  db_write_buffer_bytes: 4MiB\n"
	         "  db_block_cache_bytes: 4MiB\n"
	         "  db_max_wal_bytes: 16MiB\n"
	         "%s",
	         LIFETIME_MS, LIM_BATCH_TXNS, LIM_BATCH_BYTES, extra ? extra : "");
	return qs_test_node_make(n, cl.build, cl.dir, name, text);
}

/* In a test: start a node of its own, or abort the test. */
static void
own_node(struct qs_test_node *n, const char *name, const char *extra)
{
	ck_assert_msg(node_make(n, name, extra) == 0, "cannot write the cluster %s", name);
	ck_assert_msg(qs_test_node_start(n) == 0, "qsd did not start for %s", name);
}

/* ------------------------------------------------------------------------
 * The client side: payloads, requests, checks of the answers.
 */

/* A batch of `n` transactions of TXN_BYTES bytes derived from `seed`. */
struct payload {
	size_t n;
	ProtobufCBinaryData txns[MAX_TXNS];
	uint8_t bytes[MAX_TXNS][TXN_BYTES];
};

static void
payload_make(struct payload *p, uint64_t seed, size_t n)
{
	ck_assert_uint_le(n, MAX_TXNS);
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		uint64_t x = mix64(mix64(seed) ^ i);

		for (size_t j = 0; j < TXN_BYTES; j += 8) {
			uint64_t w = mix64(x += 0x9e3779b97f4a7c15ull);

			memcpy(p->bytes[i] + j, &w, 8);
		}
		p->txns[i].data = p->bytes[i];
		p->txns[i].len = TXN_BYTES;
	}
}

static struct qs_client *
connect_to(const struct qs_test_node *n)
{
	return qs_test_connect(n, "check_submit", IO_TIMEOUT_MS);
}

/* Call SubmitBatch; the response (any status) is the caller's. */
static Quorumstore__V1__Response *
submit(struct qs_client *c, const struct payload *p, const char *key)
{
	Quorumstore__V1__Response *resp = NULL;
	int rc = qs_client_submit(c, p->txns, p->n, (const uint8_t *)key, key ? strlen(key) : 0,
	                          IO_TIMEOUT_MS, &resp);

	ck_assert_msg(rc == 0, "SubmitBatch: %s", qs_strerror(rc));
	return resp;
}

/* A SubmitBatch answered OK for p: a BatchInfo this node would sign. */
static void
check_info(struct qs_client *c, const Quorumstore__V1__Response *resp, const struct payload *p)
{
	const Quorumstore__V1__HelloResponse *hello = qs_client_server(c);
	const Quorumstore__V1__BatchInfo *info;
	uint8_t digest[QS_DIGEST_BYTES];
	uint64_t now = qs_test_wall_us(), bytes = 0;

	ck_assert_msg(resp->status == STATUS(OK), "SubmitBatch answered %s: %s",
	              qs_client_status_name(resp->status), resp->message);
	ck_assert_int_eq(resp->body_case, BODY(SUBMIT_BATCH));
	info = resp->submit_batch->info;
	ck_assert_ptr_nonnull(info);
	for (size_t i = 0; i < p->n; i++)
		bytes += p->txns[i].len;
	ck_assert_uint_eq(info->author.len, QS_PUBKEY_BYTES);
	ck_assert_uint_eq(hello->author.len, QS_PUBKEY_BYTES);
	ck_assert_msg(memcmp(info->author.data, hello->author.data, QS_PUBKEY_BYTES) == 0,
	              "the author is not the node's signing key");
	ck_assert_uint_eq(info->epoch, hello->epoch);
	ck_assert_uint_eq(info->num_txns, p->n);
	ck_assert_uint_eq(info->num_bytes, bytes);
	ck_assert_uint_eq(info->gas_bucket_start, 0);
	ck_assert_msg(
	    info->expiration_us > now && info->expiration_us <= now + LIFETIME_MS * 1000ull,
	    "expiration_us %" PRIu64 " is not in (now, now + lifetime]", info->expiration_us);
	ck_assert_uint_eq(info->digest.len, QS_DIGEST_BYTES);
	ck_assert_int_eq(qs_codec_batch_digest(hello->chain_id, info->author.data, info->epoch,
	                                       info->batch_id, p->txns, p->n, digest),
	                 0);
	ck_assert_msg(memcmp(digest, info->digest.data, QS_DIGEST_BYTES) == 0,
	              "the digest does not cover the transactions sent with batch_id %" PRIu64,
	              info->batch_id);
}

/* Submit p and check the answer is OK (not a duplicate); its batch id. */
static uint64_t
submit_ok(struct qs_client *c, const struct payload *p, const char *key)
{
	Quorumstore__V1__Response *resp = submit(c, p, key);
	uint64_t id;

	check_info(c, resp, p);
	ck_assert_msg(!resp->submit_batch->duplicate, "a new batch answered as a duplicate");
	id = resp->submit_batch->info->batch_id;
	qs_client_response_free(resp);
	return id;
}

static Quorumstore__V1__Response *
get_status(struct qs_client *c)
{
	Quorumstore__V1__Response *resp = NULL;
	int rc = qs_client_status(c, IO_TIMEOUT_MS, &resp);

	ck_assert_msg(rc == 0, "GetStatus: %s", qs_strerror(rc));
	ck_assert_msg(resp->status == STATUS(OK), "GetStatus answered %s: %s",
	              qs_client_status_name(resp->status), resp->message);
	ck_assert_int_eq(resp->body_case, BODY(GET_STATUS));
	return resp;
}

static int
info_eq(const Quorumstore__V1__BatchInfo *a, const Quorumstore__V1__BatchInfo *b)
{
	return a->author.len == b->author.len &&
	       memcmp(a->author.data, b->author.data, a->author.len) == 0 &&
	       a->batch_id == b->batch_id && a->epoch == b->epoch &&
	       a->expiration_us == b->expiration_us && a->digest.len == b->digest.len &&
	       memcmp(a->digest.data, b->digest.data, a->digest.len) == 0 &&
	       a->num_txns == b->num_txns && a->num_bytes == b->num_bytes &&
	       a->gas_bucket_start == b->gas_bucket_start;
}

/* ------------------------------------------------------------------------
 * The tests.
 */

START_TEST(pipelined_submits_are_all_answered_ok_in_request_order)
{
	struct qs_client *c = connect_to(&cl.shared);
	static struct payload p;
	uint64_t ids[N_PIPELINED], seed = qs_test_rand64(), last_batch = 0;
	double formed = qs_test_metric(&cl.shared, FORMED), ok = qs_test_metric(&cl.shared, SUB_OK);

	/* Send all, then read all. */
	for (size_t i = 0; i < N_PIPELINED; i++) {
		Quorumstore__V1__Request req;
		Quorumstore__V1__SubmitBatchRequest sb;
		int rc;

		payload_make(&p, seed + i, 1 + i % 4);
		qs_test_submit_request(&req, &sb, p.txns, p.n, NULL, 0);
		rc = qs_client_send(c, &req, &ids[i]);
		ck_assert_msg(rc == 0, "send %zu: %s", i, qs_strerror(rc));
		ck_assert(i == 0 || ids[i] > ids[i - 1]);
	}
	for (size_t i = 0; i < N_PIPELINED; i++) {
		Quorumstore__V1__Response *resp = NULL;
		int rc = qs_client_recv(c, IO_TIMEOUT_MS, &resp);

		ck_assert_msg(rc == 0, "response %zu: %s", i, qs_strerror(rc));
		ck_assert_msg(resp->request_id == ids[i],
		              "response %zu carries request id %" PRIu64 ", want %" PRIu64, i,
		              resp->request_id, ids[i]);
		payload_make(&p, seed + i, 1 + i % 4);
		check_info(c, resp, &p);
		ck_assert(!resp->submit_batch->duplicate);
		ck_assert_msg(resp->submit_batch->info->batch_id > last_batch,
		              "batch_id %" PRIu64 " after %" PRIu64,
		              resp->submit_batch->info->batch_id, last_batch);
		last_batch = resp->submit_batch->info->batch_id;
		qs_client_response_free(resp);
	}
	/* One validator: each batch was a proof the moment it was stored. */
	ck_assert_double_eq(qs_test_metric(&cl.shared, SUB_OK), ok + N_PIPELINED);
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), formed + N_PIPELINED);
	qs_client_close(c);
}
END_TEST

START_TEST(idempotency_key_retry_returns_the_same_batch_info_as_duplicate)
{
	struct qs_client *c = connect_to(&cl.shared);
	struct payload p;
	Quorumstore__V1__Response *first, *again, *other;
	char key[80];
	double formed = qs_test_metric(&cl.shared, FORMED);

	snprintf(key, sizeof(key), "check_submit/%016" PRIx64, qs_test_rand64());
	payload_make(&p, qs_test_rand64(), 3);
	first = submit(c, &p, key);
	check_info(c, first, &p);
	ck_assert(!first->submit_batch->duplicate);

	again = submit(c, &p, key);
	check_info(c, again, &p);
	ck_assert_msg(again->submit_batch->duplicate,
	              "a retry with the same key is not a duplicate");
	ck_assert_msg(info_eq(first->submit_batch->info, again->submit_batch->info),
	              "the retry returned another BatchInfo");

	/* The key stands for the batch stored under it, whatever comes with
	 * a retry: nothing new is stored. */
	payload_make(&p, qs_test_rand64(), 2);
	other = submit(c, &p, key);
	ck_assert_int_eq(other->status, STATUS(OK));
	ck_assert(other->submit_batch->duplicate);
	ck_assert(info_eq(first->submit_batch->info, other->submit_batch->info));

	/* Another key is another batch. */
	key[strlen(key) - 1] ^= 1;
	ck_assert_uint_gt(submit_ok(c, &p, key), first->submit_batch->info->batch_id);
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), formed + 2);
	qs_client_response_free(first);
	qs_client_response_free(again);
	qs_client_response_free(other);
	qs_client_close(c);
}
END_TEST

START_TEST(pipelined_requests_with_one_key_store_one_batch)
{
	struct qs_client *c = connect_to(&cl.shared);
	struct payload p;
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	Quorumstore__V1__Response *resp[2] = {NULL, NULL};
	uint64_t ids[2];
	char key[80];
	double formed = qs_test_metric(&cl.shared, FORMED);

	snprintf(key, sizeof(key), "check_submit/pipelined/%016" PRIx64, qs_test_rand64());
	payload_make(&p, qs_test_rand64(), 2);
	for (int i = 0; i < 2; i++) {
		qs_test_submit_request(&req, &sb, p.txns, p.n, key, strlen(key));
		ck_assert_int_eq(qs_client_send(c, &req, &ids[i]), 0);
	}
	/* Responses come in completion order: a refusal may overtake the
	 * first request's write. Match them by request id. */
	for (int i = 0; i < 2; i++) {
		Quorumstore__V1__Response *r = NULL;

		ck_assert_int_eq(qs_client_recv(c, IO_TIMEOUT_MS, &r), 0);
		ck_assert(r->request_id == ids[0] || r->request_id == ids[1]);
		ck_assert_ptr_null(resp[r->request_id == ids[1]]);
		resp[r->request_id == ids[1]] = r;
	}
	check_info(c, resp[0], &p);
	ck_assert(!resp[0]->submit_batch->duplicate);
	/* The second came while the first was being stored (retry later), or
	 * after: the same batch. */
	if (resp[1]->status == STATUS(OK)) {
		ck_assert(resp[1]->submit_batch->duplicate);
		ck_assert(info_eq(resp[0]->submit_batch->info, resp[1]->submit_batch->info));
	} else {
		ck_assert_msg(resp[1]->status == STATUS(UNAVAILABLE), "second answered %s: %s",
		              qs_client_status_name(resp[1]->status), resp[1]->message);
	}
	qs_client_response_free(resp[1]);
	resp[1] = submit(c, &p, key);
	ck_assert_int_eq(resp[1]->status, STATUS(OK));
	ck_assert(resp[1]->submit_batch->duplicate);
	ck_assert(info_eq(resp[0]->submit_batch->info, resp[1]->submit_batch->info));
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), formed + 1);
	qs_client_response_free(resp[0]);
	qs_client_response_free(resp[1]);
	qs_client_close(c);
}
END_TEST

/* A SubmitBatch the server must refuse with INVALID_ARGUMENT. */
static void
expect_invalid(struct qs_client *c, const struct payload *p, const char *key, size_t key_len,
               const char *what)
{
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	Quorumstore__V1__Response *resp = NULL;
	int rc;

	qs_test_submit_request(&req, &sb, p->txns, p->n, key, key_len);
	rc = qs_client_call(c, &req, IO_TIMEOUT_MS, &resp);
	ck_assert_msg(rc == 0, "%s: %s", what, qs_strerror(rc));
	ck_assert_msg(resp->status == STATUS(INVALID_ARGUMENT), "%s: answered %s (%s)", what,
	              qs_client_status_name(resp->status), resp->message);
	ck_assert_msg(resp->body_case == QUORUMSTORE__V1__RESPONSE__BODY__NOT_SET,
	              "%s: a refusal carries a body", what);
	ck_assert_msg(resp->message && *resp->message, "%s: no message says why", what);
	qs_client_response_free(resp);
}

START_TEST(invalid_submissions_are_refused_with_invalid_argument)
{
	struct qs_client *c = connect_to(&cl.shared);
	static struct payload p;
	Quorumstore__V1__Response *resp = NULL;
	char key[QS_CLIENT_IDEMPOTENCY_KEY_MAX + 2];
	double ok = qs_test_metric(&cl.shared, SUB_OK),
	       refused = qs_test_metric(&cl.shared, SUB_REF);
	double formed = qs_test_metric(&cl.shared, FORMED);
	uint64_t before, after;

	memset(key, 'k', sizeof(key));
	key[sizeof(key) - 1] = '\0';
	payload_make(&p, qs_test_rand64(), 1);
	before = submit_ok(c, &p, NULL);

	payload_make(&p, qs_test_rand64(), 0);
	expect_invalid(c, &p, NULL, 0, "an empty batch");
	payload_make(&p, qs_test_rand64(), LIM_BATCH_TXNS + 1);
	expect_invalid(c, &p, NULL, 0, "one transaction over limits.batch_max_txns");
	payload_make(&p, qs_test_rand64(), 1);
	expect_invalid(c, &p, key, QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1, "a 65-byte idempotency key");
	/* The client library refuses such a key before sending it. */
	ck_assert_int_eq(qs_client_submit(c, p.txns, p.n, (const uint8_t *)key,
	                                  QS_CLIENT_IDEMPOTENCY_KEY_MAX + 1, IO_TIMEOUT_MS, &resp),
	                 -EINVAL);
	ck_assert_ptr_null(resp);
	/* 16 transactions of 4097 bytes: within the count, over the bytes. */
	payload_make(&p, qs_test_rand64(), LIM_BATCH_TXNS);
	for (size_t i = 0; i < p.n; i++)
		p.txns[i].len = LIM_BATCH_BYTES / LIM_BATCH_TXNS;
	p.txns[0].len++;
	{
		static uint8_t big[LIM_BATCH_BYTES / LIM_BATCH_TXNS + 1];

		for (size_t i = 0; i < p.n; i++)
			p.txns[i].data = big;
		expect_invalid(c, &p, NULL, 0, "one byte over limits.batch_max_bytes");
	}
	ck_assert_double_eq(qs_test_metric(&cl.shared, SUB_REF), refused + 4);

	/* The limits themselves are fine: 16 transactions, a 64-byte key. */
	payload_make(&p, qs_test_rand64(), LIM_BATCH_TXNS);
	memset(key, '-', sizeof(key));
	snprintf(key, sizeof(key), "check_submit/%016" PRIx64 "/", qs_test_rand64());
	key[strlen(key)] = '-';
	key[QS_CLIENT_IDEMPOTENCY_KEY_MAX] = '\0';
	after = submit_ok(c, &p, key);
	ck_assert_uint_eq(strlen(key), QS_CLIENT_IDEMPOTENCY_KEY_MAX);
	ck_assert_uint_gt(after, before);
	ck_assert_double_eq(qs_test_metric(&cl.shared, SUB_OK), ok + 2);
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), formed + 2);
	/* The connection is still usable after the refusals. */
	qs_client_response_free(get_status(c));
	qs_client_close(c);
}
END_TEST

START_TEST(get_status_counts_the_proofs_formed_and_nothing_unproven)
{
	struct qs_client *c = connect_to(&cl.shared);
	Quorumstore__V1__Response *s0, *s1;
	const Quorumstore__V1__GetStatusResponse *a, *b;
	struct payload p;
	const int n = 10;

	s0 = get_status(c);
	a = s0->get_status;
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), (double)a->proofs_formed);
	for (int i = 0; i < n; i++) {
		payload_make(&p, qs_test_rand64(), 2);
		submit_ok(c, &p, NULL);
	}
	/* A proof enters the queue once its own write returned: wait for the
	 * last one. */
	s1 = get_status(c);
	for (uint64_t deadline = qs_test_now_ms() + IO_TIMEOUT_MS;
	     s1->get_status->proof_queue_size < s1->get_status->proofs_formed &&
	     qs_test_now_ms() < deadline;) {
		qs_test_sleep_ms(10);
		qs_client_response_free(s1);
		s1 = get_status(c);
	}
	b = s1->get_status;
	ck_assert_uint_eq(b->proofs_formed, a->proofs_formed + n);
	ck_assert_uint_eq(b->batches_submitted, a->batches_submitted + n);
	ck_assert_uint_eq(b->own_batches_unproven, 0);
	/* Regression: these stayed 0. Own batches count as persisted; nothing
	 * came from peers, so nothing was received or answered with a
	 * signature. */
	ck_assert_uint_eq(b->batches_persisted, a->batches_persisted + n);
	ck_assert_double_eq(qs_test_metric(&cl.shared, "qsd_batches_persisted_total"),
	                    (double)b->batches_persisted);
	ck_assert_uint_eq(b->batches_received, 0);
	ck_assert_uint_eq(b->batches_signed, 0);
	ck_assert_uint_eq(b->proofs_received, 0); /* nobody else */
	ck_assert_uint_eq(b->proof_queue_size, b->proofs_formed);
	ck_assert_uint_eq(b->peers_total, 0);
	ck_assert_uint_eq(b->peers_connected, 0);
	ck_assert(!b->back_pressure);
	ck_assert_int_eq(b->storage_state, QUORUMSTORE__V1__STORAGE_STATE__STORAGE_STATE_OK);
	ck_assert_uint_ge(b->batches_stored, b->proofs_formed);
	ck_assert_uint_eq(b->epoch, qs_client_server(c)->epoch);
	ck_assert_uint_eq(b->chain_id, qs_client_server(c)->chain_id);
	ck_assert_uint_le(b->submit_to_proof_p50_us, b->submit_to_proof_p99_us);
	ck_assert_uint_lt(b->submit_to_proof_p99_us, 10000000);
	ck_assert_double_eq(qs_test_metric(&cl.shared, FORMED), (double)b->proofs_formed);
	ck_assert_double_eq(qs_test_metric(&cl.shared, "qsd_own_batches_unproven"), 0);
	ck_assert_double_eq(qs_test_metric(&cl.shared, "qsd_proof_queue_size"),
	                    (double)b->proof_queue_size);
	qs_client_response_free(s0);
	qs_client_response_free(s1);
	qs_client_close(c);
}
END_TEST

/* Whether a GetPayload answer holds a proof of `info`, which then carries
 * this node's signature alone. */
static int
has_proof_of(const Quorumstore__V1__GetPayloadResponse *gp, const Quorumstore__V1__BatchInfo *info)
{
	for (size_t i = 0; i < gp->n_proofs; i++) {
		const Quorumstore__V1__ProofOfStore *p = gp->proofs[i];

		if (!p->info || !info_eq(p->info, info))
			continue;
		ck_assert_uint_eq(p->signer_bitmap.len, 1);
		ck_assert_uint_eq(p->signer_bitmap.data[0], 1);
		ck_assert_uint_eq(p->n_signatures, 1);
		ck_assert_uint_eq(p->signatures[0].len, QS_SIG_BYTES);
		return 1;
	}
	return 0;
}

START_TEST(get_payload_returns_the_proofs_of_submitted_batches)
{
	struct qs_client *c = connect_to(&cl.shared);
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	Quorumstore__V1__Response *sub[3], *resp = NULL;
	struct payload p;
	uint64_t deadline = qs_test_now_ms() + IO_TIMEOUT_MS;
	double served = qs_test_metric(&cl.shared, "qsd_payload_proofs_total");
	size_t found = 0;

	for (int i = 0; i < 3; i++) {
		payload_make(&p, qs_test_rand64(), 2);
		sub[i] = submit(c, &p, NULL);
		check_info(c, sub[i], &p);
	}
	/* Each proof is written after its batch was acknowledged: poll. */
	while (found < 3 && qs_test_now_ms() < deadline) {
		int rc;

		qs_client_response_free(resp);
		resp = NULL;
		rc = qs_client_get_payload(c, &lim, NULL, 0, IO_TIMEOUT_MS, &resp);
		ck_assert_msg(rc == 0, "GetPayload: %s", qs_strerror(rc));
		ck_assert_msg(resp->status == STATUS(OK), "GetPayload answered %s: %s",
		              qs_client_status_name(resp->status), resp->message);
		ck_assert_int_eq(resp->body_case, BODY(GET_PAYLOAD));
		ck_assert_uint_eq(resp->get_payload->n_inline_batches, 0);
		found = 0;
		for (int i = 0; i < 3; i++)
			found +=
			    (size_t)has_proof_of(resp->get_payload, sub[i]->submit_batch->info);
		if (found < 3)
			qs_test_sleep_ms(20);
	}
	ck_assert_msg(found == 3, "%zu of 3 proofs in GetPayload", found);
	ck_assert_double_ge(qs_test_metric(&cl.shared, "qsd_payload_proofs_total"), served + 3);
	qs_client_response_free(resp);
	for (int i = 0; i < 3; i++)
		qs_client_response_free(sub[i]);
	qs_client_close(c);
}
END_TEST

START_TEST(client_with_a_uid_not_allowed_is_refused_at_accept)
{
	struct qs_test_node n;
	struct qs_client *c = NULL;
	char from[64], to[64], err[512] = "";
	unsigned other = getuid() == 4242 ? 4243 : 4242;
	int rc;

	ck_assert_int_eq(node_make(&n, "uid", NULL), 0);
	snprintf(from, sizeof(from), "allowed_uids: [%u]", (unsigned)getuid());
	snprintf(to, sizeof(to), "allowed_uids: [%u]", other);
	ck_assert_msg(qs_test_node_edit(&n, from, to) == 0, "no '%s' in %s", from, n.cfg);
	ck_assert_msg(qs_test_node_start(&n) == 0, "qsd did not start");
	ck_assert_double_eq(qs_test_metric(&n, "qsd_rpc_refused_total{reason=\"uid\"}"), 0);

	rc = qs_client_connect(n.sock, "check_submit", IO_TIMEOUT_MS, &c, err, sizeof(err));
	ck_assert_msg(rc == -ECONNRESET, "connect as uid %u: %s (%s), want the connection closed",
	              (unsigned)getuid(), qs_strerror(rc), err);
	ck_assert_ptr_null(c);
	ck_assert_double_eq(qs_test_metric(&n, "qsd_rpc_refused_total{reason=\"uid\"}"), 1);
	ck_assert_double_eq(qs_test_metric(&n, "qsd_rpc_requests_total{method=\"hello\"}"), 0);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(batch_ids_strictly_increase_across_restarts)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct payload p, p0;
	Quorumstore__V1__Response *first, *again;
	char key[64];
	uint64_t max_id = 0, id;
	int ws;

	own_node(&n, "restart", NULL);
	c = connect_to(&n);
	snprintf(key, sizeof(key), "check_submit/restart/%016" PRIx64, qs_test_rand64());
	payload_make(&p0, qs_test_rand64(), 2);
	first = submit(c, &p0, key);
	check_info(c, first, &p0);
	max_id = first->submit_batch->info->batch_id;
	for (int i = 0; i < 5; i++) {
		payload_make(&p, qs_test_rand64(), 1);
		id = submit_ok(c, &p, NULL);
		ck_assert_uint_gt(id, max_id);
		max_id = id;
	}
	qs_client_close(c);

	/* SIGTERM, start again: the next id is past every earlier one, and
	 * the idempotency key still stands for its batch. */
	qs_test_expect_clean_exit(&n);
	ck_assert_msg(qs_test_node_start(&n) == 0, "qsd did not restart after SIGTERM");
	c = connect_to(&n);
	payload_make(&p, qs_test_rand64(), 1);
	id = submit_ok(c, &p, NULL);
	ck_assert_msg(id > max_id,
	              "batch_id %" PRIu64 " after a restart, earlier ones up to %" PRIu64, id,
	              max_id);
	max_id = id;
	again = submit(c, &p0, key);
	ck_assert_int_eq(again->status, STATUS(OK));
	ck_assert_msg(again->submit_batch->duplicate, "the key was forgotten across a restart");
	ck_assert(info_eq(first->submit_batch->info, again->submit_batch->info));
	qs_client_response_free(again);
	qs_client_close(c);

	/* SIGKILL right after an ack: the id went to disk with the batch. */
	ws = qs_test_node_stop(&n, SIGKILL);
	ck_assert(ws >= 0 && WIFSIGNALED(ws));
	ck_assert_msg(qs_test_node_start(&n) == 0, "qsd did not restart after SIGKILL");
	c = connect_to(&n);
	payload_make(&p, qs_test_rand64(), 1);
	id = submit_ok(c, &p, NULL);
	ck_assert_msg(id > max_id,
	              "batch_id %" PRIu64 " after kill -9, earlier ones up to %" PRIu64, id,
	              max_id);
	qs_client_close(c);
	qs_client_response_free(first);
	qs_test_expect_clean_exit(&n);
}
END_TEST

static Suite *
submit_suite(void)
{
	Suite *s = suite_create("submit");
	TCase *tc = tcase_create("shared");
	TCase *own = tcase_create("own_node");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_set_timeout(own, TEST_TIMEOUT_S);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, own);
	tcase_add_test(tc, pipelined_submits_are_all_answered_ok_in_request_order);
	tcase_add_test(tc, idempotency_key_retry_returns_the_same_batch_info_as_duplicate);
	tcase_add_test(tc, pipelined_requests_with_one_key_store_one_batch);
	tcase_add_test(tc, invalid_submissions_are_refused_with_invalid_argument);
	tcase_add_test(tc, get_status_counts_the_proofs_formed_and_nothing_unproven);
	tcase_add_test(tc, get_payload_returns_the_proofs_of_submitted_batches);
	tcase_add_test(own, client_with_a_uid_not_allowed_is_refused_at_accept);
	tcase_add_test(own, batch_ids_strictly_increase_across_restarts);
	return s;
}

int
main(int argc, char **argv)
{
	SRunner *sr;
	int failed = 0, ws;

	signal(SIGPIPE, SIG_IGN);
	qs_test_build_dir(argv[0], cl.build, sizeof(cl.build));
	if (access("tools/mkcluster", X_OK) != 0) {
		fprintf(stderr, "check_submit: run me from the repository root\n");
		return EXIT_FAILURE;
	}
	snprintf(cl.dir, sizeof(cl.dir), "%s/qsd-submit-XXXXXX",
	         getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(cl.dir)) {
		fprintf(stderr, "check_submit: mkdtemp %s: %s\n", cl.dir, strerror(errno));
		return EXIT_FAILURE;
	}
	if (node_make(&cl.shared, "shared", NULL) != 0 || qs_test_node_start(&cl.shared) != 0) {
		failed = 1;
	} else {
		sr = srunner_create(submit_suite());
		srunner_set_fork_status(sr, CK_FORK);
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	if (cl.shared.pid > 0) {
		ws = qs_test_node_stop(&cl.shared, SIGTERM);
		if (!qs_test_exited_ok(ws)) {
			fprintf(stderr, "check_submit: qsd exited with status 0x%x after SIGTERM\n",
			        ws);
			failed++;
		}
	}
	if (failed)
		qs_test_dump_log(cl.shared.log);
	if (getenv("QS_TEST_KEEP"))
		fprintf(stderr, "check_submit: kept %s\n", cl.dir);
	else
		qs_test_rmtree(cl.dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
