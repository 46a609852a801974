/*
 * storage/check: the offline consistency check of `qsctl db check`. A
 * database written by the writer is clean; records damaged with the RocksDB
 * API directly are each counted and reported once; the check never writes
 * and runs beside an open store.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <rocksdb/c.h>

#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "quorumstore/v1/types.pb-c.h"
#include "storage/check.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "tests/lib/tmpdir.h"

#define CHAIN     7
#define N_BATCHES 6
#define N_PROOFS  3
#define BASE_EXP  5000000000000000ULL

/* A batch as the writer stores it, and a proof of it. */
struct rec {
	struct qs_write_item w;
	ProtobufCBinaryData txns[3];
	uint8_t payload[3][64];
	uint8_t key[QS_STORE_KEY_BYTES];
	uint8_t *proof;
	size_t proof_len;
};

struct db {
	char dir[256];
	struct rec recs[N_BATCHES];
	uint64_t payload_bytes; /* the stored sections */
};

static void
on_write(void *arg, struct qs_write_item *item)
{
	(void)arg;
	ck_assert_int_eq(item->result, 0);
}

static void
make_rec(struct rec *r, const uint8_t pub[32], int i)
{
	for (int t = 0; t < 3; t++) {
		memset(r->payload[t], 'a' + i + t, sizeof(r->payload[t]));
		r->txns[t].data = r->payload[t];
		r->txns[t].len = 5 + 10 * (size_t)t + (size_t)i;
	}
	r->w.kind = QS_WRITE_BATCH;
	r->w.txns = r->txns;
	r->w.n_txns = 3;
	memcpy(r->w.info.author, pub, 32);
	r->w.info.epoch = 2;
	r->w.info.batch_id = 100 + (uint64_t)i;
	r->w.info.expiration_us = BASE_EXP + (uint64_t)i;
	r->w.info.num_txns = 3;
	r->w.info.num_bytes = r->txns[0].len + r->txns[1].len + r->txns[2].len;
	ck_assert_int_eq(
	    qs_codec_batch_digest(CHAIN, pub, 2, r->w.info.batch_id, r->txns, 3, r->w.info.digest),
	    0);
	qs_store_key(r->w.info.expiration_us, r->w.info.digest, r->key);
}

/* A ProofOfStore of `info`, packed; the check does not verify signatures. */
static uint8_t *
pack_proof(const struct qs_batch_info *info, size_t *len)
{
	Quorumstore__V1__ProofOfStore p;
	Quorumstore__V1__BatchInfo pb;
	uint8_t bitmap[1] = {0x07};
	uint8_t sig[3][QS_SIG_BYTES];
	ProtobufCBinaryData sigs[3];
	uint8_t *out;

	quorumstore__v1__proof_of_store__init(&p);
	qs_batch_info_to_pb(info, &pb);
	for (int i = 0; i < 3; i++) {
		memset(sig[i], i + 1, sizeof(sig[i]));
		sigs[i].data = sig[i];
		sigs[i].len = sizeof(sig[i]);
	}
	p.info = &pb;
	p.signer_bitmap.data = bitmap;
	p.signer_bitmap.len = sizeof(bitmap);
	p.signatures = sigs;
	p.n_signatures = 3;
	*len = quorumstore__v1__proof_of_store__get_packed_size(&p);
	out = malloc(*len);
	ck_assert_ptr_nonnull(out);
	quorumstore__v1__proof_of_store__pack(&p, out);
	return out;
}

/* A clean database: N_BATCHES batches written by the writer, the first
 * N_PROOFS of them with a proof written as writer extras. */
