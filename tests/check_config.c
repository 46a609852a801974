/*
 * Unit tests of config/: the option table, every error class with its exact
 * FILE:LINE:COLUMN: KEY: prefix, key file permissions and the example file.
 *
 * Each test runs in its own forked child inside a fresh directory holding the
 * key files nk.key and sk.key (mode 0600), so configs name them by relative
 * paths. Those directories live in one made by main(), which removes it even
 * when a failed test skipped its teardown.
 */
#include "config/config.h"
#include "core/error.h"
#include "tests/lib/tmpdir.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define K1 "0000000000000000000000000000000000000000000000000000000000000001"
#define K2 "0000000000000000000000000000000000000000000000000000000000000002"
#define K3 "0000000000000000000000000000000000000000000000000000000000000003"
#define K4 "0000000000000000000000000000000000000000000000000000000000000004"
#define K5 "0000000000000000000000000000000000000000000000000000000000000005"
#define KA "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A"

/* clang-format off */
/* A minimal valid config; tests append lines from line 13 on. */
#define BASE                                      \
	"chain_id: 7\n"                  /*  1 */ \
	"epoch: 3\n"                     /*  2 */ \
	"listen: 127.0.0.1:7001\n"       /*  3 */ \
	"data_dir: data\n"               /*  4 */ \
	"network_key: nk.key\n"          /*  5 */ \
	"signing_key: sk.key\n"          /*  6 */ \
	"validators:\n"                  /*  7 */ \
	"  - name: v0\n"                 /*  8 */ \
	"    address: 127.0.0.1:7001\n"  /*  9 */ \
	"    network_key: " K1 "\n"      /* 10 */ \
	"    signing_key: " K2 "\n"      /* 11 */ \
	"    voting_power: 1\n"          /* 12 */

/* A second validator, lines 13 to 17 after BASE. */
/* BASE's first six lines: no validators. */
#define HEAD                                                                              \
	"chain_id: 7\nepoch: 3\nlisten: 127.0.0.1:7001\ndata_dir: data\nnetwork_key: nk.key\n" \
	"signing_key: sk.key\n"

#define V1(name, addr, nk, sk, power)            \
	"  - name: " name "\n"           /* 13 */ \
	"    address: " addr "\n"        /* 14 */ \
	"    network_key: " nk "\n"      /* 15 */ \
	"    signing_key: " sk "\n"      /* 16 */ \
	"    voting_power: " power "\n"  /* 17 */
/* clang-format on */

static char basedir[256];
static char tmpdir[320];
static char srcdir[PATH_MAX];
static char errbuf[QS_CONFIG_ERR_MAX];
static char text[1 << 16];

static void
write_file(const char *name, const char *content, mode_t mode)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t-XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(chdir(tmpdir), 0);
	write_file("nk.key", "network\n", 0600);
	write_file("sk.key", "signing\n", 0600);
}

static void
teardown(void)
{
	if (chdir(srcdir) != 0)
		perror("chdir");
	qs_test_rmtree(tmpdir);
}

static int
parse(const char *yaml, struct qs_config **cfg)
{
	errbuf[0] = '\0';
	return qs_config_parse("t.yaml", yaml, strlen(yaml), cfg, errbuf, sizeof(errbuf));
}

