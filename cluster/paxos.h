/* paxos.h: the Multi-Paxos core of a replication group, as a pure state machine.
 *
 * The core does no I/O, reads no clock and opens no socket (the etcd-io/raft style). The node
 * feeds it received messages (paxos_step), the passing of time (paxos_tick), proposals
 * (paxos_propose) and "what you asked me to persist is durable" (paxos_persisted); it asks
 * paxos_ready() what to do, does it, and calls paxos_advance().
 *
 * Protocol (Lamport, "Paxos Made Simple"; van Renesse, "Paxos Made Moderately Complex"):
 * - Ballot = (round, node id), totally ordered. Slots start at 1.
 * - Election: a follower whose election timer fires first asks the others whether they still
 *   hear a leader (pre-vote); only if a majority does not, it takes a higher ballot and sends
 *   PREPARE(ballot, from = first slot it does not know committed). An acceptor promises (the
 *   promise is durable before the PROMISE leaves) and returns every slot >= from it accepted,
 *   with ballot and value, or marked chosen if it knows the slot chosen. The new leader
 *   re-proposes in each such slot the value of the highest ballot (a no-op in gaps), then a
 *   no-op in its first own slot, then client values.
 * - Phase 2 per slot, pipelined (window_slots in flight). An acceptor answers ACCEPTED only
 *   once the entry is durable; a slot is chosen when a majority (the leader's own durable
 *   copy included) accepted it at the leader's ballot. The commit index (contiguous chosen
 *   prefix) rides on ACCEPT and HEARTBEAT; a follower commits a slot it holds at the
 *   leader's ballot.
 * - Knowledge of chosen slots travels in LEARN messages (slot, value): the leader sends them
 *   to a follower whose commit index lags (catch-up), and a follower to a leader that lags.
 *   A node behind the sender's compacted log gets a SNAPSHOT instead (opaque bytes from the
 *   application, through a slot).
 * - Lease: the leader sends HEARTBEAT(tick T of its own clock); when a majority (itself
 *   included) acknowledged it, the lease holds until T + lease_ticks. A node that
 *   acknowledged a leader (or restarted) refuses to promise any ballot for election_ticks
 *   after that contact, so no new leader exists before the lease ends
 *   (lease_ticks < election_ticks, ticks of all nodes at the same rate).
 * - Check-quorum: a leader that did not hear a majority for election_ticks steps down.
 * - Hand-off: the leader sends TIMEOUT_NOW to the target and steps down at once (it never
 *   serves a lease again on that ballot); the target's PREPARE names the old leader's ballot,
 *   and only acceptors whose lease guard protects exactly that ballot skip the guard.
 * - Membership: an entry of type PAXOS_ENTRY_CONFIG holds the member list (see
 *   paxos_config_encode); it takes effect on each node when that node commits it. A leader
 *   proposes a change only after its first own slot is committed, proposes nothing after an
 *   uncommitted configuration entry, and a change adds or removes one member at a time, so
 *   old and new majorities always intersect. A configuration entry that commits when it is
 *   not one change from the configuration then in force (a stale proposal a later leader
 *   recovered and re-proposed) is void: the core keeps its members and hands the entry to
 *   the application as a NOOP. A new member starts with the new list (and an
 *   empty log) and catches up like a lagging follower; a removed member stops campaigning.
 *   The application passes the latest committed list in paxos_config.members at restart.
 *
 * Memory: every buffer is sized by the configuration and allocated at paxos_create, except
 * values (one reference-counted copy per accepted value), PROMISE entry lists (elections
 * are rare) and snapshot copies.
 *
 * The log: the core keeps its own in-memory window of log_slots slots [log_first, ...).
 * The application compacts it (paxos_compact) after it has a snapshot covering the slots;
 * a full window refuses proposals (-EAGAIN) and drops accepts beyond it (counted).
 *
 * Ready contract, in this order:
 *   1. Write ready.hard_state (if hard_state_changed) and ready.entries (in order; a later
 *      record of a slot replaces an earlier one) to stable storage. When all of it is durable
 *      (now, or later in a group commit), call paxos_persisted(core, ready.persist_id).
 *      Messages that depend on it are held back by the core until then.
 *   2. Send ready.msgs (they never depend on unpersisted state).
 *   3. If ready.snapshot is set, replace the state machine with it; then apply
 *      ready.committed in order.
 *   4. Answer ready.reads (each read may be served once applied >= read_slot, which holds
 *      after step 3).
 *   5. paxos_advance(core, &ready). No other paxos_* call between paxos_ready and
 *      paxos_advance; every pointer in ready is valid until paxos_advance.
 * A restarted node passes what it persisted in struct paxos_restore; unsynced state is lost,
 * which the protocol tolerates.
 */
