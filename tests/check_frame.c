/*
 * Unit tests for net/frame: length-prefixed protobuf frames decoded under an
 * allocation budget.
 */
#include "core/codec.h"
#include "core/error.h"
#include "net/frame.h"
#include "quorumstore/v1/peer.pb-c.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define MAX_FRAME (1024 * 1024)
#define BUDGET    (4 * MAX_FRAME + 64 * 1024)

static const ProtobufCMessageDescriptor *const peer_desc =
    &quorumstore__v1__peer_message__descriptor;

/* Appends a frame header announcing `len` bytes. */
static void
add_header(struct evbuffer *b, uint32_t len)
{
	uint8_t h[QS_FRAME_HEADER_BYTES];

	qs_put_be32(h, len);
	ck_assert_int_eq(evbuffer_add(b, h, sizeof(h)), 0);
}

/* A BatchNack with a recognisable digest and detail. */
static void
write_nack(struct evbuffer *b, uint64_t batch_id)
{
	static uint8_t digest[QS_DIGEST_BYTES] = {1, 2, 3, 4};
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;

	nack.digest.data = digest;
	nack.digest.len = sizeof(digest);
	nack.reason = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVER_QUOTA;
	nack.batch_id = batch_id;
	nack.detail = "quota";
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	m.batch_nack = &nack;
	ck_assert_int_eq(qs_frame_write(b, &m.base, MAX_FRAME), 0);
}

static void
check_nack(ProtobufCMessage *msg, uint64_t batch_id)
{
	Quorumstore__V1__PeerMessage *m = (Quorumstore__V1__PeerMessage *)msg;

	ck_assert_int_eq(m->msg_case, QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK);
	ck_assert_uint_eq(m->batch_nack->batch_id, batch_id);
	ck_assert_uint_eq(m->batch_nack->digest.len, QS_DIGEST_BYTES);
	ck_assert_uint_eq(m->batch_nack->digest.data[3], 4);
	ck_assert_str_eq(m->batch_nack->detail, "quota");
	ck_assert_int_eq(m->batch_nack->reason,
	                 QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVER_QUOTA);
}

START_TEST(round_trip_two_frames)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;

	write_nack(b, 7);
	write_nack(b, 8);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	check_nack(msg, 7);
	qs_frame_msg_free(msg);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	check_nack(msg, 8);
	qs_frame_msg_free(msg);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(header_is_big_endian_length)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t h[QS_FRAME_HEADER_BYTES];
	size_t len;

	write_nack(b, 1);
	len = evbuffer_get_length(b);
	ck_assert_int_eq(evbuffer_copyout(b, h, sizeof(h)), (int)sizeof(h));
	ck_assert_uint_eq(qs_get_be32(h), len - QS_FRAME_HEADER_BYTES);
	evbuffer_free(b);
}
END_TEST

START_TEST(partial_frame_returns_0_and_consumes_nothing)
{
	struct evbuffer *whole = evbuffer_new(), *part = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	uint8_t bytes[256];
	size_t len;

	write_nack(whole, 9);
	len = evbuffer_get_length(whole);
	ck_assert_uint_le(len, sizeof(bytes));
	evbuffer_remove(whole, bytes, len);
	/* Every strict prefix, headers included, is not yet a frame. */
	for (size_t i = 0; i < len; i++) {
		evbuffer_drain(part, evbuffer_get_length(part));
		evbuffer_add(part, bytes, i);
		ck_assert_int_eq(qs_frame_read(part, MAX_FRAME, peer_desc, BUDGET, &msg), 0);
		ck_assert_uint_eq(evbuffer_get_length(part), i);
	}
	evbuffer_add(part, bytes + len - 1, 1);
	ck_assert_int_eq(qs_frame_read(part, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	check_nack(msg, 9);
	qs_frame_msg_free(msg);
	evbuffer_free(whole);
	evbuffer_free(part);
}
END_TEST

START_TEST(oversized_length_is_elimit_without_consuming)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;

	/* Only the header: the limit is known before the body arrives. */
	add_header(b, MAX_FRAME + 1);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), QS_ELIMIT);
	ck_assert_uint_eq(evbuffer_get_length(b), QS_FRAME_HEADER_BYTES);
	ck_assert_ptr_null(msg);
	/* The largest length a header can hold. */
	evbuffer_drain(b, QS_FRAME_HEADER_BYTES);
	add_header(b, UINT32_MAX);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), QS_ELIMIT);
	ck_assert_uint_eq(evbuffer_get_length(b), QS_FRAME_HEADER_BYTES);
	evbuffer_free(b);
}
END_TEST

