#include "storage/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>

#include "core/codec.h"
#include "core/error.h"
#include "storage/crc32c.h"
#include "storage/store_impl.h"
#include "storage/writer.h"
#include "core/hex.h"

const char *const qs_store_cf_names[QS_CF_COUNT] = {
    [QS_CF_BATCHES] = "batches",
    [QS_CF_INFOS] = "infos",
    [QS_CF_PROOFS] = "proofs",
    [QS_CF_META] = "meta",
};

int
qs_store_error_code(const char *msg)
{
	if (!msg)
		return QS_ESTORE;
	if (strstr(msg, "No space left") || strstr(msg, "ENOSPC"))
		return QS_ENOSPACE;
	if (strncmp(msg, "Corruption", 10) == 0 || strstr(msg, "orruption"))
		return QS_ECORRUPT;
	if (strncmp(msg, "IO error", 8) == 0)
		return QS_EIO;
	return QS_ESTORE;
}

int
qs_store_fail(char *rerr, const char *what, char *err, size_t errlen)
{
	int rc = qs_store_error_code(rerr);

	snprintf(err, errlen, "%s: %s", what, rerr ? rerr : "unknown error");
	rocksdb_free(rerr);
	return rc;
}

static int
store_mkdir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
	return -errno;
}

/* A directory without a database yet (RocksDB finds no CURRENT file). */
static int
store_is_fresh(rocksdb_options_t *opts, const char *dir)
{
	char *rerr = NULL;
	size_t n = 0;
	char **names = rocksdb_list_column_families(opts, dir, &n, &rerr);

	/* The list is allocated even when the call fails. */
	rocksdb_list_column_families_destroy(names, n);
	if (rerr) {
		rocksdb_free(rerr);
		return 1;
	}
	return 0;
}

int
qs_store_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int
qs_store_schema_parse(const char *val, size_t len, uint32_t *version, char *err, size_t errlen)
{
	uint32_t v;

	if (len != 4) {
		snprintf(err, errlen, "schema version record has %zu bytes, want 4", len);
		return QS_ECORRUPT;
	}
	v = qs_get_be32((const uint8_t *)val);
	if (v > QS_SCHEMA_VERSION || v == 0) {
		snprintf(err, errlen,
		         "database schema version %u is not supported by this qsd "
		         "(supports %u); use a newer qsd",
		         v, QS_SCHEMA_VERSION);
		return QS_ESCHEMA;
	}
	*version = v;
	return 0;
}

static int
store_check_schema(struct qs_store *st, int fresh, char *err, size_t errlen)
{
	char *rerr = NULL;
	size_t len = 0;
	char *val = rocksdb_get_cf(st->db, st->ro, st->cf[QS_CF_META], QS_META_SCHEMA,
	                           strlen(QS_META_SCHEMA), &len, &rerr);
	uint8_t buf[4];
	int rc = 0;

	if (rerr)
		return qs_store_fail(rerr, "reading schema version", err, errlen);
	if (val) {
		rc = qs_store_schema_parse(val, len, &st->schema_version, err, errlen);
		goto out;
	}
	if (!fresh) {
		/* A database without a schema record that holds data is not ours. */
		rocksdb_iterator_t *it =
		    rocksdb_create_iterator_cf(st->db, st->ro, st->cf[QS_CF_INFOS]);
		rocksdb_iter_seek_to_first(it);
		int has_data = rocksdb_iter_valid(it);
		rocksdb_iter_destroy(it);
		if (has_data) {
			snprintf(err, errlen, "database holds data but no schema version");
			rc = QS_ESCHEMA;
			goto out;
		}
	}
	qs_put_be32(buf, QS_SCHEMA_VERSION);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[QS_CF_META], QS_META_SCHEMA,
	               strlen(QS_META_SCHEMA), (const char *)buf, sizeof(buf), &rerr);
	if (rerr) {
		rc = qs_store_fail(rerr, "writing schema version", err, errlen);
		goto out;
	}
	st->schema_version = QS_SCHEMA_VERSION;
out:
	rocksdb_free(val);
	return rc;
}

/* Table files are written back this much at a time (see qs_store_open). */
#define QS_STORE_BYTES_PER_SYNC (1u << 20)

/*
 * Payloads of at least this many bytes are written to blob files at flush:
 * the table files then hold only keys and blob references, and compaction
 * moves keys instead of rewriting payloads. Blob garbage collection stays
 * off: RocksDB deletes a blob file once no table file refers to it or to
 * an older one, which the GC's file drops bring about within about one
 * max_batch_lifetime_ms of its last batch's arrival (docs/DESIGN.md,
 * "Storage schema"; check_writer blob_files_go_with_the_last_batch_they_hold).
 */
