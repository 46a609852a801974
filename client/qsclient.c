/*
 * The RPC client (see client/qsclient.h).
 *
 * The socket is non-blocking underneath and every wait is a poll() with the
 * caller's deadline, so the API blocks but never longer than asked. Bytes
 * from the server go into one buffer that holds at most one whole frame
 * plus what one read brought past it; whole frames are decoded out of it
 * and either returned or queued.
 */
#include "client/qsclient.h"

#include "core/error.h"
#include "net/frame.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QS_CLIENT_HEADER_BYTES         4
#define QS_CLIENT_READ_MIN             (64 * 1024) /* buffer kept between frames */
#define QS_CLIENT_CONNECT_RETRY        10          /* ms between tries while the backlog is full */
#define QS_CLIENT_DECODE_BUDGET(frame) (4 * (size_t)(frame) + 64 * 1024)

struct qs_client {
	int fd;
	int broken; /* 0, or the error that broke the connection */
	uint64_t next_id;
	size_t frame_max;
	int io_timeout_ms;
	Quorumstore__V1__Response *hello; /* the Hello answer */
	uint8_t *buf;                     /* bytes read, not yet decoded */
	size_t len;
	size_t cap;
	bool waited;                       /* the last read found nothing and had to wait */
	uint32_t spin_us;                  /* qs_client_opts.spin_us */
	Quorumstore__V1__Response **queue; /* oldest first */
	size_t n_queue;
	size_t cap_queue;
	uint64_t *abandoned; /* ids of calls that timed out, oldest first */
	size_t n_abandoned;
};

/* ---- helpers ---- */

static void qs_client_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
qs_client_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Microseconds on the monotonic clock. */
static int64_t
qs_client_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
qs_client_now_ms(void)
{
	return qs_client_now_us() / 1000;
}

/* The absolute deadline for `timeout_ms`; -1 for none. */
static int64_t
qs_client_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : qs_client_now_ms() + timeout_ms;
}

/* What is left until `deadline` for poll(): -1, or 0 and up. */
static int
qs_client_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - qs_client_now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

static uint32_t
qs_client_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
qs_client_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The connection cannot be used any more; returns `rc` for the caller. */
static int
qs_client_break(struct qs_client *c, int rc)
{
	if (c->broken == 0)
		c->broken = rc;
	return rc;
}

/* ---- receiving ---- */

/*
 * Decode one whole frame from the buffer. Returns 1 and sets *out, 0 when
 * the buffer holds no whole frame (after making room for the one announced),
 * or a fatal error.
 */
static int
qs_client_take(struct qs_client *c, Quorumstore__V1__Response **out)
{
	ProtobufCMessage *msg;
	size_t flen, need;
	uint8_t *nbuf;
	int rc;

	if (c->len < QS_CLIENT_HEADER_BYTES)
		return 0;
	flen = qs_client_get_be32(c->buf);
	if (flen > c->frame_max)
		return qs_client_break(c, QS_ELIMIT);
	need = QS_CLIENT_HEADER_BYTES + flen;
	if (c->len < need) {
		if (c->cap < need) {
			nbuf = realloc(c->buf, need);
			if (nbuf == NULL)
				return qs_client_break(c, -ENOMEM);
			c->buf = nbuf;
			c->cap = need;
		}
		return 0;
	}
	rc = qs_frame_unpack_arena(&quorumstore__v1__response__descriptor,
	                           c->buf + QS_CLIENT_HEADER_BYTES, flen,
	                           QS_CLIENT_DECODE_BUDGET(c->frame_max), &msg);
	if (rc < 0)
		return qs_client_break(c, rc);
	memmove(c->buf, c->buf + need, c->len - need);
	c->len -= need;
	if (c->len > 0)
		c->waited = false; /* answers come faster than they are taken */
	/* Give back the room of a large frame once it is consumed. */
	if (c->len == 0 && c->cap > QS_CLIENT_READ_MIN) {
		nbuf = realloc(c->buf, QS_CLIENT_READ_MIN);
		if (nbuf != NULL) {
			c->buf = nbuf;
			c->cap = QS_CLIENT_READ_MIN;
		}
	}
	*out = (Quorumstore__V1__Response *)msg;
	return 1;
}

/*
 * Read what the socket has, waiting for it until `deadline`. Returns 0 when
 * bytes were read, -ETIMEDOUT, or a fatal error.
 */
