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
	size_t n_allowed_uids; /* 0: only the uid qsd runs as */

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

#endif
