/*
 * The serving side of qsd's RPC seen from a consensus process: GetPayload,
 * GetBatch, NotifyCommit, ListBatches, ListProofs, NewEpoch and GetStatus's
 * back pressure, against real qsd processes, each the only validator of a
 * 1-validator cluster written by tools/mkcluster 1 (its own signature alone
 * is a quorum, so every batch it stores becomes a proof of store at once),
 * driven over the RPC socket with the client library (client/qsclient.h),
 * or with raw frames where a client must do what the library would not.
 *
 * Most cases start a node of their own (a child of the test process that
 * dies with it), so that they count exactly, restart it and read its
 * database; the cases that only check refusals share one node started in
 * main() before the tests fork.
 *
 * Waits are bounded polls: a proof enters the queue once its own write
 * returned, GC runs once a second, a connection closes when qsd sees it.
 *
 * Run from the repository root. Environment: B, the build directory holding
 * qsd and qsctl (default: the one this binary is in, else build).
 * QS_TEST_KEEP=1 keeps the temporary directory (clusters, databases, logs).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/qsclient.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/proof.h"
#include "storage/check.h"
#include "tests/lib/node.h"
#include "tests/lib/tmpdir.h"

#define IO_TIMEOUT_MS  30000 /* one answer from qsd; sanitized builds are slow */
#define WAIT_MS        30000 /* qsd to get somewhere on its own: a proof, GC */
#define TEST_TIMEOUT_S 240   /* a case starts qsd up to four times */

/* Written into every node's config; the cases are sized against them. */
#define LIFETIME_MS       600000
#define SHORT_LIFETIME_MS 3000
#define MAX_TXNS          64
#define MAX_SENT          16
#define BIG_BATCH_BYTES   (4u << 20)

#define STATUS(name)  QUORUMSTORE__V1__STATUS__STATUS_##name
#define BODY(name)    QUORUMSTORE__V1__RESPONSE__BODY_##name
#define REQ(name)     QUORUMSTORE__V1__REQUEST__BODY_##name
#define SOURCE(name)  QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_##name
#define FETCH(s, r)   "qsd_batch_fetch_total{source=\"" s "\",result=\"" r "\"}"
#define SLOW_READER   "qsd_rpc_disconnects_total{reason=\"slow_reader\"}"
#define GC_BATCHES    "qsd_gc_batches_total"
#define GC_RUNS       "qsd_gc_runs_total"
#define QUOTA_DROPPED "qsd_proofs_dropped_total{reason=\"author_quota\"}"

/* Set up in main() before any test forks, read-only afterwards. */
static struct {
	char build[256];
	char dir[256];
	struct qs_test_node shared;
} cl;

/* ------------------------------------------------------------------------
 * Nodes.
 */

/* What a node's config says beyond the defaults of these tests. */
struct opts {
	unsigned lifetime_ms; /* max_batch_lifetime_ms; 0: LIFETIME_MS */
	const char *limits;   /* lines of limits: after batch_max_txns; NULL: 64 KiB batches */
	const char *quotas;   /* lines of quotas:, or NULL */
	const char *storage;  /* more lines of storage: */
	const char *serving;  /* lines of serving:, or NULL */
};

/*
 * A 1-validator cluster in cl.dir/name with o's settings. Clocks of one
 * machine agree: max_clock_skew_ms 0 makes every expiration now +
 * max_batch_lifetime_ms. Returns an error rather than asserting: main()
 * uses it outside any test.
 */
static int
node_make(struct qs_test_node *n, const char *name, const struct opts *o)
{
	static const struct opts none;
	char text[4096];

	if (!o)
		o = &none;
	snprintf(text, sizeof(text),
	         "# added by tests/check_serve.c\n"
	         "max_batch_lifetime_ms: %u\n"
	         "max_clock_skew_ms: 0\n"
	         "limits:\n"
	         "  batch_max_txns: %d\n"
	         "%s"
	         "%s%s"
	         "storage:\n"
	         "  free_space_watermark_bytes: 0\n"
	         "  db_write_buffer_bytes: 4MiB\n"
	         "  db_block_cache_bytes: 4MiB\n"
	         "  db_max_wal_bytes: 16MiB\n"
	         "%s"
	         "%s%s",
	         o->lifetime_ms ? o->lifetime_ms : LIFETIME_MS, MAX_TXNS,
	         o->limits ? o->limits : "  batch_max_bytes: 65536\n", o->quotas ? "quotas:\n" : "",
	         o->quotas ? o->quotas : "", o->storage ? o->storage : "",
	         o->serving ? "serving:\n" : "", o->serving ? o->serving : "");
	return qs_test_node_make(n, cl.build, cl.dir, name, text);
}

/* In a test: start a node of its own, or abort the test. */
static void
own_node(struct qs_test_node *n, const char *name, const struct opts *o)
{
	ck_assert_msg(node_make(n, name, o) == 0, "cannot write the cluster %s", name);
	ck_assert_msg(qs_test_node_start(n) == 0, "qsd did not start for %s", name);
}

/* Stop node n with `sig` (SIGTERM: it must exit 0) and start it again on the
 * same data directory. */
static void
restart(struct qs_test_node *n, int sig)
{
	if (sig == SIGTERM) {
		qs_test_expect_clean_exit(n);
	} else {
		int ws = qs_test_node_stop(n, sig);

		ck_assert_msg(ws >= 0 && WIFSIGNALED(ws) && WTERMSIG(ws) == sig,
		              "qsd did not die of signal %d (status 0x%x)", sig, ws);
	}
	ck_assert_msg(qs_test_node_start(n) == 0, "qsd did not start again");
}

static struct qs_client *
connect_to(const struct qs_test_node *n)
{
	return qs_test_connect(n, "check_serve", IO_TIMEOUT_MS);
}

static double
metric(const struct qs_test_node *n, const char *series)
{
	return qs_test_metric(n, series);
}

/* Poll `series` until it is at least `want`; then it must be exactly that. */
static void
expect_metric(const struct qs_test_node *n, const char *series, double want)
{
	double got = qs_test_wait_metric(n, series, want, WAIT_MS);

	ck_assert_msg(got == want, "%s is %.0f, want %.0f", series, got, want);
}

/* ------------------------------------------------------------------------
 * Answers.
 */

static void
expect_ok(int rc, Quorumstore__V1__Response *const *rp, const char *what, int body)
{
	const Quorumstore__V1__Response *r;

	ck_assert_msg(rc == 0, "%s: %s", what, qs_strerror(rc));
	r = *rp;
	ck_assert_msg(r->status == STATUS(OK), "%s answered %s: %s", what,
	              qs_client_status_name(r->status), r->message);
	ck_assert_msg((int)r->body_case == body, "%s answered body %d, want %d", what,
	              (int)r->body_case, body);
}

/* A refusal: the status, a message saying why, no body. */
static void
expect_status(int rc, Quorumstore__V1__Response *const *rp, Quorumstore__V1__Status status,
              const char *what)
{
	const Quorumstore__V1__Response *r;

	ck_assert_msg(rc == 0, "%s: %s", what, qs_strerror(rc));
	r = *rp;
	ck_assert_msg(r->status == status, "%s answered %s (%s), want %s", what,
	              qs_client_status_name(r->status), r->message ? r->message : "",
	              qs_client_status_name(status));
	ck_assert_msg(r->message && *r->message, "%s: no message says why", what);
	ck_assert_msg(r->body_case == QUORUMSTORE__V1__RESPONSE__BODY__NOT_SET,
	              "%s: a refusal carries a body", what);
}

static Quorumstore__V1__Response *
get_status(struct qs_client *c)
{
	Quorumstore__V1__Response *r = NULL;

	expect_ok(qs_client_status(c, IO_TIMEOUT_MS, &r), &r, "GetStatus", BODY(GET_STATUS));
	return r;
}

/* ------------------------------------------------------------------------
 * Batches: what the test sent, and what qsd said about it.
 */

struct sent {
	size_t n_txns;
	ProtobufCBinaryData txns[MAX_TXNS];
	uint8_t *bytes; /* the transactions, back to back */
	uint64_t batch_id;
	uint64_t epoch;
	uint64_t expiration_us;
	uint64_t num_bytes;
	uint8_t digest[QS_DIGEST_BYTES];
};

/* n_txns random transactions of txn_len bytes each. */
static void
sent_make(struct sent *b, size_t n_txns, size_t txn_len)
{
	size_t total = n_txns * txn_len, done = 0;

	ck_assert_uint_le(n_txns, MAX_TXNS);
	memset(b, 0, sizeof(*b));
	b->bytes = malloc(total ? total : 1);
	ck_assert_ptr_nonnull(b->bytes);
	while (done < total) {
		ssize_t r = getrandom(b->bytes + done, total - done, 0);

		ck_assert_int_gt(r, 0);
		done += (size_t)r;
	}
	b->n_txns = n_txns;
	for (size_t i = 0; i < n_txns; i++) {
		b->txns[i].data = b->bytes + i * txn_len;
		b->txns[i].len = txn_len;
	}
	b->num_bytes = total;
}

static void
sent_free(struct sent *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(b[i].bytes);
		b[i].bytes = NULL;
	}
}

/* Whether info is the BatchInfo of b, as this node (author) stored it. */
static int
info_is(struct qs_client *c, const Quorumstore__V1__BatchInfo *info, const struct sent *b)
{
	const Quorumstore__V1__HelloResponse *h = qs_client_server(c);

	return info && info->author.len == QS_PUBKEY_BYTES &&
	       memcmp(info->author.data, h->author.data, QS_PUBKEY_BYTES) == 0 &&
	       info->digest.len == QS_DIGEST_BYTES &&
	       memcmp(info->digest.data, b->digest, QS_DIGEST_BYTES) == 0 &&
	       info->batch_id == b->batch_id && info->epoch == b->epoch &&
	       info->expiration_us == b->expiration_us && info->num_txns == b->n_txns &&
	       info->num_bytes == b->num_bytes && info->gas_bucket_start == 0;
}

/* SubmitBatch b; records what qsd made of it after checking the digest
 * covers exactly the transactions sent. */
static void
submit(struct qs_client *c, struct sent *b)
{
	const Quorumstore__V1__HelloResponse *h = qs_client_server(c);
	const Quorumstore__V1__BatchInfo *info;
	Quorumstore__V1__Response *r = NULL;
	uint8_t digest[QS_DIGEST_BYTES];

	expect_ok(qs_client_submit(c, b->txns, b->n_txns, NULL, 0, IO_TIMEOUT_MS, &r), &r,
	          "SubmitBatch", BODY(SUBMIT_BATCH));
	info = r->submit_batch->info;
	ck_assert_ptr_nonnull(info);
	ck_assert(!r->submit_batch->duplicate);
	ck_assert_uint_eq(info->digest.len, QS_DIGEST_BYTES);
	ck_assert_uint_eq(info->author.len, QS_PUBKEY_BYTES);
	ck_assert_int_eq(qs_codec_batch_digest(h->chain_id, info->author.data, info->epoch,
	                                       info->batch_id, b->txns, b->n_txns, digest),
	                 0);
	ck_assert_msg(memcmp(digest, info->digest.data, QS_DIGEST_BYTES) == 0,
	              "the digest of batch %" PRIu64 " does not cover its transactions",
	              info->batch_id);
	memcpy(b->digest, digest, QS_DIGEST_BYTES);
	b->batch_id = info->batch_id;
	b->epoch = info->epoch;
	b->expiration_us = info->expiration_us;
	ck_assert_uint_eq(info->num_txns, b->n_txns);
	ck_assert_uint_eq(info->num_bytes, b->num_bytes);
	qs_client_response_free(r);
}

/* Make and submit n batches; batch i has txns(i) transactions of len(i)
 * bytes. */
static void
submit_n(struct qs_client *c, struct sent *b, size_t n, size_t (*txns)(size_t),
         size_t (*len)(size_t))
{
	for (size_t i = 0; i < n; i++) {
		sent_make(&b[i], txns ? txns(i) : 2, len ? len(i) : 100);
		submit(c, &b[i]);
		ck_assert(i == 0 || b[i].batch_id > b[i - 1].batch_id);
	}
}

