#include "daemon/serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/cache.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/index.h"
#include "core/pqueue.h"
#include "core/proof.h"
#include "daemon/clock.h"
#include "daemon/fetch.h"
#include "daemon/log.h"
#include "net/frame.h"
#include "storage/reader.h"
#include "storage/store.h"
#include "storage/writer.h"

/* A fetch ends a little before the call's own deadline, so that the client
 * hears why (NOT_FOUND, with the signers asked) rather than a bare
 * DEADLINE_EXCEEDED from the RPC layer. */
#define QS_SERVE_DEADLINE_MARGIN_US 20000
/* Committed markers per write item; a NotifyCommit takes as many as it needs. */
#define QS_SERVE_MARKERS_PER_ITEM   (QS_WRITE_MAX_EXTRAS - 1)

enum {
	SRC_MEMORY,
	SRC_DISK,
	SRC_PEER,
	SRC_COUNT
};
static const char *const src_names[SRC_COUNT] = {"memory", "disk", "peer"};

enum {
	RES_OK,
	RES_MISS,
	RES_ERROR,
	RES_COUNT
};
static const char *const res_names[RES_COUNT] = {"ok", "miss", "error"};

struct qs_serve {
	struct qs_serve_options opt;
	const struct qs_config *cfg;
	struct qs_peers *peers;
	struct qs_fetch *fetch;
	struct qs_pq_item *picks; /* QS_SERVE_MAX_PROOFS, reused by every GetPayload */
	int stopping;

	struct qs_metric *m_fetch;
	struct qs_metric *m_payload_proofs;
	struct qs_metric *m_payload_inline;
	struct qs_metric *m_committed;
	struct qs_metric *m_commits;
};

/* ---- transport for the fetcher ---- */

static int
fetch_send(void *arg, int peer, const Quorumstore__V1__PeerMessage *pm)
{
	struct qs_serve *s = arg;

	return s->peers ? qs_peers_send(s->peers, peer, pm) : -ENOTCONN;
}

static int
fetch_connected(void *arg, int peer)
{
	struct qs_serve *s = arg;

	return s->peers && qs_peers_connected(s->peers, peer);
}

static void
on_fetch_response(void *arg, int peer, Quorumstore__V1__PeerMessage *msg)
{
	struct qs_serve *s = arg;

	qs_fetch_on_response(s->fetch, peer, msg);
}

static void
on_fetch_state(void *arg, int peer, int connected)
{
	struct qs_serve *s = arg;

	qs_fetch_on_state(s->fetch, peer, connected);
}

/* ---- GetPayload ---- */

#define QS_VARINT_MAX_BYTES 10

/*
 * Proofs are stored packed; they go out as they are, spliced into the
 * response as unknown fields with the number and wire type of `proofs` (1,
 * length-delimited in GetPayloadResponse and ListProofsResponse), which
 * protobuf-c writes as the tag followed by the field's data. That data is
 * the value as on the wire, its length prefix included: each proof is
 * copied behind its length into one buffer, room for which is
 * splice_bytes() for the items that may be spliced. Unpacking and packing
 * the proofs again would be most of the cost of a GetPayload.
 */
static size_t
splice_bytes(const struct qs_pq_item *items, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += QS_VARINT_MAX_BYTES + items[i].proof_len;
	return total ? total : 1;
}

