/* keys.c: see keys.h for the layout. */
#include "cluster/keys.h"

#include <errno.h>
#include <string.h>

#include <openssl/sha.h>

int key_validate_name(const void *name, size_t size_bytes)
{
	if (size_bytes == 0)
		return -EINVAL;
	if (size_bytes > KEY_NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	if (memchr(name, '/', size_bytes) || memchr(name, '\0', size_bytes))
		return -EINVAL;
	if ((size_bytes == 1 && memcmp(name, ".", 1) == 0) ||
	    (size_bytes == 2 && memcmp(name, "..", 2) == 0))
		return -EINVAL;
	return 0;
}

int key_validate_sort_key(const void *sort_key, size_t size_bytes)
{
	return size_bytes == 0 ? 0 : key_validate_name(sort_key, size_bytes);
}

void key_put_u64(uint8_t out[8], uint64_t value)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)value;
		value >>= 8;
	}
}

uint64_t key_get_u64(const uint8_t in[8])
{
	uint64_t value = 0;
	for (int i = 0; i < 8; i++)
		value = (value << 8) | in[i];
	return value;
}

uint64_t key_hash(const void *partition_key, size_t size_bytes)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256(partition_key, size_bytes, digest);
	return key_get_u64(digest);
}

size_t key_encode_position(uint8_t *out, const void *partition_key, size_t pk_bytes,
			   const void *sort_key, size_t sk_bytes, bool has_sort_key)
{
	size_t n = 0;

	key_put_u64(out, key_hash(partition_key, pk_bytes));
	n += 8;
	memcpy(out + n, partition_key, pk_bytes);
	n += pk_bytes;
	if (has_sort_key) {
		out[n++] = 0;
		if (sk_bytes)   /* an empty sort key may come as NULL */
			memcpy(out + n, sort_key, sk_bytes);
		n += sk_bytes;
	}
	return n;
}

size_t key_encode_storage(uint8_t *out, uint64_t table_id, const uint8_t *position,
			  size_t position_bytes)
{
	out[0] = KEY_STORAGE_PREFIX;
	key_put_u64(out + 1, table_id);
	memcpy(out + 9, position, position_bytes);
	return 9 + position_bytes;
}

size_t key_encode_hash_start(uint8_t out[17], uint64_t table_id, uint64_t hash)
{
	out[0] = KEY_STORAGE_PREFIX;
	key_put_u64(out + 1, table_id);
	key_put_u64(out + 9, hash);
	return 17;
}

int key_decode_position(const uint8_t *position, size_t position_bytes, uint64_t *hash,
			const uint8_t **partition_key, size_t *pk_bytes,
			const uint8_t **sort_key, size_t *sk_bytes, bool *has_sort_key)
{
	const uint8_t *key, *separator;
	size_t key_bytes;

	if (position_bytes < 9 || position_bytes > KEY_POSITION_MAX_BYTES)
		return -EINVAL;
	*hash = key_get_u64(position);
	key = position + 8;
	key_bytes = position_bytes - 8;
	separator = memchr(key, 0, key_bytes);
	if (separator) {
		*partition_key = key;
		*pk_bytes = (size_t)(separator - key);
		*sort_key = separator + 1;
		*sk_bytes = key_bytes - *pk_bytes - 1;
		*has_sort_key = true;
		if (key_validate_sort_key(*sort_key, *sk_bytes) != 0)
			return -EINVAL;
	} else {
		*partition_key = key;
		*pk_bytes = key_bytes;
		*sort_key = NULL;
		*sk_bytes = 0;
		*has_sort_key = false;
	}
	return key_validate_name(*partition_key, *pk_bytes) == 0 ? 0 : -EINVAL;
}

int key_find_partition(const uint64_t *hash_first, const uint64_t *hash_last,
		       size_t partition_count, uint64_t hash)
{
	size_t lo = 0, hi = partition_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (hash < hash_first[mid])
			hi = mid;
		else if (hash > hash_last[mid])
			lo = mid + 1;
		else
			return (int)mid;
	}
	return -1;
}
