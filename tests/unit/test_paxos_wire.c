/* test_paxos_wire.c: the Paxos wire codec: every message type survives a round trip field
 * by field; truncated, bit-flipped and random input never crashes the decoder; counts and
 * sizes over the core's bounds are refused on both sides. */
#include "cluster/arena.h"
#include "cluster/paxos.h"
#include "cluster/paxos_envelope.h"
#include "cluster/paxos_wire.h"
#include "cluster/rpc.h"
#include "quorum.pb-c.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const uint8_t value_a[] = "put k1 v1";
static const uint8_t value_b[] = { 0, 1, 2, 3, 255 };
static const uint8_t snapshot_bytes[] = "snapshot of the state machine";

/* A message of type with every field its type uses set (and a few it does not). */
static void msg_fill(struct paxos_msg *m, uint32_t type, struct paxos_entry *entries)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = 2;
	m->to = 3;
	m->ballot = (struct paxos_ballot){ 7, 2 };
	m->slot = 41;
	m->commit_slot = 40;
	m->tick = 1234;
	m->flags = PAXOS_FLAG_GRANTED;
	if (type == PAXOS_MSG_PREPARE) {
		m->flags = PAXOS_FLAG_TRANSFER;
		m->transfer_ballot = (struct paxos_ballot){ 6, 1 };
	}
	if (type == PAXOS_MSG_PROMISE || type == PAXOS_MSG_ACCEPT || type == PAXOS_MSG_LEARN) {
		entries[0] = (struct paxos_entry){ .slot = 41, .ballot = { 7, 2 },
			.type = PAXOS_ENTRY_NORMAL, .chosen = type == PAXOS_MSG_PROMISE,
			.value = value_a, .value_bytes = sizeof(value_a) };
		entries[1] = (struct paxos_entry){ .slot = 42, .ballot = { 5, 1 },
			.type = PAXOS_ENTRY_NOOP };
		entries[2] = (struct paxos_entry){ .slot = 43, .ballot = { 7, 2 },
			.type = PAXOS_ENTRY_NORMAL, .value = value_b,
			.value_bytes = sizeof(value_b) };
		m->entries = entries;
		m->entry_count = 3;
	}
	if (type == PAXOS_MSG_ACCEPTED) {
		for (size_t i = 0; i < PAXOS_BATCH_MAX; i++)
			m->slots[i] = 100 + i;
		m->slot_count = PAXOS_BATCH_MAX;
	}
	if (type == PAXOS_MSG_SNAPSHOT) {
		m->snapshot = snapshot_bytes;
		m->snapshot_bytes = sizeof(snapshot_bytes);
		m->members[0] = 1;
		m->members[1] = 2;
		m->members[2] = 3;
		m->member_count = 3;
	}
}

static void ballot_equal(struct paxos_ballot a, struct paxos_ballot b)
{
	assert_int_equal(a.round, b.round);
	assert_int_equal(a.node_id, b.node_id);
}

static void msg_assert_equal(const struct paxos_msg *a, const struct paxos_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->from, b->from);
	assert_int_equal(a->to, b->to);
	ballot_equal(a->ballot, b->ballot);
	assert_int_equal(a->slot, b->slot);
	assert_int_equal(a->commit_slot, b->commit_slot);
	assert_int_equal(a->tick, b->tick);
	assert_int_equal(a->flags, b->flags);
	ballot_equal(a->transfer_ballot, b->transfer_ballot);
	assert_int_equal(a->entry_count, b->entry_count);
	for (size_t i = 0; i < a->entry_count; i++) {
		const struct paxos_entry *x = &a->entries[i], *y = &b->entries[i];

		assert_int_equal(x->slot, y->slot);
		ballot_equal(x->ballot, y->ballot);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->chosen, y->chosen);
		assert_int_equal(x->value_bytes, y->value_bytes);
		if (x->value_bytes)
			assert_memory_equal(x->value, y->value, x->value_bytes);
	}
	assert_int_equal(a->slot_count, b->slot_count);
	for (size_t i = 0; i < a->slot_count; i++)
		assert_int_equal(a->slots[i], b->slots[i]);
	assert_int_equal(a->snapshot_bytes, b->snapshot_bytes);
	if (a->snapshot_bytes)
		assert_memory_equal(a->snapshot, b->snapshot, a->snapshot_bytes);
	assert_int_equal(a->member_count, b->member_count);
	for (size_t i = 0; i < a->member_count; i++)
		assert_int_equal(a->members[i], b->members[i]);
}

