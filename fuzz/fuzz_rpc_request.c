/*
 * RPC requests, as qsd reads them from the consensus process: qs_frame_read()
 * with the RPC decode budget, then for each Request the argument checks the
 * server makes before it touches state (net/rpc.c, daemon/serve.c,
 * daemon/author.c, restated here since they are static there), and the pure
 * modules those requests drive, on a prepared proof queue that is made
 * again before any input that finds it changed by an earlier one (a pull
 * moves whom the next starts with; a commit removes), so that runs repeat:
 *   GetPayload    qs_pqueue_pull() with the request's limits and exclude list
 *   GetBatch      qs_pqueue_get(), signers looked up in the validator set
 *   NotifyCommit  qs_pqueue_get(), qs_pqueue_remove(), qs_pqueue_expire()
 *   ListProofs    qs_pqueue_list() page after page from the request's cursor
 *   SubmitBatch   the batch qsd would sign, built and checked as a peer would
 *   NewEpoch      qs_valset_new() from the validators sent
 * Properties checked: a pull stays within every limit and never returns an
 * excluded, expired or other-epoch proof; listings are in order; a removed
 * proof is gone; a batch qsd would sign passes qs_batch_validate().
 */
#include "fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/pqueue.h"
#include "core/proof.h"
#include "daemon/serve.h"
#include "net/frame.h"
#include "net/rpc.h"
#include "quorumstore/v1/rpc.pb-c.h"

#define RQ_CHAIN_ID       7u
#define RQ_EPOCH          3u
#define RQ_NOW_US         UINT64_C(1700000000000000)
#define RQ_LIFETIME_US    UINT64_C(60000000)
#define RQ_N_AUTHORS      4
#define RQ_PER_AUTHOR     12 /* proofs queued per author */
#define RQ_MAX_FRAME      (4u * 1024 * 1024 + 64 * 1024)
#define RQ_IDEM_MAX_BYTES 64 /* daemon/author.c */
#define RQ_MAX_PAGES      64

struct rq_state {
	uint8_t keys[RQ_N_AUTHORS][QS_PUBKEY_BYTES];
	struct qs_valset *vs;
	struct qs_limits limits;
	struct qs_pq_item picks[QS_SERVE_MAX_PROOFS];
	struct qs_pqueue *queue;
	int queue_changed;
};

static struct rq_state *rq_state;

static void
rq_init(void)
{
	static struct rq_state st;
	uint64_t powers[RQ_N_AUTHORS];

	for (int i = 0; i < RQ_N_AUTHORS; i++) {
		memset(st.keys[i], 0x11 * (i + 1), QS_PUBKEY_BYTES);
		powers[i] = 1;
	}
	QS_FUZZ_CHECK(qs_valset_new(RQ_CHAIN_ID, RQ_EPOCH, RQ_N_AUTHORS,
	                            (const uint8_t(*)[QS_PUBKEY_BYTES])st.keys, powers,
	                            &st.vs) == 0,
	              "make the validator set");
	st.limits.batch_max_txns = 2000;
	st.limits.batch_max_bytes = 1024 * 1024;
	st.limits.msg_max_batches = 20;
	st.limits.msg_max_bytes = 4 * 1024 * 1024;
	st.limits.frame_max_bytes = RQ_MAX_FRAME;
	rq_state = &st;
}

/* The digest of the k-th proof of `author` in the prepared queue. */
static void
rq_digest(int author, int k, uint8_t digest[QS_DIGEST_BYTES])
{
	memset(digest, 0, QS_DIGEST_BYTES);
	digest[0] = (uint8_t)(0xa0 | author);
	digest[1] = (uint8_t)k;
}

/*
 * A queue of RQ_PER_AUTHOR proofs per author, added out of batch_id order,
 * with varied sizes; per author one has expired and one is of the next
 * epoch.
 */
