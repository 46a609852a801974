/* core/pqueue: the proof queue and GetPayload's selection. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pqueue.h"
#include "tests/lib/fixtures.h"

#define SEED UINT64_C(0x5eed5eed12345678)
#define BIG  UINT64_MAX

/* A uniform-looking digest named by `seed`. */
static void
fill_digest(uint8_t *d, uint64_t seed)
{
	uint64_t s = seed * 4 + 1;

	for (int i = 0; i < QS_DIGEST_BYTES; i += 8) {
		uint64_t x = qs_test_splitmix(&s);
		memcpy(d + i, &x, 8);
	}
}

static struct qs_batch_info
mk(int author, uint64_t batch_id, uint64_t exp_us, uint32_t txns, uint64_t bytes)
{
	struct qs_batch_info info = qs_test_info(batch_id, exp_us);

	memset(info.author, author + 1, sizeof(info.author));
	fill_digest(info.digest, (uint64_t)author << 40 | batch_id);
	info.num_txns = txns;
	info.num_bytes = bytes;
	return info;
}

/* A proof whose bytes name the batch, as the queue is to own it. */
static uint8_t *
mk_proof(const struct qs_batch_info *info, size_t *len)
{
	uint8_t *p = malloc(16);

	ck_assert_ptr_nonnull(p);
	memcpy(p, info->digest, 16);
	*len = 16;
	return p;
}

static int
try_add(struct qs_pqueue *q, int author, const struct qs_batch_info *info)
{
	size_t len;
	uint8_t *proof = mk_proof(info, &len);
	int rc = qs_pqueue_add(q, author, info, proof, len);

	if (rc != 0)
		free(proof);
	return rc;
}

static void
add(struct qs_pqueue *q, int author, const struct qs_batch_info *info)
{
	ck_assert_int_eq(try_add(q, author, info), 0);
}

static struct qs_pqueue *
new_queue(size_t n_authors, uint64_t per_author_max)
{
	struct qs_pqueue *q = NULL;

	ck_assert_int_eq(qs_pqueue_new(n_authors, per_author_max, SEED, &q), 0);
	ck_assert_ptr_nonnull(q);
	return q;
}

static const struct qs_pq_limits unlimited = {BIG, BIG, 0, 0, 1};

static ssize_t
pull(struct qs_pqueue *q, const struct qs_pq_limits *lim, struct qs_pq_item *out, size_t cap)
{
	return qs_pqueue_pull(q, lim, 0, 1, NULL, 0, NULL, NULL, out, cap);
}

static void
expect_item(const struct qs_pq_item *it, int author, uint64_t batch_id)
{
	struct qs_batch_info want = mk(author, batch_id, 0, 0, 0);

	ck_assert_int_eq(it->author, author);
	ck_assert_uint_eq(it->info->batch_id, batch_id);
	ck_assert_mem_eq(it->info->digest, want.digest, QS_DIGEST_BYTES);
	ck_assert_uint_eq(it->proof_len, 16);
	ck_assert_mem_eq(it->proof, want.digest, 16);
}

/* Author's batches with these ids, in this order: 1 txn, 10 bytes each. */
static void
add_ids(struct qs_pqueue *q, int author, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct qs_batch_info info = mk(author, ids[i], 100, 1, 10);

		add(q, author, &info);
	}
}

/* ---- basics ---- */

START_TEST(new_queue_is_empty)
{
	struct qs_pqueue *q = new_queue(3, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10);
	struct qs_pq_item out[4];
	uint64_t cursor = 0;

	ck_assert_uint_eq(qs_pqueue_count(q), 0);
	for (int i = -1; i <= 3; i++)
		ck_assert_uint_eq(qs_pqueue_author_count(q, i), 0);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), UINT64_MAX);
	ck_assert_uint_eq(qs_pqueue_expire(q, UINT64_MAX), 0);
	ck_assert_int_eq(qs_pqueue_get(q, a.digest, out), QS_ENOTFOUND);
	ck_assert_int_eq(qs_pqueue_remove(q, a.digest), 0);
	ck_assert_int_eq(pull(q, &unlimited, out, 4), 0);
	ck_assert_uint_eq(qs_pqueue_list(q, -1, &cursor, out, 4), 0);
	ck_assert_uint_eq(cursor, 0);
	qs_pqueue_free(q);
	qs_pqueue_free(NULL);
}
END_TEST

START_TEST(new_rejects_zero_authors)
{
	struct qs_pqueue *q = NULL;

	ck_assert_int_eq(qs_pqueue_new(0, 10, SEED, &q), -EINVAL);
	ck_assert_ptr_null(q);
}
END_TEST

