/* group.h: one replica of one partition's replication group: the Multi-Paxos core
 * (paxos.h) bound to a write-ahead log (wal.h) and to a state machine.
 *
 * The group is a single-threaded, deterministic driver: the owner feeds it received messages
 * (group_step), time (group_tick), client commands (group_propose) and strong reads
 * (group_read), and calls group_process() after them, which runs the core's ready cycles:
 *   1. install a snapshot the core received, if any (before the WAL write, so the log the WAL
 *      holds never lies beyond the core's window after a restart);
 *   2. send the ready messages through the send callback, before the WAL write: they never
 *      depend on what this cycle persists (the core holds ACCEPTED and PROMISE back until
 *      paxos_persisted), so a leader's ACCEPTs reach the followers while it syncs;
 *   3. append the hard state and the accepted entries to the WAL, then ONE wal_sync for all of
 *      them (group commit: every proposal and accept since the last cycle shares it);
 *   4. apply the committed entries to the state machine in slot order (entries at or below
 *      its applied slot are skipped, so a crash between an apply and the WAL does no harm),
 *      complete the waiting proposals with their results, then let the state machine make
 *      the entries durable (group_sm.persist);
 *   5. answer the granted strong reads (read_ready);
 *   6. paxos_advance, then paxos_persisted (the core releases the messages that waited for
 *      the sync, e.g. ACCEPTED, in the next cycle, which group_process runs at once);
 *   7. every compact_every_slots applied slots, compact the core's log and cut the WAL's
 *      prefix (the hard state is rewritten first, so the cut never loses it).
 *
 * WAL records (payload of one wal.h record; little endian):
 *	version  1 byte  GROUP_WAL_VERSION
 *	kind     1 byte  GROUP_WAL_HARD_STATE or GROUP_WAL_ENTRY
 *	hard state: promised round 8 bytes, promised node id 4 bytes
 *	entry:      slot 8, ballot round 8, ballot node id 4, entry type 4, then the value (the
 *	            rest of the record)
 * Replay (group_open) reads every record: the last hard state wins, and of an entry's slot the
 * last record wins (paxos.h's restore contract); entries at or below the state machine's
 * applied slot are dropped. A record of an unknown version or kind fails the open (-EBADMSG)
 * rather than dropping an accept that may have been acknowledged.
 *
 * Log values: a NORMAL entry's value is a GroupEntry (quorum.proto): the proposer's node id,
 * a proposal id (incarnation << 32 | sequence) and the command bytes. When the slot a
 * proposal got is applied, the proposer completes it: with the state machine's result if the
 * slot holds its own GroupEntry, with -ECANCELED if another value took the slot after a
 * leader change (the command was NOT applied, so the client may retry), with -ETIMEDOUT if a
 * snapshot jumped over the slot (outcome unknown, as after a deadline).
 *
 * Determinism: a command must carry everything time-dependent (the proposer stamps "now");
 * apply never reads a clock, so every replica computes the same state.
 *
 * Errors: 0 or a negative errno. A WAL or state machine failure makes the group failed: every
 * later call returns -EIO, and the owner closes and reopens it (which rereads the disk).
 * Nothing here is thread-safe; callbacks run inside group_process (and group_step/tick for
 * snapshot_get) and must not call back into the group. */
#ifndef QUORUM_GROUP_H
#define QUORUM_GROUP_H

#include "cluster/io.h"
#include "cluster/paxos.h"
#include "cluster/paxos_wire.h"
#include "cluster/wal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUP_WAL_VERSION 1
#define GROUP_WAL_HARD_STATE 1
#define GROUP_WAL_ENTRY 2
#define GROUP_ENTRY_VERSION 1
#define GROUP_COMMAND_VERSION 1
#define GROUP_RESULT_BYTES_MAX 256

