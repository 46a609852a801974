#include "core/pqueue.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/*
 * Layout. Proofs live in one array of entries named by their index (an id);
 * freed ids go on a free list. An open-addressing table with linear probing
 * and backward-shift deletion (no tombstones), at most 3/4 full, maps a
 * digest to an id. Each author's proofs form a treap ordered by (batch_id,
 * digest), with parent links and subtree sizes (for the listing cursor), and
 * a doubly linked list in the same order (for the pull's walk); its
 * priorities are a second mix of the keyed digest hash. Every queued proof
 * is in a binary min-heap on expiration whose capacity is that of the entry
 * array.
 *
 * A pull marks the excluded digests' entries with its own number instead of
 * building a set, so it allocates nothing.
 */

#define QS_PQ_NONE        UINT32_MAX
#define QS_PQ_MIN_SLOTS   64
#define QS_PQ_MIN_ENTRIES 64

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
	uint32_t heap_pos;   /* while queued; the next free id while free */
};

struct qs_pq_slot {
	uint64_t hash; /* of the digest; its home slot is hash & mask */
	uint32_t id;   /* QS_PQ_NONE: empty */
};

struct qs_pq_heap_item {
	uint64_t expiration_us;
	uint32_t id;
};

struct qs_pq_author {
	uint32_t root;
	uint32_t first; /* smallest (batch_id, digest) */
	uint32_t count;
};

struct qs_pqueue {
	uint64_t seed;
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

	struct qs_pq_slot *tab;
	size_t mask; /* slots - 1, slots a power of two */

	struct qs_pq_heap_item *heap; /* entries_cap items */
	size_t heap_len;
};

static void
qs_pq_die(const char *what)
{
	fprintf(stderr, "qs_pqueue: %s\n", what);
	abort();
}

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t
qs_pq_mix(uint64_t x)
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
qs_pq_digest_hash(const struct qs_pqueue *q, const uint8_t *digest)
{
	uint64_t x;

	memcpy(&x, digest, sizeof(x));
	return qs_pq_mix(x ^ q->seed);
}

/* ---- digest table ---- */

/* The slot holding `digest`, or the empty slot where the probe stopped. */
static size_t
qs_pq_probe(const struct qs_pqueue *q, const uint8_t *digest, uint64_t hash)
{
	size_t i;

	for (i = hash & q->mask;; i = (i + 1) & q->mask) {
		const struct qs_pq_slot *s = &q->tab[i];

		if (s->id == QS_PQ_NONE)
			return i;
		if (s->hash == hash &&
		    memcmp(q->entries[s->id].info.digest, digest, QS_DIGEST_BYTES) == 0)
			return i;
	}
}

static uint32_t
qs_pq_find(const struct qs_pqueue *q, const uint8_t *digest)
{
	return q->tab[qs_pq_probe(q, digest, qs_pq_digest_hash(q, digest))].id;
}

/* Insert a digest known to be absent; the table has room. */
static void
qs_pq_tab_insert(struct qs_pq_slot *tab, size_t mask, uint64_t hash, uint32_t id)
{
	size_t i = hash & mask;

	while (tab[i].id != QS_PQ_NONE)
		i = (i + 1) & mask;
	tab[i].hash = hash;
	tab[i].id = id;
}

/* Whether home slot `home` lies cyclically in (hole, j]: then the item at j
 * may not move back into the hole. */
static int
qs_pq_between(size_t hole, size_t home, size_t j)
{
	if (hole <= j)
		return hole < home && home <= j;
	return hole < home || home <= j;
}

