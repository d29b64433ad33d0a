/* test_store.c: the storage node's item store on a real LevelDB in a
 * temporary directory: round trips, versions, conditions, updates, the
 * item limit, scan paging over hash ranges, atomic read-modify-write under
 * concurrent writers, and that a damaged value is refused, not served. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* nftw */
#endif
#include "cluster/arena.h"
#include "cluster/item.h"
#include "cluster/keys.h"
#include "cluster/store.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>
#include <leveldb/c.h>

#define TABLE_ID 7
#define SCAN_ITEM_COUNT 500

struct fixture {
	char dir[64];
	char items[96];
	struct store *store;
};

/* ---------------------------------------------------------------- helpers */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->items, sizeof(f->items), "%s/items", f->dir);
	assert_int_equal(store_open(f->items, &f->store), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void key_set(Quorum__ItemKey *key, uint64_t table_id, const char *pk, const char *sk)
{
	quorum__item_key__init(key);
	key->table_id = table_id;
	key->partition_key.data = (uint8_t *)pk;
	key->partition_key.len = strlen(pk);
	if (sk) {
		key->has_sort_key = true;
		key->sort_key.data = (uint8_t *)sk;
		key->sort_key.len = strlen(sk);
	}
}

static void xattr_set(Quorum__Xattr *xattr, const char *name, const void *value,
		      size_t value_bytes)
{
	quorum__xattr__init(xattr);
	xattr->name.data = (uint8_t *)name;
	xattr->name.len = strlen(name);
	xattr->value.data = (uint8_t *)value;
	xattr->value.len = value_bytes;
}

/* A put request of (pk, sk) with a body, mode 0644 and fixed times. */
struct put {
	Quorum__PutItemRequest request;
	Quorum__ItemKey key;
	Quorum__ItemMeta meta;
};

static void put_init(struct put *p, uint64_t table_id, const char *pk, const char *sk,
		     const void *body, size_t body_bytes)
{
	quorum__put_item_request__init(&p->request);
	key_set(&p->key, table_id, pk, sk);
	quorum__item_meta__init(&p->meta);
	p->meta.mode = S_IFREG | 0644;
	p->meta.uid = 1000;
	p->meta.gid = 100;
	p->meta.mtime_ns = 1700000000123456789LL;
	p->meta.ctime_ns = 1700000000987654321LL;
	p->request.key = &p->key;
	p->request.meta = &p->meta;
	if (body_bytes) {
		p->request.has_body = true;
		p->request.body.data = (uint8_t *)body;
		p->request.body.len = body_bytes;
	}
}

/* Puts and returns the new version (asserting success). */
static uint64_t put_ok(struct store *store, struct put *p)
{
	struct arena *arena = arena_new();
	Quorum__ItemMeta *meta = NULL;
	uint64_t version;

	assert_non_null(arena);
	assert_int_equal(store_put(store, &p->request, arena, &meta), 0);
	assert_non_null(meta);
	version = meta->version;
	arena_free(arena);
	return version;
}

static int put_simple(struct store *store, uint64_t table_id, const char *pk, const char *sk,
		      const char *body)
{
	struct put p;
	struct arena *arena = arena_new();
	int err;

	put_init(&p, table_id, pk, sk, body, strlen(body));
	err = store_put(store, &p.request, arena, NULL);
	arena_free(arena);
	return err;
}

/* Gets (pk) of TABLE_ID into arena; returns the store's answer. */
static int get_item(struct store *store, const char *pk, bool meta_only, struct arena *arena,
		    Quorum__ItemRecord **record)
{
	Quorum__ItemKey key;

	key_set(&key, TABLE_ID, pk, NULL);
	return store_get(store, &key, meta_only, arena, record);
}

struct update {
	Quorum__UpdateItemRequest request;
	Quorum__ItemKey key;
	Quorum__Xattr xattr;
};

static void update_init(struct update *u, const char *pk)
{
	quorum__update_item_request__init(&u->request);
	key_set(&u->key, TABLE_ID, pk, NULL);
	u->request.key = &u->key;
}

static int update_run(struct store *store, struct update *u, Quorum__ItemMeta *out)
{
	struct arena *arena = arena_new();
	Quorum__ItemMeta *meta = NULL;
	int err;

	assert_non_null(arena);
	err = store_update(store, &u->request, arena, &meta);
	if (err == 0 && out)
		*out = *meta;
	arena_free(arena);
	return err;
}

/* ------------------------------------------------------------------ tests */

static void test_put_get_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "hello, items";
	Quorum__Xattr a, b;
	Quorum__Xattr *xattrs[2] = { &b, &a };   /* out of order on purpose */
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	struct put p;

	put_init(&p, TABLE_ID, "greeting", NULL, body, sizeof(body) - 1);
	xattr_set(&a, "user.alpha", "1", 1);
	xattr_set(&b, "user.beta", "", 0);
	p.request.n_xattrs = 2;
	p.request.xattrs = xattrs;
	assert_int_equal(put_ok(f->store, &p), 1);

	assert_int_equal(get_item(f->store, "greeting", false, arena, &record), 0);
	assert_int_equal(record->meta->mode, S_IFREG | 0644);
	assert_int_equal(record->meta->uid, 1000);
	assert_int_equal(record->meta->gid, 100);
	assert_true(record->meta->mtime_ns == 1700000000123456789LL);
	assert_true(record->meta->ctime_ns == 1700000000987654321LL);
	assert_int_equal(record->meta->size, sizeof(body) - 1);
	assert_int_equal(record->meta->version, 1);
	assert_true(record->has_body);
	assert_memory_equal(record->body.data, body, sizeof(body) - 1);
	assert_int_equal(record->n_xattrs, 2);
	/* Stored sorted by name. */
	assert_memory_equal(record->xattrs[0]->name.data, "user.alpha", 10);
	assert_memory_equal(record->xattrs[0]->value.data, "1", 1);
	assert_memory_equal(record->xattrs[1]->name.data, "user.beta", 9);
	assert_int_equal(record->xattrs[1]->value.len, 0);

	/* Meta only: no body, but the size. */
	assert_int_equal(get_item(f->store, "greeting", true, arena, &record), 0);
	assert_false(record->has_body);
	assert_int_equal(record->meta->size, sizeof(body) - 1);
	assert_int_equal(record->n_xattrs, 2);

	assert_int_equal(get_item(f->store, "absent", false, arena, &record), -ENOENT);

	/* An empty body and a symlink. */
	put_init(&p, TABLE_ID, "link", NULL, "target", 6);
	p.meta.mode = S_IFLNK | 0777;
	assert_int_equal(put_ok(f->store, &p), 1);
	assert_int_equal(get_item(f->store, "link", false, arena, &record), 0);
	assert_int_equal(record->meta->mode, S_IFLNK | 0777);
	put_init(&p, TABLE_ID, "empty", NULL, NULL, 0);
	assert_int_equal(put_ok(f->store, &p), 1);
	assert_int_equal(get_item(f->store, "empty", false, arena, &record), 0);
	assert_int_equal(record->meta->size, 0);
	arena_free(arena);
}

