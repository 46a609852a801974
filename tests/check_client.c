/*
 * Tests of the typed calls of client/qsclient (GetPayload, GetBatch,
 * NotifyCommit, NewEpoch, ListBatches, ListProofs) and of the qsctl
 * commands built on them, against a fake server in this process: a thread
 * serving a Unix socket in a temporary directory with the RPC framing
 * (4-byte big-endian length, one protobuf Request or Response). It answers
 * Hello itself, records every other request, and answers it from the
 * behaviour the test chose (the `fake` settings below).
 *
 * qsctl is run as a child process (B/qsctl, B from the environment, else
 * the build directory this binary is in, else build) with its stdout and
 * stderr in files; its JSON output is checked for validity with python3.
 */
#include "client/qsclient.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHAIN_ID    7
#define EPOCH       3
#define IO_MS       5000
#define MAX_RECORDS 64
#define MAX_ENTRIES 5000                /* entries the fake lists at most */
#define PAGE_MAX    1000                /* the fake's largest page, as qsd's */
#define PAGE_DFL    100                 /* for limit 0 */
#define EXPIRATION  1767225600000000ull /* 2026-01-01T00:00:00Z */

#define STATUS(name) QUORUMSTORE__V1__STATUS__STATUS_##name
#define REQ(name)    QUORUMSTORE__V1__REQUEST__BODY_##name
#define RESP(name)   QUORUMSTORE__V1__RESPONSE__BODY_##name

static char build_dir[256];
static char tmpdir[256];
static char sock_path[PATH_MAX];

/* ---- the fake server ---- */

/* What the fake answers; set by a test before it talks to the server. */
static struct {
	size_t n_entries;     /* batches (and proofs) it lists */
	bool repeat_boundary; /* each page after the first starts with the last entry again */
	bool stuck_cursor;    /* every page has the same non-empty next */
	Quorumstore__V1__Status status; /* non-OK: every call is answered with it */
	const char *message;
	bool corrupt_batch; /* GetBatch: the transactions do not match the digest */
	uint32_t proofs_removed;
} fake;

static int listen_fd = -1;
static int wake_fd[2] = {-1, -1};
static pthread_t server_thread;
static bool server_running;

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static Quorumstore__V1__Request *records[MAX_RECORDS];
static size_t n_records;

static const uint8_t author_a[QS_PUBKEY_BYTES] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
                                                  0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t author_b[QS_PUBKEY_BYTES] = {0xb1, 0xb2, 0xb3};

/* The transactions of the batch GetBatch serves. */
static const char *const batch_txns[] = {"first", "the second one", "3"};
#define N_BATCH_TXNS (sizeof(batch_txns) / sizeof(batch_txns[0]))

/* Entry i of the listings: its digest, author and counts. */
static void
entry_info(size_t i, Quorumstore__V1__BatchInfo *info, uint8_t *digest)
{
	quorumstore__v1__batch_info__init(info);
	memset(digest, 0, QS_DIGEST_BYTES);
	digest[0] = 0xd0;
	qs_put_be64(digest + 24, i);
	info->digest.data = digest;
	info->digest.len = QS_DIGEST_BYTES;
	info->author.data = (uint8_t *)(i % 2 == 0 ? author_a : author_b);
	info->author.len = QS_PUBKEY_BYTES;
	info->batch_id = 1000 + i;
	info->epoch = EPOCH;
	info->expiration_us = EXPIRATION + i;
	info->num_txns = (uint32_t)(i % 7 + 1);
	info->num_bytes = 100 * (uint64_t)i;
}

