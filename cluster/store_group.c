/* store_group.c: the state machine of a replication group over the store; see
 * store_group.h for the contract.
 *
 * One thread applies a group's entries, so the state record read at the start of an apply
 * call stays the group's own until it returns; other groups of the same store touch other
 * keys, except at a split (the child's record) and a snapshot install (the records of
 * children it names), which hold store->groups_lock while they decide and write. */
#include "cluster/store_group.h"

#include "cluster/crc32c.h"
#include "cluster/keys.h"
#include "cluster/log.h"
#include "cluster/session.h"
#include "cluster/store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_KEY_BYTES 17

/* ------------------------------------------------------------ the record */

static void group_key(uint8_t out[GROUP_KEY_BYTES], uint64_t table_id, uint64_t partition_id)
{
	out[0] = 'g';
	key_put_u64(out + 1, table_id);
	key_put_u64(out + 9, partition_id);
}

static void le_put(uint8_t *out, uint64_t value, int bytes)
{
	for (int i = 0; i < bytes; i++)
		out[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t le_get(const uint8_t *in, int bytes)
{
	uint64_t value = 0;

	for (int i = 0; i < bytes; i++)
		value |= (uint64_t)in[i] << (8 * i);
	return value;
}

static int state_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
			Quorum__GroupState **out)
{
	Quorum__GroupState *state;

	if (!crc32c_frame_check(value, value_bytes))
		return -EBADMSG;
	state = quorum__group_state__unpack(arena_protobuf_allocator(arena),
					    value_bytes - CRC32C_FRAME_BYTES,
					    value + CRC32C_FRAME_BYTES);
	if (!state || state->n_members > PAXOS_MEMBERS_MAX || state->hash_first > state->hash_last ||
	    state->n_children > STORE_GROUP_CHILDREN_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < state->n_children; i++) {
		const Quorum__SplitChild *c = state->children[i];

		/* A child lies after its parent's range and is never empty. */
		if (c->hash_first > c->hash_last || c->hash_first <= state->hash_last)
			return -EBADMSG;
	}
	*out = state;
	return 0;
}

/* Decodes a record's value into arena; -EBADMSG when damaged. */
typedef int (*record_decode_fn)(const uint8_t *value, size_t value_bytes, struct arena *arena,
				void *out);

/* Reads the record at key and decodes it into *out (a pointer), NULL when absent. -EIO
 * (logged as a failure of group table_id/partition_id reading what) when LevelDB fails or
 * the record is damaged. */
static int record_read(struct store *store, const uint8_t *key, size_t key_bytes,
		       record_decode_fn decode, struct arena *arena, void *out,
		       uint64_t table_id, uint64_t partition_id, const char *what)
{
	char *error = NULL;
	size_t value_bytes = 0;
	char *value;
	int err;

	*(void **)out = NULL;
	value = leveldb_get(store->db, store->read_options, (const char *)key, key_bytes,
			    &value_bytes, &error);
	if (error) {
		log_error("group %" PRIu64 "/%" PRIu64 ": reading %s failed: %s", table_id,
			  partition_id, what, error);
		leveldb_free(error);
		leveldb_free(value);
		return -EIO;
	}
	if (!value)
		return 0;
	err = decode((const uint8_t *)value, value_bytes, arena, out);
	leveldb_free(value);
	if (err == -EBADMSG) {
		log_error("group %" PRIu64 "/%" PRIu64 ": %s is damaged", table_id, partition_id,
			  what);
		err = -EIO;
	}
	return err;
}

static int state_decode_record(const uint8_t *value, size_t value_bytes, struct arena *arena,
			       void *out)
{
	return state_decode(value, value_bytes, arena, out);
}

int store_group_state_read(struct store *store, uint64_t table_id, uint64_t partition_id,
			   struct arena *arena, Quorum__GroupState **out)
{
	uint8_t key[GROUP_KEY_BYTES];

	group_key(key, table_id, partition_id);
	return record_read(store, key, sizeof(key), state_decode_record, arena, out, table_id,
			   partition_id, "its state record");
}

/* The packed record of state (malloc'd). */
static int state_encode(const Quorum__GroupState *state, uint8_t **value, size_t *value_bytes)
{
	size_t packed_bytes = quorum__group_state__get_packed_size(state);
	uint8_t *out = malloc(CRC32C_FRAME_BYTES + packed_bytes);

	if (!out)
		return -ENOMEM;
	quorum__group_state__pack(state, out + CRC32C_FRAME_BYTES);
	crc32c_frame_seal(out, packed_bytes);
	*value = out;
	*value_bytes = CRC32C_FRAME_BYTES + packed_bytes;
	return 0;
}

static int state_stage(leveldb_writebatch_t *batch, uint64_t table_id, uint64_t partition_id,
		       const Quorum__GroupState *state)
{
	uint8_t key[GROUP_KEY_BYTES];
	uint8_t *value;
	size_t value_bytes;
	int err = state_encode(state, &value, &value_bytes);

	if (err < 0)
		return err;
	group_key(key, table_id, partition_id);
	leveldb_writebatch_put(batch, (const char *)key, sizeof(key), (const char *)value,
			       value_bytes);
	free(value);
	return 0;
}

int store_group_exists(struct store *store, uint64_t table_id, uint64_t partition_id,
		       bool *exists)
{
	struct arena *arena = arena_new();
	Quorum__GroupState *state;
	int err;

	if (!arena)
		return -ENOMEM;
	err = store_group_state_read(store, table_id, partition_id, arena, &state);
	*exists = err == 0 && state;
	arena_free(arena);
	return err;
}

/* ------------------------------------------------------------ the route */

int store_group_init(struct store_group *group, struct store *store, uint64_t table_id,
		     uint64_t partition_id, uint64_t hash_first, uint64_t hash_last,
		     uint64_t epoch)
{
	memset(group, 0, sizeof(*group));
	if (staged_writes_init(&group->pending) < 0)
		return -ENOMEM;
	if (pthread_mutex_init(&group->lock, NULL) != 0) {
		staged_writes_destroy(&group->pending);
		return -ENOMEM;
	}
	group->store = store;
	group->table_id = table_id;
	group->partition_id = partition_id;
	group->route.hash_first = hash_first;
	group->route.hash_last = hash_last;
	group->route.epoch = epoch;
	return 0;
}

void store_group_destroy(struct store_group *group)
{
	pthread_mutex_destroy(&group->lock);
	staged_writes_destroy(&group->pending);
}

void store_group_route(struct store_group *group, struct store_group_route *out)
{
	pthread_mutex_lock(&group->lock);
	*out = group->route;
	pthread_mutex_unlock(&group->lock);
}

/* The route becomes the stored state's. */
static void route_follow(struct store_group *group, const Quorum__GroupState *state)
{
	pthread_mutex_lock(&group->lock);
	group->route.hash_first = state->hash_first;
	group->route.hash_last = state->hash_last;
	group->route.epoch = state->epoch;
	group->route.child_count = state->n_children;
	for (size_t i = 0; i < state->n_children; i++) {
		group->route.children[i].partition_id = state->children[i]->partition_id;
		group->route.children[i].hash_first = state->children[i]->hash_first;
		group->route.children[i].hash_last = state->children[i]->hash_last;
		group->route.children[i].epoch = state->children[i]->epoch;
	}
	pthread_mutex_unlock(&group->lock);
}

/* The stored state, or a new one (slot 0, no members) on the assigned route. */
static int state_load(struct store_group *group, struct arena *arena, Quorum__GroupState **out)
{
	Quorum__GroupState *state;
	struct store_group_route route;
	int err;

	err = store_group_state_read(group->store, group->table_id, group->partition_id, arena,
				     out);
	if (err < 0 || *out)
		return err;
	state = arena_alloc(arena, sizeof(*state));
	if (!state)
		return -ENOMEM;
	quorum__group_state__init(state);
	store_group_route(group, &route);
	state->hash_first = route.hash_first;
	state->hash_last = route.hash_last;
	state->epoch = route.epoch;
	*out = state;
	return 0;
}

/* ------------------------------------------------------------ key ranges */

/* Calls fn for every key from start on while in_range says it is the group's, in order. */
static int group_range(struct store_group *group, const uint8_t *start, size_t start_bytes,
		       bool (*in_range)(const void *bounds, const uint8_t *key, size_t key_bytes),
		       const void *bounds,
		       int (*fn)(void *ctx, const uint8_t *key, size_t key_bytes,
				 const uint8_t *value, size_t value_bytes),
		       void *ctx)
{
	leveldb_iterator_t *it;
	char *error = NULL;
	int err = 0;

	it = leveldb_create_iterator(group->store->db, group->store->scan_options);
	if (!it)
		return -ENOMEM;
	for (leveldb_iter_seek(it, (const char *)start, start_bytes);
	     err == 0 && leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t key_bytes, value_bytes;
		const uint8_t *key = (const uint8_t *)leveldb_iter_key(it, &key_bytes);
		const uint8_t *value = (const uint8_t *)leveldb_iter_value(it, &value_bytes);

		if (!in_range(bounds, key, key_bytes))
			break;
		err = fn(ctx, key, key_bytes, value, value_bytes);
	}
	leveldb_iter_get_error(it, &error);
	leveldb_iter_destroy(it);
	if (error) {
		log_error("group %" PRIu64 "/%" PRIu64 ": reading its state failed: %s",
			  group->table_id, group->partition_id, error);
		leveldb_free(error);
		return -EIO;
	}
	return err;
}

/* Item keys of one table in a hash range. */
struct item_bounds {
	uint64_t table_id, hash_first, hash_last;
};

static bool item_in_bounds(const void *bounds, const uint8_t *key, size_t key_bytes)
{
	const struct item_bounds *b = bounds;

	return key_bytes >= 17 && key[0] == KEY_STORAGE_PREFIX &&
	       key_get_u64(key + 1) == b->table_id && key_get_u64(key + 9) >= b->hash_first &&
	       key_get_u64(key + 9) <= b->hash_last;
}

static int group_items(struct store_group *group, uint64_t hash_first, uint64_t hash_last,
		       int (*fn)(void *ctx, const uint8_t *key, size_t key_bytes,
				 const uint8_t *value, size_t value_bytes),
		       void *ctx)
{
	struct item_bounds bounds = { group->table_id, hash_first, hash_last };
	uint8_t start[17];

	key_encode_hash_start(start, group->table_id, hash_first);
	return group_range(group, start, sizeof(start), item_in_bounds, &bounds, fn, ctx);
}

/* Session keys of one group. */
struct session_bounds {
	uint64_t table_id, partition_id;
};

static bool session_in_bounds(const void *bounds, const uint8_t *key, size_t key_bytes)
{
	const struct session_bounds *b = bounds;

	return key_bytes == SESSION_KEY_BYTES && key[0] == SESSION_KEY_PREFIX &&
	       key_get_u64(key + 1) == b->table_id && key_get_u64(key + 9) == b->partition_id;
}

static int group_sessions(struct store_group *group, uint64_t partition_id,
			  int (*fn)(void *ctx, const uint8_t *key, size_t key_bytes,
				    const uint8_t *value, size_t value_bytes),
			  void *ctx)
{
	struct session_bounds bounds = { group->table_id, partition_id };
	uint8_t start[SESSION_KEY_BYTES];

	session_key(start, group->table_id, partition_id, 0);
	return group_range(group, start, sizeof(start), session_in_bounds, &bounds, fn, ctx);
}

static int stage_delete(void *ctx, const uint8_t *key, size_t key_bytes, const uint8_t *value,
			size_t value_bytes)
{
	(void)value;
	(void)value_bytes;
	leveldb_writebatch_delete(ctx, (const char *)key, key_bytes);
	return 0;
}

/* Deletes what fn lists in synced batches of REMOVE_BATCH_KEYS keys. */
#define REMOVE_BATCH_KEYS 1000

struct remover {
	struct store *store;
	leveldb_writebatch_t *batch;
	size_t staged;
	int err;
};

static int remover_flush(struct remover *rm)
{
	char *error = NULL;

	if (rm->staged == 0)
		return 0;
	leveldb_write(rm->store->db, rm->store->write_options, rm->batch, &error);
	leveldb_writebatch_clear(rm->batch);
	rm->staged = 0;
	if (error) {
		log_error("removing a group's data failed: %s", error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

static int remove_key(void *ctx, const uint8_t *key, size_t key_bytes, const uint8_t *value,
		      size_t value_bytes)
{
	struct remover *rm = ctx;

	(void)value;
	(void)value_bytes;
	leveldb_writebatch_delete(rm->batch, (const char *)key, key_bytes);
	/* Deleting behind an iterator is safe: it reads a snapshot of the store. */
	return ++rm->staged >= REMOVE_BATCH_KEYS ? remover_flush(rm) : 0;
}

int store_group_remove(struct store *store, uint64_t table_id, uint64_t partition_id,
		       uint64_t hash_first, uint64_t hash_last)
{
	struct store_group group = { .store = store, .table_id = table_id,
				     .partition_id = partition_id };
	struct remover rm = { .store = store };
	uint8_t key[GROUP_KEY_BYTES];
	int err;

	rm.batch = leveldb_writebatch_create();
	if (!rm.batch)
		return -ENOMEM;
	err = group_items(&group, hash_first, hash_last, remove_key, &rm);
	if (!err)
		err = group_sessions(&group, partition_id, remove_key, &rm);
	if (!err) {
		group_key(key, table_id, partition_id);
		leveldb_writebatch_delete(rm.batch, (const char *)key, sizeof(key));
		rm.staged++;
		err = remover_flush(&rm);
	}
	leveldb_writebatch_destroy(rm.batch);
	return err;
}

/* ------------------------------------------------------------ sessions */

static int session_decode_record(const uint8_t *value, size_t value_bytes,
				 struct arena *arena, void *out)
{
	return session_decode(value, value_bytes, arena, out);
}

/* The client session of id in the group (NULL: none yet), as gw staged it or else as
 * stored. -EIO when unreadable. */
static int session_read(struct store_group *group, const Quorum__RequestId *id,
			const struct store_group_write *gw, struct arena *arena,
			Quorum__ClientSession **out)
{
	uint8_t key[SESSION_KEY_BYTES];
	const uint8_t *staged;
	size_t staged_bytes;

	session_key(key, group->table_id, group->partition_id, id->client_id);
	if (staged_writes_get(gw->writes, key, sizeof(key), &staged, &staged_bytes)) {
		*out = NULL;
		/* Staged by this apply from a decoded session: damage here is a bug. */
		return staged ? session_decode(staged, staged_bytes, arena, out) : 0;
	}
	return record_read(group->store, key, sizeof(key), session_decode_record, arena, out,
			   group->table_id, group->partition_id, "a client session");
}

/* Stages the session of id with the entry's outcome in gw's batch. */
static int session_stage(struct store_group *group, const Quorum__RequestId *id,
			 Quorum__ClientSession *session, int64_t now_ns,
			 const struct group_apply *a, struct arena *arena,
			 struct store_group_write *gw)
{
	uint8_t key[SESSION_KEY_BYTES];
	uint8_t *value;
	size_t value_bytes;
	int err;

	err = session_record(arena, &session, id, now_ns, a->status, a->result, a->result_bytes);
	if (!err)
		err = session_encode(session, &value, &value_bytes);
	if (err < 0)
		return err;
	session_key(key, group->table_id, group->partition_id, id->client_id);
	err = staged_writes_put(gw->writes, key, sizeof(key), value, value_bytes);
	free(value);
	return err;
}

struct sweep {
	struct store_group_write *gw;
	int64_t now_ns;
	struct arena *arena;
	uint64_t client_id;	/* the command's: its session was just staged, keep it */
};

static int sweep_session(void *ctx, const uint8_t *key, size_t key_bytes,
			 const uint8_t *value, size_t value_bytes)
{
	struct sweep *sweep = ctx;
	Quorum__ClientSession *session;

	const uint8_t *staged;
	size_t staged_bytes;

	/* A session this batch wrote was just used (or dropped): the store's copy is stale. */
	if (key_get_u64(key + 17) == sweep->client_id ||
	    staged_writes_get(sweep->gw->writes, key, key_bytes, &staged, &staged_bytes))
		return 0;
	/* A damaged session is kept: reading it fails its client's next write loudly. */
	if (session_decode(value, value_bytes, sweep->arena, &session) == 0 &&
	    session_idle(session, sweep->now_ns))
		return staged_writes_put(sweep->gw->writes, key, key_bytes, NULL, 0);
	return 0;
}

/* Copies every session of the group to the child partition's keys. */
struct session_copy {
	leveldb_writebatch_t *batch;
	uint64_t table_id, child_id;
};

static int copy_session(void *ctx, const uint8_t *key, size_t key_bytes, const uint8_t *value,
			size_t value_bytes)
{
	struct session_copy *copy = ctx;
	uint8_t child_key[SESSION_KEY_BYTES];

	(void)key_bytes;
	session_key(child_key, copy->table_id, copy->child_id, key_get_u64(key + 17));
	leveldb_writebatch_put(copy->batch, (const char *)child_key, sizeof(child_key),
			       (const char *)value, value_bytes);
	return 0;
}

/* ------------------------------------------------------------ splits */

static bool state_has_child(const Quorum__GroupState *state, uint64_t partition_id)
{
	for (size_t i = 0; i < state->n_children; i++)
		if (state->children[i]->partition_id == partition_id)
			return true;
	return false;
}

/* Stages the split of state (see store_group.h) in gw's batch; the caller holds
 * store->groups_lock. The outcome goes to a->status. */
static int group_split(struct store_group *group, Quorum__GroupState *state,
		       const Quorum__SplitCommand *split, struct store_group_write *gw,
		       struct arena *arena, struct group_apply *a)
{
	Quorum__GroupState *existing, child = QUORUM__GROUP_STATE__INIT;
	Quorum__SplitChild *added, **children;
	struct session_copy copy = { gw->writes->batch, group->table_id,
				      split->child_partition_id };
	size_t keep;
	int err;

	if (state_has_child(state, split->child_partition_id)) {
		a->status = 0;
		return 0;
	}
	if (split->split_hash <= state->hash_first || split->split_hash > state->hash_last ||
	    split->child_partition_id == group->partition_id) {
		a->status = -ERANGE;
		return 0;
	}
	added = arena_alloc(arena, sizeof(*added));
	keep = state->n_children < STORE_GROUP_CHILDREN_MAX ? state->n_children :
							      STORE_GROUP_CHILDREN_MAX - 1;
	children = arena_alloc(arena, (keep + 1) * sizeof(*children));
	if (!added || !children)
		return -ENOMEM;
	quorum__split_child__init(added);
	added->partition_id = split->child_partition_id;
	added->hash_first = split->split_hash;
	added->hash_last = state->hash_last;
	added->epoch = state->epoch + 1;

	/* A child that exists here already (a snapshot named it) keeps its own state. */
	err = store_group_state_read(group->store, group->table_id, added->partition_id, arena,
				     &existing);
	if (err < 0)
		return err;
	if (!existing) {
		child.applied_slot = 1;
		child.n_members = state->n_members;
		child.members = state->members;
		child.hash_first = added->hash_first;
		child.hash_last = added->hash_last;
		child.epoch = added->epoch;
		err = state_stage(gw->writes->batch, group->table_id, added->partition_id, &child);
		if (!err)
			err = group_sessions(group, group->partition_id, copy_session, &copy);
		if (err < 0)
			return err;
	}
	/* The oldest children are forgotten first: a replica that lags that far behind gets
	 * the child's own snapshot through meta's assignment. */
	if (keep)
		memcpy(children, state->children + (state->n_children - keep),
		       keep * sizeof(*children));
	children[keep] = added;
	state->children = children;
	state->n_children = keep + 1;
	state->hash_last = split->split_hash - 1;
	state->epoch++;
	a->status = 0;
	return 0;
}

struct split_point {
	uint64_t total_bytes, half_bytes, seen_bytes;
	uint64_t first_hash, split_hash;
	bool counting, found;
};

static int count_item_bytes(void *ctx, const uint8_t *key, size_t key_bytes,
			    const uint8_t *value, size_t value_bytes)
{
	struct split_point *p = ctx;
	uint64_t hash = key_get_u64(key + 9);

	if (p->counting) {
		if (p->total_bytes == 0)
			p->first_hash = hash;
		p->total_bytes += key_bytes + value_bytes;
		return 0;
	}
	/* The first hash past half the bytes, but never the first hash of the range: the
	 * lower half must hold something. */
	if (p->seen_bytes >= p->half_bytes && hash != p->first_hash) {
		p->split_hash = hash;
		p->found = true;
		return 1;	/* stop */
	}
	p->seen_bytes += key_bytes + value_bytes;
	return 0;
}

int store_group_split_point(struct store *store, uint64_t table_id, uint64_t hash_first,
			    uint64_t hash_last, uint64_t *split_hash)
{
	struct store_group scan = { .store = store, .table_id = table_id };
	struct split_point p = { .counting = true };
	int err;

	err = group_items(&scan, hash_first, hash_last, count_item_bytes, &p);
	if (err < 0)
		return err;
	p.counting = false;
	p.half_bytes = p.total_bytes / 2;
	err = group_items(&scan, hash_first, hash_last, count_item_bytes, &p);
	if (err < 0)
		return err;
	if (!p.found) {
		/* Half the bytes or more under one hash: split right after it, if anything
		 * follows it. */
		p.counting = false;
		p.half_bytes = 0;
		p.seen_bytes = 0;
		err = group_items(&scan, hash_first, hash_last, count_item_bytes, &p);
		if (err < 0)
			return err;
	}
	if (!p.found)
		return -ERANGE;
	*split_hash = p.split_hash;
	return 0;
}

/* ------------------------------------------------------------ apply */

/* Packs meta into the entry's result bytes. */
static void set_result(struct group_apply *a, const Quorum__ItemMeta *meta)
{
	size_t size_bytes = quorum__item_meta__get_packed_size(meta);

	if (size_bytes <= sizeof(a->result))
		a->result_bytes = quorum__item_meta__pack(meta, a->result);
}

/* Whether the item key of an item command is in the group's range. */
static bool key_in_range(const Quorum__GroupState *state, const Quorum__ItemKey *key)
{
	uint64_t hash;

	if (!key)
		return true;	/* refused as malformed by the store */
	hash = key_hash(key->partition_key.data, key->partition_key.len);
	return hash >= state->hash_first && hash <= state->hash_last;
}

static const Quorum__ItemKey *command_key(const Quorum__GroupCommand *command)
{
	switch (command->op_case) {
	case QUORUM__GROUP_COMMAND__OP_PUT_ITEM:
		return command->put_item->key;
	case QUORUM__GROUP_COMMAND__OP_DELETE_ITEM:
		return command->delete_item->key;
	case QUORUM__GROUP_COMMAND__OP_UPDATE_ITEM:
		return command->update_item->key;
	default:
		return NULL;
	}
}

/* Runs the operation of command; its outcome goes to a. */
static int run_command(struct store_group *group, Quorum__GroupState *state,
		       const Quorum__GroupCommand *command, struct store_group_write *gw,
		       struct arena *arena, struct group_apply *a)
{
	Quorum__ItemMeta *meta = NULL;
	Quorum__UpdateItemRequest update;

	if (!key_in_range(state, command_key(command))) {
		a->status = -EREMCHG;	/* split off after it was proposed */
		return 0;
	}
	gw->item_max_bytes = command->has_item_max_bytes ? command->item_max_bytes : 0;
	switch (command->op_case) {
	case QUORUM__GROUP_COMMAND__OP_PUT_ITEM:
		a->status = store_put_at(group->store, command->put_item, arena, &meta, gw);
		break;
	case QUORUM__GROUP_COMMAND__OP_DELETE_ITEM:
		a->status = store_delete_at(group->store, command->delete_item, gw);
		break;
	case QUORUM__GROUP_COMMAND__OP_UPDATE_ITEM:
		/* Time comes from the proposer: every replica stamps the same ctime. */
		update = *command->update_item;
		if (!update.has_ctime_ns) {
			update.has_ctime_ns = true;
			update.ctime_ns = command->now_ns;
		}
		a->status = store_update_at(group->store, &update, arena, &meta, gw);
		break;
	case QUORUM__GROUP_COMMAND__OP_SPLIT:
		return group_split(group, state, command->split, gw, arena, a);
	default:
		a->status = -EINVAL;
		break;
	}
	/* An I/O failure of the item write is the store's, not the command's. */
	if (a->status == -EIO || a->status == -ENOMEM)
		return a->status;
	if (a->status == 0 && meta)
		set_result(a, meta);
	return 0;
}

/* Applies one decoded command in gw's batch: a write the client's session has answered
 * before is answered the same way and changes nothing. Returns 0, or -EIO/-ENOMEM when the
 * store failed (nothing may be written). */
static int apply_command(struct store_group *group, Quorum__GroupState *state,
			 const Quorum__GroupCommand *command, uint64_t slot,
			 struct store_group_write *gw, struct arena *arena, struct group_apply *a)
{
	const Quorum__RequestId *id = command->request_id;
	Quorum__ClientSession *session = NULL;
	const Quorum__SessionReply *reply;
	int err;

	if (id && (id->client_id == 0 || id->floor > id->seq)) {
		a->status = -EINVAL;
		return 0;
	}
	if (id) {
		err = session_read(group, id, gw, arena, &session);
		if (err < 0)
			return err;
		switch (session_check(session, id, &reply)) {
		case SESSION_ANSWERED:
			a->status = reply->status;
			if (reply->has_result && reply->result.len <= sizeof(a->result)) {
				memcpy(a->result, reply->result.data, reply->result.len);
				a->result_bytes = reply->result.len;
			}
			return 0;
		case SESSION_FORGOTTEN:
			/* A late copy of a write its client has given up on. */
			a->status = -ETIMEDOUT;
			return 0;
		case SESSION_NEW:
			break;
		}
	}
	err = run_command(group, state, command, gw, arena, a);
	if (err < 0)
		return err;
	if (id) {
		err = session_stage(group, id, session, command->now_ns, a, arena, gw);
		if (err < 0)
			return err;
	}
	if (slot % STORE_GROUP_SESSION_SWEEP_SLOTS == 0) {
		struct sweep sweep = { gw, command->now_ns, arena, id ? id->client_id : 0 };

		return group_sessions(group, group->partition_id, sweep_session, &sweep);
	}
	return 0;
}

/* group_sm.persist: writes what the last apply staged, in one synced batch. */
static int group_persist(void *ctx)
{
	struct store_group *group = ctx;
	char *error = NULL;

	if (!group->has_pending)
		return 0;
	leveldb_write(group->store->db, group->store->write_options, group->pending.batch,
		      &error);
	staged_writes_clear(&group->pending);
	group->has_pending = false;
	if (error) {
		log_error("group %" PRIu64 "/%" PRIu64 ": writing applied entries failed: %s",
			  group->table_id, group->partition_id, error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

/* Writes what gw staged and the state (its applied slot the last staged entry's) in one
 * synced write, when anything is pending. */
static int apply_flush(struct store_group *group, const Quorum__GroupState *state,
		       struct store_group_write *gw, bool *pending)
{
	int err;

	if (!*pending)
		return 0;
	*pending = false;
	err = state_stage(gw->writes->batch, group->table_id, group->partition_id, state);
	if (err < 0) {
		staged_writes_clear(gw->writes);
		return err;
	}
	group->has_pending = true;
	return group_persist(group);
}

/* Applies the NORMAL entry a: staged in gw, except a split. A split reads the store (the
 * child's state, the sessions to copy), so what was staged before it is written first, and
 * it is written alone, under groups_lock; its new children live as long as the state. */
static int apply_normal(struct store_group *group, Quorum__GroupState *state,
			struct group_apply *a, struct store_group_write *gw,
			struct arena *state_arena, bool *pending)
{
	struct arena *arena = arena_new();
	Quorum__GroupCommand *command;
	int err;

	if (!arena)
		return -ENOMEM;
	command = quorum__group_command__unpack(arena_protobuf_allocator(arena), a->command_bytes,
						a->command);
	if (!command || command->version < 1) {
		a->status = -EINVAL;	/* a result: nothing changes but the slot */
		err = 0;
	} else if (command->op_case != QUORUM__GROUP_COMMAND__OP_SPLIT) {
		err = apply_command(group, state, command, a->slot, gw, arena, a);
	} else {
		err = apply_flush(group, state, gw, pending);
		if (!err) {
			pthread_mutex_lock(&group->store->groups_lock);
			err = apply_command(group, state, command, a->slot, gw, state_arena, a);
			state->applied_slot = a->slot;
			*pending = true;
			if (!err)
				err = apply_flush(group, state, gw, pending);
			pthread_mutex_unlock(&group->store->groups_lock);
			if (!err)
				route_follow(group, state);
		}
	}
	arena_free(arena);
	return err;
}

/* A CONFIG entry's member list (paxos_config_encode's format, decoded here so the store
 * links without the core). The core validated it; a malformed one leaves the list as is. */
static int config_decode(const uint8_t *value, size_t value_bytes, Quorum__GroupState *state,
			 struct arena *arena)
{
	size_t count;
	uint32_t *members;

	if (value_bytes < 4)
		return 0;
	count = (size_t)le_get(value, 4);
	if (count == 0 || count > PAXOS_MEMBERS_MAX || value_bytes != 4 + 4 * count)
		return 0;
	members = arena_alloc(arena, count * sizeof(*members));
	if (!members)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		members[i] = (uint32_t)le_get(value + 4 + 4 * i, 4);
	state->members = members;
	state->n_members = count;
	return 0;
}

/* Entries of one apply cycle staged at most this many bytes before they are written: the
 * batch keeps a copy of every value. */
#define APPLY_BATCH_BYTES_MAX (8u << 20)

/* Every entry of the cycle in one batch, with the state, staged for group_persist: one
 * fsync however many were committed, after their proposers have their answers. */
static int group_apply(void *ctx, struct group_apply *entries, size_t count)
{
	struct store_group *group = ctx;
	struct store_group_write gw = { .writes = &group->pending };
	struct arena *arena;
	Quorum__GroupState *state;
	bool pending = false;
	int err;

	/* The group persists after every apply; this only guards that contract. */
	err = group_persist(group);
	if (err < 0)
		return err;
	arena = arena_new();
	if (!arena)
		return -ENOMEM;
	err = state_load(group, arena, &state);
	for (size_t i = 0; i < count && !err; i++) {
		struct group_apply *a = &entries[i];

		if (a->slot <= state->applied_slot)
			continue;	/* already in the store (a crash before the WAL knew) */
		a->status = 0;
		a->result_bytes = 0;
		if (a->type == PAXOS_ENTRY_CONFIG)
			err = config_decode(a->command, a->command_bytes, state, arena);
		else if (a->type == PAXOS_ENTRY_NORMAL)
			err = apply_normal(group, state, a, &gw, arena, &pending);
		if (err)
			break;
		if (a->slot > state->applied_slot) {
			state->applied_slot = a->slot;
			pending = true;
		}
		if (group->pending.size_bytes >= APPLY_BATCH_BYTES_MAX)
			err = apply_flush(group, state, &gw, &pending);
	}
	if (!err && pending)
		err = state_stage(group->pending.batch, group->table_id, group->partition_id,
				  state);
	if (err) {
		staged_writes_clear(&group->pending);	/* the group fails and replays its WAL */
		pending = false;
	}
	group->has_pending = pending;
	arena_free(arena);
	return err;
}

static int group_state(void *ctx, uint64_t *applied_slot, uint32_t *members,
		       size_t *member_count)
{
	struct store_group *group = ctx;
	struct arena *arena = arena_new();
	Quorum__GroupState *state;
	int err;

	*applied_slot = 0;
	*member_count = 0;
	if (!arena)
		return -ENOMEM;
	err = store_group_state_read(group->store, group->table_id, group->partition_id, arena,
				     &state);
	if (!err && state) {
		*applied_slot = state->applied_slot;
		if (state->n_members)
			memcpy(members, state->members, state->n_members * sizeof(*members));
		*member_count = state->n_members;
		route_follow(group, state);
	}
	arena_free(arena);
	return err;
}

/* ------------------------------------------------------------ snapshots */

struct snapshot_buf {
	uint8_t *bytes;
	size_t size_bytes;
	size_t cap_bytes;
};

static int snapshot_append(struct snapshot_buf *b, const void *data, size_t size)
{
	if (b->size_bytes + size > b->cap_bytes) {
		size_t cap = b->cap_bytes ? b->cap_bytes : 4096;
		uint8_t *p;

		while (cap < b->size_bytes + size)
			cap *= 2;
		p = realloc(b->bytes, cap);
		if (!p)
			return -ENOMEM;
		b->bytes = p;
		b->cap_bytes = cap;
	}
	memcpy(b->bytes + b->size_bytes, data, size);
	b->size_bytes += size;
	return 0;
}

static int snapshot_pair(void *ctx, const uint8_t *key, size_t key_bytes, const uint8_t *value,
			 size_t value_bytes)
{
	struct snapshot_buf *b = ctx;
	uint8_t len[4];
	int err;

	if (key_bytes > UINT32_MAX || value_bytes > UINT32_MAX)
		return -EFBIG;
	le_put(len, key_bytes, 4);
	err = snapshot_append(b, len, 4);
	if (!err)
		err = snapshot_append(b, key, key_bytes);
	le_put(len, value_bytes, 4);
	if (!err)
		err = snapshot_append(b, len, 4);
	if (!err)
		err = snapshot_append(b, value, value_bytes);
	return err;
}

static int group_snapshot_get(void *ctx, uint8_t **bytes, size_t *size_bytes,
			      uint64_t *through_slot)
{
	struct store_group *group = ctx;
	struct snapshot_buf b = { 0 };
	struct arena *arena = arena_new();
	Quorum__GroupState *state;
	uint8_t len[4], *head = NULL;
	size_t head_bytes = 0;
	int err;

	if (!arena)
		return -ENOMEM;
	/* The state and the items are of one moment: this thread is the one that applies. */
	err = state_load(group, arena, &state);
	if (!err)
		err = state_encode(state, &head, &head_bytes);
	if (!err) {
		le_put(len, head_bytes, 4);
		err = snapshot_append(&b, len, 4);
	}
	if (!err)
		err = snapshot_append(&b, head, head_bytes);
	if (!err)
		err = group_items(group, state->hash_first, state->hash_last, snapshot_pair, &b);
	if (!err)
		err = group_sessions(group, group->partition_id, snapshot_pair, &b);
	if (!err)
		*through_slot = state->applied_slot;
	free(head);
	arena_free(arena);
	if (err < 0) {
		free(b.bytes);
		return err;
	}
	*bytes = b.bytes;
	*size_bytes = b.size_bytes;
	return 0;
}

/* Children the snapshot names that this store lacks: their range is emptied and they get
 * a record at slot 0 (so their group asks for a snapshot of its own). */
static int stage_missing_children(struct store_group *group, const Quorum__GroupState *head,
				  leveldb_writebatch_t *batch, struct arena *arena)
{
	for (size_t i = 0; i < head->n_children; i++) {
		const Quorum__SplitChild *c = head->children[i];
		Quorum__GroupState child = QUORUM__GROUP_STATE__INIT, *existing;
		int err;

		err = store_group_state_read(group->store, group->table_id, c->partition_id,
					     arena, &existing);
		if (err < 0)
			return err;
		if (existing)
			continue;
		err = group_items(group, c->hash_first, c->hash_last, stage_delete, batch);
		if (!err)
			err = group_sessions(group, c->partition_id, stage_delete, batch);
		child.n_members = head->n_members;
		child.members = head->members;
		child.hash_first = c->hash_first;
		child.hash_last = c->hash_last;
		child.epoch = c->epoch;
		child.has_needs_snapshot = child.needs_snapshot = true;
		if (!err)
			err = state_stage(batch, group->table_id, c->partition_id, &child);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Stages the key/value pairs of a snapshot after its head; each must be an item of the
 * head's range or a session of this group. */
static int stage_pairs(struct store_group *group, const Quorum__GroupState *head,
		       const uint8_t *bytes, size_t size_bytes, size_t offset,
		       leveldb_writebatch_t *batch)
{
	struct item_bounds items = { group->table_id, head->hash_first, head->hash_last };
	struct session_bounds sessions = { group->table_id, group->partition_id };

	while (offset < size_bytes) {
		size_t key_bytes, value_bytes;
		const uint8_t *k, *v;

		if (size_bytes - offset < 4)
			return -EINVAL;
		key_bytes = (size_t)le_get(bytes + offset, 4);
		if (size_bytes - offset - 4 < key_bytes + 4)
			return -EINVAL;
		k = bytes + offset + 4;
		value_bytes = (size_t)le_get(k + key_bytes, 4);
		if (size_bytes - offset - 8 - key_bytes < value_bytes)
			return -EINVAL;
		v = k + key_bytes + 4;
		if (!item_in_bounds(&items, k, key_bytes) &&
		    !session_in_bounds(&sessions, k, key_bytes))
			return -EINVAL;
		leveldb_writebatch_put(batch, (const char *)k, key_bytes, (const char *)v,
				       value_bytes);
		offset += 8 + key_bytes + value_bytes;
	}
	return 0;
}

static int group_snapshot_install(void *ctx, uint64_t through_slot, const uint8_t *bytes,
				  size_t size_bytes, const uint32_t *members, size_t member_count)
{
	struct store_group *group = ctx;
	struct store *store = group->store;
	struct arena *arena;
	Quorum__GroupState *head = NULL;
	leveldb_writebatch_t *batch;
	size_t head_bytes;
	char *error = NULL;
	int err;

	if (size_bytes < 4 || member_count > PAXOS_MEMBERS_MAX)
		return -EINVAL;
	head_bytes = (size_t)le_get(bytes, 4);
	if (head_bytes > size_bytes - 4)
		return -EINVAL;
	arena = arena_new();
	batch = leveldb_writebatch_create();
	if (!arena || !batch) {
		arena_free(arena);
		if (batch)
			leveldb_writebatch_destroy(batch);
		return -ENOMEM;
	}
	err = state_decode(bytes + 4, head_bytes, arena, &head);
	if (err == -EBADMSG || (!err && head->applied_slot != through_slot))
		err = -EINVAL;
	if (!err && member_count) {
		head->members = (uint32_t *)members;
		head->n_members = member_count;
	}
	pthread_mutex_lock(&store->groups_lock);
	if (!err) {
		struct store_group_route old;

		/* What this replica held of its range and of the snapshot's, and its sessions,
		 * go: the snapshot's range may be wider than the one this replica was opened
		 * with (meta's, after a split it had not applied). */
		store_group_route(group, &old);
		err = group_items(group, old.hash_first < head->hash_first ? old.hash_first :
				  head->hash_first, old.hash_last > head->hash_last ? old.hash_last :
				  head->hash_last, stage_delete, batch);
	}
	if (!err)
		err = group_sessions(group, group->partition_id, stage_delete, batch);
	if (!err)
		err = stage_missing_children(group, head, batch, arena);
	if (!err)
		err = stage_pairs(group, head, bytes, size_bytes, 4 + head_bytes, batch);
	if (!err)
		err = state_stage(batch, group->table_id, group->partition_id, head);
	if (!err) {
		leveldb_write(store->db, store->write_options, batch, &error);
		if (error) {
			log_error("group %" PRIu64 "/%" PRIu64 ": installing a snapshot failed: %s",
				  group->table_id, group->partition_id, error);
			leveldb_free(error);
			err = -EIO;
		}
	}
	pthread_mutex_unlock(&store->groups_lock);
	if (!err)
		route_follow(group, head);
	leveldb_writebatch_destroy(batch);
	arena_free(arena);
	return err;
}

/* A group with no state here yet whose partition has an epoch past its first (it split,
 * or was split off), or that joins by a move, has a history this replica missed: it must
 * start from a snapshot. A child made from a parent's snapshot says so in its record. */
static bool group_needs_snapshot(void *ctx)
{
	struct store_group *group = ctx;
	struct arena *arena = arena_new();
	struct store_group_route route;
	Quorum__GroupState *state;
	bool needs = false;

	if (!arena)
		return false;
	store_group_route(group, &route);
	if (store_group_state_read(group->store, group->table_id, group->partition_id, arena,
				   &state) == 0)
		needs = state ? state->has_needs_snapshot && state->needs_snapshot :
				(route.epoch > 1 || group->joining);
	arena_free(arena);
	return needs;
}

void store_group_sm(struct store_group *group, struct group_sm *sm)
{
	sm->ctx = group;
	sm->apply = group_apply;
	sm->persist = group_persist;
	sm->snapshot_get = group_snapshot_get;
	sm->snapshot_install = group_snapshot_install;
	sm->state = group_state;
	sm->needs_snapshot = group_needs_snapshot;
}
