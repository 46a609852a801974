#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define QS_ADDR_HOST_MAX 253 /* the longest DNS name, for the message */

/*
 * The host of "A.B.C.D:PORT" (hostlen bytes at s) into *a4; a name gets its
 * own reason so that an operator who wrote one learns why it is refused.
 */
static const char *
qs_addr_ipv4(const char *s, size_t hostlen, struct in_addr *a4)
{
	char host[QS_ADDR_HOST_MAX + 1];
	bool numeric = true;
	size_t i;

	if (hostlen == 0)
		return "the host is empty";
	if (hostlen >= sizeof(host))
		return "the host name is longer than 253 bytes";
	memcpy(host, s, hostlen);
	host[hostlen] = '\0';
	for (i = 0; i < hostlen; i++) {
		char c = host[i];

		if (!((c >= '0' && c <= '9') || c == '.'))
			numeric = false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return "invalid host name";
	}
	/* Resolving a name would block the event loop: addresses only. */
	if (!numeric)
		return "host names are not resolved; give an IPv4 address or [IPv6]";
	if (inet_pton(AF_INET, host, a4) != 1)
		return "invalid IPv4 address";
	return NULL;
}

/* The host of "[IPv6]:PORT" (hostlen bytes at s, brackets excluded) into *a6. */
static const char *
qs_addr_ipv6(const char *s, size_t hostlen, struct in6_addr *a6)
{
	char host[QS_ADDR_HOST_MAX + 1];

	if (hostlen == 0 || hostlen >= sizeof(host))
		return "invalid IPv6 address";
	memcpy(host, s, hostlen);
	host[hostlen] = '\0';
	if (inet_pton(AF_INET6, host, a6) != 1)
		return "invalid IPv6 address";
	return NULL;
}

/* A decimal port, 1..65535, without sign, spaces or a leading zero. */
static const char *
qs_addr_port(const char *port, uint16_t *out)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; port[i] >= '0' && port[i] <= '9' && i < 6; i++)
		n = n * 10 + (unsigned long)(port[i] - '0');
	if (i == 0 || port[i] != '\0')
		return "the port must be a decimal number";
	if (n < 1 || n > 65535 || port[0] == '0')
		return "the port must be between 1 and 65535";
	*out = (uint16_t)n;
	return NULL;
}

int
qs_addr_parse(const char *s, struct sockaddr_storage *out, socklen_t *out_len, const char **why)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	const char *close, *colon, *problem;
	socklen_t len;
	uint16_t port;
	int rc = -EINVAL;

	memset(&ss, 0, sizeof(ss));
	if (s == NULL) {
		problem = "no address given";
		goto out;
	}
	if (s[0] == '[') {
		close = strchr(s, ']');
		if (close == NULL) {
			problem = "missing ']' after the IPv6 address";
			goto out;
		}
		problem = qs_addr_ipv6(s + 1, (size_t)(close - s - 1), &sin6->sin6_addr);
		if (problem)
			goto out;
		if (close[1] != ':') {
			problem = "expected ':' and a port after ']', as in [::1]:7001";
			goto out;
		}
		problem = qs_addr_port(close + 2, &port);
		if (problem)
			goto out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			problem = "expected host:port";
			goto out;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			problem = "an IPv6 address must be in brackets, as in [::1]:7001";
			goto out;
		}
		problem = qs_addr_ipv4(s, (size_t)(colon - s), &sin->sin_addr);
		if (problem)
			goto out;
		problem = qs_addr_port(colon + 1, &port);
		if (problem)
			goto out;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	}
	memcpy(out, &ss, sizeof(ss));
	*out_len = len;
	problem = NULL;
	rc = 0;
out:
	if (rc != 0 && why != NULL)
		*why = problem;
	return rc;
}
