/*
 * TLS 1.3 with mutual authentication pinned to Ed25519 network keys.
 *
 * Each side presents a certificate made at start-up from its network key,
 * self-signed (CN "qsd", a random serial, valid from an hour ago for ten
 * years). There is no CA: a peer is accepted when the raw Ed25519 public key
 * of its certificate is one the pin function knows, and refused during the
 * handshake (with an alert) otherwise. The certificate is only a carrier for
 * the key, so its dates are not checked (X509_V_FLAG_NO_CHECK_TIME): a peer's
 * clock an hour off would otherwise cut it off, and the pin is the trust.
 * The TLS handshake's CertificateVerify proves the peer holds the key.
 *
 * Sessions are never resumed (no tickets, no session cache), so every
 * connection presents and checks a certificate.
 */
#ifndef QS_NET_TLS_H
#define QS_NET_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#define QS_TLS_KEY_BYTES 32

/*
 * Returns the index (>= 0) of the validator whose network key is `key`, or
 * -1 to refuse it. Called on the thread doing the handshake, possibly several
 * times per handshake; must give the same answer each time.
 */
typedef int (*qs_tls_pin_fn)(void *arg, const uint8_t key[QS_TLS_KEY_BYTES]);

/*
 * Make an SSL_CTX for TLS 1.3 only that presents a certificate self-signed
 * with the Ed25519 key `network_key` (borrowed; the context takes its own
 * reference) and requires the peer's certificate key to pass `pin`
 * (`pin_arg` must outlive the context). A server context requires a client
 * certificate (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT). Sets
 * SSL_OP_IGNORE_UNEXPECTED_EOF (the framing detects truncation).
 * Returns 0 and *out (free with SSL_CTX_free()), QS_EKEY when `network_key`
 * is not an Ed25519 private key, or QS_ECRYPTO; on failure writes one line
 * into err (errlen bytes, err may be NULL).
 */
int qs_tls_ctx_new(EVP_PKEY *network_key, int is_server, qs_tls_pin_fn pin, void *pin_arg,
                   SSL_CTX **out, char *err, size_t errlen);

/* After a completed handshake on an SSL made from a qs_tls_ctx_new()
 * context: the index the pin function returned for the peer's key, or -1. */
int qs_tls_peer_index(SSL *ssl);

/*
 * Why this side refused the peer during the handshake, as a metric label:
 * "unknown_key" (the pin refused the key), "not_ed25519" (the certificate
 * key is of another type), "no_certificate" (a client sent none), or NULL
 * when this side refused nothing (the handshake failed for another reason,
 * or the other side refused us).
 */
const char *qs_tls_failure_reason(SSL *ssl);

#endif
