/* crc32c.c: table-driven CRC-32C, reflected polynomial 0x82F63B78. The
 * table is built once, thread-safely, on first use. */
#include "cluster/crc32c.h"

#include <pthread.h>

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_table_once = PTHREAD_ONCE_INIT;

static void crc32c_build_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t crc = i;
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
		crc32c_table[i] = crc;
	}
}

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t size_bytes)
{
	const uint8_t *p = data;

	pthread_once(&crc32c_table_once, crc32c_build_table);
	crc = ~crc;
	for (size_t i = 0; i < size_bytes; i++)
		crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}
