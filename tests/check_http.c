/*
 * Unit tests of the /healthz contract of net/http: every reason the health
 * callback reports is one line of the 503 body, and qs_http_reason_add()
 * builds those lines. (The rest of net/http is covered by check_metrics.)
 */
#include "core/error.h"
#include "daemon/metrics.h"
#include "net/http.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

struct health {
	const char *reasons; /* copied into the buffer; NULL: healthy */
	size_t seen_len;     /* the buffer size the callback was given */
};

static int
health_cb(void *arg, char *buf, size_t len)
{
	struct health *h = arg;

	h->seen_len = len;
	ck_assert_uint_eq(buf[0], '\0');
	if (h->reasons == NULL)
		return 1;
	snprintf(buf, len, "%s", h->reasons);
	return 0;
}

struct server {
	struct event_base *base;
	struct qs_metrics *reg;
	struct qs_http *http;
	struct health health;
	uint16_t port;
};

static uint16_t
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
server_start(struct server *s)
{
	char listen[32], err[256] = "";
	int tries, rc = -EADDRINUSE;

	memset(s, 0, sizeof(*s));
	signal(SIGPIPE, SIG_IGN);
	s->base = event_base_new();
	s->reg = qs_metrics_new();
	ck_assert(s->base != NULL && s->reg != NULL);
	for (tries = 0; tries < 10 && rc == -EADDRINUSE; tries++) {
		s->port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%u", s->port);
		rc = qs_http_start(s->base, listen, s->reg, health_cb, &s->health, &s->http, err,
		                   sizeof(err));
	}
	ck_assert_msg(rc == 0, "qs_http_start: %d %s", rc, err);
}

static void
server_stop(struct server *s)
{
	qs_http_free(s->http);
	qs_metrics_free(s->reg);
	event_base_free(s->base);
}

/*
 * GET /healthz over HTTP/1.0 from this thread: the request fits the socket
 * buffer, then the loop runs in non-blocking steps until the server closed.
 * Returns the status; the body goes to body (len bytes).
 */
static int
get_healthz(struct server *s, char *body, size_t len)
{
	static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char resp[8192];
	size_t got = 0;
	struct pollfd pfd;
	const char *p;
	ssize_t r;
	int fd, status = -1, major, minor;

	sa.sin_port = htons(s->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (int i = 0; i < 5000; i++) {
		event_base_loop(s->base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/%d.%d %d", &major, &minor, &status) != 3)
		return -1;
	p = strstr(resp, "\r\n\r\n");
	ck_assert_ptr_nonnull(p);
	snprintf(body, len, "%s", p + 4);
	return status;
}

START_TEST(healthz_lists_every_reason_on_its_own_line)
{
	struct server s;
	char body[2048];

	server_start(&s);
	ck_assert_int_eq(get_healthz(&s, body, sizeof(body)), 200);
	ck_assert_str_eq(body, "ok\n");
	ck_assert_uint_eq(s.health.seen_len, QS_HTTP_REASON_MAX);

	s.health.reasons = "storage full\nno quorum of peers\n";
	ck_assert_int_eq(get_healthz(&s, body, sizeof(body)), 503);
	ck_assert_str_eq(body, "storage full\nno quorum of peers\n");

	/* A last line without "\n" gets one; empty lines go; control bytes show. */
	s.health.reasons = "\n\nrecovering\r\n\nstorage failed: bad\tsector";
	ck_assert_int_eq(get_healthz(&s, body, sizeof(body)), 503);
	ck_assert_str_eq(body, "recovering\nstorage failed: bad?sector\n");

	s.health.reasons = "\n\n";
	ck_assert_int_eq(get_healthz(&s, body, sizeof(body)), 503);
	ck_assert_str_eq(body, "unhealthy\n");
	server_stop(&s);
}
END_TEST

/* A callback that fills the whole buffer still gets a whole response. */
START_TEST(healthz_with_a_full_reason_buffer)
{
	static char big[QS_HTTP_REASON_MAX + 100];
	struct server s;
	char body[4096];

	memset(big, 'x', sizeof(big) - 1);
	server_start(&s);
	s.health.reasons = big;
	ck_assert_int_eq(get_healthz(&s, body, sizeof(body)), 503);
	ck_assert_uint_eq(strlen(body), QS_HTTP_REASON_MAX);
	ck_assert_int_eq(body[QS_HTTP_REASON_MAX - 1], '\n');
	server_stop(&s);
}
END_TEST

START_TEST(reason_add_appends_whole_lines)
{
	char buf[32] = "";

	qs_http_reason_add(buf, sizeof(buf), "storage %s", "full");
	qs_http_reason_add(buf, sizeof(buf), "recovering");
	ck_assert_str_eq(buf, "storage full\nrecovering\n");
	/* 24 of 32 bytes used: a 6-byte line fits (with its "\n" and the
	 * NUL), a 7-byte one does not and leaves the buffer as it was. */
	qs_http_reason_add(buf, sizeof(buf), "%s", "1234567");
	ck_assert_str_eq(buf, "storage full\nrecovering\n");
	qs_http_reason_add(buf, sizeof(buf), "%s", "123456");
	ck_assert_str_eq(buf, "storage full\nrecovering\n123456\n");
	qs_http_reason_add(buf, sizeof(buf), "x");
	ck_assert_str_eq(buf, "storage full\nrecovering\n123456\n");
	qs_http_reason_add(NULL, 0, "x");
}
END_TEST

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("healthz");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, healthz_lists_every_reason_on_its_own_line);
	tcase_add_test(tc, healthz_with_a_full_reason_buffer);
	tcase_add_test(tc, reason_add_appends_whole_lines);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
