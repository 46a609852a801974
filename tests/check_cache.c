/* core/cache: the payload cache, its budget, recency order and expiry. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/error.h"
#include "tests/lib/fixtures.h"

#define SEED UINT64_C(0x5eed5eed12345678)

/* The digest of batch `id`. */
static void
fill_digest(uint8_t *d, uint64_t id)
{
	for (int i = 0; i < QS_DIGEST_BYTES; i += 8) {
		uint64_t s = id * 64 + (uint64_t)i, x = qs_test_splitmix(&s);

		memcpy(d + i, &x, 8);
	}
}

/* A payload on the heap, as a decoded message would hold it. */
struct payload {
	struct qs_batch_info info;
	ProtobufCBinaryData *txns;
	size_t n_txns;
};

/* Batch `id` with transactions of the given lengths, their bytes derived
 * from id and position. */
static struct payload
mk(uint64_t id, uint64_t exp_us, const size_t *lens, size_t n)
{
	struct payload p;

	memset(&p, 0, sizeof(p));
	p.info = qs_test_info(id, exp_us);
	fill_digest(p.info.digest, id);
	p.n_txns = n;
	p.txns = calloc(n + 1, sizeof(*p.txns));
	ck_assert_ptr_nonnull(p.txns);
	for (size_t i = 0; i < n; i++) {
		p.txns[i].len = lens[i];
		p.txns[i].data = lens[i] ? malloc(lens[i]) : NULL;
		for (size_t j = 0; j < lens[i]; j++)
			p.txns[i].data[j] = (uint8_t)(id * 31 + i * 7 + j);
		p.info.num_bytes += lens[i];
	}
	p.info.num_txns = (uint32_t)n;
	return p;
}

/* A batch of one transaction of `bytes` bytes. */
static struct payload
mk1(uint64_t id, uint64_t exp_us, size_t bytes)
{
	return mk(id, exp_us, &bytes, 1);
}

static void
payload_free(struct payload *p)
{
	for (size_t i = 0; i < p->n_txns; i++)
		free(p->txns[i].data);
	free(p->txns);
	p->txns = NULL;
}

