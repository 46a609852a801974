/*
 * Metrics registry. Families are registered once at start-up; every series
 * is one or more C11 atomics updated with relaxed ordering (a metric orders
 * nothing), and the text exposition is produced on demand from them.
 */
#include "daemon/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QS_METRICS_RELAXED memory_order_relaxed

enum qs_metric_kind {
	QS_METRIC_COUNTER,
	QS_METRIC_GAUGE,
	QS_METRIC_GAUGE_FN,
	QS_METRIC_HISTOGRAM,
	QS_METRIC_INFO,
};

struct qs_metric {
	struct qs_metrics *reg;
	enum qs_metric_kind kind;
	char *name;
	char *help;
	char *label;   /* NULL when the family has no label */
	char **values; /* label values; for an info family, of info_names */
	size_t n_values;
	char **info_names; /* info family: its label names, n_values of them */
	char *label2;      /* a counter's second label, or NULL */
	char **values2;
	size_t n_values2;
	size_t n_series; /* n_values, or 1 without a label */
	double *bounds;  /* histogram bucket upper bounds, +Inf excluded */
	size_t n_bounds;
	/*
	 * Counters: one cell per series. Histograms: per series, n_bounds + 1
	 * bucket counts (not cumulative; the last one is +Inf), then the bit
	 * pattern of the double sum.
	 */
	_Atomic uint64_t *cells;
	_Atomic int64_t *gauges; /* gauges: one cell per series */
	double (*fn)(void *arg);
	void *arg;
};

struct qs_metrics {
	struct qs_metric **families; /* in registration order */
	size_t n_families;
	size_t cap_families;
	_Atomic uint64_t dropped;
};

/* A growing output buffer; `failed` records an allocation failure. */
struct qs_metrics_buf {
	char *p;
	size_t len;
	size_t cap;
	bool failed;
};

static bool
is_name_char(char c, bool first)
{
	if (c == '_' || (c >= 'a' && c <= 'z'))
		return true;
	return !first && c >= '0' && c <= '9';
}

/* [a-z_][a-z0-9_]*: Prometheus' grammar minus what promtool's lint rejects. */
static bool
valid_name(const char *s)
{
	if (s == NULL || !is_name_char(*s, true))
		return false;
	for (s++; *s != '\0'; s++) {
		if (!is_name_char(*s, false))
			return false;
	}
	return true;
}

