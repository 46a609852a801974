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

/* The register after one more zero bit of data. */
static uint32_t
crc_bit(uint32_t c)
{
	return (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
}

static void
crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = crc_bit(c);
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
/*
 * Appending n zero bytes to the data is a linear map of the (uninverted)
 * register. shift_op() builds it as 32 columns, each the image of one
 * register bit; shift_tables() turns it into four byte-indexed tables, so
 * that applying it costs four lookups.
 */
static uint32_t
op_apply(const uint32_t op[32], uint32_t v)
{
	uint32_t r = 0;

	for (int i = 0; v; i++, v >>= 1)
		if (v & 1)
			r ^= op[i];
	return r;
}

/* out = a after b (out may be neither). */
static void
op_compose(uint32_t out[32], const uint32_t a[32], const uint32_t b[32])
{
	for (int i = 0; i < 32; i++)
		out[i] = op_apply(a, b[i]);
}

static void
shift_op(size_t n_bytes, uint32_t op[32])
{
	uint32_t byte[32], sq[32], acc[32], t[32];

	/* One zero bit, then eight of them. */
	for (int i = 0; i < 32; i++)
		byte[i] = crc_bit(1u << i);
	for (int k = 0; k < 3; k++) {
		op_compose(sq, byte, byte);
		memcpy(byte, sq, sizeof(byte));
	}
	/* byte^n_bytes by squaring. */
	for (int i = 0; i < 32; i++)
		acc[i] = 1u << i;
	while (n_bytes) {
		if (n_bytes & 1) {
			op_compose(t, byte, acc);
			memcpy(acc, t, sizeof(acc));
		}
		op_compose(sq, byte, byte);
		memcpy(byte, sq, sizeof(byte));
		n_bytes >>= 1;
	}
	memcpy(op, acc, sizeof(acc));
}

static void
shift_tables(size_t n_bytes, uint32_t tab[4][256])
{
	uint32_t op[32];

	shift_op(n_bytes, op);
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++)
			tab[k][b] = op_apply(op, b << (8 * k));
}

static uint32_t
shift(uint32_t tab[4][256], uint32_t c)
{
	return tab[0][c & 0xff] ^ tab[1][(c >> 8) & 0xff] ^ tab[2][(c >> 16) & 0xff] ^
	       tab[3][c >> 24];
}

/*
 * The instruction takes three cycles and can start one per cycle: three
 * independent streams (thirds of a block, the second and third from a zero
 * register) keep it busy, and are joined by shifting the first past the
 * second and adding it, then the sum past the third. Blocks of 3 x 8 KiB,
 * then 3 x 256 bytes, then 8 bytes at a time.
 */
#define CRC_LONG  8192
#define CRC_SHORT 256

static uint32_t shift_long[4][256], shift_short[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void
shift_init(void)
{
	shift_tables(CRC_LONG, shift_long);
	shift_tables(CRC_SHORT, shift_short);
}

__attribute__((target("sse4.2"))) static uint64_t
crc_3way(uint64_t c0, const uint8_t **pp, size_t *np, size_t block, uint32_t tab[4][256])
{
	const uint8_t *p = *pp;
	size_t n = *np;

	while (n >= 3 * block) {
		uint64_t c1 = 0, c2 = 0;
		const uint8_t *end = p + block;

		do {
			uint64_t v0, v1, v2;

			memcpy(&v0, p, 8);
			memcpy(&v1, p + block, 8);
			memcpy(&v2, p + 2 * block, 8);
			c0 = _mm_crc32_u64(c0, v0);
			c1 = _mm_crc32_u64(c1, v1);
			c2 = _mm_crc32_u64(c2, v2);
			p += 8;
		} while (p < end);
		c0 = shift(tab, (uint32_t)c0) ^ c1;
		c0 = shift(tab, (uint32_t)c0) ^ c2;
		p += 2 * block;
		n -= 3 * block;
	}
	*pp = p;
	*np = n;
	return c0;
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t c64;

	for (; n && ((uintptr_t)p & 7); n--)
		c = _mm_crc32_u8(c, *p++);
	c64 = c;
	if (n >= 3 * CRC_SHORT) {
		pthread_once(&shift_once, shift_init);
		c64 = crc_3way(c64, &p, &n, CRC_LONG, shift_long);
		c64 = crc_3way(c64, &p, &n, CRC_SHORT, shift_short);
	}
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
