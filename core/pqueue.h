/*
 * The proof queue: the durable proofs of store this node holds (formed here
 * or received and verified), from which GetPayload picks what consensus
 * proposes. A proof leaves the queue when its batch is committed
 * (qs_pqueue_remove()) or expires (qs_pqueue_expire()); a pull only reads it.
 *
 * Authors are the validator indexes 0 .. n_authors - 1 of the epoch. Each
 * author may have at most per_author_max proofs queued.
 *
 * Complexity, for n queued proofs:
 *     add                       O(log n) expected; the tables grow by doubling
 *     get, remove by digest     O(1) expected / O(log n) expected
 *     expire                    O(log n) per proof removed
 *     pull                      O(n_exclude + authors + picked + skipped),
 *                               skipped being the proofs passed over as
 *                               excluded, expired or of another epoch; no
 *                               allocation
 *     list                      O(authors + log n + max) per page
 * Per author the proofs are kept in (batch_id, digest) order in a treap whose
 * priorities come from the keyed digest hash (so a peer cannot unbalance
 * it), threaded by a list in the same order; all of them are in a min-heap on
 * expiration.
 *
 * Pure and single-threaded (the event loop's): no I/O, no clock, no locks.
 */
#ifndef QS_CORE_PQUEUE_H
#define QS_CORE_PQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/codec.h"

struct qs_pqueue;

/*
 * Create an empty queue for `n_authors` authors (1 .. INT_MAX; the config
 * allows up to QS_MAX_VALIDATORS) with a quota of `per_author_max` proofs
 * each. `hash_seed` keys the digest hash so that a peer cannot choose digests
 * that collide in the table or unbalance the per-author order: pass a random
 * value (getrandom), tests may pass a constant. Returns 0 and sets *out,
 * which the caller frees with qs_pqueue_free(); -EINVAL for an author count
 * out of range; -ENOMEM.
 */
int qs_pqueue_new(size_t n_authors, uint64_t per_author_max, uint64_t hash_seed,
                  struct qs_pqueue **out);

/* Free the queue and the proofs it owns; NULL is fine. */
void qs_pqueue_free(struct qs_pqueue *q);

/*
 * Add a durable proof of `info` (copied) by `author`. `proof` is the packed
 * ProofOfStore, proof_len bytes from malloc(). On 0 the queue owns `proof`
 * and frees it when the proof leaves the queue. On any error the caller keeps
 * it and nothing changed: QS_EEXISTS for a digest already queued; QS_ELIMIT
 * when the author has per_author_max proofs queued; -EINVAL for an author out
 * of range, or a NULL proof with a non-zero length; -ENOMEM.
 */
int qs_pqueue_add(struct qs_pqueue *q, int author, const struct qs_batch_info *info, uint8_t *proof,
                  size_t proof_len);

/* A queued proof as the queue shows it. info and proof point into the queue:
 * they are valid until the next add, remove, expire or free. */
struct qs_pq_item {
	const struct qs_batch_info *info;
	int author;
	const uint8_t *proof;
	size_t proof_len;
	int inlined; /* pull only: the payload is to be sent inline */
};

/* Look up a proof by digest: 0 and *out (inlined 0), or QS_ENOTFOUND. */
int qs_pqueue_get(const struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES],
                  struct qs_pq_item *out);

/* Remove the proof of `digest` (its batch was committed) and free it.
 * Returns 1 if it was queued, 0 if not. */
int qs_pqueue_remove(struct qs_pqueue *q, const uint8_t digest[QS_DIGEST_BYTES]);

/* Remove and free every proof whose expiration_us <= now_us; returns how
 * many. */
size_t qs_pqueue_expire(struct qs_pqueue *q, uint64_t now_us);

/* Proofs queued, in all and of one author (0 for an author out of range). */
size_t qs_pqueue_count(const struct qs_pqueue *q);
size_t qs_pqueue_author_count(const struct qs_pqueue *q, int author);

/* The earliest expiration queued, UINT64_MAX if the queue is empty (when to
 * call qs_pqueue_expire() next). */
uint64_t qs_pqueue_next_expiration(const struct qs_pqueue *q);

/* The bounds of one pull. num_txns and num_bytes of the picks add up to at
 * most max_txns and max_bytes; those of the inlined picks (which count
 * toward the first two as well) to at most max_inline_txns and
 * max_inline_bytes. */
struct qs_pq_limits {
	uint64_t max_txns;
	uint64_t max_bytes;
	uint64_t max_inline_txns;
	uint64_t max_inline_bytes;
	int return_non_full; /* 0: a pull that is not full returns nothing */
};

/* Whether the payload of `info` may be sent inline now (the daemon answers:
 * durable here and in the payload cache). Nonzero: yes. Called during a
 * pull: it must not change the queue. */
typedef int (*qs_pq_inline_fn)(void *arg, const struct qs_batch_info *info);

/*
 * GetPayload's selection. Fills out[0 .. n) with proofs and returns n
 * (<= out_cap):
 *   - round robin over the authors: one proof per author per round, rounds
 *     continuing while anything fits. The author that goes first moves on
 *     from pull to pull (to the one after the first author of the last pull
 *     that returned proofs), so that no author is always first;
 *   - per author, the smallest batch_id first (ties by digest);
 *   - never a digest of exclude[0 .. n_exclude) (duplicates and digests not
 *     queued are fine), one whose expiration_us <= now_us, or one whose
 *     info->epoch != epoch; these are passed over, not removed;
 *   - when an author's next candidate does not fit in max_txns or max_bytes,
 *     that author is done for this pull (others' smaller ones may still fit);
 *   - a pick is inlined (item.inlined = 1) when it fits in what is left of
 *     the inline budget and then inline_fn(arg, info) (NULL: never) says so;
 *     inline_fn is not called for a pick over the inline budget.
 * The result is full when a candidate did not fit, when max_txns or
 * max_bytes was reached exactly, or when out_cap proofs were picked. When it
 * is not full and !lim->return_non_full, 0 is returned (consensus waits for
 * a fuller payload); out[] may have been written then. An empty queue or an
 * out_cap of 0 returns 0. Nothing is allocated, so a pull never fails; the
 * queue is not changed but for whom the next pull starts with.
 */
ssize_t qs_pqueue_pull(struct qs_pqueue *q, const struct qs_pq_limits *lim, uint64_t now_us,
                       uint64_t epoch, const uint8_t (*exclude)[QS_DIGEST_BYTES], size_t n_exclude,
                       qs_pq_inline_fn inline_fn, void *arg, struct qs_pq_item *out,
                       size_t out_cap);

/*
 * Listing for operators: the proofs of `author` (-1: every author), in
 * (author, batch_id, digest) order, from the opaque *cursor (0 to start).
 * Fills up to `max` items (inlined 0) and returns how many; sets *cursor for
 * the next page, 0 when nothing follows. The cursor is a position in that
 * order: proofs added or removed between pages may be missed or repeated.
 * An author out of range lists nothing.
 */
size_t qs_pqueue_list(const struct qs_pqueue *q, int author, uint64_t *cursor,
                      struct qs_pq_item *out, size_t max);

#endif
