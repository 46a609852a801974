#include "core/index.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/error.h"

/*
 * Layout. Entries live in one array and are named by their index (an id);
 * freed ids go on a free list. Two open-addressing hash tables with linear
 * probing and backward-shift deletion (no tombstones) map a digest and an
 * (author, batch_id) to an id; both are kept at most 3/4 full and double
 * when they would pass it. Durable entries are also in a binary min-heap on
 * their expiration, whose capacity is that of the entry array, so that a
 * completed write never needs to allocate.
 *
 * An entry is alive while it is durable or has a write in flight; it is in
 * the digest table for as long as it is alive.
 */

#define QS_INDEX_NONE        UINT32_MAX
#define QS_INDEX_MIN_SLOTS   64
#define QS_INDEX_MIN_ENTRIES 64

enum {
	QS_INDEX_DURABLE = 1,     /* in the heap, charged to the disk quota */
	QS_INDEX_BY_BATCH_ID = 2, /* in the (author, batch_id) table */
};

struct qs_index_entry {
	struct qs_batch_info info; /* expiration_us: the latest durable one */
	uint32_t author;
	uint32_t n_pending; /* writes admitted and not completed */
	uint32_t heap_pos;  /* while durable; the next free id while free */
	uint32_t flags;
};

struct qs_index_dslot {
	uint64_t hash; /* of the digest; its home slot is hash & mask */
	uint32_t id;   /* QS_INDEX_NONE: empty */
};

struct qs_index_aslot {
	uint64_t batch_id;
	uint32_t author;
	uint32_t id; /* QS_INDEX_NONE: empty */
};

struct qs_index_heap_item {
	uint64_t expiration_us;
	uint32_t id;
};

struct qs_index {
	struct qs_quotas quotas;
	uint64_t seed;
	size_t n_authors;
	struct qs_author_usage *usage;

	struct qs_index_entry *entries;
	uint32_t entries_cap;
	uint32_t entries_used; /* ids below this have been handed out */
	uint32_t free_head;
	uint32_t n_live;

	struct qs_index_dslot *dtab;
	size_t dmask; /* slots - 1, slots a power of two */
	struct qs_index_aslot *atab;
	size_t amask;
	size_t a_count;

	struct qs_index_heap_item *heap; /* entries_cap items */
	size_t heap_len;

	size_t n_durable;
	uint64_t durable_bytes;
	size_t n_pending;
};

static void
qs_index_die(const char *what)
{
	fprintf(stderr, "qs_index: %s\n", what);
	abort();
}

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t
qs_index_mix(uint64_t x)
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
qs_index_digest_hash(const struct qs_index *ix, const uint8_t *digest)
{
	uint64_t x;

	memcpy(&x, digest, sizeof(x));
	return qs_index_mix(x ^ ix->seed);
}

static uint64_t
qs_index_batch_id_hash(const struct qs_index *ix, uint32_t author, uint64_t batch_id)
{
	return qs_index_mix(batch_id ^ qs_index_mix(ix->seed + author + 1));
}

/* ---- digest table ---- */

/* The slot holding `digest`, or the empty slot where the probe stopped. */
static size_t
qs_index_dprobe(const struct qs_index *ix, const uint8_t *digest, uint64_t hash)
{
	size_t i;

	for (i = hash & ix->dmask;; i = (i + 1) & ix->dmask) {
		const struct qs_index_dslot *s = &ix->dtab[i];

		if (s->id == QS_INDEX_NONE)
			return i;
		if (s->hash == hash &&
		    memcmp(ix->entries[s->id].info.digest, digest, QS_DIGEST_BYTES) == 0)
			return i;
	}
}

static uint32_t
qs_index_dfind(const struct qs_index *ix, const uint8_t *digest)
{
	return ix->dtab[qs_index_dprobe(ix, digest, qs_index_digest_hash(ix, digest))].id;
}

/* Insert a digest known to be absent; the table has room. */
static void
qs_index_dinsert(struct qs_index_dslot *tab, size_t mask, uint64_t hash, uint32_t id)
{
	size_t i = hash & mask;

	while (tab[i].id != QS_INDEX_NONE)
		i = (i + 1) & mask;
	tab[i].hash = hash;
	tab[i].id = id;
}

/* Whether home slot `home` lies cyclically in (hole, j]: then the item at j
 * may not move back into the hole. */
