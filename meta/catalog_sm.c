/* catalog_sm.c: the catalog's LevelDB as the state machine of meta's Paxos group. See
 * catalog_sm.h. */
#include "meta/catalog_sm.h"

#include "cluster/arena.h"
#include "cluster/log.h"
#include "cluster/paxos.h"
#include "meta/catalog.h"
#include "quorum.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

struct catalog_sm {
	leveldb_t *db;
	leveldb_writeoptions_t *write_options;	/* sync */
	leveldb_readoptions_t *read_options;
};

static bool catalog_sm_is_state_key(const void *key, size_t key_bytes)
{
	return key_bytes == strlen(CATALOG_GROUP_STATE_KEY) &&
	       memcmp(key, CATALOG_GROUP_STATE_KEY, key_bytes) == 0;
}

/* --------------------------------------------------------------- commands */

struct catalog_sm_encoder {
	Quorum__CatalogOp **ops;
	size_t count;
	size_t capacity;
	bool failed;
};

static void catalog_sm_encoder_add(struct catalog_sm_encoder *e, const char *key,
				   size_t key_bytes, const char *value, size_t value_bytes,
				   bool is_put)
{
	Quorum__CatalogOp *op;

	if (e->failed)
		return;
	if (e->count == e->capacity) {
		size_t capacity = e->capacity ? 2 * e->capacity : 8;
		Quorum__CatalogOp **ops = realloc(e->ops, capacity * sizeof(*ops));

		if (!ops) {
			e->failed = true;
			return;
		}
		e->ops = ops;
		e->capacity = capacity;
	}
	/* One allocation: the op, then its key and value bytes. */
	op = malloc(sizeof(*op) + key_bytes + value_bytes + 1);
	if (!op) {
		e->failed = true;
		return;
	}
	quorum__catalog_op__init(op);
	op->key.data = (uint8_t *)(op + 1);
	op->key.len = key_bytes;
	memcpy(op->key.data, key, key_bytes);
	if (is_put) {
		op->has_value = true;
		op->value.data = op->key.data + key_bytes;
		op->value.len = value_bytes;
		if (value_bytes)
			memcpy(op->value.data, value, value_bytes);
	}
	e->ops[e->count++] = op;
}

static void catalog_sm_encode_put(void *state, const char *key, size_t key_bytes,
				  const char *value, size_t value_bytes)
{
	catalog_sm_encoder_add(state, key, key_bytes, value, value_bytes, true);
}

static void catalog_sm_encode_delete(void *state, const char *key, size_t key_bytes)
{
	catalog_sm_encoder_add(state, key, key_bytes, NULL, 0, false);
}

int catalog_sm_encode(const struct leveldb_writebatch_t *batch, uint8_t **out,
		      size_t *size_bytes)
{
	Quorum__CatalogBatch command = QUORUM__CATALOG_BATCH__INIT;
	struct catalog_sm_encoder e = { 0 };
	size_t packed_bytes;
	uint8_t *packed;
	int err = 0;

	*out = NULL;
	*size_bytes = 0;
	if (batch)
		leveldb_writebatch_iterate((const leveldb_writebatch_t *)batch, &e,
					   catalog_sm_encode_put, catalog_sm_encode_delete);
	if (e.failed) {
		err = -ENOMEM;
		goto out;
	}
	command.version = CATALOG_SM_VERSION;
	command.ops = e.ops;
	command.n_ops = e.count;
	packed_bytes = quorum__catalog_batch__get_packed_size(&command);
	/* The group wraps the command in a GroupEntry: leave room for it. */
	if (packed_bytes > PAXOS_VALUE_BYTES_MAX - 1024) {
		err = -EMSGSIZE;
		goto out;
	}
	packed = malloc(packed_bytes ? packed_bytes : 1);
	if (!packed) {
		err = -ENOMEM;
		goto out;
	}
	quorum__catalog_batch__pack(&command, packed);
	*out = packed;
	*size_bytes = packed_bytes;
out:
	for (size_t i = 0; i < e.count; i++)
		free(e.ops[i]);
	free(e.ops);
	return err;
}

/* ----------------------------------------------------------- state record */