static uint64_t
cursor_index(const ProtobufCBinaryData *start_after)
{
	return start_after->len == 8 ? qs_get_be64(start_after->data) : 0;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
send_response(int fd, Quorumstore__V1__Response *resp)
{
	size_t len = protobuf_c_message_get_packed_size(&resp->base);
	uint8_t *buf = malloc(4 + len);
	int rc;

	ck_assert_ptr_nonnull(buf);
	qs_put_be32(buf, (uint32_t)len);
	protobuf_c_message_pack(&resp->base, buf + 4);
	rc = write_all(fd, buf, 4 + len);
	free(buf);
	return rc;
}

/* Storage for one answer; the server answers one request at a time. */
static struct {
	Quorumstore__V1__BatchInfo infos[PAGE_MAX + 1];
	Quorumstore__V1__BatchInfo *info_ptrs[PAGE_MAX + 1];
	Quorumstore__V1__ProofOfStore proofs[PAGE_MAX + 1];
	Quorumstore__V1__ProofOfStore *proof_ptrs[PAGE_MAX + 1];
	uint8_t digests[PAGE_MAX + 1][QS_DIGEST_BYTES];
	uint8_t bitmap[2];
	uint8_t next[8];
	ProtobufCBinaryData txns[N_BATCH_TXNS];
	Quorumstore__V1__Batch batch;
	Quorumstore__V1__BatchInfo batch_info;
	uint8_t batch_digest[QS_DIGEST_BYTES];
	Quorumstore__V1__ListBatchesResponse lb;
	Quorumstore__V1__ListProofsResponse lp;
	Quorumstore__V1__GetBatchResponse gb;
	Quorumstore__V1__GetPayloadResponse gp;
	Quorumstore__V1__Batch *inline_ptrs[1];
	Quorumstore__V1__NotifyCommitResponse nc;
	Quorumstore__V1__NewEpochResponse ne;
} ans;

/* A page of at most `limit` entries after the cursor `start_after` into
 * ans.infos, and its cursor into *next; returns how many. */
static size_t
answer_page(const ProtobufCBinaryData *start_after, uint32_t limit, ProtobufCBinaryData *next)
{
	size_t from = cursor_index(start_after), want, k = 0, i;

	want = limit == 0 ? PAGE_DFL : limit > PAGE_MAX ? PAGE_MAX : limit;
	if (fake.repeat_boundary && from > 0) {
		/* The entry the previous page ended with, again. */
		entry_info(from - 1, &ans.infos[k], ans.digests[k]);
		k++;
	}
	for (i = from; i < fake.n_entries && i - from < want; i++, k++)
		entry_info(i, &ans.infos[k], ans.digests[k]);
	for (size_t j = 0; j < k; j++)
		ans.info_ptrs[j] = &ans.infos[j];
	next->data = NULL;
	next->len = 0;
	if (fake.stuck_cursor || i < fake.n_entries) {
		qs_put_be64(ans.next, fake.stuck_cursor ? 1 : i);
		next->data = ans.next;
		next->len = sizeof(ans.next);
	}
	return k;
}

static void
answer_get_batch(Quorumstore__V1__Response *resp)
{
	static char altered[] = "altered";

	quorumstore__v1__batch__init(&ans.batch);
	quorumstore__v1__batch_info__init(&ans.batch_info);
	for (size_t i = 0; i < N_BATCH_TXNS; i++) {
		ans.txns[i].data = (uint8_t *)batch_txns[i];
		ans.txns[i].len = strlen(batch_txns[i]);
		ans.batch_info.num_bytes += ans.txns[i].len;
	}
	ans.batch_info.author.data = (uint8_t *)author_a;
	ans.batch_info.author.len = QS_PUBKEY_BYTES;
	ans.batch_info.batch_id = 77;
	ans.batch_info.epoch = EPOCH;
	ans.batch_info.expiration_us = EXPIRATION;
	ans.batch_info.num_txns = N_BATCH_TXNS;
	ck_assert_int_eq(qs_codec_batch_digest(CHAIN_ID, author_a, EPOCH, 77, ans.txns,
	                                       N_BATCH_TXNS, ans.batch_digest),
	                 0);
	ans.batch_info.digest.data = ans.batch_digest;
	ans.batch_info.digest.len = QS_DIGEST_BYTES;
	if (fake.corrupt_batch) {
		/* Same length, other bytes. */
		ans.txns[2].data = (uint8_t *)altered;
		ans.txns[2].len = 1;
	}
	ans.batch.info = &ans.batch_info;
	ans.batch.n_transactions = N_BATCH_TXNS;
	ans.batch.transactions = ans.txns;
	quorumstore__v1__get_batch_response__init(&ans.gb);
	ans.gb.batch = &ans.batch;
	ans.gb.source = QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_DISK;
	resp->body_case = RESP(GET_BATCH);
	resp->get_batch = &ans.gb;
}

/* Fill resp for req (not a Hello). */
static void
answer(const Quorumstore__V1__Request *req, Quorumstore__V1__Response *resp)
{
	size_t n;

	if (fake.status != STATUS(OK)) {
		resp->status = fake.status;
		resp->message = (char *)(fake.message != NULL ? fake.message : "");
		return;
	}
	switch (req->body_case) {
	case REQ(LIST_BATCHES):
		quorumstore__v1__list_batches_response__init(&ans.lb);
		n = answer_page(&req->list_batches->start_after, req->list_batches->limit,
		                &ans.lb.next);
		ans.lb.n_infos = n;
		ans.lb.infos = ans.info_ptrs;
		resp->body_case = RESP(LIST_BATCHES);
		resp->list_batches = &ans.lb;
		break;
	case REQ(LIST_PROOFS):
		quorumstore__v1__list_proofs_response__init(&ans.lp);
		n = answer_page(&req->list_proofs->start_after, req->list_proofs->limit,
		                &ans.lp.next);
		/* Validators 0, 1, 3 and 8 signed. */
		ans.bitmap[0] = 0x0b;
		ans.bitmap[1] = 0x01;
		for (size_t i = 0; i < n; i++) {
			quorumstore__v1__proof_of_store__init(&ans.proofs[i]);
			ans.proofs[i].info = &ans.infos[i];
			ans.proofs[i].signer_bitmap.data = ans.bitmap;
			ans.proofs[i].signer_bitmap.len = sizeof(ans.bitmap);
			ans.proof_ptrs[i] = &ans.proofs[i];
		}
		ans.lp.n_proofs = n;
		ans.lp.proofs = ans.proof_ptrs;
		resp->body_case = RESP(LIST_PROOFS);
		resp->list_proofs = &ans.lp;
		break;
	case REQ(GET_BATCH):
		answer_get_batch(resp);
		break;
	case REQ(GET_PAYLOAD):
		/* Two proofs (entries 0 and 1) and the GetBatch batch inline. */
		answer_get_batch(resp);
		quorumstore__v1__get_payload_response__init(&ans.gp);
		for (size_t i = 0; i < 2; i++) {
			entry_info(i, &ans.infos[i], ans.digests[i]);
			quorumstore__v1__proof_of_store__init(&ans.proofs[i]);
			ans.proofs[i].info = &ans.infos[i];
			ans.bitmap[0] = 0x05;
			ans.proofs[i].signer_bitmap.data = ans.bitmap;
			ans.proofs[i].signer_bitmap.len = 1;
			ans.proof_ptrs[i] = &ans.proofs[i];
		}
		ans.gp.n_proofs = 2;
		ans.gp.proofs = ans.proof_ptrs;
		ans.inline_ptrs[0] = &ans.batch;
		ans.gp.n_inline_batches = 1;
		ans.gp.inline_batches = ans.inline_ptrs;
		resp->body_case = RESP(GET_PAYLOAD);
		resp->get_payload = &ans.gp;
		break;
	case REQ(NOTIFY_COMMIT):
		quorumstore__v1__notify_commit_response__init(&ans.nc);
		ans.nc.proofs_removed = fake.proofs_removed;
		resp->body_case = RESP(NOTIFY_COMMIT);
		resp->notify_commit = &ans.nc;
		break;
	case REQ(NEW_EPOCH):
		quorumstore__v1__new_epoch_response__init(&ans.ne);
		resp->body_case = RESP(NEW_EPOCH);
		resp->new_epoch = &ans.ne;
		break;
	default:
		resp->status = STATUS(UNIMPLEMENTED);
		resp->message = "not in this test";
		break;
	}
}

/* Serve one connection until the client closes it or the server stops. */
static void
serve_conn(int fd)
{
	Quorumstore__V1__HelloResponse hello = QUORUMSTORE__V1__HELLO_RESPONSE__INIT;

	for (;;) {
		Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
		Quorumstore__V1__Request *req;
		struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
		                        {.fd = wake_fd[0], .events = POLLIN}};
		uint8_t hdr[4], *buf;
		uint32_t len;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return;
		if (pfd[1].revents != 0)
			return;
		if (read_all(fd, hdr, sizeof(hdr)) != 0)
			return;
		len = qs_get_be32(hdr);
		ck_assert_uint_le(len, QS_CLIENT_FRAME_MAX_BYTES);
		buf = malloc(len > 0 ? len : 1);
		ck_assert_ptr_nonnull(buf);
		if (read_all(fd, buf, len) != 0) {
			free(buf);
			return;
		}
		req = quorumstore__v1__request__unpack(NULL, len, buf);
		free(buf);
		ck_assert_ptr_nonnull(req);
		resp.request_id = req->request_id;
		if (req->body_case == REQ(HELLO)) {
			hello.server_version = "fake";
			hello.protocol_version = 1;
			hello.epoch = EPOCH;
			hello.chain_id = CHAIN_ID;
			hello.author.data = (uint8_t *)author_a;
			hello.author.len = QS_PUBKEY_BYTES;
			resp.body_case = RESP(HELLO);
			resp.hello = &hello;
			quorumstore__v1__request__free_unpacked(req, NULL);
		} else {
			answer(req, &resp);
			pthread_mutex_lock(&rec_mu);
			if (n_records < MAX_RECORDS)
				records[n_records++] = req;
			else
				quorumstore__v1__request__free_unpacked(req, NULL);
			pthread_mutex_unlock(&rec_mu);
		}
		if (send_response(fd, &resp) != 0)
			return;
	}
}

