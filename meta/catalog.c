/* catalog.c: the catalog in memory and in LevelDB. See catalog.h.
 *
 * A table lives in memory as the TableInfo decoded from its own record, so
 * what we serve is exactly what is on disk (unknown fields of a newer
 * version included). A change is prepared completely first (new record
 * packed, memory reserved), then written with sync, and only then applied
 * in memory: a failed write leaves memory as it was, and nothing that can
 * fail happens after the write. */
#include "meta/catalog.h"

#include "cluster/keys.h"
#include "cluster/log.h"
#include "cluster/paxos.h"
#include "meta/placement.h"
#include "meta/reports.h"
#include "meta/settings.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

#define CATALOG_TABLE_PREFIX "t/"
#define CATALOG_NODE_PREFIX "n/"
#define CATALOG_PREFIX_BYTES 2
#define CATALOG_COUNTERS_KEY "c"
#define CATALOG_TABLE_KEY_MAX_BYTES (CATALOG_PREFIX_BYTES + KEY_NAME_MAX_BYTES)
#define CATALOG_NODE_KEY_BYTES (CATALOG_PREFIX_BYTES + 8)
/* Bounds on what a node may call itself, so a peer cannot grow the catalog
 * without limit. */
#define CATALOG_AZ_MAX_BYTES 64
#define CATALOG_ADDRESS_MAX_BYTES 512
/* A name in a log line, every byte escaped at worst. */
#define CATALOG_PRINTABLE_BYTES (4 * KEY_NAME_MAX_BYTES + 16)

struct catalog_node {
	uint64_t id;
	char *address;              /* malloc'd */
	char *az;                   /* malloc'd */
	bool heard;                 /* registered or heartbeated since open */
	int64_t heartbeat_ms;       /* monotonic; valid when heard */
	uint64_t capacity_bytes;
	uint64_t free_bytes;
	uint32_t replica_count;     /* recomputed by catalog_count_replicas */
	bool draining;              /* quorumctl node drain: its replicas move away */
	Quorum__GroupReport *reports;   /* malloc'd, scalars only; from its last heartbeat */
	size_t report_count;
	int64_t reports_ms;         /* monotonic time they came */
};

struct catalog {
	pthread_mutex_t lock;
	leveldb_t *db;
	leveldb_options_t *options;
	leveldb_writeoptions_t *write_options;
	leveldb_readoptions_t *read_options;
	int64_t heartbeat_timeout_ms;

	/* Sorted bytewise by name; each decoded with the default allocator
	 * and freed with quorum__table_info__free_unpacked. */
	Quorum__TableInfo **tables;
	size_t table_count;
	size_t table_capacity;

	struct catalog_node *nodes; /* sorted by id */
	size_t node_count;
	size_t node_capacity;

	uint64_t next_table_id;
	uint64_t next_node_id;
	uint64_t next_partition_id;

	/* Replicated meta: changes go through the group (catalog_set_committer). */
	catalog_commit_fn commit;
	bool (*serving)(void *ctx);
	void *commit_ctx;
};

static void catalog_set_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void catalog_set_why(char *why, const char *fmt, ...)
{
	va_list ap;

	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why, CATALOG_WHY_BYTES, fmt, ap);
	va_end(ap);
}

/* A printable form of a name or record key for log lines: a peer chose
 * these bytes, and a newline must not forge a log line. */
static void catalog_printable(const void *bytes, size_t size_bytes, char *out,
			      size_t out_bytes)
{
	const unsigned char *in = bytes;
	size_t used = 0;

	for (size_t i = 0; i < size_bytes && used + 5 < out_bytes; i++) {
		if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '\\')
			out[used++] = (char)in[i];
		else
			used += (size_t)snprintf(out + used, out_bytes - used, "\\x%02x", in[i]);
	}
	out[used] = '\0';
}

/* --------------------------------------------------------------- lookups */

static int catalog_compare_names(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
	size_t common = a_bytes < b_bytes ? a_bytes : b_bytes;
	int order = memcmp(a, b, common);

	if (order != 0)
		return order;
	return a_bytes < b_bytes ? -1 : a_bytes > b_bytes ? 1 : 0;
}

/* The index of the table called name, or where it would go (*found false). */
static size_t catalog_find_table(const struct catalog *catalog, const void *name,
				 size_t name_bytes, bool *found)
{
	size_t low = 0, high = catalog->table_count;

	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const Quorum__TableInfo *table = catalog->tables[mid];
		int order = catalog_compare_names(table->name.data, table->name.len, name,
						  name_bytes);

		if (order == 0) {
			*found = true;
			return mid;
		}
		if (order < 0)
			low = mid + 1;
		else
			high = mid;
	}
	*found = false;
	return low;
}

static size_t catalog_find_node(const struct catalog *catalog, uint64_t id, bool *found)
{
	size_t low = 0, high = catalog->node_count;

	while (low < high) {
		size_t mid = low + (high - low) / 2;

		if (catalog->nodes[mid].id == id) {
			*found = true;
			return mid;
		}
		if (catalog->nodes[mid].id < id)
			low = mid + 1;
		else
			high = mid;
	}
	*found = false;
	return low;
}

static bool catalog_node_up(const struct catalog *catalog, const struct catalog_node *node,
			    int64_t now_ms)
{
	return node->heard && now_ms - node->heartbeat_ms <= catalog->heartbeat_timeout_ms;
}

/* Sets every node's replica_count from the replica sets of every table. */
/* Whether node_id holds a replica of partition, or receives one by a move. */
static bool catalog_partition_names(const Quorum__PartitionInfo *partition, uint64_t node_id)
{
	for (size_t r = 0; r < partition->n_replicas; r++)
		if (partition->replicas[r] == node_id)
			return true;
	for (size_t r = 0; r < partition->n_target_replicas; r++)
		if (partition->target_replicas[r] == node_id)
			return true;
	return false;
}

/* The i-th node of a partition's replicas and, after them, of a move's target that are
 * not among the replicas; 0 past the end. */
static uint64_t catalog_partition_member(const Quorum__PartitionInfo *partition, size_t i)
{
	if (i < partition->n_replicas)
		return partition->replicas[i];
	i -= partition->n_replicas;
	for (size_t r = 0; r < partition->n_target_replicas; r++) {
		uint64_t id = partition->target_replicas[r];
		bool old = false;

		for (size_t o = 0; o < partition->n_replicas; o++)
			old = old || partition->replicas[o] == id;
		if (!old && i-- == 0)
			return id;
	}
	return 0;
}

static void catalog_count_replicas(struct catalog *catalog)
{
	for (size_t n = 0; n < catalog->node_count; n++)
		catalog->nodes[n].replica_count = 0;
	for (size_t t = 0; t < catalog->table_count; t++) {
		const Quorum__TableInfo *table = catalog->tables[t];

		for (size_t p = 0; p < table->n_partitions; p++) {
			const Quorum__PartitionInfo *partition = table->partitions[p];

			uint64_t id;

			for (size_t r = 0; (id = catalog_partition_member(partition, r)); r++) {
				bool found;
				size_t n = catalog_find_node(catalog, id, &found);

				if (found)
					catalog->nodes[n].replica_count++;
			}
		}
	}
}

/* Makes room for one more table and one more node, so that applying a
 * change after its write cannot fail. */
static int catalog_reserve(struct catalog *catalog)
{
	if (catalog->table_count == catalog->table_capacity) {
		size_t capacity = catalog->table_capacity ? catalog->table_capacity * 2 : 16;
		Quorum__TableInfo **tables = realloc(catalog->tables,
						     capacity * sizeof(*tables));
		if (!tables)
			return -ENOMEM;
		catalog->tables = tables;
		catalog->table_capacity = capacity;
	}
	if (catalog->node_count == catalog->node_capacity) {
		size_t capacity = catalog->node_capacity ? catalog->node_capacity * 2 : 16;
		struct catalog_node *nodes = realloc(catalog->nodes, capacity * sizeof(*nodes));
		if (!nodes)
			return -ENOMEM;
		catalog->nodes = nodes;
		catalog->node_capacity = capacity;
	}
	return 0;
}

static void catalog_insert_table(struct catalog *catalog, size_t index, Quorum__TableInfo *table)
{
	memmove(&catalog->tables[index + 1], &catalog->tables[index],
		(catalog->table_count - index) * sizeof(*catalog->tables));
	catalog->tables[index] = table;
	catalog->table_count++;
}

static void catalog_insert_node(struct catalog *catalog, size_t index,
				const struct catalog_node *node)
{
	memmove(&catalog->nodes[index + 1], &catalog->nodes[index],
		(catalog->node_count - index) * sizeof(*catalog->nodes));
	catalog->nodes[index] = *node;
	catalog->node_count++;
}

/* ------------------------------------------------------------ persistence */

