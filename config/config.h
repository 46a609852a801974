/*
 * qsd configuration: a strict YAML file (libyaml).
 *
 * Every key is listed in one option table in config.c. An unknown key, a
 * value of the wrong type, a duplicate key or a value out of range is an
 * error naming FILE:LINE:COLUMN and the key. Key files that are readable by
 * group or others are refused. See docs/qsd.yaml.5 for every key.
 */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define QS_KEY_BYTES               32
#define QS_MAX_VALIDATORS          256
#define QS_MAX_ALLOWED_UIDS        64
#define QS_CONFIG_ERR_MAX          512
#define QS_CONFIG_MAX_FILE_BYTES   (1024 * 1024) /* larger files are refused unread */
#define QS_CONFIG_MAX_SCALAR_BYTES 4096          /* longest key or value */
/* Most voting power of one validator and of a whole set, so that quorum
 * arithmetic (3 * signed_power) cannot overflow a uint64_t. */
#define QS_LIMIT_BATCH_TXNS_MAX    1000000 /* limits.batch_max_txns at most */
#define QS_MAX_VOTING_POWER        (UINT64_C(1) << 62)

enum qs_log_level {
	QS_LOG_ERR = 3,
	QS_LOG_WARNING = 4,
	QS_LOG_NOTICE = 5,
	QS_LOG_INFO = 6,
	QS_LOG_DEBUG = 7,
};

struct qs_validator {
	char *name;
	char *address; /* host:port */
	uint8_t network_key[QS_KEY_BYTES];
	uint8_t signing_key[QS_KEY_BYTES];
	uint64_t voting_power;
};

struct qs_limits {
	uint32_t batch_max_txns;  /* default 2000 */
	uint64_t batch_max_bytes; /* default 1 MiB */
	uint32_t msg_max_batches; /* default 20 */
	uint64_t msg_max_bytes;   /* default 4 MiB */
	uint64_t frame_max_bytes; /* default 4 MiB + 64 KiB */
};

struct qs_quotas {
	uint64_t author_mem_bytes; /* pending in memory, per author */
	uint64_t author_mem_batches;
	uint64_t author_disk_bytes; /* stored on disk, per author */
	uint64_t author_disk_batches;
	uint64_t author_proofs; /* proofs queued per author */
};

struct qs_config {
	char *path; /* the file this was read from */
	uint32_t chain_id;
	uint64_t epoch;
	char *listen; /* peer listener host:port */
	char *data_dir;
	char *network_key_file; /* PEM, Ed25519 private key */
	char *signing_key_file; /* PEM, Ed25519 private key */
	enum qs_log_level log_level;
	uint64_t max_batch_lifetime_us; /* default 60 s */
	uint64_t max_clock_skew_us;     /* default 5 s */
	uint64_t proof_timeout_us;      /* default 10 s */

	char *rpc_socket; /* Unix socket path */
	uid_t allowed_uids[QS_MAX_ALLOWED_UIDS];
	size_t n_allowed_uids;               /* 0: only the uid qsd runs as */
	uint64_t rpc_write_stall_timeout_us; /* default 10 s; 0 (hand-built configs): none */
	uint64_t rpc_busy_poll_us;           /* default 0: the loop sleeps at once */

	char *metrics_listen; /* host:port, default 127.0.0.1:9464 */

	struct qs_limits limits;
	struct qs_quotas quotas;

	uint64_t submit_queue_bytes;         /* writer queue bound, default 64 MiB */
	uint32_t group_max_batches;          /* one WriteBatch at most, default 256 */
	uint64_t group_max_bytes;            /* default 32 MiB */
	uint64_t free_space_watermark_bytes; /* default 256 MiB */
	uint64_t db_write_buffer_bytes;      /* default 64 MiB */
	uint64_t db_block_cache_bytes;       /* default 32 MiB */
	uint64_t db_max_wal_bytes;           /* default 256 MiB */

	uint64_t payload_cache_bytes;   /* default 256 MiB */
	uint64_t gc_buffer_us;          /* default 60 s */
	uint64_t gc_stall_buffer_us;    /* default 10 min */
	uint64_t fetch_timeout_us;      /* per try, default 500 ms */
	uint32_t fetch_parallel;        /* signers per try, default 2 */
	uint64_t get_batch_deadline_us; /* default 5 s */

	struct qs_validator validators[QS_MAX_VALIDATORS];
	size_t n_validators;
};

/*
 * Read and validate the config file at `path`. On success returns 0 and sets
 * *out to a config the caller frees with qs_config_free(). On failure returns
 * QS_ECONFIG (or -errno when the file cannot be read) and writes one line
 * "FILE:LINE:COLUMN: KEY: what is wrong" into err (errlen bytes).
 * Key files named by the config are checked to exist and to have no group or
 * other permission bits.
 */
int qs_config_load(const char *path, struct qs_config **out, char *err, size_t errlen);

