/* sim_group.c: deterministic simulation of a replication group (cluster/group.c) whose
 * replicas move: the Paxos core with its WAL on a simulated disk each (tests/sim/sim_disk.h),
 * messages through the wire codec (cluster/paxos_wire.c) and a simulated network
 * (tests/sim/sim_net.h), and an in-memory state machine.
 *
 * Usage: sim_group [--seeds N] [--seed S] [--steps N] [-v]
 *   --seed S first seed (default 1); --seeds N how many from S (default 1 with --seed, else
 *   1000, then the regression seeds: what make check runs); --steps N ticks of chaos per
 *   seed (default 1500); -v traces the run.
 *
 * One seed drives everything: message loss, duplication, delay and reordering, partitions and
 * one-way cuts, crashes (the group is closed and its disk loses every unsynced write, the last
 * one maybe torn; sometimes a sync or a write fails first, so the crash hits a WAL written
 * but not synced), restarts that reopen the group from its WAL, leadership hand-offs, log
 * compaction, clients doing puts and strong reads on a few keys, and replica moves. The state
 * machine is durable with its applied slot and member list (as the store's LevelDB batch is).
 *
 * Replica moves (as meta makes them): node ids are 1..NODE_IDS and ids 1..MEMBERS start as
 * the members. Now and then a mover picks a target: the configuration its last move finished
 * with, one member replaced by an id that holds no replica. It opens that replica with the
 * target's member list and an empty state machine (needs_snapshot: it joins by snapshot),
 * then every few ticks calls group_change_members(target) on the node it believes leads,
 * following -EREMOTE hints, until it returns 0. The replica that left keeps running a while,
 * then is closed and its disk wiped (meta retires it); its id may become a target again.
 *
 * Then the network heals, every replica comes back, the mover finishes its move, and the run
 * checks:
 *   - prefix agreement: every apply of a slot, on every replica that ever ran, has the same
 *     entry (the same command, or the same member list); each applied configuration is one
 *     change from the one in force before it; a snapshot's state and member list are those of
 *     the chosen slots it covers; a member is removed only when every member that stays has
 *     state;
 *   - no replica leads or campaigns outside its own member list, or before its first
 *     snapshot; at most one replica holds a lease at a time;
 *   - nothing acknowledged is lost: every final member applied every acknowledged put's slot;
 *   - the client history is linearizable (tests/sim/linearizability.h);
 *   - progress: the move under way finishes, a new command commits, every final member has
 *     the last target in force and they all converge to the same state.
 * A failing seed prints "FAIL seed=S (replay: tests/sim/sim_group --seed S -v)"; exit 1. */
#include "cluster/arena.h"
#include "cluster/group.h"
#include "cluster/paxos_wire.h"
#include "tests/sim/linearizability.h"
#include "tests/sim/sim_disk.h"
#include "tests/sim/sim_net.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_IDS 5		/* ids 1..NODE_IDS; a replica runs on some of them */
#define MEMBERS 3		/* the group's size, which every move keeps */
#define KEYS 4
#define CLIENTS 3
#define COMMAND_BYTES 12
#define PROBE_KEY 0xffffffffu
#define CLIENT_TIMEOUT_TICKS 80
#define ELECTION_TICKS 20
#define MOVER_TRY_TICKS 5	/* the mover asks again within this many ticks */
#define MOVER_PAUSE_TICKS 300	/* between two moves: up to this long */
#define RETIRE_TICKS 200	/* a removed replica runs up to this long, then is wiped */
#define LONG_OUTAGE_TICKS 300	/* some crashes last this long or up to twice as long */
#define WAL_DIR "/data/wal"
#define TABLE_ID 7
#define PARTITION_ID 3

struct sim;

/* The in-memory state machine: durable as a whole (it survives crashes), like a store whose
 * every apply is one synced write batch with its applied slot and member list. */
struct memory_sm {
	uint64_t kv[KEYS];
	uint64_t applied_slot;
	uint32_t members[PAXOS_MEMBERS_MAX];	/* count 0: none applied (the group's list) */
	size_t member_count;
	struct node *node;
	/* The state before the last apply, until persist makes the apply durable: a persist
	 * that fails puts it back, as a crash would lose a write the store had not synced. */
	uint64_t kept_kv[KEYS];
	uint64_t kept_applied_slot;
	uint32_t kept_members[PAXOS_MEMBERS_MAX];
	size_t kept_member_count;
	bool has_kept;
};

struct node {
	uint32_t id;
	bool provisioned;		/* holds a replica, up or down */
	bool added;			/* opened by a move: the replica joins by snapshot */
	bool up;
	uint32_t restarts;		/* opens of this id, over every replica it held */
	uint32_t generation;		/* replicas this id held (a fresh disk each) */
	uint64_t down_until_tick;
	uint64_t retire_tick;		/* 0: not leaving */
	uint32_t open_members[PAXOS_MEMBERS_MAX];	/* the list the replica was opened with */
	size_t open_member_count;
	struct sim_disk *disk;
	struct group *group;
	struct memory_sm sm_state;
	struct group_sm sm;
	struct sim *sim;
};

struct client {
	uint32_t id;
	bool busy;
	bool is_get;
	size_t op_index;
	uint32_t node;
	uint32_t key;
	uint64_t put_value;
	uint64_t token;
	uint64_t deadline_tick;
	uint32_t guess;
	uint64_t seq;
};

/* What a slot was applied as, by whoever applied it first. */
struct chosen_slot {
	bool set;
	uint32_t type;
	uint32_t key;
	uint64_t value;
	uint32_t members[PAXOS_MEMBERS_MAX];	/* CONFIG */
	size_t member_count;
};

/* What meta's mover does for one partition. */
struct mover {
	bool moving;
	uint32_t current[MEMBERS];	/* the members the last finished move left */
	uint32_t target[MEMBERS];
	uint32_t leaving;		/* the member the move under way replaces */
	uint32_t guess;			/* the node it believes leads */
	uint64_t next_move_tick;
	uint64_t next_try_tick;
};

struct totals {
	uint64_t crashes;
	uint64_t io_faults;
	uint64_t elections;
	uint64_t snapshots;
	uint64_t compactions;
	uint64_t wal_syncs;
	uint64_t entries_persisted;
	uint64_t puts_acked;
	uint64_t gets_acked;
	uint64_t canceled;
	uint64_t abandoned;
	uint64_t moves_started;
	uint64_t moves_done;
	uint64_t retired;
	uint64_t configs_applied;
	uint64_t configs_void;
	uint64_t applies_lost;
};

