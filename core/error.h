/*
 * Error codes shared by every module.
 *
 * Functions return 0 on success, -errno for system errors, or one of the
 * QS_E* codes below (all <= -10000) for qsd's own.
 */
#ifndef QS_CORE_ERROR_H
#define QS_CORE_ERROR_H

#include <stddef.h>

enum {
	QS_EBASE = -10000,
	QS_ECONFIG = -10001,    /* invalid configuration */
	QS_EKEY = -10002,       /* unusable key file or key material */
	QS_ECRYPTO = -10003,    /* a cryptographic library call failed */
	QS_ESTORE = -10004,     /* storage engine error (logged with its text) */
	QS_ESCHEMA = -10005,    /* on-disk schema version newer than this build */
	QS_ENOSPACE = -10006,   /* storage full */
	QS_EIO = -10007,        /* storage I/O error: fail-stop */
	QS_ECORRUPT = -10008,   /* storage corruption: fail-stop */
	QS_EDECODE = -10009,    /* undecodable message */
	QS_ELIMIT = -10010,     /* a length or count over its limit */
	QS_EBADSIG = -10011,    /* signature does not verify */
	QS_EBADDIGEST = -10012, /* digest does not match the content */
	QS_ENOTFOUND = -10013,  /* no such item */
	QS_EEXISTS = -10014,    /* already present */
	QS_ESHUTDOWN = -10015,  /* the stage is shutting down */
	QS_EQUEUEFULL = -10016, /* a bounded queue is full */
	QS_EFAILED = -10017,    /* storage is fail-stopped */
	QS_ELAST = -10018,
};

/* A static string naming `err` (a -errno or QS_E* value); never NULL. */
const char *qs_strerror(int err);

/*
 * Format a message into the caller's buffer `err` of `errlen` bytes, as
 * snprintf() does (truncated, always terminated). Does nothing when `err` is
 * NULL or `errlen` is 0, so a function may pass on an error buffer its own
 * caller did not give.
 */
void qs_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
