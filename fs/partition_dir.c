/* partition_dir.c: directories of partition keys (see partition_dir.h).
 *
 * The marker is an ordinary item to the store, so every change to it is
 * one atomic item operation: create is a put that must find no marker,
 * update an in-place update (or, with no marker yet, a put that must find
 * none, retried as an update if another router made one meanwhile). */
#include "fs/partition_dir.h"

#include "cluster/clock.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

/* Attempts of an update that races with other routers creating the
 * marker: the second attempt finds it, so two suffice. */
#define PARTITION_DIR_UPDATE_ATTEMPTS 2

static void partition_dir_marker_key(const char *partition_key, struct router_key *key)
{
	key->partition_key = partition_key;
	key->sort_key = "";
}

int partition_dir_get_attr(struct router *router, const struct router_table *table,
			   const char *partition_key, struct item_attr *out)
{
	struct router_item marker;
	struct router_key key;
	bool has_items;
	int err;

	partition_dir_marker_key(partition_key, &key);
	err = router_get_item_at(router, table, &key, true, &marker);
	if (err == 0) {
		*out = marker.attr;
		out->mode = S_IFDIR | (out->mode & 07777);
		router_item_free(&marker);
		return 0;
	}
	if (err != -ENOENT)
		return err;
	err = router_partition_has_items(router, table, partition_key, &has_items);
	if (err < 0)
		return err;
	if (!has_items)
		return -ENOENT;
	router_partition_default_attr(table, out);
	return 0;
}

int partition_dir_create(struct router *router, const struct router_table *table,
			 const char *partition_key, uint32_t mode, uint32_t uid, uint32_t gid,
			 struct item_attr *out)
{
	struct router_key key;
	struct item_attr attr = { 0 };
	int err;

	partition_dir_marker_key(partition_key, &key);
	attr.mode = S_IFDIR | (mode & 07777);
	attr.uid = uid;
	attr.gid = gid;
	attr.mtime_ns = clock_realtime_ns();
	attr.ctime_ns = attr.mtime_ns;
	*out = attr;
	err = router_put_item_at(router, table, &key, &attr, NULL, 0, NULL, 0,
				 ROUTER_COND_ABSENT, 0, out);
	if (err == 0)
		out->mode = S_IFDIR | (out->mode & 07777);
	return err;
}

int partition_dir_remove(struct router *router, const struct router_table *table,
			 const char *partition_key)
{
	struct router_key key;
	bool has_items;
	int err;

	err = router_partition_has_items(router, table, partition_key, &has_items);
	if (err < 0)
		return err;
	if (has_items)
		return -ENOTEMPTY;
	partition_dir_marker_key(partition_key, &key);
	return router_delete_item_at(router, table, &key);
}

/* A new marker for a P without one: the defaults with update applied. */
static int partition_dir_put_changed(struct router *router, const struct router_table *table,
				     const struct router_key *key,
				     const struct router_update *update, struct item_attr *out)
{
	struct item_attr attr;

	router_partition_default_attr(table, &attr);
	if (update->set_mode)
		attr.mode = S_IFDIR | (update->mode & 07777);
	if (update->set_uid)
		attr.uid = update->uid;
	if (update->set_gid)
		attr.gid = update->gid;
	if (update->set_mtime)
		attr.mtime_ns = update->mtime_ns;
	attr.ctime_ns = update->set_ctime ? update->ctime_ns : clock_realtime_ns();
	return router_put_item_at(router, table, key, &attr, NULL, 0, NULL, 0,
				  ROUTER_COND_ABSENT, 0, out);
}

int partition_dir_update(struct router *router, const struct router_table *table,
			 const char *partition_key, const struct router_update *update,
			 struct item_attr *out)
{
	struct item_attr result;
	struct router_key key;
	bool has_items;
	int err = -ENOENT;

	if (update->set_size || update->set_xattr || update->remove_xattr)
		return -EINVAL;
	partition_dir_marker_key(partition_key, &key);
	for (int attempt = 0; attempt < PARTITION_DIR_UPDATE_ATTEMPTS; attempt++) {
		err = router_update_item_at(router, table, &key, update, &result);
		if (err != -ENOENT)
			break;
		err = router_partition_has_items(router, table, partition_key, &has_items);
		if (err < 0)
			break;
		if (!has_items) {
			err = -ENOENT;
			break;
		}
		err = partition_dir_put_changed(router, table, &key, update, &result);
		/* -EEXIST: another router made the marker meanwhile; update it. */
		if (err != -EEXIST)
			break;
	}
	if (err == 0 && out) {
		*out = result;
		out->mode = S_IFDIR | (out->mode & 07777);
	}
	return err;
}
