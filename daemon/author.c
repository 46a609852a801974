#include "daemon/author.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include <sys/random.h>

#include "core/batch.h"
#include "core/cache.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/index.h"
#include "core/pqueue.h"
#include "core/proof.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "net/frame.h"
#include "storage/writer.h"

#define QS_MAX_PENDING_OWN  8192 /* own batches awaiting a quorum */
#define QS_IDEM_MAX_BYTES   64
#define QS_META_NEXT_ID     "next_own_batch_id"
#define QS_META_IDEM        "idem/"
#define QS_LAT_RING         1024 /* recent submit-to-proof latencies for GetStatus */
#define QS_TICK_MS          1000
#define QS_PROOF_MAX_BYTES  (64u * 1024)
/* A reconnecting peer gets at most this much of our unproven batches at
 * once, well under the transport's slow-reader bound; the rest time out. */
#define QS_RESEND_MAX_BYTES (16u << 20)

/* ---- a map from 32-byte digests to pointers (open addressing) ---- */

struct dslot {
	uint8_t key[QS_DIGEST_BYTES];
	void *val; /* NULL: empty */
};

struct dmap {
	struct dslot *slots;
	size_t cap; /* a power of two */
	size_t n;
};

static size_t
dmap_home(const struct dmap *m, const uint8_t *key)
{
	/* Digests are SHA-256 outputs: their first bytes are a fine hash. The
	 * idempotency map hashes its keys with SHA-256 first. */
	return (size_t)qs_get_be64(key) & (m->cap - 1);
}

static int
dmap_grow(struct dmap *m)
{
	struct dmap bigger = {.cap = m->cap ? 2 * m->cap : 64};

	if (bigger.cap > SIZE_MAX / sizeof(struct dslot))
		return -ENOMEM;
	bigger.slots = calloc(bigger.cap, sizeof(struct dslot));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].val)
			continue;
		size_t j = dmap_home(&bigger, m->slots[i].key);

		while (bigger.slots[j].val)
			j = (j + 1) & (bigger.cap - 1);
		bigger.slots[j] = m->slots[i];
		bigger.n++;
	}
	free(m->slots);
	*m = bigger;
	return 0;
}

static void *
dmap_get(const struct dmap *m, const uint8_t *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = dmap_home(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val)
			return NULL;
		if (memcmp(m->slots[i].key, key, QS_DIGEST_BYTES) == 0)
			return m->slots[i].val;
	}
}

/* Insert a key that is not in the map. */
static int
dmap_put(struct dmap *m, const uint8_t *key, void *val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && dmap_grow(m) != 0)
		return -ENOMEM;
	for (i = dmap_home(m, key); m->slots[i].val; i = (i + 1) & (m->cap - 1))
		;
	memcpy(m->slots[i].key, key, QS_DIGEST_BYTES);
	m->slots[i].val = val;
	m->n++;
	return 0;
}

/* Remove the entry at slot i, shifting the probe chain behind it back. */
static void
dmap_del_at(struct dmap *m, size_t i)
{
	size_t j = i;

	m->slots[i].val = NULL;
	m->n--;
	for (;;) {
		size_t home;

		j = (j + 1) & (m->cap - 1);
		if (!m->slots[j].val)
			return;
		home = dmap_home(m, m->slots[j].key);
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j].val = NULL;
		i = j;
	}
}

static void
dmap_del(struct dmap *m, const uint8_t *key)
{
	if (!m->cap)
		return;
	for (size_t i = dmap_home(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val)
			return;
		if (memcmp(m->slots[i].key, key, QS_DIGEST_BYTES) == 0) {
			dmap_del_at(m, i);
			return;
		}
	}
}

/* ---- state ---- */

enum {
	SUBMIT_OK,
	SUBMIT_REFUSED,
	SUBMIT_FAILED,
	SUBMIT_COUNT
};
static const char *const submit_names[SUBMIT_COUNT] = {"ok", "refused", "failed"};

/* An own batch, from SubmitBatch until its proof is formed or it times out. */
struct own_batch {
	struct qs_write_item w; /* first: the writer hands this back */
	struct qs_author *a;
	struct qs_rpc_call *call;      /* until the write completes */
	Quorumstore__V1__Request *req; /* owns the transactions */
	struct qs_proof_builder *builder;
	struct event *timeout;
	uint64_t t_submit_us;
	uint8_t id_val[8];
	uint8_t idem_hash[QS_DIGEST_BYTES];
	char idem_key[sizeof(QS_META_IDEM) + QS_IDEM_MAX_BYTES];
	size_t idem_key_len;
	uint8_t info_bytes[QS_INFO_SIGNING_BYTES];
	int admitted;
	int pending; /* in a->pending (waiting for signatures) */
};

/* A batch consensus committed: its proof is never queued again (peers
 * resend proofs on reconnect). Persisted as an empty value under the
 * proof's key in `proofs`, which GC removes with the rest. */
struct committed_entry {
	uint64_t expiration_us;
};

/* What an idempotency key stands for. */
struct idem_entry {
	struct qs_batch_info info;
	int done; /* durably stored; else its write is in flight */
};

/* A proof on its way to the disk: formed or received, being written to
 * `proofs` or waiting for room on the disk. Once durable it moves into the
 * proof queue (core/pqueue.h), which serves GetPayload. */
struct proof_entry {
	struct qs_write_item w; /* first */
	struct qs_author *a;
	struct qs_batch_info info;
	uint8_t key[QS_STORE_KEY_BYTES];
	uint8_t *packed;
	size_t packed_len;
	uint64_t t_submit_us; /* own proofs: when the batch was submitted; else 0 */
	int writing;
	struct proof_entry *next_unwritten;
};

