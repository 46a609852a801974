/*
 * qsctl: the operator CLI for qsd.
 *
 *   qsctl keygen DIR     new network and signing keys in DIR
 *   qsctl pubkey FILE    hex public key of a PEM private key file
 *   qsctl db check DIR   check a node's database offline, read-only
 *
 * and, over qsd's RPC socket (qsctl [-s SOCKET] [-t MS] COMMAND):
 *
 *   status               GetStatus
 *   submit               SubmitBatch of one batch
 *   batches              the durable batches (ListBatches, every page)
 *   batch show DIGEST    one batch (GetBatch), checked against its digest
 *   proofs               the proof queue (ListProofs, every page)
 *   payload              what GetPayload would give consensus now
 *   commit DIGEST...     NotifyCommit
 *
 * Every command but keygen and pubkey prints text by default and, with
 * -o json, one JSON document on stdout (digests and keys in lowercase hex,
 * times in microseconds since the Unix epoch plus an ISO-8601 UTC copy).
 * When a call fails stdout gets no JSON (text listings keep what was listed
 * before) and stderr says why, with the RPC status name and the server's
 * message. A batch that fails its digest check (batch show) and a database
 * with problems (db check) are printed, and exit 1.
 *
 * JSON documents (INFO is a BatchInfo: {"digest", "author", "batch_id",
 * "epoch", "expiration_us", "expiration", "num_txns", "num_bytes",
 * "gas_bucket_start"}; PROOF is {"info": INFO, "signers": [validator
 * indexes], "signer_count", "signatures"}):
 *   submit       {"info": INFO, "duplicate"}
 *   batches      {"batches": [INFO...], "count", "num_txns", "num_bytes", "more"}
 *   proofs       {"proofs": [PROOF...], "count", "num_txns", "num_bytes", "more"}
 *                ("more": stopped at --limit with entries left)
 *   batch show   {"info": INFO, "source", "verified", "txn_count", "txn_bytes",
 *                "txn_sizes": [...], "transactions": [hex...] with --txns}
 *   payload      {"proofs": [PROOF...], "inline_batches": [{"info": INFO,
 *                "txn_count", "txn_bytes"}...], "totals": {"batches", "num_txns",
 *                "num_bytes", "proof_batches", "proof_txns", "proof_bytes",
 *                "inline_batches", "inline_txns", "inline_bytes"}}
 *   commit       {"block_timestamp_us", "block_timestamp", "digests",
 *                "proofs_removed"}
 *   db check     {"dir", "schema_version", "infos", "batches", "proofs",
 *                "payload_bytes", "bad_payloads", "bad_infos", "missing_payloads",
 *                "orphan_payloads", "bad_proofs", "committed", "problem_count", "problems":
 *                [{"cf", "key", "what", and for a batches, infos or proofs key
 *                "expiration_us", "digest"}...] (the first 1000),
 *                "problems_truncated", "clean"}
 *
 * Exit status: 0 success, 1 failure (an RPC failed or was answered with an
 * error; db check: problems found), 2 cannot connect to qsd's socket or the
 * Hello was refused (db check: the check could not run), 64 (EX_USAGE) bad
 * command line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "client/qsclient.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"
#include "storage/check.h"
#include "storage/store.h"

#ifndef QS_VERSION
#define QS_VERSION "0.0.0-unknown"
#endif

#define QSCTL_HEX_KEY_LEN (2 * QS_KEYS_PUB_BYTES)

#define QSCTL_EXIT_RPC         1 /* the call failed or was answered with an error */
#define QSCTL_EXIT_CONNECT     2 /* cannot connect, or the Hello was refused */
#define QSCTL_EXIT_PROBLEMS    1 /* db check: the database has problems */
#define QSCTL_EXIT_NOCHECK     2 /* db check: the check could not run */
#define QSCTL_TIMEOUT_MS       10000
#define QSCTL_SUBMIT_MAX_TXNS  100000
/* A submitted batch, transactions and framing: what the client sends at most. */
#define QSCTL_SUBMIT_MAX_BYTES QS_CLIENT_FRAME_MAX_BYTES

/* GetPayload's defaults (qsctl payload). */
#define QSCTL_PAYLOAD_MAX_TXNS  10000
#define QSCTL_PAYLOAD_MAX_BYTES (10u * 1024 * 1024)
/* Digests one request may carry: 32 bytes and 2 of framing each. */
#define QSCTL_MAX_DIGESTS       (QS_CLIENT_FRAME_MAX_BYTES / 64)

#define QSCTL_AUTHOR_PREFIX_BYTES 8               /* of a key, in text tables */
#define QSCTL_ISO_LEN             32              /* "2026-01-01T00:00:00.000000Z" and NUL */
#define QSCTL_ISO_MAX_S           253402300799ull /* 9999-12-31T23:59:59Z */
#define QSCTL_CHECK_MAX_PROBLEMS  1000            /* listed in db check's JSON */

static const char *qsctl_socket = QS_CLIENT_DEFAULT_SOCKET;
static int qsctl_timeout_ms = QSCTL_TIMEOUT_MS;

struct qsctl_cmd {
	const char *name;
	const char *args;
	const char *help;
	/* argv[0] is the subcommand's name; returns the exit status. */
	int (*run)(int argc, char **argv);
};

static const struct qsctl_cmd *qsctl_find(const char *name);

static int qsctl_keygen(int argc, char **argv);
static int qsctl_pubkey(int argc, char **argv);
static int qsctl_status(int argc, char **argv);
static int qsctl_submit(int argc, char **argv);
static int qsctl_batches(int argc, char **argv);
static int qsctl_batch(int argc, char **argv);
static int qsctl_proofs(int argc, char **argv);
static int qsctl_payload(int argc, char **argv);
static int qsctl_commit(int argc, char **argv);
static int qsctl_db(int argc, char **argv);

static const struct qsctl_cmd qsctl_cmds[] = {
    {"keygen", "DIR",
     "create DIR/{network,signing}.key (0600) and .pub; print the public keys as YAML",
     qsctl_keygen},
    {"pubkey", "FILE", "print the hex public key of a PEM Ed25519 private key file", qsctl_pubkey},
    {"status", "[-o text|json]",
     "ask qsd for its status (GetStatus): one \"field: value\" per line, or one JSON object",
     qsctl_status},
    {"submit", "(-f FILE | -n COUNT -b BYTES) [-k KEY] [-o text|json]",
     "submit one batch (SubmitBatch) and print its BatchInfo and whether it is a duplicate.\n"
     "      -f FILE  one transaction per line of FILE (\"-\": stdin); the newline is not\n"
     "               part of it and empty lines are skipped\n"
     "      -n COUNT -b BYTES  COUNT transactions of BYTES random bytes each\n"
     "      -k KEY   idempotency key: the bytes of KEY (at most 64); a retry with the\n"
     "               same key returns the same batch",
     qsctl_submit},
    {"batches", "[--author KEY] [--limit N] [-o text|json]",
     "list the durable batches stored on this node (ListBatches, page after page):\n"
     "      digest, author (key prefix in text), batch_id, epoch, expiration, txns, bytes.\n"
     "      --author KEY  only those of the validator with signing key KEY (64 hex digits)\n"
     "      --limit N     at most N of them (default: all)",
     qsctl_batches},
    {"batch", "show DIGEST [--txns] [-o text|json]",
     "fetch one batch (GetBatch: from memory, disk or a peer) and print its BatchInfo,\n"
     "      where it came from, its transactions' count and sizes; the digest is\n"
     "      recomputed from the transactions and a mismatch fails (exit 1).\n"
     "      --txns  also each transaction, in hex",
     qsctl_batch},
    {"proofs", "[--author KEY] [--limit N] [-o text|json]",
     "list the proof queue (ListProofs, page after page): digest, author, batch_id,\n"
     "      expiration, signers (count and validator indexes from the bitmap), txns, bytes.\n"
     "      --author KEY, --limit N  as for batches",
     qsctl_proofs},
    {"payload",
     "[--max-txns N] [--max-bytes N] [--max-inline-txns N] [--max-inline-bytes N]\n"
     "          [--exclude DIGEST]... [--non-full | --full-only] [-o text|json]",
     "ask for a block payload as consensus would (GetPayload) and print its proofs,\n"
     "      inline batches and totals.\n"
     "      --max-txns N, --max-bytes N  limits of the whole payload (default 10000\n"
     "                    and 10 MiB; sizes take a KiB, MiB or GiB suffix)\n"
     "      --max-inline-txns N, --max-inline-bytes N  of those, how much may come as\n"
     "                    whole batches instead of proofs (default 0: none)\n"
     "      --exclude DIGEST  leave out this batch (repeat for more)\n"
     "      --non-full    return what there is even if it fills no limit (the default)\n"
     "      --full-only   return_non_full false: an empty payload unless a limit is filled",
     qsctl_payload},
    {"commit", "[--timestamp-us T] [-o text|json] DIGEST...",
     "tell qsd these batches were committed in a block (NotifyCommit) and print how many\n"
     "      proofs it removed.\n"
     "      --timestamp-us T  the block's timestamp, microseconds since the Unix epoch\n"
     "                        (default: now)",
     qsctl_commit},
    {"db", "check [-o text|json] DIR",
     "check the database in DIR (a node's data_dir) offline and read-only: every payload\n"
     "      against its digest, infos against payloads, proofs. Beside a running qsd it sees\n"
     "      what was durable when it opened. Prints each problem (column family, key in\n"
     "      hex, what) and the totals. Exit status: 0 clean,\n"
     "      1 problems found, 2 the check could not run (no database in DIR, or it\n"
     "      cannot be opened or read)",
     qsctl_db},
};

#define QSCTL_NCMDS (sizeof(qsctl_cmds) / sizeof(qsctl_cmds[0]))