static void
db_create(struct db *d)
{
	struct qs_store_options so = {
	    .write_buffer_bytes = 8 << 20, .block_cache_bytes = 8 << 20, .max_wal_bytes = 64 << 20};
	struct qs_writer_options wo = {
	    .chain_id = CHAIN,
	    .queue_max_bytes = 64 << 20,
	    .group_max_items = 4,
	    .group_max_bytes = 64 << 20,
	    .complete = on_write,
	};
	struct qs_write_item proofs[N_PROOFS];
	struct event_base *base = event_base_new();
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct qs_store *st = NULL;
	struct qs_writer *w = NULL;
	uint8_t pub[32];
	size_t publen = sizeof(pub);
	char err[512];

	memset(d, 0, sizeof(*d));
	memset(proofs, 0, sizeof(proofs));
	qs_test_mkdtemp(d->dir, sizeof(d->dir));
	so.dir = d->dir;
	ck_assert_int_eq(qs_store_open(&so, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, pub, &publen), 1);
	wo.store = st;
	wo.base = base;
	wo.signing_key = key;
	ck_assert_int_eq(qs_writer_start(&wo, &w), 0);
	for (int i = 0; i < N_BATCHES; i++) {
		struct rec *r = &d->recs[i];

		make_rec(r, pub, i);
		d->payload_bytes += qs_codec_txns_size(r->txns, 3);
		ck_assert_int_eq(qs_writer_submit(w, &r->w), 0);
		if (i >= N_PROOFS)
			continue;
		r->proof = pack_proof(&r->w.info, &r->proof_len);
		proofs[i].kind = QS_WRITE_PUT;
		proofs[i].extra[0] = (struct qs_write_extra){
		    QS_CF_PROOFS, r->key, sizeof(r->key), r->proof, r->proof_len, QS_WRITE_OP_PUT};
		proofs[i].n_extra = 1;
		ck_assert_int_eq(qs_writer_submit(w, &proofs[i]), 0);
	}
	/* Stopping writes everything queued and delivers each completion. */
	qs_writer_stop(w);
	qs_store_close(st);
	event_base_free(base);
	EVP_PKEY_free(key);
}

static void
db_destroy(struct db *d)
{
	for (int i = 0; i < N_BATCHES; i++)
		free(d->recs[i].proof);
	qs_test_rmtree(d->dir);
}

/* RocksDB opened directly, to damage records as a failing disk or a bug
 * would. */
struct raw_db {
	rocksdb_t *db;
	rocksdb_options_t *o;
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo;
	rocksdb_column_family_handle_t *h[1 + QS_CF_COUNT];
};

static void
raw_open(struct raw_db *r, const char *dir)
{
	const char *names[1 + QS_CF_COUNT];
	const rocksdb_options_t *cfo[1 + QS_CF_COUNT];
	char *err = NULL;

	r->o = rocksdb_options_create();
	r->ro = rocksdb_readoptions_create();
	r->wo = rocksdb_writeoptions_create();
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
	rocksdb_writeoptions_destroy(r->wo);
	rocksdb_readoptions_destroy(r->ro);
	rocksdb_options_destroy(r->o);
}

static void
raw_put(struct raw_db *r, enum qs_store_cf cf, const void *key, size_t klen, const void *val,
        size_t vlen)
{
	char *err = NULL;

	rocksdb_put_cf(r->db, r->wo, r->h[1 + cf], key, klen, val, vlen, &err);
	ck_assert_msg(err == NULL, "%s", err);
}

static void
raw_delete(struct raw_db *r, enum qs_store_cf cf, const void *key, size_t klen)
{
	char *err = NULL;

	rocksdb_delete_cf(r->db, r->wo, r->h[1 + cf], key, klen, &err);
	ck_assert_msg(err == NULL, "%s", err);
}

/* The value of key in cf; free() it. */
static uint8_t *
raw_get(struct raw_db *r, enum qs_store_cf cf, const void *key, size_t klen, size_t *vlen)
{
	char *err = NULL;
	char *v = rocksdb_get_cf(r->db, r->ro, r->h[1 + cf], key, klen, vlen, &err);
	uint8_t *out;

	ck_assert_msg(err == NULL, "%s", err);
	ck_assert_ptr_nonnull(v);
	out = malloc(*vlen);
	memcpy(out, v, *vlen);
	rocksdb_free(v);
	return out;
}

