/* fuse_ops.c: the FUSE low-level callbacks of the mount (see fuse_ops.h
 * and DESIGN.md, "Filesystem mapping"). Inode 1 is the root and lists the
 * tables; a table is a directory; an item is a file (or a symlink whose
 * body is the target). A table with a sort key holds a directory per
 * partition key (partition_dir.h), and those hold the items, named by sort
 * key; files directly in such a table are refused (EPERM), as are
 * directories anywhere else but in the root and in such a table. Every
 * callback resolves its inode in the inode
 * table, calls the router and replies; router errors go back to the
 * kernel as they are (fs_reply_error is the one place that maps them).
 *
 * Kernel caching: entries and attributes are cached 1 s (10 s with
 * consistency=eventual; an open item's attributes are not cached), misses
 * are not cached. The daemon keeps what the cluster last said of each item
 * inode (inode_note_attr) and answers lookup and getattr from it within the
 * same timeout, counted from when it asked, giving the kernel only the rest
 * of it. Items are opened with direct I/O and no writeback
 * cache: every read is served from, and every write reaches, the open
 * file's own buffer (its version of the item), which is put whole at
 * flush/fsync (handle.c); see fs_open_set_caching. */
#define FUSE_USE_VERSION 314

#include "fs/fuse_ops.h"

#include "cluster/clock.h"
#include "cluster/log.h"
#include "fs/handle.h"
#include "fs/inode.h"
#include "fs/partition_dir.h"

#include <fuse3/fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FS_NS_PER_S 1000000000LL
#define FS_BLOCK_BYTES 4096
#define FS_IO_BLOCK_BYTES 65536
#define FS_MAX_WRITE_BYTES (1u << 20)
#define FS_MAX_READAHEAD_BYTES (1u << 20)
#define FS_TIMEOUT_STRONG_S 1.0
#define FS_TIMEOUT_EVENTUAL_S 10.0
/* Inodes are not a resource of the store: report a large, fixed pool. */
#define FS_FILES_TOTAL (1ULL << 32)

/* The mount's one context, the session's userdata. */
struct fs {
	struct router *router;
	struct fuse_session *session;  /* for notifications to the kernel */
	struct inode_table *inodes;
	/* The root's metadata: the mounting process's ids, 0755 and the mount
	 * time at first. chmod, chown and utimens change it for the life of
	 * the mount (not stored: the cluster has no record for its root), so
	 * that `rsync -a BACKUP/ MOUNTPOINT/` of a whole backup succeeds. */
	pthread_mutex_t root_lock;
	uint32_t root_mode;        /* permission bits */
	uint32_t uid, gid;
	int64_t root_mtime_ns, root_ctime_ns;
	double cache_timeout_s;
	int64_t cache_timeout_ms;  /* the same, for the inodes' metadata (inode_note_attr) */
	uint64_t item_max_bytes;
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The one place that turns a negative errno into a FUSE reply. */
static void fs_reply_error(fuse_req_t req, int rc)
{
	if (rc >= 0) {
		log_error("internal error: reply of error code %d; answering EIO", rc);
		rc = -EIO;
	}
	fuse_reply_err(req, -rc);
}

/* Replies success for 0, else the error. */
static void fs_reply_status(fuse_req_t req, int rc)
{
	if (rc)
		fs_reply_error(req, rc);
	else
		fuse_reply_err(req, 0);
}

static struct timespec fs_timespec(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / FS_NS_PER_S);
	ts.tv_nsec = (long)(ns % FS_NS_PER_S);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += FS_NS_PER_S;
		ts.tv_sec--;
	}
	return ts;
}

/* -EOVERFLOW when the time does not fit 64-bit nanoseconds (past 2262). */
static int fs_timespec_ns(const struct timespec *ts, int64_t *ns)
{
	if (ts->tv_nsec < 0 || ts->tv_nsec >= FS_NS_PER_S ||
	    ts->tv_sec > INT64_MAX / FS_NS_PER_S - 1 || ts->tv_sec < INT64_MIN / FS_NS_PER_S + 1)
		return -EOVERFLOW;
	*ns = (int64_t)ts->tv_sec * FS_NS_PER_S + ts->tv_nsec;
	return 0;
}

static void fs_stat_root(struct fs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = INODE_ROOT_NUMBER;
	st->st_nlink = 2;
	st->st_size = FS_BLOCK_BYTES;
	st->st_blocks = FS_BLOCK_BYTES / 512;
	st->st_blksize = FS_IO_BLOCK_BYTES;
	pthread_mutex_lock(&fs->root_lock);
	st->st_mode = S_IFDIR | fs->root_mode;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = fs_timespec(fs->root_mtime_ns);
	st->st_ctim = fs_timespec(fs->root_ctime_ns);
	pthread_mutex_unlock(&fs->root_lock);
	st->st_atim = st->st_mtim;
}

/* chmod, chown, utimens of the root: kept by the mount (see struct fs). */
static int fs_setattr_root(struct fs *fs, const struct stat *attr, int to_set)
{
	int64_t mtime_ns = 0;
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE)
		return -EISDIR;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		mtime_ns = clock_realtime_ns();
	else if (to_set & FUSE_SET_ATTR_MTIME)
		rc = fs_timespec_ns(&attr->st_mtim, &mtime_ns);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->root_lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		fs->root_mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		fs->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		fs->gid = attr->st_gid;
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		fs->root_mtime_ns = mtime_ns;
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		      FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		fs->root_ctime_ns = clock_realtime_ns();
	pthread_mutex_unlock(&fs->root_lock);
	return 0;
}

/* A directory: a table, or a partition key's in a table with a sort key. */
static void fs_stat_dir(uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime_ns,
			int64_t ctime_ns, uint64_t number, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = number;
	st->st_mode = S_IFDIR | (mode & 07777);
	st->st_nlink = 2;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_size = FS_BLOCK_BYTES;
	st->st_blocks = FS_BLOCK_BYTES / 512;
	st->st_blksize = FS_IO_BLOCK_BYTES;
	st->st_mtim = fs_timespec(mtime_ns);
	st->st_atim = st->st_mtim;
	st->st_ctim = fs_timespec(ctime_ns);
}

static void fs_stat_table(const struct router_table *table, uint64_t number, struct stat *st)
{
	fs_stat_dir(table->mode, table->uid, table->gid, table->mtime_ns, table->ctime_ns, number,
		    st);
}

static void fs_stat_partition(const struct item_attr *attr, uint64_t number, struct stat *st)
{
	fs_stat_dir(attr->mode, attr->uid, attr->gid, attr->mtime_ns, attr->ctime_ns, number, st);
}

static void fs_stat_item(const struct item_attr *attr, uint64_t number, bool unlinked,
			 struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = number;
	/* Only files and symlinks are items; anything else reads as a file. */
	st->st_mode = (S_ISLNK(attr->mode) ? S_IFLNK : S_IFREG) | (attr->mode & 07777);
	st->st_nlink = unlinked ? 0 : 1;
	st->st_uid = attr->uid;
	st->st_gid = attr->gid;
	st->st_size = attr->size > INT64_MAX ? INT64_MAX : (off_t)attr->size;
	st->st_blocks = (blkcnt_t)((attr->size + 511) / 512);
	st->st_blksize = FS_IO_BLOCK_BYTES;
	st->st_mtim = fs_timespec(attr->mtime_ns);
	/* Reads never change times (tar compares them). */
	st->st_atim = st->st_mtim;
	st->st_ctim = fs_timespec(attr->ctime_ns);
}

