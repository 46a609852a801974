/*
 * Unit tests of daemon/notify: the exact sd_notify datagrams, the status
 * refresh, the start-timeout extension and the watchdog.
 *
 * Each test binds its own AF_UNIX datagram socket in a fresh directory and
 * points NOTIFY_SOCKET at it (and WATCHDOG_USEC/WATCHDOG_PID where the
 * watchdog is under test). Check runs each test in a forked child, so the
 * environment and WATCHDOG_PID (the child's pid) are per test.
 */
#include "daemon/notify.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#define MAX_MSGS 512

/*
 * Datagrams received so far, by a thread that reads the socket at once: a
 * Unix datagram socket queues only net.unix.max_dgram_qlen (often 10)
 * messages before the sender blocks.
 */
static char *msgs[MAX_MSGS];
static size_t n_msgs;
static pthread_mutex_t msgs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t receiver;
static atomic_bool receiver_stop;
static char dir[64];
static int sock = -1;

struct fake_daemon {
	int healthy;
	int healthy_calls;
	struct qs_notify_status st;
};

static int
fake_healthy(void *arg)
{
	struct fake_daemon *d = arg;

	d->healthy_calls++;
	return d->healthy;
}

static void
fake_status(void *arg, struct qs_notify_status *st)
{
	*st = ((struct fake_daemon *)arg)->st;
}

static void *
receive_main(void *arg)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	char buf[4096];
	ssize_t len;

	while (!atomic_load(&receiver_stop)) {
		if (poll(&pfd, 1, 10) != 1)
			continue;
		len = recv(sock, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (len < 0)
			continue;
		buf[len] = '\0';
		pthread_mutex_lock(&msgs_lock);
		if (n_msgs < MAX_MSGS)
			msgs[n_msgs++] = strdup(buf);
		pthread_mutex_unlock(&msgs_lock);
	}
	return NULL;
}

static void
setup(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	qs_test_mkdtemp(dir, sizeof(dir));
	ck_assert_int_lt(snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify.sock", dir),
	                 (int)sizeof(sun.sun_path));
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sock, 0);
	ck_assert_int_eq(bind(sock, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	atomic_store(&receiver_stop, false);
	ck_assert_int_eq(pthread_create(&receiver, NULL, receive_main, NULL), 0);
}

static void
teardown(void)
{
	atomic_store(&receiver_stop, true);
	pthread_join(receiver, NULL);
	for (size_t i = 0; i < n_msgs; i++)
		free(msgs[i]);
	n_msgs = 0;
	if (sock >= 0)
		close(sock);
	sock = -1;
	qs_test_rmtree(dir);
}

/* How many datagrams arrived, once the receiver caught up with the sender. */
static size_t
received(void)
{
	size_t n;

	usleep(50 * 1000);
	pthread_mutex_lock(&msgs_lock);
	n = n_msgs;
	for (size_t i = 0; i < n; i++)
		ck_assert_ptr_nonnull(msgs[i]);
	pthread_mutex_unlock(&msgs_lock);
	return n;
}

/* The i-th datagram (call received() first). */
static const char *
msg(size_t i)
{
	const char *m;

	pthread_mutex_lock(&msgs_lock);
	m = i < n_msgs ? msgs[i] : "";
	pthread_mutex_unlock(&msgs_lock);
	return m;
}

/* Datagrams from the `from`-th on equal to `want` (or starting with it). */
static size_t
count_from(size_t from, const char *want, bool prefix)
{
	size_t k = 0, n = received();

	for (size_t i = from; i < n; i++)
		k += prefix ? strncmp(msg(i), want, strlen(want)) == 0 : strcmp(msg(i), want) == 0;
	return k;
}

static size_t
count(const char *want)
{
	return count_from(0, want, false);
}

static void
run_loop_ms(struct event_base *base, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	ck_assert_int_eq(event_base_loopexit(base, &tv), 0);
	ck_assert_int_ge(event_base_dispatch(base), 0);
}

static void
set_watchdog_env(const char *usec)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	ck_assert_int_eq(setenv("WATCHDOG_USEC", usec, 1), 0);
	ck_assert_int_eq(setenv("WATCHDOG_PID", pid, 1), 0);
}

static struct qs_notify *
notify_new(struct event_base *base, struct fake_daemon *d, uint32_t status_ms, uint32_t extend_ms)
{
	struct qs_notify_ops ops = {
	    .healthy = fake_healthy,
	    .status = fake_status,
	    .arg = d,
	    .status_interval_ms = status_ms,
	    .extend_interval_ms = extend_ms,
	};
	struct qs_notify *n = NULL;

	ck_assert_int_eq(qs_notify_new(base, &ops, &n), 0);
	ck_assert_ptr_nonnull(n);
	return n;
}

static void
fake_init(struct fake_daemon *d)
{
	memset(d, 0, sizeof(*d));
	d->healthy = 1;
	d->st.epoch = 3;
	d->st.peers_connected = 1;
	d->st.peers_total = 3;
	d->st.batches = 10;
	d->st.proofs = 2;
	d->st.storage = "ok";
}

