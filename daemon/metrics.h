/*
 * Metrics registry: counters, gauges and histograms, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * Threads. Registration (every qs_metrics_<kind>() call) happens at start-up
 * on one thread, before the registry or any family is shared with another
 * thread. After that, the update functions (qs_metric_add, _set, _gauge_add,
 * _observe) may be called from any thread at any time: each is a few relaxed
 * C11 atomic operations, with no lock. qs_metrics_render() may run
 * concurrently with updates; it reads each cell atomically, so a scrape is a
 * consistent value per cell but not a snapshot across cells.
 *
 * Bounded labels. A family has at most one label (a counter may have two,
 * see qs_metrics_counter2()), and its values are fixed
 * at registration (at most QS_METRICS_MAX_VALUES, copied). Updates name a
 * value by its index, so the number of series never grows at run time. A
 * family registered without a label has one series, index 0.
 *
 * Misuse. An update with a label index out of range, an update of the wrong
 * kind (qs_metric_add on a gauge, ...), an update of a NULL family, or a NaN
 * observation writes nothing: it is dropped and counted (see
 * qs_metrics_dropped_updates()). It never writes out of bounds and never
 * aborts, so a mistake on a rare error path cannot take the daemon down.
 *
 * Registration errors are programming errors: the registering function
 * returns NULL and the caller aborts with a message naming the metric. These
 * are refused:
 *   - a metric name that is not [a-z_][a-z0-9_]* (Prometheus allows
 *     [a-zA-Z_:][a-zA-Z0-9_:]*; promtool's lint also rejects upper case and
 *     colons, which are reserved for recording rules);
 *   - a counter whose name does not end in "_total", any other family whose
 *     name ends in "_total", "_bucket", "_sum" or "_count" (promtool's lint),
 *     or an info family whose name does not end in "_info";
 *   - a label name that is not [a-z_][a-z0-9_]*, starts with "__" or, for a
 *     histogram, is "le";
 *   - a label with no values, more than QS_METRICS_MAX_VALUES values, a NULL
 *     or empty value, a duplicate value, or values without a label name;
 *   - help text that is NULL or empty; help or a label value that is not
 *     valid UTF-8;
 *   - histogram bounds that are not finite and strictly increasing, or more
 *     than QS_METRICS_MAX_BOUNDS of them (the +Inf bucket is implicit);
 *   - a name already registered in this registry with another kind, help,
 *     label, label values or bounds. Registering a family again exactly as
 *     before returns the family registered first, with its values (a
 *     subsystem restarted in the process keeps its series); a callback
 *     gauge registered again takes the new fn and arg;
 *   - out of memory.
 */
#ifndef QS_DAEMON_METRICS_H
#define QS_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define QS_METRICS_MAX_VALUES      64 /* label values per family */
#define QS_METRICS_MAX_BOUNDS      64 /* histogram bucket bounds, +Inf aside */
#define QS_METRICS_MAX_INFO_LABELS 16 /* label pairs of an info family */

struct qs_metrics; /* the registry */
struct qs_metric;  /* one family of series */

/* A new empty registry, or NULL when out of memory. Free with qs_metrics_free(). */
struct qs_metrics *qs_metrics_new(void);

/*
 * Frees the registry and every family registered in it; the qs_metric
 * pointers it returned become invalid. No other thread may use them any
 * more. Accepts NULL.
 */
void qs_metrics_free(struct qs_metrics *reg);

/*
 * Registers a counter family. `name` must end in "_total". `label` is the
 * label name and `values` its `n_values` values, or NULL, NULL, 0 for a
 * family without a label. Strings are copied. Returns the family, owned by
 * the registry, or NULL (see "Registration errors" above).
 */
struct qs_metric *qs_metrics_counter(struct qs_metrics *reg, const char *name, const char *help,
                                     const char *label, const char *const *values, size_t n_values);

/*
 * Registers a counter family with two labels, each with its fixed values:
 * series `i * n_values2 + j` is label="values[i]",label2="values2[j]"
 * (n_values * n_values2 series, each at most QS_METRICS_MAX_VALUES). As
 * qs_metrics_counter() otherwise; both labels are required and distinct.
 */
struct qs_metric *qs_metrics_counter2(struct qs_metrics *reg, const char *name, const char *help,
                                      const char *label, const char *const *values, size_t n_values,
                                      const char *label2, const char *const *values2,
                                      size_t n_values2);