static int catalog_sm_get_state(leveldb_t *db, leveldb_readoptions_t *read_options,
				uint64_t *applied_slot, uint32_t *members, size_t *member_count)
{
	Quorum__CatalogGroupState *state;
	size_t value_bytes = 0;
	char *error = NULL, *value;

	*applied_slot = 0;
	*member_count = 0;
	value = leveldb_get(db, read_options, CATALOG_GROUP_STATE_KEY,
			    strlen(CATALOG_GROUP_STATE_KEY), &value_bytes, &error);
	if (error) {
		log_error("catalog: cannot read the group state: %s", error);
		leveldb_free(error);
		return -EIO;
	}
	if (!value)
		return 0;
	state = quorum__catalog_group_state__unpack(NULL, value_bytes, (const uint8_t *)value);
	leveldb_free(value);
	if (!state || state->version < 1 || state->n_members > PAXOS_MEMBERS_MAX) {
		log_error("catalog: the group state record does not decode");
		if (state)
			quorum__catalog_group_state__free_unpacked(state, NULL);
		return -EBADMSG;
	}
	*applied_slot = state->applied_slot;
	if (state->n_members)
		memcpy(members, state->members, state->n_members * sizeof(*members));
	*member_count = state->n_members;
	quorum__catalog_group_state__free_unpacked(state, NULL);
	return 0;
}

int catalog_sm_read_state(struct leveldb_t *db, uint64_t *applied_slot, uint32_t *members,
			  size_t *member_count)
{
	leveldb_readoptions_t *read_options = leveldb_readoptions_create();
	int err;

	if (!read_options)
		return -ENOMEM;
	leveldb_readoptions_set_verify_checksums(read_options, 1);
	err = catalog_sm_get_state((leveldb_t *)db, read_options, applied_slot, members,
				   member_count);
	leveldb_readoptions_destroy(read_options);
	return err;
}

/* Stages the state record in batch. */
static int catalog_sm_stage_state(leveldb_writebatch_t *batch, uint64_t applied_slot,
				  const uint32_t *members, size_t member_count)
{
	Quorum__CatalogGroupState state = QUORUM__CATALOG_GROUP_STATE__INIT;
	uint8_t packed[64 + 8 * PAXOS_MEMBERS_MAX];
	size_t packed_bytes;

	state.version = CATALOG_SM_VERSION;
	state.applied_slot = applied_slot;
	state.members = (uint32_t *)members;
	state.n_members = member_count;
	packed_bytes = quorum__catalog_group_state__get_packed_size(&state);
	if (packed_bytes > sizeof(packed))
		return -EINVAL;
	quorum__catalog_group_state__pack(&state, packed);
	leveldb_writebatch_put(batch, CATALOG_GROUP_STATE_KEY, strlen(CATALOG_GROUP_STATE_KEY),
			       (const char *)packed, packed_bytes);
	return 0;
}