static void test_put_versions_and_modes(void **state)
{
	struct fixture *f = *state;
	Quorum__Xattr a;
	Quorum__Xattr *xattrs[1] = { &a };
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	struct put p;

	put_init(&p, TABLE_ID, "k", NULL, "one", 3);
	xattr_set(&a, "user.keep", "me", 2);
	p.request.n_xattrs = 1;
	p.request.xattrs = xattrs;
	assert_int_equal(put_ok(f->store, &p), 1);
	assert_int_equal(put_ok(f->store, &p), 2);

	/* keep_xattrs keeps the stored ones and ignores the request's. */
	put_init(&p, TABLE_ID, "k", NULL, "three", 5);
	p.request.has_keep_xattrs = true;
	p.request.keep_xattrs = true;
	assert_int_equal(put_ok(f->store, &p), 3);
	assert_int_equal(get_item(f->store, "k", false, arena, &record), 0);
	assert_int_equal(record->n_xattrs, 1);
	assert_memory_equal(record->body.data, "three", 5);

	/* Without keep_xattrs and without xattrs: none remain. */
	put_init(&p, TABLE_ID, "k", NULL, "four", 4);
	assert_int_equal(put_ok(f->store, &p), 4);
	assert_int_equal(get_item(f->store, "k", false, arena, &record), 0);
	assert_int_equal(record->n_xattrs, 0);

	/* No type bits: a regular file. A directory or device: refused. */
	put_init(&p, TABLE_ID, "m", NULL, "x", 1);
	p.meta.mode = 0600;
	assert_int_equal(put_ok(f->store, &p), 1);
	assert_int_equal(get_item(f->store, "m", true, arena, &record), 0);
	assert_int_equal(record->meta->mode, S_IFREG | 0600);
	p.meta.mode = S_IFDIR | 0755;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);
	p.meta.mode = S_IFCHR | 0600;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);

	/* Duplicate or foreign xattrs. */
	put_init(&p, TABLE_ID, "m", NULL, "x", 1);
	Quorum__Xattr twice[2];
	Quorum__Xattr *dup[2] = { &twice[0], &twice[1] };
	xattr_set(&twice[0], "user.same", "1", 1);
	xattr_set(&twice[1], "user.same", "2", 1);
	p.request.n_xattrs = 2;
	p.request.xattrs = dup;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);
	xattr_set(&twice[1], "trusted.other", "2", 1);
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -ENOTSUP);
	assert_int_equal(get_item(f->store, "m", true, arena, &record), 0);
	assert_int_equal(record->meta->version, 1);
	arena_free(arena);
}

static void test_put_conditions(void **state)
{
	struct fixture *f = *state;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	struct put p;

	put_init(&p, TABLE_ID, "c", NULL, "v1", 2);
	p.request.has_condition = true;
	p.request.condition = QUORUM__CONDITION__COND_ABSENT;
	assert_int_equal(put_ok(f->store, &p), 1);
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EEXIST);

	put_init(&p, TABLE_ID, "c", NULL, "v2", 2);
	p.request.has_condition = true;
	p.request.condition = QUORUM__CONDITION__COND_VERSION;
	p.request.has_expect_version = true;
	p.request.expect_version = 5;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -ESTALE);
	p.request.expect_version = 1;
	assert_int_equal(put_ok(f->store, &p), 2);
	/* The same version again is stale now. */
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -ESTALE);
	/* A version condition without a version makes no sense. */
	p.request.has_expect_version = false;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);

	put_init(&p, TABLE_ID, "nobody", NULL, "x", 1);
	p.request.has_condition = true;
	p.request.condition = QUORUM__CONDITION__COND_VERSION;
	p.request.has_expect_version = true;
	p.request.expect_version = 1;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -ENOENT);
	assert_int_equal(get_item(f->store, "nobody", true, arena, &record), -ENOENT);
	p.request.condition = (Quorum__Condition)17;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);

	assert_int_equal(get_item(f->store, "c", false, arena, &record), 0);
	assert_int_equal(record->meta->version, 2);
	assert_memory_equal(record->body.data, "v2", 2);
	arena_free(arena);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	Quorum__DeleteItemRequest request = QUORUM__DELETE_ITEM_REQUEST__INIT;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	Quorum__ItemKey key;

	key_set(&key, TABLE_ID, "d", NULL);
	request.key = &key;
	assert_int_equal(store_delete(f->store, &request), -ENOENT);
	assert_int_equal(put_simple(f->store, TABLE_ID, "d", NULL, "x"), 0);
	assert_int_equal(put_simple(f->store, TABLE_ID, "d", NULL, "y"), 0);

	request.has_condition = true;
	request.condition = QUORUM__CONDITION__COND_ABSENT;
	assert_int_equal(store_delete(f->store, &request), -EINVAL);
	request.condition = QUORUM__CONDITION__COND_VERSION;
	request.has_expect_version = true;
	request.expect_version = 1;
	assert_int_equal(store_delete(f->store, &request), -ESTALE);
	assert_int_equal(get_item(f->store, "d", true, arena, &record), 0);
	request.expect_version = 2;
	assert_int_equal(store_delete(f->store, &request), 0);
	assert_int_equal(get_item(f->store, "d", true, arena, &record), -ENOENT);
	assert_int_equal(store_delete(f->store, &request), -ENOENT);

	/* A new item under the old key starts again at version 1. */
	assert_int_equal(put_simple(f->store, TABLE_ID, "d", NULL, "z"), 0);
	assert_int_equal(get_item(f->store, "d", true, arena, &record), 0);
	assert_int_equal(record->meta->version, 1);
	request.has_condition = false;
	request.condition = QUORUM__CONDITION__COND_NONE;
	assert_int_equal(store_delete(f->store, &request), 0);
	arena_free(arena);
}