static bool
valid_label_name(const char *s)
{
	return valid_name(s) && strncmp(s, "__", 2) != 0;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Well-formed UTF-8: no overlong forms, surrogates or code points > U+10FFFF. */
static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		uint32_t cp, min;
		size_t n, i;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
			min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
			min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		/* A NUL fails the continuation test, so this never reads past it. */
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

static void
free_strings(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
family_free(struct qs_metric *m)
{
	if (m == NULL)
		return;
	free(m->name);
	free(m->help);
	free(m->label);
	free_strings(m->values, m->n_values);
	free_strings(m->info_names, m->n_values);
	free(m->label2);
	free_strings(m->values2, m->n_values2);
	free(m->bounds);
	free(m->cells);
	free(m->gauges);
	free(m);
}

static struct qs_metric *
find_family(const struct qs_metrics *reg, const char *name)
{
	size_t i;

	for (i = 0; i < reg->n_families; i++) {
		if (strcmp(reg->families[i]->name, name) == 0)
			return reg->families[i];
	}
	return NULL;
}

/*
 * A family registered again under its name, with the same kind, help,
 * label, values and bounds, is the same family: a subsystem restarted in
 * the process (an epoch change) keeps its series and their values.
 */
static struct qs_metric *
find_same(const struct qs_metrics *reg, enum qs_metric_kind kind, const char *name,
          const char *help, const char *label, const char *const *values, size_t n_values,
          const double *bounds, size_t n_bounds)
{
	struct qs_metric *m = reg ? find_family(reg, name) : NULL;

	if (m == NULL || m->kind != kind || help == NULL || strcmp(m->help, help) != 0 ||
	    (label == NULL) != (m->label == NULL) || (label && strcmp(label, m->label) != 0) ||
	    n_values != (m->label ? m->n_values : 0) || n_bounds != m->n_bounds)
		return NULL;
	for (size_t i = 0; i < n_values; i++)
		if (values == NULL || values[i] == NULL || strcmp(values[i], m->values[i]) != 0)
			return NULL;
	for (size_t i = 0; i < n_bounds; i++)
		if (bounds[i] != m->bounds[i])
			return NULL;
	return m;
}

/* Copies n strings, each valid UTF-8, non-empty and distinct; NULL if not. */
static char **
copy_distinct(const char *const *src, size_t n)
{
	char **v = NULL;
	size_t i, j;
	bool ok = false;

	if (src == NULL)
		goto out;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		if (src[i] == NULL || src[i][0] == '\0' || !valid_utf8(src[i]))
			goto out;
		for (j = 0; j < i; j++) {
			if (strcmp(src[i], v[j]) == 0)
				goto out;
		}
		v[i] = strdup(src[i]);
		if (v[i] == NULL)
			goto out;
	}
	ok = true;
out:
	if (!ok) {
		free_strings(v, n);
		v = NULL;
	}
	return v;
}

/*
 * Allocates a family after checking what every kind shares: the name, its
 * suffix for the kind, the help text, and that the name is free.
 */
static struct qs_metric *
family_alloc(struct qs_metrics *reg, enum qs_metric_kind kind, const char *name, const char *help)
{
	static const char *const reserved[] = {"_total", "_bucket", "_sum", "_count"};
	struct qs_metric *m = NULL;
	size_t i;

	if (reg == NULL || !valid_name(name) || help == NULL || help[0] == '\0' ||
	    !valid_utf8(help) || find_family(reg, name) != NULL)
		goto out;
	if (kind == QS_METRIC_COUNTER) {
		if (!ends_with(name, "_total"))
			goto out;
	} else {
		for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
			if (ends_with(name, reserved[i]))
				goto out;
		}
	}
	if (kind == QS_METRIC_INFO && !ends_with(name, "_info"))
		goto out;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto out;
	m->reg = reg;
	m->kind = kind;
	m->n_series = 1;
	m->name = strdup(name);
	m->help = strdup(help);
	if (m->name == NULL || m->help == NULL) {
		family_free(m);
		m = NULL;
	}
out:
	return m;
}

/* Checks and copies the family's label; 0 or -1. */
static int
family_set_label(struct qs_metric *m, const char *label, const char *const *values, size_t n_values)
{
	int rc = -1;

	if (label == NULL) {
		if (values == NULL && n_values == 0)
			rc = 0;
		goto out;
	}
	if (!valid_label_name(label) || n_values == 0 || n_values > QS_METRICS_MAX_VALUES)
		goto out;
	if (m->kind == QS_METRIC_HISTOGRAM && strcmp(label, "le") == 0)
		goto out;
	m->label = strdup(label);
	if (m->label == NULL)
		goto out;
	m->values = copy_distinct(values, n_values);
	if (m->values == NULL)
		goto out;
	m->n_values = n_values;
	m->n_series = n_values;
	rc = 0;
out:
	return rc;
}