static int catalog_sm_write(struct catalog_sm *sm, leveldb_writebatch_t *batch,
			    const char *what)
{
	char *error = NULL;

	leveldb_write(sm->db, sm->write_options, batch, &error);
	if (error) {
		log_error("catalog: %s failed: %s", what, error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

/* ------------------------------------------------------------------ apply */

/* Stages one command's operations; its status says whether it was taken. */
static int catalog_sm_stage_command(leveldb_writebatch_t *batch, struct group_apply *a)
{
	struct arena *arena = arena_new();
	Quorum__CatalogBatch *command;

	if (!arena)
		return -ENOMEM;
	command = quorum__catalog_batch__unpack(arena_protobuf_allocator(arena),
						a->command_bytes, a->command);
	a->status = 0;
	if (!command || command->version < 1) {
		a->status = -EINVAL;
	} else {
		/* The state record is the group's, never a command's. */
		for (size_t i = 0; i < command->n_ops && a->status == 0; i++)
			if (command->ops[i]->key.len == 0 ||
			    catalog_sm_is_state_key(command->ops[i]->key.data,
						    command->ops[i]->key.len))
				a->status = -EINVAL;
	}
	if (a->status == 0) {
		for (size_t i = 0; i < command->n_ops; i++) {
			const Quorum__CatalogOp *op = command->ops[i];

			if (op->has_value)
				leveldb_writebatch_put(batch, (const char *)op->key.data,
						       op->key.len, (const char *)op->value.data,
						       op->value.len);
			else
				leveldb_writebatch_delete(batch, (const char *)op->key.data,
							  op->key.len);
		}
	} else {
		log_warn("catalog: slot %" PRIu64 " holds a command that does not decode; "
			 "skipped", a->slot);
	}
	arena_free(arena);
	return 0;
}

static int catalog_sm_apply(void *ctx, struct group_apply *entries, size_t count)
{
	struct catalog_sm *sm = ctx;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	uint64_t applied_slot, last_slot = 0;
	leveldb_writebatch_t *batch;
	int err;

	err = catalog_sm_get_state(sm->db, sm->read_options, &applied_slot, members,
				   &member_count);
	if (err)
		return err;
	batch = leveldb_writebatch_create();
	if (!batch)
		return -ENOMEM;
	for (size_t i = 0; i < count && !err; i++) {
		struct group_apply *a = &entries[i];

		a->status = 0;
		a->result_bytes = 0;
		if (a->slot <= applied_slot)
			continue;	/* in the catalog already (a crash before the WAL knew) */
		last_slot = a->slot;
		if (a->type == PAXOS_ENTRY_NORMAL) {
			err = catalog_sm_stage_command(batch, a);
		} else if (a->type == PAXOS_ENTRY_CONFIG) {
			uint32_t changed[PAXOS_MEMBERS_MAX];
			size_t changed_count;

			/* The core validated it; a malformed list leaves ours as it is. */
			if (paxos_config_decode(a->command, a->command_bytes, changed,
						&changed_count) == 0) {
				memcpy(members, changed, changed_count * sizeof(*members));
				member_count = changed_count;
			}
		}
	}
	if (!err && last_slot)
		err = catalog_sm_stage_state(batch, last_slot, members, member_count);
	if (!err && last_slot)
		err = catalog_sm_write(sm, batch, "applying committed changes");
	leveldb_writebatch_destroy(batch);
	return err;
}

static int catalog_sm_state(void *ctx, uint64_t *applied_slot, uint32_t *members,
			    size_t *member_count)
{
	struct catalog_sm *sm = ctx;

	return catalog_sm_get_state(sm->db, sm->read_options, applied_slot, members,
				    member_count);
}

/* -------------------------------------------------------------- snapshots */

static int catalog_sm_snapshot_get(void *ctx, uint8_t **bytes, size_t *size_bytes,
				   uint64_t *through_slot)
{
	struct catalog_sm *sm = ctx;
	struct catalog_sm_encoder e = { 0 };
	Quorum__CatalogBatch snapshot = QUORUM__CATALOG_BATCH__INIT;
	leveldb_iterator_t *iterator;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count, packed_bytes;
	char *error = NULL;
	uint8_t *packed = NULL;
	int err;

	*bytes = NULL;
	*size_bytes = 0;
	/* The group's thread is the only writer: the state and the records agree. */
	err = catalog_sm_get_state(sm->db, sm->read_options, through_slot, members,
				   &member_count);
	if (err)
		return err;
	iterator = leveldb_create_iterator(sm->db, sm->read_options);
	if (!iterator)
		return -ENOMEM;
	for (leveldb_iter_seek_to_first(iterator); leveldb_iter_valid(iterator);
	     leveldb_iter_next(iterator)) {
		size_t key_bytes, value_bytes;
		const char *key = leveldb_iter_key(iterator, &key_bytes);
		const char *value = leveldb_iter_value(iterator, &value_bytes);

		if (!catalog_sm_is_state_key(key, key_bytes))
			catalog_sm_encoder_add(&e, key, key_bytes, value, value_bytes, true);
	}
	leveldb_iter_get_error(iterator, &error);
	leveldb_iter_destroy(iterator);
	if (error) {
		log_error("catalog: reading a snapshot failed: %s", error);
		leveldb_free(error);
		err = -EIO;
		goto out;
	}
	if (e.failed) {
		err = -ENOMEM;
		goto out;
	}
	snapshot.version = CATALOG_SM_VERSION;
	snapshot.ops = e.ops;
	snapshot.n_ops = e.count;
	packed_bytes = quorum__catalog_batch__get_packed_size(&snapshot);
	packed = malloc(packed_bytes ? packed_bytes : 1);
	if (!packed) {
		err = -ENOMEM;
		goto out;
	}
	quorum__catalog_batch__pack(&snapshot, packed);
	*bytes = packed;
	*size_bytes = packed_bytes;
out:
	for (size_t i = 0; i < e.count; i++)
		free(e.ops[i]);
	free(e.ops);
	return err;
}

static int catalog_sm_snapshot_install(void *ctx, uint64_t through_slot, const uint8_t *bytes,
				       size_t size_bytes, const uint32_t *members,
				       size_t member_count)
{
	struct catalog_sm *sm = ctx;
	struct arena *arena = arena_new();
	Quorum__CatalogBatch *snapshot;
	leveldb_writebatch_t *batch = NULL;
	leveldb_iterator_t *iterator = NULL;
	char *error = NULL;
	int err = -ENOMEM;

	if (!arena)
		return -ENOMEM;
	snapshot = quorum__catalog_batch__unpack(arena_protobuf_allocator(arena), size_bytes,
						 bytes);
	if (!snapshot || snapshot->version < 1 || member_count > PAXOS_MEMBERS_MAX) {
		/* A leader sent what we cannot read: keep our state, the group fails and
		 * retries rather than serve a half-installed catalog. */
		log_error("catalog: a snapshot through slot %" PRIu64 " does not decode",
			  through_slot);
		err = -EBADMSG;
		goto out;
	}
	batch = leveldb_writebatch_create();
	iterator = leveldb_create_iterator(sm->db, sm->read_options);
	if (!batch || !iterator)
		goto out;
	/* Every record goes, then the snapshot's come, in one batch. */
	for (leveldb_iter_seek_to_first(iterator); leveldb_iter_valid(iterator);
	     leveldb_iter_next(iterator)) {
		size_t key_bytes;
		const char *key = leveldb_iter_key(iterator, &key_bytes);

		leveldb_writebatch_delete(batch, key, key_bytes);
	}
	leveldb_iter_get_error(iterator, &error);
	if (error) {
		log_error("catalog: reading before a snapshot install failed: %s", error);
		leveldb_free(error);
		err = -EIO;
		goto out;
	}
	for (size_t i = 0; i < snapshot->n_ops; i++) {
		const Quorum__CatalogOp *op = snapshot->ops[i];

		if (!op->has_value || op->key.len == 0 ||
		    catalog_sm_is_state_key(op->key.data, op->key.len))
			continue;
		leveldb_writebatch_put(batch, (const char *)op->key.data, op->key.len,
				       (const char *)op->value.data, op->value.len);
	}
	err = catalog_sm_stage_state(batch, through_slot, members, member_count);
	if (!err)
		err = catalog_sm_write(sm, batch, "installing a snapshot");
	if (!err)
		log_info("catalog: installed a snapshot through slot %" PRIu64 " (%zu records)",
			 through_slot, snapshot->n_ops);
out:
	if (iterator)
		leveldb_iter_destroy(iterator);
	if (batch)
		leveldb_writebatch_destroy(batch);
	arena_free(arena);
	return err;
}

/* ------------------------------------------------------------ life cycle */

int catalog_sm_new(struct leveldb_t *db, struct catalog_sm **out)
{
	struct catalog_sm *sm = calloc(1, sizeof(*sm));

	*out = NULL;
	if (!sm)
		return -ENOMEM;
	sm->db = (leveldb_t *)db;
	sm->write_options = leveldb_writeoptions_create();
	sm->read_options = leveldb_readoptions_create();
	if (!sm->write_options || !sm->read_options) {
		catalog_sm_free(sm);
		return -ENOMEM;
	}
	leveldb_writeoptions_set_sync(sm->write_options, 1);
	leveldb_readoptions_set_verify_checksums(sm->read_options, 1);
	*out = sm;
	return 0;
}

void catalog_sm_free(struct catalog_sm *sm)
{
	if (!sm)
		return;
	if (sm->write_options)
		leveldb_writeoptions_destroy(sm->write_options);
	if (sm->read_options)
		leveldb_readoptions_destroy(sm->read_options);
	free(sm);
}

void catalog_sm_bind(struct catalog_sm *sm, struct group_sm *out)
{
	memset(out, 0, sizeof(*out));
	out->ctx = sm;
	out->apply = catalog_sm_apply;
	out->snapshot_get = catalog_sm_snapshot_get;
	out->snapshot_install = catalog_sm_snapshot_install;
	out->state = catalog_sm_state;
}

int catalog_sm_has_unreplicated_records(struct leveldb_t *db, bool *found)
{
	leveldb_readoptions_t *read_options = leveldb_readoptions_create();
	leveldb_iterator_t *iterator;
	bool has_state = false, has_records = false;
	char *error = NULL;

	*found = false;
	if (!read_options)
		return -ENOMEM;
	iterator = leveldb_create_iterator((leveldb_t *)db, read_options);
	if (!iterator) {
		leveldb_readoptions_destroy(read_options);
		return -ENOMEM;
	}
	for (leveldb_iter_seek_to_first(iterator); leveldb_iter_valid(iterator);
	     leveldb_iter_next(iterator)) {
		size_t key_bytes;
		const char *key = leveldb_iter_key(iterator, &key_bytes);

		if (catalog_sm_is_state_key(key, key_bytes))
			has_state = true;
		else
			has_records = true;
	}
	leveldb_iter_get_error(iterator, &error);
	leveldb_iter_destroy(iterator);
	leveldb_readoptions_destroy(read_options);
	if (error) {
		log_error("catalog: cannot read: %s", error);
		leveldb_free(error);
		return -EIO;
	}
	*found = has_records && !has_state;
	return 0;
}
