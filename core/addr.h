/*
 * Numeric socket addresses as written in configs: "A.B.C.D:PORT" or
 * "[IPv6]:PORT". Host names are refused, because resolving one would block
 * the event loop; the port is decimal, 1..65535, without a leading zero.
 * Pure: no I/O, no allocation.
 */
#ifndef QS_CORE_ADDR_H
#define QS_CORE_ADDR_H

#include <sys/socket.h>

/*
 * Parse the NUL-terminated string `s` (NULL is refused) into a sockaddr_in
 * or sockaddr_in6 at *out, its length at *out_len. Returns 0, or -EINVAL
 * with *why pointing at a static one-line reason ("expected host:port",
 * "the port must be between 1 and 65535", ...) and *out, *out_len untouched.
 * `why` may be NULL.
 */
int qs_addr_parse(const char *s, struct sockaddr_storage *out, socklen_t *out_len,
                  const char **why);

#endif
