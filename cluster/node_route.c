/* node_route.c: see node_route.h. */
#include "cluster/node_route.h"

#include "cluster/clock.h"
#include "cluster/group.h"
#include "cluster/log.h"
#include "cluster/rpc.h"
#include "cluster/store_group.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void node_route_moved(struct replicas *replicas, uint64_t table_id, uint64_t hash,
		      Quorum__Response *response, struct arena *arena)
{
	Quorum__PartitionAssignment *route = NULL;

	if (replicas_route(replicas, table_id, false, hash, arena, &route) == 0 && route)
		rpc_fail(response, arena, -EREMCHG,
			 "the key's partition is now %" PRIu64 " (epoch %" PRIu64 ")",
			 route->partition->id, route->partition->epoch);
	else
		rpc_fail(response, arena, -EREMCHG,
			 "the key's partition is not hosted here any more: ask meta");
	response->route = route;
}

int node_route_check(struct replicas *replicas, const Quorum__Request *request,
		     uint64_t table_id, uint64_t hash, Quorum__Response *response,
		     struct arena *arena)
{
	Quorum__PartitionAssignment *route;
	int err;

	if (!request->has_partition_id || !request->has_partition_epoch)
		return 0;
	err = replicas_route(replicas, table_id, false, hash, arena, &route);
	if (err == -ENOENT)
		return 0;	/* not hosted here (yet): the request's own path says so */
	if (err < 0) {
		rpc_fail(response, arena, err, "out of memory");
		return err;
	}
	if (route->partition->id == request->partition_id &&
	    route->partition->epoch == request->partition_epoch)
		return 0;
	rpc_fail(response, arena, -EREMCHG,
		 "partition %" PRIu64 " epoch %" PRIu64 " is stale: the key is in partition %"
		 PRIu64 " epoch %" PRIu64, request->partition_id, request->partition_epoch,
		 route->partition->id, route->partition->epoch);
	response->route = route;
	return -EREMCHG;
}

void node_route_split(struct replicas *replicas, struct store *store,
		      const Quorum__SplitPartitionRequest *request, Quorum__Response *response,
		      struct arena *arena)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;
	Quorum__SplitCommand split = QUORUM__SPLIT_COMMAND__INIT;
	Quorum__SplitPartitionResponse *result;
	Quorum__PartitionAssignment *route;
	struct replicas_outcome outcome;
	Quorum__GroupState *state;
	size_t command_bytes;
	uint8_t *packed;
	int err;

	err = replicas_route(replicas, request->table_id, true, request->partition_id, arena,
			     &route);
	if (err < 0) {
		rpc_fail(response, arena, err == -ENOENT ? -EAGAIN : err,
			 "partition %" PRIu64 " of table %" PRIu64 " is not hosted here",
			 request->partition_id, request->table_id);
		return;
	}
	split.child_partition_id = request->child_partition_id;
	if (request->has_split_hash) {
		split.split_hash = request->split_hash;
	} else {
		/* The leader's store is the one that knows what was written: read it here,
		 * once, and put the answer in the log. */
		err = store_group_split_point(store, request->table_id,
					      route->partition->hash_first,
					      route->partition->hash_last, &split.split_hash);
		if (err < 0) {
			rpc_fail(response, arena, err,
				 err == -ERANGE ? "partition %" PRIu64 " holds fewer than two "
				 "distinct hashes: nothing to split" :
				 "partition %" PRIu64 ": reading its items failed",
				 request->partition_id);
			return;
		}
	}
	command.version = GROUP_COMMAND_VERSION;
	command.now_ns = clock_realtime_ns();
	command.op_case = QUORUM__GROUP_COMMAND__OP_SPLIT;
	command.split = &split;
	command_bytes = quorum__group_command__get_packed_size(&command);
	packed = arena_alloc(arena, command_bytes);
	result = arena_alloc(arena, sizeof(*result));
	if (!packed || !result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	quorum__group_command__pack(&command, packed);
	err = replicas_propose_partition(replicas, request->table_id, request->partition_id,
					 packed, command_bytes, NODE_ROUTE_SPLIT_TIMEOUT_MS,
					 &outcome);
	if (err < 0) {
		replicas_fail_response(response, arena, err, &outcome);
		return;
	}
	if (outcome.apply_status < 0) {
		rpc_fail(response, arena, outcome.apply_status,
			 "partition %" PRIu64 ": split at %016" PRIx64 " refused: %s",
			 request->partition_id, split.split_hash,
			 outcome.apply_status == -ERANGE ? "outside its range" :
			 strerror(-outcome.apply_status));
		return;
	}
	err = store_group_state_read(store, request->table_id, request->partition_id, arena,
				     &state);
	if (err < 0 || !state) {
		rpc_fail(response, arena, err < 0 ? err : -EIO,
			 "partition %" PRIu64 ": split, but its state cannot be read",
			 request->partition_id);
		return;
	}
	log_info("group %" PRIu64 "/%" PRIu64 " split at %016" PRIx64 ": child %" PRIu64,
		 request->table_id, request->partition_id, split.split_hash,
		 request->child_partition_id);
	quorum__split_partition_response__init(result);
	result->state = state;
	response->result_case = QUORUM__RESPONSE__RESULT_SPLIT_PARTITION;
	response->split_partition = result;
}

void node_route_change_members(struct replicas *replicas,
			       const Quorum__ChangeMembersRequest *request,
			       Quorum__Response *response, struct arena *arena)
{
	uint32_t wanted[PAXOS_MEMBERS_MAX], members[PAXOS_MEMBERS_MAX];
	Quorum__ChangeMembersResponse *result;
	struct replicas_outcome outcome;
	size_t member_count;
	int err;

	if (request->n_members == 0 || request->n_members > PAXOS_MEMBERS_MAX) {
		rpc_fail(response, arena, -EINVAL, "%zu members wanted (1 to %d)",
			 request->n_members, PAXOS_MEMBERS_MAX);
		return;
	}
	for (size_t i = 0; i < request->n_members; i++) {
		if (request->members[i] == 0 || request->members[i] > UINT32_MAX) {
			rpc_fail(response, arena, -EINVAL, "member %" PRIu64 " is no node id",
				 request->members[i]);
			return;
		}
		wanted[i] = (uint32_t)request->members[i];
	}
	err = replicas_change_members(replicas, request->table_id, request->partition_id,
				      wanted, request->n_members, NODE_ROUTE_MEMBERS_TIMEOUT_MS,
				      &outcome, members, &member_count);
	if (err < 0 && err != -EINPROGRESS) {
		replicas_fail_response(response, arena, err, &outcome);
		return;
	}
	result = arena_alloc(arena, sizeof(*result));
	if (!result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	quorum__change_members_response__init(result);
	result->members = arena_alloc(arena, member_count * sizeof(uint64_t) + 1);
	if (!result->members) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < member_count; i++)
		result->members[i] = members[i];
	result->n_members = member_count;
	result->done = err == 0;
	response->result_case = QUORUM__RESPONSE__RESULT_CHANGE_MEMBERS;
	response->change_members = result;
}