/* The sent batch with this digest, or -1. */
static int
find_sent(const struct sent *b, size_t n, const ProtobufCBinaryData *digest)
{
	for (size_t i = 0; i < n; i++)
		if (digest->len == QS_DIGEST_BYTES &&
		    memcmp(digest->data, b[i].digest, QS_DIGEST_BYTES) == 0)
			return (int)i;
	return -1;
}

static ProtobufCBinaryData
digest_of(const struct sent *b)
{
	return (ProtobufCBinaryData){QS_DIGEST_BYTES, (uint8_t *)b->digest};
}

/* Poll GetStatus until the proof queue holds `want` proofs. */
static void
wait_queue(struct qs_client *c, uint64_t want)
{
	uint64_t deadline = qs_test_now_ms() + WAIT_MS, have;

	for (;;) {
		Quorumstore__V1__Response *r = get_status(c);

		have = r->get_status->proof_queue_size;
		qs_client_response_free(r);
		if (have == want || qs_test_now_ms() > deadline)
			break;
		qs_test_sleep_ms(10);
	}
	ck_assert_msg(have == want, "%" PRIu64 " proofs queued, want %" PRIu64, have, want);
}

/* ------------------------------------------------------------------------
 * Proofs and payloads.
 */

/* A proof as qsd serves it: valid, signed by this node alone, and of a batch
 * this test sent. Returns the index of that batch. */
static int
check_proof(struct qs_client *c, const Quorumstore__V1__ProofOfStore *p, const struct sent *b,
            size_t n)
{
	const Quorumstore__V1__HelloResponse *h = qs_client_server(c);
	uint8_t keys[1][QS_PUBKEY_BYTES];
	uint64_t power = 1;
	struct qs_valset *vs = NULL;
	int i, r;

	ck_assert_ptr_nonnull(p->info);
	i = find_sent(b, n, &p->info->digest);
	ck_assert_msg(i >= 0, "a proof of a batch this test did not send");
	ck_assert_msg(info_is(c, p->info, &b[i]), "the proof of batch %" PRIu64 " has another info",
	              b[i].batch_id);
	memcpy(keys[0], h->author.data, QS_PUBKEY_BYTES);
	ck_assert_int_eq(qs_valset_new(h->chain_id, p->info->epoch, 1,
	                               (const uint8_t(*)[QS_PUBKEY_BYTES])keys, &power, &vs),
	                 0);
	r = qs_proof_verify(vs, 0, p, NULL);
	qs_valset_free(vs);
	ck_assert_msg(r == QS_PROOF_OK, "the proof of batch %" PRIu64 " does not verify (%d)",
	              b[i].batch_id, r);
	return i;
}

/* An inline batch: of a batch this test sent, with its transactions. */
static int
check_inline(struct qs_client *c, const Quorumstore__V1__Batch *ib, const struct sent *b, size_t n)
{
	const Quorumstore__V1__HelloResponse *h = qs_client_server(c);
	uint8_t digest[QS_DIGEST_BYTES];
	int i;

	ck_assert_ptr_nonnull(ib->info);
	i = find_sent(b, n, &ib->info->digest);
	ck_assert_msg(i >= 0, "an inline batch this test did not send");
	ck_assert(info_is(c, ib->info, &b[i]));
	ck_assert_uint_eq(ib->n_transactions, b[i].n_txns);
	for (size_t t = 0; t < ib->n_transactions; t++) {
		ck_assert_uint_eq(ib->transactions[t].len, b[i].txns[t].len);
		ck_assert(memcmp(ib->transactions[t].data, b[i].txns[t].data, b[i].txns[t].len) ==
		          0);
	}
	ck_assert_int_eq(qs_codec_batch_digest(h->chain_id, ib->info->author.data, ib->info->epoch,
	                                       ib->info->batch_id, ib->transactions,
	                                       ib->n_transactions, digest),
	                 0);
	ck_assert_msg(memcmp(digest, ib->info->digest.data, QS_DIGEST_BYTES) == 0,
	              "the transactions of inline batch %" PRIu64 " do not hash to its digest",
	              ib->info->batch_id);
	return i;
}

/* GetPayload within lim; the answer must be OK. */
static Quorumstore__V1__Response *
get_payload(struct qs_client *c, const struct qs_client_payload_limits *lim,
            const ProtobufCBinaryData *exclude, size_t n_exclude)
{
	Quorumstore__V1__Response *r = NULL;

	expect_ok(qs_client_get_payload(c, lim, exclude, n_exclude, IO_TIMEOUT_MS, &r), &r,
	          "GetPayload", BODY(GET_PAYLOAD));
	return r;
}

/*
 * What one GetPayload picked, checked against the batches sent: picked[i]
 * is 0 (not picked), 1 (as a proof) or 2 (inline); the proofs come in
 * batch id order (one author) and each batch at most once.
 */
static size_t
picks_of(struct qs_client *c, const Quorumstore__V1__GetPayloadResponse *gp, const struct sent *b,
         size_t n, int *picked)
{
	uint64_t last_id = 0;

	memset(picked, 0, n * sizeof(*picked));
	for (size_t i = 0; i < gp->n_proofs; i++) {
		int k = check_proof(c, gp->proofs[i], b, n);

		ck_assert_msg(!picked[k], "batch %" PRIu64 " picked twice", b[k].batch_id);
		ck_assert_msg(i == 0 || b[k].batch_id > last_id,
		              "proof of batch %" PRIu64 " after batch %" PRIu64, b[k].batch_id,
		              last_id);
		last_id = b[k].batch_id;
		picked[k] = 1;
	}
	for (size_t i = 0; i < gp->n_inline_batches; i++) {
		int k = check_inline(c, gp->inline_batches[i], b, n);

		ck_assert_msg(!picked[k], "batch %" PRIu64 " picked twice", b[k].batch_id);
		picked[k] = 2;
	}
	return gp->n_proofs + gp->n_inline_batches;
}

/* Expect exactly the batches of `want` (a string of '0', 'p' for a proof,
 * 'i' for inline, one per batch sent) in a GetPayload answer. */
static void
expect_picks(struct qs_client *c, const Quorumstore__V1__Response *r, const struct sent *b,
             size_t n, const char *want, const char *what)
{
	int picked[MAX_SENT];
	char got[MAX_SENT + 1];

	ck_assert_uint_le(n, MAX_SENT);
	picks_of(c, r->get_payload, b, n, picked);
	for (size_t i = 0; i < n; i++)
		got[i] = picked[i] == 0 ? '0' : picked[i] == 1 ? 'p' : 'i';
	got[n] = '\0';
	ck_assert_msg(strcmp(got, want) == 0, "%s: picked %s, want %s", what, got, want);
}

/* ListProofs, every page of `limit`: the proofs in listing order. */
static size_t
list_all_proofs(struct qs_client *c, const uint8_t *author, size_t author_len, uint32_t limit,
                const struct sent *b, size_t n, int *order, size_t cap, size_t *pages)
{
	uint8_t cursor[64];
	size_t cursor_len = 0, count = 0;

	*pages = 0;
	for (;;) {
		Quorumstore__V1__Response *r = NULL;
		const Quorumstore__V1__ListProofsResponse *lp;

		expect_ok(qs_client_list_proofs(c, author, author_len, cursor, cursor_len, limit,
		                                IO_TIMEOUT_MS, &r),
		          &r, "ListProofs", BODY(LIST_PROOFS));
		lp = r->list_proofs;
		(*pages)++;
		ck_assert_msg(*pages <= cap + 2, "ListProofs pages do not end");
		ck_assert_uint_le(lp->n_proofs, limit ? limit : 100);
		for (size_t i = 0; i < lp->n_proofs; i++) {
			ck_assert_uint_lt(count, cap);
			order[count++] = check_proof(c, lp->proofs[i], b, n);
		}
		ck_assert_uint_le(lp->next.len, sizeof(cursor));
		cursor_len = lp->next.len;
		if (cursor_len)
			memcpy(cursor, lp->next.data, cursor_len);
		qs_client_response_free(r);
		if (!cursor_len)
			return count;
	}
}

/* ListBatches, every page of `limit`: the batches in listing order. */
static size_t
list_all_batches(struct qs_client *c, const uint8_t *author, size_t author_len, uint32_t limit,
                 const struct sent *b, size_t n, int *order, size_t cap, size_t *pages)
{
	uint8_t cursor[64];
	size_t cursor_len = 0, count = 0;

	*pages = 0;
	for (;;) {
		Quorumstore__V1__Response *r = NULL;
		const Quorumstore__V1__ListBatchesResponse *lb;

		expect_ok(qs_client_list_batches(c, author, author_len, cursor, cursor_len, limit,
		                                 IO_TIMEOUT_MS, &r),
		          &r, "ListBatches", BODY(LIST_BATCHES));
		lb = r->list_batches;
		(*pages)++;
		ck_assert_msg(*pages <= cap + 2, "ListBatches pages do not end");
		ck_assert_uint_le(lb->n_infos, limit ? limit : 100);
		for (size_t i = 0; i < lb->n_infos; i++) {
			int k = find_sent(b, n, &lb->infos[i]->digest);

			ck_assert_msg(k >= 0, "ListBatches lists a batch this test did not send");
			ck_assert(info_is(c, lb->infos[i], &b[k]));
			ck_assert_uint_lt(count, cap);
			order[count++] = k;
		}
		ck_assert_uint_le(lb->next.len, sizeof(cursor));
		cursor_len = lb->next.len;
		if (cursor_len)
			memcpy(cursor, lb->next.data, cursor_len);
		qs_client_response_free(r);
		if (!cursor_len)
			return count;
	}
}

/* The digests of the proofs GetPayload (generous limits) answers now, as a
 * string of '0'/'p' per batch sent. */
static void
expect_queued(struct qs_client *c, const struct sent *b, size_t n, const char *want,
              const char *what)
{
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	Quorumstore__V1__Response *r = get_payload(c, &lim, NULL, 0);

	expect_picks(c, r, b, n, want, what);
	qs_client_response_free(r);
}

static Quorumstore__V1__Response *
get_batch(struct qs_client *c, const uint8_t *digest, size_t len,
          const ProtobufCBinaryData *signers, size_t n_signers)
{
	Quorumstore__V1__Response *r = NULL;
	int rc = qs_client_get_batch(c, digest, len, signers, n_signers, IO_TIMEOUT_MS, &r);

	ck_assert_msg(rc == 0, "GetBatch: %s", qs_strerror(rc));
	return r;
}

/* GetBatch of b must answer its batch from `source`. */
static void
expect_batch(struct qs_client *c, const struct sent *b, Quorumstore__V1__BatchSource source)
{
	Quorumstore__V1__Response *r = get_batch(c, b->digest, QS_DIGEST_BYTES, NULL, 0);

	expect_ok(0, &r, "GetBatch", BODY(GET_BATCH));
	ck_assert_msg(r->get_batch->source == source, "batch %" PRIu64 " from source %d, want %d",
	              b->batch_id, (int)r->get_batch->source, (int)source);
	ck_assert_ptr_nonnull(r->get_batch->batch);
	check_inline(c, r->get_batch->batch, b, 1);
	qs_client_response_free(r);
}

static Quorumstore__V1__Response *
notify_commit(struct qs_client *c, uint64_t block_timestamp_us, const ProtobufCBinaryData *d,
              size_t n)
{
	Quorumstore__V1__Response *r = NULL;
	int rc = qs_client_notify_commit(c, block_timestamp_us, d, n, IO_TIMEOUT_MS, &r);

	ck_assert_msg(rc == 0, "NotifyCommit: %s", qs_strerror(rc));
	return r;
}

/* NotifyCommit that must be OK; how many proofs it removed. */
static uint32_t
commit_ok(struct qs_client *c, uint64_t block_timestamp_us, const ProtobufCBinaryData *d, size_t n)
{
	Quorumstore__V1__Response *r = notify_commit(c, block_timestamp_us, d, n);
	uint32_t removed;

	expect_ok(0, &r, "NotifyCommit", BODY(NOTIFY_COMMIT));
	removed = r->notify_commit->proofs_removed;
	qs_client_response_free(r);
	return removed;
}

