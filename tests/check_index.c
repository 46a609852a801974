/* core/index: admission, quotas, equivocation, durability and expiry. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/error.h"
#include "core/index.h"

#define NACK(name) QUORUMSTORE__V1__NACK_REASON__NACK_REASON_##name
#define SEED       UINT64_C(0x5eed5eed12345678)

/*
 * In fork mode every passing ck_assert_*() reports its location to the
 * parent process, a write(2) each: loops of millions of checks use this.
 */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #cond);              \
	} while (0)

static struct qs_quotas quotas = {
    .author_mem_bytes = 1000,
    .author_mem_batches = 4,
    .author_disk_bytes = 10000,
    .author_disk_batches = 10,
    .author_proofs = 100,
};

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A uniform-looking digest named by `seed`. */
static void
fill_digest(uint8_t *d, uint64_t seed)
{
	uint64_t s = seed * 4 + 1;

	for (int i = 0; i < QS_DIGEST_BYTES; i += 8) {
		uint64_t x = splitmix(&s);
		memcpy(d + i, &x, 8);
	}
}

static struct qs_batch_info
mk(int author, uint64_t batch_id, uint64_t digest_seed, uint64_t exp_us, uint64_t bytes)
{
	struct qs_batch_info info;

	memset(&info, 0, sizeof(info));
	memset(info.author, author + 1, sizeof(info.author));
	info.batch_id = batch_id;
	info.epoch = 1;
	info.expiration_us = exp_us;
	fill_digest(info.digest, digest_seed);
	info.num_txns = 1;
	info.num_bytes = bytes;
	/* A property of the batch, like its digest: the same for every
	 * expiration it is issued with. */
	info.gas_bucket_start = digest_seed * 3;
	return info;
}

static struct qs_index *
new_index(size_t n_authors)
{
	struct qs_index *ix = NULL;

	ck_assert_int_eq(qs_index_new(n_authors, &quotas, SEED, &ix), 0);
	ck_assert_ptr_nonnull(ix);
	return ix;
}

static void
expect_write(struct qs_index *ix, int author, const struct qs_batch_info *info)
{
	int reason = -1;

	ck_assert_int_eq(qs_index_admit(ix, author, info, &reason), QS_ADMIT_WRITE);
	ck_assert_int_eq(reason, -1);
}

static void
expect_reject(struct qs_index *ix, int author, const struct qs_batch_info *info, int want)
{
	int reason = -1;

	ck_assert_int_eq(qs_index_admit(ix, author, info, &reason), QS_ADMIT_REJECT);
	ck_assert_int_eq(reason, want);
}

static void
expect_sign(struct qs_index *ix, int author, const struct qs_batch_info *info)
{
	int reason = -1;

	ck_assert_int_eq(qs_index_admit(ix, author, info, &reason), QS_ADMIT_SIGN);
	ck_assert_int_eq(reason, -1);
}

/* Admit and complete a write successfully. */
static void
store(struct qs_index *ix, int author, const struct qs_batch_info *info)
{
	expect_write(ix, author, info);
	qs_index_write_done(ix, author, info, 1);
}

static void
expect_usage(const struct qs_index *ix, int author, uint64_t mem_bytes, uint64_t mem_batches,
             uint64_t disk_bytes, uint64_t disk_batches)
{
	struct qs_author_usage u;

	qs_index_author_usage(ix, author, &u);
	ck_assert_uint_eq(u.mem_bytes, mem_bytes);
	ck_assert_uint_eq(u.mem_batches, mem_batches);
	ck_assert_uint_eq(u.disk_bytes, disk_bytes);
	ck_assert_uint_eq(u.disk_batches, disk_batches);
}

static uint64_t
stored_expiration(const struct qs_index *ix, const struct qs_batch_info *info)
{
	struct qs_batch_info got;

	ck_assert_int_eq(qs_index_lookup(ix, info->digest, &got), 0);
	ck_assert_mem_eq(got.digest, info->digest, QS_DIGEST_BYTES);
	return got.expiration_us;
}

static void
expect_absent(const struct qs_index *ix, const struct qs_batch_info *info)
{
	struct qs_batch_info got;

	ck_assert_int_eq(qs_index_lookup(ix, info->digest, &got), QS_ENOTFOUND);
	ck_assert_int_eq(qs_index_lookup(ix, info->digest, NULL), QS_ENOTFOUND);
}

START_TEST(new_index_is_empty)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10);

	ck_assert_uint_eq(qs_index_count(ix), 0);
	ck_assert_uint_eq(qs_index_bytes(ix), 0);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	ck_assert_uint_eq(qs_index_next_expiration(ix), UINT64_MAX);
	ck_assert_uint_eq(qs_index_expire(ix, UINT64_MAX), 0);
	expect_absent(ix, &a);
	for (int i = -1; i <= 4; i++)
		expect_usage(ix, i, 0, 0, 0, 0);
	qs_index_free(ix);
	qs_index_free(NULL);
}
END_TEST

START_TEST(new_rejects_zero_authors)
{
	struct qs_index *ix = NULL;

	ck_assert_int_eq(qs_index_new(0, &quotas, SEED, &ix), -EINVAL);
	ck_assert_ptr_null(ix);
}
END_TEST

START_TEST(new_digest_admitted_for_write)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(1, 1, 1, 100, 10);

	expect_write(ix, 1, &a);
	expect_usage(ix, 1, 10, 1, 0, 0);
	expect_usage(ix, 0, 0, 0, 0, 0);
	ck_assert_uint_eq(qs_index_pending(ix), 1);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	qs_index_write_done(ix, 1, &a, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(pending_write_is_not_served)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(1, 1, 1, 100, 10);

	expect_write(ix, 1, &a);
	expect_absent(ix, &a);
	ck_assert_uint_eq(qs_index_next_expiration(ix), UINT64_MAX);
	qs_index_write_done(ix, 1, &a, 1);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	qs_index_free(ix);
}
END_TEST

START_TEST(write_done_ok_makes_batch_durable)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(2, 1, 1, 100, 10), got;

	store(ix, 2, &a);
	ck_assert_int_eq(qs_index_lookup(ix, a.digest, &got), 0);
	ck_assert_mem_eq(&got, &a, sizeof(got));
	expect_usage(ix, 2, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_bytes(ix), 10);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	ck_assert_uint_eq(qs_index_next_expiration(ix), 100);
	qs_index_free(ix);
}
END_TEST

START_TEST(failed_write_releases_charge_and_is_not_served)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(2, 1, 1, 100, 10);

	expect_write(ix, 2, &a);
	qs_index_write_done(ix, 2, &a, 0);
	expect_absent(ix, &a);
	expect_usage(ix, 2, 0, 0, 0, 0);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	/* It may be sent again, and then written again. */
	store(ix, 2, &a);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	qs_index_free(ix);
}
END_TEST

