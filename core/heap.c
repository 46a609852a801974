#include "core/heap.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * items[0 .. len) is the heap; pos[id] is where id sits in it, or
 * QS_HEAP_NONE while it is not held. Both arrays have `cap` elements.
 */

#define QS_HEAP_MIN_CAP 64

struct qs_heap_item {
	uint64_t key;
	uint32_t id;
};

struct qs_heap {
	struct qs_heap_item *items;
	uint32_t *pos;
	size_t len;
	size_t cap;
};

static void
qs_heap_die(const char *what)
{
	fprintf(stderr, "qs_heap: %s\n", what);
	abort();
}

static void
qs_heap_set(struct qs_heap *h, size_t pos, struct qs_heap_item item)
{
	h->items[pos] = item;
	h->pos[item.id] = (uint32_t)pos;
}

static void
qs_heap_up(struct qs_heap *h, size_t pos)
{
	struct qs_heap_item item = h->items[pos];

	while (pos > 0) {
		size_t parent = (pos - 1) / 2;

		if (h->items[parent].key <= item.key)
			break;
		qs_heap_set(h, pos, h->items[parent]);
		pos = parent;
	}
	qs_heap_set(h, pos, item);
}

static void
qs_heap_down(struct qs_heap *h, size_t pos)
{
	struct qs_heap_item item = h->items[pos];

	for (;;) {
		size_t child = 2 * pos + 1;

		if (child >= h->len)
			break;
		if (child + 1 < h->len && h->items[child + 1].key < h->items[child].key)
			child++;
		if (item.key <= h->items[child].key)
			break;
		qs_heap_set(h, pos, h->items[child]);
		pos = child;
	}
	qs_heap_set(h, pos, item);
}

/* Restore the order around `pos`, whose item was just replaced. */
static void
qs_heap_fix(struct qs_heap *h, size_t pos)
{
	if (pos > 0 && h->items[(pos - 1) / 2].key > h->items[pos].key)
		qs_heap_up(h, pos);
	else
		qs_heap_down(h, pos);
}

/* Where the held `id` sits. */
static size_t
qs_heap_pos(const struct qs_heap *h, uint32_t id)
{
	if (id >= h->cap || h->pos[id] == QS_HEAP_NONE)
		qs_heap_die("id not held");
	return h->pos[id];
}

int
qs_heap_new(struct qs_heap **out)
{
	struct qs_heap *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	*out = h;
	return 0;
}

void
qs_heap_free(struct qs_heap *h)
{
	if (!h)
		return;
	free(h->items);
	free(h->pos);
	free(h);
}

int
qs_heap_reserve(struct qs_heap *h, size_t cap)
{
	struct qs_heap_item *items;
	uint32_t *pos;
	size_t i;

	if (cap <= h->cap)
		return 0;
	if (cap > QS_HEAP_NONE || cap > SIZE_MAX / sizeof(*items))
		return -ENOMEM;
	/* Until both have grown the old capacity stands; a larger array is
	 * simply reused by the next attempt. */
	items = realloc(h->items, cap * sizeof(*items));
	if (!items)
		return -ENOMEM;
	h->items = items;
	pos = realloc(h->pos, cap * sizeof(*pos));
	if (!pos)
		return -ENOMEM;
	h->pos = pos;
	for (i = h->cap; i < cap; i++)
		h->pos[i] = QS_HEAP_NONE;
	h->cap = cap;
	return 0;
}

void *
qs_heap_grow_items(struct qs_heap *h, void *items, size_t item_bytes, uint32_t *cap)
{
	size_t n = *cap ? (size_t)*cap * 2 : QS_HEAP_MIN_CAP;
	void *grown;

	/* The heap first: should the items fail to grow, its larger capacity
	 * is only ahead of them, and the next attempt asks for the same. */
	if (*cap >= (QS_HEAP_NONE - 1) / 2 || n > SIZE_MAX / item_bytes ||
	    qs_heap_reserve(h, n) != 0)
		return NULL;
	grown = realloc(items, n * item_bytes);
	if (grown)
		*cap = (uint32_t)n;
	return grown;
}

void
qs_heap_push(struct qs_heap *h, uint32_t id, uint64_t key)
{
	struct qs_heap_item item = {key, id};

	/* Each held id has one item, so len < cap while id is not held. */
	if (id >= h->cap || h->pos[id] != QS_HEAP_NONE)
		qs_heap_die("push of an id out of range or held");
	qs_heap_set(h, h->len++, item);
	qs_heap_up(h, h->len - 1);
}

void
qs_heap_update(struct qs_heap *h, uint32_t id, uint64_t key)
{
	size_t pos = qs_heap_pos(h, id);

	h->items[pos].key = key;
	qs_heap_fix(h, pos);
}

void
qs_heap_remove(struct qs_heap *h, uint32_t id)
{
	size_t pos = qs_heap_pos(h, id);

	h->pos[id] = QS_HEAP_NONE;
	h->len--;
	if (pos == h->len)
		return;
	qs_heap_set(h, pos, h->items[h->len]);
	qs_heap_fix(h, pos);
}

size_t
qs_heap_len(const struct qs_heap *h)
{
	return h->len;
}

uint64_t
qs_heap_min(const struct qs_heap *h)
{
	return h->len ? h->items[0].key : UINT64_MAX;
}

uint32_t
qs_heap_due(const struct qs_heap *h, uint64_t limit)
{
	return h->len && h->items[0].key <= limit ? h->items[0].id : QS_HEAP_NONE;
}