static void fs_entry_init(const struct fs *fs, struct fuse_entry_param *entry)
{
	memset(entry, 0, sizeof(*entry));
	entry->attr_timeout = fs->cache_timeout_s;
	entry->entry_timeout = fs->cache_timeout_s;
}

/* What the kernel may cache of metadata age_ms old: the rest of the mount's
 * timeout, so nothing it holds is older than the timeout allows. */
static double fs_remaining_s(const struct fs *fs, int64_t age_ms)
{
	int64_t left_ms = fs->cache_timeout_ms - age_ms;

	return left_ms > 0 ? (double)left_ms / 1000.0 : 0;
}

/* Keeps what the cluster answered for an item, asked at asked_at_ms. */
static void fs_note_attr(struct fs *fs, uint64_t number, const struct item_attr *attr,
			 int64_t asked_at_ms)
{
	inode_note_attr(fs->inodes, number, attr, asked_at_ms, fs->cache_timeout_ms);
}

static int fs_check_name(const char *name)
{
	return key_validate_name(name, strlen(name));
}

/* A stable stand-in inode number for a plain readdir entry that has no
 * inode yet (only used when the kernel lacks readdirplus). */
static uint64_t fs_pseudo_number(const char *table, const char *key)
{
	uint64_t hash = 1469598103934665603ULL;
	const unsigned char *p;

	for (p = (const unsigned char *)table; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	hash *= 1099511628211ULL;
	for (p = (const unsigned char *)key; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	return hash | (1ULL << 63);
}

/* The metadata of the item an inode names: a dirty open handle's (its
 * size and times lead the store's until the put), else what the cluster
 * said of it less than the attribute timeout ago (inode_note_attr), else
 * the store's. An unlinked inode has only its open handles left.
 * *timeout_s: how long the kernel may cache the answer. */
static int fs_item_attr(struct fs *fs, uint64_t number, const struct inode_name *name,
			struct item_attr *out, double *timeout_s)
{
	struct router_table table;
	struct router_item item;
	int64_t asked_at_ms, age_ms;
	int rc;

	*timeout_s = fs->cache_timeout_s;
	if (handle_find_attr(fs->inodes, number, name->unlinked, out))
		return 0;
	if (name->unlinked)
		return -ENOENT;
	asked_at_ms = clock_monotonic_ms();
	if (inode_fresh_attr(fs->inodes, number, asked_at_ms, fs->cache_timeout_ms, out,
			     &age_ms)) {
		*timeout_s = fs_remaining_s(fs, age_ms);
		return 0;
	}
	rc = router_get_table(fs->router, name->table, &table);
	if (rc)
		return rc;
	rc = router_get_item(fs->router, &table, name->key, true, &item);
	if (rc)
		return rc;
	*out = item.attr;
	fs_note_attr(fs, number, &item.attr, asked_at_ms);
	router_item_free(&item);
	return 0;
}

/* A directory that holds items: a table without a sort key, or a
 * partition key's directory in a table with one. */
struct fs_dir {
	struct inode_name name;    /* the directory's */
	struct router_table table;
	const char *partition_key; /* NULL for a table; else name.key */
	bool lists_partitions;     /* a table with a sort key: holds directories only */
};

/* The directory inode parent (of an item, or with lists_partitions of a
 * partition key's directory). */
static int fs_parent_dir(struct fs *fs, fuse_ino_t parent, struct fs_dir *dir)
{
	int rc = inode_get_name(fs->inodes, parent, &dir->name);

	dir->partition_key = NULL;
	dir->lists_partitions = false;
	if (rc)
		return rc;
	if (dir->name.kind == INODE_ITEM)
		return -ENOTDIR;
	if (dir->name.kind == INODE_ROOT)
		return -EPERM;
	if (dir->name.unlinked)
		return -ENOENT;
	rc = router_get_table(fs->router, dir->name.table, &dir->table);
	if (rc)
		return rc;
	if (dir->name.kind == INODE_PARTITION) {
		/* A table of the same name, recreated without a sort key. */
		if (!dir->table.has_sort_key)
			return -ENOENT;
		dir->partition_key = dir->name.key;
	} else {
		dir->lists_partitions = dir->table.has_sort_key;
	}
	return 0;
}

/* A directory that files can be made in: -EPERM for a table with a sort
 * key, whose entries are directories. */
static int fs_parent_item_dir(struct fs *fs, fuse_ino_t parent, struct fs_dir *dir)
{
	int rc = fs_parent_dir(fs, parent, dir);

	if (rc == 0 && dir->lists_partitions)
		rc = -EPERM;
	return rc;
}

/* The key of the item name in dir, as the inode table and router.h's
 * string form name it: the name, or "P/name" in a partition key's
 * directory. Checks the name. */
static int fs_item_key(const struct fs_dir *dir, const char *name,
		       char key[INODE_KEY_MAX_BYTES + 1])
{
	int rc = key_validate_name(name, strlen(name));

	if (rc)
		return rc;
	if (dir->partition_key)
		snprintf(key, INODE_KEY_MAX_BYTES + 1, "%s/%s", dir->partition_key, name);
	else
		snprintf(key, INODE_KEY_MAX_BYTES + 1, "%s", name);
	return 0;
}

/* Replies the entry of an item inode that counted a lookup for it,
 * cacheable for timeout_s. */
static void fs_reply_item_number(fuse_req_t req, uint64_t number, const struct item_attr *attr,
				 double timeout_s)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param entry;
	struct item_attr overlay;

	fs_entry_init(fs, &entry);
	entry.attr_timeout = timeout_s;
	entry.entry_timeout = timeout_s;
	entry.ino = number;
	if (handle_find_attr(fs->inodes, number, false, &overlay))
		attr = &overlay;
	fs_stat_item(attr, number, false, &entry.attr);
	if (fuse_reply_entry(req, &entry))
		inode_forget(fs->inodes, number, 1);
}

/* Replies an entry for an item just resolved or made, counting a lookup;
 * attr is what the cluster answered to a request sent at asked_at_ms. */
static void fs_reply_item_entry(fuse_req_t req, const char *table, const char *key,
				const struct item_attr *attr, int64_t asked_at_ms)
{
	struct fs *fs = fs_of(req);
	uint64_t number;
	int rc;

	rc = inode_ref(fs->inodes, INODE_ITEM, table, key, &number);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_note_attr(fs, number, attr, asked_at_ms);
	fs_reply_item_number(req, number, attr, fs->cache_timeout_s);
}

/* Replies an entry for a partition key's directory, counting a lookup. */
static void fs_reply_partition_entry(fuse_req_t req, const char *table,
				     const char *partition_key, const struct item_attr *attr)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param entry;
	uint64_t number;
	int rc;

	rc = inode_ref(fs->inodes, INODE_PARTITION, table, partition_key, &number);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_entry_init(fs, &entry);
	entry.ino = number;
	fs_stat_partition(attr, number, &entry.attr);
	if (fuse_reply_entry(req, &entry))
		inode_forget(fs->inodes, number, 1);
}

