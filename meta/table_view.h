/* table_view.h: what meta's background work reads off a described table (TableResponse):
 * a node's address, and which replica leads a partition, from the nodes' latest reports. */
#ifndef QUORUM_META_TABLE_VIEW_H
#define QUORUM_META_TABLE_VIEW_H

#include "quorum.pb-c.h"

#include <stdint.h>

/* The address of node_id among the table's nodes, or NULL. */
const char *table_view_address(const Quorum__TableResponse *t, uint64_t node_id);

/* The replica whose last report says it leads partition_id with the highest ballot, or 0. */
uint64_t table_view_leader(const Quorum__TableResponse *t, uint64_t partition_id);

#endif