struct qs_author {
	struct qs_author_options opt;
	const struct qs_config *cfg;
	struct qs_valset *valset;
	struct qs_peers *peers;
	uint64_t next_batch_id;
	struct dmap pending;                /* digest -> own_batch, waiting for signatures */
	struct dmap idem;                   /* SHA-256(idempotency key) -> idem_entry */
	struct dmap proofs;                 /* digest -> proof_entry, not durable yet */
	struct qs_pqueue *pq;               /* durable proofs */
	struct dmap committed;              /* digest -> committed_entry, until expiry */
	struct proof_entry *unwritten_head; /* proofs waiting for the disk */
	struct proof_entry **unwritten_tail;
	struct event *tick;
	uint32_t lat_ms[QS_LAT_RING];
	size_t n_lat;
	uint64_t submitted;
	uint64_t formed;
	uint64_t received;

	struct qs_metric *m_submitted;
	struct qs_metric *m_sigs;
	struct qs_metric *m_formed;
	struct qs_metric *m_received;
	struct qs_metric *m_own_sigs;
	struct qs_metric *m_timed_out;
	struct qs_metric *m_latency;
	struct qs_metric *m_nacks;
	struct qs_metric *m_dropped;
};

enum {
	DROP_QUOTA,
	DROP_OTHER,
	DROP_COUNT
};
static const char *const drop_names[DROP_COUNT] = {"author_quota", "other"};

static void
sha256(const void *p, size_t n, uint8_t out[QS_DIGEST_BYTES])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, QS_DIGEST_BYTES); /* out of memory: all keys collide, safely */
}

/* Send pm to validator `to`, or to every connected one when `to` is -1. */
static void
send_to(struct qs_author *a, int to, const Quorumstore__V1__PeerMessage *pm)
{
	if (!a->peers)
		return;
	if (to < 0)
		(void)qs_peers_broadcast(a->peers, pm); /* packed once for all */
	else
		(void)qs_peers_send(a->peers, to, pm); /* -ENOTCONN for self or no link */
}

/* ---- proofs ---- */

static void proof_write(struct qs_author *a, struct proof_entry *p);

static void
proof_free(struct proof_entry *p)
{
	if (p) {
		free(p->packed);
		free(p);
	}
}

static void
send_proof(struct qs_author *a, int to, const uint8_t *packed, size_t len)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__ProofMsg m = QUORUMSTORE__V1__PROOF_MSG__INIT;
	Quorumstore__V1__ProofOfStore *proof =
	    quorumstore__v1__proof_of_store__unpack(NULL, len, packed);

	if (!proof)
		return;
	m.n_proofs = 1;
	m.proofs = &proof;
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG;
	pm.proof_msg = &m;
	send_to(a, to, &pm);
	quorumstore__v1__proof_of_store__free_unpacked(proof, NULL);
}

/* Hand a durable proof to the queue (which takes `packed`, or it is freed
 * here). */
static void
queue_proof(struct qs_author *a, const struct qs_batch_info *info, uint8_t *packed, size_t len)
{
	int author = qs_valset_index(a->valset, info->author);
	int rc = author < 0 ? -EINVAL
	         : dmap_get(&a->committed, info->digest)
	             ? QS_EEXISTS
	             : qs_pqueue_add(a->pq, author, info, packed, len);

	if (rc == 0)
		return;
	free(packed);
	if (rc == QS_EEXISTS)
		return;
	qs_metric_add(a->m_dropped, rc == QS_ELIMIT ? DROP_QUOTA : DROP_OTHER, 1);
	qs_log_warn("proof_dropped", "author=%s batch_id=%" PRIu64 " reason=\"%s\"",
	            author >= 0 ? a->cfg->validators[author].name : "unknown", info->batch_id,
	            rc == QS_ELIMIT ? "the author's proof quota is full" : qs_strerror(rc));
}

static void
on_proof_written(struct qs_write_item *w)
{
	struct proof_entry *p = (struct proof_entry *)w;
	struct qs_author *a = p->a;

	p->writing = 0;
	if (w->result) {
		/* Kept in memory; written again once the disk takes writes. */
		qs_ingest_storage_failed(a->opt.ingest, w->result, "writing a proof");
		p->next_unwritten = NULL;
		*a->unwritten_tail = p;
		a->unwritten_tail = &p->next_unwritten;
		return;
	}
	if (p->t_submit_us) {
		/* Our own: now that it is on disk, the others get it. */
		uint64_t us = qs_clock_mono_us() - p->t_submit_us;

		qs_metric_observe(a->m_latency, 0, (double)us / 1e6);
		a->lat_ms[a->n_lat++ % QS_LAT_RING] = (uint32_t)(us / 1000);
		send_proof(a, -1, p->packed, p->packed_len);
	}
	queue_proof(a, &p->info, p->packed, p->packed_len);
	p->packed = NULL;
	dmap_del(&a->proofs, p->info.digest);
	proof_free(p);
}

static void
proof_write(struct qs_author *a, struct proof_entry *p)
{
	struct qs_writer *wr = qs_ingest_writer(a->opt.ingest);

	memset(&p->w, 0, sizeof(p->w));
	p->w.kind = QS_WRITE_PUT;
	p->w.extra[0] = (struct qs_write_extra){QS_CF_PROOFS, p->key,        sizeof(p->key),
	                                        p->packed,    p->packed_len, QS_WRITE_OP_PUT};
	p->w.n_extra = 1;
	p->w.complete = on_proof_written;
	p->w.owner = p;
	if (!wr || qs_ingest_refusal(a->opt.ingest) || qs_writer_submit(wr, &p->w) != 0) {
		p->next_unwritten = NULL;
		*a->unwritten_tail = p;
		a->unwritten_tail = &p->next_unwritten;
		return;
	}
	p->writing = 1;
}

static int
proof_known(const struct qs_author *a, const uint8_t *digest)
{
	struct qs_pq_item it;

	return dmap_get(&a->proofs, digest) || dmap_get(&a->committed, digest) ||
	       qs_pqueue_get(a->pq, digest, &it) == 0;
}

