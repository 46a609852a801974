#include "daemon/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/error.h"

/* The reason of OpenSSL's most recent error, for messages; never NULL. */
static const char *
qs_keys_ssl_reason(void)
{
	const char *s = ERR_reason_error_string(ERR_peek_last_error());

	return s ? s : "unknown reason";
}

static int
qs_keys_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync the directory holding `path`, so a newly created entry is durable. */
static int
qs_keys_sync_dir(const char *path)
{
	char *dir;
	char *slash;
	int fd = -1;
	int rc;

	dir = strdup(path);
	if (!dir) {
		rc = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = fsync(fd) < 0 ? -errno : 0;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int
qs_keys_generate(const char *path, uint8_t pub[QS_KEYS_PUB_BYTES])
{
	uint8_t raw[QS_KEYS_PUB_BYTES];
	size_t raw_len = sizeof(raw);
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	long pem_len;
	bool created = false;
	int fd = -1;
	int rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	created = true;

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey || EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1 ||
	    raw_len != sizeof(raw)) {
		rc = QS_ECRYPTO;
		goto out;
	}
	/* A secure-memory BIO wipes every buffer it held when it grows or is freed. */
	bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = QS_ECRYPTO;
		goto out;
	}
	pem_len = BIO_get_mem_data(bio, &pem);
	if (pem_len <= 0) {
		rc = QS_ECRYPTO;
		goto out;
	}

	rc = qs_keys_write_all(fd, pem, (size_t)pem_len);
	if (rc)
		goto out;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	rc = close(fd) < 0 ? -errno : 0;
	fd = -1;
	if (rc)
		goto out;
	rc = qs_keys_sync_dir(path);
	if (rc)
		goto out;
	memcpy(pub, raw, sizeof(raw));
out:
	if (fd >= 0)
		close(fd);
	/* Never leave a partial key behind: a retry would be refused with EEXIST. */
	if (rc && created)
		unlink(path);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	if (rc == QS_ECRYPTO)
		ERR_clear_error();
	return rc;
}

/* PEM passphrase callback: never prompt (a daemon has no terminal). */
static int
qs_keys_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	*(bool *)u = true;
	return -1;
}

int
qs_keys_load(const char *path, EVP_PKEY **out, uint8_t pub[QS_KEYS_PUB_BYTES], char *err,
             size_t errlen)
{
	uint8_t raw[QS_KEYS_PUB_BYTES];
	size_t raw_len = sizeof(raw);
	bool encrypted = false;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *type;
	struct stat st;
	int fd = -1;
	int rc;

	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		qs_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		qs_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = QS_EKEY;
		qs_errf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = QS_EKEY;
		qs_errf(err, errlen,
		        "%s: mode %04o lets group or others access the key; run chmod 600 %s", path,
		        (unsigned int)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > QS_KEYS_MAX_FILE_BYTES) {
		rc = QS_EKEY;
		qs_errf(err, errlen, "%s: %lld bytes, more than a key file holds (%d)", path,
		        (long long)st.st_size, QS_KEYS_MAX_FILE_BYTES);
		goto out;
	}

	/* One byte more than the limit tells a file that grew since fstat. */
	buf = OPENSSL_malloc(QS_KEYS_MAX_FILE_BYTES + 1);
	if (!buf) {
		rc = -ENOMEM;
		qs_errf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (len < QS_KEYS_MAX_FILE_BYTES + 1) {
		ssize_t n = read(fd, buf + len, QS_KEYS_MAX_FILE_BYTES + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			qs_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > QS_KEYS_MAX_FILE_BYTES) {
		rc = QS_EKEY;
		qs_errf(err, errlen, "%s: more than %d bytes, more than a key file holds", path,
		        QS_KEYS_MAX_FILE_BYTES);
		goto out;
	}
	if (len == 0) {
		rc = QS_EKEY;
		qs_errf(err, errlen, "%s: empty file, expected a PEM Ed25519 private key", path);
		goto out;
	}

	bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio) {
		rc = QS_ECRYPTO;
		qs_errf(err, errlen, "%s: %s", path, qs_keys_ssl_reason());
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, qs_keys_no_passphrase, &encrypted);
	if (!pkey) {
		rc = QS_EKEY;
		if (encrypted)
			qs_errf(err, errlen,
			        "%s: the key is encrypted; qsd needs an unencrypted PEM key "
			        "(mode 0600 protects it)",
			        path);
		else
			qs_errf(err, errlen, "%s: no PEM private key found (%s)", path,
			        qs_keys_ssl_reason());
		goto out;
	}
	if (!EVP_PKEY_is_a(pkey, "ED25519")) {
		type = EVP_PKEY_get0_type_name(pkey);
		rc = QS_EKEY;
		qs_errf(err, errlen, "%s: %s key, expected an Ed25519 key", path,
		        type ? type : "unknown");
		goto out;
	}
	if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1 || raw_len != sizeof(raw)) {
		rc = QS_ECRYPTO;
		qs_errf(err, errlen, "%s: cannot get the public key (%s)", path,
		        qs_keys_ssl_reason());
		goto out;
	}

	memcpy(pub, raw, sizeof(raw));
	*out = pkey;
	pkey = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	BIO_free(bio);
	if (buf)
		OPENSSL_clear_free(buf, len);
	EVP_PKEY_free(pkey);
	if (rc)
		ERR_clear_error();
	return rc;
}