/* Registers a gauge family holding an int64 per series, initially 0. As above. */
struct qs_metric *qs_metrics_gauge(struct qs_metrics *reg, const char *name, const char *help,
                                   const char *label, const char *const *values, size_t n_values);

/*
 * Registers a gauge without a label whose value is `fn(arg)`, called each
 * time the registry is rendered, on the rendering thread (the event loop
 * for /metrics), with no lock held. `fn` must be safe to call there and must
 * not block for long; `arg` must outlive the registry. Returns NULL as above.
 */
struct qs_metric *qs_metrics_gauge_fn(struct qs_metrics *reg, const char *name, const char *help,
                                      double (*fn)(void *arg), void *arg);

/*
 * Registers a histogram family with the `n_bounds` bucket upper bounds in
 * `bounds` (finite, strictly increasing; "+Inf" is added). An observation v
 * lands in the first bucket with v <= bound, as Prometheus' "le" means.
 * Label arguments as for qs_metrics_counter(). Returns NULL as above.
 *
 * The sum is kept exactly as a double: its bit pattern lives in an atomic
 * uint64 updated by a compare-and-swap loop, so it needs no unit scaling and
 * cannot overflow a fixed-point range. The count is not stored separately:
 * it is the sum of the bucket counts, so in every scrape _count equals the
 * "+Inf" bucket. _sum may lag or lead _count by the observations in flight.
 */
struct qs_metric *qs_metrics_histogram(struct qs_metrics *reg, const char *name, const char *help,
                                       const double *bounds, size_t n_bounds, const char *label,
                                       const char *const *values, size_t n_values);

/*
 * Registers a constant "info" family: one series with the `n_labels` label
 * pairs names[i]="values[i]" and the value 1, of type gauge (as
 * qsd_build_info{version="…",rocksdb="…",libevent="…",openssl="…"} 1).
 * `name` must end in "_info"; label names must be distinct; at most
 * QS_METRICS_MAX_INFO_LABELS pairs. Strings are copied. Returns NULL as above.
 */
struct qs_metric *qs_metrics_info(struct qs_metrics *reg, const char *name, const char *help,
                                  const char *const *names, const char *const *values,
                                  size_t n_labels);

/*
 * Registers the gauge qsd_process_start_time_seconds and sets it to the
 * current wall-clock time in whole seconds since the Unix epoch. Returns
 * NULL as above (it was already registered, or out of memory).
 */
struct qs_metric *qs_metrics_process_start_time(struct qs_metrics *reg);

/* Adds `n` to series `label_idx` of a counter family. Any thread. */
void qs_metric_add(struct qs_metric *m, size_t label_idx, uint64_t n);

/* Sets series `label_idx` of a gauge family to `v`. Any thread. */
void qs_metric_set(struct qs_metric *m, size_t label_idx, int64_t v);

/* Adds `d` (may be negative) to series `label_idx` of a gauge family. Any thread. */
void qs_metric_gauge_add(struct qs_metric *m, size_t label_idx, int64_t d);

/* Records `v` in series `label_idx` of a histogram family. Any thread. */
void qs_metric_observe(struct qs_metric *m, size_t label_idx, double v);

/*
 * The current value of series `label_idx`: a counter's count, a histogram's
 * observation count, a gauge's value (0 when negative), a callback gauge's
 * value converted (0 when negative or NaN, saturated at UINT64_MAX; this
 * calls the callback), 1 for an info family. 0 for a NULL family or an index
 * out of range. For tests and GetStatus; any thread.
 */
uint64_t qs_metric_value(const struct qs_metric *m, size_t label_idx);

/* A gauge's signed value; 0 for anything else or an index out of range. */
int64_t qs_metric_gauge_value(const struct qs_metric *m, size_t label_idx);

/* A histogram's sum of observations; 0 for anything else. */
double qs_metric_histogram_sum(const struct qs_metric *m, size_t label_idx);

/*
 * How many updates were dropped as misuse (label index out of range, wrong
 * kind, NaN observation) since the registry was created. Updates of a NULL
 * family have no registry and are not counted.
 */
uint64_t qs_metrics_dropped_updates(const struct qs_metrics *reg);

/*
 * Renders every family, in registration order, in the Prometheus text format
 * 0.0.4 (Content-Type: text/plain; version=0.0.4). On success *out is a
 * malloc'ed, NUL-terminated string owned by the caller (free() it) and *len
 * its length without the NUL. Calls the callback gauges' functions. Returns
 * 0, or -ENOMEM (out untouched).
 */
int qs_metrics_render(struct qs_metrics *reg, char **out, size_t *len);

#endif