struct sim {
	struct totals *totals;
	uint64_t seed;
	bool verbose;
	uint64_t now_tick;
	uint64_t event_time;
	struct sim_rng rng;
	struct sim_net *net;
	struct node nodes[NODE_IDS];
	struct client clients[CLIENTS];
	struct mover mover;
	bool clients_stopped;
	struct lin_op *history;
	size_t history_count;
	size_t history_cap;
	struct chosen_slot *chosen;
	size_t chosen_cap;
	uint64_t *acked_slots;		/* slot of each acknowledged put */
	size_t acked_count;
	size_t acked_cap;
	uint64_t token_next;
	uint64_t probe_token;
	int probe_status;
	bool probe_done;
	bool failed;
	char reason[512];
};

static void sim_log(struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_log(struct sim *sim, const char *fmt, ...)
{
	va_list ap;

	if (!sim->verbose)
		return;
	printf("[%6llu] ", (unsigned long long)sim->now_tick);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void sim_fail(struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_fail(struct sim *sim, const char *fmt, ...)
{
	va_list ap;

	if (sim->failed)
		return;
	sim->failed = true;
	va_start(ap, fmt);
	vsnprintf(sim->reason, sizeof(sim->reason), fmt, ap);
	va_end(ap);
	sim_log(sim, "FAILURE: %s", sim->reason);
}

static void out_of_memory(void)
{
	fprintf(stderr, "sim_group: out of memory\n");
	exit(2);
}

static void *xrealloc(void *p, size_t size_bytes)
{
	p = realloc(p, size_bytes);
	if (!p)
		out_of_memory();
	return p;
}

/* ---- member lists ---- */

static bool members_have(const uint32_t *members, size_t count, uint32_t id)
{
	for (size_t i = 0; i < count; i++)
		if (members[i] == id)
			return true;
	return false;
}

/* The same set of ids, in any order. */
static bool members_same(const uint32_t *a, size_t a_count, const uint32_t *b, size_t b_count)
{
	if (a_count != b_count)
		return false;
	for (size_t i = 0; i < a_count; i++)
		if (!members_have(b, b_count, a[i]))
			return false;
	return true;
}

/* Exactly one member added or removed. */
static bool members_one_change(const uint32_t *from, size_t from_count, const uint32_t *to,
			       size_t to_count)
{
	size_t common = 0;

	for (size_t i = 0; i < to_count; i++)
		if (members_have(from, from_count, to[i]))
			common++;
	return (to_count == from_count + 1 && common == from_count) ||
	       (to_count + 1 == from_count && common == to_count);
}

static void members_format(const uint32_t *members, size_t count, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < count && used < size; i++) {
		int w = snprintf(out + used, size - used, "%s%u", i ? "," : "", members[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- commands: key (4 bytes) and value (8 bytes), little endian ---- */

static void command_encode(uint8_t *out, uint32_t key, uint64_t value)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(key >> (8 * i));
	for (int i = 0; i < 8; i++)
		out[4 + i] = (uint8_t)(value >> (8 * i));
}

static int command_decode(const uint8_t *in, size_t size_bytes, uint32_t *key, uint64_t *value)
{
	if (size_bytes != COMMAND_BYTES)
		return -EINVAL;
	*key = 0;
	*value = 0;
	for (int i = 0; i < 4; i++)
		*key |= (uint32_t)in[i] << (8 * i);
	for (int i = 0; i < 8; i++)
		*value |= (uint64_t)in[4 + i] << (8 * i);
	return 0;
}

/* ---- history ---- */

static size_t history_invoke(struct sim *sim, enum lin_kind kind, uint32_t key, uint64_t value)
{
	struct lin_op *op;

	if (sim->history_count == sim->history_cap) {
		sim->history_cap = sim->history_cap ? 2 * sim->history_cap : 256;
		sim->history = xrealloc(sim->history, sim->history_cap * sizeof(*sim->history));
	}
	op = &sim->history[sim->history_count];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->key = key;
	op->value = value;
	op->invoke_time = ++sim->event_time;
	return sim->history_count++;
}

static void history_complete(struct sim *sim, size_t index, uint64_t value)
{
	struct lin_op *op = &sim->history[index];

	op->completed = true;
	op->complete_time = ++sim->event_time;
	if (op->kind == LIN_GET)
		op->value = value;
}

static struct chosen_slot *chosen_at(struct sim *sim, uint64_t slot)
{
	if (slot >= sim->chosen_cap) {
		size_t cap = sim->chosen_cap ? sim->chosen_cap : 1024;

		while (cap <= slot)
			cap *= 2;
		sim->chosen = xrealloc(sim->chosen, cap * sizeof(*sim->chosen));
		memset(sim->chosen + sim->chosen_cap, 0,
		       (cap - sim->chosen_cap) * sizeof(*sim->chosen));
		sim->chosen_cap = cap;
	}
	return &sim->chosen[slot];
}

static bool chosen_same(const struct chosen_slot *a, const struct chosen_slot *b)
{
	return a->type == b->type && a->key == b->key && a->value == b->value &&
	       a->member_count == b->member_count &&
	       memcmp(a->members, b->members, a->member_count * sizeof(a->members[0])) == 0;
}

/* The configuration in force once slot is applied. Every slot up to it was applied by some
 * replica (replicas apply in order, and a snapshot must cover applied slots only). */
static void config_as_of(struct sim *sim, uint64_t slot, uint32_t *members, size_t *count)
{
	for (uint64_t s = slot; s >= 1; s--) {
		const struct chosen_slot *c = chosen_at(sim, s);

		if (c->set && c->type == PAXOS_ENTRY_CONFIG) {
			memcpy(members, c->members, c->member_count * sizeof(members[0]));
			*count = c->member_count;
			return;
		}
	}
	for (uint32_t i = 0; i < MEMBERS; i++)
		members[i] = i + 1;
	*count = MEMBERS;
}

/* A configuration applied at slot for the first time: one change from the one in force
 * before, and a removal only once every member that stays has state (group.h: the group
 * never depends on a replica without its state). */
static void config_check_first(struct sim *sim, uint64_t slot, const uint32_t *members,
			       size_t count)
{
	uint32_t before[PAXOS_MEMBERS_MAX];
	size_t before_count;
	char was[64], now[64];

	config_as_of(sim, slot - 1, before, &before_count);
	members_format(before, before_count, was, sizeof(was));
	members_format(members, count, now, sizeof(now));
	sim_log(sim, "slot %llu: configuration {%s} chosen (was {%s})",
		(unsigned long long)slot, now, was);
	if (!members_one_change(before, before_count, members, count)) {
		sim_fail(sim, "slot %llu: configuration {%s} after {%s} is not one change",
			 (unsigned long long)slot, now, was);
		return;
	}
	if (count > before_count)
		return;
	for (size_t i = 0; i < count; i++) {
		const struct node *n = members[i] >= 1 && members[i] <= NODE_IDS ?
				       &sim->nodes[members[i] - 1] : NULL;

		if (!n || !n->provisioned || (n->added && n->sm_state.applied_slot == 0)) {
			sim_fail(sim, "slot %llu: configuration {%s} removes a member while "
				 "member %u has no state", (unsigned long long)slot, now,
				 members[i]);
			return;
		}
	}
}

/* ---- the in-memory state machine ---- */

static int memory_apply(void *ctx, struct group_apply *entries, size_t count)
{
	struct memory_sm *m = ctx;
	struct sim *sim = m->node->sim;

	if (m->has_kept) {
		sim_fail(sim, "node %u applies again before persisting", m->node->id);
		return -EINVAL;
	}
	memcpy(m->kept_kv, m->kv, sizeof(m->kv));
	m->kept_applied_slot = m->applied_slot;
	memcpy(m->kept_members, m->members, sizeof(m->members));
	m->kept_member_count = m->member_count;
	m->has_kept = true;

	for (size_t i = 0; i < count; i++) {
		struct group_apply *a = &entries[i];
		struct chosen_slot got, *c;

		memset(&got, 0, sizeof(got));
		got.set = true;
		got.type = a->type;
		if (a->slot != m->applied_slot + 1) {
			sim_fail(sim, "node %u applies slot %llu after %llu", m->node->id,
				 (unsigned long long)a->slot,
				 (unsigned long long)m->applied_slot);
			return -EINVAL;
		}
		if (a->type == PAXOS_ENTRY_NORMAL) {
			if (command_decode(a->command, a->command_bytes, &got.key,
					   &got.value) != 0) {
				sim_fail(sim, "node %u applies a malformed command", m->node->id);
				return -EINVAL;
			}
			if (got.key < KEYS)
				m->kv[got.key] = got.value;
			a->status = 0;
			memcpy(a->result, &got.value, sizeof(got.value));
			a->result_bytes = sizeof(got.value);
		} else if (a->type == PAXOS_ENTRY_CONFIG) {
			if (paxos_config_decode(a->command, a->command_bytes, got.members,
						&got.member_count) != 0) {
				sim_fail(sim, "node %u applies a malformed configuration",
					 m->node->id);
				return -EINVAL;
			}
		}
		c = chosen_at(sim, a->slot);
		if (c->set && !chosen_same(c, &got)) {
			sim_fail(sim, "replicas disagree on slot %llu (node %u applies type %u)",
				 (unsigned long long)a->slot, m->node->id, got.type);
			return -EINVAL;
		}
		if (!c->set && got.type == PAXOS_ENTRY_CONFIG) {
			config_check_first(sim, a->slot, got.members, got.member_count);
			sim->totals->configs_applied++;
		}
		*chosen_at(sim, a->slot) = got;
		if (got.type == PAXOS_ENTRY_CONFIG) {
			memcpy(m->members, got.members, sizeof(m->members));
			m->member_count = got.member_count;
		}
		m->applied_slot = a->slot;
	}
	return 0;
}

/* Makes the last apply durable; one in PERSIST_FAULT_ONE_IN loses it (the proposers have
 * their answers already) and fails the group like an I/O error, which crashes the node: it
 * must get the entries back from its WAL. */
#define PERSIST_FAULT_ONE_IN 200

static int memory_persist(void *ctx)
{
	struct memory_sm *m = ctx;
	struct sim *sim = m->node->sim;

	if (!m->has_kept)
		return 0;
	m->has_kept = false;
	/* No fault once the run heals (clients stopped): it must converge then. */
	if (sim->clients_stopped || sim_rng_below(&sim->rng, PERSIST_FAULT_ONE_IN) != 0)
		return 0;
	memcpy(m->kv, m->kept_kv, sizeof(m->kv));
	m->applied_slot = m->kept_applied_slot;
	memcpy(m->members, m->kept_members, sizeof(m->members));
	m->member_count = m->kept_member_count;
	sim->totals->applies_lost++;
	sim_log(sim, "node %u: an apply was lost before persist", m->node->id);
	return -EIO;
}

#define SNAPSHOT_BYTES (8 + 8 * KEYS)

static int memory_snapshot_get(void *ctx, uint8_t **bytes, size_t *size_bytes,
			       uint64_t *through_slot)
{
	struct memory_sm *m = ctx;
	uint8_t *buf = malloc(SNAPSHOT_BYTES);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, &m->applied_slot, 8);
	memcpy(buf + 8, m->kv, 8 * KEYS);
	*bytes = buf;
	*size_bytes = SNAPSHOT_BYTES;
	*through_slot = m->applied_slot;
	return 0;
}

/* A snapshot must equal the replay of the chosen slots it covers, and come with the
 * members in force at its slot (which the replica takes, as the store does). */
static int memory_snapshot_install(void *ctx, uint64_t through_slot, const uint8_t *bytes,
				   size_t size_bytes, const uint32_t *members,
				   size_t member_count)
{
	struct memory_sm *m = ctx;
	struct sim *sim = m->node->sim;
	uint64_t kv[KEYS] = { 0 }, through;
	uint32_t in_force[PAXOS_MEMBERS_MAX];
	size_t in_force_count;

	if (size_bytes != SNAPSHOT_BYTES) {
		sim_fail(sim, "node %u got a snapshot of %zu bytes", m->node->id, size_bytes);
		return -EINVAL;
	}
	memcpy(&through, bytes, 8);
	if (through != through_slot) {
		sim_fail(sim, "snapshot through %llu says %llu",
			 (unsigned long long)through_slot, (unsigned long long)through);
		return -EINVAL;
	}
	for (uint64_t s = 1; s <= through; s++) {
		struct chosen_slot *c = chosen_at(sim, s);

		if (!c->set) {
			sim_fail(sim, "snapshot through %llu covers slot %llu nobody applied",
				 (unsigned long long)through, (unsigned long long)s);
			return -EINVAL;
		}
		if (c->type == PAXOS_ENTRY_NORMAL && c->key < KEYS)
			kv[c->key] = c->value;
	}
	if (memcmp(kv, bytes + 8, sizeof(kv)) != 0) {
		sim_fail(sim, "snapshot through %llu differs from the chosen slots",
			 (unsigned long long)through);
		return -EINVAL;
	}
	config_as_of(sim, through, in_force, &in_force_count);
	if (!members_same(members, member_count, in_force, in_force_count)) {
		char got[64], want[64];

		members_format(members, member_count, got, sizeof(got));
		members_format(in_force, in_force_count, want, sizeof(want));
		sim_fail(sim, "node %u: snapshot through %llu comes with members {%s}, not {%s}",
			 m->node->id, (unsigned long long)through, got, want);
		return -EINVAL;
	}
	sim_log(sim, "node %u installs a snapshot through %llu (applied %llu)", m->node->id,
		(unsigned long long)through, (unsigned long long)m->applied_slot);
	memcpy(m->kv, kv, sizeof(kv));
	m->applied_slot = through;
	memcpy(m->members, members, member_count * sizeof(members[0]));
	m->member_count = member_count;
	return 0;
}

static int memory_state(void *ctx, uint64_t *applied_slot, uint32_t *members,
			size_t *member_count)
{
	struct memory_sm *m = ctx;

	*applied_slot = m->applied_slot;
	memcpy(members, m->members, m->member_count * sizeof(members[0]));
	*member_count = m->member_count;
	return 0;
}

/* A replica a move opened holds nothing until its first snapshot. */
static bool memory_needs_snapshot(void *ctx)
{
	const struct memory_sm *m = ctx;

	return m->node->added && m->applied_slot == 0;
}

/* ---- group callbacks ---- */

/* Every message goes through the wire codec, as between real nodes. */
static void node_send(void *ctx, const struct paxos_msg *msg)
{
	struct node *n = ctx;
	struct sim *sim = n->sim;
	const struct paxos_wire_group id = { TABLE_ID, PARTITION_ID };
	struct paxos_wire_group got;
	struct arena *arena = arena_new();
	struct paxos_msg decoded;
	uint8_t *bytes;
	size_t size_bytes;
	int rc;

	if (!arena)
		out_of_memory();
	rc = paxos_wire_encode(&id, msg, arena, &bytes, &size_bytes);
	if (rc == 0)
		rc = paxos_wire_decode(bytes, size_bytes, arena, &got, &decoded);
	if (rc != 0 || got.table_id != TABLE_ID || got.partition_id != PARTITION_ID) {
		sim_fail(sim, "node %u: a message of type %u fails the wire codec (%d)", n->id,
			 msg->type, rc);
	} else if (sim_net_send(sim->net, sim->now_tick, &decoded) != 0) {
		out_of_memory();
	}
	arena_free(arena);
}

static struct client *client_by_token(struct sim *sim, uint64_t token)
{
	for (size_t i = 0; i < CLIENTS; i++)
		if (sim->clients[i].busy && sim->clients[i].token == token)
			return &sim->clients[i];
	return NULL;
}

static void acked_add(struct sim *sim, uint64_t slot)
{
	if (sim->acked_count == sim->acked_cap) {
		sim->acked_cap = sim->acked_cap ? 2 * sim->acked_cap : 256;
		sim->acked_slots = xrealloc(sim->acked_slots,
					    sim->acked_cap * sizeof(*sim->acked_slots));
	}
	sim->acked_slots[sim->acked_count++] = slot;
}

static void node_proposal_done(void *ctx, uint64_t token, int status, int apply_status,
			       const uint8_t *result, size_t result_bytes)
{
	struct node *n = ctx;
	struct sim *sim = n->sim;
	struct client *c;
	uint64_t value;

	if (token == sim->probe_token) {
		sim->probe_done = true;
		sim->probe_status = status;
		return;
	}
	c = client_by_token(sim, token);
	if (!c || c->is_get) {
		sim_fail(sim, "node %u completes an unknown proposal %llu", n->id,
			 (unsigned long long)token);
		return;
	}
	c->busy = false;
	if (status != 0) {
		/* Not applied (-ECANCELED) or unknown (-ETIMEDOUT): the put stays incomplete,
		 * which the checker reads as "maybe took effect". */
		sim->totals->canceled++;
		sim_log(sim, "client %u put k%u=%llx ends with %d", c->id, c->key,
			(unsigned long long)c->put_value, status);
		return;
	}
	if (apply_status != 0 || result_bytes != sizeof(value)) {
		sim_fail(sim, "put result: status %d, %zu bytes", apply_status, result_bytes);
		return;
	}
	memcpy(&value, result, sizeof(value));
	if (value != c->put_value) {
		sim_fail(sim, "client %u got the result of another command", c->id);
		return;
	}
	history_complete(sim, c->op_index, 0);
	acked_add(sim, n->sm_state.applied_slot);
	sim->totals->puts_acked++;
	sim_log(sim, "client %u put k%u=%llx done", c->id, c->key,
		(unsigned long long)c->put_value);
}

static void node_read_ready(void *ctx, uint64_t token)
{
	struct node *n = ctx;
	struct sim *sim = n->sim;
	struct client *c = client_by_token(sim, token);

	if (!c || !c->is_get) {
		sim_fail(sim, "node %u grants an unknown read %llu", n->id,
			 (unsigned long long)token);
		return;
	}
	history_complete(sim, c->op_index, n->sm_state.kv[c->key]);
	sim->totals->gets_acked++;
	sim_log(sim, "client %u get k%u -> %llx at node %u", c->id, c->key,
		(unsigned long long)n->sm_state.kv[c->key], n->id);
	c->busy = false;
}

/* ---- nodes ---- */

static void client_abandon_at(struct sim *sim, uint32_t node)
{
	for (size_t i = 0; i < CLIENTS; i++) {
		struct client *c = &sim->clients[i];

		if (c->busy && c->node == node) {
			sim_log(sim, "client %u abandons op %zu (node %u died)", c->id,
				c->op_index, node);
			sim->totals->abandoned++;
			c->busy = false;
		}
	}
}

static void totals_add_group(struct sim *sim, struct node *n)
{
	struct group_status st;

	if (!n->group)
		return;
	group_status(n->group, &st);
	sim->totals->elections += st.paxos.counters.elections;
	sim->totals->snapshots += st.paxos.counters.snapshots_installed;
	sim->totals->configs_void += st.paxos.counters.configs_void;
	sim->totals->compactions += st.compactions;
	sim->totals->wal_syncs += st.wal_syncs;
	sim->totals->entries_persisted += st.entries_persisted;
}

/* Closes the replica's group (its counters go to the totals). */
static void node_close(struct sim *sim, struct node *n)
{
	totals_add_group(sim, n);
	group_close(n->group);
	n->group = NULL;
	n->up = false;
	sim_net_drop_to(sim->net, n->id);
	client_abandon_at(sim, n->id);
}

static void node_crash(struct sim *sim, struct node *n)
{
	sim->totals->crashes++;
	sim_log(sim, "node %u crashes", n->id);
	node_close(sim, n);
	sim_disk_crash(n->disk);
	/* A fault armed but not hit must not fire in the next life. */
	sim_disk_fail_write(n->disk, 0);
	sim_disk_fail_sync(n->disk, 0);
	n->down_until_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, 150);
}

static void node_process(struct sim *sim, struct node *n)
{
	int rc;

	if (!n->up || sim->failed)
		return;
	rc = group_process(n->group);
	if (rc == -EIO && !sim->failed) {
		/* An injected I/O fault: the process dies with a WAL written but not synced. */
		sim_log(sim, "node %u: the WAL failed", n->id);
		node_crash(sim, n);
	} else if (rc) {
		sim_fail(sim, "node %u: group_process %d", n->id, rc);
	}
}

static int node_start(struct sim *sim, struct node *n)
{
	struct group_config config;
	struct group_callbacks callbacks = {
		.ctx = n,
		.send = node_send,
		.proposal_done = node_proposal_done,
		.read_ready = node_read_ready,
	};
	int rc;

	group_config_init(&config);
	config.id.table_id = TABLE_ID;
	config.id.partition_id = PARTITION_ID;
	config.self_id = n->id;
	memcpy(config.members, n->open_members, sizeof(config.members));
	config.member_count = n->open_member_count;
	config.election_ticks = ELECTION_TICKS;
	config.heartbeat_ticks = 3;
	config.lease_ticks = 12;
	config.window_slots = 16;
	config.log_slots = 128;
	config.outbox_msgs = 256;
	config.seed = sim->seed * 1000003 + n->id;
	config.incarnation = n->restarts + 1;
	config.compact_every_slots = 24 + sim_rng_below(&sim->rng, 24);
	config.compact_keep_slots = sim_rng_below(&sim->rng, 32);	/* 0: snapshots often */
	config.wal.segment_size_bytes = 2048;
	n->sm.ctx = &n->sm_state;
	n->sm.apply = memory_apply;
	n->sm.snapshot_get = memory_snapshot_get;
	n->sm.snapshot_install = memory_snapshot_install;
	n->sm.state = memory_state;
	n->sm.needs_snapshot = memory_needs_snapshot;
	n->sm.persist = memory_persist;
	rc = group_open(sim_disk_io(n->disk), WAL_DIR, &config, &n->sm, &callbacks, &n->group);
	if (rc) {
		sim_fail(sim, "node %u cannot open its group: %d", n->id, rc);
		return rc;
	}
	n->up = true;
	return 0;
}

static void node_restart(struct sim *sim, struct node *n)
{
	n->restarts++;
	sim_log(sim, "node %u restarts (applied %llu)", n->id,
		(unsigned long long)n->sm_state.applied_slot);
	if (node_start(sim, n) == 0)
		node_process(sim, n);
}

/* A new replica on n: a fresh disk and an empty state machine; members is the list it is
 * opened with (an initial member's, or a move's target). */
static void node_provision(struct sim *sim, struct node *n, const uint32_t *members,
			   size_t count, bool added)
{
	if (sim_disk_create(sim->seed * 31 + n->id + 1000 * (uint64_t)n->generation,
			    &n->disk) != 0)
		out_of_memory();
	n->generation++;
	memset(&n->sm_state, 0, sizeof(n->sm_state));
	n->sm_state.node = n;
	memset(n->open_members, 0, sizeof(n->open_members));
	memcpy(n->open_members, members, count * sizeof(members[0]));
	n->open_member_count = count;
	n->added = added;
	n->provisioned = true;
	n->retire_tick = 0;
	n->restarts++;
	if (node_start(sim, n) == 0)
		node_process(sim, n);
}

/* Meta retires a removed replica: the process stops and its disk is wiped. */
static void node_retire(struct sim *sim, struct node *n)
{
	sim_log(sim, "node %u: its replica is retired and its disk wiped", n->id);
	node_close(sim, n);
	sim_disk_destroy(n->disk);
	n->disk = NULL;
	memset(&n->sm_state, 0, sizeof(n->sm_state));
	n->sm_state.node = n;
	n->provisioned = false;
	n->retire_tick = 0;
	sim->totals->retired++;
}

static struct node *node_by_id(struct sim *sim, uint32_t id)
{
	return id >= 1 && id <= NODE_IDS ? &sim->nodes[id - 1] : NULL;
}

static uint32_t random_up_node(struct sim *sim)
{
	uint32_t start = (uint32_t)sim_rng_below(&sim->rng, NODE_IDS);

	for (uint32_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[(start + i) % NODE_IDS];

		if (n->up)
			return n->id;
	}
	return 0;
}

/* ---- clients ---- */

static void client_step(struct sim *sim, struct client *c)
{
	struct node *n;
	uint32_t hint = 0;
	int rc;

	if (c->busy) {
		if (sim->now_tick >= c->deadline_tick) {
			struct node *at = node_by_id(sim, c->node);

			sim_log(sim, "client %u gives up op %zu", c->id, c->op_index);
			if (!c->is_get && at && at->up)
				(void)group_cancel(at->group, c->token);
			sim->totals->abandoned++;
			c->busy = false;
		}
		return;
	}
	if (sim->clients_stopped || !sim_rng_chance(&sim->rng, 300))
		return;
	n = node_by_id(sim, c->guess);
	if (!n || !n->up) {
		c->guess = random_up_node(sim);
		return;
	}
	c->key = (uint32_t)sim_rng_below(&sim->rng, KEYS);
	c->is_get = sim_rng_chance(&sim->rng, 400);
	c->token = ++sim->token_next;
	if (c->is_get) {
		rc = group_read(n->group, c->token, &hint);
		if (rc == 0)
			c->op_index = history_invoke(sim, LIN_GET, c->key, 0);
	} else {
		uint8_t buf[COMMAND_BYTES];

		c->put_value = ((uint64_t)c->id << 40) | ++c->seq;
		command_encode(buf, c->key, c->put_value);
		rc = group_propose(n->group, buf, sizeof(buf), c->token, &hint);
		if (rc == 0) {
			c->op_index = history_invoke(sim, LIN_PUT, c->key, c->put_value);
			sim_log(sim, "client %u put k%u=%llx at node %u", c->id, c->key,
				(unsigned long long)c->put_value, n->id);
		}
	}
	if (rc == 0) {
		c->busy = true;
		c->node = n->id;
		c->deadline_tick = sim->now_tick + CLIENT_TIMEOUT_TICKS;
		node_process(sim, n);
	} else if (rc == -EREMOTE) {
		c->guess = hint ? hint : random_up_node(sim);
	} else if (rc == -EAGAIN) {
		if (sim_rng_chance(&sim->rng, 100))
			c->guess = random_up_node(sim);
	} else {
		sim_fail(sim, "client %u: unexpected error %d", c->id, rc);
	}
}

/* ---- the mover ---- */

/* Picks a move: one member of the current configuration replaced by an id without a
 * replica, where a replica is opened at once with the target's members, joining. */
static void mover_pick(struct sim *sim)
{
	struct mover *mv = &sim->mover;
	uint32_t free_ids[NODE_IDS], leave_index, add;
	size_t free_count = 0;
	char now[64];

	for (uint32_t id = 1; id <= NODE_IDS; id++)
		if (!members_have(mv->current, MEMBERS, id) && !sim->nodes[id - 1].provisioned)
			free_ids[free_count++] = id;
	if (!free_count) {
		/* Every other id still holds a replica that is being retired: wait. */
		mv->next_move_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, 20);
		return;
	}
	add = free_ids[sim_rng_below(&sim->rng, free_count)];
	leave_index = (uint32_t)sim_rng_below(&sim->rng, MEMBERS);
	/* Meta moves the replica of a node that is down first, when it knows one. */
	for (uint32_t i = 0; i < MEMBERS; i++)
		if (!sim->nodes[mv->current[i] - 1].up && sim_rng_chance(&sim->rng, 500))
			leave_index = i;
	memcpy(mv->target, mv->current, sizeof(mv->target));
	mv->leaving = mv->target[leave_index];
	mv->target[leave_index] = add;
	mv->moving = true;
	mv->next_try_tick = sim->now_tick;
	sim->totals->moves_started++;
	members_format(mv->target, MEMBERS, now, sizeof(now));
	sim_log(sim, "mover: replaces %u by %u (target {%s})", mv->leaving, add, now);
	node_provision(sim, node_by_id(sim, add), mv->target, MEMBERS, true);
}

static void mover_done(struct sim *sim)
{
	struct mover *mv = &sim->mover;
	struct node *left = node_by_id(sim, mv->leaving);

	sim_log(sim, "mover: %u replaced", mv->leaving);
	memcpy(mv->current, mv->target, sizeof(mv->current));
	mv->moving = false;
	mv->next_move_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, MOVER_PAUSE_TICKS);
	left->retire_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, RETIRE_TICKS);
	sim->totals->moves_done++;
}