START_TEST(failed_write_forgets_batch_id)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(2, 7, 1, 100, 10), b = mk(2, 7, 2, 100, 10);

	expect_write(ix, 2, &a);
	qs_index_write_done(ix, 2, &a, 0);
	/* Nothing of `a` was kept, so `b` is no equivocation of it. */
	store(ix, 2, &b);
	expect_reject(ix, 2, &a, NACK(EQUIVOCATION));
	qs_index_free(ix);
}
END_TEST

START_TEST(duplicate_durable_with_equal_expiration_signed)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10);

	store(ix, 0, &a);
	expect_sign(ix, 0, &a);
	expect_usage(ix, 0, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

/* Regression: gas_bucket_start is outside the digest; a duplicate that changes
 * it must not be signed, durable or still in flight. */
START_TEST(duplicate_with_other_gas_bucket_is_equivocation)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), other = a, b = mk(0, 2, 2, 100, 10);
	struct qs_author_usage u;

	store(ix, 0, &a);
	other.gas_bucket_start = a.gas_bucket_start + 999;
	expect_reject(ix, 0, &other, NACK(EQUIVOCATION));
	other.expiration_us = 200; /* a later expiration does not make it a rewrite */
	expect_reject(ix, 0, &other, NACK(EQUIVOCATION));
	ck_assert_int_eq(qs_index_admit(ix, 0, &b, &(int){0}), QS_ADMIT_WRITE);
	other = b;
	other.gas_bucket_start++;
	expect_reject(ix, 0, &other, NACK(EQUIVOCATION));
	qs_index_author_usage(ix, 0, &u);
	ck_assert_uint_eq(u.equivocations, 3);
	qs_index_write_done(ix, 0, &b, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(duplicate_durable_with_later_stored_expiration_signed)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), early = a;

	store(ix, 0, &a);
	early.expiration_us = 50;
	expect_sign(ix, 0, &early);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	qs_index_free(ix);
}
END_TEST

START_TEST(duplicate_with_later_expiration_rewritten)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), later = a, got;

	store(ix, 0, &a);
	later.expiration_us = 200;
	expect_write(ix, 0, &later);
	expect_usage(ix, 0, 10, 1, 10, 1);
	/* Until the later write completes the earlier key is what is served. */
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	qs_index_write_done(ix, 0, &later, 1);
	ck_assert_int_eq(qs_index_lookup(ix, a.digest, &got), 0);
	ck_assert_uint_eq(got.expiration_us, 200);
	ck_assert_uint_eq(got.gas_bucket_start, a.gas_bucket_start);
	/* Charged to the disk quota once per digest. */
	expect_usage(ix, 0, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_bytes(ix), 10);
	expect_sign(ix, 0, &later);
	expect_sign(ix, 0, &a);
	qs_index_free(ix);
}
END_TEST

START_TEST(duplicate_in_flight_written_again)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), later = a;

	expect_write(ix, 0, &a);
	expect_write(ix, 0, &a);
	later.expiration_us = 150;
	expect_write(ix, 0, &later);
	expect_usage(ix, 0, 30, 3, 0, 0);
	ck_assert_uint_eq(qs_index_pending(ix), 3);
	qs_index_write_done(ix, 0, &later, 1);
	ck_assert_uint_eq(stored_expiration(ix, &a), 150);
	qs_index_write_done(ix, 0, &a, 1);
	/* An earlier expiration completing later does not shorten it. */
	ck_assert_uint_eq(stored_expiration(ix, &a), 150);
	qs_index_write_done(ix, 0, &a, 0);
	ck_assert_uint_eq(stored_expiration(ix, &a), 150);
	expect_usage(ix, 0, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(failed_rewrite_keeps_durable_copy)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), later = a;

	store(ix, 0, &a);
	later.expiration_us = 200;
	expect_write(ix, 0, &later);
	qs_index_write_done(ix, 0, &later, 0);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	expect_usage(ix, 0, 0, 0, 10, 1);
	/* Sent again, it is rewritten again. */
	expect_write(ix, 0, &later);
	qs_index_write_done(ix, 0, &later, 1);
	ck_assert_uint_eq(stored_expiration(ix, &a), 200);
	qs_index_free(ix);
}
END_TEST

START_TEST(sign_changes_no_usage)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10);

	store(ix, 0, &a);
	for (int i = 0; i < 100; i++)
		expect_sign(ix, 0, &a);
	expect_usage(ix, 0, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(equivocation_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(3, 9, 1, 100, 10), b = mk(3, 9, 2, 100, 10);

	store(ix, 3, &a);
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	b.expiration_us = 300;
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	qs_index_free(ix);
}
END_TEST

START_TEST(equivocation_rejected_while_first_is_pending)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(3, 9, 1, 100, 10), b = mk(3, 9, 2, 100, 10);

	expect_write(ix, 3, &a);
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	qs_index_write_done(ix, 3, &a, 1);
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	qs_index_free(ix);
}
END_TEST

START_TEST(equivocation_counted_and_never_stored)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(3, 9, 1, 100, 10), b = mk(3, 9, 2, 100, 20);
	struct qs_author_usage u;

	store(ix, 3, &a);
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	expect_reject(ix, 3, &b, NACK(EQUIVOCATION));
	qs_index_author_usage(ix, 3, &u);
	ck_assert_uint_eq(u.equivocations, 2);
	ck_assert_uint_eq(u.mem_bytes, 0);
	ck_assert_uint_eq(u.disk_bytes, 10);
	qs_index_author_usage(ix, 2, &u);
	ck_assert_uint_eq(u.equivocations, 0);
	expect_absent(ix, &b);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(same_batch_id_of_another_author_is_no_equivocation)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 9, 1, 100, 10), b = mk(1, 9, 2, 100, 10);

	store(ix, 0, &a);
	store(ix, 1, &b);
	ck_assert_uint_eq(qs_index_count(ix), 2);
	qs_index_free(ix);
}
END_TEST

