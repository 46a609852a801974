/*
 * The in-memory index of the batches this node holds on disk or is writing:
 * digest -> entry, (author, batch_id) -> entry, and the entries ordered by
 * expiration. It decides what to do with each validated batch (write it,
 * sign it again without writing, or refuse it), keeps each author within its
 * memory and disk quotas, detects equivocation, and forgets batches as they
 * expire. It is rebuilt at start from the `infos` column family.
 *
 * Authors are the validator indexes 0 .. n_authors - 1 of the epoch.
 *
 * Accounting. An admission that returns QS_ADMIT_WRITE charges the author's
 * memory quota (num_bytes, one batch) until its qs_index_write_done(). A
 * batch is charged to its author's disk quota once per digest while it is
 * durable, however many times it was written (a re-persisted later
 * expiration leaves the older copy on disk for GC to remove; it is not
 * charged again). A new digest is admitted only if
 *     mem_bytes + num_bytes       <= author_mem_bytes
 *     mem_batches + 1             <= author_mem_batches
 *     disk_bytes + mem_bytes + num_bytes <= author_disk_bytes
 *     disk_batches + mem_batches + 1     <= author_disk_batches
 * (everything in flight may become durable, so the disk quota is never
 * exceeded); a rewrite of a digest already known needs only the two memory
 * rules, since it adds nothing durable. Batches added by recovery are charged
 * to the disk quota without a check: what is on disk is on disk.
 *
 * Pure and single-threaded (the event loop's): no I/O, no clock, no locks.
 * No allocation on lookups; an admission of a new digest or a recovery add
 * may grow the tables (by doubling).
 */
#ifndef QS_CORE_INDEX_H
#define QS_CORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

struct qs_quotas;
struct qs_index;

enum qs_admit {
	QS_ADMIT_WRITE,  /* persist it (payload and info), then sign */
	QS_ADMIT_SIGN,   /* durable already with an equal or later expiration: sign only */
	QS_ADMIT_REJECT, /* NACK with the reason given */
};

struct qs_author_usage {
	uint64_t mem_bytes; /* admitted for writing, write not completed */
	uint64_t mem_batches;
	uint64_t disk_bytes; /* durable, not expired */
	uint64_t disk_batches;
	uint64_t equivocations; /* equivocating batches refused, ever */
};

/*
 * Create an empty index for `n_authors` authors (1 .. QS_MAX_VALIDATORS is
 * what the config allows; up to INT_MAX works) with a copy of `quotas`.
 * `hash_seed` keys the hash tables so that a peer cannot choose digests that
 * collide in them: pass a random value (getrandom), tests may pass a
 * constant. Returns 0 and sets *out, which the caller frees with
 * qs_index_free(); -EINVAL for no author; -ENOMEM.
 */
int qs_index_new(size_t n_authors, const struct qs_quotas *quotas, uint64_t hash_seed,
                 struct qs_index **out);

/* Free the index; NULL is fine. */
void qs_index_free(struct qs_index *ix);

/* Replace the quotas (configuration reload). Batches already admitted keep
 * their charges, even if they now exceed the quotas. */
void qs_index_set_quotas(struct qs_index *ix, const struct qs_quotas *quotas);

/*
 * Decide what to do with a batch of `author` that passed
 * qs_batch_validate() (so info->digest covers author, epoch, batch_id and
 * the payload; its expiration and gas_bucket_start are not covered):
 *   - a known digest with another gas_bucket_start (not covered by the
 *     digest): REJECT, EQUIVOCATION
 *   - digest durable with an expiration >= info->expiration_us: SIGN (no
 *     write and no charge; the disk already holds it long enough)
 *   - digest durable with an earlier expiration, or its write still in
 *     flight: WRITE (writes are idempotent; the later expiration is persisted,
 *     payload and info under the new key, before it is signed again)
 *   - a new digest, but (author, batch_id) already known with another
 *     digest: REJECT, EQUIVOCATION (counted in the author's usage, nothing
 *     is recorded)
 *   - a new digest: WRITE
 *   - a WRITE over the author's quotas (see above): REJECT, OVER_QUOTA
 *   - author out of range: REJECT, WRONG_AUTHOR
 *   - no memory to grow the tables: REJECT, OVERLOADED (retryable)
 * On REJECT sets *reason to the NackReason; on WRITE and SIGN leaves it.
 * After a WRITE the caller must call qs_index_write_done() exactly once with
 * the same author and info. A REJECT or SIGN changes nothing but counters.
 */