static int
qs_index_between(size_t hole, size_t home, size_t j)
{
	if (hole <= j)
		return hole < home && home <= j;
	return hole < home || home <= j;
}

static void
qs_index_ddelete(struct qs_index *ix, size_t hole)
{
	size_t j = hole;

	for (;;) {
		j = (j + 1) & ix->dmask;
		if (ix->dtab[j].id == QS_INDEX_NONE)
			break;
		if (qs_index_between(hole, ix->dtab[j].hash & ix->dmask, j))
			continue;
		ix->dtab[hole] = ix->dtab[j];
		hole = j;
	}
	ix->dtab[hole].id = QS_INDEX_NONE;
}

/* ---- (author, batch_id) table ---- */

static size_t
qs_index_aprobe(const struct qs_index *ix, uint32_t author, uint64_t batch_id)
{
	size_t i;

	for (i = qs_index_batch_id_hash(ix, author, batch_id) & ix->amask;;
	     i = (i + 1) & ix->amask) {
		const struct qs_index_aslot *s = &ix->atab[i];

		if (s->id == QS_INDEX_NONE || (s->batch_id == batch_id && s->author == author))
			return i;
	}
}

static void
qs_index_ainsert(const struct qs_index *ix, struct qs_index_aslot *tab, size_t mask,
                 uint32_t author, uint64_t batch_id, uint32_t id)
{
	size_t i = qs_index_batch_id_hash(ix, author, batch_id) & mask;

	while (tab[i].id != QS_INDEX_NONE)
		i = (i + 1) & mask;
	tab[i].batch_id = batch_id;
	tab[i].author = author;
	tab[i].id = id;
}

static void
qs_index_adelete(struct qs_index *ix, size_t hole)
{
	size_t j = hole;

	for (;;) {
		const struct qs_index_aslot *s;
		size_t home;

		j = (j + 1) & ix->amask;
		s = &ix->atab[j];
		if (s->id == QS_INDEX_NONE)
			break;
		home = qs_index_batch_id_hash(ix, s->author, s->batch_id) & ix->amask;
		if (qs_index_between(hole, home, j))
			continue;
		ix->atab[hole] = *s;
		hole = j;
	}
	ix->atab[hole].id = QS_INDEX_NONE;
}

/* ---- expiration heap ---- */

static void
qs_index_heap_set(struct qs_index *ix, size_t pos, struct qs_index_heap_item item)
{
	ix->heap[pos] = item;
	ix->entries[item.id].heap_pos = (uint32_t)pos;
}

static void
qs_index_heap_up(struct qs_index *ix, size_t pos)
{
	struct qs_index_heap_item item = ix->heap[pos];

	while (pos > 0) {
		size_t parent = (pos - 1) / 2;

		if (ix->heap[parent].expiration_us <= item.expiration_us)
			break;
		qs_index_heap_set(ix, pos, ix->heap[parent]);
		pos = parent;
	}
	qs_index_heap_set(ix, pos, item);
}

static void
qs_index_heap_down(struct qs_index *ix, size_t pos)
{
	struct qs_index_heap_item item = ix->heap[pos];

	for (;;) {
		size_t child = 2 * pos + 1;

		if (child >= ix->heap_len)
			break;
		if (child + 1 < ix->heap_len &&
		    ix->heap[child + 1].expiration_us < ix->heap[child].expiration_us)
			child++;
		if (item.expiration_us <= ix->heap[child].expiration_us)
			break;
		qs_index_heap_set(ix, pos, ix->heap[child]);
		pos = child;
	}
	qs_index_heap_set(ix, pos, item);
}

static void
qs_index_heap_push(struct qs_index *ix, uint32_t id)
{
	struct qs_index_heap_item item = {ix->entries[id].info.expiration_us, id};

	/* Capacity is entries_cap and each live entry has at most one item. */
	qs_index_heap_set(ix, ix->heap_len++, item);
	qs_index_heap_up(ix, ix->heap_len - 1);
}

static void
qs_index_heap_remove(struct qs_index *ix, size_t pos)
{
	ix->heap_len--;
	if (pos == ix->heap_len)
		return;
	qs_index_heap_set(ix, pos, ix->heap[ix->heap_len]);
	if (pos > 0 && ix->heap[(pos - 1) / 2].expiration_us > ix->heap[pos].expiration_us)
		qs_index_heap_up(ix, pos);
	else
		qs_index_heap_down(ix, pos);
}

