/*
 * CRC32C (Castagnoli) for RocksDB's record and block checksums.
 *
 * Debian's librocksdb is built portable, so its crc32c::Extend is the
 * table-driven code (about 1.2 GB/s here) even on CPUs with the SSE 4.2
 * CRC32 instruction. RocksDB checksums every WAL record and, at a flush,
 * every blob record, so each payload is checksummed twice in that code:
 * about 110 us per 64 KiB batch. qsd defines the same symbol, so the
 * dynamic linker binds RocksDB's own calls to this module (the library
 * calls it through its PLT), which uses the instruction where the CPU has
 * it and the same table arithmetic otherwise. Same function, same values:
 * files written with either are read by the other.
 */
#ifndef QS_STORAGE_CRC32C_H
#define QS_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c::Extend's contract: the CRC of (the data behind crc) + buf. */
uint32_t qs_crc32c_extend(uint32_t crc, const void *buf, size_t n);

/* The same, a byte at a time through a table: what qs_crc32c_extend uses
 * on CPUs without the instruction (and what tests compare it with). */
uint32_t qs_crc32c_extend_table(uint32_t crc, const void *buf, size_t n);

/* "sse4.2" or "table": what qs_crc32c_extend uses on this CPU. */
const char *qs_crc32c_impl(void);

/* 1 if RocksDB's crc32c::Extend resolves to this module in this process. */
int qs_crc32c_serves_rocksdb(void);

#endif
