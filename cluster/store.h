/* store.h: a storage node's items in LevelDB.
 *
 * Each item is one LevelDB entry: its key is the storage key of keys.h
 * ('i' | table id | hash | partition key [| 0 | sort key]), its value the
 * checksummed ItemRecord of item.h. Every write is synced (fsync) before the
 * call returns, so what a caller acknowledges survives a crash. A value that
 * fails its checksums is never returned: the call fails with -EIO and the
 * damage is logged.
 *
 * The operations take the wire requests of quorum.proto as they are, so the
 * node hands a decoded request straight through. Read-modify-write
 * operations (put, delete, update) are atomic per item against each other:
 * they run under one of a set of striped mutexes chosen by the item's key,
 * so writes to different items proceed (and fsync) in parallel.
 *
 * All functions are thread-safe and return 0 or a negative errno. Results
 * are allocated in the caller's arena. */
#ifndef QUORUM_STORE_H
#define QUORUM_STORE_H

#include "cluster/arena.h"
#include "cluster/group.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

/* user.* attributes: a name is at most 255 bytes, a value at most 64 KiB,
 * and all names and values of one item together at most 64 KiB. */
#define STORE_XATTR_NAME_MAX_BYTES 255
#define STORE_XATTR_VALUE_MAX_BYTES (64u * 1024)
#define STORE_XATTR_TOTAL_MAX_BYTES (64u * 1024)

/* A scan returns at most this many entries, whatever the request asks. */
#define STORE_SCAN_LIMIT_MAX 1000

struct store;

/* Opens (creating if missing) the LevelDB at dir. -EIO with a log line
 * when LevelDB refuses (corruption, the directory locked by another
 * process), -ENOMEM. */
int store_open(const char *dir, struct store **out);
void store_close(struct store *store);

/* The largest body a put or a truncate may produce (a cluster setting that
 * the node learns from meta); ITEM_DEFAULT_MAX_BYTES until set. */
void store_set_item_max_bytes(struct store *store, uint64_t item_max_bytes);
uint64_t store_item_max_bytes(const struct store *store);

/* The item at key. meta_only leaves the body out (has_body false).
 * -ENOENT when absent, -EIO when the stored value is damaged. Key names
 * are checked as by key_validate_name: -EINVAL, -ENAMETOOLONG. */
int store_get(struct store *store, const Quorum__ItemKey *key, bool meta_only,
	      struct arena *arena, Quorum__ItemRecord **out);

/* Writes the whole item: mode, uid, gid, mtime_ns and ctime_ns of
 * request->meta, the body, and the xattrs (or the stored ones with
 * keep_xattrs). The store sets version (the old one + 1, 1 for a new item),
 * size and body_crc32c; *meta (may be NULL) receives the stored metadata.
 * Errors: -EEXIST (COND_ABSENT, the item exists), -ENOENT (COND_VERSION,
 * absent), -ESTALE (COND_VERSION, another version), -EFBIG (body over the
 * item limit), -EINVAL (a file type other than regular or symlink; no type
 * bits means regular), xattr errors as store_update; nothing changes on
 * error. */
int store_put(struct store *store, const Quorum__PutItemRequest *request, struct arena *arena,
	      Quorum__ItemMeta **meta);

/* Removes the item, with the conditions of store_put (COND_ABSENT makes no
 * sense here: -EINVAL). -ENOENT when absent. A damaged item may be deleted
 * unconditionally (so `rm` can clear it); a conditional delete of one fails
 * with -EIO. */
int store_delete(struct store *store, const Quorum__DeleteItemRequest *request);

/* Changes metadata in place, as UpdateItemRequest says: mode (permission
 * bits; the type stays), uid, gid, mtime_ns, ctime_ns, truncate_size
 * (shrinks, or extends with zeros; -EFBIG past the item limit), set_xattr
 * with set_xattr_flags XATTR_CREATE (-EEXIST when present) or XATTR_REPLACE
 * (-ENODATA when absent), remove_xattr (-ENODATA when absent); a set is
 * applied before a remove. Only the fields given change (a truncate does
 * not touch mtime: the caller sends the mtime it wants), except ctime,
 * which becomes now unless given. The version grows by one; a request that
 * changes nothing writes nothing and returns the current metadata.
 * Xattr names must be "user." and more (-ENOTSUP for another namespace,
 * -EINVAL for NUL inside or nothing after the prefix, -ERANGE past 255
 * bytes); values -E2BIG past 64 KiB; -ENOSPC past the per-item total.
 * -ENOENT when absent. *meta (may be NULL) receives the new metadata. */
