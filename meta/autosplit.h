/* autosplit.h: partitions split on their own, by size and by consumption.
 *
 * A thread of meta looks at the latest reports of every partition once a second:
 * - by size: when the leader reports more than split.bytes, the partition splits at the
 *   hash that halves its bytes (the leader picks it);
 * - by consumption: when the replicas together serve more than split.rate reads and
 *   writes per second for split.window_s seconds, the partition splits at the hash that
 *   halves the accesses its hot-key samples show, so the split lands inside the hot
 *   range, not in the middle of the partition. A partition whose load is one key (one
 *   key holds most of the sampled accesses) does not split: both halves would not share
 *   that key's load.
 * After a split, or a refused one, a partition is left alone for a while: its children
 * report from scratch, and a partition that cannot split is not asked again at once. */
#ifndef QUORUM_META_AUTOSPLIT_H
#define QUORUM_META_AUTOSPLIT_H

#include "meta/catalog.h"
#include "meta/settings.h"
#include "meta/splitter.h"

struct autosplit;

/* Starts the thread; catalog, settings and splitter must outlive it. -ENOMEM. */
int autosplit_start(struct catalog *catalog, struct settings *settings,
		    struct splitter *splitter, struct autosplit **out);
void autosplit_stop(struct autosplit *autosplit);

#endif
