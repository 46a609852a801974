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

static int
read_one(struct qs_reader *r, struct qs_read_item *it)
{
	struct qs_store *st = r->opt.store;
	uint8_t key[QS_STORE_KEY_BYTES];
	uint8_t digest[QS_DIGEST_BYTES];
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
	rc = qs_codec_txns_parse(it->value, len, r->opt.max_txns, &it->txns, &it->n_txns);
	if (rc)
		return rc == QS_ELIMIT ? QS_EDECODE : rc;
	rc = qs_codec_batch_digest(r->opt.chain_id, it->info.author, it->info.epoch,
	                           it->info.batch_id, it->txns, it->n_txns, digest);
	if (rc)
		return rc;
	if (memcmp(digest, it->info.digest, QS_DIGEST_BYTES) != 0)
		return QS_EBADDIGEST;
	return 0;
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
