/* splitter.h: partition splits, from meta's side.
 *
 * A split is decided by the group, through its log (cluster/store_group.h): meta reserves
 * the child's partition id, asks the partition's leader to split (SplitPartitionRequest;
 * the leader picks the hash that halves the partition's bytes unless told), and adopts the
 * outcome into its map (catalog_adopt_split): the parent's range shrinks, the child is a
 * new partition on the same replicas, both with the next epoch. The same adoption follows
 * every node's heartbeat reports, so a split whose answer was lost, or that meta did not
 * ask for, reaches the map all the same. Asking again with the same child id is safe: the
 * group answers that it is done. */
#ifndef QUORUM_META_SPLITTER_H
#define QUORUM_META_SPLITTER_H

#include "meta/catalog.h"
#include "quorum.pb-c.h"

#include <stddef.h>
#include <stdint.h>

struct splitter;

int splitter_new(struct catalog *catalog, struct splitter **out);
void splitter_free(struct splitter *splitter);

/* Splits request->partition_id (or, without it, every partition) of table request->name
 * now, until deadline_ms. Returns 0 when every split asked for is done and in the map; a
 * negative errno with why (CATALOG_WHY_BYTES) filled otherwise: -ENOENT (no such table or
 * partition), -ERANGE (a partition of one hash cannot split), -ETIMEDOUT (no leader
 * answered in time), -EIO, -ENOMEM. */
int splitter_split_table(struct splitter *splitter, const Quorum__SplitTableRequest *request,
			 int64_t deadline_ms, char *why);

/* Adopts the splits a node's group reports show (see catalog_adopt_split). */
void splitter_adopt_reports(struct catalog *catalog, Quorum__GroupReport *const *reports,
			    size_t count);

#endif