START_TEST(frame_at_the_limit_is_read)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	size_t len;

	write_nack(b, 3);
	len = evbuffer_get_length(b) - QS_FRAME_HEADER_BYTES;
	ck_assert_int_eq(qs_frame_read(b, len, peer_desc, BUDGET, &msg), 1);
	qs_frame_msg_free(msg);
	write_nack(b, 3);
	ck_assert_int_eq(qs_frame_read(b, len - 1, peer_desc, BUDGET, &msg), QS_ELIMIT);
	evbuffer_free(b);
}
END_TEST

START_TEST(undecodable_frame_is_edecode_and_consumed)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;

	add_header(b, sizeof(garbage));
	evbuffer_add(b, garbage, sizeof(garbage));
	write_nack(b, 5);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), QS_EDECODE);
	ck_assert_ptr_null(msg);
	/* The bad frame is gone; the next one is intact. */
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	check_nack(msg, 5);
	qs_frame_msg_free(msg);
	evbuffer_free(b);
}
END_TEST

START_TEST(truncated_submessage_is_edecode)
{
	/* Field 4 (batch_nack), length 10, but only 2 bytes follow. */
	static const uint8_t body[] = {0x22, 0x0a, 0x08, 0x01};
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;

	add_header(b, sizeof(body));
	evbuffer_add(b, body, sizeof(body));
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), QS_EDECODE);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

/* A BatchMsg of `n` empty batches: two bytes each on the wire, tens of bytes
 * each once decoded. */
static void
add_empty_batches(struct evbuffer *b, size_t n)
{
	uint8_t *body;
	size_t inner = 2 * n, len, i = 0;

	ck_assert_uint_lt(inner, 1u << 21); /* a 3-byte varint below */
	len = 1 + 3 + inner;
	body = malloc(len);
	ck_assert_ptr_nonnull(body);
	body[i++] = 0x12; /* field 2 (batch_msg), length-delimited */
	body[i++] = (uint8_t)(0x80 | (inner & 0x7f));
	body[i++] = (uint8_t)(0x80 | ((inner >> 7) & 0x7f));
	body[i++] = (uint8_t)(inner >> 14);
	for (size_t k = 0; k < n; k++) {
		body[i++] = 0x0a; /* BatchMsg.batches, empty */
		body[i++] = 0x00;
	}
	add_header(b, (uint32_t)len);
	evbuffer_add(b, body, len);
	free(body);
}

START_TEST(budget_exceeded_is_edecode)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	size_t frame;

	add_empty_batches(b, 10000);
	frame = evbuffer_get_length(b) - QS_FRAME_HEADER_BYTES;
	ck_assert_uint_lt(frame, 32 * 1024);
	/* Four times the frame is not enough for 10000 decoded batches. */
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, 4 * frame, &msg), QS_EDECODE);
	ck_assert_ptr_null(msg);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	/* The same frame decodes with room to spare. */
	add_empty_batches(b, 10000);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, 128 * frame, &msg), 1);
	ck_assert_uint_eq(((Quorumstore__V1__PeerMessage *)msg)->batch_msg->n_batches, 10000);
	qs_frame_msg_free(msg);
	evbuffer_free(b);
}
END_TEST

START_TEST(many_empty_repeated_bytes_exceed_budget)
{
	/* Batch.transactions: field 2 of Batch, inside BatchMsg.batches. */
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	const size_t n = 1000;
	uint8_t *body;
	size_t inner = 2 * n, i = 0, len;

	len = 1 + 2 + 1 + 2 + inner;
	body = malloc(len);
	ck_assert_ptr_nonnull(body);
	body[i++] = 0x12; /* PeerMessage.batch_msg */
	body[i++] = (uint8_t)(0x80 | ((inner + 3) & 0x7f));
	body[i++] = (uint8_t)((inner + 3) >> 7);
	body[i++] = 0x0a; /* BatchMsg.batches */
	body[i++] = (uint8_t)(0x80 | (inner & 0x7f));
	body[i++] = (uint8_t)(inner >> 7);
	for (size_t k = 0; k < n; k++) {
		body[i++] = 0x12; /* Batch.transactions, empty */
		body[i++] = 0x00;
	}
	ck_assert_uint_eq(i, len);
	add_header(b, (uint32_t)len);
	evbuffer_add(b, body, len);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, 4 * len, &msg), QS_EDECODE);
	add_header(b, (uint32_t)len);
	evbuffer_add(b, body, len);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, 64 * len, &msg), 1);
	ck_assert_uint_eq(
	    ((Quorumstore__V1__PeerMessage *)msg)->batch_msg->batches[0]->n_transactions, n);
	qs_frame_msg_free(msg);
	free(body);
	evbuffer_free(b);
}
END_TEST

/* The body of the one frame in `b` (header dropped); *len its length. */
static const uint8_t *
frame_body(struct evbuffer *b, size_t *len)
{
	*len = evbuffer_get_length(b) - QS_FRAME_HEADER_BYTES;
	return evbuffer_pullup(b, -1) + QS_FRAME_HEADER_BYTES;
}

