#include "daemon/ingest.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/batch.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/index.h"
#include "core/sigmemo.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "net/frame.h"
#include "core/cache.h"
#include "storage/reader.h"
#include "storage/writer.h"

/* Serving BatchRequest: a token bucket per peer. */
#define QS_FETCH_RATE_PER_S   1000
#define QS_FETCH_BURST        2000
#define QS_READ_QUEUE_MAX     1024
#define QS_EXPIRE_INTERVAL_MS 1000
/* Free space and RocksDB's background errors are checked this often, so
 * that /healthz changes well within a second. */
#define QS_DISK_POLL_MS       250
/* Writes resume once free space is this much above the watermark (an eighth
 * of it, at least 16 MiB), so a disk at the edge does not flap between full
 * and ok, nor a reopen that itself freed a little space. */
#define QS_RESUME_MARGIN(watermark)                                                                \
	((watermark) / 8 > (16u << 20) ? (watermark) / 8 : (uint64_t)(16u << 20))
#define QS_ROCKSDB_GAUGES         6 /* RocksDB properties exported */
/* Whole SST files below the GC cutoff are dropped at most this often. */
#define QS_DROP_FILES_INTERVAL_US (60u * 1000000)
/* How long a full disk explains a background error (see
 * check_background_errors()). */
#define QS_FULL_MEMORY_US         (60u * 1000000)
#define QS_META_COMMITTED         QS_META_LAST_COMMITTED
/* Repeated write failures are logged once per this many seconds, with a
 * count of those not logged. */
#define QS_FAIL_LOG_INTERVAL_S    10
/* Signatures remembered for the proof stage (1.6 MiB): at the full 64 KiB
 * rate of one node, the last 3 s of them; a proof usually comes within one. */
#define QS_INGEST_SIGMEMO_SLOTS   8192

const char *const qs_storage_state_names[QS_STORAGE_STATE_COUNT] = {
    [QS_STORAGE_OK] = "ok",
    [QS_STORAGE_FULL] = "full",
    [QS_STORAGE_FAILED] = "failed",
    [QS_STORAGE_RECOVERING] = "recovering",
};

enum {
	FAIL_NO_SPACE,
	FAIL_IO,
	FAIL_CORRUPTION,
	FAIL_BACKGROUND,
	FAIL_OTHER,
	FAIL_COUNT
};
static const char *const fail_names[FAIL_COUNT] = {"no_space", "io_error", "corruption",
                                                   "background", "other"};

enum {
	REQ_SERVED,
	REQ_NOT_FOUND,
	REQ_RATE_LIMITED,
	REQ_CORRUPT,
	REQ_OVERLOADED,
	REQ_ERROR,
	REQ_COUNT
};
static const char *const req_names[REQ_COUNT] = {"served",  "not_found",  "rate_limited",
                                                 "corrupt", "overloaded", "error"};

enum {
	IGN_SIGNED_INFO,
	IGN_NACK,
	IGN_PROOF,
	IGN_RESPONSE,
	IGN_COUNT
};
static const char *const ign_names[IGN_COUNT] = {"signed_batch_info", "batch_nack", "proof",
                                                 "batch_response"};

/* A decoded BatchMsg stays alive while any of its batches is being written:
 * the write items borrow its transactions. */
struct msg_ref {
	Quorumstore__V1__PeerMessage *msg;
	int refs;
};

struct ingest_item {
	struct qs_write_item w; /* first: the writer hands this back */
	struct qs_ingest *in;
	struct msg_ref *ref;
	ProtobufCBinaryData *txns; /* = w.txns, in ref's message: the cache takes them */
	int author;                /* validator index, = the sending peer */
	int admitted;              /* qs_index_write_done() owed */
	uint64_t t_in_us;          /* its message handed to ingest (monotonic) */
	struct ingest_item *next;  /* waiting for room in the writer queue */
};

/* A payload read: for a peer's BatchRequest (done == NULL) or for the
 * proof stage and RPC (qs_ingest_read()). */
struct serve_item {
	struct qs_read_item r; /* first */
	struct qs_ingest *in;
	int peer;
	uint64_t request_id;
	void (*done)(void *arg, int result, struct qs_read_item *r);
	void *arg;
};

/* A batch persisted for the RPC (fetched from peers): qs_ingest_persist(). */
struct persist_item {
	struct qs_write_item w; /* first */
	struct qs_ingest *in;
	int author;
	void (*done)(void *arg, int result);
	void *arg;
};

struct bucket {
	double tokens;
	uint64_t last_us;
};

/* One RocksDB property exported as a gauge (see rocksdb_gauges[]). */
struct rocksdb_gauge {
	struct qs_ingest *in;
	size_t i;
	uint64_t last;
};

struct qs_ingest {
	struct qs_ingest_options opt;
	const struct qs_config *cfg;
	struct qs_index *index;
	struct qs_writer *writer;
	struct qs_reader *reader;
	struct qs_peers *peers;
	struct event *expire_timer;
	struct event *disk_timer;
	uint64_t free_bytes;     /* last statvfs of the data directory */
	uint64_t since_statvfs;  /* payload bytes admitted since then */
	int needs_reopen;        /* RocksDB failed with no space: reopen before writing */
	int reopening;           /* a reopen runs on the reader thread */
	uint64_t bg_errors_seen; /* rocksdb.background-errors already handled */
	uint64_t full_seen_us;   /* when the disk was last full or nearly (monotonic) */
	struct qs_read_item reopen_item;
	struct qs_cache *cache;
	struct qs_sigmemo *sigmemo; /* the signatures sent lately (core/sigmemo.h) */
	/* GC: payloads whose expiration is at or below the cutoff are deleted
	 * (docs/DESIGN.md, "Garbage collection"). */
	uint64_t committed_us; /* latest committed block timestamp */
	uint64_t gc_cutoff_us; /* the last cutoff applied */
	uint64_t gc_drop_us;   /* when whole files were last dropped */
	int gc_writing;        /* the range delete is with the writer */
	int gc_dropping;       /* the file drop is with the reader */
	struct qs_write_item gc_item;
	struct qs_read_item drop_item;
	uint8_t gc_begin[8];
	uint8_t gc_end[8];
	void (*response_handler)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg);
	void (*fetch_state_handler)(void *arg, int peer, int connected);
	void *fetch_arg;
	_Atomic uint64_t groups_done; /* written by the writer thread */
	/* When a write last failed for want of space (monotonic us), set on the
	 * writer thread: the disk poll can see the background error behind it
	 * before the loop has handled the failed group. */
	_Atomic uint64_t nospace_seen_us;
	/* Writer thread only: rate limit of the persist_failed line. */
	uint64_t fail_log_s;
	uint64_t fail_log_suppressed;
	uint64_t max_own_batch_id; /* recovered: the highest batch id of our own */
	int have_own_batch;
	void (*proof_handler)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg);
	void (*state_handler)(void *arg, int peer, int connected);
	void *proof_arg;
	enum qs_storage_state state;
	int reading_paused;
	int draining;                  /* qs_ingest_drain() began: reading stays off */
	struct ingest_item *wait_head; /* FIFO of items the writer had no room for */
	struct ingest_item **wait_tail;
	struct bucket *buckets; /* per validator */

	struct qs_metric *m_received;
	struct qs_metric *m_persisted;
	struct qs_metric *m_signed;
	struct qs_metric *m_rejected;
	struct qs_metric *m_persist_failures;
	struct qs_metric *m_group_size;
	struct qs_metric *m_persist_seconds;
	struct qs_metric *m_ack_seconds;
	struct qs_metric *m_requests;
	struct qs_metric *m_ignored;
	struct qs_metric *m_protocol_errors;
	struct rocksdb_gauge rocksdb_gauges[QS_ROCKSDB_GAUGES];
	struct qs_metric *m_gc_runs;
	struct qs_metric *m_gc_batches;
};