START_TEST(add_then_get_by_digest)
{
	struct qs_pqueue *q = new_queue(3, 10);
	struct qs_batch_info a = mk(2, 7, 100, 3, 30), b = mk(1, 7, 50, 1, 10);
	struct qs_pq_item it;

	add(q, 2, &a);
	add(q, 1, &b);
	ck_assert_uint_eq(qs_pqueue_count(q), 2);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 2), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 1), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 0), 0);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), 50);
	ck_assert_int_eq(qs_pqueue_get(q, a.digest, &it), 0);
	expect_item(&it, 2, 7);
	ck_assert(qs_test_info_eq(it.info, &a));
	ck_assert_int_eq(it.inlined, 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(duplicate_digest_is_eexists)
{
	struct qs_pqueue *q = new_queue(3, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10);

	add(q, 0, &a);
	ck_assert_int_eq(try_add(q, 0, &a), QS_EEXISTS);
	/* The digest decides, whoever claims it. */
	ck_assert_int_eq(try_add(q, 1, &a), QS_EEXISTS);
	ck_assert_uint_eq(qs_pqueue_count(q), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 1), 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(author_quota_full_is_elimit)
{
	struct qs_pqueue *q = new_queue(2, 2);
	struct qs_batch_info a1 = mk(0, 1, 100, 1, 10), a2 = mk(0, 2, 100, 1, 10);
	struct qs_batch_info a3 = mk(0, 3, 100, 1, 10), b1 = mk(1, 1, 100, 1, 10);

	add(q, 0, &a1);
	add(q, 0, &a2);
	ck_assert_int_eq(try_add(q, 0, &a3), QS_ELIMIT);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 0), 2);
	/* The quota is per author. */
	add(q, 1, &b1);
	/* A committed proof makes room. */
	ck_assert_int_eq(qs_pqueue_remove(q, a1.digest), 1);
	add(q, 0, &a3);
	ck_assert_uint_eq(qs_pqueue_count(q), 3);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(zero_quota_refuses_everything)
{
	struct qs_pqueue *q = new_queue(2, 0);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10);

	ck_assert_int_eq(try_add(q, 0, &a), QS_ELIMIT);
	ck_assert_uint_eq(qs_pqueue_count(q), 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(author_out_of_range_is_einval)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10);

	ck_assert_int_eq(try_add(q, -1, &a), -EINVAL);
	ck_assert_int_eq(try_add(q, 2, &a), -EINVAL);
	ck_assert_int_eq(qs_pqueue_add(q, 0, &a, NULL, 4), -EINVAL);
	ck_assert_uint_eq(qs_pqueue_count(q), 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(remove_by_digest)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10), b = mk(0, 2, 50, 1, 10);
	struct qs_pq_item it, out[4];

	add(q, 0, &a);
	add(q, 0, &b);
	ck_assert_int_eq(qs_pqueue_remove(q, b.digest), 1);
	ck_assert_int_eq(qs_pqueue_remove(q, b.digest), 0);
	ck_assert_int_eq(qs_pqueue_get(q, b.digest, &it), QS_ENOTFOUND);
	ck_assert_int_eq(qs_pqueue_get(q, a.digest, &it), 0);
	ck_assert_uint_eq(qs_pqueue_count(q), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 0), 1);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), 100);
	ck_assert_int_eq(pull(q, &unlimited, out, 4), 1);
	expect_item(&out[0], 0, 1);
	/* It may come back (received again). */
	add(q, 0, &b);
	ck_assert_int_eq(pull(q, &unlimited, out, 4), 2);
	expect_item(&out[0], 0, 1);
	expect_item(&out[1], 0, 2);
	qs_pqueue_free(q);
}
END_TEST

/* ---- fairness ---- */

START_TEST(round_robin_over_authors_oldest_first)
{
	struct qs_pqueue *q = new_queue(3, 10);
	static const uint64_t ids0[] = {3, 1, 2}, ids1[] = {1, 2, 3}, ids2[] = {2, 1};
	struct qs_pq_item out[16];

	for (int i = 0; i < 3; i++) {
		struct qs_batch_info a = mk(0, ids0[i], 100, 1, 10), b = mk(1, ids1[i], 100, 1, 10);

		add(q, 0, &a);
		add(q, 1, &b);
	}
	add_ids(q, 2, ids2, 2);
	ck_assert_int_eq(pull(q, &unlimited, out, 16), 8);
	expect_item(&out[0], 0, 1);
	expect_item(&out[1], 1, 1);
	expect_item(&out[2], 2, 1);
	expect_item(&out[3], 0, 2);
	expect_item(&out[4], 1, 2);
	expect_item(&out[5], 2, 2);
	expect_item(&out[6], 0, 3);
	expect_item(&out[7], 1, 3);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(out[i].inlined, 0);
	/* A pull takes nothing away. */
	ck_assert_uint_eq(qs_pqueue_count(q), 8);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(batch_ids_far_out_of_order_still_oldest_first)
{
	struct qs_pqueue *q = new_queue(1, 1000);
	struct qs_pq_item out[500];

	/* 500 ids in a scrambled order: i * 7919 mod 500 is a permutation. */
	for (uint64_t i = 0; i < 500; i++) {
		struct qs_batch_info a = mk(0, (i * 7919) % 500 + 1, 100, 1, 10);

		add(q, 0, &a);
	}
	ck_assert_int_eq(pull(q, &unlimited, out, 500), 500);
	for (int i = 0; i < 500; i++)
		REQUIRE(out[i].info->batch_id == (uint64_t)i + 1);
	qs_pqueue_free(q);
}
END_TEST

static void
add_grid(struct qs_pqueue *q, int n_authors, int per_author)
{
	for (int a = 0; a < n_authors; a++) {
		for (int b = 1; b <= per_author; b++) {
			struct qs_batch_info info = mk(a, (uint64_t)b, 100, 1, 10);

			add(q, a, &info);
		}
	}
}

/* A queue of n_authors (quota 10 each) holding add_grid()'s batches. */
static struct qs_pqueue *
grid_queue(int n_authors, int per_author)
{
	struct qs_pqueue *q = new_queue((size_t)n_authors, 10);

	add_grid(q, n_authors, per_author);
	return q;
}

START_TEST(first_author_rotates_across_pulls)
{
	struct qs_pqueue *q = grid_queue(3, 2);
	struct qs_pq_item out[6];

	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pull(q, &unlimited, out, 1), 1);
		expect_item(&out[0], i % 3, 1);
	}
	/* A whole pull keeps the turn order from its first author on. */
	ck_assert_int_eq(pull(q, &unlimited, out, 6), 6);
	expect_item(&out[0], 1, 1);
	expect_item(&out[1], 2, 1);
	expect_item(&out[2], 0, 1);
	expect_item(&out[3], 1, 2);
	expect_item(&out[4], 2, 2);
	expect_item(&out[5], 0, 2);
	ck_assert_int_eq(pull(q, &unlimited, out, 1), 1);
	expect_item(&out[0], 2, 1);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(rotation_passes_over_authors_with_nothing)
{
	struct qs_pqueue *q = new_queue(3, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10), c = mk(2, 1, 100, 1, 10);
	struct qs_pq_item out[2];

	add(q, 0, &a);
	add(q, 2, &c);
	/* Author 1 has nothing: the first place alternates between 0 and 2. */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pull(q, &unlimited, out, 1), 1);
		expect_item(&out[0], i % 2 ? 2 : 0, 1);
	}
	qs_pqueue_free(q);
}
END_TEST