/* A leader that just proposed a removal (every wanted member is in the configuration):
 * every wanted member has its state, as group_change_members promises. */
static void mover_check_removal(struct sim *sim, struct node *leader,
				const struct group_status *before)
{
	struct group_status after;

	group_status(leader->group, &after);
	if (before->paxos.config_pending || !after.paxos.config_pending ||
	    after.paxos.member_count != MEMBERS + 1)
		return;
	for (size_t i = 0; i < after.paxos.member_count; i++) {
		const struct node *n = node_by_id(sim, after.paxos.members[i]);

		if (!members_have(sim->mover.target, MEMBERS, n->id) || !n->added ||
		    n->sm_state.applied_slot)
			continue;
		sim_fail(sim, "leader %u proposes a removal while member %u has no state "
			 "(its commit index there: %llu of %llu, joining %d, configuration of "
			 "slot %llu)", leader->id, n->id,
			 (unsigned long long)after.paxos.member_commit_slot[i],
			 (unsigned long long)after.paxos.commit_slot,
			 (int)after.paxos.member_joining[i],
			 (unsigned long long)after.paxos.config_slot);
		return;
	}
}

/* Asks the node it believes leads to move towards the target, every few ticks; picks a new
 * move (chaos only) some time after the last one finished. */
static void mover_step(struct sim *sim, bool chaos)
{
	struct mover *mv = &sim->mover;
	struct group_status before;
	uint32_t hint = 0;
	struct node *n;
	int rc;

	if (!mv->moving) {
		if (chaos && sim->now_tick >= mv->next_move_tick)
			mover_pick(sim);
		return;
	}
	if (sim->now_tick < mv->next_try_tick)
		return;
	mv->next_try_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, MOVER_TRY_TICKS);
	n = node_by_id(sim, mv->guess);
	if (!n || !n->up) {
		mv->guess = random_up_node(sim);
		return;
	}
	group_status(n->group, &before);
	rc = group_change_members(n->group, mv->target, MEMBERS, &hint);
	sim_log(sim, "mover: node %u answers %d (hint %u)", n->id, rc, hint);
	if (rc == -EINPROGRESS)
		mover_check_removal(sim, n, &before);
	node_process(sim, n);
	if (rc == 0) {
		mover_done(sim);
	} else if (rc == -EREMOTE) {
		mv->guess = hint && hint != n->id ? hint : random_up_node(sim);
	} else if (rc == -EAGAIN || rc == -EINPROGRESS) {
		/* A leader that cannot hear a majority stays one for a while: try another. */
		if (sim_rng_chance(&sim->rng, 50))
			mv->guess = random_up_node(sim);
	} else {
		sim_fail(sim, "mover: group_change_members at node %u: %d", n->id, rc);
	}
}

