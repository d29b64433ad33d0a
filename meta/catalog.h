/* catalog.h: the metadata service's catalog: tables with their partitions,
 * storage nodes, and the id counters. Held in memory, persisted in LevelDB
 * (DIR/catalog) with every change written as one synced batch before the
 * caller is answered. Records (quorum.proto):
 *     "t/" + table name       -> TableInfo, with its partitions
 *     "n/" + node id (8, BE)  -> NodeRecord
 *     "c"                     -> Counters
 *     "s/" + setting key      -> SettingRecord (meta/settings.h loads them)
 *     "g"                     -> CatalogGroupState, when replicated (meta/catalog_sm.h)
 * Table, node and partition ids come from the counters and are never
 * reused, even across restarts.
 *
 * Node health is in memory only: a node is up while its last heartbeat (or
 * registration) is at most heartbeat_timeout_ms old; nodes loaded at open
 * are down until they speak. Times are passed in (now_ms monotonic, now_ns
 * real time) so tests control them.
 *
 * Every function is thread-safe (one mutex). Results are built in the
 * caller's arena and stay valid after the catalog changes. Functions that
 * can fail for a reason a user should read take why (CATALOG_WHY_BYTES,
 * may be NULL) and write a one-line explanation there. */
#ifndef QUORUM_CATALOG_H
#define QUORUM_CATALOG_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

#define CATALOG_WHY_BYTES 256
/* The record of the replication group's state (meta/catalog_sm.h); never a catalog record. */
#define CATALOG_GROUP_STATE_KEY "g"
#define CATALOG_PARTITIONS_MAX 256

struct catalog;

/* Opens (creating when missing) data_dir and the LevelDB in
 * data_dir/catalog and loads every record. A record that does not decode
 * is an error (-EBADMSG, logged with its key): refusing to start is better
 * than serving a catalog with a table missing. */
int catalog_open(const char *data_dir, int64_t heartbeat_timeout_ms, struct catalog **out);
void catalog_close(struct catalog *catalog);

/* ------------------------------------------------------------------ tables */

/* Creates a table from request (name validated here; partition_count
 * defaults to default_partition_count, 1..CATALOG_PARTITIONS_MAX) with its
 * replicas placed on the nodes up at now_ms; mtime = ctime = now_ns, every
 * partition at epoch 1. Errors: -EINVAL, -ENAMETOOLONG, -EEXIST, -EAGAIN
 * (fewer than three AZs with an up node), -EIO, -ENOMEM. */
int catalog_create_table(struct catalog *catalog, const Quorum__CreateTableRequest *request,
			 uint32_t default_partition_count, int64_t now_ms, int64_t now_ns,
			 struct arena *arena, Quorum__TableResponse **out, char *why);

/* -ENOENT, -EIO. Whether the table is empty is the caller's business. */
int catalog_delete_table(struct catalog *catalog, const void *name, size_t name_bytes,
			 char *why);

/* The table with its partitions, the nodes its replica sets name, and the
 * last report of each replica (replicas; none for a replica that never
 * reported since meta started). */
int catalog_describe_table(struct catalog *catalog, const void *name, size_t name_bytes,
			   int64_t now_ms, struct arena *arena, Quorum__TableResponse **out,
			   char *why);

/* Sets the fields present in request (mode, uid, gid, mtime_ns) and
 * ctime = now_ns. -ENOENT, -EIO, -ENOMEM. */
int catalog_update_table(struct catalog *catalog, const Quorum__UpdateTableRequest *request,
			 int64_t now_ms, int64_t now_ns, struct arena *arena,
			 Quorum__TableResponse **out, char *why);

/* Every table sorted bytewise by name, without partitions. */
int catalog_list_tables(struct catalog *catalog, struct arena *arena,
			Quorum__ListTablesResponse **out);

/* ------------------------------------------------------------------- nodes */

/* node_id 0: a new node gets a fresh id. A known id: its address and AZ are
 * updated. An unknown non-zero id (a node whose registration was lost) is
 * registered under that id, and the counter moves past it. The node is up
 * from now_ms. *assigned_id is its id. -EINVAL (empty address or AZ),
 * -EIO, -ENOMEM. */
int catalog_register_node(struct catalog *catalog, uint64_t node_id, const char *address,
			  const char *az, int64_t now_ms, uint64_t *assigned_id, char *why);

/* Records a heartbeat. capacity_bytes/free_bytes are used when their has_
 * flag is set. -ENOENT for an unknown node (it must register again). */
int catalog_heartbeat_node(struct catalog *catalog, uint64_t node_id, const char *address,
			   bool has_capacity, uint64_t capacity_bytes, bool has_free,
			   uint64_t free_bytes, int64_t now_ms, char *why);

/* Keeps the node's reports of its replication groups (in memory only, with
 * the time now_ms they came), replacing the previous ones; describe shows
 * them. At most CATALOG_REPORTS_MAX are kept. -ENOENT for an unknown node,
 * -ENOMEM. */
#define CATALOG_REPORTS_MAX 65536
int catalog_report_groups(struct catalog *catalog, uint64_t node_id,
			  Quorum__GroupReport *const *reports, size_t count, int64_t now_ms);