/* Same as qs_config_load() but from a buffer; `name` is used in messages.
 * Key file checks are done as for a file. */
int qs_config_parse(const char *name, const char *buf, size_t len, struct qs_config **out,
                    char *err, size_t errlen);

/* Free a config; NULL is fine. */
void qs_config_free(struct qs_config *cfg);

/* Index of the validator whose network key is `key`, or -1. */
int qs_config_find_network_key(const struct qs_config *cfg, const uint8_t key[QS_KEY_BYTES]);

/* Index of the validator whose signing key is `key`, or -1. */
int qs_config_find_signing_key(const struct qs_config *cfg, const uint8_t key[QS_KEY_BYTES]);

/* Name of a log level ("info"), or NULL. */
const char *qs_log_level_name(enum qs_log_level level);

/*
 * Write the annotated example config to f: every key, in table order, with
 * its documentation, allowed range and default (or an example value for
 * required keys). docs/qsd.yaml.example is this output; a test keeps them
 * equal. Returns 0, or -errno if writing failed.
 */
int qs_config_write_example(FILE *f);

/*
 * Reload (SIGHUP). Each key of the option table either applies at run time
 * or needs a restart; the run-time keys fall in the groups below, which name
 * what the daemon hands on to the modules that copied a value at start.
 * Restart-only keys: chain_id, epoch, listen, data_dir, network_key,
 * signing_key, rpc.socket, metrics.listen, storage.submit_queue_bytes,
 * storage.group_max_*, storage.db_*, and the validator set itself (count,
 * names, keys, voting powers). docs/qsd.yaml.5 says the same per key (a
 * test compares them).
 */
enum qs_reload_group {
	QS_RELOAD_LOG_LEVEL = 1 << 0,    /* log_level */
	QS_RELOAD_TIMING = 1 << 1,       /* max_batch_lifetime_ms, max_clock_skew_ms,
	                                    proof_timeout_ms */
	QS_RELOAD_ALLOWED_UIDS = 1 << 2, /* rpc.allowed_uids */
	QS_RELOAD_LIMITS = 1 << 3,       /* limits.* */
	QS_RELOAD_QUOTAS = 1 << 4,       /* quotas.* */
	QS_RELOAD_STORAGE = 1 << 5,      /* storage.free_space_watermark_bytes */
	QS_RELOAD_SERVING = 1 << 6,      /* serving.* */
	QS_RELOAD_ADDRESSES = 1 << 7,    /* validators[].address */
	QS_RELOAD_RPC = 1 << 8,          /* rpc.write_stall_timeout_ms */
};

#define QS_RELOAD_LIST_MAX 1024 /* plan->applied and the restart message */

/* What a reload changes; filled in by qs_config_reload_plan(). */
struct qs_reload_plan {
	unsigned groups;  /* QS_RELOAD_* with at least one changed key */
	size_t n_applied; /* changed keys that apply at run time */
	size_t n_restart; /* changed keys that keep their running value until a restart */
	/* validators[i].address changed (i < the running n_validators) */
	unsigned char address_changed[QS_MAX_VALIDATORS];
	/* The changed run-time keys, space separated ("log_level
	 * limits.batch_max_txns validators[2].address"), cut with "..." */
	char applied[QS_RELOAD_LIST_MAX];
};

/*
 * Compare the running config `old` with a freshly loaded `new` (both
 * borrowed) and fill *plan. `msg` (len bytes) receives the restart-only keys
 * that changed, comma separated ("listen, validators[1].voting_power"), or
 * "" when there are none; those keep their running values. Returns 0 when
 * the run-time keys can be applied, or QS_ECONFIG when they cannot be
 * applied while the restart-only keys keep their running values (an
 * ordering such as storage.submit_queue_bytes >= limits.frame_max_bytes
 * would break); msg then says why and nothing may be applied.
 */
int qs_config_reload_plan(const struct qs_config *old, const struct qs_config *new,
                          struct qs_reload_plan *plan, char *msg, size_t len);

/*
 * Copy the run-time keys the plan found changed from `new` into `live` (the
 * running config, which the modules borrow), in place: pointers into `live`
 * stay valid except the old validators[i].address strings the plan names,
 * which are freed. Call it on the thread that reads the config (the event
 * loop). Returns 0, or -ENOMEM with `live` unchanged.
 */
int qs_config_reload_apply(struct qs_config *live, const struct qs_config *new,
                           const struct qs_reload_plan *plan);

/* One key of qsd.yaml, for documentation and its tests. */
struct qs_config_key {
	char name[96];   /* "limits.batch_max_txns", "validators[].address" */
	const char *def; /* default as YAML text, or NULL */
	int section;     /* 1 for a mapping of further keys (or the validator list) */
	unsigned reload; /* QS_RELOAD_* group, 0 for restart only; 0 for sections */
};

/* The i-th key in table order (validator keys last). Returns 0, or -ENOENT
 * past the last key. */
int qs_config_key_at(size_t i, struct qs_config_key *out);

#endif
