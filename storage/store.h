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
	const char *dir;		/* database directory, created if missing */
	uint64_t write_buffer_bytes;	/* all memtables together */
	uint64_t block_cache_bytes;
	uint64_t max_wal_bytes;
};

enum qs_store_cf {
	QS_CF_BATCHES = 0,	/* expiration_us(be64) || digest -> transactions */
	QS_CF_INFOS,		/* expiration_us(be64) || digest -> BatchInfo */
	QS_CF_PROOFS,		/* expiration_us(be64) || digest -> ProofOfStore */
	QS_CF_META,		/* name -> value */
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

/* Close the database; NULL is fine. Pending background work is cancelled. */
void qs_store_close(struct qs_store *st);

/* The schema version recorded in the database. */
uint32_t qs_store_schema_version(const struct qs_store *st);

/*
 * Translate a RocksDB error message into QS_ENOSPACE, QS_EIO, QS_ECORRUPT or
 * QS_ESTORE.
 */
int qs_store_error_code(const char *rocksdb_err);

/* Column family names, indexed by enum qs_store_cf. */
extern const char *const qs_store_cf_names[QS_CF_COUNT];

#endif
