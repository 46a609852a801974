/* core/batch: validation of received batches, NackReason names and mapping. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"

#define NACK(name) QUORUMSTORE__V1__NACK_REASON__NACK_REASON_##name

#define CHAIN       7
#define EPOCH       3
#define NOW_US      UINT64_C(1767225600000000)
#define LIFETIME_US UINT64_C(60000000)
#define MAX_TXNS    16
#define MAX_BYTES   1024
#define TXN_CAP     64

/* A batch and everything it points to, in one place. */
struct tbatch {
	Quorumstore__V1__Batch b;
	Quorumstore__V1__BatchInfo info;
	ProtobufCBinaryData txns[TXN_CAP];
	uint8_t author[QS_PUBKEY_BYTES];
	uint8_t digest[QS_DIGEST_BYTES];
	uint8_t data[4096];
};

static struct tbatch tb;

static struct qs_limits limits = {
    .batch_max_txns = MAX_TXNS,
    .batch_max_bytes = MAX_BYTES,
    .msg_max_batches = 20,
    .msg_max_bytes = 4 << 20,
    .frame_max_bytes = (4 << 20) + (64 << 10),
};

static struct qs_validate_ctx ctx = {
    .chain_id = CHAIN,
    .epoch = EPOCH,
    .now_us = NOW_US,
    .max_lifetime_us = LIFETIME_US,
    .limits = &limits,
};

/* Recompute the digest and counts of tb from its payload. */
static void
seal(struct tbatch *t)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < t->b.n_transactions; i++)
		bytes += t->txns[i].len;
	t->info.num_txns = (uint32_t)t->b.n_transactions;
	t->info.num_bytes = bytes;
	ck_assert_int_eq(qs_codec_batch_digest(CHAIN, t->author, t->info.epoch, t->info.batch_id,
	                                       t->txns, t->b.n_transactions, t->digest),
	                 0);
}

/* A valid batch of n transactions of len bytes each (n * len <= 4096). */
static void
make_batch(struct tbatch *t, size_t n, size_t len)
{
	ck_assert_uint_le(n, TXN_CAP);
	ck_assert_uint_le(n * len, sizeof(t->data));
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < sizeof(t->data); i++)
		t->data[i] = (uint8_t)(i * 31 + 7);
	memset(t->author, 0xa1, sizeof(t->author));
	quorumstore__v1__batch__init(&t->b);
	quorumstore__v1__batch_info__init(&t->info);
	t->b.info = &t->info;
	t->b.transactions = t->txns;
	t->b.n_transactions = n;
	for (size_t i = 0; i < n; i++) {
		t->txns[i].data = t->data + i * len;
		t->txns[i].len = len;
	}
	t->info.author.data = t->author;
	t->info.author.len = sizeof(t->author);
	t->info.digest.data = t->digest;
	t->info.digest.len = sizeof(t->digest);
	t->info.batch_id = 42;
	t->info.epoch = EPOCH;
	t->info.expiration_us = NOW_US + LIFETIME_US / 2;
	t->info.gas_bucket_start = 5;
	seal(t);
}

static int
validate(const struct tbatch *t, struct qs_batch_info *info, const char **detail)
{
	return qs_batch_validate(&ctx, t->author, &t->b, info, detail);
}

/* The reason for tb, checking that a detail is given and info untouched. */
static int
nack_of(const struct tbatch *t)
{
	struct qs_batch_info info, before;
	const char *detail = NULL;
	int reason;

	memset(&info, 0x5a, sizeof(info));
	before = info;
	reason = validate(t, &info, &detail);
	if (reason) {
		ck_assert_ptr_nonnull(detail);
		ck_assert_uint_gt(strlen(detail), 0);
		ck_assert_mem_eq(&info, &before, sizeof(info));
	}
	return reason;
}

START_TEST(valid_batch_accepted_and_info_filled)
{
	struct qs_batch_info info;
	const char *detail = NULL;

	make_batch(&tb, 3, 10);
	ck_assert_int_eq(validate(&tb, &info, &detail), 0);
	ck_assert_int_eq(NACK(UNSPECIFIED), 0);
	ck_assert_ptr_null(detail);
	ck_assert_mem_eq(info.author, tb.author, QS_PUBKEY_BYTES);
	ck_assert_mem_eq(info.digest, tb.digest, QS_DIGEST_BYTES);
	ck_assert_uint_eq(info.batch_id, 42);
	ck_assert_uint_eq(info.epoch, EPOCH);
	ck_assert_uint_eq(info.expiration_us, NOW_US + LIFETIME_US / 2);
	ck_assert_uint_eq(info.num_txns, 3);
	ck_assert_uint_eq(info.num_bytes, 30);
	ck_assert_uint_eq(info.gas_bucket_start, 5);
}
END_TEST

