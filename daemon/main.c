/* qsd: the quorum-store daemon. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include <yaml.h>

#include "config/config.h"
#include "daemon/daemon.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: qsd [-t] -c FILE\n"
	           "       qsd -V\n"
	           "  -c FILE  configuration file (qsd.yaml(5))\n"
	           "  -t       check the configuration and key files, then exit\n"
	           "           (0 when valid, 78 with the error otherwise)\n"
	           "  -V       print the versions of qsd and its libraries\n"
	           "  -h       this help\n");
}

/*
 * Frames, payload copies and decoded batches of 64 KiB and more are made and
 * freed at the ingest rate. With glibc's defaults the freed top of the heap
 * goes back to the kernel after a burst and the next frames fault their
 * pages in again; keeping up to QS_MALLOC_TRIM_BYTES of it, and serving
 * blocks below QS_MALLOC_MMAP_BYTES from the heap, takes those faults off
 * the event loop. The kept memory is at most what was in use a moment
 * before, so the RSS bound under overload (docs/BENCHMARKS.md) still holds.
 */
#define QS_MALLOC_TRIM_BYTES (64 << 20)
#define QS_MALLOC_MMAP_BYTES (4 << 20)

static void
print_versions(void)
{
	printf("qsd %s\n", QS_VERSION);
	printf("rocksdb %s\n", QS_ROCKSDB_VERSION);
	printf("libevent %s\n", event_get_version());
	printf("openssl %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	printf("protobuf-c %s\n", protobuf_c_version());
	printf("libyaml %s\n", yaml_get_version_string());
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	int test_only = 0;
	struct qs_config *cfg = NULL;
	char err[QS_CONFIG_ERR_MAX + 512] = "";
	int self = -1;
	int c, rc;

	mallopt(M_TRIM_THRESHOLD, QS_MALLOC_TRIM_BYTES);
	mallopt(M_MMAP_THRESHOLD, QS_MALLOC_MMAP_BYTES);
	while ((c = getopt(argc, argv, "c:tVh")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'V':
			print_versions();
			return QS_EXIT_OK;
		case 'h':
			usage(stdout);
			return QS_EXIT_OK;
		default:
			usage(stderr);
			return QS_EXIT_USAGE;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return QS_EXIT_USAGE;
	}
	if (qs_config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "qsd: %s\n", err);
		return QS_EXIT_CONFIG;
	}
	if (test_only) {
		rc = qs_daemon_check_identity(cfg, &self, err, sizeof(err));
		if (rc)
			fprintf(stderr, "qsd: %s\n", err);
		else
			printf("qsd: %s: configuration is valid (validator %s)\n", path,
			       cfg->validators[self].name);
		qs_config_free(cfg);
		return rc ? QS_EXIT_CONFIG : QS_EXIT_OK;
	}
	rc = qs_daemon_run(cfg);
	qs_config_free(cfg);
	return rc;
}
