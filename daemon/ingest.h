/*
 * The ingest pipeline: batches from peers are validated (core/batch.h),
 * admitted against the index and quotas (core/index.h), persisted by the
 * writer with sync, and answered: SignedBatchInfo only after the write
 * returned OK, a BatchNack naming the reason otherwise. It also serves
 * BatchRequest from the index and the reader thread.
 *
 * Runs on the event loop thread; the writer and reader threads are owned
 * here.
 */
#ifndef QS_DAEMON_INGEST_H
#define QS_DAEMON_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "config/config.h"
#include "core/sigmemo.h"
#include "daemon/metrics.h"
#include "net/peer.h"
#include "storage/store.h"

/* The storage state, as GetStatus, /healthz and qsd_storage_state show it. */
enum qs_storage_state {
	QS_STORAGE_OK,
	QS_STORAGE_FULL,
	QS_STORAGE_FAILED,
	QS_STORAGE_RECOVERING,
	QS_STORAGE_STATE_COUNT,
};

struct qs_ingest_options {
	const struct qs_config *cfg; /* borrowed; outlives the pipeline */
	int self;                    /* this node's validator index */
	struct event_base *base;
	struct qs_store *store;     /* borrowed */
	EVP_PKEY *signing_key;      /* borrowed */
	const uint8_t *signing_pub; /* 32 bytes, borrowed */
	struct qs_metrics *metrics; /* families are registered here */
	/* Called on the loop thread when the storage state changes. */
	void (*state_changed)(void *arg, enum qs_storage_state state, const char *reason);
	void *arg;
};

struct qs_ingest;

/*
 * Recover the index from the store (infos only), then start the writer and
 * reader threads. Returns 0, or a QS_E* / -errno code with one line in err.
 */
int qs_ingest_start(const struct qs_ingest_options *opt, struct qs_ingest **out, char *err,
                    size_t errlen);

/* The peer transport to answer on (set before any message; NULL detaches
 * it before it is freed). */
void qs_ingest_set_peers(struct qs_ingest *in, struct qs_peers *peers);

/* net/peer.h handlers. */
void qs_ingest_on_message(void *arg, int peer, Quorumstore__V1__PeerMessage *msg);
void qs_ingest_on_state(void *arg, int peer, int connected);

/* Durable batches in the index. */
size_t qs_ingest_batches(const struct qs_ingest *in);

/*
 * Drain: every batch already submitted is persisted and answered (or
 * NACKed), and the writer and reader threads are joined. Batches that
 * arrive afterwards are NACKed SHUTTING_DOWN. The answers are queued on the
 * peer connections; run the loop a little longer to flush them.
 */
void qs_ingest_drain(struct qs_ingest *in);

/* Drain if needed, then free. Call before the peer transport is freed.
 * NULL is fine. */
void qs_ingest_free(struct qs_ingest *in);

extern const char *const qs_storage_state_names[QS_STORAGE_STATE_COUNT];

/* For the proof stage (daemon/author.c), which shares the pipeline's index,
 * writer and storage state. */
struct qs_index;
struct qs_writer;

/* SignedBatchInfoMsg, BatchNack and ProofMsg from peers go to fn (which owns
 * the message) instead of being ignored; peer connection changes to state. */
void qs_ingest_set_proof_handler(struct qs_ingest *in,
                                 void (*fn)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg),
                                 void (*state)(void *arg, int peer, int connected), void *arg);

/* The NackReason every new write is refused with now (storage full or
 * failed, draining), or 0. */
int qs_ingest_refusal(const struct qs_ingest *in);

enum qs_storage_state qs_ingest_state(const struct qs_ingest *in);

/* A write of the proof stage failed with rc: the same policy as for batches
 * (full, or fail-stop). */
void qs_ingest_storage_failed(struct qs_ingest *in, int rc, const char *what);

