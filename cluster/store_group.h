/* store_group.h: the state machine of a replication group (group.h) over the store.
 *
 * A group owns a hash range of one table: the items whose key hashes into it, the client
 * sessions of its writers (session.h) and its state record
 *	'g' | table_id (8, big-endian) | partition_id (8, big-endian)
 * whose value is a crc32c frame (crc32c.h) around a GroupState (quorum.proto): applied
 * slot, members, range, epoch, and the partitions split off it. Every committed entry is
 * applied in ONE synced LevelDB write batch together with this record, so after a crash
 * the store holds exactly the slots up to its applied slot: the group skips those and
 * applies the rest, never twice, never skipping. Every batch is synced: syncing only the
 * last of an apply call is not enough, since LevelDB closes a full log file without a sync
 * when it switches memtables, and a power loss could then keep a later applied slot while
 * losing an earlier batch.
 *
 * A NORMAL entry's command is a GroupCommand:
 * - put, delete, update: applied as store_put/store_delete/store_update are, except that
 *   what could differ between replicas comes from the proposer (an update without ctime
 *   takes the command's now_ns; the item limit is the command's item_max_bytes when
 *   given), and a key outside the group's range is refused with -EREMCHG (it was split
 *   off after the command was proposed). A put or update that succeeded returns the
 *   packed ItemMeta as result bytes.
 * - split: the group keeps [hash_first, split_hash - 1]; the child partition gets
 *   [split_hash, hash_last], both with the epoch + 1. The child's state record is written
 *   in the same batch (applied slot 1, the group's members, range and epoch), with a copy
 *   of every client session, so its log starts at slot 2 on every replica that applied
 *   the split. A split that is already done answers 0; a split hash outside
 *   (hash_first, hash_last] is refused with -ERANGE.
 * The outcome (0 or a negative errno such as -EEXIST) is the entry's status. A command
 * that does not decode has status -EINVAL and changes nothing but the applied slot. A
 * command with a request id goes through its client's session in the same batch: a seq
 * answered before gets the same status and result again and changes nothing; a seq below
 * the session's floor gets -ETIMEDOUT and changes nothing. Every
 * STORE_GROUP_SESSION_SWEEP_SLOTS slots a command also drops idle sessions.
 *
 * Snapshot: the state record's length (4 bytes, little endian) and its packed GroupState,
 * then for every item of the range and every client session of the group: key length
 * (4), key, value length (4), value. Installing one replaces the group's items, sessions
 * and state in one synced batch; a child the snapshot names that this store does not hold
 * yet gets a state record with applied slot 0 (and its range emptied), so that its group
 * catches up from a snapshot of its own rather than from a log that starts at slot 2. */
#ifndef QUORUM_STORE_GROUP_H
#define QUORUM_STORE_GROUP_H

#include "cluster/group.h"
#include "cluster/staged_writes.h"
#include "cluster/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_GROUP_SESSION_SWEEP_SLOTS 4096
/* The splits a group remembers (the latest): enough for any replica that lags. */
#define STORE_GROUP_CHILDREN_MAX 16

struct store_group_child {
	uint64_t partition_id;
	uint64_t hash_first, hash_last;
	uint64_t epoch;
};

/* Where a group stands: its range (inclusive), epoch and recent children. */
struct store_group_route {
	uint64_t hash_first, hash_last;
	uint64_t epoch;
	size_t child_count;
	struct store_group_child children[STORE_GROUP_CHILDREN_MAX];
};

struct store_group {
	struct store *store;
	uint64_t table_id;
	uint64_t partition_id;
	pthread_mutex_t lock;		/* guards route: the group's thread changes it */
	struct store_group_route route;
	/* A move's new member (PartitionAssignment.joining): until its state arrives by
	 * snapshot it must not take part, whatever its epoch says. */
	bool joining;
	/* What the last apply staged (entries and the state), until sm.persist writes it in
	 * one synced batch. The group's thread only. */
	struct staged_writes pending;
	bool has_pending;
};

/* Sets up the group of (table_id, partition_id) with the range and epoch meta assigned;
 * the stored state, once there is one, takes over at group_open (sm.state). Returns 0 or
 * -ENOMEM. */
int store_group_init(struct store_group *group, struct store *store, uint64_t table_id,
		     uint64_t partition_id, uint64_t hash_first, uint64_t hash_last,
		     uint64_t epoch);
void store_group_destroy(struct store_group *group);

/* A copy of the group's current route. Thread-safe. */
void store_group_route(struct store_group *group, struct store_group_route *out);

/* Fills *sm with the state machine of group; group must outlive it. */
void store_group_sm(struct store_group *group, struct group_sm *sm);

/* Whether the store holds a state record for (table_id, partition_id); -EIO when it
 * cannot be read. */
int store_group_exists(struct store *store, uint64_t table_id, uint64_t partition_id,
		       bool *exists);

/* The hash that splits the items of [hash_first, hash_last] of table_id in two halves by
 * bytes: the first hash of the upper half. -ERANGE when the range holds fewer than two
 * distinct hashes (nothing to split: one hot key stays whole), -EIO. */
int store_group_split_point(struct store *store, uint64_t table_id, uint64_t hash_first,
			    uint64_t hash_last, uint64_t *split_hash);

/* Deletes the group's items in [hash_first, hash_last], its sessions and its state record,
 * in synced batches (the record last). -EIO, -ENOMEM. */
int store_group_remove(struct store *store, uint64_t table_id, uint64_t partition_id,
		       uint64_t hash_first, uint64_t hash_last);

/* The group's stored state (NULL when it has none yet), in arena. -EIO, -ENOMEM. */
int store_group_state_read(struct store *store, uint64_t table_id, uint64_t partition_id,
			   struct arena *arena, Quorum__GroupState **out);

#endif
