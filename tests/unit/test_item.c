/* test_item.c: the stored item record: round trip, and that any damage
 * (a flipped bit, a cut, random bytes) is found rather than served. */
#include "cluster/arena.h"
#include "cluster/crc32c.h"
#include "cluster/item.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct sample {
	Quorum__ItemMeta meta;
	Quorum__Xattr xattr;
	Quorum__Xattr *xattrs[1];
	Quorum__ItemRecord record;
	uint8_t body[3000];
};

static void sample_init(struct sample *s)
{
	quorum__item_meta__init(&s->meta);
	quorum__xattr__init(&s->xattr);
	quorum__item_record__init(&s->record);
	for (size_t i = 0; i < sizeof(s->body); i++)
		s->body[i] = (uint8_t)(i * 7 + 3);
	s->meta.mode = 0100644;
	s->meta.uid = 1000;
	s->meta.gid = 100;
	s->meta.mtime_ns = 1700000000123456789LL;
	s->meta.ctime_ns = -5;   /* before 1970: still kept exactly */
	s->meta.version = 9;
	s->xattr.name.data = (uint8_t *)"user.colour";
	s->xattr.name.len = 11;
	s->xattr.value.data = (uint8_t *)"blue";
	s->xattr.value.len = 4;
	s->xattrs[0] = &s->xattr;
	s->record.format = ITEM_RECORD_FORMAT;
	s->record.meta = &s->meta;
	s->record.has_body = 1;
	s->record.body.data = s->body;
	s->record.body.len = sizeof(s->body);
	s->record.n_xattrs = 1;
	s->record.xattrs = s->xattrs;
	item_seal_body(&s->record);
}

static void test_crc32c_known_values(void **state)
{
	(void)state;
	/* The check value of CRC-32C (RFC 3720, appendix B.4). */
	assert_true(crc32c("123456789", 9) == 0xE3069283u);
	assert_true(crc32c("", 0) == 0);
	/* Extending in pieces equals one pass. */
	assert_true(crc32c_extend(crc32c("1234", 4), "56789", 5) == 0xE3069283u);
}

