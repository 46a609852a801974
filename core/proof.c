#include "core/proof.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/error.h"

struct qs_valset_key {
	uint8_t key[QS_PUBKEY_BYTES];
	int index;
};

struct qs_valset {
	uint32_t chain_id;
	uint64_t epoch;
	size_t n;
	uint64_t total_power;
	uint64_t *powers;                 /* by validator index */
	uint8_t (*pubs)[QS_PUBKEY_BYTES]; /* by validator index */
	struct qs_valset_key *by_key;     /* sorted by key, for qs_valset_index() */
};

struct qs_proof_builder {
	const struct qs_valset *vs;
	struct qs_batch_info info;
	Quorumstore__V1__BatchInfo pb_info; /* points into info */
	uint8_t *counted;                   /* signer bitmap of the signatures counted */
	uint8_t (*sigs)[QS_SIG_BYTES];      /* by validator index, valid where counted */
	uint64_t signed_power;
	size_t n_signers;
	/* The last proof built; the signatures point into sigs, which a later
	 * add never overwrites (a signer is counted once). */
	uint8_t *built_bitmap;
	ProtobufCBinaryData *built_sigs;
};

const char *const qs_proof_sig_names[QS_PROOF_SIG_COUNT] = {
    [QS_PROOF_SIG_ADDED] = "added",
    [QS_PROOF_SIG_DUPLICATE] = "duplicate",
    [QS_PROOF_SIG_UNKNOWN_SIGNER] = "unknown_signer",
    [QS_PROOF_SIG_INFO_MISMATCH] = "info_mismatch",
    [QS_PROOF_SIG_BAD_SIGNATURE] = "bad_signature",
    [QS_PROOF_SIG_MALFORMED] = "malformed",
};

const char *const qs_proof_reason_names[QS_PROOF_REASON_COUNT] = {
    [QS_PROOF_OK] = "ok",
    [QS_PROOF_MALFORMED] = "malformed",
    [QS_PROOF_WRONG_EPOCH] = "wrong_epoch",
    [QS_PROOF_UNKNOWN_AUTHOR] = "unknown_author",
    [QS_PROOF_EXPIRED] = "expired",
    [QS_PROOF_BAD_BITMAP] = "bad_bitmap",
    [QS_PROOF_SIGNATURE_COUNT] = "signature_count",
    [QS_PROOF_NO_QUORUM] = "no_quorum",
    [QS_PROOF_BAD_SIGNATURE] = "bad_signature",
};

static size_t
qs_bitmap_bytes(size_t n)
{
	return (n + 7) / 8;
}

static int
qs_bit_get(const uint8_t *bitmap, size_t i)
{
	return bitmap[i / 8] >> (i % 8) & 1;
}

