#include "storage/doneq.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct qs_doneq {
	pthread_mutex_t lock;
	struct qs_link *head;
	struct qs_link **tail;
	uint64_t wakeups;
	int efd;
	struct event *ev;
	void (*deliver)(void *arg, struct qs_link *item);
	void *arg;
};

static void
doneq_ready(evutil_socket_t fd, short what, void *arg)
{
	struct qs_doneq *q = arg;
	uint64_t n;

	/* Reset the counter; the list, not the count, says what is pending. */
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		abort();
	qs_doneq_drain(q);
}

int
qs_doneq_new(struct event_base *base, void (*deliver)(void *arg, struct qs_link *item), void *arg,
             struct qs_doneq **out)
{
	struct qs_doneq *q = calloc(1, sizeof(*q));
	int rc = -ENOMEM;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	q->tail = &q->head;
	q->deliver = deliver;
	q->arg = arg;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		rc = -errno;
		goto out;
	}
	q->ev = event_new(base, q->efd, EV_READ | EV_PERSIST, doneq_ready, q);
	if (!q->ev || event_add(q->ev, NULL) != 0)
		goto out;
	*out = q;
	return 0;
out:
	qs_doneq_free(q);
	return rc;
}

void
qs_doneq_push_chain(struct qs_doneq *q, struct qs_link *first)
{
	struct qs_link *last = first;
	uint64_t one = 1;
	int wake;

	while (last->next)
		last = last->next;
	pthread_mutex_lock(&q->lock);
	/*
	 * Items already queued have a wake-up on its way: the loop reads the
	 * eventfd before it takes the list, so it takes these with them. Only
	 * a push onto an empty list (none queued, or all taken) must wake it;
	 * every eventfd write is a system call and a wake-up of the loop.
	 */
	wake = q->head == NULL;
	*q->tail = first;
	q->tail = &last->next;
	if (wake)
		q->wakeups++;
	pthread_mutex_unlock(&q->lock);
	/* An eventfd write fails only when the counter would overflow, in which
	 * case the loop has a wake-up pending anyway. */
	if (wake && write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();
}

void
qs_doneq_push(struct qs_doneq *q, struct qs_link *item)
{
	item->next = NULL;
	qs_doneq_push_chain(q, item);
}

uint64_t
qs_doneq_wakeups(struct qs_doneq *q)
{
	uint64_t n;

	pthread_mutex_lock(&q->lock);
	n = q->wakeups;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
qs_doneq_drain(struct qs_doneq *q)
{
	struct qs_link *list, *next;

	pthread_mutex_lock(&q->lock);
	list = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->lock);
	for (; list; list = next) {
		next = list->next;
		q->deliver(q->arg, list);
	}
}

void
qs_doneq_free(struct qs_doneq *q)
{
	if (!q)
		return;
	qs_doneq_drain(q);
	if (q->ev)
		event_free(q->ev);
	if (q->efd >= 0)
		close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
