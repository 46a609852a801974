/* core/proof: validator sets, aggregation of signatures, verification of proofs. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/proof.h"

#define CHAIN   7
#define EPOCH   3
#define NOW_US  UINT64_C(1767225600000000)
#define LIFE_US UINT64_C(60000000)
#define MAX_N   16

/*
 * In fork mode every passing ck_assert_*() reports its location to the
 * parent process, a write(2) each: loops use this.
 */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #cond);              \
	} while (0)

/* n validators with deterministic keys; validator i's seed is all i + 1. */
struct cluster {
	size_t n;
	EVP_PKEY *priv[MAX_N];
	uint8_t pub[MAX_N][QS_PUBKEY_BYTES];
	uint64_t power[MAX_N];
	struct qs_valset *vs;
};

/* A proof made by hand, every part owned here so that tests can damage it. */
struct hand_proof {
	struct qs_batch_info info;
	Quorumstore__V1__BatchInfo pb_info;
	uint8_t bitmap[8];
	uint8_t sigs[MAX_N + 1][QS_SIG_BYTES];
	ProtobufCBinaryData sigv[MAX_N + 1];
	Quorumstore__V1__ProofOfStore p;
};

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static EVP_PKEY *
make_key(uint8_t seed_byte, uint8_t pub[QS_PUBKEY_BYTES])
{
	uint8_t seed[32];
	size_t len = QS_PUBKEY_BYTES;
	EVP_PKEY *key;

	memset(seed, seed_byte, sizeof(seed));
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	REQUIRE(key);
	REQUIRE(EVP_PKEY_get_raw_public_key(key, pub, &len) == 1 && len == QS_PUBKEY_BYTES);
	return key;
}

static void
cluster_keys(struct cluster *c, size_t n)
{
	memset(c, 0, sizeof(*c));
	REQUIRE(n <= MAX_N);
	c->n = n;
	for (size_t i = 0; i < n; i++)
		c->priv[i] = make_key((uint8_t)(i + 1), c->pub[i]);
}

static void
cluster_set(struct cluster *c, uint64_t epoch, const uint64_t *powers)
{
	qs_valset_free(c->vs);
	c->vs = NULL;
	memcpy(c->power, powers, c->n * sizeof(*powers));
	REQUIRE(qs_valset_new(CHAIN, epoch, c->n, (const uint8_t(*)[QS_PUBKEY_BYTES])c->pub,
	                      c->power, &c->vs) == 0);
}

static void
cluster_init(struct cluster *c, size_t n, const uint64_t *powers)
{
	cluster_keys(c, n);
	cluster_set(c, EPOCH, powers);
}

static void
cluster_free(struct cluster *c)
{
	for (size_t i = 0; i < c->n; i++)
		EVP_PKEY_free(c->priv[i]);
	qs_valset_free(c->vs);
}

/* Powers {1, 2, 3, 4}: total 10, a quorum needs 3 * signed > 20, so 7. */
static const uint64_t POWERS_1234[4] = {1, 2, 3, 4};

static struct qs_batch_info
batch_of(const struct cluster *c, int author)
{
	struct qs_batch_info info;

	memset(&info, 0, sizeof(info));
	memcpy(info.author, c->pub[author], QS_PUBKEY_BYTES);
	info.batch_id = 42;
	info.epoch = EPOCH;
	info.expiration_us = NOW_US + LIFE_US;
	for (int i = 0; i < QS_DIGEST_BYTES; i++)
		info.digest[i] = (uint8_t)(0xa0 + i);
	info.num_txns = 3;
	info.num_bytes = 300;
	info.gas_bucket_start = 5;
	return info;
}

static void
sign_as(const struct cluster *c, size_t i, const struct qs_batch_info *info,
        uint8_t sig[QS_SIG_BYTES])
{
	REQUIRE(qs_codec_info_sign(c->priv[i], CHAIN, info, sig) == 0);
}

/* Add validator i's genuine signature over `info`; returns the outcome. */
static int
add_signer(struct qs_proof_builder *b, const struct cluster *c, size_t i,
           const struct qs_batch_info *info)
{
	uint8_t sig[QS_SIG_BYTES];

	sign_as(c, i, info, sig);
	return qs_proof_builder_add(b, c->pub[i], info, sig);
}

static struct qs_proof_builder *
builder_for(const struct cluster *c, const struct qs_batch_info *info)
{
	struct qs_proof_builder *b = NULL;

	REQUIRE(qs_proof_builder_new(c->vs, info, &b) == 0);
	return b;
}

/* A proof of `info` with genuine signatures of the validators in `mask`. */
static void
hand_proof_make(struct hand_proof *hp, const struct cluster *c, const struct qs_batch_info *info,
                uint32_t mask)
{
	size_t k = 0;

	memset(hp, 0, sizeof(*hp));
	hp->info = *info;
	qs_batch_info_to_pb(&hp->info, &hp->pb_info);
	quorumstore__v1__proof_of_store__init(&hp->p);
	for (size_t i = 0; i < c->n; i++) {
		if (!(mask >> i & 1))
			continue;
		hp->bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		sign_as(c, i, info, hp->sigs[k]);
		hp->sigv[k].data = hp->sigs[k];
		hp->sigv[k].len = QS_SIG_BYTES;
		k++;
	}
	hp->p.info = &hp->pb_info;
	hp->p.signer_bitmap.data = hp->bitmap;
	hp->p.signer_bitmap.len = (c->n + 7) / 8;
	hp->p.signatures = hp->sigv;
	hp->p.n_signatures = k;
}

