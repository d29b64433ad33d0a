/* item.c: see item.h. */
#include "cluster/item.h"

#include "cluster/crc32c.h"

#include <errno.h>
#include <stdlib.h>

static void item_put_u32le(uint8_t out[4], uint32_t value)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(value >> (8 * i));
}

static uint32_t item_get_u32le(const uint8_t in[4])
{
	return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
	       (uint32_t)in[3] << 24;
}

void item_seal_body(Quorum__ItemRecord *record)
{
	size_t body_bytes = record->has_body ? record->body.len : 0;
	record->meta->size = body_bytes;
	record->meta->body_crc32c = crc32c(record->body.data, body_bytes);
}

int item_encode(const Quorum__ItemRecord *record, uint8_t **value, size_t *value_bytes)
{
	size_t record_bytes = quorum__item_record__get_packed_size(record);
	uint8_t *out = malloc(4 + record_bytes);

	if (!out)
		return -ENOMEM;
	quorum__item_record__pack(record, out + 4);
	item_put_u32le(out, crc32c(out + 4, record_bytes));
	*value = out;
	*value_bytes = 4 + record_bytes;
	return 0;
}

int item_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
		Quorum__ItemRecord **record)
{
	Quorum__ItemRecord *decoded;
	size_t body_bytes;

	if (value_bytes < 4 || crc32c(value + 4, value_bytes - 4) != item_get_u32le(value))
		return -EBADMSG;
	decoded = quorum__item_record__unpack(arena_protobuf_allocator(arena), value_bytes - 4,
					      value + 4);
	if (!decoded)
		return -EBADMSG;
	body_bytes = decoded->has_body ? decoded->body.len : 0;
	if (decoded->meta->size != body_bytes ||
	    crc32c(decoded->body.data, body_bytes) != decoded->meta->body_crc32c)
		return -EBADMSG;
	*record = decoded;
	return 0;
}