START_TEST(status_line_format)
{
	struct qs_notify_status st = {.epoch = 7,
	                              .peers_connected = 2,
	                              .peers_total = 3,
	                              .batches = 1200,
	                              .proofs = 40,
	                              .storage = "full"};
	char buf[QS_NOTIFY_STATUS_MAX];

	qs_notify_format_status(&st, buf, sizeof(buf));
	ck_assert_str_eq(buf, "epoch 7, peers 2/3, 1200 batches, 40 proofs, storage full");
	st.storage = NULL;
	qs_notify_format_status(&st, buf, sizeof(buf));
	ck_assert_str_eq(buf, "epoch 7, peers 2/3, 1200 batches, 40 proofs, storage -");
}
END_TEST

/* Recovery, READY, a reload, a status text and the stop, in this order. */
START_TEST(lifecycle_sends_the_exact_sequence)
{
	static const char *const want[] = {
	    "READY=1\nSTATUS=epoch 3, peers 1/3, 10 batches, 2 proofs, storage ok",
	    "RELOADING=1\nSTATUS=reloading the configuration",
	    "READY=1\nSTATUS=epoch 3, peers 1/3, 11 batches, 2 proofs, storage ok",
	    "STATUS=storage failed: disk gone",
	    "STOPPING=1\nSTATUS=stopping",
	};
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;
	size_t i, extends, total;

	fake_init(&d);
	n = notify_new(base, &d, 0, 40);
	ck_assert_uint_eq(received(), 0); /* creating sends nothing */
	ck_assert_int_eq(qs_notify_extend_begin(n, "recovering", 10 * 1000000), 0);
	usleep(250 * 1000);
	qs_notify_extend_end(n);
	ck_assert_int_gt(qs_notify_ready(n), 0);
	ck_assert_int_gt(qs_notify_reloading(n), 0);
	d.st.batches = 11;
	ck_assert_int_gt(qs_notify_ready(n), 0);
	ck_assert_int_gt(qs_notify_status_text(n, "storage failed:\ndisk gone"), 0);
	ck_assert_int_gt(qs_notify_stopping(n), 0);
	qs_notify_free(n);

	total = received();
	for (extends = 0; extends < total; extends++)
		if (strcmp(msg(extends), "EXTEND_TIMEOUT_USEC=120000\nSTATUS=recovering (0 s)") !=
		    0)
			break;
	ck_assert_msg(extends >= 2 && extends <= 8, "%zu extensions in 250 ms at 40 ms", extends);
	ck_assert_uint_eq(total, extends + sizeof(want) / sizeof(want[0]));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_str_eq(msg(extends + i), want[i]);
	event_base_free(base);
}
END_TEST

START_TEST(without_notify_socket_nothing_is_sent)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;

	fake_init(&d);
	unsetenv("NOTIFY_SOCKET");
	set_watchdog_env("100000");
	n = notify_new(base, &d, 10, 10);
	ck_assert_int_eq(qs_notify_extend_begin(n, "recovering", 1000000), 0);
	qs_notify_extend_end(n);
	ck_assert_int_eq(qs_notify_ready(n), 0);
	run_loop_ms(base, 120);
	ck_assert_int_eq(qs_notify_stopping(n), 0);
	qs_notify_free(n);
	ck_assert_uint_eq(received(), 0);
	event_base_free(base);
}
END_TEST

/* STATUS= goes out on the status timer only when the line changed. */
START_TEST(status_is_sent_when_it_changes)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;

	fake_init(&d);
	n = notify_new(base, &d, 20, 0);
	qs_notify_ready(n);
	run_loop_ms(base, 120);
	ck_assert_uint_eq(received(), 1);
	ck_assert_uint_eq(count_from(0, "READY=1\n", true), 1);
	d.st.peers_connected = 3;
	d.st.storage = "full";
	run_loop_ms(base, 120);
	ck_assert_uint_eq(received(), 2);
	ck_assert_str_eq(msg(1), "STATUS=epoch 3, peers 3/3, 10 batches, 2 proofs, storage full");
	/* After STOPPING the line stays "stopping". */
	qs_notify_stopping(n);
	d.st.batches = 99;
	run_loop_ms(base, 120);
	ck_assert_uint_eq(received(), 3);
	ck_assert_str_eq(msg(2), "STOPPING=1\nSTATUS=stopping");
	qs_notify_free(n);
	event_base_free(base);
}
END_TEST

START_TEST(watchdog_pings_at_half_the_interval_while_healthy)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;
	size_t pings;

	fake_init(&d);
	set_watchdog_env("100000");
	n = notify_new(base, &d, 0, 0);
	ck_assert_uint_eq(qs_notify_watchdog_usec(n), 100000);
	/* No ping before READY: systemd's watchdog starts with it. */
	run_loop_ms(base, 150);
	ck_assert_uint_eq(received(), 0);
	qs_notify_ready(n);
	run_loop_ms(base, 520);
	pings = count("WATCHDOG=1");
	ck_assert_msg(pings >= 5 && pings <= 11, "%zu pings in 520 ms at 50 ms", pings);
	ck_assert_uint_eq(received(), pings + 1);
	ck_assert_int_eq((int)pings, d.healthy_calls);
	qs_notify_free(n);
	event_base_free(base);
}
END_TEST