/* Write the proof of `it` at `at` as field `f`; returns the end. */
static uint8_t *
splice_proof(ProtobufCMessageUnknownField *f, const struct qs_pq_item *it, uint8_t *at)
{
	uint64_t v = it->proof_len;
	size_t n = 0;

	do {
		at[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	memcpy(at + n, it->proof, it->proof_len);
	f->tag = 1;
	f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	f->len = n + it->proof_len;
	f->data = at;
	return at + f->len;
}

static int
can_inline(void *arg, const struct qs_batch_info *info)
{
	struct qs_serve *s = arg;
	struct qs_index *ix = qs_ingest_index(s->opt.ingest);

	/* Durable here (the index says so) and in memory: an inline batch never
	 * waits for the disk and is never something this node lacks. */
	return ix && qs_index_lookup(ix, info->digest, NULL) == 0 &&
	       qs_cache_contains(qs_ingest_cache(s->opt.ingest), info->digest);
}

static void
get_payload(struct qs_serve *s, struct qs_rpc_call *call, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__GetPayloadRequest *gp = req->get_payload;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__GetPayloadResponse body = QUORUMSTORE__V1__GET_PAYLOAD_RESPONSE__INIT;
	struct qs_pq_limits lim = {
	    .max_txns = gp->max_txns,
	    .max_bytes = gp->max_bytes,
	    .max_inline_txns = gp->max_inline_txns,
	    .max_inline_bytes = gp->max_inline_bytes,
	    .return_non_full = gp->return_non_full,
	};
	uint8_t(*exclude)[QS_DIGEST_BYTES] = NULL;
	ProtobufCMessageUnknownField *proofs = NULL;
	uint8_t *wire = NULL, *at;
	Quorumstore__V1__Batch *batches = NULL, **batch_ptrs = NULL;
	Quorumstore__V1__BatchInfo *infos = NULL;
	struct qs_cache *cache = qs_ingest_cache(s->opt.ingest);
	size_t n_proofs = 0, n_inline = 0;
	ssize_t n;

	if (gp->n_exclude > QS_SERVE_MAX_EXCLUDE) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "%zu digests in exclude, at most %d", gp->n_exclude,
		                     QS_SERVE_MAX_EXCLUDE);
		return;
	}
	for (size_t i = 0; i < gp->n_exclude; i++) {
		if (gp->exclude[i].len != QS_DIGEST_BYTES) {
			qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
			                     "exclude[%zu] is %zu bytes, a digest is %d", i,
			                     gp->exclude[i].len, QS_DIGEST_BYTES);
			return;
		}
	}
	if (gp->n_exclude) {
		exclude = malloc(gp->n_exclude * sizeof(*exclude));
		if (!exclude)
			goto oom;
		for (size_t i = 0; i < gp->n_exclude; i++)
			memcpy(exclude[i], gp->exclude[i].data, QS_DIGEST_BYTES);
	}
	n = qs_pqueue_pull(qs_author_pqueue(s->opt.author), &lim, qs_clock_wall_us(), s->cfg->epoch,
	                   (const uint8_t(*)[QS_DIGEST_BYTES])exclude, gp->n_exclude, can_inline, s,
	                   s->picks, QS_SERVE_MAX_PROOFS);
	if (n < 0)
		goto oom;
	for (ssize_t i = 0; i < n; i++) {
		if (s->picks[i].inlined)
			n_inline++;
		else
			n_proofs++;
	}
	/* An inlined pick whose payload left the cache meanwhile goes out as a
	 * proof: room for every pick. */
	proofs = calloc(n ? (size_t)n : 1, sizeof(*proofs));
	wire = malloc(splice_bytes(s->picks, (size_t)n));
	batches = calloc(n_inline ? n_inline : 1, sizeof(*batches));
	batch_ptrs = calloc(n_inline ? n_inline : 1, sizeof(*batch_ptrs));
	infos = calloc(n_inline ? n_inline : 1, sizeof(*infos));
	if (!proofs || !wire || !batches || !batch_ptrs || !infos)
		goto oom;
	n_proofs = n_inline = 0;
	at = wire;
	for (ssize_t i = 0; i < n; i++) {
		const struct qs_pq_item *it = &s->picks[i];
		struct qs_cached c;

		if (it->inlined && qs_cache_get(cache, it->info->digest, &c) == 0) {
			Quorumstore__V1__Batch *b = &batches[n_inline];

			quorumstore__v1__batch__init(b);
			qs_batch_info_to_pb(c.info, &infos[n_inline]);
			b->info = &infos[n_inline];
			b->n_transactions = c.n_txns;
			b->transactions = (ProtobufCBinaryData *)c.txns;
			batch_ptrs[n_inline++] = b;
			continue;
		}
		at = splice_proof(&proofs[n_proofs++], it, at);
	}
	body.base.n_unknown_fields = n_proofs;
	body.base.unknown_fields = n_proofs ? proofs : NULL;
	body.n_inline_batches = n_inline;
	body.inline_batches = n_inline ? batch_ptrs : NULL;
	qs_metric_add(s->m_payload_proofs, 0, n_proofs);
	qs_metric_add(s->m_payload_inline, 0, n_inline);
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_GET_PAYLOAD;
	resp.get_payload = &body;
	qs_rpc_respond(call, &resp);
	goto out;