/* Every partition node_id is a replica of (each table's partitions in
 * order), with the address of each replica's node, in arena. */
int catalog_node_assignments(struct catalog *catalog, uint64_t node_id, struct arena *arena,
			     Quorum__PartitionAssignment ***out, size_t *count);

/* Follows a split a group made (its report, or a split's answer): when epoch is above the
 * one recorded for (table_id, partition_id) and the range shrank, the partition takes
 * [hash_first, hash_last] and epoch, and each child inside what it gave up becomes a
 * partition on the same replicas, durably. Returns 1 when the map changed, 0 when there
 * was nothing to adopt, -EIO, -ENOMEM. */
int catalog_adopt_split(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
			uint64_t hash_first, uint64_t hash_last, uint64_t epoch,
			Quorum__SplitChild *const *children, size_t child_count);

/* A partition id no partition has or will have (the counter is synced before it is used):
 * the child of a split. -EIO, -ENOMEM. */
int catalog_reserve_partition_id(struct catalog *catalog, uint64_t *id);

/* The groups among reports (a node's heartbeat) that meta knows the node must no longer
 * host: their table was deleted (its id is below the next table id and no table has it),
 * or their table lives on without this replica. A group of a table id meta never handed
 * out is not listed: a meta that lost its catalog must not make nodes delete data. */
int catalog_retired_groups(struct catalog *catalog, uint64_t node_id,
			   Quorum__GroupReport *const *reports, size_t count, struct arena *arena,
			   Quorum__GroupRef ***out, size_t *out_count);

/* Every node by id, with health, space and the replicas it holds. */
/* Replica moves (meta/mover.h). catalog_begin_move records the replica set partition_id
 * moves to (PartitionInfo.target_replicas); nodes are then assigned the old and the new
 * replicas, the new ones joining. Returns 0, -ENOENT, -EBUSY (a move is under way),
 * -ENOMEM, -EIO. catalog_finish_move makes members, which must be the target, the
 * replicas: the old replicas not among them are retired at their next heartbeat. Returns
 * 0, -ENOENT, -ESTALE (members are not the target), -ENOMEM, -EIO. */
int catalog_begin_move(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
		       const uint64_t *target, size_t target_count);
int catalog_finish_move(struct catalog *catalog, uint64_t table_id, uint64_t partition_id,
			const uint64_t *members, size_t member_count);

/* Marks a node draining (its replicas move away, it receives none) or not. Returns 0,
 * -ENOENT (no such node, why filled), -ENOMEM, -EIO. */
int catalog_set_draining(struct catalog *catalog, uint64_t node_id, bool draining, char *why);

int catalog_list_nodes(struct catalog *catalog, int64_t now_ms, struct arena *arena,
		       Quorum__ListNodesResponse **out);

/* Cluster totals (space of up nodes only); item_max_bytes is the caller's. */
int catalog_cluster_info(struct catalog *catalog, int64_t now_ms, uint64_t item_max_bytes,
			 struct arena *arena, Quorum__ClusterInfoResponse **out);

/* A node is down once its last heartbeat is older than this (the
 * heartbeat.timeout_ms setting changes it at run time). */
void catalog_set_heartbeat_timeout_ms(struct catalog *catalog, int64_t heartbeat_timeout_ms);

/* The catalog's LevelDB, for meta/settings.c, which keeps its records there.
 * Valid until catalog_close. */
struct leveldb_t;
struct leveldb_t *catalog_leveldb(struct catalog *catalog);

/* ------------------------------------------------------ replicated meta */

/* Makes batch durable, or fails: 0 only once it is durable and written to the catalog's
 * LevelDB on this instance; a negative errno otherwise, with why (why_bytes, 0 when why is
 * NULL) filled. When it fails, memory stays as it was. */
struct leveldb_writebatch_t;
typedef int (*catalog_commit_fn)(void *ctx, struct leveldb_writebatch_t *batch, char *why,
				 size_t why_bytes);

/* Without a committer (the default, one meta) every change is written to LevelDB with sync.
 * With one (meta/meta_group.h: three metas), every change goes through commit instead (its
 * -EREMOTE means this instance does not lead), and serving says whether this instance
 * serves. Set before other threads use the catalog, once. */
void catalog_set_committer(struct catalog *catalog, catalog_commit_fn commit,
			   bool (*serving)(void *ctx), void *ctx);

/* Whether this instance serves: always without a committer. Background work that acts on
 * the catalog's memory (splits, moves) runs only where it is true: elsewhere memory is
 * whatever it was when this instance last led. */
bool catalog_serving(struct catalog *catalog);

/* Reads tables, nodes and counters from LevelDB again (a meta that starts to lead: the
 * group wrote what other leaders committed). What nodes told this instance in memory
 * (space, reports) stays with the nodes that are still there, and every node counts as
 * heard at now_ms: the leader before heard the nodes every second, and waiting for each to
 * find the new leader would refuse new tables meanwhile; a node that stays silent for the
 * heartbeat timeout is down again. -EBADMSG, -EIO, -ENOMEM: memory stays as it was. */
int catalog_reload(struct catalog *catalog, int64_t now_ms);

#endif
