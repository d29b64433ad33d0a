/* test_keys.c: name validation, the partition-key hash, the storage key
 * layout and partition lookup. */
#include "cluster/keys.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_validate_name(void **state)
{
	char long_name[KEY_NAME_MAX_BYTES + 2];

	(void)state;
	assert_int_equal(key_validate_name("a", 1), 0);
	assert_int_equal(key_validate_name("hello world.txt", 15), 0);
	assert_int_equal(key_validate_name("\xff\xfe", 2), 0);
	assert_int_equal(key_validate_name("...", 3), 0);
	assert_int_equal(key_validate_name("", 0), -EINVAL);
	assert_int_equal(key_validate_name(".", 1), -EINVAL);
	assert_int_equal(key_validate_name("..", 2), -EINVAL);
	assert_int_equal(key_validate_name("a/b", 3), -EINVAL);
	assert_int_equal(key_validate_name("a\0b", 3), -EINVAL);
	memset(long_name, 'x', sizeof(long_name));
	assert_int_equal(key_validate_name(long_name, KEY_NAME_MAX_BYTES), 0);
	assert_int_equal(key_validate_name(long_name, KEY_NAME_MAX_BYTES + 1), -ENAMETOOLONG);
}

/* The hash is part of the on-disk format: these values must never change. */
static void test_hash_is_stable(void **state)
{
	(void)state;
	/* SHA-256("abc") = ba7816bf8f01cfea 414140de... */
	assert_true(key_hash("abc", 3) == 0xba7816bf8f01cfeaULL);
	/* SHA-256("") = e3b0c44298fc1c14 9afbf4c8... */
	assert_true(key_hash("", 0) == 0xe3b0c44298fc1c14ULL);
	assert_true(key_hash("abd", 3) != key_hash("abc", 3));
}

static void test_position_round_trip(void **state)
{
	uint8_t position[KEY_POSITION_MAX_BYTES];
	const uint8_t *pk, *sk;
	size_t pk_bytes, sk_bytes, n;
	uint64_t hash;
	bool has_sort_key;

	(void)state;
	n = key_encode_position(position, "user42", 6, NULL, 0, false);
	assert_int_equal(n, 8 + 6);
	assert_int_equal(key_decode_position(position, n, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), 0);
	assert_true(hash == key_hash("user42", 6));
	assert_int_equal(pk_bytes, 6);
	assert_memory_equal(pk, "user42", 6);
	assert_false(has_sort_key);

	n = key_encode_position(position, "user42", 6, "2026-11-24", 10, true);
	assert_int_equal(n, 8 + 6 + 1 + 10);
	assert_int_equal(key_decode_position(position, n, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), 0);
	assert_true(has_sort_key);
	assert_int_equal(pk_bytes, 6);
	assert_int_equal(sk_bytes, 10);
	assert_memory_equal(sk, "2026-11-24", 10);

	/* An empty sort key (a partition key's directory marker) decodes, and
	 * sorts before every other sort key of its partition key. */
	n = key_encode_position(position, "user42", 6, "", 0, true);
	assert_int_equal(n, 8 + 6 + 1);
	assert_int_equal(key_decode_position(position, n, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), 0);
	assert_true(has_sort_key);
	assert_int_equal(pk_bytes, 6);
	assert_int_equal(sk_bytes, 0);
	assert_int_equal(key_validate_sort_key("", 0), 0);
	assert_int_equal(key_validate_sort_key("a/b", 3), -EINVAL);
	assert_int_equal(key_validate_name("", 0), -EINVAL);
}

static void test_position_rejects_garbage(void **state)
{
	uint8_t position[KEY_POSITION_MAX_BYTES + 1];
	const uint8_t *pk, *sk;
	size_t pk_bytes, sk_bytes;
	uint64_t hash;
	bool has_sort_key;

	(void)state;
	memset(position, 'a', sizeof(position));
	/* Too short: a hash and no key. */
	assert_int_equal(key_decode_position(position, 8, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), -EINVAL);
	/* Too long. */
	assert_int_equal(key_decode_position(position, sizeof(position), &hash, &pk, &pk_bytes,
					     &sk, &sk_bytes, &has_sort_key), -EINVAL);
	/* A separator with an empty partition key. */
	position[8] = 0;
	assert_int_equal(key_decode_position(position, 13, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), -EINVAL);
	position[8] = 'a';
	/* A slash inside the key. */
	position[12] = '/';
	assert_int_equal(key_decode_position(position, 13, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
					     &has_sort_key), -EINVAL);
}

/* Storage keys of one table sort by (hash, key), and all of them sort
 * between the table's hash-range bounds. */
static void test_storage_order(void **state)
{
	uint8_t position[KEY_POSITION_MAX_BYTES], a[KEY_STORAGE_MAX_BYTES];
	uint8_t b[KEY_STORAGE_MAX_BYTES], lo[17], hi[17];
	size_t a_bytes, b_bytes, n;

	(void)state;
	n = key_encode_position(position, "k1", 2, NULL, 0, false);
	a_bytes = key_encode_storage(a, 7, position, n);
	n = key_encode_position(position, "k1", 2, "s", 1, true);
	b_bytes = key_encode_storage(b, 7, position, n);
	assert_true(memcmp(a, b, a_bytes) == 0 && a_bytes < b_bytes);
	key_encode_hash_start(lo, 7, 0);
	key_encode_hash_start(hi, 8, 0);
	assert_true(memcmp(lo, a, 17) <= 0);
	assert_true(memcmp(a, hi, 17) < 0);
	assert_int_equal(a[0], KEY_STORAGE_PREFIX);
	assert_true(key_get_u64(a + 1) == 7);
}

static void test_u64_big_endian(void **state)
{
	uint8_t out[8];

	(void)state;
	key_put_u64(out, 0x0102030405060708ULL);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[7], 8);
	assert_true(key_get_u64(out) == 0x0102030405060708ULL);
}

static void test_find_partition(void **state)
{
	uint64_t first[4], last[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		first[i] = (uint64_t)i << 62;
		last[i] = i == 3 ? UINT64_MAX : (((uint64_t)i + 1) << 62) - 1;
	}
	assert_int_equal(key_find_partition(first, last, 4, 0), 0);
	assert_int_equal(key_find_partition(first, last, 4, (1ULL << 62) - 1), 0);
	assert_int_equal(key_find_partition(first, last, 4, 1ULL << 62), 1);
	assert_int_equal(key_find_partition(first, last, 4, 3ULL << 62), 3);
	assert_int_equal(key_find_partition(first, last, 4, UINT64_MAX), 3);
	/* A gap in the map (a partition being moved) is reported, not guessed. */
	assert_int_equal(key_find_partition(first, last, 3, UINT64_MAX), -1);
	assert_int_equal(key_find_partition(first, last, 0, 5), -1);
	/* Every hash finds exactly the partition whose range holds it. */
	srand(42);
	for (int i = 0; i < 10000; i++) {
		uint64_t hash = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
		int index = key_find_partition(first, last, 4, hash);
		assert_true(index >= 0 && hash >= first[index] && hash <= last[index]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_name),
		cmocka_unit_test(test_hash_is_stable),
		cmocka_unit_test(test_position_round_trip),
		cmocka_unit_test(test_position_rejects_garbage),
		cmocka_unit_test(test_storage_order),
		cmocka_unit_test(test_u64_big_endian),
		cmocka_unit_test(test_find_partition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