int
qs_author_commit(struct qs_author *a, const uint8_t digest[QS_DIGEST_BYTES], uint64_t expiration_us)
{
	struct committed_entry *c;

	if (dmap_get(&a->committed, digest))
		return QS_EEXISTS;
	c = malloc(sizeof(*c));
	if (!c || dmap_put(&a->committed, digest, c) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->expiration_us = expiration_us;
	qs_pqueue_remove(a->pq, digest);
	return 0;
}

int
qs_author_is_committed(const struct qs_author *a, const uint8_t digest[QS_DIGEST_BYTES])
{
	return dmap_get(&a->committed, digest) != NULL;
}

/* Take ownership of a packed proof of `info` and write it. */
static int
proof_add(struct qs_author *a, const struct qs_batch_info *info, uint8_t *packed, size_t len,
          uint64_t t_submit_us)
{
	struct proof_entry *p = calloc(1, sizeof(*p));

	if (!p || dmap_put(&a->proofs, info->digest, p) != 0) {
		free(p);
		free(packed);
		return -ENOMEM;
	}
	p->a = a;
	p->info = *info;
	p->packed = packed;
	p->packed_len = len;
	p->t_submit_us = t_submit_us;
	qs_store_key(info->expiration_us, info->digest, p->key);
	proof_write(a, p);
	return 0;
}

static void
retry_unwritten(struct qs_author *a)
{
	struct proof_entry *list = a->unwritten_head, *next;

	if (!list || qs_ingest_refusal(a->opt.ingest))
		return;
	a->unwritten_head = NULL;
	a->unwritten_tail = &a->unwritten_head;
	for (; list; list = next) {
		next = list->next_unwritten;
		proof_write(a, list);
	}
}

/* ---- own batches ---- */

static void
own_free(struct own_batch *b)
{
	if (!b)
		return;
	if (b->pending)
		dmap_del(&b->a->pending, b->w.info.digest);
	if (b->timeout)
		event_free(b->timeout);
	qs_proof_builder_free(b->builder);
	if (b->req)
		qs_frame_msg_free(&b->req->base);
	free(b);
}

static void
form_proof(struct qs_author *a, struct own_batch *b)
{
	Quorumstore__V1__ProofOfStore proof;
	size_t len;
	uint8_t *packed;

	if (qs_proof_builder_build(b->builder, &proof) != 0)
		return;
	len = protobuf_c_message_get_packed_size(&proof.base);
	packed = malloc(len ? len : 1);
	if (packed) {
		protobuf_c_message_pack(&proof.base, packed);
		if (proof_known(a, b->w.info.digest))
			free(packed);
		else if (proof_add(a, &b->w.info, packed, len, b->t_submit_us) == 0) {
			a->formed++;
			qs_metric_add(a->m_formed, 0, 1);
		}
	}
	own_free(b);
}

static void
on_own_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct own_batch *b = arg;
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(b->w.info.digest, QS_DIGEST_BYTES, hex);
	qs_metric_add(b->a->m_timed_out, 0, 1);
	qs_log_warn("proof_timed_out", "digest=%s batch_id=%" PRIu64 " signers=%zu power=%" PRIu64,
	            hex, b->w.info.batch_id, qs_proof_builder_signers(b->builder),
	            qs_proof_builder_signed_power(b->builder));
	own_free(b);
}

static void
send_batch(struct qs_author *a, int to, struct own_batch *b)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchMsg m = QUORUMSTORE__V1__BATCH_MSG__INIT;
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__Batch *list[1] = {&batch};
	Quorumstore__V1__BatchInfo info;

	qs_batch_info_to_pb(&b->w.info, &info);
	batch.info = &info;
	batch.n_transactions = b->w.n_txns;
	batch.transactions = (ProtobufCBinaryData *)b->w.txns;
	m.n_batches = 1;
	m.batches = list;
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_MSG;
	pm.batch_msg = &m;
	send_to(a, to, &pm);
}

static void
respond_submit(struct qs_rpc_call *call, const struct qs_batch_info *info, int duplicate)
{
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__SubmitBatchResponse sb = QUORUMSTORE__V1__SUBMIT_BATCH_RESPONSE__INIT;
	Quorumstore__V1__BatchInfo pb;

	qs_batch_info_to_pb(info, &pb);
	sb.info = &pb;
	sb.duplicate = duplicate;
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH;
	resp.submit_batch = &sb;
	qs_rpc_respond(call, &resp);
}

static void
on_own_written(struct qs_write_item *w)
{
	struct own_batch *b = (struct own_batch *)w;
	struct qs_author *a = b->a;
	struct idem_entry *ie = b->idem_key_len ? dmap_get(&a->idem, b->idem_hash) : NULL;
	struct timeval tv = {(time_t)(a->cfg->proof_timeout_us / 1000000),
	                     (suseconds_t)(a->cfg->proof_timeout_us % 1000000)};
	struct qs_index *ix = qs_ingest_index(a->opt.ingest);

	if (b->admitted && ix)
		qs_index_write_done(ix, a->opt.self, &w->info, w->result == 0);
	b->admitted = 0;
	if (w->result) {
		qs_metric_add(a->m_submitted, SUBMIT_FAILED, 1);
		if (ie) {
			dmap_del(&a->idem, b->idem_hash);
			free(ie);
		}
		if (w->result != QS_ECRYPTO)
			qs_ingest_storage_failed(a->opt.ingest, w->result,
			                         "a synced write of an own batch");
		qs_rpc_respond_error(b->call,
		                     w->result == QS_ENOSPACE
		                         ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                         : QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "the batch was not stored: %s", qs_strerror(w->result));
		b->call = NULL;
		own_free(b);
		return;
	}
	qs_metric_add(a->m_submitted, SUBMIT_OK, 1);
	qs_ingest_note_persisted(a->opt.ingest);
	(void)qs_cache_put(qs_ingest_cache(a->opt.ingest), &w->info, w->txns, w->n_txns);
	if (ie)
		ie->done = 1;
	respond_submit(b->call, &w->info, 0);
	b->call = NULL;
	/* Durable and signed by us: now the others may have it. */
	send_batch(a, -1, b);
	if (qs_proof_builder_add_own(b->builder, a->opt.signing_pub, &w->info, w->sig) !=
	    QS_PROOF_SIG_ADDED) {
		qs_log_err("own_signature_refused", "batch_id=%" PRIu64, w->info.batch_id);
		own_free(b);
		return;
	}
	if (qs_proof_builder_has_quorum(b->builder)) {
		form_proof(a, b);
		return;
	}
	b->timeout = evtimer_new(a->opt.base, on_own_timeout, b);
	if (!b->timeout || evtimer_add(b->timeout, &tv) != 0 ||
	    dmap_put(&a->pending, w->info.digest, b) != 0) {
		own_free(b);
		return;
	}
	b->pending = 1;
}