#define QS_STORE_BLOB_MIN_BYTES 2048

/* Open the database files with the options already in st. */
static int
store_db_open(struct qs_store *st, char *err, size_t errlen)
{
	const rocksdb_options_t *cf_opts[QS_CF_COUNT + 1];
	const char *cf_names[QS_CF_COUNT + 1];
	rocksdb_column_family_handle_t *handles[QS_CF_COUNT + 1] = {0};
	char *rerr = NULL;
	int fresh = store_is_fresh(st->opts, st->dir);

	/* RocksDB requires the default family to be opened too. */
	cf_names[0] = "default";
	cf_opts[0] = st->opts;
	for (int c = 0; c < QS_CF_COUNT; c++) {
		cf_names[c + 1] = qs_store_cf_names[c];
		cf_opts[c + 1] = c == QS_CF_BATCHES ? st->batch_opts : st->opts;
	}
	st->db = rocksdb_open_column_families(st->opts, st->dir, QS_CF_COUNT + 1, cf_names, cf_opts,
	                                      handles, &rerr);
	if (rerr)
		return qs_store_fail(rerr, "opening database", err, errlen);
	rocksdb_column_family_handle_destroy(handles[0]);
	for (int c = 0; c < QS_CF_COUNT; c++)
		st->cf[c] = handles[c + 1];
	return store_check_schema(st, fresh, err, errlen);
}

/* Close the database files, keeping the options. */
static void
store_db_close(struct qs_store *st)
{
	if (st->db)
		rocksdb_cancel_all_background_work(st->db, 1);
	for (int c = 0; c < QS_CF_COUNT; c++) {
		if (st->cf[c])
			rocksdb_column_family_handle_destroy(st->cf[c]);
		st->cf[c] = NULL;
	}
	if (st->db)
		rocksdb_close(st->db);
	st->db = NULL;
}

int
qs_store_open(const struct qs_store_options *opt, struct qs_store **out, char *err, size_t errlen)
{
	struct qs_store *st = NULL;
	int rc;

	rc = store_mkdir(opt->dir, err, errlen);
	if (rc)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dir = strdup(opt->dir);
	st->opts = rocksdb_options_create();
	st->table = rocksdb_block_based_options_create();
	st->cache = rocksdb_cache_create_lru(opt->block_cache_bytes);
	st->ro = rocksdb_readoptions_create();
	st->wo_sync = rocksdb_writeoptions_create();
	if (!st->dir) {
		rc = -ENOMEM;
		goto out;
	}
	rocksdb_writeoptions_set_sync(st->wo_sync, 1);
	rocksdb_block_based_options_set_block_cache(st->table, st->cache);
	rocksdb_options_set_block_based_table_factory(st->opts, st->table);
	rocksdb_options_set_create_if_missing(st->opts, 1);
	rocksdb_options_set_create_missing_column_families(st->opts, 1);
	rocksdb_options_set_info_log_level(st->opts, QS_ROCKSDB_FATAL_LEVEL);
	rocksdb_options_set_keep_log_file_num(st->opts, 2);
	rocksdb_options_set_db_write_buffer_size(st->opts, opt->write_buffer_bytes);
	rocksdb_options_set_max_total_wal_size(st->opts, opt->max_wal_bytes);
	rocksdb_options_set_compression(st->opts, rocksdb_no_compression);
	/* Flushes and compactions write their files back a MiB at a time, so
	 * that their final sync does not hold the disk for a whole memtable
	 * while the WAL syncs of acks wait behind it. */
	rocksdb_options_set_bytes_per_sync(st->opts, QS_STORE_BYTES_PER_SYNC);
	rocksdb_options_set_paranoid_checks(st->opts, 1);
	/*
	 * A torn last WAL record is what a crash leaves of a write that never
	 * returned (so was never acked); damage anywhere else means the disk
	 * lost synced data, and opening must fail rather than silently drop
	 * the acked batches after it (RocksDB's default, point-in-time
	 * recovery, would).
	 */
	rocksdb_options_set_wal_recovery_mode(st->opts,
	                                      rocksdb_tolerate_corrupted_tail_records_recovery);
	st->batch_opts = rocksdb_options_create_copy(st->opts);
	rocksdb_options_set_enable_blob_files(st->batch_opts, 1);
	rocksdb_options_set_min_blob_size(st->batch_opts, QS_STORE_BLOB_MIN_BYTES);
	rocksdb_options_set_enable_blob_gc(st->batch_opts, 0);
	rc = store_db_open(st, err, errlen);
out:
	if (rc) {
		qs_store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

int
qs_store_reopen(struct qs_store *st, char *err, size_t errlen)
{
	store_db_close(st);
	return store_db_open(st, err, errlen);
}

void
qs_store_close(struct qs_store *st)
{
	if (!st)
		return;
	store_db_close(st);
	rocksdb_writeoptions_destroy(st->wo_sync);
	rocksdb_readoptions_destroy(st->ro);
	rocksdb_options_destroy(st->opts);
	if (st->batch_opts)
		rocksdb_options_destroy(st->batch_opts);
	rocksdb_block_based_options_destroy(st->table);
	rocksdb_cache_destroy(st->cache);
	free(st->dir);
	free(st);
}

int
qs_store_background_errors(struct qs_store *st, uint64_t *out)
{
	char *v;

	if (!st->db)
		return QS_ESTORE;
	v = rocksdb_property_value(st->db, "rocksdb.background-errors");
	if (!v)
		return QS_ESTORE;
	*out = strtoull(v, NULL, 10);
	rocksdb_free(v);
	return 0;
}

int
qs_store_free_bytes(const char *dir, uint64_t *out)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) != 0)
		return -errno;
	/* What an unprivileged writer may use: qsd should not live on root's
	 * reserve either. */
	*out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	return 0;
}