static void *
server_main(void *arg)
{
	for (;;) {
		struct pollfd pfd[2] = {{.fd = listen_fd, .events = POLLIN},
		                        {.fd = wake_fd[0], .events = POLLIN}};
		int fd;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_conn(fd);
		close(fd);
	}
	return NULL;
}

/* How many requests of body `body` were recorded; the first `max` of them,
 * oldest first, into out. */
static size_t
recorded(Quorumstore__V1__Request__BodyCase body, Quorumstore__V1__Request **out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&rec_mu);
	for (size_t i = 0; i < n_records; i++) {
		if (records[i]->body_case != body)
			continue;
		if (n < max)
			out[n] = records[i];
		n++;
	}
	pthread_mutex_unlock(&rec_mu);
	return n;
}

/* The one request of body `body` recorded so far. */
static Quorumstore__V1__Request *
recorded_one(Quorumstore__V1__Request__BodyCase body)
{
	Quorumstore__V1__Request *req = NULL;

	ck_assert_uint_eq(recorded(body, &req, 1), 1);
	return req;
}

/* Requests the fake recorded so far. */
static size_t
records_count(void)
{
	size_t n;

	pthread_mutex_lock(&rec_mu);
	n = n_records;
	pthread_mutex_unlock(&rec_mu);
	return n;
}

/* ---- fixture ---- */

