#include "core/batch.h"

#include <string.h>

#include "config/config.h"
#include "core/error.h"

#define QS_NACK(name) QUORUMSTORE__V1__NACK_REASON__NACK_REASON_##name

_Static_assert(QS_NACK(CLOCK_SKEW) + 1 == QS_NACK_REASON_COUNT,
               "QS_NACK_REASON_COUNT does not match NackReason in types.proto");

const char *const qs_nack_reason_names[QS_NACK_REASON_COUNT] = {
    [QS_NACK(UNSPECIFIED)] = "UNSPECIFIED",
    [QS_NACK(STORAGE_FULL)] = "STORAGE_FULL",
    [QS_NACK(IO_ERROR)] = "IO_ERROR",
    [QS_NACK(STORAGE_FAILED)] = "STORAGE_FAILED",
    [QS_NACK(WRONG_AUTHOR)] = "WRONG_AUTHOR",
    [QS_NACK(BAD_DIGEST)] = "BAD_DIGEST",
    [QS_NACK(EXPIRED)] = "EXPIRED",
    [QS_NACK(BEYOND_LIFETIME)] = "BEYOND_LIFETIME",
    [QS_NACK(WRONG_EPOCH)] = "WRONG_EPOCH",
    [QS_NACK(COUNT_MISMATCH)] = "COUNT_MISMATCH",
    [QS_NACK(TOO_MANY_TXNS)] = "TOO_MANY_TXNS",
    [QS_NACK(TOO_MANY_BYTES)] = "TOO_MANY_BYTES",
    [QS_NACK(EMPTY_BATCH)] = "EMPTY_BATCH",
    [QS_NACK(OVER_QUOTA)] = "OVER_QUOTA",
    [QS_NACK(EQUIVOCATION)] = "EQUIVOCATION",
    [QS_NACK(MALFORMED)] = "MALFORMED",
    [QS_NACK(SHUTTING_DOWN)] = "SHUTTING_DOWN",
    [QS_NACK(OVERLOADED)] = "OVERLOADED",
    [QS_NACK(CLOCK_SKEW)] = "CLOCK_SKEW",
};

const char *
qs_nack_reason_name(int reason)
{
	if (reason < 0 || reason >= QS_NACK_REASON_COUNT)
		reason = QS_NACK(UNSPECIFIED);
	return qs_nack_reason_names[reason];
}

int
qs_nack_reason_from_error(int qs_err)
{
	switch (qs_err) {
	case 0:
		return QS_NACK(UNSPECIFIED);
	case QS_ENOSPACE:
		return QS_NACK(STORAGE_FULL);
	case QS_EFAILED:
		return QS_NACK(STORAGE_FAILED);
	case QS_ESHUTDOWN:
		return QS_NACK(SHUTTING_DOWN);
	case QS_EQUEUEFULL:
		return QS_NACK(OVERLOADED);
	default:
		/* A write whose outcome is unknown: nothing was signed. */
		return QS_NACK(IO_ERROR);
	}
}

int
qs_batch_info_from_pb(const Quorumstore__V1__BatchInfo *pb, struct qs_batch_info *out)
{
	if (!pb || pb->author.len != QS_PUBKEY_BYTES || pb->digest.len != QS_DIGEST_BYTES ||
	    !pb->author.data || !pb->digest.data)
		return QS_EDECODE;
	memset(out, 0, sizeof(*out));
	memcpy(out->author, pb->author.data, QS_PUBKEY_BYTES);
	out->batch_id = pb->batch_id;
	out->epoch = pb->epoch;
	out->expiration_us = pb->expiration_us;
	memcpy(out->digest, pb->digest.data, QS_DIGEST_BYTES);
	out->num_txns = pb->num_txns;
	out->num_bytes = pb->num_bytes;
	out->gas_bucket_start = pb->gas_bucket_start;
	return 0;
}

void
qs_batch_info_to_pb(const struct qs_batch_info *in, Quorumstore__V1__BatchInfo *pb)
{
	quorumstore__v1__batch_info__init(pb);
	pb->author.data = (uint8_t *)in->author;
	pb->author.len = QS_PUBKEY_BYTES;
	pb->batch_id = in->batch_id;
	pb->epoch = in->epoch;
	pb->expiration_us = in->expiration_us;
	pb->digest.data = (uint8_t *)in->digest;
	pb->digest.len = QS_DIGEST_BYTES;
	pb->num_txns = in->num_txns;
	pb->num_bytes = in->num_bytes;
	pb->gas_bucket_start = in->gas_bucket_start;
}