/* Sleep until the wall clock is past us. */
static void
sleep_past(uint64_t us)
{
	uint64_t now;

	while ((now = qs_test_wall_us()) <= us)
		qs_test_sleep_ms((unsigned)((us - now) / 1000 + 1));
}

/* ------------------------------------------------------------------------
 * Raw frames, for clients the library would not be.
 */

struct frames {
	uint8_t *buf;
	size_t len, cap;
};

static void
frames_add(struct frames *f, Quorumstore__V1__Request *req, uint64_t request_id)
{
	size_t len;

	req->request_id = request_id;
	len = protobuf_c_message_get_packed_size(&req->base);
	if (f->len + 4 + len > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;

		while (cap < f->len + 4 + len)
			cap *= 2;
		f->buf = realloc(f->buf, cap);
		ck_assert_ptr_nonnull(f->buf);
		f->cap = cap;
	}
	f->buf[f->len] = (uint8_t)(len >> 24);
	f->buf[f->len + 1] = (uint8_t)(len >> 16);
	f->buf[f->len + 2] = (uint8_t)(len >> 8);
	f->buf[f->len + 3] = (uint8_t)len;
	protobuf_c_message_pack(&req->base, f->buf + f->len + 4);
	f->len += 4 + len;
}

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void
read_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		ck_assert_msg(r > 0, "recv: %s", r ? strerror(errno) : "closed");
		p += r;
		n -= (size_t)r;
	}
}

/* The next response on a raw connection (free with
 * quorumstore__v1__response__free_unpacked). */
static Quorumstore__V1__Response *
raw_recv(int fd)
{
	uint8_t hdr[4], *body;
	Quorumstore__V1__Response *r;
	size_t len;

	read_all(fd, hdr, 4);
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	ck_assert_uint_le(len, QS_CLIENT_FRAME_MAX_BYTES);
	body = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(body);
	read_all(fd, body, len);
	r = quorumstore__v1__response__unpack(NULL, len, body);
	free(body);
	ck_assert_msg(r != NULL, "a response that does not decode");
	return r;
}

/* A connection to node n that said Hello, as a raw socket. */
static int
raw_connect(const struct qs_test_node *n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__HelloRequest hello = QUORUMSTORE__V1__HELLO_REQUEST__INIT;
	Quorumstore__V1__Response *r;
	struct frames f = {0};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(n->sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, n->sock, strlen(n->sock) + 1);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
	              n->sock, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	hello.protocol_version = QS_PROTOCOL_VERSION;
	hello.client_name = "check_serve/raw";
	req.body_case = REQ(HELLO);
	req.hello = &hello;
	frames_add(&f, &req, 1);
	write_all(fd, f.buf, f.len);
	free(f.buf);
	r = raw_recv(fd);
	ck_assert_int_eq(r->status, STATUS(OK));
	ck_assert_int_eq(r->body_case, BODY(HELLO));
	quorumstore__v1__response__free_unpacked(r, NULL);
	return fd;
}

/* ------------------------------------------------------------------------
 * GetPayload.
 */

static size_t
txns_by_index(size_t i)
{
	return i + 1;
}

static size_t
len_by_index(size_t i)
{
	return 10 * (i + 1);
}

START_TEST(get_payload_returns_every_proof_oldest_batch_first)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[10];
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	Quorumstore__V1__Response *r;
	double served;

	own_node(&n, "payload_all", NULL);
	c = connect_to(&n);
	submit_n(c, b, 10, txns_by_index, len_by_index);
	wait_queue(c, 10);
	served = metric(&n, "qsd_payload_proofs_total");
	/* A pull only reads the queue: twice the same answer. */
	for (int round = 0; round < 2; round++) {
		r = get_payload(c, &lim, NULL, 0);
		ck_assert_uint_eq(r->get_payload->n_inline_batches, 0);
		ck_assert_uint_eq(r->get_payload->n_proofs, 10);
		expect_picks(c, r, b, 10, "pppppppppp", "everything");
		qs_client_response_free(r);
	}
	ck_assert_double_eq(metric(&n, "qsd_payload_proofs_total"), served + 20);
	ck_assert_double_eq(metric(&n, "qsd_payload_inline_batches_total"), 0);
	qs_client_close(c);
	sent_free(b, 10);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_never_exceeds_max_txns_or_max_bytes)
{
	/* Batch i: i + 1 transactions of 10 (i + 1) bytes. */
	static const struct {
		uint64_t max_txns, max_bytes;
		const char *want;
	} cases[] = {
	    {36, 2040, "pppppppp"}, /* both reached exactly: everything */
	    {35, 1u << 30, "ppppppp0"}, {6, 1u << 30, "ppp00000"}, /* 1 + 2 + 3: exactly */
	    {7, 1u << 30, "ppp00000"},  {9, 1u << 30, "ppp00000"}, {10, 1u << 30, "pppp0000"},
	    {1000, 550, "ppppp000"}, /* 10 + 40 + 90 + 160 + 250 */
	    {1000, 549, "pppp0000"},    {1, 1u << 30, "p0000000"}, {1000, 10, "p0000000"},
	    {1000, 9, "00000000"},      {0, 1u << 30, "00000000"}, {1000, 0, "00000000"},
	};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[8];

	own_node(&n, "payload_limits", NULL);
	c = connect_to(&n);
	submit_n(c, b, 8, txns_by_index, len_by_index);
	wait_queue(c, 8);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qs_client_payload_limits lim = {
		    .max_txns = cases[i].max_txns,
		    .max_bytes = cases[i].max_bytes,
		    .return_non_full = true,
		};
		Quorumstore__V1__Response *r = get_payload(c, &lim, NULL, 0);
		uint64_t txns = 0, bytes = 0;
		char what[64];

		for (size_t k = 0; k < r->get_payload->n_proofs; k++) {
			txns += r->get_payload->proofs[k]->info->num_txns;
			bytes += r->get_payload->proofs[k]->info->num_bytes;
		}
		ck_assert_msg(txns <= lim.max_txns && bytes <= lim.max_bytes,
		              "%" PRIu64 " txns and %" PRIu64 " bytes within %" PRIu64
		              " and %" PRIu64,
		              txns, bytes, lim.max_txns, lim.max_bytes);
		snprintf(what, sizeof(what), "max_txns %" PRIu64 " max_bytes %" PRIu64,
		         lim.max_txns, lim.max_bytes);
		expect_picks(c, r, b, 8, cases[i].want, what);
		qs_client_response_free(r);
	}
	qs_client_close(c);
	sent_free(b, 8);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_without_return_non_full_answers_only_a_full_payload)
{
	/* Batch i: i + 1 transactions of 10 (i + 1) bytes; 36 and 2040 in all. */
	static const struct {
		uint64_t max_txns, max_bytes;
		const char *want;
	} cases[] = {
	    {1000, 1u << 30, "00000000"},                             /* room to spare: not full */
	    {37, 2041, "00000000"},       {36, 1u << 30, "pppppppp"}, /* max_txns reached exactly */
	    {1000, 2040, "pppppppp"},  /* max_bytes reached exactly */
	    {7, 1u << 30, "ppp00000"}, /* the next did not fit */
	    {1000, 549, "pppp0000"},
	};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[8];

	own_node(&n, "payload_non_full", NULL);
	c = connect_to(&n);
	submit_n(c, b, 8, txns_by_index, len_by_index);
	wait_queue(c, 8);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qs_client_payload_limits lim = {
		    .max_txns = cases[i].max_txns,
		    .max_bytes = cases[i].max_bytes,
		    .max_inline_txns = 1000,
		    .max_inline_bytes = 1u << 20,
		    .return_non_full = false,
		};
		Quorumstore__V1__Response *r = get_payload(c, &lim, NULL, 0);
		char what[64], want[9];

		/* The payloads are cached, so the picks come inline. */
		for (size_t k = 0; k < 8; k++)
			want[k] = cases[i].want[k] == 'p' ? 'i' : '0';
		want[8] = '\0';
		snprintf(what, sizeof(what), "max_txns %" PRIu64 " max_bytes %" PRIu64,
		         lim.max_txns, lim.max_bytes);
		expect_picks(c, r, b, 8, want, what);
		qs_client_response_free(r);
	}
	qs_client_close(c);
	sent_free(b, 8);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_leaves_out_excluded_digests)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[6];
	uint8_t unknown[QS_DIGEST_BYTES];
	ProtobufCBinaryData ex[6];
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	Quorumstore__V1__Response *r;

	own_node(&n, "payload_exclude", NULL);
	c = connect_to(&n);
	submit_n(c, b, 6, NULL, NULL);
	wait_queue(c, 6);
	ck_assert_int_eq(getrandom(unknown, sizeof(unknown), 0), (ssize_t)sizeof(unknown));
	/* Duplicates and digests not queued are fine. */
	ex[0] = digest_of(&b[1]);
	ex[1] = digest_of(&b[3]);
	ex[2] = digest_of(&b[3]);
	ex[3] = (ProtobufCBinaryData){sizeof(unknown), unknown};
	r = get_payload(c, &lim, ex, 4);
	expect_picks(c, r, b, 6, "p0p0pp", "b1 and b3 excluded");
	qs_client_response_free(r);

	/* Excluded proofs are passed over, not counted against the limits. */
	lim.max_txns = 4;
	ex[0] = digest_of(&b[0]);
	r = get_payload(c, &lim, ex, 2);
	expect_picks(c, r, b, 6, "0pp000", "b0 and b3 excluded, 4 transactions");
	qs_client_response_free(r);

	lim.max_txns = 1000000;
	for (size_t i = 0; i < 6; i++)
		ex[i] = digest_of(&b[i]);
	r = get_payload(c, &lim, ex, 6);
	ck_assert_uint_eq(r->get_payload->n_proofs + r->get_payload->n_inline_batches, 0);
	qs_client_response_free(r);
	/* A pull excludes for itself only. */
	expect_queued(c, b, 6, "pppppp", "no exclude");
	qs_client_close(c);
	sent_free(b, 6);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_refuses_a_malformed_exclude_digest)
{
	struct qs_client *c = connect_to(&cl.shared);
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000, .max_bytes = 1u << 20, .return_non_full = true};
	static uint8_t digest[QS_DIGEST_BYTES + 1];
	static const size_t bad_lens[] = {0, 1, QS_DIGEST_BYTES - 1, QS_DIGEST_BYTES + 1};
	size_t many = 65537;
	ProtobufCBinaryData ex[2], *lots;
	Quorumstore__V1__Response *r = NULL;
	double invalid = metric(&cl.shared, "qsd_rpc_errors_total{status=\"invalid_argument\"}");

	for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		char what[64];

		ex[0] = (ProtobufCBinaryData){QS_DIGEST_BYTES, digest};
		ex[1] = (ProtobufCBinaryData){bad_lens[i], digest};
		snprintf(what, sizeof(what), "GetPayload excluding a %zu-byte digest", bad_lens[i]);
		expect_status(qs_client_get_payload(c, &lim, ex, 2, IO_TIMEOUT_MS, &r), &r,
		              STATUS(INVALID_ARGUMENT), what);
		qs_client_response_free(r);
		r = NULL;
	}
	/* More digests than any pending blocks hold. */
	lots = calloc(many, sizeof(*lots));
	ck_assert_ptr_nonnull(lots);
	for (size_t i = 0; i < many; i++)
		lots[i] = (ProtobufCBinaryData){QS_DIGEST_BYTES, digest};
	expect_status(qs_client_get_payload(c, &lim, lots, many, IO_TIMEOUT_MS, &r), &r,
	              STATUS(INVALID_ARGUMENT), "GetPayload excluding 65537 digests");
	qs_client_response_free(r);
	r = NULL;
	/* At the bound it is fine. */
	expect_ok(qs_client_get_payload(c, &lim, lots, many - 1, IO_TIMEOUT_MS, &r), &r,
	          "GetPayload excluding 65536 digests", BODY(GET_PAYLOAD));
	qs_client_response_free(r);
	free(lots);
	ck_assert_double_eq(metric(&cl.shared, "qsd_rpc_errors_total{status=\"invalid_argument\"}"),
	                    invalid + 5);
	qs_client_close(c);
}
END_TEST