/* The index and the writer (NULL once drained). */
struct qs_index *qs_ingest_index(struct qs_ingest *in);
struct qs_writer *qs_ingest_writer(struct qs_ingest *in);

/* The signatures this node sent for peers' batches lately, for the proof
 * stage to recognise in the proofs it receives (core/sigmemo.h). */
const struct qs_sigmemo *qs_ingest_sigmemo(const struct qs_ingest *in);

/* The highest batch id of this node's own found by recovery, or
 * QS_ENOTFOUND. */
int qs_ingest_max_own_batch_id(const struct qs_ingest *in, uint64_t *id);

/* Count an own batch written by the proof stage in qsd_batches_persisted_total. */
void qs_ingest_note_persisted(struct qs_ingest *in);

/* Batches received from peers, persisted, and signed (SignedBatchInfo sent),
 * since start. */
void qs_ingest_counts(const struct qs_ingest *in, uint64_t *received, uint64_t *persisted,
                      uint64_t *signed_);

/* Free bytes on the data directory's filesystem, as last measured. */
uint64_t qs_ingest_free_bytes(const struct qs_ingest *in);

/* BatchResponse messages from peers go to fn (which owns the message), and
 * peer connection changes also to state: the batch fetcher's. */
void qs_ingest_set_fetch_handler(struct qs_ingest *in,
                                 void (*fn)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg),
                                 void (*state)(void *arg, int peer, int connected), void *arg);
/* The payload cache (core/cache.h): payloads enter it once durable. */
struct qs_cache *qs_ingest_cache(struct qs_ingest *in);
/*
 * Read the payload of the durable batch `info` (from qs_index_lookup) on
 * the reader thread, checked against its digest. Returns 0 and then calls
 * done(arg, result, r) exactly once on the loop, with r holding the
 * transactions (valid during the call; a payload read is also cached):
 * result 0, QS_ENOTFOUND (deleted by GC meanwhile), or a storage error
 * (already handled by the failure policy: a payload that does not match
 * its digest, or that is missing while not past the GC cutoff, fail-stops).
 * Returns QS_ESHUTDOWN, QS_EFAILED, QS_EQUEUEFULL or -ENOMEM otherwise.
 */
struct qs_read_item;
int qs_ingest_read(struct qs_ingest *in, const struct qs_batch_info *info,
                   void (*done)(void *arg, int result, struct qs_read_item *r), void *arg);
/*
 * Persist a batch fetched from peers (validated by the caller against the
 * digest it asked for): admitted against the index and the author's quotas,
 * written with sync, then indexed and cached. The transactions are borrowed
 * until done(arg, result) runs, exactly once, on the loop, if this returned
 * 0. Returns QS_EEXISTS when the batch is durable already (nothing to do),
 * -EINVAL for an author outside the validator set, QS_ELIMIT over the
 * author's quota, QS_ENOSPACE / QS_EFAILED / QS_ESHUTDOWN when storage
 * refuses writes, QS_EQUEUEFULL, -ENOMEM.
 */
int qs_ingest_persist(struct qs_ingest *in, const struct qs_batch_info *info,
                      const ProtobufCBinaryData *txns, size_t n_txns,
                      void (*done)(void *arg, int result), void *arg);
/* A committed block's timestamp (NotifyCommit, after it was persisted in
 * `meta` as "last_committed_us"): moves the GC cutoff. */
void qs_ingest_note_commit(struct qs_ingest *in, uint64_t block_timestamp_us);
uint64_t qs_ingest_committed_us(const struct qs_ingest *in);
/* The last GC cutoff applied: payloads expiring at or before it are gone. */
uint64_t qs_ingest_gc_cutoff_us(const struct qs_ingest *in);
#define QS_META_LAST_COMMITTED "last_committed_us"
/* Groups the writer completed (written or failed) since start: the
 * watchdog's sign that the writer makes progress. Any thread. */
uint64_t qs_ingest_groups_done(const struct qs_ingest *in);

#endif