uint32_t
qs_store_schema_version(const struct qs_store *st)
{
	return st->schema_version;
}

const char *
qs_store_crc32c(void)
{
	return qs_crc32c_serves_rocksdb() ? qs_crc32c_impl() : "rocksdb";
}

/* Range-delete [0, end) in the expiration-ordered families. */
static void
delete_expired(struct qs_store *st, rocksdb_writebatch_t *wb, const uint8_t end[8])
{
	static const uint8_t zero[8];
	static const enum qs_store_cf cfs[] = {QS_CF_BATCHES, QS_CF_INFOS, QS_CF_PROOFS};

	for (size_t i = 0; i < sizeof(cfs) / sizeof(cfs[0]); i++)
		rocksdb_writebatch_delete_range_cf(wb, st->cf[cfs[i]], (const char *)zero, 8,
		                                   (const char *)end, 8);
}

int
qs_store_recover(struct qs_store *st, uint64_t now_us, uint32_t chain_id,
                 int (*keep)(void *arg, const struct qs_batch_info *info), void *arg,
                 struct qs_recovery_stats *stats, char *err, size_t errlen)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[QS_CF_INFOS]);
	uint8_t first_live[8];
	char *rerr = NULL;
	int rc = 0;

	memset(stats, 0, sizeof(*stats));
	qs_put_be64(first_live, now_us + 1);
	rocksdb_iter_seek_to_first(it);
	if (rocksdb_iter_valid(it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (klen >= 8 && memcmp(k, first_live, 8) < 0) {
			delete_expired(st, wb, first_live);
			stats->expired_deleted = 1;
		}
	}
	for (rocksdb_iter_seek(it, (const char *)first_live, 8); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		struct qs_batch_info info;
		uint32_t chain;
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		if (klen != QS_STORE_KEY_BYTES ||
		    qs_codec_info_parse((const uint8_t *)v, vlen, &chain, &info) != 0 ||
		    info.expiration_us != qs_get_be64((const uint8_t *)k) ||
		    memcmp(info.digest, k + 8, QS_DIGEST_BYTES) != 0) {
			char hex[2 * QS_STORE_KEY_BYTES + 1];

			qs_hex_encode((const uint8_t *)k,
			              klen < QS_STORE_KEY_BYTES ? klen : QS_STORE_KEY_BYTES, hex);
			snprintf(err, errlen, "infos record %s does not parse", hex);
			rc = QS_ECORRUPT;
			goto out;
		}
		if (chain == chain_id) {
			int k_rc = keep(arg, &info);

			if (k_rc == 0) {
				stats->kept++;
				continue;
			}
			if (k_rc < 0) {
				/* The caller could not take it (out of memory): stop,
				 * deleting nothing. */
				snprintf(err, errlen, "recovery stopped: %s", qs_strerror(k_rc));
				rc = k_rc;
				goto out;
			}
		}
		rocksdb_writebatch_delete_cf(wb, st->cf[QS_CF_BATCHES], k, klen);
		rocksdb_writebatch_delete_cf(wb, st->cf[QS_CF_INFOS], k, klen);
		stats->dropped++;
	}
	rocksdb_iter_get_error(it, &rerr);
	if (rerr) {
		rc = qs_store_fail(rerr, "scanning infos", err, errlen);
		goto out;
	}
	if (rocksdb_writebatch_count(wb) > 0) {
		rocksdb_write(st->db, st->wo_sync, wb, &rerr);
		if (rerr) {
			rc = qs_store_fail(rerr, "deleting expired batches", err, errlen);
			goto out;
		}
	}
out:
	rocksdb_iter_destroy(it);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

int
qs_store_meta_get(struct qs_store *st, const char *key, void *val, size_t cap)
{
	char *rerr = NULL;
	size_t len = 0;
	char *v = rocksdb_get_cf(st->db, st->ro, st->cf[QS_CF_META], key, strlen(key), &len, &rerr);
	int rc;

	if (rerr) {
		rc = qs_store_error_code(rerr);
		rocksdb_free(rerr);
		return rc;
	}
	if (!v)
		return QS_ENOTFOUND;
	if (len > cap || len > INT32_MAX) {
		rc = QS_ELIMIT;
	} else {
		memcpy(val, v, len);
		rc = (int)len;
	}
	rocksdb_free(v);
	return rc;
}

/*
 * Call fn for each record of cf whose key starts with prefix (plen bytes,
 * possibly none), in key order, until fn returns non-zero.
 */
static int
store_iterate(struct qs_store *st, enum qs_store_cf cf, const char *prefix, size_t plen,
              int (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen),
              void *arg)
{
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int rc = 0;

	if ((unsigned)cf >= QS_CF_COUNT)
		return -EINVAL;
	if (!st->db)
		return QS_ESTORE; /* a failed reopen left no database open */
	it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[cf]);
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		if (klen < plen || (plen && memcmp(k, prefix, plen) != 0))
			break;
		if (fn(arg, (const uint8_t *)k, klen, (const uint8_t *)v, vlen) != 0)
			break;
	}
	rocksdb_iter_get_error(it, &rerr);
	if (rerr) {
		rc = qs_store_error_code(rerr);
		rocksdb_free(rerr);
	}
	rocksdb_iter_destroy(it);
	return rc;
}

