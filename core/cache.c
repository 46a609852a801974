#include "core/cache.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtable.h"
#include "core/error.h"
#include "core/heap.h"

/*
 * Layout. Each entry is one allocation: the entry, then its slice array,
 * then the transaction bytes the slices point to. Entries are named by ids,
 * indexes into an array of references to them; freed ids go on a free list.
 * A hash table (core/dtable.h) maps a digest to an id. The entries are on a
 * doubly linked list from most to least recently used, and in a min-heap on
 * expiration (core/heap.h) whose capacity is that of the id array.
 */

#define QS_CACHE_NONE UINT32_MAX

struct qs_cache_entry {
	struct qs_batch_info info;
	uint64_t charge;
	struct qs_cache_entry *newer, *older; /* the recency list */
	uint32_t id;
	size_t n_txns;
	ProtobufCBinaryData *txns; /* right after the entry */
	/* NULL: the payload follows the slices, in the entry's allocation.
	 * Else each transaction is a block of its own, freed with this. */
	void (*free_block)(void *block);
};

struct qs_cache_ref {
	struct qs_cache_entry *entry; /* NULL while the id is free */
	uint32_t next_free;           /* while free */
};

struct qs_cache {
	uint64_t budget;
	uint64_t bytes;
	uint64_t evictions;
	size_t count;

	struct qs_cache_ref *refs;
	uint32_t ids_cap;
	uint32_t ids_used; /* ids below this have been handed out */
	uint32_t free_head;

	struct qs_dtable *by_digest;
	struct qs_heap *heap; /* every entry; ids_cap ids */

	struct qs_cache_entry *newest, *oldest;
};

static void
qs_cache_die(const char *what)
{
	fprintf(stderr, "qs_cache: %s\n", what);
	abort();
}

static int
qs_cache_digest_is(const void *arg, uint32_t id, const void *key)
{
	const struct qs_cache *c = arg;

	return memcmp(c->refs[id].entry->info.digest, key, QS_DIGEST_BYTES) == 0;
}

static struct qs_cache_entry *
qs_cache_find(const struct qs_cache *c, const uint8_t *digest)
{
	uint32_t id = qs_dtable_lookup(c->by_digest, digest);

	return id == QS_DTABLE_NONE ? NULL : c->refs[id].entry;
}

/* Make room for one more entry in the ids, the heap and the table, so that
 * the insertion that follows cannot fail. Nothing else changes. */
static int
qs_cache_reserve(struct qs_cache *c)
{
	struct qs_cache_ref *refs;

	if (c->free_head == QS_CACHE_NONE && c->ids_used == c->ids_cap) {
		refs = qs_heap_grow_items(c->heap, c->refs, sizeof(*refs), &c->ids_cap);
		if (!refs)
			return -ENOMEM;
		c->refs = refs;
	}
	return qs_dtable_reserve(c->by_digest, 1);
}

/* ---- recency list ---- */

static void
qs_cache_unlink(struct qs_cache *c, struct qs_cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
}

