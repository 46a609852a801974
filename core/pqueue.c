#include "core/pqueue.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtable.h"
#include "core/error.h"
#include "core/heap.h"

/*
 * Layout. Proofs live in one array of entries named by their index (an id);
 * freed ids go on a free list. A hash table (core/dtable.h) maps a digest to
 * an id. Each author's proofs form a treap ordered by (batch_id, digest),
 * with parent links and subtree sizes (for the listing cursor), and a doubly
 * linked list in the same order (for the pull's walk); its priorities are a
 * second mix of the keyed digest hash. Every queued proof is in a min-heap on
 * expiration (core/heap.h) whose capacity is that of the entry array.
 *
 * A pull marks the excluded digests' entries with its own number instead of
 * building a set, so it allocates nothing.
 */

#define QS_PQ_NONE UINT32_MAX

struct qs_pq_entry {
	struct qs_batch_info info;
	uint8_t *proof;
	size_t proof_len;
	uint64_t prio;        /* treap priority: a parent's is >= its children's */
	uint64_t excluded_by; /* the number of the last pull that excluded it */
	uint32_t author;
	uint32_t parent, left, right;
	uint32_t prev, next; /* the author's proofs in order */
	uint32_t size;       /* entries in the subtree rooted here */
	uint32_t next_free;  /* while free */
};

struct qs_pq_author {
	uint32_t root;
	uint32_t first; /* smallest (batch_id, digest) */
	uint32_t count;
};

struct qs_pqueue {
	uint64_t per_author_max;
	size_t n_authors;
	struct qs_pq_author *authors;
	uint32_t *walk;   /* pull: each author's next proof to consider */
	size_t *turns;    /* pull: the authors still taking part, in turn order */
	size_t next_lead; /* the author who goes first in the next pull */
	uint64_t n_pulls;

	struct qs_pq_entry *entries;
	uint32_t entries_cap;
	uint32_t entries_used; /* ids below this have been handed out */
	uint32_t free_head;
	uint32_t count;

	struct qs_dtable *by_digest;
	struct qs_heap *heap; /* every queued proof; entries_cap ids */
};

static void
qs_pq_die(const char *what)
{
	fprintf(stderr, "qs_pqueue: %s\n", what);
	abort();
}

static int
qs_pq_digest_is(const void *arg, uint32_t id, const void *key)
{
	const struct qs_pqueue *q = arg;

	return memcmp(q->entries[id].info.digest, key, QS_DIGEST_BYTES) == 0;
}

/* ---- per-author order ---- */

/* Whether a comes before b in an author's order. */
static int
qs_pq_before(const struct qs_pq_entry *a, const struct qs_pq_entry *b)
{
	if (a->info.batch_id != b->info.batch_id)
		return a->info.batch_id < b->info.batch_id;
	return memcmp(a->info.digest, b->info.digest, QS_DIGEST_BYTES) < 0;
}

static uint32_t
qs_pq_size(const struct qs_pqueue *q, uint32_t id)
{
	return id == QS_PQ_NONE ? 0 : q->entries[id].size;
}

static void
qs_pq_resize(struct qs_pqueue *q, uint32_t id)
{
	struct qs_pq_entry *e = &q->entries[id];

	e->size = 1 + qs_pq_size(q, e->left) + qs_pq_size(q, e->right);
}

/* Make `to` the child of `parent` that `from` was (the root if parent is
 * QS_PQ_NONE). */
static void
qs_pq_relink(struct qs_pqueue *q, struct qs_pq_author *au, uint32_t parent, uint32_t from,
             uint32_t to)
{
	if (parent == QS_PQ_NONE)
		au->root = to;
	else if (q->entries[parent].left == from)
		q->entries[parent].left = to;
	else
		q->entries[parent].right = to;
}

/* Rotate x above its parent; the order is unchanged. */
static void
qs_pq_rotate_up(struct qs_pqueue *q, struct qs_pq_author *au, uint32_t x)
{
	struct qs_pq_entry *ex = &q->entries[x];
	uint32_t p = ex->parent;
	struct qs_pq_entry *ep = &q->entries[p];
	uint32_t grand = ep->parent, moved;

	if (ep->left == x) {
		moved = ex->right;
		ep->left = moved;
		ex->right = p;
	} else {
		moved = ex->left;
		ep->right = moved;
		ex->left = p;
	}
	if (moved != QS_PQ_NONE)
		q->entries[moved].parent = p;
	ep->parent = x;
	ex->parent = grand;
	qs_pq_relink(q, au, grand, p, x);
	qs_pq_resize(q, p);
	qs_pq_resize(q, x);
}

