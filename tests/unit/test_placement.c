/* test_placement.c: replica placement (distinct AZs, only up nodes, least
 * loaded, rotation of the first replica, -EAGAIN) and the division of the
 * hash space into partitions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meta/placement.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const char *test_az_of(const struct placement_node *nodes, size_t count, uint64_t id)
{
	for (size_t i = 0; i < count; i++)
		if (nodes[i].id == id)
			return nodes[i].az;
	fail_msg("node %llu is not in the list", (unsigned long long)id);
	return NULL;
}

static bool test_is_up(const struct placement_node *nodes, size_t count, uint64_t id)
{
	for (size_t i = 0; i < count; i++)
		if (nodes[i].id == id)
			return nodes[i].up;
	return false;
}

/* Every set holds three up nodes in three distinct AZs. */
static void test_check_sets(const struct placement_node *nodes, size_t node_count,
			    const uint64_t *replicas, size_t partition_count)
{
	for (size_t p = 0; p < partition_count; p++) {
		const uint64_t *set = &replicas[p * PLACEMENT_REPLICAS];

		for (size_t r = 0; r < PLACEMENT_REPLICAS; r++) {
			assert_true(test_is_up(nodes, node_count, set[r]));
			for (size_t s = r + 1; s < PLACEMENT_REPLICAS; s++)
				assert_string_not_equal(test_az_of(nodes, node_count, set[r]),
							test_az_of(nodes, node_count, set[s]));
		}
	}
}

static void test_three_azs_rotate(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 3, .az = "c", .up = true },
		{ .id = 1, .az = "a", .up = true },
		{ .id = 2, .az = "b", .up = true },
	};
	uint64_t replicas[4 * PLACEMENT_REPLICAS];
	static const uint64_t expected[4 * PLACEMENT_REPLICAS] = {
		1, 2, 3,   /* partition 0 starts at AZ a */
		2, 3, 1,   /* partition 1 at b */
		3, 1, 2,   /* partition 2 at c */
		1, 2, 3,
	};

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 3, 4, replicas), 0);
	assert_memory_equal(replicas, expected, sizeof(expected));
	test_check_sets(nodes, 3, replicas, 4);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(nodes[i].replica_count, 4);
}

static void test_least_loaded(void **state)
{
	/* AZ a holds a loaded and an idle node; b and c one each. */
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true, .replica_count = 10 },
		{ .id = 4, .az = "a", .up = true, .replica_count = 0 },
		{ .id = 2, .az = "b", .up = true, .replica_count = 3 },
		{ .id = 3, .az = "c", .up = true, .replica_count = 3 },
	};
	uint64_t replicas[6 * PLACEMENT_REPLICAS];
	size_t on_node_1 = 0, on_node_4 = 0;

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 4, 6, replicas), 0);
	test_check_sets(nodes, 4, replicas, 6);
	for (size_t i = 0; i < 6 * PLACEMENT_REPLICAS; i++) {
		on_node_1 += replicas[i] == 1;
		on_node_4 += replicas[i] == 4;
	}
	/* Node 4 catches up to 10 before node 1 gets anything. */
	assert_int_equal(on_node_1, 0);
	assert_int_equal(on_node_4, 6);
	assert_int_equal(nodes[1].replica_count, 6);
}

static void test_least_loaded_counts_this_placement(void **state)
{
	/* Two equal nodes per AZ: the placement alternates between them. */
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true }, { .id = 2, .az = "a", .up = true },
		{ .id = 3, .az = "b", .up = true }, { .id = 4, .az = "b", .up = true },
		{ .id = 5, .az = "c", .up = true }, { .id = 6, .az = "c", .up = true },
	};
	uint64_t replicas[8 * PLACEMENT_REPLICAS];

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 6, 8, replicas), 0);
	test_check_sets(nodes, 6, replicas, 8);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(nodes[i].replica_count, 4);
}

static void test_first_replica_spreads(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true }, { .id = 2, .az = "a", .up = true },
		{ .id = 3, .az = "b", .up = true }, { .id = 4, .az = "b", .up = true },
		{ .id = 5, .az = "c", .up = true }, { .id = 6, .az = "c", .up = true },
	};
	uint64_t replicas[6 * PLACEMENT_REPLICAS];
	unsigned first_count[7] = { 0 };

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 6, 6, replicas), 0);
	for (size_t p = 0; p < 6; p++)
		first_count[replicas[p * PLACEMENT_REPLICAS]]++;
	for (size_t id = 1; id <= 6; id++)
		assert_int_equal(first_count[id], 1);
}

static void test_skips_down_nodes(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = false },
		{ .id = 2, .az = "a", .up = true, .replica_count = 50 },
		{ .id = 3, .az = "b", .up = true },
		{ .id = 4, .az = "c", .up = true },
	};
	uint64_t replicas[2 * PLACEMENT_REPLICAS];

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 4, 2, replicas), 0);
	test_check_sets(nodes, 4, replicas, 2);
	assert_int_equal(nodes[0].replica_count, 0);
}