static void retire_step(struct sim *sim)
{
	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		if (n->retire_tick && sim->now_tick >= n->retire_tick)
			node_retire(sim, n);
	}
}

/* ---- faults ---- */

static void faults_step(struct sim *sim)
{
	struct sim_rng *r = &sim->rng;

	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->provisioned)
			continue;
		if (n->up && sim_rng_chance(r, 4)) {
			node_crash(sim, n);
			/* Sometimes a long outage: meta moves the replica away meanwhile, and
			 * it may come back with a configuration several changes old. */
			if (sim_rng_chance(r, 100))
				n->down_until_tick += LONG_OUTAGE_TICKS +
						      sim_rng_below(r, LONG_OUTAGE_TICKS);
		} else if (n->up && sim_rng_chance(r, 2)) {
			/* Arm a fault a few writes or syncs ahead; the group fails on it and
			 * the node crashes with whatever was written but not synced. */
			sim->totals->io_faults++;
			if (sim_rng_chance(r, 500))
				sim_disk_fail_sync(n->disk, 1 + sim_rng_below(r, 8));
			else
				sim_disk_fail_write(n->disk, 1 + sim_rng_below(r, 8));
		} else if (!n->up && sim->now_tick >= n->down_until_tick) {
			node_restart(sim, n);
		}
	}
	if (sim_rng_chance(r, 3)) {
		uint32_t side = 1u << sim_rng_below(r, NODE_IDS);

		sim_log(sim, "partition: node %u isolated", __builtin_ctz(side) + 1);
		sim_net_partition(sim->net, side);
	}
	if (sim_rng_chance(r, 3)) {
		uint32_t from = 1 + (uint32_t)sim_rng_below(r, NODE_IDS);
		uint32_t to = 1 + (uint32_t)sim_rng_below(r, NODE_IDS);

		if (from != to) {
			sim_log(sim, "one-way cut %u -> %u", from, to);
			sim_net_block(sim->net, from, to, true);
		}
	}
	if (sim_rng_chance(r, 8)) {
		for (uint32_t a = 1; a <= NODE_IDS; a++)
			for (uint32_t b = 1; b <= NODE_IDS; b++)
				sim_net_block(sim->net, a, b, false);
		sim_log(sim, "links restored");
	}
	if (sim_rng_chance(r, 2)) {
		for (size_t i = 0; i < NODE_IDS; i++) {
			struct node *n = &sim->nodes[i];
			struct group_status st;
			uint32_t to;

			if (!n->up)
				continue;
			group_status(n->group, &st);
			if (st.paxos.role != PAXOS_LEADER)
				continue;
			to = 1 + (uint32_t)sim_rng_below(r, NODE_IDS);
			if (to != n->id && group_transfer_leadership(n->group, to) == 0) {
				sim_log(sim, "node %u hands leadership to %u", n->id, to);
				node_process(sim, n);
			}
		}
	}
}

