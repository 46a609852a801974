/*
 * The config reader: YAML text through qs_config_parse(), the entry point
 * qs_config_load() ends in. Key files must exist with mode 0600, so the
 * harness makes one (a memfd, nothing on disk) and writes its path wherever
 * the input says "@KEY@". A config that parses is then compared with itself
 * and with a base config (qs_config_reload_plan()), applied onto a fresh
 * base (qs_config_reload_apply()), and planned again, which must find
 * nothing left to apply.
 */
#include "fuzz/fuzz.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/error.h"

#define CF_KEY_TOKEN "@KEY@"

static const char cf_base_yaml[] =
    "chain_id: 1\n"
    "epoch: 1\n"
    "listen: 127.0.0.1:7001\n"
    "data_dir: /var/lib/qsd\n"
    "network_key: @KEY@\n"
    "signing_key: @KEY@\n"
    "validators:\n"
    "  - name: v0\n"
    "    address: 127.0.0.1:7001\n"
    "    network_key: "
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n"
    "    signing_key: "
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\n"
    "    voting_power: 1\n";

static char cf_key_path[64];

static void
cf_init(void)
{
	int fd = memfd_create("qsd-fuzz-key", MFD_CLOEXEC);

	QS_FUZZ_CHECK(fd >= 0, "memfd_create");
	QS_FUZZ_CHECK(write(fd, "key\n", 4) == 4, "write the key file");
	QS_FUZZ_CHECK(fchmod(fd, 0600) == 0, "fchmod the key file");
	snprintf(cf_key_path, sizeof(cf_key_path), "/proc/self/fd/%d", fd);
}

/* `in` with every CF_KEY_TOKEN replaced by the key path; *len its length. */
static char *
cf_expand(const uint8_t *in, size_t size, size_t *len)
{
	size_t tok = strlen(CF_KEY_TOKEN), path = strlen(cf_key_path), n = 0, o = 0;
	char *out;

	for (size_t i = 0; i + tok <= size; i++)
		if (memcmp(in + i, CF_KEY_TOKEN, tok) == 0)
			n++;
	out = malloc(size + n * path + 1);
	QS_FUZZ_CHECK(out != NULL, "malloc");
	for (size_t i = 0; i < size;) {
		if (i + tok <= size && memcmp(in + i, CF_KEY_TOKEN, tok) == 0) {
			memcpy(out + o, cf_key_path, path);
			o += path;
			i += tok;
		} else {
			out[o++] = (char)in[i++];
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

static struct qs_config *
cf_parse(const uint8_t *in, size_t size, int *rc, char *err, size_t errlen)
{
	struct qs_config *cfg = NULL;
	size_t len;
	char *text = cf_expand(in, size, &len);

	*rc = qs_config_parse("fuzz.yaml", text, len, &cfg, err, errlen);
	free(text);
	return *rc == 0 ? cfg : NULL;
}

static void
cf_check(const struct qs_config *cfg)
{
	char err[QS_CONFIG_ERR_MAX], msg[QS_CONFIG_ERR_MAX];
	struct qs_reload_plan plan;
	struct qs_config *base, *live;
	int rc;

	QS_FUZZ_CHECK(cfg->n_validators >= 1 && cfg->n_validators <= QS_MAX_VALIDATORS,
	              "validator count");
	for (size_t i = 0; i < cfg->n_validators; i++) {
		QS_FUZZ_CHECK(qs_config_find_network_key(cfg, cfg->validators[i].network_key) ==
		                  (int)i,
		              "network keys not unique");
		QS_FUZZ_CHECK(qs_config_find_signing_key(cfg, cfg->validators[i].signing_key) ==
		                  (int)i,
		              "signing keys not unique");
	}
	QS_FUZZ_CHECK(qs_log_level_name(cfg->log_level) != NULL, "log level");

	QS_FUZZ_CHECK(qs_config_reload_plan(cfg, cfg, &plan, msg, sizeof(msg)) == 0,
	              "a config cannot reload itself");
	QS_FUZZ_CHECK(plan.groups == 0 && plan.n_applied == 0 && plan.n_restart == 0 &&
	                  msg[0] == '\0',
	              "a config differs from itself");

	base = cf_parse((const uint8_t *)cf_base_yaml, strlen(cf_base_yaml), &rc, err, sizeof(err));
	QS_FUZZ_CHECK(base != NULL, err);
	if (qs_config_reload_plan(base, cfg, &plan, msg, sizeof(msg)) != 0)
		goto out;
	live = base;
	rc = qs_config_reload_apply(live, cfg, &plan);
	QS_FUZZ_CHECK(rc == 0, "reload apply");
	QS_FUZZ_CHECK(qs_config_reload_plan(live, cfg, &plan, msg, sizeof(msg)) == 0,
	              "a reloaded config cannot reload again");
	QS_FUZZ_CHECK(plan.n_applied == 0 && plan.groups == 0,
	              "run-time keys still differ after a reload");
out:
	qs_config_free(base);
}

int
qs_fuzz_config(const uint8_t *data, size_t size)
{
	char err[QS_CONFIG_ERR_MAX];
	struct qs_config *cfg;
	int rc;

	if (!cf_key_path[0])
		cf_init();
	memset(err, 0x55, sizeof(err));
	cfg = cf_parse(data, size, &rc, err, sizeof(err));
	QS_FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "error message not terminated");
	if (!cfg) {
		QS_FUZZ_CHECK(rc == QS_ECONFIG || rc == -ENOMEM, "unexpected error code");
		QS_FUZZ_CHECK(err[0] != '\0', "a refusal without a message");
		return 0;
	}
	cf_check(cfg);
	qs_config_free(cfg);
	return 0;
}

#ifndef QS_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return qs_fuzz_config(data, size);
}
#endif
