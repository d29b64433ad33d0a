/* mover.h: replica moves, from meta's side: rebalancing onto new nodes, and drains.
 *
 * A move replaces one replica of a partition by another, through the group's log, never
 * leaving the group with fewer than three replicas that hold its state:
 * 1. meta records the replica set the partition moves to (catalog_begin_move); from then
 *    on the old and the new replicas are assigned, the new one joining: it opens without
 *    state and takes part only once the leader sent it a snapshot;
 * 2. once a round, meta asks the group's leader to step towards the target
 *    (ChangeMembersRequest): the leader adds the new member to the configuration, and
 *    removes the old one only when every wanted member has caught up
 *    (group_change_members);
 * 3. when the group's members are the target, meta makes them the partition's replicas
 *    (catalog_finish_move); the old replica is retired at its next heartbeat and removes
 *    its copy.
 * Every step is idempotent, so a meta that restarts in the middle simply asks again.
 *
 * New moves start one per round, at most MOVER_MOVES_MAX under way in the cluster: drains
 * first, then balance, as move_plan.h decides. Partitions that move do not split (autosplit
 * waits), so a move and a split never race. */
#ifndef QUORUM_META_MOVER_H
#define QUORUM_META_MOVER_H

#include "meta/catalog.h"

#define MOVER_MOVES_MAX 2

struct mover;

/* Starts the thread; catalog must outlive it. -ENOMEM. */
int mover_start(struct catalog *catalog, struct mover **out);
void mover_stop(struct mover *mover);

#endif
