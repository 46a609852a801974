/*
 * Fetching a batch this node does not hold from the validators that signed
 * its proof: the peer messages BatchRequest{request_id, digest} and
 * BatchResponse{request_id, batch | not_found} (docs/PROTOCOL.md).
 *
 * One network fetch per (digest, epoch) at a time. It proceeds in tries:
 * each try asks up to `parallel` signers, taken round robin from the
 * fetch's signer list, that are connected and were not asked yet in the
 * current round, then waits try_timeout_us, or less when every signer asked
 * in the try answered not_found or an invalid batch, or went away. A
 * disconnected signer is skipped and stays due for the round. Once every
 * signer was asked (or skipped) in a round, the next round begins: signers
 * that stayed silent past their try, and those skipped or whose connection
 * dropped, are asked again. A signer is asked again only after the try that
 * asked it ended, so at most one request per peer per fetch is outstanding;
 * an answer that arrives after its try ended is still taken while the fetch
 * runs. A signer that answered not_found or an invalid batch is not asked
 * again in this fetch. This node (`self`) is never asked.
 *
 * Accepting an answer. A fetch has one request id, 64 random bits from
 * getrandom(2), so a peer cannot answer a request it was not sent; a
 * response counts only when it carries the id of a running fetch and comes
 * from a validator that was asked with it and has not answered yet. The
 * first valid answer wins: its batch claims the digest asked, passes
 * qs_batch_validate() with sender NULL and ctx->epoch = the epoch asked (so
 * every length and count from the network is checked against the limits
 * before it is used) and its recomputed digest is the one asked. Every
 * other answer is counted and dropped. This module persists nothing: the
 * caller stores a fetched batch before it serves it.
 *
 * Metrics (registered in qs_fetch_new() when opt->metrics is not NULL):
 *   qsd_fetch_requests_sent_total     BatchRequests handed to the transport
 *   qsd_fetch_responses_total{result} BatchResponses, by what became of them:
 *     ok           the winning batch
 *     not_found    not_found from a validator asked
 *     bad_digest   a batch that claims another digest than the one asked,
 *                  or whose transactions do not hash to the digest it claims
 *     malformed    anything else qs_batch_validate() refuses (a wrong epoch,
 *                  counts, limits, sizes), a not_found naming another digest,
 *                  or a response with neither a batch nor not_found
 *     late         the id of a fetch that has ended, from a validator that
 *                  was asked with it and had not answered
 *     unsolicited  an unknown id, a validator not asked with that id, a
 *                  second answer, or a message that is not a BatchResponse
 *
 * Threads. Everything runs on the thread of opt->base: every function here
 * must be called there, and the callbacks are called there. Only
 * qs_fetch_result_free() may be called from any thread.
 */
#ifndef QS_DAEMON_FETCH_H
#define QS_DAEMON_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "quorumstore/v1/peer.pb-c.h"

/* Most callers joined to one network fetch; the next one gets QS_EQUEUEFULL. */
#define QS_FETCH_MAX_WAITERS 256
/* Most distinct digests in flight that qs_fetch_options.max_fetches may allow. */
#define QS_FETCH_MAX_FETCHES 65536
/* Ended fetches whose outstanding answers are still told apart as "late". */
#define QS_FETCH_RECENT      256

struct event_base;
struct qs_limits;
struct qs_metrics;
struct qs_fetch;
struct qs_fetch_waiter;

struct qs_fetch_options {
	struct event_base *base;
	uint32_t chain_id;
	/* Borrowed, outlives the fetcher: batch_max_txns, batch_max_bytes. */
	const struct qs_limits *limits;
	size_t n_validators;     /* 1 to QS_MAX_VALIDATORS (config/config.h) */
	int self;                /* this node's validator index, never asked; -1 for none */
	uint64_t try_timeout_us; /* how long one try waits for its answers; > 0 */
	uint32_t parallel;       /* signers asked at once per try; >= 1 */
	size_t max_fetches; /* distinct digests being fetched at once; 1 to QS_FETCH_MAX_FETCHES */
	/* Bound of a responder's expiration when the caller knows none; > 0. */
	uint64_t max_lifetime_us;
	/*
	 * The transport. send() queues `pm` (borrowed, only for the call) for
	 * validator `peer` and returns 0, or non-zero when it was not queued.
	 * It may call qs_fetch_on_state() before it returns (a connection
	 * closed as a slow reader), but not qs_fetch_on_response().
	 * connected() is 1 when `peer` has a usable connection now, else 0.
	 */
	int (*send)(void *arg, int peer, const Quorumstore__V1__PeerMessage *pm);
	int (*connected)(void *arg, int peer);
	void *transport_arg;
	struct qs_metrics *metrics; /* optional; borrowed, outlives the fetcher */
};

/*
 * A fetched batch, handed to a done() callback that owns it and frees it
 * with qs_fetch_result_free() (on any thread). Callers joined to one fetch
 * each get their own result with their own `info`; `msg` and `txns` are
 * shared between them, reference counted, and read-only.
 *
 * info: digest is the one asked (and recomputed from the transactions);
 * author, epoch, batch_id, num_txns and num_bytes are the batch's (checked
 * against the digest and the payload). The fields the digest does not cover
 * come from the caller's `want` when want->expiration_us != 0 (want is the
 * proof's BatchInfo): expiration_us and gas_bucket_start. Otherwise they
 * are the responder's, which prove nothing: gas_bucket_start as sent, and
 * expiration_us clamped into [now, now + max_lifetime_us] by the wall clock
 * at receipt, so that a responder can neither make the batch outlive the
 * lifetime bound nor hand back one already due for collection.
 */