static void
qs_pq_order_insert(struct qs_pqueue *q, struct qs_pq_author *au, uint32_t id)
{
	struct qs_pq_entry *e = &q->entries[id];
	uint32_t parent = QS_PQ_NONE, cur = au->root;
	int to_left = 0;

	while (cur != QS_PQ_NONE) {
		struct qs_pq_entry *c = &q->entries[cur];

		c->size++;
		parent = cur;
		to_left = qs_pq_before(e, c);
		cur = to_left ? c->left : c->right;
	}
	e->parent = parent;
	e->left = QS_PQ_NONE;
	e->right = QS_PQ_NONE;
	e->size = 1;
	/* A new leaf sits right before its parent if it is a left child, right
	 * after it otherwise. */
	if (parent == QS_PQ_NONE) {
		au->root = id;
		e->prev = QS_PQ_NONE;
		e->next = QS_PQ_NONE;
	} else if (to_left) {
		q->entries[parent].left = id;
		e->next = parent;
		e->prev = q->entries[parent].prev;
	} else {
		q->entries[parent].right = id;
		e->prev = parent;
		e->next = q->entries[parent].next;
	}
	if (e->prev == QS_PQ_NONE)
		au->first = id;
	else
		q->entries[e->prev].next = id;
	if (e->next != QS_PQ_NONE)
		q->entries[e->next].prev = id;
	while (e->parent != QS_PQ_NONE && q->entries[e->parent].prio < e->prio)
		qs_pq_rotate_up(q, au, id);
}

static void
qs_pq_order_remove(struct qs_pqueue *q, struct qs_pq_author *au, uint32_t id)
{
	struct qs_pq_entry *e = &q->entries[id];
	uint32_t up;

	/* Rotate it down to a leaf, keeping the heap order of priorities. */
	while (e->left != QS_PQ_NONE || e->right != QS_PQ_NONE) {
		uint32_t child;

		if (e->right == QS_PQ_NONE ||
		    (e->left != QS_PQ_NONE && q->entries[e->left].prio > q->entries[e->right].prio))
			child = e->left;
		else
			child = e->right;
		qs_pq_rotate_up(q, au, child);
	}
	qs_pq_relink(q, au, e->parent, id, QS_PQ_NONE);
	for (up = e->parent; up != QS_PQ_NONE; up = q->entries[up].parent)
		q->entries[up].size--;
	if (e->prev == QS_PQ_NONE)
		au->first = e->next;
	else
		q->entries[e->prev].next = e->next;
	if (e->next != QS_PQ_NONE)
		q->entries[e->next].prev = e->prev;
}

/* The entry at `rank` (0-based) in the author's order, or QS_PQ_NONE. */
static uint32_t
qs_pq_select(const struct qs_pqueue *q, const struct qs_pq_author *au, uint32_t rank)
{
	uint32_t cur = au->root;

	while (cur != QS_PQ_NONE) {
		const struct qs_pq_entry *c = &q->entries[cur];
		uint32_t left = qs_pq_size(q, c->left);

		if (rank == left)
			return cur;
		if (rank < left) {
			cur = c->left;
		} else {
			rank -= left + 1;
			cur = c->right;
		}
	}
	return QS_PQ_NONE;
}

/* ---- growth ---- */

/* Make room for one more entry in the array, the heap and the table, so
 * that the insertion that follows cannot fail. Nothing else changes. */
static int
qs_pq_reserve(struct qs_pqueue *q)
{
	struct qs_pq_entry *entries;

	if (q->free_head == QS_PQ_NONE && q->entries_used == q->entries_cap) {
		entries =
		    qs_heap_grow_items(q->heap, q->entries, sizeof(*entries), &q->entries_cap);
		if (!entries)
			return -ENOMEM;
		q->entries = entries;
	}
	return qs_dtable_reserve(q->by_digest, 1);
}

/* ---- entries ---- */

static void
qs_pq_entry_remove(struct qs_pqueue *q, uint32_t id)
{
	struct qs_pq_entry *e = &q->entries[id];

	if (qs_dtable_remove(q->by_digest, qs_dtable_hash(q->by_digest, e->info.digest), id))
		qs_pq_die("entry missing from the digest table");
	qs_pq_order_remove(q, &q->authors[e->author], id);
	qs_heap_remove(q->heap, id);
	q->authors[e->author].count--;
	q->count--;
	free(e->proof);
	e->proof = NULL;
	e->next_free = q->free_head;
	q->free_head = id;
}

static void
qs_pq_item_of(const struct qs_pqueue *q, uint32_t id, struct qs_pq_item *out)
{
	const struct qs_pq_entry *e = &q->entries[id];

	out->info = &e->info;
	out->author = (int)e->author;
	out->proof = e->proof;
	out->proof_len = e->proof_len;
	out->inlined = 0;
}

/* ---- API ---- */

