/*
 * Unit tests for daemon/keys (key files) and core/hex.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"

static char tmpdir[PATH_MAX];

static void
setup(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int n = snprintf(tmpdir, sizeof(tmpdir), "%s/check_keys.XXXXXX", base);

	ck_assert(n > 0 && (size_t)n < sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown(void)
{
	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* `name` inside the test's directory, in a buffer of PATH_MAX. */
static void
tmp_path(char *buf, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);

	ck_assert(n > 0 && n < PATH_MAX);
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

/* Write `pkey` as PEM PKCS#8 (encrypted with `pass` if not NULL). */
static void
write_pkey(const char *path, EVP_PKEY *pkey, const char *pass)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long len;

	ck_assert_ptr_nonnull(bio);
	if (pass)
		ck_assert_int_eq(PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), pass,
		                                               (int)strlen(pass), NULL, NULL),
		                 1);
	else
		ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &pem);
	ck_assert_int_gt(len, 0);
	write_file(path, pem, (size_t)len, 0600);
	BIO_free(bio);
}

/* Load `path`, expect `want`, and check that the outputs were left alone. */
static void
expect_load_error(const char *path, int want, const char *msg_part)
{
	uint8_t pub[QS_KEYS_PUB_BYTES];
	uint8_t pub_before[QS_KEYS_PUB_BYTES];
	EVP_PKEY *pkey = (EVP_PKEY *)&pub_before;
	char err[512] = "";

	memset(pub, 0xa5, sizeof(pub));
	memcpy(pub_before, pub, sizeof(pub));
	ck_assert_int_eq(qs_keys_load(path, &pkey, pub, err, sizeof(err)), want);
	ck_assert_ptr_eq(pkey, (EVP_PKEY *)&pub_before);
	ck_assert_mem_eq(pub, pub_before, sizeof(pub));
	ck_assert_msg(strstr(err, path), "message does not name the path: %s", err);
	if (msg_part)
		ck_assert_msg(strstr(err, msg_part), "message lacks \"%s\": %s", msg_part, err);
}

START_TEST(generate_then_load_round_trips_public_key)
{
	uint8_t pub_gen[QS_KEYS_PUB_BYTES], pub_load[QS_KEYS_PUB_BYTES];
	uint8_t raw[QS_KEYS_PUB_BYTES];
	size_t raw_len = sizeof(raw);
	char path[PATH_MAX];
	EVP_PKEY *pkey = NULL;
	char err[256];

	tmp_path(path, "network.key");
	ck_assert_int_eq(qs_keys_generate(path, pub_gen), 0);
	ck_assert_int_eq(qs_keys_load(path, &pkey, pub_load, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(pkey);
	ck_assert_mem_eq(pub_gen, pub_load, sizeof(pub_gen));
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len), 1);
	ck_assert_mem_eq(raw, pub_gen, sizeof(raw));
	EVP_PKEY_free(pkey);
}
END_TEST

START_TEST(generate_writes_pkcs8_pem_with_mode_0600)
{
	uint8_t pub[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX];
	char head[64] = "";
	struct stat st;
	FILE *f;

	umask(0);
	tmp_path(path, "signing.key");
	ck_assert_int_eq(qs_keys_generate(path, pub), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(head, sizeof(head), f));
	fclose(f);
	ck_assert_str_eq(head, "-----BEGIN PRIVATE KEY-----\n");
}
END_TEST

START_TEST(generate_gives_distinct_keys)
{
	uint8_t a[QS_KEYS_PUB_BYTES], b[QS_KEYS_PUB_BYTES];
	char pa[PATH_MAX], pb[PATH_MAX];

	tmp_path(pa, "a.key");
	tmp_path(pb, "b.key");
	ck_assert_int_eq(qs_keys_generate(pa, a), 0);
	ck_assert_int_eq(qs_keys_generate(pb, b), 0);
	ck_assert_mem_ne(a, b, sizeof(a));
}
END_TEST

