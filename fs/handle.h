/* handle.h: what an open file and an open directory hold.
 *
 * A file handle buffers the whole item body: open loads it (one version,
 * close-to-open consistency), writes change the buffer, and flush/fsync
 * write it back with one put under the inode's current name. Each handle
 * also keeps the item metadata it will put (mode, uid, gid, mtime, ctime),
 * so chmod/utimens/truncate on a file open for writing apply to the handle
 * and land with the put (rsync sets the times of its temp file that way).
 * A handle whose inode was unlinked never puts (no resurrection).
 *
 * A directory handle serves readdir/readdirplus: the root's tables at
 * once, a table's items (with a sort key: its partition keys) a page at a
 * time from router_scan, a partition key's items a page at a time from
 * router_query. Each entry gets
 * the next number of a per-handle sequence as its offset; the entries of
 * the last two replies are remembered with the scan cursor after each, so
 * a request at any of those offsets resumes exactly after that entry, even
 * when items were added or removed meanwhile (rm -rf never skips one).
 *
 * Handles are attached to their inode (inode_attach_handle) from creation
 * to release. Locking: the inode table's lock may be held while a handle's
 * lock is taken, never the reverse; no handle lock is held across a router
 * call except flush_lock, which only serialises the puts of one handle. */
#ifndef QUORUM_FS_HANDLE_H
#define QUORUM_FS_HANDLE_H

#include "fs/inode.h"
#include "fs/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------ open files */

struct file_handle;

/* A handle of inode number, opened with open_flags, holding a copy of
 * body_bytes of body and the metadata attr (its size is ignored: the
 * buffer's length is the size). truncated_by: 0, or the task that opened it
 * with O_TRUNC (the empty buffer then already differs from the stored
 * item). Attaches it to the inode: -ENOENT when the inode is gone, -ENOMEM. */
int file_handle_new(struct inode_table *inodes, uint64_t number, int open_flags,
		    const struct item_attr *attr, const void *body, size_t body_bytes,
		    pid_t truncated_by, struct file_handle **out);

/* Puts the buffer if still dirty (errors are logged: nobody is left to
 * hear them), detaches the handle from its inode and frees it. */
void file_handle_release(struct file_handle *handle, struct router *router,
			 struct inode_table *inodes);

/* Frees a handle the kernel never got (its open reply failed): no put. */
void file_handle_discard(struct file_handle *handle, struct inode_table *inodes);

/* The handle's pending metadata (size = the buffer's length). */
void file_handle_get_attr(struct file_handle *handle, struct item_attr *attr);

/* Calls reply with the bytes at [offset, offset + size) that exist (fewer
 * at the end, none past it) while the buffer cannot change. Returns what
 * reply returns. */
int file_handle_read(struct file_handle *handle, uint64_t offset, size_t size,
		     int (*reply)(const void *data, size_t bytes, void *arg), void *arg);

/* Writes size bytes at offset (at the end with O_APPEND), zero-filling a
 * hole. -EFBIG when the body would exceed max_bytes: the handle is then
 * failed and every later write, flush and fsync returns -EFBIG. */
int file_handle_write(struct file_handle *handle, int64_t offset, const void *data,
		      size_t size, uint64_t max_bytes);

/* When dirty, one router_put_item of the whole buffer under the inode's
 * current name, keeping the stored xattrs. Returns the put's error, or the
 * handle's failure. closed_by: the task whose close() sent this flush, or 0
 * for fsync. A handle opened with O_TRUNC and not written since is not put
 * on a close by another task than its opener (a copy of the descriptor
 * closed in a forked child, say): readers would see the item empty in the
 * middle of its rewrite. Its opener's close, fsync or release puts it. */
int file_handle_flush(struct file_handle *handle, struct router *router,
		      struct inode_table *inodes, pid_t closed_by);

/* A metadata change to apply to the open handles of an inode. */
struct handle_change {
	bool set_mode, set_uid, set_gid, set_mtime, set_size;
	uint32_t mode;             /* permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns;
	int64_t ctime_ns;          /* always applied */
	uint64_t size;
};

/* Applies change to every open handle of the inode. With only_if_dirty,
 * nothing happens unless one of them is dirty (*applied tells), so the
 * caller knows whether the put will carry the change or it must update
 * the stored item itself. *attr receives a dirty handle's metadata after
 * the change. -EFBIG when the size exceeds max_bytes (nothing applied). */
int handle_apply_change(struct inode_table *inodes, uint64_t number,
			const struct handle_change *change, bool only_if_dirty,
			uint64_t max_bytes, bool *applied, struct item_attr *attr);

/* The metadata of an open handle of the inode: a dirty one's, or (with
 * any_handle) any one's. False when there is none. */
bool handle_find_attr(struct inode_table *inodes, uint64_t number, bool any_handle,
		      struct item_attr *attr);

/* ----------------------------------------------------------- directories */

struct dir_handle;

enum dir_entry_type {
	DIR_ENTRY_DOT,
	DIR_ENTRY_DOTDOT,
	DIR_ENTRY_TABLE,
	DIR_ENTRY_ITEM,            /* or a partition key: item->is_directory */
};

/* One entry offered to dir_handle_fill's callback; the pointers are valid
 * during the call only. */
struct dir_entry {
	enum dir_entry_type type;
	uint64_t offset;           /* the offset to give the entry */
	const char *name;
	const struct router_table *table;      /* DIR_ENTRY_TABLE */
	const struct router_scan_entry *item;  /* DIR_ENTRY_ITEM */
};

/* A handle of directory number: the root when table is NULL, else the
 * table (copied), or with partition_key (not NULL) that partition key's
 * directory in the table. Attaches it to the inode. */
int dir_handle_new(struct inode_table *inodes, uint64_t number, const struct router_table *table,
		   const char *partition_key, struct dir_handle **out);
void dir_handle_free(struct dir_handle *handle, struct inode_table *inodes);

/* Serves one readdir request at offset (0: from the start): offers the
 * entries that follow to add, in order, until add returns false (the entry
 * did not fit and is not counted as sent) or the directory ends.
 * -EINVAL for an offset this handle never gave or forgot; a router error
 * stops the walk and is returned (entries already added stay sent). */
int dir_handle_fill(struct dir_handle *handle, struct router *router, uint64_t offset,
		    bool (*add)(const struct dir_entry *entry, void *arg), void *arg);

/* ------------------------------------------------------------- shutdown */

struct handle_shutdown {
	struct router *router;
	struct inode_table *inodes;
};

/* For inode_table_free: releases a handle still attached at unmount (a
 * dirty file gets its last put), detaching it. arg: a handle_shutdown. */
void handle_release_link(struct inode_link *link, void *arg);

#endif