static void test_update_metadata(void **state)
{
	struct fixture *f = *state;
	Quorum__ItemMeta meta;
	struct update u;

	update_init(&u, "u");
	u.request.has_uid = true;
	assert_int_equal(update_run(f->store, &u, &meta), -ENOENT);
	assert_int_equal(put_simple(f->store, TABLE_ID, "u", NULL, "body"), 0);

	update_init(&u, "u");
	u.request.has_mode = true;
	u.request.mode = 04700;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.mode, S_IFREG | 04700);   /* the type stays */
	assert_int_equal(meta.version, 2);
	u.request.mode = S_IFDIR | 0700;                 /* type bits: refused */
	assert_int_equal(update_run(f->store, &u, &meta), -EINVAL);

	update_init(&u, "u");
	u.request.has_uid = true;
	u.request.uid = 0;
	u.request.has_gid = true;
	u.request.gid = 42;
	u.request.has_mtime_ns = true;
	u.request.mtime_ns = 123;
	u.request.has_ctime_ns = true;
	u.request.ctime_ns = 456;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.uid, 0);
	assert_int_equal(meta.gid, 42);
	assert_true(meta.mtime_ns == 123);
	assert_true(meta.ctime_ns == 456);
	assert_int_equal(meta.version, 3);
	assert_int_equal(meta.size, 4);

	/* Without ctime_ns, ctime becomes now; mtime stays. */
	update_init(&u, "u");
	u.request.has_gid = true;
	u.request.gid = 7;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_true(meta.ctime_ns > 1600000000LL * 1000000000LL);
	assert_true(meta.mtime_ns == 123);
	assert_int_equal(meta.version, 4);

	/* Nothing asked: nothing written. */
	update_init(&u, "u");
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.version, 4);
}

static void test_update_truncate(void **state)
{
	struct fixture *f = *state;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	Quorum__ItemMeta meta;
	struct update u;

	assert_int_equal(put_simple(f->store, TABLE_ID, "t", NULL, "abcdef"), 0);
	update_init(&u, "t");
	u.request.has_truncate_size = true;
	u.request.truncate_size = 3;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.size, 3);
	assert_int_equal(get_item(f->store, "t", false, arena, &record), 0);
	assert_int_equal(record->body.len, 3);
	assert_memory_equal(record->body.data, "abc", 3);

	u.request.truncate_size = 8;   /* extends with zeros */
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(get_item(f->store, "t", false, arena, &record), 0);
	assert_int_equal(record->body.len, 8);
	assert_memory_equal(record->body.data, "abc\0\0\0\0\0", 8);

	u.request.truncate_size = 0;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(get_item(f->store, "t", false, arena, &record), 0);
	assert_int_equal(record->meta->size, 0);
	assert_int_equal(record->meta->version, 4);

	u.request.truncate_size = ITEM_DEFAULT_MAX_BYTES + 1;
	assert_int_equal(update_run(f->store, &u, &meta), -EFBIG);
	u.request.truncate_size = ITEM_DEFAULT_MAX_BYTES;   /* exactly the limit: fine */
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.size, ITEM_DEFAULT_MAX_BYTES);
	arena_free(arena);
}

static void test_update_xattrs(void **state)
{
	struct fixture *f = *state;
	static char big[STORE_XATTR_VALUE_MAX_BYTES + 1];
	char long_name[STORE_XATTR_NAME_MAX_BYTES + 2];
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	Quorum__ItemMeta meta;
	struct update u;

	assert_int_equal(put_simple(f->store, TABLE_ID, "x", NULL, "body"), 0);

	update_init(&u, "x");
	xattr_set(&u.xattr, "user.a", "1", 1);
	u.request.set_xattr = &u.xattr;
	u.request.has_set_xattr_flags = true;
	u.request.set_xattr_flags = XATTR_REPLACE;
	assert_int_equal(update_run(f->store, &u, &meta), -ENODATA);
	u.request.set_xattr_flags = XATTR_CREATE;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(meta.version, 2);
	assert_int_equal(update_run(f->store, &u, &meta), -EEXIST);
	u.request.set_xattr_flags = XATTR_CREATE | XATTR_REPLACE;
	assert_int_equal(update_run(f->store, &u, &meta), -EINVAL);
	xattr_set(&u.xattr, "user.a", "22", 2);
	u.request.set_xattr_flags = XATTR_REPLACE;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	xattr_set(&u.xattr, "user.0", "first", 5);
	u.request.set_xattr_flags = 0;
	assert_int_equal(update_run(f->store, &u, &meta), 0);

	assert_int_equal(get_item(f->store, "x", true, arena, &record), 0);
	assert_int_equal(record->n_xattrs, 2);
	assert_memory_equal(record->xattrs[0]->name.data, "user.0", 6);
	assert_memory_equal(record->xattrs[1]->name.data, "user.a", 6);
	assert_memory_equal(record->xattrs[1]->value.data, "22", 2);
	assert_int_equal(record->meta->version, 4);

	/* Names and values out of bounds. */
	xattr_set(&u.xattr, "security.selinux", "x", 1);
	assert_int_equal(update_run(f->store, &u, &meta), -ENOTSUP);
	xattr_set(&u.xattr, "user.", "x", 1);
	assert_int_equal(update_run(f->store, &u, &meta), -EINVAL);
	memset(long_name, 'n', sizeof(long_name) - 1);
	memcpy(long_name, "user.", 5);
	long_name[sizeof(long_name) - 1] = '\0';
	xattr_set(&u.xattr, long_name, "x", 1);
	assert_int_equal(update_run(f->store, &u, &meta), -ERANGE);
	xattr_set(&u.xattr, "user.big", big, sizeof(big));
	assert_int_equal(update_run(f->store, &u, &meta), -E2BIG);
	/* One value of the largest size fits; a second one exceeds the total. */
	xattr_set(&u.xattr, "user.big", big, STORE_XATTR_VALUE_MAX_BYTES - 100);
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	xattr_set(&u.xattr, "user.big2", big, 200);
	assert_int_equal(update_run(f->store, &u, &meta), -ENOSPC);

	/* Remove. */
	update_init(&u, "x");
	u.request.has_remove_xattr = true;
	u.request.remove_xattr.data = (uint8_t *)"user.big";
	u.request.remove_xattr.len = 8;
	assert_int_equal(update_run(f->store, &u, &meta), 0);
	assert_int_equal(update_run(f->store, &u, &meta), -ENODATA);
	u.request.remove_xattr.data = (uint8_t *)"trusted.x";
	u.request.remove_xattr.len = 9;
	assert_int_equal(update_run(f->store, &u, &meta), -ENOTSUP);
	assert_int_equal(get_item(f->store, "x", false, arena, &record), 0);
	assert_int_equal(record->n_xattrs, 2);
	assert_memory_equal(record->body.data, "body", 4);   /* the body is untouched */
	arena_free(arena);
}