static void
setup(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	signal(SIGPIPE, SIG_IGN);
	memset(&fake, 0, sizeof(fake));
	fake.status = STATUS(OK);
	n_records = 0;
	qs_test_mkdtemp(tmpdir, sizeof(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/rpc.sock", tmpdir);
	ck_assert_uint_lt(strlen(sock_path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(listen_fd, 0);
	ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(listen_fd, 8), 0);
	ck_assert_int_eq(pipe2(wake_fd, O_CLOEXEC), 0);
	ck_assert_int_eq(pthread_create(&server_thread, NULL, server_main, NULL), 0);
	server_running = true;
}

static void
teardown(void)
{
	if (server_running) {
		ck_assert_int_eq(write(wake_fd[1], "x", 1), 1);
		pthread_join(server_thread, NULL);
		server_running = false;
	}
	close(listen_fd);
	close(wake_fd[0]);
	close(wake_fd[1]);
	for (size_t i = 0; i < n_records; i++)
		quorumstore__v1__request__free_unpacked(records[i], NULL);
	n_records = 0;
	qs_test_rmtree(tmpdir);
}

static struct qs_client *
connect_client(void)
{
	struct qs_client *c = NULL;
	char err[256] = "";
	int rc = qs_client_connect(sock_path, "check_client", IO_MS, &c, err, sizeof(err));

	ck_assert_msg(rc == 0, "qs_client_connect: %s (%s)", qs_strerror(rc), err);
	return c;
}

static void
digest_of(size_t i, uint8_t *digest)
{
	Quorumstore__V1__BatchInfo info;

	entry_info(i, &info, digest);
}

static bool
bin_eq(const ProtobufCBinaryData *b, const uint8_t *p, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

/* ---- the typed calls ---- */

START_TEST(get_payload_sends_its_limits_and_exclusions)
{
	struct qs_client *c = connect_client();
	struct qs_client_payload_limits lim = {
	    .max_txns = 500,
	    .max_bytes = 1 << 20,
	    .max_inline_txns = 50,
	    .max_inline_bytes = 4096,
	    .return_non_full = true,
	};
	uint8_t d[2][QS_DIGEST_BYTES];
	ProtobufCBinaryData ex[2] = {{QS_DIGEST_BYTES, d[0]}, {QS_DIGEST_BYTES, d[1]}};
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__Request *req;
	const Quorumstore__V1__GetPayloadRequest *gp;

	digest_of(10, d[0]);
	digest_of(11, d[1]);
	ck_assert_int_eq(qs_client_get_payload(c, &lim, ex, 2, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(OK));
	ck_assert_int_eq(resp->body_case, RESP(GET_PAYLOAD));
	ck_assert_uint_eq(resp->get_payload->n_proofs, 2);
	ck_assert_uint_eq(resp->get_payload->n_inline_batches, 1);
	ck_assert_uint_eq(resp->get_payload->inline_batches[0]->n_transactions, N_BATCH_TXNS);

	req = recorded_one(REQ(GET_PAYLOAD));
	ck_assert_uint_eq(req->deadline_ms, IO_MS);
	gp = req->get_payload;
	ck_assert_uint_eq(gp->max_txns, 500);
	ck_assert_uint_eq(gp->max_bytes, 1 << 20);
	ck_assert_uint_eq(gp->max_inline_txns, 50);
	ck_assert_uint_eq(gp->max_inline_bytes, 4096);
	ck_assert(gp->return_non_full);
	ck_assert_uint_eq(gp->n_exclude, 2);
	ck_assert(bin_eq(&gp->exclude[0], d[0], QS_DIGEST_BYTES));
	ck_assert(bin_eq(&gp->exclude[1], d[1], QS_DIGEST_BYTES));
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

/* A client that spins takes its answers as one that sleeps does, and a
 * call with less time left than the spin returns when its time is up. */
START_TEST(a_spinning_client_is_answered_and_keeps_its_deadline)
{
	struct qs_client_opts opts = {.spin_us = QS_CLIENT_SPIN_MAX_US};
	struct qs_client_payload_limits lim = {.max_txns = 10, .max_bytes = 4096};
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *c = NULL;
	struct timespec t0, t1;
	char err[256] = "";
	int64_t elapsed_ms;

	ck_assert_int_eq(
	    qs_client_connect_opts(sock_path, "check_client", &opts, IO_MS, &c, err, sizeof(err)),
	    0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(qs_client_get_payload(c, &lim, NULL, 0, IO_MS, &resp), 0);
		ck_assert_int_eq(resp->body_case, RESP(GET_PAYLOAD));
		ck_assert_uint_eq(resp->get_payload->n_proofs, 2);
		qs_client_response_free(resp);
		resp = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(qs_client_recv(c, 0, &resp), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	elapsed_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	/* Spinning its whole 100 ms would be a deadline ignored. */
	ck_assert_int_lt(elapsed_ms, QS_CLIENT_SPIN_MAX_US / 1000);
	ck_assert_ptr_null(resp);
	qs_client_close(c);

	opts.spin_us = QS_CLIENT_SPIN_MAX_US + 1;
	c = NULL;
	ck_assert_int_eq(
	    qs_client_connect_opts(sock_path, "check_client", &opts, IO_MS, &c, err, sizeof(err)),
	    -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err, "spin") != NULL, "%s", err);
}
END_TEST

START_TEST(get_batch_sends_the_digest_and_signers)
{
	struct qs_client *c = connect_client();
	uint8_t d[QS_DIGEST_BYTES];
	ProtobufCBinaryData signers[2] = {{QS_PUBKEY_BYTES, (uint8_t *)author_a},
	                                  {QS_PUBKEY_BYTES, (uint8_t *)author_b}};
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__Request *req;

	digest_of(5, d);
	ck_assert_int_eq(qs_client_get_batch(c, d, sizeof(d), signers, 2, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(OK));
	ck_assert_int_eq(resp->body_case, RESP(GET_BATCH));
	ck_assert_int_eq(resp->get_batch->source, QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_DISK);
	ck_assert_uint_eq(resp->get_batch->batch->n_transactions, N_BATCH_TXNS);
	ck_assert(bin_eq(&resp->get_batch->batch->transactions[1], (const uint8_t *)batch_txns[1],
	                 strlen(batch_txns[1])));

	req = recorded_one(REQ(GET_BATCH));
	ck_assert(bin_eq(&req->get_batch->digest, d, sizeof(d)));
	ck_assert_uint_eq(req->get_batch->n_signers, 2);
	ck_assert(bin_eq(&req->get_batch->signers[0], author_a, QS_PUBKEY_BYTES));
	ck_assert(bin_eq(&req->get_batch->signers[1], author_b, QS_PUBKEY_BYTES));
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

START_TEST(notify_commit_sends_the_timestamp_and_digests)
{
	struct qs_client *c = connect_client();
	uint8_t d[3][QS_DIGEST_BYTES];
	ProtobufCBinaryData list[3];
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__Request *req;

	for (size_t i = 0; i < 3; i++) {
		digest_of(i, d[i]);
		list[i].data = d[i];
		list[i].len = QS_DIGEST_BYTES;
	}
	fake.proofs_removed = 3;
	ck_assert_int_eq(qs_client_notify_commit(c, EXPIRATION - 5, list, 3, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(OK));
	ck_assert_int_eq(resp->body_case, RESP(NOTIFY_COMMIT));
	ck_assert_uint_eq(resp->notify_commit->proofs_removed, 3);

	req = recorded_one(REQ(NOTIFY_COMMIT));
	ck_assert_uint_eq(req->notify_commit->block_timestamp_us, EXPIRATION - 5);
	ck_assert_uint_eq(req->notify_commit->n_digests, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert(bin_eq(&req->notify_commit->digests[i], d[i], QS_DIGEST_BYTES));
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

START_TEST(new_epoch_sends_the_validators_in_order)
{
	struct qs_client *c = connect_client();
	Quorumstore__V1__ValidatorInfo v[2], *vp[2] = {&v[0], &v[1]};
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__Request *req;

	for (int i = 0; i < 2; i++) {
		quorumstore__v1__validator_info__init(&v[i]);
		v[i].name = i == 0 ? "v0" : "v1";
		v[i].address = "127.0.0.1:7000";
		v[i].signing_key.data = (uint8_t *)(i == 0 ? author_a : author_b);
		v[i].signing_key.len = QS_PUBKEY_BYTES;
		v[i].voting_power = (uint64_t)i + 1;
	}
	ck_assert_int_eq(qs_client_new_epoch(c, EPOCH + 1, vp, 2, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(OK));
	ck_assert_int_eq(resp->body_case, RESP(NEW_EPOCH));

	req = recorded_one(REQ(NEW_EPOCH));
	ck_assert_uint_eq(req->new_epoch->epoch, EPOCH + 1);
	ck_assert_uint_eq(req->new_epoch->n_validators, 2);
	ck_assert_str_eq(req->new_epoch->validators[1]->name, "v1");
	ck_assert_uint_eq(req->new_epoch->validators[1]->voting_power, 2);
	ck_assert(bin_eq(&req->new_epoch->validators[1]->signing_key, author_b, QS_PUBKEY_BYTES));
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

START_TEST(list_calls_send_the_author_cursor_and_limit)
{
	struct qs_client *c = connect_client();
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__Request *reqs[2];
	uint8_t cursor[8];

	fake.n_entries = 30;
	ck_assert_int_eq(qs_client_list_batches(c, NULL, 0, NULL, 0, 10, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->body_case, RESP(LIST_BATCHES));
	ck_assert_uint_eq(resp->list_batches->n_infos, 10);
	ck_assert_uint_eq(resp->list_batches->next.len, sizeof(cursor));
	memcpy(cursor, resp->list_batches->next.data, sizeof(cursor));
	qs_client_response_free(resp);
	resp = NULL;
	ck_assert_int_eq(qs_client_list_batches(c, author_b, QS_PUBKEY_BYTES, cursor,
	                                        sizeof(cursor), 0, IO_MS, &resp),
	                 0);
	ck_assert_uint_eq(resp->list_batches->n_infos, 20);
	ck_assert_uint_eq(resp->list_batches->infos[0]->batch_id, 1010);
	ck_assert_uint_eq(resp->list_batches->next.len, 0);
	qs_client_response_free(resp);
	resp = NULL;
	ck_assert_uint_eq(recorded(REQ(LIST_BATCHES), reqs, 2), 2);
	ck_assert_uint_eq(reqs[0]->list_batches->author.len, 0);
	ck_assert_uint_eq(reqs[0]->list_batches->start_after.len, 0);
	ck_assert_uint_eq(reqs[0]->list_batches->limit, 10);
	ck_assert(bin_eq(&reqs[1]->list_batches->author, author_b, QS_PUBKEY_BYTES));
	ck_assert(bin_eq(&reqs[1]->list_batches->start_after, cursor, sizeof(cursor)));
	ck_assert_uint_eq(reqs[1]->list_batches->limit, 0);

	ck_assert_int_eq(qs_client_list_proofs(c, author_a, QS_PUBKEY_BYTES, cursor, sizeof(cursor),
	                                       5, IO_MS, &resp),
	                 0);
	ck_assert_int_eq(resp->body_case, RESP(LIST_PROOFS));
	ck_assert_uint_eq(resp->list_proofs->n_proofs, 5);
	ck_assert_ptr_nonnull(resp->list_proofs->proofs[0]->info);
	ck_assert_uint_eq(resp->list_proofs->proofs[0]->info->batch_id, 1010);
	qs_client_response_free(resp);
	ck_assert_uint_eq(recorded(REQ(LIST_PROOFS), reqs, 1), 1);
	ck_assert(bin_eq(&reqs[0]->list_proofs->author, author_a, QS_PUBKEY_BYTES));
	ck_assert(bin_eq(&reqs[0]->list_proofs->start_after, cursor, sizeof(cursor)));
	ck_assert_uint_eq(reqs[0]->list_proofs->limit, 5);
	qs_client_close(c);
}
END_TEST

START_TEST(a_refusal_reaches_the_caller_with_its_status_and_message)
{
	struct qs_client *c = connect_client();
	uint8_t d[QS_DIGEST_BYTES] = {0};
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client_payload_limits lim = {.max_txns = 1};

	fake.status = STATUS(NOT_FOUND);
	fake.message = "no batch 00..00 here or on any signer";
	ck_assert_int_eq(qs_client_get_batch(c, d, sizeof(d), NULL, 0, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(NOT_FOUND));
	ck_assert_str_eq(resp->message, fake.message);
	ck_assert_int_eq(resp->body_case, QUORUMSTORE__V1__RESPONSE__BODY__NOT_SET);
	qs_client_response_free(resp);
	resp = NULL;

	fake.status = STATUS(UNIMPLEMENTED);
	fake.message = "not served by this version";
	ck_assert_int_eq(qs_client_get_payload(c, &lim, NULL, 0, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(UNIMPLEMENTED));
	ck_assert_str_eq(resp->message, fake.message);
	ck_assert_str_eq(qs_client_status_name(resp->status), "UNIMPLEMENTED");
	qs_client_response_free(resp);
	qs_client_close(c);
}
END_TEST

START_TEST(null_data_with_a_length_is_refused_and_nothing_is_sent)
{
	struct qs_client *c = connect_client();
	Quorumstore__V1__Response *resp = NULL;
	Quorumstore__V1__ValidatorInfo *none[1] = {NULL};
	uint8_t d[QS_DIGEST_BYTES] = {0};

	ck_assert_int_eq(qs_client_get_batch(c, NULL, QS_DIGEST_BYTES, NULL, 0, IO_MS, &resp),
	                 -EINVAL);
	ck_assert_int_eq(qs_client_get_batch(c, d, sizeof(d), NULL, 1, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_get_payload(c, NULL, NULL, 0, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_notify_commit(c, 1, NULL, 2, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_new_epoch(c, 1, none, 1, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_list_batches(c, NULL, 32, NULL, 0, 0, IO_MS, &resp), -EINVAL);
	ck_assert_int_eq(qs_client_list_proofs(c, NULL, 0, NULL, 8, 0, IO_MS, &resp), -EINVAL);
	ck_assert_ptr_null(resp);
	/* The connection is fine and nothing reached the server. */
	ck_assert_int_eq(qs_client_notify_commit(c, 1, NULL, 0, IO_MS, &resp), 0);
	ck_assert_int_eq(resp->status, STATUS(OK));
	qs_client_response_free(resp);
	ck_assert_uint_eq(records_count(), 1);
	qs_client_close(c);
}
END_TEST

/* ---- qsctl against the fake ---- */

struct run {
	int status; /* exit status, or 128 + signal */
	char *out;  /* stdout */
	char *err;  /* stderr */
};

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	long size;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	ck_assert_int_ge(size, 0);
	rewind(f);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	len = fread(buf, 1, (size_t)size, f);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Run `build/qsctl -s SOCKET ARGS...` (NULL-terminated). */
static struct run
qsctl(const char *arg, ...)
{
	char prog[300], out_path[PATH_MAX], err_path[PATH_MAX];
	char *argv[64];
	struct run r = {0};
	va_list ap;
	int n = 0, ws;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/qsctl", build_dir);
	ck_assert_msg(access(prog, X_OK) == 0, "%s is missing (build it first)", prog);
	argv[n++] = "qsctl";
	argv[n++] = "-s";
	argv[n++] = sock_path;
	va_start(ap, arg);
	for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
		ck_assert_int_lt(n, 63);
		argv[n++] = (char *)a;
	}
	va_end(ap);
	argv[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/qsctl.out", tmpdir);
	snprintf(err_path, sizeof(err_path), "%s/qsctl.err", tmpdir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(e, STDERR_FILENO) < 0)
			_exit(126);
		unsetenv("LD_PRELOAD");
		signal(SIGPIPE, SIG_DFL);
		execv(prog, argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	r.out = slurp(out_path);
	r.err = slurp(err_path);
	return r;
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void
expect_exit(const struct run *r, int status)
{
	ck_assert_msg(r->status == status, "qsctl exited %d, want %d; stdout: %.500s; stderr: %s",
	              r->status, status, r->out, r->err);
}

/* Whether `text` is one JSON document (Python's json module says). */
static bool
json_valid(const char *text)
{
	char path[PATH_MAX];
	FILE *f;
	pid_t pid;
	int ws;

	snprintf(path, sizeof(path), "%s/doc.json", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	/* Debian's interpreter, without the sanitizer runtime the tests may
	 * preload (its leak report would fail the check). */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsetenv("LD_PRELOAD");
		execl("/usr/bin/python3", "python3", "-c",
		      "import json,sys; json.load(open(sys.argv[1]))", path, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static size_t
count_of(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static size_t
lines_of(const char *text)
{
	return count_of(text, "\n");
}

static void
expect_in(const char *text, const char *needle)
{
	ck_assert_msg(strstr(text, needle) != NULL, "'%s' not in: %.2000s", needle, text);
}

/* The digest of the fake's batch (author a, batch 77, batch_txns), raw and
 * in hex. */
static void
batch_digest(uint8_t *digest, char *hex)
{
	ProtobufCBinaryData txns[N_BATCH_TXNS];

	for (size_t i = 0; i < N_BATCH_TXNS; i++) {
		txns[i].data = (uint8_t *)batch_txns[i];
		txns[i].len = strlen(batch_txns[i]);
	}
	ck_assert_int_eq(
	    qs_codec_batch_digest(CHAIN_ID, author_a, EPOCH, 77, txns, N_BATCH_TXNS, digest), 0);
	qs_hex_encode(digest, QS_DIGEST_BYTES, hex);
}

/* The digests of entries first and first + 1, raw and in hex. */
static void
two_digests(size_t first, uint8_t d[2][QS_DIGEST_BYTES], char hex[2][2 * QS_DIGEST_BYTES + 1])
{
	for (size_t i = 0; i < 2; i++) {
		digest_of(first + i, d[i]);
		qs_hex_encode(d[i], QS_DIGEST_BYTES, hex[i]);
	}
}

START_TEST(qsctl_batches_pages_until_next_is_empty)
{
	Quorumstore__V1__Request *reqs[8];
	struct run r;
	char hex[2 * QS_DIGEST_BYTES + 1];
	uint8_t d[QS_DIGEST_BYTES];

	fake.n_entries = 2345;
	r = qsctl("batches", "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	expect_in(r.out, "\"count\":2345,");
	expect_in(r.out, "\"more\":false}");
	ck_assert_uint_eq(count_of(r.out, "\"digest\":"), 2345);
	ck_assert_uint_eq(lines_of(r.out), 1);
	/* Every entry exactly once, the last one included. */
	digest_of(2344, d);
	qs_hex_encode(d, sizeof(d), hex);
	ck_assert_uint_eq(count_of(r.out, hex), 1);
	expect_in(r.out, "\"batch_id\":3344,\"epoch\":3,\"expiration_us\":1767225600002344,"
	                 "\"expiration\":\"2026-01-01T00:00:00.002344Z\",\"num_txns\":");
	ck_assert_uint_eq(recorded(REQ(LIST_BATCHES), reqs, 8), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(reqs[i]->list_batches->limit, QS_CLIENT_LIST_MAX);
		ck_assert_uint_eq(reqs[i]->list_batches->author.len, 0);
	}
	ck_assert_uint_eq(reqs[0]->list_batches->start_after.len, 0);
	ck_assert_uint_eq(cursor_index(&reqs[2]->list_batches->start_after), 2000);
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batches_stops_at_the_limit)
{
	Quorumstore__V1__Request *reqs[8];
	struct run r;

	fake.n_entries = 2345;
	r = qsctl("batches", "--limit", "1500", "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	expect_in(r.out, "\"count\":1500,");
	expect_in(r.out, "\"more\":true}");
	ck_assert_uint_eq(recorded(REQ(LIST_BATCHES), reqs, 8), 2);
	ck_assert_uint_eq(reqs[0]->list_batches->limit, 1000);
	ck_assert_uint_eq(reqs[1]->list_batches->limit, 500);
	run_free(&r);

	/* A listing that ends exactly at the limit has no more. */
	fake.n_entries = 20;
	r = qsctl("batches", "--limit", "20", "-o", "json", NULL);
	expect_exit(&r, 0);
	expect_in(r.out, "\"count\":20,");
	expect_in(r.out, "\"more\":false}");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batches_sends_the_author)
{
	Quorumstore__V1__Request *req;
	char hex[2 * QS_PUBKEY_BYTES + 1];
	struct run r;

	fake.n_entries = 3;
	qs_hex_encode(author_b, QS_PUBKEY_BYTES, hex);
	r = qsctl("batches", "--author", hex, NULL);
	expect_exit(&r, 0);
	req = recorded_one(REQ(LIST_BATCHES));
	ck_assert(bin_eq(&req->list_batches->author, author_b, QS_PUBKEY_BYTES));
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batches_shows_an_entry_repeated_at_a_page_boundary_once)
{
	struct run r;

	fake.n_entries = 2500;
	fake.repeat_boundary = true;
	r = qsctl("batches", "-o", "json", NULL);
	expect_exit(&r, 0);
	expect_in(r.out, "\"count\":2500,");
	ck_assert_uint_eq(count_of(r.out, "\"digest\":"), 2500);
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batches_text_is_a_table_with_a_summary)
{
	char hex[2 * QS_DIGEST_BYTES + 1], prefix[17];
	uint8_t d[QS_DIGEST_BYTES];
	struct run r;

	fake.n_entries = 12;
	r = qsctl("batches", NULL);
	expect_exit(&r, 0);
	/* Header, one row each, summary. */
	ck_assert_uint_eq(lines_of(r.out), 1 + 12 + 1);
	ck_assert(strncmp(r.out, "DIGEST ", 7) == 0);
	digest_of(11, d);
	qs_hex_encode(d, sizeof(d), hex);
	expect_in(r.out, hex);
	qs_hex_encode(author_b, 8, prefix);
	expect_in(r.out, prefix);
	expect_in(r.out, "2026-01-01T00:00:00.000011Z");
	/* 1+2+...+7 + 1+2+3+4+5 txns; 100 * (0+...+11) bytes. */
	expect_in(r.out, "12 batches, 43 transactions, 6600 bytes\n");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_prints_the_status_and_message_of_a_refusal)
{
	struct run r;

	fake.status = STATUS(UNIMPLEMENTED);
	fake.message = "this version of qsd serves Hello, SubmitBatch and GetStatus";
	r = qsctl("batches", "-o", "json", NULL);
	expect_exit(&r, 1);
	ck_assert_str_eq(r.out, "");
	expect_in(r.err, "ListBatches: UNIMPLEMENTED: this version of qsd serves Hello");
	run_free(&r);

	fake.status = STATUS(NOT_FOUND);
	fake.message = "no such batch";
	r = qsctl("batch", "show",
	          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", NULL);
	expect_exit(&r, 1);
	ck_assert_str_eq(r.out, "");
	expect_in(r.err, "GetBatch: NOT_FOUND: no such batch");
	run_free(&r);

	fake.status = STATUS(INVALID_ARGUMENT);
	fake.message = "max_txns is 0";
	r = qsctl("payload", "--max-txns", "0", NULL);
	expect_exit(&r, 1);
	expect_in(r.err, "GetPayload: INVALID_ARGUMENT: max_txns is 0");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_fails_when_the_cursor_does_not_advance)
{
	struct run r;

	fake.n_entries = 5000;
	fake.stuck_cursor = true;
	r = qsctl("proofs", "-o", "json", NULL);
	expect_exit(&r, 1);
	ck_assert_str_eq(r.out, "");
	expect_in(r.err, "ListProofs: the server's cursor did not advance");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_proofs_decode_the_signer_bitmap)
{
	struct run r;

	fake.n_entries = 3;
	r = qsctl("proofs", "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	ck_assert_uint_eq(count_of(r.out, "\"signers\":[0,1,3,8],\"signer_count\":4"), 3);
	expect_in(r.out, "\"count\":3,");
	run_free(&r);

	r = qsctl("proofs", NULL);
	expect_exit(&r, 0);
	ck_assert_uint_eq(count_of(r.out, " 4 [0,1,3,8]\n"), 3);
	expect_in(r.out, "3 proofs, 6 transactions, 300 bytes\n");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batch_show_checks_the_digest_and_prints_the_transactions)
{
	uint8_t digest[QS_DIGEST_BYTES];
	char hex[2 * QS_DIGEST_BYTES + 1], line[128];
	Quorumstore__V1__Request *req;
	struct run r;

	batch_digest(digest, hex);
	r = qsctl("batch", "show", hex, "--txns", "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	expect_in(r.out, "\"source\":\"disk\",\"verified\":true,\"txn_count\":3,\"txn_bytes\":20,"
	                 "\"txn_sizes\":[5,14,1],\"transactions\":[\"6669727374\",");
	req = recorded_one(REQ(GET_BATCH));
	ck_assert(bin_eq(&req->get_batch->digest, digest, sizeof(digest)));
	ck_assert_uint_eq(req->get_batch->n_signers, 0);
	run_free(&r);

	r = qsctl("batch", "show", "--txns", hex, NULL);
	expect_exit(&r, 0);
	snprintf(line, sizeof(line), "digest: %s\n", hex);
	expect_in(r.out, line);
	expect_in(r.out, "source: disk\nverified: true\ntxn_count: 3\ntxn_bytes: 20\n"
	                 "txn_size_min: 1\ntxn_size_max: 14\n");
	expect_in(r.out, "txn 0 5 6669727374\n");
	expect_in(r.out, "txn 2 1 33\n");
	run_free(&r);

	/* Without --txns: no transaction bytes. */
	r = qsctl("batch", "show", hex, "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert_ptr_null(strstr(r.out, "\"transactions\""));
	run_free(&r);
}
END_TEST

START_TEST(qsctl_batch_show_fails_when_the_transactions_do_not_hash_to_the_digest)
{
	uint8_t digest[QS_DIGEST_BYTES];
	char hex[2 * QS_DIGEST_BYTES + 1];
	struct run r;

	batch_digest(digest, hex);
	fake.corrupt_batch = true;
	r = qsctl("batch", "show", hex, "-o", "json", NULL);
	expect_exit(&r, 1);
	ck_assert(json_valid(r.out));
	expect_in(r.out, "\"verified\":false");
	expect_in(r.err, "GetBatch: the transactions do not hash to the digest");
	run_free(&r);

	/* Asking for another digest than the batch has. */
	fake.corrupt_batch = false;
	digest[31] ^= 1;
	qs_hex_encode(digest, sizeof(digest), hex);
	r = qsctl("batch", "show", hex, NULL);
	expect_exit(&r, 1);
	expect_in(r.out, "verified: false\n");
	expect_in(r.err, "another digest");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_payload_sends_its_defaults)
{
	Quorumstore__V1__Request *req;
	struct run r;

	r = qsctl("payload", "-o", "json", NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	req = recorded_one(REQ(GET_PAYLOAD));
	ck_assert_uint_eq(req->get_payload->max_txns, 10000);
	ck_assert_uint_eq(req->get_payload->max_bytes, 10 * 1024 * 1024);
	ck_assert_uint_eq(req->get_payload->max_inline_txns, 0);
	ck_assert_uint_eq(req->get_payload->max_inline_bytes, 0);
	ck_assert(req->get_payload->return_non_full);
	ck_assert_uint_eq(req->get_payload->n_exclude, 0);
	ck_assert_uint_eq(count_of(r.out, "\"signers\":[0,2],\"signer_count\":2"), 2);
	expect_in(r.out, "\"inline_batches\":[{\"info\":{\"digest\":");
	expect_in(r.out, "\"txn_count\":3,\"txn_bytes\":20}]");
	/* Entries 0 and 1: 1 + 2 txns, 0 + 100 bytes; inline: 3 and 20. */
	expect_in(r.out, "\"totals\":{\"batches\":3,\"num_txns\":6,\"num_bytes\":120,"
	                 "\"proof_batches\":2,\"proof_txns\":3,\"proof_bytes\":100,"
	                 "\"inline_batches\":1,\"inline_txns\":3,\"inline_bytes\":20}}");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_payload_sends_its_options)
{
	Quorumstore__V1__Request *req;
	char hex[2][2 * QS_DIGEST_BYTES + 1];
	uint8_t d[2][QS_DIGEST_BYTES];
	struct run r;

	two_digests(40, d, hex);
	r = qsctl("payload", "--max-txns", "25", "--max-bytes", "2MiB", "--max-inline-txns", "5",
	          "--max-inline-bytes", "64KiB", "--exclude", hex[0], "--exclude", hex[1],
	          "--full-only", NULL);
	expect_exit(&r, 0);
	req = recorded_one(REQ(GET_PAYLOAD));
	ck_assert_uint_eq(req->get_payload->max_txns, 25);
	ck_assert_uint_eq(req->get_payload->max_bytes, 2 * 1024 * 1024);
	ck_assert_uint_eq(req->get_payload->max_inline_txns, 5);
	ck_assert_uint_eq(req->get_payload->max_inline_bytes, 64 * 1024);
	ck_assert(!req->get_payload->return_non_full);
	ck_assert_uint_eq(req->get_payload->n_exclude, 2);
	ck_assert(bin_eq(&req->get_payload->exclude[0], d[0], QS_DIGEST_BYTES));
	ck_assert(bin_eq(&req->get_payload->exclude[1], d[1], QS_DIGEST_BYTES));
	ck_assert(strncmp(r.out, "KIND ", 5) == 0);
	ck_assert_uint_eq(count_of(r.out, "\nproof  "), 2);
	ck_assert_uint_eq(count_of(r.out, "\ninline "), 1);
	expect_in(r.out, "total: 3 batches, 6 transactions, 120 bytes\n");
	run_free(&r);
}
END_TEST

START_TEST(qsctl_commit_sends_the_digests_and_timestamp)
{
	Quorumstore__V1__Request *req;
	char hex[2][2 * QS_DIGEST_BYTES + 1];
	uint8_t d[2][QS_DIGEST_BYTES];
	struct timespec ts;
	uint64_t before, after;
	struct run r;

	two_digests(0, d, hex);
	fake.proofs_removed = 2;
	r = qsctl("commit", "--timestamp-us", "1767225600000000", hex[0], hex[1], "-o", "json",
	          NULL);
	expect_exit(&r, 0);
	ck_assert(json_valid(r.out));
	ck_assert_str_eq(r.out, "{\"block_timestamp_us\":1767225600000000,"
	                        "\"block_timestamp\":\"2026-01-01T00:00:00.000000Z\","
	                        "\"digests\":2,\"proofs_removed\":2}\n");
	req = recorded_one(REQ(NOTIFY_COMMIT));
	ck_assert_uint_eq(req->notify_commit->block_timestamp_us, EXPIRATION);
	ck_assert_uint_eq(req->notify_commit->n_digests, 2);
	ck_assert(bin_eq(&req->notify_commit->digests[0], d[0], QS_DIGEST_BYTES));
	ck_assert(bin_eq(&req->notify_commit->digests[1], d[1], QS_DIGEST_BYTES));
	run_free(&r);

	/* The timestamp defaults to now. */
	clock_gettime(CLOCK_REALTIME, &ts);
	before = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	r = qsctl("commit", hex[1], NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	after = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	expect_exit(&r, 0);
	expect_in(r.out, "proofs_removed: 2\n");
	pthread_mutex_lock(&rec_mu);
	req = records[n_records - 1];
	pthread_mutex_unlock(&rec_mu);
	ck_assert_uint_ge(req->notify_commit->block_timestamp_us, before);
	ck_assert_uint_le(req->notify_commit->block_timestamp_us, after);
	run_free(&r);
}
END_TEST

START_TEST(qsctl_refuses_bad_command_lines_with_64)
{
	static const char *const bad[][6] = {
	    {"batches", "--author", "abc", NULL},
	    {"batches", "--limit", "0", NULL},
	    {"batches", "-o", "yaml", NULL},
	    {"batches", "extra", NULL},
	    {"batch", NULL},
	    {"batch", "list", NULL},
	    {"batch", "show", NULL},
	    {"batch", "show", "zz", NULL},
	    {"proofs", "--nope", NULL},
	    {"payload", "--max-bytes", "10XB", NULL},
	    {"payload", "--exclude", "00", NULL},
	    {"commit", NULL},
	    {"commit", "--timestamp-us", "-1", "00", NULL},
	    {"db", "check", NULL},
	    {"db", "fix", "/tmp", NULL},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r = qsctl(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], NULL);

		ck_assert_msg(r.status == 64, "qsctl %s %s %s exited %d, want 64: %s", bad[i][0],
		              bad[i][1] ? bad[i][1] : "", bad[i][2] ? bad[i][2] : "", r.status,
		              r.err);
		ck_assert_str_eq(r.out, "");
		ck_assert_msg(strlen(r.err) > 0, "no message for qsctl %s", bad[i][0]);
		run_free(&r);
	}
	ck_assert_uint_eq(records_count(), 0);
}
END_TEST

START_TEST(qsctl_help_of_a_command_exits_0)
{
	static const char *const cmds[] = {"batches", "batch", "proofs", "payload", "commit", "db"};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct run r = qsctl(cmds[i], "-h", NULL);

		expect_exit(&r, 0);
		expect_in(r.out, "usage: qsctl ");
		run_free(&r);
	}
}
END_TEST

START_TEST(qsctl_without_a_server_exits_2)
{
	struct run r;

	unlink(sock_path);
	r = qsctl("batches", "-o", "json", NULL);
	expect_exit(&r, 2);
	ck_assert_str_eq(r.out, "");
	expect_in(r.err, "cannot connect to qsd");
	run_free(&r);
}
END_TEST

static Suite *
client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *calls = tcase_create("calls");
	TCase *cli = tcase_create("qsctl");

	tcase_add_checked_fixture(calls, setup, teardown);
	tcase_set_timeout(calls, 20);
	tcase_add_test(calls, get_payload_sends_its_limits_and_exclusions);
	tcase_add_test(calls, a_spinning_client_is_answered_and_keeps_its_deadline);
	tcase_add_test(calls, get_batch_sends_the_digest_and_signers);
	tcase_add_test(calls, notify_commit_sends_the_timestamp_and_digests);
	tcase_add_test(calls, new_epoch_sends_the_validators_in_order);
	tcase_add_test(calls, list_calls_send_the_author_cursor_and_limit);
	tcase_add_test(calls, a_refusal_reaches_the_caller_with_its_status_and_message);
	tcase_add_test(calls, null_data_with_a_length_is_refused_and_nothing_is_sent);
	suite_add_tcase(s, calls);

	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_set_timeout(cli, 60);
	tcase_add_test(cli, qsctl_batches_pages_until_next_is_empty);
	tcase_add_test(cli, qsctl_batches_stops_at_the_limit);
	tcase_add_test(cli, qsctl_batches_sends_the_author);
	tcase_add_test(cli, qsctl_batches_shows_an_entry_repeated_at_a_page_boundary_once);
	tcase_add_test(cli, qsctl_batches_text_is_a_table_with_a_summary);
	tcase_add_test(cli, qsctl_prints_the_status_and_message_of_a_refusal);
	tcase_add_test(cli, qsctl_fails_when_the_cursor_does_not_advance);
	tcase_add_test(cli, qsctl_proofs_decode_the_signer_bitmap);
	tcase_add_test(cli, qsctl_batch_show_checks_the_digest_and_prints_the_transactions);
	tcase_add_test(cli, qsctl_batch_show_fails_when_the_transactions_do_not_hash_to_the_digest);
	tcase_add_test(cli, qsctl_payload_sends_its_defaults);
	tcase_add_test(cli, qsctl_payload_sends_its_options);
	tcase_add_test(cli, qsctl_commit_sends_the_digests_and_timestamp);
	tcase_add_test(cli, qsctl_refuses_bad_command_lines_with_64);
	tcase_add_test(cli, qsctl_help_of_a_command_exits_0);
	tcase_add_test(cli, qsctl_without_a_server_exits_2);
	suite_add_tcase(s, cli);
	return s;
}

int
main(int argc, char **argv)
{
	const char *b = getenv("B");
	const char *slash = strrchr(argv[0], '/');
	SRunner *sr;
	int failed;

	/* The build directory: $B, else the one this binary was built into
	 * (B/tests/check_client), else build. */
	if (b != NULL && *b != '\0')
		snprintf(build_dir, sizeof(build_dir), "%s", b);
	else if (slash != NULL && slash - argv[0] > 6 && strncmp(slash - 6, "/tests", 6) == 0)
		snprintf(build_dir, sizeof(build_dir), "%.*s", (int)(slash - 6 - argv[0]), argv[0]);
	else
		snprintf(build_dir, sizeof(build_dir), "build");
	sr = srunner_create(client_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
