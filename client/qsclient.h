/*
 * qsclient: the C client of qsd's RPC socket, for a consensus process (and
 * qsctl). Blocking calls over a Unix stream socket, no event library;
 * requests may be pipelined and are matched to responses by request id.
 *
 * Wire. Frames of a 4-byte big-endian length and one protobuf Request or
 * Response (proto/quorumstore/v1/rpc.proto, docs/PROTOCOL.md). Every length
 * the server sends is checked against the client's frame limit before
 * anything is allocated for it, and decoding runs under an allocation budget
 * of 4 x that limit + 64 KiB.
 *
 * Errors. Functions return 0 or a negative code: -ETIMEDOUT (nothing
 * arrived, or could be sent, in time; the connection stays usable unless a
 * request was sent only in part), -ECONNRESET (the server closed the
 * connection), QS_ELIMIT (a frame over the limit), QS_EDECODE (a frame that
 * does not decode), -EPROTO (a Hello refused or answered with something
 * else), -ENOMEM, or another -errno of the socket. qs_strerror()
 * (core/error.h) names them all. Once the connection is broken (the server
 * closed it, a frame over the limit or undecodable, an I/O error, a request
 * sent only in part) every later call returns -EPIPE.
 *
 * A response with a non-OK status is not an error of these functions: they
 * return 0 and the caller reads (*out)->status and (*out)->message.
 *
 * Timeouts are in milliseconds; a negative one waits for ever, 0 does not
 * wait.
 *
 * Threads. A qs_client is used by one thread at a time. SIGPIPE is never
 * raised (send with MSG_NOSIGNAL).
 */
#ifndef QS_CLIENT_QSCLIENT_H
#define QS_CLIENT_QSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "quorumstore/v1/rpc.pb-c.h"

#define QS_CLIENT_FRAME_MAX_BYTES     (64u * 1024 * 1024) /* default frame limit */
#define QS_CLIENT_MAX_QUEUED          65536               /* responses held for qs_client_recv() */
#define QS_CLIENT_MAX_ABANDONED       4096                /* ids of timed-out calls remembered */
#define QS_CLIENT_IDEMPOTENCY_KEY_MAX 64                  /* bytes */
#define QS_CLIENT_DEFAULT_SOCKET      "/run/qsd/rpc.sock"
#define QS_CLIENT_LIST_MAX            1000   /* entries the server puts in one page */
#define QS_CLIENT_SPIN_MAX_US         100000 /* qs_client_opts.spin_us */

struct qs_client;

struct qs_client_opts {
	/* Largest frame accepted from the server, and sent; 0 means
	 * QS_CLIENT_FRAME_MAX_BYTES. At most 2^32 - 1. */
	size_t frame_max_bytes;
	/* After a read that found nothing, keep reading without sleeping for up
	 * to this many microseconds before waiting in poll() (0, the default:
	 * wait at once). An answer that comes within it is taken without the
	 * scheduler waking this thread, which on most machines is a good part
	 * of a request's round trip; it costs a core for that long. At most
	 * QS_CLIENT_SPIN_MAX_US. */
	uint32_t spin_us;
};

/*
 * Connect to the socket at `socket_path` and do the Hello (protocol version
 * 1, `client_name`, which qsd logs). Both together take at most `timeout_ms`;
 * later sends made by qs_client_send() wait at most as long. `opts` may be
 * NULL (defaults). On success returns 0 and sets *out, closed with
 * qs_client_close(). On failure *out is untouched, one line is written into
 * err (errlen bytes) and the result is -errno of socket()/connect() (-ENOENT,
 * -ECONNREFUSED, -EACCES...), -ENAMETOOLONG, a code above, or -EPROTO when
 * the server refused the Hello (its status and message are in err). A
 * server that refuses our uid closes the connection: -ECONNRESET.
 */
int qs_client_connect_opts(const char *socket_path, const char *client_name,
                           const struct qs_client_opts *opts, int timeout_ms,
                           struct qs_client **out, char *err, size_t errlen);

/* qs_client_connect_opts() with the default options. */
int qs_client_connect(const char *socket_path, const char *client_name, int timeout_ms,
                      struct qs_client **out, char *err, size_t errlen);

/* The server's Hello answer (version, epoch, chain id, author); owned by the
 * client, valid until qs_client_close(). */
const Quorumstore__V1__HelloResponse *qs_client_server(const struct qs_client *c);

/*
 * Send `req` (borrowed) without waiting for its response: sets
 * req->request_id to the next id (also stored in *request_id, which may be
 * NULL). Responses that arrive while the request is being written are read
 * and queued, so a client pipelining many requests cannot deadlock with a
 * server that stops reading until its responses are read. Returns 0,
 * QS_ELIMIT (packed request over the frame limit; nothing sent), -ETIMEDOUT,
 * or an error above.
 */
int qs_client_send(struct qs_client *c, Quorumstore__V1__Request *req, uint64_t *request_id);

/*
 * The next response, for any id: the oldest queued one, else the next to
 * arrive (responses to calls that timed out in qs_client_call() are
 * discarded). On success *out is owned by the caller: free it with
 * qs_client_response_free().
 */