static struct qs_config *
parse_ok(const char *yaml)
{
	struct qs_config *cfg = NULL;
	int rc = parse(yaml, &cfg);

	ck_assert_msg(rc == 0, "parse failed (%d): %s", rc, errbuf);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

static void
assert_prefix(const char *prefix)
{
	ck_assert_msg(!strncmp(errbuf, prefix, strlen(prefix)),
	              "error \"%s\" does not start with \"%s\"", errbuf, prefix);
}

/* The parse fails with a message starting with `prefix` and holding `needle`. */
static void
expect_error(const char *yaml, const char *prefix, const char *needle)
{
	struct qs_config *cfg = NULL;
	int rc = parse(yaml, &cfg);

	ck_assert_msg(rc == QS_ECONFIG, "rc %d for:\n%s", rc, yaml);
	ck_assert_ptr_null(cfg);
	assert_prefix(prefix);
	if (needle)
		ck_assert_msg(strstr(errbuf, needle), "error \"%s\" lacks \"%s\"", errbuf, needle);
	ck_assert_ptr_null(strchr(errbuf, '\n'));
}

/* BASE with the line starting "key:" replaced by `line` (NULL: dropped), plus `tail`. */
static const char *
base_with(const char *key, const char *line, const char *tail)
{
	const char *s = BASE;
	size_t n = 0, klen = key ? strlen(key) : 0;
	const char *nl;

	while (*s) {
		nl = strchr(s, '\n') + 1;
		if (key && !strncmp(s, key, klen) && s[klen] == ':') {
			if (line)
				n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\n", line);
		} else {
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%.*s", (int)(nl - s), s);
		}
		s = nl;
	}
	snprintf(text + n, sizeof(text) - n, "%s", tail ? tail : "");
	ck_assert_uint_lt(strlen(text), sizeof(text) - 1);
	return text;
}

START_TEST(valid_full_config_sets_every_field)
{
	static const uint8_t k1[QS_KEY_BYTES] = {[31] = 1};
	static const uint8_t ka0 = 0xd7, ka31 = 0x1a;
	struct qs_config *cfg =
	    parse_ok("# every key\n"
	             "chain_id: 4294967295\n"
	             "epoch: 18446744073709551615\n"
	             "listen: '[::1]:7001'\n"
	             "data_dir: /var/lib/qsd-test\n"
	             "network_key: nk.key\n"
	             "signing_key: \"sk.key\"\n"
	             "log_level: debug\n"
	             "max_batch_lifetime_ms: 120000\n"
	             "max_clock_skew_ms: 0\n"
	             "rpc:\n"
	             "  socket: /run/qsd-test/rpc.sock\n"
	             "  allowed_uids: [0, 998, 4294967294]\n"
	             "metrics:\n"
	             "  listen: 127.0.0.1:9999\n"
	             "limits:\n"
	             "  batch_max_txns: 100\n"
	             "  batch_max_bytes: 2097152\n"
	             "  msg_max_batches: 10\n"
	             "  msg_max_bytes: 8388608\n"
	             "  frame_max_bytes: 8454144\n"
	             "quotas:\n"
	             "  author_mem_bytes: 1000\n"
	             "  author_mem_batches: 1001\n"
	             "  author_disk_bytes: 1002\n"
	             "  author_disk_batches: 1003\n"
	             "  author_proofs: 1004\n"
	             "storage:\n"
	             "  submit_queue_bytes: 16777216\n"
	             "  group_max_batches: 64\n"
	             "  group_max_bytes: 4194304\n"
	             "  free_space_watermark_bytes: 0\n"
	             "  db_write_buffer_bytes: 2097152\n"
	             "  db_block_cache_bytes: 3145728\n"
	             "  db_max_wal_bytes: 4194304\n"
	             "validators:\n"
	             "  - name: v0\n"
	             "    address: 127.0.0.1:7001\n"
	             "    network_key: " K1 "\n"
	             "    signing_key: " K2 "\n"
	             "    voting_power: 3\n"
	             "  - {name: v-1.x_Y, address: '[::1]:7002', network_key: " KA
	             ", signing_key: " K4 ", voting_power: 4611686018427387900}\n");

	ck_assert_str_eq(cfg->path, "t.yaml");
	ck_assert_uint_eq(cfg->chain_id, 4294967295u);
	ck_assert_uint_eq(cfg->epoch, UINT64_MAX);
	ck_assert_str_eq(cfg->listen, "[::1]:7001");
	ck_assert_str_eq(cfg->data_dir, "/var/lib/qsd-test");
	ck_assert_str_eq(cfg->network_key_file, "nk.key");
	ck_assert_str_eq(cfg->signing_key_file, "sk.key");
	ck_assert_int_eq(cfg->log_level, QS_LOG_DEBUG);
	ck_assert_uint_eq(cfg->max_batch_lifetime_us, 120000000u);
	ck_assert_uint_eq(cfg->max_clock_skew_us, 0);
	ck_assert_str_eq(cfg->rpc_socket, "/run/qsd-test/rpc.sock");
	ck_assert_uint_eq(cfg->n_allowed_uids, 3);
	ck_assert_uint_eq(cfg->allowed_uids[0], 0);
	ck_assert_uint_eq(cfg->allowed_uids[1], 998);
	ck_assert_uint_eq(cfg->allowed_uids[2], 4294967294u);
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9999");
	ck_assert_uint_eq(cfg->limits.batch_max_txns, 100);
	ck_assert_uint_eq(cfg->limits.batch_max_bytes, 2097152);
	ck_assert_uint_eq(cfg->limits.msg_max_batches, 10);
	ck_assert_uint_eq(cfg->limits.msg_max_bytes, 8388608);
	ck_assert_uint_eq(cfg->limits.frame_max_bytes, 8454144);
	ck_assert_uint_eq(cfg->quotas.author_mem_bytes, 1000);
	ck_assert_uint_eq(cfg->quotas.author_mem_batches, 1001);
	ck_assert_uint_eq(cfg->quotas.author_disk_bytes, 1002);
	ck_assert_uint_eq(cfg->quotas.author_disk_batches, 1003);
	ck_assert_uint_eq(cfg->quotas.author_proofs, 1004);
	ck_assert_uint_eq(cfg->submit_queue_bytes, 16777216);
	ck_assert_uint_eq(cfg->group_max_batches, 64);
	ck_assert_uint_eq(cfg->group_max_bytes, 4194304);
	ck_assert_uint_eq(cfg->free_space_watermark_bytes, 0);
	ck_assert_uint_eq(cfg->db_write_buffer_bytes, 2097152);
	ck_assert_uint_eq(cfg->db_block_cache_bytes, 3145728);
	ck_assert_uint_eq(cfg->db_max_wal_bytes, 4194304);
	ck_assert_uint_eq(cfg->n_validators, 2);
	ck_assert_str_eq(cfg->validators[0].name, "v0");
	ck_assert_str_eq(cfg->validators[0].address, "127.0.0.1:7001");
	ck_assert_mem_eq(cfg->validators[0].network_key, k1, QS_KEY_BYTES);
	ck_assert_uint_eq(cfg->validators[0].signing_key[31], 2);
	ck_assert_uint_eq(cfg->validators[0].voting_power, 3);
	ck_assert_str_eq(cfg->validators[1].name, "v-1.x_Y");
	ck_assert_str_eq(cfg->validators[1].address, "[::1]:7002");
	ck_assert_uint_eq(cfg->validators[1].network_key[0], ka0);
	ck_assert_uint_eq(cfg->validators[1].network_key[31], ka31);
	ck_assert_uint_eq(cfg->validators[1].signing_key[31], 4);
	ck_assert_uint_eq(cfg->validators[1].voting_power, 4611686018427387900u);
	qs_config_free(cfg);
}
END_TEST

START_TEST(defaults_apply_when_optional_keys_absent)
{
	struct qs_config *cfg = parse_ok(BASE);

	ck_assert_uint_eq(cfg->chain_id, 7);
	ck_assert_uint_eq(cfg->epoch, 3);
	ck_assert_int_eq(cfg->log_level, QS_LOG_INFO);
	ck_assert_uint_eq(cfg->max_batch_lifetime_us, 60000000u);
	ck_assert_uint_eq(cfg->max_clock_skew_us, 5000000u);
	ck_assert_str_eq(cfg->rpc_socket, "/run/qsd/rpc.sock");
	ck_assert_uint_eq(cfg->n_allowed_uids, 0);
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
	ck_assert_uint_eq(cfg->limits.batch_max_txns, 2000);
	ck_assert_uint_eq(cfg->limits.batch_max_bytes, 1048576);
	ck_assert_uint_eq(cfg->limits.msg_max_batches, 20);
	ck_assert_uint_eq(cfg->limits.msg_max_bytes, 4194304);
	ck_assert_uint_eq(cfg->limits.frame_max_bytes, 4259840);
	ck_assert_uint_eq(cfg->quotas.author_mem_bytes, 67108864);
	ck_assert_uint_eq(cfg->quotas.author_mem_batches, 1000);
	ck_assert_uint_eq(cfg->quotas.author_disk_bytes, 4294967296u);
	ck_assert_uint_eq(cfg->quotas.author_disk_batches, 100000);
	ck_assert_uint_eq(cfg->quotas.author_proofs, 10000);
	ck_assert_uint_eq(cfg->submit_queue_bytes, 67108864);
	ck_assert_uint_eq(cfg->group_max_batches, 256);
	ck_assert_uint_eq(cfg->group_max_bytes, 33554432);
	ck_assert_uint_eq(cfg->free_space_watermark_bytes, 268435456);
	ck_assert_uint_eq(cfg->db_write_buffer_bytes, 67108864);
	ck_assert_uint_eq(cfg->db_block_cache_bytes, 33554432);
	ck_assert_uint_eq(cfg->db_max_wal_bytes, 268435456);
	ck_assert_uint_eq(cfg->n_validators, 1);
	qs_config_free(cfg);
}
END_TEST

START_TEST(empty_sections_keep_defaults)
{
	struct qs_config *cfg = parse_ok(BASE "limits: {}\nrpc:\n  allowed_uids: []\n");

	ck_assert_uint_eq(cfg->limits.batch_max_txns, 2000);
	ck_assert_uint_eq(cfg->n_allowed_uids, 0);
	qs_config_free(cfg);
}
END_TEST

START_TEST(unknown_key_names_line_and_column)
{
	expect_error(BASE "bogus: 1\n", "t.yaml:13:1: bogus: unknown key", NULL);
	expect_error("# lead\n  chain_idd: 1\n", "t.yaml:2:3: chain_idd: unknown key", NULL);
}
END_TEST

START_TEST(unknown_nested_key_names_dotted_path)
{
	expect_error(BASE "limits:\n  batch_max_txns: 5\n  batch_max_txn: 5\n",
	             "t.yaml:15:3: limits.batch_max_txn: unknown key", NULL);
	expect_error(BASE "rpc: {socket: /x, sockets: /y}\n",
	             "t.yaml:13:19: rpc.sockets: unknown key", NULL);
}
END_TEST

START_TEST(unknown_validator_key_names_index)
{
	expect_error(BASE V1("v1", "127.0.0.1:2", K3, K4, "1") "    weight: 2\n",
	             "t.yaml:18:5: validators[1].weight: unknown key", NULL);
}
END_TEST

START_TEST(scalar_where_mapping_expected_is_wrong_type)
{
	expect_error(BASE "limits: 5\n", "t.yaml:13:9: limits: wrong type",
	             "expected a mapping, got a scalar");
	/* An empty value is marked just after its key's colon. */
	expect_error(BASE "rpc:\n", "t.yaml:13:5: rpc: wrong type",
	             "expected a mapping, got an empty value");
	expect_error(HEAD "validators: v0\n", "t.yaml:7:13: validators: wrong type",
	             "expected a sequence");
	expect_error(HEAD "validators:\n  - v0\n", "t.yaml:8:5: validators[0]: wrong type",
	             "expected a mapping");
	expect_error("- chain_id: 1\n", "t.yaml:1:1: (document): wrong type",
	             "expected a mapping at the top level, got a sequence");
}
END_TEST

START_TEST(mapping_where_scalar_expected_is_wrong_type)
{
	expect_error(BASE "max_clock_skew_ms: {a: 1}\n",
	             "t.yaml:13:20: max_clock_skew_ms: wrong type",
	             "expected an integer, got a mapping");
	expect_error(base_with("data_dir", "data_dir: [a, b]", NULL),
	             "t.yaml:4:11: data_dir: wrong type", "expected a string, got a sequence");
	expect_error(BASE "log_level: {a: 1}\n", "t.yaml:13:12: log_level: wrong type", NULL);
	expect_error(HEAD "validators:\n  - name: v0\n    address: 127.0.0.1:7001\n"
	                  "    network_key: [" K1 "]\n",
	             "t.yaml:10:18: validators[0].network_key: wrong type", NULL);
}
END_TEST

START_TEST(non_integer_is_wrong_type)
{
	static const char *const bad[] = {
	    "1.5",   "-1",    "+1",  "0x10", "012",  "\"5\"", "'5'", "12abc",
	    "1_000", "5 MiB", "1e3", "~",    "true", ".inf",  "0o7", "1,000",
	};
	char line[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "max_clock_skew_ms: %s\n", bad[i]);
		expect_error(base_with(NULL, NULL, line),
		             "t.yaml:13:20: max_clock_skew_ms: wrong type", NULL);
	}
	expect_error(base_with("epoch", "epoch: -1", NULL), "t.yaml:2:8: epoch: wrong type",
	             "got '-1'");
	expect_error(base_with("epoch", "epoch:", NULL), "t.yaml:2:7: epoch: wrong type",
	             "got an empty value");
}
END_TEST

