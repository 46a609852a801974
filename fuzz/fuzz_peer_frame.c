/*
 * Peer frames, as qsd reads them from a validator: qs_frame_read() with the
 * peer decode budget, the message-level bounds of daemon/ingest.c, then every
 * batch through qs_batch_validate(), every proof through qs_proof_verify()
 * and every signature through a proof builder, against a fixed validator set
 * of four.
 *
 * Random bytes almost never carry a right digest or signature, so byte 0 of
 * the input says how to repair what was decoded before it is checked
 * (low 3 bits), and which rule to break again afterwards (next 3 bits):
 *   0-2  nothing repaired: the checks see the frame as sent
 *   3-4  batches made valid (author, epoch, expiration, counts, digest);
 *        proofs and signatures given the right shape, their signatures not
 *   5    batches keep their fields but get the digest they should have
 *   6    as 3, for a batch fetched by BatchRequest (no sender)
 *   7    as 3, and proofs and signatures signed by the validators' keys
 * Only the first PF_MAX_REPAIRS proofs and signatures of an input are
 * repaired: each costs an Ed25519 verification, which would otherwise
 * dominate the run.
 * A repaired batch or proof that is expected to pass (or fail one named
 * rule) and does not aborts the run. The top 2 bits choose the frame limit
 * (limits.frame_max_bytes, from which the decode budget follows): the
 * default, 64 KiB, 4 KiB or 2 KiB; with the small ones a short input can
 * hit both the limit and the budget.
 */
#include "fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/proof.h"
#include "net/frame.h"
#include "net/peer.h"
#include "quorumstore/v1/peer.pb-c.h"

#define PF_CHAIN_ID    7u
#define PF_EPOCH       3u
#define PF_NOW_US      UINT64_C(1700000000000000)
#define PF_LIFETIME_US UINT64_C(60000000)
#define PF_N_VALS      4
#define PF_SENDER      1 /* the peer the frames come from */
#define PF_MAX_SIGNS   8 /* signatures made per input, at most */
#define PF_MAX_REPAIRS 8 /* proofs and signatures repaired per input */
#define PF_MAX_FRAME   (4u * 1024 * 1024 + 64 * 1024)

enum pf_repair {
	PF_RAW,
	PF_FIX,
	PF_FIX_DIGEST,
	PF_FIX_FETCHED,
	PF_FIX_SIGN,
};

enum pf_break {
	PF_BREAK_NONE,
	PF_BREAK_AUTHOR,
	PF_BREAK_EPOCH,
	PF_BREAK_EXPIRED,
	PF_BREAK_LIFETIME,
	PF_BREAK_COUNT,
	PF_BREAK_DIGEST,
};

struct pf_state {
	EVP_PKEY *priv[PF_N_VALS];
	uint8_t pub[PF_N_VALS][QS_PUBKEY_BYTES];
	struct qs_valset *vs;
	struct qs_limits limits;
	struct qs_batch_info own; /* the batch whose signatures are collected */
};

struct pf_input {
	enum pf_repair repair;
	enum pf_break brk;
	int signs_left;
	int repairs_left; /* each repaired proof or signature costs a verify */
	struct qs_proof_builder *builder;
};

static struct pf_state *pf_state;

static void
pf_init(void)
{
	static struct pf_state st;
	uint64_t powers[PF_N_VALS];

	for (int i = 0; i < PF_N_VALS; i++) {
		uint8_t seed[32];
		size_t len = QS_PUBKEY_BYTES;

		for (int j = 0; j < 32; j++)
			seed[j] = (uint8_t)(i * 31 + j + 1);
		st.priv[i] =
		    EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
		QS_FUZZ_CHECK(st.priv[i] != NULL, "make a key");
		QS_FUZZ_CHECK(EVP_PKEY_get_raw_public_key(st.priv[i], st.pub[i], &len) == 1,
		              "read a public key");
		powers[i] = 1;
	}
	QS_FUZZ_CHECK(qs_valset_new(PF_CHAIN_ID, PF_EPOCH, PF_N_VALS,
	                            (const uint8_t(*)[QS_PUBKEY_BYTES])st.pub, powers, &st.vs) == 0,
	              "make the validator set");
	st.limits.batch_max_txns = 2000;
	st.limits.batch_max_bytes = 1024 * 1024;
	st.limits.msg_max_batches = 20;
	st.limits.msg_max_bytes = 4 * 1024 * 1024;
	st.limits.frame_max_bytes = PF_MAX_FRAME;
	memcpy(st.own.author, st.pub[0], QS_PUBKEY_BYTES);
	st.own.batch_id = 1;
	st.own.epoch = PF_EPOCH;
	st.own.expiration_us = PF_NOW_US + PF_LIFETIME_US / 2;
	memset(st.own.digest, 0xd1, QS_DIGEST_BYTES);
	st.own.num_txns = 1;
	st.own.num_bytes = 1;
	pf_state = &st;
}