START_TEST(generate_refuses_to_overwrite)
{
	uint8_t pub[QS_KEYS_PUB_BYTES], pub2[QS_KEYS_PUB_BYTES], pub_load[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX];
	EVP_PKEY *pkey = NULL;
	char err[256];

	tmp_path(path, "network.key");
	ck_assert_int_eq(qs_keys_generate(path, pub), 0);
	memset(pub2, 0, sizeof(pub2));
	ck_assert_int_eq(qs_keys_generate(path, pub2), -EEXIST);
	/* The first key is still there, unchanged. */
	ck_assert_int_eq(qs_keys_load(path, &pkey, pub_load, err, sizeof(err)), 0);
	ck_assert_mem_eq(pub, pub_load, sizeof(pub));
	EVP_PKEY_free(pkey);
}
END_TEST

START_TEST(generate_refuses_to_follow_a_symlink)
{
	uint8_t pub[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX], target[PATH_MAX];

	tmp_path(path, "link.key");
	tmp_path(target, "elsewhere.key");
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(qs_keys_generate(path, pub), -EEXIST);
	ck_assert_int_eq(access(target, F_OK), -1);
}
END_TEST

START_TEST(generate_reports_missing_directory)
{
	uint8_t pub[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX];

	tmp_path(path, "no-such-dir/network.key");
	ck_assert_int_eq(qs_keys_generate(path, pub), -ENOENT);
}
END_TEST

static void
expect_mode_refused(mode_t mode, const char *mode_text)
{
	uint8_t pub[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX];

	tmp_path(path, "network.key");
	ck_assert_int_eq(qs_keys_generate(path, pub), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	expect_load_error(path, QS_EKEY, mode_text);
	expect_load_error(path, QS_EKEY, "chmod 600");
}

START_TEST(load_refuses_group_readable_key)
{
	expect_mode_refused(0640, "0640");
}
END_TEST

START_TEST(load_refuses_world_readable_key)
{
	expect_mode_refused(0604, "0604");
}
END_TEST

START_TEST(load_accepts_read_only_owner_mode_0400)
{
	uint8_t pub[QS_KEYS_PUB_BYTES], pub_load[QS_KEYS_PUB_BYTES];
	char path[PATH_MAX];
	EVP_PKEY *pkey = NULL;
	char err[256];

	tmp_path(path, "network.key");
	ck_assert_int_eq(qs_keys_generate(path, pub), 0);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(qs_keys_load(path, &pkey, pub_load, err, sizeof(err)), 0);
	ck_assert_mem_eq(pub, pub_load, sizeof(pub));
	EVP_PKEY_free(pkey);
}
END_TEST

static void
expect_key_type_refused(EVP_PKEY *other, const char *type)
{
	char path[PATH_MAX];

	ck_assert_ptr_nonnull(other);
	tmp_path(path, "other.key");
	write_pkey(path, other, NULL);
	EVP_PKEY_free(other);
	expect_load_error(path, QS_EKEY, type);
}

START_TEST(load_refuses_rsa_key)
{
	expect_key_type_refused(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), "RSA");
}
END_TEST

START_TEST(load_refuses_ec_key)
{
	expect_key_type_refused(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), "EC");
}
END_TEST

/* Same raw size as Ed25519, so a mix-up would otherwise go unnoticed. */
START_TEST(load_refuses_x25519_key)
{
	expect_key_type_refused(EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), "X25519");
}
END_TEST

START_TEST(load_refuses_encrypted_key_without_prompting)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char path[PATH_MAX];

	ck_assert_ptr_nonnull(pkey);
	tmp_path(path, "encrypted.key");
	write_pkey(path, pkey, "secret");
	EVP_PKEY_free(pkey);
	expect_load_error(path, QS_EKEY, "encrypted");
}
END_TEST

START_TEST(load_refuses_garbage_file)
{
	static const char garbage[] = "this is not a key\n\x01\x02\x03";
	char path[PATH_MAX];

	tmp_path(path, "garbage.key");
	write_file(path, garbage, sizeof(garbage), 0600);
	expect_load_error(path, QS_EKEY, "no PEM private key");
}
END_TEST

