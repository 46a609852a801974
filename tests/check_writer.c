/*
 * storage/writer, reader and recovery: group commit, one completion per
 * item, signatures only after a successful synced write, bounded queue,
 * puts, deletes and range deletes written with an item, reads checked
 * against the digest, dropping whole files after a GC, recovery of the
 * index.
 *
 * The failed-write tests need tests/shim_sync.so in LD_PRELOAD (the unit
 * runner sets it); without it they are skipped with a message.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <rocksdb/c.h>

#include "core/codec.h"
#include "core/error.h"
#include "storage/reader.h"
#include "storage/store.h"
#include "storage/store_impl.h"
#include "storage/writer.h"
#include "tests/lib/tmpdir.h"

#define CHAIN 7

struct harness {
	char dir[256];
	struct event_base *base;
	struct qs_store *store;
	struct qs_writer *writer;
	struct qs_reader *reader;
	EVP_PKEY *key;
	uint8_t pub[32];
	int completed;
	int want;
	int *seen; /* completions per item index */
	/* Observer state, written on the writer thread. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int groups;
	int items_in_groups;
	int max_group;
	int hold_first_group; /* block the writer after its first group */
	int released;
};

struct test_item {
	struct qs_write_item w;
	int index;
	ProtobufCBinaryData txns[3];
	uint8_t payload[3][64];
};

static void
group_done(void *arg, size_t items, uint64_t bytes, double seconds, int result, const char *err)
{
	struct harness *h = arg;

	pthread_mutex_lock(&h->lock);
	h->groups++;
	h->items_in_groups += (int)items;
	if ((int)items > h->max_group)
		h->max_group = (int)items;
	if (h->hold_first_group && h->groups == 1)
		while (!h->released)
			pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

/* Wait until the writer is held in the observer after its first group. */
static void
wait_first_group(struct harness *h)
{
	for (int i = 0; i < 20000; i++) {
		int groups;

		pthread_mutex_lock(&h->lock);
		groups = h->groups;
		pthread_mutex_unlock(&h->lock);
		if (groups >= 1)
			return;
		usleep(1000);
	}
	ck_abort_msg("the writer never finished its first group");
}

static void
release_writer(struct harness *h)
{
	pthread_mutex_lock(&h->lock);
	h->released = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void
on_write(void *arg, struct qs_write_item *item)
{
	struct harness *h = arg;
	struct test_item *ti = item->owner;

	h->seen[ti->index]++;
	if (++h->completed >= h->want)
		event_base_loopbreak(h->base);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	ck_abort_msg("timed out waiting for completions");
}

static void
run_until(struct harness *h, int want)
{
	struct timeval tv = {20, 0};
	struct event *t = evtimer_new(h->base, on_timeout, h);

	h->want = want;
	evtimer_add(t, &tv);
	if (h->completed < want)
		event_base_dispatch(h->base);
	event_free(t);
}

static void
harness_open(struct harness *h, uint64_t queue_max, uint32_t group_items)
{
	struct qs_store_options so = {
	    .write_buffer_bytes = 8 << 20, .block_cache_bytes = 8 << 20, .max_wal_bytes = 64 << 20};
	struct qs_writer_options wo = {
	    .chain_id = CHAIN,
	    .queue_max_bytes = queue_max,
	    .group_max_items = group_items,
	    .group_max_bytes = 64 << 20,
	    .complete = on_write,
	    .arg = h,
	    .observer = {group_done, h},
	};
	char err[512];
	size_t len = 32;

	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	if (!h->dir[0])
		qs_test_mkdtemp(h->dir, sizeof(h->dir));
	so.dir = h->dir;
	h->base = event_base_new();
	ck_assert_int_eq(qs_store_open(&so, &h->store, err, sizeof(err)), 0);
	if (!h->key)
		h->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(h->key, h->pub, &len), 1);
	wo.store = h->store;
	wo.base = h->base;
	wo.signing_key = h->key;
	ck_assert_int_eq(qs_writer_start(&wo, &h->writer), 0);
	h->seen = calloc(1000, sizeof(int));
}

static void
harness_close(struct harness *h, int keep_dir)
{
	qs_reader_stop(h->reader);
	h->reader = NULL;
	qs_writer_stop(h->writer);
	h->writer = NULL;
	qs_store_close(h->store);
	h->store = NULL;
	event_base_free(h->base);
	free(h->seen);
	h->seen = NULL;
	h->completed = 0;
	if (!keep_dir) {
		EVP_PKEY_free(h->key);
		qs_test_rmtree(h->dir);
	}
}

static struct test_item *
make_item(struct harness *h, int index, uint64_t expiration_us)
{
	struct test_item *ti = calloc(1, sizeof(*ti));

	for (int t = 0; t < 3; t++) {
		memset(ti->payload[t], 'a' + (index + t) % 26, sizeof(ti->payload[t]));
		ti->payload[t][0] = (uint8_t)index;
		ti->txns[t].data = ti->payload[t];
		ti->txns[t].len = 10 + 20 * (size_t)t;
	}
	ti->index = index;
	ti->w.kind = QS_WRITE_BATCH;
	ti->w.owner = ti;
	ti->w.txns = ti->txns;
	ti->w.n_txns = 3;
	memcpy(ti->w.info.author, h->pub, 32);
	ti->w.info.epoch = 1;
	ti->w.info.batch_id = (uint64_t)index;
	ti->w.info.expiration_us = expiration_us;
	ti->w.info.num_txns = 3;
	ti->w.info.num_bytes = 10 + 30 + 50;
	ck_assert_int_eq(qs_codec_batch_digest(CHAIN, h->pub, 1, (uint64_t)index, ti->txns, 3,
	                                       ti->w.info.digest),
	                 0);
	return ti;
}

START_TEST(group_commit_signs_each_batch_once_after_write)
{
	struct harness h = {0};
	struct test_item *items[20];

	harness_open(&h, 64 << 20, 7);
	h.hold_first_group = 1;
	for (int i = 0; i < 20; i++) {
		items[i] = make_item(&h, i, 5000000000000000ULL + (uint64_t)i);
		ck_assert_int_eq(qs_writer_submit(h.writer, &items[i]->w), 0);
	}
	release_writer(&h);
	run_until(&h, 20);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(h.seen[i], 1);
		ck_assert_int_eq(items[i]->w.result, 0);
		ck_assert_int_eq(
		    qs_codec_info_verify(h.pub, CHAIN, &items[i]->w.info, items[i]->w.sig), 0);
		free(items[i]);
	}
	/* The writer was held after its first group, so the other 19 (or 20)
	 * waited together and went out in groups bounded by 7 items. */
	ck_assert_int_eq(h.items_in_groups, 20);
	ck_assert_int_le(h.max_group, 7);
	ck_assert_int_le(h.groups, 1 + 3);
	ck_assert_int_eq(h.max_group, 7);
	harness_close(&h, 0);
}
END_TEST

