/*
 * Framing shared by the peer protocol and the RPC socket: a 4-byte
 * big-endian length, then that many bytes of one protobuf message.
 *
 * The length is checked against the caller's limit before anything is
 * allocated, and decoding runs under an allocation budget so that a small
 * frame cannot make protobuf-c allocate without bound (a frame of empty
 * repeated submessages costs two bytes on the wire each, but tens of bytes
 * in memory).
 *
 * Allocator. Every block protobuf-c allocates for a decoded message carries
 * a small header: its size, or the arena it was cut from. The budget lives
 * in a per-call counter (on qs_frame_unpack()'s stack, or in the arena), so
 * decoding keeps no global or thread-local state and may run on any thread
 * at once. Freeing needs no state either: the header says how, so
 * qs_frame_msg_free() may run on any thread, later.
 */
#ifndef QS_NET_FRAME_H
#define QS_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <protobuf-c/protobuf-c.h>

#define QS_FRAME_HEADER_BYTES 4

/*
 * Take one whole frame from `in` and decode it as a `desc` message.
 * Returns 1 and sets *out (free it with qs_frame_msg_free()) when a frame was
 * taken; 0 when `in` does not hold a whole frame yet (nothing is consumed);
 * QS_ELIMIT when the announced length exceeds max_frame_bytes (nothing is
 * consumed or allocated, so this is known as soon as the header arrived);
 * QS_EDECODE when the frame does not decode, or decoding would allocate more
 * than `budget` bytes (the frame is consumed); -ENOMEM when the frame cannot
 * be made contiguous (nothing is consumed).
 */
int qs_frame_read(struct evbuffer *in, size_t max_frame_bytes,
                  const ProtobufCMessageDescriptor *desc, size_t budget, ProtobufCMessage **out);

/*
 * Why a qs_frame_read() on `in` failed with `rc` (< 0), as the reason a
 * connection is closed with; call it right after that read, before `in`
 * changes. `before` is the length of `in` before the read and
 * max_frame_bytes the limit it was given. Names the announced length for
 * QS_ELIMIT and the size of the dropped frame for QS_EDECODE. Writes into
 * why[why_len] as snprintf() does; nothing when `why` is NULL or why_len 0.
 */
void qs_frame_read_failure(int rc, struct evbuffer *in, size_t before, size_t max_frame_bytes,
                           char *why, size_t why_len);

/*
 * Decode the `len` bytes at `buf` (one message, no frame header) as a `desc`
 * message, for a caller that frames its own bytes (client/qsclient.c).
 * Returns 0 and sets *out (free it with qs_frame_msg_free()), or QS_EDECODE
 * when the bytes do not decode or decoding would allocate more than `budget`
 * bytes (nothing stays allocated). `buf` stays the caller's; the message
 * does not point into it.
 */
int qs_frame_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                    size_t budget, ProtobufCMessage **out);

/*
 * qs_frame_unpack(), with the message's blocks cut from a few large chunks
 * (the first twice the encoded size, then doubling) that qs_frame_msg_free()
 * frees together: a few malloc() calls for a message of hundreds of fields,
 * where qs_frame_unpack() makes one per field. For a caller that holds a
 * message briefly (client/qsclient.c); a chunk may sit partly unused, so a
 * message kept long holds more memory than with qs_frame_unpack(). The
 * budget counts every byte cut. Also -ENOMEM.
 */
int qs_frame_unpack_arena(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                          size_t budget, ProtobufCMessage **out);

/*
 * Append `msg` packed as one frame to `out`, packing straight into the
 * buffer's own memory. Returns 0, QS_ELIMIT when the packed message would
 * exceed max_frame_bytes or 2^32 - 1 bytes (nothing is appended), or -ENOMEM
 * (nothing is appended).
 */
int qs_frame_write(struct evbuffer *out, const ProtobufCMessage *msg, size_t max_frame_bytes);

/*
 * Set *len to the packed size of `msg`; returns 0, or QS_ELIMIT when it is
 * over max_frame_bytes or 2^32 - 1 (the frame could not be sent).
 */
int qs_frame_size(const ProtobufCMessage *msg, size_t max_frame_bytes, size_t *len);

/*
 * Write `msg` as one frame into frame[0 .. QS_FRAME_HEADER_BYTES + len),
 * where `len` is what qs_frame_size() accepted. For a frame packed once and
 * queued on several connections (qs_peers_broadcast()).
 */
void qs_frame_pack(const ProtobufCMessage *msg, size_t len, uint8_t *frame);

/* Free a message returned by qs_frame_read() or qs_frame_unpack(), on any
 * thread; NULL is fine. */
void qs_frame_msg_free(ProtobufCMessage *msg);

/*
 * Handing bytes fields out of a decoded message, so that a payload kept
 * after the message goes is not copied (the payload cache takes peers'
 * transactions this way). `v` are fields of a message returned by
 * qs_frame_read() or qs_frame_unpack().
 *
 * qs_frame_bytes_own_blocks(): 1 if every non-empty v[i].data is a block
 * of its own, which qs_frame_bytes_disown() can hand over; 0 when they were
 * cut from an arena (qs_frame_unpack_arena()), which goes whole.
 * qs_frame_bytes_disown(): the message forgets v[0..n) (left empty; freeing
 * the message no longer frees them): whoever copied the pointers before
 * owns the blocks and frees each with qs_frame_bytes_free(), on any thread.
 */
int qs_frame_bytes_own_blocks(const ProtobufCBinaryData *v, size_t n);
void qs_frame_bytes_disown(ProtobufCBinaryData *v, size_t n);
void qs_frame_bytes_free(void *block);

/*
 * Most bytes a connection reads or writes per readiness event. libevent's
 * default is 16 KiB, so a 64 KiB batch or a 40 KiB GetPayload answer took
 * one trip through epoll per 16 KiB; one event now moves a whole frame.
 */
#define QS_FRAME_MAX_SINGLE_IO (256 * 1024)

struct bufferevent;

/* Let `bev` move QS_FRAME_MAX_SINGLE_IO per event. Returns 0 or -1. */
int qs_frame_bev_tune(struct bufferevent *bev);

#endif