START_TEST(documented_example_batch_is_valid)
{
	static const uint8_t author[32] = {
	    0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd,
	    0x18, 0xe7, 0x4b, 0xc0, 0x99, 0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5,
	    0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8,
	};
	static const uint8_t digest[32] = {
	    0x7e, 0x38, 0x55, 0xc2, 0xb7, 0xcc, 0xad, 0xee, 0xf3, 0x16, 0xf2,
	    0x62, 0x83, 0xb3, 0xc7, 0x33, 0xd5, 0x56, 0x13, 0xcd, 0x8a, 0x53,
	    0xa8, 0x10, 0x44, 0xbb, 0x3a, 0x4c, 0x07, 0x92, 0xe2, 0x36,
	};
	ProtobufCBinaryData txns[2] = {{5, (uint8_t *)"hello"}, {3, (uint8_t *)"qsd"}};
	Quorumstore__V1__BatchInfo pbi = QUORUMSTORE__V1__BATCH_INFO__INIT;
	Quorumstore__V1__Batch b = QUORUMSTORE__V1__BATCH__INIT;
	struct qs_validate_ctx c = ctx;
	struct qs_batch_info info;

	pbi.author.data = (uint8_t *)author;
	pbi.author.len = 32;
	pbi.digest.data = (uint8_t *)digest;
	pbi.digest.len = 32;
	pbi.epoch = 3;
	pbi.batch_id = 7;
	pbi.num_txns = 2;
	pbi.num_bytes = 8;
	pbi.expiration_us = UINT64_C(1767225600000000);
	b.info = &pbi;
	b.transactions = txns;
	b.n_transactions = 2;
	c.chain_id = 1;
	c.epoch = 3;
	c.now_us = pbi.expiration_us - 1;
	ck_assert_int_eq(qs_batch_validate(&c, author, &b, &info, NULL), 0);
	c.chain_id = 2;
	ck_assert_int_eq(qs_batch_validate(&c, author, &b, &info, NULL), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(nack_malformed_missing_batch_or_info)
{
	struct qs_batch_info info;
	const char *detail = NULL;

	ck_assert_int_eq(qs_batch_validate(&ctx, tb.author, NULL, &info, &detail), NACK(MALFORMED));
	ck_assert_ptr_nonnull(detail);
	make_batch(&tb, 1, 1);
	tb.b.info = NULL;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
}
END_TEST

START_TEST(nack_malformed_author_not_32_bytes)
{
	make_batch(&tb, 1, 1);
	tb.info.author.len = 31;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
	tb.info.author.len = 33;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
	tb.info.author.len = 0;
	tb.info.author.data = NULL;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
}
END_TEST

START_TEST(nack_malformed_digest_not_32_bytes)
{
	make_batch(&tb, 1, 1);
	tb.info.digest.len = 31;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
	tb.info.digest.len = 64;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
	tb.info.digest.len = 0;
	tb.info.digest.data = NULL;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
}
END_TEST

START_TEST(nack_malformed_transactions_missing)
{
	make_batch(&tb, 2, 1);
	tb.b.transactions = NULL;
	ck_assert_int_eq(nack_of(&tb), NACK(MALFORMED));
}
END_TEST

START_TEST(nack_wrong_author)
{
	uint8_t other[QS_PUBKEY_BYTES];
	struct qs_batch_info info;
	const char *detail = NULL;

	make_batch(&tb, 2, 4);
	memcpy(other, tb.author, sizeof(other));
	other[31] ^= 1;
	ck_assert_int_eq(qs_batch_validate(&ctx, other, &tb.b, &info, &detail), NACK(WRONG_AUTHOR));
	ck_assert_ptr_nonnull(detail);
}
END_TEST

START_TEST(nack_wrong_epoch)
{
	make_batch(&tb, 2, 4);
	tb.info.epoch = EPOCH + 1;
	seal(&tb);
	ck_assert_int_eq(nack_of(&tb), NACK(WRONG_EPOCH));
	tb.info.epoch = EPOCH - 1;
	seal(&tb);
	ck_assert_int_eq(nack_of(&tb), NACK(WRONG_EPOCH));
}
END_TEST

START_TEST(nack_expired_at_exactly_now)
{
	make_batch(&tb, 1, 1);
	tb.info.expiration_us = NOW_US;
	ck_assert_int_eq(nack_of(&tb), NACK(EXPIRED));
	tb.info.expiration_us = NOW_US + 1;
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(nack_expired_in_the_past)
{
	make_batch(&tb, 1, 1);
	tb.info.expiration_us = NOW_US - 1;
	ck_assert_int_eq(nack_of(&tb), NACK(EXPIRED));
	tb.info.expiration_us = 0;
	ck_assert_int_eq(nack_of(&tb), NACK(EXPIRED));
}
END_TEST

START_TEST(expiration_at_max_lifetime_accepted)
{
	make_batch(&tb, 1, 1);
	tb.info.expiration_us = NOW_US + LIFETIME_US;
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(nack_beyond_lifetime_by_one_us)
{
	make_batch(&tb, 1, 1);
	tb.info.expiration_us = NOW_US + LIFETIME_US + 1;
	ck_assert_int_eq(nack_of(&tb), NACK(BEYOND_LIFETIME));
	tb.info.expiration_us = UINT64_MAX;
	ck_assert_int_eq(nack_of(&tb), NACK(BEYOND_LIFETIME));
}
END_TEST

START_TEST(lifetime_bound_does_not_wrap_near_uint64_max)
{
	struct qs_batch_info info;

	make_batch(&tb, 1, 1);
	ctx.now_us = UINT64_MAX - 10;
	ctx.max_lifetime_us = 100;
	tb.info.expiration_us = UINT64_MAX;
	ck_assert_int_eq(validate(&tb, &info, NULL), 0);
	tb.info.expiration_us = UINT64_MAX - 10;
	ck_assert_int_eq(validate(&tb, &info, NULL), NACK(EXPIRED));
}
END_TEST

START_TEST(nack_empty_batch)
{
	make_batch(&tb, 0, 0);
	ck_assert_int_eq(nack_of(&tb), NACK(EMPTY_BATCH));
	tb.b.transactions = NULL;
	ck_assert_int_eq(nack_of(&tb), NACK(EMPTY_BATCH));
}
END_TEST

START_TEST(max_txns_accepted)
{
	make_batch(&tb, MAX_TXNS, 3);
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(nack_too_many_txns_by_one)
{
	make_batch(&tb, MAX_TXNS + 1, 3);
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_TXNS));
}
END_TEST

START_TEST(max_bytes_accepted)
{
	make_batch(&tb, 4, MAX_BYTES / 4);
	ck_assert_int_eq(nack_of(&tb), 0);
	make_batch(&tb, 1, MAX_BYTES);
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(nack_too_many_bytes_by_one)
{
	make_batch(&tb, 4, MAX_BYTES / 4);
	tb.txns[3].len++;
	seal(&tb);
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_BYTES));
	make_batch(&tb, 1, MAX_BYTES + 1);
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_BYTES));
}
END_TEST

