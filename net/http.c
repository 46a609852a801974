/*
 * HTTP endpoint for /metrics and /healthz on libevent's evhttp.
 */
#include "net/http.h"

#include "core/error.h"
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#define QS_HTTP_CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define QS_HTTP_CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

/* Every method evhttp parses, so the handler answers 405 itself. */
#define QS_HTTP_ALL_METHODS (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | \
			     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | \
			     EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

struct qs_http {
	struct evhttp *evhttp;
	struct qs_metrics *metrics;
	int (*health)(void *arg, char *reason, size_t reason_len);
	void *health_arg;
};

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Splits "A.B.C.D:PORT" or "[IPv6]:PORT" into a numeric host and a port in
 * 1..65535. Returns 0 or QS_ECONFIG with a message.
 */
static int
parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port,
	     char *err, size_t errlen)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *colon, *p;
	unsigned long value = 0;
	size_t n;
	int family, rc = QS_ECONFIG;

	if (listen == NULL || listen[0] == '\0') {
		set_err(err, errlen, "http listen: empty address");
		goto out;
	}
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (close == NULL || close[1] != ':') {
			set_err(err, errlen, "http listen \"%s\": expected [IPv6]:PORT",
				listen);
			goto out;
		}
		family = AF_INET6;
		p = listen + 1;
		n = (size_t)(close - p);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL) {
			set_err(err, errlen, "http listen \"%s\": missing :PORT", listen);
			goto out;
		}
		if (strchr(listen, ':') != colon) {
			set_err(err, errlen,
				"http listen \"%s\": an IPv6 address must be in brackets",
				listen);
			goto out;
		}
		family = AF_INET;
		p = listen;
		n = (size_t)(colon - p);
	}
	if (n == 0 || n >= hostlen) {
		set_err(err, errlen, "http listen \"%s\": bad address", listen);
		goto out;
	}
	memcpy(host, p, n);
	host[n] = '\0';
	if (inet_pton(family, host, addr) != 1) {
		set_err(err, errlen, "http listen \"%s\": \"%s\" is not a numeric %s address",
			listen, host, family == AF_INET ? "IPv4" : "IPv6");
		goto out;
	}
	for (p = colon + 1; *p >= '0' && *p <= '9' && value <= 65535; p++)
		value = value * 10 + (unsigned long)(*p - '0');
	if (p == colon + 1 || *p != '\0' || value == 0 || value > 65535) {
		set_err(err, errlen, "http listen \"%s\": port must be 1..65535", listen);
		goto out;
	}
	*port = (uint16_t)value;
	rc = 0;
out:
	return rc;
}

/*
 * Sends `len` bytes of `data` with status `code`. evhttp 2.1 would send a
 * body even to HEAD, so HEAD gets only the Content-Length it would have.
 */
static void
reply(struct evhttp_request *req, int code, const char *reason,
      const char *content_type, const char *data, size_t len)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	char length[24];

	evhttp_add_header(headers, "Content-Type", content_type);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		snprintf(length, sizeof(length), "%zu", len);
		evhttp_add_header(headers, "Content-Length", length);
	} else if (evbuffer_add(evhttp_request_get_output_buffer(req), data, len) != 0) {
		code = HTTP_INTERNAL;
		reason = "Internal Server Error";
	}
	evhttp_send_reply(req, code, reason, NULL);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
	   const char *text)
{
	reply(req, code, reason, QS_HTTP_CONTENT_TYPE_TEXT, text, strlen(text));
}

static void
serve_metrics(struct qs_http *h, struct evhttp_request *req)
{
	char *text = NULL;
	size_t len;

	if (qs_metrics_render(h->metrics, &text, &len) != 0)
		reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
	else
		reply(req, HTTP_OK, "OK", QS_HTTP_CONTENT_TYPE_METRICS, text, len);
	free(text);
}

static void
serve_healthz(struct qs_http *h, struct evhttp_request *req)
{
	char reason[QS_HTTP_REASON_MAX] = "";
	char text[QS_HTTP_REASON_MAX + 1];

	if (h->health == NULL || h->health(h->health_arg, reason, sizeof(reason)) == 1) {
		reply_text(req, HTTP_OK, "OK", "ok\n");
	} else {
		reason[sizeof(reason) - 1] = '\0';
		snprintf(text, sizeof(text), "%s\n",
			 reason[0] != '\0' ? reason : "unhealthy");
		reply_text(req, HTTP_SERVUNAVAIL, "Service Unavailable", text);
	}
}

static void
handle_request(struct evhttp_request *req, void *arg)
{
	struct qs_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
			  "no-store");
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "GET, HEAD");
		reply_text(req, HTTP_BADMETHOD, "Method Not Allowed",
			   "method not allowed\n");
	} else if (path != NULL && strcmp(path, "/metrics") == 0) {
		serve_metrics(h, req);
	} else if (path != NULL && strcmp(path, "/healthz") == 0) {
		serve_healthz(h, req);
	} else {
		reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
	}
}

int
qs_http_start(struct event_base *base, const char *listen,
	      struct qs_metrics *metrics,
	      int (*health)(void *arg, char *reason, size_t reason_len),
	      void *health_arg, struct qs_http **out, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bound;
	struct qs_http *h = NULL;
	char host[INET6_ADDRSTRLEN];
	uint16_t port;
	int rc;

	rc = parse_listen(listen, host, sizeof(host), &port, err, errlen);
	if (rc != 0)
		goto out;
	rc = -ENOMEM;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		set_err(err, errlen, "http listen %s: out of memory", listen);
		goto out;
	}
	h->metrics = metrics;
	h->health = health;
	h->health_arg = health_arg;
	h->evhttp = evhttp_new(base);
	if (h->evhttp == NULL) {
		set_err(err, errlen, "http listen %s: out of memory", listen);
		goto out;
	}
	evhttp_set_max_headers_size(h->evhttp, QS_HTTP_MAX_HEADERS_BYTES);
	evhttp_set_max_body_size(h->evhttp, QS_HTTP_MAX_BODY_BYTES);
	evhttp_set_timeout(h->evhttp, QS_HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(h->evhttp, QS_HTTP_ALL_METHODS);
	evhttp_set_gencb(h->evhttp, handle_request, h);
	/* libevent keeps bind()'s or listen()'s errno when it fails. */
	errno = 0;
	bound = evhttp_bind_socket_with_handle(h->evhttp, host, port);
	if (bound == NULL) {
		rc = errno != 0 ? -errno : -EADDRNOTAVAIL;
		set_err(err, errlen, "http listen %s: %s", listen, strerror(-rc));
		goto out;
	}
	evutil_make_socket_closeonexec(evhttp_bound_socket_get_fd(bound));
	*out = h;
	h = NULL;
	rc = 0;
out:
	qs_http_free(h);
	return rc;
}

void
qs_http_free(struct qs_http *h)
{
	if (h == NULL)
		return;
	if (h->evhttp != NULL)
		evhttp_free(h->evhttp);
	free(h);
}
