/* mover.c: see mover.h. */
#include "meta/mover.h"

#include "meta/move_plan.h"
#include "meta/table_view.h"

#include "cluster/arena.h"
#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/paxos.h"
#include "cluster/periodic.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MOVER_PERIOD_MS 1000
/* One call to a replica at most this long (the leader waits up to its own timeout). */
#define MOVER_CALL_MS 3000

struct mover {
	struct catalog *catalog;
	struct net_pool *pool;
	struct periodic *periodic;
};

/* ------------------------------------------------------------------ driving */

/* Asks node_id to step partition p towards its target. 0 when the group's members are the
 * target; -EINPROGRESS; -EREMOTE with *leader; other errors. */
static int mover_ask(struct mover *m, const Quorum__TableResponse *t,
		     const Quorum__PartitionInfo *p, uint64_t node_id, uint64_t *leader)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ChangeMembersRequest change = QUORUM__CHANGE_MEMBERS_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct rpc_error error = { 0 };
	const char *address = table_view_address(t, node_id);
	struct net_client *client = address ? net_pool_get(m->pool, address) : NULL;
	int err;

	*leader = 0;
	if (!client)
		return -EHOSTUNREACH;
	change.table_id = t->table->id;
	change.partition_id = p->id;
	change.members = p->target_replicas;
	change.n_members = p->n_target_replicas;
	request.op_case = QUORUM__REQUEST__OP_CHANGE_MEMBERS;
	request.change_members = &change;
	err = rpc_call(client, &request, clock_monotonic_ms() + MOVER_CALL_MS, &response, &error);
	if (err == -EREMOTE)
		*leader = error.leader_id;
	if (err < 0)
		return err;
	err = response->change_members->done ? 0 : -EINPROGRESS;
	quorum__response__free_unpacked(response, NULL);
	return err;
}

/* One step of the move of partition p: the leader first, then any replica that names it. */
static void mover_drive(struct mover *m, const Quorum__TableResponse *t,
			const Quorum__PartitionInfo *p)
{
	uint64_t next = table_view_leader(t, p->id), hint = 0;
	int err = -EHOSTUNREACH;

	for (size_t turn = 0; turn < p->n_replicas + p->n_target_replicas + 1; turn++) {
		if (next == 0)
			next = turn < p->n_replicas ? p->replicas[turn] :
			       p->target_replicas[(turn - p->n_replicas) % p->n_target_replicas];
		err = mover_ask(m, t, p, next, &hint);
		if (err != -EREMOTE && err != -EHOSTUNREACH && err != -ETIMEDOUT &&
		    err != -ECONNREFUSED && err != -EAGAIN)
			break;
		next = hint;
	}
	if (err == 0) {
		err = catalog_finish_move(m->catalog, t->table->id, p->id, p->target_replicas,
					  p->n_target_replicas);
		if (err == 0)
			log_info("table %" PRIu64 ": partition %" PRIu64 " moved", t->table->id,
				 p->id);
		else
			log_warn("table %" PRIu64 ": partition %" PRIu64 " moved, but the catalog "
				 "write failed (%s); the next round tries again", t->table->id,
				 p->id, strerror(-err));
	} else if (err != -EINPROGRESS) {
		log_warn("table %" PRIu64 ": moving partition %" PRIu64 ": %s; the next round "
			 "asks again", t->table->id, p->id, strerror(-err));
	}
}

