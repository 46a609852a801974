/*
 * qsd configuration: a strict YAML reader driven by one option table.
 *
 * Reading is two steps. libyaml's event API builds a small tree of nodes,
 * refusing what a config never needs (anchors, aliases, tags, a second
 * document, deep nesting, oversized scalars) before it costs memory. Then
 * qs_cfg_walk() matches every mapping against qs_options[], the one table
 * that also gives each key's default and its documentation
 * (qs_config_write_example()). Adding a key is adding a row and a field.
 *
 * Every error is one line, "FILE:LINE:COLUMN: KEY: what is wrong", pointing
 * at the offending key or value (libyaml's marks are 0-based, ours 1-based).
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/addr.h"
#include "core/error.h"
#include "core/hex.h"

#define QS_CFG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define QS_CFG_MAX_DEPTH     16    /* the schema needs 4 */
#define QS_CFG_MAX_NODES     65536 /* 256 validators need about 3,000 */
#define QS_CFG_PATH_MAX      160   /* dotted key paths in messages */
#define QS_CFG_SHOW_MAX      40    /* bytes of a bad value quoted in a message */
#define QS_SUN_PATH_MAX      107   /* sizeof(sockaddr_un.sun_path) - 1 */

enum qs_cfg_type {
	QS_CFG_SECTION,    /* a mapping of further rows named "section.key" */
	QS_CFG_UINT,       /* uint32_t or uint64_t, by the field's size */
	QS_CFG_STRING,     /* char *, non-empty; max is the longest length */
	QS_CFG_ADDRESS,    /* char *, host:port or [v6]:port */
	QS_CFG_NAME,       /* char *, [A-Za-z0-9_.-]{1,max} */
	QS_CFG_KEY_FILE,   /* char *, a regular file without group/other bits */
	QS_CFG_LOG_LEVEL,  /* enum qs_log_level */
	QS_CFG_HEX_KEY,    /* uint8_t[QS_KEY_BYTES] from 64 hex digits */
	QS_CFG_UID_LIST,   /* allowed_uids/n_allowed_uids; max entries */
	QS_CFG_VALIDATORS, /* validators/n_validators; min..max entries */
};

enum {
	QS_CFG_REQUIRED = 1 << 0,
	QS_CFG_BYTES = 1 << 1,    /* a size: may end in KiB, MiB, GiB or TiB */
	QS_CFG_MS_TO_US = 1 << 2, /* written in ms, stored in us */
	QS_CFG_UNIQUE = 1 << 3,   /* validators: no two entries share the value */
};

struct qs_option {
	const char *name; /* dotted path below the table's root */
	enum qs_cfg_type type;
	unsigned flags;
	size_t offset; /* of the field in the table's struct */
	size_t size;
	uint64_t min;        /* UINT: value range; lists: entry counts */
	uint64_t max;        /* STRING, NAME: longest length (0: none) */
	const char *def;     /* default, as YAML text; NULL: none */
	const char *example; /* shown by the example when there is no default */
	const char *doc;
	unsigned reload; /* QS_RELOAD_* group applied on SIGHUP; 0: restart only */
};

#define QS_CFG_FIELD(type, f)                                                                      \
	.offset = offsetof(struct type, f), .size = sizeof(((struct type *)0)->f)
#define QS_C(f) QS_CFG_FIELD(qs_config, f)
#define QS_V(f) QS_CFG_FIELD(qs_validator, f)

#define QS_KIB (UINT64_C(1) << 10)
#define QS_MIB (UINT64_C(1) << 20)
#define QS_GIB (UINT64_C(1) << 30)
#define QS_TIB (UINT64_C(1) << 40)