/* One committed entry handed to the state machine. */
struct group_apply {
	uint64_t slot;
	uint32_t type;			/* enum paxos_entry_type */
	/* NORMAL: the command (GroupEntry.command); CONFIG: the member list
	 * (paxos_config_encode); NOOP: nothing. Valid during the apply call. */
	const uint8_t *command;
	size_t command_bytes;
	/* Out, NORMAL only: the command's own outcome (a negative errno such as -EEXIST is a
	 * result, not a failure of apply) and result bytes for the proposer. */
	int status;
	uint8_t result[GROUP_RESULT_BYTES_MAX];
	size_t result_bytes;
};

/* The state machine. Its applied slot and members are durable with its data. */
struct group_sm {
	void *ctx;
	/* Applies entries (in slot order, slots consecutive, the first = applied + 1) durably
	 * (or staged until persist, below) and atomically with the new applied slot (the last
	 * entry's slot) and, for a CONFIG entry, the member list. Returns 0, or a negative
	 * errno when nothing could be made durable (the group fails). A command it cannot
	 * decode is a result (status -EINVAL). */
	int (*apply)(void *ctx, struct group_apply *entries, size_t count);
	/* A copy of the whole state in malloc'd *bytes (caller frees) and the slot it reflects.
	 * Returns 0 or a negative errno. */
	int (*snapshot_get)(void *ctx, uint8_t **bytes, size_t *size_bytes,
			    uint64_t *through_slot);
	/* Replaces the whole state by a snapshot, durably, with its slot and members. */
	int (*snapshot_install)(void *ctx, uint64_t through_slot, const uint8_t *bytes,
				size_t size_bytes, const uint32_t *members, size_t member_count);
	/* The applied slot and the latest applied member list (count 0 when none was ever
	 * applied: the group then uses the configured members). */
	int (*state)(void *ctx, uint64_t *applied_slot, uint32_t *members, size_t *member_count);
	/* May be NULL: apply made its entries durable itself. Otherwise apply may leave them
	 * staged, readable through the state machine's own reads but not yet on disk, and the
	 * group calls persist right after completing the proposals of those entries and before
	 * it answers a strong read or applies anything more: a proposer hears its result one
	 * disk write sooner, which is safe because the WAL of a majority holds every committed
	 * entry (a crash before persist replays them), and a strong read is answered only
	 * after persist. Returns 0 or a negative errno (the group fails). */
	int (*persist)(void *ctx);
	/* May be NULL. True when the state machine holds no state of this group yet although
	 * the group has a history elsewhere: the replica then commits nothing and never
	 * campaigns until a snapshot comes (paxos_config.joining). */
	bool (*needs_snapshot)(void *ctx);
};

struct group_callbacks {
	void *ctx;
	/* A message for msg->to; pointers valid during the call (encode it with paxos_wire). */
	void (*send)(void *ctx, const struct paxos_msg *msg);
	/* A proposal's outcome: status 0 (applied; result/result_bytes from the state machine,
	 * whose own outcome is in apply_status), -ECANCELED (not applied, retry), -ETIMEDOUT
	 * (unknown). Pointers valid during the call. */
	void (*proposal_done)(void *ctx, uint64_t token, int status, int apply_status,
			      const uint8_t *result, size_t result_bytes);
	/* A strong read may now be served from the state machine (the leader's lease holds
	 * and everything committed before the read was asked is applied). */
	void (*read_ready)(void *ctx, uint64_t token);
};

struct group_config {
	struct paxos_wire_group id;	/* table id, partition id */
	uint32_t self_id;
	uint32_t members[PAXOS_MEMBERS_MAX];	/* used until a CONFIG entry was applied */
	size_t member_count;
	uint32_t election_ticks;	/* paxos_config: see paxos.h */
	uint32_t heartbeat_ticks;
	uint32_t lease_ticks;
	uint32_t window_slots;
	uint32_t log_slots;
	uint32_t outbox_msgs;
	uint64_t seed;
	uint32_t incarnation;		/* differs at every open of this replica (start time) */
	uint64_t compact_every_slots;	/* 0: never compact */
	/* Slots a compaction keeps behind the applied one: a follower's commit index reaches
	 * the leader a round trip late, and one a little behind must get the entries it lacks
	 * from the log, not a snapshot of the whole partition. With compact_every_slots and
	 * window_slots at most log_slots (else group_open says -EINVAL). */
	uint64_t compact_keep_slots;
	struct wal_options wal;
};

