/*
 * Proofs of store (docs/PROTOCOL.md, "ProofOfStore"): the epoch's validator
 * set as verification needs it, the aggregation of SignedBatchInfos into a
 * ProofOfStore by the author of a batch, and the verification of a received
 * proof before it enters the proof queue.
 *
 * Quorum: 3 * signed_power > 2 * total_power, in integers. Voting powers are
 * capped at 2^62 each and in total (QS_MAX_VOTING_POWER), so 3 * power cannot
 * overflow a uint64_t.
 *
 * Signer bitmap: bit i, for validator i in the epoch's order, is bit i % 8 of
 * byte i / 8, least significant bit first; the bitmap is ceil(n / 8) bytes and
 * the bits from n on are zero. Signatures follow in bitmap order, 64 bytes
 * each.
 *
 * Pure: no I/O, no clock (now_us is passed in), no global state. A valset is
 * read-only after qs_valset_new() and may be shared by threads; a builder
 * belongs to one thread.
 */
#ifndef QS_CORE_PROOF_H
#define QS_CORE_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/sigmemo.h"
#include "quorumstore/v1/types.pb-c.h"

struct qs_valset;
struct qs_proof_builder;

/*
 * Create the validator set of `epoch` on chain `chain_id`: n validators (1 ..
 * QS_MAX_VALIDATORS), validator i with signing key keys[i] and voting power
 * powers[i] (1 .. QS_MAX_VOTING_POWER, and a total of at most
 * QS_MAX_VOTING_POWER). The arrays are copied. Returns 0 and sets *out,
 * which the caller frees with qs_valset_free(); -EINVAL for a count or power
 * out of range or a key listed twice; -ENOMEM.
 */
int qs_valset_new(uint32_t chain_id, uint64_t epoch, size_t n,
                  const uint8_t (*keys)[QS_PUBKEY_BYTES], const uint64_t *powers,
                  struct qs_valset **out);

/* Free a valset; NULL is fine. Free every builder made with it first. */
void qs_valset_free(struct qs_valset *vs);

/* The index of the validator whose signing key is `key`, or -1. O(log n). */
int qs_valset_index(const struct qs_valset *vs, const uint8_t key[QS_PUBKEY_BYTES]);

/* 1 when signed_power is a quorum of the set: 3 * signed_power > 2 * total.
 * A signed_power above the total (a caller bug) counts as the total. */
int qs_valset_is_quorum(const struct qs_valset *vs, uint64_t signed_power);

size_t qs_valset_size(const struct qs_valset *vs);
uint64_t qs_valset_epoch(const struct qs_valset *vs);
uint32_t qs_valset_chain_id(const struct qs_valset *vs);
uint64_t qs_valset_total_power(const struct qs_valset *vs);
/* The voting power of validator i; 0 for an index out of range. */
uint64_t qs_valset_power(const struct qs_valset *vs, int i);

/* What qs_proof_builder_add() did with one signature (a SignedBatchInfo). */
enum qs_proof_sig {
	QS_PROOF_SIG_ADDED,          /* verified and counted */
	QS_PROOF_SIG_DUPLICATE,      /* the signer is counted already: dropped unverified */
	QS_PROOF_SIG_UNKNOWN_SIGNER, /* not in the epoch's validator set */
	QS_PROOF_SIG_INFO_MISMATCH,  /* some field differs from the BatchInfo that was sent */
	QS_PROOF_SIG_BAD_SIGNATURE,  /* does not verify under the signer's key */
	QS_PROOF_SIG_MALFORMED,      /* a field missing or of the wrong size (add_pb) */
	QS_PROOF_SIG_COUNT,
};

/*
 * Names of the qs_proof_sig values, indexed by value: "added", "duplicate",
 * "unknown_signer", "info_mismatch", "bad_signature", "malformed". These are
 * the label values of the per-outcome metric; register all of them.
 */
extern const char *const qs_proof_sig_names[QS_PROOF_SIG_COUNT];

/*
 * Start aggregating signatures for `info`, a batch this node authored and
 * sent (copied). `vs` is borrowed and must outlive the builder. Everything
 * the builder needs is allocated here: adding and building never allocate.
 * Returns 0 and sets *out (free with qs_proof_builder_free()); -EINVAL when
 * info->epoch is not the set's epoch; -ENOMEM.
 */
int qs_proof_builder_new(const struct qs_valset *vs, const struct qs_batch_info *info,
                         struct qs_proof_builder **out);

/* Free a builder and every proof it built; NULL is fine. */
void qs_proof_builder_free(struct qs_proof_builder *b);

/*
 * Count one signature: `signer`'s `sig` over `info`. The author's own
 * signature counts towards the quorum like any other (the author adds it
 * with qs_proof_builder_add_own(), below). The signer is authenticated by
 * the signature alone, so it does not matter which peer relayed it. The
 * checks, in this order:
 *   signer not in the set                         UNKNOWN_SIGNER
 *   any field of info differs from the one sent   INFO_MISMATCH
 *   signer counted already                        DUPLICATE
 *   signature does not verify                     BAD_SIGNATURE
 * so a signer is counted at most once, and a forged signature never. Returns
 * the outcome (>= 0), or QS_ECRYPTO (< 0) when OpenSSL failed (out of
 * memory): nothing was counted, and the signature was not found bad.
 */
int qs_proof_builder_add(struct qs_proof_builder *b, const uint8_t signer[QS_PUBKEY_BYTES],
                         const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES]);