static int
verify_now(const struct cluster *c, const Quorumstore__V1__ProofOfStore *p)
{
	return qs_proof_verify(c->vs, NOW_US, p, NULL);
}

static uint64_t
mask_power(const struct cluster *c, uint32_t mask)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < c->n; i++)
		if (mask >> i & 1)
			sum += c->power[i];
	return sum;
}

/* ---- validator set ---- */

START_TEST(valset_indexes_every_key_in_config_order)
{
	struct cluster c;
	uint8_t stranger[QS_PUBKEY_BYTES];
	EVP_PKEY *k;

	cluster_init(&c, 4, POWERS_1234);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(qs_valset_index(c.vs, c.pub[i]), (int)i);
		ck_assert_uint_eq(qs_valset_power(c.vs, (int)i), POWERS_1234[i]);
	}
	k = make_key(0x77, stranger);
	ck_assert_int_eq(qs_valset_index(c.vs, stranger), -1);
	ck_assert_uint_eq(qs_valset_power(c.vs, 4), 0);
	ck_assert_uint_eq(qs_valset_power(c.vs, -1), 0);
	ck_assert_uint_eq(qs_valset_total_power(c.vs), 10);
	ck_assert_uint_eq(qs_valset_size(c.vs), 4);
	ck_assert_uint_eq(qs_valset_epoch(c.vs), EPOCH);
	ck_assert_uint_eq(qs_valset_chain_id(c.vs), CHAIN);
	EVP_PKEY_free(k);
	cluster_free(&c);
}
END_TEST

START_TEST(valset_rejects_bad_counts_powers_and_duplicate_keys)
{
	struct cluster c;
	struct qs_valset *vs = NULL;
	const uint8_t(*keys)[QS_PUBKEY_BYTES];
	uint64_t powers[4] = {1, 2, 3, 4};
	uint8_t many[QS_MAX_VALIDATORS + 1][QS_PUBKEY_BYTES];
	uint64_t many_powers[QS_MAX_VALIDATORS + 1];

	cluster_keys(&c, 4);
	keys = (const uint8_t(*)[QS_PUBKEY_BYTES])c.pub;
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 0, keys, powers, &vs), -EINVAL);
	powers[2] = 0;
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 4, keys, powers, &vs), -EINVAL);
	powers[2] = QS_MAX_VOTING_POWER + 1;
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 4, keys, powers, &vs), -EINVAL);
	/* Each at the cap is fine alone, not together. */
	powers[0] = powers[1] = powers[2] = powers[3] = QS_MAX_VOTING_POWER / 4;
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 4, keys, powers, &vs), 0);
	qs_valset_free(vs);
	vs = NULL;
	powers[3]++;
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 4, keys, powers, &vs), -EINVAL);
	powers[0] = powers[1] = powers[2] = powers[3] = 1;
	memcpy(c.pub[3], c.pub[1], QS_PUBKEY_BYTES);
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, 4, keys, powers, &vs), -EINVAL);

	for (size_t i = 0; i <= QS_MAX_VALIDATORS; i++) {
		memset(many[i], 0, QS_PUBKEY_BYTES);
		many[i][0] = (uint8_t)i;
		many[i][1] = (uint8_t)(i >> 8);
		many_powers[i] = 1;
	}
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, QS_MAX_VALIDATORS + 1,
	                               (const uint8_t(*)[QS_PUBKEY_BYTES])many, many_powers, &vs),
	                 -EINVAL);
	ck_assert_ptr_null(vs);
	ck_assert_int_eq(qs_valset_new(CHAIN, EPOCH, QS_MAX_VALIDATORS,
	                               (const uint8_t(*)[QS_PUBKEY_BYTES])many, many_powers, &vs),
	                 0);
	for (size_t i = 0; i < QS_MAX_VALIDATORS; i++)
		REQUIRE(qs_valset_index(vs, many[i]) == (int)i);
	qs_valset_free(vs);
	cluster_free(&c);
}
END_TEST

START_TEST(quorum_is_strictly_more_than_two_thirds_of_power)
{
	struct cluster c;
	const uint64_t big[4] = {QS_MAX_VOTING_POWER / 4, QS_MAX_VOTING_POWER / 4,
	                         QS_MAX_VOTING_POWER / 4, QS_MAX_VOTING_POWER / 4};
	uint64_t total;

	cluster_init(&c, 4, POWERS_1234);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, 6), 0);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, 7), 1);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, 0), 0);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, 10), 1);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, UINT64_MAX), 1);
	/* At the cap the integer arithmetic must not overflow. */
	cluster_set(&c, EPOCH, big);
	total = qs_valset_total_power(c.vs);
	ck_assert_uint_eq(total, QS_MAX_VOTING_POWER);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, total / 3 * 2), 0);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, total / 3 * 2 + 1), 1);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, total / 4 * 3), 1);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, total / 4 * 2), 0);
	ck_assert_int_eq(qs_valset_is_quorum(c.vs, total), 1);
	cluster_free(&c);
}
END_TEST

/* ---- aggregation ---- */