static int
qs_client_fill(struct qs_client *c, int64_t deadline)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int64_t spin_until = -1; /* set at the first read that finds nothing */
	bool wait_first;
	ssize_t n;
	int rc;

	if (c->cap == c->len) {
		/* qs_client_take() sized the buffer for the frame under way;
		 * a full buffer here holds a whole frame, so this is a bug. */
		return qs_client_break(c, -ENOBUFS);
	}
	/* One request at a time, the answer is never there yet when the caller
	 * comes to read it: after a read that had to wait, with nothing left in
	 * the buffer, wait first and save a recv() that would find nothing
	 * (unless the caller asked to spin, which is all recv() calls). */
	wait_first = c->spin_us == 0 && c->waited && c->len == 0 && qs_client_left(deadline) != 0;
	for (;;) {
		if (!wait_first) {
			n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
			if (n > 0) {
				c->len += (size_t)n;
				return 0;
			}
			if (n == 0)
				return qs_client_break(c, -ECONNRESET);
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return qs_client_break(c, -errno);
			c->waited = true;
			if (c->spin_us != 0) {
				int64_t now = qs_client_now_us();

				if (spin_until < 0) {
					spin_until = now + c->spin_us;
					if (deadline >= 0 && spin_until > deadline * 1000)
						spin_until = deadline * 1000;
				}
				if (now < spin_until)
					continue;
			}
		}
		wait_first = false;
		rc = poll(&pfd, 1, qs_client_left(deadline));
		if (rc < 0 && errno != EINTR)
			return qs_client_break(c, -errno);
		if (rc == 0)
			return -ETIMEDOUT;
	}
}

static bool
qs_client_forget(struct qs_client *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_abandoned; i++) {
		if (c->abandoned[i] == id) {
			memmove(&c->abandoned[i], &c->abandoned[i + 1],
			        (c->n_abandoned - i - 1) * sizeof(c->abandoned[0]));
			c->n_abandoned--;
			return true;
		}
	}
	return false;
}

static void
qs_client_abandon(struct qs_client *c, uint64_t id)
{
	if (c->abandoned == NULL) {
		c->abandoned = calloc(QS_CLIENT_MAX_ABANDONED, sizeof(c->abandoned[0]));
		if (c->abandoned == NULL)
			return;
	}
	if (c->n_abandoned == QS_CLIENT_MAX_ABANDONED) {
		memmove(&c->abandoned[0], &c->abandoned[1],
		        (c->n_abandoned - 1) * sizeof(c->abandoned[0]));
		c->n_abandoned--;
	}
	c->abandoned[c->n_abandoned++] = id;
}

static int
qs_client_enqueue(struct qs_client *c, Quorumstore__V1__Response *resp)
{
	Quorumstore__V1__Response **q;
	size_t cap;

	if (c->n_queue == QS_CLIENT_MAX_QUEUED) {
		qs_client_response_free(resp);
		return qs_client_break(c, -ENOBUFS);
	}
	if (c->n_queue == c->cap_queue) {
		cap = c->cap_queue == 0 ? 16 : 2 * c->cap_queue;
		q = realloc(c->queue, cap * sizeof(*q));
		if (q == NULL) {
			qs_client_response_free(resp);
			return qs_client_break(c, -ENOMEM);
		}
		c->queue = q;
		c->cap_queue = cap;
	}
	c->queue[c->n_queue++] = resp;
	return 0;
}

/* Remove and return queued entry `i`. */
static Quorumstore__V1__Response *
qs_client_dequeue(struct qs_client *c, size_t i)
{
	Quorumstore__V1__Response *resp = c->queue[i];

	memmove(&c->queue[i], &c->queue[i + 1], (c->n_queue - i - 1) * sizeof(c->queue[0]));
	c->n_queue--;
	return resp;
}

/*
 * The next response that is not for an abandoned call, waiting until
 * `deadline`. Does not look at the queue.
 */
static int
qs_client_next(struct qs_client *c, int64_t deadline, Quorumstore__V1__Response **out)
{
	Quorumstore__V1__Response *resp;
	int rc;

	for (;;) {
		rc = qs_client_take(c, &resp);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (c->n_abandoned > 0 && qs_client_forget(c, resp->request_id)) {
				qs_client_response_free(resp);
				continue;
			}
			*out = resp;
			return 0;
		}
		rc = qs_client_fill(c, deadline);
		if (rc != 0)
			return rc;
	}
}