START_TEST(get_payload_inlines_cached_batches_within_the_inline_limits)
{
	/* Batch i: 2 transactions; bytes 600, 600, 200, 200, 600, 200. */
	static const size_t lens[] = {300, 300, 100, 100, 300, 100};
	static const struct {
		uint64_t max_txns, max_inline_txns, max_inline_bytes;
		const char *want;
	} cases[] = {
	    {1000, 0, 1u << 20, "pppppp"},
	    {1000, 1000, 0, "pppppp"},
	    {1000, 1, 1u << 20, "pppppp"}, /* no batch has a single transaction */
	    {1000, 5, 1u << 20, "iipppp"},
	    {1000, 1000, 1u << 20, "iiiiii"},
	    /* Over the bytes left, then smaller ones still fit. */
	    {1000, 1000, 1000, "ipiipp"},
	    {1000, 1000, 800, "ipippp"},
	    {1000, 1000, 599, "ppiipp"},
	    /* Inline batches count toward max_txns too. */
	    {6, 1000, 1u << 20, "iii000"},
	    {5, 1000, 1u << 20, "ii0000"},
	};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[6];
	double inlined;
	uint64_t n_inline = 0;

	own_node(&n, "payload_inline", NULL);
	c = connect_to(&n);
	for (size_t i = 0; i < 6; i++) {
		sent_make(&b[i], 2, lens[i]);
		submit(c, &b[i]);
	}
	wait_queue(c, 6);
	inlined = metric(&n, "qsd_payload_inline_batches_total");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qs_client_payload_limits lim = {
		    .max_txns = cases[i].max_txns,
		    .max_bytes = 1u << 30,
		    .max_inline_txns = cases[i].max_inline_txns,
		    .max_inline_bytes = cases[i].max_inline_bytes,
		    .return_non_full = true,
		};
		Quorumstore__V1__Response *r = get_payload(c, &lim, NULL, 0);
		uint64_t txns = 0, bytes = 0;
		char what[96];

		for (size_t k = 0; k < r->get_payload->n_inline_batches; k++) {
			txns += r->get_payload->inline_batches[k]->info->num_txns;
			bytes += r->get_payload->inline_batches[k]->info->num_bytes;
		}
		ck_assert(txns <= lim.max_inline_txns && bytes <= lim.max_inline_bytes);
		n_inline += r->get_payload->n_inline_batches;
		snprintf(what, sizeof(what),
		         "max_txns %" PRIu64 " max_inline_txns %" PRIu64
		         " max_inline_bytes %" PRIu64,
		         lim.max_txns, lim.max_inline_txns, lim.max_inline_bytes);
		expect_picks(c, r, b, 6, cases[i].want, what);
		qs_client_response_free(r);
	}
	ck_assert_double_eq(metric(&n, "qsd_payload_inline_batches_total"),
	                    inlined + (double)n_inline);
	qs_client_close(c);
	sent_free(b, 6);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_never_inlines_without_a_payload_cache)
{
	struct opts o = {.serving = "  payload_cache_bytes: 0\n"};
	struct qs_client_payload_limits lim = {.max_txns = 1000000,
	                                       .max_bytes = 1u << 30,
	                                       .max_inline_txns = 1000000,
	                                       .max_inline_bytes = 1u << 30,
	                                       .return_non_full = true};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[4];
	Quorumstore__V1__Response *r;

	own_node(&n, "payload_no_cache", &o);
	c = connect_to(&n);
	submit_n(c, b, 4, NULL, NULL);
	wait_queue(c, 4);
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 4, "pppp", "no payload cache");
	qs_client_response_free(r);
	/* Nothing is kept in memory: every GetBatch reads the disk, and a read
	 * does not make the batch inline either. */
	expect_batch(c, &b[0], SOURCE(DISK));
	expect_batch(c, &b[0], SOURCE(DISK));
	ck_assert_double_eq(metric(&n, FETCH("disk", "ok")), 2);
	ck_assert_double_eq(metric(&n, FETCH("memory", "ok")), 0);
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 4, "pppp", "no payload cache, after a read");
	qs_client_response_free(r);
	qs_client_close(c);
	sent_free(b, 4);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_inlines_only_batches_the_cache_still_holds)
{
	/* Each payload is charged 200 bytes, 2 slices and the entry overhead:
	 * the cache holds two. */
	struct opts o = {.serving = "  payload_cache_bytes: 1100\n"};
	struct qs_client_payload_limits lim = {.max_txns = 1000000,
	                                       .max_bytes = 1u << 30,
	                                       .max_inline_txns = 1000000,
	                                       .max_inline_bytes = 1u << 30,
	                                       .return_non_full = true};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[4];
	Quorumstore__V1__Response *r;

	own_node(&n, "payload_small_cache", &o);
	c = connect_to(&n);
	submit_n(c, b, 4, NULL, NULL);
	wait_queue(c, 4);
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 4, "ppii", "the two last payloads cached");
	qs_client_response_free(r);
	/* A read caches b0 and evicts the least recently used, b2. */
	expect_batch(c, &b[0], SOURCE(DISK));
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 4, "ippi", "b0 read, b2 evicted");
	qs_client_response_free(r);
	qs_client_close(c);
	sent_free(b, 4);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_payload_inlines_only_batches_in_memory_after_a_restart)
{
	struct qs_client_payload_limits lim = {.max_txns = 1000000,
	                                       .max_bytes = 1u << 30,
	                                       .max_inline_txns = 1000000,
	                                       .max_inline_bytes = 1u << 30,
	                                       .return_non_full = true};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[3];
	Quorumstore__V1__Response *r;

	own_node(&n, "payload_restart_inline", NULL);
	c = connect_to(&n);
	submit_n(c, b, 3, NULL, NULL);
	wait_queue(c, 3);
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 3, "iii", "cached when submitted");
	qs_client_response_free(r);
	qs_client_close(c);

	restart(&n, SIGTERM);
	c = connect_to(&n);
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 3, "ppp", "nothing cached after a restart");
	qs_client_response_free(r);
	expect_batch(c, &b[1], SOURCE(DISK));
	r = get_payload(c, &lim, NULL, 0);
	expect_picks(c, r, b, 3, "pip", "b1 read from disk");
	qs_client_response_free(r);
	qs_client_close(c);
	sent_free(b, 3);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * NotifyCommit.
 */

START_TEST(notify_commit_removes_committed_proofs_also_across_restarts)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[6];
	uint8_t unknown[QS_DIGEST_BYTES];
	ProtobufCBinaryData d[5];
	int order[16];
	size_t pages;
	double commits, committed;
	Quorumstore__V1__Response *st;

	own_node(&n, "commit", NULL);
	c = connect_to(&n);
	submit_n(c, b, 6, NULL, NULL);
	wait_queue(c, 6);
	commits = metric(&n, "qsd_commits_total");
	committed = metric(&n, "qsd_proofs_committed_total");
	ck_assert_int_eq(getrandom(unknown, sizeof(unknown), 0), (ssize_t)sizeof(unknown));
	d[0] = digest_of(&b[0]);
	d[1] = digest_of(&b[2]);
	d[2] = digest_of(&b[4]);
	d[3] = digest_of(&b[2]);
	d[4] = (ProtobufCBinaryData){sizeof(unknown), unknown};
	/* Only queued proofs count: a duplicate or an unknown digest does not. */
	ck_assert_uint_eq(commit_ok(c, qs_test_wall_us(), d, 5), 3);
	expect_queued(c, b, 6, "0p0p0p", "after the commit");
	ck_assert_uint_eq(list_all_proofs(c, NULL, 0, 0, b, 6, order, 16, &pages), 3);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 3);
	ck_assert_int_eq(order[2], 5);
	st = get_status(c);
	ck_assert_uint_eq(st->get_status->proof_queue_size, 3);
	ck_assert_uint_eq(st->get_status->batches_stored, 6); /* payloads stay */
	qs_client_response_free(st);
	/* Committed again: nothing left to remove. */
	ck_assert_uint_eq(commit_ok(c, qs_test_wall_us(), d, 5), 0);
	ck_assert_double_eq(metric(&n, "qsd_commits_total"), commits + 2);
	ck_assert_double_eq(metric(&n, "qsd_proofs_committed_total"), committed + 3);
	qs_client_close(c);

	/* The proof queue is restored from `proofs`: without the committed. */
	restart(&n, SIGTERM);
	c = connect_to(&n);
	wait_queue(c, 3);
	expect_queued(c, b, 6, "0p0p0p", "after SIGTERM");
	ck_assert_uint_eq(list_all_batches(c, NULL, 0, 0, b, 6, order, 16, &pages), 6);

	/* The answer came after the deletes were synced: kill -9 right away. */
	d[0] = digest_of(&b[1]);
	ck_assert_uint_eq(commit_ok(c, qs_test_wall_us(), d, 1), 1);
	qs_client_close(c);
	restart(&n, SIGKILL);
	c = connect_to(&n);
	wait_queue(c, 2);
	expect_queued(c, b, 6, "000p0p", "after kill -9");
	qs_client_close(c);
	sent_free(b, 6);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(notify_commit_refuses_malformed_digests_and_removes_nothing)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[2];
	static uint8_t junk[QS_DIGEST_BYTES + 1];
	ProtobufCBinaryData d[2], *lots;
	Quorumstore__V1__Response *r;
	size_t many = 10001;

	own_node(&n, "commit_malformed", NULL);
	c = connect_to(&n);
	submit_n(c, b, 2, NULL, NULL);
	wait_queue(c, 2);
	d[0] = digest_of(&b[0]);
	d[1] = (ProtobufCBinaryData){QS_DIGEST_BYTES - 1, junk};
	r = notify_commit(c, qs_test_wall_us(), d, 2);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "NotifyCommit with a 31-byte digest");
	qs_client_response_free(r);
	d[1] = (ProtobufCBinaryData){QS_DIGEST_BYTES + 1, junk};
	r = notify_commit(c, qs_test_wall_us(), d, 2);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "NotifyCommit with a 33-byte digest");
	qs_client_response_free(r);
	lots = calloc(many, sizeof(*lots));
	ck_assert_ptr_nonnull(lots);
	lots[0] = digest_of(&b[1]);
	for (size_t i = 1; i < many; i++)
		lots[i] = (ProtobufCBinaryData){QS_DIGEST_BYTES, junk};
	r = notify_commit(c, qs_test_wall_us(), lots, many);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "NotifyCommit with 10001 digests");
	qs_client_response_free(r);
	free(lots);
	expect_queued(c, b, 2, "pp", "after the refusals");
	ck_assert_double_eq(metric(&n, "qsd_commits_total"), 0);
	qs_client_close(c);
	sent_free(b, 2);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(notify_commit_before_the_proof_keeps_it_out_of_the_queue)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[3];
	const Quorumstore__V1__HelloResponse *h;
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	Quorumstore__V1__NotifyCommitRequest nc;
	Quorumstore__V1__Response *r;
	ProtobufCBinaryData d;
	struct frames f = {0};
	uint64_t seen = 0;
	int fd;

	own_node(&n, "commit_early", NULL);
	c = connect_to(&n);
	h = qs_client_server(c);
	submit_n(c, b, 1, NULL, NULL);
	/* Batch ids of one author follow each other: b1 will be the next, so
	 * its digest is known before qsd has it. */
	sent_make(&b[1], 2, 100);
	b[1].batch_id = b[0].batch_id + 1;
	b[1].epoch = b[0].epoch;
	ck_assert_int_eq(qs_codec_batch_digest(h->chain_id, h->author.data, b[1].epoch,
	                                       b[1].batch_id, b[1].txns, b[1].n_txns, b[1].digest),
	                 0);
	/* Consensus commits b1 (a block of another leader, say) while b1 is
	 * still being stored here. */
	fd = raw_connect(&n);
	qs_test_submit_request(&req, &sb, b[1].txns, b[1].n_txns, NULL, 0);
	frames_add(&f, &req, 10);
	d = digest_of(&b[1]);
	qs_test_commit_request(&req, &nc, qs_test_wall_us(), &d, 1);
	frames_add(&f, &req, 11);
	write_all(fd, f.buf, f.len);
	free(f.buf);
	for (int i = 0; i < 2; i++) {
		r = raw_recv(fd);
		ck_assert_msg(r->status == STATUS(OK), "request %" PRIu64 " answered %s: %s",
		              r->request_id, qs_client_status_name(r->status), r->message);
		if (r->request_id == 10) {
			b[1].expiration_us = r->submit_batch->info->expiration_us;
			ck_assert(info_is(c, r->submit_batch->info, &b[1]));
		}
		seen |= 1u << (r->request_id - 10);
		quorumstore__v1__response__free_unpacked(r, NULL);
	}
	ck_assert_uint_eq(seen, 3);
	close(fd);
	/* Proofs are written in order: once b2's is queued, b1's was handled. */
	submit_n(c, b + 2, 1, NULL, NULL);
	wait_queue(c, 2);
	expect_queued(c, b, 3, "p0p", "b1 committed before its proof");
	qs_client_close(c);

	restart(&n, SIGTERM);
	c = connect_to(&n);
	wait_queue(c, 2);
	expect_queued(c, b, 3, "p0p", "b1 committed before its proof, after a restart");
	qs_client_close(c);
	sent_free(b, 3);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * Restarts.
 */