START_TEST(exactly_quorum_forms_proof)
{
	/* Power 7 of 10, two ways: {3, 4} and {1, 2, 4}. */
	static const uint32_t masks[] = {0xc, 0xb};
	struct cluster c;
	struct qs_batch_info info;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		struct qs_proof_builder *b = builder_for(&c, &info);
		Quorumstore__V1__ProofOfStore p;

		for (size_t i = 0; i < 4; i++) {
			if (masks[m] >> i & 1) {
				ck_assert_int_eq(qs_proof_builder_has_quorum(b), 0);
				ck_assert_int_eq(add_signer(b, &c, i, &info), QS_PROOF_SIG_ADDED);
			}
		}
		ck_assert_uint_eq(qs_proof_builder_signed_power(b), 7);
		ck_assert_int_eq(qs_proof_builder_has_quorum(b), 1);
		ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
		ck_assert_uint_eq(p.signer_bitmap.len, 1);
		ck_assert_uint_eq(p.signer_bitmap.data[0], masks[m]);
		ck_assert_int_eq(verify_now(&c, &p), QS_PROOF_OK);
		qs_proof_builder_free(b);
	}
	cluster_free(&c);
}
END_TEST

START_TEST(one_short_of_quorum_forms_no_proof)
{
	/* Power 6 of 10: {1, 2, 3} and {2, 4}. */
	static const uint32_t masks[] = {0x7, 0xa};
	struct cluster c;
	struct qs_batch_info info;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		struct qs_proof_builder *b = builder_for(&c, &info);
		Quorumstore__V1__ProofOfStore p;
		struct hand_proof hp;

		for (size_t i = 0; i < 4; i++)
			if (masks[m] >> i & 1)
				ck_assert_int_eq(add_signer(b, &c, i, &info), QS_PROOF_SIG_ADDED);
		ck_assert_uint_eq(qs_proof_builder_signed_power(b), 6);
		ck_assert_int_eq(qs_proof_builder_has_quorum(b), 0);
		ck_assert_int_eq(qs_proof_builder_build(b, &p), -EAGAIN);
		/* And a proof of those signers made by hand is refused. */
		hand_proof_make(&hp, &c, &info, masks[m]);
		ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_NO_QUORUM);
		qs_proof_builder_free(b);
	}
	cluster_free(&c);
}
END_TEST

START_TEST(every_subset_forms_proof_iff_quorum)
{
	struct cluster c;
	struct qs_batch_info info;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 1);
	for (uint32_t mask = 0; mask < 16; mask++) {
		struct qs_proof_builder *b = builder_for(&c, &info);
		Quorumstore__V1__ProofOfStore p;
		int quorum = mask_power(&c, mask) >= 7;

		for (size_t i = 0; i < 4; i++)
			if (mask >> i & 1)
				REQUIRE(add_signer(b, &c, i, &info) == QS_PROOF_SIG_ADDED);
		REQUIRE(qs_proof_builder_has_quorum(b) == quorum);
		REQUIRE(qs_proof_builder_build(b, &p) == (quorum ? 0 : -EAGAIN));
		if (quorum)
			REQUIRE(verify_now(&c, &p) == QS_PROOF_OK);
		qs_proof_builder_free(b);
	}
	cluster_free(&c);
}
END_TEST

START_TEST(authors_own_signature_counts)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 3); /* author has power 4 */
	b = builder_for(&c, &info);
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_has_quorum(b), 0);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_has_quorum(b), 1);
	ck_assert_uint_eq(qs_proof_builder_signers(b), 2);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

/* The author's own signature is counted with the same refusals but without
 * a verification; a wrong one is caught by every peer's proof check. */
