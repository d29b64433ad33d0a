/* crc32c.h: CRC-32C (Castagnoli), the checksum of stored records and item
 * bodies. Part of the on-disk format: never change it. */
#ifndef QUORUM_CRC32C_H
#define QUORUM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with size_bytes of data. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t size_bytes);

static inline uint32_t crc32c(const void *data, size_t size_bytes)
{
	return crc32c_extend(0, data, size_bytes);
}

#endif