static struct qs_cache *
new_cache(uint64_t budget)
{
	struct qs_cache *c = NULL;

	ck_assert_int_eq(qs_cache_new(budget, SEED, &c), 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

static int
put(struct qs_cache *c, const struct payload *p)
{
	return qs_cache_put(c, &p->info, p->txns, p->n_txns);
}

static uint64_t
charge(const struct payload *p)
{
	return qs_cache_charge(&p->info, p->n_txns);
}

/* The cached copy of batch `id` is exactly what mk() makes. */
static void
expect_cached(struct qs_cache *c, uint64_t id, uint64_t exp_us, const size_t *lens, size_t n)
{
	struct payload want = mk(id, exp_us, lens, n);
	struct qs_cached got;

	ck_assert_int_eq(qs_cache_get(c, want.info.digest, &got), 0);
	ck_assert(qs_test_info_eq(got.info, &want.info));
	ck_assert_uint_eq(got.n_txns, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(got.txns[i].len, lens[i]);
		ck_assert_ptr_nonnull(got.txns[i].data);
		if (lens[i])
			ck_assert_mem_eq(got.txns[i].data, want.txns[i].data, lens[i]);
	}
	payload_free(&want);
}

static int
cached(const struct qs_cache *c, uint64_t id)
{
	uint8_t digest[QS_DIGEST_BYTES];

	fill_digest(digest, id);
	return qs_cache_contains(c, digest);
}

START_TEST(new_cache_is_empty)
{
	struct qs_cache *c = new_cache(1000);
	struct payload a = mk1(1, 100, 10);
	struct qs_cached got;

	ck_assert_uint_eq(qs_cache_count(c), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	ck_assert_uint_eq(qs_cache_evictions(c), 0);
	ck_assert_int_eq(qs_cache_get(c, a.info.digest, &got), QS_ENOTFOUND);
	ck_assert_int_eq(qs_cache_contains(c, a.info.digest), 0);
	ck_assert_uint_eq(qs_cache_expire(c, UINT64_MAX), 0);
	qs_cache_remove(c, a.info.digest);
	payload_free(&a);
	qs_cache_free(c);
	qs_cache_free(NULL);
}
END_TEST

START_TEST(charge_is_bytes_slices_and_overhead)
{
	static const size_t lens[] = {10, 0, 30};
	struct payload a = mk(1, 100, lens, 3);
	struct qs_batch_info huge = a.info;

	ck_assert_uint_eq(charge(&a),
	                  40 + 3 * sizeof(ProtobufCBinaryData) + QS_CACHE_ENTRY_OVERHEAD);
	huge.num_bytes = UINT64_MAX - QS_CACHE_ENTRY_OVERHEAD;
	ck_assert_uint_eq(qs_cache_charge(&huge, 1), UINT64_MAX);
	ck_assert_uint_eq(qs_cache_charge(&a.info, SIZE_MAX), UINT64_MAX);
	payload_free(&a);
}
END_TEST

START_TEST(put_keeps_a_copy_after_caller_frees)
{
	static const size_t lens[] = {5, 17, 1};
	struct qs_cache *c = new_cache(100000);
	struct payload a = mk(1, 100, lens, 3);
	uint64_t want = charge(&a);
	struct qs_cached got;

	ck_assert_int_eq(put(c, &a), 0);
	/* Scribble over and free the caller's buffers. */
	for (size_t i = 0; i < a.n_txns; i++)
		memset(a.txns[i].data, 0xee, a.txns[i].len);
	ck_assert_int_eq(qs_cache_get(c, a.info.digest, &got), 0);
	for (size_t i = 0; i < a.n_txns; i++)
		ck_assert_ptr_ne(got.txns[i].data, a.txns[i].data);
	ck_assert_ptr_ne(got.txns, a.txns);
	payload_free(&a);
	expect_cached(c, 1, 100, lens, 3);
	ck_assert_uint_eq(qs_cache_count(c), 1);
	ck_assert_uint_eq(qs_cache_bytes(c), want);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	qs_cache_free(c);
}
END_TEST

START_TEST(zero_length_transactions_kept)
{
	static const size_t lens[] = {0, 5, 0}, none[] = {0, 0};
	struct qs_cache *c = new_cache(100000);
	struct payload a = mk(1, 100, lens, 3), b = mk(2, 100, none, 2), e = mk(3, 100, NULL, 0);

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(put(c, &b), 0);
	ck_assert_int_eq(put(c, &e), 0);
	payload_free(&a);
	payload_free(&b);
	payload_free(&e);
	expect_cached(c, 1, 100, lens, 3);
	expect_cached(c, 2, 100, none, 2);
	expect_cached(c, 3, 100, NULL, 0);
	ck_assert_uint_eq(qs_cache_count(c), 3);
	qs_cache_free(c);
}
END_TEST

START_TEST(payload_inconsistent_with_info_is_einval)
{
	static const size_t lens[] = {5, 6};
	struct qs_cache *c = new_cache(100000);
	struct payload a = mk(1, 100, lens, 2);
	struct qs_batch_info info = a.info;
	uint8_t *data;

	info.num_txns = 3;
	ck_assert_int_eq(qs_cache_put(c, &info, a.txns, a.n_txns), -EINVAL);
	info = a.info;
	info.num_bytes = 10;
	ck_assert_int_eq(qs_cache_put(c, &info, a.txns, a.n_txns), -EINVAL);
	info.num_bytes = 12;
	ck_assert_int_eq(qs_cache_put(c, &info, a.txns, a.n_txns), -EINVAL);
	data = a.txns[1].data;
	a.txns[1].data = NULL;
	ck_assert_int_eq(put(c, &a), -EINVAL);
	a.txns[1].data = data;
	ck_assert_uint_eq(qs_cache_count(c), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	ck_assert_int_eq(put(c, &a), 0);
	payload_free(&a);
	qs_cache_free(c);
}
END_TEST

START_TEST(least_recently_used_evicted_first)
{
	struct payload p[5];
	struct qs_cache *c;
	struct qs_cached got;

	for (int i = 0; i < 5; i++)
		p[i] = mk1((uint64_t)i + 1, 100, 100);
	/* Room for exactly three. */
	c = new_cache(3 * charge(&p[0]));
	ck_assert_int_eq(put(c, &p[0]), 0);
	ck_assert_int_eq(put(c, &p[1]), 0);
	ck_assert_int_eq(put(c, &p[2]), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), 3 * charge(&p[0]));
	/* 1 was used: 2 is now the least recently used. */
	ck_assert_int_eq(qs_cache_get(c, p[0].info.digest, &got), 0);
	ck_assert_int_eq(put(c, &p[3]), 0);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	ck_assert_int_eq(cached(c, 3), 1);
	ck_assert_int_eq(cached(c, 4), 1);
	ck_assert_uint_eq(qs_cache_evictions(c), 1);
	/* Then 3, then 1. */
	ck_assert_int_eq(put(c, &p[4]), 0);
	ck_assert_int_eq(cached(c, 3), 0);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(put(c, &p[1]), 0);
	ck_assert_int_eq(cached(c, 1), 0);
	ck_assert_uint_eq(qs_cache_evictions(c), 3);
	ck_assert_uint_eq(qs_cache_count(c), 3);
	for (int i = 0; i < 5; i++)
		payload_free(&p[i]);
	qs_cache_free(c);
}
END_TEST

START_TEST(contains_does_not_refresh)
{
	struct payload p[4];
	struct qs_cache *c;

	for (int i = 0; i < 4; i++)
		p[i] = mk1((uint64_t)i + 1, 100, 100);
	c = new_cache(3 * charge(&p[0]));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(put(c, &p[i]), 0);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(put(c, &p[3]), 0);
	ck_assert_int_eq(cached(c, 1), 0);
	ck_assert_int_eq(cached(c, 2), 1);
	for (int i = 0; i < 4; i++)
		payload_free(&p[i]);
	qs_cache_free(c);
}
END_TEST

START_TEST(big_payload_evicts_as_many_as_needed)
{
	struct payload small[4], big = mk1(9, 100, 600);
	struct qs_cache *c;

	for (int i = 0; i < 4; i++)
		small[i] = mk1((uint64_t)i + 1, 100, 100);
	c = new_cache(4 * charge(&small[0]));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(put(c, &small[i]), 0);
	/* big needs more than the room of two small ones: three go. */
	ck_assert_int_gt(charge(&big), 2 * charge(&small[0]));
	ck_assert_int_le(charge(&big), 3 * charge(&small[0]));
	ck_assert_int_eq(put(c, &big), 0);
	ck_assert_uint_eq(qs_cache_evictions(c), 3);
	ck_assert_int_eq(cached(c, 4), 1);
	ck_assert_int_eq(cached(c, 9), 1);
	ck_assert_uint_le(qs_cache_bytes(c), 4 * charge(&small[0]));
	for (int i = 0; i < 4; i++)
		payload_free(&small[i]);
	payload_free(&big);
	qs_cache_free(c);
}
END_TEST

START_TEST(budget_never_exceeded)
{
	enum {
		IDS = 300,
		STEPS = 10000
	};
	uint64_t budget = 20000, s = 11;
	struct qs_cache *c = new_cache(budget);
	uint64_t charges[IDS] = {0};
	int in[IDS] = {0};

	for (int step = 0; step < STEPS; step++) {
		uint64_t r = qs_test_splitmix(&s), id = r % IDS, sum = 0;
		size_t lens[3] = {(r >> 16) % 700, (r >> 26) % 300, (r >> 36) % 50};
		struct payload p = mk(id, 1000, lens, 1 + (r >> 46) % 3);
		size_t n = 0;
		int rc;

		if ((r >> 50) % 8 == 0)
			qs_cache_set_budget(c, budget = 5000 + (r >> 53) % 30000);
		rc = put(c, &p);
		REQUIRE(rc == 0 || rc == QS_EEXISTS || rc == QS_ELIMIT);
		REQUIRE(rc != QS_ELIMIT || charge(&p) > budget);
		if (rc == 0)
			charges[id] = charge(&p);
		payload_free(&p);
		for (int i = 0; i < IDS; i++) {
			in[i] = cached(c, (uint64_t)i);
			if (in[i]) {
				sum += charges[i];
				n++;
			}
		}
		REQUIRE(qs_cache_bytes(c) <= budget);
		REQUIRE(qs_cache_bytes(c) == sum);
		REQUIRE(qs_cache_count(c) == n);
	}
	ck_assert_uint_gt(qs_cache_evictions(c), 1000);
	qs_cache_free(c);
}
END_TEST

START_TEST(exact_fit_accepted)
{
	struct payload a = mk1(1, 100, 100);
	struct qs_cache *c = new_cache(charge(&a));

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), charge(&a));
	payload_free(&a);
	qs_cache_free(c);
}
END_TEST

START_TEST(payload_over_whole_budget_refused)
{
	struct payload a = mk1(1, 100, 10), big = mk1(2, 100, 1000);
	struct qs_cache *c = new_cache(charge(&big) - 1);

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(put(c, &big), QS_ELIMIT);
	/* Nothing was evicted for it. */
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	ck_assert_uint_eq(qs_cache_evictions(c), 0);
	ck_assert_uint_eq(qs_cache_count(c), 1);
	payload_free(&a);
	payload_free(&big);
	qs_cache_free(c);
}
END_TEST

START_TEST(budget_zero_caches_nothing)
{
	struct qs_cache *c = new_cache(0);
	struct payload a = mk1(1, 100, 10), e = mk(2, 100, NULL, 0);

	ck_assert_int_eq(put(c, &a), QS_ELIMIT);
	ck_assert_int_eq(put(c, &e), QS_ELIMIT);
	ck_assert_uint_eq(qs_cache_count(c), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	payload_free(&a);
	payload_free(&e);
	qs_cache_free(c);
}
END_TEST

START_TEST(duplicate_put_refreshes_and_keeps_later_expiration)
{
	struct payload p[4], later = mk1(1, 300, 100), earlier = mk1(1, 50, 100);
	struct qs_cached got;
	struct qs_cache *c;

	for (int i = 0; i < 4; i++)
		p[i] = mk1((uint64_t)i + 1, 100, 100);
	c = new_cache(3 * charge(&p[0]));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(put(c, &p[i]), 0);
	ck_assert_int_eq(put(c, &later), QS_EEXISTS);
	ck_assert_int_eq(put(c, &earlier), QS_EEXISTS);
	ck_assert_uint_eq(qs_cache_count(c), 3);
	ck_assert_uint_eq(qs_cache_bytes(c), 3 * charge(&p[0]));
	/* 1 became the most recently used: 2 goes first. */
	ck_assert_int_eq(put(c, &p[3]), 0);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	ck_assert_int_eq(qs_cache_get(c, p[0].info.digest, &got), 0);
	ck_assert_uint_eq(got.info->expiration_us, 300);
	/* 3 and 4 expire at 100, 1 only at 300. */
	ck_assert_uint_eq(qs_cache_expire(c, 200), 2);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_uint_eq(qs_cache_expire(c, 300), 1);
	ck_assert_uint_eq(qs_cache_count(c), 0);
	for (int i = 0; i < 4; i++)
		payload_free(&p[i]);
	payload_free(&later);
	payload_free(&earlier);
	qs_cache_free(c);
}
END_TEST

START_TEST(later_expiration_of_duplicate_postpones_its_expiry)
{
	struct payload a = mk1(1, 100, 10), b = mk1(2, 200, 10), d = mk1(3, 300, 10);
	struct payload a2 = mk1(1, 400, 10);
	struct qs_cache *c = new_cache(100000);

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(put(c, &b), 0);
	ck_assert_int_eq(put(c, &d), 0);
	ck_assert_int_eq(put(c, &a2), QS_EEXISTS);
	ck_assert_uint_eq(qs_cache_expire(c, 250), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	ck_assert_uint_eq(qs_cache_expire(c, 350), 1);
	ck_assert_int_eq(cached(c, 3), 0);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_uint_eq(qs_cache_expire(c, 400), 1);
	payload_free(&a);
	payload_free(&b);
	payload_free(&d);
	payload_free(&a2);
	qs_cache_free(c);
}
END_TEST

START_TEST(expire_drops_due_entries)
{
	struct payload a = mk1(1, 300, 10), b = mk1(2, 100, 10), d = mk1(3, 200, 10);
	struct qs_cache *c = new_cache(100000);

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(put(c, &b), 0);
	ck_assert_int_eq(put(c, &d), 0);
	ck_assert_uint_eq(qs_cache_expire(c, 99), 0);
	/* expiration_us <= cutoff_us goes. */
	ck_assert_uint_eq(qs_cache_expire(c, 200), 2);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 2), 0);
	ck_assert_int_eq(cached(c, 3), 0);
	ck_assert_uint_eq(qs_cache_count(c), 1);
	ck_assert_uint_eq(qs_cache_bytes(c), charge(&a));
	ck_assert_uint_eq(qs_cache_evictions(c), 0);
	ck_assert_uint_eq(qs_cache_expire(c, UINT64_MAX), 1);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	payload_free(&a);
	payload_free(&b);
	payload_free(&d);
	qs_cache_free(c);
}
END_TEST

START_TEST(expire_in_expiration_order_after_removals)
{
	enum {
		N = 5000
	};
	struct qs_cache *c = new_cache(UINT64_MAX);
	uint64_t s = 5, exp[N];
	size_t before;

	for (int i = 0; i < N; i++) {
		struct payload p;

		exp[i] = qs_test_splitmix(&s) % 100000;
		p = mk1((uint64_t)i, exp[i], 8);
		REQUIRE(put(c, &p) == 0);
		payload_free(&p);
	}
	/* Removals from the middle of the expiration order. */
	for (int i = 0; i < N; i += 3) {
		uint8_t digest[QS_DIGEST_BYTES];

		fill_digest(digest, (uint64_t)i);
		qs_cache_remove(c, digest);
	}
	before = N - (N + 2) / 3;
	for (uint64_t cut = 0; cut <= 100000; cut += 997) {
		size_t n = qs_cache_expire(c, cut), left = 0;

		for (int i = 0; i < N; i++) {
			int want = i % 3 && exp[i] > cut;

			REQUIRE(cached(c, (uint64_t)i) == want);
			left += want;
		}
		REQUIRE(n == before - left);
		REQUIRE(qs_cache_count(c) == left);
		before = left;
	}
	ck_assert_uint_lt(before, N);
	qs_cache_free(c);
}
END_TEST

START_TEST(set_budget_shrinking_evicts_least_recently_used)
{
	struct payload p[4];
	struct qs_cached got;
	struct qs_cache *c;

	for (int i = 0; i < 4; i++)
		p[i] = mk1((uint64_t)i + 1, 100, 100);
	c = new_cache(4 * charge(&p[0]));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(put(c, &p[i]), 0);
	ck_assert_int_eq(qs_cache_get(c, p[0].info.digest, &got), 0);
	qs_cache_set_budget(c, 2 * charge(&p[0]) + 1);
	ck_assert_uint_eq(qs_cache_count(c), 2);
	ck_assert_int_eq(cached(c, 1), 1);
	ck_assert_int_eq(cached(c, 4), 1);
	ck_assert_uint_eq(qs_cache_evictions(c), 2);
	ck_assert_uint_le(qs_cache_bytes(c), 2 * charge(&p[0]) + 1);
	/* Growing it evicts nothing and takes more. */
	qs_cache_set_budget(c, 10 * charge(&p[0]));
	ck_assert_int_eq(put(c, &p[1]), 0);
	ck_assert_uint_eq(qs_cache_count(c), 3);
	qs_cache_set_budget(c, 0);
	ck_assert_uint_eq(qs_cache_count(c), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	ck_assert_uint_eq(qs_cache_evictions(c), 5);
	ck_assert_int_eq(put(c, &p[2]), QS_ELIMIT);
	for (int i = 0; i < 4; i++)
		payload_free(&p[i]);
	qs_cache_free(c);
}
END_TEST

START_TEST(remove_drops_entry)
{
	struct payload a = mk1(1, 100, 10), b = mk1(2, 100, 20);
	struct qs_cached got;
	struct qs_cache *c = new_cache(100000);

	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(put(c, &b), 0);
	qs_cache_remove(c, a.info.digest);
	ck_assert_int_eq(qs_cache_get(c, a.info.digest, &got), QS_ENOTFOUND);
	ck_assert_uint_eq(qs_cache_count(c), 1);
	ck_assert_uint_eq(qs_cache_bytes(c), charge(&b));
	/* Unknown, or gone already: nothing happens. */
	qs_cache_remove(c, a.info.digest);
	ck_assert_uint_eq(qs_cache_count(c), 1);
	ck_assert_uint_eq(qs_cache_evictions(c), 0);
	/* The expiration order forgot it too. */
	ck_assert_uint_eq(qs_cache_expire(c, UINT64_MAX), 1);
	/* And it may come back. */
	ck_assert_int_eq(put(c, &a), 0);
	ck_assert_int_eq(qs_cache_get(c, a.info.digest, &got), 0);
	payload_free(&a);
	payload_free(&b);
	qs_cache_free(c);
}
END_TEST

START_TEST(many_entries_then_free)
{
	enum {
		N = 20000
	};
	struct qs_cache *c = new_cache(UINT64_MAX);

	for (int i = 0; i < N; i++) {
		size_t lens[2] = {(size_t)i % 13, (size_t)i % 7};
		struct payload p = mk((uint64_t)i, (uint64_t)i, lens, 2);

		REQUIRE(put(c, &p) == 0);
		payload_free(&p);
	}
	ck_assert_uint_eq(qs_cache_count(c), N);
	for (int i = 0; i < N; i += 997) {
		size_t lens[2] = {(size_t)i % 13, (size_t)i % 7};

		expect_cached(c, (uint64_t)i, (uint64_t)i, lens, 2);
	}
	for (int i = 0; i < N; i += 2) {
		uint8_t digest[QS_DIGEST_BYTES];

		fill_digest(digest, (uint64_t)i);
		qs_cache_remove(c, digest);
	}
	ck_assert_uint_eq(qs_cache_count(c), N / 2);
	/* The sanitizer's leak check fails the test if an entry is not freed. */
	qs_cache_free(c);
}
END_TEST

/* Blocks handed to qs_cache_put_taken(): counted as they are freed. */
static int blocks_freed;

static void
count_free(void *block)
{
	blocks_freed++;
	free(block);
}

/* Give a's blocks to the cache, as the daemon does; a keeps no pointers. */
static int
put_taken(struct qs_cache *c, struct payload *a)
{
	int rc = qs_cache_put_taken(c, &a->info, a->txns, a->n_txns, count_free);

	for (size_t i = 0; i < a->n_txns; i++)
		a->txns[i].data = NULL;
	return rc;
}

START_TEST(taken_blocks_are_served_and_freed_with_the_entry)
{
	static const size_t lens[] = {40, 0, 7};
	struct qs_cache *c = new_cache(100000);
	struct payload a = mk(1, 100, lens, 3), b = mk(2, 100, lens, 3);
	uint8_t *first = a.txns[0].data;
	struct qs_cached got;

	blocks_freed = 0;
	ck_assert_int_eq(put_taken(c, &a), 0);
	ck_assert_uint_eq(qs_cache_bytes(c), charge(&a) + 3 * QS_CACHE_BLOCK_OVERHEAD);
	/* No copy: the entry serves the blocks it was given. */
	ck_assert_int_eq(qs_cache_get(c, a.info.digest, &got), 0);
	ck_assert_ptr_eq(got.txns[0].data, first);
	expect_cached(c, 1, 100, lens, 3);
	ck_assert_int_eq(put_taken(c, &b), 0);
	ck_assert_int_eq(blocks_freed, 0);
	qs_cache_remove(c, a.info.digest);
	ck_assert_int_eq(blocks_freed, 2); /* the empty one was never a block */
	ck_assert_uint_eq(qs_cache_expire(c, UINT64_MAX), 1);
	ck_assert_int_eq(blocks_freed, 4);
	ck_assert_uint_eq(qs_cache_bytes(c), 0);
	payload_free(&a);
	payload_free(&b);
	qs_cache_free(c);
}
END_TEST

START_TEST(taken_blocks_not_cached_are_freed_at_once)
{
	static const size_t lens[] = {10, 20};
	struct qs_cache *c = new_cache(1000);
	struct payload a = mk(1, 100, lens, 2), dup = mk(1, 100, lens, 2);
	struct payload big = mk1(2, 100, 5000), bad = mk(3, 100, lens, 2);

	blocks_freed = 0;
	ck_assert_int_eq(put_taken(c, &a), 0);
	ck_assert_int_eq(put_taken(c, &dup), QS_EEXISTS);
	ck_assert_int_eq(blocks_freed, 2);
	ck_assert_int_eq(put_taken(c, &big), QS_ELIMIT);
	ck_assert_int_eq(blocks_freed, 3);
	bad.info.num_bytes++;
	ck_assert_int_eq(put_taken(c, &bad), -EINVAL);
	ck_assert_int_eq(blocks_freed, 5);
	expect_cached(c, 1, 100, lens, 2);
	qs_cache_free(c); /* and the cached one's with the cache */
	ck_assert_int_eq(blocks_freed, 7);
	payload_free(&a);
	payload_free(&dup);
	payload_free(&big);
	payload_free(&bad);
}
END_TEST

START_TEST(taken_entries_evicted_within_the_budget)
{
	enum {
		N = 200
	};
	struct qs_cache *c;
	struct payload one = mk1(0, 0, 1000);
	uint64_t each = charge(&one) + QS_CACHE_BLOCK_OVERHEAD;

	c = new_cache(10 * each);
	blocks_freed = 0;
	for (int i = 0; i < N; i++) {
		struct payload p = mk1((uint64_t)i, (uint64_t)i, 1000);

		ck_assert_int_eq(put_taken(c, &p), 0);
		ck_assert_uint_le(qs_cache_bytes(c), 10 * each);
		payload_free(&p);
	}
	ck_assert_uint_eq(qs_cache_count(c), 10);
	ck_assert_int_eq(blocks_freed, N - 10);
	qs_cache_set_budget(c, 3 * each);
	ck_assert_int_eq(blocks_freed, N - 3);
	expect_cached(c, N - 1, N - 1, (size_t[]){1000}, 1);
	qs_cache_free(c);
	ck_assert_int_eq(blocks_freed, N);
	payload_free(&one);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	TCase *ts = tcase_create("scale");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_cache_is_empty);
	tcase_add_test(tc, charge_is_bytes_slices_and_overhead);
	tcase_add_test(tc, put_keeps_a_copy_after_caller_frees);
	tcase_add_test(tc, zero_length_transactions_kept);
	tcase_add_test(tc, payload_inconsistent_with_info_is_einval);
	tcase_add_test(tc, least_recently_used_evicted_first);
	tcase_add_test(tc, contains_does_not_refresh);
	tcase_add_test(tc, big_payload_evicts_as_many_as_needed);
	tcase_add_test(tc, exact_fit_accepted);
	tcase_add_test(tc, payload_over_whole_budget_refused);
	tcase_add_test(tc, budget_zero_caches_nothing);
	tcase_add_test(tc, duplicate_put_refreshes_and_keeps_later_expiration);
	tcase_add_test(tc, later_expiration_of_duplicate_postpones_its_expiry);
	tcase_add_test(tc, expire_drops_due_entries);
	tcase_add_test(tc, set_budget_shrinking_evicts_least_recently_used);
	tcase_add_test(tc, remove_drops_entry);
	tcase_add_test(tc, taken_blocks_are_served_and_freed_with_the_entry);
	tcase_add_test(tc, taken_blocks_not_cached_are_freed_at_once);
	tcase_add_test(tc, taken_entries_evicted_within_the_budget);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ts, 300);
	tcase_add_test(ts, budget_never_exceeded);
	tcase_add_test(ts, expire_in_expiration_order_after_removals);
	tcase_add_test(ts, many_entries_then_free);
	suite_add_tcase(s, ts);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