static void
qsctl_usage(FILE *f)
{
	size_t i;

	fprintf(f,
	        "usage: qsctl [-hV] [-s SOCKET] [-t MS] COMMAND [ARGS]\n\n"
	        "  -h         show this help (COMMAND -h: that command's)\n"
	        "  -V         show the version\n"
	        "  -s SOCKET  qsd's RPC socket (default %s)\n"
	        "  -t MS      timeout of each RPC step in milliseconds (default %d)\n\n"
	        "exit status: 0 ok, 1 failure or RPC error, 2 cannot connect to qsd, 64 usage\n"
	        "(db check: 0 clean, 1 problems, 2 could not check)\n\n"
	        "-o json prints one JSON document: digests and keys in lowercase hex, times as\n"
	        "*_us (microseconds since the Unix epoch) with an ISO-8601 UTC copy.\n\n"
	        "commands:\n",
	        QS_CLIENT_DEFAULT_SOCKET, QSCTL_TIMEOUT_MS);
	for (i = 0; i < QSCTL_NCMDS; i++)
		fprintf(f, "  %s %s\n      %s\n", qsctl_cmds[i].name, qsctl_cmds[i].args,
		        qsctl_cmds[i].help);
}

static void
qsctl_cmd_usage(FILE *f, const struct qsctl_cmd *cmd)
{
	fprintf(f, "usage: qsctl %s %s\n  %s\n", cmd->name, cmd->args, cmd->help);
}

/* The usage of command `name` on stderr; returns EX_USAGE. */
static int
qsctl_usage_error(const char *name)
{
	qsctl_cmd_usage(stderr, qsctl_find(name));
	return EX_USAGE;
}

static bool
qsctl_parse_output(const char *arg, bool *json)
{
	if (strcmp(arg, "json") == 0)
		*json = true;
	else if (strcmp(arg, "text") == 0)
		*json = false;
	else
		return false;
	return true;
}

/* Codes of the long options that have no short form. */
enum {
	QSCTL_OPT_AUTHOR = 256,
	QSCTL_OPT_LIMIT,
	QSCTL_OPT_TXNS,
	QSCTL_OPT_MAX_TXNS,
	QSCTL_OPT_MAX_BYTES,
	QSCTL_OPT_MAX_INLINE_TXNS,
	QSCTL_OPT_MAX_INLINE_BYTES,
	QSCTL_OPT_EXCLUDE,
	QSCTL_OPT_NON_FULL,
	QSCTL_OPT_FULL_ONLY,
	QSCTL_OPT_TIMESTAMP,
};

/*
 * How a command reads its command line: [WORD] OPTION... OPERAND...
 * qsctl_parse() itself reads -h, and -o text|json where `shorts` has "o:"
 * (--help and --output where `longs` lists them as 'h' and 'o').
 */
struct qsctl_syntax {
	const char *word;           /* what must come first ("show"), or NULL */
	const char *shorts;         /* getopt()'s option string */
	const struct option *longs; /* NULL: short options only */
	int min_args;               /* operands */
	int max_args;               /* -1: no limit */
	/*
	 * One of the command's other options: c as getopt_long() returned it,
	 * arg its argument, name its long name (NULL when given short).
	 * Returns -1 to go on, else the exit status, having said why.
	 */
	int (*option)(void *ctx, int c, const char *arg, const char *name);
};

/* What qsctl_parse() read besides the command's own options. */
struct qsctl_line {
	bool json;
	char **args; /* the operands */
	int n_args;
};

/*
 * Read the command line of the command argv[0] as `syn` says, passing its
 * own options to syn->option(ctx, ...). -h prints the command's usage; a
 * bad option or operand count prints it on stderr. Returns -1 to go on
 * with *line set, else the exit status: 0 after -h, EX_USAGE, or what
 * syn->option() returned.
 */
static int
qsctl_parse(int argc, char **argv, const struct qsctl_syntax *syn, void *ctx,
            struct qsctl_line *line)
{
	const char *name = argv[0];
	int c, li, rc;

	if (syn->word != NULL) {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
			qsctl_cmd_usage(stdout, qsctl_find(name));
			return 0;
		}
		if (argc < 2 || strcmp(argv[1], syn->word) != 0)
			return qsctl_usage_error(name);
		argc--;
		argv++;
	}
	line->json = false;
	optind = 0;
	for (;;) {
		/* getopt_long() sets it for a long option only. */
		li = -1;
		c = getopt_long(argc, argv, syn->shorts, syn->longs, &li);
		if (c == -1)
			break;
		switch (c) {
		case 'h':
			qsctl_cmd_usage(stdout, qsctl_find(name));
			return 0;
		case 'o':
			if (!qsctl_parse_output(optarg, &line->json))
				return qsctl_usage_error(name);
			break;
		default:
			if (c == '?' || syn->option == NULL)
				return qsctl_usage_error(name);
			rc = syn->option(ctx, c, optarg, li >= 0 ? syn->longs[li].name : NULL);
			if (rc >= 0)
				return rc;
		}
	}
	line->args = argv + optind;
	line->n_args = argc - optind;
	if (line->n_args < syn->min_args || (syn->max_args >= 0 && line->n_args > syn->max_args))
		return qsctl_usage_error(name);
	return -1;
}

/* ---- output ---- */

/*
 * Where a command writes. Text goes straight to stdout; a JSON document is
 * built in memory and written out only when the command succeeds, so that
 * stdout holds one whole document or nothing.
 */
struct qsctl_out {
	FILE *f;
	char *buf;
	size_t len;
	bool json;
};

static int
qsctl_out_open(struct qsctl_out *o, bool json)
{
	memset(o, 0, sizeof(*o));
	o->json = json;
	if (!json) {
		o->f = stdout;
		return 0;
	}
	o->f = open_memstream(&o->buf, &o->len);
	if (o->f == NULL) {
		fprintf(stderr, "qsctl: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	return 0;
}

/* End the output of a command that exits with `status`: a JSON document is
 * written to stdout when that is 0. Returns `status`, or EXIT_FAILURE when
 * the document could not be built. */
static int
qsctl_out_close(struct qsctl_out *o, int status)
{
	if (!o->json || o->f == NULL)
		return status;
	if ((ferror(o->f) | fclose(o->f)) != 0 && status == 0) {
		fprintf(stderr, "qsctl: building the JSON output: out of memory\n");
		status = EXIT_FAILURE;
	}
	o->f = NULL;
	if (status == 0)
		fwrite(o->buf, 1, o->len, stdout);
	free(o->buf);
	o->buf = NULL;
	return status;
}

static int
qsctl_path(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= PATH_MAX) {
		fprintf(stderr, "qsctl: %s/%s: path too long\n", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Write `text` to a new file `path` (never an existing one) and fsync it. */
static int
qsctl_write_new(const char *path, const char *text, mode_t mode)
{
	size_t len = strlen(text);
	int fd;
	int rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		text += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		rc = -errno;
out:
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc && fd >= 0)
		unlink(path);
	return rc;
}

/* keygen DIR, pubkey FILE. */
static const struct qsctl_syntax qsctl_one_operand = {.shorts = "+h", .min_args = 1, .max_args = 1};

static const char *const qsctl_key_names[] = {"network", "signing"};

static int
qsctl_keygen(int argc, char **argv)
{
	char key_path[2][PATH_MAX], pub_path[2][PATH_MAX];
	char hex[2][QSCTL_HEX_KEY_LEN + 2];
	uint8_t pub[QS_KEYS_PUB_BYTES];
	bool created[2][2] = {{false}};
	struct qsctl_line line;
	const char *dir;
	struct stat st;
	int status = EXIT_FAILURE;
	int rc;
	int i, j;

	rc = qsctl_parse(argc, argv, &qsctl_one_operand, NULL, &line);
	if (rc >= 0)
		return rc;
	dir = line.args[0];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "qsctl: cannot create directory %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "qsctl: %s: not a directory\n", dir);
		goto out;
	}

	/* Check all four names first, so a refusal leaves nothing half made. */
	for (i = 0; i < 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s.key", qsctl_key_names[i]);
		if (qsctl_path(key_path[i], dir, name))
			goto out;
		snprintf(name, sizeof(name), "%s.pub", qsctl_key_names[i]);
		if (qsctl_path(pub_path[i], dir, name))
			goto out;
	}
	for (i = 0; i < 2; i++) {
		const char *paths[2] = {key_path[i], pub_path[i]};

		for (j = 0; j < 2; j++) {
			if (lstat(paths[j], &st) == 0) {
				fprintf(stderr,
				        "qsctl: %s already exists; refusing to overwrite key files "
				        "(move the old ones away first)\n",
				        paths[j]);
				goto out;
			}
			if (errno != ENOENT) {
				fprintf(stderr, "qsctl: %s: %s\n", paths[j], strerror(errno));
				goto out;
			}
		}
	}

	for (i = 0; i < 2; i++) {
		rc = qs_keys_generate(key_path[i], pub);
		if (rc) {
			fprintf(stderr, "qsctl: %s: %s\n", key_path[i], qs_strerror(rc));
			goto out;
		}
		created[i][0] = true;
		qs_hex_encode(pub, sizeof(pub), hex[i]);
		strcat(hex[i], "\n");
		rc = qsctl_write_new(pub_path[i], hex[i], 0644);
		if (rc) {
			fprintf(stderr, "qsctl: %s: %s\n", pub_path[i], qs_strerror(rc));
			goto out;
		}
		created[i][1] = true;
		hex[i][QSCTL_HEX_KEY_LEN] = '\0';
	}

	printf("network_key: %s\nsigning_key: %s\n", hex[0], hex[1]);
	status = EXIT_SUCCESS;
out:
	/* On failure remove what this run created: keys are made as a set. */
	for (i = 0; status != EXIT_SUCCESS && i < 2; i++) {
		if (created[i][0])
			unlink(key_path[i]);
		if (created[i][1])
			unlink(pub_path[i]);
	}
	return status;
}

static int
qsctl_pubkey(int argc, char **argv)
{
	char hex[QSCTL_HEX_KEY_LEN + 1];
	uint8_t pub[QS_KEYS_PUB_BYTES];
	EVP_PKEY *pkey = NULL;
	struct qsctl_line line;
	char err[512];
	int rc;

	rc = qsctl_parse(argc, argv, &qsctl_one_operand, NULL, &line);
	if (rc >= 0)
		return rc;
	rc = qs_keys_load(line.args[0], &pkey, pub, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "qsctl: %s\n", err);
		return EXIT_FAILURE;
	}
	EVP_PKEY_free(pkey);
	qs_hex_encode(pub, sizeof(pub), hex);
	printf("%s\n", hex);
	return EXIT_SUCCESS;
}

/* ---- RPC subcommands ---- */

static int
qsctl_connect(struct qs_client **out)
{
	char err[512] = "";
	int rc;

	rc = qs_client_connect(qsctl_socket, "qsctl", qsctl_timeout_ms, out, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "qsctl: cannot connect to qsd: %s\n", err);
		return QSCTL_EXIT_CONNECT;
	}
	return 0;
}