START_TEST(integer_overflow_is_out_of_range)
{
	expect_error(base_with("epoch", "epoch: 18446744073709551616", NULL),
	             "t.yaml:2:8: epoch: out of range", "must be at least 1");
	expect_error(base_with("chain_id", "chain_id: 4294967296", NULL),
	             "t.yaml:1:11: chain_id: out of range", "between 1 and 4294967295");
	expect_error(BASE "quotas:\n  author_mem_bytes: 99999999999999999999999999 TiB\n",
	             "t.yaml:14:21: quotas.author_mem_bytes: out of range", NULL);
}
END_TEST

START_TEST(out_of_range_value_names_allowed_range)
{
	expect_error(
	    BASE "limits:\n  batch_max_txns: 0\n",
	    "t.yaml:14:19: limits.batch_max_txns: out of range: must be between 1 and 1000000",
	    "got '0'");
	expect_error(BASE "max_batch_lifetime_ms: 999\n",
	             "t.yaml:13:24: max_batch_lifetime_ms: out of range: must be between 1000 and "
	             "86400000 milliseconds",
	             NULL);
	expect_error(BASE "limits:\n  batch_max_bytes: 65MiB\n",
	             "t.yaml:14:20: limits.batch_max_bytes: out of range: must be between 1 and "
	             "67108864 (64 MiB)",
	             NULL);
	expect_error(base_with("chain_id", "chain_id: 0", NULL),
	             "t.yaml:1:11: chain_id: out of range", NULL);
	expect_error(BASE "storage:\n  group_max_batches: 65537\n",
	             "t.yaml:14:22: storage.group_max_batches: out of range", NULL);
}
END_TEST

START_TEST(duplicate_key_names_both_lines)
{
	expect_error(BASE "epoch: 4\n",
	             "t.yaml:13:1: epoch: duplicate key (first at line 2, column 1)", NULL);
	expect_error(
	    BASE "limits:\n  msg_max_batches: 5\n  msg_max_batches: 6\n",
	    "t.yaml:15:3: limits.msg_max_batches: duplicate key (first at line 14, column 3)",
	    NULL);
	expect_error(BASE "    name: v9\n",
	             "t.yaml:13:5: validators[0].name: duplicate key (first at line 8, column 5)",
	             NULL);
}
END_TEST

START_TEST(duplicate_section_names_both_lines)
{
	expect_error(BASE "limits:\n  batch_max_txns: 5\nlimits:\n  msg_max_batches: 5\n",
	             "t.yaml:15:1: limits: duplicate key (first at line 13, column 1)", NULL);
}
END_TEST

START_TEST(missing_required_key_points_at_mapping)
{
	expect_error(base_with("epoch", NULL, NULL), "t.yaml:1:1: epoch: missing required key",
	             NULL);
	/* The top-level mapping starts at its first key, after the comment. */
	expect_error("# comment\n\nchain_id: 1\n", "t.yaml:3:1: epoch: missing required key", NULL);
	expect_error(HEAD, "t.yaml:1:1: validators: missing required key", NULL);
}
END_TEST

START_TEST(missing_required_validator_key_points_at_entry)
{
	expect_error(base_with("    voting_power", NULL, NULL),
	             "t.yaml:8:5: validators[0].voting_power: missing required key", NULL);
	expect_error(BASE "  - {name: v1, address: '127.0.0.1:1', network_key: " K3 "}\n",
	             "t.yaml:13:5: validators[1].signing_key: missing required key", NULL);
}
END_TEST

START_TEST(yaml_syntax_error_reports_libyaml_mark)
{
	expect_error(BASE "listen2: a: b\n",
	             "t.yaml:13:11: (document): syntax error: mapping values are not allowed",
	             NULL);
	expect_error(BASE "limits: [1, 2\n",
	             "t.yaml:14:1: limits[2]: syntax error: did not find expected",
	             "(while parsing a flow sequence at line 13, column 9)");
	expect_error(BASE " bad: 1\n",
	             "t.yaml:13:2: (document): syntax error: did not find expected key", NULL);
	expect_error(BASE "data_dir: \"open\n", "t.yaml:14:1: data_dir: syntax error",
	             "while scanning a quoted scalar at line 13, column 11");
}
END_TEST

START_TEST(invalid_utf8_reports_position)
{
	/* libyaml points at the octet that breaks the sequence: the newline. */
	expect_error(BASE "data_dir: caf\xc3\n",
	             "t.yaml:13:15: (document): syntax error: invalid trailing UTF-8 octet", NULL);
	expect_error("chain_id: 1\nx: \xff\n",
	             "t.yaml:2:4: (document): syntax error: invalid leading UTF-8 octet", NULL);
}
END_TEST

START_TEST(nul_byte_in_input_is_refused)
{
	static const char yaml[] = "chain_id: 1\nx\0: 1\n";
	struct qs_config *cfg = NULL;
	int rc = qs_config_parse("t.yaml", yaml, sizeof(yaml) - 1, &cfg, errbuf, sizeof(errbuf));

	ck_assert_int_eq(rc, QS_ECONFIG);
	ck_assert_ptr_null(cfg);
	assert_prefix("t.yaml:2:2: (document): syntax error: control characters are not allowed");
}
END_TEST

START_TEST(bad_hex_key_is_refused)
{
	expect_error(base_with("    network_key", "    network_key: 0011", NULL),
	             "t.yaml:10:18: validators[0].network_key: bad key: expected 64 hex digits",
	             "got 4");
	expect_error(base_with("    signing_key",
	                       "    signing_key: "
	                       "000000000000000000000000000000000000000000000000000000000000000g",
	                       NULL),
	             "t.yaml:11:18: validators[0].signing_key: bad key: 'g' at character 64", NULL);
	expect_error(base_with("    signing_key", "    signing_key: 0x" K2, NULL),
	             "t.yaml:11:18: validators[0].signing_key: bad key", "got 66");
}
END_TEST

START_TEST(duplicate_validator_name_is_refused)
{
	expect_error(BASE V1("v0", "127.0.0.1:2", K3, K4, "1"),
	             "t.yaml:13:11: validators[1].name: duplicate validator name "
	             "(first at validators[0], line 8)",
	             NULL);
}
END_TEST

START_TEST(duplicate_validator_keys_are_refused)
{
	expect_error(BASE V1("v1", "127.0.0.1:2", K1, K4, "1"),
	             "t.yaml:15:18: validators[1].network_key: duplicate validator network_key "
	             "(first at validators[0], line 10)",
	             NULL);
	/* Case does not make a key different. */
	expect_error(
	    base_with("    signing_key", "    signing_key: " KA,
	              V1("v1", "127.0.0.1:2", K3,
	                 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "1")),
	    "t.yaml:16:18: validators[1].signing_key: duplicate validator signing_key", NULL);
	expect_error(BASE V1("v1", "127.0.0.1:7001", K3, K4, "1"),
	             "t.yaml:14:14: validators[1].address: duplicate validator address", NULL);
}
END_TEST

START_TEST(validator_name_is_checked)
{
	expect_error(base_with("  - name", "  - name: 'v 0'", NULL),
	             "t.yaml:8:11: validators[0].name: invalid name 'v 0'", NULL);
	expect_error(
	    base_with("  - name",
	              "  - name: "
	              "a123456789012345678901234567890123456789012345678901234567890123456789",
	              NULL),
	    "t.yaml:8:11: validators[0].name: is 70 bytes long", NULL);
}
END_TEST

START_TEST(validator_count_is_checked)
{
	expect_error(HEAD "validators: []\n",
	             "t.yaml:7:13: validators: must list between 1 and 256 validators, got 0",
	             NULL);
}
END_TEST

