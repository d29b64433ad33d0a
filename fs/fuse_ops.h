/* fuse_ops.h: the mount. Serves the FUSE low-level API from the router:
 * the root lists tables, a table directory lists its items, a file is an
 * item (see DESIGN.md, "Filesystem mapping"). */
#ifndef QUORUM_FS_FUSE_OPS_H
#define QUORUM_FS_FUSE_OPS_H

#include "fs/router.h"

#include <stdbool.h>

struct fs_config {
	const char *mountpoint;
	bool debug;                /* libfuse's request trace on stderr */
	bool allow_other;          /* with default_permissions */
	bool eventual;             /* consistency=eventual: longer kernel caching */
	int max_threads;           /* FUSE worker threads */
};

/* Called once the mount is in place, before requests are served. */
typedef void (*fs_mounted_fn)(void *arg);

/* Mounts config->mountpoint, serves requests with a multi-threaded loop
 * until it is unmounted or the process gets SIGTERM, SIGINT or SIGHUP, then
 * unmounts. Returns 0, or a negative errno when the mount failed. */
int fs_serve(struct router *router, const struct fs_config *config, fs_mounted_fn on_mounted,
	     void *arg);

#endif
