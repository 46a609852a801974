/*
 * The node's own Ed25519 private keys (network key for TLS, signing key for
 * batch signatures), stored as PEM PKCS#8 files, as
 * `openssl genpkey -algorithm ed25519` writes them.
 *
 * A key file must be a regular file of at most QS_KEYS_MAX_FILE_BYTES with no
 * group or other permission bits; anything else is refused, so a key that
 * others could read is never used.
 */
#ifndef QS_DAEMON_KEYS_H
#define QS_DAEMON_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define QS_KEYS_PUB_BYTES      32
#define QS_KEYS_MAX_FILE_BYTES (64 * 1024)

/*
 * Create a new Ed25519 key and write it as PEM PKCS#8 to a new file `path`
 * with mode 0600 (less if the umask says so); an existing file is never
 * overwritten. The file and its directory are fsynced before returning, so
 * the key survives a crash once this returns 0. Sets `pub` to the raw public
 * key.
 * Returns 0; -EEXIST if `path` exists; another -errno if the file cannot be
 * created or written (a partly written file is removed); QS_ECRYPTO if
 * OpenSSL fails.
 */
int qs_keys_generate(const char *path, uint8_t pub[QS_KEYS_PUB_BYTES]);

/*
 * Read the Ed25519 private key in the PEM file `path`. On success sets *out
 * to the key, which the caller frees with EVP_PKEY_free(), and `pub` to its
 * raw public key.
 * Returns 0; -errno if the file cannot be opened or read; QS_EKEY if it is
 * not a regular file, is readable or writable by group or others, is larger
 * than QS_KEYS_MAX_FILE_BYTES, holds no unencrypted PEM private key, or holds
 * a key of another type. On failure writes one line naming `path` and the
 * reason into `err` (errlen bytes; err may be NULL).
 */
int qs_keys_load(const char *path, EVP_PKEY **out, uint8_t pub[QS_KEYS_PUB_BYTES], char *err,
                 size_t errlen);

#endif
