#include "storage/writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "storage/store_impl.h"
#include "storage/worker.h"

struct qs_writer {
	struct qs_writer_options opt;
	struct qs_worker *worker;
	/* Reused from group to group (writer thread only): cleared, it keeps
	 * its buffer, so a group is not copied again each time it grows. */
	rocksdb_writebatch_t *wb;
	struct qs_signer *signer; /* writer thread only */
};

void
qs_store_key(uint64_t expiration_us, const uint8_t digest[QS_DIGEST_BYTES],
             uint8_t key[QS_STORE_KEY_BYTES])
{
	qs_put_be64(key, expiration_us);
	memcpy(key + 8, digest, QS_DIGEST_BYTES);
}

uint64_t
qs_write_item_bytes(const struct qs_write_item *item)
{
	/* Payload plus a fixed charge for the item and its per-txn slices. */
	uint64_t n = sizeof(*item) + QS_INFO_SIGNING_BYTES;

	if (item->kind == QS_WRITE_BATCH)
		n += item->info.num_bytes + 4 + 4 * (uint64_t)item->n_txns;
	for (size_t i = 0; i < item->n_extra && i < QS_WRITE_MAX_EXTRAS; i++)
		n += item->extra[i].key_len +
		     (item->extra[i].op == QS_WRITE_OP_DELETE ? 0 : item->extra[i].val_len);
	return n;
}

/*
 * RocksDB fails a whole WriteBatch holding a reversed range, after applying
 * part of it; a bad extra must therefore never reach a group.
 */
static int
extras_valid(const struct qs_write_item *item)
{
	if (item->n_extra > QS_WRITE_MAX_EXTRAS)
		return 0;
	for (size_t i = 0; i < item->n_extra; i++) {
		const struct qs_write_extra *x = &item->extra[i];

		if ((unsigned)x->cf >= QS_CF_COUNT)
			return 0;
		switch (x->op) {
		case QS_WRITE_OP_PUT:
		case QS_WRITE_OP_DELETE:
			break;
		case QS_WRITE_OP_DELETE_RANGE:
			if (qs_store_key_cmp(x->key, x->key_len, x->val, x->val_len) > 0)
				return 0;
			break;
		default:
			return 0;
		}
	}
	return 1;
}

static void
add_extra(struct qs_store *st, rocksdb_writebatch_t *wb, const struct qs_write_extra *x)
{
	rocksdb_column_family_handle_t *cf = st->cf[x->cf];

	switch (x->op) {
	case QS_WRITE_OP_PUT:
		rocksdb_writebatch_put_cf(wb, cf, x->key, x->key_len, x->val, x->val_len);
		break;
	case QS_WRITE_OP_DELETE:
		rocksdb_writebatch_delete_cf(wb, cf, x->key, x->key_len);
		break;
	case QS_WRITE_OP_DELETE_RANGE:
		rocksdb_writebatch_delete_range_cf(wb, cf, x->key, x->key_len, x->val, x->val_len);
		break;
	}
}

