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
#include "daemon/clock.h"
#include "daemon/epoch.h"
#include "daemon/ingest.h"
#include "daemon/keys.h"
#include "daemon/log.h"
#include "core/index.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/serve.h"
#include "net/frame.h"
#include "net/http.h"
#include "net/peer.h"
#include "net/rpc.h"
#include "storage/store.h"
#include "storage/writer.h"

/* After SIGTERM, how long the loop keeps running to flush the answers of
 * the batches drained from the writer. */
#define QS_STOP_FLUSH_MS       1000
/* Start-up (database open and recovery) may extend systemd's start timeout
 * for at most this long. */
#define QS_START_EXTEND_MAX_US (30 * 60 * UINT64_C(1000000))

struct qs_daemon {
	struct qs_config *cfg;      /* the current epoch's */
	struct qs_config *base_cfg; /* the file's (reloaded in place) */
	struct qs_notify *notify;
	uint64_t wd_groups;          /* writer groups completed at the last watchdog tick */
	uint64_t wd_since_us;        /* since when that count has not moved */
	struct qs_config *epoch_cfg; /* a NewEpoch's, when cfg is it */
	struct qs_config *next_cfg;  /* persisted, applied by the restart */
	int next_self;
	struct qs_write_item epoch_item;
	uint8_t *epoch_packed;
	struct qs_rpc_call *epoch_call;
	struct qs_serve *serve;
	uint8_t network_pub[QS_KEY_BYTES];
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
              uint8_t net_pub[QS_KEY_BYTES], uint8_t sign_pub[QS_KEY_BYTES], int *self, char *err,
              size_t errlen)
{
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
	uint8_t net_pub[QS_KEY_BYTES], pub[QS_KEY_BYTES];
	int rc = load_identity(cfg, &net, &sign, net_pub, pub, self, err, errlen);

	EVP_PKEY_free(net);
	EVP_PKEY_free(sign);
	return rc;
}

/* This node's voting power plus its connected peers', against the total:
 * whether a quorum could sign a batch now. */
static int
have_quorum(const struct qs_daemon *d)
{
	uint64_t total = 0, up = 0;

	for (size_t i = 0; i < d->cfg->n_validators; i++) {
		total += d->cfg->validators[i].voting_power;
		if ((int)i == d->self || (d->peers && qs_peers_connected(d->peers, (int)i)))
			up += d->cfg->validators[i].voting_power;
	}
	return 3 * up > 2 * total;
}

/* /healthz: 200 "ok", or 503 with one reason per line. */
static int
health(void *arg, char *reasons, size_t len)
{
	struct qs_daemon *d = arg;

	reasons[0] = '\0';
	if (d->storage_state != QS_STORAGE_OK)
		qs_http_reason_add(reasons, len, "storage %s: %s",
		                   qs_storage_state_names[d->storage_state], d->storage_reason);
	if (d->next_cfg)
		qs_http_reason_add(reasons, len, "changing epoch");
	else if (d->peers && !have_quorum(d))
		qs_http_reason_add(reasons, len, "no quorum of peers");
	return reasons[0] == '\0';
}

/* The watchdog's progress check: the loop runs (this is called from it);
 * the writer is hung when it holds work and completed no group for a whole
 * watchdog interval. A full disk refuses writes quickly: degraded, not hung. */
static int
notify_healthy(void *arg)
{
	struct qs_daemon *d = arg;
	struct qs_writer *w = d->ingest ? qs_ingest_writer(d->ingest) : NULL;
	uint64_t groups = d->ingest ? qs_ingest_groups_done(d->ingest) : 0;
	uint64_t now = qs_clock_mono_us();

	if (!w || qs_writer_queue_bytes(w) == 0 || groups != d->wd_groups) {
		d->wd_groups = groups;
		d->wd_since_us = now;
		return 1;
	}
	return now - d->wd_since_us <= qs_notify_watchdog_usec(d->notify);
}