static void
set_state(struct qs_ingest *in, enum qs_storage_state state, const char *reason)
{
	/* Failed is final: the fail-stop is under way, and a later error (a
	 * write still queued failing with no space) must not make it look
	 * degraded, nor let a reopen bring it back. */
	if (in->state == state || in->state == QS_STORAGE_FAILED)
		return;
	if (state == QS_STORAGE_FULL)
		in->full_seen_us = qs_clock_mono_us();
	in->state = state;
	if (in->opt.state_changed)
		in->opt.state_changed(in->opt.arg, state, reason);
}

static void
msg_unref(struct msg_ref *ref)
{
	if (ref && --ref->refs == 0) {
		qs_frame_msg_free(&ref->msg->base);
		free(ref);
	}
}

static void
send_nack(struct qs_ingest *in, int peer, const struct qs_batch_info *info, int reason,
          const char *detail)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;

	nack.digest.data = (uint8_t *)info->digest;
	nack.digest.len = QS_DIGEST_BYTES;
	nack.reason = (Quorumstore__V1__NackReason)reason;
	nack.batch_id = info->batch_id;
	nack.detail = (char *)(detail ? detail : qs_nack_reason_name(reason));
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	pm.batch_nack = &nack;
	qs_metric_add(in->m_rejected, (size_t)reason, 1);
	if (in->peers)
		qs_peers_send(in->peers, peer, &pm);
}

static void
send_signed(struct qs_ingest *in, int peer, const struct qs_write_item *w)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__SignedBatchInfoMsg m = QUORUMSTORE__V1__SIGNED_BATCH_INFO_MSG__INIT;
	Quorumstore__V1__SignedBatchInfo sbi = QUORUMSTORE__V1__SIGNED_BATCH_INFO__INIT;
	Quorumstore__V1__SignedBatchInfo *list[1] = {&sbi};
	Quorumstore__V1__BatchInfo info;

	qs_batch_info_to_pb(&w->info, &info);
	sbi.info = &info;
	sbi.signer.data = (uint8_t *)in->opt.signing_pub;
	sbi.signer.len = QS_PUBKEY_BYTES;
	sbi.signature.data = (uint8_t *)w->sig;
	sbi.signature.len = QS_SIG_BYTES;
	m.n_infos = 1;
	m.infos = list;
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG;
	pm.signed_batch_info_msg = &m;
	qs_metric_add(in->m_signed, 0, 1);
	qs_sigmemo_put(in->sigmemo, in->cfg->chain_id, &w->info, w->sig);
	if (in->peers)
		qs_peers_send(in->peers, peer, &pm);
}

static void
item_free(struct ingest_item *it)
{
	msg_unref(it->ref);
	free(it);
}

static void
pause_reading(struct qs_ingest *in, int pause)
{
	if (in->reading_paused == pause || in->draining)
		return;
	in->reading_paused = pause;
	if (in->peers)
		qs_peers_set_reading(in->peers, !pause);
	qs_log_debug("ingest_backpressure", "reading=%s", pause ? "paused" : "resumed");
}

/* Refuse a batch that was admitted but never reached the disk. */
static void
fail_item(struct qs_ingest *in, struct ingest_item *it, int err)
{
	int reason = qs_nack_reason_from_error(err);

	if (it->admitted)
		qs_index_write_done(in->index, it->author, &it->w.info, 0);
	send_nack(in, it->author, &it->w.info, reason, qs_strerror(err));
	item_free(it);
}

/* Hand items to the writer in arrival order; park what does not fit. */
static void
flush_waiting(struct qs_ingest *in)
{
	while (in->wait_head) {
		struct ingest_item *it = in->wait_head;
		int rc = qs_writer_submit(in->writer, &it->w);

		if (rc == QS_EQUEUEFULL) {
			pause_reading(in, 1);
			return;
		}
		in->wait_head = it->next;
		if (!in->wait_head)
			in->wait_tail = &in->wait_head;
		if (rc)
			fail_item(in, it, rc);
	}
	pause_reading(in, 0);
}

static void
enqueue(struct qs_ingest *in, struct ingest_item *it)
{
	it->next = NULL;
	*in->wait_tail = it;
	in->wait_tail = &it->next;
	flush_waiting(in);
}

static int
storage_refusal(const struct qs_ingest *in)
{
	if (!in->writer)
		return QUORUMSTORE__V1__NACK_REASON__NACK_REASON_SHUTTING_DOWN;
	switch (in->state) {
	case QS_STORAGE_FULL:
		return QUORUMSTORE__V1__NACK_REASON__NACK_REASON_STORAGE_FULL;
	case QS_STORAGE_FAILED:
		return QUORUMSTORE__V1__NACK_REASON__NACK_REASON_STORAGE_FAILED;
	default:
		return 0;
	}
}

/*
 * A storage error seen on the loop: no space is a degraded state that ends
 * when space returns (the database is reopened, RocksDB cannot resume);
 * anything else is fail-stop: the daemon refuses everything and exits, and
 * a restart re-reads what is really on disk.
 */
static void
storage_error(struct qs_ingest *in, int rc, const char *what)
{
	char reason[256];

	if (in->state == QS_STORAGE_FAILED)
		return;
	if (rc == QS_ENOSPACE) {
		in->needs_reopen = 1;
		snprintf(reason, sizeof(reason), "storage full: %s failed with no space", what);
		set_state(in, QS_STORAGE_FULL, reason);
		return;
	}
	snprintf(reason, sizeof(reason), "%s: %s",
	         rc == QS_ECORRUPT || rc == QS_EBADDIGEST ? "storage corruption"
	                                                  : "storage I/O error",
	         what);
	set_state(in, QS_STORAGE_FAILED, reason);
}

/* Refuse writes before RocksDB has to fail: below the watermark the disk is
 * full for qsd's purposes (GC and compaction need room too). */
static void
check_space(struct qs_ingest *in)
{
	uint64_t free_bytes;
	char reason[256];

	if (qs_store_free_bytes(in->cfg->data_dir, &free_bytes) != 0)
		return;
	in->free_bytes = free_bytes;
	in->since_statvfs = 0;
	if (free_bytes < in->cfg->free_space_watermark_bytes + in->cfg->db_write_buffer_bytes)
		in->full_seen_us = qs_clock_mono_us();
	if (in->state == QS_STORAGE_OK && free_bytes < in->cfg->free_space_watermark_bytes) {
		snprintf(reason, sizeof(reason),
		         "storage full: %" PRIu64 " bytes free, below the watermark of %" PRIu64,
		         free_bytes, in->cfg->free_space_watermark_bytes);
		set_state(in, QS_STORAGE_FULL, reason);
	}
}

/*
 * Before admitting a message of `bytes`: check the free space again once the
 * bytes admitted since the last statvfs could have used half the room it
 * left above the watermark and a memtable. Far from full that is seldom
 * (a statvfs per message was a system call per message at full rate);
 * near it, every message. What RocksDB's flushes and compactions write
 * meanwhile the disk poll sees (QS_DISK_POLL_MS), and a memtable's worth
 * of it is in the margin.
 */
