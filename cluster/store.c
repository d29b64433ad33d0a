/* store.c: items in LevelDB; see store.h for the contract.
 *
 * Reads need no lock: a LevelDB get or iterator sees one consistent state.
 * A write first reads the stored item (for its version, its xattrs, the
 * request's condition), so each write holds the stripe mutex of its key
 * from that read to the end of its synced write. Stripes are per key, not
 * global: LevelDB joins concurrent synced writes into one group commit, and
 * a global lock would turn that back into one fsync per write.
 *
 * Each operation decodes the stored item into a scratch arena of its own,
 * so a caller's arena holds only what is returned (a scan of a page of
 * large items never holds their bodies at once). */
#include "cluster/store.h"

#include "cluster/clock.h"
#include "cluster/item.h"
#include "cluster/keys.h"
#include "cluster/log.h"
#include "cluster/session.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <leveldb/c.h>

#define STORE_STRIPE_COUNT 256

/* Every this many slots, a command's apply also drops the group's idle client sessions. */
#define STORE_SESSION_SWEEP_SLOTS 4096

/* Room for a key described for a log line: every byte escaped as \xNN. */
#define STORE_KEY_TEXT_BYTES (4 * KEY_STORAGE_MAX_BYTES + 64)

struct store {
	leveldb_t *db;
	leveldb_options_t *options;
	leveldb_readoptions_t *read_options;
	leveldb_readoptions_t *scan_options;
	leveldb_writeoptions_t *write_options;
	_Atomic uint64_t item_max_bytes;
	pthread_mutex_t stripes[STORE_STRIPE_COUNT];
};

/* An item's storage key. */
struct store_key {
	uint8_t bytes[KEY_STORAGE_MAX_BYTES];
	size_t size_bytes;
};

/* ---------------------------------------------------------------- helpers */

/* Appends data to out as text a human can read in a log: printable ASCII
 * as is, anything else as \xNN. */