/* ---- growth ---- */

static int
qs_index_grow_entries(struct qs_index *ix)
{
	struct qs_index_entry *entries;
	struct qs_index_heap_item *heap;
	size_t cap;

	if (ix->entries_cap >= (QS_INDEX_NONE - 1) / 2)
		return -ENOMEM;
	cap = ix->entries_cap ? (size_t)ix->entries_cap * 2 : QS_INDEX_MIN_ENTRIES;
	if (cap > SIZE_MAX / sizeof(*entries))
		return -ENOMEM;
	entries = realloc(ix->entries, cap * sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	ix->entries = entries;
	/* Until the heap has grown too the old capacity stands; the larger
	 * entry array is simply reused by the next attempt. */
	heap = realloc(ix->heap, cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	ix->heap = heap;
	ix->entries_cap = (uint32_t)cap;
	return 0;
}

static int
qs_index_grow_dtab(struct qs_index *ix)
{
	size_t slots = ix->dmask + 1, i;
	struct qs_index_dslot *tab;

	if (slots > SIZE_MAX / 2 / sizeof(*tab))
		return -ENOMEM;
	tab = malloc(2 * slots * sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < 2 * slots; i++)
		tab[i].id = QS_INDEX_NONE;
	for (i = 0; i < slots; i++) {
		if (ix->dtab[i].id != QS_INDEX_NONE)
			qs_index_dinsert(tab, 2 * slots - 1, ix->dtab[i].hash, ix->dtab[i].id);
	}
	free(ix->dtab);
	ix->dtab = tab;
	ix->dmask = 2 * slots - 1;
	return 0;
}

static int
qs_index_grow_atab(struct qs_index *ix)
{
	size_t slots = ix->amask + 1, i;
	struct qs_index_aslot *tab;

	if (slots > SIZE_MAX / 2 / sizeof(*tab))
		return -ENOMEM;
	tab = malloc(2 * slots * sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < 2 * slots; i++)
		tab[i].id = QS_INDEX_NONE;
	for (i = 0; i < slots; i++) {
		const struct qs_index_aslot *s = &ix->atab[i];

		if (s->id != QS_INDEX_NONE)
			qs_index_ainsert(ix, tab, 2 * slots - 1, s->author, s->batch_id, s->id);
	}
	free(ix->atab);
	ix->atab = tab;
	ix->amask = 2 * slots - 1;
	return 0;
}

/* Whether a table of `slots` slots may hold `n` items (at most 3/4 full). */
static int
qs_index_fits(size_t n, size_t slots)
{
	return n <= slots / 4 * 3;
}

/* Make room for one more entry in the array, the heap and both tables, so
 * that the insertion that follows cannot fail. Nothing else changes. */
static int
qs_index_reserve(struct qs_index *ix)
{
	int rc = 0;

	if (ix->free_head == QS_INDEX_NONE && ix->entries_used == ix->entries_cap) {
		rc = qs_index_grow_entries(ix);
		if (rc)
			goto out;
	}
	if (!qs_index_fits((size_t)ix->n_live + 1, ix->dmask + 1)) {
		rc = qs_index_grow_dtab(ix);
		if (rc)
			goto out;
	}
	if (!qs_index_fits(ix->a_count + 1, ix->amask + 1))
		rc = qs_index_grow_atab(ix);
out:
	return rc;
}

/* ---- entries ---- */

/* Create an entry for `info` (absent from the digest table) after
 * qs_index_reserve() succeeded. It is in neither the heap nor the
 * (author, batch_id) table yet. */
static uint32_t
qs_index_entry_new(struct qs_index *ix, uint32_t author, const struct qs_batch_info *info)
{
	struct qs_index_entry *e;
	uint32_t id;

	if (ix->free_head != QS_INDEX_NONE) {
		id = ix->free_head;
		ix->free_head = ix->entries[id].heap_pos;
	} else {
		id = ix->entries_used++;
	}
	e = &ix->entries[id];
	e->info = *info;
	e->author = author;
	e->n_pending = 0;
	e->heap_pos = QS_INDEX_NONE;
	e->flags = 0;
	qs_index_dinsert(ix->dtab, ix->dmask, qs_index_digest_hash(ix, info->digest), id);
	ix->n_live++;
	return id;
}

/* Record the entry under its (author, batch_id) unless another one is. */
static void
qs_index_entry_by_batch_id(struct qs_index *ix, uint32_t id)
{
	struct qs_index_entry *e = &ix->entries[id];
	size_t slot = qs_index_aprobe(ix, e->author, e->info.batch_id);

	if (ix->atab[slot].id != QS_INDEX_NONE)
		return;
	ix->atab[slot].batch_id = e->info.batch_id;
	ix->atab[slot].author = e->author;
	ix->atab[slot].id = id;
	ix->a_count++;
	e->flags |= QS_INDEX_BY_BATCH_ID;
}

/* Remove an entry that is neither durable nor being written. */
static void
qs_index_entry_free(struct qs_index *ix, uint32_t id)
{
	struct qs_index_entry *e = &ix->entries[id];
	size_t slot;

	if (e->flags & QS_INDEX_DURABLE || e->n_pending)
		qs_index_die("freeing an entry in use");
	slot = qs_index_dprobe(ix, e->info.digest, qs_index_digest_hash(ix, e->info.digest));
	if (ix->dtab[slot].id != id)
		qs_index_die("entry missing from the digest table");
	qs_index_ddelete(ix, slot);
	if (e->flags & QS_INDEX_BY_BATCH_ID) {
		slot = qs_index_aprobe(ix, e->author, e->info.batch_id);
		if (ix->atab[slot].id != id)
			qs_index_die("entry missing from the batch id table");
		qs_index_adelete(ix, slot);
		ix->a_count--;
	}
	e->flags = 0;
	e->heap_pos = ix->free_head;
	ix->free_head = id;
	ix->n_live--;
}

/* Make a not yet durable entry durable under `info`'s expiration. */
static void
qs_index_entry_make_durable(struct qs_index *ix, uint32_t id, const struct qs_batch_info *info)
{
	struct qs_index_entry *e = &ix->entries[id];
	struct qs_author_usage *u = &ix->usage[e->author];

	e->info.expiration_us = info->expiration_us;
	e->info.gas_bucket_start = info->gas_bucket_start;
	e->flags |= QS_INDEX_DURABLE;
	u->disk_bytes += e->info.num_bytes;
	u->disk_batches++;
	ix->n_durable++;
	ix->durable_bytes += e->info.num_bytes;
	qs_index_heap_push(ix, id);
}

/* A durable entry was written again: keep the later expiration. */
static void
qs_index_entry_extend(struct qs_index *ix, uint32_t id, const struct qs_batch_info *info)
{
	struct qs_index_entry *e = &ix->entries[id];

	if (info->expiration_us <= e->info.expiration_us)
		return;
	e->info.expiration_us = info->expiration_us;
	e->info.gas_bucket_start = info->gas_bucket_start;
	ix->heap[e->heap_pos].expiration_us = info->expiration_us;
	qs_index_heap_down(ix, e->heap_pos);
}

/* ---- quotas ---- */

/* Whether a + b + add <= limit, without overflow. */
static int
qs_index_within(uint64_t a, uint64_t b, uint64_t add, uint64_t limit)
{
	if (a > limit || b > limit - a)
		return 0;
	return add <= limit - a - b;
}

static int
qs_index_mem_fits(const struct qs_index *ix, const struct qs_author_usage *u, uint64_t bytes)
{
	return qs_index_within(u->mem_bytes, 0, bytes, ix->quotas.author_mem_bytes) &&
	       qs_index_within(u->mem_batches, 0, 1, ix->quotas.author_mem_batches);
}

static int
qs_index_disk_fits(const struct qs_index *ix, const struct qs_author_usage *u, uint64_t bytes)
{
	return qs_index_within(u->disk_bytes, u->mem_bytes, bytes, ix->quotas.author_disk_bytes) &&
	       qs_index_within(u->disk_batches, u->mem_batches, 1, ix->quotas.author_disk_batches);
}

/* ---- API ---- */

int
qs_index_new(size_t n_authors, const struct qs_quotas *quotas, uint64_t hash_seed,
             struct qs_index **out)
{
	struct qs_index *ix = NULL;
	size_t i;
	int rc = -EINVAL;

	if (n_authors == 0 || n_authors > INT_MAX)
		goto out;
	rc = -ENOMEM;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		goto out;
	ix->quotas = *quotas;
	ix->seed = hash_seed;
	ix->n_authors = n_authors;
	ix->free_head = QS_INDEX_NONE;
	ix->usage = calloc(n_authors, sizeof(*ix->usage));
	ix->dtab = malloc(QS_INDEX_MIN_SLOTS * sizeof(*ix->dtab));
	ix->atab = malloc(QS_INDEX_MIN_SLOTS * sizeof(*ix->atab));
	if (!ix->usage || !ix->dtab || !ix->atab)
		goto out;
	for (i = 0; i < QS_INDEX_MIN_SLOTS; i++) {
		ix->dtab[i].id = QS_INDEX_NONE;
		ix->atab[i].id = QS_INDEX_NONE;
	}
	ix->dmask = QS_INDEX_MIN_SLOTS - 1;
	ix->amask = QS_INDEX_MIN_SLOTS - 1;
	if (qs_index_grow_entries(ix) != 0)
		goto out;
	*out = ix;
	ix = NULL;
	rc = 0;
out:
	qs_index_free(ix);
	return rc;
}

void
qs_index_free(struct qs_index *ix)
{
	if (!ix)
		return;
	free(ix->usage);
	free(ix->entries);
	free(ix->dtab);
	free(ix->atab);
	free(ix->heap);
	free(ix);
}

void
qs_index_set_quotas(struct qs_index *ix, const struct qs_quotas *quotas)
{
	ix->quotas = *quotas;
}

enum qs_admit
qs_index_admit(struct qs_index *ix, int author, const struct qs_batch_info *info, int *reason)
{
	struct qs_author_usage *u;
	struct qs_index_entry *e;
	enum qs_admit admit = QS_ADMIT_REJECT;
	uint32_t id;
	int why;

	if (author < 0 || (size_t)author >= ix->n_authors) {
		why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_WRONG_AUTHOR;
		goto out;
	}
	u = &ix->usage[author];
	id = qs_index_dfind(ix, info->digest);
	if (id != QS_INDEX_NONE) {
		e = &ix->entries[id];
		/* The digest covers the author: another one means a caller bug
		 * or a collision; either way nothing of it is to be signed. */
		if (e->author != (uint32_t)author) {
			why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_WRONG_AUTHOR;
			goto out;
		}
		/* gas_bucket_start is not covered by the digest: another value for
		 * the same batch is a second BatchInfo the author made up, and
		 * signing it would vouch for a record this node never stored. */
		if (e->info.gas_bucket_start != info->gas_bucket_start) {
			u->equivocations++;
			why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_EQUIVOCATION;
			goto out;
		}
		if (e->flags & QS_INDEX_DURABLE && e->info.expiration_us >= info->expiration_us) {
			admit = QS_ADMIT_SIGN;
			goto out;
		}
		if (!qs_index_mem_fits(ix, u, e->info.num_bytes) || e->n_pending == UINT32_MAX) {
			why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVER_QUOTA;
			goto out;
		}
		u->mem_bytes += e->info.num_bytes;
		u->mem_batches++;
		e->n_pending++;
		ix->n_pending++;
		admit = QS_ADMIT_WRITE;
		goto out;
	}
	if (ix->atab[qs_index_aprobe(ix, (uint32_t)author, info->batch_id)].id != QS_INDEX_NONE) {
		u->equivocations++;
		why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_EQUIVOCATION;
		goto out;
	}
	if (!qs_index_mem_fits(ix, u, info->num_bytes) ||
	    !qs_index_disk_fits(ix, u, info->num_bytes)) {
		why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVER_QUOTA;
		goto out;
	}
	if (qs_index_reserve(ix) != 0) {
		why = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_OVERLOADED;
		goto out;
	}
	id = qs_index_entry_new(ix, (uint32_t)author, info);
	qs_index_entry_by_batch_id(ix, id);
	ix->entries[id].n_pending = 1;
	u->mem_bytes += info->num_bytes;
	u->mem_batches++;
	ix->n_pending++;
	admit = QS_ADMIT_WRITE;
out:
	if (admit == QS_ADMIT_REJECT)
		*reason = why;
	return admit;
}

void
qs_index_write_done(struct qs_index *ix, int author, const struct qs_batch_info *info, int ok)
{
	struct qs_author_usage *u;
	struct qs_index_entry *e;
	uint32_t id;

	if (author < 0 || (size_t)author >= ix->n_authors)
		qs_index_die("write_done: author out of range");
	id = qs_index_dfind(ix, info->digest);
	if (id == QS_INDEX_NONE || ix->entries[id].n_pending == 0 ||
	    ix->entries[id].author != (uint32_t)author)
		qs_index_die("write_done without a matching admission");
	e = &ix->entries[id];
	u = &ix->usage[author];
	e->n_pending--;
	ix->n_pending--;
	u->mem_bytes -= e->info.num_bytes;
	u->mem_batches--;
	if (ok) {
		if (e->flags & QS_INDEX_DURABLE)
			qs_index_entry_extend(ix, id, info);
		else
			qs_index_entry_make_durable(ix, id, info);
	}
	if (!(e->flags & QS_INDEX_DURABLE) && e->n_pending == 0)
		qs_index_entry_free(ix, id);
}

int
qs_index_add_durable(struct qs_index *ix, int author, const struct qs_batch_info *info)
{
	uint32_t id;
	int rc = -EINVAL;

	if (author < 0 || (size_t)author >= ix->n_authors)
		goto out;
	id = qs_index_dfind(ix, info->digest);
	if (id != QS_INDEX_NONE) {
		if (ix->entries[id].author != (uint32_t)author)
			goto out;
		if (ix->entries[id].flags & QS_INDEX_DURABLE)
			qs_index_entry_extend(ix, id, info);
		else
			qs_index_entry_make_durable(ix, id, info);
		rc = QS_EEXISTS;
		goto out;
	}
	rc = qs_index_reserve(ix);
	if (rc)
		goto out;
	id = qs_index_entry_new(ix, (uint32_t)author, info);
	qs_index_entry_by_batch_id(ix, id);
	qs_index_entry_make_durable(ix, id, info);
out:
	return rc;
}

int
qs_index_lookup(const struct qs_index *ix, const uint8_t digest[QS_DIGEST_BYTES],
                struct qs_batch_info *info)
{
	uint32_t id = qs_index_dfind(ix, digest);

	if (id == QS_INDEX_NONE || !(ix->entries[id].flags & QS_INDEX_DURABLE))
		return QS_ENOTFOUND;
	if (info)
		*info = ix->entries[id].info;
	return 0;
}

size_t
qs_index_expire(struct qs_index *ix, uint64_t now_us)
{
	size_t n = 0;

	while (ix->heap_len && ix->heap[0].expiration_us <= now_us) {
		uint32_t id = ix->heap[0].id;
		struct qs_index_entry *e = &ix->entries[id];
		struct qs_author_usage *u = &ix->usage[e->author];

		qs_index_heap_remove(ix, 0);
		e->heap_pos = QS_INDEX_NONE;
		e->flags &= ~(uint32_t)QS_INDEX_DURABLE;
		u->disk_bytes -= e->info.num_bytes;
		u->disk_batches--;
		ix->n_durable--;
		ix->durable_bytes -= e->info.num_bytes;
		if (e->n_pending == 0)
			qs_index_entry_free(ix, id);
		n++;
	}
	return n;
}

uint64_t
qs_index_next_expiration(const struct qs_index *ix)
{
	return ix->heap_len ? ix->heap[0].expiration_us : UINT64_MAX;
}

size_t
qs_index_count(const struct qs_index *ix)
{
	return ix->n_durable;
}

uint64_t
qs_index_bytes(const struct qs_index *ix)
{
	return ix->durable_bytes;
}

size_t
qs_index_pending(const struct qs_index *ix)
{
	return ix->n_pending;
}

void
qs_index_author_usage(const struct qs_index *ix, int author, struct qs_author_usage *out)
{
	if (author < 0 || (size_t)author >= ix->n_authors) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = ix->usage[author];
}

/* The cursor is the id of the next entry to look at, plus 1. */
size_t
qs_index_list(const struct qs_index *ix, int author, uint64_t *cursor, struct qs_batch_info *out,
              int *authors, size_t max)
{
	uint64_t id = *cursor ? *cursor - 1 : 0;
	size_t n = 0;

	*cursor = 0;
	if (author < -1 || (author >= 0 && (size_t)author >= ix->n_authors))
		return 0;
	for (; id < ix->entries_used; id++) {
		const struct qs_index_entry *e = &ix->entries[id];

		if (!(e->flags & QS_INDEX_DURABLE) ||
		    (author >= 0 && e->author != (uint32_t)author))
			continue;
		if (n == max) {
			*cursor = id + 1;
			break;
		}
		out[n] = e->info;
		if (authors)
			authors[n] = (int)e->author;
		n++;
	}
	return n;
}
