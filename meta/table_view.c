/* table_view.c: see table_view.h. */
#include "meta/table_view.h"

#include "cluster/paxos.h"

const char *table_view_address(const Quorum__TableResponse *t, uint64_t node_id)
{
	for (size_t i = 0; i < t->n_nodes; i++)
		if (t->nodes[i]->id == node_id)
			return t->nodes[i]->address;
	return NULL;
}

uint64_t table_view_leader(const Quorum__TableResponse *t, uint64_t partition_id)
{
	uint64_t leader = 0, best_round = 0;

	for (size_t i = 0; i < t->n_replicas; i++) {
		const Quorum__ReplicaStatus *s = t->replicas[i];

		if (s->partition_id == partition_id && s->report->role == PAXOS_LEADER &&
		    (leader == 0 || s->report->ballot_round > best_round)) {
			leader = s->node_id;
			best_round = s->report->ballot_round;
		}
	}
	return leader;
}