oom:
	qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
	                     "out of memory");
out:
	free(exclude);
	free(proofs);
	free(wire);
	free(batches);
	free(batch_ptrs);
	free(infos);
}

/* ---- GetBatch ---- */

struct get_batch {
	struct qs_serve *s;
	struct qs_rpc_call *call;
	struct qs_batch_info want; /* digest; epoch and expiration from the proof, if known */
	int signers[QS_MAX_VALIDATORS];
	size_t n_signers;
	uint64_t deadline_us; /* monotonic */
	struct qs_fetch_result *res;
};

static void
respond_batch(struct qs_rpc_call *call, const struct qs_batch_info *info,
              const ProtobufCBinaryData *txns, size_t n_txns, Quorumstore__V1__BatchSource src)
{
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__GetBatchResponse body = QUORUMSTORE__V1__GET_BATCH_RESPONSE__INIT;
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__BatchInfo pb;

	qs_batch_info_to_pb(info, &pb);
	batch.info = &pb;
	batch.n_transactions = n_txns;
	batch.transactions = (ProtobufCBinaryData *)txns;
	body.batch = &batch;
	body.source = src;
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_GET_BATCH;
	resp.get_batch = &body;
	qs_rpc_respond(call, &resp);
}

static void
get_batch_free(struct get_batch *g)
{
	if (g) {
		qs_fetch_result_free(g->res);
		free(g);
	}
}

/* The names of the signers asked, for the journal line of a final miss. */
static void
signer_names(const struct get_batch *g, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < g->n_signers && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? "," : "",
		                 g->s->cfg->validators[g->signers[i]].name);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void
get_batch_miss(struct get_batch *g, int result)
{
	struct qs_serve *s = g->s;
	char hex[2 * QS_DIGEST_BYTES + 1], names[512];

	qs_hex_encode(g->want.digest, QS_DIGEST_BYTES, hex);
	signer_names(g, names, sizeof(names));
	qs_metric_add(s->m_fetch, SRC_PEER * RES_COUNT + RES_MISS, 1);
	qs_log_err("batch_fetch_missed", "digest=%s signers=\"%s\" result=\"%s\"", hex, names,
	           qs_strerror(result));
	qs_rpc_respond_error(
	    g->call,
	    result == -ETIMEDOUT ? QUORUMSTORE__V1__STATUS__STATUS_DEADLINE_EXCEEDED
				 : QUORUMSTORE__V1__STATUS__STATUS_NOT_FOUND,
	    "batch %s: not stored here and %s (signers asked: %s)", hex,
	    result == -ETIMEDOUT ? "no signer answered in time" : "no signer has it", names);
	get_batch_free(g);
}

static void
get_batch_error(struct get_batch *g, int src, Quorumstore__V1__Status status, const char *what,
                int rc)
{
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(g->want.digest, QS_DIGEST_BYTES, hex);
	qs_metric_add(g->s->m_fetch, (size_t)src * RES_COUNT + RES_ERROR, 1);
	qs_log_err("get_batch_failed", "digest=%s what=\"%s\" error=\"%s\"", hex, what,
	           qs_strerror(rc));
	qs_rpc_respond_error(g->call, status, "batch %s: %s: %s", hex, what, qs_strerror(rc));
	get_batch_free(g);
}

static void
on_fetched_persisted(void *arg, int result)
{
	struct get_batch *g = arg;

	if (result) {
		get_batch_error(g, SRC_PEER, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                "fetched from a signer but not stored here", result);
		return;
	}
	qs_metric_add(g->s->m_fetch, SRC_PEER * RES_COUNT + RES_OK, 1);
	respond_batch(g->call, &g->res->info, g->res->txns, g->res->n_txns,
	              QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_PEER);
	get_batch_free(g);
}