START_TEST(own_signature_counted_unverified_and_caught_by_peers)
{
	struct cluster c;
	struct qs_batch_info info, other;
	struct qs_proof_builder *b;
	Quorumstore__V1__ProofOfStore proof;
	uint8_t sig[QS_SIG_BYTES], stranger[QS_PUBKEY_BYTES];
	static const uint64_t ones[4] = {1, 1, 1, 1};

	cluster_init(&c, 4, ones);
	info = batch_of(&c, 0);
	other = info;
	other.batch_id++;
	memset(stranger, 0x5a, sizeof(stranger));

	/* Genuine: counted, and the proof verifies. */
	b = builder_for(&c, &info);
	sign_as(&c, 0, &info, sig);
	ck_assert_int_eq(qs_proof_builder_add_own(b, stranger, &info, sig),
	                 QS_PROOF_SIG_UNKNOWN_SIGNER);
	ck_assert_int_eq(qs_proof_builder_add_own(b, c.pub[0], &other, sig),
	                 QS_PROOF_SIG_INFO_MISMATCH);
	ck_assert_int_eq(qs_proof_builder_add_own(b, c.pub[0], &info, sig), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_add_own(b, c.pub[0], &info, sig), QS_PROOF_SIG_DUPLICATE);
	ck_assert_int_eq(add_signer(b, &c, 1, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &proof), 0);
	ck_assert_int_eq(qs_proof_verify(c.vs, NOW_US, &proof, NULL), QS_PROOF_OK);
	qs_proof_builder_free(b);

	/* Not verified: a flipped bit is counted here, and the proof is
	 * refused by qs_proof_verify() as every peer runs it. */
	b = builder_for(&c, &info);
	sign_as(&c, 0, &info, sig);
	sig[9] ^= 0x10;
	ck_assert_int_eq(qs_proof_builder_add_own(b, c.pub[0], &info, sig), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 1, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &proof), 0);
	ck_assert_int_eq(qs_proof_verify(c.vs, NOW_US, &proof, NULL), QS_PROOF_BAD_SIGNATURE);
	/* The verifying path still refuses the same signature. */
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[0], &info, sig), QS_PROOF_SIG_DUPLICATE);
	qs_proof_builder_free(b);
	b = builder_for(&c, &info);
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[0], &info, sig), QS_PROOF_SIG_BAD_SIGNATURE);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(forged_signature_not_counted)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	uint8_t sig[QS_SIG_BYTES];

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	b = builder_for(&c, &info);
	/* A genuine signature with one bit flipped. */
	sign_as(&c, 3, &info, sig);
	sig[17] ^= 0x04;
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[3], &info, sig), QS_PROOF_SIG_BAD_SIGNATURE);
	/* Validator 1's genuine signature claimed as validator 3's. */
	sign_as(&c, 1, &info, sig);
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[3], &info, sig), QS_PROOF_SIG_BAD_SIGNATURE);
	/* A signature over the same info on another chain. */
	ck_assert_int_eq(qs_codec_info_sign(c.priv[3], CHAIN + 1, &info, sig), 0);
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[3], &info, sig), QS_PROOF_SIG_BAD_SIGNATURE);
	memset(sig, 0, sizeof(sig));
	ck_assert_int_eq(qs_proof_builder_add(b, c.pub[3], &info, sig), QS_PROOF_SIG_BAD_SIGNATURE);
	ck_assert_uint_eq(qs_proof_builder_signed_power(b), 0);
	ck_assert_uint_eq(qs_proof_builder_signers(b), 0);
	/* The forgeries did not use up validator 3's place. */
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_has_quorum(b), 1);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(repeated_signer_not_double_counted)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	Quorumstore__V1__ProofOfStore p;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	b = builder_for(&c, &info);
	/* Validator 3 (power 4) twice would be 8 >= 7 if counted twice. */
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_DUPLICATE);
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_DUPLICATE);
	ck_assert_uint_eq(qs_proof_builder_signed_power(b), 4);
	ck_assert_uint_eq(qs_proof_builder_signers(b), 1);
	ck_assert_int_eq(qs_proof_builder_has_quorum(b), 0);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), -EAGAIN);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
	ck_assert_uint_eq(p.n_signatures, 2);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(unknown_signer_not_counted)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	uint8_t stranger[QS_PUBKEY_BYTES], sig[QS_SIG_BYTES];
	EVP_PKEY *k;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	b = builder_for(&c, &info);
	k = make_key(0x99, stranger);
	ck_assert_int_eq(qs_codec_info_sign(k, CHAIN, &info, sig), 0);
	ck_assert_int_eq(qs_proof_builder_add(b, stranger, &info, sig),
	                 QS_PROOF_SIG_UNKNOWN_SIGNER);
	ck_assert_uint_eq(qs_proof_builder_signers(b), 0);
	EVP_PKEY_free(k);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(info_mismatch_in_any_field_not_counted)
{
	struct cluster c;
	struct qs_batch_info sent;
	struct qs_proof_builder *b;

	cluster_init(&c, 4, POWERS_1234);
	sent = batch_of(&c, 0);
	b = builder_for(&c, &sent);
	for (int field = 0; field < 8; field++) {
		struct qs_batch_info other = sent;

		switch (field) {
		case 0:
			other.author[31] ^= 1;
			break;
		case 1:
			other.batch_id++;
			break;
		case 2:
			other.epoch++;
			break;
		case 3:
			other.expiration_us++;
			break;
		case 4:
			other.digest[0] ^= 1;
			break;
		case 5:
			other.num_txns++;
			break;
		case 6:
			other.num_bytes++;
			break;
		case 7:
			other.gas_bucket_start++;
			break;
		}
		/* Genuinely signed, but over something this node did not send. */
		ck_assert_msg(add_signer(b, &c, 3, &other) == QS_PROOF_SIG_INFO_MISMATCH,
		              "field %d", field);
	}
	ck_assert_uint_eq(qs_proof_builder_signers(b), 0);
	ck_assert_int_eq(add_signer(b, &c, 3, &sent), QS_PROOF_SIG_ADDED);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(signed_batch_info_of_wrong_sizes_is_malformed)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	Quorumstore__V1__SignedBatchInfo sbi;
	Quorumstore__V1__BatchInfo pbi;
	uint8_t sig[QS_SIG_BYTES];

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	b = builder_for(&c, &info);
	sign_as(&c, 2, &info, sig);
	quorumstore__v1__signed_batch_info__init(&sbi);
	qs_batch_info_to_pb(&info, &pbi);
	sbi.info = &pbi;
	sbi.signer.data = c.pub[2];
	sbi.signer.len = QS_PUBKEY_BYTES;
	sbi.signature.data = sig;
	sbi.signature.len = QS_SIG_BYTES;

	sbi.signer.len = 31;
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_MALFORMED);
	sbi.signer.len = QS_PUBKEY_BYTES;
	sbi.signature.len = 63;
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_MALFORMED);
	sbi.signature.len = QS_SIG_BYTES;
	pbi.digest.len = 31;
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_MALFORMED);
	pbi.digest.len = QS_DIGEST_BYTES;
	sbi.info = NULL;
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_MALFORMED);
	ck_assert_int_eq(qs_proof_builder_add_pb(b, NULL), QS_PROOF_SIG_MALFORMED);
	ck_assert_uint_eq(qs_proof_builder_signers(b), 0);
	sbi.info = &pbi;
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_add_pb(b, &sbi), QS_PROOF_SIG_DUPLICATE);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(builder_refuses_batch_of_another_epoch)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b = NULL;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	info.epoch = EPOCH + 1;
	ck_assert_int_eq(qs_proof_builder_new(c.vs, &info, &b), -EINVAL);
	ck_assert_ptr_null(b);
	cluster_free(&c);
}
END_TEST

/* ---- verification ---- */

