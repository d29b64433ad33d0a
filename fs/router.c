/* router.c: the request router (contract in router.h).
 *
 * Every operation runs against one deadline (now + timeout_ms). Inside it,
 * each attempt gets at most ROUTER_ATTEMPT_MS, so a node that died while
 * holding a request is given up on early and the route refreshed. Between
 * attempts the router backs off (25 ms, doubling to 500 ms). A transport
 * failure (no answer, socket error, garbage reply) is retried; an answer
 * from the peer, error or not, is returned as it is, except -EREMOTE (not
 * the leader: follow its hint) and -EAGAIN (no leader yet: try another).
 *
 * The route cache maps a table name to its partitions (sorted by
 * hash_first), each with its replicas (node ids and addresses), the one
 * believed to lead and the one that last served an eventual read. It is
 * filled by DescribeTable and dropped for a table when no replica of a
 * partition answers, so a moved or restarted node is found again; what is
 * known of leaders survives the refresh. The lock guards the cache and the
 * replicated flag only: no network call is made while it is held. */
#include "fs/router.h"

#include "fs/own_writes.h"
#include "fs/request_ids.h"
#include "fs/route_refresh.h"
#include "fs/settings_watch.h"

#include "cluster/clock.h"
#include "cluster/keys.h"
#include "cluster/log.h"
#include "cluster/meta_client.h"
#include "cluster/net.h"
#include "cluster/rpc.h"
#include "quorum.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* The longest one attempt may take before the router tries again. */
#define ROUTER_ATTEMPT_MS 2000
#define ROUTER_BACKOFF_FIRST_MS 25
#define ROUTER_BACKOFF_MAX_MS 500
/* A node returns at most this many entries per scan request. */
#define ROUTER_SCAN_PAGE_MAX 1000
#define ROUTER_ADDRESS_MAX_BYTES 256
/* Replicas of one partition the router keeps track of (three today). */
#define ROUTER_REPLICAS_MAX 8
/* -EREMOTE hints followed at once, without a pause, in a row. */
#define ROUTER_LEADER_HOPS_MAX 3
/* -EREMCHG routes followed at once at most; then the route comes from meta after a pause. */
#define ROUTER_ROUTE_HOPS_MAX 4
#define ROUTER_NO_REPLICA SIZE_MAX
/* How long a replica that did not answer is passed over, and hints that
 * name it ignored: long enough for the others to elect a new leader in
 * peace, short enough for a node that was only slow or paused to be asked
 * again within the deadline. */
#define ROUTER_SUSPECT_MS 1000

/* One partition's replicas; address[i] is NULL when meta named no node. */
struct route_partition {
	uint64_t id;
	uint64_t epoch;
	size_t replica_count;
	uint64_t node_id[ROUTER_REPLICAS_MAX];
	char *address[ROUTER_REPLICAS_MAX];
	size_t leader;             /* index of the replica believed to lead */
	size_t reader;             /* where eventual reads go: the last leader or reader */
};

/* One table's routing: partitions sorted by hash_first. */
struct route {
	struct route *next;
	char name[KEY_NAME_MAX_BYTES + 1];
	uint64_t table_id;
	struct router_table info;  /* the table as meta last described it */
	size_t partition_count;
	uint64_t *hash_first;
	uint64_t *hash_last;
	struct route_partition *parts;
};

struct router {
	int64_t timeout_ms;
	uint64_t item_max_bytes;   /* at start; then the watch's */
	struct settings_watch *settings;   /* keeps item_max_bytes fresh */
	struct route_refresh *refresh;     /* constant-work refreshes of cached tables */
	bool eventual;             /* consistency=eventual */
	struct net_pool *pool;
	struct meta_client *meta;  /* one meta, or the replicated metas */
	struct request_ids *ids;   /* of item writes, for at-most-once apply */
	struct own_writes *own_writes;   /* eventual mounts: read-your-writes */
	pthread_mutex_t lock;      /* guards routes and replicated */
	struct route *routes;
	/* Bumped by every drop: a description asked for before a drop (a
	 * background refresh racing a chmod of the table) may predate the
	 * change and must not be cached after it. */
	uint64_t cache_generation;
	/* The nodes run replication groups: any replica of a partition can
	 * take a request (and redirect it). Until then only the first one
	 * holds data, and asking another would give wrong answers. */
	bool replicated;
};

/* Where one request goes: a copy of the partition's route. */
struct route_target {
	uint64_t hash_first, hash_last;
	uint64_t partition_id;
	uint64_t epoch;
	bool replicated;
	size_t replica_count;
	size_t leader, reader;
	uint64_t node_id[ROUTER_REPLICAS_MAX];
	char address[ROUTER_REPLICAS_MAX][ROUTER_ADDRESS_MAX_BYTES];   /* "": unknown */
	size_t chosen;             /* the replica of the last attempt */
};

/* One operation's state across its attempts. */
struct router_op {
	const char *what;          /* "put item", for log lines */
	const char *table;         /* table name or NULL */
	const char *key;           /* item key or NULL */
	int64_t deadline_ms;
	int64_t backoff_ms;
	int attempts;
	bool maybe_applied;        /* a table request reached meta and its answer was lost */
	int hops;                  /* -EREMOTE hints followed since the last pause */
	/* Nodes that failed on transport in this operation: not asked again
	 * (nor followed by a hint) for ROUTER_SUSPECT_MS, or until every
	 * replica has failed. */
	size_t failed_count;
	uint64_t failed_nodes[ROUTER_REPLICAS_MAX];
	int64_t failed_at_ms[ROUTER_REPLICAS_MAX];
	char why[RPC_WHY_BYTES];
};

static void router_op_begin(struct router_op *op, const struct router *router, const char *what,
			    const char *table, const char *key)
{
	memset(op, 0, sizeof(*op));
	op->what = what;
	op->table = table;
	op->key = key;
	op->deadline_ms = clock_monotonic_ms() + router->timeout_ms;
	op->backoff_ms = ROUTER_BACKOFF_FIRST_MS;
}

/* Sleeps before the next attempt. False when the deadline leaves no room
 * for one; then the failure is logged and the caller returns -EIO. */
static bool router_op_backoff(struct router_op *op)
{
	int64_t left_ms = clock_remaining_ms(op->deadline_ms);
	int64_t sleep_ms = op->backoff_ms;

	/* The last pause is cut short so one more attempt still fits. */
	if (sleep_ms > left_ms / 2)
		sleep_ms = left_ms / 2;
	if (sleep_ms < ROUTER_BACKOFF_FIRST_MS) {
		/* A transport failure's why names the peer ("URL: reason"). */
		log_warn("%s%s%s%s%s: giving up after %d attempt%s in the deadline: %s",
			 op->what, op->table ? " in table " : "", op->table ? op->table : "",
			 op->key ? ", key " : "", op->key ? op->key : "", op->attempts,
			 op->attempts == 1 ? "" : "s", op->why[0] ? op->why : "no answer");
		return false;
	}
	clock_sleep_ms(sleep_ms);
	op->backoff_ms *= 2;
	if (op->backoff_ms > ROUTER_BACKOFF_MAX_MS)
		op->backoff_ms = ROUTER_BACKOFF_MAX_MS;
	return true;
}

/* One attempt of request at the metadata service (meta_client.h fails over between
 * replicated metas within it). *transport tells whether the failure (if any) was on the
 * way rather than meta's answer. */
static int router_meta_attempt(struct router_op *op, struct router *router,
			       Quorum__Request *request, Quorum__Response **response,
			       bool *transport)
{
	int64_t deadline_ms = clock_monotonic_ms() + ROUTER_ATTEMPT_MS;
	struct rpc_error error = { 0 };
	int err;

	if (deadline_ms > op->deadline_ms)
		deadline_ms = op->deadline_ms;
	op->attempts++;
	err = meta_client_call(router->meta, request, deadline_ms, response, &error);
	*transport = err < 0 && error.transport;
	if (*transport)
		snprintf(op->why, sizeof(op->why), "%s", error.why);
	return err;
}

/* A request to meta, retried on transport failures until the deadline. */
static int router_call_meta(struct router *router, struct router_op *op,
			    Quorum__Request *request, Quorum__Response **response)
{
	for (;;) {
		bool transport;
		int err = router_meta_attempt(op, router, request, response, &transport);

		if (!transport)
			return err;
		if (!router_op_backoff(op))
			return -EIO;
	}
}

/* ------------------------------------------------------------ conversions */

static void router_attr_from_meta(struct item_attr *attr, const Quorum__ItemMeta *meta)
{
	attr->mode = meta->mode;
	attr->uid = meta->uid;
	attr->gid = meta->gid;
	attr->mtime_ns = meta->mtime_ns;
	attr->ctime_ns = meta->ctime_ns;
	attr->size = meta->size;
	attr->version = meta->version;
}

/* A name from the wire as a C string: -EPROTO when it could not be one. */
static int router_copy_name(char out[KEY_NAME_MAX_BYTES + 1], const ProtobufCBinaryData *name)
{
	if (key_validate_name(name->data, name->len) < 0)
		return -EPROTO;
	memcpy(out, name->data, name->len);
	out[name->len] = '\0';
	return 0;
}

