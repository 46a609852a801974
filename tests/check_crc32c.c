/*
 * storage/crc32c: the CRC32C RocksDB's checksums use in qsd. Known values,
 * agreement with the table version and with librocksdb's own function at
 * every length and alignment, RocksDB's calls bound to it, and a WAL
 * written through it checked record by record with the library's code.
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "storage/crc32c.h"
#include "tests/lib/tmpdir.h"

#define ROCKSDB_EXTEND_SYM "_ZN7rocksdb6crc32c6ExtendEjPKcm"

typedef uint32_t (*extend_fn)(uint32_t, const char *, size_t);

/* librocksdb's own crc32c::Extend, behind this program's definition. */
static extend_fn
rocksdb_extend(void)
{
	extend_fn f = (extend_fn)dlsym(RTLD_NEXT, ROCKSDB_EXTEND_SYM);

	ck_assert_msg(f != NULL, "librocksdb has no %s", ROCKSDB_EXTEND_SYM);
	return f;
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

START_TEST(known_values)
{
	static const char digits[] = "123456789";
	uint8_t zeros[32] = {0}, ones[32], rising[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		rising[i] = (uint8_t)i;
	/* The check value, and RFC 3720's test vectors (B.4). */
	ck_assert_uint_eq(qs_crc32c_extend(0, digits, 9), 0xe3069283u);
	ck_assert_uint_eq(qs_crc32c_extend(0, zeros, 32), 0x8a9136aau);
	ck_assert_uint_eq(qs_crc32c_extend(0, ones, 32), 0x62a8ab43u);
	ck_assert_uint_eq(qs_crc32c_extend(0, rising, 32), 0x46dd794eu);
	ck_assert_uint_eq(qs_crc32c_extend_table(0, digits, 9), 0xe3069283u);
	ck_assert_uint_eq(qs_crc32c_extend_table(0, rising, 32), 0x46dd794eu);
	ck_assert_uint_eq(qs_crc32c_extend(0, digits, 0), 0);
	/* Extending is the CRC of the concatenation. */
	ck_assert_uint_eq(qs_crc32c_extend(qs_crc32c_extend(0, digits, 4), digits + 4, 5),
	                  0xe3069283u);
}
END_TEST

START_TEST(agrees_with_the_table_and_with_rocksdb)
{
	enum {
		MAX = 70000
	};
	extend_fn lib = rocksdb_extend();
	uint8_t *buf = malloc(MAX + 16);
	uint64_t s = 42;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < MAX + 16; i++)
		buf[i] = (uint8_t)rng_next(&s);
	for (int round = 0; round < 3000; round++) {
		uint64_t r = rng_next(&s);
		size_t off = r & 15;
		/* Every length up to 64 and past each multiple of 8, then any. */
		size_t len = round < 600 ? (size_t)round % 80 : (size_t)((r >> 8) % MAX);
		uint32_t init = round & 1 ? (uint32_t)(r >> 32) : 0;
		uint32_t want = lib(init, (const char *)buf + off, len);

		ck_assert_uint_eq(qs_crc32c_extend(init, buf + off, len), want);
		if (len < 8192)
			ck_assert_uint_eq(qs_crc32c_extend_table(init, buf + off, len), want);
	}
	/* Each side of the three-stream blocks (3 x 256 and 3 x 8 KiB) and a
	 * 64 KiB value, at every alignment. */
	{
		static const size_t edges[] = {767,   768,   769,   775,   1535,  1536,  24575,
		                               24576, 24577, 25343, 25344, 49152, 65536, 65559};

		for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
			for (size_t off = 0; off < 8; off++) {
				uint32_t init = (uint32_t)rng_next(&s);

				ck_assert_uint_eq(qs_crc32c_extend(init, buf + off, edges[e]),
				                  lib(init, (const char *)buf + off, edges[e]));
			}
	}
	free(buf);
}
END_TEST

START_TEST(rocksdb_calls_reach_it)
{
	ck_assert_int_eq(qs_crc32c_serves_rocksdb(), 1);
	ck_assert(strcmp(qs_crc32c_impl(), "sse4.2") == 0 ||
	          strcmp(qs_crc32c_impl(), "table") == 0);
}
END_TEST

static uint32_t
unmask(uint32_t m)
{
	uint32_t r = m - 0xa282ead8u;

	return (r >> 17) | (r << 15);
}

/* Check every record of a RocksDB log file with the library's own CRC;
 * returns the number of full or first-fragment records. */
static int
check_wal(const char *path, extend_fn lib)
{
	enum {
		BLOCK = 32768,
		HEADER = 7
	};
	FILE *f = fopen(path, "rb");
	uint8_t *data;
	long size;
	long pos = 0;
	int records = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	ck_assert_int_gt(size, 0);
	rewind(f);
	data = malloc((size_t)size);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	while (pos + HEADER <= size) {
		long left_in_block = BLOCK - pos % BLOCK;
		uint32_t masked, crc;
		uint16_t len;
		uint8_t type;

		if (left_in_block < HEADER) {
			pos += left_in_block; /* the block's zero trailer */
			continue;
		}
		memcpy(&masked, data + pos, 4);
		len = (uint16_t)(data[pos + 4] | data[pos + 5] << 8);
		type = data[pos + 6];
		if (type == 0 && len == 0 && masked == 0)
			break; /* preallocated space past the last record */
		ck_assert_int_le(pos + HEADER + len, size);
		ck_assert_int_ge(type, 1);
		ck_assert_int_le(type, 4); /* full, first, middle, last */
		crc = lib(lib(0, (const char *)&type, 1), (const char *)data + pos + HEADER, len);
		ck_assert_msg(unmask(masked) == crc, "record at %ld: crc %08x, file says %08x", pos,
		              crc, unmask(masked));
		if (type == 1 || type == 2)
			records++;
		pos += HEADER + len;
	}
	free(data);
	return records;
}

START_TEST(rocksdb_files_written_through_it_pass_rocksdbs_own_check)
{
	extend_fn lib = rocksdb_extend();
	char dir[256], wal[600] = "";
	rocksdb_options_t *opts = rocksdb_options_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;
	char value[100000];
	rocksdb_t *db;
	DIR *d;
	struct dirent *e;

	qs_test_mkdtemp(dir, sizeof(dir));
	rocksdb_options_set_create_if_missing(opts, 1);
	rocksdb_writeoptions_set_sync(wo, 1);
	db = rocksdb_open(opts, dir, &err);
	ck_assert_msg(db != NULL, "open: %s", err ? err : "");
	/* Values of one, several and many 32 KiB log blocks. */
	for (int i = 0; i < 20; i++) {
		char key[16];
		size_t len = (size_t)(i * 4999) % sizeof(value);

		memset(value, 'a' + i, len);
		snprintf(key, sizeof(key), "k%02d", i);
		rocksdb_put(db, wo, key, strlen(key), value, len, &err);
		ck_assert_msg(err == NULL, "put: %s", err ? err : "");
	}
	rocksdb_close(db);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > 4 && strcmp(e->d_name + n - 4, ".log") == 0)
			snprintf(wal, sizeof(wal), "%s/%s", dir, e->d_name);
	}
	closedir(d);
	ck_assert_msg(wal[0], "no WAL in %s", dir);
	ck_assert_int_eq(check_wal(wal, lib), 20);
	/* And RocksDB reads it back (replaying the WAL) in this process. */
	db = rocksdb_open(opts, dir, &err);
	ck_assert_msg(db != NULL, "reopen: %s", err ? err : "");
	{
		rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
		size_t len = 0;
		char *v = rocksdb_get(db, ro, "k19", 3, &len, &err);

		ck_assert_ptr_nonnull(v);
		ck_assert_uint_eq(len, (size_t)(19 * 4999) % sizeof(value));
		ck_assert_int_eq(v[0], 'a' + 19);
		rocksdb_free(v);
		rocksdb_readoptions_destroy(ro);
	}
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(opts);
	qs_test_rmtree(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("crc32c");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, known_values);
	tcase_add_test(tc, agrees_with_the_table_and_with_rocksdb);
	tcase_add_test(tc, rocksdb_calls_reach_it);
	tcase_add_test(tc, rocksdb_files_written_through_it_pass_rocksdbs_own_check);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
