/*
 * storage/doneq: items from a storage thread reach the loop in order, each
 * once, and a whole group costs the loop one wake-up (an eventfd write per
 * item was as many system calls and wake-ups as the writer's batches).
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "storage/doneq.h"

struct item {
	struct qs_link link; /* first */
	uint32_t seq;
};

struct sink {
	struct event_base *base;
	uint32_t next; /* the seq expected next */
	uint32_t want; /* break the loop after this many */
	int out_of_order;
};

static void
deliver(void *arg, struct qs_link *l)
{
	struct sink *s = arg;
	struct item *it = (struct item *)l;

	if (it->seq != s->next)
		s->out_of_order = 1;
	s->next = it->seq + 1;
	if (s->next == s->want)
		event_base_loopbreak(s->base);
}

static struct item *
items_new(uint32_t n)
{
	struct item *v = calloc(n, sizeof(*v));

	ck_assert_ptr_nonnull(v);
	for (uint32_t i = 0; i < n; i++)
		v[i].seq = i;
	return v;
}

/* Link v[from, to) into a chain; returns its first link. */
static struct qs_link *
chain(struct item *v, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		v[i].link.next = i + 1 < to ? &v[i + 1].link : NULL;
	return &v[from].link;
}

START_TEST(a_group_is_one_wakeup)
{
	struct sink s = {.base = event_base_new(), .want = 100};
	struct item *v = items_new(100);
	struct qs_doneq *q;

	ck_assert_int_eq(qs_doneq_new(s.base, deliver, &s, &q), 0);
	qs_doneq_push_chain(q, chain(v, 0, 60));
	qs_doneq_push_chain(q, chain(v, 60, 99)); /* onto the pending list */
	qs_doneq_push(q, &v[99].link);
	ck_assert_uint_eq(qs_doneq_wakeups(q), 1);
	ck_assert_int_eq(event_base_dispatch(s.base), 0);
	ck_assert_uint_eq(s.next, 100);
	ck_assert_int_eq(s.out_of_order, 0);
	/* Taken: the next push must wake the loop again. */
	s.want = 101;
	v[0].seq = 100;
	qs_doneq_push(q, &v[0].link);
	ck_assert_uint_eq(qs_doneq_wakeups(q), 2);
	ck_assert_int_eq(event_base_dispatch(s.base), 0);
	ck_assert_uint_eq(s.next, 101);
	qs_doneq_free(q);
	event_base_free(s.base);
	free(v);
}
END_TEST

struct producer {
	struct qs_doneq *q;
	struct item *v;
	uint32_t n;
};

static void *
produce(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = 7;
	uint32_t i = 0;

	while (i < p->n) {
		uint32_t k;

		rng = rng * 6364136223846793005u + 1442695040888963407u;
		k = 1 + (uint32_t)(rng >> 59); /* 1..32 */
		if (k > p->n - i)
			k = p->n - i;
		qs_doneq_push_chain(p->q, chain(p->v, i, i + k));
		i += k;
	}
	return NULL;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

START_TEST(nothing_lost_while_the_loop_takes_items)
{
	enum {
		N = 200000
	};
	struct sink s = {.want = N};
	struct producer p = {.v = items_new(N), .n = N};
	struct timeval tv = {30, 0};
	struct event *timeout;
	pthread_t t;

	ck_assert_int_eq(evthread_use_pthreads(), 0);
	s.base = event_base_new();
	ck_assert_int_eq(qs_doneq_new(s.base, deliver, &s, &p.q), 0);
	timeout = evtimer_new(s.base, timeout_cb, s.base);
	evtimer_add(timeout, &tv);
	ck_assert_int_eq(pthread_create(&t, NULL, produce, &p), 0);
	ck_assert_int_eq(event_base_dispatch(s.base), 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(s.next, N);
	ck_assert_int_eq(s.out_of_order, 0);
	ck_assert_uint_le(qs_doneq_wakeups(p.q), N);
	event_free(timeout);
	qs_doneq_free(p.q);
	event_base_free(s.base);
	free(p.v);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("doneq");
	TCase *tc = tcase_create("doneq");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, a_group_is_one_wakeup);
	tcase_add_test(tc, nothing_lost_while_the_loop_takes_items);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