static void test_efbig_keeps_old_item(void **state)
{
	struct fixture *f = *state;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	uint8_t *body = calloc(1, 2001);
	struct put p;

	assert_non_null(body);
	store_set_item_max_bytes(f->store, 2000);
	assert_int_equal(store_item_max_bytes(f->store), 2000);
	assert_int_equal(put_simple(f->store, TABLE_ID, "big", NULL, "old"), 0);
	put_init(&p, TABLE_ID, "big", NULL, body, 2001);
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EFBIG);
	assert_int_equal(get_item(f->store, "big", false, arena, &record), 0);
	assert_int_equal(record->meta->version, 1);
	assert_memory_equal(record->body.data, "old", 3);
	put_init(&p, TABLE_ID, "big", NULL, body, 2000);
	assert_int_equal(put_ok(f->store, &p), 2);
	free(body);
	arena_free(arena);
}

static void test_invalid_keys(void **state)
{
	struct fixture *f = *state;
	char long_key[KEY_NAME_MAX_BYTES + 2];
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	Quorum__ItemKey key;

	key_set(&key, 0, "k", NULL);
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -EINVAL);
	key_set(&key, TABLE_ID, "a/b", NULL);
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -EINVAL);
	key_set(&key, TABLE_ID, "..", NULL);
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -EINVAL);
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	key_set(&key, TABLE_ID, long_key, NULL);
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -ENAMETOOLONG);
	/* An empty sort key is a valid key (a directory marker): absent here. */
	key_set(&key, TABLE_ID, "k", "");
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -ENOENT);
	key_set(&key, TABLE_ID, "k", "a/b");
	assert_int_equal(store_get(f->store, &key, false, arena, &record), -EINVAL);
	assert_int_equal(put_simple(f->store, TABLE_ID, "", NULL, "x"), -EINVAL);
	arena_free(arena);
}

/* ------------------------------------------------------------------ scan */

static void scan_fill(struct store *store)
{
	char name[32];

	for (int i = 0; i < SCAN_ITEM_COUNT; i++) {
		snprintf(name, sizeof(name), "item-%04d", i);
		assert_int_equal(put_simple(store, TABLE_ID, name, NULL, name), 0);
	}
	/* Neighbouring tables must never show up. */
	assert_int_equal(put_simple(store, TABLE_ID - 1, "before", NULL, "x"), 0);
	assert_int_equal(put_simple(store, TABLE_ID + 1, "after", NULL, "x"), 0);
}

/* Scans [first, last] of TABLE_ID in pages of limit; marks each item seen
 * in seen[] (failing on a second sighting) and checks the order. Returns
 * the number of entries. */
static int scan_range(struct store *store, uint64_t first, uint64_t last, uint32_t limit,
		      bool *seen)
{
	uint8_t previous[KEY_POSITION_MAX_BYTES];
	size_t previous_bytes = 0;
	int count = 0;
	bool more = true;

	while (more) {
		Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
		Quorum__ScanResponse *response;
		struct arena *arena = arena_new();

		request.table_id = TABLE_ID;
		request.hash_first = first;
		request.hash_last = last;
		request.limit = limit;
		if (previous_bytes) {
			request.has_after = true;
			request.after.data = previous;
			request.after.len = previous_bytes;
		}
		assert_int_equal(store_scan(store, &request, arena, &response), 0);
		assert_true(response->n_entries <= limit);
		if (response->more)
			assert_int_equal(response->n_entries, limit);
		for (size_t i = 0; i < response->n_entries; i++) {
			Quorum__ScanEntry *entry = response->entries[i];
			uint64_t hash = key_get_u64(entry->position.data);
			char name[10];
			int index;

			assert_true(hash >= first && hash <= last);
			assert_true(hash == key_hash(entry->partition_key.data,
						     entry->partition_key.len));
			assert_false(entry->has_sort_key);
			assert_int_equal(entry->partition_key.len, 9);
			memcpy(name, entry->partition_key.data, 9);
			name[9] = '\0';
			index = atoi(name + 5);
			assert_true(index >= 0 && index < SCAN_ITEM_COUNT);
			assert_false(seen[index]);
			seen[index] = true;
			assert_int_equal(entry->meta->size, 9);   /* body "item-NNNN" */
			if (previous_bytes) {
				size_t n = previous_bytes < entry->position.len
						   ? previous_bytes : entry->position.len;
				int c = memcmp(previous, entry->position.data, n);
				assert_true(c < 0 || (c == 0 && previous_bytes < entry->position.len));
			}
			memcpy(previous, entry->position.data, entry->position.len);
			previous_bytes = entry->position.len;
			count++;
		}
		more = response->more;
		arena_free(arena);
	}
	return count;
}

