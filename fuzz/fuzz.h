/*
 * Fuzz targets (libFuzzer): each takes one input and feeds it through the
 * same decoding and checking code qsd runs on untrusted bytes. The build
 * under fuzz/ wraps each in LLVMFuzzerTestOneInput(); tests/check_fuzz_regress.c
 * calls them directly to replay fuzz/corpus/ and fuzz/regress/.
 *
 * Each returns 0. A broken property (a correctly built batch refused, a pull
 * over its limits, ...) abort()s with a message, as a crash would.
 */
#ifndef QS_FUZZ_FUZZ_H
#define QS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * byte 0: how to repair what the harness decodes (see fuzz_peer_frame.c);
 * the rest: a stream of peer frames (4-byte length, PeerMessage).
 */
int qs_fuzz_peer_frame(const uint8_t *data, size_t size);

/* A stream of RPC frames (4-byte length, Request). */
int qs_fuzz_rpc_request(const uint8_t *data, size_t size);

/* YAML text of a qsd.yaml; "@KEY@" stands for a readable 0600 key file. */
int qs_fuzz_config(const uint8_t *data, size_t size);

/* Abort with a message when `cond` is false: a property the input broke. */
#define QS_FUZZ_CHECK(cond, what)                                                                  \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, what); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