static void fs_reply_table_entry(fuse_req_t req, const struct router_table *table)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param entry;
	uint64_t number;
	int rc;

	rc = inode_ref(fs->inodes, INODE_TABLE, table->name, "", &number);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_entry_init(fs, &entry);
	entry.ino = number;
	fs_stat_table(table, number, &entry.attr);
	if (fuse_reply_entry(req, &entry))
		inode_forget(fs->inodes, number, 1);
}

/* ------------------------------------------------------------- lifecycle */

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* readdirplus for every listing: ls -l and rsync cost no lookups. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* Writes must reach the handle's buffer, whose put reports errors. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = FS_MAX_WRITE_BYTES;
	if (conn->max_readahead > FS_MAX_READAHEAD_BYTES)
		conn->max_readahead = FS_MAX_READAHEAD_BYTES;
	conn->time_gran = 1;
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode_name parent_name;
	struct router_table table;
	struct router_item item;
	struct item_attr attr;
	struct fs_dir dir;
	char key[INODE_KEY_MAX_BYTES + 1];
	int64_t asked_at_ms, age_ms;
	uint64_t number;
	int rc;

	rc = inode_get_name(fs->inodes, parent, &parent_name);
	if (rc == 0)
		rc = fs_check_name(name);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	if (parent_name.kind == INODE_ROOT) {
		rc = router_get_table(fs->router, name, &table);
		if (rc)
			fs_reply_error(req, rc);
		else
			fs_reply_table_entry(req, &table);
		return;
	}
	rc = fs_parent_dir(fs, parent, &dir);
	if (rc == 0 && dir.lists_partitions) {
		rc = partition_dir_get_attr(fs->router, &dir.table, name, &attr);
		if (rc)
			fs_reply_error(req, rc);
		else
			fs_reply_partition_entry(req, dir.name.table, name, &attr);
		return;
	}
	if (rc == 0)
		rc = fs_item_key(&dir, name, key);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	/* The kernel's entry expired, but this mount may have heard of the
	 * item since (an open, a write): within the timeout, that answers. */
	asked_at_ms = clock_monotonic_ms();
	if (inode_ref_fresh(fs->inodes, dir.name.table, key, asked_at_ms, fs->cache_timeout_ms,
			    &attr, &age_ms, &number)) {
		fs_reply_item_number(req, number, &attr, fs_remaining_s(fs, age_ms));
		return;
	}
	rc = router_get_item(fs->router, &dir.table, key, true, &item);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_reply_item_entry(req, dir.name.table, key, &item.attr, asked_at_ms);
	router_item_free(&item);
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		inode_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ------------------------------------------------------------ attributes */

/* The attributes of a partition key's directory the inode names. */
static int fs_partition_attr(struct fs *fs, const struct inode_name *name,
			     struct item_attr *out)
{
	struct router_table table;
	int rc;

	if (name->unlinked)
		return -ENOENT;
	rc = router_get_table(fs->router, name->table, &table);
	if (rc == 0 && !table.has_sort_key)
		rc = -ENOENT;
	if (rc == 0)
		rc = partition_dir_get_attr(fs->router, &table, name->key, out);
	return rc;
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode_name name;
	struct router_table table;
	struct item_attr attr, open_attr;
	double timeout_s = fs->cache_timeout_s;
	struct stat st;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	switch (name.kind) {
	case INODE_ROOT:
		fs_stat_root(fs, &st);
		break;
	case INODE_TABLE:
		rc = name.unlinked ? -ENOENT : router_get_table(fs->router, name.table, &table);
		if (rc == 0)
			fs_stat_table(&table, ino, &st);
		break;
	case INODE_ITEM:
		/* The kernel asks with a handle when a read goes past the size it
		 * knows: answer with that handle's version, which is what the read
		 * will get (another handle may hold a newer or older one). */
		if (fi && fi->fh)
			file_handle_get_attr((struct file_handle *)(uintptr_t)fi->fh, &attr);
		else
			rc = fs_item_attr(fs, ino, &name, &attr, &timeout_s);
		/* While the item is open, no size may stay cached: reads stop at
		 * it instead of asking with their handle, and would cut the
		 * version they hold (others may hold another). */
		if (fi || handle_find_attr(fs->inodes, ino, true, &open_attr))
			timeout_s = 0;
		if (rc == 0)
			fs_stat_item(&attr, ino, name.unlinked, &st);
		break;
	case INODE_PARTITION:
		rc = fs_partition_attr(fs, &name, &attr);
		if (rc == 0)
			fs_stat_partition(&attr, ino, &st);
		break;
	}
	if (rc)
		fs_reply_error(req, rc);
	else
		fuse_reply_attr(req, &st, timeout_s);
}

static void fs_setattr_table(fuse_req_t req, fuse_ino_t ino, const struct inode_name *name,
			     const struct stat *attr, int to_set)
{
	struct fs *fs = fs_of(req);
	struct router_table_update update = { 0 };
	struct router_table table;
	struct stat st;
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		fs_reply_error(req, -EISDIR);
		return;
	}
	if (name->unlinked) {
		fs_reply_error(req, -ENOENT);
		return;
	}
	update.set_mode = to_set & FUSE_SET_ATTR_MODE;
	update.mode = attr->st_mode & 07777;
	update.set_uid = to_set & FUSE_SET_ATTR_UID;
	update.uid = attr->st_uid;
	update.set_gid = to_set & FUSE_SET_ATTR_GID;
	update.gid = attr->st_gid;
	update.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		update.mtime_ns = clock_realtime_ns();
	else if (to_set & FUSE_SET_ATTR_MTIME)
		rc = fs_timespec_ns(&attr->st_mtim, &update.mtime_ns);
	if (rc == 0) {
		if (update.set_mode || update.set_uid || update.set_gid || update.set_mtime)
			rc = router_update_table(fs->router, name->table, &update, &table);
		else
			rc = router_get_table(fs->router, name->table, &table);
	}
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_stat_table(&table, ino, &st);
	fuse_reply_attr(req, &st, fs->cache_timeout_s);
}

/* chmod, chown and utimens of a partition key's directory: its marker. */
static void fs_setattr_partition(fuse_req_t req, fuse_ino_t ino, const struct inode_name *name,
				 const struct stat *attr, int to_set)
{
	struct fs *fs = fs_of(req);
	struct router_update update = { 0 };
	struct router_table table;
	struct item_attr result;
	struct stat st;
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		fs_reply_error(req, -EISDIR);
		return;
	}
	update.set_mode = to_set & FUSE_SET_ATTR_MODE;
	update.mode = attr->st_mode & 07777;
	update.set_uid = to_set & FUSE_SET_ATTR_UID;
	update.uid = attr->st_uid;
	update.set_gid = to_set & FUSE_SET_ATTR_GID;
	update.gid = attr->st_gid;
	update.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
	update.set_ctime = true;
	update.ctime_ns = clock_realtime_ns();
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		update.mtime_ns = update.ctime_ns;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		rc = fs_timespec_ns(&attr->st_mtim, &update.mtime_ns);
	if (rc == 0 && name->unlinked)
		rc = -ENOENT;
	if (rc == 0 && !update.set_mode && !update.set_uid && !update.set_gid &&
	    !update.set_mtime) {
		/* atime only: reads never change times, nothing to store. */
		rc = fs_partition_attr(fs, name, &result);
	} else if (rc == 0) {
		rc = router_get_table(fs->router, name->table, &table);
		if (rc == 0 && !table.has_sort_key)
			rc = -ENOENT;
		if (rc == 0)
			rc = partition_dir_update(fs->router, &table, name->key, &update, &result);
	}
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_stat_partition(&result, ino, &st);
	fuse_reply_attr(req, &st, fs->cache_timeout_s);
}