static void
check_space_for(struct qs_ingest *in, uint64_t bytes)
{
	uint64_t floor = in->cfg->free_space_watermark_bytes + in->cfg->db_write_buffer_bytes;
	uint64_t room = in->free_bytes > floor ? in->free_bytes - floor : 0;

	in->since_statvfs += bytes;
	if (in->since_statvfs >= room / 2)
		check_space(in);
}

static void
on_reopened(struct qs_ingest *in, struct qs_read_item *r)
{
	in->reopening = 0;
	if (r->result) {
		qs_log_crit("storage_reopen_failed", "error=\"%s\"",
		            r->error ? r->error : qs_strerror(r->result));
		storage_error(in, r->result == QS_ENOSPACE ? QS_EIO : r->result,
		              "reopening the database after a full disk");
	} else {
		/* A new database instance counts its background errors anew. */
		in->needs_reopen = 0;
		in->bg_errors_seen = 0;
		set_state(in, QS_STORAGE_OK,
		          "free space is back above the watermark; database reopened");
	}
	qs_read_item_release(r);
}

/* Leave the full state once space is back: directly if RocksDB never failed,
 * else after reopening the database on the reader thread, which runs only
 * once the writer has nothing queued or in flight. */
static void
try_resume(struct qs_ingest *in)
{
	uint64_t want = in->cfg->free_space_watermark_bytes +
	                QS_RESUME_MARGIN(in->cfg->free_space_watermark_bytes);

	if (in->state != QS_STORAGE_FULL || in->reopening || in->free_bytes < want || !in->writer)
		return;
	if (!in->needs_reopen) {
		set_state(in, QS_STORAGE_OK, "free space is back above the watermark");
		return;
	}
	if (qs_writer_queue_bytes(in->writer) != 0)
		return;
	memset(&in->reopen_item, 0, sizeof(in->reopen_item));
	in->reopen_item.kind = QS_READ_REOPEN;
	if (qs_reader_submit(in->reader, &in->reopen_item) == 0) {
		in->reopening = 1;
		qs_log_notice("storage_reopening", "free_bytes=%" PRIu64, in->free_bytes);
	}
}

/* RocksDB's failed flushes and compactions show only in this counter (the C
 * API gives no message). On a disk that is full, or nearly, they are taken
 * for ENOSPC and end with a reopen once space returns; otherwise they are
 * fail-stop. */
static void
check_background_errors(struct qs_ingest *in)
{
	uint64_t n, full_us;

	/* Counted even after a fail-stop began, so that the metric and the
	 * journal show every failure. */
	if (in->reopening || !in->reader || qs_store_background_errors(in->opt.store, &n) != 0 ||
	    n <= in->bg_errors_seen)
		return;
	qs_metric_add(in->m_persist_failures, FAIL_BACKGROUND, n - in->bg_errors_seen);
	in->bg_errors_seen = n;
	qs_log_crit("storage_background_error", "count=%" PRIu64 " free_bytes=%" PRIu64, n,
	            in->free_bytes);
	if (in->state == QS_STORAGE_FAILED)
		return;
	/*
	 * The C API gives no message, so the cause is inferred. A flush needs
	 * up to a write buffer of room, a compaction much more, and RocksDB
	 * deletes a failed compaction's output at once: the space may be back
	 * by the time the count is polled (or an operator freed some). So a
	 * background error within QS_FULL_MEMORY_US of the disk being full or
	 * nearly full is taken for ENOSPC (a reopen follows once space is back;
	 * should the cause be something else, the reopen or the next write
	 * fails and that is a fail-stop); any other is an I/O error.
	 */
	full_us = atomic_load_explicit(&in->nospace_seen_us, memory_order_relaxed);
	if (in->full_seen_us > full_us)
		full_us = in->full_seen_us;
	storage_error(in,
	              in->state == QS_STORAGE_FULL ||
	                      (full_us && qs_clock_mono_us() - full_us < QS_FULL_MEMORY_US)
	                  ? QS_ENOSPACE
	                  : QS_EIO,
	              "a RocksDB flush or compaction");
}

static void
on_disk_poll(evutil_socket_t fd, short what, void *arg)
{
	struct qs_ingest *in = arg;

	check_space(in);
	check_background_errors(in);
	try_resume(in);
}

static void
nack_unvalidated(struct qs_ingest *in, int peer, const Quorumstore__V1__Batch *b, int reason,
                 const char *detail)
{
	struct qs_batch_info info = {0};

	/* Name the digest and batch id the sender used, when they are usable. */
	if (b->info) {
		info.batch_id = b->info->batch_id;
		if (b->info->digest.len == QS_DIGEST_BYTES)
			memcpy(info.digest, b->info->digest.data, QS_DIGEST_BYTES);
	}
	send_nack(in, peer, &info, reason, detail);
}

static void
on_batch_msg(struct qs_ingest *in, int peer, Quorumstore__V1__PeerMessage *msg)
{
	Quorumstore__V1__BatchMsg *bm = msg->batch_msg;
	const struct qs_limits *lim = &in->cfg->limits;
	struct qs_validate_ctx ctx = {
	    .chain_id = in->cfg->chain_id,
	    .epoch = in->cfg->epoch,
	    .now_us = qs_clock_wall_us(),
	    .max_lifetime_us = in->cfg->max_batch_lifetime_us,
	    .limits = lim,
	};
	struct msg_ref *ref;
	uint64_t total = 0, t_in_us = qs_clock_mono_us();
	int64_t skew = in->peers ? qs_peers_clock_skew_us(in->peers, peer) : 0;
	/* Expirations are wall-clock times: a sender whose clock is far off ours
	 * would have its lifetime checks judged against the wrong "now". */
	int skewed = (uint64_t)(skew < 0 ? -skew : skew) > in->cfg->max_clock_skew_us;

	if (bm->n_batches > lim->msg_max_batches) {
		qs_metric_add(in->m_protocol_errors, 0, 1);
		qs_peers_close(in->peers, peer, "too_many_batches");
		qs_frame_msg_free(&msg->base);
		return;
	}
	for (size_t i = 0; i < bm->n_batches; i++)
		for (size_t t = 0; t < bm->batches[i]->n_transactions; t++)
			total += bm->batches[i]->transactions[t].len;
	if (total > lim->msg_max_bytes) {
		qs_metric_add(in->m_protocol_errors, 1, 1);
		qs_peers_close(in->peers, peer, "message_too_large");
		qs_frame_msg_free(&msg->base);
		return;
	}
	check_space_for(in, total);
	ref = calloc(1, sizeof(*ref));
	if (!ref) {
		qs_frame_msg_free(&msg->base);
		return;
	}
	ref->msg = msg;
	ref->refs = 1;
	qs_metric_add(in->m_received, 0, bm->n_batches);
	for (size_t i = 0; i < bm->n_batches; i++) {
		const Quorumstore__V1__Batch *b = bm->batches[i];
		struct ingest_item *it;
		const char *detail = NULL;
		enum qs_admit admit;
		int reason;

		reason = storage_refusal(in);
		if (!reason && skewed)
			reason = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_CLOCK_SKEW;
		if (reason) {
			nack_unvalidated(in, peer, b, reason, NULL);
			continue;
		}
		it = calloc(1, sizeof(*it));
		if (!it) {
			nack_unvalidated(in, peer, b,
			                 QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVERLOADED,
			                 "out of memory");
			continue;
		}
		reason = qs_batch_validate(&ctx, in->cfg->validators[peer].signing_key, b,
		                           &it->w.info, &detail);
		if (reason) {
			nack_unvalidated(in, peer, b, reason, detail);
			free(it);
			continue;
		}
		admit = qs_index_admit(in->index, peer, &it->w.info, &reason);
		if (admit == QS_ADMIT_REJECT) {
			send_nack(in, peer, &it->w.info, reason, NULL);
			free(it);
			continue;
		}
		it->in = in;
		it->author = peer;
		it->admitted = admit == QS_ADMIT_WRITE;
		it->w.kind = admit == QS_ADMIT_WRITE ? QS_WRITE_BATCH : QS_WRITE_SIGN;
		it->w.txns = b->transactions;
		it->txns = b->transactions;
		it->w.n_txns = b->n_transactions;
		it->w.owner = it;
		it->ref = ref;
		it->t_in_us = t_in_us;
		ref->refs++;
		enqueue(in, it);
	}
	msg_unref(ref);
}