/* Move every response already readable without waiting into the queue. */
static int
qs_client_pump(struct qs_client *c)
{
	Quorumstore__V1__Response *resp;
	int rc;

	for (;;) {
		rc = qs_client_next(c, 0, &resp);
		if (rc == -ETIMEDOUT)
			return 0;
		if (rc != 0)
			return rc;
		rc = qs_client_enqueue(c, resp);
		if (rc != 0)
			return rc;
	}
}

/* ---- sending ---- */

/* Write all of buf by `deadline`, reading responses meanwhile. */
static int
qs_client_write_all(struct qs_client *c, const uint8_t *buf, size_t len, int64_t deadline)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};
	size_t done = 0;
	ssize_t n;
	int rc;

	while (done < len) {
		n = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return qs_client_break(c, errno == EPIPE ? -ECONNRESET : -errno);
		rc = poll(&pfd, 1, qs_client_left(deadline));
		if (rc < 0 && errno != EINTR)
			return qs_client_break(c, -errno);
		if (rc == 0) {
			/* Half a frame on the wire breaks the framing. */
			return done > 0 ? qs_client_break(c, -ETIMEDOUT) : -ETIMEDOUT;
		}
		if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
			rc = qs_client_pump(c);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

static int
qs_client_send_by(struct qs_client *c, Quorumstore__V1__Request *req, uint64_t *request_id,
                  int64_t deadline)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (c->broken)
		return -EPIPE;
	/* The id is part of the packed size. */
	req->request_id = c->next_id;
	len = protobuf_c_message_get_packed_size(&req->base);
	if (len > c->frame_max || len > UINT32_MAX)
		return QS_ELIMIT;
	buf = malloc(QS_CLIENT_HEADER_BYTES + len);
	if (buf == NULL)
		return -ENOMEM;
	c->next_id++;
	qs_client_put_be32(buf, (uint32_t)len);
	protobuf_c_message_pack(&req->base, buf + QS_CLIENT_HEADER_BYTES);
	rc = qs_client_write_all(c, buf, QS_CLIENT_HEADER_BYTES + len, deadline);
	free(buf);
	if (rc == 0 && request_id != NULL)
		*request_id = req->request_id;
	return rc;
}

/* ---- public ---- */

int
qs_client_send(struct qs_client *c, Quorumstore__V1__Request *req, uint64_t *request_id)
{
	return qs_client_send_by(c, req, request_id, qs_client_deadline(c->io_timeout_ms));
}

int
qs_client_recv(struct qs_client *c, int timeout_ms, Quorumstore__V1__Response **out)
{
	if (c->n_queue > 0) {
		*out = qs_client_dequeue(c, 0);
		return 0;
	}
	if (c->broken)
		return -EPIPE;
	return qs_client_next(c, qs_client_deadline(timeout_ms), out);
}

int
qs_client_call(struct qs_client *c, Quorumstore__V1__Request *req, int timeout_ms,
               Quorumstore__V1__Response **out)
{
	int64_t deadline = qs_client_deadline(timeout_ms);
	Quorumstore__V1__Response *resp;
	uint64_t id;
	int rc;

	if (req->deadline_ms == 0 && timeout_ms > 0)
		req->deadline_ms = (uint32_t)timeout_ms;
	rc = qs_client_send_by(c, req, &id, deadline);
	if (rc != 0)
		return rc;
	/* Its response may have come while the request was being written. */
	for (size_t i = 0; i < c->n_queue; i++) {
		if (c->queue[i]->request_id == id) {
			*out = qs_client_dequeue(c, i);
			return 0;
		}
	}
	for (;;) {
		rc = qs_client_next(c, deadline, &resp);
		if (rc == -ETIMEDOUT)
			qs_client_abandon(c, id);
		if (rc != 0)
			return rc;
		if (resp->request_id == id) {
			*out = resp;
			return 0;
		}
		rc = qs_client_enqueue(c, resp);
		if (rc != 0)
			return rc;
	}
}

/* Whether `n` items at `p` are a valid argument: NULL only for none. */
static bool
qs_client_arg_ok(const void *p, size_t n)
{
	return p != NULL || n == 0;
}