/* chmod, chown, utimens and truncate of an item. With a dirty open handle
 * the change goes to the handle(s) and lands with their put; otherwise it
 * is an in-place update of the stored item, mirrored into open handles so
 * a later put does not undo it. */
static void fs_setattr_item(fuse_req_t req, fuse_ino_t ino, const struct inode_name *name,
			    const struct stat *attr, int to_set)
{
	struct fs *fs = fs_of(req);
	struct handle_change change = { 0 };
	struct router_update update = { 0 };
	struct router_table table;
	struct item_attr result;
	struct stat st;
	double timeout_s = fs->cache_timeout_s;
	int64_t asked_at_ms;
	bool applied = false;
	int rc = 0;

	change.set_mode = to_set & FUSE_SET_ATTR_MODE;
	change.mode = attr->st_mode & 07777;
	change.set_uid = to_set & FUSE_SET_ATTR_UID;
	change.uid = attr->st_uid;
	change.set_gid = to_set & FUSE_SET_ATTR_GID;
	change.gid = attr->st_gid;
	change.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
	change.ctime_ns = clock_realtime_ns();
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		change.mtime_ns = change.ctime_ns;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		rc = fs_timespec_ns(&attr->st_mtim, &change.mtime_ns);
	change.set_size = to_set & FUSE_SET_ATTR_SIZE;
	if (change.set_size && attr->st_size < 0)
		rc = -EINVAL;
	change.size = change.set_size ? (uint64_t)attr->st_size : 0;
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	if (!change.set_mode && !change.set_uid && !change.set_gid && !change.set_mtime &&
	    !change.set_size) {
		/* atime only: reads never change times, nothing to store. */
		rc = fs_item_attr(fs, ino, name, &result, &timeout_s);
		goto reply;
	}
	/* Unlinked: only the open handles are left to carry it. */
	rc = handle_apply_change(fs->inodes, ino, &change, !name->unlinked,
				 router_item_max_bytes(fs->router), &applied, &result);
	if (rc || applied) {
		if (rc == 0 && name->unlinked)
			rc = fs_item_attr(fs, ino, name, &result, &timeout_s);
		goto reply;
	}
	if (name->unlinked) {
		rc = -ENOENT;
		goto reply;
	}
	update.set_mode = change.set_mode;
	update.mode = change.mode;
	update.set_uid = change.set_uid;
	update.uid = change.uid;
	update.set_gid = change.set_gid;
	update.gid = change.gid;
	update.set_mtime = change.set_mtime;
	update.mtime_ns = change.mtime_ns;
	update.set_ctime = true;
	update.ctime_ns = change.ctime_ns;
	update.set_size = change.set_size;
	update.size = change.size;
	asked_at_ms = clock_monotonic_ms();
	rc = router_get_table(fs->router, name->table, &table);
	if (rc == 0)
		rc = router_update_item(fs->router, &table, name->key, &update, &result);
	if (rc == 0)
		fs_note_attr(fs, ino, &result, asked_at_ms);
	else
		inode_drop_attr(fs->inodes, ino);
	if (rc == 0) {
		struct item_attr mirrored;
		int mirror_rc = handle_apply_change(fs->inodes, ino, &change, false,
						    router_item_max_bytes(fs->router), &applied,
						    &mirrored);

		if (mirror_rc)
			log_warn("setattr of inode %llu stored, but not applied to its open "
				 "handles: %s", (unsigned long long)ino, strerror(-mirror_rc));
		/* A handle that turned dirty meanwhile leads the store. */
		handle_find_attr(fs->inodes, ino, false, &result);
	}
reply:
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fs_stat_item(&result, ino, name->unlinked, &st);
	fuse_reply_attr(req, &st, timeout_s);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode_name name;
	struct stat st;
	int rc;

	(void)fi;
	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	switch (name.kind) {
	case INODE_ROOT:
		rc = fs_setattr_root(fs, attr, to_set);
		if (rc) {
			fs_reply_error(req, rc);
		} else {
			fs_stat_root(fs, &st);
			fuse_reply_attr(req, &st, fs->cache_timeout_s);
		}
		return;
	case INODE_TABLE:
		fs_setattr_table(req, ino, &name, attr, to_set);
		return;
	case INODE_ITEM:
		fs_setattr_item(req, ino, &name, attr, to_set);
		return;
	case INODE_PARTITION:
		fs_setattr_partition(req, ino, &name, attr, to_set);
		return;
	}
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct inode_name name;
	struct router_table table;
	struct router_item item;
	char *target;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc == 0 && (name.kind != INODE_ITEM))
		rc = -EINVAL;
	if (rc == 0 && name.unlinked)
		rc = -ENOENT;
	if (rc == 0)
		rc = router_get_table(fs->router, name.table, &table);
	if (rc == 0)
		rc = router_get_item(fs->router, &table, name.key, false, &item);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	if (!S_ISLNK(item.attr.mode) || memchr(item.body, '\0', item.body_bytes)) {
		router_item_free(&item);
		fs_reply_error(req, -EINVAL);
		return;
	}
	target = malloc(item.body_bytes + 1);
	if (!target) {
		router_item_free(&item);
		fs_reply_error(req, -ENOMEM);
		return;
	}
	if (item.body_bytes)
		memcpy(target, item.body, item.body_bytes);
	target[item.body_bytes] = '\0';
	router_item_free(&item);
	fuse_reply_readlink(req, target);
	free(target);
}

/* --------------------------------------------------------- names: tables */

/* mkdir T/P in a table with a sort key: P's directory marker. */
static void fs_mkdir_partition(fuse_req_t req, fuse_ino_t parent, const char *name,
			       mode_t mode)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct item_attr attr;
	struct fs_dir dir;
	int rc;

	rc = fs_parent_dir(fs, parent, &dir);
	/* Directories nest two levels deep: tables, then partition keys. */
	if (rc == 0 && !dir.lists_partitions)
		rc = -EPERM;
	if (rc == 0)
		rc = fs_check_name(name);
	if (rc == 0)
		rc = partition_dir_create(fs->router, &dir.table, name, mode & 07777, ctx->uid,
					  ctx->gid, &attr);
	if (rc)
		fs_reply_error(req, rc);
	else
		fs_reply_partition_entry(req, dir.name.table, name, &attr);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct inode_name parent_name;
	struct router_table table;
	int rc;

	rc = inode_get_name(fs->inodes, parent, &parent_name);
	if (rc == 0 && parent_name.kind == INODE_ITEM)
		rc = -ENOTDIR;
	if (rc == 0 && parent_name.kind != INODE_ROOT) {
		/* In a table without a sort key, items only: EPERM. */
		fs_mkdir_partition(req, parent, name, mode);
		return;
	}
	if (rc == 0)
		rc = fs_check_name(name);
	if (rc == 0)
		rc = router_create_table(fs->router, name, mode & 07777, ctx->uid, ctx->gid,
					 &table);
	if (rc)
		fs_reply_error(req, rc);
	else
		fs_reply_table_entry(req, &table);
}

