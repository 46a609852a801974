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
#include "daemon/author.h"
#include "daemon/ingest.h"
#include "daemon/keys.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/http.h"
#include "net/peer.h"
#include "net/rpc.h"
#include "storage/store.h"

/* After SIGTERM, how long the loop keeps running to flush the answers of
 * the batches drained from the writer. */
#define QS_STOP_FLUSH_MS 1000

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
	struct qs_ingest *ingest;
	struct qs_peers *peers;
	struct qs_author *author;
	struct qs_rpc *rpc;
	uint8_t signing_pub[QS_KEY_BYTES];
	enum qs_storage_state storage_state;
	char storage_reason[256];
	int stopping;
	int stop_code; /* exit code once the loop ends after a stop */
	int exit_code;
};

static int
load_identity(const struct qs_config *cfg, EVP_PKEY **net, EVP_PKEY **sign,
              uint8_t sign_pub[QS_KEY_BYTES], int *self, char *err, size_t errlen)
{
	uint8_t net_pub[QS_KEY_BYTES];
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
		snprintf(err, errlen,
		         "%s: network_key: public key %s is not a validator of the set", cfg->path,
		         hex);
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
	uint8_t pub[QS_KEY_BYTES];
	int rc = load_identity(cfg, &net, &sign, pub, self, err, errlen);

	EVP_PKEY_free(net);
	EVP_PKEY_free(sign);
	return rc;
}

static int
health(void *arg, char *reason, size_t len)
{
	struct qs_daemon *d = arg;

	if (d->storage_state == QS_STORAGE_OK)
		return 1;
	snprintf(reason, len, "%s", d->storage_reason);
	return 0;
}

static void
set_storage_state(struct qs_daemon *d, enum qs_storage_state state, const char *reason)
{
	int prio = state == QS_STORAGE_OK || state == QS_STORAGE_RECOVERING ? LOG_NOTICE : LOG_CRIT;

	if (state != d->storage_state)
		qs_log(prio, "storage_state", "from=%s to=%s reason=\"%s\"",
		       qs_storage_state_names[d->storage_state], qs_storage_state_names[state],
		       reason);
	d->storage_state = state;
	snprintf(d->storage_reason, sizeof(d->storage_reason), "%s", reason);
	for (int i = 0; i < QS_STORAGE_STATE_COUNT; i++)
		qs_metric_set(d->m_storage_state, (size_t)i, i == (int)state);
}

static void on_fail_stop(evutil_socket_t fd, short what, void *arg);

static void
on_storage_state(void *arg, enum qs_storage_state state, const char *reason)
{
	struct qs_daemon *d = arg;

	set_storage_state(d, state, reason);
	/* Fail-stop, from the loop rather than from inside the storage
	 * completion that reported it. */
	if (state == QS_STORAGE_FAILED && !d->stopping && d->base)
		event_base_once(d->base, -1, EV_TIMEOUT, on_fail_stop, d, NULL);
}

static int
register_metrics(struct qs_daemon *d)
{
	static const char *const names[] = {"version", "rocksdb",    "libevent",
	                                    "openssl", "protobuf_c", "libyaml"};
	const char *values[] = {QS_VERSION,           QS_ROCKSDB_VERSION,
	                        event_get_version(),  OpenSSL_version(OPENSSL_VERSION_STRING),
	                        protobuf_c_version(), yaml_get_version_string()};

	d->metrics = qs_metrics_new();
	if (!d->metrics)
		return -ENOMEM;
	if (!qs_metrics_info(d->metrics, "qsd_build_info",
	                     "Version of qsd and of the libraries it runs with.", names, values,
	                     sizeof(names) / sizeof(names[0])) ||
	    !qs_metrics_process_start_time(d->metrics))
		return QS_EBASE;
	d->m_storage_state =
	    qs_metrics_gauge(d->metrics, "qsd_storage_state",
	                     "Storage state: 1 for the current state, 0 for the others.", "state",
	                     qs_storage_state_names, QS_STORAGE_STATE_COUNT);
	if (!d->m_storage_state)
		return QS_EBASE;
	return 0;
}

/*
 * Stop: take no more batches, persist and answer the ones already taken,
 * then give the answers a moment to leave before the loop ends.
 */
static void
begin_stop(struct qs_daemon *d, int code)
{
	struct timeval tv = {0, QS_STOP_FLUSH_MS * 1000};

	if (d->stopping)
		return;
	d->stopping = 1;
	d->stop_code = code;
	sd_notify(0, "STOPPING=1");
	qs_ingest_drain(d->ingest);
	event_base_loopexit(d->base, &tv);
}

