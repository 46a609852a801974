/*
 * Internals of the store shared by the files of storage/ (store.c, writer.c,
 * reader.c, recovery.c). Not part of any public contract.
 */
#ifndef QS_STORAGE_STORE_IMPL_H
#define QS_STORAGE_STORE_IMPL_H

#include <rocksdb/c.h>

#include "storage/store.h"

struct qs_store {
	char *dir;
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_column_family_handle_t *cf[QS_CF_COUNT];
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo_sync;
	uint32_t schema_version;
};

#endif