START_TEST(full_queue_refuses_until_space_returns)
{
	struct harness h = {0};
	struct test_item *a, *b;

	harness_open(&h, 100, 16); /* smaller than any item: one at a time */
	h.hold_first_group = 1;
	a = make_item(&h, 0, 5000000000000000ULL);
	b = make_item(&h, 1, 5000000000000001ULL);
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), 0);
	ck_assert_int_eq(qs_writer_has_room(h.writer, qs_write_item_bytes(&b->w)), 0);
	ck_assert_int_eq(qs_writer_submit(h.writer, &b->w), QS_EQUEUEFULL);
	ck_assert_uint_eq(qs_writer_queue_bytes(h.writer), qs_write_item_bytes(&a->w));
	release_writer(&h);
	run_until(&h, 1);
	ck_assert_uint_eq(qs_writer_queue_bytes(h.writer), 0);
	ck_assert_int_eq(qs_writer_submit(h.writer, &b->w), 0);
	run_until(&h, 2);
	ck_assert_int_eq(h.seen[0], 1);
	ck_assert_int_eq(h.seen[1], 1);
	free(a);
	free(b);
	harness_close(&h, 0);
}
END_TEST

START_TEST(stop_completes_every_queued_item)
{
	struct harness h = {0};
	struct test_item *items[50];

	harness_open(&h, 64 << 20, 8);
	for (int i = 0; i < 50; i++) {
		items[i] = make_item(&h, i, 5000000000000000ULL + (uint64_t)i);
		ck_assert_int_eq(qs_writer_submit(h.writer, &items[i]->w), 0);
	}
	/* Stopping without running the loop still delivers each completion. */
	qs_writer_stop(h.writer);
	h.writer = NULL;
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(h.seen[i], 1);
		ck_assert_int_eq(items[i]->w.result, 0);
		free(items[i]);
	}
	harness_close(&h, 0);
}
END_TEST

static void
on_read(void *arg, struct qs_read_item *item)
{
	struct harness *h = arg;
	struct qs_read_item **slot = item->owner;

	*slot = item;
	if (++h->completed >= h->want)
		event_base_loopbreak(h->base);
}

static void
start_reader(struct harness *h)
{
	struct qs_reader_options ro = {
	    .store = h->store,
	    .base = h->base,
	    .chain_id = CHAIN,
	    .max_txns = 2000,
	    .queue_max_items = 64,
	    .complete = on_read,
	    .arg = h,
	};

	ck_assert_int_eq(qs_reader_start(&ro, &h->reader), 0);
}