#ifndef QUORUM_PAXOS_H
#define QUORUM_PAXOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAXOS_MEMBERS_MAX 5
#define PAXOS_BATCH_MAX 16		/* entries in one ACCEPT or LEARN; slots in one ACCEPTED */
#define PAXOS_VALUE_BYTES_MAX (4u << 20)
#define PAXOS_PROMISE_ENTRIES_MAX 65536

struct paxos;

struct paxos_ballot {
	uint64_t round;
	uint32_t node_id;
};

enum paxos_entry_type {
	PAXOS_ENTRY_NOOP = 0,		/* fills a gap or opens a ballot; the application skips it */
	PAXOS_ENTRY_NORMAL = 1,		/* an application command */
	PAXOS_ENTRY_CONFIG = 2,		/* a member list (paxos_config_encode) */
};

struct paxos_entry {
	uint64_t slot;
	struct paxos_ballot ballot;	/* ballot the value was accepted at */
	uint32_t type;			/* enum paxos_entry_type */
	uint32_t chosen;		/* PROMISE only: the sender knows this value chosen */
	const uint8_t *value;
	size_t value_bytes;
};

enum paxos_msg_type {
	PAXOS_MSG_PREPARE = 1,		/* ballot, slot = from, flags, transfer_ballot */
	PAXOS_MSG_PROMISE = 2,		/* ballot promised, slot = from, entries */
	PAXOS_MSG_NACK = 3,		/* ballot = the higher ballot the sender promised */
	PAXOS_MSG_ACCEPT = 4,		/* ballot, entries (at ballot), commit_slot */
	PAXOS_MSG_ACCEPTED = 5,		/* ballot, slots durably accepted, commit_slot */
	PAXOS_MSG_HEARTBEAT = 6,	/* ballot, tick, commit_slot */
	PAXOS_MSG_HEARTBEAT_ACK = 7,	/* ballot, tick echoed, commit_slot */
	PAXOS_MSG_PREVOTE = 8,		/* commit_slot */
	PAXOS_MSG_PREVOTE_ACK = 9,	/* flags & PAXOS_FLAG_GRANTED */
	PAXOS_MSG_TIMEOUT_NOW = 10,	/* ballot of the leader handing off */
	PAXOS_MSG_LEARN = 11,		/* chosen entries, commit_slot */
	PAXOS_MSG_SNAPSHOT = 12,	/* slot = through_slot, snapshot bytes, members */
};

#define PAXOS_FLAG_TRANSFER 1u		/* PREPARE: asked for by the leader of transfer_ballot */
#define PAXOS_FLAG_GRANTED 2u		/* PREVOTE_ACK: the sender no longer hears a leader */
#define PAXOS_FLAG_JOINING 4u		/* any: a new member without state, send it a snapshot */

/* A message in or out. On output, every pointer belongs to the core and lives until
 * paxos_advance; on input, the core copies what it keeps. */
