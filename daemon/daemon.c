#include "daemon/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <protobuf-c/protobuf-c.h>
#include <systemd/sd-daemon.h>
#include <yaml.h>

#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/http.h"
#include "storage/store.h"

static const char *const qs_storage_states[] = { "ok", "full", "failed", "recovering" };
enum { QS_STORAGE_OK, QS_STORAGE_FULL, QS_STORAGE_FAILED, QS_STORAGE_RECOVERING };

struct qs_daemon {
	const struct qs_config *cfg;
	int self;
	EVP_PKEY *network_key;
	EVP_PKEY *signing_key;
	struct event_base *base;
	struct event *sig_term;
	struct event *sig_int;
	struct event *sig_hup;
	struct qs_metrics *metrics;
	struct qs_metric *m_storage_state;
	struct qs_http *http;
	struct qs_store *store;
	int storage_state;
	int exit_code;
};

static int
load_identity(const struct qs_config *cfg, EVP_PKEY **net, EVP_PKEY **sign, int *self,
	      char *err, size_t errlen)
{
	uint8_t net_pub[QS_KEY_BYTES], sign_pub[QS_KEY_BYTES];
	char hex[2 * QS_KEY_BYTES + 1];
	int n, s, rc;

	*net = NULL;
	*sign = NULL;
	rc = qs_keys_load(cfg->network_key_file, net, net_pub, err, errlen);
	if (rc)
		goto out;
	rc = qs_keys_load(cfg->signing_key_file, sign, sign_pub, err, errlen);
	if (rc)
		goto out;
	n = qs_config_find_network_key(cfg, net_pub);
	s = qs_config_find_signing_key(cfg, sign_pub);
	if (n < 0) {
		qs_hex_encode(net_pub, QS_KEY_BYTES, hex);
		snprintf(err, errlen, "%s: network_key: public key %s is not a validator of the set",
			 cfg->path, hex);
		rc = QS_ECONFIG;
	} else if (s != n) {
		qs_hex_encode(sign_pub, QS_KEY_BYTES, hex);
		snprintf(err, errlen,
			 "%s: signing_key: public key %s is not the signing key of validator %s",
			 cfg->path, hex, cfg->validators[n].name);
		rc = QS_ECONFIG;
	} else {
		*self = n;
	}
out:
	if (rc) {
		EVP_PKEY_free(*net);
		EVP_PKEY_free(*sign);
		*net = NULL;
		*sign = NULL;
	}
	return rc;
}

int
qs_daemon_check_identity(const struct qs_config *cfg, int *self, char *err, size_t errlen)
{
	EVP_PKEY *net, *sign;
	int rc = load_identity(cfg, &net, &sign, self, err, errlen);

	EVP_PKEY_free(net);
	EVP_PKEY_free(sign);
	return rc;
}

static int
health(void *arg, char *reason, size_t len)
{
	struct qs_daemon *d = arg;

	switch (d->storage_state) {
	case QS_STORAGE_OK:
		return 1;
	case QS_STORAGE_RECOVERING:
		snprintf(reason, len, "recovering");
		return 0;
	case QS_STORAGE_FULL:
		snprintf(reason, len, "storage full");
		return 0;
	default:
		snprintf(reason, len, "storage failed");
		return 0;
	}
}

static void
set_storage_state(struct qs_daemon *d, int state)
{
	d->storage_state = state;
	for (size_t i = 0; i < sizeof(qs_storage_states) / sizeof(qs_storage_states[0]); i++)
		qs_metric_set(d->m_storage_state, i, (int)i == state);
}