static void test_more_than_three_azs(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true, .replica_count = 9 },
		{ .id = 2, .az = "b", .up = true },
		{ .id = 3, .az = "c", .up = true },
		{ .id = 4, .az = "d", .up = true },
	};
	uint64_t replicas[1 * PLACEMENT_REPLICAS];
	static const uint64_t expected[] = { 2, 3, 4 };

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 4, 1, replicas), 0);
	assert_memory_equal(replicas, expected, sizeof(expected));
}

static void test_two_azs_again(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true },
		{ .id = 2, .az = "a", .up = true },
		{ .id = 3, .az = "b", .up = true },
	};
	uint64_t replicas[PLACEMENT_REPLICAS] = { 0 };

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 3, 1, replicas), -EAGAIN);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(nodes[i].replica_count, 0);
}

static void test_down_az_again(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true },
		{ .id = 2, .az = "b", .up = true },
		{ .id = 3, .az = "c", .up = false },
	};
	uint64_t replicas[4 * PLACEMENT_REPLICAS] = { 0 };

	(void)state;
	assert_int_equal(placement_choose_replicas(nodes, 3, 4, replicas), -EAGAIN);
	assert_int_equal(placement_choose_replicas(nodes, 0, 4, replicas), -EAGAIN);
	assert_int_equal(placement_choose_replicas(nodes, 3, 0, replicas), -EINVAL);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(nodes[i].replica_count, 0);
}

static void test_check_ranges(uint32_t count)
{
	uint64_t first, last, previous_last = 0;
	uint64_t width_min = UINT64_MAX, width_max = 0;

	for (uint32_t i = 0; i < count; i++) {
		assert_int_equal(placement_hash_range(i, count, &first, &last), 0);
		assert_true(first <= last);
		if (i == 0)
			assert_true(first == 0);
		else
			assert_true(first == previous_last + 1);  /* no gap, no overlap */
		if (last - first < width_min)
			width_min = last - first;
		if (last - first > width_max)
			width_max = last - first;
		previous_last = last;
	}
	assert_true(previous_last == UINT64_MAX);
	assert_true(width_max - width_min <= 1);           /* equal ranges */
	assert_int_equal(placement_hash_range(count, count, &first, &last), -EINVAL);
}

static void test_hash_ranges(void **state)
{
	static const uint32_t counts[] = { 1, 2, 3, 4, 7, 256 };
	uint64_t first, last;

	(void)state;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		test_check_ranges(counts[i]);
	assert_int_equal(placement_hash_range(0, 4, &first, &last), 0);
	assert_true(first == 0 && last == 0x3fffffffffffffffULL);
	assert_int_equal(placement_hash_range(3, 4, &first, &last), 0);
	assert_true(first == 0xc000000000000000ULL && last == UINT64_MAX);
	assert_int_equal(placement_hash_range(0, 0, &first, &last), -EINVAL);
}

/* Usable space: each item once per AZ, so the smallest of three AZs; nothing with fewer. */
static void test_usable_bytes(void **state)
{
	struct placement_node nodes[] = {
		{ .id = 1, .az = "a", .up = true }, { .id = 2, .az = "b", .up = true },
		{ .id = 3, .az = "c", .up = true }, { .id = 4, .az = "c", .up = true },
		{ .id = 5, .az = "d", .up = false },
	};
	uint64_t bytes[] = { 300, 200, 150, 100, 1000 };

	(void)state;
	/* c holds 250 on two nodes: b's 200 is the least. */
	assert_int_equal(placement_usable_bytes(nodes, bytes, 5), 200);
	/* Down nodes count for nothing: two AZs up place nothing. */
	nodes[0].up = false;
	assert_int_equal(placement_usable_bytes(nodes, bytes, 5), 0);
	/* Four AZs: at most a third of the total, each AZ giving at most D. */
	nodes[0].up = nodes[4].up = true;
	bytes[4] = 300;
	assert_int_equal(placement_usable_bytes(nodes, bytes, 5), 350);
	assert_int_equal(placement_usable_bytes(nodes, bytes, 0), 0);
	bytes[0] = bytes[1] = bytes[2] = UINT64_MAX / 8;
	nodes[3].up = nodes[4].up = false;
	assert_int_equal(placement_usable_bytes(nodes, bytes, 5), UINT64_MAX / 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_azs_rotate),
		cmocka_unit_test(test_least_loaded),
		cmocka_unit_test(test_least_loaded_counts_this_placement),
		cmocka_unit_test(test_first_replica_spreads),
		cmocka_unit_test(test_skips_down_nodes),
		cmocka_unit_test(test_more_than_three_azs),
		cmocka_unit_test(test_two_azs_again),
		cmocka_unit_test(test_down_az_again),
		cmocka_unit_test(test_hash_ranges),
		cmocka_unit_test(test_usable_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