START_TEST(zero_length_transactions_accepted)
{
	make_batch(&tb, 3, 0);
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

/* Lengths a naive sum would wrap to a small total matching num_bytes: the
 * payload is never read (it is not that long). */
START_TEST(byte_sum_that_would_wrap_is_rejected)
{
	make_batch(&tb, 2, 8);
	tb.txns[0].len = 16;
	tb.txns[1].len = SIZE_MAX - 7;
	tb.info.num_bytes = 8;
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_BYTES));
	limits.batch_max_bytes = UINT64_MAX;
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_BYTES));
}
END_TEST

/* With no byte limit to speak of, the largest encodable lengths sum without
 * wrapping (and the payload is never read: the counts are wrong). */
START_TEST(byte_sum_at_uint64_limit_does_not_overflow)
{
	make_batch(&tb, 3, 1);
	limits.batch_max_bytes = UINT64_MAX;
	for (int i = 0; i < 3; i++)
		tb.txns[i].len = UINT32_MAX;
	tb.info.num_bytes = 3;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.txns[1].len = (size_t)UINT32_MAX + 1;
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_BYTES));
}
END_TEST

START_TEST(nack_count_mismatch_num_txns)
{
	make_batch(&tb, 3, 5);
	tb.info.num_txns = 2;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.info.num_txns = 4;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.info.num_txns = UINT32_MAX;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
}
END_TEST

