/* keys.h: names, the partition-key hash, and the byte layout of item keys.
 *
 * A table name or item key is any bytes but '/' and NUL, 1 to 255 bytes,
 * and not "." or "..". The hash of a partition key places the item in a
 * partition; it is part of the on-disk format and never changes.
 *
 * Inside a storage node an item lives under
 *     'i' | table_id (8, big-endian) | position
 *     position = hash(partition key) (8, big-endian) | partition key
 *                [ | 0x00 | sort key ]
 * so one table's items sort by hash, then key: a partition (a hash range)
 * is one contiguous key range, and a scan cursor (a position) stays valid
 * across inserts, deletes and splits. NUL cannot occur in a key, so it
 * separates the partition key from the sort key and keeps the order.
 *
 * A sort key may also be empty: that item (partition key | 0x00) sorts
 * before every other item of its partition key and is where the mount
 * keeps the directory of a partition key (README, "Tables with a sort
 * key"); no file can have that name. */
#ifndef QUORUM_KEYS_H
#define QUORUM_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_NAME_MAX_BYTES 255
#define KEY_STORAGE_PREFIX 'i'
/* prefix + table id + hash + key + separator + sort key */
#define KEY_STORAGE_MAX_BYTES (1 + 8 + 8 + KEY_NAME_MAX_BYTES + 1 + KEY_NAME_MAX_BYTES)
#define KEY_POSITION_MAX_BYTES (KEY_STORAGE_MAX_BYTES - 9)

/* 0 when name is a valid table name or key; -EINVAL (empty, "/" or NUL
 * inside, "." or "..") or -ENAMETOOLONG otherwise. */
int key_validate_name(const void *name, size_t size_bytes);

/* As key_validate_name, but an empty sort key is valid (see above). */
int key_validate_sort_key(const void *sort_key, size_t size_bytes);

/* The partition-key hash: the first 8 bytes of SHA-256, big-endian. */
uint64_t key_hash(const void *partition_key, size_t size_bytes);

/* Writes the position of (partition key, optional sort key) to out, which
 * holds KEY_POSITION_MAX_BYTES; returns its length. */
size_t key_encode_position(uint8_t *out, const void *partition_key, size_t pk_bytes,
			   const void *sort_key, size_t sk_bytes, bool has_sort_key);

/* Writes the storage key of a position in table_id to out, which holds
 * KEY_STORAGE_MAX_BYTES; returns its length. */
size_t key_encode_storage(uint8_t *out, uint64_t table_id, const uint8_t *position,
			  size_t position_bytes);

/* The first storage key of table_id at or after hash. */
size_t key_encode_hash_start(uint8_t out[17], uint64_t table_id, uint64_t hash);

/* Splits a position into its parts; the pointers point into position.
 * Returns 0, or -EINVAL when the bytes are not a position. */
int key_decode_position(const uint8_t *position, size_t position_bytes, uint64_t *hash,
			const uint8_t **partition_key, size_t *pk_bytes,
			const uint8_t **sort_key, size_t *sk_bytes, bool *has_sort_key);

/* Big-endian helpers, shared by the encoders. */
void key_put_u64(uint8_t out[8], uint64_t value);
uint64_t key_get_u64(const uint8_t in[8]);

/* The index of the partition whose inclusive range [first[i], last[i]]
 * holds hash, or -1 when none does. Ranges are sorted and disjoint. */
int key_find_partition(const uint64_t *hash_first, const uint64_t *hash_last,
		       size_t partition_count, uint64_t hash);

#endif