static void test_scan_pages_every_item_once(void **state)
{
	struct fixture *f = *state;
	bool seen[SCAN_ITEM_COUNT] = { false };

	scan_fill(f->store);
	assert_int_equal(scan_range(f->store, 0, UINT64_MAX, 7, seen), SCAN_ITEM_COUNT);
	for (int i = 0; i < SCAN_ITEM_COUNT; i++)
		assert_true(seen[i]);

	/* One big page (the limit is capped, 500 < 1000). */
	memset(seen, 0, sizeof(seen));
	assert_int_equal(scan_range(f->store, 0, UINT64_MAX, 100000, seen), SCAN_ITEM_COUNT);
}

static void test_scan_hash_ranges(void **state)
{
	struct fixture *f = *state;
	bool seen[SCAN_ITEM_COUNT] = { false };
	const uint64_t quarter = UINT64_MAX / 4 + 1;
	int total = 0;

	scan_fill(f->store);
	/* Four partitions as meta makes them; the last ends at 2^64 - 1. */
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t first = i * quarter;
		uint64_t last = i == 3 ? UINT64_MAX : (i + 1) * quarter - 1;
		int count = scan_range(f->store, first, last, 13, seen);

		assert_true(count > 0);
		total += count;
	}
	assert_int_equal(total, SCAN_ITEM_COUNT);
	for (int i = 0; i < SCAN_ITEM_COUNT; i++)
		assert_true(seen[i]);

	/* An empty range is refused, a zero limit too. */
	Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *response;
	struct arena *arena = arena_new();
	request.table_id = TABLE_ID;
	request.hash_first = 10;
	request.hash_last = 9;
	request.limit = 1;
	assert_int_equal(store_scan(f->store, &request, arena, &response), -EINVAL);
	request.hash_first = 0;
	request.hash_last = UINT64_MAX;
	request.limit = 0;
	assert_int_equal(store_scan(f->store, &request, arena, &response), -EINVAL);
	/* A cursor too short to be a position. */
	request.limit = 1;
	request.has_after = true;
	request.after.data = (uint8_t *)"abc";
	request.after.len = 3;
	assert_int_equal(store_scan(f->store, &request, arena, &response), -EINVAL);
	/* A table without items. */
	request.has_after = false;
	request.table_id = 99;
	assert_int_equal(store_scan(f->store, &request, arena, &response), 0);
	assert_int_equal(response->n_entries, 0);
	assert_false(response->more);
	arena_free(arena);
}

static void test_scan_resumes_after_cursor(void **state)
{
	struct fixture *f = *state;
	Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *all, *rest;
	struct arena *arena = arena_new();

	scan_fill(f->store);
	request.table_id = TABLE_ID;
	request.hash_first = 0;
	request.hash_last = UINT64_MAX;
	request.limit = 1000;
	assert_int_equal(store_scan(f->store, &request, arena, &all), 0);
	assert_int_equal(all->n_entries, SCAN_ITEM_COUNT);
	assert_false(all->more);

	/* After entry 41, the next is entry 42, even once 41 is deleted. */
	request.has_after = true;
	request.after = all->entries[41]->position;
	request.limit = 3;
	assert_int_equal(store_scan(f->store, &request, arena, &rest), 0);
	assert_int_equal(rest->n_entries, 3);
	assert_true(rest->more);
	assert_int_equal(rest->entries[0]->position.len, all->entries[42]->position.len);
	assert_memory_equal(rest->entries[0]->position.data, all->entries[42]->position.data,
			    all->entries[42]->position.len);

	Quorum__DeleteItemRequest del = QUORUM__DELETE_ITEM_REQUEST__INIT;
	Quorum__ItemKey key;
	char name[16];
	memcpy(name, all->entries[41]->partition_key.data, 9);
	name[9] = '\0';
	key_set(&key, TABLE_ID, name, NULL);
	del.key = &key;
	assert_int_equal(store_delete(f->store, &del), 0);
	assert_int_equal(store_scan(f->store, &request, arena, &rest), 0);
	assert_memory_equal(rest->entries[0]->position.data, all->entries[42]->position.data,
			    all->entries[42]->position.len);

	/* After the last entry: nothing, and no more. */
	request.after = all->entries[SCAN_ITEM_COUNT - 1]->position;
	assert_int_equal(store_scan(f->store, &request, arena, &rest), 0);
	assert_int_equal(rest->n_entries, 0);
	assert_false(rest->more);

	/* A cursor below the range starts at the range. */
	request.after = all->entries[0]->position;
	request.hash_first = key_get_u64(all->entries[10]->position.data);
	assert_int_equal(store_scan(f->store, &request, arena, &rest), 0);
	assert_memory_equal(rest->entries[0]->position.data, all->entries[10]->position.data,
			    all->entries[10]->position.len);
	arena_free(arena);
}

static void test_scan_partition_key_query(void **state)
{
	struct fixture *f = *state;
	Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *response;
	struct arena *arena = arena_new();
	char sort_key[16];
	int seen = 0;

	for (int i = 0; i < 20; i++) {
		snprintf(sort_key, sizeof(sort_key), "s%02d", i);
		assert_int_equal(put_simple(f->store, TABLE_ID, "p1", sort_key, "x"), 0);
		assert_int_equal(put_simple(f->store, TABLE_ID, "p2", sort_key, "y"), 0);
	}
	assert_int_equal(put_simple(f->store, TABLE_ID, "p1", NULL, "z"), 0);

	request.table_id = TABLE_ID;
	request.hash_first = 0;
	request.hash_last = UINT64_MAX;
	request.limit = 6;
	request.has_partition_key = true;
	request.partition_key.data = (uint8_t *)"p1";
	request.partition_key.len = 2;
	do {
		assert_int_equal(store_scan(f->store, &request, arena, &response), 0);
		for (size_t i = 0; i < response->n_entries; i++) {
			Quorum__ScanEntry *entry = response->entries[i];

			assert_int_equal(entry->partition_key.len, 2);
			assert_memory_equal(entry->partition_key.data, "p1", 2);
			if (seen == 0) {
				/* The item without a sort key sorts first. */
				assert_false(entry->has_sort_key);
			} else {
				snprintf(sort_key, sizeof(sort_key), "s%02d", seen - 1);
				assert_true(entry->has_sort_key);
				assert_int_equal(entry->sort_key.len, 3);
				assert_memory_equal(entry->sort_key.data, sort_key, 3);
			}
			seen++;
		}
		if (response->n_entries) {
			request.has_after = true;
			request.after = response->entries[response->n_entries - 1]->position;
		}
	} while (response->more);
	assert_int_equal(seen, 21);

	/* The key's hash outside the range: nothing here. */
	uint64_t hash = key_hash("p1", 2);
	request.has_after = false;
	request.hash_first = hash == UINT64_MAX ? 0 : hash + 1;
	request.hash_last = hash == UINT64_MAX ? hash - 1 : UINT64_MAX;
	assert_int_equal(store_scan(f->store, &request, arena, &response), 0);
	assert_int_equal(response->n_entries, 0);
	assert_false(response->more);
	arena_free(arena);
}