static size_t catalog_table_key(uint8_t *key, const void *name, size_t name_bytes)
{
	memcpy(key, CATALOG_TABLE_PREFIX, CATALOG_PREFIX_BYTES);
	memcpy(key + CATALOG_PREFIX_BYTES, name, name_bytes);
	return CATALOG_PREFIX_BYTES + name_bytes;
}

static void catalog_node_key(uint8_t key[CATALOG_NODE_KEY_BYTES], uint64_t id)
{
	memcpy(key, CATALOG_NODE_PREFIX, CATALOG_PREFIX_BYTES);
	key_put_u64(key + CATALOG_PREFIX_BYTES, id);
}

/* Packs message into the arena. */
static int catalog_pack(const ProtobufCMessage *message, struct arena *arena, uint8_t **out,
			size_t *out_bytes)
{
	size_t size_bytes = protobuf_c_message_get_packed_size(message);
	uint8_t *buffer = arena_alloc(arena, size_bytes ? size_bytes : 1);

	if (!buffer)
		return -ENOMEM;
	protobuf_c_message_pack(message, buffer);
	*out = buffer;
	*out_bytes = size_bytes;
	return 0;
}

/* Puts a table's packed record; name_bytes <= KEY_NAME_MAX_BYTES. */
static void catalog_batch_put_table(leveldb_writebatch_t *batch, const ProtobufCBinaryData *name,
				    const uint8_t *packed, size_t packed_bytes)
{
	uint8_t key[CATALOG_TABLE_KEY_MAX_BYTES];
	size_t key_bytes = catalog_table_key(key, name->data, name->len);

	leveldb_writebatch_put(batch, (const char *)key, key_bytes, (const char *)packed,
			       packed_bytes);
}

static int catalog_batch_put_node(leveldb_writebatch_t *batch, uint64_t id, const char *address,
				  const char *az, bool draining, struct arena *arena)
{
	Quorum__NodeRecord record = QUORUM__NODE_RECORD__INIT;
	uint8_t key[CATALOG_NODE_KEY_BYTES];
	uint8_t *value;
	size_t value_bytes;
	int err;

	record.id = id;
	record.address = (char *)address;
	record.az = (char *)az;
	record.has_draining = draining;
	record.draining = draining;
	err = catalog_pack(&record.base, arena, &value, &value_bytes);
	if (err < 0)
		return err;
	catalog_node_key(key, id);
	leveldb_writebatch_put(batch, (const char *)key, sizeof(key), (const char *)value,
			       value_bytes);
	return 0;
}

static int catalog_batch_put_counters(leveldb_writebatch_t *batch, uint64_t next_table_id,
				      uint64_t next_node_id, uint64_t next_partition_id,
				      struct arena *arena)
{
	Quorum__Counters counters = QUORUM__COUNTERS__INIT;
	uint8_t *value;
	size_t value_bytes;
	int err;

	counters.next_table_id = next_table_id;
	counters.next_node_id = next_node_id;
	counters.next_partition_id = next_partition_id;
	err = catalog_pack(&counters.base, arena, &value, &value_bytes);
	if (err < 0)
		return err;
	leveldb_writebatch_put(batch, CATALOG_COUNTERS_KEY, strlen(CATALOG_COUNTERS_KEY),
			       (const char *)value, value_bytes);
	return 0;
}