static int router_table_from_info(struct router_table *out, const Quorum__TableInfo *info)
{
	int err = router_copy_name(out->name, &info->name);

	if (err < 0) {
		log_warn("metadata service sent table %llu with an invalid name",
			 (unsigned long long)info->id);
		return err;
	}
	out->id = info->id;
	out->mode = info->mode;
	out->uid = info->uid;
	out->gid = info->gid;
	out->mtime_ns = info->mtime_ns;
	out->ctime_ns = info->ctime_ns;
	out->has_sort_key = info->has_sort_key;
	return 0;
}

static void router_set_name(ProtobufCBinaryData *field, const char *name)
{
	field->data = (uint8_t *)name;
	field->len = strlen(name);
}

/* -------------------------------------------------------------- the cache */

static void route_free(struct route *route)
{
	if (!route)
		return;
	if (route->parts) {
		for (size_t i = 0; i < route->partition_count; i++) {
			for (size_t r = 0; r < route->parts[i].replica_count; r++)
				free(route->parts[i].address[r]);
		}
	}
	free(route->parts);
	free(route->hash_first);
	free(route->hash_last);
	free(route);
}

static int route_compare_partitions(const void *a, const void *b)
{
	const Quorum__PartitionInfo *pa = *(Quorum__PartitionInfo *const *)a;
	const Quorum__PartitionInfo *pb = *(Quorum__PartitionInfo *const *)b;

	return pa->hash_first < pb->hash_first ? -1 : pa->hash_first > pb->hash_first;
}

static const char *route_node_address(const Quorum__TableResponse *table, uint64_t node_id)
{
	for (size_t i = 0; i < table->n_nodes; i++) {
		if (table->nodes[i]->id == node_id)
			return table->nodes[i]->address;
	}
	return NULL;
}

/* Builds the route of a DescribeTable answer. */
static int route_build(const Quorum__TableResponse *response, struct route **out)
{
	const Quorum__TableInfo *info = response->table;
	size_t count = info->n_partitions;
	Quorum__PartitionInfo **sorted = NULL;
	struct route *route = calloc(1, sizeof(*route));
	int err = -ENOMEM;

	if (!route)
		return -ENOMEM;
	if (router_copy_name(route->name, &info->name) < 0) {
		free(route);
		return -EPROTO;
	}
	route->table_id = info->id;
	if (router_table_from_info(&route->info, info) < 0) {
		free(route);
		return -EPROTO;
	}
	route->hash_first = calloc(count ? count : 1, sizeof(uint64_t));
	route->hash_last = calloc(count ? count : 1, sizeof(uint64_t));
	route->parts = calloc(count ? count : 1, sizeof(*route->parts));
	sorted = calloc(count ? count : 1, sizeof(*sorted));
	if (!route->hash_first || !route->hash_last || !route->parts || !sorted)
		goto failed;
	route->partition_count = count;
	memcpy(sorted, info->partitions, count * sizeof(*sorted));
	qsort(sorted, count, sizeof(*sorted), route_compare_partitions);
	for (size_t i = 0; i < count; i++) {
		struct route_partition *part = &route->parts[i];
		const Quorum__PartitionInfo *p = sorted[i];

		route->hash_first[i] = p->hash_first;
		route->hash_last[i] = p->hash_last;
		part->id = p->id;
		part->epoch = p->epoch;
		/* The replicas, then a move's new ones (one may lead before meta records
		 * the move done); ROUTER_REPLICAS_MAX are enough to find the leader. */
		for (size_t r = 0; r < p->n_replicas + p->n_target_replicas &&
				   part->replica_count < ROUTER_REPLICAS_MAX; r++) {
			uint64_t id = r < p->n_replicas ? p->replicas[r] :
				      p->target_replicas[r - p->n_replicas];
			const char *address = route_node_address(response, id);
			bool listed = false;

			for (size_t k = 0; k < part->replica_count; k++)
				listed = listed || part->node_id[k] == id;
			if (listed)
				continue;
			part->node_id[part->replica_count] = id;
			if (address && strlen(address) < ROUTER_ADDRESS_MAX_BYTES) {
				part->address[part->replica_count] = strdup(address);
				if (!part->address[part->replica_count])
					goto failed;
			}
			part->replica_count++;
		}
		/* Overlapping ranges would make lookups ambiguous. */
		if (i > 0 && route->hash_first[i] <= route->hash_last[i - 1]) {
			log_warn("table %s: partitions overlap at hash %016llx", route->name,
				 (unsigned long long)route->hash_first[i]);
			err = -EPROTO;
			goto failed;
		}
	}
	free(sorted);
	*out = route;
	return 0;

failed:
	free(sorted);
	route_free(route);
	return err;
}

/* The index of node_id among the partition's replicas, or ROUTER_NO_REPLICA. */
static size_t route_replica_index(const struct route_partition *part, uint64_t node_id)
{
	for (size_t r = 0; r < part->replica_count; r++) {
		if (part->node_id[r] == node_id)
			return r;
	}
	return ROUTER_NO_REPLICA;
}

/* A fresh route keeps what the old one of the same table learnt about
 * leaders and readers, partition by partition (matched by id). */
static void route_inherit(struct route *route, const struct route *old)
{
	for (size_t i = 0; i < route->partition_count; i++) {
		struct route_partition *part = &route->parts[i];

		for (size_t j = 0; j < old->partition_count; j++) {
			const struct route_partition *before = &old->parts[j];
			size_t index;

			if (before->id != part->id)
				continue;
			index = route_replica_index(part, before->node_id[before->leader]);
			if (index != ROUTER_NO_REPLICA)
				part->leader = index;
			index = route_replica_index(part, before->node_id[before->reader]);
			if (index != ROUTER_NO_REPLICA)
				part->reader = index;
			break;
		}
	}
}

/* Replaces the cached route of route->name; takes ownership of route.
 * With a generation, only when no drop happened since it was read. */
static void router_cache_put(struct router *router, struct route *route,
			     const uint64_t *generation)
{
	struct route *old = NULL;

	pthread_mutex_lock(&router->lock);
	if (generation && *generation != router->cache_generation) {
		pthread_mutex_unlock(&router->lock);
		route_free(route);
		return;
	}
	for (struct route **link = &router->routes; *link; link = &(*link)->next) {
		if (strcmp((*link)->name, route->name) == 0) {
			old = *link;
			*link = old->next;
			break;
		}
	}
	if (old && old->table_id == route->table_id)
		route_inherit(route, old);
	route->next = router->routes;
	router->routes = route;
	pthread_mutex_unlock(&router->lock);
	route_free(old);
}

/* Drops the cached route of a table (any id when table_id is 0). */
static void router_cache_drop(struct router *router, const char *name, uint64_t table_id)
{
	struct route *old = NULL;

	pthread_mutex_lock(&router->lock);
	router->cache_generation++;
	for (struct route **link = &router->routes; *link; link = &(*link)->next) {
		if (strcmp((*link)->name, name) == 0 &&
		    (table_id == 0 || (*link)->table_id == table_id)) {
			old = *link;
			*link = old->next;
			break;
		}
	}
	pthread_mutex_unlock(&router->lock);
	route_free(old);
}

static void router_set_replicated(struct router *router)
{
	pthread_mutex_lock(&router->lock);
	if (!router->replicated)
		log_info("the cluster runs replication groups: requests follow partition leaders");
	router->replicated = true;
	pthread_mutex_unlock(&router->lock);
}

/* Finds the cached partition of hash in table, with the lock held. */
static struct route_partition *router_cache_partition(struct router *router,
						       const struct router_table *table,
						       uint64_t hash, size_t *index)
{
	for (struct route *route = router->routes; route; route = route->next) {
		int found;

		if (strcmp(route->name, table->name) != 0)
			continue;
		if (route->table_id != table->id)
			return NULL;
		found = key_find_partition(route->hash_first, route->hash_last,
					   route->partition_count, hash);
		if (found < 0)
			return NULL;
		if (index)
			*index = (size_t)found;
		return &route->parts[found];
	}
	return NULL;
}

/* Copies the target of hash from the cached route of table. False on a
 * miss: no route, a route of another table by that name, no partition
 * holds hash, or none of its nodes is known. */
static bool router_cache_find(struct router *router, const struct router_table *table,
			      uint64_t hash, struct route_target *out)
{
	const struct route_partition *part;
	bool found = false;
	size_t index = 0;

	pthread_mutex_lock(&router->lock);
	part = router_cache_partition(router, table, hash, &index);
	for (size_t r = 0; part && r < part->replica_count; r++)
		found = found || part->address[r];
	if (found) {
		const struct route *route = NULL;

		for (route = router->routes; route; route = route->next) {
			if (part >= route->parts && part < route->parts + route->partition_count)
				break;
		}
		out->hash_first = route->hash_first[index];
		out->hash_last = route->hash_last[index];
		out->partition_id = part->id;
		out->epoch = part->epoch;
		out->replicated = router->replicated;
		out->replica_count = part->replica_count;
		out->leader = part->leader;
		out->reader = part->reader;
		out->chosen = ROUTER_NO_REPLICA;
		for (size_t r = 0; r < part->replica_count; r++) {
			out->node_id[r] = part->node_id[r];
			snprintf(out->address[r], sizeof(out->address[r]), "%s",
				 part->address[r] ? part->address[r] : "");
		}
	}
	pthread_mutex_unlock(&router->lock);
	return found;
}