/* The iSCSI vectors (RFC 3720, B.4): 32 bytes, long enough for the 8-byte hardware steps. */
static void test_crc32c_rfc3720_vectors(void **state)
{
	uint8_t buf[32 + 7];

	(void)state;
	memset(buf, 0, sizeof(buf));
	assert_true(crc32c(buf, 32) == 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_true(crc32c(buf, 32) == 0x62A8AB43u);
	/* Ascending bytes, at every alignment. */
	for (int offset = 0; offset < 8; offset++) {
		for (int i = 0; i < 32; i++)
			buf[offset + i] = (uint8_t)i;
		assert_true(crc32c(buf + offset, 32) == 0x46DD794Eu);
	}
	/* Every split of it extends to the same value. */
	for (size_t cut = 0; cut <= 32; cut++)
		assert_true(crc32c_extend(crc32c(buf, cut), buf + cut, 32 - cut) == crc32c(buf, 32));
}

static void test_round_trip(void **state)
{
	struct sample s;
	struct arena *arena = arena_new();
	Quorum__ItemRecord *decoded;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	sample_init(&s);
	assert_int_equal(s.meta.size, sizeof(s.body));
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	assert_int_equal(item_decode(value, value_bytes, arena, &decoded), 0);
	assert_int_equal(decoded->meta->mode, 0100644);
	assert_int_equal(decoded->meta->uid, 1000);
	assert_int_equal(decoded->meta->gid, 100);
	assert_true(decoded->meta->mtime_ns == 1700000000123456789LL);
	assert_true(decoded->meta->ctime_ns == -5);
	assert_int_equal(decoded->meta->version, 9);
	assert_int_equal(decoded->body.len, sizeof(s.body));
	assert_memory_equal(decoded->body.data, s.body, sizeof(s.body));
	assert_int_equal(decoded->n_xattrs, 1);
	assert_memory_equal(decoded->xattrs[0]->value.data, "blue", 4);
	free(value);
	arena_free(arena);
}

static void test_empty_body(void **state)
{
	struct sample s;
	struct arena *arena = arena_new();
	Quorum__ItemRecord *decoded;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	sample_init(&s);
	s.record.has_body = 0;
	s.record.n_xattrs = 0;
	item_seal_body(&s.record);
	assert_int_equal(s.meta.size, 0);
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	assert_int_equal(item_decode(value, value_bytes, arena, &decoded), 0);
	assert_int_equal(decoded->meta->size, 0);
	free(value);
	arena_free(arena);
}

/* Every single-bit flip anywhere in the value is detected. */
static void test_every_bit_flip_is_detected(void **state)
{
	struct sample s;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	sample_init(&s);
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	for (size_t i = 0; i < value_bytes; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct arena *arena = arena_new();
			Quorum__ItemRecord *decoded;
			value[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(item_decode(value, value_bytes, arena, &decoded), -EBADMSG);
			value[i] ^= (uint8_t)(1u << bit);
			arena_free(arena);
		}
	}
	free(value);
}

static void test_truncation_is_detected(void **state)
{
	struct sample s;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	sample_init(&s);
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	for (size_t cut = 0; cut < value_bytes; cut++) {
		struct arena *arena = arena_new();
		Quorum__ItemRecord *decoded;
		assert_int_equal(item_decode(value, cut, arena, &decoded), -EBADMSG);
		arena_free(arena);
	}
	free(value);
}

/* A record whose outer checksum is right but whose body does not match its
 * body checksum (a bug upstream of the encoder) is refused too. */
static void test_body_checksum_is_checked(void **state)
{
	struct sample s;
	struct arena *arena = arena_new();
	Quorum__ItemRecord *decoded;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	sample_init(&s);
	s.meta.body_crc32c ^= 1;
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	assert_int_equal(item_decode(value, value_bytes, arena, &decoded), -EBADMSG);
	free(value);
	sample_init(&s);
	s.meta.size += 1;
	assert_int_equal(item_encode(&s.record, &value, &value_bytes), 0);
	assert_int_equal(item_decode(value, value_bytes, arena, &decoded), -EBADMSG);
	free(value);
	arena_free(arena);
}

static void test_random_input_never_crashes(void **state)
{
	uint8_t buffer[512];

	(void)state;
	srand(7);
	for (int round = 0; round < 20000; round++) {
		struct arena *arena = arena_new();
		Quorum__ItemRecord *decoded;
		size_t length = (size_t)rand() % sizeof(buffer);
		for (size_t i = 0; i < length; i++)
			buffer[i] = (uint8_t)rand();
		assert_int_equal(item_decode(buffer, length, arena, &decoded), -EBADMSG);
		arena_free(arena);
	}
}

static void test_arena(void **state)
{
	struct arena *arena = arena_new();
	uint8_t *big, *small;

	(void)state;
	small = arena_alloc(arena, 10);
	big = arena_alloc(arena, 100000);
	assert_non_null(small);
	assert_non_null(big);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(big[i], 0);
	memset(big, 0xaa, 100000);
	/* Small allocations after a big one still come from the shared block. */
	for (int i = 0; i < 1000; i++)
		assert_non_null(arena_alloc(arena, 24));
	assert_int_equal(((uintptr_t)arena_alloc(arena, 3)) % _Alignof(max_align_t), 0);
	assert_memory_equal(arena_memdup(arena, "abc", 3), "abc", 3);
	arena_free(arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_values),
		cmocka_unit_test(test_crc32c_rfc3720_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_every_bit_flip_is_detected),
		cmocka_unit_test(test_truncation_is_detected),
		cmocka_unit_test(test_body_checksum_is_checked),
		cmocka_unit_test(test_random_input_never_crashes),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