struct paxos_msg {
	uint32_t type;			/* enum paxos_msg_type */
	uint32_t from;
	uint32_t to;
	struct paxos_ballot ballot;
	uint64_t slot;
	uint64_t commit_slot;		/* the sender's commit index */
	uint64_t tick;
	uint32_t flags;
	struct paxos_ballot transfer_ballot;
	const struct paxos_entry *entries;
	size_t entry_count;
	uint64_t slots[PAXOS_BATCH_MAX];
	size_t slot_count;
	const uint8_t *snapshot;
	size_t snapshot_bytes;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
};

/* What the application hands the core when it must send a snapshot; bytes are copied by the
 * core before get returns to it. through_slot is the last slot the state reflects (its
 * applied index); it must be >= the through_slot of every paxos_compact so far. */
struct paxos_snapshot_ref {
	uint64_t through_slot;
	const uint8_t *bytes;
	size_t size_bytes;
};

struct paxos_snapshot_source {
	/* Returns 0 or a negative errno (then no snapshot is sent this time). */
	int (*get)(void *ctx, struct paxos_snapshot_ref *out);
	void *ctx;
};

struct paxos_config {
	uint32_t self_id;		/* non-zero */
	uint32_t members[PAXOS_MEMBERS_MAX];	/* the latest committed configuration */
	size_t member_count;
	uint32_t election_ticks;	/* timeouts drawn in [election_ticks, 2 * election_ticks) */
	uint32_t heartbeat_ticks;
	uint32_t lease_ticks;		/* < election_ticks, with a margin for clock drift */
	uint32_t window_slots;		/* proposals in flight past the commit index */
	uint32_t log_slots;		/* in-memory log window; > 2 * window_slots */
	uint32_t outbox_msgs;		/* messages queued at most; more are dropped (counted) */
	uint64_t seed;			/* the PRNG of election timeouts */
	struct paxos_snapshot_source snapshot;	/* get may be NULL: never compact then */
	/* A member being added, without state: members is the configuration that adds it.
	 * It commits nothing and never campaigns until it installs a snapshot (it cannot
	 * tell which earlier configurations took effect); its messages ask for one. */
	bool joining;
};

/* What a restarting node read back from stable storage. */
struct paxos_restore {
	struct paxos_ballot promised;
	uint64_t applied_slot;		/* the state machine reflects slots <= applied_slot */
	const struct paxos_entry *entries;	/* in write order; a later record of a slot wins */
	size_t entry_count;
};

struct paxos_read {
	uint64_t read_id;
	uint64_t read_slot;		/* serve the read once applied >= read_slot */
};

struct paxos_ready {
	const struct paxos_msg *msgs;
	size_t msg_count;
	bool hard_state_changed;
	struct paxos_ballot promised;	/* the hard state */
	const struct paxos_entry *entries;	/* accepted entries to persist */
	size_t entry_count;
	uint64_t persist_id;		/* non-zero iff something is to be persisted */
	bool has_snapshot;
	struct paxos_snapshot_ref snapshot;	/* install before applying committed */
	const uint32_t *snapshot_members;
	size_t snapshot_member_count;
	const struct paxos_entry *committed;	/* apply in order */
	size_t committed_count;
	const struct paxos_read *reads;
	size_t read_count;
};

enum paxos_role {
	PAXOS_FOLLOWER = 0,
	PAXOS_PRECANDIDATE = 1,
	PAXOS_CANDIDATE = 2,
	PAXOS_LEADER = 3,
};

struct paxos_counters {
	uint64_t msgs_malformed;	/* dropped: failed validation */
	uint64_t msgs_stale;		/* dropped or nacked: old ballot */
	uint64_t msgs_guarded;		/* PREPARE refused under the lease guard */
	uint64_t outbox_full;		/* messages dropped: outbox full */
	uint64_t window_full;		/* entries dropped: beyond the log window */
	uint64_t no_memory;		/* allocation failures (the message is dropped) */
	uint64_t elections;		/* phase 1 started */
	uint64_t snapshots_sent;
	uint64_t snapshots_installed;
	uint64_t configs_void;		/* committed configurations applied as no-ops */
};