/* A copy of part (its addresses duplicated) on [first, last] at *count of route's new
 * arrays. False when out of memory. */
static bool route_piece(const struct route_partition *part, uint64_t first, uint64_t last,
			struct route_partition *parts, uint64_t *hash_first, uint64_t *hash_last,
			size_t *count)
{
	struct route_partition *piece = &parts[*count];

	*piece = *part;
	for (size_t r = 0; r < piece->replica_count; r++) {
		if (part->address[r] && !(piece->address[r] = strdup(part->address[r]))) {
			while (r-- > 0)
				free(piece->address[r]);
			return false;
		}
	}
	hash_first[*count] = first;
	hash_last[*count] = last;
	(*count)++;
	return true;
}

/* Follows a node's word that hash lives in another partition now: the cached partition
 * holding hash gives the range the node named to that partition (on the same replicas: a
 * split keeps them), and keeps what is left of its range under its old id and epoch until
 * a node says otherwise there too. Without a named route, or one that does not fit the
 * cache, the table's route is dropped: meta knows. Called with the lock held; false when
 * the route must be dropped. */
static bool router_cache_split_locked(struct router *router, const struct router_table *table,
				      uint64_t hash, const struct rpc_error *error)
{
	struct route *route = router->routes;
	struct route_partition *parts, *old;
	uint64_t *firsts, *lasts, nf = error->route_hash_first, nl = error->route_hash_last;
	size_t count = 0, i;
	int found;

	while (route && strcmp(route->name, table->name) != 0)
		route = route->next;
	if (!route || route->table_id != table->id || !error->has_route || hash < nf || hash > nl)
		return false;
	found = key_find_partition(route->hash_first, route->hash_last, route->partition_count,
				   hash);
	if (found < 0)
		return false;
	i = (size_t)found;
	old = &route->parts[i];
	if (nf < route->hash_first[i] || nl > route->hash_last[i])
		return false;	/* wider than the entry: a merge or a move, meta's to say */
	parts = calloc(route->partition_count + 2, sizeof(*parts));
	firsts = calloc(route->partition_count + 2, sizeof(*firsts));
	lasts = calloc(route->partition_count + 2, sizeof(*lasts));
	if (!parts || !firsts || !lasts)
		goto failed;
	for (size_t j = 0; j < route->partition_count; j++) {
		bool ok = true;

		if (j != i) {
			ok = route_piece(&route->parts[j], route->hash_first[j], route->hash_last[j],
					 parts, firsts, lasts, &count);
		} else {
			if (route->hash_first[i] < nf)
				ok = route_piece(old, route->hash_first[i], nf - 1, parts, firsts,
						 lasts, &count);
			if (ok && route_piece(old, nf, nl, parts, firsts, lasts, &count)) {
				parts[count - 1].id = error->route_partition_id;
				parts[count - 1].epoch = error->route_epoch;
			} else {
				ok = false;
			}
			if (ok && nl < route->hash_last[i])
				ok = route_piece(old, nl + 1, route->hash_last[i], parts, firsts,
						 lasts, &count);
		}
		if (!ok)
			goto failed;
	}
	for (size_t j = 0; j < route->partition_count; j++)
		for (size_t r = 0; r < route->parts[j].replica_count; r++)
			free(route->parts[j].address[r]);
	free(route->parts);
	free(route->hash_first);
	free(route->hash_last);
	route->parts = parts;
	route->hash_first = firsts;
	route->hash_last = lasts;
	route->partition_count = count;
	return true;

failed:
	for (size_t j = 0; parts && j < count; j++)
		for (size_t r = 0; r < parts[j].replica_count; r++)
			free(parts[j].address[r]);
	free(parts);
	free(firsts);
	free(lasts);
	return false;
}

/* See router_cache_split_locked. */
static void router_cache_follow(struct router *router, const struct router_table *table,
				uint64_t hash, const struct rpc_error *error)
{
	bool kept;

	pthread_mutex_lock(&router->lock);
	kept = router_cache_split_locked(router, table, hash, error);
	pthread_mutex_unlock(&router->lock);
	if (!kept)
		router_cache_drop(router, table->name, table->id);
}

/* Remembers that node_id leads (or, for eventual reads, serves) the
 * partition of hash, if the cached route still names it. */
static void router_cache_remember(struct router *router, const struct router_table *table,
				  uint64_t hash, uint64_t partition_id, uint64_t node_id,
				  bool reader)
{
	struct route_partition *part;

	pthread_mutex_lock(&router->lock);
	part = router_cache_partition(router, table, hash, NULL);
	if (part && part->id == partition_id) {
		size_t index = route_replica_index(part, node_id);

		if (index != ROUTER_NO_REPLICA) {
			/* A new leader is also where eventual reads go next: the
			 * replica that took this mount's writes has them, so the
			 * mount reads its own writes while that replica lives. */
			part->reader = index;
			if (!reader)
				part->leader = index;
		}
	}
	pthread_mutex_unlock(&router->lock);
}

/* One DescribeTable attempt; caches the route on success (when guarded,
 * only if no route was dropped meanwhile). */
static int router_describe_attempt(struct router *router, struct router_op *op, const char *name,
				   bool guard, Quorum__Response **response, bool *transport)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest describe = QUORUM__TABLE_REQUEST__INIT;
	struct route *route;
	uint64_t generation;
	int err;

	router_set_name(&describe.name, name);
	request.op_case = QUORUM__REQUEST__OP_DESCRIBE_TABLE;
	request.describe_table = &describe;
	pthread_mutex_lock(&router->lock);
	generation = router->cache_generation;
	pthread_mutex_unlock(&router->lock);
	err = router_meta_attempt(op, router, &request, response, transport);
	if (err < 0)
		return err;
	err = route_build((*response)->table, &route);
	if (err < 0) {
		quorum__response__free_unpacked(*response, NULL);
		*response = NULL;
		/* A map that cannot be used is the cluster's fault. */
		return err == -ENOMEM ? -ENOMEM : -EIO;
	}
	/* Group reports exist only where the nodes run replication. */
	if ((*response)->table->n_replicas > 0)
		router_set_replicated(router);
	router_cache_put(router, route, guard ? &generation : NULL);
	return 0;
}

/* The node for hash in table: from the cache, else from one DescribeTable.
 * *retry is set when the failure may pass (meta unreachable, a partition
 * without a known node). -ENOENT when the table is gone or was replaced by
 * another of the same name. */
static int router_route(struct router *router, struct router_op *op,
			const struct router_table *table, uint64_t hash,
			struct route_target *out, bool *retry)
{
	Quorum__Response *response = NULL;
	uint64_t table_id;
	int err;

	*retry = false;
	if (router_cache_find(router, table, hash, out))
		return 0;
	/* Unguarded: this route is needed now, and the drops of a failover
	 * (of any table) must not keep it out of the cache. */
	err = router_describe_attempt(router, op, table->name, false, &response, retry);
	if (err < 0)
		return err;
	table_id = response->table->table->id;
	quorum__response__free_unpacked(response, NULL);
	if (table_id != table->id)
		return -ENOENT;
	if (router_cache_find(router, table, hash, out))
		return 0;
	/* Meta answered with a map that has no node for this hash: a table
	 * being created or a node being replaced. Worth asking again. */
	snprintf(op->why, sizeof(op->why), "no partition with a known node holds hash %016llx",
		 (unsigned long long)hash);
	*retry = true;
	return -EIO;
}

/* ------------------------------------------------------- requests to nodes */

static bool router_op_node_failed(const struct router_op *op, uint64_t node_id)
{
	int64_t now_ms = clock_monotonic_ms();

	for (size_t i = 0; i < op->failed_count; i++) {
		if (op->failed_nodes[i] == node_id)
			return now_ms - op->failed_at_ms[i] < ROUTER_SUSPECT_MS;
	}
	return false;
}

static void router_op_fail_node(struct router_op *op, uint64_t node_id)
{
	int64_t now_ms = clock_monotonic_ms();

	for (size_t i = 0; i < op->failed_count; i++) {
		if (op->failed_nodes[i] == node_id) {
			op->failed_at_ms[i] = now_ms;
			return;
		}
	}
	if (op->failed_count < ROUTER_REPLICAS_MAX) {
		op->failed_nodes[op->failed_count] = node_id;
		op->failed_at_ms[op->failed_count++] = now_ms;
	}
}

/* The first usable replica from preferred on (in replica order), one that
 * has an address and has not failed on transport just now; ROUTER_NO_REPLICA
 * when none is left. */
static size_t router_pick_replica(const struct router_op *op, const struct route_target *target,
				  size_t preferred)
{
	for (size_t k = 0; k < target->replica_count; k++) {
		size_t r = (preferred + k) % target->replica_count;

		if (target->address[r][0] && !router_op_node_failed(op, target->node_id[r]))
			return r;
	}
	return ROUTER_NO_REPLICA;
}

/* How an attempt at a node went, for router_call_node. */
enum router_next {
	ROUTER_NEXT_DONE,          /* the node's answer: return it */
	ROUTER_NEXT_NOW,           /* try again at once (a hint, another replica) */
	ROUTER_NEXT_PAUSE,         /* back off, then try again */
};

