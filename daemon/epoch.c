#include "daemon/epoch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/error.h"

void
qs_epoch_config_free(struct qs_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_validators; i++) {
		free(c->validators[i].name);
		free(c->validators[i].address);
	}
	free(c);
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > QS_EPOCH_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return 0;
	}
	return 1;
}

int
qs_epoch_config(const struct qs_config *base, const struct qs_config *cur,
                const Quorumstore__V1__NewEpochRequest *req, const uint8_t *network_pub,
                const uint8_t *signing_pub, struct qs_config **out, int *self, char *msg,
                size_t len)
{
	struct qs_config *c = NULL;
	uint64_t total = 0;
	int me = -1, rc = QS_ECONFIG;

	if (req->epoch <= cur->epoch) {
		snprintf(msg, len, "epoch %" PRIu64 " is not after the current epoch %" PRIu64,
		         req->epoch, cur->epoch);
		goto out;
	}
	if (req->n_validators == 0 || req->n_validators > QS_MAX_VALIDATORS) {
		snprintf(msg, len, "%zu validators; 1 to %d are allowed", req->n_validators,
		         QS_MAX_VALIDATORS);
		goto out;
	}
	for (size_t i = 0; i < req->n_validators; i++) {
		const Quorumstore__V1__ValidatorInfo *v = req->validators[i];
		struct sockaddr_storage ss;
		socklen_t sl;
		const char *why = NULL;

		if (!valid_name(v->name)) {
			snprintf(msg, len,
			         "validators[%zu]: the name must be 1 to %d of A-Z a-z 0-9 _ . -",
			         i, QS_EPOCH_NAME_MAX);
			goto out;
		}
		if (qs_addr_parse(v->address, &ss, &sl, &why) != 0) {
			snprintf(msg, len, "validators[%zu] (%s): address '%.64s': %s", i, v->name,
			         v->address, why ? why : "invalid");
			goto out;
		}
		if (v->network_key.len != QS_KEY_BYTES || v->signing_key.len != QS_KEY_BYTES) {
			snprintf(msg, len, "validators[%zu] (%s): keys must be %d bytes", i,
			         v->name, QS_KEY_BYTES);
			goto out;
		}
		if (v->voting_power == 0 || v->voting_power > QS_MAX_VOTING_POWER ||
		    total + v->voting_power > QS_MAX_VOTING_POWER) {
			snprintf(msg, len,
			         "validators[%zu] (%s): voting power must be at least 1 and the "
			         "total at most %" PRIu64,
			         i, v->name, (uint64_t)QS_MAX_VOTING_POWER);
			goto out;
		}
		total += v->voting_power;
		for (size_t j = 0; j < i; j++) {
			const Quorumstore__V1__ValidatorInfo *w = req->validators[j];

			if (strcmp(v->name, w->name) == 0 || strcmp(v->address, w->address) == 0 ||
			    memcmp(v->network_key.data, w->network_key.data, QS_KEY_BYTES) == 0 ||
			    memcmp(v->signing_key.data, w->signing_key.data, QS_KEY_BYTES) == 0) {
				snprintf(
				    msg, len,
				    "validators[%zu] and [%zu] share a name, an address or a key",
				    j, i);
				goto out;
			}
		}
		if (memcmp(v->network_key.data, network_pub, QS_KEY_BYTES) == 0 ||
		    memcmp(v->signing_key.data, signing_pub, QS_KEY_BYTES) == 0) {
			if (memcmp(v->network_key.data, network_pub, QS_KEY_BYTES) != 0 ||
			    memcmp(v->signing_key.data, signing_pub, QS_KEY_BYTES) != 0) {
				snprintf(
				    msg, len,
				    "validators[%zu] (%s) has one of this node's keys but not both",
				    i, v->name);
				goto out;
			}
			me = (int)i;
		}
	}
	if (me < 0) {
		snprintf(msg, len, "this node's keys are not a validator of epoch %" PRIu64,
		         req->epoch);
		goto out;
	}
	rc = -ENOMEM;
	c = malloc(sizeof(*c));
	if (!c)
		goto out;
	*c = *base; /* every other field borrowed, see the header */
	c->epoch = req->epoch;
	c->n_validators = 0;
	for (size_t i = 0; i < req->n_validators; i++) {
		const Quorumstore__V1__ValidatorInfo *v = req->validators[i];
		struct qs_validator *d = &c->validators[i];

		memset(d, 0, sizeof(*d));
		c->n_validators = i + 1;
		d->name = strdup(v->name);
		d->address = strdup(v->address);
		if (!d->name || !d->address)
			goto out;
		memcpy(d->network_key, v->network_key.data, QS_KEY_BYTES);
		memcpy(d->signing_key, v->signing_key.data, QS_KEY_BYTES);
		d->voting_power = v->voting_power;
	}
	*out = c;
	*self = me;
	c = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM)
		snprintf(msg, len, "out of memory");
	qs_epoch_config_free(c);
	return rc;
}

int
qs_epoch_load(struct qs_store *st, const struct qs_config *base, const uint8_t *network_pub,
              const uint8_t *signing_pub, struct qs_config **out, int *self, char *msg, size_t len)
{
	uint8_t *buf = malloc(QS_EPOCH_SET_MAX);
	Quorumstore__V1__NewEpochRequest *req = NULL;
	struct qs_config before;
	int rc, n;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	n = qs_store_meta_get(st, QS_META_EPOCH_SET, buf, QS_EPOCH_SET_MAX);
	if (n == QS_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (n < 0) {
		rc = n;
		snprintf(msg, len, "cannot read %s: %s", QS_META_EPOCH_SET, qs_strerror(n));
		goto out;
	}
	req = quorumstore__v1__new_epoch_request__unpack(NULL, (size_t)n, buf);
	if (!req) {
		rc = QS_ECORRUPT;
		snprintf(msg, len, "%s does not decode", QS_META_EPOCH_SET);
		goto out;
	}
	if (req->epoch < base->epoch) {
		rc = 0; /* the config names a later epoch: an operator's decision */
		goto out;
	}
	/* Validated as a successor of the epoch before it. */
	before = *base;
	before.epoch = req->epoch - 1;
	rc = qs_epoch_config(base, &before, req, network_pub, signing_pub, out, self, msg, len);
	if (rc == QS_ECONFIG)
		rc = QS_ECORRUPT;
out:
	if (req)
		quorumstore__v1__new_epoch_request__free_unpacked(req, NULL);
	free(buf);
	return rc;
}