static void
on_fetched(void *arg, int result, struct qs_fetch_result *res)
{
	struct get_batch *g = arg;
	int rc;

	if (result) {
		if (result == QS_ESHUTDOWN)
			get_batch_error(g, SRC_PEER, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
			                "qsd is stopping", result);
		else
			get_batch_miss(g, result);
		return;
	}
	g->res = res;
	/* Persisted before it is served: nothing unpersisted moves downstream. */
	rc = qs_ingest_persist(g->s->opt.ingest, &res->info, res->txns, res->n_txns,
	                       on_fetched_persisted, g);
	if (rc == QS_EEXISTS) {
		on_fetched_persisted(g, 0);
	} else if (rc) {
		get_batch_error(g, SRC_PEER,
		                rc == QS_ENOSPACE || rc == QS_ELIMIT || rc == QS_EQUEUEFULL
		                    ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                    : QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                "fetched from a signer but not stored here", rc);
	}
}

static void
start_fetch(struct get_batch *g)
{
	struct qs_serve *s = g->s;
	int rc;

	if (s->stopping) {
		get_batch_error(g, SRC_PEER, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                "qsd is stopping", QS_ESHUTDOWN);
		return;
	}
	if (g->n_signers == 0) {
		get_batch_miss(g, QS_ENOTFOUND);
		return;
	}
	rc = qs_fetch_start(s->fetch, &g->want, g->signers, g->n_signers, g->deadline_us,
	                    on_fetched, g, NULL);
	if (rc)
		get_batch_error(g, SRC_PEER,
		                rc == QS_EQUEUEFULL
		                    ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                    : QUORUMSTORE__V1__STATUS__STATUS_INTERNAL,
		                "cannot fetch from the signers", rc);
}

static void
on_disk_read(void *arg, int result, struct qs_read_item *r)
{
	struct get_batch *g = arg;

	if (result == 0) {
		qs_metric_add(g->s->m_fetch, SRC_DISK * RES_COUNT + RES_OK, 1);
		respond_batch(g->call, &r->info, r->txns, r->n_txns,
		              QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_DISK);
		get_batch_free(g);
	} else if (result == QS_ENOTFOUND) {
		start_fetch(g); /* deleted by GC meanwhile */
	} else {
		get_batch_error(g, SRC_DISK, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                "the stored copy could not be read", result);
	}
}

/* Signers from the proof: the bitmap names validators of the epoch. */
static size_t
proof_signers(const struct qs_serve *s, const struct qs_pq_item *it, int *out)
{
	Quorumstore__V1__ProofOfStore *p =
	    quorumstore__v1__proof_of_store__unpack(NULL, it->proof_len, it->proof);
	size_t n = 0;

	if (!p)
		return 0;
	for (size_t i = 0; i < s->cfg->n_validators && i / 8 < p->signer_bitmap.len; i++)
		if ((p->signer_bitmap.data[i / 8] >> (i % 8)) & 1)
			out[n++] = (int)i;
	quorumstore__v1__proof_of_store__free_unpacked(p, NULL);
	return n;
}

