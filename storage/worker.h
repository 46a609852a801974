/*
 * A storage worker: one thread taking groups of items from a bounded queue,
 * processing each group, and handing every item back to the event loop
 * through a completion channel (storage/doneq.h). The writer and the reader
 * are workers.
 *
 * Ownership of an item moves into the worker at qs_worker_submit() (when it
 * returns 0) and back at its completion, which runs on the loop thread
 * exactly once.
 */
#ifndef QS_STORAGE_WORKER_H
#define QS_STORAGE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "storage/doneq.h"

struct qs_worker_options {
	const char *name;         /* thread name, at most 15 characters */
	struct event_base *base;  /* loop on which completions run */
	uint64_t queue_max_bytes; /* bound of queued + in-flight bytes */
	uint32_t group_max_items; /* items taken at once, at least 1 */
	uint64_t group_max_bytes;
	/* Worker thread: process a group (a NULL-terminated list of n items). */
	void (*process)(void *arg, struct qs_link *group, size_t n, uint64_t bytes);
	/* Loop thread: one completed item. */
	void (*complete)(void *arg, struct qs_link *item);
	void *arg;
};

struct qs_worker;

/* Start the thread. Returns 0 or -errno. */
int qs_worker_start(const struct qs_worker_options *opt, struct qs_worker **out);

/*
 * Queue `item`, charging it item->bytes. Returns 0; QS_EQUEUEFULL when it
 * does not fit in the bound (an item is always accepted into an empty
 * queue); QS_ESHUTDOWN once stopping.
 */
int qs_worker_submit(struct qs_worker *w, struct qs_link *item);

/* Bytes charged now (queued and in flight). */
uint64_t qs_worker_queue_bytes(struct qs_worker *w);

/* Whether `bytes` more would be accepted now. */
int qs_worker_has_room(struct qs_worker *w, uint64_t bytes);

/*
 * Refuse new items, process everything already queued, join the thread and
 * deliver the remaining completions on the calling (loop) thread, then free
 * the worker. NULL is fine.
 */
void qs_worker_stop(struct qs_worker *w);

#endif
