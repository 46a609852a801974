/* core/heap: the min-heap of ids by key: order, updates, removals, growth. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtable.h"
#include "core/heap.h"

/* A heap and what it should hold: id i with keys[i] when held[i]. */
struct model {
	struct qs_heap *h;
	uint64_t *keys;
	char *held;
	size_t n; /* ids */
};

/* ids [0, n), a heap with a capacity of `cap` of them. */
static void
model_new(struct model *m, size_t n, size_t cap)
{
	ck_assert_int_eq(qs_heap_new(&m->h), 0);
	ck_assert_int_eq(qs_heap_reserve(m->h, cap), 0);
	m->keys = calloc(n, sizeof(*m->keys));
	m->held = calloc(n, 1);
	ck_assert(m->keys != NULL && m->held != NULL);
	m->n = n;
}

static void
model_free(struct model *m)
{
	qs_heap_free(m->h);
	free(m->keys);
	free(m->held);
}

/* Push id, or give it the new key if it is held. */
static void
model_set(struct model *m, uint32_t id, uint64_t key)
{
	if (m->held[id])
		qs_heap_update(m->h, id, key);
	else
		qs_heap_push(m->h, id, key);
	m->keys[id] = key;
	m->held[id] = 1;
}

static void
model_remove(struct model *m, uint32_t id)
{
	qs_heap_remove(m->h, id);
	m->held[id] = 0;
}

/* Push ids [0, n) with key(i) for each. */
static void
model_fill(struct model *m, uint64_t (*key)(uint32_t i))
{
	for (uint32_t i = 0; i < m->n; i++)
		model_set(m, i, key(i));
}

/* The smallest key held, UINT64_MAX for none. */
static uint64_t
model_min(const struct model *m)
{
	uint64_t min = UINT64_MAX;

	for (size_t i = 0; i < m->n; i++)
		min = m->held[i] && m->keys[i] < min ? m->keys[i] : min;
	return min;
}

/*
 * Take everything out in the heap's order. Returns how many ids came out
 * of order, with a wrong key or not held, plus 1 for a wrong length.
 */
static size_t
model_drain_checked(struct model *m)
{
	uint64_t last = 0;
	size_t bad = 0, left = 0;
	uint32_t id;

	for (size_t i = 0; i < m->n; i++)
		left += m->held[i] != 0;
	bad += qs_heap_len(m->h) != left;
	while ((id = qs_heap_due(m->h, UINT64_MAX)) != QS_HEAP_NONE) {
		if (id >= m->n)
			return bad + 1;
		bad += !m->held[id] || m->keys[id] < last || qs_heap_min(m->h) != m->keys[id];
		last = m->keys[id];
		model_remove(m, id);
	}
	return bad + (qs_heap_len(m->h) != 0);
}

/* Few distinct keys: ties too. */
static uint64_t
mixed_key(uint32_t i)
{
	return qs_dtable_mix(i) % 300;
}

static uint64_t
rising_key(uint32_t i)
{
	return 1000 + 10 * (uint64_t)i;
}

START_TEST(new_heap_is_empty)
{
	struct qs_heap *h = NULL;

	ck_assert_int_eq(qs_heap_new(&h), 0);
	ck_assert_uint_eq(qs_heap_len(h), 0);
	ck_assert_uint_eq(qs_heap_min(h), UINT64_MAX);
	ck_assert_uint_eq(qs_heap_due(h, UINT64_MAX), QS_HEAP_NONE);
	qs_heap_free(h);
	qs_heap_free(NULL);
}
END_TEST

START_TEST(due_only_up_to_the_limit)
{
	struct model m;

	model_new(&m, 4, 4);
	model_set(&m, 2, 50);
	model_set(&m, 0, 20);
	model_set(&m, 3, 30);
	ck_assert_uint_eq(qs_heap_min(m.h), 20);
	ck_assert_uint_eq(qs_heap_due(m.h, 19), QS_HEAP_NONE);
	ck_assert_uint_eq(qs_heap_due(m.h, 20), 0);
	model_remove(&m, 0);
	ck_assert_uint_eq(qs_heap_due(m.h, 29), QS_HEAP_NONE);
	ck_assert_uint_eq(qs_heap_due(m.h, 30), 3);
	ck_assert_uint_eq(qs_heap_len(m.h), 2);
	/* UINT64_MAX is a key like any other: due at that limit. */
	model_set(&m, 1, UINT64_MAX);
	model_remove(&m, 2);
	model_remove(&m, 3);
	ck_assert_uint_eq(qs_heap_due(m.h, UINT64_MAX - 1), QS_HEAP_NONE);
	ck_assert_uint_eq(qs_heap_due(m.h, UINT64_MAX), 1);
	model_free(&m);
}
END_TEST

START_TEST(pushes_come_out_in_key_order)
{
	struct model m;

	model_new(&m, 1000, 1000);
	model_fill(&m, mixed_key);
	ck_assert_uint_eq(model_drain_checked(&m), 0);
	model_free(&m);
}
END_TEST

START_TEST(update_moves_an_id_up_or_down)
{
	struct model m;

	model_new(&m, 64, 64);
	model_fill(&m, rising_key);
	/* The first to the end, one near the end to the front. */
	model_set(&m, 0, 5000);
	ck_assert_uint_eq(qs_heap_due(m.h, UINT64_MAX), 1);
	model_set(&m, 60, 1);
	ck_assert_uint_eq(qs_heap_due(m.h, UINT64_MAX), 60);
	/* And one in the middle to its own key. */
	model_set(&m, 30, m.keys[30]);
	ck_assert_uint_eq(model_drain_checked(&m), 0);
	model_free(&m);
}
END_TEST