/* The packed bytes of every proof GetPayload answers, by batch sent. */
static void
proof_bytes(struct qs_client *c, const struct sent *b, size_t n, uint8_t **out, size_t *lens)
{
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	Quorumstore__V1__Response *r = get_payload(c, &lim, NULL, 0);
	const Quorumstore__V1__GetPayloadResponse *gp = r->get_payload;

	ck_assert_uint_eq(gp->n_proofs, n);
	for (size_t i = 0; i < n; i++) {
		out[i] = NULL;
		lens[i] = 0;
	}
	for (size_t i = 0; i < gp->n_proofs; i++) {
		int k = check_proof(c, gp->proofs[i], b, n);

		ck_assert_ptr_null(out[k]);
		lens[k] = protobuf_c_message_get_packed_size(&gp->proofs[i]->base);
		out[k] = malloc(lens[k]);
		ck_assert_ptr_nonnull(out[k]);
		protobuf_c_message_pack(&gp->proofs[i]->base, out[k]);
	}
	qs_client_response_free(r);
}

static void
expect_same_proofs(struct qs_client *c, const struct sent *b, size_t n, uint8_t **before,
                   const size_t *before_lens, const char *what)
{
	uint8_t *after[MAX_SENT];
	size_t after_lens[MAX_SENT];

	proof_bytes(c, b, n, after, after_lens);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(after_lens[i] == before_lens[i] &&
		                  memcmp(after[i], before[i], before_lens[i]) == 0,
		              "%s: the proof of batch %" PRIu64 " changed", what, b[i].batch_id);
		free(after[i]);
	}
}

START_TEST(restart_serves_the_same_proofs_after_sigterm_and_kill_9)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[8];
	uint8_t *before[MAX_SENT];
	size_t lens[MAX_SENT];

	own_node(&n, "restart", NULL);
	c = connect_to(&n);
	submit_n(c, b, 5, NULL, NULL);
	wait_queue(c, 5);
	proof_bytes(c, b, 5, before, lens);
	qs_client_close(c);

	restart(&n, SIGTERM);
	c = connect_to(&n);
	wait_queue(c, 5);
	expect_same_proofs(c, b, 5, before, lens, "after SIGTERM");
	for (size_t i = 0; i < 5; i++)
		free(before[i]);
	submit_n(c, b + 5, 3, NULL, NULL);
	wait_queue(c, 8);
	proof_bytes(c, b, 8, before, lens);
	qs_client_close(c);

	/* A proof is queued only once durable: kill -9 loses none. */
	restart(&n, SIGKILL);
	c = connect_to(&n);
	wait_queue(c, 8);
	expect_same_proofs(c, b, 8, before, lens, "after kill -9");
	for (size_t i = 0; i < 8; i++)
		free(before[i]);
	qs_client_close(c);
	sent_free(b, 8);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * Expiry and GC.
 */

static void
expect_store_empty(const struct qs_test_node *n)
{
	struct qs_db_check_report rep;
	char err[512] = "";
	int rc = qs_store_check(n->data, &rep, NULL, NULL, err, sizeof(err));

	ck_assert_msg(rc == 0, "qs_store_check %s: %s (%s)", n->data, qs_strerror(rc), err);
	ck_assert_msg(rep.infos == 0 && rep.batches == 0 && rep.proofs == 0 && rep.committed == 0,
	              "%" PRIu64 " infos, %" PRIu64 " payloads, %" PRIu64 " proofs and %" PRIu64
	              " committed markers left on disk",
	              rep.infos, rep.batches, rep.proofs, rep.committed);
	ck_assert_uint_eq(rep.bad_payloads + rep.bad_infos + rep.bad_proofs + rep.missing_payloads +
	                      rep.orphan_payloads,
	                  0);
}

static void
expect_not_found(struct qs_client *c, const struct sent *b)
{
	Quorumstore__V1__Response *r = get_batch(c, b->digest, QS_DIGEST_BYTES, NULL, 0);

	expect_status(0, &r, STATUS(NOT_FOUND), "GetBatch of a collected batch");
	qs_client_response_free(r);
}

START_TEST(expired_proofs_leave_and_their_payloads_are_collected)
{
	struct opts o = {
	    .lifetime_ms = SHORT_LIFETIME_MS,
	    .serving = "  gc_buffer_ms: 0\n"
		       "  gc_stall_buffer_ms: 1000\n",
	};
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[4];
	Quorumstore__V1__Response *r;
	uint64_t first = UINT64_MAX, last = 0, deadline;
	size_t n_proofs = 0, pages;
	int order[8];

	own_node(&n, "expiry", &o);
	c = connect_to(&n);
	submit_n(c, b, 4, NULL, NULL);
	for (size_t i = 0; i < 4; i++) {
		first = b[i].expiration_us < first ? b[i].expiration_us : first;
		last = b[i].expiration_us > last ? b[i].expiration_us : last;
	}
	/* Before they expire they are served (unless this machine is too slow
	 * to ask in time: then there is nothing to say). */
	while ((r = get_payload(c, &lim, NULL, 0))->get_payload->n_proofs < 4 &&
	       qs_test_wall_us() < first) {
		qs_client_response_free(r);
		qs_test_sleep_ms(10);
	}
	if (qs_test_wall_us() < first)
		expect_picks(c, r, b, 4, "pppp", "before expiry");
	qs_client_response_free(r);

	/* Past its expiration a proof is never served... */
	sleep_past(last);
	r = get_payload(c, &lim, NULL, 0);
	ck_assert_uint_eq(r->get_payload->n_proofs + r->get_payload->n_inline_batches, 0);
	qs_client_response_free(r);
	/* ...and leaves the queue. */
	deadline = qs_test_now_ms() + WAIT_MS;
	do {
		Quorumstore__V1__Response *st = get_status(c);

		n_proofs = st->get_status->proof_queue_size;
		qs_client_response_free(st);
		if (n_proofs)
			qs_test_sleep_ms(50);
	} while (n_proofs && qs_test_now_ms() < deadline);
	ck_assert_uint_eq(n_proofs, 0);
	ck_assert_uint_eq(list_all_proofs(c, NULL, 0, 0, b, 4, order, 8, &pages), 0);

	/* The payloads go a stall buffer later, without any commit. */
	expect_metric(&n, GC_BATCHES, 4);
	ck_assert_double_ge(qs_test_wait_metric(&n, GC_RUNS, 1, WAIT_MS), 1);
	ck_assert_uint_eq(list_all_batches(c, NULL, 0, 0, b, 4, order, 8, &pages), 0);
	/* One validator: no signer to fetch a collected batch from. */
	expect_not_found(c, &b[0]);
	expect_metric(&n, FETCH("peer", "miss"), 1);
	ck_assert_double_eq(metric(&n, FETCH("memory", "ok")), 0);
	ck_assert_double_eq(metric(&n, FETCH("disk", "ok")), 0);
	qs_client_close(c);
	sent_free(b, 4);
	qs_test_expect_clean_exit(&n);
	expect_store_empty(&n);
}
END_TEST

START_TEST(notify_commit_block_timestamp_moves_the_gc_cutoff)
{
	struct opts o = {
	    .lifetime_ms = SHORT_LIFETIME_MS,
	    .serving = "  gc_buffer_ms: 1000\n"
		       "  gc_stall_buffer_ms: 600000\n",
	};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[3];
	size_t first = 0;
	uint64_t last = 0;

	own_node(&n, "commit_gc", &o);
	c = connect_to(&n);
	submit_n(c, b, 3, NULL, NULL);
	for (size_t i = 0; i < 3; i++) {
		if (b[i].expiration_us < b[first].expiration_us)
			first = i;
		last = b[i].expiration_us > last ? b[i].expiration_us : last;
	}
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(i == first || b[i].expiration_us > b[first].expiration_us,
		              "two batches expire at the same microsecond");
	sleep_past(last);
	/* Expired and not committed: kept for a stalled consensus (the clock
	 * alone collects them only after 10 minutes). */
	expect_batch(c, &b[first], SOURCE(MEMORY));
	ck_assert_double_eq(metric(&n, GC_BATCHES), 0);

	/* A block at the first expiration + gc_buffer: exactly that one goes. */
	ck_assert_uint_eq(commit_ok(c, b[first].expiration_us + 1000000, NULL, 0), 0);
	expect_metric(&n, GC_BATCHES, 1);
	expect_not_found(c, &b[first]);
	for (size_t i = 0; i < 3; i++)
		if (i != first)
			expect_batch(c, &b[i], SOURCE(MEMORY));
	/* A block timestamp going back moves nothing. */
	ck_assert_uint_eq(commit_ok(c, b[first].expiration_us, NULL, 0), 0);
	ck_assert_double_eq(metric(&n, GC_BATCHES), 1);

	ck_assert_uint_eq(commit_ok(c, last + 1000000, NULL, 0), 0);
	expect_metric(&n, GC_BATCHES, 3);
	for (size_t i = 0; i < 3; i++)
		expect_not_found(c, &b[i]);
	qs_client_close(c);
	sent_free(b, 3);
	qs_test_expect_clean_exit(&n);
	expect_store_empty(&n);
}
END_TEST

