/*
 * The signatures this node made most recently, so that a proof carrying one
 * of them need not have it verified again: Ed25519 verification costs about
 * twice a signature here, and in a cluster most received proofs hold this
 * node's own signature over a batch it stored and signed a moment before.
 *
 * A fixed table of `slots` entries, a power of two, indexed by the low bits
 * of the batch digest; an entry holds the whole signing encoding of the info
 * (chain id included) and the signature made over it. A newer signature
 * takes the slot of an older one. qs_sigmemo_has() answers true only for the
 * exact bytes this node signed and the exact signature it made over them,
 * so a miss, a slot taken by another batch, or an entry a peer evicted with
 * batches whose digests share its low bits, only means the signature is
 * verified as any other. Memory: slots * 200 bytes, allocated once.
 *
 * Single-threaded: no locks.
 */
#ifndef QS_CORE_SIGMEMO_H
#define QS_CORE_SIGMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

#define QS_SIGMEMO_MAX_SLOTS (1u << 20)

struct qs_sigmemo;

/* `slots` a power of two from 1 to QS_SIGMEMO_MAX_SLOTS. Returns NULL when
 * out of memory or `slots` is not one of those. */
struct qs_sigmemo *qs_sigmemo_new(size_t slots);
void qs_sigmemo_free(struct qs_sigmemo *m);

/* This node signed `info` on chain `chain_id` with `sig`. */
void qs_sigmemo_put(struct qs_sigmemo *m, uint32_t chain_id, const struct qs_batch_info *info,
                    const uint8_t sig[QS_SIG_BYTES]);

/* Is `sig` the signature this node made over exactly `info` on `chain_id`? */
bool qs_sigmemo_has(const struct qs_sigmemo *m, uint32_t chain_id, const struct qs_batch_info *info,
                    const uint8_t sig[QS_SIG_BYTES]);

#endif