START_TEST(total_voting_power_overflow_is_refused)
{
	expect_error(base_with("    voting_power", "    voting_power: 4611686018427387904",
	                       V1("v1", "127.0.0.1:2", K3, K4, "1")),
	             "t.yaml:17:19: validators[1].voting_power: total voting power exceeds 2^62",
	             NULL);
	expect_error(base_with("    voting_power", "    voting_power: 4611686018427387905", NULL),
	             "t.yaml:12:19: validators[0].voting_power: out of range", NULL);
}
END_TEST

START_TEST(many_validators_are_accepted_and_257_refused)
{
	struct qs_config *cfg;
	size_t n, i;

	n = (size_t)snprintf(text, sizeof(text), "%s",
	                     "chain_id: 7\nepoch: 3\nlisten: 127.0.0.1:1\ndata_dir: d\n"
	                     "network_key: nk.key\nsigning_key: sk.key\nvalidators:\n");
	for (i = 0; i < QS_MAX_VALIDATORS; i++)
		n += (size_t)snprintf(
		    text + n, sizeof(text) - n,
		    "- {name: v%zu, address: '127.0.0.1:%zu', network_key: %064zx, "
		    "signing_key: %064zx, voting_power: 1}\n",
		    i, i + 1, i, i + 1000);
	cfg = parse_ok(text);
	ck_assert_uint_eq(cfg->n_validators, QS_MAX_VALIDATORS);
	ck_assert_str_eq(cfg->validators[255].name, "v255");
	qs_config_free(cfg);

	snprintf(text + n, sizeof(text) - n, "- {name: x}\n");
	expect_error(
	    text, "t.yaml:8:1: validators: must list between 1 and 256 validators, got 257", NULL);
}
END_TEST

START_TEST(key_file_mode_0640_is_refused)
{
	char name[] = "keyXXXXXX";
	char line[64], prefix[128];
	int fd = mkstemp(name);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, 0640), 0);
	ck_assert_int_eq(close(fd), 0);
	snprintf(line, sizeof(line), "network_key: %s", name);
	snprintf(prefix, sizeof(prefix),
	         "t.yaml:5:14: network_key: %s is readable by group or others (mode 0640); "
	         "chmod 600 it",
	         name);
	expect_error(base_with("network_key", line, NULL), prefix, NULL);

	ck_assert_int_eq(chmod(name, 0604), 0);
	snprintf(line, sizeof(line), "signing_key: %s", name);
	expect_error(base_with("signing_key", line, NULL),
	             "t.yaml:6:14: signing_key: ", "(mode 0604)");
	ck_assert_int_eq(unlink(name), 0);
}
END_TEST

START_TEST(key_file_mode_0600_is_accepted)
{
	char name[] = "keyXXXXXX";
	char line[64];
	struct qs_config *cfg;
	int fd = mkstemp(name);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	ck_assert_int_eq(close(fd), 0);
	snprintf(line, sizeof(line), "signing_key: %s", name);
	cfg = parse_ok(base_with("signing_key", line, NULL));
	ck_assert_str_eq(cfg->signing_key_file, name);
	qs_config_free(cfg);
	/* Owner-only modes other than 0600 are fine too. */
	ck_assert_int_eq(chmod(name, 0400), 0);
	cfg = parse_ok(base_with("signing_key", line, NULL));
	qs_config_free(cfg);
	ck_assert_int_eq(unlink(name), 0);
}
END_TEST

START_TEST(missing_key_file_is_refused)
{
	expect_error(base_with("signing_key", "signing_key: nope.key", NULL),
	             "t.yaml:6:14: signing_key: nope.key: No such file or directory", NULL);
}
END_TEST

START_TEST(key_file_that_is_a_directory_is_refused)
{
	ck_assert_int_eq(mkdir("keys", 0700), 0);
	expect_error(base_with("network_key", "network_key: keys", NULL),
	             "t.yaml:5:14: network_key: keys is not a regular file", NULL);
}
END_TEST

START_TEST(empty_file_is_refused)
{
	expect_error("", "t.yaml:1:1: (document): the config is empty", NULL);
	expect_error("# only a comment\n\n", "t.yaml:1:1: (document): the config is empty", NULL);
	expect_error("---\n", "t.yaml:1:1: (document): the config is empty", NULL);
	ck_assert_int_eq(
	    qs_config_parse("t.yaml", NULL, 0, &(struct qs_config *){NULL}, errbuf, sizeof(errbuf)),
	    QS_ECONFIG);
}
END_TEST

START_TEST(anchors_and_aliases_are_refused)
{
	expect_error(BASE "limits:\n  batch_max_bytes: &b 5\n  msg_max_bytes: *b\n",
	             "t.yaml:14:20: limits.batch_max_bytes: anchors and aliases are not allowed",
	             NULL);
	expect_error(BASE "limits:\n  msg_max_bytes: *b\n",
	             "t.yaml:14:18: limits.msg_max_bytes: anchors and aliases are not allowed",
	             NULL);
	expect_error(BASE "rpc: &r\n  socket: /x\n", "t.yaml:13:6: rpc: anchors and aliases", NULL);
}
END_TEST

START_TEST(multiple_documents_are_refused)
{
	expect_error(BASE "---\nchain_id: 1\n",
	             "t.yaml:13:1: (document): multiple documents are not allowed", NULL);
	expect_error(BASE "...\n---\n",
	             "t.yaml:14:1: (document): multiple documents are not allowed", NULL);
}
END_TEST

START_TEST(tags_are_refused)
{
	expect_error(BASE "max_clock_skew_ms: !!int 7\n",
	             "t.yaml:13:20: max_clock_skew_ms: tags are not allowed", NULL);
	expect_error(BASE "limits: !x {}\n", "t.yaml:13:9: limits: tags are not allowed", NULL);
}
END_TEST

START_TEST(non_scalar_key_is_wrong_type)
{
	expect_error(BASE "? [a]\n: 1\n",
	             "t.yaml:13:3: (document): wrong type: a key must be a scalar", NULL);
}
END_TEST

START_TEST(file_larger_than_1_mib_is_refused)
{
	size_t len = QS_CONFIG_MAX_FILE_BYTES + 1;
	char *big = malloc(len);
	struct qs_config *cfg = NULL;

	ck_assert_ptr_nonnull(big);
	memset(big, '#', len);
	ck_assert_int_eq(qs_config_parse("t.yaml", big, len, &cfg, errbuf, sizeof(errbuf)),
	                 QS_ECONFIG);
	ck_assert_ptr_null(cfg);
	assert_prefix("t.yaml:1:1: (document): larger than 1048576 bytes");
	/* Through a file, which qs_config_load() reads only up to the limit. */
	write_file("big.yaml", "", 0600);
	ck_assert_int_eq(truncate("big.yaml", 10 * QS_CONFIG_MAX_FILE_BYTES), 0);
	ck_assert_int_eq(qs_config_load("big.yaml", &cfg, errbuf, sizeof(errbuf)), QS_ECONFIG);
	assert_prefix("big.yaml:1:1: (document): larger than");
	free(big);
}
END_TEST

START_TEST(scalar_longer_than_4096_bytes_is_refused)
{
	char value[QS_CONFIG_MAX_SCALAR_BYTES + 2];
	char line[sizeof(value) + 16];
	struct qs_config *cfg;

	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(line, sizeof(line), "data_dir: %s", value);
	expect_error(base_with("data_dir", line, NULL),
	             "t.yaml:4:11: data_dir: longer than 4096 bytes", NULL);
	value[sizeof(value) - 2] = '\0';
	snprintf(line, sizeof(line), "data_dir: %s", value);
	cfg = parse_ok(base_with("data_dir", line, NULL));
	ck_assert_uint_eq(strlen(cfg->data_dir), QS_CONFIG_MAX_SCALAR_BYTES);
	qs_config_free(cfg);
}
END_TEST

START_TEST(deep_nesting_is_refused)
{
	expect_error(BASE "x: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
	             "t.yaml:13:19: x[0][0]", "nested deeper than 16 levels");
}
END_TEST