/*
 * Sum the transaction lengths into *total without overflow. Returns 0, or
 * the NackReason when the sum passes max_bytes or one transaction cannot be
 * encoded (its length is a u32 in the digest).
 */
static int
qs_batch_sum_bytes(const Quorumstore__V1__Batch *b, uint64_t max_bytes, uint64_t *total,
                   const char **why)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < b->n_transactions; i++) {
		uint64_t len = b->transactions[i].len;

		if (len > UINT32_MAX) {
			*why = "a transaction is 4 GiB or longer";
			return QS_NACK(TOO_MANY_BYTES);
		}
		/* sum <= max_bytes holds here, so max_bytes - sum cannot wrap. */
		if (len > max_bytes - sum) {
			*why = "transactions exceed the batch byte limit";
			return QS_NACK(TOO_MANY_BYTES);
		}
		sum += len;
	}
	*total = sum;
	return 0;
}

int
qs_batch_validate(const struct qs_validate_ctx *ctx, const uint8_t *sender,
                  const Quorumstore__V1__Batch *b, struct qs_batch_info *info, const char **detail)
{
	const struct qs_limits *lim = ctx->limits;
	uint8_t digest[QS_DIGEST_BYTES];
	struct qs_batch_info bi;
	const char *why = NULL;
	uint64_t total_bytes = 0;
	uint64_t latest_us;
	int reason;

	if (!b || qs_batch_info_from_pb(b->info, &bi) != 0) {
		why = "batch info missing, or author or digest not 32 bytes";
		reason = QS_NACK(MALFORMED);
		goto out;
	}
	if (b->n_transactions && !b->transactions) {
		why = "transactions missing";
		reason = QS_NACK(MALFORMED);
		goto out;
	}
	if (sender && memcmp(bi.author, sender, QS_PUBKEY_BYTES) != 0) {
		why = "author is not the sender's signing key";
		reason = QS_NACK(WRONG_AUTHOR);
		goto out;
	}
	if (bi.epoch != ctx->epoch) {
		why = "batch is not of the current epoch";
		reason = QS_NACK(WRONG_EPOCH);
		goto out;
	}
	if (sender) {
		latest_us = ctx->now_us + ctx->max_lifetime_us;
		if (latest_us < ctx->now_us)
			latest_us = UINT64_MAX;
		if (bi.expiration_us <= ctx->now_us) {
			why = "expiration is not in the future";
			reason = QS_NACK(EXPIRED);
			goto out;
		}
		if (bi.expiration_us > latest_us) {
			why = "expiration beyond the maximum batch lifetime";
			reason = QS_NACK(BEYOND_LIFETIME);
			goto out;
		}
	}
	if (b->n_transactions == 0) {
		why = "batch has no transactions";
		reason = QS_NACK(EMPTY_BATCH);
		goto out;
	}
	if (b->n_transactions > lim->batch_max_txns) {
		why = "more transactions than the batch limit";
		reason = QS_NACK(TOO_MANY_TXNS);
		goto out;
	}
	reason = qs_batch_sum_bytes(b, lim->batch_max_bytes, &total_bytes, &why);
	if (reason)
		goto out;
	if (bi.num_txns != b->n_transactions || bi.num_bytes != total_bytes) {
		why = "num_txns or num_bytes differ from the payload";
		reason = QS_NACK(COUNT_MISMATCH);
		goto out;
	}
	if (qs_codec_batch_digest(ctx->chain_id, bi.author, bi.epoch, bi.batch_id, b->transactions,
	                          b->n_transactions, digest) != 0) {
		why = "digest computation failed";
		reason = QS_NACK(OVERLOADED);
		goto out;
	}
	if (memcmp(digest, bi.digest, QS_DIGEST_BYTES) != 0) {
		why = "digest does not match the transactions";
		reason = QS_NACK(BAD_DIGEST);
		goto out;
	}
	*info = bi;
	reason = QS_NACK(UNSPECIFIED);
out:
	if (reason && detail)
		*detail = why;
	return reason;
}
