/* test_catalog.c: the metadata catalog: tables (create, describe, update,
 * delete, list), node registry and health, and persistence in LevelDB
 * across close and reopen in a fresh temporary directory: everything comes
 * back, ids are never reused, and an undecodable record stops the open. */
#define _GNU_SOURCE   /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/keys.h"
#include "meta/catalog.h"
#include "meta/placement.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <leveldb/c.h>

#define TEST_TIMEOUT_MS 5000
#define TEST_NOW_NS 1700000000123456789LL

struct test_state {
	char dir[64];
	struct catalog *catalog;
	struct arena *arena;
};

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int test_setup(void **state)
{
	struct test_state *test = calloc(1, sizeof(*test));

	if (!test)
		return -1;
	strcpy(test->dir, "/tmp/test_catalog.XXXXXX");
	if (!mkdtemp(test->dir))
		return -1;
	if (catalog_open(test->dir, TEST_TIMEOUT_MS, &test->catalog) < 0)
		return -1;
	test->arena = arena_new();
	if (!test->arena)
		return -1;
	*state = test;
	return 0;
}

static int test_teardown(void **state)
{
	struct test_state *test = *state;

	catalog_close(test->catalog);
	arena_free(test->arena);
	nftw(test->dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(test);
	return 0;
}

static void test_reopen(struct test_state *test)
{
	catalog_close(test->catalog);
	test->catalog = NULL;
	assert_int_equal(catalog_open(test->dir, TEST_TIMEOUT_MS, &test->catalog), 0);
}

/* Registers nodes 1, 2, 3 in AZs a, b, c, up at now_ms. */
static void test_add_nodes(struct test_state *test, int64_t now_ms)
{
	static const char *const azs[] = { "a", "b", "c" };
	char address[64];

	for (size_t i = 0; i < 3; i++) {
		uint64_t id = 0;

		snprintf(address, sizeof(address), "tcp://127.0.0.1:%zu", 7101 + i);
		assert_int_equal(catalog_register_node(test->catalog, 0, address, azs[i], now_ms,
						       &id, NULL), 0);
		assert_true(id == i + 1);
	}
}

static int test_create(struct test_state *test, const char *name, uint32_t partition_count,
		       int64_t now_ms, Quorum__TableResponse **out)
{
	Quorum__CreateTableRequest request = QUORUM__CREATE_TABLE_REQUEST__INIT;
	Quorum__TableResponse *ignored;
	char why[CATALOG_WHY_BYTES] = "";
	int err;

	request.name.data = (uint8_t *)name;
	request.name.len = strlen(name);
	request.mode = 040755;
	request.uid = 1000;
	request.gid = 100;
	if (partition_count) {
		request.has_partition_count = true;
		request.partition_count = partition_count;
	}
	err = catalog_create_table(test->catalog, &request, 4, now_ms, TEST_NOW_NS, test->arena,
				   out ? out : &ignored, why);
	if (err < 0)
		assert_true(why[0] != '\0');   /* every refusal says why */
	return err;
}

static Quorum__TableResponse *test_describe(struct test_state *test, const char *name)
{
	Quorum__TableResponse *response = NULL;

	assert_int_equal(catalog_describe_table(test->catalog, name, strlen(name), 0,
						test->arena, &response, NULL), 0);
	return response;
}

static void test_check_table(const Quorum__TableResponse *response, uint32_t partition_count)
{
	const Quorum__TableInfo *table = response->table;

	assert_int_equal(table->n_partitions, partition_count);
	assert_int_equal(table->mode, 0755);
	assert_int_equal(table->uid, 1000);
	assert_int_equal(table->gid, 100);
	for (uint32_t p = 0; p < partition_count; p++) {
		const Quorum__PartitionInfo *partition = table->partitions[p];
		uint64_t first, last;

		placement_hash_range(p, partition_count, &first, &last);
		assert_true(partition->hash_first == first && partition->hash_last == last);
		assert_int_equal(partition->epoch, 1);
		assert_int_equal(partition->n_replicas, 3);
	}
	assert_int_equal(response->n_nodes, 3);
	for (size_t i = 0; i < response->n_nodes; i++)
		for (size_t j = i + 1; j < response->n_nodes; j++)
			assert_string_not_equal(response->nodes[i]->az, response->nodes[j]->az);
}

static void test_create_describe(void **state)
{
	struct test_state *test = *state;
	Quorum__TableResponse *created, *described;

	test_add_nodes(test, 0);
	assert_int_equal(test_create(test, "photos", 0, 0, &created), 0);
	test_check_table(created, 4);
	assert_true(created->table->mtime_ns == TEST_NOW_NS);
	assert_true(created->table->ctime_ns == TEST_NOW_NS);
	described = test_describe(test, "photos");
	test_check_table(described, 4);
	assert_true(described->table->id == created->table->id);
	for (size_t p = 0; p < 4; p++) {
		assert_true(described->table->partitions[p]->id ==
			    created->table->partitions[p]->id);
		assert_memory_equal(described->table->partitions[p]->replicas,
				    created->table->partitions[p]->replicas,
				    3 * sizeof(uint64_t));
	}
	/* The first replica rotates over the three nodes. */
	assert_true(created->table->partitions[0]->replicas[0] !=
		    created->table->partitions[1]->replicas[0]);
	assert_int_equal(test_create(test, "seven", 7, 0, &created), 0);
	test_check_table(created, 7);
}

static void test_create_refusals(void **state)
{
	struct test_state *test = *state;
	char long_name[KEY_NAME_MAX_BYTES + 2];
	Quorum__TableResponse *response = NULL;

	/* No nodes yet: no three AZs. */
	assert_int_equal(test_create(test, "t", 0, 0, NULL), -EAGAIN);
	test_add_nodes(test, 0);
	/* Every node has been silent for longer than the timeout. */
	assert_int_equal(test_create(test, "t", 0, TEST_TIMEOUT_MS + 1, NULL), -EAGAIN);
	assert_int_equal(test_create(test, "t", 0, TEST_TIMEOUT_MS, NULL), 0);
	assert_int_equal(test_create(test, "t", 0, 0, NULL), -EEXIST);
	assert_int_equal(test_create(test, "a/b", 0, 0, NULL), -EINVAL);
	assert_int_equal(test_create(test, ".", 0, 0, NULL), -EINVAL);
	assert_int_equal(test_create(test, "..", 0, 0, NULL), -EINVAL);
	assert_int_equal(test_create(test, "", 0, 0, NULL), -EINVAL);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(test_create(test, long_name, 0, 0, NULL), -ENAMETOOLONG);
	long_name[KEY_NAME_MAX_BYTES] = '\0';
	assert_int_equal(test_create(test, long_name, 0, 0, NULL), 0);
	assert_int_equal(test_create(test, "p0", 0, 0, NULL), 0);
	{
		Quorum__CreateTableRequest request = QUORUM__CREATE_TABLE_REQUEST__INIT;

		request.name.data = (uint8_t *)"zero";
		request.name.len = 4;
		request.has_partition_count = true;
		request.partition_count = 0;
		assert_int_equal(catalog_create_table(test->catalog, &request, 4, 0, 0,
						      test->arena, &response, NULL), -EINVAL);
		request.partition_count = CATALOG_PARTITIONS_MAX + 1;
		assert_int_equal(catalog_create_table(test->catalog, &request, 4, 0, 0,
						      test->arena, &response, NULL), -EINVAL);
	}
	assert_int_equal(test_create(test, "max", CATALOG_PARTITIONS_MAX, 0, &response), 0);
	assert_int_equal(response->table->n_partitions, CATALOG_PARTITIONS_MAX);
}

static void test_update_delete_list(void **state)
{
	struct test_state *test = *state;
	Quorum__UpdateTableRequest update = QUORUM__UPDATE_TABLE_REQUEST__INIT;
	Quorum__ListTablesResponse *list;
	Quorum__TableResponse *response;
	static const char *const names[] = { "b", "a", "ab", "\xff", "B" };
	static const char *const sorted[] = { "B", "a", "ab", "b", "\xff" };

	test_add_nodes(test, 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(test_create(test, names[i], 1, 0, NULL), 0);
	assert_int_equal(catalog_list_tables(test->catalog, test->arena, &list), 0);
	assert_int_equal(list->n_tables, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(list->tables[i]->name.len, strlen(sorted[i]));
		assert_memory_equal(list->tables[i]->name.data, sorted[i], strlen(sorted[i]));
		assert_int_equal(list->tables[i]->n_partitions, 0);
	}

	update.name.data = (uint8_t *)"ab";
	update.name.len = 2;
	update.has_mode = true;
	update.mode = 0700;
	update.has_mtime_ns = true;
	update.mtime_ns = 42;
	assert_int_equal(catalog_update_table(test->catalog, &update, 0, TEST_NOW_NS + 5,
					      test->arena, &response, NULL), 0);
	assert_int_equal(response->table->mode, 0700);
	assert_int_equal(response->table->uid, 1000);
	assert_true(response->table->mtime_ns == 42);
	assert_true(response->table->ctime_ns == TEST_NOW_NS + 5);
	assert_int_equal(response->table->n_partitions, 1);
	response = test_describe(test, "ab");
	assert_int_equal(response->table->mode, 0700);
	assert_true(response->table->mtime_ns == 42);

	update.name.data = (uint8_t *)"nope";
	update.name.len = 4;
	assert_int_equal(catalog_update_table(test->catalog, &update, 0, 0, test->arena,
					      &response, NULL), -ENOENT);
	assert_int_equal(catalog_describe_table(test->catalog, "nope", 4, 0, test->arena,
						&response, NULL), -ENOENT);
	assert_int_equal(catalog_delete_table(test->catalog, "nope", 4, NULL), -ENOENT);
	assert_int_equal(catalog_delete_table(test->catalog, "ab", 2, NULL), 0);
	assert_int_equal(catalog_delete_table(test->catalog, "ab", 2, NULL), -ENOENT);
	assert_int_equal(catalog_list_tables(test->catalog, test->arena, &list), 0);
	assert_int_equal(list->n_tables, 4);
}

/* Whether catalog_retired_groups tells node to remove group (table, partition). */
static bool test_retired(struct test_state *test, uint64_t node, uint64_t table,
			 uint64_t partition)
{
	Quorum__GroupReport report = QUORUM__GROUP_REPORT__INIT;
	Quorum__GroupReport *reports[1] = { &report };
	Quorum__GroupRef **retired;
	size_t count;

	report.table_id = table;
	report.partition_id = partition;
	assert_int_equal(catalog_retired_groups(test->catalog, node, reports, 1, test->arena,
						&retired, &count), 0);
	assert_true(count <= 1);
	if (count)
		assert_true(retired[0]->table_id == table && retired[0]->partition_id == partition);
	return count == 1;
}

/* A node removes a group only on meta's explicit word: a deleted table's, or one its live
 * table no longer places there; never one of a table id meta has not handed out (a meta
 * that lost its catalog must not wipe the nodes). */
static void test_retired_groups(void **state)
{
	struct test_state *test = *state;
	Quorum__TableResponse *keep, *gone;
	uint64_t keep_id, keep_partition, gone_id, gone_partition, id = 0;

	test_add_nodes(test, 0);
	assert_int_equal(test_create(test, "keep", 1, 0, &keep), 0);
	assert_int_equal(test_create(test, "gone", 1, 0, &gone), 0);
	keep_id = keep->table->id;
	keep_partition = keep->table->partitions[0]->id;
	gone_id = gone->table->id;
	gone_partition = gone->table->partitions[0]->id;
	assert_int_equal(catalog_delete_table(test->catalog, "gone", 4, NULL), 0);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://127.0.0.1:7104", "a", 0,
					       &id, NULL), 0);

	assert_false(test_retired(test, 1, keep_id, keep_partition));
	assert_true(test_retired(test, 1, gone_id, gone_partition));
	assert_true(test_retired(test, id, keep_id, keep_partition));
	assert_true(test_retired(test, 1, keep_id, keep_partition + 1000));
	assert_false(test_retired(test, 1, gone_id + 1000, 1));
	/* The same after a restart: deleted ids stay known through the counters. */
	test_reopen(test);
	assert_true(test_retired(test, 1, gone_id, gone_partition));
	assert_false(test_retired(test, 1, gone_id + 1000, 1));
}