/* Allocates the family's cells and appends it to the registry; 0 or -1. */
static int
family_commit(struct qs_metrics *reg, struct qs_metric *m)
{
	size_t n, i;
	int rc = -1;

	if (m->kind == QS_METRIC_COUNTER || m->kind == QS_METRIC_HISTOGRAM) {
		n = m->n_series;
		if (m->kind == QS_METRIC_HISTOGRAM)
			n *= m->n_bounds + 2;
		m->cells = calloc(n, sizeof(*m->cells));
		if (m->cells == NULL)
			goto out;
		for (i = 0; i < n; i++)
			atomic_init(&m->cells[i], 0); /* 0 is also +0.0's bits */
	} else if (m->kind == QS_METRIC_GAUGE) {
		m->gauges = calloc(m->n_series, sizeof(*m->gauges));
		if (m->gauges == NULL)
			goto out;
		for (i = 0; i < m->n_series; i++)
			atomic_init(&m->gauges[i], 0);
	}
	if (reg->n_families == reg->cap_families) {
		size_t cap = reg->cap_families ? 2 * reg->cap_families : 16;
		struct qs_metric **f;

		f = realloc(reg->families, cap * sizeof(*f));
		if (f == NULL)
			goto out;
		reg->families = f;
		reg->cap_families = cap;
	}
	reg->families[reg->n_families++] = m;
	rc = 0;
out:
	return rc;
}

static struct qs_metric *
register_labelled(struct qs_metrics *reg, enum qs_metric_kind kind, const char *name,
                  const char *help, const char *label, const char *const *values, size_t n_values)
{
	struct qs_metric *m;

	m = find_same(reg, kind, name, help, label, values, n_values, NULL, 0);
	if (m != NULL)
		goto out;
	m = family_alloc(reg, kind, name, help);
	if (m == NULL)
		goto out;
	if (family_set_label(m, label, values, n_values) != 0 || family_commit(reg, m) != 0) {
		family_free(m);
		m = NULL;
	}
out:
	return m;
}

struct qs_metrics *
qs_metrics_new(void)
{
	struct qs_metrics *reg;

	reg = calloc(1, sizeof(*reg));
	if (reg != NULL)
		atomic_init(&reg->dropped, 0);
	return reg;
}

void
qs_metrics_free(struct qs_metrics *reg)
{
	size_t i;

	if (reg == NULL)
		return;
	for (i = 0; i < reg->n_families; i++)
		family_free(reg->families[i]);
	free(reg->families);
	free(reg);
}

struct qs_metric *
qs_metrics_counter(struct qs_metrics *reg, const char *name, const char *help, const char *label,
                   const char *const *values, size_t n_values)
{
	return register_labelled(reg, QS_METRIC_COUNTER, name, help, label, values, n_values);
}

struct qs_metric *
qs_metrics_counter2(struct qs_metrics *reg, const char *name, const char *help, const char *label,
                    const char *const *values, size_t n_values, const char *label2,
                    const char *const *values2, size_t n_values2)
{
	struct qs_metric *m = find_family(reg, name);
	size_t i;

	if (m != NULL) {
		/* Registered again: the same family only if everything matches. */
		if (m->label2 == NULL || strcmp(m->label2, label2 ? label2 : "") != 0 ||
		    m->n_values2 != n_values2 ||
		    find_same(reg, QS_METRIC_COUNTER, name, help, label, values, n_values, NULL,
		              0) != m)
			return NULL;
		for (i = 0; i < n_values2; i++)
			if (values2 == NULL || values2[i] == NULL ||
			    strcmp(values2[i], m->values2[i]) != 0)
				return NULL;
		return m;
	}
	if (label == NULL || label2 == NULL || !valid_label_name(label2) ||
	    strcmp(label, label2) == 0 || n_values2 == 0 || n_values2 > QS_METRICS_MAX_VALUES)
		return NULL;
	m = family_alloc(reg, QS_METRIC_COUNTER, name, help);
	if (m == NULL)
		return NULL;
	if (family_set_label(m, label, values, n_values) != 0 ||
	    (m->label2 = strdup(label2)) == NULL ||
	    (m->values2 = copy_distinct(values2, n_values2)) == NULL) {
		family_free(m);
		return NULL;
	}
	m->n_values2 = n_values2;
	m->n_series = n_values * n_values2;
	if (family_commit(reg, m) != 0) {
		family_free(m);
		return NULL;
	}
	return m;
}

