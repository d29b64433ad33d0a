/* replicas.h: the replication groups a storage node hosts, their threads, their inboxes and
 * the transport of Paxos messages between nodes.
 *
 * Meta tells a node in every heartbeat reply which partitions it is a replica of
 * (PartitionAssignment); replicas_assign opens a group (group.h over the store's state machine,
 * its WAL in DATA/groups/<table>-<partition>/) for each new one and closes and removes the
 * groups no longer assigned (WAL directory and the partition's items).
 *
 * Threads: one per group. A group's ready cycle syncs its WAL and applies to LevelDB with a
 * sync, so groups on their own threads fsync in parallel, and a slow group (a large snapshot)
 * does not hold back the ticks of the others, whose leases depend on ticking on time. The
 * thread ticks every tick_ms (catching up ticks it missed while it was busy, so a leader's
 * clock never runs slow against its lease), drains its inbox (peer messages, proposals, strong
 * reads, cancellations, hand-offs) and calls group_process.
 *
 * Transport: a message for a peer is encoded (paxos_wire.h) into a Request.paxos and queued to
 * the senders of the peer's address: a few threads per peer address (so several calls are in
 * flight at once) on one bounded queue, calling the peer's rpc server with a short deadline.
 * A full queue drops the message, and so does a peer that failed a call a moment ago (Paxos
 * tolerates loss and reordering); a group thread never waits on the network. The receiving
 * node routes the message by (table, partition) to the group's inbox and answers at once.
 *
 * Client requests (from node.c's rpc workers): replicas_propose and replicas_read_barrier
 * hand the command or read to the group thread and wait for its outcome up to a bound. Peer
 * messages come through the same rpc workers, so only waiting_max requests may wait at once
 * (the rest get -EAGAIN): if every worker waited for a commit, none would be left to take the
 * peers' acceptances. The rpc server starts workers while all are busy (net.h), so
 * waiting_max may be close to its most.
 *
 * Every function is thread-safe and returns 0 or a negative errno. */
#ifndef QUORUM_REPLICAS_H
#define QUORUM_REPLICAS_H

#include "cluster/arena.h"
#include "cluster/group.h"
#include "cluster/store.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPLICAS_TICK_MS_DEFAULT 10
#define REPLICAS_ELECTION_TICKS_DEFAULT 20
#define REPLICAS_ADDRESS_BYTES 512

struct replicas_options {
	const char *data_dir;		/* the node's data directory: groups in DIR/groups */
	int64_t tick_ms;		/* one Paxos tick */
	uint32_t election_ticks;	/* election timeout in ticks (lease and heartbeat follow) */
	/* Client requests waiting on their groups at once, at most; more get -EAGAIN. The
	 * node's rpc workers beyond this stay free for Paxos messages, without which no
	 * waiting request could ever complete. */
	int waiting_max;
	/* The node's free-space reserve (disk_space.h), or NULL for no checks. Not owned. */
	struct disk_space *disk_space;
};

/* What became of a proposal or read that did not simply succeed. */
struct replicas_outcome {
	int apply_status;		/* proposals: the command's own outcome (0, -EEXIST...) */
	uint8_t result[GROUP_RESULT_BYTES_MAX];	/* proposals: the state machine's result */
	size_t result_bytes;
	uint64_t leader_id;		/* -EREMOTE: the leader, 0 if unknown */
	char leader_address[REPLICAS_ADDRESS_BYTES];	/* "" if unknown */
	char why[REPLICAS_ADDRESS_BYTES + 128];	/* a line for the reply on failure */
};

struct replicas;

/* store must outlive the set. Returns 0, -EINVAL, -ENOMEM. */
int replicas_new(struct store *store, const struct replicas_options *options,
		 struct replicas **out);

/* Closes every hosted group (their waiters get -ETIMEDOUT); later requests find no group
 * (-EAGAIN, -ENOENT) until replicas_assign opens some again. */
void replicas_close_all(struct replicas *replicas);

/* Closes every group, stops the senders, frees. */
void replicas_free(struct replicas *replicas);

/* Follows a heartbeat reply for node self_id: opens the groups of assignments not hosted yet,
 * updates peer addresses, and closes and removes the hosted groups that retired names (and
 * assignments does not). A hosted group in neither list is kept as it is, with a warning:
 * only meta's explicit word removes data. Assignments that make no sense (self missing, ids
 * over 32 bits, too many replicas) are logged and skipped. Returns 0 or the first error (the
 * others are still tried). Called from one thread (the node's heartbeat). */