/*
 * The author's own signature, made by this node's signer a moment ago with
 * the key the daemon matched against the validator set at start: counted
 * like qs_proof_builder_add() (UNKNOWN_SIGNER, INFO_MISMATCH, DUPLICATE in
 * the same order) but not verified, which would cost one Ed25519
 * verification per own batch for a signature that is published unverified
 * in every ack anyway. A wrong `sig` here is counted: a proof built with it
 * is refused by every peer (qs_proof_verify(), BAD_SIGNATURE).
 */
int qs_proof_builder_add_own(struct qs_proof_builder *b, const uint8_t signer[QS_PUBKEY_BYTES],
                             const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES]);

/*
 * qs_proof_builder_add() for a SignedBatchInfo as received: returns
 * QS_PROOF_SIG_MALFORMED when info is missing, or the author, digest or
 * signer is not 32 bytes, or the signature not 64 bytes. `sbi` is only read.
 */
int qs_proof_builder_add_pb(struct qs_proof_builder *b,
                            const Quorumstore__V1__SignedBatchInfo *sbi);

/* 1 when the signatures counted are a quorum. */
int qs_proof_builder_has_quorum(const struct qs_proof_builder *b);

/* The voting power and number of the signers counted so far. */
uint64_t qs_proof_builder_signed_power(const struct qs_proof_builder *b);
size_t qs_proof_builder_signers(const struct qs_proof_builder *b);

/* The BatchInfo being aggregated (owned by the builder). */
const struct qs_batch_info *qs_proof_builder_info(const struct qs_proof_builder *b);

/*
 * Fill *out (initialised here) with the proof of every signature counted so
 * far. Returns 0, or -EAGAIN (and leaves *out untouched) before a quorum.
 * Ownership: *out and everything it points to (info, bitmap, signatures)
 * belong to the builder, valid until the builder is freed or built again;
 * the caller packs or copies it and must not free any of it. Signatures
 * added after a build do not change the proof already built.
 */
int qs_proof_builder_build(struct qs_proof_builder *b, Quorumstore__V1__ProofOfStore *out);

/* Why qs_proof_verify() refused a proof. */
enum qs_proof_reason {
	QS_PROOF_OK,
	QS_PROOF_MALFORMED,       /* info missing, author or digest not 32 bytes */
	QS_PROOF_WRONG_EPOCH,     /* info's epoch is not the set's */
	QS_PROOF_UNKNOWN_AUTHOR,  /* the batch's author is not in the set */
	QS_PROOF_EXPIRED,         /* expiration_us <= now_us */
	QS_PROOF_BAD_BITMAP,      /* not ceil(n / 8) bytes, or a bit from n on set */
	QS_PROOF_SIGNATURE_COUNT, /* signatures != bits set, or one not 64 bytes */
	QS_PROOF_NO_QUORUM,       /* the signers' power is not a quorum */
	QS_PROOF_BAD_SIGNATURE,   /* a signature does not verify */
	QS_PROOF_REASON_COUNT,
};

/*
 * Names of the qs_proof_reason values, indexed by value: "ok", "malformed",
 * "wrong_epoch", "unknown_author", "expired", "bad_bitmap",
 * "signature_count", "no_quorum", "bad_signature". Label values of the
 * per-reason metric: a count of proofs received by result registers all of
 * them, a count of rejections the ones from index 1 on.
 */
extern const char *const qs_proof_reason_names[QS_PROOF_REASON_COUNT];

/*
 * Verify a ProofOfStore received from a peer, as every node does before the
 * proof enters its queue. The rules, in this order (cheap ones first, the
 * signatures last):
 *   info missing, author or digest not 32 bytes      MALFORMED
 *   epoch != the set's                               WRONG_EPOCH
 *   author not in the set                            UNKNOWN_AUTHOR
 *   expiration_us <= now_us                          EXPIRED
 *   bitmap not ceil(n / 8) bytes, or a bit >= n set  BAD_BITMAP
 *   signatures != bits set, or one not 64 bytes      SIGNATURE_COUNT
 *   power of the signers not a quorum                NO_QUORUM
 *   a signature does not verify under its signer's   BAD_SIGNATURE
 *   key (the first bad one stops the check)
 * A bitmap names each validator at most once, so a proof cannot count a
 * signer twice; a signature repeated for two bits fails under the second
 * key. Returns QS_PROOF_OK (0) and fills *info_out (if not NULL) from
 * p->info; a reason (> 0) with *info_out untouched; or QS_ECRYPTO (< 0) when
 * OpenSSL failed (out of memory), which says nothing about the proof. `p` is
 * only read.
 */
int qs_proof_verify(const struct qs_valset *vs, uint64_t now_us,
                    const Quorumstore__V1__ProofOfStore *p, struct qs_batch_info *info_out);

/*
 * qs_proof_verify(), except that the signature of validator `self` (this
 * node's index in the set) is looked up in `memo` first: when it is the
 * signature this node made over exactly this info (core/sigmemo.h), it is
 * not verified again; any other is verified as before. With `memo` NULL or
 * `self` < 0 it is qs_proof_verify(). On QS_PROOF_OK *recognised (if not
 * NULL) says whether the own signature was found in the memo.
 */
int qs_proof_verify_own(const struct qs_valset *vs, uint64_t now_us,
                        const Quorumstore__V1__ProofOfStore *p, int self,
                        const struct qs_sigmemo *memo, struct qs_batch_info *info_out,
                        bool *recognised);

#endif