/* Borrowed bytes as a field: protobuf-c only reads them while packing. */
static ProtobufCBinaryData
qs_client_bytes(const uint8_t *p, size_t len)
{
	ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)p};

	return b;
}

/*
 * qs_client_call() of a request whose body is `body`, the message of the
 * body field numbered body_case (the oneof's cases are its field numbers).
 * A body of another type than the field's is a bug here and aborts.
 */
static int
qs_client_call_body(struct qs_client *c, Quorumstore__V1__Request__BodyCase body_case,
                    ProtobufCMessage *body, int timeout_ms, Quorumstore__V1__Response **out)
{
	Quorumstore__V1__Request req = QUORUMSTORE__V1__REQUEST__INIT;
	const ProtobufCFieldDescriptor *field =
	    protobuf_c_message_descriptor_get_field(req.base.descriptor, (unsigned)body_case);

	if (field == NULL || field->descriptor != body->descriptor) {
		fprintf(stderr, "qs_client: request body %d is not a %s\n", (int)body_case,
		        body->descriptor->name);
		abort();
	}
	/* The members of the oneof share one place, each a pointer to its
	 * message, as protobuf-c itself reads them. */
	req.body_case = body_case;
	memcpy((uint8_t *)&req + field->offset, &body, sizeof(body));
	return qs_client_call(c, &req, timeout_ms, out);
}

int
qs_client_submit(struct qs_client *c, const ProtobufCBinaryData *txns, size_t n,
                 const uint8_t *idempotency_key, size_t key_len, int timeout_ms,
                 Quorumstore__V1__Response **out)
{
	Quorumstore__V1__SubmitBatchRequest submit = QUORUMSTORE__V1__SUBMIT_BATCH_REQUEST__INIT;

	if (key_len > QS_CLIENT_IDEMPOTENCY_KEY_MAX || (key_len > 0 && idempotency_key == NULL))
		return -EINVAL;
	submit.n_transactions = n;
	submit.transactions = (ProtobufCBinaryData *)txns;
	submit.idempotency_key = qs_client_bytes(idempotency_key, key_len);
	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH, &submit.base,
	                           timeout_ms, out);
}

int
qs_client_status(struct qs_client *c, int timeout_ms, Quorumstore__V1__Response **out)
{
	Quorumstore__V1__GetStatusRequest status = QUORUMSTORE__V1__GET_STATUS_REQUEST__INIT;

	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_GET_STATUS, &status.base,
	                           timeout_ms, out);
}

int
qs_client_get_payload(struct qs_client *c, const struct qs_client_payload_limits *lim,
                      const ProtobufCBinaryData *exclude, size_t n_exclude, int timeout_ms,
                      Quorumstore__V1__Response **out)
{
	Quorumstore__V1__GetPayloadRequest gp = QUORUMSTORE__V1__GET_PAYLOAD_REQUEST__INIT;

	if (lim == NULL || !qs_client_arg_ok(exclude, n_exclude))
		return -EINVAL;
	gp.max_txns = lim->max_txns;
	gp.max_bytes = lim->max_bytes;
	gp.max_inline_txns = lim->max_inline_txns;
	gp.max_inline_bytes = lim->max_inline_bytes;
	gp.return_non_full = lim->return_non_full;
	gp.n_exclude = n_exclude;
	gp.exclude = (ProtobufCBinaryData *)exclude;
	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_GET_PAYLOAD, &gp.base,
	                           timeout_ms, out);
}

int
qs_client_get_batch(struct qs_client *c, const uint8_t *digest, size_t digest_len,
                    const ProtobufCBinaryData *signers, size_t n_signers, int timeout_ms,
                    Quorumstore__V1__Response **out)
{
	Quorumstore__V1__GetBatchRequest gb = QUORUMSTORE__V1__GET_BATCH_REQUEST__INIT;

	if (!qs_client_arg_ok(digest, digest_len) || !qs_client_arg_ok(signers, n_signers))
		return -EINVAL;
	gb.digest = qs_client_bytes(digest, digest_len);
	gb.n_signers = n_signers;
	gb.signers = (ProtobufCBinaryData *)signers;
	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_GET_BATCH, &gb.base,
	                           timeout_ms, out);
}