int replicas_assign(struct replicas *replicas, uint64_t self_id,
		    Quorum__PartitionAssignment *const *assignments, size_t count,
		    Quorum__GroupRef *const *retired, size_t retired_count);

/* A GroupReport per hosted group, in arena. */
int replicas_report(struct replicas *replicas, struct arena *arena,
		    Quorum__GroupReport ***reports, size_t *count);

/* A PaxosMessage from a peer: routes it to its group and fills response (status 0, or
 * -ENOENT for an unknown group, -EINVAL for a malformed message, -EAGAIN for a full inbox). */
void replicas_handle_paxos(struct replicas *replicas, const Quorum__PaxosMessage *message,
			   Quorum__Response *response, struct arena *arena);
/* A PaxosBatch: each message as replicas_handle_paxos, in order; response's status is 0 or
 * the first refusal's. */
void replicas_handle_paxos_batch(struct replicas *replicas, const Quorum__PaxosBatch *batch,
				 Quorum__Response *response, struct arena *arena);

/* Proposes a GroupCommand (packed in command) to the group of table_id whose hash range holds
 * hash, and waits for it to be applied, at most timeout_ms. Returns 0 (outcome->apply_status
 * and result say what the command did), -EAGAIN (not hosted here yet, no leader yet, the
 * command was not applied: retry), -EREMOTE (outcome->leader_*), -ETIMEDOUT (unknown: it may
 * still be applied), -EIO, -ENOMEM. */
int replicas_propose(struct replicas *replicas, uint64_t table_id, uint64_t hash,
		     const uint8_t *command, size_t command_bytes, int64_t timeout_ms,
		     struct replicas_outcome *outcome);

/* Whether the group of table_id holding hash, if this node leads it, can take a request of use
 * (enum disk_space_use) without running a replica's disk dry (disk_space_group_refuses, over
 * this node's level and the levels its peers sent with their last Paxos replies). Returns
 * -ENOSPC with outcome->why set when it cannot; -EAGAIN when only this leader is short and
 * the others make a majority (it hands the leadership to one of them: retry there); else 0
 * (also when this node does not lead the group or hosts none: the proposal then answers as
 * usual). */
int replicas_check_space(struct replicas *replicas, uint64_t table_id, uint64_t hash, int use,
			 struct replicas_outcome *outcome);

/* Fails a client's response with err and the outcome's why; -EREMOTE carries the leader
 * the group knows, so the router retries there. */
void replicas_fail_response(Quorum__Response *response, struct arena *arena, int err,
			    const struct replicas_outcome *outcome);

/* replicas_propose to the group of partition_id (a split, which names its group). */
int replicas_propose_partition(struct replicas *replicas, uint64_t table_id,
			       uint64_t partition_id, const uint8_t *command,
			       size_t command_bytes, int64_t timeout_ms,
			       struct replicas_outcome *outcome);

/* One step of a replica move of partition_id's group towards wanted (see
 * group_change_members): 0 when the members in force are the wanted ones, -EINPROGRESS
 * while a step is under way, else errors as replicas_propose. members gets the members in
 * force (PAXOS_MEMBERS_MAX room) when the group answered. */
int replicas_change_members(struct replicas *replicas, uint64_t table_id,
			    uint64_t partition_id, const uint32_t *wanted, size_t wanted_count,
			    int64_t timeout_ms, struct replicas_outcome *outcome,
			    uint32_t *members, size_t *member_count);

/* The route of the hosted group of table_id holding hash (or, by_partition, of the
 * partition value), as replicated: its id, range, epoch and members with their addresses,
 * in arena. -ENOENT when this node hosts no such group, -ENOMEM. */
int replicas_route(struct replicas *replicas, uint64_t table_id, bool by_partition,
		   uint64_t value, struct arena *arena, Quorum__PartitionAssignment **out);

/* Waits until a strongly consistent read of the group holding hash may be served from the
 * local store (this node leads under its lease and has applied everything committed before).
 * Errors as replicas_propose. */
int replicas_read_barrier(struct replicas *replicas, uint64_t table_id, uint64_t hash,
			  int64_t timeout_ms, struct replicas_outcome *outcome);

/* Hands off the leadership of every group this node leads to another member (the one whose
 * node answered last), and waits until each has another leader, at most timeout_ms. */
void replicas_hand_off(struct replicas *replicas, int64_t timeout_ms);

#endif