START_TEST(nack_count_mismatch_num_bytes)
{
	make_batch(&tb, 3, 5);
	tb.info.num_bytes = 14;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.info.num_bytes = 16;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.info.num_bytes = 15 + (UINT64_C(1) << 32);
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
}
END_TEST

START_TEST(nack_bad_digest_field)
{
	make_batch(&tb, 3, 5);
	for (int i = 0; i < QS_DIGEST_BYTES; i++) {
		tb.digest[i] ^= 0x80;
		ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
		tb.digest[i] ^= 0x80;
	}
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(nack_bad_digest_payload_changed)
{
	make_batch(&tb, 3, 5);
	tb.data[7] ^= 1;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(nack_bad_digest_transactions_reordered)
{
	ProtobufCBinaryData t;

	make_batch(&tb, 3, 5);
	t = tb.txns[0];
	tb.txns[0] = tb.txns[2];
	tb.txns[2] = t;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(nack_bad_digest_boundaries_moved)
{
	make_batch(&tb, 2, 5);
	tb.txns[0].len = 4;
	tb.txns[1].data--;
	tb.txns[1].len = 6;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(nack_bad_digest_batch_id_or_author_changed)
{
	uint8_t author[QS_PUBKEY_BYTES];
	struct qs_batch_info info;

	make_batch(&tb, 2, 5);
	tb.info.batch_id++;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
	tb.info.batch_id--;
	/* Another author sending its own key but this digest. */
	memcpy(author, tb.author, sizeof(author));
	author[0] ^= 1;
	tb.info.author.data = author;
	ck_assert_int_eq(qs_batch_validate(&ctx, author, &tb.b, &info, NULL), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(nack_bad_digest_other_chain)
{
	make_batch(&tb, 2, 5);
	ctx.chain_id = CHAIN + 1;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(expiration_and_gas_not_covered_by_digest)
{
	make_batch(&tb, 2, 5);
	tb.info.expiration_us = NOW_US + 1;
	tb.info.gas_bucket_start = 999;
	ck_assert_int_eq(nack_of(&tb), 0);
}
END_TEST

START_TEST(first_failing_rule_is_reported)
{
	uint8_t other[QS_PUBKEY_BYTES];
	struct qs_batch_info info;

	make_batch(&tb, MAX_TXNS + 1, 1);
	tb.info.epoch = EPOCH + 1;
	tb.info.expiration_us = NOW_US;
	tb.digest[0] ^= 1;
	memset(other, 0x77, sizeof(other));
	ck_assert_int_eq(qs_batch_validate(&ctx, other, &tb.b, &info, NULL), NACK(WRONG_AUTHOR));
	ck_assert_int_eq(nack_of(&tb), NACK(WRONG_EPOCH));
	tb.info.epoch = EPOCH;
	ck_assert_int_eq(nack_of(&tb), NACK(EXPIRED));
	tb.info.expiration_us = NOW_US + 1;
	ck_assert_int_eq(nack_of(&tb), NACK(TOO_MANY_TXNS));
	tb.b.n_transactions = MAX_TXNS;
	ck_assert_int_eq(nack_of(&tb), NACK(COUNT_MISMATCH));
	tb.info.num_txns = MAX_TXNS;
	tb.info.num_bytes = MAX_TXNS;
	ck_assert_int_eq(nack_of(&tb), NACK(BAD_DIGEST));
}
END_TEST

START_TEST(detail_is_optional)
{
	struct qs_batch_info info;

	make_batch(&tb, 1, 1);
	tb.info.epoch++;
	ck_assert_int_eq(validate(&tb, &info, NULL), NACK(WRONG_EPOCH));
}
END_TEST

START_TEST(fetched_batch_skips_author_and_expiration_rules)
{
	struct qs_batch_info info;

	make_batch(&tb, 2, 5);
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), 0);
	tb.info.expiration_us = NOW_US;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), 0);
	ck_assert_uint_eq(info.expiration_us, NOW_US);
	tb.info.expiration_us = NOW_US + LIFETIME_US + 1;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), 0);
}
END_TEST

START_TEST(fetched_batch_still_checks_digest_epoch_and_limits)
{
	struct qs_batch_info info;

	make_batch(&tb, 2, 5);
	tb.digest[3] ^= 1;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(BAD_DIGEST));
	tb.digest[3] ^= 1;
	tb.data[0] ^= 1;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(BAD_DIGEST));
	tb.data[0] ^= 1;
	tb.info.num_bytes++;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(COUNT_MISMATCH));
	make_batch(&tb, MAX_TXNS + 1, 1);
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(TOO_MANY_TXNS));
	make_batch(&tb, 2, 5);
	tb.info.epoch++;
	seal(&tb);
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(WRONG_EPOCH));
	tb.info.author.len = 1;
	ck_assert_int_eq(qs_batch_validate(&ctx, NULL, &tb.b, &info, NULL), NACK(MALFORMED));
}
END_TEST