START_TEST(author_out_of_range_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 9, 1, 100, 10);

	expect_reject(ix, 4, &a, NACK(WRONG_AUTHOR));
	expect_reject(ix, -1, &a, NACK(WRONG_AUTHOR));
	store(ix, 0, &a);
	/* A known digest under another author index is not signed either. */
	expect_reject(ix, 1, &a, NACK(WRONG_AUTHOR));
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(over_mem_bytes_quota_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 600), b = mk(0, 2, 2, 100, 401);

	expect_write(ix, 0, &a);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	b.num_bytes = 400;
	expect_write(ix, 0, &b);
	expect_usage(ix, 0, 1000, 2, 0, 0);
	qs_index_write_done(ix, 0, &a, 1);
	qs_index_write_done(ix, 0, &b, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(over_mem_batches_quota_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b[5];

	for (int i = 0; i < 5; i++)
		b[i] = mk(0, (uint64_t)i, (uint64_t)i, 100, 1);
	for (int i = 0; i < 4; i++)
		expect_write(ix, 0, &b[i]);
	expect_reject(ix, 0, &b[4], NACK(OVER_QUOTA));
	/* A completed write frees its place. */
	qs_index_write_done(ix, 0, &b[0], 1);
	expect_write(ix, 0, &b[4]);
	for (int i = 1; i < 5; i++)
		qs_index_write_done(ix, 0, &b[i], 0);
	expect_usage(ix, 0, 0, 0, 1, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(over_disk_bytes_quota_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b;
	int i;

	for (i = 0; i < 9; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1000);
		store(ix, 0, &b);
	}
	b = mk(0, 100, 100, 100, 1001);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	b.num_bytes = 1000;
	store(ix, 0, &b);
	expect_usage(ix, 0, 0, 0, 10000, 10);
	b = mk(0, 101, 101, 100, 1);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	qs_index_free(ix);
}
END_TEST

START_TEST(over_disk_batches_quota_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b;
	int i;

	for (i = 0; i < 10; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1);
		store(ix, 0, &b);
	}
	b = mk(0, 100, 100, 100, 1);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	expect_usage(ix, 0, 0, 0, 10, 10);
	qs_index_free(ix);
}
END_TEST

START_TEST(pending_writes_count_against_disk_quota)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b;
	int i;

	for (i = 0; i < 7; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1);
		store(ix, 0, &b);
	}
	for (i = 7; i < 10; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1);
		expect_write(ix, 0, &b);
	}
	/* 7 durable + 3 in flight: the disk quota of 10 batches is taken. */
	b = mk(0, 10, 10, 100, 1);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	b = mk(0, 9, 9, 100, 1);
	qs_index_write_done(ix, 0, &b, 0);
	b = mk(0, 10, 10, 100, 1);
	expect_write(ix, 0, &b);
	qs_index_write_done(ix, 0, &b, 1);
	for (i = 7; i < 9; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1);
		qs_index_write_done(ix, 0, &b, 1);
	}
	expect_usage(ix, 0, 0, 0, 10, 10);
	qs_index_free(ix);
}
END_TEST

START_TEST(exactly_at_quota_accepted)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b = mk(0, 1, 1, 100, 1000);

	/* One batch of exactly the memory byte quota. */
	store(ix, 0, &b);
	expect_usage(ix, 0, 0, 0, 1000, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(quota_is_per_author)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b;
	int i;

	for (i = 0; i < 4; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 250);
		expect_write(ix, 0, &b);
	}
	b = mk(0, 50, 50, 100, 1);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	for (int a = 1; a < 4; a++) {
		for (i = 0; i < 4; i++) {
			b = mk(a, (uint64_t)i, (uint64_t)(a * 100 + i), 100, 250);
			expect_write(ix, a, &b);
		}
		expect_usage(ix, a, 1000, 4, 0, 0);
	}
	expect_usage(ix, 0, 1000, 4, 0, 0);
	for (int a = 0; a < 4; a++) {
		for (i = 0; i < 4; i++) {
			b = mk(a, (uint64_t)i, (uint64_t)(a ? a * 100 + i : i), 100, 250);
			qs_index_write_done(ix, a, &b, 1);
		}
	}
	ck_assert_uint_eq(qs_index_count(ix), 16);
	ck_assert_uint_eq(qs_index_bytes(ix), 4000);
	qs_index_free(ix);
}
END_TEST

START_TEST(rewrite_needs_only_memory_quota)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b, first = mk(0, 0, 0, 100, 1000);
	int i;

	for (i = 0; i < 10; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 100, 1000);
		store(ix, 0, &b);
	}
	expect_usage(ix, 0, 0, 0, 10000, 10);
	/* The disk quota is full, but the later expiration adds nothing. */
	first.expiration_us = 200;
	expect_write(ix, 0, &first);
	qs_index_write_done(ix, 0, &first, 1);
	ck_assert_uint_eq(stored_expiration(ix, &first), 200);
	expect_usage(ix, 0, 0, 0, 10000, 10);
	qs_index_free(ix);
}
END_TEST

START_TEST(rewrite_over_memory_quota_rejected)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 0, 0, 100, 600), later = a;

	store(ix, 0, &a);
	later.expiration_us = 200;
	expect_write(ix, 0, &later);
	later.expiration_us = 300;
	expect_reject(ix, 0, &later, NACK(OVER_QUOTA));
	later.expiration_us = 200;
	qs_index_write_done(ix, 0, &later, 1);
	expect_usage(ix, 0, 0, 0, 600, 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(over_quota_reject_changes_nothing)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 1001);

	expect_reject(ix, 0, &a, NACK(OVER_QUOTA));
	expect_usage(ix, 0, 0, 0, 0, 0);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	expect_absent(ix, &a);
	/* Not recorded: a smaller batch of the same batch id is no equivocation. */
	a = mk(0, 1, 2, 100, 10);
	store(ix, 0, &a);
	qs_index_free(ix);
}
END_TEST

