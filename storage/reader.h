/*
 * The reader: a thread that reads batch payloads from disk for BatchRequest
 * and GetBatch, so the event loop never calls RocksDB for a payload. Every
 * payload read is checked against its digest before it is handed back.
 */
#ifndef QS_STORAGE_READER_H
#define QS_STORAGE_READER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#include "core/codec.h"
#include "storage/doneq.h"
#include "storage/store.h"

enum qs_read_kind {
	QS_READ_BATCH,  /* read the payload of `info` */
	QS_READ_REOPEN, /* close and reopen the database (after a full disk);
	                 * the writer must be idle meanwhile */
	/*
	 * After a garbage collection: delete the SST files of batches, infos
	 * and proofs whose keys all sort below (info.expiration_us, all-zero
	 * digest) with rocksdb_delete_file_in_range_cf, so that their space
	 * returns without waiting for compaction; only info.expiration_us is
	 * read. RocksDB counts a file ending exactly at the bound as below it
	 * (no real digest is all zero). Files in level 0, files being
	 * compacted and files that also hold keys above the bound stay
	 * for compaction. Only for a range already deleted (the GC's range
	 * deletes): a dropped file may hold the tombstone of a key whose older
	 * version, in a file that stays, then shows again until the range is
	 * deleted again. `error` stays NULL.
	 */
	QS_READ_DROP_FILES,
};

struct qs_read_item {
	struct qs_link link; /* owned by the reader while queued */
	enum qs_read_kind kind;
	struct qs_batch_info info; /* the durable batch to read (its key is
					 * expiration_us || digest) */
	void *owner;               /* caller's context, untouched */
	/* Set by the reader before completion. */
	int result;                /* 0; QS_ENOTFOUND; QS_EBADDIGEST (the stored
					 * bytes do not hash to the digest); QS_EDECODE;
					 * or a storage error */
	uint8_t *value;            /* the stored section; free() it */
	ProtobufCBinaryData *txns; /* slices into value; free() it */
	size_t n_txns;
	char *error; /* QS_READ_REOPEN: what failed, or NULL */
};

struct qs_reader_options {
	struct qs_store *store;
	struct event_base *base;
	uint32_t chain_id;
	uint32_t max_txns;        /* stored batches never hold more */
	uint64_t queue_max_items; /* bound of requests queued */
	void (*complete)(void *arg, struct qs_read_item *item);
	void *arg;
};

struct qs_reader;

/* Start the reader thread. Returns 0 or -errno. */
int qs_reader_start(const struct qs_reader_options *opt, struct qs_reader **out);

/* Queue a read; 0 (completion follows exactly once), QS_EQUEUEFULL or
 * QS_ESHUTDOWN. */
int qs_reader_submit(struct qs_reader *r, struct qs_read_item *item);

/* Free what a completed item holds (not the item). */
void qs_read_item_release(struct qs_read_item *item);

/* Stop: finish queued reads, deliver their completions, free. NULL is fine. */
void qs_reader_stop(struct qs_reader *r);

#endif
