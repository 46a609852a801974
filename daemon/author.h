/*
 * The proof stage: this node as an author, and proofs of store.
 *
 * SubmitBatch (RPC) makes an own batch: the next batch id (persisted in
 * `meta` in the same WriteBatch as the batch, so never reused), the batch
 * written through the same writer as peer batches and signed only after its
 * synced write, then broadcast as BatchMsg. SignedBatchInfo answers are
 * verified and aggregated (core/proof.h) until their voting power is a
 * quorum; the ProofOfStore is written to `proofs`, then broadcast. Proofs
 * received from peers are verified before they are written and queued. A
 * proof is never broadcast or queued before its own write returned OK. The
 * queue (core/pqueue.h) is restored from `proofs` at start.
 *
 * Everything runs on the event loop thread.
 */
#ifndef QS_DAEMON_AUTHOR_H
#define QS_DAEMON_AUTHOR_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config/config.h"
#include "daemon/ingest.h"
#include "daemon/metrics.h"
#include "net/peer.h"
#include "net/rpc.h"

struct qs_author;

struct qs_author_options {
	const struct qs_config *cfg; /* borrowed */
	int self;
	struct event_base *base;
	struct qs_store *store;     /* for the meta records read at start */
	struct qs_ingest *ingest;   /* borrowed: index, writer, storage state */
	const uint8_t *signing_pub; /* 32 bytes */
	struct qs_metrics *metrics;
};

/*
 * Load the next own batch id and the idempotency keys from `meta`, build the
 * validator set, register the metrics. Returns 0 or an error with one line
 * in err.
 */
int qs_author_start(const struct qs_author_options *opt, struct qs_author **out, char *err,
                    size_t errlen);

/* The peer transport to broadcast on (NULL detaches it). */
void qs_author_set_peers(struct qs_author *a, struct qs_peers *peers);

/* net/rpc.h request handler (arg: the author). */
void qs_author_on_rpc(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req);

/* SignedBatchInfoMsg, BatchNack and ProofMsg from a peer (arg: the author;
 * takes the message). */
void qs_author_on_peer(void *arg, int peer, Quorumstore__V1__PeerMessage *msg);

/*
 * A peer's connection came up (or went): a peer that reconnects, after a
 * slow-reader disconnect for instance, is sent again the own batches still
 * waiting for a quorum (at most 16 MiB of them) and the proofs this node
 * formed that it still holds.
 */
void qs_author_on_state(void *arg, int peer, int connected);

/* Own batches awaiting a quorum, and proofs held (formed or received, not
 * expired). */
size_t qs_author_pending(const struct qs_author *a);
size_t qs_author_proofs(const struct qs_author *a);

/*
 * Consensus committed the batch `digest` (expiring at expiration_us): its
 * proof leaves the queue and is never queued again until it expires, even
 * when a peer sends it again. The caller persists the marker. Returns 0,
 * QS_EEXISTS (committed already) or -ENOMEM.
 */
int qs_author_commit(struct qs_author *a, const uint8_t digest[32], uint64_t expiration_us);
int qs_author_is_committed(const struct qs_author *a, const uint8_t digest[32]);
/* The proof queue (durable proofs, for GetPayload and NotifyCommit) and the
 * validator set of the epoch. */
struct qs_pqueue *qs_author_pqueue(struct qs_author *a);
struct qs_valset;
const struct qs_valset *qs_author_valset(const struct qs_author *a);
/*
 * Free. Call after the ingest pipeline was drained (no write of ours is in
 * flight then): calls still waiting are answered UNAVAILABLE. NULL is fine.
 */
void qs_author_free(struct qs_author *a);

#endif