/*
 * Check the outcome of a call: 0 when `resp` is OK with body `body`, else
 * print why and return QSCTL_EXIT_RPC.
 */
static int
qsctl_rpc_result(const char *method, int rc, const Quorumstore__V1__Response *resp,
                 Quorumstore__V1__Response__BodyCase body)
{
	if (rc != 0) {
		fprintf(stderr, "qsctl: %s: %s\n", method, qs_strerror(rc));
		return QSCTL_EXIT_RPC;
	}
	if (resp->status != QUORUMSTORE__V1__STATUS__STATUS_OK) {
		fprintf(stderr, "qsctl: %s: %s: %s\n", method, qs_client_status_name(resp->status),
		        resp->message != NULL ? resp->message : "");
		return QSCTL_EXIT_RPC;
	}
	if (resp->body_case != body) {
		fprintf(stderr, "qsctl: %s: unexpected response (body %d)\n", method,
		        (int)resp->body_case);
		return QSCTL_EXIT_RPC;
	}
	return 0;
}

/*
 * An RPC command's connection to qsd, its last response and its output.
 * Zeroed, it may be closed without having been opened.
 */
struct qsctl_session {
	struct qs_client *client;
	Quorumstore__V1__Response *resp;
	struct qsctl_out out;
};

/* Connect, then open the output (-o json: `json`). Returns 0, or the exit
 * status, having said why. */
static int
qsctl_session_open(struct qsctl_session *s, bool json)
{
	int rc;

	memset(s, 0, sizeof(*s));
	rc = qsctl_connect(&s->client);
	if (rc == 0)
		rc = qsctl_out_open(&s->out, json);
	return rc;
}

/* End the session of a command that exits with `status` (qsctl_out_close())
 * and free it. Returns the exit status. */
static int
qsctl_session_close(struct qsctl_session *s, int status)
{
	status = qsctl_out_close(&s->out, status);
	qs_client_response_free(s->resp);
	s->resp = NULL;
	qs_client_close(s->client);
	s->client = NULL;
	return status;
}

static void
qsctl_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/*
 * The name of enum value `v` of `field` without the prefix that repeats the
 * field's name, in lower case: storage_state STORAGE_STATE_OK -> "ok".
 */
static void
qsctl_enum_name(const ProtobufCFieldDescriptor *field, int v, char *buf, size_t len)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(field->descriptor, v);
	const char *name;
	size_t i, n = strlen(field->name);

	if (ev == NULL) {
		snprintf(buf, len, "%d", v);
		return;
	}
	name = ev->name;
	for (i = 0; i < n && name[i] != '\0'; i++)
		if ((char)toupper((unsigned char)field->name[i]) != name[i])
			break;
	if (i == n && name[n] == '_')
		name += n + 1;
	for (i = 0; name[i] != '\0' && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
}

/*
 * Print the singular scalar fields of `msg`, in field order: one
 * "name: value" per line, or one JSON object. Other fields are skipped.
 */
static void
qsctl_print_scalars(FILE *f, const ProtobufCMessage *msg, bool json)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *sep = "";
	char value[128];

	if (json)
		fputc('{', f);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const void *p = (const char *)msg + fd->offset;
		const char *str = NULL;

		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		switch (fd->type) {
		case PROTOBUF_C_TYPE_STRING:
			str = *(char *const *)p != NULL ? *(char *const *)p : "";
			break;
		case PROTOBUF_C_TYPE_UINT64:
		case PROTOBUF_C_TYPE_FIXED64:
			snprintf(value, sizeof(value), "%" PRIu64, *(const uint64_t *)p);
			break;
		case PROTOBUF_C_TYPE_UINT32:
		case PROTOBUF_C_TYPE_FIXED32:
			snprintf(value, sizeof(value), "%" PRIu32, *(const uint32_t *)p);
			break;
		case PROTOBUF_C_TYPE_INT64:
			snprintf(value, sizeof(value), "%" PRId64, *(const int64_t *)p);
			break;
		case PROTOBUF_C_TYPE_INT32:
			snprintf(value, sizeof(value), "%" PRId32, *(const int32_t *)p);
			break;
		case PROTOBUF_C_TYPE_BOOL:
			snprintf(value, sizeof(value), "%s",
			         *(const protobuf_c_boolean *)p ? "true" : "false");
			break;
		case PROTOBUF_C_TYPE_ENUM:
			qsctl_enum_name(fd, *(const int *)p, value, sizeof(value));
			str = value;
			break;
		default:
			continue;
		}
		if (!json) {
			fprintf(f, "%s: %s\n", fd->name, str != NULL ? str : value);
			continue;
		}
		fprintf(f, "%s\"%s\":", sep, fd->name);
		sep = ",";
		if (str != NULL)
			qsctl_json_string(f, str);
		else
			fputs(value, f);
	}
	if (json)
		fputs("}\n", f);
}

static int
qsctl_status(int argc, char **argv)
{
	static const struct qsctl_syntax syntax = {.shorts = "+ho:"};
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, NULL, &line);
	if (rc >= 0)
		return rc;
	rc = qsctl_session_open(&s, line.json);
	if (rc != 0)
		goto out;
	rc = qs_client_status(s.client, qsctl_timeout_ms, &s.resp);
	rc = qsctl_rpc_result("GetStatus", rc, s.resp, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
	if (rc == 0)
		qsctl_print_scalars(s.out.f, &s.resp->get_status->base, line.json);
out:
	return qsctl_session_close(&s, rc);
}

/* Read all of `path` ("-": stdin), at most `max` bytes, into *out. */
static int
qsctl_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0, got;
	int rc = 0;

	if (f == NULL)
		return -errno;
	for (;;) {
		if (n == cap) {
			uint8_t *nbuf;

			if (cap > max) {
				rc = QS_ELIMIT;
				goto out;
			}
			cap = cap == 0 ? 64 * 1024 : 2 * cap;
			nbuf = realloc(buf, cap + 1);
			if (nbuf == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nbuf;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	if (n > max)
		rc = QS_ELIMIT;
out:
	if (f != stdin)
		fclose(f);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Split buf into one transaction per non-empty line (pointing into buf). */
static int
qsctl_split_lines(uint8_t *buf, size_t len, ProtobufCBinaryData **txns, size_t *n_txns)
{
	ProtobufCBinaryData *t = NULL;
	size_t n = 0, cap = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && buf[i] != '\n')
			continue;
		if (i > start) {
			if (n == QSCTL_SUBMIT_MAX_TXNS) {
				free(t);
				return QS_ELIMIT;
			}
			if (n == cap) {
				ProtobufCBinaryData *nt;

				cap = cap == 0 ? 64 : 2 * cap;
				nt = realloc(t, cap * sizeof(*t));
				if (nt == NULL) {
					free(t);
					return -ENOMEM;
				}
				t = nt;
			}
			t[n].data = buf + start;
			t[n].len = i - start;
			n++;
		}
		start = i + 1;
	}
	*txns = t;
	*n_txns = n;
	return 0;
}

static bool
qsctl_parse_size(const char *s, unsigned long long max, size_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > max)
		return false;
	*out = (size_t)v;
	return true;
}

/*
 * A decimal integer from min to max; with `sizes`, optionally followed by
 * KiB, MiB or GiB.
 */
static bool
qsctl_parse_u64(const char *s, uint64_t min, uint64_t max, bool sizes, uint64_t *out)
{
	unsigned long long v;
	uint64_t unit = 1;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return false;
	if (sizes && strcmp(end, "KiB") == 0)
		unit = 1ull << 10;
	else if (sizes && strcmp(end, "MiB") == 0)
		unit = 1ull << 20;
	else if (sizes && strcmp(end, "GiB") == 0)
		unit = 1ull << 30;
	else if (*end != '\0')
		return false;
	if (v > UINT64_MAX / unit || v * unit < min || v * unit > max)
		return false;
	*out = v * unit;
	return true;
}

/* A digest or key operand: exactly 2 * n hex digits. */
static bool
qsctl_parse_hex(const char *what, const char *arg, uint8_t *out, size_t n)
{
	if (qs_hex_decode(arg, out, n) == 0)
		return true;
	fprintf(stderr, "qsctl: %s '%s': want %zu hex digits\n", what, arg, 2 * n);
	return false;
}

static uint64_t
qsctl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* `us` after the Unix epoch in ISO-8601 UTC with microseconds; false when
 * the year is past 9999. */
