/* splitter.c: see splitter.h. */
#include "meta/splitter.h"

#include "meta/table_view.h"

#include "cluster/arena.h"
#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One call to a node at most this long; a pause between rounds of the replicas. */
#define SPLITTER_CALL_MS 3000
#define SPLITTER_PAUSE_MS 100

struct splitter {
	struct catalog *catalog;
	struct net_pool *pool;
};

int splitter_new(struct catalog *catalog, struct splitter **out)
{
	struct splitter *splitter = calloc(1, sizeof(*splitter));

	*out = NULL;
	if (!splitter)
		return -ENOMEM;
	splitter->catalog = catalog;
	splitter->pool = net_pool_new();
	if (!splitter->pool) {
		free(splitter);
		return -ENOMEM;
	}
	*out = splitter;
	return 0;
}

void splitter_free(struct splitter *splitter)
{
	if (!splitter)
		return;
	net_pool_free(splitter->pool);
	free(splitter);
}

static void splitter_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void splitter_why(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, CATALOG_WHY_BYTES, fmt, ap);
	va_end(ap);
}

void splitter_adopt_reports(struct catalog *catalog, Quorum__GroupReport *const *reports,
			    size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const Quorum__GroupReport *r = reports[i];

		if (!r->has_epoch || !r->has_hash_first || !r->has_hash_last)
			continue;
		if (catalog_adopt_split(catalog, r->table_id, r->partition_id, r->hash_first,
					r->hash_last, r->epoch, r->children, r->n_children) < 0)
			log_warn("table %" PRIu64 ": adopting the split of partition %" PRIu64
				 " failed; the next report tries again", r->table_id,
				 r->partition_id);
	}
}

/* Asks the replicas of partition (the leader first, then any that names another) to split
 * it into child until deadline_ms, and adopts the answer. */
static int splitter_split_one(struct splitter *splitter, const Quorum__TableResponse *t,
			      const Quorum__PartitionInfo *partition, uint64_t child_id,
			      const Quorum__SplitTableRequest *ask, int64_t deadline_ms, char *why)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__SplitPartitionRequest split = QUORUM__SPLIT_PARTITION_REQUEST__INIT;
	uint64_t next = table_view_leader(t, partition->id);
	size_t turn = 0;
	int err = -ETIMEDOUT;

	split.table_id = t->table->id;
	split.partition_id = partition->id;
	split.child_partition_id = child_id;
	split.has_split_hash = ask->has_split_hash;
	split.split_hash = ask->split_hash;
	request.op_case = QUORUM__REQUEST__OP_SPLIT_PARTITION;
	request.split_partition = &split;
	splitter_why(why, "no replica of partition %" PRIu64 " answered", partition->id);
	while (clock_monotonic_ms() < deadline_ms) {
		Quorum__Response *response = NULL;
		struct rpc_error error = { 0 };
		struct net_client *client;
		const char *address;
		int64_t call_deadline_ms = clock_monotonic_ms() + SPLITTER_CALL_MS;

		if (next == 0)
			next = partition->replicas[turn++ % partition->n_replicas];
		address = table_view_address(t, next);
		next = 0;
		client = address ? net_pool_get(splitter->pool, address) : NULL;
		if (!client) {
			clock_sleep_ms(SPLITTER_PAUSE_MS);
			continue;
		}
		if (call_deadline_ms > deadline_ms)
			call_deadline_ms = deadline_ms;
		err = rpc_call(client, &request, call_deadline_ms, &response, &error);
		if (err == 0) {
			const Quorum__GroupState *s = response->split_partition->state;

			err = catalog_adopt_split(splitter->catalog, t->table->id, partition->id,
						  s->hash_first, s->hash_last, s->epoch, s->children,
						  s->n_children);
			quorum__response__free_unpacked(response, NULL);
			if (err < 0)
				splitter_why(why, "partition %" PRIu64 " split, but the catalog "
					     "write failed", partition->id);
			return err < 0 ? err : 0;
		}
		splitter_why(why, "partition %" PRIu64 ": %s", partition->id,
			     error.why[0] ? error.why : strerror(-err));
		if (err == -ERANGE || err == -EINVAL || err == -EIO || err == -ENOMEM)
			return err;
		if (err == -EREMOTE && error.leader_id) {
			next = error.leader_id;
			continue;
		}
		clock_sleep_ms(SPLITTER_PAUSE_MS);
	}
	return err == -EREMOTE || err == -EAGAIN ? -ETIMEDOUT : err;
}

int splitter_split_table(struct splitter *splitter, const Quorum__SplitTableRequest *request,
			 int64_t deadline_ms, char *why)
{
	struct arena *arena = arena_new();
	Quorum__TableResponse *t;
	bool found = false;
	int err;

	if (!arena)
		return -ENOMEM;
	err = catalog_describe_table(splitter->catalog, request->name.data, request->name.len,
				     clock_monotonic_ms(), arena, &t, why);
	for (size_t p = 0; err == 0 && p < t->table->n_partitions; p++) {
		const Quorum__PartitionInfo *partition = t->table->partitions[p];
		uint64_t child_id;

		if (request->has_partition_id && partition->id != request->partition_id)
			continue;
		found = true;
		if (request->has_split_hash &&
		    (request->split_hash <= partition->hash_first ||
		     request->split_hash > partition->hash_last)) {
			splitter_why(why, "split hash %016" PRIx64 " is not inside partition %"
				     PRIu64 " [%016" PRIx64 ", %016" PRIx64 "]",
				     request->split_hash, partition->id, partition->hash_first,
				     partition->hash_last);
			err = -ERANGE;
			break;
		}
		err = catalog_reserve_partition_id(splitter->catalog, &child_id);
		if (err < 0) {
			splitter_why(why, "reserving a partition id failed");
			break;
		}
		err = splitter_split_one(splitter, t, partition, child_id, request, deadline_ms,
					 why);
		/* Splitting every partition: one too small to split (one hash) stays. */
		if (err == -ERANGE && !request->has_partition_id)
			err = 0;
	}
	if (err == 0 && !found) {
		splitter_why(why, "table has no partition %" PRIu64, request->partition_id);
		err = -ENOENT;
	}
	arena_free(arena);
	return err;
}
