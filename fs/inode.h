/* inode.h: the inode table of the mount. Maps FUSE inode numbers to what
 * they name (the root, a table, an item of a table, or in a table with a
 * sort key the directory of a partition key) and back, and keeps the
 * kernel's lookup count of each inode plus the handles open on it.
 *
 * An item of a table with a sort key is named by the key "P/S" (partition
 * key, '/', sort key): neither holds '/', so the name is unique, and it is
 * the string form of the key that router.h's item functions take.
 *
 * Life cycle (as in libfuse's passthrough_ll): every reply that hands an
 * inode to the kernel (lookup, readdirplus entry, create, mkdir, symlink,
 * mknod) counts one lookup; forget subtracts. An inode is freed when its
 * lookup count is 0 and no handle is attached. Inode numbers grow and are
 * never reused within a mount, so a stale number can never name another
 * file. The root (FUSE_ROOT_ID) lives as long as the table.
 *
 * An inode removed by unlink, rmdir or by a rename onto its name is
 * "unlinked": it leaves the name index (a new file of that name gets a new
 * inode) but lives on until forgotten and closed.
 *
 * All functions are thread-safe (one mutex). Handle callbacks of
 * inode_visit_handles run under that mutex and must not call back into
 * the table. */
#ifndef QUORUM_FS_INODE_H
#define QUORUM_FS_INODE_H

#include "cluster/keys.h"
#include "fs/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INODE_ROOT_NUMBER 1
/* The longest key: "P/S" of an item in a table with a sort key. */
#define INODE_KEY_MAX_BYTES (2 * KEY_NAME_MAX_BYTES + 1)

enum inode_kind {
	INODE_ROOT,
	INODE_TABLE,
	INODE_ITEM,
	INODE_PARTITION,           /* T/P: a partition key of a table with a sort key */
};

/* A handle attached to an inode, embedded in the handle's own struct; the
 * inode table only links it (it never allocates or frees one). */
struct inode_link {
	struct inode_link *next;
	bool is_directory;         /* a directory handle, not an open file */
};

/* What an inode names, copied out under the lock. */
struct inode_name {
	enum inode_kind kind;
	bool unlinked;
	char table[KEY_NAME_MAX_BYTES + 1];  /* "" for the root */
	/* "" for the root and tables; an item's key ("P/S" with a sort key);
	 * the partition key P of an INODE_PARTITION */
	char key[INODE_KEY_MAX_BYTES + 1];
};

struct inode_table;

int inode_table_new(struct inode_table **out);
/* Frees every inode. First release_link (may be NULL) is called, without
 * the lock held, for each handle still attached; it must detach the handle
 * (inode_detach_handle) and may use the table meanwhile. */
void inode_table_free(struct inode_table *inodes,
		      void (*release_link)(struct inode_link *link, void *arg), void *arg);

/* Finds or creates the inode of (kind, table, key) and counts one lookup.
 * key is ignored for tables; the root is always INODE_ROOT_NUMBER. */
int inode_ref(struct inode_table *inodes, enum inode_kind kind, const char *table,
	      const char *key, uint64_t *number);
/* The number of a live inode of that name, or 0; counts nothing. */
uint64_t inode_find(struct inode_table *inodes, enum inode_kind kind, const char *table,
		    const char *key);
/* Subtracts count lookups; frees the inode when nothing holds it. */
void inode_forget(struct inode_table *inodes, uint64_t number, uint64_t count);

/* -ENOENT when the number is unknown (a kernel that forgot it). */
int inode_get_name(struct inode_table *inodes, uint64_t number, struct inode_name *out);

/* The inode that names (kind, table, key), if any, becomes unlinked. */
void inode_mark_unlinked(struct inode_table *inodes, enum inode_kind kind, const char *table,
			 const char *key);
/* Item from becomes item to inside one table ("P/S" keys may change their
 * partition key); an inode that named to becomes unlinked. */
int inode_rename(struct inode_table *inodes, const char *table, const char *from,
		 const char *to);

/* Attaches a handle to a live inode (-ENOENT when unknown). */
int inode_attach_handle(struct inode_table *inodes, uint64_t number, struct inode_link *link);
/* Detaches it; frees the inode when nothing else holds it. */
void inode_detach_handle(struct inode_table *inodes, uint64_t number, struct inode_link *link);
/* Calls visit for every open-file handle (not directory handles) of the
 * inode, under the table's lock. */
void inode_visit_handles(struct inode_table *inodes, uint64_t number,
			 void (*visit)(struct inode_link *link, void *arg), void *arg);

/* What the mount last learned of an item's metadata from the cluster: the
 * answer to a get, or the reply to a write made through this mount, with
 * asked_at_ms, the monotonic time its request was sent (so the answer was
 * true at that time or later). One per live item inode, freed with it:
 * the cache is bounded by the inode table. fuse_ops.c answers lookup and
 * getattr from it while it is younger than the mount's attribute timeout
 * (README, "FUSE settings and why"). An answer replaces the one held when
 * it has a higher version, the same version and a later asked_at_ms, or
 * when the one held is older than max_age_ms (an item deleted and made
 * again elsewhere starts a lower version). Renames and unlinks drop it. */
void inode_note_attr(struct inode_table *inodes, uint64_t number, const struct item_attr *attr,
		     int64_t asked_at_ms, int64_t max_age_ms);
/* Forgets it: a write of ours failed, and may or may not have landed. */
void inode_drop_attr(struct inode_table *inodes, uint64_t number);
/* The metadata held for the inode if younger than max_age_ms at now_ms
 * (*age_ms receives its age); false when there is none or it is older. */
bool inode_fresh_attr(struct inode_table *inodes, uint64_t number, int64_t now_ms,
		      int64_t max_age_ms, struct item_attr *attr, int64_t *age_ms);
/* inode_ref of an item, only when its inode holds metadata younger than
 * max_age_ms (copied to *attr, its age to *age_ms): a lookup answered with
 * no request to the cluster. False (nothing counted) otherwise. */
bool inode_ref_fresh(struct inode_table *inodes, const char *table, const char *key,
		     int64_t now_ms, int64_t max_age_ms, struct item_attr *attr, int64_t *age_ms,
		     uint64_t *number);

/* How many inodes exist (the root included), for statistics and tests. */
size_t inode_count(struct inode_table *inodes);

#endif