static bool
qsctl_iso_time(uint64_t us, char *buf, size_t len)
{
	time_t sec = (time_t)(us / 1000000u);
	struct tm tm;
	size_t n;

	if (us / 1000000u > QSCTL_ISO_MAX_S || gmtime_r(&sec, &tm) == NULL)
		return false;
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return false;
	snprintf(buf + n, len - n, ".%06uZ", (unsigned)(us % 1000000u));
	return true;
}

/* The n bytes at p in lowercase hex, without an intermediate buffer of
 * their size. */
static void
qsctl_put_hex(FILE *f, const uint8_t *p, size_t n)
{
	char chunk[2 * 256 + 1];

	while (n > 0) {
		size_t k = n < 256 ? n : 256;

		qs_hex_encode(p, k, chunk);
		fwrite(chunk, 1, 2 * k, f);
		p += k;
		n -= k;
	}
}

static void
qsctl_json_hex(FILE *f, const ProtobufCBinaryData *b)
{
	fputc('"', f);
	qsctl_put_hex(f, b->data, b->len);
	fputc('"', f);
}

/* At most max bytes of b in hex into out (2 * max + 2 chars), with a "+"
 * when b is longer and `mark`: a column of a text table. */
static void
qsctl_hex_column(const ProtobufCBinaryData *b, size_t max, bool mark, char *out)
{
	size_t n = b->len < max ? b->len : max;

	qs_hex_encode(b->data, n, out);
	if (b->len > max && mark)
		strcpy(out + 2 * n, "+");
}

static void
qsctl_json_time(FILE *f, const char *name, uint64_t us)
{
	char iso[QSCTL_ISO_LEN];

	fprintf(f, "\"%s_us\":%" PRIu64 ",\"%s\":", name, us, name);
	if (qsctl_iso_time(us, iso, sizeof(iso)))
		fprintf(f, "\"%s\"", iso);
	else
		fputs("null", f);
}

/* A BatchInfo as a JSON object; the field names are the protocol's. */
static void
qsctl_json_info(FILE *f, const Quorumstore__V1__BatchInfo *info)
{
	fputs("{\"digest\":", f);
	qsctl_json_hex(f, &info->digest);
	fputs(",\"author\":", f);
	qsctl_json_hex(f, &info->author);
	fprintf(f, ",\"batch_id\":%" PRIu64 ",\"epoch\":%" PRIu64 ",", info->batch_id, info->epoch);
	qsctl_json_time(f, "expiration", info->expiration_us);
	fprintf(f,
	        ",\"num_txns\":%" PRIu32 ",\"num_bytes\":%" PRIu64 ",\"gas_bucket_start\":%" PRIu64
	        "}",
	        info->num_txns, info->num_bytes, info->gas_bucket_start);
}

/* The indexes of the validators whose bit is set in a signer bitmap (bit i
 * is bit i % 8 of byte i / 8), separated by `sep`; returns how many. With
 * f NULL, only counts. */
static size_t
qsctl_put_signers(FILE *f, const ProtobufCBinaryData *bitmap, const char *sep)
{
	size_t n = 0;

	for (size_t i = 0; i < bitmap->len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			if (((bitmap->data[i] >> bit) & 1) == 0)
				continue;
			if (f != NULL)
				fprintf(f, "%s%zu", n > 0 ? sep : "", 8 * i + bit);
			n++;
		}
	}
	return n;
}

static void
qsctl_json_proof(FILE *f, const Quorumstore__V1__ProofOfStore *proof)
{
	fputs("{\"info\":", f);
	qsctl_json_info(f, proof->info);
	fputs(",\"signers\":[", f);
	qsctl_put_signers(f, &proof->signer_bitmap, ",");
	fprintf(f, "],\"signer_count\":%zu,\"signatures\":%zu}",
	        qsctl_put_signers(NULL, &proof->signer_bitmap, ","), proof->n_signatures);
}

/* Text tables: the columns every row starts with. */
#define QSCTL_ROW_FMT "%-64s  %-16s  %16s  "

static void
qsctl_row_start(FILE *f, const Quorumstore__V1__BatchInfo *info)
{
	char digest[2 * QS_DIGEST_BYTES + 2], author[2 * QSCTL_AUTHOR_PREFIX_BYTES + 2];
	char id[24];

	/* A digest is shown whole (marked if over 32 bytes), a key by its prefix. */
	qsctl_hex_column(&info->digest, QS_DIGEST_BYTES, true, digest);
	qsctl_hex_column(&info->author, QSCTL_AUTHOR_PREFIX_BYTES, false, author);
	snprintf(id, sizeof(id), "%" PRIu64, info->batch_id);
	fprintf(f, QSCTL_ROW_FMT, digest, author, id);
}

static void
qsctl_put_iso(FILE *f, uint64_t us)
{
	char iso[QSCTL_ISO_LEN];

	fprintf(f, "%-27s", qsctl_iso_time(us, iso, sizeof(iso)) ? iso : "-");
}

/* batches: DIGEST AUTHOR BATCH_ID EPOCH EXPIRATION EXPIRATION_US TXNS BYTES */
static void
qsctl_batch_header(FILE *f)
{
	fprintf(f, QSCTL_ROW_FMT "%6s  %-27s  %16s  %7s  %11s\n", "DIGEST", "AUTHOR", "BATCH_ID",
	        "EPOCH", "EXPIRATION", "EXPIRATION_US", "TXNS", "BYTES");
}

static void
qsctl_batch_row(FILE *f, const Quorumstore__V1__BatchInfo *info)
{
	qsctl_row_start(f, info);
	fprintf(f, "%6" PRIu64 "  ", info->epoch);
	qsctl_put_iso(f, info->expiration_us);
	fprintf(f, "  %16" PRIu64 "  %7" PRIu32 "  %11" PRIu64 "\n", info->expiration_us,
	        info->num_txns, info->num_bytes);
}

/* proofs: DIGEST AUTHOR BATCH_ID EXPIRATION TXNS BYTES SIGNERS */
static void
qsctl_proof_header(FILE *f, const char *kind)
{
	if (kind != NULL)
		fprintf(f, "%-6s  ", "KIND");
	fprintf(f, QSCTL_ROW_FMT "%-27s  %7s  %11s  %s\n", "DIGEST", "AUTHOR", "BATCH_ID",
	        "EXPIRATION", "TXNS", "BYTES", "SIGNERS");
}

/* A row of the proofs table: `bitmap` NULL for an inline batch, which has
 * no signers, and txns, bytes those it carries. */
static void
qsctl_proof_row(FILE *f, const char *kind, const Quorumstore__V1__BatchInfo *info,
                const ProtobufCBinaryData *bitmap, uint64_t txns, uint64_t bytes)
{
	if (kind != NULL)
		fprintf(f, "%-6s  ", kind);
	qsctl_row_start(f, info);
	qsctl_put_iso(f, info->expiration_us);
	fprintf(f, "  %7" PRIu64 "  %11" PRIu64 "  ", txns, bytes);
	if (bitmap == NULL) {
		fputs("-\n", f);
		return;
	}
	fprintf(f, "%zu [", qsctl_put_signers(NULL, bitmap, ","));
	qsctl_put_signers(f, bitmap, ",");
	fputs("]\n", f);
}

/* The bytes of a batch's transactions. */
static uint64_t
qsctl_batch_bytes(const Quorumstore__V1__Batch *b)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < b->n_transactions; i++)
		bytes += b->transactions[i].len;
	return bytes;
}

/* ---- batches, proofs: listings page by page ---- */

struct qsctl_lister {
	const char *method; /* in messages: "ListBatches" */
	const char *what;   /* the JSON array, and the noun of the text summary */
	Quorumstore__V1__Response__BodyCase body;
	int (*call)(struct qs_client *c, const uint8_t *author, size_t author_len,
	            const uint8_t *start_after, size_t start_len, uint32_t limit, int timeout_ms,
	            Quorumstore__V1__Response **out);
	/* The entries of a page, and in *next the cursor of the next one. */
	size_t (*page)(const Quorumstore__V1__Response *resp, const ProtobufCBinaryData **next);
	/* Entry i's BatchInfo; NULL when it has none. */
	const Quorumstore__V1__BatchInfo *(*info)(const Quorumstore__V1__Response *resp, size_t i);
	void (*header)(FILE *f);
	void (*print)(FILE *f, bool json, const Quorumstore__V1__Response *resp, size_t i);
};

static size_t
qsctl_batches_page(const Quorumstore__V1__Response *resp, const ProtobufCBinaryData **next)
{
	*next = &resp->list_batches->next;
	return resp->list_batches->n_infos;
}

static const Quorumstore__V1__BatchInfo *
qsctl_batches_info(const Quorumstore__V1__Response *resp, size_t i)
{
	return resp->list_batches->infos[i];
}

static void
qsctl_batches_print(FILE *f, bool json, const Quorumstore__V1__Response *resp, size_t i)
{
	if (json)
		qsctl_json_info(f, resp->list_batches->infos[i]);
	else
		qsctl_batch_row(f, resp->list_batches->infos[i]);
}

static size_t
qsctl_proofs_page(const Quorumstore__V1__Response *resp, const ProtobufCBinaryData **next)
{
	*next = &resp->list_proofs->next;
	return resp->list_proofs->n_proofs;
}

static const Quorumstore__V1__BatchInfo *
qsctl_proofs_info(const Quorumstore__V1__Response *resp, size_t i)
{
	return resp->list_proofs->proofs[i]->info;
}

static void
qsctl_proofs_header(FILE *f)
{
	qsctl_proof_header(f, NULL);
}

static void
qsctl_proofs_print(FILE *f, bool json, const Quorumstore__V1__Response *resp, size_t i)
{
	const Quorumstore__V1__ProofOfStore *p = resp->list_proofs->proofs[i];

	if (json)
		qsctl_json_proof(f, p);
	else
		qsctl_proof_row(f, NULL, p->info, &p->signer_bitmap, p->info->num_txns,
		                p->info->num_bytes);
}