START_TEST(nack_reason_names_match_proto_enum)
{
	const ProtobufCEnumDescriptor *d = &quorumstore__v1__nack_reason__descriptor;
	char want[64];

	ck_assert_uint_eq(d->n_values, QS_NACK_REASON_COUNT);
	for (unsigned int i = 0; i < d->n_values; i++) {
		ck_assert_int_eq(d->values[i].value, (int)i);
		ck_assert_ptr_nonnull(qs_nack_reason_names[i]);
		snprintf(want, sizeof(want), "NACK_REASON_%s", qs_nack_reason_names[i]);
		ck_assert_str_eq(d->values[i].name, want);
		ck_assert_ptr_eq(qs_nack_reason_name((int)i), qs_nack_reason_names[i]);
	}
	ck_assert_str_eq(qs_nack_reason_name(NACK(STORAGE_FULL)), "STORAGE_FULL");
	ck_assert_str_eq(qs_nack_reason_name(NACK(BAD_DIGEST)), "BAD_DIGEST");
}
END_TEST

START_TEST(nack_reason_name_outside_enum_is_unspecified)
{
	ck_assert_str_eq(qs_nack_reason_name(-1), "UNSPECIFIED");
	ck_assert_str_eq(qs_nack_reason_name(QS_NACK_REASON_COUNT), "UNSPECIFIED");
	ck_assert_str_eq(qs_nack_reason_name(1 << 30), "UNSPECIFIED");
}
END_TEST

START_TEST(nack_reason_from_storage_errors)
{
	ck_assert_int_eq(qs_nack_reason_from_error(0), NACK(UNSPECIFIED));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_ENOSPACE), NACK(STORAGE_FULL));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_EIO), NACK(IO_ERROR));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_ECORRUPT), NACK(IO_ERROR));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_ESTORE), NACK(IO_ERROR));
	ck_assert_int_eq(qs_nack_reason_from_error(-5), NACK(IO_ERROR));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_EFAILED), NACK(STORAGE_FAILED));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_ESHUTDOWN), NACK(SHUTTING_DOWN));
	ck_assert_int_eq(qs_nack_reason_from_error(QS_EQUEUEFULL), NACK(OVERLOADED));
}
END_TEST

