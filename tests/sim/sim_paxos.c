/* sim_paxos.c: deterministic simulation of a 3-replica Multi-Paxos group (cluster/paxos.c).
 *
 * Usage: sim_paxos [--seeds N] [--seed S] [--steps N] [-v]
 *   --seed S    first seed (default 1); --seeds N: how many seeds from S (default 1 with
 *               --seed, else 1000: what make check runs); --steps N: ticks of chaos per
 *               seed (default 2000).
 *
 * One seed drives everything: a simulated network (loss, duplication, delay, reordering,
 * symmetric and one-way partitions), crashes and restarts (a node keeps only what it had
 * synced: a pending group commit is lost), leadership hand-offs, log compaction with
 * snapshots, and clients doing puts and lease reads on a few keys. Then the network heals,
 * every node comes back, and the run checks:
 *   - one value per slot (every apply of a slot, on any node, has the same digest) and a
 *     snapshot's state equals the replay of the chosen slots it covers;
 *   - at most one leader holds a valid lease at any tick;
 *   - progress: within a bound a leader exists and a new proposal commits; then every
 *     replica applies the same sequence to the same state;
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

#define NODES 3
#define KEYS 32			/* at most; a run uses 4 + steps / 1000 of them */
#define CLIENTS 3
#define PROBE_KEY 0xffffffffu
#define VALUE_BYTES 16
#define CLIENT_TIMEOUT_TICKS 80
#define ELECTION_TICKS 20

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
	uint32_t restarts;
	uint64_t down_until_tick;
	struct paxos *core;
	/* Durable: the synced WAL, the hard state, and the store (durable when applied,
	 * with its applied index in the same write, as the real store does). */
	struct paxos_ballot promised;
	struct wal_rec *wal;
	size_t wal_count;
	size_t wal_cap;
	uint64_t kv[KEYS];
	uint64_t applied_slot;
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

/* What the seeds exercised, summed (a simulation that injects nothing proves nothing). */
struct totals {
	uint64_t crashes;
	uint64_t elections;
	uint64_t guarded;
	uint64_t snapshots;
	uint64_t malformed;
	uint64_t puts_acked;
	uint64_t gets_acked;
	uint64_t ops_abandoned;
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
	struct node nodes[NODES];
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
	if (!c->set) {
		c->set = true;
		c->digest = d;
		c->type = e->type;
		c->key = key;
		c->put_value = value;
	}
	n->applied_slot = e->slot;
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
	sim_log(sim, "node %u installs snapshot through %llu (applied %llu)", n->id,
		(unsigned long long)through, (unsigned long long)n->applied_slot);
	memcpy(n->kv, kv, sizeof(kv));
	n->applied_slot = through;
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
}

static void node_crash(struct sim *sim, struct node *n)
{
	sim->totals->crashes++;
	totals_add_core(sim, n);
	sim_log(sim, "node %u crashes (%zu unsynced writes lost)", n->id, n->pending_count);
	paxos_destroy(n->core);
	n->core = NULL;
	n->up = false;
	pending_clear(n);
	sim_net_drop_to(sim->net, n->id);
	client_abandon_at(sim, n->id);
	n->down_until_tick = sim->now_tick + 1 + sim_rng_below(&sim->rng, 150);
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

static void faults_step(struct sim *sim)
{
	struct sim_rng *r = &sim->rng;

	for (size_t i = 0; i < NODES; i++) {
		struct node *n = &sim->nodes[i];

		if (n->up && sim_rng_chance(r, sim->crash_per_mille))
			node_crash(sim, n);
		else if (!n->up && sim->now_tick >= n->down_until_tick)
			node_restart(sim, n);
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
			struct paxos_status st;
			uint32_t to;

			if (!n->up)
				continue;
			paxos_status(n->core, &st);
			if (st.role != PAXOS_LEADER)
				continue;
			to = 1 + (uint32_t)sim_rng_below(r, NODES);
			if (to != n->id && paxos_transfer_leadership(n->core, to) == 0) {
				sim_log(sim, "node %u hands leadership to %u", n->id, to);
				node_process(sim, n);
			}
		}
	}
}

/* ---- the run ---- */