static void
notify_status(void *arg, struct qs_notify_status *st)
{
	struct qs_daemon *d = arg;

	st->epoch = d->cfg->epoch;
	st->peers_total = d->cfg->n_validators - 1;
	for (size_t i = 0; d->peers && i < d->cfg->n_validators; i++)
		if ((int)i != d->self && qs_peers_connected(d->peers, (int)i))
			st->peers_connected++;
	st->batches = d->ingest ? qs_ingest_batches(d->ingest) : 0;
	st->proofs = d->author ? qs_author_proofs(d->author) : 0;
	st->storage = qs_storage_state_names[d->storage_state];
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
	qs_notify_stopping(d->notify);
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

/*
 * SIGHUP: read the config file again and apply what can change at run time
 * (docs/qsd.yaml.5 says which keys); a file that does not load, or whose
 * run-time keys cannot be applied, is refused and the running config stays.
 * Keys that need a restart keep their running values and are logged.
 */
static void
reload(struct qs_daemon *d)
{
	struct qs_config *next = NULL;
	struct qs_reload_plan plan;
	char err[QS_CONFIG_ERR_MAX + 64] = "", msg[QS_RELOAD_LIST_MAX] = "";
	int rc;

	qs_notify_reloading(d->notify);
	rc = qs_config_load(d->base_cfg->path, &next, err, sizeof(err));
	if (rc == 0)
		rc = qs_config_reload_plan(d->base_cfg, next, &plan, msg, sizeof(msg));
	if (rc == 0 && qs_config_reload_apply(d->base_cfg, next, &plan) != 0) {
		rc = -ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
	}
	if (rc == 0 && d->epoch_cfg) {
		/* The epoch's copy takes the same values; its validator set is
		 * consensus's, not the file's. */
		struct qs_reload_plan own = plan;

		own.groups &= ~(unsigned)QS_RELOAD_ADDRESSES;
		memset(own.address_changed, 0, sizeof(own.address_changed));
		if (qs_config_reload_apply(d->epoch_cfg, next, &own) != 0) {
			rc = -ENOMEM;
			snprintf(msg, sizeof(msg), "out of memory");
		}
	}
	if (rc) {
		qs_log_err("reload_failed",
		           "file=\"%s\" error=\"%s\" action=\"kept the running "
		           "configuration\"",
		           d->base_cfg->path, err[0] ? err : msg);
		goto out;
	}
	if (plan.groups & QS_RELOAD_LOG_LEVEL)
		qs_log_set_level((int)d->cfg->log_level);
	if ((plan.groups & (QS_RELOAD_LIMITS | QS_RELOAD_ADDRESSES)) && d->peers)
		qs_peers_reload(d->peers);
	if (plan.groups & (QS_RELOAD_LIMITS | QS_RELOAD_ALLOWED_UIDS | QS_RELOAD_RPC))
		qs_rpc_reload(d->rpc);
	if ((plan.groups & QS_RELOAD_QUOTAS) && d->ingest)
		qs_index_set_quotas(qs_ingest_index(d->ingest), &d->cfg->quotas);
	if ((plan.groups & QS_RELOAD_SERVING) && d->serve)
		qs_serve_reload(d->serve);
	qs_log_notice("reloaded", "applied=\"%s\" restart_needed=\"%s\"", plan.applied, msg);
out:
	qs_notify_ready(d->notify);
	qs_config_free(next);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct qs_daemon *d = arg;

	if (sig == SIGHUP) {
		if (!d->stopping)
			reload(d);
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

/* ---- the pipeline: ingest, proof stage, serving, peers ---- */

static void on_new_epoch(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req);

/*
 * Start the pipeline on d->cfg (the current epoch's). Returns 0 or the exit
 * code to stop with; the journal says why.
 */
static int
pipeline_start(struct qs_daemon *d, char *err, size_t errlen)
{
	const struct qs_config *cfg = d->cfg;
	struct qs_ingest_options io = {
	    .cfg = cfg,
	    .self = d->self,
	    .base = d->base,
	    .store = d->store,
	    .signing_key = d->signing_key,
	    .signing_pub = d->signing_pub,
	    .metrics = d->metrics,
	    .state_changed = on_storage_state,
	    .arg = d,
	};
	struct qs_author_options ao = {
	    .cfg = cfg,
	    .self = d->self,
	    .base = d->base,
	    .store = d->store,
	    .signing_pub = d->signing_pub,
	    .metrics = d->metrics,
	};
	struct qs_serve_options so = {
	    .cfg = cfg,
	    .self = d->self,
	    .base = d->base,
	    .metrics = d->metrics,
	    .new_epoch = on_new_epoch,
	    .new_epoch_arg = d,
	};
	struct qs_peers_handlers ph = {
	    .on_message = qs_ingest_on_message,
	    .on_state = qs_ingest_on_state,
	};
	int rc;

	rc = qs_ingest_start(&io, &d->ingest, err, errlen);
	if (rc) {
		qs_log_crit("recovery_failed", "data_dir=\"%s\" code=%d error=\"%s\"",
		            cfg->data_dir, rc, err);
		set_storage_state(d, QS_STORAGE_FAILED, "recovery failed");
		return QS_EXIT_STORAGE;
	}
	ao.ingest = d->ingest;
	rc = qs_author_start(&ao, &d->author, err, errlen);
	if (rc) {
		qs_log_crit("author_start_failed", "error=\"%s\"", err);
		return rc == QS_ECORRUPT || rc == QS_EIO || rc == QS_ESTORE ? QS_EXIT_STORAGE
		                                                            : QS_EXIT_FAILURE;
	}
	qs_ingest_set_proof_handler(d->ingest, qs_author_on_peer, qs_author_on_state, d->author);
	so.ingest = d->ingest;
	so.author = d->author;
	rc = qs_serve_start(&so, &d->serve, err, errlen);
	if (rc) {
		qs_log_crit("serve_start_failed", "error=\"%s\"", err);
		return QS_EXIT_FAILURE;
	}
	rc = qs_peers_start(d->base, cfg, d->self, d->network_key, d->signing_pub, &ph, d->ingest,
	                    d->metrics, &d->peers, err, errlen);
	if (rc) {
		qs_log_err("peer_listen_failed", "listen=%s error=\"%s\"", cfg->listen, err);
		return QS_EXIT_FAILURE;
	}
	qs_ingest_set_peers(d->ingest, d->peers);
	qs_author_set_peers(d->author, d->peers);
	qs_serve_set_peers(d->serve, d->peers);
	qs_log_info("peers_listening", "listen=%s epoch=%" PRIu64 " validators=%zu", cfg->listen,
	            cfg->epoch, cfg->n_validators);
	return 0;
}

/*
 * Stop the pipeline: persist and answer what was taken (the answers queued
 * while the peers can still take them), then free it. Calls waiting for a
 * read, a write or a fetch are answered; own batches awaiting a quorum
 * and the calls of the proof stage get UNAVAILABLE.
 */
static void
pipeline_stop(struct qs_daemon *d)
{
	qs_ingest_drain(d->ingest);
	if (d->ingest)
		qs_ingest_set_peers(d->ingest, NULL);
	if (d->author)
		qs_author_set_peers(d->author, NULL);
	if (d->serve)
		qs_serve_set_peers(d->serve, NULL);
	qs_serve_free(d->serve);
	d->serve = NULL;
	qs_peers_free(d->peers);
	d->peers = NULL;
	qs_author_free(d->author);
	d->author = NULL;
	qs_ingest_free(d->ingest);
	d->ingest = NULL;
}

static void
on_rpc(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	struct qs_daemon *d = arg;

	if (!d->serve || d->stopping || d->next_cfg) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     d->next_cfg ? "changing epoch; retry" : "qsd is stopping");
		qs_frame_msg_free(&req->base);
		return;
	}
	qs_serve_on_rpc(d->serve, call, req);
}

/*
 * Apply a persisted epoch: the pipeline stops and starts again on the new
 * set. Recovery drops the batches and proofs of older epochs, the peers
 * connect to the new set, the RPC socket stays open.
 */
static void
on_epoch_restart(evutil_socket_t fd, short what, void *arg)
{
	struct qs_daemon *d = arg;
	struct qs_config *old = d->epoch_cfg;
	char err[1024] = "";
	int rc;

	if (d->stopping)
		return;
	/* From a loop callback the loop cannot run to flush the peers' answers;
	 * a peer whose answer is lost times out and sends again. */
	pipeline_stop(d);
	d->epoch_cfg = d->next_cfg;
	d->next_cfg = NULL;
	d->cfg = d->epoch_cfg;
	d->self = d->next_self;
	qs_epoch_config_free(old);
	qs_rpc_set_epoch(d->rpc, d->cfg->epoch);
	rc = pipeline_start(d, err, sizeof(err));
	if (rc) {
		/* Restarted by systemd, qsd opens the persisted epoch anew. */
		qs_log_crit("epoch_change_failed", "epoch=%" PRIu64 " exit=%d", d->cfg->epoch,
		            QS_EXIT_STORAGE);
		begin_stop(d, QS_EXIT_STORAGE);
		return;
	}
	qs_log_notice("epoch_changed", "epoch=%" PRIu64 " validators=%zu index=%d batches=%zu",
	              d->cfg->epoch, d->cfg->n_validators, d->self, qs_ingest_batches(d->ingest));
	qs_notify_ready(d->notify);
}

static void
on_epoch_written(struct qs_write_item *w)
{
	struct qs_daemon *d = w->owner;
	Quorumstore__V1__Response resp = QUORUMSTORE__V1__RESPONSE__INIT;
	Quorumstore__V1__NewEpochResponse body = QUORUMSTORE__V1__NEW_EPOCH_RESPONSE__INIT;

	free(d->epoch_packed);
	d->epoch_packed = NULL;
	if (w->result) {
		qs_rpc_respond_error(d->epoch_call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "the new epoch was not persisted: %s", qs_strerror(w->result));
		d->epoch_call = NULL;
		qs_epoch_config_free(d->next_cfg);
		d->next_cfg = NULL;
		/* A full writer queue is back pressure, not a storage failure. */
		if (d->ingest && w->result != QS_ESHUTDOWN && w->result != QS_EQUEUEFULL)
			qs_ingest_storage_failed(d->ingest, w->result, "persisting a new epoch");
		return;
	}
	qs_log_notice("epoch_persisted", "epoch=%" PRIu64 " validators=%zu", d->next_cfg->epoch,
	              d->next_cfg->n_validators);
	resp.status = QUORUMSTORE__V1__STATUS__STATUS_OK;
	resp.body_case = QUORUMSTORE__V1__RESPONSE__BODY_NEW_EPOCH;
	resp.new_epoch = &body;
	qs_rpc_respond(d->epoch_call, &resp);
	d->epoch_call = NULL;
	/* Not from inside the writer's completion: the restart stops the writer. */
	if (event_base_once(d->base, -1, EV_TIMEOUT, on_epoch_restart, d, NULL) != 0) {
		qs_log_crit("epoch_change_failed", "error=\"cannot schedule the restart\"");
		begin_stop(d, QS_EXIT_FAILURE);
	}
}

static void
on_new_epoch(void *arg, struct qs_rpc_call *call, Quorumstore__V1__Request *req)
{
	struct qs_daemon *d = arg;
	const Quorumstore__V1__NewEpochRequest *ne = req->new_epoch;
	struct qs_writer *wr = d->ingest ? qs_ingest_writer(d->ingest) : NULL;
	char msg[512];
	size_t len;
	int rc;

	if (d->next_cfg || d->epoch_call || !wr) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_UNAVAILABLE,
		                     "an epoch change is in progress or qsd is stopping; retry");
		goto out;
	}
	len = protobuf_c_message_get_packed_size(&ne->base);
	if (len > QS_EPOCH_SET_MAX) {
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "the validator set takes %zu bytes, at most %u", len,
		                     QS_EPOCH_SET_MAX);
		goto out;
	}
	rc = qs_epoch_config(d->base_cfg, d->cfg, ne, d->network_pub, d->signing_pub, &d->next_cfg,
	                     &d->next_self, msg, sizeof(msg));
	if (rc) {
		qs_log_warn("epoch_refused", "epoch=%" PRIu64 " reason=\"%s\"", ne->epoch, msg);
		qs_rpc_respond_error(call,
		                     rc == -ENOMEM
		                         ? QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED
		                     : ne->epoch <= d->cfg->epoch
		                         ? QUORUMSTORE__V1__STATUS__STATUS_FAILED_PRECONDITION
		                         : QUORUMSTORE__V1__STATUS__STATUS_INVALID_ARGUMENT,
		                     "%s", msg);
		goto out;
	}
	d->epoch_packed = malloc(len ? len : 1);
	if (!d->epoch_packed) {
		qs_epoch_config_free(d->next_cfg);
		d->next_cfg = NULL;
		qs_rpc_respond_error(call, QUORUMSTORE__V1__STATUS__STATUS_RESOURCE_EXHAUSTED,
		                     "out of memory");
		goto out;
	}
	protobuf_c_message_pack(&ne->base, d->epoch_packed);
	memset(&d->epoch_item, 0, sizeof(d->epoch_item));
	d->epoch_item.kind = QS_WRITE_PUT;
	d->epoch_item.extra[0] = (struct qs_write_extra){
	    QS_CF_META, QS_META_EPOCH_SET, strlen(QS_META_EPOCH_SET), d->epoch_packed,
	    len,        QS_WRITE_OP_PUT};
	d->epoch_item.n_extra = 1;
	d->epoch_item.owner = d;
	d->epoch_item.complete = on_epoch_written;
	d->epoch_call = call;
	rc = qs_writer_submit(wr, &d->epoch_item);
	if (rc) {
		d->epoch_item.result = rc;
		on_epoch_written(&d->epoch_item);
	}