/* The directory marker of a partition key (empty sort key) is always a
 * directory: no type means one, a file type is refused, chmod keeps it. */
static void test_directory_marker(void **state)
{
	struct fixture *f = *state;
	struct arena *arena = arena_new();
	Quorum__ItemRecord *record;
	Quorum__ItemKey key;
	struct update u;
	struct put p;

	put_init(&p, TABLE_ID, "dir", "", NULL, 0);
	p.meta.mode = S_IFREG | 0644;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);
	p.meta.mode = S_IFLNK | 0777;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);
	p.meta.mode = 0750;
	assert_int_equal(put_ok(f->store, &p), 1);
	p.meta.mode = S_IFDIR | 0755;
	assert_int_equal(put_ok(f->store, &p), 2);
	/* A directory type on an item with a sort key is refused. */
	put_init(&p, TABLE_ID, "dir", "file", "x", 1);
	p.meta.mode = S_IFDIR | 0755;
	assert_int_equal(store_put(f->store, &p.request, arena, NULL), -EINVAL);

	update_init(&u, "dir");
	key_set(&u.key, TABLE_ID, "dir", "");
	u.request.has_mode = true;
	u.request.mode = 0700;
	assert_int_equal(update_run(f->store, &u, NULL), 0);
	key_set(&key, TABLE_ID, "dir", "");
	assert_int_equal(store_get(f->store, &key, true, arena, &record), 0);
	assert_int_equal(record->meta->mode, S_IFDIR | 0700);
	arena_free(arena);
}

#define DISTINCT_PK_COUNT 12
#define DISTINCT_SK_COUNT 40

/* One distinct scan page after *after (NULL: from the start); appends the
 * partition keys seen to names (each NUL-terminated in a 300-byte slot). */
static bool scan_distinct_page(struct store *store, uint64_t first, uint64_t last,
			       uint32_t limit, ProtobufCBinaryData *after, struct arena *arena,
			       char (*names)[300], size_t *count, Quorum__ScanResponse **out)
{
	Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *response;

	request.table_id = TABLE_ID;
	request.hash_first = first;
	request.hash_last = last;
	request.limit = limit;
	request.has_distinct_partition_keys = true;
	request.distinct_partition_keys = true;
	if (after) {
		request.has_after = true;
		request.after = *after;
	}
	assert_int_equal(store_scan(store, &request, arena, &response), 0);
	assert_true(response->n_entries <= limit);
	for (size_t i = 0; i < response->n_entries; i++) {
		const Quorum__ScanEntry *entry = response->entries[i];

		assert_true(entry->partition_key.len < 300);
		memcpy(names[*count], entry->partition_key.data, entry->partition_key.len);
		names[*count][entry->partition_key.len] = '\0';
		(*count)++;
	}
	*out = response;
	return response->more;
}

/* Many sort keys under a few partition keys: a distinct scan returns each
 * partition key once, in storage (hash) order, with its first item (the
 * marker when there is one), and pages with after and limit over any hash
 * range without repeating or losing one. */
static void test_scan_distinct_partition_keys(void **state)
{
	struct fixture *f = *state;
	struct arena *arena = arena_new();
	char names[DISTINCT_PK_COUNT + 1][300], pk[32], sk[32];
	char paged[DISTINCT_PK_COUNT + 1][300];
	Quorum__ScanResponse *response;
	uint64_t hashes[DISTINCT_PK_COUNT + 1], middle;
	size_t count = 0, paged_count = 0;
	bool more;
	struct put p;

	for (int i = 0; i < DISTINCT_PK_COUNT; i++) {
		snprintf(pk, sizeof(pk), "pk-%02d", i);
		for (int j = DISTINCT_SK_COUNT - 1; j >= 0; j--) {
			snprintf(sk, sizeof(sk), "sk-%03d", j);
			assert_int_equal(put_simple(f->store, TABLE_ID, pk, sk, sk), 0);
		}
	}
	/* pk-03 also has a directory marker; pk-marker has nothing else. */
	put_init(&p, TABLE_ID, "pk-03", "", NULL, 0);
	p.meta.mode = S_IFDIR | 0711;
	put_ok(f->store, &p);
	put_init(&p, TABLE_ID, "pk-marker", "", NULL, 0);
	p.meta.mode = S_IFDIR | 0700;
	put_ok(f->store, &p);
	/* Another table's items are never listed. */
	assert_int_equal(put_simple(f->store, TABLE_ID + 1, "other", "s", "x"), 0);

	more = scan_distinct_page(f->store, 0, UINT64_MAX, 1000, NULL, arena, names, &count,
				  &response);
	assert_false(more);
	assert_int_equal(count, DISTINCT_PK_COUNT + 1);
	for (size_t i = 0; i < count; i++) {
		const Quorum__ScanEntry *entry = response->entries[i];

		hashes[i] = key_hash(names[i], strlen(names[i]));
		if (i > 0)
			assert_true(hashes[i - 1] < hashes[i]);
		assert_true(entry->has_sort_key);
		if (strcmp(names[i], "pk-03") == 0 || strcmp(names[i], "pk-marker") == 0) {
			/* The marker sorts first in its partition key. */
			assert_int_equal(entry->sort_key.len, 0);
			assert_true(S_ISDIR(entry->meta->mode));
		} else {
			assert_int_equal(entry->sort_key.len, 6);
			assert_memory_equal(entry->sort_key.data, "sk-000", 6);
			assert_true(S_ISREG(entry->meta->mode));
		}
	}

	/* One at a time, each page resuming after the last entry. */
	for (uint32_t limit = 1; limit <= 5; limit += 2) {
		ProtobufCBinaryData after = { 0, NULL };
		bool has_after = false;

		paged_count = 0;
		do {
			size_t before = paged_count;

			more = scan_distinct_page(f->store, 0, UINT64_MAX, limit,
						  has_after ? &after : NULL, arena, paged,
						  &paged_count, &response);
			assert_true(paged_count > before || !more);
			if (response->n_entries) {
				after = response->entries[response->n_entries - 1]->position;
				has_after = true;
			}
		} while (more);
		assert_int_equal(paged_count, count);
		for (size_t i = 0; i < count; i++)
			assert_string_equal(paged[i], names[i]);
	}

	/* Two hash ranges split between two partition keys cover all once. */
	middle = hashes[count / 2];
	paged_count = 0;
	scan_distinct_page(f->store, 0, middle - 1, 1000, NULL, arena, paged, &paged_count,
			   &response);
	assert_int_equal(paged_count, count / 2);
	scan_distinct_page(f->store, middle, UINT64_MAX, 1000, NULL, arena, paged, &paged_count,
			   &response);
	assert_int_equal(paged_count, count);
	for (size_t i = 0; i < count; i++)
		assert_string_equal(paged[i], names[i]);
	arena_free(arena);
}