/* Every key of qsd.yaml, in the order the example shows them. */
/* clang-format off */
static const struct qs_option qs_options[] = {
	{ .name = "chain_id", .type = QS_CFG_UINT, .flags = QS_CFG_REQUIRED, QS_C(chain_id),
	  .min = 1, .max = UINT32_MAX, .example = "1",
	  .doc = "Identifies the network. Every batch digest and signature covers it,\n"
		 "so signatures never replay across networks." },
	{ .name = "epoch", .type = QS_CFG_UINT, .flags = QS_CFG_REQUIRED, QS_C(epoch),
	  .min = 1, .max = UINT64_MAX, .example = "1",
	  .doc = "First epoch. A NewEpoch from consensus is persisted and wins over\n"
		 "this value on restart." },
	{ .name = "listen", .type = QS_CFG_ADDRESS, .flags = QS_CFG_REQUIRED, QS_C(listen),
	  .example = "127.0.0.1:7001",
	  .doc = "Peer (TLS) listener: IPv4:port or [IPv6]:port (names are not resolved)." },
	{ .name = "data_dir", .type = QS_CFG_STRING, .flags = QS_CFG_REQUIRED, QS_C(data_dir),
	  .example = "/var/lib/qsd",
	  .doc = "Directory of the database." },
	{ .name = "network_key", .type = QS_CFG_KEY_FILE, .flags = QS_CFG_REQUIRED,
	  QS_C(network_key_file), .example = "/etc/qsd/network.key",
	  .doc = "PEM file with this node's Ed25519 network (TLS) private key. It must\n"
		 "be a regular file without group or other permission bits (chmod 600).\n"
		 "A systemd LoadCredential= file is named by its full path under\n"
		 "/run/credentials/qsd.service/." },
	{ .name = "signing_key", .type = QS_CFG_KEY_FILE, .flags = QS_CFG_REQUIRED,
	  QS_C(signing_key_file), .example = "/etc/qsd/signing.key",
	  .doc = "PEM file with this node's Ed25519 batch signing private key; same\n"
		 "rules as network_key." },
	{ .name = "log_level", .type = QS_CFG_LOG_LEVEL, QS_C(log_level), .def = "info",
	  .reload = QS_RELOAD_LOG_LEVEL,
	  .doc = "Lowest priority logged: err, warning, notice, info or debug." },
	{ .name = "max_batch_lifetime_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(max_batch_lifetime_us), .min = 1000, .max = 86400000, .def = "60000",
	  .reload = QS_RELOAD_TIMING,
	  .doc = "Longest batch lifetime accepted: an expiration must lie in\n"
		 "(now, now + max_batch_lifetime_ms]." },
	{ .name = "max_clock_skew_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(max_clock_skew_us), .min = 0, .max = 600000, .def = "5000",
	  .reload = QS_RELOAD_TIMING,
	  .doc = "Clock skew tolerated against peers; batches outside it are refused." },
	{ .name = "proof_timeout_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(proof_timeout_us), .min = 100, .max = 600000, .def = "10000",
	  .reload = QS_RELOAD_TIMING,
	  .doc = "How long an own batch waits for a quorum of signatures before it is\n"
		 "given up (qsd_proofs_timed_out_total)." },

	{ .name = "rpc", .type = QS_CFG_SECTION,
	  .doc = "RPC socket of the consensus process." },
	{ .name = "rpc.socket", .type = QS_CFG_STRING, QS_C(rpc_socket),
	  .max = QS_SUN_PATH_MAX, .def = "/run/qsd/rpc.sock",
	  .doc = "Path of the Unix socket (mode 0660)." },
	{ .name = "rpc.allowed_uids", .type = QS_CFG_UID_LIST, QS_C(allowed_uids),
	  .min = 0, .max = QS_MAX_ALLOWED_UIDS, .example = "[]",
	  .reload = QS_RELOAD_ALLOWED_UIDS,
	  .doc = "User ids allowed to connect, checked with SO_PEERCRED, for example\n"
		 "[0, 998]. The empty list (the default) allows only the user qsd\n"
		 "runs as." },
	{ .name = "rpc.write_stall_timeout_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(rpc_write_stall_timeout_us), .min = 1000, .max = 600000, .def = "10000",
	  .reload = QS_RELOAD_RPC,
	  .doc = "A client with responses waiting, none of which could be written for\n"
		 "this long (it stopped reading them), is closed as a slow reader.\n"
		 "A client that reads, however slowly, is not." },
	{ .name = "rpc.busy_poll_us", .type = QS_CFG_UINT, QS_C(rpc_busy_poll_us), .min = 0,
	  .max = 1000, .def = "0", .reload = QS_RELOAD_RPC,
	  .doc = "Microseconds the event loop keeps polling without sleeping after\n"
		 "it answers a request, so that a client asking one request at a\n"
		 "time finds qsd awake: the scheduler's wake-up is a good part of a\n"
		 "request's round trip. Costs up to a core while clients keep\n"
		 "asking; 0 never polls." },

	{ .name = "metrics", .type = QS_CFG_SECTION,
	  .doc = "Prometheus /metrics and /healthz over HTTP." },
	{ .name = "metrics.listen", .type = QS_CFG_ADDRESS, QS_C(metrics_listen),
	  .def = "127.0.0.1:9464",
	  .doc = "HTTP listener; keep it on loopback." },

	{ .name = "limits", .type = QS_CFG_SECTION,
	  .doc = "Limits on peer messages, checked before anything is allocated.\n"
		 "All validators should use the same values." },
	{ .name = "limits.batch_max_txns", .type = QS_CFG_UINT, QS_C(limits.batch_max_txns),
	  .min = 1, .max = QS_LIMIT_BATCH_TXNS_MAX, .def = "2000",
	  .reload = QS_RELOAD_LIMITS,
	  .doc = "Most transactions in one batch." },
	{ .name = "limits.batch_max_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(limits.batch_max_bytes), .min = 1, .max = 64 * QS_MIB, .def = "1048576",
	  .reload = QS_RELOAD_LIMITS,
	  .doc = "Most payload bytes in one batch." },
	{ .name = "limits.msg_max_batches", .type = QS_CFG_UINT, QS_C(limits.msg_max_batches),
	  .min = 1, .max = 1000, .def = "20",
	  .reload = QS_RELOAD_LIMITS,
	  .doc = "Most batches in one peer message." },
	{ .name = "limits.msg_max_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(limits.msg_max_bytes), .min = 1, .max = 256 * QS_MIB, .def = "4194304",
	  .reload = QS_RELOAD_LIMITS,
	  .doc = "Most bytes in one peer message; at least limits.batch_max_bytes." },
	{ .name = "limits.frame_max_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(limits.frame_max_bytes), .min = 1, .max = 256 * QS_MIB + 64 * QS_KIB,
	  .def = "4259840",
	  .reload = QS_RELOAD_LIMITS,
	  .doc = "Most bytes in one frame; at least limits.msg_max_bytes." },

	{ .name = "quotas", .type = QS_CFG_SECTION,
	  .doc = "Per-author quotas; a batch over one gets a BatchNack." },
	{ .name = "quotas.author_mem_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(quotas.author_mem_bytes), .min = 1, .max = 1024 * QS_TIB, .def = "67108864",
	  .reload = QS_RELOAD_QUOTAS,
	  .doc = "Bytes of one author's batches pending in memory." },
	{ .name = "quotas.author_mem_batches", .type = QS_CFG_UINT,
	  QS_C(quotas.author_mem_batches), .min = 1, .max = UINT32_MAX, .def = "1000",
	  .reload = QS_RELOAD_QUOTAS,
	  .doc = "Batches of one author pending in memory." },
	{ .name = "quotas.author_disk_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(quotas.author_disk_bytes), .min = 1, .max = 1024 * QS_TIB,
	  .def = "4294967296",
	  .reload = QS_RELOAD_QUOTAS,
	  .doc = "Bytes of one author's batches stored on disk." },
	{ .name = "quotas.author_disk_batches", .type = QS_CFG_UINT,
	  QS_C(quotas.author_disk_batches), .min = 1, .max = UINT32_MAX, .def = "100000",
	  .reload = QS_RELOAD_QUOTAS,
	  .doc = "Batches of one author stored on disk." },
	{ .name = "quotas.author_proofs", .type = QS_CFG_UINT, QS_C(quotas.author_proofs),
	  .min = 1, .max = UINT32_MAX, .def = "10000",
	  .doc = "Proofs of one author waiting in the proof queue." },

	{ .name = "storage", .type = QS_CFG_SECTION,
	  .doc = "The database and its writer thread." },
	{ .name = "storage.submit_queue_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(submit_queue_bytes), .min = 1, .max = 64 * QS_GIB, .def = "67108864",
	  .doc = "Bound of the queue in front of the writer; when it is full qsd stops\n"
		 "reading from peers. At least limits.frame_max_bytes." },
	{ .name = "storage.group_max_batches", .type = QS_CFG_UINT, QS_C(group_max_batches),
	  .min = 1, .max = 65536, .def = "256",
	  .doc = "Most batches committed by one WriteBatch (one fsync)." },
	{ .name = "storage.group_max_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(group_max_bytes), .min = 1, .max = QS_GIB, .def = "33554432",
	  .doc = "Most bytes committed by one WriteBatch; at least\n"
		 "limits.batch_max_bytes." },
	{ .name = "storage.free_space_watermark_bytes", .type = QS_CFG_UINT,
	  .flags = QS_CFG_BYTES, QS_C(free_space_watermark_bytes), .min = 0,
	  .max = 1024 * QS_TIB, .def = "268435456",
	  .reload = QS_RELOAD_STORAGE,
	  .doc = "New batches are refused (STORAGE_FULL) while the file system of\n"
		 "data_dir has less free space than this, which keeps room for GC\n"
		 "and compaction." },
	{ .name = "storage.db_write_buffer_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(db_write_buffer_bytes), .min = QS_MIB, .max = QS_TIB, .def = "67108864",
	  .doc = "RocksDB memtable size (write_buffer_size)." },
	{ .name = "storage.db_block_cache_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(db_block_cache_bytes), .min = QS_MIB, .max = QS_TIB, .def = "33554432",
	  .doc = "RocksDB block cache size." },
	{ .name = "storage.db_max_wal_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(db_max_wal_bytes), .min = QS_MIB, .max = QS_TIB, .def = "268435456",
	  .doc = "RocksDB max_total_wal_size: memtables are flushed when the\n"
		 "write-ahead log grows past it." },

	{ .name = "serving", .type = QS_CFG_SECTION,
	  .doc = "What the consensus process asks for: payloads, batches, commits." },
	{ .name = "serving.payload_cache_bytes", .type = QS_CFG_UINT, .flags = QS_CFG_BYTES,
	  QS_C(payload_cache_bytes), .min = 0, .max = QS_TIB, .def = "268435456",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "Payloads of durable batches kept in memory for GetBatch and inline\n"
		 "batches; beyond it payloads are read from disk. 0 caches nothing." },
	{ .name = "serving.gc_buffer_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(gc_buffer_us), .min = 0, .max = 86400000, .def = "60000",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "A payload is deleted once a committed block's timestamp passes its\n"
		 "expiration by this much (a proposed batch may still be executed)." },
	{ .name = "serving.gc_stall_buffer_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(gc_stall_buffer_us), .min = 1000, .max = 604800000, .def = "600000",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "Without commits, a payload is deleted once the local clock passes\n"
		 "its expiration by this much, so a stalled consensus cannot fill\n"
		 "the disk. At least serving.gc_buffer_ms." },
	{ .name = "serving.fetch_timeout_ms", .type = QS_CFG_UINT, .flags = QS_CFG_MS_TO_US,
	  QS_C(fetch_timeout_us), .min = 10, .max = 60000, .def = "500",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "GetBatch of a batch this node lacks asks its signers; each try waits\n"
		 "this long for an answer before the next signers are asked." },
	{ .name = "serving.fetch_parallel", .type = QS_CFG_UINT, QS_C(fetch_parallel),
	  .min = 1, .max = QS_MAX_VALIDATORS, .def = "2",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "Signers asked at once by each try of a fetch." },
	{ .name = "serving.get_batch_deadline_ms", .type = QS_CFG_UINT,
	  .flags = QS_CFG_MS_TO_US, QS_C(get_batch_deadline_us), .min = 10, .max = 600000,
	  .def = "5000",
	  .reload = QS_RELOAD_SERVING,
	  .doc = "Deadline of a GetBatch whose request names none (deadline_ms 0)." },

	{ .name = "validators", .type = QS_CFG_VALIDATORS, .flags = QS_CFG_REQUIRED,
	  QS_C(validators), .min = 1, .max = QS_MAX_VALIDATORS,
	  .doc = "The validator set of the first epoch, in the order of proof signer\n"
		 "bitmaps; one entry per validator, this node included. The total\n"
		 "voting power is at most 2^62." },
};

/* The keys of one entry of `validators`. */
static const struct qs_option qs_validator_options[] = {
	{ .name = "name", .type = QS_CFG_NAME, .flags = QS_CFG_REQUIRED | QS_CFG_UNIQUE,
	  QS_V(name), .max = 64, .example = "v0",
	  .doc = "Unique name, of A-Z a-z 0-9 _ . -" },
	{ .name = "address", .type = QS_CFG_ADDRESS, .flags = QS_CFG_REQUIRED | QS_CFG_UNIQUE,
	  QS_V(address), .example = "127.0.0.1:7001",
	  .reload = QS_RELOAD_ADDRESSES,
	  .doc = "Unique host:port of its peer listener." },
	{ .name = "network_key", .type = QS_CFG_HEX_KEY,
	  .flags = QS_CFG_REQUIRED | QS_CFG_UNIQUE, QS_V(network_key),
	  .example = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
	  .doc = "Unique Ed25519 public key of its TLS certificate, 64 hex digits." },
	{ .name = "signing_key", .type = QS_CFG_HEX_KEY,
	  .flags = QS_CFG_REQUIRED | QS_CFG_UNIQUE, QS_V(signing_key),
	  .example = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
	  .doc = "Unique Ed25519 public key that signs its batches, 64 hex digits." },
	{ .name = "voting_power", .type = QS_CFG_UINT, .flags = QS_CFG_REQUIRED,
	  QS_V(voting_power), .min = 1, .max = QS_MAX_VOTING_POWER, .example = "1",
	  .doc = "Voting power; a quorum is more than two thirds of the total." },
};
/* clang-format on */

#define QS_N_OPTIONS           QS_CFG_ARRAY_SIZE(qs_options)
#define QS_N_VALIDATOR_OPTIONS QS_CFG_ARRAY_SIZE(qs_validator_options)

