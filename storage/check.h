/*
 * Offline consistency check of a qsd database (`qsctl db check DIR`).
 *
 * The database is opened read-only: no lock is taken and nothing is
 * written, so the check may run while qsd has the database open. It then
 * sees what was durable when it opened (the WAL included); if qsd replaces a
 * file (a WAL, the MANIFEST) while the check opens the database, the check
 * fails with a storage error and may be run again.
 */
#ifndef QS_STORAGE_CHECK_H
#define QS_STORAGE_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct qs_db_check_report {
	uint32_t schema_version;
	uint64_t infos, batches, proofs; /* records in each column family */
	uint64_t committed;              /* committed markers in `proofs` (empty values) */
	uint64_t payload_bytes;          /* bytes of the stored payload values */
	/* Payload does not decode or does not hash to its info's digest. */
	uint64_t bad_payloads;
	/* Info does not parse, its key is not expiration||digest of the info,
	 * or it disagrees with its payload (transaction count, bytes). */
	uint64_t bad_infos;
	uint64_t missing_payloads; /* info without a payload */
	uint64_t orphan_payloads;  /* payload without an info */
	/* Proof does not parse (protobuf ProofOfStore, with a well-formed
	 * BatchInfo) or its key is not expiration||digest of its info. */
	uint64_t bad_proofs;
};

/*
 * Read every record of `dir`'s database read-only and check it. infos and
 * batches are walked together in key order, so memory stays bounded by the
 * largest record. A payload is checked against the info stored under its
 * key, with the chain id that info carries; a payload whose info does not
 * parse is only decoded, and an orphan payload is only counted. Proofs are
 * checked on their own (a proof without a stored batch is normal). Each
 * problem is reported once through problem(arg, cf_name, key, klen, what)
 * (problem may be NULL; `what` is a static string; key is valid during the
 * call only) and counted in *rep, which is filled only when the check ran to
 * its end (problems found before a failure have been reported already).
 * Returns 0 when the check ran (problems are in the report, not the return
 * code); QS_ESCHEMA (schema version missing, 0 or newer than this build, or
 * a column family missing), QS_ECORRUPT (a malformed schema record), a
 * storage error, or -errno (e.g. -ENOENT for a missing directory) when it
 * could not run, with one line in err.
 */
int qs_store_check(const char *dir, struct qs_db_check_report *rep,
                   void (*problem)(void *arg, const char *cf, const uint8_t *key, size_t klen,
                                   const char *what),
                   void *arg, char *err, size_t errlen);

#endif
