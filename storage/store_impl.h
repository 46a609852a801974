/*
 * Internals of the store shared by the files of storage/ (store.c, writer.c,
 * reader.c, check.c). Not part of any public contract.
 */
#ifndef QS_STORAGE_STORE_IMPL_H
#define QS_STORAGE_STORE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <rocksdb/c.h>

#include "core/codec.h"
#include "storage/store.h"

/* The meta record holding the schema version (be32). */
#define QS_META_SCHEMA "schema_version"

/* RocksDB's info log level FATAL: Debian's build aborts when a log write
 * fails, as it does on a full disk. */
#define QS_ROCKSDB_FATAL_LEVEL 4

struct qs_store {
	char *dir;
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *batch_opts; /* the batches family's: opts and blob files */
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_column_family_handle_t *cf[QS_CF_COUNT];
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo_sync;
	uint32_t schema_version;
};

/*
 * Record RocksDB's error message `rerr` in err as "what: message", free it
 * (NULL is taken as an unknown error) and return its code
 * (qs_store_error_code()).
 */
int qs_store_fail(char *rerr, const char *what, char *err, size_t errlen);

/* Compare two keys as RocksDB's default (bytewise) comparator does:
 * negative, zero or positive. */
int qs_store_key_cmp(const void *a, size_t alen, const void *b, size_t blen);

/*
 * Check the value of the schema version record and set *version. Returns 0;
 * QS_ECORRUPT (not 4 bytes) or QS_ESCHEMA (0, or newer than this build),
 * with one line in err.
 */
int qs_store_schema_parse(const char *val, size_t len, uint32_t *version, char *err, size_t errlen);

/*
 * Check a stored payload (the transaction section, `len` bytes at `val`)
 * against the BatchInfo it is stored under: it must split into at most
 * max_txns transactions and hash, with chain_id and the info's author, epoch
 * and batch id, to info->digest. Returns 0 and, if txns is not NULL, sets
 * *txns (slices into val; the caller frees the array) and *n_txns;
 * QS_EDECODE (does not split, or more than max_txns); QS_EBADDIGEST; -ENOMEM
 * or QS_ECRYPTO. Nothing is allocated on failure.
 */
int qs_store_payload_verify(uint32_t chain_id, const struct qs_batch_info *info, const uint8_t *val,
                            size_t len, size_t max_txns, ProtobufCBinaryData **txns,
                            size_t *n_txns);

#endif