/* Writes an item under a chosen hash straight into db (the store's
 * LevelDB, the store closed), as partition keys whose hashes collide would
 * be stored. sk NULL: no sort key. */
static void raw_put(leveldb_t *db, uint64_t hash, const char *pk, const char *sk)
{
	Quorum__ItemRecord record = QUORUM__ITEM_RECORD__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	leveldb_writeoptions_t *write_options = leveldb_writeoptions_create();
	uint8_t key[KEY_STORAGE_MAX_BYTES], *value = NULL;
	size_t key_bytes = 0, value_bytes = 0;
	char *error = NULL;

	key[key_bytes++] = KEY_STORAGE_PREFIX;
	key_put_u64(key + key_bytes, TABLE_ID);
	key_bytes += 8;
	key_put_u64(key + key_bytes, hash);
	key_bytes += 8;
	memcpy(key + key_bytes, pk, strlen(pk));
	key_bytes += strlen(pk);
	if (sk) {
		key[key_bytes++] = 0;
		memcpy(key + key_bytes, sk, strlen(sk));
		key_bytes += strlen(sk);
	}
	meta.mode = S_IFREG | 0644;
	meta.version = 1;
	record.format = ITEM_RECORD_FORMAT;
	record.meta = &meta;
	item_seal_body(&record);
	assert_int_equal(item_encode(&record, &value, &value_bytes), 0);
	leveldb_put(db, write_options, (const char *)key, key_bytes, (const char *)value,
		    value_bytes, &error);
	assert_null(error);
	free(value);
	leveldb_writeoptions_destroy(write_options);
}

/* Partition keys whose hashes collide sort by their bytes inside the hash:
 * "c", then "c\x01" (whose plain item's storage key is exactly the key a
 * distinct scan seeks to after "c"), then "cc". Each is listed once, and
 * none is skipped, paged or not. */
