/* test_catalog_sm.c: the state machine of replicated quorum-meta (meta/catalog_sm.h) over a
 * real LevelDB in a fresh temporary directory: committed batches, configurations, no-ops
 * and refused commands applied with the applied slot; slots applied twice skipped; a
 * snapshot that round-trips into another catalog; the applied slot across a reopen; and the
 * catalog (meta/catalog.h) driven through a committer that applies its batches by the state
 * machine, reloaded and reopened with everything in place. */
#define _GNU_SOURCE   /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/arena.h"
#include "cluster/paxos.h"
#include "meta/catalog.h"
#include "meta/catalog_sm.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <leveldb/c.h>

#define TEST_TIMEOUT_MS 5000

struct test_db {
	char dir[64];
	leveldb_t *db;
	leveldb_options_t *options;
	leveldb_readoptions_t *read_options;
	struct catalog_sm *sm;
	struct group_sm bound;
};

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void test_db_open(struct test_db *t)
{
	char *error = NULL;

	t->options = leveldb_options_create();
	leveldb_options_set_create_if_missing(t->options, 1);
	t->db = leveldb_open(t->options, t->dir, &error);
	assert_null(error);
	t->read_options = leveldb_readoptions_create();
	assert_int_equal(catalog_sm_new(t->db, &t->sm), 0);
	catalog_sm_bind(t->sm, &t->bound);
}

static void test_db_close(struct test_db *t)
{
	catalog_sm_free(t->sm);
	leveldb_close(t->db);
	leveldb_options_destroy(t->options);
	leveldb_readoptions_destroy(t->read_options);
}