static void test_round_trip_every_type(void **state)
{
	const struct paxos_wire_group group = { .table_id = 9, .partition_id = 77 };

	(void)state;
	for (uint32_t type = PAXOS_MSG_PREPARE; type <= PAXOS_MSG_SNAPSHOT; type++) {
		struct arena *arena = arena_new();
		struct paxos_entry entries[3];
		struct paxos_msg in, out;
		struct paxos_wire_group got;
		uint8_t *bytes;
		size_t size_bytes;

		assert_non_null(arena);
		msg_fill(&in, type, entries);
		assert_int_equal(paxos_wire_encode(&group, &in, arena, &bytes, &size_bytes), 0);
		assert_int_equal(paxos_wire_decode(bytes, size_bytes, arena, &got, &out), 0);
		assert_int_equal(got.table_id, 9);
		assert_int_equal(got.partition_id, 77);
		msg_assert_equal(&in, &out);
		arena_free(arena);
	}
}

/* The hand-packed envelopes are what protobuf-c reads as Request.paxos (one message) and
 * Request.paxos_batch (several, in order), and each message inside decodes as it was. */
static void test_envelope_of_one_and_of_many(void **state)
{
	const struct paxos_wire_group group = { .table_id = 3, .partition_id = 4 };
	struct arena *arena = arena_new();
	const uint8_t *messages[PAXOS_MSG_SNAPSHOT];
	size_t sizes[PAXOS_MSG_SNAPSHOT], count = 0;
	struct paxos_entry entries[PAXOS_MSG_SNAPSHOT][3];
	struct paxos_msg in[PAXOS_MSG_SNAPSHOT];

	(void)state;
	assert_non_null(arena);
	for (uint32_t type = PAXOS_MSG_PREPARE; type <= PAXOS_MSG_SNAPSHOT; type++, count++) {
		uint8_t *bytes;

		msg_fill(&in[count], type, entries[count]);
		assert_int_equal(paxos_wire_encode(&group, &in[count], arena, &bytes,
						   &sizes[count]), 0);
		messages[count] = bytes;
	}
	for (size_t n = 1; n <= count; n += count - 1) {
		size_t packed_bytes;
		uint8_t *packed = paxos_envelope_pack(messages, sizes, n, &packed_bytes);
		Quorum__Request *request;

		assert_non_null(packed);
		request = quorum__request__unpack(NULL, packed_bytes, packed);
		assert_non_null(request);
		assert_int_equal(request->version, RPC_PROTOCOL_VERSION);
		for (size_t i = 0; i < n; i++) {
			const Quorum__PaxosMessage *m;
			struct paxos_wire_group got;
			struct paxos_msg out;
			uint8_t *again;
			size_t again_bytes;

			if (n == 1) {
				assert_int_equal(request->op_case, QUORUM__REQUEST__OP_PAXOS);
				m = request->paxos;
			} else {
				assert_int_equal(request->op_case, QUORUM__REQUEST__OP_PAXOS_BATCH);
				assert_int_equal(request->paxos_batch->n_messages, n);
				m = request->paxos_batch->messages[i];
			}
			again_bytes = quorum__paxos_message__get_packed_size(m);
			again = arena_alloc(arena, again_bytes);
			assert_non_null(again);
			quorum__paxos_message__pack(m, again);
			assert_int_equal(paxos_wire_decode(again, again_bytes, arena, &got, &out), 0);
			msg_assert_equal(&in[i], &out);
		}
		quorum__request__free_unpacked(request, NULL);
		free(packed);
	}
	arena_free(arena);
}

/* An empty snapshot (a state machine with nothing in it) is still a snapshot. */
static void test_round_trip_minimal(void **state)
{
	const struct paxos_wire_group group = { 0, 0 };
	struct arena *arena = arena_new();
	struct paxos_msg in = { .type = PAXOS_MSG_SNAPSHOT, .from = 1, .to = 2, .slot = 5,
				.members = { 1, 2, 3 }, .member_count = 3 };
	struct paxos_msg out;
	struct paxos_wire_group got;
	uint8_t *bytes;
	size_t size_bytes;

	(void)state;
	assert_int_equal(paxos_wire_encode(&group, &in, arena, &bytes, &size_bytes), 0);
	assert_int_equal(paxos_wire_decode(bytes, size_bytes, arena, &got, &out), 0);
	msg_assert_equal(&in, &out);
	assert_null(out.entries);
	arena_free(arena);
}