/* Orderings between keys: `larger` must be at least `smaller`. */
static const struct {
	const char *larger;
	const char *smaller;
} qs_cfg_orders[] = {
    {"limits.msg_max_bytes", "limits.batch_max_bytes"},
    {"limits.frame_max_bytes", "limits.msg_max_bytes"},
    {"storage.submit_queue_bytes", "limits.frame_max_bytes"},
    {"storage.group_max_bytes", "limits.batch_max_bytes"},
    {"serving.gc_stall_buffer_ms", "serving.gc_buffer_ms"},
};

static const char *const qs_log_level_names[] = {
    [QS_LOG_ERR] = "err",   [QS_LOG_WARNING] = "warning", [QS_LOG_NOTICE] = "notice",
    [QS_LOG_INFO] = "info", [QS_LOG_DEBUG] = "debug",
};

enum qs_cfg_node_type {
	QS_CFG_NODE_SCALAR,
	QS_CFG_NODE_MAP,
	QS_CFG_NODE_SEQ,
};

/* A YAML node. A mapping's children alternate key, value. */
struct qs_cfg_node {
	enum qs_cfg_node_type type;
	unsigned line;   /* 1-based */
	unsigned column; /* 1-based */
	bool plain;      /* an unquoted scalar */
	char *value;     /* scalars: NUL-terminated, may hold NULs */
	size_t len;
	size_t count; /* children */
	struct qs_cfg_node *first;
	struct qs_cfg_node *last;
	struct qs_cfg_node *next;
};

/* An open mapping or sequence while the tree is built. */
struct qs_cfg_level {
	struct qs_cfg_node *node;
	const struct qs_cfg_node *key; /* a mapping's latest key */
};

struct qs_cfg_parser {
	const char *name;
	const char *buf;
	size_t len;
	char *err;
	size_t errlen;
	struct qs_config *cfg;
	struct qs_cfg_node *root;
	struct qs_cfg_level stack[QS_CFG_MAX_DEPTH];
	size_t depth;
	size_t n_nodes;
	unsigned n_docs;
	const struct qs_cfg_node *seen_key[QS_N_OPTIONS];
	const struct qs_cfg_node *seen_val[QS_N_OPTIONS];
};

static int qs_cfg_walk(struct qs_cfg_parser *p, const struct qs_option *rows, size_t n_rows,
                       void *base, const char *prefix, const char *section,
                       const struct qs_cfg_node *map, const struct qs_cfg_node **seen_key,
                       const struct qs_cfg_node **seen_val);

static void qs_cfg_vformat(char *err, size_t errlen, const char *name, unsigned line,
                           unsigned column, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static void qs_cfg_format(char *err, size_t errlen, const char *name, unsigned line,
                          unsigned column, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int qs_cfg_error(struct qs_cfg_parser *p, unsigned line, unsigned column, const char *key,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
qs_cfg_vformat(char *err, size_t errlen, const char *name, unsigned line, unsigned column,
               const char *key, const char *fmt, va_list ap)
{
	size_t i;
	int n;

	if (!err || errlen == 0)
		return;
	n = snprintf(err, errlen, "%s:%u:%u: %s: ", name, line, column,
	             key[0] ? key : "(document)");
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - n, fmt, ap);
	/* Names and values come from the file: keep the message one line. */
	for (i = 0; err[i]; i++)
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			err[i] = '?';
}

static void
qs_cfg_format(char *err, size_t errlen, const char *name, unsigned line, unsigned column,
              const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	qs_cfg_vformat(err, errlen, name, line, column, key, fmt, ap);
	va_end(ap);
}

/* Record the error in p->err; returns QS_ECONFIG. */
static int
qs_cfg_error(struct qs_cfg_parser *p, unsigned line, unsigned column, const char *key,
             const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	qs_cfg_vformat(p->err, p->errlen, p->name, line, column, key, fmt, ap);
	va_end(ap);
	return QS_ECONFIG;
}

static int
qs_cfg_nomem(struct qs_cfg_parser *p)
{
	qs_cfg_error(p, 1, 1, "", "out of memory");
	return -ENOMEM;
}

/* The first bytes of a value, printable, for a message. */
static const char *
qs_cfg_show(const struct qs_cfg_node *v, char *buf, size_t size)
{
	size_t i, n = v->len < QS_CFG_SHOW_MAX ? v->len : QS_CFG_SHOW_MAX;

	if (n > size - 4)
		n = size - 4;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v->value[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (n < v->len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Is the scalar v exactly `s`? Scalars may hold NUL bytes. */
static bool
qs_cfg_scalar_is(const struct qs_cfg_node *v, const char *s)
{
	return v->type == QS_CFG_NODE_SCALAR && v->len == strlen(s) && !memcmp(v->value, s, v->len);
}

static bool
qs_cfg_is_null(const struct qs_cfg_node *v)
{
	if (v->type != QS_CFG_NODE_SCALAR)
		return false;
	if (v->len == 0)
		return true;
	return v->plain && (qs_cfg_scalar_is(v, "~") || qs_cfg_scalar_is(v, "null") ||
	                    qs_cfg_scalar_is(v, "Null") || qs_cfg_scalar_is(v, "NULL"));
}

/* What a node is, for "wrong type" messages. */
static const char *
qs_cfg_kind(const struct qs_cfg_node *v)
{
	if (v->type == QS_CFG_NODE_MAP)
		return "a mapping";
	if (v->type == QS_CFG_NODE_SEQ)
		return "a sequence";
	if (qs_cfg_is_null(v))
		return "an empty value";
	return v->plain ? "a scalar" : "a quoted string";
}

/* Append ".key" (or "key" at the start) to a path. */
static void
qs_cfg_path_add(char *buf, size_t size, const char *key, size_t keylen)
{
	size_t n = strlen(buf);
	int len = keylen > QS_CFG_SHOW_MAX ? QS_CFG_SHOW_MAX : (int)keylen;

	if (keylen == 0)
		return;
	snprintf(buf + n, size - n, "%s%.*s", n ? "." : "", len, key);
}

static void
qs_cfg_path_index(char *buf, size_t size, size_t index)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "[%zu]", index);
}

/* Path of the row `name` below `prefix`, e.g. "validators[2]" + "name". */
static void
qs_cfg_path(char *buf, size_t size, const char *prefix, const char *name)
{
	snprintf(buf, size, "%s", prefix);
	qs_cfg_path_add(buf, size, name, strlen(name));
}

/* Path of the node the builder is at: used for errors found while parsing. */
static void
qs_cfg_build_path(const struct qs_cfg_parser *p, char *buf, size_t size)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < p->depth; i++) {
		const struct qs_cfg_level *l = &p->stack[i];
		bool inner = i + 1 < p->depth;

		if (l->node->type == QS_CFG_NODE_MAP) {
			if (l->key && (inner || l->node->count % 2 == 1))
				qs_cfg_path_add(buf, size, l->key->value, l->key->len);
		} else {
			qs_cfg_path_index(buf, size, inner ? l->node->count - 1 : l->node->count);
		}
	}
}

static void
qs_cfg_node_free(struct qs_cfg_node *n)
{
	struct qs_cfg_node *next;

	/* Recursion depth is bounded by QS_CFG_MAX_DEPTH. */
	while (n) {
		next = n->next;
		qs_cfg_node_free(n->first);
		free(n->value);
		free(n);
		n = next;
	}
}

/* Hang a new node into the tree; on error the caller keeps it. */
static int
qs_cfg_attach(struct qs_cfg_parser *p, struct qs_cfg_node *n, const char *path)
{
	struct qs_cfg_level *l;
	int rc = 0;

	if (p->depth == 0) {
		if (p->root)
			rc = qs_cfg_error(p, n->line, n->column, "",
			                  "multiple documents are not allowed");
		else
			p->root = n;
		goto out;
	}
	l = &p->stack[p->depth - 1];
	if (l->node->type == QS_CFG_NODE_MAP && l->node->count % 2 == 0) {
		if (n->type != QS_CFG_NODE_SCALAR) {
			rc = qs_cfg_error(p, n->line, n->column, path,
			                  "wrong type: a key must be a scalar, not %s",
			                  qs_cfg_kind(n));
			goto out;
		}
		l->key = n;
	}
	if (l->node->last)
		l->node->last->next = n;
	else
		l->node->first = n;
	l->node->last = n;
	l->node->count++;
out:
	return rc;
}

static int
qs_cfg_on_event(struct qs_cfg_parser *p, const yaml_event_t *ev)
{
	char path[QS_CFG_PATH_MAX];
	struct qs_cfg_node *n = NULL;
	unsigned line = ev->start_mark.line + 1;
	unsigned column = ev->start_mark.column + 1;
	const yaml_char_t *anchor = NULL;
	const yaml_char_t *tag = NULL;
	enum qs_cfg_node_type type = QS_CFG_NODE_SCALAR;
	int rc = 0;

	qs_cfg_build_path(p, path, sizeof(path));
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (p->n_docs++ > 0)
			rc =
			    qs_cfg_error(p, line, column, "", "multiple documents are not allowed");
		goto out;
	case YAML_ALIAS_EVENT:
		rc = qs_cfg_error(p, line, column, path, "anchors and aliases are not allowed");
		goto out;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (p->depth > 0)
			p->depth--;
		goto out;
	case YAML_SCALAR_EVENT:
		type = QS_CFG_NODE_SCALAR;
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		type = QS_CFG_NODE_SEQ;
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		type = QS_CFG_NODE_MAP;
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		goto out;
	}

	if (anchor) {
		rc = qs_cfg_error(p, line, column, path, "anchors and aliases are not allowed");
		goto out;
	}
	if (tag) {
		rc = qs_cfg_error(p, line, column, path, "tags are not allowed");
		goto out;
	}
	if (++p->n_nodes > QS_CFG_MAX_NODES) {
		rc = qs_cfg_error(p, line, column, path, "more than %d YAML nodes",
		                  QS_CFG_MAX_NODES);
		goto out;
	}
	if (type == QS_CFG_NODE_SCALAR && ev->data.scalar.length > QS_CONFIG_MAX_SCALAR_BYTES) {
		rc = qs_cfg_error(p, line, column, path, "longer than %d bytes",
		                  QS_CONFIG_MAX_SCALAR_BYTES);
		goto out;
	}
	if (type != QS_CFG_NODE_SCALAR && p->depth == QS_CFG_MAX_DEPTH) {
		rc = qs_cfg_error(p, line, column, path, "nested deeper than %d levels",
		                  QS_CFG_MAX_DEPTH);
		goto out;
	}

	n = calloc(1, sizeof(*n));
	if (!n) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	n->type = type;
	n->line = line;
	n->column = column;
	if (type == QS_CFG_NODE_SCALAR) {
		n->len = ev->data.scalar.length;
		n->value = malloc(n->len + 1);
		if (!n->value) {
			rc = qs_cfg_nomem(p);
			goto out;
		}
		memcpy(n->value, ev->data.scalar.value, n->len);
		n->value[n->len] = '\0';
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	}
	rc = qs_cfg_attach(p, n, path);
	if (rc)
		goto out;
	if (type != QS_CFG_NODE_SCALAR) {
		p->stack[p->depth].node = n;
		p->stack[p->depth].key = NULL;
		p->depth++;
	}
	n = NULL;
out:
	qs_cfg_node_free(n);
	return rc;
}

