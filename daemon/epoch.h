/*
 * Epoch changes. The config gives the first epoch and its validator set;
 * NewEpoch from consensus replaces them and is persisted in `meta`
 * ("epoch_set", the NewEpochRequest as received, once validated); at start
 * the persisted set wins over the config's when its epoch is not older.
 *
 * A config for an epoch is a copy of the base config with another epoch and
 * validator set: the validator names and addresses are its own, every other
 * pointer is borrowed from the base config, which must outlive it.
 */
#ifndef QS_DAEMON_EPOCH_H
#define QS_DAEMON_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "quorumstore/v1/rpc.pb-c.h"
#include "storage/store.h"

#define QS_META_EPOCH_SET "epoch_set"
#define QS_EPOCH_SET_MAX  (256u * 1024) /* bytes of a packed NewEpochRequest */
#define QS_EPOCH_NAME_MAX 64

/*
 * Check `req` as the successor of `cur` (a strictly later epoch; 1 to
 * QS_MAX_VALIDATORS validators with unique names of [A-Za-z0-9_.-]{1,64},
 * unique numeric host:port addresses, unique 32-byte network and signing
 * keys, voting powers >= 1 totalling at most QS_MAX_VOTING_POWER; this
 * node's two keys those of one validator) and build its config. Returns 0
 * and *out (free with qs_epoch_config_free()); QS_ECONFIG with one line in
 * msg when the request is refused; -ENOMEM. *self is this node's index in
 * the new set.
 */
int qs_epoch_config(const struct qs_config *base, const struct qs_config *cur,
                    const Quorumstore__V1__NewEpochRequest *req, const uint8_t *network_pub,
                    const uint8_t *signing_pub, struct qs_config **out, int *self, char *msg,
                    size_t len);

/*
 * At start: the persisted epoch, if any and not older than base->epoch.
 * Returns 0 with *out set (or NULL when the config's set stands) and *self;
 * QS_ECORRUPT when the record does not decode or is invalid (msg says why);
 * a storage error.
 */
int qs_epoch_load(struct qs_store *st, const struct qs_config *base, const uint8_t *network_pub,
                  const uint8_t *signing_pub, struct qs_config **out, int *self, char *msg,
                  size_t len);

/* Free a config made by this module; NULL is fine. */
void qs_epoch_config_free(struct qs_config *c);

#endif