START_TEST(size_suffixes_are_accepted)
{
	struct qs_config *cfg =
	    parse_ok(BASE "limits:\n  batch_max_bytes: 2MiB\n"
	                  "  msg_max_bytes: 8 MiB\n  frame_max_bytes: 8320 KiB\n"
	                  "quotas:\n  author_disk_bytes: 1 TiB\n"
	                  "storage:\n  group_max_bytes: 1GiB\n");

	ck_assert_uint_eq(cfg->limits.batch_max_bytes, 2 << 20);
	ck_assert_uint_eq(cfg->limits.msg_max_bytes, 8 << 20);
	ck_assert_uint_eq(cfg->limits.frame_max_bytes, 8320 << 10);
	ck_assert_uint_eq(cfg->quotas.author_disk_bytes, UINT64_C(1) << 40);
	ck_assert_uint_eq(cfg->group_max_bytes, 1 << 30);
	qs_config_free(cfg);

	expect_error(BASE "limits:\n  batch_max_bytes: 2 mib\n",
	             "t.yaml:14:20: limits.batch_max_bytes: wrong type", NULL);
	expect_error(BASE "limits:\n  batch_max_bytes: 2KB\n",
	             "t.yaml:14:20: limits.batch_max_bytes: wrong type", NULL);
	expect_error(BASE "limits:\n  batch_max_bytes: 2  MiB\n",
	             "t.yaml:14:20: limits.batch_max_bytes: wrong type", NULL);
	expect_error(BASE "limits:\n  batch_max_txns: 2KiB\n",
	             "t.yaml:14:19: limits.batch_max_txns: wrong type", NULL);
}
END_TEST

START_TEST(limit_orderings_are_enforced)
{
	expect_error(
	    BASE "limits:\n  msg_max_bytes: 1000\n",
	    "t.yaml:14:18: limits.msg_max_bytes: must be at least limits.batch_max_bytes = "
	    "1048576 (1 MiB)",
	    NULL);
	/* Only the smaller key was set: point at it. */
	expect_error(BASE "limits:\n  batch_max_bytes: 8MiB\n",
	             "t.yaml:14:20: limits.batch_max_bytes: must be at most limits.msg_max_bytes = "
	             "4194304 (4 MiB)",
	             NULL);
	expect_error(BASE "limits:\n  frame_max_bytes: 4194303\n",
	             "t.yaml:14:20: limits.frame_max_bytes: must be at least limits.msg_max_bytes",
	             NULL);
	expect_error(
	    BASE "storage:\n  submit_queue_bytes: 4MiB\n",
	    "t.yaml:14:23: storage.submit_queue_bytes: must be at least limits.frame_max_bytes",
	    NULL);
	expect_error(
	    BASE "storage:\n  group_max_bytes: 1000\n",
	    "t.yaml:14:20: storage.group_max_bytes: must be at least limits.batch_max_bytes", NULL);
}
END_TEST

START_TEST(rpc_socket_longer_than_sun_path_is_refused)
{
	char line[256];
	struct qs_config *cfg;

	snprintf(line, sizeof(line), "rpc:\n  socket: /%0107d\n", 0);
	expect_error(base_with(NULL, NULL, line), "t.yaml:14:11: rpc.socket: is 108 bytes long",
	             "107");
	snprintf(line, sizeof(line), "rpc:\n  socket: /%0106d\n", 0);
	cfg = parse_ok(base_with(NULL, NULL, line));
	ck_assert_uint_eq(strlen(cfg->rpc_socket), 107);
	qs_config_free(cfg);
}
END_TEST

START_TEST(allowed_uids_are_checked)
{
	char line[1024];
	size_t n, i;

	expect_error(
	    BASE "rpc:\n  allowed_uids: [0, 4294967295]\n",
	    "t.yaml:14:21: rpc.allowed_uids[1]: out of range: must be between 0 and 4294967294",
	    NULL);
	expect_error(BASE "rpc:\n  allowed_uids: 0\n",
	             "t.yaml:14:17: rpc.allowed_uids: wrong type: expected a sequence", NULL);
	expect_error(BASE "rpc:\n  allowed_uids:\n    - 1\n    - root\n",
	             "t.yaml:16:7: rpc.allowed_uids[1]: wrong type", NULL);
	n = (size_t)snprintf(line, sizeof(line), "rpc:\n  allowed_uids: [0");
	for (i = 1; i <= QS_MAX_ALLOWED_UIDS; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, ", %zu", i);
	snprintf(line + n, sizeof(line) - n, "]\n");
	expect_error(base_with(NULL, NULL, line), "t.yaml:14:17: rpc.allowed_uids: 65 entries",
	             "64");
}
END_TEST

START_TEST(addresses_are_validated)
{
	static const char *const bad[] = {
	    "127.0.0.1",
	    "127.0.0.1:0",
	    "127.0.0.1:65536",
	    "'127.0.0.1:'",
	    "127.0.0.1:07001",
	    "'::1:7001'",
	    "'[::1]7001'",
	    "'[zz]:1'",
	    "'[::1:1'",
	    "999.1.1.1:1",
	    "1.2.3:4",
	    "':7001'",
	    "'host name:1'",
	    "-h:1",
	    "h:+1",
	    "h:1x",
	    /* Names would need a resolver on the event loop: refused. */
	    "localhost:7001",
	    "a-b.example.com:65535",
	};
	static const char *const good[] = {
	    "'[::1]:7001'",
	    "0.0.0.0:1",
	    "127.0.0.1:65535",
	    "'[fe80::1:2]:80'",
	};
	char line[128];
	struct qs_config *cfg;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "metrics:\n  listen: %s\n", bad[i]);
		expect_error(base_with(NULL, NULL, line),
		             "t.yaml:14:11: metrics.listen: invalid address", NULL);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(line, sizeof(line), "metrics:\n  listen: %s\n", good[i]);
		cfg = parse_ok(base_with(NULL, NULL, line));
		qs_config_free(cfg);
	}
	expect_error(
	    base_with("    address", "    address: nowhere", NULL),
	    "t.yaml:9:14: validators[0].address: invalid address 'nowhere': expected host:port",
	    NULL);
}
END_TEST

START_TEST(empty_listen_is_refused)
{
	expect_error(base_with("listen", "listen: ''", NULL),
	             "t.yaml:3:9: listen: must not be empty", NULL);
	expect_error(base_with("listen", "listen:", NULL), "t.yaml:3:8: listen: must not be empty",
	             NULL);
	expect_error(base_with("listen", "listen: ~", NULL),
	             "t.yaml:3:9: listen: must not be empty", NULL);
	expect_error(base_with("listen", NULL, NULL), "t.yaml:1:1: listen: missing required key",
	             NULL);
}
END_TEST

START_TEST(log_levels_are_parsed_by_name)
{
	static const struct {
		const char *name;
		enum qs_log_level level;
	} levels[] = {
	    {"err", QS_LOG_ERR},   {"warning", QS_LOG_WARNING}, {"notice", QS_LOG_NOTICE},
	    {"info", QS_LOG_INFO}, {"debug", QS_LOG_DEBUG},
	};
	char line[64];
	struct qs_config *cfg;
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(line, sizeof(line), "log_level: %s\n", levels[i].name);
		cfg = parse_ok(base_with(NULL, NULL, line));
		ck_assert_int_eq(cfg->log_level, levels[i].level);
		ck_assert_str_eq(qs_log_level_name(cfg->log_level), levels[i].name);
		qs_config_free(cfg);
	}
	expect_error(BASE "log_level: verbose\n", "t.yaml:13:12: log_level: must be err, warning",
	             "got 'verbose'");
	ck_assert_ptr_null(qs_log_level_name((enum qs_log_level)0));
	ck_assert_ptr_null(qs_log_level_name((enum qs_log_level)8));
}
END_TEST

START_TEST(find_network_key_and_signing_key)
{
	static const uint8_t k1[QS_KEY_BYTES] = {[31] = 1};
	static const uint8_t k2[QS_KEY_BYTES] = {[31] = 2};
	static const uint8_t k3[QS_KEY_BYTES] = {[31] = 3};
	static const uint8_t k4[QS_KEY_BYTES] = {[31] = 4};
	static const uint8_t k9[QS_KEY_BYTES] = {[0] = 9};
	struct qs_config *cfg = parse_ok(BASE V1("v1", "127.0.0.1:2", K3, K4, "2"));

	ck_assert_int_eq(qs_config_find_network_key(cfg, k1), 0);
	ck_assert_int_eq(qs_config_find_network_key(cfg, k3), 1);
	ck_assert_int_eq(qs_config_find_signing_key(cfg, k2), 0);
	ck_assert_int_eq(qs_config_find_signing_key(cfg, k4), 1);
	/* A signing key is not a network key, nor the other way round. */
	ck_assert_int_eq(qs_config_find_network_key(cfg, k2), -1);
	ck_assert_int_eq(qs_config_find_signing_key(cfg, k1), -1);
	ck_assert_int_eq(qs_config_find_network_key(cfg, k9), -1);
	ck_assert_int_eq(qs_config_find_signing_key(NULL, k1), -1);
	qs_config_free(cfg);
}
END_TEST

