/*
 * HTTP endpoint for /metrics and /healthz on libevent's evhttp.
 */
#include "net/http.h"

#include "core/addr.h"
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
#define QS_HTTP_CONTENT_TYPE_TEXT    "text/plain; charset=utf-8"

/* Every method evhttp parses, so the handler answers 405 itself. */
#define QS_HTTP_ALL_METHODS                                                                        \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

struct qs_http {
	struct evhttp *evhttp;
	struct qs_metrics *metrics;
	int (*health)(void *arg, char *reason, size_t reason_len);
	void *health_arg;
};

/*
 * Parses `listen` (see qs_addr_parse) into the numeric host and the port
 * evhttp binds. Returns 0 or QS_ECONFIG with a message.
 */
static int
parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port, char *err,
             size_t errlen)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	socklen_t len;
	const char *why;
	int rc = QS_ECONFIG;

	if (listen == NULL || listen[0] == '\0') {
		qs_errf(err, errlen, "http listen: empty address");
		goto out;
	}
	if (qs_addr_parse(listen, &ss, &len, &why) != 0) {
		qs_errf(err, errlen, "http listen \"%s\": %s", listen, why);
		goto out;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)hostlen);
		*port = ntohs(sin6->sin6_port);
	} else {
		inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)hostlen);
		*port = ntohs(sin->sin_port);
	}
	rc = 0;
out:
	return rc;
}

/*
 * Sends `len` bytes of `data` with status `code`. evhttp 2.1 would send a
 * body even to HEAD, so HEAD gets only the Content-Length it would have.
 */
static void
reply(struct evhttp_request *req, int code, const char *reason, const char *content_type,
      const char *data, size_t len)
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
reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
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

/*
 * The 503 body from the callback's reasons, in place: one line per reason,
 * empty lines dropped, other control characters as '?'. Returns its length.
 */
static size_t
format_reasons(char *reasons, size_t size)
{
	size_t in, out = 0;
	bool line_empty = true;

	reasons[size - 1] = '\0';
	for (in = 0; reasons[in] != '\0'; in++) {
		unsigned char c = (unsigned char)reasons[in];

		if (c == '\n' || c == '\r') {
			if (!line_empty)
				reasons[out++] = '\n';
			line_empty = true;
			continue;
		}
		reasons[out++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		line_empty = false;
	}
	/* Every line ends in "\n"; the NUL's byte takes the last one. */
	if (!line_empty)
		reasons[out++] = '\n';
	reasons[out < size ? out : size - 1] = '\0';
	return out < size ? out : size - 1;
}

static void
serve_healthz(struct qs_http *h, struct evhttp_request *req)
{
	char reasons[QS_HTTP_REASON_MAX + 1] = "";
	size_t len;

	if (h->health == NULL || h->health(h->health_arg, reasons, QS_HTTP_REASON_MAX) == 1) {
		reply_text(req, HTTP_OK, "OK", "ok\n");
		return;
	}
	len = format_reasons(reasons, sizeof(reasons));
	if (len == 0)
		reply_text(req, HTTP_SERVUNAVAIL, "Service Unavailable", "unhealthy\n");
	else
		reply(req, HTTP_SERVUNAVAIL, "Service Unavailable", QS_HTTP_CONTENT_TYPE_TEXT,
		      reasons, len);
}

void
qs_http_reason_add(char *reasons, size_t len, const char *fmt, ...)
{
	size_t used;
	va_list ap;
	int n;

	if (reasons == NULL || len == 0)
		return;
	used = strnlen(reasons, len);
	if (used >= len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(reasons + used, len - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 1 >= len - used) {
		reasons[used] = '\0';
		return;
	}
	reasons[used + (size_t)n] = '\n';
	reasons[used + (size_t)n + 1] = '\0';
}

static void
handle_request(struct evhttp_request *req, void *arg)
{
	struct qs_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, HTTP_BADMETHOD, "Method Not Allowed", "method not allowed\n");
	} else if (path != NULL && strcmp(path, "/metrics") == 0) {
		serve_metrics(h, req);
	} else if (path != NULL && strcmp(path, "/healthz") == 0) {
		serve_healthz(h, req);
	} else {
		reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
	}
}

int
qs_http_start(struct event_base *base, const char *listen, struct qs_metrics *metrics,
              int (*health)(void *arg, char *reason, size_t reason_len), void *health_arg,
              struct qs_http **out, char *err, size_t errlen)
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
		qs_errf(err, errlen, "http listen %s: out of memory", listen);
		goto out;
	}
	h->metrics = metrics;
	h->health = health;
	h->health_arg = health_arg;
	h->evhttp = evhttp_new(base);
	if (h->evhttp == NULL) {
		qs_errf(err, errlen, "http listen %s: out of memory", listen);
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
		qs_errf(err, errlen, "http listen %s: %s", listen, strerror(-rc));
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