static int
qs_cfg_syntax_error(struct qs_cfg_parser *p, const yaml_parser_t *y)
{
	char path[QS_CFG_PATH_MAX];
	unsigned line = 1, column = 1;
	size_t i, end;
	const char *problem = y->problem ? y->problem : "invalid YAML";
	int rc;

	if (y->error == YAML_MEMORY_ERROR) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	qs_cfg_build_path(p, path, sizeof(path));
	if (y->error == YAML_READER_ERROR) {
		/* Reader errors carry a byte offset, not a mark. */
		end = y->problem_offset < p->len ? y->problem_offset : p->len;
		for (i = 0; i < end; i++) {
			if (p->buf[i] == '\n') {
				line++;
				column = 1;
			} else if (((unsigned char)p->buf[i] & 0xc0) != 0x80) {
				column++;
			}
		}
		if (y->problem_value != -1)
			rc = qs_cfg_error(p, line, column, path, "syntax error: %s (byte 0x%02x)",
			                  problem, (unsigned)y->problem_value & 0xff);
		else
			rc = qs_cfg_error(p, line, column, path, "syntax error: %s", problem);
		goto out;
	}
	line = y->problem_mark.line + 1;
	column = y->problem_mark.column + 1;
	if (y->context)
		rc = qs_cfg_error(p, line, column, path,
		                  "syntax error: %s (%s at line %zu, column %zu)", problem,
		                  y->context, y->context_mark.line + 1, y->context_mark.column + 1);
	else
		rc = qs_cfg_error(p, line, column, path, "syntax error: %s", problem);
out:
	return rc;
}

/* Build p->root from the text, refusing what a config never needs. */
static int
qs_cfg_build(struct qs_cfg_parser *p)
{
	yaml_parser_t y;
	yaml_event_t ev;
	bool done = false;
	int rc = 0;

	if (!yaml_parser_initialize(&y)) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	yaml_parser_set_input_string(&y, (const unsigned char *)p->buf, p->len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&y, &ev)) {
			rc = qs_cfg_syntax_error(p, &y);
			break;
		}
		rc = qs_cfg_on_event(p, &ev);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&y);
out:
	return rc;
}

/*
 * Parse an unsigned decimal integer, with a binary unit if `bytes`.
 * Returns 0, -EINVAL (not such an integer) or -ERANGE (over 2^64 - 1).
 */
static int
qs_cfg_parse_number(const char *s, size_t len, bool bytes, uint64_t *out)
{
	static const struct {
		const char *name;
		unsigned shift;
	} units[] = {{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
	uint64_t n = 0, mult = 1;
	bool overflow = false;
	size_t i, digits;

	for (digits = 0; digits < len && s[digits] >= '0' && s[digits] <= '9'; digits++)
		;
	/* A leading zero would be octal to some YAML readers: refuse it. */
	if (digits == 0 || (digits > 1 && s[0] == '0'))
		return -EINVAL;
	i = digits;
	if (i < len) {
		if (!bytes)
			return -EINVAL;
		if (s[i] == ' ')
			i++;
		for (size_t u = 0; u < QS_CFG_ARRAY_SIZE(units); u++)
			if (len - i == 3 && !memcmp(s + i, units[u].name, 3))
				mult = UINT64_C(1) << units[u].shift;
		if (mult == 1)
			return -EINVAL;
	}
	for (i = 0; i < digits; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (n > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			n = n * 10 + d;
	}
	if (overflow || n > UINT64_MAX / mult)
		return -ERANGE;
	*out = n * mult;
	return 0;
}

/* "1048576 (1 MiB)" for sizes that are whole units, else the number. */
static const char *
qs_cfg_show_number(uint64_t n, bool bytes, char *buf, size_t size)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
	unsigned shift = 40;

	snprintf(buf, size, "%" PRIu64, n);
	for (size_t u = 0; bytes && n && u < QS_CFG_ARRAY_SIZE(units); u++, shift -= 10) {
		if (n % (UINT64_C(1) << shift) == 0) {
			snprintf(buf, size, "%" PRIu64 " (%" PRIu64 " %s)", n, n >> shift,
			         units[u]);
			break;
		}
	}
	return buf;
}

/* "between 1 and 10" for messages, "1 to 10" for the example (`doc`). */
static const char *
qs_cfg_show_range(const struct qs_option *row, bool doc, char *buf, size_t size)
{
	char lo[48], hi[48];
	bool bytes = row->flags & QS_CFG_BYTES;
	const char *unit = row->flags & QS_CFG_MS_TO_US ? " milliseconds" : "";

	qs_cfg_show_number(row->min, bytes, lo, sizeof(lo));
	qs_cfg_show_number(row->max, bytes, hi, sizeof(hi));
	if (row->max == UINT64_MAX)
		snprintf(buf, size, "at least %s%s", lo, unit);
	else
		snprintf(buf, size, doc ? "%s to %s%s" : "between %s and %s%s", lo, hi, unit);
	return buf;
}

/* An integer within the row's range. */
static int
qs_cfg_get_uint(struct qs_cfg_parser *p, const struct qs_option *row, const struct qs_cfg_node *v,
                const char *path, uint64_t *out)
{
	char shown[QS_CFG_SHOW_MAX + 4], range[128];
	bool bytes = row->flags & QS_CFG_BYTES;
	uint64_t n = 0;
	int rc;

	if (v->type != QS_CFG_NODE_SCALAR || !v->plain || qs_cfg_is_null(v)) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected an integer, got %s", qs_cfg_kind(v));
		goto out;
	}
	rc = qs_cfg_parse_number(v->value, v->len, bytes, &n);
	if (rc == -EINVAL) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected an unsigned decimal integer%s, got '%s'",
		                  bytes ? " (optionally with KiB, MiB, GiB or TiB)" : "",
		                  qs_cfg_show(v, shown, sizeof(shown)));
		goto out;
	}
	if (rc == -ERANGE || n < row->min || n > row->max) {
		rc = qs_cfg_error(p, v->line, v->column, path, "out of range: must be %s, got '%s'",
		                  qs_cfg_show_range(row, false, range, sizeof(range)),
		                  qs_cfg_show(v, shown, sizeof(shown)));
		goto out;
	}
	*out = n;
out:
	return rc;
}

static uint64_t
qs_cfg_uint_value(const struct qs_option *row, const void *base)
{
	const char *field = (const char *)base + row->offset;

	if (row->size == sizeof(uint32_t))
		return *(const uint32_t *)field;
	if (row->size == sizeof(uint64_t))
		return *(const uint64_t *)field;
	fprintf(stderr, "qs_config: option %s has size %zu\n", row->name, row->size);
	abort();
}

static int
qs_cfg_set_uint(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                const struct qs_cfg_node *v, const char *path)
{
	char *field = (char *)base + row->offset;
	uint64_t n = 0;
	int rc;

	rc = qs_cfg_get_uint(p, row, v, path, &n);
	if (rc)
		goto out;
	if (row->flags & QS_CFG_MS_TO_US)
		n *= 1000; /* the table keeps ms maxima far below 2^54 */
	if (row->size == sizeof(uint32_t)) {
		*(uint32_t *)field = (uint32_t)n;
	} else if (row->size == sizeof(uint64_t)) {
		*(uint64_t *)field = n;
	} else {
		fprintf(stderr, "qs_config: option %s has size %zu\n", row->name, row->size);
		abort();
	}
out:
	return rc;
}

