/*
 * Serving the consensus process: the RPC requests that propose and execute
 * blocks (docs/DESIGN.md, "Serving consensus").
 *
 *   GetPayload    proofs from the proof queue (core/pqueue.h), fairly over
 *                 authors, within the request's limits; a batch is inlined
 *                 only when its payload is durable here and in memory.
 *   GetBatch      a batch's transactions: from the payload cache, else from
 *                 disk (reader thread), else fetched from its signers
 *                 (daemon/fetch.h) and persisted with sync before it is
 *                 served. Every outcome is counted in
 *                 qsd_batch_fetch_total{source,result}; a final miss is
 *                 logged at error level with the digest and the signers.
 *   NotifyCommit  committed proofs leave the queue for good: a committed
 *                 marker (an empty value under the proof's key in `proofs`)
 *                 is written with sync with the block timestamp (meta
 *                 "last_committed_us"), which moves the GC cutoff
 *                 (daemon/ingest.h); a proof a peer sends again is not
 *                 queued, before or after a restart.
 *   ListBatches, ListProofs  operator listings (qsctl).
 * SubmitBatch and GetStatus go to the proof stage (daemon/author.h) and
 * NewEpoch to the daemon, which owns the pipeline.
 *
 * Everything runs on the event loop thread.
 */
#ifndef QS_DAEMON_SERVE_H
#define QS_DAEMON_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config/config.h"
#include "daemon/author.h"
#include "daemon/ingest.h"
#include "daemon/metrics.h"
#include "net/peer.h"
#include "net/rpc.h"

/* Most digests in a GetPayload exclude list, and most proofs answered. */
#define QS_SERVE_MAX_EXCLUDE  65536
#define QS_SERVE_MAX_PROOFS   10000
#define QS_SERVE_MAX_LIST     1000 /* entries per ListBatches/ListProofs page */
#define QS_SERVE_DEFAULT_LIST 100
#define QS_SERVE_MAX_COMMIT   10000 /* digests in one NotifyCommit */
#define QS_SERVE_MAX_FETCHES  256   /* distinct batches fetched at once */

struct qs_serve;

struct qs_serve_options {
	const struct qs_config *cfg; /* borrowed */
	int self;
	struct event_base *base;
	struct qs_ingest *ingest; /* borrowed: index, cache, reader, writer */
	struct qs_author *author; /* borrowed: proof queue, SubmitBatch, GetStatus */
	struct qs_metrics *metrics;
	/* NewEpoch: the handler owns call and req, as net/rpc.h says. */
	void (*new_epoch)(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req);
	void *new_epoch_arg;
};

/* Start serving; registers the metrics. Returns 0, or -ENOMEM / QS_EBASE
 * with one line in err. */
int qs_serve_start(const struct qs_serve_options *opt, struct qs_serve **out, char *err,
                   size_t errlen);

/* The peer transport batches are fetched over (NULL detaches it). */
void qs_serve_set_peers(struct qs_serve *s, struct qs_peers *peers);

/* net/rpc.h request handler for every request after Hello (arg: the serve). */
void qs_serve_on_rpc(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req);

/* The serving.* keys changed (a reload): the payload cache's budget and
 * the fetch tries follow; the GC buffers and deadlines are read live. */
void qs_serve_reload(struct qs_serve *s);

/*
 * Stop: fetches in flight end and their calls are answered UNAVAILABLE;
 * calls waiting for a read or a write keep waiting for it (drain the ingest
 * pipeline first, so that they are answered), then free. NULL is fine.
 */
void qs_serve_free(struct qs_serve *s);

#endif
