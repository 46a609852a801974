/*
 * Unit tests of core/addr: which strings are numeric host:port addresses,
 * what they parse to, and the reason given for each one that is not.
 */
#include "core/addr.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Parse `s`, which must be refused with exactly the reason `why`. */
static void
assert_refused(const char *s, const char *why)
{
	struct sockaddr_storage ss;
	socklen_t len = 12345;
	const char *got = NULL;

	memset(&ss, 0xa5, sizeof(ss));
	ck_assert_msg(qs_addr_parse(s, &ss, &len, &got) == -EINVAL, "'%s' was accepted", s);
	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strcmp(got, why) == 0, "'%s': got \"%s\", want \"%s\"", s, got, why);
	/* Out-parameters stay untouched on failure. */
	ck_assert_uint_eq(len, 12345);
	ck_assert_uint_eq(((unsigned char *)&ss)[0], 0xa5);
}

/* Parse `s`; it must give a sockaddr of `family` holding `host` and `port`. */
static void
assert_parsed(const char *s, int family, const char *host, unsigned port)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	unsigned char want[sizeof(struct in6_addr)];
	socklen_t len = 0;
	const char *why = NULL;

	ck_assert_msg(qs_addr_parse(s, &ss, &len, &why) == 0, "'%s': %s", s, why);
	ck_assert_int_eq(inet_pton(family, host, want), 1);
	ck_assert_int_eq(ss.ss_family, family);
	if (family == AF_INET) {
		ck_assert_uint_eq(len, sizeof(*sin));
		ck_assert_uint_eq(ntohs(sin->sin_port), port);
		ck_assert_mem_eq(&sin->sin_addr, want, sizeof(sin->sin_addr));
	} else {
		ck_assert_uint_eq(len, sizeof(*sin6));
		ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
		ck_assert_mem_eq(&sin6->sin6_addr, want, sizeof(sin6->sin6_addr));
		ck_assert_uint_eq(sin6->sin6_scope_id, 0);
		ck_assert_uint_eq(sin6->sin6_flowinfo, 0);
	}
}

START_TEST(ipv4_address_and_port_are_parsed)
{
	assert_parsed("127.0.0.1:7001", AF_INET, "127.0.0.1", 7001);
	assert_parsed("0.0.0.0:9464", AF_INET, "0.0.0.0", 9464);
	assert_parsed("255.255.255.255:80", AF_INET, "255.255.255.255", 80);
	assert_parsed("10.1.2.3:1", AF_INET, "10.1.2.3", 1);
}
END_TEST

START_TEST(bracketed_ipv6_address_and_port_are_parsed)
{
	assert_parsed("[::1]:7001", AF_INET6, "::1", 7001);
	assert_parsed("[::]:1", AF_INET6, "::", 1);
	assert_parsed("[fe80::1:2]:80", AF_INET6, "fe80::1:2", 80);
	assert_parsed("[2001:db8:0:0:0:0:0:1]:65535", AF_INET6, "2001:db8::1", 65535);
	assert_parsed("[::ffff:192.0.2.1]:443", AF_INET6, "::ffff:192.0.2.1", 443);
}
END_TEST

START_TEST(port_bounds_are_1_and_65535)
{
	assert_parsed("127.0.0.1:1", AF_INET, "127.0.0.1", 1);
	assert_parsed("127.0.0.1:65535", AF_INET, "127.0.0.1", 65535);
	assert_parsed("[::1]:65535", AF_INET6, "::1", 65535);
	assert_refused("127.0.0.1:0", "the port must be between 1 and 65535");
	assert_refused("127.0.0.1:65536", "the port must be between 1 and 65535");
	assert_refused("127.0.0.1:99999", "the port must be between 1 and 65535");
	assert_refused("[::1]:0", "the port must be between 1 and 65535");
	assert_refused("[::1]:65536", "the port must be between 1 and 65535");
}
END_TEST

START_TEST(port_with_leading_zero_is_refused)
{
	assert_refused("127.0.0.1:07001", "the port must be between 1 and 65535");
	assert_refused("127.0.0.1:00", "the port must be between 1 and 65535");
	assert_refused("[::1]:080", "the port must be between 1 and 65535");
}
END_TEST