static const struct qsctl_lister qsctl_batches_lister = {
    .method = "ListBatches",
    .what = "batches",
    .body = QUORUMSTORE__V1__RESPONSE__BODY_LIST_BATCHES,
    .call = qs_client_list_batches,
    .page = qsctl_batches_page,
    .info = qsctl_batches_info,
    .header = qsctl_batch_header,
    .print = qsctl_batches_print,
};

static const struct qsctl_lister qsctl_proofs_lister = {
    .method = "ListProofs",
    .what = "proofs",
    .body = QUORUMSTORE__V1__RESPONSE__BODY_LIST_PROOFS,
    .call = qs_client_list_proofs,
    .page = qsctl_proofs_page,
    .info = qsctl_proofs_info,
    .header = qsctl_proofs_header,
    .print = qsctl_proofs_print,
};

/* The options of batches and proofs. */
struct qsctl_list_opts {
	uint8_t author[QS_PUBKEY_BYTES];
	bool by_author;
	uint64_t limit; /* 0: all */
};

static int
qsctl_list_option(void *ctx, int c, const char *arg, const char *name)
{
	struct qsctl_list_opts *lo = ctx;

	if (c == QSCTL_OPT_AUTHOR) {
		if (!qsctl_parse_hex("--author", arg, lo->author, sizeof(lo->author)))
			return EX_USAGE;
		lo->by_author = true;
	} else if (!qsctl_parse_u64(arg, 1, UINT64_MAX, false, &lo->limit)) {
		fprintf(stderr, "qsctl: --limit: a count, 1 and up\n");
		return EX_USAGE;
	}
	return -1;
}

/*
 * List every entry (or --limit of them), asking page after page until the
 * server's `next` is empty. An entry that ended one page and starts the
 * next again (the listing moved under the cursor) is shown once.
 */
static int
qsctl_list(int argc, char **argv, const struct qsctl_lister *ls)
{
	static const struct option opts[] = {
	    {"author", required_argument, NULL, QSCTL_OPT_AUTHOR},
	    {"limit", required_argument, NULL, QSCTL_OPT_LIMIT},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct qsctl_syntax syntax = {
	    .shorts = "ho:", .longs = opts, .option = qsctl_list_option};
	struct qsctl_list_opts lo = {.by_author = false};
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	uint8_t last[QS_DIGEST_BYTES];
	uint8_t *cursor = NULL;
	size_t cursor_len = 0;
	bool have_last = false, json, more = false;
	uint64_t count = 0, txns = 0, bytes = 0;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, &lo, &line);
	if (rc >= 0)
		return rc;
	json = line.json;
	rc = qsctl_session_open(&s, json);
	if (rc != 0)
		goto out;
	if (json)
		fprintf(s.out.f, "{\"%s\":[", ls->what);
	else
		ls->header(s.out.f);
	for (;;) {
		uint32_t want = QS_CLIENT_LIST_MAX;
		const ProtobufCBinaryData *next;
		uint8_t *copy;
		size_t n;

		if (lo.limit != 0 && lo.limit - count < want)
			want = (uint32_t)(lo.limit - count);
		qs_client_response_free(s.resp);
		s.resp = NULL;
		rc = ls->call(s.client, lo.by_author ? lo.author : NULL,
		              lo.by_author ? sizeof(lo.author) : 0, cursor, cursor_len, want,
		              qsctl_timeout_ms, &s.resp);
		rc = qsctl_rpc_result(ls->method, rc, s.resp, ls->body);
		if (rc != 0)
			goto out;
		n = ls->page(s.resp, &next);
		for (size_t i = 0; i < n; i++) {
			const Quorumstore__V1__BatchInfo *info = ls->info(s.resp, i);

			if (info == NULL) {
				fprintf(stderr, "qsctl: %s: an entry without its BatchInfo\n",
				        ls->method);
				rc = QSCTL_EXIT_RPC;
				goto out;
			}
			if (i == 0 && have_last && info->digest.len == sizeof(last) &&
			    memcmp(info->digest.data, last, sizeof(last)) == 0)
				continue;
			if (lo.limit != 0 && count == lo.limit) {
				more = true;
				break;
			}
			if (json && count > 0)
				fputc(',', s.out.f);
			ls->print(s.out.f, json, s.resp, i);
			count++;
			txns += info->num_txns;
			bytes += info->num_bytes;
			have_last = info->digest.len == sizeof(last);
			if (have_last)
				memcpy(last, info->digest.data, sizeof(last));
		}
		if (more || next->len == 0)
			break;
		if (lo.limit != 0 && count == lo.limit) {
			more = true;
			break;
		}
		if (next->len == cursor_len && memcmp(next->data, cursor, cursor_len) == 0) {
			fprintf(stderr, "qsctl: %s: the server's cursor did not advance\n",
			        ls->method);
			rc = QSCTL_EXIT_RPC;
			goto out;
		}
		copy = malloc(next->len);
		if (copy == NULL) {
			fprintf(stderr, "qsctl: out of memory\n");
			rc = EXIT_FAILURE;
			goto out;
		}
		memcpy(copy, next->data, next->len);
		free(cursor);
		cursor = copy;
		cursor_len = next->len;
	}
	if (json) {
		fprintf(s.out.f,
		        "],\"count\":%" PRIu64 ",\"num_txns\":%" PRIu64 ",\"num_bytes\":%" PRIu64
		        ",\"more\":%s}\n",
		        count, txns, bytes, more ? "true" : "false");
	} else {
		fprintf(s.out.f, "%" PRIu64 " %s, %" PRIu64 " transactions, %" PRIu64 " bytes\n",
		        count, ls->what, txns, bytes);
		if (more)
			fprintf(s.out.f, "stopped at --limit %" PRIu64 "; there may be more\n",
			        lo.limit);
	}
out:
	free(cursor);
	return qsctl_session_close(&s, rc);
}

static int
qsctl_batches(int argc, char **argv)
{
	return qsctl_list(argc, argv, &qsctl_batches_lister);
}

static int
qsctl_proofs(int argc, char **argv)
{
	return qsctl_list(argc, argv, &qsctl_proofs_lister);
}

/* ---- batch show ---- */

static const char *
qsctl_source_name(Quorumstore__V1__BatchSource source)
{
	switch (source) {
	case QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_MEMORY:
		return "memory";
	case QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_DISK:
		return "disk";
	case QUORUMSTORE__V1__BATCH_SOURCE__BATCH_SOURCE_PEER:
		return "peer";
	default:
		return "unspecified";
	}
}

/*
 * Why `batch` is not the batch with `digest` on chain `chain_id`, or NULL
 * when it is: its BatchInfo names that digest, its transactions agree with
 * the counts of the BatchInfo, and they hash to the digest.
 */
static const char *
qsctl_batch_problem(const Quorumstore__V1__Batch *batch, const uint8_t *digest, uint32_t chain_id,
                    uint64_t bytes)
{
	const Quorumstore__V1__BatchInfo *info = batch->info;
	uint8_t computed[QS_DIGEST_BYTES];

	if (info->digest.len != QS_DIGEST_BYTES ||
	    memcmp(info->digest.data, digest, QS_DIGEST_BYTES) != 0)
		return "the batch returned has another digest than the one asked for";
	if (info->num_txns != batch->n_transactions)
		return "num_txns differs from the number of transactions returned";
	if (info->num_bytes != bytes)
		return "num_bytes differs from the size of the transactions returned";
	if (info->author.len != QS_PUBKEY_BYTES)
		return "the author is not a 32-byte key";
	if (qs_codec_batch_digest(chain_id, info->author.data, info->epoch, info->batch_id,
	                          batch->transactions, batch->n_transactions, computed) != 0)
		return "the digest of the transactions cannot be computed";
	if (memcmp(computed, digest, QS_DIGEST_BYTES) != 0)
		return "the transactions do not hash to the digest";
	return NULL;
}

static void
qsctl_print_batch(FILE *f, bool json, const Quorumstore__V1__GetBatchResponse *gb, bool verified,
                  uint64_t bytes, bool with_txns)
{
	const Quorumstore__V1__Batch *batch = gb->batch;
	const Quorumstore__V1__BatchInfo *info = batch->info;
	uint64_t min = 0, max = 0;
	char iso[QSCTL_ISO_LEN];

	for (size_t i = 0; i < batch->n_transactions; i++) {
		uint64_t len = batch->transactions[i].len;

		if (i == 0 || len < min)
			min = len;
		if (len > max)
			max = len;
	}
	if (json) {
		fputs("{\"info\":", f);
		qsctl_json_info(f, info);
		fprintf(
		    f,
		    ",\"source\":\"%s\",\"verified\":%s,\"txn_count\":%zu,\"txn_bytes\":%" PRIu64
		    ",\"txn_sizes\":[",
		    qsctl_source_name(gb->source), verified ? "true" : "false",
		    batch->n_transactions, bytes);
		for (size_t i = 0; i < batch->n_transactions; i++)
			fprintf(f, "%s%zu", i > 0 ? "," : "", batch->transactions[i].len);
		fputc(']', f);
		if (with_txns) {
			fputs(",\"transactions\":[", f);
			for (size_t i = 0; i < batch->n_transactions; i++) {
				if (i > 0)
					fputc(',', f);
				qsctl_json_hex(f, &batch->transactions[i]);
			}
			fputc(']', f);
		}
		fputs("}\n", f);
		return;
	}
	fputs("digest: ", f);
	qsctl_put_hex(f, info->digest.data, info->digest.len);
	fputs("\nauthor: ", f);
	qsctl_put_hex(f, info->author.data, info->author.len);
	fprintf(f,
	        "\nbatch_id: %" PRIu64 "\nepoch: %" PRIu64 "\nexpiration_us: %" PRIu64
	        "\nexpiration: %s\nnum_txns: %" PRIu32 "\nnum_bytes: %" PRIu64
	        "\ngas_bucket_start: %" PRIu64 "\nsource: %s\nverified: %s\ntxn_count: %zu\n"
	        "txn_bytes: %" PRIu64 "\ntxn_size_min: %" PRIu64 "\ntxn_size_max: %" PRIu64 "\n",
	        info->batch_id, info->epoch, info->expiration_us,
	        qsctl_iso_time(info->expiration_us, iso, sizeof(iso)) ? iso : "-", info->num_txns,
	        info->num_bytes, info->gas_bucket_start, qsctl_source_name(gb->source),
	        verified ? "true" : "false", batch->n_transactions, bytes, min, max);
	for (size_t i = 0; with_txns && i < batch->n_transactions; i++) {
		fprintf(f, "txn %zu %zu ", i, batch->transactions[i].len);
		qsctl_put_hex(f, batch->transactions[i].data, batch->transactions[i].len);
		fputc('\n', f);
	}
}