START_TEST(built_proof_verifies_after_packing)
{
	struct cluster c;
	struct qs_batch_info info, got;
	struct qs_proof_builder *b;
	Quorumstore__V1__ProofOfStore p, *q;
	uint8_t sig[QS_SIG_BYTES], buf[1024];
	size_t len;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 2);
	b = builder_for(&c, &info);
	/* Arrival order is not bitmap order. */
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 0, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 1, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
	ck_assert_uint_eq(p.signer_bitmap.len, 1);
	ck_assert_uint_eq(p.signer_bitmap.data[0], 0x0b);
	ck_assert_uint_eq(p.n_signatures, 3);
	sign_as(&c, 0, &info, sig);
	ck_assert_mem_eq(p.signatures[0].data, sig, QS_SIG_BYTES);
	sign_as(&c, 1, &info, sig);
	ck_assert_mem_eq(p.signatures[1].data, sig, QS_SIG_BYTES);
	sign_as(&c, 3, &info, sig);
	ck_assert_mem_eq(p.signatures[2].data, sig, QS_SIG_BYTES);

	len = quorumstore__v1__proof_of_store__get_packed_size(&p);
	ck_assert_uint_le(len, sizeof(buf));
	ck_assert_uint_eq(quorumstore__v1__proof_of_store__pack(&p, buf), len);
	q = quorumstore__v1__proof_of_store__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(q);
	memset(&got, 0, sizeof(got));
	ck_assert_int_eq(qs_proof_verify(c.vs, NOW_US, q, &got), QS_PROOF_OK);
	ck_assert_mem_eq(got.author, info.author, QS_PUBKEY_BYTES);
	ck_assert_mem_eq(got.digest, info.digest, QS_DIGEST_BYTES);
	ck_assert_uint_eq(got.batch_id, info.batch_id);
	ck_assert_uint_eq(got.expiration_us, info.expiration_us);
	ck_assert_uint_eq(got.gas_bucket_start, info.gas_bucket_start);
	quorumstore__v1__proof_of_store__free_unpacked(q, NULL);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(later_signature_leaves_built_proof_unchanged)
{
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	Quorumstore__V1__ProofOfStore p;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	b = builder_for(&c, &info);
	ck_assert_int_eq(add_signer(b, &c, 2, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(add_signer(b, &c, 3, &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
	ck_assert_int_eq(add_signer(b, &c, 0, &info), QS_PROOF_SIG_ADDED);
	ck_assert_uint_eq(p.signer_bitmap.data[0], 0x0c);
	ck_assert_uint_eq(p.n_signatures, 2);
	ck_assert_int_eq(verify_now(&c, &p), QS_PROOF_OK);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
	ck_assert_uint_eq(p.signer_bitmap.data[0], 0x0d);
	ck_assert_uint_eq(p.n_signatures, 3);
	ck_assert_int_eq(verify_now(&c, &p), QS_PROOF_OK);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(proof_with_one_bad_signature_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	for (size_t k = 0; k < 4; k++) {
		hand_proof_make(&hp, &c, &info, 0xf);
		ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_OK);
		hp.sigs[k][40] ^= 0x80;
		ck_assert_msg(verify_now(&c, &hp.p) == QS_PROOF_BAD_SIGNATURE, "signature %zu", k);
	}
	/* Signatures swapped between two signers. */
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.sigv[1].data = hp.sigs[2];
	hp.sigv[2].data = hp.sigs[1];
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_SIGNATURE);
	/* Genuine signatures over another BatchInfo. */
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.pb_info.num_bytes++;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_SIGNATURE);
	cluster_free(&c);
}
END_TEST

START_TEST(signature_repeated_for_two_bits_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	/* Bits 2 and 3 (power 7), both carrying validator 3's signature. */
	hand_proof_make(&hp, &c, &info, 0xc);
	memcpy(hp.sigs[0], hp.sigs[1], QS_SIG_BYTES);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_SIGNATURE);
	/* ... or both validator 2's. */
	hand_proof_make(&hp, &c, &info, 0xc);
	memcpy(hp.sigs[1], hp.sigs[0], QS_SIG_BYTES);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_SIGNATURE);
	cluster_free(&c);
}
END_TEST

START_TEST(proof_of_another_epoch_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	hand_proof_make(&hp, &c, &info, 0xf);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_OK);
	/* The same validators in the next epoch. */
	cluster_set(&c, EPOCH + 1, POWERS_1234);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_WRONG_EPOCH);
	/* Signed for the next epoch, checked in this one. */
	info.epoch = EPOCH + 1;
	hand_proof_make(&hp, &c, &info, 0xf);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_OK);
	cluster_set(&c, EPOCH, POWERS_1234);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_WRONG_EPOCH);
	cluster_free(&c);
}
END_TEST

/*
 * The own signature found in the memo is compared, not verified again; the
 * same index with any other signature, the memo's signature over other
 * info, a slot taken by a newer batch or a memo of another chain all go
 * through verification as before.
 */