START_TEST(info_pb_round_trip)
{
	Quorumstore__V1__BatchInfo pb;
	struct qs_batch_info a, b;

	memset(&a, 0, sizeof(a));
	memset(a.author, 0x11, sizeof(a.author));
	memset(a.digest, 0x22, sizeof(a.digest));
	a.batch_id = 1;
	a.epoch = 2;
	a.expiration_us = 3;
	a.num_txns = 4;
	a.num_bytes = 5;
	a.gas_bucket_start = 6;
	qs_batch_info_to_pb(&a, &pb);
	ck_assert_ptr_eq(pb.base.descriptor, &quorumstore__v1__batch_info__descriptor);
	ck_assert_ptr_eq(pb.author.data, a.author);
	ck_assert_ptr_eq(pb.digest.data, a.digest);
	ck_assert_int_eq(qs_batch_info_from_pb(&pb, &b), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
}
END_TEST

START_TEST(info_pb_round_trip_through_wire_bytes)
{
	Quorumstore__V1__BatchInfo pb, *dec;
	struct qs_batch_info a, b;
	uint8_t buf[256];
	size_t n;

	memset(&a, 0, sizeof(a));
	memset(a.author, 0x31, sizeof(a.author));
	memset(a.digest, 0x42, sizeof(a.digest));
	a.batch_id = UINT64_MAX;
	a.expiration_us = NOW_US;
	a.num_txns = UINT32_MAX;
	a.num_bytes = 77;
	qs_batch_info_to_pb(&a, &pb);
	n = quorumstore__v1__batch_info__get_packed_size(&pb);
	ck_assert_uint_le(n, sizeof(buf));
	quorumstore__v1__batch_info__pack(&pb, buf);
	dec = quorumstore__v1__batch_info__unpack(NULL, n, buf);
	ck_assert_ptr_nonnull(dec);
	ck_assert_int_eq(qs_batch_info_from_pb(dec, &b), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	quorumstore__v1__batch_info__free_unpacked(dec, NULL);
}
END_TEST

START_TEST(info_from_pb_rejects_wrong_sizes)
{
	Quorumstore__V1__BatchInfo pb;
	struct qs_batch_info a, out, before;

	memset(&a, 0x33, sizeof(a));
	memset(&out, 0x44, sizeof(out));
	before = out;
	qs_batch_info_to_pb(&a, &pb);
	pb.author.len = 31;
	ck_assert_int_eq(qs_batch_info_from_pb(&pb, &out), QS_EDECODE);
	pb.author.len = 32;
	pb.digest.len = 33;
	ck_assert_int_eq(qs_batch_info_from_pb(&pb, &out), QS_EDECODE);
	ck_assert_int_eq(qs_batch_info_from_pb(NULL, &out), QS_EDECODE);
	ck_assert_mem_eq(&out, &before, sizeof(out));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("validate");
	TCase *tn = tcase_create("names");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, valid_batch_accepted_and_info_filled);
	tcase_add_test(tc, documented_example_batch_is_valid);
	tcase_add_test(tc, nack_malformed_missing_batch_or_info);
	tcase_add_test(tc, nack_malformed_author_not_32_bytes);
	tcase_add_test(tc, nack_malformed_digest_not_32_bytes);
	tcase_add_test(tc, nack_malformed_transactions_missing);
	tcase_add_test(tc, nack_wrong_author);
	tcase_add_test(tc, nack_wrong_epoch);
	tcase_add_test(tc, nack_expired_at_exactly_now);
	tcase_add_test(tc, nack_expired_in_the_past);
	tcase_add_test(tc, expiration_at_max_lifetime_accepted);
	tcase_add_test(tc, nack_beyond_lifetime_by_one_us);
	tcase_add_test(tc, lifetime_bound_does_not_wrap_near_uint64_max);
	tcase_add_test(tc, nack_empty_batch);
	tcase_add_test(tc, max_txns_accepted);
	tcase_add_test(tc, nack_too_many_txns_by_one);
	tcase_add_test(tc, max_bytes_accepted);
	tcase_add_test(tc, nack_too_many_bytes_by_one);
	tcase_add_test(tc, zero_length_transactions_accepted);
	tcase_add_test(tc, byte_sum_that_would_wrap_is_rejected);
	tcase_add_test(tc, byte_sum_at_uint64_limit_does_not_overflow);
	tcase_add_test(tc, nack_count_mismatch_num_txns);
	tcase_add_test(tc, nack_count_mismatch_num_bytes);
	tcase_add_test(tc, nack_bad_digest_field);
	tcase_add_test(tc, nack_bad_digest_payload_changed);
	tcase_add_test(tc, nack_bad_digest_transactions_reordered);
	tcase_add_test(tc, nack_bad_digest_boundaries_moved);
	tcase_add_test(tc, nack_bad_digest_batch_id_or_author_changed);
	tcase_add_test(tc, nack_bad_digest_other_chain);
	tcase_add_test(tc, expiration_and_gas_not_covered_by_digest);
	tcase_add_test(tc, first_failing_rule_is_reported);
	tcase_add_test(tc, detail_is_optional);
	tcase_add_test(tc, fetched_batch_skips_author_and_expiration_rules);
	tcase_add_test(tc, fetched_batch_still_checks_digest_epoch_and_limits);
	suite_add_tcase(s, tc);
	tcase_add_test(tn, nack_reason_names_match_proto_enum);
	tcase_add_test(tn, nack_reason_name_outside_enum_is_unspecified);
	tcase_add_test(tn, nack_reason_from_storage_errors);
	tcase_add_test(tn, info_pb_round_trip);
	tcase_add_test(tn, info_pb_round_trip_through_wire_bytes);
	tcase_add_test(tn, info_from_pb_rejects_wrong_sizes);
	suite_add_tcase(s, tn);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