int store_update(struct store *store, const Quorum__UpdateItemRequest *request,
		 struct arena *arena, Quorum__ItemMeta **meta);

/* One page of a table's items whose hash lies in [hash_first, hash_last]
 * (inclusive), in storage order, strictly after request->after when given,
 * at most limit (capped at STORE_SCAN_LIMIT_MAX) entries, without bodies.
 * With partition_key, only that key's items (a query). (*out)->more tells
 * whether the range holds further items. -EINVAL for a zero limit or table
 * id, an empty range, or a malformed after/partition_key; -EIO when an item
 * of the page is damaged. */
int store_scan(struct store *store, const Quorum__ScanRequest *request, struct arena *arena,
	       Quorum__ScanResponse **out);

/* ------------------------------------------------ replication groups
 *
 * The state machine of a replication group (group.h) over the store. A
 * group's applied state lives under its own key
 *	'g' | table_id (8, big-endian) | partition_id (8, big-endian)
 * whose value is: version (1 byte, 1), applied slot (8, little endian),
 * member count (4), member ids (4 each). Every committed entry is applied
 * in ONE LevelDB write batch together with this record (slot = the entry's
 * slot), so after a crash the store holds exactly the slots up to its
 * applied slot: the group skips those and applies the rest, never twice,
 * never skipping. Every batch is synced: syncing only the last of an apply
 * call is not enough, since LevelDB closes a full log file without a sync
 * when it switches memtables, and a power loss could then keep a later
 * applied slot while losing an earlier batch.
 *
 * A NORMAL entry's command is a GroupCommand (quorum.proto): put, delete or
 * update, applied as store_put/store_delete/store_update are, except that
 * what could differ between replicas comes from the proposer: an update
 * without ctime takes the command's now_ns, never the clock, and the item
 * limit is the command's item_max_bytes when given. The command's outcome
 * (0 or a negative errno such as -EEXIST) is the entry's status; a put or
 * update that succeeded returns the packed ItemMeta as result bytes. A
 * command that does not decode has status -EINVAL and changes nothing but
 * the applied slot. A command with a request id goes through its client's
 * session (session.h), in the same batch: a seq answered before gets the
 * same status and result again and changes nothing; a seq below the
 * session's floor gets -ETIMEDOUT and changes nothing. Every
 * STORE_SESSION_SWEEP_SLOTS slots, a command also drops idle sessions.
 *
 * Snapshot (bytes, little endian): version 1 (1 byte), applied slot (8),
 * member count (4), members (4 each), then for every item of the group's
 * hash range and every client session of the group: key length (4), key,
 * value length (4), value. Installing one replaces the group's items,
 * sessions and applied state in one synced batch. */
#define STORE_GROUP_KEY_BYTES 17
#define STORE_GROUP_VALUE_BYTES_MAX (1 + 8 + 4 + 4 * PAXOS_MEMBERS_MAX)
#define STORE_GROUP_FORMAT 1

struct store_group {
	struct store *store;
	uint64_t table_id;
	uint64_t partition_id;
	uint64_t hash_first;		/* the partition's hash range, inclusive */
	uint64_t hash_last;
};

/* Fills *sm with the state machine of the group ctx describes; ctx must
 * outlive the group. */
void store_group_sm(struct store_group *ctx, struct group_sm *sm);

/* The group's applied slot and members (0 and none when never applied).
 * -EIO when the record cannot be read or is damaged. */
int store_group_state(struct store *store, uint64_t table_id, uint64_t partition_id,
		      uint64_t *applied_slot, uint32_t *members, size_t *member_count);

/* group_sm.apply: see above. Returns 0 or -EIO/-ENOMEM (nothing more
 * applied than the applied slot says). */
int store_group_apply(struct store_group *group, struct group_apply *entries, size_t count);

#endif
