#include "storage/check.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "quorumstore/v1/types.pb-c.h"
#include "storage/store_impl.h"
#include "storage/writer.h"

struct check {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[QS_CF_COUNT];
	rocksdb_readoptions_t *ro;
	struct qs_db_check_report rep;
	void (*problem)(void *arg, const char *cf, const uint8_t *key, size_t klen,
	                const char *what);
	void *arg;
};

static void
report(struct check *c, enum qs_store_cf cf, const char *key, size_t klen, uint64_t *counter,
       const char *what)
{
	(*counter)++;
	if (c->problem)
		c->problem(c->arg, qs_store_cf_names[cf], (const uint8_t *)key, klen, what);
}

/* Whether `key` is expiration_us || digest of `info`. */
static int
key_matches(const char *key, size_t klen, const struct qs_batch_info *info)
{
	uint8_t want[QS_STORE_KEY_BYTES];

	if (klen != QS_STORE_KEY_BYTES)
		return 0;
	qs_store_key(info->expiration_us, info->digest, want);
	return memcmp(key, want, sizeof(want)) == 0;
}

/*
 * One info, with its payload if has_pay. Returns 0, or an error that stops
 * the check (out of memory).
 */
static int
check_info(struct check *c, const char *key, size_t klen, const char *val, size_t vlen, int has_pay,
           const char *pay, size_t plen)
{
	struct qs_batch_info info;
	ProtobufCBinaryData *txns = NULL;
	size_t n_txns = 0;
	uint64_t bytes = 0;
	uint32_t chain;
	int info_ok = 0;
	int rc = 0;

	c->rep.infos++;
	if (qs_codec_info_parse((const uint8_t *)val, vlen, &chain, &info) != 0)
		report(c, QS_CF_INFOS, key, klen, &c->rep.bad_infos, "info does not parse");
	else if (!key_matches(key, klen, &info))
		report(c, QS_CF_INFOS, key, klen, &c->rep.bad_infos,
		       "info is not stored under its expiration||digest");
	else
		info_ok = 1;
	if (!has_pay) {
		report(c, QS_CF_INFOS, key, klen, &c->rep.missing_payloads,
		       "info without a payload");
		goto out;
	}
	if (!info_ok) {
		/* Without its info a payload can only be decoded. */
		rc = qs_codec_txns_parse((const uint8_t *)pay, plen, SIZE_MAX, &txns, &n_txns);
		if (rc == QS_EDECODE)
			report(c, QS_CF_BATCHES, key, klen, &c->rep.bad_payloads,
			       "payload does not decode");
		rc = rc == QS_EDECODE ? 0 : rc;
		goto out;
	}
	rc = qs_store_payload_verify(chain, &info, (const uint8_t *)pay, plen, SIZE_MAX, &txns,
	                             &n_txns);
	if (rc == QS_EDECODE || rc == QS_EBADDIGEST) {
		report(c, QS_CF_BATCHES, key, klen, &c->rep.bad_payloads,
		       rc == QS_EDECODE ? "payload does not decode"
		                        : "payload does not hash to its info's digest");
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	for (size_t i = 0; i < n_txns; i++)
		bytes += txns[i].len;
	if (n_txns != info.num_txns || bytes != info.num_bytes)
		report(c, QS_CF_INFOS, key, klen, &c->rep.bad_infos,
		       "info disagrees with its payload (transaction count or bytes)");
out:
	free(txns);
	return rc;
}

/* An iterator that stopped because of an error, not at the end. */
static int
iter_failed(rocksdb_iterator_t *it, const char *what, char *err, size_t errlen)
{
	char *rerr = NULL;

	rocksdb_iter_get_error(it, &rerr);
	return rerr ? qs_store_fail(rerr, what, err, errlen) : 0;
}

/*
 * Walk infos and batches together in key order. An iterator that stops is
 * checked for an error at once, so that a read error is never taken for
 * missing or orphan records.
 */
static int
check_batches(struct check *c, char *err, size_t errlen)
{
	rocksdb_iterator_t *ii = rocksdb_create_iterator_cf(c->db, c->ro, c->cf[QS_CF_INFOS]);
	rocksdb_iterator_t *bi = rocksdb_create_iterator_cf(c->db, c->ro, c->cf[QS_CF_BATCHES]);
	int rc = 0;

	rocksdb_iter_seek_to_first(ii);
	rocksdb_iter_seek_to_first(bi);
	for (;;) {
		int iv = rocksdb_iter_valid(ii), bv = rocksdb_iter_valid(bi);
		size_t ilen = 0, blen = 0, vlen = 0, plen = 0;
		const char *ik, *bk, *v, *p;
		int cmp;

		if (!iv)
			rc = iter_failed(ii, "reading infos", err, errlen);
		if (!bv && rc == 0)
			rc = iter_failed(bi, "reading batches", err, errlen);
		if (rc || (!iv && !bv))
			break;
		ik = iv ? rocksdb_iter_key(ii, &ilen) : NULL;
		bk = bv ? rocksdb_iter_key(bi, &blen) : NULL;
		cmp = !iv ? 1 : !bv ? -1 : qs_store_key_cmp(ik, ilen, bk, blen);
		p = cmp >= 0 ? rocksdb_iter_value(bi, &plen) : NULL;
		if (cmp >= 0) {
			c->rep.batches++;
			c->rep.payload_bytes += plen;
		}
		if (cmp > 0) {
			report(c, QS_CF_BATCHES, bk, blen, &c->rep.orphan_payloads,
			       "payload without an info");
			rocksdb_iter_next(bi);
			continue;
		}
		v = rocksdb_iter_value(ii, &vlen);
		rc = check_info(c, ik, ilen, v, vlen, cmp == 0, p, plen);
		if (rc) {
			snprintf(err, errlen, "checking batches: %s", qs_strerror(rc));
			break;
		}
		rocksdb_iter_next(ii);
		if (cmp == 0)
			rocksdb_iter_next(bi);
	}
	rocksdb_iter_destroy(ii);
	rocksdb_iter_destroy(bi);
	return rc;
}

static void
check_proof(struct check *c, const char *key, size_t klen, const char *val, size_t vlen)
{
	Quorumstore__V1__ProofOfStore *p;
	struct qs_batch_info info;

	if (vlen == 0 && klen == QS_STORE_KEY_BYTES) {
		/* A committed marker (docs/DESIGN.md, "Storage schema"). */
		c->rep.committed++;
		return;
	}
	c->rep.proofs++;
	p = quorumstore__v1__proof_of_store__unpack(NULL, vlen, (const uint8_t *)val);
	if (!p)
		report(c, QS_CF_PROOFS, key, klen, &c->rep.bad_proofs, "proof does not parse");
	else if (qs_batch_info_from_pb(p->info, &info) != 0)
		report(c, QS_CF_PROOFS, key, klen, &c->rep.bad_proofs,
		       "proof has no well-formed BatchInfo");
	else if (!key_matches(key, klen, &info))
		report(c, QS_CF_PROOFS, key, klen, &c->rep.bad_proofs,
		       "proof is not stored under its info's expiration||digest");
	if (p)
		quorumstore__v1__proof_of_store__free_unpacked(p, NULL);
}

static int
check_proofs(struct check *c, char *err, size_t errlen)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(c->db, c->ro, c->cf[QS_CF_PROOFS]);
	int rc;

	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		check_proof(c, k, klen, v, vlen);
	}
	rc = iter_failed(it, "reading proofs", err, errlen);
	rocksdb_iter_destroy(it);
	return rc;
}

