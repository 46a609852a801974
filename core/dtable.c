#include "core/dtable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define QS_DTABLE_MIN_SLOTS 64

struct qs_dtable_slot {
	uint64_t hash; /* its home slot is hash & mask */
	uint32_t id;   /* QS_DTABLE_NONE: empty */
};

struct qs_dtable {
	uint64_t seed;
	qs_dtable_match_fn match;
	const void *arg;
	struct qs_dtable_slot *slots;
	size_t mask; /* slots - 1, slots a power of two */
	size_t count;
};

/* Whether a table of `slots` slots may hold `n` ids (at most 3/4 full). */
static int
qs_dtable_fits(size_t n, size_t slots)
{
	return n <= slots / 4 * 3;
}

/* Put `id` in the first empty slot from its home on; there is one. */
static void
qs_dtable_place(struct qs_dtable_slot *slots, size_t mask, uint64_t hash, uint32_t id)
{
	size_t i = hash & mask;

	while (slots[i].id != QS_DTABLE_NONE)
		i = (i + 1) & mask;
	slots[i].hash = hash;
	slots[i].id = id;
}

/* Replace the slots by `n` (a power of two) holding the same ids. */
static int
qs_dtable_resize(struct qs_dtable *t, size_t n)
{
	struct qs_dtable_slot *slots;
	size_t i;

	if (n > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = malloc(n * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		slots[i].id = QS_DTABLE_NONE;
	for (i = 0; t->slots && i <= t->mask; i++) {
		if (t->slots[i].id != QS_DTABLE_NONE)
			qs_dtable_place(slots, n - 1, t->slots[i].hash, t->slots[i].id);
	}
	free(t->slots);
	t->slots = slots;
	t->mask = n - 1;
	return 0;
}

int
qs_dtable_new(uint64_t seed, qs_dtable_match_fn match, const void *arg, struct qs_dtable **out)
{
	struct qs_dtable *t;
	int rc = -ENOMEM;

	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	t->seed = seed;
	t->match = match;
	t->arg = arg;
	rc = qs_dtable_resize(t, QS_DTABLE_MIN_SLOTS);
	if (rc)
		goto out;
	*out = t;
	t = NULL;
out:
	qs_dtable_free(t);
	return rc;
}

void
qs_dtable_free(struct qs_dtable *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t);
}

uint64_t
qs_dtable_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

uint64_t
qs_dtable_hash(const struct qs_dtable *t, const uint8_t digest[QS_DIGEST_BYTES])
{
	uint64_t x;

	memcpy(&x, digest, sizeof(x));
	return qs_dtable_mix(x ^ t->seed);
}

uint32_t
qs_dtable_find(const struct qs_dtable *t, uint64_t hash, const void *key)
{
	size_t i;

	for (i = hash & t->mask;; i = (i + 1) & t->mask) {
		const struct qs_dtable_slot *s = &t->slots[i];

		if (s->id == QS_DTABLE_NONE)
			return QS_DTABLE_NONE;
		if (s->hash == hash && t->match(t->arg, s->id, key))
			return s->id;
	}
}

uint32_t
qs_dtable_lookup(const struct qs_dtable *t, const uint8_t digest[QS_DIGEST_BYTES])
{
	return qs_dtable_find(t, qs_dtable_hash(t, digest), digest);
}

int
qs_dtable_reserve(struct qs_dtable *t, size_t more)
{
	size_t slots = t->mask + 1;

	if (more > SIZE_MAX - t->count)
		return -ENOMEM;
	while (!qs_dtable_fits(t->count + more, slots)) {
		if (slots > SIZE_MAX / 2)
			return -ENOMEM;
		slots *= 2;
	}
	return slots == t->mask + 1 ? 0 : qs_dtable_resize(t, slots);
}

void
qs_dtable_insert(struct qs_dtable *t, uint64_t hash, uint32_t id)
{
	if (id == QS_DTABLE_NONE || !qs_dtable_fits(t->count + 1, t->mask + 1)) {
		fprintf(stderr, "qs_dtable: insert without room reserved\n");
		abort();
	}
	qs_dtable_place(t->slots, t->mask, hash, id);
	t->count++;
}

/* Whether home slot `home` lies cyclically in (hole, j]: then the id at j
 * may not move back into the hole. */
static int
qs_dtable_between(size_t hole, size_t home, size_t j)
{
	if (hole <= j)
		return hole < home && home <= j;
	return hole < home || home <= j;
}

int
qs_dtable_remove(struct qs_dtable *t, uint64_t hash, uint32_t id)
{
	size_t hole, j;

	if (id == QS_DTABLE_NONE)
		return QS_ENOTFOUND;
	for (hole = hash & t->mask; t->slots[hole].id != id; hole = (hole + 1) & t->mask) {
		if (t->slots[hole].id == QS_DTABLE_NONE)
			return QS_ENOTFOUND;
	}
	for (j = hole;;) {
		j = (j + 1) & t->mask;
		if (t->slots[j].id == QS_DTABLE_NONE)
			break;
		if (qs_dtable_between(hole, t->slots[j].hash & t->mask, j))
			continue;
		t->slots[hole] = t->slots[j];
		hole = j;
	}
	t->slots[hole].id = QS_DTABLE_NONE;
	t->count--;
	return 0;
}

size_t
qs_dtable_count(const struct qs_dtable *t)
{
	return t->count;
}