static void
submit_batch(struct qs_author *a, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	const Quorumstore__V1__SubmitBatchRequest *sb = req->submit_batch;
	const struct qs_limits *lim = &a->cfg->limits;
	struct qs_index *ix = qs_ingest_index(a->opt.ingest);
	struct qs_writer *wr = qs_ingest_writer(a->opt.ingest);
	struct own_batch *b = NULL;
	struct idem_entry *ie = NULL;
	uint64_t bytes = 0;
	int reason = 0, rc;
	enum qs_admit admit;

	a->submitted++;
	if (sb->n_transactions == 0 || sb->n_transactions > lim->batch_max_txns ||
	    sb->idempotency_key.len > QS_IDEM_MAX_BYTES) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "a batch holds 1 to %" PRIu32
		                     " transactions and an idempotency key of at most %d bytes",
		                     lim->batch_max_txns, QS_IDEM_MAX_BYTES);
		goto refused;
	}
	for (size_t i = 0; i < sb->n_transactions; i++)
		bytes += sb->transactions[i].len;
	if (bytes > lim->batch_max_bytes) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "%" PRIu64 " transaction bytes, the limit is %" PRIu64, bytes,
		                     lim->batch_max_bytes);
		goto refused;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "out of memory");
		goto refused;
	}
	if (sb->idempotency_key.len) {
		sha256(sb->idempotency_key.data, sb->idempotency_key.len, b->idem_hash);
		ie = dmap_get(&a->idem, b->idem_hash);
		if (ie && ie->done) {
			respond_submit(call, &ie->info, 1);
			free(b);
			qs_frame_msg_free(&req->base);
			return;
		}
		if (ie) {
			qs_rpc_respond_error(
			    call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
			    "a request with this idempotency key is being stored; retry");
			goto refused;
		}
	}
	reason = qs_ingest_refusal(a->opt.ingest);
	if (reason || !ix || !wr) {
		qs_rpc_respond_error(call,
		                     reason ==
		                             QUORUMSTORE__V1__NACK_REASON__NACK_REASON_STORAGE_FULL
		                         ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                         : QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "not stored: %s", qs_nack_reason_name(reason));
		goto refused;
	}
	if (a->pending.n >= QS_MAX_PENDING_OWN) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "%d own batches are waiting for a quorum; slow down",
		                     QS_MAX_PENDING_OWN);
		goto refused;
	}

	b->a = a;
	b->call = call;
	b->req = req;
	b->t_submit_us = qs_clock_mono_us();
	b->w.kind = QS_WRITE_BATCH;
	b->w.txns = sb->transactions;
	b->w.n_txns = sb->n_transactions;
	b->w.complete = on_own_written;
	b->w.owner = b;
	memcpy(b->w.info.author, a->opt.signing_pub, QS_PUBKEY_BYTES);
	b->w.info.batch_id = a->next_batch_id;
	b->w.info.epoch = a->cfg->epoch;
	/* Inside every peer's lifetime bound even with a clock off by the
	 * tolerated skew. */
	b->w.info.expiration_us = qs_clock_wall_us() + a->cfg->max_batch_lifetime_us -
	                          (a->cfg->max_clock_skew_us < a->cfg->max_batch_lifetime_us / 2
	                               ? a->cfg->max_clock_skew_us
	                               : a->cfg->max_batch_lifetime_us / 2);
	b->w.info.num_txns = (uint32_t)sb->n_transactions;
	b->w.info.num_bytes = bytes;
	b->w.info.gas_bucket_start = sb->gas_bucket_start;
	rc = qs_codec_batch_digest(a->cfg->chain_id, b->w.info.author, b->w.info.epoch,
	                           b->w.info.batch_id, sb->transactions, sb->n_transactions,
	                           b->w.info.digest);
	if (rc == 0)
		rc = qs_proof_builder_new(a->valset, &b->w.info, &b->builder);
	if (rc) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INTERNAL, "%s",
		                     qs_strerror(rc));
		b->call = NULL;
		b->req = NULL;
		goto refused;
	}
	admit = qs_index_admit(ix, a->opt.self, &b->w.info, &reason);
	if (admit != QS_ADMIT_WRITE) {
		qs_rpc_respond_error(
		    call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED, "not stored: %s",
		    admit == QS_ADMIT_REJECT ? qs_nack_reason_name(reason) : "digest known");
		b->call = NULL;
		b->req = NULL;
		goto refused;
	}
	b->admitted = 1;

	/* The next id goes into the same WriteBatch: it is durable exactly when
	 * this batch is, so an id is never handed out twice across restarts. */
	qs_put_be64(b->id_val, a->next_batch_id + 1);
	b->w.extra[0] = (struct qs_write_extra){
	    QS_CF_META, QS_META_NEXT_ID, strlen(QS_META_NEXT_ID), b->id_val, 8, QS_WRITE_OP_PUT};
	b->w.n_extra = 1;
	if (sb->idempotency_key.len) {
		ie = calloc(1, sizeof(*ie));
		if (!ie || dmap_put(&a->idem, b->idem_hash, ie) != 0) {
			free(ie);
			qs_index_write_done(ix, a->opt.self, &b->w.info, 0);
			qs_rpc_respond_error(call,
			                     QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
			                     "out of memory");
			b->call = NULL;
			b->req = NULL;
			goto refused;
		}
		ie->info = b->w.info;
		memcpy(b->idem_key, QS_META_IDEM, strlen(QS_META_IDEM));
		memcpy(b->idem_key + strlen(QS_META_IDEM), sb->idempotency_key.data,
		       sb->idempotency_key.len);
		b->idem_key_len = strlen(QS_META_IDEM) + sb->idempotency_key.len;
		qs_codec_info_signing_bytes(a->cfg->chain_id, &b->w.info, b->info_bytes);
		b->w.extra[1] =
		    (struct qs_write_extra){QS_CF_META,    b->idem_key,           b->idem_key_len,
		                            b->info_bytes, sizeof(b->info_bytes), QS_WRITE_OP_PUT};
		b->w.n_extra = 2;
	}
	rc = qs_writer_submit(wr, &b->w);
	if (rc) {
		if (ie) {
			dmap_del(&a->idem, b->idem_hash);
			free(ie);
		}
		qs_index_write_done(ix, a->opt.self, &b->w.info, 0);
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "the writer queue is full: %s", qs_strerror(rc));
		b->call = NULL;
		b->req = NULL;
		goto refused;
	}
	a->next_batch_id++;
	return;
