/*
 * Helpers shared by the Check tests that run a real qsd: a cluster written
 * by tools/mkcluster, qsd started as a child that dies with the test, its
 * /metrics scraped over a plain socket, stopped with a signal, and the
 * client library connected to its RPC socket.
 *
 * The functions that return an error instead of asserting may be used
 * outside a test (in main(), before the tests fork); qs_test_scrape(),
 * qs_test_metric(), qs_test_wait_metric(), qs_test_connect() and
 * qs_test_expect_clean_exit() assert. The request builders at the end are
 * shared by the tests that send raw or pipelined requests.
 * Messages go to stderr prefixed with the program's name.
 */
#ifndef QS_TESTS_NODE_H
#define QS_TESTS_NODE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/qsclient.h"
#include "core/error.h"

#ifndef QS_TEST_START_TIMEOUT_MS
#define QS_TEST_START_TIMEOUT_MS 60000 /* qsd's metrics endpoint to answer */
#endif
#ifndef QS_TEST_STOP_TIMEOUT_MS
#define QS_TEST_STOP_TIMEOUT_MS 20000 /* qsd to exit after a signal */
#endif
#ifndef QS_TEST_HTTP_WAIT_MS
#define QS_TEST_HTTP_WAIT_MS 30000 /* a metrics answer, asked again meanwhile */
#endif
#define QS_TEST_HTTP_MAX_BYTES (8u << 20)
#define QS_TEST_LOG_TAIL_BYTES 6000

/* One qsd: where its files are, its ports and its process. */
struct qs_test_node {
	char build[256]; /* the build directory holding qsd and qsctl */
	char dir[400];   /* the cluster written by mkcluster */
	char cfg[460];   /* the config this qsd runs with */
	char sock[460];  /* its RPC socket */
	char data[460];  /* its data directory */
	char log[460];   /* its stdout and stderr */
	int port;        /* peers */
	int metrics_port;
	int movable; /* a 1-validator cluster: may move to other ports if busy */
	pid_t pid;   /* 0 when not running */
};

static inline uint64_t
qs_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t
qs_test_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t
qs_test_rand64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = qs_test_wall_us() ^ ((uint64_t)getpid() << 32);
	return v;
}

static inline void
qs_test_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static inline void __attribute__((format(printf, 1, 2))) qs_test_say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * The build directory into buf: $B, else the one the test binary was built
 * into (B/tests/check_x, from argv[0]), else "build".
 */
static inline void
qs_test_build_dir(const char *argv0, char *buf, size_t len)
{
	const char *b = getenv("B");
	const char *slash = strrchr(argv0, '/');

	if (b && *b)
		snprintf(buf, len, "%s", b);
	else if (slash && slash - argv0 > 6 && strncmp(slash - 6, "/tests", 6) == 0)
		snprintf(buf, len, "%.*s", (int)(slash - 6 - argv0), argv0);
	else
		snprintf(buf, len, "build");
}

/* Run argv (argv[0] a path) with stdout to /dev/null; its exit code, 128 +
 * the signal that killed it, or -1. */