struct qs_metric *
qs_metrics_gauge(struct qs_metrics *reg, const char *name, const char *help, const char *label,
                 const char *const *values, size_t n_values)
{
	return register_labelled(reg, QS_METRIC_GAUGE, name, help, label, values, n_values);
}

struct qs_metric *
qs_metrics_gauge_fn(struct qs_metrics *reg, const char *name, const char *help,
                    double (*fn)(void *arg), void *arg)
{
	struct qs_metric *m = NULL;

	if (fn == NULL)
		goto out;
	m = find_same(reg, QS_METRIC_GAUGE_FN, name, help, NULL, NULL, 0, NULL, 0);
	if (m != NULL) {
		m->fn = fn;
		m->arg = arg;
		goto out;
	}
	m = family_alloc(reg, QS_METRIC_GAUGE_FN, name, help);
	if (m == NULL)
		goto out;
	m->fn = fn;
	m->arg = arg;
	if (family_commit(reg, m) != 0) {
		family_free(m);
		m = NULL;
	}
out:
	return m;
}

struct qs_metric *
qs_metrics_histogram(struct qs_metrics *reg, const char *name, const char *help,
                     const double *bounds, size_t n_bounds, const char *label,
                     const char *const *values, size_t n_values)
{
	struct qs_metric *m = NULL;
	size_t i;
	bool ok = false;

	if (bounds == NULL || n_bounds == 0 || n_bounds > QS_METRICS_MAX_BOUNDS)
		goto out;
	for (i = 0; i < n_bounds; i++) {
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			goto out;
	}
	m = find_same(reg, QS_METRIC_HISTOGRAM, name, help, label, values, n_values, bounds,
	              n_bounds);
	if (m != NULL) {
		ok = true;
		goto out;
	}
	m = family_alloc(reg, QS_METRIC_HISTOGRAM, name, help);
	if (m == NULL)
		goto out;
	m->bounds = malloc(n_bounds * sizeof(*m->bounds));
	if (m->bounds == NULL)
		goto out;
	memcpy(m->bounds, bounds, n_bounds * sizeof(*m->bounds));
	m->n_bounds = n_bounds;
	if (family_set_label(m, label, values, n_values) != 0 || family_commit(reg, m) != 0)
		goto out;
	ok = true;
out:
	if (!ok) {
		family_free(m);
		m = NULL;
	}
	return m;
}

struct qs_metric *
qs_metrics_info(struct qs_metrics *reg, const char *name, const char *help,
                const char *const *names, const char *const *values, size_t n_labels)
{
	struct qs_metric *m = NULL;
	size_t i;
	bool ok = false;

	if (names == NULL || values == NULL || n_labels == 0 ||
	    n_labels > QS_METRICS_MAX_INFO_LABELS)
		goto out;
	for (i = 0; i < n_labels; i++) {
		if (!valid_label_name(names[i]) || values[i] == NULL || !valid_utf8(values[i]))
			goto out;
	}
	m = family_alloc(reg, QS_METRIC_INFO, name, help);
	if (m == NULL)
		goto out;
	/* Names are distinct (copy_distinct checks); values may repeat. */
	m->info_names = copy_distinct(names, n_labels);
	if (m->info_names == NULL)
		goto out;
	m->values = calloc(n_labels, sizeof(*m->values));
	if (m->values == NULL)
		goto out;
	m->n_values = n_labels;
	for (i = 0; i < n_labels; i++) {
		m->values[i] = strdup(values[i]);
		if (m->values[i] == NULL)
			goto out;
	}
	if (family_commit(reg, m) != 0)
		goto out;
	ok = true;
out:
	if (!ok) {
		family_free(m);
		m = NULL;
	}
	return m;
}