/* Sign `info` as validator `v` when the input may still sign; else zeros. */
static void
pf_sign(struct pf_input *in, int v, const struct qs_batch_info *info, uint8_t sig[QS_SIG_BYTES])
{
	memset(sig, 0, QS_SIG_BYTES);
	if (in->repair != PF_FIX_SIGN || in->signs_left <= 0)
		return;
	in->signs_left--;
	QS_FUZZ_CHECK(qs_codec_info_sign(pf_state->priv[v], PF_CHAIN_ID, info, sig) == 0, "sign");
}

/* The sum of the transaction lengths, saturating. */
static uint64_t
pf_txn_bytes(const Quorumstore__V1__Batch *b)
{
	uint64_t sum = 0;

	for (size_t i = 0; b->transactions && i < b->n_transactions; i++)
		sum = b->transactions[i].len > UINT64_MAX - sum ? UINT64_MAX
		                                                : sum + b->transactions[i].len;
	return sum;
}

/*
 * Fill *fixed from b->info, repaired as in->repair says, with author[] and
 * digest[] as the storage of its bytes fields. Returns the NackReason the
 * repaired batch must get, or -1 when the harness does not predict it.
 */
static int
pf_fix_batch(const struct pf_input *in, const uint8_t *sender, const Quorumstore__V1__Batch *b,
             Quorumstore__V1__BatchInfo *fixed, uint8_t author[QS_PUBKEY_BYTES],
             uint8_t digest[QS_DIGEST_BYTES])
{
	const struct qs_limits *lim = &pf_state->limits;
	uint64_t bytes = pf_txn_bytes(b);
	int expect = 0;

	if (b->info)
		*fixed = *b->info;
	else
		quorumstore__v1__batch_info__init(fixed);
	if (in->repair == PF_FIX_DIGEST) {
		if (fixed->author.len != QS_PUBKEY_BYTES || fixed->digest.len != QS_DIGEST_BYTES)
			return -1;
		memcpy(author, fixed->author.data, QS_PUBKEY_BYTES);
		if (qs_codec_batch_digest(PF_CHAIN_ID, author, fixed->epoch, fixed->batch_id,
		                          b->transactions, b->n_transactions, digest) != 0)
			return -1;
		fixed->digest.data = digest;
		return -1;
	}
	memcpy(author, sender ? sender : pf_state->pub[PF_SENDER], QS_PUBKEY_BYTES);
	fixed->author.data = author;
	fixed->author.len = QS_PUBKEY_BYTES;
	fixed->epoch = PF_EPOCH;
	fixed->expiration_us = PF_NOW_US + PF_LIFETIME_US / 2;
	fixed->num_txns = (uint32_t)b->n_transactions;
	fixed->num_bytes = bytes;
	memset(digest, 0, QS_DIGEST_BYTES);
	if (b->n_transactions <= UINT32_MAX)
		qs_codec_batch_digest(PF_CHAIN_ID, author, fixed->epoch, fixed->batch_id,
		                      b->transactions, b->n_transactions, digest);
	fixed->digest.data = digest;
	fixed->digest.len = QS_DIGEST_BYTES;

	if (b->n_transactions == 0)
		expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_EMPTY_BATCH;
	else if (b->n_transactions > lim->batch_max_txns)
		expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_TOO_MANY_TXNS;
	else if (bytes > lim->batch_max_bytes)
		expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_TOO_MANY_BYTES;

	switch (in->brk) {
	case PF_BREAK_AUTHOR:
		if (sender) {
			memcpy(author, pf_state->pub[(PF_SENDER + 1) % PF_N_VALS], QS_PUBKEY_BYTES);
			expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_WRONG_AUTHOR;
		}
		break;
	case PF_BREAK_EPOCH:
		fixed->epoch = PF_EPOCH + 1;
		expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_WRONG_EPOCH;
		break;
	case PF_BREAK_EXPIRED:
		fixed->expiration_us = PF_NOW_US;
		if (sender)
			expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_EXPIRED;
		break;
	case PF_BREAK_LIFETIME:
		fixed->expiration_us = PF_NOW_US + PF_LIFETIME_US + 1;
		if (sender)
			expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_BEYOND_LIFETIME;
		break;
	case PF_BREAK_COUNT:
		fixed->num_txns++;
		if (!expect)
			expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_COUNT_MISMATCH;
		break;
	case PF_BREAK_DIGEST:
		digest[0] ^= 1;
		if (!expect)
			expect = QUORUMSTORE__V1__NACK_REASON__NACK_REASON_BAD_DIGEST;
		break;
	default:
		break;
	}
	return expect;
}