static inline int
qs_test_run_child(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		/* The sanitizer runtime and fault shims are for the test binary. */
		unsetenv("LD_PRELOAD");
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A socket bound to 127.0.0.1:port (not listening), or -1. */
static inline int
qs_test_bind_port(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether 127.0.0.1:port can be bound now. */
static inline int
qs_test_port_free(int port)
{
	int fd = qs_test_bind_port(port);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* A random base port below the ephemeral range (32768+) and apart from the
 * shell tests, whose port and port + 100 are free now; 0 if none. */
static inline int
qs_test_pick_port(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int base = 26200 + (int)(qs_test_rand64() % 6000);

		if (qs_test_port_free(base) && qs_test_port_free(base + 100))
			return base;
	}
	return 0;
}

/* GET `path` from 127.0.0.1:port. Returns 0 with the status code and the
 * body (malloc'ed, NUL-terminated), or -1 when there is no answer. */
static inline int
qs_test_http_get(int port, const char *path, int *status, char **body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {5, 0};
	char req[256], *buf = NULL, *sep;
	size_t len = 0, cap = 0;
	int fd, n, rc = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	n = snprintf(req, sizeof(req),
	             "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n)
		goto out;
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *p;

			if (cap >= QS_TEST_HTTP_MAX_BYTES)
				goto out;
			cap = cap ? 2 * cap : 16384;
			p = realloc(buf, cap + 1);
			if (!p)
				goto out;
			buf = p;
		}
		r = read(fd, buf + len, cap - len);
		if (r == 0)
			break;
		if (r < 0)
			goto out;
		len += (size_t)r;
	}
	if (!buf)
		goto out;
	buf[len] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	if (!sep || sscanf(buf, "HTTP/1.%*d %d", status) != 1)
		goto out;
	*body = strdup(sep + 4);
	if (*body)
		rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* The value of `series` (name and labels exactly as exported) in a scrape,
 * or NAN if it is not there. */
static inline double
qs_test_metric_in(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

/* In a test: node n's /metrics (free it). A busy loop may keep the answer
 * a while: asked again for up to QS_TEST_HTTP_WAIT_MS. */
static inline char *
qs_test_scrape(const struct qs_test_node *n)
{
	uint64_t deadline = qs_test_now_ms() + QS_TEST_HTTP_WAIT_MS;
	char *body = NULL;
	int status = 0, rc;

	while ((rc = qs_test_http_get(n->metrics_port, "/metrics", &status, &body)) != 0 &&
	       qs_test_now_ms() < deadline && n->pid > 0 && kill(n->pid, 0) == 0)
		qs_test_sleep_ms(50);
	ck_assert_msg(rc == 0, "no answer from the metrics endpoint of %s (did qsd die? see %s)",
	              n->cfg, n->log);
	ck_assert_int_eq(status, 200);
	return body;
}

/* In a test: the value of `series` on node n, which must export it. */
static inline double
qs_test_metric(const struct qs_test_node *n, const char *series)
{
	char *text = qs_test_scrape(n);
	double v = qs_test_metric_in(text, series);

	free(text);
	ck_assert_msg(!isnan(v), "qsd does not export %s", series);
	return v;
}

/* In a test: poll `series` until it is at least `want` or timeout_ms passed;
 * the last value read. */
static inline double
qs_test_wait_metric(const struct qs_test_node *n, const char *series, double want,
                    unsigned timeout_ms)
{
	uint64_t deadline = qs_test_now_ms() + timeout_ms;
	double v;

	for (;;) {
		v = qs_test_metric(n, series);
		if (v >= want || qs_test_now_ms() > deadline)
			return v;
		qs_test_sleep_ms(20);
	}
}

/* The last bytes of the log at `path`, to stderr. */
static inline void
qs_test_dump_log(const char *path)
{
	char buf[QS_TEST_LOG_TAIL_BYTES];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return;
	if (fseek(f, -(long)(sizeof(buf) - 1), SEEK_END) != 0)
		rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- tail of %s ----\n%s---- end of qsd log ----\n", path, buf);
}

/* tools/mkcluster N DIR BASE_PORT with the qsctl of `build`. Returns 0 or
 * -1 (said why). */
static inline int
qs_test_mkcluster(const char *build, int n_validators, const char *dir, int base_port)
{
	char n[16], port[16], path[sizeof(((struct qs_test_node *)0)->dir)], qsctl[300];
	char *mk[] = {"tools/mkcluster", n, path, port, NULL};
	int rc;

	if (access("tools/mkcluster", X_OK) != 0) {
		qs_test_say("no tools/mkcluster: run me from the repository root");
		return -1;
	}
	snprintf(n, sizeof(n), "%d", n_validators);
	snprintf(port, sizeof(port), "%d", base_port);
	snprintf(path, sizeof(path), "%s", dir);
	snprintf(qsctl, sizeof(qsctl), "%s/qsctl", build);
	setenv("QSCTL", qsctl, 1);
	rc = qs_test_run_child(mk);
	if (rc != 0) {
		qs_test_say("tools/mkcluster %s %s %s failed (%d)", n, dir, port, rc);
		return -1;
	}
	return 0;
}

/*
 * Fill in node n for validator v of the cluster in `dir`, written by
 * mkcluster with `base_port`; its log goes to `log`.
 */
static inline void
qs_test_node_init(struct qs_test_node *n, const char *build, const char *dir, int v, int base_port,
                  const char *log)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->build, sizeof(n->build), "%s", build);
	snprintf(n->dir, sizeof(n->dir), "%s", dir);
	snprintf(n->cfg, sizeof(n->cfg), "%s/v%d/qsd.yaml", dir, v);
	snprintf(n->sock, sizeof(n->sock), "%s/v%d/rpc.sock", dir, v);
	snprintf(n->data, sizeof(n->data), "%s/v%d/data", dir, v);
	snprintf(n->log, sizeof(n->log), "%s", log);
	n->port = base_port + v;
	n->metrics_port = base_port + 100 + v;
}

/* Append text to node n's config. Returns 0 or -1. */
static inline int
qs_test_node_append(const struct qs_test_node *n, const char *text)
{
	FILE *f = fopen(n->cfg, "a");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

/*
 * A 1-validator cluster in parent/name on free ports, its log parent/name/
 * qsd.log, with `append` (may be NULL) added to its config. Returns 0 or -1.
 */
static inline int
qs_test_node_make(struct qs_test_node *n, const char *build, const char *parent, const char *name,
                  const char *append)
{
	char dir[sizeof(n->dir)], log[sizeof(n->log)];
	int port = qs_test_pick_port();

	if (!port) {
		qs_test_say("no free ports");
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/%s", parent, name);
	snprintf(log, sizeof(log), "%s/qsd.log", dir);
	qs_test_node_init(n, build, dir, 0, port, log);
	if (qs_test_mkcluster(build, 1, dir, port) != 0)
		return -1;
	if (append && qs_test_node_append(n, append) != 0) {
		qs_test_say("cannot write %s", n->cfg);
		return -1;
	}
	n->movable = 1;
	return 0;
}

/* Replace the first occurrence (all of them if `all`) of `from` in node n's
 * config with `to`. Returns 0, or -1 when it is not there. */
static inline int
qs_test_node_replace(const struct qs_test_node *n, const char *from, const char *to, int all)
{
	char buf[16384], out[20000], *at, *p;
	FILE *f = fopen(n->cfg, "r");
	size_t len, used = 0;

	if (!f || !*from)
		goto fail;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	for (p = buf; (at = strstr(p, from)) != NULL; p = at + strlen(from)) {
		int w = snprintf(out + used, sizeof(out) - used, "%.*s%s", (int)(at - p), p, to);

		if (w < 0 || (size_t)w >= sizeof(out) - used)
			return -1;
		used += (size_t)w;
		if (!all) {
			p = at + strlen(from);
			break;
		}
	}
	if (p == buf)
		return -1;
	if (snprintf(out + used, sizeof(out) - used, "%s", p) >= (int)(sizeof(out) - used))
		return -1;
	f = fopen(n->cfg, "w");
	if (!f)
		return -1;
	fputs(out, f);
	return fclose(f) == 0 ? 0 : -1;
fail:
	if (f)
		fclose(f);
	return -1;
}

/* Replace the first occurrence of `from` in node n's config with `to`.
 * Returns 0, or -1 when it is not there. */
static inline int
qs_test_node_edit(const struct qs_test_node *n, const char *from, const char *to)
{
	return qs_test_node_replace(n, from, to, 0);
}

/* Lines of the file at `path` that contain `needle`. */
static inline int
qs_test_log_count(const char *path, const char *needle)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int count = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		count += strstr(line, needle) != NULL;
	fclose(f);
	return count;
}

/* Move a movable node to the free ports base_port and base_port + 100.
 * Returns 0 or -1. */
static inline int
qs_test_node_move(struct qs_test_node *n, int base_port)
{
	char from[32], to[32];

	snprintf(from, sizeof(from), "127.0.0.1:%d\"", n->port);
	snprintf(to, sizeof(to), "127.0.0.1:%d\"", base_port);
	if (qs_test_node_replace(n, from, to, 1) != 0)
		return -1;
	snprintf(from, sizeof(from), "127.0.0.1:%d\"", n->metrics_port);
	snprintf(to, sizeof(to), "127.0.0.1:%d\"", base_port + 100);
	if (qs_test_node_replace(n, from, to, 1) != 0)
		return -1;
	n->port = base_port;
	n->metrics_port = base_port + 100;
	return 0;
}

/*
 * Start qsd on node n once and wait until it says it is ready (a line
 * event=ready in its log, which follows every listener) and its metrics
 * endpoint answers: another process may answer on a port that looked free.
 * Returns 0; 1 when qsd exited because a port was taken meanwhile; -1.
 */
static inline int
qs_test_node_start_once(struct qs_test_node *n)
{
	char qsd[300];
	uint64_t deadline;
	int ready = qs_test_log_count(n->log, "event=ready ");
	int busy = qs_test_log_count(n->log, "listen_failed");

	snprintf(qsd, sizeof(qsd), "%s/qsd", n->build);
	if (access(qsd, X_OK) != 0) {
		qs_test_say("%s is missing (build it first)", qsd);
		return -1;
	}
	n->pid = fork();
	if (n->pid < 0) {
		n->pid = 0;
		return -1;
	}
	if (n->pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		/* Never outlive the process that started it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		unsetenv("LD_PRELOAD");
		signal(SIGPIPE, SIG_DFL);
		execl(qsd, "qsd", "-c", n->cfg, (char *)NULL);
		_exit(127);
	}
	deadline = qs_test_now_ms() + QS_TEST_START_TIMEOUT_MS;
	while (qs_test_now_ms() < deadline) {
		char *body = NULL;
		int status = 0, wstatus;

		if (waitpid(n->pid, &wstatus, WNOHANG) == n->pid) {
			n->pid = 0;
			if (qs_test_log_count(n->log, "listen_failed") > busy)
				return 1;
			qs_test_say("qsd exited at start (status 0x%x)", wstatus);
			qs_test_dump_log(n->log);
			return -1;
		}
		if (qs_test_log_count(n->log, "event=ready ") > ready &&
		    qs_test_http_get(n->metrics_port, "/metrics", &status, &body) == 0) {
			free(body);
			if (status == 200)
				return 0;
		}
		qs_test_sleep_ms(50);
	}
	qs_test_say("qsd was not ready in %d ms", QS_TEST_START_TIMEOUT_MS);
	qs_test_dump_log(n->log);
	return -1;
}

/* Start qsd on node n and wait until it is ready; a movable node whose
 * ports were taken meanwhile moves to others. Returns 0, or -1 with the
 * log's tail on stderr. */
static inline int
qs_test_node_start(struct qs_test_node *n)
{
	for (int attempt = 0;; attempt++) {
		int rc = qs_test_node_start_once(n), port;

		if (rc <= 0)
			return rc;
		if (!n->movable || attempt == 5 || !(port = qs_test_pick_port()) ||
		    qs_test_node_move(n, port) != 0) {
			qs_test_say("qsd found its ports taken");
			qs_test_dump_log(n->log);
			return -1;
		}
	}
}

/* Send `sig` to node n's qsd and reap it. Returns its wait status, or -1 if
 * it was not running or did not exit within QS_TEST_STOP_TIMEOUT_MS (it is
 * then killed). */
static inline int
qs_test_node_stop(struct qs_test_node *n, int sig)
{
	uint64_t deadline = qs_test_now_ms() + QS_TEST_STOP_TIMEOUT_MS;
	int wstatus = 0;

	if (n->pid <= 0)
		return -1;
	kill(n->pid, sig);
	for (;;) {
		pid_t r = waitpid(n->pid, &wstatus, WNOHANG);

		if (r == n->pid)
			break;
		if (qs_test_now_ms() > deadline) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, &wstatus, 0);
			n->pid = 0;
			return -1;
		}
		qs_test_sleep_ms(20);
	}
	n->pid = 0;
	return wstatus;
}

/* Whether a wait status is a clean exit (0). */
static inline int
qs_test_exited_ok(int wstatus)
{
	return wstatus >= 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
}

/* In a test: connect the client library to node n's RPC socket. */
static inline struct qs_client *
qs_test_connect(const struct qs_test_node *n, const char *client_name, int timeout_ms)
{
	struct qs_client *c = NULL;
	char err[512] = "";
	int rc = qs_client_connect(n->sock, client_name, timeout_ms, &c, err, sizeof(err));

	ck_assert_msg(rc == 0, "cannot connect to %s: %s (%s)", n->sock, err, qs_strerror(rc));
	return c;
}

/* In a test: stop node n with SIGTERM; it must exit 0 in time (its log's
 * tail on stderr otherwise). */
static inline void
qs_test_expect_clean_exit(struct qs_test_node *n)
{
	int ws = qs_test_node_stop(n, SIGTERM);

	if (!qs_test_exited_ok(ws))
		qs_test_dump_log(n->log);
	ck_assert_msg(ws >= 0, "qsd did not stop within %d ms of SIGTERM", QS_TEST_STOP_TIMEOUT_MS);
	ck_assert_msg(qs_test_exited_ok(ws), "qsd exited with status 0x%x after SIGTERM", ws);
}

/*
 * Requests built by hand, for what the client library's calls do not do
 * (pipelining, raw frames). Each fills in the caller's req and body (which
 * req then points at); the data they name is borrowed, not copied.
 */

/* SubmitBatch of n_txns transactions, with the idempotency key of key_len
 * bytes at key, or none if key is NULL. */
static inline void
qs_test_submit_request(Quorumstore__V1__Request *req, Quorumstore__V1__SubmitBatchRequest *sb,
                       const ProtobufCBinaryData *txns, size_t n_txns, const char *key,
                       size_t key_len)
{
	quorumstore__v1__request__init(req);
	quorumstore__v1__submit_batch_request__init(sb);
	sb->n_transactions = n_txns;
	sb->transactions = (ProtobufCBinaryData *)txns;
	sb->idempotency_key.data = (uint8_t *)key;
	sb->idempotency_key.len = key ? key_len : 0;
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_SUBMIT_BATCH;
	req->submit_batch = sb;
}

/* NotifyCommit of a block at block_timestamp_us committing n_digests
 * batches. */
static inline void
qs_test_commit_request(Quorumstore__V1__Request *req, Quorumstore__V1__NotifyCommitRequest *nc,
                       uint64_t block_timestamp_us, const ProtobufCBinaryData *digests,
                       size_t n_digests)
{
	quorumstore__v1__request__init(req);
	quorumstore__v1__notify_commit_request__init(nc);
	nc->block_timestamp_us = block_timestamp_us;
	nc->n_digests = n_digests;
	nc->digests = (ProtobufCBinaryData *)digests;
	req->body_case = QUORUMSTORE__V1__REQUEST__BODY_NOTIFY_COMMIT;
	req->notify_commit = nc;
}

#endif