/* ---- the run ---- */

/* At most one lease; only a member with state leads or campaigns. */
static void check_nodes(struct sim *sim)
{
	uint32_t holders = 0;

	for (size_t i = 0; i < NODE_IDS && !sim->failed; i++) {
		struct group_status st;
		int self = -1;

		if (!sim->nodes[i].up)
			continue;
		group_status(sim->nodes[i].group, &st);
		holders += st.paxos.lease_valid;
		if (st.paxos.role == PAXOS_FOLLOWER)
			continue;
		for (size_t k = 0; k < st.paxos.member_count; k++)
			if (st.paxos.members[k] == sim->nodes[i].id)
				self = (int)k;
		if (self < 0 || st.paxos.member_joining[self])
			sim_fail(sim, "node %u is in role %d while %s", sim->nodes[i].id,
				 (int)st.paxos.role, self < 0 ? "not a member" : "joining");
	}
	if (holders > 1)
		sim_fail(sim, "%u leaders hold a lease at once", holders);
}

static void tick_once(struct sim *sim, bool chaos)
{
	struct paxos_msg *m;

	sim->now_tick++;
	if (chaos)
		faults_step(sim);
	while (!sim->failed && sim_net_deliver(sim->net, sim->now_tick, &m)) {
		struct node *n = node_by_id(sim, m->to);

		if (n && n->up) {
			(void)group_step(n->group, m);
			node_process(sim, n);
		}
		sim_net_msg_free(m);
	}
	for (size_t i = 0; i < NODE_IDS && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->up)
			continue;
		group_tick(n->group);
		node_process(sim, n);
	}
	for (size_t i = 0; i < CLIENTS && !sim->failed; i++)
		client_step(sim, &sim->clients[i]);
	if (!sim->failed)
		mover_step(sim, chaos);
	retire_step(sim);
	check_nodes(sim);
}

