/* storage/store: opening, column families and the schema version. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "core/codec.h"
#include "core/error.h"
#include "storage/store.h"
#include "tests/lib/tmpdir.h"

static struct qs_store_options
options(const char *dir)
{
	struct qs_store_options o = {
	    .dir = dir,
	    .write_buffer_bytes = 8 << 20,
	    .block_cache_bytes = 8 << 20,
	    .max_wal_bytes = 64 << 20,
	};
	return o;
}

/* Write a raw meta record into the database at dir, bypassing qs_store. */
static void
put_meta(const char *dir, const char *key, const void *val, size_t len)
{
	const char *names[] = {"default", "batches", "infos", "proofs", "meta"};
	rocksdb_options_t *o = rocksdb_options_create();
	const rocksdb_options_t *cfo[] = {o, o, o, o, o};
	rocksdb_column_family_handle_t *h[5];
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;
	rocksdb_t *db;

	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_create_missing_column_families(o, 1);
	db = rocksdb_open_column_families(o, dir, 5, names, cfo, h, &err);
	ck_assert_msg(err == NULL, "%s", err);
	rocksdb_put_cf(db, wo, h[4], key, strlen(key), val, len, &err);
	ck_assert_msg(err == NULL, "%s", err);
	for (int i = 0; i < 5; i++)
		rocksdb_column_family_handle_destroy(h[i]);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
}

START_TEST(open_creates_database_with_schema_version)
{
	char dir[256], err[512] = "";
	struct qs_store_options o;
	struct qs_store *st = NULL;

	qs_test_mkdtemp(dir, sizeof(dir));
	strcat(dir, "/db");
	o = options(dir);
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(qs_store_schema_version(st), QS_SCHEMA_VERSION);
	qs_store_close(st);
	st = NULL;
	/* Reopening finds the same version and all column families. */
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(qs_store_schema_version(st), QS_SCHEMA_VERSION);
	qs_store_close(st);
	*strrchr(dir, '/') = '\0';
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(newer_schema_version_is_refused)
{
	char dir[256], err[512] = "";
	struct qs_store_options o;
	struct qs_store *st = NULL;
	uint8_t v[4];

	qs_test_mkdtemp(dir, sizeof(dir));
	o = options(dir);
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	qs_store_close(st);
	st = NULL;
	qs_put_be32(v, QS_SCHEMA_VERSION + 1);
	put_meta(dir, "schema_version", v, sizeof(v));
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), QS_ESCHEMA);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, "schema version 2") != NULL, "%s", err);
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(malformed_schema_record_is_refused)
{
	char dir[256], err[512] = "";
	struct qs_store_options o;
	struct qs_store *st = NULL;

	qs_test_mkdtemp(dir, sizeof(dir));
	o = options(dir);
	put_meta(dir, "schema_version", "x", 1);
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), QS_ECORRUPT);
	ck_assert_ptr_null(st);
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(data_dir_that_is_a_file_is_refused)
{
	char dir[256], err[512] = "";
	struct qs_store_options o;
	struct qs_store *st = NULL;
	FILE *f;

	qs_test_mkdtemp(dir, sizeof(dir));
	strcat(dir, "/file");
	f = fopen(dir, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	o = options(dir);
	ck_assert_int_lt(qs_store_open(&o, &st, err, sizeof(err)), 0);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, "data directory") != NULL, "%s", err);
	*strrchr(dir, '/') = '\0';
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(rocksdb_errors_translate_to_codes)
{
	ck_assert_int_eq(qs_store_error_code("IO error: No space left on device"), QS_ENOSPACE);
	ck_assert_int_eq(qs_store_error_code("IO error: While fdatasync: x: Input/output error"),
	                 QS_EIO);
	ck_assert_int_eq(qs_store_error_code("Corruption: block checksum mismatch"), QS_ECORRUPT);
	ck_assert_int_eq(qs_store_error_code("Invalid argument: x"), QS_ESTORE);
	ck_assert_int_eq(qs_store_error_code(NULL), QS_ESTORE);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, open_creates_database_with_schema_version);
	tcase_add_test(tc, newer_schema_version_is_refused);
	tcase_add_test(tc, malformed_schema_record_is_refused);
	tcase_add_test(tc, data_dir_that_is_a_file_is_refused);
	tcase_add_test(tc, rocksdb_errors_translate_to_codes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