/*
 * Put a durable batch's payload in the cache, taking its transactions'
 * blocks out of their decoded message: a copy of every payload on the event
 * loop was the largest share of its memory traffic. A message decoded into
 * an arena is copied from, as before.
 */
static void
cache_take(struct qs_ingest *in, const struct qs_batch_info *info, ProtobufCBinaryData *txns,
           size_t n_txns)
{
	if (!qs_frame_bytes_own_blocks(txns, n_txns)) {
		(void)qs_cache_put(in->cache, info, txns, n_txns);
		return;
	}
	(void)qs_cache_put_taken(in->cache, info, txns, n_txns, qs_frame_bytes_free);
	qs_frame_bytes_disown(txns, n_txns);
}

static void
on_write_done(void *arg, struct qs_write_item *w)
{
	struct ingest_item *it = w->owner;
	struct qs_ingest *in = it->in;

	if (w->result == 0) {
		if (it->admitted)
			qs_index_write_done(in->index, it->author, &w->info, 1);
		if (w->kind == QS_WRITE_BATCH)
			qs_metric_add(in->m_persisted, 0, 1);
		/* Durable now: GetBatch and inline payloads may use it. A full
		 * cache or no memory only means a later read from disk. The
		 * cache takes the transactions out of the decoded message
		 * (nothing reads them there after this) instead of copying. */
		cache_take(in, &w->info, it->txns, w->n_txns);
		send_signed(in, it->author, w);
		qs_metric_observe(in->m_ack_seconds, 0,
		                  (double)(qs_clock_mono_us() - it->t_in_us) / 1e6);
		item_free(it);
	} else {
		/* A failed flush or compaction makes every later write fail:
		 * name the first cause before the symptom. */
		check_background_errors(in);
		if (w->result != QS_ECRYPTO)
			storage_error(in, w->result, "a synced write");
		fail_item(in, it, w->result);
	}
	if (in->wait_head)
		flush_waiting(in);
	else if (in->state == QS_STORAGE_FULL)
		try_resume(in);
}

/* Writer thread: metrics and the journal line for a failed group. */
static void
on_group_done(void *arg, size_t items, uint64_t bytes, double seconds, int result,
              const char *rocksdb_err)
{
	struct qs_ingest *in = arg;
	int reason;

	atomic_fetch_add_explicit(&in->groups_done, 1, memory_order_relaxed);
	qs_metric_observe(in->m_group_size, 0, (double)items);
	qs_metric_observe(in->m_persist_seconds, 0, seconds);
	if (result == 0)
		return;
	switch (result) {
	case QS_ENOSPACE:
		atomic_store_explicit(&in->nospace_seen_us, qs_clock_mono_us(),
		                      memory_order_relaxed);
		reason = FAIL_NO_SPACE;
		break;
	case QS_EIO:
		reason = FAIL_IO;
		break;
	case QS_ECORRUPT:
		reason = FAIL_CORRUPTION;
		break;
	default:
		reason = FAIL_OTHER;
		break;
	}
	qs_metric_add(in->m_persist_failures, (size_t)reason, items);
	if (qs_clock_mono_us() / 1000000 < in->fail_log_s + QS_FAIL_LOG_INTERVAL_S &&
	    in->fail_log_s) {
		in->fail_log_suppressed++;
		return;
	}
	in->fail_log_s = qs_clock_mono_us() / 1000000;
	qs_log_crit("persist_failed",
	            "reason=%s batches=%zu bytes=%" PRIu64
	            " error=\"%s\" not_logged_before=%" PRIu64
	            " action=\"nack the group; nothing signed\"",
	            fail_names[reason], items, bytes,
	            rocksdb_err ? rocksdb_err : qs_strerror(result), in->fail_log_suppressed);
	in->fail_log_suppressed = 0;
}

static int
take_token(struct qs_ingest *in, int peer)
{
	struct bucket *b = &in->buckets[peer];
	uint64_t now = qs_clock_mono_us();

	b->tokens += (double)(now - b->last_us) * QS_FETCH_RATE_PER_S / 1e6;
	if (b->tokens > QS_FETCH_BURST)
		b->tokens = QS_FETCH_BURST;
	b->last_us = now;
	if (b->tokens < 1)
		return 0;
	b->tokens -= 1;
	return 1;
}

static void
send_response(struct qs_ingest *in, int peer, uint64_t request_id, const uint8_t *digest,
              const struct qs_read_item *r)
{
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchResponse resp = QUORUMSTORE__V1__BATCH_RESPONSE__INIT;
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__BatchNotFound nf = QUORUMSTORE__V1__BATCH_NOT_FOUND__INIT;
	Quorumstore__V1__BatchInfo info;

	resp.request_id = request_id;
	if (r) {
		qs_batch_info_to_pb(&r->info, &info);
		batch.info = &info;
		batch.n_transactions = r->n_txns;
		batch.transactions = r->txns;
		resp.result_case = QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH;
		resp.batch = &batch;
	} else {
		nf.digest.data = (uint8_t *)digest;
		nf.digest.len = QS_DIGEST_BYTES;
		resp.result_case = QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND;
		resp.not_found = &nf;
	}
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE;
	pm.batch_response = &resp;
	if (in->peers)
		qs_peers_send(in->peers, peer, &pm);
}

/* A read of a batch the index holds as durable failed: the policy, the
 * metric and the journal line. Returns the qsd_batch_requests_total label. */
static int
read_failed(struct qs_ingest *in, const struct qs_read_item *r)
{
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(r->info.digest, QS_DIGEST_BYTES, hex);
	if (r->result == QS_EBADDIGEST || r->result == QS_EDECODE || r->result == QS_ECORRUPT) {
		/* The disk returned bytes that are not what was acked. */
		qs_metric_add(in->m_persist_failures, FAIL_CORRUPTION, 1);
		qs_log_crit("stored_batch_corrupt", "digest=%s error=\"%s\"", hex,
		            qs_strerror(r->result));
		storage_error(in, QS_ECORRUPT, "a stored batch does not match its digest");
		return REQ_CORRUPT;
	}
	if (r->result == QS_ENOTFOUND) {
		/* The index said durable and the disk has nothing: lost data. */
		qs_metric_add(in->m_persist_failures, FAIL_CORRUPTION, 1);
		qs_log_crit("stored_batch_missing", "digest=%s", hex);
		storage_error(in, QS_ECORRUPT, "a batch acked as durable is missing");
		return REQ_CORRUPT;
	}
	qs_log_crit("batch_read_failed", "digest=%s error=\"%s\"", hex, qs_strerror(r->result));
	storage_error(in, r->result, "a read");
	return REQ_ERROR;
}