START_TEST(reader_returns_stored_bytes_checked_against_digest)
{
	struct harness h = {0};
	struct test_item *a = NULL;
	struct qs_read_item r1 = {0}, r2 = {0};
	struct qs_read_item *done1 = NULL, *done2 = NULL;

	harness_open(&h, 64 << 20, 8);
	a = make_item(&h, 3, 5000000000000000ULL);
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(a->w.result, 0);
	h.completed = 0;
	start_reader(&h);
	r1.info = a->w.info;
	r1.owner = &done1;
	r2.info = a->w.info;
	r2.info.digest[0] ^= 1; /* never written */
	r2.owner = &done2;
	ck_assert_int_eq(qs_reader_submit(h.reader, &r1), 0);
	ck_assert_int_eq(qs_reader_submit(h.reader, &r2), 0);
	run_until(&h, 2);
	ck_assert_ptr_eq(done1, &r1);
	ck_assert_int_eq(r1.result, 0);
	ck_assert_uint_eq(r1.n_txns, 3);
	for (int t = 0; t < 3; t++) {
		ck_assert_uint_eq(r1.txns[t].len, a->txns[t].len);
		ck_assert_mem_eq(r1.txns[t].data, a->txns[t].data, a->txns[t].len);
	}
	ck_assert_int_eq(r2.result, QS_ENOTFOUND);
	qs_read_item_release(&r1);
	free(a);
	harness_close(&h, 0);
}
END_TEST

START_TEST(reader_refuses_bytes_that_do_not_match_the_digest)
{
	struct harness h = {0};
	struct test_item *a;
	struct qs_read_item r = {0};
	struct qs_read_item *done = NULL;

	harness_open(&h, 64 << 20, 8);
	a = make_item(&h, 4, 5000000000000000ULL);
	/* Store the payload under a digest it does not hash to. */
	a->w.info.digest[5] ^= 0x40;
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), 0);
	run_until(&h, 1);
	h.completed = 0;
	start_reader(&h);
	r.info = a->w.info;
	r.owner = &done;
	ck_assert_int_eq(qs_reader_submit(h.reader, &r), 0);
	run_until(&h, 1);
	ck_assert_int_eq(r.result, QS_EBADDIGEST);
	ck_assert_ptr_null(r.txns);
	free(a);
	harness_close(&h, 0);
}
END_TEST

struct recovered {
	int n;
	uint64_t batch_ids[64];
	uint64_t drop_batch_id;
};

static int
keep_cb(void *arg, const struct qs_batch_info *info)
{
	struct recovered *r = arg;

	if (info->batch_id == r->drop_batch_id)
		return 1;
	r->batch_ids[r->n++] = info->batch_id;
	return 0;
}

