/* router.h: the request router. Turns table and item operations into
 * requests to the metadata service and to the storage node that holds the
 * item's partition, with one deadline per operation.
 *
 * Routing: a table's partitions (hash ranges and replica sets) and the
 * nodes' addresses come from quorum-meta and are cached. The partition of
 * an item is the one whose range holds key_hash(partition key); its request
 * goes to the replica the router believes leads the partition's group
 * (at first the first node of the replica set). A request that fails on
 * transport (timeout, node unreachable) is retried with backoff until the
 * deadline; past the deadline the caller gets -EIO. Every item write
 * carries a request id that stays the same across its retries
 * (request_ids.h), so its group applies it once and answers a retry with
 * the first outcome: a retried create is not refused by its own first try.
 *
 * Replication: a replica that does not lead answers a write or a strong
 * read with -EREMOTE and a hint of the leader; the router remembers the
 * hint and retries there at once (a few hops at most), or, without a hint
 * or on -EAGAIN (an election runs), tries the next replica after a pause.
 * Once the cluster shows replication groups (reports in DescribeTable, or
 * a first -EREMOTE), a replica that fails on transport is left for the
 * next one of the set at once; before that only the first replica holds
 * data and the route is refreshed from meta instead. With consistency
 * eventual, item reads and scans carry eventual=true and go to the replica
 * that answered last (the leader at first), rotating on failure.
 *
 * All functions are thread-safe and return 0 or a negative errno. */
#ifndef QUORUM_FS_ROUTER_H
#define QUORUM_FS_ROUTER_H

#include "cluster/keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct router;

enum router_consistency {
	ROUTER_CONSISTENCY_STRONG,   /* reads at the partition's leader (the default) */
	ROUTER_CONSISTENCY_EVENTUAL, /* item reads and scans at any replica */
};

struct router_options {
	/* tcp://HOST:PORT of quorum-meta, or a comma-separated list of the
	 * replicated metas (cluster/meta_client.h fails over between them). */
	const char *meta_url;
	int64_t timeout_ms;        /* deadline of one operation */
	enum router_consistency consistency;
};

/* Connects to meta and reads the cluster settings. -EIO (with a log line
 * that says why) when meta does not answer within the timeout. */
int router_new(const struct router_options *options, struct router **out);
void router_free(struct router *router);

/* The largest item body the cluster accepts (a cluster setting). */
uint64_t router_item_max_bytes(const struct router *router);
int64_t router_timeout_ms(const struct router *router);

/* ------------------------------------------------------------------ tables */

struct router_table {
	uint64_t id;
	char name[KEY_NAME_MAX_BYTES + 1];   /* NUL-terminated */
	uint32_t mode;                       /* permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns, ctime_ns;
	bool has_sort_key;
};

/* Every table, in a malloc'd array the caller frees. */
int router_list_tables(struct router *router, struct router_table **tables, size_t *count);
/* -ENOENT when there is no such table. */
int router_get_table(struct router *router, const char *name, struct router_table *out);
/* -EEXIST, -EINVAL / -ENAMETOOLONG for a bad name, -EAGAIN when the
 * cluster lacks three live nodes in three AZs. */
int router_create_table(struct router *router, const char *name, uint32_t mode, uint32_t uid,
			uint32_t gid, struct router_table *out);
/* -ENOTEMPTY while the table holds items, -ENOENT. */
int router_delete_table(struct router *router, const char *name);

struct router_table_update {
	bool set_mode, set_uid, set_gid, set_mtime;
	uint32_t mode, uid, gid;
	int64_t mtime_ns;
};
int router_update_table(struct router *router, const char *name,
			const struct router_table_update *update, struct router_table *out);

/* capacity_bytes and free_bytes: what users can store, every item counted once though it has
 * a replica in each of three AZs (ClusterInfoResponse.usable_*). */
struct router_cluster_stats {
	uint64_t capacity_bytes, free_bytes;
	uint32_t nodes_up, nodes_total, table_count;
};
int router_cluster_stats(struct router *router, struct router_cluster_stats *out);

/* ------------------------------------------------------------------- items */

/* An item's metadata as the store keeps it. */
struct item_attr {
	uint32_t mode;             /* type (S_IFREG or S_IFLNK) and permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns, ctime_ns;
	uint64_t size;
	uint64_t version;
};

struct item_xattr {
	char *name;                /* NUL-terminated, "user.*" */
	void *value;
	size_t value_bytes;
};

/* A whole item; router_item_free releases what the router allocated. */
struct router_item {
	struct item_attr attr;
	void *body;                /* NULL when fetched with meta_only */
	size_t body_bytes;
	struct item_xattr *xattrs;
	size_t xattr_count;
};
void router_item_free(struct router_item *item);

/* Every item function names its item by table (from router_get_table) and
 * key: in a table without a sort key, the item's key (any bytes but '/' and
 * NUL, 1 to 255); in a table with one, "P/S": its partition key P and sort
 * key S as the item's path inside the table's directory (S empty: P's
 * directory marker, see router_key). Validated here: -EINVAL,
 * -ENAMETOOLONG. Each has a twin ending in _at that takes the key as a
 * struct router_key instead of a string. The partition key routes: all
 * items of one partition key live in one partition. */

/* An item's primary key. sort_key is NULL in a table without a sort key,
 * and set in a table with one; there an empty sort_key names the
 * directory marker of partition_key: the item (of mode S_IFDIR) that keeps
 * the attributes of the mount's directory T/P, so that mkdir T/P works
 * before P holds anything (README, "Tables with a sort key"). */
struct router_key {
	const char *partition_key;
	const char *sort_key;
};

/* -ENOENT when absent; -EIO when the stored record fails its checksum. */
int router_get_item(struct router *router, const struct router_table *table, const char *key,
		    bool meta_only, struct router_item *out);
int router_get_item_at(struct router *router, const struct router_table *table,
		       const struct router_key *key, bool meta_only, struct router_item *out);

enum router_condition {
	ROUTER_COND_NONE,
	ROUTER_COND_ABSENT,        /* -EEXIST if the item exists */
	ROUTER_COND_VERSION,       /* -ESTALE unless the item has expect_version */
};

/* Writes the whole item: attr's mode, uid, gid, mtime_ns and ctime_ns, and
 * the body. xattrs NULL keeps the stored item's xattrs; otherwise they are
 * replaced by the xattr_count given. -EFBIG when body_bytes exceeds the item
 * limit (the stored item is untouched). *out (may be NULL) receives the new
 * metadata, version included. */
int router_put_item(struct router *router, const struct router_table *table, const char *key,
		    const struct item_attr *attr, const void *body, size_t body_bytes,
		    const struct item_xattr *xattrs, size_t xattr_count,
		    enum router_condition condition, uint64_t expect_version,
		    struct item_attr *out);
int router_put_item_at(struct router *router, const struct router_table *table,
		       const struct router_key *key, const struct item_attr *attr,
		       const void *body, size_t body_bytes, const struct item_xattr *xattrs,
		       size_t xattr_count, enum router_condition condition,
		       uint64_t expect_version, struct item_attr *out);

/* -ENOENT when absent (and no earlier try of this call deleted it). */
int router_delete_item(struct router *router, const struct router_table *table, const char *key);
int router_delete_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *key);

