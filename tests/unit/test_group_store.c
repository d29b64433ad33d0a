/* test_group_store.c: the store as a replication group's state machine: a committed command
 * and the group's applied slot land in one LevelDB batch, so applying again after a crash
 * (the WAL replays, the core commits again) skips what the store already holds; and a
 * one-replica group over the simulated disk survives a crash and reopens from its WAL and
 * store without applying anything twice. */
#include "cluster/arena.h"
#include "cluster/group.h"
#include "cluster/keys.h"
#include "cluster/store.h"
#include "cluster/store_group.h"
#include "tests/sim/sim_disk.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define TABLE_ID 5
#define PARTITION_ID 2

/* A GroupCommand putting body at key name (malloc'd; caller frees): only if absent with
 * create, with id when not NULL, with the proposer's item limit max_bytes when not 0. */
static uint8_t *put_command_with(const char *name, const char *body, bool create,
				 const Quorum__RequestId *id, uint64_t max_bytes,
				 size_t *size_bytes)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;
	Quorum__PutItemRequest put = QUORUM__PUT_ITEM_REQUEST__INIT;
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	uint8_t *buf;

	key.table_id = TABLE_ID;
	key.partition_key.data = (uint8_t *)name;
	key.partition_key.len = strlen(name);
	meta.mode = 0100644;
	meta.mtime_ns = 1000;
	meta.ctime_ns = 1000;
	put.key = &key;
	put.meta = &meta;
	put.has_body = true;
	put.body.data = (uint8_t *)body;
	put.body.len = strlen(body);
	if (create) {
		put.has_condition = true;
		put.condition = QUORUM__CONDITION__COND_ABSENT;
	}
	command.version = GROUP_COMMAND_VERSION;
	command.now_ns = 1000;
	command.request_id = (Quorum__RequestId *)id;
	command.has_item_max_bytes = max_bytes != 0;
	command.item_max_bytes = max_bytes;
	command.op_case = QUORUM__GROUP_COMMAND__OP_PUT_ITEM;
	command.put_item = &put;
	*size_bytes = quorum__group_command__get_packed_size(&command);
	buf = malloc(*size_bytes);
	assert_non_null(buf);
	quorum__group_command__pack(&command, buf);
	return buf;
}

static uint8_t *put_command(const char *body, size_t *size_bytes)
{
	return put_command_with("k", body, false, NULL, 0, size_bytes);
}

/* Applies entries and persists them, as the group does in one cycle. */
static int sm_apply(const struct group_sm *sm, struct group_apply *entries, size_t count)
{
	int rc = sm->apply(sm->ctx, entries, count);

	return rc ? rc : sm->persist(sm->ctx);
}

static uint64_t item_version(struct store *store)
{
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	uint64_t version;

	key.table_id = TABLE_ID;
	key.partition_key.data = (uint8_t *)"k";
	key.partition_key.len = 1;
	if (store_get(store, &key, true, arena, &record) != 0) {
		arena_free(arena);
		return 0;
	}
	version = record->meta->version;
	arena_free(arena);
	return version;
}