START_TEST(recovery_keeps_live_and_deletes_expired)
{
	struct harness h = {0};
	struct test_item *items[10];
	struct recovered rec = {.drop_batch_id = 9};
	struct qs_recovery_stats stats;
	char err[512];
	const uint64_t now = 4000000000000000ULL;

	harness_open(&h, 64 << 20, 8);
	for (int i = 0; i < 10; i++) {
		/* 0..3 expired at `now`, 4..9 live. */
		uint64_t exp = i < 4 ? now - 1000 + (uint64_t)i * 100 : now + 1 + (uint64_t)i;
		items[i] = make_item(&h, i, exp);
		ck_assert_int_eq(qs_writer_submit(h.writer, &items[i]->w), 0);
	}
	run_until(&h, 10);
	harness_close(&h, 1);

	harness_open(&h, 64 << 20, 8);
	ck_assert_int_eq(
	    qs_store_recover(h.store, now, CHAIN, keep_cb, &rec, &stats, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.n, 5); /* 4..8; 9 dropped by the callback */
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(rec.batch_ids[i], (uint64_t)(4 + i));
	ck_assert_uint_eq(stats.kept, 5);
	ck_assert_uint_eq(stats.dropped, 1);
	ck_assert_int_eq(stats.expired_deleted, 1);
	harness_close(&h, 1);

	/* A second recovery sees only what the first kept. */
	memset(&rec, 0, sizeof(rec));
	harness_open(&h, 64 << 20, 8);
	ck_assert_int_eq(
	    qs_store_recover(h.store, now, CHAIN, keep_cb, &rec, &stats, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.n, 5);
	ck_assert_int_eq(stats.expired_deleted, 0);
	/* Another chain's records are not ours: all dropped. */
	memset(&rec, 0, sizeof(rec));
	ck_assert_int_eq(
	    qs_store_recover(h.store, now, CHAIN + 1, keep_cb, &rec, &stats, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.n, 0);
	ck_assert_uint_eq(stats.dropped, 5);
	for (int i = 0; i < 10; i++)
		free(items[i]);
	harness_close(&h, 0);
}
END_TEST

#define BASE_EXP 5000000000000000ULL

/* The item indexes (expiration - BASE_EXP) found in column family cf. */
struct found {
	int n;
	int ids[64];
};

static int
found_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct found *f = arg;

	ck_assert_uint_eq(klen, QS_STORE_KEY_BYTES);
	ck_assert_int_lt(f->n, 64);
	f->ids[f->n++] = (int)(qs_get_be64(key) - BASE_EXP);
	return 0;
}

static void
assert_ids(struct qs_store *st, enum qs_store_cf cf, const int *want, int n_want)
{
	struct found f = {0};

	ck_assert_int_eq(qs_store_scan(st, cf, found_one, &f), 0);
	ck_assert_msg(f.n == n_want, "%s: %d records, want %d", qs_store_cf_names[cf], f.n, n_want);
	for (int i = 0; i < n_want; i++)
		ck_assert_msg(f.ids[i] == want[i], "%s: record %d is item %d, want %d",
		              qs_store_cf_names[cf], i, f.ids[i], want[i]);
}

/* Write items 0..n-1 with expiration BASE_EXP + index; returns them. */
static void
write_items(struct harness *h, struct test_item **items, int n)
{
	for (int i = 0; i < n; i++) {
		items[i] = make_item(h, i, BASE_EXP + (uint64_t)i);
		ck_assert_int_eq(qs_writer_submit(h->writer, &items[i]->w), 0);
	}
	run_until(h, n);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(items[i]->w.result, 0);
	h->completed = 0;
}

static struct qs_write_extra
range(enum qs_store_cf cf, const void *begin, size_t begin_len, const void *end, size_t end_len)
{
	return (struct qs_write_extra){cf,  begin,   begin_len,
	                               end, end_len, QS_WRITE_OP_DELETE_RANGE};
}

START_TEST(delete_and_range_delete_land_with_the_item)
{
	struct harness h = {0};
	struct test_item *items[11];
	uint8_t k2[QS_STORE_KEY_BYTES], k5[QS_STORE_KEY_BYTES], k8[QS_STORE_KEY_BYTES];
	const int infos[] = {0, 1, 3, 4, 5, 6, 7, 8, 9, 10};
	const int batches[] = {0, 1, 2, 3, 4, 8, 9, 10};

	harness_open(&h, 64 << 20, 8);
	write_items(&h, items, 10);
	qs_store_key(items[2]->w.info.expiration_us, items[2]->w.info.digest, k2);
	qs_store_key(items[5]->w.info.expiration_us, items[5]->w.info.digest, k5);
	qs_store_key(items[8]->w.info.expiration_us, items[8]->w.info.digest, k8);
	/* A new batch whose WriteBatch also deletes item 2's info and the
	 * payloads of items 5, 6 and 7. */
	items[10] = make_item(&h, 10, BASE_EXP + 10);
	items[10]->w.extra[0] =
	    (struct qs_write_extra){QS_CF_INFOS, k2, sizeof(k2), NULL, 0, QS_WRITE_OP_DELETE};
	items[10]->w.extra[1] = range(QS_CF_BATCHES, k5, sizeof(k5), k8, sizeof(k8));
	items[10]->w.n_extra = 2;
	ck_assert_int_eq(qs_writer_submit(h.writer, &items[10]->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(items[10]->w.result, 0);
	ck_assert_int_eq(qs_codec_info_verify(h.pub, CHAIN, &items[10]->w.info, items[10]->w.sig),
	                 0);
	/* Durable: a reopened database shows the same. */
	harness_close(&h, 1);
	harness_open(&h, 64 << 20, 8);
	assert_ids(h.store, QS_CF_INFOS, infos, 10);
	assert_ids(h.store, QS_CF_BATCHES, batches, 8);
	for (int i = 0; i < 11; i++)
		free(items[i]);
	harness_close(&h, 0);
}
END_TEST

START_TEST(range_delete_removes_exactly_the_range)
{
	struct harness h = {0};
	struct test_item *items[10];
	struct test_item *del = calloc(1, sizeof(*del));
	uint8_t k3[QS_STORE_KEY_BYTES], k7[QS_STORE_KEY_BYTES];
	uint8_t zero[8] = {0}, e5[8];
	const int infos[] = {0, 1, 2, 7, 8, 9};
	const int batches[] = {5, 6, 7, 8, 9};
	const int all[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

	harness_open(&h, 64 << 20, 8);
	write_items(&h, items, 10);
	qs_store_key(items[3]->w.info.expiration_us, items[3]->w.info.digest, k3);
	qs_store_key(items[7]->w.info.expiration_us, items[7]->w.info.digest, k7);
	/* Full keys: [3, 7) of infos. Expiration prefixes, as a GC writes them:
	 * [0, BASE_EXP + 5) of batches. */
	qs_put_be64(e5, BASE_EXP + 5);
	del->index = 100;
	del->w.kind = QS_WRITE_PUT;
	del->w.owner = del;
	del->w.extra[0] = range(QS_CF_INFOS, k3, sizeof(k3), k7, sizeof(k7));
	del->w.extra[1] = range(QS_CF_BATCHES, zero, sizeof(zero), e5, sizeof(e5));
	del->w.n_extra = 2;
	ck_assert_int_eq(qs_writer_submit(h.writer, &del->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(del->w.result, 0);
	assert_ids(h.store, QS_CF_INFOS, infos, 6);
	assert_ids(h.store, QS_CF_BATCHES, batches, 5);
	/* An empty range deletes nothing. */
	h.completed = 0;
	del->w.extra[0] = range(QS_CF_BATCHES, k7, sizeof(k7), k7, sizeof(k7));
	del->w.n_extra = 1;
	ck_assert_int_eq(qs_writer_submit(h.writer, &del->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(del->w.result, 0);
	assert_ids(h.store, QS_CF_BATCHES, batches, 5);
	assert_ids(h.store, QS_CF_PROOFS, all, 0);
	for (int i = 0; i < 10; i++)
		free(items[i]);
	free(del);
	harness_close(&h, 0);
}
END_TEST

START_TEST(submit_refuses_malformed_extras)
{
	struct harness h = {0};
	struct test_item *a;
	uint8_t lo[1] = {1}, hi[2] = {1, 0};

	harness_open(&h, 64 << 20, 8);
	a = make_item(&h, 0, BASE_EXP);
	a->w.n_extra = QS_WRITE_MAX_EXTRAS + 1;
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), -EINVAL);
	/* A reversed range would fail the whole group in RocksDB. */
	a->w.n_extra = 1;
	a->w.extra[0] = range(QS_CF_PROOFS, hi, sizeof(hi), lo, sizeof(lo));
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), -EINVAL);
	a->w.extra[0] = range(QS_CF_PROOFS, lo, sizeof(lo), hi, sizeof(hi));
	a->w.extra[0].op = (enum qs_write_op)7;
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), -EINVAL);
	a->w.extra[0] = range(QS_CF_COUNT, lo, sizeof(lo), hi, sizeof(hi));
	a->w.extra[0].op = QS_WRITE_OP_PUT;
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), -EINVAL);
	ck_assert_uint_eq(qs_writer_queue_bytes(h.writer), 0);
	/* The same item, well formed, is taken: a range ending at a longer key
	 * with the same prefix, and every slot used. */
	a->w.extra[0] = range(QS_CF_PROOFS, lo, sizeof(lo), hi, sizeof(hi));
	for (int i = 1; i < QS_WRITE_MAX_EXTRAS; i++)
		a->w.extra[i] = (struct qs_write_extra){
		    QS_CF_META, "m", 1, "v", 1, i % 2 ? QS_WRITE_OP_PUT : QS_WRITE_OP_DELETE};
	a->w.n_extra = QS_WRITE_MAX_EXTRAS;
	ck_assert_int_eq(qs_writer_submit(h.writer, &a->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(h.seen[0], 1);
	ck_assert_int_eq(a->w.result, 0);
	free(a);
	harness_close(&h, 0);
}
END_TEST

START_TEST(failed_sync_fails_an_item_of_deletes)
{
	struct harness h = {0};
	struct test_item *items[2];
	struct test_item *del = calloc(1, sizeof(*del));
	uint8_t k0[QS_STORE_KEY_BYTES];
	char trigger[300];

	if (!getenv("QS_SHIM_LOADED")) {
		fprintf(stderr, "check_writer: shim_sync.so not preloaded; skipping "
		                "failed_sync_fails_an_item_of_deletes\n");
		free(del);
		return;
	}
	harness_open(&h, 64 << 20, 16);
	write_items(&h, items, 2);
	snprintf(trigger, sizeof(trigger), "%s/fail-sync", h.dir);
	setenv("QS_SHIM_FAIL_SYNC", trigger, 1);
	qs_store_key(items[0]->w.info.expiration_us, items[0]->w.info.digest, k0);
	del->w.kind = QS_WRITE_PUT;
	del->w.owner = del;
	del->w.extra[0] =
	    (struct qs_write_extra){QS_CF_INFOS, k0, sizeof(k0), NULL, 0, QS_WRITE_OP_DELETE};
	del->w.n_extra = 1;
	/* Deletes only, yet written with sync: the failing fdatasync fails it. */
	fclose(fopen(trigger, "w"));
	ck_assert_int_eq(qs_writer_submit(h.writer, &del->w), 0);
	run_until(&h, 1);
	unlink(trigger);
	ck_assert_msg(del->w.result == QS_EIO || del->w.result == QS_ESTORE, "result %d",
	              del->w.result);
	for (int i = 0; i < 2; i++)
		free(items[i]);
	free(del);
	harness_close(&h, 0);
}
END_TEST

/* RocksDB opened directly on the harness's database, for what qs_store does
 * not do: flushes and manual compactions. */
struct raw_db {
	rocksdb_t *db;
	rocksdb_options_t *o;
	rocksdb_column_family_handle_t *h[1 + QS_CF_COUNT];
};

static void
raw_open(struct raw_db *r, const char *dir)
{
	const char *names[1 + QS_CF_COUNT] = {"default"};
	const rocksdb_options_t *cfo[1 + QS_CF_COUNT];
	char *err = NULL;

	r->o = rocksdb_options_create();
	for (int i = 0; i < 1 + QS_CF_COUNT; i++) {
		names[i] = i ? qs_store_cf_names[i - 1] : "default";
		cfo[i] = r->o;
	}
	r->db = rocksdb_open_column_families(r->o, dir, 1 + QS_CF_COUNT, names, cfo, r->h, &err);
	ck_assert_msg(err == NULL, "%s", err);
}

static void
raw_close(struct raw_db *r)
{
	for (int i = 0; i < 1 + QS_CF_COUNT; i++)
		rocksdb_column_family_handle_destroy(r->h[i]);
	rocksdb_close(r->db);
	rocksdb_options_destroy(r->o);
}

/* Put records first..last (expiration BASE_EXP + i, digest filled with i + 1)
 * into batches, infos and proofs; flush; compact [from, to) out of level 0. */
static void
raw_put_and_compact(struct raw_db *r, int first, int last)
{
	static const enum qs_store_cf cfs[] = {QS_CF_BATCHES, QS_CF_INFOS, QS_CF_PROOFS};
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	uint8_t from[QS_STORE_KEY_BYTES], to[QS_STORE_KEY_BYTES], digest[QS_DIGEST_BYTES];
	char *err = NULL;

	rocksdb_flushoptions_set_wait(fo, 1);
	for (size_t c = 0; c < 3; c++) {
		rocksdb_column_family_handle_t *h = r->h[1 + cfs[c]];

		for (int i = first; i <= last; i++) {
			uint8_t key[QS_STORE_KEY_BYTES];

			memset(digest, i + 1, sizeof(digest));
			qs_store_key(BASE_EXP + (uint64_t)i, digest, key);
			rocksdb_put_cf(r->db, wo, h, (const char *)key, sizeof(key), "value", 5,
			               &err);
			ck_assert_msg(err == NULL, "%s", err);
		}
		rocksdb_flush_cf(r->db, fo, h, &err);
		ck_assert_msg(err == NULL, "%s", err);
		memset(digest, 0, sizeof(digest));
		qs_store_key(BASE_EXP + (uint64_t)first, digest, from);
		qs_store_key(BASE_EXP + (uint64_t)last + 1, digest, to);
		rocksdb_compact_range_cf(r->db, h, (const char *)from, sizeof(from),
		                         (const char *)to, sizeof(to));
	}
	rocksdb_flushoptions_destroy(fo);
	rocksdb_writeoptions_destroy(wo);
}

static int
raw_files_at_level(struct raw_db *r, enum qs_store_cf cf, int level)
{
	char name[64];
	char *v;
	int n;

	snprintf(name, sizeof(name), "rocksdb.num-files-at-level%d", level);
	v = rocksdb_property_value_cf(r->db, r->h[1 + cf], name);
	ck_assert_ptr_nonnull(v);
	n = atoi(v);
	rocksdb_free(v);
	return n;
}

START_TEST(drop_files_removes_whole_files_below_the_bound)
{
	static const enum qs_store_cf cfs[] = {QS_CF_BATCHES, QS_CF_INFOS, QS_CF_PROOFS};
	struct harness h = {0};
	struct raw_db r;
	struct qs_read_item d = {0};
	struct qs_read_item *done = NULL;
	const int live[] = {5, 6, 7, 8, 9};
	uint64_t sst_before, sst_after;

	/* Items 0..4 in one level-1 file per family, 5..9 in another. No
	 * tombstone covers 0..4: only dropping their files removes them. */
	harness_open(&h, 64 << 20, 8);
	harness_close(&h, 1);
	raw_open(&r, h.dir);
	raw_put_and_compact(&r, 0, 4);
	raw_put_and_compact(&r, 5, 9);
	for (size_t c = 0; c < 3; c++) {
		ck_assert_int_eq(raw_files_at_level(&r, cfs[c], 0), 0);
		ck_assert_int_eq(raw_files_at_level(&r, cfs[c], 1), 2);
	}
	raw_close(&r);

	harness_open(&h, 64 << 20, 8);
	start_reader(&h);
	ck_assert_int_eq(qs_store_property_u64(h.store, "rocksdb.live-sst-files-size", &sst_before),
	                 0);
	d.kind = QS_READ_DROP_FILES;
	d.info.expiration_us = BASE_EXP + 5;
	d.owner = &done;
	ck_assert_int_eq(qs_reader_submit(h.reader, &d), 0);
	run_until(&h, 1);
	ck_assert_ptr_eq(done, &d);
	ck_assert_int_eq(d.result, 0);
	ck_assert_ptr_null(d.error);
	for (size_t c = 0; c < 3; c++)
		assert_ids(h.store, cfs[c], live, 5);
	ck_assert_int_eq(qs_store_property_u64(h.store, "rocksdb.live-sst-files-size", &sst_after),
	                 0);
	ck_assert_uint_lt(sst_after, sst_before);
	qs_read_item_release(&d);

	/* A bound below every file drops nothing. */
	h.completed = 0;
	done = NULL;
	d.info.expiration_us = BASE_EXP;
	ck_assert_int_eq(qs_reader_submit(h.reader, &d), 0);
	run_until(&h, 1);
	ck_assert_int_eq(d.result, 0);
	for (size_t c = 0; c < 3; c++)
		assert_ids(h.store, cfs[c], live, 5);
	qs_read_item_release(&d);
	harness_close(&h, 0);
}
END_TEST

/* A batch whose payload (4 KiB, a blob) is item `index`'s, expiring at `exp`. */
static struct test_item *
make_blob_item(struct harness *h, int index, uint64_t exp, uint8_t *buf, size_t len)
{
	struct test_item *ti = make_item(h, index, exp);

	memset(buf, 'A' + index % 26, len);
	buf[0] = (uint8_t)index;
	ti->txns[0].data = buf;
	ti->txns[0].len = len;
	ti->w.info.num_bytes = len + 30 + 50;
	ck_assert_int_eq(qs_codec_batch_digest(CHAIN, h->pub, 1, (uint64_t)index, ti->txns, 3,
	                                       ti->w.info.digest),
	                 0);
	return ti;
}

static uint64_t
blob_files(struct harness *h)
{
	uint64_t n;

	ck_assert_int_eq(qs_store_property_u64(h->store, "rocksdb.num-blob-files", &n), 0);
	return n;
}

/* GC as the daemon does it: a range delete below `bound` in batches and
 * infos, written by the writer, then the files wholly below it dropped. */
static void
gc_below(struct harness *h, uint64_t bound)
{
	static const uint8_t zero[QS_DIGEST_BYTES];
	uint8_t lo[QS_STORE_KEY_BYTES], hi[QS_STORE_KEY_BYTES];
	struct test_item *gc = make_item(h, 999, BASE_EXP);
	struct qs_read_item d = {0}, *done = NULL;

	qs_store_key(0, zero, lo);
	qs_store_key(bound, zero, hi);
	gc->w.kind = QS_WRITE_PUT;
	gc->w.extra[0] = range(QS_CF_BATCHES, lo, sizeof(lo), hi, sizeof(hi));
	gc->w.extra[1] = range(QS_CF_INFOS, lo, sizeof(lo), hi, sizeof(hi));
	gc->w.n_extra = 2;
	h->completed = 0;
	ck_assert_int_eq(qs_writer_submit(h->writer, &gc->w), 0);
	run_until(h, 1);
	ck_assert_int_eq(gc->w.result, 0);
	free(gc);
	d.kind = QS_READ_DROP_FILES;
	d.info.expiration_us = bound;
	d.owner = &done;
	h->completed = 0;
	ck_assert_int_eq(qs_reader_submit(h->reader, &d), 0);
	run_until(h, 1);
	ck_assert_int_eq(d.result, 0);
	qs_read_item_release(&d);
	h->completed = 0;
}

static void
flush_and_compact_batches(struct harness *h)
{
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_column_family_handle_t *cf = h->store->cf[QS_CF_BATCHES];
	char *err = NULL;

	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush_cf(h->store->db, fo, cf, &err);
	ck_assert_msg(err == NULL, "%s", err);
	rocksdb_compact_range_cf(h->store->db, cf, NULL, 0, NULL, 0);
	rocksdb_flushoptions_destroy(fo);
}

/*
 * Payloads go to blob files, and a blob file stays while a batch in it
 * lives. Three flushes each write one blob file holding six short-lived
 * batches and one long-lived one. After a GC below the short ones (and a
 * compaction that drops them) every file stays, and the long ones read back
 * intact through the digest check; after a GC below the long ones the table
 * files are dropped, and the blob files go as soon as the next flush's file
 * is referenced: the space comes back with no blob garbage collection.
 */
START_TEST(blob_files_go_with_the_last_batch_they_hold)
{
	enum {
		ROUNDS = 3,
		SHORT = 6,
		PER = SHORT + 1,
		BLOB = 4096
	};
	struct harness h = {0};
	struct test_item *items[ROUNDS * PER];
	uint8_t *bufs[ROUNDS * PER];
	struct qs_read_item reads[ROUNDS];
	struct qs_read_item *done[ROUNDS] = {0};
	struct test_item *late;
	uint64_t total;

	memset(reads, 0, sizeof(reads));
	harness_open(&h, 64 << 20, 64);
	start_reader(&h);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < PER; i++) {
			int k = r * PER + i;
			uint64_t exp =
			    i < SHORT ? BASE_EXP + (uint64_t)k : BASE_EXP + 1000 + (uint64_t)r;

			bufs[k] = malloc(BLOB);
			items[k] = make_blob_item(&h, k, exp, bufs[k], BLOB);
			ck_assert_int_eq(qs_writer_submit(h.writer, &items[k]->w), 0);
		}
		run_until(&h, PER);
		h.completed = 0;
		for (int i = 0; i < PER; i++)
			ck_assert_int_eq(items[r * PER + i]->w.result, 0);
		flush_and_compact_batches(&h);
		ck_assert_uint_eq(blob_files(&h), (uint64_t)r + 1);
	}

	gc_below(&h, BASE_EXP + 500);
	flush_and_compact_batches(&h);
	ck_assert_uint_eq(blob_files(&h), ROUNDS);
	for (int r = 0; r < ROUNDS; r++) {
		reads[r].info = items[r * PER + SHORT]->w.info;
		reads[r].owner = &done[r];
		ck_assert_int_eq(qs_reader_submit(h.reader, &reads[r]), 0);
	}
	run_until(&h, ROUNDS);
	h.completed = 0;
	for (int r = 0; r < ROUNDS; r++) {
		ck_assert_int_eq(reads[r].result, 0);
		ck_assert_uint_eq(reads[r].txns[0].len, BLOB);
		ck_assert_mem_eq(reads[r].txns[0].data, bufs[r * PER + SHORT], BLOB);
		qs_read_item_release(&reads[r]);
	}

	/* Below the long ones too: the table files go at once, the blob
	 * files once a newer one is referenced (RocksDB keeps a blob file
	 * until no table file refers to it or to an older one). */
	gc_below(&h, BASE_EXP + 2000);
	ck_assert_int_eq(qs_store_property_u64(h.store, "rocksdb.live-sst-files-size", &total), 0);
	ck_assert_uint_eq(total, 0);
	late = make_blob_item(&h, ROUNDS * PER, BASE_EXP + 3000, bufs[0], BLOB);
	ck_assert_int_eq(qs_writer_submit(h.writer, &late->w), 0);
	run_until(&h, 1);
	ck_assert_int_eq(late->w.result, 0);
	flush_and_compact_batches(&h);
	ck_assert_uint_eq(blob_files(&h), 1);
	ck_assert_int_eq(qs_store_property_u64(h.store, "rocksdb.total-blob-file-size", &total), 0);
	ck_assert_uint_lt(total, 2 * BLOB);
	free(late);
	for (int k = 0; k < ROUNDS * PER; k++) {
		free(items[k]);
		free(bufs[k]);
	}
	harness_close(&h, 0);
}
END_TEST

START_TEST(failed_sync_nacks_whole_group_without_signing)
{
	struct harness h = {0};
	struct test_item *items[10];
	char trigger[300];
	uint8_t zero[QS_SIG_BYTES] = {0};

	if (!getenv("QS_SHIM_LOADED")) {
		fprintf(stderr, "check_writer: shim_sync.so not preloaded; skipping "
		                "failed_sync_nacks_whole_group_without_signing\n");
		return;
	}
	harness_open(&h, 64 << 20, 16);
	snprintf(trigger, sizeof(trigger), "%s/fail-sync", h.dir);
	setenv("QS_SHIM_FAIL_SYNC", trigger, 1);
	h.hold_first_group = 1;
	/* A first write succeeds and holds the writer while the rest queue up.
	 * Wait until it is held, so that none of the rest joined its group
	 * (regression: under load they sometimes did, and were written before
	 * the fault). */
	items[0] = make_item(&h, 0, 5000000000000000ULL);
	ck_assert_int_eq(qs_writer_submit(h.writer, &items[0]->w), 0);
	wait_first_group(&h);
	for (int i = 1; i < 10; i++) {
		items[i] = make_item(&h, i, 5000000000000000ULL + (uint64_t)i);
		ck_assert_int_eq(qs_writer_submit(h.writer, &items[i]->w), 0);
	}
	fclose(fopen(trigger, "w"));
	release_writer(&h);
	run_until(&h, 10);
	unlink(trigger);
	for (int i = 1; i < 10; i++) {
		ck_assert_int_eq(h.seen[i], 1);
		ck_assert_msg(items[i]->w.result == QS_EIO || items[i]->w.result == QS_ESTORE,
		              "item %d result %d", i, items[i]->w.result);
		ck_assert_mem_eq(items[i]->w.sig, zero, QS_SIG_BYTES);
	}
	for (int i = 0; i < 10; i++)
		free(items[i]);
	harness_close(&h, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("writer");
	TCase *tc = tcase_create("writer");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, group_commit_signs_each_batch_once_after_write);
	tcase_add_test(tc, full_queue_refuses_until_space_returns);
	tcase_add_test(tc, stop_completes_every_queued_item);
	tcase_add_test(tc, reader_returns_stored_bytes_checked_against_digest);
	tcase_add_test(tc, reader_refuses_bytes_that_do_not_match_the_digest);
	tcase_add_test(tc, recovery_keeps_live_and_deletes_expired);
	tcase_add_test(tc, failed_sync_nacks_whole_group_without_signing);
	tcase_add_test(tc, delete_and_range_delete_land_with_the_item);
	tcase_add_test(tc, range_delete_removes_exactly_the_range);
	tcase_add_test(tc, submit_refuses_malformed_extras);
	tcase_add_test(tc, failed_sync_fails_an_item_of_deletes);
	tcase_add_test(tc, drop_files_removes_whole_files_below_the_bound);
	tcase_add_test(tc, blob_files_go_with_the_last_batch_they_hold);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