refused:
	qs_metric_add(a->m_submitted, SUBMIT_REFUSED, 1);
	if (b && b->builder)
		qs_proof_builder_free(b->builder);
	free(b);
	qs_frame_msg_free(&req->base);
}

/* ---- GetStatus ---- */

static int
u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

static void
get_status(struct qs_author *a, struct qs_rpc_call *call)
{
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__GetStatusResponse st = QUORUMSTORE__V1__GET_STATUS_RESPONSE__INIT;
	struct qs_index *ix = qs_ingest_index(a->opt.ingest);
	uint32_t lat[QS_LAT_RING];
	size_t n = a->n_lat < QS_LAT_RING ? a->n_lat : QS_LAT_RING;

	st.server_version = (char *)QS_VERSION;
	st.epoch = a->cfg->epoch;
	st.chain_id = a->cfg->chain_id;
	st.storage_state = (Quorumstore__V1__StorageState)(qs_ingest_state(a->opt.ingest) + 1);
	st.storage_reason = (char *)qs_storage_state_names[qs_ingest_state(a->opt.ingest)];
	st.peers_total = (uint32_t)a->cfg->n_validators - 1;
	for (size_t i = 0; a->peers && i < a->cfg->n_validators; i++)
		if ((int)i != a->opt.self && qs_peers_connected(a->peers, (int)i))
			st.peers_connected++;
	st.batches_stored = ix ? qs_index_count(ix) : 0;
	st.bytes_stored = ix ? qs_index_bytes(ix) : 0;
	st.disk_free_bytes = qs_ingest_free_bytes(a->opt.ingest);
	st.batches_submitted = a->submitted;
	qs_ingest_counts(a->opt.ingest, &st.batches_received, &st.batches_persisted,
	                 &st.batches_signed);
	st.proofs_formed = a->formed;
	st.proofs_received = a->received;
	st.proof_queue_size = qs_pqueue_count(a->pq);
	st.own_batches_unproven = a->pending.n;
	/* Slow down when own batches wait for signatures, when own proofs pile
	 * up faster than blocks take them, or when the disk refuses writes. */
	st.back_pressure =
	    a->pending.n >= QS_MAX_PENDING_OWN / 2 ||
	    qs_pqueue_author_count(a->pq, a->opt.self) >= a->cfg->quotas.author_proofs / 2 ||
	    qs_ingest_state(a->opt.ingest) != QS_STORAGE_OK;
	memcpy(lat, a->lat_ms, n * sizeof(lat[0]));
	qsort(lat, n, sizeof(lat[0]), u32_cmp);
	if (n) {
		st.submit_to_proof_p50_us = (uint64_t)lat[n / 2] * 1000;
		st.submit_to_proof_p99_us = (uint64_t)lat[(n * 99) / 100] * 1000;
	}
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS;
	resp.get_status = &st;
	qs_rpc_respond(call, &resp);
}

void
qs_author_on_rpc(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	struct qs_author *a = arg;

	switch (req->body_case) {
	case QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH:
		submit_batch(a, call, req);
		return; /* ownership passed */
	case QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS:
		get_status(a, call);
		break;
	default:
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNIMPLEMENTED,
		                     "this version of qsd serves Hello, SubmitBatch and GetStatus");
		break;
	}
	qs_frame_msg_free(&req->base);
}

/* ---- from peers ---- */

static void
on_signed(struct qs_author *a, int peer, const Quorumstore__V1__SignedBatchInfoMsg *m)
{
	for (size_t i = 0; i < m->n_infos; i++) {
		const Quorumstore__V1__SignedBatchInfo *sbi = m->infos[i];
		struct own_batch *b;
		int r;

		if (!sbi->info || sbi->info->digest.len != QS_DIGEST_BYTES ||
		    !(b = dmap_get(&a->pending, sbi->info->digest.data))) {
			/* Late (proof formed or timed out) or never ours. */
			qs_metric_add(a->m_sigs, QS_PROOF_SIG_COUNT, 1);
			continue;
		}
		r = qs_proof_builder_add_pb(b->builder, sbi);
		if (r < 0)
			continue;
		qs_metric_add(a->m_sigs, (size_t)r, 1);
		if (r != QS_PROOF_SIG_ADDED && r != QS_PROOF_SIG_DUPLICATE)
			qs_log_warn("signature_refused", "peer=%s result=%s batch_id=%" PRIu64,
			            a->cfg->validators[peer].name, qs_proof_sig_names[r],
			            b->w.info.batch_id);
		if (qs_proof_builder_has_quorum(b->builder))
			form_proof(a, b);
	}
}

