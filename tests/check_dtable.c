/* core/dtable: the digest -> id hash table: probing, deletion, growth. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtable.h"
#include "core/error.h"

#define SEED      UINT64_C(0x0123456789abcdef)
#define MIN_SLOTS 64 /* a new table's */

/* A table over digests named by their index, and which of them it holds. */
struct model {
	struct qs_dtable *t;
	uint8_t (*digest)[QS_DIGEST_BYTES];
	char *held;
	size_t n;
	uint64_t seed;
};

static int
digest_is(const void *arg, uint32_t id, const void *key)
{
	const struct model *m = arg;

	return memcmp(m->digest[id], key, QS_DIGEST_BYTES) == 0;
}

/* n digests, all zero, and an empty table keyed with `seed`. */
static void
model_new(struct model *m, size_t n, uint64_t seed)
{
	m->digest = calloc(n, sizeof(*m->digest));
	m->held = calloc(n, 1);
	ck_assert(m->digest != NULL && m->held != NULL);
	m->n = n;
	m->seed = seed;
	ck_assert_int_eq(qs_dtable_new(seed, digest_is, m, &m->t), 0);
}

/* Empty the table, as a new one. */
static void
model_clear(struct model *m)
{
	qs_dtable_free(m->t);
	memset(m->held, 0, m->n);
	ck_assert_int_eq(qs_dtable_new(m->seed, digest_is, m, &m->t), 0);
}

static void
model_free(struct model *m)
{
	qs_dtable_free(m->t);
	free(m->digest);
	free(m->held);
}

/* Digest i: its first 8 bytes, all its hash depends on, are `head`. */
static void
set_digest(struct model *m, size_t i, uint64_t head)
{
	uint64_t tail = qs_dtable_mix(i + 1);

	memcpy(m->digest[i], &head, sizeof(head));
	memcpy(m->digest[i] + 8, &tail, sizeof(tail));
	m->digest[i][QS_DIGEST_BYTES - 1] = (uint8_t)i;
}

static uint64_t
hash_of(const struct model *m, uint32_t id)
{
	return qs_dtable_hash(m->t, m->digest[id]);
}

static void
model_insert(struct model *m, uint32_t id)
{
	ck_assert_int_eq(qs_dtable_reserve(m->t, 1), 0);
	qs_dtable_insert(m->t, hash_of(m, id), id);
	m->held[id] = 1;
}

static int
model_remove(struct model *m, uint32_t id)
{
	m->held[id] = 0;
	return qs_dtable_remove(m->t, hash_of(m, id), id);
}

/* How many digests a lookup finds otherwise than the model says, plus 1
 * for a wrong count. */
static size_t
model_mismatches(const struct model *m)
{
	size_t bad = 0, count = 0;

	for (uint32_t i = 0; i < m->n; i++) {
		bad += qs_dtable_lookup(m->t, m->digest[i]) != (m->held[i] ? i : QS_DTABLE_NONE);
		count += m->held[i] != 0;
	}
	return bad + (qs_dtable_count(m->t) != count);
}

/* Set digests [first, first + n) to ones whose home slot in a table of
 * MIN_SLOTS slots is `home`. */
static void
set_digests_at_home(struct model *m, size_t first, size_t n, size_t home)
{
	uint64_t head = 0;

	for (size_t i = first; i < first + n; head++) {
		set_digest(m, i, head);
		if ((hash_of(m, (uint32_t)i) & (MIN_SLOTS - 1)) == home)
			i++;
	}
}

START_TEST(new_table_is_empty)
{
	struct model m;

	model_new(&m, 1, SEED);
	set_digest(&m, 0, 7);
	ck_assert_uint_eq(qs_dtable_count(m.t), 0);
	ck_assert_uint_eq(qs_dtable_lookup(m.t, m.digest[0]), QS_DTABLE_NONE);
	ck_assert_int_eq(model_remove(&m, 0), QS_ENOTFOUND);
	qs_dtable_free(NULL);
	model_free(&m);
}
END_TEST

START_TEST(insert_then_lookup_and_remove)
{
	struct model m;

	model_new(&m, 2, SEED);
	set_digest(&m, 0, 1);
	set_digest(&m, 1, 2);
	model_insert(&m, 0);
	ck_assert_uint_eq(qs_dtable_lookup(m.t, m.digest[0]), 0);
	ck_assert_uint_eq(qs_dtable_find(m.t, hash_of(&m, 0), m.digest[0]), 0);
	ck_assert_uint_eq(model_mismatches(&m), 0);
	ck_assert_int_eq(model_remove(&m, 1), QS_ENOTFOUND);
	ck_assert_int_eq(model_remove(&m, 0), 0);
	ck_assert_uint_eq(model_mismatches(&m), 0);
	ck_assert_int_eq(model_remove(&m, 0), QS_ENOTFOUND);
	model_free(&m);
}
END_TEST

START_TEST(hash_is_keyed_by_the_seed)
{
	struct model a, b;

	model_new(&a, 1, SEED);
	model_new(&b, 1, SEED + 1);
	set_digest(&a, 0, 42);
	set_digest(&b, 0, 42);
	ck_assert_uint_eq(hash_of(&a, 0), qs_dtable_hash(a.t, b.digest[0]));
	ck_assert_uint_ne(hash_of(&a, 0), hash_of(&b, 0));
	model_free(&a);
	model_free(&b);
}
END_TEST

/* Digests alike in their first 8 bytes have one hash: match tells them
 * apart, on lookup and on removal. */
