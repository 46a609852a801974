/*
 * Validation of a batch received from a peer (docs/PROTOCOL.md, "Batch
 * digest"), and the NackReason that names each way a batch can be refused.
 *
 * Pure functions: no I/O, no clock (the time is passed in), no global state.
 */
#ifndef QS_CORE_BATCH_H
#define QS_CORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "quorumstore/v1/types.pb-c.h"

struct qs_limits;

/* Number of NackReason values: 0 (UNSPECIFIED) to CLOCK_SKEW. */
#define QS_NACK_REASON_COUNT 19

/*
 * Names of the NackReason values without their "NACK_REASON_" prefix,
 * indexed by value: "UNSPECIFIED", "STORAGE_FULL", ..., "CLOCK_SKEW". These
 * are the label values of the per-reason metrics; register all of them.
 */
extern const char *const qs_nack_reason_names[QS_NACK_REASON_COUNT];

/*
 * The name of NackReason `reason`, a static string from qs_nack_reason_names.
 * A value outside the enum (a newer peer's reason) is named "UNSPECIFIED", so
 * the set of names stays bounded.
 */
const char *qs_nack_reason_name(int reason);

/*
 * The NackReason for a write that completed with error `qs_err`:
 * QS_ENOSPACE -> STORAGE_FULL, QS_EFAILED -> STORAGE_FAILED,
 * QS_ESHUTDOWN -> SHUTTING_DOWN, QS_EQUEUEFULL -> OVERLOADED, 0 ->
 * UNSPECIFIED, anything else (QS_EIO, QS_ECORRUPT, QS_ESTORE, -errno, ...)
 * -> IO_ERROR.
 */
int qs_nack_reason_from_error(int qs_err);

struct qs_validate_ctx {
	uint32_t chain_id;              /* covered by the digest */
	uint64_t epoch;                 /* the epoch a batch must carry */
	uint64_t now_us;                /* wall clock */
	uint64_t max_lifetime_us;       /* expiration must be in (now, now + max_lifetime] */
	const struct qs_limits *limits; /* borrowed */
};

/*
 * Check one batch received from a peer. Returns 0
 * (QUORUMSTORE__V1__NACK_REASON__NACK_REASON_UNSPECIFIED) and fills *info
 * from b->info when the batch is valid; otherwise returns the NackReason and,
 * if `detail` is not NULL, points *detail at a short static description for
 * the BatchNack and the log. The rules, checked in this order:
 *   info missing, author or digest not 32 bytes         MALFORMED
 *   author != sender                                    WRONG_AUTHOR
 *   epoch != ctx->epoch                                 WRONG_EPOCH
 *   expiration_us <= now_us                             EXPIRED
 *   expiration_us > now_us + max_lifetime_us            BEYOND_LIFETIME
 *   no transactions                                     EMPTY_BATCH
 *   more than limits->batch_max_txns transactions       TOO_MANY_TXNS
 *   transaction bytes > limits->batch_max_bytes, or one
 *   transaction of 2^32 bytes or more                   TOO_MANY_BYTES
 *   num_txns or num_bytes differ from the payload       COUNT_MISMATCH
 *   recomputed digest differs                           BAD_DIGEST
 * The digest, the costly check, is computed only when every other rule
 * passed. If computing it fails (OpenSSL out of memory) the batch is refused
 * with OVERLOADED, which the sender may retry.
 *
 * `sender` is the 32-byte signing key of the validator the batch came from,
 * known from its pinned TLS identity, never from a field it sent. It is NULL
 * for a batch fetched with BatchRequest: then the author rule and both
 * expiration rules are skipped. A fetched batch is served or stored on the
 * strength of a proof, and its expiration is not covered by the digest, so
 * the responder's value proves nothing: the caller takes the expiration from
 * the proof's BatchInfo, and a batch a committed block needs may be fetched
 * after it expired by the local clock. The caller must also check that
 * info->digest is the digest it asked for, and passes the proof's epoch as
 * ctx->epoch. The digest rule is never skipped.
 *
 * `b` and its contents are only read; *info holds copies, no pointers into b.
 */
int qs_batch_validate(const struct qs_validate_ctx *ctx, const uint8_t *sender,
                      const Quorumstore__V1__Batch *b, struct qs_batch_info *info,
                      const char **detail);

/*
 * Copy a protobuf BatchInfo into host form. Returns 0, or QS_EDECODE (and
 * leaves *out untouched) when pb is NULL or its author or digest is not
 * exactly 32 bytes.
 */
int qs_batch_info_from_pb(const Quorumstore__V1__BatchInfo *pb, struct qs_batch_info *out);

/*
 * Initialise *pb and fill it from `in`. pb->author and pb->digest point into
 * `in`, which must outlive every use of pb (packing it included).
 */
void qs_batch_info_to_pb(const struct qs_batch_info *in, Quorumstore__V1__BatchInfo *pb);

#endif