START_TEST(set_quotas_applies_to_new_admissions)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 500), b = mk(0, 2, 2, 100, 500);
	struct qs_quotas q = quotas;

	store(ix, 0, &a);
	q.author_disk_bytes = 600;
	qs_index_set_quotas(ix, &q);
	expect_reject(ix, 0, &b, NACK(OVER_QUOTA));
	q.author_disk_bytes = 400;
	qs_index_set_quotas(ix, &q);
	/* Already durable above the new quota: kept, and signed again. */
	expect_sign(ix, 0, &a);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_forgets_and_releases_quota)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), b = mk(1, 1, 2, 200, 20);

	store(ix, 0, &a);
	store(ix, 1, &b);
	ck_assert_uint_eq(qs_index_expire(ix, 150), 1);
	expect_absent(ix, &a);
	ck_assert_uint_eq(stored_expiration(ix, &b), 200);
	expect_usage(ix, 0, 0, 0, 0, 0);
	expect_usage(ix, 1, 0, 0, 20, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_bytes(ix), 20);
	ck_assert_uint_eq(qs_index_expire(ix, 150), 0);
	ck_assert_uint_eq(qs_index_expire(ix, 1000), 1);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	ck_assert_uint_eq(qs_index_bytes(ix), 0);
	expect_usage(ix, 1, 0, 0, 0, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_removes_from_both_tables)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), b = mk(0, 1, 2, 300, 10);

	store(ix, 0, &a);
	expect_reject(ix, 0, &b, NACK(EQUIVOCATION));
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	/* The batch id is free again and the digest is new again. */
	store(ix, 0, &b);
	expect_reject(ix, 0, &a, NACK(EQUIVOCATION));
	ck_assert_uint_eq(qs_index_expire(ix, 300), 1);
	a.expiration_us = 400;
	store(ix, 0, &a);
	ck_assert_uint_eq(stored_expiration(ix, &a), 400);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_boundary_is_inclusive)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10);

	store(ix, 0, &a);
	ck_assert_uint_eq(qs_index_expire(ix, 99), 0);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	expect_absent(ix, &a);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_in_expiration_order)
{
	struct qs_index *ix = new_index(1);
	struct qs_quotas q = quotas;
	enum {
		N = 5000
	};
	static uint64_t exp[N];
	uint64_t s = 99;
	size_t left = N;

	q.author_mem_batches = N;
	q.author_disk_batches = N;
	q.author_mem_bytes = N;
	q.author_disk_bytes = N;
	qs_index_set_quotas(ix, &q);
	for (int i = 0; i < N; i++) {
		struct qs_batch_info b;

		exp[i] = 1 + splitmix(&s) % 1000;
		b = mk(0, (uint64_t)i, (uint64_t)i, exp[i], 1);
		store(ix, 0, &b);
	}
	for (uint64_t now = 0, prev = 0; now <= 1000; prev = now, now += 7) {
		size_t want = 0;

		for (int i = 0; i < N; i++)
			want += exp[i] > prev && exp[i] <= now;
		ck_assert_uint_eq(qs_index_expire(ix, now), want);
		left -= want;
		ck_assert_uint_eq(qs_index_count(ix), left);
		for (int i = 0; i < N; i += 97) {
			struct qs_batch_info b = mk(0, (uint64_t)i, (uint64_t)i, exp[i], 1);

			if (exp[i] <= now)
				expect_absent(ix, &b);
			else
				ck_assert_uint_eq(stored_expiration(ix, &b), exp[i]);
		}
		if (left)
			ck_assert_uint_gt(qs_index_next_expiration(ix), now);
	}
	ck_assert_uint_eq(qs_index_expire(ix, UINT64_MAX), left);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_keeps_entry_with_write_in_flight)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), later = a, other = mk(0, 1, 2, 300, 10);

	store(ix, 0, &a);
	later.expiration_us = 300;
	expect_write(ix, 0, &later);
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	expect_absent(ix, &a);
	expect_usage(ix, 0, 10, 1, 0, 0);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	/* Still known: its batch id is still taken, a copy is in flight. */
	expect_reject(ix, 0, &other, NACK(EQUIVOCATION));
	expect_write(ix, 0, &later);
	qs_index_write_done(ix, 0, &later, 1);
	ck_assert_uint_eq(stored_expiration(ix, &a), 300);
	expect_usage(ix, 0, 10, 1, 10, 1);
	qs_index_write_done(ix, 0, &later, 0);
	expect_usage(ix, 0, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_expire(ix, 300), 1);
	expect_usage(ix, 0, 0, 0, 0, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(expire_then_failed_write_forgets_entry)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), later = a, other = mk(0, 1, 2, 300, 10);

	store(ix, 0, &a);
	later.expiration_us = 300;
	expect_write(ix, 0, &later);
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	qs_index_write_done(ix, 0, &later, 0);
	expect_absent(ix, &a);
	expect_usage(ix, 0, 0, 0, 0, 0);
	store(ix, 0, &other);
	qs_index_free(ix);
}
END_TEST

START_TEST(rewritten_batch_expires_at_later_expiration)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), b = mk(0, 2, 2, 150, 10), later = a;

	store(ix, 0, &a);
	store(ix, 0, &b);
	later.expiration_us = 200;
	store(ix, 0, &later);
	ck_assert_uint_eq(qs_index_next_expiration(ix), 150);
	ck_assert_uint_eq(qs_index_expire(ix, 199), 1);
	ck_assert_uint_eq(stored_expiration(ix, &a), 200);
	ck_assert_uint_eq(qs_index_expire(ix, 200), 1);
	expect_absent(ix, &a);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_recovers_batch)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(2, 1, 1, 100, 10), got;

	ck_assert_int_eq(qs_index_add_durable(ix, 2, &a), 0);
	ck_assert_int_eq(qs_index_lookup(ix, a.digest, &got), 0);
	ck_assert_mem_eq(&got, &a, sizeof(got));
	expect_usage(ix, 2, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	expect_usage(ix, 2, 0, 0, 0, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_duplicate_keeps_later_expiration)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(2, 1, 1, 100, 10), later = a;

	later.expiration_us = 200;
	ck_assert_int_eq(qs_index_add_durable(ix, 2, &a), 0);
	ck_assert_int_eq(qs_index_add_durable(ix, 2, &later), QS_EEXISTS);
	ck_assert_uint_eq(stored_expiration(ix, &a), 200);
	ck_assert_int_eq(qs_index_add_durable(ix, 2, &a), QS_EEXISTS);
	ck_assert_uint_eq(stored_expiration(ix, &a), 200);
	expect_usage(ix, 2, 0, 0, 10, 1);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	ck_assert_uint_eq(qs_index_expire(ix, 150), 0);
	ck_assert_uint_eq(qs_index_expire(ix, 200), 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_ignores_quota)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info b;
	int i;

	for (i = 0; i < 20; i++) {
		b = mk(1, (uint64_t)i, (uint64_t)i, 100, 2000);
		ck_assert_int_eq(qs_index_add_durable(ix, 1, &b), 0);
	}
	expect_usage(ix, 1, 0, 0, 40000, 20);
	b = mk(1, 100, 100, 100, 1);
	expect_reject(ix, 1, &b, NACK(OVER_QUOTA));
	b = mk(1, 0, 0, 100, 2000);
	expect_sign(ix, 1, &b);
	ck_assert_uint_eq(qs_index_expire(ix, 100), 20);
	expect_usage(ix, 1, 0, 0, 0, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_then_admit_signs_or_rewrites)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 5, 1, 100, 10), later = a, other = mk(0, 5, 2, 100, 10);

	ck_assert_int_eq(qs_index_add_durable(ix, 0, &a), 0);
	expect_sign(ix, 0, &a);
	expect_reject(ix, 0, &other, NACK(EQUIVOCATION));
	later.expiration_us = 300;
	store(ix, 0, &later);
	ck_assert_uint_eq(stored_expiration(ix, &a), 300);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_rejects_author_out_of_range)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 5, 1, 100, 10);

	ck_assert_int_eq(qs_index_add_durable(ix, 4, &a), -EINVAL);
	ck_assert_int_eq(qs_index_add_durable(ix, -1, &a), -EINVAL);
	ck_assert_int_eq(qs_index_add_durable(ix, 0, &a), 0);
	ck_assert_int_eq(qs_index_add_durable(ix, 1, &a), -EINVAL);
	ck_assert_uint_eq(qs_index_count(ix), 1);
	qs_index_free(ix);
}
END_TEST

