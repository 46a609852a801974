/* Canonical encodings against the worked example of docs/PROTOCOL.md. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/codec.h"
#include "core/error.h"

static const char EX_AUTHOR[] = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
static const char EX_DIGEST[] = "7e3855c2b7ccadeef316f26283b3c733d55613cd8a53a81044bb3a4c0792e236";
static const char EX_PREIMAGE[] = "7173642f76312f626174636800"
				  "00000001"
				  "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
				  "0000000000000003"
				  "0000000000000007"
				  "00000002"
				  "0000000568656c6c6f"
				  "00000003717364";
static const char EX_SIGNING[] = "7173642f76312f62617463682d696e666f00"
				 "00000001"
				 "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
				 "0000000000000003"
				 "0000000000000007"
				 "0006474846204000"
				 "7e3855c2b7ccadeef316f26283b3c733d55613cd8a53a81044bb3a4c0792e236"
				 "00000002"
				 "0000000000000008"
				 "0000000000000000";
static const char EX_SIG[] = "20ca52385ce528f3345b8c08b88084ea28159d4b0a86d2eefd5f223bc9aa35af"
			     "e3c6bf50c6f56ba7df5537f0fedd9ace8c7b3cb29a6feea9178845b98e96a30a";

static size_t
unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s) / 2;

	ck_assert_uint_le(n, cap);
	for (size_t i = 0; i < n; i++) {
		unsigned int v;
		ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

static EVP_PKEY *
example_key(void)
{
	uint8_t seed[32];

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
}

static ProtobufCBinaryData example_txns[2] = {
    {5, (uint8_t *)"hello"},
    {3, (uint8_t *)"qsd"},
};

static void
example_info(struct qs_batch_info *info)
{
	memset(info, 0, sizeof(*info));
	unhex(EX_AUTHOR, info->author, sizeof(info->author));
	info->epoch = 3;
	info->batch_id = 7;
	info->expiration_us = 1767225600000000ULL;
	unhex(EX_DIGEST, info->digest, sizeof(info->digest));
	info->num_txns = 2;
	info->num_bytes = 8;
	info->gas_bucket_start = 0;
}

START_TEST(example_key_has_documented_public_key)
{
	EVP_PKEY *key = example_key();
	uint8_t pub[32], want[32];
	size_t len = sizeof(pub);

	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, pub, &len), 1);
	unhex(EX_AUTHOR, want, sizeof(want));
	ck_assert_mem_eq(pub, want, 32);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(digest_matches_documented_example)
{
	uint8_t author[32], digest[32], want[32];

	unhex(EX_AUTHOR, author, sizeof(author));
	unhex(EX_DIGEST, want, sizeof(want));
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, example_txns, 2, digest), 0);
	ck_assert_mem_eq(digest, want, 32);
}
END_TEST

START_TEST(digest_is_sha256_of_documented_preimage)
{
	uint8_t pre[256], md[32], want[32];
	unsigned int md_len = 0;
	size_t n = unhex(EX_PREIMAGE, pre, sizeof(pre));

	ck_assert_uint_eq(n, 85);
	ck_assert_int_eq(EVP_Digest(pre, n, md, &md_len, EVP_sha256(), NULL), 1);
	unhex(EX_DIGEST, want, sizeof(want));
	ck_assert_mem_eq(md, want, 32);
}
END_TEST

START_TEST(digest_changes_with_every_field)
{
	uint8_t author[32], base[32], d[32];
	ProtobufCBinaryData other[2] = {{5, (uint8_t *)"hellp"}, {3, (uint8_t *)"qsd"}};
	/* Moving one byte between transactions must change the digest. */
	ProtobufCBinaryData split[2] = {{4, (uint8_t *)"hell"}, {4, (uint8_t *)"oqsd"}};

	unhex(EX_AUTHOR, author, sizeof(author));
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, example_txns, 2, base), 0);
	ck_assert_int_eq(qs_codec_batch_digest(2, author, 3, 7, example_txns, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 4, 7, example_txns, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 8, example_txns, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, other, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, split, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, example_txns, 1, d), 0);
	ck_assert_mem_ne(d, base, 32);
	author[31] ^= 1;
	ck_assert_int_eq(qs_codec_batch_digest(1, author, 3, 7, example_txns, 2, d), 0);
	ck_assert_mem_ne(d, base, 32);
}
END_TEST

