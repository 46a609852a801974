/*
 * Length-prefixed protobuf frames over evbuffers, decoded under an
 * allocation budget (see net/frame.h).
 */
#include "net/frame.h"

#include "core/codec.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/*
 * Precedes every block handed to protobuf-c. A block of its own (malloc'ed
 * alone, freed alone) has its size and no arena; a block cut from an arena
 * names the arena, which is freed whole. 16 bytes, so the block after it is
 * aligned as malloc() would align it.
 */
struct qs_frame_block {
	size_t size;                  /* bytes malloc'ed, header included; 0 in an arena */
	struct qs_frame_arena *arena; /* NULL for a block of its own */
};
_Static_assert(sizeof(struct qs_frame_block) % _Alignof(max_align_t) == 0,
               "a block header keeps the block aligned");

/* Bytes live for one qs_frame_unpack() call; lives on its stack. */
struct qs_frame_budget {
	size_t used;
	size_t limit;
};

/* One malloc() of an arena; blocks are cut from data[] in order. */
struct qs_frame_chunk {
	struct qs_frame_chunk *next;
	size_t used, cap; /* bytes of data[] */
	_Alignas(max_align_t) unsigned char data[];
};

/*
 * Every block of one message decoded by qs_frame_unpack_arena(): blocks are
 * cut from a few large chunks and never freed one by one, so a message of
 * hundreds of fields costs a few malloc() calls instead of hundreds.
 */
struct qs_frame_arena {
	struct qs_frame_chunk *chunks; /* newest first */
	struct qs_frame_budget budget; /* bytes cut, headers included */
	size_t next_cap;               /* data[] bytes of the next chunk */
};

/* The first chunk holds a frame of `len` bytes decoded, most of the time:
 * bytes fields are copied as they are, and the structs and headers of small
 * fields take about as much again as their encoding. */
#define QS_FRAME_ARENA_FIRST(len) (2 * (size_t)(len) + 1024)

/*
 * protobuf-c's alloc callback. `data` is the call's budget; a request that
 * would take the live total over it fails, which makes the unpack fail
 * (protobuf-c then frees what it had taken, through qs_frame_block_free()).
 */
static void *
qs_frame_block_alloc(void *data, size_t size)
{
	struct qs_frame_budget *budget = data;
	struct qs_frame_block *block;
	size_t total;

	if (size > SIZE_MAX - sizeof(*block))
		return NULL;
	total = sizeof(*block) + size;
	if (budget != NULL && (total > budget->limit || budget->used > budget->limit - total))
		return NULL;
	block = malloc(total);
	if (block == NULL)
		return NULL;
	block->size = total;
	block->arena = NULL;
	if (budget != NULL)
		budget->used += total;
	return block + 1;
}

/* protobuf-c's free callback: `data` is the budget while decoding, NULL later. */
static void
qs_frame_block_free(void *data, void *ptr)
{
	struct qs_frame_budget *budget = data;
	struct qs_frame_block *block;

	if (ptr == NULL)
		return;
	block = (struct qs_frame_block *)ptr - 1;
	if (budget != NULL)
		budget->used -= block->size;
	free(block);
}

/* Frees blocks of any decoded message; stateless, so shared by all threads
 * (protobuf-c only reads it). */
static ProtobufCAllocator qs_frame_free_allocator = {
    .alloc = qs_frame_block_alloc,
    .free = qs_frame_block_free,
    .allocator_data = NULL,
};

/*
 * protobuf-c's alloc callback for an arena decode. The budget counts every
 * byte cut, freed or not: the arena gives nothing back before the message
 * goes, so what was cut is what the message holds.
 */