static double
elapsed_s(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * Add one item's records to the WriteBatch. The payload goes in as a list of
 * slices (count, then length and bytes per transaction) so it is copied once,
 * into the WriteBatch itself. `lens` holds 4 bytes per transaction plus 4.
 */
static int
add_item(struct qs_writer *w, rocksdb_writebatch_t *wb, struct qs_write_item *it, uint8_t *key,
         uint8_t *info_buf, uint8_t *lens)
{
	struct qs_store *st = w->opt.store;
	size_t n_slices = 1 + 2 * it->n_txns;
	const char **vals = NULL;
	size_t *sizes = NULL;
	const char *keys[1] = {(const char *)key};
	size_t key_sizes[1] = {QS_STORE_KEY_BYTES};

	for (size_t i = 0; i < it->n_extra; i++)
		add_extra(st, wb, &it->extra[i]);
	if (it->kind == QS_WRITE_PUT)
		return 0;
	qs_store_key(it->info.expiration_us, it->info.digest, key);
	qs_codec_info_signing_bytes(w->opt.chain_id, &it->info, info_buf);
	if (it->kind == QS_WRITE_BATCH) {
		if (n_slices > INT32_MAX)
			return QS_ELIMIT;
		vals = malloc(n_slices * sizeof(*vals));
		sizes = malloc(n_slices * sizeof(*sizes));
		if (!vals || !sizes) {
			free(vals);
			free(sizes);
			return -ENOMEM;
		}
		qs_put_be32(lens, (uint32_t)it->n_txns);
		vals[0] = (const char *)lens;
		sizes[0] = 4;
		for (size_t i = 0; i < it->n_txns; i++) {
			qs_put_be32(lens + 4 + 4 * i, (uint32_t)it->txns[i].len);
			vals[1 + 2 * i] = (const char *)lens + 4 + 4 * i;
			sizes[1 + 2 * i] = 4;
			vals[2 + 2 * i] = (const char *)it->txns[i].data;
			sizes[2 + 2 * i] = it->txns[i].len;
		}
		rocksdb_writebatch_putv_cf(wb, st->cf[QS_CF_BATCHES], 1, keys, key_sizes,
		                           (int)n_slices, vals, sizes);
		free(vals);
		free(sizes);
	}
	rocksdb_writebatch_put_cf(wb, st->cf[QS_CF_INFOS], (const char *)key, QS_STORE_KEY_BYTES,
	                          (const char *)info_buf, QS_INFO_SIGNING_BYTES);
	return 0;
}

/* Write one group with sync, then sign each item only if the write succeeded. */
static void
write_group(void *arg, struct qs_link *group, size_t n_items, uint64_t bytes)
{
	struct qs_writer *w = arg;
	struct qs_store *st = w->opt.store;
	rocksdb_writebatch_t *wb = w->wb;
	uint8_t key[QS_STORE_KEY_BYTES];
	uint8_t info_buf[QS_INFO_SIGNING_BYTES];
	size_t need_writes = 0;
	char *rerr = NULL;
	struct timespec t0;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (struct qs_link *l = group; l && rc == 0; l = l->next) {
		struct qs_write_item *it = (struct qs_write_item *)l;
		uint8_t *lens;

		if (it->kind == QS_WRITE_SIGN)
			continue;
		need_writes++;
		lens = malloc(4 + 4 * (it->kind == QS_WRITE_BATCH ? it->n_txns : 0));
		if (!lens) {
			rc = -ENOMEM;
			break;
		}
		rc = add_item(w, wb, it, key, info_buf, lens);
		free(lens);
	}
	if (rc == 0 && need_writes) {
		rocksdb_write(st->db, st->wo_sync, wb, &rerr);
		if (rerr)
			rc = qs_store_error_code(rerr);
	}
	rocksdb_writebatch_clear(wb);

	/* The invariant: a signature exists only for what the disk acknowledged. */
	for (struct qs_link *l = group; l; l = l->next) {
		struct qs_write_item *it = (struct qs_write_item *)l;

		it->result = rc;
		if (rc == 0 && it->kind != QS_WRITE_PUT &&
		    (!w->signer ||
		     qs_signer_sign(w->signer, w->opt.chain_id, &it->info, it->sig) != 0))
			it->result = QS_ECRYPTO;
	}
	if (w->opt.observer.group_done)
		w->opt.observer.group_done(w->opt.observer.arg, n_items, bytes, elapsed_s(&t0), rc,
		                           rerr);
	rocksdb_free(rerr);
}

static void
complete(void *arg, struct qs_link *item)
{
	struct qs_writer *w = arg;
	struct qs_write_item *it = (struct qs_write_item *)item;

	if (it->complete)
		it->complete(it);
	else
		w->opt.complete(w->opt.arg, it);
}

int
qs_writer_start(const struct qs_writer_options *opt, struct qs_writer **out)
{
	struct qs_writer *w = calloc(1, sizeof(*w));
	struct qs_worker_options wo = {
	    .name = "qsd-writer",
	    .base = opt->base,
	    .queue_max_bytes = opt->queue_max_bytes,
	    .group_max_items = opt->group_max_items,
	    .group_max_bytes = opt->group_max_bytes,
	    .process = write_group,
	    .complete = complete,
	};
	int rc;

	if (!w)
		return -ENOMEM;
	w->opt = *opt;
	w->wb = rocksdb_writebatch_create();
	w->signer = opt->signing_key ? qs_signer_new(opt->signing_key) : NULL;
	if (opt->signing_key && !w->signer) {
		rocksdb_writebatch_destroy(w->wb);
		free(w);
		return QS_ECRYPTO;
	}
	wo.arg = w;
	rc = qs_worker_start(&wo, &w->worker);
	if (rc) {
		qs_signer_free(w->signer);
		rocksdb_writebatch_destroy(w->wb);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int
qs_writer_submit(struct qs_writer *w, struct qs_write_item *item)
{
	if (!extras_valid(item))
		return -EINVAL;
	item->link.bytes = qs_write_item_bytes(item);
	item->result = 0;
	return qs_worker_submit(w->worker, &item->link);
}

uint64_t
qs_writer_queue_bytes(struct qs_writer *w)
{
	return qs_worker_queue_bytes(w->worker);
}

int
qs_writer_has_room(struct qs_writer *w, uint64_t bytes)
{
	return qs_worker_has_room(w->worker, bytes);
}

void
qs_writer_stop(struct qs_writer *w)
{
	if (!w)
		return;
	qs_worker_stop(w->worker);
	rocksdb_writebatch_destroy(w->wb);
	qs_signer_free(w->signer);
	free(w);
}