/* One batch of a BatchMsg (sender set) or a BatchResponse (sender NULL). */
static void
pf_batch(const struct pf_input *in, const uint8_t *sender, Quorumstore__V1__Batch *b)
{
	struct qs_validate_ctx ctx = {
	    .chain_id = PF_CHAIN_ID,
	    .epoch = PF_EPOCH,
	    .now_us = PF_NOW_US,
	    .max_lifetime_us = PF_LIFETIME_US,
	    .limits = &pf_state->limits,
	};
	Quorumstore__V1__BatchInfo fixed, *sent = b->info;
	uint8_t author[QS_PUBKEY_BYTES], digest[QS_DIGEST_BYTES], check[QS_DIGEST_BYTES];
	struct qs_batch_info info;
	const char *detail = NULL;
	int expect = -1, reason;

	if (in->repair != PF_RAW) {
		expect = pf_fix_batch(in, sender, b, &fixed, author, digest);
		b->info = &fixed;
	}
	reason = qs_batch_validate(&ctx, sender, b, &info, &detail);
	b->info = sent;
	QS_FUZZ_CHECK(reason >= 0 && reason < QS_NACK_REASON_COUNT, "reason out of range");
	QS_FUZZ_CHECK(qs_nack_reason_name(reason) != NULL, "reason without a name");
	if (expect >= 0 && reason != expect) {
		fprintf(stderr, "batch: expected %s, got %s (%s)\n", qs_nack_reason_name(expect),
		        qs_nack_reason_name(reason), detail ? detail : "");
		QS_FUZZ_CHECK(0, "a repaired batch got another verdict");
	}
	if (reason != 0) {
		QS_FUZZ_CHECK(detail != NULL, "a refusal without detail");
		return;
	}
	QS_FUZZ_CHECK(info.num_txns == b->n_transactions, "accepted with another num_txns");
	QS_FUZZ_CHECK(info.num_bytes == pf_txn_bytes(b), "accepted with another num_bytes");
	QS_FUZZ_CHECK(qs_codec_batch_digest(PF_CHAIN_ID, info.author, info.epoch, info.batch_id,
	                                    b->transactions, b->n_transactions, check) == 0 &&
	                  memcmp(check, info.digest, QS_DIGEST_BYTES) == 0,
	              "accepted with a wrong digest");
	QS_FUZZ_CHECK(!sender || memcmp(info.author, sender, QS_PUBKEY_BYTES) == 0,
	              "accepted from another author");
}

static void
pf_batch_msg(const struct pf_input *in, Quorumstore__V1__BatchMsg *bm)
{
	const struct qs_limits *lim = &pf_state->limits;
	uint64_t total = 0;

	/* daemon/ingest.c closes the connection for these before validating. */
	if (bm->n_batches > lim->msg_max_batches)
		return;
	for (size_t i = 0; i < bm->n_batches; i++)
		for (size_t t = 0; t < bm->batches[i]->n_transactions; t++)
			total += bm->batches[i]->transactions[t].len;
	if (total > lim->msg_max_bytes)
		return;
	for (size_t i = 0; i < bm->n_batches; i++)
		pf_batch(in, in->repair == PF_FIX_FETCHED ? NULL : pf_state->pub[PF_SENDER],
		         bm->batches[i]);
}

static int
pf_popcount(uint8_t bits)
{
	int n = 0;

	for (; bits; bits &= (uint8_t)(bits - 1))
		n++;
	return n;
}