static void
on_read_done(void *arg, struct qs_read_item *r)
{
	struct serve_item *s = (struct serve_item *)r;
	struct qs_ingest *in = arg;

	if (r->kind == QS_READ_REOPEN) {
		on_reopened(in, r);
		return;
	}
	if (r->kind == QS_READ_DROP_FILES) {
		in->gc_dropping = 0;
		if (r->result)
			qs_log_warn("gc_drop_files_failed", "error=\"%s\"", qs_strerror(r->result));
		return;
	}
	if (r->result == QS_ENOTFOUND && r->info.expiration_us <= in->gc_cutoff_us) {
		/* Deleted by GC while the read was queued: gone, not lost. */
		if (s->done)
			s->done(s->arg, QS_ENOTFOUND, r);
		else
			send_response(in, s->peer, s->request_id, r->info.digest, NULL);
		qs_read_item_release(r);
		free(s);
		return;
	}
	if (s->done) {
		if (r->result == 0)
			(void)qs_cache_put(in->cache, &r->info, r->txns, r->n_txns);
		else
			read_failed(in, r);
		s->done(s->arg, r->result, r);
		qs_read_item_release(r);
		free(s);
		return;
	}

	if (r->result == 0) {
		qs_metric_add(in->m_requests, REQ_SERVED, 1);
		send_response(in, s->peer, s->request_id, r->info.digest, r);
	} else {
		qs_metric_add(in->m_requests, read_failed(in, r), 1);
		send_response(in, s->peer, s->request_id, r->info.digest, NULL);
	}
	qs_read_item_release(r);
	free(s);
}

static void
on_batch_request(struct qs_ingest *in, int peer, const Quorumstore__V1__BatchRequest *req)
{
	struct serve_item *s;
	struct qs_batch_info info;

	if (req->digest.len != QS_DIGEST_BYTES) {
		qs_metric_add(in->m_protocol_errors, 2, 1);
		qs_peers_close(in->peers, peer, "malformed_request");
		return;
	}
	if (!in->reader || in->state == QS_STORAGE_FAILED)
		return;
	if (!take_token(in, peer)) {
		qs_metric_add(in->m_requests, REQ_RATE_LIMITED, 1);
		return;
	}
	if (qs_index_lookup(in->index, req->digest.data, &info) != 0) {
		qs_metric_add(in->m_requests, REQ_NOT_FOUND, 1);
		send_response(in, peer, req->request_id, req->digest.data, NULL);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		qs_metric_add(in->m_requests, REQ_OVERLOADED, 1);
		return;
	}
	s->in = in;
	s->peer = peer;
	s->request_id = req->request_id;
	s->r.info = info;
	if (qs_reader_submit(in->reader, &s->r) != 0) {
		qs_metric_add(in->m_requests, REQ_OVERLOADED, 1);
		free(s);
	}
}

void
qs_ingest_on_message(void *arg, int peer, Quorumstore__V1__PeerMessage *msg)
{
	struct qs_ingest *in = arg;

	switch (msg->msg_case) {
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_MSG:
		on_batch_msg(in, peer, msg);
		return; /* ownership passed */
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST:
		on_batch_request(in, peer, msg->batch_request);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG:
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK:
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG:
		/* The proof stage's: answers to our own batches, and proofs. */
		if (in->proof_handler) {
			in->proof_handler(in->proof_arg, peer, msg);
			return; /* ownership passed */
		}
		qs_metric_add(in->m_ignored,
		              msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG
		                  ? IGN_PROOF
		              : msg->msg_case == QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK
		                  ? IGN_NACK
		                  : IGN_SIGNED_INFO,
		              1);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE:
		if (in->response_handler) {
			in->response_handler(in->fetch_arg, peer, msg);
			return; /* ownership passed */
		}
		qs_metric_add(in->m_ignored, IGN_RESPONSE, 1);
		break;
	default:
		qs_metric_add(in->m_protocol_errors, 3, 1);
		qs_peers_close(in->peers, peer, "unexpected_message");
		break;
	}
	qs_frame_msg_free(&msg->base);
}

void
qs_ingest_on_state(void *arg, int peer, int connected)
{
	struct qs_ingest *in = arg;

	if (in->state_handler)
		in->state_handler(in->proof_arg, peer, connected);
	if (in->fetch_state_handler)
		in->fetch_state_handler(in->fetch_arg, peer, connected);
}

void
qs_ingest_set_peers(struct qs_ingest *in, struct qs_peers *peers)
{
	in->peers = peers;
	if (peers && in->reading_paused)
		qs_peers_set_reading(peers, 0);
}

size_t
qs_ingest_batches(const struct qs_ingest *in)
{
	return qs_index_count(in->index);
}

/*
 * The GC cutoff: a payload is kept until a committed block's timestamp
 * passes its expiration by the GC buffer (a proposed batch may still be
 * executed), or the local clock passes it by the stall buffer (a stalled
 * consensus cannot fill the disk), and never beyond the local clock.
 */
static uint64_t
gc_cutoff(const struct qs_ingest *in, uint64_t now_us)
{
	uint64_t by_commit =
	    in->committed_us > in->cfg->gc_buffer_us ? in->committed_us - in->cfg->gc_buffer_us : 0;
	uint64_t by_clock =
	    now_us > in->cfg->gc_stall_buffer_us ? now_us - in->cfg->gc_stall_buffer_us : 0;
	uint64_t cutoff = by_commit > by_clock ? by_commit : by_clock;

	return cutoff < now_us ? cutoff : now_us;
}

static void
on_gc_written(struct qs_write_item *w)
{
	struct qs_ingest *in = w->owner;
	uint64_t now = qs_clock_mono_us();

	in->gc_writing = 0;
	if (w->result) {
		check_background_errors(in);
		storage_error(in, w->result, "the GC range delete");
		return;
	}
	qs_metric_add(in->m_gc_runs, 0, 1);
	/* Range tombstones hide the data; dropping the files whose keys all lie
	 * below the cutoff gives the space back without a compaction. */
	if (in->reader && !in->gc_dropping && now - in->gc_drop_us >= QS_DROP_FILES_INTERVAL_US) {
		memset(&in->drop_item, 0, sizeof(in->drop_item));
		in->drop_item.kind = QS_READ_DROP_FILES;
		in->drop_item.info.expiration_us = in->gc_cutoff_us + 1;
		if (qs_reader_submit(in->reader, &in->drop_item) == 0) {
			in->gc_dropping = 1;
			in->gc_drop_us = now;
		}
	}
}

/* Forget what passed the cutoff, then delete it on disk with one range
 * delete per family: never a scan of payloads. */
