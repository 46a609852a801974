#include "core/hex.h"

#include <errno.h>
#include <string.h>

/* The value of hex digit c, or -1. Not isxdigit(): that depends on the locale. */
static int
qs_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
qs_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int
qs_hex_decode(const char *in, uint8_t *out, size_t n)
{
	size_t i;

	/* Bounded by 2n + 1 so a long or unterminated input is not scanned past. */
	if (n > (SIZE_MAX - 1) / 2 || strnlen(in, 2 * n + 1) != 2 * n)
		return -EINVAL;
	for (i = 0; i < 2 * n; i++) {
		if (qs_hex_digit(in[i]) < 0)
			return -EINVAL;
	}
	for (i = 0; i < n; i++)
		out[i] = (uint8_t)(qs_hex_digit(in[2 * i]) << 4 | qs_hex_digit(in[2 * i + 1]));
	return 0;
}