START_TEST(remove_from_anywhere_keeps_the_order)
{
	for (uint32_t gone = 0; gone < 200; gone += 7) {
		struct model m;

		model_new(&m, 200, 200);
		model_fill(&m, mixed_key);
		model_remove(&m, gone);
		ck_assert_msg(model_drain_checked(&m) == 0, "after removing %u", gone);
		model_free(&m);
	}
}
END_TEST

/* A removed id may be pushed again, with another key. */
START_TEST(removed_id_can_return)
{
	struct model m;

	model_new(&m, 2, 2);
	model_set(&m, 0, 10);
	model_set(&m, 1, 20);
	model_remove(&m, 0);
	model_set(&m, 0, 30);
	ck_assert_uint_eq(qs_heap_due(m.h, UINT64_MAX), 1);
	ck_assert_uint_eq(model_drain_checked(&m), 0);
	model_free(&m);
}
END_TEST

/*
 * Random pushes, updates (both ways) and removals against the model, the
 * capacity growing on the way: the minimum is always the smallest key
 * held, and every due id has it.
 */
START_TEST(randomized_against_reference)
{
	enum {
		N = 4000,
		STEPS = 100000
	};
	struct model m;
	size_t bad = 0;

	model_new(&m, N, 16);
	for (uint64_t step = 0; step < STEPS; step++) {
		uint64_t r = qs_dtable_mix(step);
		uint32_t id = (uint32_t)(r % N);

		ck_assert_int_eq(qs_heap_reserve(m.h, (size_t)id + 1), 0);
		if (m.held[id] && (r >> 40) % 3 == 0)
			model_remove(&m, id);
		else
			model_set(&m, id, (r >> 20) % 5000);
		if (step % 1000 == 0) {
			uint64_t min = model_min(&m);
			uint32_t due = qs_heap_due(m.h, UINT64_MAX);

			bad += qs_heap_min(m.h) != min;
			bad += due != QS_HEAP_NONE && (!m.held[due] || m.keys[due] != min);
		}
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(model_drain_checked(&m), 0);
	model_free(&m);
}
END_TEST

/* The item array doubles from 64 with the capacity and keeps its items;
 * every id below the new capacity may be pushed. */
START_TEST(grow_items_doubles_array_and_capacity)
{
	struct qs_heap *h = NULL;
	uint32_t *items = NULL, cap = 0, *grown;

	ck_assert_int_eq(qs_heap_new(&h), 0);
	grown = qs_heap_grow_items(h, items, sizeof(*items), &cap);
	ck_assert_ptr_nonnull(grown);
	items = grown;
	ck_assert_uint_eq(cap, 64);
	for (uint32_t i = 0; i < cap; i++) {
		items[i] = i * 3 + 1;
		qs_heap_push(h, i, items[i]);
	}
	grown = qs_heap_grow_items(h, items, sizeof(*items), &cap);
	ck_assert_ptr_nonnull(grown);
	items = grown;
	ck_assert_uint_eq(cap, 128);
	for (uint32_t i = 0; i < 64; i++)
		ck_assert_uint_eq(items[i], i * 3 + 1);
	qs_heap_push(h, 127, 0);
	ck_assert_uint_eq(qs_heap_due(h, 0), 127);
	ck_assert_uint_eq(qs_heap_len(h), 65);
	free(items);
	qs_heap_free(h);
}
END_TEST

/* An item array that cannot grow is left as it was. */
START_TEST(grow_items_past_the_limit_fails)
{
	struct qs_heap *h = NULL;
	uint32_t cap = UINT32_MAX / 2;
	uint8_t *items = malloc(1);

	ck_assert_ptr_nonnull(items);
	ck_assert_int_eq(qs_heap_new(&h), 0);
	ck_assert_ptr_null(qs_heap_grow_items(h, items, 1, &cap));
	ck_assert_uint_eq(cap, UINT32_MAX / 2);
	ck_assert_int_eq(qs_heap_reserve(h, (size_t)UINT32_MAX + 1), -ENOMEM);
	free(items);
	qs_heap_free(h);
}
END_TEST

START_TEST(push_past_the_capacity_aborts)
{
	struct model m;

	model_new(&m, 4, 4);
	qs_heap_push(m.h, 4, 1);
}
END_TEST

START_TEST(push_of_an_id_held_aborts)
{
	struct model m;

	model_new(&m, 4, 4);
	qs_heap_push(m.h, 1, 1);
	qs_heap_push(m.h, 1, 2);
}
END_TEST

START_TEST(remove_of_an_id_not_held_aborts)
{
	struct model m;

	model_new(&m, 4, 4);
	qs_heap_push(m.h, 1, 1);
	qs_heap_remove(m.h, 2);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("heap");
	TCase *tc = tcase_create("heap");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_heap_is_empty);
	tcase_add_test(tc, due_only_up_to_the_limit);
	tcase_add_test(tc, pushes_come_out_in_key_order);
	tcase_add_test(tc, update_moves_an_id_up_or_down);
	tcase_add_test(tc, remove_from_anywhere_keeps_the_order);
	tcase_add_test(tc, removed_id_can_return);
	tcase_add_test(tc, randomized_against_reference);
	tcase_add_test(tc, grow_items_doubles_array_and_capacity);
	tcase_add_test(tc, grow_items_past_the_limit_fails);
	tcase_add_test_raise_signal(tc, push_past_the_capacity_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, push_of_an_id_held_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, remove_of_an_id_not_held_aborts, SIGABRT);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
