/*
 * Unit tests for the metrics registry (daemon/metrics.c) and the HTTP
 * endpoint that serves it (net/http.c).
 */
#include "core/error.h"
#include "daemon/metrics.h"
#include "net/http.h"

#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define N_THREADS 4
#define N_UPDATES 100000

/* Renders `reg`, checking that the call succeeds and the length matches. */
static char *
render(struct qs_metrics *reg)
{
	char *text = NULL;
	size_t len = 0;

	ck_assert_int_eq(qs_metrics_render(reg, &text, &len), 0);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

static void
assert_render(struct qs_metrics *reg, const char *expected)
{
	char *text = render(reg);

	ck_assert_str_eq(text, expected);
	free(text);
}

START_TEST(render_empty_registry_is_empty)
{
	struct qs_metrics *reg = qs_metrics_new();

	ck_assert_ptr_nonnull(reg);
	assert_render(reg, "");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_counter_without_label)
{
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_counter(reg, "qsd_batches_received_total", "Batches received from peers.",
	                       NULL, NULL, 0);
	ck_assert_ptr_nonnull(m);
	qs_metric_add(m, 0, 3);
	qs_metric_add(m, 0, 39);
	assert_render(reg, "# HELP qsd_batches_received_total Batches received from peers.\n"
	                   "# TYPE qsd_batches_received_total counter\n"
	                   "qsd_batches_received_total 42\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_counter_with_label_escapes_values)
{
	static const char *const values[] = {"plain", "back\\slash", "quo\"te", "new\nline"};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_counter(reg, "qsd_errors_total", "Errors by reason.", "reason", values, 4);
	ck_assert_ptr_nonnull(m);
	qs_metric_add(m, 0, 1);
	qs_metric_add(m, 1, 2);
	qs_metric_add(m, 2, 3);
	qs_metric_add(m, 3, 4);
	assert_render(reg, "# HELP qsd_errors_total Errors by reason.\n"
	                   "# TYPE qsd_errors_total counter\n"
	                   "qsd_errors_total{reason=\"plain\"} 1\n"
	                   "qsd_errors_total{reason=\"back\\\\slash\"} 2\n"
	                   "qsd_errors_total{reason=\"quo\\\"te\"} 3\n"
	                   "qsd_errors_total{reason=\"new\\nline\"} 4\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_help_escapes_backslash_and_newline)
{
	struct qs_metrics *reg = qs_metrics_new();

	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "qsd_x", "a \\ b\nc \"d\"", NULL, NULL, 0));
	/* A double quote is not escaped in HELP, only in label values. */
	assert_render(reg, "# HELP qsd_x a \\\\ b\\nc \"d\"\n"
	                   "# TYPE qsd_x gauge\n"
	                   "qsd_x 0\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_gauge_set_and_add_negative)
{
	static const char *const values[] = {"a", "b"};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_gauge(reg, "qsd_queue_batches", "Batches queued.", "queue", values, 2);
	ck_assert_ptr_nonnull(m);
	qs_metric_set(m, 0, 10);
	qs_metric_gauge_add(m, 0, -3);
	qs_metric_gauge_add(m, 1, -5);
	assert_render(reg, "# HELP qsd_queue_batches Batches queued.\n"
	                   "# TYPE qsd_queue_batches gauge\n"
	                   "qsd_queue_batches{queue=\"a\"} 7\n"
	                   "qsd_queue_batches{queue=\"b\"} -5\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_histogram_cumulative_buckets_sum_count)
{
	static const double bounds[] = {0.001, 0.01, 0.1, 1};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_histogram(reg, "qsd_fsync_seconds", "Duration of fsync.", bounds, 4, NULL,
	                         NULL, 0);
	ck_assert_ptr_nonnull(m);
	qs_metric_observe(m, 0, 0.0005);
	qs_metric_observe(m, 0, 0.001); /* on the bound: le is inclusive */
	qs_metric_observe(m, 0, 0.05);
	qs_metric_observe(m, 0, 0.25);
	qs_metric_observe(m, 0, 0.5);
	qs_metric_observe(m, 0, 2);
	qs_metric_observe(m, 0, INFINITY);
	assert_render(reg, "# HELP qsd_fsync_seconds Duration of fsync.\n"
	                   "# TYPE qsd_fsync_seconds histogram\n"
	                   "qsd_fsync_seconds_bucket{le=\"0.001\"} 2\n"
	                   "qsd_fsync_seconds_bucket{le=\"0.01\"} 2\n"
	                   "qsd_fsync_seconds_bucket{le=\"0.1\"} 3\n"
	                   "qsd_fsync_seconds_bucket{le=\"1\"} 5\n"
	                   "qsd_fsync_seconds_bucket{le=\"+Inf\"} 7\n"
	                   "qsd_fsync_seconds_sum +Inf\n"
	                   "qsd_fsync_seconds_count 7\n");
	ck_assert_uint_eq(qs_metric_value(m, 0), 7);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_histogram_label_comes_before_le)
{
	static const double bounds[] = {1024, 65536};
	static const char *const values[] = {"peer", "rpc"};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_histogram(reg, "qsd_frame_bytes", "Frame sizes.", bounds, 2, "source",
	                         values, 2);
	ck_assert_ptr_nonnull(m);
	qs_metric_observe(m, 1, 100);
	qs_metric_observe(m, 1, 2000);
	assert_render(reg, "# HELP qsd_frame_bytes Frame sizes.\n"
	                   "# TYPE qsd_frame_bytes histogram\n"
	                   "qsd_frame_bytes_bucket{source=\"peer\",le=\"1024\"} 0\n"
	                   "qsd_frame_bytes_bucket{source=\"peer\",le=\"65536\"} 0\n"
	                   "qsd_frame_bytes_bucket{source=\"peer\",le=\"+Inf\"} 0\n"
	                   "qsd_frame_bytes_sum{source=\"peer\"} 0\n"
	                   "qsd_frame_bytes_count{source=\"peer\"} 0\n"
	                   "qsd_frame_bytes_bucket{source=\"rpc\",le=\"1024\"} 1\n"
	                   "qsd_frame_bytes_bucket{source=\"rpc\",le=\"65536\"} 2\n"
	                   "qsd_frame_bytes_bucket{source=\"rpc\",le=\"+Inf\"} 2\n"
	                   "qsd_frame_bytes_sum{source=\"rpc\"} 2100\n"
	                   "qsd_frame_bytes_count{source=\"rpc\"} 2\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_doubles_shortest_round_trip)
{
	static const double bounds[] = {1e-9, 0.1, 0.3, 2.5e10};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;
	char *text;

	m = qs_metrics_histogram(reg, "qsd_d_seconds", "Doubles.", bounds, 4, NULL, NULL, 0);
	ck_assert_ptr_nonnull(m);
	qs_metric_observe(m, 0, 0.1);
	qs_metric_observe(m, 0, 0.2);
	text = render(reg);
	ck_assert_ptr_nonnull(strstr(text, "qsd_d_seconds_bucket{le=\"1e-09\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "qsd_d_seconds_bucket{le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "qsd_d_seconds_bucket{le=\"0.3\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "qsd_d_seconds_bucket{le=\"25000000000\"} 2\n"));
	/* 0.1 + 0.2 is not 0.3; the sum keeps every bit. */
	ck_assert_ptr_nonnull(strstr(text, "qsd_d_seconds_sum 0.30000000000000004\n"));
	ck_assert(qs_metric_histogram_sum(m, 0) == 0.1 + 0.2);
	free(text);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_info_family_has_value_one)
{
	static const char *const names[] = {"version", "rocksdb", "libevent", "openssl"};
	static const char *const values[] = {"0.1.0", "7.8.3", "2.1.12-stable", "3.0.\"x\""};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;

	m = qs_metrics_info(reg, "qsd_build_info", "Versions of qsd and its libraries.", names,
	                    values, 4);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(qs_metric_value(m, 0), 1);
	assert_render(reg, "# HELP qsd_build_info Versions of qsd and its libraries.\n"
	                   "# TYPE qsd_build_info gauge\n"
	                   "qsd_build_info{version=\"0.1.0\",rocksdb=\"7.8.3\","
	                   "libevent=\"2.1.12-stable\",openssl=\"3.0.\\\"x\\\"\"} 1\n");
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_keeps_registration_order)
{
	struct qs_metrics *reg = qs_metrics_new();

	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "qsd_b", "B.", NULL, NULL, 0));
	ck_assert_ptr_nonnull(qs_metrics_counter(reg, "qsd_a_total", "A.", NULL, NULL, 0));
	assert_render(reg, "# HELP qsd_b B.\n"
	                   "# TYPE qsd_b gauge\n"
	                   "qsd_b 0\n"
	                   "# HELP qsd_a_total A.\n"
	                   "# TYPE qsd_a_total counter\n"
	                   "qsd_a_total 0\n");
	qs_metrics_free(reg);
}
END_TEST

static int fn_calls;

static double
free_bytes(void *arg)
{
	fn_calls++;
	return *(double *)arg;
}

static double
fn_one(void *arg)
{
	(void)arg;
	return 1;
}

static double
fn_two(void *arg)
{
	(void)arg;
	return 2;
}

START_TEST(gauge_fn_called_at_render_time)
{
	struct qs_metrics *reg = qs_metrics_new();
	double value = 1.5e9;
	struct qs_metric *m;

	fn_calls = 0;
	m = qs_metrics_gauge_fn(reg, "qsd_disk_free_bytes", "Free bytes on the data disk.",
	                        free_bytes, &value);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(fn_calls, 0);
	assert_render(reg, "# HELP qsd_disk_free_bytes Free bytes on the data disk.\n"
	                   "# TYPE qsd_disk_free_bytes gauge\n"
	                   "qsd_disk_free_bytes 1500000000\n");
	ck_assert_int_eq(fn_calls, 1);
	value = 0.25;
	assert_render(reg, "# HELP qsd_disk_free_bytes Free bytes on the data disk.\n"
	                   "# TYPE qsd_disk_free_bytes gauge\n"
	                   "qsd_disk_free_bytes 0.25\n");
	ck_assert_int_eq(fn_calls, 2);
	value = NAN;
	assert_render(reg, "# HELP qsd_disk_free_bytes Free bytes on the data disk.\n"
	                   "# TYPE qsd_disk_free_bytes gauge\n"
	                   "qsd_disk_free_bytes NaN\n");
	value = 7.9;
	ck_assert_uint_eq(qs_metric_value(m, 0), 7);
	ck_assert_ptr_null(qs_metrics_gauge_fn(reg, "qsd_other", "Other.", NULL, NULL));
	qs_metrics_free(reg);
}
END_TEST

struct worker {
	struct qs_metric *counter;
	struct qs_metric *gauge;
	struct qs_metric *histogram;
	size_t idx;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < N_UPDATES; i++) {
		qs_metric_add(w->counter, 0, 1);
		qs_metric_add(w->counter, w->idx, 1);
		qs_metric_gauge_add(w->gauge, 0, (i & 1) ? -1 : 1);
		qs_metric_observe(w->histogram, 0, (double)(i % 4));
	}
	return NULL;
}

static void
run_workers(struct worker *w)
{
	pthread_t t[N_THREADS];
	size_t i;

	for (i = 0; i < N_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (i = 0; i < N_THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

START_TEST(counter_from_four_threads_is_exact)
{
	static const char *const values[] = {"all", "t1", "t2", "t3", "t4"};
	static const double bounds[] = {1, 2};
	struct qs_metrics *reg = qs_metrics_new();
	struct worker w[N_THREADS];
	struct qs_metric *c, *g, *h;
	size_t i;

	c = qs_metrics_counter(reg, "qsd_ops_total", "Ops.", "thread", values, 5);
	g = qs_metrics_gauge(reg, "qsd_inflight", "In flight.", NULL, NULL, 0);
	h = qs_metrics_histogram(reg, "qsd_op_seconds", "Op time.", bounds, 2, NULL, NULL, 0);
	ck_assert(c != NULL && g != NULL && h != NULL);
	for (i = 0; i < N_THREADS; i++) {
		w[i].counter = c;
		w[i].gauge = g;
		w[i].histogram = h;
		w[i].idx = i + 1;
	}
	run_workers(w);
	ck_assert_uint_eq(qs_metric_value(c, 0), (uint64_t)N_THREADS * N_UPDATES);
	for (i = 1; i <= N_THREADS; i++)
		ck_assert_uint_eq(qs_metric_value(c, i), N_UPDATES);
	ck_assert_int_eq(qs_metric_gauge_value(g, 0), 0);
	ck_assert_uint_eq(qs_metric_value(h, 0), (uint64_t)N_THREADS * N_UPDATES);
	/* Each thread observes 0, 1, 2, 3 in turn: 1.5 on average, exactly. */
	ck_assert(qs_metric_histogram_sum(h, 0) == 1.5 * N_THREADS * N_UPDATES);
	ck_assert_uint_eq(qs_metrics_dropped_updates(reg), 0);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(render_while_threads_update)
{
	static const double bounds[] = {1, 2};
	struct qs_metrics *reg = qs_metrics_new();
	pthread_t t[N_THREADS];
	struct worker w[N_THREADS];
	struct qs_metric *c, *g, *h;
	char *text;
	size_t i;
	int r;

	c = qs_metrics_counter(reg, "qsd_ops_total", "Ops.", NULL, NULL, 0);
	g = qs_metrics_gauge(reg, "qsd_inflight", "In flight.", NULL, NULL, 0);
	h = qs_metrics_histogram(reg, "qsd_op_seconds", "Op time.", bounds, 2, NULL, NULL, 0);
	ck_assert(c != NULL && g != NULL && h != NULL);
	for (i = 0; i < N_THREADS; i++) {
		w[i].counter = c;
		w[i].gauge = g;
		w[i].histogram = h;
		w[i].idx = 7; /* out of range: dropped, never written */
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (r = 0; r < 20; r++) {
		text = render(reg);
		ck_assert_ptr_nonnull(strstr(text, "# TYPE qsd_op_seconds histogram\n"));
		free(text);
	}
	for (i = 0; i < N_THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_uint_eq(qs_metric_value(c, 0), (uint64_t)N_THREADS * N_UPDATES);
	ck_assert_uint_eq(qs_metrics_dropped_updates(reg), (uint64_t)N_THREADS * N_UPDATES);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(invalid_metric_names_rejected)
{
	static const char *const bad[] = {
	    "", "1abc", "a-b", "a b", "Abc", "qsdX", "a:b", "é", "a.b",
	};
	struct qs_metrics *reg = qs_metrics_new();
	char name[32];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* "" + "_total" is the valid name "_total". */
		snprintf(name, sizeof(name), "%s_total", bad[i]);
		if (bad[i][0] != '\0')
			ck_assert_ptr_null(qs_metrics_counter(reg, name, "h", NULL, NULL, 0));
		ck_assert_ptr_null(qs_metrics_gauge(reg, bad[i], "h", NULL, NULL, 0));
	}
	ck_assert_ptr_null(qs_metrics_gauge(reg, NULL, "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(NULL, "qsd_a", "h", NULL, NULL, 0));
	/* Suffixes: counters end in _total, nothing else does, nor in _count etc. */
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_batches", "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_batches_total", "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_batches_count", "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_batches_sum", "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_batches_bucket", "h", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_info(reg, "qsd_build", "h", (const char *const[]){"v"},
	                                   (const char *const[]){"1"}, 1));
	/* Help text is required and must be UTF-8. */
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", NULL, NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", "", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", "bad \xff byte", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", "overlong \xc0\xaf", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", "cut \xe2\x82", NULL, NULL, 0));
	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "qsd_a", "euro \xe2\x82\xac", NULL, NULL, 0));
	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "_x9", "underscore first", NULL, NULL, 0));
	qs_metrics_free(reg);
}
END_TEST

START_TEST(invalid_label_names_rejected)
{
	static const char *const v[] = {"x"};
	static const char *const bad[] = {"", "1a", "a-b", "Reason", "__name", "a:b"};
	static const double bounds[] = {1};
	struct qs_metrics *reg = qs_metrics_new();
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_a_total", "h", bad[i], v, 1));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_h_seconds", "h", bounds, 1, "le", v, 1));
	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "qsd_g", "h", "le", v, 1));
	/* Info label names must be valid and distinct; values may repeat. */
	ck_assert_ptr_null(qs_metrics_info(reg, "qsd_a_info", "h", (const char *const[]){"a", "a"},
	                                   (const char *const[]){"1", "2"}, 2));
	ck_assert_ptr_null(qs_metrics_info(reg, "qsd_b_info", "h", (const char *const[]){"a", "B"},
	                                   (const char *const[]){"1", "2"}, 2));
	ck_assert_ptr_nonnull(qs_metrics_info(reg, "qsd_c_info", "h",
	                                      (const char *const[]){"a", "b"},
	                                      (const char *const[]){"1", "1"}, 2));
	qs_metrics_free(reg);
}
END_TEST

START_TEST(same_family_registered_again)
{
	static const double bounds[] = {1, 2};
	static const char *const v[] = {"a", "b"};
	static const char *const w[] = {"a", "c"};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *c = qs_metrics_counter(reg, "qsd_c_total", "C.", "k", v, 2);
	struct qs_metric *h = qs_metrics_histogram(reg, "qsd_h", "H.", bounds, 2, NULL, NULL, 0);
	struct qs_metric *g = qs_metrics_gauge_fn(reg, "qsd_g", "G.", fn_one, NULL);

	ck_assert_ptr_nonnull(c);
	qs_metric_add(c, 1, 5);
	/* Exactly as before: the same family, values kept. */
	ck_assert_ptr_eq(qs_metrics_counter(reg, "qsd_c_total", "C.", "k", v, 2), c);
	ck_assert_uint_eq(qs_metric_value(c, 1), 5);
	ck_assert_ptr_eq(qs_metrics_histogram(reg, "qsd_h", "H.", bounds, 2, NULL, NULL, 0), h);
	/* Any difference is refused. */
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_c_total", "C.", "k", w, 2));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_c_total", "C.", "j", v, 2));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_c_total", "C.", "k", v, 1));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_c_total", "C.", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_h", "H.", bounds, 1, NULL, NULL, 0));
	/* A callback gauge takes the new callback. */
	ck_assert_uint_eq(qs_metric_value(g, 0), 1);
	ck_assert_ptr_eq(qs_metrics_gauge_fn(reg, "qsd_g", "G.", fn_two, NULL), g);
	ck_assert_uint_eq(qs_metric_value(g, 0), 2);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(counter_with_two_labels)
{
	static const char *const src[] = {"memory", "disk"};
	static const char *const res[] = {"ok", "miss", "error"};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *c =
	    qs_metrics_counter2(reg, "qsd_f_total", "F.", "source", src, 2, "result", res, 3);
	char *text;

	ck_assert_ptr_nonnull(c);
	qs_metric_add(c, 1 * 3 + 1, 4); /* disk, miss */
	qs_metric_add(c, 2 * 3, 1);     /* out of range: dropped */
	ck_assert_ptr_eq(
	    qs_metrics_counter2(reg, "qsd_f_total", "F.", "source", src, 2, "result", res, 3), c);
	ck_assert_ptr_null(
	    qs_metrics_counter2(reg, "qsd_f_total", "F.", "source", src, 2, "result", res, 2));
	ck_assert_ptr_null(
	    qs_metrics_counter2(reg, "qsd_g_total", "G.", "source", src, 2, "source", res, 3));
	text = render(reg);
	ck_assert_ptr_nonnull(strstr(text, "qsd_f_total{source=\"disk\",result=\"miss\"} 4\n"));
	ck_assert_ptr_nonnull(strstr(text, "qsd_f_total{source=\"memory\",result=\"error\"} 0\n"));
	ck_assert_uint_eq(qs_metrics_dropped_updates(reg), 1);
	free(text);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(duplicate_family_rejected)
{
	static const double bounds[] = {1};
	struct qs_metrics *reg = qs_metrics_new();

	ck_assert_ptr_nonnull(qs_metrics_gauge(reg, "qsd_a", "First.", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_gauge(reg, "qsd_a", "Again.", NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_a", "Again.", bounds, 1, NULL, NULL, 0));
	ck_assert_ptr_nonnull(qs_metrics_process_start_time(reg));
	ck_assert_ptr_null(qs_metrics_process_start_time(reg));
	ck_assert_ptr_null(
	    qs_metrics_gauge(reg, "qsd_process_start_time_seconds", "h", NULL, NULL, 0));
	/* The rejected families left no trace. */
	ck_assert_int_eq(qs_metric_value(NULL, 0), 0);
	{
		char *text = render(reg);

		ck_assert_ptr_null(strstr(text, "Again."));
		free(text);
	}
	qs_metrics_free(reg);
}
END_TEST

START_TEST(label_values_bounded_and_fixed)
{
	const char *values[QS_METRICS_MAX_VALUES + 1];
	char storage[QS_METRICS_MAX_VALUES + 1][8];
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *m;
	char *text;
	size_t i;

	for (i = 0; i <= QS_METRICS_MAX_VALUES; i++) {
		snprintf(storage[i], sizeof(storage[i]), "v%zu", i);
		values[i] = storage[i];
	}
	ck_assert_ptr_null(
	    qs_metrics_counter(reg, "qsd_a_total", "h", "k", values, QS_METRICS_MAX_VALUES + 1));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_a_total", "h", "k", values, 0));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_a_total", "h", "k", NULL, 2));
	ck_assert_ptr_null(qs_metrics_counter(reg, "qsd_a_total", "h", NULL, values, 2));
	ck_assert_ptr_null(
	    qs_metrics_counter(reg, "qsd_a_total", "h", "k", (const char *const[]){"x", "x"}, 2));
	ck_assert_ptr_null(
	    qs_metrics_counter(reg, "qsd_a_total", "h", "k", (const char *const[]){"x", ""}, 2));
	ck_assert_ptr_null(
	    qs_metrics_counter(reg, "qsd_a_total", "h", "k", (const char *const[]){"x", NULL}, 2));
	ck_assert_ptr_null(
	    qs_metrics_counter(reg, "qsd_a_total", "h", "k", (const char *const[]){"\xff"}, 1));
	m = qs_metrics_counter(reg, "qsd_a_total", "h", "k", values, QS_METRICS_MAX_VALUES);
	ck_assert_ptr_nonnull(m);
	/* The values were copied: changing the caller's strings changes nothing. */
	strcpy(storage[0], "zz");
	qs_metric_add(m, QS_METRICS_MAX_VALUES - 1, 5);
	text = render(reg);
	ck_assert_ptr_nonnull(strstr(text, "qsd_a_total{k=\"v0\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "qsd_a_total{k=\"v63\"} 5\n"));
	ck_assert_ptr_null(strstr(text, "zz"));
	free(text);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(histogram_bounds_must_be_finite_and_increasing)
{
	double many[QS_METRICS_MAX_BOUNDS + 1];
	struct qs_metrics *reg = qs_metrics_new();
	size_t i;

	for (i = 0; i <= QS_METRICS_MAX_BOUNDS; i++)
		many[i] = (double)i;
	ck_assert_ptr_null(
	    qs_metrics_histogram(reg, "qsd_h", "h", (const double[]){1, 1}, 2, NULL, NULL, 0));
	ck_assert_ptr_null(
	    qs_metrics_histogram(reg, "qsd_h", "h", (const double[]){2, 1}, 2, NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_h", "h", (const double[]){1, INFINITY}, 2,
	                                        NULL, NULL, 0));
	ck_assert_ptr_null(
	    qs_metrics_histogram(reg, "qsd_h", "h", (const double[]){NAN}, 1, NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_h", "h", NULL, 0, NULL, NULL, 0));
	ck_assert_ptr_null(qs_metrics_histogram(reg, "qsd_h", "h", many, QS_METRICS_MAX_BOUNDS + 1,
	                                        NULL, NULL, 0));
	ck_assert_ptr_nonnull(
	    qs_metrics_histogram(reg, "qsd_h", "h", many, QS_METRICS_MAX_BOUNDS, NULL, NULL, 0));
	ck_assert_ptr_nonnull(qs_metrics_histogram(reg, "qsd_neg", "h", (const double[]){-1, 0, 1},
	                                           3, NULL, NULL, 0));
	qs_metrics_free(reg);
}
END_TEST

START_TEST(label_index_out_of_range_is_ignored)
{
	static const char *const values[] = {"a", "b"};
	static const double bounds[] = {1};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *c, *g, *h, *plain;

	c = qs_metrics_counter(reg, "qsd_c_total", "h", "k", values, 2);
	g = qs_metrics_gauge(reg, "qsd_g", "h", "k", values, 2);
	h = qs_metrics_histogram(reg, "qsd_h", "h", bounds, 1, "k", values, 2);
	plain = qs_metrics_counter(reg, "qsd_plain_total", "h", NULL, NULL, 0);
	ck_assert(c != NULL && g != NULL && h != NULL && plain != NULL);
	qs_metric_add(c, 2, 1);
	qs_metric_add(c, SIZE_MAX, 1);
	qs_metric_set(g, 2, 9);
	qs_metric_gauge_add(g, 1000000, 9);
	qs_metric_observe(h, 2, 0.5);
	qs_metric_observe(h, SIZE_MAX / 2, 0.5);
	qs_metric_add(plain, 1, 1);
	ck_assert_uint_eq(qs_metrics_dropped_updates(reg), 7);
	ck_assert_uint_eq(qs_metric_value(c, 0) + qs_metric_value(c, 1), 0);
	ck_assert_uint_eq(qs_metric_value(g, 0) + qs_metric_value(g, 1), 0);
	ck_assert_uint_eq(qs_metric_value(h, 0) + qs_metric_value(h, 1), 0);
	ck_assert_uint_eq(qs_metric_value(plain, 0), 0);
	ck_assert_uint_eq(qs_metric_value(c, 2), 0);
	ck_assert_uint_eq(qs_metric_value(plain, 1), 0);
	qs_metric_add(plain, 0, 1);
	ck_assert_uint_eq(qs_metric_value(plain, 0), 1);
	qs_metrics_free(reg);
}
END_TEST

START_TEST(wrong_kind_update_is_ignored)
{
	static const double bounds[] = {1};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *c, *g, *h;

	c = qs_metrics_counter(reg, "qsd_c_total", "h", NULL, NULL, 0);
	g = qs_metrics_gauge(reg, "qsd_g", "h", NULL, NULL, 0);
	h = qs_metrics_histogram(reg, "qsd_h", "h", bounds, 1, NULL, NULL, 0);
	ck_assert(c != NULL && g != NULL && h != NULL);
	qs_metric_add(g, 0, 1);
	qs_metric_add(h, 0, 1);
	qs_metric_set(c, 0, 5);
	qs_metric_gauge_add(h, 0, 5);
	qs_metric_observe(c, 0, 1);
	qs_metric_observe(g, 0, 1);
	qs_metric_observe(h, 0, NAN);
	ck_assert_uint_eq(qs_metrics_dropped_updates(reg), 7);
	/* A NULL family has no registry to count in; it is ignored all the same. */
	qs_metric_add(NULL, 0, 1);
	qs_metric_set(NULL, 0, 1);
	qs_metric_gauge_add(NULL, 0, 1);
	qs_metric_observe(NULL, 0, 1);
	ck_assert_uint_eq(qs_metric_value(c, 0), 0);
	ck_assert_int_eq(qs_metric_gauge_value(g, 0), 0);
	ck_assert_uint_eq(qs_metric_value(h, 0), 0);
	ck_assert(qs_metric_histogram_sum(h, 0) == 0);
	ck_assert_int_eq(qs_metric_gauge_value(c, 0), 0);
	ck_assert(qs_metric_histogram_sum(g, 0) == 0);
	qs_metrics_free(reg);
}
END_TEST

/* CLOCK_REALTIME's seconds, as the start-time gauge reads them: time(2) is
 * the coarse clock, which can still show the last second for a tick after
 * CLOCK_REALTIME has moved on (a CI run saw start time = time(NULL) + 1). */
static int64_t
realtime_s(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec;
}

START_TEST(value_reads_each_kind)
{
	static const double bounds[] = {1};
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_metric *g, *h, *t;
	int64_t before = realtime_s();

	g = qs_metrics_gauge(reg, "qsd_g", "h", NULL, NULL, 0);
	h = qs_metrics_histogram(reg, "qsd_h", "h", bounds, 1, NULL, NULL, 0);
	t = qs_metrics_process_start_time(reg);
	ck_assert(g != NULL && h != NULL && t != NULL);
	qs_metric_set(g, 0, -4);
	ck_assert_uint_eq(qs_metric_value(g, 0), 0);
	ck_assert_int_eq(qs_metric_gauge_value(g, 0), -4);
	qs_metric_set(g, 0, INT64_MAX);
	ck_assert_uint_eq(qs_metric_value(g, 0), (uint64_t)INT64_MAX);
	qs_metric_observe(h, 0, -2.5);
	qs_metric_observe(h, 0, 7);
	ck_assert_uint_eq(qs_metric_value(h, 0), 2);
	ck_assert(qs_metric_histogram_sum(h, 0) == 4.5);
	ck_assert_int_ge(qs_metric_gauge_value(t, 0), before);
	ck_assert_int_le(qs_metric_gauge_value(t, 0), realtime_s());
	qs_metrics_free(reg);
}
END_TEST

START_TEST(free_accepts_null)
{
	qs_metrics_free(NULL);
	qs_http_free(NULL);
	ck_assert_uint_eq(qs_metrics_dropped_updates(NULL), 0);
}
END_TEST

/* HTTP: the loop runs on the test's thread, a client thread talks to it. */

struct client {
	uint16_t port;
	const char *request;
	char response[65536];
	size_t len;
	int done_fd;
};

static void *
client_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 5};
	size_t off = 0, n = strlen(c->request);
	ssize_t r;
	int fd;

	sa.sin_port = htons(c->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	while (off < n) {
		r = send(fd, c->request + off, n - off, MSG_NOSIGNAL);
		if (r <= 0)
			goto out;
		off += (size_t)r;
	}
	while (c->len < sizeof(c->response) - 1) {
		r = recv(fd, c->response + c->len, sizeof(c->response) - 1 - c->len, 0);
		if (r <= 0)
			break;
		c->len += (size_t)r;
	}
out:
	c->response[c->len] = '\0';
	if (fd >= 0)
		close(fd);
	if (write(c->done_fd, "x", 1) != 1)
		abort();
	return NULL;
}

static void
client_done(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Sends `request`, runs the loop until the client has read the whole reply. */
static struct client *
exchange(struct event_base *base, uint16_t port, const char *request)
{
	struct client *c = calloc(1, sizeof(*c));
	struct event *ev;
	pthread_t t;
	int fds[2];

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(pipe(fds), 0);
	c->port = port;
	c->request = request;
	c->done_fd = fds[1];
	ev = event_new(base, fds[0], EV_READ, client_done, base);
	ck_assert_ptr_nonnull(ev);
	ck_assert_int_eq(event_add(ev, NULL), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, c), 0);
	ck_assert_int_ge(event_base_dispatch(base), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	event_free(ev);
	close(fds[0]);
	close(fds[1]);
	return c;
}

static int
status_of(const struct client *c)
{
	int major, minor, status;

	if (sscanf(c->response, "HTTP/%d.%d %d", &major, &minor, &status) != 3)
		return -1;
	return status;
}

static const char *
body_of(const struct client *c)
{
	const char *p = strstr(c->response, "\r\n\r\n");

	ck_assert_ptr_nonnull(p);
	return p + 4;
}

static uint16_t
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

struct health_state {
	int healthy;
	const char *reason;
	int calls;
};

static int
health_cb(void *arg, char *reason, size_t len)
{
	struct health_state *s = arg;

	s->calls++;
	if (!s->healthy)
		snprintf(reason, len, "%s", s->reason);
	return s->healthy;
}

struct server {
	struct event_base *base;
	struct qs_metrics *reg;
	struct qs_metric *requests;
	struct qs_http *http;
	struct health_state health;
	uint16_t port;
};

/* qs_http_start refuses port 0, so take a free port, retrying a lost race. */
static void
server_start(struct server *s)
{
	char listen[32], err[256];
	int tries, rc = -EADDRINUSE;

	memset(s, 0, sizeof(*s));
	signal(SIGPIPE, SIG_IGN);
	s->health.healthy = 1;
	s->base = event_base_new();
	s->reg = qs_metrics_new();
	ck_assert(s->base != NULL && s->reg != NULL);
	s->requests =
	    qs_metrics_counter(s->reg, "qsd_test_requests_total", "Requests.", NULL, NULL, 0);
	ck_assert_ptr_nonnull(s->requests);
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

START_TEST(http_metrics_returns_200_with_registry)
{
	struct server s;
	struct client *c;

	server_start(&s);
	qs_metric_add(s.requests, 0, 12);
	c = exchange(s.base, s.port,
	             "GET /metrics HTTP/1.1\r\nHost: x\r\n"
	             "Connection: close\r\n\r\n");
	ck_assert_int_eq(status_of(c), 200);
	ck_assert_ptr_nonnull(strstr(c->response, "\r\nContent-Type: text/plain; "
	                                          "version=0.0.4; charset=utf-8\r\n"));
	ck_assert_str_eq(body_of(c), "# HELP qsd_test_requests_total Requests.\n"
	                             "# TYPE qsd_test_requests_total counter\n"
	                             "qsd_test_requests_total 12\n");
	free(c);
	/* A query string does not change the path. */
	c = exchange(s.base, s.port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 200);
	free(c);
	server_stop(&s);
}
END_TEST

START_TEST(http_healthz_ok_then_503_with_reason)
{
	struct server s;
	struct client *c;

	server_start(&s);
	c = exchange(s.base, s.port, "GET /healthz HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 200);
	ck_assert_str_eq(body_of(c), "ok\n");
	free(c);
	s.health.healthy = 0;
	s.health.reason = "storage full";
	c = exchange(s.base, s.port, "GET /healthz HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 503);
	ck_assert_str_eq(body_of(c), "storage full\n");
	free(c);
	s.health.reason = "";
	c = exchange(s.base, s.port, "GET /healthz HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 503);
	ck_assert_str_eq(body_of(c), "unhealthy\n");
	free(c);
	ck_assert_int_eq(s.health.calls, 3);
	server_stop(&s);
}
END_TEST

START_TEST(http_unknown_path_is_404)
{
	static const char *const requests[] = {
	    "GET /nope HTTP/1.0\r\n\r\n",
	    "GET / HTTP/1.0\r\n\r\n",
	    "GET /metrics/ HTTP/1.0\r\n\r\n",
	    "GET /metricsx HTTP/1.0\r\n\r\n",
	};
	struct server s;
	struct client *c;
	size_t i;

	server_start(&s);
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		c = exchange(s.base, s.port, requests[i]);
		ck_assert_int_eq(status_of(c), 404);
		free(c);
	}
	ck_assert_int_eq(s.health.calls, 0);
	server_stop(&s);
}
END_TEST

START_TEST(http_other_methods_are_405)
{
	static const char *const requests[] = {
	    "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	    "PUT /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	    "DELETE /nope HTTP/1.0\r\n\r\n",
	    "OPTIONS /metrics HTTP/1.0\r\n\r\n",
	};
	struct server s;
	struct client *c;
	size_t i;

	server_start(&s);
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		c = exchange(s.base, s.port, requests[i]);
		ck_assert_int_eq(status_of(c), 405);
		ck_assert_ptr_nonnull(strstr(c->response, "\r\nAllow: GET, HEAD\r\n"));
		free(c);
	}
	server_stop(&s);
}
END_TEST

START_TEST(http_head_metrics_has_no_body)
{
	struct server s;
	struct client *c;

	server_start(&s);
	c = exchange(s.base, s.port, "HEAD /metrics HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 200);
	ck_assert_str_eq(body_of(c), "");
	/* The length GET's body would have. */
	ck_assert_ptr_nonnull(strstr(c->response, "\r\nContent-Length: 106\r\n"));
	ck_assert_ptr_nonnull(strstr(c->response, "\r\nContent-Type: text/plain; "
	                                          "version=0.0.4; charset=utf-8\r\n"));
	free(c);
	c = exchange(s.base, s.port, "HEAD /healthz HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(status_of(c), 200);
	ck_assert_str_eq(body_of(c), "");
	ck_assert_ptr_nonnull(strstr(c->response, "\r\nContent-Length: 3\r\n"));
	free(c);
	server_stop(&s);
}
END_TEST

START_TEST(http_oversized_headers_refused)
{
	char request[QS_HTTP_MAX_HEADERS_BYTES * 2 + 64];
	struct server s;
	struct client *c;

	server_start(&s);
	snprintf(request, sizeof(request), "GET /metrics HTTP/1.0\r\nX-Pad: %0*d\r\n\r\n",
	         QS_HTTP_MAX_HEADERS_BYTES * 2 - 64, 0);
	c = exchange(s.base, s.port, request);
	ck_assert_int_ne(status_of(c), 200);
	ck_assert_ptr_null(strstr(c->response, "qsd_test_requests_total"));
	free(c);
	server_stop(&s);
}
END_TEST

START_TEST(http_listen_rejects_malformed_address)
{
	static const char *const bad[] = {
	    "",
	    "127.0.0.1",
	    "127.0.0.1:",
	    "127.0.0.1:0",
	    "127.0.0.1:65536",
	    "127.0.0.1:99999999999999999999",
	    "127.0.0.1:-1",
	    "127.0.0.1:+80",
	    "127.0.0.1:80x",
	    "127.0.0.1: 80",
	    ":9464",
	    "localhost:9464",
	    "::1:9464",
	    "[::1]",
	    "[::1]9464",
	    "[127.0.0.1]:9464",
	    "[::1:9464",
	    "256.0.0.1:9464",
	    "[]:9464",
	};
	struct event_base *base = event_base_new();
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_http *http = NULL;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(
		    qs_http_start(base, bad[i], reg, NULL, NULL, &http, err, sizeof(err)),
		    QS_ECONFIG);
		ck_assert_ptr_null(http);
		ck_assert_msg(strstr(err, "http listen") != NULL, "%s: %s", bad[i], err);
	}
	ck_assert_int_eq(qs_http_start(base, NULL, reg, NULL, NULL, &http, NULL, 0), QS_ECONFIG);
	ck_assert_ptr_null(http);
	qs_metrics_free(reg);
	event_base_free(base);
}
END_TEST

START_TEST(http_listen_in_use_returns_eaddrinuse)
{
	struct server s;
	struct qs_http *again = NULL;
	char listen[32], err[256] = "";

	server_start(&s);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", s.port);
	ck_assert_int_eq(qs_http_start(s.base, listen, s.reg, NULL, NULL, &again, err, sizeof(err)),
	                 -EADDRINUSE);
	ck_assert_ptr_null(again);
	ck_assert_ptr_nonnull(strstr(err, listen));
	ck_assert_ptr_nonnull(strstr(err, strerror(EADDRINUSE)));
	server_stop(&s);
}
END_TEST

START_TEST(http_listen_ipv6_bracketed)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t len = sizeof(sa);
	struct event_base *base = event_base_new();
	struct qs_metrics *reg = qs_metrics_new();
	struct qs_http *http = NULL;
	char listen[64], err[256] = "";
	int fd, rc;

	/* A host without IPv6 on loopback cannot run this; it has nothing to test. */
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		goto out;
	}
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(listen, sizeof(listen), "[::1]:%u", ntohs(sa.sin6_port));
	rc = qs_http_start(base, listen, reg, NULL, NULL, &http, err, sizeof(err));
	ck_assert_msg(rc == 0 || rc == -EADDRINUSE, "%d %s", rc, err);
	qs_http_free(http);
out:
	qs_metrics_free(reg);
	event_base_free(base);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *reg = tcase_create("registry");
	TCase *http = tcase_create("http");

	tcase_set_timeout(reg, 30);
	tcase_add_test(reg, render_empty_registry_is_empty);
	tcase_add_test(reg, render_counter_without_label);
	tcase_add_test(reg, render_counter_with_label_escapes_values);
	tcase_add_test(reg, render_help_escapes_backslash_and_newline);
	tcase_add_test(reg, render_gauge_set_and_add_negative);
	tcase_add_test(reg, render_histogram_cumulative_buckets_sum_count);
	tcase_add_test(reg, render_histogram_label_comes_before_le);
	tcase_add_test(reg, render_doubles_shortest_round_trip);
	tcase_add_test(reg, render_info_family_has_value_one);
	tcase_add_test(reg, render_keeps_registration_order);
	tcase_add_test(reg, gauge_fn_called_at_render_time);
	tcase_add_test(reg, counter_from_four_threads_is_exact);
	tcase_add_test(reg, render_while_threads_update);
	tcase_add_test(reg, invalid_metric_names_rejected);
	tcase_add_test(reg, invalid_label_names_rejected);
	tcase_add_test(reg, duplicate_family_rejected);
	tcase_add_test(reg, same_family_registered_again);
	tcase_add_test(reg, counter_with_two_labels);
	tcase_add_test(reg, label_values_bounded_and_fixed);
	tcase_add_test(reg, histogram_bounds_must_be_finite_and_increasing);
	tcase_add_test(reg, label_index_out_of_range_is_ignored);
	tcase_add_test(reg, wrong_kind_update_is_ignored);
	tcase_add_test(reg, value_reads_each_kind);
	tcase_add_test(reg, free_accepts_null);
	suite_add_tcase(s, reg);

	tcase_set_timeout(http, 30);
	tcase_add_test(http, http_metrics_returns_200_with_registry);
	tcase_add_test(http, http_healthz_ok_then_503_with_reason);
	tcase_add_test(http, http_unknown_path_is_404);
	tcase_add_test(http, http_other_methods_are_405);
	tcase_add_test(http, http_head_metrics_has_no_body);
	tcase_add_test(http, http_oversized_headers_refused);
	tcase_add_test(http, http_listen_rejects_malformed_address);
	tcase_add_test(http, http_listen_in_use_returns_eaddrinuse);
	tcase_add_test(http, http_listen_ipv6_bracketed);
	suite_add_tcase(s, http);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
