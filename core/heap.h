/*
 * A binary min-heap of ids ordered by a 64-bit key (an expiration), for a
 * caller that keeps its items in an array and names each by its index (a
 * uint32 id). The heap knows where each id it holds sits, so an item can be
 * removed or given a new key by its id.
 *
 * Capacity is a number of ids: the ids below it may be held, each at most
 * once. It grows only by qs_heap_reserve() or qs_heap_grow_items(), so a
 * caller whose item array never has more ids than the heap's capacity makes
 * every push, update and remove free of allocation (and of failure).
 *
 * Costs, for n ids held: push, update, remove O(log n); min and due O(1).
 * Items with equal keys leave in no particular order. Pure and
 * single-threaded: no I/O, no locks.
 */
#ifndef QS_CORE_HEAP_H
#define QS_CORE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define QS_HEAP_NONE UINT32_MAX /* no id */

struct qs_heap;

/* Create an empty heap with a capacity of 0 ids. Returns 0 and sets *out,
 * which the caller frees with qs_heap_free(); -ENOMEM. */
int qs_heap_new(struct qs_heap **out);

/* Free the heap; NULL is fine. */
void qs_heap_free(struct qs_heap *h);

/* Make the capacity at least `cap` ids (at most QS_HEAP_NONE). Returns 0;
 * -ENOMEM, the capacity unchanged. */
int qs_heap_reserve(struct qs_heap *h, size_t cap);

/*
 * Double the capacity (from 64 ids), and the caller's array of items named
 * by those ids with it: like realloc(), returns `items` moved to hold the
 * new capacity of `item_bytes` each and sets *cap to it; or returns NULL,
 * `items` and *cap as they were, for no memory or a capacity that would
 * pass 2^31 ids. The heap keeps any capacity it gained.
 */
void *qs_heap_grow_items(struct qs_heap *h, void *items, size_t item_bytes, uint32_t *cap);

/* Add `id` (below the capacity, not held) with `key`. Pushing an id out of
 * range or held already is a caller bug and aborts. */
void qs_heap_push(struct qs_heap *h, uint32_t id, uint64_t key);

/* Give the held `id` a new key, moving it up or down. */
void qs_heap_update(struct qs_heap *h, uint32_t id, uint64_t key);

/* Take out the held `id`. Removing an id not held is a caller bug and
 * aborts. */
void qs_heap_remove(struct qs_heap *h, uint32_t id);

/* The ids held. */
size_t qs_heap_len(const struct qs_heap *h);

/* The smallest key held, or UINT64_MAX when the heap is empty. */
uint64_t qs_heap_min(const struct qs_heap *h);

/* An id with the smallest key when that key is <= `limit` (what is due by
 * then), else QS_HEAP_NONE. The heap is not changed. */
uint32_t qs_heap_due(const struct qs_heap *h, uint64_t limit);

#endif
