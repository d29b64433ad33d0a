/* census.h: counts the items and bytes of the partitions a storage node
 * hosts, a bounded number of items at a time, for the heartbeat's load
 * figures (load.h).
 *
 * A pass over one group pages through its hash range with store_scan and
 * sums, per item, its partition key, sort key and body bytes (xattrs are
 * not counted); when the range is done the pass's totals become the
 * group's figures (load_set_census). Groups are visited in turn, so every
 * group's figures are at most one round of passes old: with the default
 * budget of a step per heartbeat, a node of a few hundred thousand items
 * refreshes them every few seconds. The counts are exact for a quiet
 * partition and off by the writes made during a pass for a busy one.
 *
 * A census is used by one thread at a time (the node's meta thread). */
#ifndef QUORUM_CENSUS_H
#define QUORUM_CENSUS_H

#include "cluster/load.h"
#include "cluster/store.h"

#include <stddef.h>
#include <stdint.h>

struct census;

/* store must outlive the census. -ENOMEM. */
int census_new(struct store *store, struct census **out);
void census_free(struct census *census);

/* Goes on with the passes over load's tracked groups for at most
 * items_max items (in pages of up to STORE_SCAN_LIMIT_MAX), visiting each
 * group at most once per step. Returns 0, or the first error of the store
 * (the failed pass is dropped and the next group is taken the next time;
 * the error is logged once per group). */
int census_step(struct census *census, struct load *load, size_t items_max, int64_t now_ms);

#endif