int
qs_pqueue_new(size_t n_authors, uint64_t per_author_max, uint64_t hash_seed, struct qs_pqueue **out)
{
	struct qs_pqueue *q = NULL;
	size_t i;
	int rc = -EINVAL;

	if (n_authors == 0 || n_authors > INT_MAX)
		goto out;
	rc = -ENOMEM;
	q = calloc(1, sizeof(*q));
	if (!q)
		goto out;
	q->per_author_max = per_author_max;
	q->n_authors = n_authors;
	q->free_head = QS_PQ_NONE;
	q->authors = calloc(n_authors, sizeof(*q->authors));
	q->walk = calloc(n_authors, sizeof(*q->walk));
	q->turns = calloc(n_authors, sizeof(*q->turns));
	if (!q->authors || !q->walk || !q->turns ||
	    qs_dtable_new(hash_seed, qs_pq_digest_is, q, &q->by_digest) != 0 ||
	    qs_heap_new(&q->heap) != 0)
		goto out;
	for (i = 0; i < n_authors; i++) {
		q->authors[i].root = QS_PQ_NONE;
		q->authors[i].first = QS_PQ_NONE;
	}
	if (qs_pq_reserve(q) != 0)
		goto out;
	*out = q;
	q = NULL;
	rc = 0;
out:
	qs_pqueue_free(q);
	return rc;
}

void
qs_pqueue_free(struct qs_pqueue *q)
{
	size_t i;

	if (!q)
		return;
	/* A freed entry's proof is NULL. */
	for (i = 0; i < q->entries_used; i++)
		free(q->entries[i].proof);
	free(q->authors);
	free(q->walk);
	free(q->turns);
	free(q->entries);
	qs_dtable_free(q->by_digest);
	qs_heap_free(q->heap);
	free(q);
}

int
qs_pqueue_add(struct qs_pqueue *q, int author, const struct qs_batch_info *info, uint8_t *proof,
              size_t proof_len)
{
	struct qs_pq_author *au;
	struct qs_pq_entry *e;
	uint64_t hash;
	uint32_t id;
	int rc = -EINVAL;

	if (author < 0 || (size_t)author >= q->n_authors || (!proof && proof_len))
		goto out;
	au = &q->authors[author];
	hash = qs_dtable_hash(q->by_digest, info->digest);
	if (qs_dtable_find(q->by_digest, hash, info->digest) != QS_DTABLE_NONE) {
		rc = QS_EEXISTS;
		goto out;
	}
	if (au->count >= q->per_author_max) {
		rc = QS_ELIMIT;
		goto out;
	}
	rc = qs_pq_reserve(q);
	if (rc)
		goto out;
	if (q->free_head != QS_PQ_NONE) {
		id = q->free_head;
		q->free_head = q->entries[id].next_free;
	} else {
		id = q->entries_used++;
	}
	e = &q->entries[id];
	e->info = *info;
	e->proof = proof;
	e->proof_len = proof_len;
	e->prio = qs_dtable_mix(hash + UINT64_C(0x9e3779b97f4a7c15));
	e->excluded_by = 0;
	e->author = (uint32_t)author;
	qs_dtable_insert(q->by_digest, hash, id);
	qs_pq_order_insert(q, au, id);
	qs_heap_push(q->heap, id, info->expiration_us);
	au->count++;
	q->count++;
out:
	return rc;
}

int
qs_pqueue_get(const struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES],
              struct qs_pq_item *out)
{
	uint32_t id = qs_dtable_lookup(q->by_digest, digest);

	if (id == QS_DTABLE_NONE)
		return QS_ENOTFOUND;
	qs_pq_item_of(q, id, out);
	return 0;
}

int
qs_pqueue_remove(struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES])
{
	uint32_t id = qs_dtable_lookup(q->by_digest, digest);

	if (id == QS_DTABLE_NONE)
		return 0;
	qs_pq_entry_remove(q, id);
	return 1;
}

size_t
qs_pqueue_expire(struct qs_pqueue *q, uint64_t now_us)
{
	size_t n = 0;
	uint32_t id;

	while ((id = qs_heap_due(q->heap, now_us)) != QS_HEAP_NONE) {
		qs_pq_entry_remove(q, id);
		n++;
	}
	return n;
}

size_t
qs_pqueue_count(const struct qs_pqueue *q)
{
	return q->count;
}

size_t
qs_pqueue_author_count(const struct qs_pqueue *q, int author)
{
	if (author < 0 || (size_t)author >= q->n_authors)
		return 0;
	return q->authors[author].count;
}

uint64_t
qs_pqueue_next_expiration(const struct qs_pqueue *q)
{
	return qs_heap_min(q->heap);
}

/* The first entry from `id` on (in its author's order) that this pull may
 * take, or QS_PQ_NONE. */