/* Writes batch with sync: it is on disk when this returns 0. */
static int catalog_write(struct catalog *catalog, leveldb_writebatch_t *batch, char *why)
{
	char *error = NULL;

	/* Replicated: durable on a majority and applied to our LevelDB when it returns 0. */
	if (catalog->commit)
		return catalog->commit(catalog->commit_ctx, batch, why,
				       why ? CATALOG_WHY_BYTES : 0);
	leveldb_write(catalog->db, catalog->write_options, batch, &error);
	if (error) {
		log_error("catalog write failed: %s", error);
		catalog_set_why(why, "catalog write failed: %s", error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

/* A private, malloc'd copy of a table record (freed with free_unpacked),
 * made from its packed bytes so it is exactly what was written. */
static Quorum__TableInfo *catalog_copy_table(const uint8_t *packed, size_t packed_bytes)
{
	return quorum__table_info__unpack(NULL, packed_bytes, packed);
}

/* -------------------------------------------------------- building results */

static Quorum__NodeInfo *catalog_node_info(const struct catalog *catalog,
					   const struct catalog_node *node, int64_t now_ms,
					   struct arena *arena)
{
	Quorum__NodeInfo *info = arena_alloc(arena, sizeof(*info));

	if (!info)
		return NULL;
	quorum__node_info__init(info);
	info->id = node->id;
	info->address = arena_memdup(arena, node->address, strlen(node->address) + 1);
	info->az = arena_memdup(arena, node->az, strlen(node->az) + 1);
	if (!info->address || !info->az)
		return NULL;
	info->up = catalog_node_up(catalog, node, now_ms);
	info->has_capacity_bytes = true;
	info->capacity_bytes = node->capacity_bytes;
	info->has_free_bytes = true;
	info->free_bytes = node->free_bytes;
	if (node->heard) {
		info->has_heartbeat_age_ms = true;
		info->heartbeat_age_ms = now_ms > node->heartbeat_ms ?
			(uint64_t)(now_ms - node->heartbeat_ms) : 0;
	}
	info->has_replica_count = true;
	info->replica_count = node->replica_count;
	info->has_draining = node->draining;
	info->draining = node->draining;
	/* A down node's last report says nothing about who leads now. */
	info->has_leader_count = true;
	for (size_t i = 0; info->up && i < node->report_count; i++)
		if (node->reports[i].role == PAXOS_LEADER)
			info->leader_count++;
	return info;
}

/* A TableResponse holding table (already in the arena) and the nodes its
 * replica sets name, each once, in the order they first appear. */
static int catalog_table_response(struct catalog *catalog, Quorum__TableInfo *table,
				  int64_t now_ms, struct arena *arena, Quorum__TableResponse **out)
{
	Quorum__TableResponse *response = arena_alloc(arena, sizeof(*response));
	size_t slots = 0;

	if (!response)
		return -ENOMEM;
	quorum__table_response__init(response);
	response->table = table;
	for (size_t p = 0; p < table->n_partitions; p++)
		slots += table->partitions[p]->n_replicas + table->partitions[p]->n_target_replicas;
	response->nodes = arena_alloc(arena, (slots ? slots : 1) * sizeof(*response->nodes));
	if (!response->nodes)
		return -ENOMEM;
	catalog_count_replicas(catalog);
	for (size_t p = 0; p < table->n_partitions; p++) {
		const Quorum__PartitionInfo *partition = table->partitions[p];

		uint64_t id;

		for (size_t r = 0; (id = catalog_partition_member(partition, r)); r++) {
			bool listed = false, found;
			size_t n;

			for (size_t i = 0; i < response->n_nodes && !listed; i++)
				listed = response->nodes[i]->id == id;
			if (listed)
				continue;
			n = catalog_find_node(catalog, id, &found);
			if (!found)
				continue;   /* nodes are never removed; defensive */
			response->nodes[response->n_nodes] =
				catalog_node_info(catalog, &catalog->nodes[n], now_ms, arena);
			if (!response->nodes[response->n_nodes])
				return -ENOMEM;
			response->n_nodes++;
		}
	}
	*out = response;
	return 0;
}

/* A deep copy of table in the arena (by packing and unpacking it). */
static Quorum__TableInfo *catalog_table_in_arena(const Quorum__TableInfo *table,
						 struct arena *arena)
{
	uint8_t *packed;
	size_t packed_bytes;

	if (catalog_pack(&table->base, arena, &packed, &packed_bytes) < 0)
		return NULL;
	return quorum__table_info__unpack(arena_protobuf_allocator(arena), packed_bytes, packed);
}

/* ------------------------------------------------------------------ tables */

/* Builds the record of a new table in the arena: ids from the counters,
 * ranges, replicas placed on the up nodes. */
static int catalog_build_table(struct catalog *catalog, const Quorum__CreateTableRequest *request,
			       uint32_t partition_count, int64_t now_ms, int64_t now_ns,
			       struct arena *arena, Quorum__TableInfo **out, char *why)
{
	struct placement_node *candidates;
	Quorum__TableInfo *table;
	uint64_t *replicas;
	size_t azs_up = 0;
	int err;

	candidates = arena_alloc(arena, (catalog->node_count ? catalog->node_count : 1) *
				 sizeof(*candidates));
	replicas = arena_alloc(arena, (size_t)partition_count * PLACEMENT_REPLICAS *
			       sizeof(*replicas));
	table = arena_alloc(arena, sizeof(*table));
	if (!candidates || !replicas || !table)
		return -ENOMEM;
	catalog_count_replicas(catalog);
	for (size_t n = 0; n < catalog->node_count; n++) {
		const struct catalog_node *node = &catalog->nodes[n];
		bool new_az = true;

		candidates[n].id = node->id;
		candidates[n].az = node->az;
		/* A draining node takes no new replica. */
		candidates[n].up = catalog_node_up(catalog, node, now_ms) && !node->draining;
		candidates[n].replica_count = node->replica_count;
		for (size_t m = 0; m < n && new_az; m++)
			new_az = !(candidates[m].up && strcmp(candidates[m].az, node->az) == 0);
		if (candidates[n].up && new_az)
			azs_up++;
	}
	err = placement_choose_replicas(candidates, catalog->node_count, partition_count,
					replicas);
	if (err == -EAGAIN) {
		catalog_set_why(why, "replicas need up nodes in %d distinct AZs; %zu AZ%s ha%s one",
				PLACEMENT_REPLICAS, azs_up, azs_up == 1 ? "" : "s",
				azs_up == 1 ? "s" : "ve");
		return err;
	}
	if (err < 0) {
		catalog_set_why(why, "placement failed: %s", strerror(-err));
		return err;
	}

	quorum__table_info__init(table);
	table->id = catalog->next_table_id;
	table->name.data = arena_memdup(arena, request->name.data, request->name.len);
	table->name.len = request->name.len;
	table->mode = request->mode & 07777;
	table->uid = request->uid;
	table->gid = request->gid;
	table->mtime_ns = now_ns;
	table->ctime_ns = now_ns;
	table->has_has_sort_key = request->has_has_sort_key;
	table->has_sort_key = request->has_has_sort_key && request->has_sort_key;
	table->partitions = arena_alloc(arena, partition_count * sizeof(*table->partitions));
	if (!table->name.data || !table->partitions)
		return -ENOMEM;
	table->n_partitions = partition_count;
	for (uint32_t p = 0; p < partition_count; p++) {
		Quorum__PartitionInfo *partition = arena_alloc(arena, sizeof(*partition));

		if (!partition)
			return -ENOMEM;
		quorum__partition_info__init(partition);
		partition->id = catalog->next_partition_id + p;
		placement_hash_range(p, partition_count, &partition->hash_first,
				     &partition->hash_last);
		partition->n_replicas = PLACEMENT_REPLICAS;
		partition->replicas = &replicas[(size_t)p * PLACEMENT_REPLICAS];
		partition->epoch = 1;
		table->partitions[p] = partition;
	}
	*out = table;
	return 0;
}

static int catalog_check_name(const void *name, size_t name_bytes, char *why)
{
	int err = key_validate_name(name, name_bytes);

	if (err == -ENAMETOOLONG)
		catalog_set_why(why, "table name of %zu bytes is longer than %d bytes",
				name_bytes, KEY_NAME_MAX_BYTES);
	else if (err < 0)
		catalog_set_why(why, "invalid table name: empty, \".\", \"..\", or holds '/' "
				"or NUL");
	return err;
}

int catalog_create_table(struct catalog *catalog, const Quorum__CreateTableRequest *request,
			 uint32_t default_partition_count, int64_t now_ms, int64_t now_ns,
			 struct arena *arena, Quorum__TableResponse **out, char *why)
{
	uint32_t partition_count = request->has_partition_count ? request->partition_count :
				   default_partition_count;
	leveldb_writebatch_t *batch = NULL;
	Quorum__TableInfo *table, *kept = NULL;
	char printable[CATALOG_PRINTABLE_BYTES];
	uint8_t *packed;
	size_t packed_bytes, index;
	bool found;
	int err;

	err = catalog_check_name(request->name.data, request->name.len, why);
	if (err < 0)
		return err;
	if (partition_count < 1 || partition_count > CATALOG_PARTITIONS_MAX) {
		catalog_set_why(why, "partition count %u is outside 1..%d", partition_count,
				CATALOG_PARTITIONS_MAX);
		return -EINVAL;
	}

	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_table(catalog, request->name.data, request->name.len, &found);
	if (found) {
		catalog_set_why(why, "table \"%.*s\" exists", (int)request->name.len,
				(const char *)request->name.data);
		err = -EEXIST;
		goto out;
	}
	err = catalog_build_table(catalog, request, partition_count, now_ms, now_ns, arena,
				  &table, why);
	if (err < 0)
		goto out;
	err = -ENOMEM;
	batch = leveldb_writebatch_create();
	if (!batch || catalog_reserve(catalog) < 0)
		goto out;
	if (catalog_pack(&table->base, arena, &packed, &packed_bytes) < 0)
		goto out;
	kept = catalog_copy_table(packed, packed_bytes);
	if (!kept)
		goto out;
	catalog_batch_put_table(batch, &table->name, packed, packed_bytes);
	if (catalog_batch_put_counters(batch, catalog->next_table_id + 1, catalog->next_node_id,
				       catalog->next_partition_id + partition_count, arena) < 0)
		goto out;
	err = catalog_write(catalog, batch, why);
	if (err < 0)
		goto out;

	catalog_insert_table(catalog, index, kept);
	kept = NULL;
	catalog->next_table_id++;
	catalog->next_partition_id += partition_count;
	catalog_printable(table->name.data, table->name.len, printable, sizeof(printable));
	log_info("table \"%s\" created: id %llu, %u partitions", printable,
		 (unsigned long long)table->id, partition_count);
	err = catalog_table_response(catalog, table, now_ms, arena, out);
out:
	if (err == -ENOMEM)
		catalog_set_why(why, "out of memory");
	if (kept)
		quorum__table_info__free_unpacked(kept, NULL);
	if (batch)
		leveldb_writebatch_destroy(batch);
	pthread_mutex_unlock(&catalog->lock);
	return err;
}

int catalog_delete_table(struct catalog *catalog, const void *name, size_t name_bytes,
			 char *why)
{
	uint8_t key[CATALOG_TABLE_KEY_MAX_BYTES];
	char printable[CATALOG_PRINTABLE_BYTES];
	leveldb_writebatch_t *batch;
	size_t index;
	bool found;
	int err;

	if (name_bytes > KEY_NAME_MAX_BYTES) {
		catalog_set_why(why, "no table of that name (longer than %d bytes)",
				KEY_NAME_MAX_BYTES);
		return -ENOENT;
	}
	batch = leveldb_writebatch_create();
	if (!batch) {
		catalog_set_why(why, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_table(catalog, name, name_bytes, &found);
	if (!found) {
		catalog_set_why(why, "no table \"%.*s\"", (int)name_bytes, (const char *)name);
		err = -ENOENT;
		goto out;
	}
	leveldb_writebatch_delete(batch, (const char *)key,
				  catalog_table_key(key, name, name_bytes));
	err = catalog_write(catalog, batch, why);
	if (err < 0)
		goto out;
	catalog_printable(name, name_bytes, printable, sizeof(printable));
	log_info("table \"%s\" deleted: id %llu", printable,
		 (unsigned long long)catalog->tables[index]->id);
	quorum__table_info__free_unpacked(catalog->tables[index], NULL);
	memmove(&catalog->tables[index], &catalog->tables[index + 1],
		(catalog->table_count - index - 1) * sizeof(*catalog->tables));
	catalog->table_count--;
out:
	pthread_mutex_unlock(&catalog->lock);
	leveldb_writebatch_destroy(batch);
	return err;
}

/* The last report of every replica of table's partitions, into response. */
static int catalog_replica_statuses(struct catalog *catalog, const Quorum__TableInfo *table,
				    int64_t now_ms, struct arena *arena,
				    Quorum__TableResponse *response)
{
	size_t slots = 0;

	for (size_t p = 0; p < table->n_partitions; p++)
		slots += table->partitions[p]->n_replicas + table->partitions[p]->n_target_replicas;
	response->replicas = arena_alloc(arena, (slots ? slots : 1) * sizeof(*response->replicas));
	if (!response->replicas)
		return -ENOMEM;
	for (size_t p = 0; p < table->n_partitions; p++) {
		const Quorum__PartitionInfo *partition = table->partitions[p];

		uint64_t id;

		for (size_t r = 0; (id = catalog_partition_member(partition, r)); r++) {
			const struct catalog_node *node;
			Quorum__ReplicaStatus *status;
			Quorum__GroupReport *report;
			bool found;
			size_t n = catalog_find_node(catalog, id, &found);

			if (!found)
				continue;
			node = &catalog->nodes[n];
			report = NULL;
			for (size_t i = 0; i < node->report_count && !report; i++)
				if (node->reports[i].table_id == table->id &&
				    node->reports[i].partition_id == partition->id)
					report = &node->reports[i];
			if (!report)
				continue;
			status = arena_alloc(arena, sizeof(*status));
			if (!status)
				return -ENOMEM;
			quorum__replica_status__init(status);
			status->partition_id = partition->id;
			status->node_id = node->id;
			status->report = reports_in_arena(report, arena);
			if (!status->report)
				return -ENOMEM;
			status->report_age_ms = now_ms > node->reports_ms ?
				(uint64_t)(now_ms - node->reports_ms) : 0;
			response->replicas[response->n_replicas++] = status;
		}
	}
	return 0;
}

int catalog_describe_table(struct catalog *catalog, const void *name, size_t name_bytes,
			   int64_t now_ms, struct arena *arena, Quorum__TableResponse **out,
			   char *why)
{
	Quorum__TableInfo *table;
	size_t index;
	bool found;
	int err;

	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_table(catalog, name, name_bytes, &found);
	if (!found) {
		catalog_set_why(why, "no table \"%.*s\"", (int)name_bytes, (const char *)name);
		err = -ENOENT;
		goto out;
	}
	table = catalog_table_in_arena(catalog->tables[index], arena);
	err = table ? catalog_table_response(catalog, table, now_ms, arena, out) : -ENOMEM;
	if (err == 0)
		err = catalog_replica_statuses(catalog, table, now_ms, arena, *out);
	if (err == -ENOMEM)
		catalog_set_why(why, "out of memory");
out:
	pthread_mutex_unlock(&catalog->lock);
	return err;
}

int catalog_update_table(struct catalog *catalog, const Quorum__UpdateTableRequest *request,
			 int64_t now_ms, int64_t now_ns, struct arena *arena,
			 Quorum__TableResponse **out, char *why)
{
	leveldb_writebatch_t *batch;
	Quorum__TableInfo updated, *kept = NULL, *table;
	uint8_t *packed;
	size_t packed_bytes, index;
	bool found;
	int err;

	batch = leveldb_writebatch_create();
	if (!batch) {
		catalog_set_why(why, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_table(catalog, request->name.data, request->name.len, &found);
	if (!found) {
		catalog_set_why(why, "no table \"%.*s\"", (int)request->name.len,
				(const char *)request->name.data);
		err = -ENOENT;
		goto out;
	}
	/* A shallow copy: it shares the partitions of the stored table, which
	 * stays alive until the new copy replaces it below. */
	updated = *catalog->tables[index];
	if (request->has_mode)
		updated.mode = request->mode & 07777;
	if (request->has_uid)
		updated.uid = request->uid;
	if (request->has_gid)
		updated.gid = request->gid;
	if (request->has_mtime_ns)
		updated.mtime_ns = request->mtime_ns;
	updated.ctime_ns = now_ns;

	err = -ENOMEM;
	if (catalog_pack(&updated.base, arena, &packed, &packed_bytes) < 0)
		goto out;
	kept = catalog_copy_table(packed, packed_bytes);
	table = quorum__table_info__unpack(arena_protobuf_allocator(arena), packed_bytes, packed);
	if (!kept || !table)
		goto out;
	catalog_batch_put_table(batch, &updated.name, packed, packed_bytes);
	err = catalog_write(catalog, batch, why);
	if (err < 0)
		goto out;
	quorum__table_info__free_unpacked(catalog->tables[index], NULL);
	catalog->tables[index] = kept;
	kept = NULL;
	err = catalog_table_response(catalog, table, now_ms, arena, out);
out:
	if (err == -ENOMEM)
		catalog_set_why(why, "out of memory");
	if (kept)
		quorum__table_info__free_unpacked(kept, NULL);
	pthread_mutex_unlock(&catalog->lock);
	leveldb_writebatch_destroy(batch);
	return err;
}

int catalog_list_tables(struct catalog *catalog, struct arena *arena,
			Quorum__ListTablesResponse **out)
{
	Quorum__ListTablesResponse *response = arena_alloc(arena, sizeof(*response));
	int err = 0;

	if (!response)
		return -ENOMEM;
	quorum__list_tables_response__init(response);
	pthread_mutex_lock(&catalog->lock);
	response->tables = arena_alloc(arena, (catalog->table_count ? catalog->table_count : 1) *
				       sizeof(*response->tables));
	if (!response->tables) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t t = 0; t < catalog->table_count; t++) {
		const Quorum__TableInfo *stored = catalog->tables[t];
		Quorum__TableInfo *table = arena_alloc(arena, sizeof(*table));

		if (!table) {
			err = -ENOMEM;
			goto out;
		}
		quorum__table_info__init(table);
		table->id = stored->id;
		table->name.len = stored->name.len;
		table->name.data = arena_memdup(arena, stored->name.data, stored->name.len);
		if (!table->name.data && stored->name.len) {
			err = -ENOMEM;
			goto out;
		}
		table->mode = stored->mode;
		table->uid = stored->uid;
		table->gid = stored->gid;
		table->mtime_ns = stored->mtime_ns;
		table->ctime_ns = stored->ctime_ns;
		table->has_has_sort_key = stored->has_has_sort_key;
		table->has_sort_key = stored->has_sort_key;
		response->tables[response->n_tables++] = table;
	}
	*out = response;
out:
	pthread_mutex_unlock(&catalog->lock);
	return err;
}

/* ------------------------------------------------------------------- nodes */

static int catalog_check_label(const char *label, size_t max_bytes, const char *what, char *why)
{
	size_t size_bytes = label ? strlen(label) : 0;

	if (size_bytes == 0 || size_bytes > max_bytes) {
		catalog_set_why(why, "%s must be 1 to %zu bytes", what, max_bytes);
		return -EINVAL;
	}
	/* It goes into log lines and terminals as it is. */
	for (size_t i = 0; i < size_bytes; i++) {
		unsigned char c = (unsigned char)label[i];

		if (c < 0x20 || c == 0x7f) {
			catalog_set_why(why, "%s holds a control character", what);
			return -EINVAL;
		}
	}
	return 0;
}

int catalog_register_node(struct catalog *catalog, uint64_t node_id, const char *address,
			  const char *az, int64_t now_ms, uint64_t *assigned_id, char *why)
{
	leveldb_writebatch_t *batch = NULL;
	struct arena *arena = NULL;
	struct catalog_node node = { 0 };
	char *new_address = NULL, *new_az = NULL;
	size_t index;
	bool found, changed;
	int err;

	err = catalog_check_label(address, CATALOG_ADDRESS_MAX_BYTES, "a node address", why);
	if (err == 0)
		err = catalog_check_label(az, CATALOG_AZ_MAX_BYTES, "an AZ label", why);
	if (err < 0)
		return err;

	err = -ENOMEM;
	batch = leveldb_writebatch_create();
	arena = arena_new();
	new_address = strdup(address);
	new_az = strdup(az);
	if (!batch || !arena || !new_address || !new_az) {
		catalog_set_why(why, "out of memory");
		goto free;
	}

	pthread_mutex_lock(&catalog->lock);
	if (catalog_reserve(catalog) < 0) {
		catalog_set_why(why, "out of memory");
		goto out;
	}
	if (node_id == 0)
		node_id = catalog->next_node_id;
	index = catalog_find_node(catalog, node_id, &found);
	changed = !found || strcmp(catalog->nodes[index].address, address) != 0 ||
		  strcmp(catalog->nodes[index].az, az) != 0;
	if (changed) {
		if (catalog_batch_put_node(batch, node_id, address, az,
					   found && catalog->nodes[index].draining, arena) < 0)
			goto out;
		if (node_id >= catalog->next_node_id &&
		    catalog_batch_put_counters(batch, catalog->next_table_id, node_id + 1,
					       catalog->next_partition_id, arena) < 0)
			goto out;
		err = catalog_write(catalog, batch, why);
		if (err < 0)
			goto out;
	}
	if (node_id >= catalog->next_node_id)
		catalog->next_node_id = node_id + 1;
	if (!found) {
		node.id = node_id;
		node.address = new_address;
		node.az = new_az;
		catalog_insert_node(catalog, index, &node);
		log_info("node %llu registered: %s in AZ %s", (unsigned long long)node_id,
			 address, az);
	} else if (changed) {
		free(catalog->nodes[index].address);
		free(catalog->nodes[index].az);
		catalog->nodes[index].address = new_address;
		catalog->nodes[index].az = new_az;
		log_info("node %llu registered again: now %s in AZ %s",
			 (unsigned long long)node_id, address, az);
	} else {
		free(new_address);
		free(new_az);
		log_info("node %llu registered again: %s in AZ %s", (unsigned long long)node_id,
			 address, az);
	}
	new_address = new_az = NULL;
	catalog->nodes[index].heard = true;
	catalog->nodes[index].heartbeat_ms = now_ms;
	*assigned_id = node_id;
	err = 0;
out:
	if (err == -ENOMEM)
		catalog_set_why(why, "out of memory");
	pthread_mutex_unlock(&catalog->lock);
free:
	free(new_address);
	free(new_az);
	arena_free(arena);
	if (batch)
		leveldb_writebatch_destroy(batch);
	return err;
}

int catalog_heartbeat_node(struct catalog *catalog, uint64_t node_id, const char *address,
			   bool has_capacity, uint64_t capacity_bytes, bool has_free,
			   uint64_t free_bytes, int64_t now_ms, char *why)
{
	struct catalog_node *node;
	size_t index;
	bool found;
	int err = 0;

	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_node(catalog, node_id, &found);
	if (!found) {
		pthread_mutex_unlock(&catalog->lock);
		catalog_set_why(why, "node %llu is not registered", (unsigned long long)node_id);
		return -ENOENT;
	}
	node = &catalog->nodes[index];
	if (address && address[0] && strcmp(address, node->address) != 0 &&
	    strlen(address) <= CATALOG_ADDRESS_MAX_BYTES) {
		/* A node that moved: its address is part of its record. */
		leveldb_writebatch_t *batch = leveldb_writebatch_create();
		struct arena *arena = arena_new();
		char *copy = strdup(address);

		err = -ENOMEM;
		if (batch && arena && copy &&
		    catalog_batch_put_node(batch, node_id, address, node->az, node->draining,
					   arena) == 0)
			err = catalog_write(catalog, batch, why);
		else
			catalog_set_why(why, "out of memory");
		if (err == 0) {
			log_info("node %llu moved from %s to %s", (unsigned long long)node_id,
				 node->address, address);
			free(node->address);
			node->address = copy;
			copy = NULL;
		}
		free(copy);
		arena_free(arena);
		if (batch)
			leveldb_writebatch_destroy(batch);
	}
	if (err == 0) {
		node->heard = true;
		node->heartbeat_ms = now_ms;
		if (has_capacity)
			node->capacity_bytes = capacity_bytes;
		if (has_free)
			node->free_bytes = free_bytes;
	}
	pthread_mutex_unlock(&catalog->lock);
	return err;
}

int catalog_report_groups(struct catalog *catalog, uint64_t node_id,
			  Quorum__GroupReport *const *reports, size_t count, int64_t now_ms)
{
	Quorum__GroupReport *copies = NULL;
	struct catalog_node *node;
	size_t index;
	bool found;

	if (count > CATALOG_REPORTS_MAX)
		count = CATALOG_REPORTS_MAX;
	/* Deep copies: the request's memory goes when the heartbeat is answered. */
	if (reports_copy(reports, count, &copies) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_node(catalog, node_id, &found);
	if (!found) {
		pthread_mutex_unlock(&catalog->lock);
		reports_free(copies, count);
		return -ENOENT;
	}
	node = &catalog->nodes[index];
	reports_free(node->reports, node->report_count);
	node->reports = copies;
	node->report_count = count;
	node->reports_ms = now_ms;
	pthread_mutex_unlock(&catalog->lock);
	return 0;
}

int catalog_node_assignments(struct catalog *catalog, uint64_t node_id, struct arena *arena,
			     Quorum__PartitionAssignment ***out, size_t *count)
{
	Quorum__PartitionAssignment **list = NULL;
	size_t n = 0, cap = 0;
	int err = 0;

	*out = NULL;
	*count = 0;
	pthread_mutex_lock(&catalog->lock);
	for (size_t t = 0; t < catalog->table_count && !err; t++) {
		const Quorum__TableInfo *table = catalog->tables[t];

		for (size_t p = 0; p < table->n_partitions && !err; p++) {
			const Quorum__PartitionInfo *partition = table->partitions[p];
			Quorum__PartitionAssignment *a;
			Quorum__PartitionInfo *info;
			size_t members = 0;
			uint64_t id;

			if (!catalog_partition_names(partition, node_id))
				continue;
			while (catalog_partition_member(partition, members))
				members++;
			if (n == cap) {
				size_t new_cap = cap ? 2 * cap : 16;
				Quorum__PartitionAssignment **grown =
					arena_alloc(arena, new_cap * sizeof(*grown));

				if (!grown) {
					err = -ENOMEM;
					break;
				}
				if (n)
					memcpy(grown, list, n * sizeof(*grown));
				list = grown;
				cap = new_cap;
			}
			a = arena_alloc(arena, sizeof(*a));
			info = arena_alloc(arena, sizeof(*info));
			if (!a || !info) {
				err = -ENOMEM;
				break;
			}
			quorum__partition_assignment__init(a);
			quorum__partition_info__init(info);
			info->id = partition->id;
			info->hash_first = partition->hash_first;
			info->hash_last = partition->hash_last;
			info->epoch = partition->epoch;
			/* During a move a group's members are the old and the new replicas, and
			 * a replica without the group's state must wait for a snapshot. */
			a->has_joining = partition->n_target_replicas > 0;
			a->joining = a->has_joining;
			info->replicas = arena_alloc(arena, members * sizeof(*info->replicas));
			a->table_id = table->id;
			a->partition = info;
			a->replicas = arena_alloc(arena, members * sizeof(*a->replicas));
			if (!info->replicas || !a->replicas) {
				err = -ENOMEM;
				break;
			}
			for (size_t r = 0; (id = catalog_partition_member(partition, r)); r++) {
				Quorum__ReplicaAddress *ra;
				bool found;
				size_t index = catalog_find_node(catalog, id, &found);

				info->replicas[info->n_replicas++] = id;

				if (!found)
					continue;	/* nodes are never removed; defensive */
				ra = arena_alloc(arena, sizeof(*ra));
				if (!ra) {
					err = -ENOMEM;
					break;
				}
				quorum__replica_address__init(ra);
				ra->node_id = id;
				ra->address = arena_memdup(arena, catalog->nodes[index].address,
							   strlen(catalog->nodes[index].address) + 1);
				if (!ra->address) {
					err = -ENOMEM;
					break;
				}
				a->replicas[a->n_replicas++] = ra;
			}
			list[n++] = a;
		}
	}
	pthread_mutex_unlock(&catalog->lock);
	if (err)
		return err;
	*out = list;
	*count = n;
	return 0;
}

/* ------------------------------------------------------------------ splits */

static int catalog_compare_partitions(const void *a, const void *b)
{
	const Quorum__PartitionInfo *pa = *(Quorum__PartitionInfo *const *)a;
	const Quorum__PartitionInfo *pb = *(Quorum__PartitionInfo *const *)b;

	return pa->hash_first < pb->hash_first ? -1 : pa->hash_first > pb->hash_first;
}

static bool catalog_table_has_partition(const Quorum__TableInfo *table, uint64_t id)
{
	for (size_t p = 0; p < table->n_partitions; p++)
		if (table->partitions[p]->id == id)
			return true;
	return false;
}

int catalog_adopt_split(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
			uint64_t hash_first, uint64_t hash_last, uint64_t epoch,
			Quorum__SplitChild *const *children, size_t child_count)
{
	leveldb_writebatch_t *batch = NULL;
	Quorum__TableInfo *table = NULL, *copy, *kept = NULL;
	Quorum__PartitionInfo *parent = NULL, **partitions;
	struct arena *arena = arena_new();
	uint64_t next_partition_id;
	uint8_t *packed;
	size_t packed_bytes, t, n;
	int err = 0;

	if (!arena)
		return -ENOMEM;
	pthread_mutex_lock(&catalog->lock);
	for (t = 0; t < catalog->table_count; t++) {
		if (catalog->tables[t]->id == table_id) {
			table = catalog->tables[t];
			break;
		}
	}
	for (size_t p = 0; table && p < table->n_partitions && !parent; p++)
		if (table->partitions[p]->id == partition_id)
			parent = table->partitions[p];
	/* The group's word is newer than ours only with a higher epoch; a range must shrink. */
	if (!parent || epoch <= parent->epoch || hash_first != parent->hash_first ||
	    hash_last >= parent->hash_last)
		goto out;
	copy = arena_memdup(arena, table, sizeof(*table));
	partitions = arena_alloc(arena, (table->n_partitions + child_count) * sizeof(*partitions));
	err = -ENOMEM;
	if (!copy || !partitions)
		goto out;
	next_partition_id = catalog->next_partition_id;
	n = 0;
	for (size_t p = 0; p < table->n_partitions; p++) {
		Quorum__PartitionInfo *info = table->partitions[p];

		if (info == parent) {
			info = arena_memdup(arena, parent, sizeof(*parent));
			if (!info)
				goto out;
			info->hash_last = hash_last;
			info->epoch = epoch;
		}
		partitions[n++] = info;
	}
	for (size_t c = 0; c < child_count; c++) {
		const Quorum__SplitChild *child = children[c];
		Quorum__PartitionInfo *info;

		/* Only children inside what the parent gave up; older ones were adopted before. */
		if (catalog_table_has_partition(table, child->partition_id) ||
		    child->hash_first <= hash_last || child->hash_last > parent->hash_last)
			continue;
		info = arena_memdup(arena, parent, sizeof(*parent));
		if (!info)
			goto out;
		info->id = child->partition_id;
		info->hash_first = child->hash_first;
		info->hash_last = child->hash_last;
		info->epoch = child->epoch;
		partitions[n++] = info;
		if (info->id >= next_partition_id)
			next_partition_id = info->id + 1;
	}
	qsort(partitions, n, sizeof(*partitions), catalog_compare_partitions);
	copy->partitions = partitions;
	copy->n_partitions = n;
	batch = leveldb_writebatch_create();
	if (!batch || catalog_pack(&copy->base, arena, &packed, &packed_bytes) < 0)
		goto out;
	kept = catalog_copy_table(packed, packed_bytes);
	if (!kept)
		goto out;
	catalog_batch_put_table(batch, &copy->name, packed, packed_bytes);
	if (catalog_batch_put_counters(batch, catalog->next_table_id, catalog->next_node_id,
				       next_partition_id, arena) < 0)
		goto out;
	err = catalog_write(catalog, batch, NULL);
	if (err < 0)
		goto out;
	quorum__table_info__free_unpacked(catalog->tables[t], NULL);
	catalog->tables[t] = kept;
	kept = NULL;
	catalog->next_partition_id = next_partition_id;
	log_info("table %" PRIu64 ": partition %" PRIu64 " split, now [%016" PRIx64 ", %016"
		 PRIx64 "] epoch %" PRIu64 ", %zu partitions", table_id, partition_id, hash_first,
		 hash_last, epoch, n);
	err = 1;
out:
	if (kept)
		quorum__table_info__free_unpacked(kept, NULL);
	if (batch)
		leveldb_writebatch_destroy(batch);
	pthread_mutex_unlock(&catalog->lock);
	arena_free(arena);
	return err;
}

int catalog_reserve_partition_id(struct catalog *catalog, uint64_t *id)
{
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	struct arena *arena = arena_new();
	int err = -ENOMEM;

	pthread_mutex_lock(&catalog->lock);
	if (batch && arena &&
	    catalog_batch_put_counters(batch, catalog->next_table_id, catalog->next_node_id,
				       catalog->next_partition_id + 1, arena) == 0) {
		err = catalog_write(catalog, batch, NULL);
		if (!err)
			*id = catalog->next_partition_id++;
	}
	pthread_mutex_unlock(&catalog->lock);
	if (batch)
		leveldb_writebatch_destroy(batch);
	arena_free(arena);
	return err;
}

/* ------------------------------------------------------------------- moves */

/* Writes table t with its partition old replaced by updated, and serves it. Called with
 * the lock held. */
static int catalog_put_partition_locked(struct catalog *catalog, size_t t,
					const Quorum__PartitionInfo *old,
					Quorum__PartitionInfo *updated, struct arena *arena)
{
	const Quorum__TableInfo *table = catalog->tables[t];
	Quorum__TableInfo *copy = arena_memdup(arena, table, sizeof(*table)), *kept;
	Quorum__PartitionInfo **partitions = arena_alloc(arena, table->n_partitions *
							 sizeof(*partitions));
	leveldb_writebatch_t *batch;
	uint8_t *packed;
	size_t packed_bytes;
	int err;

	if (!copy || !partitions)
		return -ENOMEM;
	for (size_t p = 0; p < table->n_partitions; p++)
		partitions[p] = table->partitions[p] == old ? updated : table->partitions[p];
	copy->partitions = partitions;
	if (catalog_pack(&copy->base, arena, &packed, &packed_bytes) < 0)
		return -ENOMEM;
	kept = catalog_copy_table(packed, packed_bytes);
	batch = leveldb_writebatch_create();
	if (!kept || !batch) {
		if (kept)
			quorum__table_info__free_unpacked(kept, NULL);
		if (batch)
			leveldb_writebatch_destroy(batch);
		return -ENOMEM;
	}
	catalog_batch_put_table(batch, &copy->name, packed, packed_bytes);
	err = catalog_write(catalog, batch, NULL);
	leveldb_writebatch_destroy(batch);
	if (err < 0) {
		quorum__table_info__free_unpacked(kept, NULL);
		return err;
	}
	quorum__table_info__free_unpacked(catalog->tables[t], NULL);
	catalog->tables[t] = kept;
	return 0;
}

static bool catalog_same_members(const uint64_t *a, size_t a_count, const uint64_t *b,
				 size_t b_count)
{
	if (a_count != b_count)
		return false;
	for (size_t i = 0; i < a_count; i++) {
		bool found = false;

		for (size_t j = 0; j < b_count && !found; j++)
			found = a[i] == b[j];
		if (!found)
			return false;
	}
	return true;
}

/* Finds a partition by table and partition id. Called with the lock held. */
static const Quorum__PartitionInfo *catalog_find_partition(const struct catalog *catalog,
							   uint64_t table_id,
							   uint64_t partition_id, size_t *t_out)
{
	for (size_t t = 0; t < catalog->table_count; t++) {
		const Quorum__TableInfo *table = catalog->tables[t];

		if (table->id != table_id)
			continue;
		*t_out = t;
		for (size_t p = 0; p < table->n_partitions; p++)
			if (table->partitions[p]->id == partition_id)
				return table->partitions[p];
		return NULL;
	}
	return NULL;
}

/* Starts a move (target given) or finishes one (members must be the target): the partition
 * record with its target, or with the target as its replicas. */
static int catalog_move_step(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
			     const uint64_t *ids, size_t count, bool finish)
{
	const Quorum__PartitionInfo *partition;
	Quorum__PartitionInfo *updated;
	struct arena *arena = arena_new();
	size_t t = 0;
	int err = -ENOENT;

	if (!arena)
		return -ENOMEM;
	pthread_mutex_lock(&catalog->lock);
	partition = catalog_find_partition(catalog, table_id, partition_id, &t);
	if (!partition)
		goto out;
	err = finish ? -ESTALE : -EBUSY;
	if (finish != catalog_same_members(partition->target_replicas,
					   partition->n_target_replicas, ids, count) ||
	    (finish ? !partition->n_target_replicas : partition->n_target_replicas != 0))
		goto out;
	err = -ENOMEM;
	updated = arena_memdup(arena, partition, sizeof(*partition));
	if (!updated)
		goto out;
	if (finish) {
		/* The target, in its order: the first AZ of a placement stays first. */
		updated->replicas = partition->target_replicas;
		updated->n_replicas = partition->n_target_replicas;
		updated->target_replicas = NULL;
		updated->n_target_replicas = 0;
	} else {
		updated->target_replicas = arena_memdup(arena, ids, count * sizeof(*ids));
		updated->n_target_replicas = count;
		if (!updated->target_replicas)
			goto out;
	}
	err = catalog_put_partition_locked(catalog, t, partition, updated, arena);
out:
	pthread_mutex_unlock(&catalog->lock);
	arena_free(arena);
	return err;
}

int catalog_begin_move(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
		       const uint64_t *target, size_t target_count)
{
	if (target_count == 0)
		return -EINVAL;
	return catalog_move_step(catalog, table_id, partition_id, target, target_count, false);
}

int catalog_finish_move(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
			const uint64_t *members, size_t member_count)
{
	return catalog_move_step(catalog, table_id, partition_id, members, member_count, true);
}

int catalog_set_draining(struct catalog *catalog, uint64_t node_id, bool draining, char *why)
{
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	struct arena *arena = arena_new();
	struct catalog_node *node;
	size_t index;
	bool found;
	int err = -ENOMEM;

	pthread_mutex_lock(&catalog->lock);
	index = catalog_find_node(catalog, node_id, &found);
	if (!found) {
		catalog_set_why(why, "no node %" PRIu64, node_id);
		err = -ENOENT;
		goto out;
	}
	node = &catalog->nodes[index];
	if (node->draining == draining) {
		err = 0;
		goto out;
	}
	if (!batch || !arena ||
	    catalog_batch_put_node(batch, node_id, node->address, node->az, draining, arena) < 0) {
		catalog_set_why(why, "out of memory");
		goto out;
	}
	err = catalog_write(catalog, batch, why);
	if (err == 0) {
		node->draining = draining;
		log_info("node %" PRIu64 " %s", node_id,
			 draining ? "drains: its replicas move away" : "no longer drains");
	}
out:
	pthread_mutex_unlock(&catalog->lock);
	if (batch)
		leveldb_writebatch_destroy(batch);
	arena_free(arena);
	return err;
}

/* Whether the group the node reports is one meta knows to be gone from it. */
static bool catalog_group_retired(const struct catalog *catalog, uint64_t node_id,
				  const Quorum__GroupReport *report)
{
	for (size_t t = 0; t < catalog->table_count; t++) {
		const Quorum__TableInfo *table = catalog->tables[t];

		if (table->id != report->table_id)
			continue;
		for (size_t p = 0; p < table->n_partitions; p++) {
			const Quorum__PartitionInfo *partition = table->partitions[p];

			if (partition->id == report->partition_id &&
			    catalog_partition_names(partition, node_id))
				return false;
		}
		return true;	/* the table lives on, without this replica */
	}
	/* Table ids are never reused: an id below the next one names a deleted table. An id
	 * meta has not handed out yet is not meta's to judge. */
	return report->table_id < catalog->next_table_id;
}

int catalog_retired_groups(struct catalog *catalog, uint64_t node_id,
			   Quorum__GroupReport *const *reports, size_t count, struct arena *arena,
			   Quorum__GroupRef ***out, size_t *out_count)
{
	Quorum__GroupRef **list = arena_alloc(arena, (count ? count : 1) * sizeof(*list));
	size_t n = 0;

	*out = NULL;
	*out_count = 0;
	if (!list)
		return -ENOMEM;
	pthread_mutex_lock(&catalog->lock);
	for (size_t i = 0; i < count; i++) {
		Quorum__GroupRef *ref;

		if (!catalog_group_retired(catalog, node_id, reports[i]))
			continue;
		ref = arena_alloc(arena, sizeof(*ref));
		if (!ref) {
			pthread_mutex_unlock(&catalog->lock);
			return -ENOMEM;
		}
		quorum__group_ref__init(ref);
		ref->table_id = reports[i]->table_id;
		ref->partition_id = reports[i]->partition_id;
		list[n++] = ref;
	}
	pthread_mutex_unlock(&catalog->lock);
	*out = list;
	*out_count = n;
	return 0;
}

int catalog_list_nodes(struct catalog *catalog, int64_t now_ms, struct arena *arena,
		       Quorum__ListNodesResponse **out)
{
	Quorum__ListNodesResponse *response = arena_alloc(arena, sizeof(*response));
	int err = 0;

	if (!response)
		return -ENOMEM;
	quorum__list_nodes_response__init(response);
	pthread_mutex_lock(&catalog->lock);
	catalog_count_replicas(catalog);
	response->nodes = arena_alloc(arena, (catalog->node_count ? catalog->node_count : 1) *
				      sizeof(*response->nodes));
	if (!response->nodes) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t n = 0; n < catalog->node_count; n++) {
		Quorum__NodeInfo *info = catalog_node_info(catalog, &catalog->nodes[n], now_ms,
							   arena);
		if (!info) {
			err = -ENOMEM;
			goto out;
		}
		response->nodes[response->n_nodes++] = info;
	}
	*out = response;
out:
	pthread_mutex_unlock(&catalog->lock);
	return err;
}

int catalog_cluster_info(struct catalog *catalog, int64_t now_ms, uint64_t item_max_bytes,
			 struct arena *arena, Quorum__ClusterInfoResponse **out)
{
	Quorum__ClusterInfoResponse *response = arena_alloc(arena, sizeof(*response));
	struct placement_node *azs = NULL;
	uint64_t *capacity = NULL, *free_bytes = NULL;

	if (!response)
		return -ENOMEM;
	quorum__cluster_info_response__init(response);
	response->item_max_bytes = item_max_bytes;
	pthread_mutex_lock(&catalog->lock);
	if (catalog->node_count > 0) {
		azs = arena_alloc(arena, catalog->node_count * sizeof(*azs));
		capacity = arena_alloc(arena, catalog->node_count * sizeof(*capacity));
		free_bytes = arena_alloc(arena, catalog->node_count * sizeof(*free_bytes));
		if (!azs || !capacity || !free_bytes) {
			pthread_mutex_unlock(&catalog->lock);
			return -ENOMEM;
		}
	}
	for (size_t n = 0; n < catalog->node_count; n++) {
		const struct catalog_node *node = &catalog->nodes[n];

		azs[n] = (struct placement_node){ .id = node->id, .az = node->az,
						  .up = catalog_node_up(catalog, node, now_ms) };
		capacity[n] = node->capacity_bytes;
		free_bytes[n] = node->free_bytes < node->capacity_bytes ? node->free_bytes :
				node->capacity_bytes;
		if (!azs[n].up)
			continue;
		response->nodes_up++;
		response->capacity_bytes += node->capacity_bytes;
		response->free_bytes += node->free_bytes;
	}
	/* What statfs shows a user: each item is stored once per AZ (placement.h). */
	response->has_usable_capacity_bytes = response->has_usable_free_bytes = true;
	response->usable_capacity_bytes = placement_usable_bytes(azs, capacity,
								 catalog->node_count);
	response->usable_free_bytes = placement_usable_bytes(azs, free_bytes, catalog->node_count);
	response->nodes_total = (uint32_t)catalog->node_count;
	response->table_count = (uint32_t)catalog->table_count;
	pthread_mutex_unlock(&catalog->lock);
	*out = response;
	return 0;
}

/* --------------------------------------------------------- open and close */

static int catalog_load_table(struct catalog *catalog, const char *key, size_t key_bytes,
			      const char *value, size_t value_bytes)
{
	Quorum__TableInfo *table = quorum__table_info__unpack(NULL, value_bytes,
							      (const uint8_t *)value);
	const char *name = key + CATALOG_PREFIX_BYTES;
	size_t name_bytes = key_bytes - CATALOG_PREFIX_BYTES;

	if (!table)
		return -EBADMSG;
	if (table->id == 0 || catalog_compare_names(table->name.data, table->name.len, name,
						    name_bytes) != 0 ||
	    key_validate_name(table->name.data, table->name.len) < 0) {
		quorum__table_info__free_unpacked(table, NULL);
		return -EBADMSG;
	}
	if (catalog_reserve(catalog) < 0) {
		quorum__table_info__free_unpacked(table, NULL);
		return -ENOMEM;
	}
	/* LevelDB returns keys in bytewise order, which is our name order. */
	catalog->tables[catalog->table_count++] = table;
	if (table->id >= catalog->next_table_id)
		catalog->next_table_id = table->id + 1;
	for (size_t p = 0; p < table->n_partitions; p++)
		if (table->partitions[p]->id >= catalog->next_partition_id)
			catalog->next_partition_id = table->partitions[p]->id + 1;
	return 0;
}

static int catalog_load_node(struct catalog *catalog, const char *key, size_t key_bytes,
			     const char *value, size_t value_bytes)
{
	Quorum__NodeRecord *record;
	struct catalog_node node = { 0 };
	int err = -EBADMSG;

	if (key_bytes != CATALOG_NODE_KEY_BYTES)
		return -EBADMSG;
	record = quorum__node_record__unpack(NULL, value_bytes, (const uint8_t *)value);
	if (!record)
		return -EBADMSG;
	if (record->id == 0 || record->id != key_get_u64((const uint8_t *)key +
							  CATALOG_PREFIX_BYTES))
		goto out;
	err = -ENOMEM;
	node.id = record->id;
	node.address = strdup(record->address);
	node.az = strdup(record->az);
	node.draining = record->has_draining && record->draining;
	if (!node.address || !node.az || catalog_reserve(catalog) < 0) {
		free(node.address);
		free(node.az);
		goto out;
	}
	catalog->nodes[catalog->node_count++] = node;
	if (node.id >= catalog->next_node_id)
		catalog->next_node_id = node.id + 1;
	err = 0;
out:
	quorum__node_record__free_unpacked(record, NULL);
	return err;
}

/* The counters are read last-wins with the ids seen in records: whichever
 * is higher, so an id is never handed out twice. */
static int catalog_load_counters(const char *value, size_t value_bytes, uint64_t counters[3])
{
	Quorum__Counters *record = quorum__counters__unpack(NULL, value_bytes,
							    (const uint8_t *)value);
	if (!record)
		return -EBADMSG;
	counters[0] = record->next_table_id;
	counters[1] = record->next_node_id;
	counters[2] = record->next_partition_id;
	quorum__counters__free_unpacked(record, NULL);
	return 0;
}

static int catalog_load(struct catalog *catalog)
{
	leveldb_iterator_t *iterator = leveldb_create_iterator(catalog->db,
							       catalog->read_options);
	uint64_t counters[3] = { 1, 1, 1 };
	char *error = NULL;
	int err = 0;

	if (!iterator)
		return -ENOMEM;
	for (leveldb_iter_seek_to_first(iterator); leveldb_iter_valid(iterator);
	     leveldb_iter_next(iterator)) {
		size_t key_bytes, value_bytes;
		const char *key = leveldb_iter_key(iterator, &key_bytes);
		const char *value = leveldb_iter_value(iterator, &value_bytes);
		char printable[CATALOG_PRINTABLE_BYTES];

		if (key_bytes == 1 && key[0] == CATALOG_COUNTERS_KEY[0])
			err = catalog_load_counters(value, value_bytes, counters);
		else if (key_bytes > CATALOG_PREFIX_BYTES &&
			 memcmp(key, CATALOG_TABLE_PREFIX, CATALOG_PREFIX_BYTES) == 0)
			err = catalog_load_table(catalog, key, key_bytes, value, value_bytes);
		else if (key_bytes > CATALOG_PREFIX_BYTES &&
			 memcmp(key, CATALOG_NODE_PREFIX, CATALOG_PREFIX_BYTES) == 0)
			err = catalog_load_node(catalog, key, key_bytes, value, value_bytes);
		else if (key_bytes > SETTINGS_RECORD_PREFIX_BYTES &&
			 memcmp(key, SETTINGS_RECORD_PREFIX, SETTINGS_RECORD_PREFIX_BYTES) == 0)
			continue;	/* settings.c loads its own records */
		else if (key_bytes == strlen(CATALOG_GROUP_STATE_KEY) &&
			 memcmp(key, CATALOG_GROUP_STATE_KEY, key_bytes) == 0)
			continue;	/* the replication group's (meta/catalog_sm.h) */
		else {
			/* A record of a newer version: keep it, do not guess. */
			catalog_printable(key, key_bytes, printable, sizeof(printable));
			log_warn("catalog record \"%s\" of an unknown kind ignored", printable);
			continue;
		}
		if (err < 0) {
			catalog_printable(key, key_bytes, printable, sizeof(printable));
			if (err == -EBADMSG)
				log_error("catalog record \"%s\" (%zu bytes) does not decode: "
					  "refusing to start rather than lose it", printable,
					  value_bytes);
			else
				log_error("catalog record \"%s\": %s", printable, strerror(-err));
			break;
		}
	}
	if (err == 0) {
		leveldb_iter_get_error(iterator, &error);
		if (error) {
			log_error("catalog read failed: %s", error);
			leveldb_free(error);
			err = -EIO;
		}
	}
	leveldb_iter_destroy(iterator);
	if (err < 0)
		return err;
	if (catalog->next_table_id < counters[0])
		catalog->next_table_id = counters[0];
	if (catalog->next_node_id < counters[1])
		catalog->next_node_id = counters[1];
	if (catalog->next_partition_id < counters[2])
		catalog->next_partition_id = counters[2];
	if (catalog->next_table_id > counters[0] || catalog->next_node_id > counters[1] ||
	    catalog->next_partition_id > counters[2])
		log_warn("catalog counters were behind the records; moved past them");
	return 0;
}

int catalog_open(const char *data_dir, int64_t heartbeat_timeout_ms, struct catalog **out)
{
	struct catalog *catalog;
	char *path = NULL, *error = NULL;
	int err;

	if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_error("cannot create %s: %s", data_dir, strerror(errno));
		return err;
	}
	catalog = calloc(1, sizeof(*catalog));
	if (!catalog)
		return -ENOMEM;
	pthread_mutex_init(&catalog->lock, NULL);
	catalog->heartbeat_timeout_ms = heartbeat_timeout_ms;
	catalog->next_table_id = 1;
	catalog->next_node_id = 1;
	catalog->next_partition_id = 1;
	err = -ENOMEM;
	path = malloc(strlen(data_dir) + sizeof("/catalog"));
	if (!path)
		goto fail;
	sprintf(path, "%s/catalog", data_dir);
	catalog->options = leveldb_options_create();
	catalog->write_options = leveldb_writeoptions_create();
	catalog->read_options = leveldb_readoptions_create();
	if (!catalog->options || !catalog->write_options || !catalog->read_options)
		goto fail;
	leveldb_options_set_create_if_missing(catalog->options, 1);
	leveldb_options_set_paranoid_checks(catalog->options, 1);
	leveldb_writeoptions_set_sync(catalog->write_options, 1);
	leveldb_readoptions_set_verify_checksums(catalog->read_options, 1);
	catalog->db = leveldb_open(catalog->options, path, &error);
	if (error) {
		log_error("cannot open the catalog %s: %s", path, error);
		leveldb_free(error);
		catalog->db = NULL;
		err = -EIO;
		goto fail;
	}
	err = catalog_load(catalog);
	if (err < 0)
		goto fail;
	log_info("catalog %s: %zu tables, %zu nodes", path, catalog->table_count,
		 catalog->node_count);
	free(path);
	*out = catalog;
	return 0;
fail:
	free(path);
	catalog_close(catalog);
	return err;
}

/* Frees the tables and nodes in memory. */
static void catalog_free_records(struct catalog *catalog)
{
	for (size_t t = 0; t < catalog->table_count; t++)
		quorum__table_info__free_unpacked(catalog->tables[t], NULL);
	free(catalog->tables);
	for (size_t n = 0; n < catalog->node_count; n++) {
		free(catalog->nodes[n].address);
		free(catalog->nodes[n].az);
		reports_free(catalog->nodes[n].reports, catalog->nodes[n].report_count);
	}
	free(catalog->nodes);
}

void catalog_close(struct catalog *catalog)
{
	if (!catalog)
		return;
	catalog_free_records(catalog);
	if (catalog->db)
		leveldb_close(catalog->db);
	if (catalog->options)
		leveldb_options_destroy(catalog->options);
	if (catalog->write_options)
		leveldb_writeoptions_destroy(catalog->write_options);
	if (catalog->read_options)
		leveldb_readoptions_destroy(catalog->read_options);
	pthread_mutex_destroy(&catalog->lock);
	free(catalog);
}

void catalog_set_heartbeat_timeout_ms(struct catalog *catalog, int64_t heartbeat_timeout_ms)
{
	pthread_mutex_lock(&catalog->lock);
	catalog->heartbeat_timeout_ms = heartbeat_timeout_ms;
	pthread_mutex_unlock(&catalog->lock);
}

struct leveldb_t *catalog_leveldb(struct catalog *catalog)
{
	return catalog->db;
}

void catalog_set_committer(struct catalog *catalog, catalog_commit_fn commit,
			   bool (*serving)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&catalog->lock);
	catalog->commit = commit;
	catalog->serving = serving;
	catalog->commit_ctx = ctx;
	pthread_mutex_unlock(&catalog->lock);
}

bool catalog_serving(struct catalog *catalog)
{
	/* Without the lock, which a commit may hold for a while: the committer is set
	 * before other threads use the catalog and never changes. */
	return !catalog->serving || catalog->serving(catalog->commit_ctx);
}

int catalog_reload(struct catalog *catalog, int64_t now_ms)
{
	struct catalog *fresh = calloc(1, sizeof(*fresh));
	int err;

	if (!fresh)
		return -ENOMEM;
	/* Loaded aside without the lock (LevelDB reads are consistent), swapped in under it. */
	fresh->db = catalog->db;
	fresh->read_options = catalog->read_options;
	fresh->next_table_id = 1;
	fresh->next_node_id = 1;
	fresh->next_partition_id = 1;
	err = catalog_load(fresh);
	if (err < 0) {
		catalog_free_records(fresh);
		free(fresh);
		return err;
	}
	pthread_mutex_lock(&catalog->lock);
	/* What nodes told this instance (health, space, reports) stays with their ids. */
	for (size_t n = 0; n < fresh->node_count; n++) {
		struct catalog_node *node = &fresh->nodes[n];
		bool found;
		size_t old = catalog_find_node(catalog, node->id, &found);

		/* The leader before us heard it, most likely: up until it misses. */
		node->heard = true;
		node->heartbeat_ms = now_ms;
		if (!found)
			continue;
		node->capacity_bytes = catalog->nodes[old].capacity_bytes;
		node->free_bytes = catalog->nodes[old].free_bytes;
		node->reports = catalog->nodes[old].reports;
		node->report_count = catalog->nodes[old].report_count;
		node->reports_ms = catalog->nodes[old].reports_ms;
		catalog->nodes[old].reports = NULL;
		catalog->nodes[old].report_count = 0;
	}
#define CATALOG_SWAP(field) do { \
		__typeof__(catalog->field) swapped = catalog->field; \
		catalog->field = fresh->field; \
		fresh->field = swapped; \
	} while (0)
	CATALOG_SWAP(tables);
	CATALOG_SWAP(table_count);
	CATALOG_SWAP(table_capacity);
	CATALOG_SWAP(nodes);
	CATALOG_SWAP(node_count);
	CATALOG_SWAP(node_capacity);
	CATALOG_SWAP(next_table_id);
	CATALOG_SWAP(next_node_id);
	CATALOG_SWAP(next_partition_id);
#undef CATALOG_SWAP
	log_info("catalog reloaded: %zu tables, %zu nodes", catalog->table_count,
		 catalog->node_count);
	pthread_mutex_unlock(&catalog->lock);
	catalog_free_records(fresh);
	free(fresh);
	return 0;
}
