/* placement.c: replica placement and hash-space division for new tables.
 * See placement.h for the rules. Node lists are small (tens of nodes), so
 * every choice is a linear scan: no sorting buffers, no allocation. */
#include "meta/placement.h"

#include <errno.h>
#include <string.h>

/* True when a is a better candidate than b: fewer replicas, then AZ name,
 * then id, so the choice is deterministic. */
static bool placement_node_better(const struct placement_node *a, const struct placement_node *b)
{
	int az_order;

	if (a->replica_count != b->replica_count)
		return a->replica_count < b->replica_count;
	az_order = strcmp(a->az, b->az);
	if (az_order != 0)
		return az_order < 0;
	return a->id < b->id;
}

/* The least-loaded up node whose AZ is none of the taken ones, or -1. */
static long placement_best_node(const struct placement_node *nodes, size_t node_count,
				const char *const *taken_azs, size_t taken_count)
{
	long best = -1;

	for (size_t i = 0; i < node_count; i++) {
		bool taken = false;

		if (!nodes[i].up)
			continue;
		for (size_t t = 0; t < taken_count && !taken; t++)
			taken = strcmp(nodes[i].az, taken_azs[t]) == 0;
		if (taken)
			continue;
		if (best < 0 || placement_node_better(&nodes[i], &nodes[best]))
			best = (long)i;
	}
	return best;
}

/* Picks one replica set without assigning it: chosen[] gets node indexes
 * sorted by AZ name. Returns 0 or -EAGAIN when fewer than three AZs have
 * an up node. */
static int placement_pick_set(const struct placement_node *nodes, size_t node_count,
			      long chosen[PLACEMENT_REPLICAS])
{
	const char *taken_azs[PLACEMENT_REPLICAS];

	for (size_t r = 0; r < PLACEMENT_REPLICAS; r++) {
		long best = placement_best_node(nodes, node_count, taken_azs, r);

		if (best < 0)
			return -EAGAIN;
		chosen[r] = best;
		taken_azs[r] = nodes[best].az;
	}
	/* Insertion sort of three by AZ name: the rotation is over names. */
	for (size_t r = 1; r < PLACEMENT_REPLICAS; r++) {
		long moving = chosen[r];
		size_t j = r;

		while (j > 0 && strcmp(nodes[chosen[j - 1]].az, nodes[moving].az) > 0) {
			chosen[j] = chosen[j - 1];
			j--;
		}
		chosen[j] = moving;
	}
	return 0;
}

int placement_choose_replicas(struct placement_node *nodes, size_t node_count,
			      size_t partition_count, uint64_t *replicas)
{
	long chosen[PLACEMENT_REPLICAS];
	int err;

	if (partition_count == 0)
		return -EINVAL;
	/* Check once before assigning anything, so a failure changes nothing;
	 * the set of up AZs does not change while we assign. */
	err = placement_pick_set(nodes, node_count, chosen);
	if (err < 0)
		return err;
	for (size_t p = 0; p < partition_count; p++) {
		err = placement_pick_set(nodes, node_count, chosen);
		if (err < 0)
			return err;
		for (size_t r = 0; r < PLACEMENT_REPLICAS; r++) {
			struct placement_node *node =
				&nodes[chosen[(p + r) % PLACEMENT_REPLICAS]];

			replicas[p * PLACEMENT_REPLICAS + r] = node->id;
			node->replica_count++;
		}
	}
	return 0;
}

int placement_hash_range(uint32_t index, uint32_t count, uint64_t *first, uint64_t *last)
{
	/* Boundaries are floor(i * 2^64 / count): exact in 128 bits, so the
	 * ranges differ in width by at most one and cover the space. */
	unsigned __int128 space = (unsigned __int128)1 << 64;

	if (count == 0 || index >= count)
		return -EINVAL;
	*first = (uint64_t)(space * index / count);
	if (index + 1 == count)
		*last = UINT64_MAX;
	else
		*last = (uint64_t)(space * (index + 1) / count - 1);
	return 0;
}

/* The total of the up nodes of node first's AZ, when first is that AZ's first up node in
 * the list; else 0 (the AZ was counted at its first node). */
static uint64_t placement_az_bytes(const struct placement_node *nodes, const uint64_t *bytes,
				   size_t node_count, size_t first)
{
	uint64_t total = 0;

	if (!nodes[first].up)
		return 0;
	for (size_t j = 0; j < first; j++)
		if (nodes[j].up && strcmp(nodes[j].az, nodes[first].az) == 0)
			return 0;
	for (size_t j = first; j < node_count; j++)
		if (nodes[j].up && strcmp(nodes[j].az, nodes[first].az) == 0)
			total += bytes[j];
	return total;
}

/* Whether the AZs, each giving at most usable bytes, hold PLACEMENT_REPLICAS * usable. */
static bool placement_fits(const struct placement_node *nodes, const uint64_t *bytes,
			   size_t node_count, uint64_t usable)
{
	uint64_t held = 0;

	for (size_t i = 0; i < node_count; i++) {
		uint64_t az_bytes = placement_az_bytes(nodes, bytes, node_count, i);

		held += az_bytes < usable ? az_bytes : usable;
	}
	return held / PLACEMENT_REPLICAS >= usable;
}

uint64_t placement_usable_bytes(const struct placement_node *nodes, const uint64_t *bytes,
				size_t node_count)
{
	uint64_t low = 0, high = 0;

	/* A third of the total bounds it; scaled down so that the sums cannot overflow. */
	for (size_t i = 0; i < node_count; i++)
		if (nodes[i].up)
			high += bytes[i] / PLACEMENT_REPLICAS + 1;
	/* Binary search: fits is true at 0 and monotone (false past the answer). */
	while (low < high) {
		uint64_t middle = low + (high - low + 1) / 2;

		if (placement_fits(nodes, bytes, node_count, middle))
			low = middle;
		else
			high = middle - 1;
	}
	return low;
}
