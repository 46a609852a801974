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

#endif