START_TEST(load_reads_a_file)
{
	struct qs_config *cfg = NULL;

	write_file("qsd.yaml", BASE, 0644);
	ck_assert_int_eq(qs_config_load("qsd.yaml", &cfg, errbuf, sizeof(errbuf)), 0);
	ck_assert_str_eq(cfg->path, "qsd.yaml");
	ck_assert_uint_eq(cfg->chain_id, 7);
	qs_config_free(cfg);

	write_file("bad.yaml", BASE "bogus: 1\n", 0644);
	cfg = NULL;
	ck_assert_int_eq(qs_config_load("bad.yaml", &cfg, errbuf, sizeof(errbuf)), QS_ECONFIG);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errbuf, "bad.yaml:13:1: bogus: unknown key");
}
END_TEST

START_TEST(load_of_missing_file_returns_errno)
{
	struct qs_config *cfg = NULL;

	ck_assert_int_eq(qs_config_load("missing.yaml", &cfg, errbuf, sizeof(errbuf)), -ENOENT);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errbuf,
	                 "missing.yaml:1:1: (document): cannot open: No such file or directory");
	ck_assert_int_eq(mkdir("dir.yaml", 0700), 0);
	ck_assert_int_eq(qs_config_load("dir.yaml", &cfg, errbuf, sizeof(errbuf)), -EISDIR);
}
END_TEST

START_TEST(error_message_is_one_line)
{
	expect_error(BASE "\"a\\nb\": 1\n", "t.yaml:13:1: a?b: unknown key", NULL);
	expect_error(base_with("data_dir", "data_dir: \"a\\0b\"", NULL),
	             "t.yaml:4:11: data_dir: must not contain a NUL byte", NULL);
	/* A short buffer truncates the message but keeps it terminated. */
	ck_assert_int_eq(qs_config_parse("t.yaml", "", 0, &(struct qs_config *){NULL}, errbuf, 8),
	                 QS_ECONFIG);
	ck_assert_str_eq(errbuf, "t.yaml:");
	ck_assert_int_eq(qs_config_parse("t.yaml", "", 0, &(struct qs_config *){NULL}, NULL, 0),
	                 QS_ECONFIG);
}
END_TEST

