#include "storage/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"

struct qs_worker {
	struct qs_worker_options opt;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct qs_link *head; /* submitted, not yet taken */
	struct qs_link **tail;
	uint64_t queue_bytes; /* queued and in flight */
	int stopping;
	struct qs_doneq *done;
};

/* Detach the next group from the queue; called with the lock held. */
static struct qs_link *
take_group(struct qs_worker *w, size_t *n_out, uint64_t *bytes_out)
{
	struct qs_link *group = w->head, *l = group;
	uint64_t bytes = 0;
	size_t n = 0;

	for (;;) {
		n++;
		bytes += l->bytes;
		if (!l->next || n >= w->opt.group_max_items ||
		    bytes + l->next->bytes > w->opt.group_max_bytes)
			break;
		l = l->next;
	}
	w->head = l->next;
	if (!w->head)
		w->tail = &w->head;
	l->next = NULL;
	*n_out = n;
	*bytes_out = bytes;
	return group;
}

static void *
worker_main(void *arg)
{
	struct qs_worker *w = arg;

	for (;;) {
		struct qs_link *group;
		uint64_t bytes;
		size_t n;

		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		group = take_group(w, &n, &bytes);
		pthread_mutex_unlock(&w->lock);

		w->opt.process(w->opt.arg, group, n, bytes);

		pthread_mutex_lock(&w->lock);
		w->queue_bytes -= bytes;
		pthread_mutex_unlock(&w->lock);
		qs_doneq_push_chain(w->done, group);
	}
	return NULL;
}

static void
deliver(void *arg, struct qs_link *item)
{
	struct qs_worker *w = arg;

	w->opt.complete(w->opt.arg, item);
}

int
qs_worker_start(const struct qs_worker_options *opt, struct qs_worker **out)
{
	struct qs_worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return -ENOMEM;
	w->opt = *opt;
	if (w->opt.group_max_items == 0)
		w->opt.group_max_items = 1;
	w->tail = &w->head;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	rc = qs_doneq_new(opt->base, deliver, w, &w->done);
	if (rc)
		goto out;
	rc = -pthread_create(&w->thread, NULL, worker_main, w);
	if (rc)
		goto out;
	w->thread_started = 1;
	if (opt->name)
		pthread_setname_np(w->thread, opt->name);
	*out = w;
	return 0;
out:
	qs_worker_stop(w);
	return rc;
}

int
qs_worker_submit(struct qs_worker *w, struct qs_link *item)
{
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		rc = QS_ESHUTDOWN;
	} else if (w->queue_bytes && w->queue_bytes + item->bytes > w->opt.queue_max_bytes) {
		rc = QS_EQUEUEFULL;
	} else {
		item->next = NULL;
		*w->tail = item;
		w->tail = &item->next;
		w->queue_bytes += item->bytes;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

uint64_t
qs_worker_queue_bytes(struct qs_worker *w)
{
	uint64_t n;

	pthread_mutex_lock(&w->lock);
	n = w->queue_bytes;
	pthread_mutex_unlock(&w->lock);
	return n;
}

int
qs_worker_has_room(struct qs_worker *w, uint64_t bytes)
{
	int room;

	pthread_mutex_lock(&w->lock);
	room = w->queue_bytes == 0 || w->queue_bytes + bytes <= w->opt.queue_max_bytes;
	pthread_mutex_unlock(&w->lock);
	return room;
}

void
qs_worker_stop(struct qs_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	qs_doneq_free(w->done);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
