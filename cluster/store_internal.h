/* store_internal.h: what store.c (items) shares with store_group.c (the state machine of
 * replication groups over the same LevelDB). Not for other modules: they use store.h and
 * store_group.h. */
#ifndef QUORUM_STORE_INTERNAL_H
#define QUORUM_STORE_INTERNAL_H

#include "cluster/arena.h"
#include "cluster/staged_writes.h"
#include "quorum.pb-c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <leveldb/c.h>

#define STORE_STRIPE_COUNT 256

struct store {
	leveldb_t *db;
	leveldb_options_t *options;
	leveldb_readoptions_t *read_options;
	leveldb_readoptions_t *scan_options;
	leveldb_writeoptions_t *write_options;
	_Atomic uint64_t item_max_bytes;
	pthread_mutex_t stripes[STORE_STRIPE_COUNT];
	/* Held while a split or a snapshot install decides whether another group's state
	 * exists and writes it, so the two never race on one child group. */
	pthread_mutex_t groups_lock;
};

/* Committed commands of a replication group: their item changes are staged in writes,
 * which the group's apply writes (synced) together with the client sessions and the group's
 * state, so they are durable at once or not at all. A command reads the items and sessions
 * earlier commands of the same batch staged (staged_writes_get) before the store's. */
struct store_group_write {
	struct staged_writes *writes;
	uint64_t item_max_bytes;	/* the proposer's limit; 0: the store's */
};

/* store_put, store_delete and store_update, staged in gw's batch (synced at once when gw
 * is NULL). */
int store_put_at(struct store *store, const Quorum__PutItemRequest *request,
		 struct arena *arena, Quorum__ItemMeta **meta, struct store_group_write *gw);
int store_delete_at(struct store *store, const Quorum__DeleteItemRequest *request,
		    struct store_group_write *gw);
int store_update_at(struct store *store, const Quorum__UpdateItemRequest *request,
		    struct arena *arena, Quorum__ItemMeta **meta, struct store_group_write *gw);

#endif