static void
gc_run(struct qs_ingest *in)
{
	uint64_t cutoff = gc_cutoff(in, qs_clock_wall_us());
	size_t n;

	if (in->gc_writing || !in->writer || storage_refusal(in) || cutoff <= in->gc_cutoff_us ||
	    qs_index_next_expiration(in->index) > cutoff)
		return;
	memset(in->gc_begin, 0, sizeof(in->gc_begin));
	qs_put_be64(in->gc_end, cutoff + 1);
	memset(&in->gc_item, 0, sizeof(in->gc_item));
	in->gc_item.kind = QS_WRITE_PUT;
	for (int i = 0; i < 3; i++)
		in->gc_item.extra[i] = (struct qs_write_extra){i == 0   ? QS_CF_BATCHES
		                                               : i == 1 ? QS_CF_INFOS
		                                                        : QS_CF_PROOFS,
		                                               in->gc_begin,
		                                               sizeof(in->gc_begin),
		                                               in->gc_end,
		                                               sizeof(in->gc_end),
		                                               QS_WRITE_OP_DELETE_RANGE};
	in->gc_item.n_extra = 3;
	in->gc_item.owner = in;
	in->gc_item.complete = on_gc_written;
	/* Room first: once the index forgot them, nothing would ask again
	 * until another batch expires. */
	if (!qs_writer_has_room(in->writer, qs_write_item_bytes(&in->gc_item)))
		return;
	n = qs_index_expire(in->index, cutoff);
	qs_cache_expire(in->cache, cutoff);
	in->gc_cutoff_us = cutoff;
	qs_metric_add(in->m_gc_batches, 0, n);
	if (qs_writer_submit(in->writer, &in->gc_item) == 0)
		in->gc_writing = 1;

	qs_log_debug("gc", "cutoff_us=%" PRIu64 " batches=%zu committed_us=%" PRIu64, cutoff, n,
	             in->committed_us);
}

static void
on_expire(evutil_socket_t fd, short what, void *arg)
{
	gc_run(arg);
}

static double
queue_bytes_fn(void *arg)
{
	struct qs_ingest *in = arg;

	return in->writer ? (double)qs_writer_queue_bytes(in->writer) : 0;
}

static double
free_bytes_fn(void *arg)
{
	return (double)((struct qs_ingest *)arg)->free_bytes;
}

static double
stored_fn(void *arg)
{
	return (double)qs_index_count(((struct qs_ingest *)arg)->index);
}

static double
stored_bytes_fn(void *arg)
{
	return (double)qs_index_bytes(((struct qs_ingest *)arg)->index);
}

static double
cache_bytes_fn(void *arg)
{
	struct qs_ingest *in = arg;

	return in->cache ? (double)qs_cache_bytes(in->cache) : 0;
}

static double
cache_entries_fn(void *arg)
{
	struct qs_ingest *in = arg;

	return in->cache ? (double)qs_cache_count(in->cache) : 0;
}

/* RocksDB's own figures, read at scrape time on the loop; never while the
 * reader thread reopens the database (the loop sets `reopening` before it
 * hands the reopen over, and clears it in the completion). */
static const struct {
	const char *metric, *help, *property;
} rocksdb_gauges[] = {
    {"qsd_rocksdb_pending_compaction_bytes",
     "Bytes RocksDB estimates compaction must rewrite (rocksdb.estimate-pending-compaction-bytes).",
     "rocksdb.estimate-pending-compaction-bytes"},
    {"qsd_rocksdb_memtable_bytes",
     "Bytes in RocksDB's memtables (rocksdb.cur-size-all-mem-tables).",
     "rocksdb.cur-size-all-mem-tables"},
    {"qsd_rocksdb_write_stopped", "1 while RocksDB stops writes (rocksdb.is-write-stopped).",
     "rocksdb.is-write-stopped"},
    {"qsd_rocksdb_delayed_write_rate_bytes",
     "Write rate RocksDB throttles to while it delays writes, 0 when it does not "
     "(rocksdb.actual-delayed-write-rate).",
     "rocksdb.actual-delayed-write-rate"},
    {"qsd_rocksdb_live_sst_bytes", "Bytes of live SST files (rocksdb.live-sst-files-size).",
     "rocksdb.live-sst-files-size"},
    {"qsd_rocksdb_blob_bytes",
     "Bytes of blob files, where payloads are kept (rocksdb.total-blob-file-size).",
     "rocksdb.total-blob-file-size"},
};
_Static_assert(sizeof(rocksdb_gauges) / sizeof(rocksdb_gauges[0]) == QS_ROCKSDB_GAUGES,
               "one slot per RocksDB gauge");

static double
rocksdb_gauge_fn(void *arg)
{
	struct rocksdb_gauge *g = arg;
	uint64_t v;

	if (!g->in->reopening &&
	    qs_store_property_u64(g->in->opt.store, rocksdb_gauges[g->i].property, &v) == 0)
		g->last = v;
	return (double)g->last;
}

static int
register_metrics(struct qs_ingest *in)
{
	static const double group_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
	static const double seconds_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	                                        0.01,   0.025,   0.05,   0.1,   0.25,   1};
	static const char *const proto_errs[] = {"too_many_batches", "message_too_large",
	                                         "malformed_request", "unexpected_message"};
	struct qs_metrics *m = in->opt.metrics;

#define N(a) (sizeof(a) / sizeof((a)[0]))
	in->m_received = qs_metrics_counter(m, "qsd_batches_received_total",
	                                    "Batches received from peers.", NULL, NULL, 0);
	in->m_persisted = qs_metrics_counter(
	    m, "qsd_batches_persisted_total",
	    "Batches written to disk with sync and acknowledged by RocksDB.", NULL, NULL, 0);
	in->m_signed =
	    qs_metrics_counter(m, "qsd_batches_signed_total",
	                       "SignedBatchInfo sent, each after a durable write.", NULL, NULL, 0);
	in->m_rejected = qs_metrics_counter(m, "qsd_batches_rejected_total",
	                                    "Batches answered with a BatchNack, by reason.",
	                                    "reason", qs_nack_reason_names, QS_NACK_REASON_COUNT);
	in->m_persist_failures = qs_metrics_counter(
	    m, "qsd_persist_failures_total",
	    "Batches whose write failed or whose stored bytes were found corrupt, by reason.",
	    "reason", fail_names, FAIL_COUNT);
	in->m_group_size =
	    qs_metrics_histogram(m, "qsd_persist_group_size", "Batches per synced WriteBatch.",
	                         group_bounds, N(group_bounds), NULL, NULL, 0);
	in->m_persist_seconds =
	    qs_metrics_histogram(m, "qsd_persist_seconds", "Time to write and sync one group.",
	                         seconds_bounds, N(seconds_bounds), NULL, NULL, 0);
	in->m_ack_seconds = qs_metrics_histogram(
	    m, "qsd_batch_ack_seconds",
	    "From a peer's batch message handed to ingest to its signed ack queued: validation, "
	    "the writer queue, the synced write, signing, the return to the event loop.",
	    seconds_bounds, N(seconds_bounds), NULL, NULL, 0);
	in->m_requests = qs_metrics_counter(m, "qsd_batch_requests_total",
	                                    "BatchRequest from peers, by outcome.", "result",
	                                    req_names, REQ_COUNT);
	in->m_gc_runs = qs_metrics_counter(
	    m, "qsd_gc_runs_total", "Range deletes of payloads past the GC cutoff.", NULL, NULL, 0);
	in->m_gc_batches =
	    qs_metrics_counter(m, "qsd_gc_batches_total", "Batches deleted by GC.", NULL, NULL, 0);
	in->m_ignored = qs_metrics_counter(m, "qsd_peer_messages_ignored_total",
	                                   "Peer messages this node does not act on yet, by type.",
	                                   "type", ign_names, IGN_COUNT);
	in->m_protocol_errors =
	    qs_metrics_counter(m, "qsd_peer_protocol_errors_total",
	                       "Connections closed for a message breaking the protocol, by reason.",
	                       "reason", proto_errs, N(proto_errs));