static const Quorum__NodeInfo *test_node(const Quorum__ListNodesResponse *nodes, uint64_t id)
{
	for (size_t i = 0; i < nodes->n_nodes; i++)
		if (nodes->nodes[i]->id == id)
			return nodes->nodes[i];
	return NULL;
}

/* The assignment of partition to node, or NULL. */
static const Quorum__PartitionAssignment *test_assignment(struct test_state *test,
							  uint64_t node, uint64_t partition)
{
	Quorum__PartitionAssignment **list;
	size_t count;

	assert_int_equal(catalog_node_assignments(test->catalog, node, test->arena, &list,
						  &count), 0);
	for (size_t i = 0; i < count; i++)
		if (list[i]->partition->id == partition)
			return list[i];
	return NULL;
}

/* A move: the target is recorded, old and new replicas are assigned (all joining), the old
 * replica is retired only once the move is done; the map survives a restart in between,
 * and a drained node takes no replica of a new table. */
static void test_moves(void **state)
{
	struct test_state *test = *state;
	Quorum__TableResponse *t;
	const Quorum__PartitionAssignment *a;
	const Quorum__PartitionInfo *p;
	uint64_t id = 0, partition, target[3], wrong[3] = { 1, 2, 3 };
	Quorum__ListNodesResponse *nodes;

	test_add_nodes(test, 0);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://127.0.0.1:7104", "a", 0,
					       &id, NULL), 0);
	assert_int_equal(test_create(test, "t", 1, 0, &t), 0);
	p = t->table->partitions[0];
	partition = p->id;
	for (size_t r = 0; r < 3; r++)
		target[r] = p->replicas[r] == 1 ? id : p->replicas[r];
	assert_null(test_assignment(test, id, partition));
	assert_int_equal(catalog_begin_move(test->catalog, t->table->id, partition, target, 3),
			 0);
	assert_int_equal(catalog_begin_move(test->catalog, t->table->id, partition, target, 3),
			 -EBUSY);
	test_reopen(test);
	a = test_assignment(test, id, partition);
	assert_non_null(a);
	assert_true(a->has_joining && a->joining);
	assert_int_equal(a->n_replicas, 4);
	assert_int_equal(test_assignment(test, 1, partition)->n_replicas, 4);
	assert_false(test_retired(test, 1, t->table->id, partition));
	assert_false(test_retired(test, id, t->table->id, partition));
	assert_int_equal(catalog_finish_move(test->catalog, t->table->id, partition, wrong, 3),
			 -ESTALE);
	assert_int_equal(catalog_finish_move(test->catalog, t->table->id, partition, target, 3),
			 0);
	assert_true(test_retired(test, 1, t->table->id, partition));
	a = test_assignment(test, id, partition);
	assert_non_null(a);
	assert_false(a->has_joining && a->joining);
	assert_int_equal(a->n_replicas, 3);
	assert_int_equal(catalog_finish_move(test->catalog, t->table->id, partition, target, 3),
			 -ESTALE);

	/* Draining node 2 (AZ b, alone there): kept across a restart, and no new table can
	 * place a replica in AZ b. */
	assert_int_equal(catalog_set_draining(test->catalog, 2, true, NULL), 0);
	assert_int_equal(catalog_set_draining(test->catalog, 99, true, NULL), -ENOENT);
	test_reopen(test);
	assert_int_equal(catalog_register_node(test->catalog, 2, "tcp://127.0.0.1:7102", "b", 0,
					       &id, NULL), 0);
	assert_int_equal(catalog_list_nodes(test->catalog, 0, test->arena, &nodes), 0);
	assert_true(test_node(nodes, 2)->draining);
	assert_false(test_node(nodes, 1)->draining);
	assert_int_equal(test_create(test, "u", 1, 0, NULL), -EAGAIN);
}


