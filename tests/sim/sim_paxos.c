/* sim_paxos.c: deterministic simulation of a Multi-Paxos group (cluster/paxos.c) whose
 * membership changes while it runs.
 *
 * Usage: sim_paxos [--seeds N] [--seed S] [--steps N] [-v]
 *   --seed S    first seed (default 1); --seeds N: how many seeds from S (default 1 with
 *               --seed, else 1000: what make check runs); --steps N: ticks of chaos per
 *               seed (default 2000).
 *
 * One seed drives everything: a simulated network (loss, duplication, delay, reordering,
 * symmetric and one-way partitions), crashes and restarts (a node keeps only what it had
 * synced: a pending group commit is lost), leadership hand-offs, log compaction with
 * snapshots, clients doing puts and lease reads on a few keys, and membership changes.
 *
 * Membership: the group starts with members 1..3 out of a pool of NODE_IDS ids; the others
 * are not running. At random ticks whichever node leads proposes a CONFIG entry that adds a
 * never-used id (while the group has fewer than PAXOS_MEMBERS_MAX members) or removes a
 * member (never below 3; the leader itself included: the core steps it down when it commits
 * its removal). An added node is started, when the change is proposed, with the new list and
 * an empty log; it catches up by LEARN or SNAPSHOT. A node that applies a configuration
 * without itself after it had joined is stopped a little later and its id is retired for the
 * rest of the seed: an id is never re-added, since a fresh log under an old id could forget
 * promises and accepts that stale messages still count on. Each node's store keeps the
 * member list of the last configuration it applied, which is what it restarts with.
 *
 * Then the network heals, every member of the latest configuration comes back, and the run
 * checks:
 *   - one value per slot (every apply of a slot, on any node, has the same digest) and a
 *     snapshot's state equals the replay of the chosen slots it covers;
 *   - each chosen configuration adds or removes exactly one member of the one before it;
 *     a node's member list (store and core) is the configuration as of its applied slot;
 *     a node outside its own member list never campaigns;
 *   - at most one leader holds a valid lease at any tick, and a node never leads the same
 *     ballot twice (nor a ballot that is not its own);
 *   - progress: within a bound a leader exists and a new proposal commits; then every
 *     member of the latest configuration applies the same sequence, through every slot any
 *     node ever applied, to the same state;
 *   - nothing acknowledged to a client is lost; the client history is linearizable.
 * A failing seed prints "FAIL seed=S (replay: tests/sim/sim_paxos --seed S -v)"; exit 1.
 */
#include "cluster/paxos.h"
#include "tests/sim/linearizability.h"
#include "tests/sim/sim_net.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_IDS 7		/* the pool of ids; ids 1..INITIAL_MEMBERS start as members */
#define INITIAL_MEMBERS 3
#define MEMBERS_MIN 3
#define KEYS 32			/* at most; a run uses 4 + steps / 1000 of them */
#define CLIENTS 3
#define PROBE_KEY 0xffffffffu
#define VALUE_BYTES 16
#define CLIENT_TIMEOUT_TICKS 80
#define ELECTION_TICKS 20
#define STEPS_DEFAULT 2000

struct wal_rec {
	uint64_t slot;
	struct paxos_ballot ballot;
	uint32_t type;
	uint8_t *value;
	size_t value_bytes;
};

struct pending_write {
	uint64_t persist_id;
	bool has_hard_state;
	struct paxos_ballot promised;
	struct wal_rec *recs;
	size_t rec_count;
};

struct node {
	uint32_t id;
	bool up;
	bool provisioned;		/* started once: an initial member, or added */
	bool retired;			/* removed and stopped for good */
	uint32_t restarts;
	uint64_t down_until_tick;
	uint64_t retire_tick;		/* non-zero: applied its removal, stops at this tick */
	struct paxos *core;
	/* Durable: the synced WAL, the hard state, and the store (durable when applied,
	 * with its applied index and member list in the same write, as the real store
	 * does). */
	struct paxos_ballot promised;
	struct wal_rec *wal;
	size_t wal_count;
	size_t wal_cap;
	uint64_t kv[KEYS];
	uint64_t applied_slot;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	bool joined;			/* has applied a configuration that holds it */
	bool added;			/* provisioned to be added, not an initial member */
	/* The checker's, not the node's: the highest ballot it led, and whether it leads. */
	struct paxos_ballot led_ballot;
	bool leading;
	/* Volatile. */
	struct pending_write *pending;
	size_t pending_count;
	size_t pending_cap;
	bool sync_scheduled;
	uint64_t sync_due_tick;
	uint8_t snapshot_buf[8 + 8 * KEYS];
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
	uint64_t read_id;
	uint64_t deadline_tick;
	uint32_t guess;
	uint64_t seq;
};

struct chosen_slot {
	bool set;
	uint64_t digest;
	uint32_t type;
	uint32_t key;
	uint64_t put_value;
};

/* A chosen configuration, in slot order (slot 0: the initial one). */
struct config_change {
	uint64_t slot;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
};

/* What the seeds exercised, summed (a simulation that injects nothing proves nothing). */
struct totals {
	uint64_t crashes;
	uint64_t elections;
	uint64_t guarded;
	uint64_t snapshots;
	uint64_t malformed;		/* mostly messages from non-members */
	uint64_t outbox_full;
	uint64_t puts_acked;
	uint64_t gets_acked;
	uint64_t ops_abandoned;
	uint64_t changes_proposed;
	uint64_t changes_refused;	/* -EAGAIN: not now */
	uint64_t adds_chosen;
	uint64_t removes_chosen;
	uint64_t leader_self_removals;
	uint64_t retirements;
	uint64_t max_members;
};

struct sim {
	struct totals *totals;
	uint64_t seed;
	bool verbose;
	uint64_t now_tick;
	uint64_t event_time;
	struct sim_rng rng;
	struct sim_net *net;
	struct paxos_config config;
	uint32_t compact_keep_slots;
	uint32_t sync_ticks_max;	/* group commit latency */
	uint32_t crash_per_mille;	/* per node per tick */
	uint32_t key_count;		/* keys in use: the checker's work per key stays small */
	uint32_t change_per_mille;	/* per tick: the leader proposes a membership change */
	struct node nodes[NODE_IDS];
	bool ever_member[NODE_IDS + 1];	/* in some chosen configuration */
	struct config_change *changes;
	size_t change_count;
	size_t change_cap;
	struct client clients[CLIENTS];
	bool clients_stopped;
	struct lin_op *history;
	size_t history_count;
	size_t history_cap;
	struct chosen_slot *chosen;
	size_t chosen_cap;
	uint64_t read_id_next;
	bool failed;
	char reason[512];
	uint64_t leader_changes;
	uint32_t last_leader;
	uint64_t applied_max;		/* the highest slot any node applied */
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

static uint64_t digest(uint32_t type, const uint8_t *data, size_t size_bytes)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ type;