static struct node *find_leader(struct sim *sim)
{
	for (size_t i = 0; i < NODE_IDS; i++) {
		struct group_status st;

		if (!sim->nodes[i].up)
			continue;
		group_status(sim->nodes[i].group, &st);
		if (st.paxos.role == PAXOS_LEADER)
			return &sim->nodes[i];
	}
	return NULL;
}

/* The final members: the last target, each with a replica that has it in force. */
static void check_final_members(struct sim *sim)
{
	const uint32_t *final = sim->mover.current;

	for (size_t i = 0; i < MEMBERS && !sim->failed; i++) {
		struct node *n = node_by_id(sim, final[i]);
		struct group_status st;
		const uint32_t *sm_members = n->sm_state.members;
		size_t sm_count = n->sm_state.member_count;

		if (!n->up) {
			sim_fail(sim, "final member %u runs no replica", n->id);
			return;
		}
		group_status(n->group, &st);
		if (!sm_count) {
			sm_members = n->open_members;
			sm_count = n->open_member_count;
		}
		if (!members_same(st.paxos.members, st.paxos.member_count, final, MEMBERS) ||
		    !members_same(sm_members, sm_count, final, MEMBERS)) {
			char want[64], core[64], store[64];

			members_format(final, MEMBERS, want, sizeof(want));
			members_format(st.paxos.members, st.paxos.member_count, core,
				       sizeof(core));
			members_format(sm_members, sm_count, store, sizeof(store));
			sim_fail(sim, "final member %u has {%s} in force (store {%s}), not {%s}",
				 n->id, core, store, want);
		}
	}
}