START_TEST(add_durable_second_digest_of_batch_id_is_served)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 5, 1, 100, 10), b = mk(0, 5, 2, 200, 10);
	struct qs_batch_info c = mk(0, 5, 3, 200, 10);

	ck_assert_int_eq(qs_index_add_durable(ix, 0, &a), 0);
	ck_assert_int_eq(qs_index_add_durable(ix, 0, &b), 0);
	ck_assert_uint_eq(stored_expiration(ix, &a), 100);
	ck_assert_uint_eq(stored_expiration(ix, &b), 200);
	expect_reject(ix, 0, &c, NACK(EQUIVOCATION));
	/* Once the first expires the batch id is checked against nothing. */
	ck_assert_uint_eq(qs_index_expire(ix, 100), 1);
	store(ix, 0, &c);
	ck_assert_uint_eq(qs_index_expire(ix, 200), 2);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(write_done_without_admission_aborts)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 5, 1, 100, 10);

	qs_index_write_done(ix, 0, &a, 1);
}
END_TEST

START_TEST(write_done_twice_aborts)
{
	struct qs_index *ix = new_index(4);
	struct qs_batch_info a = mk(0, 5, 1, 100, 10);

	store(ix, 0, &a);
	qs_index_write_done(ix, 0, &a, 1);
}
END_TEST

/* Digests with equal first 8 bytes share a hash and so one probe chain;
 * removing from its middle must keep the rest reachable. */
START_TEST(digests_sharing_hash_prefix_are_distinct)
{
	struct qs_index *ix = new_index(1);
	struct qs_quotas q = quotas;
	enum {
		N = 3000
	};
	struct qs_batch_info b;

	q.author_disk_batches = N;
	q.author_disk_bytes = N;
	qs_index_set_quotas(ix, &q);
	for (int i = 0; i < N; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 1 + (uint64_t)(i % 3), 1);
		memset(b.digest, 0xab, 8);
		store(ix, 0, &b);
	}
	ck_assert_uint_eq(qs_index_expire(ix, 1), N / 3);
	for (int i = 0; i < N; i++) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 1 + (uint64_t)(i % 3), 1);
		memset(b.digest, 0xab, 8);
		if (i % 3 == 0)
			expect_absent(ix, &b);
		else
			ck_assert_uint_eq(stored_expiration(ix, &b), b.expiration_us);
	}
	ck_assert_uint_eq(qs_index_expire(ix, 3), N - N / 3);
	for (int i = 0; i < N; i += 7) {
		b = mk(0, (uint64_t)i, (uint64_t)i, 10, 1);
		memset(b.digest, 0xab, 8);
		expect_absent(ix, &b);
	}
	qs_index_free(ix);
}
END_TEST

/* The stored expiration of `info`'s digest, or 0 if it is not served. */
static uint64_t
served_expiration(const struct qs_index *ix, const struct qs_batch_info *info)
{
	struct qs_batch_info got;

	if (qs_index_lookup(ix, info->digest, &got) != 0)
		return 0;
	REQUIRE(memcmp(got.digest, info->digest, QS_DIGEST_BYTES) == 0);
	return got.expiration_us;
}

static void
quick_store(struct qs_index *ix, int author, const struct qs_batch_info *info)
{
	int reason;

	REQUIRE(qs_index_admit(ix, author, info, &reason) == QS_ADMIT_WRITE);
	qs_index_write_done(ix, author, info, 1);
}

static struct qs_index *
big_index(size_t n_authors, uint64_t per_author)
{
	struct qs_quotas q = {
	    .author_mem_bytes = per_author,
	    .author_mem_batches = per_author,
	    .author_disk_bytes = per_author,
	    .author_disk_batches = per_author,
	    .author_proofs = 1,
	};
	struct qs_index *ix = NULL;

	ck_assert_int_eq(qs_index_new(n_authors, &q, SEED, &ix), 0);
	return ix;
}

START_TEST(growth_past_100000_entries_keeps_lookups_right)
{
	enum {
		N = 150000,
		AUTHORS = 8
	};
	struct qs_index *ix = big_index(AUTHORS, N);
	struct qs_batch_info b;
	int reason;

	for (int i = 0; i < N; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i, 1000 + (uint64_t)i, 1);
		if (i % 2)
			REQUIRE(qs_index_add_durable(ix, i % AUTHORS, &b) == 0);
		else
			quick_store(ix, i % AUTHORS, &b);
		/* Check earlier ones across each growth. */
		if ((i & (i - 1)) == 0) {
			for (int j = 0; j <= i; j += 1 + i / 64) {
				b = mk(j % AUTHORS, (uint64_t)j, (uint64_t)j, 0, 1);
				REQUIRE(served_expiration(ix, &b) == 1000 + (uint64_t)j);
			}
		}
	}
	ck_assert_uint_eq(qs_index_count(ix), N);
	ck_assert_uint_eq(qs_index_bytes(ix), N);
	for (int i = 0; i < N; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i, 0, 1);
		REQUIRE(served_expiration(ix, &b) == 1000 + (uint64_t)i);
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i + N, 0, 1);
		REQUIRE(served_expiration(ix, &b) == 0);
		if (i % 1000 == 0) {
			REQUIRE(qs_index_admit(ix, i % AUTHORS, &b, &reason) == QS_ADMIT_REJECT);
			REQUIRE(reason == NACK(EQUIVOCATION));
		}
	}
	/* Expire the older half and reuse the freed entries. */
	ck_assert_uint_eq(qs_index_expire(ix, 1000 + N / 2 - 1), N / 2);
	for (int i = 0; i < N / 2; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i + N, 5000000, 1);
		quick_store(ix, i % AUTHORS, &b);
	}
	for (int i = 0; i < N; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i, 0, 1);
		REQUIRE(served_expiration(ix, &b) == (i < N / 2 ? 0 : 1000 + (uint64_t)i));
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i + N, 0, 1);
		REQUIRE(served_expiration(ix, &b) == (i < N / 2 ? 5000000 : 0));
	}
	ck_assert_uint_eq(qs_index_count(ix), N);
	ck_assert_uint_eq(qs_index_expire(ix, UINT64_MAX), N);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	for (int a = 0; a < AUTHORS; a++)
		expect_usage(ix, a, 0, 0, 0, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(one_million_entries)
{
	enum {
		N = 1000000,
		AUTHORS = 100
	};
	struct qs_index *ix = big_index(AUTHORS, (uint64_t)N * 100);
	struct qs_batch_info b;
	uint64_t now = 0;

	/* Mostly increasing expirations, as in steady state. */
	for (int i = 0; i < N; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i,
		       1000000 + (uint64_t)i + (uint64_t)(i % 97), 100);
		quick_store(ix, i % AUTHORS, &b);
	}
	ck_assert_uint_eq(qs_index_count(ix), N);
	ck_assert_uint_eq(qs_index_bytes(ix), (uint64_t)N * 100);
	for (int i = 0; i < N; i++) {
		b = mk(i % AUTHORS, (uint64_t)i, (uint64_t)i, 1, 100);
		REQUIRE(qs_index_lookup(ix, b.digest, NULL) == 0);
	}
	for (size_t left = N; left;) {
		now += 10000;
		left -= qs_index_expire(ix, 1000000 + now);
		ck_assert_uint_eq(qs_index_count(ix), left);
	}
	qs_index_free(ix);
}
END_TEST