/* ---- exclusion, expiry, epoch ---- */

START_TEST(excluded_digests_skipped)
{
	struct qs_pqueue *q = grid_queue(2, 3);
	struct qs_pq_item out[8];
	uint8_t exclude[4][QS_DIGEST_BYTES];
	struct qs_batch_info x;

	x = mk(0, 1, 0, 0, 0);
	memcpy(exclude[0], x.digest, QS_DIGEST_BYTES);
	x = mk(1, 2, 0, 0, 0);
	memcpy(exclude[1], x.digest, QS_DIGEST_BYTES);
	/* Not queued, and listed twice: both fine. */
	x = mk(1, 99, 0, 0, 0);
	memcpy(exclude[2], x.digest, QS_DIGEST_BYTES);
	memcpy(exclude[3], exclude[0], QS_DIGEST_BYTES);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 0, 1,
	                                (const uint8_t(*)[QS_DIGEST_BYTES])exclude, 4, NULL, NULL,
	                                out, 8),
	                 4);
	expect_item(&out[0], 0, 2);
	expect_item(&out[1], 1, 1);
	expect_item(&out[2], 0, 3);
	expect_item(&out[3], 1, 3);
	/* Exclusion lasts for one pull only. */
	ck_assert_int_eq(pull(q, &unlimited, out, 8), 6);
	ck_assert_uint_eq(qs_pqueue_count(q), 6);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(expired_skipped_by_pull)
{
	struct qs_pqueue *q = new_queue(1, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10), b = mk(0, 2, 200, 1, 10);
	struct qs_pq_item out[4];

	add(q, 0, &a);
	add(q, 0, &b);
	/* expiration_us <= now_us is expired. */
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 100, 1, NULL, 0, NULL, NULL, out, 4), 1);
	expect_item(&out[0], 0, 2);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 99, 1, NULL, 0, NULL, NULL, out, 4), 2);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 200, 1, NULL, 0, NULL, NULL, out, 4), 0);
	/* Passed over, not removed. */
	ck_assert_uint_eq(qs_pqueue_count(q), 2);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(expire_removes_due_proofs)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_batch_info a = mk(0, 1, 300, 1, 10), b = mk(1, 1, 100, 1, 10);
	struct qs_batch_info c = mk(0, 2, 200, 1, 10), d = mk(1, 2, 200, 1, 10);
	struct qs_pq_item it;

	add(q, 0, &a);
	add(q, 1, &b);
	add(q, 0, &c);
	add(q, 1, &d);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), 100);
	ck_assert_uint_eq(qs_pqueue_expire(q, 99), 0);
	ck_assert_uint_eq(qs_pqueue_expire(q, 100), 1);
	ck_assert_int_eq(qs_pqueue_get(q, b.digest, &it), QS_ENOTFOUND);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), 200);
	ck_assert_uint_eq(qs_pqueue_expire(q, 250), 2);
	ck_assert_uint_eq(qs_pqueue_count(q), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 0), 1);
	ck_assert_uint_eq(qs_pqueue_author_count(q, 1), 0);
	ck_assert_int_eq(qs_pqueue_get(q, a.digest, &it), 0);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), 300);
	ck_assert_uint_eq(qs_pqueue_expire(q, UINT64_MAX), 1);
	ck_assert_uint_eq(qs_pqueue_next_expiration(q), UINT64_MAX);
	ck_assert_uint_eq(qs_pqueue_count(q), 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(other_epoch_skipped)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_batch_info a = mk(0, 1, 100, 1, 10), b = mk(0, 2, 100, 1, 10);
	struct qs_batch_info c = mk(1, 1, 100, 1, 10);
	struct qs_pq_item out[4];

	b.epoch = 2;
	c.epoch = 2;
	add(q, 0, &a);
	add(q, 0, &b);
	add(q, 1, &c);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 0, 2, NULL, 0, NULL, NULL, out, 4), 2);
	ck_assert_uint_eq(out[0].info->epoch, 2);
	ck_assert_uint_eq(out[1].info->epoch, 2);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 0, 1, NULL, 0, NULL, NULL, out, 4), 1);
	expect_item(&out[0], 0, 1);
	ck_assert_int_eq(qs_pqueue_pull(q, &unlimited, 0, 3, NULL, 0, NULL, NULL, out, 4), 0);
	qs_pqueue_free(q);
}
END_TEST

/* ---- limits ---- */

static uint64_t
sum_txns(const struct qs_pq_item *out, ssize_t n, int inlined_only)
{
	uint64_t s = 0;

	for (ssize_t i = 0; i < n; i++) {
		if (!inlined_only || out[i].inlined)
			s += out[i].info->num_txns;
	}
	return s;
}

static uint64_t
sum_bytes(const struct qs_pq_item *out, ssize_t n, int inlined_only)
{
	uint64_t s = 0;

	for (ssize_t i = 0; i < n; i++) {
		if (!inlined_only || out[i].inlined)
			s += out[i].info->num_bytes;
	}
	return s;
}