START_TEST(notify_commit_block_timestamp_survives_kill_9)
{
	struct opts o = {
	    .lifetime_ms = SHORT_LIFETIME_MS,
	    .serving = "  gc_buffer_ms: 1000\n"
		       "  gc_stall_buffer_ms: 600000\n",
	};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[2];

	own_node(&n, "commit_gc_kill", &o);
	c = connect_to(&n);
	submit_n(c, b, 2, NULL, NULL);
	sleep_past(b[1].expiration_us);
	/* Answered once the timestamp is durable: the cutoff it moves holds
	 * across kill -9, and recovery collects what GC had no time to. */
	ck_assert_uint_eq(commit_ok(c, b[1].expiration_us + 1000000, NULL, 0), 0);
	qs_client_close(c);
	restart(&n, SIGKILL);
	c = connect_to(&n);
	expect_not_found(c, &b[0]);
	expect_not_found(c, &b[1]);
	qs_client_close(c);
	sent_free(b, 2);
	qs_test_expect_clean_exit(&n);
	expect_store_empty(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * GetBatch.
 */

START_TEST(get_batch_serves_memory_then_disk_after_a_restart_then_memory)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[2];
	const Quorumstore__V1__HelloResponse *h;
	ProtobufCBinaryData self;
	uint8_t key[QS_PUBKEY_BYTES];

	own_node(&n, "get_batch", NULL);
	c = connect_to(&n);
	submit_n(c, b, 2, NULL, NULL);
	/* Own batches are cached once durable. */
	expect_batch(c, &b[0], SOURCE(MEMORY));
	ck_assert_double_eq(metric(&n, FETCH("memory", "ok")), 1);
	ck_assert_double_eq(metric(&n, FETCH("disk", "ok")), 0);
	qs_client_close(c);

	restart(&n, SIGTERM);
	c = connect_to(&n);
	expect_batch(c, &b[0], SOURCE(DISK));
	ck_assert_double_eq(metric(&n, FETCH("disk", "ok")), 1);
	ck_assert_double_eq(metric(&n, FETCH("memory", "ok")), 0);
	/* A read is cached. */
	expect_batch(c, &b[0], SOURCE(MEMORY));
	ck_assert_double_eq(metric(&n, FETCH("memory", "ok")), 1);
	/* Naming this node as the signer does not change where it comes from. */
	h = qs_client_server(c);
	memcpy(key, h->author.data, sizeof(key));
	self = (ProtobufCBinaryData){sizeof(key), key};
	{
		Quorumstore__V1__Response *r = get_batch(c, b[1].digest, QS_DIGEST_BYTES, &self, 1);

		expect_ok(0, &r, "GetBatch naming this node", BODY(GET_BATCH));
		ck_assert_int_eq(r->get_batch->source, SOURCE(DISK));
		check_inline(c, r->get_batch->batch, &b[1], 1);
		qs_client_response_free(r);
	}
	ck_assert_double_eq(metric(&n, FETCH("disk", "ok")), 2);
	ck_assert_double_eq(metric(&n, FETCH("peer", "miss")), 0);
	ck_assert_double_eq(metric(&n, FETCH("disk", "error")), 0);
	qs_client_close(c);
	sent_free(b, 2);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(get_batch_refuses_malformed_requests_and_misses_unknown_digests)
{
	struct qs_client *c = connect_to(&cl.shared);
	static const size_t bad_lens[] = {0, QS_DIGEST_BYTES - 1, QS_DIGEST_BYTES + 1};
	static uint8_t digest[QS_DIGEST_BYTES + 1];
	uint8_t key[QS_PUBKEY_BYTES + 1], other[QS_PUBKEY_BYTES];
	ProtobufCBinaryData signers[2];
	Quorumstore__V1__Response *r;
	double miss = metric(&cl.shared, FETCH("peer", "miss"));

	for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "GetBatch of a %zu-byte digest", bad_lens[i]);
		r = get_batch(c, digest, bad_lens[i], NULL, 0);
		expect_status(0, &r, STATUS(INVALID_ARGUMENT), what);
		qs_client_response_free(r);
	}
	memcpy(key, qs_client_server(c)->author.data, QS_PUBKEY_BYTES);
	ck_assert_int_eq(getrandom(other, sizeof(other), 0), (ssize_t)sizeof(other));
	ck_assert_int_eq(getrandom(digest, sizeof(digest), 0), (ssize_t)sizeof(digest));
	signers[0] = (ProtobufCBinaryData){QS_PUBKEY_BYTES - 1, key};
	r = get_batch(c, digest, QS_DIGEST_BYTES, signers, 1);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "GetBatch naming a 31-byte signer");
	qs_client_response_free(r);
	signers[0] = (ProtobufCBinaryData){QS_PUBKEY_BYTES, other};
	r = get_batch(c, digest, QS_DIGEST_BYTES, signers, 1);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "GetBatch naming an unknown signer");
	qs_client_response_free(r);
	signers[0] = (ProtobufCBinaryData){QS_PUBKEY_BYTES, key};
	signers[1] = (ProtobufCBinaryData){QS_PUBKEY_BYTES, key};
	r = get_batch(c, digest, QS_DIGEST_BYTES, signers, 2);
	expect_status(0, &r, STATUS(INVALID_ARGUMENT), "GetBatch naming more signers than exist");
	qs_client_response_free(r);
	ck_assert_double_eq(metric(&cl.shared, FETCH("peer", "miss")), miss);

	/* A digest nobody has: nothing here, and no other validator to ask. */
	r = get_batch(c, digest, QS_DIGEST_BYTES, NULL, 0);
	expect_status(0, &r, STATUS(NOT_FOUND), "GetBatch of an unknown digest");
	qs_client_response_free(r);
	expect_metric(&cl.shared, FETCH("peer", "miss"), miss + 1);
	qs_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------------
 * Listings.
 */

/* Each of the n batches exactly once in order[0 .. count). */
static void
expect_each_once(const int *order, size_t count, size_t n, const char *what)
{
	int seen[MAX_SENT] = {0};

	ck_assert_msg(count == n, "%s: %zu entries, want %zu", what, count, n);
	for (size_t i = 0; i < count; i++) {
		ck_assert_msg(!seen[order[i]], "%s: batch %d listed twice", what, order[i]);
		seen[order[i]] = 1;
	}
}

START_TEST(listings_page_through_each_entry_exactly_once)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[10];
	const uint8_t *me;
	int order[32];
	size_t count, pages;

	own_node(&n, "listings", NULL);
	c = connect_to(&n);
	me = qs_client_server(c)->author.data;
	submit_n(c, b, 10, NULL, NULL);
	wait_queue(c, 10);

	count = list_all_batches(c, NULL, 0, 3, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListBatches by 3");
	ck_assert_uint_eq(pages, 4);
	count = list_all_batches(c, me, QS_PUBKEY_BYTES, 3, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListBatches of this author by 3");
	ck_assert_uint_eq(pages, 4);
	count = list_all_batches(c, NULL, 0, 0, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListBatches, default page");
	ck_assert_uint_eq(pages, 1);
	count = list_all_batches(c, NULL, 0, 10, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListBatches by 10");
	ck_assert_uint_eq(pages, 1);
	count = list_all_batches(c, NULL, 0, 100000, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListBatches over the most per page");

	count = list_all_proofs(c, NULL, 0, 3, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListProofs by 3");
	ck_assert_uint_eq(pages, 4);
	/* The queue's order: by batch id within an author. */
	for (size_t i = 0; i < count; i++)
		ck_assert_int_eq(order[i], (int)i);
	count = list_all_proofs(c, me, QS_PUBKEY_BYTES, 3, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListProofs of this author by 3");
	count = list_all_proofs(c, NULL, 0, 1, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListProofs by 1");
	ck_assert_uint_eq(pages, 10);
	count = list_all_proofs(c, NULL, 0, 0, b, 10, order, 32, &pages);
	expect_each_once(order, count, 10, "ListProofs, default page");
	ck_assert_uint_eq(pages, 1);
	qs_client_close(c);
	sent_free(b, 10);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(listings_refuse_unknown_authors_and_bad_cursors)
{
	struct qs_client *c = connect_to(&cl.shared);
	uint8_t other[QS_PUBKEY_BYTES], me[QS_PUBKEY_BYTES], cursor[16];
	static const size_t bad_cursor_lens[] = {1, 7, 9, 16};
	Quorumstore__V1__Response *r = NULL;

	memcpy(me, qs_client_server(c)->author.data, sizeof(me));
	ck_assert_int_eq(getrandom(other, sizeof(other), 0), (ssize_t)sizeof(other));
	memset(cursor, 0xff, sizeof(cursor));
	for (int proofs = 0; proofs < 2; proofs++) {
		int (*list)(struct qs_client *, const uint8_t *, size_t, const uint8_t *, size_t,
		            uint32_t, int, Quorumstore__V1__Response **) =
		    proofs ? qs_client_list_proofs : qs_client_list_batches;
		const char *name = proofs ? "ListProofs" : "ListBatches";
		char what[96];

		snprintf(what, sizeof(what), "%s of an author not in the set", name);
		expect_status(list(c, other, sizeof(other), NULL, 0, 3, IO_TIMEOUT_MS, &r), &r,
		              STATUS(INVALID_ARGUMENT), what);
		qs_client_response_free(r);
		snprintf(what, sizeof(what), "%s of a 31-byte author", name);
		expect_status(list(c, me, sizeof(me) - 1, NULL, 0, 3, IO_TIMEOUT_MS, &r), &r,
		              STATUS(INVALID_ARGUMENT), what);
		qs_client_response_free(r);
		for (size_t i = 0; i < sizeof(bad_cursor_lens) / sizeof(bad_cursor_lens[0]); i++) {
			snprintf(what, sizeof(what), "%s after a %zu-byte cursor", name,
			         bad_cursor_lens[i]);
			expect_status(
			    list(c, NULL, 0, cursor, bad_cursor_lens[i], 3, IO_TIMEOUT_MS, &r), &r,
			    STATUS(INVALID_ARGUMENT), what);
			qs_client_response_free(r);
		}
		/* A cursor is opaque: one past everything lists nothing. */
		snprintf(what, sizeof(what), "%s after a cursor past the end", name);
		expect_ok(list(c, NULL, 0, cursor, 8, 3, IO_TIMEOUT_MS, &r), &r, what,
		          proofs ? BODY(LIST_PROOFS) : BODY(LIST_BATCHES));
		ck_assert_uint_eq(proofs ? r->list_proofs->n_proofs : r->list_batches->n_infos, 0);
		ck_assert_uint_eq(proofs ? r->list_proofs->next.len : r->list_batches->next.len, 0);
		qs_client_response_free(r);
	}
	qs_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------------
 * NewEpoch.
 */

/* This node as a ValidatorInfo: its keys from the cluster's files. */
struct self {
	char name[16];
	char address[64];
	uint8_t network_key[QS_PUBKEY_BYTES];
	uint8_t signing_key[QS_PUBKEY_BYTES];
};

static void
read_pub(const struct qs_test_node *n, const char *file, uint8_t *key)
{
	char path[600], hex[2 * QS_PUBKEY_BYTES + 2] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/v0/keys/%s", n->dir, file);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_ptr_nonnull(fgets(hex, sizeof(hex), f));
	fclose(f);
	hex[strcspn(hex, "\n")] = '\0';
	ck_assert_int_eq(qs_hex_decode(hex, key, QS_PUBKEY_BYTES), 0);
}

static void
self_of(const struct qs_test_node *n, struct self *s)
{
	snprintf(s->name, sizeof(s->name), "v0");
	snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", n->port);
	read_pub(n, "network.pub", s->network_key);
	read_pub(n, "signing.pub", s->signing_key);
}

static void
validator(Quorumstore__V1__ValidatorInfo *v, const char *name, const char *address,
          uint8_t *network_key, size_t network_len, uint8_t *signing_key, uint64_t power)
{
	quorumstore__v1__validator_info__init(v);
	v->name = (char *)name;
	v->address = (char *)address;
	v->network_key = (ProtobufCBinaryData){network_len, network_key};
	v->signing_key = (ProtobufCBinaryData){QS_PUBKEY_BYTES, signing_key};
	v->voting_power = power;
}

static Quorumstore__V1__Response *
new_epoch(struct qs_client *c, uint64_t epoch, Quorumstore__V1__ValidatorInfo *v, size_t n)
{
	Quorumstore__V1__ValidatorInfo *ptrs[4];
	Quorumstore__V1__Response *r = NULL;
	int rc;

	for (size_t i = 0; i < n; i++)
		ptrs[i] = &v[i];
	rc = qs_client_new_epoch(c, epoch, ptrs, n, IO_TIMEOUT_MS, &r);
	ck_assert_msg(rc == 0, "NewEpoch: %s", qs_strerror(rc));
	return r;
}

static void
expect_epoch_refused(struct qs_client *c, uint64_t epoch, Quorumstore__V1__ValidatorInfo *v,
                     size_t n, Quorumstore__V1__Status status, const char *what)
{
	Quorumstore__V1__Response *r = new_epoch(c, epoch, v, n);

	expect_status(0, &r, status, what);
	qs_client_response_free(r);
}

START_TEST(new_epoch_refuses_invalid_sets)
{
	struct qs_client *c = connect_to(&cl.shared);
	Quorumstore__V1__ValidatorInfo v[2];
	struct self me;
	uint8_t other_net[QS_PUBKEY_BYTES], other_sign[QS_PUBKEY_BYTES];
	uint64_t epoch = qs_client_server(c)->epoch;
	Quorumstore__V1__Response *st;
	struct sent b;

	self_of(&cl.shared, &me);
	ck_assert_int_eq(getrandom(other_net, sizeof(other_net), 0), (ssize_t)sizeof(other_net));
	ck_assert_int_eq(getrandom(other_sign, sizeof(other_sign), 0), (ssize_t)sizeof(other_sign));

	validator(&v[0], me.name, me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 1);
	expect_epoch_refused(c, epoch, v, 1, STATUS(FAILED_PRECONDITION), "the current epoch");
	expect_epoch_refused(c, epoch - 1, v, 1, STATUS(FAILED_PRECONDITION), "an older epoch");
	expect_epoch_refused(c, epoch + 1, v, 0, STATUS(INVALID_ARGUMENT), "no validators");

	validator(&v[0], "w0", "127.0.0.1:1", other_net, QS_PUBKEY_BYTES, other_sign, 1);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT), "without this node");
	validator(&v[0], me.name, me.address, me.network_key, QS_PUBKEY_BYTES, other_sign, 1);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT),
	                     "this node's network key with another signing key");
	validator(&v[0], me.name, me.address, me.network_key, QS_PUBKEY_BYTES - 1, me.signing_key,
	          1);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT), "a 31-byte key");
	validator(&v[0], me.name, me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 0);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT), "zero voting power");
	validator(&v[0], me.name, "localhost:1", me.network_key, QS_PUBKEY_BYTES, me.signing_key,
	          1);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT),
	                     "an address that is not numeric");
	validator(&v[0], "v 0", me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 1);
	expect_epoch_refused(c, epoch + 1, v, 1, STATUS(INVALID_ARGUMENT), "a name with a space");
	validator(&v[0], me.name, me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 1);
	validator(&v[1], me.name, "127.0.0.1:2", other_net, QS_PUBKEY_BYTES, other_sign, 1);
	expect_epoch_refused(c, epoch + 1, v, 2, STATUS(INVALID_ARGUMENT), "duplicate names");
	validator(&v[1], "w1", me.address, other_net, QS_PUBKEY_BYTES, other_sign, 1);
	expect_epoch_refused(c, epoch + 1, v, 2, STATUS(INVALID_ARGUMENT), "duplicate addresses");
	validator(&v[1], "w1", "127.0.0.1:2", other_net, QS_PUBKEY_BYTES, me.signing_key, 1);
	expect_epoch_refused(c, epoch + 1, v, 2, STATUS(INVALID_ARGUMENT),
	                     "this node's signing key twice");
	validator(&v[1], "w1", "127.0.0.1:2", other_net, QS_PUBKEY_BYTES, other_sign,
	          UINT64_C(1) << 62);
	expect_epoch_refused(c, epoch + 1, v, 2, STATUS(INVALID_ARGUMENT),
	                     "a total voting power over 2^62");

	/* Nothing changed. */
	st = get_status(c);
	ck_assert_uint_eq(st->get_status->epoch, epoch);
	qs_client_response_free(st);
	sent_make(&b, 1, 10);
	submit(c, &b);
	ck_assert_uint_eq(b.epoch, epoch);
	sent_free(&b, 1);
	qs_client_close(c);
}
END_TEST