struct problems {
	int n;
	char cf[16][16];
	uint8_t key[16][QS_STORE_KEY_BYTES];
	size_t klen[16];
	char what[16][96];
};

static void
on_problem(void *arg, const char *cf, const uint8_t *key, size_t klen, const char *what)
{
	struct problems *p = arg;

	ck_assert_int_lt(p->n, 16);
	snprintf(p->cf[p->n], sizeof(p->cf[0]), "%s", cf);
	p->klen[p->n] = klen;
	memcpy(p->key[p->n], key, klen < QS_STORE_KEY_BYTES ? klen : QS_STORE_KEY_BYTES);
	snprintf(p->what[p->n], sizeof(p->what[0]), "%s", what);
	p->n++;
}

static void
run_check(struct db *d, struct qs_db_check_report *rep, struct problems *p)
{
	char err[512] = "";

	memset(p, 0, sizeof(*p));
	memset(rep, 0xff, sizeof(*rep));
	ck_assert_msg(qs_store_check(d->dir, rep, on_problem, p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(rep->schema_version, QS_SCHEMA_VERSION);
}

/* Problem i is `what` in `cf` at `key`. */
static void
assert_problem(const struct problems *p, int i, const char *cf, const uint8_t *key,
               const char *what)
{
	ck_assert_int_lt(i, p->n);
	ck_assert_str_eq(p->cf[i], cf);
	ck_assert_uint_eq(p->klen[i], QS_STORE_KEY_BYTES);
	ck_assert_mem_eq(p->key[i], key, QS_STORE_KEY_BYTES);
	ck_assert_msg(strstr(p->what[i], what) != NULL, "problem %d is \"%s\", want \"%s\"", i,
	              p->what[i], what);
}

static void
assert_clean_counts(const struct db *d, const struct qs_db_check_report *rep)
{
	ck_assert_uint_eq(rep->infos, N_BATCHES);
	ck_assert_uint_eq(rep->batches, N_BATCHES);
	ck_assert_uint_eq(rep->proofs, N_PROOFS);
	ck_assert_uint_eq(rep->payload_bytes, d->payload_bytes);
}

START_TEST(clean_database_has_no_problems)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;

	db_create(&d);
	run_check(&d, &rep, &p);
	ck_assert_int_eq(p.n, 0);
	assert_clean_counts(&d, &rep);
	ck_assert_uint_eq(rep.bad_payloads, 0);
	ck_assert_uint_eq(rep.bad_infos, 0);
	ck_assert_uint_eq(rep.missing_payloads, 0);
	ck_assert_uint_eq(rep.orphan_payloads, 0);
	ck_assert_uint_eq(rep.bad_proofs, 0);
	/* The problem callback is optional. */
	ck_assert_int_eq(qs_store_check(d.dir, &rep, NULL, NULL, NULL, 0), 0);
	db_destroy(&d);
}
END_TEST

START_TEST(flipped_payload_byte_is_a_bad_payload)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;
	uint8_t *v;
	size_t vlen;

	db_create(&d);
	raw_open(&r, d.dir);
	/* Inside the last transaction: still decodes, no longer hashes. */
	v = raw_get(&r, QS_CF_BATCHES, d.recs[2].key, QS_STORE_KEY_BYTES, &vlen);
	v[vlen - 1] ^= 0x01;
	raw_put(&r, QS_CF_BATCHES, d.recs[2].key, QS_STORE_KEY_BYTES, v, vlen);
	free(v);
	/* A count no length agrees with: does not decode. */
	v = raw_get(&r, QS_CF_BATCHES, d.recs[4].key, QS_STORE_KEY_BYTES, &vlen);
	qs_put_be32(v, 1000);
	raw_put(&r, QS_CF_BATCHES, d.recs[4].key, QS_STORE_KEY_BYTES, v, vlen);
	free(v);
	raw_close(&r);
	run_check(&d, &rep, &p);
	assert_clean_counts(&d, &rep);
	ck_assert_uint_eq(rep.bad_payloads, 2);
	ck_assert_uint_eq(rep.bad_infos + rep.missing_payloads + rep.orphan_payloads, 0);
	ck_assert_uint_eq(rep.bad_proofs, 0);
	ck_assert_int_eq(p.n, 2);
	assert_problem(&p, 0, "batches", d.recs[2].key, "does not hash");
	assert_problem(&p, 1, "batches", d.recs[4].key, "does not decode");
	db_destroy(&d);
}
END_TEST