/* Why `s` is not a validator name, or NULL. */
static const char *
qs_cfg_name_problem(const char *s)
{
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return "may only hold A-Z a-z 0-9 _ . -";
	}
	return NULL;
}

static int
qs_cfg_check_key_file(struct qs_cfg_parser *p, const struct qs_cfg_node *v, const char *path)
{
	struct stat st;
	int rc = 0;

	if (stat(v->value, &st) != 0) {
		rc = qs_cfg_error(p, v->line, v->column, path, "%s: %s", v->value, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc =
		    qs_cfg_error(p, v->line, v->column, path, "%s is not a regular file", v->value);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "%s is readable by group or others (mode %04o); chmod 600 it",
		                  v->value, (unsigned)(st.st_mode & 07777));
		goto out;
	}
out:
	return rc;
}

/* The string kinds: STRING, ADDRESS, NAME, KEY_FILE. */
static int
qs_cfg_set_string(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                  const struct qs_cfg_node *v, const char *path)
{
	char **field = (char **)((char *)base + row->offset);
	char shown[QS_CFG_SHOW_MAX + 4];
	struct sockaddr_storage ss;
	socklen_t ss_len;
	const char *why = NULL;
	char *s = NULL;
	int rc = 0;

	if (v->type != QS_CFG_NODE_SCALAR) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected a string, got %s", qs_cfg_kind(v));
		goto out;
	}
	if (qs_cfg_is_null(v)) {
		rc = qs_cfg_error(p, v->line, v->column, path, "must not be empty");
		goto out;
	}
	if (memchr(v->value, '\0', v->len)) {
		rc = qs_cfg_error(p, v->line, v->column, path, "must not contain a NUL byte");
		goto out;
	}
	if (row->max && v->len > row->max) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "is %zu bytes long, more than the %" PRIu64 " allowed", v->len,
		                  row->max);
		goto out;
	}
	switch (row->type) {
	case QS_CFG_ADDRESS:
		if (qs_addr_parse(v->value, &ss, &ss_len, &why) != 0)
			rc = qs_cfg_error(p, v->line, v->column, path, "invalid address '%s': %s",
			                  qs_cfg_show(v, shown, sizeof(shown)), why);
		break;
	case QS_CFG_NAME:
		why = qs_cfg_name_problem(v->value);
		if (why)
			rc = qs_cfg_error(p, v->line, v->column, path, "invalid name '%s': %s",
			                  qs_cfg_show(v, shown, sizeof(shown)), why);
		break;
	case QS_CFG_KEY_FILE:
		rc = qs_cfg_check_key_file(p, v, path);
		break;
	default:
		break;
	}
	if (rc)
		goto out;
	s = strdup(v->value);
	if (!s) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	free(*field);
	*field = s;
out:
	return rc;
}

static int
qs_cfg_set_log_level(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                     const struct qs_cfg_node *v, const char *path)
{
	enum qs_log_level *field = (enum qs_log_level *)((char *)base + row->offset);
	char shown[QS_CFG_SHOW_MAX + 4];
	size_t i;
	int rc = 0;

	if (v->type != QS_CFG_NODE_SCALAR) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected a log level, got %s", qs_cfg_kind(v));
		goto out;
	}
	for (i = 0; i < QS_CFG_ARRAY_SIZE(qs_log_level_names); i++) {
		if (qs_log_level_names[i] && qs_cfg_scalar_is(v, qs_log_level_names[i])) {
			*field = (enum qs_log_level)i;
			goto out;
		}
	}
	rc = qs_cfg_error(p, v->line, v->column, path,
	                  "must be err, warning, notice, info or debug, got '%s'",
	                  qs_cfg_show(v, shown, sizeof(shown)));
out:
	return rc;
}

static int
qs_cfg_set_hex_key(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                   const struct qs_cfg_node *v, const char *path)
{
	uint8_t key[QS_KEY_BYTES];
	int rc = 0;

	if (row->size != QS_KEY_BYTES) {
		fprintf(stderr, "qs_config: option %s has size %zu\n", row->name, row->size);
		abort();
	}
	if (v->type != QS_CFG_NODE_SCALAR) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected %d hex digits, got %s", 2 * QS_KEY_BYTES,
		                  qs_cfg_kind(v));
		goto out;
	}
	if (v->len != 2 * QS_KEY_BYTES) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "bad key: expected %d hex digits (a %d-byte Ed25519 public key), "
		                  "got %zu characters",
		                  2 * QS_KEY_BYTES, QS_KEY_BYTES, v->len);
		goto out;
	}
	if (qs_hex_decode(v->value, key, QS_KEY_BYTES) != 0) {
		/* The length is right, so some character is not a hex digit. */
		size_t at = strspn(v->value, "0123456789abcdefABCDEF");
		unsigned char c = (unsigned char)v->value[at];

		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "bad key: '%c' at character %zu is not a hex digit",
		                  c < 0x20 || c >= 0x7f ? '?' : c, at + 1);
		goto out;
	}
	memcpy((char *)base + row->offset, key, QS_KEY_BYTES);
out:
	return rc;
}

static int
qs_cfg_set_uid_list(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                    const struct qs_cfg_node *v, const char *path)
{
	static const struct qs_option uid_row = {.name = "uid", .min = 0, .max = UINT32_MAX - 1};
	struct qs_config *cfg = base;
	uid_t uids[QS_MAX_ALLOWED_UIDS];
	char ipath[QS_CFG_PATH_MAX];
	const struct qs_cfg_node *c;
	uint64_t n;
	size_t i = 0;
	int rc = 0;

	if (v->type != QS_CFG_NODE_SEQ) {
		rc =
		    qs_cfg_error(p, v->line, v->column, path,
		                 "wrong type: expected a sequence of uids, got %s", qs_cfg_kind(v));
		goto out;
	}
	if (v->count > row->max || v->count > QS_MAX_ALLOWED_UIDS) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "%zu entries, more than the %" PRIu64 " allowed", v->count,
		                  row->max);
		goto out;
	}
	for (c = v->first; c; c = c->next, i++) {
		snprintf(ipath, sizeof(ipath), "%s", path);
		qs_cfg_path_index(ipath, sizeof(ipath), i);
		rc = qs_cfg_get_uint(p, &uid_row, c, ipath, &n);
		if (rc)
			goto out;
		uids[i] = (uid_t)n;
	}
	memcpy(cfg->allowed_uids, uids, i * sizeof(uids[0]));
	cfg->n_allowed_uids = i;
out:
	return rc;
}

static const struct qs_option *
qs_cfg_find(const struct qs_option *rows, size_t n_rows, const char *name, size_t *index)
{
	size_t i;

	for (i = 0; i < n_rows; i++) {
		if (!strcmp(rows[i].name, name)) {
			if (index)
				*index = i;
			return &rows[i];
		}
	}
	fprintf(stderr, "qs_config: no option %s\n", name);
	abort();
}

/* Refuse validator i if it repeats a UNIQUE value of an earlier one. */
static int
qs_cfg_check_unique(struct qs_cfg_parser *p, const struct qs_config *cfg, size_t i,
                    const struct qs_cfg_node *(*seen)[QS_N_VALIDATOR_OPTIONS], const char *prefix)
{
	const struct qs_option *row;
	char path[QS_CFG_PATH_MAX];
	const char *a, *b;
	bool same;
	size_t r, j;
	int rc = 0;

	for (r = 0; r < QS_N_VALIDATOR_OPTIONS; r++) {
		row = &qs_validator_options[r];
		if (!(row->flags & QS_CFG_UNIQUE))
			continue;
		for (j = 0; j < i; j++) {
			a = (const char *)&cfg->validators[i] + row->offset;
			b = (const char *)&cfg->validators[j] + row->offset;
			if (row->type == QS_CFG_HEX_KEY)
				same = !memcmp(a, b, row->size);
			else
				same = !strcmp(*(char *const *)a, *(char *const *)b);
			if (!same)
				continue;
			qs_cfg_path(path, sizeof(path), prefix, row->name);
			rc = qs_cfg_error(
			    p, seen[i][r]->line, seen[i][r]->column, path,
			    "duplicate validator %s (first at validators[%zu], line %u)", row->name,
			    j, seen[j][r]->line);
			goto out;
		}
	}
out:
	return rc;
}

