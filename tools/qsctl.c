/*
 * qsctl: the operator CLI for qsd.
 *
 *   qsctl keygen DIR     new network and signing keys in DIR
 *   qsctl pubkey FILE    hex public key of a PEM private key file
 *
 * Exit status: 0 success, 1 failure, 64 (EX_USAGE) bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/error.h"
#include "core/hex.h"
#include "daemon/keys.h"

#ifndef QS_VERSION
#define QS_VERSION "0.0.0-unknown"
#endif

#define QSCTL_HEX_KEY_LEN (2 * QS_KEYS_PUB_BYTES)

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

/* RPC subcommands (status, submit) go here once qsd's RPC client exists. */
static const struct qsctl_cmd qsctl_cmds[] = {
    {"keygen", "DIR",
     "create DIR/{network,signing}.key (0600) and .pub; print the public keys as YAML",
     qsctl_keygen},
    {"pubkey", "FILE", "print the hex public key of a PEM Ed25519 private key file", qsctl_pubkey},
};

#define QSCTL_NCMDS (sizeof(qsctl_cmds) / sizeof(qsctl_cmds[0]))

static void
qsctl_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: qsctl [-hV] COMMAND [ARGS]\n\n"
	           "  -h  show this help\n"
	           "  -V  show the version\n\n"
	           "commands:\n");
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

	while ((c = getopt(argc, argv, "+hV")) != -1) {
		switch (c) {
		case 'h':
			qsctl_usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("qsctl %s\n", QS_VERSION);
			return EXIT_SUCCESS;
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