static int
register_metrics(struct qs_daemon *d)
{
	static const char *const names[] = { "version", "rocksdb", "libevent", "openssl",
					     "protobuf_c", "libyaml" };
	const char *values[] = { QS_VERSION,		  QS_ROCKSDB_VERSION,
				 event_get_version(),	  OpenSSL_version(OPENSSL_VERSION_STRING),
				 protobuf_c_version(),	  yaml_get_version_string() };

	d->metrics = qs_metrics_new();
	if (!d->metrics)
		return -ENOMEM;
	if (!qs_metrics_info(d->metrics, "qsd_build_info",
			     "Version of qsd and of the libraries it runs with.", names, values,
			     sizeof(names) / sizeof(names[0])) ||
	    !qs_metrics_process_start_time(d->metrics))
		return QS_EBASE;
	d->m_storage_state = qs_metrics_gauge(
		d->metrics, "qsd_storage_state",
		"Storage state: 1 for the current state, 0 for the others.", "state",
		qs_storage_states, sizeof(qs_storage_states) / sizeof(qs_storage_states[0]));
	if (!d->m_storage_state)
		return QS_EBASE;
	return 0;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct qs_daemon *d = arg;

	if (sig == SIGHUP) {
		qs_log_notice("sighup_ignored",
			      "reason=\"configuration reload is not supported by this version; "
			      "restart qsd to apply a new configuration\"");
		return;
	}
	qs_log_notice("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	sd_notify(0, "STOPPING=1");
	event_base_loopbreak(d->base);
}

static int
add_signal(struct qs_daemon *d, struct event **ev, int sig)
{
	*ev = evsignal_new(d->base, sig, on_signal, d);
	if (!*ev || event_add(*ev, NULL) != 0)
		return -ENOMEM;
	return 0;
}

static void
daemon_cleanup(struct qs_daemon *d)
{
	qs_http_free(d->http);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	qs_store_close(d->store);
	if (d->base)
		event_base_free(d->base);
	qs_metrics_free(d->metrics);
	EVP_PKEY_free(d->network_key);
	EVP_PKEY_free(d->signing_key);
}

int
qs_daemon_run(const struct qs_config *cfg)
{
	struct qs_daemon d = { .cfg = cfg, .exit_code = QS_EXIT_FAILURE };
	struct qs_store_options so = {
		.dir = cfg->data_dir,
		.write_buffer_bytes = cfg->db_write_buffer_bytes,
		.block_cache_bytes = cfg->db_block_cache_bytes,
		.max_wal_bytes = cfg->db_max_wal_bytes,
	};
	char err[1024] = "";
	int rc;

	qs_log_set_level((int)cfg->log_level);
	/* Keys live in this process's memory: no core dumps, no ptrace by others. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		qs_log_warn("prctl_failed", "what=PR_SET_DUMPABLE errno=%d", errno);
	signal(SIGPIPE, SIG_IGN);

	rc = load_identity(cfg, &d.network_key, &d.signing_key, &d.self, err, sizeof(err));
	if (rc) {
		qs_log_err("config_invalid", "error=\"%s\"", err);
		d.exit_code = QS_EXIT_CONFIG;
		goto out;
	}
	rc = register_metrics(&d);
	if (rc) {
		qs_log_err("metrics_failed", "error=\"cannot register metrics\"");
		goto out;
	}
	set_storage_state(&d, QS_STORAGE_RECOVERING);
	qs_log_info("starting", "version=%s validator=%s index=%d epoch=%" PRIu64
		    " chain_id=%" PRIu32 " data_dir=\"%s\"",
		    QS_VERSION, cfg->validators[d.self].name, d.self, cfg->epoch, cfg->chain_id,
		    cfg->data_dir);

	if (evthread_use_pthreads() != 0) {
		qs_log_err("libevent_failed", "error=\"evthread_use_pthreads\"");
		goto out;
	}
	d.base = event_base_new();
	if (!d.base) {
		qs_log_err("libevent_failed", "error=\"event_base_new\"");
		goto out;
	}
	if (add_signal(&d, &d.sig_term, SIGTERM) || add_signal(&d, &d.sig_int, SIGINT) ||
	    add_signal(&d, &d.sig_hup, SIGHUP)) {
		qs_log_err("libevent_failed", "error=\"cannot add signal events\"");
		goto out;
	}

	rc = qs_store_open(&so, &d.store, err, sizeof(err));
	if (rc) {
		qs_log_crit("storage_open_failed", "data_dir=\"%s\" code=%d error=\"%s\"",
			    cfg->data_dir, rc, err);
		set_storage_state(&d, QS_STORAGE_FAILED);
		goto out;
	}
	set_storage_state(&d, QS_STORAGE_OK);
	qs_log_info("storage_open", "data_dir=\"%s\" schema_version=%" PRIu32, cfg->data_dir,
		    qs_store_schema_version(d.store));

	rc = qs_http_start(d.base, cfg->metrics_listen, d.metrics, health, &d, &d.http, err,
			   sizeof(err));
	if (rc) {
		qs_log_err("metrics_listen_failed", "listen=%s error=\"%s\"", cfg->metrics_listen,
			   err);
		goto out;
	}
	qs_log_info("metrics_listening", "listen=%s", cfg->metrics_listen);

	sd_notifyf(0, "READY=1\nSTATUS=epoch %" PRIu64 ", storage ok", cfg->epoch);
	qs_log_notice("ready", "validator=%s", cfg->validators[d.self].name);
	if (event_base_dispatch(d.base) < 0) {
		qs_log_err("loop_failed", NULL);
		goto out;
	}
	d.exit_code = QS_EXIT_OK;
	qs_log_notice("stopped", NULL);
out:
	daemon_cleanup(&d);
	return d.exit_code;
}
