/*
 * A completion channel from a storage thread to the event loop: a
 * mutex-protected list plus an eventfd registered with libevent. Items are
 * delivered on the loop thread, in the order they were pushed, each once.
 */
#ifndef QS_STORAGE_DONEQ_H
#define QS_STORAGE_DONEQ_H

#include <stdint.h>

#include <event2/event.h>

/* Embedded as the first member of whatever is queued. */
struct qs_link {
	struct qs_link *next;
	uint64_t bytes; /* what the item is charged in a bounded queue */
};

struct qs_doneq;

/*
 * Create a channel delivering to deliver(arg, item) on `base`'s loop.
 * Returns 0 or -errno.
 */
int qs_doneq_new(struct event_base *base, void (*deliver)(void *arg, struct qs_link *item),
                 void *arg, struct qs_doneq **out);

/* Queue `item` for delivery; any thread. Ownership passes to the channel
 * until deliver() hands it back. */
void qs_doneq_push(struct qs_doneq *q, struct qs_link *item);

/* Queue the items linked from `first` through their `next`, in that order,
 * at once: a storage thread hands back a whole group with one wake-up. */
void qs_doneq_push_chain(struct qs_doneq *q, struct qs_link *first);

/* Wake-ups the channel has sent the loop: one per push that found nothing
 * pending (the loop takes everything queued at each). */
uint64_t qs_doneq_wakeups(struct qs_doneq *q);

/* Deliver everything queued now, on the calling (loop) thread. */
void qs_doneq_drain(struct qs_doneq *q);

/* Free the channel; items still queued are delivered first. NULL is fine. */
void qs_doneq_free(struct qs_doneq *q);

#endif
