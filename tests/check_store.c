/* storage/store: opening, column families, the schema version, start-up scans
 * and deletes, and RocksDB properties. */
#include <check.h>
#include <errno.h>
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

/* Write a raw record into column family cf of the database at dir,
 * bypassing qs_store. */
static void
put_raw(const char *dir, enum qs_store_cf cf, const void *key, size_t klen, const void *val,
        size_t len)
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
	rocksdb_put_cf(db, wo, h[1 + cf], key, klen, val, len, &err);
	ck_assert_msg(err == NULL, "%s", err);
	for (int i = 0; i < 5; i++)
		rocksdb_column_family_handle_destroy(h[i]);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
}

static void
put_meta(const char *dir, const char *key, const void *val, size_t len)
{
	put_raw(dir, QS_CF_META, key, strlen(key), val, len);
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

struct seen {
	int n;
	int stop_after; /* 0: never stop */
	char keys[8][8];
	char vals[8][8];
};

static int
collect(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, 8);
	if (klen < sizeof(s->keys[0]) && vlen < sizeof(s->vals[0])) {
		memcpy(s->keys[s->n], key, klen);
		memcpy(s->vals[s->n], val, vlen);
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

/* Three proofs written out of order, and a meta record that must not show. */
static struct qs_store *
open_with_proofs(char *dir, size_t dirlen)
{
	char err[512] = "";
	struct qs_store_options o;
	struct qs_store *st = NULL;

	qs_test_mkdtemp(dir, dirlen);
	o = options(dir);
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	qs_store_close(st);
	st = NULL;
	put_raw(dir, QS_CF_PROOFS, "k2", 2, "v2", 2);
	put_raw(dir, QS_CF_PROOFS, "k0", 2, "v0", 2);
	put_raw(dir, QS_CF_PROOFS, "k1", 2, "v1", 2);
	put_meta(dir, "k9", "v9", 2);
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	return st;
}

START_TEST(scan_visits_one_family_in_key_order)
{
	char dir[256];
	struct qs_store *st = open_with_proofs(dir, sizeof(dir));
	struct seen s = {0};

	ck_assert_int_eq(qs_store_scan(st, QS_CF_PROOFS, collect, &s), 0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.keys[0], "k0");
	ck_assert_str_eq(s.vals[0], "v0");
	ck_assert_str_eq(s.keys[1], "k1");
	ck_assert_str_eq(s.keys[2], "k2");
	ck_assert_str_eq(s.vals[2], "v2");
	/* An empty family is no error. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(qs_store_scan(st, QS_CF_BATCHES, collect, &s), 0);
	ck_assert_int_eq(s.n, 0);
	ck_assert_int_eq(qs_store_scan(st, QS_CF_COUNT, collect, &s), -EINVAL);
	qs_store_close(st);
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(scan_stops_when_the_callback_says_so)
{
	char dir[256];
	struct qs_store *st = open_with_proofs(dir, sizeof(dir));
	struct seen s = {.stop_after = 2};

	ck_assert_int_eq(qs_store_scan(st, QS_CF_PROOFS, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.keys[1], "k1");
	qs_store_close(st);
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(delete_sync_removes_one_record_durably)
{
	char dir[256], err[512] = "";
	struct qs_store *st = open_with_proofs(dir, sizeof(dir));
	struct qs_store_options o = options(dir);
	struct seen s = {0};

	ck_assert_int_eq(qs_store_delete_sync(st, QS_CF_PROOFS, "k1", 2), 0);
	/* A missing key, or the same key in another family, is no error. */
	ck_assert_int_eq(qs_store_delete_sync(st, QS_CF_PROOFS, "zz", 2), 0);
	ck_assert_int_eq(qs_store_delete_sync(st, QS_CF_META, "k0", 2), 0);
	ck_assert_int_eq(qs_store_delete_sync(st, QS_CF_COUNT, "k0", 2), -EINVAL);
	qs_store_close(st);
	st = NULL;
	ck_assert_int_eq(qs_store_open(&o, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(qs_store_scan(st, QS_CF_PROOFS, collect, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.keys[0], "k0");
	ck_assert_str_eq(s.keys[1], "k2");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(qs_store_scan(st, QS_CF_META, collect, &s), 0);
	ck_assert_int_eq(s.n, 2); /* k9 and schema_version */
	ck_assert_str_eq(s.keys[0], "k9");
	qs_store_close(st);
	qs_test_rmtree(dir);
}
END_TEST

START_TEST(property_sums_families_and_reads_database_wide_ones_once)
{
	char dir[256];
	struct qs_store *st = open_with_proofs(dir, sizeof(dir));
	uint64_t v = 12345;

	/* Opening flushed the records put before it into SST files. */
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.live-sst-files-size", &v), 0);
	ck_assert_uint_gt(v, 0);
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.cur-size-all-mem-tables", &v), 0);
	ck_assert_uint_gt(v, 0);
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.estimate-pending-compaction-bytes", &v),
	                 0);
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.is-write-stopped", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.actual-delayed-write-rate", &v), 0);
	ck_assert_uint_eq(v, 0);
	/* One cache shared by every family: counted once, not once per family. */
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.block-cache-capacity", &v), 0);
	ck_assert_uint_eq(v, 8 << 20);
	/* Unknown, and string-only, properties. */
	v = 777;
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.no-such-property", &v), QS_ENOTFOUND);
	ck_assert_int_eq(qs_store_property_u64(st, "rocksdb.stats", &v), QS_ENOTFOUND);
	ck_assert_uint_eq(v, 777);
	qs_store_close(st);
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
	tcase_add_test(tc, scan_visits_one_family_in_key_order);
	tcase_add_test(tc, scan_stops_when_the_callback_says_so);
	tcase_add_test(tc, delete_sync_removes_one_record_durably);
	tcase_add_test(tc, property_sums_families_and_reads_database_wide_ones_once);
	tcase_add_test(tc, rocksdb_errors_translate_to_codes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
