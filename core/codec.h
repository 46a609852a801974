/*
 * Canonical encodings of qsd's protocol, version 1 (docs/PROTOCOL.md).
 *
 * Digests and signatures are computed over these byte strings, never over
 * protobuf bytes, which are not canonical. All integers are big-endian.
 * Pure functions: no I/O, no global state.
 */
#ifndef QS_CORE_CODEC_H
#define QS_CORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#define QS_PROTOCOL_VERSION 1
#define QS_DIGEST_BYTES     32
#define QS_PUBKEY_BYTES     32
#define QS_SIG_BYTES        64

#define QS_DIGEST_DOMAIN "qsd/v1/batch"
#define QS_SIGN_DOMAIN   "qsd/v1/batch-info"

/* The signed fields of a BatchInfo, in host form. */
struct qs_batch_info {
	uint8_t author[QS_PUBKEY_BYTES];
	uint64_t batch_id;
	uint64_t epoch;
	uint64_t expiration_us;
	uint8_t digest[QS_DIGEST_BYTES];
	uint32_t num_txns;
	uint64_t num_bytes;
	uint64_t gas_bucket_start;
};

/* Length of the signing encoding of a BatchInfo. */
#define QS_INFO_SIGNING_BYTES                                                                      \
	(sizeof(QS_SIGN_DOMAIN) + 4 + QS_PUBKEY_BYTES + 8 + 8 + 8 + QS_DIGEST_BYTES + 4 + 8 + 8)

/*
 * Compute a batch digest: SHA-256 of "qsd/v1/batch" 0x00 chain_id(u32)
 * author(32) epoch(u64) batch_id(u64) count(u32) then per transaction
 * len(u32) bytes. Returns 0, QS_ELIMIT when a count or length does not fit
 * in u32, or QS_ECRYPTO.
 */
int qs_codec_batch_digest(uint32_t chain_id, const uint8_t author[QS_PUBKEY_BYTES], uint64_t epoch,
                          uint64_t batch_id, const ProtobufCBinaryData *txns, size_t n_txns,
                          uint8_t digest[QS_DIGEST_BYTES]);

/*
 * Write the signing encoding of `info` into out (QS_INFO_SIGNING_BYTES):
 * "qsd/v1/batch-info" 0x00 chain_id(u32) author(32) epoch(u64) batch_id(u64)
 * expiration_us(u64) digest(32) num_txns(u32) num_bytes(u64)
 * gas_bucket_start(u64).
 */
void qs_codec_info_signing_bytes(uint32_t chain_id, const struct qs_batch_info *info,
                                 uint8_t out[QS_INFO_SIGNING_BYTES]);

/*
 * Parse a signing encoding (as stored in the infos column family) back into
 * *info and *chain_id. Returns 0 or QS_EDECODE (wrong length or domain).
 */
int qs_codec_info_parse(const uint8_t *buf, size_t len, uint32_t *chain_id,
                        struct qs_batch_info *info);

/*
 * The transaction section of the canonical encoding: count(u32), then per
 * transaction len(u32) bytes. This is how payloads are stored.
 * qs_codec_txns_size() gives its length (0 if a count or length does not fit
 * in u32); qs_codec_txns_parse() splits a section into at most max_txns
 * slices pointing into buf (*txns is allocated, the caller frees it) and
 * returns 0, QS_ELIMIT (over max_txns) or QS_EDECODE (lengths inconsistent
 * with len).
 */
uint64_t qs_codec_txns_size(const ProtobufCBinaryData *txns, size_t n_txns);
int qs_codec_txns_parse(const uint8_t *buf, size_t len, size_t max_txns, ProtobufCBinaryData **txns,
                        size_t *n_txns);

/* Sign `info` with the Ed25519 private key `key` (not consumed). */
int qs_codec_info_sign(EVP_PKEY *key, uint32_t chain_id, const struct qs_batch_info *info,
                       uint8_t sig[QS_SIG_BYTES]);

/*
 * A signer for one thread that signs often: the key is expanded once
 * (libsodium's secret key, wiped when freed) instead of for each signature.
 */
struct qs_signer;
/* Returns NULL when out of memory or when the key cannot sign. */
struct qs_signer *qs_signer_new(EVP_PKEY *key);
void qs_signer_free(struct qs_signer *s);
/* As qs_codec_info_sign with the signer's key. */
int qs_signer_sign(struct qs_signer *s, uint32_t chain_id, const struct qs_batch_info *info,
                   uint8_t sig[QS_SIG_BYTES]);

/* Verify a signature over `info` by the raw Ed25519 public key `signer`.
 * Returns 0 when valid, QS_EBADSIG when not, QS_ECRYPTO on library failure. */
int qs_codec_info_verify(const uint8_t signer[QS_PUBKEY_BYTES], uint32_t chain_id,
                         const struct qs_batch_info *info, const uint8_t sig[QS_SIG_BYTES]);

/* Encode / decode big-endian integers. */
static inline void
qs_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
qs_put_be64(uint8_t *p, uint64_t v)
{
	qs_put_be32(p, (uint32_t)(v >> 32));
	qs_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t
qs_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
qs_get_be64(const uint8_t *p)
{
	return (uint64_t)qs_get_be32(p) << 32 | qs_get_be32(p + 4);
}

#endif
