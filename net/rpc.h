/*
 * The RPC server for the local consensus process: a Unix stream socket at
 * cfg->rpc_socket carrying frames (net/frame.h) of one Request from the
 * client and one Response from qsd (proto/quorumstore/v1/rpc.proto).
 *
 * Socket. Bound with mode 0660 (chmod between bind() and listen(), so no
 * connection is ever accepted with another mode); the group is qsd's. A file
 * already at the path is handled so that nothing is ever stolen or lost:
 *   - a socket nobody serves (connect() fails with ECONNREFUSED) is stale:
 *     it is unlinked and the path bound again;
 *   - a socket somebody serves (connect() succeeds, or EAGAIN: its backlog
 *     is full) makes the start fail with -EADDRINUSE;
 *   - anything else (regular file, directory, symlink...) makes the start
 *     fail with -EEXIST and is left alone.
 * qs_rpc_free() unlinks the path only if it is still the socket it bound.
 * Socket activation: when systemd passed a listening socket named
 * QS_RPC_FD_NAME (qsd.socket's FileDescriptorName=, read with
 * sd_listen_fds_with_names()), that socket is served instead and the path
 * is left alone (systemd made it, with its SocketMode=, and keeps it); it
 * must be a Unix stream socket at cfg->rpc_socket.
 *
 * Admission. On accept the client's uid is read with SO_PEERCRED and must be
 * in cfg->allowed_uids (when that list is empty: equal to geteuid()). A
 * refused client, or one over QS_RPC_MAX_CONNECTIONS, is closed at once,
 * logged (uid, pid) and counted in qsd_rpc_refused_total{reason}.
 *
 * Protocol. Hello must be the first request, within QS_RPC_HELLO_TIMEOUT_MS;
 * the server answers it itself from struct qs_rpc_info. A first request that
 * is not a Hello gets FAILED_PRECONDITION and the connection is closed once
 * that response is written; so does a Hello with another protocol_version.
 * A later Hello is answered again (same contents). After Hello:
 *   - a request with no body gets INVALID_ARGUMENT;
 *   - a request over QS_RPC_MAX_OUTSTANDING calls of its connection gets
 *     RESOURCE_EXHAUSTED;
 *   - every other request goes to ops->request as a call.
 * Requests may be pipelined: responses are written as they are produced,
 * each carrying its request's id, in completion order. A frame over
 * cfg->limits.frame_max_bytes (checked from its header, before allocating)
 * or one that does not decode within QS_RPC_DECODE_BUDGET() closes the
 * connection with a logged reason.
 *
 * Deadlines. Each call has one: the request's deadline_ms capped at
 * QS_RPC_MAX_DEADLINE_MS, or QS_RPC_DEFAULT_DEADLINE_MS when it is 0. When it
 * passes before the handler answered, the server answers DEADLINE_EXCEEDED
 * itself and the handler's later response is dropped.
 *
 * Calls outlive connections ("connection gone" flag, no reference count).
 * The handler owns a call from ops->request until it calls qs_rpc_respond()
 * or qs_rpc_respond_error(), which frees it. A call points to its connection
 * only while it is open; closing a connection (client gone, slow reader,
 * qs_rpc_free()) detaches its calls, which keep no pointer into the server.
 * Answering a detached call (or one whose deadline passed) sends nothing and
 * just frees it; this is safe even after qs_rpc_free(). A call whose answer
 * will be dropped is counted once, when the server gives it up, in
 * qsd_rpc_responses_dropped_total{reason}.
 *
 * Back pressure. When a connection has more than QS_RPC_OUTBUF_PAUSE_BYTES
 * of responses unsent, the server stops reading its requests until half of
 * that is sent; beyond QS_RPC_OUTBUF_MAX_BYTES the client is not reading and
 * the connection is closed (reason slow_reader). So is a connection with
 * responses unsent of which not one byte could be written for
 * cfg->rpc_write_stall_timeout_us (a client that stopped reading would
 * otherwise hold its buffer and its slot for ever, paused); every write
 * that makes progress restarts that clock, so a client that reads slowly
 * is never closed by it. 0 (only a hand-built config) disables it. A
 * response larger than QS_RPC_RESPONSE_MAX_BYTES is replaced by
 * RESOURCE_EXHAUSTED.
 *
 * Metrics (registered in qs_rpc_start()):
 *   qsd_rpc_requests_total{method}            requests received after their
 *                                             frame decoded: hello,
 *                                             get_payload, get_batch,
 *                                             notify_commit, submit_batch,
 *                                             new_epoch, get_status,
 *                                             list_batches, list_proofs (a request
 *                                             with no body counts in errors only)
 *   qsd_rpc_errors_total{status}              non-OK responses sent, by status:
 *                                             cancelled, invalid_argument,
 *                                             deadline_exceeded, not_found,
 *                                             permission_denied,
 *                                             resource_exhausted,
 *                                             failed_precondition, internal,
 *                                             unavailable, other
 *   qsd_rpc_request_seconds{method}           histogram, request read to
 *                                             response written (calls only)
 *   qsd_rpc_responses_dropped_total{reason}   handler answers that will not be
 *                                             sent: deadline_exceeded,
 *                                             disconnected, shutdown
 *   qsd_rpc_connections                       gauge, open connections
 *   qsd_rpc_refused_total{reason}             uid, too_many_connections
 *   qsd_rpc_disconnects_total{reason}         connections closed: eof, error,
 *                                             oversized_frame, undecodable,
 *                                             no_hello, hello_invalid,
 *                                             hello_timeout, slow_reader
 *                                             (over the buffer limit or
 *                                             stalled), shutdown,
 *                                             uid_revoked
 *
 * Threads. Everything runs on the thread of the event_base: every function
 * here, qs_rpc_respond() and qs_rpc_respond_error() included, must be called
 * there, and ops->request is called there.
 */
