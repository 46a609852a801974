/*
 * A hash table of ids keyed by digests: the caller keeps its items in an
 * array and names each by its index (a uint32 id below QS_DTABLE_NONE); the
 * table maps a digest, or any other key the caller hashes, to that id.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones). A slot holds the key's 64-bit hash and the id, not the key:
 * a probe compares hashes and asks the caller (the match function) only
 * when they are equal. The table is kept at most 3/4 full and doubles, from
 * 64 slots, when an insertion would pass that; it never shrinks.
 *
 * Digests are uniform, but a peer chooses them: their hash is keyed with the
 * table's seed so that nobody who does not know it can make them collide.
 *
 * Expected costs: find, insert and remove O(1); reserve O(n) when it grows.
 * Only new, reserve and free allocate or free memory. Pure and
 * single-threaded: no I/O, no locks.
 */
#ifndef QS_CORE_DTABLE_H
#define QS_CORE_DTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

#define QS_DTABLE_NONE UINT32_MAX /* no id */

struct qs_dtable;

/* Nonzero when the item named `id` has the key `key`, the pointer passed to
 * qs_dtable_find() (the digest, for qs_dtable_lookup()). */
typedef int (*qs_dtable_match_fn)(const void *arg, uint32_t id, const void *key);

/*
 * Create an empty table. `seed` keys qs_dtable_hash(): pass a random value
 * (getrandom), tests may pass a constant. `match(arg, id, key)` tells the
 * items apart; arg is borrowed and must outlive the table. Returns 0 and
 * sets *out, which the caller frees with qs_dtable_free(); -ENOMEM.
 */
int qs_dtable_new(uint64_t seed, qs_dtable_match_fn match, const void *arg, struct qs_dtable **out);

/* Free the table (not the items); NULL is fine. */
void qs_dtable_free(struct qs_dtable *t);

/* splitmix64's finaliser: a bijection of 64-bit values that spreads every
 * input bit, for hashing other keys and deriving values from a hash. */
uint64_t qs_dtable_mix(uint64_t x);

/* The keyed hash of `digest` under the table's seed. */
uint64_t qs_dtable_hash(const struct qs_dtable *t, const uint8_t digest[QS_DIGEST_BYTES]);

/* The id whose key has `hash` and matches `key`, or QS_DTABLE_NONE. */
uint32_t qs_dtable_find(const struct qs_dtable *t, uint64_t hash, const void *key);

/* qs_dtable_find() of a digest under its qs_dtable_hash(). */
uint32_t qs_dtable_lookup(const struct qs_dtable *t, const uint8_t digest[QS_DIGEST_BYTES]);

/* Make room for `more` insertions beyond the ids held, doubling as often as
 * needed, so that they cannot fail. Returns 0; -ENOMEM (nothing changed). */
int qs_dtable_reserve(struct qs_dtable *t, size_t more);

/*
 * Insert `id` (not held) under `hash`, after a qs_dtable_reserve() that left
 * room for it: it never allocates. The caller makes sure that no held id has
 * the same key. Inserting without room is a caller bug and aborts.
 */
void qs_dtable_insert(struct qs_dtable *t, uint64_t hash, uint32_t id);

/* Remove `id`, inserted under `hash`. Returns 0, or QS_ENOTFOUND when it is
 * not held there. */
int qs_dtable_remove(struct qs_dtable *t, uint64_t hash, uint32_t id);

/* The ids held. */
size_t qs_dtable_count(const struct qs_dtable *t);

#endif