/* After healing: the move under way finishes and a command commits, then every final
 * member has the last target in force and they converge. */
static void check_progress(struct sim *sim)
{
	uint64_t bound = 40 * ELECTION_TICKS, start = sim->now_tick;
	const uint32_t *final = sim->mover.current;
	struct node *owner = NULL;
	uint8_t buf[COMMAND_BYTES];

	command_encode(buf, PROBE_KEY, 0x9999);
	sim->probe_token = ~0ull;
	while (!sim->failed && sim->now_tick - start < bound) {
		tick_once(sim, false);
		if (sim->probe_done && sim->probe_status == 0 && !sim->mover.moving)
			break;
		if (sim->probe_done && sim->probe_status == 0)
			continue;
		if (!owner || sim->probe_done || !owner->up) {
			struct node *l = find_leader(sim);

			sim->probe_done = false;
			owner = NULL;
			if (l && group_propose(l->group, buf, sizeof(buf), sim->probe_token,
					       NULL) == 0) {
				owner = l;
				node_process(sim, l);
			}
		}
	}
	if (sim->failed)
		return;
	if (!sim->probe_done || sim->probe_status != 0) {
		sim_fail(sim, "no progress within %llu ticks after healing",
			 (unsigned long long)bound);
		return;
	}
	if (sim->mover.moving) {
		sim_fail(sim, "the move of %u did not finish within %llu ticks after healing",
			 sim->mover.leaving, (unsigned long long)bound);
		return;
	}
	start = sim->now_tick;
	for (;;) {
		uint64_t applied[MEMBERS];
		bool same = true;

		for (size_t i = 0; i < MEMBERS; i++) {
			applied[i] = node_by_id(sim, final[i])->sm_state.applied_slot;
			same = same && applied[i] == applied[0];
		}
		if (same)
			break;
		if (sim->failed || sim->now_tick - start >= bound) {
			sim_fail(sim, "final members did not converge (%u:%llu %u:%llu %u:%llu)",
				 final[0], (unsigned long long)applied[0], final[1],
				 (unsigned long long)applied[1], final[2],
				 (unsigned long long)applied[2]);
			return;
		}
		tick_once(sim, false);
	}
	for (size_t i = 1; i < MEMBERS; i++)
		if (memcmp(node_by_id(sim, final[i])->sm_state.kv,
			   node_by_id(sim, final[0])->sm_state.kv, sizeof(uint64_t) * KEYS) != 0)
			sim_fail(sim, "final members %u and %u hold different states", final[0],
				 final[i]);
	if (!sim->failed)
		check_final_members(sim);
}