static struct test_db *test_db_new(void)
{
	struct test_db *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	strcpy(t->dir, "/tmp/test_catalog_sm.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	test_db_open(t);
	return t;
}

static void test_db_free(struct test_db *t)
{
	test_db_close(t);
	nftw(t->dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
}

/* The value of key, or NULL; the caller frees with leveldb_free. */
static char *test_get(struct test_db *t, const char *key, size_t *value_bytes)
{
	char *error = NULL;
	char *value = leveldb_get(t->db, t->read_options, key, strlen(key), value_bytes, &error);

	assert_null(error);
	return value;
}

static void test_expect(struct test_db *t, const char *key, const char *expected)
{
	size_t value_bytes = 0;
	char *value = test_get(t, key, &value_bytes);

	if (!expected) {
		assert_null(value);
		return;
	}
	assert_non_null(value);
	assert_int_equal(value_bytes, strlen(expected));
	assert_memory_equal(value, expected, value_bytes);
	leveldb_free(value);
}

static void test_expect_state(struct test_db *t, uint64_t slot, size_t member_count)
{
	uint32_t members[PAXOS_MEMBERS_MAX];
	uint64_t applied;
	size_t count;

	assert_int_equal(t->bound.state(t->bound.ctx, &applied, members, &count), 0);
	assert_int_equal(applied, slot);
	assert_int_equal(count, member_count);
}

/* A NORMAL entry holding batch's command (malloc'd bytes, freed by the caller). */
static struct group_apply test_entry(uint64_t slot, leveldb_writebatch_t *batch, uint8_t **bytes)
{
	struct group_apply a;
	size_t size_bytes;

	memset(&a, 0, sizeof(a));
	assert_int_equal(catalog_sm_encode(batch, bytes, &size_bytes), 0);
	a.slot = slot;
	a.type = PAXOS_ENTRY_NORMAL;
	a.command = *bytes;
	a.command_bytes = size_bytes;
	return a;
}

static void test_apply(void **state)
{
	struct test_db *t = test_db_new();
	leveldb_writebatch_t *first = leveldb_writebatch_create();
	leveldb_writebatch_t *second = leveldb_writebatch_create();
	leveldb_writebatch_t *forged = leveldb_writebatch_create();
	uint32_t members[3] = { 1, 2, 4 };
	uint8_t config[4 + 4 * PAXOS_MEMBERS_MAX], garbage[3] = { 0xff, 0xff, 0xff };
	uint8_t *bytes[4] = { NULL };
	struct group_apply entries[6];

	(void)state;
	test_expect_state(t, 0, 0);
	leveldb_writebatch_put(first, "t/a", 3, "A1", 2);
	leveldb_writebatch_put(first, "c", 1, "C1", 2);
	leveldb_writebatch_put(second, "t/a", 3, "A2", 2);
	leveldb_writebatch_delete(second, "c", 1);
	leveldb_writebatch_put(second, "t/b", 3, "B", 1);
	/* A command may not touch the group's own record. */
	leveldb_writebatch_put(forged, "t/x", 3, "X", 1);
	leveldb_writebatch_put(forged, CATALOG_GROUP_STATE_KEY, 1, "!", 1);

	entries[0] = test_entry(1, first, &bytes[0]);
	memset(&entries[1], 0, sizeof(entries[1]));
	entries[1].slot = 2;
	entries[1].type = PAXOS_ENTRY_CONFIG;
	entries[1].command = config;
	entries[1].command_bytes = paxos_config_encode(members, 3, config);
	memset(&entries[2], 0, sizeof(entries[2]));
	entries[2].slot = 3;
	entries[2].type = PAXOS_ENTRY_NOOP;
	entries[3] = test_entry(4, second, &bytes[1]);
	entries[4] = test_entry(5, forged, &bytes[2]);
	memset(&entries[5], 0, sizeof(entries[5]));
	entries[5].slot = 6;
	entries[5].type = PAXOS_ENTRY_NORMAL;
	entries[5].command = garbage;
	entries[5].command_bytes = sizeof(garbage);

	assert_int_equal(t->bound.apply(t->bound.ctx, entries, 6), 0);
	assert_int_equal(entries[0].status, 0);
	assert_int_equal(entries[3].status, 0);
	assert_int_equal(entries[4].status, -EINVAL);
	assert_int_equal(entries[5].status, -EINVAL);
	test_expect(t, "t/a", "A2");
	test_expect(t, "t/b", "B");
	test_expect(t, "c", NULL);
	test_expect(t, "t/x", NULL);
	test_expect_state(t, 6, 3);

	/* Slots at or below the applied one are in already: applying them again changes
	 * nothing (a crash between the apply and the WAL). */
	entries[0].slot = 6;
	assert_int_equal(t->bound.apply(t->bound.ctx, entries, 1), 0);
	test_expect(t, "t/a", "A2");
	test_expect(t, "c", NULL);

	/* A barrier changes the slot only. */
	assert_int_equal(catalog_sm_encode(NULL, &bytes[3], &entries[0].command_bytes), 0);
	entries[0].command = bytes[3];
	entries[0].slot = 7;
	assert_int_equal(t->bound.apply(t->bound.ctx, entries, 1), 0);
	assert_int_equal(entries[0].status, 0);
	test_expect_state(t, 7, 3);
	test_expect(t, "t/a", "A2");

	/* The applied slot and members survive a reopen. */
	test_db_close(t);
	test_db_open(t);
	test_expect_state(t, 7, 3);
	test_expect(t, "t/b", "B");

	for (int i = 0; i < 4; i++)
		free(bytes[i]);
	leveldb_writebatch_destroy(first);
	leveldb_writebatch_destroy(second);
	leveldb_writebatch_destroy(forged);
	test_db_free(t);
}

static void test_snapshot(void **state)
{
	struct test_db *from = test_db_new(), *to = test_db_new();
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	leveldb_writebatch_t *old = leveldb_writebatch_create();
	uint32_t members[3] = { 1, 2, 3 };
	struct group_apply entry;
	uint8_t *bytes, *snapshot;
	size_t snapshot_bytes;
	uint64_t through;
	bool unreplicated;

	(void)state;
	leveldb_writebatch_put(batch, "t/a", 3, "A", 1);
	leveldb_writebatch_put(batch, "n/1", 3, "N1", 2);
	leveldb_writebatch_put(batch, "s/split.bytes", 13, "S", 1);
	entry = test_entry(41, batch, &bytes);
	assert_int_equal(from->bound.apply(from->bound.ctx, &entry, 1), 0);
	free(bytes);

	/* The receiver holds records the snapshot does not: they go. */
	leveldb_writebatch_put(old, "t/gone", 6, "G", 1);
	entry = test_entry(3, old, &bytes);
	assert_int_equal(to->bound.apply(to->bound.ctx, &entry, 1), 0);
	free(bytes);

	assert_int_equal(from->bound.snapshot_get(from->bound.ctx, &snapshot, &snapshot_bytes,
						  &through), 0);
	assert_int_equal(through, 41);
	assert_int_equal(to->bound.snapshot_install(to->bound.ctx, through, snapshot,
						    snapshot_bytes, members, 3), 0);
	test_expect(to, "t/a", "A");
	test_expect(to, "n/1", "N1");
	test_expect(to, "s/split.bytes", "S");
	test_expect(to, "t/gone", NULL);
	test_expect_state(to, 41, 3);
	assert_int_equal(catalog_sm_has_unreplicated_records(to->db, &unreplicated), 0);
	assert_false(unreplicated);

	/* A snapshot that does not decode leaves the state as it was. */
	assert_int_not_equal(to->bound.snapshot_install(to->bound.ctx, 50, (const uint8_t *)"\xff",
							1, members, 3), 0);
	test_expect_state(to, 41, 3);
	test_expect(to, "t/a", "A");

	free(snapshot);
	leveldb_writebatch_destroy(batch);
	leveldb_writebatch_destroy(old);
	test_db_free(from);
	test_db_free(to);
}

/* ------------------------------------------------ the catalog over the state machine */

struct test_committer {
	struct catalog_sm *sm;
	struct group_sm bound;
	uint64_t next_slot;
	int commits;
	int fail_with;			/* a failure to answer instead, 0: none */
};

static int test_commit(void *ctx, struct leveldb_writebatch_t *batch, char *why,
		       size_t why_bytes)
{
	struct test_committer *c = ctx;
	struct group_apply entry;
	uint8_t *bytes;
	int err;

	if (c->fail_with) {
		if (why && why_bytes)
			snprintf(why, why_bytes, "not the leader");
		return c->fail_with;
	}
	entry = test_entry(c->next_slot++, batch, &bytes);
	err = c->bound.apply(c->bound.ctx, &entry, 1);
	free(bytes);
	c->commits++;
	return err ? err : entry.status;
}

static bool test_serving(void *ctx)
{
	return ((struct test_committer *)ctx)->fail_with == 0;
}

static void test_catalog_committed(void **state)
{
	struct test_committer c = { .next_slot = 1 };
	struct catalog *catalog;
	struct arena *arena = arena_new();
	Quorum__ListNodesResponse *nodes;
	char dir[64] = "/tmp/test_catalog_sm.XXXXXX", why[CATALOG_WHY_BYTES];
	uint64_t id = 0, partition_id = 0, applied;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t count;
	bool unreplicated;

	(void)state;
	assert_non_null(arena);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(catalog_open(dir, TEST_TIMEOUT_MS, &catalog), 0);
	assert_int_equal(catalog_sm_new(catalog_leveldb(catalog), &c.sm), 0);
	catalog_sm_bind(c.sm, &c.bound);
	catalog_set_committer(catalog, test_commit, test_serving, &c);
	assert_true(catalog_serving(catalog));

	assert_int_equal(catalog_register_node(catalog, 0, "tcp://127.0.0.1:1", "a", 0, &id, why),
			 0);
	assert_int_equal(id, 1);
	assert_int_equal(catalog_reserve_partition_id(catalog, &partition_id), 0);
	assert_int_equal(c.commits, 2);

	/* Not the leader: refused, and memory stays as the catalog is. */
	c.fail_with = -EREMOTE;
	assert_false(catalog_serving(catalog));
	assert_int_equal(catalog_register_node(catalog, 0, "tcp://127.0.0.1:2", "b", 0, &id, why),
			 -EREMOTE);
	assert_int_equal(catalog_list_nodes(catalog, 0, arena, &nodes), 0);
	assert_int_equal(nodes->n_nodes, 1);
	c.fail_with = 0;

	/* A reload finds what the state machine wrote, and keeps what node 1 told us. */
	assert_int_equal(catalog_reload(catalog, 0), 0);
	assert_int_equal(catalog_list_nodes(catalog, 0, arena, &nodes), 0);
	assert_int_equal(nodes->n_nodes, 1);
	assert_true(nodes->nodes[0]->up);
	assert_int_equal(catalog_register_node(catalog, 0, "tcp://127.0.0.1:2", "b", 0, &id, why),
			 0);
	assert_int_equal(id, 2);

	assert_int_equal(catalog_sm_read_state(catalog_leveldb(catalog), &applied, members,
					       &count), 0);
	assert_int_equal(applied, 3);
	assert_int_equal(catalog_sm_has_unreplicated_records(catalog_leveldb(catalog),
							     &unreplicated), 0);
	assert_false(unreplicated);
	catalog_sm_free(c.sm);
	catalog_close(catalog);

	/* Reopened: both nodes, and the group's record is not taken for a catalog record. */
	assert_int_equal(catalog_open(dir, TEST_TIMEOUT_MS, &catalog), 0);
	assert_int_equal(catalog_list_nodes(catalog, 0, arena, &nodes), 0);
	assert_int_equal(nodes->n_nodes, 2);
	assert_false(nodes->nodes[0]->up);	/* health is not durable */
	assert_int_equal(catalog_reserve_partition_id(catalog, &partition_id), 0);
	assert_int_equal(partition_id, 2);	/* the counter moved past the reserved one */
	catalog_close(catalog);

	arena_free(arena);
	nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A catalog written without replication is seen as such (a replicated meta refuses it). */
static void test_unreplicated(void **state)
{
	struct catalog *catalog;
	char dir[64] = "/tmp/test_catalog_sm.XXXXXX", why[CATALOG_WHY_BYTES];
	uint64_t id;
	bool unreplicated;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(catalog_open(dir, TEST_TIMEOUT_MS, &catalog), 0);
	assert_int_equal(catalog_sm_has_unreplicated_records(catalog_leveldb(catalog),
							     &unreplicated), 0);
	assert_false(unreplicated);	/* empty: fine */
	assert_int_equal(catalog_register_node(catalog, 0, "tcp://127.0.0.1:1", "a", 0, &id, why),
			 0);
	assert_int_equal(catalog_sm_has_unreplicated_records(catalog_leveldb(catalog),
							     &unreplicated), 0);
	assert_true(unreplicated);
	catalog_close(catalog);
	nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_catalog_committed),
		cmocka_unit_test(test_unreplicated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
