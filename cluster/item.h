/* item.h: the stored form of an item.
 *
 *     value = crc32c(record) (4 bytes, little-endian) | record
 *     record = quorum.ItemRecord (protobuf), whose meta.body_crc32c is the
 *              CRC-32C of the body
 *
 * The outer checksum covers metadata and xattrs, the inner one the body, so
 * a flipped bit anywhere is found on read; a record that fails either check
 * is never served. */
#ifndef QUORUM_ITEM_H
#define QUORUM_ITEM_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define ITEM_RECORD_FORMAT 1
#define ITEM_DEFAULT_MAX_BYTES (1024u * 1024)

/* Encodes record (its body checksum must be set) into a malloc'd value. */
int item_encode(const Quorum__ItemRecord *record, uint8_t **value, size_t *value_bytes);

/* Decodes and verifies a stored value; the record lives in arena. Returns 0,
 * -EBADMSG for a checksum mismatch or undecodable bytes, -ENOMEM. */
int item_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
		Quorum__ItemRecord **record);

/* Sets record->meta->size and body_crc32c from the body. */
void item_seal_body(Quorum__ItemRecord *record);

#endif