/* Decides what follows an attempt at target->chosen that failed with err
 * (transport: no answer). Updates the cache and op. */
static enum router_next router_after_failure(struct router *router, struct router_op *op,
					     const struct router_table *table, uint64_t hash,
					     const struct route_target *target, bool reader,
					     int err, bool transport, uint64_t leader_hint)
{
	uint64_t node_id = target->node_id[target->chosen];
	size_t next;

	if (transport) {
		if (!target->replicated) {
			/* Only the first replica holds data: ask meta again. */
			router_cache_drop(router, table->name, table->id);
			return ROUTER_NEXT_PAUSE;
		}
		router_op_fail_node(op, node_id);
		next = router_pick_replica(op, target, target->chosen + 1);
		if (next == ROUTER_NO_REPLICA) {
			/* No replica answered: perhaps they moved. Start over
			 * with a fresh route, after a pause. */
			op->failed_count = 0;
			router_cache_drop(router, table->name, table->id);
			return ROUTER_NEXT_PAUSE;
		}
		/* The next operation should not wait on this node first. */
		router_cache_remember(router, table, hash, target->partition_id,
				      target->node_id[next], reader);
		return ROUTER_NEXT_NOW;
	}
	if (err == -EREMOTE) {
		if (!target->replicated)
			router_set_replicated(router);
		if (leader_hint && leader_hint != node_id &&
		    op->hops < ROUTER_LEADER_HOPS_MAX) {
			size_t index = ROUTER_NO_REPLICA;

			for (size_t r = 0; r < target->replica_count; r++) {
				if (target->node_id[r] == leader_hint)
					index = r;
			}
			if (index == ROUTER_NO_REPLICA) {
				/* A leader our route does not know: the group's
				 * membership changed; ask meta for the new one. */
				op->hops++;
				router_cache_drop(router, table->name, table->id);
				return ROUTER_NEXT_NOW;
			}
			/* A hint towards a node that did not answer us just now
			 * is likely stale: the replica still waits out a dead
			 * leader's lease. Try another after a pause. */
			if (!router_op_node_failed(op, leader_hint)) {
				op->hops++;
				router_cache_remember(router, table, hash, target->partition_id,
						      leader_hint, false);
				return ROUTER_NEXT_NOW;
			}
		}
	} else if (err == -EAGAIN) {
		if (!target->replicated)
			router_set_replicated(router);
	} else if (err == -EREMCHG) {
		/* Routes named by nodes did not settle it: meta's map, after a pause. */
		snprintf(op->why, sizeof(op->why), "partition %llu changed; asking meta",
			 (unsigned long long)target->partition_id);
		router_cache_drop(router, table->name, table->id);
		return ROUTER_NEXT_PAUSE;
	} else {
		return ROUTER_NEXT_DONE;
	}
	/* No leader known (an election runs, or the partition is not hosted
	 * there yet): the next replica, after a pause. */
	snprintf(op->why, sizeof(op->why), "no leader for partition %llu yet (%s)",
		 (unsigned long long)target->partition_id, strerror(-err));
	next = router_pick_replica(op, target, target->chosen + 1);
	if (next != ROUTER_NO_REPLICA)
		router_cache_remember(router, table, hash, target->partition_id,
				      target->node_id[next], reader);
	return ROUTER_NEXT_PAUSE;
}

/* A request to the replica of hash's partition in table that should take
 * it: the leader, or for an eventual read the last replica that served
 * one. Follows leader hints, moves on from replicas that do not answer,
 * refreshes the route, all until the deadline. A scan request gets the
 * range from hash to the end of each attempt's partition. */
static int router_call_node(struct router *router, struct router_op *op,
			    const struct router_table *table, uint64_t hash, bool eventual,
			    Quorum__Request *request, Quorum__Response **response,
			    struct route_target *target)
{
	/* Before the first try: a write whose answer is lost may still land. */
	if (router->eventual && (request->op_case == QUORUM__REQUEST__OP_PUT_ITEM ||
				 request->op_case == QUORUM__REQUEST__OP_DELETE_ITEM ||
				 request->op_case == QUORUM__REQUEST__OP_UPDATE_ITEM))
		own_writes_note(router->own_writes, table->id, hash, clock_monotonic_ms());
	for (;;) {
		bool retry;
		int err = router_route(router, op, table, hash, target, &retry);

		if (err == 0) {
			struct net_client *client;
			struct rpc_error error = { 0 };
			int64_t deadline_ms = clock_monotonic_ms() + ROUTER_ATTEMPT_MS;
			enum router_next next;

			if (!target->replicated)
				target->chosen = target->address[0][0] ? 0 : ROUTER_NO_REPLICA;
			else
				target->chosen = router_pick_replica(op, target, eventual ?
								     target->reader :
								     target->leader);
			if (target->chosen == ROUTER_NO_REPLICA) {
				/* Meta named no address for the replica to ask. */
				snprintf(op->why, sizeof(op->why),
					 "no known node for partition %llu",
					 (unsigned long long)target->partition_id);
				op->failed_count = 0;
				router_cache_drop(router, table->name, table->id);
				goto pause;
			}
			client = net_pool_get(router->pool, target->address[target->chosen]);
			if (!client)
				return -ENOMEM;
			if (request->op_case == QUORUM__REQUEST__OP_SCAN) {
				/* From the cursor's hash, not the partition's first: a
				 * partition split since it was cached answers for its
				 * first part only, and the rest starts past it. */
				request->scan->hash_first = hash > target->hash_first ? hash :
							    target->hash_first;
				request->scan->hash_last = target->hash_last;
			} else {
				/* The node checks them: a stale route is answered with
				 * the new one (-EREMCHG). */
				request->has_partition_id = request->has_partition_epoch = true;
				request->partition_id = target->partition_id;
				request->partition_epoch = target->epoch;
			}
			if (deadline_ms > op->deadline_ms)
				deadline_ms = op->deadline_ms;
			op->attempts++;
			err = rpc_call(client, request, deadline_ms, response, &error);
			if (error.transport || err < 0)
				snprintf(op->why, sizeof(op->why), "%s", error.why);
			if (err == 0) {
				if (target->replicated &&
				    target->chosen != (eventual ? target->reader : target->leader))
					router_cache_remember(router, table, hash,
							      target->partition_id,
							      target->node_id[target->chosen],
							      eventual);
				return 0;
			}
			if (err == -EREMCHG && op->hops < ROUTER_ROUTE_HOPS_MAX) {
				/* The partition split (or moved): follow the node's route. */
				op->hops++;
				router_cache_follow(router, table, hash, &error);
				continue;
			}
			next = router_after_failure(router, op, table, hash, target, eventual, err,
						    error.transport, error.leader_id);
			if (next == ROUTER_NEXT_DONE)
				return err;
			if (next == ROUTER_NEXT_NOW && clock_remaining_ms(op->deadline_ms) > 0)
				continue;
		} else if (!retry) {
			return err;
		}
pause:
		op->hops = 0;
		if (!router_op_backoff(op))
			return -EIO;
	}
}

/* route_refresh_fn: one DescribeTable of name, which updates the cache; a table meta
 * no longer has leaves it. Errors of the transport keep what is cached. */
static void router_refresh_table(void *ctx, const char *name)
{
	struct router *router = ctx;
	Quorum__Response *response = NULL;
	struct router_op op;
	bool transport;
	int err;

	router_op_begin(&op, router, "refresh table", name, NULL);
	err = router_describe_attempt(router, &op, name, true, &response, &transport);
	if (response)
		quorum__response__free_unpacked(response, NULL);
	if (err == -ENOENT)
		router_cache_drop(router, name, 0);
}

/* ------------------------------------------------------------ the router */

int router_new(const struct router_options *options, struct router **out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PingRequest ping = QUORUM__PING_REQUEST__INIT;
	Quorum__ClusterInfoRequest info = QUORUM__CLUSTER_INFO_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct router_op op;
	struct router *router;
	int err;

	*out = NULL;
	if (!options->meta_url || options->timeout_ms <= 0)
		return -EINVAL;
	router = calloc(1, sizeof(*router));
	if (!router)
		return -ENOMEM;
	router->timeout_ms = options->timeout_ms;
	router->eventual = options->consistency == ROUTER_CONSISTENCY_EVENTUAL;
	router->item_max_bytes = 0;
	pthread_mutex_init(&router->lock, NULL);
	router->pool = net_pool_new();
	if (!router->pool) {
		err = -ENOMEM;
		goto failed;
	}
	err = meta_client_new(options->meta_url, &router->meta);
	if (err < 0)
		goto failed;
	err = request_ids_new(&router->ids);
	if (err < 0)
		goto failed;
	router->own_writes = own_writes_new();
	if (!router->own_writes) {
		err = -ENOMEM;
		goto failed;
	}

	/* Both calls share one deadline: meta answers within the timeout
	 * or the router is not made. */
	router_op_begin(&op, router, "connect to the metadata service", NULL, NULL);
	request.op_case = QUORUM__REQUEST__OP_PING;
	request.ping = &ping;
	err = router_call_meta(router, &op, &request, &response);
	if (err == 0) {
		quorum__response__free_unpacked(response, NULL);
		request.op_case = QUORUM__REQUEST__OP_CLUSTER_INFO;
		request.cluster_info = &info;
		err = router_call_meta(router, &op, &request, &response);
	}
	if (err < 0) {
		/* Giving up on the deadline was logged with its reason. */
		if (err != -EIO || !op.why[0])
			log_error("metadata service %s refused: %s", options->meta_url,
				  strerror(-err));
		err = err == -ENOMEM ? -ENOMEM : -EIO;
		goto failed;
	}
	router->item_max_bytes = response->cluster_info->item_max_bytes;
	quorum__response__free_unpacked(response, NULL);
	/* An operator may change the limit at run time (quorumctl config set). */
	err = settings_watch_start(router->meta, router->item_max_bytes,
				   SETTINGS_WATCH_REFRESH_MS, &router->settings);
	if (err == 0)
		err = route_refresh_start(router_refresh_table, router, &router->refresh);
	if (err < 0)
		goto failed;
	*out = router;
	return 0;

failed:
	router_free(router);
	return err;
}