/* rmdir T/P in a table with a sort key. */
static void fs_rmdir_partition(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_dir dir;
	int rc;

	rc = fs_parent_dir(fs, parent, &dir);
	/* Only the partition keys of a table with a sort key are directories. */
	if (rc == 0 && !dir.lists_partitions)
		rc = -ENOTDIR;
	if (rc == 0)
		rc = fs_check_name(name);
	if (rc == 0)
		rc = partition_dir_remove(fs->router, &dir.table, name);
	if (rc == 0)
		inode_mark_unlinked(fs->inodes, INODE_PARTITION, dir.name.table, name);
	fs_reply_status(req, rc);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode_name parent_name;
	int rc;

	rc = inode_get_name(fs->inodes, parent, &parent_name);
	if (rc == 0 && parent_name.kind != INODE_ROOT) {
		fs_rmdir_partition(req, parent, name);
		return;
	}
	if (rc == 0)
		rc = fs_check_name(name);
	if (rc == 0)
		rc = router_delete_table(fs->router, name);
	if (rc == 0)
		inode_mark_unlinked(fs->inodes, INODE_TABLE, name, "");
	fs_reply_status(req, rc);
}

/* ---------------------------------------------------------- names: items */

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Puts a new item that must not exist yet (-EEXIST otherwise), owned by
 * the caller of the request, with the times of now. */
static int fs_put_new_item(fuse_req_t req, const struct router_table *table, const char *key,
			   uint32_t mode, const void *body, size_t body_bytes,
			   struct item_attr *out)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct item_attr attr = { 0 };

	attr.mode = mode;
	attr.uid = ctx->uid;
	attr.gid = ctx->gid;
	attr.mtime_ns = clock_realtime_ns();
	attr.ctime_ns = attr.mtime_ns;
	attr.size = body_bytes;
	*out = attr;
	return router_put_item(fs->router, table, key, &attr, body, body_bytes, NULL, 0,
			       ROUTER_COND_ABSENT, 0, out);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			dev_t rdev)
{
	struct fs *fs = fs_of(req);
	char key[INODE_KEY_MAX_BYTES + 1];
	struct item_attr attr;
	struct fs_dir dir;
	int64_t asked_at_ms;
	int rc;

	(void)rdev;
	/* Only regular files are items; devices, fifos and sockets are not. */
	rc = S_ISREG(mode) ? fs_parent_item_dir(fs, parent, &dir) : -EPERM;
	if (rc == 0)
		rc = fs_item_key(&dir, name, key);
	asked_at_ms = clock_monotonic_ms();
	if (rc == 0)
		rc = fs_put_new_item(req, &dir.table, key, S_IFREG | (mode & 07777), NULL, 0,
				     &attr);
	if (rc)
		fs_reply_error(req, rc);
	else
		fs_reply_item_entry(req, dir.name.table, key, &attr, asked_at_ms);
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	char key[INODE_KEY_MAX_BYTES + 1];
	struct item_attr attr;
	struct fs_dir dir;
	int64_t asked_at_ms;
	int rc;

	rc = fs_parent_item_dir(fs, parent, &dir);
	if (rc == 0)
		rc = fs_item_key(&dir, name, key);
	asked_at_ms = clock_monotonic_ms();
	if (rc == 0)
		rc = fs_put_new_item(req, &dir.table, key, S_IFLNK | 0777, link, strlen(link),
				     &attr);
	if (rc)
		fs_reply_error(req, rc);
	else
		fs_reply_item_entry(req, dir.name.table, key, &attr, asked_at_ms);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	/* An item has one name. */
	fs_reply_error(req, -EPERM);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	char key[INODE_KEY_MAX_BYTES + 1];
	struct fs_dir dir;
	int rc;

	rc = fs_parent_item_dir(fs, parent, &dir);
	if (rc == 0)
		rc = fs_item_key(&dir, name, key);
	if (rc == 0)
		rc = router_delete_item(fs->router, &dir.table, key);
	if (rc == 0)
		inode_mark_unlinked(fs->inodes, INODE_ITEM, dir.name.table, key);
	fs_reply_status(req, rc);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	char from_key[INODE_KEY_MAX_BYTES + 1], to_key[INODE_KEY_MAX_BYTES + 1];
	struct inode_name from, to;
	struct fs_dir from_dir, to_dir;
	int rc;

	/* RENAME_EXCHANGE and RENAME_WHITEOUT have no meaning for items. */
	if (flags & ~(unsigned int)RENAME_NOREPLACE) {
		fs_reply_error(req, -EINVAL);
		return;
	}
	rc = inode_get_name(fs->inodes, parent, &from);
	if (rc == 0)
		rc = inode_get_name(fs->inodes, newparent, &to);
	if (rc == 0 && (from.kind == INODE_ITEM || to.kind == INODE_ITEM))
		rc = -ENOTDIR;
	/* Tables are not renamed, and items do not cross tables: EXDEV makes
	 * mv copy and unlink by itself. */
	if (rc == 0 && (from.kind == INODE_ROOT || to.kind == INODE_ROOT ||
			strcmp(from.table, to.table) != 0))
		rc = -EXDEV;
	if (rc == 0 && (from.unlinked || to.unlinked))
		rc = -ENOENT;
	if (rc == 0)
		rc = fs_parent_dir(fs, parent, &from_dir);
	if (rc == 0)
		rc = fs_parent_dir(fs, newparent, &to_dir);
	/* A partition key's directory moves only with all its items, which
	 * is no single change: EXDEV makes mv copy and remove it. A file does
	 * not go where directories are, nor a directory where files are. */
	if (rc == 0 && from_dir.lists_partitions && to_dir.lists_partitions)
		rc = -EXDEV;
	else if (rc == 0 && (from_dir.lists_partitions || to_dir.lists_partitions))
		rc = -EPERM;
	if (rc == 0)
		rc = fs_item_key(&from_dir, name, from_key);
	if (rc == 0)
		rc = fs_item_key(&to_dir, newname, to_key);
	if (rc == 0 && strcmp(from_key, to_key) == 0) {
		fuse_reply_err(req, 0);
		return;
	}
	if (rc == 0)
		rc = router_rename_item(fs->router, &from_dir.table, from_key, to_key,
					flags & RENAME_NOREPLACE);
	if (rc == 0)
		rc = inode_rename(fs->inodes, from.table, from_key, to_key);
	fs_reply_status(req, rc);
}

/* ------------------------------------------------------------- open files */

/* A handle on the stored item: its whole body, or with O_TRUNC (when
 * writable) an empty dirty buffer that keeps the item's mode and owner. */