static void check_acked(struct sim *sim)
{
	for (size_t i = 0; i < sim->acked_count && !sim->failed; i++)
		for (size_t k = 0; k < MEMBERS; k++) {
			const struct node *n = node_by_id(sim, sim->mover.current[k]);

			if (n->sm_state.applied_slot < sim->acked_slots[i])
				sim_fail(sim, "node %u lost acknowledged slot %llu", n->id,
					 (unsigned long long)sim->acked_slots[i]);
		}
}

static void check_history(struct sim *sim)
{
	uint32_t bad_key = 0;
	int rc = lin_check(sim->history, sim->history_count, &bad_key);

	if (rc == 0)
		sim_fail(sim, "history not linearizable on key %u (%zu ops)", bad_key,
			 sim->history_count);
	else if (rc < 0)
		sim_fail(sim, "linearizability checker failed: %d", rc);
}

static bool run_seed(uint64_t seed, uint64_t steps, bool verbose, struct totals *totals)
{
	struct sim *sim = calloc(1, sizeof(*sim));
	uint32_t initial[MEMBERS];
	struct sim_net_faults faults;
	bool ok;

	if (!sim)
		out_of_memory();
	sim->totals = totals;
	sim->seed = seed;
	sim->verbose = verbose;
	sim->rng.state = seed * 0x9e3779b97f4a7c15ULL + 1;
	if (sim_net_create(&sim->net, seed, NODE_IDS) != 0)
		out_of_memory();
	faults.loss_per_mille = (uint32_t)sim_rng_below(&sim->rng, 100);
	faults.duplicate_per_mille = (uint32_t)sim_rng_below(&sim->rng, 50);
	faults.delay_ticks_max = 1 + (uint32_t)sim_rng_below(&sim->rng, 4);
	faults.slow_per_mille = (uint32_t)sim_rng_below(&sim->rng, 20);
	faults.slow_ticks_max = 30;
	sim_net_set_faults(sim->net, &faults);
	for (uint32_t i = 0; i < MEMBERS; i++)
		initial[i] = i + 1;
	for (uint32_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		n->id = i + 1;
		n->sim = sim;
		n->sm_state.node = n;
	}
	for (uint32_t i = 0; i < MEMBERS && !sim->failed; i++)
		node_provision(sim, &sim->nodes[i], initial, MEMBERS, false);
	memcpy(sim->mover.current, initial, sizeof(initial));
	sim->mover.guess = 1;
	sim->mover.next_move_tick = 1 + sim_rng_below(&sim->rng, MOVER_PAUSE_TICKS);
	for (uint32_t i = 0; i < CLIENTS; i++) {
		sim->clients[i].id = i + 1;
		sim->clients[i].guess = 1 + i % MEMBERS;
	}
	for (uint64_t t = 0; t < steps && !sim->failed; t++)
		tick_once(sim, true);
	/* Heal: every replica up, every link restored, clients finish or give up; the mover
	 * finishes its move but starts no other. */
	sim->clients_stopped = true;
	sim_net_heal(sim->net);
	for (size_t i = 0; i < NODE_IDS && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->provisioned)
			continue;
		sim_disk_fail_write(n->disk, 0);
		sim_disk_fail_sync(n->disk, 0);
		if (!n->up)
			node_restart(sim, n);
	}
	for (int t = 0; t < CLIENT_TIMEOUT_TICKS && !sim->failed; t++)
		tick_once(sim, false);
	if (!sim->failed)
		check_progress(sim);
	if (!sim->failed)
		check_acked(sim);
	if (!sim->failed)
		check_history(sim);
	ok = !sim->failed;
	if (!ok)
		printf("FAIL seed=%llu: %s (replay: tests/sim/sim_group --seed %llu -v)\n",
		       (unsigned long long)seed, sim->reason, (unsigned long long)seed);
	for (size_t i = 0; i < NODE_IDS; i++) {
		totals_add_group(sim, &sim->nodes[i]);
		group_close(sim->nodes[i].group);
		sim_disk_destroy(sim->nodes[i].disk);
	}
	sim_net_destroy(sim->net);
	free(sim->history);
	free(sim->chosen);
	free(sim->acked_slots);
	free(sim);
	return ok;
}

/* Seeds that found bugs (with the default steps): the core credited a sender's commit index
 * to another member after committing a configuration that renumbered the members, so a
 * leader removed a member while the new one had no state (paxos.c, peer_index). */
static const uint64_t regression_seeds[] = { 5807, 13221 };
#define REGRESSION_SEED_COUNT (sizeof(regression_seeds) / sizeof(regression_seeds[0]))

int main(int argc, char **argv)
{
	uint64_t first = 1, count = 0, steps = 1500, failures = 0;
	bool verbose = false, seed_given = false, regressions;
	struct totals totals = { 0 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			first = strtoull(argv[++i], NULL, 10);
			seed_given = true;
		} else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			count = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
			steps = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "-v")) {
			verbose = true;
		} else {
			fprintf(stderr,
				"usage: sim_group [--seeds N] [--seed S] [--steps N] [-v]\n");
			return 2;
		}
	}
	regressions = !count && !seed_given;
	if (!count)
		count = seed_given ? 1 : 1000;
	if (verbose)
		setvbuf(stdout, NULL, _IOLBF, 0);	/* in order with the group's log */
	for (uint64_t s = first; s < first + count; s++)
		if (!run_seed(s, steps, verbose, &totals))
			failures++;
	for (size_t i = 0; regressions && i < REGRESSION_SEED_COUNT; i++) {
		count++;
		if (!run_seed(regression_seeds[i], steps, verbose, &totals))
			failures++;
	}
	printf("sim_group: %llu seeds, %llu failed; crashes %llu, io faults armed %llu, "
	       "elections %llu, snapshots %llu, compactions %llu, wal syncs %llu, "
	       "entries persisted %llu, puts acked %llu, gets acked %llu, canceled %llu, "
	       "abandoned %llu; moves started %llu, done %llu, replicas retired %llu, "
	       "configurations applied %llu, void %llu; applies lost before persist %llu\n",
	       (unsigned long long)count, (unsigned long long)failures,
	       (unsigned long long)totals.crashes, (unsigned long long)totals.io_faults,
	       (unsigned long long)totals.elections, (unsigned long long)totals.snapshots,
	       (unsigned long long)totals.compactions, (unsigned long long)totals.wal_syncs,
	       (unsigned long long)totals.entries_persisted,
	       (unsigned long long)totals.puts_acked, (unsigned long long)totals.gets_acked,
	       (unsigned long long)totals.canceled, (unsigned long long)totals.abandoned,
	       (unsigned long long)totals.moves_started, (unsigned long long)totals.moves_done,
	       (unsigned long long)totals.retired, (unsigned long long)totals.configs_applied,
	       (unsigned long long)totals.configs_void, (unsigned long long)totals.applies_lost);
	return failures ? 1 : 0;
}
