/* move_plan.h: which replica of a partition should move where (meta/mover.h drives the
 * moves). Pure functions: no I/O, no clock, no allocation, tested by themselves.
 *
 * - drain: a replica on a draining node moves to an up node that does not drain;
 * - balance: a replica on a node holding MOVER_IMBALANCE_MIN replicas more than another up
 *   node moves there (the most loaded replica of the partition first).
 * A target is always in an AZ that none of the partition's other replicas use (three
 * replicas, three AZs), the least loaded such node first (ties: the lower id). */
#ifndef QUORUM_META_MOVE_PLAN_H
#define QUORUM_META_MOVE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOVER_IMBALANCE_MIN 2

struct mover_node {
	uint64_t id;
	const char *az;			/* not owned */
	bool up;
	bool draining;
	uint32_t replica_count;		/* counting the targets of moves under way */
};

/* The replica set a partition should move to, if any (pure: tested alone). replicas holds
 * the partition's count replicas. Fills target (count ids: one replaced) and returns true
 * when a drain or a balance move applies; with balance false only drains count. */
bool mover_plan(const struct mover_node *nodes, size_t node_count, const uint64_t *replicas,
		size_t count, bool balance, uint64_t *target);

#endif
