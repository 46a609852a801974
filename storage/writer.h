/*
 * The writer: one thread that group-commits batches to RocksDB and signs
 * each one only after its synced write returned OK.
 *
 * Everything waiting in the submit queue (up to the group bounds) goes into
 * one WriteBatch written with sync=1: one fdatasync for many batches. After
 * the write returned without error the writer signs each batch's BatchInfo;
 * if the write failed no batch of the group is signed and each completes with
 * the error. Completions run on the event loop thread, exactly once per item
 * for which qs_writer_submit() returned 0.
 */
#ifndef QS_STORAGE_WRITER_H
#define QS_STORAGE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#include "core/codec.h"
#include "storage/doneq.h"
#include "storage/store.h"

enum qs_write_kind {
	QS_WRITE_BATCH, /* store payload and info (and the extras), then sign */
	QS_WRITE_SIGN,  /* durable already (an earlier write of the same
	                 * digest with an equal or later expiration
	                 * completed): sign only */
	QS_WRITE_PUT,   /* store the extras only (a proof, a meta record); no
	                 * signature */
};

/* What an extra record does to its column family. */
enum qs_write_op {
	QS_WRITE_OP_PUT = 0,      /* key -> val */
	QS_WRITE_OP_DELETE,       /* delete key; val is ignored */
	QS_WRITE_OP_DELETE_RANGE, /* delete every key k with key <= k < val
	                           * (bytewise order); key must not sort after
	                           * val */
};

/*
 * A record written in the same WriteBatch as the item (so atomically with
 * it, and synced with it): e.g. the next own batch id with an own batch, or
 * the range deletes of a garbage collection. The extras of an item are
 * applied in array order, before the item's own payload and info. Buffers
 * are borrowed until completion. `op` is last and a zero op is a put, so an
 * extra that leaves it zero is the put every extra was before ops existed.
 */
struct qs_write_extra {
	enum qs_store_cf cf;
	const void *key;
	size_t key_len;
	const void *val; /* QS_WRITE_OP_DELETE_RANGE: the end key */
	size_t val_len;
	enum qs_write_op op;
};

#define QS_WRITE_MAX_EXTRAS 8

struct qs_write_item {
	struct qs_link link; /* owned by the writer while queued */
	enum qs_write_kind kind;
	struct qs_batch_info info;       /* what is stored and signed */
	const ProtobufCBinaryData *txns; /* payload, borrowed; valid until completion */
	size_t n_txns;
	struct qs_write_extra extra[QS_WRITE_MAX_EXTRAS];
	size_t n_extra;
	void *owner; /* caller's context, untouched */
	/* If set, called instead of the writer's `complete` option. */
	void (*complete)(struct qs_write_item *item);
	/* Set by the writer before completion. */
	int result; /* 0: durable and signed; else a QS_E* code */
	uint8_t sig[QS_SIG_BYTES];
};

/* Called on the writer thread after each group (for metrics). */
struct qs_writer_observer {
	void (*group_done)(void *arg, size_t items, uint64_t bytes, double seconds, int result,
	                   const char *rocksdb_err);
	void *arg;
};

struct qs_writer_options {
	struct qs_store *store;
	struct event_base *base; /* loop on which completions run */
	EVP_PKEY *signing_key;   /* borrowed; used only by the writer thread */
	uint32_t chain_id;
	uint64_t queue_max_bytes; /* bound of the submit queue (queued + in flight) */
	uint32_t group_max_items;
	uint64_t group_max_bytes;
	void (*complete)(void *arg, struct qs_write_item *item);
	void *arg;
	struct qs_writer_observer observer;
};

struct qs_writer;

/* Start the writer thread. Returns 0 or -errno. */
int qs_writer_start(const struct qs_writer_options *opt, struct qs_writer **out);

/*
 * Queue `item` (ownership passes to the writer until its completion).
 * Returns 0; QS_EQUEUEFULL when the item does not fit in the queue bound
 * (the caller keeps the item and should stop reading from peers until
 * qs_writer_has_room()); QS_ESHUTDOWN after qs_writer_stop() began;
 * -EINVAL (the caller keeps the item) when it has more than
 * QS_WRITE_MAX_EXTRAS extras, or an extra with an unknown column family or
 * op, or a range whose begin key sorts after its end key: refused here so
 * that one bad item never fails the group it would have joined.
 * An item larger than the whole bound is accepted when the queue is empty.
 */
int qs_writer_submit(struct qs_writer *w, struct qs_write_item *item);

/* Bytes charged to the submit queue now (queued and being written). */
uint64_t qs_writer_queue_bytes(struct qs_writer *w);

/* Whether `bytes` more would fit in the queue now. */
int qs_writer_has_room(struct qs_writer *w, uint64_t bytes);

/* Bytes an item is charged in the queue. */
uint64_t qs_write_item_bytes(const struct qs_write_item *item);

/*
 * Stop: refuse new items, write and complete everything already queued,
 * join the thread, and deliver the remaining completions on the calling
 * (loop) thread. Frees the writer; NULL is fine.
 */
void qs_writer_stop(struct qs_writer *w);

/* Keys of the batches, infos and proofs column families:
 * expiration_us (be64) || digest. */
#define QS_STORE_KEY_BYTES (8 + QS_DIGEST_BYTES)
void qs_store_key(uint64_t expiration_us, const uint8_t digest[QS_DIGEST_BYTES],
                  uint8_t key[QS_STORE_KEY_BYTES]);

#endif