out:
	qs_frame_msg_free(&req->base);
}

static void
daemon_cleanup(struct qs_daemon *d)
{
	qs_http_free(d->http);
	pipeline_stop(d);
	qs_rpc_free(d->rpc);
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
	qs_notify_free(d->notify);
	if (d->base)
		event_base_free(d->base);
	qs_metrics_free(d->metrics);
	EVP_PKEY_free(d->network_key);
	EVP_PKEY_free(d->signing_key);
	qs_epoch_config_free(d->epoch_cfg);
	qs_epoch_config_free(d->next_cfg);
	free(d->epoch_packed);
}

int
qs_daemon_run(struct qs_config *cfg)
{
	struct qs_daemon d = {.cfg = cfg, .base_cfg = cfg, .exit_code = QS_EXIT_FAILURE};
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

	rc = load_identity(cfg, &d.network_key, &d.signing_key, d.network_pub, d.signing_pub,
	                   &d.self, err, sizeof(err));
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
	{
		struct qs_notify_ops no = {
		    .healthy = notify_healthy, .status = notify_status, .arg = &d};

		if (qs_notify_new(d.base, &no, &d.notify) != 0) {
			qs_log_err("notify_failed", "error=\"out of memory\"");
			goto out;
		}
		qs_notify_extend_begin(d.notify, "opening the database", QS_START_EXTEND_MAX_US);
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
	qs_log_info("storage_open", "data_dir=\"%s\" schema_version=%" PRIu32 " crc32c=%s",
	            cfg->data_dir, qs_store_schema_version(d.store), qs_store_crc32c());
	/* A NewEpoch persisted earlier wins over the config's first epoch. */
	rc = qs_epoch_load(d.store, cfg, d.network_pub, d.signing_pub, &d.epoch_cfg, &d.self, err,
	                   sizeof(err));
	if (rc) {
		qs_log_crit("epoch_load_failed", "error=\"%s\"", err);
		set_storage_state(&d, QS_STORAGE_FAILED, "the persisted epoch is unusable");
		d.exit_code = QS_EXIT_STORAGE;
		goto out;
	}
	if (d.epoch_cfg) {
		d.cfg = d.epoch_cfg;
		qs_log_notice("epoch_restored", "epoch=%" PRIu64 " validators=%zu index=%d",
		              d.cfg->epoch, d.cfg->n_validators, d.self);
	}
	qs_notify_extend_begin(d.notify, "recovering", QS_START_EXTEND_MAX_US);
	rc = pipeline_start(&d, err, sizeof(err));
	if (rc) {
		d.exit_code = rc;
		goto out;
	}
	{
		struct qs_rpc_ops ro = {.request = on_rpc};
		struct qs_rpc_info ri = {
		    .server_version = QS_VERSION,
		    .epoch = d.cfg->epoch,
		    .chain_id = cfg->chain_id,
		};

		memcpy(ri.author, d.signing_pub, sizeof(ri.author));
		rc = qs_rpc_start(d.base, cfg, &ro, &d, &ri, d.metrics, &d.rpc, err, sizeof(err));
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

	qs_notify_extend_end(d.notify);
	qs_notify_ready(d.notify);
	qs_log_notice("ready", "validator=%s epoch=%" PRIu64, d.cfg->validators[d.self].name,
	              d.cfg->epoch);
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
