#include "core/cache.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/*
 * Layout. Each entry is one allocation: the entry, then its slice array,
 * then the transaction bytes the slices point to. An open-addressing table
 * with linear probing and backward-shift deletion (no tombstones), at most
 * 3/4 full, maps a digest to its entry. The entries are on a doubly linked
 * list from most to least recently used, and in a binary min-heap on
 * expiration.
 */

#define QS_CACHE_MIN_SLOTS 64
#define QS_CACHE_MIN_HEAP  64

struct qs_cache_entry {
	struct qs_batch_info info;
	uint64_t charge;
	struct qs_cache_entry *newer, *older; /* the recency list */
	size_t heap_pos;
	size_t n_txns;
	ProtobufCBinaryData *txns; /* right after the entry */
};

struct qs_cache_slot {
	uint64_t hash;                /* of the digest; its home slot is hash & mask */
	struct qs_cache_entry *entry; /* NULL: empty */
};

struct qs_cache {
	uint64_t seed;
	uint64_t budget;
	uint64_t bytes;
	uint64_t evictions;
	size_t count;

	struct qs_cache_slot *tab;
	size_t mask; /* slots - 1, slots a power of two */

	struct qs_cache_entry *newest, *oldest;

	struct qs_cache_entry **heap;
	size_t heap_cap;
};

static void
qs_cache_die(const char *what)
{
	fprintf(stderr, "qs_cache: %s\n", what);
	abort();
}

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t
qs_cache_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* Digests are uniform, but a peer chooses them: key the hash with the seed. */
static uint64_t
qs_cache_digest_hash(const struct qs_cache *c, const uint8_t *digest)
{
	uint64_t x;

	memcpy(&x, digest, sizeof(x));
	return qs_cache_mix(x ^ c->seed);
}

/* ---- digest table ---- */

/* The slot holding `digest`, or the empty slot where the probe stopped. */
static size_t
qs_cache_probe(const struct qs_cache *c, const uint8_t *digest, uint64_t hash)
{
	size_t i;

	for (i = hash & c->mask;; i = (i + 1) & c->mask) {
		const struct qs_cache_slot *s = &c->tab[i];

		if (!s->entry)
			return i;
		if (s->hash == hash && memcmp(s->entry->info.digest, digest, QS_DIGEST_BYTES) == 0)
			return i;
	}
}

static struct qs_cache_entry *
qs_cache_find(const struct qs_cache *c, const uint8_t *digest)
{
	return c->tab[qs_cache_probe(c, digest, qs_cache_digest_hash(c, digest))].entry;
}

/* Insert a digest known to be absent; the table has room. */
static void
qs_cache_tab_insert(struct qs_cache_slot *tab, size_t mask, uint64_t hash, struct qs_cache_entry *e)
{
	size_t i = hash & mask;

	while (tab[i].entry)
		i = (i + 1) & mask;
	tab[i].hash = hash;
	tab[i].entry = e;
}

/* Whether home slot `home` lies cyclically in (hole, j]: then the item at j
 * may not move back into the hole. */
static int
qs_cache_between(size_t hole, size_t home, size_t j)
{
	if (hole <= j)
		return hole < home && home <= j;
	return hole < home || home <= j;
}

static void
qs_cache_tab_delete(struct qs_cache *c, size_t hole)
{
	size_t j = hole;

	for (;;) {
		j = (j + 1) & c->mask;
		if (!c->tab[j].entry)
			break;
		if (qs_cache_between(hole, c->tab[j].hash & c->mask, j))
			continue;
		c->tab[hole] = c->tab[j];
		hole = j;
	}
	c->tab[hole].entry = NULL;
}

static int
qs_cache_grow_tab(struct qs_cache *c)
{
	size_t slots = c->mask + 1, i;
	struct qs_cache_slot *tab;

	if (slots > SIZE_MAX / 2 / sizeof(*tab))
		return -ENOMEM;
	tab = calloc(2 * slots, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < slots; i++) {
		if (c->tab[i].entry)
			qs_cache_tab_insert(tab, 2 * slots - 1, c->tab[i].hash, c->tab[i].entry);
	}
	free(c->tab);
	c->tab = tab;
	c->mask = 2 * slots - 1;
	return 0;
}

/* ---- expiration heap ---- */

static void
qs_cache_heap_set(struct qs_cache *c, size_t pos, struct qs_cache_entry *e)
{
	c->heap[pos] = e;
	e->heap_pos = pos;
}

static void
qs_cache_heap_up(struct qs_cache *c, size_t pos)
{
	struct qs_cache_entry *e = c->heap[pos];

	while (pos > 0) {
		size_t parent = (pos - 1) / 2;

		if (c->heap[parent]->info.expiration_us <= e->info.expiration_us)
			break;
		qs_cache_heap_set(c, pos, c->heap[parent]);
		pos = parent;
	}
	qs_cache_heap_set(c, pos, e);
}

static void
qs_cache_heap_down(struct qs_cache *c, size_t pos)
{
	struct qs_cache_entry *e = c->heap[pos];

	for (;;) {
		size_t child = 2 * pos + 1;

		if (child >= c->count)
			break;
		if (child + 1 < c->count &&
		    c->heap[child + 1]->info.expiration_us < c->heap[child]->info.expiration_us)
			child++;
		if (e->info.expiration_us <= c->heap[child]->info.expiration_us)
			break;
		qs_cache_heap_set(c, pos, c->heap[child]);
		pos = child;
	}
	qs_cache_heap_set(c, pos, e);
}