static struct qs_pqueue *
rq_queue(void)
{
	struct qs_pqueue *q;

	QS_FUZZ_CHECK(qs_pqueue_new(RQ_N_AUTHORS, RQ_PER_AUTHOR, 1, &q) == 0, "make a queue");
	for (int a = 0; a < RQ_N_AUTHORS; a++) {
		for (int k = 0; k < RQ_PER_AUTHOR; k++) {
			struct qs_batch_info info = {0};
			uint8_t *proof = malloc(8);

			QS_FUZZ_CHECK(proof != NULL, "malloc");
			memset(proof, k, 8);
			memcpy(info.author, rq_state->keys[a], QS_PUBKEY_BYTES);
			info.batch_id = (uint64_t)(100 - k);
			info.epoch = k == 7 ? RQ_EPOCH + 1 : RQ_EPOCH;
			info.expiration_us =
			    k == 5 ? RQ_NOW_US - 1 : RQ_NOW_US + 1000 * (uint64_t)k;
			rq_digest(a, k, info.digest);
			info.num_txns = (uint32_t)(1 + (k * 7) % 13);
			info.num_bytes = 100 * (uint64_t)(1 + k % 5);
			QS_FUZZ_CHECK(qs_pqueue_add(q, a, &info, proof, 8) == 0, "queue a proof");
		}
	}
	return q;
}

/* The signing key's validator index, or -1 (as serve.c's key lookups). */
static int
rq_signer(const ProtobufCBinaryData *key)
{
	return key->len == QS_PUBKEY_BYTES ? qs_valset_index(rq_state->vs, key->data) : -1;
}

static int
rq_inline(void *arg, const struct qs_batch_info *info)
{
	const Quorumstore__V1__Request *req = arg;

	return ((info->digest[1] + req->request_id) & 1) != 0;
}

static void
rq_get_payload(struct qs_pqueue *q, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__GetPayloadRequest *gp = req->get_payload;
	struct qs_pq_limits lim = {
	    .max_txns = gp->max_txns,
	    .max_bytes = gp->max_bytes,
	    .max_inline_txns = gp->max_inline_txns,
	    .max_inline_bytes = gp->max_inline_bytes,
	    .return_non_full = gp->return_non_full,
	};
	uint8_t(*exclude)[QS_DIGEST_BYTES] = NULL;
	uint64_t txns = 0, bytes = 0, inline_txns = 0, inline_bytes = 0;
	struct qs_pq_item *picks = rq_state->picks;
	ssize_t n;

	if (gp->n_exclude > QS_SERVE_MAX_EXCLUDE)
		return;
	for (size_t i = 0; i < gp->n_exclude; i++)
		if (gp->exclude[i].len != QS_DIGEST_BYTES)
			return;
	if (gp->n_exclude) {
		exclude = malloc(gp->n_exclude * sizeof(*exclude));
		QS_FUZZ_CHECK(exclude != NULL, "malloc");
		for (size_t i = 0; i < gp->n_exclude; i++)
			memcpy(exclude[i], gp->exclude[i].data, QS_DIGEST_BYTES);
	}
	n = qs_pqueue_pull(q, &lim, RQ_NOW_US, RQ_EPOCH, (const uint8_t(*)[QS_DIGEST_BYTES])exclude,
	                   gp->n_exclude, rq_inline, (void *)req, picks, QS_SERVE_MAX_PROOFS);
	QS_FUZZ_CHECK(n >= 0 && (size_t)n <= QS_SERVE_MAX_PROOFS, "pull count out of range");
	if (n > 0)
		rq_state->queue_changed = 1;
	for (ssize_t i = 0; i < n; i++) {
		const struct qs_batch_info *info = picks[i].info;

		txns += info->num_txns;
		bytes += info->num_bytes;
		if (picks[i].inlined) {
			inline_txns += info->num_txns;
			inline_bytes += info->num_bytes;
		}
		QS_FUZZ_CHECK(info->expiration_us > RQ_NOW_US, "pulled an expired proof");
		QS_FUZZ_CHECK(info->epoch == RQ_EPOCH, "pulled a proof of another epoch");
		for (size_t e = 0; e < gp->n_exclude; e++)
			QS_FUZZ_CHECK(memcmp(exclude[e], info->digest, QS_DIGEST_BYTES) != 0,
			              "pulled an excluded proof");
		for (ssize_t j = 0; j < i; j++)
			QS_FUZZ_CHECK(picks[j].info != info, "pulled a proof twice");
	}
	QS_FUZZ_CHECK(txns <= lim.max_txns && bytes <= lim.max_bytes, "pull over its limits");
	QS_FUZZ_CHECK(inline_txns <= lim.max_inline_txns && inline_bytes <= lim.max_inline_bytes,
	              "pull over its inline limits");
	free(exclude);
}