#undef N
	for (size_t i = 0; i < QS_ROCKSDB_GAUGES; i++) {
		in->rocksdb_gauges[i] = (struct rocksdb_gauge){in, i, 0};
		if (!qs_metrics_gauge_fn(m, rocksdb_gauges[i].metric, rocksdb_gauges[i].help,
		                         rocksdb_gauge_fn, &in->rocksdb_gauges[i]))
			return QS_EBASE;
	}
	if (!in->m_received || !in->m_persisted || !in->m_signed || !in->m_rejected ||
	    !in->m_persist_failures || !in->m_group_size || !in->m_persist_seconds ||
	    !in->m_ack_seconds || !in->m_requests || !in->m_ignored || !in->m_protocol_errors ||
	    !in->m_gc_runs || !in->m_gc_batches ||
	    !qs_metrics_gauge_fn(m, "qsd_submit_queue_bytes",
	                         "Bytes queued for the writer or being written.", queue_bytes_fn,
	                         in) ||
	    !qs_metrics_gauge_fn(m, "qsd_disk_free_bytes",
	                         "Bytes free for qsd on the data directory's filesystem.",
	                         free_bytes_fn, in) ||
	    !qs_metrics_gauge_fn(m, "qsd_batches_stored", "Durable batches in the index.",
	                         stored_fn, in) ||
	    !qs_metrics_gauge_fn(m, "qsd_batches_stored_bytes",
	                         "Payload bytes of the durable batches in the index.",
	                         stored_bytes_fn, in) ||
	    !qs_metrics_gauge_fn(m, "qsd_payload_cache_bytes",
	                         "Bytes charged to the payload cache (at most "
	                         "serving.payload_cache_bytes).",
	                         cache_bytes_fn, in) ||
	    !qs_metrics_gauge_fn(m, "qsd_payload_cache_entries",
	                         "Batches whose payload the cache holds.", cache_entries_fn, in))
		return QS_EBASE;
	return 0;
}

struct recover_ctx {
	struct qs_ingest *in;
	uint64_t kept_bytes;
};

static int
recover_keep(void *arg, const struct qs_batch_info *info)
{
	struct recover_ctx *rc = arg;
	struct qs_ingest *in = rc->in;
	int author = qs_config_find_signing_key(in->cfg, info->author);

	if (author < 0 || info->epoch != in->cfg->epoch)
		return 1;
	if (author == in->opt.self &&
	    (!in->have_own_batch || info->batch_id > in->max_own_batch_id)) {
		in->max_own_batch_id = info->batch_id;
		in->have_own_batch = 1;
	}
	if (qs_index_add_durable(in->index, author, info) == -ENOMEM)
		return -ENOMEM; /* never delete a durable batch for want of memory */
	rc->kept_bytes += info->num_bytes;
	return 0;
}

int
qs_ingest_start(const struct qs_ingest_options *opt, struct qs_ingest **out, char *err,
                size_t errlen)
{
	struct qs_ingest *in = calloc(1, sizeof(*in));
	const struct qs_config *cfg = opt->cfg;
	struct qs_recovery_stats stats;
	struct recover_ctx rctx = {.in = in};
	struct timeval tv = {0, QS_EXPIRE_INTERVAL_MS * 1000};
	struct timeval disk_tv = {0, QS_DISK_POLL_MS * 1000};
	uint64_t seed = 0, t0;
	int rc;

	if (!in)
		return -ENOMEM;
	in->opt = *opt;
	in->cfg = cfg;
	in->state = QS_STORAGE_RECOVERING;
	in->wait_tail = &in->wait_head;
	in->buckets = calloc(cfg->n_validators, sizeof(*in->buckets));
	in->sigmemo = qs_sigmemo_new(QS_INGEST_SIGMEMO_SLOTS);
	if (!in->buckets || !in->sigmemo) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cfg->n_validators; i++) {
		in->buckets[i].tokens = QS_FETCH_BURST;
		in->buckets[i].last_us = qs_clock_mono_us();
	}
	rc = register_metrics(in);
	if (rc) {
		snprintf(err, errlen, "cannot register ingest metrics");
		goto out;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = qs_clock_mono_us();
	rc = qs_index_new(cfg->n_validators, &cfg->quotas, seed, &in->index);
	if (rc) {
		snprintf(err, errlen, "cannot create the index: %s", qs_strerror(rc));
		goto out;
	}
	rc = qs_cache_new(cfg->payload_cache_bytes, seed ^ 0x9e3779b97f4a7c15u, &in->cache);
	if (rc) {
		snprintf(err, errlen, "cannot create the payload cache: %s", qs_strerror(rc));
		goto out;
	}
	{
		uint8_t v[8];

		rc = qs_store_meta_get(opt->store, QS_META_COMMITTED, v, sizeof(v));
		if (rc == 8) {
			in->committed_us = qs_get_be64(v);
		} else if (rc != QS_ENOTFOUND) {
			snprintf(err, errlen, "cannot read %s: %s", QS_META_COMMITTED,
			         rc < 0 ? qs_strerror(rc) : "wrong size");
			rc = rc < 0 ? rc : QS_ECORRUPT;
			goto out;
		}
	}
	/* What passed the GC cutoff while qsd was down goes now; batches that
	 * expired but may still be executed stay. */
	in->gc_cutoff_us = gc_cutoff(in, qs_clock_wall_us());
	t0 = qs_clock_mono_us();
	rc = qs_store_recover(opt->store, in->gc_cutoff_us, cfg->chain_id, recover_keep, &rctx,
	                      &stats, err, errlen);
	if (rc)
		goto out;
	qs_log_info("recovered",
	            "batches=%" PRIu64 " bytes=%" PRIu64 " dropped=%" PRIu64
	            " expired_range_deleted=%d gc_cutoff_us=%" PRIu64 " ms=%" PRIu64,
	            stats.kept, rctx.kept_bytes, stats.dropped, stats.expired_deleted,
	            in->gc_cutoff_us, (qs_clock_mono_us() - t0) / 1000);

	{
		struct qs_writer_options wo = {
		    .store = opt->store,
		    .base = opt->base,
		    .signing_key = opt->signing_key,
		    .chain_id = cfg->chain_id,
		    .queue_max_bytes = cfg->submit_queue_bytes,
		    .group_max_items = cfg->group_max_batches,
		    .group_max_bytes = cfg->group_max_bytes,
		    .complete = on_write_done,
		    .arg = in,
		    .observer = {on_group_done, in},
		};
		struct qs_reader_options ro = {
		    .store = opt->store,
		    .base = opt->base,
		    .chain_id = cfg->chain_id,
		    /* Not the configured limit: a reload may lower it below what
		     * batches already stored hold. */
		    .max_txns = QS_LIMIT_BATCH_TXNS_MAX,
		    .queue_max_items = QS_READ_QUEUE_MAX,
		    .complete = on_read_done,
		    .arg = in,
		};

		rc = qs_writer_start(&wo, &in->writer);
		if (rc == 0)
			rc = qs_reader_start(&ro, &in->reader);
		if (rc) {
			snprintf(err, errlen, "cannot start storage threads: %s", qs_strerror(rc));
			goto out;
		}
	}
	in->expire_timer = event_new(opt->base, -1, EV_PERSIST, on_expire, in);
	in->disk_timer = event_new(opt->base, -1, EV_PERSIST, on_disk_poll, in);
	if (!in->expire_timer || event_add(in->expire_timer, &tv) != 0 || !in->disk_timer ||
	    event_add(in->disk_timer, &disk_tv) != 0) {
		rc = -ENOMEM;
		snprintf(err, errlen, "cannot add the expiry timer");
		goto out;
	}
	set_state(in, QS_STORAGE_OK, "recovered");
	check_space(in);
	*out = in;
	return 0;
out:
	qs_ingest_free(in);
	return rc;
}