START_TEST(equal_hashes_told_apart_by_match)
{
	struct model m;

	model_new(&m, 10, SEED);
	for (uint32_t i = 0; i < m.n; i++) {
		set_digest(&m, i, 0xdead);
		model_insert(&m, i);
	}
	ck_assert_uint_eq(hash_of(&m, 0), hash_of(&m, 9));
	ck_assert_uint_eq(model_mismatches(&m), 0);
	for (uint32_t i = 0; i < m.n; i += 3) {
		ck_assert_int_eq(model_remove(&m, i), 0);
		ck_assert_uint_eq(model_mismatches(&m), 0);
	}
	model_free(&m);
}
END_TEST

/*
 * One probe chain that wraps past the last slot: five digests at home in
 * the last slot, two in slot 0, one in slot 1. Removing any one of them
 * shifts the rest back without losing one, and the room it leaves is
 * reused.
 */
START_TEST(remove_anywhere_in_a_wrapping_probe_chain)
{
	struct model m;

	model_new(&m, 8, SEED);
	set_digests_at_home(&m, 0, 5, MIN_SLOTS - 1);
	set_digests_at_home(&m, 5, 2, 0);
	set_digests_at_home(&m, 7, 1, 1);
	for (uint32_t gone = 0; gone < m.n; gone++) {
		model_clear(&m);
		for (uint32_t i = 0; i < m.n; i++)
			model_insert(&m, i);
		ck_assert_int_eq(model_remove(&m, gone), 0);
		ck_assert_msg(model_mismatches(&m) == 0, "removing %u lost another", gone);
		model_insert(&m, gone);
		ck_assert_uint_eq(model_mismatches(&m), 0);
		/* Then empty it, last inserted first. */
		for (uint32_t i = (uint32_t)m.n; i-- > 0;)
			ck_assert_int_eq(model_remove(&m, i), 0);
		ck_assert_uint_eq(model_mismatches(&m), 0);
	}
	model_free(&m);
}
END_TEST

/* Growth by doubling keeps every id where a lookup finds it. */
START_TEST(growth_keeps_every_id)
{
	struct model m;

	model_new(&m, 100000, SEED);
	for (uint32_t i = 0; i < m.n; i++) {
		set_digest(&m, i, qs_dtable_mix(i));
		model_insert(&m, i);
	}
	ck_assert_uint_eq(model_mismatches(&m), 0);
	for (uint32_t i = 0; i < m.n; i += 2)
		ck_assert_int_eq(model_remove(&m, i), 0);
	ck_assert_uint_eq(model_mismatches(&m), 0);
	model_free(&m);
}
END_TEST

/* One reserve makes room for that many insertions: none of them aborts. */
START_TEST(reserve_makes_room_for_many)
{
	struct model m;

	model_new(&m, 5000, SEED);
	ck_assert_int_eq(qs_dtable_reserve(m.t, m.n), 0);
	for (uint32_t i = 0; i < m.n; i++) {
		set_digest(&m, i, i);
		qs_dtable_insert(m.t, hash_of(&m, i), i);
		m.held[i] = 1;
	}
	ck_assert_uint_eq(model_mismatches(&m), 0);
	ck_assert_int_eq(qs_dtable_reserve(m.t, SIZE_MAX), -ENOMEM);
	ck_assert_uint_eq(model_mismatches(&m), 0);
	model_free(&m);
}
END_TEST

/* A new table holds 3/4 of its 64 slots; one more needs a reserve. */
START_TEST(insert_past_three_quarters_without_reserve_aborts)
{
	struct model m;

	model_new(&m, MIN_SLOTS / 4 * 3 + 1, SEED);
	for (uint32_t i = 0; i < m.n; i++) {
		set_digest(&m, i, i);
		qs_dtable_insert(m.t, hash_of(&m, i), i);
	}
}
END_TEST

/*
 * Random inserts and removals over digests in groups of equal hashes, with
 * a constant seed, against the model: long probe chains and many backward
 * shifts, through several doublings.
 */
START_TEST(randomized_against_reference)
{
	enum {
		N = 3000,
		GROUP = 4,
		STEPS = 60000
	};
	struct model m;
	size_t bad = 0;

	model_new(&m, N, SEED);
	for (uint32_t i = 0; i < N; i++)
		set_digest(&m, i, i / GROUP);
	for (uint64_t step = 0; step < STEPS; step++) {
		uint64_t r = qs_dtable_mix(step + 99);
		/* Grow for the first half, then shrink. */
		uint32_t id = (uint32_t)(r % (step < STEPS / 2 ? N : N / 3));
		int add = (r >> 32) % 4 < (step < STEPS / 2 ? 3u : 1u);

		if (add && !m.held[id])
			model_insert(&m, id);
		else if (!add && m.held[id])
			bad += model_remove(&m, id) != 0;
		bad += qs_dtable_lookup(m.t, m.digest[id]) != (m.held[id] ? id : QS_DTABLE_NONE);
		if (step % 5000 == 0)
			bad += model_mismatches(&m);
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(model_mismatches(&m), 0);
	model_free(&m);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dtable");
	TCase *tc = tcase_create("dtable");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_table_is_empty);
	tcase_add_test(tc, insert_then_lookup_and_remove);
	tcase_add_test(tc, hash_is_keyed_by_the_seed);
	tcase_add_test(tc, equal_hashes_told_apart_by_match);
	tcase_add_test(tc, remove_anywhere_in_a_wrapping_probe_chain);
	tcase_add_test(tc, growth_keeps_every_id);
	tcase_add_test(tc, reserve_makes_room_for_many);
	tcase_add_test_raise_signal(tc, insert_past_three_quarters_without_reserve_aborts, SIGABRT);
	tcase_add_test(tc, randomized_against_reference);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