static void
rq_get_batch(struct qs_pqueue *q, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__GetBatchRequest *gb = req->get_batch;
	struct qs_pq_item it;

	if (gb->digest.len != QS_DIGEST_BYTES || gb->n_signers > RQ_N_AUTHORS)
		return;
	for (size_t i = 0; i < gb->n_signers; i++)
		if (rq_signer(&gb->signers[i]) < 0)
			return;
	if (qs_pqueue_get(q, gb->digest.data, &it) == 0)
		QS_FUZZ_CHECK(memcmp(it.info->digest, gb->digest.data, QS_DIGEST_BYTES) == 0,
		              "got another proof");
}

static void
rq_notify_commit(struct qs_pqueue *q, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__NotifyCommitRequest *nc = req->notify_commit;
	struct qs_pq_item it;
	size_t count;

	if (nc->n_digests > QS_SERVE_MAX_COMMIT)
		return;
	for (size_t i = 0; i < nc->n_digests; i++)
		if (nc->digests[i].len != QS_DIGEST_BYTES)
			return;
	rq_state->queue_changed = 1;
	for (size_t i = 0; i < nc->n_digests; i++) {
		int queued = qs_pqueue_get(q, nc->digests[i].data, &it) == 0;

		count = qs_pqueue_count(q);
		QS_FUZZ_CHECK(qs_pqueue_remove(q, nc->digests[i].data) == queued,
		              "remove disagrees with get");
		QS_FUZZ_CHECK(qs_pqueue_count(q) == count - (size_t)queued, "count after remove");
		QS_FUZZ_CHECK(qs_pqueue_get(q, nc->digests[i].data, &it) == QS_ENOTFOUND,
		              "a removed proof is still queued");
	}
	qs_pqueue_expire(q, nc->block_timestamp_us);
	QS_FUZZ_CHECK(qs_pqueue_count(q) == 0 ||
	                  qs_pqueue_next_expiration(q) > nc->block_timestamp_us,
	              "an expired proof stayed");
}

/* As serve.c's list_args(): 0 with the arguments, or -1 (INVALID_ARGUMENT). */
static int
rq_list_args(const ProtobufCBinaryData *author, const ProtobufCBinaryData *start_after,
             uint32_t limit, int *who, uint64_t *cursor, size_t *max)
{
	*who = -1;
	if (author->len) {
		*who = rq_signer(author);
		if (*who < 0)
			return -1;
	}
	if (start_after->len != 0 && start_after->len != 8)
		return -1;
	*cursor = start_after->len ? qs_get_be64(start_after->data) : 0;
	*max = limit == 0                  ? QS_SERVE_DEFAULT_LIST
	       : limit > QS_SERVE_MAX_LIST ? QS_SERVE_MAX_LIST
	                                   : limit;
	return 0;
}

/* 1 when a comes before b in the listing order (author, batch_id, digest). */
static int
rq_before(const struct qs_pq_item *a, const struct qs_pq_item *b)
{
	if (a->author != b->author)
		return a->author < b->author;
	if (a->info->batch_id != b->info->batch_id)
		return a->info->batch_id < b->info->batch_id;
	return memcmp(a->info->digest, b->info->digest, QS_DIGEST_BYTES) < 0;
}