static void
get_batch(struct qs_serve *s, struct qs_rpc_call *call, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__GetBatchRequest *gb = req->get_batch;
	struct qs_index *ix = qs_ingest_index(s->opt.ingest);
	struct qs_cached c;
	struct qs_pq_item proof;
	struct qs_batch_info info;
	struct get_batch *g;
	uint64_t budget_us;
	int rc;

	if (gb->digest.len != QS_DIGEST_BYTES || gb->n_signers > s->cfg->n_validators) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "digest must be %d bytes and signers at most %zu keys",
		                     QS_DIGEST_BYTES, s->cfg->n_validators);
		return;
	}
	if (qs_cache_get(qs_ingest_cache(s->opt.ingest), gb->digest.data, &c) == 0) {
		qs_metric_add(s->m_fetch, SRC_MEMORY * RES_COUNT + RES_OK, 1);
		respond_batch(call, c.info, c.txns, c.n_txns,
		              QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_MEMORY);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "out of memory");
		return;
	}
	g->s = s;
	g->call = call;
	memcpy(g->want.digest, gb->digest.data, QS_DIGEST_BYTES);
	g->want.epoch = s->cfg->epoch;
	for (size_t i = 0; i < gb->n_signers; i++) {
		int v = gb->signers[i].len == QS_PUBKEY_BYTES
		            ? qs_config_find_signing_key(s->cfg, gb->signers[i].data)
		            : -1;

		if (v < 0) {
			qs_rpc_respond_error(
			    call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
			    "signers[%zu] is not the signing key of a validator of "
			    "epoch %" PRIu64,
			    i, s->cfg->epoch);
			free(g);
			return;
		}
		if (v != s->opt.self)
			g->signers[g->n_signers++] = v;
	}
	if (qs_pqueue_get(qs_author_pqueue(s->opt.author), g->want.digest, &proof) == 0) {
		g->want = *proof.info;
		if (!gb->n_signers) {
			int all[QS_MAX_VALIDATORS];
			size_t n = proof_signers(s, &proof, all);

			for (size_t i = 0; i < n; i++)
				if (all[i] != s->opt.self)
					g->signers[g->n_signers++] = all[i];
		}
	} else if (!gb->n_signers) {
		/* No proof here and no signers named: anyone may have it. */
		for (size_t i = 0; i < s->cfg->n_validators; i++)
			if ((int)i != s->opt.self)
				g->signers[g->n_signers++] = (int)i;
	}
	budget_us = req->deadline_ms ? (uint64_t)(req->deadline_ms < QS_RPC_MAX_DEADLINE_MS
	                                              ? req->deadline_ms
	                                              : QS_RPC_MAX_DEADLINE_MS) *
	                                   1000
	                             : s->cfg->get_batch_deadline_us;
	if (req->deadline_ms && budget_us > 2 * QS_SERVE_DEADLINE_MARGIN_US)
		budget_us -= QS_SERVE_DEADLINE_MARGIN_US;
	g->deadline_us = qs_clock_mono_us() + budget_us;

	if (ix && qs_index_lookup(ix, g->want.digest, &info) == 0) {
		rc = qs_ingest_read(s->opt.ingest, &info, on_disk_read, g);
		if (rc == 0)
			return;
		get_batch_error(g, SRC_DISK,
		                rc == QS_EQUEUEFULL || rc == -ENOMEM
		                    ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                    : QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                "cannot read the stored copy", rc);
		return;
	}
	start_fetch(g);
}

/* ---- NotifyCommit ---- */

struct commit {
	struct qs_serve *s;
	struct qs_rpc_call *call;
	uint64_t block_timestamp_us;
	uint32_t removed;
	size_t n_items, n_done;
	int failed;
	uint8_t ts[8];
	uint8_t (*keys)[QS_STORE_KEY_BYTES];
	struct commit_item {
		struct qs_write_item w; /* first */
		struct commit *c;
	} * items;
};

static void
commit_free(struct commit *c)
{
	if (c) {
		free(c->keys);
		free(c->items);
		free(c);
	}
}

/* One write item of the commit is done, or was not taken by the writer;
 * the answer comes once all are, and frees c. */
static void
commit_item_done(struct commit *c, int result)
{
	struct qs_serve *s = c->s;

	if (result && !c->failed)
		c->failed = result;
	if (++c->n_done < c->n_items)
		return;
	if (c->failed) {
		qs_rpc_respond_error(c->call,
		                     c->failed == QS_EQUEUEFULL
		                         ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                         : QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "%" PRIu32 " proofs left the queue but the commit was not "
		                     "persisted: %s; retry",
		                     c->removed, qs_strerror(c->failed));
	} else {
		Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
		Quorumstore__V1__NotifyCommitResponse body =
		    QUORUMSTORE__V1__NOTIFY_COMMIT_RESPONSE__INIT;

		qs_ingest_note_commit(s->opt.ingest, c->block_timestamp_us);
		body.proofs_removed = c->removed;
		resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
		resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_NOTIFY_COMMIT;
		resp.notify_commit = &body;
		qs_rpc_respond(c->call, &resp);
	}
	commit_free(c);
}

static void
on_commit_written(struct qs_write_item *w)
{
	struct commit *c = ((struct commit_item *)w)->c;

	if (w->result && !c->failed && w->result != QS_ESHUTDOWN)
		qs_ingest_storage_failed(c->s->opt.ingest, w->result, "a commit's write");
	commit_item_done(c, w->result);
}

