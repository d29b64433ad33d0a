/* test_session.c: client sessions (cluster/session.c): a seq answered once is answered
 * again, seqs below the floor are refused, the reply list stays bounded and ordered, idle
 * sessions are found, damaged stored values are caught; and the router's request ids
 * (fs/request_ids.c) keep the floor at the lowest write in flight. */
#include "cluster/arena.h"
#include "cluster/session.h"
#include "fs/request_ids.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static Quorum__RequestId test_id(uint64_t seq, uint64_t floor)
{
	Quorum__RequestId id = QUORUM__REQUEST_ID__INIT;

	id.client_id = 42;
	id.seq = seq;
	id.floor = floor;
	return id;
}

static void test_record(struct arena *arena, Quorum__ClientSession **s, uint64_t seq,
			uint64_t floor, int status)
{
	Quorum__RequestId id = test_id(seq, floor);
	uint8_t result[2] = { (uint8_t)seq, 7 };

	assert_int_equal(session_record(arena, s, &id, 1000 + (int64_t)seq, status, result,
					sizeof(result)), 0);
}

static void test_answered_once(void **state)
{
	struct arena *arena = arena_new();
	Quorum__ClientSession *s = NULL;
	const Quorum__SessionReply *reply;
	Quorum__RequestId id = test_id(5, 1);

	(void)state;
	assert_int_equal(session_check(NULL, &id, &reply), SESSION_NEW);
	test_record(arena, &s, 5, 1, -EEXIST);
	assert_int_equal(session_check(s, &id, &reply), SESSION_ANSWERED);
	assert_int_equal(reply->status, -EEXIST);
	assert_int_equal(reply->result.len, 2);
	assert_int_equal(reply->result.data[0], 5);
	/* Another seq of the same client is new. */
	id.seq = 6;
	assert_int_equal(session_check(s, &id, &reply), SESSION_NEW);
	arena_free(arena);
}

static void test_out_of_order_and_floor(void **state)
{
	struct arena *arena = arena_new();
	Quorum__ClientSession *s = NULL;
	const Quorum__SessionReply *reply;
	Quorum__RequestId id;

	(void)state;
	/* Concurrent writes arrive out of order; the list stays ascending. */
	test_record(arena, &s, 9, 3, 0);
	test_record(arena, &s, 3, 3, 0);
	test_record(arena, &s, 7, 3, 0);
	assert_int_equal(s->n_replies, 3);
	assert_int_equal(s->replies[0]->seq, 3);
	assert_int_equal(s->replies[1]->seq, 7);
	assert_int_equal(s->replies[2]->seq, 9);
	assert_int_equal(s->floor, 3);
	/* The client says everything below 8 is over: 3 and 7 are forgotten and refused. */
	test_record(arena, &s, 10, 8, 0);
	assert_int_equal(s->floor, 8);
	assert_int_equal(s->n_replies, 2);
	id = test_id(7, 3);
	assert_int_equal(session_check(s, &id, &reply), SESSION_FORGOTTEN);
	id = test_id(9, 3);
	assert_int_equal(session_check(s, &id, &reply), SESSION_ANSWERED);
	/* A late write with a lower floor does not lower it. */
	test_record(arena, &s, 8, 4, 0);
	assert_int_equal(s->floor, 8);
	arena_free(arena);
}

static void test_bounded(void **state)
{
	struct arena *arena = arena_new();
	Quorum__ClientSession *s = NULL;
	const Quorum__SessionReply *reply;
	Quorum__RequestId id;

	(void)state;
	/* The floor stuck at 1 (a write that never ends): the oldest replies go, and their
	 * seqs are refused from then on rather than applied again. */
	for (uint64_t seq = 1; seq <= SESSION_REPLIES_MAX + 10; seq++)
		test_record(arena, &s, seq, 1, 0);
	assert_int_equal(s->n_replies, SESSION_REPLIES_MAX);
	assert_int_equal(s->floor, 11);
	id = test_id(10, 1);
	assert_int_equal(session_check(s, &id, &reply), SESSION_FORGOTTEN);
	id = test_id(11, 1);
	assert_int_equal(session_check(s, &id, &reply), SESSION_ANSWERED);
	arena_free(arena);
}

static void test_idle_and_stored_form(void **state)
{
	struct arena *arena = arena_new();
	Quorum__ClientSession *s = NULL, *back;
	uint8_t *value;
	size_t value_bytes;

	(void)state;
	test_record(arena, &s, 1, 1, 0);
	assert_false(session_idle(s, s->last_ns + SESSION_IDLE_NS));
	assert_true(session_idle(s, s->last_ns + SESSION_IDLE_NS + 1));
	assert_int_equal(session_encode(s, &value, &value_bytes), 0);
	assert_int_equal(session_decode(value, value_bytes, arena, &back), 0);
	assert_int_equal(back->n_replies, 1);
	assert_int_equal(back->last_ns, s->last_ns);
	/* Any flipped bit is caught. */
	for (size_t i = 0; i < value_bytes; i++) {
		value[i] ^= 0x10;
		assert_int_equal(session_decode(value, value_bytes, arena, &back), -EBADMSG);
		value[i] ^= 0x10;
	}
	assert_int_equal(session_decode(value, 3, arena, &back), -EBADMSG);
	free(value);
	arena_free(arena);
}

static void test_key_layout(void **state)
{
	uint8_t a[SESSION_KEY_BYTES], b[SESSION_KEY_BYTES];

	(void)state;
	session_key(a, 1, 2, 3);
	session_key(b, 1, 2, 4);
	assert_int_equal(a[0], SESSION_KEY_PREFIX);
	/* One group's sessions share a prefix and sort by client. */
	assert_memory_equal(a, b, SESSION_GROUP_PREFIX_BYTES);
	assert_true(memcmp(a, b, sizeof(a)) < 0);
}

static void test_router_floor(void **state)
{
	struct request_ids *ids;
	Quorum__RequestId a, b, c, d;

	(void)state;
	assert_int_equal(request_ids_new(&ids), 0);
	assert_int_equal(request_ids_begin(ids, &a), 0);
	assert_int_not_equal(a.client_id, 0);
	assert_int_equal(a.floor, a.seq);
	assert_int_equal(request_ids_begin(ids, &b), 0);
	assert_int_equal(b.seq, a.seq + 1);
	assert_int_equal(b.floor, a.seq);		/* a is still in flight */
	request_ids_end(ids, b.seq);
	assert_int_equal(request_ids_begin(ids, &c), 0);
	assert_int_equal(c.floor, a.seq);
	request_ids_end(ids, a.seq);
	assert_int_equal(request_ids_begin(ids, &d), 0);
	assert_int_equal(d.floor, c.seq);		/* a and b are over */
	assert_int_equal(d.client_id, a.client_id);
	request_ids_end(ids, c.seq);
	request_ids_end(ids, d.seq);
	/* Many in flight at once (more than the first allocation). */
	for (int i = 0; i < 200; i++) {
		Quorum__RequestId id;

		assert_int_equal(request_ids_begin(ids, &id), 0);
		assert_int_equal(id.floor, d.seq + 1);
	}
	request_ids_free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answered_once),
		cmocka_unit_test(test_out_of_order_and_floor),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_idle_and_stored_form),
		cmocka_unit_test(test_key_layout),
		cmocka_unit_test(test_router_floor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