START_TEST(own_signature_in_the_memo_is_recognised_and_nothing_else)
{
	struct cluster c;
	struct qs_batch_info info, other, got;
	struct hand_proof hp, hp2;
	struct qs_sigmemo *memo;
	uint8_t saved[QS_SIG_BYTES];
	bool own;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	hand_proof_make(&hp, &c, &info, 0xf);
	memo = qs_sigmemo_new(16);
	ck_assert_ptr_nonnull(memo);

	own = true;
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, &got, &own),
	                 QS_PROOF_OK);
	ck_assert(!own);
	qs_sigmemo_put(memo, CHAIN, &info, hp.sigs[2]);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, &got, &own),
	                 QS_PROOF_OK);
	ck_assert(own);
	ck_assert_mem_eq(got.digest, info.digest, QS_DIGEST_BYTES);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 1, memo, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(!own);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, NULL, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(!own);

	/* What the memo holds is trusted: a signature put there is not
	 * checked (only this node's own signatures go in). */
	memcpy(saved, hp.sigs[2], QS_SIG_BYTES);
	hp.sigs[2][0] ^= 1;
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, NULL, NULL),
	                 QS_PROOF_BAD_SIGNATURE);
	qs_sigmemo_put(memo, CHAIN, &info, hp.sigs[2]);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(own);
	memcpy(hp.sigs[2], saved, QS_SIG_BYTES);
	qs_sigmemo_put(memo, CHAIN, &info, hp.sigs[2]);

	/* The memo's signature carried by a proof of other info (same digest,
	 * a later expiration) is verified, and fails. */
	other = info;
	other.expiration_us++;
	hand_proof_make(&hp2, &c, &other, 0xf);
	memcpy(hp2.sigs[2], hp.sigs[2], QS_SIG_BYTES);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp2.p, 2, memo, NULL, NULL),
	                 QS_PROOF_BAD_SIGNATURE);

	/* A newer batch whose digest has the same low bits takes the slot. */
	other = info;
	other.digest[QS_DIGEST_BYTES - 1] ^= 0xff;
	sign_as(&c, 2, &other, saved);
	qs_sigmemo_put(memo, CHAIN, &other, saved);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(!own);

	/* The same signature and info, but put for another chain. */
	qs_sigmemo_put(memo, CHAIN + 1, &info, hp.sigs[2]);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(!own);
	qs_sigmemo_put(memo, CHAIN, &info, hp.sigs[2]);
	ck_assert_int_eq(qs_proof_verify_own(c.vs, NOW_US, &hp.p, 2, memo, NULL, &own),
	                 QS_PROOF_OK);
	ck_assert(own);

	ck_assert_ptr_null(qs_sigmemo_new(0));
	ck_assert_ptr_null(qs_sigmemo_new(12));
	ck_assert_ptr_null(qs_sigmemo_new((size_t)QS_SIGMEMO_MAX_SLOTS * 2));
	qs_sigmemo_free(memo);
	cluster_free(&c);
}
END_TEST

START_TEST(expired_proof_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	hand_proof_make(&hp, &c, &info, 0xf);
	ck_assert_int_eq(qs_proof_verify(c.vs, info.expiration_us - 1, &hp.p, NULL), QS_PROOF_OK);
	ck_assert_int_eq(qs_proof_verify(c.vs, info.expiration_us, &hp.p, NULL), QS_PROOF_EXPIRED);
	ck_assert_int_eq(qs_proof_verify(c.vs, UINT64_MAX, &hp.p, NULL), QS_PROOF_EXPIRED);
	cluster_free(&c);
}
END_TEST

START_TEST(proof_by_author_outside_set_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;
	EVP_PKEY *k;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	k = make_key(0x55, info.author);
	hand_proof_make(&hp, &c, &info, 0xf);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_UNKNOWN_AUTHOR);
	EVP_PKEY_free(k);
	cluster_free(&c);
}
END_TEST

START_TEST(malformed_proof_refused)
{
	struct cluster c;
	struct qs_batch_info info, untouched;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	memset(&untouched, 0x5a, sizeof(untouched));
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.p.info = NULL;
	ck_assert_int_eq(qs_proof_verify(c.vs, NOW_US, &hp.p, &untouched), QS_PROOF_MALFORMED);
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.pb_info.author.len = 31;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_MALFORMED);
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.pb_info.digest.len = 33;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_MALFORMED);
	ck_assert_int_eq(verify_now(&c, NULL), QS_PROOF_MALFORMED);
	/* Out-parameter untouched on refusal. */
	for (size_t i = 0; i < sizeof(untouched); i++)
		REQUIRE(((uint8_t *)&untouched)[i] == 0x5a);
	cluster_free(&c);
}
END_TEST

START_TEST(bitmap_too_long_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.p.signer_bitmap.len = 2; /* a zero byte more */
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_BITMAP);
	cluster_free(&c);
}
END_TEST

START_TEST(bitmap_too_short_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.p.signer_bitmap.len = 0;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_BITMAP);
	hp.p.signer_bitmap.data = NULL;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_BITMAP);
	cluster_free(&c);
}
END_TEST

START_TEST(bitmap_bit_beyond_validators_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	for (int bit = 4; bit < 8; bit++) {
		hand_proof_make(&hp, &c, &info, 0xf);
		hp.bitmap[0] |= (uint8_t)(1u << bit);
		/* With a signature for it, so that only the bit is wrong. */
		memcpy(hp.sigs[4], hp.sigs[3], QS_SIG_BYTES);
		hp.sigv[4].data = hp.sigs[4];
		hp.sigv[4].len = QS_SIG_BYTES;
		hp.p.n_signatures = 5;
		ck_assert_msg(verify_now(&c, &hp.p) == QS_PROOF_BAD_BITMAP, "bit %d", bit);
	}
	cluster_free(&c);
}
END_TEST

START_TEST(signature_count_mismatch_refused)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	/* One signature fewer than bits. */
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.p.n_signatures = 3;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_SIGNATURE_COUNT);
	/* One more. */
	hand_proof_make(&hp, &c, &info, 0x7);
	hp.sigv[3].data = hp.sigs[2];
	hp.sigv[3].len = QS_SIG_BYTES;
	hp.p.n_signatures = 4;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_SIGNATURE_COUNT);
	/* The right number, one of them short or long. */
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.sigv[2].len = 63;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_SIGNATURE_COUNT);
	hp.sigv[2].len = 65;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_SIGNATURE_COUNT);
	/* No bits at all, no signatures: counts agree, no quorum. */
	hand_proof_make(&hp, &c, &info, 0);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_NO_QUORUM);
	cluster_free(&c);
}
END_TEST