START_TEST(arena_decode_of_many_blocks_reads_back_and_frees)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	const uint8_t *body;
	size_t len;

	/* 10000 submessages: each a block, together many times the first chunk. */
	add_empty_batches(b, 10000);
	body = frame_body(b, &len);
	ck_assert_int_eq(qs_frame_unpack_arena(peer_desc, body, len, 128 * len, &msg), 0);
	ck_assert_uint_eq(((Quorumstore__V1__PeerMessage *)msg)->batch_msg->n_batches, 10000);
	for (size_t i = 0; i < 10000; i++)
		ck_assert_uint_eq(
		    ((Quorumstore__V1__PeerMessage *)msg)->batch_msg->batches[i]->n_transactions,
		    0);
	qs_frame_msg_free(msg);
	evbuffer_drain(b, evbuffer_get_length(b));
	/* Fields copied out of the buffer, not pointing into it. */
	write_nack(b, 77);
	body = frame_body(b, &len);
	ck_assert_int_eq(qs_frame_unpack_arena(peer_desc, body, len, BUDGET, &msg), 0);
	evbuffer_free(b);
	check_nack(msg, 77);
	qs_frame_msg_free(msg);
}
END_TEST

/* A BatchMsg of one batch with transactions "aaa", "" and "bbbbb". */
static void
write_batch(struct evbuffer *b)
{
	static uint8_t t0[] = "aaa", t2[] = "bbbbb";
	ProtobufCBinaryData txns[3] = {{3, t0}, {0, NULL}, {5, t2}};
	Quorumstore__V1__Batch batch = QUORUMSTORE__V1__BATCH__INIT;
	Quorumstore__V1__Batch *bp = &batch;
	Quorumstore__V1__BatchMsg bm = QUORUMSTORE__V1__BATCH_MSG__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;

	batch.n_transactions = 3;
	batch.transactions = txns;
	bm.n_batches = 1;
	bm.batches = &bp;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_MSG;
	m.batch_msg = &bm;
	ck_assert_int_eq(qs_frame_write(b, &m.base, MAX_FRAME), 0);
}

START_TEST(disowned_bytes_outlive_their_message)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	ProtobufCBinaryData kept[3];
	Quorumstore__V1__Batch *batch;
	const uint8_t *body;
	size_t len;

	write_batch(b);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	batch = ((Quorumstore__V1__PeerMessage *)msg)->batch_msg->batches[0];
	ck_assert(qs_frame_bytes_own_blocks(batch->transactions, 3));
	memcpy(kept, batch->transactions, sizeof(kept));
	qs_frame_bytes_disown(batch->transactions, 3);
	ck_assert_ptr_null(batch->transactions[0].data);
	ck_assert_uint_eq(batch->transactions[2].len, 0);
	/* The message goes without them (a double free under the sanitizer
	 * otherwise), and they read back after it. */
	qs_frame_msg_free(msg);
	ck_assert_mem_eq(kept[0].data, "aaa", 3);
	ck_assert_ptr_null(kept[1].data);
	ck_assert_mem_eq(kept[2].data, "bbbbb", 5);
	qs_frame_bytes_free(kept[0].data);
	qs_frame_bytes_free(kept[2].data);
	/* An arena's blocks go with their message: not handed out. */
	write_batch(b);
	body = frame_body(b, &len);
	ck_assert_int_eq(qs_frame_unpack_arena(peer_desc, body, len, BUDGET, &msg), 0);
	batch = ((Quorumstore__V1__PeerMessage *)msg)->batch_msg->batches[0];
	ck_assert(!qs_frame_bytes_own_blocks(batch->transactions, 3));
	ck_assert(qs_frame_bytes_own_blocks(batch->transactions + 1, 1)); /* empty only */
	qs_frame_msg_free(msg);
	evbuffer_free(b);
}
END_TEST

START_TEST(arena_decode_over_budget_or_undecodable_is_edecode)
{
	static const uint8_t garbage[] = {0x12, 0x05, 0x0a};
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg = NULL;
	const uint8_t *body;
	size_t len;

	add_empty_batches(b, 10000);
	body = frame_body(b, &len);
	/* The same budget as budget_exceeded_is_edecode: the arena counts no
	 * less than block-by-block decoding does. */
	ck_assert_int_eq(qs_frame_unpack_arena(peer_desc, body, len, 4 * len, &msg), QS_EDECODE);
	ck_assert_ptr_null(msg);
	ck_assert_int_eq(qs_frame_unpack_arena(peer_desc, garbage, sizeof(garbage), BUDGET, &msg),
	                 QS_EDECODE);
	ck_assert_ptr_null(msg);
	evbuffer_free(b);
}
END_TEST

