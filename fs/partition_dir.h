/* partition_dir.h: the directories of a table with a sort key.
 *
 * On the mount, a table T with a sort key shows each of its partition keys
 * P as a directory T/P whose files are the items (P, S), named by sort key.
 * T/P exists while P has items or a directory marker: the item (P, "") of
 * mode S_IFDIR (router.h, struct router_key) that mkdir T/P stores so that
 * cp -r and rsync can make the directory before its files. The marker
 * keeps the directory's mode, owner and times; without one, T/P shows the
 * table's (router_partition_default_attr). rmdir removes the marker once P
 * holds no item.
 *
 * These functions keep that rule on top of router.h. They are thread-safe
 * and return 0 or a negative errno. */
#ifndef QUORUM_FS_PARTITION_DIR_H
#define QUORUM_FS_PARTITION_DIR_H

#include "fs/router.h"

#include <stdint.h>

/* The attributes of T/P (S_IFDIR). -ENOENT when P has neither a marker
 * nor an item. */
int partition_dir_get_attr(struct router *router, const struct router_table *table,
			   const char *partition_key, struct item_attr *out);

/* mkdir T/P: stores P's marker with the permission bits of mode, owner
 * uid:gid and the time of now. -EEXIST when P has a marker already. */
int partition_dir_create(struct router *router, const struct router_table *table,
			 const char *partition_key, uint32_t mode, uint32_t uid, uint32_t gid,
			 struct item_attr *out);

/* rmdir T/P: removes P's marker. -ENOTEMPTY while P holds an item,
 * -ENOENT when it has no marker (and no item). A file created in T/P while
 * rmdir runs keeps P listed: P exists while it has items. */
int partition_dir_remove(struct router *router, const struct router_table *table,
			 const char *partition_key);

/* chmod, chown, utimens of T/P: mode, uid, gid, mtime and ctime of update
 * (no size, no xattrs: -EINVAL) change P's marker; a P that has items but
 * no marker gets one, from the defaults with the change applied. -ENOENT
 * when P has neither. *out (may be NULL) receives the new attributes. */
int partition_dir_update(struct router *router, const struct router_table *table,
			 const char *partition_key, const struct router_update *update,
			 struct item_attr *out);

#endif