static void
on_proofs(struct qs_author *a, int peer, Quorumstore__V1__ProofMsg *m)
{
	const struct qs_sigmemo *memo = a->opt.ingest ? qs_ingest_sigmemo(a->opt.ingest) : NULL;
	uint64_t now = qs_clock_wall_us();

	for (size_t i = 0; i < m->n_proofs; i++) {
		const Quorumstore__V1__ProofOfStore *p = m->proofs[i];
		struct qs_batch_info info;
		uint8_t *packed;
		size_t len;
		bool own = false;
		int r = qs_proof_verify_own(a->valset, now, p, a->opt.self, memo, &info, &own);

		if (r < 0)
			continue;
		if (own)
			qs_metric_add(a->m_own_sigs, 0, 1);
		if (r == 0 && proof_known(a, info.digest)) {
			qs_metric_add(a->m_received, QS_PROOF_REASON_COUNT, 1); /* duplicate */
			continue;
		}
		qs_metric_add(a->m_received, (size_t)r, 1);
		if (r) {
			qs_log_warn("proof_refused", "peer=%s reason=%s",
			            a->cfg->validators[peer].name, qs_proof_reason_names[r]);
			continue;
		}
		len = protobuf_c_message_get_packed_size(&p->base);
		if (len > QS_PROOF_MAX_BYTES || !(packed = malloc(len ? len : 1)))
			continue;
		protobuf_c_message_pack(&p->base, packed);
		if (proof_add(a, &info, packed, len, 0) == 0)
			a->received++;
	}
}

void
qs_author_on_peer(void *arg, int peer, Quorumstore__V1__PeerMessage *msg)
{
	struct qs_author *a = arg;

	switch (msg->msg_case) {
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG:
		on_signed(a, peer, msg->signed_batch_info_msg);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG:
		on_proofs(a, peer, msg->proof_msg);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK:
		qs_metric_add(a->m_nacks, 0, 1);
		qs_log_info("own_batch_nacked", "peer=%s batch_id=%" PRIu64 " reason=%s",
		            a->cfg->validators[peer].name, msg->batch_nack->batch_id,
		            qs_nack_reason_name(msg->batch_nack->reason));
		break;
	default:
		break;
	}
	qs_frame_msg_free(&msg->base);
}

/* ---- timer: expiry and retries ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct qs_author *a = arg;
	uint64_t now = qs_clock_wall_us();

	/* Expired proofs and idempotency keys go; the disk copies go with the
	 * GC's range deletes. */
	qs_pqueue_expire(a->pq, now);
	for (size_t i = 0; i < a->proofs.cap;) {
		struct proof_entry *p = a->proofs.slots[i].val;

		if (p && p->info.expiration_us <= now && !p->writing && !p->next_unwritten &&
		    a->unwritten_tail != &p->next_unwritten) {
			dmap_del_at(&a->proofs, i);
			proof_free(p);
			continue; /* slot i holds a shifted entry now */
		}
		i++;
	}
	for (size_t i = 0; i < a->committed.cap;) {
		struct committed_entry *c = a->committed.slots[i].val;

		if (c && c->expiration_us <= now) {
			dmap_del_at(&a->committed, i);
			free(c);
			continue;
		}
		i++;
	}
	for (size_t i = 0; i < a->idem.cap;) {
		struct idem_entry *ie = a->idem.slots[i].val;

		if (ie && ie->done && ie->info.expiration_us <= now) {
			dmap_del_at(&a->idem, i);
			free(ie);
			continue;
		}
		i++;
	}
	retry_unwritten(a);
}

/* ---- start and stop ---- */

static void
load_idem(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct qs_author *a = arg;
	size_t plen = strlen(QS_META_IDEM);
	struct idem_entry *ie;
	uint8_t hash[QS_DIGEST_BYTES];
	uint32_t chain;
	struct qs_batch_info info;

	if (klen <= plen || klen - plen > QS_IDEM_MAX_BYTES ||
	    qs_codec_info_parse(val, vlen, &chain, &info) != 0 || chain != a->cfg->chain_id ||
	    info.epoch != a->cfg->epoch || info.expiration_us <= qs_clock_wall_us())
		return;
	sha256(key + plen, klen - plen, hash);
	if (dmap_get(&a->idem, hash) || !(ie = calloc(1, sizeof(*ie))))
		return;
	ie->info = info;
	ie->done = 1;
	if (dmap_put(&a->idem, hash, ie) != 0)
		free(ie);
}

struct proof_load {
	struct qs_author *a;
	uint64_t now_us;
	size_t loaded, stale, committed;
	uint8_t (*stale_keys)[QS_STORE_KEY_BYTES];
	size_t n_stale_keys, cap_stale_keys;
	int rc;
};

/*
 * A record of `proofs` at start: written by this node after it verified
 * the proof (or formed it), so it is queued again without verifying the
 * signatures again; RocksDB checksums the bytes. A proof that does not
 * parse, or whose key is not its info's, is corruption. One of another
 * epoch or chain is deleted; one past its expiration stays for GC.
 */
static int
load_proof(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct proof_load *l = arg;
	struct qs_author *a = l->a;
	Quorumstore__V1__ProofOfStore *p =
	    vlen <= QS_PROOF_MAX_BYTES ? quorumstore__v1__proof_of_store__unpack(NULL, vlen, val)
				       : NULL;
	struct qs_batch_info info;
	uint8_t want[QS_STORE_KEY_BYTES];
	uint8_t *copy;

	if (vlen == 0 && klen == QS_STORE_KEY_BYTES) {
		/* A committed marker: the batch stays out of the queue. */
		if (p)
			quorumstore__v1__proof_of_store__free_unpacked(p, NULL);
		if (qs_get_be64(key) > l->now_us &&
		    qs_author_commit(a, key + 8, qs_get_be64(key)) == -ENOMEM) {
			l->rc = -ENOMEM;
			return 1;
		}
		l->committed++;
		return 0;
	}
	if (!p || qs_batch_info_from_pb(p->info, &info) != 0) {
		if (p)
			quorumstore__v1__proof_of_store__free_unpacked(p, NULL);
		l->rc = QS_ECORRUPT;
		return 1;
	}
	quorumstore__v1__proof_of_store__free_unpacked(p, NULL);
	qs_store_key(info.expiration_us, info.digest, want);
	if (klen != sizeof(want) || memcmp(key, want, sizeof(want)) != 0) {
		l->rc = QS_ECORRUPT;
		return 1;
	}
	if (info.epoch != a->cfg->epoch || qs_valset_index(a->valset, info.author) < 0) {
		if (l->n_stale_keys == l->cap_stale_keys) {
			size_t cap = l->cap_stale_keys ? 2 * l->cap_stale_keys : 64;
			void *bigger = realloc(l->stale_keys, cap * sizeof(*l->stale_keys));

			if (!bigger) {
				l->rc = -ENOMEM;
				return 1;
			}
			l->stale_keys = bigger;
			l->cap_stale_keys = cap;
		}
		memcpy(l->stale_keys[l->n_stale_keys++], key, QS_STORE_KEY_BYTES);
		return 0;
	}
	if (info.expiration_us <= l->now_us) {
		l->stale++;
		return 0;
	}
	copy = malloc(vlen ? vlen : 1);
	if (!copy) {
		l->rc = -ENOMEM;
		return 1;
	}
	memcpy(copy, val, vlen);
	queue_proof(a, &info, copy, vlen);
	l->loaded++;
	return 0;
}