void router_free(struct router *router)
{
	if (!router)
		return;
	/* Before the pool: the watch and the refresher call meta through it. */
	settings_watch_stop(router->settings);
	route_refresh_stop(router->refresh);
	while (router->routes) {
		struct route *next = router->routes->next;
		route_free(router->routes);
		router->routes = next;
	}
	net_pool_free(router->pool);
	meta_client_free(router->meta);
	request_ids_free(router->ids);
	own_writes_free(router->own_writes);
	pthread_mutex_destroy(&router->lock);
	free(router);
}

uint64_t router_item_max_bytes(const struct router *router)
{
	return router->settings ? settings_watch_item_max_bytes(router->settings) :
	       router->item_max_bytes;
}

int64_t router_timeout_ms(const struct router *router)
{
	return router->timeout_ms;
}

/* ------------------------------------------------------------------ tables */

int router_list_tables(struct router *router, struct router_table **tables, size_t *count)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListTablesRequest list = QUORUM__LIST_TABLES_REQUEST__INIT;
	Quorum__Response *response = NULL;
	Quorum__ListTablesResponse *answer;
	struct router_table *out;
	struct router_op op;
	size_t n = 0;
	int err;

	*tables = NULL;
	*count = 0;
	router_op_begin(&op, router, "list tables", NULL, NULL);
	request.op_case = QUORUM__REQUEST__OP_LIST_TABLES;
	request.list_tables = &list;
	err = router_call_meta(router, &op, &request, &response);
	if (err < 0)
		return err;
	answer = response->list_tables;
	out = calloc(answer->n_tables ? answer->n_tables : 1, sizeof(*out));
	if (!out) {
		quorum__response__free_unpacked(response, NULL);
		return -ENOMEM;
	}
	for (size_t i = 0; i < answer->n_tables; i++) {
		/* A table whose name cannot be a file name is left out
		 * (logged) rather than failing the whole listing. */
		if (router_table_from_info(&out[n], answer->tables[i]) == 0)
			n++;
	}
	quorum__response__free_unpacked(response, NULL);
	*tables = out;
	*count = n;
	return 0;
}

/* The cached table called name, if any. */
static bool router_cache_table(struct router *router, const char *name, struct router_table *out)
{
	bool found = false;

	pthread_mutex_lock(&router->lock);
	for (const struct route *route = router->routes; route && !found; route = route->next) {
		if (strcmp(route->name, name) == 0) {
			*out = route->info;
			found = true;
		}
	}
	pthread_mutex_unlock(&router->lock);
	return found;
}

int router_get_table(struct router *router, const char *name, struct router_table *out)
{
	Quorum__Response *response = NULL;
	struct router_op op;
	int err;

	err = key_validate_name(name, strlen(name));
	if (err < 0)
		return err;
	/* Hit or miss, meta hears of the lookup, in the background (route_refresh.h). */
	if (router->refresh)
		route_refresh_request(router->refresh, name);
	if (router_cache_table(router, name, out))
		return 0;
	router_op_begin(&op, router, "describe table", name, NULL);
	for (;;) {
		bool transport;

		err = router_describe_attempt(router, &op, name, true, &response, &transport);
		if (!transport)
			break;
		if (!router_op_backoff(&op))
			return -EIO;
	}
	if (err < 0)
		return err;
	err = router_table_from_info(out, response->table->table);
	quorum__response__free_unpacked(response, NULL);
	return err;
}

int router_create_table(struct router *router, const char *name, uint32_t mode, uint32_t uid,
			uint32_t gid, struct router_table *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__CreateTableRequest create = QUORUM__CREATE_TABLE_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct router_op op;
	struct route *route;
	int err;

	err = key_validate_name(name, strlen(name));
	if (err < 0)
		return err;
	router_set_name(&create.name, name);
	create.mode = mode & 07777;
	create.uid = uid;
	create.gid = gid;
	request.op_case = QUORUM__REQUEST__OP_CREATE_TABLE;
	request.create_table = &create;
	router_op_begin(&op, router, "create table", name, NULL);
	err = router_call_meta(router, &op, &request, &response);
	if (err < 0)
		return err;
	err = router_table_from_info(out, response->table->table);
	if (err == 0 && route_build(response->table, &route) == 0)
		router_cache_put(router, route, NULL);
	quorum__response__free_unpacked(response, NULL);
	return err;
}

int router_delete_table(struct router *router, const char *name)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest delete = QUORUM__TABLE_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct router_table table;
	struct router_op op;
	bool has_items;
	int err;

	err = router_get_table(router, name, &table);
	if (err < 0)
		return err;
	err = router_table_has_items(router, &table, &has_items);
	if (err < 0)
		return err;
	if (has_items)
		return -ENOTEMPTY;
	router_set_name(&delete.name, name);
	request.op_case = QUORUM__REQUEST__OP_DELETE_TABLE;
	request.delete_table = &delete;
	router_op_begin(&op, router, "delete table", name, NULL);
	for (;;) {
		bool transport;

		err = router_meta_attempt(&op, router, &request, &response, &transport);
		if (!transport)
			break;
		op.maybe_applied = true;
		if (!router_op_backoff(&op))
			return -EIO;
	}
	if (response)
		quorum__response__free_unpacked(response, NULL);
	router_cache_drop(router, name, 0);
	/* The first try deleted it and its answer was lost. */
	if (err == -ENOENT && op.maybe_applied)
		return 0;
	return err;
}

int router_update_table(struct router *router, const char *name,
			const struct router_table_update *update, struct router_table *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__UpdateTableRequest change = QUORUM__UPDATE_TABLE_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct router_op op;
	int err;

	err = key_validate_name(name, strlen(name));
	if (err < 0)
		return err;
	router_set_name(&change.name, name);
	change.has_mode = update->set_mode;
	change.mode = update->mode & 07777;
	change.has_uid = update->set_uid;
	change.uid = update->uid;
	change.has_gid = update->set_gid;
	change.gid = update->gid;
	change.has_mtime_ns = update->set_mtime;
	change.mtime_ns = update->mtime_ns;
	request.op_case = QUORUM__REQUEST__OP_UPDATE_TABLE;
	request.update_table = &change;
	router_op_begin(&op, router, "update table", name, NULL);
	err = router_call_meta(router, &op, &request, &response);
	if (err < 0)
		return err;
	err = out ? router_table_from_info(out, response->table->table) : 0;
	quorum__response__free_unpacked(response, NULL);
	/* The cached description is older than this change. */
	router_cache_drop(router, name, 0);
	return err;
}

int router_cluster_stats(struct router *router, struct router_cluster_stats *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ClusterInfoRequest info = QUORUM__CLUSTER_INFO_REQUEST__INIT;
	Quorum__Response *response = NULL;
	Quorum__ClusterInfoResponse *answer;
	struct router_op op;
	int err;

	request.op_case = QUORUM__REQUEST__OP_CLUSTER_INFO;
	request.cluster_info = &info;
	router_op_begin(&op, router, "cluster info", NULL, NULL);
	err = router_call_meta(router, &op, &request, &response);
	if (err < 0)
		return err;
	answer = response->cluster_info;
	/* What a user can store (each item once per AZ), when meta knows it; an older meta
	 * only sums every node's space, every replica counted. */
	out->capacity_bytes = answer->has_usable_capacity_bytes ? answer->usable_capacity_bytes :
			      answer->capacity_bytes;
	out->free_bytes = answer->has_usable_free_bytes ? answer->usable_free_bytes :
			  answer->free_bytes;
	out->nodes_up = answer->nodes_up;
	out->nodes_total = answer->nodes_total;
	out->table_count = answer->table_count;
	quorum__response__free_unpacked(response, NULL);
	return 0;
}

/* ------------------------------------------------------------------- items */

/* Room for the string form of a key, "P/S", and its NUL. */
#define ROUTER_KEY_TEXT_BYTES (2 * KEY_NAME_MAX_BYTES + 2)

/* A key parsed from the string form of the item functions. */
struct router_parsed_key {
	char text[ROUTER_KEY_TEXT_BYTES];
	struct router_key key;
};

/* Checks what every item operation needs: a valid partition key, and a
 * sort key exactly when the table has them (an empty one: the marker). */