static void
rq_list_proofs(struct qs_pqueue *q, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__ListProofsRequest *lp = req->list_proofs;
	struct qs_pq_item *items = rq_state->picks, last;
	uint64_t cursor;
	size_t max, n, seen = 0;
	int who, have_last = 0;

	if (rq_list_args(&lp->author, &lp->start_after, lp->limit, &who, &cursor, &max))
		return;
	for (int page = 0; page < RQ_MAX_PAGES; page++) {
		n = qs_pqueue_list(q, who, &cursor, items, max);
		QS_FUZZ_CHECK(n <= max, "a page over its size");
		for (size_t i = 0; i < n; i++) {
			QS_FUZZ_CHECK(who < 0 || items[i].author == who, "listed another author");
			QS_FUZZ_CHECK(!have_last || rq_before(&last, &items[i]),
			              "listing out of order");
			last = items[i];
			have_last = 1;
		}
		seen += n;
		QS_FUZZ_CHECK(seen <= qs_pqueue_count(q), "listed more than queued");
		if (cursor == 0)
			break;
	}
}

static void
rq_list_batches(const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__ListBatchesRequest *lb = req->list_batches;
	uint64_t cursor;
	size_t max;
	int who;

	if (rq_list_args(&lb->author, &lb->start_after, lb->limit, &who, &cursor, &max) == 0)
		QS_FUZZ_CHECK(max >= 1 && max <= QS_SERVE_MAX_LIST, "list size");
}

/* The batch qsd would store and sign for a SubmitBatch passes a peer's checks. */
static void
rq_submit_batch(const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__SubmitBatchRequest *sb = req->submit_batch;
	const struct qs_limits *lim = &rq_state->limits;
	struct qs_validate_ctx ctx = {
	    .chain_id = RQ_CHAIN_ID,
	    .epoch = RQ_EPOCH,
	    .now_us = RQ_NOW_US,
	    .max_lifetime_us = RQ_LIFETIME_US,
	    .limits = lim,
	};
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__BatchInfo pb;
	struct qs_batch_info info, back;
	uint64_t bytes = 0, section = 4;
	const char *detail = NULL;
	int reason;

	if (sb->n_transactions == 0 || sb->n_transactions > lim->batch_max_txns ||
	    sb->idempotency_key.len > RQ_IDEM_MAX_BYTES)
		return;
	for (size_t i = 0; i < sb->n_transactions; i++) {
		bytes += sb->transactions[i].len;
		section += 4 + sb->transactions[i].len;
	}
	if (bytes > lim->batch_max_bytes)
		return;
	QS_FUZZ_CHECK(qs_codec_txns_size(sb->transactions, sb->n_transactions) == section,
	              "transaction section size");
	/* Compared with memcmp() below: padding included. */
	memset(&info, 0, sizeof(info));
	memcpy(info.author, rq_state->keys[0], QS_PUBKEY_BYTES);
	info.batch_id = req->request_id;
	info.epoch = RQ_EPOCH;
	info.expiration_us = RQ_NOW_US + RQ_LIFETIME_US;
	info.num_txns = (uint32_t)sb->n_transactions;
	info.num_bytes = bytes;
	info.gas_bucket_start = sb->gas_bucket_start;
	QS_FUZZ_CHECK(qs_codec_batch_digest(RQ_CHAIN_ID, info.author, info.epoch, info.batch_id,
	                                    sb->transactions, sb->n_transactions, info.digest) == 0,
	              "digest of a submitted batch");
	qs_batch_info_to_pb(&info, &pb);
	batch.info = &pb;
	batch.n_transactions = sb->n_transactions;
	batch.transactions = sb->transactions;
	reason = qs_batch_validate(&ctx, rq_state->keys[0], &batch, &back, &detail);
	if (reason)
		fprintf(stderr, "submitted batch refused: %s (%s)\n", qs_nack_reason_name(reason),
		        detail ? detail : "");
	QS_FUZZ_CHECK(reason == 0, "a batch qsd would sign is refused by its peers");
	QS_FUZZ_CHECK(memcmp(&back, &info, sizeof(info)) == 0, "validated info differs");
}