int
qs_client_notify_commit(struct qs_client *c, uint64_t block_timestamp_us,
                        const ProtobufCBinaryData *digests, size_t n_digests, int timeout_ms,
                        Quorumstore__V1__Response **out)
{
	Quorumstore__V1__NotifyCommitRequest nc = QUORUMSTORE__V1__NOTIFY_COMMIT_REQUEST__INIT;

	if (!qs_client_arg_ok(digests, n_digests))
		return -EINVAL;
	nc.block_timestamp_us = block_timestamp_us;
	nc.n_digests = n_digests;
	nc.digests = (ProtobufCBinaryData *)digests;
	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT, &nc.base,
	                           timeout_ms, out);
}

int
qs_client_new_epoch(struct qs_client *c, uint64_t epoch,
                    Quorumstore__V1__ValidatorInfo *const *validators, size_t n_validators,
                    int timeout_ms, Quorumstore__V1__Response **out)
{
	Quorumstore__V1__NewEpochRequest ne = QUORUMSTORE__V1__NEW_EPOCH_REQUEST__INIT;

	if (!qs_client_arg_ok(validators, n_validators))
		return -EINVAL;
	for (size_t i = 0; i < n_validators; i++) {
		if (validators[i] == NULL)
			return -EINVAL;
	}
	ne.epoch = epoch;
	ne.n_validators = n_validators;
	ne.validators = (Quorumstore__V1__ValidatorInfo **)validators;
	return qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_NEW_EPOCH, &ne.base,
	                           timeout_ms, out);
}

/* ListBatches and ListProofs: the same three fields in two messages; both
 * are filled and the one of body_case is sent. */
static int
qs_client_list(struct qs_client *c, Quorumstore__V1__Request__BodyCase body_case,
               const uint8_t *author, size_t author_len, const uint8_t *start_after,
               size_t start_len, uint32_t limit, int timeout_ms, Quorumstore__V1__Response **out)
{
	Quorumstore__V1__ListBatchesRequest lb = QUORUMSTORE__V1__LIST_BATCHES_REQUEST__INIT;
	Quorumstore__V1__ListProofsRequest lp = QUORUMSTORE__V1__LIST_PROOFS_REQUEST__INIT;

	if (!qs_client_arg_ok(author, author_len) || !qs_client_arg_ok(start_after, start_len))
		return -EINVAL;
	lb.author = lp.author = qs_client_bytes(author, author_len);
	lb.start_after = lp.start_after = qs_client_bytes(start_after, start_len);
	lb.limit = lp.limit = limit;
	return qs_client_call_body(
	    c, body_case,
	    body_case == QUORUMSTORE__V1__REQUEST__BODY_LIST_PROOFS ? &lp.base : &lb.base,
	    timeout_ms, out);
}

int
qs_client_list_batches(struct qs_client *c, const uint8_t *author, size_t author_len,
                       const uint8_t *start_after, size_t start_len, uint32_t limit, int timeout_ms,
                       Quorumstore__V1__Response **out)
{
	return qs_client_list(c, QUORUMSTORE__V1__REQUEST__BODY_LIST_BATCHES, author, author_len,
	                      start_after, start_len, limit, timeout_ms, out);
}

int
qs_client_list_proofs(struct qs_client *c, const uint8_t *author, size_t author_len,
                      const uint8_t *start_after, size_t start_len, uint32_t limit, int timeout_ms,
                      Quorumstore__V1__Response **out)
{
	return qs_client_list(c, QUORUMSTORE__V1__REQUEST__BODY_LIST_PROOFS, author, author_len,
	                      start_after, start_len, limit, timeout_ms, out);
}

