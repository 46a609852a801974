/*
 * The validator-to-validator transport: TCP + TLS 1.3 (net/tls.h), frames of
 * one PeerMessage (net/frame.h), on libevent bufferevents.
 *
 * Identity. A connection's peer is the index of the validator whose network
 * key its TLS certificate carries (the pin), never a field the peer sends.
 * After the handshake each side sends Hello{epoch, author, protocol_version,
 * chain_id, now_us} first; the other side requires author to be that
 * validator's signing key and chain_id and protocol_version to equal its own.
 * An epoch other than ours is logged and accepted (batches of another epoch
 * are refused by validation). The TLS handshake and the Hello exchange must
 * finish within QS_PEER_HANDSHAKE_TIMEOUT_MS.
 *
 * Topology. Each node listens on cfg->listen and dials every validator with
 * an index greater than its own, so a pair of validators shares one
 * connection; it accepts inbound connections from any validator. Dialing
 * retries with capped exponential backoff and jitter (QS_PEER_BACKOFF_*),
 * and only while the validator has no usable connection, so an inbound one
 * is not replaced by our own dial. When an authenticated connection
 * completes its Hello for a validator that already has one, the new one
 * replaces the old (which is closed and logged: the peer restarted, or its
 * old connection is half dead).
 *
 * Violations. A frame over cfg->limits.frame_max_bytes (checked from its
 * header, before allocation), a frame that does not decode within the
 * budget QS_PEER_DECODE_BUDGET(), a PeerMessage with no field set, or a
 * second Hello closes that connection with a logged reason and a count in
 * qsd_peer_disconnects_total{reason}; other connections are unaffected.
 *
 * Metrics (registered in qs_peers_start(); label peer = validator names):
 *   qsd_peer_connected{peer}                 gauge, 1 while usable
 *   qsd_peer_clock_skew_seconds{peer}        gauge, peer's Hello now_us minus
 *                                            our clock at receipt, rounded to
 *                                            whole seconds (the gauges hold
 *                                            int64; the exact value is in the
 *                                            peer_connected log line and
 *                                            qs_peers_clock_skew_us())
 *   qsd_tls_handshake_failures_total{reason} unknown_key, not_ed25519,
 *                                            no_certificate, handshake_error,
 *                                            hello_invalid, timeout
 *   qsd_peer_disconnects_total{reason}       of usable connections:
 *                                            oversized_frame, undecodable,
 *                                            unexpected_message, eof, error,
 *                                            replaced, slow_reader,
 *                                            protocol_violation, shutdown,
 *                                            address_changed
 *   qsd_peer_frames_received_total           frames taken off the wire
 *   qsd_peer_bytes_received_total            their bytes, headers included
 * A connection that fails before its Hello was accepted counts as a
 * handshake failure, one that was usable as a disconnect. The per-peer
 * families exist only when the set has at most QS_METRICS_MAX_VALUES
 * validators.
 *
 * Threads. Everything runs on the thread of the event_base: every function
 * here must be called there, and the handlers are called there.
 */
#ifndef QS_NET_PEER_H
#define QS_NET_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "quorumstore/v1/peer.pb-c.h"

#define QS_PEER_HANDSHAKE_TIMEOUT_MS 10000 /* TCP connect + TLS + Hello */
#define QS_PEER_BACKOFF_MIN_MS       100
#define QS_PEER_BACKOFF_MAX_MS       5000
#define QS_PEER_BACKOFF_JITTER_PCT   20    /* each delay is +-20% */
#define QS_PEER_BACKOFF_RESET_MS     10000 /* a connection that lived longer resets it */
#define QS_PEER_OUTBUF_MAX_BYTES     (64u * 1024 * 1024) /* or 4 frames, if more */
#define QS_PEER_WRITE_STALL_MS       10000               /* output pending, not one byte written */
#define QS_PEER_MAX_PENDING          64                  /* inbound connections before Hello */
#define QS_PEER_LISTEN_BACKLOG       128
/* Most bytes protobuf-c may allocate to decode one frame of `frame` bytes. */
#define QS_PEER_DECODE_BUDGET(frame) (4 * (size_t)(frame) + 64 * 1024)

struct event_base;
struct qs_config;
struct qs_metrics;
struct qs_peers;

struct qs_peers_handlers {
	/*
	 * A decoded message from validator `peer`, after its Hello was
	 * accepted; never a Hello. The handler owns `msg` and frees it with
	 * qs_frame_msg_free(). It may call qs_peers_send(),
	 * qs_peers_set_reading() and qs_peers_close() (even for `peer`), but
	 * not qs_peers_free().
	 */
	void (*on_message)(void *arg, int peer, Quorumstore__V1__PeerMessage *msg);
	/*
	 * Validator `peer`'s connection became usable (connected = 1, after
	 * the Hello exchange; qs_peers_send() works from here on) or went away
	 * (0; messages sent on it may have been lost). A replacement calls 0
	 * then 1. Not called from qs_peers_free(). May be NULL.
	 */
	void (*on_state)(void *arg, int peer, int connected);
};

