/* settings_watch.h: keeps a router's copy of the cluster settings fresh.
 *
 * An operator changes a setting at run time (`quorumctl config set`); the
 * router must follow within seconds, without a request ever waiting for
 * it. A thread asks the metadata service for the cluster info every
 * refresh_ms and keeps what it says; while meta does not answer, the last
 * value stays (a router serves on through a meta outage). Only the item
 * size limit (item.max_bytes) concerns the router today.
 *
 * Thread-safe: the value is read with one atomic load. */
#ifndef QUORUM_FS_SETTINGS_WATCH_H
#define QUORUM_FS_SETTINGS_WATCH_H

#include "cluster/meta_client.h"

#include <stdint.h>

#define SETTINGS_WATCH_REFRESH_MS 2000

struct settings_watch;

/* Starts watching meta (which must outlive the watch), from
 * item_max_bytes as known now. -ENOMEM, -EAGAIN (no thread). */
int settings_watch_start(struct meta_client *meta, uint64_t item_max_bytes, int64_t refresh_ms,
			 struct settings_watch **out);
/* Stops the thread (at once, even in the middle of a call) and frees. */
void settings_watch_stop(struct settings_watch *watch);

uint64_t settings_watch_item_max_bytes(const struct settings_watch *watch);

#endif