static void test_nodes(void **state)
{
	struct test_state *test = *state;
	Quorum__ListNodesResponse *nodes;
	Quorum__ClusterInfoResponse *info;
	uint64_t id = 0;

	test_add_nodes(test, 1000);
	assert_int_equal(catalog_register_node(test->catalog, 0, "", "a", 0, &id, NULL), -EINVAL);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://x:1", "", 0, &id, NULL),
			 -EINVAL);
	/* A known id re-registers at a new address and stays itself. */
	assert_int_equal(catalog_register_node(test->catalog, 2, "tcp://127.0.0.1:9002", "b",
					       1000, &id, NULL), 0);
	assert_true(id == 2);
	/* An unknown id keeps it, and new ids come after it. */
	assert_int_equal(catalog_register_node(test->catalog, 10, "tcp://127.0.0.1:9010", "d",
					       1000, &id, NULL), 0);
	assert_true(id == 10);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://127.0.0.1:9011", "d",
					       1000, &id, NULL), 0);
	assert_true(id == 11);

	assert_int_equal(catalog_heartbeat_node(test->catalog, 99, "tcp://x:1", true, 1, true, 1,
						1000, NULL), -ENOENT);
	assert_int_equal(catalog_heartbeat_node(test->catalog, 1, "tcp://127.0.0.1:7101", true,
						1000, true, 400, 4000, NULL), 0);
	assert_int_equal(catalog_heartbeat_node(test->catalog, 3, "tcp://127.0.0.1:7103", true,
						2000, true, 600, 4000, NULL), 0);
	assert_int_equal(test_create(test, "t", 2, 4000, NULL), 0);

	/* At 7000 only nodes 1 and 3 (heartbeat at 4000) are within 5000 ms. */
	assert_int_equal(catalog_list_nodes(test->catalog, 7000, test->arena, &nodes), 0);
	assert_int_equal(nodes->n_nodes, 5);
	assert_true(test_node(nodes, 1)->up);
	assert_false(test_node(nodes, 2)->up);
	assert_true(test_node(nodes, 3)->up);
	assert_false(test_node(nodes, 10)->up);
	assert_string_equal(test_node(nodes, 2)->address, "tcp://127.0.0.1:9002");
	assert_true(test_node(nodes, 1)->heartbeat_age_ms == 3000);
	assert_true(test_node(nodes, 1)->free_bytes == 400);
	{
		uint32_t replicas = 0;

		for (size_t i = 0; i < nodes->n_nodes; i++)
			replicas += nodes->nodes[i]->replica_count;
		assert_int_equal(replicas, 2 * 3);
	}
	assert_int_equal(catalog_cluster_info(test->catalog, 7000, 1 << 20, test->arena, &info),
			 0);
	assert_int_equal(info->nodes_up, 2);
	assert_int_equal(info->nodes_total, 5);
	assert_true(info->capacity_bytes == 3000 && info->free_bytes == 1000);
	assert_int_equal(info->table_count, 1);
	assert_true(info->item_max_bytes == 1 << 20);
}