/*
 * A naive model: one record per batch identity (author, batch id, variant);
 * the variants of one (author, batch id) are equivocations of each other.
 */
enum {
	M_AUTHORS = 4,
	M_IDS = 60,
	M_VARIANTS = 3,
	M_N = M_AUTHORS * M_IDS * M_VARIANTS
};

struct model_rec {
	int alive, durable, by_batch_id;
	uint32_t pending;
	uint64_t exp;
};

struct model {
	struct model_rec r[M_N];
	struct qs_author_usage u[M_AUTHORS];
	size_t count, pending;
	uint64_t bytes;
};

static int
m_author(int id)
{
	return id / (M_IDS * M_VARIANTS);
}

static uint64_t
m_batch_id(int id)
{
	return (uint64_t)(id / M_VARIANTS % M_IDS);
}

static uint64_t
m_bytes(int id)
{
	return 50 + (uint64_t)(id * 37 % 400);
}

static struct qs_batch_info
m_info(int id, uint64_t exp)
{
	struct qs_batch_info b = mk(m_author(id), m_batch_id(id), (uint64_t)id, exp, m_bytes(id));

	/* Every fifth identity shares a hash with the others of its kind. */
	if (id % 5 == 0)
		memset(b.digest, 0xee, 8);
	return b;
}

static int
m_within(uint64_t a, uint64_t b, uint64_t add, uint64_t limit)
{
	return a + b + add <= limit;
}

/* Another variant of id's (author, batch id) holds the batch id. */
static int
m_batch_id_taken(const struct model *m, int id)
{
	int base = id - id % M_VARIANTS;

	for (int v = base; v < base + M_VARIANTS; v++) {
		if (v != id && m->r[v].alive && m->r[v].by_batch_id)
			return 1;
	}
	return 0;
}

static void
m_make_durable(struct model *m, int id, uint64_t exp)
{
	struct model_rec *r = &m->r[id];

	r->durable = 1;
	r->exp = exp;
	m->u[m_author(id)].disk_bytes += m_bytes(id);
	m->u[m_author(id)].disk_batches++;
	m->count++;
	m->bytes += m_bytes(id);
}

static enum qs_admit
m_admit(struct model *m, const struct qs_quotas *q, int id, uint64_t exp, int *reason)
{
	struct model_rec *r = &m->r[id];
	struct qs_author_usage *u = &m->u[m_author(id)];
	uint64_t nb = m_bytes(id);

	if (r->alive) {
		if (r->durable && r->exp >= exp)
			return QS_ADMIT_SIGN;
		if (!m_within(u->mem_bytes, 0, nb, q->author_mem_bytes) ||
		    !m_within(u->mem_batches, 0, 1, q->author_mem_batches)) {
			*reason = NACK(OVER_QUOTA);
			return QS_ADMIT_REJECT;
		}
	} else {
		if (m_batch_id_taken(m, id)) {
			u->equivocations++;
			*reason = NACK(EQUIVOCATION);
			return QS_ADMIT_REJECT;
		}
		if (!m_within(u->mem_bytes, 0, nb, q->author_mem_bytes) ||
		    !m_within(u->mem_batches, 0, 1, q->author_mem_batches) ||
		    !m_within(u->disk_bytes, u->mem_bytes, nb, q->author_disk_bytes) ||
		    !m_within(u->disk_batches, u->mem_batches, 1, q->author_disk_batches)) {
			*reason = NACK(OVER_QUOTA);
			return QS_ADMIT_REJECT;
		}
		r->alive = 1;
		r->by_batch_id = 1;
	}
	r->pending++;
	m->pending++;
	u->mem_bytes += nb;
	u->mem_batches++;
	return QS_ADMIT_WRITE;
}

static void
m_write_done(struct model *m, int id, uint64_t exp, int ok)
{
	struct model_rec *r = &m->r[id];
	struct qs_author_usage *u = &m->u[m_author(id)];

	REQUIRE(r->alive && r->pending);
	r->pending--;
	m->pending--;
	u->mem_bytes -= m_bytes(id);
	u->mem_batches--;
	if (ok) {
		if (!r->durable)
			m_make_durable(m, id, exp);
		else if (exp > r->exp)
			r->exp = exp;
	}
	if (!r->durable && !r->pending)
		r->alive = r->by_batch_id = 0;
}

static int
m_add_durable(struct model *m, int id, uint64_t exp)
{
	struct model_rec *r = &m->r[id];

	if (r->alive) {
		if (!r->durable)
			m_make_durable(m, id, exp);
		else if (exp > r->exp)
			r->exp = exp;
		return QS_EEXISTS;
	}
	r->alive = 1;
	r->by_batch_id = !m_batch_id_taken(m, id);
	m_make_durable(m, id, exp);
	return 0;
}

static size_t
m_expire(struct model *m, uint64_t now)
{
	size_t n = 0;

	for (int id = 0; id < M_N; id++) {
		struct model_rec *r = &m->r[id];

		if (!r->durable || r->exp > now)
			continue;
		r->durable = 0;
		m->u[m_author(id)].disk_bytes -= m_bytes(id);
		m->u[m_author(id)].disk_batches--;
		m->count--;
		m->bytes -= m_bytes(id);
		if (!r->pending)
			r->alive = r->by_batch_id = 0;
		n++;
	}
	return n;
}

struct inflight {
	int id;
	uint64_t exp;
};