static void
pf_proof(struct pf_input *in, Quorumstore__V1__ProofOfStore *p)
{
	Quorumstore__V1__BatchInfo fixed, *sent_info = p->info;
	ProtobufCBinaryData sent_bitmap = p->signer_bitmap, *sent_sigs = p->signatures;
	size_t sent_n_sigs = p->n_signatures, n_sigs = 0;
	uint8_t author[QS_PUBKEY_BYTES], digest[QS_DIGEST_BYTES], bitmap = 0x0f;
	uint8_t sigs[PF_N_VALS][QS_SIG_BYTES];
	ProtobufCBinaryData sig_fields[PF_N_VALS];
	struct qs_batch_info info, fixed_info;
	int r, expect = -1, all_signed = 1;

	if (in->repair != PF_RAW && in->repair != PF_FIX_DIGEST && in->repairs_left-- > 0) {
		if (p->info)
			fixed = *p->info;
		else
			quorumstore__v1__batch_info__init(&fixed);
		memcpy(author, pf_state->pub[fixed.batch_id % PF_N_VALS], QS_PUBKEY_BYTES);
		fixed.author.data = author;
		fixed.author.len = QS_PUBKEY_BYTES;
		memset(digest, 0xd2, sizeof(digest));
		if (fixed.digest.len == QS_DIGEST_BYTES)
			memcpy(digest, fixed.digest.data, QS_DIGEST_BYTES);
		fixed.digest.data = digest;
		fixed.digest.len = QS_DIGEST_BYTES;
		fixed.epoch = PF_EPOCH;
		fixed.expiration_us = PF_NOW_US + PF_LIFETIME_US / 2;
		if (p->signer_bitmap.len)
			bitmap = p->signer_bitmap.data[0] & 0x0f;
		QS_FUZZ_CHECK(qs_batch_info_from_pb(&fixed, &fixed_info) == 0, "repaired info");
		for (int v = 0; v < PF_N_VALS; v++) {
			if (!(bitmap & (1u << v)))
				continue;
			if (in->repair == PF_FIX_SIGN && in->signs_left > 0) {
				pf_sign(in, v, &fixed_info, sigs[n_sigs]);
			} else {
				all_signed = 0;
				memset(sigs[n_sigs], 0, QS_SIG_BYTES);
				if (n_sigs < p->n_signatures &&
				    p->signatures[n_sigs].len == QS_SIG_BYTES)
					memcpy(sigs[n_sigs], p->signatures[n_sigs].data,
					       QS_SIG_BYTES);
			}
			sig_fields[n_sigs].data = sigs[n_sigs];
			sig_fields[n_sigs].len = QS_SIG_BYTES;
			n_sigs++;
		}
		if (in->repair == PF_FIX_SIGN && all_signed) {
			expect = pf_popcount(bitmap) * 3 > 2 * PF_N_VALS ? QS_PROOF_OK
			                                                 : QS_PROOF_NO_QUORUM;
			if (expect == QS_PROOF_OK && in->brk == PF_BREAK_DIGEST) {
				sigs[n_sigs - 1][0] ^= 1;
				expect = QS_PROOF_BAD_SIGNATURE;
			}
		}
		p->info = &fixed;
		p->signer_bitmap.data = &bitmap;
		p->signer_bitmap.len = 1;
		p->signatures = n_sigs ? sig_fields : NULL;
		p->n_signatures = n_sigs;
	}
	r = qs_proof_verify(pf_state->vs, PF_NOW_US, p, &info);
	p->info = sent_info;
	p->signer_bitmap = sent_bitmap;
	p->signatures = sent_sigs;
	p->n_signatures = sent_n_sigs;
	QS_FUZZ_CHECK(r >= 0 && r < QS_PROOF_REASON_COUNT, "proof reason out of range");
	if (expect >= 0 && r != expect) {
		fprintf(stderr, "proof: expected %s, got %s\n", qs_proof_reason_names[expect],
		        qs_proof_reason_names[r]);
		QS_FUZZ_CHECK(0, "a repaired proof got another verdict");
	}
	if (r == QS_PROOF_OK)
		QS_FUZZ_CHECK(qs_valset_index(pf_state->vs, info.author) >= 0,
		              "a proof accepted from an unknown author");
}

static void
pf_signed_info(struct pf_input *in, Quorumstore__V1__SignedBatchInfo *sbi)
{
	Quorumstore__V1__SignedBatchInfo fixed;
	Quorumstore__V1__BatchInfo own_pb;
	uint8_t sig[QS_SIG_BYTES];
	int v = 0, r, expect = -1;

	if (in->repair == PF_RAW || in->repair == PF_FIX_DIGEST || in->repairs_left-- <= 0) {
		r = qs_proof_builder_add_pb(in->builder, sbi);
	} else {
		fixed = *sbi;
		if (sbi->signer.len)
			v = sbi->signer.data[0] % PF_N_VALS;
		qs_batch_info_to_pb(&pf_state->own, &own_pb);
		fixed.info = &own_pb;
		fixed.signer.data = pf_state->pub[v];
		fixed.signer.len = QS_PUBKEY_BYTES;
		if (in->repair == PF_FIX_SIGN && in->signs_left > 0) {
			pf_sign(in, v, &pf_state->own, sig);
			expect = QS_PROOF_SIG_ADDED;
		} else if (sbi->signature.len == QS_SIG_BYTES) {
			memcpy(sig, sbi->signature.data, QS_SIG_BYTES);
		} else {
			memset(sig, 0, sizeof(sig));
		}
		fixed.signature.data = sig;
		fixed.signature.len = QS_SIG_BYTES;
		r = qs_proof_builder_add_pb(in->builder, &fixed);
		if (expect == QS_PROOF_SIG_ADDED)
			QS_FUZZ_CHECK(r == QS_PROOF_SIG_ADDED || r == QS_PROOF_SIG_DUPLICATE,
			              "a right signature not counted");
	}
	QS_FUZZ_CHECK(r >= 0 && r < QS_PROOF_SIG_COUNT, "signature outcome out of range");
	QS_FUZZ_CHECK(qs_proof_builder_signers(in->builder) <= PF_N_VALS,
	              "more signers than validators");
	if (qs_proof_builder_has_quorum(in->builder)) {
		Quorumstore__V1__ProofOfStore proof;

		QS_FUZZ_CHECK(qs_proof_builder_build(in->builder, &proof) == 0,
		              "no proof from a quorum");
		QS_FUZZ_CHECK(qs_proof_verify(pf_state->vs, PF_NOW_US, &proof, NULL) == QS_PROOF_OK,
		              "a built proof does not verify");
	}
}