/* An in-place metadata change, atomic on the node. */
struct router_update {
	bool set_mode, set_uid, set_gid, set_mtime, set_ctime, set_size;
	uint32_t mode;             /* permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns, ctime_ns;
	uint64_t size;             /* truncate or extend with zeros: -EFBIG past the limit */
	const struct item_xattr *set_xattr;   /* NULL: none */
	int set_xattr_flags;                  /* XATTR_CREATE, XATTR_REPLACE */
	const char *remove_xattr;             /* NULL: none; -ENODATA when absent */
};
int router_update_item(struct router *router, const struct router_table *table,
		       const char *key, const struct router_update *update,
		       struct item_attr *out);
int router_update_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *key, const struct router_update *update,
			  struct item_attr *out);

/* Renames inside one table: puts the target with the source's body,
 * metadata and xattrs, then deletes the source, so the target is never
 * seen partial. no_replace: -EEXIST when the target exists. In a table
 * with a sort key, source and target may have different partition keys
 * (then two partitions may be involved, one after the other). */
int router_rename_item(struct router *router, const struct router_table *table,
		       const char *from, const char *to, bool no_replace);
int router_rename_item_at(struct router *router, const struct router_table *table,
			  const struct router_key *from, const struct router_key *to,
			  bool no_replace);

/* -------------------------------------------------------------------- scan */

/* Where a scan stands: the next partition to read (by a hash inside it) and
 * the position of the last entry returned. A cursor stays valid across
 * inserts, deletes and (later) splits. Initialise with router_cursor_start. */
struct router_cursor {
	bool done;
	uint64_t hash;
	size_t after_bytes;        /* 0: from the start of hash's partition */
	uint8_t after[KEY_POSITION_MAX_BYTES];
};

struct router_scan_entry {
	char key[KEY_NAME_MAX_BYTES + 1];     /* NUL-terminated */
	struct item_attr attr;
	struct router_cursor next;            /* resumes right after this entry */
	/* A partition key of a table with a sort key (router_scan): attr is
	 * its directory marker's, or router_partition_default_attr's when it
	 * has none. */
	bool is_directory;
};

void router_cursor_start(struct router_cursor *cursor);

/* Fills up to capacity entries in (hash, key) order, across partitions,
 * from cursor on, and advances cursor past them; cursor->done once the
 * table has no more. Never holds more than one page of a table in memory.
 * A table with a sort key lists its partition keys instead, each once
 * (whether it has items, a directory marker or both), as directories
 * (is_directory): one entry per partition key travels, not one per item. */
int router_scan(struct router *router, const struct router_table *table,
		struct router_cursor *cursor, struct router_scan_entry *entries,
		size_t capacity, size_t *count);

/* A query: the items of one partition key of a table with a sort key, by
 * sort key (bytewise), keys being the sort keys; the directory marker is
 * left out. Pages as router_scan does, from one partition: never a scan of
 * the table. -ENOTDIR for a table without a sort key. */
int router_query(struct router *router, const struct router_table *table,
		 const char *partition_key, struct router_cursor *cursor,
		 struct router_scan_entry *entries, size_t capacity, size_t *count);

/* True when the table holds at least one item (with a sort key: one item
 * or directory marker). */
int router_table_has_items(struct router *router, const struct router_table *table,
			   bool *has_items);

/* True when partition_key holds at least one item besides its directory
 * marker. Asked at the leader, whatever the consistency. */
int router_partition_has_items(struct router *router, const struct router_table *table,
			       const char *partition_key, bool *has_items);

/* The attributes of a partition key's directory that has no marker: the
 * table's mode (S_IFDIR), owner and times. */
void router_partition_default_attr(const struct router_table *table, struct item_attr *out);

#endif