static void test_persistence(void **state)
{
	struct test_state *test = *state;
	Quorum__TableResponse *before, *after, *created;
	Quorum__ListNodesResponse *nodes;
	Quorum__ListTablesResponse *list;
	uint64_t id = 0, max_partition_id = 0, deleted_id;
	uint8_t *packed_before, *packed_after;
	size_t bytes_before, bytes_after;

	test_add_nodes(test, 0);
	assert_int_equal(catalog_register_node(test->catalog, 20, "tcp://127.0.0.1:7120", "a", 0,
					       &id, NULL), 0);
	assert_int_equal(test_create(test, "keep", 4, 0, NULL), 0);
	assert_int_equal(test_create(test, "gone", 3, 0, &created), 0);
	deleted_id = created->table->id;
	for (size_t p = 0; p < created->table->n_partitions; p++)
		if (created->table->partitions[p]->id > max_partition_id)
			max_partition_id = created->table->partitions[p]->id;
	assert_int_equal(catalog_delete_table(test->catalog, "gone", 4, NULL), 0);
	before = test_describe(test, "keep");

	test_reopen(test);

	after = test_describe(test, "keep");
	bytes_before = quorum__table_info__get_packed_size(before->table);
	bytes_after = quorum__table_info__get_packed_size(after->table);
	assert_int_equal(bytes_before, bytes_after);
	packed_before = arena_alloc(test->arena, bytes_before);
	packed_after = arena_alloc(test->arena, bytes_after);
	quorum__table_info__pack(before->table, packed_before);
	quorum__table_info__pack(after->table, packed_after);
	assert_memory_equal(packed_before, packed_after, bytes_before);

	assert_int_equal(catalog_list_tables(test->catalog, test->arena, &list), 0);
	assert_int_equal(list->n_tables, 1);

	/* Nodes come back, down until they speak. */
	assert_int_equal(catalog_list_nodes(test->catalog, 0, test->arena, &nodes), 0);
	assert_int_equal(nodes->n_nodes, 4);
	for (size_t i = 0; i < nodes->n_nodes; i++)
		assert_false(nodes->nodes[i]->up);
	assert_string_equal(test_node(nodes, 20)->az, "a");
	assert_string_equal(test_node(nodes, 3)->address, "tcp://127.0.0.1:7103");
	assert_int_equal(test_create(test, "new", 0, 0, NULL), -EAGAIN);

	/* Ids are never reused: not the deleted table's, not a node's. */
	for (uint64_t node = 1; node <= 3; node++)
		assert_int_equal(catalog_heartbeat_node(test->catalog, node, "", false, 0, false,
							0, 0, NULL), 0);
	assert_int_equal(test_create(test, "gone", 3, 0, &created), 0);
	assert_true(created->table->id > deleted_id);
	for (size_t p = 0; p < created->table->n_partitions; p++)
		assert_true(created->table->partitions[p]->id > max_partition_id);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://127.0.0.1:7121", "b", 0,
					       &id, NULL), 0);
	assert_true(id == 21);

	test_reopen(test);
	assert_int_equal(catalog_register_node(test->catalog, 0, "tcp://127.0.0.1:7122", "c", 0,
					       &id, NULL), 0);
	assert_true(id == 22);
	assert_int_equal(catalog_list_tables(test->catalog, test->arena, &list), 0);
	assert_int_equal(list->n_tables, 2);
}

static void test_corrupt_record(void **state)
{
	struct test_state *test = *state;
	struct catalog *catalog = NULL;
	leveldb_options_t *options = leveldb_options_create();
	leveldb_writeoptions_t *write_options = leveldb_writeoptions_create();
	char path[128], *error = NULL;
	leveldb_t *db;

	catalog_close(test->catalog);
	test->catalog = NULL;
	snprintf(path, sizeof(path), "%s/catalog", test->dir);
	db = leveldb_open(options, path, &error);
	assert_null(error);
	leveldb_put(db, write_options, "t/bad", 5, "\xff\xff\xff", 3, &error);
	assert_null(error);
	leveldb_close(db);
	leveldb_writeoptions_destroy(write_options);
	leveldb_options_destroy(options);
	assert_int_equal(catalog_open(test->dir, TEST_TIMEOUT_MS, &catalog), -EBADMSG);
	assert_null(catalog);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_describe, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_create_refusals, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_update_delete_list, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_nodes, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_retired_groups, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_moves, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_persistence, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record, test_setup, test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