static void
qs_cache_push_newest(struct qs_cache *c, struct qs_cache_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

static void
qs_cache_touch(struct qs_cache *c, struct qs_cache_entry *e)
{
	if (c->newest == e)
		return;
	qs_cache_unlink(c, e);
	qs_cache_push_newest(c, e);
}

/* ---- entries ---- */

/* Free an entry and, when it took them, its transactions' blocks. */
static void
qs_cache_entry_free(struct qs_cache_entry *e)
{
	if (e->free_block) {
		for (size_t i = 0; i < e->n_txns; i++)
			if (e->txns[i].len)
				e->free_block(e->txns[i].data);
	}
	free(e);
}

/* Take the entry out of every structure and free it. */
static void
qs_cache_drop(struct qs_cache *c, struct qs_cache_entry *e)
{
	if (qs_dtable_remove(c->by_digest, qs_dtable_hash(c->by_digest, e->info.digest), e->id))
		qs_cache_die("entry missing from the digest table");
	qs_heap_remove(c->heap, e->id);
	qs_cache_unlink(c, e);
	c->refs[e->id].entry = NULL;
	c->refs[e->id].next_free = c->free_head;
	c->free_head = e->id;
	c->count--;
	c->bytes -= e->charge;
	qs_cache_entry_free(e);
}

/* Evict least recently used entries until `charge` more bytes fit. */
static void
qs_cache_evict_for(struct qs_cache *c, uint64_t charge)
{
	while (c->oldest && (c->bytes > c->budget || charge > c->budget - c->bytes)) {
		qs_cache_drop(c, c->oldest);
		c->evictions++;
	}
}

/* Check the payload against its info: 0 or -EINVAL. */
static int
qs_cache_check_payload(const struct qs_batch_info *info, const ProtobufCBinaryData *txns,
                       size_t n_txns)
{
	uint64_t sum = 0;
	size_t i;

	if (n_txns != info->num_txns)
		return -EINVAL;
	for (i = 0; i < n_txns; i++) {
		if (txns[i].len && !txns[i].data)
			return -EINVAL;
		if (txns[i].len > info->num_bytes - sum)
			return -EINVAL;
		sum += txns[i].len;
	}
	return sum == info->num_bytes ? 0 : -EINVAL;
}

/*
 * Allocate an entry for a payload, checked already: with a copy of it, or,
 * with `free_block`, with its slices only (the blocks become the entry's).
 */
static struct qs_cache_entry *
qs_cache_entry_new(const struct qs_batch_info *info, const ProtobufCBinaryData *txns, size_t n_txns,
                   uint64_t charge, void (*free_block)(void *))
{
	struct qs_cache_entry *e;
	size_t slices_off, bytes_off, size, i;
	uint8_t *p;

	slices_off = (sizeof(*e) + alignof(ProtobufCBinaryData) - 1) /
	             alignof(ProtobufCBinaryData) * alignof(ProtobufCBinaryData);
	if (n_txns > (SIZE_MAX - slices_off) / sizeof(*txns))
		return NULL;
	bytes_off = slices_off + n_txns * sizeof(*txns);
	if (info->num_bytes > SIZE_MAX - bytes_off)
		return NULL;
	size = bytes_off + (free_block ? 0 : (size_t)info->num_bytes);
	e = malloc(size);
	if (!e)
		return NULL;
	e->info = *info;
	e->charge = charge;
	e->n_txns = n_txns;
	e->txns = (ProtobufCBinaryData *)((uint8_t *)e + slices_off);
	e->free_block = free_block;
	if (free_block) {
		for (i = 0; i < n_txns; i++) {
			e->txns[i] = txns[i];
			if (txns[i].len)
				continue;
			/* Empty transactions point somewhere too, as copied ones do. */
			if (txns[i].data)
				free_block(txns[i].data);
			e->txns[i].data = (uint8_t *)e->txns;
		}
		return e;
	}
	p = (uint8_t *)e + bytes_off;
	for (i = 0; i < n_txns; i++) {
		e->txns[i].len = txns[i].len;
		e->txns[i].data = p;
		if (txns[i].len) {
			memcpy(p, txns[i].data, txns[i].len);
			p += txns[i].len;
		}
	}
	return e;
}

/* ---- API ---- */

int
qs_cache_new(uint64_t budget_bytes, uint64_t hash_seed, struct qs_cache **out)
{
	struct qs_cache *c = NULL;
	int rc = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->budget = budget_bytes;
	c->free_head = QS_CACHE_NONE;
	if (qs_dtable_new(hash_seed, qs_cache_digest_is, c, &c->by_digest) != 0 ||
	    qs_heap_new(&c->heap) != 0 || qs_cache_reserve(c) != 0)
		goto out;
	*out = c;
	c = NULL;
	rc = 0;
out:
	qs_cache_free(c);
	return rc;
}

void
qs_cache_free(struct qs_cache *c)
{
	struct qs_cache_entry *e, *older;

	if (!c)
		return;
	for (e = c->newest; e; e = older) {
		older = e->older;
		qs_cache_entry_free(e);
	}
	free(c->refs);
	qs_dtable_free(c->by_digest);
	qs_heap_free(c->heap);
	free(c);
}

uint64_t
qs_cache_charge(const struct qs_batch_info *info, size_t n_txns)
{
	uint64_t fixed;

	if (n_txns > (UINT64_MAX - QS_CACHE_ENTRY_OVERHEAD) / sizeof(ProtobufCBinaryData))
		return UINT64_MAX;
	fixed = (uint64_t)n_txns * sizeof(ProtobufCBinaryData) + QS_CACHE_ENTRY_OVERHEAD;
	if (info->num_bytes >= UINT64_MAX - fixed)
		return UINT64_MAX;
	return info->num_bytes + fixed;
}

static int
qs_cache_insert(struct qs_cache *c, const struct qs_batch_info *info,
                const ProtobufCBinaryData *txns, size_t n_txns, void (*free_block)(void *))
{
	struct qs_cache_entry *e = NULL;
	uint64_t charge;
	uint32_t id;
	int rc;

	rc = qs_cache_check_payload(info, txns, n_txns);
	if (rc)
		goto out;
	e = qs_cache_find(c, info->digest);
	if (e) {
		qs_cache_touch(c, e);
		if (info->expiration_us > e->info.expiration_us) {
			e->info.expiration_us = info->expiration_us;
			qs_heap_update(c->heap, e->id, e->info.expiration_us);
		}
		e = NULL;
		rc = QS_EEXISTS;
		goto out;
	}
	charge = qs_cache_charge(info, n_txns);
	if (free_block && charge != UINT64_MAX) {
		uint64_t blocks = (uint64_t)n_txns * QS_CACHE_BLOCK_OVERHEAD;

		charge = blocks / QS_CACHE_BLOCK_OVERHEAD != n_txns || charge > UINT64_MAX - blocks
		             ? UINT64_MAX
		             : charge + blocks;
	}
	if (charge == UINT64_MAX || charge > c->budget) {
		rc = QS_ELIMIT;
		goto out;
	}
	rc = -ENOMEM;
	if (qs_cache_reserve(c) != 0)
		goto out;
	e = qs_cache_entry_new(info, txns, n_txns, charge, free_block);
	if (!e)
		goto out;
	/* Eviction frees ids: take one after it. */
	qs_cache_evict_for(c, charge);
	if (c->free_head != QS_CACHE_NONE) {
		id = c->free_head;
		c->free_head = c->refs[id].next_free;
	} else {
		id = c->ids_used++;
	}
	e->id = id;
	c->refs[id].entry = e;
	qs_dtable_insert(c->by_digest, qs_dtable_hash(c->by_digest, info->digest), id);
	qs_cache_push_newest(c, e);
	qs_heap_push(c->heap, id, e->info.expiration_us);
	c->count++;
	c->bytes += charge;
	rc = 0;
out:
	/* Not cached: blocks given to the cache go now. */
	if (rc && free_block) {
		for (size_t i = 0; i < n_txns; i++)
			if (txns[i].data)
				free_block(txns[i].data);
	}
	return rc;
}

int
qs_cache_put(struct qs_cache *c, const struct qs_batch_info *info, const ProtobufCBinaryData *txns,
             size_t n_txns)
{
	return qs_cache_insert(c, info, txns, n_txns, NULL);
}

int
qs_cache_put_taken(struct qs_cache *c, const struct qs_batch_info *info,
                   const ProtobufCBinaryData *txns, size_t n_txns, void (*free_block)(void *))
{
	return qs_cache_insert(c, info, txns, n_txns, free_block);
}

int
qs_cache_get(struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES], struct qs_cached *out)
{
	struct qs_cache_entry *e = qs_cache_find(c, digest);

	if (!e)
		return QS_ENOTFOUND;
	qs_cache_touch(c, e);
	out->info = &e->info;
	out->txns = e->txns;
	out->n_txns = e->n_txns;
	return 0;
}

int
qs_cache_contains(const struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES])
{
	return qs_cache_find(c, digest) != NULL;
}

void
qs_cache_remove(struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES])
{
	struct qs_cache_entry *e = qs_cache_find(c, digest);

	if (e)
		qs_cache_drop(c, e);
}

size_t
qs_cache_expire(struct qs_cache *c, uint64_t cutoff_us)
{
	size_t n = 0;
	uint32_t id;

	while ((id = qs_heap_due(c->heap, cutoff_us)) != QS_HEAP_NONE) {
		qs_cache_drop(c, c->refs[id].entry);
		n++;
	}
	return n;
}

void
qs_cache_set_budget(struct qs_cache *c, uint64_t budget_bytes)
{
	c->budget = budget_bytes;
	qs_cache_evict_for(c, 0);
}

uint64_t
qs_cache_bytes(const struct qs_cache *c)
{
	return c->bytes;
}

size_t
qs_cache_count(const struct qs_cache *c)
{
	return c->count;
}

uint64_t
qs_cache_evictions(const struct qs_cache *c)
{
	return c->evictions;
}
