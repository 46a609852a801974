/*
 * The on-disk store: one RocksDB database with the column families of
 * docs/DESIGN.md ("Storage schema"): batches, infos, proofs, meta.
 *
 * RocksDB errors are translated here, once, into QS_E* codes; the engine's
 * message is copied into the caller's err buffer.
 */
#ifndef QS_STORAGE_STORE_H
#define QS_STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define QS_SCHEMA_VERSION 1

struct qs_store;

struct qs_store_options {
	const char *dir;             /* database directory, created if missing */
	uint64_t write_buffer_bytes; /* all memtables together */
	uint64_t block_cache_bytes;
	uint64_t max_wal_bytes;
};

enum qs_store_cf {
	QS_CF_BATCHES = 0, /* expiration_us(be64) || digest -> transactions */
	QS_CF_INFOS,       /* expiration_us(be64) || digest -> BatchInfo */
	QS_CF_PROOFS,      /* expiration_us(be64) || digest -> ProofOfStore */
	QS_CF_META,        /* name -> value */
	QS_CF_COUNT,
};

/*
 * Open (or create) the database. Creates the column families that are
 * missing, writes the schema version into a new database (synced) and
 * refuses a database whose schema version is newer than this build's
 * (QS_ESCHEMA) or missing from a database that holds data. RocksDB's info
 * log is set to FATAL level so that its own log writes cannot abort the
 * process on a full disk. On success *out owns the database.
 */
int qs_store_open(const struct qs_store_options *opt, struct qs_store **out, char *err,
                  size_t errlen);

/*
 * Close and open the database files again, keeping the options. RocksDB
 * 7.8's C API cannot resume after an I/O error (a full disk included): its
 * writes keep failing until the database is opened anew. The caller makes
 * sure no other thread uses the store meanwhile. Returns 0 or an error as
 * qs_store_open() does; after an error the store has no open database and
 * only qs_store_close() may be called.
 */
int qs_store_reopen(struct qs_store *st, char *err, size_t errlen);

/*
 * Read the meta record `key` into val (at most cap bytes). Returns its
 * length, QS_ENOTFOUND, QS_ELIMIT (longer than cap) or a storage error.
 * Start-up only: the loop does not read the database otherwise.
 */
int qs_store_meta_get(struct qs_store *st, const char *key, void *val, size_t cap);

/*
 * Call fn(arg, key, klen, val, vlen) for each meta record whose key starts
 * with `prefix`, in key order. Start-up only. Returns 0 or a storage error.
 */
int qs_store_meta_scan(struct qs_store *st, const char *prefix,
                       void (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                                  size_t vlen),
                       void *arg);

/*
 * Call fn(arg, key, klen, val, vlen) for each record of column family `cf`,
 * in key order; key and val are valid during the call only. fn returning
 * non-zero stops the scan, which then returns 0. Start-up only (reloading
 * the proof queue from `proofs`): the loop does not read the database
 * otherwise. Returns 0, -EINVAL for a cf outside enum qs_store_cf, or a
 * storage error.
 */
int qs_store_scan(struct qs_store *st, enum qs_store_cf cf,
                  int (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen),
                  void *arg);

/*
 * Delete the record `key` of column family `cf`, synced before this returns;
 * a missing key is no error. Start-up only (stale records: expired
 * idempotency keys in meta, proofs of other epochs); once the writer runs,
 * deletions go through it (QS_WRITE_OP_DELETE). Returns 0, -EINVAL for a cf
 * outside enum qs_store_cf, or a storage error.
 */
int qs_store_delete_sync(struct qs_store *st, enum qs_store_cf cf, const void *key, size_t klen);

/*
 * The integer RocksDB property `name` (e.g. "rocksdb.live-sst-files-size")
 * for the whole database, into *out. A property RocksDB keeps per column
 * family is summed over the families of enum qs_store_cf; one it keeps for
 * the whole database (rocksdb.is-write-stopped,
 * rocksdb.actual-delayed-write-rate, rocksdb.background-errors,
 * rocksdb.num-running-flushes and -compactions, rocksdb.block-cache-*, the
 * snapshot and file-number properties) is read once, as a sum would count it
 * once per family. Returns 0; QS_ENOTFOUND when RocksDB has no integer
 * property of that name; QS_ESTORE when no database is open (after a failed
 * qs_store_reopen()). Any thread may call it, but never while
 * qs_store_reopen() or qs_store_close() runs: the caller guarantees that.
 */
int qs_store_property_u64(struct qs_store *st, const char *name, uint64_t *out);

/* RocksDB's count of background errors (failed flushes and compactions). */
int qs_store_background_errors(struct qs_store *st, uint64_t *out);

/* Bytes available to qsd on the filesystem holding `dir` (statvfs). Returns
 * 0 or -errno. */
int qs_store_free_bytes(const char *dir, uint64_t *out);

/* Close the database; NULL is fine. Pending background work is cancelled. */
void qs_store_close(struct qs_store *st);

/* The schema version recorded in the database. */
uint32_t qs_store_schema_version(const struct qs_store *st);

/*
 * Which CRC32C RocksDB's checksums use in this process: "sse4.2" or
 * "table" when qsd's own serves them (storage/crc32c.h), "rocksdb" when
 * the library's calls do not reach it.
 */
const char *qs_store_crc32c(void);

/*
 * Translate a RocksDB error message into QS_ENOSPACE, QS_EIO, QS_ECORRUPT or
 * QS_ESTORE.
 */
int qs_store_error_code(const char *rocksdb_err);

struct qs_batch_info;

struct qs_recovery_stats {
	uint64_t kept;       /* batches handed to the callback and kept */
	uint64_t dropped;    /* deleted: other epoch, chain or author */
	int expired_deleted; /* whether an expired range was deleted */
};

/*
 * Start-up recovery: read the `infos` column family only (payloads stay on
 * disk until asked for). Everything that expired at or before now_us is
 * range-deleted from batches, infos and proofs. Each other record is parsed
 * and handed to keep(arg, info); a record of another chain, or for which
 * keep() returns a positive value (another epoch, an author not in the
 * validator set), is deleted. A negative keep() result stops the recovery
 * with that error and deletes nothing. Deletions are written with sync before this returns.
 * Returns 0; QS_ECORRUPT when a record does not parse (err names its key);
 * or a storage error.
 */
int qs_store_recover(struct qs_store *st, uint64_t now_us, uint32_t chain_id,
                     int (*keep)(void *arg, const struct qs_batch_info *info), void *arg,
                     struct qs_recovery_stats *stats, char *err, size_t errlen);

/* Column family names, indexed by enum qs_store_cf. */
extern const char *const qs_store_cf_names[QS_CF_COUNT];

#endif