START_TEST(signing_bytes_match_documented_example)
{
	struct qs_batch_info info;
	uint8_t got[QS_INFO_SIGNING_BYTES], want[QS_INFO_SIGNING_BYTES + 8];

	example_info(&info);
	ck_assert_uint_eq(QS_INFO_SIGNING_BYTES, 130);
	ck_assert_uint_eq(unhex(EX_SIGNING, want, sizeof(want)), 130);
	qs_codec_info_signing_bytes(1, &info, got);
	ck_assert_mem_eq(got, want, 130);
}
END_TEST

START_TEST(signature_matches_documented_example)
{
	struct qs_batch_info info;
	EVP_PKEY *key = example_key();
	uint8_t sig[64], want[64];

	example_info(&info);
	unhex(EX_SIG, want, sizeof(want));
	ck_assert_int_eq(qs_codec_info_sign(key, 1, &info, sig), 0);
	ck_assert_mem_eq(sig, want, 64);
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, want), 0);
	EVP_PKEY_free(key);
}
END_TEST

/* The reused signing context gives, signature after signature, what a
 * fresh one gives: the documented one for the example, valid ones for
 * others, none carried over from the one before. */
START_TEST(signer_signs_again_and_again_as_a_fresh_context)
{
	struct qs_batch_info info;
	EVP_PKEY *key = example_key();
	struct qs_signer *s = qs_signer_new(key);
	uint8_t sig[64], want[64], fresh[64];

	ck_assert_ptr_nonnull(s);
	example_info(&info);
	unhex(EX_SIG, want, sizeof(want));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(qs_signer_sign(s, 1, &info, sig), 0);
		ck_assert_mem_eq(sig, want, 64);
	}
	for (uint64_t b = 1; b <= 50; b++) {
		info.batch_id = b;
		ck_assert_int_eq(qs_signer_sign(s, 1, &info, sig), 0);
		ck_assert_int_eq(qs_codec_info_sign(key, 1, &info, fresh), 0);
		ck_assert_mem_eq(sig, fresh, 64);
		ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), 0);
	}
	ck_assert_int_eq(qs_signer_sign(s, 2, &info, sig), 0);
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
	qs_signer_free(s);
	qs_signer_free(NULL);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(forged_signature_is_rejected)
{
	struct qs_batch_info info;
	uint8_t sig[64];

	example_info(&info);
	unhex(EX_SIG, sig, sizeof(sig));
	sig[10] ^= 0x01;
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
}
END_TEST

START_TEST(signature_does_not_replay_across_chains_or_fields)
{
	struct qs_batch_info info;
	uint8_t sig[64];

	example_info(&info);
	unhex(EX_SIG, sig, sizeof(sig));
	ck_assert_int_eq(qs_codec_info_verify(info.author, 2, &info, sig), QS_EBADSIG);
	info.expiration_us++;
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
	example_info(&info);
	info.num_bytes = 9;
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
	example_info(&info);
	info.gas_bucket_start = 1;
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
}
END_TEST

START_TEST(signature_by_another_key_is_rejected)
{
	struct qs_batch_info info;
	uint8_t sig[64], other[32];
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	size_t len = sizeof(other);

	example_info(&info);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(qs_codec_info_sign(key, 1, &info, sig), 0);
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, other, &len), 1);
	ck_assert_int_eq(qs_codec_info_verify(other, 1, &info, sig), 0);
	ck_assert_int_eq(qs_codec_info_verify(info.author, 1, &info, sig), QS_EBADSIG);
	EVP_PKEY_free(key);
}
END_TEST