/* Batches 1..n of authors 0 and 1, added in turn: txns0 and txns1
 * transactions, 10 bytes each. */
static void
add_pairs(struct qs_pqueue *q, int n, uint32_t txns0, uint32_t txns1)
{
	for (int b = 1; b <= n; b++) {
		struct qs_batch_info x = mk(0, (uint64_t)b, 100, txns0, 10),
				     y = mk(1, (uint64_t)b, 100, txns1, 10);

		add(q, 0, &x);
		add(q, 1, &y);
	}
}

/* The first n_inlined of out[0..n) are inlined, the others not. */
static void
expect_inlined(const struct qs_pq_item *out, ssize_t n, ssize_t n_inlined)
{
	for (ssize_t i = 0; i < n; i++)
		ck_assert_int_eq(out[i].inlined, i < n_inlined);
}

static int
inline_all(void *arg, const struct qs_batch_info *info)
{
	(*(int *)arg)++;
	return 1;
}

START_TEST(max_txns_never_exceeded)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_pq_limits lim = {7, BIG, 0, 0, 1};
	struct qs_pq_item out[8];
	ssize_t n;

	add_pairs(q, 3, 2, 2);
	n = pull(q, &lim, out, 8);
	ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(sum_txns(out, n, 0), 6);
	expect_item(&out[0], 0, 1);
	expect_item(&out[1], 1, 1);
	expect_item(&out[2], 0, 2);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(max_bytes_never_exceeded)
{
	struct qs_pqueue *q = grid_queue(2, 3);
	struct qs_pq_limits lim = {BIG, 35, 0, 0, 1};
	struct qs_pq_item out[8];
	ssize_t n;

	n = pull(q, &lim, out, 8);
	ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(sum_bytes(out, n, 0), 30);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(author_whose_candidate_does_not_fit_is_done_others_go_on)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_pq_limits lim = {BIG, 150, 0, 0, 0};
	struct qs_pq_item out[16];
	ssize_t n;

	for (int b = 1; b <= 3; b++) {
		struct qs_batch_info x = mk(0, (uint64_t)b, 100, 1, 100);

		add(q, 0, &x);
	}
	for (int b = 1; b <= 8; b++) {
		struct qs_batch_info y = mk(1, (uint64_t)b, 100, 1, 10);

		add(q, 1, &y);
	}
	/* 100 + 10, then author 0's next 100 does not fit: author 1 fills up to
	 * exactly 150, and the result is full. */
	n = pull(q, &lim, out, 16);
	ck_assert_int_eq(n, 6);
	expect_item(&out[0], 0, 1);
	for (int i = 1; i < 6; i++)
		expect_item(&out[i], 1, (uint64_t)i);
	ck_assert_uint_eq(sum_bytes(out, n, 0), 150);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(max_inline_txns_never_exceeded)
{
	struct qs_pqueue *q = new_queue(2, 10);
	struct qs_pq_limits lim = {BIG, BIG, 3, BIG, 1};
	struct qs_pq_item out[8];
	int calls = 0;
	ssize_t n;

	add_pairs(q, 2, 2, 1);
	/* 0/1 (2 txns) inlined, 1/1 (1) inlined: 3 reached; nothing more. */
	n = qs_pqueue_pull(q, &lim, 0, 1, NULL, 0, inline_all, &calls, out, 8);
	ck_assert_int_eq(n, 4);
	expect_inlined(out, n, 2);
	ck_assert_uint_eq(sum_txns(out, n, 1), 3);
	/* Not asked about what would not fit anyway. */
	ck_assert_int_eq(calls, 2);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(max_inline_bytes_never_exceeded)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits lim = {BIG, BIG, BIG, 25, 1};
	struct qs_pq_item out[8];
	int calls = 0;
	ssize_t n;

	n = qs_pqueue_pull(q, &lim, 0, 1, NULL, 0, inline_all, &calls, out, 8);
	ck_assert_int_eq(n, 4);
	expect_inlined(out, n, 2);
	ck_assert_uint_eq(sum_bytes(out, n, 1), 20);
	qs_pqueue_free(q);
}
END_TEST

/* Inline only even batch ids. */
static int
inline_even(void *arg, const struct qs_batch_info *info)
{
	return info->batch_id % 2 == 0;
}

START_TEST(inline_only_when_inline_fn_says_so)
{
	struct qs_pqueue *q = grid_queue(1, 4);
	struct qs_pq_limits lim = {BIG, BIG, BIG, BIG, 1};
	struct qs_pq_item out[8];

	ck_assert_int_eq(qs_pqueue_pull(q, &lim, 0, 1, NULL, 0, inline_even, NULL, out, 8), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(out[i].inlined, out[i].info->batch_id % 2 == 0);
	/* Without an inline_fn nothing is inlined. */
	ck_assert_int_eq(qs_pqueue_pull(q, &lim, 0, 1, NULL, 0, NULL, NULL, out, 8), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(out[i].inlined, 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(inlined_picks_count_toward_max_bytes)
{
	struct qs_pqueue *q = grid_queue(1, 5);
	struct qs_pq_limits lim = {BIG, 30, BIG, BIG, 1};
	struct qs_pq_item out[8];
	int calls = 0;
	ssize_t n;

	n = qs_pqueue_pull(q, &lim, 0, 1, NULL, 0, inline_all, &calls, out, 8);
	ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(sum_bytes(out, n, 0), 30);
	ck_assert_uint_eq(sum_bytes(out, n, 1), 30);
	qs_pqueue_free(q);
}
END_TEST

/* ---- fullness ---- */

START_TEST(not_full_returns_nothing_unless_return_non_full)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits lim = {100, 1000, 0, 0, 0};
	struct qs_pq_item out[8];

	ck_assert_int_eq(pull(q, &lim, out, 8), 0);
	lim.return_non_full = 1;
	ck_assert_int_eq(pull(q, &lim, out, 8), 4);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(full_by_exact_limit_returned)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits by_txns = {4, 1000, 0, 0, 0}, by_bytes = {100, 40, 0, 0, 0};
	struct qs_pq_item out[8];

	ck_assert_int_eq(pull(q, &by_txns, out, 8), 4);
	ck_assert_int_eq(pull(q, &by_bytes, out, 8), 4);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(full_by_candidate_not_fitting_returned)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits lim = {100, 35, 0, 0, 0};
	struct qs_pq_item out[8];

	ck_assert_int_eq(pull(q, &lim, out, 8), 3);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(full_by_out_cap_returned)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits lim = {100, 1000, 0, 0, 0};
	struct qs_pq_item out[8];

	ck_assert_int_eq(pull(q, &lim, out, 3), 3);
	ck_assert_int_eq(pull(q, &lim, out, 0), 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(zero_limits_pick_nothing)
{
	struct qs_pqueue *q = grid_queue(2, 2);
	struct qs_pq_limits lim = {0, BIG, 0, 0, 1};
	struct qs_pq_item out[8];

	ck_assert_int_eq(pull(q, &lim, out, 8), 0);
	lim.max_txns = BIG;
	lim.max_bytes = 0;
	ck_assert_int_eq(pull(q, &lim, out, 8), 0);
	qs_pqueue_free(q);
}
END_TEST

/* ---- listing ---- */

/* Authors 0 and 2 with 5 and 4 proofs added out of order; author 1 none. */
static struct qs_pqueue *
listing_queue(void)
{
	struct qs_pqueue *q = new_queue(3, 10);
	static const uint64_t ids0[] = {40, 10, 50, 30, 20}, ids2[] = {3, 4, 1, 2};

	add_ids(q, 0, ids0, 5);
	add_ids(q, 2, ids2, 4);
	return q;
}

START_TEST(list_pages_in_author_batch_id_order)
{
	static const int want_author[] = {0, 0, 0, 0, 0, 2, 2, 2, 2};
	static const uint64_t want_id[] = {10, 20, 30, 40, 50, 1, 2, 3, 4};
	struct qs_pqueue *q = listing_queue();
	struct qs_pq_item page[2];
	uint64_t cursor = 0;
	size_t got = 0, n, pages = 0;

	do {
		n = qs_pqueue_list(q, -1, &cursor, page, 2);
		ck_assert_uint_le(n, 2);
		for (size_t i = 0; i < n; i++, got++) {
			ck_assert_uint_lt(got, 9);
			expect_item(&page[i], want_author[got], want_id[got]);
		}
		pages++;
	} while (cursor != 0);
	ck_assert_uint_eq(got, 9);
	ck_assert_uint_eq(pages, 5);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(list_cursor_is_zero_right_after_the_last_item)
{
	struct qs_pqueue *q = listing_queue();
	struct qs_pq_item page[9];
	uint64_t cursor = 0;

	ck_assert_uint_eq(qs_pqueue_list(q, -1, &cursor, page, 5), 5);
	/* Author 0 is done but author 2 follows. */
	ck_assert_uint_ne(cursor, 0);
	ck_assert_uint_eq(qs_pqueue_list(q, -1, &cursor, page, 4), 4);
	expect_item(&page[3], 2, 4);
	ck_assert_uint_eq(cursor, 0);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(list_author_filter)
{
	struct qs_pqueue *q = listing_queue();
	struct qs_pq_item page[3];
	uint64_t cursor = 0;

	ck_assert_uint_eq(qs_pqueue_list(q, 2, &cursor, page, 3), 3);
	expect_item(&page[0], 2, 1);
	expect_item(&page[2], 2, 3);
	ck_assert_uint_ne(cursor, 0);
	ck_assert_uint_eq(qs_pqueue_list(q, 2, &cursor, page, 3), 1);
	expect_item(&page[0], 2, 4);
	ck_assert_uint_eq(cursor, 0);
	/* An author with nothing, and authors out of range. */
	ck_assert_uint_eq(qs_pqueue_list(q, 1, &cursor, page, 3), 0);
	ck_assert_uint_eq(cursor, 0);
	ck_assert_uint_eq(qs_pqueue_list(q, 3, &cursor, page, 3), 0);
	ck_assert_uint_eq(cursor, 0);
	ck_assert_uint_eq(qs_pqueue_list(q, -2, &cursor, page, 3), 0);
	ck_assert_uint_eq(cursor, 0);
	/* Author 0 stops at its own end. */
	ck_assert_uint_eq(qs_pqueue_list(q, 0, &cursor, page, 3), 3);
	ck_assert_uint_eq(qs_pqueue_list(q, 0, &cursor, page, 3), 2);
	expect_item(&page[1], 0, 50);
	ck_assert_uint_eq(cursor, 0);
	qs_pqueue_free(q);
}
END_TEST

/* ---- scale and a reference model ---- */

/* A model of the queue: every proof ever added, and whether it is queued. */
struct model {
	size_t n_authors;
	size_t n;
	struct qs_batch_info *info;
	int *author;
	int *queued;
	int *excluded;
	size_t lead;
};

static int
model_before(const struct model *m, size_t x, size_t y)
{
	if (m->author[x] != m->author[y])
		return m->author[x] < m->author[y];
	if (m->info[x].batch_id != m->info[y].batch_id)
		return m->info[x].batch_id < m->info[y].batch_id;
	return memcmp(m->info[x].digest, m->info[y].digest, QS_DIGEST_BYTES) < 0;
}

static const struct model *sort_model;

static int
model_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (model_before(sort_model, x, y))
		return -1;
	return model_before(sort_model, y, x) ? 1 : 0;
}

/* The queued proofs in (author, batch_id, digest) order into order[];
 * start[a] .. start[a + 1] are author a's. Returns how many. */
static size_t
model_sorted(const struct model *m, size_t *order, size_t *start)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (m->queued[i])
			order[k++] = i;
	}
	sort_model = m;
	qsort(order, k, sizeof(*order), model_cmp);
	for (size_t a = 0, i = 0; a <= m->n_authors; a++) {
		while (i < k && (size_t)m->author[order[i]] < a)
			i++;
		start[a] = i;
	}
	return k;
}

/* The model's inline answer. */
static int
inline_by_id(void *arg, const struct qs_batch_info *info)
{
	return info->batch_id % 3 != 0;
}

/* GetPayload's selection as specified, written the plain way: expected[]
 * gets the picks as model indexes and inlined flags; returns how many the
 * pull returns. */
static size_t
model_pull(struct model *m, const struct qs_pq_limits *lim, uint64_t now_us, uint64_t epoch,
           size_t cap, size_t *expected, int *inlined)
{
	size_t *order = malloc((m->n + 1) * sizeof(*order));
	size_t *start = malloc((m->n_authors + 1) * sizeof(*start));
	size_t *pos = calloc(m->n_authors, sizeof(*pos));
	int *done = calloc(m->n_authors, sizeof(*done));
	uint64_t txns = 0, bytes = 0, itxns = 0, ibytes = 0;
	size_t n = 0, first = 0;
	int full = 0, progress = 1;

	ck_assert(order && start && pos && done);
	model_sorted(m, order, start);
	while (progress && n < cap) {
		progress = 0;
		for (size_t k = 0; k < m->n_authors && n < cap; k++) {
			size_t a = (m->lead + k) % m->n_authors, i;

			if (done[a])
				continue;
			for (;;) {
				if (start[a] + pos[a] >= start[a + 1]) {
					done[a] = 1;
					break;
				}
				i = order[start[a] + pos[a]];
				if (!m->excluded[i] && m->info[i].expiration_us > now_us &&
				    m->info[i].epoch == epoch)
					break;
				pos[a]++;
			}
			if (done[a])
				continue;
			i = order[start[a] + pos[a]];
			if (txns + m->info[i].num_txns > lim->max_txns ||
			    bytes + m->info[i].num_bytes > lim->max_bytes) {
				full = 1;
				done[a] = 1;
				continue;
			}
			txns += m->info[i].num_txns;
			bytes += m->info[i].num_bytes;
			inlined[n] = itxns + m->info[i].num_txns <= lim->max_inline_txns &&
			             ibytes + m->info[i].num_bytes <= lim->max_inline_bytes &&
			             inline_by_id(NULL, &m->info[i]);
			if (inlined[n]) {
				itxns += m->info[i].num_txns;
				ibytes += m->info[i].num_bytes;
			}
			if (n == 0)
				first = a;
			expected[n++] = i;
			pos[a]++;
			progress = 1;
		}
	}
	if (n == cap || txns == lim->max_txns || bytes == lim->max_bytes)
		full = 1;
	if (!full && !lim->return_non_full)
		n = 0;
	if (n)
		m->lead = (first + 1) % m->n_authors;
	free(order);
	free(start);
	free(pos);
	free(done);
	return n;
}

static void
model_init(struct model *m, size_t n_authors, size_t n)
{
	m->n_authors = n_authors;
	m->n = 0;
	m->lead = 0;
	m->info = calloc(n, sizeof(*m->info));
	m->author = calloc(n, sizeof(*m->author));
	m->queued = calloc(n, sizeof(*m->queued));
	m->excluded = calloc(n, sizeof(*m->excluded));
	ck_assert(m->info && m->author && m->queued && m->excluded);
}

/* The model index of the queued proof of `digest`, or m->n. */
static size_t
model_queued(const struct model *m, const uint8_t *digest)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (m->queued[i] && memcmp(m->info[i].digest, digest, QS_DIGEST_BYTES) == 0)
			break;
	}
	return i;
}

/* Forget the proofs that are no longer queued. */
static void
model_compact(struct model *m)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (!m->queued[i])
			continue;
		m->info[k] = m->info[i];
		m->author[k] = m->author[i];
		m->queued[k] = 1;
		k++;
	}
	m->n = k;
}

static void
model_free(struct model *m)
{
	free(m->info);
	free(m->author);
	free(m->queued);
	free(m->excluded);
}

/* Pull from the queue and the model and compare. */
static size_t
check_pull(struct qs_pqueue *q, struct model *m, const struct qs_pq_limits *lim, uint64_t now_us,
           uint64_t epoch, size_t cap)
{
	uint8_t(*exclude)[QS_DIGEST_BYTES] = malloc((m->n + 1) * QS_DIGEST_BYTES);
	struct qs_pq_item *out = malloc((cap + 1) * sizeof(*out));
	size_t *expected = malloc((cap + 1) * sizeof(*expected));
	int *inlined = malloc((cap + 1) * sizeof(*inlined));
	size_t n_exclude = 0, want;
	ssize_t n;

	ck_assert(exclude && out && expected && inlined);
	for (size_t i = 0; i < m->n; i++) {
		if (m->excluded[i])
			memcpy(exclude[n_exclude++], m->info[i].digest, QS_DIGEST_BYTES);
	}
	want = model_pull(m, lim, now_us, epoch, cap, expected, inlined);
	n = qs_pqueue_pull(q, lim, now_us, epoch, (const uint8_t(*)[QS_DIGEST_BYTES])exclude,
	                   n_exclude, inline_by_id, NULL, out, cap);
	ck_assert_int_eq(n, (ssize_t)want);
	for (size_t i = 0; i < want; i++) {
		size_t e = expected[i];

		REQUIRE(out[i].author == m->author[e]);
		REQUIRE(qs_test_info_eq(out[i].info, &m->info[e]));
		REQUIRE(out[i].inlined == inlined[i]);
		REQUIRE(out[i].proof_len == 16);
		REQUIRE(memcmp(out[i].proof, m->info[e].digest, 16) == 0);
	}
	free(exclude);
	free(out);
	free(expected);
	free(inlined);
	return want;
}

/* The whole listing equals the model's order. */
static void
check_list(const struct qs_pqueue *q, const struct model *m, size_t page_size)
{
	size_t *order = malloc((m->n + 1) * sizeof(*order));
	size_t *start = malloc((m->n_authors + 1) * sizeof(*start));
	struct qs_pq_item *page = malloc(page_size * sizeof(*page));
	size_t k, got = 0, n;
	uint64_t cursor = 0;

	ck_assert(order && start && page);
	k = model_sorted(m, order, start);
	do {
		n = qs_pqueue_list(q, -1, &cursor, page, page_size);
		REQUIRE(n <= page_size);
		for (size_t i = 0; i < n; i++, got++) {
			REQUIRE(got < k);
			REQUIRE(qs_test_info_eq(page[i].info, &m->info[order[got]]));
			REQUIRE(page[i].author == m->author[order[got]]);
		}
	} while (cursor != 0);
	ck_assert_uint_eq(got, k);
	free(order);
	free(start);
	free(page);
}

START_TEST(pull_from_10000_proofs_of_20_authors_with_5000_excluded)
{
	enum {
		AUTHORS = 20,
		PER = 500,
		N = AUTHORS * PER
	};
	struct qs_pqueue *q = new_queue(AUTHORS, PER);
	size_t *perm = malloc(N * sizeof(*perm));
	struct model m;
	uint64_t s = 7;

	ck_assert_ptr_nonnull(perm);
	model_init(&m, AUTHORS, N);
	/* Each author's batch ids in a scrambled order, sizes varied. */
	for (size_t i = 0; i < N; i++) {
		int a = (int)(i % AUTHORS);
		uint64_t id = ((i / AUTHORS) * 7919) % PER + 1;
		uint64_t r = qs_test_splitmix(&s);

		m.info[i] = mk(a, id, 1000 + r % 1000, 1 + (uint32_t)(r >> 32) % 50,
		               100 + (r >> 40) % 5000);
		m.author[i] = a;
		m.queued[i] = 1;
		add(q, a, &m.info[i]);
		perm[i] = i;
	}
	m.n = N;
	ck_assert_uint_eq(qs_pqueue_count(q), N);
	for (size_t i = N - 1; i > 0; i--) {
		size_t j = qs_test_splitmix(&s) % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < N / 2; i++)
		m.excluded[perm[i]] = 1;
	/* Everything that is not excluded, in round robin order. */
	check_pull(q, &m, &(struct qs_pq_limits){BIG, BIG, 0, 0, 1}, 0, 1, N);
	/* Limits that bite, an inline budget, some expired. */
	check_pull(q, &m, &(struct qs_pq_limits){20000, 2000000, 3000, 300000, 0}, 1500, 1, N);
	check_pull(q, &m, &(struct qs_pq_limits){BIG, 500000, 100, BIG, 0}, 1200, 1, 300);
	ck_assert_uint_eq(qs_pqueue_count(q), N);
	check_list(q, &m, 777);
	model_free(&m);
	free(perm);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(randomized_against_reference_model)
{
	enum {
		AUTHORS = 5,
		QUOTA = 120,
		N = 3000,
		STEPS = 20000
	};
	struct qs_pqueue *q = new_queue(AUTHORS, QUOTA);
	struct model m;
	uint64_t s = 99, now = 0;
	size_t per_author[AUTHORS] = {0}, queued = 0, picked = 0, outcomes[3] = {0};

	model_init(&m, AUTHORS, N);
	for (int step = 0; step < STEPS; step++) {
		uint64_t r = qs_test_splitmix(&s);
		unsigned pick = (unsigned)(r % 100);

		if (m.n == N)
			model_compact(&m);
		if (pick < 55) {
			int a = (int)((r >> 8) % AUTHORS);
			/* Mostly increasing ids with stragglers, some reused. */
			uint64_t id = (r >> 16) % 8 ? (uint64_t)step / 4 + (r >> 24) % 16
			                            : (r >> 24) % ((uint64_t)step / 4 + 1);
			struct qs_batch_info info =
			    mk(a, id, now + 1 + (r >> 32) % 4000, 1 + (uint32_t)(r >> 40) % 10,
			       1 + (r >> 48) % 100);
			int rc, want;

			info.epoch = (r >> 56) % 10 ? 1 : 2;
			/* Now and then a second digest for the same batch id. */
			if ((r >> 60) % 4 == 0)
				fill_digest(info.digest, ((uint64_t)a << 40 | id) ^ UINT64_C(1)
				                                                        << 39);
			want = 0;
			if (model_queued(&m, info.digest) < m.n)
				want = QS_EEXISTS;
			else if (per_author[a] >= QUOTA)
				want = QS_ELIMIT;
			rc = try_add(q, a, &info);
			REQUIRE(rc == want);
			outcomes[rc == 0 ? 0 : rc == QS_EEXISTS ? 1 : 2]++;
			if (rc == 0) {
				m.info[m.n] = info;
				m.author[m.n] = a;
				m.queued[m.n] = 1;
				m.n++;
				per_author[a]++;
				queued++;
			}
		} else if (pick < 75 && m.n) {
			/* A digest may be in the model twice, queued once at most. */
			size_t i = model_queued(&m, m.info[(r >> 8) % m.n].digest);

			REQUIRE(qs_pqueue_remove(q, m.info[(r >> 8) % m.n].digest) == (i < m.n));
			if (i < m.n) {
				m.queued[i] = 0;
				per_author[m.author[i]]--;
				queued--;
			}
		} else if (pick < 80) {
			size_t n = 0;

			now += (r >> 8) % 50;
			for (size_t i = 0; i < m.n; i++) {
				if (m.queued[i] && m.info[i].expiration_us <= now) {
					m.queued[i] = 0;
					per_author[m.author[i]]--;
					queued--;
					n++;
				}
			}
			REQUIRE(qs_pqueue_expire(q, now) == n);
		} else if (pick < 97) {
			struct qs_pq_limits lim = {1 + (r >> 8) % 200, 1 + (r >> 16) % 3000,
			                           (r >> 24) % 60, (r >> 32) % 800,
			                           (int)((r >> 40) & 1)};

			for (size_t i = 0; i < m.n; i++)
				m.excluded[i] = m.queued[i] && qs_test_splitmix(&s) % 4 == 0;
			picked +=
			    check_pull(q, &m, &lim, now + (r >> 48) % 100, 1, 1 + (r >> 56) % 64);
		} else {
			check_list(q, &m, 1 + (r >> 8) % 50);
		}
		REQUIRE(qs_pqueue_count(q) == queued);
		for (int a = 0; a < AUTHORS; a++)
			REQUIRE(qs_pqueue_author_count(q, a) == per_author[a]);
	}
	/* Every outcome was exercised. */
	ck_assert_uint_gt(outcomes[0], 1000);
	ck_assert_uint_gt(outcomes[1], 100);
	ck_assert_uint_gt(outcomes[2], 100);
	ck_assert_uint_gt(picked, 10000);
	model_free(&m);
	qs_pqueue_free(q);
}
END_TEST

START_TEST(free_of_a_full_queue_releases_every_proof)
{
	enum {
		AUTHORS = 20,
		PER = 500
	};
	struct qs_pqueue *q = new_queue(AUTHORS, PER);
	struct qs_batch_info extra = mk(0, PER + 1, 100, 1, 10);

	add_grid(q, AUTHORS, PER);
	ck_assert_uint_eq(qs_pqueue_count(q), AUTHORS * PER);
	ck_assert_int_eq(try_add(q, 0, &extra), QS_ELIMIT);
	/* A few gone, so that free ids are on the free list too. */
	for (int b = 1; b <= 10; b++) {
		struct qs_batch_info x = mk(3, (uint64_t)b, 100, 1, 10);

		ck_assert_int_eq(qs_pqueue_remove(q, x.digest), 1);
	}
	/* The sanitizer's leak check fails the test if a proof is not freed. */
	qs_pqueue_free(q);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pqueue");
	TCase *tc = tcase_create("pqueue");
	TCase *ts = tcase_create("scale");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_queue_is_empty);
	tcase_add_test(tc, new_rejects_zero_authors);
	tcase_add_test(tc, add_then_get_by_digest);
	tcase_add_test(tc, duplicate_digest_is_eexists);
	tcase_add_test(tc, author_quota_full_is_elimit);
	tcase_add_test(tc, zero_quota_refuses_everything);
	tcase_add_test(tc, author_out_of_range_is_einval);
	tcase_add_test(tc, remove_by_digest);
	tcase_add_test(tc, round_robin_over_authors_oldest_first);
	tcase_add_test(tc, batch_ids_far_out_of_order_still_oldest_first);
	tcase_add_test(tc, first_author_rotates_across_pulls);
	tcase_add_test(tc, rotation_passes_over_authors_with_nothing);
	tcase_add_test(tc, excluded_digests_skipped);
	tcase_add_test(tc, expired_skipped_by_pull);
	tcase_add_test(tc, expire_removes_due_proofs);
	tcase_add_test(tc, other_epoch_skipped);
	tcase_add_test(tc, max_txns_never_exceeded);
	tcase_add_test(tc, max_bytes_never_exceeded);
	tcase_add_test(tc, author_whose_candidate_does_not_fit_is_done_others_go_on);
	tcase_add_test(tc, max_inline_txns_never_exceeded);
	tcase_add_test(tc, max_inline_bytes_never_exceeded);
	tcase_add_test(tc, inline_only_when_inline_fn_says_so);
	tcase_add_test(tc, inlined_picks_count_toward_max_bytes);
	tcase_add_test(tc, not_full_returns_nothing_unless_return_non_full);
	tcase_add_test(tc, full_by_exact_limit_returned);
	tcase_add_test(tc, full_by_candidate_not_fitting_returned);
	tcase_add_test(tc, full_by_out_cap_returned);
	tcase_add_test(tc, zero_limits_pick_nothing);
	tcase_add_test(tc, list_pages_in_author_batch_id_order);
	tcase_add_test(tc, list_cursor_is_zero_right_after_the_last_item);
	tcase_add_test(tc, list_author_filter);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ts, 300);
	tcase_add_test(ts, pull_from_10000_proofs_of_20_authors_with_5000_excluded);
	tcase_add_test(ts, randomized_against_reference_model);
	tcase_add_test(ts, free_of_a_full_queue_releases_every_proof);
	suite_add_tcase(s, ts);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