#ifndef QS_NET_RPC_H
#define QS_NET_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorumstore/v1/rpc.pb-c.h"

#define QS_RPC_MAX_CONNECTIONS      64
#define QS_RPC_MAX_OUTSTANDING      4096  /* calls held by the handler, per connection */
#define QS_RPC_DEFAULT_DEADLINE_MS  30000 /* for deadline_ms = 0 */
#define QS_RPC_MAX_DEADLINE_MS      60000 /* larger deadlines are capped */
#define QS_RPC_HELLO_TIMEOUT_MS     10000 /* from accept to the first request */
#define QS_RPC_CLOSE_FLUSH_MS       1000  /* most a closing connection waits to flush */
#define QS_RPC_RESPONSE_MAX_BYTES   (64u * 1024 * 1024)
#define QS_RPC_OUTBUF_PAUSE_BYTES   (16u * 1024 * 1024)
#define QS_RPC_OUTBUF_MAX_BYTES     (256u * 1024 * 1024)
#define QS_RPC_LISTEN_BACKLOG       64
#define QS_RPC_SOCKET_MODE          0660
#define QS_RPC_CLIENT_NAME_MAX      64    /* longer Hello client names are cut in logs */
#define QS_RPC_FD_NAME              "rpc" /* FileDescriptorName= of qsd.socket */
/* Most bytes protobuf-c may allocate to decode one frame of `frame` bytes. */
#define QS_RPC_DECODE_BUDGET(frame) (4 * (size_t)(frame) + 64 * 1024)

struct event_base;
struct qs_config;
struct qs_metrics;
struct qs_rpc;

/* One request awaiting its response; opaque. */
struct qs_rpc_call;

/* What the server answers Hello with. */
struct qs_rpc_info {
	const char *server_version; /* copied */
	uint64_t epoch;
	uint32_t chain_id;
	uint8_t author[32]; /* this node's signing public key */
};

struct qs_rpc_ops {
	/*
	 * Called for each request after Hello, never for a Hello or a request
	 * without a body. The handler owns `req` (free it with
	 * qs_frame_msg_free()) and `call`: it must call qs_rpc_respond() or
	 * qs_rpc_respond_error() exactly once for `call`, now or later, on
	 * the loop's thread, even if the client is gone meanwhile. It may
	 * not call qs_rpc_free().
	 */
	void (*request)(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req);
};