static void
pf_message(struct pf_input *in, Quorumstore__V1__PeerMessage *msg)
{
	switch (msg->msg_case) {
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_MSG:
		pf_batch_msg(in, msg->batch_msg);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_SIGNED_BATCH_INFO_MSG:
		if (!in->builder)
			QS_FUZZ_CHECK(
			    qs_proof_builder_new(pf_state->vs, &pf_state->own, &in->builder) == 0,
			    "make a proof builder");
		for (size_t i = 0; i < msg->signed_batch_info_msg->n_infos; i++)
			pf_signed_info(in, msg->signed_batch_info_msg->infos[i]);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_PROOF_MSG:
		for (size_t i = 0; i < msg->proof_msg->n_proofs; i++)
			pf_proof(in, msg->proof_msg->proofs[i]);
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_NACK:
		QS_FUZZ_CHECK(qs_nack_reason_name(msg->batch_nack->reason) != NULL, "nack name");
		break;
	case QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE:
		if (msg->batch_response->result_case ==
		    QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH) {
			struct pf_input fetched = *in;

			if (fetched.repair != PF_RAW && fetched.repair != PF_FIX_DIGEST)
				fetched.repair = PF_FIX_FETCHED;
			pf_batch(&fetched, NULL, msg->batch_response->batch);
		}
		break;
	default:
		break;
	}
}

int
qs_fuzz_peer_frame(const uint8_t *data, size_t size)
{
	static const enum pf_repair repairs[8] = {
	    PF_RAW, PF_RAW, PF_RAW, PF_FIX, PF_FIX, PF_FIX_DIGEST, PF_FIX_FETCHED, PF_FIX_SIGN};
	static const size_t frame_limits[4] = {PF_MAX_FRAME, 65536, 4096, 2048};
	struct pf_input in = {.signs_left = PF_MAX_SIGNS, .repairs_left = PF_MAX_REPAIRS};
	size_t frame_max;
	struct evbuffer *buf = NULL;
	ProtobufCMessage *m;
	char why[256];
	size_t before;
	int rc;

	if (!pf_state)
		pf_init();
	if (size < 1)
		goto out;
	in.repair = repairs[data[0] & 7];
	in.brk = (enum pf_break)((data[0] >> 3) & 7);
	if (in.brk > PF_BREAK_DIGEST)
		in.brk = PF_BREAK_NONE;
	frame_max = frame_limits[data[0] >> 6];
	buf = evbuffer_new();
	QS_FUZZ_CHECK(buf != NULL, "evbuffer_new");
	QS_FUZZ_CHECK(evbuffer_add(buf, data + 1, size - 1) == 0, "evbuffer_add");
	for (;;) {
		before = evbuffer_get_length(buf);
		rc = qs_frame_read(buf, frame_max, &quorumstore__v1__peer_message__descriptor,
		                   QS_PEER_DECODE_BUDGET(frame_max), &m);
		if (rc != 1)
			break;
		pf_message(&in, (Quorumstore__V1__PeerMessage *)m);
		qs_frame_msg_free(m);
	}
	if (rc < 0) {
		QS_FUZZ_CHECK(rc == QS_EDECODE || rc == QS_ELIMIT, "unexpected read error");
		qs_frame_read_failure(rc, buf, before, frame_max, why, sizeof(why));
	}
out:
	if (buf)
		evbuffer_free(buf);
	qs_proof_builder_free(in.builder);
	return 0;
}

#ifndef QS_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return qs_fuzz_peer_frame(data, size);
}
#endif
