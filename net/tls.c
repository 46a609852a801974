/*
 * TLS 1.3 contexts whose peers are authenticated by pinned Ed25519 keys
 * (see net/tls.h). OpenSSL's errors are turned into QS_E* codes and one line
 * of text here, where they enter.
 */
#include "net/tls.h"

#include "core/error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#define QS_TLS_CERT_CN             "qsd"
#define QS_TLS_CERT_BACKDATE_S     (60 * 60)  /* notBefore: an hour ago */
#define QS_TLS_CERT_DAYS           (10 * 365) /* notAfter: ten years on */
#define QS_TLS_SERIAL_BYTES        16
/* A peer's certificate list is one small self-signed certificate; refuse
 * anything much larger before parsing it (OpenSSL's default is 100 KiB). */
#define QS_TLS_MAX_CERT_LIST_BYTES (16 * 1024)

/* The pin function of a context, kept in its ex_data. */
struct qs_tls_pin {
	qs_tls_pin_fn fn;
	void *arg;
};

static pthread_once_t qs_tls_once = PTHREAD_ONCE_INIT;
static int qs_tls_ctx_pin_idx = -1;    /* SSL_CTX: struct qs_tls_pin * */
static int qs_tls_ssl_peer_idx = -1;   /* SSL: peer index + 1, as a pointer */
static int qs_tls_ssl_reason_idx = -1; /* SSL: static reason string */

static void qs_tls_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
qs_tls_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	char ssl_text[256] = "";
	unsigned long e = ERR_peek_last_error();
	size_t n;
	va_list ap;

	if (err == NULL || errlen == 0)
		goto out;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (e != 0) {
		ERR_error_string_n(e, ssl_text, sizeof(ssl_text));
		n = strlen(err);
		if (n < errlen)
			snprintf(err + n, errlen - n, ": %s", ssl_text);
	}
out:
	ERR_clear_error();
}

static void
qs_tls_pin_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void
qs_tls_init_indexes(void)
{
	qs_tls_ctx_pin_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, qs_tls_pin_free);
	qs_tls_ssl_peer_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	qs_tls_ssl_reason_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int
qs_tls_indexes(void)
{
	if (pthread_once(&qs_tls_once, qs_tls_init_indexes) != 0)
		return QS_ECRYPTO;
	if (qs_tls_ctx_pin_idx < 0 || qs_tls_ssl_peer_idx < 0 || qs_tls_ssl_reason_idx < 0)
		return QS_ECRYPTO;
	return 0;
}

/* Record the first reason this side refused the peer. */
static void
qs_tls_refuse(SSL *ssl, const char *reason)
{
	if (SSL_get_ex_data(ssl, qs_tls_ssl_reason_idx) == NULL)
		SSL_set_ex_data(ssl, qs_tls_ssl_reason_idx, (void *)reason);
}

/*
 * Verify callback. There is no trust store, so OpenSSL reports the peer's
 * self-signed certificate as untrusted; that is expected and forgiven only
 * once the certificate's key passed the pin. Anything else fails.
 */
static int
qs_tls_verify(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	uint8_t raw[QS_TLS_KEY_BYTES];
	size_t raw_len = sizeof(raw);
	struct qs_tls_pin *pin;
	X509 *cert;
	EVP_PKEY *key;
	int idx;

	if (ssl == NULL)
		return 0;
	if (X509_STORE_CTX_get_error_depth(store) != 0)
		return preverify_ok;
	cert = X509_STORE_CTX_get_current_cert(store);
	key = cert != NULL ? X509_get0_pubkey(cert) : NULL;
	if (key == NULL || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(key, raw, &raw_len) != 1 || raw_len != sizeof(raw)) {
		qs_tls_refuse(ssl, "not_ed25519");
		return 0;
	}
	pin = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), qs_tls_ctx_pin_idx);
	idx = pin != NULL ? pin->fn(pin->arg, raw) : -1;
	if (idx < 0) {
		qs_tls_refuse(ssl, "unknown_key");
		return 0;
	}
	SSL_set_ex_data(ssl, qs_tls_ssl_peer_idx, (void *)((intptr_t)idx + 1));
	if (preverify_ok)
		return 1;
	switch (X509_STORE_CTX_get_error(store)) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		X509_STORE_CTX_set_error(store, X509_V_OK);
		return 1;
	default:
		SSL_set_ex_data(ssl, qs_tls_ssl_peer_idx, NULL);
		return 0;
	}
}

/*
 * Info callback: a server that got no client certificate aborts with a
 * certificate_required alert without calling the verify callback, so the
 * reason is recorded when that alert is written.
 */