/* Restore the proof queue from `proofs`. */
static int
load_proofs(struct qs_author *a, char *err, size_t errlen)
{
	struct proof_load l = {.a = a, .now_us = qs_clock_wall_us()};
	int rc = qs_store_scan(a->opt.store, QS_CF_PROOFS, load_proof, &l);

	if (rc == 0)
		rc = l.rc;
	for (size_t i = 0; rc == 0 && i < l.n_stale_keys; i++)
		rc = qs_store_delete_sync(a->opt.store, QS_CF_PROOFS, l.stale_keys[i],
		                          QS_STORE_KEY_BYTES);
	if (rc)
		snprintf(err, errlen, "cannot restore the proof queue from `proofs`: %s",
		         qs_strerror(rc));
	else
		qs_log_info("proofs_restored",
		            "queued=%zu committed=%zu expired=%zu other_epoch_deleted=%zu",
		            l.loaded, l.committed, l.stale, l.n_stale_keys);
	free(l.stale_keys);
	return rc;
}

static int
register_metrics(struct qs_author *a)
{
	static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
	static const char *sig_names[QS_PROOF_SIG_COUNT + 1];
	static const char *proof_names[QS_PROOF_REASON_COUNT + 1];
	struct qs_metrics *m = a->opt.metrics;

	for (int i = 0; i < QS_PROOF_SIG_COUNT; i++)
		sig_names[i] = qs_proof_sig_names[i];
	sig_names[QS_PROOF_SIG_COUNT] = "not_pending";
	for (int i = 0; i < QS_PROOF_REASON_COUNT; i++)
		proof_names[i] = qs_proof_reason_names[i];
	proof_names[QS_PROOF_REASON_COUNT] = "duplicate";
	a->m_submitted = qs_metrics_counter(m, "qsd_batches_submitted_total",
	                                    "SubmitBatch requests, by outcome.", "result",
	                                    submit_names, SUBMIT_COUNT);
	a->m_sigs = qs_metrics_counter(m, "qsd_signatures_received_total",
	                               "Signatures of own batches received from peers, by result.",
	                               "result", sig_names, QS_PROOF_SIG_COUNT + 1);
	a->m_formed = qs_metrics_counter(m, "qsd_proofs_formed_total",
	                                 "Proofs of store formed for own batches.", NULL, NULL, 0);
	a->m_received = qs_metrics_counter(
	    m, "qsd_proofs_received_total",
	    "Proofs of store received from peers, by verification result (ok: accepted).", "result",
	    proof_names, QS_PROOF_REASON_COUNT + 1);
	a->m_own_sigs = qs_metrics_counter(m, "qsd_proof_own_signatures_recognised_total",
	                                   "This node's signature in a received proof recognised "
	                                   "as the one it sent (compared, not "
	                                   "verified again).",
	                                   NULL, NULL, 0);
	a->m_timed_out =
	    qs_metrics_counter(m, "qsd_proofs_timed_out_total",
	                       "Own batches that did not reach a quorum in time.", NULL, NULL, 0);
	a->m_latency = qs_metrics_histogram(
	    m, "qsd_submit_to_proof_seconds", "From SubmitBatch to the own proof written to disk.",
	    bounds, sizeof(bounds) / sizeof(bounds[0]), NULL, NULL, 0);
	a->m_nacks = qs_metrics_counter(m, "qsd_own_batches_nacked_total",
	                                "BatchNack answers to own batches.", NULL, NULL, 0);
	a->m_dropped = qs_metrics_counter(m, "qsd_proofs_dropped_total",
	                                  "Durable proofs not queued, by reason.", "reason",
	                                  drop_names, DROP_COUNT);
	if (!a->m_submitted || !a->m_sigs || !a->m_formed || !a->m_received || !a->m_own_sigs ||
	    !a->m_timed_out || !a->m_latency || !a->m_nacks || !a->m_dropped)
		return QS_EBASE;
	return 0;
}

static double
queue_size_fn(void *arg)
{
	return (double)qs_pqueue_count(((struct qs_author *)arg)->pq);
}

static double
pending_fn(void *arg)
{
	return (double)((struct qs_author *)arg)->pending.n;
}