START_TEST(randomized_against_reference_model)
{
	static struct model m;
	static struct inflight fl[1 << 16];
	struct qs_quotas q = {
	    .author_mem_bytes = 2500,
	    .author_mem_batches = 8,
	    .author_disk_bytes = 12000,
	    .author_disk_batches = 40,
	    .author_proofs = 1,
	};
	struct qs_index *ix = NULL;
	size_t n_fl = 0;
	uint64_t s = 2024, now = 1000;
	int outcomes[3] = {0, 0, 0}, equivocations = 0, over_quota = 0;

	ck_assert_int_eq(qs_index_new(M_AUTHORS, &q, SEED, &ix), 0);
	for (int op = 0; op < 50000; op++) {
		uint64_t r = splitmix(&s), pick = r % 100;
		int id = (int)((r >> 8) % M_N);
		uint64_t exp = now + 1 + (r >> 24) % 400;
		struct qs_batch_info info = m_info(id, exp), got;

		if (pick < 45) {
			int want_reason = -1, reason = -1;
			enum qs_admit want = m_admit(&m, &q, id, exp, &want_reason);
			enum qs_admit have = qs_index_admit(ix, m_author(id), &info, &reason);

			REQUIRE(have == want);
			REQUIRE(reason == want_reason);
			outcomes[have]++;
			equivocations += reason == NACK(EQUIVOCATION);
			over_quota += reason == NACK(OVER_QUOTA);
			if (have == QS_ADMIT_WRITE) {
				REQUIRE(n_fl < sizeof(fl) / sizeof(fl[0]));
				fl[n_fl].id = id;
				fl[n_fl].exp = exp;
				n_fl++;
			}
		} else if (pick < 75) {
			size_t k;
			int ok = (r >> 40) % 5 != 0;

			if (!n_fl)
				continue;
			k = (size_t)((r >> 16) % n_fl);
			info = m_info(fl[k].id, fl[k].exp);
			m_write_done(&m, fl[k].id, fl[k].exp, ok);
			qs_index_write_done(ix, m_author(fl[k].id), &info, ok);
			fl[k] = fl[--n_fl];
		} else if (pick < 83) {
			now += (r >> 32) % 60;
			REQUIRE(qs_index_expire(ix, now) == m_expire(&m, now));
		} else if (pick < 85) {
			REQUIRE(qs_index_add_durable(ix, m_author(id), &info) ==
			        m_add_durable(&m, id, exp));
		} else {
			int rc = qs_index_lookup(ix, info.digest, &got);

			if (m.r[id].durable) {
				REQUIRE(rc == 0);
				REQUIRE(got.expiration_us == m.r[id].exp);
				REQUIRE(got.gas_bucket_start == (uint64_t)id * 3);
				REQUIRE(got.batch_id == m_batch_id(id));
				REQUIRE(got.num_bytes == m_bytes(id));
			} else {
				REQUIRE(rc == QS_ENOTFOUND);
			}
		}
		REQUIRE(qs_index_count(ix) == m.count);
		REQUIRE(qs_index_bytes(ix) == m.bytes);
		REQUIRE(qs_index_pending(ix) == m.pending);
		for (int a = 0; a < M_AUTHORS; a++) {
			struct qs_author_usage u;

			qs_index_author_usage(ix, a, &u);
			REQUIRE(memcmp(&u, &m.u[a], sizeof(u)) == 0);
		}
	}
	/* Every outcome was exercised. */
	ck_assert_int_gt(outcomes[QS_ADMIT_WRITE], 1000);
	ck_assert_int_gt(outcomes[QS_ADMIT_SIGN], 100);
	ck_assert_int_gt(equivocations, 100);
	ck_assert_int_gt(over_quota, 100);
	/* Every durable batch of the model is served, and nothing else. */
	for (int id = 0; id < M_N; id++) {
		struct qs_batch_info info = m_info(id, 0);

		ck_assert_int_eq(qs_index_lookup(ix, info.digest, NULL),
		                 m.r[id].durable ? 0 : QS_ENOTFOUND);
	}
	while (n_fl) {
		struct qs_batch_info info = m_info(fl[n_fl - 1].id, fl[n_fl - 1].exp);

		qs_index_write_done(ix, m_author(fl[n_fl - 1].id), &info, 0);
		n_fl--;
	}
	qs_index_expire(ix, UINT64_MAX);
	ck_assert_uint_eq(qs_index_count(ix), 0);
	ck_assert_uint_eq(qs_index_pending(ix), 0);
	qs_index_free(ix);
}
END_TEST

/* ---- listing ---- */

/* Field by field: struct copies need not carry padding. */
static int
info_eq(const struct qs_batch_info *a, const struct qs_batch_info *b)
{
	return memcmp(a->author, b->author, QS_PUBKEY_BYTES) == 0 && a->batch_id == b->batch_id &&
	       a->epoch == b->epoch && a->expiration_us == b->expiration_us &&
	       memcmp(a->digest, b->digest, QS_DIGEST_BYTES) == 0 && a->num_txns == b->num_txns &&
	       a->num_bytes == b->num_bytes && a->gas_bucket_start == b->gas_bucket_start;
}

/* Every durable batch of `author` (-1: all) listed in pages of `page`:
 * each exactly once, and nothing else. Returns the number of pages. */
static size_t
list_all(const struct qs_index *ix, int author, size_t page, const struct qs_batch_info *want,
         const int *want_author, size_t n_want)
{
	struct qs_batch_info out[16];
	int authors[16], seen[64] = {0};
	uint64_t cursor = 0;
	size_t pages = 0, got = 0;

	ck_assert_uint_le(page, 16);
	ck_assert_uint_le(n_want, 64);
	do {
		size_t n = qs_index_list(ix, author, &cursor, out, authors, page);

		ck_assert_uint_le(n, page);
		for (size_t i = 0; i < n; i++, got++) {
			size_t j;

			for (j = 0; j < n_want; j++) {
				if (info_eq(&out[i], &want[j]))
					break;
			}
			ck_assert_uint_lt(j, n_want);
			ck_assert_int_eq(seen[j], 0);
			ck_assert_int_eq(authors[i], want_author[j]);
			seen[j] = 1;
		}
		pages++;
	} while (cursor != 0);
	ck_assert_uint_eq(got, n_want);
	return pages;
}