START_TEST(watchdog_withheld_while_unhealthy)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;
	size_t from;

	fake_init(&d);
	set_watchdog_env("100000");
	n = notify_new(base, &d, 0, 0);
	qs_notify_ready(n);
	from = received();
	d.healthy = 0;
	run_loop_ms(base, 400);
	ck_assert_uint_eq(count_from(from, "WATCHDOG=1", false), 0);
	ck_assert_int_ge(d.healthy_calls, 4);
	d.healthy = 1;
	run_loop_ms(base, 300);
	ck_assert_uint_ge(count_from(from, "WATCHDOG=1", false), 2);
	qs_notify_free(n);
	event_base_free(base);
}
END_TEST

struct blocker {
	size_t before; /* pings when the loop blocked */
	size_t during; /* pings that arrived while it was blocked */
};

/* A callback that blocks the loop for 400 ms: no ping may arrive meanwhile. */
static void
block_loop(evutil_socket_t fd, short what, void *arg)
{
	struct blocker *b = arg;

	b->before = count("WATCHDOG=1"); /* received() lets the receiver catch up */
	usleep(400 * 1000);
	b->during = count("WATCHDOG=1") - b->before;
}

START_TEST(watchdog_stops_while_the_loop_is_blocked)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct blocker b = {0, 0};
	struct timeval at = {0, 200 * 1000};
	struct qs_notify *n;

	fake_init(&d);
	set_watchdog_env("100000");
	n = notify_new(base, &d, 0, 0);
	qs_notify_ready(n);
	ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, block_loop, &b, &at), 0);
	run_loop_ms(base, 1000);
	ck_assert_uint_ge(b.before, 2);
	ck_assert_uint_eq(b.during, 0);
	ck_assert_uint_ge(count("WATCHDOG=1") - b.before, 2);
	qs_notify_free(n);
	event_base_free(base);
}
END_TEST

START_TEST(no_watchdog_without_systemd_asking)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;

	fake_init(&d);
	n = notify_new(base, &d, 0, 0);
	ck_assert_uint_eq(qs_notify_watchdog_usec(n), 0);
	qs_notify_ready(n);
	run_loop_ms(base, 200);
	qs_notify_free(n);
	/* WATCHDOG_PID of another process: not ours to ping. */
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "100000", 1), 0);
	ck_assert_int_eq(setenv("WATCHDOG_PID", "1", 1), 0);
	n = notify_new(base, &d, 0, 0);
	ck_assert_uint_eq(qs_notify_watchdog_usec(n), 0);
	qs_notify_ready(n);
	run_loop_ms(base, 200);
	qs_notify_free(n);
	ck_assert_uint_eq(count("WATCHDOG=1"), 0);
	ck_assert_int_eq(d.healthy_calls, 0);
	event_base_free(base);
}
END_TEST

/* The extension stops by itself after max_us; a second begin renames it. */
START_TEST(extension_is_bounded_and_renamed)
{
	struct event_base *base = event_base_new();
	struct fake_daemon d;
	struct qs_notify *n;
	size_t first, second, total;

	fake_init(&d);
	n = notify_new(base, &d, 0, 20);
	ck_assert_int_eq(qs_notify_extend_begin(n, "opening the database", 400 * 1000), 0);
	usleep(60 * 1000);
	ck_assert_int_eq(qs_notify_extend_begin(n, "recovering", 400 * 1000), 0);
	usleep(700 * 1000);
	first = count_from(0, "EXTEND_TIMEOUT_USEC=60000\nSTATUS=opening the database (", true);
	second = count_from(0, "EXTEND_TIMEOUT_USEC=60000\nSTATUS=recovering (", true);
	total = received();
	ck_assert_msg(first >= 1 && second >= 1, "first %zu second %zu", first, second);
	ck_assert_uint_eq(total, first + second);
	/* 400 ms at 20 ms: about 20 in all, and none once the bound passed. */
	ck_assert_uint_le(total, 22);
	usleep(100 * 1000);
	ck_assert_uint_eq(received(), total);
	qs_notify_extend_end(n);
	qs_notify_extend_end(n);
	qs_notify_free(n);
	event_base_free(base);
}
END_TEST

static Suite *
notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, status_line_format);
	tcase_add_test(tc, lifecycle_sends_the_exact_sequence);
	tcase_add_test(tc, without_notify_socket_nothing_is_sent);
	tcase_add_test(tc, status_is_sent_when_it_changes);
	tcase_add_test(tc, watchdog_pings_at_half_the_interval_while_healthy);
	tcase_add_test(tc, watchdog_withheld_while_unhealthy);
	tcase_add_test(tc, watchdog_stops_while_the_loop_is_blocked);
	tcase_add_test(tc, no_watchdog_without_systemd_asking);
	tcase_add_test(tc, extension_is_bounded_and_renamed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(notify_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
