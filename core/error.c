#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const qs_errors[] = {
    [-(QS_ECONFIG - QS_EBASE)] = "invalid configuration",
    [-(QS_EKEY - QS_EBASE)] = "unusable key",
    [-(QS_ECRYPTO - QS_EBASE)] = "cryptographic library error",
    [-(QS_ESTORE - QS_EBASE)] = "storage engine error",
    [-(QS_ESCHEMA - QS_EBASE)] = "unsupported on-disk schema version",
    [-(QS_ENOSPACE - QS_EBASE)] = "storage full",
    [-(QS_EIO - QS_EBASE)] = "storage I/O error",
    [-(QS_ECORRUPT - QS_EBASE)] = "storage corruption",
    [-(QS_EDECODE - QS_EBASE)] = "undecodable message",
    [-(QS_ELIMIT - QS_EBASE)] = "limit exceeded",
    [-(QS_EBADSIG - QS_EBASE)] = "bad signature",
    [-(QS_EBADDIGEST - QS_EBASE)] = "digest mismatch",
    [-(QS_ENOTFOUND - QS_EBASE)] = "not found",
    [-(QS_EEXISTS - QS_EBASE)] = "already exists",
    [-(QS_ESHUTDOWN - QS_EBASE)] = "shutting down",
    [-(QS_EQUEUEFULL - QS_EBASE)] = "queue full",
    [-(QS_EFAILED - QS_EBASE)] = "storage failed",
};

const char *
qs_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err < QS_EBASE && err > QS_ELAST) {
		const char *s = qs_errors[-(err - QS_EBASE)];
		return s ? s : "unknown error";
	}
	if (err < 0 && err > QS_EBASE)
		return strerror(-err);
	return "unknown error";
}

void
qs_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