static size_t store_escape(char *out, size_t out_bytes, size_t used, const uint8_t *data,
			   size_t data_bytes)
{
	for (size_t i = 0; i < data_bytes && used + 5 < out_bytes; i++) {
		uint8_t c = data[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			out[used++] = (char)c;
		else
			used += (size_t)snprintf(out + used, out_bytes - used, "\\x%02x", c);
	}
	out[used] = '\0';
	return used;
}

/* Describes a storage key for a log line: table id and key names, or the
 * whole key escaped when it does not parse. */
static void store_describe_key(const uint8_t *key, size_t key_bytes, char *out, size_t out_bytes)
{
	const uint8_t *pk, *sk;
	size_t pk_bytes, sk_bytes, used;
	uint64_t hash;
	bool has_sk;

	if (key_bytes > 9 && key[0] == KEY_STORAGE_PREFIX &&
	    key_decode_position(key + 9, key_bytes - 9, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
				&has_sk) == 0) {
		used = (size_t)snprintf(out, out_bytes, "table %llu key \"",
					(unsigned long long)key_get_u64(key + 1));
		used = store_escape(out, out_bytes, used, pk, pk_bytes);
		if (has_sk) {
			used += (size_t)snprintf(out + used, out_bytes - used, "\" sort key \"");
			used = store_escape(out, out_bytes, used, sk, sk_bytes);
		}
		snprintf(out + used, out_bytes - used, "\"");
		return;
	}
	used = (size_t)snprintf(out, out_bytes, "storage key \"");
	used = store_escape(out, out_bytes, used, key, key_bytes);
	snprintf(out + used, out_bytes - used, "\"");
}

static int store_compare_bytes(const uint8_t *a, size_t a_bytes, const uint8_t *b,
			       size_t b_bytes)
{
	size_t n = a_bytes < b_bytes ? a_bytes : b_bytes;
	int c = n ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return (a_bytes > b_bytes) - (a_bytes < b_bytes);
}

static int store_key_make(const Quorum__ItemKey *key, struct store_key *out)
{
	uint8_t position[KEY_POSITION_MAX_BYTES];
	size_t position_bytes;
	int err;

	if (!key || key->table_id == 0)
		return -EINVAL;
	err = key_validate_name(key->partition_key.data, key->partition_key.len);
	if (err < 0)
		return err;
	if (key->has_sort_key) {
		err = key_validate_name(key->sort_key.data, key->sort_key.len);
		if (err < 0)
			return err;
	}
	position_bytes = key_encode_position(position, key->partition_key.data,
					     key->partition_key.len, key->sort_key.data,
					     key->sort_key.len, key->has_sort_key);
	out->size_bytes = key_encode_storage(out->bytes, key->table_id, position, position_bytes);
	return 0;
}

/* FNV-1a of the storage key picks the stripe. */
static pthread_mutex_t *store_stripe(struct store *store, const struct store_key *key)
{
	uint64_t hash = 14695981039346656037ull;

	for (size_t i = 0; i < key->size_bytes; i++) {
		hash ^= key->bytes[i];
		hash *= 1099511628211ull;
	}
	return &store->stripes[hash % STORE_STRIPE_COUNT];
}

/* Verifies a stored value and decodes it into arena. -EIO (logged) when it
 * is damaged: it must never reach a caller. */
static int store_decode(const uint8_t *key, size_t key_bytes, const uint8_t *value,
			size_t value_bytes, struct arena *arena, Quorum__ItemRecord **record)
{
	char text[STORE_KEY_TEXT_BYTES];
	int err = item_decode(value, value_bytes, arena, record);

	if (err == -ENOMEM)
		return err;
	if (err < 0) {
		store_describe_key(key, key_bytes, text, sizeof(text));
		log_error("%s: stored value of %zu bytes fails its checksum; not served", text,
			  value_bytes);
		return -EIO;
	}
	return 0;
}

/* The stored item at key, decoded into arena: -ENOENT, -EIO, -ENOMEM. */
static int store_read(struct store *store, const struct store_key *key, struct arena *arena,
		      Quorum__ItemRecord **record)
{
	char text[STORE_KEY_TEXT_BYTES];
	char *error = NULL;
	size_t value_bytes = 0;
	char *value;
	int err;

	value = leveldb_get(store->db, store->read_options, (const char *)key->bytes,
			    key->size_bytes, &value_bytes, &error);
	if (error) {
		store_describe_key(key->bytes, key->size_bytes, text, sizeof(text));
		log_error("%s: read failed: %s", text, error);
		leveldb_free(error);
		leveldb_free(value);
		return -EIO;
	}
	if (!value)
		return -ENOENT;
	err = store_decode(key->bytes, key->size_bytes, (const uint8_t *)value, value_bytes, arena,
			   record);
	leveldb_free(value);
	return err;
}

/* A committed command of a replication group: its item change is staged in batch, which
 * store_group_apply writes (synced) together with the client session and the applied
 * state, so the three are durable at once or not at all. */
struct store_group_write {
	leveldb_writebatch_t *batch;
	uint64_t item_max_bytes;	/* the proposer's limit; 0: the store's */
	bool staged;			/* an item change is in batch */
};

/* The largest body a write may leave: the command's limit in a group, else the store's. */
static uint64_t store_limit(const struct store *store, const struct store_group_write *gw)
{
	return gw && gw->item_max_bytes ? gw->item_max_bytes : store_item_max_bytes(store);
}

/* Puts value at key (deletes key when value is NULL): synced at once, or staged in gw's
 * batch. */
static void store_write_batch(struct store *store, const struct store_key *key,
			      const uint8_t *value, size_t value_bytes,
			      struct store_group_write *gw, char **error)
{
	if (gw) {
		if (value)
			leveldb_writebatch_put(gw->batch, (const char *)key->bytes,
					       key->size_bytes, (const char *)value, value_bytes);
		else
			leveldb_writebatch_delete(gw->batch, (const char *)key->bytes,
						  key->size_bytes);
		gw->staged = true;
	} else if (value) {
		leveldb_put(store->db, store->write_options, (const char *)key->bytes,
			    key->size_bytes, (const char *)value, value_bytes, error);
	} else {
		leveldb_delete(store->db, store->write_options, (const char *)key->bytes,
			       key->size_bytes, error);
	}
}

/* Seals and writes record at key, synced before it returns (with gw: in gw's batch). */
static int store_write(struct store *store, const struct store_key *key,
		       Quorum__ItemRecord *record, struct store_group_write *gw)
{
	char text[STORE_KEY_TEXT_BYTES];
	char *error = NULL;
	uint8_t *value;
	size_t value_bytes;
	int err;

	item_seal_body(record);
	err = item_encode(record, &value, &value_bytes);
	if (err < 0)
		return err;
	store_write_batch(store, key, value, value_bytes, gw, &error);
	free(value);
	if (error) {
		store_describe_key(key->bytes, key->size_bytes, text, sizeof(text));
		log_error("%s: write failed: %s", text, error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

/* The file type must be regular or symlink; none given means regular. Bits
 * beyond type and permissions are refused. */
static int store_normalize_mode(uint32_t mode, uint32_t *out)
{
	uint32_t type = mode & S_IFMT;

	if (type == 0)
		type = S_IFREG;
	else if (type != S_IFREG && type != S_IFLNK)
		return -EINVAL;
	if (mode & ~(uint32_t)(S_IFMT | 07777))
		return -EINVAL;
	*out = type | (mode & 07777);
	return 0;
}

/* Checks the arguments of a condition before any lock is taken. */
static int store_check_condition_args(Quorum__Condition condition, bool has_expect_version,
				      bool absent_allowed)
{
	switch (condition) {
	case QUORUM__CONDITION__COND_NONE:
		return 0;
	case QUORUM__CONDITION__COND_ABSENT:
		return absent_allowed ? 0 : -EINVAL;
	case QUORUM__CONDITION__COND_VERSION:
		return has_expect_version ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

/* Whether the stored item (NULL when absent) meets the condition. */
static int store_check_condition(Quorum__Condition condition, uint64_t expect_version,
				 const Quorum__ItemRecord *old)
{
	switch (condition) {
	case QUORUM__CONDITION__COND_ABSENT:
		return old ? -EEXIST : 0;
	case QUORUM__CONDITION__COND_VERSION:
		if (!old)
			return -ENOENT;
		return old->meta->version == expect_version ? 0 : -ESTALE;
	default:
		return 0;
	}
}

/* --------------------------------------------------------------- xattrs */

static int store_check_xattr_name(const ProtobufCBinaryData *name)
{
	static const char prefix[] = "user.";
	const size_t prefix_bytes = sizeof(prefix) - 1;

	if (name->len < prefix_bytes || memcmp(name->data, prefix, prefix_bytes) != 0)
		return -ENOTSUP;
	if (name->len == prefix_bytes || memchr(name->data, '\0', name->len))
		return -EINVAL;
	if (name->len > STORE_XATTR_NAME_MAX_BYTES)
		return -ERANGE;
	return 0;
}

static int store_check_xattr(const Quorum__Xattr *xattr)
{
	int err = store_check_xattr_name(&xattr->name);

	if (err < 0)
		return err;
	if (xattr->value.len > STORE_XATTR_VALUE_MAX_BYTES)
		return -E2BIG;
	return 0;
}

static int store_check_xattr_total(Quorum__Xattr *const *xattrs, size_t count)
{
	size_t total_bytes = 0;

	for (size_t i = 0; i < count; i++)
		total_bytes += xattrs[i]->name.len + xattrs[i]->value.len;
	return total_bytes > STORE_XATTR_TOTAL_MAX_BYTES ? -ENOSPC : 0;
}

static int store_compare_xattrs(const void *a, const void *b)
{
	const Quorum__Xattr *x = *(Quorum__Xattr *const *)a;
	const Quorum__Xattr *y = *(Quorum__Xattr *const *)b;

	return store_compare_bytes(x->name.data, x->name.len, y->name.data, y->name.len);
}

/* Checks a put's xattrs and returns them sorted by name (the stored order)
 * in an array of arena; two with one name are -EINVAL. */
static int store_sort_xattrs(struct arena *arena, Quorum__Xattr *const *xattrs, size_t count,
			     Quorum__Xattr ***sorted)
{
	Quorum__Xattr **out;
	int err;

	*sorted = NULL;
	if (count == 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		if (!xattrs[i])
			return -EINVAL;
		err = store_check_xattr(xattrs[i]);
		if (err < 0)
			return err;
	}
	err = store_check_xattr_total(xattrs, count);
	if (err < 0)
		return err;
	out = arena_alloc(arena, count * sizeof(*out));
	if (!out)
		return -ENOMEM;
	memcpy(out, xattrs, count * sizeof(*out));
	qsort(out, count, sizeof(*out), store_compare_xattrs);
	for (size_t i = 1; i < count; i++)
		if (store_compare_xattrs(&out[i - 1], &out[i]) == 0)
			return -EINVAL;
	*sorted = out;
	return 0;
}

/* Where name is in a sorted xattr array: *found tells whether it is there;
 * the index is the match or the place to insert it. */
static size_t store_find_xattr(Quorum__Xattr *const *xattrs, size_t count,
			       const ProtobufCBinaryData *name, bool *found)
{
	size_t lo = 0, hi = count;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = store_compare_bytes(xattrs[mid]->name.data, xattrs[mid]->name.len,
					    name->data, name->len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ------------------------------------------------------------ open, close */

int store_open(const char *dir, struct store **out)
{
	struct store *store = calloc(1, sizeof(*store));
	char *error = NULL;
	int i;

	if (!store)
		return -ENOMEM;
	store->options = leveldb_options_create();
	leveldb_options_set_create_if_missing(store->options, 1);
	leveldb_options_set_paranoid_checks(store->options, 1);
	store->read_options = leveldb_readoptions_create();
	leveldb_readoptions_set_verify_checksums(store->read_options, 1);
	store->scan_options = leveldb_readoptions_create();
	leveldb_readoptions_set_verify_checksums(store->scan_options, 1);
	/* A scan passes over many items once; keep the cache for gets. */
	leveldb_readoptions_set_fill_cache(store->scan_options, 0);
	store->write_options = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(store->write_options, 1);
	atomic_init(&store->item_max_bytes, ITEM_DEFAULT_MAX_BYTES);

	store->db = leveldb_open(store->options, dir, &error);
	if (error) {
		log_error("cannot open the item store at %s: %s", dir, error);
		leveldb_free(error);
		store->db = NULL;
		store_close(store);
		return -EIO;
	}
	for (i = 0; i < STORE_STRIPE_COUNT; i++) {
		if (pthread_mutex_init(&store->stripes[i], NULL) != 0) {
			while (--i >= 0)
				pthread_mutex_destroy(&store->stripes[i]);
			leveldb_close(store->db);
			store->db = NULL;
			store_close(store);
			return -ENOMEM;
		}
	}
	*out = store;
	return 0;
}

void store_close(struct store *store)
{
	if (!store)
		return;
	if (store->db) {
		leveldb_close(store->db);
		for (int i = 0; i < STORE_STRIPE_COUNT; i++)
			pthread_mutex_destroy(&store->stripes[i]);
	}
	leveldb_writeoptions_destroy(store->write_options);
	leveldb_readoptions_destroy(store->scan_options);
	leveldb_readoptions_destroy(store->read_options);
	leveldb_options_destroy(store->options);
	free(store);
}

void store_set_item_max_bytes(struct store *store, uint64_t item_max_bytes)
{
	atomic_store(&store->item_max_bytes, item_max_bytes);
}

uint64_t store_item_max_bytes(const struct store *store)
{
	return atomic_load(&((struct store *)store)->item_max_bytes);
}

/* --------------------------------------------------------------- get */

/* A copy of record in arena with its metadata and xattrs, without body. */
static int store_copy_without_body(const Quorum__ItemRecord *record, struct arena *arena,
				   Quorum__ItemRecord **out)
{
	Quorum__ItemRecord *copy = arena_alloc(arena, sizeof(*copy));

	if (!copy)
		return -ENOMEM;
	quorum__item_record__init(copy);
	copy->format = record->format;
	copy->meta = arena_memdup(arena, record->meta, sizeof(*record->meta));
	if (!copy->meta)
		return -ENOMEM;
	if (record->n_xattrs) {
		copy->xattrs = arena_alloc(arena, record->n_xattrs * sizeof(*copy->xattrs));
		if (!copy->xattrs)
			return -ENOMEM;
	}
	for (size_t i = 0; i < record->n_xattrs; i++) {
		const Quorum__Xattr *from = record->xattrs[i];
		Quorum__Xattr *to = arena_alloc(arena, sizeof(*to));

		if (!to)
			return -ENOMEM;
		quorum__xattr__init(to);
		to->name.len = from->name.len;
		to->name.data = arena_memdup(arena, from->name.data, from->name.len);
		to->value.len = from->value.len;
		to->value.data = arena_memdup(arena, from->value.data, from->value.len);
		if (!to->name.data || !to->value.data)
			return -ENOMEM;
		copy->xattrs[i] = to;
	}
	copy->n_xattrs = record->n_xattrs;
	*out = copy;
	return 0;
}

int store_get(struct store *store, const Quorum__ItemKey *key, bool meta_only,
	      struct arena *arena, Quorum__ItemRecord **out)
{
	struct store_key storage_key;
	Quorum__ItemRecord *record;
	struct arena *scratch;
	int err;

	err = store_key_make(key, &storage_key);
	if (err < 0)
		return err;
	if (!meta_only)
		return store_read(store, &storage_key, arena, out);

	/* getattr comes often: decode aside and copy all but the body, so a
	 * large body is not carried in the caller's arena. */
	scratch = arena_new();
	if (!scratch)
		return -ENOMEM;
	err = store_read(store, &storage_key, scratch, &record);
	if (err == 0)
		err = store_copy_without_body(record, arena, out);
	arena_free(scratch);
	return err;
}

/* --------------------------------------------------------------- put */

static int store_put_at(struct store *store, const Quorum__PutItemRequest *request,
			struct arena *arena, Quorum__ItemMeta **meta,
			struct store_group_write *gw)
{
	Quorum__ItemRecord record = QUORUM__ITEM_RECORD__INIT;
	Quorum__ItemMeta new_meta = QUORUM__ITEM_META__INIT;
	Quorum__ItemRecord *old = NULL;
	Quorum__ItemMeta *result;
	Quorum__Xattr **xattrs = NULL;
	struct store_key key;
	struct arena *scratch;
	pthread_mutex_t *stripe;
	size_t body_bytes;
	uint32_t mode;
	int err;

	err = store_key_make(request->key, &key);
	if (err < 0)
		return err;
	if (!request->meta)
		return -EINVAL;
	err = store_normalize_mode(request->meta->mode, &mode);
	if (err < 0)
		return err;
	body_bytes = request->has_body ? request->body.len : 0;
	if (body_bytes > store_limit(store, gw))
		return -EFBIG;
	err = store_check_condition_args(request->condition, request->has_expect_version, true);
	if (err < 0)
		return err;
	/* Allocated up front: once the write is done, nothing may fail. */
	result = arena_alloc(arena, sizeof(*result));
	scratch = arena_new();
	if (!result || !scratch) {
		arena_free(scratch);
		return -ENOMEM;
	}
	if (!request->keep_xattrs) {
		err = store_sort_xattrs(scratch, request->xattrs, request->n_xattrs, &xattrs);
		if (err < 0)
			goto out;
	}

	stripe = store_stripe(store, &key);
	pthread_mutex_lock(stripe);
	err = store_read(store, &key, scratch, &old);
	if (err == -ENOENT) {
		old = NULL;
		err = 0;
	}
	if (err < 0)
		goto unlock;
	err = store_check_condition(request->condition, request->expect_version, old);
	if (err < 0)
		goto unlock;

	new_meta.mode = mode;
	new_meta.uid = request->meta->uid;
	new_meta.gid = request->meta->gid;
	new_meta.mtime_ns = request->meta->mtime_ns;
	new_meta.ctime_ns = request->meta->ctime_ns;
	new_meta.version = old ? old->meta->version + 1 : 1;
	record.format = ITEM_RECORD_FORMAT;
	record.meta = &new_meta;
	record.has_body = body_bytes > 0;
	record.body.data = body_bytes > 0 ? request->body.data : NULL;
	record.body.len = body_bytes;
	if (request->keep_xattrs) {
		record.n_xattrs = old ? old->n_xattrs : 0;
		record.xattrs = old ? old->xattrs : NULL;
	} else {
		record.n_xattrs = request->n_xattrs;
		record.xattrs = xattrs;
	}
	err = store_write(store, &key, &record, gw);
unlock:
	pthread_mutex_unlock(stripe);
	if (err == 0) {
		*result = new_meta;
		if (meta)
			*meta = result;
	}
out:
	arena_free(scratch);
	return err;
}

/* ------------------------------------------------------------ delete */

static int store_delete_at(struct store *store, const Quorum__DeleteItemRequest *request,
			   struct store_group_write *gw)
{
	char text[STORE_KEY_TEXT_BYTES];
	Quorum__ItemRecord *old = NULL;
	struct store_key key;
	struct arena *scratch;
	pthread_mutex_t *stripe;
	char *error = NULL;
	int err;

	err = store_key_make(request->key, &key);
	if (err < 0)
		return err;
	err = store_check_condition_args(request->condition, request->has_expect_version, false);
	if (err < 0)
		return err;
	scratch = arena_new();
	if (!scratch)
		return -ENOMEM;

	stripe = store_stripe(store, &key);
	pthread_mutex_lock(stripe);
	err = store_read(store, &key, scratch, &old);
	if (err == -EIO && request->condition == QUORUM__CONDITION__COND_NONE) {
		/* Without a condition nothing of the damaged value is needed:
		 * let the user remove it. */
		store_describe_key(key.bytes, key.size_bytes, text, sizeof(text));
		log_warn("%s: deleting a damaged item", text);
		err = 0;
	} else if (err == 0) {
		err = store_check_condition(request->condition, request->expect_version, old);
	}
	if (err < 0)
		goto unlock;
	store_write_batch(store, &key, NULL, 0, gw, &error);
	if (error) {
		store_describe_key(key.bytes, key.size_bytes, text, sizeof(text));
		log_error("%s: delete failed: %s", text, error);
		leveldb_free(error);
		err = -EIO;
	}
unlock:
	pthread_mutex_unlock(stripe);
	arena_free(scratch);
	return err;
}

/* ------------------------------------------------------------ update */

/* Checks what an update asks before any lock is taken; *changes tells
 * whether it asks anything at all. */
static int store_check_update(struct store *store, const Quorum__UpdateItemRequest *request,
			      const struct store_group_write *gw, bool *changes)
{
	const uint32_t flags_known = XATTR_CREATE | XATTR_REPLACE;
	int err;

	if (request->has_mode && (request->mode & ~07777u))
		return -EINVAL;
	if (request->has_truncate_size && request->truncate_size > store_limit(store, gw))
		return -EFBIG;
	if (request->set_xattr) {
		err = store_check_xattr(request->set_xattr);
		if (err < 0)
			return err;
		if (request->set_xattr_flags & ~flags_known ||
		    (request->set_xattr_flags & flags_known) == flags_known)
			return -EINVAL;
	}
	if (request->has_remove_xattr) {
		err = store_check_xattr_name(&request->remove_xattr);
		if (err < 0)
			return err;
	}
	*changes = request->has_mode || request->has_uid || request->has_gid ||
		   request->has_mtime_ns || request->has_ctime_ns || request->has_truncate_size ||
		   request->set_xattr || request->has_remove_xattr;
	return 0;
}

/* Applies set_xattr and remove_xattr to record's xattrs, in a new array of
 * scratch (the old array is shared with the decoded record). */
static int store_update_xattrs(const Quorum__UpdateItemRequest *request,
			       Quorum__ItemRecord *record, struct arena *scratch)
{
	size_t count = record->n_xattrs, index;
	Quorum__Xattr **xattrs;
	bool found;
	int err;

	xattrs = arena_alloc(scratch, (count + 1) * sizeof(*xattrs));
	if (!xattrs)
		return -ENOMEM;
	if (count)
		memcpy(xattrs, record->xattrs, count * sizeof(*xattrs));
	/* Items written by this store keep xattrs sorted; sort anyway so a
	 * record from elsewhere cannot break the search. */
	qsort(xattrs, count, sizeof(*xattrs), store_compare_xattrs);

	if (request->set_xattr) {
		index = store_find_xattr(xattrs, count, &request->set_xattr->name, &found);
		if (found && (request->set_xattr_flags & XATTR_CREATE))
			return -EEXIST;
		if (!found && (request->set_xattr_flags & XATTR_REPLACE))
			return -ENODATA;
		if (found) {
			xattrs[index] = request->set_xattr;
		} else {
			memmove(xattrs + index + 1, xattrs + index,
				(count - index) * sizeof(*xattrs));
			xattrs[index] = request->set_xattr;
			count++;
		}
		err = store_check_xattr_total(xattrs, count);
		if (err < 0)
			return err;
	}
	if (request->has_remove_xattr) {
		index = store_find_xattr(xattrs, count, &request->remove_xattr, &found);
		if (!found)
			return -ENODATA;
		memmove(xattrs + index, xattrs + index + 1, (count - index - 1) * sizeof(*xattrs));
		count--;
	}
	record->xattrs = xattrs;
	record->n_xattrs = count;
	return 0;
}

/* Truncates or extends record's body to size_bytes (zeros past the end). */
static int store_update_size(Quorum__ItemRecord *record, uint64_t size_bytes,
			     struct arena *scratch)
{
	size_t old_bytes = record->has_body ? record->body.len : 0;
	uint8_t *body;

	if (size_bytes == old_bytes)
		return 0;
	if (size_bytes == 0) {
		record->has_body = false;
		record->body.data = NULL;
		record->body.len = 0;
		return 0;
	}
	body = arena_alloc(scratch, (size_t)size_bytes);   /* zeroed */
	if (!body)
		return -ENOMEM;
	if (old_bytes > 0)
		memcpy(body, record->body.data,
		       old_bytes < size_bytes ? old_bytes : (size_t)size_bytes);
	record->has_body = true;
	record->body.data = body;
	record->body.len = (size_t)size_bytes;
	return 0;
}

static int store_update_at(struct store *store, const Quorum__UpdateItemRequest *request,
			   struct arena *arena, Quorum__ItemMeta **meta,
			   struct store_group_write *gw)
{
	Quorum__ItemRecord *record = NULL;
	Quorum__ItemMeta *result;
	struct store_key key;
	struct arena *scratch;
	pthread_mutex_t *stripe;
	bool changes;
	int err;

	err = store_key_make(request->key, &key);
	if (err < 0)
		return err;
	err = store_check_update(store, request, gw, &changes);
	if (err < 0)
		return err;
	result = arena_alloc(arena, sizeof(*result));
	scratch = arena_new();
	if (!result || !scratch) {
		arena_free(scratch);
		return -ENOMEM;
	}

	stripe = store_stripe(store, &key);
	pthread_mutex_lock(stripe);
	err = store_read(store, &key, scratch, &record);
	if (err < 0 || !changes)
		goto unlock;
	if (request->has_mode)
		record->meta->mode = (record->meta->mode & S_IFMT) | request->mode;
	if (request->has_uid)
		record->meta->uid = request->uid;
	if (request->has_gid)
		record->meta->gid = request->gid;
	if (request->has_mtime_ns)
		record->meta->mtime_ns = request->mtime_ns;
	record->meta->ctime_ns = request->has_ctime_ns ? request->ctime_ns : clock_realtime_ns();
	if (request->has_truncate_size) {
		err = store_update_size(record, request->truncate_size, scratch);
		if (err < 0)
			goto unlock;
	}
	if (request->set_xattr || request->has_remove_xattr) {
		err = store_update_xattrs(request, record, scratch);
		if (err < 0)
			goto unlock;
	}
	record->meta->version++;
	record->format = ITEM_RECORD_FORMAT;
	err = store_write(store, &key, record, gw);
unlock:
	pthread_mutex_unlock(stripe);
	if (err == 0) {
		*result = *record->meta;
		if (meta)
			*meta = result;
	}
	arena_free(scratch);
	return err;
}

int store_put(struct store *store, const Quorum__PutItemRequest *request, struct arena *arena,
	      Quorum__ItemMeta **meta)
{
	return store_put_at(store, request, arena, meta, NULL);
}

int store_delete(struct store *store, const Quorum__DeleteItemRequest *request)
{
	return store_delete_at(store, request, NULL);
}

int store_update(struct store *store, const Quorum__UpdateItemRequest *request,
		 struct arena *arena, Quorum__ItemMeta **meta)
{
	return store_update_at(store, request, arena, meta, NULL);
}

/* -------------------------------------------------------------- scan */

/* One scan entry for the item at key (value verified), in arena. */
static int store_scan_entry(const uint8_t *key, size_t key_bytes, const uint8_t *value,
			    size_t value_bytes, struct arena *arena, Quorum__ScanEntry **out)
{
	char text[STORE_KEY_TEXT_BYTES];
	const uint8_t *pk, *sk;
	size_t pk_bytes, sk_bytes;
	Quorum__ItemRecord *record;
	Quorum__ScanEntry *entry;
	struct arena *scratch;
	uint64_t hash;
	bool has_sk;
	int err;

	if (key_decode_position(key + 9, key_bytes - 9, &hash, &pk, &pk_bytes, &sk, &sk_bytes,
				&has_sk) < 0) {
		store_describe_key(key, key_bytes, text, sizeof(text));
		log_error("%s: malformed storage key; not served", text);
		return -EIO;
	}
	entry = arena_alloc(arena, sizeof(*entry));
	if (!entry)
		return -ENOMEM;
	quorum__scan_entry__init(entry);
	entry->position.data = arena_memdup(arena, key + 9, key_bytes - 9);
	entry->position.len = key_bytes - 9;
	entry->partition_key.data = arena_memdup(arena, pk, pk_bytes);
	entry->partition_key.len = pk_bytes;
	if (has_sk) {
		entry->has_sort_key = true;
		entry->sort_key.data = arena_memdup(arena, sk, sk_bytes);
		entry->sort_key.len = sk_bytes;
		if (!entry->sort_key.data)
			return -ENOMEM;
	}
	if (!entry->position.data || !entry->partition_key.data)
		return -ENOMEM;

	/* The body is checked too (it is what the checksum covers), but only
	 * the metadata is kept. */
	scratch = arena_new();
	if (!scratch)
		return -ENOMEM;
	err = store_decode(key, key_bytes, value, value_bytes, scratch, &record);
	if (err == 0) {
		entry->meta = arena_memdup(arena, record->meta, sizeof(*record->meta));
		if (!entry->meta)
			err = -ENOMEM;
	}
	arena_free(scratch);
	if (err < 0)
		return err;
	*out = entry;
	return 0;
}

int store_scan(struct store *store, const Quorum__ScanRequest *request, struct arena *arena,
	       Quorum__ScanResponse **out)
{
	uint8_t start[KEY_STORAGE_MAX_BYTES], prefix[KEY_STORAGE_MAX_BYTES];
	uint8_t after[KEY_STORAGE_MAX_BYTES], position[KEY_POSITION_MAX_BYTES];
	size_t start_bytes, prefix_bytes = 0, after_bytes = 0, position_bytes;
	size_t limit = request->limit;
	Quorum__ScanResponse *response;
	leveldb_iterator_t *iterator;
	char *error = NULL;
	int err = 0;

	if (request->table_id == 0 || request->limit == 0 ||
	    request->hash_first > request->hash_last)
		return -EINVAL;
	if (limit > STORE_SCAN_LIMIT_MAX)
		limit = STORE_SCAN_LIMIT_MAX;
	response = arena_alloc(arena, sizeof(*response));
	if (!response)
		return -ENOMEM;
	quorum__scan_response__init(response);
	response->entries = arena_alloc(arena, limit * sizeof(*response->entries));
	if (!response->entries)
		return -ENOMEM;

	start_bytes = key_encode_hash_start(start, request->table_id, request->hash_first);
	if (request->has_partition_key) {
		uint64_t hash;

		err = key_validate_name(request->partition_key.data, request->partition_key.len);
		if (err < 0)
			return -EINVAL;
		position_bytes = key_encode_position(position, request->partition_key.data,
						     request->partition_key.len, NULL, 0, false);
		hash = key_get_u64(position);
		if (hash < request->hash_first || hash > request->hash_last) {
			*out = response;   /* the key lives in another partition */
			return 0;
		}
		prefix_bytes = key_encode_storage(prefix, request->table_id, position,
						  position_bytes);
		memcpy(start, prefix, prefix_bytes);
		start_bytes = prefix_bytes;
	}
	if (request->has_after) {
		if (request->after.len < 9 || request->after.len > KEY_POSITION_MAX_BYTES)
			return -EINVAL;
		after_bytes = key_encode_storage(after, request->table_id, request->after.data,
						 request->after.len);
		if (store_compare_bytes(after, after_bytes, start, start_bytes) > 0) {
			memcpy(start, after, after_bytes);
			start_bytes = after_bytes;
		}
	}

	iterator = leveldb_create_iterator(store->db, store->scan_options);
	for (leveldb_iter_seek(iterator, (const char *)start, start_bytes);
	     leveldb_iter_valid(iterator); leveldb_iter_next(iterator)) {
		size_t key_bytes, value_bytes;
		const uint8_t *key = (const uint8_t *)leveldb_iter_key(iterator, &key_bytes);
		const uint8_t *value;

		/* Past the table or the range: done. hash_last is compared,
		 * never hash_last + 1, which would wrap at 2^64 - 1. */
		if (key_bytes < 17 || key[0] != KEY_STORAGE_PREFIX ||
		    key_get_u64(key + 1) != request->table_id ||
		    key_get_u64(key + 9) > request->hash_last)
			break;
		if (prefix_bytes) {
			if (key_bytes < prefix_bytes || memcmp(key, prefix, prefix_bytes) != 0)
				break;
			/* A longer partition key that shares the prefix. */
			if (key_bytes > prefix_bytes && key[prefix_bytes] != 0)
				continue;
		}
		if (after_bytes && store_compare_bytes(key, key_bytes, after, after_bytes) <= 0)
			continue;
		if (response->n_entries == limit) {
			response->more = true;
			break;
		}
		value = (const uint8_t *)leveldb_iter_value(iterator, &value_bytes);
		err = store_scan_entry(key, key_bytes, value, value_bytes, arena,
				       &response->entries[response->n_entries]);
		if (err < 0)
			break;
		response->n_entries++;
	}
	leveldb_iter_get_error(iterator, &error);
	if (error) {
		log_error("scan of table %llu failed: %s", (unsigned long long)request->table_id,
			  error);
		leveldb_free(error);
		if (err == 0)
			err = -EIO;
	}
	leveldb_iter_destroy(iterator);
	if (err < 0)
		return err;
	*out = response;
	return 0;
}

/* ------------------------------------------------ replication groups */

static void store_group_key(uint8_t out[STORE_GROUP_KEY_BYTES], uint64_t table_id,
			    uint64_t partition_id)
{
	out[0] = 'g';
	key_put_u64(out + 1, table_id);
	key_put_u64(out + 9, partition_id);
}

static void store_le_put(uint8_t *out, uint64_t value, int bytes)
{
	for (int i = 0; i < bytes; i++)
		out[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t store_le_get(const uint8_t *in, int bytes)
{
	uint64_t value = 0;

	for (int i = 0; i < bytes; i++)
		value |= (uint64_t)in[i] << (8 * i);
	return value;
}

/* Encodes the applied state; returns its size. */
static size_t store_group_value(uint8_t *out, uint64_t applied_slot, const uint32_t *members,
				size_t member_count)
{
	out[0] = STORE_GROUP_FORMAT;
	store_le_put(out + 1, applied_slot, 8);
	store_le_put(out + 9, member_count, 4);
	for (size_t i = 0; i < member_count; i++)
		store_le_put(out + 13 + 4 * i, members[i], 4);
	return 13 + 4 * member_count;
}

static int store_group_value_decode(const uint8_t *value, size_t value_bytes,
				    uint64_t *applied_slot, uint32_t *members,
				    size_t *member_count)
{
	size_t count;

	if (value_bytes < 13 || value[0] != STORE_GROUP_FORMAT)
		return -EIO;
	count = (size_t)store_le_get(value + 9, 4);
	if (count > PAXOS_MEMBERS_MAX || value_bytes != 13 + 4 * count)
		return -EIO;
	*applied_slot = store_le_get(value + 1, 8);
	for (size_t i = 0; i < count; i++)
		members[i] = (uint32_t)store_le_get(value + 13 + 4 * i, 4);
	*member_count = count;
	return 0;
}

int store_group_state(struct store *store, uint64_t table_id, uint64_t partition_id,
		      uint64_t *applied_slot, uint32_t *members, size_t *member_count)
{
	uint8_t key[STORE_GROUP_KEY_BYTES];
	char *error = NULL;
	size_t value_bytes = 0;
	char *value;
	int err;

	*applied_slot = 0;
	*member_count = 0;
	store_group_key(key, table_id, partition_id);
	value = leveldb_get(store->db, store->read_options, (const char *)key, sizeof(key),
			    &value_bytes, &error);
	if (error) {
		log_error("group %" PRIu64 "/%" PRIu64 ": reading the applied state failed: %s",
			  table_id, partition_id, error);
		leveldb_free(error);
		leveldb_free(value);
		return -EIO;
	}
	if (!value)
		return 0;
	err = store_group_value_decode((const uint8_t *)value, value_bytes, applied_slot, members,
				       member_count);
	leveldb_free(value);
	if (err < 0)
		log_error("group %" PRIu64 "/%" PRIu64 ": the applied state is damaged", table_id,
			  partition_id);
	return err;
}

/* A CONFIG entry's member list (paxos_config_encode's format, decoded here so the store
 * links without the core). The core validated it; a malformed one leaves the list as is. */
static void store_group_config_decode(const uint8_t *value, size_t value_bytes,
				      uint32_t *members, size_t *member_count)
{
	size_t count;

	if (value_bytes < 4)
		return;
	count = (size_t)store_le_get(value, 4);
	if (count == 0 || count > PAXOS_MEMBERS_MAX || value_bytes != 4 + 4 * count)
		return;
	for (size_t i = 0; i < count; i++)
		members[i] = (uint32_t)store_le_get(value + 4 + 4 * i, 4);
	*member_count = count;
}

/* Packs meta into the entry's result bytes. */
static void store_group_result(struct group_apply *a, const Quorum__ItemMeta *meta)
{
	size_t size_bytes = quorum__item_meta__get_packed_size(meta);

	if (size_bytes <= sizeof(a->result))
		a->result_bytes = quorum__item_meta__pack(meta, a->result);
}

/* Calls fn for every key from start on while in_range says it is the group's, in order. */
static int store_group_range(struct store_group *group, const uint8_t *start, size_t start_bytes,
			     bool (*in_range)(const struct store_group *group, const uint8_t *key,
					      size_t key_bytes),
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

		if (!in_range(group, key, key_bytes))
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

static bool store_group_has_item(const struct store_group *group, const uint8_t *key,
				 size_t key_bytes)
{
	return key_bytes >= 17 && key[0] == KEY_STORAGE_PREFIX &&
	       key_get_u64(key + 1) == group->table_id &&
	       key_get_u64(key + 9) >= group->hash_first && key_get_u64(key + 9) <= group->hash_last;
}

static bool store_group_has_session(const struct store_group *group, const uint8_t *key,
				    size_t key_bytes)
{
	return key_bytes == SESSION_KEY_BYTES && key[0] == SESSION_KEY_PREFIX &&
	       key_get_u64(key + 1) == group->table_id &&
	       key_get_u64(key + 9) == group->partition_id;
}

static int store_group_sessions(struct store_group *group,
				int (*fn)(void *ctx, const uint8_t *key, size_t key_bytes,
					  const uint8_t *value, size_t value_bytes),
				void *ctx)
{
	uint8_t start[SESSION_KEY_BYTES];

	session_key(start, group->table_id, group->partition_id, 0);
	return store_group_range(group, start, sizeof(start), store_group_has_session, fn, ctx);
}

/* Every key of the group's state but its applied-state record: the items of its hash range,
 * then its client sessions. */
static int store_group_each(struct store_group *group,
			    int (*fn)(void *ctx, const uint8_t *key, size_t key_bytes,
				      const uint8_t *value, size_t value_bytes),
			    void *ctx)
{
	uint8_t start[17];
	int err;

	key_encode_hash_start(start, group->table_id, group->hash_first);
	err = store_group_range(group, start, sizeof(start), store_group_has_item, fn, ctx);
	return err < 0 ? err : store_group_sessions(group, fn, ctx);
}

/* The client session of id in the group (NULL: none yet). -EIO when unreadable. */
static int store_session_read(struct store_group *group, const Quorum__RequestId *id,
			      struct arena *arena, Quorum__ClientSession **out)
{
	uint8_t key[SESSION_KEY_BYTES];
	char *error = NULL;
	size_t value_bytes = 0;
	char *value;
	int err;

	*out = NULL;
	session_key(key, group->table_id, group->partition_id, id->client_id);
	value = leveldb_get(group->store->db, group->store->read_options, (const char *)key,
			    sizeof(key), &value_bytes, &error);
	if (error) {
		log_error("group %" PRIu64 "/%" PRIu64 ": reading a client session failed: %s",
			  group->table_id, group->partition_id, error);
		leveldb_free(error);
		leveldb_free(value);
		return -EIO;
	}
	if (!value)
		return 0;
	err = session_decode((const uint8_t *)value, value_bytes, arena, out);
	leveldb_free(value);
	if (err == -EBADMSG) {
		log_error("group %" PRIu64 "/%" PRIu64 ": the session of client %016" PRIx64
			  " is damaged", group->table_id, group->partition_id, id->client_id);
		err = -EIO;
	}
	return err;
}

/* Stages the session of id with the entry's outcome in gw's batch. */
static int store_session_stage(struct store_group *group, const Quorum__RequestId *id,
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
	leveldb_writebatch_put(gw->batch, (const char *)key, sizeof(key), (const char *)value,
			       value_bytes);
	free(value);
	return 0;
}

struct store_sweep {
	struct store_group_write *gw;
	int64_t now_ns;
	struct arena *arena;
};

static int store_sweep_session(void *ctx, const uint8_t *key, size_t key_bytes,
			       const uint8_t *value, size_t value_bytes)
{
	struct store_sweep *sweep = ctx;
	Quorum__ClientSession *session;

	/* A damaged session is kept: reading it fails its client's next write loudly. */
	if (session_decode(value, value_bytes, sweep->arena, &session) == 0 &&
	    session_idle(session, sweep->now_ns))
		leveldb_writebatch_delete(sweep->gw->batch, (const char *)key, key_bytes);
	return 0;
}

/* Applies one decoded command in gw's batch: its outcome goes to a->status, a->result; a
 * write the client's session has answered before is answered the same way and changes
 * nothing. Returns 0, or -EIO/-ENOMEM when the store failed (nothing may be written). */
static int store_group_command(struct store_group *group, const Quorum__GroupCommand *command,
			       uint64_t slot, struct store_group_write *gw, struct arena *arena,
			       struct group_apply *a)
{
	const Quorum__RequestId *id = command->request_id;
	Quorum__ClientSession *session = NULL;
	const Quorum__SessionReply *reply;
	Quorum__ItemMeta *meta = NULL;
	Quorum__UpdateItemRequest update;
	int err;

	if (id && (id->client_id == 0 || id->floor > id->seq)) {
		a->status = -EINVAL;
		return 0;
	}
	if (id) {
		err = store_session_read(group, id, arena, &session);
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
	default:
		a->status = -EINVAL;
		break;
	}
	/* An I/O failure of the item write is the store's, not the command's. */
	if (a->status == -EIO || a->status == -ENOMEM)
		return a->status;
	if (a->status == 0 && meta)
		store_group_result(a, meta);
	if (id) {
		err = store_session_stage(group, id, session, command->now_ns, a, arena, gw);
		if (err < 0)
			return err;
	}
	if (slot % STORE_SESSION_SWEEP_SLOTS == 0) {
		struct store_sweep sweep = { gw, command->now_ns, arena };

		return store_group_sessions(group, store_sweep_session, &sweep);
	}
	return 0;
}

/* Applies one entry and its applied slot in one synced batch. */
static int store_group_apply_one(struct store_group *group, struct group_apply *a,
				 const uint32_t *members, size_t member_count)
{
	struct store_group_write gw = { 0 };
	uint8_t key[STORE_GROUP_KEY_BYTES], value[STORE_GROUP_VALUE_BYTES_MAX];
	char *error = NULL;
	int err = 0;

	a->status = 0;
	a->result_bytes = 0;
	gw.batch = leveldb_writebatch_create();
	if (!gw.batch)
		return -ENOMEM;
	if (a->type == PAXOS_ENTRY_NORMAL) {
		struct arena *arena = arena_new();
		Quorum__GroupCommand *command;

		if (!arena) {
			leveldb_writebatch_destroy(gw.batch);
			return -ENOMEM;
		}
		command = quorum__group_command__unpack(arena_protobuf_allocator(arena),
							a->command_bytes, a->command);
		if (!command || command->version < 1)
			a->status = -EINVAL;	/* a result: nothing changes but the slot */
		else
			err = store_group_command(group, command, a->slot, &gw, arena, a);
		arena_free(arena);
	}
	if (!err) {
		store_group_key(key, group->table_id, group->partition_id);
		leveldb_writebatch_put(gw.batch, (const char *)key, sizeof(key), (const char *)value,
				       store_group_value(value, a->slot, members, member_count));
		leveldb_write(group->store->db, group->store->write_options, gw.batch, &error);
		if (error) {
			log_error("group %" PRIu64 "/%" PRIu64 ": applying slot %" PRIu64
				  " failed: %s", group->table_id, group->partition_id, a->slot,
				  error);
			leveldb_free(error);
			err = -EIO;
		}
	}
	leveldb_writebatch_destroy(gw.batch);
	return err;
}

int store_group_apply(struct store_group *group, struct group_apply *entries, size_t count)
{
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	uint64_t applied_slot;
	int err;

	/* Members carry over from entry to entry; a CONFIG entry replaces them. */
	err = store_group_state(group->store, group->table_id, group->partition_id,
				&applied_slot, members, &member_count);
	if (err < 0)
		return err;
	for (size_t i = 0; i < count; i++) {
		struct group_apply *a = &entries[i];

		if (a->slot <= applied_slot)
			continue;	/* already in the store (a crash before the WAL knew) */
		if (a->type == PAXOS_ENTRY_CONFIG)
			store_group_config_decode(a->command, a->command_bytes, members,
						  &member_count);
		err = store_group_apply_one(group, a, members, member_count);
		if (err < 0)
			return err;
		applied_slot = a->slot;
	}
	return 0;
}

struct store_snapshot_buf {
	uint8_t *bytes;
	size_t size_bytes;
	size_t cap_bytes;
};

static int store_snapshot_append(struct store_snapshot_buf *b, const void *data, size_t size)
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

static int store_snapshot_item(void *ctx, const uint8_t *key, size_t key_bytes,
			       const uint8_t *value, size_t value_bytes)
{
	struct store_snapshot_buf *b = ctx;
	uint8_t len[4];
	int err;

	if (key_bytes > UINT32_MAX || value_bytes > UINT32_MAX)
		return -EFBIG;
	store_le_put(len, key_bytes, 4);
	err = store_snapshot_append(b, len, 4);
	if (!err)
		err = store_snapshot_append(b, key, key_bytes);
	store_le_put(len, value_bytes, 4);
	if (!err)
		err = store_snapshot_append(b, len, 4);
	if (!err)
		err = store_snapshot_append(b, value, value_bytes);
	return err;
}

static int store_group_snapshot_get(void *ctx, uint8_t **bytes, size_t *size_bytes,
				    uint64_t *through_slot)
{
	struct store_group *group = ctx;
	struct store_snapshot_buf b = { 0 };
	uint8_t head[STORE_GROUP_VALUE_BYTES_MAX];
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	uint64_t applied_slot;
	int err;

	/* The state and the items must be of the same moment: one thread applies. */
	err = store_group_state(group->store, group->table_id, group->partition_id,
				&applied_slot, members, &member_count);
	if (err < 0)
		return err;
	err = store_snapshot_append(&b, head, store_group_value(head, applied_slot, members,
								member_count));
	if (!err)
		err = store_group_each(group, store_snapshot_item, &b);
	if (err < 0) {
		free(b.bytes);
		return err;
	}
	*bytes = b.bytes;
	*size_bytes = b.size_bytes;
	*through_slot = applied_slot;
	return 0;
}

static int store_snapshot_delete(void *ctx, const uint8_t *key, size_t key_bytes,
				 const uint8_t *value, size_t value_bytes)
{
	(void)value;
	(void)value_bytes;
	leveldb_writebatch_delete(ctx, (const char *)key, key_bytes);
	return 0;
}

static int store_group_snapshot_install(void *ctx, uint64_t through_slot, const uint8_t *bytes,
					size_t size_bytes, const uint32_t *members,
					size_t member_count)
{
	struct store_group *group = ctx;
	uint32_t snap_members[PAXOS_MEMBERS_MAX];
	uint8_t key[STORE_GROUP_KEY_BYTES], value[STORE_GROUP_VALUE_BYTES_MAX];
	leveldb_writebatch_t *batch;
	size_t snap_count, offset;
	uint64_t snap_slot;
	char *error = NULL;
	int err;

	if (size_bytes < 13 || member_count > PAXOS_MEMBERS_MAX)
		return -EINVAL;
	offset = 13 + 4 * (size_t)store_le_get(bytes + 9, 4);
	if (offset > size_bytes ||
	    store_group_value_decode(bytes, offset, &snap_slot, snap_members, &snap_count) != 0 ||
	    snap_slot != through_slot)
		return -EINVAL;
	batch = leveldb_writebatch_create();
	if (!batch)
		return -ENOMEM;
	err = store_group_each(group, store_snapshot_delete, batch);
	while (!err && offset < size_bytes) {
		size_t key_bytes, value_bytes;
		const uint8_t *k, *v;

		if (size_bytes - offset < 4)
			break;
		key_bytes = (size_t)store_le_get(bytes + offset, 4);
		if (size_bytes - offset - 4 < key_bytes + 4) {
			err = -EINVAL;
			break;
		}
		k = bytes + offset + 4;
		value_bytes = (size_t)store_le_get(k + key_bytes, 4);
		if (size_bytes - offset - 8 - key_bytes < value_bytes) {
			err = -EINVAL;
			break;
		}
		v = k + key_bytes + 4;
		if (!store_group_has_item(group, k, key_bytes) &&
		    !store_group_has_session(group, k, key_bytes)) {
			err = -EINVAL;
			break;
		}
		leveldb_writebatch_put(batch, (const char *)k, key_bytes, (const char *)v,
				       value_bytes);
		offset += 8 + key_bytes + value_bytes;
	}
	if (!err && offset != size_bytes)
		err = -EINVAL;
	if (!err) {
		store_group_key(key, group->table_id, group->partition_id);
		leveldb_writebatch_put(batch, (const char *)key, sizeof(key), (const char *)value,
				       store_group_value(value, through_slot,
							 member_count ? members : snap_members,
							 member_count ? member_count : snap_count));
		leveldb_write(group->store->db, group->store->write_options, batch, &error);
		if (error) {
			log_error("group %" PRIu64 "/%" PRIu64 ": installing a snapshot failed: %s",
				  group->table_id, group->partition_id, error);
			leveldb_free(error);
			err = -EIO;
		}
	}
	leveldb_writebatch_destroy(batch);
	return err;
}

static int store_group_sm_apply(void *ctx, struct group_apply *entries, size_t count)
{
	return store_group_apply(ctx, entries, count);
}

static int store_group_sm_state(void *ctx, uint64_t *applied_slot, uint32_t *members,
				size_t *member_count)
{
	struct store_group *group = ctx;

	return store_group_state(group->store, group->table_id, group->partition_id,
				 applied_slot, members, member_count);
}

void store_group_sm(struct store_group *ctx, struct group_sm *sm)
{
	sm->ctx = ctx;
	sm->apply = store_group_sm_apply;
	sm->snapshot_get = store_group_snapshot_get;
	sm->snapshot_install = store_group_snapshot_install;
	sm->state = store_group_sm_state;
}