static uint32_t
qs_pq_eligible(const struct qs_pqueue *q, uint32_t id, uint64_t now_us, uint64_t epoch)
{
	while (id != QS_PQ_NONE) {
		const struct qs_pq_entry *e = &q->entries[id];

		if (e->excluded_by != q->n_pulls && e->info.expiration_us > now_us &&
		    e->info.epoch == epoch)
			break;
		id = e->next;
	}
	return id;
}

ssize_t
qs_pqueue_pull(struct qs_pqueue *q, const struct qs_pq_limits *lim, uint64_t now_us, uint64_t epoch,
               const uint8_t (*exclude)[QS_DIGEST_BYTES], size_t n_exclude,
               qs_pq_inline_fn inline_fn, void *arg, struct qs_pq_item *out, size_t out_cap)
{
	uint64_t txns = 0, bytes = 0, inline_txns = 0, inline_bytes = 0;
	size_t n = 0, n_turns = 0, lead = q->next_lead, first_author = 0, i;
	int full = 0;

	if (q->count == 0 || out_cap == 0)
		return 0;
	/* Numbers start at 1: a new entry's 0 is never a pull's. */
	q->n_pulls++;
	for (i = 0; i < n_exclude; i++) {
		uint32_t id = qs_dtable_lookup(q->by_digest, exclude[i]);

		if (id != QS_DTABLE_NONE)
			q->entries[id].excluded_by = q->n_pulls;
	}
	for (i = 0; i < q->n_authors; i++) {
		size_t a = (lead + i) % q->n_authors;

		if (q->authors[a].first != QS_PQ_NONE) {
			q->walk[a] = q->authors[a].first;
			q->turns[n_turns++] = a;
		}
	}
	/* Each turn either picks or ends an author's part in the pull. */
	while (n_turns && n < out_cap) {
		size_t kept = 0;

		for (i = 0; i < n_turns && n < out_cap; i++) {
			size_t a = q->turns[i];
			uint32_t id = qs_pq_eligible(q, q->walk[a], now_us, epoch);
			const struct qs_pq_entry *e;
			struct qs_pq_item *item;

			if (id == QS_PQ_NONE)
				continue;
			e = &q->entries[id];
			if (e->info.num_txns > lim->max_txns - txns ||
			    e->info.num_bytes > lim->max_bytes - bytes) {
				full = 1;
				continue;
			}
			item = &out[n];
			qs_pq_item_of(q, id, item);
			txns += e->info.num_txns;
			bytes += e->info.num_bytes;
			if (inline_fn && e->info.num_txns <= lim->max_inline_txns - inline_txns &&
			    e->info.num_bytes <= lim->max_inline_bytes - inline_bytes &&
			    inline_fn(arg, &e->info)) {
				item->inlined = 1;
				inline_txns += e->info.num_txns;
				inline_bytes += e->info.num_bytes;
			}
			if (n == 0)
				first_author = a;
			n++;
			q->walk[a] = e->next;
			q->turns[kept++] = a;
		}
		n_turns = kept;
	}
	if (n == out_cap || txns == lim->max_txns || bytes == lim->max_bytes)
		full = 1;
	if (n == 0 || (!full && !lim->return_non_full))
		return 0;
	q->next_lead = (first_author + 1) % q->n_authors;
	return (ssize_t)n;
}

/*
 * The listing cursor is a position in (author, rank within the author's
 * order): ((author << 32) | rank) + 1. Authors are below 2^31 and ranks below
 * 2^32 (ids are), so it never wraps and is never 0.
 */
static uint64_t
qs_pq_cursor(size_t author, uint32_t rank)
{
	return ((uint64_t)author << 32 | rank) + 1;
}

size_t
qs_pqueue_list(const struct qs_pqueue *q, int author, uint64_t *cursor, struct qs_pq_item *out,
               size_t max)
{
	size_t a = 0, last = q->n_authors, n = 0;
	uint32_t rank = 0, id;

	if (author < -1 || (author >= 0 && (size_t)author >= q->n_authors))
		goto done;
	if (*cursor) {
		a = (size_t)((*cursor - 1) >> 32);
		rank = (uint32_t)(*cursor - 1);
	}
	if (author >= 0) {
		if (a < (size_t)author) {
			a = (size_t)author;
			rank = 0;
		}
		last = (size_t)author + 1;
	}
	for (; a < last; a++, rank = 0) {
		if (rank >= q->authors[a].count)
			continue;
		if (n == max)
			break;
		for (id = qs_pq_select(q, &q->authors[a], rank); id != QS_PQ_NONE && n < max;
		     id = q->entries[id].next) {
			qs_pq_item_of(q, id, &out[n++]);
			rank++;
		}
		if (id != QS_PQ_NONE)
			break;
	}
	if (a < last) {
		*cursor = qs_pq_cursor(a, rank);
		return n;
	}
done:
	*cursor = 0;
	return n;
}