START_TEST(port_that_is_not_decimal_is_refused)
{
	static const char *const bad[] = {
	    "127.0.0.1:+80",     "127.0.0.1:-1",
	    "127.0.0.1: 80",     "127.0.0.1:80 ",
	    "127.0.0.1:80x",     "127.0.0.1:0x50",
	    "127.0.0.1:1234567", "127.0.0.1:99999999999999999999",
	    "[::1]:8o",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i], "the port must be a decimal number");
}
END_TEST

START_TEST(missing_port_is_refused)
{
	assert_refused("127.0.0.1", "expected host:port");
	assert_refused("", "expected host:port");
	assert_refused("127.0.0.1:", "the port must be a decimal number");
	assert_refused("[::1]:", "the port must be a decimal number");
	assert_refused("[::1]", "expected ':' and a port after ']', as in [::1]:7001");
	assert_refused("[::1]7001", "expected ':' and a port after ']', as in [::1]:7001");
}
END_TEST

START_TEST(ipv6_without_brackets_is_refused)
{
	assert_refused("::1:7001", "an IPv6 address must be in brackets, as in [::1]:7001");
	assert_refused("fe80::1:80", "an IPv6 address must be in brackets, as in [::1]:7001");
	assert_refused("[::1:7001", "missing ']' after the IPv6 address");
}
END_TEST

START_TEST(bracketed_non_ipv6_is_refused)
{
	assert_refused("[]:7001", "invalid IPv6 address");
	assert_refused("[zz]:1", "invalid IPv6 address");
	assert_refused("[127.0.0.1]:9464", "invalid IPv6 address");
	assert_refused("[fe80::1%eth0]:80", "invalid IPv6 address");
}
END_TEST

START_TEST(host_names_are_refused)
{
	static const char why[] = "host names are not resolved; give an IPv4 address or [IPv6]";

	assert_refused("localhost:7001", why);
	assert_refused("a-b.example.com:65535", why);
	assert_refused("-h:1", why);
	assert_refused("h:1x", why);
	assert_refused("1.2.3.4a:80", why);
}
END_TEST

START_TEST(invalid_ipv4_is_refused)
{
	assert_refused("999.1.1.1:1", "invalid IPv4 address");
	assert_refused("256.0.0.1:9464", "invalid IPv4 address");
	assert_refused("1.2.3:4", "invalid IPv4 address");
	assert_refused("1.2.3.4.5:4", "invalid IPv4 address");
	assert_refused("01.2.3.4:4", "invalid IPv4 address");
	assert_refused("...:4", "invalid IPv4 address");
}
END_TEST

START_TEST(junk_is_refused_with_a_reason)
{
	char long_host[300];

	assert_refused(":7001", "the host is empty");
	assert_refused("host name:1", "invalid host name");
	assert_refused("h_st:1", "invalid host name");
	assert_refused("1.2.3.4\n:80", "invalid host name");
	assert_refused("\xff:80", "invalid host name");
	memset(long_host, 'a', 254);
	strcpy(long_host + 254, ":80");
	assert_refused(long_host, "the host name is longer than 253 bytes");
	assert_refused("["
	               "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000"
	               "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000"
	               "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000"
	               "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000"
	               "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:1",
	               "invalid IPv6 address");
	assert_refused(NULL, "no address given");
}
END_TEST

START_TEST(reason_pointer_may_be_null)
{
	struct sockaddr_storage ss;
	socklen_t len;

	ck_assert_int_eq(qs_addr_parse("nowhere", &ss, &len, NULL), -EINVAL);
	ck_assert_int_eq(qs_addr_parse("127.0.0.1:1", &ss, &len, NULL), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("addr");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, ipv4_address_and_port_are_parsed);
	tcase_add_test(tc, bracketed_ipv6_address_and_port_are_parsed);
	tcase_add_test(tc, port_bounds_are_1_and_65535);
	tcase_add_test(tc, port_with_leading_zero_is_refused);
	tcase_add_test(tc, port_that_is_not_decimal_is_refused);
	tcase_add_test(tc, missing_port_is_refused);
	tcase_add_test(tc, ipv6_without_brackets_is_refused);
	tcase_add_test(tc, bracketed_non_ipv6_is_refused);
	tcase_add_test(tc, host_names_are_refused);
	tcase_add_test(tc, invalid_ipv4_is_refused);
	tcase_add_test(tc, junk_is_refused_with_a_reason);
	tcase_add_test(tc, reason_pointer_may_be_null);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
