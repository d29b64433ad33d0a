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
#include "cluster/store_internal.h"

#include "cluster/clock.h"
#include "cluster/item.h"
#include "cluster/keys.h"
#include "cluster/log.h"

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

/* Room for a key described for a log line: every byte escaped as \xNN. */
#define STORE_KEY_TEXT_BYTES (4 * KEY_STORAGE_MAX_BYTES + 64)

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
		err = key_validate_sort_key(key->sort_key.data, key->sort_key.len);
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

/* The item at key, decoded into arena: what gw staged for it (when given), else the stored
 * one. -ENOENT, -EIO, -ENOMEM. */
static int store_read(struct store *store, const struct store_key *key,
		      const struct store_group_write *gw, struct arena *arena,
		      Quorum__ItemRecord **record)
{
	char text[STORE_KEY_TEXT_BYTES];
	char *error = NULL;
	size_t value_bytes = 0;
	const uint8_t *staged;
	char *value;
	int err;

	if (gw && staged_writes_get(gw->writes, key->bytes, key->size_bytes, &staged,
				    &value_bytes)) {
		if (!staged)
			return -ENOENT;
		return store_decode(key->bytes, key->size_bytes, staged, value_bytes, arena,
				    record);
	}
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

/* The largest body a write may leave: the command's limit in a group, else the store's. */
static uint64_t store_limit(const struct store *store, const struct store_group_write *gw)
{
	return gw && gw->item_max_bytes ? gw->item_max_bytes : store_item_max_bytes(store);
}

/* Puts value at key (deletes key when value is NULL): synced at once, or staged in gw.
 * Returns 0 or -ENOMEM (staging); a write's failure is in *error. */
static int store_write_batch(struct store *store, const struct store_key *key,
			     const uint8_t *value, size_t value_bytes,
			     struct store_group_write *gw, char **error)
{
	if (gw)
		return staged_writes_put(gw->writes, key->bytes, key->size_bytes, value,
					 value_bytes);
	if (value) {
		leveldb_put(store->db, store->write_options, (const char *)key->bytes,
			    key->size_bytes, (const char *)value, value_bytes, error);
	} else {
		leveldb_delete(store->db, store->write_options, (const char *)key->bytes,
			       key->size_bytes, error);
	}
	return 0;
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
	err = store_write_batch(store, key, value, value_bytes, gw, &error);
	free(value);
	if (err < 0)
		return err;
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

/* The mode an item is stored with: a directory marker (an empty sort key,
 * keys.h) is a directory; any other item as store_normalize_mode says. */
static int store_normalize_item_mode(const Quorum__ItemKey *key, uint32_t mode, uint32_t *out)
{
	uint32_t type = mode & S_IFMT;

	if (!key->has_sort_key || key->sort_key.len > 0)
		return store_normalize_mode(mode, out);
	if ((type != 0 && type != S_IFDIR) || (mode & ~(uint32_t)(S_IFMT | 07777)))
		return -EINVAL;
	*out = S_IFDIR | (mode & 07777);
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
	for (i = 0; i <= STORE_STRIPE_COUNT; i++) {
		pthread_mutex_t *lock = i < STORE_STRIPE_COUNT ? &store->stripes[i] :
				       &store->groups_lock;

		if (pthread_mutex_init(lock, NULL) != 0) {
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
		pthread_mutex_destroy(&store->groups_lock);
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
		return store_read(store, &storage_key, NULL, arena, out);

	/* getattr comes often: decode aside and copy all but the body, so a
	 * large body is not carried in the caller's arena. */
	scratch = arena_new();
	if (!scratch)
		return -ENOMEM;
	err = store_read(store, &storage_key, NULL, scratch, &record);
	if (err == 0)
		err = store_copy_without_body(record, arena, out);
	arena_free(scratch);
	return err;
}

/* --------------------------------------------------------------- put */

int store_put_at(struct store *store, const Quorum__PutItemRequest *request,
		 struct arena *arena, Quorum__ItemMeta **meta, struct store_group_write *gw)
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
	err = store_normalize_item_mode(request->key, request->meta->mode, &mode);
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
	err = store_read(store, &key, gw, scratch, &old);
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

int store_delete_at(struct store *store, const Quorum__DeleteItemRequest *request,
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
	err = store_read(store, &key, gw, scratch, &old);
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
	err = store_write_batch(store, &key, NULL, 0, gw, &error);
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

int store_update_at(struct store *store, const Quorum__UpdateItemRequest *request,
		    struct arena *arena, Quorum__ItemMeta **meta, struct store_group_write *gw)
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
	err = store_read(store, &key, gw, scratch, &record);
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

/* The first storage key past every item of key's partition key:
 * 'i' | table id | hash | partition key | 0x01. The items of that partition
 * key (the key alone, or the key, 0x00 and a sort key) all sort below it,
 * and no other partition key does: none holds NUL, so one that extends it
 * goes on with a byte of 1 or more. Writes it to out (which may be key and
 * holds KEY_STORAGE_MAX_BYTES) and returns its length; 0 when key is not an
 * item's storage key. */
static size_t store_scan_skip_key(const uint8_t *key, size_t key_bytes, uint8_t *out)
{
	const uint8_t *separator;
	size_t pk_end;

	if (key_bytes <= 17)
		return 0;
	separator = memchr(key + 17, 0, key_bytes - 17);
	pk_end = separator ? (size_t)(separator - key) : key_bytes;
	if (pk_end == 17 || pk_end - 17 > KEY_NAME_MAX_BYTES)
		return 0;
	memmove(out, key, pk_end);
	out[pk_end] = 1;
	return pk_end + 1;
}

/* Moves a scan on: past the whole partition key of the entry just taken
 * when *skip_bytes says so (distinct_partition_keys), else to the next key. */
static void store_scan_next(leveldb_iterator_t *iterator, const uint8_t *skip,
			    size_t *skip_bytes)
{
	if (*skip_bytes) {
		leveldb_iter_seek(iterator, (const char *)skip, *skip_bytes);
		*skip_bytes = 0;
	} else {
		leveldb_iter_next(iterator);
	}
}

int store_scan(struct store *store, const Quorum__ScanRequest *request, struct arena *arena,
	       Quorum__ScanResponse **out)
{
	uint8_t start[KEY_STORAGE_MAX_BYTES], prefix[KEY_STORAGE_MAX_BYTES];
	uint8_t after[KEY_STORAGE_MAX_BYTES], position[KEY_POSITION_MAX_BYTES];
	uint8_t skip[KEY_STORAGE_MAX_BYTES];
	size_t start_bytes, prefix_bytes = 0, after_bytes = 0, position_bytes, skip_bytes = 0;
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
		/* Distinct: go on at the next partition key. */
		if (request->distinct_partition_keys &&
		    (after_bytes = store_scan_skip_key(after, after_bytes, after)) == 0)
			return -EINVAL;
		if (store_compare_bytes(after, after_bytes, start, start_bytes) > 0) {
			memcpy(start, after, after_bytes);
			start_bytes = after_bytes;
		}
		/* The seek skipped what lies below; the skip key itself may
		 * be an item (a longer partition key) and must be seen. */
		if (request->distinct_partition_keys)
			after_bytes = 0;
	}

	iterator = leveldb_create_iterator(store->db, store->scan_options);
	for (leveldb_iter_seek(iterator, (const char *)start, start_bytes);
	     leveldb_iter_valid(iterator); store_scan_next(iterator, skip, &skip_bytes)) {
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
		if (request->distinct_partition_keys)
			skip_bytes = store_scan_skip_key(key, key_bytes, skip);
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