START_TEST(zero_length_frame_decodes_as_empty_message)
{
	struct evbuffer *b = evbuffer_new();
	Quorumstore__V1__PeerMessage empty = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	ProtobufCMessage *msg = NULL;

	ck_assert_int_eq(qs_frame_write(b, &empty.base, MAX_FRAME), 0);
	ck_assert_uint_eq(evbuffer_get_length(b), QS_FRAME_HEADER_BYTES);
	ck_assert_int_eq(qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg), 1);
	ck_assert_int_eq(((Quorumstore__V1__PeerMessage *)msg)->msg_case,
	                 QUORUMSTORE__V1__PEER_MESSAGE__MSG__NOT_SET);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	qs_frame_msg_free(msg);
	evbuffer_free(b);
}
END_TEST

START_TEST(write_over_limit_is_elimit_and_appends_nothing)
{
	struct evbuffer *b = evbuffer_new();
	Quorumstore__V1__BatchNack nack = QUORUMSTORE__V1__BATCH_NACK__INIT;
	Quorumstore__V1__PeerMessage m = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	char *detail = malloc(1000);

	memset(detail, 'x', 999);
	detail[999] = '\0';
	nack.detail = detail;
	m.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK;
	m.batch_nack = &nack;
	ck_assert_int_eq(qs_frame_write(b, &m.base, 999), QS_ELIMIT);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	ck_assert_int_eq(qs_frame_write(b, &m.base, 2000), 0);
	free(detail);
	evbuffer_free(b);
}
END_TEST

/*
 * Bytes left in `bev`'s output after one turn of the loop that writes it,
 * from 192 KiB queued on a socket with room for all of it.
 */
static size_t
unsent_after_one_write_event(int tune)
{
	struct event_base *base = event_base_new();
	size_t len = 192 * 1024, left;
	int sv[2], sndbuf = 1 << 20;
	struct bufferevent *bev;
	char *data = calloc(1, len);

	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf)), 0);
	ck_assert_int_eq(evutil_make_socket_nonblocking(sv[0]), 0);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(bev);
	if (tune)
		ck_assert_int_eq(qs_frame_bev_tune(bev), 0);
	ck_assert_int_eq(bufferevent_write(bev, data, len), 0);
	ck_assert_int_eq(bufferevent_enable(bev, EV_WRITE), 0);
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	left = evbuffer_get_length(bufferevent_get_output(bev));
	bufferevent_free(bev);
	close(sv[1]);
	event_base_free(base);
	free(data);
	return left;
}

/* A tuned connection writes a whole 64 KiB frame (and more) per write
 * event; libevent's default stops at 16 KiB. */
START_TEST(tuned_bufferevent_writes_a_frame_per_event)
{
	ck_assert_uint_eq(unsent_after_one_write_event(1), 0);
	ck_assert_uint_gt(unsent_after_one_write_event(0), 64 * 1024);
}
END_TEST

START_TEST(free_accepts_null)
{
	qs_frame_msg_free(NULL);
}
END_TEST

/* Decoding and freeing on several threads at once share no state. */
static void *
decode_many(void *arg)
{
	struct evbuffer *b = evbuffer_new();
	ProtobufCMessage *msg;

	for (int i = 0; i < 2000; i++) {
		msg = NULL;
		write_nack(b, (uint64_t)i);
		if (qs_frame_read(b, MAX_FRAME, peer_desc, BUDGET, &msg) != 1)
			abort();
		qs_frame_msg_free(msg);
	}
	evbuffer_free(b);
	return arg;
}

START_TEST(decodes_on_threads_concurrently)
{
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, decode_many, NULL), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}
END_TEST

static Suite *
frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("frame");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, round_trip_two_frames);
	tcase_add_test(tc, header_is_big_endian_length);
	tcase_add_test(tc, partial_frame_returns_0_and_consumes_nothing);
	tcase_add_test(tc, oversized_length_is_elimit_without_consuming);
	tcase_add_test(tc, frame_at_the_limit_is_read);
	tcase_add_test(tc, undecodable_frame_is_edecode_and_consumed);
	tcase_add_test(tc, truncated_submessage_is_edecode);
	tcase_add_test(tc, budget_exceeded_is_edecode);
	tcase_add_test(tc, many_empty_repeated_bytes_exceed_budget);
	tcase_add_test(tc, arena_decode_of_many_blocks_reads_back_and_frees);
	tcase_add_test(tc, disowned_bytes_outlive_their_message);
	tcase_add_test(tc, arena_decode_over_budget_or_undecodable_is_edecode);
	tcase_add_test(tc, zero_length_frame_decodes_as_empty_message);
	tcase_add_test(tc, write_over_limit_is_elimit_and_appends_nothing);
	tcase_add_test(tc, tuned_bufferevent_writes_a_frame_per_event);
	tcase_add_test(tc, free_accepts_null);
	tcase_add_test(tc, decodes_on_threads_concurrently);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