static void
notify_commit(struct qs_serve *s, struct qs_rpc_call *call, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__NotifyCommitRequest *nc = req->notify_commit;
	struct qs_pqueue *pq = qs_author_pqueue(s->opt.author);
	struct qs_writer *wr = qs_ingest_writer(s->opt.ingest);
	struct commit *c = NULL;
	size_t n_keys = 0;

	if (nc->n_digests > QS_SERVE_MAX_COMMIT) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "%zu digests, at most %d", nc->n_digests, QS_SERVE_MAX_COMMIT);
		return;
	}
	for (size_t i = 0; i < nc->n_digests; i++) {
		if (nc->digests[i].len != QS_DIGEST_BYTES) {
			qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
			                     "digests[%zu] is %zu bytes, a digest is %d", i,
			                     nc->digests[i].len, QS_DIGEST_BYTES);
			return;
		}
	}
	if (!wr) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "qsd is stopping");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->keys = calloc(nc->n_digests ? nc->n_digests : 1, sizeof(*c->keys))))
		goto oom;
	c->s = s;
	c->call = call;
	c->block_timestamp_us = nc->block_timestamp_us;
	for (size_t i = 0; i < nc->n_digests; i++) {
		const uint8_t *digest = nc->digests[i].data;
		struct qs_pq_item it;
		uint64_t expiration_us;
		int queued = qs_pqueue_get(pq, digest, &it) == 0, rc;

		/* A batch whose proof has not arrived (yet) is marked too, with
		 * the latest expiration it can have, so that the proof is not
		 * queued when it comes. */
		expiration_us = queued ? it.info->expiration_us
		                       : qs_clock_wall_us() + s->cfg->max_batch_lifetime_us;
		rc = qs_author_commit(s->opt.author, digest, expiration_us);
		if (rc && rc != QS_EEXISTS)
			goto oom;
		/* Committed already: marked again all the same, since the write
		 * of that commit may have failed (its answer said retry). */
		qs_store_key(expiration_us, digest, c->keys[n_keys++]);
		if (queued && rc == 0)
			c->removed++;
	}
	qs_metric_add(s->m_commits, 0, 1);
	qs_metric_add(s->m_committed, 0, c->removed);
	/*
	 * The committed markers and the block timestamp, in items of the writer that one
	 * group usually takes together; the timestamp goes with the last item.
	 * The answer waits for all of them, so that a committed proof never
	 * comes back after a restart once the client heard OK.
	 */
	c->n_items = n_keys / QS_SERVE_MARKERS_PER_ITEM + 1;
	c->items = calloc(c->n_items, sizeof(*c->items));
	if (!c->items)
		goto oom;
	qs_put_be64(c->ts, nc->block_timestamp_us > qs_ingest_committed_us(s->opt.ingest)
	                       ? nc->block_timestamp_us
	                       : qs_ingest_committed_us(s->opt.ingest));
	for (size_t i = 0, k = 0; i < c->n_items; i++) {
		struct qs_write_item *w = &c->items[i].w;

		c->items[i].c = c;
		w->kind = QS_WRITE_PUT;
		w->complete = on_commit_written;
		w->owner = c;
		for (; k < n_keys && w->n_extra < QS_SERVE_MARKERS_PER_ITEM; k++)
			w->extra[w->n_extra++] = (struct qs_write_extra){
			    QS_CF_PROOFS, c->keys[k], QS_STORE_KEY_BYTES, "", 0, QS_WRITE_OP_PUT};
		if (i + 1 == c->n_items)
			w->extra[w->n_extra++] = (struct qs_write_extra){
			    QS_CF_META, QS_META_LAST_COMMITTED, strlen(QS_META_LAST_COMMITTED),
			    c->ts,      sizeof(c->ts),          QS_WRITE_OP_PUT};
	}
	/*
	 * An item the writer does not take (its queue is full: back pressure,
	 * not a storage failure) is done with the error, and the answer still
	 * comes once. One more item is counted while they are handed over, so
	 * that the answer, which frees c, comes after this loop.
	 */
	c->n_items++;
	for (size_t i = 0; i + 1 < c->n_items; i++) {
		int rc = qs_writer_submit(wr, &c->items[i].w);

		if (rc)
			commit_item_done(c, rc);
	}
	commit_item_done(c, 0);
	return;
oom:
	commit_free(c);
	qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
	                     "out of memory");
}

/* ---- listings ---- */

