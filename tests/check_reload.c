/*
 * Unit tests of the RPC server's operations side: qs_rpc_reload() after the
 * config changed in place (allowed uids revoked, frame limit), and serving a
 * socket passed by systemd (sd_listen_fds_with_names(), name "rpc").
 *
 * Everything runs on the test's thread: a client connect() completes from
 * the listen backlog, then the loop runs in non-blocking steps until the
 * server has taken the connection.
 */
#include "config/config.h"
#include "core/error.h"
#include "daemon/metrics.h"
#include "net/frame.h"
#include "net/rpc.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

static char dir[64];
static char path[100];
static struct qs_config cfg;

static void
fake_request(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE, "test");
	qs_frame_msg_free(&req->base);
}

static void
setup(void)
{
	qs_test_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/rpc.sock", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.rpc_socket = path;
	cfg.limits.frame_max_bytes = 64 * 1024;
	cfg.allowed_uids[0] = geteuid();
	cfg.n_allowed_uids = 1;
}

static void
teardown(void)
{
	qs_test_rmtree(dir);
}

static int
rpc_start(struct event_base *base, struct qs_metrics *m, struct qs_rpc **out, char *err, size_t len)
{
	struct qs_rpc_ops ops = {.request = fake_request};
	struct qs_rpc_info info = {.server_version = "test", .epoch = 1, .chain_id = 1};

	return qs_rpc_start(base, &cfg, &ops, NULL, &info, m, out, err, len);
}

static int
client_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void
spin(struct event_base *base, int steps)
{
	for (int i = 0; i < steps; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* Has the server closed `fd`? Spins the loop meanwhile. */
static bool
closed_by_server(struct event_base *base, int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char c;

	for (int i = 0; i < 500; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 2) == 1)
			return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
	}
	return false;
}

static bool
metric_line(struct qs_metrics *m, const char *line)
{
	char *text = NULL;
	size_t len;
	bool found;

	ck_assert_int_eq(qs_metrics_render(m, &text, &len), 0);
	found = strstr(text, line) != NULL;
	free(text);
	return found;
}

START_TEST(reload_closes_connections_of_revoked_uids)
{
	struct event_base *base = event_base_new();
	struct qs_metrics *m = qs_metrics_new();
	struct qs_rpc *rpc = NULL;
	char err[256] = "";
	int fd, fd2;

	ck_assert_int_eq(rpc_start(base, m, &rpc, err, sizeof(err)), 0);
	fd = client_connect();
	ck_assert_int_ge(fd, 0);
	spin(base, 20);
	ck_assert(metric_line(m, "\nqsd_rpc_connections 1\n"));

	/* Still allowed (another uid added): the connection stays. */
	cfg.allowed_uids[1] = geteuid() + 1;
	cfg.n_allowed_uids = 2;
	qs_rpc_reload(rpc);
	ck_assert(!closed_by_server(base, fd));
	ck_assert(metric_line(m, "\nqsd_rpc_connections 1\n"));

	/* Our uid gone: closed, counted, and a new connection is refused. */
	cfg.allowed_uids[0] = geteuid() + 2;
	qs_rpc_reload(rpc);
	ck_assert(closed_by_server(base, fd));
	ck_assert(metric_line(m, "qsd_rpc_disconnects_total{reason=\"uid_revoked\"} 1\n"));
	ck_assert(metric_line(m, "\nqsd_rpc_connections 0\n"));
	fd2 = client_connect();
	ck_assert_int_ge(fd2, 0);
	ck_assert(closed_by_server(base, fd2));
	ck_assert(metric_line(m, "qsd_rpc_refused_total{reason=\"uid\"} 1\n"));
	close(fd);
	close(fd2);
	qs_rpc_free(rpc);
	event_base_loop(base, EVLOOP_NONBLOCK);
	qs_metrics_free(m);
	event_base_free(base);
}
END_TEST

/* A frame over the reloaded limit closes the connection. */
START_TEST(reload_takes_the_new_frame_limit)
{
	struct event_base *base = event_base_new();
	struct qs_metrics *m = qs_metrics_new();
	struct qs_rpc *rpc = NULL;
	uint8_t header[4] = {0, 0, 0x10, 0}; /* a 4 KiB frame */
	char err[256] = "";
	int fd;

	ck_assert_int_eq(rpc_start(base, m, &rpc, err, sizeof(err)), 0);
	cfg.limits.frame_max_bytes = 1024;
	qs_rpc_reload(rpc);
	fd = client_connect();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(send(fd, header, sizeof(header), MSG_NOSIGNAL), (ssize_t)sizeof(header));
	ck_assert(closed_by_server(base, fd));
	ck_assert(metric_line(m, "qsd_rpc_disconnects_total{reason=\"oversized_frame\"} 1\n"));
	close(fd);
	qs_rpc_free(rpc);
	event_base_loop(base, EVLOOP_NONBLOCK);
	qs_metrics_free(m);
	event_base_free(base);
}
END_TEST

/*
 * In a child: a listening socket at `sock_path` (NULL: none) becomes fd 3,
 * named `name`, as systemd passes it; then qs_rpc_start() with cfg. Exit
 * status: 10 + what the start returned, as below, or 1 on a setup failure.
 */
enum {
	ACT_SERVED = 10,     /* started on the passed socket, path left at free */
	ACT_BOUND = 11,      /* started on a socket of its own */
	ACT_REFUSED = 12,    /* QS_ECONFIG */
	ACT_OTHER_FAIL = 13, /* another error */
};

static int
activated_child(const char *sock_path, const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct event_base *base;
	struct qs_rpc *rpc = NULL;
	struct stat st;
	char err[256] = "", pid[32];
	int fd, rc, client;

	if (sock_path != NULL) {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
		    listen(fd, 8) != 0 || dup2(fd, 3) != 3)
			return 1;
		if (fd != 3)
			close(fd);
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_FDNAMES", name, 1);
	}
	base = event_base_new();
	rc = rpc_start(base, NULL, &rpc, err, sizeof(err));
	if (rc == QS_ECONFIG)
		return ACT_REFUSED;
	if (rc != 0)
		return ACT_OTHER_FAIL;
	/* The LISTEN_* variables are consumed. */
	if (getenv("LISTEN_FDS") != NULL)
		return 1;
	client = client_connect();
	if (client < 0)
		return 1;
	spin(base, 20);
	close(client);
	qs_rpc_free(rpc);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	/* qsd removes only a socket it bound itself. */
	return stat(path, &st) == 0 ? ACT_SERVED : ACT_BOUND;
}

static int
run_activated(const char *sock_path, const char *name)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(activated_child(sock_path, name));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(socket_passed_by_systemd_is_served_and_left)
{
	char other[160];

	ck_assert_int_eq(run_activated(path, "rpc"), ACT_SERVED);
	unlink(path);
	/* Another name is not ours: qsd binds the path itself. */
	ck_assert_int_eq(run_activated(NULL, NULL), ACT_BOUND);
	unlink(path);
	ck_assert_int_eq(run_activated(path, "metrics"), ACT_OTHER_FAIL);
	unlink(path);
	/* A passed socket at another path than rpc.socket is refused. */
	snprintf(other, sizeof(other), "%s/other.sock", dir);
	ck_assert_int_eq(run_activated(other, "rpc"), ACT_REFUSED);
}
END_TEST

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("rpc_ops");
	TCase *tc = tcase_create("rpc_ops");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, reload_closes_connections_of_revoked_uids);
	tcase_add_test(tc, reload_takes_the_new_frame_limit);
	tcase_add_test(tc, socket_passed_by_systemd_is_served_and_left);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reload_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