void
qs_ingest_drain(struct qs_ingest *in)
{
	if (!in || in->draining)
		return;
	if (in->peers)
		qs_peers_set_reading(in->peers, 0);
	in->reading_paused = 1;
	in->draining = 1;
	/* Batches that never reached the writer are refused, not dropped. */
	while (in->wait_head) {
		struct ingest_item *it = in->wait_head;

		in->wait_head = it->next;
		fail_item(in, it, QS_ESHUTDOWN);
	}
	in->wait_tail = &in->wait_head;
	/* The writer persists and completes everything it holds; completions
	 * run here, answering each batch once. */
	qs_writer_stop(in->writer);
	in->writer = NULL;
	qs_reader_stop(in->reader);
	in->reader = NULL;
}

void
qs_ingest_free(struct qs_ingest *in)
{
	if (!in)
		return;
	qs_ingest_drain(in);
	if (in->expire_timer)
		event_free(in->expire_timer);
	if (in->disk_timer)
		event_free(in->disk_timer);
	qs_index_free(in->index);
	qs_cache_free(in->cache);
	qs_sigmemo_free(in->sigmemo);
	free(in->buckets);
	free(in);
}

void
qs_ingest_set_proof_handler(struct qs_ingest *in,
                            void (*fn)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg),
                            void (*state)(void *arg, int peer, int connected), void *arg)
{
	in->proof_handler = fn;
	in->state_handler = state;
	in->proof_arg = arg;
}

int
qs_ingest_refusal(const struct qs_ingest *in)
{
	return storage_refusal(in);
}

enum qs_storage_state
qs_ingest_state(const struct qs_ingest *in)
{
	return in->state;
}

void
qs_ingest_storage_failed(struct qs_ingest *in, int rc, const char *what)
{
	check_background_errors(in);
	storage_error(in, rc, what);
}

struct qs_index *
qs_ingest_index(struct qs_ingest *in)
{
	return in->index;
}

const struct qs_sigmemo *
qs_ingest_sigmemo(const struct qs_ingest *in)
{
	return in->sigmemo;
}

struct qs_writer *
qs_ingest_writer(struct qs_ingest *in)
{
	return in->writer;
}

int
qs_ingest_max_own_batch_id(const struct qs_ingest *in, uint64_t *id)
{
	if (!in->have_own_batch)
		return QS_ENOTFOUND;
	*id = in->max_own_batch_id;
	return 0;
}

uint64_t
qs_ingest_free_bytes(const struct qs_ingest *in)
{
	return in->free_bytes;
}

void
qs_ingest_counts(const struct qs_ingest *in, uint64_t *received, uint64_t *persisted,
                 uint64_t *signed_)
{
	*received = qs_metric_value(in->m_received, 0);
	*persisted = qs_metric_value(in->m_persisted, 0);
	*signed_ = qs_metric_value(in->m_signed, 0);
}

void
qs_ingest_note_persisted(struct qs_ingest *in)
{
	qs_metric_add(in->m_persisted, 0, 1);
}

void
qs_ingest_set_fetch_handler(struct qs_ingest *in,
                            void (*fn)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg),
                            void (*state)(void *arg, int peer, int connected), void *arg)
{
	in->response_handler = fn;
	in->fetch_state_handler = state;
	in->fetch_arg = arg;
}

struct qs_cache *
qs_ingest_cache(struct qs_ingest *in)
{
	return in->cache;
}

int
qs_ingest_read(struct qs_ingest *in, const struct qs_batch_info *info,
               void (*done)(void *arg, int result, struct qs_read_item *r), void *arg)
{
	struct serve_item *s;

	if (!in->reader)
		return QS_ESHUTDOWN;
	if (in->state == QS_STORAGE_FAILED)
		return QS_EFAILED;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->in = in;
	s->r.info = *info;
	s->done = done;
	s->arg = arg;
	if (qs_reader_submit(in->reader, &s->r) != 0) {
		free(s);
		return QS_EQUEUEFULL;
	}
	return 0;
}

static void
on_persisted(struct qs_write_item *w)
{
	struct persist_item *p = (struct persist_item *)w;
	struct qs_ingest *in = p->in;

	qs_index_write_done(in->index, p->author, &w->info, w->result == 0);
	if (w->result == 0) {
		qs_metric_add(in->m_persisted, 0, 1);
		(void)qs_cache_put(in->cache, &w->info, w->txns, w->n_txns);
	} else {
		check_background_errors(in);
		if (w->result != QS_ECRYPTO)
			storage_error(in, w->result, "a synced write of a fetched batch");
	}
	p->done(p->arg, w->result);
	free(p);
	if (in->wait_head)
		flush_waiting(in);
}

int
qs_ingest_persist(struct qs_ingest *in, const struct qs_batch_info *info,
                  const ProtobufCBinaryData *txns, size_t n_txns,
                  void (*done)(void *arg, int result), void *arg)
{
	int author = qs_config_find_signing_key(in->cfg, info->author);
	struct persist_item *p;
	int reason = 0, rc;

	if (author < 0)
		return -EINVAL;
	if (storage_refusal(in))
		return in->state == QS_STORAGE_FULL ? QS_ENOSPACE
		       : in->writer                 ? QS_EFAILED
		                                    : QS_ESHUTDOWN;
	switch (qs_index_admit(in->index, author, info, &reason)) {
	case QS_ADMIT_SIGN:
		return QS_EEXISTS;
	case QS_ADMIT_REJECT:
		return reason == QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVERLOADED ? -ENOMEM
		                                                                      : QS_ELIMIT;
	case QS_ADMIT_WRITE:
		break;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		qs_index_write_done(in->index, author, info, 0);
		return -ENOMEM;
	}
	p->in = in;
	p->author = author;
	p->done = done;
	p->arg = arg;
	p->w.kind = QS_WRITE_BATCH;
	p->w.info = *info;
	p->w.txns = txns;
	p->w.n_txns = n_txns;
	p->w.owner = p;
	p->w.complete = on_persisted;
	rc = qs_writer_submit(in->writer, &p->w);
	if (rc) {
		qs_index_write_done(in->index, author, info, 0);
		free(p);
		return rc;
	}
	return 0;
}

void
qs_ingest_note_commit(struct qs_ingest *in, uint64_t block_timestamp_us)
{
	if (block_timestamp_us > in->committed_us)
		in->committed_us = block_timestamp_us;
}

uint64_t
qs_ingest_committed_us(const struct qs_ingest *in)
{
	return in->committed_us;
}

uint64_t
qs_ingest_gc_cutoff_us(const struct qs_ingest *in)
{
	return in->gc_cutoff_us;
}

uint64_t
qs_ingest_groups_done(const struct qs_ingest *in)
{
	return atomic_load_explicit(&in->groups_done, memory_order_relaxed);
}