START_TEST(info_without_payload_is_a_missing_payload)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;

	db_create(&d);
	raw_open(&r, d.dir);
	raw_delete(&r, QS_CF_BATCHES, d.recs[0].key, QS_STORE_KEY_BYTES);
	raw_delete(&r, QS_CF_BATCHES, d.recs[N_BATCHES - 1].key, QS_STORE_KEY_BYTES);
	raw_close(&r);
	run_check(&d, &rep, &p);
	ck_assert_uint_eq(rep.infos, N_BATCHES);
	ck_assert_uint_eq(rep.batches, N_BATCHES - 2);
	ck_assert_uint_eq(rep.missing_payloads, 2);
	ck_assert_uint_eq(rep.bad_payloads + rep.bad_infos + rep.orphan_payloads + rep.bad_proofs,
	                  0);
	ck_assert_int_eq(p.n, 2);
	assert_problem(&p, 0, "infos", d.recs[0].key, "without a payload");
	assert_problem(&p, 1, "infos", d.recs[N_BATCHES - 1].key, "without a payload");
	db_destroy(&d);
}
END_TEST

START_TEST(payload_without_info_is_an_orphan)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;
	uint8_t stray[QS_STORE_KEY_BYTES];

	db_create(&d);
	raw_open(&r, d.dir);
	raw_delete(&r, QS_CF_INFOS, d.recs[3].key, QS_STORE_KEY_BYTES);
	/* After every info, so the walk ends on batches alone. */
	memset(stray, 0xff, sizeof(stray));
	raw_put(&r, QS_CF_BATCHES, stray, sizeof(stray), "junk", 4);
	raw_close(&r);
	run_check(&d, &rep, &p);
	ck_assert_uint_eq(rep.infos, N_BATCHES - 1);
	ck_assert_uint_eq(rep.batches, N_BATCHES + 1);
	ck_assert_uint_eq(rep.payload_bytes, d.payload_bytes + 4);
	ck_assert_uint_eq(rep.orphan_payloads, 2);
	ck_assert_uint_eq(rep.bad_payloads + rep.bad_infos + rep.missing_payloads + rep.bad_proofs,
	                  0);
	ck_assert_int_eq(p.n, 2);
	assert_problem(&p, 0, "batches", d.recs[3].key, "without an info");
	assert_problem(&p, 1, "batches", stray, "without an info");
	db_destroy(&d);
}
END_TEST