struct qs_metric *
qs_metrics_process_start_time(struct qs_metrics *reg)
{
	struct qs_metric *m;
	struct timespec now;

	if (reg == NULL || find_family(reg, "qsd_process_start_time_seconds") != NULL)
		return NULL; /* set once */
	m = qs_metrics_gauge(reg, "qsd_process_start_time_seconds",
	                     "Start time of the process since the Unix epoch, in seconds.", NULL,
	                     NULL, 0);
	if (m != NULL && clock_gettime(CLOCK_REALTIME, &now) == 0)
		qs_metric_set(m, 0, (int64_t)now.tv_sec);
	return m;
}

/* True if `m` is a `kind` family with a series `idx`; counts a misuse if not. */
static bool
series_ok(struct qs_metric *m, enum qs_metric_kind kind, size_t idx)
{
	if (m == NULL)
		return false;
	if (m->kind != kind || idx >= m->n_series) {
		atomic_fetch_add_explicit(&m->reg->dropped, 1, QS_METRICS_RELAXED);
		return false;
	}
	return true;
}

void
qs_metric_add(struct qs_metric *m, size_t label_idx, uint64_t n)
{
	if (series_ok(m, QS_METRIC_COUNTER, label_idx))
		atomic_fetch_add_explicit(&m->cells[label_idx], n, QS_METRICS_RELAXED);
}

void
qs_metric_set(struct qs_metric *m, size_t label_idx, int64_t v)
{
	if (series_ok(m, QS_METRIC_GAUGE, label_idx))
		atomic_store_explicit(&m->gauges[label_idx], v, QS_METRICS_RELAXED);
}

void
qs_metric_gauge_add(struct qs_metric *m, size_t label_idx, int64_t d)
{
	/* C11 defines atomic signed overflow as wrapping, so this has no UB. */
	if (series_ok(m, QS_METRIC_GAUGE, label_idx))
		atomic_fetch_add_explicit(&m->gauges[label_idx], d, QS_METRICS_RELAXED);
}