/* Defaults: election 20 ticks, heartbeat 3, lease 12, window 64, log 1024, outbox 256,
 * compaction every 512 slots keeping 256, default WAL options; ids and members are left
 * zero. */
void group_config_init(struct group_config *config);

struct group;

/* Opens the WAL in wal_dir (which must exist) over io, replays it and creates the core. io,
 * sm and callbacks must outlive the group. Returns 0, -EINVAL (configuration), -EBADMSG (a
 * damaged WAL or record), -EIO, -ENOMEM. */
int group_open(const struct io *io, const char *wal_dir, const struct group_config *config,
	       const struct group_sm *sm, const struct group_callbacks *callbacks,
	       struct group **out);

/* Closes the WAL and frees the group. Waiting proposals get no callback: their outcome is
 * unknown to the caller, as after a crash. */
void group_close(struct group *group);

/* A message from a peer (already decoded and routed to this group). Returns 0, -EINVAL
 * (malformed, dropped), -EIO (failed group). */
int group_step(struct group *group, const struct paxos_msg *msg);

void group_tick(struct group *group);

/* Proposes a command (copied) at the leader; token comes back in proposal_done. Returns 0,
 * -EREMOTE with *leader_hint (0 if unknown) when not the leader, -EAGAIN (leader not ready:
 * recovering, window full), -EMSGSIZE, -EBUSY (token already waiting), -ENOMEM, -EIO. */
int group_propose(struct group *group, const void *command, size_t command_bytes,
		  uint64_t token, uint32_t *leader_hint);

/* Asks for a strongly consistent read at the leader under its lease; read_ready(token)
 * comes in the next group_process. Returns 0, -EREMOTE with a hint, -EAGAIN (no lease yet),
 * -EIO. Eventually consistent reads need none of this: read the state machine. */
int group_read(struct group *group, uint64_t token, uint32_t *leader_hint);

/* Forgets a waiting proposal (its deadline passed): no callback will come for it. Returns 0
 * or -ENOENT. */
int group_cancel(struct group *group, uint64_t token);

/* Moves the group one step towards the member list wanted (a replica move): a wanted
 * member that is missing is added first; a member not wanted is removed only once every
 * wanted member has caught up (it committed the configuration in force, its commit
 * index is within GROUP_CATCH_UP_SLOTS of the leader's, and no snapshot is pending), so the group never depends on a replica without its
 * state. One configuration entry at a time, through the log. Returns 0 when the members in
 * force are the ones wanted, -EINPROGRESS when a step is under way (ask again), -EREMOTE
 * with *leader_hint when not the leader, -EAGAIN (leader not ready), -EINVAL (a bad
 * list), -ENOMEM, -EIO. */
#define GROUP_CATCH_UP_SLOTS 64
int group_change_members(struct group *group, const uint32_t *wanted, size_t wanted_count,
			 uint32_t *leader_hint);

/* Hands leadership to member to (graceful stop). */
int group_transfer_leadership(struct group *group, uint32_t to);

/* Runs ready cycles until the core has nothing more to do now. Returns 0 or -EIO. */
int group_process(struct group *group);

struct group_status {
	struct paxos_status paxos;
	struct paxos_wire_group id;
	uint64_t wal_first_index;
	uint64_t wal_last_index;
	uint64_t wal_syncs;		/* ready cycles that synced */
	uint64_t entries_persisted;
	uint64_t compactions;
	size_t proposals_waiting;
	bool failed;
};

void group_status(const struct group *group, struct group_status *status);

#endif