START_TEST(info_that_is_misplaced_or_disagrees_is_a_bad_info)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;
	struct qs_batch_info info;
	uint8_t buf[QS_INFO_SIGNING_BYTES];
	uint32_t chain;
	uint8_t *v;
	size_t vlen;

	db_create(&d);
	raw_open(&r, d.dir);
	/* Item 1's info claims a transaction more: it still parses and its
	 * payload still hashes (num_txns is not in the digest). */
	v = raw_get(&r, QS_CF_INFOS, d.recs[1].key, QS_STORE_KEY_BYTES, &vlen);
	ck_assert_int_eq(qs_codec_info_parse(v, vlen, &chain, &info), 0);
	ck_assert_uint_eq(chain, CHAIN);
	info.num_txns++;
	qs_codec_info_signing_bytes(chain, &info, buf);
	raw_put(&r, QS_CF_INFOS, d.recs[1].key, QS_STORE_KEY_BYTES, buf, sizeof(buf));
	free(v);
	/* Item 3's key holds item 4's info. */
	v = raw_get(&r, QS_CF_INFOS, d.recs[4].key, QS_STORE_KEY_BYTES, &vlen);
	raw_put(&r, QS_CF_INFOS, d.recs[3].key, QS_STORE_KEY_BYTES, v, vlen);
	free(v);
	/* Item 5's info is cut short. */
	raw_put(&r, QS_CF_INFOS, d.recs[5].key, QS_STORE_KEY_BYTES, buf, 20);
	raw_close(&r);
	run_check(&d, &rep, &p);
	assert_clean_counts(&d, &rep);
	ck_assert_uint_eq(rep.bad_infos, 3);
	ck_assert_uint_eq(
	    rep.bad_payloads + rep.missing_payloads + rep.orphan_payloads + rep.bad_proofs, 0);
	ck_assert_int_eq(p.n, 3);
	assert_problem(&p, 0, "infos", d.recs[1].key, "disagrees with its payload");
	assert_problem(&p, 1, "infos", d.recs[3].key, "not stored under");
	assert_problem(&p, 2, "infos", d.recs[5].key, "does not parse");
	db_destroy(&d);
}
END_TEST

START_TEST(empty_proof_value_is_a_committed_marker)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;
	uint8_t key[QS_STORE_KEY_BYTES];

	db_create(&d);
	raw_open(&r, d.dir);
	memcpy(key, d.recs[N_PROOFS].key, sizeof(key));
	raw_put(&r, QS_CF_PROOFS, key, sizeof(key), "", 0);
	raw_close(&r);
	run_check(&d, &rep, &p);
	ck_assert_uint_eq(rep.committed, 1);
	ck_assert_uint_eq(rep.proofs, N_PROOFS);
	ck_assert_uint_eq(rep.bad_proofs, 0);
	ck_assert_int_eq(p.n, 0);
	db_destroy(&d);
}
END_TEST

START_TEST(garbage_or_misplaced_proof_is_a_bad_proof)
{
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct raw_db r;
	Quorumstore__V1__ProofOfStore empty;
	uint8_t packed[16];
	size_t n;

	db_create(&d);
	raw_open(&r, d.dir);
	raw_put(&r, QS_CF_PROOFS, d.recs[3].key, QS_STORE_KEY_BYTES, "\xff\xff\xff garbage", 12);
	/* Item 0's proof under item 4's key. */
	raw_put(&r, QS_CF_PROOFS, d.recs[4].key, QS_STORE_KEY_BYTES, d.recs[0].proof,
	        d.recs[0].proof_len);
	/* A proof without a BatchInfo (but not empty: an empty value is a
	 * committed marker). */
	quorumstore__v1__proof_of_store__init(&empty);
	empty.signer_bitmap.data = (uint8_t *)"\x01";
	empty.signer_bitmap.len = 1;
	n = quorumstore__v1__proof_of_store__pack(&empty, packed);
	raw_put(&r, QS_CF_PROOFS, d.recs[5].key, QS_STORE_KEY_BYTES, packed, n);
	raw_close(&r);
	run_check(&d, &rep, &p);
	ck_assert_uint_eq(rep.proofs, N_PROOFS + 3);
	ck_assert_uint_eq(rep.bad_proofs, 3);
	ck_assert_uint_eq(
	    rep.bad_payloads + rep.bad_infos + rep.missing_payloads + rep.orphan_payloads, 0);
	ck_assert_int_eq(p.n, 3);
	assert_problem(&p, 0, "proofs", d.recs[3].key, "does not parse");
	assert_problem(&p, 1, "proofs", d.recs[4].key, "not stored under");
	assert_problem(&p, 2, "proofs", d.recs[5].key, "BatchInfo");
	db_destroy(&d);
}
END_TEST

