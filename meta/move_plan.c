/* move_plan.c: see move_plan.h. */
#include "meta/move_plan.h"

#include <string.h>

static const struct mover_node *mover_find(const struct mover_node *nodes, size_t node_count,
					   uint64_t id)
{
	for (size_t i = 0; i < node_count; i++)
		if (nodes[i].id == id)
			return &nodes[i];
	return NULL;
}

/* The least loaded node (ties: the lower id) that may take the replica of leaving: up,
 * not draining, no replica of the partition yet, in an AZ the other replicas do not use,
 * and holding fewer than below replicas. */
static const struct mover_node *mover_target(const struct mover_node *nodes, size_t node_count,
					     const uint64_t *replicas, size_t count,
					     uint64_t leaving, uint32_t below)
{
	const struct mover_node *best = NULL;

	for (size_t i = 0; i < node_count; i++) {
		const struct mover_node *n = &nodes[i];
		bool fits = n->up && !n->draining && n->replica_count < below;

		for (size_t r = 0; r < count && fits; r++) {
			const struct mover_node *other = mover_find(nodes, node_count, replicas[r]);

			fits = replicas[r] != n->id &&
			       (replicas[r] == leaving || !other || strcmp(other->az, n->az) != 0);
		}
		if (fits && (!best || n->replica_count < best->replica_count ||
			     (n->replica_count == best->replica_count && n->id < best->id)))
			best = n;
	}
	return best;
}

static void mover_replace(const uint64_t *replicas, size_t count, size_t index, uint64_t id,
			  uint64_t *target)
{
	memcpy(target, replicas, count * sizeof(*target));
	target[index] = id;
}

bool mover_plan(const struct mover_node *nodes, size_t node_count, const uint64_t *replicas,
		size_t count, bool balance, uint64_t *target)
{
	const struct mover_node *best_from = NULL, *best_to = NULL;
	size_t best_index = 0;

	for (size_t i = 0; i < count; i++) {
		const struct mover_node *n = mover_find(nodes, node_count, replicas[i]);
		const struct mover_node *to;

		if (!n || !n->draining)
			continue;
		to = mover_target(nodes, node_count, replicas, count, n->id, UINT32_MAX);
		if (to) {
			mover_replace(replicas, count, i, to->id, target);
			return true;
		}
	}
	if (!balance)
		return false;
	/* The most loaded replica that has somewhere to go at least MOVER_IMBALANCE_MIN lower. */
	for (size_t i = 0; i < count; i++) {
		const struct mover_node *n = mover_find(nodes, node_count, replicas[i]);
		const struct mover_node *to;

		if (!n || !n->up || n->replica_count < MOVER_IMBALANCE_MIN ||
		    (best_from && n->replica_count <= best_from->replica_count))
			continue;
		to = mover_target(nodes, node_count, replicas, count, n->id,
				  n->replica_count - MOVER_IMBALANCE_MIN + 1);
		if (to) {
			best_from = n;
			best_to = to;
			best_index = i;
		}
	}
	if (!best_to)
		return false;
	mover_replace(replicas, count, best_index, best_to->id, target);
	return true;
}