	for (size_t i = 0; i < size_bytes; i++) {
		h ^= data[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void value_encode(uint8_t *out, uint32_t key, uint64_t value)
{
	memset(out, 0, VALUE_BYTES);
	memcpy(out, &key, 4);
	memcpy(out + 8, &value, 8);
}

static int value_decode(const uint8_t *in, size_t size_bytes, uint32_t *key, uint64_t *value)
{
	if (size_bytes != VALUE_BYTES)
		return -EINVAL;
	memcpy(key, in, 4);
	memcpy(value, in + 8, 8);
	return 0;
}

/* ---- history ---- */

static size_t history_invoke(struct sim *sim, enum lin_kind kind, uint32_t key, uint64_t value)
{
	struct lin_op *op;

	if (sim->history_count == sim->history_cap) {
		size_t cap = sim->history_cap ? 2 * sim->history_cap : 256;
		struct lin_op *h = realloc(sim->history, cap * sizeof(*h));

		if (!h) {
			fprintf(stderr, "sim_paxos: out of memory\n");
			exit(2);
		}
		sim->history = h;
		sim->history_cap = cap;
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

/* ---- chosen slots, as seen by every apply ---- */

static struct chosen_slot *chosen_at(struct sim *sim, uint64_t slot)
{
	if (slot >= sim->chosen_cap) {
		size_t cap = sim->chosen_cap ? sim->chosen_cap : 1024;
		struct chosen_slot *c;

		while (cap <= slot)
			cap *= 2;
		c = realloc(sim->chosen, cap * sizeof(*c));
		if (!c) {
			fprintf(stderr, "sim_paxos: out of memory\n");
			exit(2);
		}
		memset(c + sim->chosen_cap, 0, (cap - sim->chosen_cap) * sizeof(*c));
		sim->chosen = c;
		sim->chosen_cap = cap;
	}
	return &sim->chosen[slot];
}

/* ---- configurations ---- */

static bool members_has(const uint32_t *members, size_t count, uint32_t id)
{
	for (size_t i = 0; i < count; i++)
		if (members[i] == id)
			return true;
	return false;
}

/* Same set of ids (order may differ). */
static bool members_equal(const uint32_t *a, size_t a_count, const uint32_t *b, size_t b_count)
{
	if (a_count != b_count)
		return false;
	for (size_t i = 0; i < a_count; i++)
		if (!members_has(b, b_count, a[i]))
			return false;
	return true;
}

static void members_format(const uint32_t *members, size_t count, char *out, size_t size)
{
	size_t used = 0;

	out[0] = 0;
	for (size_t i = 0; i < count && used < size; i++) {
		int w = snprintf(out + used, size - used, "%s%u", i ? "," : "", members[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* The configuration in force once slot is applied. */
static const struct config_change *config_as_of(const struct sim *sim, uint64_t slot)
{
	size_t i = sim->change_count;

	while (i > 1 && sim->changes[i - 1].slot > slot)
		i--;
	return &sim->changes[i - 1];
}

/* Records the configuration chosen in slot (slots are first applied in increasing order,
 * so the list stays sorted) and checks it is a single-member change. */
static void config_record(struct sim *sim, uint64_t slot, const uint32_t *members, size_t count)
{
	const struct config_change *prev = &sim->changes[sim->change_count - 1];
	struct config_change *c;
	size_t common = 0;
	char was[64], now[64];

	for (size_t i = 0; i < count; i++)
		if (members_has(prev->members, prev->member_count, members[i]))
			common++;
	members_format(prev->members, prev->member_count, was, sizeof(was));
	members_format(members, count, now, sizeof(now));
	if (slot <= prev->slot) {
		sim_fail(sim, "configuration of slot %llu chosen after that of slot %llu",
			 (unsigned long long)slot, (unsigned long long)prev->slot);
		return;
	}
	if (!((count == prev->member_count + 1 && common == prev->member_count) ||
	      (count + 1 == prev->member_count && common == count))) {
		sim_fail(sim, "slot %llu: configuration {%s} chosen after {%s} (slot %llu) is not "
			 "a single-member change", (unsigned long long)slot, now, was,
			 (unsigned long long)prev->slot);
		return;
	}
	if (sim->change_count == sim->change_cap) {
		size_t cap = sim->change_cap ? 2 * sim->change_cap : 16;
		struct config_change *p = realloc(sim->changes, cap * sizeof(*p));

		if (!p) {
			fprintf(stderr, "sim_paxos: out of memory\n");
			exit(2);
		}
		sim->changes = p;
		sim->change_cap = cap;
	}
	c = &sim->changes[sim->change_count++];
	memset(c, 0, sizeof(*c));
	c->slot = slot;
	memcpy(c->members, members, count * sizeof(members[0]));
	c->member_count = count;
	for (size_t i = 0; i < count; i++)
		if (members[i] >= 1 && members[i] <= NODE_IDS)
			sim->ever_member[members[i]] = true;
	if (count > prev->member_count)
		sim->totals->adds_chosen++;
	else
		sim->totals->removes_chosen++;
	if (count > sim->totals->max_members)
		sim->totals->max_members = count;
	sim_log(sim, "slot %llu: configuration {%s} chosen (was {%s})", (unsigned long long)slot,
		now, was);
}

/* The node's store takes a member list (applied with slot, or with a snapshot). A node that
 * had joined and is no longer listed was removed: it stops a little later, for good. */
static void node_set_members(struct sim *sim, struct node *n, const uint32_t *members,
			     size_t count)
{
	memcpy(n->members, members, count * sizeof(members[0]));
	n->member_count = count;
	if (members_has(members, count, n->id)) {
		n->joined = true;
		return;
	}
	/* A new member replaying older configurations is not yet in them: not a removal. */
	if (n->joined && !n->retire_tick) {
		n->retire_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, 2 * ELECTION_TICKS);
		sim_log(sim, "node %u applied its removal; stops at tick %llu", n->id,
			(unsigned long long)n->retire_tick);
	}
}

/* ---- nodes ---- */

static void wal_rec_free(struct wal_rec *r)
{
	free(r->value);
	r->value = NULL;
}

static void pending_clear(struct node *n)
{
	for (size_t i = 0; i < n->pending_count; i++) {
		for (size_t j = 0; j < n->pending[i].rec_count; j++)
			wal_rec_free(&n->pending[i].recs[j]);
		free(n->pending[i].recs);
	}
	n->pending_count = 0;
	n->sync_scheduled = false;
}

static void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size);

	if (!p) {
		fprintf(stderr, "sim_paxos: out of memory\n");
		exit(2);
	}
	return p;
}

static void pending_add(struct sim *sim, struct node *n, const struct paxos_ready *rd)
{
	struct pending_write *w;

	if (n->pending_count == n->pending_cap) {
		size_t cap = n->pending_cap ? 2 * n->pending_cap : 16;
		struct pending_write *p = realloc(n->pending, cap * sizeof(*p));

		if (!p) {
			fprintf(stderr, "sim_paxos: out of memory\n");
			exit(2);
		}
		n->pending = p;
		n->pending_cap = cap;
	}
	w = &n->pending[n->pending_count++];
	w->persist_id = rd->persist_id;
	w->has_hard_state = rd->hard_state_changed;
	w->promised = rd->promised;
	w->rec_count = rd->entry_count;
	w->recs = xcalloc(rd->entry_count, sizeof(*w->recs));
	for (size_t i = 0; i < rd->entry_count; i++) {
		const struct paxos_entry *e = &rd->entries[i];

		w->recs[i].slot = e->slot;
		w->recs[i].ballot = e->ballot;
		w->recs[i].type = e->type;
		w->recs[i].value_bytes = e->value_bytes;
		w->recs[i].value = xcalloc(e->value_bytes, 1);
		memcpy(w->recs[i].value, e->value, e->value_bytes);
	}
	if (!n->sync_scheduled) {
		/* Group commit: a sync some ticks later covers everything queued meanwhile. */
		n->sync_scheduled = true;
		n->sync_due_tick = sim->now_tick +
				   sim_rng_below(&sim->rng, sim->sync_ticks_max + 1);
	}
}

static void wal_append(struct node *n, struct wal_rec *r)
{
	if (n->wal_count == n->wal_cap) {
		size_t cap = n->wal_cap ? 2 * n->wal_cap : 256;
		struct wal_rec *w = realloc(n->wal, cap * sizeof(*w));

		if (!w) {
			fprintf(stderr, "sim_paxos: out of memory\n");
			exit(2);
		}
		n->wal = w;
		n->wal_cap = cap;
	}
	n->wal[n->wal_count++] = *r;
	r->value = NULL;
}

/* Drops WAL records the store covers (what a real WAL does at checkpoints). */
static void wal_prune(struct node *n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n->wal_count; i++) {
		if (n->wal[i].slot <= n->applied_slot) {
			wal_rec_free(&n->wal[i]);
			continue;
		}
		n->wal[kept++] = n->wal[i];
	}
	n->wal_count = kept;
}

static int snapshot_get(void *ctx, struct paxos_snapshot_ref *out)
{
	struct node *n = ctx;

	memcpy(n->snapshot_buf, &n->applied_slot, 8);
	memcpy(n->snapshot_buf + 8, n->kv, 8 * KEYS);
	out->through_slot = n->applied_slot;
	out->bytes = n->snapshot_buf;
	out->size_bytes = sizeof(n->snapshot_buf);
	return 0;
}

static void client_abandon_at(struct sim *sim, uint32_t node)
{
	for (size_t i = 0; i < CLIENTS; i++) {
		struct client *c = &sim->clients[i];

		if (c->busy && c->node == node) {
			sim_log(sim, "client %u abandons op %zu (node %u died)", c->id, c->op_index,
				node);
			c->busy = false;
		}
	}
}

static void apply_entry(struct sim *sim, struct node *n, const struct paxos_entry *e)
{
	struct chosen_slot *c = chosen_at(sim, e->slot);
	uint64_t d = digest(e->type, e->value, e->value_bytes);
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count = 0;
	uint32_t key = 0;
	uint64_t value = 0;

	if (e->slot != n->applied_slot + 1) {
		sim_fail(sim, "node %u applies slot %llu after %llu", n->id,
			 (unsigned long long)e->slot, (unsigned long long)n->applied_slot);
		return;
	}
	if (c->set && c->digest != d) {
		sim_fail(sim, "two values chosen in slot %llu (node %u disagrees)",
			 (unsigned long long)e->slot, n->id);
		return;
	}
	if (e->type == PAXOS_ENTRY_NORMAL && value_decode(e->value, e->value_bytes, &key,
							   &value) != 0) {
		sim_fail(sim, "node %u applies a malformed value", n->id);
		return;
	}
	if (e->type == PAXOS_ENTRY_CONFIG && paxos_config_decode(e->value, e->value_bytes,
								  members, &member_count) != 0) {
		sim_fail(sim, "node %u applies a malformed configuration", n->id);
		return;
	}
	if (!c->set) {
		c->set = true;
		c->digest = d;
		c->type = e->type;
		c->key = key;
		c->put_value = value;
		if (e->type == PAXOS_ENTRY_CONFIG)
			config_record(sim, e->slot, members, member_count);
	}
	n->applied_slot = e->slot;
	if (e->slot > sim->applied_max)
		sim->applied_max = e->slot;
	if (e->type == PAXOS_ENTRY_CONFIG)
		node_set_members(sim, n, members, member_count);
	if (e->type != PAXOS_ENTRY_NORMAL)
		return;
	if (key < KEYS)
		n->kv[key] = value;
	for (size_t i = 0; i < CLIENTS; i++) {
		struct client *cl = &sim->clients[i];

		if (cl->busy && !cl->is_get && cl->node == n->id && cl->put_value == value) {
			history_complete(sim, cl->op_index, 0);
			sim_log(sim, "client %u put k%u=%llx done (slot %llu)", cl->id, key,
				(unsigned long long)value, (unsigned long long)e->slot);
			cl->busy = false;
		}
	}
}

/* The members sent with a snapshot through slot are the sender's committed configuration,
 * which may be ahead of the snapshot's state: any configuration in force at or after slot. */
static bool snapshot_members_valid(const struct sim *sim, uint64_t through,
				   const uint32_t *members, size_t count)
{
	if (count == 0 || count > PAXOS_MEMBERS_MAX || !members)
		return false;
	for (size_t i = 0; i < sim->change_count; i++) {
		const struct config_change *c = &sim->changes[i];

		if (c != config_as_of(sim, through) && c->slot <= through)
			continue;
		if (members_equal(c->members, c->member_count, members, count))
			return true;
	}
	return false;
}

/* The state a snapshot through slot must hold: the replay of the chosen slots. */
static void install_snapshot(struct sim *sim, struct node *n, const struct paxos_ready *rd)
{
	uint64_t kv[KEYS] = { 0 };
	uint64_t through;

	if (rd->snapshot.size_bytes != sizeof(n->snapshot_buf)) {
		sim_fail(sim, "node %u got a snapshot of %zu bytes", n->id,
			 rd->snapshot.size_bytes);
		return;
	}
	memcpy(&through, rd->snapshot.bytes, 8);
	if (through != rd->snapshot.through_slot) {
		sim_fail(sim, "snapshot through %llu says %llu",
			 (unsigned long long)rd->snapshot.through_slot,
			 (unsigned long long)through);
		return;
	}
	for (uint64_t s = 1; s <= through; s++) {
		struct chosen_slot *c = chosen_at(sim, s);

		if (!c->set) {
			sim_fail(sim, "snapshot through %llu covers slot %llu nobody applied",
				 (unsigned long long)through, (unsigned long long)s);
			return;
		}
		if (c->type == PAXOS_ENTRY_NORMAL && c->key < KEYS)
			kv[c->key] = c->put_value;
	}
	if (memcmp(kv, rd->snapshot.bytes + 8, sizeof(kv)) != 0) {
		sim_fail(sim, "snapshot through %llu differs from the chosen slots",
			 (unsigned long long)through);
		return;
	}
	if (!snapshot_members_valid(sim, through, rd->snapshot_members,
				    rd->snapshot_member_count)) {
		char got[64];

		members_format(rd->snapshot_members, rd->snapshot_member_count, got, sizeof(got));
		sim_fail(sim, "node %u: snapshot through %llu comes with members {%s}, no "
			 "configuration chosen since", n->id, (unsigned long long)through, got);
		return;
	}
	sim_log(sim, "node %u installs snapshot through %llu (applied %llu)", n->id,
		(unsigned long long)through, (unsigned long long)n->applied_slot);
	memcpy(n->kv, kv, sizeof(kv));
	n->applied_slot = through;
	node_set_members(sim, n, rd->snapshot_members, rd->snapshot_member_count);
}

static void node_process(struct sim *sim, struct node *n)
{
	while (n->up && !sim->failed && paxos_has_ready(n->core)) {
		struct paxos_ready rd;
		struct paxos_status st;

		paxos_ready(n->core, &rd);
		if (rd.persist_id)
			pending_add(sim, n, &rd);
		for (size_t i = 0; i < rd.msg_count; i++) {
			if (sim_net_send(sim->net, sim->now_tick, &rd.msgs[i]) != 0) {
				fprintf(stderr, "sim_paxos: out of memory\n");
				exit(2);
			}
		}
		if (rd.has_snapshot)
			install_snapshot(sim, n, &rd);
		for (size_t i = 0; i < rd.committed_count && !sim->failed; i++)
			apply_entry(sim, n, &rd.committed[i]);
		for (size_t i = 0; i < rd.read_count; i++) {
			for (size_t j = 0; j < CLIENTS; j++) {
				struct client *c = &sim->clients[j];

				if (!c->busy || !c->is_get || c->read_id != rd.reads[i].read_id)
					continue;
				if (n->applied_slot < rd.reads[i].read_slot)
					sim_fail(sim, "read granted before its slot was applied");
				history_complete(sim, c->op_index, n->kv[c->key]);
				sim_log(sim, "client %u get k%u -> %llx at node %u", c->id, c->key,
					(unsigned long long)n->kv[c->key], n->id);
				c->busy = false;
			}
		}
		paxos_advance(n->core, &rd);
		paxos_status(n->core, &st);
		if (st.applied_slot != n->applied_slot)
			sim_fail(sim, "node %u: core applied %llu, store %llu", n->id,
				 (unsigned long long)st.applied_slot,
				 (unsigned long long)n->applied_slot);
		if (!members_equal(st.members, st.member_count, n->members, n->member_count)) {
			char core_list[64], store_list[64];

			members_format(st.members, st.member_count, core_list, sizeof(core_list));
			members_format(n->members, n->member_count, store_list,
				       sizeof(store_list));
			sim_fail(sim, "node %u at slot %llu: core members {%s}, store {%s}", n->id,
				 (unsigned long long)n->applied_slot, core_list, store_list);
		}
		if (st.role != PAXOS_FOLLOWER &&
		    !members_has(st.members, st.member_count, n->id))
			sim_fail(sim, "node %u campaigns or leads (role %d) outside its members",
				 n->id, (int)st.role);
		if (n->applied_slot >= st.log_first_slot + sim->config.log_slots / 2) {
			uint64_t through = n->applied_slot > sim->compact_keep_slots ?
					   n->applied_slot - sim->compact_keep_slots : 0;

			if (through >= st.log_first_slot && paxos_compact(n->core, through) != 0)
				sim_fail(sim, "compaction refused");
		}
		if (n->wal_count > 4 * (size_t)sim->config.log_slots)
			wal_prune(n);
	}
}

static void node_sync(struct sim *sim, struct node *n)
{
	uint64_t last = 0;

	if (!n->up || !n->sync_scheduled || n->sync_due_tick > sim->now_tick)
		return;
	for (size_t i = 0; i < n->pending_count; i++) {
		struct pending_write *w = &n->pending[i];

		if (w->has_hard_state)
			n->promised = w->promised;
		for (size_t j = 0; j < w->rec_count; j++)
			wal_append(n, &w->recs[j]);
		last = w->persist_id;
	}
	pending_clear(n);
	if (last) {
		paxos_persisted(n->core, last);
		node_process(sim, n);
	}
}

static int node_start(struct sim *sim, struct node *n)
{
	struct paxos_config cfg = sim->config;
	struct paxos_restore restore;
	struct paxos_entry *entries;
	int rc;

	entries = xcalloc(n->wal_count, sizeof(*entries));
	for (size_t i = 0; i < n->wal_count; i++) {
		entries[i].slot = n->wal[i].slot;
		entries[i].ballot = n->wal[i].ballot;
		entries[i].type = n->wal[i].type;
		entries[i].value = n->wal[i].value;
		entries[i].value_bytes = n->wal[i].value_bytes;
	}
	memset(&restore, 0, sizeof(restore));
	restore.promised = n->promised;
	restore.applied_slot = n->applied_slot;
	restore.entries = entries;
	restore.entry_count = n->wal_count;
	cfg.self_id = n->id;
	/* The application's job: the member list of the last configuration it applied. */
	memcpy(cfg.members, n->members, sizeof(cfg.members));
	cfg.member_count = n->member_count;
	/* An added node without state waits for a snapshot (paxos.h). */
	cfg.joining = n->added && n->applied_slot == 0;
	cfg.seed = sim->seed * 1000003 + n->restarts;
	cfg.snapshot.get = snapshot_get;
	cfg.snapshot.ctx = n;
	rc = paxos_create(&n->core, &cfg, &restore);
	free(entries);
	if (rc) {
		sim_fail(sim, "node %u cannot restart: %d", n->id, rc);
		return rc;
	}
	n->up = true;
	n->provisioned = true;
	n->leading = false;
	return 0;
}

static void totals_add_core(struct sim *sim, struct node *n)
{
	struct paxos_status st;

	if (!n->core)
		return;
	paxos_status(n->core, &st);
	sim->totals->elections += st.counters.elections;
	sim->totals->guarded += st.counters.msgs_guarded;
	sim->totals->snapshots += st.counters.snapshots_installed;
	sim->totals->malformed += st.counters.msgs_malformed;
	sim->totals->outbox_full += st.counters.outbox_full;
}

static void node_stop(struct sim *sim, struct node *n)
{
	totals_add_core(sim, n);
	paxos_destroy(n->core);
	n->core = NULL;
	n->up = false;
	n->leading = false;
	pending_clear(n);
	sim_net_drop_to(sim->net, n->id);
	client_abandon_at(sim, n->id);
}

static void node_crash(struct sim *sim, struct node *n)
{
	sim->totals->crashes++;
	sim_log(sim, "node %u crashes (%zu unsynced writes lost)", n->id, n->pending_count);
	node_stop(sim, n);
	n->down_until_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, 150);
	if (n->retire_tick) {
		/* It had applied its removal: it is not brought back. */
		n->retired = true;
		sim->totals->retirements++;
	}
}

/* A removed node that applied its removal is decommissioned. */
static void node_retire(struct sim *sim, struct node *n)
{
	sim_log(sim, "node %u is retired", n->id);
	node_stop(sim, n);
	n->retired = true;
	sim->totals->retirements++;
}

/* Brings up a node that is about to be added: an empty log and the new member list. It was
 * never in a chosen configuration, so no member ever sent it anything to remember; a node
 * left running by an addition that was never chosen is started again with this list. */
static int node_provision(struct sim *sim, struct node *n, const uint32_t *members,
			  size_t count)
{
	if (n->up)
		node_stop(sim, n);
	if (n->promised.round || n->wal_count || n->applied_slot) {
		sim_fail(sim, "node %u holds state but was never a member", n->id);
		return -EINVAL;
	}
	memcpy(n->members, members, count * sizeof(members[0]));
	n->member_count = count;
	n->joined = false;
	n->added = true;
	memset(n->kv, 0, sizeof(n->kv));
	n->restarts++;
	sim_log(sim, "node %u starts empty to be added", n->id);
	return node_start(sim, n);
}

static void node_restart(struct sim *sim, struct node *n)
{
	n->restarts++;
	sim_log(sim, "node %u restarts (applied %llu, wal %zu)", n->id,
		(unsigned long long)n->applied_slot, n->wal_count);
	if (node_start(sim, n) == 0)
		node_process(sim, n);
}

/* ---- clients ---- */

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

static void client_step(struct sim *sim, struct client *c)
{
	struct node *n;
	uint32_t hint = 0;
	int rc;

	if (c->busy) {
		if (sim->now_tick >= c->deadline_tick) {
			sim_log(sim, "client %u gives up op %zu", c->id, c->op_index);
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
	c->key = (uint32_t)sim_rng_below(&sim->rng, sim->key_count);
	c->is_get = sim_rng_chance(&sim->rng, 400);
	if (c->is_get) {
		c->read_id = ++sim->read_id_next;
		rc = paxos_lease_read(n->core, c->read_id, &hint);
		if (rc == 0)
			c->op_index = history_invoke(sim, LIN_GET, c->key, 0);
	} else {
		uint8_t buf[VALUE_BYTES];
		uint64_t slot;

		c->put_value = ((uint64_t)c->id << 40) | ++c->seq;
		value_encode(buf, c->key, c->put_value);
		rc = paxos_propose(n->core, PAXOS_ENTRY_NORMAL, buf, sizeof(buf), &slot, &hint);
		if (rc == 0) {
			c->op_index = history_invoke(sim, LIN_PUT, c->key, c->put_value);
			sim_log(sim, "client %u put k%u=%llx at node %u slot %llu", c->id, c->key,
				(unsigned long long)c->put_value, n->id, (unsigned long long)slot);
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

/* A random id among the nodes that exist (started once, not retired); 0 if none. */
static uint32_t random_live_id(struct sim *sim)
{
	uint32_t ids[NODE_IDS];
	size_t count = 0;

	for (size_t i = 0; i < NODE_IDS; i++)
		if (sim->nodes[i].provisioned && !sim->nodes[i].retired)
			ids[count++] = sim->nodes[i].id;
	return count ? ids[sim_rng_below(&sim->rng, count)] : 0;
}

static void faults_step(struct sim *sim)
{
	struct sim_rng *r = &sim->rng;

	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		if (n->up && n->retire_tick && sim->now_tick >= n->retire_tick)
			node_retire(sim, n);
		else if (n->up && sim_rng_chance(r, sim->crash_per_mille))
			node_crash(sim, n);
		else if (!n->up && n->provisioned && !n->retired &&
			 sim->now_tick >= n->down_until_tick)
			node_restart(sim, n);
	}
	if (sim_rng_chance(r, 3)) {
		uint32_t id = random_live_id(sim);

		sim_log(sim, "partition: node %u isolated", id);
		if (id)
			sim_net_partition(sim->net, 1u << (id - 1));
	}
	if (sim_rng_chance(r, 3)) {
		uint32_t from = random_live_id(sim);
		uint32_t to = random_live_id(sim);

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
			struct paxos_status st;
			uint32_t to;

			if (!n->up)
				continue;
			paxos_status(n->core, &st);
			if (st.role != PAXOS_LEADER)
				continue;
			to = random_live_id(sim);
			if (to != n->id && paxos_transfer_leadership(n->core, to) == 0) {
				sim_log(sim, "node %u hands leadership to %u", n->id, to);
				node_process(sim, n);
			}
		}
	}
}

static struct node *find_leader(struct sim *sim)
{
	for (size_t i = 0; i < NODE_IDS; i++) {
		struct paxos_status st;

		if (!sim->nodes[i].up)
			continue;
		paxos_status(sim->nodes[i].core, &st);
		if (st.role == PAXOS_LEADER)
			return &sim->nodes[i];
	}
	return NULL;
}

/* Whichever node leads proposes to add a never-used id or to remove a member (itself
 * included). The added node starts now, with the new list and an empty log. */
static void membership_step(struct sim *sim)
{
	struct sim_rng *r = &sim->rng;
	uint32_t members[PAXOS_MEMBERS_MAX], addable[NODE_IDS];
	uint8_t buf[4 + 4 * PAXOS_MEMBERS_MAX];
	size_t count = 0, addable_count = 0, size_bytes;
	struct paxos_status st;
	struct node *l, *added = NULL;
	char list[64];
	uint64_t slot;
	bool add;
	int rc;

	if (!sim_rng_chance(r, sim->change_per_mille))
		return;
	l = find_leader(sim);
	if (!l)
		return;
	paxos_status(l->core, &st);
	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		if (!sim->ever_member[n->id] && !members_has(st.members, st.member_count, n->id))
			addable[addable_count++] = n->id;
	}
	add = st.member_count < PAXOS_MEMBERS_MAX && addable_count;
	if (add && st.member_count > MEMBERS_MIN)
		add = sim_rng_chance(r, 500);
	if (!add && st.member_count <= MEMBERS_MIN)
		return;
	if (add) {
		memcpy(members, st.members, st.member_count * sizeof(members[0]));
		count = st.member_count;
		members[count++] = addable[sim_rng_below(r, addable_count)];
		added = node_by_id(sim, members[count - 1]);
	} else {
		size_t gone = (size_t)sim_rng_below(r, st.member_count);

		for (size_t i = 0; i < st.member_count; i++)
			if (i != gone)
				members[count++] = st.members[i];
	}
	size_bytes = paxos_config_encode(members, count, buf);
	rc = paxos_propose(l->core, PAXOS_ENTRY_CONFIG, buf, size_bytes, &slot, NULL);
	if (rc == -EAGAIN) {
		sim->totals->changes_refused++;
		return;
	}
	if (rc != 0) {
		sim_fail(sim, "leader %u refuses a single-member change: %d", l->id, rc);
		return;
	}
	sim->totals->changes_proposed++;
	if (!add && !members_has(members, count, l->id))
		sim->totals->leader_self_removals++;
	members_format(members, count, list, sizeof(list));
	sim_log(sim, "node %u proposes configuration {%s} in slot %llu", l->id, list,
		(unsigned long long)slot);
	node_process(sim, l);
	if (added && !sim->failed && node_provision(sim, added, members, count) == 0)
		node_process(sim, added);
}

/* ---- the run ---- */

/* At most one lease holder; and a node leads a ballot of its own, higher than any it led
 * before (a ballot led twice, e.g. after a restart forgot a promise, could choose two
 * values in a slot). */
static void check_leaders(struct sim *sim)
{
	uint32_t holders = 0, leader = 0;

	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];
		struct paxos_status st;

		if (!n->up)
			continue;
		paxos_status(n->core, &st);
		if (st.lease_valid) {
			holders++;
			leader = st.self_id;
		}
		if (st.role != PAXOS_LEADER) {
			n->leading = false;
			continue;
		}
		if (n->leading && paxos_ballot_compare(st.ballot, n->led_ballot) == 0)
			continue;
		if (st.ballot.node_id != n->id ||
		    paxos_ballot_compare(st.ballot, n->led_ballot) <= 0) {
			sim_fail(sim, "node %u leads ballot (%llu,%u) after leading (%llu,%u)",
				 n->id, (unsigned long long)st.ballot.round, st.ballot.node_id,
				 (unsigned long long)n->led_ballot.round, n->led_ballot.node_id);
			return;
		}
		n->led_ballot = st.ballot;
		n->leading = true;
	}
	if (holders > 1)
		sim_fail(sim, "%u leaders hold a lease at once", holders);
	if (leader && leader != sim->last_leader) {
		sim->leader_changes++;
		sim->last_leader = leader;
		sim_log(sim, "node %u holds the lease", leader);
	}
}

static void tick_once(struct sim *sim, bool chaos)
{
	struct paxos_msg *m;

	sim->now_tick++;
	if (chaos) {
		faults_step(sim);
		membership_step(sim);
	}
	while (!sim->failed && sim_net_deliver(sim->net, sim->now_tick, &m)) {
		struct node *n = node_by_id(sim, m->to);

		if (n && n->up) {
			(void)paxos_step(n->core, m);
			node_process(sim, n);
		}
		sim_net_msg_free(m);
	}
	for (size_t i = 0; i < NODE_IDS && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->up)
			continue;
		paxos_tick(n->core);
		node_process(sim, n);
		node_sync(sim, n);
	}
	for (size_t i = 0; i < CLIENTS && !sim->failed; i++)
		client_step(sim, &sim->clients[i]);
	check_leaders(sim);
}

/* The latest chosen configuration (what an operator would bring back after an outage). */
static const struct config_change *config_latest(const struct sim *sim)
{
	return &sim->changes[sim->change_count - 1];
}

/* Restarts every member of the latest configuration that is down. */
static void restart_members(struct sim *sim)
{
	const struct config_change *c = config_latest(sim);

	for (size_t i = 0; i < c->member_count && !sim->failed; i++) {
		struct node *n = node_by_id(sim, c->members[i]);

		if (!n) {
			sim_fail(sim, "member %u is not in the pool", c->members[i]);
			return;
		}
		if (n->retired) {
			sim_fail(sim, "node %u was retired but is a member again", n->id);
			return;
		}
		if (!n->up)
			node_restart(sim, n);
	}
}

/* Have the members of the latest configuration applied the same slots, through probe_slot
 * and every slot any node applied? */
static bool members_converged(struct sim *sim, uint64_t probe_slot)
{
	const struct config_change *c = config_latest(sim);
	uint64_t first = node_by_id(sim, c->members[0])->applied_slot;

	if (first < probe_slot || first < sim->applied_max)
		return false;
	for (size_t i = 1; i < c->member_count; i++)
		if (node_by_id(sim, c->members[i])->applied_slot != first)
			return false;
	return true;
}

/* After healing: a leader, a new value committed, every member of the latest configuration
 * caught up. */
static void check_progress(struct sim *sim)
{
	uint64_t bound = 40 * ELECTION_TICKS, start = sim->now_tick;
	uint64_t probe_slot = 0;
	struct node *owner = NULL;
	const struct config_change *c;
	uint8_t buf[VALUE_BYTES];
	char list[64], applied[256];
	size_t used = 0;

	value_encode(buf, PROBE_KEY, 0x9999);
	while (!sim->failed && sim->now_tick - start < bound) {
		tick_once(sim, false);
		/* A pending change may be chosen meanwhile: bring its members up too. */
		restart_members(sim);
		if (!probe_slot) {
			struct node *l = find_leader(sim);

			if (l && paxos_propose(l->core, PAXOS_ENTRY_NORMAL, buf, sizeof(buf),
					       &probe_slot, NULL) == 0) {
				owner = l;
				node_process(sim, l);
			} else {
				probe_slot = 0;
			}
		} else if (owner->applied_slot >= probe_slot) {
			break;
		} else if (!owner->up || !find_leader(sim) || find_leader(sim) != owner) {
			probe_slot = 0;	/* leadership moved: propose again */
		}
	}
	if (sim->failed)
		return;
	if (!probe_slot || owner->applied_slot < probe_slot) {
		sim_fail(sim, "no progress within %llu ticks after healing",
			 (unsigned long long)bound);
		return;
	}
	sim_log(sim, "progress: probe committed in slot %llu by node %u",
		(unsigned long long)probe_slot, owner->id);
	start = sim->now_tick;
	while (!sim->failed && !members_converged(sim, probe_slot)) {
		if (sim->now_tick - start < bound) {
			tick_once(sim, false);
			restart_members(sim);
			continue;
		}
		/* Each member: its applied slot, and the members it knows (a member that
		 * does not know the leader drops all it sends). */
		c = config_latest(sim);
		for (size_t i = 0; i < c->member_count; i++) {
			const struct node *n = node_by_id(sim, c->members[i]);
			struct paxos_status st;

			if (!n->up)
				continue;
			paxos_status(n->core, &st);
			sim_log(sim, "member %u: role %d, leader %u, commit %llu, %llu malformed "
				"messages dropped", n->id, (int)st.role, st.leader_id,
				(unsigned long long)st.commit_slot,
				(unsigned long long)st.counters.msgs_malformed);
		}
		members_format(c->members, c->member_count, list, sizeof(list));
		applied[0] = 0;
		for (size_t i = 0; i < c->member_count && used < sizeof(applied); i++) {
			const struct node *n = node_by_id(sim, c->members[i]);
			char known[64];
			int w;

			members_format(n->members, n->member_count, known, sizeof(known));
			w = snprintf(applied + used, sizeof(applied) - used, " %u@%llu{%s}", n->id,
				     (unsigned long long)n->applied_slot, known);
			if (w < 0)
				break;
			used += (size_t)w;
		}
		sim_fail(sim, "members {%s} did not converge within %llu ticks (applied:%s; "
			 "probe %llu, max %llu)", list, (unsigned long long)bound, applied,
			 (unsigned long long)probe_slot, (unsigned long long)sim->applied_max);
		return;
	}
	if (sim->failed)
		return;
	c = config_latest(sim);
	for (size_t i = 1; i < c->member_count; i++) {
		const struct node *a = node_by_id(sim, c->members[0]);
		const struct node *b = node_by_id(sim, c->members[i]);

		if (memcmp(a->kv, b->kv, sizeof(a->kv)) != 0)
			sim_fail(sim, "members %u and %u hold different states", a->id, b->id);
		if (!members_equal(a->members, a->member_count, c->members, c->member_count) ||
		    !members_equal(b->members, b->member_count, c->members, c->member_count))
			sim_fail(sim, "members %u and %u disagree on the configuration", a->id,
				 b->id);
	}
}

static int u64_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void check_history(struct sim *sim)
{
	uint64_t applied = sim->applied_max;	/* every member applied this far */
	uint64_t *values = xcalloc(applied + 1, sizeof(uint64_t));
	size_t count = 0, puts = 0, gets = 0;
	uint32_t bad_key = 0;
	int rc;

	for (uint64_t s = 1; s <= applied; s++) {
		struct chosen_slot *c = chosen_at(sim, s);

		if (!c->set) {
			sim_fail(sim, "slot %llu was never applied anywhere", (unsigned long long)s);
			free(values);
			return;
		}
		if (c->type == PAXOS_ENTRY_NORMAL && c->key < KEYS)
			values[count++] = c->put_value;
	}
	qsort(values, count, sizeof(*values), u64_compare);
	for (size_t i = 0; i < sim->history_count; i++) {
		const struct lin_op *op = &sim->history[i];
		uint64_t v = op->value;

		if (!op->completed) {
			sim->totals->ops_abandoned++;
			continue;
		}
		if (op->kind == LIN_GET) {
			gets++;
			continue;
		}
		puts++;
		if (!bsearch(&v, values, count, sizeof(*values), u64_compare)) {
			sim_fail(sim, "acknowledged put k%u=%llx is lost", op->key,
				 (unsigned long long)op->value);
			break;
		}
	}
	free(values);
	sim->totals->puts_acked += puts;
	sim->totals->gets_acked += gets;
	if (sim->failed)
		return;
	rc = lin_check(sim->history, sim->history_count, &bad_key);
	if (rc < 0)
		sim_fail(sim, "linearizability check error %d", rc);
	else if (rc == 0)
		sim_fail(sim, "history of key %u is not linearizable", bad_key);
	sim_log(sim, "checked %zu ops (%zu puts, %zu gets acknowledged), %llu leaders",
		sim->history_count, puts, gets, (unsigned long long)sim->leader_changes);
}

static void sim_free(struct sim *sim)
{
	for (size_t i = 0; i < NODE_IDS; i++) {
		struct node *n = &sim->nodes[i];

		totals_add_core(sim, n);
		paxos_destroy(n->core);
		pending_clear(n);
		free(n->pending);
		for (size_t j = 0; j < n->wal_count; j++)
			wal_rec_free(&n->wal[j]);
		free(n->wal);
	}
	sim_net_destroy(sim->net);
	free(sim->history);
	free(sim->chosen);
	free(sim->changes);
}

/* Runs one seed; returns 0 if every check passed. */
static int run_seed(uint64_t seed, uint64_t steps, bool verbose, struct totals *totals)
{
	struct sim sim;
	struct sim_net_faults faults;
	int rc;

	memset(&sim, 0, sizeof(sim));
	sim.totals = totals;
	sim.seed = seed;
	sim.verbose = verbose;
	sim.rng.state = seed * 0x2545f4914f6cdd1dULL + 1;
	if (sim_net_create(&sim.net, sim_rng_next(&sim.rng), NODE_IDS) != 0) {
		fprintf(stderr, "sim_paxos: out of memory\n");
		exit(2);
	}
	faults.loss_per_mille = (uint32_t)sim_rng_below(&sim.rng, 150);
	faults.duplicate_per_mille = (uint32_t)sim_rng_below(&sim.rng, 100);
	faults.delay_ticks_max = (uint32_t)sim_rng_below(&sim.rng, 8);
	faults.slow_per_mille = (uint32_t)sim_rng_below(&sim.rng, 30);
	faults.slow_ticks_max = 4 * ELECTION_TICKS;
	sim.sync_ticks_max = (uint32_t)sim_rng_below(&sim.rng, 8);
	sim.crash_per_mille = 1 + (uint32_t)sim_rng_below(&sim.rng, 5);
	sim_net_set_faults(sim.net, &faults);
	sim.config.member_count = INITIAL_MEMBERS;
	for (size_t i = 0; i < INITIAL_MEMBERS; i++)
		sim.config.members[i] = (uint32_t)i + 1;
	sim.config.election_ticks = ELECTION_TICKS;
	sim.config.heartbeat_ticks = 3;
	sim.config.lease_ticks = 14;
	sim.config.window_slots = 8 + (uint32_t)sim_rng_below(&sim.rng, 16);
	sim.config.log_slots = 64 + 64 * (uint32_t)sim_rng_below(&sim.rng, 2);
	/* A node drains its outbox after every step: a few dozen messages at most (overflows
	 * are counted and reported). A small outbox also keeps restarts cheap. */
	sim.config.outbox_msgs = 128;
	sim.compact_keep_slots = sim_rng_chance(&sim.rng, 500) ? 0 : 8;
	sim.key_count = 4 + (uint32_t)(steps / 1000);
	if (sim.key_count > KEYS)
		sim.key_count = KEYS;
	/* One seed in eight keeps its membership; the others change it every few hundred
	 * ticks (most attempts find a change pending or the leader too young). */
	sim.change_per_mille = (uint32_t)sim_rng_below(&sim.rng, 8);
	sim_log(&sim, "seed %llu: loss %u/1000 dup %u/1000 delay<=%u slow %u/1000 sync<=%u "
		"crash %u/1000 window %u log %u keep %u change %u/1000", (unsigned long long)seed,
		faults.loss_per_mille, faults.duplicate_per_mille, faults.delay_ticks_max,
		faults.slow_per_mille, sim.sync_ticks_max, sim.crash_per_mille,
		sim.config.window_slots, sim.config.log_slots, sim.compact_keep_slots,
		sim.change_per_mille);
	sim.changes = xcalloc(16, sizeof(*sim.changes));
	sim.change_cap = 16;
	sim.change_count = 1;
	memcpy(sim.changes[0].members, sim.config.members, sizeof(sim.config.members));
	sim.changes[0].member_count = sim.config.member_count;
	for (size_t i = 0; i < NODE_IDS; i++) {
		sim.nodes[i].id = (uint32_t)i + 1;
		sim.nodes[i].sim = &sim;
	}
	for (size_t i = 0; i < INITIAL_MEMBERS; i++) {
		struct node *n = &sim.nodes[i];

		sim.ever_member[n->id] = true;
		memcpy(n->members, sim.config.members, sizeof(n->members));
		n->member_count = sim.config.member_count;
		n->joined = true;
		if (node_start(&sim, n) != 0)
			break;
	}
	for (size_t i = 0; i < CLIENTS; i++) {
		sim.clients[i].id = (uint32_t)i + 1;
		sim.clients[i].guess = 1 + (uint32_t)sim_rng_below(&sim.rng, INITIAL_MEMBERS);
	}
	for (uint64_t t = 0; t < steps && !sim.failed; t++)
		tick_once(&sim, true);
	if (!sim.failed) {
		sim_log(&sim, "healing");
		sim_net_heal(sim.net);
		sim.clients_stopped = true;
		restart_members(&sim);
		check_progress(&sim);
	}
	if (!sim.failed)
		check_history(&sim);
	rc = sim.failed ? 1 : 0;
	if (sim.failed) {
		char steps_arg[40] = "";

		if (steps != STEPS_DEFAULT)
			snprintf(steps_arg, sizeof(steps_arg), " --steps %llu",
				 (unsigned long long)steps);
		printf("FAIL seed=%llu: %s\n", (unsigned long long)seed, sim.reason);
		printf("FAIL seed=%llu (replay: tests/sim/sim_paxos --seed %llu%s -v)\n",
		       (unsigned long long)seed, (unsigned long long)seed, steps_arg);
	}
	sim_free(&sim);
	return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, seeds = 0, steps = STEPS_DEFAULT;
	bool verbose = false, seed_given = false;
	uint64_t failures = 0;
	struct totals totals;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			if (parse_u64(argv[++i], &seed) != 0)
				goto usage;
			seed_given = true;
		} else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
			if (parse_u64(argv[++i], &seeds) != 0)
				goto usage;
		} else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
			if (parse_u64(argv[++i], &steps) != 0)
				goto usage;
		} else {
			goto usage;
		}
	}
	if (seeds == 0)
		seeds = seed_given ? 1 : 1000;
	memset(&totals, 0, sizeof(totals));
	for (uint64_t s = seed; s < seed + seeds; s++)
		failures += (uint64_t)run_seed(s, steps, verbose, &totals);
	printf("sim_paxos: exercised %llu crashes, %llu elections, %llu guarded prepares, "
	       "%llu snapshots installed, %llu malformed, %llu outbox overflows; %llu puts and "
	       "%llu gets acknowledged, %llu ops left incomplete\n",
	       (unsigned long long)totals.crashes, (unsigned long long)totals.elections,
	       (unsigned long long)totals.guarded, (unsigned long long)totals.snapshots,
	       (unsigned long long)totals.malformed, (unsigned long long)totals.outbox_full,
	       (unsigned long long)totals.puts_acked, (unsigned long long)totals.gets_acked,
	       (unsigned long long)totals.ops_abandoned);
	printf("sim_paxos: membership: %llu changes proposed (%llu refused for now, %llu removing "
	       "the leader itself), %llu additions and %llu removals chosen, %llu nodes retired, "
	       "up to %llu members\n",
	       (unsigned long long)totals.changes_proposed,
	       (unsigned long long)totals.changes_refused,
	       (unsigned long long)totals.leader_self_removals,
	       (unsigned long long)totals.adds_chosen, (unsigned long long)totals.removes_chosen,
	       (unsigned long long)totals.retirements, (unsigned long long)totals.max_members);
	printf("sim_paxos: %llu seeds from %llu, %llu steps each: %llu failed\n",
	       (unsigned long long)seeds, (unsigned long long)seed, (unsigned long long)steps,
	       (unsigned long long)failures);
	return failures ? 1 : 0;
usage:
	fprintf(stderr, "usage: sim_paxos [--seeds N] [--seed S] [--steps N] [-v]\n");
	return 2;
}