static int
list_args(const struct qs_serve *s, struct qs_rpc_call *call, const ProtobufCBinaryData *author,
          const ProtobufCBinaryData *start_after, uint32_t limit, int *who, uint64_t *cursor,
          size_t *max)
{
	*who = -1;
	if (author->len) {
		*who = author->len == QS_PUBKEY_BYTES
		           ? qs_config_find_signing_key(s->cfg, author->data)
		           : -1;
		if (*who < 0) {
			qs_rpc_respond_error(
			    call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
			    "author is not the signing key of a validator of epoch "
			    "%" PRIu64,
			    s->cfg->epoch);
			return -1;
		}
	}
	if (start_after->len != 0 && start_after->len != 8) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "start_after must be a cursor from a previous page");
		return -1;
	}
	*cursor = start_after->len ? qs_get_be64(start_after->data) : 0;
	*max = limit == 0                  ? QS_SERVE_DEFAULT_LIST
	       : limit > QS_SERVE_MAX_LIST ? QS_SERVE_MAX_LIST
	                                   : limit;
	return 0;
}

static void
list_batches(struct qs_serve *s, struct qs_rpc_call *call, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__ListBatchesRequest *lb = req->list_batches;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__ListBatchesResponse body = QUORUMSTORE__V1__LIST_BATCHES_RESPONSE__INIT;
	struct qs_index *ix = qs_ingest_index(s->opt.ingest);
	struct qs_batch_info *infos = NULL;
	Quorumstore__V1__BatchInfo *pbs = NULL, **ptrs = NULL;
	uint8_t next[8];
	uint64_t cursor;
	size_t max, n;
	int who;

	if (list_args(s, call, &lb->author, &lb->start_after, lb->limit, &who, &cursor, &max))
		return;
	infos = calloc(max, sizeof(*infos));
	pbs = calloc(max, sizeof(*pbs));
	ptrs = calloc(max, sizeof(*ptrs));
	if (!infos || !pbs || !ptrs || !ix) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "out of memory");
		goto out;
	}
	n = qs_index_list(ix, who, &cursor, infos, NULL, max);
	for (size_t i = 0; i < n; i++) {
		qs_batch_info_to_pb(&infos[i], &pbs[i]);
		ptrs[i] = &pbs[i];
	}
	body.n_infos = n;
	body.infos = ptrs;
	if (cursor) {
		qs_put_be64(next, cursor);
		body.next.data = next;
		body.next.len = sizeof(next);
	}
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_LIST_BATCHES;
	resp.list_batches = &body;
	qs_rpc_respond(call, &resp);
out:
	free(infos);
	free(pbs);
	free(ptrs);
}

static void
list_proofs(struct qs_serve *s, struct qs_rpc_call *call, const Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__ListProofsRequest *lp = req->list_proofs;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__ListProofsResponse body = QUORUMSTORE__V1__LIST_PROOFS_RESPONSE__INIT;
	ProtobufCMessageUnknownField *proofs = NULL;
	uint8_t next[8], *wire = NULL, *at;
	uint64_t cursor;
	size_t max, n;
	int who;

	if (list_args(s, call, &lp->author, &lp->start_after, lp->limit, &who, &cursor, &max))
		return;
	n = qs_pqueue_list(qs_author_pqueue(s->opt.author), who, &cursor, s->picks, max);
	proofs = calloc(n ? n : 1, sizeof(*proofs));
	wire = malloc(splice_bytes(s->picks, n));
	if (!proofs || !wire) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "out of memory");
		goto out;
	}
	/* Spliced as in GetPayload: `proofs` is field 1 here too. */
	at = wire;
	for (size_t i = 0; i < n; i++)
		at = splice_proof(&proofs[i], &s->picks[i], at);
	body.base.n_unknown_fields = n;
	body.base.unknown_fields = n ? proofs : NULL;
	if (cursor) {
		qs_put_be64(next, cursor);
		body.next.data = next;
		body.next.len = sizeof(next);
	}
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_LIST_PROOFS;
	resp.list_proofs = &body;
	qs_rpc_respond(call, &resp);
out:
	free(proofs);
	free(wire);
}

/* ---- dispatch ---- */