static int fs_open_item(struct fs *fs, uint64_t number, const struct router_table *table,
			const char *key, int flags, pid_t opener, struct file_handle **out)
{
	bool truncate = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
	int64_t asked_at_ms = clock_monotonic_ms();
	struct router_item item;
	int rc;

	rc = router_get_item(fs->router, table, key, truncate, &item);
	if (rc)
		return rc;
	/* A stat after open (cat, cp) or after close needs no request. */
	fs_note_attr(fs, number, &item.attr, asked_at_ms);
	if (S_ISLNK(item.attr.mode)) {
		/* The kernel follows symlinks itself; one reaching here was
		 * made by another client between its lookup and this open. */
		rc = -ELOOP;
	} else if (truncate) {
		item.attr.mtime_ns = clock_realtime_ns();
		item.attr.ctime_ns = item.attr.mtime_ns;
		rc = file_handle_new(fs->inodes, number, flags, &item.attr, NULL, 0,
				     opener > 0 ? opener : -1, out);
	} else {
		rc = file_handle_new(fs->inodes, number, flags, &item.attr, item.body,
				     item.body_bytes, 0, out);
	}
	router_item_free(&item);
	return rc;
}

/* How the kernel reads and writes a new handle: direct I/O. Each handle
 * holds its own version of the item (loaded at open, put whole at close),
 * but the kernel's page cache and size of an inode are shared by all its
 * opens on this mount: through them, a reader would get a writer's pages,
 * or stop at another version's size, and see a mix. With direct I/O each
 * read is served from the reader's own version (whole, old or new). The
 * cost: no page cache for items (reads are served from the daemon's
 * memory), and mmap(MAP_SHARED) fails with ENODEV (MAP_PRIVATE, so exec
 * and the dynamic loader, works). */
static void fs_open_set_caching(struct fuse_file_info *fi)
{
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* A read-only handle is never dirty: its close has nothing to put,
	 * so the kernel need not send a flush (one request less per read). */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	char key[INODE_KEY_MAX_BYTES + 1];
	struct fuse_entry_param entry;
	struct file_handle *handle = NULL;
	struct item_attr attr;
	struct fs_dir dir;
	bool existed = false;
	int64_t asked_at_ms = clock_monotonic_ms();
	uint64_t number;
	int rc;

	rc = fs_parent_item_dir(fs, parent, &dir);
	if (rc == 0)
		rc = fs_item_key(&dir, name, key);
	/* Stored at once, empty, so the new file is visible and renamable
	 * before its first write (editors and rsync rely on it). */
	if (rc == 0)
		rc = fs_put_new_item(req, &dir.table, key, S_IFREG | (mode & 07777), NULL, 0,
				     &attr);
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		existed = true;
		rc = 0;
	}
	if (rc == 0)
		rc = inode_ref(fs->inodes, INODE_ITEM, dir.name.table, key, &number);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	if (!existed)
		fs_note_attr(fs, number, &attr, asked_at_ms);
	if (existed)
		rc = fs_open_item(fs, number, &dir.table, key, fi->flags,
				  fuse_req_ctx(req)->pid, &handle);
	else
		rc = file_handle_new(fs->inodes, number, fi->flags, &attr, NULL, 0, 0, &handle);
	if (rc) {
		inode_forget(fs->inodes, number, 1);
		fs_reply_error(req, rc);
		return;
	}
	fs_entry_init(fs, &entry);
	entry.ino = number;
	if (!handle_find_attr(fs->inodes, number, false, &attr))
		file_handle_get_attr(handle, &attr);
	fs_stat_item(&attr, number, false, &entry.attr);
	fi->fh = (uintptr_t)handle;
	fs_open_set_caching(fi);
	if (fuse_reply_create(req, &entry, fi)) {
		/* The kernel never got it: no lookup, no open. */
		file_handle_discard(handle, fs->inodes);
		inode_forget(fs->inodes, number, 1);
	}
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct file_handle *handle = NULL;
	struct router_table table;
	struct inode_name name;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc == 0 && name.kind != INODE_ITEM)
		rc = -EISDIR;
	if (rc == 0 && name.unlinked)
		rc = -ENOENT;
	if (rc == 0)
		rc = router_get_table(fs->router, name.table, &table);
	if (rc == 0)
		rc = fs_open_item(fs, ino, &table, name.key, fi->flags, fuse_req_ctx(req)->pid,
				  &handle);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fi->fh = (uintptr_t)handle;
	/* Drop cached pages: a reader sees the version loaded now. */
	fs_open_set_caching(fi);
	/* And the cached size, which reads stop at: it may be another
	 * version's (written elsewhere, or by a writer here). The kernel then
	 * asks getattr with this handle at the first read past it. */
	if (!(fi->flags & O_TRUNC) || (fi->flags & O_ACCMODE) == O_RDONLY)
		fuse_lowlevel_notify_inval_inode(fs->session, ino, -1, 0);
	if (fuse_reply_open(req, fi))
		file_handle_discard(handle, fs->inodes);
}

static struct file_handle *fs_file_handle(const struct fuse_file_info *fi)
{
	return (struct file_handle *)(uintptr_t)fi->fh;
}

static int fs_reply_read(const void *data, size_t bytes, void *arg)
{
	return fuse_reply_buf(arg, data, bytes);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	if (off < 0) {
		fs_reply_error(req, -EINVAL);
		return;
	}
	file_handle_read(fs_file_handle(fi), (uint64_t)off, size, fs_reply_read, req);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int rc;

	(void)ino;
	/* The limit is a cluster setting that may change while mounted. */
	rc = file_handle_write(fs_file_handle(fi), off, buf, size,
			       router_item_max_bytes(fs->router));
	if (rc)
		fs_reply_error(req, rc);
	else
		fuse_reply_write(req, size);
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	(void)ino;
	fs_reply_status(req, file_handle_flush(fs_file_handle(fi), fs->router, fs->inodes,
					       fuse_req_ctx(req)->pid));
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	(void)ino;
	(void)datasync;
	fs_reply_status(req, file_handle_flush(fs_file_handle(fi), fs->router, fs->inodes, 0));
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	(void)ino;
	file_handle_release(fs_file_handle(fi), fs->router, fs->inodes);
	fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------ directories */

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dir_handle *handle = NULL;
	struct router_table table;
	struct inode_name name;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc == 0 && name.kind == INODE_ITEM)
		rc = -ENOTDIR;
	if (rc == 0 && name.unlinked)
		rc = -ENOENT;
	if (rc == 0 && name.kind == INODE_ROOT) {
		rc = dir_handle_new(fs->inodes, ino, NULL, NULL, &handle);
	} else if (rc == 0) {
		rc = router_get_table(fs->router, name.table, &table);
		if (rc == 0 && name.kind == INODE_PARTITION && !table.has_sort_key)
			rc = -ENOENT;
		if (rc == 0)
			rc = dir_handle_new(fs->inodes, ino, &table,
					    name.kind == INODE_PARTITION ? name.key : NULL,
					    &handle);
	}
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fi->fh = (uintptr_t)handle;
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi))
		dir_handle_free(handle, fs->inodes);
}

/* One readdir reply being built. */
struct fs_fill {
	fuse_req_t req;
	struct fs *fs;
	uint64_t dir_number;
	const char *table;         /* the listed table; "" for the root */
	const char *partition_key; /* the listed partition key's directory, or NULL */
	bool plus;
	char *buf;
	size_t size, used;
};