static void test_truncated_and_flipped_never_crash(void **state)
{
	const struct paxos_wire_group group = { .table_id = 1, .partition_id = 2 };
	uint64_t rng = 42;

	(void)state;
	for (uint32_t type = PAXOS_MSG_PREPARE; type <= PAXOS_MSG_SNAPSHOT; type++) {
		struct arena *arena = arena_new();
		struct paxos_entry entries[3];
		struct paxos_msg in, out;
		struct paxos_wire_group got;
		uint8_t *bytes;
		size_t size_bytes;

		msg_fill(&in, type, entries);
		assert_int_equal(paxos_wire_encode(&group, &in, arena, &bytes, &size_bytes), 0);
		for (size_t cut = 0; cut < size_bytes; cut++) {
			struct arena *scratch = arena_new();
			/* A copy of exactly cut bytes, so a read past it is seen by ASan. */
			uint8_t *copy = malloc(cut ? cut : 1);
			int rc;

			assert_non_null(copy);
			memcpy(copy, bytes, cut);
			rc = paxos_wire_decode(copy, cut, scratch, &got, &out);
			assert_true(rc == 0 || rc == -EINVAL);
			free(copy);
			arena_free(scratch);
		}
		for (int round = 0; round < 2000; round++) {
			struct arena *scratch = arena_new();
			uint8_t *copy = malloc(size_bytes);
			int rc;

			memcpy(copy, bytes, size_bytes);
			for (int k = 0; k < 1 + round % 4; k++)
				copy[rng_next(&rng) % size_bytes] ^=
					(uint8_t)(1u << (rng_next(&rng) % 8));
			rc = paxos_wire_decode(copy, size_bytes, scratch, &got, &out);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc == 0) {
				/* Whatever passed respects the bounds the core relies on. */
				assert_true(out.type >= PAXOS_MSG_PREPARE &&
					    out.type <= PAXOS_MSG_SNAPSHOT);
				assert_true(out.slot_count <= PAXOS_BATCH_MAX);
				assert_true(out.member_count <= PAXOS_MEMBERS_MAX);
				for (size_t i = 0; i < out.entry_count; i++)
					assert_true(out.entries[i].value_bytes <=
						    PAXOS_VALUE_BYTES_MAX);
			}
			free(copy);
			arena_free(scratch);
		}
		arena_free(arena);
	}
}

static void test_random_input_never_crashes(void **state)
{
	uint64_t rng = 7;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t size_bytes = rng_next(&rng) % 96;
		uint8_t *buf = malloc(size_bytes ? size_bytes : 1);
		struct arena *arena = arena_new();
		struct paxos_wire_group got;
		struct paxos_msg out;
		int rc;

		for (size_t i = 0; i < size_bytes; i++)
			buf[i] = (uint8_t)rng_next(&rng);
		rc = paxos_wire_decode(buf, size_bytes, arena, &got, &out);
		assert_true(rc == 0 || rc == -EINVAL);
		free(buf);
		arena_free(arena);
	}
}

/* Encodes a wire message built by hand (as a hostile peer could) and decodes it. */
static int decode_wire(Quorum__PaxosMessage *wire)
{
	struct arena *arena = arena_new();
	size_t size_bytes = quorum__paxos_message__get_packed_size(wire);
	uint8_t *buf = malloc(size_bytes ? size_bytes : 1);
	struct paxos_wire_group got;
	struct paxos_msg out;
	int rc;

	assert_non_null(buf);
	quorum__paxos_message__pack(wire, buf);
	rc = paxos_wire_decode(buf, size_bytes, arena, &got, &out);
	free(buf);
	arena_free(arena);
	return rc;
}

