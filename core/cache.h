/*
 * The payload cache: the transactions of durable batches (copied, or taken
 * over from a decoded message), kept in memory up to a byte budget, for
 * GetBatch and for the batches GetPayload sends inline. Least recently used
 * entries are evicted to make room; every entry also leaves when its batch
 * expires (qs_cache_expire()).
 *
 * Accounting. Each entry is charged qs_cache_charge(): its payload bytes,
 * one ProtobufCBinaryData per transaction and QS_CACHE_ENTRY_OVERHEAD bytes
 * for the rest (the entry's header, its hash table and heap slots, the
 * allocator's own overhead). The sum of the charges never exceeds the budget.
 *
 * Complexity, for n entries: get, contains, remove O(1) expected; put O(1)
 * expected plus O(log n) per eviction and the copy (none when taken);
 * expire O(log n) per entry removed (a min-heap on expiration; nothing else
 * is scanned). The table grows by doubling and never shrinks.
 *
 * Pure and single-threaded (the event loop's): no I/O, no clock, no locks.
 */
#ifndef QS_CORE_CACHE_H
#define QS_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/codec.h"

/* Bytes charged for each entry beyond its payload and slices. */
#define QS_CACHE_ENTRY_OVERHEAD 256

/* And for each transaction of an entry that took its blocks
 * (qs_cache_put_taken()): the block's own header and malloc()'s. */
#define QS_CACHE_BLOCK_OVERHEAD 48

struct qs_cache;

/*
 * Create an empty cache of `budget_bytes` (0: it caches nothing). `hash_seed`
 * keys the digest hash so that a peer cannot choose digests that collide in
 * the table: pass a random value (getrandom), tests may pass a constant.
 * Returns 0 and sets *out, which the caller frees with qs_cache_free();
 * -ENOMEM.
 */
int qs_cache_new(uint64_t budget_bytes, uint64_t hash_seed, struct qs_cache **out);

/* Free the cache and every entry; NULL is fine. */
void qs_cache_free(struct qs_cache *c);

/*
 * The charge of a payload of `n_txns` transactions described by `info`:
 * info->num_bytes + n_txns * sizeof(ProtobufCBinaryData) +
 * QS_CACHE_ENTRY_OVERHEAD, or UINT64_MAX if that does not fit in 64 bits.
 */
uint64_t qs_cache_charge(const struct qs_batch_info *info, size_t n_txns);

/*
 * Insert a copy of the payload txns[0 .. n_txns) of the durable batch `info`
 * (both copied, in one allocation: the caller's buffers may be freed after
 * the call), as the most recently used entry, evicting least recently used
 * entries until its charge fits in the budget. Returns:
 *   0;
 *   QS_EEXISTS when the digest is cached already: that entry becomes the
 *     most recently used and keeps the later of the two expirations, the
 *     payload is not copied;
 *   QS_ELIMIT when the charge exceeds the whole budget (a budget of 0
 *     included), or is UINT64_MAX: nothing is cached or evicted;
 *   -EINVAL when n_txns differs from info->num_txns, the lengths do not add
 *     up to info->num_bytes, or a transaction has a length and no data;
 *   -ENOMEM; nothing changed then.
 * Zero-length transactions are kept (with a non-NULL data pointer).
 */
int qs_cache_put(struct qs_cache *c, const struct qs_batch_info *info,
                 const ProtobufCBinaryData *txns, size_t n_txns);

/*
 * qs_cache_put() without the copy: the cache takes the transactions' memory.
 * Every non-NULL txns[i].data is a block of its own that becomes the
 * cache's, whatever is returned: kept with the entry and freed with
 * free_block() when it goes, or freed before the call returns when nothing
 * is cached (QS_EEXISTS, QS_ELIMIT, -EINVAL, -ENOMEM). The caller must
 * forget the pointers. The charge adds QS_CACHE_BLOCK_OVERHEAD per
 * transaction to qs_cache_charge(). Empty transactions are kept as
 * qs_cache_put() keeps them (a block given for one is freed at once).
 */
int qs_cache_put_taken(struct qs_cache *c, const struct qs_batch_info *info,
                       const ProtobufCBinaryData *txns, size_t n_txns,
                       void (*free_block)(void *block));

/* A cached payload. Everything points into the cache. */
struct qs_cached {
	const struct qs_batch_info *info;
	const ProtobufCBinaryData *txns;
	size_t n_txns;
};

/*
 * Look up the payload of `digest` and make it the most recently used entry.
 * Returns 0 and sets *out, whose pointers are valid until the next put,
 * remove, expire, set_budget or free; or QS_ENOTFOUND.
 */
int qs_cache_get(struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES], struct qs_cached *out);

/* 1 if `digest` is cached, else 0. The recency of use is not changed. */
int qs_cache_contains(const struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES]);

/* Drop the entry of `digest` if there is one. */
void qs_cache_remove(struct qs_cache *c, const uint8_t digest[QS_DIGEST_BYTES]);

/* Drop every entry whose expiration_us <= cutoff_us (GC); returns how many.
 * Not counted as evictions. */
size_t qs_cache_expire(struct qs_cache *c, uint64_t cutoff_us);

/* Replace the budget (configuration reload), evicting least recently used
 * entries until the charges fit in it. */
void qs_cache_set_budget(struct qs_cache *c, uint64_t budget_bytes);

/* The sum of the entries' charges (<= the budget), and the entry count. */
uint64_t qs_cache_bytes(const struct qs_cache *c);
size_t qs_cache_count(const struct qs_cache *c);

/* Entries evicted to respect the budget (by put or set_budget), ever. */
uint64_t qs_cache_evictions(const struct qs_cache *c);

#endif
