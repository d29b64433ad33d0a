/* placement.h: where the replicas of a new table's partitions go, and how a
 * table's hash space is cut into partitions. Pure functions: no I/O, no
 * clock, no allocation, so they are tested exhaustively by themselves.
 *
 * Rules for a replica set: PLACEMENT_REPLICAS nodes in as many distinct AZs,
 * only nodes that are up; in each AZ the least-loaded node (fewest replicas,
 * counting those this placement has assigned already; ties go to the lower
 * id). The first replica holds the data until replication lands, so the AZ
 * that comes first rotates from one partition to the next. */
#ifndef QUORUM_PLACEMENT_H
#define QUORUM_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLACEMENT_REPLICAS 3

struct placement_node {
	uint64_t id;
	const char *az;             /* AZ label, NUL-terminated; not owned */
	bool up;
	uint32_t replica_count;     /* replicas it holds; grows as placement assigns */
};

/* Chooses the replica sets of partition_count partitions. replicas holds
 * partition_count * PLACEMENT_REPLICAS node ids: partition i's set is
 * replicas[i * PLACEMENT_REPLICAS ...], first replica first. Each chosen
 * node's replica_count grows by one per replica assigned to it.
 *
 * With more than three AZs, a partition takes the three AZs whose best node
 * is least loaded (ties by AZ name); the three are sorted by name and
 * partition i starts at the AZ of index i mod 3 among them.
 *
 * Returns 0; -EAGAIN when fewer than three AZs have an up node (nothing is
 * changed then); -EINVAL for partition_count 0. */
int placement_choose_replicas(struct placement_node *nodes, size_t node_count,
			      size_t partition_count, uint64_t *replicas);

/* The inclusive hash range [*first, *last] of partition index of count
 * equal partitions of the 64-bit hash space: the ranges are sorted, touch
 * without gaps or overlaps, start at 0 and end at UINT64_MAX. Returns 0, or
 * -EINVAL when count is 0 or index >= count. */
int placement_hash_range(uint32_t index, uint32_t count, uint64_t *first, uint64_t *last);

/* What a user can store on the up nodes, bytes[i] being node i's figure (capacity or free
 * space): every item takes PLACEMENT_REPLICAS replicas in as many distinct AZs, so this is
 * the largest D such that the AZs, each counted for at most D, hold PLACEMENT_REPLICAS * D
 * bytes. With three AZs it is the smallest AZ's total; with fewer it is 0 (nothing can be
 * placed); with more, at most a third of the total. */
uint64_t placement_usable_bytes(const struct placement_node *nodes, const uint64_t *bytes,
				size_t node_count);

#endif
