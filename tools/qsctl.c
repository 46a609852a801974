/*
 * qsctl: the operator CLI for qsd.
 *
 *   qsctl keygen DIR     new network and signing keys in DIR
 *   qsctl pubkey FILE    hex public key of a PEM private key file
 *   qsctl [-s SOCKET] [-t MS] status [-o text|json]
 *                        GetStatus over the RPC socket
 *   qsctl [-s SOCKET] [-t MS] submit (-f FILE | -n COUNT -b BYTES) [-k KEY]
 *                        SubmitBatch over the RPC socket
 *
 * Exit status: 0 success, 1 failure (for status and submit: the RPC failed
 * or was answered with an error), 2 cannot connect to qsd's socket (or the
 * Hello was refused), 64 (EX_USAGE) bad command line.
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
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "client/qsclient.h"
#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"

#ifndef QS_VERSION
#define QS_VERSION "0.0.0-unknown"
#endif

#define QSCTL_HEX_KEY_LEN (2 * QS_KEYS_PUB_BYTES)

#define QSCTL_EXIT_RPC         1 /* the call failed or was answered with an error */
#define QSCTL_EXIT_CONNECT     2 /* cannot connect, or the Hello was refused */
#define QSCTL_TIMEOUT_MS       10000
#define QSCTL_SUBMIT_MAX_TXNS  100000
/* A submitted batch, transactions and framing: what the client sends at most. */
#define QSCTL_SUBMIT_MAX_BYTES QS_CLIENT_FRAME_MAX_BYTES

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

static const struct qsctl_cmd qsctl_cmds[] = {
    {"keygen", "DIR",
     "create DIR/{network,signing}.key (0600) and .pub; print the public keys as YAML",
     qsctl_keygen},
    {"pubkey", "FILE", "print the hex public key of a PEM Ed25519 private key file", qsctl_pubkey},
    {"status", "[-o text|json]",
     "ask qsd for its status (GetStatus): one \"field: value\" per line, or one JSON object",
     qsctl_status},
    {"submit", "(-f FILE | -n COUNT -b BYTES) [-k KEY]",
     "submit one batch (SubmitBatch) and print its BatchInfo and whether it is a duplicate.\n"
     "      -f FILE  one transaction per line of FILE (\"-\": stdin); the newline is not\n"
     "               part of it and empty lines are skipped\n"
     "      -n COUNT -b BYTES  COUNT transactions of BYTES random bytes each\n"
     "      -k KEY   idempotency key: the bytes of KEY (at most 64); a retry with the\n"
     "               same key returns the same batch",
     qsctl_submit},
};

#define QSCTL_NCMDS (sizeof(qsctl_cmds) / sizeof(qsctl_cmds[0]))

