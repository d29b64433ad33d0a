/* node_route.h: a storage node's side of routing. A request names the partition the router
 * believes holds its key and that partition's epoch; the node checks them against the
 * group it hosts for the key and, when they differ (a split or a move the router has not
 * seen), answers -EREMCHG with the route it knows, so the router updates its cache and
 * retries at once. Splits reach a group here too: meta asks the partition's leader, which
 * picks the split hash (when meta did not) and proposes the split to the group's log. */
#ifndef QUORUM_NODE_ROUTE_H
#define QUORUM_NODE_ROUTE_H

#include "cluster/arena.h"
#include "cluster/replicas.h"
#include "cluster/store.h"
#include "quorum.pb-c.h"

#include <stdint.h>

/* How long a split, or a step of a move, waits for its group at most. */
#define NODE_ROUTE_SPLIT_TIMEOUT_MS 10000
#define NODE_ROUTE_MEMBERS_TIMEOUT_MS 2000

/* 0 when request names no partition, or the one hosted here for (table_id, hash) with its
 * epoch; otherwise -EREMCHG with response filled (node_route_moved). */
int node_route_check(struct replicas *replicas, const Quorum__Request *request,
		     uint64_t table_id, uint64_t hash, Quorum__Response *response,
		     struct arena *arena);

/* Fails response with -EREMCHG and, when this node hosts the group holding hash now, its
 * route (Response.route). */
void node_route_moved(struct replicas *replicas, uint64_t table_id, uint64_t hash,
		      Quorum__Response *response, struct arena *arena);

/* Serves SplitPartitionRequest: proposes the split to the partition's group (this node
 * must lead it: -EREMOTE with a hint otherwise) and answers with the group's state after
 * it. A split that is done already answers the same. */
void node_route_split(struct replicas *replicas, struct store *store,
		      const Quorum__SplitPartitionRequest *request, Quorum__Response *response,
		      struct arena *arena);

/* Serves ChangeMembersRequest (a replica move, see group_change_members): this node must
 * lead the partition's group (-EREMOTE with a hint otherwise); the answer holds the members
 * in force and whether they are the ones wanted. */
void node_route_change_members(struct replicas *replicas,
			       const Quorum__ChangeMembersRequest *request,
			       Quorum__Response *response, struct arena *arena);

#endif