START_TEST(cheap_checks_come_before_signatures)
{
	struct cluster c;
	struct qs_batch_info info;
	struct hand_proof hp;

	cluster_init(&c, 4, POWERS_1234);
	info = batch_of(&c, 0);
	/* Every signature bad and the quorum short: the quorum is named. */
	hand_proof_make(&hp, &c, &info, 0x7);
	for (size_t k = 0; k < 3; k++)
		hp.sigs[k][0] ^= 1;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_NO_QUORUM);
	/* Expired and with a bad bitmap: expiry is named. */
	hand_proof_make(&hp, &c, &info, 0xf);
	hp.p.signer_bitmap.len = 3;
	ck_assert_int_eq(qs_proof_verify(c.vs, info.expiration_us, &hp.p, NULL), QS_PROOF_EXPIRED);
	cluster_free(&c);
}
END_TEST

START_TEST(equal_powers_need_three_of_four)
{
	static const uint64_t ones[4] = {1, 1, 1, 1};
	struct cluster c;
	struct qs_batch_info info;

	cluster_init(&c, 4, ones);
	info = batch_of(&c, 0);
	for (uint32_t mask = 0; mask < 16; mask++) {
		struct qs_proof_builder *b = builder_for(&c, &info);
		Quorumstore__V1__ProofOfStore p;
		struct hand_proof hp;
		int quorum = __builtin_popcount(mask) >= 3;

		for (size_t i = 0; i < 4; i++)
			if (mask >> i & 1)
				REQUIRE(add_signer(b, &c, i, &info) == QS_PROOF_SIG_ADDED);
		REQUIRE(qs_proof_builder_has_quorum(b) == quorum);
		REQUIRE(qs_proof_builder_build(b, &p) == (quorum ? 0 : -EAGAIN));
		hand_proof_make(&hp, &c, &info, mask);
		REQUIRE(verify_now(&c, &hp.p) == (quorum ? QS_PROOF_OK : QS_PROOF_NO_QUORUM));
		qs_proof_builder_free(b);
	}
	cluster_free(&c);
}
END_TEST

START_TEST(bitmap_layout_with_nine_validators)
{
	static const uint64_t ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	/* Signers 0, 2, 3, 4, 5, 6 and 8: 7 of 9, 21 > 18. */
	static const size_t signers[] = {8, 0, 2, 3, 4, 5, 6};
	struct cluster c;
	struct qs_batch_info info;
	struct qs_proof_builder *b;
	Quorumstore__V1__ProofOfStore p;
	struct hand_proof hp;
	uint8_t sig[QS_SIG_BYTES];

	cluster_init(&c, 9, ones);
	info = batch_of(&c, 8);
	b = builder_for(&c, &info);
	for (size_t i = 0; i < sizeof(signers) / sizeof(signers[0]); i++)
		ck_assert_int_eq(add_signer(b, &c, signers[i], &info), QS_PROOF_SIG_ADDED);
	ck_assert_int_eq(qs_proof_builder_build(b, &p), 0);
	ck_assert_uint_eq(p.signer_bitmap.len, 2);
	ck_assert_uint_eq(p.signer_bitmap.data[0], 0x7d);
	ck_assert_uint_eq(p.signer_bitmap.data[1], 0x01); /* bit 8: byte 1, bit 0 */
	ck_assert_uint_eq(p.n_signatures, 7);
	sign_as(&c, 0, &info, sig);
	ck_assert_mem_eq(p.signatures[0].data, sig, QS_SIG_BYTES);
	sign_as(&c, 8, &info, sig);
	ck_assert_mem_eq(p.signatures[6].data, sig, QS_SIG_BYTES);
	ck_assert_int_eq(verify_now(&c, &p), QS_PROOF_OK);

	/* Validator 9 does not exist: bit 1 of byte 1 must be zero. */
	hand_proof_make(&hp, &c, &info, 0x17d);
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_OK);
	hp.bitmap[1] |= 0x02;
	memcpy(hp.sigs[7], hp.sigs[6], QS_SIG_BYTES);
	hp.sigv[7].data = hp.sigs[7];
	hp.sigv[7].len = QS_SIG_BYTES;
	hp.p.n_signatures = 8;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_BITMAP);
	/* Nine validators take two bytes, not one. */
	hand_proof_make(&hp, &c, &info, 0x7d | 0x02);
	hp.p.signer_bitmap.len = 1;
	ck_assert_int_eq(verify_now(&c, &hp.p), QS_PROOF_BAD_BITMAP);
	qs_proof_builder_free(b);
	cluster_free(&c);
}
END_TEST