static void
qs_bit_set(uint8_t *bitmap, size_t i)
{
	bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int
qs_valset_key_cmp(const void *a, const void *b)
{
	const struct qs_valset_key *x = a, *y = b;

	return memcmp(x->key, y->key, QS_PUBKEY_BYTES);
}

int
qs_valset_new(uint32_t chain_id, uint64_t epoch, size_t n, const uint8_t (*keys)[QS_PUBKEY_BYTES],
              const uint64_t *powers, struct qs_valset **out)
{
	struct qs_valset *vs;
	int rc = -ENOMEM;

	if (n == 0 || n > QS_MAX_VALIDATORS)
		return -EINVAL;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->chain_id = chain_id;
	vs->epoch = epoch;
	vs->n = n;
	vs->powers = calloc(n, sizeof(*vs->powers));
	vs->pubs = calloc(n, sizeof(*vs->pubs));
	vs->by_key = calloc(n, sizeof(*vs->by_key));
	if (!vs->powers || !vs->pubs || !vs->by_key)
		goto out;

	for (size_t i = 0; i < n; i++) {
		/* total <= QS_MAX_VOTING_POWER holds here, so the subtraction
		 * cannot wrap. */
		if (powers[i] == 0 || powers[i] > QS_MAX_VOTING_POWER - vs->total_power) {
			rc = -EINVAL;
			goto out;
		}
		vs->total_power += powers[i];
		vs->powers[i] = powers[i];
		memcpy(vs->by_key[i].key, keys[i], QS_PUBKEY_BYTES);
		vs->by_key[i].index = (int)i;
		memcpy(vs->pubs[i], keys[i], QS_PUBKEY_BYTES);
	}
	qsort(vs->by_key, n, sizeof(*vs->by_key), qs_valset_key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (qs_valset_key_cmp(&vs->by_key[i - 1], &vs->by_key[i]) == 0) {
			rc = -EINVAL;
			goto out;
		}
	}
	*out = vs;
	vs = NULL;
	rc = 0;
out:
	qs_valset_free(vs);
	return rc;
}

void
qs_valset_free(struct qs_valset *vs)
{
	if (!vs)
		return;
	free(vs->pubs);
	free(vs->powers);
	free(vs->by_key);
	free(vs);
}

int
qs_valset_index(const struct qs_valset *vs, const uint8_t key[QS_PUBKEY_BYTES])
{
	struct qs_valset_key probe;
	const struct qs_valset_key *hit;

	memcpy(probe.key, key, QS_PUBKEY_BYTES);
	hit = bsearch(&probe, vs->by_key, vs->n, sizeof(*vs->by_key), qs_valset_key_cmp);
	return hit ? hit->index : -1;
}

int
qs_valset_is_quorum(const struct qs_valset *vs, uint64_t signed_power)
{
	if (signed_power > vs->total_power)
		signed_power = vs->total_power;
	/* Both are <= 2^62: neither product overflows. */
	return 3 * signed_power > 2 * vs->total_power;
}

size_t
qs_valset_size(const struct qs_valset *vs)
{
	return vs->n;
}

uint64_t
qs_valset_epoch(const struct qs_valset *vs)
{
	return vs->epoch;
}

uint32_t
qs_valset_chain_id(const struct qs_valset *vs)
{
	return vs->chain_id;
}

uint64_t
qs_valset_total_power(const struct qs_valset *vs)
{
	return vs->total_power;
}

uint64_t
qs_valset_power(const struct qs_valset *vs, int i)
{
	if (i < 0 || (size_t)i >= vs->n)
		return 0;
	return vs->powers[i];
}

/* Field by field: the struct has padding, which memcmp would compare. */
static int
qs_info_equal(const struct qs_batch_info *a, const struct qs_batch_info *b)
{
	return memcmp(a->author, b->author, QS_PUBKEY_BYTES) == 0 && a->batch_id == b->batch_id &&
	       a->epoch == b->epoch && a->expiration_us == b->expiration_us &&
	       memcmp(a->digest, b->digest, QS_DIGEST_BYTES) == 0 && a->num_txns == b->num_txns &&
	       a->num_bytes == b->num_bytes && a->gas_bucket_start == b->gas_bucket_start;
}

int
qs_proof_builder_new(const struct qs_valset *vs, const struct qs_batch_info *info,
                     struct qs_proof_builder **out)
{
	struct qs_proof_builder *b;
	size_t nb = qs_bitmap_bytes(vs->n);
	int rc = -ENOMEM;

	if (info->epoch != vs->epoch)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vs = vs;
	b->info = *info;
	qs_batch_info_to_pb(&b->info, &b->pb_info);
	b->counted = calloc(nb, 1);
	b->built_bitmap = calloc(nb, 1);
	b->sigs = calloc(vs->n, sizeof(*b->sigs));
	b->built_sigs = calloc(vs->n, sizeof(*b->built_sigs));
	if (!b->counted || !b->built_bitmap || !b->sigs || !b->built_sigs)
		goto out;
	*out = b;
	b = NULL;
	rc = 0;
out:
	qs_proof_builder_free(b);
	return rc;
}

void
qs_proof_builder_free(struct qs_proof_builder *b)
{
	if (!b)
		return;
	free(b->counted);
	free(b->built_bitmap);
	free(b->sigs);
	free(b->built_sigs);
	free(b);
}

static int
builder_add(struct qs_proof_builder *b, const uint8_t signer[QS_PUBKEY_BYTES],
            const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES], bool verify)
{
	const struct qs_valset *vs = b->vs;
	int i = qs_valset_index(vs, signer);
	int rc;

	if (i < 0)
		return QS_PROOF_SIG_UNKNOWN_SIGNER;
	if (!qs_info_equal(info, &b->info))
		return QS_PROOF_SIG_INFO_MISMATCH;
	/* Dropped before verification: whether or not it verifies, it would
	 * not count again. */
	if (qs_bit_get(b->counted, (size_t)i))
		return QS_PROOF_SIG_DUPLICATE;
	if (verify) {
		rc = qs_codec_info_verify(vs->pubs[i], vs->chain_id, &b->info, sig);
		if (rc == QS_EBADSIG)
			return QS_PROOF_SIG_BAD_SIGNATURE;
		if (rc)
			return rc;
	}
	memcpy(b->sigs[i], sig, QS_SIG_BYTES);
	qs_bit_set(b->counted, (size_t)i);
	b->signed_power += vs->powers[i];
	b->n_signers++;
	return QS_PROOF_SIG_ADDED;
}

int
qs_proof_builder_add(struct qs_proof_builder *b, const uint8_t signer[QS_PUBKEY_BYTES],
                     const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES])
{
	return builder_add(b, signer, info, sig, true);
}

int
qs_proof_builder_add_own(struct qs_proof_builder *b, const uint8_t signer[QS_PUBKEY_BYTES],
                         const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES])
{
	return builder_add(b, signer, info, sig, false);
}