static int
qsctl_batch_option(void *ctx, int c, const char *arg, const char *name)
{
	bool *with_txns = ctx;

	*with_txns = true;
	return -1;
}

static int
qsctl_batch(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"txns", no_argument, NULL, QSCTL_OPT_TXNS},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct qsctl_syntax syntax = {.word = "show",
	                                           .shorts = "ho:",
	                                           .longs = opts,
	                                           .min_args = 1,
	                                           .max_args = 1,
	                                           .option = qsctl_batch_option};
	const Quorumstore__V1__GetBatchResponse *gb;
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	uint8_t digest[QS_DIGEST_BYTES];
	bool with_txns = false;
	const char *problem;
	uint64_t bytes;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, &with_txns, &line);
	if (rc >= 0)
		return rc;
	if (!qsctl_parse_hex("DIGEST", line.args[0], digest, sizeof(digest)))
		return EX_USAGE;

	rc = qsctl_session_open(&s, line.json);
	if (rc != 0)
		goto out;
	rc = qs_client_get_batch(s.client, digest, sizeof(digest), NULL, 0, qsctl_timeout_ms,
	                         &s.resp);
	rc = qsctl_rpc_result("GetBatch", rc, s.resp, QUORUMSTORE__V1__RESPONSE__BODY_GET_BATCH);
	if (rc != 0)
		goto out;
	gb = s.resp->get_batch;
	if (gb->batch == NULL || gb->batch->info == NULL) {
		fprintf(stderr, "qsctl: GetBatch: the response has no batch or no BatchInfo\n");
		rc = QSCTL_EXIT_RPC;
		goto out;
	}
	bytes = qsctl_batch_bytes(gb->batch);
	problem =
	    qsctl_batch_problem(gb->batch, digest, qs_client_server(s.client)->chain_id, bytes);
	qsctl_print_batch(s.out.f, line.json, gb, problem == NULL, bytes, with_txns);
	/* A batch that is not what was asked for is shown, and fails. */
	rc = qsctl_out_close(&s.out, 0);
	if (rc == 0 && problem != NULL) {
		fprintf(stderr, "qsctl: GetBatch: %s\n", problem);
		rc = QSCTL_EXIT_RPC;
	}
out:
	return qsctl_session_close(&s, rc);
}

/* ---- payload ---- */

/* The options of payload: GetPayload's arguments. */
struct qsctl_payload_opts {
	struct qs_client_payload_limits lim;
	ProtobufCBinaryData *exclude;
	uint8_t (*digests)[QS_DIGEST_BYTES]; /* what exclude[] points to */
	size_t n_exclude;
};

static int
qsctl_payload_option(void *ctx, int c, const char *arg, const char *name)
{
	struct qsctl_payload_opts *po = ctx;
	uint64_t *value;
	bool size;

	switch (c) {
	case QSCTL_OPT_EXCLUDE:
		if (po->n_exclude == QSCTL_MAX_DIGESTS) {
			fprintf(stderr, "qsctl: --exclude: at most %u digests\n",
			        QSCTL_MAX_DIGESTS);
			return EX_USAGE;
		}
		if (!qsctl_parse_hex("--exclude", arg, po->digests[po->n_exclude], QS_DIGEST_BYTES))
			return EX_USAGE;
		po->exclude[po->n_exclude].data = po->digests[po->n_exclude];
		po->exclude[po->n_exclude].len = QS_DIGEST_BYTES;
		po->n_exclude++;
		return -1;
	case QSCTL_OPT_NON_FULL:
	case QSCTL_OPT_FULL_ONLY:
		po->lim.return_non_full = c == QSCTL_OPT_NON_FULL;
		return -1;
	}
	value = c == QSCTL_OPT_MAX_TXNS          ? &po->lim.max_txns
	        : c == QSCTL_OPT_MAX_BYTES       ? &po->lim.max_bytes
	        : c == QSCTL_OPT_MAX_INLINE_TXNS ? &po->lim.max_inline_txns
	                                         : &po->lim.max_inline_bytes;
	size = c == QSCTL_OPT_MAX_BYTES || c == QSCTL_OPT_MAX_INLINE_BYTES;
	if (!qsctl_parse_u64(arg, 0, UINT64_MAX, size, value)) {
		fprintf(stderr, "qsctl: --%s: a number, 0 and up%s\n", name,
		        size ? " (KiB, MiB, GiB suffixes allowed)" : "");
		return EX_USAGE;
	}
	return -1;
}

static int
qsctl_payload(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"max-txns", required_argument, NULL, QSCTL_OPT_MAX_TXNS},
	    {"max-bytes", required_argument, NULL, QSCTL_OPT_MAX_BYTES},
	    {"max-inline-txns", required_argument, NULL, QSCTL_OPT_MAX_INLINE_TXNS},
	    {"max-inline-bytes", required_argument, NULL, QSCTL_OPT_MAX_INLINE_BYTES},
	    {"exclude", required_argument, NULL, QSCTL_OPT_EXCLUDE},
	    {"non-full", no_argument, NULL, QSCTL_OPT_NON_FULL},
	    {"full-only", no_argument, NULL, QSCTL_OPT_FULL_ONLY},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct qsctl_syntax syntax = {
	    .shorts = "ho:", .longs = opts, .option = qsctl_payload_option};
	struct qsctl_payload_opts po = {
	    .lim =
		{
		    .max_txns = QSCTL_PAYLOAD_MAX_TXNS,
		    .max_bytes = QSCTL_PAYLOAD_MAX_BYTES,
		    .max_inline_txns = 0,
		    .max_inline_bytes = 0,
		    .return_non_full = true,
		},
	};
	const Quorumstore__V1__GetPayloadResponse *gp;
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	uint64_t p_txns = 0, p_bytes = 0, i_txns = 0, i_bytes = 0;
	FILE *f;
	int rc;

	/* Each --exclude takes an argument: at most argc of them. */
	po.exclude = calloc((size_t)argc, sizeof(*po.exclude));
	po.digests = calloc((size_t)argc, sizeof(*po.digests));
	if (po.exclude == NULL || po.digests == NULL) {
		fprintf(stderr, "qsctl: out of memory\n");
		rc = EXIT_FAILURE;
		goto out;
	}
	rc = qsctl_parse(argc, argv, &syntax, &po, &line);
	if (rc >= 0)
		goto out;

	rc = qsctl_session_open(&s, line.json);
	if (rc != 0)
		goto out;
	rc = qs_client_get_payload(s.client, &po.lim, po.exclude, po.n_exclude, qsctl_timeout_ms,
	                           &s.resp);
	rc =
	    qsctl_rpc_result("GetPayload", rc, s.resp, QUORUMSTORE__V1__RESPONSE__BODY_GET_PAYLOAD);
	if (rc != 0)
		goto out;
	gp = s.resp->get_payload;
	for (size_t i = 0; i < gp->n_proofs; i++) {
		if (gp->proofs[i]->info == NULL) {
			fprintf(stderr, "qsctl: GetPayload: a proof without its BatchInfo\n");
			rc = QSCTL_EXIT_RPC;
			goto out;
		}
		p_txns += gp->proofs[i]->info->num_txns;
		p_bytes += gp->proofs[i]->info->num_bytes;
	}
	for (size_t i = 0; i < gp->n_inline_batches; i++) {
		const Quorumstore__V1__Batch *b = gp->inline_batches[i];

		if (b->info == NULL) {
			fprintf(stderr,
			        "qsctl: GetPayload: an inline batch without its BatchInfo\n");
			rc = QSCTL_EXIT_RPC;
			goto out;
		}
		i_txns += b->n_transactions;
		i_bytes += qsctl_batch_bytes(b);
	}

	f = s.out.f;
	if (line.json) {
		fputs("{\"proofs\":[", f);
		for (size_t i = 0; i < gp->n_proofs; i++) {
			if (i > 0)
				fputc(',', f);
			qsctl_json_proof(f, gp->proofs[i]);
		}
		fputs("],\"inline_batches\":[", f);
		for (size_t i = 0; i < gp->n_inline_batches; i++) {
			const Quorumstore__V1__Batch *b = gp->inline_batches[i];

			fputs(i > 0 ? ",{\"info\":" : "{\"info\":", f);
			qsctl_json_info(f, b->info);
			fprintf(f, ",\"txn_count\":%zu,\"txn_bytes\":%" PRIu64 "}",
			        b->n_transactions, qsctl_batch_bytes(b));
		}
		fprintf(f,
		        "],\"totals\":{\"batches\":%zu,\"num_txns\":%" PRIu64
		        ",\"num_bytes\":%" PRIu64 ",\"proof_batches\":%zu,\"proof_txns\":%" PRIu64
		        ",\"proof_bytes\":%" PRIu64
		        ",\"inline_batches\":%zu,\"inline_txns\":%" PRIu64
		        ",\"inline_bytes\":%" PRIu64 "}}\n",
		        gp->n_proofs + gp->n_inline_batches, p_txns + i_txns, p_bytes + i_bytes,
		        gp->n_proofs, p_txns, p_bytes, gp->n_inline_batches, i_txns, i_bytes);
	} else {
		qsctl_proof_header(f, "KIND");
		for (size_t i = 0; i < gp->n_proofs; i++) {
			const Quorumstore__V1__ProofOfStore *p = gp->proofs[i];

			qsctl_proof_row(f, "proof", p->info, &p->signer_bitmap, p->info->num_txns,
			                p->info->num_bytes);
		}
		for (size_t i = 0; i < gp->n_inline_batches; i++) {
			const Quorumstore__V1__Batch *b = gp->inline_batches[i];

			qsctl_proof_row(f, "inline", b->info, NULL, b->n_transactions,
			                qsctl_batch_bytes(b));
		}
		fprintf(f,
		        "proofs: %zu batches, %" PRIu64 " transactions, %" PRIu64 " bytes\n"
		        "inline: %zu batches, %" PRIu64 " transactions, %" PRIu64 " bytes\n"
		        "total: %zu batches, %" PRIu64 " transactions, %" PRIu64 " bytes\n",
		        gp->n_proofs, p_txns, p_bytes, gp->n_inline_batches, i_txns, i_bytes,
		        gp->n_proofs + gp->n_inline_batches, p_txns + i_txns, p_bytes + i_bytes);
	}