static int
qs_client_dial(const char *path, int64_t deadline, int *fd_out, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		qs_client_set_err(err, errlen, "%s: path longer than %zu bytes", path,
		                  sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		qs_client_set_err(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	for (;;) {
		if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		rc = -errno;
		if (rc == -EINTR)
			continue;
		/* A Unix socket says EAGAIN while the server's backlog is full. */
		if (rc == -EAGAIN && qs_client_left(deadline) != 0) {
			poll(NULL, 0, QS_CLIENT_CONNECT_RETRY);
			continue;
		}
		if (rc == -EAGAIN)
			rc = -ETIMEDOUT;
		qs_client_set_err(err, errlen, "connect %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

int
qs_client_connect_opts(const char *socket_path, const char *client_name,
                       const struct qs_client_opts *opts, int timeout_ms, struct qs_client **out,
                       char *err, size_t errlen)
{
	Quorumstore__V1__HelloRequest hello = QUORUMSTORE__V1__HELLO_REQUEST__INIT;
	Quorumstore__V1__Response *resp = NULL;
	int64_t deadline = qs_client_deadline(timeout_ms);
	struct qs_client *c = NULL;
	int rc;

	if (opts != NULL && opts->frame_max_bytes > UINT32_MAX) {
		qs_client_set_err(err, errlen, "frame limit %zu over 2^32 - 1",
		                  opts->frame_max_bytes);
		rc = -EINVAL;
		goto out;
	}
	if (opts != NULL && opts->spin_us > QS_CLIENT_SPIN_MAX_US) {
		qs_client_set_err(err, errlen, "spin of %" PRIu32 " us over %d us", opts->spin_us,
		                  QS_CLIENT_SPIN_MAX_US);
		rc = -EINVAL;
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rc = -ENOMEM;
		qs_client_set_err(err, errlen, "out of memory");
		goto out;
	}
	c->fd = -1;
	c->next_id = 1;
	c->io_timeout_ms = timeout_ms;
	c->frame_max = opts != NULL && opts->frame_max_bytes != 0 ? opts->frame_max_bytes
	                                                          : QS_CLIENT_FRAME_MAX_BYTES;
	c->spin_us = opts != NULL ? opts->spin_us : 0;
	c->cap = QS_CLIENT_READ_MIN;
	c->buf = malloc(c->cap);
	if (c->buf == NULL) {
		rc = -ENOMEM;
		qs_client_set_err(err, errlen, "out of memory");
		goto out;
	}
	rc = qs_client_dial(socket_path, deadline, &c->fd, err, errlen);
	if (rc != 0)
		goto out;
	hello.protocol_version = 1;
	hello.client_name = (char *)(client_name != NULL ? client_name : "");
	rc = qs_client_call_body(c, QUORUMSTORE__V1__REQUEST__BODY_HELLO, &hello.base,
	                         qs_client_left(deadline), &resp);
	if (rc == -ECONNRESET) {
		qs_client_set_err(err, errlen,
		                  "%s: the server closed the connection (is this uid in "
		                  "rpc.allowed_uids?)",
		                  socket_path);
		goto out;
	}
	if (rc != 0) {
		qs_client_set_err(err, errlen, "%s: Hello: %s", socket_path, qs_strerror(rc));
		goto out;
	}
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK ||
	    resp->body_case != QUORUMSTORE__V1__RESPONSE__BODY_HELLO) {
		rc = -EPROTO;
		qs_client_set_err(err, errlen, "%s: Hello refused: %s: %s", socket_path,
		                  qs_client_status_name(resp->status),
		                  resp->message != NULL ? resp->message : "");
		goto out;
	}
	c->hello = resp;
	resp = NULL;
	*out = c;
	c = NULL;
out:
	qs_client_response_free(resp);
	qs_client_close(c);
	return rc;
}

int
qs_client_connect(const char *socket_path, const char *client_name, int timeout_ms,
                  struct qs_client **out, char *err, size_t errlen)
{
	return qs_client_connect_opts(socket_path, client_name, NULL, timeout_ms, out, err, errlen);
}

const Quorumstore__V1__HelloResponse *
qs_client_server(const struct qs_client *c)
{
	return c->hello->hello;
}

void
qs_client_response_free(Quorumstore__V1__Response *resp)
{
	if (resp == NULL)
		return;
	qs_frame_msg_free(&resp->base);
}

const char *
qs_client_status_name(Quorumstore__V1__Status status)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&quorumstore__v1__status__descriptor, (int)status);
	static const char prefix[] = "STATUS_";

	if (v == NULL)
		return "UNKNOWN";
	if (strncmp(v->name, prefix, sizeof(prefix) - 1) == 0)
		return v->name + sizeof(prefix) - 1;
	return v->name;
}

void
qs_client_close(struct qs_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	for (size_t i = 0; i < c->n_queue; i++)
		qs_client_response_free(c->queue[i]);
	free(c->queue);
	free(c->abandoned);
	qs_client_response_free(c->hello);
	free(c->buf);
	free(c);
}
