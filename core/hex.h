/*
 * Hexadecimal encoding of byte strings (keys and digests in configs, logs
 * and the CLI). Pure functions: no I/O, no allocation.
 */
#ifndef QS_CORE_HEX_H
#define QS_CORE_HEX_H

#include <stddef.h>
#include <stdint.h>

/*
 * Write the n bytes at `in` as 2n lowercase hex digits plus a NUL into `out`,
 * which the caller provides with room for 2n + 1 chars.
 */
void qs_hex_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decode the NUL-terminated string `in` into exactly n bytes at `out`.
 * `in` must be exactly 2n hex digits, either case, nothing else (no prefix,
 * no whitespace). Returns 0, or -EINVAL with `out` left untouched.
 */
int qs_hex_decode(const char *in, uint8_t *out, size_t n);

#endif