static void
rq_new_epoch(const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__NewEpochRequest *ne = req->new_epoch;
	uint8_t(*keys)[QS_PUBKEY_BYTES] = NULL;
	uint64_t *powers = NULL;
	struct qs_valset *vs = NULL;
	size_t n = ne->n_validators;

	if (n == 0 || n > QS_MAX_VALIDATORS)
		return;
	keys = calloc(n, sizeof(*keys));
	powers = calloc(n, sizeof(*powers));
	QS_FUZZ_CHECK(keys && powers, "calloc");
	for (size_t i = 0; i < n; i++) {
		if (ne->validators[i]->signing_key.len != QS_PUBKEY_BYTES)
			goto out;
		memcpy(keys[i], ne->validators[i]->signing_key.data, QS_PUBKEY_BYTES);
		powers[i] = ne->validators[i]->voting_power;
	}
	if (qs_valset_new(RQ_CHAIN_ID, ne->epoch, n, (const uint8_t(*)[QS_PUBKEY_BYTES])keys,
	                  powers, &vs) != 0)
		goto out;
	QS_FUZZ_CHECK(qs_valset_size(vs) == n, "valset size");
	QS_FUZZ_CHECK(qs_valset_total_power(vs) <= QS_MAX_VOTING_POWER, "valset power");
	QS_FUZZ_CHECK(qs_valset_is_quorum(vs, qs_valset_total_power(vs)), "all is a quorum");
	for (size_t i = 0; i < n; i++) {
		int v = qs_valset_index(vs, keys[i]);

		QS_FUZZ_CHECK(v >= 0 && memcmp(keys[v], keys[i], QS_PUBKEY_BYTES) == 0,
		              "a validator not found");
		QS_FUZZ_CHECK(qs_valset_power(vs, v) == powers[i], "a validator's power");
	}
out:
	qs_valset_free(vs);
	free(keys);
	free(powers);
}

static void
rq_request(struct qs_pqueue *q, const Quorumstore__V1__Request *req)
{
	switch (req->body_case) {
	case QUORUMSTORE__V1__REQUEST__BODY_HELLO:
		QS_FUZZ_CHECK(req->hello->client_name != NULL, "hello without a name");
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD:
		rq_get_payload(q, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH:
		rq_get_batch(q, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT:
		rq_notify_commit(q, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH:
		rq_submit_batch(req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_NEW_EPOCH:
		rq_new_epoch(req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_BATCHES:
		rq_list_batches(req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_PROOFS:
		rq_list_proofs(q, req);
		break;
	default:
		break;
	}
}

int
qs_fuzz_rpc_request(const uint8_t *data, size_t size)
{
	struct qs_pqueue *q;
	struct evbuffer *buf;
	ProtobufCMessage *m;
	char why[256];
	size_t before;
	int rc;

	if (!rq_state)
		rq_init();
	if (rq_state->queue_changed) {
		qs_pqueue_free(rq_state->queue);
		rq_state->queue = NULL;
		rq_state->queue_changed = 0;
	}
	if (!rq_state->queue)
		rq_state->queue = rq_queue();
	q = rq_state->queue;
	buf = evbuffer_new();
	QS_FUZZ_CHECK(buf != NULL, "evbuffer_new");
	QS_FUZZ_CHECK(evbuffer_add(buf, data, size) == 0, "evbuffer_add");
	for (;;) {
		before = evbuffer_get_length(buf);
		rc = qs_frame_read(buf, RQ_MAX_FRAME, &quorumstore__v1__request__descriptor,
		                   QS_RPC_DECODE_BUDGET(RQ_MAX_FRAME), &m);
		if (rc != 1)
			break;
		rq_request(q, (Quorumstore__V1__Request *)m);
		qs_frame_msg_free(m);
	}
	if (rc < 0) {
		QS_FUZZ_CHECK(rc == QS_EDECODE || rc == QS_ELIMIT, "unexpected read error");
		qs_frame_read_failure(rc, buf, before, RQ_MAX_FRAME, why, sizeof(why));
	}
	evbuffer_free(buf);
	return 0;
}

#ifndef QS_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return qs_fuzz_rpc_request(data, size);
}
#endif