void
qs_serve_on_rpc(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	struct qs_serve *s = arg;

	switch (req->body_case) {
	case QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH:
	case QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS:
		qs_author_on_rpc(s->opt.author, call, req);
		return; /* ownership passed */
	case QUORUMSTORE__V1__REQUEST__BODY_NEW_EPOCH:
		if (s->opt.new_epoch) {
			s->opt.new_epoch(s->opt.new_epoch_arg, call, req);
			return; /* ownership passed */
		}
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "epoch changes are not taken now");
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD:
		get_payload(s, call, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH:
		get_batch(s, call, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT:
		notify_commit(s, call, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_BATCHES:
		list_batches(s, call, req);
		break;
	case QUORUMSTORE__V1__REQUEST__BODY_LIST_PROOFS:
		list_proofs(s, call, req);
		break;
	default:
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNIMPLEMENTED,
		                     "request type %d is not known to this version of qsd",
		                     (int)req->body_case);
		break;
	}
	qs_frame_msg_free(&req->base);
}

/* ---- start and stop ---- */

static int
register_metrics(struct qs_serve *s)
{
	struct qs_metrics *m = s->opt.metrics;

	s->m_fetch = qs_metrics_counter2(
	    m, "qsd_batch_fetch_total",
	    "GetBatch outcomes, by where the batch came from and the result (miss: found nowhere "
	    "in time).",
	    "source", src_names, SRC_COUNT, "result", res_names, RES_COUNT);
	s->m_payload_proofs = qs_metrics_counter(m, "qsd_payload_proofs_total",
	                                         "Proofs returned by GetPayload.", NULL, NULL, 0);
	s->m_payload_inline =
	    qs_metrics_counter(m, "qsd_payload_inline_batches_total",
	                       "Batches returned inline by GetPayload.", NULL, NULL, 0);
	s->m_commits =
	    qs_metrics_counter(m, "qsd_commits_total", "NotifyCommit requests.", NULL, NULL, 0);
	s->m_committed =
	    qs_metrics_counter(m, "qsd_proofs_committed_total",
	                       "Proofs removed from the queue by NotifyCommit.", NULL, NULL, 0);
	if (!s->m_fetch || !s->m_payload_proofs || !s->m_payload_inline || !s->m_commits ||
	    !s->m_committed)
		return QS_EBASE;
	return 0;
}

int
qs_serve_start(const struct qs_serve_options *opt, struct qs_serve **out, char *err, size_t errlen)
{
	struct qs_serve *s = calloc(1, sizeof(*s));
	struct qs_fetch_options fo;
	int rc = -ENOMEM;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->opt = *opt;
	s->cfg = opt->cfg;
	s->picks = calloc(QS_SERVE_MAX_PROOFS, sizeof(*s->picks));
	if (!s->picks) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = register_metrics(s);
	if (rc) {
		snprintf(err, errlen, "cannot register the serving metrics");
		goto out;
	}
	memset(&fo, 0, sizeof(fo));
	fo.base = opt->base;
	fo.chain_id = opt->cfg->chain_id;
	fo.limits = &opt->cfg->limits;
	fo.n_validators = opt->cfg->n_validators;
	fo.self = opt->self;
	fo.try_timeout_us = opt->cfg->fetch_timeout_us;
	fo.parallel = opt->cfg->fetch_parallel;
	fo.max_fetches = QS_SERVE_MAX_FETCHES;
	fo.max_lifetime_us = opt->cfg->max_batch_lifetime_us;
	fo.send = fetch_send;
	fo.connected = fetch_connected;
	fo.transport_arg = s;
	fo.metrics = opt->metrics;
	rc = qs_fetch_new(&fo, &s->fetch);
	if (rc) {
		snprintf(err, errlen, "cannot start the batch fetcher: %s", qs_strerror(rc));
		goto out;
	}
	qs_ingest_set_fetch_handler(opt->ingest, on_fetch_response, on_fetch_state, s);
	*out = s;
	return 0;
out:
	qs_serve_free(s);
	return rc;
}

void
qs_serve_set_peers(struct qs_serve *s, struct qs_peers *peers)
{
	s->peers = peers;
}

void
qs_serve_free(struct qs_serve *s)
{
	if (!s)
		return;
	s->stopping = 1;
	if (s->fetch)
		qs_ingest_set_fetch_handler(s->opt.ingest, NULL, NULL, NULL);
	qs_fetch_free(s->fetch);
	free(s->picks);
	free(s);
}

void
qs_serve_reload(struct qs_serve *s)
{
	qs_cache_set_budget(qs_ingest_cache(s->opt.ingest), s->cfg->payload_cache_bytes);
	(void)qs_fetch_set_tries(s->fetch, s->cfg->fetch_timeout_us, s->cfg->fetch_parallel);
}