START_TEST(load_refuses_public_key_pem)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *bio = BIO_new(BIO_s_mem());
	char path[PATH_MAX];
	char *pem;
	long len;

	ck_assert_ptr_nonnull(pkey);
	ck_assert_ptr_nonnull(bio);
	ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, pkey), 1);
	len = BIO_get_mem_data(bio, &pem);
	tmp_path(path, "public.pem");
	write_file(path, pem, (size_t)len, 0600);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	expect_load_error(path, QS_EKEY, "no PEM private key");
}
END_TEST

START_TEST(load_refuses_empty_file)
{
	char path[PATH_MAX];

	tmp_path(path, "empty.key");
	write_file(path, "", 0, 0600);
	expect_load_error(path, QS_EKEY, "empty");
}
END_TEST

START_TEST(load_refuses_oversized_file)
{
	size_t len = QS_KEYS_MAX_FILE_BYTES + 1;
	char path[PATH_MAX];
	char *big = malloc(len);

	ck_assert_ptr_nonnull(big);
	memset(big, 'A', len);
	tmp_path(path, "big.key");
	write_file(path, big, len, 0600);
	free(big);
	expect_load_error(path, QS_EKEY, "bytes");
}
END_TEST

START_TEST(load_refuses_directory)
{
	char path[PATH_MAX];

	tmp_path(path, "dir.key");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	expect_load_error(path, QS_EKEY, "not a regular file");
}
END_TEST

START_TEST(load_refuses_fifo_without_blocking)
{
	char path[PATH_MAX];

	tmp_path(path, "fifo.key");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	expect_load_error(path, QS_EKEY, "not a regular file");
}
END_TEST

START_TEST(load_reports_missing_file)
{
	char path[PATH_MAX];

	tmp_path(path, "missing.key");
	expect_load_error(path, -ENOENT, NULL);
}
END_TEST

START_TEST(loaded_key_signature_verifies_with_raw_public_key)
{
	static const unsigned char msg[] = "qsd/v1/batch-info test message";
	uint8_t pub_gen[QS_KEYS_PUB_BYTES], pub[QS_KEYS_PUB_BYTES];
	unsigned char sig[64];
	size_t sig_len = sizeof(sig);
	char path[PATH_MAX];
	EVP_PKEY *pkey = NULL, *verify_key;
	EVP_MD_CTX *ctx;
	char err[256];

	tmp_path(path, "signing.key");
	ck_assert_int_eq(qs_keys_generate(path, pub_gen), 0);
	ck_assert_int_eq(qs_keys_load(path, &pkey, pub, err, sizeof(err)), 0);

	ctx = EVP_MD_CTX_new();
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey), 1);
	ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof(msg)), 1);
	ck_assert_uint_eq(sig_len, 64);
	EVP_MD_CTX_free(ctx);

	verify_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof(pub));
	ck_assert_ptr_nonnull(verify_key);
	ctx = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, verify_key), 1);
	ck_assert_int_eq(EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);

	/* A changed signature must not verify: the check above is not vacuous. */
	sig[0] ^= 1;
	ctx = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, verify_key), 1);
	ck_assert_int_ne(EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);

	EVP_PKEY_free(verify_key);
	EVP_PKEY_free(pkey);
}
END_TEST

START_TEST(hex_round_trips_every_byte_value)
{
	uint8_t in[256], out[256];
	char hex[2 * sizeof(in) + 1];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	qs_hex_encode(in, sizeof(in), hex);
	ck_assert_uint_eq(strlen(hex), 2 * sizeof(in));
	ck_assert_int_eq(qs_hex_decode(hex, out, sizeof(out)), 0);
	ck_assert_mem_eq(in, out, sizeof(in));
}
END_TEST

START_TEST(hex_encode_is_lowercase)
{
	static const uint8_t in[] = {0x00, 0xab, 0xcd, 0xef, 0x19};
	char hex[2 * sizeof(in) + 1];

	qs_hex_encode(in, sizeof(in), hex);
	ck_assert_str_eq(hex, "00abcdef19");
	qs_hex_encode(in, 0, hex);
	ck_assert_str_eq(hex, "");
}
END_TEST