enum qs_admit qs_index_admit(struct qs_index *ix, int author, const struct qs_batch_info *info,
                             int *reason);

/*
 * The write admitted by qs_index_admit() completed. Releases its memory
 * charge. ok: the batch is durable: charged to the disk quota if it was not
 * durable yet, and the entry keeps the latest durable expiration (with that
 * write's gas_bucket_start). !ok: nothing more; the entry is removed if
 * nothing durable and no other write of it remains (a failed write's outcome
 * is unknown, but the index never serves what it does not know is durable).
 * A write_done without a matching WRITE admission is a caller bug and aborts.
 */
void qs_index_write_done(struct qs_index *ix, int author, const struct qs_batch_info *info, int ok);

/*
 * Add a batch found durable on disk at start-up (recovery), charging its
 * author's disk quota without checking it. Returns 0; QS_EEXISTS for a
 * digest already present (the later expiration is kept); -EINVAL for an
 * author out of range; -ENOMEM. If another digest is already recorded for
 * (author, batch_id) the batch is still indexed by digest (it is on disk and
 * may be served) and the first one stays the one equivocation is checked
 * against.
 */
int qs_index_add_durable(struct qs_index *ix, int author, const struct qs_batch_info *info);

/*
 * Look up a durable batch by digest. Returns 0 and, if info is not NULL, a
 * copy of its info, whose expiration_us is the latest one durably written
 * (the key its payload and info are stored under). Returns QS_ENOTFOUND for
 * an unknown digest and for one whose write has not completed or failed:
 * never serve what is not durable.
 */
int qs_index_lookup(const struct qs_index *ix, const uint8_t digest[QS_DIGEST_BYTES],
                    struct qs_batch_info *info);

/*
 * Forget every durable batch whose expiration is <= now_us, releasing its
 * author's disk quota; an entry whose write is still in flight stays until
 * that write completes. Returns how many durable batches were forgotten.
 * O(log n) per batch forgotten; nothing else is scanned.
 */
size_t qs_index_expire(struct qs_index *ix, uint64_t now_us);

/* The earliest expiration of a durable batch, or UINT64_MAX if there is none
 * (when to call qs_index_expire() next). */
uint64_t qs_index_next_expiration(const struct qs_index *ix);

/* Durable batches, and their payload bytes (num_bytes). */
size_t qs_index_count(const struct qs_index *ix);
uint64_t qs_index_bytes(const struct qs_index *ix);

/* Writes admitted and not completed, over all authors. */
size_t qs_index_pending(const struct qs_index *ix);

/* The usage of `author`; all zero for an author out of range. */
void qs_index_author_usage(const struct qs_index *ix, int author, struct qs_author_usage *out);

/*
 * Listing for operators: the durable batches of `author` (-1: every author)
 * from the opaque *cursor (0 to start), in no meaningful order. Copies up to
 * `max` infos into out, and their authors into authors[] if it is not NULL;
 * returns how many and sets *cursor for the next page, 0 when no durable
 * batch of `author` follows. An author out of range lists nothing. Entries
 * added or removed between pages may be missed or repeated. Costs one step
 * per entry slot passed over, durable or not, up to the one after the page.
 */
size_t qs_index_list(const struct qs_index *ix, int author, uint64_t *cursor,
                     struct qs_batch_info *out, int *authors, size_t max);

#endif
