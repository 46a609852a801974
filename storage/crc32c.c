#include "storage/crc32c.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */

/* RocksDB's `uint32_t rocksdb::crc32c::Extend(uint32_t, const char *, size_t)`. */
#define ROCKSDB_EXTEND_SYM "_ZN7rocksdb6crc32c6ExtendEjPKcm"

static uint32_t crc_table[256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void
crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[i] = c;
	}
}

/* Byte at a time; for CPUs without the instruction. c is not inverted. */
static uint32_t
crc_soft(uint32_t c, const uint8_t *p, size_t n)
{
	pthread_once(&crc_table_once, crc_table_init);
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t c64;

	for (; n && ((uintptr_t)p & 7); n--)
		c = _mm_crc32_u8(c, *p++);
	c64 = c;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c64 = _mm_crc32_u64(c64, v);
	}
	c = (uint32_t)c64;
	while (n--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}

static int
have_hw(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	return crc_soft(c, p, n);
}

static int
have_hw(void)
{
	return 0;
}
#endif

uint32_t
qs_crc32c_extend(uint32_t crc, const void *buf, size_t n)
{
	uint32_t c = ~crc;

	c = have_hw() ? crc_hw(c, buf, n) : crc_soft(c, buf, n);
	return ~c;
}

uint32_t
qs_crc32c_extend_table(uint32_t crc, const void *buf, size_t n)
{
	return ~crc_soft(~crc, buf, n);
}

const char *
qs_crc32c_impl(void)
{
	return have_hw() ? "sse4.2" : "table";
}

/*
 * The definition RocksDB's calls bind to (see crc32c.h). C has no
 * namespaces; the assembler name is the C++ one, and the argument and
 * return types are the same in both languages' calling convention.
 */
uint32_t qs_rocksdb_crc32c_extend(uint32_t crc, const char *buf,
                                  size_t n) __asm__(ROCKSDB_EXTEND_SYM);

uint32_t
qs_rocksdb_crc32c_extend(uint32_t crc, const char *buf, size_t n)
{
	return qs_crc32c_extend(crc, buf, n);
}

int
qs_crc32c_serves_rocksdb(void)
{
	return dlsym(RTLD_DEFAULT, ROCKSDB_EXTEND_SYM) == (void *)qs_rocksdb_crc32c_extend;
}