static void test_scan_distinct_hash_collisions(void **state)
{
	struct fixture *f = *state;
	const uint64_t hash = 0x8000000000000000ULL;
	static const char *const expected[] = { "c", "c\x01", "cc" };
	leveldb_options_t *options = leveldb_options_create();
	struct arena *arena = arena_new();
	char names[8][300];
	Quorum__ScanResponse *response;
	ProtobufCBinaryData after;
	size_t count = 0;
	char *error = NULL;
	leveldb_t *db;
	bool more;

	store_close(f->store);
	db = leveldb_open(options, f->items, &error);
	assert_null(error);
	raw_put(db, hash, "c", "a");
	raw_put(db, hash, "c", "b");
	raw_put(db, hash, "c\x01", NULL);
	raw_put(db, hash, "c\x01", "x");
	raw_put(db, hash, "cc", "z");
	raw_put(db, hash + 1, "d", "d");   /* the next hash: outside [hash, hash] */
	leveldb_close(db);
	leveldb_options_destroy(options);
	assert_int_equal(store_open(f->items, &f->store), 0);

	more = scan_distinct_page(f->store, hash, hash, 1000, NULL, arena, names, &count,
				  &response);
	assert_false(more);
	assert_int_equal(count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(names[i], expected[i]);
	/* "c\x01" is listed by its plain item, the first of its keys. */
	assert_false(response->entries[1]->has_sort_key);

	count = 0;
	more = scan_distinct_page(f->store, hash, hash, 1, NULL, arena, names, &count, &response);
	while (more) {
		after = response->entries[0]->position;
		more = scan_distinct_page(f->store, hash, hash, 1, &after, arena, names, &count,
					  &response);
	}
	assert_int_equal(count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(names[i], expected[i]);

	/* An after that is no item's position (a partition key too long) is refused. */
	{
		Quorum__ScanRequest request = QUORUM__SCAN_REQUEST__INIT;
		uint8_t bad[8 + KEY_NAME_MAX_BYTES + 1];

		memset(bad, 'k', sizeof(bad));
		request.table_id = TABLE_ID;
		request.hash_first = 0;
		request.hash_last = UINT64_MAX;
		request.limit = 10;
		request.has_distinct_partition_keys = true;
		request.distinct_partition_keys = true;
		request.has_after = true;
		request.after.data = bad;
		request.after.len = sizeof(bad);
		assert_int_equal(store_scan(f->store, &request, arena, &response), -EINVAL);
	}
	arena_free(arena);
}

/* ------------------------------------------------------------ concurrency */

#define WRITER_COUNT 4
#define WRITES_PER_WRITER 25

static void *writer_main(void *arg)
{
	struct store *store = arg;

	for (int i = 0; i < WRITES_PER_WRITER; i++) {
		Quorum__UpdateItemRequest request = QUORUM__UPDATE_ITEM_REQUEST__INIT;
		Quorum__ItemKey key;
		struct arena *arena = arena_new();

		key_set(&key, TABLE_ID, "shared", NULL);
		request.key = &key;
		request.has_uid = true;
		request.uid = (uint32_t)i;
		if (!arena || store_update(store, &request, arena, NULL) != 0) {
			arena_free(arena);
			return (void *)1;
		}
		arena_free(arena);
	}
	return NULL;
}

static void test_concurrent_updates_are_atomic(void **state)
{
	struct fixture *f = *state;
	pthread_t writers[WRITER_COUNT];
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	void *result;

	assert_int_equal(put_simple(f->store, TABLE_ID, "shared", NULL, "x"), 0);
	for (int i = 0; i < WRITER_COUNT; i++)
		assert_int_equal(pthread_create(&writers[i], NULL, writer_main, f->store), 0);
	for (int i = 0; i < WRITER_COUNT; i++) {
		assert_int_equal(pthread_join(writers[i], &result), 0);
		assert_null(result);
	}
	/* No update was lost: every one added exactly one version. */
	assert_int_equal(get_item(f->store, "shared", true, arena, &record), 0);
	assert_int_equal(record->meta->version, 1 + WRITER_COUNT * WRITES_PER_WRITER);
	arena_free(arena);
}

/* -------------------------------------------------------------- damage */

/* Flips one byte in the middle of the stored value of (TABLE_ID, pk). */
static void damage_value(const char *items_dir, const char *pk)
{
	uint8_t position[KEY_POSITION_MAX_BYTES], key[KEY_STORAGE_MAX_BYTES];
	leveldb_options_t *options = leveldb_options_create();
	leveldb_readoptions_t *read_options = leveldb_readoptions_create();
	leveldb_writeoptions_t *write_options = leveldb_writeoptions_create();
	size_t key_bytes, value_bytes = 0;
	char *error = NULL, *value;
	leveldb_t *db;

	db = leveldb_open(options, items_dir, &error);
	assert_null(error);
	key_bytes = key_encode_storage(key, TABLE_ID, position,
				       key_encode_position(position, pk, strlen(pk), NULL, 0,
							   false));
	value = leveldb_get(db, read_options, (const char *)key, key_bytes, &value_bytes, &error);
	assert_null(error);
	assert_non_null(value);
	assert_true(value_bytes > 8);
	value[value_bytes / 2] ^= 0x40;
	leveldb_put(db, write_options, (const char *)key, key_bytes, value, value_bytes, &error);
	assert_null(error);
	leveldb_free(value);
	leveldb_close(db);
	leveldb_writeoptions_destroy(write_options);
	leveldb_readoptions_destroy(read_options);
	leveldb_options_destroy(options);
}

static void test_damaged_value_is_not_served(void **state)
{
	struct fixture *f = *state;
	Quorum__DeleteItemRequest del = QUORUM__DELETE_ITEM_REQUEST__INIT;
	Quorum__ScanRequest scan = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *response;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();
	Quorum__ItemKey key;
	struct update u;

	assert_int_equal(put_simple(f->store, TABLE_ID, "fragile",
				    NULL, "a body long enough to be hit"), 0);
	assert_int_equal(put_simple(f->store, TABLE_ID, "sound", NULL, "fine"), 0);
	store_close(f->store);
	f->store = NULL;
	damage_value(f->items, "fragile");
	assert_int_equal(store_open(f->items, &f->store), 0);

	assert_int_equal(get_item(f->store, "fragile", false, arena, &record), -EIO);
	assert_int_equal(get_item(f->store, "fragile", true, arena, &record), -EIO);
	assert_int_equal(get_item(f->store, "sound", false, arena, &record), 0);
	update_init(&u, "fragile");
	u.request.has_uid = true;
	assert_int_equal(update_run(f->store, &u, NULL), -EIO);
	assert_int_equal(put_simple(f->store, TABLE_ID, "fragile", NULL, "new"), -EIO);
	scan.table_id = TABLE_ID;
	scan.hash_first = 0;
	scan.hash_last = UINT64_MAX;
	scan.limit = 10;
	assert_int_equal(store_scan(f->store, &scan, arena, &response), -EIO);

	/* A conditional delete needs the version: refused. A plain one
	 * clears the damaged item. */
	key_set(&key, TABLE_ID, "fragile", NULL);
	del.key = &key;
	del.has_condition = true;
	del.condition = QUORUM__CONDITION__COND_VERSION;
	del.has_expect_version = true;
	del.expect_version = 1;
	assert_int_equal(store_delete(f->store, &del), -EIO);
	del.has_condition = false;
	del.condition = QUORUM__CONDITION__COND_NONE;
	assert_int_equal(store_delete(f->store, &del), 0);
	assert_int_equal(get_item(f->store, "fragile", false, arena, &record), -ENOENT);
	assert_int_equal(store_scan(f->store, &scan, arena, &response), 0);
	assert_int_equal(response->n_entries, 1);
	arena_free(arena);
}

static void test_items_survive_reopen(void **state)
{
	struct fixture *f = *state;
	Quorum__ItemRecord *record;
	struct arena *arena = arena_new();

	assert_int_equal(put_simple(f->store, TABLE_ID, "durable", NULL, "kept"), 0);
	store_close(f->store);
	assert_int_equal(store_open(f->items, &f->store), 0);
	assert_int_equal(get_item(f->store, "durable", false, arena, &record), 0);
	assert_memory_equal(record->body.data, "kept", 4);
	arena_free(arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_versions_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_conditions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_xattrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_efbig_keeps_old_item, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_pages_every_item_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_hash_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_resumes_after_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_partition_key_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_distinct_partition_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scan_distinct_hash_collisions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_updates_are_atomic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damaged_value_is_not_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_items_survive_reopen, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
