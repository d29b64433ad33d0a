/* catalog_sm.h: the state machine (cluster/group.h) of replicated quorum-meta: the catalog's
 * LevelDB (meta/catalog.h), records of settings included.
 *
 * The leader turns every change of the catalog (the write batch catalog.c and settings.c
 * build) into a command: a CatalogBatch (quorum.proto) of puts and deletes, in the batch's
 * order. Every instance applies the committed commands of one apply call in ONE synced
 * LevelDB write batch together with the group state record
 *	CATALOG_GROUP_STATE_KEY ("g") -> CatalogGroupState: applied slot, member list
 * so after a crash the catalog holds exactly the slots up to its applied slot (the group
 * skips those and applies the rest). A CONFIG entry changes the member list, a NOOP only
 * the slot. A command that does not decode, or that names the state record, changes
 * nothing but the slot and has status -EINVAL. A batch without operations is a barrier: a
 * new leader proposes one, and once it is applied every slot an earlier leader committed is
 * in the catalog.
 *
 * Snapshot: a CatalogBatch with a put of every record but the state record. Installing one
 * deletes every record, puts the snapshot's and the new state record, in one synced batch.
 * The catalog is small (tables, nodes, counters, settings), so one message holds it all.
 *
 * Nothing here reads a clock or the catalog's memory: the meta process reloads its memory
 * from LevelDB when it starts to lead (meta/meta_group.h). Not thread-safe: the group's
 * thread is the only caller, and the only writer of the LevelDB while the group runs. */
#ifndef QUORUM_META_CATALOG_SM_H
#define QUORUM_META_CATALOG_SM_H

#include "cluster/group.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATALOG_SM_VERSION 1

struct catalog_sm;
struct leveldb_t;
struct leveldb_writebatch_t;

/* A state machine over db, which must outlive it. -ENOMEM. */
int catalog_sm_new(struct leveldb_t *db, struct catalog_sm **out);
void catalog_sm_free(struct catalog_sm *sm);

/* Fills out with the callbacks of sm, for group_open. */
void catalog_sm_bind(struct catalog_sm *sm, struct group_sm *out);

/* The command of batch (a CatalogBatch, malloc'd in *out, the caller frees). A NULL batch is
 * a barrier. -ENOMEM, -EMSGSIZE (larger than a log entry may be). */
int catalog_sm_encode(const struct leveldb_writebatch_t *batch, uint8_t **out,
		      size_t *size_bytes);

/* The applied slot and members stored in db (0 and none when it never applied anything).
 * -EIO, -EBADMSG. */
int catalog_sm_read_state(struct leveldb_t *db, uint64_t *applied_slot, uint32_t *members,
			  size_t *member_count);

/* Whether db holds catalog records but no group state: a catalog written by a meta that ran
 * alone, which the group cannot know about. -EIO when db cannot be read. */
int catalog_sm_has_unreplicated_records(struct leveldb_t *db, bool *found);

#endif