/*
 * Start listening on cfg->listen ("A.B.C.D:PORT" or "[IPv6]:PORT", numeric)
 * and dialing the validators after `self` at their configured addresses
 * (numeric, or host names resolved with evdns). `self` is this node's index
 * in cfg->validators; `network_key` (borrowed; the TLS contexts take their
 * own references) must be the private key of cfg->validators[self]
 * .network_key and `self_signing_key` equal cfg->validators[self]
 * .signing_key. `cfg`, `h`'s functions' `arg` and `metrics` are borrowed and
 * must outlive the transport; `h` is copied. The metric families above are
 * registered in `metrics` (registering them twice in one registry aborts).
 *
 * On success returns 0 and sets *out, freed with qs_peers_free(). On failure
 * *out is untouched, one line is written into err (errlen bytes) and the
 * result is QS_ECONFIG (bad `self`, keys not matching the config, malformed
 * listen address), QS_ECRYPTO / QS_EKEY (TLS setup), -errno when the
 * listener cannot be bound (-EADDRINUSE, ...) or -ENOMEM.
 */
int qs_peers_start(struct event_base *base, const struct qs_config *cfg, int self,
                   EVP_PKEY *network_key, const uint8_t self_signing_key[32],
                   const struct qs_peers_handlers *h, void *arg, struct qs_metrics *metrics,
                   struct qs_peers **out, char *err, size_t errlen);

/*
 * Queue `msg` (borrowed; packed before returning) for validator `peer`.
 * Returns 0; -ENOTCONN when that validator has no usable connection (also
 * for `self` and indexes out of range); QS_ELIMIT when the packed message is
 * over the frame limit (nothing is queued, the connection stays); -ENOMEM.
 * When the connection's outbound buffer grows beyond
 * max(QS_PEER_OUTBUF_MAX_BYTES, 4 frames) the peer is not reading: the
 * connection is closed as a slow reader (on_state(peer, 0) is called before
 * this returns) and -ENOTCONN is returned.
 *
 * A peer that stops reading with less than that queued (it also stopped
 * sending, so nothing makes the buffer grow) is found by the write-stall
 * timeout instead: a usable connection with bytes to send of which not one
 * could be written for QS_PEER_WRITE_STALL_MS is closed as a slow reader too,
 * from the loop (on_state(peer, 0)), so that it does not hold its buffer for
 * ever. Every write that makes progress restarts that clock: a peer that
 * reads slowly is bounded by the size alone.
 */
int qs_peers_send(struct qs_peers *p, int peer, const Quorumstore__V1__PeerMessage *msg);

/*
 * Queue `msg` (borrowed) for every validator with a usable connection,
 * packed once: each connection's buffer holds a reference to the one frame,
 * freed when the last has sent it. Returns how many connections it was
 * queued on (a connection closed as a slow reader by it, as with
 * qs_peers_send(), not counted); QS_ELIMIT over the frame limit (nothing is
 * queued); -ENOMEM.
 */
int qs_peers_broadcast(struct qs_peers *p, const Quorumstore__V1__PeerMessage *msg);

/* 1 when validator `peer` has a usable connection, else 0. */
int qs_peers_connected(const struct qs_peers *p, int peer);

/* The clock skew measured from `peer`'s last accepted Hello (its now_us
 * minus our wall clock at receipt, in microseconds), or 0 if none. */
int64_t qs_peers_clock_skew_us(const struct qs_peers *p, int peer);

/*
 * Back pressure. With enabled = 0, stop reading from every connection
 * (bufferevent_disable(EV_READ)) and stop delivering messages: frames
 * already read stay in their input buffer. With 1, resume reading and
 * deliver what was held (from a callback scheduled on the loop, not from
 * this call). Connections that become usable meanwhile inherit the state.
 * Cheap when the state does not change.
 */
void qs_peers_set_reading(struct qs_peers *p, int enabled);

/*
 * Close validator `peer`'s usable connection because the caller found a
 * protocol violation; `reason` (borrowed) is logged, and the close counted
 * as qsd_peer_disconnects_total{reason="protocol_violation"}. on_state(peer,
 * 0) is called before this returns. Nothing happens if the validator has no
 * usable connection. We redial it if it is ours to dial.
 */
void qs_peers_close(struct qs_peers *p, int peer, const char *reason);

/*
 * Take the run-time settings again from the config this transport borrows,
 * after qs_config_reload_apply() changed it in place:
 *   - limits.frame_max_bytes, for every frame read or sent from now on (and
 *     the decode budget and slow-reader bound that follow from it);
 *   - each validator's address. A validator this node dials whose address
 *     changed is dialed at the new one now (backoff reset): a connection
 *     being dialed, or a usable one we dialed, to the old address is closed
 *     (qsd_peer_disconnects_total{reason="address_changed"}). A usable
 *     connection the validator dialed itself stays. For validators that
 *     dial us the new address is only recorded.
 * Returns 0, or QS_ECONFIG when an address is not a numeric host:port (it
 * keeps its running address; the others are applied). The validator set
 * itself (count, keys) must be the one the transport started with.
 */
int qs_peers_reload(struct qs_peers *p);

/*
 * Close every connection (counted as "shutdown"), the listener and every
 * timer, with no handler called from here on. Call it on the loop's thread,
 * not from a handler, before freeing the event_base. Accepts NULL.
 */
void qs_peers_free(struct qs_peers *p);

#endif