struct qs_fetch_result {
	struct qs_batch_info info;
	const Quorumstore__V1__PeerMessage *msg; /* the BatchResponse; holds the transactions */
	const ProtobufCBinaryData *txns;         /* msg's transactions */
	size_t n_txns;
	int from_peer; /* the validator that sent it */
};

/* Free a result (drops its reference on the shared message). Any thread;
 * NULL is fine. */
void qs_fetch_result_free(struct qs_fetch_result *r);

/*
 * Create a fetcher. `opt` is copied; what it points to is borrowed. Returns
 * 0 and sets *out (free with qs_fetch_free()), -EINVAL for options out of
 * range (see above), QS_ECONFIG when a metric cannot be registered (its name
 * is logged), or -ENOMEM; *out is untouched on failure.
 */
int qs_fetch_new(const struct qs_fetch_options *opt, struct qs_fetch **out);

/*
 * Fetch the batch want->digest. want->epoch is the epoch the digest covers
 * (the proof's); want->expiration_us is the proof's expiration, or 0 when
 * the caller knows no proof (then want's other fields are ignored).
 * `signers[0..n_signers)` are validator indexes to ask: the proof's
 * signers, or every validator when the caller knows none. Duplicates and
 * `self` are ignored. Both `want` and `signers` are copied.
 *
 * A request for a (digest, epoch) already being fetched joins that fetch:
 * its signers are added to the fetch's list, and one network fetch serves
 * every caller, each with its own done() call and its own result (see
 * struct qs_fetch_result).
 *
 * done(arg, result, res) runs exactly once iff this returns 0, on the loop,
 * never from inside this call:
 *   0              res is the batch (the callee owns it, see above)
 *   QS_ENOTFOUND   every signer answered not_found or an invalid batch, or
 *                  there is no signer but `self` (at once, before the
 *                  deadline); or the deadline passed and every signer a
 *                  request was sent to had answered, or none could be
 *                  asked (none connected)
 *   -ETIMEDOUT     the deadline passed while a signer asked had not
 *                  answered
 *   QS_ESHUTDOWN   qs_fetch_free() was called
 * res is NULL unless result is 0. The caller's deadline is
 * `deadline_mono_us` on the qs_clock_mono_us() clock; callers joined to
 * one fetch each keep their own, and the network fetch runs until the last
 * of them. done() may call qs_fetch_start(), qs_fetch_in_flight() and
 * qs_fetch_cancel() for other waiters; not qs_fetch_free(),
 * qs_fetch_on_response() or qs_fetch_on_state().
 *
 * Returns 0; -EINVAL when want, done or signers is NULL, n_signers is 0 or
 * more than n_validators, or a signer is not a validator index;
 * QS_EQUEUEFULL when max_fetches distinct digests are in flight already, or
 * the fetch to join has QS_FETCH_MAX_WAITERS callers; QS_ESHUTDOWN while
 * qs_fetch_free() runs; -ENOMEM; or -errno from getrandom(2). When `handle`
 * is not NULL, *handle is set on success: it names this caller for
 * qs_fetch_cancel() and is valid until done() is called or the caller is
 * cancelled.
 */
int qs_fetch_start(struct qs_fetch *f, const struct qs_batch_info *want, const int *signers,
                   size_t n_signers, uint64_t deadline_mono_us,
                   void (*done)(void *arg, int result, struct qs_fetch_result *res), void *arg,
                   struct qs_fetch_waiter **handle);

/*
 * Withdraw one caller: its done() is not called, and `w` is invalid from
 * here on. The network fetch stops when it has no caller left (answers to
 * it then count as late). NULL is fine.
 */
void qs_fetch_cancel(struct qs_fetch_waiter *w);

/*
 * A message from validator `peer`, normally a BatchResponse. Takes `msg`
 * (decoded by net/frame.h) and frees it with qs_frame_msg_free(), or keeps
 * it for the winner's results. Unknown ids and answers from validators not
 * asked are counted (late, unsolicited) and dropped. When the answer wins,
 * the fetch's callers' done() run before this returns.
 */
void qs_fetch_on_response(struct qs_fetch *f, int peer, Quorumstore__V1__PeerMessage *msg);

/*
 * Validator `peer`'s connection became usable (connected = 1) or went away
 * (0). A request outstanding on a connection that went away is lost: the
 * fetch moves on to the next signers at once, and asks that one again in a
 * later round. A fetch with nobody left to ask tries again when a signer
 * connects. No callback runs from inside this call.
 */
void qs_fetch_on_state(struct qs_fetch *f, int peer, int connected);

/*
 * Change how long a try waits and how many signers it asks (a config
 * reload); tries that start afterwards use them. Returns 0, or -EINVAL when
 * either is 0 (nothing changes).
 */
int qs_fetch_set_tries(struct qs_fetch *f, uint64_t try_timeout_us, uint32_t parallel);

/* Distinct network fetches in flight. */
size_t qs_fetch_in_flight(const struct qs_fetch *f);

/*
 * Complete every caller with QS_ESHUTDOWN (synchronously, from here), then
 * free the fetcher. Results already handed out stay valid. Must not be
 * called from a done() callback. NULL is fine.
 */
void qs_fetch_free(struct qs_fetch *f);

#endif
