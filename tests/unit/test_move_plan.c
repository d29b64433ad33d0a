/* test_move_plan.c: which replica moves where: drains, balance onto a new node, the AZ
 * rule (three replicas in three AZs, always), only up and not draining targets, and no
 * move when the cluster is balanced or no node fits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meta/move_plan.h"

#include <stdint.h>
#include <string.h>

static struct mover_node test_node(uint64_t id, const char *az, uint32_t replica_count)
{
	return (struct mover_node){ .id = id, .az = az, .up = true,
				    .replica_count = replica_count };
}

/* Which replica changed, and to what; fails unless exactly one did. */
static void test_expect_move(const uint64_t *replicas, const uint64_t *target, uint64_t from,
			     uint64_t to)
{
	size_t changed = 0;

	for (size_t i = 0; i < 3; i++) {
		if (replicas[i] == target[i])
			continue;
		changed++;
		assert_int_equal(replicas[i], from);
		assert_int_equal(target[i], to);
	}
	assert_int_equal(changed, 1);
}

static void test_drain_moves_to_the_same_az(void **state)
{
	struct mover_node nodes[] = {
		test_node(1, "a", 4), test_node(2, "b", 4), test_node(3, "c", 4),
		test_node(4, "a", 9), test_node(5, "b", 0),
	};
	const uint64_t replicas[] = { 1, 2, 3 };
	uint64_t target[3];

	(void)state;
	nodes[0].draining = true;
	/* Only node 4 is in AZ a, whatever its load: node 5 would put two replicas in b. */
	assert_true(mover_plan(nodes, 5, replicas, 3, false, target));
	test_expect_move(replicas, target, 1, 4);
}

static void test_drain_of_a_down_node_and_no_target(void **state)
{
	struct mover_node nodes[] = {
		test_node(1, "a", 4), test_node(2, "b", 4), test_node(3, "c", 4),
		test_node(4, "a", 0),
	};
	const uint64_t replicas[] = { 1, 2, 3 };
	uint64_t target[3];

	(void)state;
	nodes[0].draining = true;
	nodes[0].up = false;		/* a dead node drains as well */
	assert_true(mover_plan(nodes, 4, replicas, 3, false, target));
	test_expect_move(replicas, target, 1, 4);
	nodes[3].up = false;		/* the only node of AZ a is down: nowhere to go */
	assert_false(mover_plan(nodes, 4, replicas, 3, true, target));
	nodes[3].up = true;
	nodes[3].draining = true;	/* nor to a node that drains itself */
	assert_false(mover_plan(nodes, 4, replicas, 3, true, target));
}

static void test_balance_onto_a_new_node(void **state)
{
	struct mover_node nodes[] = {
		test_node(1, "a", 8), test_node(2, "b", 8), test_node(3, "c", 8),
		test_node(4, "b", 0),
	};
	const uint64_t replicas[] = { 1, 2, 3 };
	uint64_t target[3];

	(void)state;
	assert_false(mover_plan(nodes, 4, replicas, 3, false, target));
	assert_true(mover_plan(nodes, 4, replicas, 3, true, target));
	test_expect_move(replicas, target, 2, 4);
	/* Balanced within one replica: nothing moves. */
	nodes[1].replica_count = 5;
	nodes[3].replica_count = 4;
	assert_false(mover_plan(nodes, 4, replicas, 3, true, target));
	/* The new node is down: nothing moves. */
	nodes[3].replica_count = 0;
	nodes[3].up = false;
	assert_false(mover_plan(nodes, 4, replicas, 3, true, target));
}

static void test_balance_takes_the_most_loaded_replica(void **state)
{
	struct mover_node nodes[] = {
		test_node(1, "a", 6), test_node(2, "b", 9), test_node(3, "c", 7),
		test_node(4, "d", 1), test_node(5, "d", 0),
	};
	const uint64_t replicas[] = { 1, 2, 3 };
	uint64_t target[3];

	(void)state;
	/* AZ d is free for any replica: the most loaded (node 2) goes to the least loaded. */
	assert_true(mover_plan(nodes, 5, replicas, 3, true, target));
	test_expect_move(replicas, target, 2, 5);
}

static void test_never_two_replicas_in_one_az(void **state)
{
	struct mover_node nodes[] = {
		test_node(1, "a", 10), test_node(2, "b", 10), test_node(3, "c", 10),
		test_node(4, "a", 0), test_node(5, "b", 0), test_node(6, "c", 0),
		test_node(7, "d", 3),
	};
	uint64_t replicas[] = { 1, 2, 3 }, target[3];

	(void)state;
	for (int round = 0; round < 50; round++) {
		if (!mover_plan(nodes, 7, replicas, 3, true, target))
			break;
		for (size_t i = 0; i < 3; i++)
			for (size_t j = 0; j < i; j++) {
				const char *az_i = NULL, *az_j = NULL;

				for (size_t n = 0; n < 7; n++) {
					if (nodes[n].id == target[i])
						az_i = nodes[n].az;
					if (nodes[n].id == target[j])
						az_j = nodes[n].az;
				}
				assert_non_null(az_i);
				assert_non_null(az_j);
				assert_string_not_equal(az_i, az_j);
			}
		/* Apply the move as meta would once it is done. */
		for (size_t i = 0; i < 3; i++)
			for (size_t n = 0; n < 7; n++) {
				if (replicas[i] != target[i] && nodes[n].id == replicas[i])
					nodes[n].replica_count--;
				if (replicas[i] != target[i] && nodes[n].id == target[i])
					nodes[n].replica_count++;
			}
		memcpy(replicas, target, sizeof(replicas));
	}
	assert_false(mover_plan(nodes, 7, replicas, 3, true, target));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drain_moves_to_the_same_az),
		cmocka_unit_test(test_drain_of_a_down_node_and_no_target),
		cmocka_unit_test(test_balance_onto_a_new_node),
		cmocka_unit_test(test_balance_takes_the_most_loaded_replica),
		cmocka_unit_test(test_never_two_replicas_in_one_az),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