int
qs_author_start(const struct qs_author_options *opt, struct qs_author **out, char *err,
                size_t errlen)
{
	const struct qs_config *cfg = opt->cfg;
	struct qs_author *a = calloc(1, sizeof(*a));
	uint8_t(*keys)[QS_PUBKEY_BYTES] = NULL;
	uint64_t *powers = NULL;
	struct timeval tv = {QS_TICK_MS / 1000, (QS_TICK_MS % 1000) * 1000};
	uint8_t idbuf[8];
	uint64_t max_own;
	int rc = -ENOMEM;

	if (!a)
		return -ENOMEM;
	a->opt = *opt;
	a->cfg = cfg;
	a->unwritten_tail = &a->unwritten_head;
	keys = calloc(cfg->n_validators, sizeof(*keys));
	powers = calloc(cfg->n_validators, sizeof(*powers));
	if (!keys || !powers)
		goto out;
	for (size_t i = 0; i < cfg->n_validators; i++) {
		memcpy(keys[i], cfg->validators[i].signing_key, QS_PUBKEY_BYTES);
		powers[i] = cfg->validators[i].voting_power;
	}
	rc = qs_valset_new(cfg->chain_id, cfg->epoch, cfg->n_validators,
	                   (const uint8_t(*)[QS_PUBKEY_BYTES])keys, powers, &a->valset);
	if (rc) {
		snprintf(err, errlen, "cannot build the validator set: %s", qs_strerror(rc));
		goto out;
	}
	{
		uint64_t seed;

		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = qs_clock_mono_us();
		rc = qs_pqueue_new(cfg->n_validators, cfg->quotas.author_proofs, seed, &a->pq);
		if (rc) {
			snprintf(err, errlen, "cannot create the proof queue: %s", qs_strerror(rc));
			goto out;
		}
	}
	/* Batch ids: after the persisted next id and after every own batch on
	 * disk; a new database starts at the clock, so that ids stay fresh even
	 * if a node's data was wiped (peers may still hold its old batches). */
	rc = qs_store_meta_get(opt->store, QS_META_NEXT_ID, idbuf, sizeof(idbuf));
	if (rc == 8) {
		a->next_batch_id = qs_get_be64(idbuf);
	} else if (rc == QS_ENOTFOUND) {
		a->next_batch_id = qs_clock_wall_us();
	} else {
		snprintf(err, errlen, "cannot read %s: %s", QS_META_NEXT_ID,
		         rc < 0 ? qs_strerror(rc) : "wrong size");
		rc = rc < 0 ? rc : QS_ECORRUPT;
		goto out;
	}
	if (qs_ingest_max_own_batch_id(opt->ingest, &max_own) == 0 && max_own >= a->next_batch_id)
		a->next_batch_id = max_own + 1;
	rc = qs_store_meta_scan(opt->store, QS_META_IDEM, load_idem, a);
	if (rc) {
		snprintf(err, errlen, "cannot read the idempotency keys: %s", qs_strerror(rc));
		goto out;
	}
	rc = register_metrics(a);
	if (rc == 0)
		rc = load_proofs(a, err, errlen);
	else
		snprintf(err, errlen, "cannot register the proof metrics");
	if (rc)
		goto out;
	if (!qs_metrics_gauge_fn(opt->metrics, "qsd_proof_queue_size",
	                         "Durable proofs of store queued for GetPayload.", queue_size_fn,
	                         a) ||
	    !qs_metrics_gauge_fn(opt->metrics, "qsd_own_batches_unproven",
	                         "Own batches waiting for a quorum of signatures.", pending_fn,
	                         a)) {
		rc = QS_EBASE;
		snprintf(err, errlen, "cannot register the proof metrics");
		goto out;
	}
	a->tick = event_new(opt->base, -1, EV_PERSIST, on_tick, a);
	if (!a->tick || event_add(a->tick, &tv) != 0) {
		rc = -ENOMEM;
		snprintf(err, errlen, "cannot add the proof timer");
		goto out;
	}
	qs_log_info("author_ready", "next_batch_id=%" PRIu64 " idempotency_keys=%zu",
	            a->next_batch_id, a->idem.n);
	*out = a;
	rc = 0;
out:
	free(keys);
	free(powers);
	if (rc)
		qs_author_free(a);
	return rc;
}

void
qs_author_on_state(void *arg, int peer, int connected)
{
	struct qs_author *a = arg;
	size_t batches = 0, proofs = 0;
	uint64_t bytes = 0;

	if (!connected || peer == a->opt.self)
		return;
	for (size_t i = 0; i < a->pending.cap && bytes < QS_RESEND_MAX_BYTES; i++) {
		struct own_batch *b = a->pending.slots[i].val;

		if (b) {
			send_batch(a, peer, b);
			bytes += b->w.info.num_bytes;
			batches++;
		}
	}
	{
		struct qs_pq_item items[64];
		uint64_t cursor = 0;
		size_t n;

		do {
			n = qs_pqueue_list(a->pq, a->opt.self, &cursor, items, 64);
			for (size_t i = 0; i < n; i++)
				send_proof(a, peer, items[i].proof, items[i].proof_len);
			proofs += n;
		} while (cursor != 0);
	}
	if (batches || proofs)
		qs_log_info("peer_resent", "peer=%s batches=%zu proofs=%zu",
		            a->cfg->validators[peer].name, batches, proofs);
}

void
qs_author_set_peers(struct qs_author *a, struct qs_peers *peers)
{
	a->peers = peers;
}

size_t
qs_author_pending(const struct qs_author *a)
{
	return a->pending.n;
}

size_t
qs_author_proofs(const struct qs_author *a)
{
	return a->proofs.n + qs_pqueue_count(a->pq);
}

struct qs_pqueue *
qs_author_pqueue(struct qs_author *a)
{
	return a->pq;
}

const struct qs_valset *
qs_author_valset(const struct qs_author *a)
{
	return a->valset;
}

void
qs_author_free(struct qs_author *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->pending.cap; i++) {
		struct own_batch *b = a->pending.slots[i].val;

		if (b) {
			b->pending = 0; /* the map goes as a whole */
			own_free(b);
		}
	}
	for (size_t i = 0; i < a->proofs.cap; i++)
		proof_free(a->proofs.slots[i].val);
	for (size_t i = 0; i < a->idem.cap; i++)
		free(a->idem.slots[i].val);
	for (size_t i = 0; i < a->committed.cap; i++)
		free(a->committed.slots[i].val);
	free(a->committed.slots);
	free(a->pending.slots);
	free(a->proofs.slots);
	free(a->idem.slots);
	if (a->tick)
		event_free(a->tick);
	qs_pqueue_free(a->pq);
	qs_valset_free(a->valset);
	free(a);
}