static int
qs_cfg_set_validators(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
                      const struct qs_cfg_node *v, const char *path)
{
	const struct qs_cfg_node *(*seen_val)[QS_N_VALIDATOR_OPTIONS] = NULL;
	const struct qs_cfg_node *seen_key[QS_N_VALIDATOR_OPTIONS];
	struct qs_config *cfg = base;
	char ipath[QS_CFG_PATH_MAX], vpath[QS_CFG_PATH_MAX];
	const struct qs_cfg_node *item, *at;
	size_t i = 0, power_row;
	uint64_t total = 0, power;
	int rc = 0;

	qs_cfg_find(qs_validator_options, QS_N_VALIDATOR_OPTIONS, "voting_power", &power_row);
	if (v->type != QS_CFG_NODE_SEQ) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "wrong type: expected a sequence of mappings, got %s",
		                  qs_cfg_kind(v));
		goto out;
	}
	if (v->count < row->min || v->count > row->max || v->count > QS_MAX_VALIDATORS) {
		rc = qs_cfg_error(p, v->line, v->column, path,
		                  "must list between %" PRIu64 " and %" PRIu64
		                  " validators, got %zu",
		                  row->min, row->max, v->count);
		goto out;
	}
	seen_val = calloc(QS_MAX_VALIDATORS, sizeof(*seen_val));
	if (!seen_val) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	for (item = v->first; item; item = item->next, i++) {
		snprintf(ipath, sizeof(ipath), "%s", path);
		qs_cfg_path_index(ipath, sizeof(ipath), i);
		if (item->type != QS_CFG_NODE_MAP) {
			rc = qs_cfg_error(p, item->line, item->column, ipath,
			                  "wrong type: expected a mapping, got %s",
			                  qs_cfg_kind(item));
			goto out;
		}
		memset(seen_key, 0, sizeof(seen_key));
		cfg->n_validators = i + 1;
		rc = qs_cfg_walk(p, qs_validator_options, QS_N_VALIDATOR_OPTIONS,
		                 &cfg->validators[i], ipath, "", item, seen_key, seen_val[i]);
		if (rc)
			goto out;
		rc = qs_cfg_check_unique(p, cfg, i, seen_val, ipath);
		if (rc)
			goto out;
		power = cfg->validators[i].voting_power;
		if (power > QS_MAX_VOTING_POWER - total) {
			at = seen_val[i][power_row];
			qs_cfg_path(vpath, sizeof(vpath), ipath, "voting_power");
			rc = qs_cfg_error(p, at->line, at->column, vpath,
			                  "total voting power exceeds 2^62 (%" PRIu64 ")",
			                  QS_MAX_VOTING_POWER);
			goto out;
		}
		total += power;
	}
out:
	free(seen_val);
	return rc;
}

static int
qs_cfg_set(struct qs_cfg_parser *p, const struct qs_option *row, void *base,
           const struct qs_cfg_node *v, const char *path)
{
	switch (row->type) {
	case QS_CFG_UINT:
		return qs_cfg_set_uint(p, row, base, v, path);
	case QS_CFG_STRING:
	case QS_CFG_ADDRESS:
	case QS_CFG_NAME:
	case QS_CFG_KEY_FILE:
		return qs_cfg_set_string(p, row, base, v, path);
	case QS_CFG_LOG_LEVEL:
		return qs_cfg_set_log_level(p, row, base, v, path);
	case QS_CFG_HEX_KEY:
		return qs_cfg_set_hex_key(p, row, base, v, path);
	case QS_CFG_UID_LIST:
		return qs_cfg_set_uid_list(p, row, base, v, path);
	case QS_CFG_VALIDATORS:
		return qs_cfg_set_validators(p, row, base, v, path);
	case QS_CFG_SECTION:
		break;
	}
	fprintf(stderr, "qs_config: option %s has no setter\n", row->name);
	abort();
}

/* Is `name` the row for `key` in `section` ("" at the root)? */
static bool
qs_cfg_name_is(const char *name, const char *section, const char *key, size_t keylen)
{
	size_t n = strlen(section);

	if (n) {
		if (strncmp(name, section, n) != 0 || name[n] != '.')
			return false;
		name += n + 1;
	}
	return strlen(name) == keylen && !memcmp(name, key, keylen);
}

/* Is `section` the parent of the row `name`? */
static bool
qs_cfg_parent_is(const char *name, const char *section)
{
	const char *dot = strrchr(name, '.');
	size_t n = dot ? (size_t)(dot - name) : 0;

	return strlen(section) == n && !strncmp(name, section, n);
}

/* Report the first required row below `section` that was not given. */
static int
qs_cfg_check_missing(struct qs_cfg_parser *p, const struct qs_option *rows, size_t n_rows,
                     const char *prefix, const char *section, const struct qs_cfg_node *map,
                     const struct qs_cfg_node **seen_key)
{
	char path[QS_CFG_PATH_MAX];
	size_t i;
	int rc = 0;

	for (i = 0; i < n_rows && rc == 0; i++) {
		if (!qs_cfg_parent_is(rows[i].name, section) || seen_key[i])
			continue;
		if (rows[i].flags & QS_CFG_REQUIRED) {
			qs_cfg_path(path, sizeof(path), prefix, rows[i].name);
			rc = qs_cfg_error(p, map->line, map->column, path, "missing required key");
		} else if (rows[i].type == QS_CFG_SECTION) {
			rc = qs_cfg_check_missing(p, rows, n_rows, prefix, rows[i].name, map,
			                          seen_key);
		}
	}
	return rc;
}

/*
 * Match the mapping `map` against the rows of `section`, storing into base.
 * `prefix` names the table's root in messages ("" or "validators[2]").
 */
static int
qs_cfg_walk(struct qs_cfg_parser *p, const struct qs_option *rows, size_t n_rows, void *base,
            const char *prefix, const char *section, const struct qs_cfg_node *map,
            const struct qs_cfg_node **seen_key, const struct qs_cfg_node **seen_val)
{
	char path[QS_CFG_PATH_MAX];
	const struct qs_cfg_node *k, *v;
	const struct qs_option *row;
	size_t i;
	int rc = 0;

	for (k = map->first; k && k->next; k = v->next) {
		v = k->next;
		for (i = 0; i < n_rows; i++)
			if (qs_cfg_name_is(rows[i].name, section, k->value, k->len))
				break;
		qs_cfg_path(path, sizeof(path), prefix, section);
		qs_cfg_path_add(path, sizeof(path), k->value, k->len);
		if (i == n_rows) {
			rc = qs_cfg_error(p, k->line, k->column, path, "unknown key");
			goto out;
		}
		row = &rows[i];
		if (seen_key[i]) {
			rc = qs_cfg_error(p, k->line, k->column, path,
			                  "duplicate key (first at line %u, column %u)",
			                  seen_key[i]->line, seen_key[i]->column);
			goto out;
		}
		seen_key[i] = k;
		seen_val[i] = v;
		if (row->type != QS_CFG_SECTION) {
			rc = qs_cfg_set(p, row, base, v, path);
		} else if (v->type != QS_CFG_NODE_MAP) {
			rc = qs_cfg_error(p, v->line, v->column, path,
			                  "wrong type: expected a mapping, got %s", qs_cfg_kind(v));
		} else {
			rc = qs_cfg_walk(p, rows, n_rows, base, prefix, row->name, v, seen_key,
			                 seen_val);
		}
		if (rc)
			goto out;
	}
	rc = qs_cfg_check_missing(p, rows, n_rows, prefix, section, map, seen_key);
out:
	return rc;
}

/* Set every default by parsing its text, as if it were in the file. */
static void
qs_cfg_apply_defaults(struct qs_cfg_parser *p)
{
	char text[64];
	struct qs_cfg_node v = {.type = QS_CFG_NODE_SCALAR, .plain = true, .value = text};
	size_t i;

	for (i = 0; i < QS_N_OPTIONS; i++) {
		if (!qs_options[i].def)
			continue;
		v.len = (size_t)snprintf(text, sizeof(text), "%s", qs_options[i].def);
		if (v.len >= sizeof(text) ||
		    qs_cfg_set(p, &qs_options[i], p->cfg, &v, qs_options[i].name) != 0) {
			fprintf(stderr, "qs_config: bad default for %s: %s\n", qs_options[i].name,
			        p->err ? p->err : "");
			abort();
		}
	}
}

/* Keys whose values bound each other: see qs_cfg_orders[]. */
static int
qs_cfg_check_orders(struct qs_cfg_parser *p)
{
	const struct qs_option *big, *small;
	const struct qs_cfg_node *at;
	char shown[48];
	size_t i, bi, si;
	uint64_t bv, sv;
	int rc = 0;

	for (i = 0; i < QS_CFG_ARRAY_SIZE(qs_cfg_orders) && rc == 0; i++) {
		big = qs_cfg_find(qs_options, QS_N_OPTIONS, qs_cfg_orders[i].larger, &bi);
		small = qs_cfg_find(qs_options, QS_N_OPTIONS, qs_cfg_orders[i].smaller, &si);
		bv = qs_cfg_uint_value(big, p->cfg);
		sv = qs_cfg_uint_value(small, p->cfg);
		if (bv >= sv)
			continue;
		/* Point at the key the file set, the larger one if both. */
		if (p->seen_val[bi] || !p->seen_val[si]) {
			at = p->seen_val[bi];
			rc = qs_cfg_error(p, at ? at->line : 1, at ? at->column : 1, big->name,
			                  "must be at least %s = %s", small->name,
			                  qs_cfg_show_number(sv, small->flags & QS_CFG_BYTES, shown,
			                                     sizeof(shown)));
		} else {
			at = p->seen_val[si];
			rc = qs_cfg_error(p, at->line, at->column, small->name,
			                  "must be at most %s = %s", big->name,
			                  qs_cfg_show_number(bv, big->flags & QS_CFG_BYTES, shown,
			                                     sizeof(shown)));
		}
	}
	return rc;
}