static void check_leases(struct sim *sim)
{
	uint32_t holders = 0, leader = 0;

	for (size_t i = 0; i < NODES; i++) {
		struct paxos_status st;

		if (!sim->nodes[i].up)
			continue;
		paxos_status(sim->nodes[i].core, &st);
		if (st.lease_valid) {
			holders++;
			leader = st.self_id;
		}
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
	if (chaos)
		faults_step(sim);
	while (!sim->failed && sim_net_deliver(sim->net, sim->now_tick, &m)) {
		struct node *n = node_by_id(sim, m->to);

		if (n && n->up) {
			(void)paxos_step(n->core, m);
			node_process(sim, n);
		}
		sim_net_msg_free(m);
	}
	for (size_t i = 0; i < NODES && !sim->failed; i++) {
		struct node *n = &sim->nodes[i];

		if (!n->up)
			continue;
		paxos_tick(n->core);
		node_process(sim, n);
		node_sync(sim, n);
	}
	for (size_t i = 0; i < CLIENTS && !sim->failed; i++)
		client_step(sim, &sim->clients[i]);
	check_leases(sim);
}

static struct node *find_leader(struct sim *sim)
{
	for (size_t i = 0; i < NODES; i++) {
		struct paxos_status st;

		if (!sim->nodes[i].up)
			continue;
		paxos_status(sim->nodes[i].core, &st);
		if (st.role == PAXOS_LEADER)
			return &sim->nodes[i];
	}
	return NULL;
}

/* After healing: a leader, a new value committed, every replica caught up. */
static void check_progress(struct sim *sim)
{
	uint64_t bound = 40 * ELECTION_TICKS, start = sim->now_tick;
	uint64_t probe_slot = 0;
	struct node *owner = NULL;
	uint8_t buf[VALUE_BYTES];

	value_encode(buf, PROBE_KEY, 0x9999);
	while (!sim->failed && sim->now_tick - start < bound) {
		tick_once(sim, false);
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
	for (;;) {
		bool same = true;

		for (size_t i = 1; i < NODES; i++)
			same = same && sim->nodes[i].applied_slot == sim->nodes[0].applied_slot &&
			       sim->nodes[0].applied_slot >= probe_slot;
		if (same)
			break;
		if (sim->failed || sim->now_tick - start >= bound) {
			sim_fail(sim, "replicas did not converge within %llu ticks (%llu %llu %llu)",
				 (unsigned long long)bound,
				 (unsigned long long)sim->nodes[0].applied_slot,
				 (unsigned long long)sim->nodes[1].applied_slot,
				 (unsigned long long)sim->nodes[2].applied_slot);
			return;
		}
		tick_once(sim, false);
	}
	for (size_t i = 1; i < NODES; i++)
		if (memcmp(sim->nodes[i].kv, sim->nodes[0].kv, sizeof(sim->nodes[0].kv)) != 0)
			sim_fail(sim, "replicas 1 and %zu hold different states", i + 1);
}

static int u64_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void check_history(struct sim *sim)
{
	uint64_t applied = sim->nodes[0].applied_slot;
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
	for (size_t i = 0; i < NODES; i++) {
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
	if (sim_net_create(&sim.net, sim_rng_next(&sim.rng), NODES) != 0) {
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
	sim.config.member_count = NODES;
	for (size_t i = 0; i < NODES; i++)
		sim.config.members[i] = (uint32_t)i + 1;
	sim.config.election_ticks = ELECTION_TICKS;
	sim.config.heartbeat_ticks = 3;
	sim.config.lease_ticks = 14;
	sim.config.window_slots = 8 + (uint32_t)sim_rng_below(&sim.rng, 16);
	sim.config.log_slots = 64 + 64 * (uint32_t)sim_rng_below(&sim.rng, 2);
	sim.config.outbox_msgs = 1024;
	sim.compact_keep_slots = sim_rng_chance(&sim.rng, 500) ? 0 : 8;
	sim.key_count = 4 + (uint32_t)(steps / 1000);
	if (sim.key_count > KEYS)
		sim.key_count = KEYS;
	sim_log(&sim, "seed %llu: loss %u/1000 dup %u/1000 delay<=%u slow %u/1000 sync<=%u "
		"crash %u/1000 window %u log %u keep %u", (unsigned long long)seed,
		faults.loss_per_mille, faults.duplicate_per_mille, faults.delay_ticks_max,
		faults.slow_per_mille, sim.sync_ticks_max, sim.crash_per_mille,
		sim.config.window_slots, sim.config.log_slots, sim.compact_keep_slots);
	for (size_t i = 0; i < NODES; i++) {
		sim.nodes[i].id = (uint32_t)i + 1;
		sim.nodes[i].sim = &sim;
		if (node_start(&sim, &sim.nodes[i]) != 0)
			break;
	}
	for (size_t i = 0; i < CLIENTS; i++) {
		sim.clients[i].id = (uint32_t)i + 1;
		sim.clients[i].guess = 1 + (uint32_t)sim_rng_below(&sim.rng, NODES);
	}
	for (uint64_t t = 0; t < steps && !sim.failed; t++)
		tick_once(&sim, true);
	if (!sim.failed) {
		sim_log(&sim, "healing");
		sim_net_heal(sim.net);
		sim.clients_stopped = true;
		for (size_t i = 0; i < NODES; i++)
			if (!sim.nodes[i].up)
				node_restart(&sim, &sim.nodes[i]);
		check_progress(&sim);
	}
	if (!sim.failed)
		check_history(&sim);
	rc = sim.failed ? 1 : 0;
	if (sim.failed) {
		printf("FAIL seed=%llu: %s\n", (unsigned long long)seed, sim.reason);
		printf("FAIL seed=%llu (replay: tests/sim/sim_paxos --seed %llu -v)\n",
		       (unsigned long long)seed, (unsigned long long)seed);
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
	uint64_t seed = 1, seeds = 0, steps = 2000;
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
	       "%llu snapshots installed, %llu malformed; %llu puts and %llu gets acknowledged, "
	       "%llu ops left incomplete\n",
	       (unsigned long long)totals.crashes, (unsigned long long)totals.elections,
	       (unsigned long long)totals.guarded, (unsigned long long)totals.snapshots,
	       (unsigned long long)totals.malformed, (unsigned long long)totals.puts_acked,
	       (unsigned long long)totals.gets_acked, (unsigned long long)totals.ops_abandoned);
	printf("sim_paxos: %llu seeds from %llu, %llu steps each: %llu failed\n",
	       (unsigned long long)seeds, (unsigned long long)seed, (unsigned long long)steps,
	       (unsigned long long)failures);
	return failures ? 1 : 0;
usage:
	fprintf(stderr, "usage: sim_paxos [--seeds N] [--seed S] [--steps N] [-v]\n");
	return 2;
}