static void
qs_pq_tab_delete(struct qs_pqueue *q, size_t hole)
{
	size_t j = hole;

	for (;;) {
		j = (j + 1) & q->mask;
		if (q->tab[j].id == QS_PQ_NONE)
			break;
		if (qs_pq_between(hole, q->tab[j].hash & q->mask, j))
			continue;
		q->tab[hole] = q->tab[j];
		hole = j;
	}
	q->tab[hole].id = QS_PQ_NONE;
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

/* ---- expiration heap ---- */

static void
qs_pq_heap_set(struct qs_pqueue *q, size_t pos, struct qs_pq_heap_item item)
{
	q->heap[pos] = item;
	q->entries[item.id].heap_pos = (uint32_t)pos;
}

static void
qs_pq_heap_up(struct qs_pqueue *q, size_t pos)
{
	struct qs_pq_heap_item item = q->heap[pos];

	while (pos > 0) {
		size_t parent = (pos - 1) / 2;

		if (q->heap[parent].expiration_us <= item.expiration_us)
			break;
		qs_pq_heap_set(q, pos, q->heap[parent]);
		pos = parent;
	}
	qs_pq_heap_set(q, pos, item);
}

static void
qs_pq_heap_down(struct qs_pqueue *q, size_t pos)
{
	struct qs_pq_heap_item item = q->heap[pos];

	for (;;) {
		size_t child = 2 * pos + 1;

		if (child >= q->heap_len)
			break;
		if (child + 1 < q->heap_len &&
		    q->heap[child + 1].expiration_us < q->heap[child].expiration_us)
			child++;
		if (item.expiration_us <= q->heap[child].expiration_us)
			break;
		qs_pq_heap_set(q, pos, q->heap[child]);
		pos = child;
	}
	qs_pq_heap_set(q, pos, item);
}

static void
qs_pq_heap_push(struct qs_pqueue *q, uint32_t id)
{
	struct qs_pq_heap_item item = {q->entries[id].info.expiration_us, id};

	/* Capacity is entries_cap and each queued entry has one item. */
	qs_pq_heap_set(q, q->heap_len++, item);
	qs_pq_heap_up(q, q->heap_len - 1);
}

static void
qs_pq_heap_remove(struct qs_pqueue *q, size_t pos)
{
	q->heap_len--;
	if (pos == q->heap_len)
		return;
	qs_pq_heap_set(q, pos, q->heap[q->heap_len]);
	if (pos > 0 && q->heap[(pos - 1) / 2].expiration_us > q->heap[pos].expiration_us)
		qs_pq_heap_up(q, pos);
	else
		qs_pq_heap_down(q, pos);
}

/* ---- growth ---- */

static int
qs_pq_grow_entries(struct qs_pqueue *q)
{
	struct qs_pq_entry *entries;
	struct qs_pq_heap_item *heap;
	size_t cap;

	if (q->entries_cap >= (QS_PQ_NONE - 1) / 2)
		return -ENOMEM;
	cap = q->entries_cap ? (size_t)q->entries_cap * 2 : QS_PQ_MIN_ENTRIES;
	if (cap > SIZE_MAX / sizeof(*entries))
		return -ENOMEM;
	entries = realloc(q->entries, cap * sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	q->entries = entries;
	/* Until the heap has grown too the old capacity stands; the larger
	 * entry array is simply reused by the next attempt. */
	heap = realloc(q->heap, cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	q->heap = heap;
	q->entries_cap = (uint32_t)cap;
	return 0;
}

static int
qs_pq_grow_tab(struct qs_pqueue *q)
{
	size_t slots = q->mask + 1, i;
	struct qs_pq_slot *tab;

	if (slots > SIZE_MAX / 2 / sizeof(*tab))
		return -ENOMEM;
	tab = malloc(2 * slots * sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < 2 * slots; i++)
		tab[i].id = QS_PQ_NONE;
	for (i = 0; i < slots; i++) {
		if (q->tab[i].id != QS_PQ_NONE)
			qs_pq_tab_insert(tab, 2 * slots - 1, q->tab[i].hash, q->tab[i].id);
	}
	free(q->tab);
	q->tab = tab;
	q->mask = 2 * slots - 1;
	return 0;
}

/* Make room for one more entry in the array, the heap and the table, so
 * that the insertion that follows cannot fail. Nothing else changes. */
static int
qs_pq_reserve(struct qs_pqueue *q)
{
	int rc = 0;

	if (q->free_head == QS_PQ_NONE && q->entries_used == q->entries_cap) {
		rc = qs_pq_grow_entries(q);
		if (rc)
			goto out;
	}
	if ((size_t)q->count + 1 > (q->mask + 1) / 4 * 3)
		rc = qs_pq_grow_tab(q);
out:
	return rc;
}

/* ---- entries ---- */

static void
qs_pq_entry_remove(struct qs_pqueue *q, uint32_t id)
{
	struct qs_pq_entry *e = &q->entries[id];
	uint64_t hash = qs_pq_digest_hash(q, e->info.digest);
	size_t slot = qs_pq_probe(q, e->info.digest, hash);

	if (q->tab[slot].id != id)
		qs_pq_die("entry missing from the digest table");
	qs_pq_tab_delete(q, slot);
	qs_pq_order_remove(q, &q->authors[e->author], id);
	qs_pq_heap_remove(q, e->heap_pos);
	q->authors[e->author].count--;
	q->count--;
	free(e->proof);
	e->proof = NULL;
	e->heap_pos = q->free_head;
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
	q->seed = hash_seed;
	q->per_author_max = per_author_max;
	q->n_authors = n_authors;
	q->free_head = QS_PQ_NONE;
	q->authors = calloc(n_authors, sizeof(*q->authors));
	q->walk = calloc(n_authors, sizeof(*q->walk));
	q->turns = calloc(n_authors, sizeof(*q->turns));
	q->tab = malloc(QS_PQ_MIN_SLOTS * sizeof(*q->tab));
	if (!q->authors || !q->walk || !q->turns || !q->tab)
		goto out;
	for (i = 0; i < n_authors; i++) {
		q->authors[i].root = QS_PQ_NONE;
		q->authors[i].first = QS_PQ_NONE;
	}
	for (i = 0; i < QS_PQ_MIN_SLOTS; i++)
		q->tab[i].id = QS_PQ_NONE;
	q->mask = QS_PQ_MIN_SLOTS - 1;
	if (qs_pq_grow_entries(q) != 0)
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
	for (i = 0; i < q->heap_len; i++)
		free(q->entries[q->heap[i].id].proof);
	free(q->authors);
	free(q->walk);
	free(q->turns);
	free(q->entries);
	free(q->tab);
	free(q->heap);
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
	hash = qs_pq_digest_hash(q, info->digest);
	if (q->tab[qs_pq_probe(q, info->digest, hash)].id != QS_PQ_NONE) {
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
		q->free_head = q->entries[id].heap_pos;
	} else {
		id = q->entries_used++;
	}
	e = &q->entries[id];
	e->info = *info;
	e->proof = proof;
	e->proof_len = proof_len;
	e->prio = qs_pq_mix(hash + UINT64_C(0x9e3779b97f4a7c15));
	e->excluded_by = 0;
	e->author = (uint32_t)author;
	qs_pq_tab_insert(q->tab, q->mask, hash, id);
	qs_pq_order_insert(q, au, id);
	qs_pq_heap_push(q, id);
	au->count++;
	q->count++;
out:
	return rc;
}

int
qs_pqueue_get(const struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES],
              struct qs_pq_item *out)
{
	uint32_t id = qs_pq_find(q, digest);

	if (id == QS_PQ_NONE)
		return QS_ENOTFOUND;
	qs_pq_item_of(q, id, out);
	return 0;
}

int
qs_pqueue_remove(struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES])
{
	uint32_t id = qs_pq_find(q, digest);

	if (id == QS_PQ_NONE)
		return 0;
	qs_pq_entry_remove(q, id);
	return 1;
}

size_t
qs_pqueue_expire(struct qs_pqueue *q, uint64_t now_us)
{
	size_t n = 0;

	while (q->heap_len && q->heap[0].expiration_us <= now_us) {
		qs_pq_entry_remove(q, q->heap[0].id);
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
	return q->heap_len ? q->heap[0].expiration_us : UINT64_MAX;
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
		uint32_t id = qs_pq_find(q, exclude[i]);

		if (id != QS_PQ_NONE)
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