static int router_check_key(const struct router_table *table, const struct router_key *key)
{
	int err;

	if (!key->partition_key)
		return -EINVAL;
	err = key_validate_name(key->partition_key, strlen(key->partition_key));
	if (err < 0)
		return err;
	if (!table->has_sort_key)
		return key->sort_key ? -EINVAL : 0;
	if (!key->sort_key)
		return -EINVAL;
	return key_validate_sort_key(key->sort_key, strlen(key->sort_key));
}

/* The string form: "K", or "P/S" in a table with a sort key. Checked
 * later, by router_check_key. */
static int router_parse_key(const struct router_table *table, const char *text,
			    struct router_parsed_key *out)
{
	size_t bytes = strlen(text);
	char *slash;

	if (bytes >= sizeof(out->text))
		return -ENAMETOOLONG;
	memcpy(out->text, text, bytes + 1);
	out->key.partition_key = out->text;
	out->key.sort_key = NULL;
	if (!table->has_sort_key)
		return 0;
	slash = strchr(out->text, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	out->key.sort_key = slash + 1;
	return 0;
}

/* The string form of key, for log lines. */
static const char *router_key_text(const struct router_key *key,
				   char out[ROUTER_KEY_TEXT_BYTES])
{
	snprintf(out, ROUTER_KEY_TEXT_BYTES, "%s%s%s", key->partition_key,
		 key->sort_key ? "/" : "", key->sort_key ? key->sort_key : "");
	return out;
}

/* The hash that routes an item: its partition key's (keys.h). */
static uint64_t router_key_hash(const struct router_key *key)
{
	return key_hash(key->partition_key, strlen(key->partition_key));
}

static void router_set_item_key(Quorum__ItemKey *item_key, const struct router_table *table,
				const struct router_key *key)
{
	item_key->table_id = table->id;
	router_set_name(&item_key->partition_key, key->partition_key);
	if (key->sort_key) {
		item_key->has_sort_key = true;
		router_set_name(&item_key->sort_key, key->sort_key);
	}
}

void router_item_free(struct router_item *item)
{
	if (!item)
		return;
	for (size_t i = 0; i < item->xattr_count; i++) {
		free(item->xattrs[i].name);
		free(item->xattrs[i].value);
	}
	free(item->xattrs);
	free(item->body);
	memset(item, 0, sizeof(*item));
}

static int router_item_from_record(struct router_item *out, const Quorum__ItemRecord *record,
				   bool meta_only)
{
	memset(out, 0, sizeof(*out));
	router_attr_from_meta(&out->attr, record->meta);
	if (!meta_only) {
		size_t body_bytes = record->has_body ? record->body.len : 0;

		/* Never NULL when asked for, even for an empty body. */
		out->body = malloc(body_bytes ? body_bytes : 1);
		if (!out->body)
			return -ENOMEM;
		if (body_bytes)
			memcpy(out->body, record->body.data, body_bytes);
		out->body_bytes = body_bytes;
	}
	if (record->n_xattrs > 0) {
		out->xattrs = calloc(record->n_xattrs, sizeof(*out->xattrs));
		if (!out->xattrs)
			goto nomem;
	}
	for (size_t i = 0; i < record->n_xattrs; i++) {
		const Quorum__Xattr *x = record->xattrs[i];
		struct item_xattr *to = &out->xattrs[out->xattr_count];

		/* A name with NUL inside cannot be a C string: skip it. */
		if (x->name.len == 0 || memchr(x->name.data, '\0', x->name.len)) {
			log_warn("item xattr with an invalid name skipped");
			continue;
		}
		to->name = malloc(x->name.len + 1);
		to->value = malloc(x->value.len ? x->value.len : 1);
		if (!to->name || !to->value) {
			free(to->name);
			free(to->value);
			to->name = NULL;
			to->value = NULL;
			goto nomem;
		}
		memcpy(to->name, x->name.data, x->name.len);
		to->name[x->name.len] = '\0';
		if (x->value.len)
			memcpy(to->value, x->value.data, x->value.len);
		to->value_bytes = x->value.len;
		out->xattr_count++;
	}
	return 0;

nomem:
	router_item_free(out);
	return -ENOMEM;
}

/* eventual: any replica may answer (consistency=eventual); a read that
 * feeds a change (rename, the check of an update) is always strong. */
static int router_get_item_op(struct router *router, struct router_op *op,
			      const struct router_table *table, const struct router_key *key,
			      bool meta_only, bool eventual, struct router_item *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__GetItemRequest get = QUORUM__GET_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__Response *response = NULL;
	struct route_target target;
	int err;

	/* A key this router just wrote is read at its leader (own_writes.h). */
	if (eventual && own_writes_recent(router->own_writes, table->id, router_key_hash(key),
					  clock_monotonic_ms()))
		eventual = false;
	router_set_item_key(&item_key, table, key);
	get.key = &item_key;
	get.has_meta_only = true;
	get.meta_only = meta_only;
	get.has_eventual = eventual;
	get.eventual = eventual;
	request.op_case = QUORUM__REQUEST__OP_GET_ITEM;
	request.get_item = &get;
	memset(out, 0, sizeof(*out));
	err = router_call_node(router, op, table, router_key_hash(key), eventual, &request,
			       &response, &target);
	if (err < 0)
		return err;
	err = router_item_from_record(out, response->get_item->item, meta_only);
	quorum__response__free_unpacked(response, NULL);
	return err;
}

int router_get_item_at(struct router *router, const struct router_table *table,
		       const struct router_key *key, bool meta_only, struct router_item *out)
{
	char text[ROUTER_KEY_TEXT_BYTES];
	struct router_op op;
	int err;

	memset(out, 0, sizeof(*out));
	err = router_check_key(table, key);
	if (err < 0)
		return err;
	router_op_begin(&op, router, "get item", table->name, router_key_text(key, text));
	return router_get_item_op(router, &op, table, key, meta_only, router->eventual, out);
}

int router_get_item(struct router *router, const struct router_table *table, const char *key,
		    bool meta_only, struct router_item *out)
{
	struct router_parsed_key parsed;
	int err;

	memset(out, 0, sizeof(*out));
	err = router_parse_key(table, key, &parsed);
	if (err < 0)
		return err;
	return router_get_item_at(router, table, &parsed.key, meta_only, out);
}

/* An item write: request goes to key's partition with a request id that stays the same
 * across the retries, so the group applies it once however often it arrives. */
static int router_write_item(struct router *router, const struct router_table *table,
			     const struct router_key *key, const char *what,
			     Quorum__Request *request, Quorum__Response **response)
{
	char text[ROUTER_KEY_TEXT_BYTES];
	Quorum__RequestId id;
	struct route_target target;
	struct router_op op;
	int err;

	err = request_ids_begin(router->ids, &id);
	if (err < 0)
		return err;
	request->request_id = &id;
	router_op_begin(&op, router, what, table->name, router_key_text(key, text));
	err = router_call_node(router, &op, table, router_key_hash(key), false, request,
			       response, &target);
	request_ids_end(router->ids, id.seq);
	request->request_id = NULL;
	return err;
}

int router_put_item(struct router *router, const struct router_table *table, const char *key,
		    const struct item_attr *attr, const void *body, size_t body_bytes,
		    const struct item_xattr *xattrs, size_t xattr_count,
		    enum router_condition condition, uint64_t expect_version,
		    struct item_attr *out)
{
	struct router_parsed_key parsed;
	int err;

	err = router_parse_key(table, key, &parsed);
	if (err < 0)
		return err;
	return router_put_item_at(router, table, &parsed.key, attr, body, body_bytes, xattrs,
				  xattr_count, condition, expect_version, out);
}

int router_put_item_at(struct router *router, const struct router_table *table,
		       const struct router_key *key, const struct item_attr *attr,
		       const void *body, size_t body_bytes, const struct item_xattr *xattrs,
		       size_t xattr_count, enum router_condition condition,
		       uint64_t expect_version, struct item_attr *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PutItemRequest put = QUORUM__PUT_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	Quorum__Xattr *wire_xattrs = NULL, **wire_xattr_list = NULL;
	Quorum__Response *response = NULL;
	int err;

	err = router_check_key(table, key);
	if (err < 0)
		return err;
	if (router_item_max_bytes(router) > 0 && body_bytes > router_item_max_bytes(router))
		return -EFBIG;
	if (body_bytes > 0 && !body)
		return -EINVAL;
	router_set_item_key(&item_key, table, key);
	meta.mode = attr->mode;
	meta.uid = attr->uid;
	meta.gid = attr->gid;
	meta.mtime_ns = attr->mtime_ns;
	meta.ctime_ns = attr->ctime_ns;
	meta.size = body_bytes;
	put.key = &item_key;
	put.meta = &meta;
	put.has_body = true;
	put.body.data = (uint8_t *)body;
	put.body.len = body_bytes;
	if (!xattrs) {
		put.has_keep_xattrs = true;
		put.keep_xattrs = true;
	} else if (xattr_count > 0) {
		wire_xattrs = calloc(xattr_count, sizeof(*wire_xattrs));
		wire_xattr_list = calloc(xattr_count, sizeof(*wire_xattr_list));
		if (!wire_xattrs || !wire_xattr_list) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < xattr_count; i++) {
			quorum__xattr__init(&wire_xattrs[i]);
			router_set_name(&wire_xattrs[i].name, xattrs[i].name);
			wire_xattrs[i].value.data = xattrs[i].value;
			wire_xattrs[i].value.len = xattrs[i].value_bytes;
			wire_xattr_list[i] = &wire_xattrs[i];
		}
		put.n_xattrs = xattr_count;
		put.xattrs = wire_xattr_list;
	}
	put.has_condition = true;
	switch (condition) {
	case ROUTER_COND_ABSENT:
		put.condition = QUORUM__CONDITION__COND_ABSENT;
		break;
	case ROUTER_COND_VERSION:
		put.condition = QUORUM__CONDITION__COND_VERSION;
		put.has_expect_version = true;
		put.expect_version = expect_version;
		break;
	default:
		put.condition = QUORUM__CONDITION__COND_NONE;
		break;
	}
	request.op_case = QUORUM__REQUEST__OP_PUT_ITEM;
	request.put_item = &put;
	err = router_write_item(router, table, key, "put item", &request, &response);
	if (err < 0)
		goto out;
	if (out)
		router_attr_from_meta(out, response->put_item->meta);
	quorum__response__free_unpacked(response, NULL);
out:
	free(wire_xattrs);
	free(wire_xattr_list);
	return err;
}