/*
 * Bind cfg->rpc_socket (see "Socket" above) and serve it on `base`. `ops` and
 * `info` are copied; `cfg`, `arg` and `metrics` are borrowed and must outlive
 * the server. The metric families above are registered in `metrics` (once
 * per registry) after everything else succeeded; `metrics` may be NULL.
 *
 * On success returns 0 and sets *out, freed with qs_rpc_free(). On failure
 * *out is untouched, nothing is left on disk that was not there before, one
 * line is written into err (errlen bytes) and the result is QS_ECONFIG (no
 * path, path too long for sockaddr_un, no ops->request, a socket from
 * systemd that is not a listening stream socket at the path), -EADDRINUSE
 * (another process serves the path), -EEXIST (something that is not a
 * socket is at the path), another -errno from lstat/socket/bind/chmod/listen,
 * or -ENOMEM.
 */
int qs_rpc_start(struct event_base *base, const struct qs_config *cfg, const struct qs_rpc_ops *ops,
                 void *arg, const struct qs_rpc_info *info, struct qs_metrics *metrics,
                 struct qs_rpc **out, char *err, size_t errlen);

/*
 * Take the run-time settings again from the config this server borrows,
 * after qs_config_reload_apply() changed it in place: limits.frame_max_bytes
 * for the requests read from now on, and rpc.allowed_uids, which every
 * later connection is checked against. Open connections whose uid is no
 * longer allowed are closed (qsd_rpc_disconnects_total{reason=
 * "uid_revoked"}; their calls are detached as for any close). When
 * rpc.write_stall_timeout_ms changed, the others take it, a stall in
 * progress counted from now. rpc.busy_poll_us applies from the next answer.
 * Logs one line.
 */
void qs_rpc_reload(struct qs_rpc *rpc);

/* Until when (qs_clock_mono_us()) the loop keeps polling without sleeping:
 * rpc.busy_poll_us after the last answer written; 0 or a past time when it
 * does not (and for rpc NULL). */
uint64_t qs_rpc_poll_until(const struct qs_rpc *rpc);

/* Whether the loop is polling now (the window's timer is armed). */
bool qs_rpc_polling(const struct qs_rpc *rpc);

/* The epoch later Hellos report (after NewEpoch). */
void qs_rpc_set_epoch(struct qs_rpc *rpc, uint64_t epoch);

/*
 * Answer `call` with `resp` (borrowed: packed before this returns; the
 * caller frees it). Sets resp->request_id to the call's. Frees `call`. When
 * the call's connection is gone or its deadline passed, nothing is sent.
 * A response over QS_RPC_RESPONSE_MAX_BYTES is replaced by
 * RESOURCE_EXHAUSTED. May close the connection as a slow reader.
 */
void qs_rpc_respond(struct qs_rpc_call *call, Quorumstore__V1__Response *resp);

/* Answer `call` with `status` and a printf-formatted message (cut at 1 KiB),
 * no body. Frees `call`, as qs_rpc_respond(). */
void qs_rpc_respond_error(struct qs_rpc_call *call, Quorumstore__V1__Status status, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

/* The request_id of `call`, for the handler's logs. */
uint64_t qs_rpc_call_id(const struct qs_rpc_call *call);

/*
 * Close every connection (counted as "shutdown"; their calls stay valid,
 * see above), the listener, and unlink the socket path if it is still the
 * one bound. Call it on the loop's thread, not from a handler, before
 * freeing the event_base. Accepts NULL.
 *
 * libevent releases a closed connection's bufferevent from a finalizer
 * callback on the loop. In tests/check_rpc.c, stopping the loop in the same
 * iteration that closed a connection and then calling event_base_free()
 * leaked it; running event_base_loop(base, EVLOOP_NONBLOCK) once after this
 * and before event_base_free() releases it.
 */
void qs_rpc_free(struct qs_rpc *rpc);

#endif