START_TEST(random_subsets_form_proof_iff_quorum)
{
	struct cluster c;
	uint64_t rng = UINT64_C(0x9700f5eed);
	uint64_t powers[7];
	int formed = 0, short_of = 0;

	cluster_keys(&c, 7);
	for (int round = 0; round < 300; round++) {
		struct qs_batch_info info;
		struct qs_proof_builder *b;
		Quorumstore__V1__ProofOfStore p;
		uint32_t mask = (uint32_t)(splitmix(&rng) & 0x7f);
		uint64_t total = 0, sum;
		size_t order[7];
		int quorum;

		/* Small powers most rounds; powers near the cap in some. */
		for (size_t i = 0; i < 7; i++) {
			powers[i] = round % 5 == 0 ? QS_MAX_VOTING_POWER / 7 - splitmix(&rng) % 1000
			                           : 1 + splitmix(&rng) % 100;
			total += powers[i];
		}
		cluster_set(&c, EPOCH, powers);
		sum = mask_power(&c, mask);
		quorum = 3 * sum > 2 * total;
		info = batch_of(&c, (int)(splitmix(&rng) % 7));
		info.batch_id = (uint64_t)round;
		b = builder_for(&c, &info);
		/* In a random order, some signers sent twice. */
		for (size_t i = 0; i < 7; i++)
			order[i] = i;
		for (size_t i = 6; i > 0; i--) {
			size_t j = splitmix(&rng) % (i + 1), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (size_t i = 0; i < 7; i++) {
			size_t v = order[i];

			if (!(mask >> v & 1))
				continue;
			REQUIRE(add_signer(b, &c, v, &info) == QS_PROOF_SIG_ADDED);
			if (splitmix(&rng) % 4 == 0)
				REQUIRE(add_signer(b, &c, v, &info) == QS_PROOF_SIG_DUPLICATE);
		}
		REQUIRE(qs_proof_builder_signed_power(b) == sum);
		REQUIRE(qs_proof_builder_has_quorum(b) == quorum);
		REQUIRE(qs_proof_builder_build(b, &p) == (quorum ? 0 : -EAGAIN));
		if (quorum) {
			REQUIRE(p.signer_bitmap.len == 1 && p.signer_bitmap.data[0] == mask);
			REQUIRE(verify_now(&c, &p) == QS_PROOF_OK);
			formed++;
		} else {
			short_of++;
		}
		qs_proof_builder_free(b);
	}
	/* Both outcomes were exercised. */
	ck_assert_int_gt(formed, 50);
	ck_assert_int_gt(short_of, 50);
	cluster_free(&c);
}
END_TEST

START_TEST(outcome_and_reason_names_are_distinct_labels)
{
	for (int i = 0; i < QS_PROOF_SIG_COUNT; i++) {
		ck_assert_ptr_nonnull(qs_proof_sig_names[i]);
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(qs_proof_sig_names[i], qs_proof_sig_names[j]);
	}
	for (int i = 0; i < QS_PROOF_REASON_COUNT; i++) {
		ck_assert_ptr_nonnull(qs_proof_reason_names[i]);
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(qs_proof_reason_names[i], qs_proof_reason_names[j]);
	}
	ck_assert_str_eq(qs_proof_reason_names[QS_PROOF_OK], "ok");
	ck_assert_str_eq(qs_proof_reason_names[QS_PROOF_BAD_SIGNATURE], "bad_signature");
	ck_assert_str_eq(qs_proof_sig_names[QS_PROOF_SIG_DUPLICATE], "duplicate");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("proof");
	TCase *tv = tcase_create("valset");
	TCase *ta = tcase_create("aggregate");
	TCase *tq = tcase_create("verify");
	TCase *tr = tcase_create("random");
	SRunner *sr;
	int failed;

	tcase_add_test(tv, valset_indexes_every_key_in_config_order);
	tcase_add_test(tv, valset_rejects_bad_counts_powers_and_duplicate_keys);
	tcase_add_test(tv, quorum_is_strictly_more_than_two_thirds_of_power);
	tcase_add_test(tv, outcome_and_reason_names_are_distinct_labels);
	suite_add_tcase(s, tv);
	tcase_add_test(ta, exactly_quorum_forms_proof);
	tcase_add_test(ta, one_short_of_quorum_forms_no_proof);
	tcase_add_test(ta, every_subset_forms_proof_iff_quorum);
	tcase_add_test(ta, authors_own_signature_counts);
	tcase_add_test(ta, forged_signature_not_counted);
	tcase_add_test(ta, own_signature_counted_unverified_and_caught_by_peers);
	tcase_add_test(ta, repeated_signer_not_double_counted);
	tcase_add_test(ta, unknown_signer_not_counted);
	tcase_add_test(ta, info_mismatch_in_any_field_not_counted);
	tcase_add_test(ta, signed_batch_info_of_wrong_sizes_is_malformed);
	tcase_add_test(ta, builder_refuses_batch_of_another_epoch);
	tcase_add_test(ta, later_signature_leaves_built_proof_unchanged);
	tcase_add_test(ta, equal_powers_need_three_of_four);
	tcase_add_test(ta, bitmap_layout_with_nine_validators);
	suite_add_tcase(s, ta);
	tcase_add_test(tq, built_proof_verifies_after_packing);
	tcase_add_test(tq, proof_with_one_bad_signature_refused);
	tcase_add_test(tq, signature_repeated_for_two_bits_refused);
	tcase_add_test(tq, proof_of_another_epoch_refused);
	tcase_add_test(tq, expired_proof_refused);
	tcase_add_test(tq, proof_by_author_outside_set_refused);
	tcase_add_test(tq, malformed_proof_refused);
	tcase_add_test(tq, bitmap_too_long_refused);
	tcase_add_test(tq, bitmap_too_short_refused);
	tcase_add_test(tq, bitmap_bit_beyond_validators_refused);
	tcase_add_test(tq, signature_count_mismatch_refused);
	tcase_add_test(tq, cheap_checks_come_before_signatures);
	tcase_add_test(tq, own_signature_in_the_memo_is_recognised_and_nothing_else);
	suite_add_tcase(s, tq);
	tcase_set_timeout(tr, 120);
	tcase_add_test(tr, random_subsets_form_proof_iff_quorum);
	suite_add_tcase(s, tr);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