/* The entry of a partition key's directory in a table's listing. */
static void fs_fill_partition(struct fs_fill *fill, const struct dir_entry *dir_entry,
			      struct fuse_entry_param *entry, uint64_t *number, bool *counted)
{
	struct fs *fs = fill->fs;

	if (fill->plus)
		*counted = inode_ref(fs->inodes, INODE_PARTITION, fill->table, dir_entry->name,
				     number) == 0;
	else
		*number = inode_find(fs->inodes, INODE_PARTITION, fill->table, dir_entry->name);
	if (!*number)
		*number = fs_pseudo_number(fill->table, dir_entry->name);
	fs_stat_partition(&dir_entry->item->attr, *number, &entry->attr);
}

static bool fs_fill_add(const struct dir_entry *dir_entry, void *arg)
{
	struct fs_fill *fill = arg;
	struct fs *fs = fill->fs;
	struct fuse_entry_param entry;
	struct item_attr overlay;
	const struct item_attr *attr;
	char key[INODE_KEY_MAX_BYTES + 1];
	size_t room = fill->size - fill->used, bytes;
	uint64_t number = 0;
	bool counted = false;

	fs_entry_init(fs, &entry);
	switch (dir_entry->type) {
	case DIR_ENTRY_DOT:
	case DIR_ENTRY_DOTDOT:
		/* No lookup for these: the kernel does not link them. */
		entry.attr.st_ino = dir_entry->type == DIR_ENTRY_DOT ? fill->dir_number :
			INODE_ROOT_NUMBER;
		entry.attr.st_mode = S_IFDIR;
		break;
	case DIR_ENTRY_TABLE:
		if (fill->plus)
			counted = inode_ref(fs->inodes, INODE_TABLE, dir_entry->name, "",
					    &number) == 0;
		else
			number = inode_find(fs->inodes, INODE_TABLE, dir_entry->name, "");
		if (!number)
			number = fs_pseudo_number(dir_entry->name, "");
		fs_stat_table(dir_entry->table, number, &entry.attr);
		break;
	case DIR_ENTRY_ITEM:
		if (dir_entry->item->is_directory) {
			fs_fill_partition(fill, dir_entry, &entry, &number, &counted);
			break;
		}
		if (fill->partition_key)
			snprintf(key, sizeof(key), "%s/%s", fill->partition_key, dir_entry->name);
		else
			snprintf(key, sizeof(key), "%s", dir_entry->name);
		if (fill->plus)
			counted = inode_ref(fs->inodes, INODE_ITEM, fill->table, key, &number) == 0;
		else
			number = inode_find(fs->inodes, INODE_ITEM, fill->table, key);
		attr = &dir_entry->item->attr;
		if (number && handle_find_attr(fs->inodes, number, false, &overlay))
			attr = &overlay;
		if (!number)
			number = fs_pseudo_number(fill->table, key);
		fs_stat_item(attr, number, false, &entry.attr);
		break;
	}
	/* ino 0 in readdirplus: attributes without an inode reference. */
	entry.ino = counted ? number : 0;
	if (fill->plus)
		bytes = fuse_add_direntry_plus(fill->req, fill->buf + fill->used, room,
					       dir_entry->name, &entry, (off_t)dir_entry->offset);
	else
		bytes = fuse_add_direntry(fill->req, fill->buf + fill->used, room, dir_entry->name,
					  &entry.attr, (off_t)dir_entry->offset);
	if (bytes > room) {
		/* Not sent, so not looked up. */
		if (counted)
			inode_forget(fs->inodes, number, 1);
		return false;
	}
	fill->used += bytes;
	return true;
}

static void fs_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct fs_fill fill = { .req = req, .fs = fs, .dir_number = ino, .plus = plus,
				.size = size };
	struct inode_name name;
	int rc;

	if (off < 0) {
		fs_reply_error(req, -EINVAL);
		return;
	}
	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	fill.table = name.table;
	fill.partition_key = name.kind == INODE_PARTITION ? name.key : NULL;
	fill.buf = malloc(size ? size : 1);
	if (!fill.buf) {
		fs_reply_error(req, -ENOMEM);
		return;
	}
	rc = dir_handle_fill((struct dir_handle *)(uintptr_t)fi->fh, fs->router, (uint64_t)off,
			     fs_fill_add, &fill);
	/* Entries already placed are sent; the next call meets the error. */
	if (rc && fill.used == 0)
		fs_reply_error(req, rc);
	else
		fuse_reply_buf(req, fill.buf, fill.used);
	free(fill.buf);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	fs_readdir_common(req, ino, size, off, fi, false);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi)
{
	fs_readdir_common(req, ino, size, off, fi, true);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_handle_free((struct dir_handle *)(uintptr_t)fi->fh, fs_of(req)->inodes);
	fuse_reply_err(req, 0);
}

static void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			   struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	/* Tables and their listings are durable as soon as made. */
	fuse_reply_err(req, 0);
}

/* ----------------------------------------------------------------- statfs */

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct router_cluster_stats stats;
	struct statvfs st;
	size_t inodes_used;
	int rc;

	(void)ino;
	rc = router_cluster_stats(fs->router, &stats);
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = FS_BLOCK_BYTES;
	st.f_frsize = FS_BLOCK_BYTES;
	st.f_blocks = stats.capacity_bytes / FS_BLOCK_BYTES;
	st.f_bfree = (stats.free_bytes < stats.capacity_bytes ? stats.free_bytes :
		      stats.capacity_bytes) / FS_BLOCK_BYTES;
	st.f_bavail = st.f_bfree;
	inodes_used = inode_count(fs->inodes);
	st.f_files = FS_FILES_TOTAL;
	st.f_ffree = FS_FILES_TOTAL - (inodes_used < FS_FILES_TOTAL ? inodes_used : 0);
	st.f_favail = st.f_ffree;
	st.f_namemax = KEY_NAME_MAX_BYTES;
	fuse_reply_statfs(req, &st);
}

/* ----------------------------------------------------------------- xattrs */

static bool fs_xattr_is_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

/* The stored item of an inode, metadata and xattrs only. */
static int fs_get_item_meta(struct fs *fs, fuse_ino_t ino, struct router_item *item)
{
	struct router_table table;
	struct inode_name name;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc)
		return rc;
	if (name.kind != INODE_ITEM)
		return -ENOTDIR;
	if (name.unlinked)
		return -ENOENT;
	rc = router_get_table(fs->router, name.table, &table);
	if (rc)
		return rc;
	return router_get_item(fs->router, &table, name.key, true, item);
}

static int fs_update_item_xattr(struct fs *fs, fuse_ino_t ino, struct router_update *update)
{
	struct router_table table;
	struct inode_name name;
	struct item_attr attr;
	int64_t asked_at_ms;
	int rc;

	rc = inode_get_name(fs->inodes, ino, &name);
	if (rc)
		return rc;
	if (name.unlinked)
		return -ENOENT;
	rc = router_get_table(fs->router, name.table, &table);
	if (rc)
		return rc;
	update->set_ctime = true;
	update->ctime_ns = clock_realtime_ns();
	asked_at_ms = clock_monotonic_ms();
	rc = router_update_item(fs->router, &table, name.key, update, &attr);
	if (rc == 0)
		fs_note_attr(fs, ino, &attr, asked_at_ms);
	else
		inode_drop_attr(fs->inodes, ino);
	return rc;
}

