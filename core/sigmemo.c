#include "core/sigmemo.h"

#include <stdlib.h>
#include <string.h>

struct qs_sigmemo_entry {
	uint8_t msg[QS_INFO_SIGNING_BYTES]; /* all zero: empty */
	uint8_t sig[QS_SIG_BYTES];
};

struct qs_sigmemo {
	size_t mask;
	struct qs_sigmemo_entry e[];
};

struct qs_sigmemo *
qs_sigmemo_new(size_t slots)
{
	struct qs_sigmemo *m;

	if (slots == 0 || slots > QS_SIGMEMO_MAX_SLOTS || (slots & (slots - 1)) != 0)
		return NULL;
	m = calloc(1, sizeof(*m) + slots * sizeof(m->e[0]));
	if (!m)
		return NULL;
	m->mask = slots - 1;
	return m;
}

void
qs_sigmemo_free(struct qs_sigmemo *m)
{
	free(m);
}

static size_t
sigmemo_slot(const struct qs_sigmemo *m, const struct qs_batch_info *info)
{
	uint64_t h;

	memcpy(&h, info->digest, sizeof(h));
	return (size_t)(h & m->mask);
}

void
qs_sigmemo_put(struct qs_sigmemo *m, uint32_t chain_id, const struct qs_batch_info *info,
               const uint8_t sig[QS_SIG_BYTES])
{
	struct qs_sigmemo_entry *e = &m->e[sigmemo_slot(m, info)];

	qs_codec_info_signing_bytes(chain_id, info, e->msg);
	memcpy(e->sig, sig, QS_SIG_BYTES);
}

bool
qs_sigmemo_has(const struct qs_sigmemo *m, uint32_t chain_id, const struct qs_batch_info *info,
               const uint8_t sig[QS_SIG_BYTES])
{
	const struct qs_sigmemo_entry *e = &m->e[sigmemo_slot(m, info)];
	uint8_t msg[QS_INFO_SIGNING_BYTES];

	/* The signature first: the cheap test that almost every miss fails. */
	if (memcmp(e->sig, sig, QS_SIG_BYTES) != 0)
		return false;
	qs_codec_info_signing_bytes(chain_id, info, msg);
	return memcmp(e->msg, msg, sizeof(msg)) == 0;
}