int qs_client_recv(struct qs_client *c, int timeout_ms, Quorumstore__V1__Response **out);

/*
 * Send `req` and wait for its response; responses to other ids that arrive
 * meanwhile are queued for qs_client_recv(). When req->deadline_ms is 0 and
 * timeout_ms > 0, req->deadline_ms is set to timeout_ms so that the server
 * gives up too. On -ETIMEDOUT the id is remembered (up to
 * QS_CLIENT_MAX_ABANDONED) and its late response discarded.
 */
int qs_client_call(struct qs_client *c, Quorumstore__V1__Request *req, int timeout_ms,
                   Quorumstore__V1__Response **out);

/*
 * SubmitBatch of the `n` transactions `txns` (borrowed) with an idempotency
 * key of key_len bytes (at most QS_CLIENT_IDEMPOTENCY_KEY_MAX; NULL/0 for
 * none), through qs_client_call(). -EINVAL for a key too long.
 */
int qs_client_submit(struct qs_client *c, const ProtobufCBinaryData *txns, size_t n,
                     const uint8_t *idempotency_key, size_t key_len, int timeout_ms,
                     Quorumstore__V1__Response **out);

/* GetStatus through qs_client_call(). */
int qs_client_status(struct qs_client *c, int timeout_ms, Quorumstore__V1__Response **out);

/*
 * The typed calls below build one request from their arguments, which are
 * borrowed (only read while the request is packed), and go through
 * qs_client_call(): the same results, and the response, whatever its status,
 * is the caller's. The server judges the contents (digest and key sizes,
 * limits) and says why in the response's message; these functions return
 * -EINVAL only for a NULL pointer given with a non-zero length or count, and
 * then send nothing.
 */

/* What a GetPayload may return: the fields of GetPayloadRequest. */
struct qs_client_payload_limits {
	uint64_t max_txns;
	uint64_t max_bytes;
	uint64_t max_inline_txns; /* of those, carried as whole batches */
	uint64_t max_inline_bytes;
	bool return_non_full; /* false: nothing unless the payload fills a limit */
};

/*
 * GetPayload within `lim`, leaving out the n_exclude digests `exclude` (the
 * batches of pending blocks). The body, when OK, is get_payload: proofs of
 * store and inline batches.
 */
int qs_client_get_payload(struct qs_client *c, const struct qs_client_payload_limits *lim,
                          const ProtobufCBinaryData *exclude, size_t n_exclude, int timeout_ms,
                          Quorumstore__V1__Response **out);

/*
 * GetBatch of the batch with `digest` (digest_len bytes; 32 for a valid
 * one), fetched from the n_signers signing keys `signers` if it is not held
 * locally (none: the signers of its proof). The body, when OK, is
 * get_batch: the batch and where qsd found it. NOT_FOUND when no one had it.
 */
int qs_client_get_batch(struct qs_client *c, const uint8_t *digest, size_t digest_len,
                        const ProtobufCBinaryData *signers, size_t n_signers, int timeout_ms,
                        Quorumstore__V1__Response **out);

/*
 * NotifyCommit of a block with timestamp block_timestamp_us (wall clock,
 * microseconds since the Unix epoch) and the n_digests batch digests
 * `digests` it committed. The body, when OK, is notify_commit.
 */
int qs_client_notify_commit(struct qs_client *c, uint64_t block_timestamp_us,
                            const ProtobufCBinaryData *digests, size_t n_digests, int timeout_ms,
                            Quorumstore__V1__Response **out);

/* NewEpoch `epoch` with its n_validators validators, in their order; -EINVAL
 * also for a NULL among them. */
int qs_client_new_epoch(struct qs_client *c, uint64_t epoch,
                        Quorumstore__V1__ValidatorInfo *const *validators, size_t n_validators,
                        int timeout_ms, Quorumstore__V1__Response **out);

/*
 * One page of ListBatches: the durable batches of `author` (author_len
 * bytes; NULL/0: every author) after the cursor `start_after` (start_len
 * bytes: the previous page's `next`; NULL/0: from the start), at most
 * `limit` of them (at most QS_CLIENT_LIST_MAX; 0: the server's default).
 * The body, when OK, is list_batches; an empty `next` ends the listing.
 */
int qs_client_list_batches(struct qs_client *c, const uint8_t *author, size_t author_len,
                           const uint8_t *start_after, size_t start_len, uint32_t limit,
                           int timeout_ms, Quorumstore__V1__Response **out);

/* One page of ListProofs (the proof queue), as qs_client_list_batches(). */
int qs_client_list_proofs(struct qs_client *c, const uint8_t *author, size_t author_len,
                          const uint8_t *start_after, size_t start_len, uint32_t limit,
                          int timeout_ms, Quorumstore__V1__Response **out);

/* Free a response returned by this library; NULL is fine. */
void qs_client_response_free(Quorumstore__V1__Response *resp);

/* "OK", "INVALID_ARGUMENT", ... ("UNKNOWN" for a number outside the enum). */
const char *qs_client_status_name(Quorumstore__V1__Status status);

/* Close the connection and free everything, queued responses included.
 * Accepts NULL. */
void qs_client_close(struct qs_client *c);

#endif