static char *temp_dir(void)
{
	char *dir = strdup("/tmp/test_group_store.XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void remove_dir(char *dir)
{
	char command[256];

	snprintf(command, sizeof(command), "rm -rf '%s'", dir);
	assert_int_equal(system(command), 0);
	free(dir);
}

/* Frees two replicas' store groups and stores, and removes their directories. */
static void pair_close(struct store_group *ga, struct store_group *gb, struct store *a,
		       struct store *b, char *dir_a, char *dir_b)
{
	store_group_destroy(ga);
	store_group_destroy(gb);
	store_close(a);
	store_close(b);
	remove_dir(dir_a);
	remove_dir(dir_b);
}

static void test_apply_skips_applied_slots(void **state)
{
	char *dir = temp_dir();
	struct store *store;
	struct store_group sg;
	struct group_sm sm;
	struct group_apply entries[4];
	uint8_t *commands[4];
	size_t sizes[4];
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	uint64_t applied;

	(void)state;
	assert_int_equal(store_open(dir, &store), 0);
	assert_int_equal(store_group_init(&sg, store, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&sg, &sm);
	assert_int_equal(sm.state(sm.ctx, &applied, members, &member_count), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(member_count, 0);
	for (int i = 0; i < 4; i++) {
		commands[i] = put_command(i % 2 ? "odd" : "even", &sizes[i]);
		memset(&entries[i], 0, sizeof(entries[i]));
		entries[i].slot = (uint64_t)i + 1;
		entries[i].type = PAXOS_ENTRY_NORMAL;
		entries[i].command = commands[i];
		entries[i].command_bytes = sizes[i];
	}
	/* Slots 1 and 2 applied, then a crash before the WAL knew: the core hands 1..4 again. */
	assert_int_equal(sm_apply(&sm, entries, 2), 0);
	assert_int_equal(entries[1].status, 0);
	assert_true(entries[1].result_bytes > 0);
	assert_int_equal(item_version(store), 2);
	store_close(store);
	assert_int_equal(store_open(dir, &store), 0);
	sg.store = store;
	assert_int_equal(sm_apply(&sm, entries, 4), 0);
	assert_int_equal(item_version(store), 4);	/* 3 and 4 once each, 1 and 2 not again */
	assert_int_equal(sm.state(sm.ctx, &applied, members, &member_count), 0);
	assert_int_equal(applied, 4);

	/* A refused command and a no-op still move the applied slot. */
	entries[0].slot = 5;
	entries[0].command = (const uint8_t *)"garbage";
	entries[0].command_bytes = 7;
	entries[1].slot = 6;
	entries[1].type = PAXOS_ENTRY_NOOP;
	assert_int_equal(sm_apply(&sm, entries, 2), 0);
	assert_int_equal(entries[0].status, -EINVAL);
	assert_int_equal(sm.state(sm.ctx, &applied, members, &member_count), 0);
	assert_int_equal(applied, 6);
	assert_int_equal(item_version(store), 4);
	for (int i = 0; i < 4; i++)
		free(commands[i]);
	store_group_destroy(&sg);
	store_close(store);
	remove_dir(dir);
}

static void test_snapshot_round_trip(void **state)
{
	char *dir_a = temp_dir(), *dir_b = temp_dir();
	struct store *a, *b;
	struct store_group ga, gb;
	struct group_sm sma, smb;
	struct group_apply entry = { .slot = 1, .type = PAXOS_ENTRY_NORMAL };
	const uint32_t members[3] = { 1, 2, 3 };
	uint32_t got_members[PAXOS_MEMBERS_MAX];
	size_t size_bytes, got_count;
	uint8_t *command = put_command("hello", &size_bytes), *snap;
	uint64_t through, applied;

	(void)state;
	assert_int_equal(store_open(dir_a, &a), 0);
	assert_int_equal(store_open(dir_b, &b), 0);
	assert_int_equal(store_group_init(&ga, a, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	assert_int_equal(store_group_init(&gb, b, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&ga, &sma);
	store_group_sm(&gb, &smb);
	entry.command = command;
	entry.command_bytes = size_bytes;
	assert_int_equal(sm_apply(&sma, &entry, 1), 0);
	assert_int_equal(sma.snapshot_get(sma.ctx, &snap, &size_bytes, &through), 0);
	assert_int_equal(through, 1);
	assert_int_equal(smb.snapshot_install(smb.ctx, through, snap, size_bytes, members, 3), 0);
	assert_int_equal(item_version(b), 1);
	assert_int_equal(smb.state(smb.ctx, &applied, got_members, &got_count), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(got_count, 3);
	/* Truncated snapshots are refused, never half installed. */
	assert_int_equal(smb.snapshot_install(smb.ctx, through, snap, size_bytes - 1, members, 3),
			 -EINVAL);
	free(snap);
	free(command);
	pair_close(&ga, &gb, a, b, dir_a, dir_b);
}

static Quorum__RequestId request_id(uint64_t client_id, uint64_t seq, uint64_t floor)
{
	Quorum__RequestId id = QUORUM__REQUEST_ID__INIT;

	id.client_id = client_id;
	id.seq = seq;
	id.floor = floor;
	return id;
}

/* Applies command at slot through sm; returns the entry's status, its result in *a. */
static int apply_at(struct group_sm *sm, uint64_t slot, const uint8_t *command,
		    size_t command_bytes, struct group_apply *a)
{
	memset(a, 0, sizeof(*a));
	a->slot = slot;
	a->type = PAXOS_ENTRY_NORMAL;
	a->command = command;
	a->command_bytes = command_bytes;
	assert_int_equal(sm_apply(sm, a, 1), 0);
	return a->status;
}

/* A write that reaches the log twice (a router retried it after a lost answer, at the same
 * or at a new leader) is applied once: the second copy gets the first one's answer, a late
 * copy below the client's floor is refused, and the sessions that decide this travel with
 * snapshots. */
static void test_retried_write_applies_once(void **state)
{
	char *dir_a = temp_dir(), *dir_b = temp_dir();
	Quorum__RequestId first = request_id(9, 1, 1), second = request_id(9, 2, 2);
	Quorum__RequestId other_client = request_id(10, 1, 1);
	size_t create_bytes, next_bytes, other_bytes, snap_bytes;
	uint8_t *create = put_command_with("k", "a", true, &first, 0, &create_bytes);
	uint8_t *next = put_command_with("k", "b", false, &second, 0, &next_bytes);
	uint8_t *other = put_command_with("k", "c", true, &other_client, 0, &other_bytes);
	struct store_group ga, gb;
	struct group_sm sma, smb;
	struct group_apply one, again;
	const uint32_t members[3] = { 1, 2, 3 };
	struct store *a, *b;
	uint64_t through;
	uint8_t *snap;

	(void)state;
	assert_int_equal(store_open(dir_a, &a), 0);
	assert_int_equal(store_open(dir_b, &b), 0);
	assert_int_equal(store_group_init(&ga, a, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	assert_int_equal(store_group_init(&gb, b, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&ga, &sma);
	store_group_sm(&gb, &smb);

	/* A create, then its retry: not -EEXIST, the same metadata, one version. */
	assert_int_equal(apply_at(&sma, 1, create, create_bytes, &one), 0);
	assert_int_equal(apply_at(&sma, 2, create, create_bytes, &again), 0);
	assert_int_equal(again.result_bytes, one.result_bytes);
	assert_memory_equal(again.result, one.result, one.result_bytes);
	assert_int_equal(item_version(a), 1);
	/* The same create from another client is a real conflict. */
	assert_int_equal(apply_at(&sma, 3, other, other_bytes, &one), -EEXIST);
	assert_int_equal(apply_at(&sma, 4, other, other_bytes, &again), -EEXIST);

	/* The next write says the first is over: a late copy of it is refused. */
	assert_int_equal(apply_at(&sma, 5, next, next_bytes, &one), 0);
	assert_int_equal(item_version(a), 2);
	assert_int_equal(apply_at(&sma, 6, create, create_bytes, &one), -ETIMEDOUT);
	assert_int_equal(item_version(a), 2);

	/* A replica that catches up by snapshot answers retries the same way. */
	assert_int_equal(sma.snapshot_get(sma.ctx, &snap, &snap_bytes, &through), 0);
	assert_int_equal(smb.snapshot_install(smb.ctx, through, snap, snap_bytes, members, 3), 0);
	assert_int_equal(apply_at(&smb, through + 1, next, next_bytes, &one), 0);
	assert_int_equal(item_version(b), 2);
	assert_int_equal(apply_at(&smb, through + 2, create, create_bytes, &one), -ETIMEDOUT);

	free(snap);
	free(create);
	free(next);
	free(other);
	pair_close(&ga, &gb, a, b, dir_a, dir_b);
}

/* A cycle's committed entries are applied in one batch: each must see what the earlier ones
 * of the batch did (the item's version, a condition, the client's session), so one batch
 * decides exactly what the same entries applied one by one decide. */
static void test_one_batch_decides_like_single_entries(void **state)
{
	char *dir_a = temp_dir(), *dir_b = temp_dir();
	Quorum__RequestId first = request_id(9, 1, 1), second = request_id(9, 2, 2);
	Quorum__RequestId other_client = request_id(10, 1, 1);
	size_t sizes[6], snap_a_bytes, snap_b_bytes;
	uint8_t *commands[6], *snap_a, *snap_b;
	struct group_apply single[6], batch[6];
	const int expected[6] = { 0, 0, -EEXIST, -EEXIST, 0, -ETIMEDOUT };
	struct store_group ga, gb;
	struct group_sm sma, smb;
	struct store *a, *b;
	uint64_t through_a, through_b;

	(void)state;
	commands[0] = put_command_with("k", "a", true, &first, 0, &sizes[0]);
	commands[1] = put_command_with("k", "a", true, &first, 0, &sizes[1]);
	commands[2] = put_command_with("k", "c", true, &other_client, 0, &sizes[2]);
	commands[3] = put_command_with("k", "c", true, &other_client, 0, &sizes[3]);
	commands[4] = put_command_with("k", "b", false, &second, 0, &sizes[4]);
	commands[5] = put_command_with("k", "a", true, &first, 0, &sizes[5]);
	assert_int_equal(store_open(dir_a, &a), 0);
	assert_int_equal(store_open(dir_b, &b), 0);
	assert_int_equal(store_group_init(&ga, a, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	assert_int_equal(store_group_init(&gb, b, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&ga, &sma);
	store_group_sm(&gb, &smb);

	memset(batch, 0, sizeof(batch));
	for (int i = 0; i < 6; i++) {
		assert_int_equal(apply_at(&sma, (uint64_t)i + 1, commands[i], sizes[i], &single[i]),
				 expected[i]);
		batch[i].slot = (uint64_t)i + 1;
		batch[i].type = PAXOS_ENTRY_NORMAL;
		batch[i].command = commands[i];
		batch[i].command_bytes = sizes[i];
	}
	/* The results are known at apply, before persist writes anything (group.h). */
	assert_int_equal(smb.apply(smb.ctx, batch, 6), 0);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(batch[i].status, single[i].status);
		assert_int_equal(batch[i].result_bytes, single[i].result_bytes);
		assert_memory_equal(batch[i].result, single[i].result, single[i].result_bytes);
	}
	assert_int_equal(item_version(b), 0);
	assert_int_equal(smb.persist(smb.ctx), 0);
	assert_int_equal(item_version(b), 2);
	/* The same items, sessions and applied slot. */
	assert_int_equal(sma.snapshot_get(sma.ctx, &snap_a, &snap_a_bytes, &through_a), 0);
	assert_int_equal(smb.snapshot_get(smb.ctx, &snap_b, &snap_b_bytes, &through_b), 0);
	assert_int_equal(through_b, 6);
	assert_int_equal(through_a, through_b);
	assert_int_equal(snap_a_bytes, snap_b_bytes);
	assert_memory_equal(snap_a, snap_b, snap_a_bytes);

	free(snap_a);
	free(snap_b);
	for (int i = 0; i < 6; i++)
		free(commands[i]);
	pair_close(&ga, &gb, a, b, dir_a, dir_b);
}

/* The item limit is the proposer's, stamped in the command: every replica decides alike,
 * whatever limit it has heard of itself. */
static void test_item_limit_comes_with_the_command(void **state)
{
	char *dir = temp_dir();
	size_t small_bytes, large_bytes;
	uint8_t *small = put_command_with("k", "12345", false, NULL, 4, &small_bytes);
	uint8_t *large = put_command_with("k", "12345", false, NULL, 8, &large_bytes);
	struct store_group sg;
	struct group_sm sm;
	struct group_apply a;
	struct store *store;

	(void)state;
	assert_int_equal(store_open(dir, &store), 0);
	store_set_item_max_bytes(store, 2);
	assert_int_equal(store_group_init(&sg, store, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&sg, &sm);
	assert_int_equal(apply_at(&sm, 1, small, small_bytes, &a), -EFBIG);
	assert_int_equal(item_version(store), 0);
	assert_int_equal(apply_at(&sm, 2, large, large_bytes, &a), 0);
	assert_int_equal(item_version(store), 1);
	free(small);
	free(large);
	store_group_destroy(&sg);
	store_close(store);
	remove_dir(dir);
}

/* A GroupCommand splitting at split_hash into child (malloc'd). */
static uint8_t *split_command(uint64_t split_hash, uint64_t child, size_t *size_bytes)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;
	Quorum__SplitCommand split = QUORUM__SPLIT_COMMAND__INIT;
	uint8_t *buf;

	split.split_hash = split_hash;
	split.child_partition_id = child;
	command.version = GROUP_COMMAND_VERSION;
	command.now_ns = 1000;
	command.op_case = QUORUM__GROUP_COMMAND__OP_SPLIT;
	command.split = &split;
	*size_bytes = quorum__group_command__get_packed_size(&command);
	buf = malloc(*size_bytes);
	assert_non_null(buf);
	quorum__group_command__pack(&command, buf);
	return buf;
}

#define SPLIT_ITEMS 40
#define CHILD_ID 9

/* Puts SPLIT_ITEMS items named i0.. through sm from slot 1 on, each by client 5 with seq i+1;
 * returns the next free slot. */
static uint64_t put_items(struct group_sm *sm)
{
	struct group_apply a;

	for (int i = 0; i < SPLIT_ITEMS; i++) {
		Quorum__RequestId id = request_id(5, (uint64_t)i + 1, 1);
		char name[16];
		size_t bytes;
		uint8_t *command;

		snprintf(name, sizeof(name), "i%d", i);
		command = put_command_with(name, "body", false, &id, 0, &bytes);
		assert_int_equal(apply_at(sm, (uint64_t)i + 1, command, bytes, &a), 0);
		free(command);
	}
	return SPLIT_ITEMS + 1;
}

/* Applies a put of item name at slot through sm; returns the status. */
static int put_item_at(struct group_sm *sm, uint64_t slot, const char *name)
{
	struct group_apply a;
	size_t bytes;
	uint8_t *command = put_command_with(name, "later", false, NULL, 0, &bytes);
	int status = apply_at(sm, slot, command, bytes, &a);

	free(command);
	return status;
}

/* The name of a stored item whose hash is at least (upper) or below (!upper) split_hash. */
static void item_name_of_half(uint64_t split_hash, bool upper, char *out, size_t out_bytes)
{
	for (int i = 0; i < SPLIT_ITEMS; i++) {
		snprintf(out, out_bytes, "i%d", i);
		if ((key_hash(out, strlen(out)) >= split_hash) == upper)
			return;
	}
	fail_msg("no item on that side of the split");
}

/* A split goes through the log: the parent keeps the lower half, the child's state starts at
 * slot 1 with the upper half, the items and the client sessions; a write of the upper half
 * that reaches the parent after the split is refused with -EREMCHG; a split is done once. */
static void test_split_through_the_log(void **state)
{
	char *dir = temp_dir();
	struct store_group parent, child;
	struct group_sm psm, csm;
	struct store_group_route route;
	struct group_apply a;
	struct store *store;
	struct arena *arena = arena_new();
	Quorum__GroupState *cstate;
	uint64_t slot, split_hash, applied;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t bytes, member_count;
	uint8_t *split;
	char upper[16], lower[16];

	(void)state;
	assert_int_equal(store_open(dir, &store), 0);
	assert_int_equal(store_group_init(&parent, store, TABLE_ID, PARTITION_ID, 0, UINT64_MAX,
					  1), 0);
	store_group_sm(&parent, &psm);
	slot = put_items(&psm);
	assert_int_equal(store_group_split_point(store, TABLE_ID, 0, UINT64_MAX, &split_hash), 0);
	assert_true(split_hash > 0);
	item_name_of_half(split_hash, true, upper, sizeof(upper));
	item_name_of_half(split_hash, false, lower, sizeof(lower));

	split = split_command(split_hash, CHILD_ID, &bytes);
	assert_int_equal(apply_at(&psm, slot++, split, bytes, &a), 0);
	store_group_route(&parent, &route);
	assert_true(route.hash_first == 0 && route.hash_last == split_hash - 1);
	assert_int_equal(route.epoch, 2);
	assert_int_equal(route.child_count, 1);
	assert_int_equal(route.children[0].partition_id, CHILD_ID);
	assert_true(route.children[0].hash_first == split_hash);
	/* Again (meta retried): done already, nothing changes. */
	assert_int_equal(apply_at(&psm, slot++, split, bytes, &a), 0);
	store_group_route(&parent, &route);
	assert_int_equal(route.epoch, 2);
	assert_int_equal(route.child_count, 1);
	free(split);
	/* Outside the range now. */
	split = split_command(split_hash, CHILD_ID + 1, &bytes);
	assert_int_equal(apply_at(&psm, slot++, split, bytes, &a), -ERANGE);
	free(split);

	assert_int_equal(put_item_at(&psm, slot++, upper), -EREMCHG);
	assert_int_equal(put_item_at(&psm, slot++, lower), 0);

	/* The child opens where the split left it: slot 1, the upper half, the sessions. */
	assert_int_equal(store_group_state_read(store, TABLE_ID, CHILD_ID, arena, &cstate), 0);
	assert_non_null(cstate);
	assert_int_equal(cstate->applied_slot, 1);
	assert_true(cstate->hash_first == split_hash && cstate->hash_last == UINT64_MAX);
	assert_int_equal(cstate->epoch, 2);
	assert_int_equal(store_group_init(&child, store, TABLE_ID, CHILD_ID, 0, 0, 0), 0);
	store_group_sm(&child, &csm);
	assert_int_equal(csm.state(csm.ctx, &applied, members, &member_count), 0);
	assert_int_equal(applied, 1);
	store_group_route(&child, &route);
	assert_true(route.hash_first == split_hash && route.hash_last == UINT64_MAX);
	assert_int_equal(put_item_at(&csm, 2, upper), 0);
	assert_int_equal(put_item_at(&csm, 3, lower), -EREMCHG);
	{
		/* A retry of a write the parent applied before the split is answered by the
		 * child from the copied session, not applied again. */
		Quorum__RequestId id = request_id(5, SPLIT_ITEMS, 1);
		char name[16];
		uint8_t *command;

		snprintf(name, sizeof(name), "i%d", SPLIT_ITEMS - 1);
		command = put_command_with(name, "body", false, &id, 0, &bytes);
		assert_int_equal(apply_at(&csm, 4, command, bytes, &a), 0);
		assert_true(a.result_bytes > 0);
		free(command);
	}
	store_group_destroy(&child);
	store_group_destroy(&parent);
	arena_free(arena);
	store_close(store);
	remove_dir(dir);
}

/* A replica that missed the split and catches up by a snapshot of the parent gets the
 * child's state at slot 0 (so the child's group asks for a snapshot of its own) and loses
 * its stale copy of the child's range; the split point of one hash is refused. */
static void test_snapshot_names_a_missed_split(void **state)
{
	char *dir_a = temp_dir(), *dir_b = temp_dir();
	struct store_group pa, pb;
	struct group_sm sma, smb;
	struct store_group_route route;
	struct group_apply a;
	struct store *sa, *sb;
	struct arena *arena = arena_new();
	Quorum__GroupState *cstate;
	const uint32_t members[3] = { 1, 2, 3 };
	uint64_t slot, split_hash, through, h;
	size_t bytes;
	uint8_t *split, *snap;
	char upper[16];

	(void)state;
	assert_int_equal(store_open(dir_a, &sa), 0);
	assert_int_equal(store_open(dir_b, &sb), 0);
	assert_int_equal(store_group_init(&pa, sa, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	assert_int_equal(store_group_init(&pb, sb, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&pa, &sma);
	store_group_sm(&pb, &smb);
	slot = put_items(&sma);
	put_items(&smb);		/* b has everything up to the split, stale after it */
	assert_int_equal(store_group_split_point(sa, TABLE_ID, 0, UINT64_MAX, &split_hash), 0);
	item_name_of_half(split_hash, true, upper, sizeof(upper));
	split = split_command(split_hash, CHILD_ID, &bytes);
	assert_int_equal(apply_at(&sma, slot++, split, bytes, &a), 0);
	free(split);

	assert_int_equal(sma.snapshot_get(sma.ctx, &snap, &bytes, &through), 0);
	assert_int_equal(smb.snapshot_install(smb.ctx, through, snap, bytes, members, 3), 0);
	free(snap);
	store_group_route(&pb, &route);
	assert_true(route.hash_last == split_hash - 1);
	assert_int_equal(store_group_state_read(sb, TABLE_ID, CHILD_ID, arena, &cstate), 0);
	assert_non_null(cstate);
	assert_int_equal(cstate->applied_slot, 0);
	assert_int_equal(cstate->n_members, 3);
	assert_true(cstate->has_needs_snapshot && cstate->needs_snapshot);
	{
		/* Its group starts as a joining replica: it commits nothing and never
		 * campaigns until its leader sends a snapshot; the replica that applied the
		 * split needs none. */
		struct store_group child;
		struct group_sm csm;

		assert_int_equal(store_group_init(&child, sb, TABLE_ID, CHILD_ID, 0, 0, 2), 0);
		store_group_sm(&child, &csm);
		assert_true(csm.needs_snapshot(csm.ctx));
		store_group_destroy(&child);
		assert_int_equal(store_group_init(&child, sa, TABLE_ID, CHILD_ID, 0, 0, 2), 0);
		store_group_sm(&child, &csm);
		assert_false(csm.needs_snapshot(csm.ctx));
		store_group_destroy(&child);
		/* No state at all, and a partition past its first epoch: a history missed. */
		assert_int_equal(store_group_init(&child, sb, TABLE_ID, CHILD_ID + 50, 0, 0, 2), 0);
		store_group_sm(&child, &csm);
		assert_true(csm.needs_snapshot(csm.ctx));
		store_group_destroy(&child);
	}
	{
		Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
		Quorum__ItemRecord *record;

		key.table_id = TABLE_ID;
		key.partition_key.data = (uint8_t *)upper;
		key.partition_key.len = strlen(upper);
		assert_int_equal(store_get(sb, &key, true, arena, &record), -ENOENT);
		assert_int_equal(store_get(sa, &key, true, arena, &record), 0);
	}
	/* One hash cannot be split: [h, h] holds one item at most in a plain table. */
	h = key_hash("i0", 2);
	assert_int_equal(store_group_split_point(sa, TABLE_ID, h, h, &split_hash), -ERANGE);

	store_group_destroy(&pa);
	store_group_destroy(&pb);
	arena_free(arena);
	store_close(sa);
	store_close(sb);
	remove_dir(dir_a);
	remove_dir(dir_b);
}

struct outcome {
	int done;
	int status;
};

static void send_nothing(void *ctx, const struct paxos_msg *msg)
{
	(void)ctx;
	(void)msg;
	fail_msg("a one-replica group sends nothing");
}

static void proposal_done(void *ctx, uint64_t token, int status, int apply_status,
			  const uint8_t *result, size_t result_bytes)
{
	struct outcome *o = ctx;

	(void)token;
	(void)result;
	(void)result_bytes;
	o->done++;
	o->status = status ? status : apply_status;
}

/* A one-replica group: puts commit, a crash loses nothing synced, reopening applies nothing
 * twice (the WAL holds entries the store already applied). */
static void test_group_over_store_survives_crash(void **state)
{
	char *dir = temp_dir();
	struct sim_disk *disk;
	struct store *store;
	struct store_group sg;
	struct group_sm sm;
	struct group_config config;
	struct outcome outcome = { 0, 0 };
	struct group_callbacks callbacks = { .ctx = &outcome, .send = send_nothing,
					     .proposal_done = proposal_done };
	struct group *group;
	struct group_status st;
	size_t size_bytes;
	uint8_t *command = put_command("v", &size_bytes);

	(void)state;
	assert_int_equal(sim_disk_create(9, &disk), 0);
	assert_int_equal(store_open(dir, &store), 0);
	assert_int_equal(store_group_init(&sg, store, TABLE_ID, PARTITION_ID, 0, UINT64_MAX, 1), 0);
	store_group_sm(&sg, &sm);
	group_config_init(&config);
	config.self_id = 1;
	config.members[0] = 1;
	config.member_count = 1;
	config.compact_every_slots = 0;	/* keep every entry in the WAL: replay sees them all */
	for (int life = 0; life < 3; life++) {
		config.incarnation = (uint32_t)life + 1;
		assert_int_equal(group_open(sim_disk_io(disk), "/wal", &config, &sm, &callbacks,
					    &group), 0);
		for (int put = 0; put < 3; put++) {
			int rc = -EAGAIN;

			outcome.done = 0;
			for (int tick = 0; tick < 200 && !outcome.done; tick++) {
				if (rc != 0)
					rc = group_propose(group, command, size_bytes, 1, NULL);
				group_tick(group);
				assert_int_equal(group_process(group), 0);
			}
			assert_int_equal(outcome.done, 1);
			assert_int_equal(outcome.status, 0);
		}
		group_status(group, &st);
		assert_false(st.failed);
		group_close(group);
		sim_disk_crash(disk);
		store_close(store);
		assert_int_equal(store_open(dir, &store), 0);
		sg.store = store;
		/* Three puts per life, each applied exactly once. */
		assert_int_equal(item_version(store), 3 * (uint64_t)(life + 1));
	}
	free(command);
	store_group_destroy(&sg);
	store_close(store);
	sim_disk_destroy(disk);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_skips_applied_slots),
		cmocka_unit_test(test_snapshot_round_trip),
		cmocka_unit_test(test_retried_write_applies_once),
		cmocka_unit_test(test_one_batch_decides_like_single_entries),
		cmocka_unit_test(test_item_limit_comes_with_the_command),
		cmocka_unit_test(test_split_through_the_log),
		cmocka_unit_test(test_snapshot_names_a_missed_split),
		cmocka_unit_test(test_group_over_store_survives_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