out:
	free(po.exclude);
	free(po.digests);
	return qsctl_session_close(&s, rc);
}

/* ---- commit ---- */

/* The option of commit: the block's timestamp. */
struct qsctl_commit_opts {
	uint64_t timestamp_us;
	bool have_timestamp;
};

static int
qsctl_commit_option(void *ctx, int c, const char *arg, const char *name)
{
	struct qsctl_commit_opts *co = ctx;

	if (!qsctl_parse_u64(arg, 0, UINT64_MAX, false, &co->timestamp_us)) {
		fprintf(stderr, "qsctl: --timestamp-us: microseconds since the Unix epoch\n");
		return EX_USAGE;
	}
	co->have_timestamp = true;
	return -1;
}

static int
qsctl_commit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timestamp-us", required_argument, NULL, QSCTL_OPT_TIMESTAMP},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct qsctl_syntax syntax = {.shorts = "ho:",
	                                           .longs = opts,
	                                           .min_args = 1,
	                                           .max_args = -1,
	                                           .option = qsctl_commit_option};
	struct qsctl_commit_opts co = {.have_timestamp = false};
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	ProtobufCBinaryData *list = NULL;
	uint8_t(*digests)[QS_DIGEST_BYTES] = NULL;
	char iso[QSCTL_ISO_LEN];
	size_t n;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, &co, &line);
	if (rc >= 0)
		return rc;
	n = (size_t)line.n_args;
	if (n > QSCTL_MAX_DIGESTS) {
		fprintf(stderr, "qsctl: at most %u digests\n", QSCTL_MAX_DIGESTS);
		return EX_USAGE;
	}
	list = calloc(n, sizeof(*list));
	digests = calloc(n, sizeof(*digests));
	if (list == NULL || digests == NULL) {
		fprintf(stderr, "qsctl: out of memory\n");
		rc = EXIT_FAILURE;
		goto out;
	}
	rc = EX_USAGE;
	for (size_t i = 0; i < n; i++) {
		if (!qsctl_parse_hex("DIGEST", line.args[i], digests[i], QS_DIGEST_BYTES))
			goto out;
		list[i].data = digests[i];
		list[i].len = QS_DIGEST_BYTES;
	}
	if (!co.have_timestamp)
		co.timestamp_us = qsctl_now_us();

	rc = qsctl_session_open(&s, line.json);
	if (rc != 0)
		goto out;
	rc = qs_client_notify_commit(s.client, co.timestamp_us, list, n, qsctl_timeout_ms, &s.resp);
	rc = qsctl_rpc_result("NotifyCommit", rc, s.resp,
	                      QUORUMSTORE__V1__RESPONSE__BODY_NOTIFY_COMMIT);
	if (rc != 0)
		goto out;
	if (line.json) {
		fputc('{', s.out.f);
		qsctl_json_time(s.out.f, "block_timestamp", co.timestamp_us);
		fprintf(s.out.f, ",\"digests\":%zu,\"proofs_removed\":%" PRIu32 "}\n", n,
		        s.resp->notify_commit->proofs_removed);
	} else {
		fprintf(s.out.f,
		        "block_timestamp_us: %" PRIu64 "\nblock_timestamp: %s\ndigests: %zu\n"
		        "proofs_removed: %" PRIu32 "\n",
		        co.timestamp_us,
		        qsctl_iso_time(co.timestamp_us, iso, sizeof(iso)) ? iso : "-", n,
		        s.resp->notify_commit->proofs_removed);
	}
out:
	free(list);
	free(digests);
	return qsctl_session_close(&s, rc);
}

/* ---- db check ---- */

struct qsctl_check {
	FILE *text;     /* text output: each problem is printed here at once */
	FILE *problems; /* JSON output: the entries of the problems array */
	char *buf;
	size_t len;
	uint64_t n_problems;
	uint64_t truncated; /* problems left out of the JSON array */
};

/* A key of batches, infos or proofs: expiration_us (be64) and digest. */
static bool
qsctl_check_keyed(const char *cf, size_t klen)
{
	return klen == 8 + QS_DIGEST_BYTES && (strcmp(cf, qs_store_cf_names[QS_CF_BATCHES]) == 0 ||
	                                       strcmp(cf, qs_store_cf_names[QS_CF_INFOS]) == 0 ||
	                                       strcmp(cf, qs_store_cf_names[QS_CF_PROOFS]) == 0);
}

static void
qsctl_check_problem(void *arg, const char *cf, const uint8_t *key, size_t klen, const char *what)
{
	struct qsctl_check *ck = arg;
	FILE *f = ck->text != NULL ? ck->text : ck->problems;
	bool keyed;

	cf = cf != NULL ? cf : "";
	what = what != NULL ? what : "";
	keyed = qsctl_check_keyed(cf, klen);
	ck->n_problems++;
	if (ck->text == NULL && ck->n_problems > QSCTL_CHECK_MAX_PROBLEMS) {
		ck->truncated++;
		return;
	}
	if (ck->text != NULL) {
		fprintf(f, "problem: cf=%s key=", cf);
		qsctl_put_hex(f, key, klen);
		if (keyed) {
			fprintf(f, " expiration_us=%" PRIu64 " digest=", qs_get_be64(key));
			qsctl_put_hex(f, key + 8, QS_DIGEST_BYTES);
		}
		fprintf(f, " what=%s\n", what);
		return;
	}
	fputs(ck->n_problems > 1 ? ",{\"cf\":" : "{\"cf\":", f);
	qsctl_json_string(f, cf);
	fputs(",\"key\":\"", f);
	qsctl_put_hex(f, key, klen);
	fputs("\",\"what\":", f);
	qsctl_json_string(f, what);
	if (keyed) {
		fprintf(f, ",\"expiration_us\":%" PRIu64 ",\"digest\":\"", qs_get_be64(key));
		qsctl_put_hex(f, key + 8, QS_DIGEST_BYTES);
		fputc('"', f);
	}
	fputc('}', f);
}