START_TEST(hex_decode_accepts_either_case)
{
	static const uint8_t want[] = {0xab, 0xcd, 0xef, 0x09};
	uint8_t out[4];

	ck_assert_int_eq(qs_hex_decode("ABcdEf09", out, sizeof(out)), 0);
	ck_assert_mem_eq(out, want, sizeof(want));
}
END_TEST

/* Decode must fail with -EINVAL and leave `out` as it was. */
static void
expect_hex_rejected(const char *in, size_t n)
{
	uint8_t out[8];
	uint8_t before[8];

	ck_assert_uint_le(n, sizeof(out));
	memset(out, 0x5a, sizeof(out));
	memcpy(before, out, sizeof(out));
	ck_assert_int_eq(qs_hex_decode(in, out, n), -EINVAL);
	ck_assert_mem_eq(out, before, sizeof(out));
}

START_TEST(hex_decode_rejects_odd_length)
{
	expect_hex_rejected("abc", 2);
	expect_hex_rejected("abcde", 2);
}
END_TEST

START_TEST(hex_decode_rejects_non_hex)
{
	expect_hex_rejected("zz", 1);
	expect_hex_rejected("0g", 1);
	expect_hex_rejected("0x12", 2);
	expect_hex_rejected(" 1234", 2);
	expect_hex_rejected("12 3", 2);
	expect_hex_rejected("aabbccd\xff", 4);
}
END_TEST

START_TEST(hex_decode_rejects_wrong_length)
{
	expect_hex_rejected("", 1);
	expect_hex_rejected("aabb", 1);
	expect_hex_rejected("aabb", 3);
	expect_hex_rejected("aabbccddee", 4);
}
END_TEST

static Suite *
keys_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("keys");
	TCase *hex = tcase_create("hex");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, generate_then_load_round_trips_public_key);
	tcase_add_test(tc, generate_writes_pkcs8_pem_with_mode_0600);
	tcase_add_test(tc, generate_gives_distinct_keys);
	tcase_add_test(tc, generate_refuses_to_overwrite);
	tcase_add_test(tc, generate_refuses_to_follow_a_symlink);
	tcase_add_test(tc, generate_reports_missing_directory);
	tcase_add_test(tc, load_refuses_group_readable_key);
	tcase_add_test(tc, load_refuses_world_readable_key);
	tcase_add_test(tc, load_accepts_read_only_owner_mode_0400);
	tcase_add_test(tc, load_refuses_rsa_key);
	tcase_add_test(tc, load_refuses_ec_key);
	tcase_add_test(tc, load_refuses_x25519_key);
	tcase_add_test(tc, load_refuses_encrypted_key_without_prompting);
	tcase_add_test(tc, load_refuses_garbage_file);
	tcase_add_test(tc, load_refuses_public_key_pem);
	tcase_add_test(tc, load_refuses_empty_file);
	tcase_add_test(tc, load_refuses_oversized_file);
	tcase_add_test(tc, load_refuses_directory);
	tcase_add_test(tc, load_refuses_fifo_without_blocking);
	tcase_add_test(tc, load_reports_missing_file);
	tcase_add_test(tc, loaded_key_signature_verifies_with_raw_public_key);
	suite_add_tcase(s, tc);

	tcase_add_test(hex, hex_round_trips_every_byte_value);
	tcase_add_test(hex, hex_encode_is_lowercase);
	tcase_add_test(hex, hex_decode_accepts_either_case);
	tcase_add_test(hex, hex_decode_rejects_odd_length);
	tcase_add_test(hex, hex_decode_rejects_non_hex);
	tcase_add_test(hex, hex_decode_rejects_wrong_length);
	suite_add_tcase(s, hex);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(keys_suite());
	int failed;

	/* Fork mode unless CK_FORK=no (for a debugger). */
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