/* The example file in docs/ is what the option table generates. */
static char *
generate_example(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(qs_config_write_example(f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

START_TEST(example_config_matches_option_table)
{
	char path[PATH_MAX + 64];
	size_t len, got = 0;
	char *want = generate_example(&len);
	char *have = malloc(len + 2);
	FILE *f;

	ck_assert_ptr_nonnull(have);
	snprintf(path, sizeof(path), "%s/docs/qsd.yaml.example", srcdir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (run the test from the source tree)", path);
	got = fread(have, 1, len + 1, f);
	fclose(f);
	ck_assert_msg(
	    got == len && !memcmp(have, want, len),
	    "docs/qsd.yaml.example differs from qs_config_write_example(); regenerate it");
	free(have);
	free(want);
}
END_TEST

/* Replace every `from` in s by `to`, into text[]. */
static const char *
replace_all(const char *s, const char *from, const char *to)
{
	size_t n = 0, flen = strlen(from);
	const char *hit;

	while ((hit = strstr(s, from))) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%.*s%s", (int)(hit - s), s, to);
		s = hit + flen;
	}
	snprintf(text + n, sizeof(text) - n, "%s", s);
	ck_assert_uint_lt(strlen(text), sizeof(text) - 1);
	return text;
}

START_TEST(example_config_parses)
{
	size_t len;
	char *example = generate_example(&len);
	char *step;
	struct qs_config *cfg;

	step = strdup(replace_all(example, "/etc/qsd/network.key", "nk.key"));
	ck_assert_ptr_nonnull(step);
	cfg = parse_ok(replace_all(step, "/etc/qsd/signing.key", "sk.key"));
	ck_assert_uint_eq(cfg->chain_id, 1);
	ck_assert_str_eq(cfg->rpc_socket, "/run/qsd/rpc.sock");
	ck_assert_uint_eq(cfg->limits.frame_max_bytes, 4259840);
	ck_assert_uint_eq(cfg->n_validators, 1);
	qs_config_free(cfg);
	free(step);
	free(example);
}
END_TEST

/* Mutated and truncated configs fail cleanly: no crash, no leak, one line. */
START_TEST(garbage_inputs_do_not_crash)
{
	static const char alphabet[] = " \t\n:-[]{},&*!|>'\"#?%@`\\0aZ9.\xff\xc3";
	const char *base = BASE "limits: {batch_max_txns: 5}\nrpc:\n  allowed_uids: [1, 2]\n";
	size_t len = strlen(base), i, j;
	uint64_t x = 88172645463325252u;
	char buf[1024];
	struct qs_config *cfg;
	int rc;

	ck_assert_uint_lt(len, sizeof(buf));
	for (i = 0; i <= len; i++) {
		cfg = NULL;
		rc = qs_config_parse("t.yaml", base, i, &cfg, errbuf, sizeof(errbuf));
		ck_assert(rc == 0 || rc == QS_ECONFIG);
		ck_assert(rc != 0 || cfg != NULL);
		ck_assert_ptr_null(strchr(errbuf, '\n'));
		qs_config_free(cfg);
	}
	for (i = 0; i < 3000; i++) {
		memcpy(buf, base, len);
		for (j = 0; j < 1 + i % 4; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[x % len] = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
		}
		cfg = NULL;
		rc = qs_config_parse("t.yaml", buf, len, &cfg, errbuf, sizeof(errbuf));
		ck_assert(rc == 0 || rc == QS_ECONFIG);
		ck_assert_ptr_null(strchr(errbuf, '\n'));
		qs_config_free(cfg);
	}
}
END_TEST

/* ---- reload ---- */

static struct qs_reload_plan plan;
static char reload_msg[QS_RELOAD_LIST_MAX];

static int
reload_plan(const struct qs_config *old, const struct qs_config *new)
{
	memset(&plan, 0xa5, sizeof(plan));
	reload_msg[0] = '\0';
	return qs_config_reload_plan(old, new, &plan, reload_msg, sizeof(reload_msg));
}

START_TEST(reload_plan_of_an_equal_config_changes_nothing)
{
	struct qs_config *old = parse_ok(BASE "limits: {batch_max_txns: 5}\n");
	struct qs_config *new = parse_ok(BASE "limits: {batch_max_txns: 5}\n");

	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_uint_eq(plan.groups, 0);
	ck_assert_uint_eq(plan.n_applied, 0);
	ck_assert_uint_eq(plan.n_restart, 0);
	ck_assert_str_eq(plan.applied, "");
	ck_assert_str_eq(reload_msg, "");
	for (size_t i = 0; i < QS_MAX_VALIDATORS; i++)
		ck_assert_uint_eq(plan.address_changed[i], 0);
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

START_TEST(reload_applies_run_time_keys)
{
	struct qs_config *old = parse_ok(BASE);
	struct qs_config *new =
	    parse_ok(BASE "log_level: debug\n"
	                  "max_batch_lifetime_ms: 30000\n"
	                  "max_clock_skew_ms: 100\n"
	                  "proof_timeout_ms: 500\n"
	                  "rpc:\n  allowed_uids: [1, 2]\n"
	                  "limits: {batch_max_txns: 5, frame_max_bytes: 8 MiB}\n"
	                  "quotas: {author_disk_batches: 7}\n"
	                  "storage: {free_space_watermark_bytes: 1 MiB}\n"
	                  "serving: {fetch_parallel: 3, gc_buffer_ms: 10}\n");
	char *listen = old->listen, *address = old->validators[0].address;

	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_uint_eq(plan.groups, QS_RELOAD_LOG_LEVEL | QS_RELOAD_TIMING |
	                                   QS_RELOAD_ALLOWED_UIDS | QS_RELOAD_LIMITS |
	                                   QS_RELOAD_QUOTAS | QS_RELOAD_STORAGE |
	                                   QS_RELOAD_SERVING);
	ck_assert_uint_eq(plan.n_applied, 11);
	ck_assert_uint_eq(plan.n_restart, 0);
	ck_assert_str_eq(reload_msg, "");
	ck_assert_str_eq(plan.applied,
	                 "log_level max_batch_lifetime_ms max_clock_skew_ms proof_timeout_ms "
	                 "rpc.allowed_uids limits.batch_max_txns limits.frame_max_bytes "
	                 "quotas.author_disk_batches storage.free_space_watermark_bytes "
	                 "serving.gc_buffer_ms serving.fetch_parallel");
	ck_assert_int_eq(qs_config_reload_apply(old, new, &plan), 0);
	ck_assert_int_eq(old->log_level, QS_LOG_DEBUG);
	ck_assert_uint_eq(old->max_batch_lifetime_us, 30000000);
	ck_assert_uint_eq(old->max_clock_skew_us, 100000);
	ck_assert_uint_eq(old->proof_timeout_us, 500000);
	ck_assert_uint_eq(old->n_allowed_uids, 2);
	ck_assert_uint_eq(old->allowed_uids[1], 2);
	ck_assert_uint_eq(old->limits.batch_max_txns, 5);
	ck_assert_uint_eq(old->limits.frame_max_bytes, 8 << 20);
	ck_assert_uint_eq(old->quotas.author_disk_batches, 7);
	ck_assert_uint_eq(old->free_space_watermark_bytes, 1 << 20);
	ck_assert_uint_eq(old->fetch_parallel, 3);
	ck_assert_uint_eq(old->gc_buffer_us, 10000);
	/* Nothing else moved, and the strings the modules borrow stay. */
	ck_assert_ptr_eq(old->listen, listen);
	ck_assert_ptr_eq(old->validators[0].address, address);
	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_uint_eq(plan.n_applied + plan.n_restart, 0);
	/* An emptied uid list applies too. */
	qs_config_free(new);
	new = parse_ok(BASE);
	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_int_eq(qs_config_reload_apply(old, new, &plan), 0);
	ck_assert_uint_eq(old->n_allowed_uids, 0);
	ck_assert_uint_eq(old->limits.batch_max_txns, 2000);
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

START_TEST(reload_lists_restart_only_keys_and_keeps_them)
{
	struct qs_config *old = parse_ok(BASE), *new;

	write_file("nk2.key", "network\n", 0600);
	new = parse_ok("chain_id: 8\nepoch: 4\nlisten: 127.0.0.1:7101\ndata_dir: data2\n"
	               "network_key: nk2.key\nsigning_key: sk.key\n"
	               "rpc: {socket: /run/qsd/other.sock}\n"
	               "metrics: {listen: 127.0.0.1:9465}\n"
	               "storage: {submit_queue_bytes: 128 MiB, group_max_batches: 16,\n"
	               "          group_max_bytes: 16 MiB, db_write_buffer_bytes: 8 MiB,\n"
	               "          db_block_cache_bytes: 8 MiB, db_max_wal_bytes: 8 MiB}\n"
	               "log_level: notice\n"
	               "validators:\n"
	               "  - name: v0\n"
	               "    address: 127.0.0.1:7001\n"
	               "    network_key: " K1 "\n"
	               "    signing_key: " K2 "\n"
	               "    voting_power: 1\n");
	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_str_eq(reload_msg,
	                 "chain_id, epoch, listen, data_dir, network_key, rpc.socket, "
	                 "metrics.listen, storage.submit_queue_bytes, storage.group_max_batches, "
	                 "storage.group_max_bytes, storage.db_write_buffer_bytes, "
	                 "storage.db_block_cache_bytes, storage.db_max_wal_bytes");
	ck_assert_uint_eq(plan.n_restart, 13);
	ck_assert_uint_eq(plan.n_applied, 1);
	ck_assert_uint_eq(plan.groups, QS_RELOAD_LOG_LEVEL);
	ck_assert_int_eq(qs_config_reload_apply(old, new, &plan), 0);
	ck_assert_int_eq(old->log_level, QS_LOG_NOTICE);
	ck_assert_uint_eq(old->chain_id, 7);
	ck_assert_uint_eq(old->epoch, 3);
	ck_assert_str_eq(old->listen, "127.0.0.1:7001");
	ck_assert_str_eq(old->data_dir, "data");
	ck_assert_str_eq(old->network_key_file, "nk.key");
	ck_assert_str_eq(old->rpc_socket, "/run/qsd/rpc.sock");
	ck_assert_uint_eq(old->submit_queue_bytes, 64 << 20);
	ck_assert_uint_eq(old->group_max_batches, 256);
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

START_TEST(reload_applies_a_moved_validator_address)
{
	struct qs_config *old = parse_ok(BASE V1("v1", "127.0.0.1:7002", K3, K4, "1"));
	struct qs_config *new = parse_ok(BASE V1("v1", "'[::1]:7102'", K3, K4, "1"));

	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_uint_eq(plan.groups, QS_RELOAD_ADDRESSES);
	ck_assert_str_eq(plan.applied, "validators[1].address");
	ck_assert_uint_eq(plan.address_changed[0], 0);
	ck_assert_uint_eq(plan.address_changed[1], 1);
	ck_assert_str_eq(reload_msg, "");
	ck_assert_int_eq(qs_config_reload_apply(old, new, &plan), 0);
	ck_assert_str_eq(old->validators[1].address, "[::1]:7102");
	ck_assert_str_eq(old->validators[0].address, "127.0.0.1:7001");
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

/* Another member at an index takes nothing of its entry, address included. */
START_TEST(reload_does_not_apply_a_changed_validator_set)
{
	struct qs_config *old = parse_ok(BASE V1("v1", "127.0.0.1:7002", K3, K4, "1"));
	struct qs_config *new = parse_ok(BASE V1("v1", "127.0.0.1:7003", K3, K4, "2"));

	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_uint_eq(plan.groups, 0);
	ck_assert_uint_eq(plan.address_changed[1], 0);
	ck_assert_str_eq(reload_msg, "validators[1].address, validators[1].voting_power");
	ck_assert_int_eq(qs_config_reload_apply(old, new, &plan), 0);
	ck_assert_str_eq(old->validators[1].address, "127.0.0.1:7002");
	ck_assert_uint_eq(old->validators[1].voting_power, 1);
	qs_config_free(new);

	new = parse_ok(BASE V1("v1", "127.0.0.1:7002", K3, K4, "1")
	                   V1("v2", "127.0.0.1:7003", KA, K5, "1"));
	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_str_eq(reload_msg, "validators (count 2 -> 3)");
	ck_assert_uint_eq(plan.n_restart, 1);
	qs_config_free(new);

	new = parse_ok(BASE V1("w1", "127.0.0.1:7002", K4, K3, "1"));
	ck_assert_int_eq(reload_plan(old, new), 0);
	ck_assert_str_eq(
	    reload_msg, "validators[1].name, validators[1].network_key, validators[1].signing_key");
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

/* A run-time key may not cross a restart-only key it is ordered against. */
START_TEST(reload_refused_when_an_ordering_needs_a_restart)
{
	struct qs_config *old = parse_ok(BASE);
	struct qs_config *new = parse_ok(BASE "storage: {submit_queue_bytes: 256 MiB}\n"
	                                      "limits: {frame_max_bytes: 100 MiB}\n");
	struct qs_reload_plan before;

	memset(&plan, 0x5a, sizeof(plan));
	before = plan;
	reload_msg[0] = '\0';
	ck_assert_int_eq(qs_config_reload_plan(old, new, &plan, reload_msg, sizeof(reload_msg)),
	                 QS_ECONFIG);
	ck_assert_msg(strstr(reload_msg, "limits.frame_max_bytes") &&
	                  strstr(reload_msg, "storage.submit_queue_bytes needs a restart"),
	              "message: %s", reload_msg);
	ck_assert_ptr_null(strchr(reload_msg, '\n'));
	ck_assert_int_eq(memcmp(&plan, &before, sizeof(plan)), 0);
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

/* Many restart-only changes are cut, never overflowing the message. */
START_TEST(reload_message_is_cut_to_its_buffer)
{
	struct qs_config *old = parse_ok(BASE), *new = parse_ok(BASE);
	char small[40];

	new->chain_id = 9;
	new->epoch = 9;
	new->group_max_batches = 9;
	ck_assert_int_eq(qs_config_reload_plan(old, new, &plan, small, sizeof(small)), 0);
	ck_assert_str_eq(small, "chain_id, epoch, ...");
	ck_assert_uint_eq(plan.n_restart, 3);
	ck_assert_int_eq(qs_config_reload_plan(old, new, &plan, NULL, 0), 0);
	ck_assert_uint_eq(plan.n_restart, 3);
	qs_config_free(old);
	qs_config_free(new);
}
END_TEST

/* The text between ".It Cm NAME" and the next item or list end. */
static char *
man_item(const char *page, const char *name)
{
	char head[160];
	const char *at, *end, *el;

	snprintf(head, sizeof(head), "\n.It Cm %s\n", name);
	at = strstr(page, head);
	if (at == NULL)
		return NULL;
	at += strlen(head);
	end = strstr(at, "\n.It ");
	el = strstr(at, "\n.El");
	if (end == NULL || (el != NULL && el < end))
		end = el;
	if (end == NULL)
		end = at + strlen(at);
	return strndup(at, (size_t)(end - at));
}

/* docs/qsd.yaml.5 names every key, says whether it applies on reload and
 * shows its default; it names no key the table lacks. */
START_TEST(every_key_is_documented_in_qsd_yaml_5)
{
	char path[PATH_MAX + 32], want[200], *item;
	struct qs_config_key key;
	const char *at, *keys, *end;
	size_t n_keys = 0, n_items = 0, len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/qsd.yaml.5", srcdir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	len = fread(text, 1, sizeof(text) - 1, f);
	ck_assert_msg(feof(f), "%s is larger than %zu bytes", path, sizeof(text) - 1);
	fclose(f);
	text[len] = '\0';
	for (size_t i = 0; qs_config_key_at(i, &key) == 0; i++) {
		if (key.section)
			continue;
		n_keys++;
		item = man_item(text, key.name);
		ck_assert_msg(item != NULL, "qsd.yaml.5 lacks \".It Cm %s\"", key.name);
		ck_assert_msg(strstr(item, key.reload ? "Applied on reload." : "Needs a restart."),
		              "qsd.yaml.5: %s: says %s", key.name,
		              key.reload ? "it needs a restart" : "it applies on reload");
		if (key.def != NULL) {
			snprintf(want, sizeof(want), "\n.Ql %s ", key.def);
			ck_assert_msg(strstr(item, want), "qsd.yaml.5: %s: no default \"%s\"",
			              key.name, key.def);
		}
		free(item);
	}
	keys = strstr(text, "\n.Sh KEYS\n");
	ck_assert_ptr_nonnull(keys);
	end = strstr(keys + 1, "\n.Sh ");
	ck_assert_ptr_nonnull(end);
	for (at = strstr(keys, "\n.It Cm "); at && at < end; at = strstr(at + 1, "\n.It Cm ")) {
		const char *nl = strchr(at + 8, '\n');
		int found = 0;

		snprintf(want, sizeof(want), "%.*s", (int)(nl - at - 8), at + 8);
		for (size_t i = 0; qs_config_key_at(i, &key) == 0; i++)
			found |= !key.section && !strcmp(key.name, want);
		ck_assert_msg(found, "qsd.yaml.5 documents \"%s\", which is not a key", want);
		n_items++;
	}
	ck_assert_uint_eq(n_items, n_keys);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, valid_full_config_sets_every_field);
	tcase_add_test(tc, defaults_apply_when_optional_keys_absent);
	tcase_add_test(tc, empty_sections_keep_defaults);
	tcase_add_test(tc, unknown_key_names_line_and_column);
	tcase_add_test(tc, unknown_nested_key_names_dotted_path);
	tcase_add_test(tc, unknown_validator_key_names_index);
	tcase_add_test(tc, scalar_where_mapping_expected_is_wrong_type);
	tcase_add_test(tc, mapping_where_scalar_expected_is_wrong_type);
	tcase_add_test(tc, non_integer_is_wrong_type);
	tcase_add_test(tc, integer_overflow_is_out_of_range);
	tcase_add_test(tc, out_of_range_value_names_allowed_range);
	tcase_add_test(tc, duplicate_key_names_both_lines);
	tcase_add_test(tc, duplicate_section_names_both_lines);
	tcase_add_test(tc, missing_required_key_points_at_mapping);
	tcase_add_test(tc, missing_required_validator_key_points_at_entry);
	tcase_add_test(tc, yaml_syntax_error_reports_libyaml_mark);
	tcase_add_test(tc, invalid_utf8_reports_position);
	tcase_add_test(tc, nul_byte_in_input_is_refused);
	tcase_add_test(tc, bad_hex_key_is_refused);
	tcase_add_test(tc, duplicate_validator_name_is_refused);
	tcase_add_test(tc, duplicate_validator_keys_are_refused);
	tcase_add_test(tc, validator_name_is_checked);
	tcase_add_test(tc, validator_count_is_checked);
	tcase_add_test(tc, total_voting_power_overflow_is_refused);
	tcase_add_test(tc, many_validators_are_accepted_and_257_refused);
	tcase_add_test(tc, key_file_mode_0640_is_refused);
	tcase_add_test(tc, key_file_mode_0600_is_accepted);
	tcase_add_test(tc, missing_key_file_is_refused);
	tcase_add_test(tc, key_file_that_is_a_directory_is_refused);
	tcase_add_test(tc, empty_file_is_refused);
	tcase_add_test(tc, anchors_and_aliases_are_refused);
	tcase_add_test(tc, multiple_documents_are_refused);
	tcase_add_test(tc, tags_are_refused);
	tcase_add_test(tc, non_scalar_key_is_wrong_type);
	tcase_add_test(tc, file_larger_than_1_mib_is_refused);
	tcase_add_test(tc, scalar_longer_than_4096_bytes_is_refused);
	tcase_add_test(tc, deep_nesting_is_refused);
	tcase_add_test(tc, size_suffixes_are_accepted);
	tcase_add_test(tc, limit_orderings_are_enforced);
	tcase_add_test(tc, rpc_socket_longer_than_sun_path_is_refused);
	tcase_add_test(tc, allowed_uids_are_checked);
	tcase_add_test(tc, addresses_are_validated);
	tcase_add_test(tc, empty_listen_is_refused);
	tcase_add_test(tc, log_levels_are_parsed_by_name);
	tcase_add_test(tc, find_network_key_and_signing_key);
	tcase_add_test(tc, load_reads_a_file);
	tcase_add_test(tc, load_of_missing_file_returns_errno);
	tcase_add_test(tc, error_message_is_one_line);
	tcase_add_test(tc, example_config_matches_option_table);
	tcase_add_test(tc, example_config_parses);
	tcase_add_test(tc, garbage_inputs_do_not_crash);
	tcase_add_test(tc, reload_plan_of_an_equal_config_changes_nothing);
	tcase_add_test(tc, reload_applies_run_time_keys);
	tcase_add_test(tc, reload_lists_restart_only_keys_and_keeps_them);
	tcase_add_test(tc, reload_applies_a_moved_validator_address);
	tcase_add_test(tc, reload_does_not_apply_a_changed_validator_set);
	tcase_add_test(tc, reload_refused_when_an_ordering_needs_a_restart);
	tcase_add_test(tc, reload_message_is_cut_to_its_buffer);
	tcase_add_test(tc, every_key_is_documented_in_qsd_yaml_5);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (!getcwd(srcdir, sizeof(srcdir))) {
		perror("getcwd");
		return EXIT_FAILURE;
	}
	/* Not qs_test_mkdtemp(): Check's asserts only work inside a test. */
	snprintf(basedir, sizeof(basedir), "%s/qsd-test-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(basedir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	sr = srunner_create(config_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	qs_test_rmtree(basedir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
