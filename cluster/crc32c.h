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

/* A stored value framed with its checksum:
 *	crc32c(payload) (4 bytes, little-endian) | payload
 * crc32c_frame_seal fills the first 4 bytes of value from the payload after
 * them; crc32c_frame_check tells whether a value is whole and matches. */
#define CRC32C_FRAME_BYTES 4

static inline void crc32c_frame_seal(uint8_t *value, size_t payload_bytes)
{
	uint32_t crc = crc32c(value + CRC32C_FRAME_BYTES, payload_bytes);

	for (int i = 0; i < CRC32C_FRAME_BYTES; i++)
		value[i] = (uint8_t)(crc >> (8 * i));
}

static inline int crc32c_frame_check(const uint8_t *value, size_t value_bytes)
{
	uint32_t stored = 0;

	if (value_bytes < CRC32C_FRAME_BYTES)
		return 0;
	for (int i = 0; i < CRC32C_FRAME_BYTES; i++)
		stored |= (uint32_t)value[i] << (8 * i);
	return crc32c(value + CRC32C_FRAME_BYTES, value_bytes - CRC32C_FRAME_BYTES) == stored;
}

#endif