int router_delete_item(struct router *router, const struct router_table *table, const char *key)
{
	struct router_parsed_key parsed;
	int err;

	err = router_parse_key(table, key, &parsed);
	if (err < 0)
		return err;
	return router_delete_item_at(router, table, &parsed.key);
}

int router_delete_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *key)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__DeleteItemRequest delete = QUORUM__DELETE_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__Response *response = NULL;
	int err;

	err = router_check_key(table, key);
	if (err < 0)
		return err;
	router_set_item_key(&item_key, table, key);
	delete.key = &item_key;
	request.op_case = QUORUM__REQUEST__OP_DELETE_ITEM;
	request.delete_item = &delete;
	err = router_write_item(router, table, key, "delete item", &request, &response);
	if (response)
		quorum__response__free_unpacked(response, NULL);
	return err;
}

int router_update_item(struct router *router, const struct router_table *table,
		       const char *key, const struct router_update *update,
		       struct item_attr *out)
{
	struct router_parsed_key parsed;
	int err;

	err = router_parse_key(table, key, &parsed);
	if (err < 0)
		return err;
	return router_update_item_at(router, table, &parsed.key, update, out);
}

int router_update_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *key, const struct router_update *update,
			  struct item_attr *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__UpdateItemRequest change = QUORUM__UPDATE_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__Xattr set_xattr = QUORUM__XATTR__INIT;
	Quorum__Response *response = NULL;
	int err;

	err = router_check_key(table, key);
	if (err < 0)
		return err;
	if (update->set_size && router_item_max_bytes(router) > 0 &&
	    update->size > router_item_max_bytes(router))
		return -EFBIG;
	router_set_item_key(&item_key, table, key);
	change.key = &item_key;
	change.has_mode = update->set_mode;
	change.mode = update->mode & 07777;
	change.has_uid = update->set_uid;
	change.uid = update->uid;
	change.has_gid = update->set_gid;
	change.gid = update->gid;
	change.has_mtime_ns = update->set_mtime;
	change.mtime_ns = update->mtime_ns;
	change.has_ctime_ns = update->set_ctime;
	change.ctime_ns = update->ctime_ns;
	change.has_truncate_size = update->set_size;
	change.truncate_size = update->size;
	if (update->set_xattr) {
		router_set_name(&set_xattr.name, update->set_xattr->name);
		set_xattr.value.data = update->set_xattr->value;
		set_xattr.value.len = update->set_xattr->value_bytes;
		change.set_xattr = &set_xattr;
		change.has_set_xattr_flags = true;
		change.set_xattr_flags = (uint32_t)update->set_xattr_flags;
	}
	if (update->remove_xattr) {
		change.has_remove_xattr = true;
		router_set_name(&change.remove_xattr, update->remove_xattr);
	}
	request.op_case = QUORUM__REQUEST__OP_UPDATE_ITEM;
	request.update_item = &change;
	err = router_write_item(router, table, key, "update item", &request, &response);
	if (err < 0)
		return err;
	if (out)
		router_attr_from_meta(out, response->update_item->meta);
	quorum__response__free_unpacked(response, NULL);
	return 0;
}

int router_rename_item(struct router *router, const struct router_table *table,
		       const char *from, const char *to, bool no_replace)
{
	struct router_parsed_key parsed_from, parsed_to;
	int err;

	err = router_parse_key(table, from, &parsed_from);
	if (err == 0)
		err = router_parse_key(table, to, &parsed_to);
	if (err < 0)
		return err;
	return router_rename_item_at(router, table, &parsed_from.key, &parsed_to.key,
				     no_replace);
}

static bool router_key_equal(const struct router_key *a, const struct router_key *b)
{
	if (strcmp(a->partition_key, b->partition_key) != 0)
		return false;
	if (!a->sort_key || !b->sort_key)
		return !a->sort_key && !b->sort_key;
	return strcmp(a->sort_key, b->sort_key) == 0;
}

int router_rename_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *from, const struct router_key *to,
			  bool no_replace)
{
	char text[ROUTER_KEY_TEXT_BYTES];
	struct router_item item;
	struct item_attr attr;
	struct router_op op;
	/* A non-NULL list: the target gets exactly the source's xattrs, none
	 * when it has none, rather than keeping the target's old ones. */
	static const struct item_xattr no_xattrs[1];
	int err;

	err = router_check_key(table, from);
	if (err < 0)
		return err;
	err = router_check_key(table, to);
	if (err < 0)
		return err;
	if (router_key_equal(from, to))
		return 0;
	/* The source is read at its leader even on an eventual mount: the
	 * target must get the body the source holds now. */
	router_op_begin(&op, router, "get item", table->name, router_key_text(from, text));
	err = router_get_item_op(router, &op, table, from, false, false, &item);
	if (err < 0)
		return err;
	attr = item.attr;
	attr.ctime_ns = clock_realtime_ns();
	err = router_put_item_at(router, table, to, &attr, item.body, item.body_bytes,
				 item.xattrs ? item.xattrs : no_xattrs, item.xattr_count,
				 no_replace ? ROUTER_COND_ABSENT : ROUTER_COND_NONE, 0, NULL);
	router_item_free(&item);
	if (err < 0)
		return err;
	err = router_delete_item_at(router, table, from);
	/* Someone else removed the source meanwhile: the rename is done. */
	if (err == -ENOENT)
		return 0;
	return err;
}

/* -------------------------------------------------------------------- scan */

void router_cursor_start(struct router_cursor *cursor)
{
	memset(cursor, 0, sizeof(*cursor));
}

/* Moves cursor past a partition that has no further items. */
static void router_cursor_next_partition(struct router_cursor *cursor, uint64_t hash_last)
{
	if (hash_last == UINT64_MAX) {
		cursor->done = true;
	} else {
		cursor->hash = hash_last + 1;
	}
	cursor->after_bytes = 0;
}

/* What a scan lists. */
enum router_scan_mode {
	ROUTER_SCAN_ITEMS,          /* a table without a sort key: its items */
	ROUTER_SCAN_PARTITION_KEYS, /* a table with one: its partition keys, once each */
	ROUTER_SCAN_QUERY,          /* the items of one partition key, by sort key */
};

/* The partition key of a position (which decoded before), for the check
 * that an old node's page repeats no partition key. */
static bool router_position_has_key(const uint8_t *position, size_t position_bytes,
				    const uint8_t *pk, size_t pk_bytes)
{
	const uint8_t *other_pk, *sk;
	size_t other_bytes, sk_bytes;
	bool has_sort_key;
	uint64_t hash;

	return position_bytes > 0 &&
	       key_decode_position(position, position_bytes, &hash, &other_pk, &other_bytes,
				   &sk, &sk_bytes, &has_sort_key) == 0 &&
	       other_bytes == pk_bytes && memcmp(other_pk, pk, pk_bytes) == 0;
}

/* How router_scan_entry_take dealt with an entry. */
enum router_take {
	ROUTER_TAKE_LISTED,
	ROUTER_TAKE_PASSED,         /* not listed, as expected: a marker in a query */
	ROUTER_TAKE_UNEXPECTED,     /* not listed: an item of the wrong shape */
};