static void
on_fail_stop(evutil_socket_t fd, short what, void *arg)
{
	struct qs_daemon *d = arg;

	qs_log_crit("fail_stop", "reason=\"%s\" exit=%d", d->storage_reason, QS_EXIT_STORAGE);
	begin_stop(d, QS_EXIT_STORAGE);
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
	if (d->stopping)
		return;
	qs_log_notice("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	begin_stop(d, QS_EXIT_OK);
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
	/* Drain while the peers can still take the answers, then detach them
	 * from the pipeline before they go. */
	qs_ingest_drain(d->ingest);
	if (d->ingest)
		qs_ingest_set_peers(d->ingest, NULL);
	if (d->author)
		qs_author_set_peers(d->author, NULL);
	qs_rpc_free(d->rpc);
	qs_peers_free(d->peers);
	qs_author_free(d->author);
	qs_ingest_free(d->ingest);
	/* Let libevent finish closing what was freed before the base goes. */
	if (d->base)
		event_base_loop(d->base, EVLOOP_NONBLOCK);
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
	struct qs_daemon d = {.cfg = cfg, .exit_code = QS_EXIT_FAILURE};
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

	rc = load_identity(cfg, &d.network_key, &d.signing_key, d.signing_pub, &d.self, err,
	                   sizeof(err));
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
	d.storage_state = QS_STORAGE_RECOVERING;
	set_storage_state(&d, QS_STORAGE_RECOVERING, "opening the database");
	qs_log_info("starting",
	            "version=%s validator=%s index=%d epoch=%" PRIu64 " chain_id=%" PRIu32
	            " data_dir=\"%s\"",
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
		set_storage_state(&d, QS_STORAGE_FAILED, "cannot open the database");
		d.exit_code = QS_EXIT_STORAGE;
		goto out;
	}
	qs_log_info("storage_open", "data_dir=\"%s\" schema_version=%" PRIu32, cfg->data_dir,
	            qs_store_schema_version(d.store));
	{
		struct qs_ingest_options io = {
		    .cfg = cfg,
		    .self = d.self,
		    .base = d.base,
		    .store = d.store,
		    .signing_key = d.signing_key,
		    .signing_pub = d.signing_pub,
		    .metrics = d.metrics,
		    .state_changed = on_storage_state,
		    .arg = &d,
		};
		struct qs_peers_handlers ph = {
		    .on_message = qs_ingest_on_message,
		    .on_state = qs_ingest_on_state,
		};

		sd_notify(0, "STATUS=recovering");
		rc = qs_ingest_start(&io, &d.ingest, err, sizeof(err));
		if (rc) {
			qs_log_crit("recovery_failed", "data_dir=\"%s\" code=%d error=\"%s\"",
			            cfg->data_dir, rc, err);
			set_storage_state(&d, QS_STORAGE_FAILED, "recovery failed");
			d.exit_code = QS_EXIT_STORAGE;
			goto out;
		}
		struct qs_author_options ao = {
		    .cfg = cfg,
		    .self = d.self,
		    .base = d.base,
		    .store = d.store,
		    .ingest = d.ingest,
		    .signing_pub = d.signing_pub,
		    .metrics = d.metrics,
		};
		struct qs_rpc_ops ro = {.request = qs_author_on_rpc};
		struct qs_rpc_info ri = {
		    .server_version = QS_VERSION,
		    .epoch = cfg->epoch,
		    .chain_id = cfg->chain_id,
		};

		rc = qs_author_start(&ao, &d.author, err, sizeof(err));
		if (rc) {
			qs_log_crit("author_start_failed", "error=\"%s\"", err);
			goto out;
		}
		qs_ingest_set_proof_handler(d.ingest, qs_author_on_peer, qs_author_on_state,
		                            d.author);
		rc = qs_peers_start(d.base, cfg, d.self, d.network_key, d.signing_pub, &ph,
		                    d.ingest, d.metrics, &d.peers, err, sizeof(err));
		if (rc) {
			qs_log_err("peer_listen_failed", "listen=%s error=\"%s\"", cfg->listen,
			           err);
			goto out;
		}
		qs_ingest_set_peers(d.ingest, d.peers);
		qs_author_set_peers(d.author, d.peers);
		qs_log_info("peers_listening", "listen=%s", cfg->listen);
		memcpy(ri.author, d.signing_pub, sizeof(ri.author));
		rc = qs_rpc_start(d.base, cfg, &ro, d.author, &ri, d.metrics, &d.rpc, err,
		                  sizeof(err));
		if (rc) {
			qs_log_err("rpc_listen_failed", "socket=\"%s\" error=\"%s\"",
			           cfg->rpc_socket, err);
			goto out;
		}
		qs_log_info("rpc_listening", "socket=\"%s\"", cfg->rpc_socket);
	}

	rc = qs_http_start(d.base, cfg->metrics_listen, d.metrics, health, &d, &d.http, err,
	                   sizeof(err));
	if (rc) {
		qs_log_err("metrics_listen_failed", "listen=%s error=\"%s\"", cfg->metrics_listen,
		           err);
		goto out;
	}
	qs_log_info("metrics_listening", "listen=%s", cfg->metrics_listen);

	sd_notifyf(0, "READY=1\nSTATUS=epoch %" PRIu64 ", %zu batches, storage %s", cfg->epoch,
	           qs_ingest_batches(d.ingest), qs_storage_state_names[d.storage_state]);
	qs_log_notice("ready", "validator=%s", cfg->validators[d.self].name);
	if (event_base_dispatch(d.base) < 0) {
		qs_log_err("loop_failed", NULL);
		goto out;
	}
	d.exit_code = d.stop_code;
	qs_log_notice("stopped", "exit=%d", d.exit_code);
out:
	daemon_cleanup(&d);
	return d.exit_code;
}