static void *
qs_frame_arena_alloc(void *data, size_t size)
{
	struct qs_frame_arena *arena = data;
	struct qs_frame_budget *budget = &arena->budget;
	const size_t align = _Alignof(max_align_t);
	struct qs_frame_chunk *chunk = arena->chunks;
	struct qs_frame_block *block;
	size_t total, cap;

	if (size > SIZE_MAX - sizeof(*block) - align)
		return NULL;
	total = sizeof(*block) + (size + align - 1) / align * align;
	if (total > budget->limit || budget->used > budget->limit - total)
		return NULL;
	if (chunk == NULL || chunk->cap - chunk->used < total) {
		cap = arena->next_cap;
		if (cap > budget->limit - budget->used)
			cap = budget->limit - budget->used;
		if (cap < total)
			cap = total;
		chunk = malloc(sizeof(*chunk) + cap);
		if (chunk == NULL)
			return NULL;
		chunk->next = arena->chunks;
		chunk->used = 0;
		chunk->cap = cap;
		arena->chunks = chunk;
		arena->next_cap = cap <= SIZE_MAX / 2 ? 2 * cap : cap;
	}
	block = (struct qs_frame_block *)(chunk->data + chunk->used);
	block->size = 0;
	block->arena = arena;
	chunk->used += total;
	budget->used += total;
	return block + 1;
}

/* protobuf-c's free callback for an arena decode: blocks go with the arena. */
static void
qs_frame_arena_block_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

static void
qs_frame_arena_free(struct qs_frame_arena *arena)
{
	struct qs_frame_chunk *chunk, *next;

	for (chunk = arena->chunks; chunk != NULL; chunk = next) {
		next = chunk->next;
		free(chunk);
	}
	free(arena);
}

int
qs_frame_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                size_t budget, ProtobufCMessage **out)
{
	struct qs_frame_budget counter = {.used = 0, .limit = budget};
	ProtobufCAllocator allocator = {
	    .alloc = qs_frame_block_alloc,
	    .free = qs_frame_block_free,
	    .allocator_data = &counter,
	};
	ProtobufCMessage *msg;

	msg = protobuf_c_message_unpack(desc, &allocator, len, buf);
	if (msg == NULL)
		return QS_EDECODE;
	*out = msg;
	return 0;
}

int
qs_frame_unpack_arena(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                      size_t budget, ProtobufCMessage **out)
{
	struct qs_frame_arena *arena = malloc(sizeof(*arena));
	ProtobufCAllocator allocator = {
	    .alloc = qs_frame_arena_alloc,
	    .free = qs_frame_arena_block_free,
	    .allocator_data = arena,
	};
	ProtobufCMessage *msg;

	if (arena == NULL)
		return -ENOMEM;
	arena->chunks = NULL;
	arena->budget.used = 0;
	arena->budget.limit = budget;
	arena->next_cap = len <= (SIZE_MAX - 1024) / 2 ? QS_FRAME_ARENA_FIRST(len) : SIZE_MAX;
	msg = protobuf_c_message_unpack(desc, &allocator, len, buf);
	if (msg == NULL) {
		qs_frame_arena_free(arena);
		return QS_EDECODE;
	}
	*out = msg;
	return 0;
}

