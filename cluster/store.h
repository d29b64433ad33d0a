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
 * bits means regular; a directory marker, the item with an empty sort key,
 * is always a directory), xattr errors as store_update; nothing changes on
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
 * With partition_key, only that key's items (a query). With
 * distinct_partition_keys, one entry per partition key, its first item (the
 * directory marker, keys.h, when it has one), and after skips every item of
 * after's partition key: each partition key costs one entry and one seek,
 * however many sort keys it holds. (*out)->more tells whether the range
 * holds further items. -EINVAL for a zero limit or table id, an empty
 * range, or a malformed after/partition_key; -EIO when an item of the page
 * is damaged. */
int store_scan(struct store *store, const Quorum__ScanRequest *request, struct arena *arena,
	       Quorum__ScanResponse **out);

#endif