/* GetStatus until it answers OK (an epoch change answers UNAVAILABLE until
 * the pipeline runs on the new set); its epoch. */
static uint64_t
status_epoch(struct qs_client *c)
{
	uint64_t deadline = qs_test_now_ms() + WAIT_MS, epoch;

	for (;;) {
		Quorumstore__V1__Response *r = NULL;
		int rc = qs_client_status(c, IO_TIMEOUT_MS, &r);

		ck_assert_msg(rc == 0, "GetStatus: %s", qs_strerror(rc));
		if (r->status == STATUS(UNAVAILABLE) && qs_test_now_ms() < deadline) {
			qs_client_response_free(r);
			qs_test_sleep_ms(10);
			continue;
		}
		expect_ok(0, &r, "GetStatus", BODY(GET_STATUS));
		epoch = r->get_status->epoch;
		qs_client_response_free(r);
		return epoch;
	}
}

START_TEST(new_epoch_starts_the_next_epoch_and_survives_a_restart)
{
	struct qs_test_node n;
	struct qs_client *c, *c2;
	Quorumstore__V1__ValidatorInfo v;
	Quorumstore__V1__Response *r;
	struct sent b[5];
	struct self me;
	int order[8];
	size_t pages;

	own_node(&n, "epoch", NULL);
	self_of(&n, &me);
	c = connect_to(&n);
	ck_assert_uint_eq(qs_client_server(c)->epoch, 1);
	submit_n(c, b, 3, NULL, NULL);
	wait_queue(c, 3);

	validator(&v, me.name, me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 1);
	r = new_epoch(c, 2, &v, 1);
	expect_ok(0, &r, "NewEpoch 2", BODY(NEW_EPOCH));
	qs_client_response_free(r);
	ck_assert_uint_eq(status_epoch(c), 2);
	c2 = connect_to(&n);
	ck_assert_uint_eq(qs_client_server(c2)->epoch, 2);
	/* The batches and proofs of epoch 1 are gone. */
	ck_assert_uint_eq(list_all_batches(c2, NULL, 0, 0, b, 3, order, 8, &pages), 0);
	ck_assert_uint_eq(list_all_proofs(c2, NULL, 0, 0, b, 3, order, 8, &pages), 0);
	expect_queued(c2, b, 3, "000", "epoch 2");
	/* New batches carry the new epoch (and its digest covers it). */
	submit_n(c2, b + 3, 1, NULL, NULL);
	ck_assert_uint_eq(b[3].epoch, 2);
	wait_queue(c2, 1);
	expect_queued(c2, b, 4, "000p", "a batch of epoch 2");
	qs_client_close(c);
	qs_client_close(c2);

	/* The persisted epoch wins over the config's epoch 1. */
	restart(&n, SIGTERM);
	c = connect_to(&n);
	ck_assert_uint_eq(qs_client_server(c)->epoch, 2);
	ck_assert_uint_eq(status_epoch(c), 2);
	wait_queue(c, 1);
	expect_queued(c, b, 4, "000p", "epoch 2 after a restart");
	ck_assert_uint_eq(list_all_batches(c, NULL, 0, 0, b, 4, order, 8, &pages), 1);
	r = new_epoch(c, 2, &v, 1);
	expect_status(0, &r, STATUS(FAILED_PRECONDITION), "NewEpoch 2 again");
	qs_client_response_free(r);
	qs_client_close(c);

	/* A config naming a later epoch is the operator's decision. */
	qs_test_expect_clean_exit(&n);
	ck_assert_int_eq(qs_test_node_edit(&n, "\nepoch: 1\n", "\nepoch: 5\n"), 0);
	ck_assert_msg(qs_test_node_start(&n) == 0, "qsd did not start with epoch 5");
	c = connect_to(&n);
	ck_assert_uint_eq(qs_client_server(c)->epoch, 5);
	ck_assert_uint_eq(list_all_batches(c, NULL, 0, 0, b, 4, order, 8, &pages), 0);
	submit_n(c, b + 4, 1, NULL, NULL);
	ck_assert_uint_eq(b[4].epoch, 5);
	qs_client_close(c);
	sent_free(b, 5);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * GetStatus.
 */

START_TEST(get_status_back_pressure_follows_the_proof_queue)
{
	struct opts o = {.quotas = "  author_proofs: 4\n"};
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[6];
	Quorumstore__V1__Response *r;
	const Quorumstore__V1__GetStatusResponse *st;
	ProtobufCBinaryData d[3];
	uint64_t bytes = 0;
	int order[8];
	size_t pages;

	own_node(&n, "back_pressure", &o);
	c = connect_to(&n);
	r = get_status(c);
	ck_assert_uint_eq(r->get_status->proof_queue_size, 0);
	ck_assert(!r->get_status->back_pressure);
	qs_client_response_free(r);

	submit_n(c, b, 1, NULL, NULL);
	wait_queue(c, 1);
	r = get_status(c);
	ck_assert_msg(!r->get_status->back_pressure, "back pressure with 1 of 4 proofs queued");
	qs_client_response_free(r);
	submit_n(c, b + 1, 1, NULL, NULL);
	wait_queue(c, 2);
	r = get_status(c);
	ck_assert_msg(r->get_status->back_pressure, "no back pressure with 2 of 4 proofs queued");
	qs_client_response_free(r);

	/* Over the quota, proofs are dropped and counted. */
	submit_n(c, b + 2, 4, NULL, NULL);
	expect_metric(&n, QUOTA_DROPPED, 2);
	r = get_status(c);
	st = r->get_status;
	for (size_t i = 0; i < 6; i++)
		bytes += b[i].num_bytes;
	ck_assert_uint_eq(st->proof_queue_size, 4);
	ck_assert_uint_eq(st->proofs_formed, 6);
	ck_assert_uint_eq(st->own_batches_unproven, 0);
	ck_assert_uint_eq(st->batches_stored, 6);
	ck_assert_uint_eq(st->bytes_stored, bytes);
	ck_assert_uint_gt(st->disk_free_bytes, 0);
	ck_assert_int_eq(st->storage_state, QUORUMSTORE__V1__STORAGE_STATE__STORAGE_STATE_OK);
	ck_assert(st->back_pressure);
	ck_assert_double_eq(metric(&n, "qsd_proof_queue_size"), 4);
	qs_client_response_free(r);
	ck_assert_uint_eq(list_all_proofs(c, NULL, 0, 0, b, 6, order, 8, &pages), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(order[i], i);

	/* Blocks take proofs: the pressure is gone. */
	for (int i = 0; i < 3; i++)
		d[i] = digest_of(&b[i]);
	ck_assert_uint_eq(commit_ok(c, qs_test_wall_us(), d, 3), 3);
	r = get_status(c);
	ck_assert_uint_eq(r->get_status->proof_queue_size, 1);
	ck_assert(!r->get_status->back_pressure);
	qs_client_response_free(r);
	ck_assert_double_eq(metric(&n, "qsd_proof_queue_size"), 1);
	qs_client_close(c);
	sent_free(b, 6);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/* ------------------------------------------------------------------------
 * Clients that misbehave.
 */

START_TEST(client_that_never_reads_is_closed_as_a_slow_reader)
{
	struct opts o = {
	    .limits = "  batch_max_bytes: 4MiB\n",
	    .serving = "  payload_cache_bytes: 0\n",
	};
	struct qs_client_payload_limits lim = {
	    .max_txns = 1000000, .max_bytes = 1u << 30, .return_non_full = true};
	struct qs_test_node n;
	struct qs_client *c, *other;
	struct sent b[2];
	struct frames f = {0};
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__GetBatchRequest gb = QUORUMSTORE__V1__GET_BATCH_REQUEST__INIT;
	Quorumstore__V1__GetPayloadRequest gp = QUORUMSTORE__V1__GET_PAYLOAD_REQUEST__INIT;
	Quorumstore__V1__ListProofsRequest lp = QUORUMSTORE__V1__LIST_PROOFS_REQUEST__INIT;
	Quorumstore__V1__Response *r;
	int fd;

	own_node(&n, "slow_reader", &o);
	c = connect_to(&n);
	for (int i = 0; i < 2; i++) {
		sent_make(&b[i], 1, BIG_BATCH_BYTES - 64);
		submit(c, &b[i]);
	}
	wait_queue(c, 2);
	qs_client_close(c);
	ck_assert_double_eq(metric(&n, SLOW_READER), 0);

	/* 4 MiB answers read from disk, far more than qsd holds for a client
	 * (QS_RPC_OUTBUF_MAX_BYTES), asked in one write and never read. */
	fd = raw_connect(&n);
	gp.max_txns = 1000000;
	gp.max_bytes = 1u << 30;
	gp.return_non_full = 1;
	for (uint64_t i = 0; i < 160; i++) {
		quorumstore__v1__request__init(&req);
		switch (i % 8) {
		case 1:
			req.body_case = REQ(GET_PAYLOAD);
			req.get_payload = &gp;
			break;
		case 5:
			req.body_case = REQ(LIST_PROOFS);
			req.list_proofs = &lp;
			break;
		default:
			gb.digest = digest_of(&b[i % 2]);
			req.body_case = REQ(GET_BATCH);
			req.get_batch = &gb;
			break;
		}
		frames_add(&f, &req, 2 + i);
	}
	write_all(fd, f.buf, f.len);
	free(f.buf);

	/* Another client is served meanwhile and afterwards. */
	other = connect_to(&n);
	r = get_payload(other, &lim, NULL, 0);
	expect_picks(other, r, b, 2, "pp", "while a client does not read");
	qs_client_response_free(r);
	expect_metric(&n, SLOW_READER, 1);
	qs_client_response_free(get_status(other));
	expect_batch(other, &b[1], SOURCE(DISK));
	qs_client_close(other);
	close(fd);
	sent_free(b, 2);
	qs_test_expect_clean_exit(&n);
}
END_TEST

/*
 * Storage whose writer queue holds exactly one batch (submit_queue_bytes is
 * frame_max_bytes): a SubmitBatch of a batch close to the frame limit fills
 * it until that batch is written.
 */
static const struct opts full_queue = {
    .limits = "  batch_max_bytes: 1MiB\n"
	      "  msg_max_bytes: 1MiB\n"
	      "  frame_max_bytes: 1MiB\n",
    .storage = "  submit_queue_bytes: 1MiB\n",
};

/* Send a SubmitBatch of b and then `then` in one write on a raw connection;
 * their answers (the SubmitBatch's first), freed by the caller. */
static void
behind_a_full_queue(int fd, const struct sent *b, Quorumstore__V1__Request *then,
                    Quorumstore__V1__Response **sub, Quorumstore__V1__Response **resp)
{
	Quorumstore__V1__Request req;
	Quorumstore__V1__SubmitBatchRequest sb;
	struct frames f = {0};

	qs_test_submit_request(&req, &sb, b->txns, b->n_txns, NULL, 0);
	frames_add(&f, &req, 100);
	frames_add(&f, then, 101);
	write_all(fd, f.buf, f.len);
	free(f.buf);
	*sub = *resp = NULL;
	for (int i = 0; i < 2; i++) {
		Quorumstore__V1__Response *r = raw_recv(fd);

		ck_assert(r->request_id == 100 || r->request_id == 101);
		ck_assert_ptr_null(r->request_id == 100 ? *sub : *resp);
		*(r->request_id == 100 ? sub : resp) = r;
	}
}

static void
expect_storage_ok(const struct qs_test_node *n, struct qs_client *c)
{
	Quorumstore__V1__Response *r = get_status(c);

	ck_assert_msg(r->get_status->storage_state ==
	                  QUORUMSTORE__V1__STORAGE_STATE__STORAGE_STATE_OK,
	              "storage is %s after a full writer queue", r->get_status->storage_reason);
	qs_client_response_free(r);
	ck_assert_msg(kill(n->pid, 0) == 0, "qsd is gone");
}

START_TEST(notify_commit_behind_a_full_writer_queue_keeps_qsd_running)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b[4];
	ProtobufCBinaryData d[3];
	Quorumstore__V1__Request req;
	Quorumstore__V1__NotifyCommitRequest nc;
	Quorumstore__V1__Response *sub, *resp;
	int fd, refused;

	own_node(&n, "commit_full_queue", &full_queue);
	c = connect_to(&n);
	submit_n(c, b, 3, NULL, NULL);
	wait_queue(c, 3);
	for (int i = 0; i < 3; i++)
		d[i] = digest_of(&b[i]);
	sent_make(&b[3], 1, (1u << 20) - 64);

	fd = raw_connect(&n);
	qs_test_commit_request(&req, &nc, qs_test_wall_us(), d, 3);
	behind_a_full_queue(fd, &b[3], &req, &sub, &resp);
	ck_assert_msg(sub->status == STATUS(OK), "SubmitBatch answered %s: %s",
	              qs_client_status_name(sub->status), sub->message);
	memcpy(b[3].digest, sub->submit_batch->info->digest.data, QS_DIGEST_BYTES);
	b[3].batch_id = sub->submit_batch->info->batch_id;
	b[3].epoch = sub->submit_batch->info->epoch;
	b[3].expiration_us = sub->submit_batch->info->expiration_us;
	/* Refused for now (retry), or taken once the queue had room. */
	ck_assert_msg(resp->status == STATUS(OK) || resp->status == STATUS(RESOURCE_EXHAUSTED),
	              "NotifyCommit behind a full queue answered %s: %s",
	              qs_client_status_name(resp->status), resp->message);
	refused = resp->status != STATUS(OK);
	if (!refused)
		ck_assert_uint_eq(resp->notify_commit->proofs_removed, 3);
	quorumstore__v1__response__free_unpacked(sub, NULL);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	close(fd);
	expect_storage_ok(&n, c);
	/* The retry of a refused commit persists it, whatever it removes. */
	if (refused)
		ck_assert_uint_le(commit_ok(c, qs_test_wall_us(), d, 3), 3);
	wait_queue(c, 1); /* the big batch's */
	expect_queued(c, b, 4, "000p", "after the commit");
	qs_client_close(c);

	restart(&n, SIGTERM);
	c = connect_to(&n);
	wait_queue(c, 1);
	expect_queued(c, b, 4, "000p", "after a restart");
	qs_client_close(c);
	sent_free(b, 4);
	qs_test_expect_clean_exit(&n);
}
END_TEST

START_TEST(new_epoch_behind_a_full_writer_queue_keeps_qsd_running)
{
	struct qs_test_node n;
	struct qs_client *c;
	struct sent b;
	struct self me;
	Quorumstore__V1__ValidatorInfo v, *vs[1] = {&v};
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	Quorumstore__V1__NewEpochRequest ne = QUORUMSTORE__V1__NEW_EPOCH_REQUEST__INIT;
	Quorumstore__V1__Response *sub, *resp, *r;
	int fd;

	own_node(&n, "epoch_full_queue", &full_queue);
	self_of(&n, &me);
	sent_make(&b, 1, (1u << 20) - 64);
	validator(&v, me.name, me.address, me.network_key, QS_PUBKEY_BYTES, me.signing_key, 1);
	fd = raw_connect(&n);
	ne.epoch = 2;
	ne.n_validators = 1;
	ne.validators = vs;
	req.body_case = REQ(NEW_EPOCH);
	req.new_epoch = &ne;
	behind_a_full_queue(fd, &b, &req, &sub, &resp);
	ck_assert_msg(sub->status == STATUS(OK), "SubmitBatch answered %s: %s",
	              qs_client_status_name(sub->status), sub->message);
	ck_assert_msg(resp->status == STATUS(OK) || resp->status == STATUS(UNAVAILABLE) ||
	                  resp->status == STATUS(RESOURCE_EXHAUSTED),
	              "NewEpoch behind a full queue answered %s: %s",
	              qs_client_status_name(resp->status), resp->message);
	c = connect_to(&n);
	if (resp->status != STATUS(OK)) {
		ck_assert_uint_eq(status_epoch(c), 1);
		expect_storage_ok(&n, c);
		r = new_epoch(c, 2, &v, 1);
		expect_ok(0, &r, "NewEpoch 2, again", BODY(NEW_EPOCH));
		qs_client_response_free(r);
	}
	quorumstore__v1__response__free_unpacked(sub, NULL);
	quorumstore__v1__response__free_unpacked(resp, NULL);
	close(fd);
	ck_assert_uint_eq(status_epoch(c), 2);
	expect_storage_ok(&n, c);
	qs_client_close(c);
	sent_free(&b, 1);
	qs_test_expect_clean_exit(&n);
}
END_TEST

static Suite *
serve_suite(void)
{
	Suite *s = suite_create("serve");
	TCase *payload = tcase_create("get_payload");
	TCase *commit = tcase_create("notify_commit");
	TCase *gc = tcase_create("expiry");
	TCase *batch = tcase_create("get_batch");
	TCase *list = tcase_create("listings");
	TCase *epoch = tcase_create("new_epoch");
	TCase *status = tcase_create("get_status");
	TCase *abuse = tcase_create("clients");
	TCase *all[] = {payload, commit, gc, batch, list, epoch, status, abuse};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_set_timeout(all[i], TEST_TIMEOUT_S);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(payload, get_payload_returns_every_proof_oldest_batch_first);
	tcase_add_test(payload, get_payload_never_exceeds_max_txns_or_max_bytes);
	tcase_add_test(payload, get_payload_without_return_non_full_answers_only_a_full_payload);
	tcase_add_test(payload, get_payload_leaves_out_excluded_digests);
	tcase_add_test(payload, get_payload_refuses_a_malformed_exclude_digest);
	tcase_add_test(payload, get_payload_inlines_cached_batches_within_the_inline_limits);
	tcase_add_test(payload, get_payload_never_inlines_without_a_payload_cache);
	tcase_add_test(payload, get_payload_inlines_only_batches_the_cache_still_holds);
	tcase_add_test(payload, get_payload_inlines_only_batches_in_memory_after_a_restart);

	tcase_add_test(commit, notify_commit_removes_committed_proofs_also_across_restarts);
	tcase_add_test(commit, notify_commit_refuses_malformed_digests_and_removes_nothing);
	tcase_add_test(commit, notify_commit_before_the_proof_keeps_it_out_of_the_queue);
	tcase_add_test(commit, restart_serves_the_same_proofs_after_sigterm_and_kill_9);
	tcase_add_test(commit, notify_commit_behind_a_full_writer_queue_keeps_qsd_running);

	tcase_add_test(gc, expired_proofs_leave_and_their_payloads_are_collected);
	tcase_add_test(gc, notify_commit_block_timestamp_moves_the_gc_cutoff);
	tcase_add_test(gc, notify_commit_block_timestamp_survives_kill_9);

	tcase_add_test(batch, get_batch_serves_memory_then_disk_after_a_restart_then_memory);
	tcase_add_test(batch, get_batch_refuses_malformed_requests_and_misses_unknown_digests);

	tcase_add_test(list, listings_page_through_each_entry_exactly_once);
	tcase_add_test(list, listings_refuse_unknown_authors_and_bad_cursors);

	tcase_add_test(epoch, new_epoch_refuses_invalid_sets);
	tcase_add_test(epoch, new_epoch_starts_the_next_epoch_and_survives_a_restart);
	tcase_add_test(epoch, new_epoch_behind_a_full_writer_queue_keeps_qsd_running);

	tcase_add_test(status, get_status_back_pressure_follows_the_proof_queue);

	tcase_add_test(abuse, client_that_never_reads_is_closed_as_a_slow_reader);
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
		fprintf(stderr, "check_serve: run me from the repository root\n");
		return EXIT_FAILURE;
	}
	snprintf(cl.dir, sizeof(cl.dir), "%s/qsd-serve-XXXXXX",
	         getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(cl.dir)) {
		fprintf(stderr, "check_serve: mkdtemp %s: %s\n", cl.dir, strerror(errno));
		return EXIT_FAILURE;
	}
	if (node_make(&cl.shared, "shared", NULL) != 0 || qs_test_node_start(&cl.shared) != 0) {
		failed = 1;
	} else {
		sr = srunner_create(serve_suite());
		srunner_set_fork_status(sr, CK_FORK);
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	if (cl.shared.pid > 0) {
		ws = qs_test_node_stop(&cl.shared, SIGTERM);
		if (!qs_test_exited_ok(ws)) {
			fprintf(stderr, "check_serve: qsd exited with status 0x%x after SIGTERM\n",
			        ws);
			failed++;
		}
	}
	if (failed)
		qs_test_dump_log(cl.shared.log);
	if (getenv("QS_TEST_KEEP"))
		fprintf(stderr, "check_serve: kept %s\n", cl.dir);
	else
		qs_test_rmtree(cl.dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