static void test_oversize_counts_refused(void **state)
{
	Quorum__PaxosMessage wire = QUORUM__PAXOS_MESSAGE__INIT;
	Quorum__PaxosBallot ballot = QUORUM__PAXOS_BALLOT__INIT;
	Quorum__PaxosEntry entry = QUORUM__PAXOS_ENTRY__INIT;
	Quorum__PaxosEntry *entries[PAXOS_BATCH_MAX + 1];
	uint64_t slots[PAXOS_BATCH_MAX + 1];
	uint32_t members[PAXOS_MEMBERS_MAX + 1];

	(void)state;
	entry.slot = 1;
	entry.ballot = &ballot;
	entry.type = PAXOS_ENTRY_NORMAL;
	for (size_t i = 0; i <= PAXOS_BATCH_MAX; i++) {
		entries[i] = &entry;
		slots[i] = i + 1;
	}
	for (size_t i = 0; i <= PAXOS_MEMBERS_MAX; i++)
		members[i] = (uint32_t)i + 1;
	wire.version = PAXOS_WIRE_VERSION;
	wire.type = PAXOS_MSG_ACCEPT;
	wire.from = 1;
	wire.to = 2;
	wire.ballot = &ballot;

	wire.entries = entries;
	wire.n_entries = PAXOS_BATCH_MAX;
	assert_int_equal(decode_wire(&wire), 0);
	wire.n_entries = PAXOS_BATCH_MAX + 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	/* Entries in a message type that carries none. */
	wire.n_entries = 1;
	wire.type = PAXOS_MSG_HEARTBEAT;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.n_entries = 0;
	assert_int_equal(decode_wire(&wire), 0);

	wire.type = PAXOS_MSG_ACCEPTED;
	wire.slots = slots;
	wire.n_slots = PAXOS_BATCH_MAX + 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.n_slots = PAXOS_BATCH_MAX;
	assert_int_equal(decode_wire(&wire), 0);
	wire.n_slots = 0;

	wire.type = PAXOS_MSG_SNAPSHOT;
	wire.members = members;
	wire.n_members = PAXOS_MEMBERS_MAX + 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.n_members = PAXOS_MEMBERS_MAX;
	assert_int_equal(decode_wire(&wire), 0);
	wire.n_members = 0;

	/* Unknown types, zero ids, an unversioned message, bad entries. */
	wire.type = 0;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.type = PAXOS_MSG_SNAPSHOT + 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.type = PAXOS_MSG_LEARN;
	wire.from = 0;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.from = 1;
	wire.version = 0;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wire.version = PAXOS_WIRE_VERSION + 1;	/* a newer peer is understood */
	assert_int_equal(decode_wire(&wire), 0);
	wire.n_entries = 1;
	entry.slot = 0;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	entry.slot = 1;
	entry.type = PAXOS_ENTRY_CONFIG + 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	entry.type = PAXOS_ENTRY_NORMAL;
	entry.ballot = NULL;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	entry.ballot = &ballot;
	assert_int_equal(decode_wire(&wire), 0);
}

/* A value over PAXOS_VALUE_BYTES_MAX is refused by the decoder and by the encoder. */
static void test_oversize_value_refused(void **state)
{
	const struct paxos_wire_group group = { 1, 1 };
	size_t big_bytes = PAXOS_VALUE_BYTES_MAX + 1;
	uint8_t *big = calloc(1, big_bytes);
	struct paxos_entry entry = { .slot = 3, .ballot = { 1, 1 }, .type = PAXOS_ENTRY_NORMAL,
				     .value = big, .value_bytes = big_bytes };
	struct paxos_msg msg = { .type = PAXOS_MSG_ACCEPT, .from = 1, .to = 2,
				 .ballot = { 1, 1 }, .entries = &entry, .entry_count = 1 };
	Quorum__PaxosMessage wire = QUORUM__PAXOS_MESSAGE__INIT;
	Quorum__PaxosBallot ballot = QUORUM__PAXOS_BALLOT__INIT;
	Quorum__PaxosEntry wentry = QUORUM__PAXOS_ENTRY__INIT;
	Quorum__PaxosEntry *wentries[1] = { &wentry };
	struct arena *arena = arena_new();
	uint8_t *bytes;
	size_t size_bytes;

	(void)state;
	assert_non_null(big);
	assert_int_equal(paxos_wire_encode(&group, &msg, arena, &bytes, &size_bytes), -EINVAL);
	msg.entry_count = PAXOS_BATCH_MAX + 1;
	assert_int_equal(paxos_wire_encode(&group, &msg, arena, &bytes, &size_bytes), -EINVAL);

	wire.version = PAXOS_WIRE_VERSION;
	wire.type = PAXOS_MSG_ACCEPT;
	wire.from = 1;
	wire.to = 2;
	wire.ballot = &ballot;
	wentry.slot = 3;
	wentry.ballot = &ballot;
	wentry.type = PAXOS_ENTRY_NORMAL;
	wentry.has_value = true;
	wentry.value.data = big;
	wentry.value.len = big_bytes;
	wire.entries = wentries;
	wire.n_entries = 1;
	assert_int_equal(decode_wire(&wire), -EINVAL);
	wentry.value.len = PAXOS_VALUE_BYTES_MAX;
	assert_int_equal(decode_wire(&wire), 0);
	arena_free(arena);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_minimal),
		cmocka_unit_test(test_envelope_of_one_and_of_many),
		cmocka_unit_test(test_truncated_and_flipped_never_crash),
		cmocka_unit_test(test_random_input_never_crashes),
		cmocka_unit_test(test_oversize_counts_refused),
		cmocka_unit_test(test_oversize_value_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