START_TEST(list_pages_over_every_durable_batch)
{
	struct qs_index *ix = new_index(3);
	struct qs_batch_info want[25], pending = mk(0, 100, 100, 900, 10);
	struct qs_batch_info expired = mk(1, 100, 101, 50, 10);
	int want_author[25];

	store(ix, 1, &expired);
	for (int i = 0; i < 25; i++) {
		want_author[i] = i % 3;
		want[i] = mk(i % 3, (uint64_t)i, (uint64_t)i, 1000 + (uint64_t)i, 10);
		if (i % 2)
			store(ix, i % 3, &want[i]);
		else
			ck_assert_int_eq(qs_index_add_durable(ix, i % 3, &want[i]), 0);
	}
	/* Neither a write in flight nor an expired batch is listed. */
	expect_write(ix, 0, &pending);
	ck_assert_uint_eq(qs_index_expire(ix, 50), 1);
	ck_assert_uint_eq(list_all(ix, -1, 4, want, want_author, 25), 7);
	ck_assert_uint_eq(list_all(ix, -1, 5, want, want_author, 25), 5);
	ck_assert_uint_eq(list_all(ix, -1, 16, want, want_author, 25), 2);
	qs_index_write_done(ix, 0, &pending, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(list_filters_by_author)
{
	struct qs_index *ix = new_index(3);
	struct qs_batch_info all[12], mine[4];
	int mine_author[4] = {2, 2, 2, 2};
	struct qs_batch_info out[4];
	uint64_t cursor = 0;
	size_t k = 0;

	for (int i = 0; i < 12; i++) {
		all[i] = mk(i % 3, (uint64_t)i, (uint64_t)i, 1000, 10);
		store(ix, i % 3, &all[i]);
		if (i % 3 == 2)
			mine[k++] = all[i];
	}
	ck_assert_uint_eq(list_all(ix, 2, 3, mine, mine_author, 4), 2);
	/* The authors array is optional. */
	ck_assert_uint_eq(qs_index_list(ix, 2, &cursor, out, NULL, 4), 4);
	ck_assert_uint_eq(cursor, 0);
	/* Authors out of range list nothing. */
	cursor = 0;
	ck_assert_uint_eq(qs_index_list(ix, 3, &cursor, out, NULL, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	ck_assert_uint_eq(qs_index_list(ix, -2, &cursor, out, NULL, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(list_of_empty_index_is_empty)
{
	struct qs_index *ix = new_index(3);
	struct qs_batch_info a = mk(1, 1, 1, 100, 10), out[4];
	int authors[4];
	uint64_t cursor = 0;

	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, authors, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	ck_assert_uint_eq(qs_index_list(ix, 0, &cursor, out, authors, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	/* Emptied again. */
	store(ix, 1, &a);
	ck_assert_uint_eq(qs_index_expire(ix, UINT64_MAX), 1);
	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, authors, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	/* A stale cursor past the end. */
	cursor = 1000;
	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, authors, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	qs_index_free(ix);
}
END_TEST

START_TEST(list_cursor_is_zero_right_after_the_last_batch)
{
	struct qs_index *ix = new_index(3);
	struct qs_batch_info a = mk(0, 1, 1, 100, 10), b = mk(1, 1, 2, 100, 10), out[2];
	uint64_t cursor = 0;

	store(ix, 0, &a);
	store(ix, 1, &b);
	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, NULL, 2), 2);
	ck_assert_uint_eq(cursor, 0);
	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, NULL, 1), 1);
	ck_assert_uint_ne(cursor, 0);
	ck_assert_uint_eq(qs_index_list(ix, -1, &cursor, out, NULL, 1), 1);
	ck_assert_uint_eq(cursor, 0);
	/* Author 0's only batch comes first: nothing of it follows. */
	ck_assert_uint_eq(qs_index_list(ix, 0, &cursor, out, NULL, 1), 1);
	ck_assert_uint_eq(cursor, 0);
	qs_index_free(ix);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("index");
	TCase *ts = tcase_create("scale");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_index_is_empty);
	tcase_add_test(tc, new_rejects_zero_authors);
	tcase_add_test(tc, new_digest_admitted_for_write);
	tcase_add_test(tc, pending_write_is_not_served);
	tcase_add_test(tc, write_done_ok_makes_batch_durable);
	tcase_add_test(tc, failed_write_releases_charge_and_is_not_served);
	tcase_add_test(tc, failed_write_forgets_batch_id);
	tcase_add_test(tc, duplicate_durable_with_equal_expiration_signed);
	tcase_add_test(tc, duplicate_with_other_gas_bucket_is_equivocation);
	tcase_add_test(tc, duplicate_durable_with_later_stored_expiration_signed);
	tcase_add_test(tc, duplicate_with_later_expiration_rewritten);
	tcase_add_test(tc, duplicate_in_flight_written_again);
	tcase_add_test(tc, failed_rewrite_keeps_durable_copy);
	tcase_add_test(tc, sign_changes_no_usage);
	tcase_add_test(tc, equivocation_rejected);
	tcase_add_test(tc, equivocation_rejected_while_first_is_pending);
	tcase_add_test(tc, equivocation_counted_and_never_stored);
	tcase_add_test(tc, same_batch_id_of_another_author_is_no_equivocation);
	tcase_add_test(tc, author_out_of_range_rejected);
	tcase_add_test(tc, over_mem_bytes_quota_rejected);
	tcase_add_test(tc, over_mem_batches_quota_rejected);
	tcase_add_test(tc, over_disk_bytes_quota_rejected);
	tcase_add_test(tc, over_disk_batches_quota_rejected);
	tcase_add_test(tc, pending_writes_count_against_disk_quota);
	tcase_add_test(tc, exactly_at_quota_accepted);
	tcase_add_test(tc, quota_is_per_author);
	tcase_add_test(tc, rewrite_needs_only_memory_quota);
	tcase_add_test(tc, rewrite_over_memory_quota_rejected);
	tcase_add_test(tc, over_quota_reject_changes_nothing);
	tcase_add_test(tc, set_quotas_applies_to_new_admissions);
	tcase_add_test(tc, expire_forgets_and_releases_quota);
	tcase_add_test(tc, expire_removes_from_both_tables);
	tcase_add_test(tc, expire_boundary_is_inclusive);
	tcase_add_test(tc, expire_in_expiration_order);
	tcase_add_test(tc, expire_keeps_entry_with_write_in_flight);
	tcase_add_test(tc, expire_then_failed_write_forgets_entry);
	tcase_add_test(tc, rewritten_batch_expires_at_later_expiration);
	tcase_add_test(tc, add_durable_recovers_batch);
	tcase_add_test(tc, add_durable_duplicate_keeps_later_expiration);
	tcase_add_test(tc, add_durable_ignores_quota);
	tcase_add_test(tc, add_durable_then_admit_signs_or_rewrites);
	tcase_add_test(tc, add_durable_rejects_author_out_of_range);
	tcase_add_test(tc, add_durable_second_digest_of_batch_id_is_served);
	tcase_add_test_raise_signal(tc, write_done_without_admission_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, write_done_twice_aborts, SIGABRT);
	tcase_add_test(tc, digests_sharing_hash_prefix_are_distinct);
	tcase_add_test(tc, list_pages_over_every_durable_batch);
	tcase_add_test(tc, list_filters_by_author);
	tcase_add_test(tc, list_of_empty_index_is_empty);
	tcase_add_test(tc, list_cursor_is_zero_right_after_the_last_batch);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ts, 300);
	tcase_add_test(ts, growth_past_100000_entries_keeps_lookups_right);
	tcase_add_test(ts, one_million_entries);
	tcase_add_test(ts, randomized_against_reference_model);
	suite_add_tcase(s, ts);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