static void
qsctl_usage(FILE *f)
{
	size_t i;

	fprintf(f,
	        "usage: qsctl [-hV] [-s SOCKET] [-t MS] COMMAND [ARGS]\n\n"
	        "  -h         show this help\n"
	        "  -V         show the version\n"
	        "  -s SOCKET  qsd's RPC socket (default %s)\n"
	        "  -t MS      timeout of each RPC step in milliseconds (default %d)\n\n"
	        "exit status: 0 ok, 1 failure or RPC error, 2 cannot connect to qsd, 64 usage\n\n"
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

/*
 * Parse a subcommand's options (only -h) and require exactly `nargs`
 * operands. Returns -1 to go on, else the exit status to return.
 */
static int
qsctl_cmd_args(int argc, char **argv, int nargs)
{
	const struct qsctl_cmd *cmd = qsctl_find(argv[0]);
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+h")) != -1) {
		switch (c) {
		case 'h':
			qsctl_cmd_usage(stdout, cmd);
			return 0;
		default:
			qsctl_cmd_usage(stderr, cmd);
			return EX_USAGE;
		}
	}
	if (argc - optind != nargs) {
		qsctl_cmd_usage(stderr, cmd);
		return EX_USAGE;
	}
	return -1;
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

static const char *const qsctl_key_names[] = {"network", "signing"};

static int
qsctl_keygen(int argc, char **argv)
{
	char key_path[2][PATH_MAX], pub_path[2][PATH_MAX];
	char hex[2][QSCTL_HEX_KEY_LEN + 2];
	uint8_t pub[QS_KEYS_PUB_BYTES];
	bool created[2][2] = {{false}};
	const char *dir;
	struct stat st;
	int status = EXIT_FAILURE;
	int rc;
	int i, j;

	rc = qsctl_cmd_args(argc, argv, 1);
	if (rc >= 0)
		return rc;
	dir = argv[optind];

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
	char err[512];
	int rc;

	rc = qsctl_cmd_args(argc, argv, 1);
	if (rc >= 0)
		return rc;
	rc = qs_keys_load(argv[optind], &pkey, pub, err, sizeof(err));
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

static void
qsctl_json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
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
qsctl_print_scalars(const ProtobufCMessage *msg, bool json)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *sep = "";
	char value[128];

	if (json)
		putchar('{');
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = (const char *)msg + f->offset;
		const char *str = NULL;

		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		switch (f->type) {
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
			qsctl_enum_name(f, *(const int *)p, value, sizeof(value));
			str = value;
			break;
		default:
			continue;
		}
		if (!json) {
			printf("%s: %s\n", f->name, str != NULL ? str : value);
			continue;
		}
		printf("%s\"%s\":", sep, f->name);
		sep = ",";
		if (str != NULL)
			qsctl_json_string(str);
		else
			fputs(value, stdout);
	}
	if (json)
		puts("}");
}

static int
qsctl_status(int argc, char **argv)
{
	const struct qsctl_cmd *cmd = qsctl_find(argv[0]);
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *client = NULL;
	bool json = false;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+ho:")) != -1) {
		switch (c) {
		case 'h':
			qsctl_cmd_usage(stdout, cmd);
			return 0;
		case 'o':
			json = strcmp(optarg, "json") == 0;
			if (json || strcmp(optarg, "text") == 0)
				break;
			qsctl_cmd_usage(stderr, cmd);
			return EX_USAGE;
		default:
			qsctl_cmd_usage(stderr, cmd);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		qsctl_cmd_usage(stderr, cmd);
		return EX_USAGE;
	}
	rc = qsctl_connect(&client);
	if (rc != 0)
		return rc;
	rc = qs_client_status(client, qsctl_timeout_ms, &resp);
	rc = qsctl_rpc_result("GetStatus", rc, resp, QUORUMSTORE__V1__RESPONSE__BODY_GET_STATUS);
	if (rc == 0)
		qsctl_print_scalars(&resp->get_status->base, json);
	qs_client_response_free(resp);
	qs_client_close(client);
	return rc;
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

static int
qsctl_submit(int argc, char **argv)
{
	const struct qsctl_cmd *cmd = qsctl_find(argv[0]);
	const Quorumstore__V1__SubmitBatchResponse *sb;
	const Quorumstore__V1__BatchInfo *info;
	Quorumstore__V1__Response *resp = NULL;
	struct qs_client *client = NULL;
	ProtobufCBinaryData *txns = NULL;
	const char *file = NULL, *key = NULL;
	char digest[2 * 32 + 1] = "";
	uint8_t *data = NULL;
	size_t count = 0, bytes = 0, n_txns = 0, len = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+hf:n:b:k:")) != -1) {
		switch (c) {
		case 'h':
			qsctl_cmd_usage(stdout, cmd);
			return 0;
		case 'f':
			file = optarg;
			break;
		case 'n':
			if (!qsctl_parse_size(optarg, QSCTL_SUBMIT_MAX_TXNS, &count)) {
				fprintf(stderr, "qsctl: -n: a count from 1 to %d\n",
				        QSCTL_SUBMIT_MAX_TXNS);
				return EX_USAGE;
			}
			break;
		case 'b':
			if (!qsctl_parse_size(optarg, QSCTL_SUBMIT_MAX_BYTES, &bytes)) {
				fprintf(stderr, "qsctl: -b: a size from 1 to %u\n",
				        QSCTL_SUBMIT_MAX_BYTES);
				return EX_USAGE;
			}
			break;
		case 'k':
			key = optarg;
			break;
		default:
			qsctl_cmd_usage(stderr, cmd);
			return EX_USAGE;
		}
	}
	if (optind != argc || (file != NULL) == (count != 0 || bytes != 0) ||
	    (file == NULL && (count == 0 || bytes == 0))) {
		qsctl_cmd_usage(stderr, cmd);
		return EX_USAGE;
	}
	if (key != NULL && strlen(key) > QS_CLIENT_IDEMPOTENCY_KEY_MAX) {
		fprintf(stderr, "qsctl: -k: at most %d bytes\n", QS_CLIENT_IDEMPOTENCY_KEY_MAX);
		return EX_USAGE;
	}
	if (file == NULL && count > QSCTL_SUBMIT_MAX_BYTES / bytes) {
		fprintf(stderr, "qsctl: -n %zu -b %zu: over %u bytes in all\n", count, bytes,
		        QSCTL_SUBMIT_MAX_BYTES);
		return EX_USAGE;
	}

	rc = EXIT_FAILURE;
	if (file != NULL) {
		int err = qsctl_read_file(file, QSCTL_SUBMIT_MAX_BYTES, &data, &len);

		if (err == 0)
			err = qsctl_split_lines(data, len, &txns, &n_txns);
		if (err != 0) {
			fprintf(stderr, "qsctl: %s: %s\n", file,
			        err == QS_ELIMIT ? "over the size or line limit"
			                         : qs_strerror(err));
			goto out;
		}
		if (n_txns == 0) {
			fprintf(stderr, "qsctl: %s: no transactions (every line is empty)\n", file);
			goto out;
		}
	} else {
		len = count * bytes;
		data = malloc(len);
		txns = calloc(count, sizeof(*txns));
		if (data == NULL || txns == NULL || RAND_bytes(data, (int)len) != 1) {
			fprintf(stderr, "qsctl: cannot make %zu random bytes\n", len);
			goto out;
		}
		for (size_t i = 0; i < count; i++) {
			txns[i].data = data + i * bytes;
			txns[i].len = bytes;
		}
		n_txns = count;
	}

	rc = qsctl_connect(&client);
	if (rc != 0)
		goto out;
	rc = qs_client_submit(client, txns, n_txns, (const uint8_t *)key,
	                      key != NULL ? strlen(key) : 0, qsctl_timeout_ms, &resp);
	rc =
	    qsctl_rpc_result("SubmitBatch", rc, resp, QUORUMSTORE__V1__RESPONSE__BODY_SUBMIT_BATCH);
	if (rc != 0)
		goto out;
	sb = resp->submit_batch;
	info = sb->info;
	if (info == NULL) {
		fprintf(stderr, "qsctl: SubmitBatch: the response has no BatchInfo\n");
		rc = QSCTL_EXIT_RPC;
		goto out;
	}
	if (info->digest.len <= 32)
		qs_hex_encode(info->digest.data, info->digest.len, digest);
	printf("digest: %s\nbatch_id: %" PRIu64 "\nepoch: %" PRIu64 "\nexpiration_us: %" PRIu64
	       "\nnum_txns: %" PRIu32 "\nnum_bytes: %" PRIu64 "\nduplicate: %s\n",
	       digest, info->batch_id, info->epoch, info->expiration_us, info->num_txns,
	       info->num_bytes, sb->duplicate ? "true" : "false");
out:
	qs_client_response_free(resp);
	qs_client_close(client);
	free(txns);
	free(data);
	return rc;
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
