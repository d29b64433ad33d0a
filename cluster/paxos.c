/* paxos.c: the Multi-Paxos core (see paxos.h for the protocol and the Ready contract).
 *
 * Layout of this file: values and the log window, the outbox, persistence bookkeeping,
 * role changes, the message handlers (one per type), ticks, the application calls, and
 * Ready/Advance.
 *
 * Invariants (asserted where they are cheap):
 * - commit_slot >= applied_slot; log_first_slot <= commit_slot + 1.
 * - A slot <= commit_slot is chosen; its value in the log never changes.
 * - A leader's log slots in [prepare_from, next_slot) that are not chosen hold its own
 *   proposals at its ballot; a follower commits a slot it holds at the leader's ballot only.
 *   A leader that learns a chosen value different from its own proposal is stale and steps
 *   down before it could tell anybody that the slot is committed.
 * - An acceptor never overwrites a chosen slot, and never reports an accept it did not make.
 */
#include "cluster/paxos.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A value shared by the log, the outbox and Ready (reference counted, never modified). */
struct pvalue {
	uint32_t refs;
	uint32_t type;
	size_t size_bytes;
	uint8_t data[];
};

struct log_slot {
	uint64_t slot;			/* 0: empty */
	struct paxos_ballot ballot;	/* ballot of the accept (or of the learned value) */
	struct pvalue *value;
	bool chosen;
	uint64_t persist_id;		/* the write of the accept; durable once <= persisted_id */
	uint32_t ack_mask;		/* leader: members that durably accepted at its ballot */
	/* A chosen configuration that was not one change from the one in force when it
	 * committed (a stale proposal a later leader recovered): it applies as a no-op. */
	bool config_void;
};

/* The sender of a message that is not a member (a joining node hears some, see msg_valid). */
#define NO_PEER SIZE_MAX

/* A configuration and the slot from which it is in force. */
#define CONFIG_HISTORY 8
struct config_record {
	uint64_t slot;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t count;
};

struct out_msg {
	struct paxos_msg msg;
	uint64_t after_persist_id;	/* held back until persisted_id reaches it */
	struct paxos_entry inline_entries[PAXOS_BATCH_MAX];
	struct pvalue *inline_values[PAXOS_BATCH_MAX];
	struct paxos_entry *heap_entries;	/* when more than PAXOS_BATCH_MAX (PROMISE) */
	struct pvalue **heap_values;
	struct pvalue *snapshot;
	bool emitted;
};

struct peer_state {
	uint64_t commit_slot;		/* its commit index, from its latest message */
	uint64_t learn_tick;		/* last tick a LEARN or SNAPSHOT went to it (+1) */
	uint64_t snapshot_tick;		/* last tick a SNAPSHOT went to it (+1) */
	bool heard;			/* acknowledged our ballot since the last quorum check */
	bool joining;			/* a new member without state: wants a snapshot */
};

struct recover_slot {
	bool present;
	struct paxos_ballot ballot;
	struct pvalue *value;
};

#define HEARTBEAT_RING 8

struct heartbeat_record {
	uint64_t tick;
	uint32_t ack_mask;
	bool used;
};

struct paxos {
	struct paxos_config config;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	int self_index;			/* -1: not a member (removed) */
	struct peer_state peers[PAXOS_MEMBERS_MAX];

	uint64_t now_tick;
	uint64_t rng_state;
	enum paxos_role role;
	struct paxos_ballot promised;
	struct paxos_ballot ballot;	/* own ballot as candidate or leader */
	uint64_t round_seen_max;
	uint32_t leader_id;
	struct paxos_ballot leader_ballot;	/* the leader whose lease our guard protects */
	uint64_t leader_contact_tick;
	uint64_t election_elapsed_ticks;
	uint64_t election_timeout_ticks;
	uint32_t prevote_mask;

	/* Candidate. */
	uint64_t prepare_from;
	uint32_t promise_mask;
	uint32_t prepare_flags;
	struct paxos_ballot transfer_ballot;
	struct recover_slot *recover;	/* log_slots, indexed like the log */
	uint64_t recover_slot_max;

	/* Leader. */
	uint64_t next_slot;
	uint64_t first_own_slot;
	uint64_t heartbeat_elapsed_ticks;
	uint64_t quorum_elapsed_ticks;
	uint64_t lease_until_tick;
	uint64_t config_pending_slot;
	bool joining;			/* paxos_config.joining, until a snapshot is installed */
	/* The latest configurations (a ring; config_history_next counts every one): a
	 * snapshot goes with the members in force at its slot, not the newest. */
	struct config_record config_history[CONFIG_HISTORY];
	uint64_t config_history_next;
	struct heartbeat_record heartbeats[HEARTBEAT_RING];
	size_t heartbeat_next;

	/* Log. */
	struct log_slot *log;
	uint64_t log_first;
	uint64_t log_last;
	uint64_t commit_slot;
	uint64_t applied_slot;
	struct pvalue *noop;

	/* Persistence. */
	uint64_t persist_next_id;
	uint64_t persisted_id;
	uint64_t hard_state_persist_id;
	bool hard_state_dirty;
	struct paxos_entry *persist_queue;
	struct pvalue **persist_values;
	size_t persist_count;
	size_t persist_cap;

	struct out_msg *outbox;
	size_t outbox_count;

	struct paxos_read *reads;
	size_t read_count;
	size_t read_cap;

	struct pvalue *snapshot_install;
	uint64_t snapshot_through;
	uint32_t snapshot_members[PAXOS_MEMBERS_MAX];
	size_t snapshot_member_count;

	/* Ready buffers (allocated at create). */
	struct paxos_msg *ready_msgs;
	struct paxos_entry *ready_committed;
	bool ready_outstanding;
	uint64_t ready_commit_through;
	size_t ready_read_count;
	size_t ready_persist_count;

	struct paxos_counters counters;
};

/* ---- small helpers ---- */

int paxos_ballot_compare(struct paxos_ballot a, struct paxos_ballot b)
{
	if (a.round != b.round)
		return a.round < b.round ? -1 : 1;
	if (a.node_id != b.node_id)
		return a.node_id < b.node_id ? -1 : 1;
	return 0;
}

static bool ballot_equal(struct paxos_ballot a, struct paxos_ballot b)
{
	return paxos_ballot_compare(a, b) == 0;
}