/* Signing and verification are libsodium's, keys OpenSSL's: for fresh keys
 * and many infos, qsd's signatures are OpenSSL's bytes and verify there,
 * and OpenSSL's verify here (peers may sign with either). */
START_TEST(signatures_agree_with_openssl_both_ways)
{
	for (int k = 0; k < 4; k++) {
		EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		struct qs_signer *s = qs_signer_new(key);
		struct qs_batch_info info;
		uint8_t pub[32], msg[QS_INFO_SIGNING_BYTES], ours[64], theirs[64];
		size_t len = sizeof(pub), sig_len;

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, pub, &len), 1);
		example_info(&info);
		memcpy(info.author, pub, 32);
		for (uint64_t b = 0; b < 25; b++) {
			EVP_MD_CTX *ctx = EVP_MD_CTX_new();

			info.batch_id = b * 7919 + (uint64_t)k;
			info.num_bytes = b;
			qs_codec_info_signing_bytes(3, &info, msg);
			ck_assert_int_eq(qs_signer_sign(s, 3, &info, ours), 0);
			sig_len = sizeof(theirs);
			ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key), 1);
			ck_assert_int_eq(EVP_DigestSign(ctx, theirs, &sig_len, msg, sizeof(msg)),
			                 1);
			ck_assert_mem_eq(ours, theirs, 64);
			EVP_MD_CTX_reset(ctx);
			ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key), 1);
			ck_assert_int_eq(EVP_DigestVerify(ctx, ours, 64, msg, sizeof(msg)), 1);
			EVP_MD_CTX_free(ctx);
			ck_assert_int_eq(qs_codec_info_verify(pub, 3, &info, theirs), 0);
			theirs[63] ^= 0x10; /* s no longer canonical, or another s */
			ck_assert_int_eq(qs_codec_info_verify(pub, 3, &info, theirs), QS_EBADSIG);
		}
		qs_signer_free(s);
		EVP_PKEY_free(key);
	}
}
END_TEST

START_TEST(big_endian_helpers_round_trip)
{
	uint8_t b[8];

	qs_put_be64(b, 0x0102030405060708ULL);
	ck_assert_uint_eq(b[0], 1);
	ck_assert_uint_eq(b[7], 8);
	ck_assert_uint_eq(qs_get_be64(b), 0x0102030405060708ULL);
	qs_put_be32(b, 0xa0b0c0d0u);
	ck_assert_uint_eq(b[0], 0xa0);
	ck_assert_uint_eq(qs_get_be32(b), 0xa0b0c0d0u);
}
END_TEST

START_TEST(strerror_names_every_code)
{
	for (int e = QS_EBASE - 1; e > QS_ELAST; e--)
		ck_assert_str_ne(qs_strerror(e), "unknown error");
	ck_assert_str_eq(qs_strerror(QS_ELAST), "unknown error");
	ck_assert_str_eq(qs_strerror(0), "success");
	ck_assert_ptr_nonnull(qs_strerror(-5));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, example_key_has_documented_public_key);
	tcase_add_test(tc, digest_matches_documented_example);
	tcase_add_test(tc, digest_is_sha256_of_documented_preimage);
	tcase_add_test(tc, digest_changes_with_every_field);
	tcase_add_test(tc, signing_bytes_match_documented_example);
	tcase_add_test(tc, signature_matches_documented_example);
	tcase_add_test(tc, signer_signs_again_and_again_as_a_fresh_context);
	tcase_add_test(tc, forged_signature_is_rejected);
	tcase_add_test(tc, signature_does_not_replay_across_chains_or_fields);
	tcase_add_test(tc, signature_by_another_key_is_rejected);
	tcase_add_test(tc, signatures_agree_with_openssl_both_ways);
	tcase_add_test(tc, big_endian_helpers_round_trip);
	tcase_add_test(tc, strerror_names_every_code);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