int
qs_proof_builder_add_pb(struct qs_proof_builder *b, const Quorumstore__V1__SignedBatchInfo *sbi)
{
	struct qs_batch_info info;

	if (!sbi || qs_batch_info_from_pb(sbi->info, &info) != 0 ||
	    sbi->signer.len != QS_PUBKEY_BYTES || !sbi->signer.data ||
	    sbi->signature.len != QS_SIG_BYTES || !sbi->signature.data)
		return QS_PROOF_SIG_MALFORMED;
	return qs_proof_builder_add(b, sbi->signer.data, &info, sbi->signature.data);
}

int
qs_proof_builder_has_quorum(const struct qs_proof_builder *b)
{
	return qs_valset_is_quorum(b->vs, b->signed_power);
}

uint64_t
qs_proof_builder_signed_power(const struct qs_proof_builder *b)
{
	return b->signed_power;
}

size_t
qs_proof_builder_signers(const struct qs_proof_builder *b)
{
	return b->n_signers;
}

const struct qs_batch_info *
qs_proof_builder_info(const struct qs_proof_builder *b)
{
	return &b->info;
}

int
qs_proof_builder_build(struct qs_proof_builder *b, Quorumstore__V1__ProofOfStore *out)
{
	size_t n = b->vs->n, k = 0;

	if (!qs_proof_builder_has_quorum(b))
		return -EAGAIN;
	memcpy(b->built_bitmap, b->counted, qs_bitmap_bytes(n));
	for (size_t i = 0; i < n; i++) {
		if (!qs_bit_get(b->counted, i))
			continue;
		b->built_sigs[k].data = b->sigs[i];
		b->built_sigs[k].len = QS_SIG_BYTES;
		k++;
	}
	quorumstore__v1__proof_of_store__init(out);
	out->info = &b->pb_info;
	out->signer_bitmap.data = b->built_bitmap;
	out->signer_bitmap.len = qs_bitmap_bytes(n);
	out->n_signatures = k;
	out->signatures = b->built_sigs;
	return 0;
}

int
qs_proof_verify(const struct qs_valset *vs, uint64_t now_us, const Quorumstore__V1__ProofOfStore *p,
                struct qs_batch_info *info_out)
{
	return qs_proof_verify_own(vs, now_us, p, -1, NULL, info_out, NULL);
}

int
qs_proof_verify_own(const struct qs_valset *vs, uint64_t now_us,
                    const Quorumstore__V1__ProofOfStore *p, int self, const struct qs_sigmemo *memo,
                    struct qs_batch_info *info_out, bool *recognised)
{
	struct qs_batch_info info;
	const uint8_t *bitmap;
	size_t n = vs->n, nb = qs_bitmap_bytes(n), bits = 0, k = 0;
	uint64_t power = 0;
	bool own = false;
	int rc;

	if (!p || qs_batch_info_from_pb(p->info, &info) != 0)
		return QS_PROOF_MALFORMED;
	if (info.epoch != vs->epoch)
		return QS_PROOF_WRONG_EPOCH;
	if (qs_valset_index(vs, info.author) < 0)
		return QS_PROOF_UNKNOWN_AUTHOR;
	if (info.expiration_us <= now_us)
		return QS_PROOF_EXPIRED;

	bitmap = p->signer_bitmap.data;
	if (p->signer_bitmap.len != nb || !bitmap)
		return QS_PROOF_BAD_BITMAP;
	if (n % 8 && bitmap[nb - 1] >> (n % 8))
		return QS_PROOF_BAD_BITMAP;
	/* Each validator has one bit, so no signer can be counted twice. */
	for (size_t i = 0; i < n; i++) {
		if (qs_bit_get(bitmap, i)) {
			bits++;
			power += vs->powers[i]; /* at most the total: no overflow */
		}
	}
	if (p->n_signatures != bits || (bits && !p->signatures))
		return QS_PROOF_SIGNATURE_COUNT;
	for (size_t j = 0; j < bits; j++) {
		if (p->signatures[j].len != QS_SIG_BYTES || !p->signatures[j].data)
			return QS_PROOF_SIGNATURE_COUNT;
	}
	if (!qs_valset_is_quorum(vs, power))
		return QS_PROOF_NO_QUORUM;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *sig;

		if (!qs_bit_get(bitmap, i))
			continue;
		sig = p->signatures[k++].data;
		if (memo && (int)i == self && qs_sigmemo_has(memo, vs->chain_id, &info, sig)) {
			own = true;
			continue;
		}
		rc = qs_codec_info_verify(vs->pubs[i], vs->chain_id, &info, sig);
		if (rc == QS_EBADSIG)
			return QS_PROOF_BAD_SIGNATURE;
		if (rc)
			return rc;
	}
	if (info_out)
		*info_out = info;
	if (recognised)
		*recognised = own;
	return QS_PROOF_OK;
}
