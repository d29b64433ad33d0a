/* sim_group.c: deterministic simulation of a 3-replica replication group (cluster/group.c):
 * the Paxos core with its WAL on a simulated disk each (tests/sim/sim_disk.h), messages
 * through the wire codec (cluster/paxos_wire.c) and a simulated network (tests/sim/sim_net.h),
 * and an in-memory state machine.
 *
 * Usage: sim_group [--seeds N] [--seed S] [--steps N] [-v]
 *   --seed S first seed (default 1); --seeds N how many from S (default 1 with --seed, else
 *   1000, what make check runs); --steps N ticks of chaos per seed (default 1500);
 *   -v traces the run.
 *
 * One seed drives everything: message loss, duplication, delay and reordering, partitions and
 * one-way cuts, crashes (the group is closed and its disk loses every unsynced write, the last
 * one maybe torn; sometimes a sync or a write fails first, so the crash hits a WAL written
 * but not synced), restarts that reopen the group from its WAL, leadership hand-offs, log
 * compaction, and clients doing puts and strong reads on a few keys. The state machine is
 * durable with its applied slot (as the store's LevelDB batch is). Then the network heals and
 * the run checks:
 *   - prefix agreement: every apply of a slot, on every replica, has the same command;
 *   - nothing acknowledged is lost: every acknowledged put's slot is applied by all;
 *   - the client history is linearizable (tests/sim/linearizability.h);
 *   - progress: a new command commits after healing and every replica converges to the same
 *     state.
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

#define NODES 3
#define KEYS 4
#define CLIENTS 3
#define COMMAND_BYTES 12
#define PROBE_KEY 0xffffffffu
#define CLIENT_TIMEOUT_TICKS 80
#define ELECTION_TICKS 20
#define WAL_DIR "/data/wal"
#define TABLE_ID 7
#define PARTITION_ID 3

struct sim;

/* The in-memory state machine: durable as a whole (it survives crashes), like a store whose
 * every apply is one synced write batch with its applied slot. */
struct memory_sm {
	uint64_t kv[KEYS];
	uint64_t applied_slot;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	struct node *node;
};

