/* item.c: see item.h. */
#include "cluster/item.h"

#include "cluster/crc32c.h"

#include <errno.h>
#include <stdlib.h>

void item_seal_body(Quorum__ItemRecord *record)
{
	size_t body_bytes = record->has_body ? record->body.len : 0;
	record->meta->size = body_bytes;
	record->meta->body_crc32c = crc32c(record->body.data, body_bytes);
}

int item_encode(const Quorum__ItemRecord *record, uint8_t **value, size_t *value_bytes)
{
	size_t record_bytes = quorum__item_record__get_packed_size(record);
	uint8_t *out = malloc(CRC32C_FRAME_BYTES + record_bytes);

	if (!out)
		return -ENOMEM;
	quorum__item_record__pack(record, out + CRC32C_FRAME_BYTES);
	crc32c_frame_seal(out, record_bytes);
	*value = out;
	*value_bytes = CRC32C_FRAME_BYTES + record_bytes;
	return 0;
}

int item_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
		Quorum__ItemRecord **record)
{
	Quorum__ItemRecord *decoded;
	size_t body_bytes;

	if (!crc32c_frame_check(value, value_bytes))
		return -EBADMSG;
	decoded = quorum__item_record__unpack(arena_protobuf_allocator(arena),
					      value_bytes - CRC32C_FRAME_BYTES,
					      value + CRC32C_FRAME_BYTES);
	if (!decoded)
		return -EBADMSG;
	body_bytes = decoded->has_body ? decoded->body.len : 0;
	if (decoded->meta->size != body_bytes ||
	    crc32c(decoded->body.data, body_bytes) != decoded->meta->body_crc32c)
		return -EBADMSG;
	*record = decoded;
	return 0;
}
