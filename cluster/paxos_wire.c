/* paxos_wire.c: struct paxos_msg <-> PaxosMessage (quorum.proto). See paxos_wire.h for the
 * checks a decoded message passes. */
#include "cluster/paxos_wire.h"

#include "quorum.pb-c.h"

#include <errno.h>
#include <string.h>

/* How many entries the core takes in a message of this type (0: none). */
static size_t entries_max(uint32_t type)
{
	switch (type) {
	case PAXOS_MSG_PROMISE:
		return PAXOS_PROMISE_ENTRIES_MAX;
	case PAXOS_MSG_ACCEPT:
	case PAXOS_MSG_LEARN:
		return PAXOS_BATCH_MAX;
	default:
		return 0;
	}
}

static bool type_known(uint32_t type)
{
	return type >= PAXOS_MSG_PREPARE && type <= PAXOS_MSG_SNAPSHOT;
}

/* The bounds both sides enforce on counts and sizes. */
static int bounds_check(uint32_t type, uint32_t from, uint32_t to, size_t entry_count,
			size_t slot_count, size_t member_count, size_t snapshot_bytes)
{
	if (!type_known(type) || from == 0 || to == 0)
		return -EINVAL;
	if (entry_count > entries_max(type) || slot_count > PAXOS_BATCH_MAX ||
	    member_count > PAXOS_MEMBERS_MAX || snapshot_bytes > PAXOS_WIRE_SNAPSHOT_BYTES_MAX)
		return -EINVAL;
	return 0;
}

static bool entry_ok(uint64_t slot, uint32_t type, size_t value_bytes)
{
	return slot != 0 && type <= PAXOS_ENTRY_CONFIG && value_bytes <= PAXOS_VALUE_BYTES_MAX;
}

int paxos_wire_encode(const struct paxos_wire_group *group, const struct paxos_msg *msg,
		      struct arena *arena, uint8_t **out, size_t *size_bytes)
{
	Quorum__PaxosMessage wire = QUORUM__PAXOS_MESSAGE__INIT;
	Quorum__PaxosBallot ballot = QUORUM__PAXOS_BALLOT__INIT;
	Quorum__PaxosBallot transfer = QUORUM__PAXOS_BALLOT__INIT;
	Quorum__PaxosEntry *entries = NULL;
	uint64_t slots[PAXOS_BATCH_MAX];
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t packed_bytes;
	int rc;

	*out = NULL;
	*size_bytes = 0;
	rc = bounds_check(msg->type, msg->from, msg->to, msg->entry_count, msg->slot_count,
			  msg->member_count, msg->snapshot_bytes);
	if (rc)
		return rc;
	if ((msg->entry_count && !msg->entries) || (msg->snapshot_bytes && !msg->snapshot))
		return -EINVAL;
	wire.version = PAXOS_WIRE_VERSION;
	wire.table_id = group->table_id;
	wire.partition_id = group->partition_id;
	wire.type = msg->type;
	wire.from = msg->from;
	wire.to = msg->to;
	ballot.round = msg->ballot.round;
	ballot.node_id = msg->ballot.node_id;
	wire.ballot = &ballot;
	wire.has_slot = msg->slot != 0;
	wire.slot = msg->slot;
	wire.has_commit_slot = msg->commit_slot != 0;
	wire.commit_slot = msg->commit_slot;
	wire.has_tick = msg->tick != 0;
	wire.tick = msg->tick;
	wire.has_flags = msg->flags != 0;
	wire.flags = msg->flags;
	if (msg->transfer_ballot.round || msg->transfer_ballot.node_id) {
		transfer.round = msg->transfer_ballot.round;
		transfer.node_id = msg->transfer_ballot.node_id;
		wire.transfer_ballot = &transfer;
	}
	if (msg->entry_count) {
		entries = arena_alloc(arena, msg->entry_count * sizeof(*entries));
		wire.entries = arena_alloc(arena, msg->entry_count * sizeof(*wire.entries));
		if (!entries || !wire.entries)
			return -ENOMEM;
		for (size_t i = 0; i < msg->entry_count; i++) {
			const struct paxos_entry *e = &msg->entries[i];
			Quorum__PaxosEntry *w = &entries[i];
			Quorum__PaxosBallot *b = arena_alloc(arena, sizeof(*b));

			if (!b)
				return -ENOMEM;
			if (!entry_ok(e->slot, e->type, e->value_bytes) ||
			    (e->value_bytes && !e->value))
				return -EINVAL;
			quorum__paxos_ballot__init(b);
			b->round = e->ballot.round;
			b->node_id = e->ballot.node_id;
			quorum__paxos_entry__init(w);
			w->slot = e->slot;
			w->ballot = b;
			w->type = e->type;
			w->has_chosen = e->chosen != 0;
			w->chosen = e->chosen != 0;
			w->has_value = e->value_bytes != 0;
			w->value.len = e->value_bytes;
			w->value.data = (uint8_t *)e->value;
			wire.entries[i] = w;
		}
		wire.n_entries = msg->entry_count;
	}
	if (msg->slot_count) {
		memcpy(slots, msg->slots, msg->slot_count * sizeof(slots[0]));
		wire.slots = slots;
		wire.n_slots = msg->slot_count;
	}
	if (msg->member_count) {
		memcpy(members, msg->members, msg->member_count * sizeof(members[0]));
		wire.members = members;
		wire.n_members = msg->member_count;
	}
	if (msg->snapshot_bytes || msg->type == PAXOS_MSG_SNAPSHOT) {
		wire.has_snapshot = true;
		wire.snapshot.len = msg->snapshot_bytes;
		wire.snapshot.data = (uint8_t *)msg->snapshot;
	}
	packed_bytes = quorum__paxos_message__get_packed_size(&wire);
	*out = arena_alloc(arena, packed_bytes ? packed_bytes : 1);
	if (!*out)
		return -ENOMEM;
	*size_bytes = quorum__paxos_message__pack(&wire, *out);
	return 0;
}