int
qs_frame_read(struct evbuffer *in, size_t max_frame_bytes, const ProtobufCMessageDescriptor *desc,
              size_t budget, ProtobufCMessage **out)
{
	uint8_t header[QS_FRAME_HEADER_BYTES];
	ProtobufCMessage *msg;
	unsigned char *frame;
	size_t have = evbuffer_get_length(in), len;
	int rc = 0;

	if (have < QS_FRAME_HEADER_BYTES)
		goto out;
	if (evbuffer_copyout(in, header, sizeof(header)) != (ev_ssize_t)sizeof(header)) {
		rc = -ENOMEM;
		goto out;
	}
	len = qs_get_be32(header);
	if (len > max_frame_bytes) {
		rc = QS_ELIMIT;
		goto out;
	}
	if (have - QS_FRAME_HEADER_BYTES < len)
		goto out;
	frame = evbuffer_pullup(in, (ev_ssize_t)(QS_FRAME_HEADER_BYTES + len));
	if (frame == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = qs_frame_unpack(desc, frame + QS_FRAME_HEADER_BYTES, len, budget, &msg);
	evbuffer_drain(in, QS_FRAME_HEADER_BYTES + len);
	if (rc != 0)
		goto out;
	*out = msg;
	rc = 1;
out:
	return rc;
}

void
qs_frame_read_failure(int rc, struct evbuffer *in, size_t before, size_t max_frame_bytes, char *why,
                      size_t why_len)
{
	uint8_t header[QS_FRAME_HEADER_BYTES];

	if (why == NULL || why_len == 0)
		return;
	if (rc == QS_ELIMIT) {
		/* Nothing was consumed: the header is still at the front. */
		evbuffer_copyout(in, header, sizeof(header));
		snprintf(why, why_len, "frame of %" PRIu32 " bytes, limit %zu", qs_get_be32(header),
		         max_frame_bytes);
	} else if (rc == QS_EDECODE) {
		snprintf(why, why_len, "a frame of %zu bytes does not decode",
		         before - evbuffer_get_length(in) - QS_FRAME_HEADER_BYTES);
	} else {
		snprintf(why, why_len, "reading a frame: %s", qs_strerror(rc));
	}
}

int
qs_frame_size(const ProtobufCMessage *msg, size_t max_frame_bytes, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(msg);
	return *len > max_frame_bytes || *len > UINT32_MAX ? QS_ELIMIT : 0;
}

void
qs_frame_pack(const ProtobufCMessage *msg, size_t len, uint8_t *frame)
{
	size_t packed;

	qs_put_be32(frame, (uint32_t)len);
	packed = protobuf_c_message_pack(msg, frame + QS_FRAME_HEADER_BYTES);
	if (packed != len) {
		/* get_packed_size and pack disagree only for a message whose
		 * fields changed in between: a caller bug, never input. */
		fprintf(stderr, "qs_frame_pack: packed %zu bytes, expected %zu\n", packed, len);
		abort();
	}
}

int
qs_frame_write(struct evbuffer *out, const ProtobufCMessage *msg, size_t max_frame_bytes)
{
	struct evbuffer_iovec vec;
	size_t len;
	int rc;

	rc = qs_frame_size(msg, max_frame_bytes, &len);
	if (rc != 0)
		goto out;
	/* One iovec: the reserved space is contiguous, so protobuf-c packs
	 * straight into the buffer's chain. */
	rc = -ENOMEM;
	if (evbuffer_reserve_space(out, (ev_ssize_t)(QS_FRAME_HEADER_BYTES + len), &vec, 1) != 1)
		goto out;
	if (vec.iov_len < QS_FRAME_HEADER_BYTES + len)
		goto out;
	qs_frame_pack(msg, len, vec.iov_base);
	vec.iov_len = QS_FRAME_HEADER_BYTES + len;
	if (evbuffer_commit_space(out, &vec, 1) != 0)
		goto out;
	rc = 0;
out:
	return rc;
}

void
qs_frame_msg_free(ProtobufCMessage *msg)
{
	struct qs_frame_block *block;

	if (msg == NULL)
		return;
	block = (struct qs_frame_block *)(void *)msg - 1;
	if (block->arena != NULL)
		qs_frame_arena_free(block->arena);
	else
		protobuf_c_message_free_unpacked(msg, &qs_frame_free_allocator);
}

int
qs_frame_bytes_own_blocks(const ProtobufCBinaryData *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].data && ((struct qs_frame_block *)(void *)v[i].data - 1)->arena != NULL)
			return 0;
	}
	return 1;
}

void
qs_frame_bytes_disown(ProtobufCBinaryData *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		v[i].data = NULL;
		v[i].len = 0;
	}
}

void
qs_frame_bytes_free(void *block)
{
	qs_frame_block_free(NULL, block);
}

int
qs_frame_bev_tune(struct bufferevent *bev)
{
	if (bufferevent_set_max_single_read(bev, QS_FRAME_MAX_SINGLE_IO) != 0 ||
	    bufferevent_set_max_single_write(bev, QS_FRAME_MAX_SINGLE_IO) != 0)
		return -1;
	return 0;
}