int
qs_config_parse(const char *name, const char *buf, size_t len, struct qs_config **out, char *err,
                size_t errlen)
{
	struct qs_cfg_parser *p = NULL;
	struct qs_config *cfg = NULL;
	const struct qs_cfg_node *root;
	int rc = 0;

	if (!name)
		name = "(config)";
	if (err && errlen)
		err[0] = '\0';
	if (len > QS_CONFIG_MAX_FILE_BYTES) {
		qs_cfg_format(err, errlen, name, 1, 1, "", "larger than %d bytes (1 MiB)",
		              QS_CONFIG_MAX_FILE_BYTES);
		rc = QS_ECONFIG;
		goto out;
	}
	p = calloc(1, sizeof(*p));
	cfg = calloc(1, sizeof(*cfg));
	if (!p || !cfg) {
		qs_cfg_format(err, errlen, name, 1, 1, "", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	p->name = name;
	p->buf = buf ? buf : "";
	p->len = buf ? len : 0;
	p->err = err;
	p->errlen = errlen;
	p->cfg = cfg;
	cfg->path = strdup(name);
	if (!cfg->path) {
		rc = qs_cfg_nomem(p);
		goto out;
	}
	qs_cfg_apply_defaults(p);

	rc = qs_cfg_build(p);
	if (rc)
		goto out;
	root = p->root;
	if (!root || qs_cfg_is_null(root)) {
		rc = qs_cfg_error(p, 1, 1, "", "the config is empty");
		goto out;
	}
	if (root->type != QS_CFG_NODE_MAP) {
		rc = qs_cfg_error(p, root->line, root->column, "",
		                  "wrong type: expected a mapping at the top level, got %s",
		                  qs_cfg_kind(root));
		goto out;
	}
	rc = qs_cfg_walk(p, qs_options, QS_N_OPTIONS, cfg, "", "", root, p->seen_key, p->seen_val);
	if (rc)
		goto out;
	rc = qs_cfg_check_orders(p);
	if (rc)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	if (p)
		qs_cfg_node_free(p->root);
	free(p);
	qs_config_free(cfg);
	return rc;
}

int
qs_config_load(const char *path, struct qs_config **out, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1;
	int rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		qs_cfg_format(err, errlen, path, 1, 1, "", "cannot open: %s", strerror(-rc));
		goto out;
	}
	/* One byte over the limit tells qs_config_parse() the file is too large. */
	buf = malloc(QS_CONFIG_MAX_FILE_BYTES + 1);
	if (!buf) {
		rc = -ENOMEM;
		qs_cfg_format(err, errlen, path, 1, 1, "", "out of memory");
		goto out;
	}
	while (len < QS_CONFIG_MAX_FILE_BYTES + 1) {
		n = read(fd, buf + len, QS_CONFIG_MAX_FILE_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			qs_cfg_format(err, errlen, path, 1, 1, "", "cannot read: %s",
			              strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = qs_config_parse(path, buf, len, out, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* Free the char * fields of a table's struct. */
static void
qs_cfg_free_strings(const struct qs_option *rows, size_t n_rows, void *base)
{
	size_t i;

	for (i = 0; i < n_rows; i++) {
		switch (rows[i].type) {
		case QS_CFG_STRING:
		case QS_CFG_ADDRESS:
		case QS_CFG_NAME:
		case QS_CFG_KEY_FILE:
			free(*(char **)((char *)base + rows[i].offset));
			break;
		default:
			break;
		}
	}
}

void
qs_config_free(struct qs_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	qs_cfg_free_strings(qs_options, QS_N_OPTIONS, cfg);
	for (i = 0; i < QS_MAX_VALIDATORS; i++)
		qs_cfg_free_strings(qs_validator_options, QS_N_VALIDATOR_OPTIONS,
		                    &cfg->validators[i]);
	free(cfg->path);
	free(cfg);
}

static int
qs_cfg_find_key(const struct qs_config *cfg, size_t offset, const uint8_t key[QS_KEY_BYTES])
{
	size_t i;

	if (!cfg || !key)
		return -1;
	for (i = 0; i < cfg->n_validators && i < QS_MAX_VALIDATORS; i++)
		if (!memcmp((const char *)&cfg->validators[i] + offset, key, QS_KEY_BYTES))
			return (int)i;
	return -1;
}

int
qs_config_find_network_key(const struct qs_config *cfg, const uint8_t key[QS_KEY_BYTES])
{
	return qs_cfg_find_key(cfg, offsetof(struct qs_validator, network_key), key);
}

int
qs_config_find_signing_key(const struct qs_config *cfg, const uint8_t key[QS_KEY_BYTES])
{
	return qs_cfg_find_key(cfg, offsetof(struct qs_validator, signing_key), key);
}

const char *
qs_log_level_name(enum qs_log_level level)
{
	if ((unsigned)level >= QS_CFG_ARRAY_SIZE(qs_log_level_names))
		return NULL;
	return qs_log_level_names[level];
}

/* Write `text` as comment lines, each prefixed by `indent` spaces. */
static void
qs_cfg_write_comment(FILE *f, int indent, const char *text)
{
	const char *nl;

	while (*text) {
		nl = strchr(text, '\n');
		if (!nl)
			nl = text + strlen(text);
		fprintf(f, "%*s#%s%.*s\n", indent, "", nl > text ? " " : "", (int)(nl - text),
		        text);
		text = *nl ? nl + 1 : nl;
	}
}

/* The documentation of a row, then the facts the table knows about it. */
static void
qs_cfg_write_row_doc(FILE *f, int indent, const struct qs_option *row)
{
	char facts[192], range[128];

	qs_cfg_write_comment(f, indent, row->doc);
	facts[0] = '\0';
	if (row->type == QS_CFG_UINT)
		snprintf(facts, sizeof(facts), "Range: %s.",
		         qs_cfg_show_range(row, true, range, sizeof(range)));
	else if ((row->type == QS_CFG_STRING || row->type == QS_CFG_NAME) && row->max)
		snprintf(facts, sizeof(facts), "At most %" PRIu64 " bytes.", row->max);
	if (row->flags & QS_CFG_REQUIRED) {
		size_t n = strlen(facts);

		snprintf(facts + n, sizeof(facts) - n, "%sRequired; no default.", n ? " " : "");
	}
	if (facts[0])
		qs_cfg_write_comment(f, indent, facts);
}

static const char qs_cfg_example_header[] =
    "qsd.yaml: configuration of qsd, the quorum-store daemon.\n"
    "\n"
    "Generated by qs_config_write_example() from the option table in\n"
    "config/config.c; tests/check_config.c keeps this file equal to it.\n"
    "Every key is shown with its default; required keys, which have none,\n"
    "show an example value.\n"
    "\n"
    "The reader is strict. An unknown key, a duplicate key, a value of the\n"
    "wrong type or out of range, an anchor or alias, a tag or a second\n"
    "document is an error naming FILE:LINE:COLUMN and the key. Files over\n"
    "1 MiB and keys or values over 4096 bytes are refused.\n"
    "\n"
    "Integers are plain decimal digits: no sign, fraction, leading zero or\n"
    "quotes. Sizes in bytes (keys ending in _bytes) may also end in KiB, MiB,\n"
    "GiB or TiB (powers of 1024), with or without a space: 64MiB, 64 MiB.\n"
    "Relative paths are relative to the directory qsd starts in (/ under\n"
    "systemd).";

int
qs_config_write_example(FILE *f)
{
	const struct qs_option *row;
	const char *name, *dot;
	size_t i, j;
	int depth, indent;

	qs_cfg_write_comment(f, 0, qs_cfg_example_header);
	for (i = 0; i < QS_N_OPTIONS; i++) {
		row = &qs_options[i];
		depth = 0;
		name = row->name;
		for (dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
			depth++;
			name = dot + 1;
		}
		indent = 2 * depth;
		if (depth == 0)
			fputc('\n', f);
		qs_cfg_write_row_doc(f, indent, row);
		if (row->type == QS_CFG_SECTION || row->type == QS_CFG_VALIDATORS) {
			fprintf(f, "%*s%s:\n", indent, "", name);
		} else {
			fprintf(f, "%*s%s: %s\n", indent, "", name,
			        row->def ? row->def : row->example);
		}
		if (row->type != QS_CFG_VALIDATORS)
			continue;
		for (j = 0; j < QS_N_VALIDATOR_OPTIONS; j++) {
			qs_cfg_write_row_doc(f, indent + (j == 0 ? 2 : 4),
			                     &qs_validator_options[j]);
			fprintf(f, "%*s%s%s: %s\n", indent + 2, "", j == 0 ? "- " : "  ",
			        qs_validator_options[j].name, qs_validator_options[j].example);
		}
	}
	fflush(f);
	return ferror(f) ? -EIO : 0;
}

/* ---- reload ---- */

/* Names joined by `sep` into buf, cut with "..." when they do not fit. */
struct qs_cfg_list {
	char *buf;
	size_t len;
	size_t used;
	const char *sep;
	bool cut;
};

static void
qs_cfg_list_init(struct qs_cfg_list *l, char *buf, size_t len, const char *sep)
{
	l->buf = len > 0 ? buf : NULL;
	l->len = len;
	l->used = 0;
	l->sep = sep;
	l->cut = false;
	if (l->buf)
		l->buf[0] = '\0';
}

static void
qs_cfg_list_add(struct qs_cfg_list *l, const char *name)
{
	size_t sep = l->used > 0 ? strlen(l->sep) : 0;
	size_t n = strlen(name);

	if (l->buf == NULL || l->cut)
		return;
	/* Keep room for the separator and "..." after the last whole name. */
	if (l->used + sep + n + strlen(l->sep) + 3 >= l->len) {
		if (l->used + sep + 3 < l->len)
			snprintf(l->buf + l->used, l->len - l->used, "%s...", sep ? l->sep : "");
		l->cut = true;
		return;
	}
	snprintf(l->buf + l->used, l->len - l->used, "%s%s", sep ? l->sep : "", name);
	l->used += sep + n;
}

/* Do the values of `row` in the structs at a and b differ? */
static bool
qs_cfg_row_differs(const struct qs_option *row, const void *a, const void *b)
{
	const char *fa = (const char *)a + row->offset;
	const char *fb = (const char *)b + row->offset;
	const struct qs_config *ca = a, *cb = b;
	const char *sa, *sb;

	switch (row->type) {
	case QS_CFG_UINT:
		return qs_cfg_uint_value(row, a) != qs_cfg_uint_value(row, b);
	case QS_CFG_STRING:
	case QS_CFG_ADDRESS:
	case QS_CFG_NAME:
	case QS_CFG_KEY_FILE:
		sa = *(char *const *)fa;
		sb = *(char *const *)fb;
		return sa && sb ? strcmp(sa, sb) != 0 : sa != sb;
	case QS_CFG_LOG_LEVEL:
	case QS_CFG_HEX_KEY:
		return memcmp(fa, fb, row->size) != 0;
	case QS_CFG_UID_LIST:
		return ca->n_allowed_uids != cb->n_allowed_uids ||
		       memcmp(ca->allowed_uids, cb->allowed_uids,
		              ca->n_allowed_uids * sizeof(ca->allowed_uids[0])) != 0;
	case QS_CFG_SECTION:
	case QS_CFG_VALIDATORS:
		break;
	}
	return false;
}

/* Is validator i the same member of the set in both (all but its address)? */
static bool
qs_cfg_same_member(const struct qs_validator *a, const struct qs_validator *b)
{
	for (size_t j = 0; j < QS_N_VALIDATOR_OPTIONS; j++)
		if (!qs_validator_options[j].reload &&
		    qs_cfg_row_differs(&qs_validator_options[j], a, b))
			return false;
	return true;
}

/* One changed key: into the applied list or the restart list. */
static void
qs_cfg_plan_key(struct qs_reload_plan *plan, struct qs_cfg_list *applied,
                struct qs_cfg_list *restart, const char *name, unsigned reload)
{
	if (reload) {
		plan->groups |= reload;
		plan->n_applied++;
		qs_cfg_list_add(applied, name);
	} else {
		plan->n_restart++;
		qs_cfg_list_add(restart, name);
	}
}

static void
qs_cfg_plan_validators(const struct qs_config *old, const struct qs_config *new,
                       struct qs_reload_plan *plan, struct qs_cfg_list *applied,
                       struct qs_cfg_list *restart)
{
	const struct qs_option *row;
	size_t n = old->n_validators < new->n_validators ? old->n_validators : new->n_validators;
	char name[QS_CFG_PATH_MAX];
	bool member;

	if (old->n_validators != new->n_validators) {
		snprintf(name, sizeof(name), "validators (count %zu -> %zu)", old->n_validators,
		         new->n_validators);
		qs_cfg_plan_key(plan, applied, restart, name, 0);
	}
	for (size_t i = 0; i < n; i++) {
		/* An address follows its validator: when the entry at this
		 * index is another member now, nothing of it applies. */
		member = qs_cfg_same_member(&old->validators[i], &new->validators[i]);
		for (size_t j = 0; j < QS_N_VALIDATOR_OPTIONS; j++) {
			row = &qs_validator_options[j];
			if (!qs_cfg_row_differs(row, &old->validators[i], &new->validators[i]))
				continue;
			snprintf(name, sizeof(name), "validators[%zu].%s", i, row->name);
			qs_cfg_plan_key(plan, applied, restart, name, member ? row->reload : 0);
			if (member && row->reload == QS_RELOAD_ADDRESSES)
				plan->address_changed[i] = 1;
		}
	}
}

/* The value `row` would have once `new` is applied onto `old`. */
static uint64_t
qs_cfg_merged_uint(const struct qs_option *row, const struct qs_config *old,
                   const struct qs_config *new)
{
	return qs_cfg_uint_value(row, row->reload ? new : old);
}

/* The orderings of qs_cfg_orders[] on the merged values. */
static int
qs_cfg_plan_orders(const struct qs_config *old, const struct qs_config *new, char *msg, size_t len)
{
	const struct qs_option *big, *small, *fixed;
	char bs[48], ss[48];
	uint64_t bv, sv;

	for (size_t i = 0; i < QS_CFG_ARRAY_SIZE(qs_cfg_orders); i++) {
		big = qs_cfg_find(qs_options, QS_N_OPTIONS, qs_cfg_orders[i].larger, NULL);
		small = qs_cfg_find(qs_options, QS_N_OPTIONS, qs_cfg_orders[i].smaller, NULL);
		bv = qs_cfg_merged_uint(big, old, new);
		sv = qs_cfg_merged_uint(small, old, new);
		if (bv >= sv)
			continue;
		/* `new` itself is ordered, so one of the two is restart-only. */
		fixed = big->reload ? small : big;
		qs_errf(msg, len,
		        "%s = %s would be below %s = %s: %s needs a restart to change, so "
		        "restart qsd to apply this configuration",
		        big->name,
		        qs_cfg_show_number(bv, big->flags & QS_CFG_BYTES, bs, sizeof(bs)),
		        small->name,
		        qs_cfg_show_number(sv, small->flags & QS_CFG_BYTES, ss, sizeof(ss)),
		        fixed->name);
		return QS_ECONFIG;
	}
	return 0;
}

int
qs_config_reload_plan(const struct qs_config *old, const struct qs_config *new,
                      struct qs_reload_plan *plan, char *msg, size_t len)
{
	struct qs_reload_plan *p = calloc(1, sizeof(*p));
	struct qs_cfg_list applied, restart;
	const struct qs_option *row;
	int rc = -ENOMEM;

	if (p == NULL) {
		qs_errf(msg, len, "out of memory");
		goto out;
	}
	qs_cfg_list_init(&applied, p->applied, sizeof(p->applied), " ");
	qs_cfg_list_init(&restart, msg, len, ", ");
	for (size_t i = 0; i < QS_N_OPTIONS; i++) {
		row = &qs_options[i];
		if (row->type == QS_CFG_VALIDATORS)
			qs_cfg_plan_validators(old, new, p, &applied, &restart);
		else if (row->type != QS_CFG_SECTION && qs_cfg_row_differs(row, old, new))
			qs_cfg_plan_key(p, &applied, &restart, row->name, row->reload);
	}
	rc = qs_cfg_plan_orders(old, new, msg, len);
	if (rc)
		goto out;
	memcpy(plan, p, sizeof(*plan));
out:
	free(p);
	return rc;
}

/* Copy a run-time row's value from `new` into `live`. */
static void
qs_cfg_copy_row(const struct qs_option *row, struct qs_config *live, const struct qs_config *new)
{
	switch (row->type) {
	case QS_CFG_UINT:
	case QS_CFG_LOG_LEVEL:
		memcpy((char *)live + row->offset, (const char *)new + row->offset, row->size);
		return;
	case QS_CFG_UID_LIST:
		memcpy(live->allowed_uids, new->allowed_uids, sizeof(live->allowed_uids));
		live->n_allowed_uids = new->n_allowed_uids;
		return;
	default:
		break;
	}
	fprintf(stderr, "qs_config: option %s cannot be applied at run time\n", row->name);
	abort();
}

int
qs_config_reload_apply(struct qs_config *live, const struct qs_config *new,
                       const struct qs_reload_plan *plan)
{
	char **addresses = calloc(QS_MAX_VALIDATORS, sizeof(*addresses));
	size_t i, n = live->n_validators;
	int rc = -ENOMEM;

	if (addresses == NULL)
		goto out;
	for (i = 0; i < n && i < new->n_validators; i++) {
		if (!plan->address_changed[i])
			continue;
		addresses[i] = strdup(new->validators[i].address);
		if (addresses[i] == NULL)
			goto out;
	}
	for (i = 0; i < QS_N_OPTIONS; i++)
		if (qs_options[i].reload & plan->groups)
			qs_cfg_copy_row(&qs_options[i], live, new);
	for (i = 0; i < n; i++) {
		if (addresses[i] == NULL)
			continue;
		free(live->validators[i].address);
		live->validators[i].address = addresses[i];
		addresses[i] = NULL;
	}
	rc = 0;
out:
	for (i = 0; addresses != NULL && i < QS_MAX_VALIDATORS; i++)
		free(addresses[i]);
	free(addresses);
	return rc;
}

int
qs_config_key_at(size_t i, struct qs_config_key *out)
{
	const struct qs_option *row;

	if (i >= QS_N_OPTIONS + QS_N_VALIDATOR_OPTIONS)
		return -ENOENT;
	if (i < QS_N_OPTIONS) {
		row = &qs_options[i];
		snprintf(out->name, sizeof(out->name), "%s", row->name);
	} else {
		row = &qs_validator_options[i - QS_N_OPTIONS];
		snprintf(out->name, sizeof(out->name), "validators[].%s", row->name);
	}
	out->def = row->def;
	out->section = row->type == QS_CFG_SECTION || row->type == QS_CFG_VALIDATORS;
	out->reload = row->reload;
	return 0;
}