struct paxos_status {
	uint32_t self_id;
	enum paxos_role role;
	uint32_t leader_id;		/* 0 if unknown */
	struct paxos_ballot promised;
	struct paxos_ballot ballot;	/* this node's ballot as candidate/leader */
	uint64_t commit_slot;
	uint64_t applied_slot;
	uint64_t log_first_slot;
	uint64_t next_slot;		/* leader: the next slot it will propose in */
	bool lease_valid;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	/* Leader: what it knows of each member (same index as members): the commit index of
	 * its latest message, and whether it still waits for a snapshot. */
	uint64_t member_commit_slot[PAXOS_MEMBERS_MAX];
	bool member_joining[PAXOS_MEMBERS_MAX];
	bool config_pending;		/* a configuration entry proposed, not yet committed */
	uint64_t config_slot;		/* the slot of the configuration in force (0: initial) */
	struct paxos_counters counters;
};

/* Allocates a core. restore may be NULL (a brand-new, empty replica). Returns 0, -EINVAL
 * (bad configuration or restore data) or -ENOMEM. */
int paxos_create(struct paxos **out, const struct paxos_config *config,
		 const struct paxos_restore *restore);
void paxos_destroy(struct paxos *core);

/* A received message. Returns 0, or -EINVAL if it was malformed (dropped, counted); a stale
 * or unwelcome message returns 0 (it is a normal part of the protocol). */
int paxos_step(struct paxos *core, const struct paxos_msg *msg);

/* One tick of time passed. */
void paxos_tick(struct paxos *core);

/* Proposes a value at the leader (copied). Returns 0 and the slot, -EREMOTE if this node
 * is not the leader (*leader_hint = the leader it knows, or 0), -EAGAIN if it is but cannot
 * take it now (recovering, window or log full, hand-off, a configuration change pending),
 * -EINVAL (type or size), -ENOMEM. */
int paxos_propose(struct paxos *core, uint32_t type, const void *value, size_t value_bytes,
		  uint64_t *slot_out, uint32_t *leader_hint);

/* A strongly consistent read at the leader under its lease. Returns 0 and the grant
 * (read_id, read_slot) appears in the next ready; -EREMOTE with a hint if not leader;
 * -EAGAIN if leader without a valid lease or before its first slot is committed. */
int paxos_lease_read(struct paxos *core, uint64_t read_id, uint32_t *leader_hint);

/* Hands leadership to member to (graceful stop). Returns 0, -EREMOTE if not leader,
 * -EINVAL if to is not another member. */
int paxos_transfer_leadership(struct paxos *core, uint32_t to);

/* Everything of the ready with this persist_id (and before) is durable. */
void paxos_persisted(struct paxos *core, uint64_t persist_id);

/* Drops log slots <= through_slot (they must be applied, and covered by the snapshots the
 * snapshot source returns from now on). Returns 0 or -EINVAL. */
int paxos_compact(struct paxos *core, uint64_t through_slot);

bool paxos_has_ready(const struct paxos *core);
void paxos_ready(struct paxos *core, struct paxos_ready *ready);
void paxos_advance(struct paxos *core, const struct paxos_ready *ready);

void paxos_status(const struct paxos *core, struct paxos_status *status);

int paxos_ballot_compare(struct paxos_ballot a, struct paxos_ballot b);

/* Configuration entry values: 4 bytes count, then 4 bytes per member id, little endian.
 * encode returns the size in bytes (buffer of 4 + 4 * PAXOS_MEMBERS_MAX is enough);
 * decode returns 0 or -EINVAL. */
size_t paxos_config_encode(const uint32_t *members, size_t member_count, uint8_t *out);
int paxos_config_decode(const uint8_t *value, size_t value_bytes, uint32_t *members,
			size_t *member_count);

#endif
