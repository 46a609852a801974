/*
 * Helpers shared by the Check tests of core/ modules that hold batch infos
 * (check_cache.c, check_pqueue.c): a deterministic random stream, batch
 * infos made and compared, and a cheap check for loops of many checks.
 */
#ifndef QS_TESTS_FIXTURES_H
#define QS_TESTS_FIXTURES_H

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "core/codec.h"

/*
 * In fork mode every passing ck_assert_*() reports its location to the
 * parent process, a write(2) each: loops of many checks use this.
 */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #cond);              \
	} while (0)

/* The next value of the splitmix64 stream whose state is *s. */
static inline uint64_t
qs_test_splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Batch `batch_id` of epoch 1 expiring at exp_us; every other field 0. */
static inline struct qs_batch_info
qs_test_info(uint64_t batch_id, uint64_t exp_us)
{
	struct qs_batch_info info;

	memset(&info, 0, sizeof(info));
	info.batch_id = batch_id;
	info.epoch = 1;
	info.expiration_us = exp_us;
	return info;
}

/* Field by field: struct copies need not carry padding. */
static inline int
qs_test_info_eq(const struct qs_batch_info *a, const struct qs_batch_info *b)
{
	return memcmp(a->author, b->author, QS_PUBKEY_BYTES) == 0 && a->batch_id == b->batch_id &&
	       a->epoch == b->epoch && a->expiration_us == b->expiration_us &&
	       memcmp(a->digest, b->digest, QS_DIGEST_BYTES) == 0 && a->num_txns == b->num_txns &&
	       a->num_bytes == b->num_bytes && a->gas_bucket_start == b->gas_bucket_start;
}

#endif
