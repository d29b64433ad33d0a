/* crc32c.c: CRC-32C, reflected polynomial 0x82F63B78.
 *
 * On x86-64 with SSE 4.2 the CPU's crc32 instruction does 8 bytes at a time (about 20 times
 * the table's speed: a put checksums its body several times on every replica, and the table
 * loop showed as a tenth of a node's CPU under load). Elsewhere, or without SSE 4.2, the
 * byte-wise table. Both compute the same function; the choice is made once, on first use. */
#include "cluster/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static uint32_t crc32c_table[256];
static bool crc32c_hardware;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t crc = i;
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
		crc32c_table[i] = crc;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc32c_hardware = __builtin_cpu_supports("sse4.2");
#endif
}

/* crc is the running register (inverted). */
static uint32_t crc32c_table_extend(uint32_t crc, const uint8_t *p, size_t size_bytes)
{
	for (size_t i = 0; i < size_bytes; i++)
		crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hardware_extend(uint32_t crc, const uint8_t *p, size_t size_bytes)
{
	uint64_t crc64 = crc;

	while (size_bytes >= 8) {
		uint64_t word;

		memcpy(&word, p, sizeof(word));	/* unaligned, and no aliasing question */
		crc64 = __builtin_ia32_crc32di(crc64, word);
		p += 8;
		size_bytes -= 8;
	}
	crc = (uint32_t)crc64;
	while (size_bytes-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t size_bytes)
{
	pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
	if (crc32c_hardware)
		return ~crc32c_hardware_extend(~crc, data, size_bytes);
#endif
	return ~crc32c_table_extend(~crc, data, size_bytes);
}