static int
qs_cache_grow_heap(struct qs_cache *c)
{
	struct qs_cache_entry **heap;
	size_t cap = c->heap_cap ? c->heap_cap * 2 : QS_CACHE_MIN_HEAP;

	if (cap > SIZE_MAX / sizeof(*heap))
		return -ENOMEM;
	heap = realloc(c->heap, cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	c->heap = heap;
	c->heap_cap = cap;
	return 0;
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

/* Take the entry in `slot` out of every structure and free it. */
static void
qs_cache_drop(struct qs_cache *c, size_t slot)
{
	struct qs_cache_entry *e = c->tab[slot].entry;
	size_t pos = e->heap_pos;

	qs_cache_tab_delete(c, slot);
	qs_cache_unlink(c, e);
	c->count--;
	if (pos != c->count) {
		qs_cache_heap_set(c, pos, c->heap[c->count]);
		if (pos > 0 &&
		    c->heap[(pos - 1) / 2]->info.expiration_us > c->heap[pos]->info.expiration_us)
			qs_cache_heap_up(c, pos);
		else
			qs_cache_heap_down(c, pos);
	}
	c->bytes -= e->charge;
	free(e);
}

static void
qs_cache_drop_entry(struct qs_cache *c, struct qs_cache_entry *e)
{
	size_t slot = qs_cache_probe(c, e->info.digest, qs_cache_digest_hash(c, e->info.digest));

	if (c->tab[slot].entry != e)
		qs_cache_die("entry missing from the digest table");
	qs_cache_drop(c, slot);
}

/* Evict least recently used entries until `charge` more bytes fit. */
static void
qs_cache_evict_for(struct qs_cache *c, uint64_t charge)
{
	while (c->oldest && (c->bytes > c->budget || charge > c->budget - c->bytes)) {
		qs_cache_drop_entry(c, c->oldest);
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

/* Allocate an entry holding a copy of the payload, checked already. */
static struct qs_cache_entry *
qs_cache_entry_new(const struct qs_batch_info *info, const ProtobufCBinaryData *txns, size_t n_txns,
                   uint64_t charge)
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
	size = bytes_off + (size_t)info->num_bytes;
	e = malloc(size);
	if (!e)
		return NULL;
	e->info = *info;
	e->charge = charge;
	e->n_txns = n_txns;
	e->txns = (ProtobufCBinaryData *)((uint8_t *)e + slices_off);
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
	c->seed = hash_seed;
	c->budget = budget_bytes;
	c->tab = calloc(QS_CACHE_MIN_SLOTS, sizeof(*c->tab));
	if (!c->tab)
		goto out;
	c->mask = QS_CACHE_MIN_SLOTS - 1;
	if (qs_cache_grow_heap(c) != 0)
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
		free(e);
	}
	free(c->tab);
	free(c->heap);
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

int
qs_cache_put(struct qs_cache *c, const struct qs_batch_info *info, const ProtobufCBinaryData *txns,
             size_t n_txns)
{
	struct qs_cache_entry *e = NULL;
	uint64_t hash, charge;
	int rc;

	rc = qs_cache_check_payload(info, txns, n_txns);
	if (rc)
		goto out;
	hash = qs_cache_digest_hash(c, info->digest);
	e = c->tab[qs_cache_probe(c, info->digest, hash)].entry;
	if (e) {
		qs_cache_touch(c, e);
		if (info->expiration_us > e->info.expiration_us) {
			e->info.expiration_us = info->expiration_us;
			qs_cache_heap_down(c, e->heap_pos);
		}
		e = NULL;
		rc = QS_EEXISTS;
		goto out;
	}
	charge = qs_cache_charge(info, n_txns);
	if (charge == UINT64_MAX || charge > c->budget) {
		rc = QS_ELIMIT;
		goto out;
	}
	rc = -ENOMEM;
	if (c->count + 1 > (c->mask + 1) / 4 * 3 && qs_cache_grow_tab(c) != 0)
		goto out;
	if (c->count == c->heap_cap && qs_cache_grow_heap(c) != 0)
		goto out;
	e = qs_cache_entry_new(info, txns, n_txns, charge);
	if (!e)
		goto out;
	qs_cache_evict_for(c, charge);
	qs_cache_tab_insert(c->tab, c->mask, hash, e);
	qs_cache_push_newest(c, e);
	qs_cache_heap_set(c, c->count, e);
	c->count++;
	qs_cache_heap_up(c, c->count - 1);
	c->bytes += charge;
	e = NULL;
	rc = 0;
out:
	free(e);
	return rc;
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
	size_t slot = qs_cache_probe(c, digest, qs_cache_digest_hash(c, digest));

	if (c->tab[slot].entry)
		qs_cache_drop(c, slot);
}

size_t
qs_cache_expire(struct qs_cache *c, uint64_t cutoff_us)
{
	size_t n = 0;

	while (c->count && c->heap[0]->info.expiration_us <= cutoff_us) {
		qs_cache_drop_entry(c, c->heap[0]);
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