struct meta_scan_ctx {
	void (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
	void *arg;
};

static int
meta_scan_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct meta_scan_ctx *c = arg;

	c->fn(c->arg, key, klen, val, vlen);
	return 0;
}

int
qs_store_meta_scan(struct qs_store *st, const char *prefix,
                   void (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                              size_t vlen),
                   void *arg)
{
	struct meta_scan_ctx c = {fn, arg};

	return store_iterate(st, QS_CF_META, prefix, strlen(prefix), meta_scan_one, &c);
}

int
qs_store_scan(struct qs_store *st, enum qs_store_cf cf,
              int (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen),
              void *arg)
{
	return store_iterate(st, cf, "", 0, fn, arg);
}

int
qs_store_delete_sync(struct qs_store *st, enum qs_store_cf cf, const void *key, size_t klen)
{
	char *rerr = NULL;
	int rc;

	if ((unsigned)cf >= QS_CF_COUNT)
		return -EINVAL;
	if (!st->db)
		return QS_ESTORE;
	rocksdb_delete_cf(st->db, st->wo_sync, st->cf[cf], key, klen, &rerr);
	if (!rerr)
		return 0;
	rc = qs_store_error_code(rerr);
	rocksdb_free(rerr);
	return rc;
}

/*
 * Integer properties RocksDB answers for the whole database whichever column
 * family is asked (the write controller, background jobs, snapshots, file
 * numbers, the block cache all families share; background errors are
 * counted on the default family only).
 */
static const char *const store_db_wide_properties[] = {
    "rocksdb.actual-delayed-write-rate",
    "rocksdb.background-errors",
    "rocksdb.block-cache-capacity",
    "rocksdb.block-cache-pinned-usage",
    "rocksdb.block-cache-usage",
    "rocksdb.is-file-deletions-enabled",
    "rocksdb.is-write-stopped",
    "rocksdb.min-log-number-to-keep",
    "rocksdb.min-obsolete-sst-number-to-keep",
    "rocksdb.num-running-compactions",
    "rocksdb.num-running-flushes",
    "rocksdb.num-snapshots",
    "rocksdb.oldest-snapshot-sequence",
    "rocksdb.oldest-snapshot-time",
};

int
qs_store_property_u64(struct qs_store *st, const char *name, uint64_t *out)
{
	uint64_t sum = 0;

	if (!st->db)
		return QS_ESTORE;
	for (size_t i = 0;
	     i < sizeof(store_db_wide_properties) / sizeof(store_db_wide_properties[0]); i++) {
		if (strcmp(name, store_db_wide_properties[i]) == 0) {
			if (rocksdb_property_int(st->db, name, &sum) != 0)
				return QS_ENOTFOUND;
			*out = sum;
			return 0;
		}
	}
	for (int c = 0; c < QS_CF_COUNT; c++) {
		uint64_t v;

		if (rocksdb_property_int_cf(st->db, st->cf[c], name, &v) != 0)
			return QS_ENOTFOUND;
		sum += v;
	}
	*out = sum;
	return 0;
}