static void
qs_tls_info(const SSL *ssl, int where, int ret)
{
	if (!(where & SSL_CB_WRITE_ALERT) || (ret & 0xff) != SSL_AD_CERTIFICATE_REQUIRED)
		return;
	/* OpenSSL hands the callback a const SSL, but ex_data is meant to be
	 * set from callbacks; the object is not const. */
	qs_tls_refuse((SSL *)ssl, "no_certificate");
}

/* A self-signed X.509 v3 certificate for `key`; sets *out on success. */
static int
qs_tls_make_cert(EVP_PKEY *key, X509 **out, char *err, size_t errlen)
{
	unsigned char serial[QS_TLS_SERIAL_BYTES];
	BIGNUM *bn = NULL;
	X509_NAME *name;
	X509 *cert;
	int rc = QS_ECRYPTO;

	cert = X509_new();
	if (cert == NULL) {
		qs_tls_set_err(err, errlen, "tls: X509_new failed");
		goto out;
	}
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		qs_tls_set_err(err, errlen, "tls: no random serial");
		goto out;
	}
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x40; /* and of full length */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	name = X509_get_subject_name(cert);
	if (bn == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -QS_TLS_CERT_BACKDATE_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), QS_TLS_CERT_DAYS, 0, NULL) == NULL ||
	    name == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)QS_TLS_CERT_CN, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(cert, name) != 1 || X509_set_pubkey(cert, key) != 1) {
		qs_tls_set_err(err, errlen, "tls: cannot build the certificate");
		goto out;
	}
	/* Ed25519 signs the message itself: no digest. */
	if (X509_sign(cert, key, NULL) <= 0) {
		qs_tls_set_err(err, errlen, "tls: cannot self-sign the certificate");
		goto out;
	}
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	BN_free(bn);
	X509_free(cert);
	return rc;
}

int
qs_tls_ctx_new(EVP_PKEY *network_key, int is_server, qs_tls_pin_fn pin, void *pin_arg,
               SSL_CTX **out, char *err, size_t errlen)
{
	struct qs_tls_pin *pin_data = NULL;
	SSL_CTX *ctx = NULL;
	X509 *cert = NULL;
	int rc;

	rc = qs_tls_indexes();
	if (rc != 0) {
		qs_tls_set_err(err, errlen, "tls: cannot register ex_data indexes");
		goto out;
	}
	if (network_key == NULL || EVP_PKEY_get_id(network_key) != EVP_PKEY_ED25519 ||
	    pin == NULL) {
		rc = QS_EKEY;
		qs_tls_set_err(err, errlen, "tls: the network key is not an Ed25519 key");
		goto out;
	}
	rc = qs_tls_make_cert(network_key, &cert, err, errlen);
	if (rc != 0)
		goto out;
	rc = QS_ECRYPTO;
	ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		qs_tls_set_err(err, errlen, "tls: SSL_CTX_new failed");
		goto out;
	}
	pin_data = malloc(sizeof(*pin_data));
	if (pin_data == NULL) {
		qs_tls_set_err(err, errlen, "tls: out of memory");
		goto out;
	}
	pin_data->fn = pin;
	pin_data->arg = pin_arg;
	if (SSL_CTX_set_ex_data(ctx, qs_tls_ctx_pin_idx, pin_data) != 1) {
		qs_tls_set_err(err, errlen, "tls: cannot attach the pin");
		goto out;
	}
	pin_data = NULL; /* freed with the context */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		qs_tls_set_err(err, errlen, "tls: TLS 1.3 is not available");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET |
	                             SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* libevent may retry a write from a moved buffer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_max_cert_list(ctx, QS_TLS_MAX_CERT_LIST_BYTES);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1 ||
	    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME) != 1) {
		qs_tls_set_err(err, errlen, "tls: cannot configure the context");
		goto out;
	}
	if (SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, network_key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		qs_tls_set_err(err, errlen, "tls: cannot use the network key");
		goto out;
	}
	SSL_CTX_set_verify(
	    ctx, is_server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
	    qs_tls_verify);
	SSL_CTX_set_info_callback(ctx, qs_tls_info);
	*out = ctx;
	ctx = NULL;
	rc = 0;
out:
	free(pin_data);
	SSL_CTX_free(ctx);
	X509_free(cert);
	return rc;
}

int
qs_tls_peer_index(SSL *ssl)
{
	intptr_t v;

	if (ssl == NULL || qs_tls_indexes() != 0)
		return -1;
	v = (intptr_t)SSL_get_ex_data(ssl, qs_tls_ssl_peer_idx);
	return v > 0 && v <= INT32_MAX ? (int)(v - 1) : -1;
}

const char *
qs_tls_failure_reason(SSL *ssl)
{
	if (ssl == NULL || qs_tls_indexes() != 0)
		return NULL;
	return SSL_get_ex_data(ssl, qs_tls_ssl_reason_idx);
}