/* The nodes as placement sees them: up, AZ, drain, replicas held or being received. */
static int mover_nodes(struct mover *m, struct arena *arena, struct mover_node **out,
		       size_t *count)
{
	Quorum__ListNodesResponse *list;
	struct mover_node *nodes;
	int err = catalog_list_nodes(m->catalog, clock_monotonic_ms(), arena, &list);

	if (err < 0)
		return err;
	nodes = arena_alloc(arena, (list->n_nodes ? list->n_nodes : 1) * sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (size_t i = 0; i < list->n_nodes; i++) {
		const Quorum__NodeInfo *n = list->nodes[i];

		nodes[i] = (struct mover_node){ .id = n->id, .az = n->az, .up = n->up,
						.draining = n->draining,
						.replica_count = n->replica_count };
	}
	*out = nodes;
	*count = list->n_nodes;
	return 0;
}

/* Starts the move of p when one applies; updates the counts it planned with. */
static bool mover_start_one(struct mover *m, const Quorum__TableResponse *t,
			    const Quorum__PartitionInfo *p, struct mover_node *nodes,
			    size_t node_count, bool balance)
{
	uint64_t target[PAXOS_MEMBERS_MAX];
	struct mover_node *to = NULL;
	int err;

	if (p->n_replicas == 0 || p->n_replicas > PAXOS_MEMBERS_MAX ||
	    !mover_plan(nodes, node_count, p->replicas, p->n_replicas, balance, target))
		return false;
	for (size_t i = 0; i < p->n_replicas; i++)
		if (target[i] != p->replicas[i]) {
			for (size_t n = 0; n < node_count; n++)
				if (nodes[n].id == target[i])
					to = &nodes[n];
			log_info("table %" PRIu64 ": partition %" PRIu64 " moves from node %"
				 PRIu64 " to node %" PRIu64, t->table->id, p->id, p->replicas[i],
				 target[i]);
		}
	err = catalog_begin_move(m->catalog, t->table->id, p->id, target, p->n_replicas);
	if (err < 0) {
		log_warn("table %" PRIu64 ": partition %" PRIu64 ": recording the move failed: %s",
			 t->table->id, p->id, strerror(-err));
		return false;
	}
	if (to)
		to->replica_count++;
	return true;
}

static void mover_round(struct mover *m)
{
	struct arena *arena = arena_new();
	Quorum__ListTablesResponse *list;
	Quorum__TableResponse **tables;
	struct mover_node *nodes;
	size_t node_count, moving = 0, table_count = 0;
	int64_t now_ms = clock_monotonic_ms();

	if (!arena)
		return;
	if (mover_nodes(m, arena, &nodes, &node_count) < 0 ||
	    catalog_list_tables(m->catalog, arena, &list) < 0)
		goto out;
	tables = arena_alloc(arena, (list->n_tables ? list->n_tables : 1) * sizeof(*tables));
	if (!tables)
		goto out;
	for (size_t i = 0; i < list->n_tables; i++) {
		Quorum__TableResponse *t;

		if (catalog_describe_table(m->catalog, list->tables[i]->name.data,
					   list->tables[i]->name.len, now_ms, arena, &t, NULL) < 0)
			continue;
		tables[table_count++] = t;
		for (size_t p = 0; p < t->table->n_partitions; p++) {
			const Quorum__PartitionInfo *partition = t->table->partitions[p];

			if (partition->n_target_replicas) {
				moving++;
				mover_drive(m, t, partition);
			}
		}
	}
	/* One new move per round: drains first, over every table, then balance. */
	for (int balance = 0; balance < 2 && moving < MOVER_MOVES_MAX; balance++)
		for (size_t i = 0; i < table_count && moving < MOVER_MOVES_MAX; i++)
			for (size_t p = 0; p < tables[i]->table->n_partitions; p++) {
				const Quorum__PartitionInfo *partition = tables[i]->table->partitions[p];

				if (!partition->n_target_replicas &&
				    mover_start_one(m, tables[i], partition, nodes, node_count,
						    balance)) {
					moving = MOVER_MOVES_MAX;
					break;
				}
			}
out:
	arena_free(arena);
}

static void mover_tick(void *ctx)
{
	struct mover *m = ctx;

	/* Only the meta that serves: a follower's memory is not the catalog. */
	if (catalog_serving(m->catalog))
		mover_round(m);
}

int mover_start(struct catalog *catalog, struct mover **out)
{
	struct mover *m = calloc(1, sizeof(*m));
	int err;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->catalog = catalog;
	m->pool = net_pool_new();
	if (!m->pool) {
		free(m);
		return -ENOMEM;
	}
	err = periodic_start(MOVER_PERIOD_MS, mover_tick, m, &m->periodic);
	if (err < 0) {
		net_pool_free(m->pool);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

void mover_stop(struct mover *m)
{
	if (!m)
		return;
	periodic_stop(m->periodic);
	net_pool_free(m->pool);
	free(m);
}