/* Refuse what is not a qsd database before RocksDB opens it. */
static int
check_dir(const char *dir, rocksdb_options_t *opts, char *err, size_t errlen)
{
	char current[PATH_MAX];
	char *rerr = NULL;
	char **names = NULL;
	size_t n = 0;
	struct stat sb;
	int rc = 0;

	if (stat(dir, &sb) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		rc = -ENOTDIR;
		snprintf(err, errlen, "%s: %s", dir, strerror(ENOTDIR));
		goto out;
	}
	if ((size_t)snprintf(current, sizeof(current), "%s/CURRENT", dir) >= sizeof(current)) {
		rc = -ENAMETOOLONG;
		snprintf(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		goto out;
	}
	if (access(current, R_OK) != 0) {
		rc = -errno;
		if (rc == -ENOENT)
			snprintf(err, errlen, "%s holds no database", dir);
		else
			snprintf(err, errlen, "%s: %s", current, strerror(-rc));
		goto out;
	}
	names = rocksdb_list_column_families(opts, dir, &n, &rerr);
	if (rerr) {
		rc = qs_store_fail(rerr, "listing column families", err, errlen);
		goto out;
	}
	for (int c = 0; c < QS_CF_COUNT; c++) {
		size_t i = 0;

		while (i < n && strcmp(names[i], qs_store_cf_names[c]) != 0)
			i++;
		if (i == n) {
			rc = QS_ESCHEMA;
			snprintf(err, errlen, "database has no column family %s",
			         qs_store_cf_names[c]);
			goto out;
		}
	}
out:
	/* The list is allocated even when the call fails. */
	rocksdb_list_column_families_destroy(names, n);
	return rc;
}

static int
check_schema(struct check *c, char *err, size_t errlen)
{
	char *rerr = NULL;
	size_t len = 0;
	char *val = rocksdb_get_cf(c->db, c->ro, c->cf[QS_CF_META], QS_META_SCHEMA,
	                           strlen(QS_META_SCHEMA), &len, &rerr);
	int rc;

	if (rerr)
		return qs_store_fail(rerr, "reading schema version", err, errlen);
	if (!val) {
		snprintf(err, errlen, "database has no schema version");
		return QS_ESCHEMA;
	}
	rc = qs_store_schema_parse(val, len, &c->rep.schema_version, err, errlen);
	rocksdb_free(val);
	return rc;
}

int
qs_store_check(const char *dir, struct qs_db_check_report *rep,
               void (*problem)(void *arg, const char *cf, const uint8_t *key, size_t klen,
                               const char *what),
               void *arg, char *err, size_t errlen)
{
	const rocksdb_options_t *cf_opts[QS_CF_COUNT + 1];
	const char *cf_names[QS_CF_COUNT + 1];
	rocksdb_column_family_handle_t *handles[QS_CF_COUNT + 1] = {0};
	rocksdb_options_t *opts = rocksdb_options_create();
	struct check c = {.problem = problem, .arg = arg};
	char *rerr = NULL;
	int rc;

	c.ro = rocksdb_readoptions_create();
	/* One pass over everything: caching the blocks would only churn. */
	rocksdb_readoptions_set_fill_cache(c.ro, 0);
	rocksdb_readoptions_set_verify_checksums(c.ro, 1);
	rocksdb_options_set_info_log_level(opts, QS_ROCKSDB_FATAL_LEVEL);
	rocksdb_options_set_paranoid_checks(opts, 1);
	/* qsd may be writing the last WAL record right now. */
	rocksdb_options_set_wal_recovery_mode(opts,
	                                      rocksdb_tolerate_corrupted_tail_records_recovery);
	rc = check_dir(dir, opts, err, errlen);
	if (rc)
		goto out;
	cf_names[0] = "default";
	cf_opts[0] = opts;
	for (int i = 0; i < QS_CF_COUNT; i++) {
		cf_names[i + 1] = qs_store_cf_names[i];
		cf_opts[i + 1] = opts;
	}
	c.db = rocksdb_open_for_read_only_column_families(opts, dir, QS_CF_COUNT + 1, cf_names,
	                                                  cf_opts, handles, 0, &rerr);
	if (rerr) {
		rc = qs_store_fail(rerr, "opening database read-only", err, errlen);
		goto out;
	}
	for (int i = 0; i < QS_CF_COUNT; i++)
		c.cf[i] = handles[i + 1];
	rc = check_schema(&c, err, errlen);
	if (rc == 0)
		rc = check_batches(&c, err, errlen);
	if (rc == 0)
		rc = check_proofs(&c, err, errlen);
	if (rc == 0)
		*rep = c.rep;
out:
	for (int i = 0; i < QS_CF_COUNT + 1; i++)
		if (handles[i])
			rocksdb_column_family_handle_destroy(handles[i]);
	if (c.db)
		rocksdb_close(c.db);
	rocksdb_readoptions_destroy(c.ro);
	rocksdb_options_destroy(opts);
	return rc;
}