static void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	struct fs *fs = fs_of(req);
	struct inode_name inode_name;
	struct router_update update = { 0 };
	struct item_xattr xattr;
	int rc;

	if (!fs_xattr_is_user(name)) {
		fs_reply_error(req, -ENOTSUP);
		return;
	}
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		fs_reply_error(req, -EINVAL);
		return;
	}
	rc = inode_get_name(fs->inodes, ino, &inode_name);
	if (rc == 0 && inode_name.kind != INODE_ITEM)
		rc = -ENOTSUP;
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	xattr.name = (char *)name;
	xattr.value = (void *)value;
	xattr.value_bytes = size;
	update.set_xattr = &xattr;
	update.set_xattr_flags = flags;
	fs_reply_status(req, fs_update_item_xattr(fs, ino, &update));
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct router_item item;
	const struct item_xattr *found = NULL;
	size_t i;
	int rc;

	/* Answered here, with no round trip: the kernel asks for
	 * security.capability before every write. */
	if (!fs_xattr_is_user(name)) {
		fs_reply_error(req, -ENODATA);
		return;
	}
	rc = fs_get_item_meta(fs, ino, &item);
	if (rc == -ENOTDIR)
		rc = -ENODATA;
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	for (i = 0; i < item.xattr_count && !found; i++) {
		if (item.xattrs[i].name && strcmp(item.xattrs[i].name, name) == 0)
			found = &item.xattrs[i];
	}
	if (!found)
		fs_reply_error(req, -ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, found->value_bytes);
	else if (size < found->value_bytes)
		fs_reply_error(req, -ERANGE);
	else
		fuse_reply_buf(req, found->value, found->value_bytes);
	router_item_free(&item);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	struct router_item item;
	size_t total = 0, used = 0, i;
	char *list;
	int rc;

	rc = fs_get_item_meta(fs, ino, &item);
	if (rc == -ENOTDIR) {
		/* Directories hold no xattrs. */
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	for (i = 0; i < item.xattr_count; i++) {
		if (item.xattrs[i].name)
			total += strlen(item.xattrs[i].name) + 1;
	}
	if (size == 0) {
		fuse_reply_xattr(req, total);
	} else if (size < total) {
		fs_reply_error(req, -ERANGE);
	} else {
		list = malloc(total ? total : 1);
		if (!list) {
			fs_reply_error(req, -ENOMEM);
		} else {
			for (i = 0; i < item.xattr_count; i++) {
				size_t bytes;

				if (!item.xattrs[i].name)
					continue;
				bytes = strlen(item.xattrs[i].name) + 1;
				memcpy(list + used, item.xattrs[i].name, bytes);
				used += bytes;
			}
			fuse_reply_buf(req, list, used);
			free(list);
		}
	}
	router_item_free(&item);
}

static void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode_name inode_name;
	struct router_update update = { 0 };
	int rc;

	if (!fs_xattr_is_user(name)) {
		fs_reply_error(req, -ENODATA);
		return;
	}
	rc = inode_get_name(fs->inodes, ino, &inode_name);
	if (rc == 0 && inode_name.kind != INODE_ITEM)
		rc = -ENODATA;
	if (rc) {
		fs_reply_error(req, rc);
		return;
	}
	update.remove_xattr = name;
	fs_reply_status(req, fs_update_item_xattr(fs, ino, &update));
}

/* ------------------------------------------------------------------ serve */

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.readlink = fs_op_readlink,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.fsyncdir = fs_op_fsyncdir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
};

/* Runs the session until unmount or a signal; the mount is in place. */
static int fs_run_loop(struct fuse_session *session, const struct fs_config *config)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int rc;

	if (!loop)
		return -ENOMEM;
	if (config->max_threads > 0) {
		fuse_loop_cfg_set_max_threads(loop, (unsigned int)config->max_threads);
		fuse_loop_cfg_set_idle_threads(loop, (unsigned int)config->max_threads);
	}
	rc = fuse_session_loop_mt(session, loop);
	fuse_loop_cfg_destroy(loop);
	if (rc < 0) {
		log_error("FUSE session ended with an error: %s", strerror(-rc));
		return rc;
	}
	if (rc > 0)
		log_info("signal %d: unmounting %s", rc, config->mountpoint);
	return 0;
}

int fs_serve(struct router *router, const struct fs_config *config, fs_mounted_fn on_mounted,
	     void *arg)
{
	struct fs fs = { 0 };
	struct handle_shutdown shutdown;
	struct fuse_session *session;
	char program[] = "quorumfs";
	char option_flag[] = "-o";
	char debug_flag[] = "-d";
	char options[128];
	char *argv[5];
	int argc = 0, rc;
	struct fuse_args args;

	fs.router = router;
	fs.uid = (uint32_t)getuid();
	fs.gid = (uint32_t)getgid();
	fs.root_mode = 0755;
	fs.root_mtime_ns = clock_realtime_ns();
	fs.root_ctime_ns = fs.root_mtime_ns;
	pthread_mutex_init(&fs.root_lock, NULL);
	fs.cache_timeout_s = config->eventual ? FS_TIMEOUT_EVENTUAL_S : FS_TIMEOUT_STRONG_S;
	fs.cache_timeout_ms = (int64_t)(fs.cache_timeout_s * 1000);
	fs.item_max_bytes = router_item_max_bytes(router);
	rc = inode_table_new(&fs.inodes);
	if (rc) {
		pthread_mutex_destroy(&fs.root_lock);
		return rc;
	}

	snprintf(options, sizeof(options), "fsname=quorumfs,subtype=quorumfs%s",
		 config->allow_other ? ",allow_other,default_permissions" : "");
	argv[argc++] = program;
	argv[argc++] = option_flag;
	argv[argc++] = options;
	if (config->debug)
		argv[argc++] = debug_flag;
	argv[argc] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);

	session = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	fs.session = session;
	if (!session) {
		log_error("cannot start a FUSE session for %s", config->mountpoint);
		rc = -EINVAL;
		goto out_inodes;
	}
	if (fuse_set_signal_handlers(session) != 0) {
		log_error("cannot install the signal handlers");
		rc = -EIO;
		goto out_session;
	}
	if (fuse_session_mount(session, config->mountpoint) != 0) {
		log_error("cannot mount %s (is it an empty directory, and /dev/fuse usable?)",
			  config->mountpoint);
		rc = -EIO;
		goto out_handlers;
	}
	log_info("mounted %s (item limit %" PRIu64 " bytes, cache %.0f s)", config->mountpoint,
		 fs.item_max_bytes, fs.cache_timeout_s);
	if (on_mounted)
		on_mounted(arg);
	rc = fs_run_loop(session, config);
	fuse_remove_signal_handlers(session);
	fuse_session_unmount(session);
	fuse_session_destroy(session);
	goto out_inodes;

out_handlers:
	fuse_remove_signal_handlers(session);
out_session:
	fuse_session_destroy(session);
out_inodes:
	fuse_opt_free_args(&args);
	shutdown.router = router;
	shutdown.inodes = fs.inodes;
	inode_table_free(fs.inodes, handle_release_link, &shutdown);
	pthread_mutex_destroy(&fs.root_lock);
	return rc;
}