/* Fills to from a scan entry as mode lists it. */
static enum router_take router_scan_entry_take(const struct router_table *table,
					       enum router_scan_mode mode, const char *query_key,
					       const struct router_cursor *cursor,
					       const Quorum__ScanEntry *entry, const uint8_t *pk,
					       size_t pk_bytes, const uint8_t *sk, size_t sk_bytes,
					       bool has_sort_key, struct router_scan_entry *to)
{
	memset(to, 0, sizeof(*to));
	switch (mode) {
	case ROUTER_SCAN_ITEMS:
		if (has_sort_key)
			return ROUTER_TAKE_UNEXPECTED;
		memcpy(to->key, pk, pk_bytes);
		router_attr_from_meta(&to->attr, entry->meta);
		return ROUTER_TAKE_LISTED;
	case ROUTER_SCAN_PARTITION_KEYS:
		if (!has_sort_key)
			return ROUTER_TAKE_UNEXPECTED;
		/* A node that ignores distinct_partition_keys (an older
		 * version) sends every item: list each partition key once. */
		if (router_position_has_key(cursor->after, cursor->after_bytes, pk, pk_bytes))
			return ROUTER_TAKE_PASSED;
		memcpy(to->key, pk, pk_bytes);
		to->is_directory = true;
		if (sk_bytes == 0) {
			/* The partition key's directory marker. */
			router_attr_from_meta(&to->attr, entry->meta);
			to->attr.mode = S_IFDIR | (to->attr.mode & 07777);
		} else {
			router_partition_default_attr(table, &to->attr);
		}
		return ROUTER_TAKE_LISTED;
	case ROUTER_SCAN_QUERY:
		if (!has_sort_key || pk_bytes != strlen(query_key) ||
		    memcmp(pk, query_key, pk_bytes) != 0)
			return ROUTER_TAKE_UNEXPECTED;
		if (sk_bytes == 0)
			return ROUTER_TAKE_PASSED;   /* the directory itself */
		memcpy(to->key, sk, sk_bytes);
		router_attr_from_meta(&to->attr, entry->meta);
		return ROUTER_TAKE_LISTED;
	}
	return ROUTER_TAKE_UNEXPECTED;
}

/* Takes the entries of one scan page into entries (room of them), moving
 * cursor past each; *added says how many were kept. An entry that does not
 * decode is skipped; one whose position cannot even serve as a cursor
 * stops the scan (-EIO): going on would return the same page forever. */
static int router_scan_take(const struct router_table *table, enum router_scan_mode mode,
			    const char *query_key, const Quorum__ScanResponse *page,
			    struct router_cursor *cursor, struct router_scan_entry *entries,
			    size_t room, size_t *added)
{
	*added = 0;
	for (size_t i = 0; i < page->n_entries && *added < room; i++) {
		const Quorum__ScanEntry *entry = page->entries[i];
		const uint8_t *pk, *sk;
		size_t pk_bytes, sk_bytes;
		bool has_sort_key;
		uint64_t hash;
		enum router_take take;
		struct router_scan_entry *to = &entries[*added];

		if (entry->position.len == 0 || entry->position.len > KEY_POSITION_MAX_BYTES) {
			log_warn("scan of table %s: entry with a position of %zu bytes: "
				 "cannot go on", table->name, entry->position.len);
			return -EIO;
		}
		take = ROUTER_TAKE_UNEXPECTED;
		if (key_decode_position(entry->position.data, entry->position.len, &hash, &pk,
					&pk_bytes, &sk, &sk_bytes, &has_sort_key) == 0)
			take = router_scan_entry_take(table, mode, query_key, cursor, entry, pk,
						      pk_bytes, sk, sk_bytes, has_sort_key, to);
		if (take != ROUTER_TAKE_LISTED) {
			if (take == ROUTER_TAKE_UNEXPECTED)
				log_warn("scan of table %s: entry with an unexpected position "
					 "skipped", table->name);
			/* Still move past it, inside the same partition. */
			memcpy(cursor->after, entry->position.data, entry->position.len);
			cursor->after_bytes = entry->position.len;
			continue;
		}
		memset(&to->next, 0, sizeof(to->next));
		to->next.hash = hash;
		to->next.after_bytes = entry->position.len;
		memcpy(to->next.after, entry->position.data, entry->position.len);
		*cursor = to->next;
		(*added)++;
	}
	return 0;
}

/* One scan of up to capacity entries (see router_scan and router_query);
 * eventual: any replica may answer. query_key: the partition key of a
 * query, else NULL. */
static int router_scan_op(struct router *router, const struct router_table *table,
			  const char *query_key, struct router_cursor *cursor,
			  struct router_scan_entry *entries, size_t capacity, bool eventual,
			  size_t *count)
{
	enum router_scan_mode mode = ROUTER_SCAN_ITEMS;
	uint64_t query_hash = 0;

	*count = 0;
	if (query_key) {
		int err = key_validate_name(query_key, strlen(query_key));

		if (err < 0)
			return err;
		if (!table->has_sort_key)
			return -ENOTDIR;
		mode = ROUTER_SCAN_QUERY;
		/* One partition holds every item of a partition key. */
		query_hash = key_hash(query_key, strlen(query_key));
	} else if (table->has_sort_key) {
		mode = ROUTER_SCAN_PARTITION_KEYS;
	}
	while (!cursor->done && *count < capacity) {
		Quorum__Request request = QUORUM__REQUEST__INIT;
		Quorum__ScanRequest scan = QUORUM__SCAN_REQUEST__INIT;
		Quorum__Response *response = NULL;
		Quorum__ScanResponse *page;
		struct route_target target;
		struct router_op op;
		size_t room = capacity - *count, added;
		bool more;
		int err;

		router_op_begin(&op, router, query_key ? "query" : "scan", table->name, query_key);
		scan.table_id = table->id;
		scan.limit = room > ROUTER_SCAN_PAGE_MAX ? ROUTER_SCAN_PAGE_MAX : (uint32_t)room;
		scan.has_after = cursor->after_bytes > 0;
		scan.after.data = cursor->after;
		scan.after.len = cursor->after_bytes;
		scan.has_eventual = eventual;
		scan.eventual = eventual;
		if (mode == ROUTER_SCAN_QUERY) {
			scan.has_partition_key = true;
			router_set_name(&scan.partition_key, query_key);
		}
		scan.has_distinct_partition_keys = mode == ROUTER_SCAN_PARTITION_KEYS;
		scan.distinct_partition_keys = mode == ROUTER_SCAN_PARTITION_KEYS;
		request.op_case = QUORUM__REQUEST__OP_SCAN;
		request.scan = &scan;
		/* The range is known only once routed: every attempt sends
		 * the range of its route (set by router_call_node). */
		err = router_call_node(router, &op, table,
				       mode == ROUTER_SCAN_QUERY ? query_hash : cursor->hash,
				       eventual, &request, &response, &target);
		if (err < 0)
			return err;
		page = response->scan;
		more = page->more;
		if (page->n_entries > room) {
			/* More than asked for: take what fits, the rest is
			 * read again from the cursor. */
			more = true;
		}
		err = router_scan_take(table, mode, query_key, page, cursor, entries + *count, room,
				       &added);
		*count += added;
		if (err < 0) {
			quorum__response__free_unpacked(response, NULL);
			return err;
		}
		if (!more && mode == ROUTER_SCAN_QUERY) {
			cursor->done = true;
		} else if (!more) {
			/* A node whose group split answers for its part of the range only. */
			router_cursor_next_partition(cursor, page->has_covered_last &&
							     page->covered_last < target.hash_last ?
							     page->covered_last : target.hash_last);
		} else if (page->n_entries == 0) {
			/* "More" with an empty page would loop forever. */
			log_warn("scan of table %s: node %s answered an empty page with more",
				 table->name, target.address[target.chosen]);
			quorum__response__free_unpacked(response, NULL);
			return -EIO;
		}
		quorum__response__free_unpacked(response, NULL);
	}
	return 0;
}

int router_scan(struct router *router, const struct router_table *table,
		struct router_cursor *cursor, struct router_scan_entry *entries,
		size_t capacity, size_t *count)
{
	return router_scan_op(router, table, NULL, cursor, entries, capacity, router->eventual,
			      count);
}

int router_query(struct router *router, const struct router_table *table,
		 const char *partition_key, struct router_cursor *cursor,
		 struct router_scan_entry *entries, size_t capacity, size_t *count)
{
	return router_scan_op(router, table, partition_key, cursor, entries, capacity,
			      router->eventual, count);
}

int router_partition_has_items(struct router *router, const struct router_table *table,
			       const char *partition_key, bool *has_items)
{
	struct router_cursor cursor;
	struct router_scan_entry entry;
	size_t count = 0;
	int err;

	*has_items = false;
	router_cursor_start(&cursor);
	/* At the leader: rmdir must not remove a directory that holds items. */
	err = router_scan_op(router, table, partition_key, &cursor, &entry, 1, false, &count);
	if (err < 0)
		return err;
	*has_items = count > 0;
	return 0;
}

void router_partition_default_attr(const struct router_table *table, struct item_attr *out)
{
	memset(out, 0, sizeof(*out));
	out->mode = S_IFDIR | (table->mode & 07777);
	out->uid = table->uid;
	out->gid = table->gid;
	out->mtime_ns = table->mtime_ns;
	out->ctime_ns = table->ctime_ns;
}

int router_table_has_items(struct router *router, const struct router_table *table,
			   bool *has_items)
{
	struct router_cursor cursor;
	struct router_scan_entry entry;
	size_t count = 0;
	int err;

	*has_items = false;
	router_cursor_start(&cursor);
	/* At the leader: rmdir must not delete a table that holds items (or,
	 * with a sort key, a directory of a partition key). */
	err = router_scan_op(router, table, NULL, &cursor, &entry, 1, false, &count);
	if (err < 0)
		return err;
	*has_items = count > 0;
	return 0;
}