struct node {
	uint32_t id;
	bool up;
	uint32_t restarts;
	uint64_t down_until_tick;
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

struct chosen_slot {
	bool set;
	uint32_t type;
	uint32_t key;
	uint64_t value;
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
};

struct sim {
	struct totals *totals;
	uint64_t seed;
	bool verbose;
	uint64_t now_tick;
	uint64_t event_time;
	struct sim_rng rng;
	struct sim_net *net;
	struct node nodes[NODES];
	struct client clients[CLIENTS];
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

/* ---- the in-memory state machine ---- */

static int memory_apply(void *ctx, struct group_apply *entries, size_t count)
{
	struct memory_sm *m = ctx;
	struct sim *sim = m->node->sim;

	for (size_t i = 0; i < count; i++) {
		struct group_apply *a = &entries[i];
		struct chosen_slot *c = chosen_at(sim, a->slot);
		uint32_t key = 0;
		uint64_t value = 0;

		if (a->slot != m->applied_slot + 1) {
			sim_fail(sim, "node %u applies slot %llu after %llu", m->node->id,
				 (unsigned long long)a->slot,
				 (unsigned long long)m->applied_slot);
			return -EINVAL;
		}
		if (a->type == PAXOS_ENTRY_NORMAL) {
			if (command_decode(a->command, a->command_bytes, &key, &value) != 0) {
				sim_fail(sim, "node %u applies a malformed command", m->node->id);
				return -EINVAL;
			}
			if (key < KEYS)
				m->kv[key] = value;
			a->status = 0;
			memcpy(a->result, &value, sizeof(value));
			a->result_bytes = sizeof(value);
		} else if (a->type == PAXOS_ENTRY_CONFIG) {
			if (paxos_config_decode(a->command, a->command_bytes, m->members,
						&m->member_count) != 0) {
				sim_fail(sim, "node %u applies a malformed configuration",
					 m->node->id);
				return -EINVAL;
			}
		}
		if (c->set && (c->type != a->type || c->key != key || c->value != value)) {
			sim_fail(sim, "replicas disagree on slot %llu (node %u)",
				 (unsigned long long)a->slot, m->node->id);
			return -EINVAL;
		}
		c->set = true;
		c->type = a->type;
		c->key = key;
		c->value = value;
		m->applied_slot = a->slot;
	}
	return 0;
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

/* A snapshot must equal the replay of the chosen slots it covers. */
static int memory_snapshot_install(void *ctx, uint64_t through_slot, const uint8_t *bytes,
				   size_t size_bytes, const uint32_t *members,
				   size_t member_count)
{
	struct memory_sm *m = ctx;
	struct sim *sim = m->node->sim;
	uint64_t kv[KEYS] = { 0 }, through;

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
	sim_log(sim, "node %u installs a snapshot through %llu (applied %llu)", m->node->id,
		(unsigned long long)through, (unsigned long long)m->applied_slot);
	memcpy(m->kv, kv, sizeof(kv));
	m->applied_slot = through;
	if (member_count) {
		memcpy(m->members, members, member_count * sizeof(members[0]));
		m->member_count = member_count;
	}
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
	sim->totals->compactions += st.compactions;
	sim->totals->wal_syncs += st.wal_syncs;
	sim->totals->entries_persisted += st.entries_persisted;
}

static void node_crash(struct sim *sim, struct node *n)
{
	sim->totals->crashes++;
	totals_add_group(sim, n);
	sim_log(sim, "node %u crashes", n->id);
	group_close(n->group);
	n->group = NULL;
	n->up = false;
	sim_disk_crash(n->disk);
	/* A fault armed but not hit must not fire in the next life. */
	sim_disk_fail_write(n->disk, 0);
	sim_disk_fail_sync(n->disk, 0);
	sim_net_drop_to(sim->net, n->id);
	client_abandon_at(sim, n->id);
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
	for (uint32_t i = 0; i < NODES; i++)
		config.members[i] = i + 1;
	config.member_count = NODES;
	config.election_ticks = ELECTION_TICKS;
	config.heartbeat_ticks = 3;
	config.lease_ticks = 12;
	config.window_slots = 16;
	config.log_slots = 128;
	config.outbox_msgs = 256;
	config.seed = sim->seed * 1000003 + n->id;
	config.incarnation = n->restarts + 1;
	config.compact_every_slots = 24 + sim_rng_below(&sim->rng, 24);
	config.wal.segment_size_bytes = 2048;
	n->sm.ctx = &n->sm_state;
	n->sm.apply = memory_apply;
	n->sm.snapshot_get = memory_snapshot_get;
	n->sm.snapshot_install = memory_snapshot_install;
	n->sm.state = memory_state;
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

static struct node *node_by_id(struct sim *sim, uint32_t id)
{
	return id >= 1 && id <= NODES ? &sim->nodes[id - 1] : NULL;
}

static uint32_t random_up_node(struct sim *sim)
{
	uint32_t start = (uint32_t)sim_rng_below(&sim->rng, NODES);

	for (uint32_t i = 0; i < NODES; i++) {
		struct node *n = &sim->nodes[(start + i) % NODES];

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

/* ---- faults ---- */

static void faults_step(struct sim *sim)
{
	struct sim_rng *r = &sim->rng;

	for (size_t i = 0; i < NODES; i++) {
		struct node *n = &sim->nodes[i];

		if (n->up && sim_rng_chance(r, 4)) {
			node_crash(sim, n);
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
		uint32_t side = 1u << sim_rng_below(r, NODES);

		sim_log(sim, "partition: node %u isolated", __builtin_ctz(side) + 1);
		sim_net_partition(sim->net, side);
	}
	if (sim_rng_chance(r, 3)) {
		uint32_t from = 1 + (uint32_t)sim_rng_below(r, NODES);
		uint32_t to = 1 + (uint32_t)sim_rng_below(r, NODES);

		if (from != to) {
			sim_log(sim, "one-way cut %u -> %u", from, to);
			sim_net_block(sim->net, from, to, true);
		}
	}
	if (sim_rng_chance(r, 8)) {
		for (uint32_t a = 1; a <= NODES; a++)
			for (uint32_t b = 1; b <= NODES; b++)
				sim_net_block(sim->net, a, b, false);
		sim_log(sim, "links restored");
	}
	if (sim_rng_chance(r, 2)) {
		for (size_t i = 0; i < NODES; i++) {
			struct node *n = &sim->nodes[i];
			struct group_status st;
			uint32_t to;

			if (!n->up)
				continue;
			group_status(n->group, &st);
			if (st.paxos.role != PAXOS_LEADER)
				continue;
			to = 1 + (uint32_t)sim_rng_below(r, NODES);
			if (to != n->id && group_transfer_leadership(n->group, to) == 0) {
				sim_log(sim, "node %u hands leadership to %u", n->id, to);
				node_process(sim, n);
			}
		}
	}
}

/* ---- the run ---- */

static void check_leases(struct sim *sim)
{
	uint32_t holders = 0;

	for (size_t i = 0; i < NODES; i++) {
		struct group_status st;

		if (!sim->nodes[i].up)
			continue;
		group_status(sim->nodes[i].group, &st);
		holders += st.paxos.lease_valid;
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
	for (size_t i = 0; i < NODES && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->up)
			continue;
		group_tick(n->group);
		node_process(sim, n);
	}
	for (size_t i = 0; i < CLIENTS && !sim->failed; i++)
		client_step(sim, &sim->clients[i]);
	check_leases(sim);
}

static struct node *find_leader(struct sim *sim)
{
	for (size_t i = 0; i < NODES; i++) {
		struct group_status st;

		if (!sim->nodes[i].up)
			continue;
		group_status(sim->nodes[i].group, &st);
		if (st.paxos.role == PAXOS_LEADER)
			return &sim->nodes[i];
	}
	return NULL;
}

/* After healing: a command commits, then every replica converges. */
static void check_progress(struct sim *sim)
{
	uint64_t bound = 40 * ELECTION_TICKS, start = sim->now_tick;
	struct node *owner = NULL;
	uint8_t buf[COMMAND_BYTES];

	command_encode(buf, PROBE_KEY, 0x9999);
	sim->probe_token = ~0ull;
	while (!sim->failed && sim->now_tick - start < bound) {
		tick_once(sim, false);
		if (sim->probe_done && sim->probe_status == 0)
			break;
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
	start = sim->now_tick;
	for (;;) {
		bool same = true;

		for (size_t i = 1; i < NODES; i++)
			same = same && sim->nodes[i].sm_state.applied_slot ==
				       sim->nodes[0].sm_state.applied_slot;
		if (same)
			break;
		if (sim->failed || sim->now_tick - start >= bound) {
			sim_fail(sim, "replicas did not converge (%llu %llu %llu)",
				 (unsigned long long)sim->nodes[0].sm_state.applied_slot,
				 (unsigned long long)sim->nodes[1].sm_state.applied_slot,
				 (unsigned long long)sim->nodes[2].sm_state.applied_slot);
			return;
		}
		tick_once(sim, false);
	}
	for (size_t i = 1; i < NODES; i++)
		if (memcmp(sim->nodes[i].sm_state.kv, sim->nodes[0].sm_state.kv,
			   sizeof(sim->nodes[0].sm_state.kv)) != 0)
			sim_fail(sim, "replicas 1 and %zu hold different states", i + 1);
}

static void check_acked(struct sim *sim)
{
	for (size_t i = 0; i < sim->acked_count && !sim->failed; i++)
		for (size_t k = 0; k < NODES; k++)
			if (sim->nodes[k].sm_state.applied_slot < sim->acked_slots[i])
				sim_fail(sim, "node %zu lost acknowledged slot %llu", k + 1,
					 (unsigned long long)sim->acked_slots[i]);
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
	struct sim_net_faults faults;
	bool ok;

	if (!sim)
		out_of_memory();
	sim->totals = totals;
	sim->seed = seed;
	sim->verbose = verbose;
	sim->rng.state = seed * 0x9e3779b97f4a7c15ULL + 1;
	if (sim_net_create(&sim->net, seed, NODES) != 0)
		out_of_memory();
	faults.loss_per_mille = (uint32_t)sim_rng_below(&sim->rng, 100);
	faults.duplicate_per_mille = (uint32_t)sim_rng_below(&sim->rng, 50);
	faults.delay_ticks_max = 1 + (uint32_t)sim_rng_below(&sim->rng, 4);
	faults.slow_per_mille = (uint32_t)sim_rng_below(&sim->rng, 20);
	faults.slow_ticks_max = 30;
	sim_net_set_faults(sim->net, &faults);
	for (uint32_t i = 0; i < NODES; i++) {
		struct node *n = &sim->nodes[i];

		n->id = i + 1;
		n->sim = sim;
		n->sm_state.node = n;
		if (sim_disk_create(seed * 31 + i, &n->disk) != 0)
			out_of_memory();
		if (node_start(sim, n) != 0)
			break;
	}
	for (uint32_t i = 0; i < CLIENTS; i++) {
		sim->clients[i].id = i + 1;
		sim->clients[i].guess = 1 + i % NODES;
	}
	for (uint64_t t = 0; t < steps && !sim->failed; t++)
		tick_once(sim, true);
	/* Heal: every node up, every link restored, clients finish or give up. */
	sim->clients_stopped = true;
	sim_net_heal(sim->net);
	for (size_t i = 0; i < NODES && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

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
	for (size_t i = 0; i < NODES; i++) {
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

int main(int argc, char **argv)
{
	uint64_t first = 1, count = 0, steps = 1500, failures = 0;
	bool verbose = false, seed_given = false;
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
			fprintf(stderr, "usage: sim_group [--seeds N] [--seed S] [--steps N] [-v]\n");
			return 2;
		}
	}
	if (!count)
		count = seed_given ? 1 : 1000;
	for (uint64_t s = first; s < first + count; s++)
		if (!run_seed(s, steps, verbose, &totals))
			failures++;
	printf("sim_group: %llu seeds, %llu failed; crashes %llu, io faults armed %llu, "
	       "elections %llu, snapshots %llu, compactions %llu, wal syncs %llu, "
	       "entries persisted %llu, puts acked %llu, gets acked %llu, canceled %llu, "
	       "abandoned %llu\n",
	       (unsigned long long)count, (unsigned long long)failures,
	       (unsigned long long)totals.crashes, (unsigned long long)totals.io_faults,
	       (unsigned long long)totals.elections, (unsigned long long)totals.snapshots,
	       (unsigned long long)totals.compactions, (unsigned long long)totals.wal_syncs,
	       (unsigned long long)totals.entries_persisted,
	       (unsigned long long)totals.puts_acked, (unsigned long long)totals.gets_acked,
	       (unsigned long long)totals.canceled, (unsigned long long)totals.abandoned);
	return failures ? 1 : 0;
}