static double
bits_to_double(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t
double_to_bits(double d)
{
	uint64_t bits;

	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

void
qs_metric_observe(struct qs_metric *m, size_t label_idx, double v)
{
	_Atomic uint64_t *series, *sum;
	size_t lo, hi, mid;
	uint64_t old;

	if (!series_ok(m, QS_METRIC_HISTOGRAM, label_idx))
		return;
	if (isnan(v)) {
		atomic_fetch_add_explicit(&m->reg->dropped, 1, QS_METRICS_RELAXED);
		return;
	}
	/* The first bound >= v; n_bounds (the +Inf bucket) if none. */
	lo = 0;
	hi = m->n_bounds;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v <= m->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	series = m->cells + label_idx * (m->n_bounds + 2);
	atomic_fetch_add_explicit(&series[lo], 1, QS_METRICS_RELAXED);
	sum = &series[m->n_bounds + 1];
	old = atomic_load_explicit(sum, QS_METRICS_RELAXED);
	while (!atomic_compare_exchange_weak_explicit(sum, &old,
	                                              double_to_bits(bits_to_double(old) + v),
	                                              QS_METRICS_RELAXED, QS_METRICS_RELAXED))
		;
}

static uint64_t
histogram_count(const struct qs_metric *m, size_t idx)
{
	_Atomic uint64_t *series = m->cells + idx * (m->n_bounds + 2);
	uint64_t count = 0;
	size_t i;

	for (i = 0; i <= m->n_bounds; i++)
		count += atomic_load_explicit(&series[i], QS_METRICS_RELAXED);
	return count;
}

uint64_t
qs_metric_value(const struct qs_metric *m, size_t label_idx)
{
	int64_t g;
	double d;

	if (m == NULL || label_idx >= m->n_series)
		return 0;
	switch (m->kind) {
	case QS_METRIC_COUNTER:
		return atomic_load_explicit(&m->cells[label_idx], QS_METRICS_RELAXED);
	case QS_METRIC_GAUGE:
		g = atomic_load_explicit(&m->gauges[label_idx], QS_METRICS_RELAXED);
		return g < 0 ? 0 : (uint64_t)g;
	case QS_METRIC_GAUGE_FN:
		d = m->fn(m->arg);
		if (!(d > 0))
			return 0;
		if (d >= 18446744073709551616.0)
			return UINT64_MAX;
		return (uint64_t)d;
	case QS_METRIC_HISTOGRAM:
		return histogram_count(m, label_idx);
	case QS_METRIC_INFO:
		return 1;
	}
	return 0;
}

int64_t
qs_metric_gauge_value(const struct qs_metric *m, size_t label_idx)
{
	if (m == NULL || m->kind != QS_METRIC_GAUGE || label_idx >= m->n_series)
		return 0;
	return atomic_load_explicit(&m->gauges[label_idx], QS_METRICS_RELAXED);
}

double
qs_metric_histogram_sum(const struct qs_metric *m, size_t label_idx)
{
	_Atomic uint64_t *sum;

	if (m == NULL || m->kind != QS_METRIC_HISTOGRAM || label_idx >= m->n_series)
		return 0;
	sum = m->cells + label_idx * (m->n_bounds + 2) + m->n_bounds + 1;
	return bits_to_double(atomic_load_explicit(sum, QS_METRICS_RELAXED));
}

uint64_t
qs_metrics_dropped_updates(const struct qs_metrics *reg)
{
	if (reg == NULL)
		return 0;
	/* C11's atomic_load takes a non-const pointer; reading does not write. */
	return atomic_load_explicit((_Atomic uint64_t *)&reg->dropped, QS_METRICS_RELAXED);
}

/* Exposition. */

static void
buf_put(struct qs_metrics_buf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->failed)
		return;
	if (b->cap - b->len <= n) {
		cap = b->cap ? b->cap : 4096;
		while (cap - b->len <= n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_puts(struct qs_metrics_buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/*
 * Appends `s` escaped for the exposition: backslash and newline always, the
 * double quote too inside a label value (`in_label`).
 */
static void
buf_escaped(struct qs_metrics_buf *b, const char *s, bool in_label)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && in_label)
			esc = "\\\"";
		if (esc == NULL)
			continue;
		buf_put(b, run, (size_t)(s - run));
		buf_puts(b, esc);
		run = s + 1;
	}
	buf_put(b, run, (size_t)(s - run));
}

/*
 * The shortest of %.15g, %.16g, %.17g that reads back as `v`, so bounds
 * like 0.1 print as "0.1"; "+Inf", "-Inf" and "NaN" as Prometheus spells
 * them. The daemon never calls setlocale(), so the decimal point is '.'.
 */
static void
format_double(char *out, size_t size, double v)
{
	int prec;

	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 15; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
}

/* name<suffix>{label="value",le="le"} value\n, each part when present. */
static void
put_sample(struct qs_metrics_buf *b, const struct qs_metric *m, const char *suffix, size_t idx,
           const char *le, const char *value)
{
	buf_puts(b, m->name);
	buf_puts(b, suffix);
	if (m->label != NULL || le != NULL) {
		buf_puts(b, "{");
		if (m->label != NULL && m->label2 != NULL) {
			buf_puts(b, m->label);
			buf_puts(b, "=\"");
			buf_escaped(b, m->values[idx / m->n_values2], true);
			buf_puts(b, "\",");
			buf_puts(b, m->label2);
			buf_puts(b, "=\"");
			buf_escaped(b, m->values2[idx % m->n_values2], true);
			buf_puts(b, "\"");
		} else if (m->label != NULL) {
			buf_puts(b, m->label);
			buf_puts(b, "=\"");
			buf_escaped(b, m->values[idx], true);
			buf_puts(b, "\"");
		}
		if (le != NULL) {
			buf_puts(b, m->label != NULL ? ",le=\"" : "le=\"");
			buf_puts(b, le);
			buf_puts(b, "\"");
		}
		buf_puts(b, "}");
	}
	buf_puts(b, " ");
	buf_puts(b, value);
	buf_puts(b, "\n");
}

static void
render_histogram(struct qs_metrics_buf *b, const struct qs_metric *m, size_t idx)
{
	_Atomic uint64_t *series = m->cells + idx * (m->n_bounds + 2);
	uint64_t cumulative = 0;
	char le[32], value[32];
	size_t i;

	for (i = 0; i <= m->n_bounds; i++) {
		cumulative += atomic_load_explicit(&series[i], QS_METRICS_RELAXED);
		if (i < m->n_bounds)
			format_double(le, sizeof(le), m->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(value, sizeof(value), "%" PRIu64, cumulative);
		put_sample(b, m, "_bucket", idx, le, value);
	}
	format_double(
	    value, sizeof(value),
	    bits_to_double(atomic_load_explicit(&series[m->n_bounds + 1], QS_METRICS_RELAXED)));
	put_sample(b, m, "_sum", idx, NULL, value);
	snprintf(value, sizeof(value), "%" PRIu64, cumulative);
	put_sample(b, m, "_count", idx, NULL, value);
}

static void
render_info(struct qs_metrics_buf *b, const struct qs_metric *m)
{
	size_t i;

	buf_puts(b, m->name);
	for (i = 0; i < m->n_values; i++) {
		buf_puts(b, i == 0 ? "{" : ",");
		buf_puts(b, m->info_names[i]);
		buf_puts(b, "=\"");
		buf_escaped(b, m->values[i], true);
		buf_puts(b, "\"");
	}
	buf_puts(b, "} 1\n");
}

static void
render_family(struct qs_metrics_buf *b, const struct qs_metric *m)
{
	static const char *const types[] = {
	    [QS_METRIC_COUNTER] = "counter", [QS_METRIC_GAUGE] = "gauge",
	    [QS_METRIC_GAUGE_FN] = "gauge",  [QS_METRIC_HISTOGRAM] = "histogram",
	    [QS_METRIC_INFO] = "gauge",
	};
	char value[32];
	size_t i;

	buf_puts(b, "# HELP ");
	buf_puts(b, m->name);
	buf_puts(b, " ");
	buf_escaped(b, m->help, false);
	buf_puts(b, "\n# TYPE ");
	buf_puts(b, m->name);
	buf_puts(b, " ");
	buf_puts(b, types[m->kind]);
	buf_puts(b, "\n");
	for (i = 0; i < m->n_series; i++) {
		switch (m->kind) {
		case QS_METRIC_COUNTER:
			snprintf(value, sizeof(value), "%" PRIu64,
			         atomic_load_explicit(&m->cells[i], QS_METRICS_RELAXED));
			put_sample(b, m, "", i, NULL, value);
			break;
		case QS_METRIC_GAUGE:
			snprintf(value, sizeof(value), "%" PRId64,
			         atomic_load_explicit(&m->gauges[i], QS_METRICS_RELAXED));
			put_sample(b, m, "", i, NULL, value);
			break;
		case QS_METRIC_GAUGE_FN:
			format_double(value, sizeof(value), m->fn(m->arg));
			put_sample(b, m, "", i, NULL, value);
			break;
		case QS_METRIC_HISTOGRAM:
			render_histogram(b, m, i);
			break;
		case QS_METRIC_INFO:
			render_info(b, m);
			break;
		}
	}
}

int
qs_metrics_render(struct qs_metrics *reg, char **out, size_t *len)
{
	struct qs_metrics_buf b = {0};
	size_t i;
	int rc = -ENOMEM;

	for (i = 0; reg != NULL && i < reg->n_families; i++)
		render_family(&b, reg->families[i]);
	if (b.p == NULL && !b.failed) {
		b.p = calloc(1, 1);
		if (b.p == NULL)
			b.failed = true;
	}
	if (b.failed)
		goto out;
	*out = b.p;
	*len = b.len;
	b.p = NULL;
	rc = 0;
out:
	free(b.p);
	return rc;
}