static struct paxos_ballot ballot_from_wire(const Quorum__PaxosBallot *b)
{
	struct paxos_ballot out = { 0, 0 };

	if (b) {
		out.round = b->round;
		out.node_id = b->node_id;
	}
	return out;
}

int paxos_wire_decode(const uint8_t *data, size_t size_bytes, struct arena *arena,
		      struct paxos_wire_group *group, struct paxos_msg *msg)
{
	Quorum__PaxosMessage *wire;
	struct paxos_entry *entries = NULL;
	int rc;

	memset(msg, 0, sizeof(*msg));
	memset(group, 0, sizeof(*group));
	if (!data && size_bytes)
		return -EINVAL;
	wire = quorum__paxos_message__unpack(arena_protobuf_allocator(arena), size_bytes, data);
	if (!wire)
		return -EINVAL;	/* protobuf-c does not tell a parse error from no memory */
	if (wire->version < 1)
		return -EINVAL;
	rc = bounds_check(wire->type, wire->from, wire->to, wire->n_entries, wire->n_slots,
			  wire->n_members, wire->has_snapshot ? wire->snapshot.len : 0);
	if (rc)
		return rc;
	if (wire->n_entries) {
		entries = arena_alloc(arena, wire->n_entries * sizeof(*entries));
		if (!entries)
			return -ENOMEM;
		for (size_t i = 0; i < wire->n_entries; i++) {
			const Quorum__PaxosEntry *w = wire->entries[i];
			struct paxos_entry *e = &entries[i];

			if (!w->ballot || !entry_ok(w->slot, w->type, w->value.len))
				return -EINVAL;
			e->slot = w->slot;
			e->ballot = ballot_from_wire(w->ballot);
			e->type = w->type;
			e->chosen = w->has_chosen && w->chosen;
			e->value = w->value.len ? w->value.data : NULL;
			e->value_bytes = w->value.len;
		}
	}
	group->table_id = wire->table_id;
	group->partition_id = wire->partition_id;
	msg->type = wire->type;
	msg->from = wire->from;
	msg->to = wire->to;
	msg->ballot = ballot_from_wire(wire->ballot);
	msg->slot = wire->slot;
	msg->commit_slot = wire->commit_slot;
	msg->tick = wire->tick;
	msg->flags = wire->flags;
	msg->transfer_ballot = ballot_from_wire(wire->transfer_ballot);
	msg->entries = entries;
	msg->entry_count = wire->n_entries;
	if (wire->n_slots)
		memcpy(msg->slots, wire->slots, wire->n_slots * sizeof(msg->slots[0]));
	msg->slot_count = wire->n_slots;
	if (wire->has_snapshot && wire->snapshot.len) {
		msg->snapshot = wire->snapshot.data;
		msg->snapshot_bytes = wire->snapshot.len;
	}
	if (wire->n_members)
		memcpy(msg->members, wire->members,
		       wire->n_members * sizeof(msg->members[0]));
	msg->member_count = wire->n_members;
	return 0;
}
