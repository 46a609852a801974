#include "core/index.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/dtable.h"
#include "core/error.h"
#include "core/heap.h"

/*
 * Layout. Entries live in one array and are named by their index (an id);
 * freed ids go on a free list. Two hash tables (core/dtable.h) map a digest
 * and an (author, batch_id) to an id. Durable entries are also in a min-heap
 * on their expiration (core/heap.h), whose capacity is that of the entry
 * array, so that a completed write never needs to allocate.
 *
 * An entry is alive while it is durable or has a write in flight; it is in
 * the digest table for as long as it is alive.
 */

#define QS_INDEX_NONE UINT32_MAX

enum {
	QS_INDEX_DURABLE = 1,     /* in the heap, charged to the disk quota */
	QS_INDEX_BY_BATCH_ID = 2, /* in the (author, batch_id) table */
};

struct qs_index_entry {
	struct qs_batch_info info; /* expiration_us: the latest durable one */
	uint32_t author;
	uint32_t n_pending; /* writes admitted and not completed */
	uint32_t next_free; /* while free */
	uint32_t flags;
};

/* The key of the (author, batch_id) table. */
struct qs_index_batch_key {
	uint32_t author;
	uint64_t batch_id;
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

	struct qs_dtable *by_digest;   /* every live entry */
	struct qs_dtable *by_batch_id; /* the first live entry of each (author, batch_id) */
	struct qs_heap *heap;          /* the durable entries; entries_cap ids */

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

static int
qs_index_digest_is(const void *arg, uint32_t id, const void *key)
{
	const struct qs_index *ix = arg;

	return memcmp(ix->entries[id].info.digest, key, QS_DIGEST_BYTES) == 0;
}

static int
qs_index_batch_key_is(const void *arg, uint32_t id, const void *key)
{
	const struct qs_index *ix = arg;
	const struct qs_index_batch_key *k = key;

	return ix->entries[id].info.batch_id == k->batch_id && ix->entries[id].author == k->author;
}

/* Batch ids are the author's to choose: key their hash with the seed. */
static uint64_t
qs_index_batch_key_hash(const struct qs_index *ix, const struct qs_index_batch_key *k)
{
	return qs_dtable_mix(k->batch_id ^ qs_dtable_mix(ix->seed + k->author + 1));
}

static uint32_t
qs_index_by_batch_id(const struct qs_index *ix, uint32_t author, uint64_t batch_id)
{
	struct qs_index_batch_key k = {author, batch_id};

	return qs_dtable_find(ix->by_batch_id, qs_index_batch_key_hash(ix, &k), &k);
}

/* ---- growth ---- */

/* Make room for one more entry in the array, the heap and both tables, so
 * that the insertion that follows cannot fail. Nothing else changes. */
static int
qs_index_reserve(struct qs_index *ix)
{
	struct qs_index_entry *entries;
	int rc;

	if (ix->free_head == QS_INDEX_NONE && ix->entries_used == ix->entries_cap) {
		entries =
		    qs_heap_grow_items(ix->heap, ix->entries, sizeof(*entries), &ix->entries_cap);
		if (!entries)
			return -ENOMEM;
		ix->entries = entries;
	}
	rc = qs_dtable_reserve(ix->by_digest, 1);
	if (rc == 0)
		rc = qs_dtable_reserve(ix->by_batch_id, 1);
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
		ix->free_head = ix->entries[id].next_free;
	} else {
		id = ix->entries_used++;
	}
	e = &ix->entries[id];
	e->info = *info;
	e->author = author;
	e->n_pending = 0;
	e->next_free = QS_INDEX_NONE;
	e->flags = 0;
	qs_dtable_insert(ix->by_digest, qs_dtable_hash(ix->by_digest, info->digest), id);
	return id;
}

/* Record the entry under its (author, batch_id) unless another one is. */
static void
qs_index_entry_by_batch_id(struct qs_index *ix, uint32_t id)
{
	struct qs_index_entry *e = &ix->entries[id];
	struct qs_index_batch_key k = {e->author, e->info.batch_id};
	uint64_t hash = qs_index_batch_key_hash(ix, &k);

	if (qs_dtable_find(ix->by_batch_id, hash, &k) != QS_DTABLE_NONE)
		return;
	qs_dtable_insert(ix->by_batch_id, hash, id);
	e->flags |= QS_INDEX_BY_BATCH_ID;
}

/* Remove an entry that is neither durable nor being written. */
static void
qs_index_entry_free(struct qs_index *ix, uint32_t id)
{
	struct qs_index_entry *e = &ix->entries[id];
	struct qs_index_batch_key k = {e->author, e->info.batch_id};

	if (e->flags & QS_INDEX_DURABLE || e->n_pending)
		qs_index_die("freeing an entry in use");
	if (qs_dtable_remove(ix->by_digest, qs_dtable_hash(ix->by_digest, e->info.digest), id))
		qs_index_die("entry missing from the digest table");
	if (e->flags & QS_INDEX_BY_BATCH_ID &&
	    qs_dtable_remove(ix->by_batch_id, qs_index_batch_key_hash(ix, &k), id))
		qs_index_die("entry missing from the batch id table");
	e->flags = 0;
	e->next_free = ix->free_head;
	ix->free_head = id;
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
	qs_heap_push(ix->heap, id, e->info.expiration_us);
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
	qs_heap_update(ix->heap, id, info->expiration_us);
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
	if (!ix->usage || qs_dtable_new(hash_seed, qs_index_digest_is, ix, &ix->by_digest) != 0 ||
	    qs_dtable_new(hash_seed, qs_index_batch_key_is, ix, &ix->by_batch_id) != 0 ||
	    qs_heap_new(&ix->heap) != 0 || qs_index_reserve(ix) != 0)
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
	qs_dtable_free(ix->by_digest);
	qs_dtable_free(ix->by_batch_id);
	qs_heap_free(ix->heap);
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
	id = qs_dtable_lookup(ix->by_digest, info->digest);
	if (id != QS_DTABLE_NONE) {
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
	if (qs_index_by_batch_id(ix, (uint32_t)author, info->batch_id) != QS_DTABLE_NONE) {
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
	id = qs_dtable_lookup(ix->by_digest, info->digest);
	if (id == QS_DTABLE_NONE || ix->entries[id].n_pending == 0 ||
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
	id = qs_dtable_lookup(ix->by_digest, info->digest);
	if (id != QS_DTABLE_NONE) {
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
	uint32_t id = qs_dtable_lookup(ix->by_digest, digest);

	if (id == QS_DTABLE_NONE || !(ix->entries[id].flags & QS_INDEX_DURABLE))
		return QS_ENOTFOUND;
	if (info)
		*info = ix->entries[id].info;
	return 0;
}

size_t
qs_index_expire(struct qs_index *ix, uint64_t now_us)
{
	size_t n = 0;
	uint32_t id;

	while ((id = qs_heap_due(ix->heap, now_us)) != QS_HEAP_NONE) {
		struct qs_index_entry *e = &ix->entries[id];
		struct qs_author_usage *u = &ix->usage[e->author];

		qs_heap_remove(ix->heap, id);
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
	return qs_heap_min(ix->heap);
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
