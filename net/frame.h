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
 * a small header holding its size. The budget lives in a per-call counter on
 * qs_frame_read()'s stack, so decoding keeps no global or thread-local state
 * and may run on any thread at once. Freeing needs no state: the size is in
 * the block, so qs_frame_msg_free() may run on any thread, later.
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
 * Append `msg` packed as one frame to `out`, packing straight into the
 * buffer's own memory. Returns 0, QS_ELIMIT when the packed message would
 * exceed max_frame_bytes or 2^32 - 1 bytes (nothing is appended), or -ENOMEM
 * (nothing is appended).
 */
int qs_frame_write(struct evbuffer *out, const ProtobufCMessage *msg, size_t max_frame_bytes);

/* Free a message returned by qs_frame_read(), on any thread; NULL is fine. */
void qs_frame_msg_free(ProtobufCMessage *msg);

#endif