START_TEST(newer_schema_version_is_refused)
{
	struct db d;
	struct qs_db_check_report rep = {0};
	struct raw_db r;
	char err[512] = "";
	uint8_t v[4];

	db_create(&d);
	raw_open(&r, d.dir);
	qs_put_be32(v, QS_SCHEMA_VERSION + 1);
	raw_put(&r, QS_CF_META, "schema_version", 14, v, sizeof(v));
	raw_close(&r);
	ck_assert_int_eq(qs_store_check(d.dir, &rep, on_problem, NULL, err, sizeof(err)),
	                 QS_ESCHEMA);
	ck_assert_msg(strstr(err, "schema version 2") != NULL, "%s", err);
	ck_assert_uint_eq(rep.infos, 0);
	db_destroy(&d);
}
END_TEST

START_TEST(what_is_not_a_database_is_refused)
{
	char dir[256], path[300], err[512] = "";
	struct qs_db_check_report rep;

	qs_test_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(qs_store_check(path, &rep, NULL, NULL, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	/* An empty directory holds no database; none is created. */
	ck_assert_int_eq(qs_store_check(dir, &rep, NULL, NULL, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "no database") != NULL, "%s", err);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Names, sizes and modification times of the files in dir (and of dir
 * itself, which changes when a file is made or removed), one line each. */
static void
list_dir(const char *dir, char *out, size_t cap)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	size_t off = 0;

	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		char path[600];
		struct stat sb;

		if (strcmp(names[i]->d_name, "..") == 0) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		ck_assert_int_eq(stat(path, &sb), 0);
		off += (size_t)snprintf(out + off, cap - off, "%s %lld %lld.%09ld\n",
		                        names[i]->d_name, (long long)sb.st_size,
		                        (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
		ck_assert_uint_lt(off, cap);
		free(names[i]);
	}
	free(names);
}

START_TEST(check_beside_an_open_store_sees_its_wal_and_writes_nothing)
{
	struct qs_store_options so = {
	    .write_buffer_bytes = 8 << 20, .block_cache_bytes = 8 << 20, .max_wal_bytes = 64 << 20};
	static char before[16384], after[16384];
	struct db d;
	struct qs_db_check_report rep;
	struct problems p;
	struct qs_store *st = NULL;
	char err[512];

	db_create(&d);
	so.dir = d.dir;
	/* As qsd does: the store holds the lock, and its latest write is in
	 * the WAL and a memtable only. */
	ck_assert_int_eq(qs_store_open(&so, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(qs_store_delete_sync(st, QS_CF_BATCHES, d.recs[1].key, QS_STORE_KEY_BYTES),
	                 0);
	list_dir(d.dir, before, sizeof(before));
	run_check(&d, &rep, &p);
	list_dir(d.dir, after, sizeof(after));
	ck_assert_str_eq(before, after);
	ck_assert_uint_eq(rep.infos, N_BATCHES);
	ck_assert_uint_eq(rep.batches, N_BATCHES - 1);
	ck_assert_uint_eq(rep.missing_payloads, 1);
	ck_assert_int_eq(p.n, 1);
	assert_problem(&p, 0, "infos", d.recs[1].key, "without a payload");
	qs_store_close(st);
	db_destroy(&d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dbcheck");
	TCase *tc = tcase_create("dbcheck");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, clean_database_has_no_problems);
	tcase_add_test(tc, flipped_payload_byte_is_a_bad_payload);
	tcase_add_test(tc, info_without_payload_is_a_missing_payload);
	tcase_add_test(tc, payload_without_info_is_an_orphan);
	tcase_add_test(tc, info_that_is_misplaced_or_disagrees_is_a_bad_info);
	tcase_add_test(tc, garbage_or_misplaced_proof_is_a_bad_proof);
	tcase_add_test(tc, empty_proof_value_is_a_committed_marker);
	tcase_add_test(tc, newer_schema_version_is_refused);
	tcase_add_test(tc, what_is_not_a_database_is_refused);
	tcase_add_test(tc, check_beside_an_open_store_sees_its_wal_and_writes_nothing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
