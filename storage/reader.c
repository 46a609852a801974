#include "storage/reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "storage/store_impl.h"
#include "storage/worker.h"
#include "storage/writer.h"

struct qs_reader {
	struct qs_reader_options opt;
	struct qs_worker *worker;
};

int
qs_store_payload_verify(uint32_t chain_id, const struct qs_batch_info *info, const uint8_t *val,
                        size_t len, size_t max_txns, ProtobufCBinaryData **txns, size_t *n_txns)
{
	uint8_t digest[QS_DIGEST_BYTES];
	ProtobufCBinaryData *t = NULL;
	size_t n = 0;
	int rc;

	rc = qs_codec_txns_parse(val, len, max_txns, &t, &n);
	if (rc)
		return rc == QS_ELIMIT ? QS_EDECODE : rc;
	rc = qs_codec_batch_digest(chain_id, info->author, info->epoch, info->batch_id, t, n,
	                           digest);
	if (rc)
		goto out;
	if (memcmp(digest, info->digest, QS_DIGEST_BYTES) != 0) {
		rc = QS_EBADDIGEST;
		goto out;
	}
	if (txns) {
		*txns = t;
		*n_txns = n;
		t = NULL;
	}
out:
	free(t);
	return rc;
}

static int
read_one(struct qs_reader *r, struct qs_read_item *it)
{
	struct qs_store *st = r->opt.store;
	uint8_t key[QS_STORE_KEY_BYTES];
	char *rerr = NULL;
	size_t len = 0;
	char *val;
	int rc;

	if (!st->db)
		return QS_ESTORE; /* a failed reopen left no database open */
	qs_store_key(it->info.expiration_us, it->info.digest, key);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[QS_CF_BATCHES], (const char *)key, sizeof(key),
	                     &len, &rerr);
	if (rerr) {
		rc = qs_store_error_code(rerr);
		rocksdb_free(rerr);
		return rc;
	}
	if (!val)
		return QS_ENOTFOUND;
	it->value = (uint8_t *)val;
	return qs_store_payload_verify(r->opt.chain_id, &it->info, it->value, len, r->opt.max_txns,
	                               &it->txns, &it->n_txns);
}

/*
 * Delete the SST files of batches, infos and proofs that hold only keys
 * below (expiration_us, zero digest). The range is open at the start, not at
 * an all-zero key of full length, so that a file holding a range tombstone
 * from a shorter key (recovery's 8-byte zero) qualifies too. Returns 0 or
 * the first error.
 */
static int
drop_files(struct qs_reader *r, struct qs_read_item *it)
{
	static const enum qs_store_cf cfs[] = {QS_CF_BATCHES, QS_CF_INFOS, QS_CF_PROOFS};
	static const uint8_t zero_digest[QS_DIGEST_BYTES];
	struct qs_store *st = r->opt.store;
	uint8_t end[QS_STORE_KEY_BYTES];
	int rc = 0;

	if (!st->db)
		return QS_ESTORE;
	qs_store_key(it->info.expiration_us, zero_digest, end);
	for (size_t i = 0; i < sizeof(cfs) / sizeof(cfs[0]) && rc == 0; i++) {
		char *rerr = NULL;

		rocksdb_delete_file_in_range_cf(st->db, st->cf[cfs[i]], NULL, 0, (const char *)end,
		                                sizeof(end), &rerr);
		if (rerr) {
			rc = qs_store_error_code(rerr);
			rocksdb_free(rerr);
		}
	}
	return rc;
}

static void
read_group(void *arg, struct qs_link *group, size_t n, uint64_t bytes)
{
	struct qs_reader *r = arg;

	for (struct qs_link *l = group; l; l = l->next) {
		struct qs_read_item *it = (struct qs_read_item *)l;

		it->value = NULL;
		it->txns = NULL;
		it->n_txns = 0;
		it->error = NULL;
		if (it->kind == QS_READ_REOPEN) {
			char err[512] = "";

			/* Reads queued behind this wait for it: one thread, in order. */
			it->result = qs_store_reopen(r->opt.store, err, sizeof(err));
			if (it->result)
				it->error = strdup(err);
			continue;
		}
		if (it->kind == QS_READ_DROP_FILES) {
			it->result = drop_files(r, it);
			continue;
		}
		it->result = read_one(r, it);
		if (it->result)
			qs_read_item_release(it);
	}
}

static void
complete(void *arg, struct qs_link *item)
{
	struct qs_reader *r = arg;

	r->opt.complete(r->opt.arg, (struct qs_read_item *)item);
}

int
qs_reader_start(const struct qs_reader_options *opt, struct qs_reader **out)
{
	struct qs_reader *r = calloc(1, sizeof(*r));
	struct qs_worker_options wo = {
	    .name = "qsd-reader",
	    .base = opt->base,
	    .queue_max_bytes = opt->queue_max_items,
	    .group_max_items = 16,
	    .group_max_bytes = 16,
	    .process = read_group,
	    .complete = complete,
	};
	int rc;

	if (!r)
		return -ENOMEM;
	r->opt = *opt;
	wo.arg = r;
	rc = qs_worker_start(&wo, &r->worker);
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int
qs_reader_submit(struct qs_reader *r, struct qs_read_item *item)
{
	/* The queue is bounded in requests: each counts one. */
	item->link.bytes = 1;
	return qs_worker_submit(r->worker, &item->link);
}

void
qs_read_item_release(struct qs_read_item *item)
{
	free(item->txns);
	rocksdb_free(item->value);
	free(item->error);
	item->error = NULL;
	item->txns = NULL;
	item->value = NULL;
	item->n_txns = 0;
}

void
qs_reader_stop(struct qs_reader *r)
{
	if (!r)
		return;
	qs_worker_stop(r->worker);
	free(r);
}