static int
qsctl_db(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct qsctl_syntax syntax = {
	    .word = "check", .shorts = "ho:", .longs = opts, .min_args = 1, .max_args = 1};
	struct qs_db_check_report rep;
	struct qsctl_check ck = {.text = NULL};
	struct qsctl_out out = {.f = NULL};
	struct qsctl_line line;
	char err[1024] = "", path[PATH_MAX];
	const char *dir;
	uint64_t bad;
	bool json;
	struct stat st;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, NULL, &line);
	if (rc >= 0)
		return rc;
	json = line.json;
	dir = line.args[0];

	/* Never let the check create a database where there was none. */
	if (stat(dir, &st) != 0) {
		fprintf(stderr, "qsctl: db check: %s: %s\n", dir, strerror(errno));
		return QSCTL_EXIT_NOCHECK;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "qsctl: db check: %s: not a directory\n", dir);
		return QSCTL_EXIT_NOCHECK;
	}
	if (qsctl_path(path, dir, "CURRENT") != 0)
		return QSCTL_EXIT_NOCHECK;
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "qsctl: db check: %s: not a qsd database (no CURRENT file)\n", dir);
		return QSCTL_EXIT_NOCHECK;
	}

	rc = qsctl_out_open(&out, json);
	if (rc != 0)
		return QSCTL_EXIT_NOCHECK;
	if (json) {
		ck.problems = open_memstream(&ck.buf, &ck.len);
		if (ck.problems == NULL) {
			fprintf(stderr, "qsctl: %s\n", strerror(errno));
			rc = QSCTL_EXIT_NOCHECK;
			goto out;
		}
	} else {
		ck.text = out.f;
	}
	memset(&rep, 0, sizeof(rep));
	rc = qs_store_check(dir, &rep, qsctl_check_problem, &ck, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "qsctl: db check: %s: %s\n", dir,
		        err[0] != '\0' ? err : qs_strerror(rc));
		rc = QSCTL_EXIT_NOCHECK;
		goto out;
	}
	bad = rep.bad_payloads + rep.bad_infos + rep.missing_payloads + rep.orphan_payloads +
	      rep.bad_proofs;
	rc = ck.n_problems > 0 || bad > 0 ? QSCTL_EXIT_PROBLEMS : 0;
	if (json) {
		if ((ferror(ck.problems) | fclose(ck.problems)) != 0) {
			ck.problems = NULL;
			fprintf(stderr, "qsctl: building the JSON output: out of memory\n");
			rc = QSCTL_EXIT_NOCHECK;
			goto out;
		}
		ck.problems = NULL;
		fputs("{\"dir\":", out.f);
		qsctl_json_string(out.f, dir);
		fprintf(out.f,
		        ",\"schema_version\":%" PRIu32 ",\"infos\":%" PRIu64 ",\"batches\":%" PRIu64
		        ",\"proofs\":%" PRIu64 ",\"committed\":%" PRIu64
		        ",\"payload_bytes\":%" PRIu64 ",\"bad_payloads\":%" PRIu64
		        ",\"bad_infos\":%" PRIu64 ",\"missing_payloads\":%" PRIu64
		        ",\"orphan_payloads\":%" PRIu64 ",\"bad_proofs\":%" PRIu64
		        ",\"problem_count\":%" PRIu64 ",\"problems\":[",
		        rep.schema_version, rep.infos, rep.batches, rep.proofs, rep.committed,
		        rep.payload_bytes, rep.bad_payloads, rep.bad_infos, rep.missing_payloads,
		        rep.orphan_payloads, rep.bad_proofs, ck.n_problems);
		fwrite(ck.buf, 1, ck.len, out.f);
		fprintf(out.f, "],\"problems_truncated\":%" PRIu64 ",\"clean\":%s}\n", ck.truncated,
		        rc == 0 ? "true" : "false");
	} else {
		fprintf(out.f,
		        "schema_version: %" PRIu32 "\ninfos: %" PRIu64 "\nbatches: %" PRIu64
		        "\nproofs: %" PRIu64 "\ncommitted: %" PRIu64 "\npayload_bytes: %" PRIu64
		        "\nbad_payloads: %" PRIu64 "\nbad_infos: %" PRIu64
		        "\nmissing_payloads: %" PRIu64 "\norphan_payloads: %" PRIu64
		        "\nbad_proofs: %" PRIu64 "\nproblems: %" PRIu64 "\nclean: %s\n",
		        rep.schema_version, rep.infos, rep.batches, rep.proofs, rep.committed,
		        rep.payload_bytes, rep.bad_payloads, rep.bad_infos, rep.missing_payloads,
		        rep.orphan_payloads, rep.bad_proofs, ck.n_problems,
		        rc == 0 ? "true" : "false");
	}
out:
	if (ck.problems != NULL)
		fclose(ck.problems);
	free(ck.buf);
	/* Problems found are a result: the report is printed, with exit 1. */
	if (qsctl_out_close(&out, rc == QSCTL_EXIT_NOCHECK ? rc : 0) != 0)
		return QSCTL_EXIT_NOCHECK;
	return rc;
}

/* The options of submit. */
struct qsctl_submit_opts {
	const char *file; /* -f */
	const char *key;  /* -k */
	size_t count;     /* -n */
	size_t bytes;     /* -b */
};

static int
qsctl_submit_option(void *ctx, int c, const char *arg, const char *name)
{
	struct qsctl_submit_opts *so = ctx;

	switch (c) {
	case 'f':
		so->file = arg;
		break;
	case 'n':
		if (!qsctl_parse_size(arg, QSCTL_SUBMIT_MAX_TXNS, &so->count)) {
			fprintf(stderr, "qsctl: -n: a count from 1 to %d\n", QSCTL_SUBMIT_MAX_TXNS);
			return EX_USAGE;
		}
		break;
	case 'b':
		if (!qsctl_parse_size(arg, QSCTL_SUBMIT_MAX_BYTES, &so->bytes)) {
			fprintf(stderr, "qsctl: -b: a size from 1 to %u\n", QSCTL_SUBMIT_MAX_BYTES);
			return EX_USAGE;
		}
		break;
	case 'k':
		so->key = arg;
		break;
	}
	return -1;
}

static int
qsctl_submit(int argc, char **argv)
{
	static const struct qsctl_syntax syntax = {.shorts = "+hf:n:b:k:o:",
	                                           .option = qsctl_submit_option};
	struct qsctl_submit_opts so = {.file = NULL};
	const Quorumstore__V1__SubmitBatchResponse *sb;
	const Quorumstore__V1__BatchInfo *info;
	struct qsctl_session s = {.client = NULL};
	struct qsctl_line line;
	ProtobufCBinaryData *txns = NULL;
	char digest[2 * 32 + 1] = "";
	uint8_t *data = NULL;
	size_t n_txns = 0, len = 0;
	int rc;

	rc = qsctl_parse(argc, argv, &syntax, &so, &line);
	if (rc >= 0)
		return rc;
	if ((so.file != NULL) == (so.count != 0 || so.bytes != 0) ||
	    (so.file == NULL && (so.count == 0 || so.bytes == 0)))
		return qsctl_usage_error(argv[0]);
	if (so.key != NULL && strlen(so.key) > QS_CLIENT_IDEMPOTENCY_KEY_MAX) {
		fprintf(stderr, "qsctl: -k: at most %d bytes\n", QS_CLIENT_IDEMPOTENCY_KEY_MAX);
		return EX_USAGE;
	}
	if (so.file == NULL && so.count > QSCTL_SUBMIT_MAX_BYTES / so.bytes) {
		fprintf(stderr, "qsctl: -n %zu -b %zu: over %u bytes in all\n", so.count, so.bytes,
		        QSCTL_SUBMIT_MAX_BYTES);
		return EX_USAGE;
	}

	rc = EXIT_FAILURE;
	if (so.file != NULL) {
		int err = qsctl_read_file(so.file, QSCTL_SUBMIT_MAX_BYTES, &data, &len);

		if (err == 0)
			err = qsctl_split_lines(data, len, &txns, &n_txns);
		if (err != 0) {
			fprintf(stderr, "qsctl: %s: %s\n", so.file,
			        err == QS_ELIMIT ? "over the size or line limit"
			                         : qs_strerror(err));
			goto out;
		}
		if (n_txns == 0) {
			fprintf(stderr, "qsctl: %s: no transactions (every line is empty)\n",
			        so.file);
			goto out;
		}
	} else {
		len = so.count * so.bytes;
		data = malloc(len);
		txns = calloc(so.count, sizeof(*txns));
		if (data == NULL || txns == NULL || RAND_bytes(data, (int)len) != 1) {
			fprintf(stderr, "qsctl: cannot make %zu random bytes\n", len);
			goto out;
		}
		for (size_t i = 0; i < so.count; i++) {
			txns[i].data = data + i * so.bytes;
			txns[i].len = so.bytes;
		}
		n_txns = so.count;
	}

	rc = qsctl_session_open(&s, line.json);
	if (rc != 0)
		goto out;
	rc = qs_client_submit(s.client, txns, n_txns, (const uint8_t *)so.key,
	                      so.key != NULL ? strlen(so.key) : 0, qsctl_timeout_ms, &s.resp);
	rc = qsctl_rpc_result("SubmitBatch", rc, s.resp,
	                      QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH);
	if (rc != 0)
		goto out;
	sb = s.resp->submit_batch;
	info = sb->info;
	if (info == NULL) {
		fprintf(stderr, "qsctl: SubmitBatch: the response has no BatchInfo\n");
		rc = QSCTL_EXIT_RPC;
		goto out;
	}
	if (line.json) {
		fputs("{\"info\":", s.out.f);
		qsctl_json_info(s.out.f, info);
		fprintf(s.out.f, ",\"duplicate\":%s}\n", sb->duplicate ? "true" : "false");
		goto out;
	}
	if (info->digest.len <= 32)
		qs_hex_encode(info->digest.data, info->digest.len, digest);
	fprintf(s.out.f,
	        "digest: %s\nbatch_id: %" PRIu64 "\nepoch: %" PRIu64 "\nexpiration_us: %" PRIu64
	        "\nnum_txns: %" PRIu32 "\nnum_bytes: %" PRIu64 "\nduplicate: %s\n",
	        digest, info->batch_id, info->epoch, info->expiration_us, info->num_txns,
	        info->num_bytes, sb->duplicate ? "true" : "false");
out:
	free(txns);
	free(data);
	return qsctl_session_close(&s, rc);
}

static const struct qsctl_cmd *
qsctl_find(const char *name)
{
	size_t i;

	for (i = 0; i < QSCTL_NCMDS; i++) {
		if (strcmp(qsctl_cmds[i].name, name) == 0)
			return &qsctl_cmds[i];
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	const struct qsctl_cmd *cmd;
	int status;
	int c;

	while ((c = getopt(argc, argv, "+hVs:t:")) != -1) {
		switch (c) {
		case 'h':
			qsctl_usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("qsctl %s\n", QS_VERSION);
			return EXIT_SUCCESS;
		case 's':
			qsctl_socket = optarg;
			break;
		case 't': {
			size_t ms;

			if (!qsctl_parse_size(optarg, INT32_MAX, &ms)) {
				fprintf(stderr, "qsctl: -t: milliseconds, 1 and up\n");
				return EX_USAGE;
			}
			qsctl_timeout_ms = (int)ms;
			break;
		}
		default:
			qsctl_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		qsctl_usage(stderr);
		return EX_USAGE;
	}
	cmd = qsctl_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "qsctl: unknown command '%s'\n", argv[optind]);
		qsctl_usage(stderr);
		return EX_USAGE;
	}
	status = cmd->run(argc - optind, argv + optind);

	/* A full disk or closed pipe on stdout is a failure, not silence. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "qsctl: writing output: %s\n", strerror(errno));
		status = EXIT_FAILURE;
	}
	return status;
}