static uint64_t rng_next(struct paxos *core)
{
	uint64_t z = (core->rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int member_index(const struct paxos *core, uint32_t id)
{
	for (size_t i = 0; i < core->member_count; i++)
		if (core->members[i] == id)
			return (int)i;
	return -1;
}

static size_t majority(const struct paxos *core)
{
	return core->member_count / 2 + 1;
}

static size_t mask_count(uint32_t mask)
{
	return (size_t)__builtin_popcount(mask);
}

static uint32_t self_bit(const struct paxos *core)
{
	return core->self_index >= 0 ? 1u << core->self_index : 0;
}

static void election_timer_reset(struct paxos *core)
{
	core->election_elapsed_ticks = 0;
	core->election_timeout_ticks = core->config.election_ticks +
		rng_next(core) % core->config.election_ticks;
}

/* ---- values ---- */

static struct pvalue *pvalue_new(uint32_t type, const uint8_t *data, size_t size_bytes)
{
	struct pvalue *v = malloc(sizeof(*v) + size_bytes);

	if (!v)
		return NULL;
	v->refs = 1;
	v->type = type;
	v->size_bytes = size_bytes;
	if (size_bytes)
		memcpy(v->data, data, size_bytes);
	return v;
}

static struct pvalue *pvalue_get(struct pvalue *v)
{
	assert(v->refs > 0);
	v->refs++;
	return v;
}

static void pvalue_put(struct pvalue *v)
{
	if (!v)
		return;
	assert(v->refs > 0);
	if (--v->refs == 0)
		free(v);
}

static bool pvalue_equal(const struct pvalue *a, const struct pvalue *b)
{
	return a->type == b->type && a->size_bytes == b->size_bytes &&
	       memcmp(a->data, b->data, a->size_bytes) == 0;
}

/* ---- configuration ---- */

size_t paxos_config_encode(const uint32_t *members, size_t member_count, uint8_t *out)
{
	size_t n = 0;

	assert(member_count <= PAXOS_MEMBERS_MAX);
	for (int b = 0; b < 4; b++)
		out[n++] = (uint8_t)(member_count >> (8 * b));
	for (size_t i = 0; i < member_count; i++)
		for (int b = 0; b < 4; b++)
			out[n++] = (uint8_t)(members[i] >> (8 * b));
	return n;
}

int paxos_config_decode(const uint8_t *value, size_t value_bytes, uint32_t *members,
			size_t *member_count)
{
	uint32_t count = 0;

	if (value_bytes < 4)
		return -EINVAL;
	for (int b = 0; b < 4; b++)
		count |= (uint32_t)value[b] << (8 * b);
	if (count == 0 || count > PAXOS_MEMBERS_MAX || value_bytes != 4 + 4 * (size_t)count)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t id = 0;

		for (int b = 0; b < 4; b++)
			id |= (uint32_t)value[4 + 4 * i + b] << (8 * b);
		if (id == 0)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (members[j] == id)
				return -EINVAL;
		members[i] = id;
	}
	*member_count = count;
	return 0;
}

/* Records that the current members are in force from slot on. */
static void config_remember(struct paxos *core, uint64_t slot)
{
	struct config_record *r = &core->config_history[core->config_history_next++ %
							 CONFIG_HISTORY];

	r->slot = slot;
	memcpy(r->members, core->members, sizeof(r->members));
	r->count = core->member_count;
}

/* The configuration in force at slot; NULL when it is older than the history. */
static const struct config_record *config_at(const struct paxos *core, uint64_t slot)
{
	uint64_t kept = core->config_history_next < CONFIG_HISTORY ? core->config_history_next :
								     CONFIG_HISTORY;

	for (uint64_t k = 1; k <= kept; k++) {
		const struct config_record *r =
			&core->config_history[(core->config_history_next - k) % CONFIG_HISTORY];

		if (r->slot <= slot)
			return r;
	}
	return NULL;
}

static void members_set(struct paxos *core, const uint32_t *members, size_t count)
{
	struct peer_state old[PAXOS_MEMBERS_MAX];
	uint32_t old_ids[PAXOS_MEMBERS_MAX];
	size_t old_count = core->member_count;

	assert(count >= 1 && count <= PAXOS_MEMBERS_MAX);
	memcpy(old, core->peers, sizeof(old));
	memcpy(old_ids, core->members, sizeof(old_ids));
	memset(core->peers, 0, sizeof(core->peers));
	for (size_t i = 0; i < count; i++) {
		core->members[i] = members[i];
		for (size_t j = 0; j < old_count; j++)
			if (old_ids[j] == members[i])
				core->peers[i] = old[j];
	}
	core->member_count = count;
	core->self_index = member_index(core, core->config.self_id);
	/* Masks are indexed by member: restart the counts that used them. */
	core->promise_mask = 0;
	core->prevote_mask = 0;
	for (size_t i = 0; i < HEARTBEAT_RING; i++)
		core->heartbeats[i].used = false;
	/* Committed slots too: catch_up reads their masks (peer_holds_committed). */
	for (uint64_t s = core->log_first; s < core->log_first + core->config.log_slots; s++) {
		struct log_slot *e = &core->log[s % core->config.log_slots];

		if (e->slot == s)
			e->ack_mask = 0;
	}
}

/* ---- the log window ---- */

static struct log_slot *log_at(struct paxos *core, uint64_t slot)
{
	struct log_slot *e;

	if (slot < core->log_first || slot >= core->log_first + core->config.log_slots)
		return NULL;
	e = &core->log[slot % core->config.log_slots];
	return e->slot == slot ? e : NULL;
}

static void log_slot_clear(struct log_slot *e)
{
	pvalue_put(e->value);
	memset(e, 0, sizeof(*e));
}

/* The record of slot, created empty if needed; NULL beyond the window. */
static struct log_slot *log_claim(struct paxos *core, uint64_t slot)
{
	struct log_slot *e;

	if (slot < core->log_first || slot >= core->log_first + core->config.log_slots)
		return NULL;
	e = &core->log[slot % core->config.log_slots];
	if (e->slot != slot) {
		/* A record left from before log_first: it was compacted logically. */
		assert(e->slot == 0 || e->slot < core->log_first);
		log_slot_clear(e);
		e->slot = slot;
	}
	if (slot > core->log_last)
		core->log_last = slot;
	return e;
}

static bool persist_queue_full(const struct paxos *core)
{
	return core->persist_count >= core->persist_cap;
}

/* Accepts (slot, ballot, value) as an acceptor: in the log and queued for persistence. */
static int log_accept(struct paxos *core, uint64_t slot, struct paxos_ballot ballot,
		      struct pvalue *value)
{
	struct log_slot *e;
	struct paxos_entry *p;

	if (persist_queue_full(core))
		return -ENOSPC;
	e = log_claim(core, slot);
	if (!e)
		return -ENOSPC;
	assert(!e->chosen && slot > core->commit_slot);
	pvalue_put(e->value);
	e->value = pvalue_get(value);
	e->ballot = ballot;
	e->persist_id = core->persist_next_id;
	e->ack_mask = 0;
	p = &core->persist_queue[core->persist_count];
	p->slot = slot;
	p->ballot = ballot;
	p->type = value->type;
	p->chosen = 0;
	p->value = value->data;
	p->value_bytes = value->size_bytes;
	core->persist_values[core->persist_count++] = pvalue_get(value);
	return 0;
}

static void hard_state_set(struct paxos *core, struct paxos_ballot promised)
{
	assert(paxos_ballot_compare(promised, core->promised) > 0);
	core->promised = promised;
	core->hard_state_dirty = true;
	core->hard_state_persist_id = core->persist_next_id;
	if (promised.round > core->round_seen_max)
		core->round_seen_max = promised.round;
}

/* The persist id a message must wait for before it leaves (0: none). */
static uint64_t wait_for(const struct paxos *core, uint64_t persist_id)
{
	return persist_id > core->persisted_id ? persist_id : 0;
}

/* ---- the outbox ---- */

static struct out_msg *out_new(struct paxos *core, uint32_t type, uint32_t to)
{
	struct out_msg *o;

	assert(to != core->config.self_id);
	if (core->outbox_count >= core->config.outbox_msgs) {
		core->counters.outbox_full++;
		return NULL;
	}
	o = &core->outbox[core->outbox_count++];
	memset(&o->msg, 0, sizeof(o->msg));
	o->msg.type = type;
	o->msg.from = core->config.self_id;
	o->msg.to = to;
	o->msg.commit_slot = core->commit_slot;
	if (core->joining)
		o->msg.flags = PAXOS_FLAG_JOINING;
	o->after_persist_id = 0;
	o->heap_entries = NULL;
	o->heap_values = NULL;
	o->snapshot = NULL;
	o->emitted = false;
	return o;
}

static void out_release(struct out_msg *o)
{
	struct pvalue **values = o->heap_values ? o->heap_values : o->inline_values;

	for (size_t i = 0; i < o->msg.entry_count; i++)
		pvalue_put(values[i]);
	free(o->heap_entries);
	free(o->heap_values);
	pvalue_put(o->snapshot);
	o->heap_entries = NULL;
	o->heap_values = NULL;
	o->snapshot = NULL;
	o->msg.entry_count = 0;
}

/* Drops the last message queued (a message that could not be completed). */
static void out_cancel_last(struct paxos *core)
{
	assert(core->outbox_count > 0);
	out_release(&core->outbox[--core->outbox_count]);
}

static int out_reserve(struct paxos *core, struct out_msg *o, size_t count)
{
	if (count <= PAXOS_BATCH_MAX)
		return 0;
	o->heap_entries = calloc(count, sizeof(*o->heap_entries));
	o->heap_values = calloc(count, sizeof(*o->heap_values));
	if (!o->heap_entries || !o->heap_values) {
		core->counters.no_memory++;
		return -ENOMEM;
	}
	return 0;
}

static void out_add_entry(struct out_msg *o, uint64_t slot, struct paxos_ballot ballot,
			  struct pvalue *value, bool chosen)
{
	struct paxos_entry *entries = o->heap_entries ? o->heap_entries : o->inline_entries;
	struct pvalue **values = o->heap_values ? o->heap_values : o->inline_values;
	struct paxos_entry *e = &entries[o->msg.entry_count];

	e->slot = slot;
	e->ballot = ballot;
	e->type = value->type;
	e->chosen = chosen;
	e->value = value->data;
	e->value_bytes = value->size_bytes;
	values[o->msg.entry_count++] = pvalue_get(value);
}

/* ---- commit ---- */

static bool config_apply(struct paxos *core, const struct pvalue *value);

static void step_down(struct paxos *core, uint32_t leader_hint);

/* Moves the commit index over every chosen slot that follows it. */
static void commit_advance(struct paxos *core)
{
	/* A new member does not know the configurations before it was added, so it cannot
	 * tell which of them took effect: it starts from a snapshot. */
	if (core->joining)
		return;
	for (;;) {
		struct log_slot *e = log_at(core, core->commit_slot + 1);

		if (!e || !e->chosen || !e->value)
			break;
		core->commit_slot++;
		if (e->value->type == PAXOS_ENTRY_CONFIG && !config_apply(core, e->value))
			e->config_void = true;
		/* The pending change is decided, in force or void: the next may come. */
		if (core->config_pending_slot && core->config_pending_slot <= core->commit_slot)
			core->config_pending_slot = 0;
	}
}

static bool config_change_ok(const struct paxos *core, const uint32_t *members, size_t count);

/* Makes a committed configuration the one in force, if it is one change from it: a
 * proposal is checked against the leader's configuration, but a later leader may recover
 * and re-propose it after other changes were chosen, and two changes at once could leave
 * an old and a new majority without a common member. Every node commits the same slots in
 * the same order, so every node (and its state machine, which gets a void one as a no-op)
 * decides alike. */
static bool config_apply(struct paxos *core, const struct pvalue *value)
{
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t count;

	if (paxos_config_decode(value->data, value->size_bytes, members, &count) != 0 ||
	    !config_change_ok(core, members, count)) {
		core->counters.configs_void++;
		return false;
	}
	members_set(core, members, count);
	config_remember(core, core->commit_slot);
	if (core->self_index < 0 && core->role != PAXOS_FOLLOWER)
		step_down(core, 0);
	return true;
}

/* Records that slot is chosen with value (learned from a peer or counted). */
static void log_learn(struct paxos *core, uint64_t slot, struct paxos_ballot ballot,
		      struct pvalue *value)
{
	struct log_slot *e = log_at(core, slot);

	if (slot <= core->commit_slot || (e && e->chosen))
		return;
	if (core->role == PAXOS_LEADER) {
		/* A chosen value that is not our own proposal, or beyond our slots, proves
		 * a higher ballot chose it: we are stale and must not commit anything more. */
		bool own = e && ballot_equal(e->ballot, core->ballot) && e->value &&
			   slot >= core->prepare_from;

		if (slot >= core->next_slot || (own && !pvalue_equal(e->value, value)))
			step_down(core, 0);
	}
	e = log_claim(core, slot);
	if (!e) {
		core->counters.window_full++;
		return;
	}
	if (e->value != value) {
		pvalue_put(e->value);
		e->value = pvalue_get(value);
		e->ballot = ballot;
	}
	e->chosen = true;
}

/* Leader: marks slot chosen once a majority durably accepted it at our ballot. */
static void leader_count(struct paxos *core, struct log_slot *e)
{
	if (e->chosen || !ballot_equal(e->ballot, core->ballot))
		return;
	if (e->persist_id <= core->persisted_id)
		e->ack_mask |= self_bit(core);
	if (mask_count(e->ack_mask) >= majority(core))
		e->chosen = true;
}

/* ---- sending ---- */

static void send_nack(struct paxos *core, uint32_t to)
{
	struct out_msg *o = out_new(core, PAXOS_MSG_NACK, to);

	if (o)
		o->msg.ballot = core->promised;
}

static void send_accept_batch(struct paxos *core, uint32_t to, const uint64_t *slots,
			      size_t count)
{
	struct out_msg *o = out_new(core, PAXOS_MSG_ACCEPT, to);

	if (!o)
		return;
	o->msg.ballot = core->ballot;
	for (size_t i = 0; i < count; i++) {
		struct log_slot *e = log_at(core, slots[i]);

		assert(e && e->value);
		out_add_entry(o, e->slot, e->ballot, e->value, false);
	}
}

/* Leader: (re)sends ACCEPT for every unchosen slot in [from, next_slot) that peer i has
 * not acknowledged, in batches. */
static void leader_send_accepts(struct paxos *core, size_t i, uint64_t from)
{
	uint64_t slots[PAXOS_BATCH_MAX];
	size_t count = 0;

	for (uint64_t s = from; s < core->next_slot; s++) {
		struct log_slot *e = log_at(core, s);

		if (!e || e->chosen || !ballot_equal(e->ballot, core->ballot) ||
		    (e->ack_mask & (1u << i)))
			continue;
		slots[count++] = s;
		if (count == PAXOS_BATCH_MAX) {
			send_accept_batch(core, core->members[i], slots, count);
			count = 0;
		}
	}
	if (count)
		send_accept_batch(core, core->members[i], slots, count);
}

static void send_snapshot(struct paxos *core, size_t i)
{
	const struct config_record *config;
	struct paxos_snapshot_ref ref;
	struct out_msg *o;

	if (!core->config.snapshot.get)
		return;
	if (core->peers[i].snapshot_tick &&
	    core->now_tick + 1 - core->peers[i].snapshot_tick < core->config.election_ticks)
		return;
	if (core->config.snapshot.get(core->config.snapshot.ctx, &ref) != 0)
		return;
	assert(ref.through_slot + 1 >= core->log_first);
	/* The receiver applies what follows the snapshot's slot against the configuration
	 * in force there, as everyone did. */
	config = config_at(core, ref.through_slot);
	if (!config)
		return;
	o = out_new(core, PAXOS_MSG_SNAPSHOT, core->members[i]);
	if (!o)
		return;
	o->snapshot = pvalue_new(PAXOS_ENTRY_NORMAL, ref.bytes, ref.size_bytes);
	if (!o->snapshot) {
		core->counters.no_memory++;
		out_cancel_last(core);
		return;
	}
	o->msg.ballot = core->promised;
	o->msg.slot = ref.through_slot;
	memcpy(o->msg.members, config->members, sizeof(config->members));
	o->msg.member_count = config->count;
	core->peers[i].snapshot_tick = core->now_tick + 1;
	core->counters.snapshots_sent++;
}

/* Leader: whether peer i durably accepted, at our ballot, every slot from first through
 * our commit index. It then holds their chosen values and lacks only the commit index. */
static bool peer_holds_committed(struct paxos *core, size_t i, uint64_t first)
{
	for (uint64_t s = first; s <= core->commit_slot; s++) {
		const struct log_slot *e = log_at(core, s);

		if (!e || !ballot_equal(e->ballot, core->ballot) || !(e->ack_mask & (1u << i)))
			return false;
	}
	return true;
}

/* Sends peer i the chosen slots it lacks (one batch per tick), or a snapshot if they are
 * compacted away. Any role: knowledge of chosen values is true whoever holds it. To a peer
 * that acknowledged them all a leader sends only its commit index, in an ACCEPT without
 * entries (at most once a tick): a LEARN would carry every value a second time. Followers
 * apply at once, so a read at any replica soon after a write sees it. */
static void catch_up(struct paxos *core, size_t i)
{
	struct peer_state *p;
	struct out_msg *o;

	if (i == NO_PEER)
		return;
	p = &core->peers[i];
	if ((int)i == core->self_index || p->commit_slot >= core->commit_slot)
		return;
	if (p->commit_slot + 1 < core->log_first || p->joining) {
		send_snapshot(core, i);
		return;
	}
	if (p->learn_tick == core->now_tick + 1)
		return;
	if (core->role == PAXOS_LEADER && peer_holds_committed(core, i, p->commit_slot + 1)) {
		/* The commit index alone: an ACCEPT without entries. */
		send_accept_batch(core, core->members[i], NULL, 0);
		p->learn_tick = core->now_tick + 1;
		return;
	}
	o = out_new(core, PAXOS_MSG_LEARN, core->members[i]);
	if (!o)
		return;
	o->msg.ballot = core->promised;
	for (uint64_t s = p->commit_slot + 1;
	     s <= core->commit_slot && o->msg.entry_count < PAXOS_BATCH_MAX; s++) {
		struct log_slot *e = log_at(core, s);

		assert(e && e->chosen && e->value);
		out_add_entry(o, s, e->ballot, e->value, true);
	}
	p->learn_tick = core->now_tick + 1;
}

static void peer_note_commit(struct paxos *core, size_t i, uint64_t commit_slot)
{
	if (i != NO_PEER)
		core->peers[i].commit_slot = commit_slot;
}

/* The sender's member index now. A handler that commits a configuration renumbers the
 * members (members_set), so an index taken before the commit may name another member. */
static size_t peer_index(const struct paxos *core, uint32_t id)
{
	int i = member_index(core, id);

	return i >= 0 ? (size_t)i : NO_PEER;
}

/* ---- roles ---- */

static void recover_reset(struct paxos *core)
{
	for (uint32_t i = 0; i < core->config.log_slots; i++) {
		pvalue_put(core->recover[i].value);
		memset(&core->recover[i], 0, sizeof(core->recover[i]));
	}
	core->recover_slot_max = 0;
}

static void step_down(struct paxos *core, uint32_t leader_hint)
{
	if (core->role == PAXOS_CANDIDATE)
		recover_reset(core);
	if (core->role == PAXOS_LEADER)
		core->leader_contact_tick = core->now_tick;	/* our own lease guard */
	core->role = PAXOS_FOLLOWER;
	core->lease_until_tick = 0;
	core->config_pending_slot = 0;
	core->leader_id = leader_hint;
	election_timer_reset(core);
}

/* Follows the leader of ballot b (its message is at least our promise). */
static void follow(struct paxos *core, struct paxos_ballot b)
{
	if (core->role != PAXOS_FOLLOWER)
		step_down(core, b.node_id);
	core->leader_id = b.node_id;
	core->leader_ballot = b;
	core->leader_contact_tick = core->now_tick;
	core->election_elapsed_ticks = 0;
}

static void broadcast_heartbeat(struct paxos *core)
{
	struct heartbeat_record *h = &core->heartbeats[core->heartbeat_next];

	core->heartbeat_next = (core->heartbeat_next + 1) % HEARTBEAT_RING;
	h->used = true;
	h->tick = core->now_tick;
	h->ack_mask = self_bit(core);
	if (mask_count(h->ack_mask) >= majority(core))
		core->lease_until_tick = h->tick + core->config.lease_ticks;
	core->heartbeat_elapsed_ticks = 0;
	for (size_t i = 0; i < core->member_count; i++) {
		struct out_msg *o;

		if ((int)i == core->self_index)
			continue;
		o = out_new(core, PAXOS_MSG_HEARTBEAT, core->members[i]);
		if (!o)
			continue;
		o->msg.ballot = core->ballot;
		o->msg.tick = core->now_tick;
	}
}

static void leader_advance(struct paxos *core)
{
	for (uint64_t s = core->commit_slot + 1; s < core->next_slot; s++) {
		struct log_slot *e = log_at(core, s);

		if (e)
			leader_count(core, e);
	}
	commit_advance(core);
}

static void become_leader(struct paxos *core)
{
	uint64_t end = core->recover_slot_max;

	if (core->log_last > end)
		end = core->log_last;
	if (end < core->prepare_from - 1)
		end = core->prepare_from - 1;
	/* Our own slots need as much room as everything recovered plus a no-op. */
	if (end + 1 >= core->log_first + core->config.log_slots ||
	    core->persist_count + (end + 2 - core->prepare_from) > core->persist_cap) {
		core->counters.window_full++;
		step_down(core, 0);
		return;
	}
	core->role = PAXOS_LEADER;
	core->leader_id = core->config.self_id;
	core->leader_ballot = core->ballot;
	core->leader_contact_tick = core->now_tick;
	core->lease_until_tick = 0;
	core->config_pending_slot = 0;
	core->quorum_elapsed_ticks = 0;
	for (size_t i = 0; i < HEARTBEAT_RING; i++)
		core->heartbeats[i].used = false;
	for (size_t i = 0; i < core->member_count; i++) {
		core->peers[i].heard = false;
		core->peers[i].learn_tick = 0;
	}
	for (uint64_t s = core->prepare_from; s <= end; s++) {
		struct log_slot *e = log_at(core, s);
		struct recover_slot *r = &core->recover[s % core->config.log_slots];
		struct pvalue *v = core->noop;
		struct paxos_ballot best = { 0, 0 };
		int rc;

		if (s <= core->commit_slot || (e && e->chosen))
			continue;
		if (e && e->value) {
			v = e->value;
			best = e->ballot;
		}
		if (r->present && paxos_ballot_compare(r->ballot, best) > 0)
			v = r->value;
		if (v->type == PAXOS_ENTRY_CONFIG)
			core->config_pending_slot = s;
		pvalue_get(v);	/* log_accept may drop the log's reference to v */
		rc = log_accept(core, s, core->ballot, v);
		pvalue_put(v);
		assert(rc == 0);
	}
	recover_reset(core);
	core->first_own_slot = end + 1;
	core->next_slot = end + 2;
	{
		int rc = log_accept(core, core->first_own_slot, core->ballot, core->noop);

		assert(rc == 0);
		(void)rc;
	}
	for (size_t i = 0; i < core->member_count; i++)
		if ((int)i != core->self_index)
			leader_send_accepts(core, i, core->prepare_from);
	broadcast_heartbeat(core);
	leader_advance(core);
}

static void candidate_try_win(struct paxos *core)
{
	uint32_t mask = core->promise_mask;

	if (core->role != PAXOS_CANDIDATE)
		return;
	if (core->hard_state_persist_id <= core->persisted_id)
		mask |= self_bit(core);
	if (mask_count(mask) >= majority(core))
		become_leader(core);
}

static void send_prepares(struct paxos *core)
{
	for (size_t i = 0; i < core->member_count; i++) {
		struct out_msg *o;

		if ((int)i == core->self_index)
			continue;
		o = out_new(core, PAXOS_MSG_PREPARE, core->members[i]);
		if (!o)
			continue;
		o->msg.ballot = core->ballot;
		o->msg.slot = core->prepare_from;
		o->msg.flags = core->prepare_flags;
		o->msg.transfer_ballot = core->transfer_ballot;
	}
}

static void start_election(struct paxos *core, const struct paxos_ballot *transfer)
{
	uint64_t round = core->promised.round > core->round_seen_max ?
			 core->promised.round : core->round_seen_max;

	recover_reset(core);
	core->role = PAXOS_CANDIDATE;
	core->leader_id = 0;
	core->ballot.round = round + 1;
	core->ballot.node_id = core->config.self_id;
	hard_state_set(core, core->ballot);
	core->prepare_from = core->commit_slot + 1;
	core->promise_mask = 0;
	core->prepare_flags = transfer ? PAXOS_FLAG_TRANSFER : 0;
	memset(&core->transfer_ballot, 0, sizeof(core->transfer_ballot));
	if (transfer)
		core->transfer_ballot = *transfer;
	core->counters.elections++;
	election_timer_reset(core);
	send_prepares(core);
	candidate_try_win(core);
}

static void start_prevote(struct paxos *core)
{
	core->role = PAXOS_PRECANDIDATE;
	core->prevote_mask = self_bit(core);
	election_timer_reset(core);
	if (mask_count(core->prevote_mask) >= majority(core)) {
		start_election(core, NULL);
		return;
	}
	for (size_t i = 0; i < core->member_count; i++)
		if ((int)i != core->self_index)
			(void)out_new(core, PAXOS_MSG_PREVOTE, core->members[i]);
}

/* ---- handlers ---- */

/* Would our lease guard refuse to promise a new ballot now? */
static bool lease_guarded(const struct paxos *core, const struct paxos_msg *m)
{
	if (core->role == PAXOS_LEADER)
		return true;
	if (core->now_tick >= core->leader_contact_tick + core->config.election_ticks)
		return false;
	/* A hand-off asked for by the very leader whose lease we protect. */
	return !((m->flags & PAXOS_FLAG_TRANSFER) &&
		 ballot_equal(m->transfer_ballot, core->leader_ballot));
}

static void on_prepare(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	int cmp = paxos_ballot_compare(m->ballot, core->promised);
	struct out_msg *o;
	size_t count = 0;
	uint64_t first;

	if (cmp < 0) {
		core->counters.msgs_stale++;
		send_nack(core, m->from);
		return;
	}
	if (cmp > 0 && lease_guarded(core, m)) {
		core->counters.msgs_guarded++;
		return;
	}
	if (m->slot < core->log_first) {
		/* We compacted slots the candidate lacks: it needs our snapshot first. */
		peer_note_commit(core, from, m->slot - 1);
		send_snapshot(core, from);
		return;
	}
	if (cmp > 0) {
		if (core->role != PAXOS_FOLLOWER)
			step_down(core, 0);
		hard_state_set(core, m->ballot);
		core->leader_id = 0;
		election_timer_reset(core);
	}
	first = m->slot;
	for (uint64_t s = first; s <= core->log_last; s++) {
		struct log_slot *e = log_at(core, s);

		if (e && e->value)
			count++;
	}
	o = out_new(core, PAXOS_MSG_PROMISE, m->from);
	if (!o)
		return;
	if (out_reserve(core, o, count) != 0) {
		out_cancel_last(core);
		return;
	}
	o->msg.ballot = m->ballot;
	o->msg.slot = m->slot;
	for (uint64_t s = first; s <= core->log_last; s++) {
		struct log_slot *e = log_at(core, s);

		if (e && e->value)
			out_add_entry(o, s, e->ballot, e->value, e->chosen || s <= core->commit_slot);
	}
	/* The promise and the accepts it reports must be durable before it leaves. */
	o->after_persist_id = wait_for(core, core->hard_state_persist_id);
	for (size_t k = 0; k < o->msg.entry_count; k++) {
		struct log_slot *e = log_at(core, o->heap_entries ? o->heap_entries[k].slot :
					    o->inline_entries[k].slot);

		if (wait_for(core, e->persist_id) > o->after_persist_id)
			o->after_persist_id = e->persist_id;
	}
}

static void on_promise(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	uint32_t bit = 1u << from;

	if (core->role != PAXOS_CANDIDATE || !ballot_equal(m->ballot, core->ballot) ||
	    m->slot != core->prepare_from || (core->promise_mask & bit)) {
		core->counters.msgs_stale++;
		return;
	}
	for (size_t k = 0; k < m->entry_count; k++) {
		const struct paxos_entry *pe = &m->entries[k];

		if (pe->slot >= core->log_first + core->config.log_slots) {
			/* We cannot hold what it reports: ignore this promise (our log must
			 * be compacted or caught up first). */
			core->counters.window_full++;
			return;
		}
	}
	for (size_t k = 0; k < m->entry_count; k++) {
		const struct paxos_entry *pe = &m->entries[k];
		struct recover_slot *r;
		struct pvalue *v;

		if (pe->slot < core->prepare_from || pe->slot <= core->commit_slot)
			continue;
		r = &core->recover[pe->slot % core->config.log_slots];
		if (!pe->chosen && r->present && paxos_ballot_compare(pe->ballot, r->ballot) <= 0)
			continue;
		v = pvalue_new(pe->type, pe->value, pe->value_bytes);
		if (!v) {
			core->counters.no_memory++;
			return;		/* not counted: a later promise or election will do */
		}
		if (pe->chosen) {
			log_learn(core, pe->slot, pe->ballot, v);
		} else {
			pvalue_put(r->value);
			r->value = pvalue_get(v);
			r->ballot = pe->ballot;
			r->present = true;
			if (pe->slot > core->recover_slot_max)
				core->recover_slot_max = pe->slot;
		}
		pvalue_put(v);
	}
	commit_advance(core);
	from = peer_index(core, m->from);
	if (from != NO_PEER)
		core->promise_mask |= 1u << from;
	peer_note_commit(core, from, m->commit_slot);
	candidate_try_win(core);
}

static void on_nack(struct paxos *core, const struct paxos_msg *m)
{
	if (m->ballot.round > core->round_seen_max)
		core->round_seen_max = m->ballot.round;
	if ((core->role == PAXOS_CANDIDATE || core->role == PAXOS_LEADER) &&
	    paxos_ballot_compare(m->ballot, core->ballot) > 0)
		step_down(core, 0);
}

/* Accepts the ballot of a leader's message: returns false if it is stale (nacked). */
static bool accept_leader_ballot(struct paxos *core, const struct paxos_msg *m)
{
	int cmp = paxos_ballot_compare(m->ballot, core->promised);

	if (cmp < 0) {
		core->counters.msgs_stale++;
		send_nack(core, m->from);
		return false;
	}
	if (cmp > 0) {
		if (core->role != PAXOS_FOLLOWER)
			step_down(core, m->ballot.node_id);
		hard_state_set(core, m->ballot);
	}
	follow(core, m->ballot);
	return true;
}

/* Follower: commits what the leader of ballot b says is committed and we hold at b. */
static void follower_commit(struct paxos *core, uint64_t leader_commit, struct paxos_ballot b)
{
	for (uint64_t s = core->commit_slot + 1; s <= leader_commit; s++) {
		struct log_slot *e = log_at(core, s);

		if (!e || !e->value || (!e->chosen && !ballot_equal(e->ballot, b)))
			break;
		e->chosen = true;
	}
	commit_advance(core);
}

static void on_accept(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	struct out_msg *o;
	uint64_t after;

	if (!accept_leader_ballot(core, m))
		return;
	o = out_new(core, PAXOS_MSG_ACCEPTED, m->from);
	if (o)
		o->msg.ballot = m->ballot;
	after = wait_for(core, core->hard_state_persist_id);
	for (size_t k = 0; k < m->entry_count; k++) {
		const struct paxos_entry *pe = &m->entries[k];
		struct log_slot *e = log_at(core, pe->slot);
		struct pvalue *v;

		if (pe->slot <= core->commit_slot || (e && e->chosen))
			continue;
		if (!(e && e->value && ballot_equal(e->ballot, m->ballot))) {
			if (persist_queue_full(core) || !log_claim(core, pe->slot)) {
				core->counters.window_full++;
				continue;
			}
			v = pvalue_new(pe->type, pe->value, pe->value_bytes);
			if (!v) {
				core->counters.no_memory++;
				continue;
			}
			if (log_accept(core, pe->slot, m->ballot, v) != 0)
				core->counters.window_full++;
			pvalue_put(v);
			e = log_at(core, pe->slot);
			if (!e || !ballot_equal(e->ballot, m->ballot))
				continue;
		}
		if (wait_for(core, e->persist_id) > after)
			after = e->persist_id;
		if (o)
			o->msg.slots[o->msg.slot_count++] = pe->slot;
	}
	follower_commit(core, m->commit_slot, m->ballot);
	if (o) {
		o->msg.commit_slot = core->commit_slot;
		o->after_persist_id = after;
	}
	from = peer_index(core, m->from);
	peer_note_commit(core, from, m->commit_slot);
	catch_up(core, from);
}

static void on_accepted(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	peer_note_commit(core, from, m->commit_slot);
	if (core->role != PAXOS_LEADER || !ballot_equal(m->ballot, core->ballot)) {
		catch_up(core, from);
		return;
	}
	core->peers[from].heard = true;
	for (size_t k = 0; k < m->slot_count; k++) {
		struct log_slot *e = log_at(core, m->slots[k]);

		if (!e || m->slots[k] <= core->commit_slot || m->slots[k] >= core->next_slot)
			continue;
		if (ballot_equal(e->ballot, core->ballot))
			e->ack_mask |= 1u << from;
		leader_count(core, e);
	}
	commit_advance(core);
	catch_up(core, peer_index(core, m->from));
}

static void on_heartbeat(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	struct out_msg *o;

	if (!accept_leader_ballot(core, m))
		return;
	follower_commit(core, m->commit_slot, m->ballot);
	o = out_new(core, PAXOS_MSG_HEARTBEAT_ACK, m->from);
	if (o) {
		o->msg.ballot = m->ballot;
		o->msg.tick = m->tick;
		o->after_persist_id = wait_for(core, core->hard_state_persist_id);
	}
	from = peer_index(core, m->from);
	peer_note_commit(core, from, m->commit_slot);
	catch_up(core, from);
}

static void on_heartbeat_ack(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	peer_note_commit(core, from, m->commit_slot);
	if (core->role != PAXOS_LEADER || !ballot_equal(m->ballot, core->ballot))
		return;
	core->peers[from].heard = true;
	for (size_t i = 0; i < HEARTBEAT_RING; i++) {
		struct heartbeat_record *h = &core->heartbeats[i];
		uint64_t until;

		if (!h->used || h->tick != m->tick)
			continue;
		h->ack_mask |= 1u << from;
		until = h->tick + core->config.lease_ticks;
		if (mask_count(h->ack_mask) >= majority(core) && until > core->lease_until_tick)
			core->lease_until_tick = until;
	}
	/* Slots it has not acknowledged are resent on the heartbeat tick; catch up here. */
	catch_up(core, from);
}

static void on_prevote(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	struct out_msg *o = out_new(core, PAXOS_MSG_PREVOTE_ACK, m->from);
	bool hear_leader = core->role == PAXOS_LEADER ||
		core->now_tick < core->leader_contact_tick + core->config.election_ticks;

	if (o && !hear_leader)
		o->msg.flags = PAXOS_FLAG_GRANTED;
	/* A replica that campaigns may be one that lags behind configurations it has not
	 * committed: it drops the messages of a leader it does not know yet, so only the
	 * members it knows can bring it up to date. */
	peer_note_commit(core, from, m->commit_slot);
	catch_up(core, from);
}

static void on_prevote_ack(struct paxos *core, size_t from, const struct paxos_msg *m)
{
	if (core->role != PAXOS_PRECANDIDATE || !(m->flags & PAXOS_FLAG_GRANTED))
		return;
	core->prevote_mask |= 1u << from;
	if (mask_count(core->prevote_mask) >= majority(core))
		start_election(core, NULL);
}

static void on_timeout_now(struct paxos *core, const struct paxos_msg *m)
{
	if (core->role != PAXOS_FOLLOWER || !ballot_equal(m->ballot, core->promised) ||
	    !ballot_equal(m->ballot, core->leader_ballot) || core->self_index < 0 ||
	    core->joining) {
		core->counters.msgs_stale++;
		return;
	}
	start_election(core, &m->ballot);
}

static void on_learn(struct paxos *core, const struct paxos_msg *m)
{
	struct out_msg *o;

	for (size_t k = 0; k < m->entry_count; k++) {
		const struct paxos_entry *pe = &m->entries[k];
		struct pvalue *v;

		if (pe->slot <= core->commit_slot)
			continue;
		v = pvalue_new(pe->type, pe->value, pe->value_bytes);
		if (!v) {
			core->counters.no_memory++;
			break;
		}
		log_learn(core, pe->slot, pe->ballot, v);
		pvalue_put(v);
	}
	commit_advance(core);
	if (core->role == PAXOS_LEADER)
		leader_advance(core);
	peer_note_commit(core, peer_index(core, m->from), m->commit_slot);
	/* Tell the sender where we are, so it sends the next batch. */
	o = out_new(core, PAXOS_MSG_ACCEPTED, m->from);
	if (o)
		o->msg.ballot = core->promised;
}

static void on_snapshot(struct paxos *core, const struct paxos_msg *m)
{
	struct pvalue *snap;
	struct out_msg *o;

	if (m->slot > core->commit_slot) {
		uint32_t members[PAXOS_MEMBERS_MAX];

		snap = pvalue_new(PAXOS_ENTRY_NORMAL, m->snapshot, m->snapshot_bytes);
		if (!snap) {
			core->counters.no_memory++;
			return;
		}
		/* A leader cannot check a snapshot against its own proposals: it is behind,
		 * hence stale; it gives up leadership first. */
		if (core->role == PAXOS_LEADER)
			step_down(core, 0);
		pvalue_put(core->snapshot_install);
		core->snapshot_install = snap;
		core->snapshot_through = m->slot;
		memcpy(members, m->members, sizeof(members));
		memcpy(core->snapshot_members, members, sizeof(members));
		core->snapshot_member_count = m->member_count;
		for (uint64_t s = core->log_first; s <= m->slot && s <= core->log_last; s++) {
			struct log_slot *e = &core->log[s % core->config.log_slots];

			if (e->slot == s)
				log_slot_clear(e);
		}
		core->log_first = m->slot + 1;
		if (core->log_last < m->slot)
			core->log_last = m->slot;
		core->commit_slot = m->slot;
		members_set(core, members, m->member_count);
		config_remember(core, m->slot);
		/* A snapshot from before the change that adds this node (a deposed leader's)
		 * leaves it joining: the one from the current leader comes next. */
		if (core->self_index >= 0)
			core->joining = false;
		commit_advance(core);
		core->counters.snapshots_installed++;
		if (core->role == PAXOS_CANDIDATE) {
			/* Prepare again, same ballot, from our new first unknown slot. */
			recover_reset(core);
			core->promise_mask = 0;
			core->prepare_from = core->commit_slot + 1;
			send_prepares(core);
			candidate_try_win(core);
		}
	}
	peer_note_commit(core, peer_index(core, m->from), m->slot);
	o = out_new(core, PAXOS_MSG_ACCEPTED, m->from);
	if (o)
		o->msg.ballot = core->promised;
}

/* Checks what a peer sent before anything of it is used. */
static bool msg_valid(const struct paxos *core, const struct paxos_msg *m)
{
	if (!m || m->to != core->config.self_id || m->from == core->config.self_id)
		return false;
	/* From a member only; but a new member's list may predate the configuration that
	 * leads now: it hears a leader's heartbeat (whose answer tells the leader it wants a
	 * snapshot) and a snapshot from anyone. */
	if (member_index(core, m->from) < 0 &&
	    !(core->joining && (m->type == PAXOS_MSG_HEARTBEAT || m->type == PAXOS_MSG_SNAPSHOT)))
		return false;
	if (m->type < PAXOS_MSG_PREPARE || m->type > PAXOS_MSG_SNAPSHOT)
		return false;
	if (m->slot_count > PAXOS_BATCH_MAX || m->member_count > PAXOS_MEMBERS_MAX)
		return false;
	if (m->entry_count && !m->entries)
		return false;
	if (m->entry_count > (m->type == PAXOS_MSG_PROMISE ? PAXOS_PROMISE_ENTRIES_MAX :
			      PAXOS_BATCH_MAX))
		return false;
	if (m->entry_count && m->type != PAXOS_MSG_PROMISE && m->type != PAXOS_MSG_ACCEPT &&
	    m->type != PAXOS_MSG_LEARN)
		return false;
	for (size_t k = 0; k < m->entry_count; k++) {
		const struct paxos_entry *e = &m->entries[k];
		uint32_t members[PAXOS_MEMBERS_MAX];
		size_t count;

		if (e->slot == 0 || e->slot == UINT64_MAX || e->type > PAXOS_ENTRY_CONFIG ||
		    e->value_bytes > PAXOS_VALUE_BYTES_MAX || (e->value_bytes && !e->value))
			return false;
		if (e->type == PAXOS_ENTRY_CONFIG &&
		    paxos_config_decode(e->value, e->value_bytes, members, &count) != 0)
			return false;
	}
	switch (m->type) {
	case PAXOS_MSG_PREPARE:
	case PAXOS_MSG_ACCEPT:
	case PAXOS_MSG_HEARTBEAT:
	case PAXOS_MSG_TIMEOUT_NOW:
		/* A proposer speaks for its own ballot only. */
		if (m->ballot.node_id != m->from || m->ballot.round == 0)
			return false;
		if (m->type == PAXOS_MSG_PREPARE && m->slot == 0)
			return false;
		break;
	case PAXOS_MSG_SNAPSHOT:
		if (m->slot == 0 || (m->snapshot_bytes && !m->snapshot) ||
		    m->member_count == 0)
			return false;
		for (size_t i = 0; i < m->member_count; i++)
			if (m->members[i] == 0)
				return false;
		break;
	default:
		break;
	}
	return true;
}

int paxos_step(struct paxos *core, const struct paxos_msg *m)
{
	int from;

	assert(!core->ready_outstanding);
	if (!msg_valid(core, m)) {
		core->counters.msgs_malformed++;
		return -EINVAL;
	}
	from = member_index(core, m->from);
	if (from >= 0)
		core->peers[from].joining = (m->flags & PAXOS_FLAG_JOINING) != 0;
	else
		from = (int)NO_PEER;	/* msg_valid let a joining node hear it */
	if (m->ballot.round > core->round_seen_max && m->type != PAXOS_MSG_PREVOTE)
		core->round_seen_max = m->ballot.round;
	switch (m->type) {
	case PAXOS_MSG_PREPARE:
		on_prepare(core, (size_t)from, m);
		break;
	case PAXOS_MSG_PROMISE:
		on_promise(core, (size_t)from, m);
		break;
	case PAXOS_MSG_NACK:
		on_nack(core, m);
		break;
	case PAXOS_MSG_ACCEPT:
		on_accept(core, (size_t)from, m);
		break;
	case PAXOS_MSG_ACCEPTED:
		on_accepted(core, (size_t)from, m);
		break;
	case PAXOS_MSG_HEARTBEAT:
		on_heartbeat(core, (size_t)from, m);
		break;
	case PAXOS_MSG_HEARTBEAT_ACK:
		on_heartbeat_ack(core, (size_t)from, m);
		break;
	case PAXOS_MSG_PREVOTE:
		on_prevote(core, (size_t)from, m);
		break;
	case PAXOS_MSG_PREVOTE_ACK:
		on_prevote_ack(core, (size_t)from, m);
		break;
	case PAXOS_MSG_TIMEOUT_NOW:
		on_timeout_now(core, m);
		break;
	case PAXOS_MSG_LEARN:
		on_learn(core, m);
		break;
	case PAXOS_MSG_SNAPSHOT:
		on_snapshot(core, m);
		break;
	}
	assert(core->commit_slot + 1 >= core->log_first);
	return 0;
}

/* ---- time ---- */

static void leader_tick(struct paxos *core)
{
	if (++core->heartbeat_elapsed_ticks >= core->config.heartbeat_ticks) {
		broadcast_heartbeat(core);
		for (size_t i = 0; i < core->member_count; i++)
			if ((int)i != core->self_index)
				leader_send_accepts(core, i, core->commit_slot + 1);
	}
	if (++core->quorum_elapsed_ticks >= core->config.election_ticks) {
		uint32_t heard = self_bit(core);

		for (size_t i = 0; i < core->member_count; i++) {
			if (core->peers[i].heard)
				heard |= 1u << i;
			core->peers[i].heard = false;
		}
		core->quorum_elapsed_ticks = 0;
		if (mask_count(heard) < majority(core))
			step_down(core, 0);
	}
}

void paxos_tick(struct paxos *core)
{
	assert(!core->ready_outstanding);
	core->now_tick++;
	if (core->role == PAXOS_LEADER) {
		core->leader_contact_tick = core->now_tick;
		leader_tick(core);
		return;
	}
	if (core->self_index < 0 || core->joining)
		return;		/* removed, or without state yet: never campaigns */
	if (++core->election_elapsed_ticks < core->election_timeout_ticks)
		return;
	/* Also a hand-off or an election that did not finish: ask again (pre-vote first). */
	start_prevote(core);
}

/* ---- application calls ---- */

static bool config_change_ok(const struct paxos *core, const uint32_t *members, size_t count)
{
	size_t common = 0;

	for (size_t i = 0; i < count; i++)
		if (member_index(core, members[i]) >= 0)
			common++;
	/* Exactly one member added or removed. */
	return (count == core->member_count + 1 && common == core->member_count) ||
	       (count + 1 == core->member_count && common == count);
}

int paxos_propose(struct paxos *core, uint32_t type, const void *value, size_t value_bytes,
		  uint64_t *slot_out, uint32_t *leader_hint)
{
	struct pvalue *v;
	uint64_t slot;

	assert(!core->ready_outstanding);
	if (leader_hint)
		*leader_hint = core->leader_id;
	if (core->role != PAXOS_LEADER)
		return -EREMOTE;
	if (type > PAXOS_ENTRY_CONFIG || value_bytes > PAXOS_VALUE_BYTES_MAX ||
	    (value_bytes && !value))
		return -EINVAL;
	if (type == PAXOS_ENTRY_CONFIG) {
		uint32_t members[PAXOS_MEMBERS_MAX];
		size_t count;

		if (paxos_config_decode(value, value_bytes, members, &count) != 0 ||
		    !config_change_ok(core, members, count))
			return -EINVAL;
	}
	/* As with Raft's single-server changes, a leader changes the configuration only once
	 * its own first slot is committed: every configuration it could have missed is then
	 * behind it. */
	if (type == PAXOS_ENTRY_CONFIG && core->commit_slot < core->first_own_slot)
		return -EAGAIN;
	slot = core->next_slot;
	if (core->config_pending_slot || slot - core->commit_slot > core->config.window_slots ||
	    slot >= core->log_first + core->config.log_slots || persist_queue_full(core))
		return -EAGAIN;
	v = pvalue_new(type, value, value_bytes);
	if (!v)
		return -ENOMEM;
	if (log_accept(core, slot, core->ballot, v) != 0) {
		pvalue_put(v);
		return -EAGAIN;
	}
	pvalue_put(v);
	core->next_slot++;
	if (type == PAXOS_ENTRY_CONFIG)
		core->config_pending_slot = slot;
	for (size_t i = 0; i < core->member_count; i++)
		if ((int)i != core->self_index)
			send_accept_batch(core, core->members[i], &slot, 1);
	if (slot_out)
		*slot_out = slot;
	return 0;
}

static bool lease_valid(const struct paxos *core)
{
	return core->role == PAXOS_LEADER && core->now_tick < core->lease_until_tick;
}

int paxos_lease_read(struct paxos *core, uint64_t read_id, uint32_t *leader_hint)
{
	assert(!core->ready_outstanding);
	if (leader_hint)
		*leader_hint = core->leader_id;
	if (core->role != PAXOS_LEADER)
		return -EREMOTE;
	if (!lease_valid(core) || core->commit_slot < core->first_own_slot ||
	    core->read_count >= core->read_cap)
		return -EAGAIN;
	core->reads[core->read_count].read_id = read_id;
	core->reads[core->read_count].read_slot = core->commit_slot;
	core->read_count++;
	return 0;
}

int paxos_transfer_leadership(struct paxos *core, uint32_t to)
{
	struct out_msg *o;

	assert(!core->ready_outstanding);
	if (core->role != PAXOS_LEADER)
		return -EREMOTE;
	if (to == core->config.self_id || member_index(core, to) < 0)
		return -EINVAL;
	o = out_new(core, PAXOS_MSG_TIMEOUT_NOW, to);
	if (!o)
		return -EAGAIN;
	o->msg.ballot = core->ballot;
	/* We never serve this ballot's lease again, so the target may skip the guard. */
	step_down(core, to);
	core->leader_ballot = core->ballot;
	return 0;
}

void paxos_persisted(struct paxos *core, uint64_t persist_id)
{
	assert(!core->ready_outstanding);
	assert(persist_id < core->persist_next_id);
	if (persist_id <= core->persisted_id)
		return;
	core->persisted_id = persist_id;
	if (core->role == PAXOS_LEADER)
		leader_advance(core);
	else if (core->role == PAXOS_CANDIDATE)
		candidate_try_win(core);
}

int paxos_compact(struct paxos *core, uint64_t through_slot)
{
	assert(!core->ready_outstanding);
	if (through_slot > core->applied_slot)
		return -EINVAL;
	for (uint64_t s = core->log_first; s <= through_slot; s++) {
		struct log_slot *e = &core->log[s % core->config.log_slots];

		if (e->slot == s)
			log_slot_clear(e);
	}
	if (through_slot + 1 > core->log_first)
		core->log_first = through_slot + 1;
	return 0;
}

/* ---- Ready / Advance ---- */

bool paxos_has_ready(const struct paxos *core)
{
	if (core->hard_state_dirty || core->persist_count || core->read_count ||
	    core->snapshot_install || core->commit_slot > core->applied_slot)
		return true;
	for (size_t i = 0; i < core->outbox_count; i++)
		if (core->outbox[i].after_persist_id <= core->persisted_id)
			return true;
	return false;
}

void paxos_ready(struct paxos *core, struct paxos_ready *ready)
{
	uint64_t from;
	size_t n = 0;

	assert(!core->ready_outstanding);
	memset(ready, 0, sizeof(*ready));
	core->ready_outstanding = true;
	for (size_t i = 0; i < core->outbox_count; i++) {
		struct out_msg *o = &core->outbox[i];

		if (o->after_persist_id > core->persisted_id)
			continue;
		o->emitted = true;
		core->ready_msgs[n] = o->msg;
		core->ready_msgs[n].entries = o->heap_entries ? o->heap_entries :
					      o->inline_entries;
		if (o->snapshot) {
			core->ready_msgs[n].snapshot = o->snapshot->data;
			core->ready_msgs[n].snapshot_bytes = o->snapshot->size_bytes;
		}
		n++;
	}
	ready->msgs = core->ready_msgs;
	ready->msg_count = n;

	ready->hard_state_changed = core->hard_state_dirty;
	ready->promised = core->promised;
	ready->entries = core->persist_queue;
	ready->entry_count = core->persist_count;
	core->ready_persist_count = core->persist_count;
	if (core->hard_state_dirty || core->persist_count)
		ready->persist_id = core->persist_next_id;

	from = core->applied_slot + 1;
	if (core->snapshot_install) {
		ready->has_snapshot = true;
		ready->snapshot.through_slot = core->snapshot_through;
		ready->snapshot.bytes = core->snapshot_install->data;
		ready->snapshot.size_bytes = core->snapshot_install->size_bytes;
		ready->snapshot_members = core->snapshot_members;
		ready->snapshot_member_count = core->snapshot_member_count;
		if (core->snapshot_through + 1 > from)
			from = core->snapshot_through + 1;
	}
	n = 0;
	for (uint64_t s = from; s <= core->commit_slot; s++) {
		struct log_slot *e = log_at(core, s);
		struct paxos_entry *c = &core->ready_committed[n++];

		assert(e && e->chosen && e->value);
		c->slot = s;
		c->ballot = e->ballot;
		c->type = e->config_void ? PAXOS_ENTRY_NOOP : e->value->type;
		c->chosen = 1;
		c->value = e->config_void ? NULL : e->value->data;
		c->value_bytes = e->config_void ? 0 : e->value->size_bytes;
	}
	ready->committed = core->ready_committed;
	ready->committed_count = n;
	core->ready_commit_through = core->commit_slot;

	ready->reads = core->reads;
	ready->read_count = core->read_count;
	core->ready_read_count = core->read_count;
}

void paxos_advance(struct paxos *core, const struct paxos_ready *ready)
{
	size_t kept = 0;

	assert(core->ready_outstanding);
	core->ready_outstanding = false;
	for (size_t i = 0; i < core->outbox_count; i++) {
		struct out_msg *o = &core->outbox[i];

		if (o->emitted) {
			out_release(o);
			continue;
		}
		if (kept != i)
			core->outbox[kept] = *o;
		kept++;
	}
	core->outbox_count = kept;

	if (ready->persist_id) {
		assert(ready->persist_id == core->persist_next_id);
		core->persist_next_id++;
		for (size_t i = 0; i < core->ready_persist_count; i++)
			pvalue_put(core->persist_values[i]);
		assert(core->ready_persist_count == core->persist_count);
		core->persist_count = 0;
		core->hard_state_dirty = false;
	}
	if (ready->has_snapshot) {
		pvalue_put(core->snapshot_install);
		core->snapshot_install = NULL;
		if (core->snapshot_through > core->applied_slot)
			core->applied_slot = core->snapshot_through;
	}
	if (core->ready_commit_through > core->applied_slot)
		core->applied_slot = core->ready_commit_through;
	assert(core->applied_slot <= core->commit_slot);

	core->read_count = 0;
}

void paxos_status(const struct paxos *core, struct paxos_status *status)
{
	memset(status, 0, sizeof(*status));
	status->self_id = core->config.self_id;
	status->role = core->role;
	status->leader_id = core->leader_id;
	status->promised = core->promised;
	status->ballot = core->ballot;
	status->commit_slot = core->commit_slot;
	status->applied_slot = core->applied_slot;
	status->log_first_slot = core->log_first;
	status->next_slot = core->role == PAXOS_LEADER ? core->next_slot : 0;
	status->lease_valid = lease_valid(core);
	memcpy(status->members, core->members, sizeof(status->members));
	status->member_count = core->member_count;
	for (size_t i = 0; i < core->member_count; i++) {
		bool self = (int)i == core->self_index;

		status->member_commit_slot[i] = self ? core->commit_slot : core->peers[i].commit_slot;
		status->member_joining[i] = self ? core->joining : core->peers[i].joining;
	}
	status->config_pending = core->config_pending_slot != 0;
	if (core->config_history_next)
		status->config_slot = core->config_history[(core->config_history_next - 1) %
							   CONFIG_HISTORY].slot;
	status->counters = core->counters;
}

/* ---- create / destroy ---- */

static int config_check(const struct paxos_config *c)
{
	if (c->self_id == 0 || c->member_count == 0 || c->member_count > PAXOS_MEMBERS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < c->member_count; i++) {
		if (c->members[i] == 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (c->members[i] == c->members[j])
				return -EINVAL;
	}
	if (c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
	    c->heartbeat_ticks >= c->election_ticks || c->lease_ticks == 0 ||
	    c->lease_ticks >= c->election_ticks || c->window_slots == 0 ||
	    c->log_slots <= 2 * (uint64_t)c->window_slots + 2 || c->outbox_msgs < 8)
		return -EINVAL;
	return 0;
}

static int restore_apply(struct paxos *core, const struct paxos_restore *r)
{
	core->promised = r->promised;
	core->round_seen_max = r->promised.round;
	core->applied_slot = r->applied_slot;
	core->commit_slot = r->applied_slot;
	core->log_first = r->applied_slot + 1;
	core->log_last = r->applied_slot;
	if (r->entry_count && !r->entries)
		return -EINVAL;
	for (size_t k = 0; k < r->entry_count; k++) {
		const struct paxos_entry *pe = &r->entries[k];
		struct log_slot *e;
		struct pvalue *v;

		if (pe->slot <= r->applied_slot)
			continue;
		if (pe->type > PAXOS_ENTRY_CONFIG || (pe->value_bytes && !pe->value))
			return -EINVAL;
		e = log_claim(core, pe->slot);
		if (!e)
			return -EINVAL;	/* never accepted beyond the window */
		v = pvalue_new(pe->type, pe->value, pe->value_bytes);
		if (!v)
			return -ENOMEM;
		pvalue_put(e->value);
		e->value = v;
		e->ballot = pe->ballot;
		e->persist_id = 0;
	}
	return 0;
}

int paxos_create(struct paxos **out, const struct paxos_config *config,
		 const struct paxos_restore *restore)
{
	struct paxos *core;
	int rc;

	*out = NULL;
	rc = config_check(config);
	if (rc)
		return rc;
	core = calloc(1, sizeof(*core));
	if (!core)
		return -ENOMEM;
	core->config = *config;
	core->rng_state = config->seed ^ ((uint64_t)config->self_id << 32);
	core->log = calloc(config->log_slots, sizeof(*core->log));
	core->recover = calloc(config->log_slots, sizeof(*core->recover));
	core->persist_cap = 2 * (size_t)config->log_slots;
	core->persist_queue = calloc(core->persist_cap, sizeof(*core->persist_queue));
	core->persist_values = calloc(core->persist_cap, sizeof(*core->persist_values));
	core->outbox = calloc(config->outbox_msgs, sizeof(*core->outbox));
	core->ready_msgs = calloc(config->outbox_msgs, sizeof(*core->ready_msgs));
	core->ready_committed = calloc(config->log_slots, sizeof(*core->ready_committed));
	core->read_cap = config->outbox_msgs;
	core->reads = calloc(core->read_cap, sizeof(*core->reads));
	core->noop = pvalue_new(PAXOS_ENTRY_NOOP, NULL, 0);
	if (!core->log || !core->recover || !core->persist_queue || !core->persist_values ||
	    !core->outbox || !core->ready_msgs || !core->ready_committed || !core->reads ||
	    !core->noop) {
		paxos_destroy(core);
		return -ENOMEM;
	}
	core->persist_next_id = 1;
	core->log_first = 1;
	core->joining = config->joining;
	members_set(core, config->members, config->member_count);
	if (restore) {
		rc = restore_apply(core, restore);
		if (rc) {
			paxos_destroy(core);
			return rc;
		}
	}
	config_remember(core, core->commit_slot);
	/* A restarted node may have acknowledged a leader just before it died: it honours
	 * that lease as if the contact were now. */
	core->leader_contact_tick = 0;
	election_timer_reset(core);
	*out = core;
	return 0;
}

void paxos_destroy(struct paxos *core)
{
	if (!core)
		return;
	if (core->log)
		for (uint32_t i = 0; i < core->config.log_slots; i++)
			pvalue_put(core->log[i].value);
	if (core->recover)
		for (uint32_t i = 0; i < core->config.log_slots; i++)
			pvalue_put(core->recover[i].value);
	if (core->persist_values)
		for (size_t i = 0; i < core->persist_count; i++)
			pvalue_put(core->persist_values[i]);
	if (core->outbox)
		for (size_t i = 0; i < core->outbox_count; i++)
			out_release(&core->outbox[i]);
	pvalue_put(core->snapshot_install);
	pvalue_put(core->noop);
	free(core->log);
	free(core->recover);
	free(core->persist_queue);
	free(core->persist_values);
	free(core->outbox);
	free(core->ready_msgs);
	free(core->ready_committed);
	free(core->reads);
	free(core);
}
